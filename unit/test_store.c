/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * Unit tests of libiss/server/iss_store.c, run for each apr_dbm type (sdbm,
 * gdbm, db).  The tests of the DBM layer (damage, journals, crashes in a
 * DBM commit) run with ISS_STORE_CHECKPOINT_BYTES=0, so that every commit
 * is also applied to the DBM at once; the others with a small write-ahead
 * log (64 KiB), so that they also cross checkpoints.  The write-ahead log
 * itself: unit/test_store_wal.c.  TAP on stdout.  Environment:
 *   ISS_TEST_SEED=n          reproduce the random choices of a run
 *   ISS_TEST_KILL_ROUNDS=n   rounds of the kill -9 test (default 15)
 *   ISS_TEST_VERBOSE=1       show the store's log messages
 */

#include "tap.h"
#include "testfs.h"
#include "iss_store.h"

#include <apr_dbm.h>
#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_global_mutex.h>
#include <apr_hash.h>
#include <apr_sdbm.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include <openssl/evp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024 * 1024)

static const char *const TYPES[] = { "sdbm", "gdbm", "db" };
#define NTYPES (sizeof(TYPES) / sizeof(TYPES[0]))

typedef struct {
    int errors;
    int warnings;
    int verbose;
    char last[1024];
} logrec_t;

static void test_log(void *baton, int level, apr_status_t rv, const char *msg)
{
    logrec_t *l = baton;

    if (level <= 3)
        l->errors++;
    else if (level == 4)
        l->warnings++;
    apr_cpystrn(l->last, msg, sizeof(l->last));
    if (l->verbose)
        diag("log level %d: %s", level, msg);
}

static void log_init(logrec_t *l)
{
    const char *v = getenv("ISS_TEST_VERBOSE");

    memset(l, 0, sizeof(*l));
    l->verbose = v && *v && strcmp(v, "0") != 0;
}

/* xorshift64*: reproducible pseudo-random numbers. */
static apr_uint64_t rnd_next(apr_uint64_t *st)
{
    *st ^= *st >> 12;
    *st ^= *st << 25;
    *st ^= *st >> 27;
    return *st * 2685821657736338717ULL;
}

static void fill_random(apr_uint64_t *st, void *buf, apr_size_t n)
{
    unsigned char *b = buf;
    apr_size_t i;

    for (i = 0; i < n; i++)
        b[i] = (unsigned char)(rnd_next(st) >> 56);
}

static apr_size_t kv_len(long i);
static void kv_fill(long i, char *buf);

/* ---- temp directories ---------------------------------------------------- */

typedef struct {
    char *base;                 /* mkdtemp directory, removed at the end */
    const char *dir;            /* the store directory inside it */
} tmp_t;

static int tmp_make(tmp_t *t, apr_pool_t *p)
{
    apr_status_t rv;

    t->base = apr_pstrdup(p, "/tmp/iss-store-test-XXXXXX");
    if (!mkdtemp(t->base)) {
        diag("mkdtemp failed");
        return 0;
    }
    t->dir = apr_pstrcat(p, t->base, "/state", NULL);
    rv = apr_dir_make_recursive(t->dir, APR_FPROT_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        diag("apr_dir_make_recursive(%s) failed: %d", t->dir, rv);
        return 0;
    }
    return 1;
}


static void tmp_done(tmp_t *t, apr_pool_t *p)
{
    if (t->base)
        testfs_rm_rf(t->base, p);
}

static const char *in_dir(const tmp_t *t, apr_pool_t *p, const char *name)
{
    return apr_pstrcat(p, t->dir, "/", name, NULL);
}

static int exists(const char *path, apr_pool_t *p)
{
    apr_finfo_t fi;

    return apr_stat(&fi, path, APR_FINFO_TYPE, p) == APR_SUCCESS;
}

/* The files apr_dbm uses for the DBM named @a name in the store. */
static int dbm_files(const tmp_t *t, apr_pool_t *p, const char *type,
                     const char *name, const char **f1, const char **f2)
{
    return apr_dbm_get_usednames_ex(p, type, in_dir(t, p, name), f1, f2)
           == APR_SUCCESS;
}

static int write_file(const char *path, const void *data, apr_size_t n,
                      apr_pool_t *p)
{
    apr_file_t *f;

    if (apr_file_open(&f, path, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                      | APR_FOPEN_TRUNCATE | APR_FOPEN_BINARY,
                      APR_FPROT_OS_DEFAULT, p) != APR_SUCCESS)
        return 0;
    if (n && apr_file_write_full(f, data, n, NULL) != APR_SUCCESS) {
        apr_file_close(f);
        return 0;
    }
    return apr_file_close(f) == APR_SUCCESS;
}

static char *read_file(const char *path, apr_pool_t *p, apr_size_t *n)
{
    apr_file_t *f;
    apr_finfo_t fi;
    char *buf;

    if (apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                      APR_OS_DEFAULT, p) != APR_SUCCESS)
        return NULL;
    if (apr_file_info_get(&fi, APR_FINFO_SIZE, f) != APR_SUCCESS) {
        apr_file_close(f);
        return NULL;
    }
    *n = (apr_size_t)fi.size;
    buf = apr_palloc(p, *n + 1);
    if (*n && apr_file_read_full(f, buf, *n, NULL) != APR_SUCCESS) {
        apr_file_close(f);
        return NULL;
    }
    buf[*n] = '\0';
    apr_file_close(f);
    return buf;
}

/* Overwrite a file in place with pseudo-random bytes (same size, >= 4 KiB). */
static int garble(const char *path, apr_uint64_t *st, apr_pool_t *p)
{
    apr_size_t n;
    char *buf = read_file(path, p, &n);

    if (!buf)
        return 0;
    if (n < 4096) {
        n = 4096;
        buf = apr_palloc(p, n);
    }
    fill_random(st, buf, n);
    return write_file(path, buf, n, p);
}

/* Flip one byte of the first occurrence of @a marker in a file. */
static int flip_marker(const char *path, const char *marker, apr_pool_t *p)
{
    apr_size_t n, m = strlen(marker), i;
    char *buf = read_file(path, p, &n);

    if (!buf || n < m)
        return 0;
    for (i = 0; i + m <= n; i++) {
        if (memcmp(buf + i, marker, m) == 0) {
            buf[i + m / 2] ^= 0x20;
            return write_file(path, buf, n, p);
        }
    }
    return 0;
}

/* ---- store helpers ------------------------------------------------------- */

static iss_store_t *open_store(const char *dir, const char *type,
                               apr_global_mutex_t *mutex, logrec_t *log,
                               apr_pool_t *p, apr_status_t *prv)
{
    iss_store_t *s = NULL;
    apr_status_t rv = iss_store_open(&s, dir, type, mutex, log ? test_log : NULL,
                                     log, p);

    if (prv)
        *prv = rv;
    if (rv != APR_SUCCESS) {
        if (!prv)
            diag("iss_store_open(%s, %s): %d %s", dir, type, rv,
                 s ? iss_store_last_error(s) : "");
        return NULL;
    }
    return s;
}

/* A new store of @a type in a new temp dir @a t, logging into @a log; on
 * failure a failed test is reported, @a t removed and NULL returned. */
static iss_store_t *fresh_store(tmp_t *t, const char *type, logrec_t *log,
                                apr_pool_t *pool)
{
    iss_store_t *s = NULL;

    log_init(log);
    if (!tmp_make(t, pool)
        || !(s = open_store(t->dir, type, NULL, log, pool, NULL))) {
        ok(0, "[%s] open", type);
        tmp_done(t, pool);
    }
    return s;
}

static apr_status_t put_s(iss_store_t *s, const char *k, const char *v)
{
    return iss_store_put(s, k, strlen(k), v, strlen(v));
}

/* 1 if @a key holds exactly @a want (and the copy is NUL-terminated). */
static int holds(iss_store_t *s, const void *key, apr_size_t klen,
                 const void *want, apr_size_t wlen, apr_pool_t *pool)
{
    apr_pool_t *p;
    void *v = NULL;
    apr_size_t vl = 0;
    apr_status_t rv;
    int r;

    apr_pool_create(&p, pool);
    rv = iss_store_get(s, key, klen, &v, &vl, p);
    r = rv == APR_SUCCESS && vl == wlen && (wlen == 0 || !memcmp(v, want, wlen))
        && ((char *)v)[vl] == '\0';
    if (!r)
        diag("get: rv=%d (%s) len=%lu want %lu", rv,
             rv ? iss_store_last_error(s) : "", (unsigned long)vl,
             (unsigned long)wlen);
    apr_pool_destroy(p);
    return r;
}

static int holds_s(iss_store_t *s, const char *k, const char *v,
                   apr_pool_t *p)
{
    return holds(s, k, strlen(k), v, strlen(v), p);
}

static apr_status_t get_rv(iss_store_t *s, const void *key, apr_size_t klen,
                           apr_pool_t *pool)
{
    apr_pool_t *p;
    void *v;
    apr_size_t vl;
    apr_status_t rv;

    apr_pool_create(&p, pool);
    rv = iss_store_get(s, key, klen, &v, &vl, p);
    apr_pool_destroy(p);
    return rv;
}

static apr_status_t get_s_rv(iss_store_t *s, const char *k, apr_pool_t *p)
{
    return get_rv(s, k, strlen(k), p);
}

static int verify_ok(iss_store_t *s, apr_pool_t *pool)
{
    apr_pool_t *p;
    apr_status_t rv;

    apr_pool_create(&p, pool);
    rv = iss_store_verify(s, p);
    apr_pool_destroy(p);
    if (rv != APR_SUCCESS)
        diag("verify: %d %s", rv, iss_store_last_error(s));
    return rv == APR_SUCCESS;
}

/* Iteration into a hash: key bytes -> value copy. */
typedef struct {
    apr_pool_t *pool;
    apr_hash_t *seen;
    int count;
    int stop_after;
} collect_t;

static int collect(void *baton, const void *key, apr_size_t klen,
                   const void *val, apr_size_t vlen)
{
    collect_t *c = baton;
    char *k = apr_pmemdup(c->pool, key, klen ? klen : 1);
    apr_size_t *v = apr_palloc(c->pool, sizeof(apr_size_t) + vlen + 1);

    *v = vlen;
    if (vlen)
        memcpy(v + 1, val, vlen);
    c->count++;
    apr_hash_set(c->seen, k, (apr_ssize_t)klen, v);
    if (c->stop_after && c->count >= c->stop_after)
        return 4242;
    return 0;
}

static apr_status_t iterate(iss_store_t *s, const char *prefix, collect_t *c,
                            apr_pool_t *p)
{
    c->pool = p;
    c->seen = apr_hash_make(p);
    c->count = 0;
    return iss_store_iterate(s, prefix, prefix ? strlen(prefix) : 0, collect,
                             c, p);
}

static int seen_is(collect_t *c, const void *k, apr_size_t kl, const void *v,
                   apr_size_t vl)
{
    apr_size_t *got = apr_hash_get(c->seen, k, (apr_ssize_t)kl);

    return got && *got == vl && (vl == 0 || memcmp(got + 1, v, vl) == 0);
}

/* ---- behavioural tests ---------------------------------------------------- */

