/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * Unit tests of client/sync_plan.c: the three-way decisions of iss-sync,
 * the folder rules, renames, folded names and the guards, on tables of
 * (last synced, local, server) states.
 */

#include "sync.h"
#include "sync_plan.h"
#include "tap.h"

#include <apr_general.h>
#include <apr_strings.h>

static apr_pool_t *gp;

/* Content ids: sha of "content n". */
static void sha_of(unsigned char *out, int n)
{
    memset(out, 0, SHA_LEN);
    out[0] = (unsigned char)n;
    out[1] = 0x5a;
}

static sync_ctx_t *new_ctx(void)
{
    sync_ctx_t *ctx = apr_pcalloc(gp, sizeof(*ctx));
    sync_opts_t *o = apr_pcalloc(gp, sizeof(*o));

    o->local_root = "/tmp/folder";
    o->url = "http://127.0.0.1/dav/";
    o->max_delete = 50;
    ctx->opts = o;
    ctx->pool = gp;
    ctx->items = apr_hash_make(gp);
    return ctx;
}

/* Base: a file of content @a c with ETag "e<c>" (c 0: none; -1: a
 * folder).  Same encoding for local (content) and remote (ETag and
 * digest; -2: a file whose digest the server does not give). */
static sync_item_t *item(sync_ctx_t *ctx, const char *path, int b, int l,
                         int r)
{
    sync_item_t *it = sync_item_get(ctx, path);

    if (b) {
        it->has_base = 1;
        it->base.kind = b < 0 ? SYNC_DIR : SYNC_FILE;
        if (b > 0) {
            it->base.etag = apr_psprintf(gp, "\"e%d\"", b);
            it->base.has_sha = 1;
            sha_of(it->base.sha, b);
            it->base.size = b;
            it->base.inode = 1000 + (apr_uint64_t)b;
            it->base.mtime_ns = b;
        }
    }
    if (l) {
        it->local.kind = l < 0 ? SYNC_DIR : SYNC_FILE;
        if (l > 0) {
            it->local.has_sha = 1;
            sha_of(it->local.sha, l);
            it->local.size = l;
            it->local.inode = 1000 + (apr_uint64_t)l;
            it->local.mtime_ns = l;
            it->local.unchanged = (l == b);
        }
    }
    it->remote.listed = 1;
    if (r) {
        it->remote.kind = r == -1 ? SYNC_DIR : SYNC_FILE;
        if (r > 0) {
            it->remote.etag = apr_psprintf(gp, "\"e%d\"", r);
            it->remote.has_sha = 1;
            sha_of(it->remote.sha, r);
            it->remote.size = r;
        }
        else if (r == -2) {
            it->remote.etag = "\"other\"";
        }
    }
    return it;
}

static void decide(sync_ctx_t *ctx)
{
    sync_plan_resolve(ctx);
    sync_items_sort(ctx);
    sync_plan_decide(ctx);
}

static const char *act(sync_ctx_t *ctx, const char *path)
{
    sync_item_t *it = sync_item_find(ctx, path);
    const char *v;

    if (it == NULL) {
        return "(no item)";
    }
    switch (it->action) {
    case ACT_NONE: return "none";
    case ACT_RECORD: return "record";
    case ACT_FORGET: return "forget";
    default:
        v = sync_plan_verb(it->action);
        return v ? v : "?";
    }
}

/* One file, one rule. */
static void rule(int b, int l, int r, const char *want, const char *name)
{
    sync_ctx_t *ctx = new_ctx();

    item(ctx, "f", b, l, r);
    decide(ctx);
    is_str(act(ctx, "f"), want, name);
}

