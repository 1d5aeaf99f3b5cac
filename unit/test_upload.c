/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* iss_upload: sessions round-trip through create/open; ids are random,
 * well-formed and the only thing open() accepts (no path reaches outside
 * ROOT); chunks are staged only when their bytes hash to their id; gc
 * removes idle sessions and stale leftovers and nothing fresh; list and
 * usage add up; a removed session stays removed whatever its handles do. */

#include "iss_upload.h"
#include "iss_digest.h"
#include "tap.h"
#include "testfs.h"

#include <apr_general.h>
#include <apr_hash.h>
#include <stdlib.h>
#include <sys/stat.h>

static apr_pool_t *gp;
static const char *base;

#define HOUR apr_time_from_sec(3600)

static const char *at(const char *a, const char *b)
{
    return apr_pstrcat(gp, a, "/", b, NULL);
}

static void sha_of(const void *data, apr_size_t len, unsigned char out[32])
{
    iss_digest_t *d;

    if (iss_digest_create(&d, gp) != APR_SUCCESS) {
        memset(out, 0, 32);
        return;
    }
    iss_digest_update(d, data, len);
    iss_digest_final(d, out);
}

static const char *hex_of(const unsigned char sha[32])
{
    char *h = apr_palloc(gp, 65);
    int i;

    for (i = 0; i < 32; i++) {
        snprintf(h + 2 * i, 3, "%02x", sha[i]);
    }
    return h;
}

/* Entries of @a dir (without . and ..), -1 if it cannot be opened. */
static int count_entries(const char *dir)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    int n = 0;

    if (apr_dir_open(&d, dir, gp) != APR_SUCCESS) {
        return -1;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME, d) == APR_SUCCESS) {
        if (strcmp(fi.name, ".") && strcmp(fi.name, "..")) {
            n++;
        }
    }
    apr_dir_close(d);
    return n;
}

/* Sum of the sizes of the files in @a dir (flat). */
static apr_uint64_t dir_bytes(const char *dir)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_uint64_t n = 0;

    if (apr_dir_open(&d, dir, gp) != APR_SUCCESS) {
        return 0;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE | APR_FINFO_SIZE,
                        d) == APR_SUCCESS) {
        if (fi.filetype == APR_REG) {
            n += (apr_uint64_t)fi.size;
        }
    }
    apr_dir_close(d);
    return n;
}

static int exists(const char *path)
{
    apr_finfo_t fi;

    return apr_stat(&fi, path, APR_FINFO_TYPE | APR_FINFO_LINK, gp)
           == APR_SUCCESS;
}

