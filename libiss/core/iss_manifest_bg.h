/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_manifest_bg — the manifest builder on a second thread.
 *
 * Making a manifest costs two SHA-256 passes (the chunks' and the
 * file's) and the chunker: about 0.7 GB/s on one core, slower than
 * writing a file.  A PUT that made its manifest inline would be bound by
 * it; with this, the request's thread only copies each piece of the body
 * into a ring of buffers (a memcpy) while a second thread feeds them to
 * an iss_manifest_builder_t.  Same result as the builder fed directly,
 * byte for byte.
 *
 * Memory: ISS_MANIFEST_BG_BUFFERS buffers of ISS_MANIFEST_BG_BUFFER bytes,
 * plus the builder's.  The first that many bytes are hashed inline; the
 * thread starts with the byte after them.  Where threads are not available (or cannot be
 * made), the builder runs inline in feed() instead: slower, same result.
 *
 * One producer: feed() and finish() are called from one thread.  The
 * worker allocates only from a pool with an allocator of its own (httpd's
 * request pools are not thread-safe); if @a pool is destroyed before
 * finish(), its cleanup stops and joins the worker.
 */
#ifndef ISS_MANIFEST_BG_H
#define ISS_MANIFEST_BG_H

#include "iss_manifest.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ISS_MANIFEST_BG_BUFFERS 4
#define ISS_MANIFEST_BG_BUFFER  (256 * 1024)

typedef struct iss_manifest_bg_t iss_manifest_bg_t;

/** Start a builder with parameters @a p (checked as by the builder). */
apr_status_t iss_manifest_bg_create(iss_manifest_bg_t **bg,
                                    const iss_cdc_params_t *p,
                                    apr_pool_t *pool);

/** Add @a len bytes (copied: @a buf may be reused on return).  May wait
 *  for the worker when every buffer is full.  Returns the builder's
 *  first error, if any. */
apr_status_t iss_manifest_bg_feed(iss_manifest_bg_t *bg, const void *buf,
                                  apr_size_t len);

/** Wait for the worker and finish: *m as iss_manifest_builder_finish()
 *  gives it, allocated from @a pool (the pool given to create). */
apr_status_t iss_manifest_bg_finish(iss_manifest_bg_t *bg,
                                    iss_manifest_t **m);

/** Whether a second thread was started (it is, once more than
 *  ISS_MANIFEST_BG_BUFFERS * ISS_MANIFEST_BG_BUFFER bytes were fed:
 *  smaller bodies are hashed inline, where a thread would cost more than
 *  it saves); 0: all inline so far. */
int iss_manifest_bg_threaded(const iss_manifest_bg_t *bg);

#ifdef __cplusplus
}
#endif

#endif /* ISS_MANIFEST_BG_H */
