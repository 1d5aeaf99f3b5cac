/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * vcdiff_apply — how fast libiss applies a VCDIFF delta, the way the
 * server does for PATCH (benchmark of issue 4; run by bench/patch.sh).
 *
 *   vcdiff_apply OLD DELTA OUT
 *
 * Decodes DELTA (RFC 3284, e.g. `xdelta3 -e -D -S none -A -s OLD NEW
 * DELTA`) against OLD into OUT with iss_vcdiff: the source is read with
 * apr_file_seek + apr_file_read_full from OLD, the target is written to
 * OUT (one write per window, the decoder hands over whole windows) and
 * read back from OUT through a second handle for VCD_TARGET windows; the
 * delta is fed in 64 KiB pieces read from DELTA; max_window is 16 MiB.
 *
 * Two passes: the decoder alone, then the decoder with a SHA-256 of the
 * target computed in the same pass (the server sends Repr-Digest and a
 * content-based ETag).  OUT is removed and created anew before each
 * pass, outside the timing; nothing is fsynced.  Prints, one "key=value" a line:
 *   target_bytes=N
 *   apply_s=S apply_mbps=R              (R = target bytes / 10^6 / S)
 *   apply_sha256_s=S apply_sha256_mbps=R
 *   repr_digest=sha-256=:...:           (of the target)
 * Exit status: 0 fine, 1 any error (decoder or I/O, with a message on
 * stderr), 2 usage.
 */

#include "iss_digest.h"
#include "iss_vcdiff.h"

#include <apr_general.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_time.h>

#include <stdio.h>
#include <stdlib.h>

#define VCDIFF_APPLY_PIECE  (64 * 1024)
#define VCDIFF_APPLY_WINDOW ((apr_size_t)16 * 1024 * 1024)

typedef struct vcdiff_apply_out_t {
    apr_file_t *wr;       /* OUT, written in order */
    apr_file_t *rd;       /* OUT again, for VCD_TARGET read-back */
    iss_digest_t *digest; /* NULL: no SHA-256 in this pass */
} vcdiff_apply_out_t;

static apr_status_t vcdiff_apply_read_at(void *baton, apr_uint64_t offset,
                                         apr_size_t len, unsigned char *buf)
{
    apr_file_t *f = baton;
    apr_off_t off = (apr_off_t)offset;
    apr_size_t got = 0;
    apr_status_t rv = apr_file_seek(f, APR_SET, &off);

    if (rv != APR_SUCCESS)
        return rv;
    rv = apr_file_read_full(f, buf, len, &got);
    if (rv == APR_SUCCESS && got != len)
        rv = APR_EOF;
    return rv;
}

static apr_status_t vcdiff_apply_read_target(void *baton, apr_uint64_t offset,
                                             apr_size_t len,
                                             unsigned char *buf)
{
    vcdiff_apply_out_t *o = baton;

    return vcdiff_apply_read_at(o->rd, offset, len, buf);
}

static apr_status_t vcdiff_apply_write(void *baton, const unsigned char *buf,
                                       apr_size_t len)
{
    vcdiff_apply_out_t *o = baton;

    if (o->digest != NULL)
        iss_digest_update(o->digest, buf, len);
    return apr_file_write_full(o->wr, buf, len, NULL);
}

static void vcdiff_apply_fail(const char *what, const char *path,
                              apr_status_t rv)
{
    char msg[256];

    fprintf(stderr, "vcdiff_apply: %s%s%s: %s\n", what, path ? " " : "",
            path ? path : "", apr_strerror(rv, msg, sizeof msg));
    exit(1);
}

/* One pass: decode DELTA against OLD into OUT; returns the seconds taken
 * and the target size in *target_bytes. */
