/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "sync_state.h"
#include "iss_bytes.h"

#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_time.h>

#include <errno.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

#define SCHEMA_VERSION "1"
#define TICK_USEC      (apr_time_from_sec(1))
#define TICK_WRITES    256

struct sync_state_t {
    sqlite3 *db;
    int readonly, in_txn, writes;
    apr_time_t txn_start;
    sqlite3_stmt *put, *del, *del_chunks, *add_chunk, *get_chunks,
                 *find_chunk, *find_sha, *up_get, *up_put, *up_del,
                 *meta_get, *meta_put;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT);"
    "CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY,"
    " kind INTEGER NOT NULL, etag TEXT, sha BLOB, size INTEGER,"
    " mtime_ns INTEGER, ctime_ns INTEGER, inode INTEGER);"
    "CREATE INDEX IF NOT EXISTS files_sha ON files(sha);"
    "CREATE TABLE IF NOT EXISTS chunks(path TEXT NOT NULL, off INTEGER NOT NULL,"
    " id BLOB NOT NULL, len INTEGER NOT NULL, PRIMARY KEY(path, off))"
    " WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS chunks_id ON chunks(id);"
    "CREATE TABLE IF NOT EXISTS uploads(path TEXT PRIMARY KEY,"
    " session TEXT NOT NULL, sha BLOB NOT NULL);";

static apr_status_t close_db(void *data)
{
    sync_state_t *st = data;
    sqlite3_stmt **s[] = { &st->put, &st->del, &st->del_chunks,
                           &st->add_chunk, &st->get_chunks, &st->find_chunk,
                           &st->find_sha, &st->up_get, &st->up_put,
                           &st->up_del, &st->meta_get, &st->meta_put };
    size_t i;

    for (i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        if (*s[i]) {
            sqlite3_finalize(*s[i]);
            *s[i] = NULL;
        }
    }
    if (st->db) {
        if (st->in_txn) {
            sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
        }
        sqlite3_close(st->db);
        st->db = NULL;
    }
    return APR_SUCCESS;
}

/* An id for the pair (or the folder alone): hex of a SHA-256 prefix. */
static const char *pair_id(const char *local_root, const char *url,
                           apr_pool_t *pool)
{
    iss_digest_t *d;
    unsigned char sha[SHA_LEN];

    if (iss_digest_create(&d, pool) != APR_SUCCESS) {
        return "state";
    }
    iss_digest_update(d, local_root, strlen(local_root));
    if (url) {
        iss_digest_update(d, "\n", 1);
        iss_digest_update(d, url, strlen(url));
    }
    iss_digest_final(d, sha);
    return iss_hex_pencode(sha, 12, pool);
}

static int prep(sync_state_t *st, sqlite3_stmt **s, const char *sql)
{
    return sqlite3_prepare_v2(st->db, sql, -1, s, NULL) == SQLITE_OK;
}

static apr_status_t mkdir_p(const char *dir, apr_pool_t *pool)
{
    apr_status_t rv = apr_dir_make_recursive(dir, APR_FPROT_OS_DEFAULT, pool);

    return rv == APR_SUCCESS || APR_STATUS_IS_EEXIST(rv) ? APR_SUCCESS : rv;
}

