/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_manifest — chunk manifests (chunk dedup, issue 5).
 *
 * A manifest describes one file content as the ordered list of its
 * chunks (iss_cdc.h), each named by its SHA-256 (the chunk id) and its
 * length, plus the SHA-256 and size of the whole file.  This header is
 * the specification of the binary form, media type
 *
 *     application/vnd.mod-iss.manifest
 *
 * which a client author can implement from it alone.
 *
 * Format ("ISM1").  All integers are unsigned, big-endian (network
 * order), with no padding and no alignment:
 *
 *     offset  size     field
 *          0     4     magic: the ASCII bytes "ISM1" (49 53 4d 31)
 *          4     4     min_size  } the chunking parameters the file was
 *          8     4     avg_size  } chunked with (iss_cdc_params_t); they
 *         12     4     max_size  } must pass iss_cdc_params_check()
 *         16     8     file size in bytes
 *         24    32     SHA-256 of the whole file
 *         56     4     count: the number of entries
 *         60  36 x count entries, in file order, each:
 *                 +0  32   SHA-256 of the chunk (its id)
 *                 +32  4   length of the chunk in bytes
 *
 * So a manifest is exactly 60 + 36 * count bytes; nothing may follow
 * the last entry.  A manifest is valid iff, besides that length rule:
 *  - every chunk length is from 1 to max_size;
 *  - every chunk but the last is at least min_size long (the chunker
 *    never cuts earlier, so only the end of the file makes a shorter
 *    one; the rule bounds the entries per byte of file whatever the
 *    sender);
 *  - the chunk lengths add up to the file size exactly;
 *  - the parameters pass iss_cdc_params_check().
 * Chunk i starts at offset(i) = length(0) + ... + length(i-1) of the
 * file; the offsets are not transmitted (parse and the builder compute
 * them, iss_manifest_entry_t.offset).  An empty file has count 0 and the
 * SHA-256 of nothing (e3b0c442...b855).  Ids may repeat (a file that
 * holds the same chunk twice lists it twice).  Nothing checks in the
 * manifest that the chunks follow the cut rule of iss_cdc.h, nor that
 * the ids are right: only the bytes can tell (the server verifies every
 * chunk against its id and the file against its digest when it
 * assembles it).
 *
 * Size: 36 bytes per chunk; a 1 GiB file of random content at the
 * default parameters (mean chunk ~73 KiB, ~14.4k chunks) has a manifest
 * of about 0.5 MB.
 *
 * Hostile input.  iss_manifest_parse() checks the header and the count
 * against the limits and the input length before it allocates anything,
 * so what it allocates is proportional to the input it was given (about
 * 48 bytes per 36 of input); it never reads outside its buffer and
 * reports one specific code per fault (ISS_MANIFEST_E*).  Order of the
 * checks, first failure wins: header (length, magic), parameters
 * (valid, then equal to the required ones), file size limit, count
 * limit, total length, then the entries in order (chunk length from 1
 * to max_size, then at least min_size if not the last), then the sum.
 *
 * Building.  iss_manifest_builder_t takes the content in pieces of any
 * size, in one pass: the same bytes go to the chunker, the chunk's
 * SHA-256 and the whole-file SHA-256, so a PUT body or a file is read
 * once.  Pieces of any sizes give the same manifest.
 *
 * Delta ("ISD1").  A new version of a file usually shares most chunks
 * with the old one, so its manifest can be sent as the edits that turn
 * the old (base) manifest's entry list into the new one, media type
 *
 *     application/vnd.mod-iss.manifest-delta
 *
 * All integers unsigned big-endian, no padding:
 *
 *     offset  size     field
 *          0     4     magic: the ASCII bytes "ISD1" (49 53 44 31)
 *          4    32     SHA-256 of the whole base file (its manifest's
 *                      file SHA-256): names the base
 *         36     8     new file size in bytes
 *         44    32     SHA-256 of the whole new file
 *         76     4     edit count
 *         80           the edits, each:
 *                 +0   4   old_start
 *                 +4   4   old_count
 *                 +8   4   new_count
 *                 +12  36 x new_count entries, as in a manifest
 *                          (SHA-256[32], length u32)
 *
 * The new entry list is the base's with, for each edit, the old_count
 * entries from index old_start on replaced by the edit's new_count
 * entries.  Edits come in increasing old_start order and do not
 * overlap: old_start + old_count <= the next edit's old_start (so
 * several pure insertions, old_count 0, may share an old_start: they
 * go in in delta order), and old_start + old_count <= the base's count.
 * Nothing may follow the last edit.  An edit with old_count and
 * new_count both 0 is allowed and changes nothing;
 * iss_manifest_delta_make() never writes one.  The result has the
 * base's parameters and the header's file size and SHA-256, and must
 * pass every check a parsed manifest passes (lengths, the min_size
 * rule, the sum, the limits).  An empty delta (0 edits, 80 bytes)
 * keeps the entries and still needs a header size equal to their sum.
 *
 * iss_manifest_delta_apply() takes untrusted input like parse: order of
 * its checks, first failure wins: header (length, magic: EDHEADER),
 * base SHA-256 (EBASE), the base's parameters (EPARAMS, EMISMATCH), new
 * file size limit (ETOOBIG), the edits in order (each: its range
 * against the previous edit and the base, EDEDIT; then its entries
 * present, EDLENGTH), nothing after the last edit (EDLENGTH), the
 * result's count limit (ECOUNT), the result's entries in order (ECHUNK,
 * ESHORT), the sum (ESUM).  Only then does it allocate: the result
 * (48 bytes per entry) and nothing else.  A delta cut short anywhere
 * fails (its edit count and new_counts say how long it is).
 *
 * Pure code: APR and OpenSSL (through iss_digest) only.
 */
