/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "sync_plan.h"

#include <apr_strings.h>

#include <string.h>

void sync_plan_resolve(sync_ctx_t *ctx)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(ctx->pool, ctx->items); hi;
         hi = apr_hash_next(hi)) {
        sync_item_t *it = apr_hash_this_val(hi);
        sync_remote_t *r = &it->remote;

        if (r->listed) {
            continue;
        }
        memset(r, 0, sizeof(*r));
        if (!ctx->full_listing && it->has_base) {
            r->kind = it->base.kind;
            r->etag = it->base.etag;
            r->size = it->base.size;
            r->has_sha = it->base.has_sha;
            memcpy(r->sha, it->base.sha, SHA_LEN);
        }
    }
}

static int sha_eq(int ha, const unsigned char *a, int hb,
                  const unsigned char *b)
{
    return ha && hb && memcmp(a, b, SHA_LEN) == 0;
}

static sync_kind_e base_kind(const sync_item_t *it)
{
    return it->has_base ? it->base.kind : SYNC_NONE;
}

static int local_changed(const sync_item_t *it)
{
    sync_kind_e b = base_kind(it), l = it->local.kind;

    if (l != b) {
        return 1;
    }
    if (l == SYNC_FILE) {
        return !sha_eq(it->local.has_sha, it->local.sha, it->base.has_sha,
                       it->base.sha);
    }
    return 0;
}

static int remote_changed(const sync_item_t *it)
{
    sync_kind_e b = base_kind(it), r = it->remote.kind;

    if (r != b) {
        return 1;
    }
    if (r == SYNC_FILE) {
        if (sync_etag_weak_eq(it->remote.etag, it->base.etag)) {
            return 0;
        }
        /* Another ETag, but the server says the same content. */
        return !sha_eq(it->remote.has_sha, it->remote.sha, it->base.has_sha,
                       it->base.sha);
    }
    return 0;
}

/* Whether the record no longer says what both sides hold (same content,
 * new ETag or new local identity). */
static int record_stale(const sync_item_t *it)
{
    const sync_base_t *b = &it->base;
    const sync_local_t *l = &it->local;

    if (!it->has_base || l->kind != b->kind) {
        return 1;
    }
    if (l->kind == SYNC_FILE) {
        /* Rehashed (same content, new identity), or a new ETag (the same
         * content, or a weak ETag that turned strong). */
        return !l->unchanged || it->remote.etag == NULL || b->etag == NULL
               || strcmp(it->remote.etag, b->etag) != 0;
    }
    return 0;
}

static sync_action_e decide_one(const sync_ctx_t *ctx, const sync_item_t *it)
{
    sync_kind_e l = it->local.kind, r = it->remote.kind, b = base_kind(it);
    int lchg = local_changed(it), rchg = remote_changed(it);

    if (it->skip_reason) {
        return ACT_SKIP;
    }
    if (!lchg && !rchg) {
        if (l == SYNC_NONE) {
            return it->has_base ? ACT_FORGET : ACT_NONE;
        }
        return record_stale(it) ? ACT_RECORD : ACT_NONE;
    }
    if (lchg && !rchg) {
        if (l == SYNC_NONE) {
            if (ctx->recovery) {
                /* The server forgot us: a missing file is restored. */
                return b == SYNC_DIR ? ACT_MKDIR_LOCAL : ACT_DOWNLOAD;
            }
            return b == SYNC_DIR ? ACT_RMDIR_REMOTE : ACT_DELETE_REMOTE;
        }
        if (r != SYNC_NONE && r != l) {
            /* A file became a folder here (or back); the server still
             * holds what we last synced: replace it there.  After a
             * server forgot us, nothing is deleted: keep both. */
            return ctx->recovery ? ACT_CONFLICT : ACT_REPLACE_REMOTE;
        }
        return l == SYNC_DIR ? ACT_MKDIR_REMOTE : ACT_UPLOAD;
    }
    if (!lchg && rchg) {
        if (r == SYNC_NONE) {
            if (ctx->recovery) {
                return b == SYNC_DIR ? ACT_MKDIR_REMOTE : ACT_UPLOAD;
            }
            return b == SYNC_DIR ? ACT_RMDIR_LOCAL : ACT_DELETE_LOCAL;
        }
        if (l != SYNC_NONE && r != l) {
            return ctx->recovery ? ACT_CONFLICT : ACT_REPLACE_LOCAL;
        }
        return r == SYNC_DIR ? ACT_MKDIR_LOCAL : ACT_DOWNLOAD;
    }
    /* Changed on both sides. */
    if (l == SYNC_NONE && r == SYNC_NONE) {
        return it->has_base ? ACT_FORGET : ACT_NONE;
    }
    if (l == SYNC_NONE) {
        return r == SYNC_DIR ? ACT_MKDIR_LOCAL : ACT_DOWNLOAD;
    }
    if (r == SYNC_NONE) {
        return l == SYNC_DIR ? ACT_MKDIR_REMOTE : ACT_UPLOAD;
    }
    if (l != r) {
        return ACT_CONFLICT;
    }
    if (l == SYNC_DIR) {
        return ACT_RECORD;
    }
    if (sha_eq(it->local.has_sha, it->local.sha, it->remote.has_sha,
               it->remote.sha)) {
        return ACT_RECORD;              /* the same content on both sides */
    }
    /* Different, or unknown on the server (plain WebDAV gives no digest):
     * a conflict, which compares the bytes before it renames anything. */
    return ACT_CONFLICT;
}

