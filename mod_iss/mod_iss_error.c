/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * The body of every refusal mod_iss answers itself (PATCH and POST of
 * chunks, the sync-collection REPORT's client errors): RFC 4918 section
 * 16's DAV:error with the condition's element and, for people, an
 * I:message saying why.  mod_dav's own errors keep mod_dav's body.
 *
 * Where mod_iss refuses inside one of mod_dav's methods (the PUT input
 * filter, method_precondition), it answers at once with this body and
 * hands mod_dav an error whose status says "answered already"
 * (AP_FILTER_ERROR): mod_dav then sends nothing more.  It would still
 * log that error at error level ("An error occurred while reading the
 * request body"), a client's mistake reported as the server's, next to
 * our own line: iss_error_quiet_dav() lowers mod_dav's log level for
 * that one request, as a per-directory `LogLevel dav:crit` would.
 */

#include "mod_iss.h"

#include <apr_strings.h>
#include <http_core.h>
#include <http_protocol.h>
#include <util_filter.h>

void iss_send_error_body(request_rec *r, int status, const char *ns,
                         const char *tag, const char *xml, const char *msg)
{
    apr_bucket_brigade *bb = apr_brigade_create(r->pool,
                                                r->connection->bucket_alloc);
    const char *elem = "";

    if (tag && (ns == NULL || strcmp(ns, ISS_XML_NS) == 0)) {
        elem = apr_pstrcat(r->pool, "<I:", tag, "/>" DEBUG_CR, NULL);
    }
    else if (tag && strcmp(ns, "DAV:") == 0) {
        elem = apr_pstrcat(r->pool, "<D:", tag, "/>" DEBUG_CR, NULL);
    }
    else if (tag) {
        elem = apr_pstrcat(r->pool, "<E:", tag, " xmlns:E=\"",
                           apr_xml_quote_string(r->pool, ns, 1), "\"/>"
                           DEBUG_CR, NULL);
    }
    r->status = status;
    ap_set_content_type(r, "application/xml; charset=utf-8");
    ap_fputstrs(r->output_filters, bb, DAV_XML_HEADER DEBUG_CR
                "<D:error xmlns:D=\"DAV:\" xmlns:I=\"" ISS_XML_NS "\">"
                DEBUG_CR, elem, xml ? xml : "", "<I:message>",
                apr_xml_quote_string(r->pool, msg ? msg : "", 0),
                "</I:message>" DEBUG_CR "</D:error>" DEBUG_CR, NULL);
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(bb->bucket_alloc));
    ap_pass_brigade(r->output_filters, bb);
}

void iss_error_quiet_dav(request_rec *r)
{
    module *dav = ap_find_linked_module("mod_dav.c");
    const struct ap_logconf *now = r->log ? r->log
                                 : r->connection->log ? r->connection->log
                                 : &r->server->log;
    struct ap_logconf *quiet;

    if (dav == NULL) {
        return;
    }
    quiet = ap_new_log_config(r->pool, now);
    ap_set_module_loglevel(r->pool, quiet, dav->module_index, APLOG_CRIT);
    r->log = quiet;
}

dav_error *iss_error_answer(request_rec *r, const dav_error *err,
                            const char *tag)
{
    const char *ns = err->tagname ? err->namespace : ISS_XML_NS;

    iss_error_quiet_dav(r);
    /* What the client sent after its headers is not worth reading. */
    r->connection->keepalive = AP_CONN_CLOSE;
    iss_send_error_body(r, err->status, ns ? ns : "DAV:",
                        err->tagname ? err->tagname : tag, NULL, err->desc);
    return dav_new_error(r->pool, AP_FILTER_ERROR, 0, 0, NULL);
}
