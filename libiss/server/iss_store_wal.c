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

static apr_status_t pwrite_all(int fd, const void *buf, apr_size_t n,
                               apr_uint64_t off)
{
    const char *p = buf;

    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? APR_FROM_OS_ERROR(errno) : APR_EGENERAL;
        p += w;
        n -= (apr_size_t)w;
        off += (apr_uint64_t)w;
    }
    return APR_SUCCESS;
}

/* Read exactly @a n bytes at @a off; APR_EOF if the file is shorter. */
static apr_status_t pread_all(int fd, void *buf, apr_size_t n,
                              apr_uint64_t off)
{
    char *p = buf;

    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return APR_FROM_OS_ERROR(errno);
        if (r == 0)
            return APR_EOF;
        p += r;
        n -= (apr_size_t)r;
        off += (apr_uint64_t)r;
    }
    return APR_SUCCESS;
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

    if (s->dbm_locked)
        return APR_SUCCESS;
    rv = apr_file_lock(s->dbm_lock, exclusive ? APR_FLOCK_EXCLUSIVE
                                              : APR_FLOCK_SHARED);
    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "cannot lock %s/" DBMLOCK_NAME ": %pm",
                               s->dir, &rv);
    s->dbm_locked = exclusive ? 2 : 1;
    return APR_SUCCESS;
}

void iss_store__dbm_unlock(iss_store_t *s)
{
    if (s->dbm_locked) {
        apr_file_unlock(s->dbm_lock);
        s->dbm_locked = 0;
    }
}

/* ---- the overlay ------------------------------------------------------------ */

static void ov_reset(iss_store_t *s, apr_uint64_t epoch, apr_uint64_t lo)
{
    apr_pool_clear(s->ov_pool);
    s->ov = apr_hash_make(s->ov_pool);
    s->ov_cached = 0;
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
    }
    else if (e->cached) {
        s->ov_cached--;
    }
    return e;
}

static void ov_apply(iss_store_t *s, const char *key, apr_size_t klen,
                     const char *val, apr_size_t vlen, int del)
{
    ov_ent_t *e = ov_entry(s, key, klen);

    e->cached = 0;
    e->del = del;
    e->vlen = del ? 0 : vlen;
    e->val = NULL;
    if (!del) {
        e->val = apr_palloc(s->ov_pool, vlen + 1);
        iss_store__copy_bytes(e->val, val, vlen);
        e->val[vlen] = '\0';
    }
}

const ov_ent_t *iss_store__ov_get(iss_store_t *s, const void *key,
                                  apr_size_t klen)
{
    return apr_hash_get(s->ov, key ? key : "", (apr_ssize_t)klen);
}

/* Keep what the DBM said of @a key (@a absent: nothing), while the
 * overlay is in sync with the DBM read (under the DBM lock or the
 * writers' lock).  At most ov_cache_max keys, until the next checkpoint. */
