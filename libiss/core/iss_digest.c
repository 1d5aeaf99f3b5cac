/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* The Dictionary parser is a set of small functions, one per algorithm
 * of RFC 8941 section 4.2, that advance a cursor over [p, end).  The
 * call graph has no cycle (inner lists cannot nest), so there is no
 * recursion; each byte is looked at a bounded number of times.  Nothing
 * is stored: every member is handed to a callback as it is parsed, and
 * the callers (iss_digest_parse, iss_digest_wanted) keep the last
 * sha-256 member, which gives RFC 8941's "last value wins". */

#include "iss_digest.h"
#include "iss_bytes.h"

#include <apr_strings.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <zlib.h>

struct iss_digest_t {
    EVP_MD_CTX *ctx;
    int failed;                   /* an OpenSSL call failed */
};

/* ---- SHA-256 ------------------------------------------------------------ */

/* SHA-256 as OpenSSL 3 wants it: fetched once per process.  Given
 * EVP_sha256() instead, every EVP_DigestInit_ex() fetches the provider's
 * implementation again (a lookup under the method store's lock), which
 * cost a small PUT more than hashing its body: a PUT initialises four
 * contexts (the file's and the chunk's, each again after its final). */
static const EVP_MD *sha256_md(void)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    static EVP_MD *md;
    EVP_MD *m = __atomic_load_n(&md, __ATOMIC_ACQUIRE), *none = NULL;

    if (m != NULL)
        return m;
    if ((m = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
        return EVP_sha256();
    /* Kept for the life of the process; a thread that lost the race
     * gives its copy back. */
    if (!__atomic_compare_exchange_n(&md, &none, m, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        EVP_MD_free(m);
        m = none;
    }
    return m;
#else
    return EVP_sha256();
#endif
}

static apr_status_t iss_digest_cleanup(void *ctx)
{
    EVP_MD_CTX_free(ctx);
    return APR_SUCCESS;
}

apr_status_t iss_digest_create(iss_digest_t **d, apr_pool_t *pool)
{
    iss_digest_t *n = apr_pcalloc(pool, sizeof(*n));

    n->ctx = EVP_MD_CTX_new();
    if (!n->ctx)
        return APR_ENOMEM;
    apr_pool_cleanup_register(pool, n->ctx, iss_digest_cleanup,
                              apr_pool_cleanup_null);
    if (EVP_DigestInit_ex(n->ctx, sha256_md(), NULL) != 1)
        return APR_EGENERAL;
    *d = n;
    return APR_SUCCESS;
}

void iss_digest_update(iss_digest_t *d, const void *buf, apr_size_t len)
{
    if (len && !d->failed && EVP_DigestUpdate(d->ctx, buf, len) != 1)
        d->failed = 1;
}

void iss_digest_final(iss_digest_t *d, unsigned char out[ISS_DIGEST_SHA256_LEN])
{
    unsigned int n = 0;

    if (d->failed || EVP_DigestFinal_ex(d->ctx, out, &n) != 1
        || n != ISS_DIGEST_SHA256_LEN)
        memset(out, 0, ISS_DIGEST_SHA256_LEN);
    d->failed = EVP_DigestInit_ex(d->ctx, sha256_md(), NULL) != 1;
}

/* ---- SHA-1, MD5 and Adler-32 (ownCloud's checksums) ---------------------- */

struct iss_digest_sums_ctx_t {
    unsigned what;
    EVP_MD_CTX *sha1, *md5;
    uLong adler;
    int failed_sha1, failed_md5;
};

static apr_status_t sums_md(EVP_MD_CTX **ctx, const EVP_MD *md,
                            apr_pool_t *pool)
{
    if ((*ctx = EVP_MD_CTX_new()) == NULL)
        return APR_ENOMEM;
    apr_pool_cleanup_register(pool, *ctx, iss_digest_cleanup,
                              apr_pool_cleanup_null);
    return md && EVP_DigestInit_ex(*ctx, md, NULL) == 1 ? APR_SUCCESS
                                                       : APR_EGENERAL;
}

apr_status_t iss_digest_sums_create(iss_digest_sums_ctx_t **c, unsigned what,
                                    apr_pool_t *pool)
{
    iss_digest_sums_ctx_t *n = apr_pcalloc(pool, sizeof(*n));
    apr_status_t rv;

    n->what = what & (ISS_SUM_SHA1 | ISS_SUM_MD5 | ISS_SUM_ADLER32);
    if ((n->what & ISS_SUM_SHA1)
        && (rv = sums_md(&n->sha1, EVP_sha1(), pool)) != APR_SUCCESS)
        return rv;
    if ((n->what & ISS_SUM_MD5)
        && (rv = sums_md(&n->md5, EVP_md5(), pool)) != APR_SUCCESS)
        return rv;
    n->adler = adler32(0L, Z_NULL, 0);
    *c = n;
    return APR_SUCCESS;
}

void iss_digest_sums_update(iss_digest_sums_ctx_t *c, const void *buf,
                            apr_size_t len)
{
    if (len == 0)
        return;
    if (c->sha1 && !c->failed_sha1
        && EVP_DigestUpdate(c->sha1, buf, len) != 1)
        c->failed_sha1 = 1;
    if (c->md5 && !c->failed_md5 && EVP_DigestUpdate(c->md5, buf, len) != 1)
        c->failed_md5 = 1;
    if (c->what & ISS_SUM_ADLER32) {
        const Bytef *p = buf;

        /* zlib's length is a uInt: feed it in pieces. */
        while (len > 0) {
            uInt n = len > 0x40000000u ? 0x40000000u : (uInt)len;

            c->adler = adler32(c->adler, p, n);
            p += n;
            len -= n;
        }
    }
}

void iss_digest_sums_final(iss_digest_sums_ctx_t *c, iss_digest_sums_t *out)
{
    unsigned int n;

    memset(out, 0, sizeof(*out));
    if (c->sha1 && !c->failed_sha1
        && EVP_DigestFinal_ex(c->sha1, out->sha1, &n) == 1
        && n == ISS_DIGEST_SHA1_LEN)
        out->have |= ISS_SUM_SHA1;
    if (c->md5 && !c->failed_md5
        && EVP_DigestFinal_ex(c->md5, out->md5, &n) == 1
        && n == ISS_DIGEST_MD5_LEN)
        out->have |= ISS_SUM_MD5;
    if (c->what & ISS_SUM_ADLER32) {
        out->adler32 = (apr_uint32_t)c->adler;
        out->have |= ISS_SUM_ADLER32;
    }
}

const char *iss_digest_sums_text(const iss_digest_sums_t *s,
                                 apr_pool_t *pool)
{
    char sha1[2 * ISS_DIGEST_SHA1_LEN + 1], md5[2 * ISS_DIGEST_MD5_LEN + 1];

    if (!(s->have & (ISS_SUM_SHA1 | ISS_SUM_MD5)))
        return NULL;
    iss_hex_encode(sha1, s->sha1, ISS_DIGEST_SHA1_LEN);
    iss_hex_encode(md5, s->md5, ISS_DIGEST_MD5_LEN);
    return apr_pstrcat(pool, (s->have & ISS_SUM_SHA1) ? "SHA1:" : "",
                       (s->have & ISS_SUM_SHA1) ? sha1 : "",
                       (s->have & ISS_SUM_SHA1) && (s->have & ISS_SUM_MD5)
                           ? " " : "",
                       (s->have & ISS_SUM_MD5) ? "MD5:" : "",
                       (s->have & ISS_SUM_MD5) ? md5 : "", NULL);
}

apr_status_t iss_digest_sums_parse(const char *value, iss_digest_sums_t *want,
                                   unsigned char sha256[ISS_DIGEST_SHA256_LEN],
                                   int *want_sha256)
{
    const char *p = value;
    iss_digest_sums_t w;
    int n = 0, s256 = 0;

    memset(&w, 0, sizeof(w));
    if (value == NULL)
        return APR_EINVAL;
    for (;;) {
        const char *type, *colon, *hex;
        apr_size_t tlen, hlen;

        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        type = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        colon = memchr(type, ':', (apr_size_t)(p - type));
        if (colon == NULL)
            return APR_EINVAL;
        tlen = (apr_size_t)(colon - type);
        hex = colon + 1;
        hlen = (apr_size_t)(p - hex);
        n++;
#define TYPE_IS(t) (tlen == sizeof(t) - 1 && strncasecmp(type, t, tlen) == 0)
        if (TYPE_IS("SHA1")) {
            if ((w.have & ISS_SUM_SHA1)
                || !iss_hex_decode(w.sha1, ISS_DIGEST_SHA1_LEN, hex, hlen))
                return APR_EINVAL;
            w.have |= ISS_SUM_SHA1;
        }
        else if (TYPE_IS("MD5")) {
            if ((w.have & ISS_SUM_MD5)
                || !iss_hex_decode(w.md5, ISS_DIGEST_MD5_LEN, hex, hlen))
                return APR_EINVAL;
            w.have |= ISS_SUM_MD5;
        }
        else if (TYPE_IS("ADLER32")) {
            unsigned char b[4];

            if ((w.have & ISS_SUM_ADLER32) || !iss_hex_decode(b, 4, hex, hlen))
                return APR_EINVAL;
            w.adler32 = ((apr_uint32_t)b[0] << 24) | ((apr_uint32_t)b[1] << 16)
                        | ((apr_uint32_t)b[2] << 8) | b[3];
            w.have |= ISS_SUM_ADLER32;
        }
        else if (TYPE_IS("SHA256")) {
            if (s256 || !iss_hex_decode(sha256, ISS_DIGEST_SHA256_LEN, hex,
                                        hlen))
                return APR_EINVAL;
            s256 = 1;
        }
        else {
            return APR_EINVAL;
        }
#undef TYPE_IS
    }
    if (n == 0)
        return APR_EINVAL;
    *want = w;
    *want_sha256 = s256;
    return APR_SUCCESS;
}

unsigned iss_digest_sums_mismatch(const iss_digest_sums_t *want,
                                  const iss_digest_sums_t *got)
{
    unsigned both = want->have & got->have;

    if ((both & ISS_SUM_SHA1) && memcmp(want->sha1, got->sha1,
                                        ISS_DIGEST_SHA1_LEN))
        return ISS_SUM_SHA1;
    if ((both & ISS_SUM_MD5) && memcmp(want->md5, got->md5,
                                       ISS_DIGEST_MD5_LEN))
        return ISS_SUM_MD5;
    if ((both & ISS_SUM_ADLER32) && want->adler32 != got->adler32)
        return ISS_SUM_ADLER32;
    return 0;
}

/* ---- base64 --------------------------------------------------------------- */

static const char iss_digest_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of a base64 character, -1 if not in the standard alphabet. */
static int iss_digest_b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* The 44 characters of the padded base64 of a SHA-256 at @a o (no NUL);
 * @a url: the base64url alphabet ("-" and "_" for "+" and "/"). */
static void b64_sha256(char *o, const unsigned char sha256[ISS_DIGEST_SHA256_LEN],
                       int url)
{
    apr_size_t i;
    int k;

    for (i = 0; i + 3 <= ISS_DIGEST_SHA256_LEN; i += 3) {
        unsigned long v = ((unsigned long)sha256[i] << 16)
                          | ((unsigned long)sha256[i + 1] << 8) | sha256[i + 2];
        *o++ = iss_digest_b64[(v >> 18) & 63];
        *o++ = iss_digest_b64[(v >> 12) & 63];
        *o++ = iss_digest_b64[(v >> 6) & 63];
        *o++ = iss_digest_b64[v & 63];
    }
    /* 32 = 3 * 10 + 2: two bytes left. */
    {
        unsigned long v = ((unsigned long)sha256[i] << 16)
                          | ((unsigned long)sha256[i + 1] << 8);
        *o++ = iss_digest_b64[(v >> 18) & 63];
        *o++ = iss_digest_b64[(v >> 12) & 63];
        *o++ = iss_digest_b64[(v >> 6) & 63];
        *o++ = '=';
    }
    if (url) {
        for (k = 0, o -= 44; k < 44; k++, o++) {
            *o = *o == '+' ? '-' : *o == '/' ? '_' : *o;
        }
    }
}

const char *iss_digest_field(const unsigned char sha256[ISS_DIGEST_SHA256_LEN],
                             apr_pool_t *pool)
{
    static const char pre[] = "sha-256=:";
    /* 32 bytes -> 44 characters (one "="). */
    char *buf = apr_palloc(pool, sizeof(pre) - 1 + 44 + 2);

    memcpy(buf, pre, sizeof(pre) - 1);
    b64_sha256(buf + sizeof(pre) - 1, sha256, 0);
    buf[sizeof(pre) - 1 + 44] = ':';
    buf[sizeof(pre) - 1 + 45] = '\0';
    return buf;
}

const char *iss_digest_etag(const unsigned char sha256[ISS_DIGEST_SHA256_LEN],
                            apr_pool_t *pool)
{
    char *etag = apr_palloc(pool, 1 + 44 + 1);

    /* base64url without its padding "=": 43 characters in quotes. */
    etag[0] = '"';
    b64_sha256(etag + 1, sha256, 1);
    etag[ISS_DIGEST_ETAG_LEN - 1] = '"';
    etag[ISS_DIGEST_ETAG_LEN] = '\0';
    return etag;
}

/* Check the base64 text [s, s+len) (see iss_digest.h for the rules).
 * Returns the decoded length, or -1 if invalid.  If @a out is not NULL
 * and the decoded length is @a outlen, decodes into @a out. */
static long iss_digest_b64check(const char *s, apr_size_t len,
                                unsigned char *out, apr_size_t outlen)
{
    apr_size_t pad = 0, n, i, dlen;
    unsigned long acc = 0;
    int bits = 0;

    while (pad < len && s[len - 1 - pad] == '=')
        pad++;
    n = len - pad;
    if (pad > 2 || (pad && len % 4) || n % 4 == 1)
        return -1;
    for (i = 0; i < n; i++)
        if (iss_digest_b64val((unsigned char)s[i]) < 0)
            return -1;          /* '=' inside, or outside the alphabet */
    dlen = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (out && dlen == outlen) {
        unsigned char *o = out;

        for (i = 0; i < n; i++) {
            acc = (acc << 6) | (unsigned long)iss_digest_b64val(
                                  (unsigned char)s[i]);
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                *o++ = (unsigned char)((acc >> bits) & 0xff);
            }
        }
        /* Leftover pad bits are ignored (RFC 8941 4.2.7). */
    }
    return (long)dlen;
}

/* ---- RFC 8941 parser ------------------------------------------------------ */

typedef enum {
    SF_INTEGER, SF_DECIMAL, SF_STRING, SF_TOKEN, SF_BYTES, SF_BOOLEAN
} iss_digest_sf_type;

typedef struct {
    const char *key;              /* not NUL-terminated */
    apr_size_t key_len;
    int inner_list;               /* 1: an inner list; item unused */
    iss_digest_sf_type type;      /* of the bare item */
    apr_int64_t integer;          /* SF_INTEGER, SF_BOOLEAN */
    const char *b64;              /* SF_BYTES: base64 text, no colons */
    apr_size_t b64_len;
} iss_digest_member_t;

typedef void iss_digest_member_fn(void *baton, const iss_digest_member_t *m);

typedef struct {
    const char *p, *end;
} iss_digest_cur_t;

static int iss_digest_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int iss_digest_is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int iss_digest_is_lcalpha(unsigned char c)
{
    return c >= 'a' && c <= 'z';
}

/* RFC 9110 tchar. */
static int iss_digest_is_tchar(unsigned char c)
{
    return iss_digest_is_alpha(c) || iss_digest_is_digit(c)
           || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* The next byte, or -1 at the end. */
static int iss_digest_peek(const iss_digest_cur_t *c)
{
    return c->p < c->end ? (unsigned char)*c->p : -1;
}

/* 4.2.3.3 Parsing a Key. */
static int iss_digest_sf_key(iss_digest_cur_t *c, const char **key,
                             apr_size_t *len)
{
    int ch = iss_digest_peek(c);
    const char *start = c->p;

    if (ch < 0 || !(iss_digest_is_lcalpha(ch) || ch == '*'))
        return 0;
    c->p++;
    while ((ch = iss_digest_peek(c)) >= 0
           && (iss_digest_is_lcalpha(ch) || iss_digest_is_digit(ch)
               || ch == '_' || ch == '-' || ch == '.' || ch == '*'))
        c->p++;
    *key = start;
    *len = (apr_size_t)(c->p - start);
    return 1;
}

/* 4.2.4 Parsing an Integer or a Decimal. */
static int iss_digest_sf_number(iss_digest_cur_t *c, iss_digest_member_t *m)
{
    int neg = 0, decimal = 0, ch;
    apr_size_t digits = 0, frac = 0;
    apr_int64_t v = 0;

    if (iss_digest_peek(c) == '-') {
        neg = 1;
        c->p++;
    }
    ch = iss_digest_peek(c);
    if (ch < 0 || !iss_digest_is_digit(ch))
        return 0;
    while ((ch = iss_digest_peek(c)) >= 0) {
        if (iss_digest_is_digit(ch)) {
            if (decimal)
                frac++;
            else
                v = v * 10 + (ch - '0');    /* at most 15 digits: no overflow */
            digits++;
        }
        else if (!decimal && ch == '.') {
            if (digits > 12)
                return 0;
            decimal = 1;
            digits++;                       /* the '.' counts, as in 4.2.4 */
        }
        else
            break;
        c->p++;
        if (!decimal && digits > 15)
            return 0;
        if (decimal && digits > 16)
            return 0;
    }
    if (decimal) {
        if (frac == 0 || frac > 3)
            return 0;
        m->type = SF_DECIMAL;
        m->integer = 0;
    }
    else {
        m->type = SF_INTEGER;
        m->integer = neg ? -v : v;
    }
    return 1;
}

/* 4.2.5 Parsing a String. */
static int iss_digest_sf_string(iss_digest_cur_t *c)
{
    c->p++;                                 /* the opening '"' */
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p++;

        if (ch == '\\') {
            if (c->p >= c->end || (*c->p != '"' && *c->p != '\\'))
                return 0;
            c->p++;
        }
        else if (ch == '"')
            return 1;
        else if (ch < 0x20 || ch >= 0x7f)
            return 0;
    }
    return 0;                               /* unterminated */
}

/* 4.2.7 Parsing a Byte Sequence. */
static int iss_digest_sf_bytes(iss_digest_cur_t *c, iss_digest_member_t *m)
{
    const char *start = ++c->p, *q;         /* past the opening ':' */

    q = memchr(start, ':', (apr_size_t)(c->end - start));
    if (!q)
        return 0;
    if (iss_digest_b64check(start, (apr_size_t)(q - start), NULL, 0) < 0)
        return 0;
    m->type = SF_BYTES;
    m->b64 = start;
    m->b64_len = (apr_size_t)(q - start);
    c->p = q + 1;
    return 1;
}

/* 4.2.3.1 Parsing a Bare Item. */
static int iss_digest_sf_bare(iss_digest_cur_t *c, iss_digest_member_t *m)
{
    int ch = iss_digest_peek(c);

    if (ch < 0)
        return 0;
    if (ch == '-' || iss_digest_is_digit(ch))
        return iss_digest_sf_number(c, m);
    if (ch == '"') {
        m->type = SF_STRING;
        return iss_digest_sf_string(c);
    }
    if (ch == '*' || iss_digest_is_alpha(ch)) {            /* 4.2.6 Token */
        c->p++;
        while ((ch = iss_digest_peek(c)) >= 0
               && (iss_digest_is_tchar(ch) || ch == ':' || ch == '/'))
            c->p++;
        m->type = SF_TOKEN;
        return 1;
    }
    if (ch == ':')
        return iss_digest_sf_bytes(c, m);
    if (ch == '?') {                                       /* 4.2.8 Boolean */
        c->p++;
        ch = iss_digest_peek(c);
        if (ch != '0' && ch != '1')
            return 0;
        c->p++;
        m->type = SF_BOOLEAN;
        m->integer = ch == '1';
        return 1;
    }
    return 0;
}

/* 4.2.3.2 Parsing Parameters (values are checked and dropped). */
static int iss_digest_sf_params(iss_digest_cur_t *c)
{
    while (iss_digest_peek(c) == ';') {
        const char *key;
        apr_size_t klen;

        c->p++;
        while (iss_digest_peek(c) == ' ')
            c->p++;
        if (!iss_digest_sf_key(c, &key, &klen))
            return 0;
        if (iss_digest_peek(c) == '=') {
            iss_digest_member_t scratch;

            c->p++;
            if (!iss_digest_sf_bare(c, &scratch))
                return 0;
        }
    }
    return 1;
}

/* 4.2.1.2 Parsing an Inner List (items are checked and dropped). */
static int iss_digest_sf_inner_list(iss_digest_cur_t *c)
{
    c->p++;                                 /* the '(' */
    while (c->p < c->end) {
        iss_digest_member_t scratch;
        int ch;

        while (iss_digest_peek(c) == ' ')
            c->p++;
        if (iss_digest_peek(c) == ')') {
            c->p++;
            return iss_digest_sf_params(c);
        }
        if (!iss_digest_sf_bare(c, &scratch) || !iss_digest_sf_params(c))
            return 0;
        ch = iss_digest_peek(c);
        if (ch != ' ' && ch != ')')
            return 0;
    }
    return 0;                               /* unterminated */
}

static int iss_digest_is_ows(int ch)
{
    return ch == ' ' || ch == '\t';
}

/* 4.2 Parsing Structured Fields, for a Dictionary (4.2.2): calls @a fn
 * for every member in order.  Returns 1 if the whole value is valid;
 * @a fn may have been called before a later error is found. */
static int iss_digest_sf_dictionary(const char *value,
                                    iss_digest_member_fn *fn, void *baton)
{
    iss_digest_cur_t cur, *c = &cur;
    const char *s;

    c->p = value;
    c->end = value + strlen(value);
    for (s = c->p; s < c->end; s++)         /* 4.2 step 1: ASCII only */
        if ((unsigned char)*s >= 0x80)
            return 0;
    while (iss_digest_peek(c) == ' ')       /* 4.2 step 2 */
        c->p++;
    while (c->p < c->end) {
        iss_digest_member_t m;

        memset(&m, 0, sizeof(m));
        if (!iss_digest_sf_key(c, &m.key, &m.key_len))
            return 0;
        if (iss_digest_peek(c) == '=') {
            c->p++;
            if (iss_digest_peek(c) == '(') {
                m.inner_list = 1;
                if (!iss_digest_sf_inner_list(c))
                    return 0;
            }
            else if (!iss_digest_sf_bare(c, &m) || !iss_digest_sf_params(c))
                return 0;
        }
        else {
            m.type = SF_BOOLEAN;
            m.integer = 1;
            if (!iss_digest_sf_params(c))
                return 0;
        }
        fn(baton, &m);
        while (iss_digest_is_ows(iss_digest_peek(c)))
            c->p++;
        if (c->p >= c->end)
            return 1;
        if (*c->p != ',')
            return 0;
        c->p++;
        while (iss_digest_is_ows(iss_digest_peek(c)))
            c->p++;
        if (c->p >= c->end)
            return 0;                       /* trailing comma */
    }
    return 1;                               /* empty: an empty Dictionary */
}

static int iss_digest_is_sha256(const iss_digest_member_t *m)
{
    return m->key_len == 7 && memcmp(m->key, "sha-256", 7) == 0;
}

/* ---- Repr-Digest / Content-Digest ---------------------------------------- */

typedef struct {
    int seen;                     /* a sha-256 member was parsed */
    int bad;                      /* the last one is not 32 bytes */
    unsigned char sha[ISS_DIGEST_SHA256_LEN];
} iss_digest_parse_t;

static void iss_digest_parse_member(void *baton, const iss_digest_member_t *m)
{
    iss_digest_parse_t *st = baton;

    if (!iss_digest_is_sha256(m))
        return;
    st->seen = 1;
    st->bad = m->inner_list || m->type != SF_BYTES
              || iss_digest_b64check(m->b64, m->b64_len, st->sha,
                                     ISS_DIGEST_SHA256_LEN)
                 != ISS_DIGEST_SHA256_LEN;
}

apr_status_t iss_digest_parse(const char *value,
                              unsigned char out[ISS_DIGEST_SHA256_LEN],
                              int *found)
{
    iss_digest_parse_t st;

    if (!value)
        return APR_EINVAL;
    memset(&st, 0, sizeof(st));
    if (!iss_digest_sf_dictionary(value, iss_digest_parse_member, &st)
        || st.bad)
        return APR_EINVAL;
    if (st.seen)
        memcpy(out, st.sha, ISS_DIGEST_SHA256_LEN);
    *found = st.seen;
    return APR_SUCCESS;
}

/* ---- Want-Repr-Digest / Want-Content-Digest ------------------------------ */

static void iss_digest_want_member(void *baton, const iss_digest_member_t *m)
{
    int *want = baton;

    if (!iss_digest_is_sha256(m))
        return;
    *want = !m->inner_list && m->type == SF_INTEGER && m->integer >= 1
            && m->integer <= 10;
}

int iss_digest_wanted(const char *value)
{
    int want = 0;

    if (!value || !iss_digest_sf_dictionary(value, iss_digest_want_member,
                                            &want))
        return 0;
    return want;
}

/* ---- ETag text back to its digest --------------------------------------- */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return -1;
}

int iss_digest_etag_decode(const char *s, apr_size_t len,
                           unsigned char out[ISS_DIGEST_SHA256_LEN])
{
    unsigned char tmp[ISS_DIGEST_SHA256_LEN];
    apr_uint32_t acc = 0;
    apr_size_t i, n = 0;
    int bits = 0, v;

    if (s == NULL || len != ISS_DIGEST_ETAG_LEN || s[0] != '"'
        || s[len - 1] != '"') {
        return 0;
    }
    for (i = 1; i < len - 1; i++) {
        if ((v = b64url_value((unsigned char)s[i])) < 0) {
            return 0;
        }
        acc = (acc << 6) | (apr_uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == sizeof(tmp)) {
                return 0;                /* cannot happen: 43 * 6 = 258 */
            }
            tmp[n++] = (unsigned char)(acc >> bits);
            acc &= ((apr_uint32_t)1 << bits) - 1;
        }
    }
    /* 43 characters: 256 bits and 2 left over, which must be zero (the
     * canonical text iss_digest_etag() makes). */
    if (n != sizeof(tmp) || acc != 0) {
        return 0;
    }
    memcpy(out, tmp, sizeof(tmp));
    return 1;
}
