/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_store — the mod_iss state store.
 *
 * A small key/value store on top of apr_dbm that promises:
 *  - keys and values of any realistic size (keys up to ISS_STORE_MAX_KEY,
 *    values up to ISS_STORE_MAX_VALUE) on every apr_dbm type, sdbm
 *    included, whose own pair limit is about 1 KB;
 *  - atomic multi-key updates (iss_store_batch_t): after any crash of the
 *    writing process (kill -9 at any instruction) the store holds either
 *    all of a batch or none of it, and it still opens;
 *  - damage is detected (every record carries a checksum) and reported as
 *    ISS_STORE_EDAMAGED, never returned as data;
 *  - safety between processes and threads: every operation holds an
 *    apr_global_mutex_t (created by the caller before fork, reopened in
 *    each child) for its duration; the DBM files are opened and closed
 *    inside that critical section, so no process caches stale pages.
 *
 * The store keeps two copies of its DBM (a primary and a mirror, updated
 * one after the other through a journal), so that recovery never has to
 * trust a file a dead writer was modifying; see iss_store.c for the file
 * layout and exactly what is guaranteed.
 *
 * Errors: APR codes, ISS_STORE_EDAMAGED or ISS_STORE_ETOOBIG.  Codes of
 * the DBM libraries (which gdbm and Berkeley DB report in the range of
 * APR_OS_START_USERERR) are never passed through: they become an APR code
 * (APR_EGENERAL if none fits) with the DBM's message in
 * iss_store_last_error().  Functions taking a key return
 * ISS_STORE_ETOOBIG for keys longer than ISS_STORE_MAX_KEY.
 *
 * The store knows nothing of httpd; it depends on APR, APR-util, OpenSSL
 * (SHA-256) and zlib (CRC32) only.  A later SQL backend (apr_dbd) can implement the same
 * interface.
 */
#ifndef ISS_STORE_H
#define ISS_STORE_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_global_mutex.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Largest key accepted (bytes). */
#define ISS_STORE_MAX_KEY   (16 * 1024)
/** Largest value accepted (bytes). */
#define ISS_STORE_MAX_VALUE (64 * 1024 * 1024)

/** The store files exist but are damaged, or were written by another
 *  DBM type or an incompatible format version. */
#define ISS_STORE_EDAMAGED  (APR_OS_START_USERERR + 1)
/** Key or value larger than the limits above. */
#define ISS_STORE_ETOOBIG   (APR_OS_START_USERERR + 2)

typedef struct iss_store_t iss_store_t;
typedef struct iss_store_batch_t iss_store_batch_t;

/** Logging callback so that pure code can report without httpd.
 *  level follows syslog (3 = error, 4 = warning, 6 = info, 7 = debug). */
typedef void iss_store_log_fn(void *baton, int level, apr_status_t rv,
                              const char *msg);

/**
 * Open (creating it if needed) the store that lives in directory @a dir,
 * which must exist.  @a dbm_type is an apr_dbm type name ("default",
 * "sdbm", "gdbm", "db"); NULL opens an existing store with the type it
 * was made with and fails with APR_ENOENT if there is none (tools).  @a mutex may be NULL when the caller guarantees
 * a single thread in a single process (tools, tests); otherwise every
 * operation takes it.  The store remembers its DBM type: opening it with
 * another type fails with ISS_STORE_EDAMAGED and a message saying so.
 * If a previous writer died in the middle of a batch, open (and every
 * later operation) first completes recovery.
 * Besides @a mutex, every operation holds an exclusive lock on the file
 * iss-store.lock in @a dir, which serialises processes that do not share
 * the mutex (tools run beside httpd).
 * Allocations for the handle come from @a pool; closing happens through a
 * pool cleanup or iss_store_close().  On failure *store is still set when
 * the handle could be allocated, so that iss_store_last_error() can say
 * why; do not use it for anything else.
 */
apr_status_t iss_store_open(iss_store_t **store, const char *dir,
                            const char *dbm_type, apr_global_mutex_t *mutex,
                            iss_store_log_fn *log, void *log_baton,
                            apr_pool_t *pool);

/** A human-readable description of the last error on @a store
 *  (allocated in the store's pool; never NULL).  With several threads
 *  sharing one handle, read it right after the failing call: another
 *  thread's failure may replace it. */
