/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* POLLRDHUP (Linux) */
#endif

#include "mod_iss_patch.h"
#include "mod_iss_capture.h"
#include "mod_iss_config.h"
#include "mod_iss_digest.h"
#include "mod_iss_provider.h"
#include "mod_iss_state.h"
#include "iss_davfs.h"
#include "iss_filedigest.h"
#include "iss_manifest_bg.h"

#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>

#include <apr_portable.h>
#include <http_core.h>

#include <errno.h>
#include <poll.h>
#include <stdarg.h>

#define BODY_READ (64 * 1024)
/* Bytes of new content between two looks at whether the client is
 * still there. */
#define GONE_CHECK (4 * 1024 * 1024)


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
    if (rv == APR_ECONNABORTED) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, p->r, ISSLOGNO(01141)
                      "%s %s: the client went away after %" APR_OFF_T_FMT
                      " bytes of new content; stopped, the file was not "
                      "changed", p->r->method, p->r->uri, p->written);
        return iss_patch_fail(p, HTTP_BAD_REQUEST, "client-gone",
                              "The connection was closed before the new "
                              "content was complete; the file was not "
                              "changed.");
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
int iss_patch_send_error(iss_patch_t *p)
{
    request_rec *r = p->r;

    if (p->status == AP_FILTER_ERROR) {
        return AP_FILTER_ERROR;        /* httpd has answered already */
    }
    /* A full disk or staging area is the admin's to know, not an
     * error of the server. */
    ap_log_rerror(APLOG_MARK, p->status == HTTP_INSUFFICIENT_STORAGE
                  ? APLOG_WARNING : p->status >= 500 ? APLOG_ERR
                  : APLOG_INFO, 0,
                  r, ISSLOGNO(01057) "%s %s refused with %d: %s", r->method,
                  r->uri, p->status, p->msg);
    if (p->status == HTTP_UNSUPPORTED_MEDIA_TYPE) {
        apr_table_setn(r->headers_out, "Accept-Patch", iss_patch_accept(r));
    }
    /* The rest of a refused body is not worth reading. */
    r->connection->keepalive = AP_CONN_CLOSE;
    iss_send_error_body(r, p->status, ISS_XML_NS, p->tag, p->xml, p->msg);
    return OK;
}

/* ---- I/O ------------------------------------------------------------------ */

/* Whether the client has closed the connection: a write to it failed
 * (c->aborted), or the socket says the peer closed its side or reset it
 * (poll() with POLLRDHUP, a timeout of 0: nothing is read).  Not the
 * input filters: a speculative read there meets mod_reqtimeout's body
 * timeout once it has passed (APR_TIMEUP for a client that is still
 * waiting, after a long PATCH), and TLS.  Where POLLRDHUP does not
 * exist, only c->aborted. */
static int client_gone(request_rec *r)
{
    conn_rec *c = r->connection;

    if (c->aborted) {
        return 1;
    }
#ifdef POLLRDHUP
    {
        apr_socket_t *s = ap_get_conn_socket(c);
        apr_os_sock_t fd;
        struct pollfd pfd;

        if (s != NULL && apr_os_sock_get(&fd, s) == APR_SUCCESS) {
            pfd.fd = fd;
            pfd.events = POLLRDHUP;
            pfd.revents = 0;
            if (poll(&pfd, 1, 0) == 1
                && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
                c->aborted = 1;
                return 1;
            }
        }
    }
#endif
    return 0;
}

apr_status_t iss_patch_write(iss_patch_t *p, const void *buf, apr_size_t len)
{
    apr_status_t rv;

    /* Every GONE_CHECK bytes: writing on for nobody is the work a
     * client that sent a small delta and left must not cause. */
    if (p->written / GONE_CHECK != (p->written + (apr_off_t)len) / GONE_CHECK
        && client_gone(p->r)) {
        return APR_ECONNABORTED;
    }
    rv = apr_file_write_full(p->out, buf, len, NULL);

    if (rv == APR_SUCCESS) {
        if (p->builder) {
            rv = iss_manifest_bg_feed(p->builder, buf, len);
        }
        else {
            iss_digest_update(p->sha, buf, len);
        }
        if (p->sums) {
            iss_digest_sums_update(p->sums, buf, len);
        }
        p->written += (apr_off_t)len;
    }
    return rv;
}

