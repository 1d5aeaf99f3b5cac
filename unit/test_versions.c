/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* iss_versions: a held file that is replaced or removed becomes a
 * version read back byte for byte; one that stays is not; the same
 * content is kept once; limits (count, size, age) drop the oldest and
 * their data; damaged data is refused, never handed out; a collection
 * removes only what nothing references; ETag and directive parsing. */

#include "iss_versions.h"
#include "iss_bytes.h"
#include "iss_cdc.h"
#include "iss_chunkidx.h"
#include "iss_sync_log.h"
#include "tap.h"
#include "testfs.h"
#include "teststore.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

static apr_pool_t *gp;
static const char *root, *sdir;
static iss_store_t *store;

static int tput(const char *path, const char *content)
{
    return testfs_put(path, content, gp);
}

static const char *path_of(const char *rel)
{
    return apr_pstrcat(gp, root, "/", rel, NULL);
}

static void put_bytes(const char *path, const void *buf, apr_size_t len)
{
    apr_file_t *f;

    if (apr_file_open(&f, path, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                      | APR_FOPEN_TRUNCATE, APR_FPROT_OS_DEFAULT, gp)
        != APR_SUCCESS
        || apr_file_write_full(f, buf, len, NULL) != APR_SUCCESS) {
        diag("cannot write %s", path);
    }
    apr_file_close(f);
}

/* Replace @a rel as mod_dav_fs does: a new inode renamed over it. */
static void replace(const char *rel, const char *content)
{
    const char *tmp = apr_pstrcat(gp, path_of(rel), ".tmp", NULL);

    tput(tmp, content);
    rename(tmp, path_of(rel));
}

static void sha(const void *buf, apr_size_t len, unsigned char out[32])
{
    iss_digest_t *d;

    iss_digest_create(&d, gp);
    iss_digest_update(d, buf, len);
    iss_digest_final(d, out);
}

/* An intent record, as the sync log makes one, for a hold's tag. */
static void intent(const char *tag, int on)
{
    const char *k = apr_pstrcat(gp, "intent/", tag, NULL);

    if (on) {
        iss_store_put(store, k, strlen(k), "ISI1 test\n", 10);
    }
    else {
        iss_store_delete(store, k, strlen(k));
    }
}

static int ntag;

/* One write of @a rel by @a fn (replace or remove) between a hold and
 * its settlement: *retained. */
static int write_with(const char *rel, const char *content,
                      const iss_versions_limits_t *lim, apr_time_t now)
{
    iss_versions_hold_t *h;
    const char *tag = apr_psprintf(gp, "t%ld-%d", (long)getpid(), ++ntag);
    int retained = -1;
    apr_status_t rv;

    intent(tag, 1);
    rv = iss_versions_hold(store, path_of(rel), rel, tag, 0, &h, gp);
    if (rv != APR_SUCCESS) {
        if (rv != APR_NOTFOUND) {
            diag("hold %s: %d", rel, rv);
        }
        intent(tag, 0);
        return -1;
    }
    if (content) {
        replace(rel, content);
    }
    else {
        unlink(path_of(rel));
    }
    rv = iss_versions_settle(store, h, lim, NULL, now, &retained, gp);
    if (rv != APR_SUCCESS) {
        diag("settle %s: %d", rel, rv);
    }
    intent(tag, 0);
    return retained;
}

/* The bytes of version @a digest of @a rel, or NULL (*rv why). */
static const char *read_version(const char *rel, const unsigned char *digest,
                                apr_status_t *rvp)
{
    iss_version_t *v;
    iss_version_reader_t *rd;
    char *buf;
    apr_size_t got;
    apr_status_t rv;

    if ((rv = iss_versions_find(store, rel, digest, &v, gp)) != APR_SUCCESS
        || (rv = iss_versions_open(store, v, &rd, gp)) != APR_SUCCESS) {
        *rvp = rv;
        return NULL;
    }
    buf = apr_palloc(gp, (apr_size_t)v->size + 1);
    rv = iss_versions_pread(rd, 0, buf, (apr_size_t)v->size + 1, &got);
    iss_versions_close(rd);
    *rvp = rv;
    if (rv != APR_SUCCESS) {
        return NULL;
    }
    buf[got] = '\0';
    return buf;
}

static const unsigned char *dg(const char *s)
{
    unsigned char *d = apr_palloc(gp, 32);

    sha(s, strlen(s), d);
    return d;
}

static int nfiles(const char *sub)
{
    iss_versions_usage_t u;

    iss_versions_usage(store, &u, gp);
    if (strcmp(sub, "data") == 0) {
        return (int)u.disk_files;
    }
    return (int)u.pending;
}

static void test_parse(void)
{
    iss_versions_limits_t lim = { 0, 0, 0, 0 };
    unsigned char d[32], back[32];
    const char *e;
    int on = 0;

    ok(iss_versions_limits_parse(&lim, &on, "On", gp) == NULL && on == 1,
       "On");
    ok(iss_versions_limits_parse(&lim, &on, "off", gp) == NULL && on == 0,
       "off");
    ok(iss_versions_limits_parse(&lim, &on, "count=3", gp) == NULL
       && lim.max_count == 3 && on == 1, "count=3 (and on)");
    ok(iss_versions_limits_parse(&lim, &on, "size=10K", gp) == NULL
       && lim.max_bytes == 10240, "size=10K");
    ok(iss_versions_limits_parse(&lim, &on, "age=2d", gp) == NULL
       && lim.max_age == apr_time_from_sec(2 * 86400), "age=2d");
    ok(iss_versions_limits_parse(&lim, &on, "age=90", gp) == NULL
       && lim.max_age == apr_time_from_sec(90), "age=90 (seconds)");
    ok(iss_versions_limits_parse(&lim, &on, "count=off", gp) == NULL
       && lim.max_count == 0, "count=off");
    ok(iss_versions_limits_parse(&lim, &on, "count=0", gp) != NULL,
       "count=0 refused");
    ok(iss_versions_limits_parse(&lim, &on, "count=-1", gp) != NULL,
       "count=-1 refused");
    ok(iss_versions_limits_parse(&lim, &on, "size=12X", gp) != NULL,
       "size=12X refused");
    ok(iss_versions_limits_parse(&lim, &on, "size=2048T", gp) != NULL,
       "size=2048T refused");
    e = iss_versions_limits_parse(&lim, &on, "age=5x", gp);
    ok(e && strstr(e, "unknown unit"), "age=5x: unknown unit");
    ok(iss_versions_limits_parse(&lim, &on, "pack=8M", gp) == NULL
       && lim.pack_bytes == 8u << 20, "pack=8M");
    ok(iss_versions_limits_parse(&lim, &on, "pack=off", gp) == NULL
       && lim.pack_bytes == 0, "pack=off");
    ok(iss_versions_limits_parse(&lim, &on, "pack=0", gp) != NULL
       && iss_versions_limits_parse(&lim, &on, "pack=3Q", gp) != NULL,
       "pack=0 and pack=3Q refused");
    e = iss_versions_limits_parse(&lim, &on, "keep=all", gp);
    ok(e && strstr(e, "expected On, Off"), "keep=all: says what is expected");

    sha("abc", 3, d);
    e = iss_digest_etag(d, gp);
    ok(iss_versions_etag_digest(e, strlen(e), back) && !memcmp(d, back, 32),
       "ETag with quotes parses to its digest");
    ok(iss_versions_etag_digest(e + 1, strlen(e) - 2, back)
       && !memcmp(d, back, 32), "... and without");
    ok(!iss_versions_etag_digest(e + 1, strlen(e) - 3, back),
       "one character short");
    ok(!iss_versions_etag_digest("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0",
                                 43, back), "base64 (not url) refused");
    ok(!iss_versions_etag_digest("ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa1",
                                 43, back), "non-zero trailing bits refused");
    ok(!iss_versions_etag_digest("../../../../etc/passwd/../../../../../../..",
                                 43, back), "a path refused");
}

