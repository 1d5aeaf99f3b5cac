/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "sync_xfer.h"
#include "sync_dav.h"
#include "sync_local.h"
#include "sync_state.h"
#include "sync_ui.h"
#include "iss_bytes.h"
#include "iss_fdio.h"
#include "iss_frames.h"

#include <apr_lib.h>
#include <apr_portable.h>
#include <apr_strings.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RANGES_PER_REQUEST 64
#define POST_BYTES         (8u * 1024 * 1024)
#define COPY_BUF           (1024u * 1024)
#define MANIFEST_MAX_BODY  (64u * 1024 * 1024)

static const char *errtext(apr_status_t rv, apr_pool_t *pool)
{
    char buf[160];

    return apr_pstrdup(pool, apr_strerror(rv, buf, sizeof(buf)));
}

static sync_xfer_e http(sync_ctx_t *ctx, sync_req_t *req, sync_resp_t *resp,
                        apr_pool_t *pool)
{
    apr_status_t rv = sync_http_do(ctx->http, req, resp, pool);

    sync_ui_request_done(ctx->ui);
    if (rv != APR_SUCCESS && resp->sink_rv == APR_SUCCESS
        && !resp->too_big) {
        return SYNC_XFER_GONE;
    }
    return rv == APR_SUCCESS ? SYNC_XFER_OK : SYNC_XFER_FAILED;
}

/* Make the file @a fd @a size bytes long, calling ftruncate() only when
 * its length differs: some file systems (FAT under FUSE) refuse it. */
static int size_to(int fd, apr_uint64_t size)
{
    struct stat sb;

    if (fstat(fd, &sb) == 0 && (apr_uint64_t)sb.st_size == size) {
        return 0;
    }
    return ftruncate(fd, (off_t)size);
}

static int file_fd(apr_file_t *f)
{
    apr_os_file_t fd;

    apr_os_file_get(&fd, f);
    return fd;
}

/* SHA-256 of [0, size) of @a fd. */
static apr_status_t hash_fd(int fd, apr_uint64_t size,
                            unsigned char out[SHA_LEN], apr_pool_t *pool)
{
    iss_digest_t *d;
    char *buf;
    apr_uint64_t off = 0;
    apr_status_t rv;

    if ((rv = iss_digest_create(&d, pool)) != APR_SUCCESS) {
        return rv;
    }
    if ((buf = malloc(COPY_BUF)) == NULL) {
        return APR_ENOMEM;
    }
    while (off < size) {
        apr_size_t n = size - off < COPY_BUF ? (apr_size_t)(size - off)
                                             : COPY_BUF;

        if ((rv = iss_pread_full(fd, buf, n, off)) != APR_SUCCESS) {
            free(buf);
            return rv;
        }
        iss_digest_update(d, buf, n);
        off += n;
    }
    free(buf);
    iss_digest_final(d, out);
    return APR_SUCCESS;
}

/* ---- weak ETags ----------------------------------------------------------------- */

const char *sync_xfer_strong_etag(sync_ctx_t *ctx, const char *rel,
                                  const char *etag, int *changed,
                                  apr_pool_t *pool)
{
    int tries;

    *changed = 0;
    if (etag && !sync_etag_is_weak(etag)) {
        return etag;
    }
    /* mod_dav_fs calls a file changed within the current second weak,
     * and If-Match never matches a weak ETag: ask again, a second later
     * if need be, rather than write without a condition. */
    for (tries = 0; tries < 4; tries++) {
        sync_remote_t r;

        if (sync_dav_stat(ctx, rel, &r, pool) != APR_SUCCESS) {
            return NULL;
        }
        if (r.kind == SYNC_NONE || !sync_etag_weak_eq(r.etag, etag)) {
            *changed = 1;
            return NULL;
        }
        if (!sync_etag_is_weak(r.etag)) {
            return r.etag;
        }
        apr_sleep(apr_time_from_msec(1100));
    }
    return NULL;
}

/* ---- downloads: the whole file ------------------------------------------------------ */

typedef struct whole_t {
    int fd;
    apr_uint64_t n;
    iss_digest_t *d;
    iss_manifest_builder_t *b;
} whole_t;

static apr_status_t whole_sink(void *baton, const char *data, apr_size_t len)
{
    whole_t *w = baton;
    apr_status_t rv = iss_pwrite_full(w->fd, data, len, w->n);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    w->n += len;
    iss_digest_update(w->d, data, len);
    if (w->b) {
        return iss_manifest_builder_feed(w->b, data, len);
    }
    return APR_SUCCESS;
}

/* Check an answer's Repr-Digest (if any) against what arrived. */
static int repr_digest_ok(const sync_resp_t *resp,
                          const unsigned char sha[SHA_LEN])
{
    const char *v = apr_table_get(resp->headers, "Repr-Digest");
    unsigned char want[SHA_LEN];
    int found = 0;

    if (v == NULL) {
        return 1;
    }
    if (iss_digest_parse(v, want, &found) != APR_SUCCESS) {
        return 0;
    }
    return !found || memcmp(want, sha, SHA_LEN) == 0;
}

