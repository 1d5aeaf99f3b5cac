/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_vcdiff — a streaming decoder for RFC 3284 VCDIFF deltas.
 *
 * Built for hostile input (the body of an HTTP PATCH):
 *  - every field is bounds-checked; integers are RFC 3284 base-128
 *    varints, at most 10 bytes, refused when they overflow 64 bits;
 *  - nothing is allocated before the size that drives the allocation has
 *    been checked against a limit of iss_vcdiff_opts_t;
 *  - memory is bounded by one target window plus one window's sections
 *    (data, instructions, addresses), never by the size of the files;
 *  - no recursion; the delta may arrive in chunks of any size, down to
 *    one byte at a time.
 *
 * Supported: the file header (magic D6 C3 C4 00, Hdr_Indicator; an
 * xdelta3 application header, bit 0x04, is skipped), the default code
 * table of RFC 3284 section 5.6 with s_near = 4 and s_same = 3, windows
 * whose source segment comes from the source file (VCD_SOURCE), from
 * earlier target output (VCD_TARGET, read back through read_target) or
 * neither, ADD / RUN / COPY with every address mode, COPYs that overlap
 * the target they produce, and xdelta3's Adler-32 window checksum
 * (Win_Indicator bit 0x04: four big-endian bytes after the length of the
 * addresses section, counted in the length of the delta encoding), which
 * is verified when present.
 *
 * Refused with their own codes: secondary compressors (Hdr_Indicator
 * VCD_DECOMPRESS, or a non-zero Delta_Indicator) and application-defined
 * code tables (VCD_CODETABLE).
 *
 * A window's target is produced completely, checked (sizes, checksum)
 * and only then handed to the write callback, so the callback never sees
 * bytes of a window that turned out to be bad.  Bytes of earlier, good
 * windows have been written by then: callers write the target to a
 * temporary file and commit it only when iss_vcdiff_finish() succeeds.
 *
 * Errors are sticky: after the first error every call returns it again.
 * iss_vcdiff_error() gives a message for humans (no secrets, no paths).
 *
 * Pure code: APR and zlib (adler32) only.  One decoder per delta; a
 * decoder is not thread-safe.
 */
#ifndef ISS_VCDIFF_H
#define ISS_VCDIFF_H

#include <apr_pools.h>
#include <apr_errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Malformed delta: bad magic, bad indicator bits, a varint that is too
 *  long or overflows, inconsistent lengths, a COPY outside its address
 *  space, sections not used up exactly, trailing garbage... (HTTP 400). */
#define ISS_VCDIFF_EFORMAT     (APR_OS_START_USERERR + 40)
/** The delta ended in the middle (iss_vcdiff_finish() only). */
#define ISS_VCDIFF_ETRUNCATED  (APR_OS_START_USERERR + 41)
/** Secondary compression (VCD_DECOMPRESS / Delta_Indicator) is used:
 *  not supported (HTTP 415/422). */
#define ISS_VCDIFF_ESECONDARY  (APR_OS_START_USERERR + 42)
/** An application-defined code table (VCD_CODETABLE) is used: not
 *  supported (HTTP 415/422). */
#define ISS_VCDIFF_ECODETABLE  (APR_OS_START_USERERR + 43)
/** A declared size is above a limit of iss_vcdiff_opts_t (HTTP 413/422). */
#define ISS_VCDIFF_ELIMIT      (APR_OS_START_USERERR + 44)
/** A window's Adler-32 checksum does not match its target (HTTP 422). */
#define ISS_VCDIFF_ECHECKSUM   (APR_OS_START_USERERR + 45)
/** A VCD_TARGET window, but the caller gave no read_target callback. */
#define ISS_VCDIFF_ENOTARGET   (APR_OS_START_USERERR + 46)
/** The target would grow past its source by more than growth_ratio
 *  bytes per byte of delta (iss_vcdiff_opts_t; HTTP 413).  (+47 and +48
 *  are the encoder's.) */
