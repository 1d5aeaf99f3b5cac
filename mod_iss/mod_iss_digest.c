/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "mod_iss_digest.h"
#include "mod_iss_owncloud.h"
#include "mod_iss_config.h"
#include "mod_iss_provider.h"
#include "mod_iss_state.h"
#include "iss_bytes.h"
#include "iss_manifest_bg.h"

#include <apr_general.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>

#define DIGEST_IN_FILTER "ISS_DIGEST_IN"

/* A digest computed from a file is cached only if the file was last
 * modified longer ago than this before the read began: a writer in the
 * same clock tick could change the bytes and keep size and mtime. */
#define SETTLE apr_time_from_sec(1)

/* What a request remembers per URI: a digest, or that there is none. */
typedef struct known_t {
    int found;
    unsigned char sha256[ISS_DIGEST_SHA256_LEN];
    iss_digest_sums_t sums;       /* the checksums known with it */
} known_t;

static apr_hash_t *known_of(request_rec *r)
{
    iss_request_t *req = iss_provider_request(r);

    if (req->digests == NULL) {
        req->digests = apr_hash_make(r->pool);
    }
    return req->digests;
}

void iss_digest_remember(request_rec *r, const char *uri,
                         const unsigned char *sha256)
{
    known_t *k = NULL;

    if (sha256) {
        k = apr_pcalloc(r->pool, sizeof(*k));
        k->found = 1;
        memcpy(k->sha256, sha256, ISS_DIGEST_SHA256_LEN);
    }
    apr_hash_set(known_of(r), apr_pstrdup(r->pool, uri), APR_HASH_KEY_STRING,
                 k);
}

/* Digests computed for files changed outside httpd are kept with one
 * store commit per request, when it ends (a PROPFIND or sync answer may
 * compute thousands; one fsynced commit each would cost seconds). */
typedef struct keep_t {
    request_rec *r;                 /* the main request */
    iss_store_t *store;
    iss_store_batch_t *batch;
    int n;
} keep_t;

static apr_status_t keep_flush(void *data)
{
    keep_t *kp = data;
    apr_status_t rv;

    /* The process is exiting (a prefork child stopped in the middle of
     * this request): its store handles are closed.  The digests are a
     * cache; they are computed again. */
    if (iss_state_exiting()) {
        return APR_SUCCESS;
    }
    /* Lazy: a digest lost with the power is computed again. */
    rv = iss_store_batch_commit_ex(kp->batch, ISS_STORE_LAZY);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, kp->r, ISSLOGNO(01052)
                      "cannot keep %d digest(s) of files changed outside "
                      "httpd in the state store (%s); they will be "
                      "computed again", kp->n,
                      iss_store_last_error(kp->store));
    }
    return APR_SUCCESS;
}

/* The main request of @a r, if it uses the same store, else @a r. */
static request_rec *main_of(request_rec *r)
{
    request_rec *main = r;

    while (main->main) {
        main = main->main;
    }
    return main == r || iss_state_same_location(main, r) ? main : r;
}

static void keep(request_rec *r, const char *rel, const iss_filedigest_t *d)
{
    request_rec *main = main_of(r);
    iss_request_t *mreq = iss_provider_request(main);
    keep_t *kp;

    if ((kp = mreq->keep) == NULL) {
        iss_store_t *store;

        if (iss_state_store(main, &store) != NULL) {
            return;
        }
        kp = mreq->keep = apr_pcalloc(main->pool, sizeof(*kp));
        kp->r = main;
        kp->store = store;
        kp->batch = iss_store_batch_make(store, main->pool);
        /* A pre-cleanup: it runs before the pool's sub-pools (the store
         * handle's among them) are destroyed. */
        apr_pool_pre_cleanup_register(main->pool, kp, keep_flush);
    }
    iss_filedigest_stage(kp->batch, rel, d, main->pool);
    kp->n++;
}

/* ---- the digest cache shared by httpd's processes -------------------------
 * A table in shared memory made before httpd forks its children (so all
 * processes, of every MPM, and every generation after a graceful restart
 * see the same one), of slots naming a version of a file by its identity
 * (device, inode, size, mtime and ctime: the ctime changes with any write
 * and cannot be set, so no other content has it) with the SHA-256 of its
 * bytes, found by device and inode.  A slot that matches the file as a
 * request sees it is right however it got there: no invalidation, one
 * for another version just does not match.  Filled from store lookups
 * and computed digests (never from a write before its file is in place:
 * a slot is only ever made from the identity of a file on disk).
 *
 * Each slot is a sequence lock of 64-bit words: a writer makes the
 * sequence odd (compare-and-swap: two writers of one slot do not mix;
 * the loser just does not cache), writes, and makes it even again; a
 * reader takes the slot only if the sequence was even and unchanged
 * around its copy.  A process killed while writing leaves that slot odd,
 * unused; no lock is ever waited for.  Four slots per bucket, with a
 * hint of which file each holds.  ISS_DIGEST_CACHE_SLOTS sets the number
 * (a power of two, 0: none; default 262,144, 88 bytes each: 22 MiB of
 * shared memory, only the touched pages used). */

