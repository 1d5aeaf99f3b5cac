/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * Streaming RFC 3284 VCDIFF encoder; see iss_vcdiff_enc.h for the
 * promises.
 *
 * Pipeline of one window:
 *
 *   target bytes ──> win[] (W bytes) ──> plan: manifest COPYs, or the
 *   greedy parse (match_range) ──> level 1: a queue of the last QUEUE_N
 *   ops (ADD, COPY from the source, COPY from the window, RUN), merged
 *   when contiguous, that a later match may cut back ──> level 2:
 *   instructions of the default code table, one pending ADD 1..4 or
 *   COPY 4 waiting to pair with the next into a double opcode ──> the
 *   three sections ──> the window's header and sections, through the
 *   write callback.
 *
 * Every window's source segment is the whole source (position 0), so an
 * address is a source offset, or source_size + a window position, and
 * instructions can be written as they are decided: nothing waits for the
 * window's end but the sections themselves (their lengths precede them).
 * The address caches (near, same) are reset per window, as the decoder
 * resets them.
 *
 * The bound on the sections.  A COPY or RUN is emitted only if an upper
 * bound of its encoding (opcode, explicit size, the cheaper of SELF and
 * HERE) is below its length, and a cut back of the queue only drops
 * whole COPYs and RUNs or shortens an ADD; an ADD of n bytes costs at
 * most n + 5, and ADDs alternate with the others, so the sections of a
 * window of t bytes stay under 2 t + 5, plus, per window, at most two
 * COPYs of skipped pieces of chunks cut by the window's ends and two
 * ADDs next to each other where such a piece was too short to COPY
 * (about 40 bytes in all): 2 W + 64.
 *
 * Reading the source.  Through a direct-mapped cache of 4 KiB blocks
 * (16 at once when a match goes on), and, to check a candidate of the
 * index, through 256-byte probe blocks: most candidates of a text are
 * short matches at random places, and a 4 KiB read each would cost more
 * than the match saves.
 */

#include "iss_vcdiff_enc.h"

#include <apr_strings.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Win_Indicator */
#define VCD_SOURCE  0x01
#define VCD_ADLER32 0x04        /* xdelta3 */

#define S_NEAR    4
#define S_SAME    3
#define SAME_SIZE (S_SAME * 256)

#define SRC_L       16          /* bytes hashed per source sample */
#define SELF_L      4           /* bytes hashed per window position */
#define MIN_MATCH   4           /* shortest COPY or RUN */
#define PLAN_MIN    32          /* shortest chunk COPYed by manifest */
#define SELF_WAYS   4           /* window positions per self bucket */
#define CACHE_N     256         /* source cache: blocks ... */
#define CACHE_BLOCK 4096        /* ... of this many bytes */
#define READ_AHEAD  16          /* blocks read at once going forward */
#define PROBE_N     256         /* probe cache: blocks ... */
#define PROBE_BLOCK 256         /* ... of this many bytes, to check a
                                 * candidate without reading 4 KiB */
#define READ_PIECE  (256 * 1024)
#define CHAIN_MAX   64          /* duplicate ids looked at per chunk */
#define BACK_SLACK  64
#define SELF_ENOUGH 16          /* a match in memory this long: no index */
#define SELF_INSERT 64          /* positions of shorter matches indexed */
#define AHEAD       8           /* positions hashed (and prefetched) ahead */

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)0)
#endif
#define QUEUE_N     64          /* level 1 ops kept for backward matches */

#define RH_MUL 0x9e3779b97f4a7c15ULL    /* rolling hash multiplier (odd) */

enum { OP_NONE, OP_ADD, OP_COPY_SRC, OP_COPY_SELF, OP_RUN };
enum { P2_NONE, P2_ADD, P2_COPY4 };

/* Part of the source that is indexed; its samples are numbered from
 * first_k on, one every `step` bytes from off. */
typedef struct region_t {
    apr_uint64_t off, len, first_k;
} region_t;

typedef struct sect_t {
    unsigned char *p;
    apr_size_t len, cap;
} sect_t;

/* An op of level 1: covers window positions [t, t + len). */
typedef struct op_t {
    int type;                   /* OP_ADD, OP_COPY_SRC, OP_COPY_SELF, OP_RUN */
    apr_size_t t, len;
    apr_uint64_t from;          /* source offset, window position, byte */
} op_t;

/* A match found at window position t. */
typedef struct cand_t {
    int type;                   /* OP_COPY_SRC, OP_COPY_SELF, OP_RUN */
    apr_uint64_t from;          /* source offset / window position / byte,
                                 * for the byte at t */
    apr_size_t back, len;       /* bytes before t, bytes from t on */
} cand_t;

struct iss_vcdiff_enc_t {
    apr_pool_t *pool;
    iss_vcdiff_enc_opts_t o;
    apr_uint64_t S;             /* source size */
    apr_status_t err;
    int finished;
    char msg[160];

    /* the target window */
    unsigned char *win;
    apr_size_t W, wlen, wcap;
    apr_uint64_t wstart;        /* target offset of win[0] */
    int wskipped;               /* some bytes of this window were skipped */
    apr_uint64_t total;         /* target bytes fed or skipped */

    /* output */
    int header_done;
    apr_uint64_t out_bytes;
    sect_t data, inst, addr;
    apr_uint64_t near[S_NEAR];
    int next_slot;
    apr_uint64_t same[SAME_SIZE];
    int p2;                     /* level 2 pending instruction */
    unsigned p2_size, p2_mode;

    /* level 1: the last ops, not yet instructions */
    op_t q[QUEUE_N];
    unsigned qn;

    /* the last source COPY: source offset - target offset */
    int diag_ok;
    apr_int64_t diag;

    /* source index */
    int indexed;
    region_t *regions;
    apr_size_t nregions;
    apr_uint64_t ix_bytes;      /* sum of the regions' lengths */
    apr_uint64_t *ix;           /* (check << 32) | (sample + 1); 0 empty */
    unsigned ix_bits;
    apr_uint64_t step;
    apr_uint64_t rh_pow;        /* RH_MUL^(SRC_L - 1) */

    apr_uint64_t rg_lo, rg_hi;  /* last in_region() answer: [lo, hi) */
    int rg_in;

    /* source cache */
    unsigned char *cache;
    apr_uint64_t cache_blk[CACHE_N];    /* block + 1; 0 empty */
    apr_size_t cache_len[CACHE_N];
    unsigned char *probe;
    apr_uint64_t probe_blk[PROBE_N];
    apr_size_t probe_len[PROBE_N];

    /* the window's self index */
    apr_uint32_t *self;         /* buckets of SELF_WAYS positions + 1 */
    unsigned self_bits;         /* of this window */
    unsigned self_max;          /* of the table allocated (0: none) */
    apr_size_t floor;           /* window positions below are not held */

    /* manifests */
    const iss_manifest_t *sm, *tm;
    apr_uint32_t *map;          /* id slot -> first source entry + 1 */
    apr_uint64_t map_mask;
    apr_uint32_t *next_same;    /* next source entry with that id, + 1 */
    apr_uint32_t enc_j;         /* target entry at the encoding position */
    apr_uint32_t feed_j;        /* target entry at the feeding position */
    apr_uint64_t skip_upto;
    apr_uint64_t last_se;       /* source entry of the last chunk COPY + 1 */
};

/* ------------------------------------------------------------------ */

