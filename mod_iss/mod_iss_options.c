/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "mod_iss_options.h"
#include "mod_iss_chunk.h"
#include "mod_iss_config.h"
#include "mod_iss_patch.h"

/* The DAV header names what `Dav iss` adds (and SabreDAV's partial
 * update, which its clients look for there); Accept-Patch (RFC 5789
 * section 3.1) the patch formats. */
static dav_error *dav_header(request_rec *r, const dav_resource *resource,
                             apr_text_header *phdr)
{
    if (iss_is_enabled(r)) {
        apr_text_append(r->pool, phdr, ISS_DAV_TOKEN);
        apr_text_append(r->pool, phdr, "sabredav-partialupdate");
        apr_table_setn(r->headers_out, "Accept-Patch", iss_patch_accept(r));
        if (iss_config_chunking(iss_config_dir(r))) {
            /* The store's chunker: clients chunk files the same way. */
            apr_table_setn(r->headers_out, "ISS-Chunking",
                           iss_chunk_params_header(r));
        }
    }
    return NULL;
}

/* PATCH joins Allow for the files of a `Dav iss` location. */
static dav_error *dav_method(request_rec *r, const dav_resource *resource,
                             apr_text_header *phdr)
{
    if (iss_is_enabled(r) && resource && resource->exists
        && !resource->collection) {
        apr_text_append(r->pool, phdr, "PATCH");
    }
    return NULL;
}

static const dav_options_provider options = {
    dav_header,
    dav_method,
    NULL
};

void iss_options_register(apr_pool_t *p)
{
    dav_options_provider_register(p, ISS_PROVIDER_NAME, &options);
}
