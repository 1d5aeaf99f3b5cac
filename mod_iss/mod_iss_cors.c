/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * CORS (the Fetch standard's cross-origin protocol) for browser apps that
 * sync with a location: `ISSCORSAllowOrigin origin ...` (docs/admin-guide.md).
 *
 *  - A preflight (OPTIONS with Origin and Access-Control-Request-Method)
 *    from a listed origin is answered here, in header_parser: after the
 *    location's configuration is known, before authentication (a
 *    preflight never carries credentials, and answering it says nothing
 *    but the policy below).  It allows every method and request header
 *    of the ISS protocol.  A preflight from another origin goes on as an
 *    ordinary OPTIONS, without CORS headers, and the browser refuses.
 *  - Every other request from a listed origin gets Access-Control-Allow-
 *    Origin and Expose-Headers (ETag, Repr-Digest, DAV, Accept-Patch,
 *    the ISS-* headers ...) in err_headers_out, so that refusals (401,
 *    412, 409 with the missing chunks) reach the app too.
 *  - Credentials (cookies, HTTP authentication) are allowed only for
 *    origins listed by name; `*` allows any origin without credentials
 *    (the Fetch standard forbids both together).
 *  - Where the directive is not set, nothing is added.
 */

#include "mod_iss_cors.h"
#include "mod_iss_config.h"

#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>

/* Every method of the ISS protocol (WebDAV, PATCH, POST of chunks,
 * REPORT). */
#define ALLOW_METHODS "GET, HEAD, PUT, DELETE, OPTIONS, PROPFIND, " \
    "PROPPATCH, MKCOL, COPY, MOVE, LOCK, UNLOCK, REPORT, PATCH, POST"

/* Every request header a client of the protocol sends that is not
 * CORS-safelisted (docs/protocol.md; WebDAV's; OC-* of ISSOwnCloudCompat). */
#define ALLOW_HEADERS "Authorization, Content-Type, Depth, Destination, " \
    "Overwrite, If, If-Match, If-None-Match, If-Modified-Since, " \
    "If-Unmodified-Since, If-Range, Range, Content-Range, Lock-Token, " \
    "Timeout, Repr-Digest, Content-Digest, Want-Repr-Digest, " \
    "Want-Content-Digest, X-Update-Range, ISS-Upload-Session, A-IM, " \
    "OC-Checksum, X-OC-Mtime, X-Requested-With"

/* Response headers an app needs to read (the safelisted ones, such as
 * Content-Type and Last-Modified, it reads anyway). */
#define EXPOSE_HEADERS "ETag, Repr-Digest, Content-Digest, DAV, " \
    "Accept-Patch, Allow, Location, Lock-Token, Retry-After, " \
    "ISS-Chunking, ISS-Upload-Session, ISS-Chunks-Stored, X-OC-MTime, " \
    "IM, Delta-Base"

/* How long a browser may keep a preflight's answer (seconds). */
#define MAX_AGE "600"

typedef enum { NOT_ALLOWED, ANY_ORIGIN, LISTED } allowed_e;

static allowed_e allowed(const apr_array_header_t *origins,
                         const char *origin)
{
    allowed_e found = NOT_ALLOWED;
    int i;

    for (i = 0; i < origins->nelts; i++) {
        const char *o = APR_ARRAY_IDX(origins, i, const char *);

        if (strcmp(o, "*") == 0) {
            found = ANY_ORIGIN;
        }
        /* Scheme and host are case-insensitive; browsers send them in
         * lower case. */
        else if (strcasecmp(o, origin) == 0) {
            return LISTED;
        }
    }
    return found;
}

static void allow_origin(request_rec *r, apr_table_t *t, allowed_e how,
                         const char *origin)
{
    if (how == LISTED) {
        apr_table_setn(t, "Access-Control-Allow-Origin", origin);
        apr_table_setn(t, "Access-Control-Allow-Credentials", "true");
    }
    else {
        apr_table_setn(t, "Access-Control-Allow-Origin", "*");
    }
}

static int header_parser(request_rec *r)
{
    const apr_array_header_t *origins;
    const char *origin;
    allowed_e how;

    if (r->main || (origins = iss_config_cors_origins(iss_config_dir(r)))
                   == NULL) {
        return DECLINED;
    }
    /* What a cache keeps of any answer here depends on Origin. */
    apr_table_mergen(r->err_headers_out, "Vary", "Origin");
    if ((origin = apr_table_get(r->headers_in, "Origin")) == NULL
        || (how = allowed(origins, origin)) == NOT_ALLOWED) {
        return DECLINED;
    }
    if (r->method_number == M_OPTIONS
        && apr_table_get(r->headers_in, "Access-Control-Request-Method")) {
        apr_bucket_brigade *bb = apr_brigade_create(r->pool,
                                                    r->connection->bucket_alloc);

        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, ISSLOGNO(01078)
                      "CORS preflight from %s for %s answered", origin,
                      apr_table_get(r->headers_in,
                                    "Access-Control-Request-Method"));
        allow_origin(r, r->headers_out, how, origin);
        apr_table_setn(r->headers_out, "Access-Control-Allow-Methods",
                       ALLOW_METHODS);
        apr_table_setn(r->headers_out, "Access-Control-Allow-Headers",
                       ALLOW_HEADERS);
        apr_table_setn(r->headers_out, "Access-Control-Max-Age", MAX_AGE);
        r->status = HTTP_NO_CONTENT;
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
        ap_pass_brigade(r->output_filters, bb);
        return DONE;
    }
    allow_origin(r, r->err_headers_out, how, origin);
    apr_table_setn(r->err_headers_out, "Access-Control-Expose-Headers",
                   EXPOSE_HEADERS);
    return DECLINED;
}

void iss_cors_register_hooks(apr_pool_t *p)
{
    /* First: a preflight is answered before anything else looks at it. */
    ap_hook_header_parser(header_parser, NULL, NULL, APR_HOOK_FIRST);
}
