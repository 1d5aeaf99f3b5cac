/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "iss_upload.h"
#include "iss_bytes.h"

#include "iss_digest.h"

#include <apr_general.h>
#include <apr_strings.h>

#include <stdlib.h>
#include <string.h>

#define SESSION_MAGIC "ISU1\n"
#define SESSION_NAME "session"
#define MANIFEST_NAME "manifest"
#define TMP_PREFIX ".tmp."
#define DEAD_PREFIX ".dead."
#define SESSION_MAX (60 * 1024)     /* user + path */
#define CHUNK_NAME_LEN (2 * ISS_DIGEST_SHA256_LEN)
#define RAND_BYTES (ISS_UPLOAD_ID_LEN / 2)
#define CREATE_TRIES 8
#define TREE_DEPTH 2                /* session dir > stray subdirectory */
#define DIR_PERMS (APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_UEXECUTE)
#define FILE_PERMS (APR_FPROT_UREAD | APR_FPROT_UWRITE)
#define STAT_WANTED (APR_FINFO_LINK | APR_FINFO_TYPE | APR_FINFO_SIZE \
                     | APR_FINFO_MTIME)

struct iss_upload_t {
    apr_pool_t *pool;
    const char *root, *id, *dir, *user, *path;
};

/* ---- small helpers ----------------------------------------------------- */

static int has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int is_dot(const char *name)
{
    return name[0] == '.' && (name[1] == '\0'
                              || (name[1] == '.' && name[2] == '\0'));
}

/* ENOENT or ENOTDIR on a session's path: the session does not exist. */
static apr_status_t gone(apr_status_t rv)
{
    return APR_STATUS_IS_ENOENT(rv) || APR_STATUS_IS_ENOTDIR(rv)
           ? APR_NOTFOUND : rv;
}

/* "@a prefix" + 32 random hex digits. */
static apr_status_t random_name(const char **name, const char *prefix,
                                apr_pool_t *pool)
{
    unsigned char r[RAND_BYTES];
    char hex[2 * RAND_BYTES + 1];
    apr_status_t rv = apr_generate_random_bytes(r, sizeof(r));

    if (rv == APR_SUCCESS) {
        iss_hex_encode(hex, r, sizeof(r));
        *name = apr_pstrcat(pool, prefix, hex, NULL);
    }
    return rv;
}

/* lstat that accepts APR_INCOMPLETE when the fields we need came back. */
static apr_status_t lstat_path(apr_finfo_t *fi, const char *path,
                               apr_pool_t *pool)
{
    apr_status_t rv = apr_stat(fi, path, STAT_WANTED, pool);

    if (rv == APR_INCOMPLETE) {
        rv = (fi->valid & (APR_FINFO_TYPE | APR_FINFO_SIZE | APR_FINFO_MTIME))
             == (APR_FINFO_TYPE | APR_FINFO_SIZE | APR_FINFO_MTIME)
             ? APR_SUCCESS : APR_ENOTIMPL;
    }
    return rv;
}

/* Write @a len bytes as @a dir/@a name: a temporary file in @a dir,
 * flushed, then renamed over @a name.  On failure the temporary file is
 * removed (when its path still names it). */
static apr_status_t write_atomic(const char *dir, const char *name,
                                 const void *data, apr_size_t len,
                                 apr_pool_t *pool)
{
    const char *tmp;
    apr_file_t *f;
    apr_status_t rv, cr;

    if ((rv = random_name(&tmp, TMP_PREFIX, pool)) != APR_SUCCESS) {
        return rv;
    }
    tmp = apr_pstrcat(pool, dir, "/", tmp, NULL);
    rv = apr_file_open(&f, tmp, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                       | APR_FOPEN_EXCL | APR_FOPEN_BINARY, FILE_PERMS, pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (len > 0) {
        rv = apr_file_write_full(f, data, len, NULL);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_file_datasync(f);
    }
    cr = apr_file_close(f);
    if (rv == APR_SUCCESS) {
        rv = cr;
    }
    if (rv == APR_SUCCESS) {
        rv = apr_file_rename(tmp, apr_pstrcat(pool, dir, "/", name, NULL),
                             pool);
    }
    if (rv != APR_SUCCESS) {
        apr_file_remove(tmp, pool);
    }
    return rv;
}

/* Read a whole regular file of at most @a max bytes (APR_EINVAL if
 * larger or not a regular file), NUL-terminated; optionally its mtime. */
static apr_status_t read_whole(const char *path, apr_off_t max, void **buf,
                               apr_size_t *len, apr_time_t *mtime,
                               apr_pool_t *pool)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;
    char *b = NULL;
    apr_size_t n = 0;

    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0, pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = apr_file_info_get(&fi, APR_FINFO_TYPE | APR_FINFO_SIZE
                           | APR_FINFO_MTIME, f);
    if (rv == APR_SUCCESS && (fi.filetype != APR_REG || fi.size < 0
                              || fi.size > max
                              || (apr_uint64_t)fi.size >= APR_SIZE_MAX)) {
        rv = APR_EINVAL;
    }
    if (rv == APR_SUCCESS) {
        n = (apr_size_t)fi.size;
        b = apr_palloc(pool, n + 1);
        if (n > 0) {
            /* The file is never written in place (only renamed over), so
             * the size read above is its size. */
            rv = apr_file_read_full(f, b, n, NULL);
        }
    }
    apr_file_close(f);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    if (mtime) {
        *mtime = fi.mtime;
    }
    return APR_SUCCESS;
}

