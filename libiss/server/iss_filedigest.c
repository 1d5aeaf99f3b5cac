/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include "iss_filedigest.h"
#include "iss_bytes.h"

#include <apr_base64.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <stdio.h>
#include <string.h>

#define MAGIC "IFD1 "
#define MAGIC2 "IFD2 "          /* + the checksums (see the header) */
#define B64_LEN 44              /* padded base64 of 32 bytes */
#define READ_BUF (64 * 1024)
#define IDENT_WANTED (APR_FINFO_IDENT | APR_FINFO_SIZE | APR_FINFO_MTIME \
                      | APR_FINFO_TYPE)

void iss_filedigest_set_identity(iss_filedigest_t *d, const apr_finfo_t *finfo)
{
    d->ino = (apr_uint64_t)finfo->inode;
    d->size = finfo->size;
    d->mtime = finfo->mtime;
}

int iss_filedigest_matches(const iss_filedigest_t *d, const apr_finfo_t *finfo)
{
    return d->ino == (apr_uint64_t)finfo->inode && d->size == finfo->size
           && d->mtime == finfo->mtime;
}

const char *iss_filedigest_encode(const iss_filedigest_t *d, apr_pool_t *pool)
{
    char b64[B64_LEN + 1];

    apr_base64_encode_binary(b64, d->sha256, ISS_DIGEST_SHA256_LEN);
    if (d->sums.have & (ISS_SUM_SHA1 | ISS_SUM_MD5)) {
        char sha1[2 * ISS_DIGEST_SHA1_LEN + 1] = "-";
        char md5[2 * ISS_DIGEST_MD5_LEN + 1] = "-";

        if (d->sums.have & ISS_SUM_SHA1) {
            iss_hex_encode(sha1, d->sums.sha1, ISS_DIGEST_SHA1_LEN);
        }
        if (d->sums.have & ISS_SUM_MD5) {
            iss_hex_encode(md5, d->sums.md5, ISS_DIGEST_MD5_LEN);
        }
        return apr_psprintf(pool, MAGIC2 "%" APR_UINT64_T_FMT " %"
                            APR_OFF_T_FMT " %" APR_INT64_T_FMT " %s %s %s",
                            d->ino, d->size, (apr_int64_t)d->mtime, b64, sha1,
                            md5);
    }
    return apr_psprintf(pool, MAGIC "%" APR_UINT64_T_FMT " %" APR_OFF_T_FMT
                        " %" APR_INT64_T_FMT " %s", d->ino, d->size,
                        (apr_int64_t)d->mtime, b64);
}

/* Version 2's tail after the digest: " <sha1 hex|-> <md5 hex|->". */
static int parse_sums(const char *p, const char *end, iss_digest_sums_t *s)
{
    const char *sp;

    memset(s, 0, sizeof(*s));
    if (p >= end || *p++ != ' ' || (sp = memchr(p, ' ', (apr_size_t)(end - p)))
        == NULL) {
        return 0;
    }
    if (sp - p == 1 && *p == '-') {
        /* no SHA-1 */
    }
    else if (iss_hex_decode(s->sha1, ISS_DIGEST_SHA1_LEN, p,
                            (apr_size_t)(sp - p))) {
        s->have |= ISS_SUM_SHA1;
    }
    else {
        return 0;
    }
    p = sp + 1;
    if (end - p == 1 && *p == '-') {
        /* no MD5 */
    }
    else if (iss_hex_decode(s->md5, ISS_DIGEST_MD5_LEN, p,
                            (apr_size_t)(end - p))) {
        s->have |= ISS_SUM_MD5;
    }
    else {
        return 0;
    }
    return s->have != 0;
}

/* One decimal field of canonical form (no sign unless @a neg_ok, no
 * leading zero, no overflow) ending at a space. */
static int parse_num(const char **p, const char *end, int neg_ok,
                     apr_uint64_t *mag, int *neg)
{
    const char *s = *p;
    apr_uint64_t v = 0;

    *neg = 0;
    if (neg_ok && s < end && *s == '-') {
        *neg = 1;
        s++;
    }
    if (s >= end || *s < '0' || *s > '9' || (*s == '0' && s + 1 < end
                                             && s[1] != ' ')) {
        return 0;
    }
    if (*neg && *s == '0') {
        return 0;
    }
    while (s < end && *s >= '0' && *s <= '9') {
        if (v > (APR_UINT64_MAX - (apr_uint64_t)(*s - '0')) / 10) {
            return 0;
        }
        v = v * 10 + (apr_uint64_t)(*s - '0');
        s++;
    }
    if (s >= end || *s != ' ') {
        return 0;
    }
    *p = s + 1;
    *mag = v;
    return 1;
}