/* ASCII case folding of a path, for file systems that fold case. */
static const char *fold(const char *path, apr_pool_t *pool)
{
    char *s = apr_pstrdup(pool, path), *p;

    for (p = s; *p; p++) {
        if (*p >= 'A' && *p <= 'Z') {
            *p = (char)(*p - 'A' + 'a');
        }
    }
    return s;
}

static void skip_folded_names(sync_ctx_t *ctx)
{
    apr_hash_t *seen = apr_hash_make(ctx->pool);
    int i;

    if (!ctx->case_fold) {
        return;
    }
    for (i = 0; i < ctx->order->nelts; i++) {
        sync_item_t *it = APR_ARRAY_IDX(ctx->order, i, sync_item_t *);
        const char *k;
        sync_item_t *other;

        if (it->local.kind == SYNC_NONE && it->remote.kind == SYNC_NONE
            && !it->local.other) {
            continue;
        }
        k = fold(it->path, ctx->pool);
        other = apr_hash_get(seen, k, APR_HASH_KEY_STRING);
        if (other == NULL) {
            apr_hash_set(seen, k, APR_HASH_KEY_STRING, it);
            continue;
        }
        it->action = other->action = ACT_SKIP;
        it->skip_reason = apr_psprintf(ctx->pool, "its name and \"%s\" are "
                                       "one name in this folder's file "
                                       "system (it folds case)", other->path);
        other->skip_reason = apr_psprintf(ctx->pool, "its name and \"%s\" are "
                                          "one name in this folder's file "
                                          "system (it folds case)", it->path);
    }
}

/* A new local file that is a deleted one's inode, size and mtime: the
 * user renamed it.  One MOVE instead of an upload and a delete. */
static void find_moves(sync_ctx_t *ctx)
{
    apr_hash_t *gone = apr_hash_make(ctx->pool);
    int i;

    for (i = 0; i < ctx->order->nelts; i++) {
        sync_item_t *it = APR_ARRAY_IDX(ctx->order, i, sync_item_t *);

        if (it->action == ACT_DELETE_REMOTE && it->base.kind == SYNC_FILE
            && it->base.inode) {
            apr_hash_set(gone, &it->base.inode, sizeof(it->base.inode), it);
        }
    }
    if (apr_hash_count(gone) == 0) {
        return;
    }
    for (i = 0; i < ctx->order->nelts; i++) {
        sync_item_t *it = APR_ARRAY_IDX(ctx->order, i, sync_item_t *);
        sync_item_t *from;

        if (it->action != ACT_UPLOAD || it->has_base
            || it->remote.kind != SYNC_NONE) {
            continue;
        }
        from = apr_hash_get(gone, &it->local.inode, sizeof(it->local.inode));
        if (from == NULL || from->moved_away
            || from->base.size != it->local.size
            || from->base.mtime_ns != it->local.mtime_ns
            || !sha_eq(it->local.has_sha, it->local.sha, from->base.has_sha,
                       from->base.sha)) {
            continue;
        }
        it->action = ACT_MOVE_REMOTE;
        it->move_from = from;
        from->action = ACT_NONE;
        from->moved_away = 1;
    }
}