static sync_xfer_e get_whole(sync_ctx_t *ctx, const char *rel, int fd,
                             sync_result_t *res, const char **why,
                             apr_pool_t *pool)
{
    sync_req_t req;
    sync_resp_t resp;
    whole_t w;
    sync_xfer_e x;

    memset(&w, 0, sizeof(w));
    w.fd = fd;
    if (size_to(fd, 0) != 0
        || iss_digest_create(&w.d, pool) != APR_SUCCESS
        || (ctx->server.chunking
            && iss_manifest_builder_create(&w.b, &ctx->server.params, pool)
               != APR_SUCCESS)) {
        *why = "cannot prepare the temporary file";
        return SYNC_XFER_FAILED;
    }
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = sync_dav_url(ctx, rel, 0, pool);
    req.sink = whole_sink;
    req.sink_baton = &w;
    sync_req_header(&req, pool, "Want-Repr-Digest", "sha-256=1");
    x = http(ctx, &req, &resp, pool);
    if (x == SYNC_XFER_GONE) {
        *why = apr_psprintf(pool, "the server stopped answering (%s)",
                            resp.error);
        return x;
    }
    if (x != SYNC_XFER_OK || resp.status != 200) {
        *why = resp.sink_rv ? apr_psprintf(pool, "cannot write it: %s",
                                           errtext(resp.sink_rv, pool))
                            : apr_psprintf(pool, "GET: %s",
                                           sync_resp_describe(&resp, pool));
        return resp.status == 0 && resp.sink_rv == APR_SUCCESS
               ? SYNC_XFER_GONE : SYNC_XFER_FAILED;
    }
    iss_digest_final(w.d, res->sha);
    res->has_sha = 1;
    res->size = w.n;
    res->manifest = NULL;
    if (w.b && iss_manifest_builder_finish(w.b, &res->manifest)
               != APR_SUCCESS) {
        res->manifest = NULL;
    }
    if (!repr_digest_ok(&resp, res->sha)) {
        *why = "the bytes received do not match the server's Repr-Digest";
        return SYNC_XFER_BADANSWER;
    }
    res->etag = apr_table_get(resp.headers, "ETag");
    if (res->etag) {
        res->etag = apr_pstrdup(ctx->pool, res->etag);
    }
    return SYNC_XFER_OK;
}

/* ---- downloads: the same content is already here ------------------------------------- */

static int copy_local_same(sync_ctx_t *ctx, const unsigned char sha[SHA_LEN],
                           int fd, sync_result_t *res, apr_pool_t *pool)
{
    apr_array_header_t *paths = sync_state_sha_find(ctx->state, sha, 4, pool);
    int i;

    for (i = 0; i < paths->nelts; i++) {
        const char *p = APR_ARRAY_IDX(paths, i, const char *);
        sync_item_t *src = sync_item_find(ctx, p);
        unsigned char got[SHA_LEN];
        iss_digest_t *d;
        iss_manifest_builder_t *b = NULL;
        char *buf;
        apr_uint64_t off = 0;
        int in, ok = 1;

        if (src == NULL || !src->local.unchanged) {
            continue;
        }
        in = open(sync_local_path(ctx, p, pool), O_RDONLY | O_NOFOLLOW);
        if (in < 0) {
            continue;
        }
        if (iss_digest_create(&d, pool) != APR_SUCCESS
            || (buf = malloc(COPY_BUF)) == NULL) {
            close(in);
            continue;
        }
        if (ctx->server.chunking) {
            iss_manifest_builder_create(&b, &ctx->server.params, pool);
        }
        if (size_to(fd, 0) != 0) {
            ok = 0;
        }
        while (ok) {
            ssize_t n = read(in, buf, COPY_BUF);

            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                ok = n == 0;
                break;
            }
            if (iss_pwrite_full(fd, buf, (apr_size_t)n, off) != APR_SUCCESS) {
                ok = 0;
                break;
            }
            iss_digest_update(d, buf, (apr_size_t)n);
            if (b) {
                iss_manifest_builder_feed(b, buf, (apr_size_t)n);
            }
            off += (apr_uint64_t)n;
        }
        free(buf);
        close(in);
        iss_digest_final(d, got);
        if (ok && memcmp(got, sha, SHA_LEN) == 0) {
            memcpy(res->sha, got, SHA_LEN);
            res->has_sha = 1;
            res->size = off;
            res->manifest = NULL;
            if (b && iss_manifest_builder_finish(b, &res->manifest)
                     != APR_SUCCESS) {
                res->manifest = NULL;
            }
            sync_ui_info(ctx->ui, "  content found locally in %s", p);
            return 1;
        }
    }
    return 0;
}

/* ---- downloads: chunk by chunk ---------------------------------------------------------- */

typedef struct span_t {
    apr_uint64_t start, end;        /* inclusive */
} span_t;

enum { RM_UNDECIDED, RM_SINGLE, RM_MULTI, RM_WHOLE, RM_DONE };
enum { MP_BOUNDARY, MP_HEADERS, MP_BODY };

typedef struct ranges_t {
    sync_resp_t *resp;
    int fd;
    apr_uint64_t file_size;
    int mode, mp;
    const char *boundary;           /* "--" + the boundary */
    char line[1024];
    apr_size_t llen;
    apr_uint64_t pos, left;         /* where the next bytes go, how many */
    apr_uint64_t got;               /* range bytes written */
    whole_t whole;                  /* RM_WHOLE */
    const char *why;
    apr_pool_t *pool;
} ranges_t;

/* "bytes A-B/TOTAL" into [A, B]; 0 if malformed or outside the file. */
static int parse_content_range(const char *v, apr_uint64_t size,
                               apr_uint64_t *a, apr_uint64_t *b)
{
    char *end;

    if (v == NULL || strncasecmp(v, "bytes ", 6) != 0) {
        return 0;
    }
    *a = (apr_uint64_t)apr_strtoi64(v + 6, &end, 10);
    if (*end != '-') {
        return 0;
    }
    *b = (apr_uint64_t)apr_strtoi64(end + 1, &end, 10);
    return *end == '/' && *a <= *b && *b < size;
}

static const char *boundary_of(const char *ct, apr_pool_t *pool)
{
    const char *p;
    char *b, *e;

    if (ct == NULL || strncasecmp(ct, "multipart/byteranges", 20) != 0
        || (p = strstr(ct, "boundary=")) == NULL) {
        return NULL;
    }
    p += 9;
    b = apr_pstrdup(pool, *p == '"' ? p + 1 : p);
    for (e = b; *e && *e != '"' && *e != ';' && !apr_isspace(*e); e++) {
    }
    *e = '\0';
    return *b ? apr_pstrcat(pool, "--", b, NULL) : NULL;
}

