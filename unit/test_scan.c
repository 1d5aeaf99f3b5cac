/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* iss_scan: index records round-trip and refuse malformations; a scan of
 * a real tree reports exactly what changed since the index was taken,
 * ignores what mod_dav_fs does not serve, and fails rather than report
 * the members of an unreadable directory as removed. */

#include "iss_scan.h"
#include "iss_davfs.h"
#include "iss_change.h"
#include "tap.h"
#include "testfs.h"

#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <apr_time.h>

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------ */

static apr_pool_t *gp;          /* test-wide pool */
static const char *root;        /* the tree under test */

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


typedef struct scan_result_t {
    apr_status_t rv;
    apr_array_header_t *changes;
    apr_array_header_t *updates;
    iss_scan_stats_t st;
    const char *text;           /* the changes as "C d dir; C f dir/file"
                                   (only for up to 100 changes) */
    double secs;                /* time iss_scan_tree() took */
} scan_result_t;

static int entry_eq(const iss_scan_entry_t *a, const iss_scan_entry_t *b)
{
    return a->type == b->type && a->size == b->size
           && a->mtime_us == b->mtime_us && a->ctime_us == b->ctime_us
           && a->ino == b->ino;
}

static scan_result_t scan(apr_hash_t *index)
{
    scan_result_t r;
    apr_time_t t0;
    int i;

    r.changes = apr_array_make(gp, 4, sizeof(iss_change_t));
    r.updates = apr_array_make(gp, 4, sizeof(iss_scan_update_t));
    t0 = apr_time_now();
    r.rv = iss_scan_tree(root, &iss_davfs_ignore, index, r.changes,
                         r.updates, &r.st, gp);
    r.secs = (double)(apr_time_now() - t0) / APR_USEC_PER_SEC;
    r.text = "";
    for (i = 0; i < r.changes->nelts && r.changes->nelts <= 100; i++) {
        const iss_change_t *c = &APR_ARRAY_IDX(r.changes, i, iss_change_t);

        r.text = apr_psprintf(gp, "%s%s%c %c %s", r.text, i ? "; " : "",
                              (char)c->kind, c->collection ? 'd' : 'f',
                              c->path);
    }
    if (r.rv != APR_SUCCESS)
        diag("scan failed: %d (%s)", r.rv,
             r.st.error_path ? r.st.error_path : "no path");
    return r;
}

/* Whether the updates mirror the changes one for one, and every new
 * value is what iss_scan_stat() says of the path now. */
static int updates_match(const scan_result_t *r)
{
    int i;

    if (r->updates->nelts != r->changes->nelts)
        return 0;
    for (i = 0; i < r->updates->nelts; i++) {
        const iss_change_t *c = &APR_ARRAY_IDX(r->changes, i, iss_change_t);
        const iss_scan_update_t *u =
            &APR_ARRAY_IDX(r->updates, i, iss_scan_update_t);
        iss_scan_entry_t now;

        if (strcmp(c->path, u->path))
            return 0;
        if (c->kind == ISS_CHANGE_REMOVED) {
            if (u->entry != NULL)
                return 0;
            continue;
        }
        if (u->entry == NULL
            || iss_scan_stat(at(u->path), &now, gp) != APR_SUCCESS
            || !entry_eq(&now, u->entry)
            || (u->entry->type == 'd') != c->collection) {
            diag("update %d (%s) does not match lstat", i, u->path);
            return 0;
        }
    }
    return 1;
}

/* Apply the updates to @a index the way the store would, through the
 * encoded form. */
static void apply(apr_hash_t *index, const scan_result_t *r)
{
    int i;

    for (i = 0; i < r->updates->nelts; i++) {
        const iss_scan_update_t *u =
            &APR_ARRAY_IDX(r->updates, i, iss_scan_update_t);
        const char *key = apr_pstrdup(gp, u->path);

        if (u->entry) {
            char buf[ISS_SCAN_ENTRY_MAX];
            iss_scan_entry_t *e = apr_palloc(gp, sizeof(*e));
            apr_size_t n = iss_scan_entry_encode(u->entry, buf);

            if (iss_scan_entry_decode(buf, n, e) != APR_SUCCESS)
                diag("index value of %s does not decode", u->path);
            apr_hash_set(index, key, APR_HASH_KEY_STRING, e);
        }
        else {
            apr_hash_set(index, key, APR_HASH_KEY_STRING, NULL);
        }
    }
}

/* ---- entries ------------------------------------------------------------ */

static int decodes(const char *s)
{
    iss_scan_entry_t e;

    return iss_scan_entry_decode(s, strlen(s), &e) == APR_SUCCESS;
}

