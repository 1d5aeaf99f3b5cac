/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* iss_chunkidx: the records that index a manifest (m/<rel> first, then
 * one c/<hex> per distinct chunk id), their round trip through a store
 * transaction and back by lookup for the same file identity only and
 * the same chunking parameters only, damaged m/ records (absent for
 * lookup, APR_EINVAL for decode), the paths per chunk id (newest first,
 * each once, at most ISS_CHUNKIDX_PATHS), the hex form of ids, and the
 * compaction of the c/ records (dead paths dropped, live ones kept in
 * order, changes made meanwhile respected, many records in passes and
 * transactions). */

#include "iss_chunkidx.h"
#include "iss_manifest.h"
#include "iss_store.h"
#include "tap.h"
#include "testdata.h"
#include "testfs.h"
#include "teststore.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

#define ID_LEN   ISS_DIGEST_SHA256_LEN
#define HEAD_LEN 28                     /* "IMR1" + inode + size + mtime */

static apr_pool_t *gp;

/* Small parameters, so that a few KB give many chunks and a manifest
 * record stays within what an sdbm pair may hold. */
static const iss_cdc_params_t PRM = { 64, 256, 1024 };
static const iss_cdc_params_t OTHER = { 128, 256, 1024 };

/* The test content: @a nrand random bytes of @a seed, then @a nzero
 * bytes @a fill (such a run chunks into repeats of one id). */
static unsigned char *content(apr_uint64_t seed, apr_size_t nrand,
                              apr_size_t nzero, int fill)
{
    unsigned char *r = testdata_random(seed, nrand);
    unsigned char *b = apr_palloc(gp, nrand + nzero + 1);

    memcpy(b, r, nrand);
    memset(b + nrand, fill, nzero);
    free(r);
    return b;
}

/* The manifest of @a len bytes at @a data, fed in pieces of 100. */
static iss_manifest_t *build(const unsigned char *data, apr_size_t len)
{
    iss_manifest_builder_t *b;
    iss_manifest_t *m = NULL;
    apr_size_t off;

    if (iss_manifest_builder_create(&b, &PRM, gp) != APR_SUCCESS)
        return NULL;
    for (off = 0; off < len; off += 100) {
        apr_size_t n = len - off < 100 ? len - off : 100;

        if (iss_manifest_builder_feed(b, data + off, n) != APR_SUCCESS)
            return NULL;
    }
    if (iss_manifest_builder_finish(b, &m) != APR_SUCCESS)
        return NULL;
    return m;
}

static int same_manifest(const iss_manifest_t *a, const iss_manifest_t *b)
{
    apr_uint32_t i;

    if (a == NULL || b == NULL || a->params.min_size != b->params.min_size
        || a->params.avg_size != b->params.avg_size
        || a->params.max_size != b->params.max_size
        || a->file_size != b->file_size
        || memcmp(a->file_sha256, b->file_sha256, ID_LEN) != 0
        || a->count != b->count)
        return 0;
    for (i = 0; i < a->count; i++) {
        if (memcmp(a->entries[i].sha256, b->entries[i].sha256, ID_LEN) != 0
            || a->entries[i].length != b->entries[i].length
            || a->entries[i].offset != b->entries[i].offset)
            return 0;
    }
    return 1;
}

/* How many distinct ids @a m lists. */
static apr_uint32_t distinct_ids(const iss_manifest_t *m)
{
    apr_uint32_t i, j, n = 0;

    for (i = 0; i < m->count; i++) {
        for (j = 0; j < i; j++) {
            if (!memcmp(m->entries[i].sha256, m->entries[j].sha256, ID_LEN))
                break;
        }
        n += j == i;
    }
    return n;
}

/* ---- hex ---------------------------------------------------------------- */

static void test_hex(void)
{
    unsigned char id[ID_LEN], back[ID_LEN];
    const char *hex;
    char *bad;
    int i;

    for (i = 0; i < ID_LEN; i++)
        id[i] = (unsigned char)(i * 8 + 7);   /* 07 0f 17 ... ff */
    hex = iss_hex_id(id, gp);
    is_str(hex, "070f171f272f373f474f575f676f777f878f979fa7afb7bfc7cfd7dfe7eff7ff",
           "hex: lower case, two digits per byte, in order");
    memset(back, 0, sizeof(back));
    is_int(iss_hex_id_decode(hex, strlen(hex), back), 1, "unhex of hex");
    ok(!memcmp(back, id, ID_LEN), "... gives the id back");

    memset(back, 0, sizeof(back));
    is_int(iss_hex_id_decode("070F171F272F373F474F575F676F777F878F979FA7AFB7BFC7CFD7DFE7EFF7FF",
                              64, back), 1, "unhex accepts upper case");
    ok(!memcmp(back, id, ID_LEN), "... with the same id");
    memset(back, 0, sizeof(back));
    is_int(iss_hex_id_decode("070f171f272f373f474f575f676f777F878F979FA7AFB7BFC7CFD7DFE7EFF7FF",
                              64, back), 1, "unhex accepts mixed case");
    ok(!memcmp(back, id, ID_LEN), "... with the same id");

    is_int(iss_hex_id_decode(hex, 63, back), 0, "unhex refuses 63 characters");
    is_int(iss_hex_id_decode(apr_pstrcat(gp, hex, "0", NULL), 65, back), 0,
           "unhex refuses 65 characters");
    is_int(iss_hex_id_decode(apr_pstrcat(gp, hex, "00", NULL), 66, back), 0,
           "unhex refuses 66 characters (a whole byte too many)");
    is_int(iss_hex_id_decode(hex, 62, back), 0,
           "unhex refuses 62 characters (a whole byte too few)");
    is_int(iss_hex_id_decode("", 0, back), 0, "unhex refuses nothing");
    {
        static const char *const nonhex = "gG:/@`x \n-";
        const char *c;

        for (c = nonhex; *c; c++) {
            bad = apr_pstrdup(gp, hex);
            bad[0] = *c;
            is_int(iss_hex_id_decode(bad, 64, back), 0,
                   "unhex refuses 0x%02x as a high digit", (unsigned)*c);
            bad = apr_pstrdup(gp, hex);
            bad[63] = *c;
            is_int(iss_hex_id_decode(bad, 64, back), 0,
                   "unhex refuses 0x%02x as a low digit", (unsigned)*c);
        }
    }
    bad = apr_pstrdup(gp, hex);
    bad[30] = '\0';
    is_int(iss_hex_id_decode(bad, 64, back), 0,
           "unhex refuses a NUL inside the 64 characters");
}

