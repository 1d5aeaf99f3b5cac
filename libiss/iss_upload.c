/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "iss_upload.h"

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

static void to_hex(char *out, const unsigned char *in, apr_size_t n)
{
    static const char digits[] = "0123456789abcdef";
    apr_size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}

/* Whether @a s is exactly @a n lowercase hex digits (a NUL inside stops
 * the check, being no hex digit). */
static int is_hex(const char *s, apr_size_t n)
{
    apr_size_t i;

    if (s == NULL) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return s[n] == '\0';
}

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
        to_hex(hex, r, sizeof(r));
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

/* Delete @a path (a file, or a directory with what it holds, down to
 * @a depth levels of subdirectories), adding the sizes of the files
 * deleted to *freed.  Entries already gone are fine; the first other
 * error is returned after trying everything else. */
static apr_status_t rm_tree(const char *path, int depth, apr_uint64_t *freed,
                            apr_pool_t *pool)
{
    apr_pool_t *p, *ep;
    apr_dir_t *d;
    apr_finfo_t fi, st;
    apr_status_t rv, first = APR_SUCCESS;

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
    if ((rv = apr_pool_create(&p, pool)) != APR_SUCCESS) {
        return rv;
    }
    rv = apr_dir_open(&d, path, p);
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(p);
        return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    }
    if ((rv = apr_pool_create(&ep, p)) != APR_SUCCESS) {
        apr_dir_close(d);
        apr_pool_destroy(p);
        return rv;
    }
    while ((rv = apr_dir_read(&fi, APR_FINFO_NAME, d)) == APR_SUCCESS
           || rv == APR_INCOMPLETE) {
        const char *sub;

        if (is_dot(fi.name)) {
            continue;
        }
        apr_pool_clear(ep);
        sub = apr_pstrcat(ep, path, "/", fi.name, NULL);
        if ((rv = lstat_path(&st, sub, ep)) != APR_SUCCESS) {
            /* vanished meanwhile, or cannot be looked at */
        }
        else if (st.filetype == APR_DIR) {
            rv = depth > 0 ? rm_tree(sub, depth - 1, freed, ep)
                           : APR_ENOTEMPTY;
        }
        else if ((rv = apr_file_remove(sub, ep)) == APR_SUCCESS) {
            *freed += (apr_uint64_t)st.size;
        }
        if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOENT(rv)
            && first == APR_SUCCESS) {
            first = rv;
        }
    }
    if (!APR_STATUS_IS_ENOENT(rv) && first == APR_SUCCESS) {
        first = rv;
    }
    apr_dir_close(d);
    rv = apr_dir_remove(path, p);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOENT(rv)
        && first == APR_SUCCESS) {
        first = rv;
    }
    apr_pool_destroy(p);
    return first;
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

    to_hex(hex, sha, ISS_DIGEST_SHA256_LEN);
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

    if (root == NULL || !is_hex(id, ISS_UPLOAD_ID_LEN)) {
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

apr_status_t iss_upload_set_manifest(iss_upload_t *u, const void *buf,
                                     apr_size_t len)
{
    apr_pool_t *p;
    apr_status_t rv;

    if (buf == NULL && len > 0) {
        return APR_EINVAL;
    }
    if ((rv = apr_pool_create(&p, u->pool)) != APR_SUCCESS) {
        return rv;
    }
    rv = write_atomic(u->dir, MANIFEST_NAME, buf, len, p);
    apr_pool_destroy(p);
    return gone(rv);
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
    char hex[CHUNK_NAME_LEN + 1];
    iss_digest_t *d;
    apr_pool_t *p;
    apr_status_t rv;

    if (data == NULL && len > 0) {
        return APR_EINVAL;
    }
    if ((rv = apr_pool_create(&p, u->pool)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = iss_digest_create(&d, p)) != APR_SUCCESS) {
        apr_pool_destroy(p);
        return rv;
    }
    iss_digest_update(d, data, len);
    iss_digest_final(d, got);
    if (memcmp(got, sha, ISS_DIGEST_SHA256_LEN) != 0) {
        rv = ISS_UPLOAD_EMISMATCH;
    }
    else if (!iss_upload_has(u, sha)) {
        /* A session removed before this point: the temporary file cannot
         * be created (ENOENT); removed while it is written: the rename
         * fails (ENOENT), the session's path being gone. */
        to_hex(hex, sha, ISS_DIGEST_SHA256_LEN);
        rv = gone(write_atomic(u->dir, hex, data, len, p));
    }
    apr_pool_destroy(p);
    return rv;
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

/* Sizes of a session's chunks and manifest. */
static apr_status_t scan_session(const char *dir, apr_uint32_t *chunks,
                                 apr_uint64_t *bytes, apr_pool_t *pool)
{
    apr_pool_t *p, *ep;
    apr_dir_t *d;
    apr_finfo_t fi, st;
    apr_status_t rv;

    *chunks = 0;
    *bytes = 0;
    if ((rv = apr_pool_create(&p, pool)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = apr_dir_open(&d, dir, p)) != APR_SUCCESS) {
        apr_pool_destroy(p);
        return gone(rv);
    }
    if ((rv = apr_pool_create(&ep, p)) != APR_SUCCESS) {
        apr_dir_close(d);
        apr_pool_destroy(p);
        return rv;
    }
    while ((rv = apr_dir_read(&fi, APR_FINFO_NAME, d)) == APR_SUCCESS
           || rv == APR_INCOMPLETE) {
        int chunk = is_hex(fi.name, CHUNK_NAME_LEN);

        if (!chunk && strcmp(fi.name, MANIFEST_NAME) != 0) {
            continue;
        }
        apr_pool_clear(ep);
        rv = lstat_path(&st, apr_pstrcat(ep, dir, "/", fi.name, NULL), ep);
        if (rv != APR_SUCCESS) {
            if (APR_STATUS_IS_ENOENT(rv)) {
                continue;
            }
            break;
        }
        if (st.filetype == APR_REG) {
            *chunks += chunk;
            *bytes += (apr_uint64_t)st.size;
        }
    }
    apr_dir_close(d);
    apr_pool_destroy(p);
    return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
}

/* Delete the .tmp.* files of @a dir last modified before @a cutoff. */
static apr_status_t sweep_tmp(const char *dir, apr_time_t cutoff,
                              apr_uint64_t *freed, apr_pool_t *pool)
{
    apr_pool_t *p, *ep;
    apr_dir_t *d;
    apr_finfo_t fi, st;
    apr_status_t rv, first = APR_SUCCESS;

    if ((rv = apr_pool_create(&p, pool)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = apr_dir_open(&d, dir, p)) != APR_SUCCESS) {
        apr_pool_destroy(p);
        return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    }
    if ((rv = apr_pool_create(&ep, p)) != APR_SUCCESS) {
        apr_dir_close(d);
        apr_pool_destroy(p);
        return rv;
    }
    while ((rv = apr_dir_read(&fi, APR_FINFO_NAME, d)) == APR_SUCCESS
           || rv == APR_INCOMPLETE) {
        const char *sub;
        apr_status_t r;

        if (!has_prefix(fi.name, TMP_PREFIX)) {
            continue;
        }
        apr_pool_clear(ep);
        sub = apr_pstrcat(ep, dir, "/", fi.name, NULL);
        r = lstat_path(&st, sub, ep);
        if (r == APR_SUCCESS && st.mtime < cutoff) {
            r = rm_tree(sub, 0, freed, ep);
        }
        if (r != APR_SUCCESS && !APR_STATUS_IS_ENOENT(r)
            && first == APR_SUCCESS) {
            first = r;
        }
    }
    if (!APR_STATUS_IS_ENOENT(rv) && first == APR_SUCCESS) {
        first = rv;
    }
    apr_dir_close(d);
    apr_pool_destroy(p);
    return first;
}

apr_status_t iss_upload_gc(const char *root, apr_interval_time_t max_idle,
                           apr_time_t now, apr_uint32_t *removed,
                           apr_uint64_t *freed, apr_pool_t *pool)
{
    const apr_time_t cutoff = now - max_idle;
    apr_pool_t *p, *ep;
    apr_dir_t *d;
    apr_finfo_t fi, st;
    apr_uint32_t nremoved = 0;
    apr_uint64_t nfreed = 0;
    apr_status_t rv, first = APR_SUCCESS;

    if ((rv = apr_pool_create(&p, pool)) != APR_SUCCESS) {
        return rv;
    }
    rv = apr_dir_open(&d, root, p);
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(p);
        if (APR_STATUS_IS_ENOENT(rv)) {
            rv = APR_SUCCESS;
        }
        goto out;
    }
    if ((rv = apr_pool_create(&ep, p)) != APR_SUCCESS) {
        apr_dir_close(d);
        apr_pool_destroy(p);
        goto out;
    }
    while ((rv = apr_dir_read(&fi, APR_FINFO_NAME, d)) == APR_SUCCESS
           || rv == APR_INCOMPLETE) {
        const char *name = fi.name, *sub, *user, *path;
        apr_time_t touched;
        apr_status_t r = APR_SUCCESS;
        int buried;

        if (is_dot(name)) {
            continue;
        }
        apr_pool_clear(ep);
        sub = apr_pstrcat(ep, root, "/", name, NULL);
        if (has_prefix(name, DEAD_PREFIX)) {
            r = rm_tree(sub, TREE_DEPTH, &nfreed, ep);
        }
        else if (has_prefix(name, TMP_PREFIX)) {
            r = lstat_path(&st, sub, ep);
            if (r == APR_SUCCESS && st.mtime < cutoff) {
                r = rm_tree(sub, TREE_DEPTH, &nfreed, ep);
            }
        }
        else if (is_hex(name, ISS_UPLOAD_ID_LEN)) {
            r = lstat_path(&st, sub, ep);
            if (r != APR_SUCCESS || st.filetype != APR_DIR) {
                /* vanished, or not ours */
            }
            else if ((r = read_session(sub, &user, &path, &touched, ep))
                     == APR_SUCCESS) {
                if (touched < cutoff) {
                    r = bury(root, name, &buried, &nfreed, ep);
                    nremoved += buried;
                }
                else {
                    r = sweep_tmp(sub, cutoff, &nfreed, ep);
                }
            }
            else if (r == APR_NOTFOUND) {
                /* not (or no longer) a session: a create that died */
                r = st.mtime < cutoff ? bury(root, name, &buried, &nfreed, ep)
                                      : APR_SUCCESS;
            }
        }
        if (r != APR_SUCCESS && !APR_STATUS_IS_ENOENT(r)
            && first == APR_SUCCESS) {
            first = r;
        }
    }
    if (!APR_STATUS_IS_ENOENT(rv) && first == APR_SUCCESS) {
        first = rv;
    }
    apr_dir_close(d);
    apr_pool_destroy(p);
    rv = first;
out:
    if (removed) {
        *removed = nremoved;
    }
    if (freed) {
        *freed = nfreed;
    }
    return rv;
}

typedef apr_status_t session_fn(void *baton, const iss_upload_info_t *info);

/* Call @a fn for every session of @a root, memory from a sub-pool
 * cleared per entry (so @a fn copies what it keeps). */
static apr_status_t each_session(const char *root, session_fn *fn,
                                 void *baton, apr_pool_t *pool)
{
    apr_pool_t *p, *ep;
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_status_t rv;

    if ((rv = apr_pool_create(&p, pool)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = apr_dir_open(&d, root, p)) != APR_SUCCESS) {
        apr_pool_destroy(p);
        return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    }
    if ((rv = apr_pool_create(&ep, p)) != APR_SUCCESS) {
        apr_dir_close(d);
        apr_pool_destroy(p);
        return rv;
    }
    while ((rv = apr_dir_read(&fi, APR_FINFO_NAME, d)) == APR_SUCCESS
           || rv == APR_INCOMPLETE) {
        iss_upload_info_t info;
        const char *dir;

        if (!is_hex(fi.name, ISS_UPLOAD_ID_LEN)) {
            continue;
        }
        apr_pool_clear(ep);
        dir = apr_pstrcat(ep, root, "/", fi.name, NULL);
        info.id = fi.name;
        rv = read_session(dir, &info.user, &info.path, &info.touched, ep);
        if (rv == APR_SUCCESS) {
            rv = scan_session(dir, &info.chunks, &info.bytes, ep);
        }
        if (rv == APR_SUCCESS) {
            rv = fn(baton, &info);
        }
        if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
            break;                  /* APR_NOTFOUND: not a session (now) */
        }
    }
    apr_dir_close(d);
    apr_pool_destroy(p);
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
