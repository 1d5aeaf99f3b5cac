/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * iss_store.c - the mod_iss state store on top of apr_dbm.
 *
 * FILES in the store directory (created 0640; the directory itself is
 * never created here):
 *   iss-store.meta            text: format version, DBM type, store id,
 *                             current generation N, CRC32 of the lines
 *                             above.  Only ever replaced atomically
 *                             (iss-store.meta.tmp, fsync, rename, fsync dir).
 *   iss-store.gN              primary DBM of generation N (sdbm: .dir + .pag)
 *   iss-store.gN.mirror       a second copy holding the same records
 *   iss-store.journal         a batch being applied to the primary
 *   iss-store.journal.mirror  the same batch, being applied to the mirror
 *   iss-store.journal.tmp     a batch being written (not yet committed)
 *
 * DBM RECORDS.  DBM key: 'k' + key for keys of at most SHORT_KEY_MAX
 * bytes, else 'h' + SHA-256(key).  Value: [type][CRC32][payload]; the
 * CRC (zlib) covers the DBM key, the type byte and the payload.  The
 * "body" of an entry is [u32 klen][key] (hashed keys only, so that the
 * full key is compared on every read) followed by the value.  A body that
 * fits one DBM pair is stored inline (type 'v'); a larger one is cut into
 * segments (type 's', DBM key 's' + SHA-256(key) + u32 index) behind a
 * head record (type 'm': u64 body length, u32 segment count, SHA-256 of
 * the body).  A pair (DBM key + record) is at most 330 bytes on sdbm (see
 * SDBM_PAIR_MAX) and 32 KiB + 42 on the others.  Integers are big-endian.
 *
 * OPERATIONS.  Each public call: lock the global mutex -> re-read the meta
 * file (another process may have rebuilt the store) -> recover if a
 * journal is present -> open the DBM -> work -> close -> unlock.  A DBM is
 * never kept open between calls: gdbm holds a file lock while a handle is
 * open and sdbm/Berkeley DB cache pages per handle.
 *
 * COMMIT of a batch (under the lock):
 *   0. check that the file system has room (see need_space()).
 *   1. write iss-store.journal.tmp = [magic, generation, length, ops,
 *      SHA-256 of all that]; fsync; rename to iss-store.journal; fsync dir.
 *   2. apply the ops to the primary; close; fsync; read every key of the
 *      batch back.
 *   3. rename the journal to iss-store.journal.mirror (the commit point);
 *      fsync dir.
 *   4. apply the ops to the mirror; close; fsync; read back.
 *   5. unlink iss-store.journal.mirror.
 * A failure before the commit point returns an error and leaves nothing
 * of the batch (the journal is removed, or truncated so that recovery
 * restores the mirror's state); after it the batch stays and APR_SUCCESS
 * is returned, recovery repairing the mirror if step 4 failed.
 * Why two copies: one DBM update is several write() calls, and a process
 * killed between two of them can destroy records the batch never touched
 * (an sdbm page split writes the half that stays before the half that
 * moves; gdbm and Berkeley DB flush pages in their own order), damage that
 * iteration does not always reveal.  With the mirror, at every instant one
 * copy is closed and consistent: while iss-store.journal exists the mirror
 * holds the state before the batch; while iss-store.journal.mirror exists
 * the primary holds the state after it.
 * Why read back: Berkeley DB writes most pages when it is closed, and
 * apr_dbm_close() cannot report a failure there.
 *
 * RECOVERY (any call that finds a journal under the lock, i.e. a writer
 * died): stray journal.tmp files are deleted (the batch never reached a
 * DBM).  iss-store.journal: rebuild generation N+1 from the mirror and
 * apply the journal on top if it is complete and its SHA-256 verifies (if
 * not, the batch is dropped: the result is the state before it).
 * iss-store.journal.mirror: rebuild N+1 from the primary.  Rebuilding
 * copies every record of the source whose checksum verifies (iteration +
 * fetch) into fresh primary and mirror files, closes and fsyncs them,
 * counts their records, applies the journal (with read-back), then
 * commits by atomically rewriting the meta file with N+1, and only then
 * deletes the generation-N files and the journal.  A crash during
 * recovery is itself recovered: until the meta names N+1 the journal and
 * generation N are untouched; afterwards the journal names generation N
 * and is recognised as already applied.  Files of other generations and
 * scratch files (including Berkeley DB's "__db.NAME" of a creation that
 * died, which would make the next creation of NAME wait forever) are
 * removed at open and after every recovery.
 *
 * GUARANTEES
 *  - Death of a writing process (kill -9 at any instruction): the store
 *    opens and holds all of a batch or none of it; batches whose commit
 *    returned APR_SUCCESS are kept.  This relies on DBM internals only in
 *    that a DBM file closed by a live process can be read back.
 *  - Power loss / kernel crash: the same, provided the file system honours
 *    fsync() and rename() ordering as Linux ext4/xfs do: every file is
 *    fsynced before the rename or unlink that makes the next step depend
 *    on it, and the directory after each rename.
 *  - Write errors (disk full, EIO): a commit that returns an error wrote
 *    nothing.  A write error that the DBM does not report (Berkeley DB at
 *    close) is caught by the read-back of the batch's keys; one that hits
 *    other records on the same close is not, which the free-space check
 *    makes unlikely for ENOSPC, but cannot exclude for I/O errors.
 *  - Damage from outside (disk errors, files overwritten): detected by the
 *    record checksums, by SHA-256 over segmented values, by open/iteration
 *    errors and by iss_store_verify(); reported as ISS_STORE_EDAMAGED and
 *    logged at error level, never returned as data.  A recovery that has
 *    to copy a copy with damaged records drops those records and logs
 *    each one at error level.  If a DBM is damaged so badly that it cannot
 *    be opened or iterated, operations fail with ISS_STORE_EDAMAGED and
 *    nothing is deleted.  A damaged index can make get() miss a record
 *    (APR_NOTFOUND); only iss_store_verify() finds that.
 *
 * COST per commit: 5 to 7 fsyncs; the DBM opened 4 times.  sdbm stores
 * big values as many small segments in sparse files: a value of n bytes
 * takes 2n to 6n on disk per copy, and iteration (iterate, verify,
 * recovery) reads every page of the sparse file, e.g. 35 s for a store
 * holding one 64 MiB value.  gdbm and db suit large values better.
 */

#include "iss_store.h"

#include <apr_dbm.h>
#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_sdbm.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include <openssl/evp.h>
#include <zlib.h>

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>

#define META_NAME      "iss-store.meta"
#define META_TMP       "iss-store.meta.tmp"
#define JOURNAL_NAME   "iss-store.journal"
#define JOURNAL_MIRROR "iss-store.journal.mirror"
#define JOURNAL_TMP    "iss-store.journal.tmp"
#define PROBE_NAME     "iss-store.probe"
#define LOCK_NAME      "iss-store.lock"
#define BDB_TMP_PREFIX "__db."      /* Berkeley DB's name while creating */
#define GEN_PREFIX     "iss-store.g"
#define MIRROR_SUFFIX  ".mirror"
#define META_MAGIC     "iss-store-meta"
#define FORMAT_VERSION 1
#define META_MAX       4096

#define FILE_PERMS (APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD)

#define SHORT_KEY_MAX 200
#define SHA_LEN       32
#define REC_HDR       5                       /* type + CRC32 */
#define HEAD_LEN      (8 + 4 + SHA_LEN)       /* length, count, SHA-256 */
#define SEGKEY_LEN    (1 + SHA_LEN + 4)
#define MAX_BODY      ((apr_uint64_t)4 + ISS_STORE_MAX_KEY + ISS_STORE_MAX_VALUE)
/* Largest DBM key + record written as one pair.  sdbm's own limit is 1008
 * bytes, but pairs that large fill a 1 KB page each: sdbm then needs a
 * hash-trie leaf per key (directory depth ~2*log2(n), a sparse .pag file
 * of 2^depth KB that iteration must read through) and refuses a store with
 * ENOSPC when 10 splits cannot separate two keys, which happens after a
 * few hundred keys.  330 bytes lets three pairs share a page
 * (3 * (330 + 4) + 2 <= 1024), which makes both problems negligible. */
#define SDBM_PAIR_MAX 330
#define BIG_PAIR_MAX  (32 * 1024 + SEGKEY_LEN + REC_HDR)

#define KEY_SHORT   'k'
#define KEY_HASHED  'h'
#define KEY_SEGMENT 's'
#define REC_VALUE   'v'
#define REC_HEAD    'm'
#define REC_SEGMENT 's'

#define JRN_MAGIC   "ISSJRN01"
#define JRN_HDR     (8 + 8 + 8)               /* magic, generation, length */
#define OP_PUT      'P'
#define OP_DELETE   'D'

#define NSEG_UNKNOWN 0xffffffffu

#define LOG_ERR     3
#define LOG_WARNING 4
#define LOG_INFO    6

struct iss_store_t {
    apr_pool_t *pool;
    const char *dir;
    const char *type_asked;     /* as configured, for messages */
    const char *type;           /* resolved apr_dbm type name */
    apr_global_mutex_t *mutex;
    apr_pool_t *lock_pool;      /* holds the lock file while locked */
    apr_file_t *lock_file;
    iss_store_log_fn *log;
    void *log_baton;
    apr_size_t pair_max;
    apr_uint64_t gen;
    int closed;
    char id[40];
    char err[1024];
};

typedef struct {
    const char *key;
    apr_size_t klen;
    const char *val;
    apr_size_t vlen;
    int del;
} op_t;

/* Staged puts and deletes, the last one per key winning. */
typedef struct {
    apr_pool_t *pool;
    apr_hash_t *index;          /* key bytes -> op_t * */
    apr_array_header_t *list;   /* op_t *, first-staged order */
    apr_status_t status;        /* ISS_STORE_ETOOBIG from a staging call */
    char why[200];
} opset_t;

struct iss_store_batch_t {
    iss_store_t *store;
    opset_t *ops;
};

typedef struct db_t {
    iss_store_t *s;
    apr_pool_t *pool;           /* owns the handle (and gdbm's datums) */
    apr_dbm_t *dbm;
    const char *path;
} db_t;

struct iss_store_txn_t {
    iss_store_t *s;
    apr_pool_t *pool;
    opset_t *ops;
    db_t *db;                   /* primary, read-only, opened on first get */
    int failed;                 /* a store error was reported in the txn */
};

/* Walks the DBM keys.  sdbm is walked through its own apr_sdbm_t handle:
 * apr_dbm's sdbm nextkey swallows errors (a bad page would silently end
 * the walk) and a fetch on the same handle would replace the page being
 * walked. */
typedef struct {
    iss_store_t *s;
    db_t *db;
    apr_sdbm_t *sdbm;
    apr_datum_t cur;
    char *buf;                  /* copy of the current key */
    apr_size_t len, cap;
    int started, done;
} iter_t;

/* ---- small helpers ------------------------------------------------------ */

static void put32(unsigned char *p, apr_uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static apr_uint32_t get32(const unsigned char *p)
{
    return ((apr_uint32_t)p[0] << 24) | ((apr_uint32_t)p[1] << 16)
           | ((apr_uint32_t)p[2] << 8) | (apr_uint32_t)p[3];
}

static void put64(unsigned char *p, apr_uint64_t v)
{
    put32(p, (apr_uint32_t)(v >> 32));
    put32(p + 4, (apr_uint32_t)v);
}

static apr_uint64_t get64(const unsigned char *p)
{
    return ((apr_uint64_t)get32(p) << 32) | get32(p + 4);
}

static void copy_bytes(void *dst, const void *src, apr_size_t n)
{
    if (n)
        memcpy(dst, src, n);
}

/* Printable, bounded rendering of arbitrary key bytes for messages. */
static const char *show_bytes(char *buf, apr_size_t size, const void *data,
                              apr_size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = data;
    apr_size_t i, o = 0;

    buf[o++] = '"';
    for (i = 0; i < len && o + 8 < size; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\') {
            buf[o++] = (char)p[i];
        }
        else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[p[i] >> 4];
            buf[o++] = hex[p[i] & 15];
        }
    }
    if (i < len) {
        buf[o++] = '.';
        buf[o++] = '.';
        buf[o++] = '.';
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

static void hex_of(char *out, const unsigned char *p, apr_size_t n)
{
    static const char hex[] = "0123456789abcdef";
    apr_size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Human-readable name of a DBM key (user key, hashed key or segment). */
static const char *show_dk(char *buf, apr_size_t size, const char *dk,
                           apr_size_t dklen)
{
    char h[17];

    if (dklen >= 1 && dk[0] == KEY_SHORT)
        return show_bytes(buf, size, dk + 1, dklen - 1);
    if (dklen == 1 + SHA_LEN && dk[0] == KEY_HASHED) {
        hex_of(h, (const unsigned char *)dk + 1, 8);
        apr_snprintf(buf, size, "<long key sha256:%s...>", h);
        return buf;
    }
    if (dklen == SEGKEY_LEN && dk[0] == KEY_SEGMENT) {
        hex_of(h, (const unsigned char *)dk + 1, 8);
        apr_snprintf(buf, size, "<segment %u of sha256:%s...>",
                     get32((const unsigned char *)dk + 1 + SHA_LEN), h);
        return buf;
    }
    return show_bytes(buf, size, dk, dklen);
}

static void note(iss_store_t *s, int level, apr_status_t rv,
                 const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    if (!s->log)
        return;
    va_start(ap, fmt);
    apr_vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    s->log(s->log_baton, level, rv, msg);
}

/* Record an error for iss_store_last_error() and return @a rv. */
static apr_status_t fail(iss_store_t *s, apr_status_t rv, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    apr_vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    return rv;
}

/* Record and log (error level) damage; returns ISS_STORE_EDAMAGED. */
static apr_status_t damaged(iss_store_t *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    apr_vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    if (s->log)
        s->log(s->log_baton, LOG_ERR, ISS_STORE_EDAMAGED, s->err);
    return ISS_STORE_EDAMAGED;
}

/* gdbm and Berkeley DB report APR_OS_START_USEERR + their own code, the
 * range ISS_STORE_E* live in; never let such a code escape as is. */
static apr_status_t dbm_status(iss_store_t *s, apr_status_t rv)
{
    if (rv >= APR_OS_START_USERERR
        && rv < APR_OS_START_USERERR + APR_OS_ERRSPACE_SIZE) {
        int code = (int)(rv - APR_OS_START_USERERR);

        /* Berkeley DB passes errno values through unchanged. */
        if (strcmp(s->type, "db") == 0 && code > 0 && code < 1000)
            return APR_FROM_OS_ERROR(code);
        return APR_EGENERAL;
    }
    return rv;
}

static const char *status_text(iss_store_t *s, apr_status_t rv, char *buf,
                               apr_size_t size)
{
    if (rv >= APR_OS_START_USERERR
        && rv < APR_OS_START_USERERR + APR_OS_ERRSPACE_SIZE)
        apr_snprintf(buf, size, "%s error %d", s->type,
                     (int)(rv - APR_OS_START_USERERR));
    else
        apr_strerror(rv, buf, size);
    return buf;
}

static const char *fpath(iss_store_t *s, apr_pool_t *p, const char *name)
{
    return apr_pstrcat(p, s->dir, "/", name, NULL);
}

static const char *gen_path(iss_store_t *s, apr_pool_t *p, apr_uint64_t gen,
                            int mirror)
{
    return apr_psprintf(p, "%s/" GEN_PREFIX "%" APR_UINT64_T_FMT "%s",
                        s->dir, gen, mirror ? MIRROR_SUFFIX : "");
}

static int file_exists(const char *path, apr_pool_t *p)
{
    apr_finfo_t fi;
    apr_status_t rv = apr_stat(&fi, path, APR_FINFO_TYPE, p);

    return rv == APR_SUCCESS || rv == APR_INCOMPLETE;
}

static apr_status_t remove_file(iss_store_t *s, const char *path,
                                apr_pool_t *p)
{
    apr_status_t rv = apr_file_remove(path, p);

    if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOENT(rv))
        return fail(s, rv, "cannot remove %s: %pm", path, &rv);
    return APR_SUCCESS;
}

/* ---- hashing ------------------------------------------------------------ */

static apr_status_t md_cleanup(void *ctx)
{
    EVP_MD_CTX_free(ctx);
    return APR_SUCCESS;
}

/* A SHA-256 context freed with @a p. */
static apr_status_t sha_new(iss_store_t *s, apr_pool_t *p, EVP_MD_CTX **ctx)
{
    *ctx = EVP_MD_CTX_new();
    if (!*ctx)
        return fail(s, APR_ENOMEM, "out of memory (EVP_MD_CTX_new)");
    apr_pool_cleanup_register(p, *ctx, md_cleanup, apr_pool_cleanup_null);
    if (EVP_DigestInit_ex(*ctx, EVP_sha256(), NULL) != 1)
        return fail(s, APR_EGENERAL, "SHA-256 is not available from OpenSSL");
    return APR_SUCCESS;
}

static apr_status_t sha_add(iss_store_t *s, EVP_MD_CTX *ctx, const void *d,
                            apr_size_t n)
{
    if (n && EVP_DigestUpdate(ctx, d, n) != 1)
        return fail(s, APR_EGENERAL, "SHA-256 update failed");
    return APR_SUCCESS;
}

static apr_status_t sha_end(iss_store_t *s, EVP_MD_CTX *ctx,
                            unsigned char out[SHA_LEN])
{
    if (EVP_DigestFinal_ex(ctx, out, NULL) != 1)
        return fail(s, APR_EGENERAL, "SHA-256 final failed");
    return APR_SUCCESS;
}

static apr_status_t sha256(iss_store_t *s, const void *d, apr_size_t n,
                           unsigned char out[SHA_LEN])
{
    if (EVP_Digest(d, n, out, NULL, EVP_sha256(), NULL) != 1)
        return fail(s, APR_EGENERAL, "SHA-256 failed");
    return APR_SUCCESS;
}

static uLong crc_add(uLong c, const void *d, apr_size_t n)
{
    const Bytef *p = d;

    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;

        c = crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return c;
}

static apr_uint32_t rec_crc(const char *dk, apr_size_t dklen, const char *rec,
                            apr_size_t reclen)
{
    uLong c = crc32(0L, Z_NULL, 0);

    c = crc_add(c, dk, dklen);
    c = crc_add(c, rec, 1);
    c = crc_add(c, rec + REC_HDR, reclen - REC_HDR);
    return (apr_uint32_t)c;
}

static void rec_seal(const char *dk, apr_size_t dklen, char *rec,
                     apr_size_t reclen)
{
    put32((unsigned char *)rec + 1, rec_crc(dk, dklen, rec, reclen));
}

static int rec_ok(const char *dk, apr_size_t dklen, const char *rec,
                  apr_size_t reclen)
{
    return reclen >= REC_HDR
           && get32((const unsigned char *)rec + 1)
              == rec_crc(dk, dklen, rec, reclen);
}

/* ---- keys --------------------------------------------------------------- */

static apr_status_t make_dk(iss_store_t *s, apr_pool_t *p, const void *key,
                            apr_size_t klen, char **dk, apr_size_t *dklen)
{
    if (klen <= SHORT_KEY_MAX) {
        *dk = apr_palloc(p, klen + 1);
        (*dk)[0] = KEY_SHORT;
        copy_bytes(*dk + 1, key, klen);
        *dklen = klen + 1;
        return APR_SUCCESS;
    }
    *dk = apr_palloc(p, 1 + SHA_LEN);
    (*dk)[0] = KEY_HASHED;
    *dklen = 1 + SHA_LEN;
    return sha256(s, key, klen, (unsigned char *)*dk + 1);
}

/* SHA-256 of the user key, naming its segments. */
static apr_status_t seg_id(iss_store_t *s, const char *dk, apr_size_t dklen,
                           unsigned char id[SHA_LEN])
{
    if (dk[0] == KEY_HASHED) {
        memcpy(id, dk + 1, SHA_LEN);
        return APR_SUCCESS;
    }
    return sha256(s, dk + 1, dklen - 1, id);
}

static void seg_key(char out[SEGKEY_LEN], const unsigned char id[SHA_LEN],
                    apr_uint32_t i)
{
    out[0] = KEY_SEGMENT;
    memcpy(out + 1, id, SHA_LEN);
    put32((unsigned char *)out + 1 + SHA_LEN, i);
}

static apr_size_t seg_size(iss_store_t *s)
{
    return s->pair_max - SEGKEY_LEN - REC_HDR;
}

/* ---- DBM handles -------------------------------------------------------- */

static apr_status_t dbm_files(iss_store_t *s, apr_pool_t *p, const char *path,
                              const char **f1, const char **f2)
{
    apr_status_t rv = apr_dbm_get_usednames_ex(p, s->type, path, f1, f2);

    if (rv != APR_SUCCESS)
        return fail(s, rv, "DBM type %s is not available: %pm", s->type, &rv);
    return APR_SUCCESS;
}

static int dbm_exists(iss_store_t *s, apr_pool_t *p, const char *path)
{
    const char *f1, *f2;

    if (dbm_files(s, p, path, &f1, &f2) != APR_SUCCESS)
        return 0;
    return file_exists(f1, p) || (f2 && file_exists(f2, p));
}

/* Remove a DBM's files, including the temporary file of a Berkeley DB
 * creation that died: while "__db.NAME" exists, creating NAME waits for
 * the other creator forever. */
static apr_status_t remove_dbm(iss_store_t *s, apr_pool_t *p, const char *path)
{
    const char *f1, *f2, *base = strrchr(path, '/');
    apr_status_t rv = dbm_files(s, p, path, &f1, &f2);

    if (rv == APR_SUCCESS)
        rv = remove_file(s, f1, p);
    if (rv == APR_SUCCESS && f2)
        rv = remove_file(s, f2, p);
    if (rv == APR_SUCCESS && base)
        rv = remove_file(s, apr_pstrcat(p, s->dir, "/" BDB_TMP_PREFIX,
                                        base + 1, NULL), p);
    return rv;
}

static apr_status_t sync_path(iss_store_t *s, const char *path, apr_pool_t *p)
{
    apr_file_t *f;
    apr_status_t rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT, p);

    if (rv != APR_SUCCESS)
        return fail(s, rv, "cannot open %s to sync it: %pm", path, &rv);
    rv = apr_file_sync(f);
    apr_file_close(f);
    if (rv != APR_SUCCESS)
        return fail(s, rv, "fsync of %s failed: %pm", path, &rv);
    return APR_SUCCESS;
}

static apr_status_t sync_dir(iss_store_t *s, apr_pool_t *p)
{
    return sync_path(s, s->dir, p);
}

static apr_status_t sync_dbm(iss_store_t *s, apr_pool_t *p, const char *path)
{
    const char *f1, *f2;
    apr_status_t rv = dbm_files(s, p, path, &f1, &f2);

    if (rv == APR_SUCCESS)
        rv = sync_path(s, f1, p);
    if (rv == APR_SUCCESS && f2)
        rv = sync_path(s, f2, p);
    return rv;
}

static void db_close(db_t *db)
{
    if (db) {
        apr_dbm_close(db->dbm);
        apr_pool_destroy(db->pool);
    }
}

static apr_status_t db_open(iss_store_t *s, const char *path, apr_int32_t mode,
                            apr_pool_t *parent, db_t **out)
{
    apr_pool_t *p;
    apr_status_t rv;
    db_t *db;
    char eb[128];

    *out = NULL;
    rv = apr_pool_create(&p, parent);
    if (rv != APR_SUCCESS)
        return fail(s, rv, "cannot create a pool: %pm", &rv);
    db = apr_pcalloc(p, sizeof(*db));
    db->s = s;
    db->pool = p;
    db->path = path;
    rv = apr_dbm_open_ex(&db->dbm, s->type, path, mode, FILE_PERMS, p);
    if (rv == APR_SUCCESS) {
        *out = db;
        return APR_SUCCESS;
    }
    apr_pool_destroy(p);
    if (APR_STATUS_IS_EACCES(rv))
        return fail(s, rv, "cannot open DBM %s: %pm", path, &rv);
    /* gdbm fails at once (GDBM_CANT_BE_READER/WRITER) while another
     * process has the file open for writing, or for reading when we
     * want to write. */
    if (strcmp(s->type, "gdbm") == 0
        && (rv == APR_OS_START_USERERR + 9 || rv == APR_OS_START_USERERR + 10))
        return fail(s, APR_EAGAIN, "DBM %s is locked by another process: "
                    "every process using the state store must share its "
                    "mutex", path);
    if (mode != APR_DBM_RWCREATE && !dbm_exists(s, parent, path))
        return damaged(s, "DBM %s of the state store is missing", path);
    return damaged(s, "cannot open DBM %s as type %s: %s", path, s->type,
                   status_text(s, rv, eb, sizeof(eb)));
}

/* Report a failed DBM call with the DBM's own message. */
static apr_status_t db_fail(db_t *db, apr_status_t rv, const char *what,
                            const char *dk, apr_size_t dklen, int is_damage)
{
    char msg[256], kb[128];
    int code = 0;

    apr_dbm_geterror(db->dbm, &code, msg, sizeof(msg));
    if (!msg[0])
        status_text(db->s, rv, msg, sizeof(msg));
    show_dk(kb, sizeof(kb), dk, dklen);
    if (is_damage)
        return damaged(db->s, "%s %s in %s failed: %s", what, kb, db->path, msg);
    return fail(db->s, dbm_status(db->s, rv), "%s %s in %s failed: %s", what,
                kb, db->path, msg);
}

/* Fetch a raw record; *rec = NULL when absent.  The copy in @a p carries a
 * terminating NUL after *reclen bytes. */
static apr_status_t db_fetch(db_t *db, const char *dk, apr_size_t dklen,
                             apr_pool_t *p, char **rec, apr_size_t *reclen)
{
    apr_datum_t k, v = { NULL, 0 };
    apr_status_t rv;

    *rec = NULL;
    *reclen = 0;
    k.dptr = (char *)dk;
    k.dsize = dklen;
    rv = apr_dbm_fetch(db->dbm, k, &v);
    if (rv != APR_SUCCESS)
        return db_fail(db, rv, "reading", dk, dklen, 1);
    if (!v.dptr)
        return APR_SUCCESS;
    *rec = apr_palloc(p, v.dsize + 1);
    copy_bytes(*rec, v.dptr, v.dsize);
    (*rec)[v.dsize] = '\0';
    *reclen = v.dsize;
    apr_dbm_freedatum(db->dbm, v);
    return APR_SUCCESS;
}

static apr_status_t db_store(db_t *db, const char *dk, apr_size_t dklen,
                             const char *rec, apr_size_t reclen)
{
    apr_datum_t k, v;
    apr_status_t rv;

    k.dptr = (char *)dk;
    k.dsize = dklen;
    v.dptr = (char *)rec;
    v.dsize = reclen;
    rv = apr_dbm_store(db->dbm, k, v);
    if (rv != APR_SUCCESS)
        return db_fail(db, rv, "writing", dk, dklen, 0);
    return APR_SUCCESS;
}

/* Delete if present (sdbm reports an error for absent keys). */
static apr_status_t db_delete(db_t *db, const char *dk, apr_size_t dklen)
{
    apr_datum_t k;
    apr_status_t rv;

    k.dptr = (char *)dk;
    k.dsize = dklen;
    if (!apr_dbm_exists(db->dbm, k))
        return APR_SUCCESS;
    rv = apr_dbm_delete(db->dbm, k);
    if (rv != APR_SUCCESS)
        return db_fail(db, rv, "deleting", dk, dklen, 0);
    return APR_SUCCESS;
}

/* ---- iteration over DBM keys -------------------------------------------- */

static apr_status_t iter_open(iss_store_t *s, db_t *db, apr_pool_t *p,
                              iter_t **out)
{
    iter_t *it = apr_pcalloc(p, sizeof(*it));
    apr_status_t rv;

    it->s = s;
    it->db = db;
    if (strcmp(s->type, "sdbm") == 0) {
        rv = apr_sdbm_open(&it->sdbm, db->path,
                           APR_FOPEN_READ | APR_FOPEN_BUFFERED, FILE_PERMS, p);
        if (rv != APR_SUCCESS)
            return damaged(s, "cannot open sdbm %s for iteration: %pm",
                           db->path, &rv);
    }
    it->cap = 256;
    it->buf = apr_palloc(p, it->cap);
    *out = it;
    return APR_SUCCESS;
}

static void iter_close(iter_t *it)
{
    if (it && it->sdbm) {
        apr_sdbm_close(it->sdbm);
        it->sdbm = NULL;
    }
}

static void iter_keep(iter_t *it, apr_pool_t *p, const char *k, apr_size_t n)
{
    if (n + 1 > it->cap) {
        it->cap = n + 1;
        it->buf = apr_palloc(p, it->cap);
    }
    copy_bytes(it->buf, k, n);
    it->len = n;
}

/* Next DBM key into *dk (valid until the next call), NULL at the end.
 * @a p must live as long as the iterator. */
static apr_status_t iter_next(iter_t *it, apr_pool_t *p, const char **dk,
                              apr_size_t *dklen)
{
    apr_status_t rv;

    *dk = NULL;
    *dklen = 0;
    if (it->done)
        return APR_SUCCESS;
    if (it->sdbm) {
        apr_sdbm_datum_t kd = { NULL, 0 };

        rv = it->started ? apr_sdbm_nextkey(it->sdbm, &kd)
                         : apr_sdbm_firstkey(it->sdbm, &kd);
        it->started = 1;
        if (APR_STATUS_IS_EOF(rv) || (rv == APR_SUCCESS && !kd.dptr)) {
            it->done = 1;
            return APR_SUCCESS;
        }
        if (rv != APR_SUCCESS)
            return damaged(it->s, "iterating over %s failed: %pm",
                           it->db->path, &rv);
        iter_keep(it, p, kd.dptr, (apr_size_t)kd.dsize);
    }
    else {
        apr_datum_t old = it->cur;

        rv = it->started ? apr_dbm_nextkey(it->db->dbm, &it->cur)
                         : apr_dbm_firstkey(it->db->dbm, &it->cur);
        if (it->started && old.dptr)
            apr_dbm_freedatum(it->db->dbm, old);
        if (rv != APR_SUCCESS) {
            it->cur.dptr = NULL;
            it->done = 1;
            return db_fail(it->db, rv, "iterating after", it->buf, it->len, 1);
        }
        if (!it->cur.dptr) {
            it->done = 1;
            return APR_SUCCESS;
        }
        /* Berkeley DB's nextkey returns the same key when its cursor
         * fails; keys are unique, so a repeat means the walk is stuck. */
        if (it->started && it->cur.dsize == it->len
            && memcmp(it->cur.dptr, it->buf, it->len) == 0) {
            it->done = 1;
            return damaged(it->s, "iterating over %s does not advance past "
                           "a key: the DBM is damaged", it->db->path);
        }
        it->started = 1;
        iter_keep(it, p, it->cur.dptr, it->cur.dsize);
    }
    if (it->len == 0) {
        it->done = 1;
        return damaged(it->s, "iterating over %s returned an empty key: the "
                       "DBM is damaged", it->db->path);
    }
    *dk = it->buf;
    *dklen = it->len;
    return APR_SUCCESS;
}

/* ---- reading entries ---------------------------------------------------- */

static apr_status_t check_rec(db_t *db, const char *dk, apr_size_t dklen,
                              const char *rec, apr_size_t reclen)
{
    char kb[128];

    if (!rec_ok(dk, dklen, rec, reclen))
        return damaged(db->s, "record %s in %s fails its checksum",
                       show_dk(kb, sizeof(kb), dk, dklen), db->path);
    return APR_SUCCESS;
}

/* The body of the checked record @a rec: inline, or reassembled from its
 * segments and verified.  *body is NUL-terminated.  *nseg: segments. */
static apr_status_t load_body(db_t *db, const char *dk, apr_size_t dklen,
                              char *rec, apr_size_t reclen, apr_pool_t *p,
                              char **body, apr_size_t *blen,
                              apr_uint32_t *nseg)
{
    iss_store_t *s = db->s;
    const unsigned char *pay = (const unsigned char *)rec + REC_HDR;
    apr_size_t paylen = reclen - REC_HDR;
    unsigned char id[SHA_LEN], want[SHA_LEN], got[SHA_LEN];
    char kb[128], sk[SEGKEY_LEN];
    apr_uint64_t total;
    apr_uint32_t n, i;
    apr_size_t off = 0;
    apr_pool_t *sp = NULL;
    EVP_MD_CTX *ctx;
    apr_status_t rv;

    if (rec[0] == REC_VALUE && dk[0] != KEY_SEGMENT) {
        *body = rec + REC_HDR;
        *blen = paylen;
        if (nseg)
            *nseg = 0;
        return APR_SUCCESS;
    }
    if (rec[0] != REC_HEAD || dk[0] == KEY_SEGMENT || paylen != HEAD_LEN)
        return damaged(s, "record %s in %s has an invalid type or layout",
                       show_dk(kb, sizeof(kb), dk, dklen), db->path);
    total = get64(pay);
    n = get32(pay + 8);
    memcpy(want, pay + 12, SHA_LEN);
    if (total > MAX_BODY || n == 0 || n > total)
        return damaged(s, "record %s in %s has an invalid segment header",
                       show_dk(kb, sizeof(kb), dk, dklen), db->path);
    if ((rv = seg_id(s, dk, dklen, id)) != APR_SUCCESS)
        return rv;
    if ((rv = apr_pool_create(&sp, p)) != APR_SUCCESS)
        return fail(s, rv, "cannot create a pool: %pm", &rv);
    if ((rv = sha_new(s, sp, &ctx)) != APR_SUCCESS)
        goto cleanup;
    *body = apr_palloc(p, (apr_size_t)total + 1);
    for (i = 0; i < n; i++) {
        char *srec;
        apr_size_t slen;
        apr_pool_t *ip;

        if ((rv = apr_pool_create(&ip, sp)) != APR_SUCCESS) {
            fail(s, rv, "cannot create a pool: %pm", &rv);
            goto cleanup;
        }
        seg_key(sk, id, i);
        rv = db_fetch(db, sk, SEGKEY_LEN, ip, &srec, &slen);
        if (rv == APR_SUCCESS && !srec)
            rv = damaged(s, "segment %u of %u of record %s is missing in %s",
                         i, n, show_dk(kb, sizeof(kb), dk, dklen), db->path);
        if (rv == APR_SUCCESS)
            rv = check_rec(db, sk, SEGKEY_LEN, srec, slen);
        if (rv == APR_SUCCESS
            && (srec[0] != REC_SEGMENT || slen - REC_HDR > total - off))
            rv = damaged(s, "segment %u of record %s in %s is invalid", i,
                         show_dk(kb, sizeof(kb), dk, dklen), db->path);
        if (rv == APR_SUCCESS) {
            copy_bytes(*body + off, srec + REC_HDR, slen - REC_HDR);
            off += slen - REC_HDR;
        }
        apr_pool_destroy(ip);
        if (rv != APR_SUCCESS)
            goto cleanup;
    }
    if ((rv = sha_add(s, ctx, *body, off)) != APR_SUCCESS
        || (rv = sha_end(s, ctx, got)) != APR_SUCCESS)
        goto cleanup;
    if (off != total || memcmp(got, want, SHA_LEN) != 0) {
        rv = damaged(s, "value of %s in %s does not match its SHA-256",
                     show_dk(kb, sizeof(kb), dk, dklen), db->path);
        goto cleanup;
    }
    (*body)[off] = '\0';
    *blen = off;
    if (nseg)
        *nseg = n;
cleanup:
    apr_pool_destroy(sp);
    return rv;
}

/* Split a body into key and value.  For hashed DBM keys the embedded key
 * must hash to the DBM key. */
static apr_status_t split_body(db_t *db, const char *dk, apr_size_t dklen,
                               char *body, apr_size_t blen,
                               const char **key, apr_size_t *klen,
                               char **val, apr_size_t *vlen)
{
    unsigned char h[SHA_LEN];
    char kb[128];
    apr_uint32_t kl;
    apr_status_t rv;

    if (dk[0] == KEY_SHORT) {
        *key = dk + 1;
        *klen = dklen - 1;
        *val = body;
        *vlen = blen;
        return APR_SUCCESS;
    }
    kl = blen >= 4 ? get32((unsigned char *)body) : 0;
    if (blen < 4 || kl > blen - 4 || kl <= SHORT_KEY_MAX)
        return damaged(db->s, "record %s in %s has an invalid key part",
                       show_dk(kb, sizeof(kb), dk, dklen), db->path);
    if ((rv = sha256(db->s, body + 4, kl, h)) != APR_SUCCESS)
        return rv;
    if (memcmp(h, dk + 1, SHA_LEN) != 0)
        return damaged(db->s, "key inside record %s in %s does not match "
                       "its hash", show_dk(kb, sizeof(kb), dk, dklen),
                       db->path);
    *key = body + 4;
    *klen = kl;
    *val = body + 4 + kl;
    *vlen = blen - 4 - kl;
    return APR_SUCCESS;
}

/* Read the entry of a user key; APR_NOTFOUND if absent. */
static apr_status_t read_entry(db_t *db, const void *key, apr_size_t klen,
                               apr_pool_t *p, apr_pool_t *scratch,
                               void **val, apr_size_t *vlen)
{
    char *dk, *rec, *body, *v;
    apr_size_t dklen, reclen, blen, kl, vl;
    const char *k;
    apr_status_t rv;

    if ((rv = make_dk(db->s, scratch, key, klen, &dk, &dklen)) != APR_SUCCESS)
        return rv;
    if ((rv = db_fetch(db, dk, dklen, p, &rec, &reclen)) != APR_SUCCESS)
        return rv;
    if (!rec)
        return APR_NOTFOUND;
    if ((rv = check_rec(db, dk, dklen, rec, reclen)) != APR_SUCCESS
        || (rv = load_body(db, dk, dklen, rec, reclen, p, &body, &blen,
                           NULL)) != APR_SUCCESS
        || (rv = split_body(db, dk, dklen, body, blen, &k, &kl, &v, &vl))
           != APR_SUCCESS)
        return rv;
    if (kl != klen || memcmp(k, key, klen) != 0)
        return APR_NOTFOUND;            /* a SHA-256 collision */
    *val = v;
    *vlen = vl;
    return APR_SUCCESS;
}

/* ---- writing entries ---------------------------------------------------- */

/* Segment count of the entry stored under @a dk now: 0 if absent or
 * inline, NSEG_UNKNOWN if its record is damaged. */
static apr_status_t old_nseg(db_t *db, const char *dk, apr_size_t dklen,
                             apr_pool_t *p, apr_uint32_t *n, int *present)
{
    char *rec = NULL, kb[128];
    apr_size_t reclen = 0;
    apr_status_t rv = db_fetch(db, dk, dklen, p, &rec, &reclen);

    *n = 0;
    *present = 0;
    if (rv != APR_SUCCESS || !rec)
        return rv;
    *present = 1;
    if (!rec_ok(dk, dklen, rec, reclen)
        || (rec[0] == REC_HEAD && reclen != REC_HDR + HEAD_LEN)) {
        *n = NSEG_UNKNOWN;
        note(db->s, LOG_WARNING, ISS_STORE_EDAMAGED,
             "replacing damaged record %s in %s",
             show_dk(kb, sizeof(kb), dk, dklen), db->path);
    }
    else if (rec[0] == REC_HEAD) {
        *n = get32((unsigned char *)rec + REC_HDR + 8);
    }
    return APR_SUCCESS;
}

/* Delete segments [from, old) highest first, so that an interrupted run
 * never leaves a gap; NSEG_UNKNOWN: probe upwards from @a from. */
static apr_status_t drop_segments(db_t *db, const unsigned char id[SHA_LEN],
                                  apr_uint32_t from, apr_uint32_t old)
{
    char sk[SEGKEY_LEN];
    apr_status_t rv;

    if (old == NSEG_UNKNOWN) {
        apr_datum_t k;

        k.dptr = sk;
        k.dsize = SEGKEY_LEN;
        old = from;
        for (;;) {
            seg_key(sk, id, old);
            if (!apr_dbm_exists(db->dbm, k))
                break;
            old++;
        }
    }
    while (old > from) {
        seg_key(sk, id, --old);
        if ((rv = db_delete(db, sk, SEGKEY_LEN)) != APR_SUCCESS)
            return rv;
    }
    return APR_SUCCESS;
}

/* Copy @a len bytes at @a off of the body prefix||val into @a dst. */
static void body_copy(char *dst, const char *prefix, apr_size_t plen,
                      const char *val, apr_size_t off, apr_size_t len)
{
    if (off < plen) {
        apr_size_t k = plen - off < len ? plen - off : len;

        copy_bytes(dst, prefix + off, k);
        dst += k;
        off += k;
        len -= k;
    }
    if (len)
        memcpy(dst, val + (off - plen), len);
}

static apr_status_t apply_put(db_t *db, const op_t *op, apr_pool_t *p)
{
    iss_store_t *s = db->s;
    unsigned char id[SHA_LEN], sum[SHA_LEN];
    char *dk, *pre = NULL, *rec;
    apr_size_t dklen, plen = 0, blen;
    apr_uint32_t old, n = 0;
    int present;
    apr_status_t rv;

    if ((rv = make_dk(s, p, op->key, op->klen, &dk, &dklen)) != APR_SUCCESS
        || (rv = old_nseg(db, dk, dklen, p, &old, &present)) != APR_SUCCESS
        || (rv = seg_id(s, dk, dklen, id)) != APR_SUCCESS)
        return rv;
    if (dk[0] == KEY_HASHED) {
        plen = 4 + op->klen;
        pre = apr_palloc(p, plen);
        put32((unsigned char *)pre, (apr_uint32_t)op->klen);
        memcpy(pre + 4, op->key, op->klen);
    }
    blen = plen + op->vlen;
    if (dklen + REC_HDR + blen <= s->pair_max) {
        rec = apr_palloc(p, REC_HDR + blen);
        rec[0] = REC_VALUE;
        body_copy(rec + REC_HDR, pre, plen, op->val, 0, blen);
        rec_seal(dk, dklen, rec, REC_HDR + blen);
        rv = db_store(db, dk, dklen, rec, REC_HDR + blen);
    }
    else {
        apr_size_t seg = seg_size(s), off, len;
        char sk[SEGKEY_LEN];
        EVP_MD_CTX *ctx;
        apr_uint32_t i;

        if ((rv = sha_new(s, p, &ctx)) != APR_SUCCESS)
            return rv;
        n = (apr_uint32_t)((blen + seg - 1) / seg);
        rec = apr_palloc(p, REC_HDR + seg);
        for (i = 0, off = 0; i < n && rv == APR_SUCCESS; i++, off += len) {
            len = blen - off < seg ? blen - off : seg;
            rec[0] = REC_SEGMENT;
            body_copy(rec + REC_HDR, pre, plen, op->val, off, len);
            seg_key(sk, id, i);
            rec_seal(sk, SEGKEY_LEN, rec, REC_HDR + len);
            rv = sha_add(s, ctx, rec + REC_HDR, len);
            if (rv == APR_SUCCESS)
                rv = db_store(db, sk, SEGKEY_LEN, rec, REC_HDR + len);
        }
        if (rv == APR_SUCCESS)
            rv = sha_end(s, ctx, sum);
        if (rv == APR_SUCCESS) {
            unsigned char *h;

            rec = apr_palloc(p, REC_HDR + HEAD_LEN);
            rec[0] = REC_HEAD;
            h = (unsigned char *)rec + REC_HDR;
            put64(h, blen);
            put32(h + 8, n);
            memcpy(h + 12, sum, SHA_LEN);
            rec_seal(dk, dklen, rec, REC_HDR + HEAD_LEN);
            rv = db_store(db, dk, dklen, rec, REC_HDR + HEAD_LEN);
        }
    }
    if (rv == APR_SUCCESS && (old == NSEG_UNKNOWN || old > n))
        rv = drop_segments(db, id, n, old);
    return rv;
}

static apr_status_t apply_delete(db_t *db, const op_t *op, apr_pool_t *p)
{
    unsigned char id[SHA_LEN];
    char *dk;
    apr_size_t dklen;
    apr_uint32_t old;
    int present;
    apr_status_t rv;

    if ((rv = make_dk(db->s, p, op->key, op->klen, &dk, &dklen)) != APR_SUCCESS
        || (rv = old_nseg(db, dk, dklen, p, &old, &present)) != APR_SUCCESS)
        return rv;
    if (!present)
        return APR_SUCCESS;
    if ((rv = db_delete(db, dk, dklen)) != APR_SUCCESS)
        return rv;
    if (old == 0)
        return APR_SUCCESS;
    if ((rv = seg_id(db->s, dk, dklen, id)) != APR_SUCCESS)
        return rv;
    return drop_segments(db, id, 0, old);
}

/* ---- staged operations -------------------------------------------------- */

static opset_t *opset_make(apr_pool_t *p)
{
    opset_t *set = apr_pcalloc(p, sizeof(*set));

    set->pool = p;
    set->index = apr_hash_make(p);
    set->list = apr_array_make(p, 8, sizeof(op_t *));
    return set;
}

static void opset_stage(opset_t *set, const void *key, apr_size_t klen,
                        const void *val, apr_size_t vlen, int del)
{
    op_t *op;

    if (set->status != APR_SUCCESS)
        return;
    if (klen > ISS_STORE_MAX_KEY) {
        set->status = ISS_STORE_ETOOBIG;
        apr_snprintf(set->why, sizeof(set->why), "key of %" APR_SIZE_T_FMT
                     " bytes is larger than the limit of %d bytes", klen,
                     ISS_STORE_MAX_KEY);
        return;
    }
    if (!del && vlen > ISS_STORE_MAX_VALUE) {
        set->status = ISS_STORE_ETOOBIG;
        apr_snprintf(set->why, sizeof(set->why), "value of %" APR_SIZE_T_FMT
                     " bytes is larger than the limit of %d bytes", vlen,
                     ISS_STORE_MAX_VALUE);
        return;
    }
    if (!key)
        key = "";
    op = apr_hash_get(set->index, key, (apr_ssize_t)klen);
    if (!op) {
        char *k = apr_palloc(set->pool, klen + 1);

        copy_bytes(k, key, klen);
        k[klen] = '\0';
        op = apr_pcalloc(set->pool, sizeof(*op));
        op->key = k;
        op->klen = klen;
        apr_hash_set(set->index, op->key, (apr_ssize_t)klen, op);
        APR_ARRAY_PUSH(set->list, op_t *) = op;
    }
    op->del = del;
    op->val = NULL;
    op->vlen = 0;
    if (!del) {
        char *v = apr_palloc(set->pool, vlen + 1);

        copy_bytes(v, val, vlen);
        v[vlen] = '\0';
        op->val = v;
        op->vlen = vlen;
    }
}

/* Size of the journal body of @a ops. */
static apr_uint64_t ops_bytes(const opset_t *ops)
{
    apr_uint64_t n = 0;
    int i;

    for (i = 0; i < ops->list->nelts; i++) {
        const op_t *op = APR_ARRAY_IDX(ops->list, i, const op_t *);

        n += 1 + 4 + op->klen + (op->del ? 0 : 4 + op->vlen);
    }
    return n;
}

static apr_status_t apply_ops(db_t *db, const opset_t *ops, apr_pool_t *p)
{
    apr_pool_t *ip;
    apr_status_t rv = apr_pool_create(&ip, p);
    int i;

    if (rv != APR_SUCCESS)
        return fail(db->s, rv, "cannot create a pool: %pm", &rv);
    for (i = 0; i < ops->list->nelts && rv == APR_SUCCESS; i++) {
        const op_t *op = APR_ARRAY_IDX(ops->list, i, const op_t *);

        apr_pool_clear(ip);
        rv = op->del ? apply_delete(db, op, ip) : apply_put(db, op, ip);
    }
    apr_pool_destroy(ip);
    return rv;
}

/* ---- the journal -------------------------------------------------------- */

static apr_status_t write_bytes(iss_store_t *s, apr_file_t *f, EVP_MD_CTX *ctx,
                                const void *d, apr_size_t n, const char *path)
{
    apr_status_t rv;

    if (n == 0)
        return APR_SUCCESS;
    if (ctx && (rv = sha_add(s, ctx, d, n)) != APR_SUCCESS)
        return rv;
    rv = apr_file_write_full(f, d, n, NULL);
    if (rv != APR_SUCCESS)
        return fail(s, rv, "writing %s failed: %pm", path, &rv);
    return APR_SUCCESS;
}

static apr_status_t close_synced(iss_store_t *s, apr_file_t *f,
                                 const char *path)
{
    apr_status_t rv = apr_file_flush(f);

    if (rv == APR_SUCCESS)
        rv = apr_file_sync(f);
    if (rv != APR_SUCCESS) {
        apr_file_close(f);
        return fail(s, rv, "writing %s failed: %pm", path, &rv);
    }
    rv = apr_file_close(f);
    if (rv != APR_SUCCESS)
        return fail(s, rv, "closing %s failed: %pm", path, &rv);
    return APR_SUCCESS;
}

/* Write the batch to JOURNAL_TMP, fsync, rename it to JOURNAL_NAME and
 * fsync the directory.  On failure no journal is left behind. */
static apr_status_t journal_write(iss_store_t *s, const opset_t *ops,
                                  apr_pool_t *p)
{
    const char *tmp = fpath(s, p, JOURNAL_TMP), *dst = fpath(s, p, JOURNAL_NAME);
    unsigned char hdr[JRN_HDR], sum[SHA_LEN], b[4];
    apr_file_t *f = NULL;
    apr_uint64_t blen = ops_bytes(ops);
    EVP_MD_CTX *ctx;
    int i, renamed = 0;
    apr_status_t rv;

    if ((rv = sha_new(s, p, &ctx)) != APR_SUCCESS)
        return rv;
    rv = apr_file_open(&f, tmp, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                       | APR_FOPEN_TRUNCATE | APR_FOPEN_BINARY
                       | APR_FOPEN_BUFFERED, FILE_PERMS, p);
    if (rv != APR_SUCCESS) {
        f = NULL;
        rv = fail(s, rv, "cannot create %s: %pm", tmp, &rv);
        goto cleanup;
    }
    memcpy(hdr, JRN_MAGIC, 8);
    put64(hdr + 8, s->gen);
    put64(hdr + 16, blen);
    if ((rv = write_bytes(s, f, ctx, hdr, JRN_HDR, tmp)) != APR_SUCCESS)
        goto cleanup;
    for (i = 0; i < ops->list->nelts; i++) {
        const op_t *op = APR_ARRAY_IDX(ops->list, i, const op_t *);
        unsigned char t = op->del ? OP_DELETE : OP_PUT;

        put32(b, (apr_uint32_t)op->klen);
        if ((rv = write_bytes(s, f, ctx, &t, 1, tmp)) != APR_SUCCESS
            || (rv = write_bytes(s, f, ctx, b, 4, tmp)) != APR_SUCCESS
            || (rv = write_bytes(s, f, ctx, op->key, op->klen, tmp))
               != APR_SUCCESS)
            goto cleanup;
        if (op->del)
            continue;
        put32(b, (apr_uint32_t)op->vlen);
        if ((rv = write_bytes(s, f, ctx, b, 4, tmp)) != APR_SUCCESS
            || (rv = write_bytes(s, f, ctx, op->val, op->vlen, tmp))
               != APR_SUCCESS)
            goto cleanup;
    }
    if ((rv = sha_end(s, ctx, sum)) != APR_SUCCESS
        || (rv = write_bytes(s, f, NULL, sum, SHA_LEN, tmp)) != APR_SUCCESS)
        goto cleanup;
    rv = close_synced(s, f, tmp);
    f = NULL;
    if (rv != APR_SUCCESS)
        goto cleanup;
    if ((rv = apr_file_rename(tmp, dst, p)) != APR_SUCCESS) {
        rv = fail(s, rv, "cannot rename %s to %s: %pm", tmp, dst, &rv);
        goto cleanup;
    }
    renamed = 1;
    rv = sync_dir(s, p);
cleanup:
    if (f)
        apr_file_close(f);
    if (rv != APR_SUCCESS) {
        apr_file_remove(tmp, p);
        if (renamed)
            apr_file_remove(dst, p);
    }
    return rv;
}

/* Read a journal.  A complete one yields *ops and *gen; an incomplete or
 * damaged one yields *why (and APR_SUCCESS).  I/O errors are returned. */
static apr_status_t journal_read(iss_store_t *s, const char *path,
                                 apr_pool_t *p, opset_t **ops,
                                 apr_uint64_t *gen, const char **why)
{
    unsigned char sum[SHA_LEN];
    const unsigned char *d, *end;
    apr_file_t *f;
    apr_finfo_t fi;
    apr_size_t size = 0;
    apr_uint64_t blen;
    unsigned char *buf = NULL;
    apr_status_t rv;

    *ops = NULL;
    *why = NULL;
    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_OS_DEFAULT, p);
    if (rv != APR_SUCCESS)
        return fail(s, rv, "cannot open %s: %pm", path, &rv);
    rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
    if (rv == APR_SUCCESS) {
        size = (apr_size_t)fi.size;
        buf = apr_palloc(p, size + 1);
        rv = size ? apr_file_read_full(f, buf, size, NULL) : APR_SUCCESS;
    }
    apr_file_close(f);
    if (rv != APR_SUCCESS)
        return fail(s, rv, "cannot read %s: %pm", path, &rv);
    if (size < JRN_HDR + SHA_LEN || memcmp(buf, JRN_MAGIC, 8) != 0) {
        *why = "it is truncated or not a journal";
        return APR_SUCCESS;
    }
    blen = get64(buf + 16);
    if (blen != (apr_uint64_t)(size - JRN_HDR - SHA_LEN)) {
        *why = "it is incomplete";
        return APR_SUCCESS;
    }
    if ((rv = sha256(s, buf, size - SHA_LEN, sum)) != APR_SUCCESS)
        return rv;
    if (memcmp(sum, buf + size - SHA_LEN, SHA_LEN) != 0) {
        *why = "its checksum does not match";
        return APR_SUCCESS;
    }
    *gen = get64(buf + 8);
    *ops = opset_make(p);
    d = buf + JRN_HDR;
    end = buf + size - SHA_LEN;
    while (d < end) {
        apr_uint32_t kl, vl = 0;
        const unsigned char *k, *v = NULL;
        unsigned char t = *d;

        if (end - d < 5 || (t != OP_PUT && t != OP_DELETE))
            break;
        kl = get32(d + 1);
        d += 5;
        if (kl > ISS_STORE_MAX_KEY || (apr_size_t)(end - d) < kl)
            break;
        k = d;
        d += kl;
        if (t == OP_PUT) {
            if (end - d < 4)
                break;
            vl = get32(d);
            d += 4;
            if (vl > ISS_STORE_MAX_VALUE || (apr_size_t)(end - d) < vl)
                break;
            v = d;
            d += vl;
        }
        opset_stage(*ops, k, kl, v, vl, t == OP_DELETE);
    }
    if (d != end || (*ops)->status != APR_SUCCESS) {
        *ops = NULL;
        *why = "its operations are malformed";
    }
    return APR_SUCCESS;
}

