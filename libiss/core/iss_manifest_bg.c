/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "iss_manifest_bg.h"

#include <apr_allocator.h>
#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>
#include <string.h>

#define NBUF ISS_MANIFEST_BG_BUFFERS
#define BUFSZ ISS_MANIFEST_BG_BUFFER
/* Bodies up to this size are hashed inline: starting a thread costs more
 * than it saves on them. */
#define INLINE_MAX ((apr_uint64_t)NBUF * BUFSZ)

struct iss_manifest_bg_t {
    apr_pool_t *pool;               /* the caller's */
    apr_pool_t *wpool;              /* the worker's (own allocator), made
                                     * when it starts */
    iss_manifest_builder_t *b;
    unsigned char *buf[NBUF];
    apr_size_t len[NBUF];
    unsigned int head;              /* the buffer the producer fills */
    unsigned int tail;              /* the next one the worker takes */
    unsigned int full;              /* buffers handed over, not done */
#if APR_HAS_THREADS
    apr_thread_t *thread;
    apr_thread_mutex_t *lock;
    apr_thread_cond_t *cond;        /* "a buffer is full" / "one is free" */
#endif
    apr_uint64_t fed;               /* bytes fed so far */
    int threads;                    /* a thread may be started */
    int started;                    /* one was */
    int done;                       /* no more buffers will come */
    int stop;                       /* leave now (pool cleanup) */
    apr_status_t status;            /* the builder's first error */
};

#if APR_HAS_THREADS
static void *APR_THREAD_FUNC worker(apr_thread_t *t, void *data)
{
    iss_manifest_bg_t *bg = data;

    (void)t;
    apr_thread_mutex_lock(bg->lock);
    for (;;) {
        unsigned int i;
        apr_status_t rv;

        while (bg->full == 0 && !bg->done && !bg->stop) {
            apr_thread_cond_wait(bg->cond, bg->lock);
        }
        if (bg->stop || bg->full == 0) {
            break;
        }
        i = bg->tail;
        apr_thread_mutex_unlock(bg->lock);
        rv = bg->status == APR_SUCCESS
             ? iss_manifest_builder_feed(bg->b, bg->buf[i], bg->len[i])
             : bg->status;
        apr_thread_mutex_lock(bg->lock);
        if (bg->status == APR_SUCCESS) {
            bg->status = rv;
        }
        bg->tail = (bg->tail + 1) % NBUF;
        bg->full--;
        apr_thread_cond_signal(bg->cond);
    }
    apr_thread_mutex_unlock(bg->lock);
    return NULL;
}

/* Stop and join the worker (the pool is going, or finish() is done). */
static apr_status_t stop_worker(void *data)
{
    iss_manifest_bg_t *bg = data;
    apr_status_t rv;

    if (bg->thread) {
        apr_thread_mutex_lock(bg->lock);
        bg->stop = 1;
        apr_thread_cond_signal(bg->cond);
        apr_thread_mutex_unlock(bg->lock);
        apr_thread_join(&rv, bg->thread);
        bg->thread = NULL;
    }
    return APR_SUCCESS;
}
#endif

apr_status_t iss_manifest_bg_create(iss_manifest_bg_t **out,
                                    const iss_cdc_params_t *p,
                                    apr_pool_t *pool)
{
    iss_manifest_bg_t *bg = apr_pcalloc(pool, sizeof(*bg));
    apr_status_t rv;

    bg->pool = pool;
    /* In the caller's pool: most bodies are hashed inline and never need
     * the worker's pool (an allocator of its own costs a few mmaps). */
    if ((rv = iss_manifest_builder_create(&bg->b, p, pool))
        != APR_SUCCESS) {
        return rv;
    }
    *out = bg;
#if APR_HAS_THREADS
    bg->threads = 1;
#endif
    return APR_SUCCESS;
}

#if APR_HAS_THREADS
/* Start the worker (once the body is larger than INLINE_MAX); if it
 * cannot be started, the rest is hashed inline. */