static void test_entries(void)
{
    static const iss_scan_entry_t samples[] = {
        { 'f', 1234, APR_INT64_C(1700000000123456),
          APR_INT64_C(1700000000654321), 98765 },
        { 'd', 0, 0, 0, 0 },
        { 'f', 0, -1, 1, 1 },
        { 'f', APR_INT64_MAX, APR_INT64_MIN, APR_INT64_MAX, APR_UINT64_MAX },
        { 'd', 0, APR_INT64_MIN, APR_INT64_MIN, 2 },
    };
    static const char *const bad[] = {
        "", "f", "f ", "x 1 2 3 4", "F 1 2 3 4", "f 1 2 3", "f 1 2 3 4 5",
        "f  1 2 3 4", "f 1 2 3 4 ", " f 1 2 3 4", "f 1 2 3 4\n",
        "f\t1 2 3 4", "f 01 2 3 4", "f 1 02 3 4", "f 1 2 3 00",
        "f -1 2 3 4", "f 1 -0 3 4", "f 1 2 -0 4", "f 1 2 3 -4",
        "f +1 2 3 4", "f 1 +2 3 4", "f 1 2 3 0x4", "f 1 2 3 4a", "f 1 2- 3 4",
        "f 1 - 3 4", "f 9223372036854775808 2 3 4",
        "f 1 9223372036854775808 3 4", "f 1 -9223372036854775809 3 4",
        "f 1 2 3 18446744073709551616", "f 1 2 3 99999999999999999999",
        "d 5 1 2 3", "fd 1 2 3 4",
    };
    iss_scan_entry_t e, keep = { 'f', 7, 7, 7, 7 };
    char buf[ISS_SCAN_ENTRY_MAX], longbuf[200];
    unsigned i;
    int all_bad_refused = 1, untouched = 1;

    for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        char again[ISS_SCAN_ENTRY_MAX];
        apr_size_t n = iss_scan_entry_encode(&samples[i], buf);

        memset(&e, 0x55, sizeof(e));
        ok(n == strlen(buf) && n < ISS_SCAN_ENTRY_MAX
           && iss_scan_entry_decode(buf, n, &e) == APR_SUCCESS
           && e.type == samples[i].type && e.size == samples[i].size
           && e.mtime_us == samples[i].mtime_us
           && e.ctime_us == samples[i].ctime_us && e.ino == samples[i].ino
           && iss_scan_entry_encode(&e, again) == n && !strcmp(buf, again),
           "entry %u round-trips: %s", i, buf);
    }
    iss_scan_entry_encode(&samples[0], buf);
    is_str(buf, "f 1234 1700000000123456 1700000000654321 98765",
           "encoding is the documented text line");
    iss_scan_entry_encode(&samples[3], buf);
    is_str(buf, "f 9223372036854775807 -9223372036854775808 "
           "9223372036854775807 18446744073709551615",
           "extreme values encode in full");

    ok(decodes("f 0 0 0 0"), "all-zero file decodes (control)");
    ok(decodes("d 0 -5 5 0"), "directory with negative mtime decodes");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        e = keep;
        if (iss_scan_entry_decode(bad[i], strlen(bad[i]), &e) != APR_EINVAL) {
            all_bad_refused = 0;
            diag("accepted: \"%s\"", bad[i]);
        }
        if (!entry_eq(&e, &keep))
            untouched = 0;
    }
    ok(all_bad_refused, "%u malformed records refused with APR_EINVAL",
       (unsigned)(sizeof(bad) / sizeof(bad[0])));
    ok(untouched, "a refused record leaves the entry untouched");
    is_int(iss_scan_entry_decode("f 1 2 3 4\0", 10, &e), APR_EINVAL,
           "trailing NUL byte refused");
    is_int(iss_scan_entry_decode("f 1\0 2 3 4", 10, &e), APR_EINVAL,
           "NUL inside refused");
    is_int(iss_scan_entry_decode("f 1 2 3 45", 9, &e), APR_SUCCESS,
           "only len bytes are read (prefix \"f 1 2 3 4\")");
    ok(e.ino == 4, "... and the last field ends at len");
    memset(longbuf, '1', sizeof(longbuf));
    memcpy(longbuf, "f 1 2 3 ", 8);
    is_int(iss_scan_entry_decode(longbuf, sizeof(longbuf), &e), APR_EINVAL,
           "over-long record refused");
    /* Cut the valid record at every separator: never accepted. */
    {
        const char *full = "f 1234 1700000000123456 1700000000654321 98765";
        apr_size_t cut;
        int cuts_refused = 1;

        for (cut = 0; cut < strlen(full); cut++) {
            if (full[cut] == ' '
                && iss_scan_entry_decode(full, cut, &e) == APR_SUCCESS) {
                cuts_refused = 0;
            }
            if (full[cut] == ' '
                && iss_scan_entry_decode(full, cut + 1, &e) == APR_SUCCESS) {
                cuts_refused = 0;
            }
        }
        ok(cuts_refused, "records cut at a field boundary are refused");
    }

    {
        iss_scan_entry_t a = samples[0], b = samples[0];

        ok(iss_scan_entry_same(&a, &b), "identical file entries are same");
        b.size++;
        ok(!iss_scan_entry_same(&a, &b), "size differs -> not same");
        b = a; b.mtime_us++;
        ok(!iss_scan_entry_same(&a, &b), "mtime differs -> not same");
        b = a; b.ctime_us++;
        ok(!iss_scan_entry_same(&a, &b), "ctime differs -> not same");
        b = a; b.ino++;
        ok(!iss_scan_entry_same(&a, &b), "inode differs -> not same");
        b = a; b.type = 'd'; b.size = 0;
        ok(!iss_scan_entry_same(&a, &b), "type differs -> not same");
        a = samples[1]; b = samples[4];
        ok(iss_scan_entry_same(&a, &b), "two directories are the same");
    }

