/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * GET and HEAD of the files of a `Dav iss` location.  mod_dav_fs leaves
 * them to httpd's default handler, whose ETag is mod_dav_fs's (weak
 * within the second of a change); this handler does what the default
 * handler does for a file, with the strong ETag of mod_iss_digest, and
 * adds Repr-Digest when asked for (Want-Repr-Digest) or configured
 * (ISSDigestHeader Always).  It steps aside for anything else: files
 * with a handler of their own, directories, path info, sub-requests of
 * other modules' making are all left to whoever would serve them.
 *
 * RFC 3229 delta GET (issue 15): with `A-IM: vcdiff` and an
 * If-None-Match naming a retained version of this file, the answer is
 * `226 IM Used` with a VCDIFF from that version to the current content
 * (send_delta(), docs/design.md section 3f).
 */

#include "mod_iss_chunk.h"
#include "mod_iss_config.h"
#include "mod_iss_digest.h"
#include "mod_iss_state.h"

#include "iss_deltaget.h"
#include "iss_fdio.h"
#include "iss_vcdiff_enc.h"
#include "iss_versions.h"

#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include <stdlib.h>

static int serves(request_rec *r)
{
    if (r->method_number != M_GET || r->finfo.filetype != APR_REG
        || (r->path_info && *r->path_info) || !iss_is_enabled(r)) {
        return 0;
    }
    /* No handler of its own: ap_invoke_handler() names such a request
     * after its content type, or "" (AP_DEFAULT_HANDLER_NAME) without
     * one; "default-handler" is the core's own name. */
    if (r->handler == NULL || *r->handler == '\0'
        || strcmp(r->handler, "default-handler") == 0) {
        return 1;
    }
    return r->content_type
           && strncasecmp(r->handler, r->content_type,
                          strlen(r->handler)) == 0
           && strchr(r->handler, '/') != NULL;
}

/* The file's manifest instead of its content, for a client that asked
 * for it (Accept: application/vnd.mod-iss.manifest). */
static int send_manifest(request_rec *r, apr_file_t *fd,
                         const apr_finfo_t *fi)
{
    const char *rel = iss_state_rel_path(r, r->uri);
    apr_bucket_brigade *bb;
    iss_manifest_t *m;
    unsigned char *buf;
    apr_size_t len;
    apr_status_t rv;
    int status;

    if (rel == NULL
        || (rv = iss_chunk_manifest_of_file(r, rel, fd, fi, 1, &m))
           != APR_SUCCESS
        || (rv = iss_manifest_encode(m, &buf, &len, r->pool))
           != APR_SUCCESS) {
        apr_file_close(fd);
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, ISSLOGNO(01067)
                      "cannot make the manifest of %s%s", r->filename,
                      rel == NULL ? "" : " (it changed while read, or it "
                      "could not be read)");
        apr_table_setn(r->err_headers_out, "Retry-After", "1");
        r->connection->keepalive = AP_CONN_CLOSE;
        iss_send_error_body(r, HTTP_SERVICE_UNAVAILABLE, ISS_XML_NS,
                            "manifest-unavailable", NULL, "The manifest of this "
                            "file cannot be made now (it changed while it "
                            "was read, or it cannot be read); ask again.");
        return OK;
    }
    apr_file_close(fd);
    if ((status = ap_discard_request_body(r)) != OK) {
        return status;
    }
    iss_digest_remember(r, r->uri, m->file_sha256);
    ap_set_content_type(r, ISS_MANIFEST_MEDIA_TYPE);
    apr_table_setn(r->headers_out, "ETag",
                   iss_chunk_manifest_etag(m->file_sha256, r->pool));
    ap_update_mtime(r, fi->mtime);
    ap_set_last_modified(r);
    ap_set_content_length(r, (apr_off_t)len);
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    if ((status = ap_meets_conditions(r)) != OK) {
        r->status = status;
    }
    else if (!r->header_only) {
        apr_brigade_write(bb, NULL, NULL, (const char *)buf, len);
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(r->connection
                                                      ->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, bb);
    return rv == APR_SUCCESS || r->connection->aborted ? OK
                                                       : AP_FILTER_ERROR;
}

