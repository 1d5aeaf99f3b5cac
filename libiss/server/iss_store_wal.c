/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * iss_store_wal.c - the write-ahead log in front of the DBM (see WAL at
 * the top of iss_store.c): the shared header every process maps, the WAL
 * files (records, appending, reading), each process's overlay of the
 * records not yet in the DBM, the group commit (writers waiting for one
 * fdatasync), the checkpoint that applies the WAL to the DBM through the
 * journal commit of iss_store_journal.c, and the rebuilding of the shared
 * header from the files ("attach": a new boot, a lost or damaged header).
 */

#include "iss_store_private.h"
#include "iss_bytes.h"
#include "iss_fdio.h"

#include <apr_file_info.h>
#include <apr_portable.h>
#include <apr_strings.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

#define SHM_MAGIC   0x31304d4853535349ULL       /* "ISSSHM01" */
#define WAL_MAGIC   "ISSWAL01"
#define SHM_BYTES   4096
#define AREA_BYTES  (256 * 1024)
#define READ_CHUNK  (64 * 1024)
#define OP_PUT      'P'
#define OP_DELETE   'D'
/* Checkpoint when the live WAL passes this many bytes (default). */
#define CKPT_BYTES_DEFAULT (4 * 1024 * 1024)
/* DBM reads a process keeps between two checkpoints (default). */
#define CACHE_KEYS_DEFAULT 100000

#define LOAD(x)     __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)


/* ---- small helpers ------------------------------------------------------ */