#define hidden(name) iss_scan_ignored(&iss_davfs_ignore, (name))
    ok(hidden(".") && hidden("..") && hidden(".DAV") && hidden(".davfs.tmp")
       && hidden(".davfs.tmpA1b2C3") && hidden(""),
       "hidden names: . .. .DAV .davfs.tmp*");
    ok(!hidden("...") && !hidden(".dav") && !hidden(".DAVX") && !hidden("x.DAV")
       && !hidden(".davfs.tm") && !hidden("a") && !hidden(".htaccess"),
       "served names: ... .dav .DAVX x.DAV .davfs.tm a .htaccess");
#undef hidden
}

/* ---- ignore rules of the caller's --------------------------------------- */

static const char *const custom_names[] = { "skip", "Thumbs.db", NULL };
static const char *const custom_prefixes[] = { "~", ".#", NULL };
static const iss_scan_ignore_t custom = { custom_names, custom_prefixes };

static void test_rules(void)
{
    static const iss_scan_ignore_t empty = { NULL, NULL };
    static const char *const only_prefix[] = { ".davfs.tmp", NULL };
    static const iss_scan_ignore_t prefixes_only = { NULL, only_prefix };

    ok(iss_scan_ignored(NULL, ".") && iss_scan_ignored(NULL, "..")
       && iss_scan_ignored(NULL, "")
       && iss_scan_ignored(&empty, ".") && iss_scan_ignored(&custom, ".."),
       "every rule, and none, ignores . .. and the empty name");
    ok(!iss_scan_ignored(NULL, ".DAV") && !iss_scan_ignored(NULL, ".davfs.tmp1")
       && !iss_scan_ignored(&empty, ".DAV") && !iss_scan_ignored(&empty, "a"),
       "no rule, or an empty one: .DAV and .davfs.tmp* are members");
    ok(iss_scan_ignored(&custom, "skip") && iss_scan_ignored(&custom, "Thumbs.db")
       && iss_scan_ignored(&custom, "~") && iss_scan_ignored(&custom, "~x.doc")
       && iss_scan_ignored(&custom, ".#lock"),
       "a custom rule: its names and prefixes");
    ok(!iss_scan_ignored(&custom, "skip2") && !iss_scan_ignored(&custom, "Skip")
       && !iss_scan_ignored(&custom, "x~") && !iss_scan_ignored(&custom, ".DAV")
       && !iss_scan_ignored(&custom, "thumbs.db")
       && !iss_scan_ignored(&custom, ".x#"),
       "... and nothing else (exact bytes, prefixes only at the start)");
    ok(iss_scan_ignored(&prefixes_only, ".davfs.tmpX")
       && !iss_scan_ignored(&prefixes_only, ".DAV"),
       "a rule with prefixes only");
}

/* A tree scanned and listed with a custom rule, with mod_dav_fs's and
 * with none: each sees exactly what its rule leaves. */
