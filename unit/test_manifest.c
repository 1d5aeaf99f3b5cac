/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* Unit tests of iss_manifest: the builder against iss_cdc_cut() and
 * iss_digest whatever the piece sizes, a golden encoding written out by
 * hand from the format in iss_manifest.h, encode/parse round trips, each
 * refusal of the parser with its exact code (on manifests made by
 * editing a good encoding), the min_size rule, a random-mutation loop,
 * the empty file, and misuse of the API.  Then the delta (ISD1): a
 * golden delta written from the spec, round trips of random manifests
 * under random edits (unique and repeated ids), the size of the delta of
 * local edits (from synthetic lists and from real files), each refusal
 * of iss_manifest_delta_apply() with its exact code, and a mutation
 * loop. */

#include "iss_manifest.h"
#include "iss_cdc.h"
#include "iss_digest.h"
#include "tap.h"
#include "testdata.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

#define SHA_LEN ISS_DIGEST_SHA256_LEN
#define MIB     ((apr_size_t)1 << 20)
#define HDR     ISS_MANIFEST_HEADER_LEN
#define ENT     ISS_MANIFEST_ENTRY_LEN

/* SHA-256 of nothing. */
#define EMPTY_SHA256 \
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void sha256(iss_digest_t *d, const unsigned char *b, apr_size_t n,
                   unsigned char out[SHA_LEN])
{
    iss_digest_update(d, b, n);
    iss_digest_final(d, out);
}

static void put32(unsigned char *p, apr_uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put64(unsigned char *p, apr_uint64_t v)
{
    put32(p, (apr_uint32_t)(v >> 32));
    put32(p + 4, (apr_uint32_t)v);
}

/* Build the manifest of @a data fed in pieces of @a piece bytes. */
static iss_manifest_t *build(const iss_cdc_params_t *prm,
                             const unsigned char *data, apr_size_t len,
                             apr_size_t piece, apr_pool_t *p)
{
    iss_manifest_builder_t *b;
    iss_manifest_t *m = NULL;
    apr_size_t off;

    if (iss_manifest_builder_create(&b, prm, p) != APR_SUCCESS)
        return NULL;
    for (off = 0; off < len; off += piece) {
        apr_size_t n = len - off < piece ? len - off : piece;

        if (iss_manifest_builder_feed(b, data + off, n) != APR_SUCCESS)
            return NULL;
    }
    if (iss_manifest_builder_finish(b, &m) != APR_SUCCESS)
        return NULL;
    return m;
}

static unsigned char *encode(const iss_manifest_t *m, apr_size_t *len,
                             apr_pool_t *p)
{
    unsigned char *buf;

    if (m == NULL || iss_manifest_encode(m, &buf, len, p) != APR_SUCCESS)
        return NULL;
    return buf;
}

/* Check @a m against iss_cdc_cut() and SHA-256 of each slice of @a data:
 * returns NULL if all is right, else what differs first. */
static const char *check_manifest(const iss_manifest_t *m,
                                  const iss_cdc_params_t *prm,
                                  const unsigned char *data, apr_size_t len,
                                  iss_digest_t *d, apr_pool_t *p)
{
    apr_size_t off = 0;
    apr_uint32_t i = 0;
    unsigned char id[SHA_LEN];

    while (off < len) {
        apr_size_t l = iss_cdc_cut(prm, data + off, len - off);

        if (i >= m->count)
            return apr_psprintf(p, "only %u entries, data goes on at %"
                                APR_SIZE_T_FMT, m->count, off);
        if (m->entries[i].length != l)
            return apr_psprintf(p, "entry %u: length %u, cut gives %"
                                APR_SIZE_T_FMT, i, m->entries[i].length, l);
        if (m->entries[i].offset != off)
            return apr_psprintf(p, "entry %u: offset %" APR_UINT64_T_FMT
                                ", expected %" APR_SIZE_T_FMT, i,
                                m->entries[i].offset, off);
        sha256(d, data + off, l, id);
        if (memcmp(id, m->entries[i].sha256, SHA_LEN) != 0)
            return apr_psprintf(p, "entry %u: id %s, slice hashes to %s", i,
                                testdata_hex(m->entries[i].sha256, SHA_LEN, p),
                                testdata_hex(id, SHA_LEN, p));
        off += l;
        i++;
    }
    if (i != m->count)
        return apr_psprintf(p, "%u entries, cut gives %u", m->count, i);
    if (m->file_size != len)
        return apr_psprintf(p, "file size %" APR_UINT64_T_FMT, m->file_size);
    sha256(d, data, len, id);
    if (memcmp(id, m->file_sha256, SHA_LEN) != 0)
        return "file digest differs from SHA-256 of the whole";
    if (m->params.min_size != prm->min_size
        || m->params.avg_size != prm->avg_size
        || m->params.max_size != prm->max_size)
        return "parameters differ";
    return NULL;
}

static int ok_check(const char *why, const char *name)
{
    int r = ok(why == NULL, "%s", name);

    if (!r)
        diag("  %s", why);
    return r;
}

/* ---- builder ----------------------------------------------------------- */

/* iss_manifest_of_file: the same manifest as the builder fed the bytes,
 * read from the start whatever the offset, for empty and multi-piece
 * files. */
static void test_of_file(apr_pool_t *pool)
{
    static const iss_cdc_params_t prm = { 256, 1024, 4096 };
    apr_size_t sizes[] = { 0, 5000, 3 * 1024 * 1024 + 7 };
    unsigned int i;

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *data = testdata_random(50 + i, sizes[i]);
        iss_manifest_builder_t *b;
        iss_manifest_t *want = NULL, *got = NULL;
        unsigned char *ew, *eg;
        apr_size_t lw = 0, lg = 1;
        char templ[] = "/tmp/iss-test-manifest-XXXXXX";
        apr_file_t *f;
        apr_off_t off = 17;

        if (apr_file_mktemp(&f, templ, APR_FOPEN_CREATE | APR_FOPEN_READ
                            | APR_FOPEN_WRITE | APR_FOPEN_EXCL
                            | APR_FOPEN_DELONCLOSE, pool) != APR_SUCCESS
            || (sizes[i] && apr_file_write_full(f, data, sizes[i], NULL)
                != APR_SUCCESS)) {
            ok(0, "temporary file");
            free(data);
            continue;
        }
        apr_file_seek(f, APR_SET, &off);      /* of_file starts at 0 */
        if (iss_manifest_builder_create(&b, &prm, pool) == APR_SUCCESS
            && iss_manifest_builder_feed(b, data, sizes[i]) == APR_SUCCESS) {
            iss_manifest_builder_finish(b, &want);
        }
        ok(iss_manifest_of_file(f, &prm, &got, pool) == APR_SUCCESS
           && want && iss_manifest_encode(want, &ew, &lw, pool) == APR_SUCCESS
           && iss_manifest_encode(got, &eg, &lg, pool) == APR_SUCCESS
           && lw == lg && memcmp(ew, eg, lw) == 0,
           "of_file of %zu bytes: the builder's manifest", sizes[i]);
        apr_file_close(f);
        free(data);
    }
}

static void test_builder(apr_pool_t *pool)
{
    static const apr_size_t pieces[] = { 1, 4093, MIB };
    const apr_size_t len = 8 * MIB;
    iss_cdc_params_t prm = ISS_CDC_PARAMS_DEFAULT;
    iss_cdc_params_t small = { 64, 256, 1024 };
    unsigned char *data = testdata_random(42, len);
    iss_manifest_t *whole, *m;
    unsigned char *ewhole, *e;
    apr_size_t lwhole, l, i;
    iss_digest_t *d;
    apr_pool_t *p;

    apr_pool_create(&p, pool);
    if (iss_digest_create(&d, p) != APR_SUCCESS)
        abort();

    whole = build(&prm, data, len, len, p);
    ok(whole != NULL, "builder: 8 MiB in one piece");
    if (whole == NULL) {
        free(data);
        return;
    }
    diag("8 MiB, default parameters: %u chunks", whole->count);
    ok(whole->count > 64, "builder: more than 64 chunks (the array grew)");
    ok_check(check_manifest(whole, &prm, data, len, d, p),
             "builder: lengths = iss_cdc_cut(), ids = SHA-256 of the slices, "
             "file digest = SHA-256 of the whole");
    ewhole = encode(whole, &lwhole, p);
    ok(ewhole != NULL && lwhole == HDR + (apr_size_t)ENT * whole->count,
       "builder: encodes to 60 + 36 x count bytes");

    for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        m = build(&prm, data, len, pieces[i], p);
        e = encode(m, &l, p);
        ok(e != NULL && ewhole != NULL && l == lwhole
           && memcmp(e, ewhole, l) == 0,
           "builder: pieces of %" APR_SIZE_T_FMT " bytes give the same "
           "manifest", pieces[i]);
    }

    /* Small parameters: thousands of chunks, many doublings. */
    m = build(&small, data, MIB, 777, p);
    ok(m != NULL && m->count > 2000, "builder: 1 MiB at 64/256/1024: %u "
       "chunks", m ? m->count : 0);
    if (m != NULL)
        ok_check(check_manifest(m, &small, data, MIB, d, p),
                 "builder: small parameters checked against iss_cdc_cut()");
    else
        ok(0, "builder: small parameters checked against iss_cdc_cut()");

    /* Zeros: every chunk max_size, a partial one at the end. */
    memset(data, 0, len);
    m = build(&small, data, 10 * 1024 + 5, 3000, p);
    ok(m != NULL && m->count == 11 && m->entries[9].length == 1024
       && m->entries[10].length == 5 && m->entries[10].offset == 10240,
       "builder: zeros give max_size chunks and a short last one");
    if (m != NULL)
        ok_check(check_manifest(m, &small, data, 10 * 1024 + 5, d, p),
                 "builder: zeros checked against iss_cdc_cut()");
    else
        ok(0, "builder: zeros checked against iss_cdc_cut()");

    free(data);
    apr_pool_destroy(p);
}

