/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#define _GNU_SOURCE 1       /* renameat2 */

#include "sync_local.h"
#include "sync_ui.h"
#include "iss_bytes.h"

#include <apr_general.h>
#include <apr_portable.h>
#include <apr_strings.h>
#include <apr_time.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

#define HASH_BUF (1024 * 1024)

const char *sync_local_path(const sync_ctx_t *ctx, const char *rel,
                            apr_pool_t *pool)
{
    return *rel ? apr_pstrcat(pool, ctx->opts->local_root, "/", rel, NULL)
                : ctx->opts->local_root;
}

static void fill_identity(sync_local_t *l, const struct stat *sb)
{
    l->size = (apr_int64_t)sb->st_size;
    l->mtime_ns = (apr_int64_t)sb->st_mtim.tv_sec * 1000000000
                  + sb->st_mtim.tv_nsec;
    l->ctime_ns = (apr_int64_t)sb->st_ctim.tv_sec * 1000000000
                  + sb->st_ctim.tv_nsec;
    l->inode = (apr_uint64_t)sb->st_ino;
    if (S_ISREG(sb->st_mode)) {
        l->kind = SYNC_FILE;
    }
    else if (S_ISDIR(sb->st_mode)) {
        l->kind = SYNC_DIR;
        l->size = 0;
    }
    else {
        l->kind = SYNC_NONE;
        l->other = 1;
    }
}

apr_status_t sync_local_stat(const sync_ctx_t *ctx, const char *rel,
                             sync_local_t *l, apr_pool_t *pool)
{
    struct stat sb;

    memset(l, 0, sizeof(*l));
    if (lstat(sync_local_path(ctx, rel, pool), &sb) != 0) {
        return errno == ENOENT || errno == ENOTDIR ? APR_SUCCESS
                                                   : APR_FROM_OS_ERROR(errno);
    }
    fill_identity(l, &sb);
    return APR_SUCCESS;
}

int sync_local_same(const sync_local_t *a, const sync_local_t *b)
{
    if (a->kind != b->kind || a->other != b->other) {
        return 0;
    }
    if (a->kind == SYNC_DIR) {
        return a->inode == b->inode;
    }
    return a->size == b->size && a->mtime_ns == b->mtime_ns
           && a->ctime_ns == b->ctime_ns && a->inode == b->inode;
}

static int same_as_base(const sync_local_t *l, const sync_base_t *b)
{
    return b->kind == SYNC_FILE && l->kind == SYNC_FILE
           && l->size == b->size && l->mtime_ns == b->mtime_ns
           && l->ctime_ns == b->ctime_ns && l->inode == b->inode;
}

/* ---- the lock ------------------------------------------------------------------ */

apr_status_t sync_local_lock(sync_ctx_t *ctx)
{
    /* flock() on the folder itself (a read-only descriptor: nothing is
     * written into it), held until the process ends: whatever state
     * directory or URL two runs use, they cannot work on one folder at
     * once. */
    int fd = open(ctx->opts->local_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        apr_status_t rv = APR_FROM_OS_ERROR(errno);

        close(fd);
        return rv;
    }
    return APR_SUCCESS;                 /* fd stays open: the lock holds */
}

/* ---- name folding probe ------------------------------------------------------ */

/* Whether the folder's file system finds name @a b after only @a a was
 * created (random names: nothing else can answer to them).  Inode numbers
 * are not compared: FUSE file systems without stable inodes hand out a
 * new one per lookup. */
static int probe_pair(sync_ctx_t *ctx, const char *a, const char *b)
{
    apr_pool_t *pool = ctx->pool;
    char rnd[2 * 4 + 1];
    unsigned char r[4];
    const char *pa, *pb;
    struct stat sb;
    int fd, folds;

    if (apr_generate_random_bytes(r, sizeof(r)) != APR_SUCCESS) {
        return 0;
    }
    iss_hex_encode(rnd, r, sizeof(r));
    pa = apr_pstrcat(pool, ctx->opts->local_root, "/" SYNC_TMP_PREFIX "probe-",
                     rnd, a, NULL);
    pb = apr_pstrcat(pool, ctx->opts->local_root, "/" SYNC_TMP_PREFIX "probe-",
                     rnd, b, NULL);
    if (lstat(pb, &sb) == 0) {
        return 0;
    }
    fd = open(pa, O_CREAT | O_EXCL | O_WRONLY, 0600);
    if (fd < 0) {
        return 0;
    }
    close(fd);
    folds = lstat(pb, &sb) == 0;
    unlink(pa);
    return folds;
}

