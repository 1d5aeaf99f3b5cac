/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* iss_scan_list(): path order, paging after a path, limits, what is left
 * out; iss_scan_path_cmp(). */

#include "tap.h"
#include "testfs.h"
#include "iss_scan.h"
#include "iss_davfs.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <unistd.h>

static apr_pool_t *gp;
static const char *root;

static const char *at(const char *rel)
{
    return apr_pstrcat(gp, root, "/", rel, NULL);
}

typedef struct {
    apr_array_header_t *got;
    int stop_after;
} out_t;

static int collect(void *baton, const char *rel, int is_dir)
{
    out_t *o = baton;

    APR_ARRAY_PUSH(o->got, const char *) =
        apr_pstrcat(gp, rel, is_dir ? "/" : "", NULL);
    return o->stop_after && o->got->nelts >= o->stop_after;
}

/* One listing as "a b/ b/c ..." (folders with a slash). */
static const char *list(int infinite, const char *after, apr_size_t limit,
                        int *more)
{
    out_t o = { apr_array_make(gp, 8, sizeof(const char *)), 0 };
    apr_status_t rv = iss_scan_list(root, &iss_davfs_ignore, infinite, after,
                                    limit, collect, &o, more, gp);

    if (rv != APR_SUCCESS)
        return apr_psprintf(gp, "error %d", rv);
    return apr_array_pstrcat(gp, o.got, ' ');
}

