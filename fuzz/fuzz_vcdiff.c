/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * libFuzzer target for the VCDIFF decoder (libiss/core/iss_vcdiff.c): any
 * bytes as a delta against a fixed source, fed in chunks whose sizes the
 * input also picks, with VCD_TARGET windows read back from what was
 * written.  Whatever the input, the decoder must return one of its codes
 * and never touch memory it does not own (run under ASan and UBSan by
 * scripts/fuzz.sh).
 */

#include "iss_vcdiff.h"

#include <apr_general.h>
#include <stdint.h>
#include <string.h>

#define SOURCE_SIZE (64 * 1024)
#define MAX_TARGET (1024 * 1024)

static unsigned char source[SOURCE_SIZE];
static unsigned char target[MAX_TARGET];
static apr_size_t target_len;
static apr_pool_t *root;

/* Exactly @a len bytes of @a from (@a have bytes) at @a off. */
static apr_status_t read_bytes(const unsigned char *from, apr_size_t have,
                               apr_uint64_t off, apr_size_t len,
                               unsigned char *buf)
{
    if (off > have || len > have - off)
        return APR_EOF;
    memcpy(buf, from + off, len);
    return APR_SUCCESS;
}

static apr_status_t read_source(void *baton, apr_uint64_t off, apr_size_t len,
                                unsigned char *buf)
{
    return read_bytes(source, SOURCE_SIZE, off, len, buf);
}

static apr_status_t read_target(void *baton, apr_uint64_t off, apr_size_t len,
                                unsigned char *buf)
{
    return read_bytes(target, target_len, off, len, buf);
}

static apr_status_t write_target(void *baton, const unsigned char *buf,
                                 apr_size_t len)
{
    if (len > MAX_TARGET - target_len)
        return APR_ENOSPC;
    memcpy(target + target_len, buf, len);
    target_len += len;
    return APR_SUCCESS;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    iss_vcdiff_opts_t opts;
    iss_vcdiff_t *dec;
    apr_pool_t *p;
    size_t off = 0, step;

    if (root == NULL) {
        uint32_t x = 2463534242u;
        size_t i;

        apr_initialize();
        apr_pool_create(&root, NULL);
        for (i = 0; i < SOURCE_SIZE; i++) {      /* xorshift: fixed bytes */
            x ^= x << 13; x ^= x >> 17; x ^= x << 5;
            source[i] = (unsigned char)x;
        }
    }
    if (size < 1)
        return 0;
    step = (size_t)data[0] % 64 + 1;             /* chunking picked by input */
    data++;
    size--;
    memset(&opts, 0, sizeof(opts));
    opts.max_window = 256 * 1024;
    opts.max_target = MAX_TARGET;
    opts.source_size = SOURCE_SIZE;
    opts.read_source = read_source;
    opts.read_target = read_target;
    opts.write = write_target;
    target_len = 0;
    apr_pool_create(&p, root);
    if (iss_vcdiff_create(&dec, &opts, p) == APR_SUCCESS) {
        while (off < size) {
            size_t n = size - off < step ? size - off : step;

            if (iss_vcdiff_feed(dec, data + off, n) != APR_SUCCESS)
                break;
            off += n;
        }
        (void)iss_vcdiff_finish(dec);
        (void)iss_vcdiff_error(dec);
    }
    apr_pool_destroy(p);
    return 0;
}
