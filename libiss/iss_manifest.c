/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* Chunk manifests: the binary form (see iss_manifest.h for the format),
 * its parser for untrusted input, its encoder and the one-pass builder. */

#include "iss_manifest.h"

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

static apr_uint32_t get32(const unsigned char *p)
{
    return ((apr_uint32_t)p[0] << 24) | ((apr_uint32_t)p[1] << 16)
           | ((apr_uint32_t)p[2] << 8) | (apr_uint32_t)p[3];
}

static apr_uint64_t get64(const unsigned char *p)
{
    return ((apr_uint64_t)get32(p) << 32) | get32(p + 4);
}

static void put32(unsigned char *p, apr_uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put64(unsigned char *p, apr_uint64_t v)
{
    put32(p, (apr_uint32_t)(v >> 32));
    put32(p + 4, (apr_uint32_t)v);
}

apr_uint64_t iss_manifest_encoded_len(apr_uint32_t count)
{
    return HEADER_LEN + (apr_uint64_t)ENTRY_LEN * count;
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

    if (out == NULL)
        return APR_EINVAL;
    *out = NULL;
    if (lim == NULL || (buf == NULL && len > 0))
        return APR_EINVAL;

    if (len < HEADER_LEN || memcmp(p, ISS_MANIFEST_MAGIC, 4) != 0)
        return ISS_MANIFEST_EHEADER;
    params.min_size = get32(p + OFF_MIN);
    params.avg_size = get32(p + OFF_AVG);
    params.max_size = get32(p + OFF_MAX);
    if (iss_cdc_params_check(&params) != NULL)
        return ISS_MANIFEST_EPARAMS;
    if (lim->params != NULL
        && (params.min_size != lim->params->min_size
            || params.avg_size != lim->params->avg_size
            || params.max_size != lim->params->max_size))
        return ISS_MANIFEST_EMISMATCH;
    file_size = get64(p + OFF_SIZE);
    if (file_size > lim->max_file_size)
        return ISS_MANIFEST_ETOOBIG;
    count = get32(p + OFF_COUNT);
    if (count > lim->max_entries)
        return ISS_MANIFEST_ECOUNT;
    if ((apr_uint64_t)(len - HEADER_LEN) != (apr_uint64_t)ENTRY_LEN * count)
        return ISS_MANIFEST_ELENGTH;

    /* Check the entries before allocating for them. */
    for (i = 0; i < count; i++) {
        apr_uint32_t n = get32(p + HEADER_LEN + (apr_size_t)i * ENTRY_LEN
                               + SHA_LEN);

        if (n == 0 || n > params.max_size)
            return ISS_MANIFEST_ECHUNK;
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
            m->entries[i].length = get32(e + SHA_LEN);
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
    apr_uint64_t total, sum = 0;
    unsigned char *b, *e;
    apr_uint32_t i;

    if (m == NULL || buf == NULL || len == NULL
        || (m->count > 0 && m->entries == NULL))
        return APR_EINVAL;
    if (iss_cdc_params_check(&m->params) != NULL)
        return ISS_MANIFEST_EPARAMS;
    for (i = 0; i < m->count; i++) {
        if (m->entries[i].length == 0
            || m->entries[i].length > m->params.max_size)
            return ISS_MANIFEST_ECHUNK;
        sum += m->entries[i].length;
    }
    if (sum != m->file_size)
        return ISS_MANIFEST_ESUM;
    total = iss_manifest_encoded_len(m->count);
    if (total > (apr_uint64_t)(apr_size_t)-1)
        return APR_ENOMEM;

    b = apr_palloc(pool, (apr_size_t)total);
    memcpy(b, ISS_MANIFEST_MAGIC, 4);
    put32(b + OFF_MIN, m->params.min_size);
    put32(b + OFF_AVG, m->params.avg_size);
    put32(b + OFF_MAX, m->params.max_size);
    put64(b + OFF_SIZE, m->file_size);
    memcpy(b + OFF_SHA, m->file_sha256, SHA_LEN);
    put32(b + OFF_COUNT, m->count);
    for (i = 0, e = b + HEADER_LEN; i < m->count; i++, e += ENTRY_LEN) {
        memcpy(e, m->entries[i].sha256, SHA_LEN);
        put32(e + SHA_LEN, m->entries[i].length);
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