static void test_retain(void)
{
    iss_versions_limits_t lim = { 0, 0, 0, 0 };
    apr_array_header_t *vs;
    apr_status_t rv;
    const char *got;

    tput(path_of("a.txt"), "one");
    is_int(write_with("a.txt", "two", &lim, apr_time_from_sec(1000)), 1,
           "replaced: retained");
    got = read_version("a.txt", dg("one"), &rv);
    is_str(got, "one", "the old bytes read back");
    is_int(nfiles("pending"), 0, "no pending link left");
    is_int(write_with("b.txt", "x", &lim, apr_time_from_sec(1000)), -1,
           "a file that does not exist: nothing held");

    /* A write that replaced nothing (refused, failed). */
    {
        iss_versions_hold_t *h;
        int retained = -1;

        intent("keep", 1);
        is_int(iss_versions_hold(store, path_of("a.txt"), "a.txt", "keep", 0,
                                 &h, gp), APR_SUCCESS, "hold");
        is_int(nfiles("pending"), 1, "a pending link while held");
        is_int(iss_versions_settle(store, h, &lim, NULL,
                                   apr_time_from_sec(1001), &retained, gp),
               APR_SUCCESS, "settle");
        is_int(retained, 0, "same inode at the path: not retained");
        is_int(nfiles("pending"), 0, "and the link is gone");
        intent("keep", 0);
    }
    /* Replaced by the same bytes (the caller knows the new digest). */
    {
        iss_versions_hold_t *h;
        int retained = -1;

        intent("same", 1);
        iss_versions_hold(store, path_of("a.txt"), "a.txt", "same", 0, &h,
                          gp);
        replace("a.txt", "two");
        iss_versions_settle(store, h, &lim, dg("two"),
                            apr_time_from_sec(1002), &retained, gp);
        is_int(retained, 0, "rewritten with the same bytes: not retained");
        intent("same", 0);
    }
    is_int(write_with("a.txt", "three", &lim, apr_time_from_sec(1003)), 1,
           "second replacement");
    is_int(write_with("a.txt", NULL, &lim, apr_time_from_sec(1004)), 1,
           "deleted: retained");
    iss_versions_list(store, "a.txt", &vs, gp);
    is_int(vs->nelts, 3, "three versions");
    ok(vs->nelts == 3
       && !memcmp(APR_ARRAY_IDX(vs, 0, iss_version_t *)->digest,
                  dg("three"), 32)
       && !memcmp(APR_ARRAY_IDX(vs, 2, iss_version_t *)->digest,
                  dg("one"), 32)
       && APR_ARRAY_IDX(vs, 0, iss_version_t *)->replaced
          == apr_time_from_sec(1004), "newest first, with their times");
    is_str(read_version("a.txt", dg("three"), &rv), "three",
           "the deleted content reads back");
    {
        iss_version_t *v;

        is_int(iss_versions_find(store, "a.txt", dg("nope"), &v, gp),
               APR_NOTFOUND, "an unknown digest: APR_NOTFOUND");
        is_int(iss_versions_find(store, "b.txt", dg("one"), &v, gp),
               APR_NOTFOUND, "another file's digest: APR_NOTFOUND");
    }
    /* The same content under two paths and twice under one: one blob. */
    tput(path_of("a.txt"), "one");
    tput(path_of("c.txt"), "one");
    is_int(write_with("c.txt", "four", &lim, apr_time_from_sec(1005)), 1,
           "c.txt with a.txt's old content");
    is_int(write_with("a.txt", "five", &lim, apr_time_from_sec(1006)), 1,
           "a.txt's 'one' again");
    iss_versions_list(store, "a.txt", &vs, gp);
    is_int(vs->nelts, 3, "the same content again is one entry (moved up)");
    is_int(nfiles("data"), 3, "one data file per distinct content");
}

static void test_limits(void)
{
    iss_versions_limits_t lim = { 2, 0, 0, 0 };
    apr_array_header_t *vs;
    iss_versions_usage_t u;
    apr_status_t rv;
    int i;

    tput(path_of("l.txt"), "v0");
    for (i = 1; i <= 5; i++) {
        write_with("l.txt", apr_psprintf(gp, "v%d", i), &lim,
                   apr_time_from_sec(2000 + i));
    }
    iss_versions_list(store, "l.txt", &vs, gp);
    is_int(vs->nelts, 2, "count=2: two versions kept");
    is_str(read_version("l.txt", dg("v4"), &rv), "v4", "the newest kept");
    ok(read_version("l.txt", dg("v2"), &rv) == NULL && rv == APR_NOTFOUND,
       "an older one is gone");
    iss_versions_usage(store, &u, gp);
    is_int((long long)u.disk_files, (long long)u.blobs,
           "dropped versions' data removed at once (files = blobs)");

    /* Age: versions older than the limit go at the next retention. */
    lim.max_count = 0;
    lim.max_age = apr_time_from_sec(10);
    write_with("l.txt", "v6", &lim, apr_time_from_sec(2015));
    iss_versions_list(store, "l.txt", &vs, gp);
    is_int(vs->nelts, 2, "age=10s at 2015: v3 (replaced 2004) went, v4 "
           "(2005) stays, v5 is new");
    write_with("l.txt", "v7", &lim, apr_time_from_sec(2100));
    iss_versions_list(store, "l.txt", &vs, gp);
    is_int(vs->nelts, 1, "100 s later only the new one is left");

    /* Size over all files: oldest dropped first. */
    {
        iss_versions_limits_t big = { 0, 0, 0, 0 };
        char *blk = apr_palloc(gp, 1000);
        iss_version_t *v;

        memset(blk, 'a', 1000);
        put_bytes(path_of("s1"), blk, 1000);
        memset(blk, 'b', 1000);
        put_bytes(path_of("s2"), blk, 1000);
        write_with("s1", "x", &big, apr_time_from_sec(3000));
        write_with("s2", "y", &big, apr_time_from_sec(3001));
        iss_versions_usage(store, &u, gp);
        big.max_bytes = u.bytes - 500;
        tput(path_of("s3"), "tiny");
        write_with("s3", "z", &big, apr_time_from_sec(3002));
        iss_versions_usage(store, &u, gp);
        ok(u.bytes <= big.max_bytes, "size limit holds after retention");
        memset(blk, 'a', 1000);
        {
            unsigned char d1[32], d2[32];

            sha(blk, 1000, d1);
            memset(blk, 'b', 1000);
            sha(blk, 1000, d2);
            ok(iss_versions_find(store, "s1", d1, &v, gp) == APR_NOTFOUND
               || iss_versions_find(store, "a.txt", dg("one"), &v, gp)
                  == APR_NOTFOUND, "an older version was dropped for it");
            is_int(iss_versions_find(store, "s2", d2, &v, gp), APR_SUCCESS,
                   "the newer large one stays");
        }
        is_int(iss_versions_find(store, "s3", dg("tiny"), &v, gp),
               APR_SUCCESS, "the new one stays");
        is_int((long long)u.disk_files, (long long)u.blobs,
               "data files match references");
    }
}

