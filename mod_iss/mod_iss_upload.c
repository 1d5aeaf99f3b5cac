/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * Upload by manifest (docs/protocol.md section 5).
 *
 *  PATCH <file>  Content-Type: application/vnd.mod-iss.manifest[-delta]
 *      The new content, as a list of chunks.  Every chunk is looked for
 *      before anything is changed: in the request's upload session, in
 *      the file's current version, in the other files of the store the
 *      user may read (ISSDedupScope).  All found: the file is assembled
 *      beside the old one, every chunk checked against its id as it is
 *      copied, the whole against the manifest's digest, and renamed into
 *      place (mod_iss_patch.c).  Some missing: 409 listing them, with an
 *      upload session to send them to.
 *  POST <file>  Content-Type: application/vnd.mod-iss.chunks
 *      ISS-Upload-Session: <id>: chunks of the session's manifest in
 *      frames (libiss/core/iss_frames), each kept as soon as it is
 *      complete and checked (a broken connection loses only the chunk
 *      under way).
 *
 * Staged chunks live in <ISSStateDir>/uploads (libiss/server/iss_upload), are
 * bounded by ISSUploadStagingLimit and removed ISSUploadTimeout after
 * their session's last use.
 */

#include "mod_iss_patch.h"
#include "mod_iss_chunk.h"
#include "mod_iss_config.h"
#include "mod_iss_state.h"
#include "iss_chunkidx.h"
#include "iss_frames.h"
#include "iss_upload.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>

#define ID_LEN ISS_DIGEST_SHA256_LEN
#define SESSION_HEADER "ISS-Upload-Session"
/* Missing chunks listed in one 409 at most (the client asks again). */
#define MAX_LISTED 100000

/* Most files of the store one upload takes chunks from (each holds its
 * manifest in memory while the request runs); chunks of others count as
 * missing. */
#define MAX_SOURCES 1000

/* What one upload session costs in the staging area besides its
 * manifest and chunks (its directory and session file, a block each),
 * counted in ISSUploadStagingLimit: many sessions with small manifests
 * fill the limit too. */
#define SESSION_COST 8192

/* The staging area's bytes in use, sessions' costs included (iss_upload
 * counts their chunks and manifests). */
static apr_status_t staging_used(const char *root, apr_uint64_t *used,
                                 apr_pool_t *pool)
{
    apr_uint32_t sessions = 0;
    apr_status_t rv = iss_upload_usage(root, &sessions, used, pool);

    if (rv == APR_SUCCESS) {
        *used += (apr_uint64_t)sessions * SESSION_COST;
    }
    return rv;
}

/* A file chunks may be copied from. */
typedef struct source_t {
    const char *rel;
    const char *path;               /* NULL: the file's own version */
    apr_file_t *f;                  /* open while chunks are copied */
    iss_manifest_t *m;
    apr_hash_t *ids;                /* id -> its iss_manifest_entry_t */
} source_t;

/* Where one chunk of the new content comes from. */
typedef struct where_t {
    source_t *src;                  /* NULL: staged in the session */
    const iss_manifest_entry_t *at; /* ... else this entry of src */
} where_t;

typedef struct iss_upload_ctx_t {
    iss_manifest_limits_t lim;
    iss_dedup_scope_e scope;
    const char *root;               /* of the upload sessions */
    const char *rel;                /* the file, relative */
    const char *user;
    iss_store_t *store;
    iss_upload_t *session;          /* the request's, if it named one */
    apr_hash_t *sources;            /* rel -> source_t, or &no_source */
    int nsources;
    source_t *self;                 /* the file's current version */
    source_t *open;                 /* the other file open now, if any */
    int checks;                     /* access checks of other files made */
    apr_hash_t *where;              /* id -> where_t */
    char *buf;                      /* one chunk */
    iss_digest_t *csha;             /* ... its SHA-256 */
} iss_upload_ctx_t;

static source_t no_source;

static const char *uploads_root(request_rec *r)
{
    return apr_pstrcat(r->pool, iss_config_dir(r)->state_dir, "/uploads",
                       NULL);
}

