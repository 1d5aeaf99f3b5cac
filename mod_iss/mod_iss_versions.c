/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * Retained versions over HTTP (issue 15; docs/protocol.md "Versions",
 * docs/design.md 3e).  A file's versions live at the file's own URL:
 *
 *   GET <file>?iss-versions              the list (XML), newest first
 *   GET <file>?iss-version=<etag text>   one version's bytes
 *
 * (HEAD alike.)  Being GETs of the file's own URL, httpd decides access
 * exactly as for a GET of the file, before this handler runs: a user
 * who may not GET the file gets httpd's refusal whatever the version
 * names, known or not, so the answer tells nothing about what is kept.
 * No other path is ever read: the digest names a version of this path
 * only (iss_versions_find() looks in the list of this path), so no
 * spelling of the query reaches another file's versions.
 */

#include "mod_iss_versions.h"
#include "mod_iss_config.h"
#include "mod_iss_state.h"
#include "iss_versions.h"

#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>

#define LIST_ARG    "iss-versions"
#define VERSION_ARG "iss-version="
/* Bytes read and sent per step of a version's body. */
#define PIECE (256 * 1024)

static int refuse(request_rec *r, int status, const char *tag,
                  const char *msg)
{
    iss_send_error_body(r, status, NULL, tag, NULL, msg);
    return OK;
}

static int send_list(request_rec *r, iss_store_t *store, const char *rel)
{
    apr_array_header_t *vs;
    apr_bucket_brigade *bb;
    const char *href = ap_os_escape_path(r->pool, r->uri, 1);
    apr_status_t rv;
    int i;

    if ((rv = iss_versions_list(store, rel, &vs, r->pool)) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01166)
                      "cannot list the versions of %s (%s)", r->uri,
                      iss_store_last_error(store));
        return refuse(r, HTTP_SERVICE_UNAVAILABLE, "state-unavailable",
                      "The versions could not be read.");
    }
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    ap_set_content_type(r, "application/xml; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    ap_fputstrs(r->output_filters, bb, DAV_XML_HEADER "\n"
                "<I:versions xmlns:D=\"DAV:\" xmlns:I=\"" ISS_XML_NS "\">\n",
                NULL);
    for (i = 0; i < vs->nelts; i++) {
        const iss_version_t *v = APR_ARRAY_IDX(vs, i, iss_version_t *);
        const char *etag = iss_digest_etag(v->digest, r->pool);
        char date[APR_RFC822_DATE_LEN];

        apr_rfc822_date(date, v->replaced);
        ap_fputstrs(r->output_filters, bb, "<I:version>\n<D:href>",
                    apr_xml_quote_string(r->pool, href, 0),
                    "?" VERSION_ARG,
                    apr_pstrmemdup(r->pool, etag + 1, strlen(etag) - 2),
                    "</D:href>\n<D:getetag>",
                    apr_xml_quote_string(r->pool, etag, 0),
                    "</D:getetag>\n<D:getcontentlength>",
                    apr_off_t_toa(r->pool, v->size),
                    "</D:getcontentlength>\n<I:replaced>", date,
                    "</I:replaced>\n</I:version>\n", NULL);
    }
    ap_fputs(r->output_filters, bb, "</I:versions>\n");
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
    ap_pass_brigade(r->output_filters, bb);
    return OK;
}

