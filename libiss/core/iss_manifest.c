/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* Chunk manifests: the binary form (see iss_manifest.h for the format),
 * its parser for untrusted input, its encoder, the one-pass builder, and
 * the delta form (ISD1): its maker and its applier for untrusted input.
 * The checks a manifest must pass (parameters, each entry, the sum) are
 * written once, below, and used by parse, encode and both delta
 * functions. */

#include "iss_manifest.h"
#include "iss_bytes.h"

#include <stdlib.h>
#include <string.h>

#define HEADER_LEN ISS_MANIFEST_HEADER_LEN
#define ENTRY_LEN  ISS_MANIFEST_ENTRY_LEN
#define SHA_LEN    ISS_DIGEST_SHA256_LEN

/* Field offsets in the header. */
#define OFF_MIN    4
#define OFF_AVG    8
#define OFF_MAX    12
#define OFF_SIZE   16
#define OFF_SHA    24
#define OFF_COUNT  56


apr_uint64_t iss_manifest_encoded_len(apr_uint32_t count)
{
    return HEADER_LEN + (apr_uint64_t)ENTRY_LEN * count;
}

/* ---- the checks every manifest passes ---------------------------------- */

/* The parameters: valid, and equal to @a want unless it is NULL. */
static apr_status_t check_params(const iss_cdc_params_t *p,
                                 const iss_cdc_params_t *want)
{
    if (iss_cdc_params_check(p) != NULL)
        return ISS_MANIFEST_EPARAMS;
    if (want != NULL
        && (p->min_size != want->min_size || p->avg_size != want->avg_size
            || p->max_size != want->max_size))
        return ISS_MANIFEST_EMISMATCH;
    return APR_SUCCESS;
}

/* Entry @a i of @a count, @a n bytes long, in a manifest with @a p. */
static apr_status_t check_entry(const iss_cdc_params_t *p, apr_uint32_t n,
                                apr_uint64_t i, apr_uint64_t count)
{
    if (n == 0 || n > p->max_size)
        return ISS_MANIFEST_ECHUNK;
    if (n < p->min_size && i + 1 < count)
        return ISS_MANIFEST_ESHORT;
    return APR_SUCCESS;
}

/* A whole manifest in memory, limits aside (encode, delta_make). */
static apr_status_t check_manifest(const iss_manifest_t *m)
{
    apr_uint64_t sum = 0;
    apr_uint32_t i;
    apr_status_t rv;

    if ((rv = check_params(&m->params, NULL)) != APR_SUCCESS)
        return rv;
    for (i = 0; i < m->count; i++) {
        if ((rv = check_entry(&m->params, m->entries[i].length, i, m->count))
            != APR_SUCCESS)
            return rv;
        sum += m->entries[i].length;
    }
    return sum == m->file_size ? APR_SUCCESS : ISS_MANIFEST_ESUM;
}

