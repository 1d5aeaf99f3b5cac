/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * Store helpers shared by the C unit tests (after tap.h):
 *
 *   teststore_get(store, key, pool)   the value under key as a string,
 *                                     NULL if absent, "<error N>" on
 *                                     another error
 */
#ifndef ISS_TESTSTORE_H
#define ISS_TESTSTORE_H

#include "iss_store.h"

#include <apr_strings.h>
#include <string.h>

static inline const char *teststore_get(iss_store_t *s, const char *key,
                                        apr_pool_t *pool)
{
    void *v;
    apr_size_t vl;
    apr_status_t rv = iss_store_get(s, key, strlen(key), &v, &vl, pool);

    if (rv == APR_NOTFOUND)
        return NULL;
    if (rv != APR_SUCCESS)
        return apr_psprintf(pool, "<error %d>", rv);
    return apr_pstrmemdup(pool, v, vl);
}

#endif /* ISS_TESTSTORE_H */
