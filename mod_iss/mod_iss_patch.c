/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "mod_iss_patch.h"
#include "mod_iss_capture.h"
#include "mod_iss_config.h"
#include "mod_iss_digest.h"
#include "mod_iss_provider.h"
#include "iss_filedigest.h"

#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>

#include <errno.h>
#include <stdarg.h>

#define BODY_READ (64 * 1024)

typedef enum { FMT_NONE, FMT_VCDIFF, FMT_RANGE } format_e;

/* ---- errors ---------------------------------------------------------- */

int iss_patch_fail(iss_patch_t *p, int status, const char *tag,
                   const char *fmt, ...)
{
    va_list ap;

    if (p->status == 0) {
        p->status = status;
        p->tag = tag;
        va_start(ap, fmt);
        p->msg = apr_pvsprintf(p->r->pool, fmt, ap);
        va_end(ap);
    }
    return p->status;
}

int iss_patch_fail_write(iss_patch_t *p, apr_status_t rv)
{
    char buf[120];

    /* A full disk or quota, or a file size limit (RLIMIT_FSIZE; httpd
     * ignores SIGXFSZ, so write() fails with EFBIG). */
    if (APR_STATUS_IS_ENOSPC(rv) || rv == APR_FROM_OS_ERROR(EFBIG)
#ifdef EDQUOT
        || rv == APR_FROM_OS_ERROR(EDQUOT)
#endif
        ) {
        return iss_patch_fail(p, HTTP_INSUFFICIENT_STORAGE,
                              "insufficient-storage", "There is no room "
                              "for the new content of the file (%s); the "
                              "file was not changed.",
                              apr_strerror(rv, buf, sizeof(buf)));
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, p->r, ISSLOGNO(01056)
                  "PATCH %s: cannot write %s", p->r->uri, p->tmp_path);
    return iss_patch_fail(p, HTTP_INTERNAL_SERVER_ERROR, "write-failed",
                          "The new content could not be written; the file "
                          "was not changed.");
}

/* The answer to a refused PATCH: the status, and a body that says why
 * (RFC 4918 section 16 style: an element naming the condition and a
 * message for people). */
static int send_error(iss_patch_t *p)
{
    request_rec *r = p->r;
    apr_bucket_brigade *bb;

    if (p->status == AP_FILTER_ERROR) {
        return AP_FILTER_ERROR;        /* httpd has answered already */
    }
    ap_log_rerror(APLOG_MARK, p->status >= 500 ? APLOG_ERR : APLOG_INFO, 0,
                  r, ISSLOGNO(01057) "PATCH %s refused with %d: %s", r->uri,
                  p->status, p->msg);
    r->status = p->status;
    if (p->status == HTTP_UNSUPPORTED_MEDIA_TYPE) {
        apr_table_setn(r->headers_out, "Accept-Patch", ISS_PATCH_ACCEPT);
    }
    /* The rest of a refused body is not worth reading. */
    r->connection->keepalive = AP_CONN_CLOSE;
    ap_set_content_type(r, "application/xml; charset=utf-8");
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    ap_fputstrs(r->output_filters, bb, DAV_XML_HEADER DEBUG_CR
                "<D:error xmlns:D=\"DAV:\" xmlns:I=\"" ISS_XML_NS "\">"
                DEBUG_CR "<I:", p->tag, "/>" DEBUG_CR "<I:message>",
                apr_xml_quote_string(r->pool, p->msg, 0),
                "</I:message>" DEBUG_CR "</D:error>" DEBUG_CR, NULL);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
    ap_pass_brigade(r->output_filters, bb);
    return OK;
}

/* ---- I/O ------------------------------------------------------------------ */

apr_status_t iss_patch_write(iss_patch_t *p, const void *buf, apr_size_t len)
{
    apr_status_t rv = apr_file_write_full(p->out, buf, len, NULL);

    if (rv == APR_SUCCESS) {
        iss_digest_update(p->sha, buf, len);
        p->written += (apr_off_t)len;
    }
    return rv;
}

apr_status_t iss_patch_pread(apr_file_t *f, apr_off_t offset, apr_size_t len,
                             void *buf)
{
    apr_status_t rv = apr_file_seek(f, APR_SET, &offset);

    return rv ? rv : apr_file_read_full(f, buf, len, NULL);
}