#define DC_SEQ   0
#define DC_DEV   1
#define DC_INO   2
#define DC_SIZE  3
#define DC_MTIME 4
#define DC_CTIME 5
#define DC_SHA   6                  /* 4 words */
#define DC_WORDS 10
#define DC_DEFAULT_SLOTS 262144
#define DC_WAYS 4                   /* slots per bucket */

typedef struct dc_slot {
    apr_uint64_t w[DC_WORDS];
} dc_slot;

/* A bucket: a hint per slot (which file it holds, 0: none) in one cache
 * line, so that a lookup reads one slot, not four. */
typedef struct dc_bucket_t {
    apr_uint64_t tag[DC_WAYS];
    dc_slot slot[DC_WAYS];
} dc_bucket_t;

static struct {
    dc_bucket_t *buckets;
    apr_uint64_t mask;              /* buckets - 1 */
} dc;

static apr_uint64_t dc_mix(apr_uint64_t x)
{
    x ^= x >> 33;
    x *= APR_UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= APR_UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

/* The identity words of @a fi; 0 if it lacks one. */
static int dc_ident(const apr_finfo_t *fi, apr_uint64_t id[DC_SHA])
{
    if ((fi->valid & (APR_FINFO_IDENT | APR_FINFO_SIZE | APR_FINFO_MTIME
                      | APR_FINFO_CTIME))
        != (APR_FINFO_IDENT | APR_FINFO_SIZE | APR_FINFO_MTIME
            | APR_FINFO_CTIME)
        || fi->filetype != APR_REG) {
        return 0;
    }
    id[DC_DEV] = (apr_uint64_t)fi->device;
    id[DC_INO] = (apr_uint64_t)fi->inode;
    id[DC_SIZE] = (apr_uint64_t)fi->size;
    id[DC_MTIME] = (apr_uint64_t)fi->mtime;
    id[DC_CTIME] = (apr_uint64_t)fi->ctime;
    return 1;
}

/* The file's hash (never 0: the tag of an empty slot) and bucket. */
static dc_bucket_t *dc_find(const apr_uint64_t id[DC_SHA], apr_uint64_t *tag)
{
    apr_uint64_t h = dc_mix(id[DC_DEV] * APR_UINT64_C(0x9e3779b97f4a7c15)
                            ^ id[DC_INO]);

    *tag = h | 1;
    return &dc.buckets[(h >> 8) & dc.mask];
}

/* A consistent copy of @a s (the sequence even and unchanged around it). */
static int dc_read(dc_slot *s, apr_uint64_t out[DC_WORDS])
{
    apr_uint64_t seq = __atomic_load_n(&s->w[DC_SEQ], __ATOMIC_ACQUIRE);
    int i;

    if (seq == 0 || (seq & 1)) {
        return 0;
    }
    for (i = 1; i < DC_WORDS; i++) {
        out[i] = __atomic_load_n(&s->w[i], __ATOMIC_RELAXED);
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return __atomic_load_n(&s->w[DC_SEQ], __ATOMIC_RELAXED) == seq;
}

/* The cached digest of the file @a fi is, if any. */
static int dcache_get(const apr_finfo_t *fi,
                      unsigned char sha[ISS_DIGEST_SHA256_LEN])
{
    apr_uint64_t id[DC_SHA], got[DC_WORDS], tag;
    dc_bucket_t *b;
    int i, j;

    if (dc.buckets == NULL || !dc_ident(fi, id)) {
        return 0;
    }
    b = dc_find(id, &tag);
    for (i = 0; i < DC_WAYS; i++) {
        /* The tag is a hint; the slot itself is checked. */
        if (__atomic_load_n(&b->tag[i], __ATOMIC_RELAXED) != tag
            || !dc_read(&b->slot[i], got)) {
            continue;
        }
        for (j = DC_DEV; j < DC_SHA && got[j] == id[j]; j++) {
        }
        if (j == DC_SHA) {
            memcpy(sha, &got[DC_SHA], ISS_DIGEST_SHA256_LEN);
            return 1;
        }
    }
    return 0;
}

/* Cache @a sha as the digest of the file @a fi is (on disk now). */
static void dcache_put(const apr_finfo_t *fi,
                       const unsigned char sha[ISS_DIGEST_SHA256_LEN])
{
    apr_uint64_t id[DC_WORDS], seq, tag;
    dc_bucket_t *b;
    int i, pick = -1;

    if (dc.buckets == NULL || !dc_ident(fi, id)) {
        return;
    }
    memcpy(&id[DC_SHA], sha, ISS_DIGEST_SHA256_LEN);
    b = dc_find(id, &tag);
    /* The slot of this file (another version of it), else an empty one,
     * else the one the ctime picks. */
    for (i = 0; i < DC_WAYS; i++) {
        apr_uint64_t t = __atomic_load_n(&b->tag[i], __ATOMIC_RELAXED);

        if (t == tag) {
            pick = i;
            break;
        }
        if (t == 0 && pick < 0) {
            pick = i;
        }
    }
    if (pick < 0) {
        pick = (int)(id[DC_CTIME] % DC_WAYS);
    }
    seq = __atomic_load_n(&b->slot[pick].w[DC_SEQ], __ATOMIC_RELAXED);
    if ((seq & 1)
        || !__atomic_compare_exchange_n(&b->slot[pick].w[DC_SEQ], &seq,
                                        seq + 1, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED)) {
        return;                     /* being written (or dead): skip */
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
    for (i = 1; i < DC_WORDS; i++) {
        __atomic_store_n(&b->slot[pick].w[i], id[i], __ATOMIC_RELAXED);
    }
    __atomic_store_n(&b->tag[pick], tag, __ATOMIC_RELAXED);
    __atomic_store_n(&b->slot[pick].w[DC_SEQ], seq + 2, __ATOMIC_RELEASE);
}

static void dcache_put_record(const apr_finfo_t *fi, const iss_filedigest_t *d)
{
    if (iss_filedigest_matches(d, fi)) {
        dcache_put(fi, d->sha256);
    }
}

void iss_digest_post_config(server_rec *s)
{
    static const char key[] = "mod_iss digest cache";
    apr_pool_t *pool = s->process->pool;
    const char *env = getenv("ISS_DIGEST_CACHE_SLOTS");
    apr_uint64_t slots = DC_DEFAULT_SLOTS;
    apr_shm_t *shm;
    void *made;

    /* Once per httpd, in the process pool: kept across restarts, which
     * unload this module (and its statics) and load it again. */
    apr_pool_userdata_get(&made, key, pool);
    if (made) {
        shm = made;
        dc.buckets = apr_shm_baseaddr_get(shm);
        dc.mask = apr_shm_size_get(shm) / sizeof(dc_bucket_t) - 1;
        return;
    }
    dc.buckets = NULL;
    if (env && *env) {
        char *end;
        apr_int64_t v = apr_strtoi64(env, &end, 10);

        slots = v > 0 && *end == '\0' ? (apr_uint64_t)v : 0;
        while (slots & (slots - 1)) {
            slots &= slots - 1;     /* down to a power of two */
        }
        if (slots < DC_WAYS) {
            slots = 0;
        }
    }
    if (slots == 0) {
        return;                     /* (asked again at each restart) */
    }
    if (apr_shm_create(&shm, (apr_size_t)(slots / DC_WAYS
                                          * sizeof(dc_bucket_t)),
                       NULL, pool) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, ISSLOGNO(01081)
                     "cannot make the shared digest cache (%" APR_UINT64_T_FMT
                     " slots): digests are read from the state store each "
                     "time", slots);
        return;
    }
    apr_pool_userdata_set(shm, key, apr_pool_cleanup_null, pool);
    /* New anonymous shared memory is zeroes (empty slots); not written
     * here, so that only the pages used are ever backed. */
    dc.buckets = apr_shm_baseaddr_get(shm);
    dc.mask = slots / DC_WAYS - 1;
}

/* ---- looking records up -------------------------------------------------
 * The shared cache first.  A store read per file costs a view of the
 * store and a DBM lookup (10 to 50 us, the DBM's pages read from the page
 * cache): from the eighth file of a folder the cache misses in one
 * request (a cache still cold: the first walk after a start), it reads
 * the records of every file of the folder in one view instead. */

typedef struct folder_t {
    int misses;
    apr_hash_t *records;          /* name -> iss_filedigest_t, once read */
} folder_t;

typedef struct fetch_ctx {
    const char *folder;           /* relative, "" for the root */
    apr_array_header_t *names;
    apr_hash_t *records;
    apr_pool_t *pool;
} fetch_ctx;

static apr_status_t fetch_txn(void *baton, iss_store_txn_t *txn)
{
    fetch_ctx *c = baton;
    apr_pool_t *iter;
    int i;

    apr_pool_create(&iter, c->pool);
    for (i = 0; i < c->names->nelts; i++) {
        const char *name = APR_ARRAY_IDX(c->names, i, const char *);
        const char *key;
        iss_filedigest_t d, *dp;
        apr_size_t vlen;
        void *val;

        apr_pool_clear(iter);
        key = iss_filedigest_key(*c->folder ? apr_pstrcat(iter, c->folder,
                                                          "/", name, NULL)
                                            : name, iter);
        if (iss_store_txn_get(txn, key, strlen(key), &val, &vlen, iter)
            == APR_SUCCESS
            && iss_filedigest_decode(val, vlen, &d) == APR_SUCCESS) {
            dp = apr_pmemdup(c->pool, &d, sizeof(d));
            apr_hash_set(c->records, name, APR_HASH_KEY_STRING, dp);
        }
    }
    apr_pool_destroy(iter);
    return APR_SUCCESS;
}

/* The records of every file of @a folder (@a dir on disk). */
static apr_hash_t *fetch_folder(request_rec *main, iss_store_t *store,
                                const char *folder, const char *dir)
{
    fetch_ctx c = { folder, apr_array_make(main->pool, 64, sizeof(char *)),
                    apr_hash_make(main->pool), main->pool };
    apr_finfo_t fi;
    apr_dir_t *d;

    if (apr_dir_open(&d, dir, main->pool) != APR_SUCCESS) {
        return c.records;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d)
           == APR_SUCCESS) {
        if (fi.filetype == APR_REG
            && !iss_scan_ignored(iss_state_ignore(main), fi.name)) {
            APR_ARRAY_PUSH(c.names, const char *) = apr_pstrdup(main->pool,
                                                                fi.name);
        }
    }
    apr_dir_close(d);
    if (iss_store_view(store, fetch_txn, &c, ISS_STORE_LAZY, main->pool)
        != APR_SUCCESS) {
        apr_hash_clear(c.records);
    }
    return c.records;
}

/* The record of @a rel for the file @a fi, if there is one that matches:
 * from the folder's records once they were read, else one store read. */
static apr_status_t lookup(request_rec *r, iss_store_t *store,
                           const char *rel, const char *path,
                           const apr_finfo_t *fi, unsigned sums, known_t *k)
{
    request_rec *main = main_of(r);
    iss_request_t *mreq;
    const char *slash = strrchr(rel, '/');
    const char *folder = slash ? apr_pstrmemdup(r->pool, rel,
                                                (apr_size_t)(slash - rel))
                               : "";
    const char *name = slash ? slash + 1 : rel;
    folder_t *fo;

    /* The shared cache holds digests alone, not ownCloud's checksums. */
    if (sums == 0 && dcache_get(fi, k->sha256)) {
        k->found = 1;
        return APR_SUCCESS;
    }
    mreq = iss_provider_request(main);
    if (mreq->folders == NULL) {
        mreq->folders = apr_hash_make(main->pool);
    }
    fo = apr_hash_get(mreq->folders, folder, APR_HASH_KEY_STRING);
    if (fo == NULL) {
        fo = apr_pcalloc(main->pool, sizeof(*fo));
        apr_hash_set(mreq->folders, apr_pstrdup(main->pool, folder),
                     APR_HASH_KEY_STRING, fo);
    }
    /* Past a few misses (a cold cache) all the folder's records at once;
     * a few misses in a folder mostly cached, one by one. */
    if (fo->records == NULL && ++fo->misses >= 8) {
        fo->records = fetch_folder(main, store, folder,
                                   apr_pstrmemdup(r->pool, path,
                                                  strlen(path)
                                                  - strlen(name) - 1));
    }
    if (fo->records) {
        const iss_filedigest_t *d = apr_hash_get(fo->records, name,
                                                 APR_HASH_KEY_STRING);

        k->found = d && iss_filedigest_matches(d, fi);
        if (k->found) {
            memcpy(k->sha256, d->sha256, ISS_DIGEST_SHA256_LEN);
            k->sums = d->sums;
            dcache_put_record(fi, d);
        }
        return APR_SUCCESS;
    }
    {
        iss_filedigest_t d;
        apr_status_t rv = iss_filedigest_get(store, rel, fi, &d, &k->found,
                                             r->pool);

        if (rv == APR_SUCCESS && k->found) {
            memcpy(k->sha256, d.sha256, ISS_DIGEST_SHA256_LEN);
            k->sums = d.sums;
            dcache_put(fi, k->sha256);
        }
        return rv;
    }
}

/* lookup(), with a store error logged and turned into "not found";
 * *store becomes NULL then (nothing is kept in a store that fails). */
static void lookup_logged(request_rec *r, iss_store_t **store,
                          const char *uri, const char *rel, const char *path,
                          const apr_finfo_t *fi, unsigned sums, known_t *k)
{
    apr_status_t rv = lookup(r, *store, rel, path, fi, sums, k);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, ISSLOGNO(01049)
                      "cannot read the digest of %s from the state store "
                      "(%s); computing it", uri,
                      iss_store_last_error(*store));
        k->found = 0;
        *store = NULL;
    }
}