/* ---- writing a copy ----------------------------------------------------- */

/*
 * Berkeley DB writes most pages when the handle is closed, and
 * apr_dbm_close() returns nothing, so a write error there (disk full, I/O
 * error) would go unnoticed.  Hence: commits and rebuilds first check the
 * free space, and every copy is read back after it was closed.
 */
static apr_status_t need_space(iss_store_t *s, apr_uint64_t need)
{
    struct statvfs sv;
    apr_uint64_t avail;

    if (statvfs(s->dir, &sv) != 0)
        return APR_SUCCESS;             /* cannot tell; try */
    avail = (apr_uint64_t)sv.f_bavail * (apr_uint64_t)sv.f_frsize;
    if (avail >= need)
        return APR_SUCCESS;
    return fail(s, APR_FROM_OS_ERROR(ENOSPC), "the file system of %s has %"
                APR_UINT64_T_FMT " bytes free, this update needs about %"
                APR_UINT64_T_FMT, s->dir, avail, need);
}

/* Bytes the files of a DBM occupy on disk (sdbm files are sparse). */
static apr_uint64_t dbm_disk_size(iss_store_t *s, apr_pool_t *p,
                                  const char *path)
{
    const char *f[2] = { NULL, NULL };
    apr_uint64_t n = 0;
    apr_finfo_t fi;
    int i;

    if (apr_dbm_get_usednames_ex(p, s->type, path, &f[0], &f[1])
        != APR_SUCCESS)
        return 0;
    for (i = 0; i < 2; i++) {
        if (f[i] && apr_stat(&fi, f[i], APR_FINFO_CSIZE | APR_FINFO_SIZE, p)
                    == APR_SUCCESS)
            n += (apr_uint64_t)(fi.csize > 0 ? fi.csize : fi.size);
    }
    return n;
}

