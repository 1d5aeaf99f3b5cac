/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_upload — staging sessions of the chunk upload protocol (issue 5).
 *
 * A PATCH whose manifest names chunks the server does not have opens a
 * session; the client then POSTs the missing chunks into it and PATCHes
 * again to commit.  A session keeps, between those requests: who opened
 * it, for which path, the manifest, and the chunks received so far, each
 * verified against its id (its SHA-256).
 *
 * Layout.  ROOT (the module passes <ISSStateDir>/uploads) holds one
 * directory per session, named by the session id: 32 lowercase hex
 * characters (16 random bytes from apr_generate_random_bytes).  In it:
 *
 *     session    "ISU1\n" user "\n" path "\n"  (the user is empty for an
 *                anonymous upload); its mtime is the session's last use
 *                (iss_upload_touch())
 *     manifest   the caller's bytes, opaque here
 *     <hex id>   one file per staged chunk, named by the lowercase hex of
 *                its SHA-256 (64 characters), holding exactly its bytes
 *     .tmp.*     files being written (or left by a writer that died)
 *
 * ROOT may also hold .tmp.* and .dead.* entries: sessions being removed.
 * Directories are made 0700, files 0600.
 *
 * Atomicity.  Every file is written under a temporary name in the same
 * directory, flushed to disk (fdatasync) and renamed to its final name,
 * so no crash of the writer (power loss included) nor a concurrent
 * writer ever leaves a partial chunk, manifest or session file under its
 * final name.  A session comes to exist when its session file is renamed
 * into place (the manifest is there before it); a directory named like a
 * session without a readable session file is not a session (open says
 * APR_NOTFOUND) and is garbage iss_upload_gc() removes once idle.
 * Removal renames the session directory to a .dead.* name first, then
 * deletes it: from that instant every path of the session is gone, so a
 * writer racing with the removal (iss_upload_gc() in another process
 * while a POST stages chunks) fails with APR_NOTFOUND instead of
 * recreating half a session; what such a writer leaves in the .dead.*
 * directory is deleted by the next iss_upload_gc().
 *
 * Errors: APR codes; APR_NOTFOUND whenever the session does not exist
 * (any more); ISS_UPLOAD_EMISMATCH for chunk bytes that do not hash to
 * their id.
 *
 * Pure code: APR and iss_digest (OpenSSL SHA-256) only.  No global
 * state; a handle is used by one thread at a time, several handles
 * (threads, processes) may work on one session at once.
 */
#ifndef ISS_UPLOAD_H
#define ISS_UPLOAD_H

#include <apr_errno.h>
#include <apr_file_io.h>
#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Characters of a session id (lowercase hex of 16 random bytes). */
#define ISS_UPLOAD_ID_LEN 32

/** The bytes given for a chunk do not hash to its id. */
#define ISS_UPLOAD_EMISMATCH (APR_OS_START_USERERR + 90)

typedef struct iss_upload_t iss_upload_t;

/**
 * Create a new session in @a root for @a user (NULL or "" = anonymous)
 * uploading to @a path, with the manifest @a manifest (@a mlen bytes,
 * kept as given; NULL when @a mlen is 0).  @a root is created (0700) if
 * missing, its parent is not.  APR_EINVAL if @a path is NULL, if @a user
 * or @a path contains a newline, or if they are together longer than
 * 60 KiB; nothing is written then.  APR_NOTFOUND if an
 * iss_upload_gc() with a max idle time near 0 removed the new directory
 * before the session was complete.  On success *u is the session's
 * handle, allocated from @a pool (which later calls on the handle use
 * for sub-pools only: memory stays bounded however many chunks are
 * put).
 */
apr_status_t iss_upload_create(iss_upload_t **u, const char *root,
                               const char *user, const char *path,
                               const void *manifest, apr_size_t mlen,
                               apr_pool_t *pool);

/**
 * Open the existing session @a id in @a root.  APR_EINVAL if @a id is
 * not exactly ISS_UPLOAD_ID_LEN lowercase hex characters (checked before
 * anything touches the disk: no other path can be reached through @a
 * id); APR_NOTFOUND if there is no such session, or its session file is
 * missing or damaged; other errors (APR_EACCES ...) as they come.
 */
apr_status_t iss_upload_open(iss_upload_t **u, const char *root,
                             const char *id, apr_pool_t *pool);

/** The session's id (ISS_UPLOAD_ID_LEN characters). */
const char *iss_upload_id(const iss_upload_t *u);

/** The user who opened the session; "" for anonymous. */
const char *iss_upload_user(const iss_upload_t *u);

/** The path the session uploads to, as given to iss_upload_create(). */
const char *iss_upload_path(const iss_upload_t *u);

/** Read the manifest into a buffer from @a pool (NUL-terminated for
 *  convenience; *len excludes the NUL).  APR_NOTFOUND if the session
 *  is gone. */
apr_status_t iss_upload_manifest(iss_upload_t *u, void **buf,
                                 apr_size_t *len, apr_pool_t *pool);