static apr_uint64_t hash64(const void *d, apr_size_t n)
{
    const unsigned char *p = d;
    apr_uint64_t h = 1469598103934665603ULL;     /* FNV-1a */
    apr_size_t i;

    for (i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

/* The kernel's boot id, hashed: a header from before a reboot (a power
 * loss) describes files that may have lost their unsynced end. */
static apr_uint64_t boot_hash(void)
{
    static apr_uint64_t cached;
    char buf[64];
    ssize_t n;
    int fd;

    /* Test hook: a restart of the machine, without one (t/07_crash_power.t,
     * unit/test_store_wal.c). */
    if (getenv("ISS_TEST_BOOT_ID") && *getenv("ISS_TEST_BOOT_ID")) {
        const char *b = getenv("ISS_TEST_BOOT_ID");

        return hash64(b, strlen(b));
    }
    if (cached)
        return cached;
    fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY);
    n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
    if (fd >= 0)
        close(fd);
    cached = n > 0 ? hash64(buf, (apr_size_t)n) : 1;
    return cached;
}

static int os_fd(apr_file_t *f)
{
    apr_os_file_t fd = -1;

    apr_os_file_get(&fd, f);
    return fd;
}

static apr_status_t fd_sync(int fd)
{
    int rc;

    do {
        rc = fdatasync(fd);
    } while (rc != 0 && errno == EINTR);
    return rc == 0 ? APR_SUCCESS : APR_FROM_OS_ERROR(errno);
}

static const char *wal_path(iss_store_t *s, apr_pool_t *p, apr_uint64_t gen)
{
    return apr_psprintf(p, "%s/" WAL_PREFIX "%" APR_UINT64_T_FMT, s->dir,
                        gen);
}

/* ---- locks ---------------------------------------------------------------- */

apr_status_t iss_store__dbm_lock(iss_store_t *s, int exclusive)
{
    apr_status_t rv;

    /* Taken again by the thread holding it: a no-op (as is the unlock of
     * the inner call).  Another thread of the process waits for dmutex:
     * the flock is the process's, so two threads must never share it
     * (a reader would read a DBM a checkpointer is writing, and its
     * unlock would drop the checkpointer's exclusive lock). */
#if APR_HAS_THREADS
    if (__atomic_load_n(&s->dbm_locked, __ATOMIC_ACQUIRE)
        && apr_os_thread_equal(__atomic_load_n(&s->dbm_owner,
                                               __ATOMIC_RELAXED),
                               apr_os_thread_current()))
        return APR_SUCCESS;
    apr_thread_mutex_lock(s->dmutex);
#else
    if (s->dbm_locked)
        return APR_SUCCESS;
#endif
    rv = apr_file_lock(s->dbm_lock, exclusive ? APR_FLOCK_EXCLUSIVE
                                              : APR_FLOCK_SHARED);
    if (rv != APR_SUCCESS) {
#if APR_HAS_THREADS
        apr_thread_mutex_unlock(s->dmutex);
#endif
        return iss_store__fail(s, rv, "cannot lock %s/" DBMLOCK_NAME ": %pm",
                               s->dir, &rv);
    }
#if APR_HAS_THREADS
    __atomic_store_n(&s->dbm_owner, apr_os_thread_current(),
                     __ATOMIC_RELAXED);
#endif
    __atomic_store_n(&s->dbm_locked, exclusive ? 2 : 1, __ATOMIC_RELEASE);
    return APR_SUCCESS;
}

void iss_store__dbm_unlock(iss_store_t *s)
{
#if APR_HAS_THREADS
    if (!__atomic_load_n(&s->dbm_locked, __ATOMIC_ACQUIRE)
        || !apr_os_thread_equal(__atomic_load_n(&s->dbm_owner,
                                                __ATOMIC_RELAXED),
                                apr_os_thread_current()))
        return;                         /* not this thread's */
#else
    if (!s->dbm_locked)
        return;
#endif
    __atomic_store_n(&s->dbm_locked, 0, __ATOMIC_RELEASE);
    apr_file_unlock(s->dbm_lock);
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(s->dmutex);
#endif
}

/* ---- the overlay ------------------------------------------------------------ */

static void ov_reset(iss_store_t *s, apr_uint64_t epoch, apr_uint64_t lo)
{
    apr_pool_clear(s->ov_pool);
    s->ov = apr_hash_make(s->ov_pool);
    s->ov_cached = 0;
    s->ov_bytes = 0;
    s->ov_epoch = epoch;
    s->ov_lo = lo;
    s->ov_gen = 0;                      /* no file open yet */
    s->ov_off = 0;
    if (s->wal) {
        apr_pool_clear(s->wal_pool);
        s->wal = NULL;
    }
}

static ov_ent_t *ov_entry(iss_store_t *s, const char *key, apr_size_t klen)
{
    ov_ent_t *e = apr_hash_get(s->ov, key, (apr_ssize_t)klen);

    if (!e) {
        char *k = apr_palloc(s->ov_pool, klen + 1);

        iss_store__copy_bytes(k, key, klen);
        k[klen] = '\0';
        e = apr_pcalloc(s->ov_pool, sizeof(*e));
        apr_hash_set(s->ov, k, (apr_ssize_t)klen, e);
        s->ov_bytes += klen + 1 + sizeof(*e) + 48;
    }
    else if (e->gen == 0) {
        s->ov_cached--;
    }
    return e;
}

static void ov_set(iss_store_t *s, ov_ent_t *e, const char *val,
                   apr_size_t vlen, int del, apr_uint64_t gen)
{
    e->gen = gen;
    e->del = del;
    e->vlen = del ? 0 : vlen;
    e->val = NULL;
    if (!del) {
        e->val = apr_palloc(s->ov_pool, vlen + 1);
        iss_store__copy_bytes(e->val, val, vlen);
        e->val[vlen] = '\0';
        s->ov_bytes += vlen + 1;
    }
}

/* A record of generation ov_gen read or written: its value is the key's. */
static void ov_apply(iss_store_t *s, const char *key, apr_size_t klen,
                     const char *val, apr_size_t vlen, int del)
{
    ov_set(s, ov_entry(s, key, klen), val, vlen, del, s->ov_gen);
}

const ov_ent_t *iss_store__ov_get(iss_store_t *s, const void *key,
                                  apr_size_t klen)
{
    return apr_hash_get(s->ov, key ? key : "", (apr_ssize_t)klen);
}

/* Keep what the DBM said of @a key (@a absent: nothing), while the
 * overlay is in sync with the DBM read (under the DBM lock or the
 * writers' lock): the DBM changes only through checkpoints, and the
 * overlay holds every key a live WAL generation changed, so the value
 * stays right until the overlay is rebuilt.  At most ov_cache_max keys. */
void iss_store__ov_cache(iss_store_t *s, const void *key, apr_size_t klen,
                         const void *val, apr_size_t vlen, int absent)
{
    if (!s->ov || s->ov_cached >= s->ov_cache_max
        || apr_hash_get(s->ov, key, (apr_ssize_t)klen))
        return;
    ov_set(s, ov_entry(s, key, klen), val, vlen, absent, 0);
    s->ov_cached++;
}

/* Open WAL generation @a gen as the overlay's file. */
static apr_status_t ov_open_gen(iss_store_t *s, apr_uint64_t gen)
{
    const char *path;
    apr_status_t rv;

    apr_pool_clear(s->wal_pool);
    s->wal = NULL;
    path = wal_path(s, s->wal_pool, gen);
    rv = apr_file_open(&s->wal, path, APR_FOPEN_READ | APR_FOPEN_WRITE
                       | APR_FOPEN_BINARY, APR_OS_DEFAULT, s->wal_pool);
    if (rv != APR_SUCCESS) {
        s->wal = NULL;
        s->ov_gen = 0;
        return iss_store__fail(s, rv, "cannot open the write-ahead log %s: "
                               "%pm", path, &rv);
    }
    s->ov_gen = gen;
    s->ov_off = WAL_HDR;
    return APR_SUCCESS;
}

/* Decode the body of one record, calling @a fn for each operation (the
 * overlay, or a staged batch).  APR_EGENERAL if malformed. */
typedef void op_fn(void *baton, const char *key, apr_size_t klen,
                   const char *val, apr_size_t vlen, int del);

static apr_status_t decode_ops(const unsigned char *d, apr_size_t n,
                               op_fn *fn, void *baton)
{
    const unsigned char *end = d + n;

    while (d < end) {
        apr_uint32_t kl, vl = 0;
        const unsigned char *k, *v = NULL;
        unsigned char t = *d;

        if (end - d < 5 || (t != OP_PUT && t != OP_DELETE))
            return APR_EGENERAL;
        kl = iss_be32_get(d + 1);
        d += 5;
        if (kl > ISS_STORE_MAX_KEY || (apr_size_t)(end - d) < kl)
            return APR_EGENERAL;
        k = d;
        d += kl;
        if (t == OP_PUT) {
            if (end - d < 4)
                return APR_EGENERAL;
            vl = iss_be32_get(d);
            d += 4;
            if (vl > ISS_STORE_MAX_VALUE || (apr_size_t)(end - d) < vl)
                return APR_EGENERAL;
            v = d;
            d += vl;
        }
        fn(baton, (const char *)k, kl, (const char *)v, vl, t == OP_DELETE);
    }
    return APR_SUCCESS;
}

static void apply_to_ov(void *baton, const char *key, apr_size_t klen,
                        const char *val, apr_size_t vlen, int del)
{
    ov_apply(baton, key, klen, val, vlen, del);
}

/* Largest record accepted when reading (a batch of several big values). */
#define RECORD_MAX ((apr_uint64_t)4 * ISS_STORE_MAX_VALUE + 1024 * 1024)

/*
 * Read the records of the file @a fd from @a *off up to @a end (0: up to
 * the last valid record), calling @a fn (may be NULL) for each operation.
 * *off ends after the last complete, valid record.  Before @a end, a
 * record that is cut, malformed or fails its checksum is damage
 * (ISS_STORE_EDAMAGED); with @a end 0 it ends the scan.
 */
static apr_status_t read_records(iss_store_t *s, int fd, const char *path,
                                 apr_uint64_t *off, apr_uint64_t end,
                                 op_fn *fn, void *baton, apr_pool_t *p)
{
    apr_pool_t *rp;
    unsigned char *buf;
    apr_size_t cap = READ_CHUNK, have = 0, pos = 0;
    apr_uint64_t boff = *off;           /* file offset of buf[0] */
    apr_status_t rv = APR_SUCCESS;
    const char *bad = NULL;

    if ((rv = apr_pool_create(&rp, p)) != APR_SUCCESS)
        return iss_store__fail(s, rv, "cannot create a pool: %pm", &rv);
    buf = apr_palloc(rp, cap);
    while (!end || *off < end) {
        apr_size_t need = 8, len = 0;
        apr_uint32_t crc;
        uLong c;

        if (have - pos >= 8) {
            len = iss_be32_get(buf + pos);
            if (len == 0 || len > RECORD_MAX
                || (end && *off + 8 + len > end)) {
                bad = "a record of an impossible length";
                break;
            }
            need = 8 + len;
        }
        if (have - pos < need) {
            ssize_t r;
            apr_size_t want;

            /* Keep the partial record at the front, grow, read more. */
            if (pos) {
                memmove(buf, buf + pos, have - pos);
                have -= pos;
                boff += pos;
                pos = 0;
            }
            if (need > cap) {
                unsigned char *nb = apr_palloc(rp, need);

                memcpy(nb, buf, have);
                buf = nb;
                cap = need;
            }
            want = cap - have;
            if (end && boff + have + want > end)
                want = (apr_size_t)(end - boff - have);
            do {
                r = pread(fd, buf + have, want, (off_t)(boff + have));
            } while (r < 0 && errno == EINTR);
            if (r < 0) {
                rv = APR_FROM_OS_ERROR(errno);
                rv = iss_store__fail(s, rv, "cannot read %s: %pm", path, &rv);
                break;
            }
            if (r == 0) {
                if (have - pos > 0 || end)
                    bad = "a record cut short";
                break;
            }
            have += (apr_size_t)r;
            continue;
        }
        crc = iss_be32_get(buf + pos + 4);
        c = iss_store__crc_add(crc32(0L, Z_NULL, 0), buf + pos, 4);
        c = iss_store__crc_add(c, buf + pos + 8, len);
        if ((apr_uint32_t)c != crc) {
            bad = "a record that fails its checksum";
            break;
        }
        if (fn && decode_ops(buf + pos + 8, len, fn, baton) != APR_SUCCESS) {
            bad = "a malformed record";
            break;
        }
        pos += need;
        *off += need;
    }
    if (bad && end)
        rv = iss_store__damaged(s, "the write-ahead log %s has %s at offset %"
                                APR_UINT64_T_FMT " (committed up to %"
                                APR_UINT64_T_FMT ")", path, bad, *off, end);
    apr_pool_destroy(rp);
    return rv;
}

/* A consistent view of lo, gen and end; APR_EAGAIN while a rotation is
 * under way, NEED_REPAIR if one seems to have died in the middle. */
static apr_status_t snapshot(iss_store_t *s, apr_uint64_t *epoch,
                             apr_uint64_t *lo, apr_uint64_t *gen,
                             apr_uint64_t *end)
{
    shm_t *h = s->shm;
    int i;

    for (i = 0; i < 1000; i++) {
        apr_uint64_t r1 = LOAD(h->rot), r2;

        if (r1 & 1) {
            apr_sleep(100);
            continue;
        }
        *epoch = LOAD(h->epoch);
        *lo = LOAD(h->lo);
        *gen = LOAD(h->gen);
        *end = LOAD(h->end);
        r2 = LOAD(h->rot);
        if (r1 == r2)
            return APR_SUCCESS;
    }
    return NEED_REPAIR;
}

/* The overlay takes this much memory at most (records of generations a
 * checkpoint applied stay as a cache); past it, it is rebuilt from the
 * live generations. */
#define OV_BYTES_MAX (64 * 1024 * 1024)

/*
 * Bring the overlay up to the committed end of the WAL: read the rest of
 * every generation up to the current one (a sealed generation was cut at
 * its committed end before the next began, so it is read to its end of
 * file), then the current one up to the shared end.  Records before the
 * committed end never change: no lock is needed to read them.  @a locked:
 * the caller holds the DBM lock or the writers' lock (no checkpoint can
 * finish meanwhile), so the overlay may be rebuilt from the files of the
 * live generations; without it, NEED_LOCK says that is needed.  When a
 * checkpoint finished (the oldest live generation moved up), the
 * overlay's keys from applied generations stay, as what the DBM now
 * holds.  Under omutex.
 */
apr_status_t iss_store__ov_sync(iss_store_t *s, int locked, apr_pool_t *p)
{
    apr_uint64_t epoch, lo, gen, end;
    apr_status_t rv = snapshot(s, &epoch, &lo, &gen, &end);

    if (rv != APR_SUCCESS)
        return rv;
    if (locked && s->dbm_locked == 1 && LOAD(s->shm->dbm_busy))
        return NEED_REPAIR;             /* the DBM may be half-written */
    if (!s->ov || epoch != s->ov_epoch || lo < s->ov_lo || gen < s->ov_gen
        || (gen == s->ov_gen && end < s->ov_off)
        || (lo > s->ov_lo && s->ov_gen < lo)
        || (locked && s->ov_bytes > OV_BYTES_MAX)) {
        /* Never built, rebuilt elsewhere, or behind a checkpoint that
         * removed generations it had not read. */
        if (!locked)
            return NEED_LOCK;
        ov_reset(s, epoch, lo);
    }
    s->ov_lo = lo;
    if (s->ov_gen == 0) {
        if (!locked)
            return NEED_LOCK;
        if ((rv = ov_open_gen(s, lo)) != APR_SUCCESS)
            return iss_store__damaged(s, "%s", iss_store__err);
    }
    while (s->ov_gen < gen) {
        apr_uint64_t off = s->ov_off;

        rv = read_records(s, os_fd(s->wal), wal_path(s, p, s->ov_gen), &off,
                          0, apply_to_ov, s, p);
        if (rv != APR_SUCCESS)
            return rv;
        if ((rv = ov_open_gen(s, s->ov_gen + 1)) != APR_SUCCESS) {
            /* Gone: a checkpoint applied it meanwhile. */
            s->ov_epoch = 0;
            if (!locked)
                return NEED_LOCK;
            return iss_store__damaged(s, "%s", iss_store__err);
        }
    }
    if (s->ov_off < end) {
        apr_uint64_t off = s->ov_off;

        rv = read_records(s, os_fd(s->wal), wal_path(s, p, s->ov_gen), &off,
                          end, apply_to_ov, s, p);
        if (rv != APR_SUCCESS) {
            /* Records read before the damage are in the overlay: start
             * over next time. */
            s->ov_epoch = 0;
            return rv;
        }
        s->ov_off = off;
    }
    return APR_SUCCESS;
}

/* ---- WAL files -------------------------------------------------------- */

static apr_status_t wal_create(iss_store_t *s, apr_uint64_t gen, apr_pool_t *p)
{
    const char *path = wal_path(s, p, gen);
    unsigned char hdr[WAL_HDR];
    apr_file_t *f;
    apr_status_t rv;

    memset(hdr, 0, sizeof(hdr));
    memcpy(hdr, WAL_MAGIC, 8);
    iss_be64_put(hdr + 8, gen);
    memcpy(hdr + 16, s->id, strlen(s->id) < 40 ? strlen(s->id) : 40);
    iss_be32_put(hdr + 56, (apr_uint32_t)iss_store__crc_add(crc32(0L, Z_NULL,
                                                                  0),
                                                            hdr, 56));
    rv = apr_file_open(&f, path, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                       | APR_FOPEN_TRUNCATE | APR_FOPEN_BINARY, FILE_PERMS, p);
    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "cannot create %s: %pm", path, &rv);
    rv = iss_pwrite_full(os_fd(f), hdr, sizeof(hdr), 0);
    if (rv != APR_SUCCESS) {
        apr_file_close(f);
        apr_file_remove(path, p);
        return iss_store__fail(s, rv, "cannot write %s: %pm", path, &rv);
    }
    if ((rv = iss_store__close_synced(s, f, path)) != APR_SUCCESS) {
        apr_file_remove(path, p);
        return rv;
    }
    return iss_store__sync_dir(s, p);
}

