/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* Unit tests of iss_cdc: the GEAR table and the masks against their
 * generators, test vectors (chunk lengths of a fixed pseudo-random input,
 * computed by an independent Python implementation of the rule in
 * iss_cdc.h), min/max on random, constant and periodic data, stability
 * of the boundaries under an insert, a delete and a change in 64 MiB,
 * streaming in pieces of any size against the one-shot helper, reset,
 * and the parameter checks. */

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

/* Test data: SplitMix64 from a seed, word i giving bytes 8i .. 8i+7 least
 * significant byte first (so the bytes are the same on every host). */
static void sha256(const unsigned char *b, apr_size_t n,
                   unsigned char out[SHA_LEN], apr_pool_t *p)
{
    static iss_digest_t *d;

    if (d == NULL && iss_digest_create(&d, p) != APR_SUCCESS)
        abort();
    iss_digest_update(d, b, n);
    iss_digest_final(d, out);
}

/* All chunk lengths of @a buf with iss_cdc_cut(); *n = their count. */
static apr_size_t *chunk_all(const iss_cdc_params_t *prm,
                             const unsigned char *buf, apr_size_t len,
                             apr_size_t *n)
{
    apr_size_t *lens = malloc((len / prm->min_size + 2) * sizeof(*lens));
    apr_size_t off = 0;

    *n = 0;
    while (off < len) {
        apr_size_t l = iss_cdc_cut(prm, buf + off, len - off);

        if (l == 0)
            break;
        lens[(*n)++] = l;
        off += l;
    }
    return lens;
}

/* Compare a list of lengths with the expected one; diag at the first
 * difference. */
static int same_lengths(const apr_size_t *got, apr_size_t ngot,
                        const apr_size_t *want, apr_size_t nwant,
                        const char *what)
{
    apr_size_t i;

    for (i = 0; i < ngot && i < nwant; i++)
        if (got[i] != want[i])
            break;
    if (i == ngot && i == nwant)
        return ok(1, "%s", what);
    ok(0, "%s", what);
    diag("  first difference at chunk %" APR_SIZE_T_FMT " of %"
         APR_SIZE_T_FMT " (expected %" APR_SIZE_T_FMT "): got %"
         APR_SIZE_T_FMT ", expected %" APR_SIZE_T_FMT, i, ngot, nwant,
         i < ngot ? got[i] : 0, i < nwant ? want[i] : 0);
    return 0;
}

/* ---- the table and the masks ------------------------------------------ */

/* SHA-256 of the GEAR table, each value big-endian (Python hashlib). */
#define GEAR_SHA256 \
    "5e68c61d2c948e36296f645297efd3c8a3076a1f04ef7a106b1057720a73a8c5"

static void test_gear(apr_pool_t *p)
{
    const apr_uint64_t *g = iss_cdc_gear();
    unsigned char ser[256 * 8], out[SHA_LEN];
    apr_uint64_t s = APR_UINT64_C(0x6973732d67656172);   /* "iss-gear" */
    int i, j, same = 1;

    for (i = 0; i < 256; i++)
        for (j = 0; j < 8; j++)
            ser[8 * i + j] = (unsigned char)(g[i] >> (56 - 8 * j));
    sha256(ser, sizeof(ser), out, p);
    is_str(testdata_hex(out, SHA_LEN, p), GEAR_SHA256,
           "SHA-256 of the GEAR table (big-endian)");
    for (i = 0; i < 256; i++)
        if (g[i] != testdata_splitmix64(&s)) {
            diag("  GEAR[%d] differs from SplitMix64(\"iss-gear\")", i);
            same = 0;
            break;
        }
    ok(same, "GEAR = SplitMix64 seeded with \"iss-gear\", as documented");
}

