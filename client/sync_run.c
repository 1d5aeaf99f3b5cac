/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "sync_run.h"
#include "sync_dav.h"
#include "sync_http.h"
#include "sync_local.h"
#include "sync_plan.h"
#include "sync_state.h"
#include "sync_ui.h"
#include "sync_xfer.h"

#include <apr_strings.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct run_t {
    sync_ctx_t *ctx;
    int gone;                       /* the server stopped answering */
    int keep_token;                 /* something must be listed again */
    apr_array_header_t *renamed;    /* local folders a conflict renamed */
    int mute;                       /* inside a compound action: its parts
                                       print no lines of their own */
} run_t;

static void action(run_t *run, const char *verb, const char *path,
                   const char *extra)
{
    if (!run->mute) {
        sync_ui_action(run->ctx->ui, verb, path, extra);
    }
}

/* ---- records ------------------------------------------------------------------------ */

static void record_file(sync_ctx_t *ctx, const char *rel,
                        const sync_result_t *res)
{
    sync_base_t b;

    memset(&b, 0, sizeof(b));
    b.kind = SYNC_FILE;
    b.etag = res->etag;
    b.has_sha = res->has_sha;
    memcpy(b.sha, res->sha, SHA_LEN);
    b.size = res->local.size;
    b.mtime_ns = res->local.mtime_ns;
    b.ctime_ns = res->local.ctime_ns;
    b.inode = res->local.inode;
    sync_state_put(ctx->state, rel, &b, res->manifest);
}

static void record_dir(sync_ctx_t *ctx, const char *rel, apr_pool_t *pool)
{
    sync_base_t b;
    sync_local_t l;

    memset(&b, 0, sizeof(b));
    b.kind = SYNC_DIR;
    if (sync_local_stat(ctx, rel, &l, pool) == APR_SUCCESS) {
        b.inode = l.inode;
    }
    sync_state_put(ctx->state, rel, &b, NULL);
}

/* ---- outcomes ----------------------------------------------------------------------- */

static void failed(run_t *run, sync_item_t *it, sync_xfer_e x,
                   const char *why)
{
    sync_ctx_t *ctx = run->ctx;

    if (x == SYNC_XFER_GONE) {
        run->gone = 1;
    }
    if (x == SYNC_XFER_BADANSWER) {
        ctx->bad_answer = 1;
    }
    if (x == SYNC_XFER_BADNAME) {
        ctx->stats.skipped++;
        sync_ui_warn(ctx->ui, "skipped %s: this folder's file system cannot "
                     "hold its name (%s)", it->path, why ? why : "");
    }
    else if (x == SYNC_XFER_BADANSWER) {
        ctx->stats.failed++;
        sync_ui_error(ctx->ui, "%s: %s; the server's answer cannot be right "
                      "(nothing was changed here)", it->path,
                      why ? why : "bad answer");
    }
    else {
        ctx->stats.failed++;
        sync_ui_warn(ctx->ui, "%s: %s", it->path, why ? why : "failed");
    }
    run->keep_token = 1;
}

static int cancelled(run_t *run, const sync_item_t *it)
{
    int i;

    for (i = 0; run->renamed && i < run->renamed->nelts; i++) {
        if (sync_path_under(it->path, APR_ARRAY_IDX(run->renamed, i,
                                                    const char *))) {
            return 1;
        }
    }
    return 0;
}

/* ---- actions ------------------------------------------------------------------------ */

static void do_download(run_t *run, sync_item_t *it, apr_pool_t *pool)
{
    sync_ctx_t *ctx = run->ctx;
    sync_fetched_t f;
    const char *why = NULL;
    sync_xfer_e x;

    x = sync_xfer_fetch(ctx, it->path, &it->remote, &f, &why, pool);
    if (x == SYNC_XFER_OK) {
        x = sync_xfer_place(ctx, &f, it->path, &it->local, &why, pool);
    }
    if (x != SYNC_XFER_OK) {
        failed(run, it, x, why);
        return;
    }
    record_file(ctx, it->path, &f.res);
    ctx->stats.down++;
    ctx->stats.whole_bytes += f.res.size;
    action(run, "download", it->path, NULL);
    sync_ui_item_done(ctx->ui, f.res.size);
}

/* Upload a new file @a rel (a conflict copy) as it is on disk now. */
static int upload_new(run_t *run, const char *rel, const sync_local_t *was,
                      apr_pool_t *pool)
{
    sync_ctx_t *ctx = run->ctx;
    sync_local_t l;
    sync_result_t res;
    const char *why = NULL;
    sync_xfer_e x;

    if (sync_local_stat(ctx, rel, &l, pool) != APR_SUCCESS
        || l.kind != SYNC_FILE) {
        return 0;
    }
    if (was && was->has_sha && l.inode == was->inode && l.size == was->size
        && l.mtime_ns == was->mtime_ns) {
        /* The same file, renamed: no need to read it again. */
        l.has_sha = 1;
        memcpy(l.sha, was->sha, SHA_LEN);
        l.manifest = was->manifest;
    }
    x = sync_xfer_upload(ctx, rel, &l, NULL, NULL, &res, &why, pool);
    if (x != SYNC_XFER_OK) {
        if (x == SYNC_XFER_GONE) {
            run->gone = 1;
        }
        if (x == SYNC_XFER_BADANSWER) {
            ctx->bad_answer = 1;
        }
        sync_ui_warn(ctx->ui, "%s: not uploaded yet (%s); the next run will",
                     rel, why ? why : "conflict");
        run->keep_token = 1;
        ctx->stats.failed++;
        return 0;
    }
    record_file(ctx, rel, &res);
    ctx->stats.up++;
    ctx->stats.whole_bytes += res.size;
    return 1;
}

