/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * sync_dav — the WebDAV side of iss-sync: what the server offers, what
 * changed there, and the small methods (MKCOL, DELETE, MOVE, PROPFIND
 * of one member).
 *
 * Everything the server says is untrusted.  A multistatus answer is
 * refused whole (the run changes nothing) when it is not well-formed
 * XML, or when an href lies outside the synced collection, has a "." or
 * ".." segment, an empty segment, an encoded "/" or NUL, a query or a
 * fragment, or names another host (sync_dav_href_rel).
 */
#ifndef SYNC_DAV_H
#define SYNC_DAV_H

#include "sync.h"
#include "sync_http.h"

/** The namespace of mod_iss's elements. */
#define SYNC_ISS_NS "https://mod-iss.org/ns/iss/1"

/** Split @a url (http or https, ending with '/') into ctx->server's
 *  origin and decoded base path.  APR_EINVAL with *msg if it is not
 *  such a URL. */
apr_status_t sync_dav_parse_url(sync_server_t *srv, const char *url,
                                const char **msg, apr_pool_t *pool);

/** The path of @a href relative to the collection of @a srv: *rel ""
 *  for the collection itself, *is_dir when the href ends with '/'.
 *  APR_EINVAL with *why for an href that must be refused (see above). */
apr_status_t sync_dav_href_rel(const sync_server_t *srv, const char *href,
                               const char **rel, int *is_dir,
                               const char **why, apr_pool_t *pool);

/** The URL of @a rel (a folder's with a trailing '/'). */
const char *sync_dav_url(const sync_ctx_t *ctx, const char *rel, int is_dir,
                         apr_pool_t *pool);

/** OPTIONS and a PROPFIND of the collection: fills ctx->server (iss,
 *  chunking and its parameters, sync tokens).  *exists = 0 when the
 *  collection is not there (404).  SYNC_EXIT_* in *exit_code on error
 *  (with a message printed). */
apr_status_t sync_dav_discover(sync_ctx_t *ctx, int *exists, int *exit_code);

/** Create the collection itself (a first run against a missing one). */
apr_status_t sync_dav_create_root(sync_ctx_t *ctx);

/** What the server has: with sync tokens, the sync-collection REPORT
 *  from @a token ("" for all) following 507 pages, else a Depth-1
 *  PROPFIND walk.  Fills the remote part of the items it lists (and
 *  ctx->full_listing, ctx->new_token).  *token_refused = 1 on 403
 *  valid-sync-token (nothing filled).  Errors print a message. */
apr_status_t sync_dav_list(sync_ctx_t *ctx, const char *token,
                           int *token_refused);

/** PROPFIND Depth 0 of @a rel: its current state (kind SYNC_NONE when
 *  it is not there). */
apr_status_t sync_dav_stat(sync_ctx_t *ctx, const char *rel,
                           sync_remote_t *out, apr_pool_t *pool);

/** PROPFIND Depth 1 of folder @a rel: *members = how many it holds,
 *  *etag its ETag, *token its DAV:sync-token (NULL without). */
apr_status_t sync_dav_dir_info(sync_ctx_t *ctx, const char *rel,
                               int *members, const char **etag,
                               const char **token, apr_pool_t *pool);

/** A method on @a rel with optional headers (NULL-terminated name, value
 *  pairs) and no body: the answer in @a resp. */
apr_status_t sync_dav_simple(sync_ctx_t *ctx, const char *method,
                             const char *rel, int is_dir, sync_resp_t *resp,
                             apr_pool_t *pool, ...);

/** Whether the XML error body of @a resp holds the element @a name of
 *  namespace @a ns ("DAV:" or SYNC_ISS_NS). */
int sync_dav_error_is(const sync_resp_t *resp, const char *ns,
                      const char *name, apr_pool_t *pool);

/** The texts of every element @a name of @a ns directly inside the root
 *  of an XML body (e.g. the I:chunk ids of a 409). */
apr_array_header_t *sync_dav_error_texts(const sync_resp_t *resp,
                                         const char *ns, const char *name,
                                         apr_pool_t *pool);

#endif /* SYNC_DAV_H */