static apr_hash_t *index_ids(const iss_manifest_t *m, apr_pool_t *pool)
{
    apr_hash_t *ids = apr_hash_make(pool);
    apr_uint32_t i;

    for (i = 0; i < m->count; i++) {
        if (!apr_hash_get(ids, m->entries[i].sha256, ID_LEN)) {
            apr_hash_set(ids, m->entries[i].sha256, ID_LEN, &m->entries[i]);
        }
    }
    return ids;
}

/* ---- the manifest of the request ---------------------------------------- */

static int manifest_error(iss_patch_t *p, apr_status_t rv)
{
    const char *why = iss_manifest_error_text(rv);

    if (rv == ISS_MANIFEST_ETOOBIG) {
        return iss_patch_fail(p, HTTP_REQUEST_ENTITY_TOO_LARGE,
                              "manifest-too-large", "%s (ISSUploadMaxSize); "
                              "the file was not changed.", why);
    }
    if (rv == ISS_MANIFEST_EBASE) {
        return iss_patch_fail(p, HTTP_CONFLICT, "manifest-base-mismatch",
                              "%s: the delta is not of the file's current "
                              "version; the file was not changed.", why);
    }
    return iss_patch_fail(p, HTTP_BAD_REQUEST, "invalid-manifest",
                          "%s; the file was not changed.", why);
}

/* The current version of the file as a chunk source (its manifest made
 * now if the store has none: a delta needs it, and an upload of a new
 * version takes most of its chunks from it). */
static int self_source(iss_patch_t *p, iss_upload_ctx_t *up, int need)
{
    request_rec *r = p->r;
    source_t *s;
    apr_status_t rv;

    if (p->src == NULL) {
        return OK;
    }
    s = apr_pcalloc(r->pool, sizeof(*s));
    s->rel = up->rel;
    s->f = p->src;
    rv = iss_chunk_manifest_of_file(r, up->rel, p->src, &p->src_info, 1,
                                    &s->m);
    if (rv == APR_EAGAIN) {
        return iss_patch_fail(p, HTTP_PRECONDITION_FAILED, "changed",
                              "The file changed while it was read; fetch "
                              "its new ETag and try again.");
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01068)
                      "cannot make the manifest of %s", p->path);
        return need ? iss_patch_fail(p, HTTP_INTERNAL_SERVER_ERROR,
                                     "read-failed", "The file's current "
                                     "version cannot be read.")
                    : OK;
    }
    s->ids = index_ids(s->m, r->pool);
    up->self = s;
    return OK;
}

static int read_manifest(iss_patch_t *p, iss_upload_ctx_t *up)
{
    apr_uint64_t max = iss_manifest_encoded_len(up->lim.max_entries);
    apr_status_t rv;
    apr_size_t len;
    char *body;
    int st;

    /* A delta lists at most every entry plus 12 bytes per edit. */
    if (p->format == ISS_PATCH_MANIFEST_DELTA) {
        max = max * 2 + 1024;
    }
    if (max > APR_SIZE_MAX / 2) {
        max = APR_SIZE_MAX / 2;
    }
    if ((st = iss_patch_read_all(p, (apr_size_t)max, &body, &len)) != OK) {
        return st;
    }
    if (p->format == ISS_PATCH_MANIFEST) {
        rv = iss_manifest_parse(body, len, &up->lim,
                                (iss_manifest_t **)&p->manifest, p->r->pool);
        return rv == APR_SUCCESS ? OK : manifest_error(p, rv);
    }
    /* A delta's unchanged entries are the file's: the 409 would list
     * them to a user who may write the file but not read it. */
    if (!iss_chunk_may_read(p->r, up->rel)) {
        return iss_patch_fail(p, HTTP_FORBIDDEN, "read-required",
                              "A manifest delta is relative to the file's "
                              "content, which you may not read; send a "
                              "whole manifest.");
    }
    if (up->self == NULL) {
        return iss_patch_fail(p, HTTP_INTERNAL_SERVER_ERROR, "read-failed",
                              "The file's current version cannot be read.");
    }
    rv = iss_manifest_delta_apply(up->self->m, body, len, &up->lim,
                                  (iss_manifest_t **)&p->manifest,
                                  p->r->pool);
    return rv == APR_SUCCESS ? OK : manifest_error(p, rv);
}

/* ---- finding chunks ------------------------------------------------------ */

/* Another file of the store, if the user may read it and the store
 * knows its manifest as it is now. */
