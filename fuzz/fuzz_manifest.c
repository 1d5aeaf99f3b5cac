/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * libFuzzer target for the parsers of uploads by manifest
 * (libiss/core/iss_manifest.c): any bytes as a manifest (ISM1) and as a
 * manifest delta (ISD1) against a fixed base, under small limits.
 * Whatever the input, the parsers must return one of their codes, never
 * touch memory they do not own, and whatever they accept must be a valid
 * manifest: it encodes, parses back to the same entries, and its lengths
 * add up (run under ASan and UBSan by scripts/fuzz.sh).
 */

#include "iss_manifest.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static apr_pool_t *root;
static iss_manifest_t *base;
static const iss_cdc_params_t params = { 64, 256, 1024 };

/* The base: a manifest of 2 KiB of fixed bytes in small chunks. */
static void make_base(void)
{
    unsigned char data[2048];
    iss_manifest_builder_t *b;
    iss_manifest_t *m;
    apr_pool_t *tmp;
    unsigned int i, x = 12345;

    for (i = 0; i < sizeof(data); i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (unsigned char)(x >> 16);
    }
    /* The builder's OpenSSL contexts go with its pool; the manifest is
     * copied out (LeakSanitizer checks at exit). */
    apr_pool_create(&tmp, root);
    if (iss_manifest_builder_create(&b, &params, tmp) != APR_SUCCESS
        || iss_manifest_builder_feed(b, data, sizeof(data)) != APR_SUCCESS
        || iss_manifest_builder_finish(b, &m) != APR_SUCCESS) {
        abort();
    }
    base = apr_pmemdup(root, m, sizeof(*m));
    base->entries = apr_pmemdup(root, m->entries,
                                m->count * sizeof(*m->entries));
    apr_pool_destroy(tmp);
}

static void check_valid(const iss_manifest_t *m,
                        const iss_manifest_limits_t *lim, apr_pool_t *p)
{
    unsigned char *buf;
    apr_size_t len;
    iss_manifest_t *again;
    apr_uint64_t sum = 0;
    apr_uint32_t i;

    for (i = 0; i < m->count; i++) {
        sum += m->entries[i].length;
    }
    if (sum != m->file_size
        || iss_manifest_encode(m, &buf, &len, p) != APR_SUCCESS
        || iss_manifest_parse(buf, len, lim, &again, p) != APR_SUCCESS
        || again->count != m->count || again->file_size != m->file_size) {
        abort();
    }
    /* (field by field: the struct has padding) */
    for (i = 0; i < m->count; i++) {
        if (memcmp(again->entries[i].sha256, m->entries[i].sha256,
                   sizeof(m->entries[i].sha256)) != 0
            || again->entries[i].length != m->entries[i].length
            || again->entries[i].offset != m->entries[i].offset) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    iss_manifest_limits_t lim = { 4096, 1u << 20, &params };
    iss_manifest_t *m;
    apr_pool_t *p;

    if (root == NULL) {
        apr_initialize();
        apr_pool_create(&root, NULL);
        make_base();
    }
    apr_pool_create(&p, root);
    if (iss_manifest_parse(data, size, &lim, &m, p) == APR_SUCCESS) {
        check_valid(m, &lim, p);
    }
    if (iss_manifest_delta_apply(base, data, size, &lim, &m, p)
        == APR_SUCCESS) {
        check_valid(m, &lim, p);
    }
    apr_pool_destroy(p);
    return 0;
}
