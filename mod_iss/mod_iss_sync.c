/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * The sync-collection REPORT (RFC 6578).
 *
 * An empty token lists the collection's members (sorted by path, so that
 * a listing cut by a limit can continue after the last path it gave).  A
 * token reads the change log from its position on: every member an entry
 * names under the collection is reported once, as it is now (changed
 * with its properties, or removed with 404).  The answer costs the
 * number of changes since the token, never a walk of the tree.
 *
 * Every member reported is looked up with a sub-request, so that it is
 * authorised exactly as a PROPFIND of it would be: a member the client
 * may not see is left out.
 */

#include "mod_iss_sync.h"
#include "mod_iss_config.h"
#include "mod_iss_provider.h"
#include "mod_iss_reports.h"
#include "mod_iss_state.h"
#include "iss_scan.h"
#include "iss_sync_log.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>

/* One member to report. */
typedef struct member_t {
    const char *rel;         /* path relative to the location root */
    int collection;          /* as the log or the walk saw it */
    int exists;              /* filled in when looked up */
    int checked;             /* exists is known (below_gone) */
    int hidden;              /* not authorised: left out */
    request_rec *sub;        /* the lookup; destroyed once reported */
    dav_resource *resource;
} member_t;

typedef struct sync_t {
    request_rec *r;
    const dav_resource *resource;
    const apr_xml_doc *doc;
    int allprop;
    int infinite;
    apr_uint64_t limit;           /* 0: none */
    iss_store_t *store;
    const iss_sync_key_t *key;       /* the tokens' (iss_state_token_key) */
    const char *coll;             /* the collection, relative */
    iss_sync_pos_t pos;           /* where the client stands */
    iss_sync_pos_t next;          /* what the answer's token says */
    int truncated;
    apr_array_header_t *members;  /* member_t */
    apr_hash_t *seen;             /* rel -> member_t * */
    apr_hash_t *vis;              /* iss_sync_visible()'s answers */
    dav_lockdb *lockdb;
    const char *log_id;           /* the id the log's tokens carry */
} sync_t;

static dav_error *bad_request(request_rec *r, const char *msg)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ISSLOGNO(01041)
                  "sync-collection on %s: %s", r->uri, msg);
    return dav_new_error_tag(r->pool, HTTP_BAD_REQUEST, 0, 0, msg,
                             ISS_XML_NS, "invalid-sync-collection");
}

/* A client error as RFC 4918 section 16 has it: the precondition element
 * and a human-readable explanation; logged at info level above (mod_dav
 * would log the client's mistake as a server error). */
static void send_client_error(request_rec *r, const dav_error *err)
{
    /* Our errors all have an element; the state store's (a damaged or
     * unreadable state, logged at error where it was found) get one. */
    iss_send_error_body(r, err->status,
                        err->tagname ? (err->namespace ? err->namespace
                                                       : "DAV:")
                                     : ISS_XML_NS,
                        err->tagname ? err->tagname : "state-unavailable",
                        NULL, err->desc);
}

/* 403 with RFC 6578's DAV:valid-sync-token precondition. */
static dav_error *bad_token(request_rec *r, const char *why)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ISSLOGNO(01042)
                  "sync-collection on %s: token refused: %s", r->uri, why);
    return dav_new_error_tag(r->pool, HTTP_FORBIDDEN, 0, 0,
                             apr_pstrcat(r->pool, "The sync-token is not "
                                         "valid here: ", why, ". Sync again "
                                         "from an empty token.", NULL),
                             NULL, "valid-sync-token");
}

/* ---- the request body ---------------------------------------------------- */