static source_t *other_source(iss_patch_t *p, iss_upload_ctx_t *up,
                              const char *rel)
{
    request_rec *r = p->r;
    const char *root = iss_state_root_fs(r);
    source_t *s = apr_hash_get(up->sources, rel, APR_HASH_KEY_STRING);
    apr_finfo_t fi;

    if (s) {
        return s == &no_source ? NULL : s;
    }
    apr_hash_set(up->sources, rel, APR_HASH_KEY_STRING, &no_source);
    if (root == NULL || up->nsources >= MAX_SOURCES) {
        return NULL;
    }
    up->checks++;
    if (!iss_chunk_may_read(r, rel)) {
        return NULL;
    }
    s = apr_pcalloc(r->pool, sizeof(*s));
    s->rel = rel;
    s->path = apr_pstrcat(r->pool, root, "/", rel, NULL);
    /* Its manifest, if the store has one of the file as it is now (the
     * file is closed again: it is opened when its chunks are copied). */
    if (apr_file_open(&s->f, s->path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0,
                      r->pool) != APR_SUCCESS) {
        return NULL;
    }
    if (apr_file_info_get(&fi, APR_FINFO_IDENT | APR_FINFO_SIZE
                          | APR_FINFO_MTIME | APR_FINFO_TYPE, s->f)
        != APR_SUCCESS
        || fi.filetype != APR_REG
        || iss_chunk_manifest_of_file(r, rel, s->f, &fi, 0, &s->m)
           != APR_SUCCESS) {
        apr_file_close(s->f);
        return NULL;
    }
    apr_file_close(s->f);
    s->f = NULL;
    s->ids = index_ids(s->m, r->pool);
    up->nsources++;
    apr_hash_set(up->sources, rel, APR_HASH_KEY_STRING, s);
    return s;
}

static int find(iss_patch_t *p, iss_upload_ctx_t *up,
                const unsigned char *id, where_t *w)
{
    const iss_manifest_entry_t *e;
    apr_array_header_t *rels;
    source_t *s;
    int i;

    if (up->session && iss_upload_has(up->session, id)) {
        w->src = NULL;
        return 1;
    }
    if (up->self && (e = apr_hash_get(up->self->ids, id, ID_LEN))) {
        w->src = up->self;
        w->at = e;
        return 1;
    }
    if (up->scope != ISS_DEDUP_READABLE
        || iss_chunkidx_where(up->store, id, &rels, p->r->pool)
           != APR_SUCCESS) {
        return 0;
    }
    for (i = 0; i < rels->nelts; i++) {
        s = other_source(p, up, APR_ARRAY_IDX(rels, i, const char *));
        if (s && (e = apr_hash_get(s->ids, id, ID_LEN)) != NULL) {
            w->src = s;
            w->at = e;
            return 1;
        }
    }
    return 0;
}

/* Answer 409 with the chunks of @a missing (ids), and the session to
 * send them to (made now if the request named none that holds). */
