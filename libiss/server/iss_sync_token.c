/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * Sync tokens (declared in iss_sync_log.h): the text of a position in
 * the change log, made and parsed without the store, so that the parser
 * of this hostile input is fuzzed alone (fuzz/fuzz_ifhdr.c).
 */

#include "iss_sync_log.h"
#include "iss_bytes.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <string.h>

/* Strict unsigned decimal (iss_sync_log.h). */
apr_status_t iss_sync_parse_u64(const char *s, apr_size_t len, apr_uint64_t *v)
{
    apr_uint64_t n = 0;
    apr_size_t i;

    if (len == 0 || len > 20) {
        return APR_EINVAL;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return APR_EINVAL;
        }
        if (n > (APR_UINT64_MAX - (apr_uint64_t)(s[i] - '0')) / 10) {
            return APR_EINVAL;
        }
        n = n * 10 + (apr_uint64_t)(s[i] - '0');
    }
    *v = n;
    return APR_SUCCESS;
}

/* ---- tokens ------------------------------------------------------------- */

static int unreserved(unsigned char c)
{
    return apr_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~'
           || c == '/';
}

static const char *pct_encode(const char *s, apr_pool_t *p)
{
    apr_size_t n = strlen(s), i, o = 0;
    char *out = apr_palloc(p, 3 * n + 1);

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (unreserved(c)) {
            out[o++] = (char)c;
        }
        else {
            apr_snprintf(out + o, 4, "%%%02X", c);
            o += 3;
        }
    }
    out[o] = '\0';
    return out;
}

static apr_status_t pct_decode(const char *s, const char **out, apr_pool_t *p)
{
    apr_size_t n = strlen(s), i, o = 0;
    char *d = apr_palloc(p, n + 1);

    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;

            if (i + 2 >= n) {
                return APR_EINVAL;
            }
            hi = iss_hex_digit((unsigned char)s[i + 1]);
            lo = hi < 0 ? -1 : iss_hex_digit((unsigned char)s[i + 2]);
            if (lo < 0 || (hi == 0 && lo == 0)) {
                return APR_EINVAL;
            }
            d[o++] = (char)(hi * 16 + lo);
            i += 2;
        }
        else if (unreserved((unsigned char)s[i])) {
            d[o++] = s[i];
        }
        else {
            return APR_EINVAL;
        }
    }
    d[o] = '\0';
    *out = d;
    return APR_SUCCESS;
}

const char *iss_sync_token_make(const char *store_id,
                                const iss_sync_pos_t *pos, apr_pool_t *pool)
{
    if (pos->initial) {
        return apr_psprintf(pool, "%s%s/i%" APR_UINT64_T_FMT "/%s",
                            ISS_SYNC_TOKEN_BASE, store_id, pos->seq - 1,
                            pct_encode(pos->after, pool));
    }
    if (pos->after && *pos->after) {
        return apr_psprintf(pool, "%s%s/%" APR_UINT64_T_FMT "/%u/%s",
                            ISS_SYNC_TOKEN_BASE, store_id, pos->seq,
                            (unsigned)pos->idx, pct_encode(pos->after, pool));
    }
    if (pos->idx) {
        return apr_psprintf(pool, "%s%s/%" APR_UINT64_T_FMT ".%u",
                            ISS_SYNC_TOKEN_BASE, store_id, pos->seq,
                            (unsigned)pos->idx);
    }
    return apr_psprintf(pool, "%s%s/%" APR_UINT64_T_FMT,
                        ISS_SYNC_TOKEN_BASE, store_id, pos->seq - 1);
}

apr_status_t iss_sync_token_parse(const char *token, const char **store_id,
                                  iss_sync_pos_t *pos, apr_pool_t *pool)
{
    apr_size_t blen = sizeof(ISS_SYNC_TOKEN_BASE) - 1;
    const char *id, *slash, *rest, *dot;
    apr_uint64_t n, i;
    apr_size_t k;

    memset(pos, 0, sizeof(*pos));
    if (!token || strncmp(token, ISS_SYNC_TOKEN_BASE, blen) != 0) {
        return APR_EINVAL;
    }
    id = token + blen;
    if (!(slash = strchr(id, '/')) || slash == id || slash - id > 64) {
        return APR_EINVAL;
    }
    for (k = 0; id + k < slash; k++) {
        if (!apr_isxdigit(id[k]) && id[k] != '-') {
            return APR_EINVAL;
        }
    }
    *store_id = apr_pstrmemdup(pool, id, (apr_size_t)(slash - id));
    rest = slash + 1;
    if (rest[0] == 'i') {                        /* i<n>/<path> */
        const char *s2 = strchr(rest, '/');

        if (!s2 || iss_sync_parse_u64(rest + 1, (apr_size_t)(s2 - rest - 1), &n)
            || n == APR_UINT64_MAX || s2[1] == '\0'
            || pct_decode(s2 + 1, &pos->after, pool) != APR_SUCCESS) {
            return APR_EINVAL;
        }
        pos->initial = 1;
        pos->seq = n + 1;
        return APR_SUCCESS;
    }
    if ((dot = strchr(rest, '/')) != NULL) {      /* <s>/<j>/<path> */
        const char *s2 = strchr(dot + 1, '/');

        if (!s2 || iss_sync_parse_u64(rest, (apr_size_t)(dot - rest), &n)
            || n == 0 || n == APR_UINT64_MAX
            || iss_sync_parse_u64(dot + 1, (apr_size_t)(s2 - dot - 1), &i)
            || i > 0xFFFFFFFFu || s2[1] == '\0'
            || pct_decode(s2 + 1, &pos->after, pool) != APR_SUCCESS) {
            return APR_EINVAL;
        }
        pos->seq = n;
        pos->idx = (apr_uint32_t)i;
        return APR_SUCCESS;
    }
    if ((dot = strchr(rest, '.')) != NULL) {      /* <s>.<i> */
        if (iss_sync_parse_u64(rest, (apr_size_t)(dot - rest), &n)
            || iss_sync_parse_u64(dot + 1, strlen(dot + 1), &i)
            || n == 0 || i == 0 || i > 0xFFFFFFFFu) {
            return APR_EINVAL;
        }
        pos->seq = n;
        pos->idx = (apr_uint32_t)i;
        return APR_SUCCESS;
    }
    if (iss_sync_parse_u64(rest, strlen(rest), &n) || n == APR_UINT64_MAX) {
        return APR_EINVAL;
    }
    pos->seq = n + 1;
    return APR_SUCCESS;
}
