/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_chunkidx — where the chunks of a store can be read.
 *
 * Chunk data is never copied into the state store: files stay plain
 * files.  The store keeps, per file, its manifest together with the
 * identity (inode, size, mtime) of the file it was made from
 * (`m/<path>`), and per chunk id the paths of the last few files whose
 * manifest listed it (`c/<hex id>`, newest first, one per line: a user
 * who may not read the newest may read an older one).  Both are hints: a `c/` record may name a file that
 * changed since or lists the chunk no more, and a `m/` record holds only
 * while the file's identity is the recorded one.  Whoever reads chunk
 * bytes through this index checks them against the id (SHA-256) before
 * using them, so a file changed behind httpd's back never puts wrong
 * bytes into another file.
 *
 * A `m/` record: "IMR1", inode u64, size u64, mtime u64 (microseconds,
 * two's complement), all big-endian, then the manifest (ISM1) bytes.
 */
#ifndef ISS_CHUNKIDX_H
#define ISS_CHUNKIDX_H

#include <apr_file_info.h>
#include <apr_pools.h>
#include <apr_tables.h>

#include "iss_bytes.h"
#include "iss_filedigest.h"
#include "iss_manifest.h"
#include "iss_store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ISS_CHUNKIDX_MANIFEST_PREFIX "m/"
#define ISS_CHUNKIDX_CHUNK_PREFIX    "c/"

/** One record to put. */
typedef struct iss_chunkidx_kv_t {
    const char *key;
    const void *val;
    apr_size_t vlen;
} iss_chunkidx_kv_t;

/** The store key of @a rel's manifest record. */
const char *iss_chunkidx_manifest_key(const char *rel, apr_pool_t *pool);

/** How many paths a `c/` record keeps. */
#define ISS_CHUNKIDX_PATHS 4

/** The records that index manifest @a m of the file @a rel whose identity
 *  is in @a ident (its inode, size and mtime; the digest is not used):
 *  first `m/<rel>`, then one `c/<id>` per distinct chunk id naming @a rel
 *  only.  Put them with iss_chunkidx_txn_put(), which merges the `c/`
 *  records with what the store holds. */
apr_status_t iss_chunkidx_records(const char *rel,
                                  const iss_filedigest_t *ident,
                                  const iss_manifest_t *m,
                                  apr_array_header_t **out, apr_pool_t *pool);

/** Put @a kvs (from iss_chunkidx_records()) in @a txn: the `m/` record
 *  as it is, each `c/` record's path in front of the paths the store
 *  holds for the id (once, at most ISS_CHUNKIDX_PATHS). */
apr_status_t iss_chunkidx_txn_put(iss_store_txn_t *txn,
                                  const apr_array_header_t *kvs,
                                  apr_pool_t *pool);

/** Decode a `m/` record: *ident gets the identity, *m the manifest
 *  (checked like any manifest, against @a lim).  APR_EINVAL if damaged. */
apr_status_t iss_chunkidx_decode(const void *val, apr_size_t vlen,
                                 const iss_manifest_limits_t *lim,
                                 iss_filedigest_t *ident,
                                 iss_manifest_t **m, apr_pool_t *pool);

/** The manifest of @a rel for the file @a finfo describes now (made with
 *  the parameters lim->params, if given).  APR_NOTFOUND if there is no
 *  record, or it is of another file or version, other parameters, or
 *  damaged; other errors are the store's. */
apr_status_t iss_chunkidx_lookup(iss_store_t *store, const char *rel,
                                 const apr_finfo_t *finfo,
                                 const iss_manifest_limits_t *lim,
                                 iss_manifest_t **m, apr_pool_t *pool);

/** The paths of the files whose manifests listed chunk @a id when they
 *  were recorded, newest first (hints: see above).  APR_NOTFOUND if
 *  none. */
apr_status_t iss_chunkidx_where(iss_store_t *store,
                                const unsigned char id[ISS_DIGEST_SHA256_LEN],
                                apr_array_header_t **rels, apr_pool_t *pool);

/**
 * Drop the stale hints of the `c/` records: a path stays in `c/<id>`
 * only if `m/<path>` exists, decodes (any chunking parameters) and its
 * manifest lists @a id; a record left without a path, or whose value is
 * damaged (holds a NUL byte) or whose key is no chunk id, is deleted.
 * The order of the remaining paths is kept.  *kept gets the number of
 * paths left in the records looked at, *dropped_paths the paths
 * removed (those of a damaged value are not counted), *dropped_records
 * the records deleted (any of the three may be NULL).
 *
 * Safe while httpd writes: the `c/` records are read in passes (one
 * iteration of the `c/` prefix each, holding at most about 32 MB of
 * records: a larger store is split by a hash of the key into as many
 * passes as needed), the manifests are read outside the store's lock
 * (their id sets cached up to about 64 MB, then the cache starts over),
 * and the changes are applied in transactions of at most 5000 keys
 * that re-read each `c/` record and remove a path only if it is one
 * found dead and its `m/` record is still the one that was read (absent
 * or the same bytes): a path httpd added or re-recorded meanwhile stays.
 * Errors are the store's; the transactions committed before an error
 * stay (each leaves a consistent index).
 */
apr_status_t iss_chunkidx_compact(iss_store_t *store, apr_uint64_t *kept,
                                  apr_uint64_t *dropped_paths,
                                  apr_uint64_t *dropped_records,
                                  apr_pool_t *pool);

/** The bounds of iss_chunkidx_compact_tuned() and what it did (tests). */
typedef struct iss_chunkidx_compact_tune_t {
    /** Bytes of `c/` records held per pass (approximately). */
    apr_size_t pass_bytes;
    /** Bytes of cached manifest id sets (approximately). */
    apr_size_t cache_bytes;
    /** `c/` keys changed per transaction (at least 1). */
    int txn_keys;
    /** If not NULL, called with @a baton before each transaction,
     *  outside the store's lock (tests change the store there). */
    void (*before_txn)(void *baton);
    void *baton;
    /** Out: iterations of the `c/` prefix, transactions committed, times
     *  the manifest cache was emptied. */
    apr_uint64_t passes, txns, cache_drops;
} iss_chunkidx_compact_tune_t;

/** iss_chunkidx_compact() with the bounds of @a tune (its outputs are
 *  set); iss_chunkidx_compact() is this with 32 MB, 64 MB and 5000. */
apr_status_t iss_chunkidx_compact_tuned(iss_store_t *store,
                                        iss_chunkidx_compact_tune_t *tune,
                                        apr_uint64_t *kept,
                                        apr_uint64_t *dropped_paths,
                                        apr_uint64_t *dropped_records,
                                        apr_pool_t *pool);

#ifdef __cplusplus
}
#endif

#endif /* ISS_CHUNKIDX_H */
