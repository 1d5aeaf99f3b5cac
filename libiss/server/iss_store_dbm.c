/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * iss_store_dbm.c - the state store's access to apr_dbm: the files of a
 * DBM (existence, removal, fsync), handles (open, fetch, store, delete,
 * close; errors of the DBM libraries turned into APR codes and messages)
 * and iteration over the DBM keys, sdbm through its own walker.  Records
 * are opaque bytes here; their format is in iss_store_record.c.
 */

#include "iss_store_private.h"

#include <apr_file_info.h>
#include <apr_strings.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- errors of the DBM libraries ---------------------------------------- */

/* gdbm and Berkeley DB report APR_OS_START_USEERR + their own code, the
 * range ISS_STORE_E* live in; never let such a code escape as is. */
apr_status_t iss_store__dbm_status(iss_store_t *s, apr_status_t rv)
{
    if (rv >= APR_OS_START_USERERR
        && rv < APR_OS_START_USERERR + APR_OS_ERRSPACE_SIZE) {
        int code = (int)(rv - APR_OS_START_USERERR);

        /* Berkeley DB passes errno values through unchanged. */
        if (strcmp(s->type, "db") == 0 && code > 0 && code < 1000)
            return APR_FROM_OS_ERROR(code);
        return APR_EGENERAL;
    }
    return rv;
}

static const char *status_text(iss_store_t *s, apr_status_t rv, char *buf,
                               apr_size_t size)
{
    if (rv >= APR_OS_START_USERERR
        && rv < APR_OS_START_USERERR + APR_OS_ERRSPACE_SIZE)
        apr_snprintf(buf, size, "%s error %d", s->type,
                     (int)(rv - APR_OS_START_USERERR));
    else
        apr_strerror(rv, buf, size);
    return buf;
}

/* ---- files -------------------------------------------------------------- */

int iss_store__file_exists(const char *path, apr_pool_t *p)
{
    apr_finfo_t fi;
    apr_status_t rv = apr_stat(&fi, path, APR_FINFO_TYPE, p);

    return rv == APR_SUCCESS || rv == APR_INCOMPLETE;
}

apr_status_t iss_store__remove_file(iss_store_t *s, const char *path,
                                    apr_pool_t *p)
{
    apr_status_t rv = apr_file_remove(path, p);

    if (rv != APR_SUCCESS && !APR_STATUS_IS_ENOENT(rv))
        return iss_store__fail(s, rv, "cannot remove %s: %pm", path, &rv);
    return APR_SUCCESS;
}

/* ---- DBM handles -------------------------------------------------------- */

static apr_status_t dbm_files(iss_store_t *s, apr_pool_t *p, const char *path,
                              const char **f1, const char **f2)
{
    apr_status_t rv = apr_dbm_get_usednames_ex(p, s->type, path, f1, f2);

    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "DBM type %s is not available: %pm",
                               s->type, &rv);
    return APR_SUCCESS;
}

int iss_store__dbm_exists(iss_store_t *s, apr_pool_t *p, const char *path)
{
    const char *f1, *f2;

    if (dbm_files(s, p, path, &f1, &f2) != APR_SUCCESS)
        return 0;
    return iss_store__file_exists(f1, p)
           || (f2 && iss_store__file_exists(f2, p));
}

/* Remove a DBM's files, including the temporary file of a Berkeley DB
 * creation that died: while "__db.NAME" exists, creating NAME waits for
 * the other creator forever. */
apr_status_t iss_store__remove_dbm(iss_store_t *s, apr_pool_t *p,
                                   const char *path)
{
    const char *f1, *f2, *base = strrchr(path, '/');
    apr_status_t rv = dbm_files(s, p, path, &f1, &f2);

    if (rv == APR_SUCCESS)
        rv = iss_store__remove_file(s, f1, p);
    if (rv == APR_SUCCESS && f2)
        rv = iss_store__remove_file(s, f2, p);
    if (rv == APR_SUCCESS && base)
        rv = iss_store__remove_file(s, apr_pstrcat(p, s->dir,
                                                   "/" BDB_TMP_PREFIX,
                                                   base + 1, NULL), p);
    return rv;
}