/* Whether @a k is a digest with the checksums @a sums too. */
static int enough(const known_t *k, unsigned sums)
{
    return k->found && (k->sums.have & sums) == sums;
}

/* Look up (unless @a looked) or compute the digest of the file @a f
 * (open, described by @a fi) at @a uri, with the checksums @a sums
 * (ISS_SUM_* bits; 0: the digest alone); @a store NULL: no store.
 * @a path only names it in messages. */
static void compute_file(request_rec *r, const char *uri, const char *rel,
                         apr_file_t *f, const apr_finfo_t *fi,
                         const char *path, iss_store_t *store, int looked,
                         unsigned sums, known_t *k)
{
    iss_filedigest_t d;
    apr_status_t rv;
    int stable;

    if (store && !looked) {
        lookup_logged(r, &store, uri, rel, path, fi, sums, k);
        if (enough(k, sums)) {
            return;
        }
    }
    /* The checksums the location keeps come with every digest it reads
     * a file for: one read, whatever is asked next. */
    sums |= iss_config_oc_sums(iss_config_dir(r));
    rv = iss_filedigest_compute_file_sums(f, &d, sums, SETTLE, &stable,
                                          r->pool);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01050)
                      "cannot read %s to compute its digest", path);
        return;
    }
    memcpy(k->sha256, d.sha256, ISS_DIGEST_SHA256_LEN);
    k->sums = d.sums;
    k->found = 1;
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ISSLOGNO(01051)
                  "computed the digest of %s (%" APR_OFF_T_FMT " bytes, "
                  "changed outside mod_iss)%s", uri, d.size,
                  stable ? "" : "; not kept, it changed very recently");
    if (store && stable) {
        keep(r, rel, &d);
        dcache_put_record(fi, &d);
    }
}

