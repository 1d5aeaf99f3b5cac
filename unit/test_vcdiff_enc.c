/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* iss_vcdiff_enc: every delta the encoder makes is decoded by
 * iss_vcdiff (the decoder's limits set to the encoder's window and the
 * default sections limit; each window's sections are checked against
 * the header's 2 x target + 64 bytes as well) back to the
 * target, for many shapes of source and target (empty, identical,
 * inserts, deletes, moves, appends, unrelated, repeated content, runs),
 * target pieces of every size down to one byte, windows from 1 byte up,
 * with and without manifests (and with the bytes of unchanged chunks
 * skipped), with and without checksums; a handful go through the real
 * `xdelta3 -d` too.  The sizes of the issue's cases are checked against
 * bounds and against xdelta3's own delta of the same pair; with
 * manifests, a small edit must read about one chunk of the source.
 * Then the API: bad options, sticky errors, callback errors, the
 * manifest checks, max_delta, iss_vcdiff_enc_changed_bytes(); and a
 * random differential loop (ISS_VCDIFF_ENC_ROUNDS, ISS_VCDIFF_ENC_SEED). */

#include "iss_vcdiff_enc.h"
#include "iss_vcdiff.h"
#include "iss_manifest.h"
#include "tap.h"
#include "testfs.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <stdint.h>
#include <stdlib.h>

#define KIB ((size_t)1024)
#define MIB ((size_t)1024 * 1024)

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

static void buf_free(buf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static apr_uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static apr_uint64_t rnd(void)
{
    apr_uint64_t x = rng_state;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void fill_random(unsigned char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        p[i] = (unsigned char)(rnd() >> 24);
}

/* Text-like data: words from a small list. */
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

/* ---- encoding ------------------------------------------------------------ */

typedef struct src_t {
    const unsigned char *p;
    size_t len;
    apr_uint64_t read;          /* bytes read through the callback */
    int fail_after;             /* > 0: the n-th read fails */
    int reads;
} src_t;

static apr_status_t rd_src(void *baton, apr_uint64_t off, apr_size_t len,
                           unsigned char *to)
{
    src_t *s = baton;

    s->reads++;
    if (s->fail_after > 0 && s->reads >= s->fail_after)
        return APR_EACCES;
    if (off > s->len || len > s->len - off)
        return APR_EOF;
    memcpy(to, s->p + off, len);
    s->read += len;
    return APR_SUCCESS;
}

typedef struct out_t {
    buf_t b;
    int fail;                   /* non-zero: writes fail */
} out_t;

static apr_status_t wr(void *baton, const unsigned char *b, apr_size_t len)
{
    out_t *o = baton;

    if (o->fail)
        return APR_ENOSPC;
    buf_add(&o->b, b, len);
    return APR_SUCCESS;
}

/* How one encoding is made. */
typedef struct how_t {
    apr_size_t window;          /* 0: default */
    apr_size_t index_size;      /* 0: default */
    int checksum;
    apr_uint64_t max_delta;
    int manifests;              /* 0 none, 1 fed all, 2 unchanged skipped */
    iss_cdc_params_t params;    /* of the manifests; {0} small ones */
    int piece;                  /* 0 all at once, 1 byte by byte,
                                   -1 random, > 1 that many bytes */
} how_t;

typedef struct res_t {
    apr_status_t rv;
    buf_t delta;
    apr_uint64_t reported;      /* iss_vcdiff_enc_delta_size() */
    apr_uint64_t src_read;
    apr_uint64_t skipped;
    char msg[200];
} res_t;

static iss_manifest_t *manifest_of(const iss_cdc_params_t *prm,
                                   const unsigned char *d, size_t n,
                                   apr_pool_t *p)
{
    iss_manifest_builder_t *b;
    iss_manifest_t *m = NULL;

    if (iss_manifest_builder_create(&b, prm, p) != APR_SUCCESS
        || iss_manifest_builder_feed(b, d, n) != APR_SUCCESS
        || iss_manifest_builder_finish(b, &m) != APR_SUCCESS)
        abort();
    return m;
}

static const iss_cdc_params_t small_params = { 64, 256, 1024 };

static apr_status_t encode(const unsigned char *src, size_t slen,
                           const unsigned char *tgt, size_t tlen,
                           const how_t *how, res_t *res)
{
    iss_vcdiff_enc_opts_t o;
    iss_vcdiff_enc_t *enc;
    apr_pool_t *p;
    src_t s = { src, slen, 0, 0, 0 };
    out_t out;
    apr_status_t rv;
    size_t off = 0;

    memset(res, 0, sizeof(*res));
    memset(&out, 0, sizeof(out));
    apr_pool_create(&p, gp);
    memset(&o, 0, sizeof(o));
    o.window = how->window;
    o.index_size = how->index_size;
    o.source_size = slen;
    o.read_source = rd_src;
    o.source_baton = &s;
    o.write = wr;
    o.write_baton = &out;
    o.checksum = how->checksum;
    o.max_delta = how->max_delta;
    if (how->manifests) {
        const iss_cdc_params_t *prm = how->params.avg_size ? &how->params
                                                           : &small_params;

        o.source_manifest = manifest_of(prm, src, slen, p);
        o.target_manifest = manifest_of(prm, tgt, tlen, p);
    }
    rv = iss_vcdiff_enc_create(&enc, &o, p);
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(p);
        res->rv = rv;
        return rv;
    }
    while (off < tlen && rv == APR_SUCCESS) {
        size_t n = tlen - off;
        apr_uint64_t sk;

        if (how->manifests == 2 && (sk = iss_vcdiff_enc_skippable(enc)) > 0) {
            if (sk > tlen - off || (rnd() % 4 == 0 && sk > 1))
                sk = sk > tlen - off ? tlen - off : 1 + rnd() % sk;
            rv = iss_vcdiff_enc_skip(enc, sk);
            off += (size_t)sk;
            res->skipped += sk;
            continue;
        }
        if (how->piece == 1)
            n = 1;
        else if (how->piece < 0)
            n = 1 + (size_t)(rnd() % (rnd() % 3 == 0 ? 7 : 70000));
        else if (how->piece > 1)
            n = (size_t)how->piece;
        if (n > tlen - off)
            n = tlen - off;
        if (how->manifests == 2) {      /* stop where skipping may start */
            iss_vcdiff_enc_t *e = enc;
            size_t k;

            for (k = 0; k < n; k++) {
                if (iss_vcdiff_enc_skippable(e) > 0)
                    break;
                rv = iss_vcdiff_enc_feed(e, tgt + off, 1);
                off++;
                if (rv != APR_SUCCESS)
                    break;
            }
            continue;
        }
        rv = iss_vcdiff_enc_feed(enc, tgt + off, n);
        off += n;
    }
    if (rv == APR_SUCCESS)
        rv = iss_vcdiff_enc_finish(enc);
    else if (iss_vcdiff_enc_feed(enc, "", 0) != rv
             || iss_vcdiff_enc_finish(enc) != rv)
        rv = APR_EGENERAL;                  /* errors are sticky */
    res->reported = iss_vcdiff_enc_delta_size(enc);
    apr_cpystrn(res->msg, iss_vcdiff_enc_error(enc), sizeof(res->msg));
    if ((rv == APR_SUCCESS) != (res->msg[0] == '\0'))
        rv = APR_EGENERAL;                  /* a message iff an error */
    if (rv == APR_SUCCESS && iss_vcdiff_enc_target_size(enc) != tlen)
        rv = APR_EGENERAL;
    apr_pool_destroy(p);
    res->delta = out.b;
    res->src_read = s.read;
    res->rv = rv;
    return rv;
}

/* ---- decoding -------------------------------------------------------------- */

typedef struct dsrc_t {
    const unsigned char *p;
    size_t len;
} dsrc_t;

static apr_status_t d_rd(void *baton, apr_uint64_t off, apr_size_t len,
                         unsigned char *to)
{
    dsrc_t *s = baton;

    if (off > s->len || len > s->len - off)
        return APR_EOF;
    memcpy(to, s->p + off, len);
    return APR_SUCCESS;
}

static apr_status_t d_wr(void *baton, const unsigned char *b, apr_size_t len)
{
    buf_add(baton, b, len);
    return APR_SUCCESS;
}

/* Decode with iss_vcdiff, max_window = @a window (the encoder's), the
 * default sections limit, no read_target (the encoder never makes
 * VCD_TARGET windows). */
static apr_status_t decode(const unsigned char *src, size_t slen,
                           const buf_t *delta, apr_size_t window,
                           buf_t *out, char *msg, size_t msgsz)
{
    iss_vcdiff_opts_t o;
    iss_vcdiff_t *dec;
    apr_pool_t *p;
    dsrc_t s = { src, slen };
    apr_status_t rv;

    out->len = 0;
    apr_pool_create(&p, gp);
    memset(&o, 0, sizeof(o));
    o.max_window = window ? window : ISS_VCDIFF_ENC_WINDOW_DEFAULT;
    o.max_target = APR_UINT64_MAX;
    o.source_size = slen;
    o.read_source = d_rd;
    o.source_baton = &s;
    o.write = d_wr;
    o.write_baton = out;
    rv = iss_vcdiff_create(&dec, &o, p);
    if (rv == APR_SUCCESS)
        rv = iss_vcdiff_feed(dec, delta->p ? delta->p : (void *)"", delta->len);
    if (rv == APR_SUCCESS)
        rv = iss_vcdiff_finish(dec);
    if (rv != APR_SUCCESS && msg)
        apr_cpystrn(msg, iss_vcdiff_error(dec), msgsz);
    apr_pool_destroy(p);
    return rv;
}

static int same(const buf_t *b, const unsigned char *want, size_t n)
{
    return b->len == n && (n == 0 || memcmp(b->p, want, n) == 0);
}

/* ---- files and xdelta3 ------------------------------------------------------ */

static int put(const char *path, const unsigned char *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    int good;

    if (f == NULL)
        return 0;
    good = (n == 0 || fwrite(d, 1, n, f) == n);
    return fclose(f) == 0 && good;
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

/* xdelta3 -d -s OLD DELTA OUT: 1 if OUT equals @a want. */
static int xdelta_decodes(const unsigned char *src, size_t slen,
                          const buf_t *delta, const unsigned char *want,
                          size_t wlen)
{
    const char *o = apr_pstrcat(gp, tmp, "/old", NULL);
    const char *d = apr_pstrcat(gp, tmp, "/delta", NULL);
    const char *n = apr_pstrcat(gp, tmp, "/out", NULL);
    const char *cmd = apr_psprintf(gp, "xdelta3 -d -f -s %s %s %s", o, d, n);
    buf_t out = { 0 };
    int good;

    if (!have_xdelta || !put(o, src, slen) || !put(d, delta->p, delta->len))
        return 0;
    if (system(cmd) != 0) {
        diag("failed: %s", cmd);
        return 0;
    }
    good = slurp(n, &out) && same(&out, want, wlen);
    buf_free(&out);
    return good;
}

/* The size of xdelta3 -e -S none -A -D -n's delta; 0 if it failed. */
static size_t xdelta_size(const unsigned char *src, size_t slen,
                          const unsigned char *tgt, size_t tlen)
{
    const char *o = apr_pstrcat(gp, tmp, "/old", NULL);
    const char *n = apr_pstrcat(gp, tmp, "/new", NULL);
    const char *d = apr_pstrcat(gp, tmp, "/xdelta", NULL);
    const char *cmd = apr_psprintf(gp, "xdelta3 -e -f -S none -A -D -n -s %s"
                                   " %s %s", o, n, d);
    buf_t out = { 0 };
    size_t len;

    if (!have_xdelta || !put(o, src, slen) || !put(n, tgt, tlen))
        return 0;
    if (system(cmd) != 0) {
        diag("failed: %s", cmd);
        return 0;
    }
    len = slurp(d, &out) ? out.len : 0;
    buf_free(&out);
    return len;
}

/* ---- the promise on the sections -------------------------------------------- */

static int get_varint(const unsigned char **p, const unsigned char *end,
                      apr_uint64_t *v)
{
    int n;

    *v = 0;
    for (n = 0; n < 10 && *p < end; n++) {
        unsigned c = *(*p)++;

        *v = (*v << 7) | (c & 0x7f);
        if (!(c & 0x80))
            return 1;
    }
    return 0;
}

/* Walk the windows of a delta made by the encoder: 1 if every window's
 * sections are at most 2 x its target + 64 bytes (iss_vcdiff_enc.h) and
 * the header is the plain one (no secondary compressor, no code table,
 * no application header); *windows gets their number. */
static int sections_bounded(const buf_t *d, unsigned *windows)
{
    const unsigned char *p = d->p, *end = d->p + d->len;
    static const unsigned char magic[5] = { 0xd6, 0xc3, 0xc4, 0x00, 0x00 };

    *windows = 0;
    if (d->len < 5 || memcmp(d->p, magic, 5) != 0)
        return 0;
    p += 5;
    while (p < end) {
        apr_uint64_t x, tlen, dl, il, al;
        unsigned ind = *p++;

        if (ind & 0x03) {
            if (!get_varint(&p, end, &x) || !get_varint(&p, end, &x))
                return 0;
        }
        if (!get_varint(&p, end, &x) || !get_varint(&p, end, &tlen)
            || p >= end || *p++ != 0 || !get_varint(&p, end, &dl)
            || !get_varint(&p, end, &il) || !get_varint(&p, end, &al))
            return 0;
        if (ind & 0x04)
            p += 4;
        if (dl + il + al > 2 * tlen + 64 || dl + il + al > (size_t)(end - p))
            return 0;
        p += dl + il + al;
        (*windows)++;
    }
    return p == end && *windows > 0;
}

/* ---- round trips -------------------------------------------------------- */

/* Encode with @a how, decode with iss_vcdiff: 1 if the target comes
 * back.  *dsize gets the delta's size. */
static int round_trip(const char *name, const unsigned char *src,
                      size_t slen, const unsigned char *tgt, size_t tlen,
                      const how_t *how, size_t *dsize, int quiet)
{
    res_t r;
    buf_t out = { 0 };
    char msg[200] = "";
    apr_status_t rv = encode(src, slen, tgt, tlen, how, &r);
    unsigned windows = 0;
    int good;

    if (rv != APR_SUCCESS) {
        ok(0, "%s: encoded", name);
        diag("rv %d: %s", rv, r.msg);
        buf_free(&r.delta);
        return 0;
    }
    rv = decode(src, slen, &r.delta, how->window, &out, msg, sizeof(msg));
    good = rv == APR_SUCCESS && same(&out, tgt, tlen)
           && r.reported == r.delta.len
           && sections_bounded(&r.delta, &windows);
    if (!quiet || !good)
        ok(good, "%s: decoded (%zu -> %zu bytes, delta %zu)", name, slen,
           tlen, r.delta.len);
    if (rv != APR_SUCCESS)
        diag("decoder: rv %d: %s", rv, msg);
    else if (r.reported != r.delta.len)
        diag("reported %" APR_UINT64_T_FMT " bytes, wrote %zu", r.reported,
             r.delta.len);
    else if (!good)
        diag("a window's sections are above 2 x its target + 64 bytes");
    if (dsize)
        *dsize = r.delta.len;
    buf_free(&out);
    buf_free(&r.delta);
    return good;
}

/* A round trip in every way that matters for small inputs: pieces of
 * 1 byte, random and all at once; small windows; with manifests, fed and
 * skipped; with a checksum. */
static void all_ways(const char *name, const unsigned char *src,
                     size_t slen, const unsigned char *tgt, size_t tlen)
{
    static const int pieces[] = { 0, 1, -1, 7 };
    static const apr_size_t windows[] = { 0, 1, 17, 1000, 4096 };
    int bad = 0, runs = 0;
    size_t i, j, m;

    for (m = 0; m <= 2; m++) {
        for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
            for (j = 0; j < sizeof(windows) / sizeof(windows[0]); j++) {
                how_t how = { 0 };
                char what[200];

                if (pieces[i] == 1 && tlen > 20000 && windows[j] != 0)
                    continue;           /* slow and says nothing new */
                if (windows[j] == 1 && tlen > 20000)
                    continue;
                how.window = windows[j];
                how.piece = pieces[i];
                how.manifests = (int)m;
                how.checksum = (i + j) % 2;
                if (how.manifests == 2)
                    how.checksum = 0;
                apr_snprintf(what, sizeof(what), "%s [piece %d, window %"
                             APR_SIZE_T_FMT ", manifests %d, checksum %d]",
                             name, pieces[i], windows[j], how.manifests,
                             how.checksum);
                runs++;
                if (!round_trip(what, src, slen, tgt, tlen, &how, NULL, 1))
                    bad++;
            }
        }
    }
    ok(bad == 0, "%s: %d round trips (pieces 1, 7, random, all; windows"
       " 1 B to 8 MiB; manifests none, fed, skipped; checksums)", name,
       runs);
}

/* ---- the tests -------------------------------------------------------------- */

static void test_shapes(void)
{
    size_t n = 40000, i;
    unsigned char *a = malloc(n), *b = malloc(3 * n);
    size_t bl;

    fill_random(a, n);

    all_ways("empty source, empty target", NULL, 0, NULL, 0);
    all_ways("empty source, target", NULL, 0, a, 5000);
    all_ways("source, empty target", a, n, NULL, 0);
    all_ways("one byte to one byte", a, 1, a + 1, 1);
    all_ways("identical", a, n, a, n);

    /* insert 1000 bytes in the middle */
    memcpy(b, a, n / 2);
    fill_random(b + n / 2, 1000);
    memcpy(b + n / 2 + 1000, a + n / 2, n - n / 2);
    all_ways("insert", a, n, b, n + 1000);
    /* delete 1000 bytes */
    all_ways("delete", b, n + 1000, a, n);
    /* change 100 bytes */
    memcpy(b, a, n);
    fill_random(b + 12345, 100);
    all_ways("100 bytes changed", a, n, b, n);
    /* move: swap the halves */
    memcpy(b, a + n / 2, n - n / 2);
    memcpy(b + (n - n / 2), a, n / 2);
    all_ways("halves swapped", a, n, b, n);
    /* append */
    memcpy(b, a, n);
    fill_random(b + n, 3000);
    all_ways("append", a, n, b, n + 3000);
    /* prepend */
    fill_random(b, 3000);
    memcpy(b + 3000, a, n);
    all_ways("prepend", a, n, b, n + 3000);
    /* unrelated */
    fill_random(b, n);
    all_ways("unrelated", a, n, b, n);
    /* repeated content: the source three times, in the target */
    memcpy(b, a, n);
    memcpy(b + n, a, n);
    memcpy(b + 2 * n, a, n);
    all_ways("source repeated 3 times", a, n, b, 3 * n);
    /* repeated content within the target: a 1000-byte block 40 times */
    for (i = 0; i < 40; i++)
        memcpy(b + i * 1000, a + 7, 1000);
    all_ways("a block repeated, empty source", NULL, 0, b, 40000);
    /* runs */
    memset(b, 0, n);
    memset(b + 1000, 'x', 5000);
    b[20000] = 1;
    all_ways("runs", a, n, b, n);
    /* text, edited */
    fill_text(a, n);
    memcpy(b, a, n);
    memcpy(b + 10000, "a new line\n", 11);
    memcpy(b + 30000, a + 100, 2000);
    all_ways("text, edited", a, n, b, n);
    fill_text(b, n);
    all_ways("text, new", a, n, b, n);

    /* sizes of the obvious cases */
    {
        how_t how = { 0 };

        fill_random(a, n);
        round_trip("identical, size", a, n, a, n, &how, &bl, 0);
        ok(bl <= 32, "identical: %zu bytes of delta (<= 32)", bl);
        fill_random(b, n);
        round_trip("unrelated, size", a, n, b, n, &how, &bl, 0);
        ok(bl <= n + 32, "unrelated: %zu bytes (<= target + 32)", bl);
        memset(b, 0, n);
        round_trip("zeros, size", a, n, b, n, &how, &bl, 0);
        ok(bl <= 32, "40000 zeros: %zu bytes (<= 32)", bl);
        fill_text(b, n);
        round_trip("text, size", NULL, 0, b, n, &how, &bl, 0);
        ok(bl < n / 3, "text without a source: %zu bytes (< a third)", bl);
    }
    free(a);
    free(b);
}

/* The issue's cases at 4 MiB (bench/ does them at 256 MiB): sizes
 * against fixed bounds and against xdelta3's delta of the same pair,
 * with and without manifests; with manifests, how much of the source is
 * read and how much of the target skipped. */
static void test_issue_cases(void)
{
    size_t n = 4 * MIB, i, tl, xs, ds;
    unsigned char *a = malloc(n), *b = malloc(n + MIB);
    static const iss_cdc_params_t defaults = ISS_CDC_PARAMS_DEFAULT;
    int c, m;

    fill_random(a, n);
    for (c = 0; c < 3; c++) {
        const char *name;
        size_t bound;

        if (c == 0) {
            name = "(a) 100 bytes changed";
            memcpy(b, a, n);
            fill_random(b + n / 2 + 333, 100);
            tl = n;
            bound = 1000;
        }
        else if (c == 1) {
            name = "(b) 1 MiB inserted";
            memcpy(b, a, n / 2);
            fill_random(b + n / 2, MIB);
            memcpy(b + n / 2 + MIB, a + n / 2, n - n / 2);
            tl = n + MIB;
            bound = MIB + 1000;
        }
        else {
            name = "(c) 10% of the 64 KiB blocks rewritten";
            memcpy(b, a, n);
            for (i = 0; i < n / (64 * KIB); i++)
                if (rnd() % 10 == 0)
                    fill_random(b + i * 64 * KIB, 64 * KIB);
            tl = n;
            bound = 0;
            for (i = 0; i < n; i += 64 * KIB)
                bound += memcmp(a + i, b + i, 64 * KIB) ? 64 * KIB : 0;
            bound += bound / 100 + 1000;
        }
        xs = xdelta_size(a, n, b, tl);
        ok(xs > 0, "%s: xdelta3 made %zu bytes", name, xs);
        for (m = 0; m <= 2; m++) {
            how_t how = { 0 };
            res_t r;

            how.manifests = m;
            how.params = defaults;
            how.piece = 65536;
            if (!round_trip(name, a, n, b, tl, &how, &ds, 0))
                continue;
            ok(ds <= bound, "%s, manifests %d: %zu bytes (bound %zu)",
               name, m, ds, bound);
            ok(xs > 0 && ds <= 2 * xs, "%s, manifests %d: %zu bytes, %.2f x"
               " xdelta3's %zu (at most 2)", name, m, ds,
               xs ? (double)ds / (double)xs : 0.0, xs);
            if (m == 2 && encode(a, n, b, tl, &how, &r) == APR_SUCCESS) {
                diag("%s: %" APR_UINT64_T_FMT " source bytes read, %"
                     APR_UINT64_T_FMT " target bytes skipped", name,
                     r.src_read, r.skipped);
                if (c < 2)
                    ok(r.src_read <= MIB && r.skipped >= n - 2 * MIB,
                       "%s with manifests: reads %" APR_UINT64_T_FMT
                       " source bytes (<= 1 MiB), skips %" APR_UINT64_T_FMT
                       " target bytes", name, r.src_read, r.skipped);
                buf_free(&r.delta);
            }
        }
    }
    free(a);
    free(b);
}

/* With manifests, unchanged chunks cost neither reads nor bytes: an
 * identical file is a few COPYs and nothing is read; swapped halves read
 * only the chunks around the cuts. */
static void test_manifest_costs(void)
{
    size_t n = 2 * MIB;
    unsigned char *a = malloc(n), *b = malloc(n);
    static const iss_cdc_params_t defaults = ISS_CDC_PARAMS_DEFAULT;
    how_t how = { 0 };
    res_t r;

    fill_random(a, n);
    how.manifests = 2;
    how.params = defaults;
    how.piece = 65536;
    if (encode(a, n, a, n, &how, &r) == APR_SUCCESS) {
        ok(r.delta.len <= 32 && r.src_read == 0 && r.skipped == n,
           "identical, with manifests: %zu bytes, %" APR_UINT64_T_FMT
           " source bytes read, %" APR_UINT64_T_FMT " target bytes skipped",
           r.delta.len, r.src_read, r.skipped);
    }
    else
        ok(0, "identical, with manifests: encoded (%s)", r.msg);
    buf_free(&r.delta);
    how.window = 100000;        /* chunks cut by window boundaries */
    if (encode(a, n, a, n, &how, &r) == APR_SUCCESS)
        ok(r.delta.len <= 21 * 40 && r.src_read == 0,
           "identical, with manifests, windows of 100000 bytes: %zu bytes,"
           " %" APR_UINT64_T_FMT " source bytes read", r.delta.len,
           r.src_read);
    else
        ok(0, "windows of 100000: encoded (%s)", r.msg);
    buf_free(&r.delta);
    how.window = 0;
    memcpy(b, a + n / 2, n / 2);
    memcpy(b + n / 2, a, n / 2);
    round_trip("halves swapped, with manifests", a, n, b, n, &how, NULL, 0);
    {
        apr_pool_t *p;
        apr_uint64_t changed = 0;

        /* the chunker needs a while to find the source's cuts again
         * after each junction: the chunks in between are read twice
         * (indexed, then matched) */
        apr_pool_create(&p, gp);
        iss_vcdiff_enc_changed_bytes(manifest_of(&defaults, a, n, p),
                                     manifest_of(&defaults, b, n, p),
                                     &changed, p);
        apr_pool_destroy(p);
        if (encode(a, n, b, n, &how, &r) == APR_SUCCESS)
            ok(r.delta.len <= 200 && r.src_read <= 2 * changed + 512 * KIB,
               "halves swapped, with manifests: %zu bytes, %"
               APR_UINT64_T_FMT " source bytes read (changed chunks: %"
               APR_UINT64_T_FMT " bytes)", r.delta.len, r.src_read,
               changed);
        else
            ok(0, "halves swapped: encoded (%s)", r.msg);
    }
    buf_free(&r.delta);
    free(a);
    free(b);
}

/* A handful of deltas through the real xdelta3 -d. */
static void test_xdelta(void)
{
    size_t n = 300000;
    unsigned char *a = malloc(n), *b = malloc(2 * n);
    static const iss_cdc_params_t defaults = ISS_CDC_PARAMS_DEFAULT;
    int k;

    if (!have_xdelta) {
        ok(0, "xdelta3 is installed (scripts/deps.sh)");
        free(a);
        free(b);
        return;
    }
    fill_text(a, n);
    for (k = 0; k < 8; k++) {
        how_t how = { 0 };
        res_t r;
        size_t tl = n;
        const char *name = "";

        memcpy(b, a, n);
        switch (k) {
        case 0:
            name = "text, lines inserted, deleted, moved";
            memcpy(b + 1000, "inserted\n", 9);
            memmove(b + 50000, b + 60000, n - 60000);
            memcpy(b + 100000, a + 200000, 5000);
            tl = n - 10000;
            break;
        case 1:
            name = "the same, with a checksum";
            memcpy(b + 1000, "inserted\n", 9);
            how.checksum = 1;
            break;
        case 2:
            name = "appended, windows of 64 KiB";
            fill_text(b + n, 100000);
            tl = n + 100000;
            how.window = 64 * KIB;
            break;
        case 3:
            name = "with manifests, skipped";
            fill_random(b + 150000, 300);
            how.manifests = 2;
            how.params = defaults;
            break;
        case 4:
            name = "empty target";
            tl = 0;
            break;
        case 5:
            name = "unrelated";
            fill_random(b, n);
            break;
        case 6:
            name = "windows of 16 MiB (the largest)";
            how.window = ISS_VCDIFF_ENC_WINDOW_MAX;
            b[7] ^= 1;
            break;
        case 7:
            name = "runs and repeats";
            memset(b + 1000, 0, 30000);
            memcpy(b + 40000, b + 39000, 1000);
            how.checksum = 1;
            break;
        }
        if (encode(a, n, b, tl, &how, &r) != APR_SUCCESS) {
            ok(0, "xdelta3 -d: %s: encoded (%s)", name, r.msg);
            continue;
        }
        ok(xdelta_decodes(a, n, &r.delta, b, tl), "xdelta3 -d decodes: %s"
           " (%zu bytes)", name, r.delta.len);
        buf_free(&r.delta);
    }
    /* an empty source too */
    {
        how_t how = { 0 };
        res_t r;

        if (encode(NULL, 0, a, 1000, &how, &r) == APR_SUCCESS)
            ok(xdelta_decodes(NULL, 0, &r.delta, a, 1000),
               "xdelta3 -d decodes: empty source");
        else
            ok(0, "empty source: encoded");
        buf_free(&r.delta);
    }
    free(a);
    free(b);
}

/* ---- the API ------------------------------------------------------------------ */

static void test_api(void)
{
    iss_vcdiff_enc_opts_t o, good;
    iss_vcdiff_enc_t *enc;
    apr_pool_t *p;
    unsigned char a[5000], b[5000];
    src_t s = { a, sizeof(a), 0, 0, 0 };
    out_t out;
    iss_manifest_t *ma, *mb, bad;
    apr_uint64_t changed;
    apr_status_t rv;

    fill_random(a, sizeof(a));
    memcpy(b, a, sizeof(b));
    fill_random(b + 2000, 600);
    memset(&out, 0, sizeof(out));
    apr_pool_create(&p, gp);
    memset(&good, 0, sizeof(good));
    good.source_size = sizeof(a);
    good.read_source = rd_src;
    good.source_baton = &s;
    good.write = wr;
    good.write_baton = &out;
    ma = manifest_of(&small_params, a, sizeof(a), p);
    mb = manifest_of(&small_params, b, sizeof(b), p);

    rv = iss_vcdiff_enc_create(&enc, NULL, p);
    is_int(rv, APR_EINVAL, "create: no options");
    o = good;
    o.write = NULL;
    is_int(iss_vcdiff_enc_create(&enc, &o, p), APR_EINVAL,
           "create: no write callback");
    ok(enc == NULL, "create: *enc is NULL on failure");
    o = good;
    o.read_source = NULL;
    is_int(iss_vcdiff_enc_create(&enc, &o, p), APR_EINVAL,
           "create: a source without read_source");
    o.source_size = 0;
    is_int(iss_vcdiff_enc_create(&enc, &o, p), APR_SUCCESS,
           "create: no source, no read_source");
    o = good;
    o.window = ISS_VCDIFF_ENC_WINDOW_MAX + 1;
    is_int(iss_vcdiff_enc_create(&enc, &o, p), APR_EINVAL,
           "create: window above 16 MiB");
    o = good;
    o.index_size = ISS_VCDIFF_ENC_INDEX_MIN - 1;
    is_int(iss_vcdiff_enc_create(&enc, &o, p), APR_EINVAL,
           "create: index_size below the minimum");
    o.index_size = ISS_VCDIFF_ENC_INDEX_MAX + 1;
    is_int(iss_vcdiff_enc_create(&enc, &o, p), APR_EINVAL,
           "create: index_size above the maximum");
    o = good;
    o.source_manifest = ma;
    is_int(iss_vcdiff_enc_create(&enc, &o, p), APR_EINVAL,
           "create: a source manifest without a target manifest");
    o.source_manifest = NULL;
    o.target_manifest = mb;
    is_int(iss_vcdiff_enc_create(&enc, &o, p), APR_EINVAL,
           "create: a target manifest without a source manifest");
    o.source_manifest = mb;
    o.source_size = sizeof(a) - 1;
    is_int(iss_vcdiff_enc_create(&enc, &o, p), APR_EINVAL,
           "create: a source manifest of another size");
    bad = *ma;
    bad.file_size++;
    o = good;
    o.source_manifest = ma;
    o.target_manifest = &bad;
    is_int(iss_vcdiff_enc_create(&enc, &o, p), APR_EINVAL,
           "create: a manifest whose lengths do not add up");
    bad = *ma;
    bad.entries = NULL;
    o.target_manifest = &bad;
    is_int(iss_vcdiff_enc_create(&enc, &o, p), APR_EINVAL,
           "create: a manifest with entries missing");

    /* the manifest's size is checked against what is fed */
    o = good;
    o.source_manifest = ma;
    o.target_manifest = mb;
    rv = iss_vcdiff_enc_create(&enc, &o, p);
    is_int(rv, APR_SUCCESS, "create: with manifests");
    if (rv == APR_SUCCESS) {
        is_int(iss_vcdiff_enc_feed(enc, b, sizeof(b) - 1), APR_SUCCESS,
               "feed: all but one byte");
        is_int(iss_vcdiff_enc_finish(enc), ISS_VCDIFF_ENC_EMANIFEST,
               "finish: one byte short of the manifest");
        ok(strstr(iss_vcdiff_enc_error(enc), "shorter") != NULL,
           "... with a message: %s", iss_vcdiff_enc_error(enc));
        is_int(iss_vcdiff_enc_feed(enc, b, 1), ISS_VCDIFF_ENC_EMANIFEST,
               "... and the error is sticky");
    }
    rv = iss_vcdiff_enc_create(&enc, &o, p);
    if (rv == APR_SUCCESS) {
        is_int(iss_vcdiff_enc_feed(enc, b, sizeof(b)), APR_SUCCESS,
               "feed: the whole target");
        is_int(iss_vcdiff_enc_feed(enc, b, 1), ISS_VCDIFF_ENC_EMANIFEST,
               "feed: one byte beyond the manifest");
    }
    rv = iss_vcdiff_enc_create(&enc, &o, p);
    if (rv == APR_SUCCESS) {
        apr_uint64_t sk = iss_vcdiff_enc_skippable(enc);

        ok(sk > 0, "skippable: %" APR_UINT64_T_FMT " bytes at the start",
           sk);
        is_int(iss_vcdiff_enc_skip(enc, sk + 1), APR_EINVAL,
               "skip: more than skippable");
        is_int(iss_vcdiff_enc_skip(enc, sk), APR_SUCCESS,
               "skip: skippable bytes");
        is_int(iss_vcdiff_enc_skippable(enc), 0,
               "skippable: 0 at the changed chunk");
        is_int(iss_vcdiff_enc_skip(enc, 1), APR_EINVAL,
               "skip: not inside a changed chunk");
        is_int(iss_vcdiff_enc_target_size(enc), sk, "target size counts"
               " skipped bytes");
        {
            apr_uint64_t w = iss_vcdiff_enc_wanted(enc);

            ok(sk <= 2000 && w > 0 && w < sizeof(b) && sk + w >= 2600,
               "wanted: %" APR_UINT64_T_FMT " bytes from %" APR_UINT64_T_FMT
               ", over the 600 changed at 2000", w, sk);
        }
    }
    rv = iss_vcdiff_enc_create(&enc, &o, p);
    if (rv == APR_SUCCESS) {
        apr_uint64_t fed = 0, skipped = 0, w, sk;
        int steps = 0;

        while (fed + skipped < sizeof(b) && steps++ < 100) {
            sk = iss_vcdiff_enc_skippable(enc);
            w = iss_vcdiff_enc_wanted(enc);
            if ((sk > 0) == (w > 0))
                break;
            if (sk > 0) {
                iss_vcdiff_enc_skip(enc, sk);
                skipped += sk;
            }
            else {
                iss_vcdiff_enc_feed(enc, b + fed + skipped, (apr_size_t)w);
                fed += w;
            }
        }
        ok(fed + skipped == sizeof(b) && iss_vcdiff_enc_wanted(enc) == 0
           && iss_vcdiff_enc_skippable(enc) == 0,
           "wanted and skippable: one of them at a time, to the end (%"
           APR_UINT64_T_FMT " fed, %" APR_UINT64_T_FMT " skipped)", fed,
           skipped);
        is_int(iss_vcdiff_enc_finish(enc), APR_SUCCESS,
               "... and the target is complete");
    }
    o.checksum = 1;
    rv = iss_vcdiff_enc_create(&enc, &o, p);
    if (rv == APR_SUCCESS) {
        is_int(iss_vcdiff_enc_skippable(enc), 0,
               "skippable: 0 with a checksum");
        ok(iss_vcdiff_enc_wanted(enc) == APR_UINT64_MAX,
           "wanted: everything with a checksum");
    }
    o = good;
    rv = iss_vcdiff_enc_create(&enc, &o, p);
    if (rv == APR_SUCCESS) {
        is_int(iss_vcdiff_enc_skippable(enc), 0,
               "skippable: 0 without manifests");
        ok(iss_vcdiff_enc_wanted(enc) == APR_UINT64_MAX,
           "wanted: everything without manifests");
        is_int(iss_vcdiff_enc_skip(enc, 1), APR_EINVAL,
               "skip: refused without manifests");
        is_int(iss_vcdiff_enc_feed(enc, b, sizeof(b)), APR_SUCCESS,
               "feed");
        is_int(iss_vcdiff_enc_finish(enc), APR_SUCCESS, "finish");
        is_int(iss_vcdiff_enc_finish(enc), APR_EINVAL, "finish twice");
        is_int(iss_vcdiff_enc_feed(enc, b, 1), APR_EINVAL,
               "feed after finish");
        is_str(iss_vcdiff_enc_error(enc), "", "no message without error");
    }

    /* callbacks' errors are returned, with a message, and sticky */
    o = good;
    s.fail_after = 1;
    s.reads = 0;
    rv = iss_vcdiff_enc_create(&enc, &o, p);
    if (rv == APR_SUCCESS) {
        is_int(iss_vcdiff_enc_feed(enc, b, sizeof(b)), APR_SUCCESS,
               "feed: no window complete yet");
        is_int(iss_vcdiff_enc_finish(enc), APR_EACCES,
               "finish: the source read's error");
        ok(strstr(iss_vcdiff_enc_error(enc), "source") != NULL,
           "... with a message: %s", iss_vcdiff_enc_error(enc));
        is_int(iss_vcdiff_enc_finish(enc), APR_EACCES, "... sticky");
    }
    s.fail_after = 0;
    out.fail = 1;
    o.window = 1000;
    rv = iss_vcdiff_enc_create(&enc, &o, p);
    if (rv == APR_SUCCESS) {
        is_int(iss_vcdiff_enc_feed(enc, b, sizeof(b)), APR_ENOSPC,
               "feed: the write callback's error");
        is_int(iss_vcdiff_enc_feed(enc, b, 1), APR_ENOSPC, "... sticky");
    }
    out.fail = 0;

    /* max_delta */
    {
        how_t how = { 0 };
        res_t r;

        fill_random(b, sizeof(b));
        how.max_delta = sizeof(b) - 1;
        is_int(encode(a, sizeof(a), b, sizeof(b), &how, &r),
               ISS_VCDIFF_ENC_ETOOBIG, "max_delta: an unrelated target"
               " does not fit in target size - 1");
        ok(r.delta.len <= how.max_delta, "... and what was written stays"
           " within it (%zu)", r.delta.len);
        buf_free(&r.delta);
        how.window = 1000;
        is_int(encode(a, sizeof(a), b, sizeof(b), &how, &r),
               ISS_VCDIFF_ENC_ETOOBIG, "max_delta: the same, in windows"
               " of 1000");
        ok(r.delta.len <= how.max_delta && r.delta.len > 0,
           "... stops in the middle (%zu bytes written)", r.delta.len);
        buf_free(&r.delta);
        how.window = 0;
        is_int(encode(a, sizeof(a), a, sizeof(a), &how, &r), APR_SUCCESS,
               "max_delta: an identical target fits");
        buf_free(&r.delta);
        how.max_delta = 5;
        is_int(encode(a, sizeof(a), NULL, 0, &how, &r),
               ISS_VCDIFF_ENC_ETOOBIG, "max_delta 5: not even an empty"
               " target fits (header + one window)");
        buf_free(&r.delta);
    }

    /* changed_bytes */
    memcpy(b, a, sizeof(b));
    fill_random(b + 2000, 600);
    is_int(iss_vcdiff_enc_changed_bytes(ma, ma, &changed, p), APR_SUCCESS,
           "changed_bytes: identical");
    is_int(changed, 0, "changed_bytes: identical: 0");
    iss_vcdiff_enc_changed_bytes(ma, mb, &changed, p);
    ok(changed >= 600 && changed <= 600 + 2 * 1024 + 1024,
       "changed_bytes: 600 bytes changed: %" APR_UINT64_T_FMT, changed);
    fill_random(b, sizeof(b));
    mb = manifest_of(&small_params, b, sizeof(b), p);
    iss_vcdiff_enc_changed_bytes(ma, mb, &changed, p);
    is_int(changed, sizeof(b), "changed_bytes: unrelated: all of it");
    is_int(iss_vcdiff_enc_changed_bytes(NULL, mb, &changed, p), APR_EINVAL,
           "changed_bytes: NULL source");
    is_int(iss_vcdiff_enc_changed_bytes(ma, mb, NULL, p), APR_EINVAL,
           "changed_bytes: NULL result");
    apr_pool_destroy(p);
    buf_free(&out.b);
}

/* Small indexes, in case the sampling step is wrong. */
static void test_index_sizes(void)
{
    size_t n = 200000, i;
    unsigned char *a = malloc(n), *b = malloc(n);
    static const apr_size_t sizes[] = { 64, 1024, 65536, 1 << 20 };
    size_t prev = 0;

    fill_random(a, n);
    memcpy(b, a + n / 2, n / 2);        /* halves swapped, an edit */
    memcpy(b + n / 2, a, n / 2);
    fill_random(b + 1000, 10);
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        how_t how = { 0 };
        size_t ds;
        char what[100];

        how.index_size = sizes[i];
        apr_snprintf(what, sizeof(what), "index of %" APR_SIZE_T_FMT
                     " bytes", sizes[i]);
        if (round_trip(what, a, n, b, n, &how, &ds, 0) && i > 0)
            ok(ds <= prev + 64, "%s: %zu bytes, not more than with a"
               " smaller index (%zu)", what, ds, prev);
        prev = ds;
    }
    free(a);
    free(b);
}

/* Random sources, random edits, random ways: our decoder must give the
 * target back. */
static void test_random(int rounds)
{
    size_t cap = 300000;
    unsigned char *a = malloc(cap), *b = malloc(4 * cap), *tmpb =
        malloc(4 * cap);
    int r, bad = 0;

    for (r = 0; r < rounds; r++) {
        size_t sl = (size_t)(rnd() % (rnd() % 4 == 0 ? 100 : cap)), tl, e;
        int edits = (int)(rnd() % 8);
        how_t how = { 0 };
        char what[64];

        if (rnd() % 2)
            fill_random(a, sl);
        else
            fill_text(a, sl);
        memcpy(b, a, sl);
        tl = sl;
        for (e = 0; e < (size_t)edits; e++) {
            size_t at = tl ? (size_t)(rnd() % (tl + 1)) : 0;
            size_t len = (size_t)(rnd() % (rnd() % 2 ? 50 : 20000)) + 1;

            switch (rnd() % 5) {
            case 0:     /* insert random */
                if (tl + len > 3 * cap)
                    break;
                memmove(b + at + len, b + at, tl - at);
                fill_random(b + at, len);
                tl += len;
                break;
            case 1:     /* delete */
                if (len > tl - at)
                    len = tl - at;
                memmove(b + at, b + at + len, tl - at - len);
                tl -= len;
                break;
            case 2:     /* replace */
                if (len > tl - at)
                    len = tl - at;
                fill_random(b + at, len);
                break;
            case 3:     /* copy a piece of the source in */
                if (sl == 0 || tl + len > 3 * cap)
                    break;
                {
                    size_t from = (size_t)(rnd() % sl);

                    if (len > sl - from)
                        len = sl - from;
                    memmove(b + at + len, b + at, tl - at);
                    memcpy(b + at, a + from, len);
                    tl += len;
                }
                break;
            default:    /* a run */
                if (len > tl - at)
                    len = tl - at;
                memset(b + at, (int)(rnd() % 3), len);
                break;
            }
        }
        memcpy(tmpb, b, tl);
        how.window = rnd() % 3 == 0 ? (apr_size_t)(1 + rnd() % 70000) : 0;
        how.index_size = rnd() % 3 == 0 ? (apr_size_t)(64 + rnd() % 100000)
                                        : 0;
        how.manifests = (int)(rnd() % 3);
        how.checksum = how.manifests != 2 && rnd() % 2;
        how.piece = rnd() % 2 ? -1 : 0;
        apr_snprintf(what, sizeof(what), "random round %d", r);
        if (!round_trip(what, a, sl, tmpb, tl, &how, NULL, 1)) {
            bad++;
            diag("round %d: source %zu, target %zu, window %" APR_SIZE_T_FMT
                 ", index %" APR_SIZE_T_FMT ", manifests %d", r, sl, tl,
                 how.window, how.index_size, how.manifests);
            if (bad > 5)
                break;
        }
    }
    ok(bad == 0, "%d random pairs and ways: all decoded", r);
    free(a);
    free(b);
    free(tmpb);
}

int main(int argc, const char *const *argv)
{
    char *base;

    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&gp, NULL);

    base = apr_pstrdup(gp, "/tmp/iss-vcdiff-enc-test-XXXXXX");
    if (!mkdtemp(base)) {
        ok(0, "mkdtemp");
        return done_testing();
    }
    tmp = base;
    have_xdelta = system("xdelta3 -V >/dev/null 2>&1") == 0;
    if (getenv("ISS_VCDIFF_ENC_SEED"))
        rng_state = strtoull(getenv("ISS_VCDIFF_ENC_SEED"), NULL, 0) | 1;

    test_api();
    test_shapes();
    test_index_sizes();
    test_issue_cases();
    test_manifest_costs();
    test_xdelta();
    test_random(getenv("ISS_VCDIFF_ENC_ROUNDS")
                ? atoi(getenv("ISS_VCDIFF_ENC_ROUNDS")) : 300);

    testfs_rm_rf(base, gp);
    apr_pool_destroy(gp);
    apr_terminate();
    return done_testing();
}
