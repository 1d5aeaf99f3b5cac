/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * File helpers shared by the C unit tests (after tap.h):
 *
 *   testfs_rm_rf(path, pool)           remove a tree (unreadable folders
 *                                      are made readable first)
 *   testfs_mkdir(path, pool)           1 on success, else a diag and 0
 *   testfs_put(path, content, pool)    write a file (created/truncated);
 *                                      1 on success, else a diag and 0
 */
#ifndef ISS_TESTFS_H
#define ISS_TESTFS_H

#include <apr_file_io.h>
#include <apr_strings.h>

#include <string.h>
#include <sys/stat.h>

static void testfs_rm_rf(const char *path, apr_pool_t *pool)
{
    apr_pool_t *p;
    apr_dir_t *d;
    apr_finfo_t fi;

    if (apr_pool_create(&p, pool) != APR_SUCCESS)
        return;
    chmod(path, 0700);
    if (apr_dir_open(&d, path, p) == APR_SUCCESS) {
        while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d)
               == APR_SUCCESS) {
            const char *sub;

            if (!strcmp(fi.name, ".") || !strcmp(fi.name, ".."))
                continue;
            sub = apr_pstrcat(p, path, "/", fi.name, NULL);
            if (fi.filetype == APR_DIR)
                testfs_rm_rf(sub, p);
            else
                apr_file_remove(sub, p);
        }
        apr_dir_close(d);
        apr_dir_remove(path, p);
    }
    apr_pool_destroy(p);
}

static inline int testfs_mkdir(const char *path, apr_pool_t *pool)
{
    apr_status_t rv = apr_dir_make(path, APR_FPROT_OS_DEFAULT, pool);

    if (rv != APR_SUCCESS)
        diag("mkdir %s: %d", path, rv);
    return rv == APR_SUCCESS;
}

static inline int testfs_put(const char *path, const char *content,
                             apr_pool_t *pool)
{
    apr_file_t *f;
    apr_status_t rv = apr_file_open(&f, path,
                                    APR_FOPEN_WRITE | APR_FOPEN_CREATE
                                    | APR_FOPEN_TRUNCATE,
                                    APR_FPROT_OS_DEFAULT, pool);

    if (rv == APR_SUCCESS) {
        rv = apr_file_write_full(f, content, strlen(content), NULL);
        apr_file_close(f);
    }
    if (rv != APR_SUCCESS)
        diag("write %s: %d", path, rv);
    return rv == APR_SUCCESS;
}

#endif /* ISS_TESTFS_H */