/* ---- records ------------------------------------------------------------ */

static void test_records(void)
{
    unsigned char *data = content(1, 2000, 4000, 0);
    iss_manifest_t *m = build(data, 6000), *back = NULL;
    iss_filedigest_t ident, got;
    iss_manifest_limits_t lim = { 100000, APR_UINT64_C(1) << 40, &PRM };
    apr_array_header_t *kvs = NULL;
    const iss_chunkidx_kv_t *kv;
    unsigned char *ism;
    apr_size_t ilen;
    apr_uint32_t distinct, i;
    int j, all_c = 1, all_rel = 1, all_listed = 1, all_distinct = 1,
        all_covered = 1;

    if (!ok(m != NULL, "build a manifest"))
        return;
    distinct = distinct_ids(m);
    diag("manifest: %u chunks, %u distinct", (unsigned)m->count,
         (unsigned)distinct);
    ok(m->count > distinct && distinct > 2,
       "the manifest repeats an id and has others (precondition)");

    is_str(iss_chunkidx_manifest_key("a/b c", gp), "m/a/b c", "manifest key");

    memset(&ident, 0, sizeof(ident));
    ident.ino = APR_UINT64_C(0x0123456789abcdef);
    ident.size = 6000;
    ident.mtime = -1500;            /* before 1970: two's complement */
    memset(ident.sha256, 0xee, ID_LEN);  /* not used */
    is_int(iss_chunkidx_records("dir/a b", &ident, m, &kvs, gp), APR_SUCCESS,
           "records");
    if (!ok(kvs != NULL && kvs->nelts >= 1, "... some"))
        return;
    is_int(kvs->nelts, 1 + distinct, "one m/ record and one c/ per distinct id");
    kv = &APR_ARRAY_IDX(kvs, 0, iss_chunkidx_kv_t);
    is_str(kv->key, "m/dir/a b", "the first is m/<rel>");
    iss_manifest_encode(m, &ism, &ilen, gp);
    is_int(kv->vlen, HEAD_LEN + ilen, "... of 28 + manifest bytes");
    ok(kv->vlen >= HEAD_LEN && !memcmp(kv->val, "IMR1", 4), "... magic IMR1");
    ok(kv->vlen == HEAD_LEN + ilen
       && !memcmp((const char *)kv->val + HEAD_LEN, ism, ilen),
       "... then the manifest's own encoding");
    {
        static const unsigned char head[24] = {
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
            0, 0, 0, 0, 0, 0, 0x17, 0x70,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfa, 0x24 };

        ok(kv->vlen >= HEAD_LEN
           && !memcmp((const char *)kv->val + 4, head, 24),
           "... inode, size, mtime as big-endian 64-bit words");
    }
    memset(&got, 0x5a, sizeof(got));
    is_int(iss_chunkidx_decode(kv->val, kv->vlen, &lim, &got, &back, gp),
           APR_SUCCESS, "decode the m/ record");
    ok(got.ino == ident.ino && got.size == ident.size
       && got.mtime == ident.mtime, "... the identity comes back");
    ok(same_manifest(back, m), "... and the manifest");

    for (j = 1; j < kvs->nelts; j++) {
        const iss_chunkidx_kv_t *c = &APR_ARRAY_IDX(kvs, j, iss_chunkidx_kv_t);
        unsigned char id[ID_LEN];
        int k;

        if (strncmp(c->key, "c/", 2) != 0 || strlen(c->key) != 66
            || !iss_hex_id_decode(c->key + 2, 64, id)
            || strcmp(c->key + 2, iss_hex_id(id, gp)) != 0) {
            all_c = 0;
            continue;
        }
        if (c->vlen != strlen("dir/a b")
            || memcmp(c->val, "dir/a b", c->vlen) != 0)
            all_rel = 0;
        for (i = 0; i < m->count; i++) {
            if (!memcmp(m->entries[i].sha256, id, ID_LEN))
                break;
        }
        if (i == m->count)
            all_listed = 0;
        for (k = 1; k < j; k++) {
            if (!strcmp(APR_ARRAY_IDX(kvs, k, iss_chunkidx_kv_t).key, c->key))
                all_distinct = 0;
        }
    }
    for (i = 0; i < m->count; i++) {
        const char *want = apr_pstrcat(gp, "c/",
                                       iss_hex_id(m->entries[i].sha256,
                                                        gp), NULL);

        for (j = 1; j < kvs->nelts; j++) {
            if (!strcmp(APR_ARRAY_IDX(kvs, j, iss_chunkidx_kv_t).key, want))
                break;
        }
        if (j == kvs->nelts)
            all_covered = 0;
    }
    ok(all_c, "the others are c/<64 lower-case hex>");
    ok(all_rel, "... each with the value rel");
    ok(all_listed, "... each for an id of the manifest");
    ok(all_distinct, "... each id once");
    ok(all_covered, "... every id of the manifest has one");

    {
        /* The empty file: m/ only. */
        iss_manifest_t *e = build((const unsigned char *)"", 0);

        ident.size = 0;
        is_int(iss_chunkidx_records("empty", &ident, e, &kvs, gp),
               APR_SUCCESS, "records of the empty file");
        ok(kvs->nelts == 1
           && !strcmp(APR_ARRAY_IDX(kvs, 0, iss_chunkidx_kv_t).key,
                      "m/empty"), "... m/ only");
    }
}

/* ---- the store ---------------------------------------------------------- */

typedef struct {
    const apr_array_header_t *kvs[3];
    apr_pool_t *pool;
} put_baton;