static apr_status_t ranges_line(ranges_t *r, apr_pool_t *pool)
{
    const char *line = r->line;
    apr_uint64_t a, b;

    if (r->mp == MP_BOUNDARY) {
        apr_size_t bl = strlen(r->boundary);

        if (r->llen == 0) {
            return APR_SUCCESS;         /* the CRLF after a part */
        }
        if (strncmp(line, r->boundary, bl) == 0) {
            if (strcmp(line + bl, "--") == 0) {
                r->mode = RM_DONE;
            }
            else if (line[bl] == '\0') {
                r->mp = MP_HEADERS;
                r->pos = r->left = 0;
            }
            else {
                r->why = "a multipart answer with a bad boundary line";
                return APR_EGENERAL;
            }
        }
        return APR_SUCCESS;             /* preamble */
    }
    /* MP_HEADERS */
    if (r->llen == 0) {
        if (r->left == 0) {
            r->why = "a multipart part without a Content-Range";
            return APR_EGENERAL;
        }
        r->mp = MP_BODY;
        return APR_SUCCESS;
    }
    if (strncasecmp(line, "Content-Range:", 14) == 0) {
        const char *v = line + 14;

        while (*v == ' ' || *v == '\t') {
            v++;
        }
        if (!parse_content_range(v, r->file_size, &a, &b)) {
            r->why = "a part's Content-Range is outside the file";
            return APR_EGENERAL;
        }
        r->pos = a;
        r->left = b - a + 1;
    }
    (void)pool;
    return APR_SUCCESS;
}

static apr_status_t ranges_sink(void *baton, const char *data, apr_size_t len)
{
    ranges_t *r = baton;
    apr_status_t rv;

    if (r->mode == RM_UNDECIDED) {
        const char *ct = apr_table_get(r->resp->headers, "Content-Type");
        apr_uint64_t a, b;

        if (r->resp->status == 200) {
            /* The file changed, or the server ignored the ranges: this is
             * the whole (new) file. */
            r->mode = RM_WHOLE;
            if (size_to(r->fd, 0) != 0) {
                return APR_FROM_OS_ERROR(errno);
            }
        }
        else if ((r->boundary = boundary_of(ct, r->pool))
                 != NULL) {
            r->mode = RM_MULTI;
            r->mp = MP_BOUNDARY;
        }
        else if (parse_content_range(apr_table_get(r->resp->headers,
                                                   "Content-Range"),
                                     r->file_size, &a, &b)) {
            r->mode = RM_SINGLE;
            r->pos = a;
            r->left = b - a + 1;
        }
        else {
            r->why = "a 206 answer without a usable Content-Range";
            return APR_EGENERAL;
        }
    }
    if (r->mode == RM_WHOLE) {
        return whole_sink(&r->whole, data, len);
    }
    while (len) {
        if (r->mode == RM_SINGLE || (r->mode == RM_MULTI && r->mp == MP_BODY)) {
            apr_size_t n = len < r->left ? len : (apr_size_t)r->left;

            if (n == 0) {
                if (r->mode == RM_SINGLE) {
                    r->why = "more bytes than the Content-Range says";
                    return APR_EGENERAL;
                }
                r->mp = MP_BOUNDARY;
                continue;
            }
            if ((rv = iss_pwrite_full(r->fd, data, n, r->pos)) != APR_SUCCESS) {
                return rv;
            }
            r->pos += n;
            r->left -= n;
            r->got += n;
            data += n;
            len -= n;
            if (r->left == 0 && r->mode == RM_MULTI) {
                r->mp = MP_BOUNDARY;
                r->llen = 0;
            }
            continue;
        }
        if (r->mode == RM_DONE) {
            return APR_SUCCESS;         /* epilogue */
        }
        /* A line of the multipart framing. */
        if (*data == '\n') {
            if (r->llen && r->line[r->llen - 1] == '\r') {
                r->llen--;
            }
            r->line[r->llen] = '\0';
            if ((rv = ranges_line(r, NULL)) != APR_SUCCESS) {
                return rv;
            }
            r->llen = 0;
        }
        else if (r->llen + 1 >= sizeof(r->line)) {
            r->why = "a multipart header line is too long";
            return APR_EGENERAL;
        }
        else {
            r->line[r->llen++] = *data;
        }
        data++;
        len--;
    }
    return APR_SUCCESS;
}

/* Fetch @a spans of the version @a etag into @a fd.  *whole = 1 if the
 * server sent the whole file instead (it changed, or ranges were
 * refused): then res holds that version. */
static sync_xfer_e get_spans(sync_ctx_t *ctx, const char *rel,
                             const char *etag, const span_t *spans, int n,
                             apr_uint64_t file_size, int fd, int *whole,
                             sync_result_t *res, const char **why,
                             apr_pool_t *pool)
{
    sync_req_t req;
    sync_resp_t resp;
    ranges_t r;
    char *range;
    apr_size_t cap = 16 + (apr_size_t)n * 44, o;
    sync_xfer_e x;
    int i;

    range = apr_palloc(pool, cap);
    o = (apr_size_t)apr_snprintf(range, cap, "bytes=");
    for (i = 0; i < n; i++) {
        o += (apr_size_t)apr_snprintf(range + o, cap - o, "%s%" APR_UINT64_T_FMT
                                      "-%" APR_UINT64_T_FMT, i ? "," : "",
                                      spans[i].start, spans[i].end);
    }
    memset(&r, 0, sizeof(r));
    r.resp = &resp;
    r.pool = pool;
    r.fd = fd;
    r.file_size = file_size;
    r.whole.fd = fd;
    if (iss_digest_create(&r.whole.d, pool) != APR_SUCCESS) {
        return SYNC_XFER_FAILED;
    }
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = sync_dav_url(ctx, rel, 0, pool);
    req.sink = ranges_sink;
    req.sink_baton = &r;
    sync_req_header(&req, pool, "Range", range);
    sync_req_header(&req, pool, "If-Range", etag);
    sync_req_header(&req, pool, "Want-Repr-Digest", "sha-256=1");
    x = http(ctx, &req, &resp, pool);
    if (x == SYNC_XFER_GONE) {
        *why = apr_psprintf(pool, "the server stopped answering (%s)",
                            resp.error);
        return x;
    }
    if (x != SYNC_XFER_OK || (resp.status != 206 && resp.status != 200)) {
        *why = r.why ? r.why
             : resp.sink_rv ? errtext(resp.sink_rv, pool)
             : apr_psprintf(pool, "GET (ranges): %s",
                            sync_resp_describe(&resp, pool));
        return r.why ? SYNC_XFER_BADANSWER : SYNC_XFER_FAILED;
    }
    *whole = r.mode == RM_WHOLE;
    if (*whole) {
        iss_digest_final(r.whole.d, res->sha);
        res->has_sha = 1;
        res->size = r.whole.n;
        res->manifest = NULL;
        if (!repr_digest_ok(&resp, res->sha)) {
            *why = "the bytes received do not match the server's Repr-Digest";
            return SYNC_XFER_BADANSWER;
        }
        if (size_to(fd, r.whole.n) != 0) {
            return SYNC_XFER_FAILED;
        }
        res->etag = apr_table_get(resp.headers, "ETag");
        if (res->etag) {
            res->etag = apr_pstrdup(ctx->pool, res->etag);
        }
        return SYNC_XFER_OK;
    }
    if (r.mode == RM_MULTI && r.mp == MP_BODY && r.left) {
        *why = "the multipart answer ends inside a part";
        return SYNC_XFER_BADANSWER;
    }
    if (r.mode == RM_SINGLE && r.left) {
        *why = "the answer ends inside its range";
        return SYNC_XFER_BADANSWER;
    }
    return SYNC_XFER_OK;
}

