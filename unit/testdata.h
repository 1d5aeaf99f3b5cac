/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * Deterministic test data shared by the C unit tests (after tap.h):
 *
 *   testdata_splitmix64(&state)      next SplitMix64 word
 *   testdata_random(seed, len)       malloc'd len bytes (+8 slack): word
 *                                    i gives bytes 8i..8i+7, least
 *                                    significant first, so the bytes are
 *                                    the same on every host; abort()s if
 *                                    out of memory; free() it
 *   testdata_hex(bytes, n, pool)     lower-case hex
 */
#ifndef ISS_TESTDATA_H
#define ISS_TESTDATA_H

#include <apr_pools.h>
#include <apr_strings.h>
#include <stdlib.h>

static inline apr_uint64_t testdata_splitmix64(apr_uint64_t *s)
{
    apr_uint64_t z = (*s += APR_UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * APR_UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * APR_UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static inline unsigned char *testdata_random(apr_uint64_t seed,
                                             apr_size_t len)
{
    unsigned char *b = malloc(len + 8);
    apr_size_t i;
    int j;

    if (b == NULL)
        abort();
    for (i = 0; i < len; i += 8) {
        apr_uint64_t w = testdata_splitmix64(&seed);

        for (j = 0; j < 8; j++)
            b[i + j] = (unsigned char)(w >> (8 * j));
    }
    return b;
}

static inline const char *testdata_hex(const unsigned char *b, apr_size_t n,
                                       apr_pool_t *p)
{
    char *s = apr_palloc(p, 2 * n + 1);
    apr_size_t i;

    for (i = 0; i < n; i++)
        apr_snprintf(s + 2 * i, 3, "%02x", b[i]);
    s[2 * n] = '\0';
    return s;
}

#endif /* ISS_TESTDATA_H */
