/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "mod_iss_capture.h"
#include "iss_change.h"
#include "mod_iss_provider.h"
#include "mod_iss_state.h"

#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>

#define CAPTURE_FILTER "ISS_CAPTURE"
#define INTENT_PREFIX "intent/"

/* One location touched by the method: its store and what changes there. */
typedef struct side_t {
    request_rec *r;                 /* names the location's config */
    iss_store_t *store;
    apr_array_header_t *changes;    /* iss_change_t */
    const char *intent_key;
} side_t;

typedef struct capture_t {
    request_rec *r;
    side_t side[2];
    int nsides;
    int done;
} capture_t;

/* ---- listing what a method touches -------------------------------------- */

typedef struct walk_ctx {
    apr_array_header_t *changes;
    iss_change_kind_e kind;
    const char *from;     /* prefix to replace (COPY/MOVE target), or NULL */
    const char *to;
} walk_ctx;

static void add_change(apr_array_header_t *changes, iss_change_kind_e kind,
                       int collection, const char *path)
{
    iss_change_t *c = apr_array_push(changes);

    c->kind = kind;
    c->collection = collection;
    c->path = path;
}

static dav_error *walk_member(dav_walk_resource *wres, int calltype)
{
    walk_ctx *ctx = wres->walk_ctx;
    const dav_resource *res = wres->resource;
    apr_pool_t *p = ctx->changes->pool;
    const char *path = res->uri;
    apr_size_t len;

    if (ctx->from && strncmp(path, ctx->from, strlen(ctx->from)) == 0) {
        path = apr_pstrcat(p, ctx->to, path + strlen(ctx->from), NULL);
    }
    /* mod_dav_fs's walker ends collection URIs with a slash; record
     * every path in one form, the one get_resource gives. */
    len = strlen(path);
    if (len > 1 && path[len - 1] == '/') {
        len--;
    }
    add_change(ctx->changes, ctx->kind, res->collection,
               apr_pstrmemdup(p, path, len));
    return NULL;
}

/* Every member of @a res down to @a depth (the resource itself included),
 * as @a kind; with @a to, paths are moved from res->uri to @a to. */
static dav_error *list_tree(request_rec *r, const dav_resource *res,
                            int depth, iss_change_kind_e kind,
                            const char *to, apr_array_header_t *changes)
{
    walk_ctx ctx = { changes, kind, to ? res->uri : NULL, to };
    dav_walk_params params = { 0 };
    dav_response *multi = NULL;

    if (!res->collection) {
        add_change(changes, kind, 0, to ? to : res->uri);
        return NULL;
    }
    params.walk_type = DAV_WALKTYPE_NORMAL;
    params.func = walk_member;
    params.walk_ctx = &ctx;
    params.pool = r->pool;
    params.root = res;
    return (*res->hooks->walk)(&params, depth, &multi);
}

/* ---- recording ------------------------------------------------------------ */

static dav_error *record_intent(capture_t *cap, side_t *side,
                                const char *method)
{
    request_rec *r = cap->r;
    dav_error *err;
    char *buf, id[17];
    unsigned char rnd[8];
    apr_size_t len;
    apr_status_t rv;
    int i;

    if ((err = iss_state_store(side->r, &side->store)) != NULL) {
        return err;
    }
    if ((rv = apr_generate_random_bytes(rnd, sizeof(rnd))) != APR_SUCCESS) {
        return dav_new_error(r->pool, HTTP_INTERNAL_SERVER_ERROR, 0, rv,
                             "mod_iss: no random bytes for a capture id");
    }
    for (i = 0; i < 8; i++) {
        apr_snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    }
    side->intent_key = apr_pstrcat(r->pool, INTENT_PREFIX, id, NULL);
    iss_change_encode(method, side->changes, &buf, &len, r->pool);
    rv = iss_store_put(side->store, side->intent_key,
                       strlen(side->intent_key), buf, len);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01030)
                      "cannot record a %s of %s in the state store (%s); "
                      "the request is refused so that no change goes "
                      "unrecorded", method, r->uri,
                      iss_store_last_error(side->store));
        side->intent_key = NULL;
        return dav_new_error(r->pool, HTTP_SERVICE_UNAVAILABLE, 0, 0,
                             "The change could not be recorded; nothing was "
                             "changed.");
    }
    return NULL;
}

static void log_side(request_rec *r, const char *when, const side_t *side,
                     int status)
{
    const iss_change_t *c = (const iss_change_t *)side->changes->elts;
    int i;

    if (!APLOG_R_IS_LEVEL(r, APLOG_TRACE1)) {
        return;
    }
    ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, ISSLOGNO(01031)
                  "capture %s %s %s status=%d members=%d", when, r->method,
                  r->uri, status, side->changes->nelts);
    for (i = 0; i < side->changes->nelts; i++) {
        ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r, ISSLOGNO(01032)
                      "capture %s %s member %s %s %s", when, r->method,
                      iss_change_kind_name(c[i].kind),
                      c[i].collection ? "collection" : "file", c[i].path);
    }
}