#define FILE_INFO (APR_FINFO_IDENT | APR_FINFO_SIZE | APR_FINFO_MTIME \
                   | APR_FINFO_TYPE | APR_FINFO_CTIME)

/* The store, opened once per main request (a sync answer makes one
 * sub-request per member). */
static iss_store_t *store_of(request_rec *r)
{
    iss_store_t *store;

    return iss_state_store(main_of(r), &store) == NULL ? store : NULL;
}

static void compute(request_rec *r, const char *uri,
                    const dav_resource *res, unsigned sums, known_t *k)
{
    const char *rel = iss_state_rel_path(r, uri);
    const char *root = iss_state_root_fs(r);
    const apr_finfo_t *walked;
    iss_store_t *store;
    const char *path;
    apr_file_t *f;
    apr_finfo_t fi, opened;

    if (rel == NULL || root == NULL || *rel == '\0') {
        return;
    }
    path = apr_pstrcat(r->pool, root, "/", rel, NULL);
    /* A PROPFIND member: what mod_dav_fs's walk found (the same stat its
     * other properties come from); otherwise a stat of our own. */
    if ((walked = iss_provider_fs_finfo(res, path)) != NULL
        && walked->filetype == APR_REG) {
        fi = *walked;
    }
    else if (apr_stat(&fi, path, FILE_INFO, r->pool) != APR_SUCCESS) {
        return;
    }
    if (fi.filetype != APR_REG) {
        return;
    }
    /* The usual case: a record for the file as it is (no open). */
    if ((store = store_of(r)) != NULL) {
        lookup_logged(r, &store, uri, rel, path, &fi, sums, k);
        if (enough(k, sums)) {
            return;
        }
    }
    if (apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0,
                      r->pool) != APR_SUCCESS) {
        return;
    }
    /* Look again only if what was opened is not what was looked up. */
    if (apr_file_info_get(&opened, FILE_INFO, f) == APR_SUCCESS
        && opened.filetype == APR_REG) {
        compute_file(r, uri, rel, f, &opened, path, store,
                     opened.inode == fi.inode && opened.size == fi.size
                     && opened.mtime == fi.mtime, sums, k);
    }
    apr_file_close(f);
}

