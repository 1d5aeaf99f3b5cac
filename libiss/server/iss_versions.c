/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * iss_versions — retained versions (issue 15; docs/design.md 3e).
 *
 * A version's bytes live in one file per distinct content,
 * versions/data/<hex sha256>, beside the store.  It gets there without
 * copying: before a write that may replace or remove a file, the capture
 * point hard-links the file's inode to versions/pending/<intent>.<n>
 * (iss_versions_hold(): mod_dav_fs and mod_iss replace files by renaming
 * a new inode over them and DELETE unlinks, so the link keeps the old
 * bytes, O(1)); after it, iss_versions_settle() looks whether the path
 * still has that inode (nothing replaced: the link is dropped) or not
 * (the link becomes data/<hex>, or is dropped when that content is kept
 * already).  Across file systems the hold is a copy.
 *
 * References are counted in the store (V/b/<hex>), in the same
 * transaction that links the data file into place and adds the version
 * to the file's list (V/f/<rel>).  A data file is removed only inside a
 * transaction that sees no V/b record for it (it is renamed into
 * versions/trash/ there, under the store's lock, and unlinked after).
 * Retention and collection therefore exclude each other on the store's
 * lock, whatever process runs them: a data file whose reference is
 * counted is never removed, and a reference is never counted for a data
 * file that a collection is removing.
 *
 * Reads check bytes before handing them out: against the chunk ids of
 * the version's manifest when it has one (one chunk at a time), else
 * against the whole digest when the reader is opened.
 */

#include "iss_versions.h"
#include "iss_bytes.h"
#include "iss_fdio.h"
#include "iss_filedigest.h"
#include "iss_chunkidx.h"
#include "iss_cdc.h"
#include "iss_sync_log.h"

#include <apr_file_io.h>
#include <apr_file_info.h>
#include <apr_strings.h>
#include <apr_portable.h>
#include <apr_lib.h>
#include <apr_hash.h>

#include <errno.h>
#include <sys/uio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>

#define VDIR       "versions"
#define LIST_PFX   "V/f/"
#define BLOB_PFX   "V/b/"
#define MAN_PFX    "V/m/"
#define CHUNK_PFX  "V/c/"
#define LIVE_PFX   "V/l/"
#define ROOT_KEY   "V/root"
#define TOTAL_KEY  "V/total"
#define LIST_MAGIC "IVL1\n"

/* One entry of a file's list. */
typedef struct vent_t {
    unsigned char digest[ISS_DIGEST_SHA256_LEN];
    apr_uint64_t size;
    apr_time_t replaced;
} vent_t;

struct iss_versions_hold_t {
    apr_pool_t *pool;
    const char *path;         /* the file */
    const char *rel;
    const char *link;         /* versions/pending/<tag>.<n> */
    apr_finfo_t fi;           /* the held inode as it was */
    int have_digest;
    iss_filedigest_t d;       /* the store's digest record, if it held */
    const iss_manifest_t *m;  /* the store's manifest, if it held */
    int released;
    int gone;                 /* settled: the path has another inode */
    int kept;                 /* settled: kept as the version below */
    unsigned char kept_digest[ISS_DIGEST_SHA256_LEN];
};

struct iss_version_reader_t {
    apr_pool_t *pool;
    iss_store_t *store;
    apr_file_t *f;
    int fd;
    apr_uint64_t size;
    const iss_manifest_t *m;  /* chunk mode when set */
    unsigned char *cbuf;
    apr_int64_t cidx;         /* the chunk in cbuf (-1: none) */
    char *chunks;             /* packed: "versions/chunks/" + room for
                               * an id: where chunks are read */
    apr_size_t chunks_len;
    int closed;
};

/* ---- names -------------------------------------------------------------- */

static const char *vpath(iss_store_t *store, const char *sub, const char *name,
                         apr_pool_t *p)
{
    return apr_pstrcat(p, iss_store_dir(store), "/" VDIR "/", sub,
                       name ? "/" : NULL, name, NULL);
}

static const char *hexof(const unsigned char d[ISS_DIGEST_SHA256_LEN],
                         apr_pool_t *p)
{
    return iss_hex_id(d, p);
}

/* ---- records ------------------------------------------------------------ */

static int parse_u64(const char **s, apr_uint64_t *out)
{
    const char *c = *s;
    apr_uint64_t n = 0;

    if (!apr_isdigit(*c)) {
        return 0;
    }
    for (; apr_isdigit(*c); c++) {
        if (n > (APR_UINT64_MAX - 9) / 10) {
            return 0;
        }
        n = n * 10 + (apr_uint64_t)(*c - '0');
    }
    *s = c;
    *out = n;
    return 1;
}

/* A file's list: APR_SUCCESS with *list (vent_t, maybe empty) or
 * ISS_STORE_EDAMAGED. */
static apr_status_t list_decode(const char *v, apr_size_t len,
                                apr_array_header_t **list, apr_pool_t *p)
{
    const char *c = v, *end = v + len;

    *list = apr_array_make(p, 4, sizeof(vent_t));
    if (len < sizeof(LIST_MAGIC) - 1
        || memcmp(v, LIST_MAGIC, sizeof(LIST_MAGIC) - 1) != 0) {
        return ISS_STORE_EDAMAGED;
    }
    c += sizeof(LIST_MAGIC) - 1;
    while (c < end) {
        vent_t *e = apr_array_push(*list);
        apr_uint64_t t;

        if (end - c < ISS_HEX_ID_LEN + 1
            || !iss_hex_id_decode(c, ISS_HEX_ID_LEN, e->digest)) {
            return ISS_STORE_EDAMAGED;
        }
        c += ISS_HEX_ID_LEN;
        if (*c++ != ' ' || !parse_u64(&c, &e->size) || c >= end
            || *c++ != ' ' || !parse_u64(&c, &t) || c >= end || *c++ != '\n'
            || t > (apr_uint64_t)APR_INT64_MAX) {
            return ISS_STORE_EDAMAGED;
        }
        e->replaced = (apr_time_t)t;
    }
    return APR_SUCCESS;
}

static const char *list_encode(const apr_array_header_t *list, apr_pool_t *p)
{
    struct iovec *v = apr_palloc(p, (list->nelts + 1) * sizeof(*v));
    int i;

    v[0].iov_base = (void *)LIST_MAGIC;
    v[0].iov_len = sizeof(LIST_MAGIC) - 1;
    for (i = 0; i < list->nelts; i++) {
        const vent_t *e = &APR_ARRAY_IDX(list, i, vent_t);
        char *s = apr_psprintf(p, "%s %" APR_UINT64_T_FMT " %" APR_UINT64_T_FMT
                               "\n", hexof(e->digest, p), e->size,
                               (apr_uint64_t)e->replaced);

        v[i + 1].iov_base = s;
        v[i + 1].iov_len = strlen(s);
    }
    return apr_pstrcatv(p, v, list->nelts + 1, NULL);
}

/* A content: its references, size, and whether its bytes are in the
 * chunk store (" p") instead of data/<hex>. */
typedef struct blob_t {
    apr_uint64_t refs, size;
    int packed;
} blob_t;

static int blob_decode(const char *v, apr_size_t len, blob_t *b)
{
    const char *c = v;

    if (len < 5 || memcmp(v, "IVB1 ", 5) != 0 || v[len] != '\0') {
        return 0;
    }
    c += 5;
    b->packed = 0;
    if (!parse_u64(&c, &b->refs) || *c++ != ' ' || !parse_u64(&c, &b->size)) {
        return 0;
    }
    if (strcmp(c, " p") == 0) {
        b->packed = 1;
        return 1;
    }
    return *c == '\0';
}

static void txn_put_blob(iss_store_txn_t *txn, const char *hex,
                         const blob_t *b, apr_pool_t *p)
{
    const char *k = apr_pstrcat(p, BLOB_PFX, hex, NULL);
    const char *v = apr_psprintf(p, "IVB1 %" APR_UINT64_T_FMT " %"
                                 APR_UINT64_T_FMT "%s", b->refs, b->size,
                                 b->packed ? " p" : "");

    iss_store_txn_put(txn, k, strlen(k), v, strlen(v));
}

/* A chunk of the chunk store: "IVC1 <references> <length>", and
 * " L <key> <offset>" when its bytes are at that offset of the live file
 * linked as versions/live/<key> instead of in chunks/<hex>. */
typedef struct crec_t {
    apr_uint64_t refs, len, off;
    const char *key;          /* NULL: in chunks/<hex> */
} crec_t;

/* A live link's name: lowercase hex digits and dashes. */
static int key_ok(const char *s, apr_size_t n)
{
    apr_size_t i;

    if (n == 0 || n > 80) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')
              || s[i] == '-')) {
            return 0;
        }
    }
    return 1;
}

static int crec_decode(const char *v, apr_size_t len, crec_t *cr,
                       apr_pool_t *p)
{
    const char *c = v, *sp;

    if (len < 5 || memcmp(v, "IVC1 ", 5) != 0 || v[len] != '\0') {
        return 0;
    }
    c += 5;
    cr->key = NULL;
    cr->off = 0;
    if (!parse_u64(&c, &cr->refs) || *c++ != ' '
        || !parse_u64(&c, &cr->len)) {
        return 0;
    }
    if (*c == '\0') {
        return 1;
    }
    if (strncmp(c, " L ", 3) != 0) {
        return 0;
    }
    c += 3;
    if ((sp = strchr(c, ' ')) == NULL || !key_ok(c, (apr_size_t)(sp - c))) {
        return 0;
    }
    cr->key = apr_pstrmemdup(p, c, (apr_size_t)(sp - c));
    c = sp + 1;
    return parse_u64(&c, &cr->off) && *c == '\0';
}

static void txn_put_crec(iss_store_txn_t *txn, const char *hex,
                         const crec_t *cr, apr_pool_t *p)
{
    const char *ck = apr_pstrcat(p, CHUNK_PFX, hex, NULL);
    const char *v = cr->key
        ? apr_psprintf(p, "IVC1 %" APR_UINT64_T_FMT " %" APR_UINT64_T_FMT
                       " L %s %" APR_UINT64_T_FMT, cr->refs, cr->len,
                       cr->key, cr->off)
        : apr_psprintf(p, "IVC1 %" APR_UINT64_T_FMT " %" APR_UINT64_T_FMT,
                       cr->refs, cr->len);

    iss_store_txn_put(txn, ck, strlen(ck), v, strlen(v));
}

/* The value of key @a k in @a txn: *found = 0 when absent (not an
 * error), else 1 with *v and *vl. */
static apr_status_t txn_get_found(iss_store_txn_t *txn, const char *k,
                                  void **v, apr_size_t *vl, int *found,
                                  apr_pool_t *p)
{
    apr_status_t rv = iss_store_txn_get(txn, k, strlen(k), v, vl, p);

    *found = rv == APR_SUCCESS;
    return rv == APR_NOTFOUND ? APR_SUCCESS : rv;
}

/* *found = 0 when absent. */
static apr_status_t txn_crec(iss_store_txn_t *txn, const char *hex,
                             crec_t *cr, int *found, apr_pool_t *p)
{
    void *v;
    apr_size_t vl;
    apr_status_t rv = txn_get_found(txn, apr_pstrcat(p, CHUNK_PFX, hex, NULL),
                                    &v, &vl, found, p);

    if (rv != APR_SUCCESS || !*found) {
        return rv;
    }
    if (!crec_decode(v, vl, cr, p)) {
        *found = 0;
        return ISS_STORE_EDAMAGED;
    }
    return APR_SUCCESS;
}

/* What a live file holds for versions: "IVLF1 <n>\n", n lines of chunk
 * ids, its path when linked, NUL, its path in the location. */
typedef struct lrec_t {
    apr_array_header_t *ids;  /* const char * (hex) */
    const char *path, *rel;
} lrec_t;

static int lrec_decode(const char *v, apr_size_t vl, lrec_t *l, apr_pool_t *p)
{
    const char *c = v, *end = v + vl, *nul;
    apr_uint64_t n, i;

    if (vl < 6 || memcmp(v, "IVLF1 ", 6) != 0) {
        return 0;
    }
    c += 6;
    if (!parse_u64(&c, &n) || c >= end || *c++ != '\n'
        || n > (apr_uint64_t)(end - c) / (ISS_HEX_ID_LEN + 1)) {
        return 0;
    }
    l->ids = apr_array_make(p, (int)n + 1, sizeof(const char *));
    for (i = 0; i < n; i++) {
        unsigned char id[ISS_DIGEST_SHA256_LEN];

        if (!iss_hex_id_decode(c, ISS_HEX_ID_LEN, id)
            || c[ISS_HEX_ID_LEN] != '\n') {
            return 0;
        }
        APR_ARRAY_PUSH(l->ids, const char *) = hexof(id, p);
        c += ISS_HEX_ID_LEN + 1;
    }
    if ((nul = memchr(c, '\0', (apr_size_t)(end - c))) == NULL) {
        return 0;
    }
    l->path = apr_pstrmemdup(p, c, (apr_size_t)(nul - c));
    l->rel = apr_pstrmemdup(p, nul + 1, (apr_size_t)(end - nul - 1));
    return 1;
}

static void txn_put_lrec(iss_store_txn_t *txn, const char *key,
                         const lrec_t *l, apr_pool_t *p)
{
    const char *k = apr_pstrcat(p, LIVE_PFX, key, NULL);
    const char *head;
    apr_size_t hl, pl, rl, len;
    char *buf, *o;
    int i;

    if (l->ids->nelts == 0) {
        iss_store_txn_delete(txn, k, strlen(k));
        return;
    }
    head = apr_psprintf(p, "IVLF1 %d\n", l->ids->nelts);
    hl = strlen(head);
    pl = strlen(l->path);
    rl = strlen(l->rel);
    len = hl + (apr_size_t)l->ids->nelts * (ISS_HEX_ID_LEN + 1) + pl + 1
          + rl;
    o = buf = apr_palloc(p, len);
    memcpy(o, head, hl);
    o += hl;
    for (i = 0; i < l->ids->nelts; i++) {
        memcpy(o, APR_ARRAY_IDX(l->ids, i, const char *), ISS_HEX_ID_LEN);
        o[ISS_HEX_ID_LEN] = '\n';
        o += ISS_HEX_ID_LEN + 1;
    }
    memcpy(o, l->path, pl);
    o[pl] = '\0';
    memcpy(o + pl + 1, l->rel, rl);
    iss_store_txn_put(txn, k, strlen(k), buf, len);
}