static void test_empty(apr_pool_t *pool)
{
    iss_cdc_params_t prm = ISS_CDC_PARAMS_DEFAULT;
    iss_manifest_limits_t lim = { 10, 100, NULL };
    iss_manifest_builder_t *b;
    iss_manifest_t *m = NULL, *m2 = NULL;
    unsigned char *e;
    apr_size_t l;

    ok(iss_manifest_builder_create(&b, &prm, pool) == APR_SUCCESS
       && iss_manifest_builder_feed(b, NULL, 0) == APR_SUCCESS
       && iss_manifest_builder_finish(b, &m) == APR_SUCCESS && m != NULL,
       "empty: builder fed nothing finishes");
    if (m == NULL)
        return;
    ok(m->count == 0 && m->file_size == 0 && m->entries == NULL,
       "empty: count 0, size 0, no entries");
    is_str(testdata_hex(m->file_sha256, SHA_LEN, pool), EMPTY_SHA256,
           "empty: file digest is the SHA-256 of nothing");
    e = encode(m, &l, pool);
    is_int(e ? (long long)l : -1, HDR, "empty: encodes to the 60-byte header");
    ok(e != NULL && iss_manifest_parse(e, l, &lim, &m2, pool) == APR_SUCCESS
       && m2 != NULL && m2->count == 0 && m2->entries == NULL
       && m2->file_size == 0
       && memcmp(m2->file_sha256, m->file_sha256, SHA_LEN) == 0,
       "empty: parses back");
}

/* ---- the format, byte by byte ----------------------------------------- */

static void test_golden(apr_pool_t *pool)
{
    /* Written from the table in iss_manifest.h, not from the encoder. */
    static const char want[] =
        "49534d31"                  /* ISM1 */
        "00000100" "00000400" "00001000" /* 256, 1024, 4096 */
        "0000000000000203"          /* file size 515 */
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        "00000002"                  /* count */
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "00000201"                  /* 513 */
        "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100"
        "00000002";                 /* 2 */
    iss_manifest_entry_t ent[2];
    iss_manifest_t m;
    iss_manifest_limits_t lim = { 2, APR_UINT64_MAX, NULL };
    iss_manifest_t *back = NULL;
    unsigned char *e;
    apr_size_t l;
    int i;

    memset(&m, 0, sizeof(m));
    m.params.min_size = 256;
    m.params.avg_size = 1024;
    m.params.max_size = 4096;
    m.count = 2;
    m.entries = ent;
    for (i = 0; i < SHA_LEN; i++) {
        m.file_sha256[i] = (unsigned char)(0xa0 + i);
        ent[0].sha256[i] = (unsigned char)i;
        ent[1].sha256[i] = (unsigned char)(31 - i);
    }
    ent[0].length = 513;
    ent[1].length = 2;
    ent[0].offset = ent[1].offset = 999; /* ignored by encode */
    m.file_size = 515;
    e = encode(&m, &l, pool);
    is_str(e ? testdata_hex(e, l, pool) : NULL, want,
           "golden: encoding is the big-endian layout of the spec");
    ok(e != NULL && iss_manifest_parse(e, l, &lim, &back, pool) == APR_SUCCESS
       && back->entries[0].offset == 0 && back->entries[1].offset == 513
       && back->entries[0].length == 513 && back->entries[1].length == 2,
       "golden: parses, with offsets 0 and 513");
    is_int(iss_manifest_encoded_len(APR_UINT32_MAX),
           60 + 36 * APR_UINT64_C(4294967295), "encoded_len does not wrap");
    is_str(ISS_MANIFEST_MEDIA_TYPE, "application/vnd.mod-iss.manifest",
           "media type");
}

/* ---- parse: round trip and refusals ------------------------------------ */

/* Parse @a b / @a l with @a lim; 1 if the code is @a want and *out is NULL
 * on failure (it is set to a non-NULL sentinel before the call). */
static int parse_is(const unsigned char *b, apr_size_t l,
                    const iss_manifest_limits_t *lim, apr_status_t want,
                    const char *name, apr_pool_t *p)
{
    iss_manifest_t sentinel, *out = &sentinel;
    apr_status_t rv = iss_manifest_parse(b, l, lim, &out, p);
    int r;

    if (want == APR_SUCCESS)
        r = ok(rv == APR_SUCCESS && out != NULL && out != &sentinel,
               "%s", name);
    else
        r = ok(rv == want && out == NULL, "%s", name);
    if (!r)
        diag("  got %d (%s), out %s; expected %d", (int)rv,
             iss_manifest_error_text(rv) ? iss_manifest_error_text(rv) : "-",
             out == NULL ? "NULL" : out == &sentinel ? "untouched" : "set",
             (int)want);
    return r;
}

static unsigned char *copy_of(const unsigned char *b, apr_size_t l, apr_pool_t *p)
{
    return apr_pmemdup(p, b, l + 1); /* + 1: room for a trailing byte */
}

static void test_parse(apr_pool_t *pool)
{
    iss_cdc_params_t prm = { 64, 256, 1024 };
    iss_manifest_limits_t lim = { 1000, APR_UINT64_C(1) << 40, NULL };
    iss_manifest_limits_t tight;
    unsigned char *data = testdata_random(7, 8192);
    iss_manifest_t *m, *back = NULL;
    unsigned char *good, *b, *re;
    apr_size_t len, rlen, cut;
    apr_uint32_t count, i;
    int all, bad_at;
    apr_status_t rv;

    m = build(&prm, data, 5000, 5000, pool);
    good = encode(m, &len, pool);
    free(data);
    ok(good != NULL && m->count >= 5, "parse: a small manifest (%u chunks)",
       m ? m->count : 0);
    if (good == NULL)
        return;
    count = m->count;

    /* Round trip. */
    rv = iss_manifest_parse(good, len, &lim, &back, pool);
    ok(rv == APR_SUCCESS && back != NULL && back->count == m->count
       && back->file_size == m->file_size
       && memcmp(back->file_sha256, m->file_sha256, SHA_LEN) == 0
       && memcmp(&back->params, &m->params, sizeof(m->params)) == 0,
       "round trip: header fields");
    all = back != NULL;
    for (i = 0; all && i < count; i++)
        all = memcmp(back->entries[i].sha256, m->entries[i].sha256, SHA_LEN)
                  == 0
              && back->entries[i].length == m->entries[i].length
              && back->entries[i].offset == m->entries[i].offset;
    ok(all, "round trip: entries, offsets included");
    re = back ? encode(back, &rlen, pool) : NULL;
    ok(re != NULL && rlen == len && memcmp(re, good, len) == 0,
       "round trip: re-encodes byte-identically");
    {
        unsigned char *copy = copy_of(good, len, pool);

        back = NULL;
        iss_manifest_parse(copy, len, &lim, &back, pool);
        memset(copy, 0xee, len);
        ok(back != NULL && memcmp(back->file_sha256, m->file_sha256, SHA_LEN)
                               == 0
           && back->entries[0].length == m->entries[0].length,
           "round trip: the result does not point into the input");
    }

    /* Magic. */
    for (i = 0; i < 4; i++) {
        b = copy_of(good, len, pool);
        b[i] ^= 0x20;
        parse_is(b, len, &lim, ISS_MANIFEST_EHEADER,
                 apr_psprintf(pool, "magic byte %u changed: EHEADER", i),
                 pool);
    }
    parse_is(NULL, 0, &lim, ISS_MANIFEST_EHEADER, "empty input: EHEADER",
             pool);

    /* Cut at every offset. */
    bad_at = -1;
    for (cut = 0; cut < len && bad_at < 0; cut++) {
        iss_manifest_t sentinel, *out = &sentinel;

        b = malloc(cut ? cut : 1); /* exact size, so ASan sees overreads */
        memcpy(b, good, cut);
        rv = iss_manifest_parse(b, cut, &lim, &out, pool);
        free(b);
        if (rv != (cut < HDR ? ISS_MANIFEST_EHEADER : ISS_MANIFEST_ELENGTH)
            || out != NULL)
            bad_at = (int)cut;
    }
    ok(bad_at < 0, "cut at each of the %" APR_SIZE_T_FMT " offsets: EHEADER "
       "before 60, ELENGTH after", len);
    if (bad_at >= 0)
        diag("  wrong result for a cut at %d", bad_at);
    parse_is(apr_pmemdup(pool, good, len), len, &lim, APR_SUCCESS,
             "the full length parses", pool);

    /* Trailing byte, count +/- 1. */
    b = copy_of(good, len, pool);
    b[len] = 0;
    parse_is(b, len + 1, &lim, ISS_MANIFEST_ELENGTH,
             "one trailing byte: ELENGTH", pool);
    b = copy_of(good, len, pool);
    put32(b + 56, count + 1);
    parse_is(b, len, &lim, ISS_MANIFEST_ELENGTH, "count + 1: ELENGTH", pool);
    b = copy_of(good, len, pool);
    put32(b + 56, count - 1);
    parse_is(b, len, &lim, ISS_MANIFEST_ELENGTH, "count - 1: ELENGTH", pool);

    /* Huge count: refused before any allocation (an allocation of
     * 2^32 x 48 bytes would abort or be caught by ASan). */
    b = copy_of(good, len, pool);
    put32(b + 56, APR_UINT32_MAX);
    parse_is(b, len, &lim, ISS_MANIFEST_ECOUNT,
             "count 2^32-1 above max_entries: ECOUNT", pool);
    tight = lim;
    tight.max_entries = APR_UINT32_MAX;
    parse_is(b, len, &tight, ISS_MANIFEST_ELENGTH,
             "count 2^32-1 with no entry limit: ELENGTH", pool);
    tight = lim;
    tight.max_entries = count - 1;
    parse_is(good, len, &tight, ISS_MANIFEST_ECOUNT,
             "count = max_entries + 1: ECOUNT", pool);
    tight.max_entries = count;
    parse_is(good, len, &tight, APR_SUCCESS, "count = max_entries: parses",
             pool);

    /* Chunk lengths. */
    for (i = 0; i < count; i += count - 1) {
        b = copy_of(good, len, pool);
        put32(b + HDR + (apr_size_t)i * ENT + SHA_LEN, 0);
        parse_is(b, len, &lim, ISS_MANIFEST_ECHUNK,
                 apr_psprintf(pool, "entry %u of length 0: ECHUNK", i), pool);
        if (count == 1)
            break;
    }
    b = copy_of(good, len, pool);
    put32(b + HDR + 2 * ENT + SHA_LEN, prm.max_size + 1);
    parse_is(b, len, &lim, ISS_MANIFEST_ECHUNK,
             "a length of max_size + 1: ECHUNK", pool);
    b = copy_of(good, len, pool);
    put32(b + HDR + 2 * ENT + SHA_LEN, APR_UINT32_MAX);
    parse_is(b, len, &lim, ISS_MANIFEST_ECHUNK,
             "a length of 2^32-1: ECHUNK", pool);
    b = copy_of(good, len, pool);
    put32(b + HDR + 2 * ENT + SHA_LEN, prm.max_size);
    put64(b + 16, m->file_size - m->entries[2].length + prm.max_size);
    parse_is(b, len, &lim, APR_SUCCESS,
             "a length of exactly max_size (size adjusted): parses", pool);

    /* Sum. */
    b = copy_of(good, len, pool);
    put64(b + 16, m->file_size + 1);
    parse_is(b, len, &lim, ISS_MANIFEST_ESUM, "file size + 1: ESUM", pool);
    b = copy_of(good, len, pool);
    put64(b + 16, m->file_size - 1);
    parse_is(b, len, &lim, ISS_MANIFEST_ESUM, "file size - 1: ESUM", pool);
    b = copy_of(good, len, pool);
    put32(b + HDR + SHA_LEN, m->entries[0].length - 1);
    parse_is(b, len, &lim, ISS_MANIFEST_ESUM, "first length - 1: ESUM", pool);
    b = copy_of(good, len, pool);
    put32(b + HDR + (apr_size_t)(count - 1) * ENT + SHA_LEN,
          m->entries[count - 1].length + 1);
    parse_is(b, len, &lim, ISS_MANIFEST_ESUM, "last length + 1: ESUM", pool);
    b = copy_of(good, len, pool);
    put32(b + 56, 0);
    parse_is(b, HDR, &lim, ISS_MANIFEST_ESUM,
             "count 0 with a non-zero size: ESUM", pool);

    /* Parameters. */
    {
        static const apr_uint32_t bad[][3] = {
            { 64, 300, 1024 },      /* avg not a power of two */
            { 256, 256, 1024 },     /* min = avg */
            { 32, 256, 1024 },      /* min below 64 */
            { 64, 256, 511 },       /* max < 2 x avg */
            { 64, 128, 1024 },      /* avg below 256 */
            { 64, 256, 0 },
            { 0, 0, 0 },
            { 64, 1u << 25, 1u << 27 }, /* avg, max too large */
        };

        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            b = copy_of(good, len, pool);
            put32(b + 4, bad[i][0]);
            put32(b + 8, bad[i][1]);
            put32(b + 12, bad[i][2]);
            parse_is(b, len, &lim, ISS_MANIFEST_EPARAMS,
                     apr_psprintf(pool, "parameters %u/%u/%u: EPARAMS",
                                  bad[i][0], bad[i][1], bad[i][2]), pool);
        }
    }
    {
        iss_cdc_params_t store = ISS_CDC_PARAMS_DEFAULT;

        tight = lim;
        tight.params = &store;
        parse_is(good, len, &tight, ISS_MANIFEST_EMISMATCH,
                 "parameters other than the required ones: EMISMATCH", pool);
        tight.params = &prm;
        parse_is(good, len, &tight, APR_SUCCESS,
                 "the required parameters: parses", pool);
    }

    /* File size limit. */
    tight = lim;
    tight.max_file_size = m->file_size - 1;
    parse_is(good, len, &tight, ISS_MANIFEST_ETOOBIG,
             "file size = max_file_size + 1: ETOOBIG", pool);
    tight.max_file_size = m->file_size;
    parse_is(good, len, &tight, APR_SUCCESS, "file size = max_file_size: "
             "parses", pool);
    b = copy_of(good, len, pool);
    put64(b + 16, APR_UINT64_MAX);
    parse_is(b, len, &lim, ISS_MANIFEST_ETOOBIG, "file size 2^64-1: ETOOBIG",
             pool);

    /* Argument errors. */
    ok(iss_manifest_parse(good, len, &lim, NULL, pool) == APR_EINVAL,
       "parse: NULL out: APR_EINVAL");
    parse_is(good, len, NULL, APR_EINVAL, "parse: NULL limits: APR_EINVAL",
             pool);

    /* Messages. */
    {
        apr_status_t c;
        int good_text = 1;

        for (c = ISS_MANIFEST_EHEADER; c <= ISS_MANIFEST_EDEDIT; c++)
            if (iss_manifest_error_text(c) == NULL
                || (c > ISS_MANIFEST_EHEADER
                    && strcmp(iss_manifest_error_text(c),
                              iss_manifest_error_text(c - 1)) == 0))
                good_text = 0;
        ok(good_text, "error_text: a message for each code");
        ok(iss_manifest_error_text(APR_SUCCESS) == NULL
           && iss_manifest_error_text(APR_EINVAL) == NULL
           && iss_manifest_error_text(ISS_MANIFEST_EDEDIT + 1) == NULL,
           "error_text: NULL for other codes");
    }
}

