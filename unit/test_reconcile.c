/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* iss_reconcile: the first scan of a store only builds the index; later
 * scans log exactly what changed on disk behind httpd's back in one
 * RECONCILE entry and bring the index up to date; a scan that fails logs
 * nothing and leaves the index and the scan time alone. */

#include "iss_reconcile.h"
#include "iss_change.h"
#include "iss_davfs.h"
#include "iss_scan.h"
#include "iss_store.h"
#include "iss_sync_log.h"
#include "tap.h"
#include "testfs.h"
#include "teststore.h"

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include <apr_time.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static apr_pool_t *gp;          /* test-wide pool */
static char *base;              /* mkdtemp directory, removed at the end */
static const char *root;        /* the served tree */

/* ---- files -------------------------------------------------------------- */

static const char *at(const char *rel)
{
    return apr_pstrcat(gp, root, "/", rel, NULL);
}

static int mk(const char *rel)
{
    return testfs_mkdir(at(rel), gp);
}

static int put(const char *rel, const char *content)
{
    return testfs_put(at(rel), content, gp);
}


/* ---- store -------------------------------------------------------------- */

static iss_store_t *open_store(const char *name)
{
    const char *dir = apr_pstrcat(gp, base, "/", name, NULL);
    iss_store_t *s = NULL;
    apr_status_t rv = apr_dir_make(dir, APR_FPROT_OS_DEFAULT, gp);

    if (rv == APR_SUCCESS)
        rv = iss_store_open(&s, dir, "sdbm", NULL, NULL, NULL, gp);
    if (rv != APR_SUCCESS) {
        diag("store %s: %d %s", dir, rv, s ? iss_store_last_error(s) : "");
        return NULL;
    }
    iss_store_set_sync(s, 0);
    return s;
}