static void test_files(void)
{
    rule(1, 1, 1, "none", "unchanged on both sides: nothing");
    rule(1, 2, 1, "upload", "changed here: upload");
    rule(1, 1, 2, "download", "changed on the server: download");
    rule(1, 2, 2, "record", "changed to the same content on both: record");
    rule(1, 2, 3, "conflict", "changed differently on both: conflict");
    rule(1, 2, -2, "conflict",
         "changed on both, the server's content unknown: conflict (it "
         "compares the bytes first)");
    rule(1, 0, 1, "delete-remote", "deleted here: delete on the server");
    rule(1, 1, 0, "delete-local", "deleted on the server: delete here");
    rule(1, 0, 2, "download", "deleted here, changed there: the edit wins");
    rule(1, 2, 0, "upload", "changed here, deleted there: the edit wins");
    rule(1, 0, 0, "forget", "deleted on both: forget");
    rule(0, 1, 0, "upload", "new here: upload");
    rule(0, 0, 1, "download", "new there: download");
    rule(0, 1, 1, "record", "new on both, same content: record (first sync)");
    rule(0, 1, 2, "conflict", "new on both, different: conflict");
    rule(0, 1, -2, "conflict", "new on both, server content unknown: conflict");
    rule(0, 0, 0, "none", "nothing anywhere: nothing");
    rule(-1, -1, -1, "none", "a folder on both: nothing");
    rule(0, -1, 0, "mkdir-remote", "new folder here: mkdir on the server");
    rule(0, 0, -1, "mkdir-local", "new folder there: mkdir here");
    rule(0, -1, -1, "record", "new folder on both: record");
    rule(-1, 1, -1, "replace-remote",
         "a folder became a file here only: replaced on the server");
    rule(1, -1, 1, "replace-remote",
         "a file became a folder here only: replaced on the server");
    rule(1, 1, -1, "replace-local",
         "a file became a folder on the server only: replaced here");
    rule(-1, -1, 1, "replace-local",
         "a folder became a file on the server only: replaced here");
    rule(1, -1, -1, "record", "a file became a folder on both: record");
    rule(-1, 1, 2, "conflict",
         "a folder became a file on both, other content: conflict");
    rule(1, -1, 2, "conflict",
         "a folder here, an edited file there: conflict");
    rule(0, 1, -1, "conflict", "new file here, new folder there: conflict");
}

static void test_etags(void)
{
    sync_ctx_t *ctx = new_ctx();
    sync_item_t *it;

    it = item(ctx, "weak", 1, 1, 1);
    it->base.etag = "W/\"e1\"";
    it = item(ctx, "samecontent", 1, 1, 1);
    it->remote.etag = "\"renewed\"";
    it = item(ctx, "strong", 1, 1, 1);
    it->remote.etag = "W/\"e1\"";
    decide(ctx);
    is_str(act(ctx, "weak"), "record",
           "a weak ETag that turned strong: no change, the strong one is "
           "recorded");
    is_str(act(ctx, "samecontent"), "record",
           "another ETag, same digest: no change, the new ETag recorded");
    is_str(act(ctx, "strong"), "record",
           "the server answers weak now: compared weakly, no download");
    it = sync_item_find(ctx, "samecontent");
    ok(it->action != ACT_DOWNLOAD, "no download when the content is the same");
}

static void test_listing(void)
{
    sync_ctx_t *ctx = new_ctx();
    sync_item_t *it;

    /* A change list: what it does not mention is as it was. */
    it = item(ctx, "quiet", 1, 1, 0);
    it->remote.listed = 0;
    it = item(ctx, "gone", 1, 1, 0);
    decide(ctx);
    is_str(act(ctx, "quiet"), "none",
           "not in a change list: unchanged on the server");
    is_str(act(ctx, "gone"), "delete-local", "listed as removed: deleted");

    ctx = new_ctx();
    ctx->full_listing = 1;
    it = item(ctx, "unlisted", 1, 1, 0);
    it->remote.listed = 0;
    decide(ctx);
    is_str(act(ctx, "unlisted"), "delete-local",
           "not in a full listing: gone from the server");
}

