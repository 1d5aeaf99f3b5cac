/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * sync_local — the folder side of iss-sync.
 *
 *  - the scan: one lstat per entry (never following a symbolic link:
 *    links, FIFOs, sockets and devices are reported and skipped); a
 *    file is read (hashed, and chunked where the server chunks, in one
 *    pass) only when its size, mtime, ctime or inode differ from the
 *    last synced state;
 *  - writes: every file the client writes is written to a temporary
 *    file in the same folder (".iss-sync-tmp.*", never synced, removed
 *    by the next scan if a run died), verified, fdatasync'd and renamed
 *    into place: never a half-written file under its final name;
 *  - every overwrite or delete checks the path again right before it
 *    (it may have changed during the run), and no path is written
 *    through a symbolic link on the way.
 */
#ifndef SYNC_LOCAL_H
#define SYNC_LOCAL_H

#include "sync.h"

#include <apr_file_io.h>

/** Prefix of the client's temporary files. */
#define SYNC_TMP_PREFIX ".iss-sync-tmp."

/** The absolute path of @a rel. */
const char *sync_local_path(const sync_ctx_t *ctx, const char *rel,
                            apr_pool_t *pool);

/** Take the folder's lock (flock on the folder itself) without waiting:
 *  APR_EAGAIN (EWOULDBLOCK) when another run holds it.  Held until the
 *  process ends. */
apr_status_t sync_local_lock(sync_ctx_t *ctx);

/** Find out whether the folder's file system folds case or Unicode
 *  normalisation (a probe file, removed at once). */
void sync_local_probe(sync_ctx_t *ctx);

/** Scan the folder into the items' local part.  *entries = how many
 *  entries the folder holds (0: empty).  Errors print a message. */
apr_status_t sync_local_scan(sync_ctx_t *ctx, apr_uint64_t *entries);

/** lstat @a rel into @a l (kind SYNC_NONE when absent; other = 1 for
 *  what is neither file nor folder). */
apr_status_t sync_local_stat(const sync_ctx_t *ctx, const char *rel,
                             sync_local_t *l, apr_pool_t *pool);

/** Whether two identities are the same (kind, size, mtime, ctime,
 *  inode). */
int sync_local_same(const sync_local_t *a, const sync_local_t *b);

/** Read @a rel once: its SHA-256 and (if chunking) its manifest, and
 *  its identity.  APR_EAGAIN if it changed while it was read. */
apr_status_t sync_local_hash(sync_ctx_t *ctx, const char *rel,
                             sync_local_t *l, apr_pool_t *pool);

/** Make sure the folder of @a rel exists as a real folder of the synced
 *  tree (creating missing ones; none of them may be a link).  *why
 *  says what is wrong otherwise. */
apr_status_t sync_local_prepare_parent(sync_ctx_t *ctx, const char *rel,
                                       const char **why, apr_pool_t *pool);

/** A new temporary file in the folder of @a rel, open for reading and
 *  writing. */
apr_status_t sync_local_temp(sync_ctx_t *ctx, const char *rel,
                             apr_file_t **f, const char **tmp_path,
                             apr_pool_t *pool);

/** Put the temporary file @a tmp_path (complete and verified: it is
 *  fdatasync'd here) in place of @a rel.  @a expect is what must be at
 *  @a rel right now: kind SYNC_NONE (nothing: then a name the file
 *  system folds onto another entry is refused), or that exact identity.
 *  On success @a now (if not NULL) is the new file's identity.
 *  APR_EEXIST/APR_EAGAIN with *why when the path is not as expected;
 *  APR_ENAMETOOLONG / EINVAL... when the file system cannot hold the
 *  name.  The temporary file is removed on failure. */
apr_status_t sync_local_commit(sync_ctx_t *ctx, const char *tmp_path,
                               const char *rel, const sync_local_t *expect,
                               sync_local_t *now, const char **why,
                               apr_pool_t *pool);

/** A free name for the conflict copy of @a rel:
 *  "NAME (conflict YYYY-MM-DD HHMMSS HOST).EXT". */
const char *sync_local_conflict_name(sync_ctx_t *ctx, const char *rel,
                                     apr_pool_t *pool);

/** Rename @a from to @a to (which must not exist). */
apr_status_t sync_local_rename(sync_ctx_t *ctx, const char *from,
                               const char *to, apr_pool_t *pool);

/** Whether @a rel's file system error @a rv means "cannot hold this
 *  name" (too long, invalid characters). */
int sync_local_bad_name(apr_status_t rv);

#endif /* SYNC_LOCAL_H */
