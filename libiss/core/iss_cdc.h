/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_cdc — content-defined chunking (FastCDC with normalized chunking).
 *
 * Splits a byte stream into chunks whose boundaries depend on the content
 * only, so that an insert or a delete changes the chunks around the edit
 * and no others (chunk dedup, issue 5).  The algorithm is FastCDC (Xia et
 * al., "FastCDC: a Fast and Efficient Content-Defined Chunking Approach
 * for Data Deduplication", USENIX ATC 2016) with normalized chunking at
 * level 2 and cut-point skipping.  This header is its specification:
 * another implementation (a client) that follows it finds the same
 * boundaries.
 *
 * The rule.  Bytes are numbered from 0 at the start of a chunk; L is the
 * length the chunk would have if it ended after byte L-1.  With
 * avg_size = 2^k:
 *  - bytes 0 .. min_size-1 are not looked at (cut-point skipping); the
 *    hash starts at h = 0 at byte min_size, so no chunk ends before
 *    min_size + 1 bytes (except the last chunk of a stream);
 *  - for every byte b from byte min_size on, the 64-bit gear hash is
 *    h = (h << 1) + GEAR[b] (mod 2^64), GEAR being the fixed table of
 *    iss_cdc_gear();
 *  - while L <= avg_size the chunk ends after this byte if
 *    (h & MASK_S) == 0, MASK_S having k + 2 one-bits (a cut is 4 times
 *    less likely than 1 in avg_size);
 *  - while avg_size < L < max_size it ends if (h & MASK_L) == 0, MASK_L
 *    having k - 2 one-bits (4 times more likely);
 *  - at L == max_size it ends in any case;
 *  - after a cut, the next chunk starts with the next byte (h = 0 again).
 * So a boundary is a pure function of the bytes since the chunk start.
 *
 * Masks.  A mask of n one-bits (n = k + 2 or k - 2, from 6 to 26) sets
 * bits 63 - floor(i * 48 / n) for i = 0 .. n-1: the one-bits are spread
 * evenly over the 48 high bits of h, as FastCDC spreads its masks
 * ("padding zeros"), so that each bit tested depends on many bytes: bit j
 * of h depends on the last j + 1 bytes hashed, and bit 63 on the last 64.
 * iss_cdc_mask() computes them; for the defaults (k = 16) MASK_S (18
 * bits) = 0xa4a4a4a4a4a40000 and MASK_L (14 bits) = 0x9224489224480000,
 * for avg_size = 1 KiB (k = 10) 0x8888888888880000 (12 bits) and
 * 0x8208208208200000 (8 bits); unit/test_cdc.c checks all 21.
 *
 * Determinism.  GEAR is 256 64-bit constants written out in iss_cdc.c
 * (SplitMix64 from a stated seed, see there); the code uses only byte
 * loads and 64-bit integer arithmetic: no host-endian reads, no unaligned
 * loads, nothing platform-dependent.  The same bytes give the same
 * boundaries on every machine.
 *
 * Parameters (per store) and the defaults 16 KiB / 64 KiB / 256 KiB.  The
 * average trades dedup granularity against manifest size: an edit costs
 * one or two chunks of upload (about 2 x 64 KiB), while a file's manifest
 * lists every chunk: a 1 GiB file has about 16k chunks, about 600 KB of
 * manifest with 32-byte ids and their lengths; 4 KiB chunks would make
 * that 10 MB, more than many edits are worth.  The minimum (16 KiB)
 * bounds the chunk count and the per-chunk overhead whatever the content
 * (at most 64k chunks per GiB, no run of tiny chunks); the maximum
 * (256 KiB) bounds the damage of a long run without a cut and the memory
 * a consumer needs to hold one chunk.  Normalized chunking concentrates
 * the lengths around avg_size; the mean chunk of random data is a little
 * above it (about 73 KiB with the defaults, so about 14k chunks per GiB).
 * A run of one byte value makes the hash constant after 64 bytes, so its
 * chunks all have one length: max_size for zeros (and for all but one
 * byte value with the defaults), min_size + 19 for 0x24 with the
 * defaults.
 *
 * Streaming.  iss_cdc_feed() consumes bytes up to a boundary, so one pass
 * can feed the same bytes to the chunker and to a SHA-256 (the chunk id):
 *
 *     while (len > 0) {
 *         apr_size_t n = iss_cdc_feed(c, buf, len, &cut);
 *         iss_digest_update(d, buf, n);
 *         if (cut) { iss_digest_final(d, id); ...chunk done... }
 *         buf += n; len -= n;
 *     }
 *     if (iss_cdc_pending(c) > 0) { ...last chunk... }
 *
 * Feeding a stream in pieces of any sizes gives the same boundaries as
 * iss_cdc_cut() on the whole.  Memory is one small object from the pool;
 * nothing is allocated per byte or per chunk.  The file knows nothing of
 * httpd (APR only).
 */
#ifndef ISS_CDC_H
#define ISS_CDC_H

#include <apr_pools.h>
#include <apr_errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Chunking parameters of a store (bytes). */
typedef struct iss_cdc_params_t {
    apr_uint32_t min_size;
    apr_uint32_t avg_size;
    apr_uint32_t max_size;
} iss_cdc_params_t;

/** The defaults: 16 KiB / 64 KiB / 256 KiB (see above for why). */
#define ISS_CDC_MIN_DEFAULT (16 * 1024)
#define ISS_CDC_AVG_DEFAULT (64 * 1024)
#define ISS_CDC_MAX_DEFAULT (256 * 1024)
/** Initializer: iss_cdc_params_t p = ISS_CDC_PARAMS_DEFAULT; */
#define ISS_CDC_PARAMS_DEFAULT \
    { ISS_CDC_MIN_DEFAULT, ISS_CDC_AVG_DEFAULT, ISS_CDC_MAX_DEFAULT }

/** Limits checked by iss_cdc_params_check(). */
#define ISS_CDC_AVG_LOWEST  256u
#define ISS_CDC_AVG_HIGHEST (16u * 1024 * 1024)
#define ISS_CDC_MIN_LOWEST  64u
#define ISS_CDC_MAX_HIGHEST (64u * 1024 * 1024)

/** A streaming chunker. */
typedef struct iss_cdc_t iss_cdc_t;

/** NULL if @a p is valid, else a static English message saying what is
 *  wrong: avg_size must be a power of two from 256 B to 16 MiB, and
 *  64 <= min_size < avg_size, max_size >= 2 * avg_size, max_size <=
 *  64 MiB.  A NULL @a p is invalid. */
const char *iss_cdc_params_check(const iss_cdc_params_t *p);

/** Create a chunker for @a p (copied) in @a pool, at a chunk start.
 *  APR_EINVAL if iss_cdc_params_check(@a p) fails. */
apr_status_t iss_cdc_create(iss_cdc_t **c, const iss_cdc_params_t *p,
                            apr_pool_t *pool);

/** Consume bytes of @a buf until a cut or the end of @a buf; returns how
 *  many were consumed; *cut = 1 if a chunk ended exactly after them (the
 *  chunker is then at the start of the next chunk), else 0 (and all
 *  @a len bytes were consumed).  @a buf may be NULL when @a len is 0. */
apr_size_t iss_cdc_feed(iss_cdc_t *c, const unsigned char *buf,
                        apr_size_t len, int *cut);

/** Length of the chunk in progress (bytes consumed since the last cut,
 *  or since creation / reset); 0 right after a cut. */
apr_uint64_t iss_cdc_pending(const iss_cdc_t *c);

/** Start over at a chunk start (forget the chunk in progress). */
void iss_cdc_reset(iss_cdc_t *c);

/** One shot: the length of the first chunk of @a buf, i.e. of the chunk
 *  that starts at buf[0]: @a len if no boundary falls before the end of
 *  @a buf and len < max_size (the chunk may go on past @a buf); never
 *  more than max_size.  0 if @a len is 0 or @a p is invalid. */
apr_size_t iss_cdc_cut(const iss_cdc_params_t *p, const unsigned char *buf,
                       apr_size_t len);

/** The 256 GEAR constants (for tests and other implementations). */
const apr_uint64_t *iss_cdc_gear(void);

/** The mask of the rule above for @a bits one-bits (6..26); 0 for any
 *  other count.  MASK_S = iss_cdc_mask(k + 2), MASK_L = iss_cdc_mask(k - 2)
 *  for avg_size = 2^k. */
apr_uint64_t iss_cdc_mask(unsigned int bits);

#ifdef __cplusplus
}
#endif

#endif /* ISS_CDC_H */