static dav_error *parse_body(sync_t *s, const char **token)
{
    request_rec *r = s->r;
    const apr_xml_elem *root = s->doc->root, *e;
    const char *level = NULL;
    const char *depth = apr_table_get(r->headers_in, "Depth");

    /* RFC 6578 section 3.2 asks for Depth: 0.  Clients that send Depth: 1
     * (or none) mean the same thing (the scope is DAV:sync-level, and
     * SabreDAV-based servers accept it): answered as Depth: 0.  Anything
     * else is refused here, not by dav_get_depth(), which would log the
     * client's mistake at error level. */
    if (depth && strcmp(depth, "0") != 0 && strcmp(depth, "1") != 0) {
        return bad_request(r, "A sync-collection REPORT must have Depth: 0 "
                           "(RFC 6578 section 3.2; 1 or none are taken as "
                           "0); use DAV:sync-level to ask for members at "
                           "every depth.");
    }
    *token = NULL;
    for (e = root->first_child; e; e = e->next) {
        if (e->ns != APR_XML_NS_DAV_ID) {
            continue;                 /* foreign extensions: ignored */
        }
        if (strcmp(e->name, "sync-token") == 0) {
            if (*token) {
                return bad_request(r, "DAV:sync-token appears twice.");
            }
            *token = dav_xml_get_cdata(e, r->pool, 1);
        }
        else if (strcmp(e->name, "sync-level") == 0) {
            level = dav_xml_get_cdata(e, r->pool, 1);
        }
        else if (strcmp(e->name, "limit") == 0) {
            const apr_xml_elem *n = dav_find_child(e, "nresults");
            const char *v = n ? dav_xml_get_cdata(n, r->pool, 1) : NULL;
            char *end;
            apr_int64_t num = v ? apr_strtoi64(v, &end, 10) : 0;

            if (!v || !*v || *end || num <= 0) {
                return bad_request(r, "DAV:limit must hold a DAV:nresults "
                                   "with a positive integer.");
            }
            s->limit = (apr_uint64_t)num;
        }
        else if (strcmp(e->name, "prop") == 0) {
            s->allprop = 0;
        }
        else if (strcmp(e->name, "allprop") == 0) {
            s->allprop = 1;
        }
    }
    if (*token == NULL) {
        return bad_request(r, "The body lacks DAV:sync-token (empty for a "
                           "first sync).");
    }
    if (!dav_find_child(root, "prop") && !dav_find_child(root, "allprop")) {
        return bad_request(r, "The body lacks DAV:prop (the properties to "
                           "return for each member).");
    }
    /* RFC 6578 requires DAV:sync-level; its drafts had none and meant 1. */
    if (level == NULL || strcmp(level, "1") == 0) {
        s->infinite = 0;
    }
    else if (strcmp(level, "infinite") == 0
             || strcmp(level, "infinity") == 0) {
        s->infinite = 1;
    }
    else {
        return bad_request(r, apr_psprintf(r->pool, "DAV:sync-level must be "
                                           "1 or infinite, not '%s'.",
                                           ap_escape_html(r->pool, level)));
    }
    return NULL;
}

/* ---- what the client may see ---------------------------------------------- */

int iss_sync_visible(request_rec *r, apr_hash_t *cache, const char *rel,
                     int collection)
{
    const char *root = iss_state_root_uri(r), *base;
    const char *key = collection ? apr_pstrcat(r->pool, rel, "/", NULL) : rel;
    const char *v = cache ? apr_hash_get(cache, key, APR_HASH_KEY_STRING)
                          : NULL;
    int ok;

    if (v) {
        return *v == '1';
    }
    if (root == NULL) {
        return 0;
    }
    base = apr_pstrcat(r->pool, root, "/", rel, NULL);
    /* A folder with its slash: <Location /dav/alice/> covers
     * "/dav/alice/" and not "/dav/alice". */
    ok = iss_state_may(r, "PROPFIND",
                       collection ? apr_pstrcat(r->pool, base, "/", NULL)
                                  : base);
    if (cache) {
        apr_hash_set(cache, apr_pstrdup(apr_hash_pool_get(cache), key),
                     APR_HASH_KEY_STRING, ok ? "1" : "0");
    }
    return ok;
}

/* ---- collecting members --------------------------------------------------- */

/* Whether the client may see the member @a rel, and the change of
 * @a changed (not NULL: the path the log names, deeper down at level 1;
 * its change would tell that something hidden changed otherwise). */
