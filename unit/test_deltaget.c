/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* Unit tests of iss_deltaget: the A-IM parser (RFC 3229 section
 * 10.5.3), the ETag form of ours, and the choice of a delta's base from
 * If-None-Match (order, weak and malformed members, the bound on members
 * looked at, the current version first), plus a loop of random and
 * mutated headers (meant to run under ASan). */

#include "iss_deltaget.h"
#include "tap.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

#define LEN ISS_DIGEST_SHA256_LEN

static apr_pool_t *pool;

typedef struct known_t {
    unsigned char retained[4][LEN];
    int nretained;
    int calls;
} known_t;

static int known(void *baton, const unsigned char d[LEN])
{
    known_t *k = baton;
    int i;

    k->calls++;
    for (i = 0; i < k->nretained; i++) {
        if (memcmp(k->retained[i], d, LEN) == 0) {
            return 1;
        }
    }
    return 0;
}

static void digest_of(const char *text, unsigned char out[LEN])
{
    iss_digest_t *d;

    if (iss_digest_create(&d, pool) != APR_SUCCESS) {
        abort();
    }
    iss_digest_update(d, text, strlen(text));
    iss_digest_final(d, out);
}

static const char *etag(const unsigned char d[LEN])
{
    return iss_digest_etag(d, pool);
}

static void test_aim(void)
{
    static const char *yes[] = {
        "vcdiff", "VCDIFF", "VcDiff", " vcdiff ", "gzip, vcdiff",
        "vcdiff;q=1", "vcdiff ; q = 0.5", "vcdiff;Q=0.001", "vcdiff;q=1.000",
        "vcdiff;q=0.1, gzip;q=0", ",, vcdiff ,", "identity,vcdiff;q=1.0",
        "x-unknown, vcdiff", "diffe;q=0.3,\tvcdiff", "vcdiff, vcdiff;q=0.2",
    };
    static const char *no[] = {
        "", " ", ",", "gzip", "identity", "vcdiff2", "xvcdiff", "vcdif",
        "vcdiff;q=0", "vcdiff;q=0.0", "vcdiff;q=0.000", "vcdiff, vcdiff;q=0",
        "vcdiff;q=0, vcdiff", "vcdiff;q=1.1", "vcdiff;q=2", "vcdiff;q=0.0001",
        "vcdiff;q=", "vcdiff;q", "vcdiff;", "vcdiff;level=1", "vcdiff;q=0.5;q=1",
        "vcdiff q=1", "vcdiff/1", "\"vcdiff\"", "vcdiff;q=.5", "vcdiff;q=-1",
        "vcdiff, gzip;q=x", "vcdiff, ;q=1", "vcdiff\x01", "vcdiff;q=1 x",
        "(vcdiff)", "vcdiff;q=1.01",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        ok(iss_deltaget_accepts_vcdiff(yes[i]) == 1, "A-IM '%s' accepts vcdiff",
           yes[i]);
    }
    for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        ok(iss_deltaget_accepts_vcdiff(no[i]) == 0, "A-IM '%s' does not",
           no[i]);
    }
    ok(iss_deltaget_accepts_vcdiff(NULL) == 0, "no A-IM: no");
}

static void test_etag_decode(void)
{
    unsigned char d[LEN], back[LEN];
    const char *t;
    char *bad;
    int i;

    for (i = 0; i < 50; i++) {
        digest_of(apr_psprintf(pool, "content %d", i), d);
        t = etag(d);
        memset(back, 0, sizeof(back));
        if (!ok(iss_deltaget_etag_decode(t, strlen(t), back) == 1
                && memcmp(back, d, LEN) == 0, "%s decodes to its digest", t)) {
            break;
        }
    }
    t = etag(d);
    ok(iss_deltaget_etag_decode(t, strlen(t) - 1, back) == 0, "one short: no");
    bad = apr_pstrcat(pool, "W/", t, NULL);
    ok(iss_deltaget_etag_decode(bad, strlen(bad), back) == 0, "weak: no");
    bad = apr_pstrdup(pool, t);
    bad[5] = '+';
    ok(iss_deltaget_etag_decode(bad, strlen(bad), back) == 0,
       "a base64 (not base64url) character: no");
    bad = apr_pstrdup(pool, t);
    {
        /* The 43rd character carries 2 bits beyond the digest: values
         * 1, 2, 3 ('B', 'C', 'D') set them, which is not canonical. */
        static const char odd[] = "BCD";
        int k;

        for (k = 0; k < 3; k++) {
            bad[43] = odd[k];
            ok(iss_deltaget_etag_decode(bad, strlen(bad), back) == 0,
               "stray bits in the last character ('%c'): no", odd[k]);
        }
    }
    bad = apr_pstrdup(pool, t);
    bad[0] = 'x';
    ok(iss_deltaget_etag_decode(bad, strlen(bad), back) == 0, "no quote: no");
    ok(iss_deltaget_etag_decode(NULL, 45, back) == 0, "NULL: no");
}