const char *iss_store_last_error(iss_store_t *store);

/** The store's identity: a random UUID-like string chosen when the store
 *  was created.  A re-created store gets a new id. */
const char *iss_store_id(iss_store_t *store);

/** The apr_dbm type the store is kept in ("sdbm", "gdbm", "db"). */
const char *iss_store_dbm_type(iss_store_t *store);

/** Whether commits fsync (the default) or not.  Without fsync every
 *  guarantee against the death of processes (kill -9 included) holds,
 *  because the kernel keeps what they wrote; after a power loss or kernel
 *  crash the store may be damaged or lose its last commits. */
void iss_store_set_sync(iss_store_t *store, int on);

/** Fetch @a key.  APR_NOTFOUND if absent.  The value (NUL-terminated
 *  for convenience; *vlen excludes the NUL) is allocated in @a pool. */
apr_status_t iss_store_get(iss_store_t *store, const void *key,
                           apr_size_t klen, void **val, apr_size_t *vlen,
                           apr_pool_t *pool);

/** Store one key (an atomic batch of one). */
apr_status_t iss_store_put(iss_store_t *store, const void *key,
                           apr_size_t klen, const void *val,
                           apr_size_t vlen);

/** Delete one key; deleting an absent key is not an error. */
apr_status_t iss_store_delete(iss_store_t *store, const void *key,
                              apr_size_t klen);

/** Start a batch of puts and deletes applied all-or-nothing by
 *  iss_store_batch_commit().  The batch copies what it is given. */
iss_store_batch_t *iss_store_batch_make(iss_store_t *store, apr_pool_t *pool);
void iss_store_batch_put(iss_store_batch_t *batch, const void *key,
                         apr_size_t klen, const void *val, apr_size_t vlen);
void iss_store_batch_delete(iss_store_batch_t *batch, const void *key,
                            apr_size_t klen);
apr_status_t iss_store_batch_commit(iss_store_batch_t *batch);

/** A read-modify-write transaction: iss_store_txn() takes the store's
 *  lock, calls @a fn, and commits what @a fn put or deleted all-or-nothing
 *  if it returns APR_SUCCESS; any other return aborts (nothing written)
 *  and is returned.  Reads inside see the transaction's own writes.  Do
 *  not call other iss_store functions from @a fn. */
typedef struct iss_store_txn_t iss_store_txn_t;
typedef apr_status_t iss_store_txn_fn(void *baton, iss_store_txn_t *txn);
apr_status_t iss_store_txn(iss_store_t *store, iss_store_txn_fn *fn,
                           void *baton, apr_pool_t *pool);
apr_status_t iss_store_txn_get(iss_store_txn_t *txn, const void *key,
                               apr_size_t klen, void **val, apr_size_t *vlen,
                               apr_pool_t *pool);
void iss_store_txn_put(iss_store_txn_t *txn, const void *key, apr_size_t klen,
                       const void *val, apr_size_t vlen);
void iss_store_txn_delete(iss_store_txn_t *txn, const void *key,
                          apr_size_t klen);

/** Called for each key by iss_store_iterate(); return non-zero to stop
 *  (that value is then returned by iss_store_iterate()). */
typedef int iss_store_iter_fn(void *baton, const void *key, apr_size_t klen,
                              const void *val, apr_size_t vlen);

/** Visit every key whose bytes start with @a prefix (NULL / 0: all keys),
 *  in no particular order, under the store's lock (do not call other
 *  store functions from @a fn).  Temporary memory comes from a sub-pool
 *  of @a pool cleared between keys. */
apr_status_t iss_store_iterate(iss_store_t *store, const void *prefix,
                               apr_size_t plen, iss_store_iter_fn *fn,
                               void *baton, apr_pool_t *pool);

/** Check every record of the store (checksums, reachability).  Returns
 *  APR_SUCCESS or ISS_STORE_EDAMAGED with iss_store_last_error() saying
 *  what is wrong.  Cost: proportional to the store's size. */
apr_status_t iss_store_verify(iss_store_t *store, apr_pool_t *pool);

/** Close the store now (otherwise the pool cleanup does it). */
apr_status_t iss_store_close(iss_store_t *store);

#ifdef __cplusplus
}
#endif
#endif /* ISS_STORE_H */
