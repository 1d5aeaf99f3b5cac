/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * mod_iss_capture — the single place where mod_iss sees every change.
 *
 * Before: mod_dav's method_precondition hook, for PUT, DELETE, MKCOL,
 * PROPPATCH, LOCK on an unmapped URL, and the second (destination)
 * call of COPY and MOVE; mod_iss's own write, PATCH (every format, the
 * upload by manifest included), enters the same step from its handler
 * (iss_capture_modify()).  It lists every member the
 * method may touch (walking a collection that is deleted, copied, moved
 * or overwritten), and records that intent in the store of every `Dav iss`
 * location involved (source and destination may differ) before mod_dav
 * acts.  If the intent cannot be recorded, the write is refused.
 *
 * After: when the response starts (a protocol-level output filter that
 * also survives error responses), or at the latest when the request
 * ends, the capture learns the final status and settles the
 * intent.  A crash between the two leaves the intent in the store, where
 * it marks the members as "possibly changed".
 */
#ifndef MOD_ISS_CAPTURE_H
#define MOD_ISS_CAPTURE_H

#include "mod_iss.h"

void iss_capture_register_hooks(apr_pool_t *p);

/** The "before" of a write mod_iss makes itself (PATCH): @a res, a
 *  file, is about to be modified (or created, if it does not exist).  The "after" follows as for
 *  every method.  A dav_error if the intent cannot be recorded (the
 *  write must then not happen). */
dav_error *iss_capture_modify(request_rec *r, const dav_resource *res);

/** A write mod_iss makes itself failed without touching anything (its
 *  temporary file is gone): settle without a log entry whatever the
 *  status (a 507 or 500 included). */
void iss_capture_unchanged(request_rec *r);

#endif /* MOD_ISS_CAPTURE_H */
