/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_deltaget — the request side of an RFC 3229 delta GET (issue 15):
 * whether a client accepts a VCDIFF instance-manipulation (`A-IM`), and
 * which entity tag of its `If-None-Match` names the base of the delta.
 * Pure code (APR only); the server's glue is mod_iss/mod_iss_get.c and
 * docs/protocol.md ("Delta GET") describes the exchange.
 *
 * Both parsers take hostile header values of any length and never read
 * past their NUL; their work is linear in the header's length, and the
 * base selection looks at no more than ISS_DELTAGET_MAX_TAGS list
 * members whatever the header holds (each one it looks at may cost the
 * caller a store lookup).
 */
#ifndef ISS_DELTAGET_H
#define ISS_DELTAGET_H

#include <apr_pools.h>
#include <apr_errno.h>

#include "iss_digest.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Members of If-None-Match looked at by iss_deltaget_base(). */
#define ISS_DELTAGET_MAX_TAGS 16

/**
 * Whether the `A-IM` field value @a value (RFC 3229 section 10.5.3)
 * accepts `vcdiff`:
 *
 *     A-IM = #( instance-manipulation [ OWS ";" OWS "q" OWS "=" OWS qvalue ] )
 *
 * with instance-manipulation a token (compared case-insensitively,
 * `q` too) and qvalue as in RFC 9110 section 12.4.2 (0 to 1, at most
 * three decimals).  Returns 1 if the whole value is well formed and
 * lists `vcdiff` with a q above 0 (no q means 1) and no member `vcdiff`
 * with q=0; else 0: NULL, empty, malformed anywhere (a stray character,
 * an unknown parameter, a q out of range or with four decimals, an empty
 * member between commas is allowed as RFC 9110 section 5.6.1 says),
 * vcdiff absent, or refused with q=0.  Other manipulations (gzip,
 * identity, unknown tokens) are allowed and ignored.
 */
int iss_deltaget_accepts_vcdiff(const char *value);

/** What iss_deltaget_base() found. */
typedef enum iss_deltaget_base_e {
    ISS_DELTAGET_NONE = 0,     /**< no usable base: a plain answer */
    ISS_DELTAGET_CURRENT,      /**< a strong tag of the current content */
    ISS_DELTAGET_VERSION       /**< a retained version: *out is its digest */
} iss_deltaget_base_e;

/**
 * Asked by iss_deltaget_base() for a digest a strong ETag names: 1 if
 * the resource has a retained version with that content, 0 if not (for
 * any reason: not retained, another file's, not allowed, an error —
 * the caller logs errors itself).
 */
typedef int iss_deltaget_known_fn(void *baton,
                                  const unsigned char digest[ISS_DIGEST_SHA256_LEN]);

/**
 * Pick the base of a delta from the `If-None-Match` field value
 * @a value: a comma-separated list of entity tags (RFC 9110 section
 * 13.1.2).  Members are looked at in order, at most
 * ISS_DELTAGET_MAX_TAGS of them (counting every member, usable or not);
 * weak tags, `*`, malformed members (skipped up to the next comma) and
 * strong tags that are not our ETag form (iss_digest_etag(): 43
 * base64url characters in quotes, canonical) are passed over.  The first
 * strong ETag of ours that is @a current gives ISS_DELTAGET_CURRENT;
 * the first for which @a known answers 1 gives ISS_DELTAGET_VERSION and
 * its digest in @a out.  @a known is called at most once per member
 * looked at, never for the current digest.  NULL @a value: NONE.
 */
iss_deltaget_base_e iss_deltaget_base(const char *value,
                                      const unsigned char current[ISS_DIGEST_SHA256_LEN],
                                      iss_deltaget_known_fn *known, void *baton,
                                      unsigned char out[ISS_DIGEST_SHA256_LEN]);

/**
 * Decode our strong ETag form @a s of @a len bytes (quotes included) to
 * the digest it names.  1 on success; 0 if it is not exactly
 * ISS_DIGEST_ETAG_LEN characters of '"', 43 base64url characters whose
 * last one carries no stray bits, '"'.
 */
int iss_deltaget_etag_decode(const char *s, apr_size_t len,
                             unsigned char out[ISS_DIGEST_SHA256_LEN]);

#ifdef __cplusplus
}
#endif

#endif /* ISS_DELTAGET_H */