static void test_recovery(void)
{
    sync_ctx_t *ctx = new_ctx();

    ctx->recovery = 1;
    ctx->full_listing = 1;
    item(ctx, "lost-here", 1, 0, 1);
    item(ctx, "lost-there", 1, 1, 0);
    item(ctx, "dir-lost-here", -1, 0, -1);
    item(ctx, "dir-lost-there", -1, -1, 0);
    decide(ctx);
    is_str(act(ctx, "lost-here"), "download",
           "recovery: missing here is restored, not deleted there");
    is_str(act(ctx, "lost-there"), "upload",
           "recovery: missing there is restored, not deleted here");
    is_str(act(ctx, "dir-lost-here"), "mkdir-local", "recovery: folders too");
    is_str(act(ctx, "dir-lost-there"), "mkdir-remote",
           "recovery: folders too, the other way");
}

static void test_folders(void)
{
    sync_ctx_t *ctx = new_ctx();

    /* Deleted here, but a new file arrived inside on the server. */
    item(ctx, "a", -1, 0, -1);
    item(ctx, "a/old", 1, 0, 1);
    item(ctx, "a/new", 0, 0, 5);
    /* Deleted on the server, but edited here. */
    item(ctx, "b", -1, -1, 0);
    item(ctx, "b/kept", 1, 2, 0);
    item(ctx, "b/plain", 3, 3, 0);
    /* Deleted here, nothing new inside: gone. */
    item(ctx, "c", -1, 0, -1);
    item(ctx, "c/x", 4, 0, 4);
    item(ctx, "c/d", -1, 0, -1);
    item(ctx, "c/d/y", 6, 0, 6);
    /* A deep survivor keeps every folder above it. */
    item(ctx, "e", -1, 0, -1);
    item(ctx, "e/f", -1, 0, -1);
    item(ctx, "e/f/g", -1, 0, -1);
    item(ctx, "e/f/g/new", 0, 0, 7);
    decide(ctx);
    is_str(act(ctx, "a"), "mkdir-local",
           "a folder deleted here comes back when the server added to it");
    is_str(act(ctx, "a/new"), "download", "its new member comes down");
    is_str(act(ctx, "a/old"), "delete-remote",
           "its unchanged member is deleted on the server");
    is_str(act(ctx, "b"), "mkdir-remote",
           "a folder deleted on the server comes back when edited here");
    is_str(act(ctx, "b/kept"), "upload", "the edited member goes up");
    is_str(act(ctx, "b/plain"), "delete-local",
           "the unchanged member is deleted here");
    is_str(act(ctx, "c"), "rmdir-remote", "an emptied folder is deleted there");
    is_str(act(ctx, "c/d"), "rmdir-remote", "and its folders");
    is_str(act(ctx, "c/x"), "delete-remote", "and its files");
    is_str(act(ctx, "e"), "mkdir-local", "a deep survivor keeps e");
    is_str(act(ctx, "e/f"), "mkdir-local", "and e/f");
    is_str(act(ctx, "e/f/g"), "mkdir-local", "and e/f/g");
}

static void test_kind_changes(void)
{
    sync_ctx_t *ctx = new_ctx();

    /* Here: the folder d became a file; the server added to the folder:
     * it cannot simply go, keep both. */
    item(ctx, "d", -1, 1, -1);
    item(ctx, "d/old", 2, 0, 2);
    item(ctx, "d/new", 0, 0, 3);
    /* Here: the folder e became a file, nothing new in it on the server:
     * its members go, then the folder, then the file goes up. */
    item(ctx, "e", -1, 4, -1);
    item(ctx, "e/x", 5, 0, 5);
    /* On the server: the folder f became a file; here f holds a new
     * file: keep both. */
    item(ctx, "f", -1, -1, 6);
    item(ctx, "f/mine", 0, 7, 0);
    /* Recovery never deletes: a change of kind keeps both. */
    decide(ctx);
    is_str(act(ctx, "d"), "conflict",
           "a folder replaced here, added to there: conflict");
    is_str(act(ctx, "e"), "replace-remote",
           "a folder replaced by a file here: replaced there");
    is_str(act(ctx, "e/x"), "delete-remote", "its members deleted there");
    is_str(act(ctx, "f"), "conflict",
           "a folder replaced there, added to here: conflict");
    is_str(act(ctx, "f/mine"), "upload", "the new member goes up");

    ctx = new_ctx();
    ctx->recovery = 1;
    ctx->full_listing = 1;
    item(ctx, "g", 1, -1, 1);
    decide(ctx);
    is_str(act(ctx, "g"), "conflict",
           "recovery: a change of kind keeps both (nothing is deleted)");
}

