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

#include <stdarg.h>
#include <string.h>

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
    apr_vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    return rv;
}

/* Record and log (error level) damage; returns ISS_STORE_EDAMAGED. */
apr_status_t iss_store__damaged(iss_store_t *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    apr_vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    if (s->log)
        s->log(s->log_baton, LOG_ERR, ISS_STORE_EDAMAGED, s->err);
    return ISS_STORE_EDAMAGED;
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
        return iss_store__fail(s, rv, "cannot lock the state store mutex: %pm",
                               &rv);
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
        return iss_store__fail(s, rv, "cannot lock %s: %pm", path, &rv);
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
        iss_store__note(s, LOG_ERR, rv, "cannot unlock the state store mutex");
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
    if ((rv = iss_store__meta_read(s, p, &m, &missing)) != APR_SUCCESS)
        goto cleanup;
    if (missing) {
        rv = iss_store__create(s, p);
        goto cleanup;
    }
    if ((rv = iss_store__check_meta(s, p, &m)) != APR_SUCCESS)
        goto cleanup;
    apr_cpystrn(s->id, m.id, sizeof(s->id));
    s->gen = m.gen;
    if ((rv = iss_store__recover(s, p)) != APR_SUCCESS
        || (rv = iss_store__sweep(s, p)) != APR_SUCCESS)
        goto cleanup;
    for (i = 0; i < 2; i++) {
        db_t *db;

        rv = iss_store__db_open(s, iss_store__gen_path(s, p, s->gen, i),
                                APR_DBM_READONLY, p, &db);
        if (rv != APR_SUCCESS)
            goto cleanup;
        iss_store__db_close(db);
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
                            s->err);
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

void iss_store_set_sync(iss_store_t *store, int on)
{
    store->nosync = !on;
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
        return iss_store__fail(s, rv, "cannot create a pool: %pm", &rv);
    }
    return iss_store__refresh(s, *p);
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
        rv = iss_store__fail(store, ISS_STORE_ETOOBIG,
                             "key of %" APR_SIZE_T_FMT " bytes is larger than "
                             "the limit of %d bytes", klen, ISS_STORE_MAX_KEY);
        goto cleanup;
    }
    rv = iss_store__db_open(store,
                            iss_store__gen_path(store, p, store->gen, 0),
                            APR_DBM_READONLY, p, &db);
    if (rv == APR_SUCCESS)
        rv = iss_store__read_entry(db, key ? key : "", klen, pool, p, val,
                                   vlen);
    if (rv == APR_NOTFOUND)
        iss_store__fail(store, rv, "key %s not found",
                        iss_store__show_bytes(kb, sizeof(kb), key ? key : "",
                                              klen));
cleanup:
    iss_store__db_close(db);
    op_end(store, p);
    return rv;
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
    rv = iss_store__commit(s, txn.ops, p);
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
    if (!txn->db) {
        rv = iss_store__db_open(s,
                                iss_store__gen_path(s, txn->pool, s->gen, 0),
                                APR_DBM_READONLY, txn->pool, &txn->db);
        if (rv != APR_SUCCESS) {
            txn->failed = 1;
            return rv;
        }
    }
    rv = iss_store__read_entry(txn->db, key, klen, pool, pool, val, vlen);
    if (rv != APR_SUCCESS && rv != APR_NOTFOUND)
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

    iss_store__opset_stage(txn->ops, o->key, o->klen, o->val, o->vlen, o->del);
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

/* Begin an operation and open a walk over the primary DBM (the read-only
 * walks: iterate and verify).  On failure the caller still cleans up. */
static apr_status_t walk_primary(iss_store_t *store, apr_pool_t *pool,
                                 apr_pool_t **p, db_t **db, iter_t **it,
                                 apr_pool_t **ip)
{
    apr_status_t rv = op_begin(store, pool, p);

    if (rv != APR_SUCCESS)
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
    db_t *db = NULL;
    iter_t *it = NULL;
    apr_status_t rv;

    if (!store || !fn || !pool || (!prefix && plen))
        return APR_EINVAL;
    if ((rv = walk_primary(store, pool, &p, &db, &it, &ip)) != APR_SUCCESS)
        goto cleanup;
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
        if ((rv = iss_store__load_iterated(db, dk, dklen, ip, &key, &klen,
                                           &val, &vlen, NULL)) != APR_SUCCESS)
            break;
        if (plen && (klen < plen || memcmp(key, prefix, plen) != 0))
            continue;
        if ((stop = fn(baton, key, klen, val, vlen)) != 0) {
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
    if ((rv = walk_primary(store, pool, &p, &db, &it, &ip)) != APR_SUCCESS)
        goto cleanup;
    heads = apr_hash_make(p);
    segs = apr_array_make(p, 16, sizeof(char *));

    /* Every record: reachable by key, checksum, segments, key hash. */
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

    /* The mirror holds exactly the same records. */
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
        if (!rec || len != mlen || memcmp(rec, mrec, len) != 0) {
            rv = iss_store__damaged(store, "the mirror copy %s differs from "
                                    "%s at record %s", mdb->path, db->path,
                                    iss_store__show_dk(kb, sizeof(kb), dk,
                                                       dklen));
            break;
        }
    }
    if (rv == APR_SUCCESS && mcount != count)
        rv = iss_store__damaged(store, "the mirror copy %s holds %"
                                APR_SIZE_T_FMT " records, %s holds %"
                                APR_SIZE_T_FMT, mdb->path, mcount, db->path,
                                count);
cleanup:
    iss_store__iter_close(it);
    iss_store__db_close(mdb);
    iss_store__db_close(db);
    op_end(store, p);
    return rv;
}
