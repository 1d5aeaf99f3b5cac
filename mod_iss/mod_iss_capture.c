/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "mod_iss_capture.h"
#include "iss_change.h"
#include "iss_chunkidx.h"
#include "iss_filedigest.h"
#include "iss_scan.h"
#include "iss_sync_log.h"
#include "iss_versions.h"
#include "mod_iss_config.h"
#include "mod_iss_digest.h"
#include "mod_iss_provider.h"
#include "mod_iss_state.h"

#include <apr_portable.h>
#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#define CAPTURE_FILTER "ISS_CAPTURE"

/* One location touched by the method: its store and what changes there. */
typedef struct side_t {
    request_rec *r;                 /* names the location's config */
    iss_store_t *store;
    apr_array_header_t *changes;    /* iss_change_t, URI paths */
    apr_array_header_t *rel;        /* the same, relative to the root */
    const char *intent_id;
    apr_uint64_t begin_seq;         /* the log's last entry before it */
    apr_array_header_t *retain;     /* URI paths of files the method may
                                     * replace or remove (ISSKeepVersions) */
    apr_array_header_t *holds;      /* held_t: what iss_versions holds */
    const iss_versions_limits_t *vlim;
} side_t;

/* A file whose current content is held until the method settled. */
typedef struct held_t {
    iss_versions_hold_t *h;
    const char *uri;
} held_t;

typedef struct capture_t {
    request_rec *r;
    side_t side[2];
    int nsides;
    int done;
    int unchanged;                  /* the writer knows it changed nothing */
} capture_t;

/* ---- listing what a method touches -------------------------------------- */

/* Where one walk puts what it finds: each member as @a kind, its path
 * moved from the walked root to @a to when that is set (COPY/MOVE). */
typedef struct walk_out {
    apr_array_header_t *changes;
    iss_change_kind_e kind;
    const char *to;
} walk_out;

typedef struct walk_ctx {
    const char *from;     /* the walked root's URI */
    const walk_out *out;
    int nout;
} walk_ctx;

static void add_change(apr_array_header_t *changes, iss_change_kind_e kind,
                       int collection, const char *path)
{
    iss_change_t *c = apr_array_push(changes);

    c->kind = kind;
    c->collection = collection;
    c->path = path;
}

static void add_member(const walk_ctx *ctx, const dav_resource *res)
{
    apr_size_t flen = strlen(ctx->from);
    int i;

    for (i = 0; i < ctx->nout; i++) {
        const walk_out *o = &ctx->out[i];
        apr_pool_t *p = o->changes->pool;
        const char *path = res->uri;
        apr_size_t len;

        if (o->to && strncmp(path, ctx->from, flen) == 0) {
            path = apr_pstrcat(p, o->to, path + flen, NULL);
        }
        /* mod_dav_fs's walker ends collection URIs with a slash; record
         * every path in one form, the one get_resource gives. */
        len = strlen(path);
        if (len > 1 && path[len - 1] == '/') {
            len--;
        }
        add_change(o->changes, o->kind, res->collection,
                   apr_pstrmemdup(p, path, len));
    }
}

static dav_error *walk_member(dav_walk_resource *wres, int calltype)
{
    add_member(wres->walk_ctx, wres->resource);
    return NULL;
}

/* Every member of @a res down to @a depth (the resource itself included),
 * into each of @a out: one walk however many lists it feeds. */
static dav_error *list_tree(request_rec *r, const dav_resource *res,
                            int depth, const walk_out *out, int nout)
{
    walk_ctx ctx = { res->uri, out, nout };
    dav_walk_params params = { 0 };
    dav_response *multi = NULL;

    if (!res->collection) {
        add_member(&ctx, res);
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

/* @a changes with paths relative to the root of @a r's location, the form
 * the change log keeps. */
static apr_array_header_t *relative(request_rec *r,
                                    const apr_array_header_t *changes)
{
    apr_array_header_t *rel = apr_array_make(r->pool, changes->nelts,
                                             sizeof(iss_change_t));
    int i;

    for (i = 0; i < changes->nelts; i++) {
        const iss_change_t *c = &APR_ARRAY_IDX(changes, i, iss_change_t);
        const char *path = iss_state_rel_path(r, c->path);

        if (path == NULL) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ISSLOGNO(01040)
                          "%s is outside the location %s; not recorded",
                          c->path, iss_state_root_uri(r));
            continue;
        }
        add_change(rel, c->kind, c->collection, path);
    }
    return rel;
}