static void test_skips_and_moves(void)
{
    sync_ctx_t *ctx = new_ctx();
    sync_item_t *it, *moved;

    it = item(ctx, "link", 1, 0, 1);
    it->local.other = 1;
    it->skip_reason = "a symbolic link (never followed)";
    it = item(ctx, "unreadable", -1, -1, -1);
    it->skip_reason = "cannot be read";
    item(ctx, "unreadable/x", 1, 0, 1);
    /* A rename: new path, the inode/size/mtime/content of a deleted one. */
    item(ctx, "old-name", 8, 0, 8);
    moved = item(ctx, "new-name", 0, 8, 0);
    /* A new file that only shares the content is no rename. */
    item(ctx, "copy-old", 9, 0, 9);
    it = item(ctx, "copy-new", 0, 9, 0);
    it->local.inode = 77;
    decide(ctx);
    is_str(act(ctx, "link"), "skip",
           "a symbolic link where a file was: left alone (no delete there)");
    is_str(act(ctx, "unreadable/x"), "skip",
           "what is under a skipped folder is left alone");
    is_str(act(ctx, "new-name"), "move-remote", "a local rename is a MOVE");
    ok(moved->move_from && strcmp(moved->move_from->path, "old-name") == 0,
       "the MOVE is from the old name");
    is_str(act(ctx, "old-name"), "none", "the old name is not deleted apart");
    is_str(act(ctx, "copy-new"), "upload", "another inode: an upload");
    is_str(act(ctx, "copy-old"), "delete-remote", "and a delete");
}

static void test_folded_names(void)
{
    sync_ctx_t *ctx = new_ctx();

    ctx->case_fold = 1;
    item(ctx, "README.txt", 0, 0, 1);
    item(ctx, "Readme.txt", 0, 0, 2);
    item(ctx, "other.txt", 0, 0, 3);
    decide(ctx);
    is_str(act(ctx, "README.txt"), "skip",
           "two server names one name here: the first is skipped");
    is_str(act(ctx, "Readme.txt"), "skip", "and the second: never merged");
    is_str(act(ctx, "other.txt"), "download", "the rest is synced");

    ctx = new_ctx();
    item(ctx, "README.txt", 0, 0, 1);
    item(ctx, "Readme.txt", 0, 0, 2);
    decide(ctx);
    is_str(act(ctx, "Readme.txt"), "download",
           "a file system that keeps case holds both");
}