/* ---- RFC 3229: 226 IM Used with a VCDIFF from a retained version ---------
 *
 * Whether the answer is a delta is known only once the encoder is done
 * (opts.max_delta = size - 1 stops it when the delta would not be
 * smaller).  So the delta is first held in memory, up to DELTA_HOLD
 * bytes: most deltas end there and are sent with a Content-Length.  If
 * it grows beyond that:
 *  - when the two manifests bound the delta well below the file's size
 *    (delta_may_stream()), the 226 is committed and the rest streams as
 *    it is made (chunked);
 *  - otherwise the encoder goes on counting only (nothing kept); if it
 *    finishes below the size, a second, identical encoding streams the
 *    delta with the Content-Length the first one measured.  A count
 *    that stays at 15/16 of the target bytes or more after
 *    DELTA_GIVE_UP target bytes gives up: the plain 200.
 * Memory: DELTA_HOLD, one DELTA_PIECE buffer, the chunks of the version
 * kept for the encoder's reads (src_slot_of(): SRC_BUDGET, 4 MiB) and the
 * encoder's own (iss_vcdiff_enc.h: about 20 MiB at most), whatever the
 * file sizes. */

#define DELTA_HOLD    ((apr_size_t)1024 * 1024)
#define DELTA_PIECE   ((apr_size_t)256 * 1024)
#define DELTA_GIVE_UP ((apr_uint64_t)8 * 1024 * 1024)

typedef enum { OUT_HOLD, OUT_COUNT, OUT_STREAM } delta_out_e;

#define SRC_SLOTS  64
#define SRC_BUDGET ((apr_size_t)4 * 1024 * 1024)

typedef struct src_slot_t {
    apr_uint64_t off;                /* the chunk's offset in the version */
    apr_size_t len;                  /* its length; 0: empty */
    apr_uint64_t used;               /* clock of the last use */
    unsigned char *buf;              /* malloc'd, len bytes */
} src_slot_t;

typedef struct delta_t {
    request_rec *r;
    int fd;                          /* the current file (OS descriptor) */
    apr_off_t size;                  /* its size: the target's */
    const unsigned char *sha;        /* its digest */
    const char *rel;
    iss_store_t *store;
    const iss_version_t *v;          /* the base */
    iss_version_reader_t *rd;
    const iss_manifest_t *sm, *tm;   /* both manifests, or neither */
    int may_stream;
    delta_out_e mode;
    unsigned char *hold;
    apr_size_t held;
    apr_bucket_brigade *bb;
    int committed;                   /* the 226's headers are on their way */
    apr_uint64_t length;             /* pass 2: the delta's measured size */
    apr_uint64_t sent;
    apr_status_t net;                /* an error of the connection */
    iss_vcdiff_enc_t *enc;
    int src_chunks;                  /* read the version by whole chunks */
    src_slot_t src[SRC_SLOTS];
    apr_uint64_t src_clock;
    apr_size_t src_bytes;            /* held by src[] */
} delta_t;

/* iss_deltaget_known_fn: is @a digest a retained version of this file?
 * Only this file's versions are asked for (another file's version is
 * "not retained", as is one of a file the user may not read: he cannot
 * GET that file, so he never gets here for it). */
static int delta_known(void *baton, const unsigned char *digest)
{
    delta_t *d = baton;
    iss_version_t *v;
    apr_status_t rv;

    rv = iss_versions_find(d->store, d->rel, digest, &v, d->r->pool);
    if (rv == APR_SUCCESS) {
        d->v = v;
        return 1;
    }
    if (rv != APR_NOTFOUND) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, d->r, ISSLOGNO(01180)
                      "cannot look up a retained version of %s (%s); "
                      "answering without a delta", d->rel,
                      iss_store_last_error(d->store));
    }
    return 0;
}

/* Read exactly @a len bytes of the version at @a offset. */
static apr_status_t version_read(delta_t *d, apr_uint64_t offset,
                                 apr_size_t len, unsigned char *buf)
{
    apr_size_t got;
    apr_status_t rv;

    while (len > 0) {
        rv = iss_versions_pread(d->rd, (apr_off_t)offset, buf, len, &got);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (got == 0) {
            return APR_EOF;
        }
        buf += got;
        offset += got;
        len -= got;
    }
    return APR_SUCCESS;
}

