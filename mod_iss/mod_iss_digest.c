/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "mod_iss_digest.h"
#include "mod_iss_owncloud.h"
#include "mod_iss_config.h"
#include "mod_iss_provider.h"
#include "mod_iss_state.h"
#include "iss_manifest_bg.h"

#include <apr_strings.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_filter.h>

#define DIGEST_IN_FILTER "ISS_DIGEST_IN"

/* A digest computed from a file is cached only if the file was last
 * modified longer ago than this before the read began: a writer in the
 * same clock tick could change the bytes and keep size and mtime. */
#define SETTLE apr_time_from_sec(1)

/* What a request remembers per URI: a digest, or that there is none. */
typedef struct known_t {
    int found;
    unsigned char sha256[ISS_DIGEST_SHA256_LEN];
    iss_digest_sums_t sums;       /* the checksums known with it */
} known_t;

static apr_hash_t *known_of(request_rec *r)
{
    iss_request_t *req = iss_provider_request(r);

    if (req->digests == NULL) {
        req->digests = apr_hash_make(r->pool);
    }
    return req->digests;
}

void iss_digest_remember(request_rec *r, const char *uri,
                         const unsigned char *sha256)
{
    known_t *k = NULL;

    if (sha256) {
        k = apr_pcalloc(r->pool, sizeof(*k));
        k->found = 1;
        memcpy(k->sha256, sha256, ISS_DIGEST_SHA256_LEN);
    }
    apr_hash_set(known_of(r), apr_pstrdup(r->pool, uri), APR_HASH_KEY_STRING,
                 k);
}

/* Digests computed for files changed outside httpd are kept with one
 * store commit per request, when it ends (a PROPFIND or sync answer may
 * compute thousands; one fsynced commit each would cost seconds). */
typedef struct keep_t {
    request_rec *r;                 /* the main request */
    iss_store_t *store;
    iss_store_batch_t *batch;
    int n;
} keep_t;

static apr_status_t keep_flush(void *data)
{
    keep_t *kp = data;
    apr_status_t rv = iss_store_batch_commit(kp->batch);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, kp->r, ISSLOGNO(01052)
                      "cannot keep %d digest(s) of files changed outside "
                      "httpd in the state store (%s); they will be "
                      "computed again", kp->n,
                      iss_store_last_error(kp->store));
    }
    return APR_SUCCESS;
}

/* The main request of @a r, if it uses the same store, else @a r. */
static request_rec *main_of(request_rec *r)
{
    request_rec *main = r;

    while (main->main) {
        main = main->main;
    }
    return main == r || iss_state_same_location(main, r) ? main : r;
}

static void keep(request_rec *r, const char *rel, const iss_filedigest_t *d)
{
    request_rec *main = main_of(r);
    iss_request_t *mreq = iss_provider_request(main);
    keep_t *kp;

    if ((kp = mreq->keep) == NULL) {
        iss_store_t *store;

        if (iss_state_store(main, &store) != NULL) {
            return;
        }
        kp = mreq->keep = apr_pcalloc(main->pool, sizeof(*kp));
        kp->r = main;
        kp->store = store;
        kp->batch = iss_store_batch_make(store, main->pool);
        /* A pre-cleanup: it runs before the pool's sub-pools (the store
         * handle's among them) are destroyed. */
        apr_pool_pre_cleanup_register(main->pool, kp, keep_flush);
    }
    iss_filedigest_stage(kp->batch, rel, d, main->pool);
    kp->n++;
}

/* ---- looking records up -------------------------------------------------
 * One store read per file costs a DBM open (about 80 us): a PROPFIND of a
 * folder of 100,000 files would spend 8 s on them.  From the second file
 * of a folder a request asks about, it reads the records of every file
 * of the folder in one store transaction instead. */

typedef struct folder_t {
    int misses;
    apr_hash_t *records;          /* name -> iss_filedigest_t, once read */
} folder_t;

typedef struct fetch_ctx {
    const char *folder;           /* relative, "" for the root */
    apr_array_header_t *names;
    apr_hash_t *records;
    apr_pool_t *pool;
} fetch_ctx;

