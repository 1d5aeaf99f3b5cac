/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * iss_frames.c - the chunk-frame codec (iss_frames.h).
 *
 * The parser is a two-state machine over a frame: HEAD (collecting the
 * 36 bytes of id and length into a small array) and BODY (collecting
 * the chunk's bytes into the one buffer of max_len bytes, hashing them
 * as they arrive, so that the SHA-256 is ready when the last byte is).
 * A frame is complete when its head is and all of its bytes are: a
 * frame of length 0 completes with its head, even when the piece that
 * completed the head was the last of the body.  Nothing is allocated
 * after iss_frames_create(); each byte of input is copied once.
 */

#include "iss_frames.h"
#include "iss_bytes.h"

#include <string.h>

#define ID_LEN ISS_DIGEST_SHA256_LEN

struct iss_frames_t {
    apr_uint32_t max_len;
    iss_frames_head_fn *head;
    iss_frames_chunk_fn *chunk;
    void *baton;
    iss_digest_t *sha;              /* of the bytes of the frame at hand */
    unsigned char hdr[ISS_FRAMES_HEAD_LEN];
    apr_size_t have_head;           /* bytes of hdr received */
    apr_uint32_t len;               /* the chunk's length, once hdr is */
    apr_uint32_t have;              /* bytes of the chunk received */
    unsigned char *buf;             /* max_len bytes (at least 1) */
    apr_uint64_t count;
    apr_status_t err;               /* the first error, sticky */
};

apr_status_t iss_frames_create(iss_frames_t **f, apr_uint32_t max_len,
                               iss_frames_head_fn *head,
                               iss_frames_chunk_fn *chunk, void *baton,
                               apr_pool_t *pool)
{
    iss_frames_t *n;
    apr_status_t rv;

    if (chunk == NULL) {
        return APR_EINVAL;
    }
    n = apr_pcalloc(pool, sizeof(*n));
    if ((rv = iss_digest_create(&n->sha, pool)) != APR_SUCCESS) {
        return rv;
    }
    n->buf = apr_palloc(pool, max_len ? max_len : 1);
    if (n->buf == NULL) {
        return APR_ENOMEM;
    }
    n->max_len = max_len;
    n->head = head;
    n->chunk = chunk;
    n->baton = baton;
    *f = n;
    return APR_SUCCESS;
}

static apr_status_t fail(iss_frames_t *f, apr_status_t rv)
{
    f->err = rv;
    return rv;
}

/* The head is complete: check the length, ask the caller. */
static apr_status_t got_head(iss_frames_t *f)
{
    apr_status_t rv;

    f->len = iss_be32_get(f->hdr + ID_LEN);
    f->have = 0;
    if (f->len > f->max_len) {
        return fail(f, ISS_FRAMES_ETOOBIG);
    }
    if (f->head && (rv = f->head(f->baton, f->hdr, f->len)) != APR_SUCCESS) {
        return fail(f, rv);
    }
    return APR_SUCCESS;
}

/* All bytes are there: check them against the id, hand them over. */
static apr_status_t got_frame(iss_frames_t *f)
{
    unsigned char sha[ID_LEN];
    apr_status_t rv;

    iss_digest_final(f->sha, sha);      /* and starts over for the next */
    if (memcmp(sha, f->hdr, ID_LEN) != 0) {
        return fail(f, ISS_FRAMES_EDIGEST);
    }
    if ((rv = f->chunk(f->baton, f->hdr, f->buf, f->len)) != APR_SUCCESS) {
        return fail(f, rv);
    }
    f->count++;
    f->have_head = 0;
    f->have = 0;
    return APR_SUCCESS;
}

apr_status_t iss_frames_feed(iss_frames_t *f, const void *buf,
                             apr_size_t len)
{
    const unsigned char *p = buf;
    apr_status_t rv;

    if (f->err != APR_SUCCESS) {
        return f->err;
    }
    for (;;) {
        if (f->have_head < ISS_FRAMES_HEAD_LEN) {
            apr_size_t n = ISS_FRAMES_HEAD_LEN - f->have_head;

            if (len == 0) {
                break;
            }
            n = n < len ? n : len;
            memcpy(f->hdr + f->have_head, p, n);
            f->have_head += n;
            p += n;
            len -= n;
            if (f->have_head < ISS_FRAMES_HEAD_LEN) {
                break;
            }
            if ((rv = got_head(f)) != APR_SUCCESS) {
                return rv;
            }
        }
        if (f->have < f->len) {
            apr_size_t n = f->len - f->have;

            if (len == 0) {
                break;
            }
            n = n < len ? n : len;
            memcpy(f->buf + f->have, p, n);
            iss_digest_update(f->sha, p, n);
            f->have += (apr_uint32_t)n;
            p += n;
            len -= n;
            if (f->have < f->len) {
                break;
            }
        }
        if ((rv = got_frame(f)) != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

apr_status_t iss_frames_finish(iss_frames_t *f)
{
    if (f->err == APR_SUCCESS && iss_frames_partial(f)) {
        f->err = ISS_FRAMES_ETRUNCATED;
    }
    return f->err;
}

int iss_frames_partial(const iss_frames_t *f)
{
    return f->have_head > 0;
}

apr_uint64_t iss_frames_count(const iss_frames_t *f)
{
    return f->count;
}

const char *iss_frames_error_text(apr_status_t rv)
{
    switch (rv) {
    case ISS_FRAMES_ETOOBIG:
        return "a frame is longer than the largest chunk";
    case ISS_FRAMES_EDIGEST:
        return "a chunk's bytes do not hash to its id";
    case ISS_FRAMES_ETRUNCATED:
        return "the body ends inside a frame";
    default:
        return NULL;
    }
}

void iss_frames_head(unsigned char out[ISS_FRAMES_HEAD_LEN],
                     const unsigned char id[ISS_DIGEST_SHA256_LEN],
                     apr_uint32_t len)
{
    memcpy(out, id, ID_LEN);
    iss_be32_put(out + ID_LEN, len);
}