static int mode_of(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static int backdate(const char *path, apr_interval_time_t by)
{
    return apr_file_mtime_set(path, apr_time_now() - by, gp) == APR_SUCCESS;
}

static char *slurp_manifest(iss_upload_t *u, apr_size_t *len)
{
    void *buf = NULL;

    *len = 0;
    if (iss_upload_manifest(u, &buf, len, gp) != APR_SUCCESS) {
        return NULL;
    }
    return buf;
}

static int well_formed(const char *id)
{
    int i;

    if (id == NULL || strlen(id) != ISS_UPLOAD_ID_LEN) {
        return 0;
    }
    for (i = 0; i < ISS_UPLOAD_ID_LEN; i++) {
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

/* Read a whole file through APR (for the session format check). */
static int read_file_ok(const char *path, void **buf, apr_size_t *len)
{
    apr_file_t *f;
    apr_finfo_t fi;
    int good = 0;

    if (apr_file_open(&f, path, APR_FOPEN_READ, 0, gp) != APR_SUCCESS) {
        return 0;
    }
    if (apr_file_info_get(&fi, APR_FINFO_SIZE, f) == APR_SUCCESS) {
        *len = (apr_size_t)fi.size;
        *buf = apr_palloc(gp, *len + 1);
        good = apr_file_read_full(f, *buf, *len, NULL) == APR_SUCCESS;
    }
    apr_file_close(f);
    return good;
}

static void test_create_open(void)
{
    const char *root = at(base, "rt");
    iss_upload_t *u = NULL, *o = NULL;
    apr_size_t len;
    char *m;
    void *buf;
    apr_size_t blen;

    is_int(iss_upload_create(&u, root, "alice", "/dav/a.bin", "MANIFEST-1", 10,
                             gp), APR_SUCCESS, "create (ROOT missing)");
    if (u == NULL) {
        return;
    }
    ok(well_formed(iss_upload_id(u)), "id is 32 lowercase hex: %s",
       iss_upload_id(u));
    is_int(mode_of(root), 0700, "ROOT made 0700");
    is_int(mode_of(at(root, iss_upload_id(u))), 0700, "session dir 0700");
    is_int(mode_of(at(at(root, iss_upload_id(u)), "session")), 0600,
           "session file 0600");
    is_int(mode_of(at(at(root, iss_upload_id(u)), "manifest")), 0600,
           "manifest 0600");
    is_int(count_entries(at(root, iss_upload_id(u))), 2,
           "session dir holds session + manifest, no temp file");
    ok(read_file_ok(at(at(root, iss_upload_id(u)), "session"), &buf, &blen)
       && blen == 22 && !memcmp(buf, "ISU1\nalice\n/dav/a.bin\n", 22),
       "session file format ISU1");
    is_str(iss_upload_user(u), "alice", "user of the new handle");
    is_str(iss_upload_path(u), "/dav/a.bin", "path of the new handle");

    is_int(iss_upload_open(&o, root, iss_upload_id(u), gp), APR_SUCCESS,
           "open by id");
    if (o == NULL) {
        return;
    }
    is_str(iss_upload_id(o), iss_upload_id(u), "same id");
    is_str(iss_upload_user(o), "alice", "user round trip");
    is_str(iss_upload_path(o), "/dav/a.bin", "path round trip");
    m = slurp_manifest(o, &len);
    ok(m && len == 10 && !memcmp(m, "MANIFEST-1", 10), "manifest round trip");

    u = o = NULL;
    is_int(iss_upload_create(&u, root, NULL, "/p", NULL, 0, gp), APR_SUCCESS,
           "create anonymous, empty manifest");
    if (u && iss_upload_open(&o, root, iss_upload_id(u), gp) == APR_SUCCESS) {
        is_str(iss_upload_user(o), "", "anonymous user reads back as \"\"");
        m = slurp_manifest(o, &len);
        ok(m && len == 0, "empty manifest round trip");
    }
    else {
        ok(0, "open anonymous session");
        ok(0, "empty manifest");
    }
    u = NULL;
    is_int(iss_upload_create(&u, root, "", "", NULL, 0, gp), APR_SUCCESS,
           "empty user and path are fine");
    if (u && iss_upload_open(&o, root, iss_upload_id(u), gp) == APR_SUCCESS) {
        ok(!strcmp(iss_upload_user(o), "") && !strcmp(iss_upload_path(o), ""),
           "... and read back");
    }
    else {
        ok(0, "open session with empty user and path");
    }
    ok(iss_upload_create(&u, at(base, "no/such/parent"), "a", "/p", NULL, 0,
                         gp) != APR_SUCCESS, "create under a missing parent "
       "fails");
    testfs_rm_rf(root, gp);
}

static void test_unique(void)
{
    const char *root = at(base, "ru");
    apr_hash_t *seen = apr_hash_make(gp);
    int i, good = 0;

    for (i = 0; i < 64; i++) {
        iss_upload_t *u;

        if (iss_upload_create(&u, root, "u", "/p", "m", 1, gp) != APR_SUCCESS) {
            break;
        }
        if (well_formed(iss_upload_id(u))
            && !apr_hash_get(seen, iss_upload_id(u), APR_HASH_KEY_STRING)) {
            good++;
        }
        apr_hash_set(seen, iss_upload_id(u), APR_HASH_KEY_STRING, "");
    }
    is_int(good, 64, "64 sessions, 64 distinct well-formed ids");
    is_int(count_entries(root), 64, "64 directories in ROOT");
    testfs_rm_rf(root, gp);
}

static void test_bad_ids(void)
{
    const char *root = at(base, "rb");
    iss_upload_t *u = NULL, *o;
    char id[64], nul[ISS_UPLOAD_ID_LEN + 1];
    const char *bad[8];
    int i, n = 0, before_root, before_base;

    if (iss_upload_create(&u, root, "u", "/p", "m", 1, gp) != APR_SUCCESS) {
        ok(0, "create for bad ids");
        return;
    }
    /* A valid session reachable as ROOT/../x: only the id check stops
     * open() from going there. */
    ok(testfs_mkdir(at(base, "x"), gp)
       && testfs_put(at(at(base, "x"), "session"), "ISU1\nu\n/p\n", gp)
       && testfs_put(at(at(base, "x"), "manifest"), "", gp),
       "a session-like directory beside ROOT");
    strcpy(id, iss_upload_id(u));
    bad[n++] = "../x";
    bad[n++] = "";
    bad[n++] = apr_pstrndup(gp, id, ISS_UPLOAD_ID_LEN - 1);     /* 31 */
    bad[n++] = apr_pstrcat(gp, id, "0", NULL);                  /* 33 */
    bad[n++] = apr_pstrdup(gp, id);
    for (i = 0; i < ISS_UPLOAD_ID_LEN; i++) {
        if (((char *)bad[n - 1])[i] >= 'a') {
            ((char *)bad[n - 1])[i] -= 'a' - 'A';               /* upper */
        }
    }
    memcpy(nul, id, sizeof(nul));
    nul[7] = '\0';                                              /* NUL */
    bad[n++] = nul;
    bad[n++] = "../rb/../x/../rb/0123456789abcdef0123456789";
    before_root = count_entries(root);
    before_base = count_entries(base);
    for (i = 0; i < n; i++) {
        o = NULL;
        is_int(iss_upload_open(&o, root, bad[i], gp), APR_EINVAL,
               "open(\"%s\") is APR_EINVAL", bad[i]);
        ok(o == NULL, "... and gives no handle");
    }
    is_int(iss_upload_open(&o, root, NULL, gp), APR_EINVAL, "open(NULL)");
    is_int(iss_upload_open(&o, at(base, "missing-root"), "../x", gp),
           APR_EINVAL, "bad id under a missing ROOT");
    ok(!exists(at(base, "missing-root")), "... creates nothing");
    is_int(count_entries(root), before_root, "nothing created in ROOT");
    is_int(count_entries(base), before_base, "nothing created beside it");
    is_int(iss_upload_open(&o, root, "0123456789abcdef0123456789abcdef", gp),
           APR_NOTFOUND, "well-formed id of no session: APR_NOTFOUND");
    is_int(iss_upload_open(&o, at(base, "missing-root"),
                           "0123456789abcdef0123456789abcdef", gp),
           APR_NOTFOUND, "... also under a missing ROOT");
    is_int(iss_upload_open(&o, root, id, gp), APR_SUCCESS,
           "the real id still opens");
    testfs_rm_rf(at(base, "x"), gp);
    testfs_rm_rf(root, gp);
}

static void test_damaged(void)
{
    const char *root = at(base, "rd");
    static const char *const bad[] = {
        "", "ISU1\n", "ISU1\nu\n", "ISU1\nu\n/p", "ISU2\nu\n/p\n",
        "ISU1\nu\n/p\nextra\n", "ISU1\nu\n/p\n\n", "garbage", NULL
    };
    const char *id = "00112233445566778899aabbccddeeff";
    const char *dir = at(root, id);
    iss_upload_t *o;
    apr_array_header_t *infos = NULL;
    int i;

    ok(testfs_mkdir(root, gp) && testfs_mkdir(dir, gp),
       "a session dir made by hand");
    is_int(iss_upload_open(&o, root, id, gp), APR_NOTFOUND,
           "no session file: APR_NOTFOUND");
    for (i = 0; bad[i]; i++) {
        testfs_put(at(dir, "session"), bad[i], gp);
        is_int(iss_upload_open(&o, root, id, gp), APR_NOTFOUND,
               "damaged session file %d: APR_NOTFOUND", i);
    }
    testfs_put(at(dir, "session"), "ISU1\nbob\n/q r\n", gp);
    is_int(iss_upload_open(&o, root, id, gp), APR_SUCCESS,
           "a well-formed one opens");
    testfs_put(at(dir, "session"), "ISU1\nbob\n", gp);
    is_int(iss_upload_list(root, &infos, gp), APR_SUCCESS, "list");
    is_int(infos ? infos->nelts : -1, 0, "a damaged session is not listed");
    testfs_rm_rf(root, gp);
}

static void test_chunks(void)
{
    const char *root = at(base, "rc");
    iss_upload_t *u = NULL;
    unsigned char sha[32], empty[32], other[32];
    char *data = apr_palloc(gp, 100000), *back = apr_palloc(gp, 100001);
    apr_file_t *f = NULL;
    apr_off_t len = -1;
    apr_size_t n = 0;
    const char *dir, *m;
    int i;

    for (i = 0; i < 100000; i++) {
        data[i] = (char)((i * 7919) ^ (i >> 5));
    }
    sha_of(data, 100000, sha);
    sha_of("", 0, empty);
    sha_of("hello", 5, other);
    if (iss_upload_create(&u, root, "u", "/p", "m", 1, gp) != APR_SUCCESS) {
        ok(0, "create for chunks");
        return;
    }
    dir = at(root, iss_upload_id(u));

    is_int(iss_upload_put(u, other, "hellp", 5), ISS_UPLOAD_EMISMATCH,
           "put with wrong bytes: EMISMATCH");
    is_int(iss_upload_put(u, sha, data, 99999), ISS_UPLOAD_EMISMATCH,
           "put with a truncated chunk: EMISMATCH");
    ok(!iss_upload_has(u, other) && !iss_upload_has(u, sha),
       "... nothing staged");
    is_int(count_entries(dir), 2, "... nothing written (no temp file)");

    ok(!iss_upload_has(u, sha), "has: not yet");
    is_int(iss_upload_open_chunk(u, sha, &f, &len, gp), APR_NOTFOUND,
           "open_chunk of a chunk not staged: APR_NOTFOUND");
    is_int(iss_upload_put(u, sha, data, 100000), APR_SUCCESS, "put 100000 bytes");
    ok(iss_upload_has(u, sha), "has: yes");
    ok(exists(at(dir, hex_of(sha))), "stored under its lowercase hex id");
    is_int(mode_of(at(dir, hex_of(sha))), 0600, "chunk file 0600");
    is_int(iss_upload_open_chunk(u, sha, &f, &len, gp), APR_SUCCESS,
           "open_chunk");
    is_int(len, 100000, "... its length");
    if (f) {
        n = 100001;
        apr_file_read_full(f, back, n, &n);
        apr_file_close(f);
    }
    ok(n == 100000 && !memcmp(back, data, 100000), "... the same bytes");

    is_int(iss_upload_put(u, sha, data, 100000), APR_SUCCESS,
           "put again: idempotent");
    is_int(count_entries(dir), 3, "... still one file for it, no temp file");
    is_int(iss_upload_put(u, empty, NULL, 0), APR_SUCCESS, "put the empty chunk");
    f = NULL;
    is_int(iss_upload_open_chunk(u, empty, &f, &len, gp), APR_SUCCESS,
           "open_chunk of the empty chunk");
    is_int(len, 0, "... length 0");
    if (f) {
        apr_file_close(f);
    }

    is_int(iss_upload_set_manifest(u, "MANIFEST-2 longer", 17), APR_SUCCESS,
           "set_manifest");
    m = slurp_manifest(u, &n);
    ok(m && n == 17 && !memcmp(m, "MANIFEST-2 longer", 17),
       "manifest replaced");
    {
        apr_uint64_t msize = 0;

        is_int(iss_upload_manifest_size(u, &msize), APR_SUCCESS,
               "manifest_size");
        ok(msize == 17, "... 17 bytes (%" APR_UINT64_T_FMT ")", msize);
    }
    is_int(iss_upload_set_manifest(u, NULL, 0), APR_SUCCESS,
           "set_manifest empty");
    m = slurp_manifest(u, &n);
    ok(m && n == 0, "manifest now empty");
    is_int(count_entries(dir), 4, "session, manifest, 2 chunks, no temp");
    testfs_rm_rf(root, gp);
}

/* put_verified stages what the caller checked (the frame parser did),
 * without hashing it again. */
static void test_put_verified(void)
{
    const char *root = at(base, "rv");
    iss_upload_t *u;
    unsigned char sha[32];
    const char *dir;

    sha_of("hello", 5, sha);
    if (iss_upload_create(&u, root, "u", "/v", "m", 1, gp) != APR_SUCCESS) {
        ok(0, "create for put_verified");
        return;
    }
    dir = at(root, iss_upload_id(u));
    is_int(iss_upload_put_verified(u, sha, "hello", 5), APR_SUCCESS,
           "put_verified: stages bytes the caller checked");
    ok(iss_upload_has(u, sha), "... staged");
    is_int(iss_upload_put_verified(u, sha, "hello", 5), APR_SUCCESS,
           "... again: idempotent");
    is_int(count_entries(dir), 3, "... session, manifest, one chunk, no temp");
    is_int(iss_upload_put_verified(u, sha, NULL, 5), APR_EINVAL,
           "put_verified of NULL bytes: APR_EINVAL");
    testfs_rm_rf(root, gp);
}

static void test_touch_gc(void)
{
    const char *root = at(base, "rg");
    iss_upload_t *a = NULL, *b = NULL, *o;
    unsigned char sha[32];
    apr_finfo_t fi;
    apr_uint32_t removed = 99;
    apr_uint64_t freed = 99, bbytes;
    apr_time_t t0, now;

    sha_of("chunk-b", 7, sha);
    if (iss_upload_create(&a, root, "a", "/a", "ma", 2, gp) != APR_SUCCESS
        || iss_upload_create(&b, root, "b", "/b", "mb", 2, gp) != APR_SUCCESS
        || iss_upload_put(b, sha, "chunk-b", 7) != APR_SUCCESS) {
        ok(0, "create for gc");
        return;
    }
    ok(backdate(at(at(root, iss_upload_id(a)), "session"), 2 * HOUR)
       && backdate(at(at(root, iss_upload_id(b)), "session"), 2 * HOUR),
       "both sessions last used 2 h ago");
    bbytes = dir_bytes(at(root, iss_upload_id(b)));
    t0 = apr_time_now();
    is_int(iss_upload_touch(a), APR_SUCCESS, "touch A");
    ok(apr_stat(&fi, at(at(root, iss_upload_id(a)), "session"),
                APR_FINFO_MTIME, gp) == APR_SUCCESS
       && fi.mtime >= t0 - apr_time_from_sec(2), "... its session file's "
       "mtime is now");
    now = apr_time_now();
    is_int(iss_upload_gc(root, HOUR, now, &removed, &freed, gp), APR_SUCCESS,
           "gc, max idle 1 h");
    is_int(removed, 1, "one session removed");
    is_int(freed, bbytes, "freed = B's files (%d bytes)", (int)bbytes);
    is_int(iss_upload_open(&o, root, iss_upload_id(b), gp), APR_NOTFOUND,
           "idle B is gone");
    is_int(iss_upload_open(&o, root, iss_upload_id(a), gp), APR_SUCCESS,
           "touched A survives");
    is_int(count_entries(root), 1, "nothing left of B in ROOT");

    is_int(iss_upload_gc(root, HOUR, now + HOUR / 2, &removed, &freed, gp),
           APR_SUCCESS, "gc half an hour later");
    is_int(removed, 0, "A not idle long enough yet");
    is_int(freed, 0, "nothing freed");
    is_int(iss_upload_gc(root, HOUR, now + 2 * HOUR, &removed, NULL, gp),
           APR_SUCCESS, "gc two hours later");
    is_int(removed, 1, "A removed then");
    is_int(count_entries(root), 0, "ROOT empty");
    is_int(iss_upload_touch(a), APR_NOTFOUND, "touch of a gone session");
    is_int(iss_upload_gc(at(base, "missing-root"), HOUR, now, &removed,
                         &freed, gp), APR_SUCCESS, "gc of a missing ROOT");
    ok(removed == 0 && freed == 0, "... removes nothing");
    ok(!exists(at(base, "missing-root")), "... creates nothing");
    testfs_rm_rf(root, gp);
}

static void test_gc_leftovers(void)
{
    const char *root = at(base, "rl");
    const char *fresh_id = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const char *stale_id = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    iss_upload_t *c = NULL;
    apr_uint32_t removed = 99;
    apr_uint64_t freed = 0;
    const char *dir;

    if (iss_upload_create(&c, root, "c", "/c", "mc", 2, gp) != APR_SUCCESS) {
        ok(0, "create for leftovers");
        return;
    }
    dir = at(root, iss_upload_id(c));
    ok(testfs_put(at(dir, ".tmp.fresh"), "12345", gp)
       && testfs_put(at(dir, ".tmp.old"), "1234567", gp)
       && backdate(at(dir, ".tmp.old"), 2 * HOUR)
       && testfs_put(at(root, ".tmp.fresh"), "1", gp)
       && testfs_put(at(root, ".tmp.old"), "12", gp)
       && backdate(at(root, ".tmp.old"), 2 * HOUR)
       && testfs_mkdir(at(root, fresh_id), gp)
       && testfs_put(at(at(root, fresh_id), "manifest"), "abc", gp)
       && testfs_mkdir(at(root, stale_id), gp)
       && testfs_put(at(at(root, stale_id), "manifest"), "abcd", gp)
       && backdate(at(root, stale_id), 2 * HOUR)
       && testfs_mkdir(at(root, ".dead.x"), gp)
       && testfs_put(at(at(root, ".dead.x"), "f"), "123456789", gp)
       && testfs_put(at(root, "README"), "not ours", gp)
       && backdate(at(root, "README"), 2 * HOUR),
       "leftovers made");
    is_int(iss_upload_gc(root, HOUR, apr_time_now(), &removed, &freed, gp),
           APR_SUCCESS, "gc");
    is_int(removed, 0, "no session removed (C is in use)");
    ok(exists(at(dir, ".tmp.fresh")), "fresh temp file in a session kept");
    ok(!exists(at(dir, ".tmp.old")), "stale temp file in a session removed");
    ok(exists(at(root, ".tmp.fresh")), "fresh temp file in ROOT kept");
    ok(!exists(at(root, ".tmp.old")), "stale temp file in ROOT removed");
    ok(exists(at(root, fresh_id)), "fresh session-less dir kept (a create "
       "in progress)");
    ok(!exists(at(root, stale_id)), "stale session-less dir removed");
    ok(!exists(at(root, ".dead.x")), "unfinished removal finished");
    ok(exists(at(root, "README")), "foreign name left alone");
    is_int(freed, 7 + 2 + 4 + 9, "freed counts the files deleted");
    is_int(iss_upload_open(&c, root, iss_upload_id(c), gp), APR_SUCCESS,
           "C still opens");
    testfs_rm_rf(root, gp);
}

static void test_list_usage(void)
{
    const char *root = at(base, "rs");
    iss_upload_t *s[3] = { NULL, NULL, NULL };
    unsigned char c1[32], c2[32];
    apr_array_header_t *infos = NULL;
    apr_uint32_t sessions = 99;
    apr_uint64_t bytes = 99;
    apr_time_t t0 = apr_time_now() - apr_time_from_sec(2);
    int i, j, matched = 0, sorted = 1;

    sha_of("12345", 5, c1);
    sha_of("1234567", 7, c2);
    if (iss_upload_create(&s[0], root, "u1", "/one", "0123456789", 10, gp)
        || iss_upload_put(s[0], c1, "12345", 5)
        || iss_upload_put(s[0], c2, "1234567", 7)
        || iss_upload_create(&s[1], root, NULL, "/two", NULL, 0, gp)
        || iss_upload_create(&s[2], root, "u3", "/three", "abc", 3, gp)
        || iss_upload_put(s[2], c2, "1234567", 7)
        || !testfs_mkdir(at(root, "cccccccccccccccccccccccccccccccc"), gp)) {
        ok(0, "sessions for list");
        return;
    }
    is_int(iss_upload_list(root, &infos, gp), APR_SUCCESS, "list");
    is_int(infos ? infos->nelts : -1, 3, "three sessions (not the dir "
           "without a session file)");
    for (i = 0; infos && i < infos->nelts; i++) {
        const iss_upload_info_t *in = &APR_ARRAY_IDX(infos, i,
                                                     iss_upload_info_t);
        static const apr_uint32_t want_chunks[3] = { 2, 0, 1 };
        static const apr_uint64_t want_bytes[3] = { 22, 0, 10 };
        static const char *const want_user[3] = { "u1", "", "u3" };
        static const char *const want_path[3] = { "/one", "/two", "/three" };

        if (i > 0 && strcmp(APR_ARRAY_IDX(infos, i - 1, iss_upload_info_t).id,
                            in->id) >= 0) {
            sorted = 0;
        }
        for (j = 0; j < 3; j++) {
            if (!strcmp(in->id, iss_upload_id(s[j]))
                && !strcmp(in->user, want_user[j])
                && !strcmp(in->path, want_path[j])
                && in->chunks == want_chunks[j] && in->bytes == want_bytes[j]
                && in->touched >= t0 && in->touched <= apr_time_now()) {
                matched++;
            }
        }
    }
    is_int(matched, 3, "each with its id, user, path, chunks, bytes, time");
    ok(sorted, "ordered by id");
    is_int(iss_upload_usage(root, &sessions, &bytes, gp), APR_SUCCESS, "usage");
    is_int(sessions, 3, "usage: 3 sessions");
    is_int(bytes, 32, "usage: 32 bytes (chunks + manifests)");
    is_int(iss_upload_list(at(base, "missing-root"), &infos, gp), APR_SUCCESS,
           "list of a missing ROOT");
    is_int(infos->nelts, 0, "... is empty");
    is_int(iss_upload_usage(at(base, "missing-root"), &sessions, &bytes, gp),
           APR_SUCCESS, "usage of a missing ROOT");
    ok(sessions == 0 && bytes == 0, "... is 0, 0");
    testfs_rm_rf(root, gp);
}

static void test_remove(void)
{
    const char *root = at(base, "rr");
    iss_upload_t *u = NULL, *h = NULL, *o;
    unsigned char c1[32], c2[32];
    void *buf;
    apr_size_t len;

    sha_of("12345", 5, c1);
    sha_of("1234567", 7, c2);
    if (iss_upload_create(&u, root, "u", "/p", "m", 1, gp) != APR_SUCCESS
        || iss_upload_put(u, c1, "12345", 5) != APR_SUCCESS
        || iss_upload_open(&h, root, iss_upload_id(u), gp) != APR_SUCCESS) {
        ok(0, "create for remove");
        return;
    }
    is_int(iss_upload_remove(u), APR_SUCCESS, "remove");
    is_int(iss_upload_open(&o, root, iss_upload_id(u), gp), APR_NOTFOUND,
           "open after remove: APR_NOTFOUND");
    is_int(count_entries(root), 0, "ROOT empty (no .dead.* left)");
    is_int(iss_upload_remove(u), APR_SUCCESS, "remove again: fine");

    /* h was opened before the removal (another request, another process) */
    is_int(iss_upload_put(h, c2, "1234567", 7), APR_NOTFOUND,
           "put into a removed session: APR_NOTFOUND");
    is_int(iss_upload_set_manifest(h, "x", 1), APR_NOTFOUND,
           "set_manifest: APR_NOTFOUND");
    is_int(iss_upload_manifest(h, &buf, &len, gp), APR_NOTFOUND,
           "manifest: APR_NOTFOUND");
    {
        apr_uint64_t msize = 1;

        is_int(iss_upload_manifest_size(h, &msize), APR_NOTFOUND,
               "manifest_size: APR_NOTFOUND");
        ok(msize == 0, "... and 0");
    }
    is_int(iss_upload_touch(h), APR_NOTFOUND, "touch: APR_NOTFOUND");
    ok(!iss_upload_has(h, c1), "has: no");
    is_int(count_entries(root), 0, "... nothing recreated in ROOT");
    testfs_rm_rf(root, gp);
}

static void test_refused(void)
{
    const char *root = at(base, "rn");
    iss_upload_t *u = NULL;

    is_int(iss_upload_create(&u, root, "a\nb", "/p", NULL, 0, gp), APR_EINVAL,
           "user with a newline: APR_EINVAL");
    is_int(iss_upload_create(&u, root, "a", "/p\n/q", NULL, 0, gp), APR_EINVAL,
           "path with a newline: APR_EINVAL");
    is_int(iss_upload_create(&u, root, "a", "\n", NULL, 0, gp), APR_EINVAL,
           "path that is a newline: APR_EINVAL");
    is_int(iss_upload_create(&u, root, "a", NULL, NULL, 0, gp), APR_EINVAL,
           "NULL path: APR_EINVAL");
    is_int(iss_upload_create(&u, root, "a", "/p", NULL, 5, gp), APR_EINVAL,
           "NULL manifest of 5 bytes: APR_EINVAL");
    ok(u == NULL, "no handle");
    ok(!exists(root), "nothing created (not even ROOT)");
}

int main(int argc, const char *const *argv)
{
    char *tmp;

    apr_app_initialize(&argc, &argv, NULL);
    atexit(apr_terminate);
    apr_pool_create(&gp, NULL);
    tmp = apr_pstrdup(gp, "/tmp/iss-upload-test-XXXXXX");
    if (!mkdtemp(tmp)) {
        ok(0, "mkdtemp");
        return done_testing();
    }
    base = tmp;
    test_create_open();
    test_unique();
    test_bad_ids();
    test_damaged();
    test_chunks();
    test_put_verified();
    test_touch_gc();
    test_gc_leftovers();
    test_list_usage();
    test_remove();
    test_refused();
    testfs_rm_rf(base, gp);
    return done_testing();
}