static int entry_cmp_sha(const iss_manifest_entry_t *e,
                         const unsigned char *sha)
{
    return memcmp(e->sha256, sha, SHA_LEN) == 0;
}

static sync_xfer_e fetch_by_manifest(sync_ctx_t *ctx, const char *rel,
                                     const sync_remote_t *rem, int fd,
                                     sync_result_t *res, const char **why,
                                     apr_pool_t *pool)
{
    sync_req_t req;
    sync_resp_t resp;
    iss_manifest_limits_t lim;
    iss_manifest_t *m;
    const char *ct, *mtag, *etag;
    apr_size_t tl;
    apr_hash_t *placed;             /* id -> entry already in the file */
    apr_array_header_t *fetch;      /* iss_manifest_entry_t * to fetch */
    apr_array_header_t *dups;       /* iss_manifest_entry_t * to copy */
    span_t *spans;
    unsigned char *buf = NULL, got[SHA_LEN];
    int src_fd = -1, nspans = 0, i, whole = 0;
    const char *src_path = NULL;
    apr_status_t rv;
    sync_xfer_e x;
    apr_uint64_t from_local = 0;

    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = sync_dav_url(ctx, rel, 0, pool);
    req.max_body = MANIFEST_MAX_BODY;
    sync_req_header(&req, pool, "Accept", ISS_MANIFEST_MEDIA_TYPE);
    x = http(ctx, &req, &resp, pool);
    if (x == SYNC_XFER_GONE) {
        *why = apr_psprintf(pool, "the server stopped answering (%s)",
                            resp.error);
        return x;
    }
    ct = apr_table_get(resp.headers, "Content-Type");
    mtag = apr_table_get(resp.headers, "ETag");
    if (x != SYNC_XFER_OK || resp.status != 200 || ct == NULL
        || strncasecmp(ct, ISS_MANIFEST_MEDIA_TYPE,
                       sizeof(ISS_MANIFEST_MEDIA_TYPE) - 1) != 0
        || mtag == NULL || (tl = strlen(mtag)) < 6
        || strcmp(mtag + tl - 5, ".ism\"") != 0) {
        /* No manifest here: the whole file. */
        return get_whole(ctx, rel, fd, res, why, pool);
    }
    etag = apr_pstrcat(pool, apr_pstrmemdup(pool, mtag, tl - 5), "\"", NULL);
    lim.max_entries = (apr_uint32_t)(resp.body_len / ISS_MANIFEST_ENTRY_LEN
                                     + 1);
    lim.max_file_size = APR_UINT64_C(1) << 62;
    lim.params = &ctx->server.params;
    rv = iss_manifest_parse(resp.body, resp.body_len, &lim, &m, pool);
    if (rv != APR_SUCCESS) {
        *why = apr_psprintf(pool, "the server's manifest does not add up: %s",
                            iss_manifest_error_text(rv)
                            ? iss_manifest_error_text(rv) : "?");
        return SYNC_XFER_BADANSWER;
    }
    if (rem->has_sha && sync_etag_weak_eq(etag, rem->etag)
        && memcmp(m->file_sha256, rem->sha, SHA_LEN) != 0) {
        *why = "the server's manifest is not of the content it lists";
        return SYNC_XFER_BADANSWER;
    }
    if (size_to(fd, m->file_size) != 0) {
        /* No sparse file here (FAT under FUSE refuses ftruncate): the
         * chunks cannot go to their places out of order; the whole file
         * then, written in order. */
        sync_ui_info(ctx->ui, "  %s: cannot size a file here (%s); "
                     "fetching it whole", rel, strerror(errno));
        return get_whole(ctx, rel, fd, res, why, pool);
    }
    if ((buf = malloc(ctx->server.params.max_size)) == NULL) {
        return SYNC_XFER_FAILED;
    }
    placed = apr_hash_make(pool);
    fetch = apr_array_make(pool, 16, sizeof(iss_manifest_entry_t *));
    dups = apr_array_make(pool, 4, sizeof(iss_manifest_entry_t *));
    /* 1. Chunks found in local files (each read checked against its id). */
    for (i = 0; i < (int)m->count; i++) {
        iss_manifest_entry_t *e = &m->entries[i];
        apr_array_header_t *locs;
        int j, found = 0;

        if (apr_hash_get(placed, e->sha256, SHA_LEN)) {
            APR_ARRAY_PUSH(dups, iss_manifest_entry_t *) = e;
            continue;
        }
        locs = sync_state_chunk_find(ctx->state, e->sha256, 4, pool);
        for (j = 0; j < locs->nelts && !found; j++) {
            sync_chunk_loc_t *l = &APR_ARRAY_IDX(locs, j, sync_chunk_loc_t);
            iss_digest_t *d;

            if (l->len != e->length) {
                continue;
            }
            if (src_path == NULL || strcmp(src_path, l->path) != 0) {
                if (src_fd >= 0) {
                    close(src_fd);
                }
                src_path = l->path;
                src_fd = open(sync_local_path(ctx, l->path, pool),
                              O_RDONLY | O_NOFOLLOW);
            }
            if (src_fd < 0
                || iss_pread_full(src_fd, buf, e->length, l->off) != APR_SUCCESS
                || iss_digest_create(&d, pool) != APR_SUCCESS) {
                continue;
            }
            iss_digest_update(d, buf, e->length);
            iss_digest_final(d, got);
            if (memcmp(got, e->sha256, SHA_LEN) == 0
                && iss_pwrite_full(fd, buf, e->length, e->offset) == APR_SUCCESS) {
                found = 1;
                from_local += e->length;
            }
        }
        if (found) {
            apr_hash_set(placed, e->sha256, SHA_LEN, e);
        }
        else {
            APR_ARRAY_PUSH(fetch, iss_manifest_entry_t *) = e;
            apr_hash_set(placed, e->sha256, SHA_LEN, e);
        }
    }
    if (src_fd >= 0) {
        close(src_fd);
    }
    sync_ui_info(ctx->ui, "  %s: %u chunks, %d to fetch (%s found locally)",
                 rel, m->count, fetch->nelts,
                 sync_ui_bytes(from_local, pool));
    /* 2. The others, by ranges of this version, adjacent ones merged. */
    spans = apr_palloc(pool, sizeof(span_t) * (RANGES_PER_REQUEST + 1));
    for (i = 0; i <= fetch->nelts && !whole; i++) {
        iss_manifest_entry_t *e = i < fetch->nelts
            ? APR_ARRAY_IDX(fetch, i, iss_manifest_entry_t *) : NULL;

        if (e && nspans && spans[nspans - 1].end + 1 == e->offset) {
            spans[nspans - 1].end = e->offset + e->length - 1;
            continue;
        }
        if (nspans == RANGES_PER_REQUEST || (e == NULL && nspans)) {
            x = get_spans(ctx, rel, etag, spans, nspans, m->file_size, fd,
                          &whole, res, why, pool);
            if (x != SYNC_XFER_OK) {
                free(buf);
                return x;
            }
            nspans = 0;
        }
        if (e) {
            spans[nspans].start = e->offset;
            spans[nspans].end = e->offset + e->length - 1;
            nspans++;
        }
    }
    if (whole) {
        free(buf);
        return SYNC_XFER_OK;            /* res holds the new version */
    }
    /* 3. Every fetched chunk against its id, repeats copied. */
    for (i = 0; i < fetch->nelts; i++) {
        iss_manifest_entry_t *e = APR_ARRAY_IDX(fetch, i,
                                                iss_manifest_entry_t *);
        iss_digest_t *d;

        if (iss_pread_full(fd, buf, e->length, e->offset) != APR_SUCCESS
            || iss_digest_create(&d, pool) != APR_SUCCESS) {
            free(buf);
            *why = "cannot read back the temporary file";
            return SYNC_XFER_FAILED;
        }
        iss_digest_update(d, buf, e->length);
        iss_digest_final(d, got);
        if (!entry_cmp_sha(e, got)) {
            free(buf);
            *why = apr_psprintf(pool, "chunk %s from the server does not "
                                "match its id", iss_hex_id(e->sha256, pool));
            return SYNC_XFER_BADANSWER;
        }
    }
    for (i = 0; i < dups->nelts; i++) {
        iss_manifest_entry_t *e = APR_ARRAY_IDX(dups, i,
                                                iss_manifest_entry_t *);
        iss_manifest_entry_t *first = apr_hash_get(placed, e->sha256,
                                                   SHA_LEN);

        if (iss_pread_full(fd, buf, e->length, first->offset) != APR_SUCCESS
            || iss_pwrite_full(fd, buf, e->length, e->offset) != APR_SUCCESS) {
            free(buf);
            *why = "cannot copy a repeated chunk";
            return SYNC_XFER_FAILED;
        }
    }
    free(buf);
    /* 4. The whole against the manifest. */
    if (hash_fd(fd, m->file_size, got, pool) != APR_SUCCESS
        || memcmp(got, m->file_sha256, SHA_LEN) != 0) {
        *why = "the assembled file does not match the server's manifest";
        return SYNC_XFER_BADANSWER;
    }
    memcpy(res->sha, got, SHA_LEN);
    res->has_sha = 1;
    res->size = m->file_size;
    res->manifest = m;
    res->etag = apr_pstrdup(ctx->pool, etag);
    return SYNC_XFER_OK;
}

