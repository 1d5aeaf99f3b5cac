/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_filedigest — the SHA-256 of every file of a location, kept in the
 * state store, and the strong ETag made from it.
 *
 * A record `d/<path>` (path relative to the location's root, as in
 * iss_sync_log) holds the digest of a file together with the identity of
 * the file it was computed for: inode, size and modification time.  A
 * record is used only while the file on disk still has that identity;
 * anything that replaces or rewrites the file (a PUT or PATCH renames a
 * new inode into place, a MOVE brings another inode, an editor writing in
 * place changes the mtime) makes it stale, and the digest is computed
 * again from the file when next needed (iss_filedigest_compute_file()).
 *
 * Writes through mod_iss record the digest of what they wrote, computed
 * while the bytes streamed by (never by reading the file again), in the
 * same store transaction as their sync log entry (iss_sync_index_t).
 *
 * Record: "IFD1 <inode> <size> <mtime_us> <base64 digest>" (decimal
 * numbers, standard padded base64 of the 32 bytes), or, when the
 * checksums of ownCloud clients were computed with the digest (in the
 * same pass: ISSOwnCloudCompat), version 2: "IFD2 <inode> <size>
 * <mtime_us> <base64 digest> <sha1 hex or -> <md5 hex or ->".  Both are
 * read; a version 1 record simply has no checksums (they are computed
 * when first asked for).
 *
 * The ETag of a file is "\"" base64url(SHA-256, no padding) "\"": strong
 * (RFC 9110 section 8.8.3) because equal ETags mean equal bytes.
 *
 * Pure code: APR and OpenSSL (iss_digest) only.
 */
#ifndef ISS_FILEDIGEST_H
#define ISS_FILEDIGEST_H

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_pools.h>

#include "iss_digest.h"
#include "iss_store.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Store key prefix of the records. */
#define ISS_FILEDIGEST_PREFIX "d/"

/** Longest record iss_filedigest_encode() writes (NUL included). */
#define ISS_FILEDIGEST_RECORD_MAX 192

/** A file's digest and the identity of the file it belongs to. */
typedef struct iss_filedigest_t {
    apr_uint64_t ino;
    apr_off_t size;
    apr_time_t mtime;                           /**< microseconds */
    unsigned char sha256[ISS_DIGEST_SHA256_LEN];
    iss_digest_sums_t sums;   /**< SHA-1, MD5 if computed (sums.have;
                               *   zero it when there are none) */
} iss_filedigest_t;

/** Fill the identity fields of @a d from @a finfo (inode, size, mtime
 *  must be valid in it: APR_FINFO_IDENT | APR_FINFO_SIZE |
 *  APR_FINFO_MTIME). */
void iss_filedigest_set_identity(iss_filedigest_t *d,
                                 const apr_finfo_t *finfo);

/** Whether @a d was computed for the file @a finfo describes now. */
int iss_filedigest_matches(const iss_filedigest_t *d,
                           const apr_finfo_t *finfo);

/** The record for @a d, allocated from @a pool. */
const char *iss_filedigest_encode(const iss_filedigest_t *d, apr_pool_t *pool);

/** Parse a record (exactly the form encode writes).  APR_EINVAL and @a d
 *  untouched on anything else. */
apr_status_t iss_filedigest_decode(const char *buf, apr_size_t len,
                                   iss_filedigest_t *d);

/** The store key of @a rel's record. */
const char *iss_filedigest_key(const char *rel, apr_pool_t *pool);

/** Look up the digest of @a rel for the file @a finfo describes now:
 *  *found = 1 and @a out filled if a record exists and matches it, else
 *  *found = 0 (an unreadable record counts as absent).  Store errors
 *  are returned. */
apr_status_t iss_filedigest_lookup(iss_store_t *store, const char *rel,
                                   const apr_finfo_t *finfo,
                                   unsigned char out[ISS_DIGEST_SHA256_LEN],
                                   int *found, apr_pool_t *pool);

/** Like iss_filedigest_lookup(), with the whole record (its checksums
 *  too) in @a d when *found. */
apr_status_t iss_filedigest_get(iss_store_t *store, const char *rel,
                                const apr_finfo_t *finfo, iss_filedigest_t *d,
                                int *found, apr_pool_t *pool);

/** Add @a d as @a rel's record to @a batch (committed with it: records
 *  of many files in one store commit). */
void iss_filedigest_stage(iss_store_batch_t *batch, const char *rel,
                          const iss_filedigest_t *d, apr_pool_t *pool);

/** Read the open regular file @a f once, from its start (left at its
 *  start afterwards), and compute its digest, with the identity it had.
 *  *stable is 1 when the file kept that identity while it was read and
 *  was last modified more than @a settle before the read began (a file
 *  modified within the same clock tick after the read could keep its
 *  identity with other bytes: such a digest is right for this answer but
 *  must not be kept), else 0.  APR_EINVAL if @a f is not a regular file;
 *  I/O errors as they come.  Memory: one 64 KiB buffer from @a pool. */
apr_status_t iss_filedigest_compute_file(apr_file_t *f, iss_filedigest_t *d,
                                         apr_interval_time_t settle,
                                         int *stable, apr_pool_t *pool);

/** iss_filedigest_compute_file() that also computes the checksums
 *  @a sums (ISS_SUM_SHA1 | ISS_SUM_MD5; 0: none) in the same read. */
apr_status_t iss_filedigest_compute_file_sums(apr_file_t *f,
                                              iss_filedigest_t *d,
                                              unsigned sums,
                                              apr_interval_time_t settle,
                                              int *stable, apr_pool_t *pool);


#ifdef __cplusplus
}
#endif

#endif /* ISS_FILEDIGEST_H */
