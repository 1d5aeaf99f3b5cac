/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * iss-state — look into a mod_iss state directory.
 *
 *   iss-state [-t DBMTYPE] DIR info          store id, DBM type, key count,
 *                                            write-ahead log and group
 *                                            commit counters
 *   iss-state [-t DBMTYPE] DIR verify        check every record
 *   iss-state [-t DBMTYPE] DIR list [PREFIX] keys (escaped) and value sizes
 *   iss-state DIR log [FROM]                 the sync log: bounds, pending
 *                                            writes, entries from FROM on
 *   iss-state DIR scan DIRECTORY             reconciliation scan: log what
 *                                            changed in DIRECTORY (the
 *                                            location's folder) behind
 *                                            httpd's back
 *   iss-state DIR compact age=..|count=..    drop log entries past that
 *   iss-state DIR token TOKEN                what a sync token of this
 *                                            store says (its numbers are
 *                                            sealed with DIR/iss-token.key,
 *                                            which this reads, never makes)
 *   iss-state DIR recover                    log the writes of dead httpd
 *                                            processes now
 *   iss-state DIR compact-chunks             drop the stale paths of the
 *                                            chunk index (iss_chunkidx.h)
 *   iss-state DIR uploads                    the chunk upload sessions in
 *                                            DIR/uploads: id, user, path,
 *                                            chunks, bytes, idle seconds
 *   iss-state DIR gc-uploads SECONDS         remove upload sessions idle
 *                                            longer than SECONDS (and
 *                                            leftovers of dead writers)
 *   iss-state DIR gc-tmp DIRECTORY SECONDS   remove the temporary files of
 *                                            PUTs and PATCHes that httpd
 *                                            left in DIRECTORY (the
 *                                            location's folder) when it
 *                                            died: .davfs.tmpXXXXXX files
 *                                            not written for SECONDS
 *   iss-state DIR versions                   retained versions: files,
 *                                            versions, distinct contents
 *                                            and their bytes, data files
 *                                            on disk
 *   iss-state DIR gc-versions [LIMIT ...]    apply ISSKeepVersions limits
 *                                            (count=N size=N[KMGT]
 *                                            age=N[smhdw]) to every file,
 *                                            then remove the version data
 *                                            nothing references
 *   iss-state DIR forget-versions PATH       drop every version of PATH
 *                                            (relative to the location)
 *                                            and its data: an erasure
 *
 * The DBM type is read from the store unless -t insists on one.  It never
 * creates a store (the upload commands do not open it at all); run as
 * root, it takes on the state directory's owner.  Safe while httpd runs:
 * the store serialises with httpd through its lock file, upload sessions
 * are removed by renaming them away first (iss_upload.h).  Exit status:
 * 0 fine, 1 damaged or not found, 2 usage.
 */

#include "iss_chunkidx.h"
#include "iss_davfs.h"
#include "iss_reconcile.h"
#include "iss_store.h"
#include "iss_sync_log.h"
#include "iss_upload.h"
#include "iss_version.h"
#include "iss_versions.h"

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_strings.h>
#include <apr_date.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(void)
{
    fprintf(stderr,
            "usage: iss-state [-t DBMTYPE] DIR info|verify|list [PREFIX]\n"
            "       iss-state DIR log [FROM] | scan DIRECTORY | recover\n"
            "       iss-state DIR token TOKEN\n"
            "       iss-state DIR compact age=<n>[smhdw]|count=<n> ...\n"
            "       iss-state DIR compact-chunks\n"
            "       iss-state DIR uploads | gc-uploads SECONDS\n"
            "       iss-state DIR gc-tmp DIRECTORY SECONDS\n"
            "       iss-state DIR versions | gc-versions [count=N] "
            "[size=N[KMGT]] [age=N[smhdw]]\n"
            "       iss-state DIR forget-versions PATH\n"
            "  DBMTYPE: insist on this apr_dbm type (default: the store's)\n");
}

static void print_escaped(const unsigned char *s, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') {
            putchar(s[i]);
        }
        else {
            printf("\\x%02x", s[i]);
        }
    }
}

typedef struct count_t {
    apr_size_t keys, bytes;
    int list;
} count_t;