void iss_store__ov_cache(iss_store_t *s, const void *key, apr_size_t klen,
                         const void *val, apr_size_t vlen, int absent)
{
    ov_ent_t *e;

    if (!s->ov || s->ov_cached >= s->ov_cache_max
        || apr_hash_get(s->ov, key, (apr_ssize_t)klen))
        return;
    e = ov_entry(s, key, klen);
    e->cached = 1;
    e->del = absent;
    e->vlen = absent ? 0 : vlen;
    e->val = NULL;
    if (!absent) {
        e->val = apr_palloc(s->ov_pool, vlen + 1);
        iss_store__copy_bytes(e->val, val, vlen);
        e->val[vlen] = '\0';
    }
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
        return iss_store__damaged(s, "cannot open the write-ahead log %s: "
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

/*
 * Bring the overlay up to the committed end of the WAL.  @a locked: the
 * caller holds the DBM lock (shared or exclusive) or the writers' lock,
 * so no checkpoint runs: then the overlay is rebuilt if a checkpoint
 * happened since it was built.  Without it only new records of the same
 * generation are read (NEED_LOCK otherwise).  Under omutex.
 */
apr_status_t iss_store__ov_sync(iss_store_t *s, int locked, apr_pool_t *p)
{
    apr_uint64_t epoch, lo, gen, end;
    apr_status_t rv = snapshot(s, &epoch, &lo, &gen, &end);

    if (rv != APR_SUCCESS)
        return rv;
    if (locked && s->dbm_locked == 1 && LOAD(s->shm->dbm_busy))
        return NEED_REPAIR;             /* the DBM may be half-written */
    if (epoch != s->ov_epoch || lo != s->ov_lo || gen < s->ov_gen
        || (gen == s->ov_gen && end < s->ov_off) || !s->ov) {
        if (!locked)
            return NEED_LOCK;
        ov_reset(s, epoch, lo);
    }
    if (s->ov_gen == 0 || s->ov_gen < gen) {
        if (!locked)
            return NEED_LOCK;
        if (s->ov_gen == 0 && (rv = ov_open_gen(s, lo)) != APR_SUCCESS)
            return rv;
        /* Whole older generations (truncated to their end when the next
         * one was started). */
        while (s->ov_gen < gen) {
            apr_uint64_t off = s->ov_off;

            rv = read_records(s, os_fd(s->wal), wal_path(s, p, s->ov_gen),
                              &off, 0, apply_to_ov, s, p);
            if (rv != APR_SUCCESS)
                return rv;
            if ((rv = ov_open_gen(s, s->ov_gen + 1)) != APR_SUCCESS)
                return rv;
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
    rv = pwrite_all(os_fd(f), hdr, sizeof(hdr), 0);
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

    if (pread_all(fd, hdr, sizeof(hdr), 0) != APR_SUCCESS
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

/* The WAL generations present, ascending. */
static apr_status_t wal_list(iss_store_t *s, apr_pool_t *p,
                             apr_array_header_t **gens)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_size_t n = strlen(WAL_PREFIX);
    apr_status_t rv = apr_dir_open(&d, s->dir, p);

    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "cannot read directory %s: %pm", s->dir,
                               &rv);
    *gens = apr_array_make(p, 4, sizeof(apr_uint64_t));
    while ((rv = apr_dir_read(&fi, APR_FINFO_NAME, d)) == APR_SUCCESS
           || rv == APR_INCOMPLETE) {
        const char *c;
        apr_uint64_t g = 0;

        if (!fi.name || strncmp(fi.name, WAL_PREFIX, n) != 0)
            continue;
        for (c = fi.name + n; *c >= '0' && *c <= '9' && g < APR_UINT64_MAX / 20;
             c++)
            g = g * 10 + (apr_uint64_t)(*c - '0');
        if (*c == '\0' && c > fi.name + n && g > 0)
            APR_ARRAY_PUSH(*gens, apr_uint64_t) = g;
    }
    apr_dir_close(d);
    qsort((*gens)->elts, (apr_size_t)(*gens)->nelts, sizeof(apr_uint64_t),
          cmp_gen);
    return APR_SUCCESS;
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
    int i;

    if ((rv = iss_store__dbm_lock(s, 1)) != APR_SUCCESS)
        return rv;
    if ((rv = iss_store__refresh(s, p)) != APR_SUCCESS
        || (rv = wal_list(s, p, &gens)) != APR_SUCCESS)
        goto cleanup;
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
        if (gen - lo + 1 != (apr_uint64_t)gens->nelts) {
            rv = iss_store__damaged(s, "write-ahead log generations %"
                                    APR_UINT64_T_FMT " to %" APR_UINT64_T_FMT
                                    " in %s are not all there", lo, gen,
                                    s->dir);
            goto cleanup;
        }
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
    STORE(h->epoch, LOAD(h->epoch) + 1);
    STORE(h->rot, (r | 1) + 1);
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

static apr_status_t shm_map(iss_store_t *s, apr_pool_t *p)
{
    const char *path = apr_pstrcat(p, s->dir, "/" SHM_NAME, NULL);
    struct stat st;
    void *m;
    int fd;

    if (s->shm) {
        munmap(s->shm, s->shm_size);
        s->shm = NULL;
    }
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0 || fstat(fd, &st) != 0
        || (st.st_size < SHM_BYTES && ftruncate(fd, SHM_BYTES) != 0)) {
        apr_status_t rv = APR_FROM_OS_ERROR(errno);

        if (fd >= 0)
            close(fd);
        return iss_store__fail(s, rv, "cannot open %s: %pm", path, &rv);
    }
    m = mmap(NULL, SHM_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        apr_status_t rv = APR_FROM_OS_ERROR(errno);

        return iss_store__fail(s, rv, "cannot map %s: %pm", path, &rv);
    }
    s->shm = m;
    s->shm_size = SHM_BYTES;
    s->shm_ino = st.st_ino;
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
    if (LOAD(h->dbm_busy)) {
        /* A checkpoint died while writing the DBM: recover it (the WAL
         * still holds everything the checkpoint was applying). */
        if ((rv = iss_store__dbm_lock(s, 1)) != APR_SUCCESS)
            return rv;
        rv = iss_store__refresh(s, p);
        if (rv == APR_SUCCESS) {
            STORE(h->dbm_gen, s->gen);
            STORE(h->dbm_busy, (apr_uint64_t)0);
        }
        iss_store__dbm_unlock(s);
        return rv;
    }
    if (LOAD(h->dbm_gen) != s->gen) {
        /* Another process rebuilt the DBM (recovery). */
        if ((rv = iss_store__dbm_lock(s, 1)) != APR_SUCCESS)
            return rv;
        rv = iss_store__refresh(s, p);
        if (rv == APR_SUCCESS && LOAD(h->dbm_gen) != s->gen)
            STORE(h->dbm_gen, s->gen);
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
    apr_status_t rv;

    s->ckpt_bytes = CKPT_BYTES_DEFAULT;
    if (v && *v)
        s->ckpt_bytes = (apr_uint64_t)apr_atoi64(v);
    if (d && *d)
        s->test_sync_delay = (apr_interval_time_t)apr_atoi64(d) * 1000;
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
    if (s->shm) {
        munmap(s->shm, s->shm_size);
        s->shm = NULL;
    }
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
    rv = pwrite_all(os_fd(s->wal), buf, (apr_size_t)blen + 8, off);
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
                    e = LOAD(h->end);
                    __atomic_add_fetch(&h->syncs, 1, __ATOMIC_RELAXED);
                    rv = sync_gen(s, gen);
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

static void stage_to_opset(void *baton, const char *key, apr_size_t klen,
                           const char *val, apr_size_t vlen, int del)
{
    iss_store__opset_stage(baton, key, klen, val, vlen, del);
}

/*
 * Apply the overlay to the DBM (one journal commit: see COMMIT) and start
 * a new WAL generation.  Without @a force only when the live WAL has
 * passed the checkpoint size.  Under the writers' lock and omutex, with
 * the overlay in sync.  A checkpoint that fails leaves the WAL as it is
 * (nothing is lost; the next one tries again).
 */
apr_status_t iss_store__checkpoint(iss_store_t *s, int force, apr_pool_t *p)
{
    shm_t *h = s->shm;
    apr_uint64_t live, g, old_lo, r;
    apr_hash_index_t *hi;
    opset_t *ops;
    apr_status_t rv;

    live = (s->ov_gen - s->ov_lo) * s->ckpt_bytes + s->ov_off - WAL_HDR;
    if (!force && (live < s->ckpt_bytes || s->ov_off < s->ckpt_retry))
        return APR_SUCCESS;
    if (s->ov_lo == s->ov_gen && s->ov_off == WAL_HDR)
        return APR_SUCCESS;             /* nothing to apply */
    if ((rv = iss_store__dbm_lock(s, 1)) != APR_SUCCESS)
        return rv;
    ops = iss_store__opset_make(p);
    for (hi = apr_hash_first(p, s->ov); hi; hi = apr_hash_next(hi)) {
        const void *k;
        apr_ssize_t kl;
        void *v;
        const ov_ent_t *e;

        apr_hash_this(hi, &k, &kl, &v);
        e = v;
        if (!e->cached)
            stage_to_opset(ops, k, (apr_size_t)kl, e->val, e->vlen, e->del);
    }
    STORE(h->dbm_busy, (apr_uint64_t)1);
    rv = iss_store__commit(s, ops, p);
    if (rv == APR_SUCCESS
        || (!iss_store__file_exists(iss_store__fpath(s, p, JOURNAL_NAME), p)
            && !iss_store__file_exists(iss_store__fpath(s, p, JOURNAL_MIRROR),
                                       p)))
        STORE(h->dbm_busy, (apr_uint64_t)0);
    if (rv != APR_SUCCESS) {
        iss_store__note(s, LOG_WARNING, rv, "state store in %s: applying "
                        "the write-ahead log to the DBM failed (%s); the "
                        "log keeps every change and it is tried again later",
                        s->dir, iss_store__err);
        s->ckpt_retry = s->ov_off + s->ckpt_bytes / 2;
        STORE(h->dbm_gen, s->gen);     /* the undo may have rebuilt it */
        goto cleanup;
    }
    g = s->ov_gen + 1;
    old_lo = s->ov_lo;
    if ((rv = wal_create(s, g, p)) != APR_SUCCESS)
        goto cleanup;                   /* the DBM holds it all: harmless */
#if APR_HAS_THREADS
    apr_thread_mutex_lock(s->smutex);
#endif
    if ((rv = apr_file_lock(s->sync_lock, APR_FLOCK_EXCLUSIVE))
        != APR_SUCCESS) {
#if APR_HAS_THREADS
        apr_thread_mutex_unlock(s->smutex);
#endif
        rv = iss_store__fail(s, rv, "cannot lock %s/" SYNCLOCK_NAME ": %pm",
                             s->dir, &rv);
        goto cleanup;
    }
    r = LOAD(h->rot);
    STORE(h->rot, r + 1);
    STORE(h->lo, g);
    STORE(h->gen, g);
    STORE(h->end, (apr_uint64_t)WAL_HDR);
    STORE(h->synced, (apr_uint64_t)WAL_HDR);
    STORE(h->dbm_gen, s->gen);
    STORE(h->rot, r + 2);
    seq_wake(s);
    apr_file_unlock(s->sync_lock);
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(s->smutex);
#endif
    __atomic_add_fetch(&h->checkpoints, 1, __ATOMIC_RELAXED);
    for (; old_lo < g; old_lo++)
        apr_file_remove(wal_path(s, p, old_lo), p);
    s->ckpt_retry = 0;
    ov_reset(s, LOAD(h->epoch), g);
    rv = ov_open_gen(s, g);
cleanup:
    iss_store__dbm_unlock(s);
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
    st->durable_waits = LOAD(h->waits);
    st->fsyncs = LOAD(h->syncs);
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