#ifndef ISS_MANIFEST_H
#define ISS_MANIFEST_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_file_io.h>

#include "iss_cdc.h"
#include "iss_digest.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The media type of the binary form. */
#define ISS_MANIFEST_MEDIA_TYPE "application/vnd.mod-iss.manifest"
/** The 4 magic bytes. */
#define ISS_MANIFEST_MAGIC      "ISM1"
/** The media type of a delta. */
#define ISS_MANIFEST_DELTA_MEDIA_TYPE "application/vnd.mod-iss.manifest-delta"
/** The 4 magic bytes of a delta. */
#define ISS_MANIFEST_DELTA_MAGIC "ISD1"
/** Bytes before a delta's first edit. */
#define ISS_MANIFEST_DELTA_HEADER_LEN 80
/** Bytes of an edit before its entries. */
#define ISS_MANIFEST_DELTA_EDIT_LEN 12
/** Bytes before the first entry. */
#define ISS_MANIFEST_HEADER_LEN 60
/** Bytes per entry. */
#define ISS_MANIFEST_ENTRY_LEN  36

/** Shorter than the 60-byte header, or the magic is not "ISM1". */
#define ISS_MANIFEST_EHEADER   (APR_OS_START_USERERR + 60)
/** The bytes after the header are not exactly 36 x count: truncated
 *  entries or trailing bytes. */
#define ISS_MANIFEST_ELENGTH   (APR_OS_START_USERERR + 61)
/** count is above iss_manifest_limits_t.max_entries. */
#define ISS_MANIFEST_ECOUNT    (APR_OS_START_USERERR + 62)
/** A chunk length is 0 or above the manifest's max_size. */
#define ISS_MANIFEST_ECHUNK    (APR_OS_START_USERERR + 63)
/** The chunk lengths do not add up to the file size. */
#define ISS_MANIFEST_ESUM      (APR_OS_START_USERERR + 64)
/** The chunking parameters are refused by iss_cdc_params_check(). */
#define ISS_MANIFEST_EPARAMS   (APR_OS_START_USERERR + 65)
/** The file size is above iss_manifest_limits_t.max_file_size. */
#define ISS_MANIFEST_ETOOBIG   (APR_OS_START_USERERR + 66)
/** The chunking parameters are valid but not those the caller requires
 *  (iss_manifest_limits_t.params). */
#define ISS_MANIFEST_EMISMATCH (APR_OS_START_USERERR + 67)
/** A chunk other than the last is shorter than the manifest's min_size. */
#define ISS_MANIFEST_ESHORT    (APR_OS_START_USERERR + 68)
/** A delta's base SHA-256 is not the base manifest's file SHA-256. */
#define ISS_MANIFEST_EBASE     (APR_OS_START_USERERR + 69)
/** A delta is shorter than its 80-byte header, or its magic is not
 *  "ISD1". */
#define ISS_MANIFEST_EDHEADER  (APR_OS_START_USERERR + 70)
/** A delta's edits are cut short (fewer bytes than the edit count and
 *  the new_counts require) or bytes follow the last edit. */
