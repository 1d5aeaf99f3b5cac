/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_davfs — what mod_dav_fs keeps in the tree it serves besides the
 * members, in one place for everything that reads such a tree: the
 * module (its scans, listings and PATCH's temporary files) and
 * iss-state (its scans, which must see exactly what the module's see).
 *
 * mod_dav_fs (httpd 2.4, modules/dav/fs/repos.c; its header is not
 * installed) keeps dead properties and locks in a directory ".DAV" of
 * every folder (DAV_FS_STATE_DIR), and writes a PUT body to a temporary
 * file ".davfs.tmp" + 6 characters beside its target before renaming it
 * (DAV_FS_TMP_PREFIX).  Its walker leaves both out of every listing.
 *
 * The scan itself (iss_scan.h) knows no provider: this is the rule the
 * callers pass it.  Another provider brings its own rule.
 */
#ifndef ISS_DAVFS_H
#define ISS_DAVFS_H

#include "iss_scan.h"

#ifdef __cplusplus
extern "C" {
#endif

/** mod_dav_fs's state directory in every folder (DAV_FS_STATE_DIR). */
#define ISS_DAVFS_STATE_DIR  ".DAV"
/** The start of mod_dav_fs's temporary files (DAV_FS_TMP_PREFIX);
 *  mod_iss's PATCH writes its own under the same prefix, so that every
 *  reader of the tree leaves them out too. */
#define ISS_DAVFS_TMP_PREFIX ".davfs.tmp"

/** The ignore rule of a tree served by mod_dav_fs: ".DAV" and
 *  ".davfs.tmp*". */
extern const iss_scan_ignore_t iss_davfs_ignore;

/** Whether @a name is a temporary file name of mod_dav_fs's PUT or of
 *  mod_iss's PATCH: ISS_DAVFS_TMP_PREFIX and exactly the 6 letters or
 *  digits mkstemp() puts in place of "XXXXXX". */
int iss_davfs_is_tmp_name(const char *name);

/**
 * Remove the temporary files a killed writer left in the tree @a root
 * (a PUT or PATCH under way when httpd died: kill -9, a crash, power
 * loss): regular files with an iss_davfs_is_tmp_name() name whose
 * modification time is older than @a now - @a min_age, in every folder
 * of the tree (mod_dav_fs's .DAV folders left out; symbolic links are
 * neither followed nor removed).  A writer that is alive touches its file
 * as it writes: an age of an hour or more never takes a file under way.
 * Nothing else is ever removed.  Counts into *removed and *freed (bytes);
 * folders that cannot be read are skipped, the first error is returned
 * after the whole walk.
 */
apr_status_t iss_davfs_gc_tmp(const char *root, apr_interval_time_t min_age,
                              apr_time_t now, apr_uint32_t *removed,
                              apr_uint64_t *freed, apr_pool_t *pool);

#ifdef __cplusplus
}
#endif
#endif /* ISS_DAVFS_H */
