/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * mod_iss_reports — REPORTs of `Dav iss` locations.
 *
 * gather_reports adds our reports to DAV:supported-report-set;
 * deliver_report (per report, one file each, added by the features that
 * need them) answers them.
 *
 * httpd 2.4's dav_gen_supported_reports() makes its array with an
 * element size of a pointer but reads it as dav_report_elem (two
 * pointers), so a second apr_array_push() overwrites half of the first
 * report.  iss_reports_push() stores reports the way the reader reads
 * them, whichever element size the array has.
 */
#ifndef MOD_ISS_REPORTS_H
#define MOD_ISS_REPORTS_H

#include <apr_tables.h>
#include <mod_dav.h>

/** Append one report to a gather_reports array so that it reads back as
 *  ((dav_report_elem *)reports->elts)[reports->nelts - 1]. */
void iss_reports_push(apr_array_header_t *reports, const char *nmspace,
                      const char *name);

#ifndef ISS_UNIT_TEST
void iss_reports_register_hooks(apr_pool_t *p);
#endif

#endif /* MOD_ISS_REPORTS_H */
