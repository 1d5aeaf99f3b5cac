/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* iss_chunkidx_compact: dropping the c/ hints that name files whose
 * manifest is gone or no longer lists the chunk (iss_chunkidx.h). */

#include "iss_chunkidx.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

#define ID_LEN    ISS_DIGEST_SHA256_LEN

/* ---- compaction --------------------------------------------------------- */

#define COMPACT_PASS_BYTES  ((apr_size_t)32 * 1024 * 1024)
#define COMPACT_CACHE_BYTES ((apr_size_t)64 * 1024 * 1024)
#define COMPACT_TXN_KEYS    5000
/* The hash of a c/ key that splits the records into passes is 32-bit. */
#define COMPACT_HASH_END    (APR_UINT64_C(1) << 32)

/* What the m/ record of a path was when it was read: absent, or the
 * SHA-256 of its bytes; FP_ALWAYS marks a path that is dead whatever its
 * record says (the c/ key is no chunk id). */
enum { FP_ABSENT, FP_VALUE, FP_ALWAYS };

typedef struct {
    int kind;
    unsigned char sha[ID_LEN];
} fingerprint_t;

/* A path's m/ record as read: its fingerprint and the distinct ids its
 * manifest lists, sorted (none if the record is absent or damaged). */
typedef struct {
    fingerprint_t fp;
    apr_size_t nids;
    unsigned char *ids;
} cached_t;

/* A c/ record read by a pass. */
typedef struct {
    const char *key;
    apr_size_t klen;
    const char *val;
    apr_size_t vlen;
} crec_t;

/* A c/ record to rewrite: the paths found dead in it, each with the
 * fingerprint of the m/ record that said so; or a damaged value. */
typedef struct {
    const char *key;
    apr_size_t klen;
    int damaged;
    int ndead;
    const char **dead;
    fingerprint_t *fps;
} change_t;

typedef struct {
    iss_store_t *store;
    iss_chunkidx_compact_tune_t *tune;
    apr_pool_t *pool;
    iss_digest_t *digest;
    /* the manifest cache: path -> cached_t, cache_used bytes of it */
    apr_pool_t *cache_pool;
    apr_hash_t *cache;
    apr_size_t cache_used;
    apr_pool_t *scratch;
    /* the changes not applied yet */
    apr_pool_t *change_pool;
    apr_array_header_t *changes;
    apr_uint64_t kept, dropped_paths, dropped_records;
} compact_t;

/* The c/ records of one pass: those whose key hashes into [lo, hi), up
 * to budget bytes; past it only their total size is counted. */
typedef struct {
    apr_uint64_t lo, hi;
    apr_size_t budget, used;
    apr_uint64_t total;
    int over;
    apr_pool_t *pool;
    apr_array_header_t *recs;
} collect_t;

/* The transaction of compact_flush(). */
typedef struct {
    compact_t *ctx;
    apr_pool_t *pool, *tmp;
    apr_hash_t *now;                /* path -> fingerprint_t in the txn */
    apr_uint64_t kept, dropped_paths, dropped_records;
} apply_t;

static int compact_idcmp(const void *a, const void *b)
{
    return memcmp(a, b, ID_LEN);
}

