/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * iss_store_private.h - what the files of the state store share: the
 * names of its files, the record format, the store handle and the other
 * internal types, and the functions that one file calls in another
 * (iss_store__*, grouped below by the file defining them).  Included by
 * libiss/iss_store*.c only.  The design is described at the top of
 * iss_store.c.
 */
#ifndef ISS_STORE_PRIVATE_H
#define ISS_STORE_PRIVATE_H

#include "iss_store.h"
#include "iss_bytes.h"

#include <apr_dbm.h>
#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_portable.h>
#include <apr_sdbm.h>
#include <apr_tables.h>
#include <apr_thread_mutex.h>

#include <openssl/evp.h>
#include <zlib.h>

/* Files in the store directory (see FILES at the top of iss_store.c). */
#define META_NAME      "iss-store.meta"
#define META_TMP       "iss-store.meta.tmp"
#define JOURNAL_NAME   "iss-store.journal"
#define JOURNAL_MIRROR "iss-store.journal.mirror"
#define JOURNAL_TMP    "iss-store.journal.tmp"
#define PROBE_NAME     "iss-store.probe"
#define LOCK_NAME      "iss-store.lock"      /* writers: exclusive */
#define DBMLOCK_NAME   "iss-store.dbmlock"   /* DBM readers shared, checkpoint exclusive */
#define SYNCLOCK_NAME  "iss-store.synclock"  /* the group commit's leader */
#define CKPTLOCK_NAME  "iss-store.ckptlock"  /* the one applying the WAL */
#define CLAIMS_NAME    "iss-store.claims"    /* claims: one locked byte each */
#define SHM_NAME       "iss-store.shm"       /* the shared header (mmap) */
#define AREA_NAME      "iss-store.area"      /* the shared area (iss_store_area()) */
#define RESCAN_NAME    "iss-store.rescan"    /* a rescan is due (a restart of the machine) */
#define WAL_PREFIX     "iss-store.wal."      /* + generation: the write-ahead log */
#define APPLIED_SUFFIX ".applied"   /* + to a WAL generation: in the primary,
                                     * not yet in the mirror */
#define BDB_TMP_PREFIX "__db."      /* Berkeley DB's name while creating */
#define GEN_PREFIX     "iss-store.g"
#define MIRROR_SUFFIX  ".mirror"

#define FILE_PERMS (APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD)

/* The record format (see DBM RECORDS at the top of iss_store.c). */
#define SHORT_KEY_MAX 200
#define SHA_LEN       32
#define REC_HDR       5                       /* type + CRC32 */
#define HEAD_LEN      (8 + 4 + SHA_LEN)       /* length, count, SHA-256 */
#define SEGKEY_LEN    (1 + SHA_LEN + 4)
#define MAX_BODY      ((apr_uint64_t)4 + ISS_STORE_MAX_KEY + ISS_STORE_MAX_VALUE)
/* Largest DBM key + record written as one pair.  sdbm's own limit is 1008
 * bytes, but pairs that large fill a 1 KB page each: sdbm then needs a
 * hash-trie leaf per key (directory depth ~2*log2(n), a sparse .pag file
 * of 2^depth KB that iteration must read through) and refuses a store with
 * ENOSPC when 10 splits cannot separate two keys, which happens after a
 * few hundred keys.  330 bytes lets three pairs share a page
 * (3 * (330 + 4) + 2 <= 1024), which makes both problems negligible. */
#define SDBM_PAIR_MAX 330
#define BIG_PAIR_MAX  (32 * 1024 + SEGKEY_LEN + REC_HDR)

#define KEY_SHORT   'k'
#define KEY_HASHED  'h'
#define KEY_SEGMENT 's'
#define REC_VALUE   'v'
#define REC_HEAD    'm'
#define REC_SEGMENT 's'

/* Levels for iss_store_log_fn (syslog's). */
#define LOG_ERR     3
#define LOG_WARNING 4
#define LOG_INFO    6

