/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * vcdiff_encode — libiss's VCDIFF encoder on a pair of files, the way
 * the server will use it for a 226 delta (benchmark of issue 15; run by
 * bench/vcdiff_encode.sh).
 *
 *   vcdiff_encode [-m] [-c] [-w WINDOW] [-i INDEX] OLD NEW DELTA
 *
 * Encodes NEW against OLD into DELTA with iss_vcdiff_enc: the source is
 * read with apr_file_seek + apr_file_read_full, NEW is read in 1 MiB
 * pieces and fed, DELTA is written as the encoder hands it over.
 *   -m   with manifests (default chunking, 16/64/256 KiB): both are
 *        made first, outside the timing (the server keeps them), and the
 *        target bytes the encoder says it need not see are skipped
 *        (seek) instead of read and fed (iss_vcdiff_enc_wanted() says
 *        how much to read before asking again);
 *   -c   with xdelta3's Adler-32 per window (no skipping then);
 *   -w   the target window in bytes (default 8 MiB);
 *   -i   the source index's size in bytes (default 8 MiB).
 * Prints, one "key=value" a line:
 *   target_bytes=N delta_bytes=N
 *   encode_s=S                 (create to finish, DELTA closed)
 *   manifests_s=S              (-m: making both manifests, not in encode_s)
 *   changed_bytes=N            (-m: iss_vcdiff_enc_changed_bytes())
 *   source_read_bytes=N source_reads=N (read callbacks: seek + read each)
 *   target_read_bytes=N target_skipped_bytes=N
 * Exit status: 0 fine, 1 any error (with a message on stderr), 2 usage.
 */

#include "iss_manifest.h"
#include "iss_vcdiff_enc.h"

#include <apr_general.h>
#include <apr_file_io.h>
#include <apr_getopt.h>
#include <apr_strings.h>
#include <apr_time.h>

#include <stdio.h>
#include <stdlib.h>

#define VCDIFF_ENCODE_PIECE (1024 * 1024)

typedef struct vcdiff_encode_src_t {
    apr_file_t *f;
    apr_uint64_t read, calls;
} vcdiff_encode_src_t;

static apr_status_t vcdiff_encode_read(void *baton, apr_uint64_t offset,
                                       apr_size_t len, unsigned char *buf)
{
    vcdiff_encode_src_t *s = baton;
    apr_off_t off = (apr_off_t)offset;
    apr_size_t got = 0;
    apr_status_t rv = apr_file_seek(s->f, APR_SET, &off);

    s->calls++;
    if (rv != APR_SUCCESS)
        return rv;
    rv = apr_file_read_full(s->f, buf, len, &got);
    if (rv == APR_SUCCESS && got != len)
        rv = APR_EOF;
    s->read += got;
    return rv;
}

static apr_status_t vcdiff_encode_write(void *baton, const unsigned char *buf,
                                        apr_size_t len)
{
    return apr_file_write_full(baton, buf, len, NULL);
}

static void vcdiff_encode_fail(const char *what, const char *path,
                               apr_status_t rv)
{
    char msg[256];

    fprintf(stderr, "vcdiff_encode: %s%s%s: %s\n", what, path ? " " : "",
            path ? path : "", apr_strerror(rv, msg, sizeof msg));
    exit(1);
}

static apr_file_t *vcdiff_encode_open(const char *path, apr_int32_t flags,
                                      apr_pool_t *pool)
{
    apr_file_t *f;
    apr_status_t rv = apr_file_open(&f, path, flags, APR_FPROT_OS_DEFAULT,
                                    pool);

    if (rv != APR_SUCCESS)
        vcdiff_encode_fail("open", path, rv);
    return f;
}