static apr_status_t put_txn(void *baton, iss_store_txn_t *txn)
{
    put_baton *b = baton;
    apr_status_t rv;
    int i;

    for (i = 0; i < 3 && b->kvs[i]; i++) {
        if ((rv = iss_chunkidx_txn_put(txn, b->kvs[i], b->pool))
            != APR_SUCCESS)
            return rv;
    }
    return APR_SUCCESS;
}

/* Index @a m as the file @a rel of identity @a ident in one transaction. */
static apr_status_t index_file(iss_store_t *s, const char *rel,
                               const iss_filedigest_t *ident,
                               const iss_manifest_t *m)
{
    put_baton b = { { NULL, NULL, NULL }, gp };
    apr_array_header_t *kvs;
    apr_status_t rv = iss_chunkidx_records(rel, ident, m, &kvs, gp);

    if (rv != APR_SUCCESS)
        return rv;
    b.kvs[0] = kvs;
    return iss_store_txn(s, put_txn, &b, gp);
}

/* iss_chunkidx_where() as one string, paths joined by '|', or "<none>"
 * for APR_NOTFOUND, "<error N>" for anything else. */
static const char *where(iss_store_t *s, const unsigned char id[ID_LEN])
{
    apr_array_header_t *rels = NULL;
    apr_status_t rv = iss_chunkidx_where(s, id, &rels, gp);
    const char *out = "";
    int i;

    if (rv == APR_NOTFOUND)
        return "<none>";
    if (rv != APR_SUCCESS)
        return apr_psprintf(gp, "<error %d>", rv);
    for (i = 0; i < rels->nelts; i++)
        out = apr_pstrcat(gp, out, i ? "|" : "",
                          APR_ARRAY_IDX(rels, i, const char *), NULL);
    return out;
}

/* The same answer of where() for every id of @a m? */
static int where_all(iss_store_t *s, const iss_manifest_t *m,
                     const char *want)
{
    apr_uint32_t i;

    for (i = 0; i < m->count; i++) {
        const char *got = where(s, m->entries[i].sha256);

        if (strcmp(got, want) != 0) {
            diag("id %u: '%s', expected '%s'", (unsigned)i, got, want);
            return 0;
        }
    }
    return 1;
}

static void test_lookup(iss_store_t *s, const char *dir)
{
    const char *path = apr_pstrcat(gp, dir, "/f", NULL);
    unsigned char *data = content(2, 2500, 3000, 0);
    iss_manifest_t *m = build(data, 5500), *got;
    iss_manifest_limits_t lim = { 100000, APR_UINT64_C(1) << 40, &PRM };
    iss_manifest_limits_t nolim = { 100000, APR_UINT64_C(1) << 40, NULL };
    iss_manifest_limits_t other = { 100000, APR_UINT64_C(1) << 40, &OTHER };
    iss_filedigest_t ident;
    apr_finfo_t fi, fo;
    apr_file_t *f;

    if (!ok(m != NULL, "build the file's manifest"))
        return;
    if (apr_file_open(&f, path, APR_FOPEN_CREATE | APR_FOPEN_WRITE
                      | APR_FOPEN_TRUNCATE, APR_OS_DEFAULT, gp) != APR_SUCCESS
        || apr_file_write_full(f, data, 5500, NULL) != APR_SUCCESS
        || apr_file_close(f) != APR_SUCCESS) {
        ok(0, "write %s", path);
        return;
    }
    if (!is_int(apr_stat(&fi, path, APR_FINFO_IDENT | APR_FINFO_SIZE
                         | APR_FINFO_MTIME, gp), APR_SUCCESS, "stat"))
        return;
    memset(&ident, 0, sizeof(ident));
    iss_filedigest_set_identity(&ident, &fi);

    got = NULL;
    is_int(iss_chunkidx_lookup(s, "f", &fi, &lim, &got, gp), APR_NOTFOUND,
           "lookup before any record: APR_NOTFOUND");
    is_int(index_file(s, "f", &ident, m), APR_SUCCESS,
           "records put in a store transaction");
    ok(teststore_get(s, "m/f", gp) != NULL, "m/f is in the store");
    is_str(teststore_get(s, apr_pstrcat(gp, "c/", iss_hex_id(
                             m->entries[0].sha256, gp), NULL), gp),
           "f", "c/<first id> names f");

    got = NULL;
    is_int(iss_chunkidx_lookup(s, "f", &fi, &lim, &got, gp), APR_SUCCESS,
           "lookup with the file's identity and parameters");
    ok(same_manifest(got, m), "... gives the manifest that was put");
    got = NULL;
    is_int(iss_chunkidx_lookup(s, "f", &fi, &nolim, &got, gp), APR_SUCCESS,
           "lookup with no parameters required");
    ok(same_manifest(got, m), "... gives it too");
    is_int(iss_chunkidx_lookup(s, "g", &fi, &lim, &got, gp), APR_NOTFOUND,
           "lookup of another path: APR_NOTFOUND");
    is_int(iss_chunkidx_lookup(s, "f/", &fi, &lim, &got, gp), APR_NOTFOUND,
           "lookup of 'f/': APR_NOTFOUND");

    fo = fi;
    fo.inode++;
    is_int(iss_chunkidx_lookup(s, "f", &fo, &lim, &got, gp), APR_NOTFOUND,
           "another inode: APR_NOTFOUND");
    fo = fi;
    fo.size++;
    is_int(iss_chunkidx_lookup(s, "f", &fo, &lim, &got, gp), APR_NOTFOUND,
           "another size: APR_NOTFOUND");
    fo = fi;
    fo.size--;
    is_int(iss_chunkidx_lookup(s, "f", &fo, &lim, &got, gp), APR_NOTFOUND,
           "a smaller size: APR_NOTFOUND");
    fo = fi;
    fo.mtime++;
    is_int(iss_chunkidx_lookup(s, "f", &fo, &lim, &got, gp), APR_NOTFOUND,
           "another mtime (1 us later): APR_NOTFOUND");
    fo = fi;
    fo.mtime -= apr_time_from_sec(1);
    is_int(iss_chunkidx_lookup(s, "f", &fo, &lim, &got, gp), APR_NOTFOUND,
           "another mtime (1 s earlier): APR_NOTFOUND");
    is_int(iss_chunkidx_lookup(s, "f", &fi, &other, &got, gp), APR_NOTFOUND,
           "other parameters required: APR_NOTFOUND");
    {
        iss_manifest_limits_t small = lim;

        small.max_file_size = 5499;
        is_int(iss_chunkidx_lookup(s, "f", &fi, &small, &got, gp),
               APR_NOTFOUND, "a file size over the limits: APR_NOTFOUND");
        small = lim;
        small.max_entries = m->count - 1;
        is_int(iss_chunkidx_lookup(s, "f", &fi, &small, &got, gp),
               APR_NOTFOUND, "more entries than the limits: APR_NOTFOUND");
    }
    got = NULL;
    is_int(iss_chunkidx_lookup(s, "f", &fi, &lim, &got, gp), APR_SUCCESS,
           "the record is still there for the right identity");
}

