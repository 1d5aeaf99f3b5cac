/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_versions — retained versions of the files of a location (issue 15).
 *
 * When a file of a location with ISSKeepVersions on is overwritten or
 * deleted, its previous content is kept as a *version*, named by its
 * content digest (SHA-256: the strong ETag is iss_digest_etag() of it).
 * This header is the interface the rest of mod_iss uses: the 226 delta
 * GET (mod_iss_get.c) finds a version by the ETag a client names and
 * reads its bytes as the VCDIFF source; the versions listing and the
 * version URLs read them too.  How versions are stored, limited and
 * collected is iss_versions.c's business (docs/design.md).
 *
 * Authorisation is the caller's: these functions answer for any path.
 * A caller must check that the user may GET @a rel before it calls them,
 * and must answer "not retained" and "not allowed" alike.
 */
#ifndef ISS_VERSIONS_H
#define ISS_VERSIONS_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#include "iss_digest.h"
#include "iss_manifest.h"
#include "iss_store.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One retained version of a file. */
typedef struct iss_version_t {
    const char *rel;          /**< the file, relative to the location */
    unsigned char digest[ISS_DIGEST_SHA256_LEN]; /**< SHA-256 of content */
    apr_off_t size;           /**< content length */
    apr_time_t replaced;      /**< when it stopped being current */
    /** Its manifest (chunk ids and lengths), or NULL if the store keeps
     *  none for it. */
    const iss_manifest_t *manifest;
} iss_version_t;

/** A reader of one version's bytes (random access). */
typedef struct iss_version_reader_t iss_version_reader_t;

/** The retained version of @a rel whose content digest is @a digest.
 *  APR_NOTFOUND if there is none (never retained, expired, collected).
 *  Other errors are the store's. */
apr_status_t iss_versions_find(iss_store_t *store, const char *rel,
                               const unsigned char digest[ISS_DIGEST_SHA256_LEN],
                               iss_version_t **v, apr_pool_t *pool);

/** All retained versions of @a rel, newest first (iss_version_t *). */
apr_status_t iss_versions_list(iss_store_t *store, const char *rel,
                               apr_array_header_t **versions,
                               apr_pool_t *pool);

/** Open @a v for reading.  Bytes are checked against their chunk ids
 *  (or the whole digest) before they are handed out: a read that finds
 *  damaged or missing data fails with APR_EGENERAL (never wrong bytes). */
apr_status_t iss_versions_open(iss_store_t *store, const iss_version_t *v,
                               iss_version_reader_t **rd, apr_pool_t *pool);

/** Read up to @a len bytes at @a off of the version: *got < len only at
 *  its end. */
apr_status_t iss_versions_pread(iss_version_reader_t *rd, apr_off_t off,
                                void *buf, apr_size_t len, apr_size_t *got);

/** Release what the reader holds (also done by its pool's cleanup). */
void iss_versions_close(iss_version_reader_t *rd);

#ifdef __cplusplus
}
#endif

#endif /* ISS_VERSIONS_H */
