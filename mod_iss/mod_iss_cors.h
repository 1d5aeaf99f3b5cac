/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * mod_iss_cors — CORS for browser sync apps (ISSCORSAllowOrigin):
 * preflights answered before authentication, Allow-Origin and
 * Expose-Headers on every answer to a listed origin, credentials only for
 * origins listed by name; nothing where the directive is not set.
 */
#ifndef MOD_ISS_CORS_H
#define MOD_ISS_CORS_H

#include "mod_iss.h"

void iss_cors_register_hooks(apr_pool_t *p);

#endif /* MOD_ISS_CORS_H */