sync_xfer_e sync_xfer_fetch(sync_ctx_t *ctx, const char *rel,
                            const sync_remote_t *r, sync_fetched_t *out,
                            const char **why, apr_pool_t *pool)
{
    apr_file_t *f;
    apr_status_t rv;
    sync_xfer_e x;
    int fd;

    memset(out, 0, sizeof(*out));
    if ((rv = sync_local_prepare_parent(ctx, rel, why, pool)) != APR_SUCCESS) {
        return SYNC_XFER_FAILED;
    }
    if ((rv = sync_local_temp(ctx, rel, &f, &out->tmp_path, pool))
        != APR_SUCCESS) {
        *why = apr_psprintf(pool, "cannot create a temporary file: %s",
                            errtext(rv, pool));
        return sync_local_bad_name(rv) ? SYNC_XFER_BADNAME : SYNC_XFER_FAILED;
    }
    fd = file_fd(f);
    if (r->has_sha && copy_local_same(ctx, r->sha, fd, &out->res, pool)) {
        out->res.etag = r->etag;
        x = SYNC_XFER_OK;
    }
    else if (ctx->server.chunking) {
        x = fetch_by_manifest(ctx, rel, r, fd, &out->res, why, pool);
    }
    else {
        x = get_whole(ctx, rel, fd, &out->res, why, pool);
    }
    if (x == SYNC_XFER_OK && out->res.etag == NULL) {
        out->res.etag = r->etag;
    }
    /* The version listed must be the version fetched, or a newer one
     * whose ETag we now hold: never bytes that are neither. */
    if (x == SYNC_XFER_OK && r->has_sha && out->res.etag
        && sync_etag_weak_eq(out->res.etag, r->etag)
        && memcmp(out->res.sha, r->sha, SHA_LEN) != 0) {
        *why = "the bytes received do not match the server's digest";
        x = SYNC_XFER_BADANSWER;
    }
    apr_file_close(f);
    if (x != SYNC_XFER_OK) {
        unlink(out->tmp_path);
        out->tmp_path = NULL;
    }
    return x;
}

