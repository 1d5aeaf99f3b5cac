/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * libFuzzer target for the chunk-frame parser (libiss/core/iss_frames.c):
 * any bytes as the body of a POST of chunks, fed in pieces whose sizes
 * the input picks, with callbacks that refuse a frame when the input
 * says so.  Whatever the input, the parser must never touch memory it
 * does not own nor leak (ASan and UBSan, scripts/fuzz.sh), and:
 *  - the frames it accepts re-encode (iss_frames_head + bytes) to
 *    exactly the bytes they came from, a prefix of the body, and each
 *    chunk hashes to its id;
 *  - it returns only its own codes or a callback's, and an error is
 *    sticky: every later feed and finish returns it again;
 *  - a body it accepts whole re-encodes to the whole body.
 *
 * Input: byte 0 picks the piece size (1 to 64 bytes), byte 1 a frame
 * whose head (low 3 bits) or chunk (next 3 bits) callback refuses it
 * (0: none); the rest is the body.  max_len is 1024, the largest chunk
 * of the seeds (iss-chunk with chunk sizes 64,256,1024).
 */

#include "iss_frames.h"

#include <apr_general.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LEN 1024
#define REFUSED (APR_OS_START_USERERR + 999)

typedef struct run_t {
    const uint8_t *body;            /* the input's body */
    size_t len;
    size_t out;                     /* bytes of it accepted so far */
    unsigned heads, chunks, accepted;
    unsigned refuse_head, refuse_chunk;
    iss_digest_t *sha;
} run_t;

static apr_pool_t *root;

static apr_status_t on_head(void *baton, const unsigned char *id,
                            apr_uint32_t len)
{
    run_t *r = baton;

    (void)id;
    if (len > MAX_LEN || r->heads != r->chunks)
        abort();                    /* the parser's own check came first */
    r->heads++;
    return r->heads == r->refuse_head ? REFUSED : APR_SUCCESS;
}

static apr_status_t on_chunk(void *baton, const unsigned char *id,
                             const unsigned char *bytes, apr_uint32_t len)
{
    run_t *r = baton;
    unsigned char head[ISS_FRAMES_HEAD_LEN], sha[ISS_DIGEST_SHA256_LEN];

    r->chunks++;
    if (r->chunks != r->heads || len > MAX_LEN)
        abort();
    iss_digest_update(r->sha, bytes, len);
    iss_digest_final(r->sha, sha);
    if (memcmp(sha, id, sizeof(sha)) != 0)
        abort();                    /* a chunk that is not its id */
    if (r->chunks == r->refuse_chunk)
        return REFUSED;
    /* re-encode: the next bytes of the body, exactly */
    iss_frames_head(head, id, len);
    if (r->out + sizeof(head) + len > r->len
        || memcmp(r->body + r->out, head, sizeof(head)) != 0
        || (len && memcmp(r->body + r->out + sizeof(head), bytes, len) != 0))
        abort();
    r->out += sizeof(head) + len;
    r->accepted++;
    return APR_SUCCESS;
}

static int known(apr_status_t rv)
{
    return rv == ISS_FRAMES_ETOOBIG || rv == ISS_FRAMES_EDIGEST
           || rv == ISS_FRAMES_ETRUNCATED || rv == REFUSED;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    iss_frames_t *f;
    apr_pool_t *p;
    apr_status_t rv = APR_SUCCESS;
    size_t off = 0, step;
    run_t r;

    if (root == NULL) {
        apr_initialize();
        apr_pool_create(&root, NULL);
    }
    if (size < 2)
        return 0;
    memset(&r, 0, sizeof(r));
    step = (size_t)data[0] % 64 + 1;
    r.refuse_head = data[1] & 7;
    r.refuse_chunk = (data[1] >> 3) & 7;
    r.body = data + 2;
    r.len = size - 2;
    apr_pool_create(&p, root);
    if (iss_digest_create(&r.sha, p) != APR_SUCCESS
        || iss_frames_create(&f, MAX_LEN, on_head, on_chunk, &r, p)
           != APR_SUCCESS)
        abort();
    while (off < r.len) {
        size_t n = r.len - off < step ? r.len - off : step;

        if ((rv = iss_frames_feed(f, r.body + off, n)) != APR_SUCCESS)
            break;
        off += n;
    }
    if (rv == APR_SUCCESS)
        rv = iss_frames_finish(f);
    if (iss_frames_count(f) != r.accepted)
        abort();
    if (rv == APR_SUCCESS) {
        /* accepted whole: every byte was a frame, none is under way */
        if (r.out != r.len || iss_frames_partial(f))
            abort();
    }
    else if (!known(rv) || iss_frames_feed(f, data, size) != rv
             || iss_frames_finish(f) != rv
             || (rv != REFUSED && iss_frames_error_text(rv) == NULL)) {
        abort();                    /* a foreign code, or not sticky */
    }
    apr_pool_destroy(p);
    return 0;
}