static void do_conflict(run_t *run, sync_item_t *it, apr_pool_t *pool)
{
    sync_ctx_t *ctx = run->ctx;
    const char *why = NULL, *cname;
    sync_fetched_t f;
    sync_xfer_e x;
    sync_local_t none, now;
    apr_status_t rv;

    memset(&none, 0, sizeof(none));
    memset(&f, 0, sizeof(f));
    if (it->local.kind == SYNC_FILE && it->remote.kind == SYNC_FILE) {
        /* The server's version first: it may be the same content. */
        x = sync_xfer_fetch(ctx, it->path, &it->remote, &f, &why, pool);
        if (x != SYNC_XFER_OK) {
            failed(run, it, x, why);
            return;
        }
        if (it->local.has_sha
            && memcmp(f.res.sha, it->local.sha, SHA_LEN) == 0) {
            sync_result_t res = f.res;

            unlink(f.tmp_path);
            res.local = it->local;
            if (res.manifest == NULL) {
                res.manifest = it->local.manifest;
            }
            record_file(ctx, it->path, &res);
            sync_ui_info(ctx->ui, "same content on both sides: %s", it->path);
            return;
        }
    }
    /* Keep both: the local version moves aside. */
    cname = sync_local_conflict_name(ctx, it->path, pool);
    if ((rv = sync_local_stat(ctx, it->path, &now, pool)) != APR_SUCCESS
        || (rv = sync_local_rename(ctx, it->path, cname, pool))
           != APR_SUCCESS) {
        char ebuf[120];

        if (f.tmp_path) {
            unlink(f.tmp_path);
        }
        failed(run, it, SYNC_XFER_FAILED,
               apr_psprintf(pool, "cannot move the local version aside: %s",
                            apr_strerror(rv, ebuf, sizeof(ebuf))));
        return;
    }
    ctx->stats.conflicts++;
    action(run, "conflict", it->path,
                   apr_psprintf(pool, "(local version kept as \"%s\")",
                                cname));
    if (now.kind == SYNC_DIR) {
        /* Its members go with it; the next pass uploads them. */
        if (run->renamed == NULL) {
            run->renamed = apr_array_make(ctx->pool, 4, sizeof(const char *));
        }
        APR_ARRAY_PUSH(run->renamed, const char *) = it->path;
        ctx->renamed_conflicts = 1;
    }
    /* The server's version comes to the name. */
    if (it->remote.kind == SYNC_FILE) {
        if (f.tmp_path == NULL) {
            x = sync_xfer_fetch(ctx, it->path, &it->remote, &f, &why, pool);
            if (x != SYNC_XFER_OK) {
                failed(run, it, x, why);
                return;
            }
        }
        x = sync_xfer_place(ctx, &f, it->path, &none, &why, pool);
        if (x != SYNC_XFER_OK) {
            failed(run, it, x, why);
            return;
        }
        record_file(ctx, it->path, &f.res);
        ctx->stats.down++;
        ctx->stats.whole_bytes += f.res.size;
    }
    else if (it->remote.kind == SYNC_DIR) {
        if (mkdir(sync_local_path(ctx, it->path, pool), 0777) != 0
            && errno != EEXIST) {
            failed(run, it, SYNC_XFER_FAILED, strerror(errno));
            return;
        }
        record_dir(ctx, it->path, pool);
    }
    else {
        sync_state_del(ctx->state, it->path);
    }
    /* And the local version goes up under its new name. */
    if (now.kind == SYNC_FILE) {
        upload_new(run, cname, &it->local, pool);
    }
}