/* Every key of @a ops must read back from @a path as written. */
static apr_status_t read_back(iss_store_t *s, const char *path,
                              const opset_t *ops, apr_pool_t *p)
{
    apr_pool_t *ip;
    db_t *db;
    char kb[128];
    apr_status_t rv;
    int i;

    if ((rv = db_open(s, path, APR_DBM_READONLY, p, &db)) != APR_SUCCESS)
        return rv;
    if ((rv = apr_pool_create(&ip, p)) != APR_SUCCESS) {
        db_close(db);
        return fail(s, rv, "cannot create a pool: %pm", &rv);
    }
    for (i = 0; rv == APR_SUCCESS && i < ops->list->nelts; i++) {
        const op_t *op = APR_ARRAY_IDX(ops->list, i, const op_t *);
        apr_size_t vl = 0;
        void *v = NULL;
        apr_status_t r;

        apr_pool_clear(ip);
        r = read_entry(db, op->key, op->klen, ip, ip, &v, &vl);
        if (op->del ? r == APR_NOTFOUND
                    : r == APR_SUCCESS && vl == op->vlen
                      && (vl == 0 || memcmp(v, op->val, vl) == 0))
            continue;
        rv = fail(s, APR_FROM_OS_ERROR(EIO), "%s does not hold key %s as it "
                  "was just written (%s): the DBM lost a write it did not "
                  "report", path, show_bytes(kb, sizeof(kb), op->key, op->klen),
                  r == APR_SUCCESS ? "other value"
                  : r == APR_NOTFOUND ? "not found" : apr_pstrdup(ip, s->err));
    }
    apr_pool_destroy(ip);
    db_close(db);
    return rv;
}