static void test_tree_rules(void)
{
    const char *saved_root = root;
    apr_hash_t *index = apr_hash_make(gp);
    iss_scan_stats_t st;
    apr_array_header_t *ch, *up;
    const char *text;
    int i;

    root = at("rules");
    ok(mk("") && mk("skip") && mk("d") && mk(".DAV") && mk("d/skip")
       && put("skip/x", "x") && put("d/skip/y", "y") && put("~lock", "l")
       && put("d/.#edit", "e") && put("d/keep", "k") && put(".DAV/p", "p")
       && put("a", "a") && put(".davfs.tmp1", "t"),
       "a tree with names of two rules");

#define RUN(rule)                                                           \
    (ch = apr_array_make(gp, 4, sizeof(iss_change_t)),                      \
     up = apr_array_make(gp, 4, sizeof(iss_scan_update_t)),                 \
     iss_scan_tree(root, (rule), index, ch, up, &st, gp))
    ok(RUN(&custom) == APR_SUCCESS, "scan with a custom rule");
    text = "";
    for (i = 0; i < ch->nelts; i++)
        text = apr_pstrcat(gp, text, i ? " " : "",
                           APR_ARRAY_IDX(ch, i, iss_change_t).path, NULL);
    is_str(text, ".DAV .DAV/p .davfs.tmp1 a d d/keep",
           "custom rule: skip/, ~lock, .#edit and d/skip/ left out; .DAV "
           "and .davfs.tmp* are members");
    is_int(st.skipped, 4, "... 4 entries skipped");
    for (i = 0; i < up->nelts; i++) {
        const iss_scan_update_t *u = &APR_ARRAY_IDX(up, i, iss_scan_update_t);

        apr_hash_set(index, u->path, APR_HASH_KEY_STRING, u->entry);
    }

    ok(RUN(&iss_davfs_ignore) == APR_SUCCESS, "the same index, mod_dav_fs's rule");
    text = "";
    for (i = 0; i < ch->nelts; i++) {
        const iss_change_t *c = &APR_ARRAY_IDX(ch, i, iss_change_t);

        text = apr_psprintf(gp, "%s%s%c %s", text, i ? " " : "",
                            (char)c->kind, c->path);
    }
    is_str(text, "R .DAV R .DAV/p R .davfs.tmp1 C d/.#edit C d/skip "
           "C d/skip/y C skip C skip/x C ~lock",
           "another rule: what it ignores is removed, what it shows created");

    ok(RUN(NULL) == APR_SUCCESS, "the same index, no rule");
    is_int(ch->nelts, 6, "no rule: only what the custom rule hid is new");
    is_int(st.skipped, 0, "... nothing skipped");
#undef RUN
    testfs_rm_rf(root, gp);
    root = saved_root;
}

/* ---- iss_scan_stat ------------------------------------------------------- */

/* iss_davfs_gc_tmp(): only old temporary files of the exact pattern. */
static void test_gc_tmp(void)
{
    const char *old[] = { "g/.davfs.tmpAbC123", "g/d/e/.davfs.tmp000000" };
    const char *kept[] = { "g/.davfs.tmpNew123", "g/keep.davfs.tmpAbC123",
                           "g/.davfs.tmpAbC12", "g/.davfs.tmpAbC1234",
                           "g/.davfs.tmp-b-c1", "g/.davfs.tmp", "g/a.txt",
                           "g/.DAV/.davfs.tmpAbC123", "g/x/.davfs.tmpdir/f",
                           "g/.davfs.tmpLnk123" };
    apr_time_t now = apr_time_now();
    apr_uint32_t removed = 99;
    apr_uint64_t freed = 99;
    apr_status_t rv;
    struct stat st;
    size_t i;
    int all;

    ok(mk("g") && mk("g/d") && mk("g/d/e") && mk("g/.DAV") && mk("g/x")
       && mk("g/x/.davfs.tmpdir"), "gc-tmp: a tree");
    for (i = 0; i < sizeof(old) / sizeof(old[0]); i++)
        put(old[i], "left by a killed writer");
    for (i = 0; i + 1 < sizeof(kept) / sizeof(kept[0]); i++)
        put(kept[i], "kept");
    ok(symlink(at("g/a.txt"), at("g/.davfs.tmpLnk123")) == 0, "a link");
    /* all but the "new" one an hour old */
    for (i = 0; i < sizeof(old) / sizeof(old[0]); i++)
        apr_file_mtime_set(at(old[i]), now - apr_time_from_sec(3600), gp);
    for (i = 1; i + 1 < sizeof(kept) / sizeof(kept[0]); i++)
        apr_file_mtime_set(at(kept[i]), now - apr_time_from_sec(3600), gp);
    ok(iss_davfs_is_tmp_name(".davfs.tmpAbC123")
       && iss_davfs_is_tmp_name(".davfs.tmp0z9Z0a")
       && !iss_davfs_is_tmp_name(".davfs.tmpAbC12")
       && !iss_davfs_is_tmp_name(".davfs.tmpAbC1234")
       && !iss_davfs_is_tmp_name(".davfs.tmp-b-c1")
       && !iss_davfs_is_tmp_name("x.davfs.tmpAbC123")
       && !iss_davfs_is_tmp_name(".davfs.tmp"),
       "tmp names: the prefix and exactly 6 letters or digits");
    rv = iss_davfs_gc_tmp(at("g"), apr_time_from_sec(600), now, &removed,
                          &freed, gp);
    ok(rv == APR_SUCCESS && removed == 2 && freed == 2 * 23,
       "gc-tmp: the two old ones removed (rv %d, %u files, %"
       APR_UINT64_T_FMT " bytes)", rv, removed, freed);
    all = 1;
    for (i = 0; i < sizeof(old) / sizeof(old[0]); i++)
        all &= lstat(at(old[i]), &st) != 0;
    ok(all, "  they are gone");
    all = 1;
    for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        if (lstat(at(kept[i]), &st) != 0) {
            diag("removed: %s", kept[i]);
            all = 0;
        }
    ok(all, "  nothing else: a new one, other names, .DAV, a folder, a link");
    rv = iss_davfs_gc_tmp(at("nonexistent"), 0, now, &removed, &freed, gp);
    ok(rv != APR_SUCCESS && removed == 0, "gc-tmp of a missing tree fails");
    testfs_rm_rf(at("g"), gp);
}