/* Whether @a path holds a WAL header of this store for @a gen. */
static int wal_header_ok(iss_store_t *s, int fd, apr_uint64_t gen)
{
    unsigned char hdr[WAL_HDR];
    char id[41];

    if (iss_pread_full(fd, hdr, sizeof(hdr), 0) != APR_SUCCESS
        || memcmp(hdr, WAL_MAGIC, 8) != 0 || iss_be64_get(hdr + 8) != gen
        || iss_be32_get(hdr + 56)
           != (apr_uint32_t)iss_store__crc_add(crc32(0L, Z_NULL, 0), hdr, 56))
        return 0;
    memcpy(id, hdr + 16, 40);
    id[40] = '\0';
    return strcmp(id, s->id) == 0;
}

static int cmp_gen(const void *a, const void *b)
{
    apr_uint64_t x = *(const apr_uint64_t *)a, y = *(const apr_uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* The WAL generations present, ascending: the live ones (WAL_PREFIX + G),
 * or with @a applied those applied to the primary and not yet to the
 * mirror (+ APPLIED_SUFFIX), then with their total size in *bytes. */
static apr_status_t wal_files(iss_store_t *s, apr_pool_t *p, int applied,
                              apr_array_header_t **gens, apr_uint64_t *bytes)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_size_t n = strlen(WAL_PREFIX);
    apr_status_t rv = apr_dir_open(&d, s->dir, p);

    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "cannot read directory %s: %pm", s->dir,
                               &rv);
    *gens = apr_array_make(p, 4, sizeof(apr_uint64_t));
    if (bytes)
        *bytes = 0;
    while ((rv = apr_dir_read(&fi, APR_FINFO_NAME, d)) == APR_SUCCESS
           || rv == APR_INCOMPLETE) {
        const char *c;
        apr_uint64_t g = 0;
        apr_finfo_t st;

        if (!fi.name || strncmp(fi.name, WAL_PREFIX, n) != 0)
            continue;
        for (c = fi.name + n; *c >= '0' && *c <= '9' && g < APR_UINT64_MAX / 20;
             c++)
            g = g * 10 + (apr_uint64_t)(*c - '0');
        if (c == fi.name + n || g == 0
            || strcmp(c, applied ? APPLIED_SUFFIX : "") != 0)
            continue;
        APR_ARRAY_PUSH(*gens, apr_uint64_t) = g;
        if (bytes && apr_stat(&st, iss_store__fpath(s, p, fi.name),
                              APR_FINFO_SIZE, p) == APR_SUCCESS)
            *bytes += (apr_uint64_t)st.size;
    }
    apr_dir_close(d);
    qsort((*gens)->elts, (apr_size_t)(*gens)->nelts, sizeof(apr_uint64_t),
          cmp_gen);
    return APR_SUCCESS;
}

static apr_status_t wal_list(iss_store_t *s, apr_pool_t *p,
                             apr_array_header_t **gens)
{
    return wal_files(s, p, 0, gens, NULL);
}

static void stage_to_opset(void *baton, const char *key, apr_size_t klen,
                           const char *val, apr_size_t vlen, int del)
{
    iss_store__opset_stage(baton, key, klen, val, vlen, del);
}

/* Stage every record of the log file @a path (generation @a gen) into
 * @a ops, later records of a key winning. */
static apr_status_t stage_file(iss_store_t *s, const char *path,
                               apr_uint64_t gen, opset_t *ops, apr_pool_t *p)
{
    apr_uint64_t off = WAL_HDR;
    apr_finfo_t fi;
    apr_file_t *f;
    apr_status_t rv;

    if ((rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                            APR_OS_DEFAULT, p)) != APR_SUCCESS)
        return iss_store__damaged(s, "cannot open the write-ahead log %s: %pm",
                                  path, &rv);
    if (!wal_header_ok(s, os_fd(f), gen)) {
        apr_file_close(f);
        return iss_store__damaged(s, "the write-ahead log %s has no valid "
                                  "header (or belongs to another store)",
                                  path);
    }
    rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
    if (rv == APR_SUCCESS && (apr_uint64_t)fi.size > WAL_HDR)
        rv = read_records(s, os_fd(f), path, &off, (apr_uint64_t)fi.size,
                          stage_to_opset, ops, p);
    apr_file_close(f);
    return rv;
}

static const char *applied_path(iss_store_t *s, apr_pool_t *p,
                                apr_uint64_t gen)
{
    return apr_pstrcat(p, wal_path(s, p, gen), APPLIED_SUFFIX, NULL);
}

static apr_status_t applied_list(iss_store_t *s, apr_pool_t *p,
                                 apr_array_header_t **gens,
                                 apr_uint64_t *bytes)
{
    return wal_files(s, p, 1, gens, bytes);
}

apr_status_t iss_store__applied_info(iss_store_t *s, apr_pool_t *p,
                                     int *count, apr_uint64_t *bytes)
{
    apr_array_header_t *gens;
    apr_status_t rv = applied_list(s, p, &gens, bytes);

    *count = rv == APR_SUCCESS ? gens->nelts : 0;
    return rv;
}

/* The net change of the applied generations, oldest first, staged into
 * @a ops: what the mirror lacks.  They must follow each other without a
 * gap (each was renamed, and the directory synced, before the next). */
apr_status_t iss_store__applied_read(iss_store_t *s, apr_pool_t *p,
                                     opset_t *ops)
{
    apr_array_header_t *gens, *live;
    apr_uint64_t bytes, lo = 0;
    apr_status_t rv = applied_list(s, p, &gens, &bytes);
    int i, napplied = rv == APR_SUCCESS ? gens->nelts : 0;

    /* Generations below the live ones whose rename to applied did not
     * happen yet (a checkpoint died between moving the live range past
     * them and renaming them, applied_below()): applied to the primary
     * too, and newer than every applied file (renames go oldest first). */
    if (rv == APR_SUCCESS && s->shm && iss_store__shm_current(s)
        && !(LOAD(s->shm->rot) & 1))
        lo = LOAD(s->shm->lo);
    if (rv == APR_SUCCESS && lo && (rv = wal_list(s, p, &live))
                                   == APR_SUCCESS) {
        for (i = 0; i < live->nelts
                    && APR_ARRAY_IDX(live, i, apr_uint64_t) < lo; i++)
            APR_ARRAY_PUSH(gens, apr_uint64_t)
                = APR_ARRAY_IDX(live, i, apr_uint64_t);
    }
    if (rv != APR_SUCCESS)
        return rv;
    for (i = 0; rv == APR_SUCCESS && i < gens->nelts; i++) {
        apr_uint64_t g = APR_ARRAY_IDX(gens, i, apr_uint64_t);
        const char *path = i < napplied ? applied_path(s, p, g)
                                        : wal_path(s, p, g);

        if (i > 0 && APR_ARRAY_IDX(gens, i - 1, apr_uint64_t) != g - 1)
            return iss_store__damaged(s, "the write-ahead log generations "
                                      "applied to the DBM but not to its "
                                      "mirror have a gap before %s", path);
        rv = stage_file(s, path, g, ops, p);
    }
    return rv;
}

/* The mirror holds everything again: the applied generations go. */
apr_status_t iss_store__applied_drop(iss_store_t *s, apr_pool_t *p)
{
    apr_array_header_t *gens;
    apr_uint64_t bytes;
    apr_status_t rv = applied_list(s, p, &gens, &bytes);
    int i;

    for (i = 0; rv == APR_SUCCESS && i < gens->nelts; i++)
        rv = iss_store__remove_file(s, applied_path(s, p,
                                    APR_ARRAY_IDX(gens, i, apr_uint64_t)), p);
    if (rv == APR_SUCCESS && gens->nelts)
        rv = iss_store__sync_dir(s, p);
    return rv;
}

/* Take the checkpointer's locks without waiting (1: taken; release with
 * iss_store__ckpt_release()): no other thread or process is applying
 * the log or copying the mirror. */