int iss_patch_read_body(iss_patch_t *p, iss_patch_body_fn *fn, void *baton)
{
    request_rec *r = p->r;
    unsigned char got[ISS_DIGEST_SHA256_LEN];
    apr_bucket_brigade *bb;
    iss_digest_t *sha = NULL;
    int eos = 0;
    apr_status_t rv;

    if (p->want_content && iss_digest_create(&sha, r->pool) != APR_SUCCESS) {
        return iss_patch_fail(p, HTTP_INTERNAL_SERVER_ERROR, "no-sha256",
                              "SHA-256 is not available.");
    }
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (!eos) {
        apr_bucket *b;

        rv = ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                            APR_BLOCK_READ, BODY_READ);
        if (rv != APR_SUCCESS) {
            int st = ap_map_http_request_error(rv, HTTP_BAD_REQUEST);

            return iss_patch_fail(p, st, "body-read-failed", "The request "
                                  "body could not be read completely; the "
                                  "file was not changed.");
        }
        for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
             b = APR_BUCKET_NEXT(b)) {
            const char *data;
            apr_size_t len;

            if (APR_BUCKET_IS_EOS(b)) {
                eos = 1;
                break;
            }
            if (APR_BUCKET_IS_METADATA(b)) {
                continue;
            }
            rv = apr_bucket_read(b, &data, &len, APR_BLOCK_READ);
            if (rv != APR_SUCCESS) {
                return iss_patch_fail(p, HTTP_BAD_REQUEST, "body-read-failed",
                                      "The request body could not be read; "
                                      "the file was not changed.");
            }
            if (sha) {
                iss_digest_update(sha, data, len);
            }
            if (len && (rv = fn(baton, data, len)) != APR_SUCCESS) {
                if (p->status == 0) {
                    iss_patch_fail(p, HTTP_INTERNAL_SERVER_ERROR, "failed",
                                   "The patch could not be applied.");
                }
                return p->status;
            }
        }
        apr_brigade_cleanup(bb);
    }
    if (sha) {
        iss_digest_final(sha, got);
        if (memcmp(got, p->content, sizeof(got)) != 0) {
            return iss_patch_fail(p, HTTP_BAD_REQUEST, "digest-mismatch",
                                  "The body does not match its "
                                  "Content-Digest header (its SHA-256 is "
                                  "%s); the file was not changed.",
                                  iss_digest_field(got, r->pool));
        }
    }
    return OK;
}

/* ---- the handler ------------------------------------------------------- */

static format_e format_of(request_rec *r)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    apr_size_t n;

    if (ct == NULL) {
        return FMT_NONE;
    }
    n = strcspn(ct, "; \t");
    if (n == sizeof("application/vcdiff") - 1
        && strncasecmp(ct, "application/vcdiff", n) == 0) {
        return FMT_VCDIFF;
    }
    if (n == sizeof("application/x-sabredav-partialupdate") - 1
        && strncasecmp(ct, "application/x-sabredav-partialupdate", n) == 0) {
        return FMT_RANGE;
    }
    return FMT_NONE;
}

static apr_status_t remove_tmp(void *data)
{
    iss_patch_t *p = data;

    if (p->tmp_path) {
        if (p->back) {
            apr_file_close(p->back);
        }
        if (p->out) {
            apr_file_close(p->out);
        }
        apr_file_remove(p->tmp_path, p->r->pool);
        p->tmp_path = NULL;
    }
    return APR_SUCCESS;
}

#define IDENT (APR_FINFO_IDENT | APR_FINFO_SIZE | APR_FINFO_MTIME \
               | APR_FINFO_TYPE | APR_FINFO_PROT | APR_FINFO_CTIME)

static int same_file(const apr_finfo_t *a, const apr_finfo_t *b)
{
    return a->inode == b->inode && a->device == b->device
           && a->size == b->size && a->mtime == b->mtime;
}

/* Whether the file at the path is still the one whose content we read. */
static int unchanged(iss_patch_t *p)
{
    apr_finfo_t now;

    return apr_stat(&now, p->path, IDENT, p->r->pool) == APR_SUCCESS
           && same_file(&now, &p->src_info);
}

/* Open the temporary file beside the old one, with the old one's
 * permissions; it is removed when the request ends unless renamed. */