static apr_status_t fetch_txn(void *baton, iss_store_txn_t *txn)
{
    fetch_ctx *c = baton;
    apr_pool_t *iter;
    int i;

    apr_pool_create(&iter, c->pool);
    for (i = 0; i < c->names->nelts; i++) {
        const char *name = APR_ARRAY_IDX(c->names, i, const char *);
        const char *key;
        iss_filedigest_t d, *dp;
        apr_size_t vlen;
        void *val;

        apr_pool_clear(iter);
        key = iss_filedigest_key(*c->folder ? apr_pstrcat(iter, c->folder,
                                                          "/", name, NULL)
                                            : name, iter);
        if (iss_store_txn_get(txn, key, strlen(key), &val, &vlen, iter)
            == APR_SUCCESS
            && iss_filedigest_decode(val, vlen, &d) == APR_SUCCESS) {
            dp = apr_pmemdup(c->pool, &d, sizeof(d));
            apr_hash_set(c->records, name, APR_HASH_KEY_STRING, dp);
        }
    }
    apr_pool_destroy(iter);
    return APR_SUCCESS;
}

/* The records of every file of @a folder (@a dir on disk). */
static apr_hash_t *fetch_folder(request_rec *main, iss_store_t *store,
                                const char *folder, const char *dir)
{
    fetch_ctx c = { folder, apr_array_make(main->pool, 64, sizeof(char *)),
                    apr_hash_make(main->pool), main->pool };
    apr_finfo_t fi;
    apr_dir_t *d;

    if (apr_dir_open(&d, dir, main->pool) != APR_SUCCESS) {
        return c.records;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, d)
           == APR_SUCCESS) {
        if (fi.filetype == APR_REG
            && !iss_scan_ignored(iss_state_ignore(main), fi.name)) {
            APR_ARRAY_PUSH(c.names, const char *) = apr_pstrdup(main->pool,
                                                                fi.name);
        }
    }
    apr_dir_close(d);
    if (iss_store_txn(store, fetch_txn, &c, main->pool) != APR_SUCCESS) {
        apr_hash_clear(c.records);
    }
    return c.records;
}

/* The record of @a rel for the file @a fi, if there is one that matches:
 * from the folder's records once they were read, else one store read. */
static apr_status_t lookup(request_rec *r, iss_store_t *store,
                           const char *rel, const char *path,
                           const apr_finfo_t *fi, known_t *k)
{
    request_rec *main = main_of(r);
    iss_request_t *mreq;
    const char *slash = strrchr(rel, '/');
    const char *folder = slash ? apr_pstrmemdup(r->pool, rel,
                                                (apr_size_t)(slash - rel))
                               : "";
    const char *name = slash ? slash + 1 : rel;
    folder_t *fo;

    mreq = iss_provider_request(main);
    if (mreq->folders == NULL) {
        mreq->folders = apr_hash_make(main->pool);
    }
    fo = apr_hash_get(mreq->folders, folder, APR_HASH_KEY_STRING);
    if (fo == NULL) {
        fo = apr_pcalloc(main->pool, sizeof(*fo));
        apr_hash_set(mreq->folders, apr_pstrdup(main->pool, folder),
                     APR_HASH_KEY_STRING, fo);
    }
    if (fo->records == NULL && ++fo->misses >= 2) {
        fo->records = fetch_folder(main, store, folder,
                                   apr_pstrmemdup(r->pool, path,
                                                  strlen(path)
                                                  - strlen(name) - 1));
    }
    if (fo->records) {
        const iss_filedigest_t *d = apr_hash_get(fo->records, name,
                                                 APR_HASH_KEY_STRING);

        k->found = d && iss_filedigest_matches(d, fi);
        if (k->found) {
            memcpy(k->sha256, d->sha256, ISS_DIGEST_SHA256_LEN);
            k->sums = d->sums;
        }
        return APR_SUCCESS;
    }
    {
        iss_filedigest_t d;
        apr_status_t rv = iss_filedigest_get(store, rel, fi, &d, &k->found,
                                             r->pool);

        if (rv == APR_SUCCESS && k->found) {
            memcpy(k->sha256, d.sha256, ISS_DIGEST_SHA256_LEN);
            k->sums = d.sums;
        }
        return rv;
    }
}