static dav_error *record_intent(capture_t *cap, side_t *side,
                                const char *method)
{
    request_rec *r = cap->r;
    dav_error *err;
    apr_status_t rv;

    if ((err = iss_state_store(side->r, &side->store)) != NULL) {
        return err;
    }
    side->rel = relative(side->r, side->changes);
    /* Lazy (but with ISSStateSync Full): in the page cache, which a
     * kill -9 of httpd keeps, when it returns.  Not fsynced before the
     * write: what a power loss takes back is found by the scan a restart
     * of the machine calls for (iss_store_rescan_due(), design.md 4.1);
     * the answers that need durability (sync tokens) wait for it. */
    rv = iss_sync_log_begin_at(side->store, method, side->rel,
                               iss_config_state_sync(iss_config_dir(side->r))
                                   == ISS_STATE_SYNC_FULL ? 0 : ISS_STORE_LAZY,
                               &side->intent_id, &side->begin_seq, r->pool);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01030)
                      "cannot record a %s of %s in the state store (%s); "
                      "the request is refused so that no change goes "
                      "unrecorded", method, r->uri,
                      iss_store_last_error(side->store));
        side->intent_id = NULL;
        return dav_new_error(r->pool, HTTP_SERVICE_UNAVAILABLE, 0, 0,
                             "The change could not be recorded; nothing was "
                             "changed.");
    }
    return NULL;
}

/* The digest of a member the request wrote, with the identity of the
 * file it is of, when it is known to be of the bytes on disk now: PATCH
 * knows the identity of the file it renamed into place; for a PUT, the
 * body's digest is the file's if the size agrees and no other write to
 * the path raced this one, which the settling transaction checks
 * (*guarded).  *m: the manifest made with it, if any. */
static const iss_filedigest_t *digest_of(const capture_t *cap,
                                         const iss_change_t *uri_change,
                                         const iss_scan_entry_t *e,
                                         const iss_manifest_t **m,
                                         int *guarded, apr_pool_t *p)
{
    request_rec *r = cap->r;
    iss_request_t *req = iss_provider_request(r);
    const iss_digest_body_t *body;
    iss_filedigest_t *d;

    *m = NULL;
    *guarded = 0;
    if (uri_change->collection || strcmp(uri_change->path, r->uri) != 0) {
        return NULL;
    }
    if (req->written) {
        *m = req->written_manifest;
        return req->written;
    }
    body = iss_digest_put_body(r);
    if (r->method_number != M_PUT || body == NULL || !body->whole
        || e->type != 'f' || e->size != body->length) {
        return NULL;
    }
    *guarded = 1;
    d = apr_palloc(p, sizeof(*d));
    d->ino = e->ino;
    d->size = e->size;
    d->mtime = e->mtime_us;
    memcpy(d->sha256, body->sha256, sizeof(d->sha256));
    d->sums = body->sums;
    *m = body->manifest;
    return d;
}

/* The records of the digest and the manifest of index entry @a u. */
static void digest_records(request_rec *r, iss_sync_index_t *u,
                           const iss_filedigest_t *d,
                           const iss_manifest_t *m)
{
    apr_array_header_t *kvs;

    if (d == NULL) {
        return;
    }
    u->digest = iss_filedigest_encode(d, r->pool);
    if (m && iss_chunkidx_records(u->path, d, m, &kvs, r->pool)
        == APR_SUCCESS) {
        u->manifest = kvs;
    }
}

/* What stat says now of each member, for the reconciliation scan to
 * compare with later, and the digest of what the request wrote. */