void iss_digest_of_file(request_rec *r, const char *uri, apr_file_t *f,
                        const apr_finfo_t *fi,
                        unsigned char out[ISS_DIGEST_SHA256_LEN], int *found)
{
    known_t k = { 0 };
    const char *rel = iss_state_rel_path(r, uri);

    compute_file(r, uri, rel, f, fi, uri, rel && *rel ? store_of(r) : NULL,
                 0, 0, &k);
    *found = k.found;
    if (k.found) {
        memcpy(out, k.sha256, ISS_DIGEST_SHA256_LEN);
    }
}

/* What the request knows of @a uri, with the checksums @a sums at least
 * when it knows anything. */
static const known_t *known(request_rec *r, const char *uri,
                            const dav_resource *res, unsigned sums)
{
    apr_hash_t *all = known_of(r);
    known_t *k = apr_hash_get(all, uri, APR_HASH_KEY_STRING);

    if (k == NULL || (k->found && !enough(k, sums))) {
        k = apr_pcalloc(r->pool, sizeof(*k));
        compute(r, uri, res, sums, k);
        apr_hash_set(all, apr_pstrdup(r->pool, uri), APR_HASH_KEY_STRING,
                     k);
    }
    return k;
}

void iss_digest_of_uri(request_rec *r, const char *uri,
                       unsigned char out[ISS_DIGEST_SHA256_LEN], int *found)
{
    const known_t *k = known(r, uri, NULL, 0);

    *found = k->found;
    if (k->found) {
        memcpy(out, k->sha256, ISS_DIGEST_SHA256_LEN);
    }
}