int iss_store__ckpt_try(iss_store_t *s)
{
#if APR_HAS_THREADS
    if (apr_thread_mutex_trylock(s->cmutex) != APR_SUCCESS)
        return 0;
#endif
    if (apr_file_lock(s->ckpt_lock, APR_FLOCK_EXCLUSIVE | APR_FLOCK_NONBLOCK)
        != APR_SUCCESS) {
#if APR_HAS_THREADS
        apr_thread_mutex_unlock(s->cmutex);
#endif
        return 0;
    }
    return 1;
}

/* Whether no other checkpointer can be copying the primary over the
 * mirror in place: this handle's checkpointer holds the checkpoint lock,
 * or the lock was free and is taken now (*@a took: give it back with
 * iss_store__ckpt_release()). */
int iss_store__ckpt_idle(iss_store_t *s, int *took)
{
    *took = !s->ckpt_mine && iss_store__ckpt_try(s);
    return s->ckpt_mine || *took;
}

void iss_store__ckpt_release(iss_store_t *s)
{
    apr_file_unlock(s->ckpt_lock);
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(s->cmutex);
#endif
}

/* Remember the sizes of the files of the primary (@a mirror 0) or the
 * mirror as this process just left them (shared header; +1, 0 is
 * "unknown"), for iss_store__copies_check(). */
void iss_store__sizes_note(iss_store_t *s, int mirror, apr_pool_t *p)
{
    const char *f[2];
    apr_uint64_t size[2];
    int i;

    if (!s->shm) {
        s->sizes_stale = 1;
        return;
    }
    (void)iss_store__copy_sizes(s, p, mirror, f, size);
    for (i = 0; i < 2; i++)
        STORE(s->shm->sizes[mirror][i], size[i] + 1);
}

int iss_store__sizes_known(iss_store_t *s, int mirror, apr_uint64_t size[2])
{
    int i;

    if (!s->shm || !iss_store__shm_current(s))
        return 0;
    for (i = 0; i < 2; i++) {
        size[i] = LOAD(s->shm->sizes[mirror][i]);
        if (size[i] == 0)
            return 0;
        size[i]--;
    }
    return 1;
}

/*
 * Make the mirror a copy of the primary again (a file copy, not a replay:
 * see "Checkpoints" in docs/design.md 4.1) and drop the applied
 * generations it no longer needs.  The caller holds the checkpointer's
 * locks; the primary is whole and synced (no JOURNAL_NAME mark).  The
 * JOURNAL_MIRROR mark makes a copy that dies half way be done again (by
 * the next checkpoint, or iss_store__recover()).
 */
apr_status_t iss_store__mirror_refresh(iss_store_t *s, apr_pool_t *p)
{
    const char *mp = iss_store__fpath(s, p, JOURNAL_MIRROR);
    apr_status_t rv = APR_SUCCESS;

    if (!iss_store__file_exists(mp, p))
        rv = iss_store__journal_mark(s, JOURNAL_MIRROR, p);
    if (rv == APR_SUCCESS && s->test_journal_delay)
        apr_sleep(s->test_journal_delay);
    if (rv == APR_SUCCESS)
        rv = iss_store__copy_dbm(s, p, iss_store__gen_path(s, p, s->gen, 0),
                                 iss_store__gen_path(s, p, s->gen, 1));
    if (rv == APR_SUCCESS && s->test_journal_delay)
        apr_sleep(s->test_journal_delay);
    if (rv == APR_SUCCESS)
        rv = iss_store__applied_drop(s, p);
    if (rv == APR_SUCCESS)
        rv = iss_store__remove_file(s, mp, p);
    if (rv == APR_SUCCESS)
        rv = iss_store__sync_dir(s, p);
    if (rv == APR_SUCCESS)
        iss_store__sizes_note(s, 1, p);
    return rv;
}

/* Remove the files of live generations below @a lo: in attach(), those
 * below a gap (retired by a version that applied generations to both
 * copies, their removal lost).  Durable before anything else happens. */
static void drop_below(iss_store_t *s, apr_uint64_t lo, apr_pool_t *p)
{
    apr_array_header_t *gens;
    int i, n = 0;

    if (wal_list(s, p, &gens) != APR_SUCCESS)
        return;
    for (i = 0; i < gens->nelts; i++) {
        apr_uint64_t g = APR_ARRAY_IDX(gens, i, apr_uint64_t);

        if (g < lo) {
            apr_file_remove(wal_path(s, p, g), p);
            n++;
        }
    }
    if (n)
        (void)iss_store__sync_dir(s, p);
}

/*
 * The files of generations below @a lo (applied to the primary) become
 * applied generations (APPLIED_SUFFIX): the mirror still needs them until
 * it is a copy of the primary again.  One at a time, oldest first, each
 * rename synced before the next: they must follow each other without a
 * gap after a power loss too (a generation whose rename did not last is
 * live again and applied once more, which changes nothing).
 */
static apr_status_t applied_below(iss_store_t *s, apr_uint64_t lo,
                                  apr_pool_t *p)
{
    apr_array_header_t *gens;
    apr_status_t rv;
    int i;

    if ((rv = wal_list(s, p, &gens)) != APR_SUCCESS)
        return rv;
    for (i = 0; rv == APR_SUCCESS && i < gens->nelts; i++) {
        apr_uint64_t g = APR_ARRAY_IDX(gens, i, apr_uint64_t);

        if (g >= lo)
            break;
        if ((rv = apr_file_rename(wal_path(s, p, g), applied_path(s, p, g),
                                  p)) != APR_SUCCESS)
            rv = iss_store__fail(s, rv, "cannot rename %s: %pm",
                                 wal_path(s, p, g), &rv);
        else
            rv = iss_store__sync_dir(s, p);
    }
    return rv;
}

/* Whether the shared header was made in this boot, for this store (else
 * it is rebuilt, and lazy commits of an earlier boot may be lost). */
int iss_store__shm_current(iss_store_t *s)
{
    shm_t *h = s->shm;

    return h && LOAD(h->magic) == SHM_MAGIC && LOAD(h->boot) == boot_hash()
           && LOAD(h->store) == hash64(s->id, strlen(s->id));
}

/*
 * The rescan mark (RESCAN_NAME, iss_store_rescan_due()): set when a store
 * that was used before is attached in a new boot.  Lazy commits (every
 * write's intent and settlement) are in the page cache when they return;
 * a kill -9 keeps them, a power loss may not, while the files they
 * describe may have reached the disk.  Written whole (a temporary file
 * renamed), durable before the shared header says the store is attached,
 * so that a crash in between sets it again.
 */
static apr_status_t rescan_mark(iss_store_t *s, apr_pool_t *p)
{
    const char *path = iss_store__fpath(s, p, RESCAN_NAME);
    unsigned char rnd[8];
    char text[2 * sizeof(rnd) + 1];
    apr_status_t rv;

    if ((rv = apr_generate_random_bytes(rnd, sizeof(rnd))) != APR_SUCCESS)
        return iss_store__fail(s, rv, "no random bytes: %pm", &rv);
    iss_hex_encode(text, rnd, sizeof(rnd));
    text[2 * sizeof(rnd)] = '\n';
    if ((rv = iss_store__write_whole(s, apr_pstrcat(p, path, ".tmp", NULL),
                                     path, text, sizeof(text), p))
        != APR_SUCCESS)
        return rv;
    iss_store__note(s, LOG_WARNING, APR_SUCCESS, "state store in %s: the "
                    "machine restarted since the store was last used; "
                    "changes recorded without an fsync may be lost, so the "
                    "files are compared with the store before the next "
                    "sync answer", s->dir);
    return iss_store__sync_dir(s, p);
}

/*
 * Rebuild the shared header from the files (a new boot, no header or a
 * damaged one, a rotation that died half way).  Under the writers' lock.
 * The DBM is recovered first; every WAL generation left is scanned for
 * its valid records and cut after the last one (an append that died, or
 * was lost with the power, leaves a partial record).  A generation whose
 * records are already in the DBM is applied again by the next
 * checkpoint, which changes nothing: applying a generation is idempotent.
 */
