/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* Unit tests of iss_manifest: the builder against iss_cdc_cut() and
 * iss_digest whatever the piece sizes, a golden encoding written out by
 * hand from the format in iss_manifest.h, encode/parse round trips, each
 * refusal of the parser with its exact code (on manifests made by
 * editing a good encoding), a random-mutation loop, the empty file, and
 * misuse of the API. */

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

/* Test data: SplitMix64 from a seed, word i giving bytes 8i .. 8i+7 least
 * significant byte first (the same bytes on every host). */
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

        for (c = ISS_MANIFEST_EHEADER; c <= ISS_MANIFEST_EMISMATCH; c++)
            if (iss_manifest_error_text(c) == NULL
                || (c > ISS_MANIFEST_EHEADER
                    && strcmp(iss_manifest_error_text(c),
                              iss_manifest_error_text(c - 1)) == 0))
                good_text = 0;
        ok(good_text, "error_text: a message for each code");
        ok(iss_manifest_error_text(APR_SUCCESS) == NULL
           && iss_manifest_error_text(APR_EINVAL) == NULL
           && iss_manifest_error_text(ISS_MANIFEST_EMISMATCH + 1) == NULL,
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

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool;

    if (apr_app_initialize(&argc, &argv, NULL) != APR_SUCCESS
        || apr_pool_create(&pool, NULL) != APR_SUCCESS)
        return 1;
    test_golden(pool);
    test_empty(pool);
    test_builder(pool);
    test_parse(pool);
    test_mutations(pool);
    test_misuse(pool);
    apr_pool_destroy(pool);
    apr_terminate();
    return done_testing();
}