void iss_digest_of_resource(request_rec *r, const char *uri,
                            const dav_resource *res,
                            unsigned char out[ISS_DIGEST_SHA256_LEN],
                            int *found)
{
    const known_t *k = known(r, uri, res, 0);

    *found = k->found;
    if (k->found) {
        memcpy(out, k->sha256, ISS_DIGEST_SHA256_LEN);
    }
}

void iss_digest_sums_of_uri(request_rec *r, const char *uri, unsigned sums,
                            iss_digest_sums_t *out, int *found)
{
    const known_t *k = known(r, uri, NULL, sums);

    *found = enough(k, sums);
    if (*found) {
        *out = k->sums;
    }
}

const char *iss_digest_etag_of_uri(request_rec *r, const char *uri)
{
    unsigned char sha[ISS_DIGEST_SHA256_LEN];
    int found;

    iss_digest_of_uri(r, uri, sha, &found);
    return found ? iss_digest_etag(sha, r->pool) : NULL;
}

int iss_digest_may_read(request_rec *r, const char *uri)
{
    if ((r->method_number == M_GET || r->header_only)
        && strcmp(uri, r->uri) == 0) {
        return 1;                     /* httpd authorised this very GET */
    }
    return iss_state_may(r, "GET", uri);
}

const char *iss_digest_condition_etag(request_rec *r, const char *uri,
                                      const unsigned char *sha256,
                                      int *unreadable)
{
    int readable = iss_digest_may_read(r, uri);

    if (unreadable) {
        *unreadable = !readable;
    }
    return readable ? iss_digest_etag(sha256, r->pool)
                    : iss_digest_unreadable_etag(r);
}

const char *iss_digest_unreadable_etag(request_rec *r)
{
    iss_request_t *req = iss_provider_request(r);
    unsigned char rnd[16];

    if (req->unreadable_etag == NULL) {
        if (apr_generate_random_bytes(rnd, sizeof(rnd)) != APR_SUCCESS) {
            /* No randomness: an ETag no client can send (an empty
             * quoted string is never a strong ETag of ours, and a weak
             * one never matches If-Match).  Still the same answer for
             * every guess. */
            req->unreadable_etag = "W/\"\"";
        }
        else {
            req->unreadable_etag =
                apr_pstrcat(r->pool, "\"unreadable-",
                            iss_hex_pencode(rnd, sizeof(rnd), r->pool), "\"",
                            NULL);
        }
    }
    return req->unreadable_etag;
}

int iss_digest_wanted_by(request_rec *r)
{
    return iss_config_digest_always(iss_config_dir(r))
           || iss_digest_wanted(apr_table_get(r->headers_in,
                                              "Want-Repr-Digest"));
}

/* ---- PUT: the body's digest, verified against what the client says ---- */

