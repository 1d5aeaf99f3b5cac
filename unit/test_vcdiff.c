/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* iss_vcdiff: deltas made by xdelta3 at test time (with and without its
 * Adler-32 window checksum, one and many windows) decode to the new file
 * whatever the chunking of the input; hand-built deltas cover RUN,
 * overlapping COPY, VCD_TARGET windows, NEAR/SAME addresses, the limits,
 * truncation at every offset, the refused features; random mutations
 * never crash; test_edges() runs the edge cases (empty source and
 * target, boundaries, overlap, RUN, maximal sizes) with the delta cut in
 * two at every offset (run it under ASan as well: scripts/build.sh asan). */

#include "iss_vcdiff.h"
#include "tap.h"
#include "testfs.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static apr_pool_t *gp;
static const char *tmp;
static int have_xdelta;

/* ---- a growable byte buffer -------------------------------------------- */

typedef struct buf_t {
    unsigned char *p;
    size_t len, cap;
} buf_t;

static void buf_add(buf_t *b, const void *d, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;

        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (b->p == NULL)
            abort();
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void buf_byte(buf_t *b, unsigned c)
{
    unsigned char x = (unsigned char)c;

    buf_add(b, &x, 1);
}

static void buf_varint(buf_t *b, apr_uint64_t v)
{
    unsigned char t[10];
    int n = 0, i;

    do {
        t[n++] = v & 0x7f;
        v >>= 7;
    } while (v);
    for (i = n - 1; i >= 0; i--)
        buf_byte(b, t[i] | (i ? 0x80 : 0));
}

static void buf_free(buf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ---- running the decoder ------------------------------------------------ */

typedef struct run_t {
    const unsigned char *src;
    size_t src_len;
    buf_t out;
    int no_target_cb;
    apr_size_t max_window;
    apr_uint64_t max_target;
    apr_size_t max_sections;
    apr_uint64_t growth_ratio, growth_floor;
    int writes;
    char msg[200];
    apr_status_t feed_rv;
} run_t;

static apr_status_t rd_src(void *baton, apr_uint64_t off, apr_size_t len,
                           unsigned char *to)
{
    run_t *r = baton;

    if (off > r->src_len || len > r->src_len - off)
        return APR_EOF;
    memcpy(to, r->src + off, len);
    return APR_SUCCESS;
}

static apr_status_t rd_tgt(void *baton, apr_uint64_t off, apr_size_t len,
                           unsigned char *to)
{
    run_t *r = baton;

    if (off > r->out.len || len > r->out.len - off)
        return APR_EOF;
    memcpy(to, r->out.p + off, len);
    return APR_SUCCESS;
}

static apr_status_t wr(void *baton, const unsigned char *b, apr_size_t len)
{
    run_t *r = baton;

    r->writes++;
    buf_add(&r->out, b, len);
    return APR_SUCCESS;
}

static apr_uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static apr_uint64_t rnd(void)
{
    apr_uint64_t x = rng_state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* chunk: 0 = all at once, 1 = byte by byte, -1 = random sizes. */
static apr_status_t decode(run_t *r, const unsigned char *delta, size_t dlen,
                           int chunk)
{
    iss_vcdiff_opts_t o;
    iss_vcdiff_t *dec;
    apr_pool_t *p;
    apr_status_t rv;
    size_t off = 0;

    apr_pool_create(&p, gp);
    memset(&o, 0, sizeof(o));
    /* xdelta3's default window (-W) is 8 MiB */
    o.max_window = r->max_window ? r->max_window : 8 << 20;
    o.max_target = r->max_target ? r->max_target : 1ULL << 32;
    o.max_sections = r->max_sections;
    o.source_size = r->src_len;
    o.growth_ratio = r->growth_ratio;
    o.growth_floor = r->growth_floor;
    o.read_source = rd_src;
    o.source_baton = r;
    if (!r->no_target_cb) {
        o.read_target = rd_tgt;
        o.target_baton = r;
    }
    o.write = wr;
    o.write_baton = r;
    r->out.len = 0;
    r->writes = 0;
    rv = iss_vcdiff_create(&dec, &o, p);
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(p);
        return rv;
    }
    r->feed_rv = APR_SUCCESS;
    while (off < dlen && rv == APR_SUCCESS) {
        size_t n = dlen - off;

        if (chunk == 1)
            n = 1;
        else if (chunk < 0)
            n = 1 + (size_t)(rnd() % (rnd() % 3 == 0 ? 7 : 5000));
        if (n > dlen - off)
            n = dlen - off;
        rv = iss_vcdiff_feed(dec, delta + off, n);
        off += n;
    }
    r->feed_rv = rv;
    if (rv == APR_SUCCESS)
        rv = iss_vcdiff_finish(dec);
    else if (iss_vcdiff_feed(dec, "", 0) != rv
             || iss_vcdiff_finish(dec) != rv)   /* errors are sticky */
        rv = APR_EGENERAL;
    apr_cpystrn(r->msg, iss_vcdiff_error(dec), sizeof(r->msg));
    if ((rv == APR_SUCCESS) != (r->msg[0] == '\0'))
        rv = APR_EGENERAL;                  /* message iff error */
    apr_pool_destroy(p);
    return rv;
}

/* ---- files and xdelta3 ---------------------------------------------------- */

static int put(const char *path, const unsigned char *d, size_t n)
{
    apr_file_t *f;
    apr_status_t rv = apr_file_open(&f, path, APR_FOPEN_WRITE
                                    | APR_FOPEN_CREATE | APR_FOPEN_TRUNCATE
                                    | APR_FOPEN_BINARY,
                                    APR_FPROT_OS_DEFAULT, gp);

    if (rv == APR_SUCCESS) {
        rv = apr_file_write_full(f, d, n, NULL);
        apr_file_close(f);
    }
    return rv == APR_SUCCESS;
}

static int slurp(const char *path, buf_t *b)
{
    FILE *f = fopen(path, "rb");
    unsigned char t[65536];
    size_t n;

    b->len = 0;
    if (f == NULL)
        return 0;
    while ((n = fread(t, 1, sizeof(t), f)) > 0)
        buf_add(b, t, n);
    fclose(f);
    return 1;
}

/* xdelta3 -e -D -S none -A [-n] [-W w] -s OLD NEW DELTA */
static int xdelta(const unsigned char *old, size_t olen,
                  const unsigned char *new, size_t nlen, int nocksum,
                  int wsize, buf_t *delta)
{
    const char *o = apr_pstrcat(gp, tmp, "/old", NULL);
    const char *n = apr_pstrcat(gp, tmp, "/new", NULL);
    const char *d = apr_pstrcat(gp, tmp, "/delta", NULL);
    const char *cmd;

    if (!have_xdelta || !put(o, old, olen) || !put(n, new, nlen))
        return 0;
    cmd = apr_psprintf(gp, "xdelta3 -e -f -D -S none -A %s %s -s %s %s %s",
                       nocksum ? "-n" : "",
                       wsize ? apr_psprintf(gp, "-W %d", wsize) : "",
                       o, n, d);
    if (system(cmd) != 0) {
        diag("failed: %s", cmd);
        return 0;
    }
    return slurp(d, delta);
}

static void fill_random(unsigned char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        p[i] = (unsigned char)(rnd() >> 24);
}

/* Text-like data that compresses and matches well. */
static void fill_text(unsigned char *p, size_t n)
{
    static const char *words[] = { "alpha ", "beta ", "gamma ", "delta ",
        "epsilon\n", "zeta ", "eta ", "theta ", "iota ", "kappa\n" };
    size_t i = 0;

    while (i < n) {
        const char *w = words[rnd() % 10];
        size_t l = strlen(w);

        if (l > n - i)
            l = n - i;
        memcpy(p + i, w, l);
        i += l;
    }
}

static int same(const buf_t *b, const unsigned char *want, size_t n)
{
    return b->len == n && (n == 0 || memcmp(b->p, want, n) == 0);
}

/* Does the window indicator of the first window carry VCD_ADLER32?  For
 * xdelta3's deltas with -A: header is 5 bytes, then Win_Indicator. */
static int first_win_ind(const buf_t *d)
{
    return d->len > 5 ? d->p[5] : -1;
}

/* Decode a real delta in three chunkings and compare. */
static void check_real(const char *name, const unsigned char *old,
                       size_t olen, const unsigned char *new, size_t nlen,
                       int wsize)
{
    int nocksum;

    for (nocksum = 0; nocksum <= 1; nocksum++) {
        buf_t delta = { 0 };
        run_t r;
        int chunk;

        if (!xdelta(old, olen, new, nlen, nocksum, wsize, &delta)) {
            ok(0, "%s%s: xdelta3 made a delta", name, nocksum ? " -n" : "");
            continue;
        }
        ok(first_win_ind(&delta) >= 0
           && ((first_win_ind(&delta) & 0x04) != 0) == !nocksum,
           "%s%s: Adler-32 bit %s", name, nocksum ? " -n" : "",
           nocksum ? "absent" : "present");
        for (chunk = -1; chunk <= 1; chunk++) {
            apr_status_t rv;

            if (chunk == 1 && delta.len > 300000)
                continue;       /* byte by byte: the big cases are enough
                                   with random chunks */
            memset(&r, 0, sizeof(r));
            r.src = old;
            r.src_len = olen;
            rv = decode(&r, delta.p, delta.len, chunk);
            ok(rv == APR_SUCCESS && same(&r.out, new, nlen),
               "%s%s: decoded (%s, %zu byte delta, %d windows written)",
               name, nocksum ? " -n" : "",
               chunk == 0 ? "one chunk" : chunk == 1 ? "byte by byte"
               : "random chunks", delta.len, r.writes);
            if (rv != APR_SUCCESS)
                diag("rv %d: %s", rv, r.msg);
            buf_free(&r.out);
        }
        buf_free(&delta);
    }
}

static void test_real(void)
{
    unsigned char a[8192], b[9000];
    size_t n = 6000;
    unsigned char *big_old, *big_new;
    size_t big = 1536 * 1024, i;

    ok(have_xdelta, "xdelta3 is installed (needed by these tests)");

    fill_text(a, n);
    check_real("identical", a, n, a, n, 0);

    memcpy(b, a, n);
    b[1234] ^= 0x55;
    check_real("1 byte changed", a, n, b, n, 0);

    memcpy(b, a, 3000);
    memcpy(b + 3000, "INSERTED TEXT HERE", 18);
    memcpy(b + 3018, a + 3000, n - 3000);
    check_real("insertion", a, n, b, n + 18, 0);

    memcpy(b, a, 2000);
    memcpy(b + 2000, a + 2500, n - 2500);
    check_real("deletion", a, n, b, n - 500, 0);

    memcpy(b, a, n);
    fill_text(b + n, 2000);
    check_real("appended", a, n, b, n + 2000, 0);

    check_real("empty source", a, 0, a, n, 0);
    check_real("empty target", a, n, a, 0, 0);
    check_real("both empty", a, 0, a, 0, 0);

    fill_random(a, sizeof(a));
    fill_random(b, sizeof(b));
    check_real("random, no matches", a, sizeof(a), b, sizeof(b), 0);

    /* Bigger than many windows of 16 KiB. */
    big_old = malloc(big);
    big_new = malloc(big + 4096);
    if (big_old == NULL || big_new == NULL)
        abort();
    fill_text(big_old, big);
    memcpy(big_new, big_old, big);
    for (i = 0; i < 40; i++)
        big_new[rnd() % big] = (unsigned char)rnd();
    memmove(big_new + 700000 + 4096, big_new + 700000, big - 700000);
    fill_random(big_new + 700000, 4096);
    check_real("1.5 MB, -W 16384", big_old, big, big_new, big + 4096, 16384);
    check_real("1.5 MB, default window", big_old, big, big_new, big + 4096,
               0);
    fill_random(big_new, 300000);
    check_real("300 KB random vs text, -W 16384", big_old, big, big_new,
               300000, 16384);
    free(big_old);
    free(big_new);
}

/* ---- hand-built deltas ----------------------------------------------------- */

/* Opcodes of the default code table. */
#define OP_RUN0        0
#define OP_ADD(n)      (1 + (n))            /* n = 0 (size follows) .. 17 */
#define OP_COPY(s, m)  (19 + 16 * (m) + ((s) ? (s) - 3 : 0))

static void header(buf_t *d)
{
    static const unsigned char h[5] = { 0xd6, 0xc3, 0xc4, 0x00, 0x00 };

    buf_add(d, h, 5);
}

/* One window; adler < 0 means no checksum. */
static void window(buf_t *d, int ind, apr_uint64_t seg_len,
                   apr_uint64_t seg_pos, apr_uint64_t tlen,
                   const buf_t *data, const buf_t *inst, const buf_t *addr,
                   long long adler)
{
    buf_t e = { 0 };

    if (adler >= 0)
        ind |= 0x04;
    buf_byte(d, ind);
    if (ind & 3) {
        buf_varint(d, seg_len);
        buf_varint(d, seg_pos);
    }
    buf_varint(&e, tlen);
    buf_byte(&e, 0);
    buf_varint(&e, data->len);
    buf_varint(&e, inst->len);
    buf_varint(&e, addr->len);
    if (adler >= 0) {
        buf_byte(&e, (unsigned)(adler >> 24) & 0xff);
        buf_byte(&e, (unsigned)(adler >> 16) & 0xff);
        buf_byte(&e, (unsigned)(adler >> 8) & 0xff);
        buf_byte(&e, (unsigned)adler & 0xff);
    }
    buf_add(&e, data->p, data->len);
    buf_add(&e, inst->p, inst->len);
    buf_add(&e, addr->p, addr->len);
    buf_varint(d, e.len);
    buf_add(d, e.p, e.len);
    buf_free(&e);
}

static long long adler_of(const void *p, size_t n)
{
    return (long long)adler32(adler32(0, Z_NULL, 0), p, (uInt)n);
}

static void sec_reset(buf_t *data, buf_t *inst, buf_t *addr)
{
    data->len = inst->len = addr->len = 0;
}

static apr_status_t run_hand(run_t *r, const buf_t *d, int chunk)
{
    return decode(r, d->p, d->len, chunk);
}

static void test_hand(void)
{
    buf_t d = { 0 }, data = { 0 }, inst = { 0 }, addr = { 0 };
    run_t r;
    unsigned char src[1024];
    unsigned char want[64];
    apr_status_t rv;
    int i;

    for (i = 0; i < 1024; i++)
        src[i] = (unsigned char)(i * 7 + (i >> 8));

    /* RUN: 300 x 'z' */
    header(&d);
    buf_byte(&inst, OP_RUN0);
    buf_varint(&inst, 300);
    buf_byte(&data, 'z');
    {
        unsigned char z[300];

        memset(z, 'z', sizeof(z));
        window(&d, 0, 0, 0, 300, &data, &inst, &addr, adler_of(z, 300));
        memset(&r, 0, sizeof(r));
        rv = run_hand(&r, &d, 1);
        ok(rv == APR_SUCCESS && same(&r.out, z, 300), "RUN of 300 bytes");
        buf_free(&r.out);
    }

    /* "abc" + COPY 9 from HERE 3 -> abcabcabcabc (overlapping) */
    d.len = 0;
    sec_reset(&data, &inst, &addr);
    header(&d);
    buf_byte(&inst, OP_ADD(3));
    buf_add(&data, "abc", 3);
    buf_byte(&inst, OP_COPY(9, 1));
    buf_varint(&addr, 3);
    window(&d, 0, 0, 0, 12, &data, &inst, &addr, -1);
    memset(&r, 0, sizeof(r));
    rv = run_hand(&r, &d, 0);
    ok(rv == APR_SUCCESS && same(&r.out, (const unsigned char *)
                                 "abcabcabcabc", 12),
       "overlapping COPY (HERE) repeats abc");
    if (rv)
        diag("%s", r.msg);
    /* COPY address == here: out of range */
    d.len = 0;
    addr.len = 0;
    header(&d);
    buf_varint(&addr, 0);
    window(&d, 0, 0, 0, 12, &data, &inst, &addr, -1);
    rv = run_hand(&r, &d, 0);
    is_int(rv, ISS_VCDIFF_EFORMAT, "COPY from address == here is refused");
    /* HERE offset larger than here */
    d.len = 0;
    addr.len = 0;
    header(&d);
    buf_varint(&addr, 4);
    window(&d, 0, 0, 0, 12, &data, &inst, &addr, -1);
    rv = run_hand(&r, &d, 0);
    is_int(rv, ISS_VCDIFF_EFORMAT, "COPY from before the address space");
    buf_free(&r.out);

    /* COPY spanning the end of the source segment into the target */
    d.len = 0;
    sec_reset(&data, &inst, &addr);
    header(&d);
    buf_byte(&inst, OP_COPY(8, 0));
    buf_varint(&addr, 12);           /* source bytes 12..15, then T[0..3] */
    window(&d, 0x01, 16, 100, 8, &data, &inst, &addr, -1);
    memset(&r, 0, sizeof(r));
    r.src = src;
    r.src_len = sizeof(src);
    rv = run_hand(&r, &d, -1);
    is_int(rv, ISS_VCDIFF_EFORMAT, "COPY across the end of the source"
           " segment into the target window is refused (RFC 3284 s. 3)");
    ok(strstr(r.msg, "into the target window") != NULL,
       "  and the message says so");
    buf_free(&r.out);
    /* the same bytes in two COPYs, one per segment, decode */
    d.len = 0;
    sec_reset(&data, &inst, &addr);
    header(&d);
    buf_byte(&inst, OP_COPY(4, 0));
    buf_varint(&addr, 12);           /* source bytes 12..15 */
    buf_byte(&inst, OP_COPY(4, 0));
    buf_varint(&addr, 16);           /* T[0..3] */
    window(&d, 0x01, 16, 100, 8, &data, &inst, &addr, -1);
    memset(&r, 0, sizeof(r));
    r.src = src;
    r.src_len = sizeof(src);
    rv = run_hand(&r, &d, -1);
    memcpy(want, src + 112, 4);
    memcpy(want + 4, src + 112, 4);
    ok(rv == APR_SUCCESS && same(&r.out, want, 8),
       "COPY to the end of the source segment, then from the target");
    /* a COPY ending exactly at the end of the source segment */
    d.len = 0;
    sec_reset(&data, &inst, &addr);
    header(&d);
    buf_byte(&inst, OP_COPY(8, 0));
    buf_varint(&addr, 8);
    window(&d, 0x01, 16, 100, 8, &data, &inst, &addr, -1);
    buf_free(&r.out);
    memset(&r, 0, sizeof(r));
    r.src = src;
    r.src_len = sizeof(src);
    rv = run_hand(&r, &d, -1);
    ok(rv == APR_SUCCESS && same(&r.out, src + 108, 8),
       "COPY ending at the end of the source segment");
    /* COPY address beyond source segment + target */
    d.len = 0;
    addr.len = 0;
    header(&d);
    buf_varint(&addr, 16);
    window(&d, 0x01, 16, 100, 8, &data, &inst, &addr, -1);
    rv = run_hand(&r, &d, 0);
    is_int(rv, ISS_VCDIFF_EFORMAT, "COPY address beyond the source segment");
    /* source segment beyond the source */
    d.len = 0;
    addr.len = 0;
    header(&d);
    buf_varint(&addr, 0);
    window(&d, 0x01, 16, 1010, 8, &data, &inst, &addr, -1);
    rv = run_hand(&r, &d, 0);
    is_int(rv, ISS_VCDIFF_EFORMAT, "source segment beyond the source file");
    buf_free(&r.out);

    /* NEAR and SAME modes */
    d.len = 0;
    sec_reset(&data, &inst, &addr);
    header(&d);
    buf_byte(&inst, OP_COPY(4, 0));     /* SELF 10: near0=10 same[10] */
    buf_varint(&addr, 10);
    buf_byte(&inst, OP_COPY(4, 2));     /* NEAR0 +5 = 15: near1 */
    buf_varint(&addr, 5);
    buf_byte(&inst, OP_COPY(4, 6));     /* SAME0 byte 10 -> 10 */
    buf_byte(&addr, 10);
    buf_byte(&inst, OP_COPY(4, 3));     /* NEAR1 +0 = 15 */
    buf_varint(&addr, 0);
    buf_byte(&inst, OP_COPY(4, 0));     /* SELF 300: same[300] */
    buf_varint(&addr, 300);
    buf_byte(&inst, OP_COPY(4, 7));     /* SAME1 byte 44 -> 300 */
    buf_byte(&addr, 44);
    buf_byte(&inst, OP_COPY(4, 5));     /* NEAR3 (=15, step 4) +1 = 16 */
    buf_varint(&addr, 1);
    buf_byte(&inst, OP_COPY(0, 4));     /* NEAR2 (=16, step 7) +3 = 19, size 5 */
    buf_varint(&inst, 5);
    buf_varint(&addr, 3);
    buf_byte(&inst, OP_COPY(4, 8));     /* SAME2 byte 0: same[512] is 0 */
    buf_byte(&addr, 0);
    {
        static const int offs[] = { 10, 15, 10, 15, 300, 300, 16 };
        int k;

        for (k = 0; k < 7; k++)
            memcpy(want + 4 * k, src + offs[k], 4);
        memcpy(want + 28, src + 19, 5);
        memcpy(want + 33, src + 0, 4);
        window(&d, 0x01, 1024, 0, 37, &data, &inst, &addr,
               adler_of(want, 37));
    }
    memset(&r, 0, sizeof(r));
    r.src = src;
    r.src_len = sizeof(src);
    rv = run_hand(&r, &d, 1);
    ok(rv == APR_SUCCESS && same(&r.out, want, 37),
       "NEAR and SAME address modes");
    if (rv)
        diag("%s", r.msg);
    buf_free(&r.out);

    /* VCD_TARGET: window 1 adds ABCDEFGH, window 2 copies CDEF + "x" */
    d.len = 0;
    sec_reset(&data, &inst, &addr);
    header(&d);
    buf_byte(&inst, OP_ADD(8));
    buf_add(&data, "ABCDEFGH", 8);
    window(&d, 0, 0, 0, 8, &data, &inst, &addr, adler_of("ABCDEFGH", 8));
    sec_reset(&data, &inst, &addr);
    buf_byte(&inst, OP_COPY(4, 0) + 0);
    buf_varint(&addr, 0);
    buf_byte(&inst, OP_ADD(1));
    buf_byte(&data, 'x');
    i = (int)d.len;                     /* window 2: ind, seg_len, seg_pos */
    window(&d, 0x02, 4, 2, 5, &data, &inst, &addr, adler_of("CDEFx", 5));
    memset(&r, 0, sizeof(r));
    rv = run_hand(&r, &d, 1);
    ok(rv == APR_SUCCESS && same(&r.out, (const unsigned char *)
                                 "ABCDEFGHCDEFx", 13), "VCD_TARGET window");
    if (rv)
        diag("%s", r.msg);
    r.no_target_cb = 1;
    rv = run_hand(&r, &d, 0);
    is_int(rv, ISS_VCDIFF_ENOTARGET, "VCD_TARGET without read_target");
    r.no_target_cb = 0;
    d.p[i + 2] = 5;                     /* position 2 -> 5: 5 + 4 > 8 */
    rv = run_hand(&r, &d, 0);
    is_int(rv, ISS_VCDIFF_EFORMAT, "VCD_TARGET segment beyond the target");
    buf_free(&r.out);

    /* Window at the size limit, and one byte over */
    for (i = 0; i <= 1; i++) {
        d.len = 0;
        sec_reset(&data, &inst, &addr);
        header(&d);
        buf_byte(&inst, OP_RUN0);
        buf_varint(&inst, 1000 + i);
        buf_byte(&data, 'q');
        window(&d, 0, 0, 0, 1000 + i, &data, &inst, &addr, -1);
        memset(&r, 0, sizeof(r));
        r.max_window = 1000;
        rv = run_hand(&r, &d, 0);
        if (i == 0)
            ok(rv == APR_SUCCESS && r.out.len == 1000,
               "window at exactly the limit");
        else
            is_int(rv, ISS_VCDIFF_ELIMIT, "window one byte over the limit");
        buf_free(&r.out);
    }

    /* Total target over max_target: 3 windows of 400, limit 1000 */
    d.len = 0;
    sec_reset(&data, &inst, &addr);
    header(&d);
    buf_byte(&inst, OP_RUN0);
    buf_varint(&inst, 400);
    buf_byte(&data, 'q');
    for (i = 0; i < 3; i++)
        window(&d, 0, 0, 0, 400, &data, &inst, &addr, -1);
    memset(&r, 0, sizeof(r));
    r.max_target = 1200;
    rv = run_hand(&r, &d, 0);
    ok(rv == APR_SUCCESS && r.out.len == 1200, "target at max_target");
    r.max_target = 1000;
    rv = run_hand(&r, &d, 1);
    ok(rv == ISS_VCDIFF_ELIMIT && r.out.len == 800,
       "target over max_target refused (%d, %zu written)", rv, r.out.len);
    buf_free(&r.out);

    /* Growth bound: 3 windows of RUN 400 (each 12 bytes of delta, after
     * a 5-byte header: they end at 17, 29, 41); ratio 10, floor 300: the
     * first window may grow to 300 + 170 >= 400, the second to 300 + 290
     * < 800. */
    memset(&r, 0, sizeof(r));
    r.growth_ratio = 10;
    r.growth_floor = 300;
    rv = run_hand(&r, &d, 1);
    ok(rv == ISS_VCDIFF_EGROWTH && r.out.len == 400,
       "growth past floor + ratio * delta refused at the window's header"
       " (%d, %zu written)", rv, r.out.len);
    ok(strstr(r.msg, "grow") != NULL, "  and the message says so: %s", r.msg);
    r.growth_floor = 1200 - 410;        /* 3 windows: 1200 <= 790 + 410 */
    rv = run_hand(&r, &d, -1);
    ok(rv == APR_SUCCESS && r.out.len == 1200,
       "growth of exactly floor + ratio * delta accepted, fed in pieces");
    r.growth_floor = 1200 - 410 - 1;
    rv = run_hand(&r, &d, 0);
    is_int(rv, ISS_VCDIFF_EGROWTH, "one byte more: refused");
    {
        unsigned char s1200[1200];

        memset(s1200, 'q', sizeof(s1200));
        r.src = s1200;                  /* no growth past a 1200-byte source */
        r.src_len = sizeof(s1200);
        r.growth_floor = 0;
        r.growth_ratio = 1;
        rv = run_hand(&r, &d, 1);
        ok(rv == APR_SUCCESS && r.out.len == 1200,
           "a target no larger than the source is never refused for growth");
        r.src = NULL;
        r.src_len = 0;
    }
    r.growth_ratio = 0;
    r.growth_floor = 0;
    rv = run_hand(&r, &d, 0);
    ok(rv == APR_SUCCESS && r.out.len == 1200, "growth_ratio 0: no bound");
    buf_free(&r.out);

    /* Huge declared lengths: refused from the header alone (nothing of
     * the sections is fed, so nothing could have been allocated). */
    {
        static const struct {
            apr_uint64_t tlen, dlen, ilen, alen;
            apr_status_t want;
            const char *name;
        } h[] = {
            { 1ULL << 62, 0, 0, 0, ISS_VCDIFF_ELIMIT, "target window 2^62" },
            { 100, 1ULL << 40, 0, 0, ISS_VCDIFF_ELIMIT, "data 2^40" },
            { 100, 0, 1ULL << 40, 0, ISS_VCDIFF_ELIMIT, "instructions 2^40" },
            { 100, 0, 0, 1ULL << 40, ISS_VCDIFF_ELIMIT, "addresses 2^40" },
            { 100, 1ULL << 62, 1ULL << 62, 1ULL << 62, ISS_VCDIFF_ELIMIT,
              "sections summing past 2^64" },
        };
        size_t k;

        for (k = 0; k < sizeof(h) / sizeof(h[0]); k++) {
            d.len = 0;
            header(&d);
            buf_byte(&d, 0);
            buf_varint(&d, 0x7fffffffffffffffULL);   /* enc_len */
            buf_varint(&d, h[k].tlen);
            buf_byte(&d, 0);
            buf_varint(&d, h[k].dlen);
            buf_varint(&d, h[k].ilen);
            buf_varint(&d, h[k].alen);
            memset(&r, 0, sizeof(r));
            r.max_window = 1 << 20;
            rv = run_hand(&r, &d, 0);
            ok(rv == h[k].want && r.feed_rv == h[k].want,
               "huge %s refused at feed (%d)", h[k].name, rv);
        }
        /* varints: 11 bytes, and overflowing 64 bits */
        d.len = 0;
        header(&d);
        buf_byte(&d, 0);
        for (k = 0; k < 10; k++)
            buf_byte(&d, 0x80);
        buf_byte(&d, 0x01);
        rv = run_hand(&r, &d, 0);
        ok(rv == ISS_VCDIFF_EFORMAT && r.feed_rv == rv,
           "11-byte varint refused");
        d.len = 0;
        header(&d);
        buf_byte(&d, 0);
        buf_byte(&d, 0x82);             /* 2 * 2^63 */
        for (k = 0; k < 8; k++)
            buf_byte(&d, 0x80);
        buf_byte(&d, 0x00);
        rv = run_hand(&r, &d, 1);
        ok(rv == ISS_VCDIFF_EFORMAT && r.feed_rv == rv,
           "varint overflowing 64 bits refused");
        /* enc_len not matching the sections */
        d.len = 0;
        sec_reset(&data, &inst, &addr);
        header(&d);
        buf_byte(&inst, OP_ADD(2));
        buf_add(&data, "hi", 2);
        window(&d, 0, 0, 0, 2, &data, &inst, &addr, -1);
        d.p[6]++;
        rv = run_hand(&r, &d, 0);
        is_int(rv, ISS_VCDIFF_EFORMAT, "wrong length of the delta encoding");
        d.p[6]--;
        rv = run_hand(&r, &d, 0);
        ok(rv == APR_SUCCESS && same(&r.out, (const unsigned char *)"hi", 2),
           "the same delta, fixed, decodes");
        /* trailing garbage after the last window: a window header that
         * never completes */
        buf_byte(&d, 0x00);
        rv = run_hand(&r, &d, 0);
        is_int(rv, ISS_VCDIFF_ETRUNCATED, "trailing byte: truncated window");
        buf_free(&r.out);
    }

    /* Refused features */
    {
        static const unsigned char sec[] = { 0xd6, 0xc3, 0xc4, 0, 0x01, 0x10 };
        static const unsigned char tab[] = { 0xd6, 0xc3, 0xc4, 0, 0x02, 0x05 };
        static const unsigned char bad[] = { 0xd6, 0xc3, 0xc4, 0, 0x08 };
        static const unsigned char mag[] = { 0xd6, 0xc3, 0xc5, 0, 0x00 };

        memset(&r, 0, sizeof(r));
        rv = decode(&r, sec, sizeof(sec), 1);
        ok(rv == ISS_VCDIFF_ESECONDARY && strstr(r.msg, "secondary"),
           "VCD_DECOMPRESS refused with its own code: %s", r.msg);
        rv = decode(&r, tab, sizeof(tab), 0);
        ok(rv == ISS_VCDIFF_ECODETABLE && strstr(r.msg, "code table"),
           "VCD_CODETABLE refused with its own code: %s", r.msg);
        rv = decode(&r, bad, sizeof(bad), 0);
        is_int(rv, ISS_VCDIFF_EFORMAT, "unknown Hdr_Indicator bit");
        rv = decode(&r, mag, sizeof(mag), 0);
        is_int(rv, ISS_VCDIFF_EFORMAT, "bad magic");
        rv = decode(&r, mag, 0, 0);
        is_int(rv, ISS_VCDIFF_ETRUNCATED, "empty delta");
        d.len = 0;
        sec_reset(&data, &inst, &addr);
        header(&d);
        buf_byte(&inst, OP_ADD(2));
        buf_add(&data, "hi", 2);
        window(&d, 0, 0, 0, 2, &data, &inst, &addr, -1);
        d.p[8] = 0x01;                   /* Delta_Indicator */
        rv = run_hand(&r, &d, 0);
        is_int(rv, ISS_VCDIFF_ESECONDARY, "Delta_Indicator compression bit");
        d.p[8] = 0;
        d.p[5] = 0x03;
        rv = run_hand(&r, &d, 0);
        is_int(rv, ISS_VCDIFF_EFORMAT, "VCD_SOURCE and VCD_TARGET together");
        d.p[5] = 0x40;
        rv = run_hand(&r, &d, 0);
        is_int(rv, ISS_VCDIFF_EFORMAT, "unknown Win_Indicator bit");
        buf_free(&r.out);
    }

    /* xdelta3's application header is skipped */
    {
        d.len = 0;
        sec_reset(&data, &inst, &addr);
        buf_add(&d, "\xd6\xc3\xc4\x00\x04\x05hello", 11);
        buf_byte(&inst, OP_ADD(2));
        buf_add(&data, "hi", 2);
        window(&d, 0, 0, 0, 2, &data, &inst, &addr, adler_of("hi", 2));
        memset(&r, 0, sizeof(r));
        rv = run_hand(&r, &d, 1);
        ok(rv == APR_SUCCESS && same(&r.out, (const unsigned char *)"hi", 2),
           "application header skipped");
        /* corrupted checksum */
        d.p[d.len - 1 - 2 - 1]++;        /* last checksum byte */
        rv = run_hand(&r, &d, 0);
        ok(rv == ISS_VCDIFF_ECHECKSUM && r.out.len == 0,
           "corrupted Adler-32 refused, nothing written");
        buf_free(&r.out);
    }

    /* Zero-size ADD, RUN and COPY in an empty window */
    d.len = 0;
    sec_reset(&data, &inst, &addr);
    header(&d);
    buf_byte(&inst, OP_ADD(0));
    buf_varint(&inst, 0);
    buf_byte(&inst, OP_RUN0);
    buf_varint(&inst, 0);
    buf_byte(&data, 'r');
    buf_byte(&inst, OP_COPY(0, 0));
    buf_varint(&inst, 0);
    buf_varint(&addr, 3);
    window(&d, 0x01, 4, 0, 0, &data, &inst, &addr, adler_of("", 0));
    memset(&r, 0, sizeof(r));
    r.src = src;
    r.src_len = sizeof(src);
    rv = run_hand(&r, &d, 1);
    ok(rv == APR_SUCCESS && r.out.len == 0 && r.writes == 0,
       "zero-size instructions in an empty window");
    if (rv)
        diag("%s", r.msg);
    buf_free(&r.out);

    /* Instructions producing too much or too little */
    d.len = 0;
    sec_reset(&data, &inst, &addr);
    header(&d);
    buf_byte(&inst, OP_ADD(3));
    buf_add(&data, "abc", 3);
    window(&d, 0, 0, 0, 2, &data, &inst, &addr, -1);
    memset(&r, 0, sizeof(r));
    is_int(run_hand(&r, &d, 0), ISS_VCDIFF_EFORMAT,
           "instructions beyond the target window");
    d.len = 0;
    header(&d);
    window(&d, 0, 0, 0, 4, &data, &inst, &addr, -1);
    is_int(run_hand(&r, &d, 0), ISS_VCDIFF_EFORMAT,
           "instructions short of the target window");
    d.len = 0;
    buf_byte(&data, 'd');
    header(&d);
    window(&d, 0, 0, 0, 3, &data, &inst, &addr, -1);
    is_int(run_hand(&r, &d, 0), ISS_VCDIFF_EFORMAT,
           "data section not used up");
    d.len = 0;
    data.len = 2;
    header(&d);
    window(&d, 0, 0, 0, 3, &data, &inst, &addr, -1);
    is_int(run_hand(&r, &d, 0), ISS_VCDIFF_EFORMAT, "ADD beyond the data");
    buf_free(&r.out);

    buf_free(&d);
    buf_free(&data);
    buf_free(&inst);
    buf_free(&addr);
}

/* ---- truncation and mutation --------------------------------------------- */

static void test_truncation(void)
{
    unsigned char old[40000], new[48000];
    buf_t delta = { 0 };
    run_t r;
    apr_uint64_t *out_at;
    size_t L, bad = 0, clean = 0;

    fill_text(old, sizeof(old));
    memcpy(new, old, sizeof(old));
    fill_text(new + 5000, 4000);
    fill_random(new + 30000, 100);
    memcpy(new + 40000, old, 8000);
    if (!xdelta(old, sizeof(old), new, sizeof(new), 0, 16384, &delta)) {
        ok(0, "truncation: xdelta3 made a delta");
        return;
    }
    /* Window boundaries: prefixes that end cleanly (a VCDIFF cut between
     * windows is a valid, shorter delta), with the target they give. */
    out_at = calloc(delta.len + 1, sizeof(*out_at));
    memset(&r, 0, sizeof(r));
    r.src = old;
    r.src_len = sizeof(old);
    {
        iss_vcdiff_opts_t o;
        iss_vcdiff_t *dec;
        apr_pool_t *p;

        apr_pool_create(&p, gp);
        memset(&o, 0, sizeof(o));
        o.max_window = 1 << 20;
        o.max_target = 1 << 20;
        o.source_size = sizeof(old);
        o.read_source = rd_src;
        o.source_baton = &r;
        o.write = wr;
        o.write_baton = &r;
        iss_vcdiff_create(&dec, &o, p);
        for (L = 0; L < delta.len; L++) {
            out_at[L] = r.out.len;
            iss_vcdiff_feed(dec, delta.p + L, 1);
        }
        out_at[L] = r.out.len;
        ok(iss_vcdiff_finish(dec) == APR_SUCCESS && same(&r.out, new,
                                                        sizeof(new)),
           "truncation: the whole delta decodes");
        apr_pool_destroy(p);
    }
    for (L = 0; L < delta.len; L++) {
        int boundary = L == 5 || (L > 0 && out_at[L] != out_at[L - 1]);
        apr_status_t rv = decode(&r, delta.p, L, 0);

        if (boundary) {
            if (rv != APR_SUCCESS || !same(&r.out, new, out_at[L]))
                bad++;
            clean++;
        }
        else if (rv != ISS_VCDIFF_ETRUNCATED) {
            if (bad++ < 5)
                diag("prefix %zu: %d %s", L, rv, r.msg);
        }
    }
    ok(bad == 0, "truncated at each of %zu offsets: error at finish, except"
       " %zu window boundaries that give the target so far", delta.len,
       clean);
    ok(clean >= 3, "the delta has several windows (%zu boundaries)", clean);
    free(out_at);
    buf_free(&r.out);
    buf_free(&delta);
}

static void test_mutations(int rounds)
{
    unsigned char old[3000], new[3500];
    buf_t deltas[4] = { { 0 }, { 0 }, { 0 }, { 0 } }, m = { 0 };
    buf_t data = { 0 }, inst = { 0 }, addr = { 0 };
    unsigned char t3[49];
    run_t r;
    int i, ok_count = 0, err_count = 0, bad_rv = 0;

    fill_text(old, sizeof(old));
    memcpy(new, old, 1000);
    fill_text(new + 1000, 500);
    memcpy(new + 1500, old + 1000, 2000);
    if (!xdelta(old, sizeof(old), new, sizeof(new), 0, 0, &deltas[0])
        || !xdelta(old, sizeof(old), new, sizeof(new), 1, 0, &deltas[1])
        || !xdelta(new, sizeof(new), old, sizeof(old), 0, 0, &deltas[2])) {
        ok(0, "mutations: xdelta3 made deltas");
        return;
    }
    /* hand-built: VCD_TARGET, NEAR/SAME, overlapping HERE copies */
    header(&deltas[3]);
    buf_byte(&inst, OP_ADD(8));
    buf_add(&data, "ABCDEFGH", 8);
    buf_byte(&inst, OP_COPY(4, 0));
    buf_varint(&addr, 1000);
    buf_byte(&inst, OP_COPY(0, 6));
    buf_varint(&inst, 20);
    buf_byte(&addr, 1000 % 256);
    memcpy(t3, "ABCDEFGH", 8);
    memcpy(t3 + 8, old + 1500, 4);
    memcpy(t3 + 12, old + 1500, 20);
    window(&deltas[3], 0x01, 2000, 500, 32, &data, &inst, &addr,
           adler_of(t3, 32));
    sec_reset(&data, &inst, &addr);
    buf_byte(&inst, OP_COPY(4, 0));
    buf_varint(&addr, 2);
    buf_byte(&inst, OP_COPY(9, 1));
    buf_varint(&addr, 3);
    buf_byte(&inst, OP_COPY(4, 2));
    buf_varint(&addr, 1);
    memcpy(t3 + 32, t3 + 1 + 2, 4);                 /* T[3..6] */
    for (i = 0; i < 9; i++)                         /* from window pos 1 */
        t3[36 + i] = t3[32 + 1 + i];
    memcpy(t3 + 45, t3 + 1 + 3, 4);                 /* NEAR0 2 + 1 */
    window(&deltas[3], 0x02, 30, 1, 17, &data, &inst, &addr,
           adler_of(t3 + 32, 17));
    buf_free(&data);
    buf_free(&inst);
    buf_free(&addr);

    memset(&r, 0, sizeof(r));
    r.src = old;
    r.src_len = sizeof(old);
    r.max_window = 1 << 16;
    r.max_target = 1 << 17;
    for (i = 0; i < 4; i++) {
        apr_status_t rv;

        r.src = i == 2 ? new : old;             /* delta 2: new -> old */
        r.src_len = i == 2 ? sizeof(new) : sizeof(old);
        rv = decode(&r, deltas[i].p, deltas[i].len, 0);
        ok(rv == APR_SUCCESS && (i == 3 ? same(&r.out, t3, 49)
                                 : same(&r.out, i == 2 ? old : new,
                                        i == 2 ? sizeof(old) : sizeof(new))),
           "mutations: base delta %d decodes", i);
        if (rv)
            diag("%s", r.msg);
    }
    for (i = 0; i < rounds; i++) {
        const buf_t *base = &deltas[i % 4];
        int k, nm = 1 + (int)(rnd() % 4);
        apr_status_t rv;

        r.src = i % 4 == 2 ? new : old;
        r.src_len = i % 4 == 2 ? sizeof(new) : sizeof(old);
        m.len = 0;
        buf_add(&m, base->p, base->len);
        for (k = 0; k < nm; k++) {
            size_t at = (size_t)(rnd() % m.len);

            switch (rnd() % 6) {
            case 0:
                m.p[at] ^= (unsigned char)(1u << (rnd() % 8));
                break;
            case 1:
            case 2:
                m.p[at] = (unsigned char)rnd();
                break;
            case 3:
                m.p[at] = (unsigned char)(rnd() % 2 ? 0xff : 0x80);
                break;
            case 4:
                m.len = at + 1;             /* truncate */
                break;
            default:                        /* insert a byte */
                buf_byte(&m, 0);
                memmove(m.p + at + 1, m.p + at, m.len - at - 1);
                m.p[at] = (unsigned char)rnd();
                break;
            }
        }
        rv = decode(&r, m.p, m.len, i % 5 == 0 ? 1 : -1);
        if (rv == APR_SUCCESS)
            ok_count++;
        else if (rv >= ISS_VCDIFF_EFORMAT && rv <= ISS_VCDIFF_ENOTARGET)
            err_count++;
        else if (rv != APR_EOF && bad_rv++ < 5)
            diag("mutation %d: unexpected code %d: %s", i, rv, r.msg);
        else if (rv == APR_EOF)
            err_count++;
    }
    ok(bad_rv == 0 && ok_count + err_count == rounds,
       "%d mutated deltas: no crash, %d decoded, %d refused with our codes",
       rounds, ok_count, err_count);
    buf_free(&r.out);
    buf_free(&m);
    for (i = 0; i < 4; i++)
        buf_free(&deltas[i]);
}

/* ---- edge cases of the list ----------------------------------------
 * Empty source, empty target, windows at every boundary, COPY overlapping
 * into the target, RUN, maximal sizes.  Every case is decoded with the
 * delta fed in two parts cut at each of its offsets (0 and the end
 * included) and must give exactly the same bytes, or the same error code
 * with exactly the bytes of the windows before the bad one. */

/* Decode @a delta fed as two chunks cut at @a split; with @a no_source the
 * decoder gets source_size 0 and no read_source at all.  Like decode():
 * errors must be sticky and come with a message.  *tsize gets
 * iss_vcdiff_target_size() at the end. */
static apr_status_t decode2(run_t *r, const unsigned char *delta,
                            size_t dlen, size_t split, int no_source,
                            apr_uint64_t *tsize)
{
    iss_vcdiff_opts_t o;
    iss_vcdiff_t *dec;
    apr_pool_t *p;
    apr_status_t rv;

    apr_pool_create(&p, gp);
    memset(&o, 0, sizeof(o));
    o.max_window = r->max_window ? r->max_window : 8 << 20;
    o.max_target = r->max_target ? r->max_target : 1ULL << 32;
    o.max_sections = r->max_sections;
    if (!no_source) {
        o.source_size = r->src_len;
        o.read_source = rd_src;
        o.source_baton = r;
    }
    o.read_target = rd_tgt;
    o.target_baton = r;
    o.write = wr;
    o.write_baton = r;
    r->out.len = 0;
    r->writes = 0;
    r->msg[0] = '\0';
    *tsize = 0;
    rv = iss_vcdiff_create(&dec, &o, p);
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(p);
        return rv;
    }
    rv = iss_vcdiff_feed(dec, delta, split);
    if (rv == APR_SUCCESS)
        rv = iss_vcdiff_feed(dec, delta + split, dlen - split);
    r->feed_rv = rv;
    if (rv == APR_SUCCESS)
        rv = iss_vcdiff_finish(dec);
    else if (iss_vcdiff_feed(dec, "", 0) != rv
             || iss_vcdiff_finish(dec) != rv)   /* errors are sticky */
        rv = APR_EGENERAL;
    apr_cpystrn(r->msg, iss_vcdiff_error(dec), sizeof(r->msg));
    if ((rv == APR_SUCCESS) != (r->msg[0] == '\0'))
        rv = APR_EGENERAL;                  /* message iff error */
    *tsize = iss_vcdiff_target_size(dec);
    apr_pool_destroy(p);
    return rv;
}

/* One test: at every cut of @a d, the result is @a want_rv, the write
 * callback got exactly @a want (@a wlen bytes) in @a nwrites calls
 * (-1: any number) and iss_vcdiff_target_size() says @a wlen. */
static int expect(run_t *r, const buf_t *d, int no_source,
                  apr_status_t want_rv, const void *want, size_t wlen,
                  int nwrites, const char *name)
{
    size_t s, bad = 0;

    for (s = 0; s <= d->len; s++) {
        apr_uint64_t ts;
        apr_status_t rv = decode2(r, d->p, d->len, s, no_source, &ts);

        if (rv != want_rv || !same(&r->out, want, wlen) || ts != wlen
            || (nwrites >= 0 && r->writes != nwrites)) {
            if (bad++ == 0)
                diag("%s: cut at %zu of %zu: rv %d (want %d), %zu bytes"
                     " (want %zu) in %d writes, target size %" 
                     APR_UINT64_T_FMT ": %s", name, s, d->len, rv,
                     want_rv, r->out.len, wlen, r->writes, ts, r->msg);
        }
    }
    return ok(bad == 0, "%s", name);
}

/* @a v in exactly @a n bytes (leading zero groups, 0x80). */
static void buf_varint_n(buf_t *b, apr_uint64_t v, int n)
{
    int i;

    for (i = n - 1; i >= 0; i--)
        buf_byte(b, (unsigned)((i * 7 < 64 ? v >> (7 * i) : 0) & 0x7f)
                    | (i ? 0x80 : 0));
}

/* window() with every varint of the header 10 bytes long: the largest
 * window header there is (76 bytes with the checksum). */
static void window_wide(buf_t *d, int ind, apr_uint64_t seg_len,
                        apr_uint64_t seg_pos, apr_uint64_t tlen,
                        const buf_t *data, const buf_t *inst,
                        const buf_t *addr, long long adler)
{
    apr_uint64_t sect = data->len + inst->len + addr->len;

    if (adler >= 0)
        ind |= 0x04;
    buf_byte(d, ind);
    if (ind & 3) {
        buf_varint_n(d, seg_len, 10);
        buf_varint_n(d, seg_pos, 10);
    }
    buf_varint_n(d, 10 + 1 + 30 + (adler >= 0 ? 4 : 0) + sect, 10);
    buf_varint_n(d, tlen, 10);
    buf_byte(d, 0);
    buf_varint_n(d, data->len, 10);
    buf_varint_n(d, inst->len, 10);
    buf_varint_n(d, addr->len, 10);
    if (adler >= 0) {
        buf_byte(d, (unsigned)(adler >> 24) & 0xff);
        buf_byte(d, (unsigned)(adler >> 16) & 0xff);
        buf_byte(d, (unsigned)(adler >> 8) & 0xff);
        buf_byte(d, (unsigned)adler & 0xff);
    }
    buf_add(d, data->p, data->len);
    buf_add(d, inst->p, inst->len);
    buf_add(d, addr->p, addr->len);
}

/* A window with a single RUN of @a n bytes of @a c. */
static void run_window(buf_t *d, apr_uint64_t n, int c)
{
    buf_t data = { 0 }, inst = { 0 }, addr = { 0 };

    buf_byte(&inst, OP_RUN0);
    buf_varint(&inst, n);
    buf_byte(&data, (unsigned)c);
    window(d, 0, 0, 0, n, &data, &inst, &addr, -1);
    buf_free(&data);
    buf_free(&inst);
    buf_free(&addr);
}

static void test_edges(void)
{
    buf_t d = { 0 }, data = { 0 }, inst = { 0 }, addr = { 0 };
    unsigned char src[64], want[256], *big;
    run_t r;
    int i;

    for (i = 0; i < 64; i++)
        src[i] = (unsigned char)(i * 37 + 11);
    memset(&r, 0, sizeof(r));
    r.src = src;
    r.src_len = sizeof(src);

#define START() (d.len = 0, sec_reset(&data, &inst, &addr), header(&d))

    /* -- 1. empty source (source_size 0, read_source NULL) ------------- */
    START();
    buf_byte(&inst, OP_ADD(2));
    buf_add(&data, "ab", 2);
    buf_byte(&inst, OP_RUN0);
    buf_varint(&inst, 5);
    buf_byte(&data, 'x');
    buf_byte(&inst, OP_COPY(10, 1));    /* HERE 7 -> T[0], overlapping */
    buf_varint(&addr, 7);
    window(&d, 0, 0, 0, 17, &data, &inst, &addr,
           adler_of("abxxxxxabxxxxxabx", 17));
    expect(&r, &d, 1, APR_SUCCESS, "abxxxxxabxxxxxabx", 17, 1,
           "empty source, no read_source: ADD, RUN and a COPY of the"
           " target decode");
    START();
    buf_byte(&inst, OP_ADD(1));
    buf_byte(&data, 'a');
    window(&d, 0x01, 1, 0, 1, &data, &inst, &addr, -1);
    expect(&r, &d, 1, ISS_VCDIFF_EFORMAT, "", 0, 0,
           "empty source: a VCD_SOURCE window of 1 byte at 0 is refused");
    d.len = 0;                          /* the same ADD of 'a' */
    header(&d);
    window(&d, 0x01, 0, 1, 1, &data, &inst, &addr, -1);
    expect(&r, &d, 1, ISS_VCDIFF_EFORMAT, "", 0, 0,
           "empty source: an empty VCD_SOURCE segment at 1 is refused");
    d.len = 0;
    header(&d);
    window(&d, 0x01, 0, 0, 1, &data, &inst, &addr, -1);
    expect(&r, &d, 1, APR_SUCCESS, "a", 1, 1,
           "empty source: an empty VCD_SOURCE segment at 0 is inside it"
           " (accepted)");

    /* -- 2. empty target ----------------------------------------------- */
    START();
    expect(&r, &d, 1, APR_SUCCESS, "", 0, 0,
           "header without a window: empty target");
    d.len = 0;
    buf_add(&d, "\xd6\xc3\xc4\x00\x04\x03xd3", 9);
    expect(&r, &d, 0, APR_SUCCESS, "", 0, 0,
           "header with an application header, no window: empty target");
    d.len = 4;
    expect(&r, &d, 0, ISS_VCDIFF_ETRUNCATED, "", 0, 0,
           "only the magic: truncated");
    START();
    window(&d, 0, 0, 0, 0, &data, &inst, &addr, -1);
    window(&d, 0, 0, 0, 0, &data, &inst, &addr, adler_of("", 0));
    window(&d, 0x01, 64, 0, 0, &data, &inst, &addr, -1);
    expect(&r, &d, 0, APR_SUCCESS, "", 0, 0,
           "windows of target length 0 (no sections, with a checksum,"
           " with a source segment): empty target, no write");
    START();
    window(&d, 0, 0, 0, 0, &data, &inst, &addr, 2);
    expect(&r, &d, 0, ISS_VCDIFF_ECHECKSUM, "", 0, 0,
           "window of target length 0 with a wrong checksum");
    START();
    buf_byte(&inst, OP_ADD(1));
    buf_byte(&data, 'a');
    window(&d, 0, 0, 0, 0, &data, &inst, &addr, -1);
    expect(&r, &d, 0, ISS_VCDIFF_EFORMAT, "", 0, 0,
           "window of target length 0 with a 1-byte ADD");

    /* -- 3. windows at every boundary (source of 64 bytes) ------------- */
    START();
    buf_byte(&inst, OP_COPY(0, 0));
    buf_varint(&inst, 64);
    buf_varint(&addr, 0);
    window(&d, 0x01, 64, 0, 64, &data, &inst, &addr, adler_of(src, 64));
    expect(&r, &d, 0, APR_SUCCESS, src, 64, 1,
           "source segment 0..64 = the whole source");
    {
        static const struct {
            apr_uint64_t len, pos;
            const char *name;
        } seg[] = {
            { 65, 0, "source segment 0..65: one byte past the source" },
            { 64, 1, "source segment 1..65: one byte past the source" },
            { 1, 64, "source segment 64..65: one byte past the source" },
            { 0, 65, "empty source segment at 65, past the source" },
            { 1, UINT64_MAX, "source segment at 2^64-1: overflow" },
            { UINT64_MAX, 1, "source segment of 2^64-1 bytes: overflow" },
        };
        size_t k;

        for (k = 0; k < sizeof(seg) / sizeof(seg[0]); k++) {
            START();
            buf_byte(&inst, OP_ADD(1));
            buf_byte(&data, 'k');
            window(&d, 0x01, seg[k].len, seg[k].pos, 1, &data, &inst, &addr,
                   -1);
            expect(&r, &d, 0, ISS_VCDIFF_EFORMAT, "", 0, 0, seg[k].name);
        }
        START();
        buf_byte(&inst, OP_ADD(1));
        buf_byte(&data, 'k');
        window(&d, 0x01, 0, 64, 1, &data, &inst, &addr, -1);
        expect(&r, &d, 0, APR_SUCCESS, "k", 1, 1,
               "empty source segment at 64, the end of the source");
    }
    /* COPY from the last byte of the source */
    START();
    buf_byte(&inst, OP_COPY(0, 0));
    buf_varint(&inst, 1);
    buf_varint(&addr, 63);
    buf_byte(&inst, OP_COPY(5, 0));     /* src[63], then T[0..3] */
    buf_varint(&addr, 63);
    memset(want, src[63], 6);
    window(&d, 0x01, 64, 0, 6, &data, &inst, &addr, adler_of(want, 6));
    expect(&r, &d, 0, ISS_VCDIFF_EFORMAT, "", 0, 0,
           "COPY from the last byte of the source (1 byte), then 5 from it"
           " running into the target: refused (RFC 3284 s. 3)");
    START();
    buf_byte(&inst, OP_COPY(4, 0));
    buf_varint(&addr, 0);
    window(&d, 0x01, 1, 63, 4, &data, &inst, &addr, -1);
    expect(&r, &d, 0, ISS_VCDIFF_EFORMAT, "", 0, 0,
           "source segment 63..64 (its last byte), COPY 4 from it: refused");
    START();
    buf_byte(&inst, OP_COPY(0, 0));
    buf_varint(&inst, 1);
    buf_varint(&addr, 0);
    buf_byte(&inst, OP_COPY(0, 0));
    buf_varint(&inst, 3);
    buf_varint(&addr, 1);               /* T[0..], running on itself */
    window(&d, 0x01, 1, 63, 4, &data, &inst, &addr, -1);
    memset(want, src[63], 4);
    expect(&r, &d, 0, APR_SUCCESS, want, 4, 1,
           "source segment 63..64, COPY 1 from it, then 3 from the target");
    /* COPY reaching exactly the end of source segment + target so far */
    START();
    buf_byte(&inst, OP_ADD(4));
    buf_add(&data, "WXYZ", 4);
    buf_byte(&inst, OP_COPY(0, 0));
    buf_varint(&inst, 68);
    buf_varint(&addr, 0);               /* 0 + 68 == here */
    memcpy(want, "WXYZ", 4);
    memcpy(want + 4, src, 64);
    memcpy(want + 68, "WXYZ", 4);
    window(&d, 0x01, 64, 0, 72, &data, &inst, &addr, adler_of(want, 72));
    expect(&r, &d, 0, ISS_VCDIFF_EFORMAT, "", 0, 0,
           "COPY of the whole source segment + target so far: refused");
    START();
    buf_byte(&inst, OP_ADD(4));
    buf_add(&data, "WXYZ", 4);
    buf_byte(&inst, OP_COPY(4, 0));
    buf_varint(&addr, 64);              /* 64 + 4 == here */
    window(&d, 0x01, 64, 0, 8, &data, &inst, &addr,
           adler_of("WXYZWXYZ", 8));
    expect(&r, &d, 0, APR_SUCCESS, "WXYZWXYZ", 8, 1,
           "COPY of the whole target so far (ends at here)");
    START();
    buf_byte(&inst, OP_ADD(4));
    buf_add(&data, "WXYZ", 4);
    buf_byte(&inst, OP_COPY(0, 0));
    buf_varint(&inst, 1);
    buf_varint(&addr, 67);              /* here - 1: the last byte so far */
    buf_byte(&inst, OP_COPY(0, 0));
    buf_varint(&inst, 1);
    buf_varint(&addr, 69);              /* == here */
    window(&d, 0x01, 64, 0, 6, &data, &inst, &addr, -1);
    expect(&r, &d, 0, ISS_VCDIFF_EFORMAT, "", 0, 0,
           "COPY from here - 1 then from here: refused at here");
    sec_reset(&data, &inst, &addr);
    d.len = 0;
    header(&d);
    buf_byte(&inst, OP_ADD(4));
    buf_add(&data, "WXYZ", 4);
    buf_byte(&inst, OP_COPY(0, 0));
    buf_varint(&inst, 1);
    buf_varint(&addr, 67);
    window(&d, 0x01, 64, 0, 5, &data, &inst, &addr, adler_of("WXYZZ", 5));
    expect(&r, &d, 0, APR_SUCCESS, "WXYZZ", 5, 1,
           "COPY from here - 1 alone decodes");
    /* VCD_TARGET segment ending exactly at the target so far, and past */
    for (i = 0; i <= 1; i++) {
        START();
        buf_byte(&inst, OP_ADD(10));
        buf_add(&data, "0123456789", 10);
        window(&d, 0, 0, 0, 10, &data, &inst, &addr, -1);
        sec_reset(&data, &inst, &addr);
        buf_byte(&inst, OP_COPY(0, 0));
        buf_varint(&inst, 10);
        buf_varint(&addr, 0);
        window(&d, 0x02, 10, (apr_uint64_t)i, 10, &data, &inst, &addr, -1);
        if (i == 0)
            expect(&r, &d, 0, APR_SUCCESS, "01234567890123456789", 20, 2,
                   "VCD_TARGET segment 0..10 = all the target so far");
        else
            expect(&r, &d, 0, ISS_VCDIFF_EFORMAT, "0123456789", 10, 1,
                   "VCD_TARGET segment 1..11, one byte past the target so"
                   " far: refused after the first window");
    }
    /* Several windows, each target starting where the last one ended */
    {
        unsigned char t[160];
        size_t n = 0;

        START();
        buf_byte(&inst, OP_ADD(10));
        buf_add(&data, "0123456789", 10);
        window(&d, 0, 0, 0, 10, &data, &inst, &addr,
               adler_of("0123456789", 10));
        memcpy(t, "0123456789", 10);
        n = 10;
        sec_reset(&data, &inst, &addr);
        buf_byte(&inst, OP_COPY(0, 0));
        buf_varint(&inst, 64);
        buf_varint(&addr, 0);
        buf_byte(&inst, OP_RUN0);
        buf_varint(&inst, 3);
        buf_byte(&data, '!');
        window(&d, 0x01, 64, 0, 67, &data, &inst, &addr, -1);
        memcpy(t + n, src, 64);
        memset(t + n + 64, '!', 3);
        n += 67;
        sec_reset(&data, &inst, &addr);
        window(&d, 0, 0, 0, 0, &data, &inst, &addr, adler_of("", 0));
        buf_byte(&inst, OP_COPY(0, 0));
        buf_varint(&inst, 77);          /* all of the target so far */
        buf_varint(&addr, 0);
        buf_byte(&inst, OP_COPY(5, 1));
        buf_varint(&addr, 1);           /* here - 1, repeated */
        memcpy(t + n, t, 77);
        memset(t + n + 77, t[76], 5);
        window(&d, 0x02, 77, 0, 82, &data, &inst, &addr,
               adler_of(t + n, 82));
        n += 82;
        sec_reset(&data, &inst, &addr);
        buf_byte(&inst, OP_RUN0);
        buf_varint(&inst, 1);
        buf_byte(&data, 'Z');
        window(&d, 0, 0, 0, 1, &data, &inst, &addr, adler_of("Z", 1));
        t[n++] = 'Z';
        expect(&r, &d, 0, APR_SUCCESS, t, n, 4,
               "5 windows (ADD; source; empty; VCD_TARGET over all the"
               " target so far; RUN), cut anywhere");
    }
    /* The same with a real multi-window delta of xdelta3 */
    {
        unsigned char old[40000], new[44000];
        buf_t xd = { 0 };

        fill_text(old, sizeof(old));
        memcpy(new, old, 20000);
        fill_random(new + 20000, 4000);
        memcpy(new + 24000, old + 20000, 20000);
        new[100] ^= 1;
        new[35000] ^= 1;
        if (xdelta(old, sizeof(old), new, sizeof(new), 0, 16384, &xd)) {
            run_t x;

            memset(&x, 0, sizeof(x));
            x.src = old;
            x.src_len = sizeof(old);
            expect(&x, &xd, 0, APR_SUCCESS, new, sizeof(new), -1,
                   "xdelta3 delta (-W 16384) in two parts, cut anywhere");
            ok(x.writes >= 3, "... it has several windows (%d)", x.writes);
            buf_free(&x.out);
        }
        else {
            ok(0, "edges: xdelta3 made a delta");
            ok(0, "... it has several windows");
        }
        buf_free(&xd);
    }

    /* -- 4. COPY overlapping into the target --------------------------- */
    START();
    buf_byte(&inst, OP_ADD(1));
    buf_byte(&data, 'a');
    buf_byte(&inst, OP_COPY(0, 1));
    buf_varint(&inst, 20);
    buf_varint(&addr, 1);               /* distance 1 */
    memset(want, 'a', 21);
    window(&d, 0, 0, 0, 21, &data, &inst, &addr, -1);
    expect(&r, &d, 1, APR_SUCCESS, want, 21, 1,
           "COPY 20 at distance 1: one byte repeated");
    START();
    buf_byte(&inst, OP_ADD(3));
    buf_add(&data, "xyz", 3);
    buf_byte(&inst, OP_COPY(0, 1));
    buf_varint(&inst, 3);
    buf_varint(&addr, 3);               /* length == distance */
    buf_byte(&inst, OP_COPY(4, 1));
    buf_varint(&addr, 3);               /* length == distance + 1 */
    window(&d, 0, 0, 0, 10, &data, &inst, &addr, -1);
    expect(&r, &d, 1, APR_SUCCESS, "xyzxyzxyzx", 10, 1,
           "COPY of length == distance, then distance + 1");
    {
        const unsigned char *s = src + 10;
        unsigned char w[11] = { s[0], s[1], s[2], s[3], s[2], s[3], s[2],
                                s[3], s[2], s[3], s[2] };

        START();
        buf_byte(&inst, OP_COPY(4, 0));
        buf_varint(&addr, 0);
        buf_byte(&inst, OP_COPY(7, 0));
        buf_varint(&addr, 4 + 2);       /* SELF address in the target */
        window(&d, 0x01, 4, 10, 11, &data, &inst, &addr, adler_of(w, 11));
        expect(&r, &d, 0, APR_SUCCESS, w, 11, 1,
               "COPY from a SELF address inside the target, distance 2");
    }
    {
        const unsigned char *s = src + 60;
        unsigned char w[10];

        for (i = 0; i < 10; i++)
            w[i] = s[2 + i % 2];
        START();
        buf_byte(&inst, OP_COPY(10, 0));
        buf_varint(&addr, 2);           /* 2 bytes of source, then 8 own */
        window(&d, 0x01, 4, 60, 10, &data, &inst, &addr, -1);
        expect(&r, &d, 0, ISS_VCDIFF_EFORMAT, "", 0, 0,
               "COPY from the source's last 2 bytes running 8 into its own"
               " output: refused");
        (void)w;
    }

    /* -- 5. RUN --------------------------------------------------------- */
    START();
    buf_byte(&inst, OP_RUN0);
    buf_varint(&inst, 1);
    buf_byte(&data, 'q');
    window(&d, 0, 0, 0, 1, &data, &inst, &addr, adler_of("q", 1));
    expect(&r, &d, 1, APR_SUCCESS, "q", 1, 1, "RUN of 1 byte");
    START();
    buf_byte(&inst, OP_RUN0);
    buf_varint(&inst, 2);
    buf_byte(&data, 'a');
    buf_byte(&inst, OP_RUN0);
    buf_varint(&inst, 1);
    buf_byte(&data, 'b');
    window(&d, 0, 0, 0, 3, &data, &inst, &addr, -1);
    expect(&r, &d, 1, APR_SUCCESS, "aab", 3, 1,
           "two RUNs take one data byte each");
    big = malloc((1 << 20) + 1);
    if (big == NULL)
        abort();
    START();
    buf_byte(&inst, OP_RUN0);
    buf_varint(&inst, 100000);
    buf_byte(&data, 'r');
    buf_byte(&inst, OP_ADD(1));
    buf_byte(&data, 'e');
    memset(big, 'r', 100000);
    big[100000] = 'e';
    window(&d, 0, 0, 0, 100001, &data, &inst, &addr,
           adler_of(big, 100001));
    expect(&r, &d, 1, APR_SUCCESS, big, 100001, 1,
           "RUN of 100000 bytes then ADD");
    START();
    run_window(&d, 1 << 20, 0xa5);
    memset(big, 0xa5, 1 << 20);
    r.max_window = 1 << 20;
    expect(&r, &d, 1, APR_SUCCESS, big, 1 << 20, 1,
           "RUN of max_window (1 MiB) bytes");
    START();
    run_window(&d, (1 << 20) + 1, 0xa5);
    expect(&r, &d, 1, ISS_VCDIFF_ELIMIT, "", 0, 0,
           "RUN of max_window + 1 bytes: refused, nothing written");
    r.max_window = 0;
    START();
    buf_byte(&inst, OP_RUN0);
    buf_varint(&inst, 6);
    buf_byte(&data, 'q');
    window(&d, 0, 0, 0, 5, &data, &inst, &addr, -1);
    expect(&r, &d, 1, ISS_VCDIFF_EFORMAT, "", 0, 0,
           "RUN longer than the target window");
    data.len = 0;
    d.len = 0;
    header(&d);
    window(&d, 0, 0, 0, 6, &data, &inst, &addr, -1);
    expect(&r, &d, 1, ISS_VCDIFF_EFORMAT, "", 0, 0,
           "RUN without its data byte");

    /* -- 6. maximal sizes ----------------------------------------------- */
    r.max_window = 1000;
    START();
    run_window(&d, 1001, 'q');
    expect(&r, &d, 1, ISS_VCDIFF_ELIMIT, "", 0, 0,
           "window of max_window + 1: ELIMIT, write never called");
    ok(r.feed_rv == ISS_VCDIFF_ELIMIT, "... refused at feed");
    START();
    run_window(&d, 1000, 'q');
    run_window(&d, 1001, 'q');
    memset(big, 'q', 1000);
    expect(&r, &d, 1, ISS_VCDIFF_ELIMIT, big, 1000, 1,
           "window of max_window, then max_window + 1: only the first"
           " written");
    r.max_window = 2000;
    r.max_target = 1200;
    START();
    run_window(&d, 1200, 'q');
    memset(big, 'q', 1200);
    expect(&r, &d, 1, APR_SUCCESS, big, 1200, 1,
           "one window of exactly max_target");
    START();
    run_window(&d, 1201, 'q');
    expect(&r, &d, 1, ISS_VCDIFF_ELIMIT, "", 0, 0,
           "one window of max_target + 1: ELIMIT, nothing written");
    START();
    run_window(&d, 400, 'q');
    run_window(&d, 800, 'q');
    expect(&r, &d, 1, APR_SUCCESS, big, 1200, 2,
           "windows totalling exactly max_target");
    START();
    run_window(&d, 400, 'q');
    run_window(&d, 400, 'q');
    run_window(&d, 401, 'q');
    expect(&r, &d, 1, ISS_VCDIFF_ELIMIT, big, 800, 2,
           "windows totalling max_target + 1: ELIMIT, the first two"
           " written");
    r.max_window = 0;
    r.max_target = 0;

    /* 10-byte varints: every header varint padded to 10 bytes (the
     * largest window header, 76 bytes), 10-byte sizes and addresses in
     * the instructions; values up to 2^64-1 fit, 2^64 does not. */
    START();
    buf_byte(&inst, OP_ADD(0));
    buf_varint_n(&inst, 3, 10);
    buf_add(&data, "abc", 3);
    buf_byte(&inst, OP_COPY(0, 0));
    buf_varint_n(&inst, 64, 10);
    buf_varint_n(&addr, 0, 10);
    memcpy(want, "abc", 3);
    memcpy(want + 3, src, 64);
    window_wide(&d, 0x01, 64, 0, 67, &data, &inst, &addr,
                adler_of(want, 67));
    ok(d.len == 5 + 76 + data.len + inst.len + addr.len,
       "the widest window header is 76 bytes");
    expect(&r, &d, 0, APR_SUCCESS, want, 67, 1,
           "10-byte varints everywhere decode");
    d.len = 0;
    buf_add(&d, "\xd6\xc3\xc4\x00\x04", 5);
    buf_varint_n(&d, UINT64_MAX, 10);
    buf_add(&d, "skipped", 7);
    expect(&r, &d, 0, ISS_VCDIFF_ETRUNCATED, "", 0, 0,
           "application header of 2^64-1 bytes (10-byte varint): parsed,"
           " truncated at finish");
    {
        static const struct {
            apr_uint64_t hi;            /* first byte */
            unsigned mid, last;         /* bytes 2..9, byte 10 */
            apr_status_t want;
            const char *name;
        } v[] = {
            { 0x81, 0xff, 0x7f, ISS_VCDIFF_ELIMIT,
              "target window size 2^64-1 (10 bytes, fits): ELIMIT" },
            { 0x81, 0x80, 0x00, ISS_VCDIFF_ELIMIT,
              "target window size 2^63 (10 bytes, fits): ELIMIT" },
            { 0x82, 0x80, 0x00, ISS_VCDIFF_EFORMAT,
              "target window size 2^64 (10 bytes, overflows): EFORMAT" },
            { 0xff, 0xff, 0x7f, ISS_VCDIFF_EFORMAT,
              "target window size 2^70-1 (10 bytes, overflows): EFORMAT" },
        };
        size_t k;
        int j;

        for (k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
            d.len = 0;
            header(&d);
            buf_byte(&d, 0);
            buf_varint(&d, 100);        /* enc_len */
            buf_byte(&d, (unsigned)v[k].hi);
            for (j = 0; j < 8; j++)
                buf_byte(&d, v[k].mid);
            buf_byte(&d, v[k].last);
            buf_byte(&d, 0);
            expect(&r, &d, 0, v[k].want, "", 0, 0, v[k].name);
        }
    }
    START();
    buf_byte(&inst, OP_ADD(0));
    buf_byte(&inst, 0x82);              /* 2^64 */
    for (i = 0; i < 8; i++)
        buf_byte(&inst, 0x80);
    buf_byte(&inst, 0x00);
    window(&d, 0, 0, 0, 1, &data, &inst, &addr, -1);
    expect(&r, &d, 0, ISS_VCDIFF_EFORMAT, "", 0, 0,
           "ADD size overflowing 64 bits");
    START();
    buf_byte(&inst, OP_COPY(4, 0));
    buf_byte(&addr, 0x82);              /* 2^64 */
    for (i = 0; i < 8; i++)
        buf_byte(&addr, 0x80);
    buf_byte(&addr, 0x00);
    window(&d, 0x01, 64, 0, 4, &data, &inst, &addr, -1);
    expect(&r, &d, 0, ISS_VCDIFF_EFORMAT, "", 0, 0,
           "COPY address overflowing 64 bits");

    /* max_sections: data + instructions + addresses */
    r.max_sections = 10;
    START();
    buf_byte(&inst, OP_ADD(9));
    buf_add(&data, "abcdefghi", 9);
    window(&d, 0, 0, 0, 9, &data, &inst, &addr, -1);
    expect(&r, &d, 0, APR_SUCCESS, "abcdefghi", 9, 1,
           "sections of exactly max_sections (10)");
    START();
    buf_byte(&inst, OP_ADD(10));
    buf_add(&data, "abcdefghij", 10);
    window(&d, 0, 0, 0, 10, &data, &inst, &addr, -1);
    expect(&r, &d, 0, ISS_VCDIFF_ELIMIT, "", 0, 0,
           "sections of max_sections + 1: ELIMIT, nothing written");
    ok(r.feed_rv == ISS_VCDIFF_ELIMIT, "... refused at feed");
    /* the default, 2 * max_window + 4096 */
    r.max_sections = 0;
    r.max_window = 10;
    START();
    buf_byte(&inst, OP_ADD(9));
    buf_add(&data, "abcdefghi", 9);
    buf_byte(&inst, OP_ADD(1));
    buf_byte(&data, 'j');
    for (i = 0; i < 2052; i++) {        /* 2052 empty ADDs */
        buf_byte(&inst, OP_ADD(0));
        buf_byte(&inst, 0);
    }
    window(&d, 0, 0, 0, 10, &data, &inst, &addr, -1);
    ok(data.len + inst.len == 2 * 10 + 4096, "sections of 4116 bytes");
    expect(&r, &d, 0, APR_SUCCESS, "abcdefghij", 10, 1,
           "max_window 10: sections of 2 * 10 + 4096 accepted by default");
    d.len = 0;
    header(&d);
    buf_byte(&inst, OP_ADD(0));
    window(&d, 0, 0, 0, 10, &data, &inst, &addr, -1);
    expect(&r, &d, 0, ISS_VCDIFF_ELIMIT, "", 0, 0,
           "max_window 10: sections of 4117 bytes refused by default");
    r.max_window = 0;

#undef START
    free(big);
    buf_free(&r.out);
    buf_free(&d);
    buf_free(&data);
    buf_free(&inst);
    buf_free(&addr);
}

static void test_api(void)
{
    iss_vcdiff_opts_t o;
    iss_vcdiff_t *dec;

    memset(&o, 0, sizeof(o));
    o.max_window = 10;
    is_int(iss_vcdiff_create(&dec, &o, gp), APR_EINVAL, "no write callback");
    o.write = wr;
    o.max_window = 0;
    is_int(iss_vcdiff_create(&dec, &o, gp), APR_EINVAL, "max_window 0");
    o.max_window = 10;
    o.source_size = 5;
    is_int(iss_vcdiff_create(&dec, &o, gp), APR_EINVAL,
           "a source but no read_source");
}

int main(int argc, const char *const *argv)
{
    char *base;

    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&gp, NULL);

    base = apr_pstrdup(gp, "/tmp/iss-vcdiff-test-XXXXXX");
    if (!mkdtemp(base)) {
        ok(0, "mkdtemp");
        return done_testing();
    }
    tmp = base;
    have_xdelta = system("xdelta3 -V >/dev/null 2>&1") == 0;

    test_api();
    test_hand();
    test_real();
    test_truncation();
    /* ISS_VCDIFF_ROUNDS / ISS_VCDIFF_SEED for longer fuzzing runs */
    if (getenv("ISS_VCDIFF_SEED"))
        rng_state = strtoull(getenv("ISS_VCDIFF_SEED"), NULL, 0) | 1;
    test_mutations(getenv("ISS_VCDIFF_ROUNDS")
                   ? atoi(getenv("ISS_VCDIFF_ROUNDS")) : 20000);
    test_edges();

    testfs_rm_rf(base, gp);
    apr_pool_destroy(gp);
    apr_terminate();
    return done_testing();
}
