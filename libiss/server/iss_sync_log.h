/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_sync_log — the change log behind sync tokens (RFC 6578).
 *
 * Every write to a location passes two steps, each one atomic store
 * transaction:
 *
 *  - begin: an *intent* naming every member the write may touch and the
 *    process doing it is recorded (and listed in `log/pending`), before
 *    anything changes on disk;
 *  - end: the intent is removed and, in the same transaction, one log
 *    *entry* with the next sequence number and the members is appended,
 *    the stat index of those members is updated, and old entries past the
 *    retention window are compacted away (a bounded number per append).
 *
 * A token names the store and a position in the log, sealed with the
 * state directory's key (iss_sync_key_t) so that its text tells no count
 * of writes and cannot be forged.  A sync from token T
 * reads the entries after T (cost proportional to the changes, not to the
 * tree) and reports each member they name as it is *now* on disk: the
 * log says "possibly changed", the file system says what it became.  So a
 * member created and removed in between is reported removed, one removed
 * and re-created is reported changed, and an entry that over-states (a
 * write that failed half way) costs a client a re-check, never a miss.
 *
 * Crash safety: a write whose process died between begin and end leaves
 * its intent behind.  iss_sync_log_recover() turns the intents of dead
 * processes into entries (their members possibly changed); it runs before
 * every sync answer and at startup, so no token handed out after the
 * crash can skip what the dead write did, and tokens handed out before it
 * are older than the recovered entry.
 *
 * Store keys (all under this component's control):
 *   log/seq        "<last> <log id>": the last sequence number handed out
 *                  and the id of this numbering, which tokens carry
 *                  ("<last>" alone: a log made before log ids, whose id
 *                  is the store's; absent: none yet, or lost, and the
 *                  next write or token makes a new numbering)
 *   log/first      "<first> <time_us> <tfree>": the oldest sequence
 *                  number still kept, a time no later than that entry's
 *                  (0: not known; compaction by age reads no entry while
 *                  this bound is younger than the retention's age) and
 *                  the first entry written without a
 *                  log/t record ("<first>" alone, as versions before
 *                  that wrote it; absent: 1)
 *   log/e/<16 hex> one entry: "ISL1 <time_us>\n" + iss_change encoding
 *   log/t/<16 hex> the entry's time alone: written by versions before
 *                  2026-12-03 beside each entry, removed with it
 *   log/pending    the ids of recorded intents, space separated
 *   intent/<id>    "ISI1 <owner>\n" + iss_change encoding
 *   f/<path>       stat index of a member (iss_scan), updated by entries
 *   d/<path>       content digest of a member (iss_filedigest), written
 *                  or removed with the entries (and removed by recovery)
 *   log/scan       "<time_us>" of the last completed reconciliation scan
 *
 * Paths are relative to the location's root: no leading slash, "" for
 * the root itself, '/' between the decoded URI segments.
 */
#ifndef ISS_SYNC_LOG_H
#define ISS_SYNC_LOG_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>
#include <apr_file_info.h>

#include "iss_store.h"
#include "iss_change.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The namespace of our tokens: every token starts with this. */
#define ISS_SYNC_TOKEN_BASE "https://mod-iss.org/ns/sync/"

/** How much log a store keeps: entries older than @a max_age (0 = no age
 *  limit) and beyond the newest @a max_count (0 = no count limit) are
 *  removed; a token pointing before the oldest kept entry is expired. */
typedef struct iss_sync_retention_t {
    apr_interval_time_t max_age;
    apr_uint64_t max_count;
} iss_sync_retention_t;

/** The default retention (ISSSyncRetention age=30d count=100000). */
#define ISS_SYNC_RETENTION_DEFAULT_AGE apr_time_from_sec(30 * 86400)
#define ISS_SYNC_RETENTION_DEFAULT_COUNT 100000

/** Where a sync stands.  Changes: everything before entry @a seq was
 *  delivered, and the first @a idx members of entry @a seq; or (@a after
 *  set, @a initial not: a page cut by a limit) everything before item
 *  number @a idx (from 0) among the items of entry @a seq that name the
 *  member @a after and that the client may see (a member it may see;
 *  tokens name no position of what it may not).  Initial
 *  listing (@a initial set): the members up to and including @a after
 *  (a path, walk order = byte order of paths) were delivered; changes
 *  are then due from entry @a seq on. */
typedef struct iss_sync_pos_t {
    apr_uint64_t seq;
    apr_uint32_t idx;
    int initial;
    const char *after;
} iss_sync_pos_t;

/** Strict unsigned decimal of @a len bytes at @a s (no sign, no space, at
 *  most 20 digits, no overflow); APR_EINVAL on anything else.  Shared by
 *  the log's records and the tokens (iss_sync_token.c). */
apr_status_t iss_sync_parse_u64(const char *s, apr_size_t len,
                                apr_uint64_t *v);

/** The secret that makes tokens opaque (issue 16 item 1): 16 random
 *  bytes per state directory, kept in ISS_SYNC_KEY_FILE there
 *  (iss_sync_key_load()).  Every number of a token is one AES-128 block
 *  under it, which holds the number and 8 bytes of redundancy bound to
 *  the store id and to the number's role: a token reveals no count, and
 *  one that was not made with the key is refused (a chance of 2^-64 per
 *  forged block). */
#define ISS_SYNC_KEY_LEN 16
typedef struct iss_sync_key_t {
    unsigned char k[ISS_SYNC_KEY_LEN];
} iss_sync_key_t;

/** The key's file in a state directory. */
#define ISS_SYNC_KEY_FILE "iss-token.key"

/** Read the key of state directory @a dir into @a key.  When the file is
 *  missing or damaged and @a create is set, a new random key replaces it
 *  (under a lock file, ISS_SYNC_KEY_FILE ".lock", so that processes
 *  starting at once agree on one key; written to a temporary file,
 *  fsync'ed, renamed, directory fsync'ed): *made is then 1 (there was
 *  none) or 2 (the file was damaged; *why says how), else 0.  A new key
 *  can never make an old token name a wrong position: old tokens just
 *  stop being valid, and clients sync afresh.  Without @a create: APR_ENOENT
 *  when there is no key file, ISS_STORE_EDAMAGED when it is damaged.
 *  On failure *why says why.  @a ident (may be NULL) gets the identity
 *  (inode, device, size, mtime, ctime) of the file the key came from, so
 *  that a caller keeping the key can tell, with one stat, that the file
 *  was replaced since (iss_sync_key_changed()). */
apr_status_t iss_sync_key_load(iss_sync_key_t *key, const char *dir,
                               int create, int *made, apr_finfo_t *ident,
                               const char **why, apr_pool_t *pool);

/** Whether the key file of @a dir is no longer the one @a ident describes
 *  (replaced, removed or rewritten): one stat. */
int iss_sync_key_changed(const char *dir, const apr_finfo_t *ident,
                         apr_pool_t *pool);

/** Format a token of store @a store_id for @a pos, with @a key: the
 *  forms are BASE id "/" X (everything before entry pos->seq delivered),
 *  BASE id "/i" X "/" path (@a initial) and BASE id "/" X "/" Y "/" path
 *  (@a after set: item pos->idx of entry pos->seq naming path), X and Y
 *  32 lowercase hex digits (iss_sync_log.h, iss_sync_key_t).  @a idx is
 *  kept only with @a after.  NULL if the cipher fails. */
const char *iss_sync_token_make(const iss_sync_key_t *key,
                                const char *store_id,
                                const iss_sync_pos_t *pos, apr_pool_t *pool);

/** Parse @a token with @a key.  APR_EINVAL if it is not one of ours,
 *  malformed, or not made with @a key for the store id it names (the old
 *  decimal forms included); otherwise *store_id and *pos (paths
 *  decoded). */
apr_status_t iss_sync_token_parse(const iss_sync_key_t *key,
                                  const char *token, const char **store_id,
                                  iss_sync_pos_t *pos, apr_pool_t *pool);

/** The log's bounds: the next entry will be *last + 1, the oldest one
 *  kept is *first (an empty log has *first == *last + 1).  Read only
 *  (tools); whoever hands out a token calls iss_sync_log_bounds_id(). */
apr_status_t iss_sync_log_bounds(iss_store_t *store, apr_uint64_t *last,
                                 apr_uint64_t *first, apr_pool_t *pool);

/** iss_sync_log_bounds(), and *id gets the id that tokens of this log
 *  carry (iss_sync_token_make()): the log's own, or the store's for a log
 *  made before logs had ids.  A log without a position (a new store, or
 *  one whose `log/seq` record was lost to damage) gets a new random id
 *  first, durably: a numbering that was lost never comes back under the
 *  id its tokens carry, so no token of it is ever accepted again. */
/** iss_sync_log_bounds_id() that never writes (tools): *id NULL when
 *  the log has no numbering (yet, or any more). */
apr_status_t iss_sync_log_bounds_peek(iss_store_t *store, apr_uint64_t *last,
                                      apr_uint64_t *first, const char **id,
                                      apr_pool_t *pool);

apr_status_t iss_sync_log_bounds_id(iss_store_t *store, apr_uint64_t *last,
                                    apr_uint64_t *first, const char **id,
                                    apr_pool_t *pool);

/** What identifies the current process for iss_sync_log_owner_alive():
 *  its pid and its start time, so a reused pid is not taken for it. */
const char *iss_sync_log_owner_self(apr_pool_t *pool);

/** Whether the process named by @a owner still runs (1) or not (0). */
int iss_sync_log_owner_alive(const char *owner);

/** One member's index records to write with an entry: its stat index
 *  `f/<path>` (@a value; NULL removes it) and its content digest
 *  `d/<path>` (@a digest, an iss_filedigest record; NULL removes it, so
 *  that a member changed by other means loses its old digest). */
typedef struct iss_sync_index_t {
    const char *path;
    const char *value;
    const char *digest;
    /** The file's manifest records (iss_chunkidx_records(): `m/<path>`
     *  first, then `c/` records), or NULL: the `m/` record goes. */
    const apr_array_header_t *manifest;
    /** iss_sync_log_settle() only: @a digest and @a manifest are of the
     *  bytes this write sent, which are the file's only if no other write
     *  raced it: they are kept only if iss_sync_log_contended() would say
     *  no (checked inside the settling transaction); otherwise both go. */
    int guarded;
} iss_sync_index_t;

/** Record the intent of @a method to change @a changes (iss_change_t,
 *  relative paths) before doing it.  *id names it for the end step. */
apr_status_t iss_sync_log_begin(iss_store_t *store, const char *method,
                                const apr_array_header_t *changes,
                                const char **id, apr_pool_t *pool);

/** iss_sync_log_begin(), and *last gets the number of the log's last
 *  entry when the intent was recorded (for iss_sync_log_settle()'s
 *  @a since), read in the same transaction.  With @a flags
 *  ISS_STORE_LAZY the intent only needs to outlive the process: it goes
 *  in a slot of the store's shared area (iss_store_area(); no lock,
 *  nothing appended; *last from the hint the last commit left, which may
 *  lag: never ahead) when one is free and it fits, else in the log as a
 *  lazy record (durable once the caller calls iss_store_sync(), which
 *  ISSStateSync Full does before the write touches anything). */
apr_status_t iss_sync_log_begin_at(iss_store_t *store, const char *method,
                                   const apr_array_header_t *changes,
                                   int flags, const char **id,
                                   apr_uint64_t *last, apr_pool_t *pool);

/** Settle intent @a id (NULL: none).  If @a changes is non-NULL, append
 *  one entry for @a method with them and apply @a index (may be NULL),
 *  compacting per @a retention; all in one transaction.  *seq gets the
 *  entry's number (0 if none was appended). */
apr_status_t iss_sync_log_end(iss_store_t *store, const char *id,
                              const char *method,
                              const apr_array_header_t *changes,
                              const apr_array_header_t *index,
                              const iss_sync_retention_t *retention,
                              apr_uint64_t *seq, apr_pool_t *pool);

/** iss_sync_log_end() for the capture point: the index entries marked
 *  guarded keep their digest and manifest only if no other write than
 *  intent @a id named their path since entry @a since (see
 *  iss_sync_log_contended()).  The commit is lazy (ISS_STORE_LAZY):
 *  visible to every reader at once, durable with the next durable commit
 *  or transaction (every token is handed out by one).  The intent, which
 *  was durable before the write touched anything, covers a settlement
 *  lost with the power: recovery turns it into an entry. */
apr_status_t iss_sync_log_settle(iss_store_t *store, const char *id,
                                 const char *method,
                                 const apr_array_header_t *changes,
                                 const apr_array_header_t *index,
                                 const iss_sync_retention_t *retention,
                                 apr_uint64_t since, apr_uint64_t *seq,
                                 apr_pool_t *pool);

/** Append one entry without an intent (a reconciliation scan), apply
 *  @a index, and put @a key = @a val (if @a key) in the same transaction. */
apr_status_t iss_sync_log_append(iss_store_t *store, const char *method,
                                 const apr_array_header_t *changes,
                                 const apr_array_header_t *index,
                                 const iss_sync_retention_t *retention,
                                 const char *key, const char *val,
                                 apr_uint64_t *seq, apr_pool_t *pool);

/** Turn the intents of processes that no longer run into entries.
 *  Reads one small record when there is nothing to do.  *recovered gets
 *  how many intents were turned (may be NULL). */
apr_status_t iss_sync_log_recover(iss_store_t *store,
                                  const iss_sync_retention_t *retention,
                                  int *recovered, apr_pool_t *pool);

/** The ids of the intents pending (writes under way, or ended without
 *  their settlement and not yet recovered), separated by spaces ("" if
 *  none): those kept in the log (log/pending) and those in slots of the
 *  store's shared area.  For tools (iss-state log). */
apr_status_t iss_sync_log_pending(iss_store_t *store, const char **ids,
                                  apr_pool_t *pool);

/** Whether intent @a id is still pending (1), settled or recovered (0),
 *  or cannot be told (-1: a store error). */
int iss_sync_log_intent_pending(iss_store_t *store, const char *id,
                                apr_pool_t *pool);

/** Read entries @a from .. @a to (inclusive) in one locked pass, calling
 *  @a fn for each in order.  APR_NOTFOUND if one of them was compacted
 *  away meanwhile (the token is then expired).  @a fn returns non-zero to
 *  stop early. */
typedef int iss_sync_log_entry_fn(void *baton, apr_uint64_t seq,
                                  apr_time_t when, const char *method,
                                  const apr_array_header_t *changes);
apr_status_t iss_sync_log_read(iss_store_t *store, apr_uint64_t from,
                               apr_uint64_t to, iss_sync_log_entry_fn *fn,
                               void *baton, apr_pool_t *pool);

/** Whether a write other than intent @a id may have changed @a path
 *  (or a folder above it) after entry @a since: an intent of another
 *  write still pending, or an entry after @a since, names it.  Used
 *  before recording a digest computed from a body: if another write to
 *  the path raced this one, the file on disk may be that write's.
 *  Cost: the pending intents and the entries since @a since. */
apr_status_t iss_sync_log_contended(iss_store_t *store, const char *id,
                                    apr_uint64_t since, const char *path,
                                    int *contended, apr_pool_t *pool);

/** Remove entries past @a retention now (at most @a max_remove of them;
 *  0 = all).  *removed gets the count (may be NULL). */
apr_status_t iss_sync_log_compact(iss_store_t *store,
                                  const iss_sync_retention_t *retention,
                                  apr_uint64_t max_remove,
                                  apr_uint64_t *removed, apr_pool_t *pool);

/** Parse a retention spec: words "age=<n>[smhdw]" / "age=off",
 *  "count=<n>" / "count=off".  Returns NULL or an error message. */
const char *iss_sync_retention_parse(iss_sync_retention_t *ret,
                                     const char *word, apr_pool_t *pool);

#ifdef __cplusplus
}
#endif
#endif /* ISS_SYNC_LOG_H */