static int item_visible(sync_t *s, const char *rel, int collection,
                        const char *changed, int changed_coll)
{
    return iss_sync_visible(s->r, s->vis, rel, collection)
           && (changed == NULL || strcmp(changed, rel) == 0
               || iss_sync_visible(s->r, s->vis, changed, changed_coll));
}

/* Add @a rel unless already there or hidden from the client; 0 if it is
 * a new member the client may see and the page is full (the answer stops
 * before it).  @a changed, when not NULL, is the path the log names (a
 * member deeper down that @a rel stands for at level 1): it must be
 * visible too, or its change would tell that something hidden changed.
 * Hidden members neither enter nor use up a page: paging depends only on
 * what the client may see (issue 16 item 1). */
static int add_member(sync_t *s, const char *rel, int collection,
                      const char *changed, int changed_coll)
{
    member_t *m = apr_hash_get(s->seen, rel, APR_HASH_KEY_STRING);

    if (m) {
        if (collection) {
            m->collection = 1;
        }
        return 1;
    }
    if (!item_visible(s, rel, collection, changed, changed_coll)) {
        return 1;
    }
    if (s->limit && (apr_uint64_t)s->members->nelts >= s->limit) {
        return 0;
    }
    m = apr_array_push(s->members);
    memset(m, 0, sizeof(*m));
    m->rel = apr_pstrdup(s->r->pool, rel);
    m->collection = collection;
    apr_hash_set(s->seen, m->rel, APR_HASH_KEY_STRING, m);
    return 1;
}

/* @a rel below the request's collection, or NULL (the collection itself
 * is never one of its members). */
static const char *below_coll(const sync_t *s, const char *rel)
{
    apr_size_t n = strlen(s->coll);

    if (n == 0) {
        return *rel ? rel : NULL;
    }
    if (strncmp(rel, s->coll, n) != 0 || rel[n] != '/' || !rel[n + 1]) {
        return NULL;
    }
    return rel + n + 1;
}

static void check_exists(sync_t *s, member_t *m);

/* At infinite depth: whether @a rel lies below a member already in this
 * answer that is gone now, whose 404 then stands for it.  A DELETE of a
 * folder of 100,000 files costs a page one member, not 100,000. */
static int below_gone(sync_t *s, const char *rel)
{
    char *p = apr_pstrdup(s->r->pool, rel), *slash;

    while ((slash = strrchr(p, '/')) != NULL) {
        member_t *a;

        *slash = '\0';
        if (below_coll(s, p) == NULL) {
            break;
        }
        if ((a = apr_hash_get(s->seen, p, APR_HASH_KEY_STRING)) != NULL) {
            if (!a->checked) {
                check_exists(s, a);
                a->checked = 1;
            }
            if (!a->exists) {
                return 1;
            }
        }
    }
    return 0;
}

/* What item @a k of an entry's changes reports (two items per change:
 * the member, then at infinite depth the folder a creation or removal
 * changed), or NULL for none. */
static const char *item(const sync_t *s, const apr_array_header_t *changes,
                        apr_uint32_t k, int *collection,
                        const iss_change_t **change)
{
    const iss_change_t *c = &APR_ARRAY_IDX(changes, k / 2, iss_change_t);
    const char *tail = below_coll(s, c->path), *slash;

    if (tail == NULL) {
        return NULL;
    }
    *change = k % 2 == 0 ? c : NULL;
    if (k % 2 == 0) {
        if (!s->infinite && (slash = strchr(tail, '/')) != NULL) {
            /* Level 1: a change deeper down shows as its child
             * collection having changed (see docs/protocol.md). */
            *collection = 1;
            return apr_pstrmemdup(s->r->pool, c->path,
                                  (apr_size_t)(slash - c->path));
        }
        *collection = c->collection;
        return c->path;
    }
    /* A member created or removed changes its folder's getetag and
     * getlastmodified: the folder changed too (at level 1 the member's
     * item already is the child collection holding the change). */
    if (!s->infinite || (c->kind != ISS_CHANGE_CREATED
                         && c->kind != ISS_CHANGE_REMOVED)
        || (slash = strrchr(tail, '/')) == NULL) {
        return NULL;
    }
    *collection = 1;
    return apr_pstrmemdup(s->r->pool, c->path,
                          strlen(c->path) - strlen(slash));
}