/* *found = 0 when absent. */
static apr_status_t txn_lrec(iss_store_txn_t *txn, const char *key,
                             lrec_t *l, int *found, apr_pool_t *p)
{
    void *v;
    apr_size_t vl;
    apr_status_t rv = txn_get_found(txn, apr_pstrcat(p, LIVE_PFX, key, NULL),
                                    &v, &vl, found, p);

    if (rv != APR_SUCCESS || !*found) {
        return rv;
    }
    if (!lrec_decode(v, vl, l, p)) {
        *found = 0;
        return ISS_STORE_EDAMAGED;
    }
    return APR_SUCCESS;
}

/* The name of a live file's link: its identity (as an m/ record's). */
static const char *live_key(const apr_finfo_t *fi, apr_pool_t *p)
{
    return apr_psprintf(p, "%" APR_UINT64_T_HEX_FMT "-%" APR_UINT64_T_HEX_FMT
                        "-%" APR_UINT64_T_HEX_FMT "-%" APR_UINT64_T_HEX_FMT,
                        (apr_uint64_t)fi->device, (apr_uint64_t)fi->inode,
                        (apr_uint64_t)fi->size, (apr_uint64_t)fi->mtime);
}

static int same_ident(const apr_finfo_t *a, const apr_finfo_t *b)
{
    return a->device == b->device && a->inode == b->inode
           && a->size == b->size && a->mtime == b->mtime;
}

typedef struct total_t {
    apr_uint64_t blobs, bytes;
} total_t;

static int total_decode(const char *v, apr_size_t len, total_t *t)
{
    const char *c = v;

    if (len < 5 || memcmp(v, "IVT1 ", 5) != 0 || v[len] != '\0') {
        return 0;
    }
    c += 5;
    return parse_u64(&c, &t->blobs) && *c++ == ' '
           && parse_u64(&c, &t->bytes) && *c == '\0';
}

static const char *list_key(const char *rel, apr_pool_t *p)
{
    return apr_pstrcat(p, LIST_PFX, rel, NULL);
}

