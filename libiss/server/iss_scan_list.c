/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * Listing a served tree in path order, page by page (iss_scan_list()).
 *
 * A first sync lists every member of a collection, possibly over many
 * requests, each continuing after the last path the previous one gave.
 * The order is "path order": paths compared component by component, i.e.
 * bytes with '/' below every other byte, which is exactly the order of a
 * depth-first walk that visits each folder's names sorted.  So a page
 * that continues after P skips, without reading them, every folder that
 * lies wholly before P, and stops as soon as it has its members: a page
 * costs its own members plus the folders on the way, never the tree.
 * Only readdir() is used (its d_type says file or folder); members are
 * what the scan (and mod_dav_fs) show: regular files and folders, the
 * names of the caller's ignore rule left out.
 */

#include "iss_scan.h"

#include <apr_file_info.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

typedef struct list_t {
    const iss_scan_ignore_t *ignore;
    const char *after;        /* list only paths after this one, or NULL */
    apr_size_t limit;         /* 0: no limit */
    apr_size_t count;
    int infinite;
    int more;
    iss_scan_list_fn *fn;
    void *baton;
} list_t;

typedef struct name_t {
    const char *name;
    int dir;
} name_t;

/* Signals "limit reached" up the recursion. */
#define LIST_STOP APR_EOF

static unsigned rank(unsigned char c)
{
    return c == '\0' ? 0u : c == '/' ? 1u : (unsigned)c + 2u;
}

int iss_scan_path_cmp(const char *a, const char *b)
{
    const unsigned char *x = (const unsigned char *)a;
    const unsigned char *y = (const unsigned char *)b;

    while (*x && *x == *y) {
        x++;
        y++;
    }
    return (int)rank(*x) - (int)rank(*y);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const name_t *)a)->name, ((const name_t *)b)->name);
}

/* Whether @a after lies below folder @a rel ("rel/..."). */
static int inside(const char *rel, const char *after)
{
    apr_size_t n = strlen(rel);

    return strncmp(after, rel, n) == 0 && after[n] == '/';
}

static apr_status_t list_dir(list_t *l, const char *fs, const char *rel,
                             apr_pool_t *pool)
{
    apr_array_header_t *names;
    apr_pool_t *p;
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_status_t rv;
    int i;

    if ((rv = apr_pool_create(&p, pool)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = apr_dir_open(&d, fs, p)) != APR_SUCCESS) {
        apr_pool_destroy(p);
        return rv;
    }
    names = apr_array_make(p, 64, sizeof(name_t));
    while ((rv = apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d))
           == APR_SUCCESS || rv == APR_INCOMPLETE) {
        name_t *n;

        if (iss_scan_ignored(l->ignore, fi.name)) {
            continue;
        }
        if (!(fi.valid & APR_FINFO_TYPE)) {
            /* No d_type from this file system: ask lstat. */
            const char *path = apr_pstrcat(p, fs, "/", fi.name, NULL);

            if (apr_stat(&fi, path, APR_FINFO_TYPE | APR_FINFO_LINK, p)
                != APR_SUCCESS) {
                continue;             /* gone meanwhile */
            }
        }
        if (fi.filetype != APR_REG && fi.filetype != APR_DIR) {
            continue;
        }
        n = apr_array_push(names);
        n->name = apr_pstrdup(p, fi.name);
        n->dir = fi.filetype == APR_DIR;
    }
    apr_dir_close(d);
    if (rv != APR_ENOENT) {
        apr_pool_destroy(p);
        return rv;
    }
    qsort(names->elts, (size_t)names->nelts, sizeof(name_t), by_name);
    rv = APR_SUCCESS;
    for (i = 0; i < names->nelts && rv == APR_SUCCESS; i++) {
        const name_t *n = &APR_ARRAY_IDX(names, i, name_t);
        const char *crel = rel ? apr_pstrcat(p, rel, "/", n->name, NULL)
                               : n->name;
        const char *cfs = apr_pstrcat(p, fs, "/", n->name, NULL);

        int cmp = l->after ? iss_scan_path_cmp(crel, l->after) : 1;

        if (cmp <= 0) {
            /* At or before the page's start: only the start itself (its
             * members follow it) or a folder holding it may have members
             * to list. */
            if (n->dir && l->infinite && (cmp == 0 || inside(crel, l->after))) {
                rv = list_dir(l, cfs, crel, p);
            }
            continue;
        }
        l->after = NULL;              /* past it: everything else counts */
        if (l->limit && l->count == l->limit) {
            l->more = 1;
            rv = LIST_STOP;
            break;
        }
        l->count++;
        if (l->fn(l->baton, crel, n->dir)) {
            rv = LIST_STOP;
            break;
        }
        if (n->dir && l->infinite) {
            rv = list_dir(l, cfs, crel, p);
        }
    }
    apr_pool_destroy(p);
    return rv;
}

apr_status_t iss_scan_list(const char *dir, const iss_scan_ignore_t *ignore,
                           int infinite, const char *after,
                           apr_size_t limit, iss_scan_list_fn *fn,
                           void *baton, int *more, apr_pool_t *pool)
{
    list_t l = { ignore, after && *after ? after : NULL, limit, 0, infinite,
                 0, fn, baton };
    apr_status_t rv = list_dir(&l, dir, NULL, pool);

    *more = l.more;
    return rv == LIST_STOP ? APR_SUCCESS : rv;
}