static apr_status_t attach(iss_store_t *s, apr_pool_t *p)
{
    shm_t *h = s->shm;
    apr_array_header_t *gens = NULL;
    apr_uint64_t lo, gen, end = WAL_HDR, r;
    apr_status_t rv;
    int i, ckpt_held = 0;

    if ((rv = iss_store__dbm_lock(s, 1)) != APR_SUCCESS)
        return rv;
    /* A checkpoint's mark (JOURNAL_NAME) and nobody applying the log: the
     * primary may be torn if that checkpoint died inside a commit (a
     * header of this boot says so) or if the header cannot tell (another
     * boot: the machine may have restarted during a commit, whose writes
     * were not synced; or no header).  Then recovery restores it. */
    s->dbm_torn = 0;
    if (iss_store__file_exists(iss_store__fpath(s, p, JOURNAL_NAME), p)) {
        if (LOAD(h->magic) == SHM_MAGIC && LOAD(h->boot) == boot_hash()
            && LOAD(h->store) == hash64(s->id, strlen(s->id)))
            s->dbm_torn = LOAD(h->dbm_busy) != 0;
        else if ((ckpt_held = iss_store__ckpt_try(s)))
            s->dbm_torn = 1;
    }
    rv = iss_store__refresh(s, p);
    s->dbm_torn = 0;
    if (ckpt_held)
        iss_store__ckpt_release(s);
    if (rv != APR_SUCCESS || (rv = wal_list(s, p, &gens)) != APR_SUCCESS)
        goto cleanup;
    /* A store used in an earlier boot (or whose header is gone): its lazy
     * commits may not have outlived that boot. */
    if (gens->nelts > 0 && !iss_store__shm_current(s)
        && (rv = rescan_mark(s, p)) != APR_SUCCESS)
        goto cleanup;
    /* The generations to replay run without a gap up to the newest; one
     * below a gap was applied and retired (its removal did not happen,
     * or did not last): replaying it after the later ones would bring
     * back older values. */
    for (i = gens->nelts - 1; i > 0; i--) {
        if (APR_ARRAY_IDX(gens, i - 1, apr_uint64_t)
            != APR_ARRAY_IDX(gens, i, apr_uint64_t) - 1)
            break;
    }
    if (i > 0) {
        drop_below(s, APR_ARRAY_IDX(gens, i, apr_uint64_t), p);
        memmove(gens->elts, gens->elts + (apr_size_t)i * sizeof(apr_uint64_t),
                (apr_size_t)(gens->nelts - i) * sizeof(apr_uint64_t));
        gens->nelts -= i;
    }
    for (i = 0; i < gens->nelts; i++) {
        apr_uint64_t g = APR_ARRAY_IDX(gens, i, apr_uint64_t), off = WAL_HDR;
        const char *path = wal_path(s, p, g);
        apr_file_t *f;
        apr_finfo_t fi;

        rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_WRITE
                           | APR_FOPEN_BINARY, APR_OS_DEFAULT, p);
        if (rv != APR_SUCCESS) {
            rv = iss_store__fail(s, rv, "cannot open %s: %pm", path, &rv);
            goto cleanup;
        }
        if (!wal_header_ok(s, os_fd(f), g)) {
            int small = apr_file_info_get(&fi, APR_FINFO_SIZE, f)
                            == APR_SUCCESS && fi.size <= WAL_HDR;

            apr_file_close(f);
            if (small && i == gens->nelts - 1) {
                /* A creation that died: nothing was ever appended. */
                if ((rv = iss_store__remove_file(s, path, p)) != APR_SUCCESS)
                    goto cleanup;
                gens->nelts--;
                break;
            }
            rv = iss_store__damaged(s, "the write-ahead log %s has no valid "
                                    "header (or belongs to another store)",
                                    path);
            goto cleanup;
        }
        rv = read_records(s, os_fd(f), path, &off, 0, NULL, NULL, p);
        if (rv == APR_SUCCESS
            && apr_file_info_get(&fi, APR_FINFO_SIZE, f) == APR_SUCCESS
            && (apr_uint64_t)fi.size != off) {
            iss_store__note(s, LOG_WARNING, APR_SUCCESS, "state store in %s: "
                            "the write-ahead log %s ends with %" APR_OFF_T_FMT
                            " bytes of an incomplete record (an append that "
                            "did not finish); they are dropped", s->dir,
                            path, fi.size - (apr_off_t)off);
            if (ftruncate(os_fd(f), (off_t)off) != 0) {
                rv = APR_FROM_OS_ERROR(errno);
                rv = iss_store__fail(s, rv, "cannot truncate %s: %pm", path,
                                     &rv);
            }
        }
        if (rv == APR_SUCCESS && !s->nosync)
            rv = fd_sync(os_fd(f));
        apr_file_close(f);
        if (rv != APR_SUCCESS)
            goto cleanup;
        end = off;
    }
    if (gens->nelts == 0) {
        gen = 1;
        if ((rv = wal_create(s, gen, p)) != APR_SUCCESS)
            goto cleanup;
        lo = gen;
        end = WAL_HDR;
    }
    else {
        lo = APR_ARRAY_IDX(gens, 0, apr_uint64_t);
        gen = APR_ARRAY_IDX(gens, gens->nelts - 1, apr_uint64_t);
    }
    r = LOAD(h->rot);
    STORE(h->rot, r | 1);
    STORE(h->magic, SHM_MAGIC);
    STORE(h->boot, boot_hash());
    STORE(h->store, hash64(s->id, strlen(s->id)));
    STORE(h->lo, lo);
    STORE(h->gen, gen);
    STORE(h->end, end);
    STORE(h->synced, end);
    STORE(h->dbm_gen, s->gen);
    STORE(h->dbm_busy, (apr_uint64_t)0);
    STORE(h->damaged, (apr_uint64_t)0);
    STORE(h->epoch, LOAD(h->epoch) + 1);
    STORE(h->rot, (r | 1) + 1);
    iss_store__sizes_note(s, 0, p);
    iss_store__sizes_note(s, 1, p);
    if (gens->nelts > 1 || end > WAL_HDR)
        iss_store__note(s, LOG_INFO, APR_SUCCESS, "state store in %s: "
                        "write-ahead log generations %" APR_UINT64_T_FMT
                        " to %" APR_UINT64_T_FMT " (%" APR_UINT64_T_FMT
                        " bytes in the last) are applied at the next "
                        "checkpoint", s->dir, lo, gen, end);
cleanup:
    iss_store__dbm_unlock(s);
    return rv;
}

/* Map @a bytes of the file @a path (made, and grown to that size, if
 * need be) shared; *ino its inode (may be NULL). */
static apr_status_t map_file(iss_store_t *s, const char *path,
                             apr_size_t bytes, void **m, apr_ino_t *ino)
{
    struct stat st;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);

    if (fd < 0 || fstat(fd, &st) != 0
        || (st.st_size < (off_t)bytes && ftruncate(fd, (off_t)bytes) != 0)) {
        apr_status_t rv = APR_FROM_OS_ERROR(errno);

        if (fd >= 0)
            close(fd);
        return iss_store__fail(s, rv, "cannot open %s: %pm", path, &rv);
    }
    *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (*m == MAP_FAILED) {
        apr_status_t rv = APR_FROM_OS_ERROR(errno);

        *m = NULL;
        return iss_store__fail(s, rv, "cannot map %s: %pm", path, &rv);
    }
    if (ino)
        *ino = st.st_ino;
    return APR_SUCCESS;
}

static apr_status_t shm_map(iss_store_t *s, apr_pool_t *p)
{
    apr_ino_t ino;
    void *m;
    apr_status_t rv;

    if (s->shm) {
        munmap(s->shm, s->shm_size);
        s->shm = NULL;
    }
    if ((rv = map_file(s, apr_pstrcat(p, s->dir, "/" SHM_NAME, NULL),
                       SHM_BYTES, &m, &ino)) != APR_SUCCESS)
        return rv;
    s->shm = m;
    s->shm_size = SHM_BYTES;
    s->shm_ino = ino;
    return APR_SUCCESS;
}

/* Under the exclusive DBM lock: finish a dead checkpointer's commit and
 * follow a DBM another process rebuilt.  A rebuild may have dropped
 * damaged records, so every process drops what its overlay remembers of
 * the DBM (a new epoch). */
static apr_status_t dbm_catch_up(iss_store_t *s, apr_pool_t *p)
{
    shm_t *h = s->shm;
    apr_uint64_t before = s->gen;
    apr_status_t rv;

    /* Busy: a checkpoint died inside a commit to the primary. */
    s->dbm_torn = LOAD(h->dbm_busy) != 0;
    rv = iss_store__refresh(s, p);
    s->dbm_torn = 0;
    if (rv != APR_SUCCESS)
        return rv;
    if (s->gen != before || LOAD(h->dbm_gen) != s->gen) {
        apr_uint64_t r = LOAD(h->rot);

        STORE(h->rot, r + 1);
        STORE(h->dbm_gen, s->gen);
        STORE(h->epoch, LOAD(h->epoch) + 1);
        STORE(h->rot, r + 2);
    }
    STORE(h->dbm_busy, (apr_uint64_t)0);
    return APR_SUCCESS;
}

/*
 * Under the writers' lock, at the start of every write: the shared header
 * is the one in the directory, valid for this boot and store, and not left
 * half-changed by a process that died; otherwise it is rebuilt (attach).
 * Also notices a DBM rebuilt by another process.
 */
apr_status_t iss_store__wal_check(iss_store_t *s, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, s->dir, "/" SHM_NAME, NULL);
    struct stat st;
    shm_t *h;
    apr_status_t rv;

    /* The header file is looked at by name at most every second: an
     * administrator who moved the state aside is noticed soon enough,
     * and a write is spared a stat(). */
    if (s->shm && apr_time_now() - s->shm_checked < apr_time_from_sec(1)) {
        /* checked recently */
    }
    else if (stat(path, &st) != 0 || st.st_ino != s->shm_ino || !s->shm) {
        if (!iss_store__file_exists(iss_store__fpath(s, p, META_NAME), p))
            return iss_store__damaged(s, "%s has disappeared: the state "
                                      "store was removed while in use",
                                      iss_store__fpath(s, p, META_NAME));
        if ((rv = shm_map(s, p)) != APR_SUCCESS)
            return rv;
    }
    else {
        s->shm_checked = apr_time_now();
    }
    h = s->shm;
    if (LOAD(h->magic) != SHM_MAGIC || LOAD(h->boot) != boot_hash()
        || LOAD(h->store) != hash64(s->id, strlen(s->id))
        || (LOAD(h->rot) & 1))
        return attach(s, p);
    if (LOAD(h->dbm_busy) || LOAD(h->dbm_gen) != s->gen) {
        /* A checkpoint died while writing the DBM (the WAL still holds
         * everything it was applying), or another process rebuilt it. */
        if ((rv = iss_store__dbm_lock(s, 1)) != APR_SUCCESS)
            return rv;
        rv = dbm_catch_up(s, p);
        iss_store__dbm_unlock(s);
        return rv;
    }
    return APR_SUCCESS;
}

