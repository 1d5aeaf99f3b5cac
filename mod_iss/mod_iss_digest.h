/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * mod_iss_digest — content digests (RFC 9530) and strong ETags of the
 * files of a `Dav iss` location.
 *
 * mod_iss knows the SHA-256 of every file it wrote (computed while the
 * body streamed in: the PUT input filter below, the PATCH handler) and
 * keeps it in the state store with the file's identity
 * (iss_filedigest).  A file changed behind httpd's back gets its digest
 * computed on first need, by reading it once.
 *
 * The strong ETag of a file is made from its digest (iss_digest_etag)
 * and used everywhere mod_dav_fs's would be: GET/HEAD (mod_iss_get), the
 * If-Match / If-None-Match of every WebDAV method (injected before mod_dav
 * evaluates them), DAV:getetag, and the ETag of PUT and PATCH responses.
 * Collections keep mod_dav_fs's ETags.
 *
 * PUT: an input filter hashes the body as mod_dav reads it; a
 * Repr-Digest or Content-Digest that does not match makes the body read
 * fail with 400 at its end, before mod_dav_fs renames its temporary file
 * into place, so the old file stays.
 */
#ifndef MOD_ISS_DIGEST_H
#define MOD_ISS_DIGEST_H

#include "mod_iss.h"
#include "iss_filedigest.h"
#include "iss_manifest.h"

/** The digest of the file at @a uri (a decoded URI path in @a r's
 *  location), known or computed now.  *found is 0 when there is none to
 *  give: not a regular file, or outside what mod_iss can map to disk.
 *  Errors (I/O) are logged and count as not found.  Remembered for the
 *  rest of the request. */
void iss_digest_of_uri(request_rec *r, const char *uri,
                       unsigned char out[ISS_DIGEST_SHA256_LEN], int *found);

/** iss_digest_of_uri() for @a res, a resource mod_dav made for @a uri
 *  (a PROPFIND member): what mod_dav_fs's walk found of the file stands
 *  for a stat of our own.  @a res may be NULL. */
void iss_digest_of_resource(request_rec *r, const char *uri,
                            const dav_resource *res,
                            unsigned char out[ISS_DIGEST_SHA256_LEN],
                            int *found);

/** The digest cache shared by httpd's processes (post_config; made once
 *  per httpd, kept across restarts). */
void iss_digest_post_config(server_rec *s);

/** The digest of the open regular file @a f (described by @a fi, as
 *  apr_file_info_get() gives it) served at @a uri: what a GET sends is
 *  then exactly what its ETag names, whatever renames happen meanwhile.
 *  Not remembered for the request. */
void iss_digest_of_file(request_rec *r, const char *uri, apr_file_t *f,
                        const apr_finfo_t *fi,
                        unsigned char out[ISS_DIGEST_SHA256_LEN], int *found);

/** The checksums @a sums (ISS_SUM_SHA1 | ISS_SUM_MD5) of the file at
 *  @a uri: from its digest record when it has them, else computed now
 *  by reading the file once (with its digest, and kept).  *found is 0
 *  when there are none to give (as for iss_digest_of_uri()). */
void iss_digest_sums_of_uri(request_rec *r, const char *uri, unsigned sums,
                            iss_digest_sums_t *out, int *found);

/** Forget what this request remembers of @a uri, or remember @a sha256
 *  for it (NULL: forget); called when the request changed the file. */
void iss_digest_remember(request_rec *r, const char *uri,
                         const unsigned char *sha256);

/** The strong ETag of the file at @a uri, or NULL if none. */
const char *iss_digest_etag_of_uri(request_rec *r, const char *uri);

/** Whether the client of @a r may read @a uri: a GET of it would be
 *  authorised (a sub-request; the request's own URI when it is a GET or
 *  HEAD needs none). */
int iss_digest_may_read(request_rec *r, const char *uri);

/** The ETag that the conditions of @a r (If-Match, If-None-Match, entity
 *  tags of an If header) compare with for the file at @a uri whose
 *  digest is @a sha256: its strong ETag for a client that may read it;
 *  for one that may not, a random tag drawn once per request, which no
 *  entity tag a client sends can match.  ETags are digests of the
 *  content, so comparing a guess with the real one would confirm the
 *  guess to a client that may write but not read (issue 16 item 2): to
 *  such a client every guess gets the same answer.  *@a unreadable (may
 *  be NULL) is set when the random tag was given. */
const char *iss_digest_condition_etag(request_rec *r, const char *uri,
                                      const unsigned char *sha256,
                                      int *unreadable);

/** The random tag of iss_digest_condition_etag() for a client that may
 *  not read the file (the same one for the whole request). */
const char *iss_digest_unreadable_etag(request_rec *r);

/** Whether the response to @a r should carry Repr-Digest (asked with
 *  Want-Repr-Digest, or ISSDigestHeader Always). */
int iss_digest_wanted_by(request_rec *r);

/** The sha-256 member of request header @a name (Repr-Digest or
 *  Content-Digest): 1 with *want = 1 and @a out filled, 1 with *want = 0
 *  when the header or its sha-256 member is absent, 0 with a message for
 *  the client in *why when the header is malformed. */
int iss_digest_request_field(request_rec *r, const char *name,
                             unsigned char out[ISS_DIGEST_SHA256_LEN],
                             int *want, const char **why);

/** What the PUT input filter saw of the body, once it saw all of it
 *  (NULL before, and for requests it does not watch). */
typedef struct iss_digest_body_t {
    unsigned char sha256[ISS_DIGEST_SHA256_LEN];
    apr_off_t length;
    int whole;            /* the body is the whole new file (no
                           * Content-Range) */
    iss_manifest_t *manifest;  /* its chunk manifest, made in the same
                                * pass (ISSChunking; whole bodies) */
    iss_digest_sums_t sums;    /* its SHA-1 and MD5, in the same pass
                                * (ISSOwnCloudCompat; whole bodies) */
} iss_digest_body_t;
const iss_digest_body_t *iss_digest_put_body(request_rec *r);

void iss_digest_register_hooks(apr_pool_t *p);
void iss_etag_register_hooks(apr_pool_t *p);
void iss_get_register_hooks(apr_pool_t *p);

#endif /* MOD_ISS_DIGEST_H */