static apr_status_t sync_path(iss_store_t *s, const char *path, apr_pool_t *p)
{
    apr_file_t *f;
    apr_status_t rv;

    if (s->nosync)
        return APR_SUCCESS;
    rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT, p);
    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "cannot open %s to sync it: %pm", path,
                               &rv);
    rv = apr_file_sync(f);
    apr_file_close(f);
    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "fsync of %s failed: %pm", path, &rv);
    return APR_SUCCESS;
}

apr_status_t iss_store__sync_dir(iss_store_t *s, apr_pool_t *p)
{
    return sync_path(s, s->dir, p);
}

/* Copy the file @a from over @a to (created 0640 if missing, cut to the
 * source's size), keeping holes (sdbm's .pag files are sparse), and fsync
 * it.  Written in place: the caller's marker says the copy is not to be
 * trusted until it is done. */
static apr_status_t copy_file(iss_store_t *s, const char *from, const char *to,
                              apr_pool_t *p)
{
    int in = open(from, O_RDONLY | O_CLOEXEC), out = -1;
    struct stat st;
    off_t data, hole = 0;
    char buf[64 * 1024];
    apr_status_t rv = APR_SUCCESS;

    if (in < 0) {
        rv = APR_FROM_OS_ERROR(errno);
        if (errno == ENOENT)
            return iss_store__remove_file(s, to, p);  /* sdbm .dir not made yet */
        return iss_store__fail(s, rv, "cannot open %s: %pm", from, &rv);
    }
    out = open(to, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    if (out < 0 || fstat(in, &st) != 0 || ftruncate(out, 0) != 0
        || ftruncate(out, st.st_size) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
        rv = iss_store__fail(s, rv, "cannot copy %s to %s: %pm", from, to,
                             &rv);
        goto done;
    }
    while (hole < st.st_size) {
        data = lseek(in, hole, SEEK_DATA);
        if (data < 0 && errno == ENXIO)
            break;                      /* a hole up to the end */
        if (data < 0) {
            data = hole;                /* no SEEK_DATA: copy everything */
            hole = st.st_size;
        }
        else if ((hole = lseek(in, data, SEEK_HOLE)) < 0) {
            hole = st.st_size;
        }
        while (data < hole) {
            size_t want = (size_t)(hole - data) < sizeof(buf)
                          ? (size_t)(hole - data) : sizeof(buf);
            ssize_t n = pread(in, buf, want, data), w = 0;

            while (n > 0 && w < n) {
                ssize_t k = pwrite(out, buf + w, (size_t)(n - w), data + w);

                if (k < 0)
                    break;
                w += k;
            }
            if (n <= 0 || w < n) {
                rv = n == 0 ? APR_FROM_OS_ERROR(EIO) : APR_FROM_OS_ERROR(errno);
                rv = iss_store__fail(s, rv, "cannot copy %s to %s: %pm", from,
                                     to, &rv);
                goto done;
            }
            data += n;
        }
    }
    if (!s->nosync && fsync(out) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
        rv = iss_store__fail(s, rv, "fsync of %s failed: %pm", to, &rv);
    }
done:
    if (out >= 0)
        close(out);
    close(in);
    return rv;
}

/* Make the DBM at @a to a byte copy of the DBM at @a from (both closed). */
apr_status_t iss_store__copy_dbm(iss_store_t *s, apr_pool_t *p,
                                 const char *from, const char *to)
{
    const char *f[2], *t[2];
    apr_status_t rv;
    int i;

    if ((rv = dbm_files(s, p, from, &f[0], &f[1])) != APR_SUCCESS
        || (rv = dbm_files(s, p, to, &t[0], &t[1])) != APR_SUCCESS)
        return rv;
    for (i = 0; i < 2 && rv == APR_SUCCESS; i++) {
        if (f[i] && t[i])
            rv = copy_file(s, f[i], t[i], p);
    }
    return rv;
}

apr_status_t iss_store__sync_dbm(iss_store_t *s, apr_pool_t *p,
                                 const char *path)
{
    const char *f1, *f2;
    apr_status_t rv = dbm_files(s, p, path, &f1, &f2);

    if (rv == APR_SUCCESS)
        rv = sync_path(s, f1, p);
    if (rv == APR_SUCCESS && f2)
        rv = sync_path(s, f2, p);
    return rv;
}

void iss_store__db_close(db_t *db)
{
    if (db) {
        if (db->sdbm)
            apr_sdbm_close(db->sdbm);
        else
            apr_dbm_close(db->dbm);
        apr_pool_destroy(db->pool);
    }
}

/*
 * sdbm is written through apr_sdbm, not apr_dbm.  apr-util's sdbm (1.6.3,
 * Debian 12's, and the releases before it) loses records when its
 * directory file (.dir: one bit per split page) grows by more than one
 * 4 KB block while a handle holds its lock: the bound of the directory
 * walk (maxbno) is set from the file's size when the lock is taken, and a
 * bit set past it raises it by one block only.  A split deep in the trie
 * (each level doubles the bit numbers) then stays out of reach of the
 * handle's later lookups and stores, which use its parent page: a record
 * stored there is found by no later handle (a copy of 54,723 records
 * lost two).  The store that splits is right (it follows the pages it
 * splits); so after each store whose split made the .dir file grow, the
 * handle's lock is released and taken again, which reads the size again.
 * (APR_SHARELOCK, a lock per call, does the same but drops sdbm's page
 * cache every time: twice the CPU of a checkpoint.)  Readers need none of
 * this: they open the DBM under the DBM lock, which no writer holds
 * meanwhile.
 */
static apr_status_t sdbm_open_writer(db_t *db, apr_int32_t mode)
{
    apr_int32_t flags = APR_FOPEN_READ | APR_FOPEN_WRITE;
    apr_finfo_t fi;
    apr_status_t rv;

    if (mode == APR_DBM_RWCREATE || mode == APR_DBM_RWTRUNC)
        flags |= APR_FOPEN_CREATE;
    if (mode == APR_DBM_RWTRUNC)
        flags |= APR_FOPEN_TRUNCATE;
    if ((rv = apr_sdbm_open(&db->sdbm, db->path, flags, FILE_PERMS, db->pool))
        != APR_SUCCESS) {
        db->sdbm = NULL;
        return rv;
    }
    rv = apr_file_open(&db->sdbm_dir,
                       apr_pstrcat(db->pool, db->path, APR_SDBM_DIRFEXT, NULL),
                       APR_FOPEN_READ, APR_OS_DEFAULT, db->pool);
    if (rv == APR_SUCCESS
        && (rv = apr_file_info_get(&fi, APR_FINFO_SIZE, db->sdbm_dir))
           == APR_SUCCESS)
        db->sdbm_dir_size = fi.size;
    if (rv != APR_SUCCESS) {
        apr_sdbm_close(db->sdbm);
        db->sdbm = NULL;
    }
    return rv;
}

/* @a n bytes at @a d as an apr_sdbm datum. */
static apr_sdbm_datum_t sdbm_datum(const char *d, apr_size_t n)
{
    apr_sdbm_datum_t x;

    x.dptr = (char *)d;
    x.dsize = (int)n;
    return x;
}

/* After a store: when the .dir file grew, the handle's lock again (see
 * sdbm_open_writer()). */
static apr_status_t sdbm_after_store(db_t *db)
{
    apr_finfo_t fi;
    apr_status_t rv = apr_file_info_get(&fi, APR_FINFO_SIZE, db->sdbm_dir);

    if (rv != APR_SUCCESS || fi.size == db->sdbm_dir_size)
        return rv;
    if ((rv = apr_sdbm_unlock(db->sdbm)) != APR_SUCCESS
        || (rv = apr_sdbm_lock(db->sdbm, APR_FLOCK_EXCLUSIVE)) != APR_SUCCESS)
        return rv;
    db->sdbm_dir_size = fi.size;
    return APR_SUCCESS;
}

apr_status_t iss_store__db_open(iss_store_t *s, const char *path,
                                apr_int32_t mode, apr_pool_t *parent,
                                db_t **out)
{
    apr_pool_t *p;
    apr_status_t rv;
    db_t *db;
    char eb[128];

    *out = NULL;
    rv = apr_pool_create(&p, parent);
    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "cannot create a pool: %pm", &rv);
    db = apr_pcalloc(p, sizeof(*db));
    db->s = s;
    db->pool = p;
    db->path = path;
    if (mode != APR_DBM_READONLY && strcmp(s->type, "sdbm") == 0)
        rv = sdbm_open_writer(db, mode);
    else
        rv = apr_dbm_open_ex(&db->dbm, s->type, path, mode, FILE_PERMS, p);
    if (rv == APR_SUCCESS) {
        *out = db;
        return APR_SUCCESS;
    }
    apr_pool_destroy(p);
    if (APR_STATUS_IS_EACCES(rv))
        return iss_store__fail(s, rv, "cannot open DBM %s: %pm", path, &rv);
    /* gdbm fails at once (GDBM_CANT_BE_READER/WRITER) while another
     * process has the file open for writing, or for reading when we
     * want to write. */
    if (strcmp(s->type, "gdbm") == 0
        && (rv == APR_OS_START_USERERR + 9 || rv == APR_OS_START_USERERR + 10))
        return iss_store__fail(s, APR_EAGAIN, "DBM %s is locked by another "
                               "process: every process using the state store "
                               "must share its mutex", path);
    if (mode != APR_DBM_RWCREATE && !iss_store__dbm_exists(s, parent, path))
        return iss_store__damaged(s, "DBM %s of the state store is missing",
                                  path);
    return iss_store__damaged(s, "cannot open DBM %s as type %s: %s", path,
                              s->type, status_text(s, rv, eb, sizeof(eb)));
}