/* The shared header (iss-store.shm, mapped by every process using the
 * store; see iss_store_wal.c).  Every field is one 64-bit word read and
 * written with atomic operations; lo, gen and end change together only
 * under the seqlock rot (odd while they change). */
typedef struct {
    apr_uint64_t magic;         /* SHM_MAGIC */
    apr_uint64_t boot;          /* hash of the kernel's boot id */
    apr_uint64_t store;         /* hash of the store id */
    apr_uint64_t rot;           /* seqlock over lo, gen, end, synced */
    apr_uint64_t lo;            /* oldest WAL generation still needed */
    apr_uint64_t gen;           /* the WAL generation appended to */
    apr_uint64_t end;           /* committed end of that generation */
    apr_uint64_t synced;        /* durable end of that generation */
    apr_uint64_t epoch;         /* changes when the header is rebuilt */
    apr_uint64_t dbm_gen;       /* the DBM generation (meta file) */
    apr_uint64_t dbm_busy;      /* a checkpoint is writing the DBM (set
                                 * while it may be half-applied) */
    apr_uint32_t sync_seq;      /* +1 after every sync (a futex word) */
    apr_uint32_t pad32;
    apr_uint64_t waits;         /* durable commits that waited for a sync */
    apr_uint64_t syncs;         /* fdatasyncs of the WAL for them */
    apr_uint64_t checkpoints;
    apr_uint64_t sync_usec;     /* time spent in those fdatasyncs */
    apr_uint64_t damaged;       /* a checkpoint found the DBM copies
                                 * differ (iss_store__copies_check()):
                                 * writes are refused until the state is
                                 * moved aside or repaired */
    apr_uint64_t sizes[2][2];   /* file sizes of the primary [0] and the
                                 * mirror [1] (first, second file) as the
                                 * store last left them, +1 (0: unknown):
                                 * iss_store__copies_check() while the
                                 * mirror lags */
} shm_t;

/* One key of the overlay: its value as of the WAL records read so far
 * (del: absent).  gen is the WAL generation of the record that set it; a
 * key whose generation is below the oldest one still live (ov_lo, or 0
 * for a value read from the DBM) holds what the DBM holds: kept as a
 * cache, not part of a checkpoint. */
typedef struct {
    char *val;
    apr_size_t vlen;
    int del;
    apr_uint64_t gen;
} ov_ent_t;

/* Whether overlay entry @a e is ahead of the DBM (from a live WAL
 * generation) rather than a copy of what the DBM holds. */
#define OV_LIVE(s, e) ((e)->gen != 0 && (e)->gen >= (s)->ov_lo)

struct iss_store_t {
    apr_pool_t *pool;           /* own allocator with a mutex: threads */
    const char *dir;
    const char *type_asked;     /* as configured, for messages */
    const char *type;           /* resolved apr_dbm type name */
    int nosync;                 /* iss_store_set_sync(store, 0) */
    iss_store_log_fn *log;
    void *log_baton;
    apr_size_t pair_max;
    apr_uint64_t gen;           /* DBM generation (meta file) */
    volatile int closed;
    char id[40];
    apr_ino_t meta_ino;         /* the meta file as last read or written */
    apr_time_t meta_mtime;      /* (set with iss_store__meta_ident(): */
    apr_off_t meta_size;        /* iss_store_replaced() reads them unlocked) */