/* The body kept in memory: grown as it comes, never beyond limit. */
typedef struct collect_t {
    iss_patch_t *p;
    char *buf;
    apr_size_t len, size, limit;
} collect_t;

static int too_large(iss_patch_t *p, apr_size_t limit)
{
    return iss_patch_fail(p, HTTP_REQUEST_ENTITY_TOO_LARGE,
                          "manifest-too-large", "The body is larger than "
                          "the largest manifest of this location (%"
                          APR_SIZE_T_FMT " bytes, from ISSUploadMaxSize); "
                          "the file was not changed.", limit);
}

static apr_status_t collect(void *baton, const char *data, apr_size_t len)
{
    collect_t *c = baton;

    if (len > c->limit - c->len) {
        too_large(c->p, c->limit);
        return APR_ENOSPC;
    }
    if (len > c->size - c->len) {
        apr_size_t size = c->size;
        char *grown;

        while (len > size - c->len) {
            size = size > c->limit / 2 ? c->limit : size * 2;
        }
        grown = apr_palloc(c->p->r->pool, size);
        memcpy(grown, c->buf, c->len);
        c->buf = grown;
        c->size = size;
    }
    memcpy(c->buf + c->len, data, len);
    c->len += len;
    return APR_SUCCESS;
}

int iss_patch_read_all(iss_patch_t *p, apr_size_t max, char **buf,
                       apr_size_t *len)
{
    request_rec *r = p->r;
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    collect_t c = { p, NULL, 0, 64 * 1024, max };
    apr_off_t n = -1;
    int st;

    /* httpd has checked Content-Length's syntax already. */
    if (cl && apr_strtoff(&n, cl, NULL, 10) == APR_SUCCESS && n >= 0) {
        if ((apr_uint64_t)n > max) {
            return too_large(p, max);
        }
        c.size = (apr_size_t)n;
    }
    if (c.size > max) {
        c.size = max;
    }
    c.buf = apr_palloc(r->pool, c.size ? c.size : 1);
    st = iss_patch_read_body(p, collect, &c);
    *buf = c.buf;
    *len = c.len;
    return st;
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

const char *iss_patch_accept(request_rec *r)
{
    return iss_config_chunking(iss_config_dir(r)) ? ISS_PATCH_ACCEPT
                                                  : ISS_PATCH_ACCEPT_DELTAS;
}

static int media_type_is(const char *ct, apr_size_t n, const char *type)
{
    return n == strlen(type) && strncasecmp(ct, type, n) == 0;
}

static iss_patch_format_e format_of(request_rec *r)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");
    int chunks = iss_config_chunking(iss_config_dir(r));
    apr_size_t n;

    if (ct == NULL) {
        return ISS_PATCH_NONE;
    }
    n = strcspn(ct, "; \t");
    if (media_type_is(ct, n, "application/vcdiff")) {
        return ISS_PATCH_VCDIFF;
    }
    if (media_type_is(ct, n, "application/x-sabredav-partialupdate")) {
        return ISS_PATCH_RANGE;
    }
    if (chunks && media_type_is(ct, n, ISS_MANIFEST_MEDIA_TYPE)) {
        return ISS_PATCH_MANIFEST;
    }
    if (chunks && media_type_is(ct, n, ISS_MANIFEST_DELTA_MEDIA_TYPE)) {
        return ISS_PATCH_MANIFEST_DELTA;
    }
    return ISS_PATCH_NONE;
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
                              "/" ISS_DAVFS_TMP_PREFIX "XXXXXX", NULL);
    apr_status_t rv;

    rv = apr_file_mktemp(&p->out, templ, APR_FOPEN_CREATE | APR_FOPEN_READ
                         | APR_FOPEN_WRITE | APR_FOPEN_EXCL
                         | APR_FOPEN_BINARY, r->pool);
    if (rv != APR_SUCCESS) {
        return iss_patch_fail_write(p, rv);
    }
    p->tmp_path = templ;
    apr_pool_cleanup_register(r->pool, p, remove_tmp, apr_pool_cleanup_null);
    /* The old file's permissions; a new file's: rw-r--r-- (mkstemp's
     * are rw-------). */
    if ((rv = apr_file_perms_set(templ, p->src
                                        ? p->src_info.protection
                                        : APR_FPROT_UREAD | APR_FPROT_UWRITE
                                          | APR_FPROT_GREAD
                                          | APR_FPROT_WREAD))
        != APR_SUCCESS && rv != APR_ENOTIMPL) {
        return iss_patch_fail_write(p, rv);
    }
    rv = apr_file_open(&p->back, templ, APR_FOPEN_READ | APR_FOPEN_BINARY, 0,
                       r->pool);
    if (rv != APR_SUCCESS) {
        return iss_patch_fail_write(p, rv);
    }
    /* ownCloud's checksums, in the same pass as the SHA-256. */
    if (iss_config_oc_sums(iss_config_dir(r))
        && iss_digest_sums_create(&p->sums,
                                  iss_config_oc_sums(iss_config_dir(r)),
                                  r->pool) != APR_SUCCESS) {
        p->sums = NULL;               /* (computed when first asked for) */
    }
    /* The new content's manifest is made as it is written (an upload by
     * manifest has it already). */
    if (p->manifest == NULL && iss_config_chunking(iss_config_dir(r))
        && iss_manifest_bg_create(&p->builder,
                                  iss_config_chunk_sizes(iss_config_dir(r)),
                                  r->pool) == APR_SUCCESS) {
        return OK;
    }
    return iss_digest_create(&p->sha, r->pool) == APR_SUCCESS
        ? OK
        : iss_patch_fail(p, HTTP_INTERNAL_SERVER_ERROR, "no-sha256",
                         "SHA-256 is not available.");
}