/* The version's chunks, whole, as the store checked them: a reader of a
 * version with a manifest hashes the whole chunk around every read that
 * leaves the chunk it holds, and the encoder reads the source at
 * scattered places (256-byte probes of candidate matches).  The chunks
 * read last are kept, SRC_SLOTS of them within SRC_BUDGET bytes (least
 * recently used out): a probe near an earlier one costs a memcpy
 * instead of a chunk's SHA-256.  Buffers are malloc'd at the chunk's
 * size and freed with the pool (src_init()). */
static apr_status_t src_free(void *data)
{
    delta_t *d = data;
    int i;

    for (i = 0; i < SRC_SLOTS; i++) {
        free(d->src[i].buf);
    }
    memset(d->src, 0, sizeof(d->src));
    d->src_bytes = 0;
    return APR_SUCCESS;
}

static void src_init(delta_t *d, apr_pool_t *pool)
{
    memset(d->src, 0, sizeof(d->src));
    d->src_bytes = 0;
    apr_pool_cleanup_register(pool, d, src_free, apr_pool_cleanup_null);
}

static void src_drop(delta_t *d, src_slot_t *s)
{
    free(s->buf);
    d->src_bytes -= s->len;
    memset(s, 0, sizeof(*s));
}

static apr_status_t src_slot_of(delta_t *d, apr_uint64_t offset,
                                src_slot_t **out)
{
    const iss_manifest_t *m = d->v->manifest;
    apr_uint32_t lo = 0, hi = m->count - 1;
    src_slot_t *s = NULL;
    apr_size_t need;
    apr_status_t rv;
    int i;

    for (i = 0; i < SRC_SLOTS; i++) {
        s = &d->src[i];
        if (s->len > 0 && offset >= s->off && offset < s->off + s->len) {
            s->used = ++d->src_clock;
            *out = s;
            return APR_SUCCESS;
        }
    }
    while (lo < hi) {                 /* the chunk holding offset */
        apr_uint32_t mid = lo + (hi - lo + 1) / 2;

        if (m->entries[mid].offset <= offset) {
            lo = mid;
        }
        else {
            hi = mid - 1;
        }
    }
    need = m->entries[lo].length;
    for (;;) {                        /* room: a free slot within budget */
        src_slot_t *lru = NULL, *empty = NULL;

        for (i = 0; i < SRC_SLOTS; i++) {
            if (d->src[i].len == 0) {
                empty = empty ? empty : &d->src[i];
            }
            else if (lru == NULL || d->src[i].used < lru->used) {
                lru = &d->src[i];
            }
        }
        if (empty != NULL && d->src_bytes + need <= SRC_BUDGET) {
            s = empty;
            break;
        }
        if (lru == NULL) {
            s = empty;                /* one chunk above the budget */
            break;
        }
        src_drop(d, lru);
    }
    if ((s->buf = malloc(need)) == NULL) {
        return APR_ENOMEM;
    }
    rv = version_read(d, m->entries[lo].offset, need, s->buf);
    if (rv != APR_SUCCESS) {
        free(s->buf);
        s->buf = NULL;
        return rv;
    }
    s->off = m->entries[lo].offset;
    s->len = need;
    s->used = ++d->src_clock;
    d->src_bytes += need;
    *out = s;
    return APR_SUCCESS;
}

static apr_status_t delta_read_source(void *baton, apr_uint64_t offset,
                                      apr_size_t len, unsigned char *buf)
{
    delta_t *d = baton;
    src_slot_t *s;
    apr_status_t rv;

    if (!d->src_chunks) {
        return version_read(d, offset, len, buf);
    }
    while (len > 0) {
        apr_size_t n;

        if ((rv = src_slot_of(d, offset, &s)) != APR_SUCCESS) {
            return rv;
        }
        n = (apr_size_t)(s->off + s->len - offset);
        if (n > len) {
            n = len;
        }
        memcpy(buf, s->buf + (offset - s->off), n);
        buf += n;
        offset += n;
        len -= n;
    }
    return APR_SUCCESS;
}

/* The 226's headers; the body follows (with a Content-Length of
 * @a length, or chunked when it is 0). */