static int missing_chunks(iss_patch_t *p, iss_upload_ctx_t *up,
                          apr_array_header_t *missing, apr_uint64_t bytes)
{
    request_rec *r = p->r;
    iss_dir_conf_t *dconf = iss_config_dir(r);
    unsigned char *ism;
    apr_size_t ilen;
    apr_status_t rv;
    apr_uint32_t gone = 0;
    apr_uint64_t freed = 0;
    apr_array_header_t *xml;
    int i;

    if ((rv = iss_manifest_encode(p->manifest, &ism, &ilen, r->pool))
        != APR_SUCCESS) {
        return iss_patch_fail(p, HTTP_INTERNAL_SERVER_ERROR, "failed",
                              "The manifest could not be kept.");
    }
    if (up->session == NULL) {
        /* A new session: the time to clear those nobody finished (and
         * make room for this one). */
        rv = iss_upload_gc(up->root, apr_time_from_sec(
                               iss_config_upload_timeout(dconf)),
                           apr_time_now(), &gone, &freed, r->pool);
        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, ISSLOGNO(01069)
                          "cannot remove expired upload sessions in %s",
                          up->root);
        }
        else if (gone) {
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ISSLOGNO(01070)
                          "removed %u expired upload session(s) of %s "
                          "(%" APR_UINT64_T_FMT " bytes)", gone, up->root,
                          freed);
        }
    }
    /* The manifest a session keeps counts in the staging limit, like its
     * chunks: checked before it is written. */
    {
        apr_uint64_t used = 0, old = 0, need, limit;

        limit = (apr_uint64_t)iss_config_upload_staging(dconf);
        if ((rv = staging_used(up->root, &used, r->pool)) != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01143)
                          "cannot measure the upload sessions in %s",
                          up->root);
            return iss_patch_fail(p, HTTP_INSUFFICIENT_STORAGE,
                                  "insufficient-storage", "The upload "
                                  "session could not be kept; the file was "
                                  "not changed.");
        }
        /* (a session gone meanwhile fails below, as before) */
        if (up->session
            && iss_upload_manifest_size(up->session, &old) != APR_SUCCESS) {
            old = 0;
        }
        need = (used > old ? used - old : 0) + ilen
               + (up->session ? 0 : SESSION_COST);
        if (need > limit) {
            return iss_patch_fail(p, HTTP_INSUFFICIENT_STORAGE,
                                  "insufficient-storage", "%d chunk(s) are "
                                  "not here, and the staging area of "
                                  "unfinished uploads has no room for "
                                  "this upload's manifest (%" APR_SIZE_T_FMT
                                  " bytes; ISSUploadStagingLimit %"
                                  APR_UINT64_T_FMT " bytes, %"
                                  APR_UINT64_T_FMT " in use); try later, "
                                  "or send the file with PUT; the file "
                                  "was not changed.", missing->nelts, ilen,
                                  limit, used);
        }
    }
    if (up->session) {
        rv = iss_upload_set_manifest(up->session, ism, ilen);
        if (rv == APR_SUCCESS) {
            rv = iss_upload_touch(up->session);
        }
    }
    else {
        rv = iss_upload_create(&up->session, up->root, up->user, up->rel,
                               ism, ilen, r->pool);
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01071)
                      "cannot keep an upload session in %s", up->root);
        return iss_patch_fail(p, HTTP_INSUFFICIENT_STORAGE,
                              "insufficient-storage", "The upload session "
                              "could not be kept; the file was not "
                              "changed.");
    }
    apr_table_setn(r->headers_out, SESSION_HEADER,
                   iss_upload_id(up->session));
    xml = apr_array_make(r->pool, missing->nelts + 4, sizeof(char *));
    APR_ARRAY_PUSH(xml, const char *) = apr_psprintf(r->pool,
        "<I:upload-session>%s</I:upload-session>" DEBUG_CR,
        iss_upload_id(up->session));
    for (i = 0; i < missing->nelts && i < MAX_LISTED; i++) {
        APR_ARRAY_PUSH(xml, const char *) = apr_pstrcat(r->pool,
            "<I:chunk>", iss_hex_id(APR_ARRAY_IDX(missing, i,
                                                        const unsigned char *),
                                          r->pool),
            "</I:chunk>" DEBUG_CR, NULL);
    }
    p->xml = apr_array_pstrcat(r->pool, xml, 0);
    return iss_patch_fail(p, HTTP_CONFLICT, "missing-chunks",
                          "%d chunk(s) (%" APR_UINT64_T_FMT " bytes) are "
                          "not here: send them with POST in upload session "
                          "%s, then send the manifest again; the file was "
                          "not changed.", missing->nelts, bytes,
                          iss_upload_id(up->session));
}