/* Apply @a ops to the DBM at @a path, close, fsync and read back.
 * *touched (may be NULL) is set once the DBM was opened for writing. */
static apr_status_t apply_copy(iss_store_t *s, const char *path,
                               const opset_t *ops, apr_pool_t *p,
                               int *touched)
{
    db_t *db;
    apr_status_t rv = db_open(s, path, APR_DBM_READWRITE, p, &db);

    if (rv != APR_SUCCESS)
        return rv;
    if (touched)
        *touched = 1;
    rv = apply_ops(db, ops, p);
    db_close(db);
    if (rv == APR_SUCCESS)
        rv = sync_dbm(s, p, path);
    if (rv == APR_SUCCESS)
        rv = read_back(s, path, ops, p);
    return rv;
}

/* The DBM at @a path must hold exactly @a expect valid records. */
static apr_status_t count_copy(iss_store_t *s, const char *path,
                               apr_size_t expect, apr_pool_t *p)
{
    apr_pool_t *ip = NULL;
    db_t *db = NULL;
    iter_t *it = NULL;
    apr_size_t n = 0;
    const char *dk;
    apr_size_t dklen;
    apr_status_t rv;

    if ((rv = db_open(s, path, APR_DBM_READONLY, p, &db)) != APR_SUCCESS
        || (rv = iter_open(s, db, p, &it)) != APR_SUCCESS)
        goto cleanup;
    if ((rv = apr_pool_create(&ip, p)) != APR_SUCCESS) {
        rv = fail(s, rv, "cannot create a pool: %pm", &rv);
        goto cleanup;
    }
    for (;;) {
        char *rec;
        apr_size_t reclen;

        apr_pool_clear(ip);
        if ((rv = iter_next(it, p, &dk, &dklen)) != APR_SUCCESS || !dk
            || (rv = db_fetch(db, dk, dklen, ip, &rec, &reclen)) != APR_SUCCESS)
            break;
        if (!rec || !rec_ok(dk, dklen, rec, reclen))
            break;
        n++;
    }
    if (rv == APR_SUCCESS && (dk || n != expect))
        rv = fail(s, APR_FROM_OS_ERROR(EIO), "%s holds %" APR_SIZE_T_FMT
                  " valid records right after %" APR_SIZE_T_FMT " were "
                  "written: the DBM lost a write it did not report", path,
                  n, expect);
cleanup:
    iter_close(it);
    db_close(db);
    if (ip)
        apr_pool_destroy(ip);
    return rv;
}

