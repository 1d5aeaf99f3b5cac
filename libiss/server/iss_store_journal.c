/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * iss_store_journal.c - committing a batch (see COMMIT at the top of
 * iss_store.c): the staged operations of a batch, the journal (writing
 * and reading it), writing a copy (free-space check, applying the
 * operations, read-back, record count) and the commit protocol itself
 * (journal, primary, commit point, mirror) with the undo of a commit
 * that failed before its commit point.
 */

#include "iss_store_private.h"

#include <apr_file_info.h>
#include <apr_strings.h>

#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>

#define JRN_MAGIC   "ISSJRN01"
#define JRN_HDR     (8 + 8 + 8)               /* magic, generation, length */
#define OP_PUT      'P'
#define OP_DELETE   'D'

/* ---- staged operations -------------------------------------------------- */

opset_t *iss_store__opset_make(apr_pool_t *p)
{
    opset_t *set = apr_pcalloc(p, sizeof(*set));

    set->pool = p;
    set->index = apr_hash_make(p);
    set->list = apr_array_make(p, 8, sizeof(op_t *));
    return set;
}

void iss_store__opset_stage(opset_t *set, const void *key, apr_size_t klen,
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

        iss_store__copy_bytes(k, key, klen);
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

        iss_store__copy_bytes(v, val, vlen);
        v[vlen] = '\0';
        op->val = v;
        op->vlen = vlen;
    }
}

/* Size of the journal body of @a ops. */
apr_uint64_t iss_store__ops_bytes(const opset_t *ops)
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
        return iss_store__fail(db->s, rv, "cannot create a pool: %pm", &rv);
    for (i = 0; i < ops->list->nelts && rv == APR_SUCCESS; i++) {
        const op_t *op = APR_ARRAY_IDX(ops->list, i, const op_t *);

        apr_pool_clear(ip);
        rv = op->del ? iss_store__apply_delete(db, op, ip)
                     : iss_store__apply_put(db, op, ip);
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
    if (ctx && (rv = iss_store__sha_add(s, ctx, d, n)) != APR_SUCCESS)
        return rv;
    rv = apr_file_write_full(f, d, n, NULL);
    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "writing %s failed: %pm", path, &rv);
    return APR_SUCCESS;
}

apr_status_t iss_store__close_synced(iss_store_t *s, apr_file_t *f,
                                     const char *path)
{
    apr_status_t rv = apr_file_flush(f);

    if (rv == APR_SUCCESS && !s->nosync)
        rv = apr_file_sync(f);
    if (rv != APR_SUCCESS) {
        apr_file_close(f);
        return iss_store__fail(s, rv, "writing %s failed: %pm", path, &rv);
    }
    rv = apr_file_close(f);
    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "closing %s failed: %pm", path, &rv);
    return APR_SUCCESS;
}

/* Write the batch to JOURNAL_TMP, fsync, rename it to @a name and fsync
 * the directory.  On failure no journal is left behind. */
