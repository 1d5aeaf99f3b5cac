/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* iss_reports_push() against an array made exactly as httpd 2.4's
 * dav_gen_supported_reports() makes it (element size of a pointer) and
 * read exactly as it reads it (as dav_report_elem), plus a correctly
 * sized array as a later httpd will make it. */

#include "mod_iss_reports.h"
#include "tap.h"

#include <apr_general.h>

static const char *const names[] = { "sync-collection", "iss-manifest",
                                     "expand-property", "fourth", "fifth",
                                     "sixth", "seventh" };

static int reads_back(apr_array_header_t *reports, int n, const char *what)
{
    const dav_report_elem *rp = (const dav_report_elem *)reports->elts;
    int i, good = reports->nelts == n;

    for (i = 0; good && i < reports->nelts; i++, rp++) {
        good = rp->name == names[i]
               && strcmp(rp->nmspace, i % 2 ? "urn:x" : "DAV:") == 0;
    }
    return ok(good, "%s: %d reports read back intact", what, n);
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    int n, i;

    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&p, NULL);

    for (n = 1; n <= 7; n++) {
        /* httpd: apr_array_make(r->pool, 5, sizeof(const char *)) */
        apr_array_header_t *buggy = apr_array_make(p, 5, sizeof(const char *));
        apr_array_header_t *fixed = apr_array_make(p, 1, sizeof(dav_report_elem));

        for (i = 0; i < n; i++) {
            iss_reports_push(buggy, i % 2 ? "urn:x" : "DAV:", names[i]);
            iss_reports_push(fixed, i % 2 ? "urn:x" : "DAV:", names[i]);
        }
        reads_back(buggy, n, "pointer-sized array (httpd 2.4)");
        reads_back(fixed, n, "dav_report_elem-sized array");
    }

    /* What goes wrong without the workaround, so this test can fail. */
    {
        apr_array_header_t *a = apr_array_make(p, 5, sizeof(const char *));
        dav_report_elem *e = apr_array_push(a);

        e->nmspace = "DAV:";
        e->name = names[0];
        e = apr_array_push(a);
        e->nmspace = "urn:x";
        e->name = names[1];
        ok(((const dav_report_elem *)a->elts)[0].name != names[0],
           "plain apr_array_push does corrupt the first report");
    }

    apr_pool_destroy(p);
    apr_terminate();
    return done_testing();
}
