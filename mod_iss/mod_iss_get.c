/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * GET and HEAD of the files of a `Dav iss` location.  mod_dav_fs leaves
 * them to httpd's default handler, whose ETag is mod_dav_fs's (weak
 * within the second of a change); this handler does what the default
 * handler does for a file, with the strong ETag of mod_iss_digest, and
 * adds Repr-Digest when asked for (Want-Repr-Digest) or configured
 * (ISSDigestHeader Always).  It steps aside for anything else: files
 * with a handler of their own, directories, path info, sub-requests of
 * other modules' making are all left to whoever would serve them.
 */

#include "mod_iss_chunk.h"
#include "mod_iss_config.h"
#include "mod_iss_digest.h"
#include "mod_iss_state.h"

#include <http_core.h>
#include <http_protocol.h>
#include <http_request.h>

static int serves(request_rec *r)
{
    if (r->method_number != M_GET || r->finfo.filetype != APR_REG
        || (r->path_info && *r->path_info) || !iss_is_enabled(r)) {
        return 0;
    }
    /* No handler of its own: ap_invoke_handler() names such a request
     * after its content type, or "" (AP_DEFAULT_HANDLER_NAME) without
     * one; "default-handler" is the core's own name. */
    if (r->handler == NULL || *r->handler == '\0'
        || strcmp(r->handler, "default-handler") == 0) {
        return 1;
    }
    return r->content_type
           && strncasecmp(r->handler, r->content_type,
                          strlen(r->handler)) == 0
           && strchr(r->handler, '/') != NULL;
}

/* The file's manifest instead of its content, for a client that asked
 * for it (Accept: application/vnd.mod-iss.manifest). */
static int send_manifest(request_rec *r, apr_file_t *fd,
                         const apr_finfo_t *fi)
{
    const char *rel = iss_state_rel_path(r, r->uri);
    apr_bucket_brigade *bb;
    iss_manifest_t *m;
    unsigned char *buf;
    apr_size_t len;
    apr_status_t rv;
    int status;

    if (rel == NULL
        || (rv = iss_chunk_manifest_of_file(r, rel, fd, fi, 1, &m))
           != APR_SUCCESS
        || (rv = iss_manifest_encode(m, &buf, &len, r->pool))
           != APR_SUCCESS) {
        apr_file_close(fd);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ISSLOGNO(01067)
                      "cannot make the manifest of %s%s", r->filename,
                      rel == NULL ? "" : " (it changed while read, or it "
                      "could not be read)");
        apr_table_setn(r->err_headers_out, "Retry-After", "1");
        r->connection->keepalive = AP_CONN_CLOSE;
        iss_send_error_body(r, HTTP_SERVICE_UNAVAILABLE, ISS_XML_NS,
                            "manifest-unavailable", NULL, "The manifest of this "
                            "file cannot be made now (it changed while it "
                            "was read, or it cannot be read); ask again.");
        return OK;
    }
    apr_file_close(fd);
    if ((status = ap_discard_request_body(r)) != OK) {
        return status;
    }
    iss_digest_remember(r, r->uri, m->file_sha256);
    ap_set_content_type(r, ISS_MANIFEST_MEDIA_TYPE);
    apr_table_setn(r->headers_out, "ETag",
                   iss_chunk_manifest_etag(m->file_sha256, r->pool));
    ap_update_mtime(r, fi->mtime);
    ap_set_last_modified(r);
    ap_set_content_length(r, (apr_off_t)len);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    if ((status = ap_meets_conditions(r)) != OK) {
        r->status = status;
    }
    else if (!r->header_only) {
        apr_brigade_write(bb, NULL, NULL, (const char *)buf, len);
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(r->connection
                                                      ->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, bb);
    return rv == APR_SUCCESS || r->connection->aborted ? OK
                                                       : AP_FILTER_ERROR;
}

static int get_handler(request_rec *r)
{
    core_dir_config *d = ap_get_core_module_config(r->per_dir_config);
    unsigned char sha[ISS_DIGEST_SHA256_LEN];
    apr_finfo_t fi;
    apr_bucket_brigade *bb;
    apr_bucket *e;
    apr_file_t *fd;
    apr_status_t rv;
    int status, found;

    if (!serves(r)) {
        return DECLINED;
    }
    /* Everything below describes the file this descriptor holds: a PUT
     * or PATCH renaming another file into place meanwhile changes
     * nothing of this answer. */
    rv = apr_file_open(&fd, r->filename, APR_READ | APR_BINARY
#if APR_HAS_SENDFILE
                       | AP_SENDFILE_ENABLED(d->enable_sendfile)
#endif
                       , 0, r->pool);
    if (rv != APR_SUCCESS) {
        return DECLINED;           /* the default handler says why */
    }
    rv = apr_file_info_get(&fi, APR_FINFO_IDENT | APR_FINFO_SIZE
                           | APR_FINFO_MTIME | APR_FINFO_TYPE
                           | APR_FINFO_CTIME, fd);
    if (rv != APR_SUCCESS || fi.filetype != APR_REG) {
        apr_file_close(fd);
        return DECLINED;
    }
    if (iss_config_chunking(iss_config_dir(r))) {
        /* The answer depends on Accept (the manifest or the content). */
        apr_table_mergen(r->headers_out, "Vary", "Accept");
        if (iss_chunk_wants_manifest(r)) {
            return send_manifest(r, fd, &fi);
        }
    }
    iss_digest_of_file(r, r->uri, fd, &fi, sha, &found);
    if (!found) {
        apr_file_close(fd);
        return DECLINED;           /* the default handler serves it */
    }
    ap_allow_standard_methods(r, MERGE_ALLOW, M_GET, M_OPTIONS, M_POST, -1);
    if ((status = ap_discard_request_body(r)) != OK) {
        apr_file_close(fd);
        return status;
    }
    ap_update_mtime(r, fi.mtime);
    ap_set_last_modified(r);
    apr_table_setn(r->headers_out, "ETag", iss_digest_etag(sha, r->pool));
    if (iss_digest_wanted_by(r)) {
        apr_table_setn(r->headers_out, "Repr-Digest",
                       iss_digest_field(sha, r->pool));
    }
    ap_set_accept_ranges(r);
    ap_set_content_length(r, fi.size);

    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    if ((status = ap_meets_conditions(r)) != OK) {
        apr_file_close(fd);
        r->status = status;
    }
    else {
        e = apr_brigade_insert_file(bb, fd, 0, fi.size, r->pool);
#if APR_HAS_MMAP
        if (d->enable_mmap == ENABLE_MMAP_OFF) {
            (void)apr_bucket_file_enable_mmap(e, 0);
        }
#endif
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(r->connection
                                                      ->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, bb);
    apr_brigade_cleanup(bb);
    if (rv == APR_SUCCESS || r->status != HTTP_OK || r->connection->aborted) {
        return OK;
    }
    return AP_FILTER_ERROR;
}

void iss_get_register_hooks(apr_pool_t *p)
{
    /* Handlers with a name of their own (cgi-script, ...) run first. */
    ap_hook_handler(get_handler, NULL, NULL, APR_HOOK_LAST);
}
