/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * mod_iss_owncloud — what ownCloud and Nextcloud clients (rclone's
 * vendor=owncloud and nextcloud, the desktop clients) look for, where
 * `ISSOwnCloudCompat On` asks for it (docs/admin-guide.md):
 *
 *  - the live property oc:checksums (namespace http://owncloud.org/ns)
 *    of files: <oc:checksum>SHA1:<hex> MD5:<hex></oc:checksum>, from the
 *    digest record, where the checksums are computed in the same pass
 *    as the SHA-256 (the PUT input filter, PATCH, uploads by manifest,
 *    and the one read of a file changed outside httpd);
 *  - OC-Checksum on PUT (SHA1, MD5, ADLER32 or SHA256), verified against
 *    the body like Repr-Digest: 400 and nothing stored on a mismatch;
 *  - X-OC-Mtime on PUT: the stored file gets that modification time,
 *    and the answer says `X-OC-MTime: accepted`.
 */
#ifndef MOD_ISS_OWNCLOUD_H
#define MOD_ISS_OWNCLOUD_H

#include "mod_iss.h"
#include "iss_digest.h"

/** What a PUT's ownCloud headers ask (iss_oc_put_prepare()). */
typedef struct iss_oc_put_t {
    unsigned sums;                 /* checksums the location keeps (0:
                                    * ISSOwnCloudCompat Off) */
    int check;                     /* OC-Checksum was given: */
    iss_digest_sums_t want;        /* ... its SHA-1, MD5, Adler-32 */
    int want_sha256;               /* ... or its SHA256 */
    unsigned char sha256[ISS_DIGEST_SHA256_LEN];
} iss_oc_put_t;

/** Read the ownCloud headers of the PUT @a r into @a oc (nothing with
 *  ISSOwnCloudCompat Off).  Returns 1, or 0 with the condition element
 *  (of ISS_XML_NS) in *tag and a message in *why when OC-Checksum or
 *  X-OC-Mtime is malformed: the PUT must then be refused. */
int iss_oc_put_prepare(request_rec *r, iss_oc_put_t *oc, const char **tag,
                       const char **why);

/** NULL if the body whose SHA-256 is @a sha256 and whose checksums are
 *  @a got (computed for oc->sums | oc->want.have) is what OC-Checksum
 *  said, else a message saying what differs. */
const char *iss_oc_put_check(request_rec *r, const iss_oc_put_t *oc,
                             const unsigned char *sha256,
                             const iss_digest_sums_t *got);

/** A PUT stored its body (2xx): honour X-OC-Mtime.  Runs before the
 *  capture point settles, which records the file as it is then. */
void iss_oc_put_done(request_rec *r);

void iss_owncloud_register_hooks(apr_pool_t *p);

#endif /* MOD_ISS_OWNCLOUD_H */
