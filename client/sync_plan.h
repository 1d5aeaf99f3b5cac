/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * sync_plan — what to do with each path: a three-way comparison of the
 * folder and the server with the last synced state, never a comparison
 * of timestamps.  Pure: no I/O (unit/test_sync_plan.c runs it on
 * tables).
 *
 * "Changed" on a side means: present now and not at the last sync, or
 * the other way round, or of another kind, or (files) other content —
 * locally another SHA-256 (hashed only when size/mtime/ctime/inode
 * moved), on the server another ETag (compared weakly) unless its
 * I:repr-digest says the content is the same.
 *
 *  - changed on one side only: carried to the other (upload, download,
 *    delete there, mkdir there);
 *  - changed on both: the same content (or both gone, or both folders)
 *    is recorded; different content is a conflict (both kept); a
 *    deletion against a change: the change wins and comes back to the
 *    side that deleted it (an edit beats a delete, both ways);
 *  - a folder is deleted on a side only if nothing under it survives on
 *    the other side; otherwise it is re-created where it was deleted;
 *  - after a server forgot our token (recovery), nothing is deleted on
 *    either side: what is missing on one side is copied from the other;
 *  - a new local file with the inode, size and mtime of a file deleted
 *    locally is a rename: a MOVE on the server, no upload;
 *  - names the folder's file system folds together are skipped, both.
 */
#ifndef SYNC_PLAN_H
#define SYNC_PLAN_H

#include "sync.h"

/** Make every item's remote part explicit: items the listing did not
 *  mention are as at the last sync (a change list) or absent (a full
 *  listing). */
void sync_plan_resolve(sync_ctx_t *ctx);

/** Decide the action of every item of ctx->order (sorted). */
void sync_plan_decide(sync_ctx_t *ctx);

/** The guards, checked before anything is done: NULL if the run may go
 *  on, else why not.  @a local_entries is what the folder's top level
 *  holds (0: empty). */
const char *sync_plan_guard(sync_ctx_t *ctx, apr_uint64_t local_entries,
                            apr_pool_t *pool);

/** The word for an action in output lines ("upload", "download",
 *  "delete-local", ...), NULL for ACT_NONE, ACT_RECORD, ACT_FORGET. */
const char *sync_plan_verb(sync_action_e a);

#endif /* SYNC_PLAN_H */
