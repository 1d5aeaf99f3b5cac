/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "iss_chunkidx.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <string.h>

#define MAGIC     "IMR1"
#define MAGIC_LEN 4
#define HEAD_LEN  (MAGIC_LEN + 24)
#define ID_LEN    ISS_DIGEST_SHA256_LEN

const char *iss_chunkidx_manifest_key(const char *rel, apr_pool_t *pool)
{
    return apr_pstrcat(pool, ISS_CHUNKIDX_MANIFEST_PREFIX, rel, NULL);
}

static const char *chunk_key(const unsigned char id[ID_LEN], apr_pool_t *pool)
{
    return apr_pstrcat(pool, ISS_CHUNKIDX_CHUNK_PREFIX,
                       iss_hex_id(id, pool), NULL);
}

apr_status_t iss_chunkidx_records(const char *rel,
                                  const iss_filedigest_t *ident,
                                  const iss_manifest_t *m,
                                  apr_array_header_t **out, apr_pool_t *pool)
{
    apr_array_header_t *kvs = apr_array_make(pool, (int)m->count + 1,
                                             sizeof(iss_chunkidx_kv_t));
    apr_hash_t *seen = apr_hash_make(pool);
    iss_chunkidx_kv_t *kv;
    unsigned char *ism, *rec;
    apr_size_t ilen;
    apr_uint32_t i;
    apr_status_t rv;

    if ((rv = iss_manifest_encode(m, &ism, &ilen, pool)) != APR_SUCCESS) {
        return rv;
    }
    rec = apr_palloc(pool, HEAD_LEN + ilen);
    memcpy(rec, MAGIC, MAGIC_LEN);
    iss_be64_put(rec + MAGIC_LEN, ident->ino);
    iss_be64_put(rec + MAGIC_LEN + 8, (apr_uint64_t)ident->size);
    iss_be64_put(rec + MAGIC_LEN + 16, (apr_uint64_t)ident->mtime);
    memcpy(rec + HEAD_LEN, ism, ilen);
    kv = apr_array_push(kvs);
    kv->key = iss_chunkidx_manifest_key(rel, pool);
    kv->val = rec;
    kv->vlen = HEAD_LEN + ilen;
    for (i = 0; i < m->count; i++) {
        const unsigned char *id = m->entries[i].sha256;

        if (apr_hash_get(seen, id, ID_LEN)) {
            continue;
        }
        apr_hash_set(seen, id, ID_LEN, id);
        kv = apr_array_push(kvs);
        kv->key = chunk_key(id, pool);
        kv->val = rel;
        kv->vlen = strlen(rel);
    }
    *out = kvs;
    return APR_SUCCESS;
}

/* @a old (a c/ record's paths) with @a rel in front, once, capped. */
static const char *merged_paths(const char *rel, const char *old,
                                apr_size_t olen, apr_pool_t *pool)
{
    const char *end = old + olen, *line = old;
    char *out = apr_pstrdup(pool, rel);
    int n = 1;

    while (line < end && n < ISS_CHUNKIDX_PATHS) {
        const char *nl = memchr(line, '\n', (apr_size_t)(end - line));
        apr_size_t len = (apr_size_t)((nl ? nl : end) - line);

        if (len && !(len == strlen(rel) && memcmp(line, rel, len) == 0)) {
            out = apr_pstrcat(pool, out, "\n",
                              apr_pstrmemdup(pool, line, len), NULL);
            n++;
        }
        line += len + 1;
    }
    return out;
}