#define ISS_MANIFEST_EDLENGTH  (APR_OS_START_USERERR + 71)
/** A delta's edit starts before the end of the previous edit or reaches
 *  past the base's entries. */
#define ISS_MANIFEST_EDEDIT    (APR_OS_START_USERERR + 72)

/** One chunk of a manifest. */
typedef struct iss_manifest_entry_t {
    /** SHA-256 of the chunk's bytes: the chunk id. */
    unsigned char sha256[ISS_DIGEST_SHA256_LEN];
    /** Length in bytes (1 .. params.max_size; at least params.min_size
     *  unless it is the last entry). */
    apr_uint32_t length;
    /** Where the chunk starts in the file: the sum of the lengths of the
     *  entries before it.  Derived, not encoded (set by parse and the
     *  builder; iss_manifest_encode() ignores it). */
    apr_uint64_t offset;
} iss_manifest_entry_t;

/** A manifest. */
typedef struct iss_manifest_t {
    iss_cdc_params_t params;
    apr_uint64_t file_size;
    unsigned char file_sha256[ISS_DIGEST_SHA256_LEN];
    apr_uint32_t count;
    /** count entries in file order (NULL when count is 0). */
    iss_manifest_entry_t *entries;
} iss_manifest_t;

/** What iss_manifest_parse() accepts beyond the format. */
typedef struct iss_manifest_limits_t {
    /** Largest count; a caller reading a manifest from the network can
     *  stop reading after iss_manifest_encoded_len(max_entries) bytes. */
    apr_uint32_t max_entries;
    /** Largest file size. */
    apr_uint64_t max_file_size;
    /** If not NULL, the manifest's parameters must equal these (a store
     *  accepts manifests made with its own parameters only: other
     *  boundaries would not dedup, and a client-chosen max_size would
     *  let it choose how much a server holds per chunk). */
    const iss_cdc_params_t *params;
} iss_manifest_limits_t;

/** Bytes of the binary form of a manifest of @a count entries
 *  (60 + 36 * count; 64-bit, so it cannot overflow). */
apr_uint64_t iss_manifest_encoded_len(apr_uint32_t count);

/**
 * Parse the @a len bytes at @a buf (untrusted) as a manifest.
 * On success *out is a new manifest allocated from @a pool (nothing
 * points into @a buf), with the offsets of the entries filled in.
 * Otherwise *out is NULL and the code says what is wrong: one of the
 * ISS_MANIFEST_E* codes above, or APR_EINVAL if @a out or @a lim is NULL
 * (or @a buf is NULL with a non-zero @a len).  @a buf may be NULL when
 * @a len is 0 (then ISS_MANIFEST_EHEADER).  Nothing is allocated before
 * the header, the count and the total length have been checked.
 */
apr_status_t iss_manifest_parse(const void *buf, apr_size_t len,
                                const iss_manifest_limits_t *lim,
                                iss_manifest_t **out, apr_pool_t *pool);

/**
 * The binary form of @a m in *buf (allocated from @a pool) and *len.
 * @a m must be valid as parse defines it (limits aside): otherwise the
 * ISS_MANIFEST_E* code parse would give (EPARAMS, ECHUNK, ESHORT, ESUM), and
 * APR_EINVAL if @a m is NULL or has count > 0 with no entries; APR_ENOMEM
 * if the form does not fit in an apr_size_t.  So encode(parse(x)) is x.
 * The entries' offsets are ignored.
 */
apr_status_t iss_manifest_encode(const iss_manifest_t *m, unsigned char **buf,
                                 apr_size_t *len, apr_pool_t *pool);

/**
 * The delta (format above) that turns @a base into @a new_m, in *buf
 * (allocated from @a pool) and *len.  Unchanged runs of entries are
 * found greedily from anchors (entries equal in id and length), so a
 * local change (chunks inserted, deleted or replaced in one place) gives
 * one edit holding only the changed entries, and k separate changes
 * about k edits; repeated ids (runs of zeros) may cost size, never
 * correctness: iss_manifest_delta_apply(base, result) gives @a new_m
 * (its entries, size and SHA-256) for any valid @a new_m.  Work
 * O(n log n) in the entry counts; scratch memory about 16 bytes per
 * base entry in a subpool, freed before return.
 * APR_EINVAL if an argument is NULL or a manifest has count > 0 with no
 * entries; ISS_MANIFEST_EMISMATCH if the two have different parameters
 * (a delta keeps the base's); the code iss_manifest_encode() would give
 * if @a new_m is invalid (EPARAMS, ECHUNK, ESHORT, ESUM); APR_ENOMEM if
 * the delta does not fit in an apr_size_t.
 */