static void delta_headers(delta_t *d, apr_uint64_t length)
{
    request_rec *r = d->r;

    r->status = HTTP_IM_USED;
    apr_table_setn(r->headers_out, "IM", "vcdiff");
    apr_table_setn(r->headers_out, "Delta-Base",
                   iss_digest_etag(d->v->digest, r->pool));
    apr_table_setn(r->headers_out, "Cache-Control", "no-store, im");
    apr_table_unset(r->headers_out, "Accept-Ranges");
    if (length > 0) {
        ap_set_content_length(r, (apr_off_t)length);
    }
    else {
        apr_table_unset(r->headers_out, "Content-Length");
        r->clength = 0;
    }
    d->committed = 1;
}

static apr_status_t delta_pass(delta_t *d, const unsigned char *buf,
                               apr_size_t len)
{
    apr_status_t rv;

    if (len == 0) {
        return APR_SUCCESS;
    }
    rv = ap_fwrite(d->r->output_filters, d->bb, (const char *)buf, len);
    if (rv != APR_SUCCESS) {
        d->net = rv;
        return rv;
    }
    d->sent += len;
    return APR_SUCCESS;
}

/* iss_vcdiff_write_fn: the delta, in order. */
static apr_status_t delta_write(void *baton, const unsigned char *buf,
                                apr_size_t len)
{
    delta_t *d = baton;
    apr_status_t rv;

    switch (d->mode) {
    case OUT_HOLD:
        if (len <= DELTA_HOLD - d->held) {
            memcpy(d->hold + d->held, buf, len);
            d->held += len;
            return APR_SUCCESS;
        }
        if (!d->may_stream) {
            d->mode = OUT_COUNT;       /* the encoder counts for us */
            return APR_SUCCESS;
        }
        delta_headers(d, 0);
        d->mode = OUT_STREAM;
        if ((rv = delta_pass(d, d->hold, d->held)) != APR_SUCCESS) {
            return rv;
        }
        d->held = 0;
        return delta_pass(d, buf, len);
    case OUT_COUNT:
        if (iss_vcdiff_enc_target_size(d->enc) >= DELTA_GIVE_UP
            && iss_vcdiff_enc_delta_size(d->enc) + len
               >= iss_vcdiff_enc_target_size(d->enc) / 16 * 15) {
            return ISS_VCDIFF_ENC_ETOOBIG;  /* will not pay: the plain 200 */
        }
        return APR_SUCCESS;
    case OUT_STREAM:
        return delta_pass(d, buf, len);
    }
    return APR_EGENERAL;
}

/* Whether the manifests bound the delta below the target's size: the
 * target's changed chunks cost at most about their bytes (an ADD costs
 * its bytes and a few; a COPY or RUN is emitted only when shorter than
 * its bytes), each kept chunk one COPY (at most 16 bytes), each window
 * its header; with an eighth of the changed bytes as margin. */
static int delta_may_stream(delta_t *d)
{
    apr_uint64_t changed, bound, windows;

    if (d->sm == NULL || d->tm == NULL
        || iss_vcdiff_enc_changed_bytes(d->sm, d->tm, &changed, d->r->pool)
           != APR_SUCCESS) {
        return 0;
    }
    windows = (apr_uint64_t)d->size / ISS_VCDIFF_ENC_WINDOW_DEFAULT + 2;
    bound = changed + changed / 8 + 16 * ((apr_uint64_t)d->tm->count + windows)
            + 64 * windows;
    return bound < (apr_uint64_t)d->size;
}

/* One encoding of the whole target: reads what the encoder wants of the
 * current file, skips what it need not see. */