/* A version with a manifest: reads are checked chunk by chunk. */
static void test_chunks(void)
{
    iss_cdc_params_t params = ISS_CDC_PARAMS_DEFAULT;
    iss_versions_limits_t lim = { 0, 0, 0, 0 };
    apr_size_t n = 600 * 1024, i, got;
    unsigned char *buf = apr_palloc(gp, n), *back = apr_palloc(gp, n);
    unsigned char d[32];
    iss_manifest_t *m;
    apr_file_t *f;
    apr_finfo_t fi;
    iss_filedigest_t ident;
    apr_array_header_t *kvs;
    iss_version_t *v;
    iss_version_reader_t *rd;
    apr_uint32_t x = 12345;
    apr_status_t rv;
    int fd, okall = 1;

    for (i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
    put_bytes(path_of("big.bin"), buf, n);
    sha(buf, n, d);
    apr_file_open(&f, path_of("big.bin"), APR_FOPEN_READ,
                  APR_FPROT_OS_DEFAULT, gp);
    iss_manifest_of_file(f, &params, &m, gp);
    apr_file_close(f);
    apr_stat(&fi, path_of("big.bin"), APR_FINFO_IDENT | APR_FINFO_SIZE
             | APR_FINFO_MTIME, gp);
    iss_filedigest_set_identity(&ident, &fi);
    memcpy(ident.sha256, d, 32);
    memset(&ident.sums, 0, sizeof(ident.sums));
    {
        iss_store_batch_t *b = iss_store_batch_make(store, gp);

        iss_filedigest_stage(b, "big.bin", &ident, gp);
        iss_chunkidx_records("big.bin", &ident, m, &kvs, gp);
        {
            const iss_chunkidx_kv_t *kv = &APR_ARRAY_IDX(kvs, 0,
                                                         iss_chunkidx_kv_t);

            iss_store_batch_put(b, kv->key, strlen(kv->key), kv->val,
                                kv->vlen);
        }
        is_int(iss_store_batch_commit(b), APR_SUCCESS,
               "digest and manifest records of big.bin");
    }
    ok(m->count > 3, "big.bin has several chunks");
    is_int(write_with("big.bin", "small now", &lim, apr_time_from_sec(4000)),
           1, "big.bin replaced: retained");
    is_int(iss_versions_find(store, "big.bin", d, &v, gp), APR_SUCCESS,
           "found by its digest");
    ok(v->manifest != NULL && v->manifest->count == m->count,
       "with the manifest the store held");
    is_int(iss_versions_open(store, v, &rd, gp), APR_SUCCESS, "open");
    /* Reads at odd offsets and lengths, across chunk boundaries. */
    for (i = 0; i < n; i += 77777) {
        apr_size_t len = 50000 + i % 31337;

        rv = iss_versions_pread(rd, (apr_off_t)i, back, len, &got);
        if (rv != APR_SUCCESS || got != (i + len > n ? n - i : len)
            || memcmp(back, buf + i, got) != 0) {
            okall = 0;
        }
    }
    ok(okall, "pread at every offset gives the old bytes");
    rv = iss_versions_pread(rd, (apr_off_t)n, back, 10, &got);
    ok(rv == APR_SUCCESS && got == 0, "at the end: 0 bytes");
    iss_versions_close(rd);

    /* Damage one byte of the third chunk: reading it fails, the first
     * chunk still reads. */
    fd = open(apr_pstrcat(gp, sdir, "/versions/data/", iss_hex_id(d, gp),
                          NULL), O_WRONLY);
    ok(fd >= 0, "open the data file to damage it");
    if (fd >= 0) {
        unsigned char z = buf[m->entries[2].offset + 5] ^ 0xff;

        ok(pwrite(fd, &z, 1, (off_t)m->entries[2].offset + 5) == 1,
           "one byte changed");
        close(fd);
    }
    is_int(iss_versions_open(store, v, &rd, gp), APR_SUCCESS, "open");
    rv = iss_versions_pread(rd, 0, back, m->entries[0].length, &got);
    ok(rv == APR_SUCCESS && !memcmp(back, buf, got), "chunk 0 still reads");
    rv = iss_versions_pread(rd, (apr_off_t)m->entries[2].offset, back, 10,
                            &got);
    is_int(rv, APR_EGENERAL, "the damaged chunk: APR_EGENERAL, no bytes");
    iss_versions_close(rd);

    /* Without a manifest the whole digest is checked when opened. */
    {
        apr_status_t r2;
        const char *s = read_version("s3", dg("tiny"), &r2);

        ok(s && strcmp(s, "tiny") == 0, "a version without a manifest reads");
        fd = open(apr_pstrcat(gp, sdir, "/versions/data/",
                              iss_hex_id(dg("tiny"), gp), NULL), O_WRONLY);
        ok(fd >= 0 && pwrite(fd, "T", 1, 0) == 1, "damaged");
        if (fd >= 0) {
            close(fd);
        }
        s = read_version("s3", dg("tiny"), &r2);
        ok(s == NULL && r2 == APR_EGENERAL, "refused when opened");
    }
}

static void test_gc(void)
{
    iss_versions_gc_t st;
    iss_versions_usage_t u;
    const char *stray;
    apr_status_t rv;

    /* A pending link of a write that died (its intent is gone), one of a
     * write under way, a data file nobody references. */
    tput(path_of("g.txt"), "g0");
    is_int(write_with("g.txt", "g1", NULL, apr_time_from_sec(4020)), 1,
           "g.txt retained without limits");
    tput(apr_pstrcat(gp, sdir, "/versions/pending/dead.0", NULL), "d");
    tput(apr_pstrcat(gp, sdir, "/versions/pending/live.0", NULL), "l");
    intent("live", 1);
    stray = apr_pstrcat(gp, sdir, "/versions/data/", iss_hex_id(dg("stray"),
                                                                  gp), NULL);
    tput(stray, "stray");
    iss_versions_usage(store, &u, gp);
    is_int(iss_versions_gc(store, NULL, apr_time_from_sec(5000), &st, gp),
           APR_SUCCESS, "gc");
    is_int((long long)st.pending, 1, "the dead write's link removed");
    is_int((long long)st.blobs, 1, "the unreferenced data file removed");
    ok(access(apr_pstrcat(gp, sdir, "/versions/pending/live.0", NULL), F_OK)
       == 0, "the live write's link stays");
    ok(access(stray, F_OK) != 0, "stray gone");
    is_str(read_version("g.txt", dg("g0"), &rv), "g0",
           "referenced versions still read");
    intent("live", 0);
    /* A write under way whose intent is in a slot of the shared area
     * (ISSStateSync On): no intent/ record, its link stays all the same;
     * settled, its link goes. */
    {
        apr_array_header_t *ch = apr_array_make(gp, 1, sizeof(iss_change_t));
        iss_change_t *c = apr_array_push(ch);
        const char *id = NULL, *link;
        apr_uint64_t last = 0;
        void *v;
        apr_size_t vl;

        memset(c, 0, sizeof(*c));
        c->kind = ISS_CHANGE_MODIFIED;
        c->path = "slot.txt";
        /* The first lazy begin of a store goes through the log. */
        if (iss_sync_log_begin_at(store, "PUT", ch, ISS_STORE_LAZY, &id,
                                  &last, gp) == APR_SUCCESS)
            iss_sync_log_settle(store, id, "PUT", NULL, NULL, NULL, last,
                                NULL, gp);
        is_int(iss_sync_log_begin_at(store, "PUT", ch, ISS_STORE_LAZY, &id,
                                     &last, gp),
               APR_SUCCESS, "a lazy write begins");
        ok(iss_store_get(store, apr_pstrcat(gp, "intent/", id, NULL),
                         strlen(id) + 7, &v, &vl, gp) == APR_NOTFOUND,
           "... its intent is in a slot (no intent/ record)");
        link = apr_pstrcat(gp, sdir, "/versions/pending/", id, ".0", NULL);
        tput(link, "s");
        is_int(iss_versions_gc(store, NULL, apr_time_from_sec(5000), &st,
                               gp), APR_SUCCESS, "gc with it under way");
        ok(access(link, F_OK) == 0, "the slot write's link stays");
        is_int(iss_sync_log_settle(store, id, "PUT", NULL, NULL, NULL, last,
                                   NULL, gp), APR_SUCCESS, "it settles");
        is_int(iss_versions_gc(store, NULL, apr_time_from_sec(5000), &st,
                               gp), APR_SUCCESS, "gc again");
        ok(access(link, F_OK) != 0, "its link is gone");
    }
    /* Age over all files. */
    {
        iss_versions_limits_t lim = { 0, 0, apr_time_from_sec(60), 0 };
        iss_versions_usage_t after;

        is_int(iss_versions_gc(store, &lim, apr_time_from_sec(4030), &st, gp),
               APR_SUCCESS, "gc with age=60s at t=4030");
        iss_versions_usage(store, &after, gp);
        ok(st.pruned > 0 && after.versions == 2,
           "only the versions replaced at 4000 and 4020 are left");
        is_int((long long)after.disk_files, (long long)after.blobs,
               "and only its data");
    }
}

/* Bytes of a version read whole through the reader: 1 if they are
 * @a want. */
static int reads_as(const char *rel, const unsigned char *buf, apr_size_t n)
{
    unsigned char d[32];
    iss_version_t *v;
    iss_version_reader_t *rd;
    unsigned char *back = apr_palloc(gp, n + 1);
    apr_size_t got = 0, off = 0;
    apr_status_t rv;

    sha(buf, n, d);
    if (iss_versions_find(store, rel, d, &v, gp) != APR_SUCCESS
        || iss_versions_open(store, v, &rd, gp) != APR_SUCCESS) {
        return 0;
    }
    /* Odd pieces, so that reads cross chunk boundaries. */
    while (off < n + 1) {
        rv = iss_versions_pread(rd, (apr_off_t)off, back + off,
                                off + 70001 > n + 1 ? n + 1 - off : 70001,
                                &got);
        if (rv != APR_SUCCESS) {
            iss_versions_close(rd);
            return 0;
        }
        if (got == 0) {
            break;
        }
        off += got;
    }
    iss_versions_close(rd);
    return off == n && memcmp(back, buf, n) == 0;
}

/* The chunk store: two versions of a file that differ in 100 bytes share
 * all chunks but one or two; reads are checked per chunk file. */
static void test_pack(void)
{
    iss_versions_limits_t lim = { 0, 0, 0, 0 };
    apr_size_t n = 700 * 1024, i;
    unsigned char *v1 = apr_palloc(gp, n), *v2 = apr_palloc(gp, n);
    iss_versions_usage_t before, after;
    iss_versions_gc_t st;
    apr_uint32_t x = 777;
    unsigned char d2[32];
    iss_version_t *v;
    apr_array_header_t *vs;

    for (i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        v1[i] = (unsigned char)(x >> 16);
    }
    memcpy(v2, v1, n);
    memset(v2 + 350000, 'E', 100);
    put_bytes(path_of("p.bin"), v1, n);
    {
        /* v1 replaced by v2, v2 by a small file: two large versions. */
        const char *tmp = apr_pstrcat(gp, path_of("p.bin"), ".tmp", NULL);
        iss_versions_hold_t *h;
        int retained;

        intent("p1", 1);
        iss_versions_hold(store, path_of("p.bin"), "p.bin", "p1", 0, &h, gp);
        put_bytes(tmp, v2, n);
        rename(tmp, path_of("p.bin"));
        iss_versions_settle(store, h, &lim, NULL, apr_time_from_sec(6000),
                            &retained, gp);
        is_int(retained, 1, "700 KB v1 retained");
        intent("p1", 0);
    }
    is_int(write_with("p.bin", "small", &lim, apr_time_from_sec(6001)), 1,
           "700 KB v2 retained");
    iss_versions_usage(store, &before, gp);
    is_int(iss_versions_gc(store, NULL, apr_time_from_sec(6002), &st, gp),
           APR_SUCCESS, "gc packs");
    ok(st.packed >= 2, "both large contents packed (%d)", (int)st.packed);
    iss_versions_usage(store, &after, gp);
    is_int((long long)after.disk_files, (long long)before.disk_files
                                        - (long long)st.packed,
           "their data files are gone");
    ok(after.chunk_bytes < n + n / 2,
       "the chunk store holds %llu bytes for 2 x %lu (shared chunks "
       "once)", (unsigned long long)after.chunk_bytes, (unsigned long)n);
    ok(reads_as("p.bin", v1, n), "v1 reads back from chunks");
    ok(reads_as("p.bin", v2, n), "v2 reads back from chunks");
    /* The same content retained again after packing: no data file. */
    put_bytes(path_of("p.bin"), v2, n);
    is_int(write_with("p.bin", "small2", &lim, apr_time_from_sec(6003)), 1,
           "v2's content retained again");
    iss_versions_usage(store, &before, gp);
    is_int((long long)before.disk_files, (long long)after.disk_files,
           "... without a data file (it is packed)");
    ok(reads_as("p.bin", v2, n), "... and reads");
    /* A damaged chunk file: both versions' reads fail there, never give
     * wrong bytes. */
    {
        iss_manifest_t *m;
        const char *cp;
        int fd;

        sha(v1, n, d2);
        iss_versions_find(store, "p.bin", d2, &v, gp);
        m = (iss_manifest_t *)v->manifest;
        ok(m != NULL && m->count > 3, "a packed version has its manifest");
        cp = apr_pstrcat(gp, sdir, "/versions/chunks/",
                         iss_hex_id(m->entries[0].sha256, gp), NULL);
        fd = open(cp, O_WRONLY);
        ok(fd >= 0 && pwrite(fd, "X", 1, 10) == 1, "chunk 0 damaged");
        if (fd >= 0) {
            close(fd);
        }
        ok(!reads_as("p.bin", v1, n) && !reads_as("p.bin", v2, n),
           "reads of both versions fail");
        /* Repair it: write the right bytes back. */
        fd = open(cp, O_WRONLY);
        ok(fd >= 0 && pwrite(fd, v1 + 10, 1, 10) == 1, "repaired");
        if (fd >= 0) {
            close(fd);
        }
        ok(reads_as("p.bin", v1, n), "reads again");
    }
    /* Dropping v1: its own chunk goes, the shared ones stay. */
    lim.max_count = 2;
    write_with("p.bin", "small3", &lim, apr_time_from_sec(6004));
    iss_versions_list(store, "p.bin", &vs, gp);
    is_int(vs->nelts, 2, "count=2");
    iss_versions_usage(store, &after, gp);
    ok(reads_as("p.bin", v2, n) && !reads_as("p.bin", v1, n),
       "v1 gone, v2 intact");
    ok(after.chunk_files < before.chunk_files && after.chunk_files > 0,
       "v1's own chunks collected, the shared ones kept: chunk files %llu "
       "-> %llu", (unsigned long long)before.chunk_files,
       (unsigned long long)after.chunk_files);
    lim.max_count = 1;
    write_with("p.bin", "small4", &lim, apr_time_from_sec(6005));
    is_int(iss_versions_gc(store, NULL, apr_time_from_sec(6006), &st, gp),
           APR_SUCCESS, "gc");
    iss_versions_usage(store, &after, gp);
    is_int((long long)after.chunk_files, 0,
           "no version of p.bin is packed any more: no chunk file left");
}

/* A file on another file system than the store (/dev/shm, a tmpfs, in
 * these containers): the hold is a copy, and the version reads back. */
static void test_other_fs(void)
{
    char dir[] = "/dev/shm/iss-versions-test-XXXXXX";
    iss_versions_limits_t lim = { 0, 0, 0, 0 };
    iss_versions_hold_t *h;
    apr_finfo_t a, b;
    const char *f, *tmp;
    apr_status_t rv;
    int retained = -1;

    if (mkdtemp(dir) == NULL) {
        ok(0, "mkdtemp in /dev/shm");
        return;
    }
    f = apr_pstrcat(gp, dir, "/o.txt", NULL);
    tmp = apr_pstrcat(gp, dir, "/o.tmp", NULL);
    tput(f, "other fs old");
    apr_stat(&a, f, APR_FINFO_IDENT, gp);
    apr_stat(&b, sdir, APR_FINFO_IDENT, gp);
    diag("file system of the file %s the store's",
         a.device == b.device ? "is" : "is not");
    intent("ofs", 1);
    is_int(iss_versions_hold(store, f, "o.txt", "ofs", 0, &h, gp),
           APR_SUCCESS, "hold across file systems");
    tput(tmp, "other fs new");
    rename(tmp, f);
    is_int(iss_versions_settle(store, h, &lim, NULL, apr_time_from_sec(7000),
                               &retained, gp), APR_SUCCESS, "settle");
    is_int(retained, 1, "retained");
    intent("ofs", 0);
    is_str(read_version("o.txt", dg("other fs old"), &rv), "other fs old",
           "the copy reads back");
    is_int(nfiles("pending"), 0, "no pending copy left");
    testfs_rm_rf(dir, gp);
}

/* An erasure: every version of a path and its data go, the versions of
 * other paths stay. */
static void test_forget(void)
{
    iss_versions_limits_t lim = { 0, 0, 0, 0 };
    iss_versions_usage_t before, after;
    apr_array_header_t *vs;
    apr_uint64_t dropped = 0;
    apr_status_t rv;

    tput(path_of("f.txt"), "forget me 1");
    write_with("f.txt", "forget me 2", &lim, apr_time_from_sec(8000));
    write_with("f.txt", "forget me 3", &lim, apr_time_from_sec(8001));
    iss_versions_usage(store, &before, gp);
    is_int(iss_versions_forget(store, "f.txt", &dropped, gp), APR_SUCCESS,
           "forget f.txt");
    is_int((long long)dropped, 2, "two versions dropped");
    iss_versions_list(store, "f.txt", &vs, gp);
    is_int(vs->nelts, 0, "none listed");
    iss_versions_usage(store, &after, gp);
    is_int((long long)after.disk_files, (long long)before.disk_files - 2,
           "their data files are gone at once");
    ok(access(apr_pstrcat(gp, sdir, "/versions/data/",
                          iss_hex_id(dg("forget me 1"), gp), NULL), F_OK) != 0,
       "no file holds the old bytes");
    is_str(read_version("g.txt", dg("g0"), &rv), "g0",
           "another file's version stays");
}

/* Content number @a c of the concurrent test: 200 KB (several chunks,
 * so that collections pack them), sharing most chunks with the others. */
static const char *big_content(int c, apr_pool_t *p)
{
    apr_size_t n = 200 * 1024, i;
    char *buf = apr_palloc(p, n + 1);
    apr_uint32_t x = 4242;

    for (i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (char)('a' + (x >> 16) % 26);
    }
    memcpy(buf + 90000, apr_psprintf(p, "<<content %d>>", c), 14);
    buf[n] = '\0';
    return buf;
}

/* Writers in child processes retain versions while the parent collects:
 * every version listed afterwards reads back with its digest. */
static void test_concurrent(void)
{
    iss_versions_limits_t lim = { 3, 0, 0, 0 };
    apr_array_header_t *vs;
    pid_t kids[3];
    int k, i, bad = 0, total = 0, status;

    for (k = 0; k < 3; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            apr_pool_t *p;
            iss_store_t *s;
            const char *rel = apr_psprintf(gp, "w%d", k);

            apr_pool_create(&p, NULL);
            if (iss_store_open(&s, sdir, NULL, NULL, NULL, NULL, p)
                != APR_SUCCESS) {
                _exit(2);
            }
            store = s;
            gp = p;
            tput(path_of(rel), "start");
            for (i = 0; i < 40; i++) {
                /* Shared contents across writers: dedup races too. */
                if (write_with(rel, big_content((i * 7 + k) % 9, p),
                               &lim, apr_time_now()) < 0) {
                    _exit(1);
                }
            }
            _exit(0);
        }
    }
    for (i = 0; i < 30; i++) {
        iss_versions_gc_t st;

        if (iss_versions_gc(store, NULL, apr_time_now(), &st, gp)
            != APR_SUCCESS) {
            bad++;
        }
    }
    for (k = 0; k < 3; k++) {
        waitpid(kids[k], &status, 0);
        ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "writer %d finished", k);
    }
    for (k = 0; k < 3; k++) {
        const char *rel = apr_psprintf(gp, "w%d", k);

        iss_versions_list(store, rel, &vs, gp);
        for (i = 0; i < vs->nelts; i++) {
            iss_version_t *v = APR_ARRAY_IDX(vs, i, iss_version_t *);
            apr_status_t rv;
            const char *s = read_version(rel, v->digest, &rv);
            unsigned char d[32];

            total++;
            if (s == NULL) {
                bad++;
                continue;
            }
            sha(s, strlen(s), d);
            if (memcmp(d, v->digest, 32) != 0) {
                bad++;
            }
        }
    }
    is_int(bad, 0, "%d retained versions read back with their digests "
           "after 30 collections (and packings) during 120 writes", total);
    {
        iss_versions_gc_t st;
        iss_versions_usage_t u;

        iss_versions_gc(store, NULL, apr_time_now(), &st, gp);
        iss_versions_usage(store, &u, gp);
        is_int((long long)(u.disk_files + u.packed), (long long)u.blobs,
               "every content is a data file or packed, once");
        ok(u.packed > 0 && u.pending == 0, "%llu packed, none pending",
           (unsigned long long)u.packed);
    }
    ok(total >= 9, "versions retained (3 per writer)");
}