/* How many items of @a changes before item @a end name @a rel and are
 * visible to the client: with @a rel, it says which item a page stopped
 * before without counting anything the client may not see (at level 1
 * many items name the same child collection, so the path alone would
 * not do: a page could resume at an earlier one, and two pages could
 * send each other back for ever).  With @a end = (apr_uint32_t)-1 and
 * @a nth given: the index of the item that is visible occurrence
 * @a nth, or (apr_uint32_t)-1 if there is none. */
static apr_uint32_t occurrences(sync_t *s, const apr_array_header_t *changes,
                                const char *rel, apr_uint32_t end,
                                apr_uint32_t nth)
{
    apr_uint32_t k, n = 2 * (apr_uint32_t)changes->nelts, seen = 0;

    for (k = 0; k < n && k < end; k++) {
        int collection = 0;
        const iss_change_t *c = NULL;
        const char *r = item(s, changes, k, &collection, &c);

        if (r == NULL || strcmp(r, rel) != 0
            || !item_visible(s, r, collection, c ? c->path : NULL,
                             c ? c->collection : 0)) {
            continue;
        }
        if (end == (apr_uint32_t)-1 && seen == nth) {
            return k;
        }
        seen++;
    }
    return end == (apr_uint32_t)-1 ? (apr_uint32_t)-1 : seen;
}

/* Where the client resumes in entry @a seq: a continuation names the
 * member the last page stopped before and which of its visible items
 * (<seq>/<nth>/<path>); the entry is read from that item, or from its
 * start if there is none (a token used on another collection, or access
 * rules changed meanwhile: members are then reported twice, never
 * missed).  An older <seq>.<item> token resumes at that item. */
static apr_uint32_t resume_at(sync_t *s, apr_uint64_t seq,
                              const apr_array_header_t *changes)
{
    apr_uint32_t k;

    if (seq != s->pos.seq) {
        return 0;
    }
    if (s->pos.after == NULL || !*s->pos.after) {
        return s->pos.idx;
    }
    k = occurrences(s, changes, s->pos.after, (apr_uint32_t)-1, s->pos.idx);
    return k == (apr_uint32_t)-1 ? 0 : k;
}

/* One log entry: its items from where the client stands, until the limit.
 * A page stops before the first member it may see that has no room, and
 * its token names that member (<seq>/<nth>/<path>), so every page makes
 * progress and no token counts or names what the client may not see. */
static int entry_fn(void *baton, apr_uint64_t seq, apr_time_t when,
                    const char *method, const apr_array_header_t *changes)
{
    sync_t *s = baton;
    apr_uint32_t k = resume_at(s, seq, changes);
    apr_uint32_t n = 2 * (apr_uint32_t)changes->nelts;

    for (; k < n; k++) {
        int collection = 0;
        const iss_change_t *c = NULL;
        const char *rel = item(s, changes, k, &collection, &c);

        if (rel && s->infinite && below_gone(s, rel)) {
            continue;
        }
        if (rel && !add_member(s, rel, collection, c ? c->path : NULL,
                               c ? c->collection : 0)) {
            s->truncated = 1;
            s->next.seq = seq;
            s->next.after = apr_pstrdup(s->r->pool, rel);
            s->next.idx = occurrences(s, changes, rel, k, 0);
            return 1;
        }
    }
    return 0;
}

/* A listing without the location's folder (httpd maps it in a way we
 * cannot follow): mod_dav_fs's walker, all of it, sorted. */
typedef struct walk_ctx {
    sync_t *s;
    apr_array_header_t *all;      /* member_t, unsorted */
} walk_ctx;

