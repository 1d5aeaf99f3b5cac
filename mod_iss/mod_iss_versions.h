/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * mod_iss_versions — retained versions over HTTP: GET <file>?iss-versions
 * (the list) and GET <file>?iss-version=<entity tag> (one version).
 * Retention itself is the capture point's (mod_iss_capture.c), the
 * storage libiss's (iss_versions.h).
 */
#ifndef MOD_ISS_VERSIONS_H
#define MOD_ISS_VERSIONS_H

#include "mod_iss.h"

void iss_versions_register_hooks(apr_pool_t *p);

#endif /* MOD_ISS_VERSIONS_H */
