/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_frames — chunk frames, the body of a POST of chunks to an upload
 * session (media type application/vnd.mod-iss.chunks,
 * docs/protocol.md section 5.3).
 *
 * Format.  A body is zero or more frames, back to back, nothing between
 * or after them; each frame is
 *
 *     offset  size     field
 *          0    32     the chunk id: SHA-256 of the chunk's bytes
 *         32     4     the chunk's length, unsigned big-endian
 *         36   len     the chunk's bytes
 *
 * Parser.  Built for hostile input, same shape as the VCDIFF decoder
 * (iss_vcdiff.h): fed the body in pieces of any size (down to one byte),
 * it calls back
 *   - head(id, len) as soon as a frame's 36-byte head is complete, so
 *     the caller can refuse an id or a length before any byte of the
 *     chunk is buffered (a length above the parser's max_len is refused
 *     by the parser itself, ISS_FRAMES_ETOOBIG, before head is called);
 *   - chunk(id, bytes, len) when the frame is complete, with the chunk's
 *     bytes in one buffer of at most max_len bytes, allocated once when
 *     the parser is created; the parser checks that they hash to the id
 *     first (ISS_FRAMES_EDIGEST: chunk is not called).
 * A callback's non-zero return stops the parser and is returned by this
 * and every later call (errors are sticky).  iss_frames_finish() says
 * whether the body ended between frames (ISS_FRAMES_ETRUNCATED if not).
 * A frame of length 0 is valid (its id must be the SHA-256 of nothing).
 * Memory: max_len + a constant; nothing is allocated per frame.
 *
 * Writer.  iss_frames_head() writes the 36-byte head of a frame; the
 * caller sends the chunk's bytes after it.  (A client streams chunks
 * straight from its files; nothing is copied.)
 *
 * Pure code: APR and OpenSSL (through iss_digest) only.
 */
#ifndef ISS_FRAMES_H
#define ISS_FRAMES_H

#include <apr_pools.h>
#include <apr_errno.h>

#include "iss_digest.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The media type of a body of frames. */
#define ISS_FRAMES_MEDIA_TYPE "application/vnd.mod-iss.chunks"
/** Bytes of a frame's head (id and length). */
#define ISS_FRAMES_HEAD_LEN (ISS_DIGEST_SHA256_LEN + 4)

/** A frame's length is above the parser's max_len. */
#define ISS_FRAMES_ETOOBIG    (APR_OS_START_USERERR + 80)
/** A chunk's bytes do not hash to its id. */
#define ISS_FRAMES_EDIGEST    (APR_OS_START_USERERR + 81)
/** The body ended inside a frame (iss_frames_finish() only). */
#define ISS_FRAMES_ETRUNCATED (APR_OS_START_USERERR + 82)

/** A frame's head is complete.  Return APR_SUCCESS to go on. */
typedef apr_status_t iss_frames_head_fn(void *baton,
                                        const unsigned char id[ISS_DIGEST_SHA256_LEN],
                                        apr_uint32_t len);

/** A frame is complete and its bytes hash to its id.  @a bytes is valid
 *  until the callback returns.  Return APR_SUCCESS to go on. */
typedef apr_status_t iss_frames_chunk_fn(void *baton,
                                         const unsigned char id[ISS_DIGEST_SHA256_LEN],
                                         const unsigned char *bytes,
                                         apr_uint32_t len);

typedef struct iss_frames_t iss_frames_t;

/**
 * Create a parser in @a pool for frames of at most @a max_len bytes
 * (the store's largest chunk); it allocates its one chunk buffer of
 * @a max_len bytes here.  @a head may be NULL; @a chunk is required.
 * APR_EINVAL for a NULL @a chunk; errors of iss_digest_create().
 */
apr_status_t iss_frames_create(iss_frames_t **f, apr_uint32_t max_len,
                               iss_frames_head_fn *head,
                               iss_frames_chunk_fn *chunk, void *baton,
                               apr_pool_t *pool);

/** Feed the next @a len bytes of the body (@a buf may be NULL when
 *  @a len is 0).  APR_SUCCESS, an ISS_FRAMES_E* code or a callback's
 *  code; errors are sticky. */
apr_status_t iss_frames_feed(iss_frames_t *f, const void *buf,
                             apr_size_t len);

/** The body has ended: APR_SUCCESS if it ended between two frames,
 *  ISS_FRAMES_ETRUNCATED if inside one, or the earlier error. */
apr_status_t iss_frames_finish(iss_frames_t *f);

/** Whether a frame is under way (some of its bytes arrived, not all). */
int iss_frames_partial(const iss_frames_t *f);

/** Frames completed (chunk called and returned APR_SUCCESS) so far. */
apr_uint64_t iss_frames_count(const iss_frames_t *f);

/** A static English message for an ISS_FRAMES_E* code, NULL for any
 *  other code. */
const char *iss_frames_error_text(apr_status_t rv);

/** Write the head of a frame for the chunk @a id of @a len bytes to
 *  @a out (ISS_FRAMES_HEAD_LEN bytes). */
void iss_frames_head(unsigned char out[ISS_FRAMES_HEAD_LEN],
                     const unsigned char id[ISS_DIGEST_SHA256_LEN],
                     apr_uint32_t len);

#ifdef __cplusplus
}
#endif

#endif /* ISS_FRAMES_H */
