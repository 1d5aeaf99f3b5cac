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
 *   iss-store.gN.mirror       a byte copy of the primary as it was when last
 *                             copied
 *   iss-store.wal.G           write-ahead log generations (iss_store_wal.c)
 *   iss-store.wal.G.applied   generations applied to the primary since the
 *                             mirror was copied: mirror + these = primary
 *   iss-store.journal         mark: a checkpoint is writing the primary
 *   iss-store.journal.mirror  mark: the primary is being copied to the mirror
 *   iss-store.journal.tmp     a mark being written
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
 * OPERATIONS.  Commits are appended to the write-ahead log; reads come
 * from each process's overlay of the live log or from the primary DBM
 * under a shared lock (iss_store_wal.c).  A DBM is never kept open
 * between calls: gdbm holds a file lock while a handle is open and
 * sdbm/Berkeley DB cache pages per handle.
 *
 * CHECKPOINT (iss_store__wal_apply(), one at a time):
 *   1. iss-store.journal (a journal without operations: the mark) exists,
 *      fsynced, before the primary is first written.
 *   2. the net change of the sealed log generations is applied to the
 *      primary in commits of a few thousand keys, each under the exclusive
 *      DBM lock with "busy" set in the shared header; closed, fsynced
 *      (gdbm, db: read back).
 *   3. under the writers' lock: the generations become
 *      iss-store.wal.G.applied (one rename at a time, each synced), the
 *      mark goes.
 *   4. once the applied generations pass a quarter of the DBM's size: the
 *      mark iss-store.journal.mirror, the primary's files copied over the
 *      mirror's (holes kept; fsynced), the applied generations removed,
 *      the mark removed.
 * Why two copies: one DBM update is several write() calls, and a process
 * killed between two of them can destroy records the update never touched
 * (an sdbm page split writes the half that stays before the half that
 * moves; gdbm and Berkeley DB flush pages in their own order), damage that
 * iteration does not always reveal.  The mirror is never written while the
 * primary is, and vice versa.  Why a copy and not a replay: writing every
 * key into both copies cost each key four system calls more (sdbm: a
 * page read and a page write per copy); a file copy costs the DBM's size
 * about once per quarter of that size of log.
 * Why read back: Berkeley DB writes most pages when it is closed, and
 * apr_dbm_close() cannot report a failure there.
 *
 * RECOVERY (under the exclusive DBM lock; iss_store__recover()): stray
 * journal.tmp files are deleted.  iss-store.journal.mirror: the primary
 * is whole; the copy is made again (by whoever may take the
 * checkpointer's lock).  iss-store.journal and the primary possibly torn
 * (a checkpoint died inside a commit: "busy" in the shared header; or the
 * header cannot tell: a restart of the machine): rebuild generation N+1
 * from the mirror and apply the applied generations on top, to both new
 * copies; the checkpoint's own generations are still live and are
 * applied again by the next one.  (A journal with operations, written by
 * earlier versions, is applied on top too, if complete and its SHA-256
 * verifies.)  Rebuilding copies every record of the source whose
 * checksum verifies (iteration + fetch) into fresh primary and mirror
 * files, closes and fsyncs them, counts their records, applies the
 * changes (with read-back), then commits by atomically rewriting the meta
 * file with N+1, and only then deletes the generation-N files, the
 * journal and the applied generations.  A crash during recovery is itself
 * recovered: until the meta names N+1 the journal and generation N are
 * untouched; afterwards the journal names generation N and is recognised
 * as already applied.  Files of other generations and scratch files
 * (including Berkeley DB's "__db.NAME" of a creation that died, which
 * would make the next creation of NAME wait forever) are removed at open
 * and after every recovery.
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
 * COST per checkpoint commit: 2 fsyncs, the primary opened once.  sdbm stores
 * big values as many small segments in sparse files: a value of n bytes
 * takes 2n to 6n on disk per copy, and iteration (iterate, verify,
 * recovery) reads every page of the sparse file, e.g. 35 s for a store
 * holding one 64 MiB value.  gdbm and db suit large values better.
 *
 * SOURCES.  This file holds the public API: opening, the lock, the
 * operations and iss_store_verify().  The rest, in the order of the
 * layers: iss_store_dbm.c (apr_dbm handles, key iteration, fsync),
 * iss_store_record.c (record format: checksums, keys, segments, reading
 * and writing entries), iss_store_journal.c (staged operations, the
 * journal, writing a copy, the commit), iss_store_meta.c (the meta file,
 * generations, creation, recovery).  iss_store_private.h holds what they
 * share; functions one file calls in another are named iss_store__*.
 */

#include "iss_store_private.h"

#include <apr_file_info.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

struct iss_store_batch_t {
    iss_store_t *store;
    opset_t *ops;
};

struct iss_store_txn_t {
    iss_store_t *s;
    apr_pool_t *pool;
    opset_t *ops;
    db_t *db;                   /* primary, read-only, opened on first get */
    int failed;                 /* a store error was reported in the txn */
    int view;                   /* iss_store_view(): no writers' lock */
    void (*after)(void *baton); /* iss_store_txn_after() */
    void *after_baton;
};

/* ---- errors and log messages -------------------------------------------- */

void iss_store__note(iss_store_t *s, int level, apr_status_t rv,
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
apr_status_t iss_store__fail(iss_store_t *s, apr_status_t rv, const char *fmt,
                             ...)
{
    va_list ap;

    va_start(ap, fmt);
    apr_vsnprintf(iss_store__err, sizeof(iss_store__err), fmt, ap);
    va_end(ap);
    return rv;
}

/* Record and log (error level) damage; returns ISS_STORE_EDAMAGED. */
apr_status_t iss_store__damaged(iss_store_t *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    apr_vsnprintf(iss_store__err, sizeof(iss_store__err), fmt, ap);
    va_end(ap);
    if (s->log)
        s->log(s->log_baton, LOG_ERR, ISS_STORE_EDAMAGED, iss_store__err);
    return ISS_STORE_EDAMAGED;
}

/* ---- opening, locks ------------------------------------------------------ */

_Thread_local char iss_store__err[ISS_STORE_ERR_MAX];

static apr_status_t store_cleanup(void *data)
{
    iss_store_t *s = data;

    s->closed = 1;
    iss_store__wal_close(s);
    return APR_SUCCESS;
}

#if APR_HAS_THREADS
#define MLOCK(m)   apr_thread_mutex_lock(m)
#define MUNLOCK(m) apr_thread_mutex_unlock(m)
#else
#define MLOCK(m)   ((void)0)
#define MUNLOCK(m) ((void)0)
#endif

/* The writers' lock: this process's writer mutex, the exclusive lock on
 * iss-store.lock (every process, httpd's and the iss-state tool's), then
 * the overlay's mutex. */
static apr_status_t lock_store(iss_store_t *s)
{
    apr_status_t rv;

    if (s->closed)
        return APR_EINVAL;              /* keep the reason of a failed open */
    MLOCK(s->wmutex);
    if ((rv = apr_file_lock(s->lock_file, APR_FLOCK_EXCLUSIVE))
        != APR_SUCCESS) {
        MUNLOCK(s->wmutex);
        return iss_store__fail(s, rv, "cannot lock %s/" LOCK_NAME ": %pm",
                               s->dir, &rv);
    }
    MLOCK(s->omutex);
    return APR_SUCCESS;
}

static void unlock_store(iss_store_t *s)
{
    iss_store__dbm_unlock(s);
    MUNLOCK(s->omutex);
    apr_file_unlock(s->lock_file);
    MUNLOCK(s->wmutex);
}

static apr_status_t open_lock_file(iss_store_t *s, const char *name,
                                   apr_file_t **f)
{
    const char *path = apr_pstrcat(s->pool, s->dir, "/", name, NULL);
    apr_status_t rv = apr_file_open(f, path, APR_FOPEN_WRITE
                                    | APR_FOPEN_CREATE, FILE_PERMS, s->pool);

    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "cannot open %s: %pm", path, &rv);
    return APR_SUCCESS;
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
        return iss_store__fail(s, rv, "DBM type \"%s\" is not available in "
                               "this APR-util: %pm", s->type_asked, &rv);
    s->type = t;
    if (strcmp(t, "default") != 0)
        return APR_SUCCESS;
    probe = iss_store__fpath(s, p, PROBE_NAME);
    apr_file_remove(iss_store__fpath(s, p, BDB_TMP_PREFIX PROBE_NAME), p);
    rv = apr_dbm_open_ex(&d, "default", probe, APR_DBM_RWCREATE, FILE_PERMS, p);
    if (rv != APR_SUCCESS)
        return iss_store__fail(s, iss_store__dbm_status(s, rv),
                               "cannot create %s to find out what the default "
                               "DBM type is", probe);
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

apr_status_t iss_store_open(iss_store_t **store, const char *dir,
                            const char *dbm_type, apr_global_mutex_t *mutex,
                            iss_store_log_fn *log, void *log_baton,
                            apr_pool_t *pool)
{
    iss_store_t *s;
    apr_pool_t *p = NULL;
    apr_allocator_t *al = NULL;
    apr_finfo_t fi;
    meta_t m;
    int missing, locked = 0, i;
    apr_status_t rv;

    (void)mutex;                        /* see iss_store.h */
    if (!store || !dir || !pool)
        return APR_EINVAL;
    s = apr_pcalloc(pool, sizeof(*s));
    s->dir = apr_pstrdup(pool, dir);
    s->type_asked = dbm_type ? apr_pstrdup(pool, dbm_type) : NULL;
    s->type = s->type_asked;
    s->log = log;
    s->log_baton = log_baton;
    apr_cpystrn(iss_store__err, "no error", sizeof(iss_store__err));
    *store = s;

    /* The handle's pool has an allocator of its own with a mutex: every
     * thread of the process may use the handle. */
    if ((rv = apr_allocator_create(&al)) != APR_SUCCESS
        || (rv = apr_pool_create_ex(&s->pool, pool, NULL, al))
           != APR_SUCCESS) {
        if (al)
            apr_allocator_destroy(al);
        s->closed = 1;
        return iss_store__fail(s, rv, "cannot create a pool: %pm", &rv);
    }
    apr_allocator_owner_set(al, s->pool);
#if APR_HAS_THREADS
    {
        apr_thread_mutex_t *am;

        if ((rv = apr_thread_mutex_create(&am, APR_THREAD_MUTEX_DEFAULT,
                                          s->pool)) != APR_SUCCESS
            || (rv = apr_thread_mutex_create(&s->wmutex,
                                             APR_THREAD_MUTEX_DEFAULT,
                                             s->pool)) != APR_SUCCESS
            || (rv = apr_thread_mutex_create(&s->omutex,
                                             APR_THREAD_MUTEX_DEFAULT,
                                             s->pool)) != APR_SUCCESS
            || (rv = apr_thread_mutex_create(&s->smutex,
                                             APR_THREAD_MUTEX_DEFAULT,
                                             s->pool)) != APR_SUCCESS
            || (rv = apr_thread_mutex_create(&s->cmutex,
                                             APR_THREAD_MUTEX_DEFAULT,
                                             s->pool)) != APR_SUCCESS
            || (rv = apr_thread_mutex_create(&s->dmutex,
                                             APR_THREAD_MUTEX_DEFAULT,
                                             s->pool)) != APR_SUCCESS) {
            s->closed = 1;
            return iss_store__fail(s, rv, "cannot create a mutex: %pm", &rv);
        }
        apr_allocator_mutex_set(al, am);
    }
#endif
    apr_pool_cleanup_register(s->pool, s, store_cleanup,
                              apr_pool_cleanup_null);

    if ((rv = apr_pool_create(&p, s->pool)) != APR_SUCCESS) {
        p = NULL;
        rv = iss_store__fail(s, rv, "cannot create a pool: %pm", &rv);
        goto cleanup;
    }
    rv = apr_stat(&fi, s->dir, APR_FINFO_TYPE, p);
    if (rv != APR_SUCCESS && rv != APR_INCOMPLETE) {
        rv = iss_store__fail(s, rv, "state store directory %s: %pm", s->dir,
                             &rv);
        goto cleanup;
    }
    if (fi.filetype != APR_DIR) {
        rv = iss_store__fail(s, APR_ENOTDIR, "state store directory %s is not "
                             "a directory", s->dir);
        goto cleanup;
    }
    if ((rv = open_lock_file(s, LOCK_NAME, &s->lock_file)) != APR_SUCCESS
        || (rv = open_lock_file(s, DBMLOCK_NAME, &s->dbm_lock))
           != APR_SUCCESS
        || (rv = open_lock_file(s, SYNCLOCK_NAME, &s->sync_lock))
           != APR_SUCCESS
        || (rv = open_lock_file(s, CKPTLOCK_NAME, &s->ckpt_lock))
           != APR_SUCCESS
        || (rv = open_lock_file(s, CLAIMS_NAME, &s->claim_hold))
           != APR_SUCCESS
        || (rv = open_lock_file(s, CLAIMS_NAME, &s->claim_check))
           != APR_SUCCESS)
        goto cleanup;
    if ((rv = lock_store(s)) != APR_SUCCESS)
        goto cleanup;
    locked = 1;
    if (s->type_asked == NULL) {
        /* An existing store, whatever its type (tools). */
        if ((rv = iss_store__meta_read(s, p, &m, &missing)) != APR_SUCCESS)
            goto cleanup;
        if (missing) {
            rv = iss_store__fail(s, APR_ENOENT, "there is no state store in "
                                 "%s", s->dir);
            goto cleanup;
        }
        s->type_asked = s->type = apr_pstrdup(pool, m.type);
    }
    if ((rv = resolve_type(s, p)) != APR_SUCCESS)
        goto cleanup;
    s->pair_max = strcmp(s->type, "sdbm") == 0 ? SDBM_PAIR_MAX : BIG_PAIR_MAX;
    /* Shared: readers of other processes go on; exclusive only to create
     * the store or to finish a dead writer's journal. */
    if ((rv = iss_store__dbm_lock(s, 0)) != APR_SUCCESS
        || (rv = iss_store__meta_read(s, p, &m, &missing)) != APR_SUCCESS)
        goto cleanup;
    if (missing || iss_store__journal_left(s, p)) {
        iss_store__dbm_unlock(s);
        if ((rv = iss_store__dbm_lock(s, 1)) != APR_SUCCESS
            || (rv = iss_store__meta_read(s, p, &m, &missing))
               != APR_SUCCESS)
            goto cleanup;
    }
    if (missing) {
        if ((rv = iss_store__create(s, p)) != APR_SUCCESS)
            goto cleanup;
    }
    else {
        if ((rv = iss_store__check_meta(s, p, &m)) != APR_SUCCESS)
            goto cleanup;
        apr_cpystrn(s->id, m.id, sizeof(s->id));
        s->gen = m.gen;
        if ((s->dbm_locked == 2
             && (rv = iss_store__recover(s, p)) != APR_SUCCESS)
            || (rv = iss_store__sweep(s, p)) != APR_SUCCESS)
            goto cleanup;
    }
    for (i = 0; i < 2; i++) {
        db_t *db;
        int took = 0;

        /* A checkpointer copies the primary over the mirror in place,
         * holding the checkpoint lock alone: while one is at it, the
         * mirror may be half a file (Berkeley DB refuses it, EINVAL; CI,
         * 2026-12-03), and the checkpoint checks its copy itself. */
        if (i == 1 && !iss_store__ckpt_idle(s, &took))
            continue;
        rv = iss_store__db_open(s, iss_store__gen_path(s, p, s->gen, i),
                                APR_DBM_READONLY, p, &db);
        if (took)
            iss_store__ckpt_release(s);
        if (rv != APR_SUCCESS)
            goto cleanup;
        iss_store__db_close(db);
    }
    if ((rv = iss_store__copies_check(s, p)) != APR_SUCCESS)
        goto cleanup;
    iss_store__dbm_unlock(s);
    /* Again with the shared header, which knows the sizes of a mirror that
     * lags behind the primary. */
    if ((rv = iss_store__wal_open(s, p)) == APR_SUCCESS
        && (rv = iss_store__dbm_lock(s, 0)) == APR_SUCCESS) {
        if (s->sizes_stale) {
            /* Recovery above changed them (checked then). */
            iss_store__sizes_note(s, 0, p);
            iss_store__sizes_note(s, 1, p);
            s->sizes_stale = 0;
        }
        rv = iss_store__copies_check(s, p);
        iss_store__dbm_unlock(s);
    }
cleanup:
    if (locked)
        unlock_store(s);
    if (p)
        apr_pool_destroy(p);
    if (rv != APR_SUCCESS) {
        s->closed = 1;                  /* only good for last_error */
        if (rv != ISS_STORE_EDAMAGED)
            iss_store__note(s, LOG_ERR, rv, "cannot open the state store: %s",
                            iss_store__err);
    }
    return rv;
}

const char *iss_store_last_error(iss_store_t *store)
{
    return store ? iss_store__err : "no state store handle";
}

const char *iss_store_id(iss_store_t *store)
{
    return store->id;
}

const char *iss_store_dir(iss_store_t *store)
{
    return store->dir;
}

const char *iss_store_dbm_type(iss_store_t *store)
{
    return store->type;
}

void iss_store_set_sync(iss_store_t *store, int on)
{
    store->nosync = !on;
}

apr_status_t iss_store_stats(iss_store_t *store, iss_store_stats_t *st)
{
    int n = 0;
    apr_pool_t *p;

    if (!store || !st || store->closed || !store->shm)
        return APR_EINVAL;
    memset(st, 0, sizeof(*st));
    iss_store__wal_stats(store, st);
    if (apr_pool_create(&p, store->pool) == APR_SUCCESS) {
        if (iss_store__applied_info(store, p, &n, &st->mirror_behind_bytes)
            == APR_SUCCESS)
            st->mirror_behind = (apr_uint64_t)n;
        apr_pool_destroy(p);
    }
    return APR_SUCCESS;
}

/* Whether the meta file's identity is @a m's (atomic loads: see
 * iss_store__meta_ident()). */
static int meta_same(iss_store_t *store, const struct stat *m,
                     apr_time_t mtime)
{
    return m->st_ino == __atomic_load_n(&store->meta_ino, __ATOMIC_RELAXED)
           && (apr_off_t)m->st_size == __atomic_load_n(&store->meta_size,
                                                       __ATOMIC_RELAXED)
           && mtime == __atomic_load_n(&store->meta_mtime, __ATOMIC_RELAXED);
}

int iss_store_replaced(iss_store_t *store)
{
    struct stat m;
    char path[1024];
    apr_time_t mtime;
    int replaced;

    if (!store || store->closed)
        return 1;
    apr_snprintf(path, sizeof(path), "%s/" META_NAME, store->dir);
    if (stat(path, &m) != 0)
        return 1;
    mtime = (apr_time_t)m.st_mtim.tv_sec * APR_USEC_PER_SEC
            + m.st_mtim.tv_nsec / 1000;
    /* The usual answer without omutex, which a writer of this process
     * holds through its whole commit: only an identity whose three
     * fields all equal what stat() said now passes, so one caught half
     * updated is compared again under omutex. */
    if (meta_same(store, &m, mtime))
        return 0;
    MLOCK(store->omutex);
    replaced = !meta_same(store, &m, mtime);
    MUNLOCK(store->omutex);
    return replaced;
}

/* ---- claims ---------------------------------------------------------------
 * A claim is one byte of iss-store.claims locked with an open-file-
 * description lock (F_OFD_SETLK) through claim_hold; claim_check is a
 * second open file description of the same file, so that F_OFD_GETLK
 * through it sees the claims of this handle too (a lock never conflicts
 * with its own open file description).  The kernel drops the locks when
 * the process dies.  Offsets: the claim's number modulo 2^62, past any
 * real end of file (an empty file: locks need no data). */

#define CLAIM_SPACE ((apr_uint64_t)1 << 62)

static int claim_fd(apr_file_t *f)
{
    apr_os_file_t fd = -1;

    apr_os_file_get(&fd, f);
    return fd;
}

#ifdef F_OFD_SETLK
static void claim_lock_init(struct flock *fl, short type, apr_uint64_t n)
{
    memset(fl, 0, sizeof(*fl));
    fl->l_type = type;
    fl->l_whence = SEEK_SET;
    fl->l_start = (off_t)(n % CLAIM_SPACE);
    fl->l_len = 1;
}
#endif

apr_status_t iss_store_claim(iss_store_t *store, apr_uint64_t n)
{
#ifdef F_OFD_SETLK
    struct flock fl;
    int rc;

    if (!store || store->closed || !store->claim_hold)
        return APR_EINVAL;
    claim_lock_init(&fl, F_WRLCK, n);
    while ((rc = fcntl(claim_fd(store->claim_hold), F_OFD_SETLK, &fl)) != 0
           && errno == EINTR) {
    }
    if (rc != 0) {
        apr_status_t rv = APR_FROM_OS_ERROR(errno);

        if (errno == EAGAIN || errno == EACCES)
            return APR_EBUSY;
        return iss_store__fail(store, rv, "cannot claim %" APR_UINT64_T_FMT
                               " in %s/" CLAIMS_NAME ": %pm", n, store->dir,
                               &rv);
    }
    return APR_SUCCESS;
#else
    (void)n;
    (void)claim_fd;
    return store ? APR_ENOTIMPL : APR_EINVAL;
#endif
}

void iss_store_claim_release(iss_store_t *store, apr_uint64_t n)
{
#ifdef F_OFD_SETLK
    struct flock fl;

    if (!store || store->closed || !store->claim_hold)
        return;
    claim_lock_init(&fl, F_UNLCK, n);
    while (fcntl(claim_fd(store->claim_hold), F_OFD_SETLK, &fl) != 0
           && errno == EINTR) {
    }
#else
    (void)store;
    (void)n;
#endif
}

apr_uint64_t iss_store_claim_own(iss_store_t *store)
{
    apr_uint64_t n = store ? __atomic_load_n(&store->own_claim,
                                             __ATOMIC_ACQUIRE) : 0;
    int tries;

    if (n || !store)
        return n;
    for (tries = 0; tries < 8; tries++) {
        apr_uint64_t none = 0;
        unsigned char r[8];
        apr_status_t rv;

        if (apr_generate_random_bytes(r, sizeof(r)) != APR_SUCCESS)
            return 0;
        n = iss_be64_get(r) % CLAIM_SPACE;
        if (n == 0)
            continue;
        rv = iss_store_claim(store, n);
        if (rv == APR_EBUSY)
            continue;
        if (rv != APR_SUCCESS)
            return 0;
        if (!__atomic_compare_exchange_n(&store->own_claim, &none, n, 0,
                                         __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE)) {
            iss_store_claim_release(store, n);  /* another thread's won */
            return none;
        }
        return n;
    }
    return 0;
}

int iss_store_claim_held(iss_store_t *store, apr_uint64_t n)
{
#ifdef F_OFD_GETLK
    struct flock fl;
    int rc;

    if (!store || store->closed || !store->claim_check)
        return -1;
    claim_lock_init(&fl, F_WRLCK, n);
    while ((rc = fcntl(claim_fd(store->claim_check), F_OFD_GETLK, &fl)) != 0
           && errno == EINTR) {
    }
    if (rc != 0)
        return -1;
    return fl.l_type != F_UNLCK;
#else
    (void)store;
    (void)n;
    return -1;
#endif
}

apr_status_t iss_store_close(iss_store_t *store)
{
    if (!store || !store->pool)
        return APR_EINVAL;
    if (store->closed && !store->shm)
        return APR_SUCCESS;
    /* The handle's claims end with it (iss_store_claim()); when its pool
     * goes instead, the file's own cleanup closes it. */
    if (store->claim_hold) {
        apr_file_close(store->claim_hold);
        store->claim_hold = NULL;
    }
    return apr_pool_cleanup_run(store->pool, store, store_cleanup);
}

/* ---- operations --------------------------------------------------------- */

/* The writers' lock, the operation's pool (child of @a parent, or of the
 * store's pool), the shared header checked and the overlay in sync. */
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
        return iss_store__fail(s, rv, "cannot create a pool: %pm", &rv);
    }
    if ((rv = iss_store__wal_check(s, *p)) != APR_SUCCESS)
        return rv;
    return iss_store__ov_sync(s, 1, *p);
}