int main(void)
{
    char tmpl[] = "/tmp/iss-scan-list-XXXXXX";
    const char *all, *paged = "";
    const char *after = NULL;
    int more, pages = 0;

    apr_initialize();
    apr_pool_create(&gp, NULL);
    if (!mkdtemp(tmpl)) {
        ok(0, "mkdtemp");
        return done_testing();
    }
    root = tmpl;

    /* Path order against byte order. */
    ok(iss_scan_path_cmp("a/b", "a-c") < 0, "'/' sorts below every other byte");
    ok(iss_scan_path_cmp("a", "a/b") < 0, "a folder before its members");
    ok(iss_scan_path_cmp("a/z", "a0") < 0, "members of a before a0");
    ok(iss_scan_path_cmp("abc", "abc") == 0, "equal");
    ok(iss_scan_path_cmp("b", "a/zzz") > 0, "b after all of a/");
    ok(iss_scan_path_cmp("\xc3\xa9", "z") > 0, "UTF-8 bytes after ASCII");

    testfs_mkdir(at("a"), gp);
    testfs_mkdir(at("a/sub"), gp);
    testfs_put(at("a/b"), "1", gp);
    testfs_put(at("a/sub/x"), "1", gp);
    testfs_put(at("a-c"), "1", gp);
    testfs_put(at("a0"), "1", gp);
    testfs_mkdir(at("empty"), gp);
    testfs_put(at("z"), "1", gp);
    testfs_mkdir(at(".DAV"), gp);
    testfs_put(at(".DAV/props"), "1", gp);
    testfs_put(at(".davfs.tmp1234"), "1", gp);
    testfs_put(at("a/.davfs.tmp9"), "1", gp);
    ok(symlink("z", at("link")) == 0, "a symbolic link to a file");

    /* The ignore rule is the caller's. */
    {
        static const char *const names[] = { "a", NULL };
        static const char *const prefixes[] = { "em", NULL };
        static const iss_scan_ignore_t rule = { names, prefixes };
        out_t o = { apr_array_make(gp, 8, sizeof(const char *)), 0 };

        ok(iss_scan_list(root, NULL, 0, NULL, 0, collect, &o, &more, gp)
           == APR_SUCCESS, "level 1 without a rule");
        is_str(apr_array_pstrcat(gp, o.got, ' '),
               ".DAV/ .davfs.tmp1234 a/ a-c a0 empty/ z",
               "... .DAV and .davfs.tmp* are members");
        o.got = apr_array_make(gp, 8, sizeof(const char *));
        ok(iss_scan_list(root, &rule, 1, NULL, 0, collect, &o, &more, gp)
           == APR_SUCCESS, "infinite with a custom rule");
        is_str(apr_array_pstrcat(gp, o.got, ' '),
               ".DAV/ .DAV/props .davfs.tmp1234 a-c a0 z",
               "... its names left out, a/ not entered");
    }
    all = list(0, NULL, 0, &more);
    is_str(all, "a/ a-c a0 empty/ z", "level 1: direct members, hidden names and links left out");
    ok(!more, "... and nothing more");
    all = list(1, NULL, 0, &more);
    is_str(all, "a/ a/b a/sub/ a/sub/x a-c a0 empty/ z",
           "infinite: depth first, in path order");
    is_str(list(1, "a/sub", 0, &more), "a/sub/x a-c a0 empty/ z",
           "after a folder: its members come next");
    is_str(list(1, "a/b", 0, &more), "a/sub/ a/sub/x a-c a0 empty/ z",
           "after a file inside a folder");
    is_str(list(1, "a-c", 0, &more), "a0 empty/ z", "after a top-level file");
    is_str(list(1, "a/nonexistent", 0, &more), "a/sub/ a/sub/x a-c a0 empty/ z",
           "after a path that is gone: from where it would be");
    is_str(list(1, "zz", 0, &more), "", "after the last: nothing");
    ok(!more, "... and no more");
    is_str(list(1, NULL, 3, &more), "a/ a/b a/sub/", "limit 3");
    ok(more, "... and more to come");
    is_str(list(1, "a0", 3, &more), "empty/ z", "a last page below the limit");
    ok(!more, "... says no more");
    is_str(list(1, "a/sub/x", 3, &more), "a-c a0 empty/", "exactly the limit left");
    ok(more, "... more: z");
    is_str(list(1, "a0", 2, &more), "empty/ z", "exactly the limit, nothing after");
    ok(!more, "... no more");

    /* Paging with every limit rebuilds the whole listing, once each. */
    for (apr_size_t lim = 1; lim <= 9; lim++) {
        paged = "";
        after = NULL;
        pages = 0;
        do {
            out_t o = { apr_array_make(gp, 8, sizeof(const char *)), 0 };
            apr_status_t rv = iss_scan_list(root, &iss_davfs_ignore, 1,
                                            after, lim, collect, &o, &more,
                                            gp);

            if (rv != APR_SUCCESS || pages++ > 20)
                break;
            if (o.got->nelts) {
                const char *last = APR_ARRAY_IDX(o.got, o.got->nelts - 1,
                                                 const char *);
                apr_size_t n = strlen(last);

                after = apr_pstrmemdup(gp, last, last[n - 1] == '/' ? n - 1 : n);
                paged = *paged ? apr_pstrcat(gp, paged, " ",
                                             apr_array_pstrcat(gp, o.got, ' '),
                                             NULL)
                               : apr_array_pstrcat(gp, o.got, ' ');
            }
        } while (more);
        is_str(paged, all, apr_psprintf(gp, "pages of %d give the listing once",
                                        (int)lim));
    }

    /* A callback can stop the listing. */
    {
        out_t o = { apr_array_make(gp, 8, sizeof(const char *)), 2 };

        ok(iss_scan_list(root, &iss_davfs_ignore, 1, NULL, 0, collect, &o,
                         &more, gp) == APR_SUCCESS
           && o.got->nelts == 2, "the callback stops it");
    }
    is_str(list(1, NULL, 0, &more), all, "stable");
    ok(iss_scan_list(at("no-such"), &iss_davfs_ignore, 1, NULL, 0, collect,
                     &(out_t){ apr_array_make(gp, 1, sizeof(char *)), 0 },
                     &more, gp) != APR_SUCCESS, "a missing folder fails");

    testfs_rm_rf(root, gp);
    return done_testing();
}