/* ---- random mutations -------------------------------------------------- */

static void test_mutations(apr_pool_t *pool)
{
    iss_cdc_params_t prm = { 64, 256, 1024 };
    iss_manifest_limits_t lim = { 100000, APR_UINT64_MAX, NULL };
    unsigned char *data = testdata_random(99, 6000);
    iss_manifest_t *m;
    unsigned char *good;
    apr_size_t len;
    apr_uint64_t seed = 12345;
    int iter, parsed = 0, refused = 0, wrong = 0, codes_seen = 0;
    apr_pool_t *it;

    m = build(&prm, data, 6000, 6000, pool);
    good = encode(m, &len, pool);
    free(data);
    if (good == NULL) {
        ok(0, "mutations: a manifest to mutate");
        return;
    }
    apr_pool_create(&it, pool);
    for (iter = 0; iter < 2000; iter++) {
        apr_uint64_t r = testdata_splitmix64(&seed);
        apr_size_t l = len, k, nmut = 1 + (r & 3);
        unsigned char *b;
        iss_manifest_t *out = NULL;
        apr_status_t rv;

        apr_pool_clear(it);
        switch ((r >> 2) & 7) {
        case 0: /* truncate */
            l = (apr_size_t)((r >> 8) % len);
            break;
        case 1: /* extend */
            l = len + 1 + (apr_size_t)((r >> 8) % 40);
            break;
        default:
            break;
        }
        b = malloc(l ? l : 1); /* exact size, so ASan sees overreads */
        memcpy(b, good, l < len ? l : len);
        for (k = len; k < l; k++)
            b[k] = (unsigned char)testdata_splitmix64(&seed);
        for (k = 0; k < nmut && l > 0; k++) {
            apr_uint64_t s = testdata_splitmix64(&seed);
            apr_size_t pos;

            /* Half of the mutations hit the header or a length field. */
            if ((s & 1) && l >= HDR) {
                apr_size_t nent = (l - HDR) / ENT;

                if ((s & 2) || nent == 0)
                    pos = (apr_size_t)((s >> 8) % HDR);
                else
                    pos = HDR + (apr_size_t)((s >> 8) % nent) * ENT + SHA_LEN
                          + (apr_size_t)((s >> 40) % 4);
            }
            else
                pos = (apr_size_t)((s >> 8) % l);
            b[pos] = (s >> 4) & 1 ? (unsigned char)(s >> 48)
                                  : (unsigned char)(b[pos] ^ (1u << ((s >> 5) & 7)));
        }
        rv = iss_manifest_parse(b, l, &lim, &out, it);
        if (rv == APR_SUCCESS) {
            unsigned char *re;
            apr_size_t rl;

            parsed++;
            if (out == NULL
                || iss_manifest_encode(out, &re, &rl, it) != APR_SUCCESS
                || rl != l || memcmp(re, b, l) != 0) {
                if (wrong++ == 0)
                    diag("  iteration %d: parsed but does not re-encode to "
                         "the input", iter);
            }
        }
        else {
            refused++;
            if (iss_manifest_error_text(rv) == NULL || out != NULL) {
                if (wrong++ == 0)
                    diag("  iteration %d: code %d, out %p", iter, (int)rv,
                         (void *)out);
            }
            else
                codes_seen |= 1 << (rv - ISS_MANIFEST_EHEADER);
        }
        free(b);
    }
    apr_pool_destroy(it);
    diag("mutations: %d parsed, %d refused, codes seen 0x%x", parsed, refused,
         (unsigned)codes_seen);
    is_int(wrong, 0, "mutations: 2000 mutants either parse and re-encode "
           "byte-identically or fail with a manifest code");
    ok(parsed > 100 && refused > 100, "mutations: both outcomes occur");
    /* EHEADER, ELENGTH, ECHUNK, ESUM, EPARAMS at least. */
    ok((codes_seen & 0x3b) == 0x3b, "mutations: the format codes all occur "
       "(0x%x)", (unsigned)codes_seen);
}

/* ---- encode and builder misuse ---------------------------------------- */

static void test_misuse(apr_pool_t *pool)
{
    iss_cdc_params_t prm = { 64, 256, 1024 }, bad = { 64, 300, 1024 };
    iss_manifest_entry_t ent[2];
    iss_manifest_t m;
    iss_manifest_builder_t *b;
    iss_manifest_t *out = NULL;
    unsigned char *e;
    apr_size_t l;

    memset(&m, 0, sizeof(m));
    memset(ent, 0, sizeof(ent));
    m.params = prm;
    m.count = 2;
    m.entries = ent;
    ent[0].length = 100;
    ent[1].length = 50;
    m.file_size = 150;
    ok(iss_manifest_encode(&m, &e, &l, pool) == APR_SUCCESS && l == 60 + 72,
       "encode: a valid hand-made manifest");
    m.file_size = 151;
    is_int(iss_manifest_encode(&m, &e, &l, pool), ISS_MANIFEST_ESUM,
           "encode: lengths not adding up: ESUM");
    m.file_size = 150;
    ent[1].length = 0;
    is_int(iss_manifest_encode(&m, &e, &l, pool), ISS_MANIFEST_ECHUNK,
           "encode: a zero length: ECHUNK");
    ent[1].length = 50;
    m.params = bad;
    is_int(iss_manifest_encode(&m, &e, &l, pool), ISS_MANIFEST_EPARAMS,
           "encode: bad parameters: EPARAMS");
    m.params = prm;
    m.entries = NULL;
    is_int(iss_manifest_encode(&m, &e, &l, pool), APR_EINVAL,
           "encode: count without entries: APR_EINVAL");

    is_int(iss_manifest_builder_create(&b, &bad, pool), APR_EINVAL,
           "builder: bad parameters: APR_EINVAL");
    is_int(iss_manifest_builder_create(&b, NULL, pool), APR_EINVAL,
           "builder: NULL parameters: APR_EINVAL");
    ok(iss_manifest_builder_create(&b, &prm, pool) == APR_SUCCESS
       && iss_manifest_builder_feed(b, "abc", 3) == APR_SUCCESS
       && iss_manifest_builder_finish(b, &out) == APR_SUCCESS
       && out->count == 1 && out->entries[0].length == 3
       && memcmp(out->entries[0].sha256, out->file_sha256, SHA_LEN) == 0,
       "builder: 3 bytes: one chunk whose id is the file digest");
    is_int(iss_manifest_builder_feed(b, "x", 1), APR_EINVAL,
           "builder: feed after finish: APR_EINVAL");
    out = (iss_manifest_t *)&m;
    ok(iss_manifest_builder_finish(b, &out) == APR_EINVAL && out == NULL,
       "builder: second finish: APR_EINVAL, *m NULL");
}