/* Read and parse @a dir/session.  APR_NOTFOUND if missing or damaged. */
static apr_status_t read_session(const char *dir, const char **user,
                                 const char **path, apr_time_t *mtime,
                                 apr_pool_t *pool)
{
    const apr_size_t ml = sizeof(SESSION_MAGIC) - 1;
    void *buf;
    apr_size_t len;
    const char *s, *nl;
    apr_status_t rv;

    rv = read_whole(apr_pstrcat(pool, dir, "/" SESSION_NAME, NULL),
                    SESSION_MAX + 64, &buf, &len, mtime, pool);
    if (rv != APR_SUCCESS) {
        return APR_STATUS_IS_EINVAL(rv) || APR_STATUS_IS_EOF(rv)
               ? APR_NOTFOUND : gone(rv);
    }
    s = buf;
    if (len < ml + 2 || memcmp(s, SESSION_MAGIC, ml) != 0
        || memchr(s, '\0', len) != NULL || s[len - 1] != '\n') {
        return APR_NOTFOUND;
    }
    nl = memchr(s + ml, '\n', len - ml);
    if (nl == s + len - 1) {        /* one line only */
        return APR_NOTFOUND;
    }
    if (memchr(nl + 1, '\n', (apr_size_t)(s + len - 1 - (nl + 1))) != NULL) {
        return APR_NOTFOUND;        /* more than two lines */
    }
    *user = apr_pstrmemdup(pool, s + ml, (apr_size_t)(nl - (s + ml)));
    *path = apr_pstrmemdup(pool, nl + 1, (apr_size_t)(s + len - 1 - (nl + 1)));
    return APR_SUCCESS;
}

/* Record @a rv in *first unless an error is there already (success and
 * ENOENT, something gone already, are no errors here). */
static void keep_first(apr_status_t *first, apr_status_t rv)
{
    if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOENT(rv)
        && *first == APR_SUCCESS) {
        *first = rv;
    }
}

/* What walk_dir() calls for the entry @a name of the directory, @a path
 * being "<directory>/@a name"; @a name, @a path and what @a pool holds
 * last until the next entry only. */
typedef apr_status_t entry_fn(void *baton, const char *name,
                              const char *path, apr_pool_t *pool);

/* Call @a fn for every entry of @a dir but "." and "..", with a sub-pool
 * of @a pool cleared per entry; the walk stops at the first status other
 * than APR_SUCCESS @a fn returns.  Returns APR_SUCCESS (the walk done or
 * stopped by an ENOENT status), the error that stopped it (@a fn's or
 * reading @a dir's), or an error of creating a pool or opening @a dir as
 * is (ENOENT included): then *opened, when @a opened is not NULL, is 0
 * (otherwise 1). */