/* Where each item exists once its action is done. */
static void after(const sync_item_t *it, int *loc, int *rem)
{
    int l = it->local.kind != SYNC_NONE || it->local.other;
    int r = it->remote.kind != SYNC_NONE;

    switch (it->action) {
    case ACT_DOWNLOAD: case ACT_MKDIR_LOCAL:
        *loc = 1; *rem = r; break;
    case ACT_UPLOAD: case ACT_MKDIR_REMOTE: case ACT_MOVE_REMOTE:
        *loc = l; *rem = 1; break;
    case ACT_CONFLICT: case ACT_REPLACE_REMOTE: case ACT_REPLACE_LOCAL:
        *loc = 1; *rem = 1; break;
    case ACT_DELETE_LOCAL: case ACT_RMDIR_LOCAL:
        *loc = 0; *rem = r; break;
    case ACT_DELETE_REMOTE: case ACT_RMDIR_REMOTE:
        *loc = l; *rem = 0; break;
    case ACT_FORGET:
        *loc = 0; *rem = 0; break;
    case ACT_NONE:
        *loc = l; *rem = it->moved_away ? 0 : r; break;
    default:
        *loc = l; *rem = r; break;
    }
}

/* A folder deleted on one side stays deleted only if nothing under it
 * survives on the other: walk the items deepest first, and tell each
 * folder what survives under it. */
static void settle_folders(sync_ctx_t *ctx)
{
    apr_hash_t *keep_l = apr_hash_make(ctx->pool);
    apr_hash_t *keep_r = apr_hash_make(ctx->pool);
    int i;

    for (i = ctx->order->nelts - 1; i >= 0; i--) {
        sync_item_t *it = APR_ARRAY_IDX(ctx->order, i, sync_item_t *);
        const char *parent;
        int loc, rem;

        if (it->action == ACT_RMDIR_REMOTE
            && apr_hash_get(keep_r, it->path, APR_HASH_KEY_STRING)) {
            it->action = ACT_MKDIR_LOCAL;
        }
        else if (it->action == ACT_RMDIR_LOCAL
                 && apr_hash_get(keep_l, it->path, APR_HASH_KEY_STRING)) {
            it->action = ACT_MKDIR_REMOTE;
        }
        else if ((it->action == ACT_REPLACE_REMOTE
                  && it->remote.kind == SYNC_DIR
                  && apr_hash_get(keep_r, it->path, APR_HASH_KEY_STRING))
                 || (it->action == ACT_REPLACE_LOCAL
                     && it->local.kind == SYNC_DIR
                     && apr_hash_get(keep_l, it->path, APR_HASH_KEY_STRING))) {
            /* The folder to be replaced by a file holds something new on
             * its side: keep both. */
            it->action = ACT_CONFLICT;
        }
        after(it, &loc, &rem);
        parent = sync_path_parent(it->path, ctx->pool);
        if (loc) {
            apr_hash_set(keep_l, parent, APR_HASH_KEY_STRING, it);
        }
        if (rem) {
            apr_hash_set(keep_r, parent, APR_HASH_KEY_STRING, it);
        }
    }
}

void sync_plan_decide(sync_ctx_t *ctx)
{
    int i;

    for (i = 0; i < ctx->order->nelts; i++) {
        sync_item_t *it = APR_ARRAY_IDX(ctx->order, i, sync_item_t *);

        it->action = decide_one(ctx, it);
    }
    skip_folded_names(ctx);
    /* What is under a skipped folder is left alone too. */
    for (i = 0; i < ctx->order->nelts; i++) {
        sync_item_t *it = APR_ARRAY_IDX(ctx->order, i, sync_item_t *);
        const char *parent;
        sync_item_t *p;

        if (it->depth == 0) {
            continue;
        }
        parent = sync_path_parent(it->path, ctx->pool);
        p = sync_item_find(ctx, parent);
        if (p && p->action == ACT_SKIP && it->action != ACT_SKIP) {
            it->action = ACT_SKIP;
            it->skip_reason = apr_psprintf(ctx->pool, "its folder \"%s\" is "
                                           "skipped", p->path);
        }
    }
    find_moves(ctx);
    settle_folders(ctx);
}