/* lookup(), with a store error logged and turned into "not found";
 * *store becomes NULL then (nothing is kept in a store that fails). */
static void lookup_logged(request_rec *r, iss_store_t **store,
                          const char *uri, const char *rel, const char *path,
                          const apr_finfo_t *fi, known_t *k)
{
    apr_status_t rv = lookup(r, *store, rel, path, fi, k);

    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, ISSLOGNO(01049)
                      "cannot read the digest of %s from the state store "
                      "(%s); computing it", uri,
                      iss_store_last_error(*store));
        k->found = 0;
        *store = NULL;
    }
}

/* Whether @a k is a digest with the checksums @a sums too. */
static int enough(const known_t *k, unsigned sums)
{
    return k->found && (k->sums.have & sums) == sums;
}

/* Look up (unless @a looked) or compute the digest of the file @a f
 * (open, described by @a fi) at @a uri, with the checksums @a sums
 * (ISS_SUM_* bits; 0: the digest alone); @a store NULL: no store.
 * @a path only names it in messages. */
static void compute_file(request_rec *r, const char *uri, const char *rel,
                         apr_file_t *f, const apr_finfo_t *fi,
                         const char *path, iss_store_t *store, int looked,
                         unsigned sums, known_t *k)
{
    iss_filedigest_t d;
    apr_status_t rv;
    int stable;

    if (store && !looked) {
        lookup_logged(r, &store, uri, rel, path, fi, k);
        if (enough(k, sums)) {
            return;
        }
    }
    /* The checksums the location keeps come with every digest it reads
     * a file for: one read, whatever is asked next. */
    sums |= iss_config_oc_sums(iss_config_dir(r));
    rv = iss_filedigest_compute_file_sums(f, &d, sums, SETTLE, &stable,
                                          r->pool);
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01050)
                      "cannot read %s to compute its digest", path);
        return;
    }
    memcpy(k->sha256, d.sha256, ISS_DIGEST_SHA256_LEN);
    k->sums = d.sums;
    k->found = 1;
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ISSLOGNO(01051)
                  "computed the digest of %s (%" APR_OFF_T_FMT " bytes, "
                  "changed outside mod_iss)%s", uri, d.size,
                  stable ? "" : "; not kept, it changed very recently");
    if (store && stable) {
        keep(r, rel, &d);
    }
}

#define FILE_INFO (APR_FINFO_IDENT | APR_FINFO_SIZE | APR_FINFO_MTIME \
                   | APR_FINFO_TYPE | APR_FINFO_CTIME)

/* The store, opened once per main request (a sync answer makes one
 * sub-request per member). */
static iss_store_t *store_of(request_rec *r)
{
    iss_store_t *store;

    return iss_state_store(main_of(r), &store) == NULL ? store : NULL;
}

static void compute(request_rec *r, const char *uri, unsigned sums,
                    known_t *k)
{
    const char *rel = iss_state_rel_path(r, uri);
    const char *root = iss_state_root_fs(r);
    iss_store_t *store;
    const char *path;
    apr_file_t *f;
    apr_finfo_t fi, opened;

    if (rel == NULL || root == NULL || *rel == '\0') {
        return;
    }
    path = apr_pstrcat(r->pool, root, "/", rel, NULL);
    if (apr_stat(&fi, path, FILE_INFO, r->pool) != APR_SUCCESS
        || fi.filetype != APR_REG) {
        return;
    }
    /* The usual case: a record for the file as it is (no open). */
    if ((store = store_of(r)) != NULL) {
        lookup_logged(r, &store, uri, rel, path, &fi, k);
        if (enough(k, sums)) {
            return;
        }
    }
    if (apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY, 0,
                      r->pool) != APR_SUCCESS) {
        return;
    }
    /* Look again only if what was opened is not what was looked up. */
    if (apr_file_info_get(&opened, FILE_INFO, f) == APR_SUCCESS
        && opened.filetype == APR_REG) {
        compute_file(r, uri, rel, f, &opened, path, store,
                     opened.inode == fi.inode && opened.size == fi.size
                     && opened.mtime == fi.mtime, sums, k);
    }
    apr_file_close(f);
}