static int open_tmp(iss_patch_t *p)
{
    request_rec *r = p->r;
    const char *slash = strrchr(p->path, '/');
    char *templ = apr_pstrcat(r->pool, apr_pstrmemdup(r->pool, p->path,
                                                      (apr_size_t)(slash
                                                                   - p->path)),
                              "/.davfs.tmpXXXXXX", NULL);
    apr_status_t rv;

    rv = apr_file_mktemp(&p->out, templ, APR_FOPEN_CREATE | APR_FOPEN_READ
                         | APR_FOPEN_WRITE | APR_FOPEN_EXCL
                         | APR_FOPEN_BINARY, r->pool);
    if (rv != APR_SUCCESS) {
        return iss_patch_fail_write(p, rv);
    }
    p->tmp_path = templ;
    apr_pool_cleanup_register(r->pool, p, remove_tmp, apr_pool_cleanup_null);
    if ((rv = apr_file_perms_set(templ, p->src_info.protection))
        != APR_SUCCESS && rv != APR_ENOTIMPL) {
        return iss_patch_fail_write(p, rv);
    }
    rv = apr_file_open(&p->back, templ, APR_FOPEN_READ | APR_FOPEN_BINARY, 0,
                       r->pool);
    if (rv != APR_SUCCESS) {
        return iss_patch_fail_write(p, rv);
    }
    return iss_digest_create(&p->sha, r->pool) == APR_SUCCESS
        ? OK
        : iss_patch_fail(p, HTTP_INTERNAL_SERVER_ERROR, "no-sha256",
                         "SHA-256 is not available.");
}

/* Conditions, in RFC 9110 order, before anything is read or written:
 * against the ETag of the file held open, the one the patch will read. */
static int check_conditions(iss_patch_t *p, dav_resource *res, format_e fmt)
{
    request_rec *r = p->r;
    unsigned char sha[ISS_DIGEST_SHA256_LEN];
    dav_error *err;
    int found;

    if (fmt == FMT_VCDIFF && !apr_table_get(r->headers_in, "If-Match")) {
        return iss_patch_fail(p, HTTP_PRECONDITION_REQUIRED,
                              "if-match-required", "A VCDIFF PATCH must say "
                              "which version it applies to: send If-Match "
                              "with the ETag of the file (from GET, HEAD, "
                              "PROPFIND, or the PUT or PATCH that made it).");
    }
    iss_digest_of_file(r, r->uri, p->src, &p->src_info, sha, &found);
    if (found) {
        apr_table_setn(r->headers_out, "ETag",
                       iss_filedigest_etag(sha, r->pool));
    }
    err = dav_validate_request(r, res, 0, NULL, NULL, DAV_VALIDATE_RESOURCE,
                               NULL);
    apr_table_unset(r->headers_out, "ETag");
    if (err != NULL && err->status == HTTP_PRECONDITION_FAILED
        && err->tagname == NULL) {
        return iss_patch_fail(p, HTTP_PRECONDITION_FAILED, "etag-mismatch",
                              "The file is not the version the request "
                              "names (If-Match / If-None-Match / If); fetch "
                              "its current ETag and make the patch from "
                              "that version.");
    }
    if (err != NULL) {
        /* 423 (lock token missing) and friends, with mod_dav's body. */
        p->status = -1;
        return dav_handle_err(r, err, NULL);
    }
    return OK;
}

/* Rename the new content into place, if the old file is still there. */
static int commit(iss_patch_t *p)
{
    request_rec *r = p->r;
    iss_request_t *req = iss_provider_request(r);
    iss_filedigest_t *d = apr_pcalloc(r->pool, sizeof(*d));
    apr_finfo_t fi;
    apr_status_t rv;

    iss_digest_final(p->sha, d->sha256);
    if (p->want_repr && memcmp(p->repr, d->sha256, sizeof(p->repr)) != 0) {
        return iss_patch_fail(p, HTTP_CONFLICT, "repr-digest-mismatch",
                              "The patch applied to the current content "
                              "gives content whose SHA-256 is %s, not the "
                              "Repr-Digest of the request; the file was not "
                              "changed.", iss_digest_field(d->sha256,
                                                           r->pool));
    }
    if ((rv = apr_file_info_get(&fi, IDENT, p->out)) != APR_SUCCESS) {
        return iss_patch_fail_write(p, rv);
    }
    iss_filedigest_set_identity(d, &fi);
    if (!unchanged(p)) {
        return iss_patch_fail(p, HTTP_PRECONDITION_FAILED, "changed",
                              "The file was replaced while the patch was "
                              "applied; the other change stays.  Fetch the "
                              "new ETag and try again.");
    }
    apr_file_close(p->back);
    p->back = NULL;
    apr_file_close(p->out);
    p->out = NULL;
    if ((rv = apr_file_rename(p->tmp_path, p->path, r->pool))
        != APR_SUCCESS) {
        return iss_patch_fail_write(p, rv);
    }
    p->tmp_path = NULL;                 /* nothing to remove */
    req->written = d;
    iss_digest_remember(r, r->uri, d->sha256);
    apr_table_setn(r->headers_out, "ETag",
                   iss_filedigest_etag(d->sha256, r->pool));
    apr_table_setn(r->headers_out, "Repr-Digest",
                   iss_digest_field(d->sha256, r->pool));
    return OK;
}