    /* ---- per process: locks (lock order: wmutex, lock_file, omutex,
     * dbm_lock; the sync leader takes smutex, sync_lock alone) ---- */
#if APR_HAS_THREADS
    apr_thread_mutex_t *wmutex; /* this process's writers */
    apr_thread_mutex_t *omutex; /* the overlay and the fields below */
    apr_thread_mutex_t *smutex; /* this process's group-commit leader */
    apr_thread_mutex_t *cmutex; /* this process's checkpointer */
    apr_thread_mutex_t *dmutex; /* held by the thread that holds dbm_lock:
                                 * an flock belongs to the process, not to
                                 * a thread (the checkpointer takes it
                                 * without omutex) */
    apr_os_thread_t dbm_owner;  /* that thread (dbm_locked != 0) */
#endif
    apr_file_t *lock_file;      /* LOCK_NAME */
    apr_file_t *dbm_lock;       /* DBMLOCK_NAME */
    apr_file_t *sync_lock;      /* SYNCLOCK_NAME */
    apr_file_t *claim_hold;     /* CLAIMS_NAME: the claims this handle holds */
    apr_uint64_t own_claim;     /* iss_store_claim_own() (0: not yet) */
    apr_file_t *claim_check;    /* CLAIMS_NAME again (another open file
                                 * description): asks about claims */
    int dbm_locked;             /* dbm_lock held shared (1) or exclusive (2),
                                 * by dbm_owner */
    shm_t *shm;
    void *area;                 /* AREA_NAME mapped (set once, atomically) */
    apr_size_t shm_size;
    apr_ino_t shm_ino;
    apr_time_t shm_checked;     /* when the header file was last stat()ed */

    /* ---- per process: the overlay (under omutex) ---- */
    apr_pool_t *ov_pool;
    apr_hash_t *ov;             /* key -> ov_ent_t */
    apr_uint64_t ov_epoch, ov_lo, ov_gen, ov_off;
    apr_size_t ov_cached, ov_cache_max;     /* DBM reads kept */
    apr_size_t ov_bytes;        /* allocated in ov_pool since its reset */
    apr_file_t *ckpt_lock;      /* CKPTLOCK_NAME: one checkpointer */
    apr_time_t ckpt_tried;      /* last try to apply (a busy checkpointer) */
    apr_file_t *wal;            /* WAL generation ov_gen, for appends and
                                 * reading (pread-style: offsets given) */
    apr_pool_t *wal_pool;
    apr_file_t *sync_file;      /* the WAL generation sync_gen, for the
                                 * group commit's fdatasync (smutex) */
    apr_uint64_t sync_gen;
    apr_pool_t *sync_pool;
    apr_uint64_t ckpt_bytes;    /* checkpoint when the WAL passes this */
    apr_uint64_t ckpt_retry;    /* after a failed checkpoint: not before */
    apr_interval_time_t test_sync_delay;   /* ISS_TEST_SYNC_DELAY_MS */
    apr_interval_time_t test_journal_delay; /* ISS_TEST_JOURNAL_DELAY_MS */
    apr_uint64_t mirror_lag;    /* copy the primary to the mirror when the
                                 * applied generations pass this (0: a
                                 * quarter of the DBM, at least two
                                 * checkpoints; ISS_STORE_MIRROR_LAG_BYTES) */
    int sizes_stale;            /* the DBM files changed while the shared
                                 * header was not mapped (recovery at open):
                                 * note their sizes once it is */
    int ckpt_mine;              /* this handle holds ckpt_lock (its
                                 * checkpointer thread, under cmutex) */
    int dbm_torn;               /* for iss_store__recover(): the primary may
                                 * be torn (a checkpoint died inside a
                                 * commit, or the machine restarted during
                                 * one) */
};

#define ISS_STORE_ERR_MAX 1024
/* The last error of the calling thread (iss_store_last_error()). */
extern _Thread_local char iss_store__err[ISS_STORE_ERR_MAX];

typedef struct {
    const char *key;
    apr_size_t klen;
    const char *val;
    apr_size_t vlen;
    int del;
} op_t;

/* Staged puts and deletes, the last one per key winning. */
typedef struct {
    apr_pool_t *pool;
    apr_hash_t *index;          /* key bytes -> op_t * */
    apr_array_header_t *list;   /* op_t *, first-staged order */
    apr_status_t status;        /* ISS_STORE_ETOOBIG from a staging call */
    char why[200];
} opset_t;

typedef struct db_t {
    iss_store_t *s;
    apr_pool_t *pool;           /* owns the handle (and gdbm's datums) */
    apr_dbm_t *dbm;             /* NULL when sdbm is set */
    apr_sdbm_t *sdbm;           /* sdbm opened for writing (see
                                 * sdbm_open_writer() in iss_store_dbm.c) */
    apr_file_t *sdbm_dir;       /* its .dir file, for its size */
    apr_off_t sdbm_dir_size;    /* when its lock was last taken */
    const char *path;
} db_t;