static void op_end(iss_store_t *s, apr_pool_t *p)
{
    if (p) {
        apr_pool_destroy(p);
        unlock_store(s);
    }
}

/* Re-read the DBM generation from the meta file when the shared header
 * says another process rebuilt the DBM.  Under the DBM lock. */
static apr_status_t dbm_current(iss_store_t *s, apr_pool_t *p)
{
    meta_t m;
    int missing;
    apr_status_t rv;

    if (__atomic_load_n(&s->shm->dbm_gen, __ATOMIC_ACQUIRE) == s->gen)
        return APR_SUCCESS;
    if ((rv = iss_store__meta_read(s, p, &m, &missing)) != APR_SUCCESS)
        return rv;
    if (missing)
        return iss_store__damaged(s, "%s has disappeared: the state store was "
                                  "removed while in use",
                                  iss_store__fpath(s, p, META_NAME));
    s->gen = m.gen;
    return APR_SUCCESS;
}

static apr_status_t copy_out(const ov_ent_t *e, void **val, apr_size_t *vlen,
                             apr_pool_t *pool)
{
    char *v;

    if (e->del)
        return APR_NOTFOUND;
    v = apr_palloc(pool, e->vlen + 1);
    iss_store__copy_bytes(v, e->val, e->vlen + 1);
    *val = v;
    *vlen = e->vlen;
    return APR_SUCCESS;
}