sync_xfer_e sync_xfer_place(sync_ctx_t *ctx, sync_fetched_t *f,
                            const char *rel, const sync_local_t *expect,
                            const char **why, apr_pool_t *pool)
{
    apr_status_t rv = sync_local_commit(ctx, f->tmp_path, rel, expect,
                                        &f->res.local, why, pool);

    f->tmp_path = NULL;
    if (rv == APR_SUCCESS) {
        return SYNC_XFER_OK;
    }
    if (rv == APR_EAGAIN) {
        return SYNC_XFER_CHANGED;
    }
    if (rv == APR_FROM_OS_ERROR(EEXIST) && expect->kind == SYNC_NONE) {
        return SYNC_XFER_BADNAME;       /* folds onto another name */
    }
    return sync_local_bad_name(rv) ? SYNC_XFER_BADNAME : SYNC_XFER_FAILED;
}

/* ---- uploads ------------------------------------------------------------------------ */

typedef struct put_src_t {
    int fd;
    apr_uint64_t off, size;
    iss_digest_t *d;
} put_src_t;

static apr_status_t put_source(void *baton, char *buf, apr_size_t max,
                               apr_size_t *got)
{
    put_src_t *s = baton;
    apr_uint64_t left = s->size - s->off;
    apr_size_t n = left < max ? (apr_size_t)left : max;
    apr_status_t rv;

    *got = 0;
    if (n == 0) {
        return APR_SUCCESS;
    }
    if ((rv = iss_pread_full(s->fd, buf, n, s->off)) != APR_SUCCESS) {
        /* Shorter than when we looked: it changed. */
        return rv == APR_EOF ? APR_EAGAIN : rv;
    }
    iss_digest_update(s->d, buf, n);
    s->off += n;
    *got = n;
    return APR_SUCCESS;
}

static void add_condition(sync_req_t *req, const char *if_match,
                          apr_pool_t *pool)
{
    if (if_match) {
        sync_req_header(req, pool, "If-Match", if_match);
    }
    else {
        sync_req_header(req, pool, "If-None-Match", "*");
    }
}

static sync_xfer_e upload_put(sync_ctx_t *ctx, const char *rel, int fd,
                              sync_local_t *l, const char *if_match,
                              sync_result_t *res, const char **why,
                              apr_pool_t *pool)
{
    sync_req_t req;
    sync_resp_t resp;
    put_src_t s;
    sync_xfer_e x;
    const char *etag;

    memset(&s, 0, sizeof(s));
    s.fd = fd;
    s.size = (apr_uint64_t)l->size;
    if (iss_digest_create(&s.d, pool) != APR_SUCCESS) {
        return SYNC_XFER_FAILED;
    }
    memset(&req, 0, sizeof(req));
    req.method = "PUT";
    req.url = sync_dav_url(ctx, rel, 0, pool);
    req.source = put_source;
    req.source_baton = &s;
    req.source_len = s.size;
    add_condition(&req, if_match, pool);
    sync_req_header(&req, pool, "Content-Type", "application/octet-stream");
    if (ctx->server.iss) {
        /* The server checks it: a file changed while it was sent is
         * refused, not stored. */
        sync_req_header(&req, pool, "Repr-Digest",
                        iss_digest_field(l->sha, pool));
    }
    x = http(ctx, &req, &resp, pool);
    if (x == SYNC_XFER_GONE) {
        *why = apr_psprintf(pool, "the server stopped answering (%s)",
                            resp.error);
        return x;
    }
    if (resp.sink_rv == APR_EAGAIN) {
        *why = "it changed while it was sent (synced next time)";
        return SYNC_XFER_CHANGED;
    }
    if (resp.status == 412) {
        return SYNC_XFER_CONFLICT;
    }
    if (x != SYNC_XFER_OK || resp.status < 200 || resp.status >= 300) {
        iss_digest_final(s.d, res->sha);
        if (resp.status == 400 && ctx->server.iss
            && memcmp(res->sha, l->sha, SHA_LEN) != 0) {
            *why = "it changed while it was sent (synced next time)";
            return SYNC_XFER_CHANGED;
        }
        *why = apr_psprintf(pool, "PUT: %s", sync_resp_describe(&resp, pool));
        return SYNC_XFER_FAILED;
    }
    iss_digest_final(s.d, res->sha);
    res->has_sha = 1;
    res->size = s.size;
    if (memcmp(res->sha, l->sha, SHA_LEN) != 0) {
        /* A plain server took what we read, which is not what we
         * scanned: the next run reads the file again. */
        memset(&res->local, 0, sizeof(res->local));
        res->local.kind = SYNC_FILE;
    }
    etag = apr_table_get(resp.headers, "ETag");
    if (etag == NULL) {
        sync_remote_t r;

        if (sync_dav_stat(ctx, rel, &r, pool) == APR_SUCCESS) {
            etag = r.etag;
        }
    }
    res->etag = etag ? apr_pstrdup(ctx->pool, etag) : NULL;
    return SYNC_XFER_OK;
}

typedef struct frames_src_t {
    int fd;
    iss_manifest_entry_t **list;
    int n, next;
    unsigned char *buf;
    apr_size_t len, off;
    apr_pool_t *pool;
} frames_src_t;