/* Walks the DBM keys.  sdbm is walked through its own apr_sdbm_t handle:
 * apr_dbm's sdbm nextkey swallows errors (a bad page would silently end
 * the walk) and a fetch on the same handle would replace the page being
 * walked. */
typedef struct {
    iss_store_t *s;
    db_t *db;
    apr_sdbm_t *sdbm;
    apr_datum_t cur;
    char *buf;                  /* copy of the current key */
    apr_size_t len, cap;
    int started, done;
} iter_t;

/* What the meta file says. */
typedef struct {
    const char *type;
    const char *id;
    apr_uint64_t gen;
} meta_t;

/* ---- iss_store.c: errors and log messages ------------------------------- */

void iss_store__note(iss_store_t *s, int level, apr_status_t rv,
                     const char *fmt, ...);
apr_status_t iss_store__fail(iss_store_t *s, apr_status_t rv, const char *fmt,
                             ...);
apr_status_t iss_store__damaged(iss_store_t *s, const char *fmt, ...);

/* ---- iss_store_dbm.c: files, DBM handles, iteration --------------------- */

apr_status_t iss_store__dbm_status(iss_store_t *s, apr_status_t rv);
int iss_store__file_exists(const char *path, apr_pool_t *p);
apr_status_t iss_store__remove_file(iss_store_t *s, const char *path,
                                    apr_pool_t *p);
int iss_store__dbm_exists(iss_store_t *s, apr_pool_t *p, const char *path);
apr_status_t iss_store__remove_dbm(iss_store_t *s, apr_pool_t *p,
                                   const char *path);
apr_status_t iss_store__sync_dir(iss_store_t *s, apr_pool_t *p);
apr_status_t iss_store__copy_dbm(iss_store_t *s, apr_pool_t *p,
                                 const char *from, const char *to);
apr_status_t iss_store__sync_dbm(iss_store_t *s, apr_pool_t *p,
                                 const char *path);
void iss_store__db_close(db_t *db);
apr_status_t iss_store__db_open(iss_store_t *s, const char *path,
                                apr_int32_t mode, apr_pool_t *parent,
                                db_t **out);
apr_status_t iss_store__db_fetch(db_t *db, const char *dk, apr_size_t dklen,
                                 apr_pool_t *p, char **rec,
                                 apr_size_t *reclen);
apr_status_t iss_store__db_store(db_t *db, const char *dk, apr_size_t dklen,
                                 const char *rec, apr_size_t reclen);
apr_status_t iss_store__db_delete(db_t *db, const char *dk, apr_size_t dklen);
/* The same for a key the caller has just found present (under the same
 * lock): no lookup first (each one a walk of sdbm's directory). */
apr_status_t iss_store__db_delete_present(db_t *db, const char *dk,
                                          apr_size_t dklen);
int iss_store__db_exists(db_t *db, const char *dk, apr_size_t dklen);
apr_status_t iss_store__iter_open(iss_store_t *s, db_t *db, apr_pool_t *p,
                                  iter_t **out);
void iss_store__iter_close(iter_t *it);
apr_status_t iss_store__walk_open(iss_store_t *s, const char *path,
                                  apr_pool_t *p, db_t **db, iter_t **it,
                                  apr_pool_t **ip);
apr_status_t iss_store__iter_next(iter_t *it, apr_pool_t *p, const char **dk,
                                  apr_size_t *dklen);

/* ---- iss_store_record.c: the record format ------------------------------ */

void iss_store__copy_bytes(void *dst, const void *src, apr_size_t n);
const char *iss_store__show_bytes(char *buf, apr_size_t size, const void *data,
                                  apr_size_t len);
const char *iss_store__show_dk(char *buf, apr_size_t size, const char *dk,
                               apr_size_t dklen);
apr_status_t iss_store__sha_new(iss_store_t *s, apr_pool_t *p,
                                EVP_MD_CTX **ctx);