void iss_digest_of_file(request_rec *r, const char *uri, apr_file_t *f,
                        const apr_finfo_t *fi,
                        unsigned char out[ISS_DIGEST_SHA256_LEN], int *found)
{
    known_t k = { 0 };
    const char *rel = iss_state_rel_path(r, uri);

    compute_file(r, uri, rel, f, fi, uri, rel && *rel ? store_of(r) : NULL,
                 0, 0, &k);
    *found = k.found;
    if (k.found) {
        memcpy(out, k.sha256, ISS_DIGEST_SHA256_LEN);
    }
}

/* What the request knows of @a uri, with the checksums @a sums at least
 * when it knows anything. */
static const known_t *known(request_rec *r, const char *uri, unsigned sums)
{
    apr_hash_t *all = known_of(r);
    known_t *k = apr_hash_get(all, uri, APR_HASH_KEY_STRING);

    if (k == NULL || (k->found && !enough(k, sums))) {
        k = apr_pcalloc(r->pool, sizeof(*k));
        compute(r, uri, sums, k);
        apr_hash_set(all, apr_pstrdup(r->pool, uri), APR_HASH_KEY_STRING,
                     k);
    }
    return k;
}

void iss_digest_of_uri(request_rec *r, const char *uri,
                       unsigned char out[ISS_DIGEST_SHA256_LEN], int *found)
{
    const known_t *k = known(r, uri, 0);

    *found = k->found;
    if (k->found) {
        memcpy(out, k->sha256, ISS_DIGEST_SHA256_LEN);
    }
}

void iss_digest_sums_of_uri(request_rec *r, const char *uri, unsigned sums,
                            iss_digest_sums_t *out, int *found)
{
    const known_t *k = known(r, uri, sums);

    *found = enough(k, sums);
    if (*found) {
        *out = k->sums;
    }
}

const char *iss_digest_etag_of_uri(request_rec *r, const char *uri)
{
    unsigned char sha[ISS_DIGEST_SHA256_LEN];
    int found;

    iss_digest_of_uri(r, uri, sha, &found);
    return found ? iss_digest_etag(sha, r->pool) : NULL;
}

int iss_digest_wanted_by(request_rec *r)
{
    return iss_config_digest_always(iss_config_dir(r))
           || iss_digest_wanted(apr_table_get(r->headers_in,
                                              "Want-Repr-Digest"));
}

/* ---- PUT: the body's digest, verified against what the client says ---- */

typedef struct body_ctx {
    iss_digest_t *sha;                /* or: */
    iss_manifest_bg_t *builder;       /* the chunks' and the body's, on
                                       * a second thread */
    iss_digest_sums_ctx_t *sums;      /* ownCloud's checksums, or NULL */
    iss_digest_body_t body;
    int want_repr, want_content;      /* headers to check at the end */
    unsigned char repr[ISS_DIGEST_SHA256_LEN];
    unsigned char content[ISS_DIGEST_SHA256_LEN];
    iss_oc_put_t oc;                  /* OC-Checksum (ISSOwnCloudCompat) */
    int done;
} body_ctx;

const iss_digest_body_t *iss_digest_put_body(request_rec *r)
{
    return iss_provider_request(r)->put_body;
}

/* Refuse the PUT: answer 400 with our error body now, then fail the
 * body read with AP_FILTER_ERROR ("answered already"): mod_dav drops its
 * temporary file (the old file stays), sends nothing more and, quieted,
 * logs nothing; we log the refusal at info.  @a tag names the condition
 * (docs/protocol.md section 2.3). */
