/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "mod_iss_options.h"

static dav_error *dav_header(request_rec *r, const dav_resource *resource,
                             apr_text_header *phdr)
{
    if (iss_is_enabled(r)) {
        apr_text_append(r->pool, phdr, ISS_DAV_TOKEN);
    }
    return NULL;
}

static const dav_options_provider options = {
    dav_header,
    NULL,        /* dav_method: mod_iss adds no method yet */
    NULL
};

void iss_options_register(apr_pool_t *p)
{
    dav_options_provider_register(p, ISS_PROVIDER_NAME, &options);
}