apr_status_t iss_store__wal_open(iss_store_t *s, apr_pool_t *p)
{
    const char *v = getenv("ISS_STORE_CHECKPOINT_BYTES");
    const char *c = getenv("ISS_STORE_CACHE_KEYS");
    const char *d = getenv("ISS_TEST_SYNC_DELAY_MS");
    const char *j = getenv("ISS_TEST_JOURNAL_DELAY_MS");
    const char *m = getenv("ISS_STORE_MIRROR_LAG_BYTES");
    apr_status_t rv;

    s->ckpt_bytes = CKPT_BYTES_DEFAULT;
    if (v && *v)
        s->ckpt_bytes = (apr_uint64_t)apr_atoi64(v);
    if (d && *d)
        s->test_sync_delay = (apr_interval_time_t)apr_atoi64(d) * 1000;
    if (j && *j)
        s->test_journal_delay = (apr_interval_time_t)apr_atoi64(j) * 1000;
    s->mirror_lag = 0;
    if (m && *m)
        s->mirror_lag = (apr_uint64_t)apr_atoi64(m);
    s->ov_cache_max = CACHE_KEYS_DEFAULT;
    if (c && *c)
        s->ov_cache_max = (apr_size_t)apr_atoi64(c);
    if ((rv = apr_pool_create(&s->ov_pool, s->pool)) != APR_SUCCESS
        || (rv = apr_pool_create(&s->wal_pool, s->pool)) != APR_SUCCESS)
        return iss_store__fail(s, rv, "cannot create a pool: %pm", &rv);
    s->ov = NULL;
    if ((rv = shm_map(s, p)) != APR_SUCCESS)
        return rv;
    return iss_store__wal_check(s, p);
}

void iss_store__wal_close(iss_store_t *s)
{
    void *area = __atomic_exchange_n(&s->area, NULL, __ATOMIC_ACQ_REL);

    if (s->shm) {
        munmap(s->shm, s->shm_size);
        s->shm = NULL;
    }
    if (area)
        munmap(area, AREA_BYTES);
}

/* ---- the shared area (iss_store_area()) ---------------------------------
 * AREA_NAME, AREA_BYTES mapped by every process that asks for it: a
 * header (magic, the boot it was made in, the store's id hashed) and the
 * caller's bytes.  It outlives processes, not the machine: an area of
 * another boot or store (or none) is zeroed by the first transaction
 * that asks (@a init, under the writers' lock); without @a init such an
 * area is APR_EAGAIN. */
#define AREA_MAGIC  APR_UINT64_C(0x4953534152454131)  /* "ISSAREA1" */
#define AREA_HDR    64

apr_status_t iss_store__area(iss_store_t *s, int init, void **base,
                             apr_size_t *size)
{
    apr_uint64_t *h = __atomic_load_n(&s->area, __ATOMIC_ACQUIRE);
    shm_t *sh = s->shm;

    /* Without the lock, only a store a transaction would find in order:
     * otherwise the caller takes the transaction's way, which repairs
     * what can be repaired and reports the rest (a damaged store refuses
     * writes, and so must a write that would only have used the area). */
    if (!init && (!sh || LOAD(sh->damaged) || LOAD(sh->magic) != SHM_MAGIC
                  || LOAD(sh->boot) != boot_hash()
                  || LOAD(sh->store) != hash64(s->id, strlen(s->id))
                  || LOAD(sh->dbm_busy) || LOAD(sh->dbm_gen) != s->gen))
        return APR_EAGAIN;
    if (!h) {
        void *m, *none = NULL;
        apr_status_t rv;

        /* A few bytes of the handle's pool once (path); no lock: a
         * thread that loses the race unmaps its own mapping. */
        if ((rv = map_file(s, apr_pstrcat(s->pool, s->dir, "/" AREA_NAME,
                                          NULL), AREA_BYTES, &m, NULL))
            != APR_SUCCESS)
            return rv;
        if (!__atomic_compare_exchange_n(&s->area, &none, m, 0,
                                         __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            munmap(m, AREA_BYTES);
            m = none;
        }
        h = m;
    }
    if (LOAD(h[0]) != AREA_MAGIC || LOAD(h[1]) != boot_hash()
        || LOAD(h[2]) != hash64(s->id, strlen(s->id))) {
        if (!init)
            return APR_EAGAIN;
        /* Under the writers' lock: nobody used it in this boot for this
         * store (a store made anew in the directory has another id). */
        STORE(h[0], 0);
        memset(h + 3, 0, AREA_BYTES - 3 * sizeof(*h));
        STORE(h[1], boot_hash());
        STORE(h[2], hash64(s->id, strlen(s->id)));
        STORE(h[0], AREA_MAGIC);
    }
    *base = (char *)h + AREA_HDR;
    *size = AREA_BYTES - AREA_HDR;
    return APR_SUCCESS;
}

/* ---- appending and the group commit ---------------------------------------- */

/* Append @a ops as one record; the overlay and the shared end follow.
 * Under the writers' lock and omutex, with the overlay in sync. */
apr_status_t iss_store__wal_append(iss_store_t *s, const opset_t *ops,
                                   apr_uint64_t *gen, apr_uint64_t *end,
                                   apr_pool_t *p)
{
    apr_uint64_t blen = iss_store__ops_bytes(ops), off = s->ov_off;
    unsigned char *buf, *d;
    uLong c;
    apr_status_t rv;
    int i;

    if (blen > 0xfffffff0u)
        return iss_store__fail(s, ISS_STORE_ETOOBIG, "a batch of %"
                               APR_UINT64_T_FMT " bytes is larger than the "
                               "write-ahead log takes (4 GB)", blen);
    buf = apr_palloc(p, (apr_size_t)blen + 8);
    d = buf + 8;
    for (i = 0; i < ops->list->nelts; i++) {
        const op_t *op = APR_ARRAY_IDX(ops->list, i, const op_t *);

        *d++ = op->del ? OP_DELETE : OP_PUT;
        iss_be32_put(d, (apr_uint32_t)op->klen);
        d += 4;
        iss_store__copy_bytes(d, op->key, op->klen);
        d += op->klen;
        if (!op->del) {
            iss_be32_put(d, (apr_uint32_t)op->vlen);
            d += 4;
            iss_store__copy_bytes(d, op->val, op->vlen);
            d += op->vlen;
        }
    }
    iss_be32_put(buf, (apr_uint32_t)blen);
    c = iss_store__crc_add(crc32(0L, Z_NULL, 0), buf, 4);
    c = iss_store__crc_add(c, buf + 8, (apr_size_t)blen);
    iss_be32_put(buf + 4, (apr_uint32_t)c);
    rv = iss_pwrite_full(os_fd(s->wal), buf, (apr_size_t)blen + 8, off);
    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "writing the write-ahead log %s "
                               "failed: %pm; nothing was written",
                               wal_path(s, p, s->ov_gen), &rv);
    for (i = 0; i < ops->list->nelts; i++) {
        const op_t *op = APR_ARRAY_IDX(ops->list, i, const op_t *);

        ov_apply(s, op->key, op->klen, op->val, op->vlen, op->del);
    }
    s->ov_off = off + blen + 8;
    STORE(s->shm->end, s->ov_off);      /* the commit point */
    *gen = s->ov_gen;
    *end = s->ov_off;
    return APR_SUCCESS;
}

void iss_store__wal_position(iss_store_t *s, apr_uint64_t *gen,
                             apr_uint64_t *end)
{
    *gen = s->ov_gen;
    *end = s->ov_off;
}

/* Wait (at most @a usec) until sync_seq is no longer @a seen; wake every
 * waiter.  A futex on the shared header across processes where there is
 * one, else a short sleep. */
static void seq_wait(iss_store_t *s, apr_uint32_t seen, long usec)
{
#ifdef __linux__
    struct timespec ts = { 0, usec * 1000 };

    syscall(SYS_futex, &s->shm->sync_seq, FUTEX_WAIT, seen, &ts, NULL, 0);
#else
    (void)seen;
    apr_sleep(usec < 200 ? usec : 200);
#endif
}

static void seq_wake(iss_store_t *s)
{
    __atomic_add_fetch(&s->shm->sync_seq, 1, __ATOMIC_RELEASE);
#ifdef __linux__
    syscall(SYS_futex, &s->shm->sync_seq, FUTEX_WAKE, 0x7fffffff, NULL, NULL,
            0);
#endif
}

/* The fdatasync of generation @a gen, through a descriptor kept for it.
 * Under smutex. */
