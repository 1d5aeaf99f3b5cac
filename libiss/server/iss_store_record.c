/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * iss_store_record.c - the record format of the state store (see DBM
 * RECORDS at the top of iss_store.c): big-endian integers, CRC32 sealing
 * and SHA-256, short and hashed DBM keys, segments, reading an entry
 * (inline or reassembled from its segments, checked) and writing or
 * deleting one (apply_put, apply_delete), and names of DBM keys for
 * messages.
 */

#include "iss_store_private.h"

#include <apr_strings.h>

#include <string.h>

#define NSEG_UNKNOWN 0xffffffffu

/* ---- small helpers ------------------------------------------------------ */

void iss_store__copy_bytes(void *dst, const void *src, apr_size_t n)
{
    if (n)
        memcpy(dst, src, n);
}

/* Printable, bounded rendering of arbitrary key bytes for messages. */
const char *iss_store__show_bytes(char *buf, apr_size_t size, const void *data,
                                  apr_size_t len)
{
    const unsigned char *p = data;
    apr_size_t i, o = 0;

    buf[o++] = '"';
    for (i = 0; i < len && o + 8 < size; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\') {
            buf[o++] = (char)p[i];
        }
        else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            iss_hex_encode(buf + o, p + i, 1);
            o += 2;
        }
    }
    if (i < len) {
        buf[o++] = '.';
        buf[o++] = '.';
        buf[o++] = '.';
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* Human-readable name of a DBM key (user key, hashed key or segment). */
const char *iss_store__show_dk(char *buf, apr_size_t size, const char *dk,
                               apr_size_t dklen)
{
    char h[17];

    if (dklen >= 1 && dk[0] == KEY_SHORT)
        return iss_store__show_bytes(buf, size, dk + 1, dklen - 1);
    if (dklen == 1 + SHA_LEN && dk[0] == KEY_HASHED) {
        iss_hex_encode(h, (const unsigned char *)dk + 1, 8);
        apr_snprintf(buf, size, "<long key sha256:%s...>", h);
        return buf;
    }
    if (dklen == SEGKEY_LEN && dk[0] == KEY_SEGMENT) {
        iss_hex_encode(h, (const unsigned char *)dk + 1, 8);
        apr_snprintf(buf, size, "<segment %u of sha256:%s...>",
                     iss_be32_get((const unsigned char *)dk + 1 + SHA_LEN),
                     h);
        return buf;
    }
    return iss_store__show_bytes(buf, size, dk, dklen);
}

/* ---- hashing ------------------------------------------------------------ */

static apr_status_t md_cleanup(void *ctx)
{
    EVP_MD_CTX_free(ctx);
    return APR_SUCCESS;
}

/* A SHA-256 context freed with @a p. */
apr_status_t iss_store__sha_new(iss_store_t *s, apr_pool_t *p,
                                EVP_MD_CTX **ctx)
{
    *ctx = EVP_MD_CTX_new();
    if (!*ctx)
        return iss_store__fail(s, APR_ENOMEM,
                               "out of memory (EVP_MD_CTX_new)");
    apr_pool_cleanup_register(p, *ctx, md_cleanup, apr_pool_cleanup_null);
    if (EVP_DigestInit_ex(*ctx, EVP_sha256(), NULL) != 1)
        return iss_store__fail(s, APR_EGENERAL,
                               "SHA-256 is not available from OpenSSL");
    return APR_SUCCESS;
}

apr_status_t iss_store__sha_add(iss_store_t *s, EVP_MD_CTX *ctx, const void *d,
                                apr_size_t n)
{
    if (n && EVP_DigestUpdate(ctx, d, n) != 1)
        return iss_store__fail(s, APR_EGENERAL, "SHA-256 update failed");
    return APR_SUCCESS;
}

apr_status_t iss_store__sha_end(iss_store_t *s, EVP_MD_CTX *ctx,
                                unsigned char out[SHA_LEN])
{
    if (EVP_DigestFinal_ex(ctx, out, NULL) != 1)
        return iss_store__fail(s, APR_EGENERAL, "SHA-256 final failed");
    return APR_SUCCESS;
}

apr_status_t iss_store__sha256(iss_store_t *s, const void *d, apr_size_t n,
                               unsigned char out[SHA_LEN])
{
    if (EVP_Digest(d, n, out, NULL, EVP_sha256(), NULL) != 1)
        return iss_store__fail(s, APR_EGENERAL, "SHA-256 failed");
    return APR_SUCCESS;
}

uLong iss_store__crc_add(uLong c, const void *d, apr_size_t n)
{
    const Bytef *p = d;

    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;

        c = crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return c;
}

static apr_uint32_t rec_crc(const char *dk, apr_size_t dklen, const char *rec,
                            apr_size_t reclen)
{
    uLong c = crc32(0L, Z_NULL, 0);

    c = iss_store__crc_add(c, dk, dklen);
    c = iss_store__crc_add(c, rec, 1);
    c = iss_store__crc_add(c, rec + REC_HDR, reclen - REC_HDR);
    return (apr_uint32_t)c;
}

static void rec_seal(const char *dk, apr_size_t dklen, char *rec,
                     apr_size_t reclen)
{
    iss_be32_put((unsigned char *)rec + 1,
                     rec_crc(dk, dklen, rec, reclen));
}

int iss_store__rec_ok(const char *dk, apr_size_t dklen, const char *rec,
                      apr_size_t reclen)
{
    return reclen >= REC_HDR
           && iss_be32_get((const unsigned char *)rec + 1)
              == rec_crc(dk, dklen, rec, reclen);
}

/* ---- keys --------------------------------------------------------------- */

static apr_status_t make_dk(iss_store_t *s, apr_pool_t *p, const void *key,
                            apr_size_t klen, char **dk, apr_size_t *dklen)
{
    if (klen <= SHORT_KEY_MAX) {
        *dk = apr_palloc(p, klen + 1);
        (*dk)[0] = KEY_SHORT;
        iss_store__copy_bytes(*dk + 1, key, klen);
        *dklen = klen + 1;
        return APR_SUCCESS;
    }
    *dk = apr_palloc(p, 1 + SHA_LEN);
    (*dk)[0] = KEY_HASHED;
    *dklen = 1 + SHA_LEN;
    return iss_store__sha256(s, key, klen, (unsigned char *)*dk + 1);
}

/* SHA-256 of the user key, naming its segments. */
apr_status_t iss_store__seg_id(iss_store_t *s, const char *dk,
                               apr_size_t dklen, unsigned char id[SHA_LEN])
{
    if (dk[0] == KEY_HASHED) {
        memcpy(id, dk + 1, SHA_LEN);
        return APR_SUCCESS;
    }
    return iss_store__sha256(s, dk + 1, dklen - 1, id);
}

static void seg_key(char out[SEGKEY_LEN], const unsigned char id[SHA_LEN],
                    apr_uint32_t i)
{
    out[0] = KEY_SEGMENT;
    memcpy(out + 1, id, SHA_LEN);
    iss_be32_put((unsigned char *)out + 1 + SHA_LEN, i);
}

static apr_size_t seg_size(iss_store_t *s)
{
    return s->pair_max - SEGKEY_LEN - REC_HDR;
}

/* ---- reading entries ---------------------------------------------------- */

static apr_status_t check_rec(db_t *db, const char *dk, apr_size_t dklen,
                              const char *rec, apr_size_t reclen)
{
    char kb[128];

    if (!iss_store__rec_ok(dk, dklen, rec, reclen))
        return iss_store__damaged(db->s, "record %s in %s fails its checksum",
                                  iss_store__show_dk(kb, sizeof(kb), dk,
                                                     dklen), db->path);
    return APR_SUCCESS;
}

/* The body of the checked record @a rec: inline, or reassembled from its
 * segments and verified.  *body is NUL-terminated.  *nseg: segments. */
static apr_status_t load_body(db_t *db, const char *dk, apr_size_t dklen,
                              char *rec, apr_size_t reclen, apr_pool_t *p,
                              char **body, apr_size_t *blen,
                              apr_uint32_t *nseg)
{
    iss_store_t *s = db->s;
    const unsigned char *pay = (const unsigned char *)rec + REC_HDR;
    apr_size_t paylen = reclen - REC_HDR;
    unsigned char id[SHA_LEN], want[SHA_LEN], got[SHA_LEN];
    char kb[128], sk[SEGKEY_LEN];
    apr_uint64_t total;
    apr_uint32_t n, i;
    apr_size_t off = 0;
    apr_pool_t *sp = NULL;
    EVP_MD_CTX *ctx;
    apr_status_t rv;

    if (rec[0] == REC_VALUE && dk[0] != KEY_SEGMENT) {
        *body = rec + REC_HDR;
        *blen = paylen;
        if (nseg)
            *nseg = 0;
        return APR_SUCCESS;
    }
    if (rec[0] != REC_HEAD || dk[0] == KEY_SEGMENT || paylen != HEAD_LEN)
        return iss_store__damaged(s, "record %s in %s has an invalid type or "
                                  "layout",
                                  iss_store__show_dk(kb, sizeof(kb), dk,
                                                     dklen), db->path);
    total = iss_be64_get(pay);
    n = iss_be32_get(pay + 8);
    memcpy(want, pay + 12, SHA_LEN);
    if (total > MAX_BODY || n == 0 || n > total)
        return iss_store__damaged(s, "record %s in %s has an invalid segment "
                                  "header",
                                  iss_store__show_dk(kb, sizeof(kb), dk,
                                                     dklen), db->path);
    if ((rv = iss_store__seg_id(s, dk, dklen, id)) != APR_SUCCESS)
        return rv;
    if ((rv = apr_pool_create(&sp, p)) != APR_SUCCESS)
        return iss_store__fail(s, rv, "cannot create a pool: %pm", &rv);
    if ((rv = iss_store__sha_new(s, sp, &ctx)) != APR_SUCCESS)
        goto cleanup;
    *body = apr_palloc(p, (apr_size_t)total + 1);
    for (i = 0; i < n; i++) {
        char *srec;
        apr_size_t slen;
        apr_pool_t *ip;

        if ((rv = apr_pool_create(&ip, sp)) != APR_SUCCESS) {
            iss_store__fail(s, rv, "cannot create a pool: %pm", &rv);
            goto cleanup;
        }
        seg_key(sk, id, i);
        rv = iss_store__db_fetch(db, sk, SEGKEY_LEN, ip, &srec, &slen);
        if (rv == APR_SUCCESS && !srec)
            rv = iss_store__damaged(s, "segment %u of %u of record %s is "
                                    "missing in %s", i, n,
                                    iss_store__show_dk(kb, sizeof(kb), dk,
                                                       dklen), db->path);
        if (rv == APR_SUCCESS)
            rv = check_rec(db, sk, SEGKEY_LEN, srec, slen);
        if (rv == APR_SUCCESS
            && (srec[0] != REC_SEGMENT || slen - REC_HDR > total - off))
            rv = iss_store__damaged(s, "segment %u of record %s in %s is "
                                    "invalid", i,
                                    iss_store__show_dk(kb, sizeof(kb), dk,
                                                       dklen), db->path);
        if (rv == APR_SUCCESS) {
            iss_store__copy_bytes(*body + off, srec + REC_HDR, slen - REC_HDR);
            off += slen - REC_HDR;
        }
        apr_pool_destroy(ip);
        if (rv != APR_SUCCESS)
            goto cleanup;
    }
    if ((rv = iss_store__sha_add(s, ctx, *body, off)) != APR_SUCCESS
        || (rv = iss_store__sha_end(s, ctx, got)) != APR_SUCCESS)
        goto cleanup;
    if (off != total || memcmp(got, want, SHA_LEN) != 0) {
        rv = iss_store__damaged(s, "value of %s in %s does not match its "
                                "SHA-256",
                                iss_store__show_dk(kb, sizeof(kb), dk, dklen),
                                db->path);
        goto cleanup;
    }
    (*body)[off] = '\0';
    *blen = off;
    if (nseg)
        *nseg = n;
cleanup:
    apr_pool_destroy(sp);
    return rv;
}

/* Split a body into key and value.  For hashed DBM keys the embedded key
 * must hash to the DBM key. */
static apr_status_t split_body(db_t *db, const char *dk, apr_size_t dklen,
                               char *body, apr_size_t blen,
                               const char **key, apr_size_t *klen,
                               char **val, apr_size_t *vlen)
{
    unsigned char h[SHA_LEN];
    char kb[128];
    apr_uint32_t kl;
    apr_status_t rv;

    if (dk[0] == KEY_SHORT) {
        *key = dk + 1;
        *klen = dklen - 1;
        *val = body;
        *vlen = blen;
        return APR_SUCCESS;
    }
    kl = blen >= 4 ? iss_be32_get((unsigned char *)body) : 0;
    if (blen < 4 || kl > blen - 4 || kl <= SHORT_KEY_MAX)
        return iss_store__damaged(db->s, "record %s in %s has an invalid key "
                                  "part",
                                  iss_store__show_dk(kb, sizeof(kb), dk,
                                                     dklen), db->path);
    if ((rv = iss_store__sha256(db->s, body + 4, kl, h)) != APR_SUCCESS)
        return rv;
    if (memcmp(h, dk + 1, SHA_LEN) != 0)
        return iss_store__damaged(db->s, "key inside record %s in %s does not "
                                  "match its hash",
                                  iss_store__show_dk(kb, sizeof(kb), dk,
                                                     dklen), db->path);
    *key = body + 4;
    *klen = kl;
    *val = body + 4 + kl;
    *vlen = blen - 4 - kl;
    return APR_SUCCESS;
}

/* Read the entry of a user key; APR_NOTFOUND if absent. */
apr_status_t iss_store__read_entry(db_t *db, const void *key, apr_size_t klen,
                                   apr_pool_t *p, apr_pool_t *scratch,
                                   void **val, apr_size_t *vlen)
{
    char *dk, *rec, *body, *v;
    apr_size_t dklen, reclen, blen, kl, vl;
    const char *k;
    apr_status_t rv;

    if ((rv = make_dk(db->s, scratch, key, klen, &dk, &dklen)) != APR_SUCCESS)
        return rv;
    if ((rv = iss_store__db_fetch(db, dk, dklen, p, &rec, &reclen))
            != APR_SUCCESS)
        return rv;
    if (!rec)
        return APR_NOTFOUND;
    if ((rv = check_rec(db, dk, dklen, rec, reclen)) != APR_SUCCESS
        || (rv = load_body(db, dk, dklen, rec, reclen, p, &body, &blen,
                           NULL)) != APR_SUCCESS
        || (rv = split_body(db, dk, dklen, body, blen, &k, &kl, &v, &vl))
           != APR_SUCCESS)
        return rv;
    if (kl != klen || memcmp(k, key, klen) != 0)
        return APR_NOTFOUND;            /* a SHA-256 collision */
    *val = v;
    *vlen = vl;
    return APR_SUCCESS;
}

/* Fetch the record of an iterated key, check it and split it. */
apr_status_t iss_store__load_iterated(db_t *db, const char *dk,
                                      apr_size_t dklen, apr_pool_t *p,
                                      const char **key, apr_size_t *klen,
                                      char **val, apr_size_t *vlen,
                                      apr_uint32_t *nseg)
{
    char *rec, *body, kb[128];
    apr_size_t reclen, blen;
    apr_status_t rv = iss_store__db_fetch(db, dk, dklen, p, &rec, &reclen);

    if (rv != APR_SUCCESS)
        return rv;
    if (!rec)
        return iss_store__damaged(db->s, "record %s is found by iterating "
                                  "over %s but not by looking up its key: the "
                                  "DBM is damaged",
                                  iss_store__show_dk(kb, sizeof(kb), dk,
                                                     dklen), db->path);
    if ((rv = check_rec(db, dk, dklen, rec, reclen)) != APR_SUCCESS)
        return rv;
    if (dk[0] == KEY_SEGMENT) {
        if (dklen != SEGKEY_LEN || rec[0] != REC_SEGMENT)
            return iss_store__damaged(db->s, "record %s in %s is not a valid "
                                      "segment",
                                      iss_store__show_dk(kb, sizeof(kb), dk,
                                                         dklen), db->path);
        *key = NULL;
        return APR_SUCCESS;
    }
    if ((dk[0] == KEY_SHORT && dklen > 1 + SHORT_KEY_MAX)
        || (dk[0] == KEY_HASHED && dklen != 1 + SHA_LEN)
        || (dk[0] != KEY_SHORT && dk[0] != KEY_HASHED))
        return iss_store__damaged(db->s, "unknown record %s in %s",
                                  iss_store__show_dk(kb, sizeof(kb), dk,
                                                     dklen), db->path);
    if ((rv = load_body(db, dk, dklen, rec, reclen, p, &body, &blen, nseg))
        != APR_SUCCESS)
        return rv;
    return split_body(db, dk, dklen, body, blen, key, klen, val, vlen);
}

/* ---- writing entries ---------------------------------------------------- */

/* Segment count of the entry stored under @a dk now: 0 if absent or
 * inline, NSEG_UNKNOWN if its record is damaged. */
static apr_status_t old_nseg(db_t *db, const char *dk, apr_size_t dklen,
                             apr_pool_t *p, apr_uint32_t *n, int *present)
{
    char *rec = NULL, kb[128];
    apr_size_t reclen = 0;
    apr_status_t rv = iss_store__db_fetch(db, dk, dklen, p, &rec, &reclen);

    *n = 0;
    *present = 0;
    if (rv != APR_SUCCESS || !rec)
        return rv;
    *present = 1;
    if (!iss_store__rec_ok(dk, dklen, rec, reclen)
        || (rec[0] == REC_HEAD && reclen != REC_HDR + HEAD_LEN)) {
        *n = NSEG_UNKNOWN;
        iss_store__note(db->s, LOG_WARNING, ISS_STORE_EDAMAGED, "replacing "
                        "damaged record %s in %s",
                        iss_store__show_dk(kb, sizeof(kb), dk, dklen),
                        db->path);
    }
    else if (rec[0] == REC_HEAD) {
        *n = iss_be32_get((unsigned char *)rec + REC_HDR + 8);
    }
    return APR_SUCCESS;
}

/* Delete segments [from, old) highest first, so that an interrupted run
 * never leaves a gap; NSEG_UNKNOWN: probe upwards from @a from. */
static apr_status_t drop_segments(db_t *db, const unsigned char id[SHA_LEN],
                                  apr_uint32_t from, apr_uint32_t old)
{
    char sk[SEGKEY_LEN];
    apr_status_t rv;

    if (old == NSEG_UNKNOWN) {
        old = from;
        for (;;) {
            seg_key(sk, id, old);
            if (!iss_store__db_exists(db, sk, SEGKEY_LEN))
                break;
            old++;
        }
    }
    while (old > from) {
        seg_key(sk, id, --old);
        if ((rv = iss_store__db_delete(db, sk, SEGKEY_LEN)) != APR_SUCCESS)
            return rv;
    }
    return APR_SUCCESS;
}

/* Copy @a len bytes at @a off of the body prefix||val into @a dst. */
static void body_copy(char *dst, const char *prefix, apr_size_t plen,
                      const char *val, apr_size_t off, apr_size_t len)
{
    if (off < plen) {
        apr_size_t k = plen - off < len ? plen - off : len;

        iss_store__copy_bytes(dst, prefix + off, k);
        dst += k;
        off += k;
        len -= k;
    }
    if (len)
        memcpy(dst, val + (off - plen), len);
}

apr_status_t iss_store__apply_put(db_t *db, const op_t *op, apr_pool_t *p)
{
    iss_store_t *s = db->s;
    unsigned char id[SHA_LEN], sum[SHA_LEN];
    char *dk, *pre = NULL, *rec;
    apr_size_t dklen, plen = 0, blen;
    apr_uint32_t old, n = 0;
    int present;
    apr_status_t rv;

    if ((rv = make_dk(s, p, op->key, op->klen, &dk, &dklen)) != APR_SUCCESS
        || (rv = old_nseg(db, dk, dklen, p, &old, &present)) != APR_SUCCESS)
        return rv;
    (void)present;
    if (dk[0] == KEY_HASHED) {
        plen = 4 + op->klen;
        pre = apr_palloc(p, plen);
        iss_be32_put((unsigned char *)pre, (apr_uint32_t)op->klen);
        memcpy(pre + 4, op->key, op->klen);
    }
    blen = plen + op->vlen;
    if (dklen + REC_HDR + blen <= s->pair_max) {
        rec = apr_palloc(p, REC_HDR + blen);
        rec[0] = REC_VALUE;
        body_copy(rec + REC_HDR, pre, plen, op->val, 0, blen);
        rec_seal(dk, dklen, rec, REC_HDR + blen);
        rv = iss_store__db_store(db, dk, dklen, rec, REC_HDR + blen);
    }
    else {
        apr_size_t seg = seg_size(s), off, len;
        char sk[SEGKEY_LEN];
        EVP_MD_CTX *ctx;
        apr_uint32_t i;

        if ((rv = iss_store__seg_id(s, dk, dklen, id)) != APR_SUCCESS
            || (rv = iss_store__sha_new(s, p, &ctx)) != APR_SUCCESS)
            return rv;
        n = (apr_uint32_t)((blen + seg - 1) / seg);
        rec = apr_palloc(p, REC_HDR + seg);
        for (i = 0, off = 0; i < n && rv == APR_SUCCESS; i++, off += len) {
            len = blen - off < seg ? blen - off : seg;
            rec[0] = REC_SEGMENT;
            body_copy(rec + REC_HDR, pre, plen, op->val, off, len);
            seg_key(sk, id, i);
            rec_seal(sk, SEGKEY_LEN, rec, REC_HDR + len);
            rv = iss_store__sha_add(s, ctx, rec + REC_HDR, len);
            if (rv == APR_SUCCESS)
                rv = iss_store__db_store(db, sk, SEGKEY_LEN, rec,
                                         REC_HDR + len);
        }
        if (rv == APR_SUCCESS)
            rv = iss_store__sha_end(s, ctx, sum);
        if (rv == APR_SUCCESS) {
            unsigned char *h;

            rec = apr_palloc(p, REC_HDR + HEAD_LEN);
            rec[0] = REC_HEAD;
            h = (unsigned char *)rec + REC_HDR;
            iss_be64_put(h, blen);
            iss_be32_put(h + 8, n);
            memcpy(h + 12, sum, SHA_LEN);
            rec_seal(dk, dklen, rec, REC_HDR + HEAD_LEN);
            rv = iss_store__db_store(db, dk, dklen, rec, REC_HDR + HEAD_LEN);
        }
    }
    /* Segments of the old value past the new count (the SHA-256 that
     * names them only when there are any). */
    if (rv == APR_SUCCESS && (old == NSEG_UNKNOWN || old > n)
        && (n > 0 || (rv = iss_store__seg_id(s, dk, dklen, id))
                     == APR_SUCCESS))
        rv = drop_segments(db, id, n, old);
    return rv;
}

apr_status_t iss_store__apply_delete(db_t *db, const op_t *op, apr_pool_t *p)
{
    unsigned char id[SHA_LEN];
    char *dk;
    apr_size_t dklen;
    apr_uint32_t old;
    int present;
    apr_status_t rv;

    if ((rv = make_dk(db->s, p, op->key, op->klen, &dk, &dklen)) != APR_SUCCESS
        || (rv = old_nseg(db, dk, dklen, p, &old, &present)) != APR_SUCCESS)
        return rv;
    if (!present)
        return APR_SUCCESS;
    if ((rv = iss_store__db_delete_present(db, dk, dklen)) != APR_SUCCESS)
        return rv;
    if (old == 0)
        return APR_SUCCESS;
    if ((rv = iss_store__seg_id(db->s, dk, dklen, id)) != APR_SUCCESS)
        return rv;
    return drop_segments(db, id, 0, old);
}
