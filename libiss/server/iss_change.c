/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* Format (version 1), all text except paths, which are raw bytes:
 *   "ISC1 " method "\n"
 *   then per change: kind ('C','M','R','P') type ('f','c') " " len ":"
 *   path-bytes "\n"
 * Lengths are decimal, at most 9 digits; nothing may follow the last
 * record. */

#include "iss_change.h"

#include <apr_strings.h>
#include <string.h>

#define MAGIC "ISC1 "

void iss_change_encode(const char *method, const apr_array_header_t *changes,
                       char **buf, apr_size_t *len, apr_pool_t *pool)
{
    apr_size_t n = sizeof(MAGIC) + strlen(method) + 1, off;
    const iss_change_t *c = (const iss_change_t *)changes->elts;
    int i;

    for (i = 0; i < changes->nelts; i++) {
        n += strlen(c[i].path) + 16;
    }
    *buf = apr_palloc(pool, n);
    off = apr_snprintf(*buf, n, MAGIC "%s\n", method);
    for (i = 0; i < changes->nelts; i++) {
        apr_size_t plen = strlen(c[i].path);

        off += apr_snprintf(*buf + off, n - off, "%c%c %" APR_SIZE_T_FMT ":",
                            (char)c[i].kind, c[i].collection ? 'c' : 'f',
                            plen);
        memcpy(*buf + off, c[i].path, plen);
        off += plen;
        (*buf)[off++] = '\n';
    }
    *len = off;
}

static int valid_kind(char k)
{
    return k == ISS_CHANGE_CREATED || k == ISS_CHANGE_MODIFIED
           || k == ISS_CHANGE_REMOVED || k == ISS_CHANGE_PROPS;
}

apr_status_t iss_change_decode(const char *buf, apr_size_t len,
                               const char **method,
                               apr_array_header_t **changes,
                               apr_pool_t *pool)
{
    const char *p = buf, *end = buf + len, *nl;
    apr_array_header_t *arr;

    if (len < sizeof(MAGIC) - 1 || memcmp(buf, MAGIC, sizeof(MAGIC) - 1)) {
        return APR_EINVAL;
    }
    p += sizeof(MAGIC) - 1;
    nl = memchr(p, '\n', end - p);
    if (nl == NULL || nl == p) {
        return APR_EINVAL;
    }
    *method = apr_pstrmemdup(pool, p, nl - p);
    p = nl + 1;
    arr = apr_array_make(pool, 4, sizeof(iss_change_t));
    while (p < end) {
        iss_change_t *c;
        apr_size_t plen = 0;
        int digits = 0;

        if (end - p < 5 || !valid_kind(p[0]) || (p[1] != 'c' && p[1] != 'f')
            || p[2] != ' ') {
            return APR_EINVAL;
        }
        c = apr_array_push(arr);
        c->kind = (iss_change_kind_e)p[0];
        c->collection = p[1] == 'c';
        p += 3;
        while (p < end && *p >= '0' && *p <= '9' && digits < 9) {
            plen = plen * 10 + (apr_size_t)(*p++ - '0');
            digits++;
        }
        if (digits == 0 || p >= end || *p != ':') {
            return APR_EINVAL;
        }
        p++;
        if ((apr_size_t)(end - p) < plen + 1 || p[plen] != '\n'
            || memchr(p, '\0', plen)) {
            return APR_EINVAL;
        }
        c->path = apr_pstrmemdup(pool, p, plen);
        p += plen + 1;
    }
    *changes = arr;
    return APR_SUCCESS;
}

const char *iss_change_kind_name(iss_change_kind_e kind)
{
    switch (kind) {
    case ISS_CHANGE_CREATED: return "created";
    case ISS_CHANGE_MODIFIED: return "modified";
    case ISS_CHANGE_REMOVED: return "removed";
    case ISS_CHANGE_PROPS: return "props";
    }
    return "unknown";
}