/*
 * A read takes no lock that writers wait for: the overlay is brought up to
 * the committed end of the WAL (records are read without a lock: what is
 * before the committed end never changes), and only a key the overlay
 * does not hold is read from the DBM, under the shared DBM lock that a
 * checkpoint must wait for.  Threads of one process share the overlay
 * under omutex.
 */
/* The writers' lock, taken and given back: op_begin() rebuilds a shared
 * header left half-changed by a process that died. */
static apr_status_t repair(iss_store_t *s, apr_pool_t *pool)
{
    apr_pool_t *p;
    apr_status_t rv = op_begin(s, pool, &p);

    if (p)
        op_end(s, p);
    return rv;
}

/* ---- the rescan mark (iss_store_wal.c, rescan_mark()) ----------------- */

static apr_status_t rescan_read(iss_store_t *s, const char **mark,
                                apr_pool_t *pool)
{
    apr_file_t *f;
    char buf[64];
    apr_size_t n = sizeof(buf) - 1;
    apr_status_t rv;

    *mark = NULL;
    rv = apr_file_open(&f, iss_store__fpath(s, pool, RESCAN_NAME),
                       APR_FOPEN_READ | APR_FOPEN_BINARY, APR_OS_DEFAULT,
                       pool);
    if (APR_STATUS_IS_ENOENT(rv))
        return APR_SUCCESS;
    if (rv == APR_SUCCESS) {
        rv = apr_file_read(f, buf, &n);
        apr_file_close(f);
        if (APR_STATUS_IS_EOF(rv)) {
            n = 0;
            rv = APR_SUCCESS;
        }
    }
    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "cannot read %s/" RESCAN_NAME ": %pm",
                               s->dir, &rv);
    buf[n] = '\0';
    *mark = apr_pstrdup(pool, buf);
    return APR_SUCCESS;
}

