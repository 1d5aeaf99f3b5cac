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

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_uri.h>
#include <http_request.h>

typedef struct match_ctx {
    request_rec *r;
    apr_hash_t *vis;              /* iss_sync_visible()'s answers */
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
        const iss_change_t *c = &APR_ARRAY_IDX(changes, i, iss_change_t);

        /* Only what the client may see counts: an answer about a hidden
         * change would tell that something hidden changed. */
        if (under(m->rel, c->path)
            && iss_sync_visible(m->r, m->vis, c->path, c->collection)) {
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
    match_ctx m = { r, NULL, rel, 0 };
    const iss_sync_key_t *key;
    const char *id, *log_id, *id_mark;

    /* Without the key no token of ours can be told from a forgery: not
     * current, as for any token this location does not know. */
    if (iss_state_token_key(r, &key) != NULL) {
        return 0;
    }
    if (iss_sync_token_parse(key, token, &id, &pos, r->pool) != APR_SUCCESS) {
        return -1;
    }
    /* A rescan due after a restart of the machine (lazy commits may be
     * lost): not current until a sync has made it. */
    if (rel == NULL || iss_state_store(r, &store) != NULL || pos.initial
        || iss_store_rescan_due(store, &id_mark, r->pool) != APR_SUCCESS
        || id_mark != NULL
        || iss_sync_log_recover(store, iss_config_retention(iss_config_dir(r)),
                                NULL, r->pool) != APR_SUCCESS
        || iss_sync_log_bounds_id(store, &last, &first, &log_id, r->pool)
           != APR_SUCCESS
        || strcmp(id, log_id) != 0
        || pos.seq > last + 1 || (pos.seq < first && pos.seq <= last)) {
        return 0;
    }
    m.vis = apr_hash_make(r->pool);
    if (iss_sync_log_read(store, pos.seq, last, match_entry, &m, r->pool)
        != APR_SUCCESS) {
        return 0;
    }
    return !m.changed;
}

/* What the resources named in one If header resolve to (one lookup per
 * distinct Resource-Tag). */
typedef struct if_ctx {
    request_rec *r;
    apr_hash_t *tags;             /* tag -> const char * ("" = none) */
} if_ctx;

/* The resource a tagged list names, resolved the way httpd and mod_dav
 * resolve a request-URI: the path of the URI (an absolute URI's scheme
 * and host are not compared, as mod_dav does not), normalised on its
 * encoded form (unreserved escapes such as %2e decoded, "." and ".."
 * segments removed, a path that climbs above "/" refused), then decoded
 * (an encoded '/' or NUL refused), and then only if it lies inside this
 * location and a GET of it by this user would be authorised (a
 * sub-request: Require and every section that applies to it).  NULL
 * otherwise: the list is left to mod_dav, and nothing outside the
 * location or unreadable by this user is ever stat()ed, read, hashed or
 * recorded (issue 16 item 3).  The request's own URI for an untagged
 * list: httpd resolved and authorised it already. */
static const char *tag_uri(if_ctx *c, const char *tag)
{
    request_rec *r = c->r;
    const char *known;
    apr_uri_t uri;
    char *path;
    const char *res = NULL;

    if (tag == NULL) {
        return r->uri;
    }
    if ((known = apr_hash_get(c->tags, tag, APR_HASH_KEY_STRING)) != NULL) {
        return *known ? known : NULL;
    }
    if (apr_uri_parse(r->pool, tag, &uri) == APR_SUCCESS && uri.path
        && uri.path[0] == '/') {
        path = apr_pstrdup(r->pool, uri.path);
        if (ap_normalize_path(path, AP_NORMALIZE_NOT_ABOVE_ROOT
                                    | AP_NORMALIZE_DECODE_UNRESERVED
                                    | AP_NORMALIZE_MERGE_SLASHES)
            && ap_unescape_url(path) == OK
            && iss_state_rel_path(r, path) != NULL) {
            /* A folder may be named without its slash. */
            if (iss_state_may(r, "GET", path)
                || iss_state_may(r, "GET", apr_pstrcat(r->pool, path, "/",
                                                       NULL))) {
                res = path;
            }
        }
    }
    if (res == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ISSLOGNO(01100)
                      "If header: resource <%s> is outside this location, "
                      "malformed, or not readable by this user: its lists "
                      "are left to mod_dav", tag);
    }
    apr_hash_set(c->tags, tag, APR_HASH_KEY_STRING, res ? res : "");
    return res;
}