/* Read helpers inside a transaction: absent is not an error. */
static apr_status_t txn_list(iss_store_txn_t *txn, const char *rel,
                             apr_array_header_t **list, apr_pool_t *p)
{
    const char *k = list_key(rel, p);
    void *v;
    apr_size_t vl;
    apr_status_t rv = iss_store_txn_get(txn, k, strlen(k), &v, &vl, p);

    if (rv == APR_NOTFOUND) {
        *list = apr_array_make(p, 4, sizeof(vent_t));
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return list_decode(v, vl, list, p);
}

static void txn_put_list(iss_store_txn_t *txn, const char *rel,
                         const apr_array_header_t *list, apr_pool_t *p)
{
    const char *k = list_key(rel, p);

    if (list->nelts == 0) {
        iss_store_txn_delete(txn, k, strlen(k));
    }
    else {
        const char *v = list_encode(list, p);

        iss_store_txn_put(txn, k, strlen(k), v, strlen(v));
    }
}

static apr_status_t txn_total(iss_store_txn_t *txn, total_t *t, apr_pool_t *p)
{
    void *v;
    apr_size_t vl;
    apr_status_t rv = iss_store_txn_get(txn, TOTAL_KEY, strlen(TOTAL_KEY), &v,
                                        &vl, p);

    t->blobs = t->bytes = 0;
    if (rv == APR_NOTFOUND) {
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return total_decode(v, vl, t) ? APR_SUCCESS : ISS_STORE_EDAMAGED;
}

static void txn_put_total(iss_store_txn_t *txn, const total_t *t,
                          apr_pool_t *p)
{
    const char *v = apr_psprintf(p, "IVT1 %" APR_UINT64_T_FMT " %"
                                 APR_UINT64_T_FMT, t->blobs, t->bytes);

    iss_store_txn_put(txn, TOTAL_KEY, strlen(TOTAL_KEY), v, strlen(v));
}

/* *found = 0 when absent. */
static apr_status_t txn_blob(iss_store_txn_t *txn, const char *hex,
                             blob_t *b, int *found, apr_pool_t *p)
{
    void *v;
    apr_size_t vl;
    apr_status_t rv = txn_get_found(txn, apr_pstrcat(p, BLOB_PFX, hex, NULL),
                                    &v, &vl, found, p);

    if (rv != APR_SUCCESS || !*found) {
        return rv;
    }
    if (!blob_decode(v, vl, b)) {
        *found = 0;
        return ISS_STORE_EDAMAGED;
    }
    return APR_SUCCESS;
}

static const iss_manifest_limits_t any_manifest = {
    0xffffffffu, APR_UINT64_MAX, NULL
};

/* The distinct chunk ids of @a m (hex), in order of first appearance. */
static apr_array_header_t *distinct_ids(const iss_manifest_t *m,
                                        apr_pool_t *p)
{
    apr_hash_t *seen = apr_hash_make(p);
    apr_array_header_t *ids = apr_array_make(p, (int)m->count,
                                             sizeof(apr_uint32_t));
    apr_uint32_t i;

    for (i = 0; i < m->count; i++) {
        if (apr_hash_get(seen, m->entries[i].sha256, ISS_DIGEST_SHA256_LEN)
            == NULL) {
            apr_hash_set(seen, m->entries[i].sha256, ISS_DIGEST_SHA256_LEN,
                         "");
            APR_ARRAY_PUSH(ids, apr_uint32_t) = i;
        }
    }
    return ids;
}

/* A packed content lost its last reference: so does each of its chunks
 * once; chunks left without one are pushed on @a freed ("c/<hex>"), and
 * so are live links that no chunk uses any more ("l/<key>"). */
static apr_status_t txn_release_chunks(iss_store_txn_t *txn, const char *hex,
                                       apr_array_header_t *freed,
                                       apr_pool_t *p)
{
    const char *mk = apr_pstrcat(p, MAN_PFX, hex, NULL);
    apr_hash_t *unlive = apr_hash_make(p);   /* key -> hash of hex ids */
    apr_hash_index_t *hi;
    apr_array_header_t *ids;
    iss_manifest_t *m;
    void *v;
    apr_size_t vl;
    apr_status_t rv;
    int i;

    rv = iss_store_txn_get(txn, mk, strlen(mk), &v, &vl, p);
    if (rv != APR_SUCCESS) {
        return rv == APR_NOTFOUND ? ISS_STORE_EDAMAGED : rv;
    }
    if (iss_manifest_parse(v, vl, &any_manifest, &m, p) != APR_SUCCESS) {
        return ISS_STORE_EDAMAGED;
    }
    ids = distinct_ids(m, p);
    for (i = 0; i < ids->nelts; i++) {
        const iss_manifest_entry_t *e
            = &m->entries[APR_ARRAY_IDX(ids, i, apr_uint32_t)];
        const char *ch = hexof(e->sha256, p);
        crec_t cr;
        int found;

        if ((rv = txn_crec(txn, ch, &cr, &found, p)) != APR_SUCCESS) {
            return rv;
        }
        if (!found || cr.refs == 0) {
            return ISS_STORE_EDAMAGED;
        }
        if (--cr.refs == 0) {
            const char *ck = apr_pstrcat(p, CHUNK_PFX, ch, NULL);

            iss_store_txn_delete(txn, ck, strlen(ck));
            if (cr.key) {
                apr_hash_t *set = apr_hash_get(unlive, cr.key,
                                               APR_HASH_KEY_STRING);

                if (set == NULL) {
                    set = apr_hash_make(p);
                    apr_hash_set(unlive, cr.key, APR_HASH_KEY_STRING, set);
                }
                apr_hash_set(set, ch, APR_HASH_KEY_STRING, "");
            }
            else if (freed) {
                APR_ARRAY_PUSH(freed, const char *)
                    = apr_pstrcat(p, "c/", ch, NULL);
            }
        }
        else {
            txn_put_crec(txn, ch, &cr, p);
        }
    }
    /* Each live file once: its list without the chunks that went. */
    for (hi = apr_hash_first(p, unlive); hi; hi = apr_hash_next(hi)) {
        const char *key = apr_hash_this_key(hi);
        apr_hash_t *set = apr_hash_this_val(hi);
        lrec_t l;
        int found, j, k = 0;

        if ((rv = txn_lrec(txn, key, &l, &found, p)) != APR_SUCCESS) {
            return rv;
        }
        if (!found) {
            continue;      /* released already (its chunks were lost) */
        }
        for (j = 0; j < l.ids->nelts; j++) {
            const char *id = APR_ARRAY_IDX(l.ids, j, const char *);

            if (apr_hash_get(set, id, APR_HASH_KEY_STRING) == NULL) {
                APR_ARRAY_IDX(l.ids, k++, const char *) = id;
            }
        }
        l.ids->nelts = k;
        txn_put_lrec(txn, key, &l, p);
        if (k == 0 && freed) {
            APR_ARRAY_PUSH(freed, const char *)
                = apr_pstrcat(p, "l/", key, NULL);
        }
    }
    return APR_SUCCESS;
}

/* Count one reference more (+1) or less (-1) to the content @a e; a
 * content that loses its last reference is pushed on @a freed (hex). */
static apr_status_t txn_ref(iss_store_txn_t *txn, const vent_t *e, int delta,
                            total_t *t, apr_array_header_t *freed,
                            apr_pool_t *p)
{
    const char *hex = hexof(e->digest, p);
    const char *k = apr_pstrcat(p, BLOB_PFX, hex, NULL);
    blob_t b = { 0, e->size, 0 };
    int found;
    apr_status_t rv;

    if ((rv = txn_blob(txn, hex, &b, &found, p)) != APR_SUCCESS) {
        return rv;
    }
    if (delta > 0) {
        if (!found) {
            b.refs = 0;
            b.size = e->size;
            t->blobs++;
            t->bytes += e->size;
        }
        b.refs++;
    }
    else {
        if (!found || b.refs == 0) {
            return ISS_STORE_EDAMAGED;   /* a reference nobody counted */
        }
        if (--b.refs == 0) {
            const char *mk = apr_pstrcat(p, MAN_PFX, hex, NULL);

            if (b.packed
                && (rv = txn_release_chunks(txn, hex, freed, p))
                   != APR_SUCCESS) {
                return rv;
            }
            iss_store_txn_delete(txn, k, strlen(k));
            iss_store_txn_delete(txn, mk, strlen(mk));
            t->blobs = t->blobs ? t->blobs - 1 : 0;
            t->bytes = t->bytes >= b.size ? t->bytes - b.size : 0;
            if (freed) {
                APR_ARRAY_PUSH(freed, const char *) = hex;
            }
            return APR_SUCCESS;
        }
    }
    txn_put_blob(txn, hex, &b, p);
    return APR_SUCCESS;
}

/* ---- files -------------------------------------------------------------- */

static apr_status_t make_dirs(iss_store_t *store, apr_pool_t *p)
{
    static const char *const sub[] = { "data", "pending", "trash",
                                       "chunks", "live" };
    apr_status_t rv;
    int i;

    for (i = 0; i < 5; i++) {
        rv = apr_dir_make_recursive(vpath(store, sub[i], NULL, p),
                                    APR_FPROT_UREAD | APR_FPROT_UWRITE
                                    | APR_FPROT_UEXECUTE, p);
        if (rv != APR_SUCCESS && !APR_STATUS_IS_EEXIST(rv)) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

static apr_status_t sync_dir(const char *dir, apr_pool_t *p)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    apr_status_t rv = APR_SUCCESS;

    (void)p;
    if (fd < 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    if (fsync(fd) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    close(fd);
    return rv;
}

/* Copy @a from to @a to (a new file, written under a temporary name and
 * renamed): the hold across file systems. */
static apr_status_t copy_file(const char *from, const char *to, apr_pool_t *p)
{
    const char *tmp = apr_pstrcat(p, to, ".part", NULL);
    apr_status_t rv;

    rv = apr_file_copy(from, tmp, APR_FPROT_UREAD | APR_FPROT_UWRITE, p);
    if (rv == APR_SUCCESS) {
        rv = apr_file_rename(tmp, to, p);
    }
    if (rv != APR_SUCCESS) {
        (void)apr_file_remove(tmp, p);
    }
    return rv;
}

/* ---- the hold ----------------------------------------------------------- */

static apr_status_t hold_cleanup(void *data)
{
    iss_versions_release(data);
    return APR_SUCCESS;
}

apr_status_t iss_versions_hold(iss_store_t *store, const char *path,
                               const char *rel, const char *tag, int n,
                               iss_versions_hold_t **hp, apr_pool_t *pool)
{
    iss_versions_hold_t *h;
    apr_status_t rv;
    iss_manifest_limits_t lim = { 0xffffffffu, APR_UINT64_MAX, NULL };
    iss_manifest_t *m;
    int found;

    *hp = NULL;
    if (!store || !path || !rel || !tag || strchr(tag, '/')) {
        return APR_EINVAL;
    }
    h = apr_pcalloc(pool, sizeof(*h));
    h->pool = pool;
    h->path = apr_pstrdup(pool, path);
    h->rel = apr_pstrdup(pool, rel);
    rv = apr_stat(&h->fi, path, APR_FINFO_LINK | APR_FINFO_IDENT
                  | APR_FINFO_SIZE | APR_FINFO_MTIME | APR_FINFO_TYPE, pool);
    if (rv != APR_SUCCESS || h->fi.filetype != APR_REG) {
        return APR_NOTFOUND;
    }
    if ((rv = make_dirs(store, pool)) != APR_SUCCESS) {
        return rv;
    }
    h->link = vpath(store, "pending", apr_psprintf(pool, "%s.%d", tag, n),
                    pool);
    if (link(path, h->link) != 0) {
        int e = errno;

        if (e == ENOENT) {
            return APR_NOTFOUND;   /* gone meanwhile */
        }
        if (e != EXDEV && e != EPERM && e != EMLINK) {
            return APR_FROM_OS_ERROR(e);
        }
        /* Another file system (or no hard links there): a copy.  The
         * copy's identity is its own; the digest is then computed at
         * settle time unless the store's record holds for the file. */
        if ((rv = copy_file(path, h->link, pool)) != APR_SUCCESS) {
            return rv;
        }
    }
    apr_pool_cleanup_register(pool, h, hold_cleanup, apr_pool_cleanup_null);
    /* The records the store holds for this inode, while it is current. */
    rv = iss_filedigest_get(store, rel, &h->fi, &h->d, &found, pool);
    h->have_digest = rv == APR_SUCCESS && found;
    if (iss_chunkidx_lookup(store, rel, &h->fi, &lim, &m, pool)
        == APR_SUCCESS) {
        h->m = m;
    }
    *hp = h;
    return APR_SUCCESS;
}

void iss_versions_release(iss_versions_hold_t *h)
{
    if (h && !h->released) {
        h->released = 1;
        if (h->link) {
            (void)unlink(h->link);
        }
    }
}

/* ---- retention ---------------------------------------------------------- */

typedef struct retain_t {
    iss_store_t *store;
    const char *rel;
    vent_t e;
    const char *link;         /* pending link */
    const char *data;         /* versions/data/<hex> */
    const unsigned char *man; /* encoded manifest, or NULL */
    apr_size_t manlen;
    const iss_versions_limits_t *lim;
    apr_time_t now;
    apr_array_header_t *freed;   /* hex of contents without reference */
    apr_uint64_t total_bytes;
    int linked;
} retain_t;

/* Drop the entries of @a list the per-file limits exclude (never the
 * first, the one just added); references released. */
static apr_status_t prune_list(iss_store_txn_t *txn, apr_array_header_t *list,
                               const iss_versions_limits_t *lim,
                               apr_time_t now, total_t *t,
                               apr_array_header_t *freed, apr_uint64_t *pruned,
                               apr_pool_t *p)
{
    apr_array_header_t *keep = apr_array_make(p, list->nelts, sizeof(vent_t));
    apr_status_t rv;
    int i;

    for (i = 0; i < list->nelts; i++) {
        const vent_t *e = &APR_ARRAY_IDX(list, i, vent_t);
        int drop = lim && ((lim->max_count
                            && (apr_uint64_t)keep->nelts >= lim->max_count)
                           || (lim->max_age && now - e->replaced
                                                > lim->max_age));

        if (drop) {
            if ((rv = txn_ref(txn, e, -1, t, freed, p)) != APR_SUCCESS) {
                return rv;
            }
            if (pruned) {
                (*pruned)++;
            }
        }
        else {
            *(vent_t *)apr_array_push(keep) = *e;
        }
    }
    list->nelts = 0;
    apr_array_cat(list, keep);
    return APR_SUCCESS;
}

static apr_status_t retain_txn(void *baton, iss_store_txn_t *txn)
{
    retain_t *b = baton;
    apr_pool_t *p = b->freed->pool;
    apr_array_header_t *list;
    total_t t;
    apr_status_t rv;
    int i, had = -1;

    if ((rv = txn_list(txn, b->rel, &list, p)) != APR_SUCCESS
        || (rv = txn_total(txn, &t, p)) != APR_SUCCESS) {
        return rv;
    }
    {
        blob_t cur;
        int found;

        if ((rv = txn_blob(txn, hexof(b->e.digest, p), &cur, &found, p))
            != APR_SUCCESS) {
            return rv;
        }
        /* Under the store's lock: no collection removes data/<hex>
         * between this link and the reference counted below.  A content
         * in the chunk store needs no data file. */
        if (!(found && cur.packed)) {
            if (link(b->link, b->data) != 0 && errno != EEXIST) {
                return APR_FROM_OS_ERROR(errno);
            }
            b->linked = 1;
            if ((rv = sync_dir(apr_pstrndup(p, b->data, strrchr(b->data, '/')
                                                         - b->data), p))
                != APR_SUCCESS) {
                return rv;
            }
        }
    }
    for (i = 0; i < list->nelts; i++) {
        if (memcmp(APR_ARRAY_IDX(list, i, vent_t).digest, b->e.digest,
                   ISS_DIGEST_SHA256_LEN) == 0) {
            had = i;
            break;
        }
    }
    if (had >= 0) {
        /* The same content again: it moves to the front, one entry. */
        memmove(list->elts + sizeof(vent_t), list->elts,
                (apr_size_t)had * sizeof(vent_t));
        APR_ARRAY_IDX(list, 0, vent_t) = b->e;
    }
    else {
        if ((rv = txn_ref(txn, &b->e, +1, &t, NULL, p)) != APR_SUCCESS) {
            return rv;
        }
        apr_array_push(list);
        memmove(list->elts + sizeof(vent_t), list->elts,
                (apr_size_t)(list->nelts - 1) * sizeof(vent_t));
        APR_ARRAY_IDX(list, 0, vent_t) = b->e;
        if (b->man) {
            const char *mk = apr_pstrcat(p, MAN_PFX, hexof(b->e.digest, p),
                                         NULL);

            iss_store_txn_put(txn, mk, strlen(mk), b->man, b->manlen);
        }
    }
    if ((rv = prune_list(txn, list, b->lim, b->now, &t, b->freed, NULL, p))
        != APR_SUCCESS) {
        return rv;
    }
    txn_put_list(txn, b->rel, list, p);
    txn_put_total(txn, &t, p);
    b->total_bytes = t.bytes;
    return APR_SUCCESS;
}

/* Remove data/<hex> if no reference names it (checked under the store's
 * lock, where the rename into the trash happens too). */
typedef struct collect_t {
    int chunk;                   /* 1: a chunk file, 2: a live link, 0: a
                                  * data file */
    const char *hex;
    const char *data;
    const char *trash;
    apr_pool_t *pool;
    int moved;
} collect_t;

static apr_status_t collect_txn(void *baton, iss_store_txn_t *txn)
{
    collect_t *c = baton;
    blob_t b;
    int found;
    apr_status_t rv;

    if (c->chunk) {
        const char *ck = apr_pstrcat(c->pool, c->chunk == 2 ? LIVE_PFX
                                                             : CHUNK_PFX,
                                     c->hex, NULL);
        void *v;
        apr_size_t vl;

        rv = iss_store_txn_get(txn, ck, strlen(ck), &v, &vl, c->pool);
        if (rv == APR_SUCCESS) {
            return APR_SUCCESS;      /* referenced (again): it stays */
        }
        if (rv != APR_NOTFOUND) {
            return rv;
        }
    }
    else {
        if ((rv = txn_blob(txn, c->hex, &b, &found, c->pool))
            != APR_SUCCESS) {
            return rv;
        }
        if (found && !b.packed) {
            return APR_SUCCESS;      /* referenced (again): it stays */
        }
    }
    if (rename(c->data, c->trash) != 0) {
        return errno == ENOENT ? APR_SUCCESS : APR_FROM_OS_ERROR(errno);
    }
    c->moved = 1;
    return APR_SUCCESS;
}

static apr_status_t collect(iss_store_t *store, const char *hex,
                            apr_uint64_t *nblobs, apr_uint64_t *nbytes,
                            apr_pool_t *p)
{
    collect_t c;
    apr_finfo_t fi;
    apr_status_t rv;

    c.chunk = strncmp(hex, "c/", 2) == 0 ? 1
              : strncmp(hex, "l/", 2) == 0 ? 2 : 0;
    if (c.chunk) {
        hex += 2;
    }
    c.hex = hex;
    c.data = vpath(store, c.chunk == 2 ? "live" : c.chunk ? "chunks" : "data",
                   hex, p);
    c.trash = vpath(store, "trash", apr_psprintf(p, "%s.%" APR_PID_T_FMT
                                                 ".%" APR_UINT64_T_FMT, hex,
                                                 getpid(),
                                                 (apr_uint64_t)apr_time_now()),
                    p);
    c.pool = p;
    c.moved = 0;
    if ((rv = iss_store_txn_ex(store, collect_txn, &c, ISS_STORE_LAZY, p))
        != APR_SUCCESS) {
        return rv;
    }
    if (c.moved) {
        if (c.chunk != 2 && nbytes
            && apr_stat(&fi, c.trash, APR_FINFO_SIZE, p) == APR_SUCCESS) {
            *nbytes += (apr_uint64_t)fi.size;
        }
        if (nblobs && c.chunk != 2) {
            (*nblobs)++;
        }
        if (unlink(c.trash) != 0 && errno != ENOENT) {
            return APR_FROM_OS_ERROR(errno);
        }
    }
    return APR_SUCCESS;
}

/* One version of some file, for the limits over all files. */
typedef struct gent_t {
    const char *rel;
    vent_t e;
} gent_t;

typedef struct gather_t {
    apr_array_header_t *all;     /* gent_t */
    apr_pool_t *pool;
    apr_uint64_t files;
    int damaged;
} gather_t;

static int gather_one(void *baton, const void *key, apr_size_t klen,
                      const void *val, apr_size_t vlen)
{
    gather_t *g = baton;
    apr_array_header_t *list;
    const char *rel = apr_pstrmemdup(g->pool, (const char *)key
                                     + strlen(LIST_PFX),
                                     klen - strlen(LIST_PFX));
    int i;

    if (list_decode(val, vlen, &list, g->pool) != APR_SUCCESS) {
        g->damaged = 1;
        return 0;
    }
    g->files++;
    for (i = 0; i < list->nelts; i++) {
        gent_t *ge = apr_array_push(g->all);

        ge->rel = rel;
        ge->e = APR_ARRAY_IDX(list, i, vent_t);
    }
    return 0;
}

static int by_age(const void *a, const void *b)
{
    const gent_t *x = a, *y = b;

    return x->e.replaced < y->e.replaced ? -1
           : x->e.replaced > y->e.replaced ? 1 : 0;
}

typedef struct prune_t {
    apr_array_header_t *cand;    /* gent_t, oldest first */
    const iss_versions_limits_t *lim;
    apr_time_t now;
    apr_array_header_t *freed;
    apr_uint64_t pruned;
} prune_t;

static apr_status_t prune_txn(void *baton, iss_store_txn_t *txn)
{
    prune_t *b = baton;
    apr_pool_t *p = b->freed->pool;
    total_t t;
    apr_status_t rv;
    int i, j;

    if ((rv = txn_total(txn, &t, p)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < b->cand->nelts; i++) {
        const gent_t *g = &APR_ARRAY_IDX(b->cand, i, gent_t);
        int expired = b->lim->max_age
                      && b->now - g->e.replaced > b->lim->max_age;
        int over = b->lim->max_bytes && t.bytes > b->lim->max_bytes;
        apr_array_header_t *list;

        if (!expired && !over) {
            break;                   /* oldest first: nothing more to do */
        }
        if ((rv = txn_list(txn, g->rel, &list, p)) != APR_SUCCESS) {
            return rv;
        }
        /* Re-read: a write may have changed the list since it was
         * gathered; only the entry seen then, if still there, goes. */
        for (j = 0; j < list->nelts; j++) {
            vent_t *e = &APR_ARRAY_IDX(list, j, vent_t);

            if (memcmp(e->digest, g->e.digest, ISS_DIGEST_SHA256_LEN) == 0
                && e->replaced == g->e.replaced) {
                if ((rv = txn_ref(txn, e, -1, &t, b->freed, p))
                    != APR_SUCCESS) {
                    return rv;
                }
                memmove(e, e + 1, (apr_size_t)(list->nelts - j - 1)
                                  * sizeof(vent_t));
                list->nelts--;
                b->pruned++;
                txn_put_list(txn, g->rel, list, p);
                break;
            }
        }
    }
    txn_put_total(txn, &t, p);
    return APR_SUCCESS;
}

/* The limits over all files (size, age): oldest versions dropped until
 * they hold; their data collected. */
static apr_status_t prune_all(iss_store_t *store,
                              const iss_versions_limits_t *lim,
                              apr_time_t now, apr_uint64_t *pruned,
                              apr_uint64_t *nblobs, apr_uint64_t *nbytes,
                              apr_pool_t *pool)
{
    gather_t g;
    prune_t b;
    apr_pool_t *p;
    apr_status_t rv;
    int i;

    if (!lim || (!lim->max_bytes && !lim->max_age)) {
        return APR_SUCCESS;
    }
    if ((rv = apr_pool_create(&p, pool)) != APR_SUCCESS) {
        return rv;
    }
    g.all = apr_array_make(p, 64, sizeof(gent_t));
    g.pool = p;
    g.files = 0;
    g.damaged = 0;
    rv = iss_store_iterate(store, LIST_PFX, strlen(LIST_PFX), gather_one, &g,
                           p);
    if (rv == APR_SUCCESS) {
        qsort(g.all->elts, (size_t)g.all->nelts, sizeof(gent_t), by_age);
        b.cand = g.all;
        b.lim = lim;
        b.now = now;
        b.freed = apr_array_make(p, 8, sizeof(const char *));
        b.pruned = 0;
        rv = iss_store_txn_ex(store, prune_txn, &b, ISS_STORE_LAZY, p);
        if (rv == APR_SUCCESS && pruned) {
            *pruned += b.pruned;
        }
        for (i = 0; rv == APR_SUCCESS && i < b.freed->nelts; i++) {
            rv = collect(store, APR_ARRAY_IDX(b.freed, i, const char *),
                         nblobs, nbytes, p);
        }
    }
    apr_pool_destroy(p);
    return rv;
}

apr_status_t iss_versions_settle(iss_store_t *store, iss_versions_hold_t *h,
                                 const iss_versions_limits_t *lim,
                                 const unsigned char *new_digest,
                                 apr_time_t now, int *retained,
                                 apr_pool_t *pool)
{
    apr_finfo_t now_fi, held;
    retain_t b;
    apr_status_t rv;
    int i;

    *retained = 0;
    if (!h || h->released) {
        return APR_SUCCESS;
    }
    /* Still the same inode at the path: the write replaced nothing. */
    if (apr_stat(&now_fi, h->path, APR_FINFO_LINK | APR_FINFO_IDENT, pool)
        == APR_SUCCESS && now_fi.filetype == APR_REG
        && now_fi.inode == h->fi.inode && now_fi.device == h->fi.device) {
        iss_versions_release(h);
        return APR_SUCCESS;
    }
    /* The held inode left its path: chunks versions use in place in it
     * are moved out by iss_versions_after() (or the collection). */
    h->gone = 1;
    memset(&b, 0, sizeof(b));
    rv = apr_stat(&held, h->link, APR_FINFO_IDENT | APR_FINFO_SIZE
                  | APR_FINFO_MTIME, pool);
    if (rv != APR_SUCCESS) {
        iss_versions_release(h);
        return rv;
    }
    /* The store's digest, if it was of this inode as it still is (a copy
     * has an identity of its own: its size is compared, and the digest
     * is taken only if the original's record held when copied). */
    if (h->have_digest && held.size == h->fi.size
        && (held.inode != h->fi.inode
            || iss_filedigest_matches(&h->d, &held))) {
        memcpy(b.e.digest, h->d.sha256, ISS_DIGEST_SHA256_LEN);
    }
    else {
        apr_file_t *f;
        iss_filedigest_t d;
        int stable;

        rv = apr_file_open(&f, h->link, APR_FOPEN_READ, APR_FPROT_OS_DEFAULT,
                           pool);
        if (rv == APR_SUCCESS) {
            rv = iss_filedigest_compute_file(f, &d, 0, &stable, pool);
            apr_file_close(f);
        }
        if (rv != APR_SUCCESS) {
            iss_versions_release(h);
            return rv;
        }
        memcpy(b.e.digest, d.sha256, ISS_DIGEST_SHA256_LEN);
        h->m = NULL;   /* made for other bytes, maybe */
    }
    if (new_digest
        && memcmp(new_digest, b.e.digest, ISS_DIGEST_SHA256_LEN) == 0) {
        iss_versions_release(h);     /* rewritten with the same bytes */
        return APR_SUCCESS;
    }
    b.store = store;
    b.rel = h->rel;
    b.e.size = (apr_uint64_t)held.size;
    b.e.replaced = now;
    b.link = h->link;
    b.data = vpath(store, "data", hexof(b.e.digest, pool), pool);
    b.lim = lim;
    b.now = now;
    b.freed = apr_array_make(pool, 4, sizeof(const char *));
    if (h->m && h->m->file_size == b.e.size
        && memcmp(h->m->file_sha256, b.e.digest, ISS_DIGEST_SHA256_LEN) == 0) {
        unsigned char *buf;
        apr_size_t len;

        if (iss_manifest_encode(h->m, &buf, &len, pool) == APR_SUCCESS) {
            b.man = buf;
            b.manlen = len;
        }
    }
    rv = iss_store_txn_ex(store, retain_txn, &b, ISS_STORE_LAZY, pool);
    iss_versions_release(h);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *retained = 1;
    h->kept = 1;
    memcpy(h->kept_digest, b.e.digest, ISS_DIGEST_SHA256_LEN);
    for (i = 0; i < b.freed->nelts; i++) {
        if ((rv = collect(store, APR_ARRAY_IDX(b.freed, i, const char *),
                          NULL, NULL, pool)) != APR_SUCCESS) {
            return rv;
        }
    }
    if (lim && lim->max_bytes && b.total_bytes > lim->max_bytes) {
        rv = prune_all(store, lim, now, NULL, NULL, NULL, pool);
    }
    return rv;
}

typedef struct forget_t {
    const char *rel;
    apr_array_header_t *freed;
    apr_uint64_t dropped;
} forget_t;

static apr_status_t forget_txn(void *baton, iss_store_txn_t *txn)
{
    forget_t *b = baton;
    apr_pool_t *p = b->freed->pool;
    apr_array_header_t *list;
    total_t t;
    apr_status_t rv;
    int i;

    if ((rv = txn_list(txn, b->rel, &list, p)) != APR_SUCCESS
        || (rv = txn_total(txn, &t, p)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < list->nelts; i++) {
        if ((rv = txn_ref(txn, &APR_ARRAY_IDX(list, i, vent_t), -1, &t,
                          b->freed, p)) != APR_SUCCESS) {
            return rv;
        }
    }
    b->dropped = (apr_uint64_t)list->nelts;
    list->nelts = 0;
    txn_put_list(txn, b->rel, list, p);
    txn_put_total(txn, &t, p);
    return APR_SUCCESS;
}

apr_status_t iss_versions_forget(iss_store_t *store, const char *rel,
                                 apr_uint64_t *dropped, apr_pool_t *pool)
{
    forget_t b;
    apr_status_t rv;
    int i;

    if (!store || !rel) {
        return APR_EINVAL;
    }
    b.rel = rel;
    b.freed = apr_array_make(pool, 4, sizeof(const char *));
    b.dropped = 0;
    /* Durable when it returns: an erasure the admin was told of. */
    if ((rv = iss_store_txn(store, forget_txn, &b, pool)) != APR_SUCCESS) {
        return rv;
    }
    if (dropped) {
        *dropped = b.dropped;
    }
    for (i = 0; i < b.freed->nelts; i++) {
        if ((rv = collect(store, APR_ARRAY_IDX(b.freed, i, const char *),
                          NULL, NULL, pool)) != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

/* ---- finding and reading ------------------------------------------------ */

static apr_status_t get_list(iss_store_t *store, const char *rel,
                             apr_array_header_t **list, apr_pool_t *p)
{
    const char *k = list_key(rel, p);
    void *v;
    apr_size_t vl;
    apr_status_t rv = iss_store_get(store, k, strlen(k), &v, &vl, p);

    if (rv == APR_NOTFOUND) {
        *list = apr_array_make(p, 1, sizeof(vent_t));
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return list_decode(v, vl, list, p);
}

static iss_version_t *make_version(iss_store_t *store, const char *rel,
                                   const vent_t *e, apr_pool_t *p)
{
    iss_version_t *v = apr_pcalloc(p, sizeof(*v));
    const char *mk = apr_pstrcat(p, MAN_PFX, hexof(e->digest, p), NULL);
    iss_manifest_limits_t lim = { 0xffffffffu, APR_UINT64_MAX, NULL };
    iss_manifest_t *m;
    void *val;
    apr_size_t vl;

    v->rel = apr_pstrdup(p, rel);
    memcpy(v->digest, e->digest, ISS_DIGEST_SHA256_LEN);
    v->size = (apr_off_t)e->size;
    v->replaced = e->replaced;
    if (iss_store_get(store, mk, strlen(mk), &val, &vl, p) == APR_SUCCESS
        && iss_manifest_parse(val, vl, &lim, &m, p) == APR_SUCCESS
        && m->file_size == e->size
        && memcmp(m->file_sha256, e->digest, ISS_DIGEST_SHA256_LEN) == 0) {
        v->manifest = m;
    }
    return v;
}

apr_status_t iss_versions_find(iss_store_t *store, const char *rel,
                               const unsigned char digest[ISS_DIGEST_SHA256_LEN],
                               iss_version_t **v, apr_pool_t *pool)
{
    apr_array_header_t *list;
    apr_status_t rv;
    int i;

    *v = NULL;
    if (!store || !rel || !digest) {
        return APR_EINVAL;
    }
    if ((rv = get_list(store, rel, &list, pool)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < list->nelts; i++) {
        const vent_t *e = &APR_ARRAY_IDX(list, i, vent_t);

        if (memcmp(e->digest, digest, ISS_DIGEST_SHA256_LEN) == 0) {
            *v = make_version(store, rel, e, pool);
            return APR_SUCCESS;
        }
    }
    return APR_NOTFOUND;
}

apr_status_t iss_versions_list(iss_store_t *store, const char *rel,
                               apr_array_header_t **versions,
                               apr_pool_t *pool)
{
    apr_array_header_t *list;
    apr_status_t rv;
    int i;

    *versions = NULL;
    if (!store || !rel) {
        return APR_EINVAL;
    }
    if ((rv = get_list(store, rel, &list, pool)) != APR_SUCCESS) {
        return rv;
    }
    *versions = apr_array_make(pool, list->nelts, sizeof(iss_version_t *));
    for (i = 0; i < list->nelts; i++) {
        APR_ARRAY_PUSH(*versions, iss_version_t *)
            = make_version(store, rel, &APR_ARRAY_IDX(list, i, vent_t), pool);
    }
    return APR_SUCCESS;
}

static apr_status_t reader_cleanup(void *data)
{
    iss_version_reader_t *rd = data;

    if (!rd->closed) {
        rd->closed = 1;
        if (rd->f) {
            apr_file_close(rd->f);
        }
    }
    return APR_SUCCESS;
}

/* APR_SUCCESS if @a v's content is in the chunk store, APR_NOTFOUND if
 * not (or no longer kept at all), store errors. */
static apr_status_t is_packed(iss_store_t *store, const iss_version_t *v,
                              apr_pool_t *p)
{
    const char *k = apr_pstrcat(p, BLOB_PFX, hexof(v->digest, p), NULL);
    void *val;
    apr_size_t vl;
    blob_t b;
    apr_status_t rv = iss_store_get(store, k, strlen(k), &val, &vl, p);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    return blob_decode(val, vl, &b) && b.packed ? APR_SUCCESS : APR_NOTFOUND;
}

static apr_status_t open_packed(iss_store_t *store, const iss_version_t *v,
                                iss_version_reader_t *rd,
                                iss_version_reader_t **rdp)
{
    if (v->manifest == NULL || v->manifest->file_size != (apr_uint64_t)v->size
        || memcmp(v->manifest->file_sha256, v->digest,
                  ISS_DIGEST_SHA256_LEN) != 0) {
        return APR_EGENERAL;      /* a packed content keeps its manifest */
    }
    /* "<dir>/chunks/" and room for a chunk's name. */
    {
        const char *dir = vpath(store, "chunks", NULL, rd->pool);
        apr_size_t n = strlen(dir);
        char *buf = apr_palloc(rd->pool, n + 1 + ISS_HEX_ID_LEN + 1);

        memcpy(buf, dir, n);
        buf[n] = '/';
        buf[n + 1] = '\0';
        rd->chunks = buf;
        rd->chunks_len = n + 1;
    }
    rd->m = v->manifest;
    rd->size = (apr_uint64_t)v->size;
    rd->cbuf = apr_palloc(rd->pool, v->manifest->params.max_size
                                    ? v->manifest->params.max_size : 1);
    *rdp = rd;
    return APR_SUCCESS;
}

apr_status_t iss_versions_open(iss_store_t *store, const iss_version_t *v,
                               iss_version_reader_t **rdp, apr_pool_t *pool)
{
    iss_version_reader_t *rd;
    apr_finfo_t fi;
    apr_os_file_t fd;
    apr_status_t rv;

    *rdp = NULL;
    if (!store || !v) {
        return APR_EINVAL;
    }
    rd = apr_pcalloc(pool, sizeof(*rd));
    rd->pool = pool;
    rd->store = store;
    rd->cidx = -1;
    /* Packed already, or the data file is gone because it was packed
     * meanwhile (the packing commits before it removes the file). */
    if ((rv = is_packed(store, v, pool)) == APR_SUCCESS) {
        return open_packed(store, v, rd, rdp);
    }
    if (rv != APR_NOTFOUND) {
        return rv;
    }
    rv = apr_file_open(&rd->f, vpath(store, "data", hexof(v->digest, pool),
                                     pool),
                       APR_FOPEN_READ, APR_FPROT_OS_DEFAULT, pool);
    if (rv != APR_SUCCESS) {
        if (APR_STATUS_IS_ENOENT(rv)
            && (rv = is_packed(store, v, pool)) == APR_SUCCESS) {
            return open_packed(store, v, rd, rdp);
        }
        return rv == APR_NOTFOUND || APR_STATUS_IS_ENOENT(rv)
               ? APR_EGENERAL : rv;
    }
    apr_pool_cleanup_register(pool, rd, reader_cleanup,
                              apr_pool_cleanup_null);
    if ((rv = apr_file_info_get(&fi, APR_FINFO_SIZE, rd->f)) != APR_SUCCESS) {
        iss_versions_close(rd);
        return rv;
    }
    if (fi.size != v->size) {
        iss_versions_close(rd);
        return APR_EGENERAL;       /* changed behind our back */
    }
    apr_os_file_get(&fd, rd->f);
    rd->fd = fd;
    rd->size = (apr_uint64_t)v->size;
    if (v->manifest && v->manifest->file_size == rd->size
        && memcmp(v->manifest->file_sha256, v->digest,
                  ISS_DIGEST_SHA256_LEN) == 0) {
        rd->m = v->manifest;
        rd->cbuf = apr_palloc(pool, v->manifest->params.max_size
                                    ? v->manifest->params.max_size : 1);
    }
    else {
        /* No chunk ids: the whole digest, once, before any byte goes. */
        iss_filedigest_t d;
        int stable;

        rv = iss_filedigest_compute_file(rd->f, &d, 0, &stable, pool);
        if (rv != APR_SUCCESS || (apr_uint64_t)d.size != rd->size
            || memcmp(d.sha256, v->digest, ISS_DIGEST_SHA256_LEN) != 0) {
            iss_versions_close(rd);
            return rv != APR_SUCCESS ? rv : APR_EGENERAL;
        }
    }
    *rdp = rd;
    return APR_SUCCESS;
}

/* A chunk of a packed content that is not in chunks/: used in place in a
 * live file (V/c/<id> says where), or moved since (into the chunk store,
 * or to another live file: the record is read again). */
static apr_status_t load_live(iss_version_reader_t *rd,
                              const iss_manifest_entry_t *e)
{
    const char *hex = hexof(e->sha256, rd->pool);
    const char *ck = apr_pstrcat(rd->pool, CHUNK_PFX, hex, NULL);
    apr_status_t rv;
    int tries, fd;

    for (tries = 0; tries < 3; tries++) {
        crec_t cr;
        void *v;
        apr_size_t vl;
        const char *at;

        rv = iss_store_get(rd->store, ck, strlen(ck), &v, &vl, rd->pool);
        if (rv != APR_SUCCESS) {
            return rv == APR_NOTFOUND ? APR_EGENERAL : rv;
        }
        if (!crec_decode(v, vl, &cr, rd->pool) || cr.len != e->length) {
            return APR_EGENERAL;
        }
        at = cr.key ? vpath(rd->store, "live", cr.key, rd->pool)
                    : rd->chunks;
        if ((fd = open(at, O_RDONLY)) < 0) {
            if (errno == ENOENT) {
                continue;              /* moved meanwhile: look again */
            }
            return APR_FROM_OS_ERROR(errno);
        }
        rv = iss_pread_full(fd, rd->cbuf, e->length,
                            cr.key ? (apr_off_t)cr.off : 0);
        close(fd);
        return rv;
    }
    return APR_EGENERAL;
}

/* Load chunk @a i into the cache, checked against its id. */
static apr_status_t load_chunk(iss_version_reader_t *rd, apr_int64_t i)
{
    const iss_manifest_entry_t *e = &rd->m->entries[i];
    unsigned char sha[ISS_DIGEST_SHA256_LEN];
    iss_digest_t *d;
    apr_status_t rv;

    if (rd->cidx == i) {
        return APR_SUCCESS;
    }
    rd->cidx = -1;
    if (e->length > rd->m->params.max_size) {
        return APR_EGENERAL;
    }
    if (rd->chunks) {
        /* One file per chunk: open, read whole, close. */
        int fd;

        iss_hex_encode(rd->chunks + rd->chunks_len, e->sha256,
                       ISS_DIGEST_SHA256_LEN);
        if ((fd = open(rd->chunks, O_RDONLY)) < 0) {
            if (errno != ENOENT) {
                return APR_FROM_OS_ERROR(errno);
            }
            rv = load_live(rd, e);
        }
        else {
            rv = iss_pread_full(fd, rd->cbuf, e->length, 0);
            close(fd);
        }
    }
    else {
        rv = iss_pread_full(rd->fd, rd->cbuf, e->length, e->offset);
    }
    if (rv != APR_SUCCESS) {
        return APR_STATUS_IS_EOF(rv) ? APR_EGENERAL : rv;
    }
    if ((rv = iss_digest_create(&d, rd->pool)) != APR_SUCCESS) {
        return rv;
    }
    iss_digest_update(d, rd->cbuf, e->length);
    iss_digest_final(d, sha);
    if (memcmp(sha, e->sha256, ISS_DIGEST_SHA256_LEN) != 0) {
        return APR_EGENERAL;
    }
    rd->cidx = i;
    return APR_SUCCESS;
}

apr_status_t iss_versions_pread(iss_version_reader_t *rd, apr_off_t off,
                                void *buf, apr_size_t len, apr_size_t *got)
{
    unsigned char *out = buf;
    apr_uint64_t pos;
    apr_status_t rv;

    *got = 0;
    if (!rd || rd->closed || off < 0) {
        return APR_EINVAL;
    }
    pos = (apr_uint64_t)off;
    if (pos >= rd->size || len == 0) {
        return APR_SUCCESS;
    }
    if (len > rd->size - pos) {
        len = (apr_size_t)(rd->size - pos);
    }
    if (rd->m == NULL) {
        rv = iss_pread_full(rd->fd, out, len, pos);
        if (rv != APR_SUCCESS) {
            return APR_STATUS_IS_EOF(rv) ? APR_EGENERAL : rv;
        }
        *got = len;
        return APR_SUCCESS;
    }
    while (*got < len) {
        /* The chunk holding pos: binary search on the offsets. */
        apr_int64_t lo = 0, hi = (apr_int64_t)rd->m->count - 1, i;
        const iss_manifest_entry_t *e;
        apr_size_t n, in;

        if (rd->cidx >= 0
            && pos >= rd->m->entries[rd->cidx].offset
            && pos < rd->m->entries[rd->cidx].offset
                     + rd->m->entries[rd->cidx].length) {
            lo = hi = rd->cidx;
        }
        while (lo < hi) {
            apr_int64_t mid = lo + (hi - lo + 1) / 2;

            if (rd->m->entries[mid].offset <= pos) {
                lo = mid;
            }
            else {
                hi = mid - 1;
            }
        }
        i = lo;
        if ((rv = load_chunk(rd, i)) != APR_SUCCESS) {
            return rv;
        }
        e = &rd->m->entries[i];
        in = (apr_size_t)(pos - e->offset);
        n = e->length - in;
        if (n > len - *got) {
            n = len - *got;
        }
        memcpy(out + *got, rd->cbuf + in, n);
        *got += n;
        pos += n;
    }
    return APR_SUCCESS;
}

void iss_versions_close(iss_version_reader_t *rd)
{
    if (rd) {
        apr_pool_cleanup_run(rd->pool, rd, reader_cleanup);
    }
}

/* ---- parsing ------------------------------------------------------------ */

static const char *parse_limit_u64(const char *v, int shift_ok,
                                   apr_uint64_t *out)
{
    const char *c = v;
    apr_uint64_t n;
    int shift = 0;

    if (!parse_u64(&c, &n)) {
        return "";
    }
    if (shift_ok) {
        switch (*c) {
        case 'k': case 'K': shift = 10; c++; break;
        case 'm': case 'M': shift = 20; c++; break;
        case 'g': case 'G': shift = 30; c++; break;
        case 't': case 'T': shift = 40; c++; break;
        }
    }
    if (*c || n == 0 || n > (APR_UINT64_C(1) << 50) >> shift) {
        return "";
    }
    *out = n << shift;
    return NULL;
}

const char *iss_versions_limits_parse(iss_versions_limits_t *lim, int *on,
                                      const char *word, apr_pool_t *pool)
{
    const char *v;

    if (strcasecmp(word, "on") == 0) {
        *on = 1;
        return NULL;
    }
    if (strcasecmp(word, "off") == 0) {
        *on = 0;
        return NULL;
    }
    if (strncmp(word, "count=", 6) == 0) {
        v = word + 6;
        if (strcmp(v, "off") == 0) {
            lim->max_count = 0;
        }
        else if (parse_limit_u64(v, 0, &lim->max_count)) {
            return apr_psprintf(pool, "'%s' is not a positive count", word);
        }
        *on = 1;
        return NULL;
    }
    if (strncmp(word, "size=", 5) == 0) {
        v = word + 5;
        if (strcmp(v, "off") == 0) {
            lim->max_bytes = 0;
        }
        else if (parse_limit_u64(v, 1, &lim->max_bytes)) {
            return apr_psprintf(pool, "'%s' is not a positive size (digits, "
                                "optionally followed by K, M, G or T; at "
                                "most 1024T)", word);
        }
        *on = 1;
        return NULL;
    }
    if (strncmp(word, "pack=", 5) == 0) {
        v = word + 5;
        if (strcmp(v, "off") == 0) {
            lim->pack_bytes = 0;
        }
        else if (parse_limit_u64(v, 1, &lim->pack_bytes)) {
            return apr_psprintf(pool, "'%s' is not a positive size (digits, "
                                "optionally followed by K, M, G or T; at "
                                "most 1024T)", word);
        }
        *on = 1;
        return NULL;
    }
    if (strncmp(word, "age=", 4) == 0) {
        apr_uint64_t n, unit = 1;
        apr_size_t len;
        char *num;

        v = word + 4;
        if (strcmp(v, "off") == 0) {
            lim->max_age = 0;
            *on = 1;
            return NULL;
        }
        len = strlen(v);
        if (len > 1 && !apr_isdigit(v[len - 1])) {
            switch (v[len - 1]) {
            case 's': break;
            case 'm': unit = 60; break;
            case 'h': unit = 3600; break;
            case 'd': unit = 86400; break;
            case 'w': unit = 7 * 86400; break;
            default:
                return apr_psprintf(pool, "unknown unit in '%s' (use s, m, "
                                    "h, d or w)", word);
            }
            len--;
        }
        num = apr_pstrmemdup(pool, v, len);
        if (parse_limit_u64(num, 0, &n) || n > APR_UINT64_C(100) * 365 * 86400
                                               / unit) {
            return apr_psprintf(pool, "'%s' is not a positive age of at most "
                                "100 years", word);
        }
        lim->max_age = apr_time_from_sec((apr_int64_t)(n * unit));
        *on = 1;
        return NULL;
    }
    return apr_psprintf(pool, "'%s': expected On, Off, count=<n>, "
                        "size=<n>[KMGT], age=<n>[smhdw], pack=<n>[KMGT] (or "
                        "<limit>=off)",
                        word);
}

int iss_versions_etag_digest(const char *etag, apr_size_t len,
                             unsigned char digest[ISS_DIGEST_SHA256_LEN])
{
    char quoted[ISS_DIGEST_ETAG_LEN];

    /* Without its quotes too (a version URL's query). */
    if (len == ISS_DIGEST_ETAG_LEN - 2) {
        quoted[0] = '"';
        memcpy(quoted + 1, etag, len);
        quoted[ISS_DIGEST_ETAG_LEN - 1] = '"';
        return iss_digest_etag_decode(quoted, sizeof(quoted), digest);
    }
    return iss_digest_etag_decode(etag, len, digest);
}

/* ---- usage and collection ----------------------------------------------- */

typedef struct names_t {
    apr_array_header_t *names;
    apr_uint64_t packed;
} names_t;

/* The contents not packed yet (hex), and how many are. */
static int unpacked_one(void *baton, const void *key, apr_size_t klen,
                        const void *val, apr_size_t vlen)
{
    names_t *n = baton;
    blob_t b;

    if (!blob_decode(val, vlen, &b)) {
        return 0;
    }
    if (b.packed) {
        n->packed++;
    }
    else {
        APR_ARRAY_PUSH(n->names, const char *)
            = apr_pstrmemdup(n->names->pool, (const char *)key
                             + strlen(BLOB_PFX), klen - strlen(BLOB_PFX));
    }
    return 0;
}

typedef struct counter_t {
    apr_pool_t *pool;
    apr_uint64_t files, versions;
    int damaged;
} counter_t;

static int count_one(void *baton, const void *key, apr_size_t klen,
                     const void *val, apr_size_t vlen)
{
    counter_t *c = baton;
    apr_array_header_t *list;

    (void)key;
    (void)klen;
    if (list_decode(val, vlen, &list, c->pool) != APR_SUCCESS) {
        c->damaged = 1;
        return 0;
    }
    c->files++;
    c->versions += (apr_uint64_t)list->nelts;
    return 0;
}

typedef struct livecount_t {
    apr_pool_t *pool;
    apr_uint64_t chunks, bytes;
} livecount_t;

static int live_one(void *baton, const void *key, apr_size_t klen,
                    const void *val, apr_size_t vlen)
{
    livecount_t *lc = baton;
    crec_t cr;

    (void)key;
    (void)klen;
    if (crec_decode(val, vlen, &cr, lc->pool) && cr.key) {
        lc->chunks++;
        lc->bytes += cr.len;
    }
    return 0;
}

apr_status_t iss_versions_usage(iss_store_t *store, iss_versions_usage_t *u,
                                apr_pool_t *pool)
{
    counter_t c = { pool, 0, 0, 0 };
    apr_dir_t *dir;
    apr_finfo_t fi;
    void *v;
    apr_size_t vl;
    total_t t;
    apr_status_t rv;

    memset(u, 0, sizeof(*u));
    rv = iss_store_iterate(store, LIST_PFX, strlen(LIST_PFX), count_one, &c,
                           pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    u->files = c.files;
    u->versions = c.versions;
    rv = iss_store_get(store, TOTAL_KEY, strlen(TOTAL_KEY), &v, &vl, pool);
    if (rv == APR_SUCCESS && total_decode(v, vl, &t)) {
        u->blobs = t.blobs;
        u->bytes = t.bytes;
    }
    else if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
        return rv;
    }
    if (apr_dir_open(&dir, vpath(store, "data", NULL, pool), pool)
        == APR_SUCCESS) {
        while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_SIZE
                            | APR_FINFO_TYPE, dir) == APR_SUCCESS) {
            if (fi.filetype == APR_REG) {
                u->disk_files++;
                u->disk_bytes += (apr_uint64_t)fi.size;
            }
        }
        apr_dir_close(dir);
    }
    if (apr_dir_open(&dir, vpath(store, "pending", NULL, pool), pool)
        == APR_SUCCESS) {
        while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, dir)
               == APR_SUCCESS) {
            if (fi.filetype == APR_REG) {
                u->pending++;
            }
        }
        apr_dir_close(dir);
    }
    if (apr_dir_open(&dir, vpath(store, "chunks", NULL, pool), pool)
        == APR_SUCCESS) {
        while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_SIZE
                            | APR_FINFO_TYPE, dir) == APR_SUCCESS) {
            if (fi.filetype == APR_REG && fi.name[0] != '.') {
                u->chunk_files++;
                u->chunk_bytes += (apr_uint64_t)fi.size;
            }
        }
        apr_dir_close(dir);
    }
    {
        names_t un;

        un.names = apr_array_make(pool, 16, sizeof(const char *));
        un.packed = 0;
        rv = iss_store_iterate(store, BLOB_PFX, strlen(BLOB_PFX),
                               unpacked_one, &un, pool);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        u->packed = un.packed;
    }
    if (apr_dir_open(&dir, vpath(store, "live", NULL, pool), pool)
        == APR_SUCCESS) {
        while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE
                            | APR_FINFO_NLINK, dir) == APR_SUCCESS) {
            if (fi.filetype == APR_REG && key_ok(fi.name, strlen(fi.name))) {
                u->live_files++;
                u->live_orphans += fi.nlink <= 1;
            }
        }
        apr_dir_close(dir);
    }
    {
        livecount_t lc = { pool, 0, 0 };

        rv = iss_store_iterate(store, CHUNK_PFX, strlen(CHUNK_PFX),
                               live_one, &lc, pool);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        u->live_chunks = lc.chunks;
        u->live_bytes = lc.bytes;
    }
    return c.damaged ? ISS_STORE_EDAMAGED : APR_SUCCESS;
}

/* ---- the chunk store ---------------------------------------------------- */

/* A temporary name in @a dir, unique among the processes and threads that
 * write there at once (the pool is the caller's own while it lives). */
static const char *tmp_name(const char *dir, const char *what, apr_pool_t *p)
{
    return apr_psprintf(p, "%s/.tmp.%s.%" APR_PID_T_FMT ".%pp", dir, what,
                        getpid(), (void *)p);
}

/* The folder of the location whose file @a rel is at @a path, or NULL. */
static const char *root_of(const char *path, const char *rel, apr_pool_t *p)
{
    apr_size_t pl, rl;

    if (path == NULL || rel == NULL) {
        return NULL;
    }
    pl = strlen(path);
    rl = strlen(rel);
    if (pl > rl + 1 && path[pl - rl - 1] == '/'
        && strcmp(path + pl - rl, rel) == 0) {
        return apr_pstrndup(p, path, pl - rl - 1);
    }
    return NULL;
}

/* The file now at a version's path, whose chunks the version may use
 * in place: found by its m/ record, valid for the file as it is. */
typedef struct live_t {
    const char *rel, *path;       /* in the location; absolute */
    apr_finfo_t fi;               /* its identity when looked up */
    const char *key;              /* live_key(fi) */
    const char *tmp;              /* a link of it, checked, or NULL */
    apr_hash_t *at;               /* chunk id -> its manifest entry */
} live_t;

/* Look at the file at @a path: its chunks (by its valid m/ record) in
 * *lv, and a hard link of it under versions/live/.tmp.* whose identity
 * is the one the record was checked against.  0 if it cannot serve. */
static int live_open(iss_store_t *store, const char *rel, const char *path,
                     live_t *lv, apr_pool_t *p)
{
    iss_manifest_limits_t lim = { 0xffffffffu, APR_UINT64_MAX, NULL };
    iss_manifest_t *lm;
    apr_finfo_t tfi;
    apr_uint32_t j;
    const apr_int32_t want = APR_FINFO_LINK | APR_FINFO_IDENT
                             | APR_FINFO_SIZE | APR_FINFO_MTIME
                             | APR_FINFO_TYPE;

    memset(lv, 0, sizeof(*lv));
    if (!rel || !path
        || apr_stat(&lv->fi, path, want, p) != APR_SUCCESS
        || lv->fi.filetype != APR_REG
        || iss_chunkidx_lookup(store, rel, &lv->fi, &lim, &lm, p)
           != APR_SUCCESS
        || make_dirs(store, p) != APR_SUCCESS) {
        return 0;
    }
    lv->rel = rel;
    lv->path = path;
    lv->key = live_key(&lv->fi, p);
    /* Named by @a lv (not the pool: a packing opens several files with
     * one pool), as unlink_stale() expects: .tmp.live.<pid>.<p>. */
    lv->tmp = apr_psprintf(p, "%s/.tmp.live.%" APR_PID_T_FMT ".%pp",
                           vpath(store, "live", NULL, p), getpid(),
                           (void *)lv);
    /* Linked first, then checked: the link holds the inode the record
     * describes, or it is dropped (replaced between stat and link). */
    if (link(path, lv->tmp) != 0) {
        lv->tmp = NULL;
        return 0;
    }
    if (apr_stat(&tfi, lv->tmp, want, p) != APR_SUCCESS
        || !same_ident(&tfi, &lv->fi)) {
        (void)unlink(lv->tmp);
        lv->tmp = NULL;
        return 0;
    }
    lv->at = apr_hash_make(p);
    for (j = 0; j < lm->count; j++) {
        apr_hash_set(lv->at, lm->entries[j].sha256, ISS_DIGEST_SHA256_LEN,
                     &lm->entries[j]);
    }
    return 1;
}

static void live_close(live_t *lv)
{
    if (lv->tmp) {
        (void)unlink(lv->tmp);
        lv->tmp = NULL;
    }
}

/* The entry of @a lv that holds chunk @a e, or NULL. */
static const iss_manifest_entry_t *live_has(const live_t *lv,
                                            const iss_manifest_entry_t *e)
{
    const iss_manifest_entry_t *le;

    if (lv == NULL || lv->at == NULL) {
        return NULL;
    }
    le = apr_hash_get(lv->at, e->sha256, ISS_DIGEST_SHA256_LEN);
    return le && le->length == e->length ? le : NULL;
}

/* Under the store's lock: versions/live/<key> is @a lv's inode (linked
 * now if it is not there), so that chunks may be recorded in it.  The
 * record V/l/<key> is read into *l (made empty when absent). */
static apr_status_t txn_live_link(iss_store_txn_t *txn, iss_store_t *store,
                                  const live_t *lv, lrec_t *l, apr_pool_t *p)
{
    const char *to = vpath(store, "live", lv->key, p);
    apr_finfo_t fi;
    apr_status_t rv;
    int found;

    if ((rv = txn_lrec(txn, lv->key, l, &found, p)) != APR_SUCCESS) {
        return rv;
    }
    if (!found) {
        l->ids = apr_array_make(p, 16, sizeof(const char *));
        l->path = lv->path;
        l->rel = lv->rel;
    }
    if (link(lv->tmp, to) != 0 && errno != EEXIST) {
        return APR_FROM_OS_ERROR(errno);
    }
    if (apr_stat(&fi, to, APR_FINFO_IDENT | APR_FINFO_SIZE | APR_FINFO_MTIME,
                 p) != APR_SUCCESS || !same_ident(&fi, &lv->fi)) {
        return APR_EAGAIN;
    }
    return APR_SUCCESS;
}

typedef struct pack_t {
    iss_store_t *store;
    const char *hex;
    const iss_manifest_t *m;
    const unsigned char *man;     /* encoded, to put when new */
    apr_size_t manlen;
    apr_array_header_t *ids;      /* distinct entries (index) */
    const char **tmp;             /* per distinct entry: a temporary file
                                   * with its bytes, or NULL */
    const iss_manifest_entry_t **in;  /* ... or where inlv[i] holds it */
    const live_t **inlv;          /* ... that live file */
    char *used;                   /* ... renamed into place */
    const char *chunks;
    apr_pool_t *pool;
    int gone, done;
    apr_uint64_t inplace;         /* chunks recorded in the live file */
} pack_t;

static apr_status_t pack_txn(void *baton, iss_store_txn_t *txn)
{
    pack_t *b = baton;
    apr_pool_t *p = b->pool;
    blob_t cur;
    apr_hash_t *ls = apr_hash_make(p);   /* live_t * -> its lrec_t */
    apr_hash_index_t *hi;
    int found, i, moved = 0;
    apr_status_t rv;

    b->inplace = 0;
    if ((rv = txn_blob(txn, b->hex, &cur, &found, p)) != APR_SUCCESS) {
        return rv;
    }
    if (!found || cur.packed) {
        b->gone = 1;                 /* dropped or packed meanwhile */
        return APR_SUCCESS;
    }
    for (i = 0; i < b->ids->nelts; i++) {
        const iss_manifest_entry_t *e
            = &b->m->entries[APR_ARRAY_IDX(b->ids, i, apr_uint32_t)];
        const char *ch = hexof(e->sha256, p);
        crec_t cr;

        if ((rv = txn_crec(txn, ch, &cr, &found, p)) != APR_SUCCESS) {
            return rv;
        }
        if (found) {
            if (cr.len != e->length) {
                return ISS_STORE_EDAMAGED;
            }
        }
        else if (b->in && b->in[i]) {
            /* Used in place: the live link is there (made under the lock
             * if not), and lists the chunk. */
            const live_t *lv = b->inlv[i];
            lrec_t *l = apr_hash_get(ls, &lv, sizeof(lv));

            if (l == NULL) {
                l = apr_pcalloc(p, sizeof(*l));
                if ((rv = txn_live_link(txn, b->store, lv, l, p))
                    != APR_SUCCESS) {
                    return rv;
                }
                apr_hash_set(ls, apr_pmemdup(p, &lv, sizeof(lv)), sizeof(lv),
                             l);
            }
            cr.refs = 0;
            cr.len = e->length;
            cr.key = lv->key;
            cr.off = b->in[i]->offset;
            APR_ARRAY_PUSH(l->ids, const char *) = ch;
            b->inplace++;
        }
        else if (b->tmp[i] == NULL) {
            /* Referenced when looked at, collected since: next time. */
            return APR_EAGAIN;
        }
        else {
            /* Under the lock: a file of that name has no reference (a
             * leftover), and nothing collects it meanwhile. */
            if (rename(b->tmp[i], apr_pstrcat(p, b->chunks, "/", ch, NULL))
                != 0) {
                return APR_FROM_OS_ERROR(errno);
            }
            b->used[i] = 1;
            moved = 1;
            cr.refs = 0;
            cr.len = e->length;
            cr.key = NULL;
            cr.off = 0;
        }
        cr.refs++;
        txn_put_crec(txn, ch, &cr, p);
    }
    if (moved && (rv = sync_dir(b->chunks, p)) != APR_SUCCESS) {
        return rv;
    }
    for (hi = apr_hash_first(p, ls); hi; hi = apr_hash_next(hi)) {
        const void *k;
        void *val;
        const live_t *lv;
        const char *root;

        apr_hash_this(hi, &k, NULL, &val);
        lv = *(const live_t *const *)k;
        txn_put_lrec(txn, lv->key, val, p);
        /* The location's folder, for the collection (which is not told
         * where the files are): the live file's path without its rel. */
        if ((root = root_of(lv->path, lv->rel, p)) != NULL) {
            void *v;
            apr_size_t vl;

            rv = iss_store_txn_get(txn, ROOT_KEY, strlen(ROOT_KEY), &v, &vl,
                                   p);
            if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
                return rv;
            }
            if (rv == APR_NOTFOUND || strcmp(v, root) != 0) {
                iss_store_txn_put(txn, ROOT_KEY, strlen(ROOT_KEY), root,
                                  strlen(root));
            }
        }
    }
    if (b->man) {
        const char *mk = apr_pstrcat(p, MAN_PFX, b->hex, NULL);

        iss_store_txn_put(txn, mk, strlen(mk), b->man, b->manlen);
    }
    cur.packed = 1;
    txn_put_blob(txn, b->hex, &cur, p);
    b->done = 1;
    return APR_SUCCESS;
}

/* Read chunk @a e at @a off of @a fd, check it against its id, and write
 * it to a new temporary file @a tmp, fdatasync'd.  APR_EGENERAL if the
 * bytes are not the chunk's. */
static apr_status_t chunk_to_tmp(int fd, apr_off_t off,
                                 const iss_manifest_entry_t *e,
                                 unsigned char *cbuf, const char *tmp,
                                 apr_pool_t *p)
{
    unsigned char sha[ISS_DIGEST_SHA256_LEN];
    iss_digest_t *d;
    apr_status_t rv;
    int out;

    if ((rv = iss_pread_full(fd, cbuf, e->length, off)) != APR_SUCCESS) {
        return APR_STATUS_IS_EOF(rv) ? APR_EGENERAL : rv;
    }
    if ((rv = iss_digest_create(&d, p)) != APR_SUCCESS) {
        return rv;
    }
    iss_digest_update(d, cbuf, e->length);
    iss_digest_final(d, sha);
    if (memcmp(sha, e->sha256, ISS_DIGEST_SHA256_LEN) != 0) {
        return APR_EGENERAL;         /* damaged: never stored as the id */
    }
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out < 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    rv = iss_pwrite_full(out, cbuf, e->length, 0);
    if (rv == APR_SUCCESS && fdatasync(out) != 0) {
        rv = APR_FROM_OS_ERROR(errno);
    }
    close(out);
    if (rv != APR_SUCCESS) {
        (void)unlink(tmp);
    }
    return rv;
}

/* Other live files of the location that may hold a content's chunks:
 * found through the chunk index's c/ hints (3c), each opened (and
 * checked, as the file at the version's path is) once per packing, at
 * most OTHERS_MAX of them. */
#define OTHERS_MAX 8

typedef struct others_t {
    iss_store_t *store;
    const char *root;          /* the location's folder, or NULL: none */
    const live_t *self;        /* the file at the version's path, or NULL */
    apr_hash_t *seen;          /* rel -> live_t (at NULL: cannot serve) */
    apr_array_header_t *open;  /* live_t * with a temporary link */
    apr_pool_t *pool;
} others_t;

/* A path relative to the location that stays inside it: no leading or
 * doubled slash, no "." or ".." segment. */
static int rel_inside(const char *rel)
{
    const char *s = rel;

    if (*s == '\0' || *s == '/') {
        return 0;
    }
    for (;;) {
        const char *e = strchr(s, '/');
        apr_size_t n = e ? (apr_size_t)(e - s) : strlen(s);

        if (n == 0 || (n == 1 && s[0] == '.')
            || (n == 2 && s[0] == '.' && s[1] == '.')) {
            return 0;
        }
        if (e == NULL) {
            return 1;
        }
        s = e + 1;
    }
}

/* Where a live file other than o->self holds chunk @a e (by its m/
 * record, valid for the file as it is now): the entry, *where the file;
 * NULL if none of the paths c/<id> names does (at most
 * ISS_CHUNKIDX_PATHS looked at). */
static const iss_manifest_entry_t *other_has(others_t *o,
                                             const iss_manifest_entry_t *e,
                                             const live_t **where)
{
    apr_array_header_t *rels;
    int i, j;

    if (o == NULL || o->root == NULL
        || iss_chunkidx_where(o->store, e->sha256, &rels, o->pool)
           != APR_SUCCESS) {
        return NULL;
    }
    for (i = 0; i < rels->nelts && i < ISS_CHUNKIDX_PATHS; i++) {
        const char *rel = APR_ARRAY_IDX(rels, i, const char *);
        const iss_manifest_entry_t *le;
        live_t *lv;

        if ((o->self && strcmp(rel, o->self->rel) == 0) || !rel_inside(rel)) {
            continue;
        }
        lv = apr_hash_get(o->seen, rel, APR_HASH_KEY_STRING);
        if (lv == NULL) {
            if (apr_hash_count(o->seen) >= OTHERS_MAX) {
                continue;
            }
            rel = apr_pstrdup(o->pool, rel);
            lv = apr_pcalloc(o->pool, sizeof(*lv));
            if (live_open(o->store, rel, apr_pstrcat(o->pool, o->root, "/",
                                                     rel, NULL), lv,
                          o->pool)) {
                /* One live_t per inode (two names of one file): each
                 * writes its V/l/<key> record in the packing. */
                int dup = o->self && strcmp(o->self->key, lv->key) == 0;

                for (j = 0; !dup && j < o->open->nelts; j++) {
                    dup = strcmp(APR_ARRAY_IDX(o->open, j, live_t *)->key,
                                 lv->key) == 0;
                }
                if (dup) {
                    live_close(lv);
                    lv->at = NULL;
                }
                else {
                    APR_ARRAY_PUSH(o->open, live_t *) = lv;
                }
            }
            apr_hash_set(o->seen, rel, APR_HASH_KEY_STRING, lv);
        }
        if ((le = live_has(lv, e)) != NULL) {
            *where = lv;
            return le;
        }
    }
    return NULL;
}

static void others_close(others_t *o)
{
    int j;

    for (j = 0; j < o->open->nelts; j++) {
        live_close(APR_ARRAY_IDX(o->open, j, live_t *));
    }
    o->open->nelts = 0;
}

/* Move content @a hex into the chunk store: its chunks not stored yet are
 * used in place where @a lv (the file now at its path, or NULL) holds
 * them, or else another live file of the location in @a root (NULL: none)
 * that the chunk index names for the chunk, else written (checked against their ids, fsynced) under
 * temporary names; then one transaction counts every chunk and marks the
 * content packed; its data file is collected after.  With @a budget, a
 * content whose chunks to copy (or to find: no manifest kept) pass that
 * many bytes is left as it is.  *packed = 1 if it was packed.
 * APR_EGENERAL if its bytes do not match their ids (it stays as it is). */
static apr_status_t pack_one(iss_store_t *store, const char *hex,
                             const live_t *lv, const char *root,
                             apr_uint64_t budget,
                             int *packed, apr_uint64_t *copied,
                             apr_pool_t *p)
{
    unsigned char digest[ISS_DIGEST_SHA256_LEN];
    const char *mk = apr_pstrcat(p, MAN_PFX, hex, NULL);
    const char *bk = apr_pstrcat(p, BLOB_PFX, hex, NULL);
    iss_manifest_t *m = NULL;
    unsigned char *cbuf;
    apr_file_t *f;
    apr_os_file_t fd;
    pack_t b;
    others_t o;
    void *v;
    apr_size_t vl;
    blob_t cur;
    apr_uint64_t copy = 0;
    apr_status_t rv;
    int i;

    *packed = 0;
    memset(&b, 0, sizeof(b));
    if (!iss_hex_id_decode(hex, strlen(hex), digest)) {
        return APR_SUCCESS;
    }
    if ((rv = iss_store_get(store, bk, strlen(bk), &v, &vl, p))
        != APR_SUCCESS) {
        return rv == APR_NOTFOUND ? APR_SUCCESS : rv;
    }
    if (!blob_decode(v, vl, &cur) || cur.packed
        || cur.size < 2 * ISS_CDC_MIN_DEFAULT) {
        return APR_SUCCESS;          /* one chunk at most: nothing shared */
    }
    rv = apr_file_open(&f, vpath(store, "data", hex, p), APR_FOPEN_READ,
                       APR_FPROT_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return APR_STATUS_IS_ENOENT(rv) ? APR_SUCCESS : rv;
    }
    if (iss_store_get(store, mk, strlen(mk), &v, &vl, p) == APR_SUCCESS) {
        (void)iss_manifest_parse(v, vl, &any_manifest, &m, p);
    }
    if (m == NULL || m->file_size != cur.size
        || memcmp(m->file_sha256, digest, ISS_DIGEST_SHA256_LEN) != 0) {
        /* No manifest kept with it: made now, with the default
         * parameters (the chunk store's own business). */
        iss_cdc_params_t dflt = ISS_CDC_PARAMS_DEFAULT;

        if (budget && cur.size > budget) {
            apr_file_close(f);       /* a whole read: the collection's */
            return APR_SUCCESS;
        }
        if ((rv = iss_manifest_of_file(f, &dflt, &m, p)) != APR_SUCCESS) {
            apr_file_close(f);
            return rv;
        }
        if (m->file_size != cur.size
            || memcmp(m->file_sha256, digest, ISS_DIGEST_SHA256_LEN) != 0) {
            apr_file_close(f);
            return APR_EGENERAL;
        }
        if ((rv = iss_manifest_encode(m, (unsigned char **)&b.man, &b.manlen,
                                      p)) != APR_SUCCESS) {
            apr_file_close(f);
            return rv;
        }
    }
    if (m->count < 2) {
        apr_file_close(f);           /* one chunk: nothing to share */
        return APR_SUCCESS;
    }
    apr_os_file_get(&fd, f);
    b.store = store;
    b.hex = hex;
    b.m = m;
    b.pool = p;
    b.chunks = vpath(store, "chunks", NULL, p);
    b.ids = distinct_ids(m, p);
    b.tmp = apr_pcalloc(p, (apr_size_t)b.ids->nelts * sizeof(*b.tmp));
    b.in = apr_pcalloc(p, (apr_size_t)b.ids->nelts * sizeof(*b.in));
    b.inlv = apr_pcalloc(p, (apr_size_t)b.ids->nelts * sizeof(*b.inlv));
    b.used = apr_pcalloc(p, (apr_size_t)b.ids->nelts);
    cbuf = apr_palloc(p, m->params.max_size);
    if ((rv = make_dirs(store, p)) != APR_SUCCESS) {
        apr_file_close(f);
        return rv;
    }
    o.store = store;
    o.root = root;
    o.self = lv;
    o.seen = apr_hash_make(p);
    o.open = apr_array_make(p, OTHERS_MAX, sizeof(live_t *));
    o.pool = p;
    /* What is where: stored already, in the file at the path, in another
     * live file, or to copy. */
    {
        char *need = apr_pcalloc(p, (apr_size_t)b.ids->nelts);

        for (i = 0; i < b.ids->nelts; i++) {
            const iss_manifest_entry_t *e
                = &m->entries[APR_ARRAY_IDX(b.ids, i, apr_uint32_t)];
            const char *ck = apr_pstrcat(p, CHUNK_PFX, hexof(e->sha256, p),
                                         NULL);

            rv = iss_store_get(store, ck, strlen(ck), &v, &vl, p);
            if (rv == APR_SUCCESS) {
                continue;            /* stored already */
            }
            if (rv != APR_NOTFOUND || e->length > m->params.max_size) {
                apr_file_close(f);
                others_close(&o);
                return rv != APR_NOTFOUND ? rv : APR_EGENERAL;
            }
            rv = APR_SUCCESS;
            if ((b.in[i] = live_has(lv, e)) != NULL) {
                b.inlv[i] = lv;
            }
            else if ((b.in[i] = other_has(&o, e, &b.inlv[i])) == NULL) {
                need[i] = 1;
                copy += e->length;
            }
        }
        if (budget && copy > budget) {
            apr_file_close(f);       /* more than a write may do after */
            others_close(&o);
            return APR_SUCCESS;
        }
        for (i = 0; rv == APR_SUCCESS && i < b.ids->nelts; i++) {
            const iss_manifest_entry_t *e
                = &m->entries[APR_ARRAY_IDX(b.ids, i, apr_uint32_t)];

            if (!need[i]) {
                continue;
            }
            b.tmp[i] = tmp_name(b.chunks, hexof(e->sha256, p), p);
            if ((rv = chunk_to_tmp(fd, (apr_off_t)e->offset, e, cbuf,
                                   b.tmp[i], p)) != APR_SUCCESS) {
                b.tmp[i] = NULL;
            }
        }
    }
    apr_file_close(f);
    if (rv == APR_SUCCESS) {
        rv = iss_store_txn_ex(store, pack_txn, &b, ISS_STORE_LAZY, p);
        if (rv == APR_EAGAIN) {
            rv = APR_SUCCESS;        /* another time */
            b.done = 0;
        }
    }
    others_close(&o);
    for (i = 0; i < b.ids->nelts; i++) {
        if (b.tmp[i] && !b.used[i]) {
            (void)unlink(b.tmp[i]);
        }
    }
    if (rv == APR_SUCCESS && b.done) {
        *packed = 1;
        if (copied) {
            *copied += copy;
        }
        rv = collect(store, hex, NULL, NULL, p);
    }
    return rv;
}

/* ---- moving chunks out of a live file that goes ------------------------ */

typedef struct unlive_t {
    iss_store_t *store;
    const char *key;
    apr_hash_t *prep;     /* hex -> prep_t: what was prepared per chunk */
    const live_t *lv;     /* the file they may move to, or NULL */
    const char *chunks;
    apr_pool_t *pool;
    apr_uint64_t copied, moved, lost;
    int done;
} unlive_t;

typedef struct prep_t {
    const char *tmp;                      /* bytes copied here, or */
    const iss_manifest_entry_t *in;       /* held by lv here, or */
    int lost;                             /* neither: bytes damaged */
    int used;
} prep_t;

static apr_status_t unlive_txn(void *baton, iss_store_txn_t *txn)
{
    unlive_t *u = baton;
    apr_pool_t *p = u->pool;
    lrec_t l, nl;
    int found, i, have_nl = 0, renamed = 0;
    apr_status_t rv;
    const char *from = vpath(u->store, "live", u->key, p);

    u->copied = u->moved = u->lost = 0;
    if ((rv = txn_lrec(txn, u->key, &l, &found, p)) != APR_SUCCESS) {
        return rv;
    }
    if (found) {
        for (i = 0; i < l.ids->nelts; i++) {
            const char *ch = APR_ARRAY_IDX(l.ids, i, const char *);
            prep_t *pp = apr_hash_get(u->prep, ch, APR_HASH_KEY_STRING);
            crec_t cr;

            if ((rv = txn_crec(txn, ch, &cr, &found, p)) != APR_SUCCESS) {
                return rv;
            }
            if (!found || cr.key == NULL || strcmp(cr.key, u->key) != 0) {
                continue;            /* released or moved already */
            }
            if (pp == NULL) {
                return APR_EAGAIN;   /* recorded since: prepare again */
            }
            if (pp->in) {
                if (!have_nl) {
                    if ((rv = txn_live_link(txn, u->store, u->lv, &nl, p))
                        != APR_SUCCESS) {
                        return rv;
                    }
                    have_nl = 1;
                }
                cr.key = u->lv->key;
                cr.off = pp->in->offset;
                APR_ARRAY_PUSH(nl.ids, const char *) = ch;
                u->moved++;
            }
            else if (pp->tmp) {
                if (rename(pp->tmp, apr_pstrcat(p, u->chunks, "/", ch, NULL))
                    != 0) {
                    return APR_FROM_OS_ERROR(errno);
                }
                pp->used = 1;
                renamed = 1;
                cr.key = NULL;
                cr.off = 0;
                u->copied++;
            }
            else {
                u->lost++;           /* stays as it is: reads fail */
                continue;
            }
            txn_put_crec(txn, ch, &cr, p);
        }
        if (renamed && (rv = sync_dir(u->chunks, p)) != APR_SUCCESS) {
            return rv;
        }
        if (have_nl) {
            txn_put_lrec(txn, u->lv->key, &nl, p);
        }
        l.ids->nelts = 0;
        txn_put_lrec(txn, u->key, &l, p);     /* deleted */
    }
    /* Under the lock, with the record gone: nothing finds the link any
     * more, nothing records a chunk in it until it is linked again. */
    if (rename(from, apr_pstrcat(p, from, ".gone", NULL)) != 0
        && errno != ENOENT) {
        return APR_FROM_OS_ERROR(errno);
    }
    u->done = 1;
    return APR_SUCCESS;
}

/* The live file linked as versions/live/<key> goes (or went): every chunk
 * versions use in it moves to @a lv (the file now at its path, NULL if
 * none) where that holds it, or is copied into the chunk store (checked
 * against its id, fsynced, outside the store's lock); then, under the
 * lock, the records move and the link is removed.  With @a budget, more
 * bytes to copy than that leaves everything as it is (*done = 0). */
static apr_status_t unlive(iss_store_t *store, const char *key,
                           const live_t *lv, apr_uint64_t budget,
                           int *done, apr_uint64_t *lost,
                           apr_uint64_t *copied, apr_pool_t *p)
{
    const char *k = apr_pstrcat(p, LIVE_PFX, key, NULL);
    const char *from = vpath(store, "live", key, p);
    apr_hash_index_t *hi;
    unlive_t u;
    apr_status_t rv = APR_SUCCESS;
    apr_uint64_t copy = 0;
    int tries;

    *done = 0;
    memset(&u, 0, sizeof(u));
    u.store = store;
    u.key = key;
    u.lv = lv;
    u.pool = p;
    u.chunks = vpath(store, "chunks", NULL, p);
    if (lv && strcmp(lv->key, key) == 0) {
        return APR_SUCCESS;          /* still the file at its path */
    }
    for (tries = 0; tries < 3; tries++) {
        lrec_t l;
        void *v;
        apr_size_t vl;
        apr_uint64_t maxlen = 1;
        unsigned char *cbuf = NULL;
        int fd = -1, i;

        u.prep = apr_hash_make(p);
        copy = 0;
        rv = iss_store_get(store, k, strlen(k), &v, &vl, p);
        if (rv == APR_SUCCESS && !lrec_decode(v, vl, &l, p)) {
            return ISS_STORE_EDAMAGED;
        }
        if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
            return rv;
        }
        if (rv == APR_NOTFOUND) {
            apr_finfo_t fi;

            if (apr_stat(&fi, from, APR_FINFO_LINK | APR_FINFO_TYPE, p)
                != APR_SUCCESS) {
                *done = 1;           /* nothing used in it: nothing to do */
                return APR_SUCCESS;
            }
        }
        if (rv == APR_SUCCESS) {
            apr_array_header_t *todo = apr_array_make(p, l.ids->nelts,
                                                      sizeof(crec_t));
            apr_array_header_t *tids = apr_array_make(p, l.ids->nelts,
                                                      sizeof(const char *));

            /* Where each chunk goes; what to copy and from where. */
            for (i = 0; i < l.ids->nelts; i++) {
                const char *ch = APR_ARRAY_IDX(l.ids, i, const char *);
                const char *ck = apr_pstrcat(p, CHUNK_PFX, ch, NULL);
                iss_manifest_entry_t e;
                prep_t *pp = apr_pcalloc(p, sizeof(*pp));
                crec_t cr;

                rv = iss_store_get(store, ck, strlen(ck), &v, &vl, p);
                if (rv == APR_NOTFOUND) {
                    continue;
                }
                if (rv != APR_SUCCESS) {
                    return rv;
                }
                if (!crec_decode(v, vl, &cr, p) || cr.len == 0
                    || cr.len > APR_UINT32_MAX) {
                    return ISS_STORE_EDAMAGED;
                }
                if (cr.key == NULL || strcmp(cr.key, key) != 0) {
                    continue;
                }
                memset(&e, 0, sizeof(e));
                iss_hex_id_decode(ch, ISS_HEX_ID_LEN, e.sha256);
                e.length = (apr_uint32_t)cr.len;
                apr_hash_set(u.prep, ch, APR_HASH_KEY_STRING, pp);
                if ((pp->in = live_has(lv, &e)) == NULL) {
                    *(crec_t *)apr_array_push(todo) = cr;
                    APR_ARRAY_PUSH(tids, const char *) = ch;
                    copy += cr.len;
                    if (cr.len > maxlen) {
                        maxlen = cr.len;
                    }
                }
            }
            rv = APR_SUCCESS;
            if (budget && copy > budget) {
                return APR_SUCCESS;   /* the collection's work */
            }
            if (todo->nelts) {
                if ((fd = open(from, O_RDONLY)) < 0) {
                    if (errno != ENOENT) {
                        return APR_FROM_OS_ERROR(errno);
                    }
                    /* Gone (an admin?): what was only there is lost. */
                }
                cbuf = apr_palloc(p, (apr_size_t)maxlen);
            }
            for (i = 0; rv == APR_SUCCESS && i < todo->nelts; i++) {
                const crec_t *cr = &APR_ARRAY_IDX(todo, i, crec_t);
                const char *ch = APR_ARRAY_IDX(tids, i, const char *);
                prep_t *pp = apr_hash_get(u.prep, ch, APR_HASH_KEY_STRING);
                iss_manifest_entry_t e;

                memset(&e, 0, sizeof(e));
                iss_hex_id_decode(ch, ISS_HEX_ID_LEN, e.sha256);
                e.length = (apr_uint32_t)cr->len;
                if (fd < 0) {
                    pp->lost = 1;
                    continue;
                }
                pp->tmp = tmp_name(u.chunks, ch, p);
                rv = chunk_to_tmp(fd, (apr_off_t)cr->off, &e, cbuf, pp->tmp,
                                  p);
                if (rv != APR_SUCCESS) {
                    pp->tmp = NULL;
                    if (rv == APR_EGENERAL) {
                        pp->lost = 1;  /* changed behind httpd's back */
                        rv = APR_SUCCESS;
                    }
                }
            }
            if (fd >= 0) {
                close(fd);
            }
        }
        if (rv == APR_SUCCESS) {
            rv = iss_store_txn_ex(store, unlive_txn, &u, ISS_STORE_LAZY, p);
        }
        for (hi = apr_hash_first(p, u.prep); hi; hi = apr_hash_next(hi)) {
            prep_t *pp = apr_hash_this_val(hi);

            if (pp->tmp && !pp->used) {
                (void)unlink(pp->tmp);
            }
        }
        if (rv != APR_EAGAIN) {
            break;
        }
    }
    if (rv == APR_EAGAIN) {
        return APR_SUCCESS;          /* busy: another time */
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (u.done) {
        *done = 1;
        if (lost) {
            *lost += u.lost;
        }
        if (copied) {
            *copied += copy;
        }
        if (unlink(apr_pstrcat(p, from, ".gone", NULL)) != 0
            && errno != ENOENT) {
            return APR_FROM_OS_ERROR(errno);
        }
    }
    return APR_SUCCESS;
}

apr_status_t iss_versions_after(iss_store_t *store, iss_versions_hold_t *h,
                                const iss_versions_limits_t *lim,
                                apr_uint64_t *copied, apr_pool_t *pool)
{
    apr_pool_t *p;
    live_t lv;
    int have, packed = 0, done;
    apr_status_t rv = APR_SUCCESS;

    if (!store || !h || !h->gone || !lim || !lim->pack_bytes) {
        return APR_SUCCESS;
    }
    if ((rv = apr_pool_create(&p, pool)) != APR_SUCCESS) {
        return rv;
    }
    {
        /* Small, and nothing used in place in it: nothing to do. */
        const char *k = apr_pstrcat(p, LIVE_PFX, live_key(&h->fi, p), NULL);
        void *v;
        apr_size_t vl;

        rv = iss_store_get(store, k, strlen(k), &v, &vl, p);
        if (rv != APR_SUCCESS && rv != APR_NOTFOUND) {
            apr_pool_destroy(p);
            return rv;
        }
        if (rv == APR_NOTFOUND
            && (!h->kept || h->fi.size < 2 * ISS_CDC_MIN_DEFAULT)) {
            apr_pool_destroy(p);
            return APR_SUCCESS;
        }
        rv = APR_SUCCESS;
    }
    have = live_open(store, h->rel, h->path, &lv, p);
    if (h->kept) {
        rv = pack_one(store, hexof(h->kept_digest, p), have ? &lv : NULL,
                      root_of(h->path, h->rel, p), lim->pack_bytes, &packed,
                      copied, p);
        if (rv == APR_EGENERAL) {
            rv = APR_SUCCESS;        /* damaged: the collection says so */
        }
    }
    if (rv == APR_SUCCESS) {
        rv = unlive(store, live_key(&h->fi, p), have ? &lv : NULL,
                    lim->pack_bytes, &done, NULL, copied, p);
    }
    live_close(&lv);
    apr_pool_destroy(p);
    return rv;
}

/* The names of the regular files of versions/<sub>. */
static apr_array_header_t *names_in(iss_store_t *store, const char *sub,
                                    apr_pool_t *p)
{
    apr_array_header_t *names = apr_array_make(p, 16, sizeof(const char *));
    apr_dir_t *dir;
    apr_finfo_t fi;

    if (apr_dir_open(&dir, vpath(store, sub, NULL, p), p) == APR_SUCCESS) {
        while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, dir)
               == APR_SUCCESS) {
            if (fi.filetype == APR_REG) {
                APR_ARRAY_PUSH(names, const char *) = apr_pstrdup(p,
                                                                  fi.name);
            }
        }
        apr_dir_close(dir);
    }
    return names;
}

/* A name in versions/live/ that is no live link: "<key>.gone" (a link
 * unlive() removed under the lock and unlinks right after: removed now,
 * its owner does not mind) or ".tmp.live.<pid>.<p>" (live_open()'s link
 * being checked: removed when its process is gone, or older than an
 * hour).  Such a link of a file that went would keep the inode's link
 * count above one and its chunks in place until then. */
static int unlink_stale(iss_store_t *store, const char *n, apr_pool_t *p)
{
    const char *path = vpath(store, "live", n, p);
    apr_size_t len = strlen(n);
    apr_finfo_t fi;

    if (len > 5 && strcmp(n + len - 5, ".gone") == 0) {
        return unlink(path) == 0;
    }
    if (strncmp(n, ".tmp.live.", 10) == 0) {
        char *end;
        long pid = strtol(n + 10, &end, 10);

        if (end != n + 10 && *end == '.' && pid > 0
            && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            return unlink(path) == 0;
        }
    }
    if (apr_stat(&fi, path, APR_FINFO_CTIME, p) == APR_SUCCESS
        && apr_time_now() - fi.ctime > apr_time_from_sec(3600)) {
        return unlink(path) == 0;
    }
    return 0;
}

apr_status_t iss_versions_gc(iss_store_t *store,
                             const iss_versions_limits_t *lim,
                             apr_time_t now, iss_versions_gc_t *st,
                             apr_pool_t *pool)
{
    apr_array_header_t *names;
    apr_pool_t *p, *it;
    apr_status_t rv;
    int i;

    memset(st, 0, sizeof(*st));
    if ((rv = apr_pool_create(&p, pool)) != APR_SUCCESS) {
        return rv;
    }
    if ((rv = prune_all(store, lim, now, &st->pruned, &st->blobs, &st->bytes,
                        p)) != APR_SUCCESS) {
        goto done;
    }
    apr_pool_create(&it, p);
    /* Pending links whose write is over (its intent settled or recovered
     * after a crash): nobody will settle them any more. */
    names = names_in(store, "pending", p);
    for (i = 0; i < names->nelts; i++) {
        const char *n = APR_ARRAY_IDX(names, i, const char *);
        const char *dot = strchr(n, '.');   /* <intent>.<n>[.part] */
        int pending;

        apr_pool_clear(it);
        if (dot == NULL) {
            continue;
        }
        pending = iss_sync_log_intent_pending(store,
                                              apr_pstrmemdup(it, n, dot - n),
                                              it);
        if (pending == 0) {
            if (unlink(vpath(store, "pending", n, it)) == 0) {
                st->pending++;
            }
        }
        else if (pending < 0) {
            rv = APR_EGENERAL;
            goto done;
        }
    }
    /* The chunk store: each content of two chunks or more once, using
     * chunks in place in the file now at a path that had it, when the
     * location's folder is known (V/root, recorded by httpd's packing). */
    {
        names_t un;
        apr_hash_t *where = NULL;
        const char *root = NULL;
        void *v;
        apr_size_t vl;

        un.names = apr_array_make(p, 16, sizeof(const char *));
        un.packed = 0;
        rv = iss_store_iterate(store, BLOB_PFX, strlen(BLOB_PFX),
                               unpacked_one, &un, p);
        if (rv != APR_SUCCESS) {
            goto done;
        }
        if (un.names->nelts
            && iss_store_get(store, ROOT_KEY, strlen(ROOT_KEY), &v, &vl, p)
               == APR_SUCCESS && vl > 0 && ((char *)v)[0] == '/') {
            gather_t g;

            root = v;
            g.all = apr_array_make(p, 64, sizeof(gent_t));
            g.pool = p;
            g.files = 0;
            g.damaged = 0;
            rv = iss_store_iterate(store, LIST_PFX, strlen(LIST_PFX),
                                   gather_one, &g, p);
            if (rv != APR_SUCCESS) {
                goto done;
            }
            where = apr_hash_make(p);
            for (i = 0; i < g.all->nelts; i++) {
                const gent_t *ge = &APR_ARRAY_IDX(g.all, i, gent_t);

                if (apr_hash_get(where, ge->e.digest, ISS_DIGEST_SHA256_LEN)
                    == NULL) {
                    apr_hash_set(where, ge->e.digest, ISS_DIGEST_SHA256_LEN,
                                 ge->rel);
                }
            }
        }
        for (i = 0; i < un.names->nelts; i++) {
            const char *hex = APR_ARRAY_IDX(un.names, i, const char *);
            unsigned char dg[ISS_DIGEST_SHA256_LEN];
            const char *rel = NULL;
            live_t lv;
            int packed, have = 0;

            apr_pool_clear(it);
            if (where && iss_hex_id_decode(hex, strlen(hex), dg)) {
                rel = apr_hash_get(where, dg, ISS_DIGEST_SHA256_LEN);
            }
            if (rel) {
                have = live_open(store, rel, apr_pstrcat(it, root, "/", rel,
                                                         NULL), &lv, it);
            }
            rv = pack_one(store, hex, have ? &lv : NULL, root, 0, &packed,
                          NULL, it);
            if (have) {
                live_close(&lv);
            }
            if (rv == APR_EGENERAL) {
                st->damaged++;
            }
            else if (rv != APR_SUCCESS) {
                goto done;
            }
            st->packed += (apr_uint64_t)packed;
        }
    }
    /* Chunk files without a reference (a packing killed half way, or
     * one that lost a race). */
    names = names_in(store, "chunks", p);
    for (i = 0; i < names->nelts; i++) {
        const char *n = APR_ARRAY_IDX(names, i, const char *);

        apr_pool_clear(it);
        if (strncmp(n, ".tmp.", 5) == 0) {
            apr_finfo_t fi;

            /* A packing's temporary file: another collection's, if
             * young; a dead one's if older than an hour. */
            if (apr_stat(&fi, vpath(store, "chunks", n, it), APR_FINFO_MTIME,
                         it) == APR_SUCCESS
                && apr_time_now() - fi.mtime > apr_time_from_sec(3600)) {
                (void)unlink(vpath(store, "chunks", n, it));
            }
            continue;
        }
        if (!iss_hex_is_lower(n, ISS_HEX_ID_LEN)) {
            continue;
        }
        if ((rv = collect(store, apr_pstrcat(it, "c/", n, NULL), &st->chunks,
                          &st->bytes, it)) != APR_SUCCESS) {
            goto done;
        }
    }
    /* Data files without a reference. */
    names = names_in(store, "data", p);
    for (i = 0; i < names->nelts; i++) {
        const char *n = APR_ARRAY_IDX(names, i, const char *);

        apr_pool_clear(it);
        if (!iss_hex_is_lower(n, ISS_HEX_ID_LEN)) {
            continue;   /* not ours */
        }
        if ((rv = collect(store, n, &st->blobs, &st->bytes, it))
            != APR_SUCCESS) {
            goto done;
        }
    }
    /* What a collection killed half way left in the trash. */
    names = names_in(store, "trash", p);
    for (i = 0; i < names->nelts; i++) {
        apr_pool_clear(it);
        (void)unlink(vpath(store, "trash",
                           APR_ARRAY_IDX(names, i, const char *), it));
    }
    /* Live files that went (replaced, removed, behind httpd's back or by
     * a write whose own step did not run): only our link holds them (this
     * runs last, once pending links, unreferenced data files and the
     * trash, which may name the same inode, are gone), so
     * the chunks versions use there move to the file now at the same
     * path, or into the chunk store; links no record names go.  Stale
     * temporary links first: they count in a file's links too. */
    names = names_in(store, "live", p);
    for (i = 0; i < names->nelts; i++) {
        const char *n = APR_ARRAY_IDX(names, i, const char *);

        apr_pool_clear(it);
        if (!key_ok(n, strlen(n))) {
            (void)unlink_stale(store, n, it);
        }
    }
    for (i = 0; i < names->nelts; i++) {
        const char *n = APR_ARRAY_IDX(names, i, const char *);
        const char *lk = apr_pstrcat(p, LIVE_PFX, n, NULL);
        apr_finfo_t fi;
        void *v;
        apr_size_t vl;
        lrec_t l;
        live_t lv;
        int have = 0, done;

        apr_pool_clear(it);
        if (!key_ok(n, strlen(n))) {
            continue;                /* done above */
        }
        if (apr_stat(&fi, vpath(store, "live", n, it), APR_FINFO_NLINK, it)
            != APR_SUCCESS) {
            continue;
        }
        rv = iss_store_get(store, lk, strlen(lk), &v, &vl, it);
        if (rv == APR_NOTFOUND) {
            if ((rv = collect(store, apr_pstrcat(it, "l/", n, NULL), NULL,
                              NULL, it)) != APR_SUCCESS) {
                goto done;
            }
            continue;
        }
        if (rv != APR_SUCCESS) {
            goto done;
        }
        if (fi.nlink > 1) {
            continue;                /* still a file somewhere (a MOVE) */
        }
        if (lrec_decode(v, vl, &l, it)) {
            have = live_open(store, l.rel, l.path, &lv, it);
        }
        rv = unlive(store, n, have ? &lv : NULL, 0, &done, &st->lost, NULL,
                    it);
        if (have) {
            live_close(&lv);
        }
        if (rv != APR_SUCCESS) {
            goto done;
        }
        st->unlinked += (apr_uint64_t)done;
    }
    rv = APR_SUCCESS;
done:
    apr_pool_destroy(p);
    return rv;
}