static int visit(void *baton, const void *key, apr_size_t klen,
                 const void *val, apr_size_t vlen)
{
    count_t *c = baton;

    c->keys++;
    c->bytes += vlen;
    if (c->list) {
        print_escaped(key, klen);
        printf("\t%" APR_SIZE_T_FMT "\n", vlen);
    }
    return 0;
}

/* Run as root, take on the identity of the state directory's owner: any
 * file this run creates (lock file, a recovery's new generation) must stay
 * writable for httpd, which owns the directory. */
static int become_owner(const char *dir)
{
    struct stat st;

    if (geteuid() != 0 || stat(dir, &st) != 0 || st.st_uid == 0) {
        return 0;
    }
    if (setgid(st.st_gid) != 0 || setuid(st.st_uid) != 0) {
        fprintf(stderr, "iss-state: cannot switch to the owner (uid %ld) of "
                "%s\n", (long)st.st_uid, dir);
        return -1;
    }
    return 0;
}

static int print_entry(void *baton, apr_uint64_t seq, apr_time_t when,
                       const char *method, const apr_array_header_t *changes)
{
    char date[APR_RFC822_DATE_LEN];
    int i;

    apr_rfc822_date(date, when);
    printf("%" APR_UINT64_T_FMT "\t%s\t%s\t%d\n", seq, date, method,
           changes->nelts);
    for (i = 0; i < changes->nelts; i++) {
        const iss_change_t *c = &APR_ARRAY_IDX(changes, i, iss_change_t);

        printf("\t%s %s ", iss_change_kind_name(c->kind),
               c->collection ? "collection" : "file");
        print_escaped((const unsigned char *)c->path, strlen(c->path));
        putchar('\n');
    }
    return 0;
}

static int fail(iss_store_t *store, const char *dir)
{
    fprintf(stderr, "iss-state: %s: %s\n", dir, iss_store_last_error(store));
    return 1;
}