/* Remove a DBM on an error path, keeping the error message. */
static void discard_dbm(iss_store_t *s, apr_pool_t *p, const char *path)
{
    char keep[sizeof(s->err)];

    apr_cpystrn(keep, s->err, sizeof(keep));
    (void)remove_dbm(s, p, path);
    apr_cpystrn(s->err, keep, sizeof(s->err));
}

/* ---- the meta file ------------------------------------------------------ */

typedef struct {
    const char *type;
    const char *id;
    apr_uint64_t gen;
} meta_t;

/* Next line of @a *text (without its newline) or NULL. */
static char *next_line(char **text)
{
    char *line = *text, *nl;

    if (!line || !*line)
        return NULL;
    nl = strchr(line, '\n');
    if (!nl)
        return NULL;
    *nl = '\0';
    *text = nl + 1;
    return line;
}

static const char *field(char *line, const char *name)
{
    apr_size_t n = strlen(name);

    if (!line || strncmp(line, name, n) != 0 || line[n] != ' ' || !line[n + 1])
        return NULL;
    return line + n + 1;
}

static int valid_token(const char *t, apr_size_t max, const char *chars)
{
    apr_size_t n = strlen(t);

    return n > 0 && n <= max && strspn(t, chars) == n;
}

static apr_status_t meta_read(iss_store_t *s, apr_pool_t *p, meta_t *m,
                              int *missing)
{
    const char *path = fpath(s, p, META_NAME), *v;
    char *buf, *text, *line, *last;
    apr_size_t n = 0;
    apr_file_t *f;
    apr_uint32_t crc;
    apr_int64_t ver;
    apr_status_t rv;

    *missing = 0;
    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_OS_DEFAULT, p);
    if (APR_STATUS_IS_ENOENT(rv)) {
        *missing = 1;
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS)
        return fail(s, rv, "cannot open %s: %pm", path, &rv);
    buf = apr_palloc(p, META_MAX + 2);
    rv = apr_file_read_full(f, buf, META_MAX + 1, &n);
    apr_file_close(f);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_EOF(rv))
        return fail(s, rv, "cannot read %s: %pm", path, &rv);
    if (n > META_MAX)
        return damaged(s, "%s is garbled: too large for a meta file", path);
    buf[n] = '\0';
    if (strlen(buf) != n || n == 0 || buf[n - 1] != '\n')
        return damaged(s, "%s is garbled: not an iss-store meta file", path);

    text = apr_pstrdup(p, buf);
    line = next_line(&text);
    v = field(line, META_MAGIC);
    if (!v || !valid_token(v, 9, "0123456789"))
        return damaged(s, "%s is garbled: not an iss-store meta file", path);
    ver = apr_atoi64(v);
    if (ver != FORMAT_VERSION)
        return damaged(s, "%s has format version %s, but this mod_iss reads "
                       "version %d only", path, v, FORMAT_VERSION);

    /* The last line is "crc32 XXXXXXXX" over everything before it. */
    buf[n - 1] = '\0';
    last = strrchr(buf, '\n');
    v = last ? field(last + 1, "crc32") : NULL;
    if (!v || !valid_token(v, 8, "0123456789abcdef") || strlen(v) != 8)
        return damaged(s, "%s is garbled: no checksum line", path);
    crc = (apr_uint32_t)crc_add(crc32(0L, Z_NULL, 0), buf,
                                (apr_size_t)(last + 1 - buf));
    if (crc != (apr_uint32_t)apr_strtoi64(v, NULL, 16))
        return damaged(s, "%s is garbled: checksum mismatch", path);

    text = apr_pstrndup(p, buf, (apr_size_t)(last + 1 - buf));
    (void)next_line(&text);
    m->type = field(next_line(&text), "dbm-type");
    m->id = field(next_line(&text), "store-id");
    v = field(next_line(&text), "generation");
    if (!m->type || !valid_token(m->type, 31, "abcdefghijklmnopqrstuvwxyz0123456789")
        || !m->id || !valid_token(m->id, 36, "0123456789abcdef-")
        || !v || !valid_token(v, 19, "0123456789") || *text)
        return damaged(s, "%s is garbled: unexpected contents", path);
    m->gen = (apr_uint64_t)apr_atoi64(v);
    if (m->gen == 0)
        return damaged(s, "%s is garbled: generation 0", path);
    return APR_SUCCESS;
}

static apr_status_t meta_write(iss_store_t *s, apr_pool_t *p, apr_uint64_t gen)
{
    const char *tmp = fpath(s, p, META_TMP), *dst = fpath(s, p, META_NAME);
    char *text, *all;
    apr_file_t *f;
    apr_status_t rv;

    text = apr_psprintf(p, META_MAGIC " %d\ndbm-type %s\nstore-id %s\n"
                        "generation %" APR_UINT64_T_FMT "\n",
                        FORMAT_VERSION, s->type, s->id, gen);
    all = apr_psprintf(p, "%scrc32 %08x\n", text,
                       (unsigned)crc_add(crc32(0L, Z_NULL, 0), text,
                                         strlen(text)));
    rv = apr_file_open(&f, tmp, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                       | APR_FOPEN_TRUNCATE | APR_FOPEN_BINARY, FILE_PERMS, p);
    if (rv != APR_SUCCESS)
        return fail(s, rv, "cannot create %s: %pm", tmp, &rv);
    rv = apr_file_write_full(f, all, strlen(all), NULL);
    if (rv != APR_SUCCESS) {
        apr_file_close(f);
        rv = fail(s, rv, "writing %s failed: %pm", tmp, &rv);
    }
    else {
        rv = close_synced(s, f, tmp);
    }
    if (rv == APR_SUCCESS && (rv = apr_file_rename(tmp, dst, p)) != APR_SUCCESS)
        rv = fail(s, rv, "cannot rename %s to %s: %pm", tmp, dst, &rv);
    if (rv != APR_SUCCESS) {
        apr_file_remove(tmp, p);
        return rv;
    }
    return sync_dir(s, p);
}

/* ---- generations, recovery ---------------------------------------------- */

/* Generation number in a DBM file name, or 0 if @a name is none. */
static apr_uint64_t gen_of(const char *name)
{
    apr_size_t n = strlen(GEN_PREFIX);
    apr_uint64_t g = 0;
    const char *d;

    if (strncmp(name, GEN_PREFIX, n) != 0)
        return 0;
    for (d = name + n; *d >= '0' && *d <= '9'; d++) {
        if (g > (APR_UINT64_MAX - 9) / 10)
            return 0;
        g = g * 10 + (apr_uint64_t)(*d - '0');
    }
    if (d == name + n || (*d != '\0' && *d != '.'))
        return 0;
    return g;
}

/* Names in the store directory that start with "iss-store." or are
 * Berkeley DB's temporary names for them. */
static apr_status_t list_dir(iss_store_t *s, apr_pool_t *p,
                             apr_array_header_t **names)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_status_t rv = apr_dir_open(&d, s->dir, p);

    if (rv != APR_SUCCESS)
        return fail(s, rv, "cannot read directory %s: %pm", s->dir, &rv);
    *names = apr_array_make(p, 8, sizeof(const char *));
    while ((rv = apr_dir_read(&fi, APR_FINFO_NAME, d)) == APR_SUCCESS
           || rv == APR_INCOMPLETE) {
        if (fi.name && (strncmp(fi.name, "iss-store.", 10) == 0
                        || strncmp(fi.name, BDB_TMP_PREFIX "iss-store.",
                                   strlen(BDB_TMP_PREFIX) + 10) == 0))
            APR_ARRAY_PUSH(*names, const char *) = apr_pstrdup(p, fi.name);
    }
    apr_dir_close(d);
    if (!APR_STATUS_IS_ENOENT(rv))
        return fail(s, rv, "cannot read directory %s: %pm", s->dir, &rv);
    return APR_SUCCESS;
}