/* A damaged m/ record: absent for lookup, APR_EINVAL for decode.  Decode
 * reads a malloc'd copy of exactly @a len bytes, so that a read past
 * its end shows under ASan (pool memory would hide it). */
static void check_damaged(iss_store_t *s, const char *what, const void *rec,
                          apr_size_t len, const apr_finfo_t *fi)
{
    iss_manifest_limits_t lim = { 100000, APR_UINT64_C(1) << 40, &PRM };
    iss_filedigest_t id;
    iss_manifest_t *m = NULL;
    void *copy;

    if (!is_int(iss_store_put(s, "m/d", 3, rec, len), APR_SUCCESS,
                "%s: put", what))
        return;
    is_int(iss_chunkidx_lookup(s, "d", fi, &lim, &m, gp), APR_NOTFOUND,
           "%s: lookup says APR_NOTFOUND", what);
    copy = malloc(len ? len : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, rec, len);
    is_int(iss_chunkidx_decode(copy, len, &lim, &id, &m, gp), APR_EINVAL,
           "%s: decode says APR_EINVAL", what);
    free(copy);
}

static void test_damaged(iss_store_t *s)
{
    unsigned char *data = content(3, 3000, 0, 0);
    iss_manifest_t *m = build(data, 3000), *got = NULL;
    iss_manifest_limits_t lim = { 100000, APR_UINT64_C(1) << 40, &PRM };
    iss_filedigest_t ident, back;
    apr_array_header_t *kvs;
    apr_finfo_t fi, fbig;
    const iss_chunkidx_kv_t *kv;
    unsigned char *rec, *junk;
    apr_size_t len;

    if (!ok(m != NULL, "build a manifest to damage"))
        return;
    memset(&fi, 0, sizeof(fi));
    fi.inode = 4242;
    fi.size = 3000;
    fi.mtime = apr_time_from_sec(1700000000);
    memset(&ident, 0, sizeof(ident));
    iss_filedigest_set_identity(&ident, &fi);
    iss_chunkidx_records("d", &ident, m, &kvs, gp);
    kv = &APR_ARRAY_IDX(kvs, 0, iss_chunkidx_kv_t);
    len = kv->vlen;
    rec = apr_pmemdup(gp, kv->val, len);

    /* The intact record, for contrast. */
    is_int(iss_store_put(s, "m/d", 3, rec, len), APR_SUCCESS, "intact: put");
    is_int(iss_chunkidx_lookup(s, "d", &fi, &lim, &got, gp), APR_SUCCESS,
           "intact: lookup finds it");
    is_int(iss_chunkidx_decode(rec, len, &lim, &back, &got, gp), APR_SUCCESS,
           "intact: decode takes it");

    {
        unsigned char *r = apr_pmemdup(gp, rec, len);

        r[3] = '2';
        check_damaged(s, "magic IMR2", r, len, &fi);
        r = apr_pmemdup(gp, rec, len);
        r[0] = 'i';
        check_damaged(s, "magic iMR1", r, len, &fi);
        r = apr_pmemdup(gp, rec, len);
        memcpy(r + HEAD_LEN, "ISM2", 4);
        check_damaged(s, "the manifest's magic ISM2", r, len, &fi);
    }
    check_damaged(s, "truncated by one byte", rec, len - 1, &fi);
    check_damaged(s, "truncated by one entry", rec,
                  len - ISS_MANIFEST_ENTRY_LEN, &fi);
    check_damaged(s, "truncated to the header and the manifest's header", rec,
                  HEAD_LEN + ISS_MANIFEST_HEADER_LEN, &fi);
    check_damaged(s, "truncated to the header", rec, HEAD_LEN, &fi);
    check_damaged(s, "truncated in the header", rec, HEAD_LEN - 1, &fi);
    check_damaged(s, "truncated to the magic", rec, 4, &fi);
    check_damaged(s, "empty", rec, 0, &fi);
    {
        unsigned char *r = apr_palloc(gp, len + 1);

        memcpy(r, rec, len);
        r[len] = 0;
        check_damaged(s, "a byte after the manifest", r, len + 1, &fi);
    }
    {
        /* Header size one more than the manifest's file size, and a
         * finfo that matches the header: only the size check refuses. */
        unsigned char *r = apr_pmemdup(gp, rec, len);

        r[4 + 8 + 7]++;                 /* 3000 -> 3001 */
        fbig = fi;
        fbig.size = 3001;
        check_damaged(s, "size field 3001, manifest 3000", r, len, &fbig);
        r = apr_pmemdup(gp, rec, len);
        r[4 + 8 + 7]--;                 /* 3000 -> 2999 */
        fbig = fi;
        fbig.size = 2999;
        check_damaged(s, "size field 2999, manifest 3000", r, len, &fbig);
        r = apr_pmemdup(gp, rec, len);
        r[4 + 8] = 0x80;                /* above APR_INT64_MAX */
        fbig = fi;
        fbig.size = (apr_off_t)(APR_UINT64_C(0x8000000000000bb8));
        check_damaged(s, "size field with the top bit set", r, len, &fbig);
    }
    {
        /* A chunk length changed inside the manifest. */
        unsigned char *r = apr_pmemdup(gp, rec, len);

        r[HEAD_LEN + ISS_MANIFEST_HEADER_LEN + 32 + 3] ^= 1;
        check_damaged(s, "a chunk length changed", r, len, &fi);
    }
    junk = testdata_random(99, len);
    check_damaged(s, "random bytes of the same length", junk, len, &fi);
    memcpy(junk, "IMR1", 4);
    check_damaged(s, "IMR1 then random bytes", junk, len, &fi);
    free(junk);
    check_damaged(s, "text", "IFD1 4242 3000 0 junk", 21, &fi);

    /* Writing the intact record again makes it usable again. */
    iss_store_put(s, "m/d", 3, rec, len);
    is_int(iss_chunkidx_lookup(s, "d", &fi, &lim, &got, gp), APR_SUCCESS,
           "intact again: lookup finds it");
    ok(same_manifest(got, m), "... the same manifest");
}