static void test_masks(void)
{
    /* bits 63 - floor(i * 48 / n), i < n (Python). */
    static const apr_uint64_t want[] = {
        APR_UINT64_C(0x8080808080800000), APR_UINT64_C(0x8204081020400000),
        APR_UINT64_C(0x8208208208200000), APR_UINT64_C(0x8420842084200000),
        APR_UINT64_C(0x8842108842100000), APR_UINT64_C(0x8884442221100000),
        APR_UINT64_C(0x8888888888880000), APR_UINT64_C(0x9112224448880000),
        APR_UINT64_C(0x9224489224480000), APR_UINT64_C(0x9248924892480000),
        APR_UINT64_C(0x9249249249240000), APR_UINT64_C(0xa492924949240000),
        APR_UINT64_C(0xa4a4a4a4a4a40000), APR_UINT64_C(0xa5294a5294a40000),
        APR_UINT64_C(0xa94a94a94a940000), APR_UINT64_C(0xaa54aa54aa540000),
        APR_UINT64_C(0xaaa554aaa5540000), APR_UINT64_C(0xaaaaaa5555540000),
        APR_UINT64_C(0xaaaaaaaaaaaa0000), APR_UINT64_C(0xd55555aaaaaa0000),
        APR_UINT64_C(0xd55aaad55aaa0000)
    };
    unsigned int n, bad = 0;

    for (n = 6; n <= 26; n++) {
        apr_uint64_t m = iss_cdc_mask(n), x;
        unsigned int ones = 0;

        for (x = m; x; x &= x - 1)
            ones++;
        if (m != want[n - 6] || ones != n) {
            diag("  mask of %u bits: %016" APR_UINT64_T_HEX_FMT, n, m);
            bad++;
        }
    }
    is_int(bad, 0, "the 21 masks (6 to 26 one-bits)");
    ok(iss_cdc_mask(5) == 0 && iss_cdc_mask(27) == 0 && iss_cdc_mask(0) == 0,
       "no mask outside 6..26 bits");
}

/* ---- test vectors ------------------------------------------------------ */

/* Chunk lengths of the first 4 MiB of testdata_random(1) with the default
 * parameters, and of its first 64 KiB with 256 / 1024 / 4096 (the last
 * length is the unterminated rest); computed by an independent Python
 * implementation of the rule as iss_cdc.h states it, not from iss_cdc.c
 * (GEAR and mask() as documented there and in iss_cdc.c):
 *
 *   def chunks(buf, mn, avg, mx):
 *       k = avg.bit_length() - 1
 *       ms, ml = mask(k + 2), mask(k - 2)
 *       res, start = [], 0
 *       while start < len(buf):
 *           h, L, cut = 0, mn, None
 *           while start + L < len(buf):
 *               b = buf[start + L]; L += 1
 *               h = ((h << 1) + GEAR[b]) & (2**64 - 1)
 *               if L == mx or h & (ms if L <= avg else ml) == 0:
 *                   cut = L; break
 *           res.append(cut if cut else len(buf) - start)
 *           start += res[-1]
 *       return res
 *
 * with buf = 4 MiB of SplitMix64(seed 1) words, each little-endian. */
static const apr_size_t vec_default[] = {
    82094, 96757, 71853, 70781, 32664, 29127, 68344, 65566, 94214, 35524,
    87350, 68184, 123524, 112963, 67636, 79430, 96466, 94679, 67791, 30652,
    111367, 80242, 39583, 77383, 95986, 73716, 66193, 102302, 66089, 50488,
    65811, 73264, 110389, 65771, 72615, 70909, 81754, 45834, 78191, 74684,
    45840, 66304, 69702, 87657, 41634, 74907, 65881, 90019, 71447, 76047,
    120814, 74759, 140105, 74732, 71178, 45108
};
static const apr_size_t vec_small[] = {
    1207, 1177, 1343, 1165, 1825, 1602, 1043, 718, 1039, 1459, 1767, 1366,
    1102, 1943, 2447, 1283, 1335, 1051, 1340, 1298, 1544, 1775, 2365, 1091,
    1041, 1322, 1412, 279, 1126, 1123, 1144, 1139, 1027, 1616, 1554, 717,
    1288, 1193, 1031, 1272, 1265, 1031, 1294, 1273, 1081, 483, 1234, 1025,
    542, 1480, 329, 1404, 526
};
/* SHA-256 of those 4 MiB (Python hashlib), to tell a broken generator
 * from a broken chunker. */
#define DATA4M_SHA256 \
    "ad6bc3def4bc89adb670062bb9b9f48cd0aa748258f31a304d1df877d46cc6fe"

static const iss_cdc_params_t small_params = { 256, 1024, 4096 };