static dav_error *walk_fn(dav_walk_resource *wres, int calltype)
{
    walk_ctx *w = wres->walk_ctx;
    const char *rel = iss_state_rel_path(w->s->r, wres->resource->uri);
    member_t *m;

    if (rel == NULL || below_coll(w->s, rel) == NULL) {
        return NULL;                  /* the collection itself */
    }
    m = apr_array_push(w->all);
    memset(m, 0, sizeof(*m));
    m->rel = rel;
    m->collection = wres->resource->collection;
    return NULL;
}

static int by_path(const void *a, const void *b)
{
    return iss_scan_path_cmp(((const member_t *)a)->rel,
                             ((const member_t *)b)->rel);
}

static dav_error *collect_walked(sync_t *s)
{
    walk_ctx w = { s, NULL };
    dav_walk_params params = { 0 };
    dav_response *multi = NULL;
    dav_error *err;
    int i;

    w.all = apr_array_make(s->r->pool, 64, sizeof(member_t));
    params.walk_type = DAV_WALKTYPE_NORMAL;
    params.func = walk_fn;
    params.walk_ctx = &w;
    params.pool = s->r->pool;
    params.root = s->resource;
    err = (*s->resource->hooks->walk)(&params,
                                      s->infinite ? DAV_INFINITY : 1, &multi);
    if (err) {
        return err;
    }
    qsort(w.all->elts, (size_t)w.all->nelts, sizeof(member_t), by_path);
    for (i = 0; i < w.all->nelts; i++) {
        const member_t *m = &APR_ARRAY_IDX(w.all, i, member_t);

        if (*s->pos.after && iss_scan_path_cmp(m->rel, s->pos.after) <= 0) {
            continue;
        }
        if (!add_member(s, m->rel, m->collection, NULL, 0)) {
            s->truncated = 1;
            break;
        }
    }
    return NULL;
}

/* A listed member; stops the listing at the first one the client may see
 * that the page has no room for (hidden ones are skipped, however many). */
static int listed(void *baton, const char *rel, int is_dir)
{
    sync_t *s = baton;

    if (!add_member(s, *s->coll ? apr_pstrcat(s->r->pool, s->coll, "/", rel,
                                              NULL)
                                : rel, is_dir, NULL, 0)) {
        s->truncated = 1;
        return 1;
    }
    return 0;
}

/* An empty token (or a listing's continuation): the members in path
 * order from where the last page stopped, reading no more of the tree
 * than this page needs. */
static dav_error *collect_listing(sync_t *s)
{
    const char *root = iss_state_root_fs(s->r), *after = NULL, *dir;
    apr_status_t rv;
    dav_error *err;
    int i, more = 0;

    if (root == NULL) {
        if ((err = collect_walked(s)) != NULL) {
            return err;
        }
    }
    else {
        if (*s->pos.after) {
            /* A continuation made for another collection restarts. */
            after = *s->coll ? below_coll(s, s->pos.after) : s->pos.after;
        }
        dir = *s->coll ? apr_pstrcat(s->r->pool, root, "/", s->coll, NULL)
                       : root;
        /* No limit for the scan: the page is full when the next member
         * the client may see has no room (listed()). */
        rv = iss_scan_list(dir, iss_state_ignore(s->r), s->infinite, after,
                           0, listed, s, &more, s->r->pool);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, s->r, ISSLOGNO(01048)
                          "sync-collection on %s: cannot list %s", s->r->uri,
                          dir);
            return dav_new_error(s->r->pool, HTTP_INTERNAL_SERVER_ERROR, 0,
                                 rv, "mod_iss: cannot list the collection");
        }
        (void)more;
    }
    for (i = 0; i < s->members->nelts; i++) {
        APR_ARRAY_IDX(s->members, i, member_t).exists = 1;
    }
    if (s->truncated && s->members->nelts) {
        s->next.initial = 1;
        s->next.after = APR_ARRAY_IDX(s->members, s->members->nelts - 1,
                                      member_t).rel;
    }
    return NULL;
}

/* ---- reporting ----------------------------------------------------------- */