static apr_array_header_t *index_of(const capture_t *cap, const side_t *side)
{
    request_rec *r = side->r;
    const apr_array_header_t *rel = side->rel;
    const char *root = iss_state_root_fs(r);
    apr_array_header_t *index;
    apr_pool_t *iter;
    int i;

    if (root == NULL) {
        return NULL;
    }
    index = apr_array_make(r->pool, rel->nelts, sizeof(iss_sync_index_t));
    apr_pool_create(&iter, r->pool);
    for (i = 0; i < rel->nelts; i++) {
        const iss_change_t *c = &APR_ARRAY_IDX(rel, i, iss_change_t);
        iss_sync_index_t *u = apr_array_push(index);
        iss_scan_entry_t e;
        char buf[ISS_SCAN_ENTRY_MAX];

        apr_pool_clear(iter);
        u->path = c->path;
        u->value = NULL;
        u->digest = NULL;
        u->manifest = NULL;
        u->guarded = 0;
        if (*c->path
            && iss_scan_stat(apr_pstrcat(iter, root, "/", c->path, NULL), &e,
                             iter) == APR_SUCCESS) {
            iss_scan_entry_encode(&e, buf);
            u->value = apr_pstrdup(r->pool, buf);
            if (rel->nelts == 1 && side->changes->nelts == 1) {
                const iss_manifest_t *m;
                const iss_filedigest_t *d;

                d = digest_of(cap, &APR_ARRAY_IDX(side->changes, 0,
                                                  iss_change_t),
                              &e, &m, &u->guarded, r->pool);
                digest_records(r, u, d, m);
            }
        }
    }
    apr_pool_destroy(iter);
    return index;
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

/* ---- retained versions (ISSKeepVersions, docs/design.md 3e) ------------- */

/* The "before" of a side's retention: each file the method may replace
 * or remove keeps its inode (a hard link) until the method settled.  The
 * intent is recorded already, so the collection sees the links as a
 * write's under way.  A file that cannot be held is written anyway,
 * without a version: retention never refuses a write. */
static void hold_versions(capture_t *cap, side_t *side)
{
    request_rec *r = cap->r;
    const char *root = iss_state_root_fs(side->r);
    int i;

    side->vlim = iss_config_versions(iss_config_dir(side->r));
    if (side->vlim == NULL || side->retain == NULL || root == NULL
        || side->intent_id == NULL) {
        return;
    }
    side->holds = apr_array_make(r->pool, side->retain->nelts,
                                 sizeof(held_t));
    for (i = 0; i < side->retain->nelts; i++) {
        const char *uri = APR_ARRAY_IDX(side->retain, i, const char *);
        const char *rel = iss_state_rel_path(side->r, uri);
        iss_versions_hold_t *h;
        apr_status_t rv;
        held_t *hd;

        if (rel == NULL || *rel == '\0') {
            continue;
        }
        rv = iss_versions_hold(side->store,
                               apr_pstrcat(r->pool, root, "/", rel, NULL),
                               rel, side->intent_id, i, &h, r->pool);
        if (rv == APR_NOTFOUND) {
            continue;               /* no regular file there */
        }
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, ISSLOGNO(01163)
                          "cannot keep the current content of %s as a "
                          "version (ISSKeepVersions); the %s goes on "
                          "without it", uri, r->method);
            continue;
        }
        hd = apr_array_push(side->holds);
        hd->h = h;
        hd->uri = uri;
    }
}

/* The digest of what the request wrote at @a uri, when it is known
 * without reading (PATCH, a PUT whose body was hashed whole). */
static const unsigned char *new_digest_of(const capture_t *cap,
                                          const char *uri)
{
    request_rec *r = cap->r;
    iss_request_t *req = iss_provider_request(r);
    const iss_digest_body_t *body;

    if (strcmp(uri, r->uri) != 0) {
        return NULL;
    }
    if (req->written) {
        return req->written->sha256;
    }
    body = iss_digest_put_body(r);
    if (r->method_number == M_PUT && body && body->whole) {
        return body->sha256;
    }
    return NULL;
}

/* What settle_versions() leaves until the response went out: packing the
 * version it kept, moving chunks out of the inode it replaced
 * (iss_versions_after(), bounded by ISSKeepVersions pack=). */
#define AFTER_KEY "iss-versions-after"

typedef struct after_t {
    iss_store_t *store;
    iss_versions_hold_t *h;
    const iss_versions_limits_t *vlim;
    const char *uri;
} after_t;

static void queue_after(capture_t *cap, side_t *side, const held_t *hd)
{
    request_rec *r = cap->r;
    apr_array_header_t *q = NULL;
    after_t *a;

    /* Only the request's own location: a destination side's store
     * handle lives in a sub-request's pool, gone by then (its work is
     * left to iss-state gc-versions). */
    if (side->r != r || side->vlim == NULL || side->vlim->pack_bytes == 0) {
        return;
    }
    if (apr_pool_userdata_get((void **)&q, AFTER_KEY, r->pool)
        != APR_SUCCESS || q == NULL) {
        q = apr_array_make(r->pool, 2, sizeof(after_t));
        if (apr_pool_userdata_setn(q, AFTER_KEY, NULL, r->pool)
            != APR_SUCCESS) {
            return;
        }
    }
    a = apr_array_push(q);
    a->store = side->store;
    a->h = hd->h;
    a->vlim = side->vlim;
    a->uri = hd->uri;
}