apr_status_t iss_store_rescan_due(iss_store_t *store, const char **mark,
                                  apr_pool_t *pool)
{
    apr_status_t rv;

    if (!store || !mark || !pool || store->closed)
        return APR_EINVAL;
    /* Not attached in this boot yet: attaching sets the mark if due. */
    if (!iss_store__shm_current(store)
        && (rv = repair(store, pool)) != APR_SUCCESS)
        return rv;
    return rescan_read(store, mark, pool);
}

apr_status_t iss_store_rescan_done(iss_store_t *store, const char *mark,
                                   apr_pool_t *pool)
{
    const char *now;
    apr_status_t rv;

    if (!store || !mark || !pool || store->closed)
        return APR_EINVAL;
    /* Under the writers' lock: no attach (which sets a new mark) between
     * the comparison and the removal. */
    if ((rv = lock_store(store)) != APR_SUCCESS)
        return rv;
    if ((rv = rescan_read(store, &now, pool)) == APR_SUCCESS && now
        && strcmp(now, mark) == 0
        && (rv = iss_store__remove_file(store, iss_store__fpath(store, pool,
                                                                RESCAN_NAME),
                                        pool)) == APR_SUCCESS)
        rv = iss_store__sync_dir(store, pool);
    unlock_store(store);
    return rv;
}

