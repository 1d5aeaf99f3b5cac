/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * mod_iss_provider — the mod_dav provider `iss`.
 *
 * A copy of mod_dav_fs's "filesystem" provider in which only
 * get_resource is replaced.  Resources stay exactly as mod_dav_fs makes
 * them (its hook table, its private info), so files, .DAV property
 * databases and the DavLockDB are shared with `Dav On`.  The replacement
 * only notes the resource mod_dav resolves for a COPY/MOVE Destination
 * (in a sub-request) on the main request's state, where the capture
 * point finds it; mod_iss keeps such per-request state in
 * r->request_config (iss_provider_request()).
 */
#ifndef MOD_ISS_PROVIDER_H
#define MOD_ISS_PROVIDER_H

#include "mod_iss.h"
#include "iss_store.h"
#include "iss_sync_log.h"

/** Per-request state (r->request_config). */
typedef struct iss_request_t {
    request_rec *dest_r;             /* COPY/MOVE: the Destination lookup */
    const dav_resource *dest_resource;
    iss_store_t *store;              /* mod_iss_state, once opened */
    const iss_sync_key_t *token_key; /* mod_iss_state, once read */
    const char *root_uri;            /* mod_iss_state: the location's root */
    const char *root_fs;             /* ... and its directory (or NULL) */
    const char *sync_token;          /* mod_iss_sync_prop, once computed */
    apr_hash_t *digests;             /* mod_iss_digest: URI -> known digest */
    const struct iss_digest_body_t *put_body; /* PUT: the body's digest */
    const struct iss_filedigest_t *written;   /* PATCH: what it renamed
                                               * into place at r->uri */
    const struct iss_manifest_t *written_manifest; /* ... its manifest */
    struct capture_t *capture;       /* mod_iss_capture, once begun */
    int etag_injected;               /* mod_iss_etag set headers_out ETag */
    int etag_unreadable;             /* ... a random one: the client may
                                      * not read the file */
    const char *unreadable_etag;     /* iss_digest_condition_etag()'s */
    int etag_filter;                 /* ... and added its output filter */
    apr_hash_t *folders;             /* mod_iss_digest: folder -> records */
    int body_filter;                 /* mod_iss_digest reads the PUT body */
    struct keep_t *keep;             /* mod_iss_digest: records to commit
                                      * when the request ends */
} iss_request_t;

/** The request that made @a resource, if our provider made it (live
 *  property hooks get a resource and no request). */
request_rec *iss_provider_resource_request(const dav_resource *resource);

/** Register provider `iss` (register_hooks: before config is read). */
void iss_provider_register(apr_pool_t *p);

/** Fill the provider from mod_dav_fs's (pre_config, after every
 *  LoadModule).  Returns an error text if mod_dav_fs is missing. */
const char *iss_provider_init(void);

/** The request's state, created on first use (never NULL). */
iss_request_t *iss_provider_request(request_rec *r);

/** What mod_dav_fs found when it made @a resource (the stat of its walk
 *  or lookup), if @a resource is mod_dav_fs's and names the file @a path;
 *  else NULL.  Spares a second stat per member of a PROPFIND. */
const apr_finfo_t *iss_provider_fs_finfo(const dav_resource *resource,
                                         const char *path);

#endif /* MOD_ISS_PROVIDER_H */