/* ---- the min_size rule -------------------------------------------------- */

static void test_short(apr_pool_t *pool)
{
    iss_cdc_params_t prm = { 64, 256, 1024 };
    iss_manifest_limits_t lim = { 1000, APR_UINT64_MAX, NULL };
    unsigned char *data = testdata_random(11, 4096);
    iss_manifest_t *m, hand;
    iss_manifest_entry_t ent[3];
    unsigned char *good, *b, *e;
    apr_size_t len, l;
    apr_uint32_t count, i, all_long = 1;

    m = build(&prm, data, 3000, 3000, pool);
    free(data);
    good = encode(m, &len, pool);
    if (good == NULL || m->count < 4) {
        ok(0, "short: a manifest of at least 4 chunks");
        return;
    }
    count = m->count;
    for (i = 0; i + 1 < count; i++)
        if (m->entries[i].length <= prm.min_size)
            all_long = 0;
    ok(all_long, "short: the chunker cuts no chunk but the last at or "
       "below min_size");

    /* Entry 1 at min_size - 1, entry 2 longer by as much: the sum holds. */
    b = copy_of(good, len, pool);
    put32(b + HDR + 1 * ENT + SHA_LEN, prm.min_size - 1);
    put32(b + HDR + 2 * ENT + SHA_LEN, m->entries[2].length
          + (m->entries[1].length - (prm.min_size - 1)));
    parse_is(b, len, &lim, m->entries[2].length + m->entries[1].length
                           - prm.min_size + 1 <= prm.max_size
                           ? ISS_MANIFEST_ESHORT : ISS_MANIFEST_ECHUNK,
             "parse: a middle entry of min_size - 1: ESHORT", pool);
    b = copy_of(good, len, pool);
    put32(b + HDR + 1 * ENT + SHA_LEN, prm.min_size);
    put32(b + HDR + 2 * ENT + SHA_LEN, m->entries[2].length
          + (m->entries[1].length - prm.min_size));
    parse_is(b, len, &lim, APR_SUCCESS,
             "parse: a middle entry of exactly min_size: parses", pool);
    b = copy_of(good, len, pool);
    put32(b + HDR + SHA_LEN, 1);
    put64(b + 16, m->file_size - m->entries[0].length + 1);
    parse_is(b, len, &lim, ISS_MANIFEST_ESHORT,
             "parse: a first entry of 1 byte: ESHORT", pool);
    b = copy_of(good, len, pool);
    put32(b + HDR + (apr_size_t)(count - 1) * ENT + SHA_LEN, 1);
    put64(b + 16, m->file_size - m->entries[count - 1].length + 1);
    parse_is(b, len, &lim, APR_SUCCESS,
             "parse: a last entry of 1 byte: parses", pool);
    /* ESHORT comes after ECHUNK for the same entry, before the sum. */
    b = copy_of(good, len, pool);
    put32(b + HDR + SHA_LEN, 1);
    parse_is(b, len, &lim, ISS_MANIFEST_ESHORT,
             "parse: a short entry and a wrong sum: ESHORT first", pool);
    b = copy_of(good, len, pool);
    put32(b + HDR + SHA_LEN, 1);
    put32(b + HDR + 2 * ENT + SHA_LEN, 0);
    parse_is(b, len, &lim, ISS_MANIFEST_ESHORT,
             "parse: entries in order: the short entry 0 before a zero "
             "entry 2", pool);

    /* Encode refuses what parse refuses. */
    memset(&hand, 0, sizeof(hand));
    memset(ent, 0, sizeof(ent));
    hand.params = prm;
    hand.entries = ent;
    hand.count = 3;
    ent[0].length = 64;
    ent[1].length = 63;
    ent[2].length = 5;
    hand.file_size = 132;
    is_int(iss_manifest_encode(&hand, &e, &l, pool), ISS_MANIFEST_ESHORT,
           "encode: a middle entry of min_size - 1: ESHORT");
    ent[1].length = 64;
    hand.file_size = 133;
    is_int(iss_manifest_encode(&hand, &e, &l, pool), APR_SUCCESS,
           "encode: entries of min_size and a short last one");
    hand.count = 1;
    ent[0].length = 1;
    hand.file_size = 1;
    ok(iss_manifest_encode(&hand, &e, &l, pool) == APR_SUCCESS
       && parse_is(e, l, &lim, APR_SUCCESS, "parse: one entry of 1 byte "
                   "(it is the last)", pool),
       "encode: one entry of 1 byte");
}

/* ---- delta helpers ---------------------------------------------------- */

#define DHDR  ISS_MANIFEST_DELTA_HEADER_LEN
#define DEDIT ISS_MANIFEST_DELTA_EDIT_LEN

static apr_uint32_t get32(const unsigned char *p)
{
    return ((apr_uint32_t)p[0] << 24) | ((apr_uint32_t)p[1] << 16)
           | ((apr_uint32_t)p[2] << 8) | (apr_uint32_t)p[3];
}

/* Parse a delta's structure as the spec states it (test side, trusting
 * it): the edit count, the total of the new_counts, 0 if malformed. */
static int delta_shape(const unsigned char *d, apr_size_t len,
                       apr_uint32_t *nedits, apr_uint64_t *nnew)
{
    apr_size_t off = DHDR;
    apr_uint32_t k, n;

    if (len < DHDR)
        return 0;
    n = get32(d + 76);
    *nedits = n;
    *nnew = 0;
    for (k = 0; k < n; k++) {
        apr_uint32_t nc;

        if (len - off < DEDIT)
            return 0;
        nc = get32(d + off + 8);
        off += DEDIT;
        if ((len - off) / ENT < nc)
            return 0;
        off += (apr_size_t)nc * ENT;
        *nnew += nc;
    }
    return off == len;
}

/* A manifest with room for @a cap entries (filled by the caller). */
static iss_manifest_t *new_manifest(const iss_cdc_params_t *prm,
                                    apr_uint32_t cap, apr_pool_t *p)
{
    iss_manifest_t *m = apr_pcalloc(p, sizeof(*m));

    m->params = *prm;
    m->entries = apr_pcalloc(p, (cap ? cap : 1) * sizeof(*m->entries));
    return m;
}

/* A random entry: a fresh id (or, if @a idpool > 0, one of @a idpool ids
 * with a length tied to it), length in [min_size, max_size]. */
static void rand_entry(iss_manifest_entry_t *e, apr_uint64_t *seed,
                       const iss_cdc_params_t *prm, unsigned idpool)
{
    apr_uint64_t r = testdata_splitmix64(seed);
    int k;

    if (idpool > 0) {
        apr_uint64_t s = r % idpool;

        for (k = 0; k < SHA_LEN; k += 8) {
            apr_uint64_t w = testdata_splitmix64(&s);

            memcpy(e->sha256 + k, &w, 8);
        }
        e->length = prm->min_size
                    + (apr_uint32_t)((r % idpool) * 37
                                     % (prm->max_size - prm->min_size + 1));
        return;
    }
    for (k = 0; k < SHA_LEN; k += 8) {
        apr_uint64_t w = testdata_splitmix64(seed);

        memcpy(e->sha256 + k, &w, 8);
    }
    e->length = prm->min_size
                + (apr_uint32_t)(r % (prm->max_size - prm->min_size + 1));
}

/* Make @a m valid: middle entries below min_size raised to it, offsets,
 * file size = sum, a random file SHA-256.  Returns how many entries it
 * raised (a base's short last entry that an edit put in the middle). */
static apr_uint32_t finish_manifest(iss_manifest_t *m, apr_uint64_t *seed)
{
    apr_uint64_t sum = 0;
    apr_uint32_t i, raised = 0;
    int k;

    for (i = 0; i < m->count; i++) {
        if (i + 1 < m->count && m->entries[i].length < m->params.min_size) {
            m->entries[i].length = m->params.min_size;
            raised++;
        }
        m->entries[i].offset = sum;
        sum += m->entries[i].length;
    }
    m->file_size = sum;
    for (k = 0; k < SHA_LEN; k += 8) {
        apr_uint64_t w = testdata_splitmix64(seed);

        memcpy(m->file_sha256 + k, &w, 8);
    }
    if (m->count == 0)
        m->entries = NULL;
    return raised;
}

static iss_manifest_t *rand_manifest(apr_uint64_t *seed,
                                     const iss_cdc_params_t *prm,
                                     apr_uint32_t count, unsigned idpool,
                                     apr_pool_t *p)
{
    iss_manifest_t *m = new_manifest(prm, count, p);
    apr_uint32_t i;

    for (i = 0; i < count; i++)
        rand_entry(&m->entries[i], seed, prm, idpool);
    if (count > 0 && (testdata_splitmix64(seed) & 1))
        m->entries[count - 1].length
            = 1 + (apr_uint32_t)(testdata_splitmix64(seed) % prm->min_size);
    m->count = count;
    finish_manifest(m, seed);
    return m;
}

/* NULL if @a a and @a b are the same manifest (offsets included), else
 * what differs first. */