apr_status_t iss_store_get(iss_store_t *store, const void *key,
                           apr_size_t klen, void **val, apr_size_t *vlen,
                           apr_pool_t *pool)
{
    iss_store_t *s = store;
    apr_pool_t *p = NULL;
    const ov_ent_t *e;
    db_t *db = NULL;
    char kb[128];
    int tries, found = 0;
    apr_status_t rv;

    if (!store || !val || !vlen || !pool || (!key && klen) || s->closed)
        return APR_EINVAL;
    if (klen > ISS_STORE_MAX_KEY)
        return iss_store__fail(s, ISS_STORE_ETOOBIG, "key of %" APR_SIZE_T_FMT
                               " bytes is larger than the limit of %d bytes",
                               klen, ISS_STORE_MAX_KEY);
    if (!key)
        key = "";
    for (tries = 0;; tries++) {
        MLOCK(s->omutex);
        if ((rv = apr_pool_create(&p, pool)) != APR_SUCCESS) {
            MUNLOCK(s->omutex);
            return iss_store__fail(s, rv, "cannot create a pool: %pm", &rv);
        }
        rv = iss_store__ov_sync(s, 0, p);
        if (rv == APR_SUCCESS && (e = iss_store__ov_get(s, key, klen))) {
            rv = copy_out(e, val, vlen, pool);
            found = 1;
            break;
        }
        /* The DBM, under its shared lock: no checkpoint meanwhile. */
        if ((rv == APR_SUCCESS || rv == NEED_LOCK)
            && (rv = iss_store__dbm_lock(s, 0)) == APR_SUCCESS)
            rv = iss_store__ov_sync(s, 1, p);
        if (rv != NEED_REPAIR)
            break;
        iss_store__dbm_unlock(s);
        apr_pool_destroy(p);
        MUNLOCK(s->omutex);
        if (tries > 0)
            return iss_store__damaged(s, "the shared header %s/" SHM_NAME
                                      " stays inconsistent", s->dir);
        if ((rv = repair(s, pool)) != APR_SUCCESS)
            return rv;
    }
    if (rv == APR_SUCCESS && !found) {
        if ((e = iss_store__ov_get(s, key, klen)) != NULL) {
            rv = copy_out(e, val, vlen, pool);
        }
        else if ((rv = dbm_current(s, p)) == APR_SUCCESS) {
            rv = iss_store__db_open(s, iss_store__gen_path(s, p, s->gen, 0),
                                    APR_DBM_READONLY, p, &db);
            if (rv == APR_SUCCESS)
                rv = iss_store__read_entry(db, key, klen, pool, p, val,
                                           vlen);
            iss_store__db_close(db);
            if (rv == APR_SUCCESS || rv == APR_NOTFOUND)
                iss_store__ov_cache(s, key, klen, rv == APR_SUCCESS ? *val
                                                                    : NULL,
                                    rv == APR_SUCCESS ? *vlen : 0,
                                    rv == APR_NOTFOUND);
        }
    }
    if (rv == APR_NOTFOUND)
        iss_store__fail(s, rv, "key %s not found",
                        iss_store__show_bytes(kb, sizeof(kb), key, klen));
    iss_store__dbm_unlock(s);
    apr_pool_destroy(p);
    MUNLOCK(s->omutex);
    return rv;
}

static apr_status_t run_txn(iss_store_t *s, iss_store_txn_fn *fn, void *baton,
                            opset_t *preset, int flags, apr_pool_t *pool)
{
    struct iss_store_txn_t txn;
    apr_pool_t *p;
    apr_uint64_t gen = 0, end = 0;
    apr_status_t rv;
    int due = 0, sealed = 0;

    memset(&txn, 0, sizeof(txn));
    if ((rv = op_begin(s, pool, &p)) != APR_SUCCESS)
        goto cleanup;
    if (s->shm && __atomic_load_n(&s->shm->damaged, __ATOMIC_ACQUIRE)) {
        /* A checkpoint found the DBM changed from outside. */
        rv = iss_store__fail(s, ISS_STORE_EDAMAGED, "the DBM files in %s "
                             "were changed from outside (truncated, removed "
                             "or replaced: the copies of the DBM differ from "
                             "what the store left); writes are refused until "
                             "the state is repaired or moved aside", s->dir);
        goto cleanup;
    }
    txn.s = s;
    txn.pool = p;
    txn.ops = preset ? preset : iss_store__opset_make(p);
    if (fn) {
        rv = fn(baton, &txn);
        iss_store__db_close(txn.db);
        txn.db = NULL;
        if (rv != APR_SUCCESS) {
            if (!txn.failed)
                iss_store__fail(s, rv, "the transaction was aborted (%pm); "
                                "nothing was written", &rv);
            goto cleanup;
        }
    }
    if (txn.ops->status != APR_SUCCESS) {
        rv = iss_store__fail(s, txn.ops->status, "%s; nothing was written",
                             txn.ops->why);
        goto cleanup;
    }
    if (txn.ops->list->nelts) {
        if ((rv = iss_store__wal_append(s, txn.ops, &gen, &end, p))
            != APR_SUCCESS)
            goto cleanup;
        /* Committed.  Past the checkpoint size, seal the generation; it
         * is applied below, after the locks are given back.  A failure
         * there keeps the WAL (and says so): not this commit's failure. */
        if ((due = iss_store__wal_due(s)))
            (void)iss_store__wal_rotate(s, &sealed, p);
    }
    else {
        iss_store__wal_position(s, &gen, &end);
    }
    if (txn.after)
        txn.after(txn.after_baton);     /* committed; the lock still held */
cleanup:
    op_end(s, p);
    /* Whoever sealed a generation applies it (and waits for a
     * checkpointer of another process to finish first); a generation a
     * dead checkpointer left is tried now and then. */
    if (due)
        (void)iss_store__wal_apply(s, sealed, pool ? pool : s->pool);
    if (rv == APR_SUCCESS && !(flags & ISS_STORE_LAZY)) {
        /* Durable before it returns: what it wrote and what it read. */
        rv = iss_store__wal_durable(s, gen, end);
    }
    return rv;
}

