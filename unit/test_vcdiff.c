/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* iss_vcdiff: deltas made by xdelta3 at test time (with and without its
 * Adler-32 window checksum, one and many windows) decode to the new file
 * whatever the chunking of the input; hand-built deltas cover RUN,
 * overlapping COPY, VCD_TARGET windows, NEAR/SAME addresses, the limits,
 * truncation at every offset, the refused features; random mutations
 * never crash (run it under ASan as well: scripts/build.sh asan). */

#include "iss_vcdiff.h"
#include "tap.h"
#include "testfs.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <stdint.h>
#include <stdlib.h>
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
    memcpy(want, src + 112, 4);
    memcpy(want + 4, src + 112, 4);
    ok(rv == APR_SUCCESS && same(&r.out, want, 8),
       "COPY across the end of the source segment");
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

    testfs_rm_rf(base, gp);
    apr_pool_destroy(gp);
    apr_terminate();
    return done_testing();
}