static const char *manifest_diff(const iss_manifest_t *a,
                                 const iss_manifest_t *b, apr_pool_t *p)
{
    apr_uint32_t i;

    if (a == NULL || b == NULL)
        return "no manifest";
    if (memcmp(&a->params, &b->params, sizeof(a->params)) != 0)
        return "parameters";
    if (a->file_size != b->file_size)
        return "file size";
    if (memcmp(a->file_sha256, b->file_sha256, SHA_LEN) != 0)
        return "file SHA-256";
    if (a->count != b->count)
        return apr_psprintf(p, "count %u, expected %u", a->count, b->count);
    for (i = 0; i < a->count; i++)
        if (memcmp(a->entries[i].sha256, b->entries[i].sha256, SHA_LEN) != 0
            || a->entries[i].length != b->entries[i].length
            || a->entries[i].offset != b->entries[i].offset)
            return apr_psprintf(p, "entry %u", i);
    return NULL;
}

/* Apply @a d to @a base with @a lim; 1 if the code is @a want (and *out
 * NULL on failure, set on success). */
static int apply_is(const iss_manifest_t *base, const unsigned char *d,
                    apr_size_t l, const iss_manifest_limits_t *lim,
                    apr_status_t want, const char *name, apr_pool_t *p)
{
    iss_manifest_t sentinel, *out = &sentinel;
    apr_status_t rv = iss_manifest_delta_apply(base, d, l, lim, &out, p);
    int r;

    if (want == APR_SUCCESS)
        r = ok(rv == APR_SUCCESS && out != NULL && out != &sentinel,
               "%s", name);
    else
        r = ok(rv == want && out == NULL, "%s", name);
    if (!r)
        diag("  got %d (%s), out %s; expected %d (%s)", (int)rv,
             iss_manifest_error_text(rv) ? iss_manifest_error_text(rv) : "-",
             out == NULL ? "NULL" : out == &sentinel ? "untouched" : "set",
             (int)want, iss_manifest_error_text(want)
                        ? iss_manifest_error_text(want) : "-");
    return r;
}

/* make then apply; NULL if it gives @a nm back, else why not. */
static const char *round_trip(const iss_manifest_t *base,
                              const iss_manifest_t *nm,
                              const iss_manifest_limits_t *lim,
                              unsigned char **d, apr_size_t *dl, apr_pool_t *p)
{
    iss_manifest_t *out = NULL;
    apr_status_t rv;

    rv = iss_manifest_delta_make(base, nm, d, dl, p);
    if (rv != APR_SUCCESS)
        return apr_psprintf(p, "make: %d", (int)rv);
    rv = iss_manifest_delta_apply(base, *d, *dl, lim, &out, p);
    if (rv != APR_SUCCESS)
        return apr_psprintf(p, "apply: %s", iss_manifest_error_text(rv)
                            ? iss_manifest_error_text(rv) : "other error");
    return manifest_diff(out, nm, p);
}

/* ---- delta: the format, byte by byte ---------------------------------- */

static void test_delta_golden(apr_pool_t *pool)
{
    /* Written from the table in iss_manifest.h: base A B C, new A X Y C
     * (B replaced by X Y): one edit, old_start 1, old_count 1. */
    static const char want[] =
        "49534431"                  /* ISD1 */
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        "0000000000000326"          /* new size 806 */
        "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
        "00000001"                  /* one edit */
        "00000001" "00000001" "00000002"
        "5858585858585858585858585858585858585858585858585858585858585858"
        "00000100"                  /* X, 256 */
        "5959595959595959595959595959595959595959595959595959595959595959"
        "00000080";                 /* Y, 128 */
    iss_cdc_params_t prm = { 64, 256, 1024 };
    iss_manifest_limits_t lim = { 100, APR_UINT64_MAX, NULL };
    iss_manifest_t *base = new_manifest(&prm, 3, pool);
    iss_manifest_t *nm = new_manifest(&prm, 4, pool);
    iss_manifest_t *out = NULL;
    unsigned char *d;
    apr_size_t l;
    int i;

    base->count = 3;
    nm->count = 4;
    for (i = 0; i < SHA_LEN; i++) {
        base->file_sha256[i] = (unsigned char)(0xa0 + i);
        nm->file_sha256[i] = (unsigned char)(0xc0 + i);
    }
    memset(base->entries[0].sha256, 'A', SHA_LEN);
    memset(base->entries[1].sha256, 'B', SHA_LEN);
    memset(base->entries[2].sha256, 'C', SHA_LEN);
    base->entries[0].length = 300;
    base->entries[1].length = 200;
    base->entries[2].length = 122;
    base->file_size = 622;
    nm->entries[0] = base->entries[0];
    memset(nm->entries[1].sha256, 'X', SHA_LEN);
    memset(nm->entries[2].sha256, 'Y', SHA_LEN);
    nm->entries[1].length = 256;
    nm->entries[2].length = 128;
    nm->entries[3] = base->entries[2];
    nm->file_size = 806;
    nm->entries[0].offset = 0;
    nm->entries[1].offset = 300;
    nm->entries[2].offset = 556;
    nm->entries[3].offset = 684;

    ok(iss_manifest_delta_make(base, nm, &d, &l, pool) == APR_SUCCESS,
       "delta golden: make");
    is_str(testdata_hex(d, l, pool), want,
           "delta golden: the big-endian layout of the spec");
    ok(iss_manifest_delta_apply(base, d, l, &lim, &out, pool) == APR_SUCCESS
       && manifest_diff(out, nm, pool) == NULL,
       "delta golden: applies to the new manifest, offsets included");
    is_str(ISS_MANIFEST_DELTA_MEDIA_TYPE,
           "application/vnd.mod-iss.manifest-delta", "delta media type");
}

/* ---- delta: round trips ----------------------------------------------- */

/* Apply @a nedits random local edits (insert, delete or replace of 1..4
 * entries; fresh ids or from @a idpool) to @a base; the first at index 0
 * if @a at_start, the last at the end if @a at_end; the edits are at
 * least @a gap unchanged entries apart.  *fresh = the entries inserted
 * (or changed: a short last entry that is no longer last grows). */
static iss_manifest_t *edit_manifest(const iss_manifest_t *base,
                                     apr_uint64_t *seed, int nedits,
                                     int at_start, int at_end,
                                     apr_uint32_t gap, unsigned idpool,
                                     apr_uint32_t *fresh, apr_pool_t *p)
{
    const iss_cdc_params_t *prm = &base->params;
    iss_manifest_t *m = new_manifest(prm, base->count + 4 * nedits + 1, p);
    apr_uint32_t *pos = apr_pcalloc(p, (nedits + 1) * sizeof(*pos));
    apr_uint32_t i = 0, k;
    int e;

    *fresh = 0;
    /* Sorted positions, at least gap + 4 apart (a delete takes <= 4). */
    for (e = 0; e < nedits; e++) {
        apr_uint32_t lo = e == 0 ? 0 : pos[e - 1] + 4 + gap;
        apr_uint32_t room = base->count > lo ? base->count - lo : 0;

        pos[e] = lo + (room ? (apr_uint32_t)(testdata_splitmix64(seed)
                                             % (room / (nedits - e) + 1))
                            : 0);
    }
    if (at_start && nedits > 0)
        pos[0] = 0;
    if (at_end && nedits > 0 && pos[nedits - 1] < base->count)
        pos[nedits - 1] = base->count;
    for (e = 0; e < nedits; e++) {
        apr_uint32_t kind = (apr_uint32_t)(testdata_splitmix64(seed) % 3);
        apr_uint32_t n = 1 + (apr_uint32_t)(testdata_splitmix64(seed) % 4);
        apr_uint32_t del = 0, ins = 0;

        if (pos[e] < i || pos[e] > base->count)
            break;
        while (i < pos[e])
            m->entries[m->count++] = base->entries[i++];
        if (kind != 0) /* delete or replace */
            del = n < base->count - i ? n : base->count - i;
        if (kind != 1 || del == 0) /* insert or replace */
            ins = n;
        i += del;
        for (k = 0; k < ins; k++)
            rand_entry(&m->entries[m->count++], seed, prm, idpool);
        *fresh += ins;
    }
    while (i < base->count)
        m->entries[m->count++] = base->entries[i++];
    *fresh += finish_manifest(m, seed);
    return m;
}