static void test_base(void)
{
    unsigned char cur[LEN], v1[LEN], v2[LEN], other[LEN], out[LEN];
    known_t k;
    const char *T, *V1, *V2, *O, *h;
    int i;

    digest_of("current", cur);
    digest_of("version 1", v1);
    digest_of("version 2", v2);
    digest_of("someone else's", other);
    T = etag(cur);
    V1 = etag(v1);
    V2 = etag(v2);
    O = etag(other);
    memset(&k, 0, sizeof(k));
    memcpy(k.retained[0], v1, LEN);
    memcpy(k.retained[1], v2, LEN);
    k.nretained = 2;

    memset(out, 0, sizeof(out));
    is_int(iss_deltaget_base(V1, cur, known, &k, out), ISS_DELTAGET_VERSION,
           "a retained version's ETag");
    ok(memcmp(out, v1, LEN) == 0, "... its digest");
    is_int(iss_deltaget_base(T, cur, known, &k, out), ISS_DELTAGET_CURRENT,
           "the current ETag");
    k.calls = 0;
    is_int(iss_deltaget_base(apr_pstrcat(pool, O, ", ", V2, ", ", V1, NULL),
                             cur, known, &k, out),
           ISS_DELTAGET_VERSION, "unknown, then two versions");
    ok(memcmp(out, v2, LEN) == 0, "... the first retained one wins");
    is_int(k.calls, 2, "... asked twice (unknown, then v2)");
    is_int(iss_deltaget_base(apr_pstrcat(pool, V2, ",", T, NULL), cur, known,
                             &k, out),
           ISS_DELTAGET_VERSION, "a version before the current: the version");
    k.calls = 0;
    is_int(iss_deltaget_base(apr_pstrcat(pool, T, ",", V2, NULL), cur, known,
                             &k, out),
           ISS_DELTAGET_CURRENT, "the current before a version: current");
    is_int(k.calls, 0, "... without asking");
    is_int(iss_deltaget_base(O, cur, known, &k, out), ISS_DELTAGET_NONE,
           "only an unknown ETag: none");
    is_int(iss_deltaget_base(NULL, cur, known, &k, out), ISS_DELTAGET_NONE,
           "no If-None-Match: none");
    is_int(iss_deltaget_base("*", cur, known, &k, out), ISS_DELTAGET_NONE,
           "*: none");
    is_int(iss_deltaget_base("", cur, known, &k, out), ISS_DELTAGET_NONE,
           "empty: none");
    k.calls = 0;
    is_int(iss_deltaget_base(apr_pstrcat(pool, "W/", V1, NULL), cur, known,
                             &k, out),
           ISS_DELTAGET_NONE, "a weak tag of a version: none");
    is_int(k.calls, 0, "... not asked");
    is_int(iss_deltaget_base(apr_pstrcat(pool, "W/", V1, ", ", V2, NULL), cur,
                             known, &k, out),
           ISS_DELTAGET_VERSION, "weak then strong: the strong one");
    ok(memcmp(out, v2, LEN) == 0, "... v2");
    is_int(iss_deltaget_base(apr_pstrcat(pool, "*, bogus, \"x,y\", ", V1, NULL),
                             cur, known, &k, out),
           ISS_DELTAGET_VERSION, "*, a bare word, a tag with a comma, then v1");
    is_int(iss_deltaget_base(apr_pstrcat(pool, V1, "x, ", V2, NULL), cur,
                             known, &k, out),
           ISS_DELTAGET_VERSION, "a tag with junk after it is skipped");
    ok(memcmp(out, v2, LEN) == 0, "... v2, not v1");
    is_int(iss_deltaget_base(apr_pstrcat(pool, "\"abc, ", V1, NULL), cur, known,
                             &k, out),
           ISS_DELTAGET_NONE, "an unterminated quote swallows the rest");
    h = apr_pstrdup(pool, V1);
    ((char *)h)[10] = '\x01';
    is_int(iss_deltaget_base(h, cur, known, &k, out), ISS_DELTAGET_NONE,
           "a control character in the tag: none");
    is_int(iss_deltaget_base(apr_pstrcat(pool, " \t", V1, " \t", NULL), cur,
                             known, &k, out),
           ISS_DELTAGET_VERSION, "OWS around: fine");

    /* The bound: 15 unknown members then v1 is found; 16 then v1 is not,
     * and the callback is never asked more than 16 times. */
    h = "";
    for (i = 0; i < ISS_DELTAGET_MAX_TAGS - 1; i++) {
        h = apr_pstrcat(pool, h, i % 3 == 0 ? "W/\"w\", " : "", O, ", ", NULL);
    }
    /* Members so far: 15 strong plus 5 weak = 20: too many already. */
    k.calls = 0;
    is_int(iss_deltaget_base(apr_pstrcat(pool, h, V1, NULL), cur, known, &k,
                           out),
           ISS_DELTAGET_NONE, "v1 as member 21: not looked at");
    ok(k.calls <= ISS_DELTAGET_MAX_TAGS, "asked %d times (<= %d)", k.calls,
       ISS_DELTAGET_MAX_TAGS);
    h = "";
    for (i = 0; i < ISS_DELTAGET_MAX_TAGS - 1; i++) {
        h = apr_pstrcat(pool, h, O, ", ", NULL);
    }
    is_int(iss_deltaget_base(apr_pstrcat(pool, h, V1, NULL), cur, known, &k,
                             out),
           ISS_DELTAGET_VERSION, "v1 as member 16: found");
    is_int(iss_deltaget_base(apr_pstrcat(pool, h, O, ", ", V1, NULL), cur,
                             known, &k, out),
           ISS_DELTAGET_NONE, "v1 as member 17: not looked at");
    h = "";
    for (i = 0; i < 10000; i++) {
        h = apr_pstrcat(pool, h, O, ",", NULL);
    }
    k.calls = 0;
    is_int(iss_deltaget_base(apr_pstrcat(pool, h, V1, NULL), cur, known, &k,
                             out),
           ISS_DELTAGET_NONE, "10000 unknown tags then v1: none");
    is_int(k.calls, ISS_DELTAGET_MAX_TAGS, "... asked exactly %d times",
           ISS_DELTAGET_MAX_TAGS);
    is_int(iss_deltaget_base(V1, cur, NULL, NULL, out), ISS_DELTAGET_NONE,
           "no callback: none");
}