static void do_upload(run_t *run, sync_item_t *it, apr_pool_t *pool)
{
    sync_ctx_t *ctx = run->ctx;
    const char *why = NULL, *if_match = NULL;
    const unsigned char *base_sha = NULL;
    sync_result_t res;
    sync_xfer_e x;
    int changed = 0;

    if (it->remote.kind == SYNC_FILE) {
        if_match = sync_xfer_strong_etag(ctx, it->path, it->remote.etag,
                                         &changed, pool);
        if (changed) {
            goto conflict;
        }
        if (if_match == NULL) {
            failed(run, it, SYNC_XFER_FAILED, "the server's ETag of it stays "
                   "weak (changed within the last second?); retried next run");
            return;
        }
        if (it->has_base && it->base.has_sha
            && sync_etag_weak_eq(it->remote.etag, it->base.etag)) {
            base_sha = it->base.sha;
        }
    }
    x = sync_xfer_upload(ctx, it->path, &it->local, if_match, base_sha, &res,
                         &why, pool);
    if (x == SYNC_XFER_CONFLICT) {
        goto conflict;
    }
    if (x != SYNC_XFER_OK) {
        failed(run, it, x, why);
        return;
    }
    record_file(ctx, it->path, &res);
    ctx->stats.up++;
    ctx->stats.whole_bytes += res.size;
    action(run, "upload", it->path, NULL);
    sync_ui_item_done(ctx->ui, res.size);
    return;

conflict:
    /* The server's version moved since we listed it: learn it, and keep
     * both. */
    if (sync_dav_stat(ctx, it->path, &it->remote, pool) != APR_SUCCESS) {
        failed(run, it, SYNC_XFER_FAILED, "the server's version changed and "
               "cannot be read");
        return;
    }
    if (it->remote.kind == SYNC_NONE) {
        failed(run, it, SYNC_XFER_FAILED, "deleted on the server meanwhile "
               "(synced next time)");
        return;
    }
    do_conflict(run, it, pool);
}

static void do_delete_local(run_t *run, sync_item_t *it, apr_pool_t *pool)
{
    sync_ctx_t *ctx = run->ctx;
    sync_local_t now;

    if (sync_local_stat(ctx, it->path, &now, pool) != APR_SUCCESS
        || !sync_local_same(&now, &it->local)) {
        failed(run, it, SYNC_XFER_CHANGED, "changed during the sync, not "
               "deleted (synced next time)");
        return;
    }
    if (unlink(sync_local_path(ctx, it->path, pool)) != 0
        && errno != ENOENT) {
        failed(run, it, SYNC_XFER_FAILED, apr_psprintf(pool, "cannot delete "
               "it: %s", strerror(errno)));
        return;
    }
    sync_state_del(ctx->state, it->path);
    ctx->stats.deleted_local++;
    action(run, "delete-local", it->path, NULL);
}

static void do_delete_remote(run_t *run, sync_item_t *it, apr_pool_t *pool)
{
    sync_ctx_t *ctx = run->ctx;
    sync_resp_t resp;
    const char *etag;
    int changed = 0;

    etag = sync_xfer_strong_etag(ctx, it->path, it->base.etag, &changed,
                                 pool);
    if (changed || (etag == NULL && !changed)) {
        if (changed) {
            goto edited;
        }
        failed(run, it, SYNC_XFER_FAILED, "the server's ETag of it stays "
               "weak; retried next run");
        return;
    }
    if (sync_dav_simple(ctx, "DELETE", it->path, 0, &resp, pool,
                        "If-Match", etag, NULL) != APR_SUCCESS
        && resp.status == 0) {
        failed(run, it, SYNC_XFER_GONE, resp.error);
        return;
    }
    if (resp.status == 412) {
        goto edited;
    }
    if (resp.status != 204 && resp.status != 200 && resp.status != 404) {
        failed(run, it, SYNC_XFER_FAILED, apr_psprintf(pool, "DELETE: %s",
               sync_resp_describe(&resp, pool)));
        return;
    }
    sync_state_del(ctx->state, it->path);
    ctx->stats.deleted_remote++;
    action(run, "delete-remote", it->path, NULL);
    return;

edited:
    /* Changed on the server since: an edit beats a delete. */
    if (sync_dav_stat(ctx, it->path, &it->remote, pool) == APR_SUCCESS
        && it->remote.kind == SYNC_FILE) {
        memset(&it->local, 0, sizeof(it->local));
        do_download(run, it, pool);
        return;
    }
    failed(run, it, SYNC_XFER_FAILED, "changed on the server meanwhile "
           "(synced next time)");
}

static void do_mkdir_local(run_t *run, sync_item_t *it, apr_pool_t *pool)
{
    sync_ctx_t *ctx = run->ctx;
    const char *why = NULL, *abs = sync_local_path(ctx, it->path, pool);
    struct stat sb;

    if (sync_local_prepare_parent(ctx, it->path, &why, pool) != APR_SUCCESS) {
        failed(run, it, SYNC_XFER_FAILED, why);
        return;
    }
    if (mkdir(abs, 0777) != 0) {
        int e = errno;

        if (e == EEXIST && lstat(abs, &sb) == 0 && S_ISDIR(sb.st_mode)
            && it->local.kind == SYNC_DIR) {
            /* already there */
        }
        else if (e == EEXIST) {
            failed(run, it, SYNC_XFER_BADNAME, "the name clashes with "
                   "another entry of the folder");
            return;
        }
        else {
            failed(run, it, sync_local_bad_name(APR_FROM_OS_ERROR(e))
                            ? SYNC_XFER_BADNAME : SYNC_XFER_FAILED,
                   strerror(e));
            return;
        }
    }
    record_dir(ctx, it->path, pool);
    ctx->stats.mkdirs++;
    action(run, "mkdir-local", it->path, NULL);
}

