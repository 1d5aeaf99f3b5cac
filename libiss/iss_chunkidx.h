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

/** Lowercase hex of a chunk id (64 characters). */
const char *iss_chunkidx_hex(const unsigned char id[ISS_DIGEST_SHA256_LEN],
                             apr_pool_t *pool);

/** Parse 64 hex characters (either case) into @a id: 1 if well-formed. */
int iss_chunkidx_unhex(const char *hex, apr_size_t len,
                       unsigned char id[ISS_DIGEST_SHA256_LEN]);

#ifdef __cplusplus
}
#endif

#endif /* ISS_CHUNKIDX_H */
