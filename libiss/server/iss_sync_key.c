/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * The key of a state directory's sync tokens (iss_sync_log.h,
 * iss_sync_key_t): ISS_SYNC_KEY_FILE, one line
 *
 *   iss-token-key 1 <32 hex: the key> <16 hex: SHA-256 of the key, cut>
 *
 * mode 0600, written to a temporary file, fsync'ed, renamed into place,
 * the directory fsync'ed.  The check catches a truncated or garbled file.
 * Creation and repair happen under an exclusive lock of
 * ISS_SYNC_KEY_FILE ".lock", and the file is read again under it, so that
 * the processes of a server starting at once end up with one key.  A
 * reader that finds a good file takes no lock.
 */

#include "iss_sync_log.h"
#include "iss_bytes.h"

#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_strings.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>

#include <openssl/evp.h>

#define KEY_MAGIC "iss-token-key 1 "
#define KEY_LINE_LEN (sizeof(KEY_MAGIC) - 1 + 2 * ISS_SYNC_KEY_LEN + 1 + 16 + 1)

static int key_sum(char out[17], const iss_sync_key_t *key)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (!EVP_Digest(key->k, ISS_SYNC_KEY_LEN, md, &n, EVP_sha256(), NULL)
        || n < 8) {
        return 0;
    }
    iss_hex_encode(out, md, 8);
    return 1;
}

/* Read @a path: APR_SUCCESS, APR_ENOENT, ISS_STORE_EDAMAGED (*why) or
 * another error (*why). */
static apr_status_t read_key(iss_sync_key_t *key, const char *path,
                             apr_finfo_t *ident, const char **why,
                             apr_pool_t *p)
{
    char buf[KEY_LINE_LEN + 2], sum[17];
    apr_size_t n = sizeof(buf);
    apr_file_t *f;
    apr_status_t rv;
    const char *hex;

    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_OS_DEFAULT, p);
    if (APR_STATUS_IS_ENOENT(rv)) {
        *why = apr_psprintf(p, "%s does not exist", path);
        return APR_ENOENT;
    }
    if (rv != APR_SUCCESS) {
        *why = apr_psprintf(p, "cannot open %s: %pm", path, &rv);
        return rv;
    }
    rv = apr_file_read_full(f, buf, sizeof(buf), &n);
    if (ident != NULL
        && apr_file_info_get(ident, APR_FINFO_IDENT | APR_FINFO_MTIME
                             | APR_FINFO_SIZE | APR_FINFO_CTIME, f)
           != APR_SUCCESS) {
        memset(ident, 0, sizeof(*ident));
    }
    apr_file_close(f);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_EOF(rv)) {
        *why = apr_psprintf(p, "cannot read %s: %pm", path, &rv);
        return rv;
    }
    hex = buf + sizeof(KEY_MAGIC) - 1;
    if (n != KEY_LINE_LEN || memcmp(buf, KEY_MAGIC, sizeof(KEY_MAGIC) - 1)
        || buf[KEY_LINE_LEN - 1] != '\n'
        || hex[2 * ISS_SYNC_KEY_LEN] != ' '
        || !iss_hex_decode(key->k, ISS_SYNC_KEY_LEN, hex, 2 * ISS_SYNC_KEY_LEN)
        || !key_sum(sum, key)
        || memcmp(hex + 2 * ISS_SYNC_KEY_LEN + 1, sum, 16) != 0) {
        memset(key, 0, sizeof(*key));
        *why = apr_psprintf(p, "%s is damaged (not one line \"" KEY_MAGIC
                            "<key> <check>\" whose check matches)", path);
        return ISS_STORE_EDAMAGED;
    }
    return APR_SUCCESS;
}