void sync_local_probe(sync_ctx_t *ctx)
{
    ctx->case_fold = probe_pair(ctx, "-Ab", "-aB");
    /* U+00E9 precomposed against e + U+0301 */
    ctx->norm_fold = probe_pair(ctx, "-\xc3\xa9", "-e\xcc\x81");
    if (ctx->case_fold || ctx->norm_fold) {
        sync_ui_info(ctx->ui, "the folder's file system folds%s%s",
                     ctx->case_fold ? " case" : "",
                     ctx->norm_fold ? " Unicode normalisation" : "");
    }
}

/* ---- hashing ------------------------------------------------------------------ */

apr_status_t sync_local_hash(sync_ctx_t *ctx, const char *rel,
                             sync_local_t *l, apr_pool_t *pool)
{
    const char *path = sync_local_path(ctx, rel, pool);
    apr_file_t *f;
    apr_status_t rv;
    struct stat before, after;
    sync_local_t id0, id1;
    apr_os_file_t fd;

    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_FPROT_OS_DEFAULT, pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_os_file_get(&fd, f);
    if (fstat(fd, &before) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
        apr_file_close(f);
        return rv;
    }
    memset(&id0, 0, sizeof(id0));
    fill_identity(&id0, &before);
    if (id0.kind != SYNC_FILE) {
        apr_file_close(f);
        return APR_EINVAL;
    }
    l->manifest = NULL;
    if (ctx->server.chunking) {
        rv = iss_manifest_of_file(f, &ctx->server.params, &l->manifest, pool);
        if (rv == APR_SUCCESS) {
            memcpy(l->sha, l->manifest->file_sha256, SHA_LEN);
        }
    }
    else {
        iss_digest_t *d;
        char *buf = malloc(HASH_BUF);
        apr_size_t n;

        if (buf == NULL) {
            apr_file_close(f);
            return APR_ENOMEM;
        }
        if ((rv = iss_digest_create(&d, pool)) == APR_SUCCESS) {
            do {
                n = HASH_BUF;
                rv = apr_file_read(f, buf, &n);
                if (rv == APR_SUCCESS) {
                    iss_digest_update(d, buf, n);
                }
            } while (rv == APR_SUCCESS);
            if (APR_STATUS_IS_EOF(rv)) {
                rv = APR_SUCCESS;
                iss_digest_final(d, l->sha);
            }
        }
        free(buf);
    }
    if (rv == APR_SUCCESS && fstat(fd, &after) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    apr_file_close(f);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    memset(&id1, 0, sizeof(id1));
    fill_identity(&id1, &after);
    if (!sync_local_same(&id0, &id1)) {
        return APR_EAGAIN;              /* written to while we read it */
    }
    l->kind = SYNC_FILE;
    l->size = id0.size;
    l->mtime_ns = id0.mtime_ns;
    l->ctime_ns = id0.ctime_ns;
    l->inode = id0.inode;
    l->has_sha = 1;
    l->unchanged = 0;
    return APR_SUCCESS;
}

/* ---- the scan ------------------------------------------------------------------- */

static int is_temp_name(const char *name)
{
    return strncmp(name, SYNC_TMP_PREFIX, sizeof(SYNC_TMP_PREFIX) - 1) == 0;
}

apr_status_t sync_local_scan(sync_ctx_t *ctx, apr_uint64_t *entries)
{
    apr_array_header_t *dirs = apr_array_make(ctx->pool, 64,
                                              sizeof(const char *));
    apr_pool_t *iter;
    int next = 0;

    *entries = 0;
    APR_ARRAY_PUSH(dirs, const char *) = "";
    apr_pool_create(&iter, ctx->pool);
    while (next < dirs->nelts) {
        const char *dir = APR_ARRAY_IDX(dirs, next, const char *);
        const char *abs = sync_local_path(ctx, dir, iter);
        DIR *d;
        struct dirent *de;

        next++;
        d = opendir(abs);
        if (d == NULL) {
            sync_item_t *it = *dir ? sync_item_find(ctx, dir) : NULL;

            if (it == NULL) {
                sync_ui_error(ctx->ui, "cannot read the folder %s: %s", abs,
                              strerror(errno));
                apr_pool_destroy(iter);
                return APR_FROM_OS_ERROR(errno);
            }
            /* An unreadable folder: nothing under it may look deleted. */
            it->skip_reason = apr_psprintf(ctx->pool, "cannot be read (%s)",
                                           strerror(errno));
            continue;
        }
        while ((de = readdir(d)) != NULL) {
            const char *name = de->d_name, *rel;
            struct stat sb;
            sync_item_t *it;

            if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
                continue;
            }
            if (is_temp_name(name)) {
                /* Left by a run that died: never a user's file. */
                if (!ctx->opts->dry_run) {
                    unlinkat(dirfd(d), name, 0);
                }
                continue;
            }
            if (fstatat(dirfd(d), name, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
                if (errno == ENOENT) {
                    continue;           /* gone meanwhile */
                }
                rel = *dir ? apr_pstrcat(ctx->pool, dir, "/", name, NULL)
                           : apr_pstrdup(ctx->pool, name);
                it = sync_item_get(ctx, rel);
                it->local.other = 1;
                it->skip_reason = apr_psprintf(ctx->pool, "cannot be read "
                                               "(%s)", strerror(errno));
                continue;
            }
            if (*dir == '\0') {
                (*entries)++;
            }
            rel = *dir ? apr_pstrcat(ctx->pool, dir, "/", name, NULL)
                       : apr_pstrdup(ctx->pool, name);
            it = sync_item_get(ctx, rel);
            fill_identity(&it->local, &sb);
            if (S_ISLNK(sb.st_mode)) {
                it->skip_reason = "a symbolic link (never followed)";
                continue;
            }
            if (it->local.other) {
                it->skip_reason = "not a regular file or folder";
                continue;
            }
            if (it->local.kind == SYNC_DIR) {
                APR_ARRAY_PUSH(dirs, const char *) = it->path;
                continue;
            }
            if (it->has_base && same_as_base(&it->local, &it->base)
                && it->base.has_sha) {
                it->local.unchanged = 1;
                it->local.has_sha = 1;
                memcpy(it->local.sha, it->base.sha, SHA_LEN);
                continue;
            }
            {
                apr_status_t rv = sync_local_hash(ctx, rel, &it->local,
                                                  ctx->pool);

                if (rv == APR_EAGAIN) {
                    rv = sync_local_hash(ctx, rel, &it->local, ctx->pool);
                }
                if (rv != APR_SUCCESS) {
                    char ebuf[120];

                    it->local.has_sha = 0;
                    it->skip_reason = rv == APR_EAGAIN
                        ? "changes while it is read (synced next time)"
                        : apr_psprintf(ctx->pool, "cannot be read (%s)",
                                       apr_strerror(rv, ebuf, sizeof(ebuf)));
                }
            }
        }
        closedir(d);
        apr_pool_clear(iter);
    }
    apr_pool_destroy(iter);
    return APR_SUCCESS;
}

/* ---- writing --------------------------------------------------------------------- */

apr_status_t sync_local_prepare_parent(sync_ctx_t *ctx, const char *rel,
                                       const char **why, apr_pool_t *pool)
{
    const char *slash;
    const char *p = rel;

    /* Every folder on the way, from the root down. */
    while ((slash = strchr(p, '/')) != NULL) {
        const char *dir = apr_pstrmemdup(pool, rel, (apr_size_t)(slash - rel));
        const char *abs = sync_local_path(ctx, dir, pool);
        struct stat sb;

        if (lstat(abs, &sb) != 0) {
            if (errno != ENOENT || mkdir(abs, 0777) != 0) {
                *why = apr_psprintf(pool, "cannot create the folder %s: %s",
                                    dir, strerror(errno));
                return APR_FROM_OS_ERROR(errno);
            }
        }
        else if (!S_ISDIR(sb.st_mode)) {
            *why = apr_psprintf(pool, "%s is %s, not a folder", dir,
                                S_ISLNK(sb.st_mode)
                                ? "a symbolic link (never followed)"
                                : "a file");
            return APR_ENOTDIR;
        }
        p = slash + 1;
    }
    return APR_SUCCESS;
}

apr_status_t sync_local_temp(sync_ctx_t *ctx, const char *rel,
                             apr_file_t **f, const char **tmp_path,
                             apr_pool_t *pool)
{
    const char *parent = sync_path_parent(rel, pool);
    char *tmpl = apr_pstrcat(pool, sync_local_path(ctx, parent, pool),
                             "/" SYNC_TMP_PREFIX "XXXXXX", NULL);
    apr_status_t rv = apr_file_mktemp(f, tmpl,
                                      APR_FOPEN_CREATE | APR_FOPEN_READ
                                      | APR_FOPEN_WRITE | APR_FOPEN_EXCL
                                      | APR_FOPEN_BINARY, pool);

    if (rv == APR_SUCCESS) {
        apr_os_file_t fd;
        mode_t um = umask(0);

        umask(um);
        apr_os_file_get(&fd, *f);
        /* mkstemp makes 0600; a synced file gets the usual mode. */
        fchmod(fd, 0666 & ~um);
        *tmp_path = tmpl;
    }
    return rv;
}

int sync_local_bad_name(apr_status_t rv)
{
    return rv == APR_FROM_OS_ERROR(ENAMETOOLONG)
           || rv == APR_FROM_OS_ERROR(EINVAL)
           || rv == APR_FROM_OS_ERROR(EILSEQ)
           || rv == APR_FROM_OS_ERROR(EPERM);
}

apr_status_t sync_local_commit(sync_ctx_t *ctx, const char *tmp_path,
                               const char *rel, const sync_local_t *expect,
                               sync_local_t *now, const char **why,
                               apr_pool_t *pool)
{
    const char *abs = sync_local_path(ctx, rel, pool);
    sync_local_t cur;
    apr_status_t rv;
    int fd;

    /* Durable before it is visible. */
    fd = open(tmp_path, O_RDONLY);
    if (fd >= 0) {
        fdatasync(fd);
        close(fd);
    }
    if ((rv = sync_local_stat(ctx, rel, &cur, pool)) != APR_SUCCESS) {
        unlink(tmp_path);
        *why = "cannot look at it";
        return rv;
    }
    if (expect->kind == SYNC_NONE) {
        if (cur.kind != SYNC_NONE || cur.other) {
            unlink(tmp_path);
            *why = "something appeared there during the sync";
            return APR_EEXIST;
        }
        if (renameat2(AT_FDCWD, tmp_path, AT_FDCWD, abs, RENAME_NOREPLACE)
            != 0) {
            int e = errno;

            if (e == EINVAL || e == ENOSYS) {
                /* No RENAME_NOREPLACE here (some FUSE file systems):
                 * checked just above. */
                if (rename(tmp_path, abs) == 0) {
                    e = 0;
                }
                else {
                    e = errno;
                }
            }
            if (e != 0) {
                unlink(tmp_path);
                *why = e == EEXIST
                    ? "the name clashes with another entry of the folder "
                      "(the file system folds case or Unicode normalisation)"
                    : apr_psprintf(pool, "cannot create it: %s", strerror(e));
                return APR_FROM_OS_ERROR(e);
            }
        }
    }
    else {
        if (!sync_local_same(&cur, expect)) {
            unlink(tmp_path);
            *why = "it changed during the sync (synced next time)";
            return APR_EAGAIN;
        }
        if (rename(tmp_path, abs) != 0) {
            int e = errno;

            unlink(tmp_path);
            *why = apr_psprintf(pool, "cannot replace it: %s", strerror(e));
            return APR_FROM_OS_ERROR(e);
        }
    }
    if (now) {
        sync_local_stat(ctx, rel, now, pool);
    }
    return APR_SUCCESS;
}

apr_status_t sync_local_rename(sync_ctx_t *ctx, const char *from,
                               const char *to, apr_pool_t *pool)
{
    const char *a = sync_local_path(ctx, from, pool);
    const char *b = sync_local_path(ctx, to, pool);
    struct stat sb;

    if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_NOREPLACE) == 0) {
        return APR_SUCCESS;
    }
    if (errno != EINVAL && errno != ENOSYS) {
        return APR_FROM_OS_ERROR(errno);
    }
    if (lstat(b, &sb) == 0) {
        return APR_EEXIST;
    }
    return rename(a, b) == 0 ? APR_SUCCESS : APR_FROM_OS_ERROR(errno);
}