static void test_delta_round_trips(apr_pool_t *pool)
{
    iss_cdc_params_t prm = { 64, 256, 1024 };
    iss_manifest_limits_t lim = { 100000, APR_UINT64_MAX, NULL };
    apr_uint64_t seed = 777;
    int iter, bad = 0, bad_size = 0, bad_rep = 0, bad_one = 0;
    const char *why;
    unsigned char *d;
    apr_size_t dl;
    apr_pool_t *it;

    apr_pool_create(&it, pool);

    /* Empty delta. */
    {
        iss_manifest_t *base = rand_manifest(&seed, &prm, 50, 0, it);
        apr_uint32_t ne;
        apr_uint64_t nn;

        why = round_trip(base, base, &lim, &d, &dl, it);
        ok(why == NULL && dl == DHDR && delta_shape(d, dl, &ne, &nn)
           && ne == 0,
           "delta: a manifest against itself: 80 bytes, no edit, applies");
        if (why)
            diag("  %s", why);
    }
    /* From and to empty manifests. */
    {
        iss_manifest_t *empty = rand_manifest(&seed, &prm, 0, 0, it);
        iss_manifest_t *full = rand_manifest(&seed, &prm, 20, 0, it);

        ok_check(round_trip(empty, full, &lim, &d, &dl, it),
                 "delta: from an empty manifest");
        ok_check(round_trip(full, empty, &lim, &d, &dl, it),
                 "delta: to an empty manifest");
        ok_check(round_trip(empty, empty, &lim, &d, &dl, it),
                 "delta: empty to empty");
    }

    /* One local edit, unique ids, at the start, in the middle, at the end:
     * exactly one edit holding exactly the inserted entries. */
    for (iter = 0; iter < 300; iter++) {
        iss_manifest_t *base = rand_manifest(&seed, &prm,
                                             20 + (apr_uint32_t)(iter % 7) * 30,
                                             0, it);
        apr_uint32_t fresh, ne;
        apr_uint64_t nn;
        iss_manifest_t *nm = edit_manifest(base, &seed, 1, iter % 3 == 0,
                                           iter % 3 == 1, 0, 0, &fresh, it);

        why = round_trip(base, nm, &lim, &d, &dl, it);
        if (why != NULL) {
            if (bad++ == 0)
                diag("  one edit, iteration %d: %s", iter, why);
        }
        else if (!delta_shape(d, dl, &ne, &nn)
                 || ne != (manifest_diff(base, nm, it) ? 1u : 0u)
                 || nn != fresh
                 || dl != DHDR + (ne ? DEDIT : 0) + (apr_size_t)ENT * fresh) {
            if (bad_one++ == 0)
                diag("  one edit, iteration %d: %u edits, %" APR_UINT64_T_FMT
                     " new entries (%u inserted), %" APR_SIZE_T_FMT " bytes",
                     iter, ne, nn, fresh, dl);
        }
        apr_pool_clear(it);
    }
    is_int(bad, 0, "delta: 300 single local edits (start, middle, end) "
           "round-trip");
    is_int(bad_one, 0, "delta: a single local edit gives one edit holding "
           "only the inserted entries (80 + 12 + 36 x inserted bytes)");

    /* k separate edits, unique ids: k edits; with gap 0 (edits may touch
     * after the random draw) at most k. */
    bad = 0;
    for (iter = 0; iter < 300; iter++) {
        int k = 2 + iter % 6;
        apr_uint32_t gap = iter % 2 ? 1 : 0;
        iss_manifest_t *base = rand_manifest(&seed, &prm, 200, 0, it);
        apr_uint32_t fresh, ne;
        apr_uint64_t nn;
        iss_manifest_t *nm = edit_manifest(base, &seed, k, iter % 4 == 0,
                                           iter % 5 == 0, gap, 0, &fresh, it);

        why = round_trip(base, nm, &lim, &d, &dl, it);
        if (why != NULL) {
            if (bad++ == 0)
                diag("  %d edits, iteration %d: %s", k, iter, why);
        }
        else if (!delta_shape(d, dl, &ne, &nn) || nn != fresh
                 || (gap ? ne != (apr_uint32_t)k : ne > (apr_uint32_t)k)) {
            if (bad_size++ == 0)
                diag("  %d edits (gap %u), iteration %d: %u edits, %"
                     APR_UINT64_T_FMT " new entries (%u inserted)", k, gap,
                     iter, ne, nn, fresh);
        }
        apr_pool_clear(it);
    }
    is_int(bad, 0, "delta: 300 manifests with 2..7 edits round-trip");
    is_int(bad_size, 0, "delta: k separate edits give k edits (at most k "
           "when they may touch) and only the inserted entries");

    /* Repeated ids: drawn from 1, 2 or 5 ids (runs of zeros and the like);
     * round trips whatever the size. */
    for (iter = 0; iter < 300; iter++) {
        static const unsigned pools[] = { 1, 2, 5 };
        unsigned idpool = pools[iter % 3];
        iss_manifest_t *base = rand_manifest(&seed, &prm,
                                             (apr_uint32_t)(iter % 60),
                                             idpool, it);
        apr_uint32_t fresh;
        iss_manifest_t *nm = edit_manifest(base, &seed, 1 + iter % 4,
                                           iter % 2, iter % 3 == 0, 0,
                                           iter % 4 ? idpool : 0, &fresh, it);

        why = round_trip(base, nm, &lim, &d, &dl, it);
        if (why == NULL)
            why = round_trip(nm, base, &lim, &d, &dl, it);
        if (why != NULL && bad_rep++ == 0)
            diag("  repeated ids, iteration %d: %s", iter, why);
        apr_pool_clear(it);
    }
    is_int(bad_rep, 0, "delta: 300 manifests of repeated ids round-trip "
           "both ways");

    /* Unrelated manifests, and reordered blocks. */
    bad = 0;
    for (iter = 0; iter < 100; iter++) {
        iss_manifest_t *a = rand_manifest(&seed, &prm,
                                          (apr_uint32_t)(iter * 3 % 97), 0, it);
        iss_manifest_t *b = rand_manifest(&seed, &prm,
                                          (apr_uint32_t)(iter * 7 % 89),
                                          iter % 2 ? 3 : 0, it);
        iss_manifest_t *r = new_manifest(&prm, a->count, it);
        apr_uint32_t cut = a->count ? (apr_uint32_t)(iter % a->count) : 0, i;

        /* r = a rotated: its tail first. */
        for (i = 0; i < a->count; i++)
            r->entries[r->count++] = a->entries[(cut + i) % a->count];
        finish_manifest(r, &seed);
        if ((why = round_trip(a, b, &lim, &d, &dl, it)) != NULL
            || (why = round_trip(a, r, &lim, &d, &dl, it)) != NULL
            || (why = round_trip(r, a, &lim, &d, &dl, it)) != NULL) {
            if (bad++ == 0)
                diag("  unrelated/rotated, iteration %d: %s", iter, why);
        }
        apr_pool_clear(it);
    }
    is_int(bad, 0, "delta: 100 unrelated and rotated pairs round-trip");

    apr_pool_destroy(it);
}

/* Real data: a file, the same file with bytes inserted, deleted or
 * overwritten in one place (or several): the delta's edits hold a few
 * entries, not the list. */
static void test_delta_files(apr_pool_t *pool)
{
    iss_cdc_params_t prm = { 256, 1024, 4096 };
    iss_manifest_limits_t lim = { 100000, APR_UINT64_MAX, &prm };
    const apr_size_t len = 2 * MIB;
    unsigned char *data = testdata_random(5, len);
    unsigned char *other = malloc(len + 4096);
    iss_manifest_t *base, *nm;
    unsigned char *d;
    apr_size_t dl, nl;
    apr_uint32_t ne;
    apr_uint64_t nn;
    const char *why;
    int i;

    if (other == NULL)
        abort();
    base = build(&prm, data, len, MIB, pool);

    /* 100 bytes inserted at 1 MiB. */
    memcpy(other, data, MIB);
    memset(other + MIB, 'x', 100);
    memcpy(other + MIB + 100, data + MIB, len - MIB);
    nl = len + 100;
    nm = build(&prm, other, nl, MIB, pool);
    why = round_trip(base, nm, &lim, &d, &dl, pool);
    ok_check(why, "delta of files: 100 bytes inserted in the middle");
    ok(why == NULL && delta_shape(d, dl, &ne, &nn) && ne == 1 && nn <= 3,
       "delta of files: one edit of at most 3 entries (%" APR_SIZE_T_FMT
       " bytes; the manifest has %u entries, %" APR_SIZE_T_FMT " bytes)",
       dl, nm ? nm->count : 0,
       (apr_size_t)iss_manifest_encoded_len(nm ? nm->count : 0));

    /* Deleted at the start, overwritten at the end. */
    nm = build(&prm, data + 10, len - 10, MIB, pool);
    why = round_trip(base, nm, &lim, &d, &dl, pool);
    ok(why == NULL && delta_shape(d, dl, &ne, &nn) && ne == 1 && nn <= 3,
       "delta of files: 10 bytes deleted at the start: one edit of at most "
       "3 entries");
    memcpy(other, data, len);
    memset(other + len - 50, 0, 50);
    nm = build(&prm, other, len, MIB, pool);
    why = round_trip(base, nm, &lim, &d, &dl, pool);
    ok(why == NULL && delta_shape(d, dl, &ne, &nn) && ne == 1 && nn <= 3,
       "delta of files: the last 50 bytes overwritten: one edit of at most "
       "3 entries");

    /* Four changes far apart. */
    memcpy(other, data, len);
    for (i = 0; i < 4; i++)
        other[(apr_size_t)i * (len / 4) + 1234] ^= 1;
    nm = build(&prm, other, len, MIB, pool);
    why = round_trip(base, nm, &lim, &d, &dl, pool);
    if (why != NULL || !delta_shape(d, dl, &ne, &nn))
        ne = 0, nn = 0;
    ok(ne == 4 && nn <= 12, "delta of files: 4 bytes changed far apart: 4 "
       "edits (%u, %" APR_UINT64_T_FMT " entries)", ne, nn);

    /* Zeros: all chunks alike; an insert keeps it small anyway. */
    memset(data, 0, len);
    base = build(&prm, data, len, MIB, pool);
    memset(other, 0, len + 100);
    other[MIB] = 1;
    nm = build(&prm, other, len + 100, MIB, pool);
    why = round_trip(base, nm, &lim, &d, &dl, pool);
    ok_check(why, "delta of files: zeros with one byte set round-trip");
    if (why != NULL || !delta_shape(d, dl, &ne, &nn))
        nn = APR_UINT64_MAX;
    ok(nn <= 4, "delta of files: zeros with one byte set: a few entries (%"
       APR_UINT64_T_FMT ")", nn);
    free(data);
    free(other);
}

/* ---- delta: refusals --------------------------------------------------- */

static void put_edit(unsigned char *p, apr_uint32_t os, apr_uint32_t oc,
                     apr_uint32_t nc)
{
    put32(p, os);
    put32(p + 4, oc);
    put32(p + 8, nc);
}