/* FNV-1a, 32-bit. */
static apr_uint32_t compact_hash(const void *key, apr_size_t klen)
{
    const unsigned char *p = key;
    apr_uint32_t h = 2166136261u;
    apr_size_t i;

    for (i = 0; i < klen; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

static void compact_digest(compact_t *ctx, const void *val, apr_size_t vlen,
                           fingerprint_t *fp)
{
    fp->kind = FP_VALUE;
    iss_digest_update(ctx->digest, val, vlen);
    iss_digest_final(ctx->digest, fp->sha);
}

static int compact_collect(void *baton, const void *key, apr_size_t klen,
                           const void *val, apr_size_t vlen)
{
    collect_t *c = baton;
    apr_uint64_t h = compact_hash(key, klen);
    apr_size_t size = klen + vlen + 2 + sizeof(crec_t);
    crec_t *r;

    if (h < c->lo || h >= c->hi) {
        return 0;
    }
    c->total += size;
    if (c->over) {
        return 0;
    }
    /* A range of one hash value holds whatever it must. */
    if (c->used && c->used + size > c->budget && c->hi - c->lo > 1) {
        c->over = 1;
        return 0;
    }
    r = apr_array_push(c->recs);
    r->key = apr_pstrmemdup(c->pool, key, klen);
    r->klen = klen;
    r->val = apr_pstrmemdup(c->pool, val, vlen);
    r->vlen = vlen;
    c->used += size;
    return 0;
}

/* The cache entry of @a path, read from the store if not cached. */
static apr_status_t compact_cached(compact_t *ctx, const char *path,
                                   const cached_t **out)
{
    static const iss_manifest_limits_t any = {
        APR_UINT32_MAX, APR_UINT64_MAX, NULL };
    cached_t *e = apr_hash_get(ctx->cache, path, APR_HASH_KEY_STRING);
    cached_t got = { { FP_ABSENT, { 0 } }, 0, NULL };
    const char *key;
    iss_filedigest_t ident;
    iss_manifest_t *m;
    apr_size_t vlen, size;
    void *val;
    apr_status_t rv;

    if (e) {
        *out = e;
        return APR_SUCCESS;
    }
    apr_pool_clear(ctx->scratch);
    key = iss_chunkidx_manifest_key(path, ctx->scratch);
    rv = iss_store_get(ctx->store, key, strlen(key), &val, &vlen,
                       ctx->scratch);
    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        return rv;
    }
    if (rv == APR_SUCCESS) {
        compact_digest(ctx, val, vlen, &got.fp);
        if (iss_chunkidx_decode(val, vlen, &any, &ident, &m, ctx->scratch)
            == APR_SUCCESS && m->count) {
            apr_uint32_t i;
            apr_size_t n = 1;

            got.ids = apr_palloc(ctx->scratch, (apr_size_t)m->count * ID_LEN);
            for (i = 0; i < m->count; i++) {
                memcpy(got.ids + (apr_size_t)i * ID_LEN,
                       m->entries[i].sha256, ID_LEN);
            }
            qsort(got.ids, m->count, ID_LEN, compact_idcmp);
            for (i = 1; i < m->count; i++) {
                const unsigned char *id = got.ids + (apr_size_t)i * ID_LEN;

                if (memcmp(id, got.ids + (n - 1) * ID_LEN, ID_LEN) != 0) {
                    memmove(got.ids + n * ID_LEN, id, ID_LEN);
                    n++;
                }
            }
            got.nids = n;
        }
    }
    size = sizeof(cached_t) + strlen(path) + 1 + got.nids * ID_LEN + 64;
    if (ctx->cache_used && ctx->cache_used + size > ctx->tune->cache_bytes) {
        apr_pool_clear(ctx->cache_pool);
        ctx->cache = apr_hash_make(ctx->cache_pool);
        ctx->cache_used = 0;
        ctx->tune->cache_drops++;
    }
    e = apr_palloc(ctx->cache_pool, sizeof(*e));
    *e = got;
    if (got.nids) {
        e->ids = apr_pmemdup(ctx->cache_pool, got.ids, got.nids * ID_LEN);
    }
    apr_hash_set(ctx->cache, apr_pstrdup(ctx->cache_pool, path),
                 APR_HASH_KEY_STRING, e);
    ctx->cache_used += size;
    *out = e;
    return APR_SUCCESS;
}

/* The current fingerprint of @a path's m/ record inside the transaction
 * (read once per transaction); *dead = 1 if it is still @a fp. */
static apr_status_t compact_still_dead(apply_t *a, iss_store_txn_t *txn,
                                       const char *path,
                                       const fingerprint_t *fp, int *dead)
{
    fingerprint_t *cur;

    if (fp->kind == FP_ALWAYS) {
        *dead = 1;
        return APR_SUCCESS;
    }
    cur = apr_hash_get(a->now, path, APR_HASH_KEY_STRING);
    if (cur == NULL) {
        const char *key;
        apr_size_t vlen;
        void *val;
        apr_status_t rv;

        apr_pool_clear(a->tmp);
        key = iss_chunkidx_manifest_key(path, a->tmp);
        cur = apr_pcalloc(a->pool, sizeof(*cur));
        rv = iss_store_txn_get(txn, key, strlen(key), &val, &vlen, a->tmp);
        if (rv == APR_SUCCESS) {
            compact_digest(a->ctx, val, vlen, cur);
        }
        else if (rv == APR_NOTFOUND) {
            cur->kind = FP_ABSENT;
        }
        else {
            return rv;
        }
        apr_hash_set(a->now, apr_pstrdup(a->pool, path), APR_HASH_KEY_STRING,
                     cur);
    }
    *dead = cur->kind == fp->kind
            && (fp->kind == FP_ABSENT || !memcmp(cur->sha, fp->sha, ID_LEN));
    return APR_SUCCESS;
}

static apr_status_t compact_apply(void *baton, iss_store_txn_t *txn)
{
    apply_t *a = baton;
    const apr_array_header_t *changes = a->ctx->changes;
    apr_pool_t *iter;
    apr_status_t rv = APR_SUCCESS;
    int i;

    a->kept = a->dropped_paths = a->dropped_records = 0;
    a->now = apr_hash_make(a->pool);
    apr_pool_create(&iter, a->pool);
    for (i = 0; i < changes->nelts && rv == APR_SUCCESS; i++) {
        const change_t *ch = &APR_ARRAY_IDX(changes, i, change_t);
        const char *v, *line, *end;
        apr_size_t vlen, olen = 0;
        apr_uint64_t nkeep = 0;
        int changed = 0;
        char *out;

        apr_pool_clear(iter);
        rv = iss_store_txn_get(txn, ch->key, ch->klen, (void **)&v, &vlen,
                               iter);
        if (rv == APR_NOTFOUND) {
            rv = APR_SUCCESS;
            continue;
        }
        if (rv != APR_SUCCESS) {
            break;
        }
        if (memchr(v, '\0', vlen)) {
            if (ch->damaged) {
                iss_store_txn_delete(txn, ch->key, ch->klen);
                a->dropped_records++;
            }
            continue;
        }
        out = apr_palloc(iter, vlen + 1);
        for (line = v, end = v + vlen; line < end && rv == APR_SUCCESS;) {
            const char *nl = memchr(line, '\n', (apr_size_t)(end - line));
            apr_size_t len = (apr_size_t)((nl ? nl : end) - line);
            int k, dead = 0;

            if (len == 0) {
                changed = 1;
                line++;
                continue;
            }
            for (k = 0; k < ch->ndead; k++) {
                if (strlen(ch->dead[k]) == len
                    && memcmp(ch->dead[k], line, len) == 0) {
                    rv = compact_still_dead(a, txn, ch->dead[k], &ch->fps[k],
                                            &dead);
                    break;
                }
            }
            if (dead) {
                a->dropped_paths++;
                changed = 1;
            }
            else {
                if (olen) {
                    out[olen++] = '\n';
                }
                memcpy(out + olen, line, len);
                olen += len;
                nkeep++;
            }
            line += len + 1;
        }
        if (rv != APR_SUCCESS) {
            break;
        }
        if (nkeep == 0) {
            iss_store_txn_delete(txn, ch->key, ch->klen);
            a->dropped_records++;
        }
        else if (changed) {
            iss_store_txn_put(txn, ch->key, ch->klen, out, olen);
        }
        a->kept += nkeep;
    }
    apr_pool_destroy(iter);
    return rv;
}

/* Apply the pending changes in one transaction. */
static apr_status_t compact_flush(compact_t *ctx)
{
    apply_t a;
    apr_status_t rv;

    if (ctx->changes->nelts == 0) {
        return APR_SUCCESS;
    }
    if (ctx->tune->before_txn) {
        ctx->tune->before_txn(ctx->tune->baton);
    }
    memset(&a, 0, sizeof(a));
    a.ctx = ctx;
    apr_pool_create(&a.pool, ctx->pool);
    apr_pool_create(&a.tmp, a.pool);
    rv = iss_store_txn(ctx->store, compact_apply, &a, a.pool);
    if (rv == APR_SUCCESS) {
        ctx->kept += a.kept;
        ctx->dropped_paths += a.dropped_paths;
        ctx->dropped_records += a.dropped_records;
        ctx->tune->txns++;
    }
    apr_pool_destroy(a.pool);
    apr_pool_clear(ctx->change_pool);
    ctx->changes = apr_array_make(ctx->change_pool, 64, sizeof(change_t));
    return rv;
}

static change_t *compact_change(compact_t *ctx, const crec_t *r)
{
    change_t *ch = apr_array_push(ctx->changes);
    const char *p;
    int lines = 1;

    for (p = r->val; (p = memchr(p, '\n', (apr_size_t)(r->val + r->vlen - p)));
         p++) {
        lines++;
    }
    memset(ch, 0, sizeof(*ch));
    ch->key = apr_pstrmemdup(ctx->change_pool, r->key, r->klen);
    ch->klen = r->klen;
    ch->dead = apr_palloc(ctx->change_pool, lines * sizeof(*ch->dead));
    ch->fps = apr_palloc(ctx->change_pool, lines * sizeof(*ch->fps));
    return ch;
}

/* Find the dead paths of @a r; a record with some becomes a change. */
static apr_status_t compact_check(compact_t *ctx, const crec_t *r,
                                  apr_pool_t *pool)
{
    unsigned char id[ID_LEN];
    int valid = r->klen == sizeof(ISS_CHUNKIDX_CHUNK_PREFIX) - 1 + 2 * ID_LEN
                && iss_hex_id_decode(r->key + r->klen - 2 * ID_LEN,
                                      2 * ID_LEN, id);
    const char *line = r->val, *end = r->val + r->vlen;
    apr_uint64_t npaths = 0;
    change_t *ch = NULL;
    int empty = 0;

    if (memchr(r->val, '\0', r->vlen)) {
        compact_change(ctx, r)->damaged = 1;
        return APR_SUCCESS;
    }
    while (line < end) {
        const char *nl = memchr(line, '\n', (apr_size_t)(end - line));
        apr_size_t len = (apr_size_t)((nl ? nl : end) - line);
        fingerprint_t fp = { FP_ALWAYS, { 0 } };
        int dead = 1;

        if (len == 0) {
            empty = 1;
            line++;
            continue;
        }
        npaths++;
        if (valid) {
            const char *path = apr_pstrmemdup(pool, line, len);
            const cached_t *e;
            apr_status_t rv = compact_cached(ctx, path, &e);

            if (rv != APR_SUCCESS) {
                return rv;
            }
            dead = e->nids == 0 || !bsearch(id, e->ids, e->nids, ID_LEN,
                                            compact_idcmp);
            fp = e->fp;
        }
        if (dead) {
            if (ch == NULL) {
                ch = compact_change(ctx, r);
            }
            ch->dead[ch->ndead] = apr_pstrmemdup(ctx->change_pool, line, len);
            ch->fps[ch->ndead++] = fp;
        }
        line += len + 1;
    }
    if (ch == NULL && (empty || npaths == 0)) {
        ch = compact_change(ctx, r);
    }
    if (ch == NULL) {
        ctx->kept += npaths;
    }
    return APR_SUCCESS;
}

/* One pass over the c/ records whose key hashes into [lo, hi); split
 * into smaller ranges if they hold more than a pass may. */
static apr_status_t compact_range(compact_t *ctx, apr_uint64_t lo,
                                  apr_uint64_t hi)
{
    collect_t c;
    apr_pool_t *iter;
    apr_status_t rv;
    int i;

    memset(&c, 0, sizeof(c));
    c.lo = lo;
    c.hi = hi;
    c.budget = ctx->tune->pass_bytes;
    apr_pool_create(&c.pool, ctx->pool);
    c.recs = apr_array_make(c.pool, 256, sizeof(crec_t));
    rv = iss_store_iterate(ctx->store, ISS_CHUNKIDX_CHUNK_PREFIX,
                           sizeof(ISS_CHUNKIDX_CHUNK_PREFIX) - 1,
                           compact_collect, &c, c.pool);
    ctx->tune->passes++;
    if (rv == APR_SUCCESS && c.over) {
        apr_uint64_t parts = c.total / c.budget + 2, step, sub;

        apr_pool_destroy(c.pool);
        if (parts > hi - lo) {
            parts = hi - lo;
        }
        step = (hi - lo + parts - 1) / parts;
        for (sub = lo; sub < hi && rv == APR_SUCCESS; sub += step) {
            rv = compact_range(ctx, sub, hi - sub > step ? sub + step : hi);
        }
        return rv;
    }
    apr_pool_create(&iter, c.pool);
    for (i = 0; i < c.recs->nelts && rv == APR_SUCCESS; i++) {
        apr_pool_clear(iter);
        rv = compact_check(ctx, &APR_ARRAY_IDX(c.recs, i, crec_t), iter);
        if (rv == APR_SUCCESS && ctx->changes->nelts >= ctx->tune->txn_keys) {
            rv = compact_flush(ctx);
        }
    }
    if (rv == APR_SUCCESS) {
        rv = compact_flush(ctx);
    }
    apr_pool_destroy(c.pool);
    return rv;
}

apr_status_t iss_chunkidx_compact_tuned(iss_store_t *store,
                                        iss_chunkidx_compact_tune_t *tune,
                                        apr_uint64_t *kept,
                                        apr_uint64_t *dropped_paths,
                                        apr_uint64_t *dropped_records,
                                        apr_pool_t *pool)
{
    compact_t ctx;
    apr_status_t rv;

    if (kept) {
        *kept = 0;
    }
    if (dropped_paths) {
        *dropped_paths = 0;
    }
    if (dropped_records) {
        *dropped_records = 0;
    }
    if (!store || !tune || !pool || tune->pass_bytes == 0
        || tune->txn_keys < 1) {
        return APR_EINVAL;
    }
    tune->passes = tune->txns = tune->cache_drops = 0;
    memset(&ctx, 0, sizeof(ctx));
    ctx.store = store;
    ctx.tune = tune;
    apr_pool_create(&ctx.pool, pool);
    if ((rv = iss_digest_create(&ctx.digest, ctx.pool)) == APR_SUCCESS) {
        apr_pool_create(&ctx.cache_pool, ctx.pool);
        apr_pool_create(&ctx.scratch, ctx.pool);
        apr_pool_create(&ctx.change_pool, ctx.pool);
        ctx.cache = apr_hash_make(ctx.cache_pool);
        ctx.changes = apr_array_make(ctx.change_pool, 64, sizeof(change_t));
        rv = compact_range(&ctx, 0, COMPACT_HASH_END);
    }
    apr_pool_destroy(ctx.pool);
    if (kept) {
        *kept = ctx.kept;
    }
    if (dropped_paths) {
        *dropped_paths = ctx.dropped_paths;
    }
    if (dropped_records) {
        *dropped_records = ctx.dropped_records;
    }
    return rv;
}

apr_status_t iss_chunkidx_compact(iss_store_t *store, apr_uint64_t *kept,
                                  apr_uint64_t *dropped_paths,
                                  apr_uint64_t *dropped_records,
                                  apr_pool_t *pool)
{
    iss_chunkidx_compact_tune_t tune;

    memset(&tune, 0, sizeof(tune));
    tune.pass_bytes = COMPACT_PASS_BYTES;
    tune.cache_bytes = COMPACT_CACHE_BYTES;
    tune.txn_keys = COMPACT_TXN_KEYS;
    return iss_chunkidx_compact_tuned(store, &tune, kept, dropped_paths,
                                      dropped_records, pool);
}
