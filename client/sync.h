/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss-sync — the types every part of the client shares.
 *
 * The client runs one two-way sync of a local folder with a server
 * collection (docs/client.md).  A run is:
 *
 *   1. open the state (sync_state: SQLite, outside the folder) and take
 *      the folder's lock;
 *   2. learn what the server offers (sync_dav_discover: OPTIONS);
 *   3. learn what changed on the server (sync_dav_changes: the
 *      sync-collection REPORT from the stored token, or a Depth-1
 *      PROPFIND walk against plain WebDAV servers);
 *   4. learn what changed locally (sync_local_scan: lstat every entry,
 *      hash and chunk only what changed since the last sync);
 *   5. decide, path by path, by comparing both sides with the last
 *      synced state (sync_plan: three-way, never by timestamps alone),
 *      and check the guards (mass delete, empty root);
 *   6. carry out the actions (sync_xfer and sync_local), every server
 *      write conditional, every local write through a temporary file,
 *      and record each result in the state only after it succeeded.
 *
 * Items.  Every path that exists, or existed at the last sync, on
 * either side is one sync_item_t: its last synced state (base), what
 * is on disk now (local) and what the server has now (remote).  Paths
 * are relative to the synced folder, '/'-separated, without leading or
 * trailing slash, in UTF-8 as the server spells them.
 */
#ifndef ISS_SYNC_H
#define ISS_SYNC_H

#include <apr_pools.h>
#include <apr_hash.h>
#include <apr_tables.h>

#include "iss_cdc.h"
#include "iss_digest.h"
#include "iss_manifest.h"

/* Exit codes (docs/client.md, iss-sync(1)). */
#define SYNC_EXIT_OK        0   /* in sync */
#define SYNC_EXIT_CONFLICTS 1   /* in sync, conflicts kept as copies */
#define SYNC_EXIT_FAILED    2   /* some items failed or were skipped */
#define SYNC_EXIT_GUARD     3   /* stopped by a safety guard */
#define SYNC_EXIT_USAGE     4   /* usage or configuration error */
#define SYNC_EXIT_SERVER    5   /* server unreachable, refusing, or
                                   answering what cannot be right */

#define SHA_LEN ISS_DIGEST_SHA256_LEN

typedef enum {
    SYNC_NONE = 0,          /* nothing there */
    SYNC_FILE,
    SYNC_DIR
} sync_kind_e;

/** The last synced state of a path (a row of the state's files table). */
typedef struct sync_base_t {
    sync_kind_e kind;
    const char *etag;               /* server ETag then (files) */
    int has_sha;
    unsigned char sha[SHA_LEN];     /* content then (files) */
    /* the local file's identity then: */
    apr_int64_t size, mtime_ns, ctime_ns;
    apr_uint64_t inode;
} sync_base_t;

/** What is on disk now. */
typedef struct sync_local_t {
    sync_kind_e kind;
    apr_int64_t size, mtime_ns, ctime_ns;
    apr_uint64_t inode;
    int has_sha;                    /* sha known (hashed, or identity
                                       unchanged since base) */
    unsigned char sha[SHA_LEN];
    int unchanged;                  /* same identity as base: not read */
    int other;                      /* something that is not synced is
                                       there (a symbolic link, a FIFO...) */
    iss_manifest_t *manifest;       /* when hashed with chunking on */
} sync_local_t;

/** What the server has now. */
typedef struct sync_remote_t {
    int listed;                     /* 0: not in a change list (= base) */
    sync_kind_e kind;
    const char *etag;
    apr_int64_t size;
    int has_sha;                    /* from I:repr-digest */
    unsigned char sha[SHA_LEN];
} sync_remote_t;

typedef enum {
    ACT_NONE = 0,           /* nothing to do */
    ACT_RECORD,             /* both sides agree: (re)write the record */
    ACT_FORGET,             /* gone on both sides: drop the record */
    ACT_UPLOAD,             /* local file to the server */
    ACT_DOWNLOAD,           /* server file to the folder */
    ACT_DELETE_LOCAL,
    ACT_DELETE_REMOTE,
    ACT_MKDIR_LOCAL,
    ACT_MKDIR_REMOTE,
    ACT_RMDIR_LOCAL,        /* a folder gone on the server, if empty */
    ACT_RMDIR_REMOTE,       /* a folder gone locally, if empty there */
    ACT_CONFLICT,           /* both changed: keep both */
    ACT_MOVE_REMOTE,        /* a local rename: MOVE on the server */
    ACT_REPLACE_REMOTE,     /* changed kind here only (a file became a
                               folder, or back): the same on the server */
    ACT_REPLACE_LOCAL,      /* changed kind on the server only */
    ACT_SKIP                /* reported, left alone (see skip_reason) */
} sync_action_e;