/* The sync log commands; -1 when @a cmd is none of them. */
static int log_command(iss_store_t *store, const char *dir, const char *cmd,
                       int argc, const char *const *argv, apr_pool_t *pool)
{
    iss_sync_retention_t ret = { 0, 0 };
    apr_uint64_t last, first, from, n;
    apr_status_t rv;
    int i, recovered;

    if (strcmp(cmd, "log") == 0) {
        const char *ids;

        if ((rv = iss_sync_log_bounds(store, &last, &first, pool))
            || (rv = iss_sync_log_pending(store, &ids, pool))) {
            return fail(store, dir);
        }
        printf("entries: %" APR_UINT64_T_FMT " to %" APR_UINT64_T_FMT
               "\npending: %s\n", first, last, ids);
        from = argc > 0 ? (apr_uint64_t)apr_atoi64(argv[0]) : first;
        if (from < first) {
            from = first;
        }
        if ((rv = iss_sync_log_read(store, from, last, print_entry, NULL,
                                    pool)) != APR_SUCCESS) {
            return fail(store, dir);
        }
        return 0;
    }
    if (strcmp(cmd, "scan") == 0) {
        iss_scan_stats_t st;
        apr_time_t t0 = apr_time_now();

        if (argc != 1) {
            usage();
            return 2;
        }
        /* No compaction: the tool does not know the location's
         * ISSSyncRetention, and must not drop what it keeps. */
        /* The module's rule: the tree is served by mod_dav_fs. */
        rv = iss_reconcile_run(store, argv[0], &iss_davfs_ignore, NULL, &st,
                               &n, pool);
        if (rv != APR_SUCCESS) {
            fprintf(stderr, "iss-state: scan of %s failed%s%s: %s\n",
                    argv[0], st.error_path ? " at " : "",
                    st.error_path ? st.error_path : "",
                    iss_store_last_error(store));
            return 1;
        }
        printf("%" APR_UINT64_T_FMT " directories, %" APR_UINT64_T_FMT
               " files: %" APR_UINT64_T_FMT " created, %" APR_UINT64_T_FMT
               " modified, %" APR_UINT64_T_FMT " removed (%" APR_TIME_T_FMT
               " ms)", st.dirs, st.files, st.created, st.modified,
               st.removed, (apr_time_now() - t0) / 1000);
        if (n) {
            printf("; logged as entry %" APR_UINT64_T_FMT, n);
        }
        printf("\n");
        return 0;
    }
    if (strcmp(cmd, "compact") == 0) {
        if (argc == 0) {
            usage();
            return 2;
        }
        for (i = 0; i < argc; i++) {
            const char *err = iss_sync_retention_parse(&ret, argv[i], pool);

            if (err) {
                fprintf(stderr, "iss-state: %s\n", err);
                return 2;
            }
        }
        if (iss_sync_log_compact(store, &ret, 0, &n, pool) != APR_SUCCESS) {
            return fail(store, dir);
        }
        printf("removed %" APR_UINT64_T_FMT " entries\n", n);
        return 0;
    }
    if (strcmp(cmd, "token") == 0) {
        iss_sync_key_t key;
        iss_sync_pos_t pos;
        const char *why = NULL, *id = NULL, *log_id = NULL;
        int made = 0;

        if (argc != 1) {
            usage();
            return 2;
        }
        /* Never made here: a key the server has not used opens nothing. */
        rv = iss_sync_key_load(&key, dir, 0, &made, NULL, &why, pool);
        if (rv != APR_SUCCESS) {
            fprintf(stderr, "iss-state: %s\n", why ? why : dir);
            return 1;
        }
        if (iss_sync_token_parse(&key, argv[0], &id, &pos, pool)
            != APR_SUCCESS) {
            fprintf(stderr, "iss-state: not a valid sync token of %s (its "
                    "key, " ISS_SYNC_KEY_FILE ", did not make it)\n", dir);
            return 1;
        }
        if ((rv = iss_sync_log_bounds_peek(store, &last, &first, &log_id,
                                           pool))) {
            return fail(store, dir);
        }
        if (log_id == NULL || strcmp(id, log_id) != 0) {
            fprintf(stderr, "iss-state: the token names log %s, the "
                    "change log in %s is %s\n", id, dir,
                    log_id ? log_id : "not numbered yet");
            return 1;
        }
        printf("log: %s\n", id);
        if (pos.initial) {
            printf("listing: continues after %s\n", pos.after);
        }
        if (pos.after && !pos.initial) {
            printf("entry: %" APR_UINT64_T_FMT " item %u naming %s\n",
                   pos.seq, (unsigned)pos.idx, pos.after);
        }
        else {
            printf("position: %" APR_UINT64_T_FMT "\n", pos.seq - 1);
        }
        printf("log: entries %" APR_UINT64_T_FMT " to %" APR_UINT64_T_FMT
               "%s\n", first, last,
               pos.seq > last + 1 ? " (the token is from the future: refused)"
               : pos.seq < first && pos.seq <= last
                   ? " (the token is expired: refused)" : "");
        return 0;
    }
    if (strcmp(cmd, "recover") == 0) {
        if (iss_sync_log_recover(store, NULL, &recovered, pool)) {
            return fail(store, dir);
        }
        printf("recovered %d interrupted writes\n", recovered);
        return 0;
    }
    return -1;
}

/* The upload session commands (DIR/uploads; no store needed); -1 when
 * @a cmd is none of them. */