static void do_mkdir_remote(run_t *run, sync_item_t *it, apr_pool_t *pool)
{
    sync_ctx_t *ctx = run->ctx;
    sync_resp_t resp;

    if (sync_dav_simple(ctx, "MKCOL", it->path, 1, &resp, pool, NULL)
        != APR_SUCCESS && resp.status == 0) {
        failed(run, it, SYNC_XFER_GONE, resp.error);
        return;
    }
    if (resp.status == 405) {
        sync_remote_t r;

        if (sync_dav_stat(ctx, it->path, &r, pool) != APR_SUCCESS
            || r.kind != SYNC_DIR) {
            failed(run, it, SYNC_XFER_FAILED, "MKCOL: 405, and it is not a "
                   "folder on the server");
            return;
        }
    }
    else if (resp.status != 201) {
        failed(run, it, SYNC_XFER_FAILED, apr_psprintf(pool, "MKCOL: %s",
               sync_resp_describe(&resp, pool)));
        return;
    }
    record_dir(ctx, it->path, pool);
    ctx->stats.mkdirs++;
    action(run, "mkdir-remote", it->path, NULL);
}

static void do_rmdir_local(run_t *run, sync_item_t *it, apr_pool_t *pool)
{
    sync_ctx_t *ctx = run->ctx;
    sync_local_t now;

    if (sync_local_stat(ctx, it->path, &now, pool) == APR_SUCCESS
        && now.kind == SYNC_DIR
        && rmdir(sync_local_path(ctx, it->path, pool)) != 0) {
        sync_ui_info(ctx->ui, "%s: gone on the server but not empty here; "
                     "kept", it->path);
        return;
    }
    sync_state_del(ctx->state, it->path);
    action(run, "rmdir-local", it->path, NULL);
}

/* 1 when the server's folder is gone (deleted now, or already). */
static int rmdir_remote(run_t *run, sync_item_t *it, apr_pool_t *pool)
{
    sync_ctx_t *ctx = run->ctx;
    sync_resp_t resp;
    const char *etag = NULL, *token = NULL;
    apr_status_t rv;
    int members = 0, tries;

    for (tries = 0; tries < 4; tries++) {
        rv = sync_dav_dir_info(ctx, it->path, &members, &etag, &token, pool);
        if (rv == APR_NOTFOUND) {
            sync_state_del(ctx->state, it->path);
            return 1;
        }
        if (rv != APR_SUCCESS) {
            failed(run, it, SYNC_XFER_FAILED, "cannot list the folder on the "
                   "server");
            return 0;
        }
        if (members > 0) {
            /* Something we have not seen is there: it comes down next
             * run; the folder stays. */
            sync_ui_info(ctx->ui, "%s: deleted here, but the server's "
                         "folder holds %d new member(s); kept", it->path,
                         members);
            run->keep_token = 1;
            return 0;
        }
        if (token || (etag && !sync_etag_is_weak(etag))) {
            break;
        }
        apr_sleep(apr_time_from_msec(1100));
    }
    /* Only if it is still as empty as we saw it. */
    if (token) {
        rv = sync_dav_simple(ctx, "DELETE", it->path, 1, &resp, pool, "If",
                             apr_psprintf(pool, "(<%s>)", token), NULL);
    }
    else if (etag && !sync_etag_is_weak(etag)) {
        rv = sync_dav_simple(ctx, "DELETE", it->path, 1, &resp, pool,
                             "If-Match", etag, NULL);
    }
    else {
        failed(run, it, SYNC_XFER_FAILED, "no condition to delete the "
               "folder safely on the server; retried next run");
        return 0;
    }
    if (rv != APR_SUCCESS && resp.status == 0) {
        failed(run, it, SYNC_XFER_GONE, resp.error);
        return 0;
    }
    if (resp.status == 412) {
        sync_ui_info(ctx->ui, "%s: changed on the server meanwhile; kept",
                     it->path);
        run->keep_token = 1;
        return 0;
    }
    if (resp.status != 204 && resp.status != 200 && resp.status != 404) {
        failed(run, it, SYNC_XFER_FAILED, apr_psprintf(pool, "DELETE: %s",
               sync_resp_describe(&resp, pool)));
        return 0;
    }
    sync_state_del(ctx->state, it->path);
    return 1;
}

static void do_rmdir_remote(run_t *run, sync_item_t *it, apr_pool_t *pool)
{
    if (rmdir_remote(run, it, pool)) {
        action(run, "rmdir-remote", it->path, NULL);
    }
}