apr_status_t iss_manifest_parse(const void *buf, apr_size_t len,
                                const iss_manifest_limits_t *lim,
                                iss_manifest_t **out, apr_pool_t *pool)
{
    const unsigned char *p = buf;
    iss_cdc_params_t params;
    apr_uint64_t file_size, sum = 0;
    apr_uint32_t count, i;
    iss_manifest_t *m;
    apr_status_t rv;

    if (out == NULL)
        return APR_EINVAL;
    *out = NULL;
    if (lim == NULL || (buf == NULL && len > 0))
        return APR_EINVAL;

    if (len < HEADER_LEN || memcmp(p, ISS_MANIFEST_MAGIC, 4) != 0)
        return ISS_MANIFEST_EHEADER;
    params.min_size = iss_be32_get(p + OFF_MIN);
    params.avg_size = iss_be32_get(p + OFF_AVG);
    params.max_size = iss_be32_get(p + OFF_MAX);
    if ((rv = check_params(&params, lim->params)) != APR_SUCCESS)
        return rv;
    file_size = iss_be64_get(p + OFF_SIZE);
    if (file_size > lim->max_file_size)
        return ISS_MANIFEST_ETOOBIG;
    count = iss_be32_get(p + OFF_COUNT);
    if (count > lim->max_entries)
        return ISS_MANIFEST_ECOUNT;
    if ((apr_uint64_t)(len - HEADER_LEN) != (apr_uint64_t)ENTRY_LEN * count)
        return ISS_MANIFEST_ELENGTH;

    /* Check the entries before allocating for them. */
    for (i = 0; i < count; i++) {
        apr_uint32_t n = iss_be32_get(p + HEADER_LEN + (apr_size_t)i * ENTRY_LEN
                               + SHA_LEN);

        if ((rv = check_entry(&params, n, i, count)) != APR_SUCCESS)
            return rv;
        sum += n; /* <= 2^32 x 2^26: no overflow */
    }
    if (sum != file_size)
        return ISS_MANIFEST_ESUM;

    m = apr_pcalloc(pool, sizeof(*m));
    m->params = params;
    m->file_size = file_size;
    memcpy(m->file_sha256, p + OFF_SHA, SHA_LEN);
    m->count = count;
    if (count > 0) {
        /* count * sizeof(entry) fits: count * 36 bytes are in memory. */
        m->entries = apr_palloc(pool, (apr_size_t)count * sizeof(*m->entries));
        sum = 0;
        for (i = 0; i < count; i++) {
            const unsigned char *e = p + HEADER_LEN + (apr_size_t)i * ENTRY_LEN;

            memcpy(m->entries[i].sha256, e, SHA_LEN);
            m->entries[i].length = iss_be32_get(e + SHA_LEN);
            m->entries[i].offset = sum;
            sum += m->entries[i].length;
        }
    }
    *out = m;
    return APR_SUCCESS;
}

apr_status_t iss_manifest_encode(const iss_manifest_t *m, unsigned char **buf,
                                 apr_size_t *len, apr_pool_t *pool)
{
    apr_uint64_t total;
    unsigned char *b, *e;
    apr_uint32_t i;
    apr_status_t rv;

    if (m == NULL || buf == NULL || len == NULL
        || (m->count > 0 && m->entries == NULL))
        return APR_EINVAL;
    if ((rv = check_manifest(m)) != APR_SUCCESS)
        return rv;
    total = iss_manifest_encoded_len(m->count);
    if (total > (apr_uint64_t)(apr_size_t)-1)
        return APR_ENOMEM;

    b = apr_palloc(pool, (apr_size_t)total);
    memcpy(b, ISS_MANIFEST_MAGIC, 4);
    iss_be32_put(b + OFF_MIN, m->params.min_size);
    iss_be32_put(b + OFF_AVG, m->params.avg_size);
    iss_be32_put(b + OFF_MAX, m->params.max_size);
    iss_be64_put(b + OFF_SIZE, m->file_size);
    memcpy(b + OFF_SHA, m->file_sha256, SHA_LEN);
    iss_be32_put(b + OFF_COUNT, m->count);
    for (i = 0, e = b + HEADER_LEN; i < m->count; i++, e += ENTRY_LEN) {
        memcpy(e, m->entries[i].sha256, SHA_LEN);
        iss_be32_put(e + SHA_LEN, m->entries[i].length);
    }
    *buf = b;
    *len = (apr_size_t)total;
    return APR_SUCCESS;
}

const char *iss_manifest_error_text(apr_status_t rv)
{
    switch (rv) {
    case ISS_MANIFEST_EHEADER:
        return "manifest: shorter than its 60-byte header or magic is not ISM1";
    case ISS_MANIFEST_ELENGTH:
        return "manifest: length is not 60 + 36 x count (truncated entries "
               "or trailing bytes)";
    case ISS_MANIFEST_ECOUNT:
        return "manifest: too many entries";
    case ISS_MANIFEST_ECHUNK:
        return "manifest: a chunk length is 0 or above the maximum chunk size";
    case ISS_MANIFEST_ESUM:
        return "manifest: chunk lengths do not add up to the file size";
    case ISS_MANIFEST_EPARAMS:
        return "manifest: invalid chunking parameters";
    case ISS_MANIFEST_ETOOBIG:
        return "manifest: file size above the limit";
    case ISS_MANIFEST_EMISMATCH:
        return "manifest: chunking parameters differ from the store's";
    case ISS_MANIFEST_ESHORT:
        return "manifest: a chunk other than the last is shorter than the "
               "minimum chunk size";
    case ISS_MANIFEST_EBASE:
        return "manifest delta: made against another base (base SHA-256 "
               "differs)";
    case ISS_MANIFEST_EDHEADER:
        return "manifest delta: shorter than its 80-byte header or magic is "
               "not ISD1";
    case ISS_MANIFEST_EDLENGTH:
        return "manifest delta: edits truncated or trailing bytes";
    case ISS_MANIFEST_EDEDIT:
        return "manifest delta: an edit out of order, overlapping the "
               "previous one or past the base's entries";
    default:
        return NULL;
    }
}

