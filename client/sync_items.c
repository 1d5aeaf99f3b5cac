/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* Items, paths and ETags: small helpers of sync.h. */

#include "sync.h"

#include <apr_strings.h>

#include <stdlib.h>
#include <string.h>

sync_item_t *sync_item_find(sync_ctx_t *ctx, const char *path)
{
    return apr_hash_get(ctx->items, path, APR_HASH_KEY_STRING);
}

sync_item_t *sync_item_get(sync_ctx_t *ctx, const char *path)
{
    sync_item_t *it = apr_hash_get(ctx->items, path, APR_HASH_KEY_STRING);
    const char *p;

    if (it == NULL) {
        it = apr_pcalloc(ctx->pool, sizeof(*it));
        it->path = apr_pstrdup(ctx->pool, path);
        for (p = it->path; *p; p++) {
            it->depth += *p == '/';
        }
        apr_hash_set(ctx->items, it->path, APR_HASH_KEY_STRING, it);
    }
    return it;
}

int sync_path_cmp(const char *a, const char *b)
{
    /* Byte order in which '/' sorts before every other byte: a folder's
     * members then follow it directly ("a", "a/x", "a b"). */
    for (;; a++, b++) {
        unsigned char ca = (unsigned char)*a, cb = (unsigned char)*b;

        if (ca == cb) {
            if (ca == '\0') {
                return 0;
            }
            continue;
        }
        if (ca == '\0') {
            return -1;
        }
        if (cb == '\0') {
            return 1;
        }
        if (ca == '/') {
            return -1;
        }
        if (cb == '/') {
            return 1;
        }
        return ca < cb ? -1 : 1;
    }
}

static int cmp_items(const void *x, const void *y)
{
    const sync_item_t *a = *(sync_item_t *const *)x;
    const sync_item_t *b = *(sync_item_t *const *)y;

    return sync_path_cmp(a->path, b->path);
}

void sync_items_sort(sync_ctx_t *ctx)
{
    apr_hash_index_t *hi;

    ctx->order = apr_array_make(ctx->pool, (int)apr_hash_count(ctx->items) + 1,
                                sizeof(sync_item_t *));
    for (hi = apr_hash_first(ctx->pool, ctx->items); hi;
         hi = apr_hash_next(hi)) {
        APR_ARRAY_PUSH(ctx->order, sync_item_t *) = apr_hash_this_val(hi);
    }
    qsort(ctx->order->elts, (size_t)ctx->order->nelts, sizeof(sync_item_t *),
          cmp_items);
}

const char *sync_path_parent(const char *path, apr_pool_t *pool)
{
    const char *slash = strrchr(path, '/');

    return slash ? apr_pstrmemdup(pool, path, (apr_size_t)(slash - path)) : "";
}

int sync_path_under(const char *path, const char *dir)
{
    apr_size_t n = strlen(dir);

    if (n == 0) {
        return *path != '\0';
    }
    return strncmp(path, dir, n) == 0 && path[n] == '/';
}

int sync_etag_is_weak(const char *etag)
{
    return etag && etag[0] == 'W' && etag[1] == '/';
}

int sync_etag_weak_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return 0;
    }
    if (sync_etag_is_weak(a)) {
        a += 2;
    }
    if (sync_etag_is_weak(b)) {
        b += 2;
    }
    return strcmp(a, b) == 0;
}