static apr_status_t refuse(ap_filter_t *f, const char *tag, const char *why)
{
    request_rec *r = f->r;
    dav_error err = { 0 };

    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, ISSLOGNO(01053)
                  "PUT %s refused: %s", r->uri, why);
    ap_remove_input_filter(f);
    err.status = HTTP_BAD_REQUEST;
    err.desc = apr_pstrcat(r->pool, why, " Nothing was stored.", NULL);
    iss_error_answer(r, &err, tag);
    return AP_FILTER_ERROR;
}

/* A header that cannot be honoured: the first read fails (fail_filter). */
typedef struct fail_t {
    const char *tag;
    const char *why;
} fail_t;

static apr_status_t body_filter(ap_filter_t *f, apr_bucket_brigade *bb,
                                ap_input_mode_t mode,
                                apr_read_type_e block,
                                apr_off_t readbytes)
{
    body_ctx *ctx = f->ctx;
    unsigned char sha[ISS_DIGEST_SHA256_LEN];
    apr_bucket *b;
    apr_status_t rv;

    rv = ap_get_brigade(f->next, bb, mode, block, readbytes);
    if (rv != APR_SUCCESS || mode != AP_MODE_READBYTES || ctx->done) {
        return rv;
    }
    for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
         b = APR_BUCKET_NEXT(b)) {
        const char *data;
        apr_size_t len;

        if (APR_BUCKET_IS_EOS(b)) {
            ctx->done = 1;
            break;
        }
        if (APR_BUCKET_IS_METADATA(b)) {
            continue;
        }
        if ((rv = apr_bucket_read(b, &data, &len, APR_BLOCK_READ))
            != APR_SUCCESS) {
            return rv;
        }
        if (ctx->builder) {
            if ((rv = iss_manifest_bg_feed(ctx->builder, data, len))
                != APR_SUCCESS) {
                return rv;
            }
        }
        else {
            iss_digest_update(ctx->sha, data, len);
        }
        if (ctx->sums) {
            iss_digest_sums_update(ctx->sums, data, len);
        }
        ctx->body.length += (apr_off_t)len;
    }
    if (!ctx->done) {
        return APR_SUCCESS;
    }
    if (ctx->builder) {
        if ((rv = iss_manifest_bg_finish(ctx->builder, &ctx->body.manifest))
            != APR_SUCCESS) {
            return rv;
        }
        memcpy(sha, ctx->body.manifest->file_sha256, sizeof(sha));
    }
    else {
        iss_digest_final(ctx->sha, sha);
    }
    if (ctx->want_repr && memcmp(sha, ctx->repr, sizeof(sha))) {
        return refuse(f, "repr-digest-mismatch",
                      apr_pstrcat(f->r->pool, "The body does not match "
                                  "its Repr-Digest header: its SHA-256 is ",
                                  iss_digest_field(sha, f->r->pool), ".",
                                  NULL));
    }
    if (ctx->want_content && memcmp(sha, ctx->content, sizeof(sha))) {
        return refuse(f, "digest-mismatch",
                      apr_pstrcat(f->r->pool, "The body does not match "
                                  "its Content-Digest header: its SHA-256 "
                                  "is ", iss_digest_field(sha, f->r->pool),
                                  ".", NULL));
    }
    if (ctx->sums) {
        const char *why;

        iss_digest_sums_final(ctx->sums, &ctx->body.sums);
        if ((why = iss_oc_put_check(f->r, &ctx->oc, sha, &ctx->body.sums))
            != NULL) {
            return refuse(f, "checksum-mismatch", why);
        }
        /* Kept: what the location keeps, not what one request asked. */
        ctx->body.sums.have &= iss_config_oc_sums(iss_config_dir(f->r));
    }
    memcpy(ctx->body.sha256, sha, sizeof(sha));
    iss_provider_request(f->r)->put_body = &ctx->body;
    return APR_SUCCESS;
}