typedef struct sync_item_t sync_item_t;
struct sync_item_t {
    const char *path;
    int depth;                      /* number of '/' in path */
    int has_base;
    sync_base_t base;
    sync_local_t local;
    sync_remote_t remote;
    sync_action_e action;
    const char *skip_reason;
    sync_item_t *move_from;         /* ACT_MOVE_REMOTE: the old path */
    int moved_away;                 /* the source of a MOVE_REMOTE */
    int done;                       /* carried out (or failed) */
};

/** Options from the command line. */
typedef struct sync_opts_t {
    const char *local_root;         /* absolute */
    const char *url;                /* ends with '/' */
    const char *state_dir;
    const char *cacert;
    int dry_run, quiet, verbose, progress;
    int max_delete;                 /* percent, 0..100 */
    int allow_empty_root;
} sync_opts_t;

/** What the server offers (OPTIONS). */
typedef struct sync_server_t {
    int iss;                        /* DAV: <https://mod-iss.org/ns/iss/1> */
    int chunking;                   /* ISS-Chunking announced */
    iss_cdc_params_t params;
    int sync_collection;            /* sync tokens usable */
    const char *origin;             /* scheme://host[:port] of the URL */
    const char *base_path;          /* the collection's path, decoded,
                                       with a trailing '/' */
} sync_server_t;

/** Counters for the summary line. */
typedef struct sync_stats_t {
    apr_uint64_t up, down, deleted_local, deleted_remote, conflicts;
    apr_uint64_t mkdirs, moves, failed, skipped;
    apr_uint64_t whole_bytes;       /* what whole-file transfers of the
                                       files moved would have cost */
    apr_uint64_t sent, received;    /* bytes on the wire, headers incl. */
} sync_stats_t;

typedef struct sync_http_t sync_http_t;
typedef struct sync_state_t sync_state_t;
typedef struct sync_ui_t sync_ui_t;

/** One run. */
typedef struct sync_ctx_t {
    apr_pool_t *pool;
    sync_opts_t *opts;
    sync_http_t *http;
    sync_state_t *state;
    sync_ui_t *ui;
    sync_server_t server;
    apr_hash_t *items;              /* path -> sync_item_t */
    apr_array_header_t *order;      /* sync_item_t *, sorted by path */
    int first_run;                  /* no state yet: pair the two sides */
    int recovery;                   /* the server forgot our token:
                                       nothing is deleted on either side */
    int full_listing;               /* remote side is a complete listing
                                       (walk or first sync) */
    const char *new_token;          /* to store when the run succeeded */
    int case_fold, norm_fold;       /* the local file system folds names */
    int renamed_conflicts;          /* a conflict renamed a local item */
    int bad_answer;                 /* the server sent what cannot be right */
    sync_stats_t stats;
} sync_ctx_t;

/** The item of @a path, created (with nothing on either side) if new. */
sync_item_t *sync_item_get(sync_ctx_t *ctx, const char *path);

/** The item of @a path or NULL. */
sync_item_t *sync_item_find(sync_ctx_t *ctx, const char *path);

/** Fill ctx->order with every item, sorted so that a folder comes right
 *  before its members (segment by segment byte order). */
void sync_items_sort(sync_ctx_t *ctx);

/** Compare two relative paths segment by segment ("a/b" < "a b" < "a!"
 *  in byte order would put "a b" first; this puts every member of "a"
 *  right after "a"). */
int sync_path_cmp(const char *a, const char *b);

/** The folder part of @a path ("" for a top-level name). */
const char *sync_path_parent(const char *path, apr_pool_t *pool);

/** Whether @a path lies inside folder @a dir (not equal to it). */
int sync_path_under(const char *path, const char *dir);

/** Weak comparison of two ETags (RFC 9110 8.8.3.2): equal once a
 *  leading W/ is ignored on both.  NULLs are never equal. */
int sync_etag_weak_eq(const char *a, const char *b);

/** Whether @a etag is weak (starts with W/). */
int sync_etag_is_weak(const char *etag);

#endif /* ISS_SYNC_H */
