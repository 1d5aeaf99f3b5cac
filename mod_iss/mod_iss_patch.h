/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * mod_iss_patch — PATCH (RFC 5789) of the files of a `Dav iss` location.
 *
 * mod_dav declines PATCH; this handler takes it.  Two patch formats:
 *  - application/vcdiff: an RFC 3284 delta whose source is the file's
 *    current content (mod_iss_patch_vcdiff, libiss/core/iss_vcdiff);
 *  - application/x-sabredav-partialupdate with X-Update-Range, as
 *    SabreDAV defines it (mod_iss_patch_range).
 *
 * Common to both (mod_iss_patch.c): conditions (If-Match, required for
 * VCDIFF: 428; the strong ETags of mod_iss_digest; locks through
 * mod_dav's dav_validate_request()), the capture of the change (same log
 * entry as a PUT), the new content written once to a temporary file
 * beside the old one (hashed as it is written: the digest needs no second
 * read), checked, and renamed over the old file: a reader sees the old
 * or the new file, never a mix; on any error the temporary file goes and
 * the file and the state stay as they were.
 */
#ifndef MOD_ISS_PATCH_H
#define MOD_ISS_PATCH_H

#include "mod_iss.h"
#include "iss_digest.h"
#include "iss_manifest.h"

#include <apr_file_io.h>

/** Accept-Patch: what PATCH takes here (the manifests with ISSChunking
 *  on). */
#define ISS_PATCH_ACCEPT_DELTAS \
    "application/vcdiff, application/x-sabredav-partialupdate"
#define ISS_PATCH_ACCEPT ISS_PATCH_ACCEPT_DELTAS ", " \
    ISS_MANIFEST_MEDIA_TYPE ", " ISS_MANIFEST_DELTA_MEDIA_TYPE
const char *iss_patch_accept(request_rec *r);

/** The patch formats. */
typedef enum {
    ISS_PATCH_NONE, ISS_PATCH_VCDIFF, ISS_PATCH_RANGE,
    ISS_PATCH_MANIFEST, ISS_PATCH_MANIFEST_DELTA
} iss_patch_format_e;

struct iss_upload_ctx_t;

/** One PATCH being applied. */
typedef struct iss_patch_t {
    request_rec *r;
    iss_patch_format_e format;
    const char *path;           /* the file */
    apr_file_t *src;            /* its current content (NULL: the file
                                 * does not exist yet; manifests only) */
    apr_finfo_t src_info;
    const char *tmp_path;       /* the new content, until renamed */
    apr_file_t *out;            /* ... written through this */
    apr_file_t *back;           /* ... read back through this */
    iss_digest_t *sha;          /* of what was written, or: */
    struct iss_manifest_bg_t *builder;  /* its manifest and digest */
    iss_digest_sums_ctx_t *sums;  /* its SHA-1, MD5 (ISSOwnCloudCompat) */
    const iss_manifest_t *manifest;   /* the new content's manifest */
    struct iss_upload_ctx_t *up;      /* an upload by manifest */
    apr_off_t written;
    int want_repr;              /* Repr-Digest of the result given */
    unsigned char repr[ISS_DIGEST_SHA256_LEN];
    int want_content;           /* Content-Digest of the body given */
    unsigned char content[ISS_DIGEST_SHA256_LEN];
    apr_off_t max_target;       /* ISSPatchMaxTargetSize */
    apr_size_t max_window;      /* ISSPatchMaxWindow */
    apr_uint64_t growth_ratio;  /* ISSPatchMaxGrowth (0: none) */
    apr_uint64_t growth_floor;
    dav_resource *res;          /* the request's resource */
    int res_state;              /* ... dav_get_resource_state() of it */
    /* the error, once there is one */
    int status;
    const char *tag;            /* element of ISS_XML_NS in the body */
    const char *msg;
    const char *xml;            /* more of the body (or NULL) */
} iss_patch_t;

/** Record an error (the first one wins) and return @a status. */
int iss_patch_fail(iss_patch_t *p, int status, const char *tag,
                   const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** Record a failed write of the new content (507 when the disk or the
 *  quota is full; APR_ECONNABORTED from iss_patch_write: the client has
 *  gone, logged at info; else 500) and return its status. */
int iss_patch_fail_write(iss_patch_t *p, apr_status_t rv);

/** Answer @a p's error: its status and an XML body naming it. */
int iss_patch_send_error(iss_patch_t *p);

/** Read at most @a max bytes of request body into memory (413 beyond,
 *  checked against Content-Length before reading).  OK or an HTTP
 *  status with the error recorded. */
int iss_patch_read_all(iss_patch_t *p, apr_size_t max, char **buf,
                       apr_size_t *len);

/** Append to the new content (hashed as it goes).  Every few MiB it
 *  looks whether the client is still there: APR_ECONNABORTED if not
 *  (nothing is written for a client that cannot get the answer). */
apr_status_t iss_patch_write(iss_patch_t *p, const void *buf, apr_size_t len);

/** Read exactly @a len bytes at @a offset from @a f. */
apr_status_t iss_patch_pread(apr_file_t *f, apr_off_t offset, apr_size_t len,
                             void *buf);

/** Called with each piece of the request body in order. */
typedef apr_status_t iss_patch_body_fn(void *baton, const char *data,
                                       apr_size_t len);

/** Read the whole request body through @a fn.  Returns OK, or an HTTP
 *  status with the error recorded (a read error, or an error of @a fn,
 *  which must have recorded it already; AP_FILTER_ERROR when httpd has
 *  answered already).  Checks the body against @a p->content when the
 *  request gave a Content-Digest. */
int iss_patch_read_body(iss_patch_t *p, iss_patch_body_fn *fn, void *baton);

/** The formats: apply the body of @a p->r, writing the new content.
 *  Return OK or an HTTP status with the error recorded. */
int iss_patch_vcdiff(iss_patch_t *p);
int iss_patch_range(iss_patch_t *p);

/** Check the request headers of the SabreDAV format before anything is
 *  read or opened: OK or an HTTP status with the error recorded. */
int iss_patch_range_check(iss_patch_t *p);

/** Upload by manifest (mod_iss_upload), before the conditions: its
 *  context, and the manifest of the file's current version (made now if
 *  the store has none: it is needed, and gives the digest too). */
int iss_upload_begin(iss_patch_t *p);

/** The SHA-256 of the file's current version, if iss_upload_begin()
 *  knows it (NULL otherwise). */
const unsigned char *iss_upload_current_digest(const iss_patch_t *p);

/** ... after the conditions: read the manifest (or delta)
 *  and find every chunk, before anything is changed (409 with the list
 *  of missing chunks and an upload session if some are not here). */
int iss_upload_prepare(iss_patch_t *p);

/** ... then write the new content from the chunks found. */
int iss_upload_assemble(iss_patch_t *p);

/** ... and once it is in place: the session is done. */
void iss_upload_done(iss_patch_t *p);

void iss_patch_register_hooks(apr_pool_t *p);
void iss_upload_register_hooks(apr_pool_t *p);

#endif /* MOD_ISS_PATCH_H */