/* Look @a m up as a PROPFIND of it would be: authorisation included. */
static void look_up(sync_t *s, member_t *m)
{
    request_rec *r = s->r;
    const char *uri = apr_pstrcat(r->pool, iss_state_root_uri(r), "/",
                                  m->rel, m->collection ? "/" : "", NULL);
    request_rec *sub = ap_sub_req_method_uri("PROPFIND",
                                             ap_escape_uri(r->pool, uri),
                                             r, NULL);
    dav_resource *res = NULL;

    m->sub = sub;
    m->hidden = 0;
    if (sub->status != HTTP_OK || !iss_is_enabled(sub)
        || !iss_state_same_location(sub, r)
        || dav_get_resource(sub, 0, 0, &res) != NULL) {
        m->hidden = 1;
        return;
    }
    m->resource = res;
    m->exists = res->exists;
    if (res->exists) {
        m->collection = res->collection;
    }
}

/* Whether @a m exists now: a stat where the root's directory is known,
 * else a lookup. */
static void check_exists(sync_t *s, member_t *m)
{
    const char *root = iss_state_root_fs(s->r);
    apr_finfo_t fi;

    if (root) {
        m->exists = apr_stat(&fi, apr_pstrcat(s->r->pool, root, "/", m->rel,
                                              NULL),
                             APR_FINFO_TYPE, s->r->pool) == APR_SUCCESS;
        if (m->exists) {
            m->collection = fi.filetype == APR_DIR;
        }
        return;
    }
    look_up(s, m);
    ap_destroy_sub_req(m->sub);
    m->sub = NULL;
    m->resource = NULL;
}

/* With infinite depth a removed collection stands for its members. */
static int under_removed(const sync_t *s, const member_t *m)
{
    char *p = apr_pstrdup(s->r->pool, m->rel), *slash;

    while ((slash = strrchr(p, '/')) != NULL) {
        const member_t *a;

        *slash = '\0';
        if (below_coll(s, p) == NULL) {
            break;
        }
        a = apr_hash_get(s->seen, p, APR_HASH_KEY_STRING);
        if (a && !a->exists) {
            return 1;
        }
    }
    return 0;
}

static dav_error *send_member(sync_t *s, member_t *m, apr_bucket_brigade *bb)
{
    request_rec *r = s->r;
    dav_response resp = { 0 };
    dav_propdb *propdb;
    dav_error *err;

    resp.href = apr_pstrcat(r->pool, iss_state_root_uri(r), "/", m->rel,
                            m->collection ? "/" : "", NULL);
    if (!m->exists) {
        resp.status = HTTP_NOT_FOUND;
        dav_send_one_response(&resp, bb, r, m->sub->pool);
        return NULL;
    }
    /* The main request: mod_dav caches lookups in the body's elements,
     * allocated from the propdb's request pool (a sub-request's dies);
     * the member's own allocations go with its sub-request. */
    err = dav_popen_propdb(m->sub->pool, r, s->lockdb, m->resource,
                           DAV_PROPDB_RO, s->doc->namespaces, &propdb);
    if (err) {
        return dav_push_error(r->pool, HTTP_INTERNAL_SERVER_ERROR, 0,
                              "mod_iss: cannot read the properties of a "
                              "member", err);
    }
    resp.propresult = s->allprop
        ? dav_get_allprops(propdb, DAV_PROP_INSERT_VALUE)
        : dav_get_props(propdb, (apr_xml_doc *)s->doc);
    resp.status = HTTP_OK;
    dav_send_one_response(&resp, bb, r, m->sub->pool);
    dav_close_propdb(propdb);
    return NULL;
}

