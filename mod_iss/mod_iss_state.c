/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "mod_iss_state.h"
#include "mod_iss_config.h"
#include "mod_iss_provider.h"
#include "iss_davfs.h"

#include <apr_strings.h>
#include <http_request.h>
#include <util_mutex.h>

/* The `iss-state` mutex type stays registered so that configurations
 * naming it in httpd's Mutex directive still load; the state stores no
 * longer use a global mutex (each store locks its own files). */
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
    return OK;
}

/* The stores this process has opened, by state directory: every request
 * of every thread uses the same handle (it keeps the overlay of the
 * write-ahead log and the open lock files), opened by the first request
 * that needs it and kept until the process ends. */
static struct {
    apr_pool_t *pool;
#if APR_HAS_THREADS
    apr_thread_mutex_t *mutex;
#endif
    apr_hash_t *stores;             /* state dir -> entry_t */
    server_rec *server;
    volatile int exiting;           /* the child pool is going */
} registry;

typedef struct entry_t {
    iss_store_t *store;
    iss_sync_key_t key;             /* its tokens' key, once key_ok */
    apr_finfo_t key_ident;          /* the file it was read from */
    int key_ok;
} entry_t;

/* A pre-cleanup of the child pool: it runs before any of its sub-pools
 * goes, the registry's (with the store handles, destroyed first: it was
 * made last) and the connections' and requests' alike. */
static apr_status_t registry_exiting(void *data)
{
    registry.exiting = 1;
    return APR_SUCCESS;
}

int iss_state_exiting(void)
{
    return registry.exiting;
}

void iss_state_child_init(apr_pool_t *p, server_rec *s)
{
    registry.exiting = 0;
    apr_pool_pre_cleanup_register(p, NULL, registry_exiting);
    if (apr_pool_create(&registry.pool, p) != APR_SUCCESS) {
        registry.pool = NULL;
        return;
    }
#if APR_HAS_THREADS
    if (apr_thread_mutex_create(&registry.mutex, APR_THREAD_MUTEX_DEFAULT,
                                registry.pool) != APR_SUCCESS) {
        registry.pool = NULL;
        return;
    }
#endif
    registry.stores = apr_hash_make(registry.pool);
    registry.server = s;
}

static void log_store(void *baton, int level, apr_status_t rv,
                      const char *msg)
{
    server_rec *s = baton;

    ap_log_error(APLOG_MARK, level, rv, s, ISSLOGNO(01022) "state store: %s",
                 msg);
}

/* Open the store of @a dconf for the whole process, or find it open. */
static apr_status_t shared_store(request_rec *r, iss_dir_conf_t *dconf,
                                 iss_store_t **store)
{
    apr_status_t rv = APR_SUCCESS;
    iss_store_t *s = NULL;
    entry_t *e;
    int replaced;

#if APR_HAS_THREADS
    apr_thread_mutex_lock(registry.mutex);
#endif
    e = apr_hash_get(registry.stores, dconf->state_dir, APR_HASH_KEY_STRING);
    if (e != NULL) {
        /* Whether the state was moved aside or rewritten (one stat()),
         * asked without the registry's mutex, which every request of
         * the process takes: an entry is never freed, only dropped from
         * the registry (below). */
#if APR_HAS_THREADS
        apr_thread_mutex_unlock(registry.mutex);
#endif
        replaced = iss_store_replaced(e->store);
        if (!replaced) {
            *store = e->store;
            return APR_SUCCESS;
        }
#if APR_HAS_THREADS
        apr_thread_mutex_lock(registry.mutex);
#endif
        if (apr_hash_get(registry.stores, dconf->state_dir,
                         APR_HASH_KEY_STRING) == e) {
            /* Open it again.  The old handle may still serve requests in
             * flight; it is not freed (this happens when an administrator
             * steps in, not in normal use). */
            apr_hash_set(registry.stores, dconf->state_dir,
                         APR_HASH_KEY_STRING, NULL);
        }
        /* Reopened by another thread meanwhile, or to be opened here. */
        e = apr_hash_get(registry.stores, dconf->state_dir,
                         APR_HASH_KEY_STRING);
    }
    if (e != NULL) {
        s = e->store;
    }
    else {
        apr_pool_t *p;

        apr_pool_create(&p, registry.pool);
        rv = iss_store_open(&s, dconf->state_dir, iss_config_dbm_type(dconf),
                            NULL, log_store, registry.server, p);
        if (rv == APR_SUCCESS) {
            iss_store_set_sync(s, iss_config_state_sync(dconf)
                                   != ISS_STATE_SYNC_OFF);
            e = apr_palloc(registry.pool, sizeof(*e));
            e->store = s;
            e->key_ok = 0;
            apr_hash_set(registry.stores, apr_pstrdup(registry.pool,
                                                      dconf->state_dir),
                         APR_HASH_KEY_STRING, e);
        }
        else {
            /* Keep the reason for the caller, then let it go: the next
             * request tries again. */
            const char *why = apr_pstrdup(r->pool, iss_store_last_error(s));

            apr_pool_destroy(p);
            apr_table_setn(r->notes, "iss-store-error", why);
        }
    }
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(registry.mutex);
#endif
    *store = s;
    return rv;
}