static int upload_command(const char *dir, const char *cmd, int argc,
                          const char *const *argv, apr_pool_t *pool)
{
    const char *root = apr_pstrcat(pool, dir, "/uploads", NULL);
    apr_array_header_t *infos;
    apr_uint64_t bytes = 0, freed;
    apr_uint32_t removed;
    apr_time_t now = apr_time_now();
    apr_status_t rv;
    apr_finfo_t fi;
    char err[256];
    int i;

    if (strcmp(cmd, "uploads") != 0 && strcmp(cmd, "gc-uploads") != 0) {
        return -1;
    }
    /* A missing DIR/uploads is no session; a missing DIR is a typo. */
    if ((rv = apr_stat(&fi, dir, APR_FINFO_TYPE, pool)) != APR_SUCCESS
        || fi.filetype != APR_DIR) {
        fprintf(stderr, "iss-state: %s: %s\n", dir, rv != APR_SUCCESS
                ? apr_strerror(rv, err, sizeof(err)) : "not a directory");
        return 1;
    }
    if (strcmp(cmd, "uploads") == 0) {
        if (argc != 0) {
            usage();
            return 2;
        }
        if ((rv = iss_upload_list(root, &infos, pool)) != APR_SUCCESS) {
            fprintf(stderr, "iss-state: %s: %s\n", root,
                    apr_strerror(rv, err, sizeof(err)));
            return 1;
        }
        for (i = 0; i < infos->nelts; i++) {
            const iss_upload_info_t *in = &APR_ARRAY_IDX(infos, i,
                                                         iss_upload_info_t);
            apr_time_t idle = now > in->touched ? now - in->touched : 0;

            printf("%s\t", in->id);
            if (in->user[0]) {
                print_escaped((const unsigned char *)in->user,
                              strlen(in->user));
            }
            else {
                putchar('-');
            }
            putchar('\t');
            print_escaped((const unsigned char *)in->path, strlen(in->path));
            printf("\t%lu chunks\t%" APR_UINT64_T_FMT " bytes\t%"
                   APR_TIME_T_FMT " s idle\n", (unsigned long)in->chunks,
                   in->bytes, apr_time_sec(idle));
            bytes += in->bytes;
        }
        printf("total: %d sessions, %" APR_UINT64_T_FMT " bytes\n",
               infos->nelts, bytes);
        return 0;
    }
    if (strcmp(cmd, "gc-uploads") == 0) {
        const apr_int64_t max = APR_INT64_MAX / APR_USEC_PER_SEC;
        const char *s = argc == 1 ? argv[0] : "";
        apr_int64_t secs = 0;

        /* decimal seconds, nothing else (no sign, no suffix) */
        for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
            if (secs > (max - (s[i] - '0')) / 10) {
                break;              /* too large: s[i] is no NUL */
            }
            secs = secs * 10 + (s[i] - '0');
        }
        if (argc != 1 || i == 0 || s[i] != '\0') {
            usage();
            return 2;
        }
        rv = iss_upload_gc(root, apr_time_from_sec(secs), now, &removed,
                           &freed, pool);
        printf("removed %lu sessions, freed %" APR_UINT64_T_FMT " bytes\n",
               (unsigned long)removed, freed);
        if (rv != APR_SUCCESS) {
            fprintf(stderr, "iss-state: %s: %s\n", root,
                    apr_strerror(rv, err, sizeof(err)));
            return 1;
        }
        return 0;
    }
    return -1;                      /* not reached */
}

/* Decimal seconds, nothing else (no sign, no suffix): 1, else 0. */
static int parse_seconds(const char *s, apr_int64_t *out)
{
    const apr_int64_t max = APR_INT64_MAX / APR_USEC_PER_SEC;
    apr_int64_t secs = 0;
    int i;

    for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
        if (secs > (max - (s[i] - '0')) / 10) {
            return 0;
        }
        secs = secs * 10 + (s[i] - '0');
    }
    *out = secs;
    return i > 0 && s[i] == '\0';
}

/* gc-tmp: -1 if @a cmd is not it, else the exit status. */
static int tmp_command(const char *cmd, int argc, const char *const *argv,
                       apr_pool_t *pool)
{
    apr_uint32_t removed;
    apr_uint64_t freed;
    apr_int64_t secs;
    apr_finfo_t fi;
    apr_status_t rv;
    char err[256];

    if (strcmp(cmd, "gc-tmp") != 0) {
        return -1;
    }
    if (argc != 2 || !parse_seconds(argv[1], &secs)) {
        usage();
        return 2;
    }
    if ((rv = apr_stat(&fi, argv[0], APR_FINFO_TYPE, pool)) != APR_SUCCESS
        || fi.filetype != APR_DIR) {
        fprintf(stderr, "iss-state: %s: %s\n", argv[0], rv != APR_SUCCESS
                ? apr_strerror(rv, err, sizeof(err)) : "not a directory");
        return 1;
    }
    rv = iss_davfs_gc_tmp(argv[0], apr_time_from_sec(secs), apr_time_now(),
                          &removed, &freed, pool);
    printf("removed %lu temporary files, freed %" APR_UINT64_T_FMT
           " bytes\n", (unsigned long)removed, freed);
    if (rv != APR_SUCCESS) {
        fprintf(stderr, "iss-state: %s: %s\n", argv[0],
                apr_strerror(rv, err, sizeof(err)));
        return 1;
    }
    return 0;
}

