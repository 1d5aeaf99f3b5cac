/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* iss_filedigest: records round-trip and refuse anything but their own
 * form; a record counts only for the file identity it names; computing
 * reads the file once and tells whether the result may be kept; the ETag
 * form (known vectors). */

#include "iss_filedigest.h"
#include "iss_bytes.h"
#include "tap.h"
#include "testfs.h"
#include "teststore.h"

#include <apr_general.h>
#include <stdlib.h>
#include <unistd.h>

static apr_pool_t *gp;

/* SHA-256 of "" and of "abc" (FIPS 180-2). */
static const unsigned char EMPTY[32] = {
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8,
    0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
    0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55 };
static const unsigned char ABC[32] = {
    0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde,
    0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
    0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad };

static void test_etag(void)
{
    const char *e = iss_digest_etag(EMPTY, gp);

    is_str(e, "\"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU\"",
           "ETag of the empty content (base64url, no padding, quoted)");
    is_int((long long)strlen(e), ISS_DIGEST_ETAG_LEN, "ETag length");
    is_str(iss_digest_etag(ABC, gp),
           "\"ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0\"",
           "ETag of \"abc\" (uses - and _)");
}

static void test_records(void)
{
    iss_filedigest_t d = { 0 }, back;
    const char *rec;
    static const char *const bad[] = {
        "", "IFD1", "IFD1 ", "IFD2 1 2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "IFD1 1 2 3", "IFD1 1 2 3 ", "IFD1 01 2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "IFD1 -1 2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "IFD1 1 -2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "IFD1 1 2 -0 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "IFD1 1 2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU",
        "IFD1 1 2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU==",
        "IFD1 1 2 3 47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=",
        "IFD1 1 2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSu=U=",
        "IFD1 1  2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "IFD1 18446744073709551616 2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "IFD1 1 9223372036854775808 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "IFD1 1 2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU= ",
        NULL
    };
    int i;

    d.ino = 123456789012ULL;
    d.size = 42;
    d.mtime = -1500;               /* before 1970: still a valid time */
    memcpy(d.sha256, ABC, 32);
    rec = iss_filedigest_encode(&d, gp);
    is_str(rec, "IFD1 123456789012 42 -1500 "
                "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=", "encode");
    ok(strlen(rec) < ISS_FILEDIGEST_RECORD_MAX, "fits RECORD_MAX");
    is_int(iss_filedigest_decode(rec, strlen(rec), &back), APR_SUCCESS,
           "decode what encode wrote");
    ok(back.ino == d.ino && back.size == d.size && back.mtime == d.mtime
       && !memcmp(back.sha256, ABC, 32), "round trip");
    rec = "IFD1 0 0 0 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    is_int(iss_filedigest_decode(rec, strlen(rec), &back), APR_SUCCESS,
           "zeros decode");
    ok(!memcmp(back.sha256, EMPTY, 32), "... with the right digest");
    for (i = 0; bad[i]; i++) {
        memset(&back, 0x5a, sizeof(back));
        is_int(iss_filedigest_decode(bad[i], strlen(bad[i]), &back),
               APR_EINVAL, "refused: '%s'", bad[i]);
        ok(back.size == (apr_off_t)0x5a5a5a5a5a5a5a5aLL,
           "... and the output untouched");
    }
    /* Not NUL-terminated: only len bytes are read. */
    rec = "IFD1 1 2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=garbage";
    is_int(iss_filedigest_decode(rec, strlen(rec) - 7, &back), APR_SUCCESS,
           "decode reads only len bytes");
    is_str(iss_filedigest_key("a/b c", gp), "d/a/b c", "key");
}

/* Version 2 records: the checksums of ownCloud clients with the digest;
 * version 1 records still read, without them. */