/* Settle @a cap with the method's final HTTP status (idempotent). */
static void capture_end(capture_t *cap, int status)
{
    int i;

    if (cap->done) {
        return;
    }
    cap->done = 1;
    for (i = 0; i < cap->nsides; i++) {
        side_t *side = &cap->side[i];
        apr_status_t rv;

        if (side->intent_key == NULL) {
            continue;
        }
        /* The outcome is known: later layers turn the intent into change
         * records here, in the same atomic update. */
        rv = iss_store_delete(side->store, side->intent_key,
                              strlen(side->intent_key));
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, cap->r, ISSLOGNO(01033)
                          "cannot settle the record of %s %s (%s); it stays "
                          "as 'possibly changed'", cap->r->method,
                          cap->r->uri, iss_store_last_error(side->store));
        }
        log_side(cap->r, "after", side, status);
    }
}

static apr_status_t capture_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    capture_end(f->ctx, f->r->status);
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
}

static apr_status_t capture_cleanup(void *data)
{
    capture_t *cap = data;

    /* No response went out (aborted connection, handler crash path):
     * settle with what the request knows. */
    capture_end(cap, cap->r->status);
    return APR_SUCCESS;
}

static dav_error *begin(request_rec *r, side_t *sides, int nsides)
{
    capture_t *cap;
    dav_error *err;
    int i;

    cap = apr_pcalloc(r->pool, sizeof(*cap));
    cap->r = r;
    for (i = 0; i < nsides; i++) {
        /* Source and destination in one location share one record. */
        if (cap->nsides == 1
            && iss_state_same_location(cap->side[0].r, sides[i].r)) {
            apr_array_cat(cap->side[0].changes, sides[i].changes);
            continue;
        }
        cap->side[cap->nsides++] = sides[i];
    }
    for (i = 0; i < cap->nsides; i++) {
        if ((err = record_intent(cap, &cap->side[i], r->method)) != NULL) {
            capture_end(cap, err->status);   /* undo earlier sides */
            return err;
        }
        log_side(r, "before", &cap->side[i], 0);
    }
    ap_add_output_filter(CAPTURE_FILTER, cap, r, r->connection);
    /* A pre-cleanup: it must run before the sub-request pools (which hold
     * the destination side's store handle) are destroyed. */
    apr_pool_pre_cleanup_register(r->pool, cap, capture_cleanup);
    return NULL;
}

/* ---- mod_dav's method_precondition: the "before" of every DAV write ---- */

static int precondition(request_rec *r, dav_resource *src,
                        const dav_resource *dst, const apr_xml_doc *doc,
                        dav_error **err)
{
    iss_request_t *req;
    side_t sides[2];
    int nsides = 0, src_on, dst_on = 0, depth;
    apr_array_header_t *changes;

    switch (r->method_number) {
    case M_PUT: case M_DELETE: case M_MKCOL: case M_PROPPATCH: case M_LOCK:
        if (src == NULL || dst != NULL) {
            return DECLINED;
        }
        break;
    case M_COPY: case M_MOVE:
        if (src == NULL || dst == NULL) {
            return DECLINED;   /* the first call: wait for the destination */
        }
        break;
    default:
        return DECLINED;
    }
    if (r->main) {
        return DECLINED;       /* a lookup, not the write itself */
    }
    src_on = iss_is_enabled(r);
    req = iss_provider_request(r);
    if (dst != NULL && req->dest_r && req->dest_resource == dst) {
        dst_on = iss_is_enabled(req->dest_r);
    }
    if (!src_on && !dst_on) {
        return DECLINED;
    }

    if (src_on) {
        changes = apr_array_make(r->pool, 4, sizeof(iss_change_t));
        switch (r->method_number) {
        case M_PUT:
            add_change(changes, src->exists ? ISS_CHANGE_MODIFIED
                                            : ISS_CHANGE_CREATED, 0, src->uri);
            break;
        case M_MKCOL:
            add_change(changes, ISS_CHANGE_CREATED, 1, src->uri);
            break;
        case M_PROPPATCH:
            add_change(changes, ISS_CHANGE_PROPS, src->collection, src->uri);
            break;
        case M_LOCK:
            if (src->exists) {
                return DECLINED;   /* a lock changes no content */
            }
            add_change(changes, ISS_CHANGE_CREATED, 0, src->uri);
            break;
        case M_DELETE: case M_MOVE:
            if (src->exists
                && (*err = list_tree(r, src, DAV_INFINITY, ISS_CHANGE_REMOVED,
                                     NULL, changes)) != NULL) {
                return OK;
            }
            break;
        }
        if (changes->nelts) {
            sides[nsides++] = (side_t){ r, NULL, changes, NULL };
        }
    }
    if (dst_on) {
        changes = apr_array_make(r->pool, 4, sizeof(iss_change_t));
        depth = r->method_number == M_COPY ? dav_get_depth(r, DAV_INFINITY)
                                           : DAV_INFINITY;
        if (dst->exists
            && (*err = list_tree(r, dst, DAV_INFINITY, ISS_CHANGE_REMOVED,
                                 NULL, changes)) != NULL) {
            return OK;
        }
        if ((*err = list_tree(r, src, depth, ISS_CHANGE_CREATED, dst->uri,
                              changes)) != NULL) {
            return OK;
        }
        sides[nsides++] = (side_t){ req->dest_r, NULL, changes, NULL };
    }
    if (nsides == 0) {
        return DECLINED;
    }
    *err = begin(r, sides, nsides);
    return *err ? OK : DECLINED;
}

void iss_capture_register_hooks(apr_pool_t *p)
{
    dav_hook_method_precondition(precondition, NULL, NULL, APR_HOOK_MIDDLE);
    ap_register_output_filter(CAPTURE_FILTER, capture_filter, NULL,
                              AP_FTYPE_PROTOCOL);
}