static int is_scratch_name(const char *name)
{
    return strcmp(name, META_TMP) == 0 || strcmp(name, JOURNAL_TMP) == 0
           || strncmp(name, PROBE_NAME, strlen(PROBE_NAME)) == 0
           || strncmp(name, BDB_TMP_PREFIX, strlen(BDB_TMP_PREFIX)) == 0;
}

/* Remove files of generations other than the current one and scratch
 * files left by dead writers.  Called under the lock with no journal. */
static apr_status_t sweep(iss_store_t *s, apr_pool_t *p)
{
    apr_array_header_t *names;
    apr_status_t rv = list_dir(s, p, &names);
    int i, removed = 0;

    for (i = 0; rv == APR_SUCCESS && i < names->nelts; i++) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);
        apr_uint64_t g = gen_of(name);

        if ((g && g != s->gen) || is_scratch_name(name)) {
            rv = remove_file(s, fpath(s, p, name), p);
            removed++;
        }
    }
    if (removed && rv == APR_SUCCESS)
        note(s, LOG_INFO, APR_SUCCESS, "state store in %s: removed %d "
             "leftover files of old generations or dead writers", s->dir,
             removed);
    return rv;
}

/* Build generation N+1 from the primary or the mirror of generation N,
 * apply @a ops (may be NULL) and make N+1 current. */
static apr_status_t rebuild(iss_store_t *s, int from_mirror,
                            const opset_t *ops, apr_pool_t *p,
                            const char *why)
{
    apr_uint64_t ng = s->gen + 1, og = s->gen;
    const char *src_path = gen_path(s, p, og, from_mirror);
    const char *dst0 = gen_path(s, p, ng, 0), *dst1 = gen_path(s, p, ng, 1);
    db_t *src = NULL, *d0 = NULL, *d1 = NULL;
    apr_size_t copied = 0, dropped = 0;
    apr_pool_t *ip = NULL;
    iter_t *it = NULL;
    const char *dk;
    apr_size_t dklen;
    char kb[128];
    apr_status_t rv;

    if ((rv = remove_dbm(s, p, dst0)) != APR_SUCCESS
        || (rv = remove_dbm(s, p, dst1)) != APR_SUCCESS
        || (rv = need_space(s, 2 * dbm_disk_size(s, p, src_path)
                               + (ops ? 4 * ops_bytes(ops) : 0)
                               + 1024 * 1024)) != APR_SUCCESS
        || (rv = db_open(s, src_path, APR_DBM_READONLY, p, &src)) != APR_SUCCESS
        || (rv = iter_open(s, src, p, &it)) != APR_SUCCESS
        || (rv = db_open(s, dst0, APR_DBM_RWCREATE, p, &d0)) != APR_SUCCESS
        || (rv = db_open(s, dst1, APR_DBM_RWCREATE, p, &d1)) != APR_SUCCESS)
        goto cleanup;
    if ((rv = apr_pool_create(&ip, p)) != APR_SUCCESS) {
        rv = fail(s, rv, "cannot create a pool: %pm", &rv);
        goto cleanup;
    }
    for (;;) {
        char *rec;
        apr_size_t reclen;

        apr_pool_clear(ip);
        if ((rv = iter_next(it, p, &dk, &dklen)) != APR_SUCCESS || !dk)
            break;
        if ((rv = db_fetch(src, dk, dklen, ip, &rec, &reclen)) != APR_SUCCESS)
            break;
        if (!rec || !rec_ok(dk, dklen, rec, reclen)) {
            dropped++;
            note(s, LOG_ERR, ISS_STORE_EDAMAGED, "state store recovery: "
                 "record %s in %s %s; it was dropped",
                 show_dk(kb, sizeof(kb), dk, dklen), src_path,
                 rec ? "fails its checksum" : "cannot be fetched by its key");
            continue;
        }
        if ((rv = db_store(d0, dk, dklen, rec, reclen)) != APR_SUCCESS
            || (rv = db_store(d1, dk, dklen, rec, reclen)) != APR_SUCCESS)
            break;
        copied++;
    }
    iter_close(it);
    it = NULL;
    db_close(src);
    db_close(d0);
    db_close(d1);
    src = d0 = d1 = NULL;
    if (rv != APR_SUCCESS
        || (rv = sync_dbm(s, p, dst0)) != APR_SUCCESS
        || (rv = sync_dbm(s, p, dst1)) != APR_SUCCESS
        || (rv = count_copy(s, dst0, copied, p)) != APR_SUCCESS
        || (rv = count_copy(s, dst1, copied, p)) != APR_SUCCESS)
        goto cleanup;
    if (ops && ((rv = apply_copy(s, dst0, ops, p, NULL)) != APR_SUCCESS
                || (rv = apply_copy(s, dst1, ops, p, NULL)) != APR_SUCCESS))
        goto cleanup;
    if ((rv = meta_write(s, p, ng)) != APR_SUCCESS)
        goto cleanup;

    /* Committed: generation N+1 is current. */
    s->gen = ng;
    if ((rv = remove_dbm(s, p, gen_path(s, p, og, 0))) != APR_SUCCESS
        || (rv = remove_dbm(s, p, gen_path(s, p, og, 1))) != APR_SUCCESS
        || (rv = remove_file(s, fpath(s, p, JOURNAL_NAME), p)) != APR_SUCCESS
        || (rv = remove_file(s, fpath(s, p, JOURNAL_MIRROR), p)) != APR_SUCCESS
        || (rv = sync_dir(s, p)) != APR_SUCCESS)
        return rv;
    note(s, dropped ? LOG_ERR : LOG_WARNING, APR_SUCCESS,
         "state store in %s recovered: %s; rebuilt generation %"
         APR_UINT64_T_FMT " from %s (%" APR_SIZE_T_FMT " records copied, %"
         APR_SIZE_T_FMT " damaged records dropped)", s->dir, why, ng,
         src_path, copied, dropped);
    return APR_SUCCESS;

cleanup:
    iter_close(it);
    db_close(src);
    db_close(d0);
    db_close(d1);
    if (ip)
        apr_pool_destroy(ip);
    discard_dbm(s, p, dst0);
    discard_dbm(s, p, dst1);
    return rv;
}

/* Finish or undo the batch of a writer that died.  Under the lock. */
static apr_status_t recover(iss_store_t *s, apr_pool_t *p)
{
    const char *jp = fpath(s, p, JOURNAL_NAME), *mp = fpath(s, p, JOURNAL_MIRROR);
    const char *tp = fpath(s, p, JOURNAL_TMP), *path, *why;
    int has_j = file_exists(jp, p), has_m = file_exists(mp, p);
    apr_uint64_t jgen = 0;
    opset_t *ops;
    apr_status_t rv;

    if (file_exists(tp, p)) {
        if ((rv = remove_file(s, tp, p)) != APR_SUCCESS)
            return rv;
        note(s, LOG_WARNING, APR_SUCCESS, "state store in %s: removed %s "
             "left by a writer that died before committing; its batch was "
             "not applied", s->dir, tp);
    }
    if (!has_j && !has_m)
        return APR_SUCCESS;
    if (has_j && has_m)
        return damaged(s, "both %s and %s exist: the state store cannot tell "
                       "which copy is intact", jp, mp);
    path = has_j ? jp : mp;
    if ((rv = journal_read(s, path, p, &ops, &jgen, &why)) != APR_SUCCESS)
        return rv;
    if (!why && jgen != s->gen) {
        /* A rebuild that applied it committed but died before the unlink. */
        if ((rv = remove_file(s, path, p)) != APR_SUCCESS
            || (rv = sweep(s, p)) != APR_SUCCESS)
            return rv;
        note(s, LOG_WARNING, APR_SUCCESS, "state store in %s: removed %s of "
             "generation %" APR_UINT64_T_FMT ", already applied to generation %"
             APR_UINT64_T_FMT, s->dir, path, jgen, s->gen);
        return APR_SUCCESS;
    }
    if (has_m)
        rv = rebuild(s, 0, NULL, p, "a writer died while updating the mirror "
                     "copy, after its batch was complete in the primary");
    else if (why)
        rv = rebuild(s, 1, NULL, p, apr_psprintf(p, "a writer died while "
                     "applying a batch and %s cannot be used (%s), so the "
                     "batch was dropped", jp, why));
    else
        rv = rebuild(s, 1, ops, p, apr_psprintf(p, "a writer died while "
                     "applying a batch of %d changes; the batch was applied "
                     "again", ops->list->nelts));
    if (rv == APR_SUCCESS)
        rv = sweep(s, p);
    return rv;
}

/* ---- opening ------------------------------------------------------------ */

static apr_status_t store_cleanup(void *data)
{
    iss_store_t *s = data;

    s->closed = 1;
    return APR_SUCCESS;
}

/* The store's lock: the caller's global mutex (httpd's processes and
 * threads), then an exclusive lock on iss-store.lock, so that a process
 * without that mutex (the iss-state tool) is serialised with httpd too. */
static apr_status_t lock_store(iss_store_t *s)
{
    const char *path;
    apr_status_t rv;

    if (s->closed)
        return APR_EINVAL;              /* keep the reason of a failed open */
    if (s->mutex && (rv = apr_global_mutex_lock(s->mutex)) != APR_SUCCESS)
        return fail(s, rv, "cannot lock the state store mutex: %pm", &rv);
    path = apr_pstrcat(s->lock_pool, s->dir, "/" LOCK_NAME, NULL);
    rv = apr_file_open(&s->lock_file, path, APR_FOPEN_WRITE | APR_FOPEN_CREATE,
                       FILE_PERMS, s->lock_pool);
    if (rv == APR_SUCCESS
        && (rv = apr_file_lock(s->lock_file, APR_FLOCK_EXCLUSIVE))
           != APR_SUCCESS) {
        apr_file_close(s->lock_file);
    }
    if (rv != APR_SUCCESS) {
        s->lock_file = NULL;
        apr_pool_clear(s->lock_pool);
        if (s->mutex)
            apr_global_mutex_unlock(s->mutex);
        return fail(s, rv, "cannot lock %s: %pm", path, &rv);
    }
    return APR_SUCCESS;
}

static void unlock_store(iss_store_t *s)
{
    apr_status_t rv;

    if (s->lock_file) {
        apr_file_unlock(s->lock_file);
        apr_file_close(s->lock_file);
        s->lock_file = NULL;
    }
    apr_pool_clear(s->lock_pool);
    if (!s->mutex)
        return;
    rv = apr_global_mutex_unlock(s->mutex);
    if (rv != APR_SUCCESS)
        note(s, LOG_ERR, rv, "cannot unlock the state store mutex");
}

static const char *type_shown(iss_store_t *s, apr_pool_t *p)
{
    if (strcasecmp(s->type_asked, s->type) == 0)
        return s->type_asked;
    return apr_psprintf(p, "%s (%s)", s->type_asked, s->type);
}

/* Resolve the configured type name; "default" is found by a probe, so
 * that the meta file always names the real format. */
static apr_status_t resolve_type(iss_store_t *s, apr_pool_t *p)
{
    static const char *const known[] = { "sdbm", "gdbm", "db" };
    const char *f1, *f2, *probe;
    char *t = apr_pstrdup(s->pool, s->type_asked), *c;
    apr_dbm_t *d;
    apr_status_t rv;
    apr_size_t i;

    for (c = t; *c; c++)
        *c = (char)apr_tolower(*c);
    rv = apr_dbm_get_usednames_ex(p, t, "x", &f1, &f2);
    if (rv != APR_SUCCESS)
        return fail(s, rv, "DBM type \"%s\" is not available in this "
                    "APR-util: %pm", s->type_asked, &rv);
    s->type = t;
    if (strcmp(t, "default") != 0)
        return APR_SUCCESS;
    probe = fpath(s, p, PROBE_NAME);
    apr_file_remove(fpath(s, p, BDB_TMP_PREFIX PROBE_NAME), p);
    rv = apr_dbm_open_ex(&d, "default", probe, APR_DBM_RWCREATE, FILE_PERMS, p);
    if (rv != APR_SUCCESS)
        return fail(s, dbm_status(s, rv), "cannot create %s to find out what "
                    "the default DBM type is", probe);
    apr_dbm_close(d);
    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (apr_dbm_get_usednames_ex(p, known[i], probe, &f1, &f2)
                != APR_SUCCESS
            || apr_dbm_open_ex(&d, known[i], probe, APR_DBM_READONLY,
                               FILE_PERMS, p) != APR_SUCCESS)
            continue;
        apr_dbm_close(d);
        s->type = known[i];
        break;
    }
    for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (apr_dbm_get_usednames_ex(p, known[i], probe, &f1, &f2)
            == APR_SUCCESS) {
            apr_file_remove(f1, p);
            if (f2)
                apr_file_remove(f2, p);
        }
    }
    return APR_SUCCESS;
}

static apr_status_t check_meta(iss_store_t *s, apr_pool_t *p, const meta_t *m)
{
    if (strcmp(m->type, s->type) != 0)
        return damaged(s, "state in %s was written with DBM type %s, "
                       "ISSDBMType says %s", s->dir, m->type, type_shown(s, p));
    return APR_SUCCESS;
}