static void test_records_v2(void)
{
    iss_filedigest_t d = { 0 }, back;
    const char *rec;
    static const char *const bad[] = {
        "IFD2 1 2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU= - -",
        "IFD2 1 2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU= a9993e36 -",
        "IFD2 1 2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU= a9993e364706816aba3e25717850c26c9cd0d89d",
        "IFD2 1 2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU= a9993e364706816aba3e25717850c26c9cd0d89d  -",
        "IFD2 1 2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU= - 900150983cd24fb0d6963f7d28e17f7x",
        "IFD2 1 2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=a9993e364706816aba3e25717850c26c9cd0d89d -",
        "IFD1 1 2 3 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU= a9993e364706816aba3e25717850c26c9cd0d89d -",
        NULL
    };
    int i;

    d.ino = 7;
    d.size = 3;
    d.mtime = 1000000;
    memcpy(d.sha256, ABC, 32);
    d.sums.have = ISS_SUM_SHA1;
    iss_hex_decode(d.sums.sha1, 20, "a9993e364706816aba3e25717850c26c9cd0d89d", 40);
    rec = iss_filedigest_encode(&d, gp);
    is_str(rec, "IFD2 7 3 1000000 ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0= "
                "a9993e364706816aba3e25717850c26c9cd0d89d -", "v2: encode with SHA-1");
    is_int(iss_filedigest_decode(rec, strlen(rec), &back), APR_SUCCESS, "v2: decode");
    ok(back.sums.have == ISS_SUM_SHA1 && !memcmp(back.sums.sha1, d.sums.sha1, 20)
       && !memcmp(back.sha256, ABC, 32) && back.mtime == d.mtime, "v2: round trip");
    d.sums.have |= ISS_SUM_MD5;
    iss_hex_decode(d.sums.md5, 16, "900150983cd24fb0d6963f7d28e17f72", 32);
    rec = iss_filedigest_encode(&d, gp);
    ok(strlen(rec) < ISS_FILEDIGEST_RECORD_MAX, "v2 with SHA-1 and MD5 fits RECORD_MAX");
    is_int(iss_filedigest_decode(rec, strlen(rec), &back), APR_SUCCESS, "v2 with both: decode");
    ok(back.sums.have == (ISS_SUM_SHA1 | ISS_SUM_MD5)
       && !memcmp(back.sums.md5, d.sums.md5, 16), "v2 with both: round trip");
    d.sums.have = ISS_SUM_MD5;
    rec = iss_filedigest_encode(&d, gp);
    is_int(iss_filedigest_decode(rec, strlen(rec), &back), APR_SUCCESS, "v2 with MD5 only: decode");
    is_int((int)back.sums.have, ISS_SUM_MD5, "v2 with MD5 only: round trip");
    d.sums.have = 0;
    rec = iss_filedigest_encode(&d, gp);
    ok(strncmp(rec, "IFD1 ", 5) == 0, "no checksums: still a version 1 record");
    memset(&back.sums, 0x5a, sizeof(back.sums));
    is_int(iss_filedigest_decode(rec, strlen(rec), &back), APR_SUCCESS, "v1: decode");
    is_int((int)back.sums.have, 0, "v1: read as a record without checksums");
    for (i = 0; bad[i]; i++) {
        memset(&back, 0x5a, sizeof(back));
        is_int(iss_filedigest_decode(bad[i], strlen(bad[i]), &back),
               APR_EINVAL, "v2 refused: '%s'", bad[i]);
    }
}

/* iss_filedigest_compute_file() of the file at @a path. */
static apr_status_t compute(const char *path, iss_filedigest_t *d,
                            apr_interval_time_t settle, int *stable)
{
    apr_file_t *f;
    apr_status_t rv = apr_file_open(&f, path, APR_FOPEN_READ, 0, gp);

    if (rv != APR_SUCCESS)
        return rv;
    rv = iss_filedigest_compute_file(f, d, settle, stable, gp);
    apr_file_close(f);
    return rv;
}