apr_status_t iss_manifest_delta_make(const iss_manifest_t *base,
                                     const iss_manifest_t *new_m,
                                     unsigned char **buf, apr_size_t *len,
                                     apr_pool_t *pool);

/**
 * Apply the @a len bytes at @a buf (untrusted) as a delta to @a base
 * (trusted: the caller's own manifest, which need not pass the limits:
 * what it contributes to the result is checked as part of the result).
 * On success *out is a new manifest allocated from @a pool (nothing
 * points into @a buf or @a base) with its offsets filled in, and it
 * passes every check iss_manifest_parse() makes with @a lim.  Otherwise
 * *out is NULL and the code is one of the ISS_MANIFEST_E* codes (order
 * of the checks above), or APR_EINVAL if @a out, @a base or @a lim is
 * NULL, @a buf is NULL with a non-zero @a len, or @a base has count > 0
 * with no entries; APR_ENOMEM if the result would not fit in memory's
 * address range (possible only where apr_size_t has 32 bits).  Nothing
 * is allocated before all checks passed.
 */
apr_status_t iss_manifest_delta_apply(const iss_manifest_t *base,
                                      const void *buf, apr_size_t len,
                                      const iss_manifest_limits_t *lim,
                                      iss_manifest_t **out, apr_pool_t *pool);

/** A static English message for an ISS_MANIFEST_E* code (for logs and
 *  error bodies), NULL for any other code. */
const char *iss_manifest_error_text(apr_status_t rv);

/** A one-pass manifest builder. */
typedef struct iss_manifest_builder_t iss_manifest_builder_t;

/**
 * Create a builder for content chunked with @a p (copied) in @a pool.
 * APR_EINVAL if iss_cdc_params_check(@a p) fails; an error of
 * iss_digest_create() if SHA-256 is unavailable.  Memory: a constant
 * (chunker, two SHA-256 contexts) plus the entries array, which doubles
 * when full (the outgrown arrays stay in @a pool: at most about 4 x 48
 * bytes per chunk in all).  A builder is not thread-safe.
 */
apr_status_t iss_manifest_builder_create(iss_manifest_builder_t **b,
                                         const iss_cdc_params_t *p,
                                         apr_pool_t *pool);

/**
 * Add the next @a len bytes of the content (@a buf may be NULL when
 * @a len is 0).  APR_EINVAL after iss_manifest_builder_finish();
 * ISS_MANIFEST_ECOUNT should the content have more than 2^32 - 1 chunks
 * (the builder is then unusable).
 */
apr_status_t iss_manifest_builder_feed(iss_manifest_builder_t *b,
                                       const void *buf, apr_size_t len);

/**
 * End the content: close the last chunk (if any bytes are pending) and
 * set *m to the manifest, allocated from the builder's pool.  An empty
 * content gives count 0 and the SHA-256 of nothing.  Call it once
 * (APR_EINVAL the second time, and *m is then NULL); the builder cannot
 * be fed afterwards.
 */
apr_status_t iss_manifest_builder_finish(iss_manifest_builder_t *b,
                                         iss_manifest_t **m);

/**
 * Allocate what the builder allocates from now on (the grown entries
 * array, the manifest of iss_manifest_builder_finish()) from @a pool
 * instead of the pool it was created in: for a builder handed to another
 * thread, which must not share the creator's pool.  @a pool must live as
 * long as the builder's use of it; the chunker and digests stay where
 * they were made.
 */
void iss_manifest_builder_set_pool(iss_manifest_builder_t *b,
                                   apr_pool_t *pool);

/** The manifest of the open file @a f with parameters @a p: read once,
 *  from its start to its end, in pieces of 1 MiB (the buffer is freed
 *  before return).  Read errors are returned as they are. */
apr_status_t iss_manifest_of_file(apr_file_t *f, const iss_cdc_params_t *p,
                                  iss_manifest_t **m, apr_pool_t *pool);

#ifdef __cplusplus
}
#endif

#endif /* ISS_MANIFEST_H */