/* log_transaction: the response went to the client (the end-of-request
 * bucket is destroyed, and this hook run, once the core output filter
 * wrote what came before it). */
static int after_response(request_rec *r)
{
    apr_array_header_t *q = NULL;
    apr_uint64_t copied = 0;
    int i;

    if (apr_pool_userdata_get((void **)&q, AFTER_KEY, r->pool)
        != APR_SUCCESS || q == NULL) {
        return DECLINED;
    }
    for (i = 0; i < q->nelts; i++) {
        const after_t *a = &APR_ARRAY_IDX(q, i, after_t);
        apr_time_t t0 = apr_time_now();
        iss_versions_limits_t left = *a->vlim;
        apr_status_t rv;

        /* pack= bounds the request, not each file (a DELETE of a folder
         * holds every file): what is left goes to gc-versions. */
        if (copied >= left.pack_bytes) {
            break;
        }
        left.pack_bytes -= copied;
        rv = iss_versions_after(a->store, a->h, &left, &copied, r->pool);

        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, ISSLOGNO(01170)
                          "cannot pack the version of %s kept by this %s "
                          "(%s); iss-state gc-versions will", a->uri,
                          r->method, iss_store_last_error(a->store));
        }
        else {
            ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, ISSLOGNO(01171)
                          "versions of %s packed after the response in "
                          "%" APR_TIME_T_FMT " us", a->uri,
                          apr_time_now() - t0);
        }
    }
    q->nelts = 0;
    return DECLINED;
}

/* The "after": a held file whose path has another inode now (or none)
 * becomes a version; one that was not replaced is let go. */
static void settle_versions(capture_t *cap, side_t *side)
{
    request_rec *r = cap->r;
    int i;

    if (side->holds == NULL) {
        return;
    }
    for (i = 0; i < side->holds->nelts; i++) {
        held_t *hd = &APR_ARRAY_IDX(side->holds, i, held_t);
        int retained = 0;
        apr_status_t rv;

        rv = iss_versions_settle(side->store, hd->h, side->vlim,
                                 new_digest_of(cap, hd->uri), apr_time_now(),
                                 &retained, r->pool);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, ISSLOGNO(01164)
                          "cannot keep the previous content of %s as a "
                          "version (%s)", hd->uri,
                          iss_store_last_error(side->store));
        }
        else {
            if (retained) {
                ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, ISSLOGNO(01165)
                              "kept the previous content of %s as a version",
                              hd->uri);
            }
            queue_after(cap, side, hd);
        }
    }
    side->holds = NULL;
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
        int recorded;

        if (side->intent_id == NULL) {
            continue;
        }
        /* A 4xx is mod_dav refusing before it touched anything: settle
         * without an entry.  Anything else may have changed members
         * (207 and 5xx included): record them as possibly changed,
         * unless the writer said it changed nothing. */
        /* Before the intent goes: while it is there, the collection
         * leaves the side's pending links alone. */
        settle_versions(cap, side);
        recorded = !cap->unchanged && !(status >= 400 && status < 500);
        rv = iss_sync_log_settle(side->store, side->intent_id,
                                 cap->r->method,
                                 recorded ? side->rel : NULL,
                                 recorded ? index_of(cap, side) : NULL,
                                 iss_config_retention(iss_config_dir(side->r)),
                                 side->begin_seq, NULL, cap->r->pool);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, cap->r, ISSLOGNO(01033)
                          "cannot settle the record of %s %s (%s); it stays "
                          "pending, and the next sync request (or iss-state "
                          "recover) logs it as 'possibly changed'",
                          cap->r->method, cap->r->uri,
                          iss_store_last_error(side->store));
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

    /* The process is exiting in the middle of the request (prefork's
     * stop runs the pool cleanups from its signal handler, the store
     * handles already closed or a store lock possibly held by the code
     * it interrupted): leave the intent pending, as a kill -9 would; the
     * next sync request or iss-state recover records it as possibly
     * changed. */
    if (iss_state_exiting()) {
        return APR_SUCCESS;
    }
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
    iss_provider_request(r)->capture = cap;
    for (i = 0; i < nsides; i++) {
        /* Source and destination in one location share one record. */
        if (cap->nsides == 1
            && iss_state_same_location(cap->side[0].r, sides[i].r)) {
            apr_array_cat(cap->side[0].changes, sides[i].changes);
            if (sides[i].retain && cap->side[0].retain) {
                apr_array_cat(cap->side[0].retain, sides[i].retain);
            }
            else if (sides[i].retain) {
                cap->side[0].retain = sides[i].retain;
            }
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
        hold_versions(cap, &cap->side[i]);
    }
    ap_add_output_filter(CAPTURE_FILTER, cap, r, r->connection);
    /* A pre-cleanup: it must run before the sub-request pools (which hold
     * the destination side's store handle) are destroyed. */
    apr_pool_pre_cleanup_register(r->pool, cap, capture_cleanup);
    return NULL;
}

