/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "iss_sync_log.h"
#include "iss_bytes.h"
#include "iss_chunkidx.h"

#include <apr_general.h>
#include <apr_lib.h>
#include <apr_strings.h>

#include <zlib.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define K_SEQ      "log/seq"
#define K_FIRST    "log/first"
#define K_PENDING  "log/pending"
#define ENTRY_MAGIC  "ISL1 "
#define INTENT_MAGIC "ISI1 "
/* After the owner's pid and start time in an intent: the intent is
 * claimed (iss_store_claim()) by its writer until it is settled. */
#define OWNER_CLAIMED "claimed"
/* Entries compacted per append: bounds the time any write spends on it. */
#define COMPACT_PER_APPEND 64

/* ---- keys and numbers ---------------------------------------------------- */

static const char *entry_key(apr_uint64_t seq, apr_pool_t *p)
{
    return apr_psprintf(p, "log/e/%016" APR_UINT64_T_HEX_FMT, seq);
}

static const char *time_key(apr_uint64_t seq, apr_pool_t *p)
{
    return apr_psprintf(p, "log/t/%016" APR_UINT64_T_HEX_FMT, seq);
}

static const char *intent_key(const char *id, apr_pool_t *p)
{
    return apr_pstrcat(p, "intent/", id, NULL);
}

static const char *u64_str(apr_uint64_t v, apr_pool_t *p)
{
    return apr_psprintf(p, "%" APR_UINT64_T_FMT, v);
}

static void txn_put_str(iss_store_txn_t *txn, const char *key, const char *v)
{
    iss_store_txn_put(txn, key, strlen(key), v, strlen(v));
}

/* ---- the oldest entry kept (log/first) -----------------------------------
 * "<first>" (as versions before this one wrote it; absent: 1), or
 * "<first> <time> <tfree>": <time> is no later than entry <first>'s
 * (0: not known), so that compaction by age reads no entry while that
 * bound is younger than the retention; and entries below <tfree> may
 * have a log/t/<n> record beside them (the time alone, which versions
 * before this one wrote with each entry), removed with them; entries
 * from <tfree> on have none.
 *
 * Why a bound and not the time itself: entries are appended in the
 * order of their times, so the time of an entry removed (by count or by
 * age) bounds the next one's from below.  Keeping it spares a write that
 * removes the oldest entry by count (every write of a log at its count
 * limit) a DBM read of the next one (22 us of CPU a write in a store of
 * 220,000 keys, bench/README.md).  The next one is read only when the
 * bound is older than the retention's age.  Had the clock gone back
 * between two appends, an entry could be older than the bound says: it
 * then outlives the retention's age by at most that step. */

typedef struct first_t {
    apr_uint64_t first;
    apr_uint64_t time;
    apr_uint64_t tfree;         /* 0: an old record (no bound known) */
} first_t;

static apr_status_t first_get(iss_store_txn_t *txn, first_t *f, apr_pool_t *p)
{
    void *val;
    apr_size_t vlen;
    const char *v, *s1, *s2;
    apr_status_t rv = iss_store_txn_get(txn, K_FIRST, strlen(K_FIRST), &val,
                                        &vlen, p);

    f->first = 1;
    f->time = 0;
    f->tfree = 0;
    if (rv == APR_NOTFOUND) {
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    v = val;
    if (!(s1 = memchr(v, ' ', vlen))) {
        return iss_sync_parse_u64(v, vlen, &f->first) == APR_SUCCESS
               ? APR_SUCCESS : ISS_STORE_EDAMAGED;
    }
    if (!(s2 = memchr(s1 + 1, ' ', vlen - (apr_size_t)(s1 + 1 - v)))
        || iss_sync_parse_u64(v, (apr_size_t)(s1 - v), &f->first)
        || iss_sync_parse_u64(s1 + 1, (apr_size_t)(s2 - s1 - 1), &f->time)
        || iss_sync_parse_u64(s2 + 1, vlen - (apr_size_t)(s2 + 1 - v),
                              &f->tfree)
        || f->tfree == 0) {
        return ISS_STORE_EDAMAGED;
    }
    return APR_SUCCESS;
}

static void first_put(iss_store_txn_t *txn, const first_t *f, apr_pool_t *p)
{
    txn_put_str(txn, K_FIRST, apr_psprintf(p, "%" APR_UINT64_T_FMT " %"
                                           APR_UINT64_T_FMT " %"
                                           APR_UINT64_T_FMT, f->first,
                                           f->time, f->tfree));
}

static apr_status_t txn_get_first(iss_store_txn_t *txn, apr_uint64_t *first,
                                  apr_pool_t *p)
{
    first_t f;
    apr_status_t rv = first_get(txn, &f, p);

    *first = f.first;
    return rv;
}

/* ---- the log's position and identity (log/seq) ---------------------------
 * log/seq holds "<last>" or "<last> <log id>".  The log id names the
 * numbering: tokens carry it, and a token of another id is refused.  A
 * log made before log ids has none and goes by the store's id.  When
 * log/seq is absent (a new store, or one that lost the record: a damaged
 * DBM record dropped by recovery, a truncated DBM file), the log takes a
 * new random id with the number it continues from, so no token handed
 * out before the loss is ever taken for a position of the new numbering
 * (issue 16 item 5).  Both are one record: they are lost together. */

typedef struct seq_t {
    apr_uint64_t last;
    const char *id;             /* NULL: the store's id */
    int present;                /* log/seq exists */
} seq_t;

static int log_id_valid(const char *id, apr_size_t len)
{
    apr_size_t i;

    if (len == 0 || len > 64) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!apr_isxdigit(id[i]) && id[i] != '-') {
            return 0;
        }
    }
    return 1;
}