static void test_delta_refusals(apr_pool_t *pool)
{
    iss_cdc_params_t prm = { 64, 256, 1024 };
    iss_manifest_limits_t lim = { 1000, APR_UINT64_MAX, NULL }, tight;
    apr_uint64_t seed = 4242;
    iss_manifest_t *base, *nm, *other;
    unsigned char *good, *b;
    apr_size_t len, cut;
    apr_uint32_t ne, fresh, i;
    apr_uint64_t nn;
    apr_status_t rv;
    int bad_at;

    /* base: 30 entries, all at least min_size; new: three edits. */
    base = rand_manifest(&seed, &prm, 30, 0, pool);
    base->entries[29].length = 500;
    finish_manifest(base, &seed);
    for (i = 0; i < 100; i++) {
        nm = edit_manifest(base, &seed, 3, 0, 0, 2, 0, &fresh, pool);
        if (iss_manifest_delta_make(base, nm, &good, &len, pool)
                == APR_SUCCESS
            && delta_shape(good, len, &ne, &nn) && ne == 3 && nn >= 2)
            break;
    }
    if (!ok(i < 100, "refusals: a delta of 3 edits and 2 entries or more"))
        return;
    diag("refusals: %" APR_UINT64_T_FMT " entries, %" APR_SIZE_T_FMT
         " bytes", nn, len);
    apply_is(base, good, len, &lim, APR_SUCCESS, "refusals: it applies",
             pool);

    /* Cut at every offset: EDHEADER below 80 bytes, EDLENGTH after.  No
     * shorter prefix can be valid: the edit count and each new_count fix
     * the length, and every cut leaves fewer bytes than they require. */
    bad_at = -1;
    for (cut = 0; cut < len && bad_at < 0; cut++) {
        iss_manifest_t sentinel, *out = &sentinel;

        b = malloc(cut ? cut : 1); /* exact size, so ASan sees overreads */
        memcpy(b, good, cut);
        rv = iss_manifest_delta_apply(base, b, cut, &lim, &out, pool);
        free(b);
        if (rv != (cut < DHDR ? ISS_MANIFEST_EDHEADER : ISS_MANIFEST_EDLENGTH)
            || out != NULL)
            bad_at = (int)cut;
    }
    ok(bad_at < 0, "delta cut at each of the %" APR_SIZE_T_FMT " offsets: "
       "EDHEADER before 80, EDLENGTH after", len);
    if (bad_at >= 0)
        diag("  wrong result for a cut at %d", bad_at);
    apply_is(base, NULL, 0, &lim, ISS_MANIFEST_EDHEADER,
             "delta: empty input: EDHEADER", pool);

    /* Trailing bytes. */
    b = copy_of(good, len, pool);
    b[len] = 0;
    apply_is(base, b, len + 1, &lim, ISS_MANIFEST_EDLENGTH,
             "delta: one trailing byte: EDLENGTH", pool);
    b = apr_pcalloc(pool, len + ENT);
    memcpy(b, good, len);
    apply_is(base, b, len + ENT, &lim, ISS_MANIFEST_EDLENGTH,
             "delta: one trailing entry: EDLENGTH", pool);

    /* Magic. */
    for (i = 0; i < 4; i++) {
        b = copy_of(good, len, pool);
        b[i] ^= 0x20;
        apply_is(base, b, len, &lim, ISS_MANIFEST_EDHEADER,
                 apr_psprintf(pool, "delta: magic byte %u changed: EDHEADER",
                              i), pool);
    }
    b = copy_of(good, len, pool);
    memcpy(b, "ISM1", 4);
    apply_is(base, b, len, &lim, ISS_MANIFEST_EDHEADER,
             "delta: a manifest's magic: EDHEADER", pool);

    /* Base. */
    for (i = 0; i < SHA_LEN; i += 31) {
        b = copy_of(good, len, pool);
        b[4 + i] ^= 1;
        apply_is(base, b, len, &lim, ISS_MANIFEST_EBASE,
                 apr_psprintf(pool, "delta: base SHA-256 byte %u changed: "
                              "EBASE", i), pool);
    }
    other = rand_manifest(&seed, &prm, 30, 0, pool);
    apply_is(other, good, len, &lim, ISS_MANIFEST_EBASE,
             "delta: applied to another base: EBASE", pool);

    /* Edit counts. */
    b = copy_of(good, len, pool);
    put32(b + 76, ne + 1);
    apply_is(base, b, len, &lim, ISS_MANIFEST_EDLENGTH,
             "delta: edit count + 1: EDLENGTH", pool);
    b = copy_of(good, len, pool);
    put32(b + 76, ne - 1);
    apply_is(base, b, len, &lim, ISS_MANIFEST_EDLENGTH,
             "delta: edit count - 1: EDLENGTH (trailing edit)", pool);
    b = copy_of(good, len, pool);
    put32(b + 76, APR_UINT32_MAX);
    apply_is(base, b, len, &lim, ISS_MANIFEST_EDLENGTH,
             "delta: edit count 2^32-1: EDLENGTH", pool);
    tight = lim;
    tight.max_entries = APR_UINT32_MAX;
    b = copy_of(good, len, pool);
    put32(b + DHDR + 8, APR_UINT32_MAX);
    apply_is(base, b, len, &tight, ISS_MANIFEST_EDLENGTH,
             "delta: new_count 2^32-1 (no entry limit): EDLENGTH", pool);
    {
        apr_size_t last = DHDR; /* the last edit */

        for (i = 0; i + 1 < ne; i++)
            last += DEDIT + (apr_size_t)ENT * get32(good + last + 8);
        b = copy_of(good, len, pool);
        put32(b + last + 8, get32(good + last + 8) + 1);
        apply_is(base, b, len, &lim, ISS_MANIFEST_EDLENGTH,
                 "delta: the last edit's new_count + 1: EDLENGTH", pool);
        b = copy_of(good, len, pool);
        put32(b + last + 8, get32(good + last + 8) - 1);
        apply_is(base, b, len, &lim, ISS_MANIFEST_EDLENGTH,
                 "delta: the last edit's new_count - 1: EDLENGTH", pool);
    }

    /* Edit ranges, on hand-made deltas of two edits against base. */
    {
        unsigned char h[DHDR + 2 * DEDIT];
        apr_uint64_t size_minus = 0;

        memcpy(h, good, DHDR);
        put32(h + 76, 2);
        /* Two deletes; the header's size must match to reach ESUM only. */
#define TWO(os1, oc1, os2, oc2) \
        (put_edit(h + DHDR, os1, oc1, 0), put_edit(h + DHDR + DEDIT, os2, oc2, 0))
        TWO(3, 2, 10, 1);
        for (i = 0; i < 30; i++)
            if (!((i >= 3 && i < 5) || i == 10))
                size_minus += base->entries[i].length;
        put64(h + 36, size_minus);
        apply_is(base, h, sizeof(h), &lim, APR_SUCCESS,
                 "delta: two deletes (3+2, 10+1): applies", pool);
        TWO(3, 2, 5, 1);
        put64(h + 36, size_minus - base->entries[5].length
                      + base->entries[10].length);
        apply_is(base, h, sizeof(h), &lim, APR_SUCCESS,
                 "delta: touching edits (3+2, 5+1): apply", pool);
        TWO(3, 2, 4, 1);
        apply_is(base, h, sizeof(h), &lim, ISS_MANIFEST_EDEDIT,
                 "delta: overlapping edits (3+2, 4+1): EDEDIT", pool);
        TWO(10, 1, 3, 2);
        apply_is(base, h, sizeof(h), &lim, ISS_MANIFEST_EDEDIT,
                 "delta: edits out of order (10, 3): EDEDIT", pool);
        TWO(3, 2, 29, 2);
        apply_is(base, h, sizeof(h), &lim, ISS_MANIFEST_EDEDIT,
                 "delta: an edit past the end (29+2 of 30): EDEDIT", pool);
        TWO(3, 2, 30, 1);
        apply_is(base, h, sizeof(h), &lim, ISS_MANIFEST_EDEDIT,
                 "delta: an edit at the end deleting 1: EDEDIT", pool);
        TWO(3, 2, APR_UINT32_MAX, 2);
        apply_is(base, h, sizeof(h), &lim, ISS_MANIFEST_EDEDIT,
                 "delta: old_start + old_count wraps 32 bits: EDEDIT", pool);
        TWO(3, APR_UINT32_MAX, 10, 0);
        apply_is(base, h, sizeof(h), &lim, ISS_MANIFEST_EDEDIT,
                 "delta: old_count 2^32-1: EDEDIT", pool);
        TWO(3, 0, 3, 0);
        put64(h + 36, base->file_size);
        apply_is(base, h, sizeof(h), &lim, APR_SUCCESS,
                 "delta: two empty edits at one index: apply (no-ops)", pool);
        TWO(30, 0, 30, 0);
        apply_is(base, h, sizeof(h), &lim, APR_SUCCESS,
                 "delta: empty edits at the end: apply", pool);
        TWO(0, 30, 30, 0);
        put64(h + 36, 0);
        apply_is(base, h, sizeof(h), &lim, APR_SUCCESS,
                 "delta: delete everything: applies (empty file)", pool);
#undef TWO
    }

    /* Count of the result. */
    {
        apr_uint64_t want = (apr_uint64_t)nm->count;

        tight = lim;
        tight.max_entries = (apr_uint32_t)want - 1;
        apply_is(base, good, len, &tight, ISS_MANIFEST_ECOUNT,
                 "delta: result of max_entries + 1 entries: ECOUNT", pool);
        tight.max_entries = (apr_uint32_t)want;
        apply_is(base, good, len, &tight, APR_SUCCESS,
                 "delta: result of max_entries entries: applies", pool);
        /* Many inserted entries vs. a limit below the base's count: the
         * count is checked before anything is allocated or walked. */
        tight.max_entries = 5;
        apply_is(base, good, len, &tight, ISS_MANIFEST_ECOUNT,
                 "delta: max_entries below the base's count: ECOUNT", pool);
    }

    /* Sum and size limit. */
    b = copy_of(good, len, pool);
    put64(b + 36, nm->file_size + 1);
    apply_is(base, b, len, &lim, ISS_MANIFEST_ESUM,
             "delta: new size + 1: ESUM", pool);
    b = copy_of(good, len, pool);
    put64(b + 36, nm->file_size - 1);
    apply_is(base, b, len, &lim, ISS_MANIFEST_ESUM,
             "delta: new size - 1: ESUM", pool);
    tight = lim;
    tight.max_file_size = nm->file_size - 1;
    apply_is(base, good, len, &tight, ISS_MANIFEST_ETOOBIG,
             "delta: new size = max_file_size + 1: ETOOBIG", pool);
    tight.max_file_size = nm->file_size;
    apply_is(base, good, len, &tight, APR_SUCCESS,
             "delta: new size = max_file_size: applies", pool);
    tight.max_file_size = APR_UINT64_C(1) << 40;
    b = copy_of(good, len, pool);
    put64(b + 36, APR_UINT64_MAX);
    apply_is(base, b, len, &tight, ISS_MANIFEST_ETOOBIG,
             "delta: new size 2^64-1: ETOOBIG", pool);
    apply_is(base, b, len, &lim, ISS_MANIFEST_ESUM,
             "delta: new size 2^64-1 with no size limit: ESUM", pool);

    /* Parameters: the base's must be the required ones. */
    {
        iss_cdc_params_t store = ISS_CDC_PARAMS_DEFAULT;

        tight = lim;
        tight.params = &store;
        apply_is(base, good, len, &tight, ISS_MANIFEST_EMISMATCH,
                 "delta: base parameters other than the required: "
                 "EMISMATCH", pool);
        tight.params = &prm;
        apply_is(base, good, len, &tight, APR_SUCCESS,
                 "delta: the required parameters: applies", pool);
    }

    /* Entries: length 0, above max, short in the middle. */
    {
        apr_size_t e0 = DHDR + DEDIT + SHA_LEN; /* first new entry's length */
        apr_uint32_t l0 = get32(good + e0);

        b = copy_of(good, len, pool);
        put32(b + e0, 0);
        put64(b + 36, nm->file_size - l0);
        apply_is(base, b, len, &lim, ISS_MANIFEST_ECHUNK,
                 "delta: a new entry of length 0: ECHUNK", pool);
        b = copy_of(good, len, pool);
        put32(b + e0, prm.max_size + 1);
        put64(b + 36, nm->file_size - l0 + prm.max_size + 1);
        apply_is(base, b, len, &lim, ISS_MANIFEST_ECHUNK,
                 "delta: a new entry of max_size + 1: ECHUNK", pool);
        b = copy_of(good, len, pool);
        put32(b + e0, prm.min_size - 1);
        put64(b + 36, nm->file_size - l0 + prm.min_size - 1);
        apply_is(base, b, len, &lim, ISS_MANIFEST_ESHORT,
                 "delta: a new middle entry of min_size - 1: ESHORT", pool);
        b = copy_of(good, len, pool);
        put32(b + e0, prm.min_size);
        put64(b + 36, nm->file_size - l0 + prm.min_size);
        apply_is(base, b, len, &lim, APR_SUCCESS,
                 "delta: a new middle entry of min_size: applies", pool);
    }

    /* The min_size rule across the base: the base's short last entry must
     * not end up in the middle. */
    {
        iss_manifest_t *sb = rand_manifest(&seed, &prm, 10, 0, pool);
        iss_manifest_t *sn = new_manifest(&prm, 11, pool);
        unsigned char h[DHDR + DEDIT + ENT];
        unsigned char *d;
        apr_size_t dl;

        sb->entries[9].length = 10;
        finish_manifest(sb, &seed);
        memcpy(h, "ISD1", 4);
        memcpy(h + 4, sb->file_sha256, SHA_LEN);
        put64(h + 36, sb->file_size + 100);
        memset(h + 44, 0x44, SHA_LEN);
        put32(h + 76, 1);
        put_edit(h + DHDR, 10, 0, 1);
        memset(h + DHDR + DEDIT, 0x55, SHA_LEN);
        put32(h + DHDR + DEDIT + SHA_LEN, 100);
        apply_is(sb, h, sizeof(h), &lim, ISS_MANIFEST_ESHORT,
                 "delta: appending after the base's short last entry: "
                 "ESHORT", pool);
        put_edit(h + DHDR, 9, 1, 1);
        put64(h + 36, sb->file_size - 10 + 100);
        apply_is(sb, h, sizeof(h), &lim, APR_SUCCESS,
                 "delta: replacing the short last entry: applies", pool);
        put_edit(h + DHDR, 0, 0, 1);
        put64(h + 36, sb->file_size + 100);
        apply_is(sb, h, sizeof(h), &lim, APR_SUCCESS,
                 "delta: inserting before it: applies (it stays last)", pool);

        /* make refuses an invalid new manifest, and other parameters. */
        for (i = 0; i < 10; i++)
            sn->entries[i] = sb->entries[i];
        sn->entries[10] = sb->entries[0];
        sn->count = 11;
        sn->file_size = sb->file_size + sb->entries[0].length;
        is_int(iss_manifest_delta_make(sb, sn, &d, &dl, pool),
               ISS_MANIFEST_ESHORT,
               "delta_make: a new manifest with a short middle entry: ESHORT");
        sn->entries[9].length = prm.min_size;
        is_int(iss_manifest_delta_make(sb, sn, &d, &dl, pool),
               ISS_MANIFEST_ESUM, "delta_make: lengths not adding up: ESUM");
        sn->file_size += prm.min_size - 10;
        is_int(iss_manifest_delta_make(sb, sn, &d, &dl, pool), APR_SUCCESS,
               "delta_make: fixed: makes");
        sn->params.max_size *= 2;
        is_int(iss_manifest_delta_make(sb, sn, &d, &dl, pool),
               ISS_MANIFEST_EMISMATCH,
               "delta_make: other parameters: EMISMATCH");
        is_int(iss_manifest_delta_make(sb, NULL, &d, &dl, pool), APR_EINVAL,
               "delta_make: NULL new manifest: APR_EINVAL");
        is_int(iss_manifest_delta_make(NULL, sb, &d, &dl, pool), APR_EINVAL,
               "delta_make: NULL base: APR_EINVAL");
    }

    /* Arguments. */
    ok(iss_manifest_delta_apply(base, good, len, &lim, NULL, pool)
           == APR_EINVAL, "delta_apply: NULL out: APR_EINVAL");
    apply_is(NULL, good, len, &lim, APR_EINVAL,
             "delta_apply: NULL base: APR_EINVAL", pool);
    apply_is(base, good, len, NULL, APR_EINVAL,
             "delta_apply: NULL limits: APR_EINVAL", pool);
    apply_is(base, NULL, len, &lim, APR_EINVAL,
             "delta_apply: NULL buffer with a length: APR_EINVAL", pool);
}