void iss_store_txn_after(iss_store_txn_t *txn, void (*fn)(void *baton),
                         void *baton)
{
    txn->after = fn;
    txn->after_baton = baton;
}

apr_status_t iss_store_txn_area(iss_store_txn_t *txn, void **base,
                                apr_size_t *size)
{
    /* A view does not hold the writers' lock: no initialisation. */
    return iss_store__area(txn->s, !txn->view, base, size);
}

apr_status_t iss_store_area(iss_store_t *store, void **base,
                            apr_size_t *size)
{
    if (!store || store->closed)
        return APR_EINVAL;
    return iss_store__area(store, 0, base, size);
}

apr_status_t iss_store_txn(iss_store_t *store, iss_store_txn_fn *fn,
                           void *baton, apr_pool_t *pool)
{
    if (!store || !fn)
        return APR_EINVAL;
    return run_txn(store, fn, baton, NULL, 0, pool);
}

apr_status_t iss_store_txn_ex(iss_store_t *store, iss_store_txn_fn *fn,
                              void *baton, int flags, apr_pool_t *pool)
{
    if (!store || !fn)
        return APR_EINVAL;
    return run_txn(store, fn, baton, NULL, flags, pool);
}

/*
 * A read-only transaction without the writers' lock: the overlay, frozen
 * under omutex, and the DBM, under its shared lock (no checkpoint
 * meanwhile), are one consistent state; writers go on appending.
 */
apr_status_t iss_store_view(iss_store_t *store, iss_store_txn_fn *fn,
                            void *baton, int flags, apr_pool_t *pool)
{
    iss_store_t *s = store;
    struct iss_store_txn_t txn;
    apr_pool_t *p = NULL;
    apr_uint64_t gen = 0, end = 0;
    int tries;
    apr_status_t rv;

    if (!store || !fn || !pool || s->closed)
        return APR_EINVAL;
    for (tries = 0;; tries++) {
        MLOCK(s->omutex);
        if ((rv = apr_pool_create(&p, pool)) != APR_SUCCESS) {
            MUNLOCK(s->omutex);
            return iss_store__fail(s, rv, "cannot create a pool: %pm", &rv);
        }
        if ((rv = iss_store__dbm_lock(s, 0)) == APR_SUCCESS)
            rv = iss_store__ov_sync(s, 1, p);
        if (rv != NEED_REPAIR)
            break;
        iss_store__dbm_unlock(s);
        apr_pool_destroy(p);
        MUNLOCK(s->omutex);
        if (tries > 0)
            return iss_store__damaged(s, "the shared header %s/" SHM_NAME
                                      " stays inconsistent", s->dir);
        if ((rv = repair(s, pool)) != APR_SUCCESS)
            return rv;
    }
    if (rv == APR_SUCCESS)
        rv = dbm_current(s, p);
    if (rv == APR_SUCCESS) {
        memset(&txn, 0, sizeof(txn));
        txn.s = s;
        txn.pool = p;
        txn.ops = iss_store__opset_make(p);
        txn.view = 1;
        rv = fn(baton, &txn);
        iss_store__db_close(txn.db);
        if (rv == APR_SUCCESS && txn.ops->list->nelts)
            rv = iss_store__fail(s, APR_EINVAL, "a view of the state store "
                                 "cannot write; nothing was written");
        else if (rv != APR_SUCCESS && !txn.failed)
            iss_store__fail(s, rv, "the view was aborted (%pm)", &rv);
        iss_store__wal_position(s, &gen, &end);
    }
    iss_store__dbm_unlock(s);
    apr_pool_destroy(p);
    MUNLOCK(s->omutex);
    if (rv == APR_SUCCESS && !(flags & ISS_STORE_LAZY))
        rv = iss_store__wal_durable(s, gen, end);
    return rv;
}

apr_status_t iss_store_txn_get(iss_store_txn_t *txn, const void *key,
                               apr_size_t klen, void **val, apr_size_t *vlen,
                               apr_pool_t *pool)
{
    iss_store_t *s = txn->s;
    const op_t *op;
    const ov_ent_t *e;
    apr_status_t rv;

    if (!key)
        key = "";
    if (klen > ISS_STORE_MAX_KEY) {
        txn->failed = 1;
        return iss_store__fail(s, ISS_STORE_ETOOBIG,
                               "key of %" APR_SIZE_T_FMT " bytes is larger "
                               "than the limit of %d bytes", klen,
                               ISS_STORE_MAX_KEY);
    }
    op = apr_hash_get(txn->ops->index, key, (apr_ssize_t)klen);
    if (op) {
        char *v;

        if (op->del)
            return APR_NOTFOUND;
        v = apr_palloc(pool, op->vlen + 1);
        iss_store__copy_bytes(v, op->val, op->vlen + 1);
        *val = v;
        *vlen = op->vlen;
        return APR_SUCCESS;
    }
    if ((e = iss_store__ov_get(s, key, klen)) != NULL)
        return copy_out(e, val, vlen, pool);
    if (!txn->db) {
        /* A checkpoint's commits go on without the writers' lock: the
         * shared DBM lock keeps them out while this reads. */
        if ((rv = iss_store__dbm_lock(s, 0)) != APR_SUCCESS
            || (rv = dbm_current(s, txn->pool)) != APR_SUCCESS) {
            txn->failed = 1;
            return rv;
        }
        rv = iss_store__db_open(s,
                                iss_store__gen_path(s, txn->pool, s->gen, 0),
                                APR_DBM_READONLY, txn->pool, &txn->db);
        if (rv != APR_SUCCESS) {
            txn->failed = 1;
            return rv;
        }
    }
    rv = iss_store__read_entry(txn->db, key, klen, pool, pool, val, vlen);
    if (rv == APR_SUCCESS || rv == APR_NOTFOUND)
        iss_store__ov_cache(s, key, klen, rv == APR_SUCCESS ? *val : NULL,
                            rv == APR_SUCCESS ? *vlen : 0,
                            rv == APR_NOTFOUND);
    else
        txn->failed = 1;
    return rv;
}