static void test_where(iss_store_t *s)
{
    unsigned char *data = content(4, 1500, 3000, 0x5a);
    unsigned char *odata = content(5, 2000, 0, 0);
    iss_manifest_t *m = build(data, 4500), *o = build(odata, 2000);
    iss_filedigest_t ident;
    unsigned char absent[ID_LEN], rep_id[ID_LEN];
    apr_uint32_t i, reps = 0;

    if (!ok(m != NULL && o != NULL, "build two manifests"))
        return;
    memset(&ident, 0, sizeof(ident));
    ident.ino = 7;
    ident.size = 4500;
    ident.mtime = 1;

    /* The id that repeats (the run of 0x5a, an id the store has not seen
     * in the tests before). */
    for (i = 1; i < m->count; i++) {
        if (!memcmp(m->entries[i].sha256, m->entries[i - 1].sha256, ID_LEN)) {
            memcpy(rep_id, m->entries[i].sha256, ID_LEN);
            reps++;
        }
    }
    ok(reps > 0, "the manifest repeats an id (precondition)");

    memset(absent, 0xab, ID_LEN);
    is_str(where(s, absent), "<none>", "an id never recorded: APR_NOTFOUND");
    is_str(where(s, m->entries[0].sha256), "<none>",
           "before any record: APR_NOTFOUND");

    is_int(index_file(s, "w/one", &ident, m), APR_SUCCESS, "index w/one");
    is_str(where(s, rep_id), "w/one",
           "an id listed several times by one file: that file once");
    ok(where_all(s, m, "w/one"), "every id of it: w/one");

    is_int(index_file(s, "w/two", &ident, m), APR_SUCCESS, "index w/two");
    is_int(index_file(s, "w/three", &ident, m), APR_SUCCESS, "index w/three");
    is_str(where(s, rep_id), "w/three|w/two|w/one", "newest first");
    ok(where_all(s, m, "w/three|w/two|w/one"), "... for every id");
    is_str(teststore_get(s, apr_pstrcat(gp, "c/", iss_hex_id(rep_id,
                                                                   gp), NULL),
                         gp),
           "w/three\nw/two\nw/one", "the c/ record: one path a line");

    is_int(index_file(s, "w/one", &ident, m), APR_SUCCESS,
           "index w/one again");
    is_str(where(s, rep_id), "w/one|w/three|w/two",
           "a path written again moves to the front, once");
    is_int(index_file(s, "w/one", &ident, m), APR_SUCCESS,
           "index w/one a third time");
    is_str(where(s, rep_id), "w/one|w/three|w/two",
           "... the newest written again: no change");

    is_int(index_file(s, "w/four", &ident, m), APR_SUCCESS, "index w/four");
    is_str(where(s, rep_id), "w/four|w/one|w/three|w/two",
           "four paths kept");
    is_int(index_file(s, "w/five", &ident, m), APR_SUCCESS, "index w/five");
    is_str(where(s, rep_id), "w/five|w/four|w/one|w/three",
           "a fifth: the oldest is dropped");
    {
        apr_array_header_t *rels = NULL;

        iss_chunkidx_where(s, rep_id, &rels, gp);
        is_int(rels ? rels->nelts : -1, ISS_CHUNKIDX_PATHS,
               "at most ISS_CHUNKIDX_PATHS paths");
    }
    is_int(index_file(s, "w/two", &ident, m), APR_SUCCESS,
           "index the dropped w/two again");
    is_str(where(s, rep_id), "w/two|w/five|w/four|w/one",
           "... it comes back in front, w/three dropped");
    is_int(index_file(s, "w/four", &ident, m), APR_SUCCESS,
           "index w/four (in the middle) again");
    ok(where_all(s, m, "w/four|w/two|w/five|w/one"),
       "... it moves to the front, nothing dropped, for every id");

    /* Another file with other chunks: its ids name it only, and the ids
     * of the first manifest are untouched. */
    ident.size = 2000;
    is_int(index_file(s, "w/other", &ident, o), APR_SUCCESS, "index w/other");
    ok(where_all(s, o, "w/other"), "its ids name it only");
    ok(where_all(s, m, "w/four|w/two|w/five|w/one"),
       "the other ids are untouched");

    /* Two files in one transaction: the second sees the first's put. */
    {
        put_baton b = { { NULL, NULL, NULL }, gp };
        apr_array_header_t *k1, *k2;

        iss_chunkidx_records("w/t1", &ident, o, &k1, gp);
        iss_chunkidx_records("w/t2", &ident, o, &k2, gp);
        b.kvs[0] = k1;
        b.kvs[1] = k2;
        is_int(iss_store_txn(s, put_txn, &b, gp), APR_SUCCESS,
               "two files in one transaction");
        ok(where_all(s, o, "w/t2|w/t1|w/other"),
           "... both in front, the later first");
    }

    /* A c/ record without a path. */
    {
        const char *k = apr_pstrcat(gp, "c/", iss_hex_id(absent, gp),
                                    NULL);

        iss_store_put(s, k, strlen(k), "", 0);
        is_str(where(s, absent), "<none>", "an empty c/ record: APR_NOTFOUND");
        iss_store_put(s, k, strlen(k), "\n\n", 2);
        is_str(where(s, absent), "<none>",
               "a c/ record of empty lines: APR_NOTFOUND");
    }
}

