/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_reconcile — find changes made behind httpd's back and log them.
 *
 * The store keeps a stat index of every member (`f/<path>`, written by
 * each logged change and by every scan).  A reconciliation scan compares
 * the tree on disk with it (iss_scan: one readdir per directory, one
 * lstat per member, no content read) and, in one transaction, appends one
 * log entry (method "RECONCILE") with the members that differ, updates
 * the index, and notes the time of the scan in `log/scan`.
 *
 * The first scan of a store is its *baseline*: it only builds the index.
 * That is sound because the module runs it before it hands out the first
 * token (every sync answer and DAV:sync-token first run a scan when
 * iss_reconcile_last() says there never was one), so no client can hold
 * a token older than the index.  Later scans log what they find.
 *
 * A write through httpd racing a scan is logged by its own capture; at
 * worst the scan logs it once more, or leaves an index record that the
 * next scan re-reports: a member may be reported twice, never missed.
 */
#ifndef ISS_RECONCILE_H
#define ISS_RECONCILE_H

#include "iss_scan.h"
#include "iss_store.h"
#include "iss_sync_log.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Scan the tree under @a root (the location's directory), leaving out
 *  what @a ignore names (the provider's own files, see iss_scan_tree();
 *  every scan of a store must pass the same rule, or the index would
 *  flip between scans), against the index of @a store and log what
 *  changed, compacting the log per @a retention (NULL: no compaction).  *seq gets the new entry's
 *  number, 0 if none (baseline, or nothing changed); @a stats (may be
 *  NULL) what the scan saw.  Errors: the scan's (stats->error_path
 *  names the path) or the store's. */
apr_status_t iss_reconcile_run(iss_store_t *store, const char *root,
                               const iss_scan_ignore_t *ignore,
                               const iss_sync_retention_t *retention,
                               iss_scan_stats_t *stats, apr_uint64_t *seq,
                               apr_pool_t *pool);

/** Give up the baseline (it failed, and tokens are about to be handed
 *  out anyway): record a scan at time 1 µs, so that the next scan that
 *  succeeds logs everything it finds unindexed instead of taking it as
 *  known.  Over-reports, never misses. */
apr_status_t iss_reconcile_skip_baseline(iss_store_t *store);

/** When the last scan completed: 0 if there never was one;
 *  ISS_STORE_EDAMAGED if the record is unreadable (treating it as "never"
 *  would make the next scan a baseline that logs nothing). */
apr_status_t iss_reconcile_last(iss_store_t *store, apr_time_t *when,
                                apr_pool_t *pool);

#ifdef __cplusplus
}
#endif
#endif /* ISS_RECONCILE_H */