/* ---- chunks used in place in live files (issue 15 item 1) ------------- */

/* The digest and m/ records of the file @a rel as it is now, as the
 * capture point writes them for a write through httpd. */
static void index_file(iss_store_t *st, const char *rel, apr_pool_t *p)
{
    iss_cdc_params_t params = ISS_CDC_PARAMS_DEFAULT;
    iss_store_batch_t *b = iss_store_batch_make(st, p);
    iss_filedigest_t ident;
    iss_manifest_t *m;
    apr_array_header_t *kvs;
    apr_file_t *f;
    apr_finfo_t fi;
    int i;

    if (apr_file_open(&f, path_of(rel), APR_FOPEN_READ, APR_FPROT_OS_DEFAULT,
                      p) != APR_SUCCESS) {
        diag("index %s: cannot open", rel);
        return;
    }
    if (iss_manifest_of_file(f, &params, &m, p) != APR_SUCCESS) {
        diag("index %s: no manifest", rel);
    }
    apr_file_close(f);
    apr_stat(&fi, path_of(rel), APR_FINFO_IDENT | APR_FINFO_SIZE
             | APR_FINFO_MTIME, p);
    iss_filedigest_set_identity(&ident, &fi);
    memcpy(ident.sha256, m->file_sha256, 32);
    memset(&ident.sums, 0, sizeof(ident.sums));
    iss_filedigest_stage(b, rel, &ident, p);
    iss_chunkidx_records(rel, &ident, m, &kvs, p);
    for (i = 0; i < kvs->nelts; i++) {
        const iss_chunkidx_kv_t *kv = &APR_ARRAY_IDX(kvs, i,
                                                     iss_chunkidx_kv_t);

        iss_store_batch_put(b, kv->key, strlen(kv->key), kv->val, kv->vlen);
    }
    if (iss_store_batch_commit(b) != APR_SUCCESS) {
        diag("index %s: commit failed", rel);
    }
}