const char *sync_plan_guard(sync_ctx_t *ctx, apr_uint64_t local_entries,
                            apr_pool_t *pool)
{
    apr_uint64_t base_files = 0, del_l = 0, del_r = 0, remote_present = 0;
    int max = ctx->opts->max_delete;
    int i;

    for (i = 0; i < ctx->order->nelts; i++) {
        const sync_item_t *it = APR_ARRAY_IDX(ctx->order, i, sync_item_t *);

        if (it->has_base && it->base.kind == SYNC_FILE) {
            base_files++;
        }
        if (it->remote.kind != SYNC_NONE) {
            remote_present++;
        }
        if (it->action == ACT_DELETE_LOCAL) {
            del_l++;
        }
        else if (it->action == ACT_DELETE_REMOTE) {
            del_r++;
        }
    }
    if (base_files > 0 && !ctx->opts->allow_empty_root) {
        if (local_entries == 0) {
            return apr_psprintf(pool, "the folder %s is empty, but it held "
                                "%" APR_UINT64_T_FMT " files at the last "
                                "sync: is its disk mounted?  Nothing was "
                                "done (--allow-empty-root to sync the empty "
                                "folder: it deletes them on the server)",
                                ctx->opts->local_root, base_files);
        }
        if (remote_present == 0 && !ctx->recovery) {
            return apr_psprintf(pool, "the server collection %s is empty, "
                                "but it held %" APR_UINT64_T_FMT " files at "
                                "the last sync.  Nothing was done "
                                "(--allow-empty-root to sync the empty "
                                "collection: it deletes them here)",
                                ctx->opts->url, base_files);
        }
    }
    if (ctx->opts->allow_empty_root) {
        /* An emptied side, allowed: its deletions are what was asked. */
        if (local_entries == 0) {
            del_r = 0;
        }
        if (remote_present == 0) {
            del_l = 0;
        }
    }
    if (base_files > 0 && max < 100) {
        if (del_l * 100 > (apr_uint64_t)max * base_files) {
            return apr_psprintf(pool, "this run would delete %" APR_UINT64_T_FMT
                                " of %" APR_UINT64_T_FMT " files in %s "
                                "(more than --max-delete %d%%).  Nothing was "
                                "done", del_l, base_files,
                                ctx->opts->local_root, max);
        }
        if (del_r * 100 > (apr_uint64_t)max * base_files) {
            return apr_psprintf(pool, "this run would delete %" APR_UINT64_T_FMT
                                " of %" APR_UINT64_T_FMT " files on the "
                                "server (more than --max-delete %d%%).  "
                                "Nothing was done", del_r, base_files, max);
        }
    }
    return NULL;
}

const char *sync_plan_verb(sync_action_e a)
{
    switch (a) {
    case ACT_UPLOAD: return "upload";
    case ACT_DOWNLOAD: return "download";
    case ACT_DELETE_LOCAL: return "delete-local";
    case ACT_DELETE_REMOTE: return "delete-remote";
    case ACT_MKDIR_LOCAL: return "mkdir-local";
    case ACT_MKDIR_REMOTE: return "mkdir-remote";
    case ACT_RMDIR_LOCAL: return "rmdir-local";
    case ACT_RMDIR_REMOTE: return "rmdir-remote";
    case ACT_CONFLICT: return "conflict";
    case ACT_MOVE_REMOTE: return "move-remote";
    case ACT_REPLACE_REMOTE: return "replace-remote";
    case ACT_REPLACE_LOCAL: return "replace-local";
    case ACT_SKIP: return "skip";
    default: return NULL;
    }
}