typedef struct body_ctx {
    iss_digest_t *sha;                /* or: */
    iss_manifest_bg_t *builder;       /* the chunks' and the body's, on
                                       * a second thread */
    iss_digest_sums_ctx_t *sums;      /* ownCloud's checksums, or NULL */
    iss_digest_body_t body;
    int want_repr, want_content;      /* headers to check at the end */
    unsigned char repr[ISS_DIGEST_SHA256_LEN];
    unsigned char content[ISS_DIGEST_SHA256_LEN];
    iss_oc_put_t oc;                  /* OC-Checksum (ISSOwnCloudCompat) */
    int done;
} body_ctx;

const iss_digest_body_t *iss_digest_put_body(request_rec *r)
{
    return iss_provider_request(r)->put_body;
}

/* Refuse the PUT: answer 400 with our error body now, then fail the
 * body read with AP_FILTER_ERROR ("answered already"): mod_dav drops its
 * temporary file (the old file stays), sends nothing more and, quieted,
 * logs nothing; we log the refusal at info.  @a tag names the condition
 * (docs/protocol.md section 2.3). */
static apr_status_t refuse(ap_filter_t *f, const char *tag, const char *why)
{
    request_rec *r = f->r;
    dav_error err = { 0 };

    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ISSLOGNO(01053)
                  "PUT %s refused: %s", r->uri, why);
    ap_remove_input_filter(f);
    err.status = HTTP_BAD_REQUEST;
    err.desc = apr_pstrcat(r->pool, why, " Nothing was stored.", NULL);
    iss_error_answer(r, &err, tag);
    return AP_FILTER_ERROR;
}

/* A header that cannot be honoured: the first read fails (fail_filter). */
typedef struct fail_t {
    const char *tag;
    const char *why;
} fail_t;

static apr_status_t body_filter(ap_filter_t *f, apr_bucket_brigade *bb,
                                ap_input_mode_t mode,
                                apr_read_type_e block,
                                apr_off_t readbytes)
{
    body_ctx *ctx = f->ctx;
    unsigned char sha[ISS_DIGEST_SHA256_LEN];
    apr_bucket *b;
    apr_status_t rv;

    rv = ap_get_brigade(f->next, bb, mode, block, readbytes);
    if (rv != APR_SUCCESS || mode != AP_MODE_READBYTES || ctx->done) {
        return rv;
    }
    for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
         b = APR_BUCKET_NEXT(b)) {
        const char *data;
        apr_size_t len;

        if (APR_BUCKET_IS_EOS(b)) {
            ctx->done = 1;
            break;
        }
        if (APR_BUCKET_IS_METADATA(b)) {
            continue;
        }
        if ((rv = apr_bucket_read(b, &data, &len, APR_BLOCK_READ))
            != APR_SUCCESS) {
            return rv;
        }
        if (ctx->builder) {
            if ((rv = iss_manifest_bg_feed(ctx->builder, data, len))
                != APR_SUCCESS) {
                return rv;
            }
        }
        else {
            iss_digest_update(ctx->sha, data, len);
        }
        if (ctx->sums) {
            iss_digest_sums_update(ctx->sums, data, len);
        }
        ctx->body.length += (apr_off_t)len;
    }
    if (!ctx->done) {
        return APR_SUCCESS;
    }
    if (ctx->builder) {
        if ((rv = iss_manifest_bg_finish(ctx->builder, &ctx->body.manifest))
            != APR_SUCCESS) {
            return rv;
        }
        memcpy(sha, ctx->body.manifest->file_sha256, sizeof(sha));
    }
    else {
        iss_digest_final(ctx->sha, sha);
    }
    if (ctx->want_repr && memcmp(sha, ctx->repr, sizeof(sha))) {
        return refuse(f, "repr-digest-mismatch",
                      apr_pstrcat(f->r->pool, "The body does not match "
                                  "its Repr-Digest header: its SHA-256 is ",
                                  iss_digest_field(sha, f->r->pool), ".",
                                  NULL));
    }
    if (ctx->want_content && memcmp(sha, ctx->content, sizeof(sha))) {
        return refuse(f, "digest-mismatch",
                      apr_pstrcat(f->r->pool, "The body does not match "
                                  "its Content-Digest header: its SHA-256 "
                                  "is ", iss_digest_field(sha, f->r->pool),
                                  ".", NULL));
    }
    if (ctx->sums) {
        const char *why;

        iss_digest_sums_final(ctx->sums, &ctx->body.sums);
        if ((why = iss_oc_put_check(f->r, &ctx->oc, sha, &ctx->body.sums))
            != NULL) {
            return refuse(f, "checksum-mismatch", why);
        }
        /* Kept: what the location keeps, not what one request asked. */
        ctx->body.sums.have &= iss_config_oc_sums(iss_config_dir(f->r));
    }
    memcpy(ctx->body.sha256, sha, sizeof(sha));
    iss_provider_request(f->r)->put_body = &ctx->body;
    return APR_SUCCESS;
}