int iss_upload_begin(iss_patch_t *p)
{
    request_rec *r = p->r;
    iss_dir_conf_t *dconf = iss_config_dir(r);
    iss_upload_ctx_t *up = apr_pcalloc(r->pool, sizeof(*up));
    int delta = p->format == ISS_PATCH_MANIFEST_DELTA;
    dav_error *err;

    p->up = up;
    iss_chunk_limits(r, &up->lim);
    up->scope = iss_config_dedup_scope(dconf);
    up->root = uploads_root(r);
    up->rel = iss_state_rel_path(r, r->uri);
    up->user = r->user ? r->user : "";
    up->sources = apr_hash_make(r->pool);
    up->where = apr_hash_make(r->pool);
    if (up->rel == NULL || *up->rel == '\0'
        || iss_state_root_fs(r) == NULL) {
        return iss_patch_fail(p, HTTP_CONFLICT, "not-a-file", "Uploads by "
                              "manifest need a file of the location.");
    }
    if ((err = iss_state_store(r, &up->store)) != NULL) {
        return iss_patch_fail(p, err->status, "state-unavailable", "%s",
                              err->desc);
    }
    /* A delta's base is the current version: refused to a user who may
     * not read it before anything else (its conditions included, which
     * would otherwise answer whether his If-Match names the content:
     * docs/design.md 3b), the same answer whatever he sends. */
    if (delta && p->src && !iss_chunk_may_read(r, up->rel)) {
        return iss_patch_fail(p, HTTP_FORBIDDEN, "read-required",
                              "A manifest delta is relative to the file's "
                              "content, which you may not read; send a "
                              "whole manifest.");
    }
    /* The current version's manifest (a delta's base, and chunks of the
     * new version) also gives its digest for the conditions: one read of
     * a file changed behind httpd's back, not two. */
    if (delta && !apr_table_get(r->headers_in, "If-Match")) {
        return OK;                      /* 428 follows */
    }
    if (p->src && (delta || up->scope != ISS_DEDUP_OFF)) {
        return self_source(p, up, delta);
    }
    return OK;
}

const unsigned char *iss_upload_current_digest(const iss_patch_t *p)
{
    return p->up && p->up->self ? p->up->self->m->file_sha256 : NULL;
}

int iss_upload_prepare(iss_patch_t *p)
{
    request_rec *r = p->r;
    iss_upload_ctx_t *up = p->up;
    const char *sid = apr_table_get(r->headers_in, SESSION_HEADER);
    apr_array_header_t *missing;
    apr_uint64_t bytes = 0;
    apr_uint32_t i;
    apr_status_t rv;
    int st;

    if (sid) {
        rv = iss_upload_open(&up->session, up->root, sid, r->pool);
        if (rv == APR_EINVAL) {
            return iss_patch_fail(p, HTTP_BAD_REQUEST, "invalid-session",
                                  "The " SESSION_HEADER " header is not an "
                                  "upload session id (32 hex digits).");
        }
        /* Another user's or another file's session is as good as none:
         * a new one is made (nothing is said about the other one). */
        if (rv != APR_SUCCESS || strcmp(iss_upload_user(up->session),
                                        up->user) != 0
            || strcmp(iss_upload_path(up->session), up->rel) != 0) {
            up->session = NULL;
        }
    }
    if ((st = read_manifest(p, up)) != OK) {
        return st;
    }
    if (p->want_repr && memcmp(p->repr, p->manifest->file_sha256,
                               ID_LEN) != 0) {
        return iss_patch_fail(p, HTTP_BAD_REQUEST, "repr-digest-mismatch",
                              "The Repr-Digest header is not the digest the "
                              "manifest gives the file; the file was not "
                              "changed.");
    }
    /* The file's own chunks, unless the scope or the user's rights
     * exclude them (a user who may write a file but not read it must
     * not learn what it holds; a delta checked that already). */
    if (up->self && (up->scope == ISS_DEDUP_OFF
                     || (p->format != ISS_PATCH_MANIFEST_DELTA
                         && !iss_chunk_may_read(r, up->rel)))) {
        up->self = NULL;
    }
    missing = apr_array_make(r->pool, 16, sizeof(const unsigned char *));
    for (i = 0; i < p->manifest->count; i++) {
        const iss_manifest_entry_t *e = &p->manifest->entries[i];
        where_t *w;

        if (apr_hash_get(up->where, e->sha256, ID_LEN)) {
            continue;
        }
        w = apr_pcalloc(r->pool, sizeof(*w));
        if (!find(p, up, e->sha256, w)) {
            APR_ARRAY_PUSH(missing, const unsigned char *) = e->sha256;
            bytes += e->length;
        }
        apr_hash_set(up->where, e->sha256, ID_LEN, w);
    }
    /* Timing (the Dropship probe): a chunk of a file the user may not
     * read costs an access check (a sub-request, authentication
     * included) that an unknown chunk would not.  A missing-chunks answer
     * made without any check makes one, on the upload's own file, so
     * that a one-file probe costs the same either way (docs/design.md,
     * "Dropship-safe"; bench/dedup_timing.pl measures what remains). */
    if (missing->nelts && up->scope == ISS_DEDUP_READABLE
        && up->checks == 0) {
        (void)iss_chunk_may_read(r, up->rel);
    }
    if (missing->nelts) {
        return missing_chunks(p, up, missing, bytes);
    }
    up->buf = apr_palloc(r->pool, up->lim.params->max_size);
    if (iss_digest_create(&up->csha, r->pool) != APR_SUCCESS) {
        return iss_patch_fail(p, HTTP_INTERNAL_SERVER_ERROR, "no-sha256",
                              "SHA-256 is not available.");
    }
    return OK;
}

