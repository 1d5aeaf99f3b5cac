/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "iss_reconcile.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <string.h>

#define K_SCAN "log/scan"
#define INDEX_PREFIX "f/"

typedef struct load_ctx {
    apr_hash_t *index;
    apr_pool_t *pool;
    apr_uint64_t bad;
} load_ctx;

/* One index record into the in-memory index; unreadable ones are left
 * out, so the scan reports their member as new and rewrites them. */
static int load_one(void *baton, const void *key, apr_size_t klen,
                    const void *val, apr_size_t vlen)
{
    load_ctx *c = baton;
    iss_scan_entry_t *e = apr_palloc(c->pool, sizeof(*e));
    apr_size_t plen = sizeof(INDEX_PREFIX) - 1;

    if (iss_scan_entry_decode(val, vlen, e) != APR_SUCCESS) {
        c->bad++;
        return 0;
    }
    apr_hash_set(c->index,
                 apr_pstrmemdup(c->pool, (const char *)key + plen, klen - plen),
                 (apr_ssize_t)(klen - plen), e);
    return 0;
}

apr_status_t iss_reconcile_last(iss_store_t *store, apr_time_t *when,
                                apr_pool_t *pool)
{
    void *val;
    apr_size_t vlen;
    apr_status_t rv = iss_store_get(store, K_SCAN, strlen(K_SCAN), &val,
                                    &vlen, pool);

    *when = 0;
    if (rv == APR_NOTFOUND) {
        return APR_SUCCESS;
    }
    if (rv == APR_SUCCESS) {
        char *end;
        apr_int64_t t = apr_strtoi64(val, &end, 10);

        if (vlen == 0 || *end || t <= 0) {
            return ISS_STORE_EDAMAGED;
        }
        *when = (apr_time_t)t;
    }
    return rv;
}

apr_status_t iss_reconcile_skip_baseline(iss_store_t *store)
{
    return iss_store_put(store, K_SCAN, strlen(K_SCAN), "1", 1);
}

typedef struct commit_ctx {
    const apr_array_header_t *changes;
    const apr_array_header_t *updates;
    const iss_sync_retention_t *ret;
    int baseline;
    apr_uint64_t seq;
    apr_pool_t *pool;
} commit_ctx;

static apr_status_t commit(iss_store_t *store, commit_ctx *c)
{
    apr_array_header_t *index = apr_array_make(c->pool, c->updates->nelts,
                                               sizeof(iss_sync_index_t));
    const char *now = apr_psprintf(c->pool, "%" APR_INT64_T_FMT,
                                   (apr_int64_t)apr_time_now());
    iss_store_batch_t *batch;
    int i;

    for (i = 0; i < c->updates->nelts; i++) {
        const iss_scan_update_t *u = &APR_ARRAY_IDX(c->updates, i,
                                                    iss_scan_update_t);
        iss_sync_index_t *x = apr_array_push(index);

        x->path = u->path;
        x->value = NULL;
        x->digest = NULL;
        x->manifest = NULL;
        if (u->entry) {
            char *buf = apr_palloc(c->pool, ISS_SCAN_ENTRY_MAX);

            iss_scan_entry_encode(u->entry, buf);
            x->value = buf;
        }
    }
    if (!c->baseline && c->changes->nelts) {
        /* The entry, the index and the scan time in one transaction. */
        return iss_sync_log_append(store, "RECONCILE", c->changes, index,
                                   c->ret, K_SCAN, now, &c->seq, c->pool);
    }
    batch = iss_store_batch_make(store, c->pool);
    for (i = 0; i < index->nelts; i++) {
        const iss_sync_index_t *x = &APR_ARRAY_IDX(index, i, iss_sync_index_t);
        const char *key = apr_pstrcat(c->pool, INDEX_PREFIX, x->path, NULL);

        if (x->value) {
            iss_store_batch_put(batch, key, strlen(key), x->value,
                                strlen(x->value));
        }
        else {
            iss_store_batch_delete(batch, key, strlen(key));
        }
    }
    iss_store_batch_put(batch, K_SCAN, strlen(K_SCAN), now, strlen(now));
    return iss_store_batch_commit(batch);
}

apr_status_t iss_reconcile_run(iss_store_t *store, const char *root,
                               const iss_scan_ignore_t *ignore,
                               const iss_sync_retention_t *retention,
                               iss_scan_stats_t *stats, apr_uint64_t *seq,
                               apr_pool_t *pool)
{
    load_ctx lc;
    commit_ctx cc;
    apr_array_header_t *changes, *updates;
    apr_time_t last;
    iss_scan_stats_t local;
    const char *mark;
    apr_status_t rv;

    if (!stats) {
        stats = &local;
    }
    *seq = 0;
    /* A mark set before the index is read is answered by this scan. */
    if ((rv = iss_store_rescan_due(store, &mark, pool)) != APR_SUCCESS
        || (rv = iss_reconcile_last(store, &last, pool)) != APR_SUCCESS) {
        return rv;
    }
    lc.index = apr_hash_make(pool);
    lc.pool = pool;
    lc.bad = 0;
    rv = iss_store_iterate(store, INDEX_PREFIX, sizeof(INDEX_PREFIX) - 1,
                           load_one, &lc, pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    changes = apr_array_make(pool, 16, sizeof(iss_change_t));
    updates = apr_array_make(pool, 16, sizeof(iss_scan_update_t));
    if ((rv = iss_scan_tree(root, ignore, lc.index, changes, updates, stats, pool))
        != APR_SUCCESS) {
        return rv;
    }
    cc.changes = changes;
    cc.updates = updates;
    cc.ret = retention;
    cc.baseline = last == 0;
    cc.seq = 0;
    cc.pool = pool;
    rv = commit(store, &cc);
    *seq = cc.seq;
    if (rv == APR_SUCCESS && mark) {
        rv = iss_store_rescan_done(store, mark, pool);
    }
    return rv;
}