dav_error *iss_capture_modify(request_rec *r, const dav_resource *res)
{
    side_t side = { r, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL };

    side.changes = apr_array_make(r->pool, 1, sizeof(iss_change_t));
    if (res->exists && !res->collection) {
        side.retain = apr_array_make(r->pool, 1, sizeof(const char *));
        APR_ARRAY_PUSH(side.retain, const char *) = res->uri;
    }
    add_change(side.changes, res->exists ? ISS_CHANGE_MODIFIED
                                         : ISS_CHANGE_CREATED, 0, res->uri);
    return begin(r, &side, 1);
}

void iss_capture_unchanged(request_rec *r)
{
    capture_t *cap = iss_provider_request(r)->capture;

    if (cap) {
        cap->unchanged = 1;
    }
}

/* ---- parallel MKCOLs of one folder ---------------------------------------
 * mod_dav finds that a MKCOL's folder does not exist when it resolves the
 * resource, and mod_dav_fs answers 403 (and logs an error) when its mkdir
 * then fails because another MKCOL made the folder meanwhile.  Plain
 * mod_dav_fs leaves microseconds between the two; the intent recorded in
 * between (an fsync) widens that, and the group commit wakes parallel
 * MKCOLs at the same moment.  So MKCOLs of one path are serialised by a
 * lock on one byte of <ISSStateDir>/iss-mkcol.lock, chosen by a hash of
 * the path (an open-file-description lock: threads exclude each other
 * too), taken before the intent and held until the request ends; under
 * it, a folder that exists by now gets plain mod_dav_fs's answer, 405,
 * with nothing recorded and nothing logged. */

#define MKCOL_LOCK_NAME  "iss-mkcol.lock"
#define MKCOL_LOCK_SLOTS 65536

/* Whether @a res (a MKCOL's folder) exists now, after taking its lock. */
static int mkcol_exists_now(request_rec *r, const dav_resource *res)
{
    const char *dir = iss_config_dir(r)->state_dir, *root, *rel, *path;
    apr_file_t *f;
    apr_finfo_t fi;
    unsigned int h = 5381;
    const char *c;

    root = iss_state_root_fs(r);
    rel = iss_state_rel_path(r, res->uri);
    if (dir == NULL || root == NULL || rel == NULL || *rel == '\0') {
        return 0;
    }
    path = apr_pstrcat(r->pool, root, "/", rel, NULL);
#ifdef F_OFD_SETLKW
    if (apr_file_open(&f, apr_pstrcat(r->pool, dir, "/" MKCOL_LOCK_NAME,
                                      NULL),
                      APR_FOPEN_READ | APR_FOPEN_WRITE | APR_FOPEN_CREATE,
                      APR_FPROT_UREAD | APR_FPROT_UWRITE, r->pool)
        == APR_SUCCESS) {
        apr_os_file_t fd;
        struct flock fl;

        for (c = rel; *c; c++) {
            h = h * 33 + (unsigned char)*c;
        }
        apr_os_file_get(&fd, f);
        memset(&fl, 0, sizeof(fl));
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = (off_t)(h % MKCOL_LOCK_SLOTS);
        fl.l_len = 1;
        /* Released when the request's pool closes the file. */
        while (fcntl(fd, F_OFD_SETLKW, &fl) != 0 && errno == EINTR) {
        }
    }
#else
    (void)f;
    (void)c;
    (void)h;
#endif
    return apr_stat(&fi, path, APR_FINFO_TYPE, r->pool) == APR_SUCCESS;
}

/* The files among @a changes that the method removes (DELETE, or
 * overwritten by COPY/MOVE): their content may become versions. */
static apr_array_header_t *removed_files(request_rec *r,
                                         const apr_array_header_t *changes)
{
    apr_array_header_t *out = apr_array_make(r->pool, changes->nelts,
                                             sizeof(const char *));
    int i;

    for (i = 0; i < changes->nelts; i++) {
        const iss_change_t *c = &APR_ARRAY_IDX(changes, i, iss_change_t);

        if (c->kind == ISS_CHANGE_REMOVED && !c->collection) {
            APR_ARRAY_PUSH(out, const char *) = c->path;
        }
    }
    return out;
}

