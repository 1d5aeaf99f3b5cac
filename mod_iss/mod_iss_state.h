/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * mod_iss_state — the state store of each `Dav iss` location.
 *
 * Each process opens a location's store once and shares the handle among
 * its threads (a registry made in child_init); the store serialises
 * writers with file locks of its own, one set per store.  The Mutex type
 * `iss-state` stays registered (configurations that name it still load)
 * but is no longer used.
 */
#ifndef MOD_ISS_STATE_H
#define MOD_ISS_STATE_H

#include "mod_iss.h"
#include "iss_scan.h"
#include "iss_store.h"
#include "iss_sync_log.h"

#define ISS_STATE_MUTEX_TYPE "iss-state"

int iss_state_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                         apr_pool_t *ptemp);
int iss_state_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s);
void iss_state_child_init(apr_pool_t *p, server_rec *s);

/** Whether this process is exiting: its stores are closed or about to
 *  be.  Pool cleanups of requests still in flight (prefork destroys its
 *  child pool from the signal handler, in the middle of a request) must
 *  not use a store then; what they would have recorded is recovered as
 *  after a kill -9. */
int iss_state_exiting(void);

/** The store of @a r's location.  On failure a dav_error whose status
 *  says what the client gets: 503 when the state is damaged (writes are
 *  refused, reads go on), 500 for anything else. */
dav_error *iss_state_store(request_rec *r, iss_store_t **store);

/** The key of the sync tokens of @a r's location (iss_sync_key_t), read
 *  once per process and store handle from <ISSStateDir>/iss-token.key,
 *  which is made the first time it is needed (ISS01160) and made anew
 *  when damaged (ISS01161: the tokens handed out before are then
 *  refused, and clients sync afresh).  On failure (ISS01162) a 500
 *  dav_error. */
dav_error *iss_state_token_key(request_rec *r, const iss_sync_key_t **key);

/** The decoded URI path of the root of @a r's location, without a
 *  trailing slash ("" when the location is the server's root). */
const char *iss_state_root_uri(request_rec *r);

/** The directory of that root, or NULL when httpd maps it in a way
 *  mod_iss cannot follow (then no stat index is kept). */
const char *iss_state_root_fs(request_rec *r);

/** @a uri (a decoded URI path) relative to the root of @a r's location:
 *  no leading or trailing slash, "" for the root; NULL if outside. */
const char *iss_state_rel_path(request_rec *r, const char *uri);

/** The ignore rule of the tree behind @a r's location: the names its
 *  provider keeps there besides the members, left out of every scan and
 *  listing.  `Dav iss` serves through mod_dav_fs, so this is
 *  iss_davfs_ignore for every location. */
const iss_scan_ignore_t *iss_state_ignore(request_rec *r);

/** Whether the client of @a r may @a method the (decoded) URI path
 *  @a uri: a sub-request that httpd authorises in full, for @a method
 *  and this user, even where the path shares @a r's section (httpd
 *  would skip access control there, and <Limit> or an expression may
 *  answer differently for another method); also in this location (same
 *  store).  A folder must be asked with its trailing slash (without it,
 *  mod_dir answers a redirect: no). */
int iss_state_may(request_rec *r, const char *method, const char *uri);

/** Whether two requests use the same state store. */
int iss_state_same_location(request_rec *a, request_rec *b);

#endif /* MOD_ISS_STATE_H */