/* ---- compaction ---------------------------------------------------------- */

/* Index @a m as @a rel (an identity of the manifest's size). */
static apr_status_t index_m(iss_store_t *s, const char *rel,
                            const iss_manifest_t *m)
{
    iss_filedigest_t ident;

    memset(&ident, 0, sizeof(ident));
    ident.ino = 9;
    ident.size = (apr_off_t)m->file_size;
    ident.mtime = 2;
    return index_file(s, rel, &ident, m);
}

static int lists(const iss_manifest_t *m, const unsigned char id[ID_LEN])
{
    apr_uint32_t i;

    for (i = 0; i < m->count; i++) {
        if (!memcmp(m->entries[i].sha256, id, ID_LEN))
            return 1;
    }
    return 0;
}

/* Distinct ids of @a m that @a other (may be NULL) does not list. */
static apr_uint32_t only_in(const iss_manifest_t *m,
                            const iss_manifest_t *other)
{
    apr_uint32_t i, j, n = 0;

    for (i = 0; i < m->count; i++) {
        for (j = 0; j < i; j++) {
            if (!memcmp(m->entries[i].sha256, m->entries[j].sha256, ID_LEN))
                break;
        }
        if (j == i && !(other && lists(other, m->entries[i].sha256)))
            n++;
    }
    return n;
}

/* where() of every id of @a m that @a other (may be NULL) does not
 * list, and of every one it does, against the answers wanted. */
static int where_split(iss_store_t *s, const iss_manifest_t *m,
                       const iss_manifest_t *other, const char *want_only,
                       const char *want_both)
{
    apr_uint32_t i;

    for (i = 0; i < m->count; i++) {
        int both = other && lists(other, m->entries[i].sha256);
        const char *want = both ? want_both : want_only;
        const char *got = where(s, m->entries[i].sha256);

        if (strcmp(got, want) != 0) {
            diag("id %u (%s): '%s', expected '%s'", (unsigned)i,
                 both ? "in both" : "in the first only", got, want);
            return 0;
        }
    }
    return 1;
}

static int snap_one(void *baton, const void *key, apr_size_t klen,
                    const void *val, apr_size_t vlen)
{
    apr_array_header_t *a = baton;
    char *v = apr_pstrmemdup(gp, val, vlen);
    apr_size_t i;

    for (i = 0; i < vlen; i++) {
        if (v[i] == '\0')
            v[i] = '@';
    }
    APR_ARRAY_PUSH(a, const char *) =
        apr_pstrcat(gp, apr_pstrmemdup(gp, key, klen), "=", v, NULL);
    return 0;
}

static int strptrcmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every c/ record, sorted, as one string. */
static const char *snapshot(iss_store_t *s)
{
    apr_array_header_t *a = apr_array_make(gp, 64, sizeof(const char *));

    if (iss_store_iterate(s, "c/", 2, snap_one, a, gp) != APR_SUCCESS)
        return "<error>";
    qsort(a->elts, (size_t)a->nelts, sizeof(const char *), strptrcmp);
    return apr_array_pstrcat(gp, a, '\n');
}

static const char *ckey(const unsigned char id[ID_LEN])
{
    return apr_pstrcat(gp, "c/", iss_hex_id(id, gp), NULL);
}