static const char *get_s(iss_store_t *s, const char *key)
{
    return teststore_get(s, key, gp);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *sorted_join(apr_array_header_t *a, char sep)
{
    qsort(a->elts, (size_t)a->nelts, sizeof(char *), cmp_str);
    return apr_array_pstrcat(gp, a, sep);
}

static int snap_one(void *baton, const void *key, apr_size_t klen,
                    const void *val, apr_size_t vlen)
{
    apr_array_header_t *a = baton;

    APR_ARRAY_PUSH(a, char *) = apr_psprintf(gp, "%.*s=%.*s", (int)klen,
                                             (const char *)key, (int)vlen,
                                             (const char *)val);
    return 0;
}

/* Every f/ record as "f/path=value", sorted, one per line. */
static const char *index_snapshot(iss_store_t *s)
{
    apr_array_header_t *a = apr_array_make(gp, 16, sizeof(char *));
    apr_status_t rv = iss_store_iterate(s, "f/", 2, snap_one, a, gp);

    if (rv != APR_SUCCESS)
        return apr_psprintf(gp, "<iterate error %d>", rv);
    return sorted_join(a, '\n');
}

typedef struct {
    apr_array_header_t *paths;
    int bad;
} check_t;

static int check_one(void *baton, const void *key, apr_size_t klen,
                     const void *val, apr_size_t vlen)
{
    check_t *c = baton;
    const char *path = apr_pstrmemdup(gp, (const char *)key + 2, klen - 2);
    iss_scan_entry_t idx, now;

    APR_ARRAY_PUSH(c->paths, const char *) = path;
    if (iss_scan_entry_decode(val, vlen, &idx) != APR_SUCCESS) {
        diag("f/%s: value does not decode", path);
        c->bad++;
    }
    else if (iss_scan_stat(at(path), &now, gp) != APR_SUCCESS
             || !iss_scan_entry_same(&idx, &now) || idx.size != now.size
             || idx.type != now.type) {
        diag("f/%s: does not describe the member on disk", path);
        c->bad++;
    }
    return 0;
}

/* The index names exactly @a want (sorted, '|' separated) and every
 * record describes what is on disk now. */
static int index_is(iss_store_t *s, const char *want)
{
    check_t c = { apr_array_make(gp, 16, sizeof(char *)), 0 };
    const char *got;

    if (iss_store_iterate(s, "f/", 2, check_one, &c, gp) != APR_SUCCESS)
        return 0;
    got = sorted_join(c.paths, '|');
    if (strcmp(got, want)) {
        diag("index: %s", got);
        diag(" want: %s", want);
        return 0;
    }
    return c.bad == 0;
}

/* ---- the log ------------------------------------------------------------ */

static apr_uint64_t log_last(iss_store_t *s)
{
    apr_uint64_t last = 9999, first = 9999;

    if (iss_sync_log_bounds(s, &last, &first, gp) != APR_SUCCESS)
        return 9999;
    return last;
}

typedef struct {
    int calls;
    const char *method;
    const char *changes;        /* "C0:path|..." sorted */
} entry_t;

static int entry_fn(void *baton, apr_uint64_t seq, apr_time_t when,
                    const char *method, const apr_array_header_t *changes)
{
    entry_t *e = baton;
    apr_array_header_t *a = apr_array_make(gp, 8, sizeof(char *));
    int i;

    (void)seq;
    (void)when;
    e->calls++;
    e->method = apr_pstrdup(gp, method);
    for (i = 0; i < changes->nelts; i++) {
        const iss_change_t *c = &APR_ARRAY_IDX(changes, i, iss_change_t);

        APR_ARRAY_PUSH(a, char *) = apr_psprintf(gp, "%c%d:%s", (char)c->kind,
                                                 c->collection, c->path);
    }
    e->changes = sorted_join(a, '|');
    return 0;
}

static entry_t read_entry(iss_store_t *s, apr_uint64_t seq)
{
    entry_t e = { 0, "", "" };
    apr_status_t rv = iss_sync_log_read(s, seq, seq, entry_fn, &e, gp);

    if (rv != APR_SUCCESS)
        diag("read %" APR_UINT64_T_FMT ": %d", seq, rv);
    return e;
}

static apr_time_t scan_time(iss_store_t *s)
{
    apr_time_t when = -1;

    if (iss_reconcile_last(s, &when, gp) != APR_SUCCESS)
        return -1;
    return when;
}

static apr_status_t run(iss_store_t *s, const char *dir,
                        const iss_sync_retention_t *ret,
                        iss_scan_stats_t *st, apr_uint64_t *seq)
{
    apr_status_t rv;

    *seq = 9999;
    memset(st, 0, sizeof(*st));
    rv = iss_reconcile_run(s, dir, &iss_davfs_ignore, ret, st, seq, gp);
    if (rv != APR_SUCCESS)
        diag("reconcile: %d (%s)", rv,
             st->error_path ? st->error_path : "no path");
    return rv;
}

/* ---- tests -------------------------------------------------------------- */

#define UTF "sp ace \xc3\xa9.txt"
#define IDX0 "a.txt|b.txt|keep|keep/k|old|old/sub|old/sub/y|old/x|" UTF
#define IDX1 "a.txt|keep|keep/k|new.txt|newdir|newdir/inner|" UTF
#define IDX2 "a.txt|a.txt/m|keep|new.txt|newdir|newdir/inner|newdir/more|" UTF

/* A scan that fails: error, no entry, index and scan time unchanged. */
static void failing_run(iss_store_t *s, const char *dir, const char *what,
                        const char *want_error_path)
{
    const char *before = index_snapshot(s);
    apr_uint64_t last = log_last(s), seq;
    apr_time_t when = scan_time(s);
    iss_scan_stats_t st;
    apr_status_t rv;

    memset(&st, 0, sizeof(st));
    rv = iss_reconcile_run(s, dir, &iss_davfs_ignore, NULL, &st, &seq,
                           gp);

    ok(rv != APR_SUCCESS, "%s: the run fails", what);
    is_int(seq, 0, "%s: seq 0", what);
    ok(st.error_path && strstr(st.error_path, want_error_path),
       "%s: error_path names %s (%s)", what, want_error_path,
       st.error_path ? st.error_path : "NULL");
    is_int(log_last(s), last, "%s: no entry", what);
    is_str(index_snapshot(s), before, "%s: index unchanged", what);
    ok(scan_time(s) == when, "%s: scan time unchanged", what);
}

static void test_reconcile(void)
{
    iss_store_t *s = open_store("state");
    iss_scan_stats_t st;
    apr_uint64_t seq;
    apr_time_t t1, t2, t3;
    const char *snap;
    entry_t e;

    if (!s) {
        ok(0, "open store");
        return;
    }
    ok(mk("old") && mk("old/sub") && mk("keep") && mk(".DAV")
       && put("a.txt", "aaa") && put("b.txt", "bb") && put("old/x", "x")
       && put("old/sub/y", "y") && put("keep/k", "k") && put(UTF, "u")
       && put(".DAV/props", "p") && put(".davfs.tmp123", "t"),
       "build the tree");
    ok(scan_time(s) == 0, "never scanned: iss_reconcile_last 0");

    /* baseline */
    is_int(run(s, root, NULL, &st, &seq), APR_SUCCESS, "baseline run");
    is_int(seq, 0, "baseline: seq 0");
    is_int(log_last(s), 0, "baseline: no entry appended");
    ok(index_is(s, IDX0), "baseline: index built for every member");
    ok(st.files == 6 && st.dirs == 3, "baseline stats: 6 files, 3 dirs "
       "(%" APR_UINT64_T_FMT ", %" APR_UINT64_T_FMT ")", st.files, st.dirs);
    t1 = scan_time(s);
    ok(t1 > 0, "baseline: log/scan set");
    ok(get_s(s, "log/scan") != NULL, "log/scan key present");

    /* nothing changed */
    snap = index_snapshot(s);
    is_int(run(s, root, NULL, &st, &seq), APR_SUCCESS, "second run");
    is_int(seq, 0, "nothing changed: seq 0");
    is_int(log_last(s), 0, "nothing changed: no entry");
    is_str(index_snapshot(s), snap, "nothing changed: index unchanged");
    t2 = scan_time(s);
    ok(t2 >= t1, "scan time noted again");

    /* changes behind httpd's back */
    ok(put("new.txt", "new") && mk("newdir") && put("newdir/inner", "in")
       && put("a.txt", "aaaa-longer")
       && apr_file_remove(at("b.txt"), gp) == APR_SUCCESS,
       "create, modify, delete files; create a directory");
    testfs_rm_rf(at("old"), gp);
    is_int(run(s, root, NULL, &st, &seq), APR_SUCCESS, "run after changes");
    is_int(seq, 1, "one entry appended: 1");
    is_int(log_last(s), 1, "log holds entry 1");
    e = read_entry(s, 1);
    is_int(e.calls, 1, "entry 1 readable");
    is_str(e.method, "RECONCILE", "entry method RECONCILE");
    is_str(e.changes,
           "C0:new.txt|C0:newdir/inner|C1:newdir|M0:a.txt|R0:b.txt|"
           "R0:old/sub/y|R0:old/x|R1:old|R1:old/sub",
           "entry lists exactly the changed members, with kinds");
    ok(st.created == 3 && st.modified == 1 && st.removed == 5,
       "stats: 3 created, 1 modified, 5 removed");
    ok(index_is(s, IDX1), "index updated to the tree");
    {
        const char *v = get_s(s, "f/a.txt");
        iss_scan_entry_t ie;

        ok(v && iss_scan_entry_decode(v, strlen(v), &ie) == APR_SUCCESS
           && ie.size == 11, "index of the modified file has its new size");
    }
    t3 = scan_time(s);
    ok(t3 >= t2, "scan time noted with the entry");

    /* third run: nothing */
    snap = index_snapshot(s);
    is_int(run(s, root, NULL, &st, &seq), APR_SUCCESS, "third run");
    is_int(seq, 0, "third run: seq 0");
    is_int(log_last(s), 1, "third run: no entry");
    is_str(index_snapshot(s), snap, "third run: index unchanged");

    /* a damaged index record: its member is reported, the record fixed */
    iss_store_put(s, "f/keep/k", 8, "garbage", 7);
    is_int(run(s, root, NULL, &st, &seq), APR_SUCCESS,
           "run over a damaged index record");
    ok(seq == 2 && strstr(read_entry(s, 2).changes, "0:keep/k") != NULL,
       "the member of a damaged record is reported (entry 2)");
    ok(index_is(s, IDX1), "the damaged record is rewritten");

    /* retention applies to reconciliation entries */
    ok(put("keep/k", "kk"), "modify keep/k");
    is_int(run(s, root, &(iss_sync_retention_t){ 0, 1 }, &st, &seq),
           APR_SUCCESS, "run with count=1");
    {
        apr_uint64_t last = 0, first = 0;

        ok(seq == 3 && iss_sync_log_bounds(s, &last, &first, gp)
                       == APR_SUCCESS && last == 3 && first == 3,
           "entry 3 appended, older ones compacted");
    }
    is_str(read_entry(s, 3).changes, "M0:keep/k", "entry 3: keep/k modified");

    /* failures */
    if (geteuid() != 0) {
        ok(chmod(at("keep"), 0) == 0, "make keep/ unreadable");
        ok(put("newdir/more", "m"), "and change something elsewhere");
        failing_run(s, root, "unreadable subdirectory", "keep");
        chmod(at("keep"), 0755);
        apr_file_remove(at("newdir/more"), gp);
    }
    else {
        skip(8, "running as root: chmod 000 does not stop root from reading "
             "a directory");
    }
    ok(put("newdir/more", "m"), "a change the failing runs must not log");
    failing_run(s, at("a.txt"), "root is a regular file", "a.txt");
    failing_run(s, at("nowhere"), "root does not exist", "nowhere");
    is_int(run(s, root, NULL, &st, &seq), APR_SUCCESS,
           "a good run afterwards");
    ok(seq == 4 && !strcmp(read_entry(s, 4).changes, "C0:newdir/more"),
       "it logs the change the failed runs did not");

    /* members that change type: removed, then created */
    ok(apr_file_remove(at("a.txt"), gp) == APR_SUCCESS && mk("a.txt")
       && put("a.txt/m", "m"), "a.txt becomes a directory");
    testfs_rm_rf(at("keep"), gp);
    ok(put("keep", "now a file"), "keep/ becomes a file");
    is_int(run(s, root, NULL, &st, &seq), APR_SUCCESS,
           "run after type changes");
    is_int(seq, 5, "entry 5");
    is_str(read_entry(s, 5).changes,
           "C0:a.txt/m|C0:keep|C1:a.txt|R0:a.txt|R0:keep/k|R1:keep",
           "type changes: removal and creation of the same path");
    ok(index_is(s, IDX2), "index describes the new types");
}

static void test_failed_baseline(void)
{
    iss_store_t *s = open_store("state2");
    iss_scan_stats_t st;
    apr_uint64_t seq = 9999;

    memset(&st, 0, sizeof(st));
    if (!s) {
        ok(0, "open second store");
        return;
    }
    ok(iss_reconcile_run(s, at("nowhere"), &iss_davfs_ignore, NULL, &st,
                         &seq, gp) != APR_SUCCESS, "first run on a missing root fails");
    is_int(seq, 0, "seq 0");
    ok(scan_time(s) == 0, "a failed baseline leaves iss_reconcile_last at 0");
    is_str(index_snapshot(s), "", "and builds no index");
    is_int(log_last(s), 0, "and appends nothing");
    is_int(run(s, root, NULL, &st, &seq), APR_SUCCESS,
           "then a baseline on the real tree");
    ok(seq == 0 && log_last(s) == 0 && scan_time(s) > 0,
       "which appends nothing and notes the scan");
    ok(index_is(s, IDX2), "and indexes every member");
}

/* The module gives up a failed baseline before it hands out tokens: the
 * next scan that works logs everything unindexed instead of hiding it. */
static void test_skipped_baseline(void)
{
    iss_store_t *s = open_store("state3");
    iss_scan_stats_t st;
    apr_uint64_t seq = 0;
    apr_time_t when = 0;

    memset(&st, 0, sizeof(st));
    if (!s) {
        ok(0, "open third store");
        return;
    }
    ok(iss_reconcile_run(s, at("nowhere"), &iss_davfs_ignore, NULL, &st,
                         &seq, gp) != APR_SUCCESS, "a baseline that fails");
    is_int(iss_reconcile_skip_baseline(s), APR_SUCCESS, "is given up");
    ok(iss_reconcile_last(s, &when, gp) == APR_SUCCESS && when > 0,
       "a scan counts as done");
    is_int(run(s, root, NULL, &st, &seq), APR_SUCCESS, "the next scan works");
    ok(seq == 1 && log_last(s) == 1, "and logs an entry");
    ok(st.created > 0 && st.created == st.files + st.dirs,
       "with every member as created");
}

/* The ignore rule is the caller's: a name it leaves out is neither
 * indexed nor logged, and mod_dav_fs's names are members under a rule
 * that does not name them. */
static void test_custom_rule(void)
{
    static const char *const names[] = { "cache", NULL };
    static const char *const prefixes[] = { "~$", NULL };
    static const iss_scan_ignore_t rule = { names, prefixes };
    iss_store_t *s = open_store("state4");
    const char *saved_root = root, *tree = at("ruled");
    iss_scan_stats_t st;
    apr_uint64_t seq = 0;

    memset(&st, 0, sizeof(st));
    if (!s) {
        ok(0, "open fourth store");
        return;
    }
    ok(mk("ruled") && mk("ruled/cache") && mk("ruled/.DAV")
       && put("ruled/cache/c", "c") && put("ruled/~$doc", "lock")
       && put("ruled/doc", "d") && put("ruled/.DAV/props", "p"),
       "a tree with names of a custom rule");
    is_int(iss_reconcile_run(s, tree, &rule, NULL, &st, &seq, gp),
           APR_SUCCESS, "baseline with a custom rule");
    root = tree;                        /* for index_is() */
    ok(index_is(s, ".DAV|.DAV/props|doc"),
       "the index: .DAV is a member, cache/ and ~$doc are not");
    ok(put("cache/c", "changed") && put("cache/new", "n")
       && put("~$doc", "other lock"), "ignored names change");
    is_int(iss_reconcile_run(s, tree, &rule, NULL, &st, &seq, gp),
           APR_SUCCESS, "a scan with the rule");
    ok(seq == 0 && log_last(s) == 0, "logs nothing");
    ok(put(".DAV/props", "changed props"), ".DAV/props changes");
    is_int(iss_reconcile_run(s, tree, &rule, NULL, &st, &seq, gp),
           APR_SUCCESS, "a scan with the rule");
    ok(seq == 1 && !strcmp(read_entry(s, 1).changes, "M0:.DAV/props"),
       "logs the change of .DAV/props, a member under this rule");
    root = saved_root;
}

int main(void)
{
    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&gp, NULL);

    base = apr_pstrdup(gp, "/tmp/iss-reconcile-test-XXXXXX");
    if (!mkdtemp(base)) {
        ok(0, "mkdtemp");
        return done_testing();
    }
    root = apr_pstrcat(gp, base, "/tree", NULL);
    if (apr_dir_make(root, APR_FPROT_OS_DEFAULT, gp) != APR_SUCCESS) {
        ok(0, "mkdir tree");
        testfs_rm_rf(base, gp);
        return done_testing();
    }
    test_reconcile();
    test_failed_baseline();
    test_skipped_baseline();
    test_custom_rule();
    testfs_rm_rf(base, gp);
    return done_testing();
}