static apr_status_t delta_encode(delta_t *d, apr_pool_t *pool)
{
    iss_vcdiff_enc_opts_t o;
    unsigned char *piece;
    apr_uint64_t pos = 0, size = (apr_uint64_t)d->size;
    apr_status_t rv;

    memset(&o, 0, sizeof(o));
    o.source_size = (apr_uint64_t)d->v->size;
    o.read_source = delta_read_source;
    o.source_baton = d;
    o.write = delta_write;
    o.write_baton = d;
    o.source_manifest = d->sm;
    o.target_manifest = d->tm;
    o.max_delta = size > 0 ? size - 1 : 0;
    if (size == 0) {
        return ISS_VCDIFF_ENC_ETOOBIG;   /* nothing is smaller than nothing */
    }
    rv = iss_vcdiff_enc_create(&d->enc, &o, pool);
    if (rv == APR_EINVAL && d->sm != NULL) {
        /* Manifests the encoder refuses (they do not describe these
         * bytes): without them, every byte is looked at. */
        d->sm = d->tm = NULL;
        o.source_manifest = o.target_manifest = NULL;
        rv = iss_vcdiff_enc_create(&d->enc, &o, pool);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    piece = apr_palloc(pool, DELTA_PIECE);
    while (pos < size) {
        apr_uint64_t skip = iss_vcdiff_enc_skippable(d->enc);
        apr_uint64_t want = iss_vcdiff_enc_wanted(d->enc);
        apr_size_t n = DELTA_PIECE;

        if (skip > 0) {
            if (skip > size - pos) {
                skip = size - pos;
            }
            if ((rv = iss_vcdiff_enc_skip(d->enc, skip)) != APR_SUCCESS) {
                return rv;
            }
            pos += skip;
            continue;
        }
        if (want > 0 && want < n) {
            n = (apr_size_t)want;
        }
        if (n > size - pos) {
            n = (apr_size_t)(size - pos);
        }
        if ((rv = iss_pread_full(d->fd, piece, n, pos)) != APR_SUCCESS
            || (rv = iss_vcdiff_enc_feed(d->enc, piece, n)) != APR_SUCCESS) {
            return rv;
        }
        pos += n;
    }
    return iss_vcdiff_enc_finish(d->enc);
}

/* An answer that began as a 226 cannot become anything else: the
 * connection is closed without ending the body, so the client sees a
 * truncated response (never a wrong one). */
static int delta_abort(delta_t *d, apr_status_t rv, const char *what)
{
    request_rec *r = d->r;

    if (d->net == APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, ISSLOGNO(01183)
                      "the delta of %s from version %s failed after its "
                      "answer began (%s%s%s); connection closed", d->rel,
                      iss_digest_etag(d->v->digest, r->pool), what,
                      d->enc ? ": " : "", d->enc ? iss_vcdiff_enc_error(d->enc)
                                                 : "");
    }
    r->connection->keepalive = AP_CONN_CLOSE;
    r->connection->aborted = 1;
    return OK;
}

/* The 226 if a delta is asked for, possible and smaller.  Returns 0 if
 * the caller is to answer as without A-IM (nothing was sent and the
 * headers are as they were), else 1 with *ret the handler's return. */