static void test_compact(iss_store_t *s)
{
    iss_manifest_t *ma = build(content(20, 3000, 0, 0), 3000);
    unsigned char *bdata = content(21, 3000, 0, 0);
    unsigned char *b2data = apr_pmemdup(gp, bdata, 3000);
    iss_manifest_t *mb, *mb2, *mp = build(content(23, 3000, 0, 0), 3000);
    iss_manifest_t *me = build(content(24, 3000, 0, 0), 3000);
    unsigned char damaged_id[ID_LEN], empty_id[ID_LEN];
    apr_uint64_t kept = 99, dpaths = 99, drecs = 99;
    apr_uint32_t da, db_only, db2, dp, de;
    const char *k, *before;

    memcpy(b2data + 1500, content(22, 1500, 0, 0), 1500);
    mb = build(bdata, 3000);
    mb2 = build(b2data, 3000);
    if (!ok(ma && mb && mb2 && mp && me, "build the manifests"))
        return;
    da = only_in(ma, NULL);
    db_only = only_in(mb, mb2);
    db2 = only_in(mb2, NULL);
    dp = only_in(mp, NULL);
    de = only_in(me, NULL);
    ok(db_only > 0 && db2 > db_only && only_in(mb2, mb) > 0,
       "b's two versions share some ids, not all (precondition)");

    is_int(iss_chunkidx_compact(s, &kept, &dpaths, &drecs, gp), APR_SUCCESS,
           "compact an empty store");
    ok(kept == 0 && dpaths == 0 && drecs == 0, "... nothing to count");

    /* a: indexed, then its m/ record removed (a DELETE) */
    is_int(index_m(s, "a", ma), APR_SUCCESS, "index a");
    iss_store_delete(s, "m/a", 3);
    /* b: indexed, then rewritten with other content */
    is_int(index_m(s, "b", mb), APR_SUCCESS, "index b");
    is_int(index_m(s, "b", mb2), APR_SUCCESS, "index b's new version");
    /* p1 .. p4 of one content; p2 and p3 deleted */
    index_m(s, "p1", mp);
    index_m(s, "p2", mp);
    index_m(s, "p3", mp);
    is_int(index_m(s, "p4", mp), APR_SUCCESS, "index p1 .. p4");
    iss_store_delete(s, "m/p2", 4);
    iss_store_delete(s, "m/p3", 4);
    ok(where_all(s, mp, "p4|p3|p2|p1"), "p4|p3|p2|p1 before");
    /* e: its m/ record damaged */
    is_int(index_m(s, "e", me), APR_SUCCESS, "index e");
    iss_store_put(s, "m/e", 3, "IMR1 junk", 9);
    /* records of no use: a NUL in the value, a key that is no id, an
     * empty value */
    memset(damaged_id, 0xd0, ID_LEN);
    memset(empty_id, 0xe0, ID_LEN);
    k = ckey(damaged_id);
    iss_store_put(s, k, strlen(k), "p1\0p4", 5);
    iss_store_put(s, "c/zz", 4, "p1", 2);
    k = ckey(empty_id);
    iss_store_put(s, k, strlen(k), "", 0);

    is_int(iss_chunkidx_compact(s, &kept, &dpaths, &drecs, gp), APR_SUCCESS,
           "compact");
    is_int(kept, db2 + 2 * dp, "kept: b in its new ids, p4 and p1");
    is_int(dpaths, da + db_only + 2 * dp + de + 1,
           "dropped paths: a, b in its old ids, p2, p3, e, the one of c/zz");
    is_int(drecs, da + db_only + de + 3,
           "dropped records: a's, b's old ones, e's, the damaged, the "
           "keyless, the empty");
    ok(where_split(s, ma, NULL, "<none>", ""),
       "a path whose m/ record is gone: dropped, its records deleted");
    ok(where_split(s, mb, mb2, "<none>", "b"),
       "a manifest that lists the id no more: dropped; the ids it lists "
       "keep it");
    ok(where_split(s, mb2, mb, "b", "b"), "b's new ids: b");
    ok(where_all(s, mp, "p4|p1"), "live paths stay, in their order");
    ok(where_split(s, me, NULL, "<none>", ""),
       "a damaged m/ record: its path dropped");
    ok(teststore_get(s, ckey(damaged_id), gp) == NULL,
       "a value holding a NUL: deleted");
    ok(teststore_get(s, "c/zz", gp) == NULL, "a key that is no id: deleted");
    ok(teststore_get(s, ckey(empty_id), gp) == NULL, "an empty value: deleted");
    ok(teststore_get(s, "m/b", gp) && teststore_get(s, "m/p1", gp)
       && teststore_get(s, "m/e", gp), "m/ records are left alone");

    before = snapshot(s);
    kept = dpaths = drecs = 99;
    is_int(iss_chunkidx_compact(s, &kept, &dpaths, &drecs, gp), APR_SUCCESS,
           "compact again");
    ok(kept == db2 + 2 * dp && dpaths == 0 && drecs == 0,
       "... the same paths kept, nothing dropped");
    is_str(snapshot(s), before, "... no c/ record changed");

    {
        iss_chunkidx_compact_tune_t t;

        memset(&t, 0, sizeof(t));
        t.pass_bytes = 1;
        t.cache_bytes = 1;
        is_int(iss_chunkidx_compact_tuned(s, &t, &kept, NULL, NULL, gp),
               APR_EINVAL, "txn_keys 0: APR_EINVAL");
        t.txn_keys = 1;
        t.pass_bytes = 0;
        is_int(iss_chunkidx_compact_tuned(s, &t, NULL, NULL, NULL, gp),
               APR_EINVAL, "pass_bytes 0: APR_EINVAL");
    }
}

/* Changes made between the reading and the transaction. */
typedef struct {
    iss_store_t *s;
    const iss_manifest_t *mq, *mr, *ms2;
    const void *s_rec;
    apr_size_t s_len;
    int calls;
} race_t;

static void race_hook(void *baton)
{
    race_t *r = baton;

    if (r->calls++)
        return;
    index_m(r->s, "q1", r->mq);     /* q1 recorded again */
    index_m(r->s, "q3", r->mq);     /* a new path for the same ids */
    index_m(r->s, "r", r->mr);      /* r back to the content it had */
    iss_store_put(r->s, "m/s", 3, r->s_rec, r->s_len);  /* the same bytes */
}

static void test_compact_race(iss_store_t *s)
{
    iss_manifest_t *mq = build(content(40, 3000, 0, 0), 3000);
    iss_manifest_t *mr = build(content(41, 3000, 0, 0), 3000);
    iss_manifest_t *mr2 = build(content(42, 3000, 0, 0), 3000);
    iss_manifest_t *ms = build(content(43, 3000, 0, 0), 3000);
    iss_manifest_t *ms2 = build(content(44, 3000, 0, 0), 3000);
    iss_chunkidx_compact_tune_t t;
    race_t r;
    apr_uint64_t kept, dpaths, drecs;
    apr_uint32_t dq, dr, ds;
    const char *rec;

    if (!ok(mq && mr && mr2 && ms && ms2, "build the manifests"))
        return;
    dq = only_in(mq, NULL);
    dr = only_in(mr, NULL);
    ds = only_in(ms, NULL);
    index_m(s, "q1", mq);
    index_m(s, "q2", mq);
    iss_store_delete(s, "m/q1", 4);
    iss_store_delete(s, "m/q2", 4);
    index_m(s, "r", mr);
    index_m(s, "r", mr2);
    index_m(s, "s", ms);
    index_m(s, "s", ms2);
    rec = teststore_get(s, "m/s", gp);
    if (!ok(rec != NULL, "m/s is there"))
        return;
    memset(&r, 0, sizeof(r));
    r.s = s;
    r.mq = mq;
    r.mr = mr;
    r.ms2 = ms2;
    {
        void *v;
        apr_size_t vl;

        iss_store_get(s, "m/s", 3, &v, &vl, gp);
        r.s_rec = v;
        r.s_len = vl;
    }
    memset(&t, 0, sizeof(t));
    t.pass_bytes = 32 * 1024 * 1024;
    t.cache_bytes = 64 * 1024 * 1024;
    t.txn_keys = 5000;
    t.before_txn = race_hook;
    t.baton = &r;
    is_int(iss_chunkidx_compact_tuned(s, &t, &kept, &dpaths, &drecs, gp),
           APR_SUCCESS, "compact while the store changes");
    is_int(r.calls, 1, "... one transaction");
    ok(where_all(s, mq, "q3|q1"),
       "a path recorded again meanwhile stays, a new one stays, the dead "
       "one goes");
    ok(where_all(s, mr, "r"),
       "a path whose m/ record changed meanwhile stays");
    ok(where_split(s, ms, NULL, "<none>", ""),
       "a path whose m/ record was put again with the same bytes goes");
    ok(where_all(s, ms2, "s"), "... its live ids keep it");
    is_int(kept, 2 * dq + dr + only_in(mr2, NULL) + only_in(ms2, NULL),
           "kept counts what is left (r's other ids: live when read)");
    is_int(dpaths, dq + ds, "dropped: q2 and s's old ids");
    is_int(drecs, ds, "records deleted: s's old ids'");
    ok(where_all(s, mr2, "r"), "r's other ids are untouched");
}