static void test_vectors(apr_pool_t *p)
{
    iss_cdc_params_t def = ISS_CDC_PARAMS_DEFAULT;
    unsigned char *d = testdata_random(1, 4 * MIB), out[SHA_LEN];
    apr_size_t *lens, n;

    sha256(d, 4 * MIB, out, p);
    is_str(testdata_hex(out, SHA_LEN, p), DATA4M_SHA256, "test data (SplitMix64 seed 1)");

    lens = chunk_all(&def, d, 4 * MIB, &n);
    same_lengths(lens, n, vec_default,
                 sizeof(vec_default) / sizeof(vec_default[0]),
                 "vector: 4 MiB, 16K/64K/256K");
    free(lens);
    lens = chunk_all(&small_params, d, 64 * 1024, &n);
    same_lengths(lens, n, vec_small, sizeof(vec_small) / sizeof(vec_small[0]),
                 "vector: 64 KiB, 256/1024/4096");
    free(lens);
    free(d);
}

/* ---- bounds ------------------------------------------------------------ */

/* Every chunk but the last in [min_size + 1, max_size], the last in
 * [1, max_size], and they add up. */
static void check_bounds(const iss_cdc_params_t *prm, const unsigned char *b,
                         apr_size_t len, const char *what, int all_max)
{
    apr_size_t n, i, sum = 0, bad = 0, short_ = 0, long_ = 0;
    apr_size_t *lens = chunk_all(prm, b, len, &n);

    for (i = 0; i < n; i++) {
        sum += lens[i];
        if (lens[i] > prm->max_size || lens[i] == 0)
            bad++;
        if (i + 1 < n && lens[i] <= prm->min_size)
            bad++;
        if (i + 1 < n && all_max && lens[i] != prm->max_size)
            bad++;
        if (lens[i] < short_ || short_ == 0)
            short_ = lens[i];
        if (lens[i] > long_)
            long_ = lens[i];
    }
    ok(sum == len && bad == 0 && n > 0,
       "%s, %u/%u/%u: %" APR_SIZE_T_FMT " chunks from %" APR_SIZE_T_FMT
       " to %" APR_SIZE_T_FMT " bytes, %s", what, prm->min_size,
       prm->avg_size, prm->max_size, n, short_, long_,
       all_max ? "all max_size but the last" : "within min/max");
    if (all_max)
        ok(n > 0 && lens[n - 1] == (len % prm->max_size ? len % prm->max_size
                                                        : prm->max_size),
           "%s: the last chunk is the rest", what);
    free(lens);
}

static void test_bounds(void)
{
    static const iss_cdc_params_t sets[] = {
        ISS_CDC_PARAMS_DEFAULT, { 256, 1024, 4096 }, { 64, 256, 512 },
        { 1000, 4096, 8192 }, { 100000, 1u << 20, 3u << 20 }
    };
    apr_size_t len = 16 * MIB + 12345, i, j;
    unsigned char *r = testdata_random(7, len);
    unsigned char *z = calloc(1, len);
    unsigned char *pat = malloc(len);
    static const char motif[] = "iss-cdc ";

    for (i = 0; i < len; i++)
        pat[i] = (unsigned char)motif[i % 8];
    for (j = 0; j < sizeof(sets) / sizeof(sets[0]); j++) {
        check_bounds(&sets[j], r, len, "random", 0);
        check_bounds(&sets[j], z, len, "zeros", 1);
        check_bounds(&sets[j], pat, len, "8-byte pattern", 0);
    }
    /* Averages on random data: normalized chunking stays near avg. */
    {
        iss_cdc_params_t def = ISS_CDC_PARAMS_DEFAULT;
        apr_size_t n, *lens = chunk_all(&def, r, len, &n);
        apr_size_t mean = len / n;

        diag("mean chunk on 16 MiB of random data, default parameters: %"
             APR_SIZE_T_FMT " bytes (%" APR_SIZE_T_FMT " chunks)", mean, n);
        ok(mean > 60000 && mean < 90000, "mean chunk near 64 KiB (%"
           APR_SIZE_T_FMT ")", mean);
        free(lens);
    }
    free(r);
    free(z);
    free(pat);
}

/* ---- one-shot helper --------------------------------------------------- */