apr_status_t iss_store__sha_add(iss_store_t *s, EVP_MD_CTX *ctx, const void *d,
                                apr_size_t n);
apr_status_t iss_store__sha_end(iss_store_t *s, EVP_MD_CTX *ctx,
                                unsigned char out[SHA_LEN]);
apr_status_t iss_store__sha256(iss_store_t *s, const void *d, apr_size_t n,
                               unsigned char out[SHA_LEN]);
uLong iss_store__crc_add(uLong c, const void *d, apr_size_t n);
int iss_store__rec_ok(const char *dk, apr_size_t dklen, const char *rec,
                      apr_size_t reclen);
apr_status_t iss_store__seg_id(iss_store_t *s, const char *dk,
                               apr_size_t dklen, unsigned char id[SHA_LEN]);
apr_status_t iss_store__read_entry(db_t *db, const void *key, apr_size_t klen,
                                   apr_pool_t *p, apr_pool_t *scratch,
                                   void **val, apr_size_t *vlen);
apr_status_t iss_store__load_iterated(db_t *db, const char *dk,
                                      apr_size_t dklen, apr_pool_t *p,
                                      const char **key, apr_size_t *klen,
                                      char **val, apr_size_t *vlen,
                                      apr_uint32_t *nseg);
apr_status_t iss_store__apply_put(db_t *db, const op_t *op, apr_pool_t *p);
apr_status_t iss_store__apply_delete(db_t *db, const op_t *op, apr_pool_t *p);

/* ---- iss_store_journal.c: batches, journal, commit ---------------------- */

opset_t *iss_store__opset_make(apr_pool_t *p);
void iss_store__opset_stage(opset_t *set, const void *key, apr_size_t klen,
                            const void *val, apr_size_t vlen, int del);
apr_uint64_t iss_store__ops_bytes(const opset_t *ops);
apr_status_t iss_store__write_whole(iss_store_t *s, const char *tmp,
                                    const char *dst, const char *data,
                                    apr_size_t len, apr_pool_t *p);
apr_status_t iss_store__close_synced(iss_store_t *s, apr_file_t *f,
                                     const char *path);
apr_status_t iss_store__journal_read(iss_store_t *s, const char *path,
                                     apr_pool_t *p, opset_t **ops,
                                     apr_uint64_t *gen, const char **why);
apr_status_t iss_store__need_space(iss_store_t *s, apr_uint64_t need);
apr_uint64_t iss_store__dbm_disk_size(iss_store_t *s, apr_pool_t *p,
                                      const char *path);
apr_status_t iss_store__apply_copy(iss_store_t *s, const char *path,
                                   const opset_t *ops, apr_pool_t *p,
                                   int *touched);
apr_status_t iss_store__count_copy(iss_store_t *s, const char *path,
                                   apr_size_t expect, apr_pool_t *p);
apr_status_t iss_store__journal_mark(iss_store_t *s, const char *name,
                                     apr_pool_t *p);
apr_status_t iss_store__apply_primary(iss_store_t *s, const opset_t *ops,
                                      apr_pool_t *p, int *touched);

/* ---- iss_store_wal.c: shared header, WAL, overlay, group commit --------- */

/* What the overlay needs before it can answer (iss_store__ov_sync());
 * never returned by the public functions. */
#define NEED_LOCK   (APR_OS_START_USERERR + 101)
#define NEED_REPAIR (APR_OS_START_USERERR + 102)

/* Size of a WAL file's header; records start there. */
#define WAL_HDR 64

apr_status_t iss_store__wal_open(iss_store_t *s, apr_pool_t *p);
void iss_store__wal_close(iss_store_t *s);
apr_status_t iss_store__area(iss_store_t *s, int init, void **base,
                             apr_size_t *size);
apr_status_t iss_store__wal_check(iss_store_t *s, apr_pool_t *p);
int iss_store__shm_current(iss_store_t *s);
apr_status_t iss_store__ov_sync(iss_store_t *s, int locked, apr_pool_t *p);
const ov_ent_t *iss_store__ov_get(iss_store_t *s, const void *key,
                                  apr_size_t klen);