/* A write through httpd with versions on: hold, a new inode renamed over
 * the file (or the file removed), its records, settle, and the work
 * after the response.  *retained, or -1. */
static int write_live(const char *rel, const void *buf, apr_size_t n,
                      const iss_versions_limits_t *lim, apr_time_t now)
{
    iss_versions_hold_t *h;
    const char *tag = apr_psprintf(gp, "l%ld-%d", (long)getpid(), ++ntag);
    int retained = -1;
    apr_status_t rv;

    intent(tag, 1);
    rv = iss_versions_hold(store, path_of(rel), rel, tag, 0, &h, gp);
    if (rv != APR_SUCCESS) {
        diag("hold %s: %d", rel, rv);
        intent(tag, 0);
        return -1;
    }
    if (buf) {
        const char *tmp = apr_pstrcat(gp, path_of(rel), ".tmp", NULL);

        put_bytes(tmp, buf, n);
        rename(tmp, path_of(rel));
        index_file(store, rel, gp);
    }
    else {
        unlink(path_of(rel));
    }
    rv = iss_versions_settle(store, h, lim, NULL, now, &retained, gp);
    if (rv != APR_SUCCESS) {
        diag("settle %s: %d", rel, rv);
        retained = -1;
    }
    intent(tag, 0);
    if ((rv = iss_versions_after(store, h, lim, NULL, gp)) != APR_SUCCESS) {
        diag("after %s: %d", rel, rv);
        retained = -1;
    }
    return retained;
}

/* Bytes that share no chunk with those of another @a seed: the increment
 * differs (the same one would give the same cycle, shifted: shared
 * chunks). */
static unsigned char *random_bytes(apr_size_t n, apr_uint32_t seed)
{
    unsigned char *b = apr_palloc(gp, n);
    apr_uint32_t x = seed, inc = 12345u + 2u * seed;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        x = x * 1103515245u + inc;
        b[i] = (unsigned char)(x >> 16);
    }
    return b;
}

static unsigned char *edited(const unsigned char *from, apr_size_t n,
                             apr_size_t at, int c)
{
    unsigned char *b = apr_pmemdup(gp, from, n);

    memset(b + at, c, 100);
    return b;
}

/* Read @a off..+len of the version of @a rel with content @a want: the
 * status. */
static apr_status_t read_part(const char *rel, const unsigned char *want,
                              apr_size_t n, apr_size_t off, apr_size_t len)
{
    unsigned char d[32];
    iss_version_t *v;
    iss_version_reader_t *rd;
    unsigned char *back = apr_palloc(gp, len);
    apr_size_t got;
    apr_status_t rv;

    sha(want, n, d);
    if ((rv = iss_versions_find(store, rel, d, &v, gp)) != APR_SUCCESS
        || (rv = iss_versions_open(store, v, &rd, gp)) != APR_SUCCESS) {
        return rv;
    }
    rv = iss_versions_pread(rd, (apr_off_t)off, back, len, &got);
    iss_versions_close(rd);
    if (rv == APR_SUCCESS && (got != len || memcmp(back, want + off, len))) {
        return APR_EINVAL;           /* wrong bytes: never acceptable */
    }
    return rv;
}

