/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "mod_iss_state.h"
#include "mod_iss_config.h"
#include "mod_iss_provider.h"
#include "iss_davfs.h"

#include <apr_strings.h>
#include <util_mutex.h>

int iss_state_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                         apr_pool_t *ptemp)
{
    return ap_mutex_register(pconf, ISS_STATE_MUTEX_TYPE, NULL,
                             APR_LOCK_DEFAULT, 0) == APR_SUCCESS
               ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

int iss_state_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s)
{
    apr_global_mutex_t *mutex;
    apr_status_t rv;
    server_rec *vs;

    rv = ap_global_mutex_create(&mutex, NULL, ISS_STATE_MUTEX_TYPE, NULL,
                                s, pconf, 0);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, ISSLOGNO(01020)
                     "cannot create the mod_iss state mutex");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (vs = s; vs; vs = vs->next) {
        iss_config_server(vs)->mutex = mutex;
    }
    return OK;
}

void iss_state_child_init(apr_pool_t *p, server_rec *s)
{
    iss_server_conf_t *sconf = iss_config_server(s);
    apr_global_mutex_t *mutex = sconf->mutex;
    apr_status_t rv;
    server_rec *vs;

    if (mutex == NULL) {
        return;
    }
    rv = apr_global_mutex_child_init(&mutex,
                                     apr_global_mutex_lockfile(mutex), p);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, ISSLOGNO(01021)
                     "cannot reopen the mod_iss state mutex in a child; "
                     "writes to Dav iss locations will fail");
        mutex = NULL;
    }
    for (vs = s; vs; vs = vs->next) {
        iss_config_server(vs)->mutex = mutex;
    }
}

static void log_store(void *baton, int level, apr_status_t rv,
                      const char *msg)
{
    request_rec *r = baton;

    ap_log_rerror(APLOG_MARK, level, rv, r, ISSLOGNO(01022) "state store: %s",
                  msg);
}

dav_error *iss_state_store(request_rec *r, iss_store_t **store)
{
    iss_request_t *req = iss_provider_request(r);
    iss_dir_conf_t *dconf = iss_config_dir(r);
    iss_server_conf_t *sconf = iss_config_server(r->server);
    apr_status_t rv;

    if (req->store) {
        *store = req->store;
        return NULL;
    }
    if (dconf->state_dir == NULL) {
        /* iss_config_check() refuses to start without one; this is a
         * section it could not see (e.g. set up by another module). */
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ISSLOGNO(01023)
                      "Dav iss at %s has no ISSStateDir", r->uri);
        return dav_new_error(r->pool, HTTP_INTERNAL_SERVER_ERROR, 0, 0,
                             "mod_iss is not configured for this location "
                             "(no ISSStateDir)");
    }
    if (sconf->mutex == NULL) {
        return dav_new_error(r->pool, HTTP_INTERNAL_SERVER_ERROR, 0, 0,
                             "mod_iss state mutex unavailable");
    }
    rv = iss_store_open(&req->store, dconf->state_dir,
                        iss_config_dbm_type(dconf), sconf->mutex, log_store,
                        r, r->pool);
    if (rv == ISS_STORE_EDAMAGED) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01024)
                      "the mod_iss state in %s is damaged: %s. Writes to "
                      "this location are refused (reads go on) until an "
                      "administrator repairs or moves it aside; see "
                      "docs/admin-guide.md, 'Damaged state'",
                      dconf->state_dir,
                      req->store ? iss_store_last_error(req->store) : "");
        req->store = NULL;
        return dav_new_error(r->pool, HTTP_SERVICE_UNAVAILABLE, 0, 0,
                             "The synchronisation state of this location is "
                             "damaged; writes are refused until an "
                             "administrator repairs it.");
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01025)
                      "cannot open the mod_iss state in %s: %s",
                      dconf->state_dir,
                      req->store ? iss_store_last_error(req->store) : "");
        req->store = NULL;
        return dav_new_error(r->pool, HTTP_INTERNAL_SERVER_ERROR, 0, rv,
                             "The synchronisation state of this location "
                             "cannot be opened.");
    }
    iss_store_set_sync(req->store, iss_config_state_sync(dconf));
    *store = req->store;
    return NULL;
}

/* @a s without trailing slashes (a lone "/" becomes ""). */
static const char *strip_slashes(const char *s, apr_pool_t *p)
{
    apr_size_t n = strlen(s);

    while (n > 0 && s[n - 1] == '/') {
        n--;
    }
    return apr_pstrmemdup(p, s, n);
}

/* @a whole minus the suffix "/"@a rel (or itself when rel is ""); NULL
 * if @a whole does not end that way. */
static const char *minus_tail(const char *whole, const char *rel,
                              apr_pool_t *p)
{
    apr_size_t w = strlen(whole), n = strlen(rel);

    if (n == 0) {
        return whole;
    }
    if (w < n + 1 || whole[w - n - 1] != '/'
        || strcmp(whole + w - n, rel) != 0) {
        return NULL;
    }
    return apr_pstrmemdup(p, whole, w - n - 1);
}

/* @a path below @a root ("" for root itself), or NULL. */
static const char *below(const char *root, const char *path)
{
    apr_size_t n = strlen(root);

    if (strncmp(path, root, n) != 0 || (path[n] && path[n] != '/')) {
        return NULL;
    }
    return path[n] ? path + n + 1 : "";
}

/* Work out the location's root in URI and file space from @a r itself:
 * the section names one of them, r->uri and r->filename share the rest. */
static void find_root(request_rec *r)
{
    iss_request_t *req = iss_provider_request(r);
    iss_dir_conf_t *dconf = iss_config_dir(r);
    const char *uri, *fn = NULL, *rel;

    if (req->root_uri) {
        return;
    }
    uri = strip_slashes(r->uri, r->pool);
    if (r->filename) {
        fn = strip_slashes(apr_pstrcat(r->pool, r->filename,
                                       r->path_info, NULL), r->pool);
    }
    if (dconf->section == NULL) {
        req->root_uri = "";
        return;
    }
    if (!dconf->root_is_fs) {
        req->root_uri = strip_slashes(dconf->section, r->pool);
        rel = below(req->root_uri, uri);
        req->root_fs = (rel && fn) ? minus_tail(fn, rel, r->pool) : NULL;
    }
    else {
        req->root_fs = strip_slashes(dconf->section, r->pool);
        rel = fn ? below(req->root_fs, fn) : NULL;
        req->root_uri = rel ? minus_tail(uri, rel, r->pool) : NULL;
        if (req->root_uri == NULL) {
            req->root_uri = "";
            req->root_fs = NULL;
        }
    }
}

const char *iss_state_root_uri(request_rec *r)
{
    find_root(r);
    return iss_provider_request(r)->root_uri;
}

const char *iss_state_root_fs(request_rec *r)
{
    find_root(r);
    return iss_provider_request(r)->root_fs;
}

const char *iss_state_rel_path(request_rec *r, const char *uri)
{
    const char *rel = below(iss_state_root_uri(r), uri);

    return rel ? strip_slashes(rel, r->pool) : NULL;
}

const iss_scan_ignore_t *iss_state_ignore(request_rec *r)
{
    (void)r;                      /* the provider is always mod_dav_fs's */
    return &iss_davfs_ignore;
}

int iss_state_same_location(request_rec *a, request_rec *b)
{
    const char *da = iss_config_dir(a)->state_dir;
    const char *db = iss_config_dir(b)->state_dir;

    return da && db && strcmp(da, db) == 0;
}