/* ... relative to the location; NULL when it is elsewhere. */
static const char *tag_rel(if_ctx *c, const char *tag)
{
    const char *uri = tag_uri(c, tag);

    return uri ? iss_state_rel_path(c->r, uri) : NULL;
}

/* An entity tag on a file of the location is compared with mod_iss's
 * strong ETag (mod_dav would compare it with mod_dav_fs's); anything
 * else is left to mod_dav. */
static int eval_etag(void *baton, const char *tag, const char *etag)
{
    if_ctx *c = baton;
    request_rec *r = c->r;
    const char *uri = tag_uri(c, tag), *ours;
    unsigned char sha[ISS_DIGEST_SHA256_LEN];
    int found;

    if (uri == NULL || iss_state_rel_path(r, uri) == NULL) {
        return -1;
    }
    if (!iss_digest_may_read(r, uri)) {
        return 0;                     /* the same answer for every guess */
    }
    iss_digest_of_uri(r, uri, sha, &found);
    if (!found) {
        return -1;
    }
    ours = iss_digest_etag(sha, r->pool);
    return strcmp(etag, ours) == 0;
}

static int eval(void *baton, const char *tag, const char *token)
{
    if_ctx *c = baton;

    if (strncmp(token, ISS_SYNC_TOKEN_BASE,
                sizeof(ISS_SYNC_TOKEN_BASE) - 1) != 0) {
        return -1;
    }
    return iss_sync_token_current(c->r, tag_rel(c, tag), token);
}

/* Each sync-token condition reads the sync log since its token: a
 * request may hold ISSIfMaxSyncTokens of them (counted in the header's
 * text, before any is evaluated), more answers 400.  DECLINED when
 * within the limit, DONE once the 400 is sent. */
static int too_many_sync_tokens(request_rec *r, const char *in)
{
    apr_int64_t max = iss_config_if_max_sync_tokens(iss_config_dir(r));
    apr_int64_t n = 0;
    const char *s = in;

    while ((s = strstr(s, ISS_SYNC_TOKEN_BASE)) != NULL) {
        n++;
        s += sizeof(ISS_SYNC_TOKEN_BASE) - 1;
    }
    if (n <= max) {
        return DECLINED;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ISSLOGNO(01142)
                  "%s %s refused with 400: If header with %" APR_INT64_T_FMT
                  " sync-token conditions (ISSIfMaxSyncTokens %"
                  APR_INT64_T_FMT ")", r->method, r->uri, n, max);
    r->connection->keepalive = AP_CONN_CLOSE;
    iss_send_error_body(r, HTTP_BAD_REQUEST, ISS_XML_NS,
                        "too-many-sync-tokens", NULL, apr_psprintf(r->pool,
                        "The If header holds %" APR_INT64_T_FMT " sync-token "
                        "conditions; this server evaluates at most %"
                        APR_INT64_T_FMT " in one request "
                        "(ISSIfMaxSyncTokens).", n, max));
    return DONE;
}

static int fixups(request_rec *r)
{
    const char *in = apr_table_get(r->headers_in, "If"), *out;
    int nours = 0, st;
    if_ctx c;

    if (in == NULL || r->main || !iss_is_enabled(r)
        || (!strstr(in, ISS_SYNC_TOKEN_BASE) && !strchr(in, '['))) {
        return DECLINED;
    }
    if ((st = too_many_sync_tokens(r, in)) != DECLINED) {
        return st;
    }
    c.r = r;
    c.tags = apr_hash_make(r->pool);
    if (iss_ifhdr_rewrite(in, eval, eval_etag, &c, &out, &nours, r->pool)
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
