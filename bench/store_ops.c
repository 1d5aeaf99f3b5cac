/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * store_ops — the state store's share of a small write, without httpd
 * (issue 13): what bench/small_ops.sh cannot resolve, since its rates
 * and CPU move by more than a change of the store between two runs.
 *
 *   store_ops DIR [N [DBM [RUNS [THREADS]]]]
 *                          (defaults: 3000 writes, sdbm, 3 runs, 1 thread)
 *
 * DIR must not exist (it is created, and removed at the end).  Each run opens
 * a new store in DIR/run<i> and makes N writes the way the capture point
 * of mod_iss makes one PUT of a new file: iss_sync_log_begin_at() (the
 * intent, lazy, as with `ISSStateSync On`) and iss_sync_log_settle() with
 * one change and one index entry (the stat index value and a digest, no
 * manifest: a file below the chunk size), the default retention; with
 * ISS_STORE_CHECKPOINT_BYTES unset no checkpoint lands among the writes
 * unless the log passes its size (reported).  With THREADS > 1 the N
 * writes are shared by that many threads on one store handle, as an
 * httpd child's threads share it (its locks contended).  Then one
 * iss_store_checkpoint() applies what the writes left in the log.
 * Prints, one "key=value" a line, the best run (least CPU) of each:
 *   writes_us       CPU (user + system) per write of the intents and
 *                   settlements (checkpoints that landed among them
 *                   included: writes_checkpoints says how many);
 *   checkpoint_us   CPU of the final checkpoint, per write it applied;
 *   total_us        their sum;
 * and the spread (worst..best) of each.  Exit status: 0 fine, 1 error,
 * 2 usage.
 *
 * ISS_BENCH_PREFILL=K first makes K writes of other files and a
 * checkpoint, untimed, so that the measured writes and checkpoint meet a
 * large DBM (sdbm's lookups get dearer as its directory deepens: the
 * steady state of a busy location; K=100000 makes about 200,000 keys and
 * its log reaches the default count limit); ISS_BENCH_OVERWRITE=1 makes
 * the measured writes overwrites of those files (their stat index and
 * digest records exist) instead of new files.
 */

#define _XOPEN_SOURCE 700

#include "iss_store.h"
#include "iss_sync_log.h"
#include "iss_change.h"

#include <apr_general.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* CPU time of this process so far, in microseconds. */
static double cpu_us(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec * 1e6 + (double)ru.ru_utime.tv_usec
           + (double)ru.ru_stime.tv_sec * 1e6 + (double)ru.ru_stime.tv_usec;
}