static void do_move_remote(run_t *run, sync_item_t *it, apr_pool_t *pool)
{
    sync_ctx_t *ctx = run->ctx;
    sync_item_t *from = it->move_from;
    sync_resp_t resp;
    sync_result_t res;
    const char *etag;
    int changed = 0;

    etag = sync_xfer_strong_etag(ctx, from->path, from->base.etag, &changed,
                                 pool);
    if (etag) {
        if (sync_dav_simple(ctx, "MOVE", from->path, 0, &resp, pool,
                            "Destination", sync_dav_url(ctx, it->path, 0,
                                                        pool),
                            "Overwrite", "F", "If-Match", etag, NULL)
            != APR_SUCCESS && resp.status == 0) {
            failed(run, it, SYNC_XFER_GONE, resp.error);
            return;
        }
        if (resp.status == 201 || resp.status == 204) {
            sync_remote_t r;

            memset(&res, 0, sizeof(res));
            res.etag = from->base.etag;
            if (sync_dav_stat(ctx, it->path, &r, pool) == APR_SUCCESS
                && r.etag) {
                res.etag = apr_pstrdup(ctx->pool, r.etag);
            }
            res.has_sha = 1;
            memcpy(res.sha, it->local.sha, SHA_LEN);
            res.local = it->local;
            res.manifest = it->local.manifest;
            res.size = (apr_uint64_t)it->local.size;
            sync_state_del(ctx->state, from->path);
            record_file(ctx, it->path, &res);
            ctx->stats.moves++;
            action(run, "move-remote", from->path,
                           apr_psprintf(pool, "-> %s", it->path));
            return;
        }
        sync_ui_info(ctx->ui, "MOVE %s: %s; uploading instead", from->path,
                     sync_resp_describe(&resp, pool));
    }
    /* No MOVE: upload the new name, delete the old one. */
    do_upload(run, it, pool);
    if (!changed) {
        do_delete_remote(run, from, pool);
    }
}

/* A file became a folder here, or a folder a file; the server still
 * holds what we last synced there: replace it. */
static void do_replace_remote(run_t *run, sync_item_t *it, apr_pool_t *pool)
{
    sync_ctx_t *ctx = run->ctx;
    apr_uint64_t failed_before = ctx->stats.failed;
    sync_resp_t resp;
    const char *etag;
    int changed = 0;

    if (it->local.kind == SYNC_DIR) {
        etag = sync_xfer_strong_etag(ctx, it->path, it->base.etag, &changed,
                                     pool);
        if (etag == NULL) {
            failed(run, it, SYNC_XFER_FAILED, changed
                   ? "changed on the server meanwhile (synced next time)"
                   : "the server's ETag of it stays weak; retried next run");
            return;
        }
        if (sync_dav_simple(ctx, "DELETE", it->path, 0, &resp, pool,
                            "If-Match", etag, NULL) != APR_SUCCESS
            && resp.status == 0) {
            failed(run, it, SYNC_XFER_GONE, resp.error);
            return;
        }
        if (resp.status != 204 && resp.status != 200 && resp.status != 404) {
            failed(run, it, SYNC_XFER_FAILED, resp.status == 412
                   ? "changed on the server meanwhile (synced next time)"
                   : apr_psprintf(pool, "DELETE: %s",
                                  sync_resp_describe(&resp, pool)));
            return;
        }
        sync_state_del(ctx->state, it->path);
        ctx->stats.deleted_remote++;
        run->mute++;
        do_mkdir_remote(run, it, pool);
        run->mute--;
        if (ctx->stats.failed == failed_before) {
            action(run, "replace-remote", it->path, "(a folder now)");
        }
        return;
    }
    /* A folder on the server, whose members are deleted by now. */
    if (rmdir_remote(run, it, pool)) {
        ctx->stats.deleted_remote++;
        it->remote.kind = SYNC_NONE;
        run->mute++;
        do_upload(run, it, pool);
        run->mute--;
        if (ctx->stats.failed == failed_before) {
            action(run, "replace-remote", it->path, "(a file now)");
        }
    }
}

/* The same on the server's side: a kind changed there, replaced here. */
static void do_replace_local(run_t *run, sync_item_t *it, apr_pool_t *pool)
{
    sync_ctx_t *ctx = run->ctx;
    apr_uint64_t failed_before = ctx->stats.failed;
    const char *abs = sync_local_path(ctx, it->path, pool);
    sync_local_t now;

    if (sync_local_stat(ctx, it->path, &now, pool) != APR_SUCCESS
        || now.kind != it->local.kind
        || (now.kind == SYNC_FILE && !sync_local_same(&now, &it->local))) {
        failed(run, it, SYNC_XFER_CHANGED, "changed during the sync, not "
               "replaced (synced next time)");
        return;
    }
    if (now.kind == SYNC_FILE ? unlink(abs) != 0 : rmdir(abs) != 0) {
        failed(run, it, SYNC_XFER_FAILED, apr_psprintf(pool, "cannot "
               "replace it: %s", strerror(errno)));
        return;
    }
    sync_state_del(ctx->state, it->path);
    ctx->stats.deleted_local++;
    memset(&it->local, 0, sizeof(it->local));
    run->mute++;
    if (it->remote.kind == SYNC_DIR) {
        do_mkdir_local(run, it, pool);
    }
    else {
        do_download(run, it, pool);
    }
    run->mute--;
    if (ctx->stats.failed == failed_before) {
        action(run, "replace-local", it->path, it->remote.kind == SYNC_DIR
               ? "(a folder now)" : "(a file now)");
    }
}

