/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * Reconciliation scans run by the module: the baseline before the first
 * token is handed out, and then every ISSReconcileInterval seconds, run
 * by the sync request that finds one due.  Admins run one on demand with
 * `iss-state STATEDIR scan DIRECTORY` (tools/iss-state.c).
 */

#include "mod_iss_sync.h"
#include "mod_iss_config.h"
#include "mod_iss_state.h"
#include "iss_reconcile.h"

#include <apr_strings.h>

/* Whether a scan is due now: *mark (a restart of the machine,
 * iss_store_rescan_due()), *last (the last scan; 0 never) and the
 * interval.  An error reading them is returned only where a scan must
 * run before the answer (a mark, or when the mark cannot be read). */
static apr_status_t scan_due(request_rec *r, iss_store_t *store,
                             apr_int64_t interval, const char **mark,
                             apr_time_t *last, int *due)
{
    apr_status_t rv;

    *due = 0;
    if ((rv = iss_store_rescan_due(store, mark, r->pool)) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01186)
                      "cannot tell whether %s must be scanned after a "
                      "restart of the machine: %s", iss_state_root_fs(r),
                      iss_store_last_error(store));
        return rv;
    }
    if ((rv = iss_reconcile_last(store, last, r->pool)) != APR_SUCCESS) {
        return *mark ? rv : APR_SUCCESS;
    }
    *due = *mark || *last == 0
           || (interval > 0
               && apr_time_now() - *last >= apr_time_from_sec(interval));
    return APR_SUCCESS;
}

/* The location's scan lock (<ISSStateDir>/iss-store.scanlock), held
 * until *lock is closed; waits for the holder. */
static apr_status_t scan_lock(request_rec *r, apr_file_t **lock)
{
    const char *path = apr_pstrcat(r->pool, iss_config_dir(r)->state_dir,
                                   "/iss-store.scanlock", NULL);
    apr_status_t rv = apr_file_open(lock, path, APR_FOPEN_WRITE
                                    | APR_FOPEN_CREATE, APR_FPROT_UREAD
                                    | APR_FPROT_UWRITE | APR_FPROT_GREAD,
                                    r->pool);

    if (rv == APR_SUCCESS
        && (rv = apr_file_lock(*lock, APR_FLOCK_EXCLUSIVE)) != APR_SUCCESS) {
        apr_file_close(*lock);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01187)
                      "cannot lock %s for a scan", path);
    }
    return rv;
}

apr_status_t iss_sync_reconcile_if_due(request_rec *r, iss_store_t *store)
{
    const char *root = iss_state_root_fs(r);
    apr_int64_t interval = iss_config_reconcile(iss_config_dir(r));
    iss_scan_stats_t stats = { 0 };
    apr_time_t last, start;
    apr_uint64_t seq;
    const char *mark = NULL, *what;
    apr_file_t *lock;
    apr_status_t rv;
    int due;

    if (root == NULL) {
        return APR_SUCCESS;
    }
    /* After a restart of the machine the store may lack lazy commits
     * (iss_store_rescan_due()): no answer goes out before the files were
     * compared with it again. */
    if ((rv = scan_due(r, store, interval, &mark, &last, &due))
        != APR_SUCCESS || !due) {
        return rv;
    }
    /* One scan at a time per store: after a restart of the machine every
     * client's first sync would start one.  The others wait for it, then
     * find nothing due. */
    if ((rv = scan_lock(r, &lock)) != APR_SUCCESS) {
        return mark ? rv : APR_SUCCESS;
    }
    if ((rv = scan_due(r, store, interval, &mark, &last, &due))
        != APR_SUCCESS || !due) {
        apr_file_close(lock);
        return rv;
    }
    what = last == 0 ? "baseline" : mark ? "restart" : "reconciliation";
    start = apr_time_now();
    rv = iss_reconcile_run(store, root, iss_state_ignore(r),
                           iss_config_retention(iss_config_dir(r)), &stats,
                           &seq, r->pool);
    apr_file_close(lock);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01046)
                      "%s scan of %s failed: %s%s", what, root,
                      stats.error_path
                          ? apr_pstrcat(r->pool, "cannot read ",
                                        stats.error_path, NULL)
                          : iss_store_last_error(store),
                      last == 0 ? "; the next scan that succeeds logs "
                                  "every member it finds as changed"
                      : mark ? "; sync answers are refused until a scan "
                               "succeeds" : "");
        if (last == 0) {
            /* Tokens go out now: a later baseline would hide what
             * changes meanwhile behind httpd's back. */
            iss_reconcile_skip_baseline(store);
        }
        return mark ? rv : APR_SUCCESS;
    }
    ap_log_rerror(APLOG_MARK, mark && last ? APLOG_NOTICE
                                : last ? APLOG_INFO : APLOG_DEBUG, 0, r,
                  ISSLOGNO(01047)
                  "%s scan of %s: %" APR_UINT64_T_FMT " directories, %"
                  APR_UINT64_T_FMT " files, %" APR_UINT64_T_FMT " created, %"
                  APR_UINT64_T_FMT " modified, %" APR_UINT64_T_FMT
                  " removed in %" APR_TIME_T_FMT " ms", what, root,
                  stats.dirs, stats.files, stats.created, stats.modified,
                  stats.removed, (apr_time_now() - start) / 1000);
    return APR_SUCCESS;
}