void iss_store__ov_cache(iss_store_t *s, const void *key, apr_size_t klen,
                         const void *val, apr_size_t vlen, int absent);
apr_status_t iss_store__dbm_lock(iss_store_t *s, int exclusive);
void iss_store__dbm_unlock(iss_store_t *s);
apr_status_t iss_store__wal_append(iss_store_t *s, const opset_t *ops,
                                   apr_uint64_t *gen, apr_uint64_t *end,
                                   apr_pool_t *p);
apr_status_t iss_store__wal_durable(iss_store_t *s, apr_uint64_t gen,
                                    apr_uint64_t end);
void iss_store__wal_position(iss_store_t *s, apr_uint64_t *gen,
                             apr_uint64_t *end);
int iss_store__wal_due(iss_store_t *s);
apr_status_t iss_store__wal_rotate(iss_store_t *s, int *sealed,
                                   apr_pool_t *p);
apr_status_t iss_store__wal_apply(iss_store_t *s, int wait, apr_pool_t *p);
apr_status_t iss_store__wal_verify(iss_store_t *s, apr_pool_t *p);
int iss_store__ckpt_try(iss_store_t *s);
int iss_store__ckpt_idle(iss_store_t *s, int *took);
void iss_store__ckpt_release(iss_store_t *s);
apr_status_t iss_store__applied_info(iss_store_t *s, apr_pool_t *p,
                                     int *count, apr_uint64_t *bytes);
apr_status_t iss_store__applied_read(iss_store_t *s, apr_pool_t *p,
                                     opset_t *ops);
apr_status_t iss_store__applied_drop(iss_store_t *s, apr_pool_t *p);
apr_status_t iss_store__mirror_refresh(iss_store_t *s, apr_pool_t *p);
void iss_store__sizes_note(iss_store_t *s, int mirror, apr_pool_t *p);
int iss_store__sizes_known(iss_store_t *s, int mirror,
                           apr_uint64_t size[2]);
void iss_store__wal_stats(iss_store_t *s, iss_store_stats_t *st);

/* ---- iss_store_meta.c: meta file, generations, recovery ----------------- */

const char *iss_store__fpath(iss_store_t *s, apr_pool_t *p, const char *name);
const char *iss_store__gen_path(iss_store_t *s, apr_pool_t *p,
                                apr_uint64_t gen, int mirror);
apr_status_t iss_store__meta_read(iss_store_t *s, apr_pool_t *p, meta_t *m,
                                  int *missing);
/* Remember the identity of the meta file (@a fi: inode, mtime, size) as
 * read or written; atomic stores, for iss_store_replaced()'s unlocked
 * look. */
static inline void iss_store__meta_ident(iss_store_t *s,
                                         const apr_finfo_t *fi)
{
    __atomic_store_n(&s->meta_ino, fi->inode, __ATOMIC_RELAXED);
    __atomic_store_n(&s->meta_mtime, fi->mtime, __ATOMIC_RELAXED);
    __atomic_store_n(&s->meta_size, fi->size, __ATOMIC_RELAXED);
}
apr_status_t iss_store__sweep(iss_store_t *s, apr_pool_t *p);
apr_status_t iss_store__copies_check(iss_store_t *s, apr_pool_t *p);
int iss_store__copy_sizes(iss_store_t *s, apr_pool_t *p, int c,
                          const char *names[2], apr_uint64_t size[2]);
apr_status_t iss_store__recover(iss_store_t *s, apr_pool_t *p);
int iss_store__journal_left(iss_store_t *s, apr_pool_t *p);
int iss_store__mirror_lags(iss_store_t *s, apr_pool_t *p, int *marks);
apr_status_t iss_store__check_meta(iss_store_t *s, apr_pool_t *p,
                                   const meta_t *m);
apr_status_t iss_store__refresh(iss_store_t *s, apr_pool_t *p);
apr_status_t iss_store__create(iss_store_t *s, apr_pool_t *p);

#endif /* ISS_STORE_PRIVATE_H */
