/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_scan — find what changed in a served tree behind Apache's back.
 *
 * Another program may write into the folder a `Dav iss` location serves.
 * The store keeps an index: for each member (its relative path) a short
 * record of what lstat() said about it the last time (iss_scan_entry_t).
 * iss_scan_tree() walks the tree on disk, compares every member with the
 * index and says which members were created, modified or removed, and how
 * the index must change.  It never reads file contents: one readdir() per
 * directory and one lstat() per member, so a scan of a tree where nothing
 * changed costs little.
 *
 * WHAT THE SCAN SEES is what the DAV provider serves (mod_dav_fs's
 * walker, dav_fs_walker in modules/dav/fs/repos.c of httpd 2.4, with
 * lstat semantics):
 *  - regular files and directories only; symbolic links (never followed),
 *    sockets, FIFOs and devices are ignored;
 *  - "." and ".." (and the empty name) are ignored;
 *  - so is every name the caller's ignore rule (iss_scan_ignore_t) names,
 *    in every directory: the provider's own files.  The scan knows no
 *    provider: mod_dav_fs's rule (".DAV", its state directory of dead
 *    properties and locks, and ".davfs.tmp*", a PUT being written) is
 *    iss_davfs_ignore (iss_davfs.h), which the module and iss-state pass.
 * Ignored entries are never indexed nor reported, and an index record for
 * such a name is reported as removed.  iss_scan_ignored() says whether a
 * name is one of them.
 *
 * RELATIVE PATHS name members below the scanned root: no leading or
 * trailing slash, components joined with '/', the exact bytes of the file
 * names (no escaping, no normalisation): "a", "a/b.txt".  The root itself
 * is never reported or indexed.
 *
 * WHEN A MEMBER COUNTS AS CHANGED (iss_scan_entry_same()): a file when its
 * size, modification time, inode change time or inode number differ (the
 * ctime catches a content change whose mtime was set back; the inode an
 * atomic replacement by rename, which is how mod_dav_fs writes PUT
 * bodies).  A chmod, chown or new hard link changes the ctime too, so it
 * reports the file modified: the scan errs on the side of reporting.  A
 * directory is unchanged as long as it is a directory: its times change
 * whenever a member is added or removed, and those members are reported
 * themselves.  A member that changed type (file <-> directory) is reported
 * removed, then created.  Like every stat()-based check, a rewrite that
 * keeps the size and the inode and lands within the file system's
 * timestamp granularity (a few milliseconds) of the state the index
 * recorded, with mtime and ctime unchanged, goes unnoticed.
 *
 * All functions are reentrant; nothing is global.
 */
#ifndef ISS_SCAN_H
#define ISS_SCAN_H

#include <apr_pools.h>
#include <apr_errno.h>
#include <apr_hash.h>
#include <apr_tables.h>