static void do_record(run_t *run, sync_item_t *it, apr_pool_t *pool)
{
    sync_ctx_t *ctx = run->ctx;
    sync_result_t res;

    if (it->local.kind == SYNC_DIR) {
        record_dir(ctx, it->path, pool);
        return;
    }
    memset(&res, 0, sizeof(res));
    res.etag = it->remote.etag;
    res.has_sha = it->local.has_sha;
    memcpy(res.sha, it->local.sha, SHA_LEN);
    res.local = it->local;
    res.manifest = it->local.manifest;
    if (res.manifest == NULL && ctx->server.chunking && it->local.unchanged) {
        res.manifest = sync_state_manifest(ctx->state, it->path,
                                           &ctx->server.params, pool);
        if (res.manifest) {
            res.manifest->file_size = (apr_uint64_t)it->local.size;
            if (res.manifest->file_size == 0 && res.manifest->count) {
                res.manifest = NULL;
            }
        }
    }
    record_file(ctx, it->path, &res);
}

static void carry_out(run_t *run, sync_item_t *it, apr_pool_t *pool)
{
    sync_ctx_t *ctx = run->ctx;

    switch (it->action) {
    case ACT_RECORD: do_record(run, it, pool); break;
    case ACT_FORGET: sync_state_del(ctx->state, it->path); break;
    case ACT_UPLOAD: do_upload(run, it, pool); break;
    case ACT_DOWNLOAD: do_download(run, it, pool); break;
    case ACT_CONFLICT: do_conflict(run, it, pool); break;
    case ACT_MOVE_REMOTE: do_move_remote(run, it, pool); break;
    case ACT_DELETE_LOCAL: do_delete_local(run, it, pool); break;
    case ACT_DELETE_REMOTE: do_delete_remote(run, it, pool); break;
    case ACT_MKDIR_LOCAL: do_mkdir_local(run, it, pool); break;
    case ACT_MKDIR_REMOTE: do_mkdir_remote(run, it, pool); break;
    case ACT_RMDIR_LOCAL: do_rmdir_local(run, it, pool); break;
    case ACT_RMDIR_REMOTE: do_rmdir_remote(run, it, pool); break;
    case ACT_REPLACE_REMOTE: do_replace_remote(run, it, pool); break;
    case ACT_REPLACE_LOCAL: do_replace_local(run, it, pool); break;
    default: break;
    }
}

static int phase_of(const sync_item_t *it)
{
    switch (it->action) {
    case ACT_REPLACE_REMOTE:
        /* A folder goes before its members are uploaded; a file after
         * the folder's members are deleted. */
        return it->local.kind == SYNC_DIR ? 1 : 3;
    case ACT_REPLACE_LOCAL:
        return it->remote.kind == SYNC_DIR ? 1 : 3;
    case ACT_DELETE_LOCAL: case ACT_DELETE_REMOTE:
        return 2;
    case ACT_RMDIR_LOCAL: case ACT_RMDIR_REMOTE:
        return 3;
    case ACT_NONE: case ACT_SKIP:
        return 0;
    default:
        return 1;
    }
}

/* A test hook (docs/client.md): ISS_SYNC_TEST_PAUSE=FILE makes the run
 * create FILE once it has decided, and wait (up to a minute) until FILE
 * is removed, so a test can change the folder between the scan and the
 * transfers. */
static void test_pause(void)
{
    const char *f = getenv("ISS_SYNC_TEST_PAUSE");
    FILE *fp;
    int i;

    if (f == NULL || *f == '\0' || (fp = fopen(f, "w")) == NULL) {
        return;
    }
    fclose(fp);
    for (i = 0; i < 600 && access(f, F_OK) == 0; i++) {
        apr_sleep(apr_time_from_msec(100));
    }
}

static void execute(run_t *run)
{
    sync_ctx_t *ctx = run->ctx;
    apr_uint64_t files = 0, bytes = 0;
    apr_pool_t *iter;
    int phase, i;

    for (i = 0; i < ctx->order->nelts; i++) {
        sync_item_t *it = APR_ARRAY_IDX(ctx->order, i, sync_item_t *);

        if (it->action == ACT_UPLOAD || it->action == ACT_CONFLICT) {
            files++;
            bytes += (apr_uint64_t)it->local.size;
        }
        else if (it->action == ACT_DOWNLOAD) {
            files++;
            bytes += it->remote.size > 0 ? (apr_uint64_t)it->remote.size : 0;
        }
    }
    sync_ui_plan(ctx->ui, files, bytes);
    apr_pool_create(&iter, ctx->pool);
    sync_state_begin(ctx->state);
    for (phase = 1; phase <= 3 && !run->gone; phase++) {
        for (i = 0; i < ctx->order->nelts && !run->gone; i++) {
            /* Folders are deleted deepest first. */
            int k = phase == 3 ? ctx->order->nelts - 1 - i : i;
            sync_item_t *it = APR_ARRAY_IDX(ctx->order, k, sync_item_t *);

            if (phase_of(it) != phase || cancelled(run, it)) {
                continue;
            }
            carry_out(run, it, iter);
            apr_pool_clear(iter);
            sync_state_tick(ctx->state);
        }
    }
    apr_pool_destroy(iter);
}

