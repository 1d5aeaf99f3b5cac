/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * Strong, content-based ETags for the files of a `Dav iss` location, in
 * every place mod_dav_fs would put its own (weak within the second of a
 * change, so that a client's If-Match right after its PUT fails):
 *
 *  - before mod_dav evaluates If-Match / If-None-Match (its
 *    dav_validate_request() takes the ETag from headers_out when one is
 *    there), in method_precondition, which every method runs first;
 *  - in the response of a PUT (the digest its body had) and of the
 *    methods above (removed again where it would describe something gone);
 *  - as DAV:getetag, by name (a live property provider asked first) and
 *    in allprop (mod_dav_fs's value is replaced in the list it built);
 *  - GET and HEAD: mod_iss_get.
 * I:repr-digest (our namespace) gives the Repr-Digest value by name.
 */

#include "mod_iss_digest.h"
#include "mod_iss_liveprop.h"
#include "mod_iss_owncloud.h"
#include "mod_iss_provider.h"

#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>

#define ETAG_OUT_FILTER "ISS_ETAG_OUT"

/* Unique among mod_dav's live property providers of this server. */
#define ISS_PROPID_getetag 21003
#define ISS_PROPID_repr_digest 21004

static int is_file_here(request_rec *r, const dav_resource *res)
{
    return r && res && res->exists && !res->collection && iss_is_enabled(r);
}

/* ---- responses ------------------------------------------------------ */

static apr_status_t etag_out(ap_filter_t *f, apr_bucket_brigade *bb)
{
    request_rec *r = f->r;
    /* Every request of the server passes here once: look, do not create. */
    iss_request_t *req = ap_get_module_config(r->request_config,
                                              &iss_module);
    int ok = r->status >= 200 && r->status < 300;

    ap_remove_output_filter(f);
    if (req == NULL || !req->etag_filter) {
        return ap_pass_brigade(f->next, bb);
    }
    if (r->method_number == M_PUT && ok) {
        const iss_digest_body_t *body = iss_digest_put_body(r);

        /* X-OC-Mtime, before the capture point records the file. */
        iss_oc_put_done(r);

        /* A whole body is the file's new content; after a Content-Range
         * PUT the file is read again. */
        iss_digest_remember(r, r->uri, body && body->whole ? body->sha256
                                                           : NULL);
        {
            unsigned char sha[ISS_DIGEST_SHA256_LEN];
            int found;

            iss_digest_of_uri(r, r->uri, sha, &found);
            if (found) {
                apr_table_setn(r->headers_out, "ETag",
                               iss_digest_etag(sha, r->pool));
                if (iss_digest_wanted_by(r)) {
                    apr_table_setn(r->headers_out, "Repr-Digest",
                                   iss_digest_field(sha, r->pool));
                }
            }
            else {
                apr_table_unset(r->headers_out, "ETag");
            }
        }
    }
    else if (req->etag_injected
             && (!ok || req->etag_unreadable || r->method_number == M_DELETE
                 || r->method_number == M_COPY
                 || r->method_number == M_MOVE)) {
        /* It named the version a condition was tested against. */
        apr_table_unset(r->headers_out, "ETag");
    }
    return ap_pass_brigade(f->next, bb);
}

/* The filter is in place from the start of every request (see
 * create_request below); this gives it something to do. */
static void add_etag_filter(request_rec *r)
{
    iss_provider_request(r)->etag_filter = 1;
}

/* A PUT that replaced a file answers 204 through ap_die(), which drops
 * the headers the handler set and every content filter: only a protocol
 * filter placed before HTTP_HEADER sees the response in time.  httpd adds
 * HTTP_HEADER in its create_request hook (APR_HOOK_REALLY_LAST); ours
 * runs earlier, so ours comes first among the protocol filters. */
static int create_request(request_rec *r)
{
    if (!r->main && !r->prev) {
        ap_add_output_filter(ETAG_OUT_FILTER, NULL, r, r->connection);
    }
    return OK;
}

static int precondition(request_rec *r, dav_resource *src,
                        const dav_resource *dst, const apr_xml_doc *doc,
                        dav_error **err)
{
    unsigned char sha[ISS_DIGEST_SHA256_LEN];
    int found, unreadable;

    if (src == NULL || dst != NULL || r->main || !iss_is_enabled(r)) {
        return DECLINED;
    }
    if (r->method_number == M_PUT) {
        add_etag_filter(r);
    }
    if (!src->exists || src->collection
        || (!apr_table_get(r->headers_in, "If-Match")
            && !apr_table_get(r->headers_in, "If-None-Match"))) {
        return DECLINED;
    }
    /* A client that may not read the file compares with a tag it cannot
     * know (no guess of the content is confirmed), and the file is not
     * even read for him. */
    unreadable = !iss_digest_may_read(r, src->uri);
    found = 1;
    if (!unreadable) {
        iss_digest_of_uri(r, src->uri, sha, &found);
    }
    if (found) {
        apr_table_setn(r->headers_out, "ETag",
                       unreadable ? iss_digest_unreadable_etag(r)
                                  : iss_digest_etag(sha, r->pool));
        iss_provider_request(r)->etag_injected = 1;
        iss_provider_request(r)->etag_unreadable = unreadable;
        add_etag_filter(r);
    }
    return DECLINED;
}

/* ---- DAV:getetag and I:repr-digest -------------------------------------- */

static const char *const namespace_uris[] = { "DAV:", ISS_XML_NS, NULL };

static const dav_liveprop_spec specs[] = {
    { 0, "getetag", ISS_PROPID_getetag, 0 },
    { 1, "repr-digest", ISS_PROPID_repr_digest, 0 },
    { 0, NULL, 0, 0 }
};

static const dav_hooks_liveprop hooks;

static const dav_liveprop_group group = { specs, namespace_uris, &hooks };

static dav_prop_insert insert_prop(const dav_resource *resource, int propid,
                                   dav_prop_insert what, apr_text_header *phdr)
{
    request_rec *r = iss_provider_resource_request(resource);
    unsigned char sha[ISS_DIGEST_SHA256_LEN];
    const char *value = NULL;
    int found;

    if (r == NULL || !resource->exists
        || (resource->collection && propid != ISS_PROPID_getetag)) {
        return DAV_PROP_INSERT_NOTDEF;
    }
    if (what == DAV_PROP_INSERT_VALUE) {
        if (resource->collection) {
            /* Collections keep mod_dav_fs's ETag. */
            value = (*resource->hooks->getetag)(resource);
        }
        else {
            iss_digest_of_resource(r, resource->uri, resource, sha, &found);
            value = !found ? NULL
                : propid == ISS_PROPID_getetag
                ? iss_digest_etag(sha, resource->pool)
                : iss_digest_field(sha, resource->pool);
        }
        if (value == NULL || *value == '\0') {
            return DAV_PROP_INSERT_NOTDEF;
        }
        value = apr_xml_quote_string(resource->pool, value, 0);
    }
    return iss_liveprop_insert(resource, &group, propid, what, value, phdr);
}

static const dav_hooks_liveprop hooks = {
    insert_prop,
    iss_liveprop_protected,
    namespace_uris,
    NULL, NULL, NULL, NULL,
    NULL
};

/* mod_dav asks once per request and property, for the first resource,
 * and keeps the answer for every other resource of the request: claim
 * the properties for every resource of a `Dav iss` location (files and
 * collections alike; insert_prop tells them apart). */
static int find_liveprop(const dav_resource *resource, const char *ns_uri,
                         const char *name, const dav_hooks_liveprop **out)
{
    request_rec *r = iss_provider_resource_request(resource);

    if (r == NULL || !iss_is_enabled(r)) {
        return 0;
    }
    return dav_do_find_liveprop(ns_uri, name, &group, out);
}

/* allprop: mod_dav_fs has put its own DAV:getetag in the list (as
 * "<lpN:getetag>...</lpN:getetag>", N its namespace index of DAV:);
 * replace that value.  Runs after every other provider. */
static void insert_all(request_rec *unused, const dav_resource *resource,
                       dav_prop_insert what, apr_text_header *phdr)
{
    request_rec *r = iss_provider_resource_request(resource);
    apr_text *t;
    const char *etag;

    if (what != DAV_PROP_INSERT_VALUE || !is_file_here(r, resource)) {
        return;
    }
    for (t = phdr->first; t; t = t->next) {
        const char *s = t->text;

        if (strncmp(s, "<lp", 3) == 0) {
            s += 3;
            while (*s >= '0' && *s <= '9') {
                s++;
            }
            if (s > t->text + 3 && strncmp(s, ":getetag>", 9) == 0) {
                break;
            }
        }
    }
    if (t == NULL) {
        return;
    }
    {
        unsigned char sha[ISS_DIGEST_SHA256_LEN];
        int found;

        iss_digest_of_resource(r, resource->uri, resource, sha, &found);
        if (!found) {
            return;
        }
        etag = iss_digest_etag(sha, r->pool);
    }
    {
        /* Keep mod_dav_fs's prefix: "<lpN". */
        int plen = (int)(strstr(t->text, ":getetag>") - t->text);

        t->text = apr_psprintf(resource->pool, "%.*s:getetag>%s</%.*s:"
                               "getetag>" DEBUG_CR, plen, t->text,
                               apr_xml_quote_string(resource->pool, etag, 0),
                               plen - 1, t->text + 1);
    }
}

void iss_etag_register_hooks(apr_pool_t *p)
{
    dav_register_liveprop_group(p, &group);
    dav_hook_find_liveprop(find_liveprop, NULL, NULL, APR_HOOK_FIRST);
    dav_hook_insert_all_liveprops(insert_all, NULL, NULL, APR_HOOK_LAST);
    /* Before the capture point (APR_HOOK_MIDDLE), which may answer. */
    dav_hook_method_precondition(precondition, NULL, NULL, APR_HOOK_FIRST);
    ap_register_output_filter(ETAG_OUT_FILTER, etag_out, NULL,
                              AP_FTYPE_PROTOCOL);
    ap_hook_create_request(create_request, NULL, NULL, APR_HOOK_MIDDLE);
}