static dav_error *send_answer(sync_t *s)
{
    request_rec *r = s->r;
    apr_bucket_brigade *bb = apr_brigade_create(r->pool,
                                                r->connection->bucket_alloc);
    const char *token;
    dav_error *err;
    apr_status_t rv;
    int i;

    for (i = 0; i < s->members->nelts && !s->pos.initial; i++) {
        check_exists(s, &APR_ARRAY_IDX(s->members, i, member_t));
    }
    dav_begin_multistatus(bb, r, HTTP_MULTI_STATUS, s->doc->namespaces);
    for (i = 0; i < s->members->nelts; i++) {
        member_t *m = &APR_ARRAY_IDX(s->members, i, member_t);

        if ((!m->exists && s->pos.initial)
            || (!m->exists && s->infinite && under_removed(s, m))) {
            continue;
        }
        look_up(s, m);
        if (!m->hidden && !(!m->exists && s->pos.initial)
            && (err = send_member(s, m, bb)) != NULL) {
            return err;
        }
        ap_destroy_sub_req(m->sub);
        m->sub = NULL;
        m->resource = NULL;
    }
    if (s->truncated) {
        ap_fputstrs(r->output_filters, bb, "<D:response><D:href>",
                    apr_xml_quote_string(r->pool,
                                         ap_escape_uri(r->pool, r->uri), 0),
                    "</D:href><D:status>HTTP/1.1 507 Insufficient Storage"
                    "</D:status><D:error><D:number-of-matches-within-limits/>"
                    "</D:error></D:response>" DEBUG_CR, NULL);
    }
    token = iss_sync_token_make(s->key, s->log_id, &s->next, r->pool);
    if (token == NULL) {
        return dav_new_error(r->pool, HTTP_INTERNAL_SERVER_ERROR, 0, 0,
                             "mod_iss: the sync token cannot be sealed");
    }
    ap_fputstrs(r->output_filters, bb, "<D:sync-token>",
                apr_xml_quote_string(r->pool, token, 0),
                "</D:sync-token>" DEBUG_CR, NULL);
    if ((rv = dav_finish_multistatus(r, bb)) != APR_SUCCESS) {
        return dav_new_error(r->pool, HTTP_INTERNAL_SERVER_ERROR, 0, rv,
                             "mod_iss: the answer could not be sent");
    }
    return NULL;
}

/* ---- the hook ---------------------------------------------------------------- */

static dav_error *store_error(request_rec *r, iss_store_t *store,
                              apr_status_t rv)
{
    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01043)
                  "sync-collection on %s: cannot read the change log: %s",
                  r->uri, iss_store_last_error(store));
    return dav_new_error(r->pool, rv == ISS_STORE_EDAMAGED
                                      ? HTTP_SERVICE_UNAVAILABLE
                                      : HTTP_INTERNAL_SERVER_ERROR, 0, rv,
                         "The change log of this location cannot be read.");
}

/* Check a parsed token against the store and its log bounds. */
static dav_error *check_token(sync_t *s, const char *id, apr_uint64_t last,
                              apr_uint64_t first)
{
    if (strcmp(id, s->log_id) != 0) {
        return bad_token(s->r, "it belongs to another location or to a "
                         "state that was reset");
    }
    if (s->pos.seq > last + 1) {
        return bad_token(s->r, "it names a change this location never had");
    }
    if (s->pos.seq < first && s->pos.seq <= last) {
        return bad_token(s->r, "it is older than the change log kept "
                         "(ISSSyncRetention)");
    }
    return NULL;
}