static apr_status_t sync_gen(iss_store_t *s, apr_uint64_t gen)
{
    apr_status_t rv;

    if (s->sync_file == NULL || s->sync_gen != gen) {
        if (s->sync_pool == NULL
            && (rv = apr_pool_create(&s->sync_pool, s->pool)) != APR_SUCCESS)
            return iss_store__fail(s, rv, "cannot create a pool: %pm", &rv);
        apr_pool_clear(s->sync_pool);
        s->sync_file = NULL;
        rv = apr_file_open(&s->sync_file, wal_path(s, s->sync_pool, gen),
                           APR_FOPEN_READ, APR_OS_DEFAULT, s->sync_pool);
        if (rv != APR_SUCCESS) {
            s->sync_file = NULL;
            return iss_store__fail(s, rv, "cannot open %s: %pm",
                                   wal_path(s, s->sync_pool, gen), &rv);
        }
        s->sync_gen = gen;
    }
    if ((rv = fd_sync(os_fd(s->sync_file))) != APR_SUCCESS)
        return iss_store__fail(s, rv, "fdatasync of the write-ahead log %s "
                               "failed: %pm", wal_path(s, s->sync_pool, gen),
                               &rv);
    return APR_SUCCESS;
}

/*
 * Return once the WAL is durable up to @a end of generation @a gen.
 * Whoever gets the sync lock first (without waiting for it) is the
 * leader: it fdatasyncs everything appended so far, publishes the new
 * durable end and wakes the others; writers whose records that covered
 * return, the others elect the next leader.  No one waits on the lock
 * itself, so a record covered by a sync never waits behind the next one.
 * A later generation means a checkpoint put the records into the
 * (fsynced) DBM.  A leader that dies releases the lock with its file;
 * waiters also look again every few milliseconds.
 */