#define ISS_VCDIFF_EGROWTH     (APR_OS_START_USERERR + 49)

typedef struct iss_vcdiff_t iss_vcdiff_t;

/** Read exactly @a len bytes at @a offset into @a buf.  Return
 *  APR_SUCCESS only if all of them were read (APR_EOF or another code
 *  otherwise); the decoder passes the code on. */
typedef apr_status_t iss_vcdiff_read_fn(void *baton, apr_uint64_t offset,
                                        apr_size_t len, unsigned char *buf);

/** Take @a len bytes of target (the next ones, in order). */
typedef apr_status_t iss_vcdiff_write_fn(void *baton,
                                         const unsigned char *buf,
                                         apr_size_t len);

typedef struct iss_vcdiff_opts_t {
    /** Largest target window accepted (bytes); also the size of the one
     *  target buffer the decoder keeps.  Must be > 0.  xdelta3 makes
     *  target windows of up to 8 MiB unless told otherwise (-W). */
    apr_size_t max_window;
    /** Largest total target accepted (bytes). */
    apr_uint64_t max_target;
    /** Largest sum of one window's data, instructions and addresses
     *  sections (bytes); 0 means 2 * max_window + 4096. */
    apr_size_t max_sections;
    /** Size of the source (old file); VCD_SOURCE segments must lie
     *  inside it. */
    apr_uint64_t source_size;
    /** Bound on the work a small delta can cause (0: none): the target
     *  may be larger than source_size by at most growth_floor +
     *  growth_ratio * (bytes of delta up to the end of the window that
     *  makes it so).  Checked at each window's header, before its
     *  sections are read or anything allocated (ISS_VCDIFF_EGROWTH). */
    apr_uint64_t growth_ratio;
    apr_uint64_t growth_floor;
    /** Reads the source; may be NULL when source_size is 0. */
    iss_vcdiff_read_fn *read_source;
    void *source_baton;
    /** Reads back target bytes already handed to write (VCD_TARGET
     *  windows); NULL refuses such windows with ISS_VCDIFF_ENOTARGET. */
    iss_vcdiff_read_fn *read_target;
    void *target_baton;
    /** Receives the target, window by window.  Required. */
    iss_vcdiff_write_fn *write;
    void *write_baton;
} iss_vcdiff_opts_t;

/**
 * Create a decoder in @a pool (its buffers are freed with the pool).
 * @a opts is copied.  Returns APR_EINVAL for unusable options.
 */
apr_status_t iss_vcdiff_create(iss_vcdiff_t **dec,
                               const iss_vcdiff_opts_t *opts,
                               apr_pool_t *pool);

/**
 * Feed the next @a len bytes of the delta.  Complete windows are decoded
 * and written as soon as their last byte arrives.  Returns APR_SUCCESS,
 * an ISS_VCDIFF_E* code, or a code returned by a callback.
 */
apr_status_t iss_vcdiff_feed(iss_vcdiff_t *dec, const void *buf,
                             apr_size_t len);

/**
 * The delta has ended: APR_SUCCESS if it ended cleanly after its last
 * window (a header and no window is a valid, empty target),
 * ISS_VCDIFF_ETRUNCATED if it ended inside the header or a window, or
 * the earlier error.
 *
 * VCDIFF has no end marker: a delta cut exactly between two windows is a
 * valid delta of a shorter target.  Callers that must not accept that
 * check the result (expected size, Repr-Digest).
 */
apr_status_t iss_vcdiff_finish(iss_vcdiff_t *dec);

/** A message for the last error ("" if none). */
const char *iss_vcdiff_error(const iss_vcdiff_t *dec);

/** Bytes of target written so far. */
apr_uint64_t iss_vcdiff_target_size(const iss_vcdiff_t *dec);

#ifdef __cplusplus
}
#endif

#endif /* ISS_VCDIFF_H */