/* Report a failed DBM call with the DBM's own message. */
static apr_status_t db_fail(db_t *db, apr_status_t rv, const char *what,
                            const char *dk, apr_size_t dklen, int is_damage)
{
    char msg[256], kb[128];
    int code = 0;

    msg[0] = '\0';
    if (db->dbm)
        apr_dbm_geterror(db->dbm, &code, msg, sizeof(msg));
    if (!msg[0])
        status_text(db->s, rv, msg, sizeof(msg));
    iss_store__show_dk(kb, sizeof(kb), dk, dklen);
    if (is_damage)
        return iss_store__damaged(db->s, "%s %s in %s failed: %s", what, kb,
                                  db->path, msg);
    return iss_store__fail(db->s, iss_store__dbm_status(db->s, rv),
                           "%s %s in %s failed: %s", what, kb, db->path, msg);
}

/* Fetch a raw record; *rec = NULL when absent.  The copy in @a p carries a
 * terminating NUL after *reclen bytes. */
apr_status_t iss_store__db_fetch(db_t *db, const char *dk, apr_size_t dklen,
                                 apr_pool_t *p, char **rec, apr_size_t *reclen)
{
    apr_datum_t k, v = { NULL, 0 };
    apr_status_t rv;

    *rec = NULL;
    *reclen = 0;
    k.dptr = (char *)dk;
    k.dsize = dklen;
    if (db->sdbm) {
        apr_sdbm_datum_t sv = { NULL, 0 };

        rv = apr_sdbm_fetch(db->sdbm, &sv, sdbm_datum(dk, dklen));
        v.dptr = sv.dptr;
        v.dsize = sv.dptr ? (apr_size_t)sv.dsize : 0;
    }
    else {
        rv = apr_dbm_fetch(db->dbm, k, &v);
    }
    if (rv != APR_SUCCESS)
        return db_fail(db, rv, "reading", dk, dklen, 1);
    if (!v.dptr)
        return APR_SUCCESS;
    *rec = apr_palloc(p, v.dsize + 1);
    iss_store__copy_bytes(*rec, v.dptr, v.dsize);
    (*rec)[v.dsize] = '\0';
    *reclen = v.dsize;
    if (db->dbm)
        apr_dbm_freedatum(db->dbm, v);
    return APR_SUCCESS;
}