/* Many records: 6000 of a path never recorded, and the ids of "live",
 * whose records also name "old", recorded no more. */
static int many_setup(iss_store_t *s, const iss_manifest_t *ml,
                      const unsigned char *ids, int n)
{
    iss_store_batch_t *b = iss_store_batch_make(s, gp);
    int i;

    if (index_m(s, "old", ml) != APR_SUCCESS
        || iss_store_delete(s, "m/old", 5) != APR_SUCCESS)
        return 0;
    for (i = 0; i < n; i++) {
        const char *k = ckey(ids + (apr_size_t)i * ID_LEN);

        iss_store_batch_put(b, k, strlen(k), "gone", 4);
    }
    return iss_store_batch_commit(b) == APR_SUCCESS;
}

static void test_compact_many(iss_store_t *s)
{
    enum { N = 6000 };
    unsigned char *ids = testdata_random(50, (apr_size_t)N * ID_LEN);
    iss_manifest_t *ml = build(content(51, 100000, 0, 0), 100000);
    iss_chunkidx_compact_tune_t t;
    apr_uint64_t kept, dpaths, drecs;
    apr_uint32_t dl;
    const char *after;

    if (!ok(ml != NULL, "build a manifest of many chunks"))
        goto out;
    dl = only_in(ml, NULL);
    diag("live: %u distinct ids", (unsigned)dl);
    if (!is_int(index_m(s, "live", ml), APR_SUCCESS, "index live")
        || !ok(many_setup(s, ml, ids, N), "%d records of a path never "
               "recorded, old recorded and removed", N))
        goto out;
    ok(where_all(s, ml, "old|live"), "old|live before");

    memset(&t, 0, sizeof(t));
    t.pass_bytes = 32 * 1024 * 1024;
    t.cache_bytes = 64 * 1024 * 1024;
    t.txn_keys = 5000;
    is_int(iss_chunkidx_compact_tuned(s, &t, &kept, &dpaths, &drecs, gp),
           APR_SUCCESS, "compact with the default bounds");
    is_int(kept, dl, "kept: live");
    is_int(dpaths, N + dl, "dropped paths: gone and old");
    is_int(drecs, N, "dropped records: gone's");
    is_int(t.passes, 1, "... in one pass");
    is_int(t.txns, (N + dl + 4999) / 5000, "... in transactions of 5000");
    ok(t.txns >= 2, "... several");
    ok(where_all(s, ml, "live"), "live stays");
    ok(teststore_get(s, ckey(ids), gp) == NULL
       && teststore_get(s, ckey(ids + (apr_size_t)(N - 1) * ID_LEN), gp)
       == NULL, "gone's records are deleted");
    after = snapshot(s);

    /* Again, with tiny bounds: many passes, small transactions, the
     * manifest cache emptied again and again; the same result. */
    if (!ok(many_setup(s, ml, ids, N), "the same records again"))
        goto out;
    t.pass_bytes = 64 * 1024;
    t.cache_bytes = 8000;
    t.txn_keys = 1000;
    is_int(iss_chunkidx_compact_tuned(s, &t, &kept, &dpaths, &drecs, gp),
           APR_SUCCESS, "compact with tiny bounds");
    ok(kept == dl && dpaths == N + dl && drecs == N, "... the same counts");
    is_str(snapshot(s), after, "... the same records");
    diag("tiny bounds: %" APR_UINT64_T_FMT " passes, %" APR_UINT64_T_FMT
         " transactions, %" APR_UINT64_T_FMT " cache drops", t.passes,
         t.txns, t.cache_drops);
    ok(t.passes > 2, "... in several passes");
    ok(t.txns >= (N + dl + 999) / 1000, "... transactions of at most 1000");
    ok(t.cache_drops > 0, "... the cache emptied");
out:
    free(ids);
}

int main(void)
{
    char base[] = "/tmp/iss-chunkidx-test-XXXXXX";
    iss_store_t *s = NULL;
    const char *state;

    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&gp, NULL);
    test_hex();
    test_records();
    if (!mkdtemp(base)) {
        ok(0, "mkdtemp");
        return done_testing();
    }
    state = apr_pstrcat(gp, base, "/state", NULL);
    if (ok(testfs_mkdir(state, gp), "mkdir %s", state)
        && is_int(iss_store_open(&s, state, "sdbm", NULL, NULL, NULL, gp),
                  APR_SUCCESS, "open a store")) {
        iss_store_set_sync(s, 0);
        test_lookup(s, base);
        test_damaged(s);
        test_where(s);
        iss_store_close(s);
    }
    {
        /* Each compaction test on a store of its own. */
        static void (*const tests[])(iss_store_t *) = {
            test_compact, test_compact_race, test_compact_many };
        size_t i;

        for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
            state = apr_psprintf(gp, "%s/compact%d", base, (int)i);
            if (ok(testfs_mkdir(state, gp), "mkdir %s", state)
                && is_int(iss_store_open(&s, state, "sdbm", NULL, NULL, NULL,
                                         gp), APR_SUCCESS,
                          "open a store for compaction")) {
                iss_store_set_sync(s, 0);
                tests[i](s);
                iss_store_close(s);
            }
        }
    }
    testfs_rm_rf(base, gp);
    return done_testing();
}