static void test_stat(void)
{
    iss_scan_entry_t e;
    struct stat sb;

    ok(mk("sd") && put("sd/f", "12345"), "stat fixture");
    ok(iss_scan_stat(at("sd/f"), &e, gp) == APR_SUCCESS && e.type == 'f'
       && e.size == 5 && lstat(at("sd/f"), &sb) == 0
       && e.ino == (apr_uint64_t)sb.st_ino
       && e.mtime_us == (apr_int64_t)sb.st_mtim.tv_sec * 1000000
                        + sb.st_mtim.tv_nsec / 1000
       && e.ctime_us == (apr_int64_t)sb.st_ctim.tv_sec * 1000000
                        + sb.st_ctim.tv_nsec / 1000,
       "a file: type, size, inode, mtime and ctime as lstat says");
    ok(iss_scan_stat(at("sd"), &e, gp) == APR_SUCCESS && e.type == 'd'
       && e.size == 0, "a directory: type d, size 0");
    is_int(iss_scan_stat(at("sd/missing"), &e, gp), APR_ENOENT,
           "missing path: APR_ENOENT");
    is_int(iss_scan_stat(at("sd/f/below"), &e, gp), APR_ENOENT,
           "path through a file: APR_ENOENT");
    ok(symlink("f", at("sd/link")) == 0, "symlink made");
    is_int(iss_scan_stat(at("sd/link"), &e, gp), APR_EINVAL,
           "symlink to a file: APR_EINVAL (not followed)");
    ok(mkfifo(at("sd/fifo"), 0600) == 0, "fifo made");
    is_int(iss_scan_stat(at("sd/fifo"), &e, gp), APR_EINVAL,
           "fifo: APR_EINVAL");
    testfs_rm_rf(at("sd"), gp);
}

/* ---- scans of a tree ------------------------------------------------------ */

