/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * Streaming RFC 3284 VCDIFF decoder; see iss_vcdiff.h for the promises.
 *
 * The input runs through a small state machine:
 *
 *   ST_FHDR   the file header (magic, Hdr_Indicator, application header
 *             length) is collected in hb[] and parsed from the start each
 *             time more bytes arrive; it is at most FHDR_MAX bytes;
 *   ST_APP    xdelta3's application header is skipped (counted, never
 *             stored);
 *   ST_WHDR   a window header, from Win_Indicator to the checksum, is
 *             collected the same way (at most WHDR_MAX bytes);
 *   ST_SECT   the window's three sections are copied into sect[], whose
 *             size was checked against max_sections before allocating;
 *             when complete the window is decoded from memory into
 *             tbuf[], verified and written, and the state returns to
 *             ST_WHDR.
 *
 * The delta ends cleanly only in ST_WHDR with nothing collected.
 */

#include "iss_vcdiff.h"
#include "iss_bytes.h"

#include <apr_strings.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Hdr_Indicator */
#define VCD_DECOMPRESS 0x01
#define VCD_CODETABLE  0x02
#define VCD_APPHEADER  0x04     /* xdelta3 */
/* Win_Indicator */
#define VCD_SOURCE     0x01
#define VCD_TARGET     0x02
#define VCD_ADLER32    0x04     /* xdelta3 */

/* Instruction types of the code table. */
#define I_NOOP 0
#define I_ADD  1
#define I_RUN  2
#define I_COPY 3

#define S_NEAR 4
#define S_SAME 3

#define VARINT_MAX 10           /* bytes of one 64-bit varint */
#define FHDR_MAX   (5 + VARINT_MAX)
/* Win_Indicator, 2 segment varints, enclen, target length, Delta_Indicator,
 * 3 section lengths, checksum. */
#define WHDR_MAX   (1 + 2 * VARINT_MAX + VARINT_MAX + VARINT_MAX + 1 \
                    + 3 * VARINT_MAX + 4)

enum { ST_FHDR, ST_APP, ST_WHDR, ST_SECT, ST_ERROR };

typedef struct inst_t {
    unsigned char type, size, mode;
} inst_t;

struct iss_vcdiff_t {
    apr_pool_t *pool;
    iss_vcdiff_opts_t o;
    int state;
    apr_status_t err;
    char msg[160];

    inst_t table[256][2];       /* default code table */

    unsigned char hb[WHDR_MAX > FHDR_MAX ? WHDR_MAX : FHDR_MAX];
    apr_size_t hb_len;
    apr_uint64_t app_left;      /* ST_APP: bytes still to skip */

    /* current window */
    int win_ind;
    apr_uint64_t seg_len, seg_pos;
    apr_size_t target_len;
    apr_size_t data_len, inst_len, addr_len;
    apr_uint32_t adler;

    unsigned char *sect;        /* data | instructions | addresses */
    apr_size_t sect_cap, sect_have, sect_need;
    unsigned char *tbuf;        /* target window */
    apr_size_t tbuf_cap;

    apr_uint64_t near[S_NEAR];
    int next_slot;
    apr_uint64_t same[S_SAME * 256];

    apr_uint64_t total;         /* target bytes written */
    apr_uint64_t fed;           /* delta bytes fed before this call */
    apr_uint64_t hdr_start;     /* offset in the delta of the window
                                 * header being parsed */
    apr_uint64_t nwin;          /* windows decoded */
};

/* ------------------------------------------------------------------ */