static void test_cut(void)
{
    iss_cdc_params_t def = ISS_CDC_PARAMS_DEFAULT;
    iss_cdc_params_t bad = { 100, 1000, 4000 };
    unsigned char *d = testdata_random(1, 4 * MIB);
    unsigned char *z = calloc(1, 2 * ISS_CDC_MAX_DEFAULT);
    apr_size_t first = vec_default[0];

    is_int(iss_cdc_cut(&def, d, 0), 0, "cut: empty buffer");
    is_int(iss_cdc_cut(&def, d, 100), 100, "cut: shorter than min_size");
    is_int(iss_cdc_cut(&def, d, first - 1), first - 1,
           "cut: the buffer ends one byte before the boundary");
    is_int(iss_cdc_cut(&def, d, first), first,
           "cut: the buffer ends at the boundary");
    is_int(iss_cdc_cut(&def, d, first + 1), first, "cut: one byte more");
    is_int(iss_cdc_cut(&def, d, 4 * MIB), first, "cut: whole buffer");
    is_int(iss_cdc_cut(&def, z, ISS_CDC_MAX_DEFAULT - 1),
           ISS_CDC_MAX_DEFAULT - 1, "cut: zeros, max_size - 1");
    is_int(iss_cdc_cut(&def, z, 2 * ISS_CDC_MAX_DEFAULT), ISS_CDC_MAX_DEFAULT,
           "cut: zeros, 2 * max_size");
    is_int(iss_cdc_cut(&bad, d, 4096), 0, "cut: invalid parameters give 0");
    is_int(iss_cdc_cut(NULL, d, 4096), 0, "cut: no parameters give 0");
    free(d);
    free(z);
}

/* ---- streaming ----------------------------------------------------------- */

/* Feed @a b in pieces (size @a piece, or pseudo-random sizes up to 200000
 * if 0) and compare the chunk lengths with @a want; also checks
 * iss_cdc_pending() at every step. */
static void stream_check(iss_cdc_t *c, const unsigned char *b,
                         apr_size_t len, apr_size_t piece,
                         const apr_size_t *want, apr_size_t nwant,
                         const char *what)
{
    apr_size_t *lens = malloc((nwant + 2) * sizeof(*lens));
    apr_size_t n = 0, off = 0, cur = 0, pend_bad = 0, over = 0;
    apr_uint64_t rs = 99;

    while (off < len) {
        apr_size_t sz = piece ? piece : 1 + testdata_splitmix64(&rs) % 200000;
        const unsigned char *q;
        int cut;

        if (sz > len - off)
            sz = len - off;
        q = b + off;
        off += sz;
        while (sz > 0) {
            apr_size_t used = iss_cdc_feed(c, q, sz, &cut);

            if (used > sz || (!cut && used != sz) || (cut && used == 0)) {
                over++;
                break;
            }
            cur += used;
            if (cut) {
                if (n <= nwant)
                    lens[n] = cur;
                n++;
                cur = 0;
            }
            if (iss_cdc_pending(c) != cur)
                pend_bad++;
            q += used;
            sz -= used;
        }
        if (over)
            break;
    }
    if (cur > 0 && n <= nwant)
        lens[n++] = cur;
    is_int(over + pend_bad, 0, "%s: feed results and pending consistent",
           what);
    same_lengths(lens, n > nwant + 1 ? nwant + 1 : n, want, nwant, what);
    iss_cdc_reset(c);
    free(lens);
}

static void test_stream(apr_pool_t *p)
{
    iss_cdc_params_t def = ISS_CDC_PARAMS_DEFAULT;
    apr_size_t len = 4 * MIB, n, ns, i;
    unsigned char *d = testdata_random(1, len), *g = testdata_random(5, 5000);
    unsigned char *z = calloc(1, 3000);
    apr_size_t *want = chunk_all(&def, d, len, &n);
    apr_size_t *wants = chunk_all(&small_params, d, len, &ns);
    static const apr_size_t pieces[] = { 1, 7, 4096, 65536 + 3, 0 };
    iss_cdc_t *c, *cs;
    int cut;

    ok(iss_cdc_create(&c, &def, p) == APR_SUCCESS
       && iss_cdc_create(&cs, &small_params, p) == APR_SUCCESS, "create");
    is_int(iss_cdc_pending(c), 0, "nothing pending at first");
    is_int(iss_cdc_feed(c, NULL, 0, &cut), 0, "feeding nothing consumes nothing");
    is_int(cut, 0, "... and does not cut");
    for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        char *what = apr_psprintf(p, "stream in %s%" APR_SIZE_T_FMT
                                  "-byte pieces", pieces[i] ? "" : "random ",
                                  pieces[i] ? pieces[i] : 200000);

        stream_check(c, d, len, pieces[i], want, n,
                     apr_pstrcat(p, what, ", default", NULL));
        stream_check(cs, d, len, pieces[i], wants, ns,
                     apr_pstrcat(p, what, ", 256/1024/4096", NULL));
    }
    /* Reset forgets a chunk in progress, even one past avg_size (zeros
     * do not cut before max_size). */
    is_int(iss_cdc_feed(c, g, 5000, &cut), 5000, "5000 bytes consumed");
    is_int(iss_cdc_feed(cs, z, 3000, &cut), 3000, "3000 zeros consumed");
    ok(iss_cdc_pending(c) == 5000 && iss_cdc_pending(cs) == 3000 && !cut,
       "chunks in progress");
    iss_cdc_reset(c);
    iss_cdc_reset(cs);
    is_int(iss_cdc_pending(c), 0, "reset: nothing pending");
    stream_check(c, d, len, 65536 + 3, want, n, "after reset, default");
    stream_check(cs, d, len, 4096, wants, ns, "after reset, 256/1024/4096");
    free(want);
    free(wants);
    free(d);
    free(g);
    free(z);
}