/* ---- builder ----------------------------------------------------------- */

struct iss_manifest_builder_t {
    apr_pool_t *pool;
    iss_cdc_params_t params;
    iss_cdc_t *cdc;
    iss_digest_t *chunk;       /* SHA-256 of the chunk in progress */
    iss_digest_t *file;        /* SHA-256 of everything */
    apr_uint64_t file_size;
    apr_uint64_t pending;      /* bytes of the chunk in progress */
    iss_manifest_entry_t *entries;
    apr_uint32_t count;
    apr_uint32_t cap;
    int state;                 /* 0 open, 1 finished, 2 broken */
};

apr_status_t iss_manifest_builder_create(iss_manifest_builder_t **b,
                                         const iss_cdc_params_t *p,
                                         apr_pool_t *pool)
{
    iss_manifest_builder_t *nb;
    apr_status_t rv;

    if (b == NULL || iss_cdc_params_check(p) != NULL)
        return APR_EINVAL;
    nb = apr_pcalloc(pool, sizeof(*nb));
    nb->pool = pool;
    nb->params = *p;
    if ((rv = iss_cdc_create(&nb->cdc, p, pool)) != APR_SUCCESS
        || (rv = iss_digest_create(&nb->chunk, pool)) != APR_SUCCESS
        || (rv = iss_digest_create(&nb->file, pool)) != APR_SUCCESS)
        return rv;
    *b = nb;
    return APR_SUCCESS;
}

/* Append the chunk in progress (pending bytes, digest in b->chunk). */
static apr_status_t end_chunk(iss_manifest_builder_t *b)
{
    iss_manifest_entry_t *e;

    if (b->count == b->cap) {
        apr_uint32_t ncap;
        iss_manifest_entry_t *ne;

        if (b->cap == APR_UINT32_MAX) {
            b->state = 2;
            return ISS_MANIFEST_ECOUNT;
        }
        ncap = b->cap == 0 ? 64
               : (b->cap > APR_UINT32_MAX / 2 ? APR_UINT32_MAX : b->cap * 2);
        if ((apr_uint64_t)ncap * sizeof(*ne) > (apr_uint64_t)(apr_size_t)-1) {
            b->state = 2;
            return APR_ENOMEM;
        }
        ne = apr_palloc(b->pool, (apr_size_t)ncap * sizeof(*ne));
        if (b->count > 0)
            memcpy(ne, b->entries, (apr_size_t)b->count * sizeof(*ne));
        b->entries = ne;
        b->cap = ncap;
    }
    e = &b->entries[b->count++];
    iss_digest_final(b->chunk, e->sha256);
    e->length = (apr_uint32_t)b->pending; /* <= max_size <= 64 MiB */
    e->offset = b->file_size - b->pending;
    b->pending = 0;
    return APR_SUCCESS;
}

apr_status_t iss_manifest_builder_feed(iss_manifest_builder_t *b,
                                       const void *buf, apr_size_t len)
{
    const unsigned char *p = buf;
    apr_status_t rv;

    if (b == NULL || b->state != 0 || (buf == NULL && len > 0))
        return APR_EINVAL;
    iss_digest_update(b->file, p, len);
    while (len > 0) {
        int cut;
        apr_size_t n = iss_cdc_feed(b->cdc, p, len, &cut);

        iss_digest_update(b->chunk, p, n);
        b->pending += n;
        b->file_size += n;
        if (cut && (rv = end_chunk(b)) != APR_SUCCESS)
            return rv;
        p += n;
        len -= n;
    }
    return APR_SUCCESS;
}