apr_status_t iss_store__wal_durable(iss_store_t *s, apr_uint64_t gen,
                                    apr_uint64_t end)
{
    shm_t *h = s->shm;
    apr_status_t rv = APR_SUCCESS;

    if (s->nosync)
        return APR_SUCCESS;
    if (LOAD(h->gen) == gen && LOAD(h->synced) < end)
        __atomic_add_fetch(&h->waits, 1, __ATOMIC_RELAXED);
    for (;;) {
        apr_uint32_t seen = __atomic_load_n(&h->sync_seq, __ATOMIC_ACQUIRE);
        int led = 0;

        if (LOAD(h->gen) != gen || LOAD(h->synced) >= end)
            return APR_SUCCESS;
#if APR_HAS_THREADS
        if (apr_thread_mutex_trylock(s->smutex) == APR_SUCCESS) {
#else
        {
#endif
            if (apr_file_lock(s->sync_lock, APR_FLOCK_EXCLUSIVE
                              | APR_FLOCK_NONBLOCK) == APR_SUCCESS) {
                led = 1;
                if (LOAD(h->gen) == gen && LOAD(h->synced) < end) {
                    apr_uint64_t e;

                    if (s->test_sync_delay)
                        apr_sleep(s->test_sync_delay);
                    apr_time_t t0;

                    e = LOAD(h->end);
                    __atomic_add_fetch(&h->syncs, 1, __ATOMIC_RELAXED);
                    t0 = apr_time_now();
                    rv = sync_gen(s, gen);
                    __atomic_add_fetch(&h->sync_usec,
                                       (apr_uint64_t)(apr_time_now() - t0),
                                       __ATOMIC_RELAXED);
                    if (rv == APR_SUCCESS && LOAD(h->synced) < e)
                        STORE(h->synced, e);
                }
                seq_wake(s);
                apr_file_unlock(s->sync_lock);
            }
#if APR_HAS_THREADS
            apr_thread_mutex_unlock(s->smutex);
#endif
        }
        if (rv != APR_SUCCESS)
            return rv;
        if (!led)
            seq_wait(s, seen, 2000);
    }
}

/* ---- checkpoint ----------------------------------------------------------- */

/* Ops of a batch applied per DBM commit of a checkpoint: the DBM lock is
 * held that long, and readers that need the DBM wait that long. */
#define CKPT_CHUNK 2000

/* Whether the WAL should be checkpointed: the current generation passed
 * the checkpoint size, or a sealed one waits (a checkpointer died, or is
 * under way). */
int iss_store__wal_due(iss_store_t *s)
{
    shm_t *h = s->shm;

    return LOAD(h->lo) < LOAD(h->gen)
           || LOAD(h->end) - WAL_HDR >= s->ckpt_bytes;
}

/*
 * Seal the current generation and start the next one: writers go on
 * there while iss_store__wal_apply() puts the sealed ones into the DBM.
 * The sealed file is cut at its committed end (an append that died may
 * have left bytes after it) and fsynced (lazy commits in it are durable
 * from then on).  Under the writers' lock and omutex, with the overlay
 * in sync; only when no earlier sealed generation waits.
 */
apr_status_t iss_store__wal_rotate(iss_store_t *s, int *sealed,
                                   apr_pool_t *p)
{
    shm_t *h = s->shm;
    apr_uint64_t g = s->ov_gen, r;
    apr_status_t rv;

    *sealed = 0;
    if (LOAD(h->lo) != g || s->ov_off == WAL_HDR)
        return APR_SUCCESS;             /* one at a time; nothing to seal */
    if (ftruncate(os_fd(s->wal), (off_t)s->ov_off) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
        return iss_store__fail(s, rv, "cannot cut %s at its end: %pm",
                               wal_path(s, p, g), &rv);
    }
    if (!s->nosync && LOAD(h->synced) < s->ov_off
        && (rv = fd_sync(os_fd(s->wal))) != APR_SUCCESS)
        return iss_store__fail(s, rv, "fdatasync of %s failed: %pm",
                               wal_path(s, p, g), &rv);
    if ((rv = wal_create(s, g + 1, p)) != APR_SUCCESS)
        return rv;
#if APR_HAS_THREADS
    apr_thread_mutex_lock(s->smutex);
#endif
    if ((rv = apr_file_lock(s->sync_lock, APR_FLOCK_EXCLUSIVE))
        != APR_SUCCESS) {
#if APR_HAS_THREADS
        apr_thread_mutex_unlock(s->smutex);
#endif
        apr_file_remove(wal_path(s, p, g + 1), p);
        return iss_store__fail(s, rv, "cannot lock %s/" SYNCLOCK_NAME ": %pm",
                               s->dir, &rv);
    }
    r = LOAD(h->rot);
    STORE(h->rot, r + 1);
    STORE(h->gen, g + 1);
    STORE(h->end, (apr_uint64_t)WAL_HDR);
    STORE(h->synced, (apr_uint64_t)WAL_HDR);
    STORE(h->rot, r + 2);
    seq_wake(s);
    apr_file_unlock(s->sync_lock);
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(s->smutex);
#endif
    /* The overlay keeps its keys: they are the same values. */
    *sealed = 1;
    return ov_open_gen(s, g + 1);
}

/*
 * Apply the sealed generations to the DBM and retire them.  Takes no
 * lock writers wait for while it works: one checkpointer at a time (the
 * checkpoint lock; without @a wait, return at once if another has it);
 * the records are read from the sealed files, the net change of each key
 * applied to the primary only, in commits of CKPT_CHUNK keys, each under
 * the exclusive DBM lock with dbm_busy set, all of them under the
 * JOURNAL_NAME mark.  Readers stay right meanwhile: their overlay holds
 * every key of the live generations, and the DBM only changes keys it
 * holds.  Then, under the writers' lock, the oldest live generation
 * moves past them, their files become applied generations (the mirror
 * still lacks them) and the mark goes; once the applied generations
 * outgrow the DBM, the mirror becomes a file copy of the primary and they
 * go (iss_store__mirror_refresh()).  Applying a generation twice (a
 * checkpointer died after some commits) changes nothing; one that died
 * inside a commit leaves dbm_busy, and the next holder of the DBM lock
 * restores the primary from the mirror and the applied generations
 * (iss_store__recover()).  A failure (disk full) leaves the generations
 * sealed and live; the next checkpoint tries again.
 */
apr_status_t iss_store__wal_apply(iss_store_t *s, int wait, apr_pool_t *p)
{
    shm_t *h = s->shm;
    apr_uint64_t epoch, lo, gen, end, g, first_gen = 0;
    opset_t *ops;
    apr_pool_t *cp = NULL;
    apr_status_t rv;
    int i, n;

    if (!wait && apr_time_now() - s->ckpt_tried < apr_time_from_msec(100))
        return APR_SUCCESS;
    s->ckpt_tried = apr_time_now();
#if APR_HAS_THREADS
    if (wait)
        apr_thread_mutex_lock(s->cmutex);
    else if (apr_thread_mutex_trylock(s->cmutex) != APR_SUCCESS)
        return APR_SUCCESS;             /* another thread is at it */
#endif
    if (apr_file_lock(s->ckpt_lock, APR_FLOCK_EXCLUSIVE
                      | (wait ? 0 : APR_FLOCK_NONBLOCK)) != APR_SUCCESS) {
#if APR_HAS_THREADS
        apr_thread_mutex_unlock(s->cmutex);
#endif
        return APR_SUCCESS;             /* another process is at it */
    }
    s->ckpt_mine = 1;
    if ((rv = snapshot(s, &epoch, &lo, &gen, &end)) != APR_SUCCESS) {
        rv = rv == NEED_REPAIR ? APR_SUCCESS : rv;
        goto cleanup;
    }
    /* A copy of the primary to the mirror that died half way: done again
     * first (the primary is as the last checkpoint left it). */
    if (iss_store__file_exists(iss_store__fpath(s, p, JOURNAL_MIRROR), p)
        && (rv = iss_store__mirror_refresh(s, p)) != APR_SUCCESS)
        goto cleanup;
    if (lo >= gen) {
        rv = APR_SUCCESS;               /* nothing sealed */
        goto cleanup;
    }
    if ((rv = apr_pool_create(&cp, p)) != APR_SUCCESS) {
        cp = NULL;
        rv = iss_store__fail(s, rv, "cannot create a pool: %pm", &rv);
        goto cleanup;
    }
    ops = iss_store__opset_make(cp);
    for (g = lo; g < gen; g++) {
        if ((rv = stage_file(s, wal_path(s, cp, g), g, ops, cp))
            != APR_SUCCESS)
            goto cleanup;
    }
    n = ops->list->nelts;
    if (n == 0)
        first_gen = s->gen;             /* nothing to apply, nothing to lose */
    for (i = 0; i < n && rv == APR_SUCCESS; i += CKPT_CHUNK) {
        opset_t *chunk = iss_store__opset_make(cp);
        int j, touched = 0;

        for (j = i; j < n && j < i + CKPT_CHUNK; j++) {
            const op_t *op = APR_ARRAY_IDX(ops->list, j, const op_t *);

            APR_ARRAY_PUSH(chunk->list, const op_t *) = op;
        }
        if ((rv = iss_store__dbm_lock(s, 1)) != APR_SUCCESS)
            break;
        if (LOAD(h->dbm_busy) || LOAD(h->dbm_gen) != s->gen)
            rv = dbm_catch_up(s, cp);   /* a dead checkpointer, a rebuild */
        if (rv == APR_SUCCESS && first_gen && s->gen != first_gen) {
            /* Rebuilt under us (not expected: nobody restores while we
             * hold the checkpoint lock): what this checkpoint applied may
             * be gone, so it retires nothing; the next one starts over. */
            iss_store__dbm_unlock(s);
            goto cleanup;
        }
        /* The files as the store left them: one changed from outside
         * (truncated) is damage, and every writer of every process
         * refuses from now on. */
        if (rv == APR_SUCCESS
            && (rv = iss_store__copies_check(s, cp)) != APR_SUCCESS)
            STORE(h->damaged, (apr_uint64_t)1);
        /* The mark says the primary is being written (a recovery that
         * restored the primary meanwhile removed it). */
        if (rv == APR_SUCCESS
            && !iss_store__file_exists(iss_store__fpath(s, cp, JOURNAL_NAME),
                                       cp))
            rv = iss_store__journal_mark(s, JOURNAL_NAME, cp);
        if (rv == APR_SUCCESS) {
            STORE(h->dbm_busy, (apr_uint64_t)1);
            rv = iss_store__apply_primary(s, chunk, cp, &touched);
            if (rv == APR_SUCCESS && !first_gen)
                first_gen = s->gen;
            if (rv == APR_SUCCESS || !touched) {
                iss_store__sizes_note(s, 0, cp);
                STORE(h->dbm_busy, (apr_uint64_t)0);
            }
            else {
                /* The primary may be half-written: restore it now (the
                 * log keeps the chunk for the next checkpoint). */
                char why[sizeof(iss_store__err)];

                apr_cpystrn(why, iss_store__err, sizeof(why));
                if (dbm_catch_up(s, cp) == APR_SUCCESS)
                    STORE(h->dbm_busy, (apr_uint64_t)0);
                apr_cpystrn(iss_store__err, why, sizeof(iss_store__err));
            }
        }
        iss_store__dbm_unlock(s);
    }
    if (rv != APR_SUCCESS) {
        iss_store__note(s, LOG_WARNING, rv, "state store in %s: applying "
                        "the write-ahead log to the DBM failed (%s); the "
                        "log keeps every change and it is tried again later",
                        s->dir, iss_store__err);
        goto cleanup;
    }
    /* Retire them: under the writers' lock, so that no writer and no
     * rebuild of an overlay sees the files go half way.  They stay, as
     * applied generations, until the mirror is a copy of the primary
     * again; then the mark goes (the primary is whole and synced). */
#if APR_HAS_THREADS
    apr_thread_mutex_lock(s->wmutex);
#endif
    rv = apr_file_lock(s->lock_file, APR_FLOCK_EXCLUSIVE);
    if (rv == APR_SUCCESS && (rv = iss_store__dbm_lock(s, 1))
                             == APR_SUCCESS) {
        apr_uint64_t r = LOAD(h->rot);

        if (LOAD(h->dbm_gen) != s->gen || LOAD(h->dbm_busy))
            rv = dbm_catch_up(s, cp);
        if (rv == APR_SUCCESS && s->gen == first_gen) {
            STORE(h->rot, r + 1);
            STORE(h->lo, gen);
            STORE(h->rot, r + 2);
            rv = applied_below(s, gen, cp);
        }
        if (rv == APR_SUCCESS && s->gen == first_gen)
            rv = iss_store__remove_file(s, iss_store__fpath(s, cp,
                                                            JOURNAL_NAME), cp);
        if (rv == APR_SUCCESS && s->gen == first_gen)
            rv = iss_store__sync_dir(s, cp);
        if (rv == APR_SUCCESS && s->gen == first_gen)
            __atomic_add_fetch(&h->checkpoints, 1, __ATOMIC_RELAXED);
        iss_store__dbm_unlock(s);
        apr_file_unlock(s->lock_file);
    }
    else if (rv == APR_SUCCESS) {
        apr_file_unlock(s->lock_file);
    }
    else {
        rv = iss_store__fail(s, rv, "cannot lock %s: %pm", s->dir, &rv);
    }
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(s->wmutex);
#endif
    if (rv == APR_SUCCESS) {
        /* The mirror: a copy of the primary once the applied generations
         * pass a quarter of the DBM's size (a file copy of it costs less
         * than replaying a quarter of its size of log into it), or two
         * checkpoints' worth (a small DBM is copied rarely). */
        apr_uint64_t bytes, limit = s->mirror_lag;
        int count;

        if (limit == 0) {
            limit = iss_store__dbm_disk_size(s, cp,
                                             iss_store__gen_path(s, cp,
                                                                 s->gen, 0))
                    / 4;
            if (limit < 2 * s->ckpt_bytes)
                limit = 2 * s->ckpt_bytes;
        }
        if ((rv = iss_store__applied_info(s, cp, &count, &bytes))
                == APR_SUCCESS
            && count > 0 && bytes >= limit
            && (rv = iss_store__mirror_refresh(s, cp)) != APR_SUCCESS)
            iss_store__note(s, LOG_WARNING, rv, "state store in %s: copying "
                            "the DBM to its mirror copy failed (%s); the log "
                            "generations it lacks are kept and the copy is "
                            "made again by the next checkpoint", s->dir,
                            iss_store__err);
    }
cleanup:
    if (cp)
        apr_pool_destroy(cp);
    s->ckpt_mine = 0;
    apr_file_unlock(s->ckpt_lock);
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(s->cmutex);
#endif
    return rv;
}

void iss_store__wal_stats(iss_store_t *s, iss_store_stats_t *st)
{
    shm_t *h = s->shm;
    apr_uint64_t lo = LOAD(h->lo), gen = LOAD(h->gen), end = LOAD(h->end);

    st->wal_generation = gen;
    st->wal_bytes = end > WAL_HDR ? end - WAL_HDR : 0;
    if (gen > lo)
        st->wal_bytes += (gen - lo) * s->ckpt_bytes;    /* about */
    st->wal_sealed = gen - lo;
    st->durable_waits = LOAD(h->waits);
    st->fsyncs = LOAD(h->syncs);
    st->fsync_usec = LOAD(h->sync_usec);
    st->checkpoints = LOAD(h->checkpoints);
}

/* Every record of the live WAL reads and checks (iss_store_verify()).
 * Under the writers' lock, with the overlay in sync. */
apr_status_t iss_store__wal_verify(iss_store_t *s, apr_pool_t *p)
{
    apr_uint64_t g;
    apr_status_t rv = APR_SUCCESS;

    for (g = s->ov_lo; g <= s->ov_gen && rv == APR_SUCCESS; g++) {
        const char *path = wal_path(s, p, g);
        apr_uint64_t off = WAL_HDR, end = s->ov_off;
        apr_finfo_t fi;
        apr_file_t *f;

        if ((rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                                APR_OS_DEFAULT, p)) != APR_SUCCESS)
            return iss_store__damaged(s, "cannot open the write-ahead log %s: "
                                      "%pm", path, &rv);
        if (!wal_header_ok(s, os_fd(f), g))
            rv = iss_store__damaged(s, "the write-ahead log %s has no valid "
                                    "header", path);
        else if (g < s->ov_gen
                 && (rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f))
                    == APR_SUCCESS)
            end = (apr_uint64_t)fi.size;
        if (rv == APR_SUCCESS && end > WAL_HDR)
            rv = read_records(s, os_fd(f), path, &off, end, NULL, NULL, p);
        apr_file_close(f);
    }
    return rv;
}
