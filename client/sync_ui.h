/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * sync_ui — what iss-sync tells its user.
 *
 *  - errors and warnings go to stderr ("iss-sync: ..."), always (also
 *    with --quiet: a warning is something the user must act on);
 *  - one line per action on stdout ("upload PATH", "download PATH",
 *    "delete-local PATH", ...), unless --quiet; a dry run prints the
 *    same lines for what it would do;
 *  - -v adds what the client found and why it decided (stdout);
 *  - a progress line (files, bytes, rate, ETA) rewritten in place on
 *    stdout when stdout is a terminal, never otherwise;
 *  - the summary line at the end (unless --quiet).
 */
#ifndef SYNC_UI_H
#define SYNC_UI_H

#include "sync.h"

#include <apr_general.h>

/** Create the UI for @a opts. */
sync_ui_t *sync_ui_create(const sync_opts_t *opts, apr_pool_t *pool);

/** "iss-sync: error: ..." on stderr. */
void sync_ui_error(sync_ui_t *ui, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** "iss-sync: warning: ..." on stderr. */
void sync_ui_warn(sync_ui_t *ui, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** A line on stdout with -v only. */
void sync_ui_info(sync_ui_t *ui, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** An action line on stdout: "@a verb @a path[ @a extra]". */
void sync_ui_action(sync_ui_t *ui, const char *verb, const char *path,
                    const char *extra);

/** The work ahead, for the progress line. */
void sync_ui_plan(sync_ui_t *ui, apr_uint64_t files, apr_uint64_t bytes);

/** One item is done (its bytes counted in the plan). */
void sync_ui_item_done(sync_ui_t *ui, apr_uint64_t bytes);

/** Bytes on the wire so far in the current request (from sync_http). */
void sync_ui_wire(void *ui, apr_uint64_t sent, apr_uint64_t received);

/** A request is over: its bytes move to the run's total. */
void sync_ui_request_done(sync_ui_t *ui);

/** Erase the progress line (before the summary or an exit). */
void sync_ui_finish(sync_ui_t *ui);

/** The summary line. */
void sync_ui_summary(sync_ui_t *ui, const sync_stats_t *st);

/** "1.5 MB" (decimal units, as the summary prints them). */
const char *sync_ui_bytes(apr_uint64_t n, apr_pool_t *pool);

#endif /* SYNC_UI_H */