/* ---- a pass ------------------------------------------------------------------------- */

static void print_plan(sync_ctx_t *ctx)
{
    int i;

    for (i = 0; i < ctx->order->nelts; i++) {
        sync_item_t *it = APR_ARRAY_IDX(ctx->order, i, sync_item_t *);
        const char *verb = sync_plan_verb(it->action);

        if (verb == NULL || it->action == ACT_SKIP) {
            continue;
        }
        if (it->action == ACT_MOVE_REMOTE) {
            sync_ui_action(ctx->ui, verb, it->move_from->path,
                           apr_psprintf(ctx->pool, "-> %s", it->path));
        }
        else {
            sync_ui_action(ctx->ui, verb, it->path, NULL);
        }
        switch (it->action) {
        case ACT_UPLOAD: ctx->stats.up++; break;
        case ACT_DOWNLOAD: ctx->stats.down++; break;
        case ACT_DELETE_LOCAL: ctx->stats.deleted_local++; break;
        case ACT_DELETE_REMOTE: ctx->stats.deleted_remote++; break;
        case ACT_CONFLICT: ctx->stats.conflicts++; break;
        default: break;
        }
    }
}

static void report_skips(run_t *run)
{
    sync_ctx_t *ctx = run->ctx;
    int i;

    for (i = 0; i < ctx->order->nelts; i++) {
        sync_item_t *it = APR_ARRAY_IDX(ctx->order, i, sync_item_t *);

        if (it->action != ACT_SKIP) {
            continue;
        }
        ctx->stats.skipped++;
        sync_ui_warn(ctx->ui, "skipped %s: %s", it->path, it->skip_reason);
        if (it->remote.kind != SYNC_NONE) {
            run->keep_token = 1;        /* list it again next time */
        }
    }
}