int iss_digest_request_field(request_rec *r, const char *name,
                             unsigned char out[ISS_DIGEST_SHA256_LEN],
                             int *want, const char **why)
{
    const char *v = apr_table_get(r->headers_in, name);

    *want = 0;
    if (v == NULL) {
        return 1;
    }
    if (iss_digest_parse(v, out, want) != APR_SUCCESS) {
        *why = apr_pstrcat(r->pool, "The ", name, " header is malformed "
                           "(expected sha-256=:<base64 of 32 bytes>:).",
                           NULL);
        return 0;
    }
    return 1;
}

/* A filter that fails the first read with @a why (a header that cannot
 * be honoured: the PUT must not store anything). */
static apr_status_t fail_filter(ap_filter_t *f, apr_bucket_brigade *bb,
                                ap_input_mode_t mode,
                                apr_read_type_e block,
                                apr_off_t readbytes)
{
    const fail_t *why = f->ctx;

    return refuse(f, why->tag, why->why);
}

static void add_fail_filter(request_rec *r, const char *tag, const char *why)
{
    fail_t *ctx = apr_palloc(r->pool, sizeof(*ctx));

    ctx->tag = tag;
    ctx->why = why;
    ap_add_input_filter("ISS_DIGEST_FAIL", ctx, r, r->connection);
}

static void insert_filter(request_rec *r)
{
    body_ctx *ctx;
    const char *why = NULL, *tag;

    if (r->method_number != M_PUT || r->main || !iss_is_enabled(r)) {
        return;
    }
    ctx = apr_pcalloc(r->pool, sizeof(*ctx));
    ctx->body.whole = apr_table_get(r->headers_in, "Content-Range") == NULL;
    if (!iss_digest_request_field(r, "Repr-Digest", ctx->repr, &ctx->want_repr, &why)
        || !iss_digest_request_field(r, "Content-Digest", ctx->content,
                         &ctx->want_content, &why)) {
        add_fail_filter(r, "invalid-digest", why);
        return;
    }
    if (!iss_oc_put_prepare(r, &ctx->oc, &tag, &why)) {
        add_fail_filter(r, tag, why);
        return;
    }
    if (!ctx->body.whole && (ctx->want_repr || ctx->want_content
                             || ctx->oc.check)) {
        add_fail_filter(r, "digest-with-range", "A PUT with Content-Range "
                        "writes in place, so its digest could only be "
                        "checked after the file changed: send the whole "
                        "file, or no digest header.");
        return;
    }
    if (ctx->body.whole && (ctx->oc.sums | ctx->oc.want.have)
        && iss_digest_sums_create(&ctx->sums, ctx->oc.sums
                                  | ctx->oc.want.have, r->pool)
           != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ISSLOGNO(01076)
                      "SHA-1 or MD5 is not available from OpenSSL; PUT %s "
                      "is stored without them", r->uri);
        ctx->sums = NULL;
        if (ctx->oc.check) {
            add_fail_filter(r, "checksum-unsupported", "The server cannot "
                            "compute the checksum OC-Checksum names.");
            return;
        }
    }
    if (ctx->body.whole && iss_config_chunking(iss_config_dir(r))
        && iss_manifest_bg_create(&ctx->builder,
                                  iss_config_chunk_sizes(iss_config_dir(r)),
                                  r->pool) == APR_SUCCESS) {
        ap_add_input_filter(DIGEST_IN_FILTER, ctx, r, r->connection);
        return;
    }
    if (iss_digest_create(&ctx->sha, r->pool) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ISSLOGNO(01054)
                      "SHA-256 is not available from OpenSSL; PUT %s is "
                      "stored without a digest", r->uri);
        return;
    }
    ap_add_input_filter(DIGEST_IN_FILTER, ctx, r, r->connection);
}

void iss_digest_register_hooks(apr_pool_t *p)
{
    ap_register_input_filter(DIGEST_IN_FILTER, body_filter, NULL,
                             AP_FTYPE_RESOURCE);
    ap_register_input_filter("ISS_DIGEST_FAIL", fail_filter, NULL,
                             AP_FTYPE_RESOURCE);
    ap_hook_insert_filter(insert_filter, NULL, NULL, APR_HOOK_MIDDLE);
}
