/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * libFuzzer target for the VCDIFF encoder (libiss/core/iss_vcdiff_enc.c),
 * differential: the input describes a source and a target made from it,
 * the encoder makes a delta, the decoder (libiss/core/iss_vcdiff.c)
 * must turn the source into exactly the target again.  Run under ASan
 * and UBSan by scripts/fuzz.sh: a crash, a leak, an encoder error or a
 * wrong decoding stops the fuzzer (abort()).
 *
 * Input:
 *   byte 0     ways: bits 0-1 manifests (0 none, 1 fed, 2 unchanged
 *              chunks skipped, 3 none), bit 2 checksum, bits 3-5 the
 *              window (1, 7, 64, 1000, 4096, 65536, default, 16 B),
 *              bits 6-7 the index size (default, 64 B, 1 KiB, 64 KiB)
 *   byte 1     piece size of the target (1 + byte % 64; 0: at once)
 *   bytes 2-3  source length L (big-endian, at most what follows)
 *   then       L bytes of source, then the recipe of the target, a list
 *              of commands (the low two bits of the first byte say
 *              which, the other six a length n):
 *                0  COPY: 2 bytes offset (mod L), 8 n + 1 byte + 1 bytes
 *                   from the source
 *                1  ADD: the next n + 1 bytes of the input
 *                2  REPEAT: 1 byte distance d, 4 n + 4 bytes from the
 *                   target d + 1 bytes back (overlapping)
 *                3  RUN: 1 byte value, 8 n + 1 bytes
 *              up to MAX_TARGET bytes of target (SMALL_TARGET with
 *              windows under 1000 bytes).
 */

#include "iss_manifest.h"
#include "iss_vcdiff.h"
#include "iss_vcdiff_enc.h"

#include <apr_general.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TARGET (256 * 1024)

static unsigned char target[MAX_TARGET];
static apr_size_t target_len;
/* 2 W + 64 bytes of sections and at most 45 of header a window (W >= 1000
 * here, or a target of at most SMALL_TARGET bytes), + 5 of file header */
#define SMALL_TARGET (16 * 1024)
#define DELTA_MAX (4 * MAX_TARGET + 65536)
static unsigned char delta[DELTA_MAX];
static apr_size_t delta_len;
static unsigned char decoded[MAX_TARGET];
static apr_size_t decoded_len;
static const uint8_t *source;
static apr_size_t source_len;
static apr_pool_t *root;

static apr_status_t read_source(void *baton, apr_uint64_t off, apr_size_t len,
                                unsigned char *buf)
{
    if (off > source_len || len > source_len - off)
        abort();                        /* the encoder asked for too much */
    memcpy(buf, source + off, len);
    return APR_SUCCESS;
}

static apr_status_t write_delta(void *baton, const unsigned char *buf,
                                apr_size_t len)
{
    if (len > sizeof(delta) - delta_len)
        abort();                        /* more than the bound */
    memcpy(delta + delta_len, buf, len);
    delta_len += len;
    return APR_SUCCESS;
}

static apr_status_t write_decoded(void *baton, const unsigned char *buf,
                                  apr_size_t len)
{
    if (len > MAX_TARGET - decoded_len)
        return APR_ENOSPC;
    memcpy(decoded + decoded_len, buf, len);
    decoded_len += len;
    return APR_SUCCESS;
}

static void make_target(const uint8_t *r, size_t rlen)
{
    size_t i = 0;

    target_len = 0;
    while (i < rlen && target_len < MAX_TARGET) {
        unsigned c = r[i++], n = c >> 2;
        size_t len = 0, k;

        switch (c & 3) {
        case 0:
            if (i + 3 > rlen || source_len == 0)
                return;
            k = ((size_t)r[i] << 8 | r[i + 1]) % source_len;
            len = 8 * (size_t)n + r[i + 2] + 1;
            i += 3;
            if (len > source_len - k)
                len = source_len - k;
            if (len > MAX_TARGET - target_len)
                len = MAX_TARGET - target_len;
            memcpy(target + target_len, source + k, len);
            break;
        case 1:
            len = n + 1;
            if (len > rlen - i)
                len = rlen - i;
            if (len > MAX_TARGET - target_len)
                len = MAX_TARGET - target_len;
            memcpy(target + target_len, r + i, len);
            i += len;
            break;
        case 2:
            if (i >= rlen || target_len == 0)
                return;
            k = (size_t)r[i++] % target_len + 1;
            len = 4 * (size_t)n + 4;
            if (len > MAX_TARGET - target_len)
                len = MAX_TARGET - target_len;
            for (k = target_len - k; len > 0; len--, k++)
                target[target_len++] = target[k];
            continue;
        default:
            if (i >= rlen)
                return;
            len = 8 * (size_t)n + 1;
            if (len > MAX_TARGET - target_len)
                len = MAX_TARGET - target_len;
            memset(target + target_len, r[i++], len);
            break;
        }
        target_len += len;
    }
}