void iss_store_txn_put(iss_store_txn_t *txn, const void *key, apr_size_t klen,
                       const void *val, apr_size_t vlen)
{
    iss_store__opset_stage(txn->ops, key, klen, val, vlen, 0);
}

void iss_store_txn_delete(iss_store_txn_t *txn, const void *key,
                          apr_size_t klen)
{
    iss_store__opset_stage(txn->ops, key, klen, NULL, 0, 1);
}

iss_store_batch_t *iss_store_batch_make(iss_store_t *store, apr_pool_t *pool)
{
    iss_store_batch_t *b = apr_pcalloc(pool, sizeof(*b));

    b->store = store;
    b->ops = iss_store__opset_make(pool);
    return b;
}

void iss_store_batch_put(iss_store_batch_t *batch, const void *key,
                         apr_size_t klen, const void *val, apr_size_t vlen)
{
    iss_store__opset_stage(batch->ops, key, klen, val, vlen, 0);
}

void iss_store_batch_delete(iss_store_batch_t *batch, const void *key,
                            apr_size_t klen)
{
    iss_store__opset_stage(batch->ops, key, klen, NULL, 0, 1);
}

apr_status_t iss_store_batch_commit(iss_store_batch_t *batch)
{
    return iss_store_batch_commit_ex(batch, 0);
}

apr_status_t iss_store_batch_commit_ex(iss_store_batch_t *batch, int flags)
{
    if (!batch || !batch->store)
        return APR_EINVAL;
    return run_txn(batch->store, NULL, NULL, batch->ops, flags,
                   batch->ops->pool);
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

    iss_store__opset_stage(txn->ops, o->key, o->klen, o->val, o->vlen, o->del);
    return APR_SUCCESS;
}

apr_status_t iss_store_put(iss_store_t *store, const void *key,
                           apr_size_t klen, const void *val, apr_size_t vlen)
{
    one_t o = { key, klen, val, vlen, 0 };

    if (!store || (!key && klen) || (!val && vlen))
        return APR_EINVAL;
    return run_txn(store, stage_one, &o, NULL, 0, NULL);
}

apr_status_t iss_store_delete(iss_store_t *store, const void *key,
                              apr_size_t klen)
{
    one_t o = { key, klen, NULL, 0, 1 };

    if (!store || (!key && klen))
        return APR_EINVAL;
    return run_txn(store, stage_one, &o, NULL, 0, NULL);
}

apr_status_t iss_store_sync(iss_store_t *store)
{
    apr_uint64_t epoch, lo, gen, end;
    int i;

    if (!store || store->closed || !store->shm)
        return APR_EINVAL;
    /* What was committed up to now: a consistent (gen, end). */
    for (i = 0; i < 1000; i++) {
        apr_uint64_t r1 = __atomic_load_n(&store->shm->rot, __ATOMIC_ACQUIRE);

        epoch = __atomic_load_n(&store->shm->epoch, __ATOMIC_ACQUIRE);
        lo = __atomic_load_n(&store->shm->lo, __ATOMIC_ACQUIRE);
        gen = __atomic_load_n(&store->shm->gen, __ATOMIC_ACQUIRE);
        end = __atomic_load_n(&store->shm->end, __ATOMIC_ACQUIRE);
        if (!(r1 & 1)
            && r1 == __atomic_load_n(&store->shm->rot, __ATOMIC_ACQUIRE))
            break;
        apr_sleep(100);
    }
    (void)epoch;
    (void)lo;
    return iss_store__wal_durable(store, gen, end);
}

apr_status_t iss_store_checkpoint(iss_store_t *store, apr_pool_t *pool)
{
    apr_pool_t *p;
    apr_status_t rv;

    int sealed;

    if (!store || !pool)
        return APR_EINVAL;
    if ((rv = op_begin(store, pool, &p)) == APR_SUCCESS)
        rv = iss_store__wal_rotate(store, &sealed, p);
    op_end(store, p);
    if (rv == APR_SUCCESS)
        rv = iss_store__wal_apply(store, 1, pool);
    return rv;
}

/* Begin an operation and open a walk over the primary DBM (the read-only
 * walks: iterate and verify).  On failure the caller still cleans up. */
static apr_status_t walk_primary(iss_store_t *store, apr_pool_t *pool,
                                 apr_pool_t **p, db_t **db, iter_t **it,
                                 apr_pool_t **ip)
{
    apr_status_t rv = op_begin(store, pool, p);

    /* A checkpoint's commits go on without the writers' lock. */
    if (rv != APR_SUCCESS
        || (rv = iss_store__dbm_lock(store, 0)) != APR_SUCCESS
        || (rv = dbm_current(store, *p)) != APR_SUCCESS)
        return rv;
    return iss_store__walk_open(store,
                                iss_store__gen_path(store, *p, store->gen, 0),
                                *p, db, it, ip);
}

apr_status_t iss_store_iterate(iss_store_t *store, const void *prefix,
                               apr_size_t plen, iss_store_iter_fn *fn,
                               void *baton, apr_pool_t *pool)
{
    apr_pool_t *p, *ip = NULL;
    apr_hash_index_t *hi;
    const ov_ent_t *e;
    db_t *db = NULL;
    iter_t *it = NULL;
    apr_status_t rv;

    if (!store || !fn || !pool || (!prefix && plen))
        return APR_EINVAL;
    if ((rv = walk_primary(store, pool, &p, &db, &it, &ip)) != APR_SUCCESS)
        goto cleanup;
    /* The DBM's keys, except those the overlay holds (it is newer)... */
    for (;;) {
        const char *dk, *key;
        apr_size_t dklen, klen, vlen;
        char *val;
        int stop;

        apr_pool_clear(ip);
        if ((rv = iss_store__iter_next(it, p, &dk, &dklen)) != APR_SUCCESS
            || !dk)
            break;
        if (dk[0] == KEY_SEGMENT)
            continue;
        if (plen && dk[0] == KEY_SHORT
            && (dklen - 1 < plen || memcmp(dk + 1, prefix, plen) != 0))
            continue;
        if (dk[0] == KEY_SHORT
            && (e = iss_store__ov_get(store, dk + 1, dklen - 1))
            && OV_LIVE(store, e))
            continue;
        if ((rv = iss_store__load_iterated(db, dk, dklen, ip, &key, &klen,
                                           &val, &vlen, NULL)) != APR_SUCCESS)
            break;
        if (plen && (klen < plen || memcmp(key, prefix, plen) != 0))
            continue;
        if (dk[0] != KEY_SHORT && (e = iss_store__ov_get(store, key, klen))
            && OV_LIVE(store, e))
            continue;
        if ((stop = fn(baton, key, klen, val, vlen)) != 0) {
            rv = stop;
            break;
        }
    }
    /* ... then the overlay's. */
    for (hi = rv == APR_SUCCESS ? apr_hash_first(p, store->ov) : NULL; hi;
         hi = apr_hash_next(hi)) {
        const void *k;
        apr_ssize_t kl;
        void *v;
        int stop;

        apr_hash_this(hi, &k, &kl, &v);
        e = v;
        if (e->del || !OV_LIVE(store, e) || (plen && ((apr_size_t)kl < plen
                                || memcmp(k, prefix, plen) != 0)))
            continue;
        if ((stop = fn(baton, k, (apr_size_t)kl, e->val, e->vlen)) != 0) {
            rv = stop;
            break;
        }
    }
cleanup:
    iss_store__iter_close(it);
    iss_store__db_close(db);
    op_end(store, p);
    return rv;
}