static void test_identity_and_store(const char *dir)
{
    const char *path = apr_pstrcat(gp, dir, "/f", NULL);
    iss_store_t *s = NULL;
    iss_filedigest_t d;
    apr_finfo_t fi, other;
    unsigned char out[32];
    int found = -1, stable = -1;

    testfs_put(path, "abc", gp);
    is_int(compute(path, &d, apr_time_from_sec(1), &stable), APR_SUCCESS, "compute");
    ok(!memcmp(d.sha256, ABC, 32), "the digest of \"abc\"");
    is_int(stable, 0, "a file written just now: not to be kept");
    apr_stat(&fi, path, APR_FINFO_IDENT | APR_FINFO_SIZE | APR_FINFO_MTIME,
             gp);
    ok(iss_filedigest_matches(&d, &fi), "the identity is the file's");
    other = fi;
    other.size++;
    ok(!iss_filedigest_matches(&d, &other), "another size: no match");
    other = fi;
    other.mtime++;
    ok(!iss_filedigest_matches(&d, &other), "another mtime: no match");
    other = fi;
    other.inode++;
    ok(!iss_filedigest_matches(&d, &other), "another inode: no match");

    apr_file_mtime_set(path, apr_time_now() - apr_time_from_sec(10), gp);
    is_int(compute(path, &d, apr_time_from_sec(1), &stable), APR_SUCCESS, "compute again");
    is_int(stable, 1, "a file last changed 10 s ago: may be kept");

    testfs_mkdir(apr_pstrcat(gp, dir, "/state", NULL), gp);
    if (!is_int(iss_store_open(&s, apr_pstrcat(gp, dir, "/state", NULL),
                               "sdbm", NULL, NULL, NULL, gp), APR_SUCCESS,
                "store"))
        return;
    iss_store_set_sync(s, 0);
    apr_stat(&fi, path, APR_FINFO_IDENT | APR_FINFO_SIZE | APR_FINFO_MTIME,
             gp);
    is_int(iss_filedigest_lookup(s, "f", &fi, out, &found, gp), APR_SUCCESS,
           "lookup without a record");
    is_int(found, 0, "... not found");
    {
        iss_store_batch_t *b = iss_store_batch_make(s, gp);

        iss_filedigest_stage(b, "f", &d, gp);
        is_int(iss_store_batch_commit(b), APR_SUCCESS, "stage and commit");
    }
    ok(teststore_get(s, "d/f", gp) != NULL, "d/f written");
    is_int(iss_filedigest_lookup(s, "f", &fi, out, &found, gp), APR_SUCCESS,
           "lookup");
    is_int(found, 1, "... found for the same file");
    ok(!memcmp(out, ABC, 32), "... with its digest");
    testfs_put(path, "abd", gp);      /* same size, new mtime */
    apr_stat(&fi, path, APR_FINFO_IDENT | APR_FINFO_SIZE | APR_FINFO_MTIME,
             gp);
    iss_filedigest_lookup(s, "f", &fi, out, &found, gp);
    is_int(found, 0, "rewritten in place: the record does not count");
    iss_store_put(s, "d/f", 3, "junk", 4);
    iss_filedigest_lookup(s, "f", &fi, out, &found, gp);
    is_int(found, 0, "an unreadable record counts as absent");

    is_int(compute(dir, &d, 0, &stable), APR_EINVAL,
           "a directory: APR_EINVAL");
    ok(APR_STATUS_IS_ENOENT(compute(
           apr_pstrcat(gp, dir, "/none", NULL), &d, 0, &stable)),
       "a missing file: ENOENT");
    {
        /* Bigger than the read buffer. */
        const char *big = apr_pstrcat(gp, dir, "/big", NULL);
        char *data = malloc(200000);
        iss_digest_t *sha;
        unsigned char want[32];
        apr_file_t *f;

        memset(data, 'x', 200000);
        apr_file_open(&f, big, APR_FOPEN_CREATE | APR_FOPEN_WRITE
                      | APR_FOPEN_TRUNCATE, APR_OS_DEFAULT, gp);
        apr_file_write_full(f, data, 200000, NULL);
        apr_file_close(f);
        iss_digest_create(&sha, gp);
        iss_digest_update(sha, data, 200000);
        iss_digest_final(sha, want);
        compute(big, &d, 0, &stable);
        ok(!memcmp(d.sha256, want, 32) && d.size == 200000,
           "a 200000-byte file: the right digest and size");
        is_int((int)d.sums.have, 0, "... and no checksums unless asked");
        {
            apr_file_t *g;

            apr_file_open(&g, big, APR_FOPEN_READ, 0, gp);
            is_int(iss_filedigest_compute_file_sums(g, &d, ISS_SUM_SHA1 | ISS_SUM_MD5,
                                                    0, &stable, gp), APR_SUCCESS,
                   "compute with SHA-1 and MD5");
            apr_file_close(g);
            ok(!memcmp(d.sha256, want, 32), "... the same digest");
            is_str(iss_digest_sums_text(&d.sums, gp),
                   "SHA1:62951f943c41cdd326e5ce2b53a779e7916a820d "
                   "MD5:4b98146705d4b0b98b758a78ff6fb73f",
                   "... and the checksums, in the same read");
        }
        free(data);
    }
}

int main(void)
{
    char base[] = "/tmp/iss-filedigest-test-XXXXXX";

    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&gp, NULL);
    test_etag();
    test_records();
    test_records_v2();
    if (mkdtemp(base)) {
        test_identity_and_store(base);
        testfs_rm_rf(base, gp);
    }
    else {
        ok(0, "mkdtemp");
    }
    return done_testing();
}
