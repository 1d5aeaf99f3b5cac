/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* Unit tests of iss_digest: SHA-256 vectors, the Repr-Digest field
 * value, the RFC 8941 Dictionary parser behind iss_digest_parse and
 * iss_digest_wanted, and a loop of random and mutated inputs (meant to
 * run under ASan) that must never crash or touch the outputs on error. */

#include "iss_digest.h"
#include "tap.h"
#include "testdata.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

#define LEN ISS_DIGEST_SHA256_LEN

static void unhex(const char *h, unsigned char *out)
{
    apr_size_t i;

    for (i = 0; h[2 * i] && h[2 * i + 1]; i++) {
        unsigned int v;

        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
}

#define SHA_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_ABC   "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define B64_ABC   "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
/* RFC 9530 section 2 / 3 examples. */
#define RFC_SHA256_B64 "d435Qo+nKZ+gLcUHn7GQtQ72hiBVAgqoLsZnZPiTGPk="
#define RFC_SHA256_HEX "778df9428fa7299fa02dc5079fb190b50ef6862055020aa82ec66764f89318f9"
#define RFC_SHA512_B64 "YMAam51Jz/jOATT6/zvHrLVgOYTGFy1d6GJiOHTohq4yP+pgk4vf2aCsyRZOtw8MjkM7iw7yZ/WkppmM44T3qg=="
/* SHA-256 of {"hello": "world"} (RFC 9530 appendix B examples). */
#define HELLO_B64 "X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="
/* SHA-256 of the 1 MiB pattern b[i] = (7i + i/251) & 0xff (Python
 * hashlib). */
#define SHA_MIB   "07f4465ef6fe98070beaf8d8d01454b5d11f6cd4ff86a139d92cd031b46ddfdc"

static void test_sha(apr_pool_t *p)
{
    iss_digest_t *d;
    unsigned char out[LEN], one[LEN];
    unsigned char *big;
    apr_size_t n = (apr_size_t)1 << 20, i, step;

    ok(iss_digest_create(&d, p) == APR_SUCCESS, "create");
    iss_digest_final(d, out);
    is_str(testdata_hex(out, LEN, p), SHA_EMPTY, "sha256(\"\")");
    iss_digest_update(d, "abc", 3);
    iss_digest_final(d, out);
    is_str(testdata_hex(out, LEN, p), SHA_ABC, "sha256(\"abc\"), context reused after final");
    iss_digest_update(d, "a", 1);
    iss_digest_update(d, NULL, 0);
    iss_digest_update(d, "bc", 2);
    iss_digest_final(d, out);
    is_str(testdata_hex(out, LEN, p), SHA_ABC, "sha256(\"abc\") in two pieces");

    big = malloc(n);
    for (i = 0; i < n; i++)
        big[i] = (unsigned char)((i * 7 + i / 251) & 0xff);
    iss_digest_update(d, big, n);
    iss_digest_final(d, one);
    is_str(testdata_hex(one, LEN, p), SHA_MIB, "1 MiB one-shot");
    for (i = 0, step = 1; i < n; i += step, step = step * 3 % 7919 + 1)
        iss_digest_update(d, big + i, i + step > n ? n - i : step);
    iss_digest_final(d, out);
    ok(memcmp(out, one, LEN) == 0, "1 MiB in uneven chunks = one-shot");
    free(big);
}

static void test_field(apr_pool_t *p)
{
    unsigned char sha[LEN], back[LEN];
    int found = -1;
    const char *f;

    unhex(SHA_ABC, sha);
    f = iss_digest_field(sha, p);
    is_str(f, "sha-256=:" B64_ABC ":", "field for \"abc\"");
    ok(iss_digest_parse(f, back, &found) == APR_SUCCESS && found == 1
       && memcmp(back, sha, LEN) == 0, "round trip");
    memset(sha, 0xff, LEN);
    f = iss_digest_field(sha, p);
    ok(iss_digest_parse(f, back, &found) == APR_SUCCESS && found == 1
       && memcmp(back, sha, LEN) == 0, "round trip of ff..ff (%s)", f);
    memset(sha, 0, LEN);
    f = iss_digest_field(sha, p);
    ok(iss_digest_parse(f, back, &found) == APR_SUCCESS && found == 1
       && memcmp(back, sha, LEN) == 0, "round trip of 00..00 (%s)", f);
}

/* Parse @a v expecting success with sha-256 = @a want_hex (NULL: none). */
static void parses(const char *v, const char *want_hex, apr_pool_t *p)
{
    unsigned char out[LEN];
    int found = -1;
    apr_status_t rv;

    memset(out, 0xa5, LEN);
    rv = iss_digest_parse(v, out, &found);
    if (want_hex)
        ok(rv == APR_SUCCESS && found == 1
           && strcmp(testdata_hex(out, LEN, p), want_hex) == 0,
           "valid, sha-256 found: '%s'", v);
    else
        ok(rv == APR_SUCCESS && found == 0, "valid, no sha-256: '%s'", v);
    if (rv != APR_SUCCESS)
        diag("  rv=%d found=%d", rv, found);
}

/* Parse @a v expecting APR_EINVAL with outputs untouched. */
static void fails(const char *v)
{
    unsigned char out[LEN], ref[LEN];
    int found = -7;
    apr_status_t rv;

    memset(out, 0x5a, LEN);
    memcpy(ref, out, LEN);
    rv = iss_digest_parse(v, out, &found);
    ok(rv == APR_EINVAL && found == -7 && memcmp(out, ref, LEN) == 0,
       "invalid: '%s'", v ? v : "(null)");
}

static void test_parse(apr_pool_t *p)
{
    static const char *const bad[] = {
        /* base64 */
        "sha-256=:" "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0" "*:",
        "sha-256=:ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0=:",   /* url-safe */
        "sha-256=:ungWv48Bz+pBQUDe Xa4iI7ADYaOWF3qctBD/YfIAFa0=:",  /* space */
        "sha-256=:ungWv48Bz+pBQUDe=Xa4iI7ADYaOWF3qctBD/YfIAFa0:",   /* '=' inside */
        "sha-256=:" B64_ABC "=:",                                   /* 2 '=' on 44 */
        "sha-256=:" B64_ABC "==:",                                  /* 3 '=' */
        "sha-256=:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0A=:",  /* 33 bytes */
        "sha-256=:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0AB:",  /* 4n+1 chars */
        "sha-256=:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFQ==:",   /* 31 bytes */
        "sha-256=::",                                               /* 0 bytes */
        "sha-256=:" RFC_SHA512_B64 ":",                             /* 64 bytes */
        "md5=:abcde:",                   /* bad base64 in another member: 4n+1 */
        "md5=:ab=:",                     /* padding but length not 4n */
        "md5=:a===:",
        /* wrong type for sha-256 */
        "sha-256=" "ungWv48Bz",                                     /* token */
        "sha-256=\"" B64_ABC "\"",                                  /* string */
        "sha-256=42",                                               /* integer */
        "sha-256=4.2",                                              /* decimal */
        "sha-256=?1",                                               /* boolean */
        "sha-256",                                                  /* bare key */
        "sha-256;a=:" B64_ABC ":",                                  /* params only */
        "sha-256=(:" B64_ABC ":)",                                  /* inner list */
        "sha-256=:" B64_ABC ":, sha-256=1",                         /* last wins */
        /* unterminated */
        "sha-256=:" B64_ABC,
        "sha-512=\"abc",
        "sha-512=\"abc\\\"",
        "sha-512=(1 2",
        "sha-512=(1 2 ",
        "sha-512=(",
        /* keys */
        "SHA-256=:" B64_ABC ":",
        "Sha-256=:" B64_ABC ":",
        "sha-256=:" B64_ABC ":, Md5=:AA==:",
        "sHa-256=:" B64_ABC ":",
        "sha-256=:" B64_ABC ":;pA=1",
        "1sha=:AA==:",
        "-a=1",
        "sha 256=1",
        "sha@256=1",
        "a=1, =2",
        /* separators and garbage */
        "sha-256=:" B64_ABC ":,",
        "sha-256=:" B64_ABC ":, ",
        "sha-256=:" B64_ABC ":,,sha-512=1",
        ",sha-256=:" B64_ABC ":",
        ",",
        "sha-256=:" B64_ABC ":x",
        "sha-256=:" B64_ABC ": x",
        "sha-256=:" B64_ABC ":;",
        "sha-256=:" B64_ABC ":;A=1",
        "sha-256=:" B64_ABC ": ;a=1",
        "sha-256=:" B64_ABC ":;a=",
        "sha-256=:" B64_ABC ": sha-512=1",
        "a=1 ; b",
        "\tsha-256=:" B64_ABC ":",          /* leading HTAB is not SP */
        "a==1",
        "a=",
        "a=)",
        "a=(1,2)",
        "a=(1)(2)",
        "a=(1 (2))",
        "a=(1)x",
        "a=(1\"x\")",                         /* no SP between items */
        "a=(1;p=2:AA==:)",
        /* bare items */
        "a=-",
        "a=--1",
        "a=1.",
        "a=1.2345",
        "a=1234567890123456",               /* 16 digits */
        "a=1234567890123.4",                /* 13 integer digits */
        "a=?2",
        "a=?",
        "a=\"x\\n\"",                        /* bad escape */
        "a=\"tab\there\"",
        "a=\"caf\xc3\xa9\"",                 /* non-ASCII */
        "a=@1659578233",                     /* RFC 9651 Date */
        "a=%\"x\"",                          /* RFC 9651 Display String */
        "a=#1",
        NULL,
    };
    apr_size_t i;

    parses("sha-256=:" B64_ABC ":", SHA_ABC, p);
    /* RFC 9530 examples. */
    parses("sha-512=:" RFC_SHA512_B64 ":", NULL, p);
    parses("sha-256=:" RFC_SHA256_B64 ":,sha-512=:" RFC_SHA512_B64 ":",
           RFC_SHA256_HEX, p);
    parses("sha-256=:" RFC_SHA256_B64 ":, sha-512=:" RFC_SHA512_B64 ":",
           RFC_SHA256_HEX, p);
    parses("sha-512=:" RFC_SHA512_B64 ":, sha-256=:" RFC_SHA256_B64 ":",
           RFC_SHA256_HEX, p);
    parses("sha-256=:" HELLO_B64 ":",
           "5f8f04f6a3a892aaabbddb6cf273894493773960d4a325b105fee46eef4304f1", p);
    /* empty field */
    parses("", NULL, p);
    parses("   ", NULL, p);
    /* whitespace variants */
    parses("  sha-256=:" B64_ABC ":", SHA_ABC, p);
    parses("sha-256=:" B64_ABC ":  ", SHA_ABC, p);
    parses("sha-256=:" B64_ABC ":\t", SHA_ABC, p);
    parses("md5=:AA==:\t,\tsha-256=:" B64_ABC ":", SHA_ABC, p);
    parses("md5=:AA==: , \t sha-256=:" B64_ABC ":", SHA_ABC, p);
    parses("md5=:AA==:,sha-256=:" B64_ABC ":", SHA_ABC, p);
    /* parameters */
    parses("sha-256=:" B64_ABC ":;a=1;b;c=\"x\";d=?0;e=tok/x:y;f=:AA==:;*g=1.5",
           SHA_ABC, p);
    parses("sha-256=:" B64_ABC ":; a=1", SHA_ABC, p);
    parses("sha-512;x=1, sha-256=:" B64_ABC ":", SHA_ABC, p);
    /* other members of any type, inner lists */
    parses("md5=(1 2.5 \"s\" tok :AA==: ?1);p=1, sha-256=:" B64_ABC ":, x=?0",
           SHA_ABC, p);
    parses("a=( 1  2 ), b=(), c=();q, sha-256=:" B64_ABC ":", SHA_ABC, p);
    parses("a=(1;x=2 b;y), sha-256=:" B64_ABC ":", SHA_ABC, p);
    parses("unixsum=-12, crc32c=\"a\\\"b\\\\c\", foo=*tok, sha-256=:" B64_ABC ":",
           SHA_ABC, p);
    parses("a=123456789012345, b=-123456789012.123, c=0.1", NULL, p);
    parses("sha-512=1, md5=tok, *x", NULL, p);
    /* duplicates: last wins */
    parses("sha-256=1, sha-256=:" B64_ABC ":", SHA_ABC, p);
    parses("sha-256=:" RFC_SHA256_B64 ":, sha-256=:" B64_ABC ":", SHA_ABC, p);
    /* base64 leniency of RFC 8941 4.2.7: missing padding, pad bits */
    parses("sha-256=:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0:", SHA_ABC, p);
    parses("sha-256=:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa1=:", SHA_ABC, p);
    parses("md5=:AAA:, x=:AA:, y=::", NULL, p);

    for (i = 0; bad[i]; i++)
        fails(bad[i]);
    fails(NULL);
    {
        /* A NUL ends the value: nothing after it is read. */
        char buf[] = "sha-256=:" B64_ABC "\0:";
        fails(buf);
    }
}

static void test_wanted(void)
{
    static const struct { const char *v; int want; } cases[] = {
        { "sha-256=1", 1 },
        { "sha-256=10", 1 },
        { "sha-512=3, sha-256=10, unixsum=0", 1 },
        { "sha-256=5;q=x", 1 },
        { "sha-256=0", 0 },
        { "sha-512=3", 0 },
        { "sha-512=3, unixsum=0", 0 },
        { "", 0 },
        { "sha-256=11", 0 },
        { "sha-256=-1", 0 },
        { "sha-256=1.0", 0 },
        { "sha-256=?1", 0 },
        { "sha-256", 0 },
        { "sha-256=\"1\"", 0 },
        { "sha-256=(1)", 0 },
        { "sha-256=1, sha-256=0", 0 },
        { "sha-256=0, sha-256=2", 1 },
        { "sha-256=1,", 0 },
        { "SHA-256=1", 0 },
        { "sha-256=1 x", 0 },
        { "sha-256=1, md5=(", 0 },
        { "sha-512=99, sha-256=2", 1 },
    };
    apr_size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        is_int(iss_digest_wanted(cases[i].v), cases[i].want, "wanted('%s')",
               cases[i].v);
    is_int(iss_digest_wanted(NULL), 0, "wanted(NULL)");
}

/* xorshift64; state lives in the caller. */
static apr_uint64_t rnd(apr_uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_fuzz(void)
{
    static const char *const seeds[] = {
        "sha-256=:" B64_ABC ":",
        "sha-512=:" RFC_SHA512_B64 ":, sha-256=:" RFC_SHA256_B64 ":",
        "md5=(1 2.5 \"s\\\"\" tok :AA==: ?1);p=1, sha-256=:" B64_ABC ":;a=b",
        "sha-512=3, sha-256=10, unixsum=0",
        "a=( 1  2 ), b=(), c=();q, *x=-1.25",
    };
    static const char alphabet[] = "azAZ09-_.*:;=,()\"\\ \t?/+#@%!~\x01\x7f\x80\xff";
    apr_uint64_t s = 0x9e3779b97f4a7c15ULL;
    int i, crashes_not = 1, untouched = 1, valid = 0, roundtrip = 1;

    for (i = 0; i < 50000; i++) {
        char tmp[512];
        apr_size_t n = 0, k, edits;
        char *buf;
        unsigned char out[LEN];
        int found = -3;
        apr_status_t rv;

        if (i % 4 == 0) {                        /* random string */
            n = rnd(&s) % 80;
            for (k = 0; k < n; k++)
                tmp[k] = (i % 8 == 0)
                             ? (char)(rnd(&s) % 255 + 1)
                             : alphabet[rnd(&s) % (sizeof(alphabet) - 1)];
        }
        else {                                   /* mutated seed */
            const char *seed = seeds[rnd(&s) % (sizeof(seeds) / sizeof(seeds[0]))];

            n = strlen(seed);
            memcpy(tmp, seed, n);
            edits = rnd(&s) % 4 + 1;
            while (edits--) {
                apr_size_t at = n ? rnd(&s) % n : 0;
                char c = alphabet[rnd(&s) % (sizeof(alphabet) - 1)];

                switch (rnd(&s) % 4) {
                case 0: if (n) tmp[at] = c; break;          /* replace */
                case 1:                                     /* delete */
                    if (n) { memmove(tmp + at, tmp + at + 1, n - at - 1); n--; }
                    break;
                case 2:                                     /* insert */
                    if (n < sizeof(tmp) - 2) {
                        memmove(tmp + at + 1, tmp + at, n - at); tmp[at] = c; n++;
                    }
                    break;
                default:                                    /* truncate */
                    n = at;
                }
            }
        }
        /* An exact-size heap copy, so ASan sees any read past the NUL. */
        buf = malloc(n + 1);
        memcpy(buf, tmp, n);
        buf[n] = '\0';
        memset(out, 0x3c, LEN);
        rv = iss_digest_parse(buf, out, &found);
        if (rv != APR_SUCCESS) {
            if (rv != APR_EINVAL || found != -3)
                untouched = 0;
            for (k = 0; k < LEN; k++)
                if (out[k] != 0x3c)
                    untouched = 0;
        }
        else {
            valid++;
            if (found != 0 && found != 1)
                crashes_not = 0;
            if (found == 1) {
                /* What was found re-serializes and parses to itself. */
                apr_pool_t *p;
                unsigned char again[LEN];
                int f2 = 0;

                apr_pool_create(&p, NULL);
                if (iss_digest_parse(iss_digest_field(out, p), again, &f2)
                        != APR_SUCCESS || f2 != 1 || memcmp(again, out, LEN))
                    roundtrip = 0;
                apr_pool_destroy(p);
            }
        }
        (void)iss_digest_wanted(buf);
        free(buf);
    }
    ok(crashes_not, "50000 random/mutated inputs: no crash, found is 0 or 1");
    ok(untouched, "on error: APR_EINVAL, outputs untouched");
    ok(roundtrip, "every sha-256 found round-trips through iss_digest_field");
    ok(valid > 100 && valid < 49000, "fuzz mix has valid and invalid inputs (%d valid)",
       valid);
}

/* ownCloud's checksums: SHA-1, MD5, Adler-32 in one pass, their text,
 * and the OC-Checksum header. */
static void test_sums(apr_pool_t *p)
{
    iss_digest_sums_ctx_t *c;
    iss_digest_sums_t s, w, none;
    unsigned char sha[ISS_DIGEST_SHA256_LEN], want[ISS_DIGEST_SHA256_LEN];
    char *big = apr_palloc(p, 100000);
    int ws, i;
    static const char *const bad[] = {
        "", "   ", "SHA1", "SHA1:", "SHA1:a9993e36", "CRC32:12345678",
        "SHA1:a9993e364706816aba3e25717850c26c9cd0d89d SHA1:a9993e364706816aba3e25717850c26c9cd0d89d",
        "SHA1:g9993e364706816aba3e25717850c26c9cd0d89d", "MD5:900150983cd24fb0d6963f7d28e17f7",
        "ADLER32:024d01270", ":abc", NULL
    };

    ok(iss_digest_sums_create(&c, ISS_SUM_SHA1 | ISS_SUM_MD5 | ISS_SUM_ADLER32, p)
       == APR_SUCCESS, "sums: create SHA-1 + MD5 + Adler-32");
    iss_digest_sums_update(c, "a", 1);
    iss_digest_sums_update(c, "bc", 2);
    iss_digest_sums_final(c, &s);
    is_int(s.have, ISS_SUM_SHA1 | ISS_SUM_MD5 | ISS_SUM_ADLER32, "sums: all three computed");
    is_str(iss_digest_sums_text(&s, p),
           "SHA1:a9993e364706816aba3e25717850c26c9cd0d89d MD5:900150983cd24fb0d6963f7d28e17f72",
           "sums of abc in pieces: SHA-1 and MD5 as ownCloud writes them (RFC 3174, RFC 1321 vectors)");
    is_int((int)s.adler32, 0x024d0127, "sums: Adler-32 of abc");

    memset(big, 'x', 100000);
    iss_digest_sums_create(&c, ISS_SUM_SHA1, p);
    for (i = 0; i < 100000; i += 999) {
        iss_digest_sums_update(c, big + i, i + 999 > 100000 ? 100000 - i : 999);
    }
    iss_digest_sums_final(c, &s);
    is_int(s.have, ISS_SUM_SHA1, "sums: only what was asked");
    is_str(iss_digest_sums_text(&s, p), "SHA1:f6ee99edde6199a3e982c46ef72bdd5cb5e41ddf",
           "sums: SHA-1 of 100000 x's fed in odd pieces");
    memset(&none, 0, sizeof(none));
    ok(iss_digest_sums_text(&none, p) == NULL, "sums: no text without SHA-1 or MD5");

    /* OC-Checksum */
    ok(iss_digest_sums_parse("SHA1:A9993E364706816ABA3E25717850C26C9CD0D89D", &w, want, &ws)
       == APR_SUCCESS && w.have == ISS_SUM_SHA1 && !ws, "OC-Checksum: SHA1 (upper case hex)");
    iss_digest_sums_create(&c, ISS_SUM_SHA1 | ISS_SUM_MD5 | ISS_SUM_ADLER32, p);
    iss_digest_sums_update(c, "abc", 3);
    iss_digest_sums_final(c, &s);
    is_int((int)iss_digest_sums_mismatch(&w, &s), 0, "OC-Checksum: the right SHA-1 matches");
    ok(iss_digest_sums_parse("md5:900150983cd24fb0d6963f7d28e17f72 adler32:024d0127", &w, want, &ws)
       == APR_SUCCESS && w.have == (ISS_SUM_MD5 | ISS_SUM_ADLER32), "OC-Checksum: md5 and adler32, any case");
    is_int((int)iss_digest_sums_mismatch(&w, &s), 0, "OC-Checksum: both match");
    w.md5[0] ^= 1;
    is_int((int)iss_digest_sums_mismatch(&w, &s), ISS_SUM_MD5, "OC-Checksum: a wrong MD5 is found");
    ok(iss_digest_sums_parse("ADLER32:024d0128", &w, want, &ws) == APR_SUCCESS
       && iss_digest_sums_mismatch(&w, &s) == ISS_SUM_ADLER32, "OC-Checksum: a wrong Adler-32 is found");
    ok(iss_digest_sums_parse("SHA256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                             &w, want, &ws) == APR_SUCCESS && ws && w.have == 0,
       "OC-Checksum: SHA256 is given back to check against the SHA-256");
    unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", sha);
    ok(memcmp(sha, want, sizeof(sha)) == 0, "OC-Checksum: ... with its bytes");
    for (i = 0; bad[i]; i++) {
        ok(iss_digest_sums_parse(bad[i], &w, want, &ws) == APR_EINVAL,
           "OC-Checksum refused: '%s'", bad[i]);
    }
}

int main(void)
{
    apr_pool_t *p;

    apr_initialize();
    apr_pool_create(&p, NULL);
    test_sha(p);
    test_field(p);
    test_parse(p);
    test_wanted();
    test_fuzz();
    test_sums(p);
    apr_pool_destroy(p);
    apr_terminate();
    return done_testing();
}
