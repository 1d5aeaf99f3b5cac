/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * DAV:sync-token (RFC 6578 section 4): a protected live property of every
 * collection of a `Dav iss` location, returned when asked for by name,
 * never in allprop.  Its value is the token a sync-collection REPORT
 * with an empty token would end with.
 */

#include "mod_iss_sync.h"
#include "mod_iss_config.h"
#include "mod_iss_liveprop.h"
#include "mod_iss_provider.h"
#include "mod_iss_state.h"
#include "iss_sync_log.h"

#include <apr_strings.h>

/* Unique among mod_dav's live property providers of this server. */
#define ISS_PROPID_sync_token 21001
#define ISS_PROPID_supported_report_set 21002

static const char *const namespace_uris[] = { "DAV:", NULL };

static const dav_liveprop_spec specs[] = {
    { 0, "sync-token", ISS_PROPID_sync_token, 0 },
    /* mod_dav 2.4 lists reports only in DeltaV's OPTIONS body; clients
     * look for this property (RFC 3253 section 3.1.5). */
    { 0, "supported-report-set", ISS_PROPID_supported_report_set, 0 },
    { 0, NULL, 0, 0 }
};

static const dav_hooks_liveprop hooks;

static const dav_liveprop_group group = { specs, namespace_uris, &hooks };

dav_error *iss_sync_current_token(request_rec *r, const char **token)
{
    iss_request_t *req = iss_provider_request(r);
    iss_dir_conf_t *dconf = iss_config_dir(r);
    iss_sync_pos_t pos = { 0 };
    apr_uint64_t last, first;
    const iss_sync_key_t *key;
    const char *log_id = NULL;
    iss_store_t *store;
    dav_error *err;
    apr_status_t rv;

    /* A PROPFIND of many collections asks once per request. */
    if (req->sync_token) {
        *token = req->sync_token;
        return NULL;
    }
    if ((err = iss_state_store(r, &store)) != NULL
        || (err = iss_state_token_key(r, &key)) != NULL) {
        return err;
    }
    rv = iss_sync_reconcile_if_due(r, store);
    if (rv == APR_SUCCESS) {
        rv = iss_sync_log_recover(store, iss_config_retention(dconf), NULL,
                                  r->pool);
    }
    if (rv == APR_SUCCESS) {
        rv = iss_sync_log_bounds_id(store, &last, &first, &log_id, r->pool);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01044)
                      "cannot read the change log for %s: %s", r->uri,
                      iss_store_last_error(store));
        return dav_new_error(r->pool, HTTP_INTERNAL_SERVER_ERROR, 0, rv,
                             "The change log cannot be read.");
    }
    pos.seq = last + 1;
    *token = iss_sync_token_make(key, log_id, &pos, r->pool);
    if (*token == NULL) {
        return dav_new_error(r->pool, HTTP_INTERNAL_SERVER_ERROR, 0, 0,
                             "mod_iss: the sync token cannot be sealed");
    }
    req->sync_token = *token;
    return NULL;
}

/* The reports mod_dav's gather_reports hooks name for @a resource. */
static const char *report_set(request_rec *r, const dav_resource *resource)
{
    apr_array_header_t *reports = apr_array_make(r->pool, 4,
                                                 sizeof(dav_report_elem));
    const char *out = "";
    dav_error *err = NULL;
    int i;

    dav_run_gather_reports(r, resource, reports, &err);
    for (i = 0; err == NULL && i < reports->nelts; i++) {
        const dav_report_elem *rp = &APR_ARRAY_IDX(reports, i,
                                                   dav_report_elem);
        const char *elem = strcmp(rp->nmspace, "DAV:") == 0
            ? apr_pstrcat(r->pool, "<D:", rp->name, "/>", NULL)
            : apr_pstrcat(r->pool, "<R:", rp->name, " xmlns:R=\"",
                          apr_xml_quote_string(r->pool, rp->nmspace, 1),
                          "\"/>", NULL);

        out = apr_pstrcat(r->pool, out, "<D:supported-report><D:report>",
                          elem, "</D:report></D:supported-report>", NULL);
    }
    return out;
}

static dav_prop_insert insert_prop(const dav_resource *resource, int propid,
                                   dav_prop_insert what, apr_text_header *phdr)
{
    request_rec *r = iss_provider_resource_request(resource);
    const char *value = NULL, *token;

    if (r == NULL || !resource->collection) {
        return DAV_PROP_INSERT_NOTDEF;
    }
    if (what == DAV_PROP_INSERT_VALUE
        && propid == ISS_PROPID_supported_report_set) {
        value = report_set(r, resource);
    }
    else if (what == DAV_PROP_INSERT_VALUE) {
        if (iss_sync_current_token(r, &token) != NULL) {
            return DAV_PROP_INSERT_NOTDEF;
        }
        value = apr_xml_quote_string(resource->pool, token, 0);
    }
    return iss_liveprop_insert(resource, &group, propid, what, value, phdr);
}

static const dav_hooks_liveprop hooks = {
    insert_prop,
    iss_liveprop_protected,     /* protected (RFC 6578 section 4) */
    namespace_uris,
    NULL, NULL, NULL, NULL,
    NULL
};

static int find_liveprop(const dav_resource *resource, const char *ns_uri,
                         const char *name, const dav_hooks_liveprop **out)
{
    request_rec *r = iss_provider_resource_request(resource);

    if (r == NULL || !resource->collection || !iss_is_enabled(r)) {
        return 0;
    }
    return dav_do_find_liveprop(ns_uri, name, &group, out);
}

void iss_sync_prop_register_hooks(apr_pool_t *p)
{
    dav_register_liveprop_group(p, &group);
    dav_hook_find_liveprop(find_liveprop, NULL, NULL, APR_HOOK_MIDDLE);
}