apr_status_t iss_manifest_builder_finish(iss_manifest_builder_t *b,
                                         iss_manifest_t **m)
{
    iss_manifest_t *nm;
    apr_status_t rv;

    if (m == NULL)
        return APR_EINVAL;
    *m = NULL;
    if (b == NULL || b->state != 0)
        return APR_EINVAL;
    if (b->pending > 0 && (rv = end_chunk(b)) != APR_SUCCESS)
        return rv;
    b->state = 1;
    nm = apr_pcalloc(b->pool, sizeof(*nm));
    nm->params = b->params;
    nm->file_size = b->file_size;
    iss_digest_final(b->file, nm->file_sha256);
    nm->count = b->count;
    nm->entries = b->count > 0 ? b->entries : NULL;
    *m = nm;
    return APR_SUCCESS;
}

void iss_manifest_builder_set_pool(iss_manifest_builder_t *b,
                                   apr_pool_t *pool)
{
    b->pool = pool;
}

/* ---- delta (ISD1) ------------------------------------------------------ */

#define DHEADER_LEN ISS_MANIFEST_DELTA_HEADER_LEN
#define EDIT_LEN    ISS_MANIFEST_DELTA_EDIT_LEN

/* Field offsets in the delta header. */
#define DOFF_BASE   4
#define DOFF_SIZE   36
#define DOFF_SHA    44
#define DOFF_COUNT  76

/* Old and new entries are the same chunk. */
static int same_entry(const iss_manifest_entry_t *a,
                      const iss_manifest_entry_t *b)
{
    return a->length == b->length
           && memcmp(a->sha256, b->sha256, SHA_LEN) == 0;
}

/* An index of the base's entries, sorted by (id, length, index). */
typedef struct anchor_t {
    const iss_manifest_entry_t *e;
    apr_uint32_t idx;
} anchor_t;

static int anchor_key_cmp(const iss_manifest_entry_t *a,
                          const iss_manifest_entry_t *b)
{
    int c = memcmp(a->sha256, b->sha256, SHA_LEN);

    if (c != 0)
        return c;
    return a->length < b->length ? -1 : a->length > b->length;
}

