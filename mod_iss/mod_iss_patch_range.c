/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * SabreDAV's partial update (https://sabre.io/dav/http-patch/):
 * Content-Type: application/x-sabredav-partialupdate, and
 *   X-Update-Range: bytes=A-B   write the body (exactly B-A+1 bytes) at A
 *                   bytes=A-    write the body at A
 *                   bytes=-N    write the body N bytes before the end
 *                   append      write the body at the end
 * A start past the end fills the gap with zero bytes; the file grows as
 * far as the body reaches.  Statuses as SabreDAV documents them: 400 for
 * a malformed X-Update-Range, 411 without Content-Length, 416 when the
 * range and the body do not agree.
 *
 * The new content is the old one copied to the temporary file of
 * mod_iss_patch with the body in its place (one pass; never an in-place
 * write), so a reader sees the old or the new file, never a mix.
 */

#include "mod_iss_patch.h"

#include <apr_strings.h>

#define COPY_BUF (1024 * 1024)

typedef enum { R_APPEND, R_FROM, R_SPAN, R_LAST } range_kind_e;

typedef struct range_t {
    range_kind_e kind;
    apr_off_t a, b;          /* R_FROM: a; R_SPAN: a-b; R_LAST: a = N */
    apr_off_t length;        /* Content-Length */
} range_t;

/* Digits only, no sign, no overflow. */
static int parse_off(const char *s, apr_size_t n, apr_off_t *out)
{
    apr_off_t v = 0;
    apr_size_t i;

    if (n == 0 || n > 18) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static int parse_range(const char *h, range_t *rg)
{
    const char *dash;

    if (strcasecmp(h, "append") == 0) {
        rg->kind = R_APPEND;
        return 1;
    }
    if (strncasecmp(h, "bytes=", 6) != 0 || !(dash = strchr(h + 6, '-'))) {
        return 0;
    }
    h += 6;
    if (dash == h) {
        rg->kind = R_LAST;
        return parse_off(dash + 1, strlen(dash + 1), &rg->a) && rg->a > 0;
    }
    if (!parse_off(h, (apr_size_t)(dash - h), &rg->a)) {
        return 0;
    }
    if (dash[1] == '\0') {
        rg->kind = R_FROM;
        return 1;
    }
    rg->kind = R_SPAN;
    return parse_off(dash + 1, strlen(dash + 1), &rg->b);
}

static range_t *range_of(iss_patch_t *p)
{
    return apr_pcalloc(p->r->pool, sizeof(range_t));
}

int iss_patch_range_check(iss_patch_t *p)
{
    request_rec *r = p->r;
    const char *h = apr_table_get(r->headers_in, "X-Update-Range");
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    range_t *rg = range_of(p);

    if (h == NULL || !parse_range(h, rg)) {
        return iss_patch_fail(p, HTTP_BAD_REQUEST, "invalid-update-range",
                              "X-Update-Range must be bytes=A-B, bytes=A-, "
                              "bytes=-N or append.");
    }
    if (cl == NULL || !parse_off(cl, strlen(cl), &rg->length)) {
        return iss_patch_fail(p, HTTP_LENGTH_REQUIRED,
                              "content-length-required", "A partial update "
                              "needs a Content-Length.");
    }
    if (rg->kind == R_SPAN
        && (rg->b < rg->a || rg->b - rg->a + 1 != rg->length)) {
        return iss_patch_fail(p, HTTP_RANGE_NOT_SATISFIABLE,
                              "update-range-mismatch", "X-Update-Range "
                              "bytes=%" APR_OFF_T_FMT "-%" APR_OFF_T_FMT
                              " does not agree with a body of %"
                              APR_OFF_T_FMT " bytes.", rg->a, rg->b,
                              rg->length);
    }
    apr_pool_userdata_setn(rg, "mod_iss:range", NULL, r->pool);
    return OK;
}

/* Copy @a len bytes of the old content from @a offset. */
static int copy_old(iss_patch_t *p, char *buf, apr_off_t offset,
                    apr_off_t len)
{
    apr_status_t rv = len > 0 ? apr_file_seek(p->src, APR_SET, &offset)
                              : APR_SUCCESS;

    while (rv == APR_SUCCESS && len > 0) {
        apr_size_t n = len > COPY_BUF ? COPY_BUF : (apr_size_t)len;

        if ((rv = apr_file_read_full(p->src, buf, n, NULL)) != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, p->r, ISSLOGNO(01061)
                          "PATCH %s: cannot read %s", p->r->uri, p->path);
            return iss_patch_fail(p, HTTP_INTERNAL_SERVER_ERROR,
                                  "read-failed", "The file could not be "
                                  "read; it was not changed.");
        }
        if ((rv = iss_patch_write(p, buf, n)) != APR_SUCCESS) {
            return iss_patch_fail_write(p, rv);
        }
        len -= (apr_off_t)n;
    }
    return OK;
}