static apr_status_t seq_get(iss_store_txn_t *txn, seq_t *q, apr_pool_t *p)
{
    void *val;
    apr_size_t vlen, nlen;
    const char *sp;
    apr_status_t rv = iss_store_txn_get(txn, K_SEQ, strlen(K_SEQ), &val,
                                        &vlen, p);

    q->last = 0;
    q->id = NULL;
    q->present = 0;
    if (rv == APR_NOTFOUND) {
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    sp = memchr(val, ' ', vlen);
    nlen = sp ? (apr_size_t)(sp - (const char *)val) : vlen;
    if (iss_sync_parse_u64(val, nlen, &q->last) != APR_SUCCESS
        || (sp && !log_id_valid(sp + 1, vlen - nlen - 1))) {
        return ISS_STORE_EDAMAGED;
    }
    if (sp) {
        q->id = apr_pstrmemdup(p, sp + 1, vlen - nlen - 1);
    }
    q->present = 1;
    return APR_SUCCESS;
}

static void seq_put(iss_store_txn_t *txn, const seq_t *q, apr_pool_t *p)
{
    txn_put_str(txn, K_SEQ, q->id ? apr_psprintf(p, "%" APR_UINT64_T_FMT
                                                 " %s", q->last, q->id)
                                  : u64_str(q->last, p));
}

static void hint_forget(iss_store_txn_t *txn);

/* A new numbering for a log without log/seq: a random id, and the number
 * before the oldest entry kept (log/first), staged in @a txn. */
static apr_status_t seq_mint(iss_store_txn_t *txn, seq_t *q, apr_pool_t *p)
{
    unsigned char rnd[16];
    char h[33];
    apr_uint64_t first;
    apr_status_t rv;

    if ((rv = apr_generate_random_bytes(rnd, sizeof(rnd))) != APR_SUCCESS
        || (rv = txn_get_first(txn, &first, p)) != APR_SUCCESS) {
        return rv;
    }
    iss_hex_encode(h, rnd, sizeof(rnd));
    q->id = apr_psprintf(p, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12,
                         h + 16, h + 20);
    q->last = first ? first - 1 : 0;
    q->present = 1;
    seq_put(txn, q, p);
    /* The hint may name a position of the old numbering, possibly past
     * the new one's: lazy begins go through the log until a commit of
     * the new numbering sets it again. */
    hint_forget(txn);
    return APR_SUCCESS;
}

/* ---- owners (crash detection) ------------------------------------------- */

/* The start time of process @a pid in clock ticks since boot (field 22 of
 * /proc/PID/stat), or 0 where there is no /proc. */
static apr_uint64_t proc_start(long pid)
{
    char path[64], buf[1024], *p;
    FILE *f;
    size_t n;
    int field;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if (!(f = fopen(path, "r"))) {
        return 0;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) is in parentheses and may hold spaces. */
    if (!(p = strrchr(buf, ')'))) {
        return 0;
    }
    for (field = 2; field < 22 && p; field++) {
        p = strchr(p + 1, ' ');
    }
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* What a write's intent takes from its process, kept so that a write
 * makes no system call for it: the owner (pid and start time, read from
 * /proc once) and random bytes for intent ids (one
 * apr_generate_random_bytes() for RND_IDS ids, in a buffer per thread).
 * A fork forgets both in the child (pthread_atfork(), registered before
 * anything is kept): the child is another owner, and must not hand out
 * the ids its parent will. */
#define RND_IDS 32

static struct {
    long pid;                   /* 0: not known in this process */
    apr_uint64_t start;
} self_owner;

static _Thread_local struct {
    unsigned char b[8 * RND_IDS];
    apr_size_t left;            /* unused bytes at the end of b */
} rnd_pool;

static pthread_once_t kept_once = PTHREAD_ONCE_INIT;

static void kept_forget(void)
{
    /* In the child, whose only thread is the one that forked. */
    __atomic_store_n(&self_owner.pid, 0, __ATOMIC_RELEASE);
    rnd_pool.left = 0;
}

static void kept_init(void)
{
    (void)pthread_atfork(NULL, NULL, kept_forget);
}

/* @a n (at most 8) random bytes for an intent id. */
static apr_status_t intent_random(unsigned char *out, apr_size_t n)
{
    apr_status_t rv;

    pthread_once(&kept_once, kept_init);
    if (rnd_pool.left < n) {
        if ((rv = apr_generate_random_bytes(rnd_pool.b, sizeof(rnd_pool.b)))
            != APR_SUCCESS) {
            return rv;
        }
        rnd_pool.left = sizeof(rnd_pool.b);
    }
    rnd_pool.left -= n;
    memcpy(out, rnd_pool.b + rnd_pool.left, n);
    return APR_SUCCESS;
}

const char *iss_sync_log_owner_self(apr_pool_t *pool)
{
    long pid;

    pthread_once(&kept_once, kept_init);
    if ((pid = __atomic_load_n(&self_owner.pid, __ATOMIC_ACQUIRE)) == 0) {
        /* Threads that race here write the same values. */
        pid = (long)getpid();
        __atomic_store_n(&self_owner.start, proc_start(pid), __ATOMIC_RELAXED);
        __atomic_store_n(&self_owner.pid, pid, __ATOMIC_RELEASE);
    }
    return apr_psprintf(pool, "%ld %" APR_UINT64_T_FMT, pid,
                        __atomic_load_n(&self_owner.start, __ATOMIC_RELAXED));
}

int iss_sync_log_owner_alive(const char *owner)
{
    char *end;
    long pid = strtol(owner, &end, 10);
    apr_uint64_t start;

    if (end == owner || *end != ' ' || pid <= 0) {
        return 0;                      /* unreadable: treat as dead */
    }
    start = strtoull(end + 1, NULL, 10);
    if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
        return 0;
    }
    /* Same pid: the same process only if it started at the same time. */
    return start == 0 || proc_start(pid) == start;
}

/* ---- pending list -------------------------------------------------------- */

static apr_status_t pending_get(iss_store_txn_t *txn, const char **list,
                                apr_pool_t *p)
{
    void *val;
    apr_size_t vlen;
    apr_status_t rv = iss_store_txn_get(txn, K_PENDING, strlen(K_PENDING),
                                        &val, &vlen, p);

    if (rv == APR_NOTFOUND) {
        *list = "";
        return APR_SUCCESS;
    }
    *list = val;
    return rv;
}

/* @a list without the word @a id. */
static const char *pending_without(const char *list, const char *id,
                                   apr_pool_t *p)
{
    apr_array_header_t *keep = apr_array_make(p, 4, sizeof(char *));
    char *copy = apr_pstrdup(p, list), *last, *w;

    for (w = apr_strtok(copy, " ", &last); w; w = apr_strtok(NULL, " ", &last)) {
        if (strcmp(w, id) != 0) {
            APR_ARRAY_PUSH(keep, char *) = w;
        }
    }
    return apr_array_pstrcat(p, keep, ' ');
}

/* Whether @a list holds the word @a id. */
static int pending_has(const char *list, const char *id, apr_pool_t *p)
{
    char *copy = apr_pstrdup(p, list), *last, *w;

    for (w = apr_strtok(copy, " ", &last); w; w = apr_strtok(NULL, " ", &last)) {
        if (strcmp(w, id) == 0) {
            return 1;
        }
    }
    return 0;
}

static void pending_put(iss_store_txn_t *txn, const char *list)
{
    if (*list) {
        txn_put_str(txn, K_PENDING, list);
    }
    else {
        iss_store_txn_delete(txn, K_PENDING, strlen(K_PENDING));
    }
}

/* ---- intents in the store's shared area ---------------------------------
 * With ISSStateSync On (a lazy begin) the intent of a write needs to
 * outlive its process, not the machine (a restart of the machine calls
 * for a rescan, iss_store_rescan_due()).  So it is a slot of the store's
 * shared area (iss_store_area()) rather than intent/<id> and log/pending
 * records: a begin takes no lock, appends nothing to the log and leaves
 * no key for a checkpoint (design.md 4.1, "An intent in a slot").
 *
 * The area: a header (hint, map) and up to SLOTS_MAX slots of SLOT_SIZE
 * bytes.
 *   hint   1 + the number of the log's last entry, as known right after a
 *          commit under the writers' lock (0: not known).  Written only
 *          under that lock, after commits (iss_store_txn_after()); a
 *          process killed before writing it leaves it behind, never
 *          ahead: a begin that takes its `since` from it looks at more
 *          entries, never fewer.
 *   map    a bit per slot, set once the slot is published, cleared
 *          before it is freed: readers visit only the slots it names.
 *   owner  the intent's id (its 16 hex digits as a number), 0: free.
 *          Taken with a compare-and-swap.
 *   holder the writer's handle's own claim (iss_store_claim_own(): held
 *          while the handle is open and its process runs; no system
 *          call per write).
 *   gone   set by the writer when its settlement failed (its process
 *          lives on).  A published slot that is gone, or whose holder's
 *          claim nobody holds, is the intent of a write that ended
 *          without its settlement: recovery logs it.
 *   ready  1 once holder, len, crc and data are written (release); the
 *          writer clears it before freeing the slot.
 *   data   the intent record (INTENT_MAGIC owner, then the changes),
 *          crc: CRC-32 of owner, holder, len and data (a reader that
 *          raced a reuse of the slot sees it fail, and reads again or
 *          assumes the worst).
 * An intent too large for a slot, or found no free slot, is recorded in
 * the log as before (so are durable begins: ISSStateSync Full). */

static apr_uint64_t intent_claim(const char *id);

#define AREA_HINT_BYTES 64
#define SLOT_SIZE       1024

typedef struct slot_t {
    apr_uint64_t owner;
    apr_uint64_t holder;
    apr_uint32_t ready;
    apr_uint32_t len;
    apr_uint32_t crc;
    apr_uint32_t gone;
    char data[SLOT_SIZE - 32];
} slot_t;

#define SLOTS_MAX 256             /* bits of the map */

typedef struct slots_t {
    apr_uint64_t *hint;
    apr_uint64_t *map;          /* SLOTS_MAX / 64 words: slots published */
    slot_t *slot;
    apr_size_t n;
} slots_t;

#define ALOAD(x)     __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define ASTORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

static int slots_from(slots_t *sl, void *base, apr_size_t size)
{
    if (size < AREA_HINT_BYTES + SLOT_SIZE) {
        return 0;
    }
    sl->hint = base;
    sl->map = sl->hint + 1;
    sl->slot = (slot_t *)((char *)base + AREA_HINT_BYTES);
    sl->n = (size - AREA_HINT_BYTES) / SLOT_SIZE;
    if (sl->n > SLOTS_MAX) {
        sl->n = SLOTS_MAX;
    }
    return 1;
}

/* The slots without a lock (0: none to use now). */
static int slots_open(iss_store_t *store, slots_t *sl)
{
    void *base;
    apr_size_t size;

    return iss_store_area(store, &base, &size) == APR_SUCCESS
           && slots_from(sl, base, size);
}

/* The slots inside a transaction (made for this boot if need be). */
static int slots_txn(iss_store_txn_t *txn, slots_t *sl)
{
    void *base;
    apr_size_t size;

    return iss_store_txn_area(txn, &base, &size) == APR_SUCCESS
           && slots_from(sl, base, size);
}

/* Under the writers' lock (inside a transaction). */
static void hint_forget(iss_store_txn_t *txn)
{
    slots_t sl;

    if (slots_txn(txn, &sl)) {
        ASTORE(*sl.hint, 0);
    }
}

static apr_uint32_t slot_crc(apr_uint64_t owner, apr_uint64_t holder,
                             const char *data, apr_uint32_t len)
{
    unsigned char h[20];
    uLong c;

    iss_be64_put(h, owner);
    iss_be64_put(h + 8, holder);
    iss_be32_put(h + 16, len);
    c = crc32(crc32(0L, Z_NULL, 0), h, sizeof(h));
    return (apr_uint32_t)crc32(c, (const Bytef *)data, len);
}

/* A consistent copy of slot @a t's intent (in @a p): 1 with *owner, *val,
 * *vlen; 0 if the slot is free or not yet published; -1 if it changed
 * while read (being freed or reused). */
static int slot_read(const slot_t *t, apr_uint64_t *owner,
                     apr_uint64_t *holder, char **val, apr_size_t *vlen,
                     apr_pool_t *p)
{
    apr_uint64_t o = ALOAD(t->owner), h;
    apr_uint32_t len;
    char *v;

    if (o == 0 || !ALOAD(t->ready)) {
        return 0;
    }
    h = ALOAD(t->holder);
    len = ALOAD(t->len);
    if (len > sizeof(t->data)) {
        return -1;
    }
    v = apr_palloc(p, (apr_size_t)len + 1);
    memcpy(v, t->data, len);
    v[len] = '\0';
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (ALOAD(t->crc) != slot_crc(o, h, v, len) || ALOAD(t->owner) != o
        || !ALOAD(t->ready)) {
        return -1;
    }
    *owner = o;
    if (holder) {
        *holder = h;
    }
    *val = v;
    *vlen = len;
    return 1;
}

/* Whether the write of a slot read with @a holder ended without its
 * settlement: the writer gave it up, or its handle (process) is gone.  A
 * claim that cannot be asked about counts as held. */
static int slot_abandoned(iss_store_t *store, const slot_t *t,
                          apr_uint64_t holder)
{
    return ALOAD(t->gone) || iss_store_claim_held(store, holder) == 0;
}

/* Slot of intent number @a claim, or NULL. */
static slot_t *slot_find(const slots_t *sl, apr_uint64_t claim)
{
    apr_size_t i, k = (apr_size_t)(claim % sl->n);

    for (i = 0; i < sl->n; i++, k = k + 1 == sl->n ? 0 : k + 1) {
        if (ALOAD(sl->slot[k].owner) == claim) {
            return &sl->slot[k];
        }
    }
    return NULL;
}

/* Call @a fn for each slot the map names, until it returns non-zero. */
static int slots_each(const slots_t *sl, int (*fn)(void *b, slot_t *t),
                      void *b)
{
    apr_size_t w;

    for (w = 0; w * 64 < sl->n; w++) {
        apr_uint64_t bits = ALOAD(sl->map[w]);

        while (bits) {
            int bit = __builtin_ctzll(bits);
            apr_size_t k = w * 64 + (apr_size_t)bit;

            bits &= bits - 1;
            if (k < sl->n && fn(b, &sl->slot[k])) {
                return 1;
            }
        }
    }
    return 0;
}

static void slot_free(const slots_t *sl, slot_t *t, apr_uint64_t claim)
{
    apr_uint64_t o = claim;
    apr_size_t k = (apr_size_t)(t - sl->slot);

    if (ALOAD(t->owner) != claim) {
        return;
    }
    __atomic_fetch_and(&sl->map[k / 64], ~((apr_uint64_t)1 << (k % 64)),
                       __ATOMIC_ACQ_REL);
    ASTORE(t->ready, 0);
    __atomic_compare_exchange_n(&t->owner, &o, 0, 0, __ATOMIC_ACQ_REL,
                                __ATOMIC_ACQUIRE);
}

/* Publish intent @a value of claim @a claim; *last from the hint.
 * APR_EAGAIN: no slot (too large, none free, no hint yet). */
static apr_status_t slot_begin(iss_store_t *store, apr_uint64_t claim,
                               const char *value, apr_size_t vlen,
                               apr_uint64_t *last)
{
    slots_t sl;
    apr_uint64_t hint, holder;
    apr_size_t i, k;

    if (!slots_open(store, &sl) || vlen > sizeof(sl.slot[0].data)
        || (hint = ALOAD(*sl.hint)) == 0
        || (holder = iss_store_claim_own(store)) == 0) {
        return APR_EAGAIN;
    }
    for (i = 0, k = (apr_size_t)(claim % sl.n); i < sl.n;
         i++, k = k + 1 == sl.n ? 0 : k + 1) {
        slot_t *t = &sl.slot[k];
        apr_uint64_t free_ = 0;

        if (ALOAD(t->owner) == 0
            && __atomic_compare_exchange_n(&t->owner, &free_, claim, 0,
                                           __ATOMIC_ACQ_REL,
                                           __ATOMIC_ACQUIRE)) {
            memcpy(t->data, value, vlen);
            ASTORE(t->holder, holder);
            ASTORE(t->gone, 0);
            ASTORE(t->len, (apr_uint32_t)vlen);
            ASTORE(t->crc, slot_crc(claim, holder, value,
                                    (apr_uint32_t)vlen));
            ASTORE(t->ready, 1);
            __atomic_fetch_or(&sl.map[k / 64], (apr_uint64_t)1 << (k % 64),
                              __ATOMIC_ACQ_REL);
            *last = hint - 1;
            return APR_SUCCESS;
        }
    }
    return APR_EAGAIN;
}

/* What a transaction does once committed (iss_store_txn_after()): free
 * the slots it settled and note the log's last entry. */
typedef struct after_t {
    slots_t sl;
    int have;                   /* sl is set */
    apr_uint64_t hint;          /* 0: leave it */
    apr_array_header_t *free;   /* slot_t * */
    apr_array_header_t *claims; /* apr_uint64_t, beside free */
} after_t;

static void after_commit(void *baton)
{
    after_t *a = baton;
    int i;

    if (!a->have) {
        return;
    }
    for (i = 0; a->free && i < a->free->nelts; i++) {
        slot_free(&a->sl, APR_ARRAY_IDX(a->free, i, slot_t *),
                  APR_ARRAY_IDX(a->claims, i, apr_uint64_t));
    }
    if (a->hint) {
        ASTORE(*a->sl.hint, a->hint);
    }
}

static after_t *after_make(iss_store_txn_t *txn, apr_pool_t *p)
{
    after_t *a = apr_pcalloc(p, sizeof(*a));

    a->have = slots_txn(txn, &a->sl);
    iss_store_txn_after(txn, after_commit, a);
    return a;
}

static void after_free(after_t *a, slot_t *t, apr_uint64_t claim,
                       apr_pool_t *p)
{
    if (!a->free) {
        a->free = apr_array_make(p, 2, sizeof(slot_t *));
        a->claims = apr_array_make(p, 2, sizeof(apr_uint64_t));
    }
    APR_ARRAY_PUSH(a->free, slot_t *) = t;
    APR_ARRAY_PUSH(a->claims, apr_uint64_t) = claim;
}

/* ---- begin ----------------------------------------------------------------- */

typedef struct begin_ctx {
    const char *id;
    const char *value;
    apr_size_t vlen;
    apr_uint64_t last;
    apr_pool_t *pool;
} begin_ctx;

static apr_status_t begin_txn(void *baton, iss_store_txn_t *txn)
{
    begin_ctx *c = baton;
    const char *key = intent_key(c->id, c->pool), *list;
    apr_status_t rv;

    seq_t q;

    if ((rv = seq_get(txn, &q, c->pool)) != APR_SUCCESS
        || (rv = pending_get(txn, &list, c->pool)) != APR_SUCCESS) {
        return rv;
    }
    if (!q.present && (rv = seq_mint(txn, &q, c->pool)) != APR_SUCCESS) {
        return rv;
    }
    c->last = q.last;
    /* Lazy begins after this one can take a slot (the area is made for
     * this boot here, under the lock) and their `since` from the hint. */
    after_make(txn, c->pool)->hint = q.last + 1;
    iss_store_txn_put(txn, key, strlen(key), c->value, c->vlen);
    pending_put(txn, *list ? apr_pstrcat(c->pool, list, " ", c->id, NULL)
                           : c->id);
    return APR_SUCCESS;
}

apr_status_t iss_sync_log_begin(iss_store_t *store, const char *method,
                                const apr_array_header_t *changes,
                                const char **id, apr_pool_t *pool)
{
    apr_uint64_t last;

    return iss_sync_log_begin_at(store, method, changes, 0, id, &last, pool);
}

/* The claim that keeps intent @a id alive (iss_store_claim()): its
 * random bits.  0 for an id that is not 16 hex digits. */
static apr_uint64_t intent_claim(const char *id)
{
    apr_uint64_t n = 0;
    int i;

    for (i = 0; i < 16; i++) {
        int d = apr_isdigit(id[i]) ? id[i] - '0'
                : (id[i] >= 'a' && id[i] <= 'f') ? id[i] - 'a' + 10 : -1;

        if (d < 0) {
            return 0;
        }
        n = n << 4 | (apr_uint64_t)d;
    }
    return id[16] == '\0' ? n : 0;
}

apr_status_t iss_sync_log_begin_at(iss_store_t *store, const char *method,
                                   const apr_array_header_t *changes,
                                   int flags, const char **id,
                                   apr_uint64_t *last, apr_pool_t *pool)
{
    unsigned char rnd[8];
    char hex[17], *enc;
    apr_size_t elen;
    begin_ctx c;
    apr_status_t rv;
    int tries, claimed = 0;

    /* Lazy: a slot of the shared area, if one is free and the intent
     * fits (no lock, nothing appended to the log, no claim of its own:
     * the slot names the handle's claim). */
    if (flags & ISS_STORE_LAZY) {
        if ((rv = intent_random(rnd, sizeof(rnd))) != APR_SUCCESS) {
            return rv;
        }
        iss_hex_encode(hex, rnd, sizeof(rnd));
        if (intent_claim(hex) != 0) {
            iss_change_encode(method, changes, &enc, &elen, pool);
            c.value = apr_pstrcat(pool, INTENT_MAGIC,
                                  iss_sync_log_owner_self(pool), "\n",
                                  NULL);
            c.vlen = strlen(c.value);
            c.value = apr_pstrcat(pool, c.value,
                                  apr_pstrmemdup(pool, enc, elen), NULL);
            c.vlen += elen;
            if (slot_begin(store, intent_claim(hex), c.value, c.vlen, last)
                == APR_SUCCESS) {
                *id = apr_pstrdup(pool, hex);
                return APR_SUCCESS;
            }
        }
    }
    /* In the log, the intent is claimed until it is settled: recovery
     * takes an intent whose claim nobody holds for one whose write is
     * over, even in a process that lives on (a settlement that failed). */
    for (tries = 0; tries < 4; tries++) {
        if ((rv = intent_random(rnd, sizeof(rnd))) != APR_SUCCESS) {
            return rv;
        }
        iss_hex_encode(hex, rnd, sizeof(rnd));
        if (intent_claim(hex) == 0) {
            continue;
        }
        rv = iss_store_claim(store, intent_claim(hex));
        if (rv == APR_SUCCESS) {
            claimed = 1;
            break;
        }
        if (rv == APR_ENOTIMPL) {
            break;                 /* no claims here: the owner's pid alone */
        }
        if (rv != APR_EBUSY) {
            return rv;
        }
    }
    if (!claimed && rv != APR_ENOTIMPL) {
        return rv == APR_SUCCESS ? APR_EGENERAL : rv;
    }
    iss_change_encode(method, changes, &enc, &elen, pool);
    c.id = apr_pstrdup(pool, hex);
    c.value = apr_pstrcat(pool, INTENT_MAGIC, iss_sync_log_owner_self(pool),
                          claimed ? " " OWNER_CLAIMED : "", "\n", NULL);
    c.vlen = strlen(c.value);
    c.value = apr_pstrcat(pool, c.value, apr_pstrmemdup(pool, enc, elen), NULL);
    c.vlen += elen;
    c.last = 0;
    c.pool = pool;
    /* Durable before the write touches anything: now, or (lazy) when the
     * caller calls iss_store_sync(). */
    if ((rv = iss_store_txn_ex(store, begin_txn, &c, flags, pool))
        == APR_SUCCESS) {
        *id = c.id;
        *last = c.last;
    }
    else if (claimed) {
        iss_store_claim_release(store, intent_claim(c.id));
    }
    return rv;
}

/* ---- append and compaction (inside a transaction) ------------------------ */

/* The head of an entry's record ("ISL1 <time>\n"): *t its time, *nl
 * its newline (the iss_change encoding follows).  ISS_STORE_EDAMAGED if
 * malformed. */
static apr_status_t entry_head(const void *val, apr_size_t vlen,
                               apr_uint64_t *t, const char **nl)
{
    apr_size_t mlen = sizeof(ENTRY_MAGIC) - 1;

    if (vlen < mlen || memcmp(val, ENTRY_MAGIC, mlen) != 0
        || !(*nl = memchr(val, '\n', vlen))
        || iss_sync_parse_u64((const char *)val + mlen,
                              (apr_size_t)(*nl - (const char *)val) - mlen,
                              t)) {
        return ISS_STORE_EDAMAGED;
    }
    return APR_SUCCESS;
}

/* The time in the head of entry @a seq. */
static apr_status_t entry_time(iss_store_txn_t *txn, apr_uint64_t seq,
                               apr_uint64_t *t, apr_pool_t *p)
{
    const char *key = entry_key(seq, p), *nl;
    apr_size_t vlen;
    void *val;
    apr_status_t rv = iss_store_txn_get(txn, key, strlen(key), &val, &vlen,
                                        p);

    return rv != APR_SUCCESS ? rv : entry_head(val, vlen, t, &nl);
}

/* Remove entries past the retention, at most @a max_remove (0: no
 * bound).  @a last: the newest entry; @a tfree: where entries without a
 * log/t record begin, for a log/first of an older version. */
static apr_status_t compact_txn(iss_store_txn_t *txn,
                                const iss_sync_retention_t *ret,
                                apr_uint64_t last, apr_uint64_t tfree,
                                apr_uint64_t max_remove,
                                apr_uint64_t *removed, apr_pool_t *p)
{
    apr_uint64_t n = 0;
    apr_time_t now = apr_time_now();
    first_t f;
    int dirty, exact = 0;       /* f.time read from entry f.first here */
    apr_status_t rv;

    if ((rv = first_get(txn, &f, p)) != APR_SUCCESS) {
        return rv;
    }
    dirty = f.tfree == 0;
    if (dirty) {
        f.tfree = tfree;
    }
    while (f.first <= last && (max_remove == 0 || n < max_remove)) {
        int drop = ret->max_count && last - f.first + 1 > ret->max_count;

        if (!drop && ret->max_age > 0) {
            if (f.time == 0
                || (!exact && now - (apr_time_t)f.time > ret->max_age)) {
                /* No bound, or one too old to tell: the entry's own. */
                exact = 1;
                rv = entry_time(txn, f.first, &f.time, p);
                if (rv == APR_NOTFOUND || rv == ISS_STORE_EDAMAGED) {
                    f.time = 0;         /* nothing to keep: drop it (a
                                         * token before it is expired) */
                }
                else if (rv != APR_SUCCESS) {
                    return rv;
                }
                dirty = 1;
            }
            drop = f.time == 0 || now - (apr_time_t)f.time > ret->max_age;
        }
        if (!drop) {
            break;
        }
        {
            const char *ek = entry_key(f.first, p);

            iss_store_txn_delete(txn, ek, strlen(ek));
            if (f.first < f.tfree) {
                const char *tk = time_key(f.first, p);

                iss_store_txn_delete(txn, tk, strlen(tk));
            }
        }
        f.first++;
        exact = 0;              /* f.time: a bound for the next one */
        n++;
        dirty = 1;
    }
    if (dirty) {
        first_put(txn, &f, p);
    }
    if (removed) {
        *removed = n;
    }
    return APR_SUCCESS;
}

/* Append one entry; *seq gets its number. */
static apr_status_t append_txn(iss_store_txn_t *txn, const char *method,
                               const apr_array_header_t *changes,
                               const iss_sync_retention_t *ret,
                               apr_uint64_t *seq, apr_pool_t *p)
{
    apr_uint64_t last;
    apr_time_t now = apr_time_now();
    char *enc;
    apr_size_t elen;
    const char *head, *ek;
    char *val;
    apr_status_t rv;

    seq_t q;

    if ((rv = seq_get(txn, &q, p)) != APR_SUCCESS
        || (!q.present && (rv = seq_mint(txn, &q, p)) != APR_SUCCESS)) {
        return rv;
    }
    last = ++q.last;
    iss_change_encode(method, changes, &enc, &elen, p);
    head = apr_psprintf(p, ENTRY_MAGIC "%" APR_INT64_T_FMT "\n",
                        (apr_int64_t)now);
    val = apr_palloc(p, strlen(head) + elen);
    memcpy(val, head, strlen(head));
    memcpy(val + strlen(head), enc, elen);
    ek = entry_key(last, p);
    iss_store_txn_put(txn, ek, strlen(ek), val, strlen(head) + elen);
    seq_put(txn, &q, p);
    *seq = last;
    /* Entries before this one may have a log/t record (an older version
     * wrote them); this one has none. */
    return ret ? compact_txn(txn, ret, last, last, COMPACT_PER_APPEND, NULL,
                             p)
               : APR_SUCCESS;
}

/* ---- end ------------------------------------------------------------------ */

typedef struct end_ctx {
    const char *id;
    const char *method;
    const apr_array_header_t *changes;
    const apr_array_header_t *index;
    const iss_sync_retention_t *ret;
    const char *key, *val;
    apr_uint64_t seq;
    apr_pool_t *pool;
    apr_uint64_t since;         /* guarded index entries */
    int *raced;                 /* per index entry: keep no digest */
    slot_t *slot;               /* the intent's slot (NULL: in the log) */
} end_ctx;

static apr_status_t contended_in(iss_store_txn_t *txn, const char *id,
                                 apr_uint64_t since, const char *path,
                                 int *contended, apr_pool_t *p);

static apr_status_t end_txn(void *baton, iss_store_txn_t *txn)
{
    end_ctx *c = baton;
    apr_status_t rv;
    int i;

    after_t *after = after_make(txn, c->pool);
    slot_t *slot = NULL;

    c->seq = 0;
    if (c->id && after->have && intent_claim(c->id)) {
        slot = slot_find(&after->sl, intent_claim(c->id));
    }
    if (c->id) {
        const char *key = intent_key(c->id, c->pool), *list;
        int j;

        /* Whether another write raced the guarded members, before this
         * write's own entry is appended. */
        for (j = 0; c->changes && c->index && j < c->index->nelts; j++) {
            const iss_sync_index_t *u = &APR_ARRAY_IDX(c->index, j,
                                                       iss_sync_index_t);

            if (!u->guarded || (!u->digest && !u->manifest)) {
                continue;
            }
            if (!c->raced) {
                c->raced = apr_pcalloc(c->pool, sizeof(int)
                                       * (apr_size_t)c->index->nelts);
            }
            if ((rv = contended_in(txn, c->id, c->since, u->path,
                                   &c->raced[j], c->pool)) != APR_SUCCESS) {
                return rv;
            }
        }
        if (slot) {
            /* Freed once this is committed. */
            after_free(after, slot, intent_claim(c->id), c->pool);
            c->slot = slot;
        }
        else {
            if ((rv = pending_get(txn, &list, c->pool)) != APR_SUCCESS) {
                return rv;
            }
            iss_store_txn_delete(txn, key, strlen(key));
            pending_put(txn, pending_without(list, c->id, c->pool));
        }
    }
    if (!c->changes) {
        return APR_SUCCESS;
    }
    if ((rv = append_txn(txn, c->method, c->changes, c->ret, &c->seq,
                         c->pool)) != APR_SUCCESS) {
        return rv;
    }
    after->hint = c->seq + 1;
    for (i = 0; c->index && i < c->index->nelts; i++) {
        const iss_sync_index_t *u = &APR_ARRAY_IDX(c->index, i,
                                                   iss_sync_index_t);
        const char *key = apr_pstrcat(c->pool, "f/", u->path, NULL);
        const char *dkey = apr_pstrcat(c->pool, "d/", u->path, NULL);
        int raced = c->raced && c->raced[i];

        if (u->value) {
            txn_put_str(txn, key, u->value);
        }
        else {
            iss_store_txn_delete(txn, key, strlen(key));
        }
        if (u->digest && !raced) {
            txn_put_str(txn, dkey, u->digest);
        }
        else {
            iss_store_txn_delete(txn, dkey, strlen(dkey));
        }
        if (u->manifest && !raced) {
            if ((rv = iss_chunkidx_txn_put(txn, u->manifest, c->pool))
                != APR_SUCCESS) {
                return rv;
            }
        }
        else {
            const char *mkey = iss_chunkidx_manifest_key(u->path, c->pool);

            iss_store_txn_delete(txn, mkey, strlen(mkey));
        }
    }
    if (c->key) {
        txn_put_str(txn, c->key, c->val);
    }
    return APR_SUCCESS;
}

/* The write of intent @a id is over, settled or not: if its settlement
 * failed, the intent stays pending and, its claim gone, recovery turns it
 * into an entry (iss_sync_log_recover()). */
static void release_claim(iss_store_t *store, const char *id)
{
    apr_uint64_t n = id ? intent_claim(id) : 0;

    if (n) {
        iss_store_claim_release(store, n);
    }
}

/* iss_sync_log_end() (durable, @a since 0) and iss_sync_log_settle()
 * (lazy): one transaction, then the claim goes either way. */
static apr_status_t settle_with(iss_store_t *store, const char *id,
                               const char *method,
                               const apr_array_header_t *changes,
                               const apr_array_header_t *index,
                               const iss_sync_retention_t *retention,
                               apr_uint64_t since, int flags,
                               apr_uint64_t *seq, apr_pool_t *pool)
{
    end_ctx c = { id, method, changes, index, retention, NULL, NULL, 0, pool,
                  since, NULL, NULL };
    apr_status_t rv = iss_store_txn_ex(store, end_txn, &c, flags, pool);
    slots_t sl;

    if (seq) {
        *seq = rv == APR_SUCCESS ? c.seq : 0;
    }
    if (rv != APR_SUCCESS && !c.slot && id && intent_claim(id)
        && slots_open(store, &sl)) {
        c.slot = slot_find(&sl, intent_claim(id));  /* end_txn did not run */
    }
    if (c.slot) {
        /* A slot has no claim of its own.  Settled: freed after the
         * commit.  Not settled: given up, so that recovery logs it while
         * this process lives on. */
        if (rv != APR_SUCCESS && ALOAD(c.slot->owner) == intent_claim(id)) {
            ASTORE(c.slot->gone, 1);
        }
    }
    else {
        release_claim(store, id);
    }
    return rv;
}

apr_status_t iss_sync_log_end(iss_store_t *store, const char *id,
                              const char *method,
                              const apr_array_header_t *changes,
                              const apr_array_header_t *index,
                              const iss_sync_retention_t *retention,
                              apr_uint64_t *seq, apr_pool_t *pool)
{
    return settle_with(store, id, method, changes, index, retention, 0, 0,
                       seq, pool);
}

apr_status_t iss_sync_log_settle(iss_store_t *store, const char *id,
                                 const char *method,
                                 const apr_array_header_t *changes,
                                 const apr_array_header_t *index,
                                 const iss_sync_retention_t *retention,
                                 apr_uint64_t since, apr_uint64_t *seq,
                                 apr_pool_t *pool)
{
    return settle_with(store, id, method, changes, index, retention, since,
                       ISS_STORE_LAZY, seq, pool);
}

apr_status_t iss_sync_log_append(iss_store_t *store, const char *method,
                                 const apr_array_header_t *changes,
                                 const apr_array_header_t *index,
                                 const iss_sync_retention_t *retention,
                                 const char *key, const char *val,
                                 apr_uint64_t *seq, apr_pool_t *pool)
{
    end_ctx c = { NULL, method, changes, index, retention, key, val, 0, pool,
                  0, NULL, NULL };
    apr_status_t rv = iss_store_txn(store, end_txn, &c, pool);

    if (seq) {
        *seq = rv == APR_SUCCESS ? c.seq : 0;
    }
    return rv;
}

/* ---- recovery ----------------------------------------------------------- */

typedef struct recover_ctx {
    apr_array_header_t *dead;        /* ids */
    apr_array_header_t *dead_slots;  /* claims of intents in slots */
    iss_store_t *store;
    const iss_sync_retention_t *ret;
    int done;
    apr_pool_t *pool;
} recover_ctx;

static apr_status_t split_intent(const char *val, apr_size_t vlen,
                                 const char **owner, const char **method,
                                 apr_array_header_t **changes, apr_pool_t *p)
{
    const char *nl;
    apr_size_t mlen = sizeof(INTENT_MAGIC) - 1;

    if (vlen < mlen || memcmp(val, INTENT_MAGIC, mlen) != 0
        || !(nl = memchr(val, '\n', vlen))) {
        return APR_EINVAL;
    }
    *owner = apr_pstrmemdup(p, val + mlen, (apr_size_t)(nl - val) - mlen);
    return iss_change_decode(nl + 1, vlen - (apr_size_t)(nl + 1 - val),
                             method, changes, p);
}

/* slot_read() of slot @a t and its intent decoded: 1 with *owner,
 * *holder (may be NULL), *method and *changes; 0 if the slot is free or
 * not yet published; -1 if it changed while read or does not decode. */
static int slot_intent(const slot_t *t, apr_uint64_t *owner,
                       apr_uint64_t *holder, const char **method,
                       apr_array_header_t **changes, apr_pool_t *p)
{
    const char *who;
    apr_size_t vlen;
    char *val;
    int r = slot_read(t, owner, holder, &val, &vlen, p);

    if (r == 1
        && split_intent(val, vlen, &who, method, changes, p) != APR_SUCCESS) {
        return -1;                     /* cannot be: its CRC held */
    }
    return r;
}

/* What stat said of the members of a write that ended unsettled no
 * longer holds: the next scan re-reads them. */
static void forget_members(iss_store_txn_t *txn,
                           const apr_array_header_t *changes, apr_pool_t *p)
{
    int j;

    for (j = 0; j < changes->nelts; j++) {
        const iss_change_t *ch = &APR_ARRAY_IDX(changes, j, iss_change_t);
        const char *fk = apr_pstrcat(p, "f/", ch->path, NULL);
        const char *dk = apr_pstrcat(p, "d/", ch->path, NULL);
        const char *mk = iss_chunkidx_manifest_key(ch->path, p);

        iss_store_txn_delete(txn, fk, strlen(fk));
        iss_store_txn_delete(txn, dk, strlen(dk));
        iss_store_txn_delete(txn, mk, strlen(mk));
    }
}

static apr_status_t recover_txn(void *baton, iss_store_txn_t *txn)
{
    recover_ctx *c = baton;
    after_t *after;
    const char *list;
    apr_status_t rv;
    int i, lost = 0;

    c->done = 0;
    if ((rv = pending_get(txn, &list, c->pool)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < c->dead->nelts; i++) {
        const char *id = APR_ARRAY_IDX(c->dead, i, const char *);
        const char *key = intent_key(id, c->pool), *owner, *method;
        apr_array_header_t *changes;
        apr_uint64_t seq;
        void *val;
        apr_size_t vlen;

        rv = iss_store_txn_get(txn, key, strlen(key), &val, &vlen, c->pool);
        if (rv == APR_NOTFOUND) {
            /* Settled meanwhile (then it left the list too), or a listed
             * id without its record: a record lost to damage (begin and
             * settle write both in one transaction), whose members are
             * unknown.  Then the log cannot tell what changed since: it
             * takes a new id, so that every token handed out before is
             * refused rather than answered without that write. */
            if (pending_has(list, id, c->pool)) {
                lost = 1;
            }
            list = pending_without(list, id, c->pool);
            continue;
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (split_intent(val, vlen, &owner, &method, &changes, c->pool)
            != APR_SUCCESS) {
            /* Unreadable: the members are unknown.  Keep it for an admin
             * (iss-state shows it) rather than pretend nothing changed. */
            continue;
        }
        if ((rv = append_txn(txn, method, changes, c->ret, &seq, c->pool))
            != APR_SUCCESS) {
            return rv;
        }
        forget_members(txn, changes, c->pool);
        iss_store_txn_delete(txn, key, strlen(key));
        list = pending_without(list, id, c->pool);
        c->done++;
    }
    pending_put(txn, list);
    after = after_make(txn, c->pool);
    if (c->dead_slots) {

        for (i = 0; after->have && i < c->dead_slots->nelts; i++) {
            apr_uint64_t claim = APR_ARRAY_IDX(c->dead_slots, i,
                                               apr_uint64_t), o, h, seq;
            slot_t *t = slot_find(&after->sl, claim);
            const char *method;
            apr_array_header_t *changes;

            /* Still there, still published, still nobody's (its writer
             * may have settled it since it was looked at). */
            if (!t || slot_intent(t, &o, &h, &method, &changes, c->pool) != 1
                || o != claim || !slot_abandoned(c->store, t, h)) {
                continue;
            }
            if ((rv = append_txn(txn, method, changes, c->ret, &seq,
                                 c->pool)) != APR_SUCCESS) {
                return rv;
            }
            forget_members(txn, changes, c->pool);
            after_free(after, t, claim, c->pool);
            c->done++;
        }
    }
    if (lost) {
        seq_t q;
        apr_uint64_t last;

        if ((rv = seq_get(txn, &q, c->pool)) != APR_SUCCESS) {
            return rv;
        }
        last = q.last;
        if ((rv = seq_mint(txn, &q, c->pool)) != APR_SUCCESS) {
            return rv;
        }
        if (q.last < last) {
            q.last = last;          /* a new id; positions go on */
            seq_put(txn, &q, c->pool);
        }
    }
    if (c->done) {
        seq_t q;

        if ((rv = seq_get(txn, &q, c->pool)) != APR_SUCCESS) {
            return rv;
        }
        after->hint = q.last + 1;
    }
    return APR_SUCCESS;
}

/* Whether the write of intent @a id (recorded by @a owner) may still be
 * under way: if the intent is claimed, its claim is held; otherwise (or
 * if the claim cannot be asked about) its process runs. */
static int intent_alive(iss_store_t *store, const char *id,
                        const char *owner)
{
    const char *sp = strrchr(owner, ' ');

    /* A claim says it all (one lock test, no /proc read): it dies with
     * its process, and is given back once the settlement was tried. */
    if (sp && strcmp(sp + 1, OWNER_CLAIMED) == 0 && intent_claim(id)) {
        int held = iss_store_claim_held(store, intent_claim(id));

        if (held >= 0) {
            return held;
        }
    }
    return iss_sync_log_owner_alive(owner);
}

typedef struct slot_dead_t {
    iss_store_t *store;
    apr_array_header_t *dead;   /* claims */
    apr_pool_t *p;
} slot_dead_t;

/* slots_each(): note slot @a t if its write ended without settling. */
static int slot_dead(void *b, slot_t *t)
{
    slot_dead_t *d = b;
    const char *method;
    apr_array_header_t *changes;
    apr_uint64_t o, h;

    if (slot_intent(t, &o, &h, &method, &changes, d->p) == 1
        && slot_abandoned(d->store, t, h)) {
        APR_ARRAY_PUSH(d->dead, apr_uint64_t) = o;
    }
    return 0;
}

apr_status_t iss_sync_log_recover(iss_store_t *store,
                                  const iss_sync_retention_t *retention,
                                  int *recovered, apr_pool_t *pool)
{
    recover_ctx c = { NULL, NULL, store, retention, 0, pool };
    void *val;
    apr_size_t vlen;
    char *last, *w;
    apr_status_t rv;
    slots_t sl;

    if (recovered) {
        *recovered = 0;
    }
    c.dead = apr_array_make(pool, 2, sizeof(const char *));
    c.dead_slots = apr_array_make(pool, 2, sizeof(apr_uint64_t));
    if (slots_open(store, &sl)) {
        slot_dead_t d = { store, c.dead_slots, pool };

        slots_each(&sl, slot_dead, &d);
    }
    rv = iss_store_get(store, K_PENDING, strlen(K_PENDING), &val, &vlen, pool);
    if (rv == APR_NOTFOUND) {
        val = NULL;
    }
    else if (rv != APR_SUCCESS) {
        return rv;
    }
    for (w = val ? apr_strtok(val, " ", &last) : NULL; w;
         w = apr_strtok(NULL, " ", &last)) {
        const char *key = intent_key(w, pool), *owner, *method;
        apr_array_header_t *changes;
        void *iv;
        apr_size_t ilen;

        rv = iss_store_get(store, key, strlen(key), &iv, &ilen, pool);
        if (rv == APR_NOTFOUND) {
            /* Settled meanwhile, or listed without a record (a damaged
             * store): the transaction re-checks and drops the id. */
            APR_ARRAY_PUSH(c.dead, const char *) = w;
            continue;
        }
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (split_intent(iv, ilen, &owner, &method, &changes, pool)
            == APR_SUCCESS && !intent_alive(store, w, owner)) {
            APR_ARRAY_PUSH(c.dead, const char *) = w;
        }
    }
    if (c.dead->nelts == 0 && c.dead_slots->nelts == 0) {
        return APR_SUCCESS;
    }
    rv = iss_store_txn(store, recover_txn, &c, pool);
    if (rv == APR_SUCCESS && recovered) {
        *recovered = c.done;
    }
    return rv;
}

typedef struct slot_ids_t {
    apr_array_header_t *ids;
    apr_pool_t *p;
} slot_ids_t;

static int slot_id(void *b, slot_t *t)
{
    slot_ids_t *d = b;
    apr_uint64_t o;
    apr_size_t vlen;
    char *val;

    if (slot_read(t, &o, NULL, &val, &vlen, d->p) == 1) {
        APR_ARRAY_PUSH(d->ids, const char *)
            = apr_psprintf(d->p, "%016" APR_UINT64_T_HEX_FMT, o);
    }
    return 0;
}

apr_status_t iss_sync_log_pending(iss_store_t *store, const char **ids,
                                  apr_pool_t *pool)
{
    slot_ids_t d = { apr_array_make(pool, 4, sizeof(const char *)), pool };
    void *val;
    apr_size_t vlen;
    slots_t sl;
    apr_status_t rv = iss_store_get(store, K_PENDING, strlen(K_PENDING),
                                    &val, &vlen, pool);

    *ids = "";
    if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        return rv;
    }
    if (rv == APR_SUCCESS && vlen) {
        APR_ARRAY_PUSH(d.ids, const char *) = val;
    }
    if (slots_open(store, &sl)) {
        slots_each(&sl, slot_id, &d);
    }
    *ids = apr_array_pstrcat(pool, d.ids, ' ');
    return APR_SUCCESS;
}

int iss_sync_log_intent_pending(iss_store_t *store, const char *id,
                                apr_pool_t *pool)
{
    const char *key = intent_key(id, pool);
    apr_uint64_t claim = intent_claim(id), o;
    apr_size_t vlen;
    void *val;
    char *sv;
    slots_t sl;
    slot_t *t;
    apr_status_t rv;

    if (claim && slots_open(store, &sl) && (t = slot_find(&sl, claim))
        && slot_read(t, &o, NULL, &sv, &vlen, pool) != 0) {
        return 1;               /* published (or changing: say pending) */
    }
    rv = iss_store_get(store, key, strlen(key), &val, &vlen, pool);
    return rv == APR_SUCCESS ? 1 : rv == APR_NOTFOUND ? 0 : -1;
}

/* ---- reading ---------------------------------------------------------------- */

typedef struct bounds_ctx {
    apr_uint64_t last, first;
    const char *id;
    int mint;                   /* make log/seq if it is absent */
    int absent;
    apr_pool_t *pool;
} bounds_ctx;

static apr_status_t bounds_txn(void *baton, iss_store_txn_t *txn)
{
    bounds_ctx *c = baton;
    seq_t q;
    apr_status_t rv = seq_get(txn, &q, c->pool);

    if (rv == APR_SUCCESS && !q.present) {
        c->absent = 1;
        if (c->mint) {
            rv = seq_mint(txn, &q, c->pool);
        }
    }
    c->last = q.last;
    c->id = q.id;
    return rv ? rv : txn_get_first(txn, &c->first, c->pool);
}

apr_status_t iss_sync_log_bounds_id(iss_store_t *store, apr_uint64_t *last,
                                    apr_uint64_t *first, const char **id,
                                    apr_pool_t *pool)
{
    bounds_ctx c = { 0, 1, NULL, 0, 0, pool };
    /* A view: no writer waits for it; durable before a token is made. */
    apr_status_t rv = iss_store_view(store, bounds_txn, &c, 0, pool);

    if (rv == APR_SUCCESS && c.absent && id) {
        /* No numbering yet (or it was lost): a new one, durable before
         * a token names it. */
        c.mint = 1;
        c.absent = 0;
        rv = iss_store_txn(store, bounds_txn, &c, pool);
    }
    *last = c.last;
    *first = c.first;
    if (id) {
        *id = c.id ? c.id : iss_store_id(store);
    }
    return rv;
}

apr_status_t iss_sync_log_bounds_peek(iss_store_t *store, apr_uint64_t *last,
                                      apr_uint64_t *first, const char **id,
                                      apr_pool_t *pool)
{
    bounds_ctx c = { 0, 1, NULL, 0, 0, pool };
    apr_status_t rv = iss_store_view(store, bounds_txn, &c, 0, pool);

    *last = c.last;
    *first = c.first;
    *id = c.absent ? NULL : c.id ? c.id : iss_store_id(store);
    return rv;
}

apr_status_t iss_sync_log_bounds(iss_store_t *store, apr_uint64_t *last,
                                 apr_uint64_t *first, apr_pool_t *pool)
{
    return iss_sync_log_bounds_id(store, last, first, NULL, pool);
}

typedef struct read_ctx {
    apr_uint64_t from, to;
    iss_sync_log_entry_fn *fn;
    void *baton;
    apr_pool_t *pool;
} read_ctx;

static apr_status_t read_txn(void *baton, iss_store_txn_t *txn)
{
    read_ctx *c = baton;
    apr_pool_t *iter;
    apr_uint64_t seq;
    apr_status_t rv = APR_SUCCESS;

    apr_pool_create(&iter, c->pool);
    for (seq = c->from; seq <= c->to && seq != 0; seq++) {
        const char *key, *nl, *method;
        apr_array_header_t *changes;
        apr_uint64_t t;
        apr_size_t vlen;
        void *val;

        apr_pool_clear(iter);
        key = entry_key(seq, iter);
        if ((rv = iss_store_txn_get(txn, key, strlen(key), &val, &vlen, iter))
            != APR_SUCCESS) {
            break;
        }
        if (entry_head(val, vlen, &t, &nl) != APR_SUCCESS
            || iss_change_decode(nl + 1, vlen - (apr_size_t)(nl + 1 - (char *)val),
                                 &method, &changes, iter) != APR_SUCCESS) {
            rv = ISS_STORE_EDAMAGED;
            break;
        }
        if (c->fn(c->baton, seq, (apr_time_t)t, method, changes)) {
            break;
        }
    }
    apr_pool_destroy(iter);
    return rv;
}

apr_status_t iss_sync_log_read(iss_store_t *store, apr_uint64_t from,
                               apr_uint64_t to, iss_sync_log_entry_fn *fn,
                               void *baton, apr_pool_t *pool)
{
    read_ctx c = { from, to, fn, baton, pool };

    if (from > to) {
        return APR_SUCCESS;
    }
    return iss_store_view(store, read_txn, &c, ISS_STORE_LAZY, pool);
}

/* ---- contention --------------------------------------------------------- */

/* Whether @a changes names @a path or a folder above it. */
static int names_path(const apr_array_header_t *changes, const char *path)
{
    apr_size_t plen = strlen(path);
    int i;

    for (i = 0; i < changes->nelts; i++) {
        const char *c = APR_ARRAY_IDX(changes, i, iss_change_t).path;
        apr_size_t clen = strlen(c);

        if (clen == 0 || (clen == plen && memcmp(c, path, plen) == 0)
            || (clen < plen && memcmp(c, path, clen) == 0
                && path[clen] == '/')) {
            return 1;
        }
    }
    return 0;
}

typedef struct contended_ctx {
    const char *id, *path;
    apr_uint64_t since;
    int contended;
    apr_pool_t *pool;
} contended_ctx;

typedef struct slot_look_t {
    apr_uint64_t self;          /* the asking write's claim (0: none) */
    const char *path;
    int contended;
    apr_pool_t *p;
} slot_look_t;

/* slots_each(): whether slot @a t is another write's intent naming the
 * path (or cannot be read: assume so). */
static int slot_names(void *b, slot_t *t)
{
    slot_look_t *l = b;
    const char *method;
    apr_array_header_t *changes;
    apr_uint64_t o;
    int r = slot_intent(t, &o, NULL, &method, &changes, l->p);

    if (r == 0 || (r == 1 && o == l->self)) {
        return 0;
    }
    if (r < 0 || names_path(changes, l->path)) {
        l->contended = 1;
    }
    return l->contended;
}

static apr_status_t contended_in(iss_store_txn_t *txn, const char *id,
                                 apr_uint64_t since, const char *path,
                                 int *contended, apr_pool_t *p)
{
    const char *list, *owner, *method, *word;
    apr_array_header_t *changes;
    apr_uint64_t seq, s;
    apr_status_t rv;
    char *words, *last;

    *contended = 0;
    if ((rv = pending_get(txn, &list, p)) != APR_SUCCESS) {
        return rv;
    }
    words = apr_pstrdup(p, list);
    for (word = apr_strtok(words, " ", &last); word && !*contended;
         word = apr_strtok(NULL, " ", &last)) {
        const char *key = intent_key(word, p);
        apr_size_t vlen;
        void *val;

        if (strcmp(word, id) == 0) {
            continue;
        }
        rv = iss_store_txn_get(txn, key, strlen(key), &val, &vlen, p);
        if (rv == APR_NOTFOUND) {
            continue;
        }
        if (rv != APR_SUCCESS
            || split_intent(val, vlen, &owner, &method, &changes, p)
               != APR_SUCCESS
            || names_path(changes, path)) {
            *contended = 1;            /* unreadable: assume the worst */
        }
    }
    if (!*contended) {
        /* Intents in slots (published without the lock: one published
         * after this look is a write that began after it, as if it had
         * begun after this settlement's commit). */
        slots_t sl;
        slot_look_t l = { intent_claim(id), path, 0, p };

        if (slots_txn(txn, &sl)) {
            slots_each(&sl, slot_names, &l);
            *contended = l.contended;
        }
    }
    {
        seq_t q;

        if ((rv = seq_get(txn, &q, p)) != APR_SUCCESS) {
            return rv;
        }
        seq = q.last;
    }
    if (since > seq) {
        /* A `since` from another numbering (cannot be told apart). */
        *contended = 1;
    }
    for (s = since + 1; s <= seq && !*contended; s++) {
        const char *key = entry_key(s, p), *nl;
        apr_size_t vlen;
        void *val;

        rv = iss_store_txn_get(txn, key, strlen(key), &val, &vlen, p);
        if (rv == APR_NOTFOUND) {
            continue;                  /* compacted: long ago */
        }
        if (rv != APR_SUCCESS || !(nl = memchr(val, '\n', vlen))
            || iss_change_decode(nl + 1,
                                 vlen - (apr_size_t)(nl + 1 - (char *)val),
                                 &method, &changes, p) != APR_SUCCESS
            || names_path(changes, path)) {
            *contended = 1;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t contended_txn(void *baton, iss_store_txn_t *txn)
{
    contended_ctx *c = baton;

    return contended_in(txn, c->id, c->since, c->path, &c->contended,
                        c->pool);
}

apr_status_t iss_sync_log_contended(iss_store_t *store, const char *id,
                                    apr_uint64_t since, const char *path,
                                    int *contended, apr_pool_t *pool)
{
    contended_ctx c = { id ? id : "", path, since, 0, pool };
    apr_status_t rv = iss_store_view(store, contended_txn, &c, ISS_STORE_LAZY,
                                     pool);

    *contended = rv != APR_SUCCESS || c.contended;
    return rv;
}

typedef struct compact_ctx {
    const iss_sync_retention_t *ret;
    apr_uint64_t max, removed;
    apr_pool_t *pool;
} compact_ctx;

static apr_status_t compact_outer(void *baton, iss_store_txn_t *txn)
{
    compact_ctx *c = baton;
    seq_t q;
    apr_status_t rv = seq_get(txn, &q, c->pool);

    return rv ? rv : compact_txn(txn, c->ret, q.last, q.last + 1, c->max,
                                 &c->removed, c->pool);
}

apr_status_t iss_sync_log_compact(iss_store_t *store,
                                  const iss_sync_retention_t *retention,
                                  apr_uint64_t max_remove,
                                  apr_uint64_t *removed, apr_pool_t *pool)
{
    compact_ctx c = { retention, max_remove, 0, pool };
    apr_status_t rv = iss_store_txn(store, compact_outer, &c, pool);

    if (removed) {
        *removed = rv == APR_SUCCESS ? c.removed : 0;
    }
    return rv;
}

/* ---- configuration ----------------------------------------------------------- */

const char *iss_sync_retention_parse(iss_sync_retention_t *ret,
                                     const char *word, apr_pool_t *pool)
{
    apr_uint64_t n;
    const char *v;
    apr_size_t len;

    if (strncmp(word, "age=", 4) == 0) {
        apr_interval_time_t unit = apr_time_from_sec(1);

        v = word + 4;
        if (strcmp(v, "off") == 0) {
            ret->max_age = 0;
            return NULL;
        }
        len = strlen(v);
        if (len > 1 && !apr_isdigit(v[len - 1])) {
            switch (v[len - 1]) {
            case 's': break;
            case 'm': unit *= 60; break;
            case 'h': unit *= 3600; break;
            case 'd': unit *= 86400; break;
            case 'w': unit *= 7 * 86400; break;
            default:
                return apr_psprintf(pool, "unknown unit in '%s' (use s, m, "
                                    "h, d or w)", word);
            }
            len--;
        }
        if (iss_sync_parse_u64(v, len, &n) || n == 0
            || n > (apr_uint64_t)APR_INT64_MAX / (apr_uint64_t)unit) {
            return apr_psprintf(pool, "'%s' is not a positive age", word);
        }
        ret->max_age = (apr_interval_time_t)n * unit;
        return NULL;
    }
    if (strncmp(word, "count=", 6) == 0) {
        v = word + 6;
        if (strcmp(v, "off") == 0) {
            ret->max_count = 0;
            return NULL;
        }
        if (iss_sync_parse_u64(v, strlen(v), &n) || n == 0) {
            return apr_psprintf(pool, "'%s' is not a positive count", word);
        }
        ret->max_count = n;
        return NULL;
    }
    return apr_psprintf(pool, "'%s': expected age=<n>[smhdw], age=off, "
                        "count=<n> or count=off", word);
}