static apr_status_t walk_dir(const char *dir, entry_fn *fn, void *baton,
                             int *opened, apr_pool_t *pool)
{
    apr_pool_t *p, *ep;
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_status_t rv;

    if (opened) {
        *opened = 0;
    }
    if ((rv = apr_pool_create(&p, pool)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = apr_dir_open(&d, dir, p)) != APR_SUCCESS) {
        apr_pool_destroy(p);
        return rv;
    }
    if ((rv = apr_pool_create(&ep, p)) != APR_SUCCESS) {
        apr_dir_close(d);
        apr_pool_destroy(p);
        return rv;
    }
    if (opened) {
        *opened = 1;
    }
    while ((rv = apr_dir_read(&fi, APR_FINFO_NAME, d)) == APR_SUCCESS
           || rv == APR_INCOMPLETE) {
        if (is_dot(fi.name)) {
            continue;
        }
        apr_pool_clear(ep);
        rv = fn(baton, fi.name, apr_pstrcat(ep, dir, "/", fi.name, NULL), ep);
        if (rv != APR_SUCCESS) {
            break;
        }
    }
    apr_dir_close(d);
    apr_pool_destroy(p);
    return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
}

typedef struct rm_t {
    int depth;
    apr_uint64_t *freed;
    apr_status_t first;
} rm_t;

static apr_status_t rm_tree(const char *path, int depth, apr_uint64_t *freed,
                            apr_pool_t *pool);

static apr_status_t rm_entry(void *baton, const char *name, const char *path,
                             apr_pool_t *pool)
{
    rm_t *t = baton;
    apr_finfo_t st;
    apr_status_t rv;

    if ((rv = lstat_path(&st, path, pool)) != APR_SUCCESS) {
        /* vanished meanwhile, or cannot be looked at */
    }
    else if (st.filetype == APR_DIR) {
        rv = t->depth > 0 ? rm_tree(path, t->depth - 1, t->freed, pool)
                          : APR_ENOTEMPTY;
    }
    else if ((rv = apr_file_remove(path, pool)) == APR_SUCCESS) {
        *t->freed += (apr_uint64_t)st.size;
    }
    keep_first(&t->first, rv);
    return APR_SUCCESS;
}

/* Delete @a path (a file, or a directory with what it holds, down to
 * @a depth levels of subdirectories), adding the sizes of the files
 * deleted to *freed.  Entries already gone are fine; the first other
 * error is returned after trying everything else. */
static apr_status_t rm_tree(const char *path, int depth, apr_uint64_t *freed,
                            apr_pool_t *pool)
{
    rm_t t;
    apr_finfo_t st;
    apr_status_t rv;
    int opened;

    if ((rv = lstat_path(&st, path, pool)) != APR_SUCCESS) {
        return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    }
    if (st.filetype != APR_DIR) {
        rv = apr_file_remove(path, pool);
        if (rv == APR_SUCCESS) {
            *freed += (apr_uint64_t)st.size;
        }
        return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    }
    t.depth = depth;
    t.freed = freed;
    t.first = APR_SUCCESS;
    rv = walk_dir(path, rm_entry, &t, &opened, pool);
    if (!opened) {
        return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    }
    keep_first(&t.first, rv);
    keep_first(&t.first, apr_dir_remove(path, pool));
    return t.first;
}

/* Remove @a root/@a name: first renamed to a .dead.* name (from then on
 * no path of it exists), then deleted.  *buried = 1 when this call did
 * the rename (0: it was gone already). */
static apr_status_t bury(const char *root, const char *name, int *buried,
                         apr_uint64_t *freed, apr_pool_t *pool)
{
    const char *tomb;
    apr_status_t rv;

    *buried = 0;
    if ((rv = random_name(&tomb, DEAD_PREFIX, pool)) != APR_SUCCESS) {
        return rv;
    }
    tomb = apr_pstrcat(pool, root, "/", tomb, NULL);
    rv = apr_file_rename(apr_pstrcat(pool, root, "/", name, NULL), tomb,
                         pool);
    if (rv != APR_SUCCESS) {
        return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    }
    *buried = 1;
    rv = rm_tree(tomb, TREE_DEPTH, freed, pool);
    /* ENOTEMPTY: a writer racing with the removal dropped a temporary
     * file in after the scan; the next gc deletes it. */
    return APR_STATUS_IS_ENOTEMPTY(rv) ? APR_SUCCESS : rv;
}

static const char *chunk_path(const iss_upload_t *u,
                              const unsigned char sha[32], apr_pool_t *pool)
{
    char hex[CHUNK_NAME_LEN + 1];

    iss_hex_encode(hex, sha, ISS_DIGEST_SHA256_LEN);
    return apr_pstrcat(pool, u->dir, "/", hex, NULL);
}

/* ---- sessions ---------------------------------------------------------- */