static void test_live(void)
{
    iss_versions_limits_t lim = { 0, 0, 0, ISS_VERSIONS_DEFAULT_PACK };
    apr_size_t n = 4 * 1024 * 1024;
    unsigned char *a = random_bytes(n, 99), *b, *c;
    iss_versions_usage_t u0, u1, u2;
    iss_versions_gc_t st;
    apr_uint64_t two = 2 * ISS_CDC_MAX_DEFAULT;

    iss_versions_gc(store, NULL, apr_time_from_sec(8000), &st, gp);
    iss_versions_usage(store, &u0, gp);
    put_bytes(path_of("live.bin"), a, n);
    index_file(store, "live.bin", gp);
    b = edited(a, n, 2 * 1024 * 1024 + 7, 'B');
    is_int(write_live("live.bin", b, n, &lim, apr_time_from_sec(8001)), 1,
           "a 100-byte edit of a 4 MiB file: the old content retained");
    iss_versions_usage(store, &u1, gp);
    ok(u1.packed == u0.packed + 1 && u1.disk_files == u0.disk_files,
       "packed right after the write: no data file left (%llu)",
       (unsigned long long)(u1.disk_files - u0.disk_files));
    ok(u1.chunk_bytes - u0.chunk_bytes <= two
       && u1.chunk_bytes > u0.chunk_bytes,
       "the version costs %llu bytes of chunk store (at most two chunks "
       "of %llu): the rest is used in place in the live file",
       (unsigned long long)(u1.chunk_bytes - u0.chunk_bytes),
       (unsigned long long)ISS_CDC_MAX_DEFAULT);
    ok(u1.live_files == u0.live_files + 1 && u1.live_orphans == 0
       && u1.live_bytes >= n - two,
       "one live file linked, holding %llu bytes for the version",
       (unsigned long long)u1.live_bytes);
    ok(reads_as("live.bin", a, n), "the version reads back byte-exact");

    /* Replaced again: the old live inode goes, its chunks move to the new
     * file (in place again) or into the chunk store. */
    c = edited(b, n, 1024 * 1024 + 3, 'C');
    is_int(write_live("live.bin", c, n, &lim, apr_time_from_sec(8002)), 1,
           "a second 100-byte edit: retained");
    iss_versions_usage(store, &u2, gp);
    ok(u2.chunk_bytes - u0.chunk_bytes <= 2 * two,
       "two versions cost %llu bytes of chunk store",
       (unsigned long long)(u2.chunk_bytes - u0.chunk_bytes));
    ok(u2.live_files == u0.live_files + 1 && u2.live_orphans == 0,
       "the replaced inode's link is gone, the new file's is there");
    ok(reads_as("live.bin", a, n) && reads_as("live.bin", b, n),
       "both versions read back byte-exact");

    /* A MOVE: the inode lives on under another name. */
    ok(rename(path_of("live.bin"), path_of("moved.bin")) == 0,
       "live file moved");
    is_int(iss_versions_gc(store, NULL, apr_time_from_sec(8003), &st, gp),
           APR_SUCCESS, "gc after the move");
    is_int((long long)st.unlinked, 0, "... keeps the link (still a file)");
    ok(reads_as("live.bin", a, n) && reads_as("live.bin", b, n),
       "both versions read after the move");
    /* Removed behind the capture point's back: only our link holds it;
     * a collection moves the chunks into the chunk store. */
    ok(unlink(path_of("moved.bin")) == 0, "moved file deleted");
    ok(reads_as("live.bin", a, n) && reads_as("live.bin", b, n),
       "both versions read while only the link holds the inode");
    is_int(iss_versions_gc(store, NULL, apr_time_from_sec(8004), &st, gp),
           APR_SUCCESS, "gc after the delete");
    is_int((long long)st.unlinked, 1, "... released the live link");
    iss_versions_usage(store, &u2, gp);
    ok(u2.live_files == u0.live_files && u2.live_chunks == u0.live_chunks,
       "no live link or chunk used in place left");
    ok(u2.chunk_bytes - u0.chunk_bytes >= n
       && u2.chunk_bytes - u0.chunk_bytes <= n + 2 * two,
       "the chunk store holds the versions once (%llu bytes)",
       (unsigned long long)(u2.chunk_bytes - u0.chunk_bytes));
    ok(reads_as("live.bin", a, n) && reads_as("live.bin", b, n),
       "both versions read from the chunk store");
    iss_versions_forget(store, "live.bin", NULL, gp);
    iss_versions_gc(store, NULL, apr_time_from_sec(8005), &st, gp);

    /* DELETE through httpd (held): the chunks the version used in the
     * deleted file are copied out right after. */
    put_bytes(path_of("d.bin"), a, n);
    index_file(store, "d.bin", gp);
    write_live("d.bin", b, n, &lim, apr_time_from_sec(8010));
    is_int(write_live("d.bin", NULL, 0, &lim, apr_time_from_sec(8011)), 1,
           "d.bin deleted: its last content retained");
    iss_versions_usage(store, &u1, gp);
    ok(u1.live_files == u0.live_files && u1.live_orphans == 0,
       "the deleted file's link went after the DELETE");
    ok(reads_as("d.bin", a, n) && reads_as("d.bin", b, n),
       "both versions of the deleted file read back");

    /* Prune by count and forget: the chunks a dropped version used in a
     * live file are released; the live link goes with the last one. */
    {
        iss_versions_limits_t one = { 1, 0, 0, ISS_VERSIONS_DEFAULT_PACK };
        unsigned char *q2 = edited(a, n, 500000, 'Q');
        unsigned char *q3 = edited(q2, n, 3000000, 'R');

        put_bytes(path_of("q.bin"), a, n);
        index_file(store, "q.bin", gp);
        write_live("q.bin", q2, n, &lim, apr_time_from_sec(8020));
        write_live("q.bin", q3, n, &one, apr_time_from_sec(8021));
        iss_versions_usage(store, &u1, gp);
        ok(!reads_as("q.bin", a, n) && reads_as("q.bin", q2, n),
           "count=1: the oldest dropped, the newest reads back");
        ok(u1.live_files == u0.live_files + 1,
           "the live file still serves the kept version");
        is_int(iss_versions_forget(store, "q.bin", NULL, gp), APR_SUCCESS,
               "forget-versions q.bin");
        iss_versions_usage(store, &u2, gp);
        ok(u2.live_files == u0.live_files && u2.live_chunks == u0.live_chunks,
           "forgotten: the live link and its chunk records are gone");
        ok(access(path_of("q.bin"), F_OK) == 0, "the live file itself stays");
        unlink(path_of("q.bin"));
    }

    /* Changed behind httpd's back (written in place): reads of the chunks
     * it held fail cleanly, the rest reads; a collection after its
     * removal counts them lost and moves the others. */
    {
        unsigned char *r1 = random_bytes(n, 31), *r2 = edited(r1, n,
                                                              3500000, 'S');
        int fd;

        a = r1;                      /* chunks no other version holds */
        put_bytes(path_of("r.bin"), a, n);
        index_file(store, "r.bin", gp);
        write_live("r.bin", r2, n, &lim, apr_time_from_sec(8030));
        ok(reads_as("r.bin", a, n), "r.bin's version reads");
        fd = open(path_of("r.bin"), O_WRONLY);
        ok(fd >= 0 && pwrite(fd, "Z", 1, 10) == 1,
           "the live file written in place (outside httpd)");
        if (fd >= 0) {
            close(fd);
        }
        is_int(read_part("r.bin", a, n, 0, 100), APR_EGENERAL,
               "reading its first chunk: APR_EGENERAL, no bytes");
        is_int(read_part("r.bin", a, n, n - 100, 100), APR_SUCCESS,
               "its last chunk reads");
        unlink(path_of("r.bin"));
        is_int(iss_versions_gc(store, NULL, apr_time_from_sec(8031), &st,
                               gp), APR_SUCCESS, "gc after its removal");
        ok(st.lost >= 1 && st.unlinked == 1, "one chunk lost (%llu), the "
           "link released", (unsigned long long)st.lost);
        is_int(read_part("r.bin", a, n, 0, 100), APR_EGENERAL,
               "the lost chunk still fails cleanly");
        is_int(read_part("r.bin", a, n, n / 2, 100), APR_SUCCESS,
               "the others read from the chunk store");
        iss_versions_forget(store, "r.bin", NULL, gp);
    }
    /* ISSKeepVersions pack=: over the bound, left to the collection. */
    {
        iss_versions_limits_t tiny = { 0, 0, 0, 1024 };
        unsigned char *t2 = random_bytes(n, 7);

        a = random_bytes(n, 8);
        put_bytes(path_of("t.bin"), a, n);
        index_file(store, "t.bin", gp);
        iss_versions_usage(store, &u1, gp);
        write_live("t.bin", t2, n, &tiny, apr_time_from_sec(8040));
        iss_versions_usage(store, &u2, gp);
        ok(u2.disk_files == u1.disk_files + 1 && u2.packed == u1.packed,
           "pack=1K: unrelated content not packed after the write");
        iss_versions_gc(store, NULL, apr_time_from_sec(8041), &st, gp);
        ok(st.packed >= 1 && reads_as("t.bin", a, n),
           "the collection packs it; it reads");
        iss_versions_forget(store, "t.bin", NULL, gp);
        unlink(path_of("t.bin"));
    }
    /* A small edit left to the collection (pack=1K): it packs it with
     * the live file's chunks too (the folder recorded by earlier packing). */
    {
        iss_versions_limits_t tiny = { 0, 0, 0, 1024 };
        unsigned char *w1 = random_bytes(n, 11), *w2 = edited(w1, n, 123456,
                                                              'U');
        iss_versions_usage_t ua, ub;

        put_bytes(path_of("u.bin"), w1, n);
        index_file(store, "u.bin", gp);
        write_live("u.bin", w2, n, &tiny, apr_time_from_sec(8045));
        iss_versions_usage(store, &ua, gp);
        iss_versions_gc(store, NULL, apr_time_from_sec(8046), &st, gp);
        iss_versions_usage(store, &ub, gp);
        ok(st.packed == 1 && ub.disk_files == ua.disk_files - 1
           && ub.chunk_bytes - ua.chunk_bytes <= two
           && ub.live_chunks > ua.live_chunks,
           "gc-versions packs a version left to it with the live file's "
           "chunks: %llu bytes copied", (unsigned long long)(ub.chunk_bytes
                                                           - ua.chunk_bytes));
        ok(reads_as("u.bin", w1, n), "it reads back");
        iss_versions_forget(store, "u.bin", NULL, gp);
        unlink(path_of("u.bin"));
    }
    /* Temporary links a killed process left in versions/live/ go at once
     * (they would keep a gone file's link count above one); one of a
     * process still running stays. */
    {
        const char *dead = apr_pstrcat(gp, sdir, "/versions/live/"
                                       ".tmp.live.999999999.0x1", NULL);
        const char *mine = apr_psprintf(gp, "%s/versions/live/.tmp.live."
                                        "%ld.0x1", sdir, (long)getpid());
        const char *gone = apr_pstrcat(gp, sdir, "/versions/live/"
                                       "1-2-3-4.gone", NULL);

        tput(path_of("s.bin"), "s");
        ok(link(path_of("s.bin"), dead) == 0 && link(path_of("s.bin"), mine)
           == 0 && link(path_of("s.bin"), gone) == 0,
           "three leftover links in versions/live/");
        iss_versions_gc(store, NULL, apr_time_from_sec(8050), &st, gp);
        ok(access(dead, F_OK) != 0 && access(gone, F_OK) != 0,
           "gc-versions removed the dead process's and the .gone link");
        ok(access(mine, F_OK) == 0, "a running process's link stays");
        unlink(mine);
        unlink(path_of("s.bin"));
    }
    iss_versions_gc(store, NULL, apr_time_from_sec(8050), &st, gp);
}

