/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* iss_manifest_bg: the manifest made on a second thread equals the one
 * the builder makes fed directly, byte for byte, whatever the pieces
 * (smaller and larger than its buffers, empty, one byte at a time), for
 * empty and large inputs; the worker really runs on a thread; a pool
 * destroyed without finish() stops it (no hang, no leak: ASan build). */

#include "iss_manifest_bg.h"
#include "tap.h"
#include "testdata.h"

#include <apr_general.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static apr_pool_t *gp;
static const iss_cdc_params_t SMALL = { 256, 1024, 4096 };
static const iss_cdc_params_t DFLT = ISS_CDC_PARAMS_DEFAULT;

static iss_manifest_t *direct(const iss_cdc_params_t *p,
                              const unsigned char *data, apr_size_t len,
                              apr_pool_t *pool)
{
    iss_manifest_builder_t *b;
    iss_manifest_t *m = NULL;

    if (iss_manifest_builder_create(&b, p, pool) != APR_SUCCESS
        || iss_manifest_builder_feed(b, data, len) != APR_SUCCESS
        || iss_manifest_builder_finish(b, &m) != APR_SUCCESS) {
        return NULL;
    }
    return m;
}

static int same(const iss_manifest_t *a, const iss_manifest_t *b,
                apr_pool_t *pool)
{
    unsigned char *ea, *eb;
    apr_size_t la, lb;

    return a && b
           && iss_manifest_encode(a, &ea, &la, pool) == APR_SUCCESS
           && iss_manifest_encode(b, &eb, &lb, pool) == APR_SUCCESS
           && la == lb && memcmp(ea, eb, la) == 0;
}

/* Feed @a data in pieces: sizes cycle through @a pieces. */
static iss_manifest_t *threaded(const iss_cdc_params_t *p,
                                const unsigned char *data, apr_size_t len,
                                const apr_size_t *pieces, int npieces,
                                int *was_threaded, apr_pool_t *pool)
{
    iss_manifest_bg_t *bg;
    iss_manifest_t *m = NULL;
    apr_size_t at = 0;
    int i = 0;

    if (iss_manifest_bg_create(&bg, p, pool) != APR_SUCCESS) {
        return NULL;
    }
    while (at < len) {
        apr_size_t n = pieces[i++ % npieces];

        n = n < len - at ? n : len - at;
        if (iss_manifest_bg_feed(bg, data + at, n) != APR_SUCCESS) {
            return NULL;
        }
        at += n;
    }
    *was_threaded = iss_manifest_bg_threaded(bg);
    if (iss_manifest_bg_feed(bg, data, 0) != APR_SUCCESS
        || iss_manifest_bg_finish(bg, &m) != APR_SUCCESS) {
        return NULL;
    }
    return m;
}

static void test_equal(void)
{
    static const apr_size_t one[] = { 1 };
    static const apr_size_t mixed[] = { 2048, 1, 300000, 7, 65536, 0, 8000 };
    static const apr_size_t whole[] = { (apr_size_t)-1 };
    static const struct {
        const char *name;
        const apr_size_t *pieces;
        int n;
    } feeds[] = {
        { "one byte at a time", one, 1 },
        { "mixed pieces", mixed, 7 },
        { "one piece", whole, 1 },
    };
    apr_size_t sizes[] = { 0, 1, 4095, ISS_MANIFEST_BG_BUFFER,
                           ISS_MANIFEST_BG_BUFFER * ISS_MANIFEST_BG_BUFFERS + 1,
                           3 * 1024 * 1024 + 17 };
    unsigned int s, f;

    for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        unsigned char *data = testdata_random(100 + s, sizes[s]);

        for (f = 0; f < sizeof(feeds) / sizeof(feeds[0]); f++) {
            apr_pool_t *p;
            int thr = 0;

            if (feeds[f].pieces == one && sizes[s] > 300000) {
                continue;               /* (slow, and nothing new) */
            }
            apr_pool_create(&p, gp);
            ok(same(threaded(&SMALL, data, sizes[s], feeds[f].pieces,
                             feeds[f].n, &thr, p),
                    direct(&SMALL, data, sizes[s], p), p),
               "%zu bytes, %s: the same manifest as the builder's",
               sizes[s], feeds[f].name);
            ok(thr == (sizes[s] > ISS_MANIFEST_BG_BUFFER
                              * ISS_MANIFEST_BG_BUFFERS),
               "... on a second thread if larger than its buffers (%s)",
               thr ? "threaded" : "inline");
            apr_pool_destroy(p);
        }
        free(data);
    }
    {
        apr_size_t len = 64u * 1024 * 1024;
        unsigned char *data = testdata_random(7, len);
        static const apr_size_t dav[] = { 2048 };   /* mod_dav's reads */
        apr_pool_t *p;
        iss_manifest_t *m;
        int thr;

        apr_pool_create(&p, gp);
        m = threaded(&DFLT, data, len, dav, 1, &thr, p);
        ok(same(m, direct(&DFLT, data, len, p), p),
           "64 MiB in 2 KiB pieces, default sizes: the same manifest");
        ok(m && m->file_size == len && m->count > 100 && thr,
           "... of the whole file (%u chunks), on a second thread",
           m ? m->count : 0);
        apr_pool_destroy(p);
        free(data);
    }
}

/* The threads of this process (Linux: /proc/self/status), -1 if unknown. */
static int threads_now(void)
{
    char line[256];
    int n = -1;
    FILE *f = fopen("/proc/self/status", "r");

    while (f && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "Threads: %d", &n) == 1) {
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return n;
}

static void test_abandon(void)
{
    unsigned char *data = testdata_random(9, 2 * 1024 * 1024);
    int round, before = threads_now(), started = 0;

    for (round = 0; round < 20; round++) {
        apr_pool_t *p;
        iss_manifest_bg_t *bg;

        apr_pool_create(&p, gp);
        iss_manifest_bg_create(&bg, &SMALL, p);
        iss_manifest_bg_feed(bg, data, (apr_size_t)round * 100000);
        started += iss_manifest_bg_threaded(bg);
        apr_pool_destroy(p);            /* no finish(): a client gone */
    }
    ok(started >= 5, "builders abandoned mid-way, %d of 20 with a thread",
       started);
    ok(before > 0 && threads_now() == before, "... their pools took their "
       "threads with them (%d threads before, %d after; no leak: ASan "
       "build)", before, threads_now());
    free(data);
}

static void test_bad_params(void)
{
    iss_cdc_params_t bad = { 1000, 100, 50 };
    iss_manifest_bg_t *bg;
    apr_pool_t *p;

    apr_pool_create(&p, gp);
    ok(iss_manifest_bg_create(&bg, &bad, p) != APR_SUCCESS,
       "bad chunk sizes are refused at create");
    apr_pool_destroy(p);
}

int main(void)
{
    apr_initialize();
    apr_pool_create(&gp, NULL);
    plan(37);
    test_equal();
    test_abandon();
    test_bad_params();
    apr_pool_destroy(gp);
    apr_terminate();
    return done_testing();
}
