/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "sync_dav.h"
#include "sync_local.h"
#include "sync_ui.h"
#include "iss_bytes.h"
#include "iss_version.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_xml.h>

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX_BODY  (256u * 1024 * 1024)
#define MAX_PAGES      100000

/* ---- URLs and hrefs --------------------------------------------------------- */

/* Percent-decode [s, s+n) as one path segment: NULL for a bad escape, an
 * encoded NUL or '/'. */
static char *decode_segment(const char *s, apr_size_t n, apr_pool_t *pool)
{
    char *out = apr_palloc(pool, n + 1);
    apr_size_t i, o = 0;

    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;

            if (i + 2 >= n) {
                return NULL;
            }
            hi = iss_hex_digit((unsigned char)s[i + 1]);
            lo = iss_hex_digit((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)
                || (hi == 2 && (lo == 0xf))) {
                return NULL;
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        }
        else if (s[i] == '\0') {
            return NULL;
        }
        else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* Decode an absolute path ("/a/b%20c/") into "/a/b c/", segment by
 * segment, refusing what sync_dav_href_rel refuses. */
static const char *decode_path(const char *path, const char **why,
                               apr_pool_t *pool)
{
    apr_array_header_t *segs = apr_array_make(pool, 8, sizeof(char *));
    const char *p = path + 1, *slash;
    int trailing = 0;

    if (path[0] != '/') {
        *why = "not an absolute path";
        return NULL;
    }
    if (strpbrk(path, "?#")) {
        *why = "it has a query or a fragment";
        return NULL;
    }
    while (*p) {
        char *seg;

        slash = strchr(p, '/');
        if (slash == p) {
            *why = "it has an empty segment (//)";
            return NULL;
        }
        seg = decode_segment(p, slash ? (apr_size_t)(slash - p) : strlen(p),
                             pool);
        if (seg == NULL) {
            *why = "it has a bad %-escape, an encoded '/' or an encoded NUL";
            return NULL;
        }
        if (strcmp(seg, ".") == 0 || strcmp(seg, "..") == 0) {
            *why = "it has a '.' or '..' segment";
            return NULL;
        }
        APR_ARRAY_PUSH(segs, char *) = seg;
        if (slash == NULL) {
            break;
        }
        p = slash + 1;
        if (*p == '\0') {
            trailing = 1;
        }
    }
    {
        const char *joined = apr_array_pstrcat(pool, segs, '/');

        return apr_pstrcat(pool, "/", joined,
                           trailing && segs->nelts ? "/" : "", NULL);
    }
}

apr_status_t sync_dav_parse_url(sync_server_t *srv, const char *url,
                                const char **msg, apr_pool_t *pool)
{
    const char *rest, *slash, *why = NULL;
    apr_size_t plen;

    if (strncasecmp(url, "http://", 7) == 0) {
        rest = url + 7;
    }
    else if (strncasecmp(url, "https://", 8) == 0) {
        rest = url + 8;
    }
    else {
        *msg = "the URL must start with http:// or https://";
        return APR_EINVAL;
    }
    slash = strchr(rest, '/');
    if (slash == NULL || slash == rest) {
        *msg = "the URL has no host or no path";
        return APR_EINVAL;
    }
    if (memchr(rest, '@', (apr_size_t)(slash - rest))) {
        *msg = "credentials do not go in the URL: use ~/.netrc or "
               "ISS_SYNC_USER and ISS_SYNC_PASSWORD";
        return APR_EINVAL;
    }
    plen = (apr_size_t)(slash - url);
    srv->origin = apr_pstrmemdup(pool, url, plen);
    srv->base_path = decode_path(slash, &why, pool);
    if (srv->base_path == NULL) {
        *msg = apr_psprintf(pool, "the URL's path is not usable: %s", why);
        return APR_EINVAL;
    }
    if (srv->base_path[strlen(srv->base_path) - 1] != '/') {
        srv->base_path = apr_pstrcat(pool, srv->base_path, "/", NULL);
    }
    return APR_SUCCESS;
}

apr_status_t sync_dav_href_rel(const sync_server_t *srv, const char *href,
                               const char **rel, int *is_dir,
                               const char **why, apr_pool_t *pool)
{
    const char *path = href, *dec;
    apr_size_t blen = strlen(srv->base_path), dlen;

    while (apr_isspace(*path)) {
        path++;
    }
    if (strncasecmp(path, "http://", 7) == 0
        || strncasecmp(path, "https://", 8) == 0) {
        apr_size_t olen = strlen(srv->origin);

        if (strncasecmp(path, srv->origin, olen) != 0 || path[olen] != '/') {
            *why = "it names another server";
            return APR_EINVAL;
        }
        path += olen;
    }
    path = apr_pstrdup(pool, path);
    {   /* trailing whitespace of an XML text node */
        char *e = (char *)path + strlen(path);

        while (e > path && apr_isspace(e[-1])) {
            *--e = '\0';
        }
    }
    if ((dec = decode_path(path, why, pool)) == NULL) {
        return APR_EINVAL;
    }
    dlen = strlen(dec);
    if (dlen == blen - 1 && strncmp(dec, srv->base_path, dlen) == 0) {
        *rel = "";                      /* the collection, without '/' */
        *is_dir = 1;
        return APR_SUCCESS;
    }
    if (dlen < blen || strncmp(dec, srv->base_path, blen) != 0) {
        *why = "it lies outside the synced collection";
        return APR_EINVAL;
    }
    *is_dir = dec[dlen - 1] == '/';
    *rel = apr_pstrmemdup(pool, dec + blen, dlen - blen - (*is_dir && dlen > blen));
    return APR_SUCCESS;
}

const char *sync_dav_url(const sync_ctx_t *ctx, const char *rel, int is_dir,
                         apr_pool_t *pool)
{
    const sync_server_t *srv = &ctx->server;
    apr_array_header_t *parts = apr_array_make(pool, 8, sizeof(const char *));
    const char *p = srv->base_path + 1, *slash;
    const char *enc;

    /* The base path, re-encoded segment by segment. */
    while (*p && (slash = strchr(p, '/')) != NULL) {
        APR_ARRAY_PUSH(parts, const char *) = sync_http_escape_segment(
            apr_pstrmemdup(pool, p, (apr_size_t)(slash - p)), pool);
        p = slash + 1;
    }
    p = rel;
    while (*p) {
        slash = strchr(p, '/');
        APR_ARRAY_PUSH(parts, const char *) = sync_http_escape_segment(
            slash ? apr_pstrmemdup(pool, p, (apr_size_t)(slash - p)) : p, pool);
        if (!slash) {
            break;
        }
        p = slash + 1;
    }
    enc = apr_array_pstrcat(pool, parts, '/');
    return apr_pstrcat(pool, srv->origin, "/", enc,
                       (is_dir || *rel == '\0') && *enc ? "/" : "", NULL);
}

/* ---- XML ------------------------------------------------------------------------ */

typedef struct member_t {
    const char *href;
    int status;                     /* of the response, 0 if propstat */
    int has_props;
    const char *etag, *repr, *token;
    apr_int64_t size;
    int is_coll;
} member_t;

typedef struct ms_t {
    apr_array_header_t *members;    /* member_t */
    const char *sync_token;
    int more;                       /* a 507 for the request-URI */
    int ns_iss;
} ms_t;

static int ns_index(const apr_xml_doc *doc, const char *uri)
{
    int i;

    for (i = 0; i < doc->namespaces->nelts; i++) {
        if (strcmp(APR_XML_GET_URI_ITEM(doc->namespaces, i), uri) == 0) {
            return i;
        }
    }
    return -1000;
}

static const char *text_of(const apr_xml_elem *e, apr_pool_t *pool)
{
    const char *t = NULL;
    apr_size_t len;
    char *s, *end;

    apr_xml_to_text(pool, e, APR_XML_X2T_INNER, NULL, NULL, &t, &len);
    s = apr_pstrdup(pool, t ? t : "");
    while (apr_isspace(*s)) {
        s++;
    }
    end = s + strlen(s);
    while (end > s && apr_isspace(end[-1])) {
        *--end = '\0';
    }
    return s;
}

static int status_code(const char *line)
{
    const char *sp = strchr(line, ' ');

    return sp ? atoi(sp + 1) : 0;
}

static int is_dav(const apr_xml_elem *e, const char *name)
{
    return e->ns == APR_XML_NS_DAV_ID && strcmp(e->name, name) == 0;
}

static apr_status_t parse_xml(const char *body, apr_size_t len,
                              apr_xml_doc **doc, const char **err,
                              apr_pool_t *pool)
{
    apr_xml_parser *p = apr_xml_parser_create(pool);
    char ebuf[200];

    *doc = NULL;
    if (apr_xml_parser_feed(p, body, len) != APR_SUCCESS
        || apr_xml_parser_done(p, doc) != APR_SUCCESS || *doc == NULL
        || (*doc)->root == NULL) {
        apr_xml_parser_geterror(p, ebuf, sizeof(ebuf));
        *err = apr_psprintf(pool, "the answer is not well-formed XML (%s)",
                            ebuf);
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

static apr_status_t parse_multistatus(const char *body, apr_size_t len,
                                      ms_t *ms, const char **err,
                                      apr_pool_t *pool)
{
    apr_xml_doc *doc;
    apr_xml_elem *r, *e, *ps, *pr;
    apr_status_t rv;

    memset(ms, 0, sizeof(*ms));
    ms->members = apr_array_make(pool, 64, sizeof(member_t));
    if ((rv = parse_xml(body, len, &doc, err, pool)) != APR_SUCCESS) {
        return rv;
    }
    if (!is_dav(doc->root, "multistatus")) {
        *err = "the answer is not a DAV:multistatus";
        return APR_EINVAL;
    }
    ms->ns_iss = ns_index(doc, SYNC_ISS_NS);
    for (r = doc->root->first_child; r; r = r->next) {
        member_t *m;

        if (is_dav(r, "sync-token")) {
            ms->sync_token = text_of(r, pool);
            continue;
        }
        if (!is_dav(r, "response")) {
            continue;
        }
        m = apr_array_push(ms->members);
        memset(m, 0, sizeof(*m));
        m->size = -1;
        for (e = r->first_child; e; e = e->next) {
            if (is_dav(e, "href")) {
                if (m->href) {
                    *err = "a response has two hrefs";
                    return APR_EINVAL;
                }
                m->href = text_of(e, pool);
            }
            else if (is_dav(e, "status")) {
                m->status = status_code(text_of(e, pool));
            }
            else if (is_dav(e, "propstat")) {
                int st = 0;
                apr_xml_elem *prop = NULL;

                for (ps = e->first_child; ps; ps = ps->next) {
                    if (is_dav(ps, "status")) {
                        st = status_code(text_of(ps, pool));
                    }
                    else if (is_dav(ps, "prop")) {
                        prop = ps;
                    }
                }
                if (st != 200 || prop == NULL) {
                    continue;
                }
                m->has_props = 1;
                for (pr = prop->first_child; pr; pr = pr->next) {
                    if (is_dav(pr, "getetag")) {
                        m->etag = text_of(pr, pool);
                    }
                    else if (is_dav(pr, "getcontentlength")) {
                        const char *t = text_of(pr, pool);
                        char *end;

                        m->size = apr_strtoi64(t, &end, 10);
                        if (*t == '\0' || *end || m->size < 0) {
                            *err = "a getcontentlength is not a number";
                            return APR_EINVAL;
                        }
                    }
                    else if (is_dav(pr, "resourcetype")) {
                        apr_xml_elem *c;

                        for (c = pr->first_child; c; c = c->next) {
                            if (is_dav(c, "collection")) {
                                m->is_coll = 1;
                            }
                        }
                    }
                    else if (is_dav(pr, "sync-token")) {
                        m->token = text_of(pr, pool);
                    }
                    else if (pr->ns == ms->ns_iss
                             && strcmp(pr->name, "repr-digest") == 0) {
                        m->repr = text_of(pr, pool);
                    }
                }
            }
        }
        if (m->href == NULL) {
            *err = "a response has no href";
            return APR_EINVAL;
        }
    }
    return APR_SUCCESS;
}

static apr_xml_doc *error_doc(const sync_resp_t *resp, apr_pool_t *pool)
{
    apr_xml_doc *doc;
    const char *err;

    if (resp->body == NULL || resp->body_len == 0
        || parse_xml(resp->body, resp->body_len, &doc, &err, pool)
           != APR_SUCCESS) {
        return NULL;
    }
    return doc;
}

int sync_dav_error_is(const sync_resp_t *resp, const char *ns,
                      const char *name, apr_pool_t *pool)
{
    apr_xml_doc *doc = error_doc(resp, pool);
    apr_xml_elem *e;
    int n;

    if (doc == NULL) {
        return 0;
    }
    n = ns_index(doc, ns);
    for (e = doc->root->first_child; e; e = e->next) {
        if (e->ns == n && strcmp(e->name, name) == 0) {
            return 1;
        }
    }
    return 0;
}

apr_array_header_t *sync_dav_error_texts(const sync_resp_t *resp,
                                         const char *ns, const char *name,
                                         apr_pool_t *pool)
{
    apr_array_header_t *a = apr_array_make(pool, 16, sizeof(const char *));
    apr_xml_doc *doc = error_doc(resp, pool);
    apr_xml_elem *e;
    int n;

    if (doc == NULL) {
        return a;
    }
    n = ns_index(doc, ns);
    for (e = doc->root->first_child; e; e = e->next) {
        if (e->ns == n && strcmp(e->name, name) == 0) {
            APR_ARRAY_PUSH(a, const char *) = text_of(e, pool);
        }
    }
    return a;
}

/* ---- requests -------------------------------------------------------------------- */

static apr_status_t request(sync_ctx_t *ctx, sync_req_t *req,
                            sync_resp_t *resp, apr_pool_t *pool)
{
    apr_status_t rv = sync_http_do(ctx->http, req, resp, pool);

    sync_ui_request_done(ctx->ui);
    return rv;
}

apr_status_t sync_dav_simple(sync_ctx_t *ctx, const char *method,
                             const char *rel, int is_dir, sync_resp_t *resp,
                             apr_pool_t *pool, ...)
{
    sync_req_t req;
    va_list ap;
    const char *name;

    memset(&req, 0, sizeof(req));
    req.method = method;
    req.url = sync_dav_url(ctx, rel, is_dir, pool);
    va_start(ap, pool);
    while ((name = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);

        if (value) {
            sync_req_header(&req, pool, name, value);
        }
    }
    va_end(ap);
    return request(ctx, &req, resp, pool);
}

static const char propfind_body[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<D:propfind xmlns:D=\"DAV:\" xmlns:I=\"" SYNC_ISS_NS "\"><D:prop>"
    "<D:getetag/><D:getcontentlength/><D:resourcetype/><I:repr-digest/>"
    "%s</D:prop></D:propfind>\n";

static apr_status_t propfind(sync_ctx_t *ctx, const char *rel, int is_dir,
                             const char *depth, int with_token,
                             sync_resp_t *resp, apr_pool_t *pool)
{
    sync_req_t req;
    const char *body = apr_psprintf(pool, propfind_body,
                                    with_token ? "<D:sync-token/>" : "");

    memset(&req, 0, sizeof(req));
    req.method = "PROPFIND";
    req.url = sync_dav_url(ctx, rel, is_dir, pool);
    req.body = body;
    req.body_len = strlen(body);
    req.max_body = LIST_MAX_BODY;
    sync_req_header(&req, pool, "Depth", depth);
    sync_req_header(&req, pool, "Content-Type",
                    "application/xml; charset=utf-8");
    return request(ctx, &req, resp, pool);
}

static void remote_from(sync_ctx_t *ctx, sync_remote_t *r, const member_t *m,
                        int is_dir)
{
    int found = 0;

    memset(r, 0, sizeof(*r));
    r->listed = 1;
    if (m->status == 404 || (!m->has_props && m->status >= 400)) {
        r->kind = SYNC_NONE;
        return;
    }
    r->kind = m->is_coll || is_dir ? SYNC_DIR : SYNC_FILE;
    r->etag = m->etag ? apr_pstrdup(ctx->pool, m->etag) : NULL;
    r->size = m->size;
    if (m->repr && r->kind == SYNC_FILE
        && iss_digest_parse(m->repr, r->sha, &found) == APR_SUCCESS
        && found) {
        r->has_sha = 1;
    }
}

/* A folder removed on the server: what was under it is gone too (as of
 * this point of the answer; members listed later override). */
static void remove_under(sync_ctx_t *ctx, const char *dir)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, ctx->items); hi; hi = apr_hash_next(hi)) {
        sync_item_t *it = apr_hash_this_val(hi);

        if (sync_path_under(it->path, dir)) {
            memset(&it->remote, 0, sizeof(it->remote));
            it->remote.listed = 1;
        }
    }
}

static apr_status_t apply(sync_ctx_t *ctx, const ms_t *ms, const char *walked,
                          apr_array_header_t *dirs, apr_pool_t *pool)
{
    int i;

    for (i = 0; i < ms->members->nelts; i++) {
        const member_t *m = &APR_ARRAY_IDX(ms->members, i, member_t);
        const char *rel, *why;
        int is_dir;
        sync_item_t *it;

        if (m->status == 507 || m->status == 403) {
            const char *r2;
            int d2;

            /* The request-URI's own 507 (more pages) is handled by the
             * caller; it must still name the collection. */
            if (sync_dav_href_rel(&ctx->server, m->href, &r2, &d2, &why,
                                  pool) != APR_SUCCESS || *r2) {
                sync_ui_error(ctx->ui, "the server answered with a status "
                              "%d for %s", m->status, m->href);
                return APR_EINVAL;
            }
            continue;
        }
        if (sync_dav_href_rel(&ctx->server, m->href, &rel, &is_dir, &why,
                              pool) != APR_SUCCESS) {
            sync_ui_error(ctx->ui, "refusing the server's answer: the href "
                          "\"%s\" cannot be right: %s", m->href, why);
            return APR_EINVAL;
        }
        if (*rel == '\0' || (walked && strcmp(rel, walked) == 0)) {
            continue;                   /* the collection asked about */
        }
        it = sync_item_get(ctx, rel);
        remote_from(ctx, &it->remote, m, is_dir);
        {
            const char *base = strrchr(rel, '/');

            base = base ? base + 1 : rel;
            if (strncmp(base, SYNC_TMP_PREFIX, sizeof(SYNC_TMP_PREFIX) - 1)
                == 0 && it->remote.kind != SYNC_NONE) {
                /* The client's own temporary names: never synced (here
                 * such a file would be taken for a dead run's leftover). */
                it->skip_reason = "its name is reserved for iss-sync's "
                                  "temporary files";
            }
        }
        if (it->remote.kind != SYNC_DIR
            && (is_dir || (it->has_base && it->base.kind == SYNC_DIR))) {
            /* A folder is gone, or is a file now: so are its members
             * (a change list names the folder alone). */
            remove_under(ctx, it->path);
        }
        if (it->remote.kind == SYNC_DIR && dirs) {
            APR_ARRAY_PUSH(dirs, const char *) = it->path;
        }
    }
    return APR_SUCCESS;
}

/* ---- discovery --------------------------------------------------------------------- */

static int parse_chunking(const char *v, iss_cdc_params_t *p)
{
    unsigned long min = 0, avg = 0, max = 0;

    if (v == NULL || strncmp(v, "fastcdc;", 8) != 0
        || sscanf(v + 8, "min=%lu;avg=%lu;max=%lu", &min, &avg, &max) != 3) {
        return 0;
    }
    p->min_size = (apr_uint32_t)min;
    p->avg_size = (apr_uint32_t)avg;
    p->max_size = (apr_uint32_t)max;
    return iss_cdc_params_check(p) == NULL;
}

apr_status_t sync_dav_discover(sync_ctx_t *ctx, int *exists, int *exit_code)
{
    apr_pool_t *pool = ctx->pool;
    sync_server_t *srv = &ctx->server;
    sync_resp_t resp;
    ms_t ms;
    const char *dav, *err;
    apr_status_t rv;
    int i;

    *exists = 0;
    rv = sync_dav_simple(ctx, "OPTIONS", "", 1, &resp, pool, NULL);
    if (rv != APR_SUCCESS || resp.status == 0) {
        sync_ui_error(ctx->ui, "cannot reach %s: %s", ctx->opts->url,
                      resp.error ? resp.error : "no answer");
        *exit_code = SYNC_EXIT_SERVER;
        return APR_EGENERAL;
    }
    if (resp.status == 401 || resp.status == 403) {
        sync_ui_error(ctx->ui, "%s refuses us: %s (credentials come from "
                      "ISS_SYNC_USER/ISS_SYNC_PASSWORD or ~/.netrc)",
                      ctx->opts->url, sync_resp_describe(&resp, pool));
        *exit_code = SYNC_EXIT_SERVER;
        return APR_EGENERAL;
    }
    dav = apr_table_get(resp.headers, "DAV");
    if (resp.status >= 300 || dav == NULL) {
        sync_ui_error(ctx->ui, "%s is not a WebDAV collection (OPTIONS: %s%s)",
                      ctx->opts->url, sync_resp_describe(&resp, pool),
                      dav ? "" : ", no DAV header");
        *exit_code = SYNC_EXIT_SERVER;
        return APR_EGENERAL;
    }
    srv->iss = strstr(dav, ISS_DAV_TOKEN) != NULL;
    srv->sync_collection = srv->iss;
    srv->chunking = srv->iss
                    && parse_chunking(apr_table_get(resp.headers,
                                                    "ISS-Chunking"),
                                      &srv->params);
    sync_ui_info(ctx->ui, "server: %s%s", srv->iss ? "mod_iss" : "plain WebDAV",
                 srv->chunking ? apr_psprintf(pool, ", chunks %u/%u/%u",
                                              srv->params.min_size,
                                              srv->params.avg_size,
                                              srv->params.max_size) : "");

    rv = propfind(ctx, "", 1, "0", 0, &resp, pool);
    if (rv != APR_SUCCESS || resp.status == 0) {
        sync_ui_error(ctx->ui, "cannot reach %s: %s", ctx->opts->url,
                      resp.error ? resp.error : "no answer");
        *exit_code = SYNC_EXIT_SERVER;
        return APR_EGENERAL;
    }
    if (resp.status == 404) {
        return APR_SUCCESS;
    }
    if (resp.status != 207) {
        sync_ui_error(ctx->ui, "PROPFIND %s: %s", ctx->opts->url,
                      sync_resp_describe(&resp, pool));
        *exit_code = SYNC_EXIT_SERVER;
        return APR_EGENERAL;
    }
    if (parse_multistatus(resp.body, resp.body_len, &ms, &err, pool)
        != APR_SUCCESS) {
        sync_ui_error(ctx->ui, "PROPFIND %s: %s", ctx->opts->url, err);
        *exit_code = SYNC_EXIT_SERVER;
        return APR_EGENERAL;
    }
    for (i = 0; i < ms.members->nelts; i++) {
        const member_t *m = &APR_ARRAY_IDX(ms.members, i, member_t);
        const char *rel, *why;
        int is_dir;

        if (sync_dav_href_rel(srv, m->href, &rel, &is_dir, &why, pool)
            == APR_SUCCESS && *rel == '\0' && m->has_props) {
            if (!m->is_coll) {
                sync_ui_error(ctx->ui, "%s is a file, not a collection",
                              ctx->opts->url);
                *exit_code = SYNC_EXIT_USAGE;
                return APR_EGENERAL;
            }
            *exists = 1;
        }
    }
    if (!*exists) {
        sync_ui_error(ctx->ui, "PROPFIND %s: the answer does not describe "
                      "the collection", ctx->opts->url);
        *exit_code = SYNC_EXIT_SERVER;
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

apr_status_t sync_dav_create_root(sync_ctx_t *ctx)
{
    sync_resp_t resp;
    apr_status_t rv = sync_dav_simple(ctx, "MKCOL", "", 1, &resp, ctx->pool,
                                      NULL);

    if (rv != APR_SUCCESS || resp.status != 201) {
        sync_ui_error(ctx->ui, "cannot create the collection %s: %s",
                      ctx->opts->url, sync_resp_describe(&resp, ctx->pool));
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* ---- listing ------------------------------------------------------------------------ */

static apr_status_t list_report(sync_ctx_t *ctx, const char *token,
                                int *token_refused)
{
    const char *tok = token ? token : "";
    int page;

    ctx->full_listing = *tok == '\0';
    for (page = 0; page < MAX_PAGES; page++) {
        apr_pool_t *pool;
        sync_req_t req;
        sync_resp_t resp;
        ms_t ms;
        const char *err, *body;
        apr_status_t rv;
        int i, more = 0;

        apr_pool_create(&pool, ctx->pool);
        body = apr_psprintf(pool,
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
            "<D:sync-collection xmlns:D=\"DAV:\" xmlns:I=\"" SYNC_ISS_NS "\">"
            "<D:sync-token>%s</D:sync-token>"
            "<D:sync-level>infinite</D:sync-level>"
            "<D:prop><D:getetag/><D:getcontentlength/><D:resourcetype/>"
            "<I:repr-digest/></D:prop></D:sync-collection>\n",
            apr_xml_quote_string(pool, tok, 0));
        memset(&req, 0, sizeof(req));
        req.method = "REPORT";
        req.url = ctx->opts->url;
        req.body = body;
        req.body_len = strlen(body);
        req.max_body = LIST_MAX_BODY;
        sync_req_header(&req, pool, "Depth", "0");
        sync_req_header(&req, pool, "Content-Type",
                        "application/xml; charset=utf-8");
        rv = request(ctx, &req, &resp, pool);
        if (rv != APR_SUCCESS || resp.status == 0) {
            sync_ui_error(ctx->ui, "REPORT %s: %s", ctx->opts->url,
                          resp.error ? resp.error : "no answer");
            apr_pool_destroy(pool);
            return APR_EGENERAL;
        }
        if (resp.status == 403
            && sync_dav_error_is(&resp, "DAV:", "valid-sync-token", pool)) {
            *token_refused = 1;
            apr_pool_destroy(pool);
            return APR_SUCCESS;
        }
        if (resp.status != 207) {
            sync_ui_error(ctx->ui, "REPORT %s: %s", ctx->opts->url,
                          sync_resp_describe(&resp, pool));
            apr_pool_destroy(pool);
            return APR_EGENERAL;
        }
        if (parse_multistatus(resp.body, resp.body_len, &ms, &err, pool)
            != APR_SUCCESS) {
            sync_ui_error(ctx->ui, "refusing the server's sync answer: %s",
                          err);
            apr_pool_destroy(pool);
            return APR_EINVAL;
        }
        if (ms.sync_token == NULL || *ms.sync_token == '\0') {
            sync_ui_error(ctx->ui, "refusing the server's sync answer: it "
                          "has no sync-token");
            apr_pool_destroy(pool);
            return APR_EINVAL;
        }
        for (i = 0; i < ms.members->nelts; i++) {
            if (APR_ARRAY_IDX(ms.members, i, member_t).status == 507) {
                more = 1;
            }
        }
        if ((rv = apply(ctx, &ms, NULL, NULL, pool)) != APR_SUCCESS) {
            apr_pool_destroy(pool);
            return rv;
        }
        if (more && strcmp(ms.sync_token, tok) == 0) {
            sync_ui_error(ctx->ui, "refusing the server's sync answer: a "
                          "page that does not move on");
            apr_pool_destroy(pool);
            return APR_EINVAL;
        }
        tok = apr_pstrdup(ctx->pool, ms.sync_token);
        apr_pool_destroy(pool);
        if (!more) {
            ctx->new_token = tok;
            return APR_SUCCESS;
        }
    }
    sync_ui_error(ctx->ui, "the server's sync answer has too many pages");
    return APR_EINVAL;
}

static apr_status_t list_walk(sync_ctx_t *ctx)
{
    apr_array_header_t *dirs = apr_array_make(ctx->pool, 64,
                                              sizeof(const char *));
    int next = 0;

    ctx->full_listing = 1;
    ctx->new_token = NULL;
    APR_ARRAY_PUSH(dirs, const char *) = "";
    while (next < dirs->nelts) {
        const char *dir = APR_ARRAY_IDX(dirs, next, const char *);
        apr_pool_t *pool;
        sync_resp_t resp;
        ms_t ms;
        const char *err;
        apr_status_t rv;
        int before = dirs->nelts, i;

        next++;
        apr_pool_create(&pool, ctx->pool);
        rv = propfind(ctx, dir, 1, "1", 0, &resp, pool);
        if (rv != APR_SUCCESS || resp.status != 207) {
            sync_ui_error(ctx->ui, "PROPFIND %s: %s",
                          sync_dav_url(ctx, dir, 1, pool),
                          sync_resp_describe(&resp, pool));
            apr_pool_destroy(pool);
            return APR_EGENERAL;
        }
        if (parse_multistatus(resp.body, resp.body_len, &ms, &err, pool)
            != APR_SUCCESS) {
            sync_ui_error(ctx->ui, "refusing the server's listing of %s: %s",
                          sync_dav_url(ctx, dir, 1, pool), err);
            apr_pool_destroy(pool);
            return APR_EINVAL;
        }
        /* Members must be direct children of the folder asked about. */
        for (i = 0; i < ms.members->nelts; i++) {
            const member_t *m = &APR_ARRAY_IDX(ms.members, i, member_t);
            const char *rel, *why, *parent;
            int is_dir;

            if (sync_dav_href_rel(&ctx->server, m->href, &rel, &is_dir, &why,
                                  pool) != APR_SUCCESS) {
                sync_ui_error(ctx->ui, "refusing the server's answer: the "
                              "href \"%s\" cannot be right: %s", m->href, why);
                apr_pool_destroy(pool);
                return APR_EINVAL;
            }
            if (strcmp(rel, dir) == 0) {
                continue;
            }
            parent = sync_path_parent(rel, pool);
            if (strcmp(parent, dir) != 0) {
                sync_ui_error(ctx->ui, "refusing the server's answer: \"%s\" "
                              "is not a member of \"%s\"", m->href,
                              sync_dav_url(ctx, dir, 1, pool));
                apr_pool_destroy(pool);
                return APR_EINVAL;
            }
        }
        rv = apply(ctx, &ms, dir, dirs, pool);
        /* Keep the folder names beyond this pool. */
        for (i = before; i < dirs->nelts; i++) {
            APR_ARRAY_IDX(dirs, i, const char *) =
                apr_pstrdup(ctx->pool, APR_ARRAY_IDX(dirs, i, const char *));
        }
        apr_pool_destroy(pool);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

apr_status_t sync_dav_list(sync_ctx_t *ctx, const char *token,
                           int *token_refused)
{
    *token_refused = 0;
    if (ctx->server.sync_collection) {
        return list_report(ctx, token, token_refused);
    }
    return list_walk(ctx);
}

apr_status_t sync_dav_stat(sync_ctx_t *ctx, const char *rel,
                           sync_remote_t *out, apr_pool_t *pool)
{
    sync_resp_t resp;
    ms_t ms;
    const char *err;
    apr_status_t rv = propfind(ctx, rel, 0, "0", 0, &resp, pool);
    int i;

    memset(out, 0, sizeof(*out));
    out->listed = 1;
    if (rv != APR_SUCCESS || resp.status == 0) {
        return APR_EGENERAL;
    }
    if (resp.status == 404) {
        return APR_SUCCESS;
    }
    if (resp.status != 207
        || parse_multistatus(resp.body, resp.body_len, &ms, &err, pool)
           != APR_SUCCESS) {
        return APR_EGENERAL;
    }
    for (i = 0; i < ms.members->nelts; i++) {
        const member_t *m = &APR_ARRAY_IDX(ms.members, i, member_t);
        const char *r, *why;
        int is_dir;

        if (sync_dav_href_rel(&ctx->server, m->href, &r, &is_dir, &why, pool)
            == APR_SUCCESS && strcmp(r, rel) == 0) {
            remote_from(ctx, out, m, is_dir);
            return APR_SUCCESS;
        }
    }
    return APR_EGENERAL;
}

apr_status_t sync_dav_dir_info(sync_ctx_t *ctx, const char *rel,
                               int *members, const char **etag,
                               const char **token, apr_pool_t *pool)
{
    sync_resp_t resp;
    ms_t ms;
    const char *err;
    apr_status_t rv = propfind(ctx, rel, 1, "1", ctx->server.iss, &resp,
                               pool);
    int i;

    *members = 0;
    *etag = *token = NULL;
    if (rv != APR_SUCCESS || resp.status != 207
        || parse_multistatus(resp.body, resp.body_len, &ms, &err, pool)
           != APR_SUCCESS) {
        return resp.status == 404 ? APR_NOTFOUND : APR_EGENERAL;
    }
    for (i = 0; i < ms.members->nelts; i++) {
        const member_t *m = &APR_ARRAY_IDX(ms.members, i, member_t);
        const char *r, *why;
        int is_dir;

        if (sync_dav_href_rel(&ctx->server, m->href, &r, &is_dir, &why, pool)
            != APR_SUCCESS) {
            return APR_EINVAL;
        }
        if (strcmp(r, rel) == 0) {
            *etag = m->etag;
            *token = m->token;
        }
        else {
            (*members)++;
        }
    }
    return APR_SUCCESS;
}
