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
 *  - safety between processes and threads: one handle may be shared by
 *    every thread of a process; writers of all processes are serialised
 *    by a file lock in the store's directory (one per store); readers take
 *    no lock writers wait for;
 *  - a commit is one record appended to a write-ahead log; concurrent
 *    writers share one fdatasync (group commit); the DBM is brought up to
 *    date from the log in large batches (checkpoints), so it stays the
 *    store's long-term home and what tools read.
 *
 * The store keeps two copies of its DBM: a checkpoint writes the primary,
 * and the mirror is a file copy of the primary made now and then, the log
 * generations applied since kept beside it; so recovery never has to
 * trust a file a dead writer was modifying.  See iss_store.c for the file
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
 * was made with and fails with APR_ENOENT if there is none (tools).
 * @a mutex is not used (the store's own file locks serialise processes
 * and threads, see above); it stays for source compatibility and may be
 * NULL.  The store remembers its DBM type: opening it with
 * another type fails with ISS_STORE_EDAMAGED and a message saying so.
 * If a previous writer died in the middle of a batch, open (and every
 * later operation) first completes recovery.
 * The handle may be used by every thread of the process that opened it
 * (not by a child forked after the open).  Allocations for the handle
 * come from a sub-pool of @a pool; closing happens through a
 * pool cleanup or iss_store_close().  On failure *store is still set when
 * the handle could be allocated, so that iss_store_last_error() can say
 * why; do not use it for anything else.
 */
apr_status_t iss_store_open(iss_store_t **store, const char *dir,
                            const char *dbm_type, apr_global_mutex_t *mutex,
                            iss_store_log_fn *log, void *log_baton,
                            apr_pool_t *pool);

/** A human-readable description of the last error of the calling thread
 *  (never NULL; kept per thread, so threads sharing a handle do not see
 *  each other's errors).  Read it right after the failing call. */
const char *iss_store_last_error(iss_store_t *store);

/** The store's identity: a random UUID-like string chosen when the store
 *  was created.  A re-created store gets a new id. */
const char *iss_store_id(iss_store_t *store);

/** The directory the store lives in (as given to iss_store_open()):
 *  components that keep files beside the store (retained versions) put
 *  them under it. */
const char *iss_store_dir(iss_store_t *store);

/** The apr_dbm type the store is kept in ("sdbm", "gdbm", "db"). */
const char *iss_store_dbm_type(iss_store_t *store);

/** Whether commits fsync (the default) or not.  Without fsync every
 *  guarantee against the death of processes (kill -9 included) holds,
 *  because the kernel keeps what they wrote; after a power loss or kernel
 *  crash the store may be damaged or lose its last commits.  A setting of
 *  the handle: every thread using it shares it. */
void iss_store_set_sync(iss_store_t *store, int on);

/** Fetch @a key.  APR_NOTFOUND if absent.  The value (NUL-terminated
 *  for convenience; *vlen excludes the NUL) is allocated in @a pool.
 *  Sees every commit that returned before it was called (also one that
 *  is not yet durable, see ISS_STORE_LAZY); takes no lock writers wait
 *  for. */
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

/** Flag for iss_store_txn_ex() and iss_store_batch_commit_ex(): return
 *  as soon as the commit is visible to every reader and survives the death
 *  of any process, without waiting until it is durable (fsync): it is,
 *  once any later commit without this flag (or any transaction) returned.
 *  Without the flag a commit returns when it is durable (unless
 *  iss_store_set_sync(store, 0)); so does every transaction, for what it
 *  read: a value read inside iss_store_txn() never vanishes with a power
 *  loss after the call returned.  (An SQL backend: synchronous_commit off
 *  for that transaction.) */
#define ISS_STORE_LAZY 1

apr_status_t iss_store_batch_commit_ex(iss_store_batch_t *batch, int flags);

/** A read-modify-write transaction: iss_store_txn() takes the store's
 *  lock, calls @a fn, and commits what @a fn put or deleted all-or-nothing
 *  if it returns APR_SUCCESS; any other return aborts (nothing written)
 *  and is returned.  Reads inside see the transaction's own writes.  Do
 *  not call other iss_store functions from @a fn. */
typedef struct iss_store_txn_t iss_store_txn_t;
typedef apr_status_t iss_store_txn_fn(void *baton, iss_store_txn_t *txn);
apr_status_t iss_store_txn(iss_store_t *store, iss_store_txn_fn *fn,
                           void *baton, apr_pool_t *pool);
apr_status_t iss_store_txn_ex(iss_store_t *store, iss_store_txn_fn *fn,
                              void *baton, int flags, apr_pool_t *pool);
/** Inside @a fn of iss_store_txn(): call @a fn with @a baton once the
 *  transaction is committed, before the writers' lock is given back (not
 *  at all if it aborts or fails).  A process killed in between has
 *  committed without running it.  One per transaction (the last set). */
void iss_store_txn_after(iss_store_txn_t *txn, void (*fn)(void *baton),
                         void *baton);

/** The shared area: @a *size bytes at @a *base, mapped from
 *  iss-store.area by every process that asks, kept across the death of
 *  processes, zeroed when the machine restarted (another boot; also when
 *  new).  What the bytes mean is the caller's (the sync log keeps the
 *  intents of writes under way there, iss_sync_log.h); the caller
 *  synchronises its own access (atomic operations; the writers' lock,
 *  inside a transaction).  iss_store_area() takes no lock and answers
 *  APR_EAGAIN while the area is not yet made for this boot;
 *  iss_store_txn_area() (inside iss_store_txn()'s @a fn) makes it.
 *  (An SQL backend: APR_ENOTIMPL, and callers keep their state in
 *  records.) */