/* Conditions, in RFC 9110 order, before anything is read or written:
 * against the ETag of the file held open, the one the patch will read. */
static int check_conditions(iss_patch_t *p, dav_resource *res)
{
    request_rec *r = p->r;
    unsigned char sha[ISS_DIGEST_SHA256_LEN];
    dav_response *multi = NULL;
    dav_error *err;
    int found = 0;

    if ((p->format == ISS_PATCH_VCDIFF
         || p->format == ISS_PATCH_MANIFEST_DELTA)
        && !apr_table_get(r->headers_in, "If-Match")) {
        return iss_patch_fail(p, HTTP_PRECONDITION_REQUIRED,
                              "if-match-required", "A VCDIFF or manifest-delta "
                              "PATCH must say which version it applies to: "
                              "send If-Match "
                              "with the ETag of the file (from GET, HEAD, "
                              "PROPFIND, or the PUT or PATCH that made it).");
    }
    if (iss_upload_current_digest(p)) {
        memcpy(sha, iss_upload_current_digest(p), sizeof(sha));
        found = 1;
    }
    else if (p->src) {
        iss_digest_of_file(r, r->uri, p->src, &p->src_info, sha, &found);
    }
    if (found) {
        /* The real ETag only for a client that may read the file: a
         * write-only one gets the same answer for every guess. */
        apr_table_setn(r->headers_out, "ETag",
                       iss_digest_condition_etag(r, r->uri, sha, NULL));
    }
    /* As mod_dav's PUT: a new member is also checked against the locks
     * of its parent (a depth-infinity lock on a collection covers the
     * members to come: 423 without its token). */
    p->res = res;
    p->res_state = dav_get_resource_state(r, res);
    err = dav_validate_request(r, res, 0, NULL, &multi,
                               p->res_state == DAV_RESOURCE_NULL
                               ? DAV_VALIDATE_PARENT : DAV_VALIDATE_RESOURCE,
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
        /* 423 (lock token missing) and friends, with mod_dav's body (a
         * lock of the parent: 207 naming it, as for PUT). */
        p->status = -1;
        return dav_handle_err(r, err, multi);
    }
    return OK;
}