static apr_status_t journal_write(iss_store_t *s, const opset_t *ops,
                                  const char *name, apr_pool_t *p)
{
    /* Each name its own scratch file: the mirror's mark is written
     * without the DBM lock, beside recoveries that remove JOURNAL_TMP as
     * a dead writer's. */
    const char *dst = iss_store__fpath(s, p, name),
               *tmp = apr_pstrcat(p, dst, ".tmp", NULL);
    unsigned char hdr[JRN_HDR], sum[SHA_LEN], b[4];
    apr_file_t *f = NULL;
    apr_uint64_t blen = iss_store__ops_bytes(ops);
    EVP_MD_CTX *ctx;
    int i, renamed = 0;
    apr_status_t rv;

    if ((rv = iss_store__sha_new(s, p, &ctx)) != APR_SUCCESS)
        return rv;
    rv = apr_file_open(&f, tmp, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                       | APR_FOPEN_TRUNCATE | APR_FOPEN_BINARY
                       | APR_FOPEN_BUFFERED, FILE_PERMS, p);
    if (rv != APR_SUCCESS) {
        f = NULL;
        rv = iss_store__fail(s, rv, "cannot create %s: %pm", tmp, &rv);
        goto cleanup;
    }
    memcpy(hdr, JRN_MAGIC, 8);
    iss_be64_put(hdr + 8, s->gen);
    iss_be64_put(hdr + 16, blen);
    if ((rv = write_bytes(s, f, ctx, hdr, JRN_HDR, tmp)) != APR_SUCCESS)
        goto cleanup;
    for (i = 0; i < ops->list->nelts; i++) {
        const op_t *op = APR_ARRAY_IDX(ops->list, i, const op_t *);
        unsigned char t = op->del ? OP_DELETE : OP_PUT;

        iss_be32_put(b, (apr_uint32_t)op->klen);
        if ((rv = write_bytes(s, f, ctx, &t, 1, tmp)) != APR_SUCCESS
            || (rv = write_bytes(s, f, ctx, b, 4, tmp)) != APR_SUCCESS
            || (rv = write_bytes(s, f, ctx, op->key, op->klen, tmp))
               != APR_SUCCESS)
            goto cleanup;
        if (op->del)
            continue;
        iss_be32_put(b, (apr_uint32_t)op->vlen);
        if ((rv = write_bytes(s, f, ctx, b, 4, tmp)) != APR_SUCCESS
            || (rv = write_bytes(s, f, ctx, op->val, op->vlen, tmp))
               != APR_SUCCESS)
            goto cleanup;
    }
    if ((rv = iss_store__sha_end(s, ctx, sum)) != APR_SUCCESS
        || (rv = write_bytes(s, f, NULL, sum, SHA_LEN, tmp)) != APR_SUCCESS)
        goto cleanup;
    rv = iss_store__close_synced(s, f, tmp);
    f = NULL;
    if (rv != APR_SUCCESS)
        goto cleanup;
    if ((rv = apr_file_rename(tmp, dst, p)) != APR_SUCCESS) {
        rv = iss_store__fail(s, rv, "cannot rename %s to %s: %pm", tmp, dst,
                             &rv);
        goto cleanup;
    }
    renamed = 1;
    rv = iss_store__sync_dir(s, p);
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
apr_status_t iss_store__journal_read(iss_store_t *s, const char *path,
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
        return iss_store__fail(s, rv, "cannot open %s: %pm", path, &rv);
    rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
    if (rv == APR_SUCCESS) {
        size = (apr_size_t)fi.size;
        buf = apr_palloc(p, size + 1);
        rv = size ? apr_file_read_full(f, buf, size, NULL) : APR_SUCCESS;
    }
    apr_file_close(f);
    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "cannot read %s: %pm", path, &rv);
    if (size < JRN_HDR + SHA_LEN || memcmp(buf, JRN_MAGIC, 8) != 0) {
        *why = "it is truncated or not a journal";
        return APR_SUCCESS;
    }
    blen = iss_be64_get(buf + 16);
    if (blen != (apr_uint64_t)(size - JRN_HDR - SHA_LEN)) {
        *why = "it is incomplete";
        return APR_SUCCESS;
    }
    if ((rv = iss_store__sha256(s, buf, size - SHA_LEN, sum)) != APR_SUCCESS)
        return rv;
    if (memcmp(sum, buf + size - SHA_LEN, SHA_LEN) != 0) {
        *why = "its checksum does not match";
        return APR_SUCCESS;
    }
    *gen = iss_be64_get(buf + 8);
    *ops = iss_store__opset_make(p);
    d = buf + JRN_HDR;
    end = buf + size - SHA_LEN;
    while (d < end) {
        apr_uint32_t kl, vl = 0;
        const unsigned char *k, *v = NULL;
        unsigned char t = *d;

        if (end - d < 5 || (t != OP_PUT && t != OP_DELETE))
            break;
        kl = iss_be32_get(d + 1);
        d += 5;
        if (kl > ISS_STORE_MAX_KEY || (apr_size_t)(end - d) < kl)
            break;
        k = d;
        d += kl;
        if (t == OP_PUT) {
            if (end - d < 4)
                break;
            vl = iss_be32_get(d);
            d += 4;
            if (vl > ISS_STORE_MAX_VALUE || (apr_size_t)(end - d) < vl)
                break;
            v = d;
            d += vl;
        }
        iss_store__opset_stage(*ops, k, kl, v, vl, t == OP_DELETE);
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
apr_status_t iss_store__need_space(iss_store_t *s, apr_uint64_t need)
{
    struct statvfs sv;
    apr_uint64_t avail;

    if (statvfs(s->dir, &sv) != 0)
        return APR_SUCCESS;             /* cannot tell; try */
    avail = (apr_uint64_t)sv.f_bavail * (apr_uint64_t)sv.f_frsize;
    if (avail >= need)
        return APR_SUCCESS;
    return iss_store__fail(s, APR_FROM_OS_ERROR(ENOSPC),
                           "the file system of %s has %" APR_UINT64_T_FMT
                           " bytes free, this update needs about %"
                           APR_UINT64_T_FMT, s->dir, avail, need);
}

/* Bytes the files of a DBM occupy on disk (sdbm files are sparse). */
apr_uint64_t iss_store__dbm_disk_size(iss_store_t *s, apr_pool_t *p,
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

    if ((rv = iss_store__db_open(s, path, APR_DBM_READONLY, p, &db))
            != APR_SUCCESS)
        return rv;
    if ((rv = apr_pool_create(&ip, p)) != APR_SUCCESS) {
        iss_store__db_close(db);
        return iss_store__fail(s, rv, "cannot create a pool: %pm", &rv);
    }
    for (i = 0; rv == APR_SUCCESS && i < ops->list->nelts; i++) {
        const op_t *op = APR_ARRAY_IDX(ops->list, i, const op_t *);
        apr_size_t vl = 0;
        void *v = NULL;
        apr_status_t r;

        apr_pool_clear(ip);
        r = iss_store__read_entry(db, op->key, op->klen, ip, ip, &v, &vl);
        if (op->del ? r == APR_NOTFOUND
                    : r == APR_SUCCESS && vl == op->vlen
                      && (vl == 0 || memcmp(v, op->val, vl) == 0))
            continue;
        rv = iss_store__fail(s, APR_FROM_OS_ERROR(EIO), "%s does not hold key "
                             "%s as it was just written (%s): the DBM lost a "
                             "write it did not report", path,
                             iss_store__show_bytes(kb, sizeof(kb), op->key,
                                                   op->klen),
                             r == APR_SUCCESS ? "other value"
                             : r == APR_NOTFOUND ? "not found"
                             : apr_pstrdup(ip, iss_store__err));
    }
    apr_pool_destroy(ip);
    iss_store__db_close(db);
    return rv;
}

/* Apply @a ops to the DBM at @a path, close, fsync and read back.
 * *touched (may be NULL) is set once the DBM was opened for writing. */
apr_status_t iss_store__apply_copy(iss_store_t *s, const char *path,
                                   const opset_t *ops, apr_pool_t *p,
                                   int *touched)
{
    db_t *db;
    apr_status_t rv = iss_store__db_open(s, path, APR_DBM_READWRITE, p, &db);

    if (rv != APR_SUCCESS)
        return rv;
    if (touched)
        *touched = 1;
    rv = apply_ops(db, ops, p);
    iss_store__db_close(db);
    if (rv == APR_SUCCESS)
        rv = iss_store__sync_dbm(s, p, path);
    /* sdbm writes each page as it is stored and reports a failure there;
     * gdbm and Berkeley DB write cached pages when closed, where
     * apr_dbm_close() cannot report one: read the batch back. */
    if (rv == APR_SUCCESS && strcmp(s->type, "sdbm") != 0)
        rv = read_back(s, path, ops, p);
    return rv;
}

/* The DBM at @a path must hold exactly @a expect valid records. */
apr_status_t iss_store__count_copy(iss_store_t *s, const char *path,
                                   apr_size_t expect, apr_pool_t *p)
{
    apr_pool_t *ip = NULL;
    db_t *db = NULL;
    iter_t *it = NULL;
    apr_size_t n = 0;
    const char *dk;
    apr_size_t dklen;
    apr_status_t rv;

    if ((rv = iss_store__walk_open(s, path, p, &db, &it, &ip))
        != APR_SUCCESS)
        goto cleanup;
    for (;;) {
        char *rec;
        apr_size_t reclen;

        apr_pool_clear(ip);
        if ((rv = iss_store__iter_next(it, p, &dk, &dklen)) != APR_SUCCESS
            || !dk
            || (rv = iss_store__db_fetch(db, dk, dklen, ip, &rec, &reclen))
               != APR_SUCCESS)
            break;
        if (!rec || !iss_store__rec_ok(dk, dklen, rec, reclen))
            break;
        n++;
    }
    if (rv == APR_SUCCESS && (dk || n != expect))
        rv = iss_store__fail(s, APR_FROM_OS_ERROR(EIO),
                             "%s holds %" APR_SIZE_T_FMT
                             " valid records right after %" APR_SIZE_T_FMT
                             " were written: the DBM lost a write it did not "
                             "report", path, n, expect);
cleanup:
    iss_store__iter_close(it);
    iss_store__db_close(db);
    if (ip)
        apr_pool_destroy(ip);
    return rv;
}

/* ---- checkpoint markers and commits ------------------------------------ */

/* A journal without operations named @a name (JOURNAL_NAME: a checkpoint
 * is writing the primary; JOURNAL_MIRROR: the mirror is being made a copy
 * of the primary): durable when this returns. */
apr_status_t iss_store__journal_mark(iss_store_t *s, const char *name,
                                     apr_pool_t *p)
{
    return journal_write(s, iss_store__opset_make(p), name, p);
}

/* One commit of a checkpoint: @a ops applied to the primary only, closed,
 * fsynced (and read back: gdbm, db).  Under the exclusive DBM lock, with
 * dbm_busy set and the JOURNAL_NAME mark in place: a writer that dies in
 * here leaves a primary that may be torn, which the next holder of the
 * DBM lock restores from the mirror and the applied log generations
 * (iss_store__recover()).  *touched is set once the primary was opened
 * for writing (before that a failure changed nothing). */
apr_status_t iss_store__apply_primary(iss_store_t *s, const opset_t *ops,
                                      apr_pool_t *p, int *touched)
{
    apr_status_t rv;

    *touched = 0;
    if (ops->list->nelts == 0)
        return APR_SUCCESS;
    if ((rv = iss_store__need_space(s, 2 * iss_store__ops_bytes(ops)
                                    + 1024 * 1024)) != APR_SUCCESS)
        return rv;
    /* Test hook (ISS_TEST_JOURNAL_DELAY_MS): each step of a checkpoint
     * takes that much longer, so that a kill -9 lands inside it
     * (t/07_crash_journal.t). */
    if (s->test_journal_delay)
        apr_sleep(s->test_journal_delay);
    rv = iss_store__apply_copy(s, iss_store__gen_path(s, p, s->gen, 0), ops,
                               p, touched);
    if (rv == APR_SUCCESS && s->test_journal_delay)
        apr_sleep(s->test_journal_delay);
    return rv;
}