/* Writers with live chunks in child processes, a collector beside them:
 * every version listed afterwards reads back with its digest. */
/* Chunks another live file holds (not the one at the version's path),
 * found through the chunk index's c/ hints: used in place through that
 * file's link; moved out when that file goes, whatever path the write
 * that replaces or removes it names. */
static void test_live_other(void)
{
    iss_versions_limits_t lim = { 0, 0, 0, ISS_VERSIONS_DEFAULT_PACK };
    apr_size_t n = 4 * 1024 * 1024;
    unsigned char *a = random_bytes(n, 61), *b = edited(a, n, 1500000, 'E');
    unsigned char *r = random_bytes(n, 62), *r2 = random_bytes(n, 63);
    iss_versions_usage_t u0, u1, u2;
    iss_versions_gc_t st;
    apr_uint64_t two = 2 * ISS_CDC_MAX_DEFAULT;

    apr_uint64_t damaged0;

    iss_versions_gc(store, NULL, apr_time_from_sec(9000), &st, gp);
    damaged0 = st.damaged;           /* earlier tests' damaged data */
    iss_versions_usage(store, &u0, gp);
    /* B is a copy of A plus an edit; A is then replaced by unrelated
     * bytes: the file at A's path holds none of the old chunks. */
    put_bytes(path_of("oa.bin"), a, n);
    index_file(store, "oa.bin", gp);
    put_bytes(path_of("ob.bin"), b, n);
    index_file(store, "ob.bin", gp);
    is_int(write_live("oa.bin", r, n, &lim, apr_time_from_sec(9001)), 1,
           "A overwritten by unrelated bytes: its old content retained");
    iss_versions_usage(store, &u1, gp);
    ok(u1.chunk_bytes - u0.chunk_bytes <= two
       && u1.chunk_bytes > u0.chunk_bytes,
       "the version costs %llu bytes of chunk store (at most two chunks): "
       "the rest is used in place in B, another live file",
       (unsigned long long)(u1.chunk_bytes - u0.chunk_bytes));
    ok(u1.live_files == u0.live_files + 1 && u1.live_orphans == 0
       && u1.live_bytes >= n - two,
       "B's inode linked, holding %llu bytes for A's version",
       (unsigned long long)u1.live_bytes);
    ok(reads_as("oa.bin", a, n), "A's version reads back byte-exact");

    /* A MOVE of B: the inode lives on, the link stays. */
    ok(rename(path_of("ob.bin"), path_of("oc.bin")) == 0, "B moved to C");
    is_int(iss_versions_gc(store, NULL, apr_time_from_sec(9002), &st, gp),
           APR_SUCCESS, "gc after the move");
    is_int((long long)st.unlinked, 0, "... keeps B's link (still a file)");
    ok(reads_as("oa.bin", a, n), "A's version reads after B's move");

    /* C (B's inode) overwritten through the capture point: the move-out
     * is keyed by the inode, not by A's path. */
    is_int(write_live("oc.bin", r2, n, &lim, apr_time_from_sec(9003)), 1,
           "C overwritten: B's content retained as C's version");
    iss_versions_usage(store, &u2, gp);
    ok(u2.live_files == u0.live_files && u2.live_orphans == 0
       && u2.live_chunks == u0.live_chunks,
       "right after the write no link of B's inode and no chunk used in "
       "place in it are left");
    ok(u2.chunk_bytes - u0.chunk_bytes >= n
       && u2.chunk_bytes - u0.chunk_bytes <= n + 2 * two,
       "the chunks moved into the chunk store once (%llu bytes)",
       (unsigned long long)(u2.chunk_bytes - u0.chunk_bytes));
    ok(reads_as("oa.bin", a, n) && reads_as("oc.bin", b, n),
       "A's version and C's version read back byte-exact");
    is_int(iss_versions_gc(store, NULL, apr_time_from_sec(9004), &st, gp),
           APR_SUCCESS, "gc-versions");
    ok(st.unlinked == 0 && st.lost == 0 && st.damaged == damaged0,
       "... finds nothing stale (%llu %llu %llu)",
       (unsigned long long)st.unlinked, (unsigned long long)st.lost,
       (unsigned long long)st.damaged);
    iss_versions_forget(store, "oa.bin", NULL, gp);
    iss_versions_forget(store, "oc.bin", NULL, gp);
    unlink(path_of("oa.bin"));
    unlink(path_of("oc.bin"));

    /* A DELETE of the other file through the capture point, and the
     * other file changed in place outside httpd. */
    a = random_bytes(n, 64);
    b = edited(a, n, 2500000, 'F');
    put_bytes(path_of("pa.bin"), a, n);
    index_file(store, "pa.bin", gp);
    put_bytes(path_of("pb.bin"), b, n);
    index_file(store, "pb.bin", gp);
    write_live("pa.bin", r, n, &lim, apr_time_from_sec(9010));
    iss_versions_usage(store, &u1, gp);
    ok(u1.live_files == u0.live_files + 1, "A's version uses B in place");
    {
        int fd = open(path_of("pb.bin"), O_WRONLY);

        ok(fd >= 0 && pwrite(fd, "Z", 1, 10) == 1,
           "B written in place (outside httpd)");
        if (fd >= 0) {
            close(fd);
        }
    }
    is_int(read_part("pa.bin", a, n, 0, 100), APR_EGENERAL,
           "A's version where B changed: APR_EGENERAL, no bytes");
    is_int(read_part("pa.bin", a, n, n - 100, 100), APR_SUCCESS,
           "A's version elsewhere reads");
    /* The write in place changed B's identity (its mtime): the delete's
     * step finds no link under that identity; the collection sees the
     * link's count at 1 and moves the chunks out, the changed one lost. */
    is_int(write_live("pb.bin", NULL, 0, &lim, apr_time_from_sec(9011)), 1,
           "B deleted through the capture point");
    is_int(read_part("pa.bin", a, n, n / 2, 100), APR_SUCCESS,
           "A's version reads while only our link holds B's inode");
    is_int(iss_versions_gc(store, NULL, apr_time_from_sec(9012), &st, gp),
           APR_SUCCESS, "gc-versions");
    ok(st.unlinked == 1 && st.lost >= 1, "... released B's link, %llu "
       "chunk(s) counted lost", (unsigned long long)st.lost);
    iss_versions_usage(store, &u2, gp);
    ok(u2.live_files == u0.live_files && u2.live_orphans == 0,
       "no live link left");
    is_int(read_part("pa.bin", a, n, 0, 100), APR_EGENERAL,
           "the changed chunk still fails cleanly");
    is_int(read_part("pa.bin", a, n, n / 2, 100), APR_SUCCESS,
           "the others read from the chunk store");
    iss_versions_forget(store, "pa.bin", NULL, gp);
    iss_versions_forget(store, "pb.bin", NULL, gp);
    unlink(path_of("pa.bin"));
    iss_versions_gc(store, NULL, apr_time_from_sec(9013), &st, gp);
    iss_versions_usage(store, &u2, gp);
    ok(u2.live_files == u0.live_files && u2.live_chunks == u0.live_chunks
       && u2.chunk_bytes == u0.chunk_bytes,
       "all forgotten: the chunk store is back where it was");
}