static iss_manifest_t *manifest_of(const unsigned char *d, apr_size_t n,
                                   apr_pool_t *p)
{
    static const iss_cdc_params_t prm = { 64, 256, 1024 };
    iss_manifest_builder_t *b;
    iss_manifest_t *m = NULL;

    if (iss_manifest_builder_create(&b, &prm, p) != APR_SUCCESS
        || iss_manifest_builder_feed(b, d, n) != APR_SUCCESS
        || iss_manifest_builder_finish(b, &m) != APR_SUCCESS)
        abort();
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const apr_size_t windows[8] = { 1, 7, 64, 1000, 4096, 65536, 0,
                                           16 };
    static const apr_size_t indexes[4] = { 0, 64, 1024, 65536 };
    iss_vcdiff_enc_opts_t eo;
    iss_vcdiff_opts_t dopts;
    iss_vcdiff_enc_t *enc;
    iss_vcdiff_t *dec;
    apr_pool_t *p;
    unsigned ways, piece;
    size_t off = 0;
    apr_status_t rv;

    if (root == NULL) {
        apr_initialize();
        apr_pool_create(&root, NULL);
    }
    if (size < 4)
        return 0;
    ways = data[0];
    piece = data[1] % 65;
    source_len = (size_t)data[2] << 8 | data[3];
    data += 4;
    size -= 4;
    if (source_len > size)
        source_len = size;
    source = data;
    make_target(data + source_len, size - source_len);

    apr_pool_create(&p, root);
    memset(&eo, 0, sizeof(eo));
    eo.window = windows[(ways >> 3) & 7];
    if (eo.window != 0 && eo.window < 1000 && target_len > SMALL_TARGET)
        target_len = SMALL_TARGET;      /* window headers would dominate */
    eo.index_size = indexes[(ways >> 6) & 3];
    eo.source_size = source_len;
    eo.read_source = read_source;
    eo.write = write_delta;
    eo.checksum = (ways >> 2) & 1;
    if ((ways & 3) == 1 || (ways & 3) == 2) {
        eo.source_manifest = manifest_of(source, source_len, p);
        eo.target_manifest = manifest_of(target, target_len, p);
    }
    delta_len = 0;
    if (iss_vcdiff_enc_create(&enc, &eo, p) != APR_SUCCESS)
        abort();
    rv = APR_SUCCESS;
    while (off < target_len && rv == APR_SUCCESS) {
        apr_size_t n = piece ? piece : target_len - off;
        apr_uint64_t sk = (ways & 3) == 2 ? iss_vcdiff_enc_skippable(enc) : 0;
        apr_uint64_t want = iss_vcdiff_enc_wanted(enc);

        if ((ways & 3) == 2 && !eo.checksum && (sk > 0) == (want > 0))
            abort();                    /* one of them, always */
        if ((ways & 3) != 2 && (ways & 3) != 1 && want != APR_UINT64_MAX)
            abort();                    /* no manifests: everything */
        if (sk > 0) {
            if (sk > target_len - off)
                abort();                /* beyond the manifest */
            if (sk > piece && piece)
                sk = piece;
            rv = iss_vcdiff_enc_skip(enc, sk);
            off += (size_t)sk;
            continue;
        }
        if (n > target_len - off)
            n = target_len - off;
        if ((ways & 3) == 2 && want < n)
            n = (apr_size_t)want;       /* then ask again */
        rv = iss_vcdiff_enc_feed(enc, target + off, n);
        off += n;
    }
    if (rv == APR_SUCCESS)
        rv = iss_vcdiff_enc_finish(enc);
    if (rv != APR_SUCCESS || iss_vcdiff_enc_delta_size(enc) != delta_len)
        abort();
    {   /* the bound of iss_vcdiff_enc.h */
        apr_size_t w = eo.window ? eo.window : ISS_VCDIFF_ENC_WINDOW_DEFAULT;
        apr_size_t windows_n = (target_len + w - 1) / w + 1;

        if (delta_len > 5 + 2 * target_len + windows_n * (64 + 45))
            abort();
    }

    memset(&dopts, 0, sizeof(dopts));
    dopts.max_window = eo.window ? eo.window : ISS_VCDIFF_ENC_WINDOW_DEFAULT;
    dopts.max_target = MAX_TARGET;
    dopts.source_size = source_len;
    dopts.read_source = read_source;
    dopts.write = write_decoded;
    decoded_len = 0;
    if (iss_vcdiff_create(&dec, &dopts, p) != APR_SUCCESS
        || iss_vcdiff_feed(dec, delta, delta_len) != APR_SUCCESS
        || iss_vcdiff_finish(dec) != APR_SUCCESS
        || decoded_len != target_len
        || memcmp(decoded, target, target_len) != 0)
        abort();
    apr_pool_destroy(p);
    return 0;
}