static int patch(iss_patch_t *p, format_e fmt)
{
    request_rec *r = p->r;
    iss_dir_conf_t *dconf = iss_config_dir(r);
    const char *why;
    dav_resource *res;
    dav_error *err;
    apr_status_t rv;
    int st;

    p->max_target = (apr_off_t)iss_config_patch_max_target(dconf);
    p->max_window = (apr_size_t)iss_config_patch_max_window(dconf);
    if (fmt == FMT_NONE) {
        return iss_patch_fail(p, HTTP_UNSUPPORTED_MEDIA_TYPE,
                              "unsupported-patch-format", "PATCH here takes "
                              "a body of type %s.", ISS_PATCH_ACCEPT);
    }
    if (!iss_digest_request_field(r, "Repr-Digest", p->repr, &p->want_repr,
                                  &why)
        || !iss_digest_request_field(r, "Content-Digest", p->content,
                                     &p->want_content, &why)) {
        return iss_patch_fail(p, HTTP_BAD_REQUEST, "invalid-digest", "%s",
                              why);
    }
    if (fmt == FMT_RANGE && (st = iss_patch_range_check(p)) != OK) {
        return st;
    }
    if ((err = dav_get_resource(r, 0, 0, &res)) != NULL) {
        p->status = -1;
        return dav_handle_err(r, err, NULL);
    }
    if (!res->exists) {
        return iss_patch_fail(p, HTTP_NOT_FOUND, "not-found", "There is no "
                              "file here to patch (create it with PUT).");
    }
    if (res->collection) {
        apr_table_setn(r->headers_out, "Allow", "OPTIONS, GET, HEAD, POST, "
                       "DELETE, TRACE, PROPFIND, PROPPATCH, COPY, MOVE, "
                       "LOCK, UNLOCK, REPORT");
        return iss_patch_fail(p, HTTP_METHOD_NOT_ALLOWED, "not-a-file",
                              "PATCH applies to files, not to collections.");
    }
    p->path = r->filename;
    rv = apr_file_open(&p->src, p->path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0,
                       r->pool);
    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(&p->src_info, IDENT, p->src);
    }
    if (rv != APR_SUCCESS || p->src_info.filetype != APR_REG) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01058)
                      "PATCH %s: cannot open %s", r->uri, p->path);
        return iss_patch_fail(p, HTTP_INTERNAL_SERVER_ERROR, "read-failed",
                              "The file cannot be read.");
    }
    if ((st = check_conditions(p, res, fmt)) != OK) {
        return st;
    }
    if ((err = iss_capture_modify(r, res)) != NULL) {
        p->status = -1;
        return dav_handle_err(r, err, NULL);
    }
    if ((st = open_tmp(p)) != OK) {
        return st;
    }
    st = fmt == FMT_VCDIFF ? iss_patch_vcdiff(p) : iss_patch_range(p);
    if (st != OK) {
        return st;
    }
    return commit(p);
}

static int patch_handler(request_rec *r)
{
    iss_patch_t *p;
    int st;

    if (r->method_number != M_PATCH || !iss_is_enabled(r)) {
        return DECLINED;
    }
    p = apr_pcalloc(r->pool, sizeof(*p));
    p->r = r;
    st = patch(p, format_of(r));
    if (p->status == -1) {
        return st;                      /* answered by mod_dav's error */
    }
    if (st != OK) {
        /* Whatever went wrong, the file was not replaced. */
        iss_capture_unchanged(r);
        return send_error(p);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ISSLOGNO(01059)
                  "PATCH %s: %" APR_OFF_T_FMT " bytes became %"
                  APR_OFF_T_FMT, r->uri, p->src_info.size, p->written);
    r->status = HTTP_NO_CONTENT;
    {
        apr_bucket_brigade *bb = apr_brigade_create(r->pool,
                                                    r->connection
                                                    ->bucket_alloc);

        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
        ap_pass_brigade(r->output_filters, bb);
    }
    return OK;
}

void iss_patch_register_hooks(apr_pool_t *p)
{
    /* Before mod_dav's handler, which would decline PATCH. */
    ap_hook_handler(patch_handler, NULL, NULL, APR_HOOK_FIRST);
}