static int send_version(request_rec *r, iss_store_t *store, const char *rel,
                        const unsigned char digest[ISS_DIGEST_SHA256_LEN])
{
    iss_version_t *v;
    iss_version_reader_t *rd;
    apr_bucket_brigade *bb;
    apr_off_t off = 0;
    char *buf;
    apr_status_t rv;

    rv = iss_versions_find(store, rel, digest, &v, r->pool);
    if (rv == APR_NOTFOUND) {
        return refuse(r, HTTP_NOT_FOUND, "version-not-found",
                      "No version of this file has that entity tag.");
    }
    if (rv == APR_SUCCESS) {
        rv = iss_versions_open(store, v, &rd, r->pool);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01167)
                      "cannot read the version %s of %s (%s)",
                      iss_digest_etag(digest, r->pool), r->uri,
                      rv == APR_EGENERAL ? "its data is missing or "
                      "damaged" : iss_store_last_error(store));
        return refuse(r, HTTP_INTERNAL_SERVER_ERROR, "version-unreadable",
                      "The version's data could not be read.");
    }
    if (r->content_type == NULL) {
        ap_set_content_type(r, "application/octet-stream");
    }
    apr_table_setn(r->headers_out, "ETag",
                   iss_digest_etag(digest, r->pool));
    /* A version never changes; who may see it may change. */
    apr_table_setn(r->headers_out, "Cache-Control", "private");
    ap_set_content_length(r, v->size);
    if (r->header_only) {
        iss_versions_close(rd);
        return OK;
    }
    buf = apr_palloc(r->pool, PIECE);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (off < v->size) {
        apr_size_t got;

        rv = iss_versions_pread(rd, off, buf, PIECE, &got);
        if (rv != APR_SUCCESS || got == 0) {
            /* Headers are gone: cut the response short rather than send
             * bytes that failed their check (the client sees fewer bytes
             * than Content-Length said). */
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01168)
                          "version %s of %s failed its check at byte %"
                          APR_OFF_T_FMT "; the response is cut short",
                          iss_digest_etag(digest, r->pool), r->uri, off);
            r->connection->keepalive = AP_CONN_CLOSE;
            r->connection->aborted = 1;
            break;
        }
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_transient_create(
                                        buf, got, bb->bucket_alloc));
        if (ap_pass_brigade(r->output_filters, bb) != APR_SUCCESS
            || r->connection->aborted) {
            break;
        }
        apr_brigade_cleanup(bb);
        off += (apr_off_t)got;
    }
    iss_versions_close(rd);
    if (!r->connection->aborted) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
        ap_pass_brigade(r->output_filters, bb);
    }
    return OK;
}

static int versions_handler(request_rec *r)
{
    const char *args = r->args, *rel;
    unsigned char digest[ISS_DIGEST_SHA256_LEN];
    iss_store_t *store;
    dav_error *err;
    int list;

    if (r->method_number != M_GET || args == NULL || r->main
        || strncmp(args, "iss-version", 11) != 0 || !iss_is_enabled(r)) {
        return DECLINED;
    }
    list = strcmp(args, LIST_ARG) == 0;
    if (!list && (strncmp(args, VERSION_ARG, strlen(VERSION_ARG)) != 0
                  || !iss_versions_etag_digest(args + strlen(VERSION_ARG),
                                               strlen(args)
                                               - strlen(VERSION_ARG),
                                               digest))) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ISSLOGNO(01169)
                      "refused a version query of %s: '%s' is neither "
                      LIST_ARG " nor " VERSION_ARG "<entity tag>", r->uri,
                      args);
        return refuse(r, HTTP_BAD_REQUEST, "bad-version-query",
                      "Use ?iss-versions for the list or ?iss-version= "
                      "followed by a version's entity tag (43 characters of "
                      "base64url, without quotes).");
    }
    if (iss_config_versions(iss_config_dir(r)) == NULL) {
        return refuse(r, HTTP_NOT_FOUND, "versions-off",
                      "Versions are not kept here (ISSKeepVersions).");
    }
    rel = iss_state_rel_path(r, r->uri);
    /* r->uri, not r->filename: a file of a deleted folder has path info
     * (its folder is gone) and still has versions. */
    if (rel == NULL || *rel == '\0') {
        return refuse(r, HTTP_NOT_FOUND, "version-not-found",
                      "Only files have versions.");
    }
    if ((err = iss_state_store(r, &store)) != NULL) {
        return refuse(r, HTTP_SERVICE_UNAVAILABLE, "state-unavailable",
                      "The versions could not be read.");
    }
    return list ? send_list(r, store, rel) : send_version(r, store, rel,
                                                          digest);
}

void iss_versions_register_hooks(apr_pool_t *p)
{
    /* Before mod_dav's handler and the GET handler of mod_iss_get.c,
     * which would serve the file itself. */
    ap_hook_handler(versions_handler, NULL, NULL, APR_HOOK_FIRST);
}