static void t_basic(const char *type, apr_pool_t *pool)
{
    tmp_t t = { 0 };
    logrec_t log;
    iss_store_t *s;
    apr_status_t rv;
    char big[ISS_STORE_MAX_KEY + 2];

    log_init(&log);
    if (!tmp_make(&t, pool)) {
        ok(0, "[%s] temp dir", type);
        return;
    }
    s = open_store(t.dir, type, NULL, &log, pool, &rv);
    is_int(rv, APR_SUCCESS, "[%s] open creates a store in an empty dir", type);
    if (!s)
        goto done;
    ok(strlen(iss_store_id(s)) == 36, "[%s] store id looks like a UUID: %s",
       type, iss_store_id(s));
    is_int(get_s_rv(s, "alpha", pool), APR_NOTFOUND,
           "[%s] get of an absent key is APR_NOTFOUND", type);
    is_int(put_s(s, "alpha", "one"), APR_SUCCESS, "[%s] put", type);
    ok(holds_s(s, "alpha", "one", pool), "[%s] get returns the value", type);
    is_int(put_s(s, "alpha", "one, but a good deal longer now"), APR_SUCCESS,
           "[%s] overwrite with a longer value", type);
    ok(holds_s(s, "alpha", "one, but a good deal longer now", pool),
       "[%s] get returns the longer value", type);
    is_int(put_s(s, "alpha", "1"), APR_SUCCESS,
           "[%s] overwrite with a shorter value", type);
    ok(holds_s(s, "alpha", "1", pool), "[%s] get returns the shorter value",
       type);
    is_int(iss_store_delete(s, "alpha", 5), APR_SUCCESS, "[%s] delete", type);
    is_int(get_s_rv(s, "alpha", pool), APR_NOTFOUND,
           "[%s] deleted key is gone", type);
    is_int(iss_store_delete(s, "alpha", 5), APR_SUCCESS,
           "[%s] deleting an absent key is not an error", type);
    is_int(iss_store_delete(s, "never", 5), APR_SUCCESS,
           "[%s] deleting a never-seen key is not an error", type);
    is_int(iss_store_put(s, "", 0, "empty key", 9), APR_SUCCESS,
           "[%s] the empty key can be stored", type);
    ok(holds(s, "", 0, "empty key", 9, pool), "[%s] and read back", type);

    memset(big, 'x', sizeof(big));
    is_int(iss_store_put(s, big, ISS_STORE_MAX_KEY + 1, "v", 1),
           ISS_STORE_ETOOBIG, "[%s] a key over ISS_STORE_MAX_KEY is refused",
           type);
    ok(strstr(iss_store_last_error(s), "limit") != NULL,
       "[%s] ... with a message: %s", type, iss_store_last_error(s));
    is_int(get_rv(s, big, ISS_STORE_MAX_KEY + 1, pool), ISS_STORE_ETOOBIG,
           "[%s] get of an over-long key is ISS_STORE_ETOOBIG", type);
    is_int(iss_store_put(s, big, ISS_STORE_MAX_KEY, "v", 1), APR_SUCCESS,
           "[%s] a key of exactly ISS_STORE_MAX_KEY is stored", type);
    ok(holds(s, big, ISS_STORE_MAX_KEY, "v", 1, pool), "[%s] and read back",
       type);
    ok(verify_ok(s, pool), "[%s] verify passes", type);
    is_int(log.errors, 0, "[%s] no errors were logged", type);
    {
        apr_finfo_t fi;
        const char *f1, *f2;
        int good = 1;

        if (apr_stat(&fi, in_dir(&t, pool, "iss-store.meta"), APR_FINFO_PROT,
                     pool) != APR_SUCCESS
            || (fi.protection & (APR_FPROT_WREAD | APR_FPROT_WWRITE
                                 | APR_FPROT_GWRITE | APR_FPROT_UEXECUTE)))
            good = 0;
        if (!dbm_files(&t, pool, type, "iss-store.g1", &f1, &f2)
            || apr_stat(&fi, f1, APR_FINFO_PROT, pool) != APR_SUCCESS
            || (fi.protection & (APR_FPROT_WREAD | APR_FPROT_WWRITE
                                 | APR_FPROT_GWRITE | APR_FPROT_UEXECUTE))
            || !(fi.protection & APR_FPROT_UWRITE))
            good = 0;
        ok(good, "[%s] files are created without world or group-write access",
           type);
    }
    iss_store_close(s);
    is_int(get_s_rv(s, "x", pool), APR_EINVAL,
           "[%s] a closed handle refuses operations", type);
done:
    tmp_done(&t, pool);
}

static void t_sizes(const char *type, apr_pool_t *pool)
{
    static const char utf8[] = "dir/\xc3\xbc \xc3\xb1 \xe6\x97\xa5\xe6\x9c\xac"
                               "\xe8\xaa\x9e/file name.txt";
    static const char bin1[] = { 0, 'a', 0, 'b', 0, 0 };
    static const char bin2[] = { 0, 'a', 0, 'c', 0, 0 };
    apr_uint64_t st = 12345;
    tmp_t t = { 0 };
    logrec_t log;
    iss_store_t *s;
    char *k1000, *k4000, *v1k, *v1m, *k200, *k201;
    apr_size_t i;

    if (!(s = fresh_store(&t, type, &log, pool)))
        return;
    k1000 = apr_palloc(pool, 1000);
    k4000 = apr_palloc(pool, 4000);
    k200 = apr_palloc(pool, 200);
    k201 = apr_palloc(pool, 201);
    for (i = 0; i < 4000; i++)
        k4000[i] = (char)('a' + i % 26);
    memcpy(k1000, k4000, 1000);
    memcpy(k200, k4000, 200);
    memcpy(k201, k4000, 201);
    k1000[999] = '!';              /* not a prefix of k4000 */
    v1k = apr_palloc(pool, 1024);
    v1m = apr_palloc(pool, MIB);
    fill_random(&st, v1k, 1024);
    fill_random(&st, v1m, MIB);

    is_int(iss_store_put(s, k1000, 1000, "thousand", 8), APR_SUCCESS,
           "[%s] put with a 1000-byte key", type);
    is_int(iss_store_put(s, k4000, 4000, "four thousand", 13), APR_SUCCESS,
           "[%s] put with a 4000-byte key", type);
    is_int(iss_store_put(s, k200, 200, "200", 3), APR_SUCCESS,
           "[%s] put with a 200-byte key", type);
    is_int(iss_store_put(s, k201, 201, "201", 3), APR_SUCCESS,
           "[%s] put with a 201-byte key", type);
    ok(holds(s, k1000, 1000, "thousand", 8, pool), "[%s] 1000-byte key", type);
    ok(holds(s, k4000, 4000, "four thousand", 13, pool),
       "[%s] 4000-byte key", type);
    ok(holds(s, k200, 200, "200", 3, pool) && holds(s, k201, 201, "201", 3,
                                                    pool),
       "[%s] keys either side of the hashing threshold", type);
    is_int(put_s(s, utf8, "utf-8"), APR_SUCCESS,
           "[%s] put with spaces and UTF-8 in the key", type);
    ok(holds_s(s, utf8, "utf-8", pool), "[%s] UTF-8 key read back", type);
    is_int(iss_store_put(s, bin1, sizeof(bin1), "b1", 2), APR_SUCCESS,
           "[%s] put with NUL bytes in the key", type);
    is_int(iss_store_put(s, bin2, sizeof(bin2), "b2", 2), APR_SUCCESS,
           "[%s] put with another key differing after a NUL", type);
    ok(holds(s, bin1, sizeof(bin1), "b1", 2, pool)
       && holds(s, bin2, sizeof(bin2), "b2", 2, pool),
       "[%s] binary keys are kept apart", type);
    is_int(get_rv(s, bin1, 2, pool), APR_NOTFOUND,
           "[%s] a prefix of a binary key is another key", type);

    is_int(iss_store_put(s, "zero", 4, "", 0), APR_SUCCESS,
           "[%s] put of a 0-byte value", type);
    ok(holds(s, "zero", 4, "", 0, pool), "[%s] 0-byte value read back", type);
    is_int(iss_store_put(s, "onek", 4, v1k, 1024), APR_SUCCESS,
           "[%s] put of a 1 KiB value", type);
    ok(holds(s, "onek", 4, v1k, 1024, pool), "[%s] 1 KiB value read back",
       type);
    is_int(iss_store_put(s, "onem", 4, v1m, MIB), APR_SUCCESS,
           "[%s] put of a 1 MiB value", type);
    ok(holds(s, "onem", 4, v1m, MIB, pool), "[%s] 1 MiB value read back",
       type);
    is_int(iss_store_put(s, k4000, 4000, v1m, MIB), APR_SUCCESS,
           "[%s] put of a 1 MiB value under a 4000-byte key", type);
    ok(holds(s, k4000, 4000, v1m, MIB, pool), "[%s] ... read back", type);
    ok(verify_ok(s, pool), "[%s] verify passes with segmented values", type);

    /* Shrinking and deleting must drop the old segments. */
    is_int(iss_store_put(s, "onem", 4, "small", 5), APR_SUCCESS,
           "[%s] overwrite 1 MiB with a small value", type);
    ok(holds(s, "onem", 4, "small", 5, pool), "[%s] ... read back", type);
    is_int(iss_store_put(s, k4000, 4000, v1k, 1024), APR_SUCCESS,
           "[%s] overwrite 1 MiB with 1 KiB under the long key", type);
    ok(holds(s, k4000, 4000, v1k, 1024, pool), "[%s] ... read back", type);
    is_int(iss_store_put(s, "grow", 4, v1m, 300000), APR_SUCCESS,
           "[%s] put 300 KB", type);
    is_int(iss_store_delete(s, "grow", 4), APR_SUCCESS,
           "[%s] delete a segmented value", type);
    is_int(get_s_rv(s, "grow", pool), APR_NOTFOUND, "[%s] ... gone", type);
    ok(verify_ok(s, pool), "[%s] verify passes: no stale segments", type);
    {
        collect_t c = { 0 };

        is_int(iterate(s, NULL, &c, pool), APR_SUCCESS, "[%s] iterate", type);
        is_int(c.count, 10, "[%s] ... sees exactly the 10 keys (no segments)",
               type);
    }
    is_int(log.errors, 0, "[%s] no errors were logged", type);
    tmp_done(&t, pool);
}

static void t_iterate(const char *type, apr_pool_t *pool)
{
    tmp_t t = { 0 };
    logrec_t log;
    iss_store_t *s;
    collect_t c = { 0 };
    apr_uint64_t st = 99;
    char *lk, *bigv, name[32];
    int i, good;

    if (!(s = fresh_store(&t, type, &log, pool)))
        return;
    lk = apr_palloc(pool, 1500);
    memset(lk, 'L', 1500);
    memcpy(lk, "dir/", 4);
    bigv = apr_palloc(pool, 100000);
    fill_random(&st, bigv, 100000);
    good = 1;
    for (i = 0; i < 50; i++) {
        apr_snprintf(name, sizeof(name), "dir/%02d", i);
        good &= put_s(s, name, name + 4) == APR_SUCCESS;
    }
    for (i = 0; i < 20; i++) {
        apr_snprintf(name, sizeof(name), "other/%02d", i);
        good &= put_s(s, name, "o") == APR_SUCCESS;
    }
    good &= iss_store_put(s, lk, 1500, "long", 4) == APR_SUCCESS;
    good &= iss_store_put(s, "dir/big", 7, bigv, 100000) == APR_SUCCESS;
    good &= iss_store_put(s, "di", 2, "short", 5) == APR_SUCCESS;
    ok(good, "[%s] 73 keys stored", type);

    is_int(iterate(s, NULL, &c, pool), APR_SUCCESS, "[%s] iterate all", type);
    is_int(c.count, 73, "[%s] ... visits 73 keys", type);
    good = 1;
    for (i = 0; i < 50; i++) {
        apr_snprintf(name, sizeof(name), "dir/%02d", i);
        good &= seen_is(&c, name, strlen(name), name + 4, 2);
    }
    good &= seen_is(&c, lk, 1500, "long", 4);
    good &= seen_is(&c, "dir/big", 7, bigv, 100000);
    good &= seen_is(&c, "other/07", 8, "o", 1);
    ok(good, "[%s] ... with the right keys and values, long ones included",
       type);

    is_int(iterate(s, "dir/", &c, pool), APR_SUCCESS,
           "[%s] iterate with prefix", type);
    is_int(c.count, 52, "[%s] ... visits the 52 keys under dir/", type);
    ok(seen_is(&c, lk, 1500, "long", 4) && seen_is(&c, "dir/big", 7, bigv,
                                                   100000)
       && !apr_hash_get(c.seen, "di", 2)
       && !apr_hash_get(c.seen, "other/07", 8),
       "[%s] ... including the hashed long key, and nothing else", type);
    is_int(iterate(s, "nothing/", &c, pool), APR_SUCCESS,
           "[%s] iterate with a prefix nothing has", type);
    is_int(c.count, 0, "[%s] ... visits nothing", type);
    c.stop_after = 3;
    is_int(iterate(s, NULL, &c, pool), 4242,
           "[%s] a non-zero callback result stops and is returned", type);
    is_int(c.count, 3, "[%s] ... after 3 keys", type);
    is_int(log.errors, 0, "[%s] no errors were logged", type);
    tmp_done(&t, pool);
}