apr_status_t iss_store__db_store(db_t *db, const char *dk, apr_size_t dklen,
                                 const char *rec, apr_size_t reclen)
{
    apr_datum_t k, v;
    apr_status_t rv;

    k.dptr = (char *)dk;
    k.dsize = dklen;
    v.dptr = (char *)rec;
    v.dsize = reclen;
    if (db->sdbm) {
        rv = apr_sdbm_store(db->sdbm, sdbm_datum(dk, dklen),
                            sdbm_datum(rec, reclen), APR_SDBM_REPLACE);
        if (rv == APR_SUCCESS)
            rv = sdbm_after_store(db);
    }
    else {
        rv = apr_dbm_store(db->dbm, k, v);
    }
    if (rv != APR_SUCCESS)
        return db_fail(db, rv, "writing", dk, dklen, 0);
    return APR_SUCCESS;
}

/* Whether @a dk is in the DBM (a failed read counts as absent). */
int iss_store__db_exists(db_t *db, const char *dk, apr_size_t dklen)
{
    apr_datum_t k;

    if (db->sdbm) {
        apr_sdbm_datum_t sv = { NULL, 0 };

        return apr_sdbm_fetch(db->sdbm, &sv, sdbm_datum(dk, dklen))
                   == APR_SUCCESS
               && sv.dptr != NULL;
    }
    k.dptr = (char *)dk;
    k.dsize = dklen;
    return apr_dbm_exists(db->dbm, k);
}