static apr_status_t fail(iss_vcdiff_enc_t *e, apr_status_t rv,
                         const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static apr_status_t fail(iss_vcdiff_enc_t *e, apr_status_t rv,
                         const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    apr_vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    e->err = rv;
    return rv;
}

static apr_status_t cleanup(void *data)
{
    iss_vcdiff_enc_t *e = data;

    free(e->win);
    free(e->data.p);
    free(e->inst.p);
    free(e->addr.p);
    free(e->ix);
    free(e->cache);
    free(e->probe);
    free(e->self);
    e->win = e->cache = e->probe = NULL;
    e->data.p = e->inst.p = e->addr.p = NULL;
    e->ix = NULL;
    e->self = NULL;
    return APR_SUCCESS;
}

static int varint_len(apr_uint64_t v)
{
    int n = 1;

    while (v >>= 7)
        n++;
    return n;
}

static int put_varint(unsigned char *to, apr_uint64_t v)
{
    int n = varint_len(v), i;

    for (i = n - 1; i >= 0; i--) {
        to[i] = (unsigned char)((v & 0x7f) | (i == n - 1 ? 0 : 0x80));
        v >>= 7;
    }
    return n;
}

static apr_uint64_t pow2_at_least(apr_uint64_t v)
{
    apr_uint64_t p = 1;

    while (p < v)
        p <<= 1;
    return p;
}

static unsigned log2_of(apr_uint64_t pow2)
{
    unsigned b = 0;

    while (pow2 > 1) {
        pow2 >>= 1;
        b++;
    }
    return b;
}

/* ------------------------------------------------------------------ */
/* Sections. */

static apr_status_t sect_room(iss_vcdiff_enc_t *e, sect_t *s, apr_size_t n)
{
    apr_size_t cap;
    unsigned char *p;

    if (s->cap - s->len >= n)
        return APR_SUCCESS;
    cap = s->cap ? s->cap : 4096;
    while (cap - s->len < n)
        cap *= 2;
    p = realloc(s->p, cap);
    if (p == NULL)
        return fail(e, APR_ENOMEM, "out of memory");
    s->p = p;
    s->cap = cap;
    return APR_SUCCESS;
}

static apr_status_t sect_put(iss_vcdiff_enc_t *e, sect_t *s,
                             const unsigned char *p, apr_size_t n)
{
    if (sect_room(e, s, n) != APR_SUCCESS)
        return e->err;
    memcpy(s->p + s->len, p, n);
    s->len += n;
    return APR_SUCCESS;
}

static apr_status_t sect_byte(iss_vcdiff_enc_t *e, sect_t *s, unsigned c)
{
    if (sect_room(e, s, 1) != APR_SUCCESS)
        return e->err;
    s->p[s->len++] = (unsigned char)c;
    return APR_SUCCESS;
}

static apr_status_t sect_varint(iss_vcdiff_enc_t *e, sect_t *s,
                                apr_uint64_t v)
{
    if (sect_room(e, s, 10) != APR_SUCCESS)
        return e->err;
    s->len += (apr_size_t)put_varint(s->p + s->len, v);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Level 2: instructions of the default code table (RFC 3284 5.6):
 *     0          RUN 0
 *     1..18      ADD 0, 1..17
 *     19..162    COPY 0, 4..18 in modes 0..8 (16 per mode)
 *     163..234   ADD 1..4 + COPY 4..6, modes 0..5
 *     235..246   ADD 1..4 + COPY 4, modes 6..8
 *     247..255   COPY 4 modes 0..8 + ADD 1
 */

static apr_status_t flush2(iss_vcdiff_enc_t *e)
{
    int p2 = e->p2;

    e->p2 = P2_NONE;
    if (p2 == P2_ADD)
        return sect_byte(e, &e->inst, 1 + e->p2_size);
    if (p2 == P2_COPY4)
        return sect_byte(e, &e->inst, 19 + e->p2_mode * 16 + 1);
    return APR_SUCCESS;
}

static apr_status_t out_add(iss_vcdiff_enc_t *e, const unsigned char *p,
                            apr_size_t n)
{
    if (sect_put(e, &e->data, p, n) != APR_SUCCESS)
        return e->err;
    if (e->p2 == P2_COPY4 && n == 1) {
        e->p2 = P2_NONE;
        return sect_byte(e, &e->inst, 247 + e->p2_mode);
    }
    if (flush2(e) != APR_SUCCESS)
        return e->err;
    if (n <= 4) {
        e->p2 = P2_ADD;
        e->p2_size = (unsigned)n;
        return APR_SUCCESS;
    }
    if (n <= 17)
        return sect_byte(e, &e->inst, 1 + (unsigned)n);
    if (sect_byte(e, &e->inst, 1) != APR_SUCCESS)
        return e->err;
    return sect_varint(e, &e->inst, n);
}

/* Write the address of a COPY in its cheapest mode, update the caches
 * as the decoder will, and return the mode. */
static apr_status_t put_addr(iss_vcdiff_enc_t *e, apr_uint64_t a,
                             apr_uint64_t here, unsigned *mode)
{
    apr_size_t si = (apr_size_t)(a % SAME_SIZE);
    apr_status_t rv;

    if (e->same[si] == a) {
        *mode = 2 + S_NEAR + (unsigned)(si / 256);
        rv = sect_byte(e, &e->addr, (unsigned)(si % 256));
    }
    else {
        apr_uint64_t v = a;
        int best = varint_len(a), i;

        *mode = 0;
        if (varint_len(here - a) < best) {
            *mode = 1;
            v = here - a;
            best = varint_len(v);
        }
        for (i = 0; i < S_NEAR; i++) {
            if (a >= e->near[i] && varint_len(a - e->near[i]) < best) {
                *mode = 2 + (unsigned)i;
                v = a - e->near[i];
                best = varint_len(v);
            }
        }
        rv = sect_varint(e, &e->addr, v);
    }
    e->near[e->next_slot] = a;
    e->next_slot = (e->next_slot + 1) % S_NEAR;
    e->same[si] = a;
    return rv;
}

static apr_status_t out_copy(iss_vcdiff_enc_t *e, apr_uint64_t a,
                             apr_size_t n, apr_uint64_t here)
{
    unsigned mode;

    if (put_addr(e, a, here, &mode) != APR_SUCCESS)
        return e->err;
    if (e->p2 == P2_ADD) {
        unsigned s = e->p2_size;

        if (mode <= 5 && n >= 4 && n <= 6) {
            e->p2 = P2_NONE;
            return sect_byte(e, &e->inst, 163 + mode * 12 + (s - 1) * 3
                                          + (unsigned)(n - 4));
        }
        if (mode >= 6 && n == 4) {
            e->p2 = P2_NONE;
            return sect_byte(e, &e->inst, 235 + (mode - 6) * 4 + (s - 1));
        }
    }
    if (flush2(e) != APR_SUCCESS)
        return e->err;
    if (n == 4) {
        e->p2 = P2_COPY4;
        e->p2_mode = mode;
        return APR_SUCCESS;
    }
    if (n >= 4 && n <= 18)
        return sect_byte(e, &e->inst, 19 + mode * 16 + (unsigned)(n - 3));
    if (sect_byte(e, &e->inst, 19 + mode * 16) != APR_SUCCESS)
        return e->err;
    return sect_varint(e, &e->inst, n);
}

static apr_status_t out_run(iss_vcdiff_enc_t *e, unsigned byte,
                            apr_size_t n)
{
    if (flush2(e) != APR_SUCCESS
        || sect_byte(e, &e->data, byte) != APR_SUCCESS
        || sect_byte(e, &e->inst, 0) != APR_SUCCESS)
        return e->err;
    return sect_varint(e, &e->inst, n);
}

/* ------------------------------------------------------------------ */
/* Level 1: the last QUEUE_N ops, merged with the next when contiguous,
 * so that a match found later may extend backwards over them (the
 * greedy parse takes short matches that a longer one found a few bytes
 * further would have covered). */

static apr_status_t out_op(iss_vcdiff_enc_t *e, const op_t *o)
{
    switch (o->type) {
    case OP_ADD:
        return out_add(e, e->win + o->t, o->len);
    case OP_COPY_SRC:
        return out_copy(e, o->from, o->len, e->S + o->t);
    case OP_COPY_SELF:
        return out_copy(e, e->S + o->from, o->len, e->S + o->t);
    default:
        return out_run(e, (unsigned)o->from, o->len);
    }
}

/* Turn the first @a n queued ops into instructions. */
static apr_status_t flush_ops(iss_vcdiff_enc_t *e, unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++)
        if (out_op(e, &e->q[i]) != APR_SUCCESS)
            return e->err;
    e->qn -= n;
    memmove(e->q, e->q + n, e->qn * sizeof(op_t));
    return APR_SUCCESS;
}

static apr_status_t flush1(iss_vcdiff_enc_t *e)
{
    return flush_ops(e, e->qn);
}

static apr_status_t op(iss_vcdiff_enc_t *e, int type, apr_size_t t,
                       apr_size_t n, apr_uint64_t from)
{
    op_t *last = e->qn ? &e->q[e->qn - 1] : NULL;

    if (last != NULL && last->type == type && last->t + last->len == t
        && (type == OP_ADD
            || ((type == OP_COPY_SRC || type == OP_COPY_SELF)
                && last->from + last->len == from))) {
        last->len += n;
        return APR_SUCCESS;
    }
    if (e->qn == QUEUE_N && flush_ops(e, QUEUE_N / 2) != APR_SUCCESS)
        return e->err;
    last = &e->q[e->qn++];
    last->type = type;
    last->t = t;
    last->len = n;
    last->from = from;
    return APR_SUCCESS;
}

/* Whether a COPY of n bytes from address a at here surely costs less
 * than n bytes (upper bound: opcode, explicit size, SELF or HERE). */
static int copy_pays(apr_size_t n, apr_uint64_t a, apr_uint64_t here)
{
    int ac = varint_len(a), hc = varint_len(here - a);
    apr_uint64_t cost = 1 + (apr_uint64_t)(n > 18 ? varint_len(n) : 0)
                        + (apr_uint64_t)(ac < hc ? ac : hc);

    return n >= MIN_MATCH && cost < n;
}

static int run_pays(apr_size_t n)
{
    return n >= MIN_MATCH && (apr_uint64_t)(2 + varint_len(n)) < n;
}

/* How far back (at most @a b bytes before @a t) a new op may start over
 * the queue: over ADDs byte by byte (their bytes get cheaper), over a
 * COPY or RUN only whole (saving its instruction); @a lit is the end of
 * the queue. */
static apr_size_t queue_back(const iss_vcdiff_enc_t *e, apr_size_t t,
                             apr_size_t lit, apr_size_t b)
{
    apr_size_t st = t - b, at = lit;
    unsigned i = e->qn;

    if (st >= lit)
        return b;
    while (i > 0 && at > st) {
        const op_t *o = &e->q[--i];

        if (o->type == OP_ADD || o->t >= st)
            at = o->t > st ? o->t : st;
        else
            break;                      /* would cut a COPY or RUN */
        if (o->type == OP_ADD && o->t < st)
            break;
    }
    return t - at;
}

/* Drop what the queue covers from window position @a st on. */
static void queue_cut(iss_vcdiff_enc_t *e, apr_size_t st)
{
    while (e->qn > 0 && e->q[e->qn - 1].t >= st)
        e->qn--;
    if (e->qn > 0 && e->q[e->qn - 1].t + e->q[e->qn - 1].len > st)
        e->q[e->qn - 1].len = st - e->q[e->qn - 1].t;  /* an ADD */
}

/* ------------------------------------------------------------------ */
/* The source: a small direct-mapped cache of blocks. */

static apr_status_t src_block(iss_vcdiff_enc_t *e, apr_uint64_t blk,
                              unsigned ahead, const unsigned char **p,
                              apr_size_t *len)
{
    unsigned slot = (unsigned)(blk % CACHE_N);
    unsigned char *to;

    if (e->cache == NULL) {
        /* a source of up to CACHE_N blocks has block i in slot i: S
         * bytes are enough */
        e->cache = malloc(e->S < (apr_uint64_t)CACHE_N * CACHE_BLOCK
                          ? (apr_size_t)e->S
                          : (apr_size_t)CACHE_N * CACHE_BLOCK);
        if (e->cache == NULL)
            return fail(e, APR_ENOMEM, "out of memory");
    }
    to = e->cache + (apr_size_t)slot * CACHE_BLOCK;
    if (e->cache_blk[slot] != blk + 1) {
        /* this block and up to ahead - 1 more, in consecutive slots */
        apr_uint64_t off = blk * CACHE_BLOCK, n = e->S - off;
        unsigned k, nb;
        apr_status_t rv;

        if (ahead > CACHE_N - slot)
            ahead = CACHE_N - slot;
        if (n > (apr_uint64_t)ahead * CACHE_BLOCK)
            n = (apr_uint64_t)ahead * CACHE_BLOCK;
        nb = (unsigned)((n + CACHE_BLOCK - 1) / CACHE_BLOCK);
        for (k = 0; k < nb; k++)
            e->cache_blk[slot + k] = 0;
        rv = e->o.read_source(e->o.source_baton, off, (apr_size_t)n, to);
        if (rv != APR_SUCCESS)
            return fail(e, rv, "reading %" APR_UINT64_T_FMT " bytes of"
                        " source at %" APR_UINT64_T_FMT " failed", n, off);
        for (k = 0; k < nb; k++) {
            e->cache_blk[slot + k] = blk + k + 1;
            e->cache_len[slot + k] = n - (apr_uint64_t)k * CACHE_BLOCK
                                     < CACHE_BLOCK
                                     ? (apr_size_t)(n - (apr_uint64_t)k
                                                    * CACHE_BLOCK)
                                     : CACHE_BLOCK;
        }
    }
    *p = to;
    *len = e->cache_len[slot];
    return APR_SUCCESS;
}

/* Length of the common prefix of a and b, at most n. */
static apr_size_t prefix(const unsigned char *a, const unsigned char *b,
                         apr_size_t n)
{
    apr_size_t i = 0;

    while (n - i >= 8) {
        apr_uint64_t x, y;

        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y)
            break;
        i += 8;
    }
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* The source around offset x, as a block: *bp with x at *boff, *blen
 * bytes in all.  The big cache if it has x; else, for the first bytes of
 * a comparison (c of them done), a 256-byte probe block (a candidate
 * that fails early costs a small read); else the big cache, reading
 * ahead once a match is long. */
static apr_status_t src_span(iss_vcdiff_enc_t *e, apr_uint64_t x,
                             apr_size_t c, const unsigned char **bp,
                             apr_size_t *boff, apr_size_t *blen)
{
    apr_uint64_t blk = x / CACHE_BLOCK;
    unsigned slot = (unsigned)(blk % CACHE_N);

    if (c < PROBE_BLOCK && (e->cache == NULL
                            || e->cache_blk[slot] != blk + 1)) {
        apr_uint64_t pb = x / PROBE_BLOCK;
        unsigned ps = (unsigned)(pb % PROBE_N);

        if (e->probe == NULL) {
            e->probe = malloc((apr_size_t)PROBE_N * PROBE_BLOCK);
            if (e->probe == NULL)
                return fail(e, APR_ENOMEM, "out of memory");
        }
        if (e->probe_blk[ps] != pb + 1) {
            apr_uint64_t off = pb * PROBE_BLOCK;
            apr_size_t n = e->S - off < PROBE_BLOCK
                           ? (apr_size_t)(e->S - off) : PROBE_BLOCK;
            apr_status_t rv;

            e->probe_blk[ps] = 0;
            rv = e->o.read_source(e->o.source_baton, off, n,
                                  e->probe + (apr_size_t)ps * PROBE_BLOCK);
            if (rv != APR_SUCCESS)
                return fail(e, rv, "reading %" APR_SIZE_T_FMT " bytes of"
                            " source at %" APR_UINT64_T_FMT " failed", n,
                            off);
            e->probe_blk[ps] = pb + 1;
            e->probe_len[ps] = n;
        }
        *bp = e->probe + (apr_size_t)ps * PROBE_BLOCK;
        *boff = (apr_size_t)(x - pb * PROBE_BLOCK);
        *blen = e->probe_len[ps];
        return APR_SUCCESS;
    }
    if (src_block(e, blk, c >= 4 * CACHE_BLOCK ? READ_AHEAD : 1, bp, blen)
        != APR_SUCCESS)
        return e->err;
    *boff = (apr_size_t)(x - blk * CACHE_BLOCK);
    return APR_SUCCESS;
}

/* How many bytes from window position t on (at most max) equal the
 * source from offset so on. */
static apr_status_t fwd_src(iss_vcdiff_enc_t *e, apr_uint64_t so,
                            apr_size_t t, apr_size_t max, apr_size_t *n)
{
    apr_size_t c = 0;

    while (c < max && so + c < e->S) {
        const unsigned char *bp;
        apr_size_t blen, boff, avail, m;

        if (src_span(e, so + c, c, &bp, &boff, &blen) != APR_SUCCESS)
            return e->err;
        avail = blen - boff;
        if (avail > max - c)
            avail = max - c;
        m = prefix(e->win + t + c, bp + boff, avail);
        c += m;
        if (m < avail)
            break;
    }
    *n = c;
    return APR_SUCCESS;
}

/* How many bytes before window position t (at most max) equal those
 * before source offset so. */
static apr_status_t bwd_src(iss_vcdiff_enc_t *e, apr_uint64_t so,
                            apr_size_t t, apr_size_t max, apr_size_t *n)
{
    apr_size_t c = 0;

    if (max > so)
        max = (apr_size_t)so;
    while (c < max) {
        const unsigned char *bp;
        apr_size_t blen, boff, avail, i;

        if (src_span(e, so - c - 1, c, &bp, &boff, &blen) != APR_SUCCESS)
            return e->err;
        avail = boff + 1;
        if (avail > max - c)
            avail = max - c;
        for (i = 0; i < avail; i++)
            if (bp[boff - i] != e->win[t - c - 1 - i])
                break;
        c += i;
        if (i < avail)
            break;
    }
    *n = c;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* The source index. */

static APR_INLINE apr_uint64_t rh_init(const unsigned char *p)
{
    apr_uint64_t h = 0;
    int i;

    for (i = 0; i < SRC_L; i++)
        h = h * RH_MUL + p[i];
    return h;
}

static APR_INLINE apr_uint64_t rh_mix(apr_uint64_t h)
{
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 29;
    return h;
}

static void ix_insert(iss_vcdiff_enc_t *e, apr_uint64_t h, apr_uint64_t k)
{
    apr_uint64_t x = rh_mix(h);
    apr_size_t s = (apr_size_t)(x >> (64 - e->ix_bits));
    apr_uint64_t v = ((x & 0xffffffffULL) << 32) | (k + 1);

    if (e->ix[s] == 0)
        e->ix[s] = v;
    else if (e->ix[s ^ 1] == 0)
        e->ix[s ^ 1] = v;
}

/* Source offset of sample k. */
static apr_uint64_t sample_offset(const iss_vcdiff_enc_t *e, apr_uint64_t k)
{
    apr_size_t lo = 0, hi = e->nregions;

    while (hi - lo > 1) {
        apr_size_t mid = lo + (hi - lo) / 2;

        if (e->regions[mid].first_k <= k)
            lo = mid;
        else
            hi = mid;
    }
    return e->regions[lo].off + (k - e->regions[lo].first_k) * e->step;
}

/* Whether source offset so is in an indexed region (with manifests:
 * in a chunk the target does not COPY whole).  The last answer is kept
 * as an interval, so a walk along the source costs a search per region
 * or gap. */
static int in_region(iss_vcdiff_enc_t *e, apr_uint64_t so)
{
    apr_size_t lo = 0, hi = e->nregions;

    if (so >= e->rg_lo && so < e->rg_hi)
        return e->rg_in;
    if (e->nregions == 0 || so < e->regions[0].off) {
        e->rg_lo = 0;
        e->rg_hi = e->nregions ? e->regions[0].off : APR_UINT64_MAX;
        return e->rg_in = 0;
    }
    while (hi - lo > 1) {           /* the last region starting <= so */
        apr_size_t mid = lo + (hi - lo) / 2;

        if (e->regions[mid].off <= so)
            lo = mid;
        else
            hi = mid;
    }
    if (so < e->regions[lo].off + e->regions[lo].len) {
        e->rg_lo = e->regions[lo].off;
        e->rg_hi = e->regions[lo].off + e->regions[lo].len;
        return e->rg_in = 1;
    }
    e->rg_lo = e->regions[lo].off + e->regions[lo].len;
    e->rg_hi = lo + 1 < e->nregions ? e->regions[lo + 1].off
                                    : APR_UINT64_MAX;
    return e->rg_in = 0;
}

/* Read the regions once and index a sample every `step` bytes. */
static apr_status_t build_index(iss_vcdiff_enc_t *e)
{
    apr_uint64_t slots_max, max_samples, est, slots, k = 0;
    unsigned char *buf = NULL;
    apr_size_t r;

    e->indexed = 1;
    if (e->ix_bytes < SRC_L)
        return APR_SUCCESS;
    slots_max = 1;
    while (slots_max * 2 * sizeof(apr_uint64_t) <= e->o.index_size)
        slots_max *= 2;
    max_samples = slots_max / 2 > 0 ? slots_max / 2 : 1;
    e->step = (e->ix_bytes + max_samples - 1) / max_samples;
    if (e->step == 0)
        e->step = 1;
    est = e->ix_bytes / e->step + e->nregions;
    slots = pow2_at_least(2 * est);
    if (slots > slots_max)
        slots = slots_max;
    if (slots < 2)
        slots = 2;
    e->ix_bits = log2_of(slots);
    e->ix = calloc((apr_size_t)slots, sizeof(apr_uint64_t));
    buf = malloc(READ_PIECE);
    if (e->ix == NULL || buf == NULL) {
        free(buf);
        return fail(e, APR_ENOMEM, "out of memory");
    }
    for (r = 0; r < e->nregions; r++) {
        region_t *rg = &e->regions[r];
        apr_uint64_t pos = 0;

        rg->first_k = k;
        while (pos + SRC_L <= rg->len && k < 0xfffffffeULL) {
            apr_uint64_t piece = rg->len - pos;
            apr_size_t q = 0;
            apr_status_t rv;

            if (e->step >= 4096)
                piece = SRC_L;
            else if (piece > READ_PIECE)
                piece = READ_PIECE;
            rv = e->o.read_source(e->o.source_baton, rg->off + pos,
                                  (apr_size_t)piece, buf);
            if (rv != APR_SUCCESS) {
                free(buf);
                return fail(e, rv, "reading %" APR_UINT64_T_FMT " bytes of"
                            " source at %" APR_UINT64_T_FMT " failed", piece,
                            rg->off + pos);
            }
            if (e->step < SRC_L) {      /* roll through the piece */
                apr_uint64_t h = rh_init(buf);
                apr_size_t x = 0;

                for (;;) {
                    if (x == q) {
                        ix_insert(e, h, k++);
                        q += (apr_size_t)e->step;
                    }
                    if (x + SRC_L >= piece || k >= 0xfffffffeULL)
                        break;
                    h = (h - buf[x] * e->rh_pow) * RH_MUL + buf[x + SRC_L];
                    x++;
                }
            }
            else {
                while (q + SRC_L <= piece && k < 0xfffffffeULL) {
                    ix_insert(e, rh_init(buf + q), k++);
                    q += (apr_size_t)(e->step < piece ? e->step : piece);
                }
            }
            pos += e->step >= 4096 ? e->step : q;
        }
    }
    free(buf);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* The window's self index. */

static APR_INLINE apr_uint32_t load32(const unsigned char *p)
{
    apr_uint32_t v;

    memcpy(&v, p, 4);
    return v;
}

/* An entry of the self index: a window position + 1 (at most 2^24, 25
 * bits) and 7 more bits of the hash, so that most wrong candidates are
 * dropped without touching the window. */
#define SELF_POS_BITS 25
#define SELF_POS_MASK ((1u << SELF_POS_BITS) - 1)

static APR_INLINE apr_uint32_t self_hash(const unsigned char *p)
{
    return load32(p) * 2654435761u;
}

static APR_INLINE apr_uint32_t *self_bucket(iss_vcdiff_enc_t *e,
                                            apr_uint32_t h)
{
    return e->self + (apr_size_t)(h >> (32 - e->self_bits)) * SELF_WAYS;
}

static APR_INLINE apr_uint32_t self_tag(const iss_vcdiff_enc_t *e,
                                        apr_uint32_t h)
{
    return ((h >> (32 - e->self_bits - 7)) & 0x7f) << SELF_POS_BITS;
}

static APR_INLINE void self_insert(iss_vcdiff_enc_t *e, apr_size_t t)
{
    apr_uint32_t h = self_hash(e->win + t);
    apr_uint32_t *b = self_bucket(e, h);

    memmove(b + 1, b, (SELF_WAYS - 1) * sizeof(*b));
    b[0] = self_tag(e, h) | ((apr_uint32_t)t + 1);
}

/* ------------------------------------------------------------------ */
/* The greedy parse of window positions [s, end). */

/* The best match is the one that reaches furthest over literal bytes;
 * of equals, the one that reaches further back over the queue. */
#define CONSIDER(ty, fr, bk, ln)                                        \
    do {                                                                \
        apr_size_t gain_ = (ln) + ((bk) < t - lit ? (bk) : t - lit);    \
                                                                        \
        if (gain_ > best_gain                                           \
            || (gain_ == best_gain && (bk) > best.back)) {              \
            best.type = (ty);                                           \
            best.from = (fr);                                           \
            best.back = (bk);                                           \
            best.len = (ln);                                            \
            best_gain = gain_;                                          \
        }                                                               \
    } while (0)

/* How far back to compare a candidate of n bytes, at most @a back:
 * twice its length and a little more, and for a candidate of the sampled
 * index the step as well (it may be found up to step - 1 bytes late).
 * So the work per position stays in proportion to what is gained. */
static apr_size_t back_cap(const iss_vcdiff_enc_t *e, apr_size_t back,
                           apr_size_t n, int sampled)
{
    apr_uint64_t cap = 2 * (apr_uint64_t)n + BACK_SLACK
                       + (sampled ? e->step : 0);

    return cap < back ? (apr_size_t)cap : back;
}

static apr_status_t match_range(iss_vcdiff_enc_t *e, apr_size_t s,
                                apr_size_t end)
{
    const unsigned char *w = e->win;
    apr_size_t t = s, lit = s, hpos = 0;
    apr_uint64_t h = 0, ring[AHEAD];
    int have_h = 0;

    if (flush1(e) != APR_SUCCESS)       /* the queue: this range only */
        return e->err;
    while (t < end) {
        cand_t best = { OP_NONE, 0, 0, 0 };
        apr_size_t best_gain = 0, maxf = end - t, n, b;
        apr_size_t back = t - (e->qn ? e->q[0].t : lit);
        apr_uint64_t so, tried = APR_UINT64_MAX;

        /* (a) the continuation of the last source COPY; with manifests
         * only inside the indexed chunks, so that the source is read
         * there only (a COPY by manifest leads into them) */
        if (e->diag_ok && maxf >= MIN_MATCH) {
            apr_int64_t d = (apr_int64_t)(e->wstart + t) + e->diag;

            if (d >= 0 && (apr_uint64_t)d < e->S
                && (e->sm == NULL || in_region(e, (apr_uint64_t)d))) {
                so = (apr_uint64_t)d;
                tried = so;
                if (fwd_src(e, so, t, maxf, &n) != APR_SUCCESS)
                    return e->err;
                if (n >= MIN_MATCH) {
                    if (bwd_src(e, so, t, back_cap(e, back, n, 0), &b)
                        != APR_SUCCESS)
                        return e->err;
                    CONSIDER(OP_COPY_SRC, so, b, n);
                }
            }
        }
        /* (b) the window's own earlier bytes */
        if (maxf >= SELF_L) {
            apr_uint32_t hs = self_hash(w + t), tag = self_tag(e, hs);
            const apr_uint32_t *bk = self_bucket(e, hs);
            apr_uint32_t here4 = load32(w + t);
            int i;

            for (i = 0; i < SELF_WAYS && bk[i] != 0; i++) {
                apr_size_t p = (bk[i] & SELF_POS_MASK) - 1, lim;

                if ((bk[i] & ~SELF_POS_MASK) != tag || p < e->floor
                    || p >= t || load32(w + p) != here4)
                    continue;
                n = SELF_L + prefix(w + p + SELF_L, w + t + SELF_L,
                                    maxf - SELF_L);
                lim = back_cap(e, back, n, 0);
                if (lim > p - e->floor)
                    lim = p - e->floor;
                for (b = 0; b < lim && w[p - b - 1] == w[t - b - 1]; b++)
                    ;
                CONSIDER(OP_COPY_SELF, p, b, n);
            }
        }
        /* (c) a run of one byte */
        if (maxf >= MIN_MATCH && w[t] == w[t + 1] && w[t] == w[t + 2]
            && w[t] == w[t + 3]) {
            apr_size_t lim = t - lit;

            for (n = 4; n < maxf && w[t + n] == w[t]; n++)
                ;
            for (b = 0; b < lim && w[t - b - 1] == w[t]; b++)
                ;
            CONSIDER(OP_RUN, w[t], b, n);
        }

        /* (d) the source index, unless a match of SELF_ENOUGH bytes was
         * found above in memory: an index candidate costs a source read */
        if (e->ix != NULL && maxf >= SRC_L && best_gain < SELF_ENOUGH) {
            apr_uint64_t x;
            apr_size_t slot;
            int way;

            if (!have_h) {
                /* the mixed hashes of t .. t + AHEAD - 1 in ring[], their
                 * slots prefetched; h is the rolling hash at hpos */
                h = rh_init(w + t);
                hpos = t;
                for (;;) {
                    x = rh_mix(h);
                    ring[hpos % AHEAD] = x;
                    PREFETCH(&e->ix[x >> (64 - e->ix_bits)]);
                    if (hpos + 1 == t + AHEAD || hpos + 1 + SRC_L > end)
                        break;
                    h = (h - w[hpos] * e->rh_pow) * RH_MUL + w[hpos + SRC_L];
                    hpos++;
                }
                have_h = 1;
            }
            x = ring[t % AHEAD];
            slot = (apr_size_t)(x >> (64 - e->ix_bits));
            for (way = 0; way < 2; way++) {
                apr_uint64_t v = e->ix[slot ^ (apr_size_t)way];

                if (v == 0 || (v >> 32) != (x & 0xffffffffULL))
                    continue;
                so = sample_offset(e, (v & 0xffffffffULL) - 1);
                if (so == tried)
                    continue;
                if (fwd_src(e, so, t, maxf, &n) != APR_SUCCESS)
                    return e->err;
                if (n < MIN_MATCH)
                    continue;
                if (bwd_src(e, so, t, back_cap(e, back, n, 1), &b)
                    != APR_SUCCESS)
                    return e->err;
                CONSIDER(OP_COPY_SRC, so, b, n);
            }
        }
        if (best_gain > 0) {
            apr_size_t bk = best.back > t - lit
                            ? queue_back(e, t, lit, best.back) : best.back;
            apr_size_t st = t - bk, total = bk + best.len;
            apr_uint64_t from = best.type == OP_RUN ? best.from
                                                    : best.from - bk;
            int pays;

            if (best.type == OP_COPY_SRC)
                pays = copy_pays(total, from, e->S + st);
            else if (best.type == OP_COPY_SELF)
                pays = copy_pays(total, e->S + from, e->S + st);
            else
                pays = run_pays(total);
            if (pays) {
                if (st < lit)
                    queue_cut(e, st);
                else if (st > lit
                         && op(e, OP_ADD, lit, st - lit, 0) != APR_SUCCESS)
                    return e->err;
                if (op(e, best.type, st, total, from) != APR_SUCCESS)
                    return e->err;
                if (best.type == OP_COPY_SRC) {
                    e->diag = (apr_int64_t)from - (apr_int64_t)(e->wstart + st);
                    e->diag_ok = 1;
                }
                if (total <= SELF_INSERT) {
                    /* short matches repeat (templates, records): let
                     * the next one be found in memory */
                    apr_size_t k, kend = st + total;

                    if (kend > end - SELF_L + 1)
                        kend = end - SELF_L + 1;
                    for (k = st < t ? t : st; k < kend; k++)
                        self_insert(e, k);
                }
                t += best.len;
                lit = t;
                have_h = 0;
                continue;
            }
        }
        /* a literal */
        if (maxf >= SELF_L)
            self_insert(e, t);
        if (have_h && hpos + 1 + SRC_L <= end) {
            apr_uint64_t x;

            h = (h - w[hpos] * e->rh_pow) * RH_MUL + w[hpos + SRC_L];
            hpos++;
            x = rh_mix(h);
            ring[hpos % AHEAD] = x;
            PREFETCH(&e->ix[x >> (64 - e->ix_bits)]);
        }
        if (t + AHEAD + SELF_L <= end)
            PREFETCH(self_bucket(e, self_hash(w + t + AHEAD)));
        t++;
    }
    if (end > lit)
        return op(e, OP_ADD, lit, end - lit, 0);
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Manifests. */

static apr_uint64_t id_key(const unsigned char *id)
{
    apr_uint64_t k = 0;
    int i;

    for (i = 0; i < 8; i++)
        k = (k << 8) | id[i];
    return k;
}

/* The first source entry with the id and length of @a te, + 1; 0 if
 * none. */
static apr_uint32_t map_find(const apr_uint32_t *map, apr_uint64_t mask,
                             const iss_manifest_t *sm,
                             const iss_manifest_entry_t *te)
{
    apr_uint64_t slot = id_key(te->sha256) & mask;

    while (map[slot] != 0) {
        const iss_manifest_entry_t *se = &sm->entries[map[slot] - 1];

        if (memcmp(se->sha256, te->sha256, ISS_DIGEST_SHA256_LEN) == 0)
            return se->length == te->length ? map[slot] : 0;
        slot = (slot + 1) & mask;
    }
    return 0;
}

/* An id map of @a sm's entries (first of each id) in *map, and the chain
 * of later entries with the same id in *next (if @a next is not NULL). */
static apr_status_t map_build(const iss_manifest_t *sm, apr_uint32_t **map,
                              apr_uint64_t *mask, apr_uint32_t **next,
                              apr_pool_t *pool)
{
    apr_uint64_t slots = pow2_at_least(2 * (apr_uint64_t)sm->count + 2);
    apr_uint32_t i;

    if (slots > APR_SIZE_MAX / sizeof(apr_uint32_t))
        return APR_ENOMEM;
    *map = apr_pcalloc(pool, (apr_size_t)slots * sizeof(apr_uint32_t));
    *mask = slots - 1;
    if (next != NULL)
        *next = apr_pcalloc(pool, ((apr_size_t)sm->count + 1)
                                  * sizeof(apr_uint32_t));
    for (i = 0; i < sm->count; i++) {
        const iss_manifest_entry_t *se = &sm->entries[i];
        apr_uint64_t slot = id_key(se->sha256) & *mask;

        while ((*map)[slot] != 0
               && memcmp(sm->entries[(*map)[slot] - 1].sha256, se->sha256,
                         ISS_DIGEST_SHA256_LEN) != 0)
            slot = (slot + 1) & *mask;
        if ((*map)[slot] == 0)
            (*map)[slot] = i + 1;
        else if (next != NULL) {        /* after the first: O(1) */
            apr_uint32_t first = (*map)[slot] - 1;

            (*next)[i] = (*next)[first];
            (*next)[first] = i + 1;
        }
    }
    return APR_SUCCESS;
}

/* Whether target entry @a te becomes a COPY by manifest. */
static int planned(const iss_vcdiff_enc_t *e, const iss_manifest_entry_t *te)
{
    return te->length >= PLAN_MIN
           && map_find(e->map, e->map_mask, e->sm, te) != 0;
}

/* Which source entry to copy @a te from: the one after the last chunk
 * COPY, else the one the last source COPY predicts, else the first. */
static const iss_manifest_entry_t *choose(iss_vcdiff_enc_t *e,
                                          const iss_manifest_entry_t *te)
{
    apr_uint32_t first = map_find(e->map, e->map_mask, e->sm, te) - 1, i;
    int c;

    if (e->last_se > 0 && e->last_se < e->sm->count) {
        const iss_manifest_entry_t *se = &e->sm->entries[e->last_se];

        if (se->length == te->length
            && memcmp(se->sha256, te->sha256, ISS_DIGEST_SHA256_LEN) == 0) {
            e->last_se++;
            return se;
        }
    }
    if (e->diag_ok) {
        apr_int64_t want = (apr_int64_t)te->offset + e->diag;

        for (i = first, c = 0; c < CHAIN_MAX; c++) {
            if ((apr_int64_t)e->sm->entries[i].offset == want) {
                e->last_se = (apr_uint64_t)i + 1;
                return &e->sm->entries[i];
            }
            if (e->next_same[i] == 0)
                break;
            i = e->next_same[i] - 1;
        }
    }
    e->last_se = (apr_uint64_t)first + 1;
    return &e->sm->entries[first];
}

/* Cut the window into chunk COPYs and ranges to parse. */
static apr_status_t plan_window(iss_vcdiff_enc_t *e)
{
    const iss_manifest_t *tm = e->tm;
    apr_uint64_t wend = e->wstart + e->wlen;
    apr_size_t pos = 0;

    while (pos < e->wlen) {
        apr_uint64_t abs = e->wstart + pos, tend;
        const iss_manifest_entry_t *te;

        while (e->enc_j < tm->count
               && tm->entries[e->enc_j].offset
                  + tm->entries[e->enc_j].length <= abs)
            e->enc_j++;
        te = &tm->entries[e->enc_j];    /* abs < file_size: exists */
        tend = te->offset + te->length;
        if (planned(e, te)) {
            /* choose() once per entry: again only if the window cut it */
            const iss_manifest_entry_t *se;
            apr_uint64_t so;
            apr_size_t n = (apr_size_t)((tend < wend ? tend : wend) - abs);

            if (abs == te->offset || !e->diag_ok)
                se = choose(e, te);
            else {
                /* the entry's start was in the last window: keep its
                 * source (the last COPY's continuation) */
                apr_int64_t d = (apr_int64_t)te->offset + e->diag;

                se = e->last_se > 0 ? &e->sm->entries[e->last_se - 1]
                                    : choose(e, te);
                if ((apr_int64_t)se->offset != d)
                    se = choose(e, te);
            }
            so = se->offset + (abs - te->offset);
            if (e->wskipped || copy_pays(n, so, e->S + pos)) {
                if (op(e, OP_COPY_SRC, pos, n, so) != APR_SUCCESS)
                    return e->err;
                e->diag = (apr_int64_t)so - (apr_int64_t)abs;
                e->diag_ok = 1;
            }
            else if (match_range(e, pos, pos + n) != APR_SUCCESS)
                return e->err;
            pos += n;
            if (e->wskipped)
                e->floor = pos;
        }
        else {
            apr_uint32_t k = e->enc_j + 1;
            apr_size_t end;

            while (tend < wend && k < tm->count
                   && !planned(e, &tm->entries[k])) {
                tend = tm->entries[k].offset + tm->entries[k].length;
                k++;
            }
            end = (apr_size_t)((tend < wend ? tend : wend) - e->wstart);
            if (match_range(e, pos, end) != APR_SUCCESS)
                return e->err;
            pos = end;
        }
    }
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Windows. */

static apr_status_t emit(iss_vcdiff_enc_t *e, const void *p, apr_size_t n)
{
    apr_status_t rv;

    if (n == 0)
        return APR_SUCCESS;
    rv = e->o.write(e->o.write_baton, p, n);
    if (rv != APR_SUCCESS)
        return fail(e, rv, "writing the delta failed");
    e->out_bytes += n;
    return APR_SUCCESS;
}

static apr_status_t write_window(iss_vcdiff_enc_t *e)
{
    static const unsigned char fhdr[5] = { 0xd6, 0xc3, 0xc4, 0x00, 0x00 };
    unsigned char hdr[1 + 6 * 10 + 4];
    apr_size_t n = 0, dl, il, al;
    apr_uint64_t body, size;
    int ind = (e->S > 0 ? VCD_SOURCE : 0) | (e->o.checksum ? VCD_ADLER32 : 0);

    if (flush1(e) != APR_SUCCESS || flush2(e) != APR_SUCCESS)
        return e->err;
    dl = e->data.len;
    il = e->inst.len;
    al = e->addr.len;
    hdr[n++] = (unsigned char)ind;
    if (ind & VCD_SOURCE) {
        n += (apr_size_t)put_varint(hdr + n, e->S);
        n += (apr_size_t)put_varint(hdr + n, 0);
    }
    body = (apr_uint64_t)varint_len(e->wlen) + 1 + (apr_uint64_t)varint_len(dl)
           + (apr_uint64_t)varint_len(il) + (apr_uint64_t)varint_len(al)
           + (e->o.checksum ? 4 : 0) + dl + il + al;
    n += (apr_size_t)put_varint(hdr + n, body);
    n += (apr_size_t)put_varint(hdr + n, e->wlen);
    hdr[n++] = 0;                       /* Delta_Indicator */
    n += (apr_size_t)put_varint(hdr + n, dl);
    n += (apr_size_t)put_varint(hdr + n, il);
    n += (apr_size_t)put_varint(hdr + n, al);
    if (e->o.checksum) {
        uLong c = adler32(0L, Z_NULL, 0);
        apr_size_t off = 0;

        while (off < e->wlen) {         /* uInt pieces */
            apr_size_t k = e->wlen - off > 0x40000000 ? 0x40000000
                                                      : e->wlen - off;

            c = adler32(c, e->win + off, (uInt)k);
            off += k;
        }
        hdr[n++] = (unsigned char)(c >> 24);
        hdr[n++] = (unsigned char)(c >> 16);
        hdr[n++] = (unsigned char)(c >> 8);
        hdr[n++] = (unsigned char)c;
    }
    size = n + dl + il + al + (e->header_done ? 0 : sizeof(fhdr));
    if (e->o.max_delta > 0 && (e->out_bytes > e->o.max_delta
                               || size > e->o.max_delta - e->out_bytes))
        return fail(e, ISS_VCDIFF_ENC_ETOOBIG, "the delta would be larger"
                    " than %" APR_UINT64_T_FMT " bytes", e->o.max_delta);
    if (!e->header_done) {
        if (emit(e, fhdr, sizeof(fhdr)) != APR_SUCCESS)
            return e->err;
        e->header_done = 1;
    }
    if (emit(e, hdr, n) != APR_SUCCESS
        || emit(e, e->data.p, dl) != APR_SUCCESS
        || emit(e, e->inst.p, il) != APR_SUCCESS
        || emit(e, e->addr.p, al) != APR_SUCCESS)
        return e->err;
    e->data.len = e->inst.len = e->addr.len = 0;
    return APR_SUCCESS;
}

static apr_status_t encode_window(iss_vcdiff_enc_t *e)
{
    apr_status_t rv;

    if (!e->indexed && build_index(e) != APR_SUCCESS)
        return e->err;
    memset(e->near, 0, sizeof(e->near));
    memset(e->same, 0, sizeof(e->same));
    e->next_slot = 0;
    e->qn = 0;
    e->p2 = P2_NONE;
    e->floor = 0;
    /* wlen / 128 buckets, 2^4 .. 2^16: a short window (a small target)
     * allocates and clears few; every window but the last is W long */
    e->self_bits = 4;
    while (e->self_bits < 16 && ((apr_size_t)128 << e->self_bits) < e->wlen)
        e->self_bits++;
    if (e->self_bits > e->self_max) {
        free(e->self);
        e->self = malloc(((apr_size_t)1 << e->self_bits) * SELF_WAYS
                         * sizeof(apr_uint32_t));
        if (e->self == NULL)
            return fail(e, APR_ENOMEM, "out of memory");
        e->self_max = e->self_bits;
    }
    memset(e->self, 0, ((apr_size_t)1 << e->self_bits) * SELF_WAYS
                       * sizeof(apr_uint32_t));
    rv = e->tm != NULL ? plan_window(e) : match_range(e, 0, e->wlen);
    if (rv != APR_SUCCESS || write_window(e) != APR_SUCCESS)
        return e->err;
    e->wstart += e->wlen;
    e->wlen = 0;
    e->wskipped = 0;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */

static int manifest_ok(const iss_manifest_t *m)
{
    apr_uint64_t off = 0;
    apr_uint32_t i;

    if (m->count > 0 && m->entries == NULL)
        return 0;
    for (i = 0; i < m->count; i++) {
        if (m->entries[i].offset != off || m->entries[i].length == 0)
            return 0;
        off += m->entries[i].length;
    }
    return off == m->file_size;
}

/* The regions to index: the whole source, or (with manifests) the
 * source chunks whose ids no target chunk COPYs. */
static apr_status_t plan_regions(iss_vcdiff_enc_t *e)
{
    const iss_manifest_t *sm = e->sm, *tm = e->tm;
    unsigned char *used;
    apr_pool_t *scratch;
    apr_uint32_t i;
    apr_size_t n = 0;

    if (e->S == 0)
        return APR_SUCCESS;
    if (sm == NULL) {
        e->regions = apr_pcalloc(e->pool, sizeof(region_t));
        e->regions[0].len = e->S;
        e->nregions = 1;
        e->ix_bytes = e->S;
        return APR_SUCCESS;
    }
    if (apr_pool_create(&scratch, e->pool) != APR_SUCCESS)
        return APR_ENOMEM;
    used = apr_pcalloc(scratch, sm->count);
    for (i = 0; i < tm->count; i++) {
        apr_uint32_t f;

        if (!planned(e, &tm->entries[i]))
            continue;
        f = map_find(e->map, e->map_mask, sm, &tm->entries[i]);
        while (f != 0 && !used[f - 1]) {
            used[f - 1] = 1;
            f = e->next_same[f - 1];
        }
    }
    for (i = 0; i < sm->count; i++)
        if (!used[i] && (i == 0 || used[i - 1]))
            n++;
    e->regions = apr_pcalloc(e->pool, (n ? n : 1) * sizeof(region_t));
    n = 0;
    for (i = 0; i < sm->count; i++) {
        if (used[i])
            continue;
        if (i == 0 || used[i - 1]) {
            e->regions[n].off = sm->entries[i].offset;
            n++;
        }
        e->regions[n - 1].len += sm->entries[i].length;
        e->ix_bytes += sm->entries[i].length;
    }
    e->nregions = n;
    apr_pool_destroy(scratch);
    return APR_SUCCESS;
}

apr_status_t iss_vcdiff_enc_create(iss_vcdiff_enc_t **enc,
                                   const iss_vcdiff_enc_opts_t *opts,
                                   apr_pool_t *pool)
{
    iss_vcdiff_enc_t *e;
    int i;

    *enc = NULL;
    if (opts == NULL || opts->write == NULL
        || (opts->read_source == NULL && opts->source_size > 0)
        || opts->window > ISS_VCDIFF_ENC_WINDOW_MAX
        || (opts->index_size != 0
            && (opts->index_size < ISS_VCDIFF_ENC_INDEX_MIN
                || opts->index_size > ISS_VCDIFF_ENC_INDEX_MAX))
        || (opts->source_manifest == NULL) != (opts->target_manifest == NULL)
        || opts->source_size > (apr_uint64_t)INT64_MAX / 2)
        return APR_EINVAL;
    if (opts->source_manifest != NULL
        && (opts->source_manifest->file_size != opts->source_size
            || !manifest_ok(opts->source_manifest)
            || !manifest_ok(opts->target_manifest)
            || opts->target_manifest->file_size > (apr_uint64_t)INT64_MAX / 2))
        return APR_EINVAL;
    e = apr_pcalloc(pool, sizeof(*e));
    e->pool = pool;
    e->o = *opts;
    if (e->o.window == 0)
        e->o.window = ISS_VCDIFF_ENC_WINDOW_DEFAULT;
    if (e->o.index_size == 0)
        e->o.index_size = ISS_VCDIFF_ENC_INDEX_DEFAULT;
    e->W = e->o.window;
    e->S = e->o.source_size;
    e->step = 1;
    e->rh_pow = 1;
    for (i = 0; i < SRC_L - 1; i++)
        e->rh_pow *= RH_MUL;
    apr_pool_cleanup_register(pool, e, cleanup, apr_pool_cleanup_null);
    if (opts->source_manifest != NULL) {
        e->sm = opts->source_manifest;
        e->tm = opts->target_manifest;
        if (map_build(e->sm, &e->map, &e->map_mask, &e->next_same, pool)
            != APR_SUCCESS)
            return APR_ENOMEM;
    }
    if (plan_regions(e) != APR_SUCCESS)
        return APR_ENOMEM;
    *enc = e;
    return APR_SUCCESS;
}

static apr_status_t win_room(iss_vcdiff_enc_t *e, apr_size_t n)
{
    apr_size_t cap;
    unsigned char *p;

    if (e->wlen <= e->wcap && e->wcap - e->wlen >= n)
        return APR_SUCCESS;     /* (skipped bytes may leave wlen > wcap) */
    cap = e->wcap ? e->wcap * 2 : 64 * 1024;
    if (cap < e->wlen + n)
        cap = e->wlen + n;
    if (cap > e->W)
        cap = e->W;
    p = realloc(e->win, cap);
    if (p == NULL)
        return fail(e, APR_ENOMEM, "out of memory");
    e->win = p;
    e->wcap = cap;
    return APR_SUCCESS;
}

apr_status_t iss_vcdiff_enc_feed(iss_vcdiff_enc_t *enc, const void *buf,
                                 apr_size_t len)
{
    iss_vcdiff_enc_t *e = enc;
    const unsigned char *in = buf;

    if (e->err != APR_SUCCESS)
        return e->err;
    if (e->finished)
        return APR_EINVAL;
    if (e->tm != NULL && len > e->tm->file_size - e->total)
        return fail(e, ISS_VCDIFF_ENC_EMANIFEST, "the target is longer than"
                    " its manifest says (%" APR_UINT64_T_FMT " bytes)",
                    e->tm->file_size);
    while (len > 0) {
        apr_size_t n = e->W - e->wlen;

        if (n > len)
            n = len;
        if (win_room(e, n) != APR_SUCCESS)
            return e->err;
        memcpy(e->win + e->wlen, in, n);
        e->wlen += n;
        e->total += n;
        in += n;
        len -= n;
        if (e->wlen == e->W && encode_window(e) != APR_SUCCESS)
            return e->err;
    }
    return APR_SUCCESS;
}

apr_uint64_t iss_vcdiff_enc_skippable(iss_vcdiff_enc_t *enc)
{
    iss_vcdiff_enc_t *e = enc;
    const iss_manifest_t *tm = e->tm;
    apr_uint64_t upto;
    apr_uint32_t k;

    if (e->err != APR_SUCCESS || e->finished || tm == NULL || e->o.checksum)
        return 0;
    if (e->total < e->skip_upto)
        return e->skip_upto - e->total;
    while (e->feed_j < tm->count
           && tm->entries[e->feed_j].offset + tm->entries[e->feed_j].length
              <= e->total)
        e->feed_j++;
    upto = e->total;
    for (k = e->feed_j; k < tm->count && planned(e, &tm->entries[k]); k++)
        upto = tm->entries[k].offset + tm->entries[k].length;
    e->skip_upto = upto;
    return upto - e->total;
}

apr_uint64_t iss_vcdiff_enc_wanted(iss_vcdiff_enc_t *enc)
{
    iss_vcdiff_enc_t *e = enc;
    const iss_manifest_t *tm = e->tm;
    apr_uint64_t upto;
    apr_uint32_t k;

    if (tm == NULL || e->o.checksum)
        return APR_UINT64_MAX;
    if (e->err != APR_SUCCESS || e->finished
        || iss_vcdiff_enc_skippable(e) > 0)
        return 0;
    /* skippable() moved feed_j to the entry at e->total */
    upto = e->total;
    for (k = e->feed_j; k < tm->count && !planned(e, &tm->entries[k]); k++)
        upto = tm->entries[k].offset + tm->entries[k].length;
    return upto - e->total;
}

apr_status_t iss_vcdiff_enc_skip(iss_vcdiff_enc_t *enc, apr_uint64_t len)
{
    iss_vcdiff_enc_t *e = enc;

    if (e->err != APR_SUCCESS)
        return e->err;
    if (e->finished || len > iss_vcdiff_enc_skippable(e))
        return APR_EINVAL;
    while (len > 0) {
        apr_size_t n = e->W - e->wlen;

        if (n > len)
            n = (apr_size_t)len;
        e->wlen += n;
        e->total += n;
        e->wskipped = 1;
        len -= n;
        if (e->wlen == e->W) {
            if (win_room(e, 0) != APR_SUCCESS
                || encode_window(e) != APR_SUCCESS)
                return e->err;
        }
    }
    return APR_SUCCESS;
}

apr_status_t iss_vcdiff_enc_finish(iss_vcdiff_enc_t *enc)
{
    iss_vcdiff_enc_t *e = enc;

    if (e->err != APR_SUCCESS)
        return e->err;
    if (e->finished)
        return APR_EINVAL;
    if (e->tm != NULL && e->total != e->tm->file_size)
        return fail(e, ISS_VCDIFF_ENC_EMANIFEST, "the target is shorter"
                    " (%" APR_UINT64_T_FMT " bytes) than its manifest says"
                    " (%" APR_UINT64_T_FMT ")", e->total, e->tm->file_size);
    if (e->wlen > 0 || !e->header_done) {
        /* an empty target still gets one (empty) window */
        if (e->wlen == 0)
            e->S = 0;
        if (e->wlen > 0 ? encode_window(e) != APR_SUCCESS
                        : write_window(e) != APR_SUCCESS)
            return e->err;
    }
    e->finished = 1;
    return APR_SUCCESS;
}

apr_uint64_t iss_vcdiff_enc_delta_size(const iss_vcdiff_enc_t *enc)
{
    return enc->out_bytes;
}

apr_uint64_t iss_vcdiff_enc_target_size(const iss_vcdiff_enc_t *enc)
{
    return enc->total;
}

const char *iss_vcdiff_enc_error(const iss_vcdiff_enc_t *enc)
{
    return enc->msg;
}

apr_status_t iss_vcdiff_enc_changed_bytes(const iss_manifest_t *source,
                                          const iss_manifest_t *target,
                                          apr_uint64_t *changed,
                                          apr_pool_t *pool)
{
    apr_pool_t *scratch;
    apr_uint32_t *map, i;
    apr_uint64_t mask, sum = 0;
    apr_status_t rv;

    if (changed != NULL)
        *changed = 0;
    if (source == NULL || target == NULL || changed == NULL || pool == NULL
        || (source->count > 0 && source->entries == NULL)
        || (target->count > 0 && target->entries == NULL))
        return APR_EINVAL;
    rv = apr_pool_create(&scratch, pool);
    if (rv != APR_SUCCESS)
        return rv;
    rv = map_build(source, &map, &mask, NULL, scratch);
    if (rv == APR_SUCCESS) {
        for (i = 0; i < target->count; i++) {
            const iss_manifest_entry_t *te = &target->entries[i];

            if (te->length < PLAN_MIN
                || map_find(map, mask, source, te) == 0)
                sum += te->length;
        }
        *changed = sum;
    }
    apr_pool_destroy(scratch);
    return rv;
}