dav_error *iss_state_store(request_rec *r, iss_store_t **store)
{
    iss_request_t *req = iss_provider_request(r);
    iss_dir_conf_t *dconf = iss_config_dir(r);
    const char *why;
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
    if (registry.pool) {
        rv = shared_store(r, dconf, &req->store);
        why = rv == APR_SUCCESS ? NULL
                                : apr_table_get(r->notes, "iss-store-error");
    }
    else {
        /* No child_init (a tool embedding the module): one per request. */
        rv = iss_store_open(&req->store, dconf->state_dir,
                            iss_config_dbm_type(dconf), NULL, log_store,
                            r->server, r->pool);
        why = req->store ? iss_store_last_error(req->store) : "";
        if (rv == APR_SUCCESS)
            iss_store_set_sync(req->store, iss_config_state_sync(dconf)
                                               != ISS_STATE_SYNC_OFF);
    }
    if (rv == ISS_STORE_EDAMAGED) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01024)
                      "the mod_iss state in %s is damaged: %s. Writes to "
                      "this location are refused (reads go on) until an "
                      "administrator repairs or moves it aside; see "
                      "docs/admin-guide.md, 'Damaged state'",
                      dconf->state_dir, why ? why : "");
        req->store = NULL;
        return dav_new_error(r->pool, HTTP_SERVICE_UNAVAILABLE, 0, 0,
                             "The synchronisation state of this location is "
                             "damaged; writes are refused until an "
                             "administrator repairs it.");
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01025)
                      "cannot open the mod_iss state in %s: %s",
                      dconf->state_dir, why ? why : "");
        req->store = NULL;
        return dav_new_error(r->pool, HTTP_INTERNAL_SERVER_ERROR, 0, rv,
                             "The synchronisation state of this location "
                             "cannot be opened.");
    }
    *store = req->store;
    return NULL;
}

/* Read (or make) the key of @a dir into @a key, and say so in the log. */
static dav_error *load_key(request_rec *r, const char *dir,
                           iss_sync_key_t *key, apr_finfo_t *ident)
{
    const char *why = NULL;
    apr_status_t rv;
    int made = 0;

    rv = iss_sync_key_load(key, dir, 1, &made, ident, &why, r->pool);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01162)
                      "the key of the sync tokens of %s cannot be read or "
                      "made: %s; sync tokens of this location are refused "
                      "until it can", dir, why ? why : "");
        return dav_new_error(r->pool, HTTP_INTERNAL_SERVER_ERROR, 0, rv,
                             "The sync tokens of this location cannot be "
                             "made or checked.");
    }
    if (made == 1) {
        ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, ISSLOGNO(01160)
                      "made a new key for the sync tokens of %s "
                      "(" ISS_SYNC_KEY_FILE "): tokens handed out before, if "
                      "any, are refused and their clients sync afresh", dir);
    }
    else if (made == 2) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, ISSLOGNO(01161)
                      "%s; replaced it with a new key: the sync tokens "
                      "handed out before are refused and their clients sync "
                      "afresh", why ? why : dir);
    }
    return NULL;
}

dav_error *iss_state_token_key(request_rec *r, const iss_sync_key_t **key)
{
    iss_request_t *req = iss_provider_request(r);
    iss_dir_conf_t *dconf = iss_config_dir(r);
    iss_store_t *store;
    iss_sync_key_t *k;
    dav_error *err = NULL;
    entry_t *e = NULL;

    if (req->token_key) {
        *key = req->token_key;
        return NULL;
    }
    /* The store first: the key goes with its handle. */
    if ((err = iss_state_store(r, &store)) != NULL) {
        return err;
    }
    k = apr_palloc(r->pool, sizeof(*k));
    if (registry.pool) {
#if APR_HAS_THREADS
        apr_thread_mutex_lock(registry.mutex);
#endif
        e = apr_hash_get(registry.stores, dconf->state_dir,
                         APR_HASH_KEY_STRING);
        if (e != NULL && e->store == store) {
            /* One stat: a key file replaced or removed behind this
             * process (an admin, or a damaged one made anew by another
             * process) is read again, so that every process of the
             * server uses the key of the file. */
            if (e->key_ok && iss_sync_key_changed(dconf->state_dir,
                                                  &e->key_ident, r->pool)) {
                e->key_ok = 0;
            }
            if (!e->key_ok && (err = load_key(r, dconf->state_dir, &e->key,
                                              &e->key_ident)) == NULL) {
                e->key_ok = 1;
            }
            *k = e->key;
        }
        else {
            e = NULL;
        }
#if APR_HAS_THREADS
        apr_thread_mutex_unlock(registry.mutex);
#endif
    }
    if (e == NULL && err == NULL) {
        /* No registry (or the store was just replaced): per request. */
        apr_finfo_t ident;

        err = load_key(r, dconf->state_dir, k, &ident);
    }
    if (err != NULL) {
        return err;
    }
    *key = req->token_key = k;
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

int iss_state_may(request_rec *r, const char *method, const char *uri)
{
    request_rec parent = *r, *sub;
    int ok;

    /* As iss_chunk_may_read(): a parent whose configuration is the
     * server's makes httpd ask every access module (authentication
     * included) for this sub-request. */
    parent.per_dir_config = r->server->lookup_defaults;
    sub = ap_sub_req_method_uri(method, ap_escape_uri(r->pool, uri), &parent,
                                NULL);
    ok = sub->status == HTTP_OK && iss_is_enabled(sub)
         && iss_state_same_location(sub, r);
    ap_log_rerror(APLOG_MARK, APLOG_TRACE2, 0, r, "may %s %s %s? %s (%d)",
                  r->user ? r->user : "(anonymous)", method, uri,
                  ok ? "yes" : "no", sub->status);
    ap_destroy_sub_req(sub);
    return ok;
}

int iss_state_same_location(request_rec *a, request_rec *b)
{
    const char *da = iss_config_dir(a)->state_dir;
    const char *db = iss_config_dir(b)->state_dir;

    return da && db && strcmp(da, db) == 0;
}
