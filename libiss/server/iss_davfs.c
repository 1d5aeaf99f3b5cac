/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "iss_davfs.h"

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_strings.h>

#include <stddef.h>
#include <string.h>

static const char *const names[] = { ISS_DAVFS_STATE_DIR, NULL };
static const char *const prefixes[] = { ISS_DAVFS_TMP_PREFIX, NULL };

const iss_scan_ignore_t iss_davfs_ignore = { names, prefixes };

int iss_davfs_is_tmp_name(const char *name)
{
    const apr_size_t n = sizeof(ISS_DAVFS_TMP_PREFIX) - 1;
    int i;

    if (strncmp(name, ISS_DAVFS_TMP_PREFIX, n) != 0) {
        return 0;
    }
    for (i = 0; i < 6; i++) {
        char c = name[n + (apr_size_t)i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9'))) {
            return 0;
        }
    }
    return name[n + 6] == '\0';
}

typedef struct gc_t {
    apr_time_t cutoff;
    apr_uint32_t *removed;
    apr_uint64_t *freed;
    apr_status_t first;
} gc_t;

static void keep_first(gc_t *g, apr_status_t rv)
{
    if (g->first == APR_SUCCESS && rv != APR_SUCCESS) {
        g->first = rv;
    }
}

/* One folder, then its subfolders (depth bounded by the path's length:
 * the walk never follows a link, so it cannot loop). */
static void gc_dir(gc_t *g, const char *dir, apr_pool_t *pool)
{
    apr_pool_t *p;
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_status_t rv;

    if (apr_pool_create(&p, pool) != APR_SUCCESS) {
        keep_first(g, APR_ENOMEM);
        return;
    }
    if ((rv = apr_dir_open(&d, dir, p)) != APR_SUCCESS) {
        keep_first(g, rv);
        apr_pool_destroy(p);
        return;
    }
    while ((rv = apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE
                              | APR_FINFO_LINK, d)) == APR_SUCCESS
           || rv == APR_INCOMPLETE) {
        const char *path;

        if (fi.name == NULL || strcmp(fi.name, ".") == 0
            || strcmp(fi.name, "..") == 0) {
            continue;
        }
        path = apr_pstrcat(p, dir, "/", fi.name, NULL);
        if (fi.filetype == APR_DIR) {
            if (strcmp(fi.name, ISS_DAVFS_STATE_DIR) != 0) {
                gc_dir(g, path, p);
            }
        }
        else if (iss_davfs_is_tmp_name(fi.name)) {
            apr_finfo_t st;

            /* lstat: a regular file, old enough (never a link's target) */
            rv = apr_stat(&st, path, APR_FINFO_LINK | APR_FINFO_TYPE
                          | APR_FINFO_MTIME | APR_FINFO_SIZE, p);
            if (rv == APR_SUCCESS && st.filetype == APR_REG
                && st.mtime < g->cutoff) {
                rv = apr_file_remove(path, p);
                if (rv == APR_SUCCESS) {
                    (*g->removed)++;
                    *g->freed += (apr_uint64_t)st.size;
                }
            }
            if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOENT(rv)) {
                keep_first(g, rv);
            }
        }
    }
    if (!APR_STATUS_IS_ENOENT(rv)) {
        keep_first(g, rv);
    }
    apr_dir_close(d);
    apr_pool_destroy(p);
}

apr_status_t iss_davfs_gc_tmp(const char *root, apr_interval_time_t min_age,
                              apr_time_t now, apr_uint32_t *removed,
                              apr_uint64_t *freed, apr_pool_t *pool)
{
    gc_t g;

    *removed = 0;
    *freed = 0;
    g.cutoff = now - min_age;
    g.removed = removed;
    g.freed = freed;
    g.first = APR_SUCCESS;
    gc_dir(&g, root, pool);
    return g.first;
}