static void test_tree(void)
{
    apr_hash_t *index = apr_hash_make(gp);
    scan_result_t r;
    apr_finfo_t fi;
    apr_time_t old_mtime;
    iss_scan_entry_t before;

    ok(mk("d1") && mk("d1/sub") && mk("d1/sub/deeper") && mk("d2")
       && mk("d1x") && mk(".DAV") && mk("d1/.DAV") && mk("e m p t y")
       && put("a.txt", "alpha") && put("d1/b.txt", "bravo")
       && put("d1/sub/c.txt", "charlie") && put("d1/sub/deeper/e.txt", "echo")
       && put("d1x/f.txt", "foxtrot") && put("d2/x", "xray")
       && put(".DAV/props", "state") && put("d1/.DAV/props", "state")
       && put(".davfs.tmp123", "partial") && put("d1/.davfs.tmpXYZ", "part")
       && put("\xc3\xbc n\xc3\xaf c\xc3\xb6" "de\n.txt", "unicode")
       && symlink("a.txt", at("link")) == 0
       && symlink("d1", at("dirlink")) == 0
       && symlink("/nonexistent", at("d1/dangling")) == 0
       && mkfifo(at("d2/fifo"), 0600) == 0,
       "tree built");

    /* Empty index: everything served is created, parents first. */
    r = scan(index);
    is_int(r.rv, APR_SUCCESS, "first scan succeeds");
    is_str(r.text,
           "C f a.txt; C d d1; C f d1/b.txt; C d d1/sub; C f d1/sub/c.txt; "
           "C d d1/sub/deeper; C f d1/sub/deeper/e.txt; C d d1x; "
           "C f d1x/f.txt; C d d2; C f d2/x; C d e m p t y; "
           "C f \xc3\xbc n\xc3\xaf c\xc3\xb6" "de\n.txt",
           "empty index: every served member created, sorted");
    ok(updates_match(&r), "updates carry lstat's values for every creation");
    ok(r.st.files == 7 && r.st.dirs == 6 && r.st.created == 13
       && r.st.modified == 0 && r.st.removed == 0 && r.st.error_path == NULL,
       "stats: 7 files, 6 dirs, 13 created");
    /* .DAV x2, .davfs.tmp* x2, link, dirlink, dangling, fifo */
    is_int(r.st.skipped, 8, "skipped: state dirs, temp files, links, fifo");
    apply(index, &r);
    is_int(apr_hash_count(index), 13, "index holds 13 members");

    /* Nothing changed. */
    r = scan(index);
    ok(r.rv == APR_SUCCESS && r.changes->nelts == 0
       && r.updates->nelts == 0, "unchanged tree: nothing reported");
    ok(r.st.files == 7 && r.st.dirs == 6 && r.st.created == 0
       && r.st.modified == 0 && r.st.removed == 0, "stats of a quiet scan");

    /* Hidden things change: still nothing. */
    ok(put(".DAV/props", "new state, longer") && put(".DAV/more", "x")
       && put(".davfs.tmpNEW", "x") && put("d1/.davfs.tmpXYZ", "longer")
       && mk("d1/sub/.DAV") && mk(".davfs.tmpdir") && put(".davfs.tmpdir/y", "y")
       && symlink("d1/b.txt", at("d1x/link2")) == 0,
       "state dirs, temp files and links changed");
    r = scan(index);
    ok(r.rv == APR_SUCCESS && r.changes->nelts == 0,
       "changes to .DAV, .davfs.tmp* and links are not seen");

    /* Content grows. */
    apr_sleep(apr_time_from_msec(30));
    ok(put("a.txt", "alpha, longer"), "a.txt rewritten");
    r = scan(index);
    is_str(r.text, "M f a.txt", "size change: a.txt modified");
    ok(updates_match(&r) && r.st.modified == 1, "its update is the new lstat");
    apply(index, &r);
    r = scan(index);
    is_str(r.text, "", "applied: quiet again");

    /* Same size, mtime moved. */
    ok(apr_stat(&fi, at("d1/b.txt"), APR_FINFO_MTIME, gp) == APR_SUCCESS,
       "b.txt stat");
    old_mtime = fi.mtime;
    ok(apr_file_mtime_set(at("d1/b.txt"), old_mtime - apr_time_from_sec(60),
                          gp) == APR_SUCCESS, "b.txt mtime set back 60 s");
    r = scan(index);
    is_str(r.text, "M f d1/b.txt", "same size, other mtime: modified");
    apply(index, &r);

    /* Same size, new content, mtime restored: the ctime tells. */
    before = *(const iss_scan_entry_t *)apr_hash_get(index, "d1/sub/c.txt",
                                                     APR_HASH_KEY_STRING);
    apr_sleep(apr_time_from_msec(30));
    ok(put("d1/sub/c.txt", "CHARLIE")
       && apr_file_mtime_set(at("d1/sub/c.txt"), before.mtime_us, gp)
          == APR_SUCCESS, "c.txt rewritten, same size, mtime restored");
    r = scan(index);
    is_str(r.text, "M f d1/sub/c.txt",
           "same size and mtime, new ctime: modified");
    apply(index, &r);

    /* Replaced by rename (how mod_dav_fs PUTs): new inode. */
    apr_sleep(apr_time_from_msec(30));
    ok(put("d1x/new", "foxtrot")
       && apr_file_rename(at("d1x/new"), at("d1x/f.txt"), gp) == APR_SUCCESS,
       "f.txt replaced by rename, same content");
    r = scan(index);
    is_str(r.text, "M f d1x/f.txt", "atomic replace: modified");
    apply(index, &r);

    /* A file deleted. */
    ok(apr_file_remove(at("d1/b.txt"), gp) == APR_SUCCESS, "b.txt deleted");
    r = scan(index);
    is_str(r.text, "R f d1/b.txt", "deleted file: removed");
    ok(updates_match(&r) && r.st.removed == 1, "its update deletes the key");
    apply(index, &r);
    is_int(apr_hash_count(index), 12, "index holds 12 members");

    /* A file created, another deleted, in one directory. */
    ok(put("d1x/g.txt", "golf") && apr_file_remove(at("d1x/f.txt"), gp)
       == APR_SUCCESS, "d1x: f.txt swapped for g.txt");
    r = scan(index);
    is_str(r.text, "R f d1x/f.txt; C f d1x/g.txt",
           "removal first, then creation");
    ok(updates_match(&r), "updates follow the changes");
    apply(index, &r);

    /* A whole directory with members. */
    testfs_rm_rf(at("d1"), gp);
    r = scan(index);
    is_str(r.text, "R d d1; R d d1/sub; R f d1/sub/c.txt; "
           "R d d1/sub/deeper; R f d1/sub/deeper/e.txt",
           "deleted directory: it and every indexed member, parent first");
    ok(updates_match(&r) && r.st.removed == 5, "five keys deleted");
    apply(index, &r);

    /* A file replaced by a directory of the same name. */
    ok(apr_file_remove(at("a.txt"), gp) == APR_SUCCESS && mk("a.txt")
       && put("a.txt/inside", "india"), "a.txt is now a directory");
    r = scan(index);
    is_str(r.text, "R f a.txt; C d a.txt; C f a.txt/inside",
           "file -> directory: removed, then created with its members");
    ok(updates_match(&r), "updates: delete, then the new entries");
    apply(index, &r);

    /* A directory replaced by a file. */
    testfs_rm_rf(at("d2"), gp);
    ok(put("d2", "now a file"), "d2 is now a file");
    r = scan(index);
    is_str(r.text, "R d d2; R f d2/x; C f d2",
           "directory -> file: it and its members removed, then created");
    ok(updates_match(&r), "updates: deletes, then the new entry");
    apply(index, &r);

    /* A file replaced by a symlink: gone for WebDAV clients. */
    ok(apr_file_remove(at("d2"), gp) == APR_SUCCESS
       && symlink("a.txt", at("d2")) == 0, "d2 is now a symlink");
    r = scan(index);
    is_str(r.text, "R f d2", "file -> symlink: removed");
    apply(index, &r);

    /* A directory replaced by a symlink to a directory: its members are
     * not served any more either (the link is not followed). */
    ok(mk("d3") && put("d3/z", "zulu"), "d3 made");
    r = scan(index);
    is_str(r.text, "C d d3; C f d3/z", "d3 created");
    apply(index, &r);
    testfs_rm_rf(at("d3"), gp);
    ok(mk("elsewhere") && put("elsewhere/z", "zulu")
       && symlink("elsewhere", at("d3")) == 0, "d3 is now a link to a copy");
    r = scan(index);
    is_str(r.text, "R d d3; R f d3/z; C d elsewhere; C f elsewhere/z",
           "dir -> symlink: removed with members, link not followed");
    apply(index, &r);

    r = scan(index);
    is_str(r.text, "", "after all that, quiet again");
    is_int(apr_hash_count(index), 8, "index holds 8 members");

    /* Index keys the walk can never produce are cleaned up. */
    {
        static iss_scan_entry_t f = { 'f', 1, 1, 1, 1 };
        static iss_scan_entry_t d = { 'd', 0, 1, 1, 1 };

        apr_hash_set(index, "/a.txt", APR_HASH_KEY_STRING, &d);
        apr_hash_set(index, "a.txt//inside", APR_HASH_KEY_STRING, &f);
        apr_hash_set(index, "a.txt/./inside", APR_HASH_KEY_STRING, &f);
        apr_hash_set(index, "a.txt/", APR_HASH_KEY_STRING, &f);
        apr_hash_set(index, "", APR_HASH_KEY_STRING, &f);
        apr_hash_set(index, ".DAV", APR_HASH_KEY_STRING, &d);
        apr_hash_set(index, "a.txt/.DAV/props", APR_HASH_KEY_STRING, &f);
        apr_hash_set(index, "a.txt/..", APR_HASH_KEY_STRING, &d);
        r = scan(index);
        is_str(r.text, "R f ; R d .DAV; R d /a.txt; R f a.txt/; R d a.txt/..; "
               "R f a.txt/./inside; R f a.txt/.DAV/props; R f a.txt//inside",
               "bogus keys reported removed");
        apply(index, &r);
        is_int(apr_hash_count(index), 8, "and deleted from the index");
        r = scan(index);
        is_str(r.text, "", "quiet again");
    }

    /* Errors: nothing appended, the path named. */
    {
        apr_array_header_t *ch = apr_array_make(gp, 1, sizeof(iss_change_t));
        apr_array_header_t *up =
            apr_array_make(gp, 1, sizeof(iss_scan_update_t));
        iss_scan_stats_t st;
        apr_status_t rv;
        const char *missing = at("no such dir");

        rv = iss_scan_tree(missing, &iss_davfs_ignore, index, ch, up, &st,
                           gp);
        ok(APR_STATUS_IS_ENOENT(rv) && ch->nelts == 0 && up->nelts == 0
           && st.error_path && !strcmp(st.error_path, missing),
           "missing root: APR_ENOENT, path named, nothing appended");
        rv = iss_scan_tree(at("d1x/g.txt"), &iss_davfs_ignore, index, ch,
                           up, &st, gp);
        ok(APR_STATUS_IS_ENOTDIR(rv) && ch->nelts == 0,
           "root that is a file: APR_ENOTDIR");
        rv = iss_scan_tree(apr_pstrcat(gp, root, "///", NULL),
                           &iss_davfs_ignore, index, ch, up, &st, gp);
        ok(rv == APR_SUCCESS && ch->nelts == 0,
           "root with trailing slashes: same tree, quiet");
    }

    /* An unreadable directory fails the scan instead of removing. */
    if (geteuid() == 0) {
        skip(4, "running as root: chmod 000 does not stop root from reading "
                "(run the test as another user to exercise this)");
    }
    else {
        apr_array_header_t *ch = apr_array_make(gp, 1, sizeof(iss_change_t));
        apr_array_header_t *up =
            apr_array_make(gp, 1, sizeof(iss_scan_update_t));
        iss_scan_stats_t st;
        apr_status_t rv;

        ok(mk("locked") && put("locked/secret", "s") && mk("locked/inner"),
           "locked/ made");
        r = scan(index);
        apply(index, &r);
        ok(chmod(at("locked"), 0) == 0, "chmod 000 locked/");
        rv = iss_scan_tree(root, &iss_davfs_ignore, index, ch, up, &st,
                           gp);
        ok(APR_STATUS_IS_EACCES(rv) && ch->nelts == 0 && up->nelts == 0
           && st.error_path && !strcmp(st.error_path, at("locked")),
           "unreadable directory: APR_EACCES naming it, nothing removed");
        chmod(at("locked"), 0700);
        ok(chmod(at("locked"), 0600) == 0 /* listable, not searchable */
           && iss_scan_tree(root, &iss_davfs_ignore, index, ch, up, &st,
                            gp) != APR_SUCCESS
           && ch->nelts == 0 && st.error_path
           && !strncmp(st.error_path, at("locked/"), strlen(at("locked/"))),
           "listable but not searchable: fails too, naming a member");
        chmod(at("locked"), 0700);
    }
}