apr_status_t iss_upload_create(iss_upload_t **u, const char *root,
                               const char *user, const char *path,
                               const void *manifest, apr_size_t mlen,
                               apr_pool_t *pool)
{
    iss_upload_t *nu;
    apr_pool_t *p;
    const char *id = NULL, *dir = NULL, *content;
    apr_status_t rv;
    apr_uint64_t ignored = 0;
    int i;

    if (user == NULL) {
        user = "";
    }
    if (root == NULL || path == NULL || strchr(user, '\n') != NULL
        || strchr(path, '\n') != NULL
        || strlen(user) + strlen(path) > SESSION_MAX
        || (manifest == NULL && mlen > 0)) {
        return APR_EINVAL;
    }
    rv = apr_dir_make(root, DIR_PERMS, pool);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_EEXIST(rv)) {
        return rv;
    }
    if ((rv = apr_pool_create(&p, pool)) != APR_SUCCESS) {
        return rv;
    }
    /* The id is the directory's name; mkdir is what makes it ours. */
    for (i = 0; i < CREATE_TRIES; i++) {
        if ((rv = random_name(&id, "", pool)) != APR_SUCCESS) {
            break;
        }
        dir = apr_pstrcat(pool, root, "/", id, NULL);
        rv = apr_dir_make(dir, DIR_PERMS, p);
        if (!APR_STATUS_IS_EEXIST(rv)) {
            break;
        }
    }
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(p);
        return rv;
    }
    content = apr_pstrcat(p, SESSION_MAGIC, user, "\n", path, "\n", NULL);
    /* The session file last: its rename is what makes the session. */
    rv = write_atomic(dir, MANIFEST_NAME, manifest, mlen, p);
    if (rv == APR_SUCCESS) {
        rv = write_atomic(dir, SESSION_NAME, content, strlen(content), p);
    }
    if (rv != APR_SUCCESS) {
        rm_tree(dir, TREE_DEPTH, &ignored, p);
        apr_pool_destroy(p);
        return gone(rv);
    }
    apr_pool_destroy(p);
    nu = apr_palloc(pool, sizeof(*nu));
    nu->pool = pool;
    nu->root = apr_pstrdup(pool, root);
    nu->id = id;
    nu->dir = dir;
    nu->user = apr_pstrdup(pool, user);
    nu->path = apr_pstrdup(pool, path);
    *u = nu;
    return APR_SUCCESS;
}

apr_status_t iss_upload_open(iss_upload_t **u, const char *root,
                             const char *id, apr_pool_t *pool)
{
    iss_upload_t *nu;
    const char *dir, *user, *path;
    apr_status_t rv;

    if (root == NULL || !iss_hex_is_lower(id, ISS_UPLOAD_ID_LEN)) {
        return APR_EINVAL;
    }
    dir = apr_pstrcat(pool, root, "/", id, NULL);
    if ((rv = read_session(dir, &user, &path, NULL, pool)) != APR_SUCCESS) {
        return rv;
    }
    nu = apr_palloc(pool, sizeof(*nu));
    nu->pool = pool;
    nu->root = apr_pstrdup(pool, root);
    nu->id = apr_pstrdup(pool, id);
    nu->dir = dir;
    nu->user = user;
    nu->path = path;
    *u = nu;
    return APR_SUCCESS;
}

const char *iss_upload_id(const iss_upload_t *u)
{
    return u->id;
}

const char *iss_upload_user(const iss_upload_t *u)
{
    return u->user;
}

const char *iss_upload_path(const iss_upload_t *u)
{
    return u->path;
}

apr_status_t iss_upload_manifest(iss_upload_t *u, void **buf,
                                 apr_size_t *len, apr_pool_t *pool)
{
    apr_status_t rv;

    rv = read_whole(apr_pstrcat(pool, u->dir, "/" MANIFEST_NAME, NULL),
                    APR_INT64_MAX, buf, len, NULL, pool);
    return gone(rv);
}

apr_status_t iss_upload_manifest_size(iss_upload_t *u, apr_uint64_t *size)
{
    apr_pool_t *p;
    apr_finfo_t fi;
    apr_status_t rv;

    *size = 0;
    if ((rv = apr_pool_create(&p, u->pool)) != APR_SUCCESS) {
        return rv;
    }
    rv = apr_stat(&fi, apr_pstrcat(p, u->dir, "/" MANIFEST_NAME, NULL),
                  APR_FINFO_SIZE | APR_FINFO_TYPE, p);
    if (rv == APR_SUCCESS && fi.filetype == APR_REG) {
        *size = (apr_uint64_t)fi.size;
    }
    else if (APR_STATUS_IS_ENOENT(rv)) {
        /* no manifest: the session is gone unless its directory is */
        rv = apr_stat(&fi, u->dir, APR_FINFO_TYPE, p);
    }
    apr_pool_destroy(p);
    return gone(rv);
}