apr_status_t sync_state_open(sync_state_t **stp, const char *dir,
                             const char *local_root, const char *url,
                             int readonly, int *exists, const char **msg,
                             apr_pool_t *pool)
{
    sync_state_t *st = apr_pcalloc(pool, sizeof(*st));
    const char *path = apr_pstrcat(pool, dir, "/",
                                   pair_id(local_root, url, pool), ".db",
                                   NULL);
    struct stat sb;
    int flags, rc;
    const char *v;

    *exists = stat(path, &sb) == 0;
    st->readonly = readonly;
    *stp = st;
    if (readonly && !*exists) {
        return APR_SUCCESS;             /* an empty state */
    }
    if (!readonly && mkdir_p(dir, pool) != APR_SUCCESS) {
        *msg = apr_psprintf(pool, "cannot create the state directory %s: %s",
                            dir, strerror(errno));
        return APR_EGENERAL;
    }
    flags = readonly ? SQLITE_OPEN_READONLY
                     : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    rc = sqlite3_open_v2(path, &st->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    apr_pool_cleanup_register(pool, st, close_db, apr_pool_cleanup_null);
    if (rc != SQLITE_OK) {
        *msg = apr_psprintf(pool, "cannot open the state %s: %s", path,
                            st->db ? sqlite3_errmsg(st->db)
                                   : sqlite3_errstr(rc));
        return APR_EGENERAL;
    }
    sqlite3_busy_timeout(st->db, 10000);
    if (!readonly
        && (sqlite3_exec(st->db, "PRAGMA journal_mode=WAL;"
                         "PRAGMA synchronous=NORMAL;", NULL, NULL, NULL)
            != SQLITE_OK
            || sqlite3_exec(st->db, schema, NULL, NULL, NULL) != SQLITE_OK)) {
        *msg = apr_psprintf(pool, "cannot set up the state %s: %s", path,
                            sqlite3_errmsg(st->db));
        return APR_EGENERAL;
    }
    if (!prep(st, &st->put, "INSERT OR REPLACE INTO files(path, kind, etag,"
              " sha, size, mtime_ns, ctime_ns, inode)"
              " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
        || !prep(st, &st->del, "DELETE FROM files WHERE path = ?1")
        || !prep(st, &st->del_chunks, "DELETE FROM chunks WHERE path = ?1")
        || !prep(st, &st->add_chunk, "INSERT OR REPLACE INTO chunks(path, off,"
                 " id, len) VALUES(?1, ?2, ?3, ?4)")
        || !prep(st, &st->get_chunks, "SELECT id, len FROM chunks"
                 " WHERE path = ?1 ORDER BY off")
        || !prep(st, &st->find_chunk, "SELECT path, off, len FROM chunks"
                 " WHERE id = ?1 LIMIT ?2")
        || !prep(st, &st->find_sha, "SELECT path FROM files WHERE sha = ?1"
                 " AND kind = 1 LIMIT ?2")
        || !prep(st, &st->up_get, "SELECT session FROM uploads"
                 " WHERE path = ?1 AND sha = ?2")
        || !prep(st, &st->up_put, "INSERT OR REPLACE INTO uploads(path,"
                 " session, sha) VALUES(?1, ?2, ?3)")
        || !prep(st, &st->up_del, "DELETE FROM uploads WHERE path = ?1")
        || !prep(st, &st->meta_get, "SELECT v FROM meta WHERE k = ?1")
        || !prep(st, &st->meta_put, "INSERT OR REPLACE INTO meta(k, v)"
                 " VALUES(?1, ?2)")) {
        *msg = apr_psprintf(pool, "the state %s is not usable: %s", path,
                            sqlite3_errmsg(st->db));
        return APR_EGENERAL;
    }
    /* Pairing: a state is for one folder and one URL. */
    v = sync_state_meta(st, "version", pool);
    if (v && strcmp(v, SCHEMA_VERSION) != 0) {
        *msg = apr_psprintf(pool, "the state %s has version %s; this "
                            "iss-sync knows version " SCHEMA_VERSION, path, v);
        return APR_EGENERAL;
    }
    if (!readonly && v == NULL
        && (sync_state_set_meta(st, "version", SCHEMA_VERSION) != APR_SUCCESS
            || sync_state_set_meta(st, "local_root", local_root)
               != APR_SUCCESS
            || sync_state_set_meta(st, "url", url) != APR_SUCCESS)) {
        *msg = apr_psprintf(pool, "cannot write the state %s: %s", path,
                            sqlite3_errmsg(st->db));
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

/* ---- reading ---------------------------------------------------------------- */

const char *sync_state_meta(sync_state_t *st, const char *key,
                            apr_pool_t *pool)
{
    const char *v = NULL;

    if (st->db == NULL) {
        return NULL;
    }
    sqlite3_bind_text(st->meta_get, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st->meta_get) == SQLITE_ROW
        && sqlite3_column_text(st->meta_get, 0)) {
        v = apr_pstrdup(pool, (const char *)sqlite3_column_text(st->meta_get,
                                                                 0));
    }
    sqlite3_reset(st->meta_get);
    return v;
}

apr_status_t sync_state_load(sync_state_t *st, sync_ctx_t *ctx)
{
    sqlite3_stmt *s;
    int rc;

    if (st->db == NULL) {
        return APR_SUCCESS;
    }
    if (sqlite3_prepare_v2(st->db, "SELECT path, kind, etag, sha, size,"
                           " mtime_ns, ctime_ns, inode FROM files", -1, &s,
                           NULL) != SQLITE_OK) {
        return APR_EGENERAL;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        sync_item_t *it = sync_item_get(ctx, (const char *)
                                        sqlite3_column_text(s, 0));
        sync_base_t *b = &it->base;
        const void *sha = sqlite3_column_blob(s, 3);

        it->has_base = 1;
        b->kind = sqlite3_column_int(s, 1) == 1 ? SYNC_FILE : SYNC_DIR;
        if (sqlite3_column_text(s, 2)) {
            b->etag = apr_pstrdup(ctx->pool,
                                  (const char *)sqlite3_column_text(s, 2));
        }
        if (sha && sqlite3_column_bytes(s, 3) == SHA_LEN) {
            memcpy(b->sha, sha, SHA_LEN);
            b->has_sha = 1;
        }
        b->size = sqlite3_column_int64(s, 4);
        b->mtime_ns = sqlite3_column_int64(s, 5);
        b->ctime_ns = sqlite3_column_int64(s, 6);
        b->inode = (apr_uint64_t)sqlite3_column_int64(s, 7);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? APR_SUCCESS : APR_EGENERAL;
}

apr_uint64_t sync_state_file_count(sync_state_t *st)
{
    sqlite3_stmt *s;
    apr_uint64_t n = 0;

    if (st->db == NULL
        || sqlite3_prepare_v2(st->db, "SELECT count(*) FROM files WHERE"
                              " kind = 1", -1, &s, NULL) != SQLITE_OK) {
        return 0;
    }
    if (sqlite3_step(s) == SQLITE_ROW) {
        n = (apr_uint64_t)sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
    return n;
}

iss_manifest_t *sync_state_manifest(sync_state_t *st, const char *path,
                                    const iss_cdc_params_t *params,
                                    apr_pool_t *pool)
{
    sqlite3_stmt *s = st->get_chunks;
    apr_array_header_t *e;
    iss_manifest_t *m;
    apr_uint64_t off = 0;
    int rc;

    if (st->db == NULL) {
        return NULL;
    }
    e = apr_array_make(pool, 16, sizeof(iss_manifest_entry_t));
    sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        iss_manifest_entry_t *en = apr_array_push(e);

        if (sqlite3_column_bytes(s, 0) != SHA_LEN) {
            rc = SQLITE_CORRUPT;
            break;
        }
        memcpy(en->sha256, sqlite3_column_blob(s, 0), SHA_LEN);
        en->length = (apr_uint32_t)sqlite3_column_int64(s, 1);
        en->offset = off;
        off += en->length;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
        return NULL;
    }
    m = apr_pcalloc(pool, sizeof(*m));
    m->params = *params;
    m->file_size = off;
    m->count = (apr_uint32_t)e->nelts;
    m->entries = e->nelts ? (iss_manifest_entry_t *)e->elts : NULL;
    return m;
}

apr_array_header_t *sync_state_chunk_find(sync_state_t *st,
                                          const unsigned char id[SHA_LEN],
                                          int max, apr_pool_t *pool)
{
    apr_array_header_t *a = apr_array_make(pool, 2, sizeof(sync_chunk_loc_t));
    sqlite3_stmt *s = st->find_chunk;

    if (st->db == NULL) {
        return a;
    }
    sqlite3_bind_blob(s, 1, id, SHA_LEN, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, max);
    while (sqlite3_step(s) == SQLITE_ROW) {
        sync_chunk_loc_t *l = apr_array_push(a);

        l->path = apr_pstrdup(pool, (const char *)sqlite3_column_text(s, 0));
        l->off = (apr_uint64_t)sqlite3_column_int64(s, 1);
        l->len = (apr_uint32_t)sqlite3_column_int64(s, 2);
    }
    sqlite3_reset(s);
    return a;
}

apr_array_header_t *sync_state_sha_find(sync_state_t *st,
                                        const unsigned char sha[SHA_LEN],
                                        int max, apr_pool_t *pool)
{
    apr_array_header_t *a = apr_array_make(pool, 2, sizeof(const char *));
    sqlite3_stmt *s = st->find_sha;

    if (st->db == NULL) {
        return a;
    }
    sqlite3_bind_blob(s, 1, sha, SHA_LEN, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, max);
    while (sqlite3_step(s) == SQLITE_ROW) {
        APR_ARRAY_PUSH(a, const char *) =
            apr_pstrdup(pool, (const char *)sqlite3_column_text(s, 0));
    }
    sqlite3_reset(s);
    return a;
}

const char *sync_state_upload_get(sync_state_t *st, const char *path,
                                  const unsigned char sha[SHA_LEN],
                                  apr_pool_t *pool)
{
    const char *v = NULL;

    if (st->db == NULL) {
        return NULL;
    }
    sqlite3_bind_text(st->up_get, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st->up_get, 2, sha, SHA_LEN, SQLITE_STATIC);
    if (sqlite3_step(st->up_get) == SQLITE_ROW) {
        v = apr_pstrdup(pool, (const char *)sqlite3_column_text(st->up_get,
                                                                 0));
    }
    sqlite3_reset(st->up_get);
    return v;
}

/* ---- writing ---------------------------------------------------------------- */

static apr_status_t step_done(sync_state_t *st, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);

    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    st->writes++;
    return rc == SQLITE_DONE ? APR_SUCCESS : APR_EGENERAL;
}

static int writable(sync_state_t *st)
{
    return st->db != NULL && !st->readonly;
}

apr_status_t sync_state_set_meta(sync_state_t *st, const char *key,
                                 const char *value)
{
    if (!writable(st)) {
        return APR_SUCCESS;
    }
    sqlite3_bind_text(st->meta_put, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st->meta_put, 2, value, -1, SQLITE_STATIC);
    return step_done(st, st->meta_put);
}

apr_status_t sync_state_begin(sync_state_t *st)
{
    if (!writable(st) || st->in_txn) {
        return APR_SUCCESS;
    }
    if (sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL)
        != SQLITE_OK) {
        return APR_EGENERAL;
    }
    st->in_txn = 1;
    st->writes = 0;
    st->txn_start = apr_time_now();
    return APR_SUCCESS;
}

apr_status_t sync_state_commit(sync_state_t *st)
{
    if (!writable(st) || !st->in_txn) {
        return APR_SUCCESS;
    }
    st->in_txn = 0;
    return sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK
           ? APR_SUCCESS : APR_EGENERAL;
}

apr_status_t sync_state_tick(sync_state_t *st)
{
    apr_status_t rv;

    if (!writable(st) || !st->in_txn
        || (st->writes < TICK_WRITES
            && apr_time_now() - st->txn_start < TICK_USEC)) {
        return APR_SUCCESS;
    }
    if ((rv = sync_state_commit(st)) != APR_SUCCESS) {
        return rv;
    }
    return sync_state_begin(st);
}

apr_status_t sync_state_put(sync_state_t *st, const char *path,
                            const sync_base_t *b, const iss_manifest_t *m)
{
    sqlite3_stmt *s = st->put;
    apr_status_t rv;
    apr_uint32_t i;

    if (!writable(st)) {
        return APR_SUCCESS;
    }
    sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, b->kind == SYNC_FILE ? 1 : 2);
    if (b->etag) {
        sqlite3_bind_text(s, 3, b->etag, -1, SQLITE_STATIC);
    }
    if (b->has_sha) {
        sqlite3_bind_blob(s, 4, b->sha, SHA_LEN, SQLITE_STATIC);
    }
    sqlite3_bind_int64(s, 5, b->size);
    sqlite3_bind_int64(s, 6, b->mtime_ns);
    sqlite3_bind_int64(s, 7, b->ctime_ns);
    sqlite3_bind_int64(s, 8, (sqlite3_int64)b->inode);
    if ((rv = step_done(st, s)) != APR_SUCCESS) {
        return rv;
    }
    /* The chunks of the content recorded now (none if not known: the
     * old ones would describe other bytes). */
    sqlite3_bind_text(st->del_chunks, 1, path, -1, SQLITE_STATIC);
    if ((rv = step_done(st, st->del_chunks)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; m && i < m->count; i++) {
        s = st->add_chunk;
        sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)m->entries[i].offset);
        sqlite3_bind_blob(s, 3, m->entries[i].sha256, SHA_LEN,
                          SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, m->entries[i].length);
        if ((rv = step_done(st, s)) != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

apr_status_t sync_state_del(sync_state_t *st, const char *path)
{
    apr_status_t rv;

    if (!writable(st)) {
        return APR_SUCCESS;
    }
    sqlite3_bind_text(st->del, 1, path, -1, SQLITE_STATIC);
    if ((rv = step_done(st, st->del)) != APR_SUCCESS) {
        return rv;
    }
    sqlite3_bind_text(st->del_chunks, 1, path, -1, SQLITE_STATIC);
    if ((rv = step_done(st, st->del_chunks)) != APR_SUCCESS) {
        return rv;
    }
    return sync_state_upload_del(st, path);
}

apr_status_t sync_state_upload_put(sync_state_t *st, const char *path,
                                   const char *session,
                                   const unsigned char sha[SHA_LEN])
{
    if (!writable(st)) {
        return APR_SUCCESS;
    }
    sqlite3_bind_text(st->up_put, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st->up_put, 2, session, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st->up_put, 3, sha, SHA_LEN, SQLITE_STATIC);
    return step_done(st, st->up_put);
}

apr_status_t sync_state_upload_del(sync_state_t *st, const char *path)
{
    if (!writable(st)) {
        return APR_SUCCESS;
    }
    sqlite3_bind_text(st->up_del, 1, path, -1, SQLITE_STATIC);
    return step_done(st, st->up_del);
}
