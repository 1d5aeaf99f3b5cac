/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * sync_xfer — moving file contents, the cheapest way the server allows.
 *
 * Downloads go to a temporary file in the target's folder and are
 * verified before the rename: a file whose content the server names
 * (I:repr-digest) and that some local file already holds is copied
 * locally; with chunking, the manifest is fetched and every chunk found
 * in a local file (the old version or any other, per the state's chunk
 * index; each read verified against its id) is copied, the others
 * fetched by ranged GETs fixed to the version with If-Range (several
 * ranges per request, multipart/byteranges); otherwise one GET.  The
 * whole is checked against the manifest's SHA-256 or the answer's
 * Repr-Digest.
 *
 * Uploads: with chunking, PATCH with the manifest (or a manifest delta
 * against the last synced manifest), then POST of the chunks the
 * server lacks in frames, then PATCH again; the upload session is kept
 * in the state, so a run that died resumes it.  Otherwise one PUT.
 * Every write is conditional: If-Match with the ETag the decision was
 * made on (a weak one is first refreshed: plain mod_dav_fs's weak ETags
 * turn strong a second later), If-None-Match: * for a new file; a 412
 * is reported as SYNC_XFER_CONFLICT, never overwritten.
 */
#ifndef SYNC_XFER_H
#define SYNC_XFER_H

#include "sync.h"
#include "sync_http.h"

typedef enum {
    SYNC_XFER_OK = 0,
    SYNC_XFER_FAILED,       /* this item failed; retried next run */
    SYNC_XFER_CONFLICT,     /* the server's version is not the expected one */
    SYNC_XFER_CHANGED,      /* the local file changed during the run */
    SYNC_XFER_BADNAME,      /* the folder's file system cannot hold it */
    SYNC_XFER_GONE,         /* the server stopped answering: stop the run */
    SYNC_XFER_BADANSWER     /* the server sent what cannot be right (bytes
                               that do not match their digest, a manifest
                               that does not add up): this item fails,
                               the run ends with exit code 5 */
} sync_xfer_e;

/** What a transfer leaves to record. */
typedef struct sync_result_t {
    const char *etag;
    int has_sha;
    unsigned char sha[SHA_LEN];
    sync_local_t local;             /* the local file's identity (zero:
                                       read it again next run) */
    iss_manifest_t *manifest;       /* when known */
    apr_uint64_t size;
} sync_result_t;

/** A downloaded version in a temporary file, not yet in place. */
typedef struct sync_fetched_t {
    const char *tmp_path;
    sync_result_t res;
} sync_fetched_t;

/** Fetch the server's current version of @a rel (listed as @a r) into a
 *  temporary file in @a rel's folder.  *why says what went wrong. */
sync_xfer_e sync_xfer_fetch(sync_ctx_t *ctx, const char *rel,
                            const sync_remote_t *r, sync_fetched_t *out,
                            const char **why, apr_pool_t *pool);

/** Put a fetched version in place of @a rel, which must be as @a expect
 *  says (kind SYNC_NONE: nothing there). */
sync_xfer_e sync_xfer_place(sync_ctx_t *ctx, sync_fetched_t *f,
                            const char *rel, const sync_local_t *expect,
                            const char **why, apr_pool_t *pool);

/** Upload the local file @a rel (scanned as @a l: its identity, SHA-256
 *  and, with chunking, manifest) over the server's version @a if_match
 *  (NULL: a new file, If-None-Match: *).  @a base_sha / @a base_manifest:
 *  the last synced content (for a manifest delta), or NULL. */
sync_xfer_e sync_xfer_upload(sync_ctx_t *ctx, const char *rel,
                             sync_local_t *l, const char *if_match,
                             const unsigned char *base_sha,
                             sync_result_t *res, const char **why,
                             apr_pool_t *pool);

/** The ETag to put in If-Match for @a rel, known as @a etag: @a etag if
 *  strong; else the server's current one if it is the same version and
 *  has turned strong.  *changed = 1 (and NULL) if the server holds
 *  another version or nothing. */
const char *sync_xfer_strong_etag(sync_ctx_t *ctx, const char *rel,
                                  const char *etag, int *changed,
                                  apr_pool_t *pool);

#endif /* SYNC_XFER_H */