/* ---- writing the new content --------------------------------------------- */

/* Read chunk @a e into up->buf from where it was found; 1 if the bytes
 * are there and hash to its id. */
static int fetch(iss_patch_t *p, iss_upload_ctx_t *up,
                 const iss_manifest_entry_t *e, const where_t *w)
{
    unsigned char sha[ID_LEN];
    apr_status_t rv;

    if (w->src == NULL) {
        apr_file_t *f;
        apr_off_t len;

        rv = iss_upload_open_chunk(up->session, e->sha256, &f, &len,
                                   p->r->pool);
        if (rv != APR_SUCCESS) {
            return 0;
        }
        rv = len == (apr_off_t)e->length
             ? apr_file_read_full(f, up->buf, e->length, NULL) : APR_EGENERAL;
        apr_file_close(f);
    }
    else {
        /* One other file open at a time (uploads may draw on many). */
        if (w->src->f == NULL) {
            if (up->open) {
                apr_file_close(up->open->f);
                up->open->f = NULL;
            }
            if (apr_file_open(&w->src->f, w->src->path, APR_FOPEN_READ
                              | APR_FOPEN_BINARY, 0, p->r->pool)
                != APR_SUCCESS) {
                w->src->f = NULL;
                return 0;
            }
            up->open = w->src;
        }
        rv = w->at->length == e->length
             ? iss_patch_pread(w->src->f, (apr_off_t)w->at->offset,
                               e->length, up->buf)
             : APR_EGENERAL;
    }
    if (rv != APR_SUCCESS) {
        return 0;
    }
    iss_digest_update(up->csha, up->buf, e->length);
    iss_digest_final(up->csha, sha);
    return memcmp(sha, e->sha256, ID_LEN) == 0;
}

int iss_upload_assemble(iss_patch_t *p)
{
    request_rec *r = p->r;
    iss_upload_ctx_t *up = p->up;
    apr_array_header_t *bad = apr_array_make(r->pool, 4,
                                             sizeof(const unsigned char *));
    apr_uint64_t bytes = 0;
    apr_uint32_t i;
    apr_status_t rv;

    for (i = 0; i < p->manifest->count; i++) {
        const iss_manifest_entry_t *e = &p->manifest->entries[i];
        where_t *w = apr_hash_get(up->where, e->sha256, ID_LEN);

        if (w == NULL) {                /* listed as bad already */
            continue;
        }
        if (!fetch(p, up, e, w)) {
            /* Changed behind httpd's back, or removed: never copied. */
            ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ISSLOGNO(01072)
                          "%s %s: chunk %s is not what %s holds now; it "
                          "is asked of the client", r->method, r->uri,
                          iss_hex_id(e->sha256, r->pool),
                          w->src ? w->src->rel : "the upload session");
            APR_ARRAY_PUSH(bad, const unsigned char *) = e->sha256;
            bytes += e->length;
            apr_hash_set(up->where, e->sha256, ID_LEN, NULL);
            continue;
        }
        if (bad->nelts == 0
            && (rv = iss_patch_write(p, up->buf, e->length))
               != APR_SUCCESS) {
            return iss_patch_fail_write(p, rv);
        }
    }
    if (bad->nelts) {
        return missing_chunks(p, up, bad, bytes);
    }
    /* The whole: against the manifest's digest, at the commit. */
    p->want_repr = 1;
    memcpy(p->repr, p->manifest->file_sha256, ID_LEN);
    return OK;
}

void iss_upload_done(iss_patch_t *p)
{
    if (p->up && p->up->session) {
        apr_status_t rv = iss_upload_remove(p->up->session);

        if (rv != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, p->r,
                          ISSLOGNO(01073) "cannot remove upload session %s "
                          "(it expires)", iss_upload_id(p->up->session));
        }
    }
}