/** Replace the manifest (atomically: a reader sees the old one or the
 *  new one).  APR_NOTFOUND if the session is gone. */
apr_status_t iss_upload_set_manifest(iss_upload_t *u, const void *buf,
                                     apr_size_t len);

/** Mark the session used now: sets the mtime of its session file, the
 *  clock iss_upload_gc() judges idleness by.  Nothing else does (not
 *  even iss_upload_put()).  APR_NOTFOUND if the session is gone. */
apr_status_t iss_upload_touch(iss_upload_t *u);

/** 1 if the chunk with SHA-256 @a sha is staged in the session, else 0
 *  (also when the session is gone or cannot be read). */
int iss_upload_has(iss_upload_t *u, const unsigned char sha[32]);

/**
 * Stage the @a len bytes at @a data as the chunk @a sha.  First checks
 * that SHA-256(@a data) is @a sha: ISS_UPLOAD_EMISMATCH, and nothing
 * written, if not.  Idempotent: a chunk already staged is left as it is
 * and APR_SUCCESS returned.  APR_NOTFOUND if the session is gone
 * (removed before or while the chunk was written: nothing is left under
 * the session's name then).
 */
apr_status_t iss_upload_put(iss_upload_t *u, const unsigned char sha[32],
                            const void *data, apr_size_t len);

/**
 * iss_upload_put() without the check: for bytes the caller has verified
 * against @a sha already, e.g. a chunk that the frame parser handed over
 * (iss_frames checks every chunk against its id before its chunk
 * callback runs), so that no chunk is hashed twice on its way in.  A
 * chunk put unverified and wrong is not a leak (a session is one user's)
 * but a bad file: the assembly checks every chunk against its id again
 * as it copies it (it reads it back from disk anyway), and asks the
 * client again for one that fails.
 */
apr_status_t iss_upload_put_verified(iss_upload_t *u,
                                     const unsigned char sha[32],
                                     const void *data, apr_size_t len);

/** Open the staged chunk @a sha for reading (*f from @a pool, at its
 *  start; *len its size).  APR_NOTFOUND if it is not staged or the
 *  session is gone. */
apr_status_t iss_upload_open_chunk(iss_upload_t *u,
                                   const unsigned char sha[32],
                                   apr_file_t **f, apr_off_t *len,
                                   apr_pool_t *pool);

/** Remove the whole session (its directory and everything in it).  A
 *  session already gone is not an error.  Once this returns, the
 *  session no longer exists even if some file could not be deleted
 *  (iss_upload_gc() deletes such leftovers). */
apr_status_t iss_upload_remove(iss_upload_t *u);

/**
 * Collect garbage in @a root as of time @a now (normally apr_time_now()):
 *  - sessions whose session file's mtime is older than now - @a max_idle
 *    (*removed counts them);
 *  - in ROOT and in the sessions kept, .tmp.* entries older than that
 *    (a fresh one is a write in progress and is left alone);
 *  - directories named like a session that are not one (no readable
 *    session file: a create that died), older than that;
 *  - .dead.* directories (removals that did not finish), whatever their
 *    age.
 * Entries of other names are left alone.  *freed adds up the sizes of
 * the files deleted.  A missing @a root is not an error (nothing to do).
 * Entries that vanish meanwhile (another gc, a remove) are skipped.
 * @a removed and @a freed may be NULL.  Memory: bounded, whatever the
 * number of sessions (a sub-pool of @a pool, cleared per entry).
 */
apr_status_t iss_upload_gc(const char *root, apr_interval_time_t max_idle,
                           apr_time_t now, apr_uint32_t *removed,
                           apr_uint64_t *freed, apr_pool_t *pool);

/** One session as iss_upload_list() sees it. */
typedef struct iss_upload_info_t {
    const char *id, *user, *path;
    apr_time_t touched;         /**< last use: the session file's mtime */
    apr_uint32_t chunks;        /**< staged chunks */
    apr_uint64_t bytes;         /**< their sizes plus the manifest's */
} iss_upload_info_t;

/** Every session in @a root, ordered by id, into *infos (an array of
 *  iss_upload_info_t from @a pool).  A missing @a root gives an empty
 *  array.  Directories that are not sessions are skipped, so are
 *  sessions removed while they are looked at. */
apr_status_t iss_upload_list(const char *root, apr_array_header_t **infos,
                             apr_pool_t *pool);

/** The size of @a u's manifest file into *size (0 if it has none);
 *  APR_NOTFOUND if the session is gone. */
apr_status_t iss_upload_manifest_size(iss_upload_t *u, apr_uint64_t *size);

/** The number of sessions in @a root and the bytes they hold (chunks
 *  and manifests, as in iss_upload_info_t.bytes), with the memory of a
 *  single session's scan.  A missing @a root gives 0 and 0. */
apr_status_t iss_upload_usage(const char *root, apr_uint32_t *sessions,
                              apr_uint64_t *bytes, apr_pool_t *pool);

#ifdef __cplusplus
}
#endif

#endif /* ISS_UPLOAD_H */