const char *sync_local_conflict_name(sync_ctx_t *ctx, const char *rel,
                                     apr_pool_t *pool)
{
    const char *slash = strrchr(rel, '/');
    const char *base = slash ? slash + 1 : rel;
    const char *dot = strrchr(base, '.');
    const char *stem, *ext;
    char host[256], when[32];
    time_t t = time(NULL);
    struct tm tm;
    int i;

    if (gethostname(host, sizeof(host)) != 0) {
        strcpy(host, "localhost");
    }
    host[sizeof(host) - 1] = '\0';
    for (i = 0; host[i]; i++) {
        if (host[i] == '/') {
            host[i] = '_';
        }
    }
    localtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H%M%S", &tm);
    if (dot && dot != base) {
        stem = apr_pstrmemdup(pool, rel, (apr_size_t)(dot - rel));
        ext = dot;
    }
    else {
        stem = rel;
        ext = "";
    }
    for (i = 1; i < 1000; i++) {
        const char *name = apr_psprintf(pool, "%s (conflict %s %s%s)%s", stem,
                                        when, host,
                                        i > 1 ? apr_psprintf(pool, " %d", i)
                                              : "", ext);
        sync_local_t l;

        if (sync_item_find(ctx, name) == NULL
            && sync_local_stat(ctx, name, &l, pool) == APR_SUCCESS
            && l.kind == SYNC_NONE && !l.other) {
            return name;
        }
    }
    return apr_psprintf(pool, "%s (conflict %s %s %d)%s", stem, when, host,
                        (int)getpid(), ext);
}