static void test_live_concurrent(void)
{
    iss_versions_limits_t lim = { 3, 0, 0, ISS_VERSIONS_DEFAULT_PACK };
    apr_size_t n = 1024 * 1024;
    pid_t kids[3];
    int k, i, bad = 0, total = 0, status;

    for (k = 0; k < 3; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            apr_pool_t *p;
            iss_store_t *s;
            const char *rel = apr_psprintf(gp, "lw%d", k);
            unsigned char *cur;

            apr_pool_create(&p, NULL);
            if (iss_store_open(&s, sdir, NULL, NULL, NULL, NULL, p)
                != APR_SUCCESS) {
                _exit(2);
            }
            store = s;
            gp = p;
            cur = random_bytes(n, 5);      /* the same start: shared */
            put_bytes(path_of(rel), cur, n);
            index_file(store, rel, gp);
            for (i = 0; i < 25; i++) {
                apr_pool_t *it;

                apr_pool_create(&it, p);
                gp = it;
                cur = edited(cur, n, (apr_size_t)((i * 131071 + k * 7919)
                                                  % (n - 100)),
                             'a' + (i + k) % 26);
                if (write_live(rel, cur, n, &lim, apr_time_now()) < 0) {
                    _exit(1);
                }
                cur = apr_pmemdup(p, cur, n);
                apr_pool_destroy(it);
                gp = p;
            }
            _exit(0);
        }
    }
    for (i = 0; i < 30; i++) {
        iss_versions_gc_t st;

        if (iss_versions_gc(store, NULL, apr_time_now(), &st, gp)
            != APR_SUCCESS) {
            bad++;
        }
    }
    for (k = 0; k < 3; k++) {
        waitpid(kids[k], &status, 0);
        ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "live writer %d finished", k);
    }
    for (k = 0; k < 3; k++) {
        const char *rel = apr_psprintf(gp, "lw%d", k);
        apr_array_header_t *vs;

        iss_versions_list(store, rel, &vs, gp);
        for (i = 0; i < vs->nelts; i++) {
            iss_version_t *v = APR_ARRAY_IDX(vs, i, iss_version_t *);
            iss_version_reader_t *rd;
            unsigned char *buf = apr_palloc(gp, (apr_size_t)v->size);
            unsigned char d[32];
            apr_size_t got;

            total++;
            if (iss_versions_open(store, v, &rd, gp) != APR_SUCCESS
                || iss_versions_pread(rd, 0, buf, (apr_size_t)v->size, &got)
                   != APR_SUCCESS || got != (apr_size_t)v->size) {
                bad++;
                continue;
            }
            iss_versions_close(rd);
            sha(buf, got, d);
            if (memcmp(d, v->digest, 32) != 0) {
                bad++;
            }
        }
        /* Then the live files go: the chunks move, nothing is lost. */
        unlink(path_of(rel));
    }
    is_int(bad, 0, "%d versions (chunks in live files) read back with their "
           "digests after 30 collections during 75 writes", total);
    ok(total >= 9, "versions retained (3 per writer)");
    {
        iss_versions_gc_t st;
        iss_versions_usage_t u;

        iss_versions_gc(store, NULL, apr_time_now(), &st, gp);
        iss_versions_usage(store, &u, gp);
        ok(st.lost == 0 && u.live_files == 0 && u.live_chunks == 0,
           "live files removed: %llu links released, none left, no chunk "
           "lost", (unsigned long long)st.unlinked);
        for (k = 0, bad = 0, total = 0; k < 3; k++) {
            const char *rel = apr_psprintf(gp, "lw%d", k);
            apr_array_header_t *vs;

            iss_versions_list(store, rel, &vs, gp);
            for (i = 0; i < vs->nelts; i++) {
                iss_version_t *v = APR_ARRAY_IDX(vs, i, iss_version_t *);
                iss_version_reader_t *rd;
                unsigned char *buf = apr_palloc(gp, (apr_size_t)v->size);
                unsigned char d[32];
                apr_size_t got;

                total++;
                if (iss_versions_open(store, v, &rd, gp) != APR_SUCCESS
                    || iss_versions_pread(rd, 0, buf, (apr_size_t)v->size,
                                          &got) != APR_SUCCESS) {
                    bad++;
                    continue;
                }
                iss_versions_close(rd);
                sha(buf, got, d);
                bad += memcmp(d, v->digest, 32) != 0;
            }
        }
        is_int(bad, 0, "and all %d still read from the chunk store", total);
    }
}

int main(void)
{
    char base[] = "/tmp/iss-versions-test-XXXXXX";

    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&gp, NULL);
    test_parse();
    if (mkdtemp(base) == NULL) {
        ok(0, "mkdtemp");
        return done_testing();
    }
    root = apr_pstrcat(gp, base, "/files", NULL);
    sdir = apr_pstrcat(gp, base, "/state", NULL);
    testfs_mkdir(root, gp);
    testfs_mkdir(sdir, gp);
    if (iss_store_open(&store, sdir, "sdbm", NULL, NULL, NULL, gp)
        != APR_SUCCESS) {
        ok(0, "store open");
        return done_testing();
    }
    iss_store_set_sync(store, 0);
    test_retain();
    test_limits();
    test_chunks();
    test_gc();
    test_pack();
    test_other_fs();
    test_forget();
    test_concurrent();
    test_live();
    test_live_other();
    test_live_concurrent();
    iss_store_close(store);
    testfs_rm_rf(base, gp);
    return done_testing();
}