/* Delete if present (sdbm reports an error for absent keys). */
apr_status_t iss_store__db_delete(db_t *db, const char *dk, apr_size_t dklen)
{
    if (!iss_store__db_exists(db, dk, dklen))
        return APR_SUCCESS;
    return iss_store__db_delete_present(db, dk, dklen);
}

apr_status_t iss_store__db_delete_present(db_t *db, const char *dk,
                                          apr_size_t dklen)
{
    apr_datum_t k;
    apr_status_t rv;

    k.dptr = (char *)dk;
    k.dsize = dklen;
    if (db->sdbm)
        rv = apr_sdbm_delete(db->sdbm, sdbm_datum(dk, dklen));
    else
        rv = apr_dbm_delete(db->dbm, k);
    if (rv != APR_SUCCESS)
        return db_fail(db, rv, "deleting", dk, dklen, 0);
    return APR_SUCCESS;
}

/* ---- iteration over DBM keys -------------------------------------------- */

apr_status_t iss_store__iter_open(iss_store_t *s, db_t *db, apr_pool_t *p,
                                  iter_t **out)
{
    iter_t *it = apr_pcalloc(p, sizeof(*it));
    apr_status_t rv;

    it->s = s;
    it->db = db;
    if (strcmp(s->type, "sdbm") == 0) {
        rv = apr_sdbm_open(&it->sdbm, db->path,
                           APR_FOPEN_READ | APR_FOPEN_BUFFERED, FILE_PERMS, p);
        if (rv != APR_SUCCESS)
            return iss_store__damaged(s, "cannot open sdbm %s for iteration: "
                                      "%pm", db->path, &rv);
    }
    it->cap = 256;
    it->buf = apr_palloc(p, it->cap);
    *out = it;
    return APR_SUCCESS;
}