static int send_delta(request_rec *r, apr_file_t *fd, const apr_finfo_t *fi,
                      const unsigned char *sha, int *ret)
{
    unsigned char base[ISS_DIGEST_SHA256_LEN];
    iss_manifest_t *tm = NULL;
    apr_os_file_t osfd;
    apr_pool_t *pool;
    apr_bucket *e;
    delta_t d;
    apr_status_t rv;

    /* Not for a sub-request (an include of this file in another answer
     * inherits the client's headers, not its wish for a delta). */
    if (r->header_only || r->main != NULL
        || apr_table_get(r->headers_in, "Range") != NULL
        || !iss_deltaget_accepts_vcdiff(apr_table_get(r->headers_in, "A-IM"))) {
        return 0;
    }
    memset(&d, 0, sizeof(d));
    d.r = r;
    d.size = fi->size;
    d.sha = sha;
    if ((d.rel = iss_state_rel_path(r, r->uri)) == NULL
        || iss_state_store(r, &d.store) != NULL
        || iss_deltaget_base(apr_table_get(r->headers_in, "If-None-Match"),
                             sha, delta_known, &d, base)
           != ISS_DELTAGET_VERSION
        || d.v == NULL) {
        return 0;
    }
    if ((rv = apr_os_file_get(&osfd, fd)) != APR_SUCCESS) {
        return 0;
    }
    d.fd = osfd;
    if ((rv = apr_pool_create(&pool, r->pool)) != APR_SUCCESS) {
        return 0;
    }
    if ((rv = iss_versions_open(d.store, d.v, &d.rd, pool)) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, ISSLOGNO(01181)
                      "cannot open version %s of %s; answering without a "
                      "delta", iss_digest_etag(d.v->digest, r->pool), d.rel);
        apr_pool_destroy(pool);
        return 0;
    }
    /* Both manifests, when each is known to describe its bytes: the
     * current file's record is looked up by the file's identity, the
     * version's is the store's for that content. */
    if (d.v->manifest != NULL
        && d.v->manifest->file_size == (apr_uint64_t)d.v->size
        && iss_config_chunking(iss_config_dir(r))
        && iss_chunk_manifest_of_file(r, d.rel, fd, fi, 0, &tm) == APR_SUCCESS
        && tm->file_size == (apr_uint64_t)fi->size
        && memcmp(tm->file_sha256, sha, ISS_DIGEST_SHA256_LEN) == 0) {
        d.sm = d.v->manifest;
        d.tm = tm;
    }
    d.may_stream = delta_may_stream(&d);
    src_init(&d, pool);
    d.src_chunks = d.v->manifest != NULL && d.v->manifest->count > 0
                   && d.v->manifest->file_size == (apr_uint64_t)d.v->size
                   && memcmp(d.v->manifest->file_sha256, d.v->digest,
                             ISS_DIGEST_SHA256_LEN) == 0;
    d.mode = OUT_HOLD;
    d.hold = apr_palloc(pool, DELTA_HOLD);
    d.bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);

    rv = delta_encode(&d, pool);
    if (rv == APR_SUCCESS && d.mode == OUT_COUNT) {
        /* Smaller, but longer than we hold: encode again, streaming,
         * with the length the first pass measured. */
        d.length = iss_vcdiff_enc_delta_size(d.enc);
        apr_pool_clear(pool);
        d.enc = NULL;
        src_init(&d, pool);
        if ((rv = iss_versions_open(d.store, d.v, &d.rd, pool))
            != APR_SUCCESS) {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, ISSLOGNO(01181)
                          "cannot open version %s of %s; answering without a "
                          "delta", iss_digest_etag(d.v->digest, r->pool), d.rel);
            apr_pool_destroy(pool);
            return 0;
        }
        d.hold = NULL;
        delta_headers(&d, d.length);
        d.mode = OUT_STREAM;
        rv = delta_encode(&d, pool);
        if (rv == APR_SUCCESS && d.sent != d.length) {
            *ret = delta_abort(&d, APR_EGENERAL, "the second encoding "
                               "differs from the first: the file changed "
                               "in place");
            apr_pool_destroy(pool);
            return 1;
        }
    }
    if (rv != APR_SUCCESS) {
        if (d.committed) {
            *ret = delta_abort(&d, rv, rv == ISS_VCDIFF_ENC_ETOOBIG
                                       ? "the delta grew beyond the bound "
                                         "of the manifests" : "encoding");
            apr_pool_destroy(pool);
            return 1;
        }
        if (rv == ISS_VCDIFF_ENC_ETOOBIG) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ISSLOGNO(01185)
                          "a delta of %s from version %s would not be "
                          "smaller than its %" APR_OFF_T_FMT " bytes: 200",
                          d.rel, iss_digest_etag(d.v->digest, r->pool),
                          fi->size);
        }
        else {
            ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, ISSLOGNO(01182)
                          "cannot make the delta of %s from version %s "
                          "(%s); answering without a delta", d.rel,
                          iss_digest_etag(d.v->digest, r->pool),
                          d.enc ? iss_vcdiff_enc_error(d.enc) : "");
        }
        apr_pool_destroy(pool);
        return 0;
    }
    if (d.mode == OUT_HOLD) {
        delta_headers(&d, d.held);
        rv = delta_pass(&d, d.hold, d.held);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, ISSLOGNO(01184)
                  "226: delta of %s from version %s, %" APR_UINT64_T_FMT
                  " bytes for %" APR_OFF_T_FMT " (%s%s)", d.rel,
                  iss_digest_etag(d.v->digest, r->pool),
                  iss_vcdiff_enc_delta_size(d.enc), fi->size,
                  d.sm ? "with manifests" : "without manifests",
                  d.length ? ", encoded twice" : "");
    apr_pool_destroy(pool);
    if (rv == APR_SUCCESS) {
        e = apr_bucket_eos_create(r->connection->bucket_alloc);
        APR_BRIGADE_INSERT_TAIL(d.bb, e);
        rv = ap_pass_brigade(r->output_filters, d.bb);
    }
    apr_brigade_cleanup(d.bb);
    *ret = rv == APR_SUCCESS || r->connection->aborted ? OK : AP_FILTER_ERROR;
    return 1;
}