/* Write the file @a name of the session (write_atomic), with scratch
 * memory of its own. */
static apr_status_t put_file(iss_upload_t *u, const char *name,
                             const void *buf, apr_size_t len)
{
    apr_pool_t *p;
    apr_status_t rv;

    if (buf == NULL && len > 0) {
        return APR_EINVAL;
    }
    if ((rv = apr_pool_create(&p, u->pool)) != APR_SUCCESS) {
        return rv;
    }
    rv = write_atomic(u->dir, name, buf, len, p);
    apr_pool_destroy(p);
    return gone(rv);
}

apr_status_t iss_upload_set_manifest(iss_upload_t *u, const void *buf,
                                     apr_size_t len)
{
    return put_file(u, MANIFEST_NAME, buf, len);
}

apr_status_t iss_upload_touch(iss_upload_t *u)
{
    apr_pool_t *p;
    apr_status_t rv;

    if ((rv = apr_pool_create(&p, u->pool)) != APR_SUCCESS) {
        return rv;
    }
    rv = apr_file_mtime_set(apr_pstrcat(p, u->dir, "/" SESSION_NAME, NULL),
                            apr_time_now(), p);
    apr_pool_destroy(p);
    return gone(rv);
}

int iss_upload_has(iss_upload_t *u, const unsigned char sha[32])
{
    apr_pool_t *p;
    apr_finfo_t fi;
    int found;

    if (apr_pool_create(&p, u->pool) != APR_SUCCESS) {
        return 0;
    }
    found = lstat_path(&fi, chunk_path(u, sha, p), p) == APR_SUCCESS
            && fi.filetype == APR_REG;
    apr_pool_destroy(p);
    return found;
}

