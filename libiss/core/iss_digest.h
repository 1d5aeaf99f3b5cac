/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_digest — RFC 9530 Digest Fields (SHA-256 only).
 *
 * Groundwork for verifying and sending digests of PUT / PATCH bodies:
 *  - a streaming SHA-256 (OpenSSL EVP) freed with its pool;
 *  - the field value "sha-256=:<base64>:" for Repr-Digest and
 *    Content-Digest, and the strong ETag text made from a digest;
 *  - a parser for those fields and for Want-Repr-Digest /
 *    Want-Content-Digest.
 *
 * All four fields are RFC 8941 Dictionaries.  The parser implements the
 * algorithms of RFC 8941 section 4.2 (4.2.2 Dictionary, 4.2.1.2 Inner
 * List, 4.2.3 Item, 4.2.3.2 Parameters, 4.2.3.3 Key, 4.2.4 Integer or
 * Decimal, 4.2.5 String, 4.2.6 Token, 4.2.7 Byte Sequence, 4.2.8
 * Boolean) exactly, in particular:
 *  - leading SP of the field is skipped, OWS (SP / HTAB) around commas;
 *    a trailing comma, an empty member (",,") or anything left after a
 *    member fails the whole field;
 *  - keys are lcalpha / "*" followed by lcalpha / DIGIT / "_-.*": a key
 *    with an uppercase letter ("SHA-256") fails the field;
 *  - a repeated key is allowed and its last value wins;
 *  - bytes outside ASCII (>= 0x80) anywhere fail the field;
 *  - the types RFC 9651 added later (Date "@...", Display String
 *    "%\"...\"") are not RFC 8941 bare items and fail the field.
 *
 * Base64 in Byte Sequences: the alphabet is strict (A-Z a-z 0-9 + /;
 * no URL-safe alphabet, no whitespace); "=" may only appear as final
 * padding, and padding, when present, must be complete (length a
 * multiple of 4, at most two "=").  Following RFC 8941 section 4.2.7
 * ("parsers SHOULD NOT fail when '=' padding is not present" and "SHOULD
 * NOT fail when non-zero pad bits are present"), missing padding and
 * non-zero pad bits are accepted; a length of 4n+1 data characters can
 * encode nothing and fails.
 *
 * Work is linear in the field length, memory constant; parsing never
 * recurses and never reads past the terminating NUL.  The file knows
 * nothing of httpd (APR and OpenSSL only).
 */
#ifndef ISS_DIGEST_H
#define ISS_DIGEST_H

#include <apr_pools.h>
#include <apr_errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bytes of a SHA-256 digest. */
#define ISS_DIGEST_SHA256_LEN 32

/** A streaming SHA-256. */
typedef struct iss_digest_t iss_digest_t;

/** Create a SHA-256 context in @a pool (it is freed with the pool).
 *  APR_ENOMEM if OpenSSL cannot allocate it, APR_EGENERAL if SHA-256 is
 *  not available from OpenSSL. */
apr_status_t iss_digest_create(iss_digest_t **d, apr_pool_t *pool);

/** Add @a len bytes (@a buf may be NULL when @a len is 0). */
void iss_digest_update(iss_digest_t *d, const void *buf, apr_size_t len);

/** Write the digest of everything added since creation (or since the
 *  previous iss_digest_final()) to @a out; the context then starts
 *  over, empty, and can be reused.  Should OpenSSL ever fail (it does
 *  not for SHA-256 on a valid context), @a out is all zero bytes. */
void iss_digest_final(iss_digest_t *d,
                      unsigned char out[ISS_DIGEST_SHA256_LEN]);

/** The field value "sha-256=:<base64>:" (padded standard base64) for a
 *  Repr-Digest or Content-Digest header, allocated from @a pool. */
const char *iss_digest_field(const unsigned char sha256[ISS_DIGEST_SHA256_LEN],
                             apr_pool_t *pool);

/** Length of an ETag made by iss_digest_etag() (quotes included). */
#define ISS_DIGEST_ETAG_LEN 45

/** The strong ETag of content whose SHA-256 is @a sha256: the base64url
 *  of the digest without padding, in quotes (ISS_DIGEST_ETAG_LEN
 *  characters), allocated from @a pool (docs/protocol.md section 2.1). */
const char *iss_digest_etag(const unsigned char sha256[ISS_DIGEST_SHA256_LEN],
                            apr_pool_t *pool);

/** The digest an ETag of iss_digest_etag()'s form names: @a s is its
 *  @a len characters (quotes included).  1 if it is exactly that form
 *  (the 43 base64url characters the encoder makes, the last one
 *  carrying no stray bits: one spelling per digest), else 0. */
int iss_digest_etag_decode(const char *s, apr_size_t len,
                           unsigned char sha256[ISS_DIGEST_SHA256_LEN]);

/** Parse a Repr-Digest or Content-Digest field value @a value.
 *  APR_EINVAL (and *found, @a out untouched) if @a value is NULL or not a
 *  valid RFC 8941 Dictionary, or if its (last) "sha-256" member is not a
 *  Byte Sequence of exactly 32 bytes: a sha-256 member given as a token,
 *  string, integer, boolean, inner list or of another length is an error,
 *  so that a client sending a broken digest gets 400 rather than have it
 *  ignored.  Parameters on the member are allowed and ignored.  Every
 *  other member (sha-512, md5, unknown keys) is skipped whatever its type.
 *  On success *found = 1 and @a out = the digest if there is a sha-256
 *  member, else *found = 0 (an empty field is a valid empty Dictionary). */
apr_status_t iss_digest_parse(const char *value,
                              unsigned char out[ISS_DIGEST_SHA256_LEN],
                              int *found);

/** Want-Repr-Digest / Want-Content-Digest (RFC 9530 section 4): a
 *  Dictionary of Integer preferences 0..10.  Returns 1 if the field is a
 *  valid Dictionary whose (last) "sha-256" member is an Integer from 1
 *  to 10 (parameters ignored), else 0: sha-256 absent or 0, sha-256 of
 *  another type or out of range, a malformed field or NULL.  Other
 *  members are not looked at beyond RFC 8941 syntax. */
int iss_digest_wanted(const char *value);

/* ---- the checksums of ownCloud and Nextcloud clients ------------------
 *
 * ownCloud's `oc:checksums` property and `OC-Checksum` header name a
 * file by older digests: SHA-1 (what rclone, the ownCloud and Nextcloud
 * clients read), MD5, Adler-32.  None of them is for security (SHA-256
 * is mod_iss's identity of content); they let those clients compare
 * files without downloading them.  A server computes them in the same
 * pass as the SHA-256, never by reading a file once more. */

/** Bytes of a SHA-1 and of an MD5 digest. */
#define ISS_DIGEST_SHA1_LEN 20
#define ISS_DIGEST_MD5_LEN 16

/** Which checksums (bits). */
#define ISS_SUM_SHA1    1u
#define ISS_SUM_MD5     2u
#define ISS_SUM_ADLER32 4u

/** Checksums of some content; @a have says which fields are set. */
typedef struct iss_digest_sums_t {
    unsigned have;
    unsigned char sha1[ISS_DIGEST_SHA1_LEN];
    unsigned char md5[ISS_DIGEST_MD5_LEN];
    apr_uint32_t adler32;
} iss_digest_sums_t;

/** A streaming computation of checksums. */
typedef struct iss_digest_sums_ctx_t iss_digest_sums_ctx_t;

/** Start computing the checksums @a what (ISS_SUM_* bits) in @a pool
 *  (freed with it).  APR_ENOMEM, or APR_EGENERAL if OpenSSL lacks one of
 *  the algorithms (a FIPS build has no MD5). */
apr_status_t iss_digest_sums_create(iss_digest_sums_ctx_t **c, unsigned what,
                                    apr_pool_t *pool);

/** Add @a len bytes. */
void iss_digest_sums_update(iss_digest_sums_ctx_t *c, const void *buf,
                            apr_size_t len);

/** The checksums of everything added; the context cannot be used again.
 *  A checksum OpenSSL failed to compute is left out of out->have. */
void iss_digest_sums_final(iss_digest_sums_ctx_t *c, iss_digest_sums_t *out);

/** The value of ownCloud's oc:checksum element for @a s: "SHA1:<hex>"
 *  and " MD5:<hex>" for those in s->have (lowercase hex, SHA-1 first;
 *  Adler-32 is never listed), or NULL if neither is there. */
const char *iss_digest_sums_text(const iss_digest_sums_t *s,
                                 apr_pool_t *pool);

/** Parse an OC-Checksum request header: one or more "TYPE:<hex>"
 *  separated by spaces, TYPE one of SHA1, MD5, ADLER32, SHA256 (any
 *  case; hex of the algorithm's length, any case).  On success @a want
 *  holds the checksums named (want->have) and @a sha256 the SHA-256 if
 *  one is named (*want_sha256 = 1).  APR_EINVAL for anything else: an
 *  unknown type, a bad length, no checksum at all, a type twice. */
apr_status_t iss_digest_sums_parse(const char *value, iss_digest_sums_t *want,
                                   unsigned char sha256[ISS_DIGEST_SHA256_LEN],
                                   int *want_sha256);

/** The checksums of @a want that @a got has and that differ: 0 if none,
 *  else the ISS_SUM_* bit of the first (SHA-1, MD5, Adler-32 order). */
unsigned iss_digest_sums_mismatch(const iss_digest_sums_t *want,
                                  const iss_digest_sums_t *got);

#ifdef __cplusplus
}
#endif

#endif /* ISS_DIGEST_H */
