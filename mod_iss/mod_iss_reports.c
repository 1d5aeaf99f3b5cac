/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "mod_iss_reports.h"

#include <string.h>

void iss_reports_push(apr_array_header_t *reports, const char *nmspace,
                      const char *name)
{
    dav_report_elem *slot;
    int n = reports->nelts;

    if ((apr_size_t)reports->elt_size >= sizeof(dav_report_elem)) {
        slot = apr_array_push(reports);
    }
    else {
        /* Grow the array (apr_array_push copies the whole allocation)
         * until n + 1 reports fit at their real size, then set nelts to
         * the number of reports, which is what the reader iterates. */
        while ((apr_size_t)reports->nalloc * (apr_size_t)reports->elt_size
               < (apr_size_t)(n + 1) * sizeof(dav_report_elem)) {
            apr_array_push(reports);
        }
        reports->nelts = n + 1;
        slot = (dav_report_elem *)reports->elts + n;
    }
    slot->nmspace = nmspace;
    slot->name = name;
}

#ifndef ISS_UNIT_TEST

#include "mod_iss.h"

/* Reports a `Dav iss` location answers; each feature adds its own line
 * (and a deliver_report in a file of its own). */
static const dav_report_elem reports_table[] = {
    { "DAV:", "sync-collection" },     /* RFC 6578: mod_iss_sync.c */
    { NULL, NULL }
};

static void gather_reports(request_rec *r, const dav_resource *resource,
                           apr_array_header_t *reports, dav_error **err)
{
    const dav_report_elem *rp;

    if (!iss_is_enabled(r)) {
        return;
    }
    for (rp = reports_table; rp->name; rp++) {
        iss_reports_push(reports, rp->nmspace, rp->name);
    }
}

void iss_reports_register_hooks(apr_pool_t *p)
{
    /* Run before mod_dav's core gatherer, which pushes the buggy way. */
    dav_hook_gather_reports(gather_reports, NULL, NULL, APR_HOOK_MIDDLE);
}

#endif /* ISS_UNIT_TEST */