static int anchor_cmp(const void *x, const void *y)
{
    const anchor_t *a = x, *b = y;
    int c = anchor_key_cmp(a->e, b->e);

    if (c != 0)
        return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* The smallest base index >= @a from holding the same chunk as @a e, or
 * -1 (binary search for the first anchor not below (e, from)). */
static apr_int64_t anchor_find(const anchor_t *a, apr_size_t n,
                               const iss_manifest_entry_t *e,
                               apr_uint32_t from)
{
    apr_size_t lo = 0, hi = n;

    while (lo < hi) {
        apr_size_t mid = lo + (hi - lo) / 2;
        int c = anchor_key_cmp(a[mid].e, e);

        if (c < 0 || (c == 0 && a[mid].idx < from))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < n && anchor_key_cmp(a[lo].e, e) == 0)
        return a[lo].idx;
    return -1;
}

/* One edit while making a delta; new entries are new_m's from new_start. */
typedef struct edit_t {
    apr_uint32_t old_start, old_count, new_start, new_count;
} edit_t;

/* After a mismatch, how many further new entries are tried once an
 * anchor has been found (bounds the work per edit; a closer anchor
 * further on is rare). */
#define ANCHOR_WINDOW 64

apr_status_t iss_manifest_delta_make(const iss_manifest_t *base,
                                     const iss_manifest_t *new_m,
                                     unsigned char **buf, apr_size_t *len,
                                     apr_pool_t *pool)
{
    const iss_manifest_entry_t *oe = NULL, *ne = NULL;
    apr_uint32_t pre = 0, suf = 0, oend, nend, i, j;
    edit_t *edits;
    apr_size_t nedits = 0, k;
    anchor_t *anchors = NULL;
    apr_size_t nanchors;
    apr_uint64_t total;
    apr_pool_t *scratch;
    unsigned char *b, *w;
    apr_status_t rv;

    if (base == NULL || new_m == NULL || buf == NULL || len == NULL
        || (base->count > 0 && base->entries == NULL)
        || (new_m->count > 0 && new_m->entries == NULL))
        return APR_EINVAL;
    if ((rv = check_manifest(new_m)) != APR_SUCCESS)
        return rv;
    if ((rv = check_params(&base->params, &new_m->params)) != APR_SUCCESS)
        return ISS_MANIFEST_EMISMATCH;
    oe = base->entries;
    ne = new_m->entries;

    /* The common head and tail need no index. */
    while (pre < base->count && pre < new_m->count
           && same_entry(&oe[pre], &ne[pre]))
        pre++;
    while (suf < base->count - pre && suf < new_m->count - pre
           && same_entry(&oe[base->count - 1 - suf],
                         &ne[new_m->count - 1 - suf]))
        suf++;
    oend = base->count - suf;
    nend = new_m->count - suf;

    if ((rv = apr_pool_create(&scratch, pool)) != APR_SUCCESS)
        return rv;
    /* Every edit but the last is followed by a matching entry, so there
     * are at most min(old, new middle) + 1 of them. */
    edits = apr_palloc(scratch, ((apr_size_t)(oend - pre < nend - pre
                                              ? oend - pre : nend - pre) + 1)
                                * sizeof(*edits));

    /* Index the base's middle: (id, length) -> its indices, ascending. */
    nanchors = oend - pre;
    if (nanchors > 0 && nend > pre) {
        anchors = apr_palloc(scratch, nanchors * sizeof(*anchors));
        for (i = pre; i < oend; i++) {
            anchors[i - pre].e = &oe[i];
            anchors[i - pre].idx = i;
        }
        qsort(anchors, nanchors, sizeof(*anchors), anchor_cmp);
    }

    /* Walk the middle: match runs; at a mismatch (i, j), the next anchor
     * (bi, bj) is the pair of equal entries, bi >= i, bj >= j, with the
     * smallest (bj - j) + (bi - i) among the new entries tried; the edit
     * replaces old [i, bi) by new [j, bj).  Every edit is followed by a
     * match (or ends the middle), so edits never touch each other. */
    i = pre;
    j = pre;
    while (j < nend) {
        apr_uint64_t best = APR_UINT64_MAX;
        apr_uint32_t bi = oend, bj = nend, jj, found_at = 0;
        int found = 0;
        edit_t *ed;

        if (i < oend && same_entry(&oe[i], &ne[j])) {
            i++;
            j++;
            continue;
        }
        for (jj = j; jj < nend && anchors != NULL && i < oend; jj++) {
            apr_int64_t at;

            if ((apr_uint64_t)(jj - j) >= best
                || (found && jj - found_at > ANCHOR_WINDOW))
                break;
            at = anchor_find(anchors, nanchors, &ne[jj], i);
            if (at >= 0) {
                apr_uint64_t cost = (apr_uint64_t)(jj - j)
                                    + ((apr_uint64_t)at - i);

                if (!found) {
                    found = 1;
                    found_at = jj;
                }
                if (cost < best) {
                    best = cost;
                    bi = (apr_uint32_t)at;
                    bj = jj;
                }
            }
        }
        ed = &edits[nedits++];
        ed->old_start = i;
        ed->old_count = bi - i;
        ed->new_start = j;
        ed->new_count = bj - j;
        i = bi;
        j = bj;
    }
    if (i < oend) {
        edit_t *ed = &edits[nedits++];

        ed->old_start = i;
        ed->old_count = oend - i;
        ed->new_start = nend;
        ed->new_count = 0;
    }

    total = DHEADER_LEN;
    for (k = 0; k < nedits; k++)
        total += EDIT_LEN + (apr_uint64_t)ENTRY_LEN * edits[k].new_count;
    if (total > (apr_uint64_t)(apr_size_t)-1
        || (apr_uint64_t)nedits > APR_UINT32_MAX) {
        apr_pool_destroy(scratch);
        return APR_ENOMEM;
    }

    b = apr_palloc(pool, (apr_size_t)total);
    memcpy(b, ISS_MANIFEST_DELTA_MAGIC, 4);
    memcpy(b + DOFF_BASE, base->file_sha256, SHA_LEN);
    iss_be64_put(b + DOFF_SIZE, new_m->file_size);
    memcpy(b + DOFF_SHA, new_m->file_sha256, SHA_LEN);
    iss_be32_put(b + DOFF_COUNT, (apr_uint32_t)nedits);
    w = b + DHEADER_LEN;
    for (k = 0; k < nedits; k++) {
        const edit_t *ed = &edits[k];
        apr_uint32_t n;

        iss_be32_put(w, ed->old_start);
        iss_be32_put(w + 4, ed->old_count);
        iss_be32_put(w + 8, ed->new_count);
        w += EDIT_LEN;
        for (n = 0; n < ed->new_count; n++, w += ENTRY_LEN) {
            memcpy(w, ne[ed->new_start + n].sha256, SHA_LEN);
            iss_be32_put(w + SHA_LEN, ne[ed->new_start + n].length);
        }
    }
    apr_pool_destroy(scratch);
    *buf = b;
    *len = (apr_size_t)total;
    return APR_SUCCESS;
}

/* Walks the entries of a delta's result in order, without building it:
 * the base's entries between edits, each edit's new entries.  The edits
 * must have passed the structure checks of iss_manifest_delta_apply(). */
typedef struct delta_walk_t {
    const iss_cdc_params_t *params;
    apr_uint64_t index, count, sum;
    iss_manifest_entry_t *out;    /* NULL: check only */
} delta_walk_t;

static apr_status_t walk_entry(delta_walk_t *w, const unsigned char *sha,
                               apr_uint32_t n)
{
    apr_status_t rv;

    if (w->out == NULL) {
        if ((rv = check_entry(w->params, n, w->index, w->count))
            != APR_SUCCESS)
            return rv;
    }
    else {
        iss_manifest_entry_t *e = &w->out[w->index];

        memcpy(e->sha256, sha, SHA_LEN);
        e->length = n;
        e->offset = w->sum;
    }
    w->index++;
    w->sum += n; /* <= 2^32 x 2^32: no overflow */
    return APR_SUCCESS;
}

static apr_status_t delta_walk(delta_walk_t *w, const iss_manifest_t *base,
                               const unsigned char *edits,
                               apr_uint32_t nedits)
{
    const unsigned char *p = edits;
    apr_uint32_t pos = 0, k, n;
    apr_status_t rv;

    for (k = 0; k <= nedits; k++) {
        apr_uint32_t until = base->count, old_count = 0, new_count = 0;

        if (k < nedits) {
            until = iss_be32_get(p);
            old_count = iss_be32_get(p + 4);
            new_count = iss_be32_get(p + 8);
            p += EDIT_LEN;
        }
        for (; pos < until; pos++)
            if ((rv = walk_entry(w, base->entries[pos].sha256,
                                 base->entries[pos].length)) != APR_SUCCESS)
                return rv;
        for (n = 0; n < new_count; n++, p += ENTRY_LEN)
            if ((rv = walk_entry(w, p, iss_be32_get(p + SHA_LEN))) != APR_SUCCESS)
                return rv;
        pos = until + old_count; /* checked: <= base->count */
    }
    return APR_SUCCESS;
}

apr_status_t iss_manifest_delta_apply(const iss_manifest_t *base,
                                      const void *buf, apr_size_t len,
                                      const iss_manifest_limits_t *lim,
                                      iss_manifest_t **out, apr_pool_t *pool)
{
    const unsigned char *p = buf, *e;
    apr_uint64_t file_size, count, prev_end = 0, rest;
    apr_uint32_t nedits, k;
    delta_walk_t w;
    iss_manifest_t *m;
    apr_status_t rv;

    if (out == NULL)
        return APR_EINVAL;
    *out = NULL;
    if (base == NULL || lim == NULL || (buf == NULL && len > 0)
        || (base->count > 0 && base->entries == NULL))
        return APR_EINVAL;

    if (len < DHEADER_LEN
        || memcmp(p, ISS_MANIFEST_DELTA_MAGIC, 4) != 0)
        return ISS_MANIFEST_EDHEADER;
    if (memcmp(p + DOFF_BASE, base->file_sha256, SHA_LEN) != 0)
        return ISS_MANIFEST_EBASE;
    if ((rv = check_params(&base->params, lim->params)) != APR_SUCCESS)
        return rv;
    file_size = iss_be64_get(p + DOFF_SIZE);
    if (file_size > lim->max_file_size)
        return ISS_MANIFEST_ETOOBIG;

    /* The edits' structure; the result's count.  rest is what is left of
     * the input; every length is compared with it before it is used. */
    nedits = iss_be32_get(p + DOFF_COUNT);
    rest = len - DHEADER_LEN;
    if ((apr_uint64_t)nedits * EDIT_LEN > rest)
        return ISS_MANIFEST_EDLENGTH;
    count = base->count;
    e = p + DHEADER_LEN;
    for (k = 0; k < nedits; k++) {
        apr_uint32_t old_start, old_count, new_count;

        if (rest < EDIT_LEN)
            return ISS_MANIFEST_EDLENGTH;
        old_start = iss_be32_get(e);
        old_count = iss_be32_get(e + 4);
        new_count = iss_be32_get(e + 8);
        if (old_start < prev_end
            || (apr_uint64_t)old_start + old_count > base->count)
            return ISS_MANIFEST_EDEDIT;
        prev_end = (apr_uint64_t)old_start + old_count;
        rest -= EDIT_LEN;
        if ((apr_uint64_t)new_count * ENTRY_LEN > rest)
            return ISS_MANIFEST_EDLENGTH;
        rest -= (apr_uint64_t)new_count * ENTRY_LEN;
        e += EDIT_LEN + (apr_size_t)new_count * ENTRY_LEN;
        /* The old ranges are disjoint parts of the base: count stays
         * >= 0; new_count x 36 bytes are in the input: no overflow. */
        count = count - old_count + new_count;
    }
    if (rest != 0)
        return ISS_MANIFEST_EDLENGTH;
    if (count > lim->max_entries)
        return ISS_MANIFEST_ECOUNT;
    if (count > (apr_uint64_t)((apr_size_t)-1 / sizeof(iss_manifest_entry_t)))
        return APR_ENOMEM; /* only where apr_size_t has 32 bits */

    /* The result's entries and sum, before allocating for them. */
    w.params = &base->params;
    w.index = 0;
    w.count = count;
    w.sum = 0;
    w.out = NULL;
    if ((rv = delta_walk(&w, base, p + DHEADER_LEN, nedits)) != APR_SUCCESS)
        return rv;
    if (w.sum != file_size)
        return ISS_MANIFEST_ESUM;

    m = apr_pcalloc(pool, sizeof(*m));
    m->params = base->params;
    m->file_size = file_size;
    memcpy(m->file_sha256, p + DOFF_SHA, SHA_LEN);
    m->count = (apr_uint32_t)count; /* <= max_entries */
    if (count > 0) {
        m->entries = apr_palloc(pool, (apr_size_t)count * sizeof(*m->entries));
        w.index = 0;
        w.sum = 0;
        w.out = m->entries;
        (void)delta_walk(&w, base, p + DHEADER_LEN, nedits); /* no checks */
    }
    *out = m;
    return APR_SUCCESS;
}

apr_status_t iss_manifest_of_file(apr_file_t *f, const iss_cdc_params_t *p,
                                  iss_manifest_t **m, apr_pool_t *pool)
{
    enum { PIECE = 1024 * 1024 };
    iss_manifest_builder_t *b;
    apr_off_t at = 0;
    apr_pool_t *tmp;
    char *buf;
    apr_status_t rv;

    if ((rv = iss_manifest_builder_create(&b, p, pool)) != APR_SUCCESS
        || (rv = apr_file_seek(f, APR_SET, &at)) != APR_SUCCESS
        || (rv = apr_pool_create(&tmp, pool)) != APR_SUCCESS) {
        return rv;
    }
    buf = apr_palloc(tmp, PIECE);
    for (;;) {
        apr_size_t n = PIECE;

        rv = apr_file_read(f, buf, &n);
        if (rv == APR_EOF || (rv == APR_SUCCESS && n == 0)) {
            rv = APR_SUCCESS;
            break;
        }
        if (rv != APR_SUCCESS
            || (rv = iss_manifest_builder_feed(b, buf, n)) != APR_SUCCESS) {
            break;
        }
    }
    apr_pool_destroy(tmp);
    return rv == APR_SUCCESS ? iss_manifest_builder_finish(b, m) : rv;
}
