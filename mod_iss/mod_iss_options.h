/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * mod_iss_options — what OPTIONS says of a `Dav iss` location: the ISS
 * extension token in the DAV header (and, as features arrive, their
 * methods in Allow).  mod_dav calls options providers for every
 * location, so each answer starts by checking iss_is_enabled().
 */
#ifndef MOD_ISS_OPTIONS_H
#define MOD_ISS_OPTIONS_H

#include "mod_iss.h"

void iss_options_register(apr_pool_t *p);

#endif /* MOD_ISS_OPTIONS_H */
