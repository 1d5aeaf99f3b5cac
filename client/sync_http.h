/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * sync_http — HTTP for iss-sync: one libcurl handle reused for every
 * request of a run (keep-alive; HTTP/2 where a TLS server offers it),
 * credentials from the environment (ISS_SYNC_USER, ISS_SYNC_PASSWORD)
 * or ~/.netrc, TLS verified, no redirect followed, a stalled transfer
 * given up after a minute.
 *
 * A request body comes from memory or from a source callback; a
 * response body goes to memory (bounded) or, for 2xx answers, to a sink
 * callback (downloads stream into files; error answers are kept in
 * memory for their message).  Every byte on the wire, headers included,
 * is counted for the run's summary.
 */
#ifndef SYNC_HTTP_H
#define SYNC_HTTP_H

#include "sync.h"

/** Reads the next bytes of a request body: at most @a max into @a buf,
 *  *got = how many (0 = end).  A non-zero return aborts the request. */
typedef apr_status_t sync_source_fn(void *baton, char *buf, apr_size_t max,
                                    apr_size_t *got);

/** Takes the next bytes of a 2xx response body.  A non-zero return
 *  aborts the transfer (resp->sink_rv holds it). */
typedef apr_status_t sync_sink_fn(void *baton, const char *data,
                                  apr_size_t len);

/** Told of progress: bytes sent and received so far in this request. */
typedef void sync_progress_fn(void *baton, apr_uint64_t sent,
                              apr_uint64_t received);

typedef struct sync_req_t {
    const char *method;
    const char *url;
    apr_array_header_t *headers;    /* const char * "Name: value" */
    const void *body;               /* in memory, or */
    apr_size_t body_len;
    sync_source_fn *source;         /* streamed, of source_len bytes */
    void *source_baton;
    apr_uint64_t source_len;
    sync_sink_fn *sink;             /* 2xx bodies; else into memory */
    void *sink_baton;
    apr_size_t max_body;            /* memory limit; 0 = 16 MiB */
} sync_req_t;

typedef struct sync_resp_t {
    long status;                    /* 0: no answer (see error) */
    apr_table_t *headers;           /* of the final answer */
    char *body;                     /* NUL-terminated, unless streamed */
    apr_size_t body_len;
    int too_big;                    /* the body passed max_body */
    const char *error;              /* transport error, for humans */
    apr_status_t sink_rv;           /* what the sink or source refused */
} sync_resp_t;

typedef struct sync_http_opts_t {
    const char *cacert;             /* CA bundle, or NULL: the system's */
    int verbose;                    /* curl's own trace on stderr (-vv) */
    sync_progress_fn *progress;
    void *progress_baton;
} sync_http_opts_t;

/** Create the handle (curl_global_init on first use); cleaned up with
 *  @a pool.  APR_EGENERAL if libcurl cannot be set up. */
apr_status_t sync_http_create(sync_http_t **h, const sync_http_opts_t *o,
                              apr_pool_t *pool);

/** Send @a req and fill @a resp (allocated from @a pool).  Returns
 *  APR_SUCCESS whenever an answer came (whatever its status), else an
 *  error with resp->status 0 and resp->error saying why (connection
 *  refused, cut, timed out, TLS...), or the sink's / source's refusal
 *  (resp->sink_rv). */
apr_status_t sync_http_do(sync_http_t *h, const sync_req_t *req,
                          sync_resp_t *resp, apr_pool_t *pool);

/** Bytes sent and received over the handle's life (headers included). */
void sync_http_bytes(const sync_http_t *h, apr_uint64_t *sent,
                     apr_uint64_t *received);

/** Requests made over the handle's life. */
apr_uint64_t sync_http_requests(const sync_http_t *h);

/** Add "Name: value" to @a req's headers (creating the array). */
void sync_req_header(sync_req_t *req, apr_pool_t *pool, const char *name,
                     const char *value);

/** A short description of an answer for messages: "412 Precondition
 *  Failed: <I:message text>" or the transport error. */
const char *sync_resp_describe(const sync_resp_t *resp, apr_pool_t *pool);

/** Percent-encode one path segment (everything but unreserved
 *  characters). */
const char *sync_http_escape_segment(const char *seg, apr_pool_t *pool);

#endif /* SYNC_HTTP_H */