/* ---- POST: chunks of a session ------------------------------------------ */

/*
 * The body is parsed by libiss's frame parser (iss_frames), fed the body
 * as it arrives: a frame's head is checked against the session's
 * manifest and the staging limit before any of its bytes is held, and
 * a chunk reaches post_chunk() only once its bytes hash to its id.  That
 * check is the only one on the way in: post_chunk() stages it with
 * iss_upload_put_verified(), which does not hash it again (the assembly
 * hashes every chunk once more as it copies it into the file).
 */
typedef struct post_t {
    iss_patch_t *p;
    iss_upload_t *session;
    apr_hash_t *ids;                /* of the session's manifest */
    apr_uint64_t room;              /* staging bytes left */
    iss_frames_t *frames;
    unsigned char id[ID_LEN];       /* of the frame under way */
} post_t;

/* Chunks of this request staged so far. */
static int stored(const post_t *c)
{
    return (int)iss_frames_count(c->frames);
}

static apr_status_t post_head(void *baton, const unsigned char *id,
                              apr_uint32_t len)
{
    post_t *c = baton;
    iss_patch_t *p = c->p;
    const iss_manifest_entry_t *e = apr_hash_get(c->ids, id, ID_LEN);

    memcpy(c->id, id, ID_LEN);
    if (e == NULL) {
        iss_patch_fail(p, HTTP_BAD_REQUEST, "chunk-not-in-manifest",
                       "Chunk %s is not in the manifest of upload session "
                       "%s; it was not kept (%d chunk(s) before it were).",
                       iss_hex_id(id, p->r->pool), iss_upload_id(c->session),
                       stored(c));
        return APR_EGENERAL;
    }
    if (e->length != len) {
        iss_patch_fail(p, HTTP_BAD_REQUEST, "chunk-length-mismatch",
                       "Chunk %s is %u bytes long in the manifest, not %u; "
                       "it was not kept (%d chunk(s) before it were).",
                       iss_hex_id(id, p->r->pool), e->length, len,
                       stored(c));
        return APR_EGENERAL;
    }
    if (len > c->room) {
        iss_patch_fail(p, HTTP_INSUFFICIENT_STORAGE, "insufficient-storage",
                       "The staging area of unfinished uploads is full "
                       "(ISSUploadStagingLimit); %d chunk(s) of this request "
                       "were kept.", stored(c));
        return APR_EGENERAL;
    }
    return APR_SUCCESS;
}

static apr_status_t post_chunk(void *baton, const unsigned char *id,
                               const unsigned char *bytes, apr_uint32_t len)
{
    post_t *c = baton;
    apr_status_t rv = iss_upload_put_verified(c->session, id, bytes, len);

    if (rv != APR_SUCCESS) {
        iss_patch_fail_write(c->p, rv);
        return rv;
    }
    c->room -= len;
    return APR_SUCCESS;
}

static apr_status_t post_body(void *baton, const char *data, apr_size_t len)
{
    post_t *c = baton;
    iss_patch_t *p = c->p;
    apr_status_t rv = iss_frames_feed(c->frames, data, len);

    /* The callbacks recorded their refusals; the parser's own: */
    if (rv == ISS_FRAMES_EDIGEST) {
        iss_patch_fail(p, HTTP_BAD_REQUEST, "chunk-digest-mismatch",
                       "The bytes sent for chunk %s do not hash to its id; "
                       "it was not kept (%d chunk(s) before it were).",
                       iss_hex_id(c->id, p->r->pool), stored(c));
    }
    else if (rv == ISS_FRAMES_ETOOBIG) {
        /* Longer than any chunk here, so than its manifest entry. */
        iss_patch_fail(p, HTTP_BAD_REQUEST, "chunk-length-mismatch",
                       "A frame is longer than the largest chunk of this "
                       "location; it was not kept (%d chunk(s) before it "
                       "were).", stored(c));
    }
    return rv;
}

static int is_chunks(request_rec *r)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");

    return ct && strncasecmp(ct, ISS_FRAMES_MEDIA_TYPE,
                             sizeof(ISS_FRAMES_MEDIA_TYPE) - 1) == 0
           && strchr("; \t", ct[sizeof(ISS_FRAMES_MEDIA_TYPE) - 1]) != NULL;
}