static apr_status_t frames_source(void *baton, char *out, apr_size_t max,
                                  apr_size_t *got)
{
    frames_src_t *s = baton;
    apr_size_t n;

    *got = 0;
    if (s->off == s->len) {
        iss_manifest_entry_t *e;
        iss_digest_t *d;
        unsigned char sha[SHA_LEN];
        apr_status_t rv;

        if (s->next == s->n) {
            return APR_SUCCESS;
        }
        e = s->list[s->next++];
        rv = iss_pread_full(s->fd, s->buf + ISS_FRAMES_HEAD_LEN, e->length,
                       e->offset);
        if (rv != APR_SUCCESS) {
            return rv == APR_EOF ? APR_EAGAIN : rv;
        }
        if ((rv = iss_digest_create(&d, s->pool)) != APR_SUCCESS) {
            return rv;
        }
        iss_digest_update(d, s->buf + ISS_FRAMES_HEAD_LEN, e->length);
        iss_digest_final(d, sha);
        if (memcmp(sha, e->sha256, SHA_LEN) != 0) {
            return APR_EAGAIN;          /* the file changed */
        }
        iss_frames_head(s->buf, e->sha256, e->length);
        s->len = ISS_FRAMES_HEAD_LEN + e->length;
        s->off = 0;
    }
    n = s->len - s->off < max ? s->len - s->off : max;
    memcpy(out, s->buf + s->off, n);
    s->off += n;
    *got = n;
    return APR_SUCCESS;
}

/* POST the chunks @a ids (hex, from a 409) of @a m in frames. */
static sync_xfer_e post_chunks(sync_ctx_t *ctx, const char *rel, int fd,
                               const iss_manifest_t *m,
                               apr_array_header_t *ids, const char *session,
                               const char **why, apr_pool_t *pool)
{
    apr_hash_t *byid = apr_hash_make(pool);
    apr_array_header_t *list = apr_array_make(pool, ids->nelts,
                                              sizeof(iss_manifest_entry_t *));
    unsigned char *buf;
    apr_uint32_t i;
    int k, start = 0;

    for (i = 0; i < m->count; i++) {
        if (apr_hash_get(byid, m->entries[i].sha256, SHA_LEN) == NULL) {
            apr_hash_set(byid, m->entries[i].sha256, SHA_LEN, &m->entries[i]);
        }
    }
    for (k = 0; k < ids->nelts; k++) {
        const char *hex = APR_ARRAY_IDX(ids, k, const char *);
        unsigned char id[SHA_LEN];
        iss_manifest_entry_t *e;

        if (!iss_hex_id_decode(hex, strlen(hex), id)
            || (e = apr_hash_get(byid, id, SHA_LEN)) == NULL) {
            *why = apr_psprintf(pool, "the server asks for a chunk (%s) the "
                                "file does not have", hex);
            return SYNC_XFER_BADANSWER;
        }
        APR_ARRAY_PUSH(list, iss_manifest_entry_t *) = e;
    }
    buf = malloc(ISS_FRAMES_HEAD_LEN + ctx->server.params.max_size);
    if (buf == NULL) {
        return SYNC_XFER_FAILED;
    }
    while (start < list->nelts) {
        sync_req_t req;
        sync_resp_t resp;
        frames_src_t s;
        apr_uint64_t bytes = 0;
        int end = start;
        sync_xfer_e x;

        while (end < list->nelts && (end == start || bytes < POST_BYTES)) {
            bytes += ISS_FRAMES_HEAD_LEN
                     + APR_ARRAY_IDX(list, end, iss_manifest_entry_t *)->length;
            end++;
        }
        memset(&s, 0, sizeof(s));
        s.fd = fd;
        s.list = &APR_ARRAY_IDX(list, start, iss_manifest_entry_t *);
        s.n = end - start;
        s.buf = buf;
        s.pool = pool;
        memset(&req, 0, sizeof(req));
        req.method = "POST";
        req.url = sync_dav_url(ctx, rel, 0, pool);
        req.source = frames_source;
        req.source_baton = &s;
        req.source_len = bytes;
        sync_req_header(&req, pool, "Content-Type", ISS_FRAMES_MEDIA_TYPE);
        sync_req_header(&req, pool, "ISS-Upload-Session", session);
        x = http(ctx, &req, &resp, pool);
        if (x == SYNC_XFER_GONE) {
            free(buf);
            *why = apr_psprintf(pool, "the server stopped answering (%s)",
                                resp.error);
            return x;
        }
        if (resp.sink_rv == APR_EAGAIN) {
            free(buf);
            *why = "it changed while it was sent (synced next time)";
            return SYNC_XFER_CHANGED;
        }
        if (x != SYNC_XFER_OK || resp.status != 204) {
            free(buf);
            *why = apr_psprintf(pool, "POST of chunks: %s",
                                sync_resp_describe(&resp, pool));
            return SYNC_XFER_FAILED;
        }
        start = end;
    }
    free(buf);
    return SYNC_XFER_OK;
}