/* The last check and the rename, under the store's lock: two PATCHes of
 * one store (and uploads by manifest) cannot both pass the check and
 * rename one after the other.  A new file is linked into place, which
 * fails if another request made one meanwhile. */
typedef struct place_t {
    iss_patch_t *p;
    int changed;
    apr_status_t rv;
} place_t;

static apr_status_t place_txn(void *baton, iss_store_txn_t *txn)
{
    place_t *pl = baton;
    iss_patch_t *p = pl->p;

    (void)txn;
    if (p->src ? !unchanged(p) : 0) {
        pl->changed = 1;
        return APR_SUCCESS;
    }
    if (p->src) {
        pl->rv = apr_file_rename(p->tmp_path, p->path, p->r->pool);
    }
    else {
        apr_finfo_t fi;

        pl->rv = apr_file_link(p->tmp_path, p->path);
        if (APR_STATUS_IS_EEXIST(pl->rv)) {
            pl->changed = 1;
            pl->rv = APR_SUCCESS;
            return APR_SUCCESS;
        }
        if (pl->rv == APR_SUCCESS) {
            apr_file_remove(p->tmp_path, p->r->pool);
        }
        else if (apr_stat(&fi, p->path, APR_FINFO_TYPE, p->r->pool)
                 == APR_SUCCESS) {
            pl->changed = 1;            /* (no hard links here) */
            pl->rv = APR_SUCCESS;
        }
        else {
            /* A file system without hard links: under the store's lock,
             * no other upload or PATCH can create the file meanwhile. */
            pl->rv = apr_file_rename(p->tmp_path, p->path, p->r->pool);
        }
    }
    return APR_SUCCESS;
}

static int place(iss_patch_t *p)
{
    place_t pl = { p, 0, APR_SUCCESS };
    iss_store_t *store;
    apr_status_t rv;

    if (iss_state_store(p->r, &store) != NULL) {
        return iss_patch_fail(p, HTTP_SERVICE_UNAVAILABLE,
                              "state-unavailable", "The state store is not "
                              "available; the file was not changed.");
    }
    /* The store's lock serialises the last check and the rename; nothing
     * is written, nothing to wait for. */
    if ((rv = iss_store_txn_ex(store, place_txn, &pl, ISS_STORE_LAZY,
                               p->r->pool)) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, p->r, ISSLOGNO(01075)
                      "%s %s: cannot take the state store's lock (%s)",
                      p->r->method, p->r->uri, iss_store_last_error(store));
        return iss_patch_fail(p, HTTP_SERVICE_UNAVAILABLE,
                              "state-unavailable", "The state store is not "
                              "available; the file was not changed.");
    }
    if (pl.changed) {
        return iss_patch_fail(p, HTTP_PRECONDITION_FAILED, "changed",
                              p->src ? "The file was replaced while the "
                              "new content was written; the other change "
                              "stays.  Fetch the new ETag and try again."
                              : "Another request created the file while "
                              "the new content was written; that one "
                              "stays.  Fetch its ETag and try again.");
    }
    if (pl.rv != APR_SUCCESS) {
        return iss_patch_fail_write(p, pl.rv);
    }
    p->tmp_path = NULL;                 /* nothing to remove */
    return OK;
}