static dav_error *run(sync_t *s, const char *token)
{
    request_rec *r = s->r;
    iss_dir_conf_t *dconf = iss_config_dir(r);
    apr_uint64_t last, first, cap = (apr_uint64_t)iss_config_max_results(dconf);
    const char *id;
    dav_error *err;
    apr_status_t rv;

    if ((err = iss_state_store(r, &s->store)) != NULL
        || (err = iss_state_token_key(r, &s->key)) != NULL) {
        return err;
    }
    if (*token && (iss_sync_token_parse(s->key, token, &id, &s->pos, r->pool)
                   != APR_SUCCESS)) {
        return bad_token(r, "it is not a token of this server");
    }
    rv = iss_sync_reconcile_if_due(r, s->store);
    if (rv == APR_SUCCESS) {
        rv = iss_sync_log_recover(s->store, iss_config_retention(dconf), NULL,
                                  r->pool);
    }
    if (rv == APR_SUCCESS) {
        rv = iss_sync_log_bounds_id(s->store, &last, &first, &s->log_id,
                                    r->pool);
    }
    if (rv != APR_SUCCESS) {
        return store_error(r, s->store, rv);
    }
    if (*token && (err = check_token(s, id, last, first)) != NULL) {
        return err;
    }
    if (cap && (s->limit == 0 || s->limit > cap)) {
        s->limit = cap;
    }
    s->coll = iss_state_rel_path(r, r->uri);
    if (s->coll == NULL) {
        return dav_new_error(r->pool, HTTP_INTERNAL_SERVER_ERROR, 0, 0,
                             "mod_iss: the request is outside its location");
    }
    s->members = apr_array_make(r->pool, 16, sizeof(member_t));
    s->seen = apr_hash_make(r->pool);
    s->vis = apr_hash_make(r->pool);
    if (!*token || s->pos.initial) {
        /* Changes made while the listing is read are due after it. */
        apr_uint64_t base = s->pos.initial ? s->pos.seq - 1 : last;

        s->next.seq = base + 1;
        if (!*token) {
            s->pos.initial = 1;
            s->pos.after = "";
        }
        if ((err = collect_listing(s)) != NULL) {
            return err;
        }
    }
    else {
        s->next.seq = last + 1;
        rv = iss_sync_log_read(s->store, s->pos.seq, last, entry_fn, s,
                               r->pool);
        if (rv == APR_NOTFOUND) {
            return bad_token(r, "the changes since it were compacted away "
                             "meanwhile");
        }
        if (rv != APR_SUCCESS) {
            return store_error(r, s->store, rv);
        }
    }
    return send_answer(s);
}

static int deliver_report(request_rec *r, const dav_resource *resource,
                          const apr_xml_doc *doc, ap_filter_t *output,
                          dav_error **err)
{
    const dav_hooks_locks *locks;
    const char *token = NULL;
    sync_t s;

    if (!doc || !doc->root || doc->root->ns != APR_XML_NS_DAV_ID
        || strcmp(doc->root->name, ISS_SYNC_REPORT) != 0
        || !iss_is_enabled(r)) {
        return DECLINED;
    }
    memset(&s, 0, sizeof(s));
    s.r = r;
    s.resource = resource;
    s.doc = doc;
    if ((*err = parse_body(&s, &token)) == NULL && !resource->collection) {
        *err = dav_new_error_tag(r->pool, HTTP_FORBIDDEN, 0, 0,
                                 "A sync-collection REPORT applies to "
                                 "collections only.", NULL,
                                 "supported-report");
    }
    if (*err) {
        send_client_error(r, *err);
        *err = NULL;
        return OK;
    }
    locks = dav_get_lock_hooks(r);
    if (locks && (*locks->open_lockdb)(r, 1, 0, &s.lockdb) != NULL) {
        s.lockdb = NULL;              /* no lockdiscovery then */
    }
    *err = run(&s, token);
    if (s.lockdb) {
        (*locks->close_lockdb)(s.lockdb);
    }
    if (*err && !r->sent_bodyct) {
        send_client_error(r, *err);
        *err = NULL;
    }
    return OK;
}

/* mod_dav answers a REPORT whose body is missing or not XML with a bare
 * 400 (it logs why); say it in the body too.  Our own 400s never come
 * this way: deliver_report answers them itself. */
static void error_notes(request_rec *r)
{
    if (r->status == HTTP_BAD_REQUEST && r->method_number == M_REPORT
        && !r->main && iss_is_enabled(r)
        && apr_table_get(r->notes, "error-notes") == NULL) {
        apr_table_setn(r->notes, "error-notes",
                       "The REPORT body is missing or is not well-formed "
                       "XML.");
    }
}

void iss_sync_register_hooks(apr_pool_t *p)
{
    dav_hook_deliver_report(deliver_report, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_insert_error_filter(error_notes, NULL, NULL, APR_HOOK_MIDDLE);
}