static void test_guards(void)
{
    sync_ctx_t *ctx;
    char name[32];
    int i;

    /* Ten synced files. */
    ctx = new_ctx();
    for (i = 0; i < 10; i++) {
        apr_snprintf(name, sizeof(name), "f%d", i);
        item(ctx, name, i + 1, i < 6 ? 0 : i + 1, i + 1);
    }
    decide(ctx);
    ok(sync_plan_guard(ctx, 4, gp) != NULL,
       "6 of 10 deleted here (> 50%%): stopped");
    ctx->opts->max_delete = 60;
    ok(sync_plan_guard(ctx, 4, gp) == NULL, "with --max-delete 60: allowed");
    ctx->opts->max_delete = 100;
    ok(sync_plan_guard(ctx, 4, gp) == NULL, "--max-delete 100: no limit");

    ctx = new_ctx();
    for (i = 0; i < 10; i++) {
        apr_snprintf(name, sizeof(name), "f%d", i);
        item(ctx, name, i + 1, i + 1, i < 5 ? 0 : i + 1);
    }
    decide(ctx);
    ok(sync_plan_guard(ctx, 10, gp) == NULL, "5 of 10 (50%%): allowed");

    ctx = new_ctx();
    for (i = 0; i < 10; i++) {
        apr_snprintf(name, sizeof(name), "f%d", i);
        item(ctx, name, i + 1, i + 1, i < 6 ? 0 : i + 1);
    }
    decide(ctx);
    ok(sync_plan_guard(ctx, 10, gp) != NULL,
       "6 of 10 deleted on the server: stopped too");

    /* An empty folder that held files. */
    ctx = new_ctx();
    item(ctx, "a", 1, 0, 1);
    decide(ctx);
    ok(sync_plan_guard(ctx, 0, gp) != NULL
       && strstr(sync_plan_guard(ctx, 0, gp), "mounted") != NULL,
       "an empty folder that held files: stopped (unmounted?)");
    ctx->opts->allow_empty_root = 1;
    ok(sync_plan_guard(ctx, 0, gp) == NULL,
       "--allow-empty-root: allowed, its deletions not held against "
       "--max-delete");

    /* An empty collection that held files. */
    ctx = new_ctx();
    ctx->full_listing = 1;
    item(ctx, "a", 1, 1, 0);
    item(ctx, "b", 2, 2, 0);
    decide(ctx);
    ok(sync_plan_guard(ctx, 2, gp) != NULL,
       "an empty collection that held files: stopped");
    ctx->opts->allow_empty_root = 1;
    ok(sync_plan_guard(ctx, 2, gp) == NULL,
       "--allow-empty-root: the emptied collection's deletions go through");
    ctx->opts->allow_empty_root = 0;
    ctx->recovery = 1;
    decide(ctx);
    ok(sync_plan_guard(ctx, 2, gp) == NULL,
       "not in recovery (nothing is deleted then)");

    /* The same with a change list (sync tokens): every file listed gone. */
    ctx = new_ctx();
    item(ctx, "a", 1, 1, 0);
    item(ctx, "b", 2, 2, 0);
    decide(ctx);
    ok(sync_plan_guard(ctx, 2, gp) != NULL
       && strstr(sync_plan_guard(ctx, 2, gp), "collection") != NULL,
       "a collection emptied per its change list: stopped by the "
       "empty-collection guard");
    ctx->opts->allow_empty_root = 1;
    ok(sync_plan_guard(ctx, 2, gp) == NULL,
       "--allow-empty-root: allowed with a change list too");

    /* A first sync deletes nothing and is never stopped. */
    ctx = new_ctx();
    item(ctx, "a", 0, 1, 0);
    item(ctx, "b", 0, 0, 1);
    decide(ctx);
    ok(sync_plan_guard(ctx, 1, gp) == NULL, "a first sync is not stopped");
}

static void test_paths(void)
{
    ok(sync_path_cmp("a", "a/b") < 0, "a folder before its members");
    ok(sync_path_cmp("a/b", "a b") < 0, "its members before its siblings");
    ok(sync_path_cmp("a/z", "a!") < 0, "'/' sorts first");
    ok(sync_path_cmp("x", "x") == 0, "equal");
    ok(sync_path_under("a/b", "a") && !sync_path_under("ab", "a")
       && !sync_path_under("a", "a") && sync_path_under("a", ""),
       "sync_path_under");
    is_str(sync_path_parent("a/b/c", gp), "a/b", "parent");
    is_str(sync_path_parent("c", gp), "", "parent of a top-level name");
    ok(sync_etag_weak_eq("W/\"x\"", "\"x\"") && !sync_etag_weak_eq("\"x\"",
                                                                   "\"y\"")
       && !sync_etag_weak_eq(NULL, "\"x\""), "weak ETag comparison");
}

int main(int argc, const char *const *argv)
{
    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&gp, NULL);
    test_files();
    test_etags();
    test_listing();
    test_recovery();
    test_folders();
    test_kind_changes();
    test_skips_and_moves();
    test_folded_names();
    test_guards();
    test_paths();
    apr_pool_destroy(gp);
    apr_terminate();
    return done_testing();
}