/* Re-read the meta file and recover; start of every operation. */
static apr_status_t refresh(iss_store_t *s, apr_pool_t *p)
{
    meta_t m;
    int missing;
    apr_status_t rv = meta_read(s, p, &m, &missing);

    if (rv != APR_SUCCESS)
        return rv;
    if (missing)
        return damaged(s, "%s has disappeared: the state store was removed "
                       "while in use", fpath(s, p, META_NAME));
    if ((rv = check_meta(s, p, &m)) != APR_SUCCESS)
        return rv;
    if (strcmp(m.id, s->id) != 0) {
        note(s, LOG_WARNING, APR_SUCCESS, "state store in %s was re-created "
             "(id %s, was %s)", s->dir, m.id, s->id);
        apr_cpystrn(s->id, m.id, sizeof(s->id));
    }
    s->gen = m.gen;
    return recover(s, p);
}

static apr_status_t new_id(iss_store_t *s)
{
    unsigned char r[16];
    char h[33];
    apr_status_t rv = apr_generate_random_bytes(r, sizeof(r));

    if (rv != APR_SUCCESS)
        return fail(s, rv, "cannot generate a store id: %pm", &rv);
    hex_of(h, r, sizeof(r));
    apr_snprintf(s->id, sizeof(s->id), "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8,
                 h + 12, h + 16, h + 20);
    return APR_SUCCESS;
}

/* No meta file: refuse if DBM files with records or a journal exist;
 * remove the empty files of an interrupted creation; create the store. */
static apr_status_t create(iss_store_t *s, apr_pool_t *p)
{
    apr_array_header_t *names, *gens;
    apr_status_t rv = list_dir(s, p, &names);
    int i, m;

    if (rv != APR_SUCCESS)
        return rv;
    gens = apr_array_make(p, 2, sizeof(apr_uint64_t));
    for (i = 0; i < names->nelts; i++) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);
        apr_uint64_t g = gen_of(name);

        if (strcmp(name, JOURNAL_NAME) == 0
            || strcmp(name, JOURNAL_MIRROR) == 0)
            return damaged(s, "%s holds %s but no %s: refusing to start a new "
                           "state store over it", s->dir, name, META_NAME);
        if (g)
            APR_ARRAY_PUSH(gens, apr_uint64_t) = g;
    }
    for (i = 0; i < gens->nelts; i++) {
        for (m = 0; m < 2; m++) {
            const char *path = gen_path(s, p, APR_ARRAY_IDX(gens, i,
                                                            apr_uint64_t), m);
            const char *dk = NULL;
            apr_size_t dklen;
            iter_t *it = NULL;
            db_t *db = NULL;

            if (!dbm_exists(s, p, path))
                continue;
            rv = db_open(s, path, APR_DBM_READONLY, p, &db);
            if (rv == APR_SUCCESS)
                rv = iter_open(s, db, p, &it);
            if (rv == APR_SUCCESS)
                rv = iter_next(it, p, &dk, &dklen);
            iter_close(it);
            db_close(db);
            if (rv != APR_SUCCESS) {
                const char *why = apr_pstrdup(p, s->err);

                return damaged(s, "%s holds DBM file %s but no %s, and it "
                               "cannot be read as DBM type %s (%s): refusing "
                               "to start a new state store over it", s->dir,
                               path, META_NAME, type_shown(s, p), why);
            }
            if (dk)
                return damaged(s, "%s holds DBM file %s with records but no "
                               "%s: refusing to start a new state store over "
                               "it", s->dir, path, META_NAME);
            note(s, LOG_WARNING, APR_SUCCESS, "state store in %s: removing "
                 "empty %s left by an interrupted creation", s->dir, path);
            if ((rv = remove_dbm(s, p, path)) != APR_SUCCESS)
                return rv;
        }
    }
    for (i = 0; i < names->nelts; i++) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);

        if (is_scratch_name(name)
            && (rv = remove_file(s, fpath(s, p, name), p)) != APR_SUCCESS)
            return rv;
    }

    if ((rv = new_id(s)) != APR_SUCCESS)
        return rv;
    s->gen = 1;
    for (m = 0; m < 2; m++) {
        const char *path = gen_path(s, p, s->gen, m);
        db_t *db;

        if ((rv = db_open(s, path, APR_DBM_RWCREATE, p, &db)) != APR_SUCCESS)
            return rv;
        db_close(db);
        if ((rv = sync_dbm(s, p, path)) != APR_SUCCESS)
            return rv;
    }
    if ((rv = meta_write(s, p, s->gen)) != APR_SUCCESS)
        return rv;
    note(s, LOG_INFO, APR_SUCCESS, "created a new state store in %s (DBM "
         "type %s, id %s)", s->dir, s->type, s->id);
    return APR_SUCCESS;
}

apr_status_t iss_store_open(iss_store_t **store, const char *dir,
                            const char *dbm_type, apr_global_mutex_t *mutex,
                            iss_store_log_fn *log, void *log_baton,
                            apr_pool_t *pool)
{
    iss_store_t *s;
    apr_pool_t *p = NULL;
    apr_finfo_t fi;
    meta_t m;
    int missing, locked = 0, i;
    apr_status_t rv;

    if (!store || !dir || !pool)
        return APR_EINVAL;
    s = apr_pcalloc(pool, sizeof(*s));
    s->pool = pool;
    s->dir = apr_pstrdup(pool, dir);
    s->type_asked = dbm_type ? apr_pstrdup(pool, dbm_type) : NULL;
    s->type = s->type_asked;
    s->mutex = mutex;
    s->log = log;
    s->log_baton = log_baton;
    apr_cpystrn(s->err, "no error", sizeof(s->err));
    apr_pool_cleanup_register(pool, s, store_cleanup, apr_pool_cleanup_null);
    *store = s;

    if ((rv = apr_pool_create(&p, pool)) != APR_SUCCESS
        || (rv = apr_pool_create(&s->lock_pool, pool)) != APR_SUCCESS) {
        p = NULL;
        rv = fail(s, rv, "cannot create a pool: %pm", &rv);
        goto cleanup;
    }
    rv = apr_stat(&fi, s->dir, APR_FINFO_TYPE, p);
    if (rv != APR_SUCCESS && rv != APR_INCOMPLETE) {
        rv = fail(s, rv, "state store directory %s: %pm", s->dir, &rv);
        goto cleanup;
    }
    if (fi.filetype != APR_DIR) {
        rv = fail(s, APR_ENOTDIR, "state store directory %s is not a "
                  "directory", s->dir);
        goto cleanup;
    }
    if ((rv = lock_store(s)) != APR_SUCCESS)
        goto cleanup;
    locked = 1;
    if (s->type_asked == NULL) {
        /* An existing store, whatever its type (tools). */
        if ((rv = meta_read(s, p, &m, &missing)) != APR_SUCCESS)
            goto cleanup;
        if (missing) {
            rv = fail(s, APR_ENOENT, "there is no state store in %s", s->dir);
            goto cleanup;
        }
        s->type_asked = s->type = apr_pstrdup(pool, m.type);
    }
    if ((rv = resolve_type(s, p)) != APR_SUCCESS)
        goto cleanup;
    s->pair_max = strcmp(s->type, "sdbm") == 0 ? SDBM_PAIR_MAX : BIG_PAIR_MAX;
    if ((rv = meta_read(s, p, &m, &missing)) != APR_SUCCESS)
        goto cleanup;
    if (missing) {
        rv = create(s, p);
        goto cleanup;
    }
    if ((rv = check_meta(s, p, &m)) != APR_SUCCESS)
        goto cleanup;
    apr_cpystrn(s->id, m.id, sizeof(s->id));
    s->gen = m.gen;
    if ((rv = recover(s, p)) != APR_SUCCESS
        || (rv = sweep(s, p)) != APR_SUCCESS)
        goto cleanup;
    for (i = 0; i < 2; i++) {
        db_t *db;

        rv = db_open(s, gen_path(s, p, s->gen, i), APR_DBM_READONLY, p, &db);
        if (rv != APR_SUCCESS)
            goto cleanup;
        db_close(db);
    }
cleanup:
    if (locked)
        unlock_store(s);
    if (p)
        apr_pool_destroy(p);
    if (rv != APR_SUCCESS) {
        s->closed = 1;                  /* only good for last_error */
        if (rv != ISS_STORE_EDAMAGED)
            note(s, LOG_ERR, rv, "cannot open the state store: %s", s->err);
    }
    return rv;
}

const char *iss_store_last_error(iss_store_t *store)
{
    return store ? store->err : "no state store handle";
}

const char *iss_store_id(iss_store_t *store)
{
    return store->id;
}

const char *iss_store_dbm_type(iss_store_t *store)
{
    return store->type;
}

apr_status_t iss_store_close(iss_store_t *store)
{
    if (!store)
        return APR_EINVAL;
    return apr_pool_cleanup_run(store->pool, store, store_cleanup);
}

/* ---- operations --------------------------------------------------------- */

/* Lock, create the operation's pool (child of @a parent, or of the store's
 * pool, which is only touched under the lock) and refresh. */
static apr_status_t op_begin(iss_store_t *s, apr_pool_t *parent,
                             apr_pool_t **p)
{
    apr_status_t rv;

    *p = NULL;
    if ((rv = lock_store(s)) != APR_SUCCESS)
        return rv;
    rv = apr_pool_create(p, parent ? parent : s->pool);
    if (rv != APR_SUCCESS) {
        *p = NULL;
        unlock_store(s);
        return fail(s, rv, "cannot create a pool: %pm", &rv);
    }
    return refresh(s, *p);
}

static void op_end(iss_store_t *s, apr_pool_t *p)
{
    if (p) {
        apr_pool_destroy(p);
        unlock_store(s);
    }
}

apr_status_t iss_store_get(iss_store_t *store, const void *key,
                           apr_size_t klen, void **val, apr_size_t *vlen,
                           apr_pool_t *pool)
{
    apr_pool_t *p;
    db_t *db = NULL;
    char kb[128];
    apr_status_t rv;

    if (!store || !val || !vlen || !pool || (!key && klen))
        return APR_EINVAL;
    if ((rv = op_begin(store, pool, &p)) != APR_SUCCESS)
        goto cleanup;
    if (klen > ISS_STORE_MAX_KEY) {
        rv = fail(store, ISS_STORE_ETOOBIG, "key of %" APR_SIZE_T_FMT " bytes "
                  "is larger than the limit of %d bytes", klen,
                  ISS_STORE_MAX_KEY);
        goto cleanup;
    }
    rv = db_open(store, gen_path(store, p, store->gen, 0), APR_DBM_READONLY,
                 p, &db);
    if (rv == APR_SUCCESS)
        rv = read_entry(db, key ? key : "", klen, pool, p, val, vlen);
    if (rv == APR_NOTFOUND)
        fail(store, rv, "key %s not found",
             show_bytes(kb, sizeof(kb), key ? key : "", klen));
cleanup:
    db_close(db);
    op_end(store, p);
    return rv;
}

/* A commit failed before its commit point: make sure nothing of it stays. */
static apr_status_t undo(iss_store_t *s, apr_pool_t *p, apr_status_t rv,
                         int touched)
{
    const char *jp = fpath(s, p, JOURNAL_NAME);
    char why[sizeof(s->err)];
    apr_file_t *f;
    apr_status_t rv2;

    apr_cpystrn(why, s->err, sizeof(why));
    if (!touched && apr_file_remove(jp, p) == APR_SUCCESS)
        return fail(s, rv, "%s; nothing was written", why);
    /* The primary may be half-updated.  An invalid journal makes recovery
     * restore the state before the batch from the mirror. */
    rv2 = apr_file_open(&f, jp, APR_FOPEN_WRITE | APR_FOPEN_TRUNCATE,
                        APR_OS_DEFAULT, p);
    if (rv2 == APR_SUCCESS)
        rv2 = close_synced(s, f, jp);
    if (rv2 != APR_SUCCESS)
        return fail(s, rv, "%s; the batch may still be applied by the "
                    "recovery of a later operation", why);
    rv2 = recover(s, p);
    if (rv2 != APR_SUCCESS)
        note(s, LOG_ERR, rv2, "state store in %s: undoing a failed batch "
             "failed too (%s); the next operation will retry", s->dir, s->err);
    return fail(s, rv, "%s; nothing was written", why);
}

/* Journal, primary, mirror; see the top of this file.  The commit point is
 * the rename of the journal to JOURNAL_MIRROR: a failure before it leaves
 * nothing of the batch; after it the batch is kept and APR_SUCCESS is
 * returned even if the mirror could not be updated (recovery repairs it). */
static apr_status_t commit(iss_store_t *s, const opset_t *ops, apr_pool_t *p)
{
    const char *jp = fpath(s, p, JOURNAL_NAME), *mp = fpath(s, p, JOURNAL_MIRROR);
    const char *primary = gen_path(s, p, s->gen, 0);
    const char *mirror = gen_path(s, p, s->gen, 1);
    char why[sizeof(s->err)];
    apr_status_t rv, rv2;
    int touched = 0;

    if (ops->list->nelts == 0)
        return APR_SUCCESS;
    if ((rv = need_space(s, 4 * ops_bytes(ops) + 1024 * 1024)) != APR_SUCCESS
        || (rv = journal_write(s, ops, p)) != APR_SUCCESS)
        return rv;                      /* nothing happened */

    rv = apply_copy(s, primary, ops, p, &touched);
    if (rv == APR_SUCCESS && (rv = apr_file_rename(jp, mp, p)) != APR_SUCCESS)
        rv = fail(s, rv, "cannot rename %s to %s: %pm", jp, mp, &rv);
    if (rv != APR_SUCCESS)
        return undo(s, p, rv, touched);

    /* Committed. */
    rv = sync_dir(s, p);
    if (rv == APR_SUCCESS)
        rv = apply_copy(s, mirror, ops, p, NULL);
    if (rv == APR_SUCCESS)
        rv = remove_file(s, mp, p);
    if (rv != APR_SUCCESS) {
        apr_cpystrn(why, s->err, sizeof(why));
        rv2 = recover(s, p);
        note(s, LOG_ERR, rv, "state store in %s: a batch was committed, but "
             "updating the mirror copy failed (%s); %s", s->dir, why,
             rv2 == APR_SUCCESS ? "recovery repaired it"
                                : "the next operation will repair it");
    }
    return APR_SUCCESS;
}