static iss_manifest_t *vcdiff_encode_manifest(const char *path,
                                              apr_pool_t *pool)
{
    static const iss_cdc_params_t prm = ISS_CDC_PARAMS_DEFAULT;
    apr_file_t *f = vcdiff_encode_open(path, APR_FOPEN_READ, pool);
    iss_manifest_t *m;
    apr_status_t rv = iss_manifest_of_file(f, &prm, &m, pool);

    if (rv != APR_SUCCESS)
        vcdiff_encode_fail("manifest of", path, rv);
    apr_file_close(f);
    return m;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool;
    apr_getopt_t *opt;
    const char *arg, *old_path, *new_path, *delta_path;
    int c, manifests = 0;
    vcdiff_encode_src_t src = { NULL, 0, 0 };
    apr_file_t *tgt, *delta;
    apr_finfo_t fi;
    iss_vcdiff_enc_opts_t o = { 0 };
    iss_vcdiff_enc_t *enc;
    unsigned char *piece;
    apr_uint64_t fed = 0, skipped = 0, changed = 0;
    apr_time_t t0, t1, m0 = 0, m1 = 0;
    apr_status_t rv;
    char ch;

    rv = apr_app_initialize(&argc, &argv, NULL);
    if (rv != APR_SUCCESS)
        vcdiff_encode_fail("apr_app_initialize", NULL, rv);
    atexit(apr_terminate);
    rv = apr_pool_create(&pool, NULL);
    if (rv != APR_SUCCESS)
        vcdiff_encode_fail("apr_pool_create", NULL, rv);
    apr_getopt_init(&opt, pool, argc, argv);
    while ((rv = apr_getopt(opt, "mcw:i:", &ch, &arg)) == APR_SUCCESS) {
        c = ch;
        if (c == 'm')
            manifests = 1;
        else if (c == 'c')
            o.checksum = 1;
        else if (c == 'w')
            o.window = (apr_size_t)apr_atoi64(arg);
        else if (c == 'i')
            o.index_size = (apr_size_t)apr_atoi64(arg);
    }
    if (rv != APR_EOF || argc - opt->ind != 3) {
        fprintf(stderr, "usage: vcdiff_encode [-m] [-c] [-w WINDOW] [-i INDEX]"
                " OLD NEW DELTA\n");
        return 2;
    }
    old_path = argv[opt->ind];
    new_path = argv[opt->ind + 1];
    delta_path = argv[opt->ind + 2];

    src.f = vcdiff_encode_open(old_path, APR_FOPEN_READ, pool);
    rv = apr_file_info_get(&fi, APR_FINFO_SIZE, src.f);
    if (rv != APR_SUCCESS)
        vcdiff_encode_fail("stat", old_path, rv);
    o.source_size = (apr_uint64_t)fi.size;
    o.read_source = vcdiff_encode_read;
    o.source_baton = &src;
    if (manifests) {
        m0 = apr_time_now();
        o.source_manifest = vcdiff_encode_manifest(old_path, pool);
        o.target_manifest = vcdiff_encode_manifest(new_path, pool);
        m1 = apr_time_now();
        rv = iss_vcdiff_enc_changed_bytes(o.source_manifest,
                                          o.target_manifest, &changed, pool);
        if (rv != APR_SUCCESS)
            vcdiff_encode_fail("iss_vcdiff_enc_changed_bytes", NULL, rv);
    }
    tgt = vcdiff_encode_open(new_path, APR_FOPEN_READ, pool);
    apr_file_remove(delta_path, pool);
    delta = vcdiff_encode_open(delta_path, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                               | APR_FOPEN_EXCL | APR_FOPEN_BUFFERED, pool);
    o.write = vcdiff_encode_write;
    o.write_baton = delta;
    piece = apr_palloc(pool, VCDIFF_ENCODE_PIECE);

    t0 = apr_time_now();
    rv = iss_vcdiff_enc_create(&enc, &o, pool);
    if (rv != APR_SUCCESS)
        vcdiff_encode_fail("iss_vcdiff_enc_create", NULL, rv);
    for (;;) {
        apr_uint64_t sk = iss_vcdiff_enc_skippable(enc);
        apr_uint64_t want = iss_vcdiff_enc_wanted(enc);
        apr_size_t n = VCDIFF_ENCODE_PIECE;

        if (sk > 0) {
            apr_off_t off = (apr_off_t)sk;

            rv = apr_file_seek(tgt, APR_CUR, &off);
            if (rv != APR_SUCCESS)
                vcdiff_encode_fail("seek", new_path, rv);
            rv = iss_vcdiff_enc_skip(enc, sk);
            if (rv != APR_SUCCESS)
                break;
            skipped += sk;
            continue;
        }
        if (want > 0 && want < n)
            n = (apr_size_t)want;       /* then skip again */
        rv = apr_file_read(tgt, piece, &n);
        if (rv == APR_EOF)
            break;
        if (rv != APR_SUCCESS)
            vcdiff_encode_fail("read", new_path, rv);
        fed += n;
        rv = iss_vcdiff_enc_feed(enc, piece, n);
        if (rv != APR_SUCCESS)
            break;
    }
    if (rv == APR_EOF)
        rv = iss_vcdiff_enc_finish(enc);
    if (rv != APR_SUCCESS) {
        char msg[256];
        const char *why = iss_vcdiff_enc_error(enc);

        fprintf(stderr, "vcdiff_encode: encoding failed: %s\n",
                why[0] ? why : apr_strerror(rv, msg, sizeof msg));
        return 1;
    }
    rv = apr_file_close(delta);
    if (rv != APR_SUCCESS)
        vcdiff_encode_fail("close", delta_path, rv);
    t1 = apr_time_now();

    printf("target_bytes=%" APR_UINT64_T_FMT "\n",
           iss_vcdiff_enc_target_size(enc));
    printf("delta_bytes=%" APR_UINT64_T_FMT "\n",
           iss_vcdiff_enc_delta_size(enc));
    printf("encode_s=%.3f\n", (double)(t1 - t0) / APR_USEC_PER_SEC);
    if (manifests) {
        printf("manifests_s=%.3f\n", (double)(m1 - m0) / APR_USEC_PER_SEC);
        printf("changed_bytes=%" APR_UINT64_T_FMT "\n", changed);
    }
    printf("source_read_bytes=%" APR_UINT64_T_FMT "\n", src.read);
    printf("source_reads=%" APR_UINT64_T_FMT "\n", src.calls);
    printf("target_read_bytes=%" APR_UINT64_T_FMT "\n", fed);
    printf("target_skipped_bytes=%" APR_UINT64_T_FMT "\n", skipped);
    apr_pool_destroy(pool);
    return 0;
}