static double vcdiff_apply_pass(apr_file_t *old, apr_uint64_t old_size,
                                const char *delta_path, const char *out_path,
                                iss_digest_t *digest,
                                apr_uint64_t *target_bytes, apr_pool_t *pool)
{
    apr_pool_t *p;
    apr_file_t *delta;
    vcdiff_apply_out_t out = { NULL, NULL, digest };
    iss_vcdiff_opts_t opts = { 0 };
    iss_vcdiff_t *dec;
    unsigned char *piece;
    apr_time_t t0, t1;
    apr_status_t rv;

    rv = apr_pool_create(&p, pool);
    if (rv != APR_SUCCESS)
        vcdiff_apply_fail("apr_pool_create", NULL, rv);
    /* A new file, as the server's temporary file is: rewriting a file
     * truncated to zero would make ext4 start its writeback on close. */
    rv = apr_file_remove(out_path, p);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOENT(rv))
        vcdiff_apply_fail("remove", out_path, rv);
    rv = apr_file_open(&out.wr, out_path,
                       APR_FOPEN_WRITE | APR_FOPEN_CREATE | APR_FOPEN_EXCL,
                       APR_FPROT_OS_DEFAULT, p);
    if (rv != APR_SUCCESS)
        vcdiff_apply_fail("open", out_path, rv);
    rv = apr_file_open(&out.rd, out_path, APR_FOPEN_READ, APR_FPROT_OS_DEFAULT,
                       p);
    if (rv != APR_SUCCESS)
        vcdiff_apply_fail("open", out_path, rv);
    rv = apr_file_open(&delta, delta_path, APR_FOPEN_READ,
                       APR_FPROT_OS_DEFAULT, p);
    if (rv != APR_SUCCESS)
        vcdiff_apply_fail("open", delta_path, rv);
    piece = apr_palloc(p, VCDIFF_APPLY_PIECE);

    opts.max_window = VCDIFF_APPLY_WINDOW;
    opts.max_target = APR_UINT64_MAX;
    opts.source_size = old_size;
    opts.read_source = vcdiff_apply_read_at;
    opts.source_baton = old;
    opts.read_target = vcdiff_apply_read_target;
    opts.target_baton = &out;
    opts.write = vcdiff_apply_write;
    opts.write_baton = &out;

    t0 = apr_time_now();
    rv = iss_vcdiff_create(&dec, &opts, p);
    if (rv != APR_SUCCESS)
        vcdiff_apply_fail("iss_vcdiff_create", NULL, rv);
    for (;;) {
        apr_size_t n = VCDIFF_APPLY_PIECE;

        rv = apr_file_read(delta, piece, &n);
        if (rv == APR_EOF)
            break;
        if (rv != APR_SUCCESS)
            vcdiff_apply_fail("read", delta_path, rv);
        rv = iss_vcdiff_feed(dec, piece, n);
        if (rv != APR_SUCCESS)
            break;
    }
    if (rv == APR_EOF)
        rv = iss_vcdiff_finish(dec);
    if (rv != APR_SUCCESS) {
        char msg[256];
        const char *why = iss_vcdiff_error(dec);

        fprintf(stderr, "vcdiff_apply: %s: decoding failed after %" APR_UINT64_T_FMT
                " target bytes: %s\n", delta_path,
                iss_vcdiff_target_size(dec),
                why[0] ? why : apr_strerror(rv, msg, sizeof msg));
        exit(1);
    }
    rv = apr_file_close(out.wr);
    if (rv != APR_SUCCESS)
        vcdiff_apply_fail("close", out_path, rv);
    t1 = apr_time_now();

    *target_bytes = iss_vcdiff_target_size(dec);
    apr_pool_destroy(p);
    return (double)(t1 - t0) / APR_USEC_PER_SEC;
}

static double vcdiff_apply_mbps(apr_uint64_t bytes, double s)
{
    return s > 0 ? (double)bytes / 1e6 / s : 0.0;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool;
    apr_file_t *old;
    apr_finfo_t fi;
    iss_digest_t *digest;
    unsigned char sha[ISS_DIGEST_SHA256_LEN];
    apr_uint64_t plain_bytes, sha_bytes;
    double plain_s, sha_s;
    apr_status_t rv;

    if (argc != 4) {
        fprintf(stderr, "usage: vcdiff_apply OLD DELTA OUT\n");
        return 2;
    }
    rv = apr_app_initialize(&argc, &argv, NULL);
    if (rv != APR_SUCCESS)
        vcdiff_apply_fail("apr_app_initialize", NULL, rv);
    atexit(apr_terminate);
    rv = apr_pool_create(&pool, NULL);
    if (rv != APR_SUCCESS)
        vcdiff_apply_fail("apr_pool_create", NULL, rv);

    rv = apr_file_open(&old, argv[1], APR_FOPEN_READ, APR_FPROT_OS_DEFAULT,
                       pool);
    if (rv != APR_SUCCESS)
        vcdiff_apply_fail("open", argv[1], rv);
    rv = apr_file_info_get(&fi, APR_FINFO_SIZE, old);
    if (rv != APR_SUCCESS)
        vcdiff_apply_fail("stat", argv[1], rv);

    plain_s = vcdiff_apply_pass(old, (apr_uint64_t)fi.size, argv[2], argv[3],
                                NULL, &plain_bytes, pool);

    rv = iss_digest_create(&digest, pool);
    if (rv != APR_SUCCESS)
        vcdiff_apply_fail("iss_digest_create", NULL, rv);
    sha_s = vcdiff_apply_pass(old, (apr_uint64_t)fi.size, argv[2], argv[3],
                              digest, &sha_bytes, pool);
    iss_digest_final(digest, sha);
    if (sha_bytes != plain_bytes) {
        fprintf(stderr, "vcdiff_apply: the two passes made %" APR_UINT64_T_FMT
                " and %" APR_UINT64_T_FMT " bytes\n", plain_bytes, sha_bytes);
        return 1;
    }

    printf("target_bytes=%" APR_UINT64_T_FMT "\n", plain_bytes);
    printf("apply_s=%.6f apply_mbps=%.1f\n", plain_s,
           vcdiff_apply_mbps(plain_bytes, plain_s));
    printf("apply_sha256_s=%.6f apply_sha256_mbps=%.1f\n", sha_s,
           vcdiff_apply_mbps(sha_bytes, sha_s));
    printf("repr_digest=%s\n", iss_digest_field(sha, pool));
    return 0;
}
