/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * The request side of an RFC 3229 delta GET: A-IM and If-None-Match.
 * See iss_deltaget.h.
 */

#include "iss_deltaget.h"

#include <string.h>

/* RFC 9110 section 5.6.2: tchar. */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9')) {
        return 1;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static apr_size_t skip_ows(const unsigned char *s, apr_size_t i)
{
    while (is_ows(s[i])) {
        i++;
    }
    return i;
}

/* RFC 9110 section 12.4.2: qvalue, in thousandths in *q; the index after
 * it, or 0 if there is none at @a i (a qvalue is never at index 0). */
static apr_size_t parse_qvalue(const unsigned char *s, apr_size_t i,
                               unsigned *q)
{
    unsigned v, scale = 100;
    int digits = 0;

    if (s[i] != '0' && s[i] != '1') {
        return 0;
    }
    v = (unsigned)(s[i] - '0') * 1000;
    i++;
    if (s[i] == '.') {
        i++;
        while (s[i] >= '0' && s[i] <= '9') {
            if (++digits > 3) {
                return 0;
            }
            v += (unsigned)(s[i] - '0') * scale;
            scale /= 10;
            i++;
        }
    }
    if (v > 1000) {
        return 0;                      /* "1.5": not a qvalue */
    }
    *q = v;
    return i;
}

int iss_deltaget_accepts_vcdiff(const char *value)
{
    const unsigned char *s = (const unsigned char *)value;
    apr_size_t i = 0, start, end;
    int found = 0, refused = 0;

    if (s == NULL) {
        return 0;
    }
    for (;;) {
        unsigned q = 1000;
        int vcdiff;

        /* Empty members ("a, , b") are allowed (RFC 9110 5.6.1). */
        while (is_ows(s[i]) || s[i] == ',') {
            i++;
        }
        if (s[i] == '\0') {
            break;
        }
        start = i;
        while (is_tchar(s[i])) {
            i++;
        }
        if (i == start) {
            return 0;
        }
        end = i;
        vcdiff = end - start == 6
                 && strncasecmp((const char *)s + start, "vcdiff", 6) == 0;
        i = skip_ows(s, i);
        if (s[i] == ';') {
            i = skip_ows(s, i + 1);
            if (s[i] != 'q' && s[i] != 'Q') {
                return 0;
            }
            i = skip_ows(s, i + 1);
            if (s[i] != '=') {
                return 0;
            }
            i = skip_ows(s, i + 1);
            if ((i = parse_qvalue(s, i, &q)) == 0) {
                return 0;
            }
            i = skip_ows(s, i);
        }
        if (s[i] != ',' && s[i] != '\0') {
            return 0;
        }
        if (vcdiff) {
            if (q == 0) {
                refused = 1;
            }
            else {
                found = 1;
            }
        }
    }
    return found && !refused;
}

int iss_deltaget_etag_decode(const char *s, apr_size_t len,
                             unsigned char out[ISS_DIGEST_SHA256_LEN])
{
    return s != NULL && iss_digest_etag_decode(s, len, out);
}

/* RFC 9110 section 8.8.3: etagc, the characters inside the quotes. */
static int is_etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80;
}

iss_deltaget_base_e iss_deltaget_base(const char *value,
                                      const unsigned char current[ISS_DIGEST_SHA256_LEN],
                                      iss_deltaget_known_fn *known, void *baton,
                                      unsigned char out[ISS_DIGEST_SHA256_LEN])
{
    const unsigned char *s = (const unsigned char *)value;
    unsigned char d[ISS_DIGEST_SHA256_LEN];
    apr_size_t i = 0, open, close;
    int members = 0;

    if (s == NULL) {
        return ISS_DELTAGET_NONE;
    }
    while (members < ISS_DELTAGET_MAX_TAGS) {
        int weak = 0, ok = 1;

        while (is_ows(s[i]) || s[i] == ',') {
            i++;
        }
        if (s[i] == '\0') {
            break;
        }
        members++;
        if (s[i] == 'W' && s[i + 1] == '/') {
            weak = 1;
            i += 2;
        }
        if (s[i] != '"') {
            ok = 0;                      /* "*", a bare word, ... */
        }
        else {
            open = i++;
            while (s[i] != '"' && s[i] != '\0') {
                if (!is_etagc(s[i])) {
                    ok = 0;
                }
                i++;
            }
            if (s[i] == '\0') {
                break;                   /* unterminated: nothing follows */
            }
            close = i;
            i = skip_ows(s, i + 1);
            if (s[i] != ',' && s[i] != '\0') {
                ok = 0;
            }
            if (ok && !weak
                && iss_deltaget_etag_decode((const char *)s + open,
                                            close - open + 1, d) == 0) {
                ok = 0;
            }
        }
        if (!ok) {
            while (s[i] != ',' && s[i] != '\0') {
                i++;
            }
            continue;
        }
        if (weak) {
            continue;
        }
        if (memcmp(d, current, sizeof(d)) == 0) {
            return ISS_DELTAGET_CURRENT;
        }
        if (known != NULL && known(baton, d)) {
            memcpy(out, d, sizeof(d));
            return ISS_DELTAGET_VERSION;
        }
    }
    return ISS_DELTAGET_NONE;
}