/* Check the new content and put it into place. */
static int commit(iss_patch_t *p)
{
    request_rec *r = p->r;
    iss_request_t *req = iss_provider_request(r);
    iss_filedigest_t *d = apr_pcalloc(r->pool, sizeof(*d));
    apr_finfo_t fi;
    apr_status_t rv;
    int st;

    if (p->builder) {
        iss_manifest_t *m;

        if ((rv = iss_manifest_bg_finish(p->builder, &m))
            != APR_SUCCESS) {
            return iss_patch_fail(p, HTTP_INTERNAL_SERVER_ERROR, "failed",
                                  "The new content could not be hashed.");
        }
        p->manifest = m;
        memcpy(d->sha256, m->file_sha256, sizeof(d->sha256));
    }
    else {
        iss_digest_final(p->sha, d->sha256);
    }
    if (p->sums) {
        iss_digest_sums_final(p->sums, &d->sums);
    }
    if (p->want_repr && memcmp(p->repr, d->sha256, sizeof(p->repr)) != 0) {
        return iss_patch_fail(p, HTTP_CONFLICT, "repr-digest-mismatch",
                              "The patch applied to the current content "
                              "gives content whose SHA-256 is %s, not the "
                              "Repr-Digest of the request (or of the "
                              "manifest); the file was not changed.",
                              iss_digest_field(d->sha256, r->pool));
    }
    if ((rv = apr_file_info_get(&fi, IDENT, p->out)) != APR_SUCCESS) {
        return iss_patch_fail_write(p, rv);
    }
    iss_filedigest_set_identity(d, &fi);
    apr_file_close(p->back);
    p->back = NULL;
    apr_file_close(p->out);
    p->out = NULL;
    if ((st = place(p)) != OK) {
        return st;
    }
    req->written = d;
    req->written_manifest = p->manifest;
    iss_digest_remember(r, r->uri, d->sha256);
    apr_table_setn(r->headers_out, "ETag",
                   iss_digest_etag(d->sha256, r->pool));
    apr_table_setn(r->headers_out, "Repr-Digest",
                   iss_digest_field(d->sha256, r->pool));
    return OK;
}

/* Whether the folder a new file would go into exists: httpd's walk
 * stops at the first missing part of the path (r->filename), the rest
 * is path info. */
static int parent_exists(request_rec *r)
{
    const char *slash = strrchr(r->filename, '/');
    apr_finfo_t fi;

    return (r->path_info == NULL || *r->path_info == '\0') && slash
           && apr_stat(&fi, apr_pstrmemdup(r->pool, r->filename,
                                           (apr_size_t)(slash
                                                        - r->filename)),
                       APR_FINFO_TYPE, r->pool) == APR_SUCCESS
           && fi.filetype == APR_DIR;
}

