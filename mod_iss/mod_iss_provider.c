/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "mod_iss_provider.h"

#include <http_request.h>

/* mod_dav caches the address of the provider named by `Dav iss` while it
 * reads the config, so the provider must exist (registered) before that
 * and be filled in (from mod_dav_fs, whatever the LoadModule order)
 * before the first request.  Both tables are written once per config
 * load, before any child exists, and only read afterwards. */
static dav_hooks_repository repos_hooks;
static dav_provider provider;
static const dav_hooks_repository *fs_repos;    /* mod_dav_fs's own table */

/* The leading fields of mod_dav_fs's private resource info, the same in
 * every httpd 2.2 and 2.4 release (modules/dav/fs/repos.c; later ones
 * append a field).  Read only for resources made by mod_dav_fs, and only
 * after checking the path they name. */
typedef struct fs_info_head {
    apr_pool_t *pool;
    const char *pathname;
    apr_finfo_t finfo;
} fs_info_head;
static dav_error *(*fs_get_resource)(request_rec *, const char *,
                                     const char *, int, dav_resource **);

iss_request_t *iss_provider_request(request_rec *r)
{
    iss_request_t *req = ap_get_module_config(r->request_config, &iss_module);

    if (req == NULL) {
        req = apr_pcalloc(r->pool, sizeof(*req));
        ap_set_module_config(r->request_config, &iss_module, req);
    }
    return req;
}

#define RESOURCE_REQUEST_KEY "mod_iss:request"

request_rec *iss_provider_resource_request(const dav_resource *resource)
{
    void *r = NULL;

    if (resource && resource->pool) {
        apr_pool_userdata_get(&r, RESOURCE_REQUEST_KEY, resource->pool);
    }
    return r;
}

static dav_error *get_resource(request_rec *r, const char *root_dir,
                               const char *label, int use_checked_in,
                               dav_resource **result)
{
    dav_error *err = fs_get_resource(r, root_dir, label, use_checked_in,
                                     result);

    if (err == NULL) {
        /* Resources of this request and those its walks make live in
         * r->pool: let our live property hooks find the request. */
        apr_pool_userdata_setn(r, RESOURCE_REQUEST_KEY, NULL, r->pool);
    }
    if (err == NULL && r->main != NULL) {
        /* mod_dav resolves a COPY/MOVE Destination in a sub-request;
         * the capture point, which runs on the main request, needs it. */
        iss_request_t *req = iss_provider_request(r->main);

        req->dest_r = r;
        req->dest_resource = *result;
    }
    return err;
}

void iss_provider_register(apr_pool_t *p)
{
    dav_register_provider(p, ISS_PROVIDER_NAME, &provider);
}

const char *iss_provider_init(void)
{
    const dav_provider *fs = dav_lookup_provider("filesystem");

    if (fs == NULL || fs->repos == NULL) {
        return "mod_iss builds on mod_dav_fs, which is not loaded: add "
               "`LoadModule dav_fs_module .../mod_dav_fs.so` (Debian: "
               "a2enmod dav_fs)";
    }
    repos_hooks = *fs->repos;
    fs_repos = fs->repos;
    fs_get_resource = fs->repos->get_resource;
    repos_hooks.get_resource = get_resource;
    provider = *fs;
    provider.repos = &repos_hooks;
    return NULL;
}

const apr_finfo_t *iss_provider_fs_finfo(const dav_resource *resource,
                                         const char *path)
{
    const fs_info_head *info;

    if (resource == NULL || resource->hooks != fs_repos || fs_repos == NULL
        || resource->info == NULL || !resource->exists) {
        return NULL;
    }
    info = (const fs_info_head *)resource->info;
    if (info->pathname == NULL || strcmp(info->pathname, path) != 0) {
        return NULL;
    }
    if ((info->finfo.valid & (APR_FINFO_TYPE | APR_FINFO_INODE
                              | APR_FINFO_SIZE | APR_FINFO_MTIME))
        != (APR_FINFO_TYPE | APR_FINFO_INODE | APR_FINFO_SIZE
            | APR_FINFO_MTIME)) {
        return NULL;
    }
    return &info->finfo;
}

int iss_is_enabled(request_rec *r)
{
    const char *name = dav_get_provider_name(r);

    return name != NULL && strcmp(name, ISS_PROVIDER_NAME) == 0;
}
