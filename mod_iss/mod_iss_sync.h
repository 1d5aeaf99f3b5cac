/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * mod_iss_sync — RFC 6578 sync-collection for `Dav iss` locations.
 *
 *  - mod_iss_sync.c: the REPORT (deliver_report hook);
 *  - mod_iss_sync_prop.c: the DAV:sync-token live property;
 *  - mod_iss_sync_if.c: sync tokens in the If header (RFC 6578 section 5).
 *
 * The change log itself is libiss/server/iss_sync_log; the capture point
 * (mod_iss_capture) writes it.
 */
#ifndef MOD_ISS_SYNC_H
#define MOD_ISS_SYNC_H

#include "mod_iss.h"
#include "iss_store.h"

#include <apr_hash.h>

#define ISS_SYNC_REPORT "sync-collection"

void iss_sync_register_hooks(apr_pool_t *p);
void iss_sync_prop_register_hooks(apr_pool_t *p);
void iss_sync_if_register_hooks(apr_pool_t *p);

/** The current token of the collection @a rel (a path relative to the
 *  location root) of @a r's store, after turning the intents of dead
 *  writers into log entries. */
dav_error *iss_sync_current_token(request_rec *r, const char **token);

/** Whether @a token is one of ours that is still current for collection
 *  @a rel: same store, not expired, nothing that the client of @a r may
 *  see changed under @a rel since (changes to members it may not see do
 *  not count).
 *  Returns 1 / 0, or -1 when it is not a token of ours. */
int iss_sync_token_current(request_rec *r, const char *rel,
                           const char *token);

/** Whether the client of @a r may see the member @a rel (relative to the
 *  location root; @a collection: a folder): a PROPFIND of it would be
 *  authorised (iss_state_may(): a sub-request authorised in full).  @a cache (may be NULL) keeps the answers of one
 *  request.  What a sync answer, a paging token or a sync token in an If
 *  header reveals is decided by this alone (docs/design.md 3a). */
int iss_sync_visible(request_rec *r, apr_hash_t *cache, const char *rel,
                     int collection);

/** Run a reconciliation scan now if ISSReconcileInterval says one is
 *  due (any request may call it; it is cheap when none is due). */
apr_status_t iss_sync_reconcile_if_due(request_rec *r, iss_store_t *store);

#endif /* MOD_ISS_SYNC_H */