typedef struct {
    int phase;
    apr_pool_t *pool;
    int checks;
} txn_baton_t;

static apr_status_t txn_abort(void *baton, iss_store_txn_t *txn)
{
    iss_store_txn_put(txn, "abort1", 6, "x", 1);
    iss_store_txn_delete(txn, "a", 1);
    return APR_EGENERAL;
}

static apr_status_t txn_own(void *baton, iss_store_txn_t *txn)
{
    txn_baton_t *b = baton;
    void *v;
    apr_size_t vl;

    b->checks = 0;
    if (iss_store_txn_get(txn, "a", 1, &v, &vl, b->pool) == APR_SUCCESS
        && vl == 2 && !memcmp(v, "va", 2))
        b->checks |= 1;
    iss_store_txn_put(txn, "a", 1, "changed", 7);
    if (iss_store_txn_get(txn, "a", 1, &v, &vl, b->pool) == APR_SUCCESS
        && vl == 7 && !memcmp(v, "changed", 7) && ((char *)v)[7] == '\0')
        b->checks |= 2;
    iss_store_txn_delete(txn, "b", 1);
    if (iss_store_txn_get(txn, "b", 1, &v, &vl, b->pool) == APR_NOTFOUND)
        b->checks |= 4;
    iss_store_txn_put(txn, "c2", 2, "new", 3);
    if (iss_store_txn_get(txn, "c2", 2, &v, &vl, b->pool) == APR_SUCCESS
        && vl == 3)
        b->checks |= 8;
    if (iss_store_txn_get(txn, "none", 4, &v, &vl, b->pool) == APR_NOTFOUND)
        b->checks |= 16;
    return APR_SUCCESS;
}

static void t_batch(const char *type, apr_pool_t *pool)
{
    tmp_t t = { 0 };
    logrec_t log;
    iss_store_t *s;
    iss_store_batch_t *b;
    txn_baton_t tb = { 0, pool, 0 };
    apr_uint64_t st = 7;
    char *v50k;
    char big[ISS_STORE_MAX_KEY + 1];

    if (!(s = fresh_store(&t, type, &log, pool)))
        return;
    v50k = apr_palloc(pool, 50000);
    fill_random(&st, v50k, 50000);
    ok(put_s(s, "x", "old") == APR_SUCCESS && put_s(s, "y", "y") == APR_SUCCESS,
       "[%s] setup", type);
    b = iss_store_batch_make(s, pool);
    iss_store_batch_put(b, "a", 1, "va", 2);
    iss_store_batch_put(b, "b", 1, "vb", 2);
    iss_store_batch_put(b, "c", 1, v50k, 50000);
    iss_store_batch_delete(b, "x", 1);
    iss_store_batch_delete(b, "nope", 4);
    iss_store_batch_put(b, "y", 1, "first", 5);
    iss_store_batch_put(b, "y", 1, "new", 3);
    is_int(get_s_rv(s, "a", pool), APR_NOTFOUND,
           "[%s] a staged batch writes nothing", type);
    is_int(iss_store_batch_commit(b), APR_SUCCESS, "[%s] batch commit", type);
    ok(holds_s(s, "a", "va", pool) && holds_s(s, "b", "vb", pool)
       && holds(s, "c", 1, v50k, 50000, pool),
       "[%s] the batch's puts landed", type);
    is_int(get_s_rv(s, "x", pool), APR_NOTFOUND,
           "[%s] the batch's delete landed", type);
    ok(holds_s(s, "y", "new", pool), "[%s] the last put of a key wins", type);

    is_int(iss_store_txn(s, txn_abort, NULL, pool), APR_EGENERAL,
           "[%s] an aborted txn returns its function's status", type);
    is_int(get_s_rv(s, "abort1", pool), APR_NOTFOUND,
           "[%s] ... and writes nothing", type);
    ok(holds_s(s, "a", "va", pool), "[%s] ... and deletes nothing", type);

    is_int(iss_store_txn(s, txn_own, &tb, pool), APR_SUCCESS,
           "[%s] txn commit", type);
    is_int(tb.checks, 31, "[%s] txn_get sees the store, then the txn's own "
           "puts and deletes", type);
    ok(holds_s(s, "a", "changed", pool) && holds_s(s, "c2", "new", pool),
       "[%s] the txn's puts landed", type);
    is_int(get_s_rv(s, "b", pool), APR_NOTFOUND,
           "[%s] the txn's delete landed", type);

    memset(big, 'k', sizeof(big));
    b = iss_store_batch_make(s, pool);
    iss_store_batch_put(b, "ok-part", 7, "v", 1);
    iss_store_batch_put(b, big, sizeof(big), "v", 1);
    is_int(iss_store_batch_commit(b), ISS_STORE_ETOOBIG,
           "[%s] a batch with an over-long key fails", type);
    is_int(get_s_rv(s, "ok-part", pool), APR_NOTFOUND,
           "[%s] ... and writes nothing", type);
    ok(verify_ok(s, pool), "[%s] verify passes", type);
    is_int(log.errors, 0, "[%s] no errors were logged", type);
    tmp_done(&t, pool);
}

static const char *other_type(const char *type)
{
    if (!strcmp(type, "sdbm"))
        return "gdbm";
    if (!strcmp(type, "gdbm"))
        return "db";
    return "sdbm";
}

static void t_persist(const char *type, apr_pool_t *pool)
{
    tmp_t t = { 0 };
    logrec_t log;
    iss_store_t *s;
    apr_pool_t *p1, *p2;
    apr_status_t rv;
    char id[64];
    const char *other = other_type(type);

    log_init(&log);
    if (!tmp_make(&t, pool)) {
        ok(0, "[%s] temp dir", type);
        return;
    }
    apr_pool_create(&p1, pool);
    s = open_store(t.dir, type, NULL, &log, p1, NULL);
    ok(s && put_s(s, "keep", "me") == APR_SUCCESS, "[%s] put", type);
    if (!s)
        goto done;
    apr_cpystrn(id, iss_store_id(s), sizeof(id));
    apr_pool_destroy(p1);

    apr_pool_create(&p2, pool);
    s = open_store(t.dir, type, NULL, &log, p2, NULL);
    ok(s && holds_s(s, "keep", "me", pool), "[%s] reopen keeps the data",
       type);
    is_str(s ? iss_store_id(s) : NULL, id, "[%s] store id is stable", type);
    apr_pool_destroy(p2);

    apr_pool_create(&p2, pool);
    s = open_store(t.dir, apr_pstrdup(pool, type), NULL, &log, p2, NULL);
    ok(s != NULL, "[%s] the type name is not case-sensitive", type);
    apr_pool_destroy(p2);

    apr_pool_create(&p2, pool);
    s = NULL;
    rv = iss_store_open(&s, t.dir, other, NULL, NULL, NULL, p2);
    is_int(rv, ISS_STORE_EDAMAGED, "[%s] opening as %s fails", type, other);
    ok(s && strstr(iss_store_last_error(s), apr_psprintf(pool,
                   "written with DBM type %s, ISSDBMType says %s", type, other)),
       "[%s] ... naming both types: %s", type, s ? iss_store_last_error(s) : "");
    apr_pool_destroy(p2);

    apr_pool_create(&p2, pool);
    s = NULL;
    rv = iss_store_open(&s, t.dir, "default", NULL, NULL, NULL, p2);
    ok(rv == APR_SUCCESS
       || (rv == ISS_STORE_EDAMAGED
           && strstr(iss_store_last_error(s), "ISSDBMType says default (")),
       "[%s] \"default\" is resolved to a real type (%s)", type,
       rv ? iss_store_last_error(s) : "same type");
    apr_pool_destroy(p2);

    apr_pool_create(&p2, pool);
    s = NULL;
    rv = iss_store_open(&s, in_dir(&t, pool, "missing"), type, NULL, NULL, NULL,
                        p2);
    ok(rv != APR_SUCCESS && !exists(in_dir(&t, pool, "missing"), pool),
       "[%s] a missing directory is an error and is not created", type);
    apr_pool_destroy(p2);
    is_int(log.errors, 0, "[%s] no errors were logged", type);
done:
    tmp_done(&t, pool);
}

/* Open a store that must report damage at open or at the first get. */
static void expect_damage(const tmp_t *t, const char *type, const char *what,
                          const char *needle, apr_pool_t *pool)
{
    apr_pool_t *p;
    iss_store_t *s = NULL;
    logrec_t log;
    apr_status_t rv;

    log_init(&log);
    apr_pool_create(&p, pool);
    rv = iss_store_open(&s, t->dir, type, NULL, test_log, &log, p);
    if (rv == APR_SUCCESS) {
        rv = get_s_rv(s, "k1", p);
        if (rv == APR_SUCCESS || rv == APR_NOTFOUND) {
            apr_status_t vr = iss_store_verify(s, p);

            rv = vr;
        }
    }
    is_int(rv, ISS_STORE_EDAMAGED, "[%s] %s: ISS_STORE_EDAMAGED", type, what);
    ok(s && strstr(iss_store_last_error(s), needle),
       "[%s] ... and the message names %s: %s", type, needle,
       s ? iss_store_last_error(s) : "");
    ok(log.errors > 0, "[%s] ... and it is logged as an error", type);
    apr_pool_destroy(p);
}

static int fill_store(const tmp_t *t, const char *type, int n, apr_pool_t *pool)
{
    apr_pool_t *p;
    iss_store_t *s;
    int i, good;

    apr_pool_create(&p, pool);
    s = open_store(t->dir, type, NULL, NULL, p, NULL);
    good = s != NULL;
    for (i = 1; good && i <= n; i++) {
        char k[16], v[600];

        apr_snprintf(k, sizeof(k), "k%d", i);
        memset(v, 'a' + i % 26, sizeof(v));
        good = iss_store_put(s, k, strlen(k), v, sizeof(v)) == APR_SUCCESS;
    }
    apr_pool_destroy(p);
    return good;
}