apr_status_t iss_filedigest_decode(const char *buf, apr_size_t len,
                                   iss_filedigest_t *d)
{
    const char *p = buf, *end = buf + len;
    apr_uint64_t ino, size, mtime;
    unsigned char bin[ISS_DIGEST_SHA256_LEN + 3];
    char b64[B64_LEN + 1];
    iss_digest_sums_t sums;
    int neg, nneg, i, v2;

    if (len < sizeof(MAGIC) - 1) {
        return APR_EINVAL;
    }
    v2 = memcmp(buf, MAGIC2, sizeof(MAGIC2) - 1) == 0;
    if (!v2 && memcmp(buf, MAGIC, sizeof(MAGIC) - 1)) {
        return APR_EINVAL;
    }
    p += sizeof(MAGIC) - 1;
    if (!parse_num(&p, end, 0, &ino, &nneg)
        || !parse_num(&p, end, 0, &size, &nneg)
        || size > (apr_uint64_t)APR_INT64_MAX
        || !parse_num(&p, end, 1, &mtime, &neg)
        || mtime > (apr_uint64_t)APR_INT64_MAX
        || end - p < B64_LEN) {
        return APR_EINVAL;
    }
    memset(&sums, 0, sizeof(sums));
    if (v2 ? !parse_sums(p + B64_LEN, end, &sums) : end - p != B64_LEN) {
        return APR_EINVAL;
    }
    for (i = 0; i < B64_LEN; i++) {
        char c = p[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '+' || c == '/'
              || (c == '=' && i == B64_LEN - 1))) {
            return APR_EINVAL;
        }
    }
    memcpy(b64, p, B64_LEN);
    b64[B64_LEN] = '\0';
    if (apr_base64_decode_len(b64) > (int)sizeof(bin)
        || apr_base64_decode_binary(bin, b64) != ISS_DIGEST_SHA256_LEN) {
        return APR_EINVAL;
    }
    d->ino = ino;
    d->size = (apr_off_t)size;
    d->mtime = neg ? -(apr_time_t)mtime : (apr_time_t)mtime;
    memcpy(d->sha256, bin, ISS_DIGEST_SHA256_LEN);
    d->sums = sums;
    return APR_SUCCESS;
}

const char *iss_filedigest_key(const char *rel, apr_pool_t *pool)
{
    return apr_pstrcat(pool, ISS_FILEDIGEST_PREFIX, rel, NULL);
}

apr_status_t iss_filedigest_get(iss_store_t *store, const char *rel,
                                const apr_finfo_t *finfo, iss_filedigest_t *d,
                                int *found, apr_pool_t *pool)
{
    const char *key = iss_filedigest_key(rel, pool);
    apr_size_t vlen;
    void *val;
    apr_status_t rv;

    *found = 0;
    rv = iss_store_get(store, key, strlen(key), &val, &vlen, pool);
    if (rv == APR_NOTFOUND) {
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (iss_filedigest_decode(val, vlen, d) == APR_SUCCESS
        && iss_filedigest_matches(d, finfo)) {
        *found = 1;
    }
    return APR_SUCCESS;
}

apr_status_t iss_filedigest_lookup(iss_store_t *store, const char *rel,
                                   const apr_finfo_t *finfo,
                                   unsigned char out[ISS_DIGEST_SHA256_LEN],
                                   int *found, apr_pool_t *pool)
{
    iss_filedigest_t d;
    apr_status_t rv = iss_filedigest_get(store, rel, finfo, &d, found, pool);

    if (rv == APR_SUCCESS && *found) {
        memcpy(out, d.sha256, ISS_DIGEST_SHA256_LEN);
    }
    return rv;
}

void iss_filedigest_stage(iss_store_batch_t *batch, const char *rel,
                          const iss_filedigest_t *d, apr_pool_t *pool)
{
    const char *key = iss_filedigest_key(rel, pool);
    const char *val = iss_filedigest_encode(d, pool);

    iss_store_batch_put(batch, key, strlen(key), val, strlen(val));
}

apr_status_t iss_filedigest_compute_file(apr_file_t *f, iss_filedigest_t *d,
                                         apr_interval_time_t settle,
                                         int *stable, apr_pool_t *pool)
{
    return iss_filedigest_compute_file_sums(f, d, 0, settle, stable, pool);
}

apr_status_t iss_filedigest_compute_file_sums(apr_file_t *f,
                                              iss_filedigest_t *d,
                                              unsigned sums,
                                              apr_interval_time_t settle,
                                              int *stable, apr_pool_t *pool)
{
    apr_time_t start = apr_time_now();
    apr_finfo_t before, after;
    apr_off_t pos = 0;
    iss_digest_t *sha;
    iss_digest_sums_ctx_t *sc = NULL;
    char *buf;
    apr_status_t rv;

    *stable = 0;
    sums &= ISS_SUM_SHA1 | ISS_SUM_MD5;
    rv = apr_file_info_get(&before, IDENT_WANTED, f);
    if (rv == APR_INCOMPLETE) {
        rv = APR_ENOTIMPL;
    }
    if (rv == APR_SUCCESS && before.filetype != APR_REG) {
        rv = APR_EINVAL;
    }
    if (rv == APR_SUCCESS) {
        rv = apr_file_seek(f, APR_SET, &pos);
    }
    if (rv == APR_SUCCESS) {
        rv = iss_digest_create(&sha, pool);
    }
    if (rv == APR_SUCCESS && sums) {
        rv = iss_digest_sums_create(&sc, sums, pool);
    }
    buf = apr_palloc(pool, READ_BUF);
    while (rv == APR_SUCCESS) {
        apr_size_t n = READ_BUF;

        rv = apr_file_read(f, buf, &n);
        if (rv == APR_SUCCESS) {
            iss_digest_update(sha, buf, n);
            if (sc) {
                iss_digest_sums_update(sc, buf, n);
            }
        }
    }
    if (rv == APR_EOF) {
        pos = 0;
        rv = apr_file_info_get(&after, IDENT_WANTED, f);
        if (rv == APR_INCOMPLETE) {
            rv = APR_ENOTIMPL;
        }
        if (rv == APR_SUCCESS) {
            rv = apr_file_seek(f, APR_SET, &pos);
        }
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    iss_digest_final(sha, d->sha256);
    memset(&d->sums, 0, sizeof(d->sums));
    if (sc) {
        iss_digest_sums_final(sc, &d->sums);
    }
    iss_filedigest_set_identity(d, &before);
    *stable = iss_filedigest_matches(d, &after)
              && before.ctime == after.ctime
              && before.mtime + settle < start;
    return APR_SUCCESS;
}
