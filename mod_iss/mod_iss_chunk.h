/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * mod_iss_chunk — chunk manifests of the files of a `Dav iss` location.
 *
 * A file's manifest is made in the pass that hashes its content: by the
 * PUT input filter (mod_iss_digest), by PATCH as it writes the new
 * content, by an upload by manifest (which is given it); for files
 * changed behind httpd's back, on first need by one read of the open
 * file.  It is kept in the state store with the identity of the file it
 * describes (libiss/server/iss_chunkidx) and served to clients on GET with
 * `Accept: application/vnd.mod-iss.manifest`.
 *
 * The dedup scope check lives here too: whether the user of a request
 * may read another file of the store, asked of httpd itself.
 */
#ifndef MOD_ISS_CHUNK_H
#define MOD_ISS_CHUNK_H

#include "mod_iss.h"
#include "iss_manifest.h"

#include <apr_file_io.h>

/** The limits a manifest from a client (or the store) is checked
 *  against in @a r's location. */
void iss_chunk_limits(request_rec *r, iss_manifest_limits_t *lim);

/** The manifest of the open file @a f (described by @a fi) at @a rel:
 *  the store's record if it is of this file as it is, else (if
 *  @a compute) made by reading @a f once from its start and kept if the
 *  file did not change meanwhile and was not changed in the last second.
 *  APR_NOTFOUND: no record and not @a compute; APR_EAGAIN: the file
 *  changed while it was read. */
apr_status_t iss_chunk_manifest_of_file(request_rec *r, const char *rel,
                                        apr_file_t *f,
                                        const apr_finfo_t *fi, int compute,
                                        iss_manifest_t **m);

/** Whether @a r's user may GET the file at @a rel (relative to the
 *  location's root): httpd's own access control is asked, in a
 *  sub-request made so that httpd does not skip it (see the design). */
int iss_chunk_may_read(request_rec *r, const char *rel);

/** Whether @a r asks for the manifest of the file (Accept). */
int iss_chunk_wants_manifest(request_rec *r);

/** The ETag of the manifest of content with digest @a sha256. */
const char *iss_chunk_manifest_etag(const unsigned char *sha256,
                                    apr_pool_t *pool);

/** The ISS-Chunking header value of @a r's location (its parameters). */
const char *iss_chunk_params_header(request_rec *r);

#endif /* MOD_ISS_CHUNK_H */