/* Random mutations of a valid delta: each either applies to a manifest
 * that encodes and parses back under the same limits, or fails with a
 * manifest code. */
static void test_delta_mutations(apr_pool_t *pool)
{
    iss_cdc_params_t prm = { 64, 256, 1024 };
    iss_manifest_limits_t lim = { 100000, APR_UINT64_MAX, NULL };
    apr_uint64_t seed = 99;
    iss_manifest_t *base, *nm;
    unsigned char *good;
    apr_size_t len;
    apr_uint32_t fresh;
    int iter, applied = 0, refused = 0, wrong = 0, codes_seen = 0;
    apr_pool_t *it;

    base = rand_manifest(&seed, &prm, 40, 0, pool);
    nm = edit_manifest(base, &seed, 4, 1, 1, 1, 0, &fresh, pool);
    if (iss_manifest_delta_make(base, nm, &good, &len, pool) != APR_SUCCESS) {
        ok(0, "delta mutations: a delta to mutate");
        return;
    }
    apr_pool_create(&it, pool);
    for (iter = 0; iter < 3000; iter++) {
        apr_uint64_t r = testdata_splitmix64(&seed);
        apr_size_t l = len, k, nmut = 1 + (r & 3);
        unsigned char *b;
        iss_manifest_t *out = NULL, *back = NULL;
        apr_status_t rv;

        apr_pool_clear(it);
        if (((r >> 2) & 7) == 0)
            l = (apr_size_t)((r >> 8) % len);
        else if (((r >> 2) & 7) == 1)
            l = len + 1 + (apr_size_t)((r >> 8) % 40);
        b = malloc(l ? l : 1);
        memcpy(b, good, l < len ? l : len);
        for (k = len; k < l; k++)
            b[k] = (unsigned char)testdata_splitmix64(&seed);
        for (k = 0; k < nmut && l > 0; k++) {
            apr_uint64_t s = testdata_splitmix64(&seed);
            apr_size_t pos;

            /* Mostly the header's numbers and the edits' fields. */
            pos = (apr_size_t)((s >> 8) % l);
            if ((s & 1) && l > DHDR) {
                pos = DHDR + (apr_size_t)((s >> 8) % (l - DHDR));
                if (s & 2)
                    pos = 36 + (apr_size_t)((s >> 8) % 8); /* size */
            }
            else if (pos < 36 && pos >= 4 && (s & 4) && l >= DHDR)
                pos = 76 + (pos & 3); /* the edit count */
            b[pos] = (s >> 4) & 1 ? (unsigned char)(s >> 48)
                                  : (unsigned char)(b[pos] ^ (1u << ((s >> 5) & 7)));
        }
        rv = iss_manifest_delta_apply(base, b, l, &lim, &out, it);
        if (rv == APR_SUCCESS) {
            unsigned char *re;
            apr_size_t rl;

            applied++;
            if (out == NULL
                || iss_manifest_encode(out, &re, &rl, it) != APR_SUCCESS
                || iss_manifest_parse(re, rl, &lim, &back, it) != APR_SUCCESS
                || manifest_diff(back, out, it) != NULL) {
                if (wrong++ == 0)
                    diag("  iteration %d: applied, but the result does not "
                         "encode and parse back", iter);
            }
        }
        else {
            refused++;
            if (iss_manifest_error_text(rv) == NULL || out != NULL) {
                if (wrong++ == 0)
                    diag("  iteration %d: code %d, out %p", iter, (int)rv,
                         (void *)out);
            }
            else
                codes_seen |= 1 << (rv - ISS_MANIFEST_EHEADER);
        }
        free(b);
    }
    apr_pool_destroy(it);
    diag("delta mutations: %d applied, %d refused, codes seen 0x%x", applied,
         refused, (unsigned)codes_seen);
    is_int(wrong, 0, "delta mutations: 3000 mutants either apply to a valid "
           "manifest or fail with a manifest code");
    ok(applied > 20 && refused > 1000, "delta mutations: both outcomes occur");
    /* ECHUNK, ESUM, EBASE, EDHEADER, EDLENGTH, EDEDIT at least. */
    ok((codes_seen & 0x1e18) == 0x1e18, "delta mutations: the delta codes "
       "occur (0x%x)", (unsigned)codes_seen);
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool;

    if (apr_app_initialize(&argc, &argv, NULL) != APR_SUCCESS
        || apr_pool_create(&pool, NULL) != APR_SUCCESS)
        return 1;
    test_golden(pool);
    test_empty(pool);
    test_builder(pool);
    test_of_file(pool);
    test_parse(pool);
    test_mutations(pool);
    test_misuse(pool);
    test_short(pool);
    test_delta_golden(pool);
    test_delta_round_trips(pool);
    test_delta_files(pool);
    test_delta_refusals(pool);
    test_delta_mutations(pool);
    apr_pool_destroy(pool);
    apr_terminate();
    return done_testing();
}