static int patch(iss_patch_t *p)
{
    request_rec *r = p->r;
    iss_dir_conf_t *dconf = iss_config_dir(r);
    int chunked = p->format == ISS_PATCH_MANIFEST
                  || p->format == ISS_PATCH_MANIFEST_DELTA;
    const char *why;
    dav_resource *res;
    dav_error *err;
    apr_status_t rv;
    int st;

    p->max_target = (apr_off_t)iss_config_patch_max_target(dconf);
    p->max_window = (apr_size_t)iss_config_patch_max_window(dconf);
    p->growth_ratio = (apr_uint64_t)iss_config_patch_growth_ratio(dconf);
    p->growth_floor = (apr_uint64_t)iss_config_patch_growth_floor(dconf);
    if (p->format == ISS_PATCH_NONE) {
        return iss_patch_fail(p, HTTP_UNSUPPORTED_MEDIA_TYPE,
                              "unsupported-patch-format", "PATCH here takes "
                              "a body of type %s.", iss_patch_accept(r));
    }
    if (!iss_digest_request_field(r, "Repr-Digest", p->repr, &p->want_repr,
                                  &why)
        || !iss_digest_request_field(r, "Content-Digest", p->content,
                                     &p->want_content, &why)) {
        return iss_patch_fail(p, HTTP_BAD_REQUEST, "invalid-digest", "%s",
                              why);
    }
    if (p->format == ISS_PATCH_RANGE
        && (st = iss_patch_range_check(p)) != OK) {
        return st;
    }
    if ((err = dav_get_resource(r, 0, 0, &res)) != NULL) {
        p->status = -1;
        return dav_handle_err(r, err, NULL);
    }
    if (!res->exists && !chunked) {
        return iss_patch_fail(p, HTTP_NOT_FOUND, "not-found", "There is no "
                              "file here to patch (create it with PUT).");
    }
    if (!res->exists && p->format == ISS_PATCH_MANIFEST_DELTA) {
        return iss_patch_fail(p, HTTP_NOT_FOUND, "not-found", "There is no "
                              "file here whose manifest the delta could "
                              "change (send a whole manifest).");
    }
    if (res->collection) {
        apr_table_setn(r->headers_out, "Allow", "OPTIONS, GET, HEAD, POST, "
                       "DELETE, TRACE, PROPFIND, PROPPATCH, COPY, MOVE, "
                       "LOCK, UNLOCK, REPORT");
        return iss_patch_fail(p, HTTP_METHOD_NOT_ALLOWED, "not-a-file",
                              "PATCH applies to files, not to collections.");
    }
    p->path = r->filename;
    if (res->exists) {
        rv = apr_file_open(&p->src, p->path, APR_FOPEN_READ
                           | APR_FOPEN_BINARY, 0, r->pool);
        if (rv == APR_SUCCESS) {
            rv = apr_file_info_get(&p->src_info, IDENT, p->src);
        }
        if (rv != APR_SUCCESS || p->src_info.filetype != APR_REG) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01058)
                          "PATCH %s: cannot open %s", r->uri, p->path);
            return iss_patch_fail(p, HTTP_INTERNAL_SERVER_ERROR,
                                  "read-failed", "The file cannot be read.");
        }
    }
    else if (!parent_exists(r)) {
        return iss_patch_fail(p, HTTP_CONFLICT, "no-parent", "The folder "
                              "the new file would go into does not exist.");
    }
    if (chunked && (st = iss_upload_begin(p)) != OK) {
        return st;
    }
    if ((st = check_conditions(p, res)) != OK) {
        return st;
    }
    /* An upload by manifest finds every chunk before anything changes. */
    if (chunked && (st = iss_upload_prepare(p)) != OK) {
        return st;
    }
    if ((err = iss_capture_modify(r, res)) != NULL) {
        p->status = -1;
        return dav_handle_err(r, err, NULL);
    }
    if ((st = open_tmp(p)) != OK) {
        return st;
    }
    switch (p->format) {
    case ISS_PATCH_VCDIFF:
        st = iss_patch_vcdiff(p);
        break;
    case ISS_PATCH_RANGE:
        st = iss_patch_range(p);
        break;
    default:
        st = iss_upload_assemble(p);
        break;
    }
    if (st != OK) {
        return st;
    }
    return commit(p);
}

/* A new member of a locked collection inherits its locks, as after
 * mod_dav's PUT (dav_notify_created): a later PUT or DELETE of it needs
 * the token too.  The file is in place already: a failure is logged. */
static void notify_created(iss_patch_t *p)
{
    request_rec *r = p->r;
    const dav_hooks_locks *locks = dav_get_lock_hooks(r);
    dav_lockdb *lockdb = NULL;
    dav_error *err;

    if (locks == NULL || p->res == NULL) {
        return;
    }
    if ((err = locks->open_lockdb(r, 0, 0, &lockdb)) == NULL) {
        err = dav_notify_created(r, lockdb, p->res, p->res_state, 0);
        locks->close_lockdb(lockdb);
    }
    if (err != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ISSLOGNO(01140)
                      "PATCH %s: the new file could not inherit the locks "
                      "of its collection: %s", r->uri,
                      err->desc ? err->desc : "(no description)");
    }
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
    p->format = format_of(r);
    st = patch(p);
    if (p->status == -1) {
        return st;                      /* answered by mod_dav's error */
    }
    if (st != OK) {
        /* Whatever went wrong, the file was not replaced. */
        iss_capture_unchanged(r);
        return iss_patch_send_error(p);
    }
    iss_upload_done(p);
    if (p->src == NULL) {
        notify_created(p);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ISSLOGNO(01059)
                  "PATCH %s: %" APR_OFF_T_FMT " bytes became %"
                  APR_OFF_T_FMT, r->uri, p->src_info.size, p->written);
    r->status = p->src ? HTTP_NO_CONTENT : HTTP_CREATED;
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
