/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * sync_state — the client's memory of the last sync, in SQLite.
 *
 * One database per pair (local folder, server URL), in the state
 * directory ($XDG_STATE_HOME/iss-sync, ~/.local/state/iss-sync, or
 * --state-dir), never inside the synced folder: an unmounted disk then
 * looks like an empty folder whose state still says it held files,
 * which the empty-root guard catches.  WAL mode, synchronous=NORMAL: a
 * kill -9 of the client loses at most the transaction under way, and
 * every record is written only after the operation it describes
 * succeeded, so an interrupted run converges on the next.
 *
 * Tables:
 *   meta(k, v)      version, local_root, url, token (the sync token the
 *                   records are up to date with), params (chunking)
 *   files(path, kind, etag, sha, size, mtime_ns, ctime_ns, inode)
 *                   the last synced state of each path
 *   chunks(path, off, id, len)
 *                   the manifest of each synced file, entry by entry:
 *                   where a chunk can be found in the folder (downloads
 *                   take chunks from local files) and the base of a
 *                   manifest delta (uploads)
 *   uploads(path, session, sha)
 *                   an upload session under way: the next run resumes
 *                   it without sending again what arrived
 */
#ifndef SYNC_STATE_H
#define SYNC_STATE_H

#include "sync.h"

/** Open (or, unless @a readonly, create) the state of (@a local_root,
 *  @a url) in @a dir.  *exists = 0 when there was none: a first run.
 *  @a readonly (dry run): nothing is created or written; a missing
 *  database is an empty state.  Errors are described in *msg. */
apr_status_t sync_state_open(sync_state_t **st, const char *dir,
                             const char *local_root, const char *url,
                             int readonly, int *exists, const char **msg,
                             apr_pool_t *pool);

/** Load every record into ctx->items (has_base, base). */
apr_status_t sync_state_load(sync_state_t *st, sync_ctx_t *ctx);

/** Number of file records (for the guards). */
apr_uint64_t sync_state_file_count(sync_state_t *st);

/** A meta value, or NULL. */
const char *sync_state_meta(sync_state_t *st, const char *key,
                            apr_pool_t *pool);
apr_status_t sync_state_set_meta(sync_state_t *st, const char *key,
                                 const char *value);

/** Transactions: records written between begin and commit go together.
 *  sync_state_tick() commits and begins again when the transaction has
 *  run for a while (state writes are batched, not one per file). */
apr_status_t sync_state_begin(sync_state_t *st);
apr_status_t sync_state_commit(sync_state_t *st);
apr_status_t sync_state_tick(sync_state_t *st);

/** Write the record of @a path; @a m (may be NULL) replaces its chunks. */
apr_status_t sync_state_put(sync_state_t *st, const char *path,
                            const sync_base_t *b, const iss_manifest_t *m);

/** Drop the record of @a path (and its chunks, and any upload). */
apr_status_t sync_state_del(sync_state_t *st, const char *path);

/** The manifest recorded for @a path, built on @a params, or NULL. */
iss_manifest_t *sync_state_manifest(sync_state_t *st, const char *path,
                                    const iss_cdc_params_t *params,
                                    apr_pool_t *pool);

/** A place in the folder where chunk @a id was at the last sync. */
typedef struct sync_chunk_loc_t {
    const char *path;
    apr_uint64_t off;
    apr_uint32_t len;
} sync_chunk_loc_t;

/** Up to @a max places of chunk @a id (array of sync_chunk_loc_t). */
apr_array_header_t *sync_state_chunk_find(sync_state_t *st,
                                          const unsigned char id[SHA_LEN],
                                          int max, apr_pool_t *pool);

/** Paths of files whose recorded content is @a sha (up to @a max). */
apr_array_header_t *sync_state_sha_find(sync_state_t *st,
                                        const unsigned char sha[SHA_LEN],
                                        int max, apr_pool_t *pool);

/** The upload session kept for @a path with content @a sha, or NULL. */
const char *sync_state_upload_get(sync_state_t *st, const char *path,
                                  const unsigned char sha[SHA_LEN],
                                  apr_pool_t *pool);
apr_status_t sync_state_upload_put(sync_state_t *st, const char *path,
                                   const char *session,
                                   const unsigned char sha[SHA_LEN]);
apr_status_t sync_state_upload_del(sync_state_t *st, const char *path);

#endif /* SYNC_STATE_H */