static void start_worker(iss_manifest_bg_t *bg)
{
    apr_allocator_t *alloc;
    int i;

    bg->threads = 0;
    /* The worker allocates (the builder's growing entries) from a pool
     * of its own, with its own allocator: the caller's pool is not
     * shared between threads. */
    if (apr_allocator_create(&alloc) != APR_SUCCESS) {
        return;
    }
    if (apr_pool_create_ex(&bg->wpool, bg->pool, NULL, alloc)
        != APR_SUCCESS) {
        apr_allocator_destroy(alloc);
        bg->wpool = NULL;
        return;
    }
    apr_allocator_owner_set(alloc, bg->wpool);
    for (i = 0; i < NBUF; i++) {
        bg->buf[i] = apr_palloc(bg->pool, BUFSZ);
    }
    if (apr_thread_mutex_create(&bg->lock, APR_THREAD_MUTEX_DEFAULT,
                                bg->pool) != APR_SUCCESS
        || apr_thread_cond_create(&bg->cond, bg->pool) != APR_SUCCESS) {
        return;
    }
    /* Registered before the thread exists: it runs before the pool's
     * sub-pools (the worker's among them) are destroyed. */
    apr_pool_pre_cleanup_register(bg->pool, bg, stop_worker);
    iss_manifest_builder_set_pool(bg->b, bg->wpool);
    if (apr_thread_create(&bg->thread, NULL, worker, bg, bg->pool)
        != APR_SUCCESS) {
        bg->thread = NULL;
        return;
    }
    bg->started = 1;
}
#endif

int iss_manifest_bg_threaded(const iss_manifest_bg_t *bg)
{
#if APR_HAS_THREADS
    return bg->started;
#else
    (void)bg;
    return 0;
#endif
}

#if APR_HAS_THREADS
/* Hand the buffer being filled to the worker; wait for a free one. */
static void hand_over(iss_manifest_bg_t *bg)
{
    apr_thread_mutex_lock(bg->lock);
    bg->full++;
    bg->head = (bg->head + 1) % NBUF;
    apr_thread_cond_signal(bg->cond);
    while (bg->full == NBUF) {
        apr_thread_cond_wait(bg->cond, bg->lock);
    }
    bg->len[bg->head] = 0;
    apr_thread_mutex_unlock(bg->lock);
}
#endif

apr_status_t iss_manifest_bg_feed(iss_manifest_bg_t *bg, const void *buf,
                                  apr_size_t len)
{
    const unsigned char *p = buf;

#if APR_HAS_THREADS
    if (bg->threads && bg->fed + len > INLINE_MAX) {
        start_worker(bg);
    }
#endif
    bg->fed += len;
#if APR_HAS_THREADS
    if (bg->thread == NULL)
#endif
    {
        if (bg->status == APR_SUCCESS) {
            bg->status = iss_manifest_builder_feed(bg->b, buf, len);
        }
        return bg->status;
    }
#if APR_HAS_THREADS
    while (len) {
        apr_size_t room = BUFSZ - bg->len[bg->head];
        apr_size_t n = len < room ? len : room;

        memcpy(bg->buf[bg->head] + bg->len[bg->head], p, n);
        bg->len[bg->head] += n;
        p += n;
        len -= n;
        if (bg->len[bg->head] == BUFSZ) {
            hand_over(bg);
        }
    }
#endif
    return bg->status;              /* (read without the lock: a hint) */
}

apr_status_t iss_manifest_bg_finish(iss_manifest_bg_t *bg,
                                    iss_manifest_t **m)
{
    iss_manifest_t *built;
    apr_status_t rv;

#if APR_HAS_THREADS
    if (bg->thread) {
        apr_thread_mutex_lock(bg->lock);
        if (bg->len[bg->head]) {
            bg->full++;
            bg->head = (bg->head + 1) % NBUF;
        }
        bg->done = 1;
        apr_thread_cond_signal(bg->cond);
        apr_thread_mutex_unlock(bg->lock);
        apr_thread_join(&rv, bg->thread);
        bg->thread = NULL;
    }
#endif
    if (bg->status != APR_SUCCESS) {
        return bg->status;
    }
    if ((rv = iss_manifest_builder_finish(bg->b, &built)) != APR_SUCCESS) {
        return rv;
    }
    if (bg->wpool == NULL) {        /* all of it in the caller's pool */
        *m = built;
        return APR_SUCCESS;
    }
    /* Out of the worker's pool, into the caller's. */
    *m = apr_pmemdup(bg->pool, built, sizeof(*built));
    (*m)->entries = built->count
        ? apr_pmemdup(bg->pool, built->entries,
                      built->count * sizeof(*built->entries))
        : NULL;
    return APR_SUCCESS;
}