static apr_status_t run_txn(iss_store_t *s, iss_store_txn_fn *fn, void *baton,
                            opset_t *preset, apr_pool_t *pool)
{
    struct iss_store_txn_t txn;
    apr_pool_t *p;
    apr_status_t rv;

    memset(&txn, 0, sizeof(txn));
    if ((rv = op_begin(s, pool, &p)) != APR_SUCCESS)
        goto cleanup;
    txn.s = s;
    txn.pool = p;
    txn.ops = preset ? preset : opset_make(p);
    if (fn) {
        rv = fn(baton, &txn);
        db_close(txn.db);
        txn.db = NULL;
        if (rv != APR_SUCCESS) {
            if (!txn.failed)
                fail(s, rv, "the transaction was aborted (%pm); nothing was "
                     "written", &rv);
            goto cleanup;
        }
    }
    if (txn.ops->status != APR_SUCCESS) {
        rv = fail(s, txn.ops->status, "%s; nothing was written",
                  txn.ops->why);
        goto cleanup;
    }
    rv = commit(s, txn.ops, p);
cleanup:
    op_end(s, p);
    return rv;
}

apr_status_t iss_store_txn(iss_store_t *store, iss_store_txn_fn *fn,
                           void *baton, apr_pool_t *pool)
{
    if (!store || !fn)
        return APR_EINVAL;
    return run_txn(store, fn, baton, NULL, pool);
}

apr_status_t iss_store_txn_get(iss_store_txn_t *txn, const void *key,
                               apr_size_t klen, void **val, apr_size_t *vlen,
                               apr_pool_t *pool)
{
    iss_store_t *s = txn->s;
    const op_t *op;
    apr_status_t rv;

    if (!key)
        key = "";
    if (klen > ISS_STORE_MAX_KEY) {
        txn->failed = 1;
        return fail(s, ISS_STORE_ETOOBIG, "key of %" APR_SIZE_T_FMT " bytes "
                    "is larger than the limit of %d bytes", klen,
                    ISS_STORE_MAX_KEY);
    }
    op = apr_hash_get(txn->ops->index, key, (apr_ssize_t)klen);
    if (op) {
        char *v;

        if (op->del)
            return APR_NOTFOUND;
        v = apr_palloc(pool, op->vlen + 1);
        copy_bytes(v, op->val, op->vlen + 1);
        *val = v;
        *vlen = op->vlen;
        return APR_SUCCESS;
    }
    if (!txn->db) {
        rv = db_open(s, gen_path(s, txn->pool, s->gen, 0), APR_DBM_READONLY,
                     txn->pool, &txn->db);
        if (rv != APR_SUCCESS) {
            txn->failed = 1;
            return rv;
        }
    }
    rv = read_entry(txn->db, key, klen, pool, pool, val, vlen);
    if (rv != APR_SUCCESS && rv != APR_NOTFOUND)
        txn->failed = 1;
    return rv;
}

void iss_store_txn_put(iss_store_txn_t *txn, const void *key, apr_size_t klen,
                       const void *val, apr_size_t vlen)
{
    opset_stage(txn->ops, key, klen, val, vlen, 0);
}

void iss_store_txn_delete(iss_store_txn_t *txn, const void *key,
                          apr_size_t klen)
{
    opset_stage(txn->ops, key, klen, NULL, 0, 1);
}

iss_store_batch_t *iss_store_batch_make(iss_store_t *store, apr_pool_t *pool)
{
    iss_store_batch_t *b = apr_pcalloc(pool, sizeof(*b));

    b->store = store;
    b->ops = opset_make(pool);
    return b;
}

void iss_store_batch_put(iss_store_batch_t *batch, const void *key,
                         apr_size_t klen, const void *val, apr_size_t vlen)
{
    opset_stage(batch->ops, key, klen, val, vlen, 0);
}

void iss_store_batch_delete(iss_store_batch_t *batch, const void *key,
                            apr_size_t klen)
{
    opset_stage(batch->ops, key, klen, NULL, 0, 1);
}

apr_status_t iss_store_batch_commit(iss_store_batch_t *batch)
{
    if (!batch || !batch->store)
        return APR_EINVAL;
    return run_txn(batch->store, NULL, NULL, batch->ops, batch->ops->pool);
}

typedef struct {
    const void *key;
    apr_size_t klen;
    const void *val;
    apr_size_t vlen;
    int del;
} one_t;

static apr_status_t stage_one(void *baton, iss_store_txn_t *txn)
{
    const one_t *o = baton;

    opset_stage(txn->ops, o->key, o->klen, o->val, o->vlen, o->del);
    return APR_SUCCESS;
}

apr_status_t iss_store_put(iss_store_t *store, const void *key,
                           apr_size_t klen, const void *val, apr_size_t vlen)
{
    one_t o = { key, klen, val, vlen, 0 };

    if (!store || (!key && klen) || (!val && vlen))
        return APR_EINVAL;
    return run_txn(store, stage_one, &o, NULL, NULL);
}

apr_status_t iss_store_delete(iss_store_t *store, const void *key,
                              apr_size_t klen)
{
    one_t o = { key, klen, NULL, 0, 1 };

    if (!store || (!key && klen))
        return APR_EINVAL;
    return run_txn(store, stage_one, &o, NULL, NULL);
}

/* Fetch the record of an iterated key, check it and split it. */
static apr_status_t load_iterated(db_t *db, const char *dk, apr_size_t dklen,
                                  apr_pool_t *p, const char **key,
                                  apr_size_t *klen, char **val,
                                  apr_size_t *vlen, apr_uint32_t *nseg)
{
    char *rec, *body, kb[128];
    apr_size_t reclen, blen;
    apr_status_t rv = db_fetch(db, dk, dklen, p, &rec, &reclen);

    if (rv != APR_SUCCESS)
        return rv;
    if (!rec)
        return damaged(db->s, "record %s is found by iterating over %s but "
                       "not by looking up its key: the DBM is damaged",
                       show_dk(kb, sizeof(kb), dk, dklen), db->path);
    if ((rv = check_rec(db, dk, dklen, rec, reclen)) != APR_SUCCESS)
        return rv;
    if (dk[0] == KEY_SEGMENT) {
        if (dklen != SEGKEY_LEN || rec[0] != REC_SEGMENT)
            return damaged(db->s, "record %s in %s is not a valid segment",
                           show_dk(kb, sizeof(kb), dk, dklen), db->path);
        *key = NULL;
        return APR_SUCCESS;
    }
    if ((dk[0] == KEY_SHORT && dklen > 1 + SHORT_KEY_MAX)
        || (dk[0] == KEY_HASHED && dklen != 1 + SHA_LEN)
        || (dk[0] != KEY_SHORT && dk[0] != KEY_HASHED))
        return damaged(db->s, "unknown record %s in %s",
                       show_dk(kb, sizeof(kb), dk, dklen), db->path);
    if ((rv = load_body(db, dk, dklen, rec, reclen, p, &body, &blen, nseg))
        != APR_SUCCESS)
        return rv;
    return split_body(db, dk, dklen, body, blen, key, klen, val, vlen);
}

apr_status_t iss_store_iterate(iss_store_t *store, const void *prefix,
                               apr_size_t plen, iss_store_iter_fn *fn,
                               void *baton, apr_pool_t *pool)
{
    apr_pool_t *p, *ip = NULL;
    db_t *db = NULL;
    iter_t *it = NULL;
    apr_status_t rv;

    if (!store || !fn || !pool || (!prefix && plen))
        return APR_EINVAL;
    if ((rv = op_begin(store, pool, &p)) != APR_SUCCESS
        || (rv = db_open(store, gen_path(store, p, store->gen, 0),
                         APR_DBM_READONLY, p, &db)) != APR_SUCCESS
        || (rv = iter_open(store, db, p, &it)) != APR_SUCCESS)
        goto cleanup;
    if ((rv = apr_pool_create(&ip, p)) != APR_SUCCESS) {
        rv = fail(store, rv, "cannot create a pool: %pm", &rv);
        goto cleanup;
    }
    for (;;) {
        const char *dk, *key;
        apr_size_t dklen, klen, vlen;
        char *val;
        int stop;

        apr_pool_clear(ip);
        if ((rv = iter_next(it, p, &dk, &dklen)) != APR_SUCCESS || !dk)
            break;
        if (dk[0] == KEY_SEGMENT)
            continue;
        if (plen && dk[0] == KEY_SHORT
            && (dklen - 1 < plen || memcmp(dk + 1, prefix, plen) != 0))
            continue;
        if ((rv = load_iterated(db, dk, dklen, ip, &key, &klen, &val, &vlen,
                                NULL)) != APR_SUCCESS)
            break;
        if (plen && (klen < plen || memcmp(key, prefix, plen) != 0))
            continue;
        if ((stop = fn(baton, key, klen, val, vlen)) != 0) {
            rv = stop;
            break;
        }
    }
cleanup:
    iter_close(it);
    db_close(db);
    op_end(store, p);
    return rv;
}

apr_status_t iss_store_verify(iss_store_t *store, apr_pool_t *pool)
{
    apr_pool_t *p, *ip = NULL;
    db_t *db = NULL, *mdb = NULL;
    iter_t *it = NULL;
    apr_hash_t *heads;
    apr_array_header_t *segs;
    apr_size_t count = 0, mcount = 0;
    const char *dk;
    apr_size_t dklen;
    char kb[128];
    apr_status_t rv;
    int i;

    if (!store || !pool)
        return APR_EINVAL;
    if ((rv = op_begin(store, pool, &p)) != APR_SUCCESS
        || (rv = db_open(store, gen_path(store, p, store->gen, 0),
                         APR_DBM_READONLY, p, &db)) != APR_SUCCESS
        || (rv = iter_open(store, db, p, &it)) != APR_SUCCESS)
        goto cleanup;
    if ((rv = apr_pool_create(&ip, p)) != APR_SUCCESS) {
        rv = fail(store, rv, "cannot create a pool: %pm", &rv);
        goto cleanup;
    }
    heads = apr_hash_make(p);
    segs = apr_array_make(p, 16, sizeof(char *));

    /* Every record: reachable by key, checksum, segments, key hash. */
    for (;;) {
        const char *key;
        apr_size_t klen, vlen;
        apr_uint32_t nseg = 0;
        char *val;

        apr_pool_clear(ip);
        if ((rv = iter_next(it, p, &dk, &dklen)) != APR_SUCCESS || !dk)
            break;
        count++;
        if ((rv = load_iterated(db, dk, dklen, ip, &key, &klen, &val, &vlen,
                                &nseg)) != APR_SUCCESS)
            break;
        if (!key) {
            APR_ARRAY_PUSH(segs, char *) = apr_pmemdup(p, dk, dklen);
        }
        else if (nseg) {
            unsigned char *id = apr_palloc(p, SHA_LEN);
            apr_uint32_t *n = apr_palloc(p, sizeof(*n));

            if ((rv = seg_id(store, dk, dklen, id)) != APR_SUCCESS)
                break;
            *n = nseg;
            apr_hash_set(heads, id, SHA_LEN, n);
        }
    }
    iter_close(it);
    it = NULL;
    if (rv != APR_SUCCESS)
        goto cleanup;

    /* Every segment belongs to a head. */
    for (i = 0; i < segs->nelts; i++) {
        const char *sk = APR_ARRAY_IDX(segs, i, const char *);
        const apr_uint32_t *n = apr_hash_get(heads, sk + 1, SHA_LEN);

        if (!n || get32((const unsigned char *)sk + 1 + SHA_LEN) >= *n) {
            rv = damaged(store, "%s in %s belongs to no record",
                         show_dk(kb, sizeof(kb), sk, SEGKEY_LEN), db->path);
            goto cleanup;
        }
    }

    /* The mirror holds exactly the same records. */
    if ((rv = db_open(store, gen_path(store, p, store->gen, 1),
                      APR_DBM_READONLY, p, &mdb)) != APR_SUCCESS
        || (rv = iter_open(store, mdb, p, &it)) != APR_SUCCESS)
        goto cleanup;
    for (;;) {
        char *mrec, *rec;
        apr_size_t mlen, len;

        apr_pool_clear(ip);
        if ((rv = iter_next(it, p, &dk, &dklen)) != APR_SUCCESS || !dk)
            break;
        mcount++;
        if ((rv = db_fetch(mdb, dk, dklen, ip, &mrec, &mlen)) != APR_SUCCESS
            || (rv = db_fetch(db, dk, dklen, ip, &rec, &len)) != APR_SUCCESS)
            break;
        if (!mrec) {
            rv = damaged(store, "record %s is found by iterating over %s but "
                         "not by looking up its key: the DBM is damaged",
                         show_dk(kb, sizeof(kb), dk, dklen), mdb->path);
            break;
        }
        if (!rec || len != mlen || memcmp(rec, mrec, len) != 0) {
            rv = damaged(store, "the mirror copy %s differs from %s at record "
                         "%s", mdb->path, db->path,
                         show_dk(kb, sizeof(kb), dk, dklen));
            break;
        }
    }
    if (rv == APR_SUCCESS && mcount != count)
        rv = damaged(store, "the mirror copy %s holds %" APR_SIZE_T_FMT
                     " records, %s holds %" APR_SIZE_T_FMT, mdb->path, mcount,
                     db->path, count);
cleanup:
    iter_close(it);
    db_close(mdb);
    db_close(db);
    op_end(store, p);
    return rv;
}
