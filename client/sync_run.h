/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * sync_run — one run of iss-sync (sync.h lists its steps): the guards,
 * the plan, and carrying it out in an order that loses nothing:
 *
 *   1. folders are created (local and server), parents first; records
 *      refreshed or dropped; conflicts, renames, uploads and downloads,
 *      in path order (downloads before deletions, so that a file moved
 *      on the server is copied from its old local place, not fetched);
 *   2. files are deleted, each checked again right before (locally: the
 *      same identity as scanned; on the server: If-Match);
 *   3. folders are deleted, deepest first, only when empty.
 *
 * Each result is recorded in the state after the operation succeeded;
 * the new sync token only when every item succeeded (otherwise the next
 * run lists the same changes again, and what was done compares equal).
 */
#ifndef SYNC_RUN_H
#define SYNC_RUN_H

#include "sync.h"

/** Run the sync; returns the exit code (SYNC_EXIT_*). */
int sync_run(sync_ctx_t *ctx);

#endif /* SYNC_RUN_H */
