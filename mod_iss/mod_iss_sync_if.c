/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * Sync tokens in the If header (RFC 6578 section 5).
 *
 * mod_dav evaluates If headers itself and takes any state token it does
 * not know for one that does not match.  Before it runs (fixups), each
 * condition on one of our tokens is replaced by a constant condition with
 * the same truth, written with RFC 4918's DAV:no-lock, a state token that
 * never matches (libiss/server/iss_ifhdr).  A token "matches" a
 * collection when it is still current for it: same store, not expired,
 * and nothing in the log changed at or below the collection since.
 *
 * Entity tags in the If header get the same treatment when they name a
 * file: mod_dav compares them with mod_dav_fs's ETag, mod_iss's strong
 * ETag is the one clients have.
 */

#include "mod_iss_sync.h"
#include "mod_iss_config.h"
#include "mod_iss_digest.h"
#include "mod_iss_state.h"
#include "iss_ifhdr.h"
#include "iss_sync_log.h"

#include <apr_strings.h>
#include <apr_uri.h>
#include <http_request.h>

typedef struct match_ctx {
    const char *rel;
    int changed;
} match_ctx;

static int under(const char *rel, const char *path)
{
    apr_size_t n = strlen(rel);

    return n == 0 || (strncmp(path, rel, n) == 0
                      && (path[n] == '\0' || path[n] == '/'));
}

static int match_entry(void *baton, apr_uint64_t seq, apr_time_t when,
                       const char *method, const apr_array_header_t *changes)
{
    match_ctx *m = baton;
    int i;

    for (i = 0; i < changes->nelts; i++) {
        if (under(m->rel, APR_ARRAY_IDX(changes, i, iss_change_t).path)) {
            m->changed = 1;
            return 1;
        }
    }
    return 0;
}

int iss_sync_token_current(request_rec *r, const char *rel, const char *token)
{
    iss_sync_pos_t pos;
    apr_uint64_t last, first;
    iss_store_t *store;
    match_ctx m = { rel, 0 };
    const char *id, *log_id;

    if (iss_sync_token_parse(token, &id, &pos, r->pool) != APR_SUCCESS) {
        return -1;
    }
    if (rel == NULL || iss_state_store(r, &store) != NULL || pos.initial
        || iss_sync_log_recover(store, iss_config_retention(iss_config_dir(r)),
                                NULL, r->pool) != APR_SUCCESS
        || iss_sync_log_bounds_id(store, &last, &first, &log_id, r->pool)
           != APR_SUCCESS
        || strcmp(id, log_id) != 0
        || pos.seq > last + 1 || (pos.seq < first && pos.seq <= last)) {
        return 0;
    }
    if (iss_sync_log_read(store, pos.seq, last, match_entry, &m, r->pool)
        != APR_SUCCESS) {
        return 0;
    }
    return !m.changed;
}

/* The decoded URI path of the resource a tagged list names (an absolute
 * URI or a path); the request's for an untagged list; NULL if invalid. */
static const char *tag_uri(request_rec *r, const char *tag)
{
    apr_uri_t uri;
    char *path;

    if (tag == NULL) {
        return r->uri;
    }
    if (apr_uri_parse(r->pool, tag, &uri) != APR_SUCCESS || !uri.path) {
        return NULL;
    }
    path = apr_pstrdup(r->pool, uri.path);
    return ap_unescape_url(path) == OK ? path : NULL;
}

/* ... relative to the location; NULL when it is elsewhere. */
static const char *tag_rel(request_rec *r, const char *tag)
{
    const char *uri = tag_uri(r, tag);

    return uri ? iss_state_rel_path(r, uri) : NULL;
}

/* An entity tag on a file of the location is compared with mod_iss's
 * strong ETag (mod_dav would compare it with mod_dav_fs's); anything
 * else is left to mod_dav. */
static int eval_etag(void *baton, const char *tag, const char *etag)
{
    request_rec *r = baton;
    const char *uri = tag_uri(r, tag), *ours;

    if (uri == NULL || iss_state_rel_path(r, uri) == NULL
        || (ours = iss_digest_etag_of_uri(r, uri)) == NULL) {
        return -1;
    }
    return strcmp(etag, ours) == 0;
}

static int eval(void *baton, const char *tag, const char *token)
{
    request_rec *r = baton;

    if (strncmp(token, ISS_SYNC_TOKEN_BASE,
                sizeof(ISS_SYNC_TOKEN_BASE) - 1) != 0) {
        return -1;
    }
    return iss_sync_token_current(r, tag_rel(r, tag), token);
}

static int fixups(request_rec *r)
{
    const char *in = apr_table_get(r->headers_in, "If"), *out;
    int nours = 0;

    if (in == NULL || r->main || !iss_is_enabled(r)
        || (!strstr(in, ISS_SYNC_TOKEN_BASE) && !strchr(in, '['))) {
        return DECLINED;
    }
    if (iss_ifhdr_rewrite(in, eval, eval_etag, r, &out, &nours, r->pool)
        != APR_SUCCESS) {
        return DECLINED;              /* malformed: mod_dav answers it */
    }
    if (nours) {
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r, ISSLOGNO(01045)
                      "If header with %d sync token or ETag condition(s) "
                      "became: %s", nours, out);
        apr_table_set(r->headers_in, "If", out);
    }
    return DECLINED;
}

void iss_sync_if_register_hooks(apr_pool_t *p)
{
    ap_hook_fixups(fixups, NULL, NULL, APR_HOOK_MIDDLE);
}