static int one_pass(sync_ctx_t *ctx, int pass)
{
    run_t run;
    const char *token, *msg;
    apr_uint64_t entries = 0, base_files;
    struct stat sb;
    int refused = 0, exists = 0, code = SYNC_EXIT_OK;

    memset(&run, 0, sizeof(run));
    run.ctx = ctx;
    ctx->items = apr_hash_make(ctx->pool);
    ctx->recovery = 0;
    ctx->renamed_conflicts = 0;
    ctx->new_token = NULL;
    if (sync_state_load(ctx->state, ctx) != APR_SUCCESS) {
        sync_ui_error(ctx->ui, "cannot read the state");
        return SYNC_EXIT_USAGE;
    }
    base_files = sync_state_file_count(ctx->state);
    token = sync_state_meta(ctx->state, "token", ctx->pool);
    ctx->first_run = base_files == 0 && apr_hash_count(ctx->items) == 0
                     && token == NULL;

    /* The folder: missing while the state says it held files is an
     * unmounted disk, not a deletion. */
    if (lstat(ctx->opts->local_root, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        int missing = errno == ENOENT || errno == ENOTDIR;

        if (base_files > 0) {
            sync_ui_error(ctx->ui, "the folder %s is missing, but it held "
                          "%" APR_UINT64_T_FMT " files at the last sync: is "
                          "its disk mounted?  Nothing was done",
                          ctx->opts->local_root, base_files);
            return SYNC_EXIT_GUARD;
        }
        if (lstat(ctx->opts->local_root, &sb) == 0 || !missing) {
            sync_ui_error(ctx->ui, "%s is not a folder",
                          ctx->opts->local_root);
            return SYNC_EXIT_USAGE;
        }
        if (!ctx->opts->dry_run
            && mkdir(ctx->opts->local_root, 0777) != 0) {
            sync_ui_error(ctx->ui, "cannot create the folder %s: %s",
                          ctx->opts->local_root, strerror(errno));
            return SYNC_EXIT_USAGE;
        }
    }

    if (pass == 0 && lstat(ctx->opts->local_root, &sb) == 0) {
        apr_status_t rv = sync_local_lock(ctx);

        if (APR_STATUS_IS_EAGAIN(rv) || rv == APR_FROM_OS_ERROR(EWOULDBLOCK)) {
            sync_ui_error(ctx->ui, "another iss-sync is running on %s",
                          ctx->opts->local_root);
            return SYNC_EXIT_GUARD;
        }
        if (rv != APR_SUCCESS) {
            char ebuf[120];

            sync_ui_error(ctx->ui, "cannot lock the folder %s: %s",
                          ctx->opts->local_root,
                          apr_strerror(rv, ebuf, sizeof(ebuf)));
            return SYNC_EXIT_USAGE;
        }
    }

    if (pass == 0) {
        int ec = SYNC_EXIT_SERVER;

        if (sync_dav_discover(ctx, &exists, &ec) != APR_SUCCESS) {
            return ec;
        }
        if (!exists) {
            if (!ctx->first_run) {
                sync_ui_error(ctx->ui, "the server collection %s is gone, but "
                              "it held %" APR_UINT64_T_FMT " files at the last "
                              "sync.  Nothing was done", ctx->opts->url,
                              base_files);
                return SYNC_EXIT_GUARD;
            }
            if (ctx->opts->dry_run) {
                sync_ui_action(ctx->ui, "mkdir-remote", "",
                               "(the collection)");
            }
            else if (sync_dav_create_root(ctx) != APR_SUCCESS) {
                return SYNC_EXIT_SERVER;
            }
        }
        if (ctx->server.chunking) {
            const char *pv = apr_psprintf(ctx->pool, "%u,%u,%u",
                                          ctx->server.params.min_size,
                                          ctx->server.params.avg_size,
                                          ctx->server.params.max_size);
            const char *old = sync_state_meta(ctx->state, "params", ctx->pool);

            if (old && strcmp(old, pv) != 0) {
                /* Chunks of other sizes: local manifests are of no use. */
                sync_ui_info(ctx->ui, "the server's chunk sizes changed");
            }
            sync_state_set_meta(ctx->state, "params", pv);
        }
    }

    /* What changed on the server. */
    if (ctx->opts->dry_run && !exists && pass == 0 && ctx->first_run) {
        ctx->full_listing = 1;
    }
    else if (sync_dav_list(ctx, ctx->first_run ? "" : token, &refused)
             != APR_SUCCESS) {
        return SYNC_EXIT_SERVER;
    }
    else if (refused) {
        apr_hash_index_t *hi;

        sync_ui_warn(ctx->ui, "the server no longer knows our sync token "
                     "(its log was trimmed or its state restored): "
                     "comparing everything; nothing is deleted on either "
                     "side in this run");
        ctx->recovery = 1;
        for (hi = apr_hash_first(ctx->pool, ctx->items); hi;
             hi = apr_hash_next(hi)) {
            sync_item_t *it = apr_hash_this_val(hi);

            memset(&it->remote, 0, sizeof(it->remote));
        }
        if (sync_dav_list(ctx, "", &refused) != APR_SUCCESS || refused) {
            return SYNC_EXIT_SERVER;
        }
    }

    /* What changed here. */
    if (lstat(ctx->opts->local_root, &sb) != 0) {
        entries = 0;                    /* a dry run's folder to be */
    }
    else {
        if (pass == 0) {
            sync_local_probe(ctx);
        }
        if (sync_local_scan(ctx, &entries) != APR_SUCCESS) {
            return SYNC_EXIT_FAILED;
        }
    }

    sync_plan_resolve(ctx);
    sync_items_sort(ctx);
    sync_plan_decide(ctx);
    if ((msg = sync_plan_guard(ctx, entries, ctx->pool)) != NULL) {
        sync_ui_error(ctx->ui, "%s", msg);
        return SYNC_EXIT_GUARD;
    }
    report_skips(&run);
    if (ctx->opts->dry_run) {
        print_plan(ctx);
        return SYNC_EXIT_OK;
    }
    test_pause();
    execute(&run);
    if (!run.gone && !run.keep_token && ctx->new_token) {
        sync_state_set_meta(ctx->state, "token", ctx->new_token);
    }
    if (sync_state_commit(ctx->state) != APR_SUCCESS) {
        sync_ui_error(ctx->ui, "cannot write the state");
        code = SYNC_EXIT_FAILED;
    }
    if (run.gone) {
        sync_ui_error(ctx->ui, "the server stopped answering; what was done "
                      "is recorded, the rest is done next run");
        return SYNC_EXIT_SERVER;
    }
    return code;
}

int sync_run(sync_ctx_t *ctx)
{
    int code = one_pass(ctx, 0);

    /* A conflict moved a local folder aside: its members go up now. */
    if (code == SYNC_EXIT_OK && ctx->renamed_conflicts && !ctx->opts->dry_run) {
        code = one_pass(ctx, 1);
    }
    sync_http_bytes(ctx->http, &ctx->stats.sent, &ctx->stats.received);
    if (code == SYNC_EXIT_OK
        || ctx->stats.up + ctx->stats.down + ctx->stats.deleted_local
           + ctx->stats.deleted_remote + ctx->stats.failed > 0) {
        /* (A run stopped before it did anything has only its message.) */
        sync_ui_summary(ctx->ui, &ctx->stats);
    }
    else {
        sync_ui_finish(ctx->ui);
    }
    if (code != SYNC_EXIT_OK) {
        return code;
    }
    if (ctx->bad_answer) {
        return SYNC_EXIT_SERVER;
    }
    if (ctx->stats.failed || ctx->stats.skipped) {
        return SYNC_EXIT_FAILED;
    }
    return ctx->stats.conflicts ? SYNC_EXIT_CONFLICTS : SYNC_EXIT_OK;
}