apr_status_t iss_upload_put(iss_upload_t *u, const unsigned char sha[32],
                            const void *data, apr_size_t len)
{
    unsigned char got[ISS_DIGEST_SHA256_LEN];
    iss_digest_t *d;
    apr_pool_t *p;
    apr_status_t rv;

    if (data == NULL && len > 0) {
        return APR_EINVAL;
    }
    if ((rv = apr_pool_create(&p, u->pool)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = iss_digest_create(&d, p)) == APR_SUCCESS) {
        iss_digest_update(d, data, len);
        iss_digest_final(d, got);
    }
    apr_pool_destroy(p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (memcmp(got, sha, ISS_DIGEST_SHA256_LEN) != 0) {
        return ISS_UPLOAD_EMISMATCH;
    }
    return iss_upload_put_verified(u, sha, data, len);
}

apr_status_t iss_upload_put_verified(iss_upload_t *u,
                                     const unsigned char sha[32],
                                     const void *data, apr_size_t len)
{
    char hex[CHUNK_NAME_LEN + 1];

    if (data == NULL && len > 0) {
        return APR_EINVAL;
    }
    if (iss_upload_has(u, sha)) {
        return APR_SUCCESS;             /* staged already: idempotent */
    }
    /* A session removed before this point: the temporary file cannot be
     * created (ENOENT); removed while it is written: the rename fails
     * (ENOENT), the session's path being gone. */
    iss_hex_encode(hex, sha, ISS_DIGEST_SHA256_LEN);
    return put_file(u, hex, data, len);
}

apr_status_t iss_upload_open_chunk(iss_upload_t *u,
                                   const unsigned char sha[32],
                                   apr_file_t **f, apr_off_t *len,
                                   apr_pool_t *pool)
{
    apr_finfo_t fi;
    apr_file_t *nf;
    apr_status_t rv;

    rv = apr_file_open(&nf, chunk_path(u, sha, pool),
                       APR_FOPEN_READ | APR_FOPEN_BINARY, 0, pool);
    if (rv != APR_SUCCESS) {
        return gone(rv);
    }
    rv = apr_file_info_get(&fi, APR_FINFO_TYPE | APR_FINFO_SIZE, nf);
    if (rv == APR_SUCCESS && fi.filetype != APR_REG) {
        rv = APR_NOTFOUND;
    }
    if (rv != APR_SUCCESS) {
        apr_file_close(nf);
        return rv;
    }
    *f = nf;
    *len = fi.size;
    return APR_SUCCESS;
}

apr_status_t iss_upload_remove(iss_upload_t *u)
{
    apr_pool_t *p;
    apr_uint64_t freed = 0;
    apr_status_t rv;
    int buried;

    if ((rv = apr_pool_create(&p, u->pool)) != APR_SUCCESS) {
        return rv;
    }
    rv = bury(u->root, u->id, &buried, &freed, p);
    apr_pool_destroy(p);
    /* Once renamed away the session is gone; what could not be deleted
     * is left to iss_upload_gc(). */
    return buried ? APR_SUCCESS : rv;
}

/* ---- scans over ROOT --------------------------------------------------- */

static apr_status_t size_entry(void *baton, const char *name,
                               const char *path, apr_pool_t *pool)
{
    iss_upload_info_t *info = baton;
    int chunk = iss_hex_is_lower(name, CHUNK_NAME_LEN);
    apr_finfo_t st;
    apr_status_t rv;

    if (!chunk && strcmp(name, MANIFEST_NAME) != 0) {
        return APR_SUCCESS;
    }
    if ((rv = lstat_path(&st, path, pool)) != APR_SUCCESS) {
        return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    }
    if (st.filetype == APR_REG) {
        info->chunks += chunk;
        info->bytes += (apr_uint64_t)st.size;
    }
    return APR_SUCCESS;
}

/* Sizes of a session's chunks and manifest into @a info. */
static apr_status_t scan_session(const char *dir, iss_upload_info_t *info,
                                 apr_pool_t *pool)
{
    apr_status_t rv;
    int opened;

    info->chunks = 0;
    info->bytes = 0;
    rv = walk_dir(dir, size_entry, info, &opened, pool);
    return opened ? rv : gone(rv);
}

/* rm_tree() @a path if it was last modified before @a cutoff. */
static apr_status_t rm_if_older(const char *path, apr_time_t cutoff,
                                int depth, apr_uint64_t *freed,
                                apr_pool_t *pool)
{
    apr_finfo_t st;
    apr_status_t rv = lstat_path(&st, path, pool);

    if (rv == APR_SUCCESS && st.mtime < cutoff) {
        rv = rm_tree(path, depth, freed, pool);
    }
    return rv;
}

typedef struct sweep_t {
    apr_time_t cutoff;
    apr_uint64_t *freed;
    apr_status_t first;
} sweep_t;

static apr_status_t sweep_entry(void *baton, const char *name,
                                const char *path, apr_pool_t *pool)
{
    sweep_t *s = baton;

    if (has_prefix(name, TMP_PREFIX)) {
        keep_first(&s->first, rm_if_older(path, s->cutoff, 0, s->freed,
                                          pool));
    }
    return APR_SUCCESS;
}

/* Delete the .tmp.* files of @a dir last modified before @a cutoff. */
static apr_status_t sweep_tmp(const char *dir, apr_time_t cutoff,
                              apr_uint64_t *freed, apr_pool_t *pool)
{
    sweep_t s;

    s.cutoff = cutoff;
    s.freed = freed;
    s.first = APR_SUCCESS;
    keep_first(&s.first, walk_dir(dir, sweep_entry, &s, NULL, pool));
    return s.first;
}

typedef struct gc_t {
    const char *root;
    apr_time_t cutoff;
    apr_uint32_t removed;
    apr_uint64_t freed;
    apr_status_t first;
} gc_t;

static apr_status_t gc_entry(void *baton, const char *name, const char *path,
                             apr_pool_t *pool)
{
    gc_t *g = baton;
    const char *user, *target;
    apr_finfo_t st;
    apr_time_t touched;
    apr_status_t rv = APR_SUCCESS;
    int buried;

    if (has_prefix(name, DEAD_PREFIX)) {
        rv = rm_tree(path, TREE_DEPTH, &g->freed, pool);
    }
    else if (has_prefix(name, TMP_PREFIX)) {
        rv = rm_if_older(path, g->cutoff, TREE_DEPTH, &g->freed, pool);
    }
    else if (iss_hex_is_lower(name, ISS_UPLOAD_ID_LEN)) {
        rv = lstat_path(&st, path, pool);
        if (rv != APR_SUCCESS || st.filetype != APR_DIR) {
            /* vanished, or not ours */
        }
        else if ((rv = read_session(path, &user, &target, &touched, pool))
                 == APR_SUCCESS) {
            if (touched < g->cutoff) {
                rv = bury(g->root, name, &buried, &g->freed, pool);
                g->removed += buried;
            }
            else {
                rv = sweep_tmp(path, g->cutoff, &g->freed, pool);
            }
        }
        else if (rv == APR_NOTFOUND) {
            /* not (or no longer) a session: a create that died */
            rv = st.mtime < g->cutoff
                 ? bury(g->root, name, &buried, &g->freed, pool)
                 : APR_SUCCESS;
        }
    }
    keep_first(&g->first, rv);
    return APR_SUCCESS;
}

apr_status_t iss_upload_gc(const char *root, apr_interval_time_t max_idle,
                           apr_time_t now, apr_uint32_t *removed,
                           apr_uint64_t *freed, apr_pool_t *pool)
{
    gc_t g;

    g.root = root;
    g.cutoff = now - max_idle;
    g.removed = 0;
    g.freed = 0;
    g.first = APR_SUCCESS;
    keep_first(&g.first, walk_dir(root, gc_entry, &g, NULL, pool));
    if (removed) {
        *removed = g.removed;
    }
    if (freed) {
        *freed = g.freed;
    }
    return g.first;
}

typedef apr_status_t session_fn(void *baton, const iss_upload_info_t *info);

typedef struct each_t {
    session_fn *fn;
    void *baton;
} each_t;

static apr_status_t session_entry(void *baton, const char *name,
                                  const char *path, apr_pool_t *pool)
{
    each_t *e = baton;
    iss_upload_info_t info;
    apr_status_t rv;

    if (!iss_hex_is_lower(name, ISS_UPLOAD_ID_LEN)) {
        return APR_SUCCESS;
    }
    info.id = name;
    rv = read_session(path, &info.user, &info.path, &info.touched, pool);
    if (rv == APR_SUCCESS) {
        rv = scan_session(path, &info, pool);
    }
    if (rv == APR_SUCCESS) {
        rv = e->fn(e->baton, &info);
    }
    /* APR_NOTFOUND: not a session (now) */
    return rv == APR_NOTFOUND ? APR_SUCCESS : rv;
}

/* Call @a fn for every session of @a root, memory from a sub-pool
 * cleared per entry (so @a fn copies what it keeps). */
static apr_status_t each_session(const char *root, session_fn *fn,
                                 void *baton, apr_pool_t *pool)
{
    each_t e;
    apr_status_t rv;

    e.fn = fn;
    e.baton = baton;
    rv = walk_dir(root, session_entry, &e, NULL, pool);
    return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
}

static apr_status_t list_one(void *baton, const iss_upload_info_t *info)
{
    apr_array_header_t *a = baton;
    iss_upload_info_t *n = apr_array_push(a);

    n->id = apr_pstrdup(a->pool, info->id);
    n->user = apr_pstrdup(a->pool, info->user);
    n->path = apr_pstrdup(a->pool, info->path);
    n->touched = info->touched;
    n->chunks = info->chunks;
    n->bytes = info->bytes;
    return APR_SUCCESS;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const iss_upload_info_t *)a)->id,
                  ((const iss_upload_info_t *)b)->id);
}

apr_status_t iss_upload_list(const char *root, apr_array_header_t **infos,
                             apr_pool_t *pool)
{
    apr_array_header_t *a = apr_array_make(pool, 8, sizeof(iss_upload_info_t));
    apr_status_t rv = each_session(root, list_one, a, pool);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (a->nelts > 1) {
        qsort(a->elts, (size_t)a->nelts, sizeof(iss_upload_info_t), by_id);
    }
    *infos = a;
    return APR_SUCCESS;
}

typedef struct usage_t {
    apr_uint32_t sessions;
    apr_uint64_t bytes;
} usage_t;

static apr_status_t usage_one(void *baton, const iss_upload_info_t *info)
{
    usage_t *t = baton;

    t->sessions++;
    t->bytes += info->bytes;
    return APR_SUCCESS;
}

apr_status_t iss_upload_usage(const char *root, apr_uint32_t *sessions,
                              apr_uint64_t *bytes, apr_pool_t *pool)
{
    usage_t t = { 0, 0 };
    apr_status_t rv = each_session(root, usage_one, &t, pool);

    if (rv == APR_SUCCESS) {
        *sessions = t.sessions;
        *bytes = t.bytes;
    }
    return rv;
}