/* ---- mod_dav's method_precondition: the "before" of every DAV write ---- */

static int precondition(request_rec *r, dav_resource *src,
                        const dav_resource *dst, const apr_xml_doc *doc,
                        dav_error **err)
{
    iss_request_t *req;
    side_t sides[2];
    walk_out out[2];
    int nsides = 0, nout = 0, src_on, dst_on = 0, depth = DAV_INFINITY;
    apr_array_header_t *src_changes = NULL, *dst_changes = NULL;

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
        src_changes = apr_array_make(r->pool, 4, sizeof(iss_change_t));
        switch (r->method_number) {
        case M_PUT:
            add_change(src_changes, src->exists ? ISS_CHANGE_MODIFIED
                                                : ISS_CHANGE_CREATED,
                       0, src->uri);
            break;
        case M_MKCOL:
            if (mkcol_exists_now(r, src)) {
                /* No description: mod_dav logs none, as for its own 405. */
                *err = dav_new_error(r->pool, HTTP_METHOD_NOT_ALLOWED, 0, 0,
                                     NULL);
                return OK;
            }
            add_change(src_changes, ISS_CHANGE_CREATED, 1, src->uri);
            break;
        case M_PROPPATCH:
            add_change(src_changes, ISS_CHANGE_PROPS, src->collection,
                       src->uri);
            break;
        case M_LOCK:
            if (src->exists) {
                return DECLINED;   /* a lock changes no content */
            }
            add_change(src_changes, ISS_CHANGE_CREATED, 0, src->uri);
            break;
        case M_DELETE: case M_MOVE:
            out[nout++] = (walk_out){ src_changes, ISS_CHANGE_REMOVED, NULL };
            break;
        }
    }
    if (dst_on) {
        dst_changes = apr_array_make(r->pool, 4, sizeof(iss_change_t));
        if (dst->exists) {     /* overwritten: its members go first */
            walk_out gone = { dst_changes, ISS_CHANGE_REMOVED, NULL };

            if ((*err = list_tree(r, dst, DAV_INFINITY, &gone, 1)) != NULL) {
                return OK;
            }
        }
        out[nout++] = (walk_out){ dst_changes, ISS_CHANGE_CREATED, dst->uri };
        if (r->method_number == M_COPY) {
            depth = dav_get_depth(r, DAV_INFINITY);
        }
    }
    /* One walk of the source feeds both sides: what DELETE or MOVE
     * removes here and what COPY or MOVE creates there. */
    if (nout && src->exists
        && (*err = list_tree(r, src, depth, out, nout)) != NULL) {
        return OK;
    }
    if (src_changes && src_changes->nelts) {
        apr_array_header_t *retain = NULL;

        /* What the method may replace or remove here: PUT's file, what
         * DELETE removes (not what MOVE takes away: it lives on). */
        if (r->method_number == M_PUT && src->exists && !src->collection) {
            retain = apr_array_make(r->pool, 1, sizeof(const char *));
            APR_ARRAY_PUSH(retain, const char *) = src->uri;
        }
        else if (r->method_number == M_DELETE) {
            retain = removed_files(r, src_changes);
        }
        sides[nsides++] = (side_t){ r, NULL, src_changes, NULL, NULL, 0,
                                    retain, NULL, NULL };
    }
    if (dst_changes) {
        /* COPY or MOVE onto existing files: those are overwritten. */
        sides[nsides++] = (side_t){ req->dest_r, NULL, dst_changes, NULL,
                                    NULL, 0, removed_files(r, dst_changes),
                                    NULL, NULL };
    }
    if (nsides == 0) {
        return DECLINED;
    }
    /* A write that cannot be recorded is refused before it happens, with
     * our error body (begin() logged why, at error: it is the server's
     * problem, not the client's). */
    if ((*err = begin(r, sides, nsides)) != NULL) {
        *err = iss_error_answer(r, *err, "state-unavailable");
        return OK;
    }
    return DECLINED;
}

void iss_capture_register_hooks(apr_pool_t *p)
{
    dav_hook_method_precondition(precondition, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_log_transaction(after_response, NULL, NULL, APR_HOOK_LAST);
    ap_register_output_filter(CAPTURE_FILTER, capture_filter, NULL,
                              AP_FTYPE_PROTOCOL);
}