/* A new random key in @a path, atomically and durably. */
static apr_status_t write_key(iss_sync_key_t *key, const char *dir,
                              const char *path, const char **why,
                              apr_pool_t *p)
{
    const char *tmp = apr_psprintf(p, "%s.tmp.%ld", path, (long)getpid());
    char line[KEY_LINE_LEN + 1], hex[2 * ISS_SYNC_KEY_LEN + 1], sum[17];
    apr_file_t *f;
    apr_status_t rv;
    int fd;

    if ((rv = apr_generate_random_bytes(key->k, ISS_SYNC_KEY_LEN))
        != APR_SUCCESS) {
        *why = apr_psprintf(p, "no random bytes for a new key: %pm", &rv);
        return rv;
    }
    iss_hex_encode(hex, key->k, ISS_SYNC_KEY_LEN);
    if (!key_sum(sum, key)) {
        *why = "SHA-256 failed";
        return APR_EGENERAL;
    }
    apr_snprintf(line, sizeof(line), KEY_MAGIC "%s %s\n", hex, sum);
    rv = apr_file_open(&f, tmp, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                       | APR_FOPEN_TRUNCATE | APR_FOPEN_BINARY,
                       APR_FPROT_UREAD | APR_FPROT_UWRITE, p);
    if (rv != APR_SUCCESS) {
        *why = apr_psprintf(p, "cannot create %s: %pm", tmp, &rv);
        return rv;
    }
    /* The umask cannot widen 0600, but an old file of that name may
     * have been wider. */
    apr_file_perms_set(tmp, APR_FPROT_UREAD | APR_FPROT_UWRITE);
    rv = apr_file_write_full(f, line, strlen(line), NULL);
    if (rv == APR_SUCCESS) {
        rv = apr_file_sync(f);
    }
    apr_file_close(f);
    if (rv == APR_SUCCESS) {
        rv = apr_file_rename(tmp, path, p);
    }
    if (rv != APR_SUCCESS) {
        *why = apr_psprintf(p, "cannot write %s: %pm", path, &rv);
        apr_file_remove(tmp, p);
        return rv;
    }
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY)) >= 0) {
        if (fsync(fd) != 0) {
            rv = APR_FROM_OS_ERROR(errno);
            *why = apr_psprintf(p, "cannot fsync %s: %pm", dir, &rv);
        }
        close(fd);
    }
    return rv;
}

apr_status_t iss_sync_key_load(iss_sync_key_t *key, const char *dir,
                               int create, int *made, apr_finfo_t *ident,
                               const char **why, apr_pool_t *pool)
{
    const char *path = apr_pstrcat(pool, dir, "/" ISS_SYNC_KEY_FILE, NULL);
    const char *lpath = apr_pstrcat(pool, path, ".lock", NULL);
    const char *first_why = NULL;
    apr_file_t *lock;
    apr_status_t rv;

    *made = 0;
    *why = NULL;
    rv = read_key(key, path, ident, why, pool);
    if (rv == APR_SUCCESS || !create
        || (rv != APR_ENOENT && rv != ISS_STORE_EDAMAGED)) {
        return rv;
    }
    rv = apr_file_open(&lock, lpath, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                       | APR_FOPEN_BINARY,
                       APR_FPROT_UREAD | APR_FPROT_UWRITE, pool);
    if (rv != APR_SUCCESS) {
        *why = apr_psprintf(pool, "cannot open %s: %pm", lpath, &rv);
        return rv;
    }
    if ((rv = apr_file_lock(lock, APR_FLOCK_EXCLUSIVE)) != APR_SUCCESS) {
        *why = apr_psprintf(pool, "cannot lock %s: %pm", lpath, &rv);
        apr_file_close(lock);
        return rv;
    }
    /* Another process may have made or repaired it meanwhile. */
    rv = read_key(key, path, ident, &first_why, pool);
    if (rv == APR_ENOENT || rv == ISS_STORE_EDAMAGED) {
        *made = rv == APR_ENOENT ? 1 : 2;
        *why = first_why;
        rv = write_key(key, dir, path, &first_why, pool);
        if (rv != APR_SUCCESS) {
            *made = 0;
            *why = first_why;
        }
        else if (ident != NULL
                 && apr_stat(ident, path, APR_FINFO_IDENT | APR_FINFO_MTIME
                             | APR_FINFO_SIZE | APR_FINFO_CTIME, pool)
                    != APR_SUCCESS) {
            /* Under the lock: nobody else replaces it meanwhile. */
            memset(ident, 0, sizeof(*ident));
        }
    }
    else if (rv != APR_SUCCESS) {
        *why = first_why;
    }
    apr_file_unlock(lock);
    apr_file_close(lock);
    return rv;
}

int iss_sync_key_changed(const char *dir, const apr_finfo_t *ident,
                         apr_pool_t *pool)
{
    apr_finfo_t now;

    if (apr_stat(&now, apr_pstrcat(pool, dir, "/" ISS_SYNC_KEY_FILE, NULL),
                 APR_FINFO_IDENT | APR_FINFO_MTIME | APR_FINFO_SIZE
                 | APR_FINFO_CTIME, pool) != APR_SUCCESS) {
        return 1;
    }
    return now.inode != ident->inode || now.device != ident->device
           || now.size != ident->size || now.mtime != ident->mtime
           || now.ctime != ident->ctime;
}