static int rm_one(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int fail(const char *what, iss_store_t *s, apr_status_t rv)
{
    char buf[256];

    fprintf(stderr, "store_ops: %s: %s (%s)\n", what,
            apr_strerror(rv, buf, sizeof(buf)),
            s ? iss_store_last_error(s) : "");
    return 1;
}

typedef struct writer_t {
    iss_store_t *s;
    long from, to;              /* the writes [from, to) */
    const char *folder;         /* of the files written */
    int bad;
} writer_t;

/* Writes [from, to): an intent and its settlement each. */
static int writes(writer_t *w)
{
    iss_store_t *s = w->s;
    iss_sync_retention_t ret = { ISS_SYNC_RETENTION_DEFAULT_AGE,
                                 ISS_SYNC_RETENTION_DEFAULT_COUNT };
    apr_pool_t *it;
    apr_status_t rv;
    long i;

    if ((rv = apr_pool_create(&it, NULL)) != APR_SUCCESS)
        return fail("apr_pool_create", s, rv);
    for (i = w->from; i < w->to; i++) {
        apr_array_header_t *ch, *ix;
        iss_change_t *c;
        iss_sync_index_t *u;
        const char *id;
        apr_uint64_t last;

        apr_pool_clear(it);
        ch = apr_array_make(it, 1, sizeof(iss_change_t));
        c = apr_array_push(ch);
        c->kind = ISS_CHANGE_CREATED;
        c->collection = 0;
        c->path = apr_psprintf(it, "%s/f%ld", w->folder, i);
        ix = apr_array_make(it, 1, sizeof(iss_sync_index_t));
        u = apr_array_push(ix);
        memset(u, 0, sizeof(*u));
        u->path = c->path;
        /* the sizes of a stat index value and a digest record */
        u->value = apr_psprintf(it, "F 4096 %ld 1764700000000000 "
                                "1764700000000000 2049", 1000000L + i);
        u->digest = apr_psprintf(it, "sha256 %064ld 4096", i);
        if ((rv = iss_sync_log_begin_at(s, "PUT", ch, ISS_STORE_LAZY, &id,
                                        &last, it)) != APR_SUCCESS
            || (rv = iss_sync_log_settle(s, id, "PUT", ch, ix, &ret, last,
                                         NULL, it)) != APR_SUCCESS) {
            apr_pool_destroy(it);
            return fail("a write", s, rv);
        }
    }
    apr_pool_destroy(it);
    return 0;
}

static void *APR_THREAD_FUNC writer_main(apr_thread_t *t, void *baton)
{
    writer_t *w = baton;

    w->bad = writes(w);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static long prefill;             /* ISS_BENCH_PREFILL */
static int overwrite;            /* ISS_BENCH_OVERWRITE */

/* One run: N writes by @a nthreads threads, then the checkpoint. */
static int one_run(const char *dir, const char *dbm, long n, int nthreads,
                   double *w_us, double *c_us, apr_uint64_t *ckpts,
                   apr_pool_t *pool)
{
    iss_store_t *s = NULL;
    iss_store_stats_t st;
    writer_t w[64];
    apr_thread_t *th[64];
    apr_status_t rv;
    apr_uint64_t ckpt0 = 0;
    double t0;
    int i, bad = 0;

    if ((rv = apr_dir_make_recursive(dir, APR_FPROT_OS_DEFAULT, pool))
        != APR_SUCCESS)
        return fail(dir, NULL, rv);
    if ((rv = iss_store_open(&s, dir, dbm, NULL, NULL, NULL, pool))
        != APR_SUCCESS)
        return fail("iss_store_open", s, rv);
    if (prefill > 0) {
        writer_t pw = { s, 0, prefill, "p0", 0 };

        if (writes(&pw))
            return 1;
        if ((rv = iss_store_checkpoint(s, pool)) != APR_SUCCESS)
            return fail("iss_store_checkpoint", s, rv);
        if ((rv = iss_store_stats(s, &st)) != APR_SUCCESS)
            return fail("iss_store_stats", s, rv);
        ckpt0 = st.checkpoints;
    }
    t0 = cpu_us();
    for (i = 0; i < nthreads; i++) {
        w[i].s = s;
        w[i].from = n * i / nthreads;
        w[i].to = n * (i + 1) / nthreads;
        w[i].folder = overwrite ? "p0" : "p1";
        w[i].bad = 0;
        if (nthreads == 1)
            w[i].bad = writes(&w[i]);
        else if ((rv = apr_thread_create(&th[i], NULL, writer_main, &w[i],
                                         pool)) != APR_SUCCESS)
            return fail("apr_thread_create", s, rv);
    }
    for (i = 0; i < nthreads; i++) {
        if (nthreads > 1)
            apr_thread_join(&rv, th[i]);
        bad |= w[i].bad;
    }
    if (bad)
        return 1;
    *w_us = (cpu_us() - t0) / (double)n;
    if ((rv = iss_store_stats(s, &st)) != APR_SUCCESS)
        return fail("iss_store_stats", s, rv);
    *ckpts = st.checkpoints - ckpt0;
    t0 = cpu_us();
    if ((rv = iss_store_checkpoint(s, pool)) != APR_SUCCESS)
        return fail("iss_store_checkpoint", s, rv);
    *c_us = (cpu_us() - t0) / (double)n;
    iss_store_close(s);
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    apr_pool_t *pool;
    const char *dir, *dbm = "sdbm";
    long n = 3000;
    int runs = 3, threads = 1, r, bad = 0;
    double w[64], c[64], t[64];
    apr_uint64_t ckpts = 0, k = 0;
    apr_finfo_t fi;

    if (argc < 2 || argc > 6) {
        fprintf(stderr, "usage: store_ops DIR [N [DBM [RUNS [THREADS]]]]\n");
        return 2;
    }
    dir = argv[1];
    if (argc > 2)
        n = atol(argv[2]);
    if (argc > 3)
        dbm = argv[3];
    if (argc > 4)
        runs = atoi(argv[4]);
    if (argc > 5)
        threads = atoi(argv[5]);
    if (n < 1 || runs < 1 || runs > 64 || threads < 1 || threads > 64) {
        fprintf(stderr, "store_ops: N >= 1, 1 <= RUNS <= 64, "
                "1 <= THREADS <= 64\n");
        return 2;
    }
    if (getenv("ISS_BENCH_PREFILL"))
        prefill = atol(getenv("ISS_BENCH_PREFILL"));
    overwrite = getenv("ISS_BENCH_OVERWRITE")
                && !strcmp(getenv("ISS_BENCH_OVERWRITE"), "1");
    if (prefill < 0 || (overwrite && prefill < n)) {
        fprintf(stderr, "store_ops: ISS_BENCH_PREFILL >= 0, and >= N with "
                "ISS_BENCH_OVERWRITE=1\n");
        return 2;
    }
    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&pool, NULL);
    if (apr_stat(&fi, dir, APR_FINFO_TYPE, pool) == APR_SUCCESS) {
        fprintf(stderr, "store_ops: %s exists (give a new folder)\n", dir);
        return 2;
    }
    for (r = 0; r < runs && !bad; r++) {
        apr_pool_t *rp;

        apr_pool_create(&rp, pool);
        bad = one_run(apr_psprintf(rp, "%s/run%d", dir, r), dbm, n, threads,
                      &w[r], &c[r], &k, rp);
        t[r] = w[r] + c[r];
        if (k > ckpts)
            ckpts = k;
        apr_pool_destroy(rp);
    }
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    if (bad)
        return 1;
    qsort(w, (size_t)runs, sizeof(double), cmp_d);
    qsort(c, (size_t)runs, sizeof(double), cmp_d);
    qsort(t, (size_t)runs, sizeof(double), cmp_d);
    printf("dbm=%s\nwrites=%ld\nruns=%d\nthreads=%d\n", dbm, n, runs,
           threads);
    printf("prefill=%ld\noverwrite=%d\n", prefill, overwrite);
    printf("writes_us=%.1f\nwrites_spread=%.1f..%.1f\n", w[0], w[runs - 1],
           w[0]);
    printf("writes_checkpoints=%" APR_UINT64_T_FMT "\n", ckpts);
    printf("checkpoint_us=%.1f\ncheckpoint_spread=%.1f..%.1f\n", c[0],
           c[runs - 1], c[0]);
    printf("total_us=%.1f\ntotal_spread=%.1f..%.1f\n", t[0], t[runs - 1],
           t[0]);
    return 0;
}