/* ---- a larger tree: mixed changes, and the time of a quiet scan -------- */

static void test_bulk(int ndirs, int nfiles)
{
    apr_hash_t *index = apr_hash_make(gp);
    scan_result_t r;
    int i, j, ok_build = 1;
    const char *saved_root = root;

    root = at("bulk");
    ok_build = apr_dir_make(root, APR_FPROT_OS_DEFAULT, gp) == APR_SUCCESS;
    for (i = 0; i < ndirs && ok_build; i++) {
        char name[64];

        apr_snprintf(name, sizeof(name), "dir%04d", i);
        ok_build = mk(name);
        for (j = 0; j < nfiles && ok_build; j++) {
            apr_snprintf(name, sizeof(name), "dir%04d/file%05d", i, j);
            ok_build = put(name, "x");
        }
    }
    ok(ok_build, "bulk tree: %d dirs x %d files", ndirs, nfiles);

    r = scan(index);
    diag("first scan (all created): %.3f s", r.secs);
    is_int(r.changes->nelts, ndirs * (nfiles + 1), "everything created");
    apply(index, &r);

    r = scan(index);
    diag("quiet scan of %d files in %d dirs: %.3f s", ndirs * nfiles, ndirs,
         r.secs);
    r = scan(index);
    diag("again: %.3f s", r.secs);
    ok(r.rv == APR_SUCCESS && r.changes->nelts == 0
       && r.st.files == (apr_uint64_t)(ndirs * nfiles)
       && r.st.dirs == (apr_uint64_t)ndirs, "quiet scan reports nothing");

    /* Every 7th directory loses a file, every 11th gains one, every 13th
     * has one rewritten; directory 3 goes away. */
    {
        int removed = 0, created = 0, modified = 0;

        apr_sleep(apr_time_from_msec(30));
        for (i = 0; i < ndirs; i++) {
            if (i == 3)
                continue;
            if (i % 7 == 0) {
                apr_file_remove(at(apr_psprintf(gp, "dir%04d/file00001", i)),
                                gp);
                removed++;
            }
            if (i % 11 == 0) {
                put(apr_psprintf(gp, "dir%04d/extra", i), "new");
                created++;
            }
            if (i % 13 == 0) {
                put(apr_psprintf(gp, "dir%04d/file00002", i), "changed");
                modified++;
            }
        }
        testfs_rm_rf(at("dir0003"), gp);
        removed += nfiles + 1;
        r = scan(index);
        ok(r.rv == APR_SUCCESS && r.st.removed == (apr_uint64_t)removed
           && r.st.created == (apr_uint64_t)created
           && r.st.modified == (apr_uint64_t)modified,
           "mixed changes counted: %d removed, %d created, %d modified",
           removed, created, modified);
        ok(updates_match(&r), "updates follow the changes");
        apply(index, &r);
        r = scan(index);
        ok(r.rv == APR_SUCCESS && r.changes->nelts == 0, "then quiet");
    }
    testfs_rm_rf(root, gp);
    root = saved_root;
}

int main(int argc, const char *const *argv)
{
    char *base;
    const char *env = getenv("ISS_SCAN_BULK");
    int nd = 20, nf = 100;

    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&gp, NULL);

    test_entries();
    test_rules();

    base = apr_pstrdup(gp, "/tmp/iss-scan-test-XXXXXX");
    if (!mkdtemp(base)) {
        ok(0, "mkdtemp");
        return done_testing();
    }
    root = base;
    test_stat();
    test_gc_tmp();
    test_tree();
    test_tree_rules();
    /* ISS_SCAN_BULK=DIRSxFILES for a bigger tree, e.g. 1000x100 */
    if (env && sscanf(env, "%dx%d", &nd, &nf) != 2) {
        nd = 20;
        nf = 100;
    }
    test_bulk(nd, nf);
    testfs_rm_rf(base, gp);

    apr_pool_destroy(gp);
    apr_terminate();
    return done_testing();
}
