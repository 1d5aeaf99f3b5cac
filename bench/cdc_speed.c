/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * cdc_speed — how fast libiss chunks content (iss_cdc, FastCDC) on one
 * core, alone and together with SHA-256 (benchmark of issue 5).
 *
 *   cdc_speed [MIB [RUNS]]        (defaults: 1024 MiB, 3 runs)
 *
 * Fills MIB MiB of memory with pseudo-random bytes (SplitMix64, seed 1,
 * words written little-endian), then times, each RUNS times over the
 * whole buffer in one thread, and keeps the best run:
 *   sha256     iss_digest alone, 64 KiB per update (what `openssl speed
 *              -evp sha256` measures, through the same code path as the
 *              chunk ids);
 *   cdc        the chunker alone (iss_cdc_feed over the whole buffer);
 *   cdc_ids    the chunker and, in the same pass, the SHA-256 of every
 *              chunk (its id): the bytes iss_cdc_feed consumed go to
 *              iss_digest_update, iss_digest_final at every cut;
 *   cdc_ids_file  the same plus the SHA-256 of the whole buffer (a
 *              manifest carries the file's digest too): two SHA-256
 *              streams over every byte.
 * Prints, one "key=value" a line: bytes=N, chunks=N, avg_chunk=N (bytes),
 * for each pass NAME_gbps=best (10^9 bytes/s) NAME_spread=worst..best,
 * and check=N (a byte of the digests, so that none is optimized away).
 * Exit status: 0 fine, 1 error, 2 usage.
 */

#include "iss_cdc.h"
#include "iss_digest.h"

#include <apr_general.h>
#include <apr_time.h>

#include <stdio.h>
#include <stdlib.h>

#define CDC_SPEED_SHA_PIECE (64 * 1024)

typedef struct cdc_speed_t {
    const unsigned char *buf;
    apr_size_t len;
    iss_cdc_t *cdc;
    iss_digest_t *chunk;   /* SHA-256 of the chunk in progress */
    iss_digest_t *file;    /* SHA-256 of everything */
    apr_uint64_t chunks;
    unsigned char sink;    /* keeps the digests alive */
} cdc_speed_t;

static apr_uint64_t cdc_speed_splitmix64(apr_uint64_t *s)
{
    apr_uint64_t z = (*s += APR_UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * APR_UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * APR_UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static void cdc_speed_sha(cdc_speed_t *b)
{
    unsigned char out[ISS_DIGEST_SHA256_LEN];
    apr_size_t off, n;

    for (off = 0; off < b->len; off += n) {
        n = b->len - off < CDC_SPEED_SHA_PIECE ? b->len - off
                                               : CDC_SPEED_SHA_PIECE;
        iss_digest_update(b->file, b->buf + off, n);
    }
    iss_digest_final(b->file, out);
    b->sink ^= out[0];
}

/* The chunker over the whole buffer; with SHA-256 of each chunk if
 * @a ids, and of the whole buffer if @a file. */
static void cdc_speed_chunk(cdc_speed_t *b, int ids, int file)
{
    unsigned char out[ISS_DIGEST_SHA256_LEN];
    const unsigned char *p = b->buf;
    apr_size_t left = b->len;

    iss_cdc_reset(b->cdc);
    b->chunks = 0;
    while (left > 0) {
        int cut;
        apr_size_t n = iss_cdc_feed(b->cdc, p, left, &cut);

        if (ids)
            iss_digest_update(b->chunk, p, n);
        if (file)
            iss_digest_update(b->file, p, n);
        if (cut) {
            b->chunks++;
            if (ids) {
                iss_digest_final(b->chunk, out);
                b->sink ^= out[0];
            }
        }
        p += n;
        left -= n;
    }
    if (iss_cdc_pending(b->cdc) > 0) {
        b->chunks++;
        if (ids) {
            iss_digest_final(b->chunk, out);
            b->sink ^= out[0];
        }
    }
    if (file) {
        iss_digest_final(b->file, out);
        b->sink ^= out[0];
    }
}

static void cdc_speed_run(cdc_speed_t *b, const char *name, int runs,
                          int what)
{
    double best = 0, worst = 0;
    int i;

    for (i = 0; i < runs; i++) {
        apr_time_t t0 = apr_time_now(), t1;
        double gbps;

        if (what == 0)
            cdc_speed_sha(b);
        else
            cdc_speed_chunk(b, what >= 2, what >= 3);
        t1 = apr_time_now();
        gbps = t1 > t0 ? (double)b->len / 1e3 / (double)(t1 - t0) : 0.0;
        if (i == 0 || gbps > best)
            best = gbps;
        if (i == 0 || gbps < worst)
            worst = gbps;
    }
    printf("%s_gbps=%.3f\n%s_spread=%.3f..%.3f\n", name, best, name, worst,
           best);
    fflush(stdout);
}

int main(int argc, const char *const *argv)
{
    iss_cdc_params_t params = ISS_CDC_PARAMS_DEFAULT;
    cdc_speed_t b = { 0 };
    apr_pool_t *pool;
    apr_uint64_t seed = 1;
    unsigned char *buf;
    long mib = 1024, runs = 3;
    apr_size_t i;
    apr_status_t rv;
    char *end;

    if (argc > 3) {
        fprintf(stderr, "usage: cdc_speed [MIB [RUNS]]\n");
        return 2;
    }
    if (argc > 1) {
        mib = strtol(argv[1], &end, 10);
        if (*end || mib < 1 || mib > 65536) {
            fprintf(stderr, "cdc_speed: MIB must be 1..65536\n");
            return 2;
        }
    }
    if (argc > 2) {
        runs = strtol(argv[2], &end, 10);
        if (*end || runs < 1 || runs > 1000) {
            fprintf(stderr, "cdc_speed: RUNS must be 1..1000\n");
            return 2;
        }
    }
    rv = apr_app_initialize(&argc, &argv, NULL);
    if (rv != APR_SUCCESS || apr_pool_create(&pool, NULL) != APR_SUCCESS) {
        fprintf(stderr, "cdc_speed: APR initialization failed\n");
        return 1;
    }
    b.len = (apr_size_t)mib << 20;
    buf = malloc(b.len);
    if (buf == NULL) {
        fprintf(stderr, "cdc_speed: cannot allocate %ld MiB\n", mib);
        return 1;
    }
    for (i = 0; i < b.len; i += 8) {
        apr_uint64_t w = cdc_speed_splitmix64(&seed);
        int j;

        for (j = 0; j < 8; j++)
            buf[i + j] = (unsigned char)(w >> (8 * j));
    }
    b.buf = buf;
    if (iss_cdc_create(&b.cdc, &params, pool) != APR_SUCCESS
        || iss_digest_create(&b.chunk, pool) != APR_SUCCESS
        || iss_digest_create(&b.file, pool) != APR_SUCCESS) {
        fprintf(stderr, "cdc_speed: cannot create the chunker or SHA-256\n");
        return 1;
    }

    printf("bytes=%" APR_SIZE_T_FMT "\n", b.len);
    cdc_speed_run(&b, "sha256", (int)runs, 0);
    cdc_speed_run(&b, "cdc", (int)runs, 1);
    printf("chunks=%" APR_UINT64_T_FMT "\navg_chunk=%" APR_UINT64_T_FMT "\n",
           b.chunks, b.chunks ? (apr_uint64_t)b.len / b.chunks : 0);
    cdc_speed_run(&b, "cdc_ids", (int)runs, 2);
    cdc_speed_run(&b, "cdc_ids_file", (int)runs, 3);
    printf("check=%u\n", b.sink);  /* the digests are used */
    free(buf);
    apr_pool_destroy(pool);
    apr_terminate();
    return 0;
}