/* Random and mutated headers: never a crash, and answers consistent. */
static void test_random(void)
{
    unsigned char cur[LEN], v1[LEN], out[LEN];
    const char *alphabet = "vcdifVCDIF;q=0.15 ,\t\"W/xgz*-_AQ\x01\x80";
    known_t k;
    char buf[200];
    int i, j, bad = 0;

    digest_of("current", cur);
    digest_of("version 1", v1);
    memset(&k, 0, sizeof(k));
    memcpy(k.retained[0], v1, LEN);
    k.nretained = 1;
    srand(42);
    for (i = 0; i < 20000; i++) {
        int n = rand() % (int)(sizeof(buf) - 1);
        iss_deltaget_base_e b;

        for (j = 0; j < n; j++) {
            buf[j] = alphabet[rand() % (int)strlen(alphabet)];
        }
        buf[n] = '\0';
        if (i % 4 == 0 && n > 50) {
            const char *t = etag(v1);

            memcpy(buf + rand() % (n - 46), t, strlen(t));
        }
        (void)iss_deltaget_accepts_vcdiff(buf);
        k.calls = 0;
        b = iss_deltaget_base(buf, cur, known, &k, out);
        if (k.calls > ISS_DELTAGET_MAX_TAGS
            || (b == ISS_DELTAGET_VERSION && memcmp(out, v1, LEN) != 0)) {
            bad++;
        }
    }
    is_int(bad, 0, "20000 random headers: bounded and consistent");
}

int main(void)
{
    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&pool, NULL);
    test_aim();
    test_etag_decode();
    test_base();
    test_random();
    return done_testing();
}