apr_status_t iss_chunkidx_txn_put(iss_store_txn_t *txn,
                                  const apr_array_header_t *kvs,
                                  apr_pool_t *pool)
{
    apr_pool_t *iter;
    int i;

    apr_pool_create(&iter, pool);
    for (i = 0; i < kvs->nelts; i++) {
        const iss_chunkidx_kv_t *kv = &APR_ARRAY_IDX(kvs, i,
                                                     iss_chunkidx_kv_t);
        apr_size_t klen = strlen(kv->key), olen;
        void *old;
        apr_status_t rv;

        if (strncmp(kv->key, ISS_CHUNKIDX_CHUNK_PREFIX,
                    sizeof(ISS_CHUNKIDX_CHUNK_PREFIX) - 1) != 0) {
            iss_store_txn_put(txn, kv->key, klen, kv->val, kv->vlen);
            continue;
        }
        apr_pool_clear(iter);
        rv = iss_store_txn_get(txn, kv->key, klen, &old, &olen, iter);
        if (rv == APR_NOTFOUND) {
            iss_store_txn_put(txn, kv->key, klen, kv->val, kv->vlen);
        }
        else if (rv == APR_SUCCESS) {
            const char *v = merged_paths(kv->val, old, olen, iter);

            iss_store_txn_put(txn, kv->key, klen, v, strlen(v));
        }
        else {
            apr_pool_destroy(iter);
            return rv;
        }
    }
    apr_pool_destroy(iter);
    return APR_SUCCESS;
}

apr_status_t iss_chunkidx_decode(const void *val, apr_size_t vlen,
                                 const iss_manifest_limits_t *lim,
                                 iss_filedigest_t *ident,
                                 iss_manifest_t **m, apr_pool_t *pool)
{
    const unsigned char *p = val;

    if (vlen < HEAD_LEN || memcmp(p, MAGIC, MAGIC_LEN) != 0
        || iss_be64_get(p + MAGIC_LEN + 8) > (apr_uint64_t)APR_INT64_MAX) {
        return APR_EINVAL;
    }
    memset(ident, 0, sizeof(*ident));
    ident->ino = iss_be64_get(p + MAGIC_LEN);
    ident->size = (apr_off_t)iss_be64_get(p + MAGIC_LEN + 8);
    ident->mtime = (apr_time_t)iss_be64_get(p + MAGIC_LEN + 16);
    if (iss_manifest_parse(p + HEAD_LEN, vlen - HEAD_LEN, lim, m, pool)
        != APR_SUCCESS || (apr_uint64_t)ident->size != (*m)->file_size) {
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t iss_chunkidx_lookup(iss_store_t *store, const char *rel,
                                 const apr_finfo_t *finfo,
                                 const iss_manifest_limits_t *lim,
                                 iss_manifest_t **m, apr_pool_t *pool)
{
    const char *key = iss_chunkidx_manifest_key(rel, pool);
    iss_filedigest_t ident;
    apr_size_t vlen;
    void *val;
    apr_status_t rv;

    rv = iss_store_get(store, key, strlen(key), &val, &vlen, pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (iss_chunkidx_decode(val, vlen, lim, &ident, m, pool) != APR_SUCCESS
        || !iss_filedigest_matches(&ident, finfo)) {
        return APR_NOTFOUND;
    }
    return APR_SUCCESS;
}

apr_status_t iss_chunkidx_where(iss_store_t *store,
                                const unsigned char id[ID_LEN],
                                apr_array_header_t **rels, apr_pool_t *pool)
{
    const char *key = chunk_key(id, pool);
    apr_size_t vlen;
    char *val, *line, *last;
    apr_status_t rv;

    rv = iss_store_get(store, key, strlen(key), (void **)&val, &vlen, pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (memchr(val, '\0', vlen)) {
        return APR_NOTFOUND;
    }
    *rels = apr_array_make(pool, ISS_CHUNKIDX_PATHS, sizeof(const char *));
    /* NUL-terminated by iss_store_get */
    for (line = apr_strtok(val, "\n", &last); line;
         line = apr_strtok(NULL, "\n", &last)) {
        APR_ARRAY_PUSH(*rels, const char *) = line;
    }
    return (*rels)->nelts ? APR_SUCCESS : APR_NOTFOUND;
}