/* ---- stability under edits --------------------------------------------- */

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, SHA_LEN);
}

/* Chunk ids of @a b, sorted; *n = count. */
static unsigned char *chunk_ids(const iss_cdc_params_t *prm,
                                const unsigned char *b, apr_size_t len,
                                apr_size_t *n, apr_pool_t *p)
{
    apr_size_t *lens = chunk_all(prm, b, len, n), i, off = 0;
    unsigned char *ids = malloc(*n * SHA_LEN + 1);

    for (i = 0; i < *n; i++) {
        sha256(b + off, lens[i], ids + i * SHA_LEN, p);
        off += lens[i];
    }
    qsort(ids, *n, SHA_LEN, cmp_id);
    free(lens);
    return ids;
}

/* Chunks of @a nb whose content is not among the chunks of the original
 * (ids @a old, @a nold). */
static apr_size_t new_chunks(const iss_cdc_params_t *prm,
                             const unsigned char *old, apr_size_t nold,
                             const unsigned char *nb, apr_size_t len,
                             apr_size_t *total, apr_pool_t *p)
{
    apr_size_t n, i, fresh = 0;
    unsigned char *ids = chunk_ids(prm, nb, len, &n, p);

    for (i = 0; i < n; i++)
        if (!bsearch(ids + i * SHA_LEN, old, nold, SHA_LEN, cmp_id))
            fresh++;
    free(ids);
    *total = n;
    return fresh;
}

static void test_edits(apr_pool_t *p)
{
    iss_cdc_params_t def = ISS_CDC_PARAMS_DEFAULT;
    apr_size_t len = 64 * MIB, mid = len / 2 + 12345, nold, n, fresh;
    apr_size_t i, worst = 0, least = (apr_size_t)-1, sum = 0;
    apr_uint64_t rs = 3;
    unsigned char *a = testdata_random(2, len);
    unsigned char *b = malloc(len + 64);
    unsigned char *old = chunk_ids(&def, a, len, &nold, p);

    /* Insert 7 bytes in the middle. */
    memcpy(b, a, mid);
    memcpy(b + mid, "INSERT!", 7);
    memcpy(b + mid + 7, a + mid, len - mid);
    fresh = new_chunks(&def, old, nold, b, len + 7, &n, p);
    diag("insert 7 bytes at %" APR_SIZE_T_FMT ": %" APR_SIZE_T_FMT
         " new chunks of %" APR_SIZE_T_FMT " (old: %" APR_SIZE_T_FMT ")",
         mid, fresh, n, nold);
    ok(fresh >= 1 && fresh <= 3, "insert of 7 bytes: %" APR_SIZE_T_FMT
       " new chunks (1..3)", fresh);

    /* Delete 100 bytes in the middle. */
    memcpy(b, a, mid);
    memcpy(b + mid, a + mid + 100, len - mid - 100);
    fresh = new_chunks(&def, old, nold, b, len - 100, &n, p);
    diag("delete 100 bytes: %" APR_SIZE_T_FMT " new chunks of %"
         APR_SIZE_T_FMT, fresh, n);
    ok(fresh >= 1 && fresh <= 3, "delete of 100 bytes: %" APR_SIZE_T_FMT
       " new chunks (1..3)", fresh);

    /* Change one byte. */
    memcpy(b, a, len);
    b[mid] ^= 0x5a;
    fresh = new_chunks(&def, old, nold, b, len, &n, p);
    diag("change 1 byte: %" APR_SIZE_T_FMT " new chunks of %"
         APR_SIZE_T_FMT, fresh, n);
    ok(fresh >= 1 && fresh <= 3, "change of 1 byte: %" APR_SIZE_T_FMT
       " new chunks (1..3)", fresh);

    /* Inserts of 1 to 64 bytes at 8 pseudo-random places. */
    for (i = 0; i < 8; i++) {
        apr_size_t at = (apr_size_t)(testdata_splitmix64(&rs) % len);
        apr_size_t k = 1 + (apr_size_t)(testdata_splitmix64(&rs) % 64);

        memcpy(b, a, at);
        memset(b + at, 'x', k);
        memcpy(b + at + k, a + at, len - at);
        fresh = new_chunks(&def, old, nold, b, len + k, &n, p);
        sum += fresh;
        if (fresh > worst)
            worst = fresh;
        if (fresh < least)
            least = fresh;
    }
    diag("8 inserts of 1..64 bytes at random places: %" APR_SIZE_T_FMT
         " new chunks in all, %" APR_SIZE_T_FMT " to %" APR_SIZE_T_FMT
         " per insert", sum, least, worst);
    ok(least >= 1 && worst <= 3, "8 random inserts: 1..3 new chunks each");

    /* The original itself: nothing new. */
    fresh = new_chunks(&def, old, nold, a, len, &n, p);
    is_int(fresh, 0, "the same content: no new chunk");
    free(old);
    free(a);
    free(b);
}