#ifdef __cplusplus
extern "C" {
#endif

/** What lstat() said about one member. */
typedef struct iss_scan_entry_t {
    char type;               /**< 'f' regular file, 'd' directory */
    apr_off_t size;          /**< files (>= 0); 0 for directories */
    apr_int64_t mtime_us;    /**< modification time, microseconds */
    apr_int64_t ctime_us;    /**< inode change time, microseconds */
    apr_uint64_t ino;        /**< inode number */
} iss_scan_entry_t;

/** Size of a buffer that holds any encoded entry, NUL included. */
#define ISS_SCAN_ENTRY_MAX 96

/**
 * Encode @a e as the index record value: one line of text without a
 * newline, "TYPE SIZE MTIME CTIME INO" in decimal, single spaces, e.g.
 * "f 1234 1700000000123456 1700000000123456 98765".  Writes at most
 * ISS_SCAN_ENTRY_MAX bytes, NUL included, into @a buf and returns the
 * length without the NUL.  @a e must be valid (type 'f' or 'd', size >= 0,
 * 0 for a directory); anything else encodes into bytes that
 * iss_scan_entry_decode() refuses.
 */
apr_size_t iss_scan_entry_encode(const iss_scan_entry_t *e, char *buf);

/**
 * Decode @a len bytes at @a buf (no NUL needed) into @a e.  Validates
 * fully, since the bytes come from disk: exactly the canonical form that
 * iss_scan_entry_encode() writes (no sign on size and inode, '-' only on a
 * non-zero time, no leading zeros, no overflow, no other bytes before,
 * between or after the fields, size 0 for a directory).  APR_EINVAL on
 * anything else, with @a e untouched.
 */
apr_status_t iss_scan_entry_decode(const char *buf, apr_size_t len,
                                   iss_scan_entry_t *e);

/**
 * lstat() the filesystem path @a fspath into @a e (a symbolic link is not
 * followed).  APR_ENOENT when nothing is there (ENOTDIR, a file where a
 * directory of the path should be, becomes APR_ENOENT too), APR_EINVAL when something is there that the scan does not serve (a
 * symbolic link, socket, FIFO or device), any other error of lstat()
 * (APR_EACCES: a directory on the way is not searchable) as it comes.
 * Does not look at the name: see iss_scan_ignored().  @a pool is only
 * used for scratch memory.
 */
apr_status_t iss_scan_stat(const char *fspath, iss_scan_entry_t *e,
                           apr_pool_t *pool);

/** Whether @a a and @a b describe the same unchanged member (see "when a
 *  member counts as changed" above). */
int iss_scan_entry_same(const iss_scan_entry_t *a, const iss_scan_entry_t *b);

/**
 * An ignore rule: the directory entries a served tree does not show
 * besides "." and "..".  A name is ignored when it equals one of @a names
 * or starts with one of @a prefixes (bytes, case-sensitive).  Both lists
 * end with NULL; a NULL list is empty.  The rule is the caller's: the
 * scan, the listing and reconciliation apply it to every path component
 * (a directory it ignores is not entered).  A rule is read-only data and
 * may be shared by any number of threads.
 */
typedef struct iss_scan_ignore_t {
    const char *const *names;       /**< exact names, e.g. ".DAV" */
    const char *const *prefixes;    /**< name prefixes, e.g. ".davfs.tmp" */
} iss_scan_ignore_t;

/** Whether a directory entry called @a name (one path component) is
 *  ignored under @a rule (NULL: no rule): always ".", ".." and the empty
 *  name, and what @a rule names. */
int iss_scan_ignored(const iss_scan_ignore_t *rule, const char *name);

/** One change to apply to the index. */
typedef struct iss_scan_update_t {
    const char *path;              /**< relative path */
    const iss_scan_entry_t *entry; /**< new value; NULL: delete the key */
} iss_scan_update_t;

/** What a scan saw and did. */
typedef struct iss_scan_stats_t {
    apr_uint64_t dirs;       /**< directories seen (the root excluded) */
    apr_uint64_t files;      /**< regular files seen */
    apr_uint64_t created;    /**< ISS_CHANGE_CREATED reported */
    apr_uint64_t modified;   /**< ISS_CHANGE_MODIFIED reported */
    apr_uint64_t removed;    /**< ISS_CHANGE_REMOVED reported */
    apr_uint64_t skipped;    /**< entries ignored: symbolic links, other
                                  non-regular types, names of the ignore
                                  rule ("." and ".." not counted) */
    const char *error_path;  /**< when the scan fails: the filesystem path
                                  that could not be read (from the scan's
                                  pool), else NULL */
} iss_scan_stats_t;

/**
 * Walk the tree under @a root (an existing directory), leaving out what
 * @a ignore names (NULL: only "." and ".."), and compare it with
 * @a index, a hash from relative path (the path's bytes, no NUL: a key
 * set with APR_HASH_KEY_STRING) to const iss_scan_entry_t *; NULL is an
 * empty index.
 *
 * What differs is appended to @a changes (an array of iss_change_t, see
 * iss_change.h: kind ISS_CHANGE_CREATED, ISS_CHANGE_MODIFIED or
 * ISS_CHANGE_REMOVED, collection 1 for a directory, path the relative
 * path) and to @a updates (an array of iss_scan_update_t: for each
 * change, the path and its new index value, NULL for a removal).
 * Applying @a updates in order to the index makes it describe the tree.
 * Order: first every removal, sorted by path (so a directory comes before
 * its members); then creations and modifications, sorted by path (so a
 * created directory comes before its members).  A member whose type
 * changed appears as a removal and as a creation; when a directory is
 * gone (or became a file, a symbolic link, ...), every indexed path below
 * it is reported removed.  Index keys that the walk cannot produce (a
 * leading slash, empty, "." or ".." components, an ignored name, a NUL
 * byte)
 * are reported removed too, so that the index gets rid of them.  The
 * index itself is not modified.
 *
 * Errors: any directory that cannot be listed (permissions, I/O error),
 * or member that cannot be lstat()ed for another reason than being gone,
 * makes the whole scan fail with that error: a scan never reports the
 * members of a directory it could not read as removed.  @a root that is
 * not a directory fails too.  On failure nothing is appended to @a
 * changes nor to @a updates, and stats->error_path names the path.
 * A subdirectory that vanishes between being listed and being opened is
 * not an error: its indexed members are reported removed (the directory
 * itself, if it still was a directory when listed, is left for the next
 * scan to report).  Members changed while the scan runs are reported as
 * they were seen, or by the next scan.
 *
 * Memory: paths and entries of the output come from @a pool; everything
 * else from sub-pools destroyed on the way.  Besides the output, the scan
 * holds the names of the subdirectories of each directory on the current
 * path, the names of one directory while it is listed, and one small
 * counter per directory that has members in the index; never a record per
 * file of the tree.  Cost: one readdir() pass per directory and one lstat()
 * per member, plus one pass over the index; when members were removed, a
 * second pass over the index, which lstat()s again each indexed member of
 * the directories that lost some.
 *
 * @a stats (may be NULL) is reset, then filled in.
 */
apr_status_t iss_scan_tree(const char *root, const iss_scan_ignore_t *ignore,
                           apr_hash_t *index,
                           apr_array_header_t *changes,
                           apr_array_header_t *updates,
                           iss_scan_stats_t *stats, apr_pool_t *pool);

/** Path order: @a a and @a b compared component by component (bytes,
 *  with '/' below every other byte); <0, 0 or >0 as strcmp().  It is the
 *  order of a depth-first walk visiting each folder's names sorted. */
int iss_scan_path_cmp(const char *a, const char *b);

/** Called by iss_scan_list() for each member, @a rel relative to the
 *  listed folder; return non-zero to stop. */
typedef int iss_scan_list_fn(void *baton, const char *rel, int is_dir);

/** List the members of folder @a dir in path order: its direct members,
 *  or (@a infinite) its whole subtree, leaving out every path up to and
 *  including @a after (NULL or "": none) and stopping after @a limit
 *  members (0: no limit); *more says whether members were left.  What is
 *  listed is what iss_scan_tree() walks with the same @a ignore rule
 *  (regular files and folders, ignored names left out, links not
 *  followed).  Only readdir() is used;
 *  folders wholly before @a after are not read, so a page costs its own
 *  members.  Errors: a folder that cannot be read. */
apr_status_t iss_scan_list(const char *dir, const iss_scan_ignore_t *ignore,
                           int infinite, const char *after,
                           apr_size_t limit, iss_scan_list_fn *fn,
                           void *baton, int *more, apr_pool_t *pool);

#ifdef __cplusplus
}
#endif
#endif /* ISS_SCAN_H */