static apr_status_t fail(iss_vcdiff_t *d, apr_status_t rv,
                         const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static apr_status_t fail(iss_vcdiff_t *d, apr_status_t rv,
                         const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    apr_vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
    va_end(ap);
    d->err = rv;
    d->state = ST_ERROR;
    return rv;
}

/* RFC 3284 section 5.6, built as the RFC describes it. */
static void build_table(iss_vcdiff_t *d)
{
    int i = 0, mode, s, t;

    memset(d->table, 0, sizeof(d->table));
    /* 0: RUN 0 */
    d->table[i][0].type = I_RUN;
    i++;
    /* 1..18: ADD 0, 1..17 */
    for (s = 0; s <= 17; s++, i++) {
        d->table[i][0].type = I_ADD;
        d->table[i][0].size = (unsigned char)s;
    }
    /* 19..162: COPY 0, 4..18 in each of the 9 modes */
    for (mode = 0; mode <= 8; mode++) {
        for (s = 0; s <= 18; s++) {
            if (s >= 1 && s <= 3)
                continue;
            d->table[i][0].type = I_COPY;
            d->table[i][0].size = (unsigned char)s;
            d->table[i][0].mode = (unsigned char)mode;
            i++;
        }
    }
    /* 163..234: ADD 1..4 + COPY 4..6, modes 0..5 */
    for (mode = 0; mode <= 5; mode++) {
        for (s = 1; s <= 4; s++) {
            for (t = 4; t <= 6; t++, i++) {
                d->table[i][0].type = I_ADD;
                d->table[i][0].size = (unsigned char)s;
                d->table[i][1].type = I_COPY;
                d->table[i][1].size = (unsigned char)t;
                d->table[i][1].mode = (unsigned char)mode;
            }
        }
    }
    /* 235..246: ADD 1..4 + COPY 4, modes 6..8 */
    for (mode = 6; mode <= 8; mode++) {
        for (s = 1; s <= 4; s++, i++) {
            d->table[i][0].type = I_ADD;
            d->table[i][0].size = (unsigned char)s;
            d->table[i][1].type = I_COPY;
            d->table[i][1].size = 4;
            d->table[i][1].mode = (unsigned char)mode;
        }
    }
    /* 247..255: COPY 4 modes 0..8 + ADD 1 */
    for (mode = 0; mode <= 8; mode++, i++) {
        d->table[i][0].type = I_COPY;
        d->table[i][0].size = 4;
        d->table[i][0].mode = (unsigned char)mode;
        d->table[i][1].type = I_ADD;
        d->table[i][1].size = 1;
    }
}

static apr_status_t cleanup(void *data)
{
    iss_vcdiff_t *d = data;

    free(d->sect);
    free(d->tbuf);
    d->sect = d->tbuf = NULL;
    d->sect_cap = d->tbuf_cap = 0;
    return APR_SUCCESS;
}

apr_status_t iss_vcdiff_create(iss_vcdiff_t **dec,
                               const iss_vcdiff_opts_t *opts,
                               apr_pool_t *pool)
{
    iss_vcdiff_t *d;

    *dec = NULL;
    if (opts == NULL || opts->write == NULL || opts->max_window == 0
        || (opts->read_source == NULL && opts->source_size > 0))
        return APR_EINVAL;
    d = apr_pcalloc(pool, sizeof(*d));
    d->pool = pool;
    d->o = *opts;
    if (d->o.max_sections == 0) {
        d->o.max_sections = d->o.max_window > (APR_SIZE_MAX - 4096) / 2
            ? APR_SIZE_MAX : 2 * d->o.max_window + 4096;
    }
    d->state = ST_FHDR;
    build_table(d);
    apr_pool_cleanup_register(pool, d, cleanup, apr_pool_cleanup_null);
    *dec = d;
    return APR_SUCCESS;
}

const char *iss_vcdiff_error(const iss_vcdiff_t *dec)
{
    return dec->msg;
}

apr_uint64_t iss_vcdiff_target_size(const iss_vcdiff_t *dec)
{
    return dec->total;
}

/* ------------------------------------------------------------------ */
/* Varints: 1 = got one, 0 = need more bytes, -1 = too long/overflow. */

static int get_varint(const unsigned char **pp, const unsigned char *end,
                      apr_uint64_t *out)
{
    const unsigned char *p = *pp;
    apr_uint64_t v = 0;
    int n;

    for (n = 0; n < VARINT_MAX; n++) {
        if (p >= end)
            return 0;
        if (v > (UINT64_MAX >> 7))
            return -1;
        v = (v << 7) | (*p & 0x7f);
        if (!(*p++ & 0x80)) {
            *out = v;
            *pp = p;
            return 1;
        }
    }
    return -1;
}

/* Parse the file header in hb[]: 1 complete (*used set), 0 need more. */
static int parse_fhdr(iss_vcdiff_t *d, apr_size_t *used)
{
    static const unsigned char magic[4] = { 0xd6, 0xc3, 0xc4, 0x00 };
    const unsigned char *p = d->hb, *end = d->hb + d->hb_len;
    apr_size_t n = d->hb_len < 4 ? d->hb_len : 4;
    int ind, r;

    if (memcmp(d->hb, magic, n) != 0) {
        fail(d, ISS_VCDIFF_EFORMAT, "not a VCDIFF delta (bad magic)");
        return -1;
    }
    if (d->hb_len < 5)
        return 0;
    ind = d->hb[4];
    p += 5;
    if (ind & VCD_DECOMPRESS) {
        fail(d, ISS_VCDIFF_ESECONDARY,
             "secondary compressors are not supported");
        return -1;
    }
    if (ind & VCD_CODETABLE) {
        fail(d, ISS_VCDIFF_ECODETABLE,
             "application-defined code tables are not supported");
        return -1;
    }
    if (ind & ~(VCD_DECOMPRESS | VCD_CODETABLE | VCD_APPHEADER)) {
        fail(d, ISS_VCDIFF_EFORMAT, "unknown Hdr_Indicator bits 0x%02x",
             ind);
        return -1;
    }
    d->app_left = 0;
    if (ind & VCD_APPHEADER) {
        r = get_varint(&p, end, &d->app_left);
        if (r < 0) {
            fail(d, ISS_VCDIFF_EFORMAT, "bad application header length");
            return -1;
        }
        if (r == 0)
            return 0;
    }
    *used = (apr_size_t)(p - d->hb);
    return 1;
}

#define WVARINT(var, what)                                              \
    do {                                                                \
        r = get_varint(&p, end, &(var));                                \
        if (r < 0) {                                                    \
            fail(d, ISS_VCDIFF_EFORMAT, "window %" APR_UINT64_T_FMT     \
                 ": bad varint in %s", d->nwin, what);                  \
            return -1;                                                  \
        }                                                               \
        if (r == 0)                                                     \
            return 0;                                                   \
    } while (0)

/* Parse a window header in hb[]: 1 complete (*used set, buffers ready),
 * 0 need more, -1 error. */
static int parse_whdr(iss_vcdiff_t *d, apr_size_t *used)
{
    const unsigned char *p = d->hb, *end = d->hb + d->hb_len;
    const unsigned char *enc_start;
    apr_uint64_t seg_len = 0, seg_pos = 0, enc_len, tlen, dlen, ilen, alen;
    apr_uint64_t sect, hdr_in_enc;
    int ind, r;

    if (p >= end)
        return 0;
    ind = *p++;
    if (ind & ~(VCD_SOURCE | VCD_TARGET | VCD_ADLER32)) {
        fail(d, ISS_VCDIFF_EFORMAT, "window %" APR_UINT64_T_FMT
             ": unknown Win_Indicator bits 0x%02x", d->nwin, ind);
        return -1;
    }
    if ((ind & VCD_SOURCE) && (ind & VCD_TARGET)) {
        fail(d, ISS_VCDIFF_EFORMAT, "window %" APR_UINT64_T_FMT
             ": both VCD_SOURCE and VCD_TARGET", d->nwin);
        return -1;
    }
    if (ind & (VCD_SOURCE | VCD_TARGET)) {
        WVARINT(seg_len, "source segment size");
        WVARINT(seg_pos, "source segment position");
        if (seg_pos > UINT64_MAX - seg_len) {
            fail(d, ISS_VCDIFF_EFORMAT, "window %" APR_UINT64_T_FMT
                 ": source segment overflows", d->nwin);
            return -1;
        }
        if ((ind & VCD_SOURCE) && seg_pos + seg_len > d->o.source_size) {
            fail(d, ISS_VCDIFF_EFORMAT, "window %" APR_UINT64_T_FMT
                 ": source segment %" APR_UINT64_T_FMT "+%" APR_UINT64_T_FMT
                 " beyond the source (%" APR_UINT64_T_FMT " bytes)",
                 d->nwin, seg_pos, seg_len, d->o.source_size);
            return -1;
        }
        if ((ind & VCD_TARGET) && seg_pos + seg_len > d->total) {
            fail(d, ISS_VCDIFF_EFORMAT, "window %" APR_UINT64_T_FMT
                 ": target segment beyond the target decoded so far",
                 d->nwin);
            return -1;
        }
        if ((ind & VCD_TARGET) && d->o.read_target == NULL) {
            fail(d, ISS_VCDIFF_ENOTARGET, "window %" APR_UINT64_T_FMT
                 ": VCD_TARGET windows are not supported here", d->nwin);
            return -1;
        }
    }
    WVARINT(enc_len, "length of the delta encoding");
    enc_start = p;
    WVARINT(tlen, "target window size");
    if (tlen > d->o.max_window) {
        fail(d, ISS_VCDIFF_ELIMIT, "window %" APR_UINT64_T_FMT
             ": target window of %" APR_UINT64_T_FMT " bytes is larger than"
             " the limit (%" APR_SIZE_T_FMT ")", d->nwin, tlen,
             d->o.max_window);
        return -1;
    }
    if (tlen > d->o.max_target || d->total > d->o.max_target - tlen) {
        fail(d, ISS_VCDIFF_ELIMIT, "the target would be larger than the"
             " limit (%" APR_UINT64_T_FMT " bytes)", d->o.max_target);
        return -1;
    }
    if (seg_len > UINT64_MAX - tlen) {
        fail(d, ISS_VCDIFF_EFORMAT, "window %" APR_UINT64_T_FMT
             ": address space overflows", d->nwin);
        return -1;
    }
    if (p >= end)
        return 0;
    if (*p != 0) {
        fail(d, ISS_VCDIFF_ESECONDARY, "window %" APR_UINT64_T_FMT
             ": secondary compressors are not supported"
             " (Delta_Indicator 0x%02x)", d->nwin, *p);
        return -1;
    }
    p++;
    WVARINT(dlen, "length of data");
    WVARINT(ilen, "length of instructions");
    WVARINT(alen, "length of addresses");
    if (dlen > d->o.max_sections || ilen > d->o.max_sections - dlen
        || alen > d->o.max_sections - dlen - ilen) {
        fail(d, ISS_VCDIFF_ELIMIT, "window %" APR_UINT64_T_FMT
             ": sections larger than the limit (%" APR_SIZE_T_FMT " bytes)",
             d->nwin, d->o.max_sections);
        return -1;
    }
    if (ind & VCD_ADLER32) {
        if (end - p < 4)
            return 0;
        d->adler = iss_be32_get(p);
        p += 4;
    }
    sect = dlen + ilen + alen;
    hdr_in_enc = (apr_uint64_t)(p - enc_start);
    if (enc_len < hdr_in_enc || enc_len - hdr_in_enc != sect) {
        fail(d, ISS_VCDIFF_EFORMAT, "window %" APR_UINT64_T_FMT
             ": length of the delta encoding (%" APR_UINT64_T_FMT
             ") does not match its sections", d->nwin, enc_len);
        return -1;
    }

    /* The growth allowed by the delta up to the end of this window. */
    if (d->o.growth_ratio) {
        apr_uint64_t in = d->hdr_start + (apr_uint64_t)(p - d->hb) + sect;
        apr_uint64_t allowed = in > (UINT64_MAX - d->o.growth_floor)
                                    / d->o.growth_ratio
                               ? UINT64_MAX
                               : in * d->o.growth_ratio + d->o.growth_floor;
        apr_uint64_t after = d->total + tlen;

        if (after > d->o.source_size
            && after - d->o.source_size > allowed) {
            fail(d, ISS_VCDIFF_EGROWTH, "window %" APR_UINT64_T_FMT
                 ": the target would grow to %" APR_UINT64_T_FMT " bytes,"
                 " more than %" APR_UINT64_T_FMT " past the source (%"
                 APR_UINT64_T_FMT " bytes) for %" APR_UINT64_T_FMT
                 " bytes of delta", d->nwin, after, allowed,
                 d->o.source_size, in);
            return -1;
        }
    }

    /* Checked: allocate. */
    if (tlen > d->tbuf_cap) {
        apr_size_t cap = d->tbuf_cap * 2;
        unsigned char *nb;

        if (cap < tlen || cap > d->o.max_window)
            cap = (apr_size_t)tlen;
        nb = malloc(cap);
        if (nb == NULL) {
            fail(d, APR_ENOMEM, "out of memory");
            return -1;
        }
        free(d->tbuf);
        d->tbuf = nb;
        d->tbuf_cap = cap;
    }
    if (sect > d->sect_cap) {
        apr_size_t cap = d->sect_cap * 2;
        unsigned char *nb;

        if (cap < sect || cap > d->o.max_sections)
            cap = (apr_size_t)sect;
        nb = malloc(cap);
        if (nb == NULL) {
            fail(d, APR_ENOMEM, "out of memory");
            return -1;
        }
        free(d->sect);
        d->sect = nb;
        d->sect_cap = cap;
    }
    d->win_ind = ind;
    d->seg_len = seg_len;
    d->seg_pos = seg_pos;
    d->target_len = (apr_size_t)tlen;
    d->data_len = (apr_size_t)dlen;
    d->inst_len = (apr_size_t)ilen;
    d->addr_len = (apr_size_t)alen;
    d->sect_need = (apr_size_t)sect;
    d->sect_have = 0;
    *used = (apr_size_t)(p - d->hb);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Window decoding (everything in memory, bounded). */

typedef struct cur_t {
    const unsigned char *p, *end;
} cur_t;

static apr_status_t copy_in(iss_vcdiff_t *d, apr_uint64_t addr,
                            apr_size_t n, unsigned char *to)
{
    apr_status_t rv;
    apr_uint64_t off = d->seg_pos + addr;

    if (n == 0)
        return APR_SUCCESS;
    if (d->win_ind & VCD_TARGET) {
        rv = d->o.read_target(d->o.target_baton, off, n, to);
        if (rv != APR_SUCCESS)
            return fail(d, rv, "reading %" APR_SIZE_T_FMT " bytes of earlier"
                        " target at %" APR_UINT64_T_FMT " failed", n, off);
    }
    else {
        rv = d->o.read_source(d->o.source_baton, off, n, to);
        if (rv != APR_SUCCESS)
            return fail(d, rv, "reading %" APR_SIZE_T_FMT " bytes of source"
                        " at %" APR_UINT64_T_FMT " failed", n, off);
    }
    return APR_SUCCESS;
}

static const unsigned char no_bytes[1];

static apr_status_t decode_window(iss_vcdiff_t *d)
{
    cur_t data, inst, addr;
    apr_size_t pos = 0, tlen = d->target_len;
    apr_uint64_t here, a, v;
    int h, r;

    /* No sections at all: no buffer either, and NULL + 0 is undefined. */
    data.p = d->sect ? d->sect : no_bytes;
    data.end = data.p + d->data_len;
    inst.p = data.end;
    inst.end = inst.p + d->inst_len;
    addr.p = inst.end;
    addr.end = addr.p + d->addr_len;

    memset(d->near, 0, sizeof(d->near));
    memset(d->same, 0, sizeof(d->same));
    d->next_slot = 0;

    while (inst.p < inst.end) {
        unsigned op = *inst.p++;

        for (h = 0; h < 2; h++) {
            const inst_t *in = &d->table[op][h];
            apr_uint64_t size = in->size;

            if (in->type == I_NOOP)
                continue;
            if (size == 0) {
                r = get_varint(&inst.p, inst.end, &size);
                if (r <= 0)
                    return fail(d, ISS_VCDIFF_EFORMAT, "window %"
                                APR_UINT64_T_FMT ": bad instruction size",
                                d->nwin);
            }
            if (size > tlen - pos)
                return fail(d, ISS_VCDIFF_EFORMAT, "window %"
                            APR_UINT64_T_FMT ": instructions produce more"
                            " than the target window size", d->nwin);
            switch (in->type) {
            case I_ADD:
                if (size > (apr_uint64_t)(data.end - data.p))
                    return fail(d, ISS_VCDIFF_EFORMAT, "window %"
                                APR_UINT64_T_FMT ": ADD beyond the data"
                                " section", d->nwin);
                if (size > 0)
                    memcpy(d->tbuf + pos, data.p, (apr_size_t)size);
                data.p += size;
                break;
            case I_RUN:
                if (data.p >= data.end)
                    return fail(d, ISS_VCDIFF_EFORMAT, "window %"
                                APR_UINT64_T_FMT ": RUN beyond the data"
                                " section", d->nwin);
                if (size > 0)
                    memset(d->tbuf + pos, *data.p, (apr_size_t)size);
                data.p++;
                break;
            default: {          /* I_COPY */
                apr_size_t n, k;
                unsigned mode = in->mode;

                here = d->seg_len + pos;
                if (mode < 2 + S_NEAR) {          /* SELF, HERE, NEAR */
                    r = get_varint(&addr.p, addr.end, &v);
                    if (r <= 0)
                        return fail(d, ISS_VCDIFF_EFORMAT, "window %"
                                    APR_UINT64_T_FMT ": bad COPY address",
                                    d->nwin);
                    if (mode == 0)
                        a = v;
                    else if (mode == 1)
                        a = v > here ? UINT64_MAX : here - v;
                    else {
                        a = d->near[mode - 2];
                        a = v > UINT64_MAX - a ? UINT64_MAX : a + v;
                    }
                }
                else {
                    if (addr.p >= addr.end)
                        return fail(d, ISS_VCDIFF_EFORMAT, "window %"
                                    APR_UINT64_T_FMT ": bad COPY address",
                                    d->nwin);
                    a = d->same[(mode - 2 - S_NEAR) * 256 + *addr.p++];
                }
                if (a >= here)
                    return fail(d, ISS_VCDIFF_EFORMAT, "window %"
                                APR_UINT64_T_FMT ": COPY address %"
                                APR_UINT64_T_FMT " out of range (here %"
                                APR_UINT64_T_FMT ")", d->nwin, a, here);
                /* RFC 3284 section 3: a COPY reads from the source
                 * segment or from the target window, never from both
                 * (xdelta3 refuses it too). */
                if (a < d->seg_len && size > d->seg_len - a)
                    return fail(d, ISS_VCDIFF_EFORMAT, "window %"
                                APR_UINT64_T_FMT ": COPY of %"
                                APR_UINT64_T_FMT " bytes at %"
                                APR_UINT64_T_FMT " runs from the source"
                                " segment (%" APR_UINT64_T_FMT " bytes)"
                                " into the target window", d->nwin, size,
                                a, d->seg_len);
                d->near[d->next_slot] = a;
                d->next_slot = (d->next_slot + 1) % S_NEAR;
                d->same[a % (S_SAME * 256)] = a;

                n = (apr_size_t)size;
                k = 0;
                if (n > 0 && a < d->seg_len) {
                    k = n;      /* all of it in the source segment */
                    if (copy_in(d, a, k, d->tbuf + pos) != APR_SUCCESS)
                        return d->err;
                }
                if (k < n) {
                    /* From the target window itself: a >= seg_len and,
                     * since a < here, src < pos: byte by byte. */
                    apr_size_t src = (apr_size_t)(a + k - d->seg_len);
                    unsigned char *t = d->tbuf;
                    apr_size_t dst = pos + k;

                    if (dst - src >= n - k)
                        memcpy(t + dst, t + src, n - k);
                    else
                        for (; k < n; k++)
                            t[dst++] = t[src++];
                }
                break;
            }
            }
            pos += (apr_size_t)size;
        }
    }
    if (pos != tlen)
        return fail(d, ISS_VCDIFF_EFORMAT, "window %" APR_UINT64_T_FMT
                    ": instructions produce %" APR_SIZE_T_FMT " bytes, not"
                    " the target window size %" APR_SIZE_T_FMT, d->nwin,
                    pos, tlen);
    if (data.p != data.end || addr.p != addr.end)
        return fail(d, ISS_VCDIFF_EFORMAT, "window %" APR_UINT64_T_FMT
                    ": data or addresses section not used up", d->nwin);
    if (d->win_ind & VCD_ADLER32) {
        uLong c = adler32(0L, Z_NULL, 0);
        apr_size_t off = 0;

        while (off < tlen) {    /* uInt chunks */
            apr_size_t n = tlen - off > 0x40000000 ? 0x40000000 : tlen - off;

            c = adler32(c, d->tbuf + off, (uInt)n);
            off += n;
        }
        if ((apr_uint32_t)c != d->adler)
            return fail(d, ISS_VCDIFF_ECHECKSUM, "window %" APR_UINT64_T_FMT
                        ": Adler-32 checksum mismatch", d->nwin);
    }
    if (tlen > 0) {
        apr_status_t rv = d->o.write(d->o.write_baton, d->tbuf, tlen);

        if (rv != APR_SUCCESS)
            return fail(d, rv, "writing the target failed");
    }
    d->total += tlen;
    d->nwin++;
    return APR_SUCCESS;
}

/* ------------------------------------------------------------------ */

/* Append up to the header buffer's room from in; returns bytes taken. */
static apr_size_t hb_take(iss_vcdiff_t *d, const unsigned char *in,
                          apr_size_t len, apr_size_t cap)
{
    apr_size_t n = cap - d->hb_len;

    if (n > len)
        n = len;
    memcpy(d->hb + d->hb_len, in, n);
    d->hb_len += n;
    return n;
}

static apr_status_t feed(iss_vcdiff_t *dec, const void *buf,
                         apr_size_t len)
{
    iss_vcdiff_t *d = dec;
    const unsigned char *in = buf;

    if (d->state == ST_ERROR)
        return d->err;
    while (len > 0 || d->state == ST_SECT) {
        apr_size_t before, took, used = 0;
        int r;

        switch (d->state) {
        case ST_ERROR:
            return d->err;
        case ST_FHDR:
        case ST_WHDR: {
            apr_size_t cap = d->state == ST_FHDR ? FHDR_MAX : WHDR_MAX;

            before = d->hb_len;
            d->hdr_start = d->fed + (apr_uint64_t)(in - (const unsigned char
                                                         *)buf) - before;
            took = hb_take(d, in, len, cap);
            r = d->state == ST_FHDR ? parse_fhdr(d, &used)
                                    : parse_whdr(d, &used);
            if (r < 0)
                return d->err;
            if (r == 0) {
                if (d->hb_len == cap)   /* cannot happen: varints bounded */
                    return fail(d, ISS_VCDIFF_EFORMAT, "header too long");
                in += took;
                len -= took;
                break;
            }
            /* used >= before: parsing failed with fewer bytes. */
            in += used - before;
            len -= used - before;
            d->hb_len = 0;
            if (d->state == ST_FHDR)
                d->state = d->app_left ? ST_APP : ST_WHDR;
            else
                d->state = ST_SECT;
            break;
        }
        case ST_APP:
            took = d->app_left < len ? (apr_size_t)d->app_left : len;
            d->app_left -= took;
            in += took;
            len -= took;
            if (d->app_left == 0)
                d->state = ST_WHDR;
            break;
        case ST_SECT:
            took = d->sect_need - d->sect_have;
            if (took > len)
                took = len;
            if (took > 0) {
                memcpy(d->sect + d->sect_have, in, took);
                d->sect_have += took;
                in += took;
                len -= took;
            }
            if (d->sect_have < d->sect_need)
                return APR_SUCCESS;
            if (decode_window(d) != APR_SUCCESS)
                return d->err;
            d->state = ST_WHDR;
            break;
        }
    }
    return APR_SUCCESS;
}

apr_status_t iss_vcdiff_feed(iss_vcdiff_t *dec, const void *buf,
                             apr_size_t len)
{
    apr_status_t rv = feed(dec, buf, len);

    dec->fed += len;
    return rv;
}

apr_status_t iss_vcdiff_finish(iss_vcdiff_t *dec)
{
    iss_vcdiff_t *d = dec;

    if (d->state == ST_ERROR)
        return d->err;
    if (d->state == ST_WHDR && d->hb_len == 0)
        return APR_SUCCESS;
    return fail(d, ISS_VCDIFF_ETRUNCATED, "the delta is truncated (%s)",
                d->state == ST_FHDR || d->state == ST_APP ? "in the header"
                : "in a window");
}
