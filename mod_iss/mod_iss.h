/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * mod_iss — shared declarations of the httpd glue.
 *
 * The glue is thin, one file per role (docs/design.md section 1 lists
 * them all): config, the mod_dav provider that wraps mod_dav_fs, the
 * per-location state store, the single change-capture point, the sync
 * REPORT and its properties, digests and ETags, PATCH, chunk uploads,
 * and the error bodies they answer with (mod_iss_error.c).  Pure logic
 * lives in libiss/ (core/ and server/) and never includes httpd headers.
 */
#ifndef MOD_ISS_H
#define MOD_ISS_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <mod_dav.h>

#include "iss_version.h"

extern module AP_MODULE_DECLARE_DATA iss_module;

#if defined(APLOG_USE_MODULE) && !defined(ISS_MODULE_MAIN)
APLOG_USE_MODULE(iss);
#endif

/** The name of our mod_dav provider: `Dav iss`. */
#define ISS_PROVIDER_NAME "iss"

/** mod_iss's XML namespace (error elements, properties of its own). */
#define ISS_XML_NS "https://mod-iss.org/ns/iss/1"

/** Log message tags: ISSnnnnn, numbered from docs/next-number. */
#define ISSLOGNO(n) "ISS" #n ": "

/** True when @a r is served by `Dav iss` (any method, any hook). */
int iss_is_enabled(request_rec *r);

/** Answer @a r with @a status and an RFC 4918 section 16 error body
 *  (mod_iss_error.c, the one writer of the glue's error bodies):
 *  <D:error> holding the condition element @a tag of namespace @a ns
 *  (NULL: ISS_XML_NS; @a tag NULL: no element), then @a xml (more
 *  elements of ISS_XML_NS with the prefix I:, or NULL), then
 *  <I:message> with @a msg for people (quoted here).  Sends the body
 *  and the end of the response. */
void iss_send_error_body(request_rec *r, int status, const char *ns,
                         const char *tag, const char *xml, const char *msg);

/** Lower mod_dav's log level for the rest of @a r to critical: mod_dav
 *  logs every error a method ends with at error level, the refusals
 *  mod_iss answered itself (and logged at its own level) included. */
void iss_error_quiet_dav(request_rec *r);

/** Answer @a r now with @a err's status and our error body (@a err's
 *  element, or I:<@a tag> when it has none; its description as
 *  I:message), and return the error to give mod_dav instead (from
 *  method_precondition): it says the answer is sent, so mod_dav sends
 *  nothing more, and logs nothing of it (iss_error_quiet_dav()).  The
 *  caller logs the refusal itself.  The connection is closed after the
 *  answer (a request body may be left unread). */
dav_error *iss_error_answer(request_rec *r, const dav_error *err,
                            const char *tag);

#endif /* MOD_ISS_H */
