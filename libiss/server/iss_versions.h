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

/* ---- added for retention, limits, collection (iss_versions.c) ----------
 *
 * Everything below is what the capture point, the configuration and
 * iss-state use; docs/design.md section 3e says how it fits together.
 * On disk, beside the store (iss_store_dir()):
 *
 *   versions/data/<hex sha256>   one file per retained content (a hard
 *                                link of the replaced inode, or a copy)
 *   versions/pending/<tag>.<n>   held for a write under way (tag: its
 *                                sync-log intent id)
 *   versions/chunks/<hex id>     the chunk store: one file per chunk of
 *                                packed contents (iss_versions_gc())
 *   versions/trash/              files being removed by a collection
 *
 * and in the store:
 *
 *   V/f/<rel>   "IVL1\n" + one line per version, newest first:
 *               "<hex sha256> <size> <replaced, us>\n"
 *   V/b/<hex>   "IVB1 <references> <size>[ p]": how many V/f entries
 *               name it; " p": packed (its bytes are in the chunk store)
 *   V/m/<hex>   the version's manifest (ISM1), when one was known (always
 *               for a packed content)
 *   V/c/<hex>   "IVC1 <references> <length>": packed contents listing
 *               the chunk (each counts once)
 *   V/total     "IVT1 <blobs> <bytes>": blobs with a reference, bytes
 */

/** Limits of ISSKeepVersions (0: no limit of that kind). */
typedef struct iss_versions_limits_t {
    apr_uint64_t max_count;         /**< versions per file */
    apr_uint64_t max_bytes;         /**< bytes of retained data, all files */
    apr_interval_time_t max_age;    /**< since a version was replaced */
} iss_versions_limits_t;

/** Defaults of `ISSKeepVersions On`: 10 per file, 1 GiB, 30 days. */
#define ISS_VERSIONS_DEFAULT_COUNT 10
#define ISS_VERSIONS_DEFAULT_BYTES (APR_UINT64_C(1) << 30)
#define ISS_VERSIONS_DEFAULT_AGE   (apr_time_from_sec(30 * 86400))

/** Parse one word of ISSKeepVersions into @a lim / @a on: "On", "Off"
 *  (any case), "count=N|off", "size=N[KMGT]|off", "age=N[smhdw]|off".
 *  A limit word also sets *on.  NULL or a message (from @a pool). */
const char *iss_versions_limits_parse(iss_versions_limits_t *lim, int *on,
                                      const char *word, apr_pool_t *pool);

/** Parse an ETag of iss_digest_etag() form, with or without its quotes,
 *  into the digest it names: 1 if it is one, else 0. */
int iss_versions_etag_digest(const char *etag, apr_size_t len,
                             unsigned char digest[ISS_DIGEST_SHA256_LEN]);

/** What a write under way holds of the file it may replace. */
typedef struct iss_versions_hold_t iss_versions_hold_t;

/** Before a write that may replace or remove the file @a path (absolute)
 *  known as @a rel: keep its inode by a hard link (a copy across
 *  file systems) under versions/pending/<tag>.<n>, with the digest and
 *  manifest records the store holds for it.  @a tag must name a record
 *  `intent/<tag>` of the store for as long as the hold lives (the
 *  collection removes pending links whose intent is gone).  APR_NOTFOUND
 *  if @a path is not a regular file (nothing to keep); other errors as
 *  they come (the write goes on without a version). */
apr_status_t iss_versions_hold(iss_store_t *store, const char *path,
                               const char *rel, const char *tag, int n,
                               iss_versions_hold_t **h, apr_pool_t *pool);

/** After the write: if @a h's file still has the held inode at its path,
 *  nothing was replaced and the hold is dropped (*retained = 0);
 *  likewise when the file's new content has the held digest
 *  (@a new_digest, NULL if unknown).  Otherwise its content becomes a
 *  version of its path replaced at @a now (*retained = 1), limits
 *  @a lim applied (oldest dropped first: per file by count and age, all
 *  files by size) and the data of dropped versions collected.  The hold
 *  is released either way. */
apr_status_t iss_versions_settle(iss_store_t *store, iss_versions_hold_t *h,
                                 const iss_versions_limits_t *lim,
                                 const unsigned char *new_digest,
                                 apr_time_t now, int *retained,
                                 apr_pool_t *pool);

/** Drop a hold without looking (the write was refused). */
void iss_versions_release(iss_versions_hold_t *h);

/** Drop every version of @a rel (an erasure: iss-state forget-versions)
 *  and remove their data that nothing else references; *dropped gets
 *  how many versions went (may be NULL). */
apr_status_t iss_versions_forget(iss_store_t *store, const char *rel,
                                 apr_uint64_t *dropped, apr_pool_t *pool);

/** Space of the versions of a store. */
typedef struct iss_versions_usage_t {
    apr_uint64_t files;      /**< paths with at least one version */
    apr_uint64_t versions;   /**< versions, all paths */
    apr_uint64_t blobs;      /**< distinct contents referenced (V/total) */
    apr_uint64_t bytes;      /**< their bytes (V/total) */
    apr_uint64_t disk_files; /**< files under versions/data now */
    apr_uint64_t disk_bytes; /**< their sizes */
    apr_uint64_t pending;    /**< links under versions/pending */
    apr_uint64_t packed;     /**< contents whose bytes are chunks */
    apr_uint64_t chunk_files;  /**< files under versions/chunks */
    apr_uint64_t chunk_bytes;  /**< their sizes */
} iss_versions_usage_t;

apr_status_t iss_versions_usage(iss_store_t *store, iss_versions_usage_t *u,
                                apr_pool_t *pool);

/** What a collection did. */
typedef struct iss_versions_gc_t {
    apr_uint64_t pruned;     /**< versions dropped by the limits */
    apr_uint64_t blobs;      /**< data files removed (no reference) */
    apr_uint64_t bytes;      /**< their sizes */
    apr_uint64_t pending;    /**< pending links removed (intent gone) */
    apr_uint64_t packed;     /**< contents moved into the chunk store */
    apr_uint64_t chunks;     /**< chunk files removed (no reference) */
    apr_uint64_t damaged;    /**< contents left unpacked: bytes that do
                              *   not match their ids (never packed) */
} iss_versions_gc_t;

/** Apply @a lim (NULL: none) to every file's versions at @a now, move
 *  the contents of two chunks or more into the chunk store (each chunk
 *  stored once for all versions; bytes checked against their ids first),
 *  then remove every data file and chunk no version references, the
 *  pending links of writes that ended without settling (crashes) and
 *  the trash.  Safe
 *  beside writers of any process: a data file is removed only under the
 *  store's lock, after its reference count was seen absent there, and
 *  retention links a data file and counts its reference under the same
 *  lock.  Safe to run twice at once. */
apr_status_t iss_versions_gc(iss_store_t *store,
                             const iss_versions_limits_t *lim,
                             apr_time_t now, iss_versions_gc_t *st,
                             apr_pool_t *pool);

#ifdef __cplusplus
}
#endif

#endif /* ISS_VERSIONS_H */