static void log_cb(void *baton, int level, apr_status_t rv, const char *msg)
{
    fprintf(stderr, "iss-state: %s\n", msg);
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool;
    apr_getopt_t *opt;
    const char *type = NULL, *arg, *dir, *cmd, *prefix = NULL;
    iss_store_t *store = NULL;
    apr_status_t rv;
    char ch;
    int rc;
    count_t c = { 0, 0, 0 };

    apr_app_initialize(&argc, &argv, NULL);
    atexit(apr_terminate);
    apr_pool_create(&pool, NULL);
    apr_getopt_init(&opt, pool, argc, argv);
    while ((rv = apr_getopt(opt, "t:hV", &ch, &arg)) == APR_SUCCESS) {
        switch (ch) {
        case 't': type = arg; break;
        case 'V': printf("iss-state %s\n", ISS_VERSION); return 0;
        default: usage(); return 2;
        }
    }
    if (rv != APR_EOF || argc - opt->ind < 2) {
        usage();
        return 2;
    }
    dir = argv[opt->ind];
    cmd = argv[opt->ind + 1];
    if (argc - opt->ind > 2) {
        prefix = argv[opt->ind + 2];
    }

    if (become_owner(dir) != 0) {
        return 1;
    }
    rc = upload_command(dir, cmd, argc - opt->ind - 2, argv + opt->ind + 2,
                        pool);
    if (rc < 0) {
        rc = tmp_command(cmd, argc - opt->ind - 2, argv + opt->ind + 2,
                         pool);
    }
    if (rc >= 0) {
        return rc;
    }
    rv = iss_store_open(&store, dir, type, NULL, log_cb, NULL, pool);
    if (rv != APR_SUCCESS) {
        /* The store has said why through log_cb. */
        if (store == NULL) {
            fprintf(stderr, "iss-state: cannot open the state in %s\n", dir);
        }
        return 1;
    }
    rc = log_command(store, dir, cmd, argc - opt->ind - 2,
                     argv + opt->ind + 2, pool);
    if (rc >= 0) {
        return rc;
    }
    if (strcmp(cmd, "compact-chunks") == 0) {
        apr_uint64_t kept, paths, records;

        if (argc - opt->ind != 2) {
            usage();
            return 2;
        }
        if (iss_chunkidx_compact(store, &kept, &paths, &records, pool)
            != APR_SUCCESS) {
            return fail(store, dir);
        }
        printf("kept %" APR_UINT64_T_FMT " paths, dropped %" APR_UINT64_T_FMT
               " paths, deleted %" APR_UINT64_T_FMT " records\n", kept,
               paths, records);
        return 0;
    }
    if (strcmp(cmd, "versions") == 0) {
        iss_versions_usage_t u;

        if (argc - opt->ind != 2) {
            usage();
            return 2;
        }
        if (iss_versions_usage(store, &u, pool) != APR_SUCCESS) {
            return fail(store, dir);
        }
        printf("files with versions: %" APR_UINT64_T_FMT "\nversions: %"
               APR_UINT64_T_FMT "\ndistinct contents: %" APR_UINT64_T_FMT
               "\nbytes: %" APR_UINT64_T_FMT "\ndata files: %"
               APR_UINT64_T_FMT "\ndata bytes on disk: %" APR_UINT64_T_FMT
               "\npending (writes under way): %" APR_UINT64_T_FMT
               "\npacked contents: %" APR_UINT64_T_FMT "\nchunk files: %"
               APR_UINT64_T_FMT "\nchunk bytes on disk: %" APR_UINT64_T_FMT
               "\nchunks held by live files: %" APR_UINT64_T_FMT
               "\nchunk bytes held by live files: %" APR_UINT64_T_FMT
               "\nlive files linked: %" APR_UINT64_T_FMT
               "\nlive links whose file is gone: %" APR_UINT64_T_FMT
               "\n", u.files, u.versions, u.blobs, u.bytes, u.disk_files,
               u.disk_bytes, u.pending, u.packed, u.chunk_files,
               u.chunk_bytes, u.live_chunks, u.live_bytes, u.live_files,
               u.live_orphans);
        return 0;
    }
    if (strcmp(cmd, "forget-versions") == 0) {
        apr_uint64_t dropped = 0;

        if (argc - opt->ind != 3) {
            usage();
            return 2;
        }
        if (iss_versions_forget(store, argv[opt->ind + 2], &dropped, pool)
            != APR_SUCCESS) {
            return fail(store, dir);
        }
        printf("dropped %" APR_UINT64_T_FMT " versions of %s\n", dropped,
               argv[opt->ind + 2]);
        return 0;
    }
    if (strcmp(cmd, "gc-versions") == 0) {
        iss_versions_limits_t lim = { 0, 0, 0, 0 };
        iss_versions_gc_t st;
        int i, on = 0;

        for (i = opt->ind + 2; i < argc; i++) {
            const char *err = iss_versions_limits_parse(&lim, &on, argv[i],
                                                        pool);

            if (err != NULL || strchr(argv[i], '=') == NULL) {
                fprintf(stderr, "iss-state: gc-versions: %s\n",
                        err ? err : "expected count=, size= or age=");
                return 2;
            }
        }
        if (iss_versions_gc(store, on ? &lim : NULL, apr_time_now(), &st,
                            pool) != APR_SUCCESS) {
            return fail(store, dir);
        }
        printf("dropped %" APR_UINT64_T_FMT " versions, packed %"
               APR_UINT64_T_FMT " contents into chunks, removed %"
               APR_UINT64_T_FMT " data files, %" APR_UINT64_T_FMT
               " chunk files (%" APR_UINT64_T_FMT " bytes) and %"
               APR_UINT64_T_FMT " pending links, released %"
               APR_UINT64_T_FMT " live files\n", st.pruned, st.packed,
               st.blobs, st.chunks, st.bytes, st.pending, st.unlinked);
        if (st.lost) {
            fprintf(stderr, "iss-state: %s: %" APR_UINT64_T_FMT " chunks of "
                    "versions were in live files changed behind httpd's "
                    "back (those versions cannot be read)\n", dir, st.lost);
        }
        if (st.damaged) {
            fprintf(stderr, "iss-state: %s: %" APR_UINT64_T_FMT " contents "
                    "whose bytes do not match their digests were left as "
                    "they are (their versions cannot be read)\n", dir,
                    st.damaged);
        }
        return 0;
    }
    if (strcmp(cmd, "verify") == 0) {
        rv = iss_store_verify(store, pool);
        if (rv != APR_SUCCESS) {
            fprintf(stderr, "iss-state: %s: %s\n", dir,
                    iss_store_last_error(store));
            return 1;
        }
        printf("%s: ok\n", dir);
        return 0;
    }
    if (strcmp(cmd, "info") == 0 || strcmp(cmd, "list") == 0) {
        c.list = cmd[0] == 'l';
        rv = iss_store_iterate(store, prefix, prefix ? strlen(prefix) : 0,
                               visit, &c, pool);
        if (rv != APR_SUCCESS) {
            fprintf(stderr, "iss-state: %s: %s\n", dir,
                    iss_store_last_error(store));
            return 1;
        }
        if (!c.list) {
            iss_store_stats_t st;

            printf("store id: %s\ndbm type: %s\nkeys: %" APR_SIZE_T_FMT
                   "\nvalue bytes: %" APR_SIZE_T_FMT "\n",
                   iss_store_id(store), iss_store_dbm_type(store), c.keys,
                   c.bytes);
            if (iss_store_stats(store, &st) == APR_SUCCESS) {
                printf("write-ahead log: generation %" APR_UINT64_T_FMT
                       ", %" APR_UINT64_T_FMT " bytes not yet in the DBM\n"
                       "group commit: %" APR_UINT64_T_FMT " commits waited "
                       "for %" APR_UINT64_T_FMT " fsyncs (%.2f ms each)\n"
                       "checkpoints: %" APR_UINT64_T_FMT "\n"
                       "mirror copy: %" APR_UINT64_T_FMT " log generations "
                       "(%" APR_UINT64_T_FMT " bytes) behind the DBM\n",
                       st.wal_generation, st.wal_bytes, st.durable_waits,
                       st.fsyncs, st.fsyncs ? st.fsync_usec / 1000.0
                                              / (double)st.fsyncs : 0.0,
                       st.checkpoints, st.mirror_behind,
                       st.mirror_behind_bytes);
            }
            {
                const char *mark;

                if (iss_store_rescan_due(store, &mark, pool) == APR_SUCCESS)
                    printf("rescan: %s\n", mark ? "due (the machine "
                           "restarted; the next sync answer, or `scan`, "
                           "compares the files first)" : "none due");
            }
        }
        return 0;
    }
    usage();
    return 2;
}
