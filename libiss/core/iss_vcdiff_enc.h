/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_vcdiff_enc — a streaming RFC 3284 VCDIFF encoder, the other half
 * of iss_vcdiff.h, for deltas served from retained versions (RFC 3229
 * `226 IM Used`, issue 15).
 *
 * Output.  A VCDIFF delta that turns the source (the old version) into
 * the target (the new one): the file header D6 C3 C4 00 with
 * Hdr_Indicator 0 (no secondary compressor, no code table, no
 * application header), then windows that use the default code table of
 * RFC 3284 section 5.6 (s_near 4, s_same 3), double instructions
 * (ADD 1..4 + COPY 4..6, COPY 4 + ADD 1), every address mode (SELF,
 * HERE, NEAR, SAME) and RUN.  Every window of a non-empty source has
 * VCD_SOURCE with the whole source as its segment (position 0, length
 * source_size): a COPY may reach any byte of the source.  COPYs also
 * read the window's own earlier target bytes (overlapping allowed); no
 * window uses VCD_TARGET.  With opts.checksum, each window carries
 * xdelta3's Adler-32 of its target (Win_Indicator 0x04).  An empty
 * target gives the header and one empty window (`xdelta3 -d` refuses a
 * delta without windows).  `xdelta3 -d -s SOURCE DELTA OUT` and
 * iss_vcdiff (with max_window >= opts.window) decode it.
 *
 * Shape.  Like the decoder: an object created with callbacks that read
 * the source at any offset (read_source) and take the delta in order
 * (write), fed the target in pieces of any size, down to one byte, and
 * finished.  Errors are sticky; iss_vcdiff_enc_error() has a message.
 *
 * How matches are found.  The target is cut into windows of
 * opts.window bytes.  In each window, a greedy parse looks at every
 * position not yet covered for (a) the continuation of the last source
 * COPY (same distance between source and target: a change of equal
 * length is followed by a COPY at once), (b) the window's own earlier
 * bytes (4-byte hash, buckets of 4: repeats within the new data), (c)
 * runs of one byte and, unless (b) found 16 bytes or more, (d) a source
 * index (16-byte rolling hash, sampled every `step` bytes over the
 * indexed part of the source, 2-way buckets with a 32-bit check, so that
 * the source is read, 256 bytes at a time, only for a likely match).  It
 * takes the match that reaches furthest, extends it backwards, over the
 * last 64 ops too (a long match found late takes back the short ones
 * before it), and emits it only if its encoding is shorter than the
 * bytes it covers.  Without manifests the indexed part is the whole
 * source (read once, at the first window).
 *
 * With manifests (opts.source_manifest and opts.target_manifest, both
 * describing exactly the source and the target: the caller vouches for
 * them, a wrong manifest gives a wrong delta, never a memory error), a
 * target chunk whose id (and length) is in the source manifest becomes
 * a COPY of that source chunk, merged with its neighbours when they are
 * contiguous in the source too, and neither its source nor its target
 * bytes are looked at: the caller may skip them
 * (iss_vcdiff_enc_skippable() and iss_vcdiff_enc_wanted() say what to
 * skip and what to feed next, iss_vcdiff_enc_skip() skips).  Only the
 * source chunks whose ids the target does not list (what was changed or
 * removed) are read and indexed, so a small edit reads about one chunk
 * of the source; the parse above runs over the target's other chunks
 * (chunks under 32 bytes are always parsed).
 *
 * Memory, whatever the sizes of the source and the target:
 *  - one target window, W = opts.window bytes;
 *  - its three sections, at most 2 W + 64 bytes (a COPY or RUN is
 *    emitted only if its encoding is shorter than what it covers), grown
 *    on demand: a window of COPYs needs a few bytes;
 *  - the source index, at most opts.index_size bytes, sized to the
 *    indexed bytes (8 bytes per sample, samples <= half the slots);
 *  - the window's self index, at most 1 MiB (the window's length / 8
 *    when that is less: a small target allocates little), a source
 *    cache of 256 blocks of 4 KiB (or the source's size if smaller), 256
 *    probe blocks of 256 bytes and, while the index is built, a read
 *    buffer of 256 KiB;
 *  - with manifests, at most 40 bytes per source manifest entry (an id
 *    map and the list of indexed regions); nothing per target entry.
 * With the defaults that is at most 8 + 16 + 8 + 2.4 MiB, and
 * typically about 19 MiB; nothing grows with the files.
 *
 * Size.  About what `xdelta3 -e -S none -A -D -n` makes (bench/README.md:
 * bench/vcdiff_encode.sh).  A match must be at least 16 + step - 1
 * bytes long to be found for sure through the index (step is 1 for up
 * to 512 Ki indexed bytes with the default index_size, and grows with
 * them: 512 bytes for 256 MiB), at least 4 within the window.
 *
 * Is it worth it?  iss_vcdiff_enc_delta_size() is the delta's size so
 * far (exact after iss_vcdiff_enc_finish()); with opts.max_delta the
 * encoder stops with ISS_VCDIFF_ENC_ETOOBIG, writing nothing more, as
 * soon as the delta would grow beyond it (a server sets it to the
 * target size - 1 and sends the full content instead).
 * iss_vcdiff_enc_changed_bytes() answers from the manifests alone,
 * before anything is read.
 *
 * Pure code: APR and zlib (adler32) only.  One encoder per delta; an
 * encoder is not thread-safe.
 */
#ifndef ISS_VCDIFF_ENC_H
#define ISS_VCDIFF_ENC_H

#include <apr_pools.h>
#include <apr_errno.h>

#include "iss_manifest.h"
#include "iss_vcdiff.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The delta would be larger than opts.max_delta. */
#define ISS_VCDIFF_ENC_ETOOBIG   (APR_OS_START_USERERR + 47)
/** The target fed (or skipped) is not as long as the target manifest
 *  says. */
#define ISS_VCDIFF_ENC_EMANIFEST (APR_OS_START_USERERR + 48)

/** Default target window: 8 MiB (what xdelta3 makes by default). */
#define ISS_VCDIFF_ENC_WINDOW_DEFAULT ((apr_size_t)8 * 1024 * 1024)
/** Largest target window: 16 MiB (xdelta3's decoder refuses larger). */
#define ISS_VCDIFF_ENC_WINDOW_MAX     ((apr_size_t)16 * 1024 * 1024)
/** Default memory of the source index: 8 MiB (1 Mi slots). */
#define ISS_VCDIFF_ENC_INDEX_DEFAULT  ((apr_size_t)8 * 1024 * 1024)
/** Bounds of opts.index_size: 64 bytes .. 1 GiB. */
#define ISS_VCDIFF_ENC_INDEX_MIN      ((apr_size_t)64)
#define ISS_VCDIFF_ENC_INDEX_MAX      ((apr_size_t)1024 * 1024 * 1024)

typedef struct iss_vcdiff_enc_t iss_vcdiff_enc_t;

typedef struct iss_vcdiff_enc_opts_t {
    /** Target bytes per window (W): 0 for the default; 1 ..
     *  ISS_VCDIFF_ENC_WINDOW_MAX.  A decoder needs a max_window of at
     *  least this. */
    apr_size_t window;
    /** Bytes of the source index: 0 for the default;
     *  ISS_VCDIFF_ENC_INDEX_MIN .. ISS_VCDIFF_ENC_INDEX_MAX. */
    apr_size_t index_size;
    /** Size of the source (old version); 0 for none. */
    apr_uint64_t source_size;
    /** Reads the source: exactly len bytes at offset, or an error (which
     *  the encoder returns).  May be NULL when source_size is 0. */
    iss_vcdiff_read_fn *read_source;
    void *source_baton;
    /** Takes the delta, in order.  Required. */
    iss_vcdiff_write_fn *write;
    void *write_baton;
    /** The manifests of the source and the target (both or neither);
     *  they must stay valid until the encoder's pool is destroyed.  The
     *  source manifest's file_size must be source_size and the offsets
     *  of both must be set (iss_manifest_parse() and the builder set
     *  them); their chunking parameters may differ. */
    const iss_manifest_t *source_manifest;
    const iss_manifest_t *target_manifest;
    /** Non-zero: an Adler-32 per window (then no bytes may be skipped). */
    int checksum;
    /** Non-zero: fail with ISS_VCDIFF_ENC_ETOOBIG rather than let the
     *  delta grow beyond this many bytes. */
    apr_uint64_t max_delta;
} iss_vcdiff_enc_opts_t;

/**
 * Create an encoder in @a pool (its buffers are freed with the pool);
 * @a opts is copied.  APR_EINVAL for unusable options (no write
 * callback, a source without read_source, window or index_size out of
 * bounds, one manifest without the other, a manifest whose offsets,
 * lengths and file size disagree, a source manifest of another size).
 * Nothing is read or written yet.
 */
apr_status_t iss_vcdiff_enc_create(iss_vcdiff_enc_t **enc,
                                   const iss_vcdiff_enc_opts_t *opts,
                                   apr_pool_t *pool);

/**
 * Feed the next @a len bytes of the target.  A window is encoded and
 * written when its W bytes are complete (the first one after the source
 * index is built).  Returns APR_SUCCESS, ISS_VCDIFF_ENC_ETOOBIG,
 * ISS_VCDIFF_ENC_EMANIFEST (more bytes than the target manifest says),
 * APR_EINVAL after finish, or a callback's code.
 */
apr_status_t iss_vcdiff_enc_feed(iss_vcdiff_enc_t *enc, const void *buf,
                                 apr_size_t len);

/**
 * With manifests (and no checksum): how many of the next target bytes
 * lie in chunks that become COPYs, which the encoder does not need to
 * see; 0 otherwise.  The caller may pass over them with
 * iss_vcdiff_enc_skip() instead of reading and feeding them.
 */
apr_uint64_t iss_vcdiff_enc_skippable(iss_vcdiff_enc_t *enc);

/**
 * With manifests (and no checksum): how many of the next target bytes
 * the encoder must be fed before iss_vcdiff_enc_skippable() can say
 * anything but 0 (the rest of the run of changed chunks at the current
 * position; 0 when bytes may be skipped now, and at the end).  Without
 * manifests, or with a checksum, APR_UINT64_MAX: everything.  A caller
 * reads and feeds that much, then skips what it may, and so on.
 */
apr_uint64_t iss_vcdiff_enc_wanted(iss_vcdiff_enc_t *enc);

/**
 * Pass over the next @a len target bytes without feeding them; @a len
 * must not exceed iss_vcdiff_enc_skippable() (APR_EINVAL otherwise).
 * Windows completed meanwhile are encoded and written.
 */
apr_status_t iss_vcdiff_enc_skip(iss_vcdiff_enc_t *enc, apr_uint64_t len);

/**
 * The target has ended: encode and write the last window.  Returns
 * APR_SUCCESS, ISS_VCDIFF_ENC_EMANIFEST (fewer bytes than the target
 * manifest says), the earlier error, or APR_EINVAL if called twice.
 */
apr_status_t iss_vcdiff_enc_finish(iss_vcdiff_enc_t *enc);

/** Bytes of delta written so far (all of it after a successful
 *  finish). */
apr_uint64_t iss_vcdiff_enc_delta_size(const iss_vcdiff_enc_t *enc);

/** Target bytes fed or skipped so far. */
apr_uint64_t iss_vcdiff_enc_target_size(const iss_vcdiff_enc_t *enc);

/** A message for the last error ("" if none). */
const char *iss_vcdiff_enc_error(const iss_vcdiff_enc_t *enc);

/**
 * From the manifests alone: in *changed, the bytes of the target's
 * chunks whose id (and length) the source does not have, i.e. what a
 * delta made with these manifests describes with more than COPYs of
 * whole chunks.  A delta is then at most about that plus a few bytes
 * per chunk and window, and usually much less; when it is close to the
 * target's size a delta will not pay.  Scratch memory about 20 bytes per
 * source entry, in a subpool of @a pool freed before return.  APR_EINVAL
 * if an argument is NULL or a manifest has count > 0 with no entries.
 */
apr_status_t iss_vcdiff_enc_changed_bytes(const iss_manifest_t *source,
                                          const iss_manifest_t *target,
                                          apr_uint64_t *changed,
                                          apr_pool_t *pool);

#ifdef __cplusplus
}
#endif

#endif /* ISS_VCDIFF_ENC_H */