static void t_damage(const char *type, apr_pool_t *pool)
{
    static const char marker[] = "MARKER-0123456789-abcdefghijklmnopqrstuvwxyz";
    apr_uint64_t st = 4711;
    tmp_t t = { 0 };
    const char *f1, *f2;
    apr_pool_t *p;
    iss_store_t *s;
    logrec_t log;
    apr_status_t rv;
    int i, good;

    /* One damaged record. */
    if (!tmp_make(&t, pool) || !fill_store(&t, type, 20, pool)) {
        ok(0, "[%s] setup", type);
        tmp_done(&t, pool);
        return;
    }
    apr_pool_create(&p, pool);
    log_init(&log);
    s = open_store(t.dir, type, NULL, &log, p, NULL);
    ok(s && put_s(s, "victim", marker) == APR_SUCCESS, "[%s] put a victim",
       type);
    apr_pool_destroy(p);
    ok(dbm_files(&t, pool, type, "iss-store.g1", &f1, &f2)
       && (flip_marker(f1, marker, pool) || (f2 && flip_marker(f2, marker,
                                                               pool))),
       "[%s] flip a byte of the victim's value in the primary", type);
    apr_pool_create(&p, pool);
    s = open_store(t.dir, type, NULL, &log, p, &rv);
    is_int(rv, APR_SUCCESS, "[%s] the store still opens", type);
    if (s) {
        collect_t c = { 0 };
        char v3[600];

        is_int(get_s_rv(s, "victim", pool), ISS_STORE_EDAMAGED,
               "[%s] get of the damaged record: ISS_STORE_EDAMAGED", type);
        ok(strstr(iss_store_last_error(s), "checksum")
           && strstr(iss_store_last_error(s), "victim"),
           "[%s] ... naming the record: %s", type, iss_store_last_error(s));
        memset(v3, 'a' + 3 % 26, sizeof(v3));
        ok(holds(s, "k3", 2, v3, sizeof(v3), pool),
           "[%s] other records are still readable", type);
        is_int(iss_store_verify(s, pool), ISS_STORE_EDAMAGED,
               "[%s] verify reports the damage", type);
        is_int(iterate(s, NULL, &c, pool), ISS_STORE_EDAMAGED,
               "[%s] iteration reports the damage", type);
        is_int(put_s(s, "victim", "repaired"), APR_SUCCESS,
               "[%s] overwriting the damaged record works", type);
        ok(holds_s(s, "victim", "repaired", pool) && verify_ok(s, pool),
           "[%s] ... and the store verifies again", type);
    }
    apr_pool_destroy(p);
    tmp_done(&t, pool);

    /* Garbage over all DBM files. */
    memset(&t, 0, sizeof(t));
    if (!tmp_make(&t, pool) || !fill_store(&t, type, 30, pool)) {
        ok(0, "[%s] setup", type);
        tmp_done(&t, pool);
        return;
    }
    good = 1;
    for (i = 0; i < 2; i++) {
        good &= dbm_files(&t, pool, type, i ? "iss-store.g1.mirror"
                                            : "iss-store.g1", &f1, &f2);
        good &= garble(f1, &st, pool);
        if (f2)
            good &= garble(f2, &st, pool);
    }
    ok(good, "[%s] garbage written over the DBM files", type);
    expect_damage(&t, type, "garbage DBM files", "iss-store.g1", pool);
    tmp_done(&t, pool);

    /* Garbage meta, unknown version, missing meta. */
    memset(&t, 0, sizeof(t));
    if (!tmp_make(&t, pool) || !fill_store(&t, type, 3, pool)) {
        ok(0, "[%s] setup", type);
        tmp_done(&t, pool);
        return;
    }
    {
        const char *meta = in_dir(&t, pool, "iss-store.meta");
        apr_size_t n;
        char *orig = read_file(meta, pool, &n), *v2, *junk;

        ok(orig && write_file(meta, "iss-store-meta 1\nwhat is this\n", 30,
                              pool), "[%s] garbage over the meta file", type);
        expect_damage(&t, type, "garbage meta", "iss-store.meta", pool);
        junk = apr_pstrdup(pool, orig ? orig : "");
        junk[n / 2] ^= 1;
        ok(orig && write_file(meta, junk, n, pool), "[%s] one bit of the meta "
           "file flipped", type);
        expect_damage(&t, type, "meta with a bad checksum", "checksum", pool);
        v2 = apr_pstrdup(pool, orig ? orig : "");
        if (orig)
            v2[15] = '2';          /* "iss-store-meta 2" */
        ok(orig && write_file(meta, v2, n, pool),
           "[%s] meta of format version 2", type);
        expect_damage(&t, type, "unknown format version", "version 2", pool);
        ok(apr_file_remove(meta, pool) == APR_SUCCESS,
           "[%s] meta removed, DBM files kept", type);
        expect_damage(&t, type, "DBM files without meta", "no iss-store.meta",
                      pool);
    }
    tmp_done(&t, pool);

    /* An interrupted creation (empty DBM files, no meta) is redone. */
    memset(&t, 0, sizeof(t));
    if (!tmp_make(&t, pool) || !fill_store(&t, type, 0, pool)) {
        ok(0, "[%s] setup", type);
        tmp_done(&t, pool);
        return;
    }
    apr_file_remove(in_dir(&t, pool, "iss-store.meta"), pool);
    apr_pool_create(&p, pool);
    log_init(&log);
    s = open_store(t.dir, type, NULL, &log, p, &rv);
    is_int(rv, APR_SUCCESS, "[%s] empty DBM files without meta: a new store "
           "is created", type);
    ok(log.warnings > 0, "[%s] ... with a warning: %s", type, log.last);
    apr_pool_destroy(p);
    tmp_done(&t, pool);
}

/* ---- journals --------------------------------------------------------------- */

/* The batch committed by crash_child(). */
static void child_batch(iss_store_batch_t *b)
{
    char v[3000], lk[1000];

    memset(v, 'J', sizeof(v));
    memset(lk, 'K', sizeof(lk));
    iss_store_batch_put(b, "j/1", 3, "one", 3);
    iss_store_batch_put(b, "j/2", 3, v, sizeof(v));
    iss_store_batch_put(b, lk, sizeof(lk), "long", 4);
    iss_store_batch_delete(b, "pre/1", 5);
}

static int batch_applied(iss_store_t *s, apr_pool_t *pool)
{
    char v[3000], lk[1000];

    memset(v, 'J', sizeof(v));
    memset(lk, 'K', sizeof(lk));
    return holds_s(s, "j/1", "one", pool) && holds(s, "j/2", 3, v, 3000, pool)
           && holds(s, lk, 1000, "long", 4, pool)
           && get_s_rv(s, "pre/1", pool) == APR_NOTFOUND
           && holds_s(s, "pre/2", "two", pool);
}

static int batch_absent(iss_store_t *s, apr_pool_t *pool)
{
    return get_s_rv(s, "j/1", pool) == APR_NOTFOUND
           && get_s_rv(s, "j/2", pool) == APR_NOTFOUND
           && holds_s(s, "pre/1", "one", pool)
           && holds_s(s, "pre/2", "two", pool);
}

static int make_pre_store(const tmp_t *t, const char *type, apr_pool_t *pool)
{
    apr_pool_t *p;
    iss_store_t *s;
    int good;

    apr_pool_create(&p, pool);
    s = open_store(t->dir, type, NULL, NULL, p, NULL);
    good = s && put_s(s, "pre/1", "one") == APR_SUCCESS
           && put_s(s, "pre/2", "two") == APR_SUCCESS;
    apr_pool_destroy(p);
    return good;
}

/*
 * Crash a writer inside a checkpoint (every commit is one here).  Primary
 * phase, without test hooks in the store: the parent holds a shared lock
 * on the .dir file of the sdbm primary, so the child's checkpoint blocks
 * when it opens the primary for writing, i.e. with its mark
 * (iss-store.journal) in place and dbm_busy set.  Mirror phase: the child
 * copies the primary to the mirror after every checkpoint, each step
 * slowed by the test hook; the kill lands while iss-store.journal.mirror
 * exists.  The parent waits for that file and kills the child with
 * SIGKILL.
 */
static int crash_child(const tmp_t *t, int mirror, iss_store_t *reader,
                       apr_pool_t *pool)
{
    const char *dirf = in_dir(t, pool, "iss-store.g1.dir");
    const char *wait_for = in_dir(t, pool, mirror ? "iss-store.journal.mirror"
                                                  : "iss-store.journal");
    apr_file_t *lock = NULL;
    apr_proc_t proc;
    apr_exit_why_e why;
    apr_status_t rv;
    int code, i, seen = 0;

    if (!mirror
        && (apr_file_open(&lock, dirf, APR_FOPEN_READ, APR_OS_DEFAULT, pool)
                != APR_SUCCESS
            || apr_file_lock(lock, APR_FLOCK_SHARED) != APR_SUCCESS))
        return 0;
    fflush(stdout);
    fflush(stderr);
    rv = apr_proc_fork(&proc, pool);
    if (rv == APR_INCHILD) {
        apr_pool_t *p;
        iss_store_t *s;
        iss_store_batch_t *b;

        /* The mirror phase: a copy of the primary after every checkpoint,
         * each of its steps slowed (the copy opens no DBM to block on). */
        if (mirror) {
            setenv("ISS_STORE_MIRROR_LAG_BYTES", "1", 1);
            setenv("ISS_TEST_JOURNAL_DELAY_MS", "2000", 1);
        }
        apr_pool_create(&p, NULL);
        s = open_store(t->dir, "sdbm", NULL, NULL, p, NULL);
        if (!s)
            _exit(3);
        b = iss_store_batch_make(s, p);
        child_batch(b);
        iss_store_batch_commit(b);      /* blocks until killed */
        _exit(4);
    }
    if (rv != APR_INPARENT)
        return 0;
    for (i = 0; i < 5000 && !seen; i++) {
        seen = exists(wait_for, pool);
        if (!seen)
            apr_sleep(1000);
    }
    apr_sleep(20000);               /* let it reach the blocking open */
    /* A reader brings its overlay up to date with the child's commit (in
     * the log: read without the DBM lock the child holds), so that after
     * the kill nothing tells it the log moved. */
    if (reader && !holds_s(reader, "j/1", "one", pool))
        diag("the reader does not see the child's commit");
    apr_proc_kill(&proc, SIGKILL);
    apr_proc_wait(&proc, &code, &why, APR_WAIT);
    if (lock) {
        apr_file_unlock(lock);
        apr_file_close(lock);
    }
    if (!seen)
        diag("the child never renamed its journal (exit %d)", code);
    return seen && (why & APR_PROC_SIGNAL) && code == SIGKILL;
}

/* A journal as versions before the write-ahead log's applied
 * generations wrote them (a batch being committed to both copies in
 * turn): "ISSJRN01", the DBM generation, the length of the operations,
 * the operations ('P' klen key vlen value, 'D' klen key; lengths 32-bit
 * big-endian), SHA-256 of all that.  Holds child_batch() for generation
 * 1; such a journal left by an upgrade must still be recovered. */
static char *legacy_journal(apr_pool_t *pool, apr_size_t *len)
{
    char v[3000], lk[1000];
    const struct { char t; const char *k; apr_size_t kl; const char *v;
                   apr_size_t vl; } ops[] = {
        { 'P', "j/1", 3, "one", 3 },
        { 'P', "j/2", 3, v, sizeof(v) },
        { 'P', lk, sizeof(lk), "long", 4 },
        { 'D', "pre/1", 5, NULL, 0 },
    };
    unsigned char *b = apr_palloc(pool, 64 * 1024), *d = b + 24;
    unsigned int sl = 0;
    apr_uint64_t n;
    size_t i;
    int k;

    memset(v, 'J', sizeof(v));
    memset(lk, 'K', sizeof(lk));
    for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        *d++ = (unsigned char)ops[i].t;
        for (k = 3; k >= 0; k--)
            *d++ = (unsigned char)(ops[i].kl >> (8 * k));
        memcpy(d, ops[i].k, ops[i].kl);
        d += ops[i].kl;
        if (ops[i].t == 'P') {
            for (k = 3; k >= 0; k--)
                *d++ = (unsigned char)(ops[i].vl >> (8 * k));
            memcpy(d, ops[i].v, ops[i].vl);
            d += ops[i].vl;
        }
    }
    n = (apr_uint64_t)(d - b - 24);
    memcpy(b, "ISSJRN01", 8);
    for (k = 0; k < 8; k++) {
        b[8 + k] = (unsigned char)(1ULL >> (8 * (7 - k)));
        b[16 + k] = (unsigned char)(n >> (8 * (7 - k)));
    }
    EVP_Digest(b, (size_t)(d - b), d, &sl, EVP_sha256(), NULL);
    *len = (apr_size_t)(d - b) + sl;
    return (char *)b;
}