static int get_handler(request_rec *r)
{
    core_dir_config *d = ap_get_core_module_config(r->per_dir_config);
    unsigned char sha[ISS_DIGEST_SHA256_LEN];
    apr_finfo_t fi;
    apr_bucket_brigade *bb;
    apr_bucket *e;
    apr_file_t *fd;
    apr_status_t rv;
    int status, found;

    if (!serves(r)) {
        return DECLINED;
    }
    /* Everything below describes the file this descriptor holds: a PUT
     * or PATCH renaming another file into place meanwhile changes
     * nothing of this answer. */
    rv = apr_file_open(&fd, r->filename, APR_READ | APR_BINARY
#if APR_HAS_SENDFILE
                       | AP_SENDFILE_ENABLED(d->enable_sendfile)
#endif
                       , 0, r->pool);
    if (rv != APR_SUCCESS) {
        return DECLINED;           /* the default handler says why */
    }
    rv = apr_file_info_get(&fi, APR_FINFO_IDENT | APR_FINFO_SIZE
                           | APR_FINFO_MTIME | APR_FINFO_TYPE
                           | APR_FINFO_CTIME, fd);
    if (rv != APR_SUCCESS || fi.filetype != APR_REG) {
        apr_file_close(fd);
        return DECLINED;
    }
    if (iss_config_chunking(iss_config_dir(r))) {
        /* The answer depends on Accept (the manifest or the content). */
        apr_table_mergen(r->headers_out, "Vary", "Accept");
        if (iss_chunk_wants_manifest(r)) {
            return send_manifest(r, fd, &fi);
        }
    }
    iss_digest_of_file(r, r->uri, fd, &fi, sha, &found);
    if (!found) {
        apr_file_close(fd);
        return DECLINED;           /* the default handler serves it */
    }
    ap_allow_standard_methods(r, MERGE_ALLOW, M_GET, M_OPTIONS, M_POST, -1);
    if ((status = ap_discard_request_body(r)) != OK) {
        apr_file_close(fd);
        return status;
    }
    ap_update_mtime(r, fi.mtime);
    ap_set_last_modified(r);
    apr_table_setn(r->headers_out, "ETag", iss_digest_etag(sha, r->pool));
    if (iss_digest_wanted_by(r)) {
        apr_table_setn(r->headers_out, "Repr-Digest",
                       iss_digest_field(sha, r->pool));
    }
    ap_set_accept_ranges(r);
    ap_set_content_length(r, fi.size);

    if (apr_table_get(r->headers_in, "A-IM") != NULL) {
        /* The answer may be a delta (226) from the version that
         * If-None-Match names (RFC 3229 section 10.5.3). */
        apr_table_mergen(r->headers_out, "Vary", "A-IM, If-None-Match");
    }

    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    if ((status = ap_meets_conditions(r)) != OK) {
        apr_file_close(fd);
        r->status = status;
    }
    else if (send_delta(r, fd, &fi, sha, &status)) {
        apr_file_close(fd);
        return status;
    }
    else {
        e = apr_brigade_insert_file(bb, fd, 0, fi.size, r->pool);
#if APR_HAS_MMAP
        if (d->enable_mmap == ENABLE_MMAP_OFF) {
            (void)apr_bucket_file_enable_mmap(e, 0);
        }
#endif
    }
    APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(r->connection
                                                      ->bucket_alloc));
    rv = ap_pass_brigade(r->output_filters, bb);
    apr_brigade_cleanup(bb);
    if (rv == APR_SUCCESS || r->status != HTTP_OK || r->connection->aborted) {
        return OK;
    }
    return AP_FILTER_ERROR;
}

void iss_get_register_hooks(apr_pool_t *p)
{
    /* Handlers with a name of their own (cgi-script, ...) run first. */
    ap_hook_handler(get_handler, NULL, NULL, APR_HOOK_LAST);
}