/* ---- parameters ---------------------------------------------------------- */

static void test_params(apr_pool_t *p)
{
    static const struct {
        iss_cdc_params_t prm;
        int valid;
        const char *what;
    } cases[] = {
        { ISS_CDC_PARAMS_DEFAULT, 1, "default" },
        { { 256, 1024, 4096 }, 1, "256/1024/4096" },
        { { 64, 256, 512 }, 1, "smallest: 64/256/512" },
        { { 64, 16u << 20, 64u << 20 }, 1, "largest: 64/16M/64M" },
        { { 1023, 1024, 2048 }, 1, "min = avg - 1, max = 2 avg" },
        { { 16384, 65535, 262144 }, 0, "avg not a power of two" },
        { { 16384, 3u << 15, 262144 }, 0, "avg 96K, not a power of two" },
        { { 64, 128, 512 }, 0, "avg below 256" },
        { { 64, 32u << 20, 64u << 20 }, 0, "avg above 16 MiB" },
        { { 0, 0, 0 }, 0, "all zero" },
        { { 63, 1024, 4096 }, 0, "min below 64" },
        { { 0, 1024, 4096 }, 0, "min 0" },
        { { 1024, 1024, 4096 }, 0, "min = avg" },
        { { 2048, 1024, 4096 }, 0, "min > avg" },
        { { 256, 1024, 2047 }, 0, "max < 2 avg" },
        { { 256, 1024, 1024 }, 0, "max = avg" },
        { { 256, 1024, 512 }, 0, "max < avg" },
        { { 16384, 1u << 24, (64u << 20) + 1 }, 0, "max above 64 MiB" },
        { { 16384, 65536, 0xffffffffu }, 0, "max 4 GiB - 1" },
    };
    apr_size_t i;
    iss_cdc_t *c;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *msg = iss_cdc_params_check(&cases[i].prm);
        apr_status_t rv = iss_cdc_create(&c, &cases[i].prm, p);

        if (cases[i].valid)
            ok(msg == NULL && rv == APR_SUCCESS, "params accepted: %s",
               cases[i].what);
        else
            ok(msg != NULL && msg[0] && rv == APR_EINVAL,
               "params refused: %s (%s)", cases[i].what, msg ? msg : "NULL");
    }
    ok(iss_cdc_params_check(NULL) != NULL, "params refused: NULL");
    ok(iss_cdc_create(&c, NULL, p) == APR_EINVAL, "create refuses NULL");
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool;

    if (apr_app_initialize(&argc, &argv, NULL) != APR_SUCCESS
        || apr_pool_create(&pool, NULL) != APR_SUCCESS)
        return 1;
    test_gear(pool);
    test_masks();
    test_vectors(pool);
    test_cut();
    test_bounds();
    test_stream(pool);
    test_edits(pool);
    test_params(pool);
    apr_pool_destroy(pool);
    apr_terminate();
    return done_testing();
}