/* The sdbm crash tests. */
static void t_real_crash(apr_pool_t *pool)
{
    int mirror;

    /* mirror 0: the primary phase; 1: the mirror phase; 2: the primary
     * phase with the newest applied generation renamed back to its live
     * name below the live range, as a checkpoint that died between moving
     * the range past it and renaming it leaves it: the restore from the
     * mirror must apply it too (the mirror lacks it, the live range does
     * not hold it). */
    for (mirror = 0; mirror < 3; mirror++) {
        const char *phase = mirror == 1 ? "mirror" : mirror ? "stray"
                                                             : "primary";
        int stray = mirror == 2;
        tmp_t t = { 0 };
        apr_pool_t *p;
        iss_store_t *s;
        logrec_t log;
        apr_status_t rv;
        const char *f1, *f2, *m1, *m2;
        apr_finfo_t a, b;
        iss_store_t *early;
        apr_pool_t *ep = NULL;
        logrec_t elog;

        if (stray)
            setenv("ISS_STORE_MIRROR_LAG_BYTES", "1000000000", 1);
        if (!tmp_make(&t, pool) || !make_pre_store(&t, "sdbm", pool)) {
            ok(0, "[sdbm] setup");
            tmp_done(&t, pool);
            continue;
        }
        if (stray) {
            long g, newest = 0;

            for (g = 1; g < 100; g++)
                if (exists(in_dir(&t, pool, apr_psprintf(pool, "iss-store.wal"
                                                         ".%ld.applied", g)),
                           pool))
                    newest = g;
            ok(newest > 1 && apr_file_rename(
                   in_dir(&t, pool, apr_psprintf(pool, "iss-store.wal.%ld"
                                                 ".applied", newest)),
                   in_dir(&t, pool, apr_psprintf(pool, "iss-store.wal.%ld",
                                                 newest)), pool)
               == APR_SUCCESS, "[sdbm] the newest applied generation (%ld, "
               "pre/2's) renamed back to its live name", newest);
            mirror = 0;
        }
        /* A reader that was open before the crash (primary phase). */
        early = NULL;
        if (!mirror && !stray) {
            apr_pool_create(&ep, pool);
            log_init(&elog);
            early = open_store(t.dir, "sdbm", NULL, &elog, ep, NULL);
            /* Its overlay built now, as a reader's is after its first
             * read (one never built needs the DBM lock the child holds);
             * a key the test never writes, so that no record it reads
             * later is cached. */
            {
                void *v;
                apr_size_t vl;

                is_int(early ? iss_store_get(early, "none", 4, &v, &vl, ep)
                             : APR_EGENERAL, APR_NOTFOUND,
                       "[sdbm] a reader opened before the crash reads");
            }
        }
        ok(crash_child(&t, mirror, early, pool), "[sdbm] checkpoint killed %s",
           mirror ? "while copying the primary to the mirror"
                  : "while blocked opening the primary for writing");
        ok(exists(in_dir(&t, pool, mirror ? "iss-store.journal.mirror"
                                          : "iss-store.journal"), pool),
           "[sdbm] it left %s behind", mirror ? "iss-store.journal.mirror"
                                              : "iss-store.journal");
        /* What such a death can leave: a record of the DBM the commit never
         * meant to touch torn (an sdbm page split cut short); a mirror
         * copied half way. */
        if (!mirror && !stray) {
            ok(flip_marker(in_dir(&t, pool, "iss-store.g1.pag"), "two", pool),
               "[sdbm] ... and a record of the DBM it did not change is torn "
               "(as by a page split cut short)");
            ok(early && holds_s(early, "pre/2", "two", pool),
               "[sdbm] ... a reader open since before the crash reads the "
               "torn record whole (it restores the primary before reading "
               "it, without waiting for a writer)");
            if (early)
                apr_pool_destroy(ep);
        }
        else if (mirror) {
            apr_size_t n = 0;
            char *pag = read_file(in_dir(&t, pool, "iss-store.g1.pag"), pool,
                                  &n);

            ok(pag && n > 1
               && write_file(in_dir(&t, pool, "iss-store.g1.mirror.pag"), pag,
                             n / 2, pool),
               "[sdbm] ... and the mirror holds half of the primary's .pag "
               "(as a copy that died half way leaves it)");
        }
        log_init(&log);
        apr_pool_create(&p, pool);
        s = open_store(t.dir, "sdbm", NULL, &log, p, &rv);
        is_int(rv, APR_SUCCESS, "[sdbm] the store opens after the crash in "
               "the %s phase", phase);
        ok(s && batch_applied(s, pool), "[sdbm] ... with the whole batch "
           "applied");
        ok(s && verify_ok(s, pool), "[sdbm] ... and verify passes");
        if (early)              /* the reader restored it */
            log = elog;
        ok(log.warnings > 0 && strstr(log.last, "recovered"),
           "[sdbm] ... and the recovery is logged: %s", log.last);
        if (!mirror)
            ok(s && holds_s(s, "pre/2", "two", pool), "[sdbm] ... the torn "
               "record whole again (rebuilt from the mirror and the applied "
               "generations)");
        if (!mirror) {
            ok(!exists(in_dir(&t, pool, "iss-store.journal"), pool)
               && dbm_files(&t, pool, "sdbm", "iss-store.g2", &f1, &f2)
               && exists(f1, pool)
               && dbm_files(&t, pool, "sdbm", "iss-store.g1", &f1, &f2)
               && !exists(f1, pool) && !exists(f2, pool),
               "[sdbm] ... the mark gone, generation 2 (rebuilt from the "
               "mirror) replaced generation 1");
        }
        else {
            ok(!exists(in_dir(&t, pool, "iss-store.journal.mirror"), pool)
               && dbm_files(&t, pool, "sdbm", "iss-store.g1", &f1, &f2)
               && dbm_files(&t, pool, "sdbm", "iss-store.g1.mirror", &m1,
                            &m2)
               && apr_stat(&a, f2, APR_FINFO_SIZE, pool) == APR_SUCCESS
               && apr_stat(&b, m2, APR_FINFO_SIZE, pool) == APR_SUCCESS
               && a.size == b.size,
               "[sdbm] ... the mark gone, the mirror a copy of the primary "
               "again");
        }
        if (stray) {
            ok(s && holds_s(s, "pre/2", "two", pool), "[sdbm] ... pre/2, "
               "whose generation was below the live range and not yet "
               "renamed, restored too");
            unsetenv("ISS_STORE_MIRROR_LAG_BYTES");
            mirror = 2;
        }
        apr_pool_destroy(p);
        tmp_done(&t, pool);
    }
}

/* Put @a data as @a name into a fresh store and reopen it. */
static iss_store_t *with_journal(const tmp_t *t, const char *type,
                                 const char *name, const void *data,
                                 apr_size_t n, logrec_t *log, apr_pool_t *p)
{
    if (!make_pre_store(t, type, p)
        || !write_file(in_dir(t, p, name), data, n, p))
        return NULL;
    log_init(log);
    return open_store(t->dir, type, NULL, log, p, NULL);
}

static void t_journal(const char *type, const char *journal, apr_size_t jlen,
                      apr_pool_t *pool)
{
    static const struct {
        const char *name;
        int cut;                    /* bytes to remove at the end */
        int garbage;
        int applied;
        const char *what;
    } cases[] = {
        { "iss-store.journal", 0, 0, 1, "a valid journal is applied" },
        { "iss-store.journal", 40, 0, 0, "a truncated journal is discarded" },
        { "iss-store.journal", 0, 1, 0, "a garbage journal is discarded" },
        { "iss-store.journal.tmp", 0, 0, 0, "a stray journal.tmp is removed" },
        { "iss-store.journal.mirror", 0, 0, 0,
          "a journal.mirror makes the primary authoritative" },
    };
    apr_uint64_t st = 2024;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tmp_t t = { 0 };
        apr_pool_t *p;
        iss_store_t *s;
        logrec_t log;
        char *data = apr_pmemdup(pool, journal, jlen);
        apr_size_t n = jlen - (apr_size_t)cases[i].cut;

        if (cases[i].garbage)
            fill_random(&st, data, n);
        apr_pool_create(&p, pool);
        if (!tmp_make(&t, p)) {
            ok(0, "[%s] temp dir", type);
            apr_pool_destroy(p);
            continue;
        }
        s = with_journal(&t, type, cases[i].name, data, n, &log, p);
        ok(s != NULL, "[%s] %s: the store opens", type, cases[i].what);
        ok(s && (cases[i].applied ? batch_applied(s, p) : batch_absent(s, p)),
           "[%s] ... the batch is %s", type,
           cases[i].applied ? "fully applied" : "not applied at all");
        ok(s && verify_ok(s, p), "[%s] ... verify passes", type);
        ok(!exists(in_dir(&t, p, cases[i].name), p), "[%s] ... %s is gone",
           type, cases[i].name);
        ok(log.warnings > 0, "[%s] ... and a warning was logged: %s", type,
           log.last);
        tmp_done(&t, p);
        apr_pool_destroy(p);
    }
}

/* Many keys of 300-2000 bytes in one batch.  Regression: with pairs near
 * sdbm's 1008-byte limit, sdbm failed with ENOSPC after ~350 such keys. */
static void t_many(const char *type, apr_pool_t *pool)
{
    tmp_t t = { 0 };
    iss_store_t *s;
    iss_store_batch_t *b;
    collect_t c = { 0 };
    char buf[2048], key[32];
    long i;
    int good = 1;

    if (!tmp_make(&t, pool) || !(s = open_store(t.dir, type, NULL, NULL, pool,
                                                NULL))) {
        ok(0, "[%s] many keys: setup", type);
        tmp_done(&t, pool);
        return;
    }
    b = iss_store_batch_make(s, pool);
    for (i = 1; i <= 3000; i++) {
        kv_fill(i, buf);
        apr_snprintf(key, sizeof(key), "m/%ld", i);
        iss_store_batch_put(b, key, strlen(key), buf, kv_len(i));
    }
    if (!ok(iss_store_batch_commit(b) == APR_SUCCESS,
            "[%s] many keys: a batch of 3000 keys of 300-2000 bytes", type))
        diag("%s", iss_store_last_error(s));
    is_int(iterate(s, "m/", &c, pool), APR_SUCCESS, "[%s] many keys: iterate",
           type);
    is_int(c.count, 3000, "[%s] many keys: 3000 keys", type);
    for (i = 1; i <= 3000 && good; i++) {
        kv_fill(i, buf);
        apr_snprintf(key, sizeof(key), "m/%ld", i);
        good = seen_is(&c, key, strlen(key), buf, kv_len(i));
    }
    ok(good, "[%s] many keys: all values exact", type);
    ok(verify_ok(s, pool), "[%s] many keys: verify passes", type);
    tmp_done(&t, pool);
}

/* Checkpoints of each mix of new keys, overwrites, small values over
 * segmented ones (whose segments must go) and the other way round; read
 * back through a new handle (the DBM, not the overlay), verified.  (Kept
 * from a trial of storing a put as a new key first, which saved nothing
 * measurable: bench/README.md.) */