apr_status_t iss_store_area(iss_store_t *store, void **base,
                            apr_size_t *size);
apr_status_t iss_store_txn_area(iss_store_txn_t *txn, void **base,
                                apr_size_t *size);

/** A read-only transaction: @a fn reads (iss_store_txn_get()) one
 *  consistent state, without the lock writers take (they go on; what
 *  they commit meanwhile is not seen).  @a fn must not write.  Like
 *  iss_store_txn(), it returns once what it read is durable, unless
 *  @a flags has ISS_STORE_LAZY.  (An SQL backend: a read-only
 *  transaction.) */
apr_status_t iss_store_view(iss_store_t *store, iss_store_txn_fn *fn,
                            void *baton, int flags, apr_pool_t *pool);

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

/** Return once every commit made so far (by any process) is durable:
 *  what a lazy commit (ISS_STORE_LAZY) leaves for later.  A no-op with
 *  iss_store_set_sync(store, 0). */
apr_status_t iss_store_sync(iss_store_t *store);

/** Whether the store may lack commits that were made lazily
 *  (ISS_STORE_LAZY) and never became durable: the machine restarted
 *  (a power loss, or a reboot with the page cache unwritten) since the
 *  store was last used, so what it holds may miss changes whose files
 *  did reach the disk.  *mark is NULL when not; otherwise a string to
 *  hand to iss_store_rescan_done() once the caller has compared what it
 *  keeps with the files again (iss_reconcile_run()).  The first
 *  operation after a restart sets the mark (before anything else sees the
 *  store); it stays, across restarts of httpd, until that call.  Cost
 *  when none is due: an open() that fails.  (An SQL backend whose
 *  commits are all durable: always NULL.) */
apr_status_t iss_store_rescan_due(iss_store_t *store, const char **mark,
                                  apr_pool_t *pool);

/** The rescan that iss_store_rescan_due() asked for, made after it
 *  returned @a mark, has been recorded durably: drop the mark, unless a
 *  later restart set a new one meanwhile. */
apr_status_t iss_store_rescan_done(iss_store_t *store, const char *mark,
                                   apr_pool_t *pool);

/** Bring the long-term copy of the store up to date now (the DBM files,
 *  from the write-ahead log; otherwise that happens by itself as the log
 *  grows).  Tools call it before they stop, tests to reach a known state.
 *  Changes nothing that any other call can observe. */
apr_status_t iss_store_checkpoint(iss_store_t *store, apr_pool_t *pool);

/** What the store's machinery has done: counters kept by every process
 *  using the store together, since the shared header was (re)made (the
 *  first open after a boot).  An SQL backend may leave them 0. */
typedef struct iss_store_stats_t {
    apr_uint64_t wal_generation;    /* the write-ahead log's generation */
    apr_uint64_t wal_bytes;         /* of it, not yet in the DBM (about) */
    apr_uint64_t wal_sealed;        /* generations waiting to be applied */
    apr_uint64_t durable_waits;     /* commits that waited for an fsync */
    apr_uint64_t fsyncs;            /* fsyncs of the log made for them:
                                     * waits / fsyncs writers per fsync */
    apr_uint64_t fsync_usec;        /* time those fsyncs took, in all */
    apr_uint64_t checkpoints;       /* log applied to the DBM */
    apr_uint64_t mirror_behind;     /* log generations in the DBM and not
                                     * yet in its mirror copy (kept until the
                                     * mirror is copied from it again) */
    apr_uint64_t mirror_behind_bytes;   /* their size */
} iss_store_stats_t;
apr_status_t iss_store_stats(iss_store_t *store, iss_store_stats_t *st);

/** Whether the store's files were replaced or removed by something else
 *  than a store handle since this handle last saw them (an administrator
 *  moved the state aside, or overwrote it): then the handle should be
 *  given up and the store opened again, which re-checks or re-creates it.
 *  Also true after another process rebuilt the DBM (a recovery), which
 *  reopening follows too.  Cost: one stat() call. */
int iss_store_replaced(iss_store_t *store);

/** Claims: numbers that a handle holds while some work of its process is
 *  under way, and that any handle (of any process) can ask about.  A
 *  claim ends with iss_store_claim_release(), with the handle, or with
 *  the process, whatever kills it: a claim not held means that nobody is
 *  doing that work any more.  The sync log claims each intent it records
 *  until it settles it (iss_sync_log.h), so that an intent whose
 *  settlement failed in a process that lives on is recovered.
 *  iss_store_claim() returns APR_EBUSY if another handle holds @a n
 *  (numbers are taken modulo 2^62; the same handle claiming one number
 *  twice holds it once), APR_ENOTIMPL where the system has no
 *  open-file-description locks.  iss_store_claim_held() returns 1 (held,
 *  by this handle too), 0 (not held) or -1 (cannot tell).  On disk: one
 *  byte range locked in iss-store.claims.  (An SQL backend: session
 *  advisory locks.) */
apr_status_t iss_store_claim(iss_store_t *store, apr_uint64_t n);
void iss_store_claim_release(iss_store_t *store, apr_uint64_t n);
int iss_store_claim_held(iss_store_t *store, apr_uint64_t n);
/** The handle's own claim: a number (below 2^62) this handle holds from
 *  the first call until it is closed or its process ends, the same for
 *  every thread; 0 where claims cannot be held.  What a caller records
 *  so that others can tell whether the handle is still at work (the
 *  sync log's intents in slots, iss_sync_log.h) without a claim per
 *  piece of work. */
apr_uint64_t iss_store_claim_own(iss_store_t *store);

/** Close the store now (otherwise the pool cleanup does it). */
apr_status_t iss_store_close(iss_store_t *store);

#ifdef __cplusplus
}
#endif
#endif /* ISS_STORE_H */
