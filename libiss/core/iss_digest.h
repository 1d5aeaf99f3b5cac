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

#ifdef __cplusplus
}
#endif

#endif /* ISS_DIGEST_H */