apr_status_t iss_store_verify(iss_store_t *store, apr_pool_t *pool)
{
    apr_pool_t *p, *ip = NULL;
    db_t *db = NULL, *mdb = NULL;
    iter_t *it = NULL;
    apr_hash_t *heads, *seen;
    apr_array_header_t *segs;
    apr_size_t count = 0, mcount = 0;
    const char *dk;
    apr_size_t dklen;
    char kb[128];
    apr_status_t rv;
    int i, lags = 0, ckpt = 0, marks;

    if (!store || !pool)
        return APR_EINVAL;
    if ((rv = walk_primary(store, pool, &p, &db, &it, &ip)) != APR_SUCCESS
        || (rv = iss_store__wal_verify(store, p)) != APR_SUCCESS)
        goto cleanup;
    heads = apr_hash_make(p);
    seen = apr_hash_make(p);
    segs = apr_array_make(p, 16, sizeof(char *));

    /* Every record: reachable by key, checksum, segments, key hash, and
     * once (a key on two pages: an sdbm store that lost an update, design
     * 4.2, keeps the older record where lookups find it). */
    for (;;) {
        const char *key;
        apr_size_t klen, vlen;
        apr_uint32_t nseg = 0;
        char *val;

        apr_pool_clear(ip);
        if ((rv = iss_store__iter_next(it, p, &dk, &dklen)) != APR_SUCCESS
            || !dk)
            break;
        count++;
        if (apr_hash_get(seen, dk, (apr_ssize_t)dklen)) {
            rv = iss_store__damaged(store, "record %s is twice in %s (on two "
                                    "pages): the DBM is damaged",
                                    iss_store__show_dk(kb, sizeof(kb), dk,
                                                       dklen), db->path);
            break;
        }
        apr_hash_set(seen, apr_pmemdup(p, dk, dklen), (apr_ssize_t)dklen, "");
        if ((rv = iss_store__load_iterated(db, dk, dklen, ip, &key, &klen,
                                           &val, &vlen, &nseg)) != APR_SUCCESS)
            break;
        if (!key) {
            APR_ARRAY_PUSH(segs, char *) = apr_pmemdup(p, dk, dklen);
        }
        else if (nseg) {
            unsigned char *id = apr_palloc(p, SHA_LEN);
            apr_uint32_t *n = apr_palloc(p, sizeof(*n));

            if ((rv = iss_store__seg_id(store, dk, dklen, id)) != APR_SUCCESS)
                break;
            *n = nseg;
            apr_hash_set(heads, id, SHA_LEN, n);
        }
    }
    iss_store__iter_close(it);
    it = NULL;
    if (rv != APR_SUCCESS)
        goto cleanup;

    /* Every segment belongs to a head. */
    for (i = 0; i < segs->nelts; i++) {
        const char *sk = APR_ARRAY_IDX(segs, i, const char *);
        const apr_uint32_t *n = apr_hash_get(heads, sk + 1, SHA_LEN);

        if (!n || iss_be32_get((const unsigned char *)sk + 1 + SHA_LEN)
                  >= *n) {
            rv = iss_store__damaged(store, "%s in %s belongs to no record",
                                    iss_store__show_dk(kb, sizeof(kb), sk,
                                                       SEGKEY_LEN), db->path);
            goto cleanup;
        }
    }

    /* The mirror holds exactly the same records; while it lags behind
     * the primary (applied log generations it lacks, a checkpoint under
     * way), its records are each whole.  Only while no checkpoint runs
     * (which may copy the primary over it): else it is not looked at. */
    if (!(ckpt = iss_store__ckpt_try(store))
        || iss_store__file_exists(iss_store__fpath(store, p, JOURNAL_MIRROR),
                                  p))
        goto cleanup;                   /* a copy died: the next makes it */
    lags = iss_store__mirror_lags(store, p, &marks);
    if ((rv = iss_store__db_open(store,
                                 iss_store__gen_path(store, p, store->gen, 1),
                                 APR_DBM_READONLY, p, &mdb)) != APR_SUCCESS
        || (rv = iss_store__iter_open(store, mdb, p, &it)) != APR_SUCCESS)
        goto cleanup;
    for (;;) {
        char *mrec, *rec;
        apr_size_t mlen, len;

        apr_pool_clear(ip);
        if ((rv = iss_store__iter_next(it, p, &dk, &dklen)) != APR_SUCCESS
            || !dk)
            break;
        mcount++;
        if ((rv = iss_store__db_fetch(mdb, dk, dklen, ip, &mrec, &mlen))
                != APR_SUCCESS
            || (rv = iss_store__db_fetch(db, dk, dklen, ip, &rec, &len))
               != APR_SUCCESS)
            break;
        if (!mrec) {
            rv = iss_store__damaged(store, "record %s is found by iterating "
                                    "over %s but not by looking up its key: "
                                    "the DBM is damaged",
                                    iss_store__show_dk(kb, sizeof(kb), dk,
                                                       dklen), mdb->path);
            break;
        }
        if (lags) {
            if (!iss_store__rec_ok(dk, dklen, mrec, mlen)) {
                rv = iss_store__damaged(store, "record %s of the mirror copy "
                                        "%s fails its checksum",
                                        iss_store__show_dk(kb, sizeof(kb), dk,
                                                           dklen), mdb->path);
                break;
            }
            continue;
        }
        if (!rec || len != mlen || memcmp(rec, mrec, len) != 0) {
            rv = iss_store__damaged(store, "the mirror copy %s differs from "
                                    "%s at record %s", mdb->path, db->path,
                                    iss_store__show_dk(kb, sizeof(kb), dk,
                                                       dklen));
            break;
        }
    }
    if (rv == APR_SUCCESS && !lags && mcount != count)
        rv = iss_store__damaged(store, "the mirror copy %s holds %"
                                APR_SIZE_T_FMT " records, %s holds %"
                                APR_SIZE_T_FMT, mdb->path, mcount, db->path,
                                count);
cleanup:
    if (ckpt)
        iss_store__ckpt_release(store);
    iss_store__iter_close(it);
    iss_store__db_close(mdb);
    iss_store__db_close(db);
    op_end(store, p);
    return rv;
}