int iss_digest_request_field(request_rec *r, const char *name,
                             unsigned char out[ISS_DIGEST_SHA256_LEN],
                             int *want, const char **why)
{
    const char *v = apr_table_get(r->headers_in, name);

    *want = 0;
    if (v == NULL) {
        return 1;
    }
    if (iss_digest_parse(v, out, want) != APR_SUCCESS) {
        *why = apr_pstrcat(r->pool, "The ", name, " header is malformed "
                           "(expected sha-256=:<base64 of 32 bytes>:).",
                           NULL);
        return 0;
    }
    return 1;
}

/* A filter that fails the first read with @a why (a header that cannot
 * be honoured: the PUT must not store anything). */
static apr_status_t fail_filter(ap_filter_t *f, apr_bucket_brigade *bb,
                                ap_input_mode_t mode,
                                apr_read_type_e block,
                                apr_off_t readbytes)
{
    const fail_t *why = f->ctx;

    return refuse(f, why->tag, why->why);
}

static void add_fail_filter(request_rec *r, const char *tag, const char *why)
{
    fail_t *ctx = apr_palloc(r->pool, sizeof(*ctx));

    ctx->tag = tag;
    ctx->why = why;
    ap_add_input_filter("ISS_DIGEST_FAIL", ctx, r, r->connection);
}

static void insert_filter(request_rec *r)
{
    body_ctx *ctx;
    const char *why = NULL, *tag;

    if (r->method_number != M_PUT || r->main || !iss_is_enabled(r)) {
        return;
    }
    ctx = apr_pcalloc(r->pool, sizeof(*ctx));
    ctx->body.whole = apr_table_get(r->headers_in, "Content-Range") == NULL;
    if (!iss_digest_request_field(r, "Repr-Digest", ctx->repr, &ctx->want_repr, &why)
        || !iss_digest_request_field(r, "Content-Digest", ctx->content,
                         &ctx->want_content, &why)) {
        add_fail_filter(r, "invalid-digest", why);
        return;
    }
    if (!iss_oc_put_prepare(r, &ctx->oc, &tag, &why)) {
        add_fail_filter(r, tag, why);
        return;
    }
    if (!ctx->body.whole && (ctx->want_repr || ctx->want_content
                             || ctx->oc.check)) {
        add_fail_filter(r, "digest-with-range", "A PUT with Content-Range "
                        "writes in place, so its digest could only be "
                        "checked after the file changed: send the whole "
                        "file, or no digest header.");
        return;
    }
    if (ctx->body.whole && (ctx->oc.sums | ctx->oc.want.have)
        && iss_digest_sums_create(&ctx->sums, ctx->oc.sums
                                  | ctx->oc.want.have, r->pool)
           != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ISSLOGNO(01076)
                      "SHA-1 or MD5 is not available from OpenSSL; PUT %s "
                      "is stored without them", r->uri);
        ctx->sums = NULL;
        if (ctx->oc.check) {
            add_fail_filter(r, "checksum-unsupported", "The server cannot "
                            "compute the checksum OC-Checksum names.");
            return;
        }
    }
    if (ctx->body.whole && iss_config_chunking(iss_config_dir(r))
        && iss_manifest_bg_create(&ctx->builder,
                                  iss_config_chunk_sizes(iss_config_dir(r)),
                                  r->pool) == APR_SUCCESS) {
        ap_add_input_filter(DIGEST_IN_FILTER, ctx, r, r->connection);
        iss_provider_request(r)->body_filter = 1;
        return;
    }
    if (iss_digest_create(&ctx->sha, r->pool) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ISSLOGNO(01054)
                      "SHA-256 is not available from OpenSSL; PUT %s is "
                      "stored without a digest", r->uri);
        return;
    }
    ap_add_input_filter(DIGEST_IN_FILTER, ctx, r, r->connection);
    iss_provider_request(r)->body_filter = 1;
}

void iss_digest_register_hooks(apr_pool_t *p)
{
    ap_register_input_filter(DIGEST_IN_FILTER, body_filter, NULL,
                             AP_FTYPE_RESOURCE);
    ap_register_input_filter("ISS_DIGEST_FAIL", fail_filter, NULL,
                             AP_FTYPE_RESOURCE);
    ap_hook_insert_filter(insert_filter, NULL, NULL, APR_HOOK_MIDDLE);
}