static int post(iss_patch_t *p, post_t *c)
{
    request_rec *r = p->r;
    iss_dir_conf_t *dconf = iss_config_dir(r);
    const char *sid = apr_table_get(r->headers_in, SESSION_HEADER);
    const char *rel = iss_state_rel_path(r, r->uri);
    const char *root = uploads_root(r);
    iss_manifest_limits_t lim;
    iss_manifest_t *m;
    apr_uint64_t used, limit;
    apr_size_t mlen;
    void *mbuf;
    apr_status_t rv;
    int st;

    if (sid == NULL) {
        return iss_patch_fail(p, HTTP_BAD_REQUEST, "invalid-session",
                              "Chunks are sent to an upload session: the "
                              SESSION_HEADER " header is missing.");
    }
    rv = iss_upload_open(&c->session, root, sid, r->pool);
    if (rv == APR_EINVAL) {
        return iss_patch_fail(p, HTTP_BAD_REQUEST, "invalid-session",
                              "The " SESSION_HEADER " header is not an "
                              "upload session id (32 hex digits).");
    }
    if (rv != APR_SUCCESS || rel == NULL
        || strcmp(iss_upload_user(c->session), r->user ? r->user : "") != 0
        || strcmp(iss_upload_path(c->session), rel) != 0) {
        return iss_patch_fail(p, HTTP_CONFLICT, "unknown-session",
                              "There is no such upload session for this "
                              "file and user (it may have expired: "
                              "ISSUploadTimeout); send the manifest again "
                              "for a new one.");
    }
    iss_chunk_limits(r, &lim);
    if ((rv = iss_upload_manifest(c->session, &mbuf, &mlen, r->pool))
        != APR_SUCCESS
        || iss_manifest_parse(mbuf, mlen, &lim, &m, r->pool)
           != APR_SUCCESS) {
        return iss_patch_fail(p, HTTP_CONFLICT, "unknown-session",
                              "The upload session has no usable manifest "
                              "(the chunk sizes may have been changed); "
                              "send the manifest again for a new one.");
    }
    if ((rv = staging_used(root, &used, r->pool)) != APR_SUCCESS) {
        return iss_patch_fail_write(p, rv);
    }
    limit = (apr_uint64_t)iss_config_upload_staging(dconf);
    c->room = used < limit ? limit - used : 0;
    c->ids = index_ids(m, r->pool);
    if (iss_frames_create(&c->frames, lim.params->max_size, post_head,
                          post_chunk, c, r->pool) != APR_SUCCESS) {
        return iss_patch_fail(p, HTTP_INTERNAL_SERVER_ERROR, "no-sha256",
                              "SHA-256 is not available.");
    }
    (void)iss_upload_touch(c->session);
    st = iss_patch_read_body(p, post_body, c);
    if (st == OK && iss_frames_finish(c->frames) != APR_SUCCESS) {
        st = iss_patch_fail(p, HTTP_BAD_REQUEST, "truncated-chunk",
                            "The body ends inside a chunk; the %d complete "
                            "chunk(s) before it were kept.", stored(c));
    }
    (void)iss_upload_touch(c->session);
    return st;
}

static int post_handler(request_rec *r)
{
    iss_patch_t *p;
    post_t *c;
    int st;

    if (r->method_number != M_POST || !iss_is_enabled(r) || !is_chunks(r)
        || !iss_config_chunking(iss_config_dir(r))) {
        return DECLINED;
    }
    p = apr_pcalloc(r->pool, sizeof(*p));
    p->r = r;
    c = apr_pcalloc(r->pool, sizeof(*c));
    c->p = p;
    st = post(p, c);
    if (st != OK) {
        return iss_patch_send_error(p);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ISSLOGNO(01074)
                  "POST %s: %d chunk(s) staged in session %s", r->uri,
                  stored(c), iss_upload_id(c->session));
    apr_table_setn(r->headers_out, "ISS-Chunks-Stored",
                   apr_itoa(r->pool, stored(c)));
    r->status = HTTP_NO_CONTENT;
    return OK;
}

void iss_upload_register_hooks(apr_pool_t *p)
{
    ap_hook_handler(post_handler, NULL, NULL, APR_HOOK_FIRST);
}