void iss_store__iter_close(iter_t *it)
{
    if (it && it->sdbm) {
        apr_sdbm_close(it->sdbm);
        it->sdbm = NULL;
    }
}

static void iter_keep(iter_t *it, apr_pool_t *p, const char *k, apr_size_t n)
{
    if (n + 1 > it->cap) {
        it->cap = n + 1;
        it->buf = apr_palloc(p, it->cap);
    }
    iss_store__copy_bytes(it->buf, k, n);
    it->len = n;
}

/* Next DBM key into *dk (valid until the next call), NULL at the end.
 * @a p must live as long as the iterator. */
apr_status_t iss_store__iter_next(iter_t *it, apr_pool_t *p, const char **dk,
                                  apr_size_t *dklen)
{
    apr_status_t rv;

    *dk = NULL;
    *dklen = 0;
    if (it->done)
        return APR_SUCCESS;
    if (it->sdbm) {
        apr_sdbm_datum_t kd = { NULL, 0 };

        rv = it->started ? apr_sdbm_nextkey(it->sdbm, &kd)
                         : apr_sdbm_firstkey(it->sdbm, &kd);
        it->started = 1;
        if (APR_STATUS_IS_EOF(rv) || (rv == APR_SUCCESS && !kd.dptr)) {
            it->done = 1;
            return APR_SUCCESS;
        }
        if (rv != APR_SUCCESS)
            return iss_store__damaged(it->s, "iterating over %s failed: %pm",
                                      it->db->path, &rv);
        iter_keep(it, p, kd.dptr, (apr_size_t)kd.dsize);
    }
    else {
        apr_datum_t old = it->cur;

        rv = it->started ? apr_dbm_nextkey(it->db->dbm, &it->cur)
                         : apr_dbm_firstkey(it->db->dbm, &it->cur);
        if (it->started && old.dptr)
            apr_dbm_freedatum(it->db->dbm, old);
        if (rv != APR_SUCCESS) {
            it->cur.dptr = NULL;
            it->done = 1;
            return db_fail(it->db, rv, "iterating after", it->buf, it->len, 1);
        }
        if (!it->cur.dptr) {
            it->done = 1;
            return APR_SUCCESS;
        }
        /* Berkeley DB's nextkey returns the same key when its cursor
         * fails; keys are unique, so a repeat means the walk is stuck. */
        if (it->started && it->cur.dsize == it->len
            && memcmp(it->cur.dptr, it->buf, it->len) == 0) {
            it->done = 1;
            return iss_store__damaged(it->s, "iterating over %s does not "
                                      "advance past a key: the DBM is damaged",
                                      it->db->path);
        }
        it->started = 1;
        iter_keep(it, p, it->cur.dptr, it->cur.dsize);
    }
    if (it->len == 0) {
        it->done = 1;
        return iss_store__damaged(it->s, "iterating over %s returned an empty "
                                  "key: the DBM is damaged", it->db->path);
    }
    *dk = it->buf;
    *dklen = it->len;
    return APR_SUCCESS;
}

/* Open the DBM at @a path read-only, with an iterator over its keys and a
 * sub-pool for per-key work; the caller closes *it and *db (either may be
 * set when this fails). */
apr_status_t iss_store__walk_open(iss_store_t *s, const char *path,
                                  apr_pool_t *p, db_t **db, iter_t **it,
                                  apr_pool_t **ip)
{
    apr_status_t rv;

    if ((rv = iss_store__db_open(s, path, APR_DBM_READONLY, p, db))
            != APR_SUCCESS
        || (rv = iss_store__iter_open(s, *db, p, it)) != APR_SUCCESS)
        return rv;
    if ((rv = apr_pool_create(ip, p)) != APR_SUCCESS)
        return iss_store__fail(s, rv, "cannot create a pool: %pm", &rv);
    return APR_SUCCESS;
}