static void t_mixed_checkpoints(const char *type, apr_pool_t *pool)
{
    tmp_t t = { 0 };
    apr_pool_t *p;
    iss_store_t *s;
    iss_store_batch_t *b;
    logrec_t log;
    char key[32], big[5000];
    int i, good = 1;

    apr_pool_create(&p, pool);
    s = fresh_store(&t, type, &log, p);
    if (!s) {
        apr_pool_destroy(p);
        return;
    }
    memset(big, 'B', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    /* 1: all new; five of them segmented. */
    b = iss_store_batch_make(s, p);
    for (i = 0; i < 200; i++) {
        apr_snprintf(key, sizeof(key), "i/%d", i);
        iss_store_batch_put(b, key, strlen(key), "A", 1);
    }
    for (i = 0; i < 5; i++) {
        apr_snprintf(key, sizeof(key), "L/%d", i);
        iss_store_batch_put(b, key, strlen(key), big, strlen(big));
    }
    ok(iss_store_batch_commit(b) == APR_SUCCESS
       && iss_store_checkpoint(s, p) == APR_SUCCESS,
       "[%s] mixed checkpoints: 200 new small keys and 5 segmented ones", type);
    /* 2: mostly present; the segmented keys become small, five small ones
     * become segmented, 100 new. */
    b = iss_store_batch_make(s, p);
    for (i = 0; i < 200; i++) {
        apr_snprintf(key, sizeof(key), "i/%d", i);
        if (i < 5)
            iss_store_batch_put(b, key, strlen(key), big, strlen(big));
        else
            iss_store_batch_put(b, key, strlen(key), "BB", 2);
    }
    for (i = 0; i < 5; i++) {
        apr_snprintf(key, sizeof(key), "L/%d", i);
        iss_store_batch_put(b, key, strlen(key), "small", 5);
    }
    for (i = 0; i < 100; i++) {
        apr_snprintf(key, sizeof(key), "j/%d", i);
        iss_store_batch_put(b, key, strlen(key), "J", 1);
    }
    ok(iss_store_batch_commit(b) == APR_SUCCESS
       && iss_store_checkpoint(s, p) == APR_SUCCESS,
       "[%s] mixed checkpoints: 200 overwrites (5 now segmented), 5 segmented "
       "keys made small, 100 new", type);
    /* 3: new keys again, then the same checkpoint's overwrites of them. */
    b = iss_store_batch_make(s, p);
    for (i = 0; i < 300; i++) {
        apr_snprintf(key, sizeof(key), "k/%d", i);
        iss_store_batch_put(b, key, strlen(key), "K", 1);
    }
    ok(iss_store_batch_commit(b) == APR_SUCCESS
       && put_s(s, "k/7", "K7") == APR_SUCCESS
       && iss_store_checkpoint(s, p) == APR_SUCCESS,
       "[%s] mixed checkpoints: 300 new keys", type);
    iss_store_close(s);
    s = open_store(t.dir, type, NULL, NULL, p, NULL);
    ok(s != NULL, "[%s] mixed checkpoints: reopened", type);
    for (i = 0; s && i < 200 && good; i++) {
        apr_snprintf(key, sizeof(key), "i/%d", i);
        good = i < 5 ? holds_s(s, key, big, p) : holds_s(s, key, "BB", p);
    }
    for (i = 0; s && i < 5 && good; i++) {
        apr_snprintf(key, sizeof(key), "L/%d", i);
        good = holds_s(s, key, "small", p);
    }
    for (i = 0; s && i < 100 && good; i++) {
        apr_snprintf(key, sizeof(key), "j/%d", i);
        good = holds_s(s, key, "J", p);
    }
    for (i = 0; s && i < 300 && good; i++) {
        apr_snprintf(key, sizeof(key), "k/%d", i);
        good = holds_s(s, key, i == 7 ? "K7" : "K", p);
    }
    ok(s && good, "[%s] mixed checkpoints: every value read back from the DBM",
       type);
    ok(s && verify_ok(s, p),
       "[%s] mixed checkpoints: verify passes (no segment left behind)", type);
    if (s)
        iss_store_close(s);
    tmp_done(&t, p);
    apr_pool_destroy(p);
}

/* The mirror's mark being written (iss-store.journal.mirror.tmp) belongs
 * to a live checkpointer while one holds the checkpoint lock: a handle
 * opened meanwhile (a new httpd child) leaves it alone; once no
 * checkpointer runs it is a dead one's scratch, and the next open
 * removes it. */
static void t_sweep_mirror_tmp(const char *type, apr_pool_t *pool)
{
    tmp_t t = { 0 };
    apr_pool_t *p;
    apr_file_t *lk = NULL;
    const char *tmp;

    if (!tmp_make(&t, pool) || !make_pre_store(&t, type, pool)) {
        ok(0, "[%s] mirror mark scratch: setup", type);
        tmp_done(&t, pool);
        return;
    }
    tmp = in_dir(&t, pool, "iss-store.journal.mirror.tmp");
    ok(write_file(tmp, "ISSJRN", 6, pool)
       && apr_file_open(&lk, in_dir(&t, pool, "iss-store.ckptlock"),
                        APR_FOPEN_READ | APR_FOPEN_WRITE | APR_FOPEN_CREATE,
                        APR_FPROT_OS_DEFAULT, pool) == APR_SUCCESS
       && apr_file_lock(lk, APR_FLOCK_EXCLUSIVE) == APR_SUCCESS,
       "[%s] mirror mark scratch: written, the checkpoint lock held (as "
       "by a checkpointer copying the mirror)", type);
    apr_pool_create(&p, pool);
    ok(open_store(t.dir, type, NULL, NULL, p, NULL) != NULL
       && exists(tmp, pool), "[%s] mirror mark scratch: a store opened "
       "meanwhile leaves it alone", type);
    apr_pool_destroy(p);
    if (lk) {
        apr_file_unlock(lk);
        apr_file_close(lk);
    }
    apr_pool_create(&p, pool);
    ok(open_store(t.dir, type, NULL, NULL, p, NULL) != NULL
       && !exists(tmp, pool), "[%s] mirror mark scratch: with the lock free "
       "(its writer dead) the next open removes it", type);
    apr_pool_destroy(p);
    tmp_done(&t, pool);
}

/* Two handles on one store: neither caches anything, and a recovery done
 * through one (a new generation) is followed by the other. */
static void t_two_handles(const char *type, const char *journal,
                          apr_size_t jlen, apr_pool_t *pool)
{
    tmp_t t = { 0 };
    iss_store_t *a, *b;
    logrec_t la, lb;

    log_init(&la);
    log_init(&lb);
    if (!journal || !tmp_make(&t, pool) || !make_pre_store(&t, type, pool)
        || !(a = open_store(t.dir, type, NULL, &la, pool, NULL))
        || !(b = open_store(t.dir, type, NULL, &lb, pool, NULL))) {
        ok(0, "[%s] two handles: setup", type);
        tmp_done(&t, pool);
        return;
    }
    ok(put_s(a, "via-a", "1") == APR_SUCCESS && holds_s(b, "via-a", "1", pool),
       "[%s] two handles: a write through one is read through the other",
       type);
    ok(write_file(in_dir(&t, pool, "iss-store.journal"), journal, jlen, pool),
       "[%s] two handles: a dead writer's journal appears", type);
    /* A journal appears only when a checkpoint dies, which the shared
     * header records; one written from outside is found by the next open. */
    ok((a = open_store(t.dir, type, NULL, &la, pool, NULL))
       && batch_applied(a, pool) && la.warnings > 0,
       "[%s] two handles: a new handle recovers (generation 2)", type);
    ok(batch_applied(b, pool) && holds_s(b, "via-a", "1", pool)
       && put_s(b, "via-b", "2") == APR_SUCCESS
       && holds_s(a, "via-b", "2", pool) && lb.warnings == 0,
       "[%s] two handles: the second follows the new generation", type);
    ok(verify_ok(a, pool), "[%s] two handles: verify passes", type);
    tmp_done(&t, pool);
}

/* sdbm: records that iteration finds but lookups do not (the state an
 * interrupted page split leaves) are reported by verify. */
static void t_sdbm_index(apr_pool_t *pool)
{
    tmp_t t = { 0 };
    apr_pool_t *p;
    iss_store_t *s;
    apr_size_t n;
    char *dir;
    logrec_t log;

    log_init(&log);
    if (!tmp_make(&t, pool) || !fill_store(&t, "sdbm", 60, pool)) {
        ok(0, "[sdbm] index damage: setup");
        tmp_done(&t, pool);
        return;
    }
    dir = read_file(in_dir(&t, pool, "iss-store.g1.dir"), pool, &n);
    ok(dir && n > 0, "[sdbm] index damage: the .dir file has split bits");
    if (dir) {
        memset(dir, 0, n);
        write_file(in_dir(&t, pool, "iss-store.g1.dir"), dir, n, pool);
    }
    apr_pool_create(&p, pool);
    s = open_store(t.dir, "sdbm", NULL, &log, p, NULL);
    ok(s != NULL, "[sdbm] index damage: the store opens");
    ok(s && iss_store_verify(s, p) == ISS_STORE_EDAMAGED
       && (strstr(iss_store_last_error(s), "not by looking up its key")
           || strstr(iss_store_last_error(s), "is missing")),
       "[sdbm] index damage: verify reports unreachable records: %s",
       s ? iss_store_last_error(s) : "");
    apr_pool_destroy(p);
    tmp_done(&t, pool);
}

/* apr-util's sdbm_hash(): which page of the trie a DBM key is on (the
 * low bit of each level first). */
static unsigned long sdbm_hash(const char *s, apr_size_t n)
{
    unsigned long h = 0;

    while (n--)
        h = (unsigned long)(unsigned char)*s++ + 65599UL * h;
    return h;
}

/* The first key "d/<i>" (i from *@a i on) whose DBM key ("k" + key) has
 * the hash bits @a mask equal to @a want. */
static void sdbm_key_with(unsigned long mask, unsigned long want,
                          unsigned long *i, char *key, apr_size_t size)
{
    for (;; (*i)++) {
        char dk[40];
        int n = apr_snprintf(dk, sizeof(dk), "kd/%lu", *i);

        if ((sdbm_hash(dk, (apr_size_t)n) & mask) == want) {
            apr_cpystrn(key, dk + 1, size);
            (*i)++;
            return;
        }
    }
}

/*
 * apr-util's sdbm loses a record stored after a split far down the trie
 * in the same handle (its directory walk stops at the .dir size it saw
 * when its lock was taken, plus one 4 KB block per bit set past it).
 * Keys chosen by their sdbm hash, ~320-byte pairs (three to a page), in
 * one commit (so one checkpoint, one DBM handle): A1-A3 share the low 20
 * bits of their hash; B1 differs from them at bit 9 only, so storing it
 * splits the first page 10 times; A4 shares 19 bits with A1-A3 and
 * differs at bit 19, so storing it splits 10 more levels (bits past
 * 2^19: 16 blocks past the .dir size); A5 and A6 go where A4 went.
 * Each key must read back from a new handle, and verify must pass.
 */
static void t_sdbm_deep_split(apr_pool_t *pool)
{
    tmp_t t = { 0 };
    apr_pool_t *p;
    iss_store_t *s;
    iss_store_batch_t *b;
    logrec_t log;
    char keys[7][24], val[300];
    unsigned long i = 0, q, x;
    int k, found = 0;

    sdbm_key_with(0, 0, &i, keys[0], sizeof(keys[0]));
    {
        char dk[40];
        int n = apr_snprintf(dk, sizeof(dk), "k%s", keys[0]);

        q = sdbm_hash(dk, (apr_size_t)n) & 0x7FFFFUL;
        x = sdbm_hash(dk, (apr_size_t)n) & 0x80000UL;
    }
    sdbm_key_with(0xFFFFFUL, q | x, &i, keys[1], sizeof(keys[1]));
    sdbm_key_with(0xFFFFFUL, q | x, &i, keys[2], sizeof(keys[2]));
    sdbm_key_with(0x3FFUL, (q & 0x1FFUL) | (~q & 0x200UL), &i, keys[3],
                  sizeof(keys[3]));
    for (k = 4; k < 7; k++)
        sdbm_key_with(0xFFFFFUL, q | (x ^ 0x80000UL), &i, keys[k],
                      sizeof(keys[k]));
    apr_pool_create(&p, pool);
    s = fresh_store(&t, "sdbm", &log, p);
    if (!s) {
        apr_pool_destroy(p);
        return;
    }
    b = iss_store_batch_make(s, p);
    for (k = 0; k < 7; k++) {
        memset(val, 'a' + k, sizeof(val));
        iss_store_batch_put(b, keys[k], strlen(keys[k]), val, sizeof(val));
    }
    ok(iss_store_batch_commit(b) == APR_SUCCESS
       && iss_store_checkpoint(s, p) == APR_SUCCESS,
       "[sdbm] deep split: seven keys committed and checkpointed");
    iss_store_close(s);
    s = open_store(t.dir, "sdbm", NULL, &log, p, NULL);
    for (k = 0; s && k < 7; k++) {
        void *v;
        apr_size_t vl;

        memset(val, 'a' + k, sizeof(val));
        if (iss_store_get(s, keys[k], strlen(keys[k]), &v, &vl, p)
                == APR_SUCCESS
            && vl == sizeof(val) && memcmp(v, val, vl) == 0)
            found++;
        else
            diag("[sdbm] deep split: %s (key %d) does not read back",
                 keys[k], k + 1);
    }
    ok(found == 7, "[sdbm] deep split: each of the 7 keys reads back from a "
       "new handle (%d did)", found);
    ok(s && verify_ok(s, p), "[sdbm] deep split: verify passes");
    if (s)
        iss_store_close(s);
    apr_pool_destroy(p);
    tmp_done(&t, pool);
}

/* A key on two pages (what the sdbm bug of t_sdbm_deep_split left when
 * the key also had an older record where lookups find it): the record of
 * "dup" stored a second time (APR_SDBM_INSERTDUP: every record stays
 * reachable and sound) in the primary, and in the mirror if the mirror
 * has it yet; verify must call it damage. */
static void t_sdbm_twice(apr_pool_t *pool)
{
    tmp_t t = { 0 };
    apr_pool_t *p;
    iss_store_t *s;
    apr_dir_t *d;
    apr_finfo_t fi;
    logrec_t log;
    int copies = 0;

    apr_pool_create(&p, pool);
    s = fresh_store(&t, "sdbm", &log, p);
    if (!s) {
        apr_pool_destroy(p);
        return;
    }
    ok(iss_store_put(s, "dup", 3, "value", 5) == APR_SUCCESS
       && iss_store_put(s, "other", 5, "x", 1) == APR_SUCCESS
       && iss_store_checkpoint(s, p) == APR_SUCCESS && verify_ok(s, p),
       "[sdbm] twice: two keys written, checkpointed, verified");
    iss_store_close(s);
    if (apr_dir_open(&d, t.dir, p) == APR_SUCCESS) {
        while (apr_dir_read(&fi, APR_FINFO_NAME, d) == APR_SUCCESS) {
            apr_size_t n = strlen(fi.name);
            apr_sdbm_t *db;
            apr_sdbm_datum_t k = { (char *)"kdup", 4 }, v;

            if (n < 5 || strcmp(fi.name + n - 4, ".pag") != 0)
                continue;
            if (apr_sdbm_open(&db, apr_pstrcat(p, t.dir, "/",
                                               apr_pstrndup(p, fi.name, n - 4),
                                               NULL),
                              APR_FOPEN_READ | APR_FOPEN_WRITE,
                              APR_OS_DEFAULT, p) != APR_SUCCESS)
                continue;
            if (apr_sdbm_fetch(db, &v, k) == APR_SUCCESS && v.dptr) {
                apr_sdbm_datum_t c;

                c.dptr = apr_pmemdup(p, v.dptr, (apr_size_t)v.dsize);
                c.dsize = v.dsize;

                if (apr_sdbm_store(db, k, c, APR_SDBM_INSERTDUP)
                        == APR_SUCCESS && !strstr(fi.name, ".mirror"))
                    copies++;
            }
            apr_sdbm_close(db);
        }
        apr_dir_close(d);
    }
    ok(copies == 1, "[sdbm] twice: the record of \"dup\" stored again in "
       "the primary (and in the mirror if it has it yet)");
    s = open_store(t.dir, "sdbm", NULL, &log, p, NULL);
    ok(s && iss_store_verify(s, p) == ISS_STORE_EDAMAGED
       && strstr(iss_store_last_error(s), "is twice in"),
       "[sdbm] twice: verify reports the key on two pages: %s",
       s ? iss_store_last_error(s) : "no handle");
    if (s)
        iss_store_close(s);
    apr_pool_destroy(p);
    tmp_done(&t, pool);
}

/* ---- several processes ---------------------------------------------------- */

typedef struct {
    int child;
    int i;
} count_baton_t;

static apr_status_t count_txn(void *baton, iss_store_txn_t *txn)
{
    count_baton_t *b = baton;
    apr_pool_t *p;
    void *v;
    apr_size_t vl;
    long n = 0;
    char key[32], num[32];
    apr_status_t rv;

    apr_pool_create(&p, NULL);
    rv = iss_store_txn_get(txn, "counter", 7, &v, &vl, p);
    if (rv == APR_SUCCESS)
        n = atol(v);
    else if (rv != APR_NOTFOUND) {
        apr_pool_destroy(p);
        return rv;
    }
    apr_snprintf(num, sizeof(num), "%ld", n + 1);
    iss_store_txn_put(txn, "counter", 7, num, strlen(num));
    apr_snprintf(key, sizeof(key), "w/%d/%d", b->child, b->i);
    iss_store_txn_put(txn, key, strlen(key), num, strlen(num));
    apr_pool_destroy(p);
    return APR_SUCCESS;
}

#define NCHILD 4
#define NTXN   200

static void t_multiproc(const char *type, apr_pool_t *pool)
{
    tmp_t t = { 0 };
    apr_global_mutex_t *mutex;
    const char *lockfile;
    apr_proc_t procs[NCHILD];
    logrec_t log;
    iss_store_t *s;
    apr_status_t rv;
    int c, good = 1;
    apr_time_t t0 = apr_time_now();

    log_init(&log);
    if (!tmp_make(&t, pool)) {
        ok(0, "[%s] temp dir", type);
        return;
    }
    lockfile = apr_pstrcat(pool, t.base, "/lock", NULL);
    rv = apr_global_mutex_create(&mutex, lockfile, APR_LOCK_DEFAULT, pool);
    is_int(rv, APR_SUCCESS, "[%s] global mutex created", type);
    s = open_store(t.dir, type, mutex, &log, pool, NULL);
    ok(s != NULL, "[%s] parent opens the store", type);
    if (rv != APR_SUCCESS || !s)
        goto done;
    fflush(stdout);
    fflush(stderr);
    for (c = 0; c < NCHILD; c++) {
        rv = apr_proc_fork(&procs[c], pool);
        if (rv == APR_INCHILD) {
            apr_pool_t *p;
            iss_store_t *cs;
            count_baton_t b;
            int fails = 0;

            apr_pool_create(&p, NULL);
            if (apr_global_mutex_child_init(&mutex, lockfile, p)
                != APR_SUCCESS)
                _exit(2);
            cs = open_store(t.dir, type, mutex, NULL, p, NULL);
            if (!cs)
                _exit(3);
            b.child = c;
            for (b.i = 0; b.i < NTXN; b.i++) {
                if (iss_store_txn(cs, count_txn, &b, p) != APR_SUCCESS) {
                    fprintf(stderr, "# child %d txn %d: %s\n", c, b.i,
                            iss_store_last_error(cs));
                    fails++;
                }
            }
            _exit(fails ? 1 : 0);
        }
        if (rv != APR_INPARENT) {
            ok(0, "[%s] fork", type);
            goto done;
        }
    }
    for (c = 0; c < NCHILD; c++) {
        int code;
        apr_exit_why_e why;

        apr_proc_wait(&procs[c], &code, &why, APR_WAIT);
        if (why != APR_PROC_EXIT || code != 0) {
            diag("child %d: why %d code %d", c, (int)why, code);
            good = 0;
        }
    }
    ok(good, "[%s] %d children ran %d txns each without errors", type, NCHILD,
       NTXN);
    ok(holds_s(s, "counter", apr_psprintf(pool, "%d", NCHILD * NTXN), pool),
       "[%s] counter == %d: no lost updates", type, NCHILD * NTXN);
    {
        collect_t col = { 0 };
        int all = 1, i;

        is_int(iterate(s, "w/", &col, pool), APR_SUCCESS, "[%s] iterate w/",
               type);
        is_int(col.count, NCHILD * NTXN, "[%s] ... %d unique keys", type,
               NCHILD * NTXN);
        for (c = 0; c < NCHILD; c++) {
            for (i = 0; i < NTXN; i++) {
                char k[32];

                apr_snprintf(k, sizeof(k), "w/%d/%d", c, i);
                all &= apr_hash_get(col.seen, k, (apr_ssize_t)strlen(k)) != NULL;
            }
        }
        ok(all, "[%s] ... every child's every key exists", type);
    }
    ok(verify_ok(s, pool), "[%s] verify passes", type);
    diag("[%s] %d txns in %d processes: %.2f s", type, NCHILD * NTXN, NCHILD,
         (double)(apr_time_now() - t0) / APR_USEC_PER_SEC);
done:
    tmp_done(&t, pool);
}

/* ---- kill -9 ---------------------------------------------------------------- */

static apr_size_t kv_len(long i)
{
    return 300 + (apr_size_t)((i * 7919) % 1701);
}

static void kv_fill(long i, char *buf)
{
    apr_size_t n = kv_len(i), k;

    for (k = 0; k < n; k++)
        buf[k] = (char)((i * 31 + (long)k * 7) & 0xff);
}

/* The writer child: commits batches i = last + 1, ... forever and reports
 * each committed i on the pipe. */
/* Whether the killed writer fsyncs (iss_store_set_sync). */
static int writer_sync = 1;

static void kill_writer(const char *dir, const char *type, apr_file_t *wr)
{
    apr_pool_t *p, *ip;
    iss_store_t *s;
    void *v;
    apr_size_t vl;
    long i = 1;
    char buf[2048], key[32], num[32];

    if (apr_pool_create(&p, NULL) != APR_SUCCESS)
        _exit(2);
    s = open_store(dir, type, NULL, NULL, p, NULL);
    if (!s || apr_pool_create(&ip, p) != APR_SUCCESS)
        _exit(3);
    iss_store_set_sync(s, writer_sync);
    if (iss_store_get(s, "last", 4, &v, &vl, ip) == APR_SUCCESS)
        i = atol(v) + 1;
    for (;; i++) {
        iss_store_batch_t *b;

        apr_pool_clear(ip);
        b = iss_store_batch_make(s, ip);
        kv_fill(i, buf);
        apr_snprintf(key, sizeof(key), "a/%ld", i);
        iss_store_batch_put(b, key, strlen(key), buf, kv_len(i));
        apr_snprintf(key, sizeof(key), "b/%ld", i);
        iss_store_batch_put(b, key, strlen(key), buf, kv_len(i));
        apr_snprintf(num, sizeof(num), "%ld", i);
        iss_store_batch_put(b, "last", 4, num, strlen(num));
        if (iss_store_batch_commit(b) != APR_SUCCESS) {
            fprintf(stderr, "# writer: %s\n", iss_store_last_error(s));
            _exit(4);
        }
        apr_snprintf(num, sizeof(num), "%ld\n", i);
        if (apr_file_write_full(wr, num, strlen(num), NULL) != APR_SUCCESS)
            _exit(5);
    }
}

/* The last number the writer reported (0: none). */
static long read_reports(apr_file_t *rd)
{
    char buf[4096], line[32];
    apr_size_t n, ll = 0, k;
    long last = 0;

    for (;;) {
        n = sizeof(buf);
        if (apr_file_read(rd, buf, &n) != APR_SUCCESS)
            break;
        for (k = 0; k < n; k++) {
            if (buf[k] == '\n') {
                line[ll] = '\0';
                last = atol(line);
                ll = 0;
            }
            else if (ll + 1 < sizeof(line)) {
                line[ll++] = buf[k];
            }
        }
    }
    return last;
}

/* All-or-nothing check: exactly a/1..a/last, b/1..b/last and "last". */
static int check_batches(iss_store_t *s, long last, apr_pool_t *pool)
{
    collect_t c = { 0 };
    char key[32], buf[2048], num[32];
    apr_status_t rv = iterate(s, NULL, &c, pool);
    long j;

    if (rv != APR_SUCCESS) {
        diag("iterate: %d %s", rv, iss_store_last_error(s));
        return 0;
    }
    if (c.count != 2 * last + (last ? 1 : 0)) {
        diag("%d keys for last = %ld", c.count, last);
        return 0;
    }
    for (j = 1; j <= last; j++) {
        kv_fill(j, buf);
        apr_snprintf(key, sizeof(key), "a/%ld", j);
        if (!seen_is(&c, key, strlen(key), buf, kv_len(j))) {
            long k;

            /* How far the gap goes: the first batch after it that is
             * there. */
            for (k = j + 1; k <= last; k++) {
                char k2[32];

                apr_snprintf(k2, sizeof(k2), "a/%ld", k);
                kv_fill(k, buf);
                if (seen_is(&c, k2, strlen(k2), buf, kv_len(k)))
                    break;
            }
            diag("%s is missing or wrong (through a/%ld)", key, k - 1);
            return 0;
        }
        key[0] = 'b';
        if (!seen_is(&c, key, strlen(key), buf, kv_len(j))) {
            diag("%s is missing or wrong", key);
            return 0;
        }
    }
    apr_snprintf(num, sizeof(num), "%ld", last);
    return last == 0 || seen_is(&c, "last", 4, num, strlen(num));
}

static void t_kill9(const char *type, apr_pool_t *pool, apr_uint64_t *st)
{
    const char *env = getenv("ISS_TEST_KILL_ROUNDS");
    int rounds = env ? atoi(env) : 15, r, recoveries = 0, killed_good = 1;
    long reported = 0, last = 0;
    tmp_t t = { 0 };
    apr_pool_t *p;
    iss_store_t *s;
    apr_time_t t0 = apr_time_now();

    if (rounds < 1)
        rounds = 1;
    apr_pool_create(&p, pool);
    if (!tmp_make(&t, pool) || !(s = open_store(t.dir, type, NULL, NULL, p,
                                                NULL))) {
        ok(0, "[%s] kill -9 setup", type);
        apr_pool_destroy(p);
        tmp_done(&t, pool);
        return;
    }
    apr_pool_destroy(p);
    for (r = 1; r <= rounds; r++) {
        apr_file_t *rd, *wr;
        apr_proc_t proc;
        apr_exit_why_e why;
        apr_status_t rv;
        logrec_t log;
        int code, ms = 5 + (int)(rnd_next(st) % 76);
        long got;
        void *v;
        apr_size_t vl;

        apr_pool_create(&p, pool);
        if (apr_file_pipe_create(&rd, &wr, p) != APR_SUCCESS) {
            ok(0, "[%s] pipe", type);
            apr_pool_destroy(p);
            break;
        }
        fflush(stdout);
        fflush(stderr);
        rv = apr_proc_fork(&proc, p);
        if (rv == APR_INCHILD) {
            apr_file_close(rd);
            kill_writer(t.dir, type, wr);
        }
        apr_file_close(wr);
        if (rv != APR_INPARENT) {
            ok(0, "[%s] fork", type);
            apr_pool_destroy(p);
            break;
        }
        apr_sleep((apr_interval_time_t)ms * 1000);
        apr_proc_kill(&proc, SIGKILL);
        apr_proc_wait(&proc, &code, &why, APR_WAIT);
        got = read_reports(rd);
        apr_file_close(rd);
        if (got)
            reported = got;
        if (!(why & APR_PROC_SIGNAL) || code != SIGKILL) {
            diag("[%s] round %d: the writer was not killed but ended (why %d, "
                 "code %d)", type, r, (int)why, code);
            killed_good = 0;
        }

        log_init(&log);
        s = open_store(t.dir, type, NULL, &log, p, &rv);
        if (!ok(rv == APR_SUCCESS, "[%s] kill -9 round %d (after %d ms): the "
                "store opens", type, r, ms))
            diag("status %d; last message: %s", rv, log.last);
        if (!s) {
            apr_pool_destroy(p);
            continue;
        }
        recoveries += log.warnings > 0;
        ok(verify_ok(s, p), "[%s] round %d: verify passes", type, r);
        last = 0;
        if (iss_store_get(s, "last", 4, &v, &vl, p) == APR_SUCCESS)
            last = atol(v);
        if (!ok(last >= reported, "[%s] round %d: last = %ld >= %ld, the last "
                "commit the writer reported", type, r, last, reported))
            reported = last;
        ok(check_batches(s, last, p), "[%s] round %d: batches 1..%ld are "
           "complete, nothing of later ones exists", type, r, last);
        apr_pool_destroy(p);
    }
    ok(killed_good, "[%s] every writer died of SIGKILL", type);
    diag("[%s] kill -9: %d rounds, %ld batches committed, %d recoveries, "
         "%.2f s", type, rounds, last, recoveries,
         (double)(apr_time_now() - t0) / APR_USEC_PER_SEC);
    tmp_done(&t, pool);
}

/* ---- main ------------------------------------------------------------------- */

/* ---- claims -------------------------------------------------------------- */

/* A claim is held until released, seen as held by another handle (of this
 * process or another), refused to another handle while held, and gone
 * with the process that held it. */
static void t_claims(apr_pool_t *pool)
{
    tmp_t t;
    logrec_t log;
    iss_store_t *a = fresh_store(&t, "sdbm", &log, pool), *b;
    const apr_uint64_t n = 0x0123456789abcdefULL, m = 42;
    apr_proc_t proc;
    int status;
    apr_exit_why_e why;

    if (!a)
        return;
    b = open_store(t.dir, "sdbm", NULL, NULL, pool, NULL);
    ok(b != NULL, "claims: a second handle on the store");
    if (!b) {
        tmp_done(&t, pool);
        return;
    }
    is_int(iss_store_claim_held(a, n), 0, "claims: nothing held at first");
    is_int(iss_store_claim(a, n), APR_SUCCESS, "claims: claim a number");
    is_int(iss_store_claim_held(a, n), 1, "claims: held, asked by its holder");
    is_int(iss_store_claim_held(b, n), 1, "claims: held, asked by another "
           "handle");
    is_int(iss_store_claim_held(b, n + 1), 0, "claims: its neighbour is not");
    is_int(iss_store_claim(b, n), APR_EBUSY, "claims: another handle cannot "
           "claim it");
    is_int(iss_store_claim(b, m), APR_SUCCESS, "claims: another number can");
    iss_store_claim_release(a, n);
    is_int(iss_store_claim_held(b, n), 0, "claims: released");
    is_int(iss_store_claim_held(a, m), 1, "claims: the other handle's claim "
           "stays");
    iss_store_claim_release(b, m);

    /* Held by a child; gone when it dies (kill -9). */
    if (apr_proc_fork(&proc, pool) == APR_INCHILD) {
        apr_pool_t *cp;
        iss_store_t *c;

        apr_pool_create(&cp, NULL);
        c = open_store(t.dir, "sdbm", NULL, NULL, cp, NULL);
        if (!c || iss_store_claim(c, m) != APR_SUCCESS)
            _exit(2);
        for (;;)
            pause();
    }
    {
        int i, held = 0;

        for (i = 0; i < 500 && !(held = iss_store_claim_held(a, m) == 1); i++)
            apr_sleep(10000);
        ok(held, "claims: a child's claim is seen");
        is_int(iss_store_claim(a, m), APR_EBUSY, "claims: and refused to us");
        kill(proc.pid, SIGKILL);
        apr_proc_wait(&proc, &status, &why, APR_WAIT);
        is_int(iss_store_claim_held(a, m), 0, "claims: gone with the killed "
               "child");
    }
    iss_store_close(b);
    iss_store_close(a);
    tmp_done(&t, pool);
}

/* ---- truncated DBM files ------------------------------------------------- */

static int truncate_half(const char *path)
{
    apr_finfo_t fi;
    apr_pool_t *p;
    int ok_ = 0;

    apr_pool_create(&p, NULL);
    if (apr_stat(&fi, path, APR_FINFO_SIZE, p) == APR_SUCCESS && fi.size > 0)
        ok_ = truncate(path, fi.size / 2) == 0;
    apr_pool_destroy(p);
    return ok_;
}

/* One copy of the DBM truncated from outside: the store does not open
 * (EDAMAGED); truncated under an open handle: the next checkpoint finds
 * it and every transaction is refused from then on, reads going on.  Both
 * copies cut alike: a consistent store that lost records, which opens. */
static void t_truncated(const char *type, apr_pool_t *pool)
{
    tmp_t t;
    logrec_t log;
    iss_store_t *s = fresh_store(&t, type, &log, pool), *s2;
    const char *f[2][2], *cut, *mcut;
    apr_status_t rv;
    int i;

    if (!s)
        return;
    for (i = 0; i < 200; i++)
        put_s(s, apr_psprintf(pool, "key %d", i), "a value of some length");
    for (i = 0; i < 2; i++)
        apr_dbm_get_usednames_ex(pool, type, apr_pstrcat(pool, t.dir,
                                 i ? "/iss-store.g1.mirror" : "/iss-store.g1",
                                 NULL), &f[i][0], &f[i][1]);
    cut = f[0][1] ? f[0][1] : f[0][0];          /* sdbm: the .pag */
    mcut = f[1][1] ? f[1][1] : f[1][0];
    ok(truncate_half(cut), "[%s] truncated: cut the primary in half", type);
    /* The open handle: the next commit's checkpoint finds it. */
    put_s(s, "after", "1");
    rv = put_s(s, "after 2", "2");
    is_int(rv, ISS_STORE_EDAMAGED, "[%s] truncated: writes are refused "
           "after the next checkpoint", type);
    ok(strstr(iss_store_last_error(s), "changed from outside") != NULL,
       "[%s] truncated: and the error says why: %s", type,
       iss_store_last_error(s));
    if (!strcmp(type, "sdbm"))
        ok(holds(s, "key 7", 5, "a value of some length", 22, pool),
           "[%s] truncated: reads go on", type);
    s2 = open_store(t.dir, type, NULL, NULL, pool, &rv);
    ok(s2 == NULL && rv != APR_SUCCESS, "[%s] truncated: a new handle does "
       "not open (%d)", type, rv);
    iss_store_close(s);
    if (!strcmp(type, "sdbm")) {
        ok(truncate(mcut, 0) == 0 && truncate(cut, 0) == 0,
           "[%s] truncated: both copies cut alike", type);
        s2 = open_store(t.dir, type, NULL, NULL, pool, &rv);
        is_int(rv, APR_SUCCESS, "[%s] truncated alike: the store opens (it "
               "lost records, consistently)", type);
        if (s2) {
            is_int(iss_store_verify(s2, pool), APR_SUCCESS,
                   "[%s] truncated alike: and verifies", type);
            iss_store_close(s2);
        }
    }
    tmp_done(&t, pool);
}

int main(void)
{
    apr_pool_t *pool;
    apr_uint64_t seed;
    const char *env;
    char *journal;
    apr_size_t jlen = 0;
    size_t i;

    if (apr_initialize() != APR_SUCCESS || apr_pool_create(&pool, NULL)
                                           != APR_SUCCESS) {
        printf("Bail out! APR does not initialise\n");
        return 255;
    }
    if (getenv("ISS_TEST_KILL_ONLY")) {
        env = getenv("ISS_TEST_SEED");
        seed = env ? (apr_uint64_t)apr_atoi64(env) : (apr_uint64_t)apr_time_now();
        diag("ISS_TEST_SEED=%" APR_UINT64_T_FMT, seed);
        t_kill9(getenv("ISS_TEST_KILL_ONLY"), pool, &seed);
        return done_testing();
    }
    env = getenv("ISS_TEST_SEED");
    seed = env ? (apr_uint64_t)apr_atoi64(env)
               : (apr_uint64_t)apr_time_now() ^ ((apr_uint64_t)getpid() << 32);
    if (!seed)
        seed = 1;
    diag("ISS_TEST_SEED=%" APR_UINT64_T_FMT, seed);

    setenv("ISS_STORE_CHECKPOINT_BYTES", "0", 1);
    t_claims(pool);
    t_real_crash(pool);
    journal = legacy_journal(pool, &jlen);
    for (i = 0; i < NTYPES; i++) {
        const char *type = TYPES[i], *f1, *f2;
        apr_pool_t *p;

        apr_pool_create(&p, pool);
        if (apr_dbm_get_usednames_ex(p, type, "x", &f1, &f2) != APR_SUCCESS) {
            skip(1, apr_psprintf(p, "apr_dbm driver %s is not available",
                                 type));
            apr_pool_destroy(p);
            continue;
        }
        /* The DBM layer: every commit checkpointed at once. */
        setenv("ISS_STORE_CHECKPOINT_BYTES", "0", 1);
        t_damage(type, p);
        t_truncated(type, p);
        t_journal(type, journal, jlen, p);
        t_two_handles(type, journal, jlen, p);
        t_sweep_mirror_tmp(type, p);
        if (!strcmp(type, "sdbm")) {
            t_sdbm_index(p);
            t_sdbm_deep_split(p);
            t_sdbm_twice(p);
        }
        t_kill9(type, p, &seed);
        /* Through the write-ahead log, with checkpoints now and then. */
        setenv("ISS_STORE_CHECKPOINT_BYTES", "65536", 1);
        t_basic(type, p);
        t_sizes(type, p);
        t_iterate(type, p);
        t_batch(type, p);
        t_persist(type, p);
        t_many(type, p);
        t_mixed_checkpoints(type, p);
        t_multiproc(type, p);
        t_kill9(type, p, &seed);
        apr_pool_destroy(p);
    }
    /* Without fsync, process death must still leave all-or-nothing. */
    diag("kill -9 again, with a writer that does not fsync");
    writer_sync = 0;
    for (i = 0; i < NTYPES; i++) {
        const char *f1, *f2;

        if (apr_dbm_get_usednames_ex(pool, TYPES[i], "x", &f1, &f2)
            == APR_SUCCESS)
            t_kill9(TYPES[i], pool, &seed);
    }
    apr_pool_destroy(pool);
    apr_terminate();
    return done_testing();
}