static sync_xfer_e upload_manifest(sync_ctx_t *ctx, const char *rel, int fd,
                                   sync_local_t *l, const char *if_match,
                                   const unsigned char *base_sha,
                                   sync_result_t *res, const char **why,
                                   apr_pool_t *pool)
{
    unsigned char *full = NULL, *delta = NULL;
    apr_size_t full_len = 0, delta_len = 0;
    const char *session;
    int round;

    if (iss_manifest_encode(l->manifest, &full, &full_len, pool)
        != APR_SUCCESS) {
        *why = "cannot encode its manifest";
        return SYNC_XFER_FAILED;
    }
    if (if_match && base_sha) {
        iss_manifest_t *bm = sync_state_manifest(ctx->state, rel,
                                                 &ctx->server.params, pool);

        if (bm && bm->count > 0) {
            memcpy(bm->file_sha256, base_sha, SHA_LEN);
            if (iss_manifest_delta_make(bm, l->manifest, &delta, &delta_len,
                                        pool) != APR_SUCCESS
                || delta_len >= full_len) {
                delta = NULL;
            }
        }
    }
    session = sync_state_upload_get(ctx->state, rel, l->sha, pool);
    for (round = 0; round < 6; round++) {
        sync_req_t req;
        sync_resp_t resp;
        sync_xfer_e x;
        apr_array_header_t *ids;
        const char *sid;

        memset(&req, 0, sizeof(req));
        req.method = "PATCH";
        req.url = sync_dav_url(ctx, rel, 0, pool);
        req.body = delta ? delta : full;
        req.body_len = delta ? delta_len : full_len;
        req.max_body = MANIFEST_MAX_BODY;
        add_condition(&req, if_match, pool);
        sync_req_header(&req, pool, "Content-Type",
                        delta ? ISS_MANIFEST_DELTA_MEDIA_TYPE
                              : ISS_MANIFEST_MEDIA_TYPE);
        if (session) {
            sync_req_header(&req, pool, "ISS-Upload-Session", session);
        }
        x = http(ctx, &req, &resp, pool);
        if (x == SYNC_XFER_GONE) {
            *why = apr_psprintf(pool, "the server stopped answering (%s)",
                                resp.error);
            return x;
        }
        if (x == SYNC_XFER_OK && (resp.status == 200 || resp.status == 201
                                  || resp.status == 204)) {
            const char *etag = apr_table_get(resp.headers, "ETag");

            sync_state_upload_del(ctx->state, rel);
            memcpy(res->sha, l->sha, SHA_LEN);
            res->has_sha = 1;
            res->size = (apr_uint64_t)l->size;
            res->manifest = l->manifest;
            res->etag = etag ? apr_pstrdup(ctx->pool, etag) : NULL;
            return SYNC_XFER_OK;
        }
        if (resp.status == 412) {
            return SYNC_XFER_CONFLICT;
        }
        if (resp.status == 415) {
            /* Chunking turned off meanwhile: the whole file. */
            return upload_put(ctx, rel, fd, l, if_match, res, why, pool);
        }
        if (delta && (resp.status == 403 || resp.status == 428
                      || (resp.status == 409
                          && sync_dav_error_is(&resp, SYNC_ISS_NS,
                                               "manifest-base-mismatch",
                                               pool)))) {
            delta = NULL;               /* the full manifest, then */
            continue;
        }
        if (resp.status == 409
            && sync_dav_error_is(&resp, SYNC_ISS_NS, "unknown-session",
                                 pool)) {
            session = NULL;
            sync_state_upload_del(ctx->state, rel);
            continue;
        }
        if (resp.status != 409
            || !sync_dav_error_is(&resp, SYNC_ISS_NS, "missing-chunks",
                                  pool)) {
            *why = apr_psprintf(pool, "PATCH: %s",
                                sync_resp_describe(&resp, pool));
            return SYNC_XFER_FAILED;
        }
        sid = apr_table_get(resp.headers, "ISS-Upload-Session");
        ids = sync_dav_error_texts(&resp, SYNC_ISS_NS, "chunk", pool);
        if (sid == NULL || ids->nelts == 0) {
            *why = "the server lists missing chunks without a session";
            return SYNC_XFER_BADANSWER;
        }
        session = apr_pstrdup(pool, sid);
        /* Kept at once: a run that dies while sending resumes it. */
        sync_state_upload_put(ctx->state, rel, session, l->sha);
        sync_state_commit(ctx->state);
        sync_state_begin(ctx->state);
        x = post_chunks(ctx, rel, fd, l->manifest, ids, session, why, pool);
        if (x != SYNC_XFER_OK) {
            return x;
        }
    }
    *why = "the server keeps asking for chunks";
    return SYNC_XFER_FAILED;
}

sync_xfer_e sync_xfer_upload(sync_ctx_t *ctx, const char *rel,
                             sync_local_t *l, const char *if_match,
                             const unsigned char *base_sha,
                             sync_result_t *res, const char **why,
                             apr_pool_t *pool)
{
    sync_local_t now;
    sync_xfer_e x;
    int fd;

    memset(res, 0, sizeof(*res));
    /* The file as scanned?  It may have changed during the run. */
    if (sync_local_stat(ctx, rel, &now, pool) != APR_SUCCESS
        || now.kind != SYNC_FILE) {
        *why = "it is gone or changed since the scan (synced next time)";
        return SYNC_XFER_CHANGED;
    }
    if (!l->has_sha || !sync_local_same(&now, l)
        || (ctx->server.chunking && l->manifest == NULL)) {
        if (l->has_sha && !sync_local_same(&now, l)) {
            *why = "it changed since the scan (synced next time)";
            return SYNC_XFER_CHANGED;
        }
        if (sync_local_hash(ctx, rel, l, ctx->pool) != APR_SUCCESS) {
            *why = "it changes while it is read (synced next time)";
            return SYNC_XFER_CHANGED;
        }
    }
    fd = open(sync_local_path(ctx, rel, pool), O_RDONLY | O_NOFOLLOW);
    if (fd < 0) {
        *why = apr_psprintf(pool, "cannot open it: %s", strerror(errno));
        return SYNC_XFER_FAILED;
    }
    res->local = *l;
    res->local.manifest = NULL;
    if (ctx->server.chunking) {
        x = upload_manifest(ctx, rel, fd, l, if_match, base_sha, res, why,
                            pool);
    }
    else {
        x = upload_put(ctx, rel, fd, l, if_match, res, why, pool);
    }
    close(fd);
    if (x == SYNC_XFER_OK) {
        /* Changed while it was sent: the server has what we read; the
         * next run reads it again and sends the rest. */
        if (sync_local_stat(ctx, rel, &now, pool) != APR_SUCCESS
            || !sync_local_same(&now, l)) {
            memset(&res->local, 0, sizeof(res->local));
            res->local.kind = SYNC_FILE;
        }
        if (res->etag == NULL) {
            sync_remote_t r;

            if (sync_dav_stat(ctx, rel, &r, pool) == APR_SUCCESS) {
                res->etag = r.etag ? apr_pstrdup(ctx->pool, r.etag) : NULL;
            }
        }
    }
    return x;
}