static int zeros(iss_patch_t *p, apr_off_t len)
{
    char *z = apr_pcalloc(p->r->pool, COPY_BUF);
    apr_status_t rv;

    while (len > 0) {
        apr_size_t n = len > COPY_BUF ? COPY_BUF : (apr_size_t)len;

        if ((rv = iss_patch_write(p, z, n)) != APR_SUCCESS) {
            return iss_patch_fail_write(p, rv);
        }
        len -= (apr_off_t)n;
    }
    return OK;
}

typedef struct body_ctx {
    iss_patch_t *p;
    apr_off_t left;
} body_ctx;

static apr_status_t body_piece(void *baton, const char *data, apr_size_t len)
{
    body_ctx *c = baton;
    apr_status_t rv;

    if ((apr_off_t)len > c->left) {
        iss_patch_fail(c->p, HTTP_BAD_REQUEST, "body-too-long", "The body "
                       "is longer than its Content-Length.");
        return APR_EGENERAL;
    }
    c->left -= (apr_off_t)len;
    if ((rv = iss_patch_write(c->p, data, len)) != APR_SUCCESS) {
        iss_patch_fail_write(c->p, rv);
    }
    return rv;
}

int iss_patch_range(iss_patch_t *p)
{
    range_t *rg = NULL;
    apr_off_t size = p->src_info.size, start, end;
    body_ctx c = { p, 0 };
    char *buf;
    int st;

    apr_pool_userdata_get((void **)&rg, "mod_iss:range", p->r->pool);
    switch (rg->kind) {
    case R_APPEND: start = size; break;
    case R_LAST:
        if (rg->a > size) {
            return iss_patch_fail(p, HTTP_RANGE_NOT_SATISFIABLE,
                                  "update-range-mismatch", "bytes=-%"
                                  APR_OFF_T_FMT " starts before the "
                                  "beginning of the file (%" APR_OFF_T_FMT
                                  " bytes).", rg->a, size);
        }
        start = size - rg->a;
        break;
    default: start = rg->a; break;
    }
    end = start + rg->length;
    if (end > p->max_target || end < start) {
        return iss_patch_fail(p, HTTP_REQUEST_ENTITY_TOO_LARGE,
                              "patch-too-large", "The file would grow "
                              "beyond %" APR_OFF_T_FMT " bytes, this "
                              "server's limit.", p->max_target);
    }
    /* Before anything is written: a small body must not make a large
     * file (a start far past the end fills the gap with zeros). */
    if (p->growth_ratio && end > size
        && (apr_uint64_t)rg->length <= (APR_UINT64_MAX - p->growth_floor)
                                       / p->growth_ratio
        && (apr_uint64_t)(end - size)
           > (apr_uint64_t)rg->length * p->growth_ratio + p->growth_floor) {
        return iss_patch_fail(p, HTTP_REQUEST_ENTITY_TOO_LARGE,
                              "growth-too-large", "The update would make "
                              "the file grow by %" APR_OFF_T_FMT " bytes "
                              "for a body of %" APR_OFF_T_FMT " bytes, more "
                              "than this server allows (ISSPatchMaxGrowth: %"
                              APR_UINT64_T_FMT " bytes per byte of body, "
                              "plus %" APR_UINT64_T_FMT ").", end - size,
                              rg->length, p->growth_ratio, p->growth_floor);
    }
    buf = apr_palloc(p->r->pool, COPY_BUF);
    if ((st = copy_old(p, buf, 0, start < size ? start : size)) != OK
        || (start > size && (st = zeros(p, start - size)) != OK)) {
        return st;
    }
    c.left = rg->length;
    if ((st = iss_patch_read_body(p, body_piece, &c)) != OK) {
        return st;
    }
    if (c.left != 0) {
        return iss_patch_fail(p, HTTP_BAD_REQUEST, "body-read-failed",
                              "The body is shorter than its "
                              "Content-Length.");
    }
    return end < size ? copy_old(p, buf, end, size - end) : OK;
}
