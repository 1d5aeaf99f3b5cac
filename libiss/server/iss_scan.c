/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * iss_scan.c - reconciliation scan of a served tree against its index.
 *
 * THE WALK.  Depth first from the root.  Each directory is listed in full
 * (readdir only, into a listing pool cleared right after) and closed
 * before its subdirectories are entered, so at most one directory handle
 * is open at a time whatever the depth.  Every served entry is lstat()ed
 * and looked up in the index: absent -> created; another type -> removed
 * and created; different (iss_scan_entry_same) -> modified.  The names of
 * the subdirectories are kept in a pool of that directory's own, destroyed
 * when the walk leaves it.  One buffer holds the filesystem path of the
 * entry at hand, "ROOT/" followed by its relative path, so that the
 * relative path is a suffix of it and costs no copy for the lookup.
 *
 * REMOVALS without remembering what was seen.  Before the walk, one pass
 * over the index counts, for every parent path, how many keys it has
 * (a parent_t per directory that has indexed members; the hash's keys
 * point into the index's own keys).  While walking directory D, the scan
 * counts the on-disk members of D found in the index; after D is listed,
 * D is marked walked, and "deficient" if it found fewer than the index
 * has.  All members found in the index are also counted overall: if that
 * total equals the number of keys, nothing was removed and the scan is
 * done.  Otherwise one pass over the index decides for each key K, with
 * parent P:
 *   - P never walked (gone, now a file or a link, or not a path the walk
 *     produces at all) -> K removed;
 *   - P walked and not deficient -> every indexed member of P was seen;
 *   - P deficient -> K's name is checked (ignored names are removed) and K
 *     is lstat()ed: no served file or directory there -> removed.
 * Keys the walk reported as modified or retyped are remembered (in
 * proportion to the output) and never removed by this pass, so that a
 * member deleted during the scan is not reported both modified and
 * removed.
 */

#include "iss_scan.h"
#include "iss_change.h"

#include <apr_file_info.h>
#include <apr_strings.h>
#include <stdlib.h>
#include <string.h>

#define FINFO_WANTED (APR_FINFO_LINK | APR_FINFO_TYPE | APR_FINFO_SIZE \
                      | APR_FINFO_MTIME | APR_FINFO_CTIME | APR_FINFO_INODE)
/* APR_FINFO_LINK is a request flag, never set in finfo.valid. */
#define FINFO_NEEDED (FINFO_WANTED & ~APR_FINFO_LINK)

/* ---- entries ------------------------------------------------------------ */

apr_size_t iss_scan_entry_encode(const iss_scan_entry_t *e, char *buf)
{
    return (apr_size_t)apr_snprintf(buf, ISS_SCAN_ENTRY_MAX,
                        "%c %" APR_OFF_T_FMT " %" APR_INT64_T_FMT
                        " %" APR_INT64_T_FMT " %" APR_UINT64_T_FMT,
                        e->type ? e->type : '?', e->size, e->mtime_us,
                        e->ctime_us, e->ino);
}

/* Parse a canonical unsigned decimal of at most @a max; NULL if there is
 * none (no digit, a leading zero, overflow). */
static const char *parse_u64(const char *p, const char *end,
                             apr_uint64_t max, apr_uint64_t *out)
{
    apr_uint64_t v = 0;
    const char *start = p;

    while (p < end && *p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');

        if (v > (max - d) / 10) {
            return NULL;
        }
        v = v * 10 + d;
        p++;
    }
    if (p == start || (*start == '0' && p - start > 1)) {
        return NULL;
    }
    *out = v;
    return p;
}

static const char *parse_i64(const char *p, const char *end,
                             apr_int64_t *out)
{
    apr_uint64_t v;

    if (p < end && *p == '-') {
        /* magnitude up to 2^63; "-0" is not canonical */
        p = parse_u64(p + 1, end, (apr_uint64_t)APR_INT64_MAX + 1, &v);
        if (p == NULL || v == 0) {
            return NULL;
        }
        *out = v == (apr_uint64_t)APR_INT64_MAX + 1
               ? APR_INT64_MIN : -(apr_int64_t)v;
        return p;
    }
    p = parse_u64(p, end, APR_INT64_MAX, &v);
    if (p != NULL) {
        *out = (apr_int64_t)v;
    }
    return p;
}

static const char *expect_space(const char *p, const char *end)
{
    return p != NULL && p < end && *p == ' ' ? p + 1 : NULL;
}

apr_status_t iss_scan_entry_decode(const char *buf, apr_size_t len,
                                   iss_scan_entry_t *e)
{
    const char *p = buf, *end = buf + len;
    iss_scan_entry_t r;
    apr_uint64_t size;

    if (len < 2 || len >= ISS_SCAN_ENTRY_MAX
        || (buf[0] != 'f' && buf[0] != 'd')) {
        return APR_EINVAL;
    }
    r.type = buf[0];
    p = expect_space(p + 1, end);
    p = p ? parse_u64(p, end, APR_INT64_MAX, &size) : NULL;
    p = expect_space(p, end);
    p = p ? parse_i64(p, end, &r.mtime_us) : NULL;
    p = expect_space(p, end);
    p = p ? parse_i64(p, end, &r.ctime_us) : NULL;
    p = expect_space(p, end);
    p = p ? parse_u64(p, end, APR_UINT64_MAX, &r.ino) : NULL;
    if (p != end) {
        return APR_EINVAL;
    }
    r.size = (apr_off_t)size;
    if ((apr_uint64_t)r.size != size || (r.type == 'd' && size != 0)) {
        return APR_EINVAL;
    }
    *e = r;
    return APR_SUCCESS;
}

int iss_scan_entry_same(const iss_scan_entry_t *a, const iss_scan_entry_t *b)
{
    if (a->type != b->type) {
        return 0;
    }
    if (a->type == 'd') {
        return 1;
    }
    return a->size == b->size && a->mtime_us == b->mtime_us
           && a->ctime_us == b->ctime_us && a->ino == b->ino;
}

int iss_scan_ignored(const iss_scan_ignore_t *rule, const char *name)
{
    const char *const *n;

    if (name[0] == '\0'
        || (name[0] == '.' && (name[1] == '\0'
                               || (name[1] == '.' && name[2] == '\0')))) {
        return 1;
    }
    if (rule == NULL) {
        return 0;
    }
    for (n = rule->names; n && *n; n++) {
        if (strcmp(name, *n) == 0) {
            return 1;
        }
    }
    for (n = rule->prefixes; n && *n; n++) {
        if (strncmp(name, *n, strlen(*n)) == 0) {
            return 1;
        }
    }
    return 0;
}

/* lstat @a fspath.  *served is 0 when something is there that is neither
 * a regular file nor a directory (then *e is not filled in). */
static apr_status_t stat_entry(const char *fspath, iss_scan_entry_t *e,
                               int *served, apr_pool_t *pool)
{
    apr_finfo_t fi;
    apr_status_t rv = apr_stat(&fi, fspath, FINFO_WANTED, pool);

    if (rv == APR_INCOMPLETE && (fi.valid & FINFO_NEEDED) == FINFO_NEEDED) {
        rv = APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        if (APR_STATUS_IS_ENOENT(rv) || APR_STATUS_IS_ENOTDIR(rv)) {
            return APR_ENOENT;
        }
        return rv == APR_INCOMPLETE ? APR_EGENERAL : rv;
    }
    *served = fi.filetype == APR_REG || fi.filetype == APR_DIR;
    if (*served) {
        e->type = fi.filetype == APR_DIR ? 'd' : 'f';
        e->size = fi.filetype == APR_DIR ? 0 : fi.size;
        e->mtime_us = fi.mtime;
        e->ctime_us = fi.ctime;
        e->ino = (apr_uint64_t)fi.inode;
    }
    return APR_SUCCESS;
}

apr_status_t iss_scan_stat(const char *fspath, iss_scan_entry_t *e,
                           apr_pool_t *pool)
{
    int served = 0;
    apr_status_t rv = stat_entry(fspath, e, &served, pool);

    if (rv == APR_SUCCESS && !served) {
        return APR_EINVAL;
    }
    return rv;
}

/* ---- the walk ----------------------------------------------------------- */

typedef struct parent_t {
    apr_size_t count;       /* index keys that have this parent */
    int walked;             /* listed by this scan */
    int deficit;            /* fewer of its indexed members found on disk */
} parent_t;

typedef struct item_t {
    iss_change_t change;
    const iss_scan_entry_t *entry;   /* NULL for a removal */
} item_t;

typedef struct scan_t {
    apr_pool_t *pool;         /* output */
    apr_pool_t *sp;           /* scratch of the whole scan */
    apr_pool_t *lp;           /* listing of one directory */
    const iss_scan_ignore_t *ignore;
    apr_hash_t *index;
    apr_hash_t *parents;      /* parent rel path -> parent_t */
    apr_hash_t *touched;      /* rel paths reported modified or retyped */
    apr_array_header_t *removals;   /* item_t */
    apr_array_header_t *others;     /* item_t: created, modified */
    char *buf;                /* "ROOT/" + rel path of the entry at hand */
    apr_size_t cap;
    apr_size_t base;          /* where the rel path starts in buf */
    apr_size_t matched;       /* on-disk members found in the index */
    iss_scan_stats_t *st;
} scan_t;

static void ensure(scan_t *s, apr_size_t need)
{
    if (need > s->cap) {
        apr_size_t cap = s->cap * 2;
        char *nb;

        while (cap < need) {
            cap *= 2;
        }
        nb = apr_palloc(s->sp, cap);
        memcpy(nb, s->buf, s->cap);
        s->buf = nb;
        s->cap = cap;
    }
}

/* Put the rel path of member @a name of the directory whose rel path has
 * @a rlen bytes into the buffer (NUL-terminated); returns its length. */
static apr_size_t child_path(scan_t *s, apr_size_t rlen, const char *name,
                             apr_size_t nlen)
{
    apr_size_t at = rlen ? rlen + 1 : 0;

    ensure(s, s->base + at + nlen + 1);
    if (rlen) {
        s->buf[s->base + rlen] = '/';
    }
    memcpy(s->buf + s->base + at, name, nlen);
    s->buf[s->base + at + nlen] = '\0';
    return at + nlen;
}

static apr_status_t fail(scan_t *s, apr_status_t rv, apr_size_t rlen)
{
    /* the root's own path is "ROOT/", shown without the slash */
    s->st->error_path = apr_pstrmemdup(s->pool, s->buf,
                                       rlen ? s->base + rlen
                                            : (s->base > 1 ? s->base - 1
                                                           : s->base));
    return rv;
}

static item_t *add(apr_array_header_t *list, iss_change_kind_e kind,
                   int collection, const char *path)
{
    item_t *it = apr_array_push(list);

    it->change.kind = kind;
    it->change.collection = collection;
    it->change.path = path;
    it->entry = NULL;
    return it;
}

/* Compare the member whose rel path (@a rlen bytes) is in the buffer. */
static void compare(scan_t *s, apr_size_t rlen, const iss_scan_entry_t *e,
                    apr_size_t *matched)
{
    const char *rel = s->buf + s->base;
    const iss_scan_entry_t *old = apr_hash_get(s->index, rel, rlen);
    const char *path;
    item_t *it;

    if (old != NULL) {
        (*matched)++;
        s->matched++;
        if (iss_scan_entry_same(old, e)) {
            return;
        }
    }
    path = apr_pstrmemdup(s->pool, rel, rlen);
    if (old == NULL || old->type != e->type) {
        if (old != NULL) {
            add(s->removals, ISS_CHANGE_REMOVED, old->type == 'd', path);
            apr_hash_set(s->touched, path, rlen, path);
        }
        it = add(s->others, ISS_CHANGE_CREATED, e->type == 'd', path);
        s->st->created++;
    }
    else {
        it = add(s->others, ISS_CHANGE_MODIFIED, e->type == 'd', path);
        apr_hash_set(s->touched, path, rlen, path);
        s->st->modified++;
    }
    it->entry = apr_pmemdup(s->pool, e, sizeof(*e));
}

/* Walk the directory whose rel path (@a rlen bytes) is in the buffer. */
static apr_status_t walk(scan_t *s, apr_size_t rlen, apr_pool_t *parent)
{
    apr_pool_t *dp;
    apr_dir_t *dir;
    apr_array_header_t *subdirs;
    parent_t *info;
    apr_size_t matched = 0;
    apr_status_t rv;
    int i;

    s->buf[s->base + rlen] = '\0';
    rv = apr_dir_open(&dir, s->buf, s->lp);
    if (rv != APR_SUCCESS) {
        apr_pool_clear(s->lp);
        if (rlen && (APR_STATUS_IS_ENOENT(rv) || APR_STATUS_IS_ENOTDIR(rv))) {
            return APR_SUCCESS;     /* vanished since its parent was listed */
        }
        return fail(s, rv, rlen);
    }
    rv = apr_pool_create(&dp, parent);
    if (rv != APR_SUCCESS) {
        apr_pool_clear(s->lp);
        return fail(s, rv, rlen);
    }
    subdirs = apr_array_make(dp, 8, sizeof(const char *));
    for (;;) {
        apr_finfo_t fi;
        iss_scan_entry_t e;
        apr_size_t nlen, clen;
        int served = 0;

        rv = apr_dir_read(&fi, APR_FINFO_NAME, dir);
        if (APR_STATUS_IS_ENOENT(rv)) {
            break;
        }
        if (rv != APR_SUCCESS && rv != APR_INCOMPLETE) {
            s->buf[s->base + rlen] = '\0';
            break;
        }
        if (iss_scan_ignored(s->ignore, fi.name)) {
            if (strcmp(fi.name, ".") && strcmp(fi.name, "..")) {
                s->st->skipped++;
            }
            continue;
        }
        if ((fi.valid & APR_FINFO_TYPE) && fi.filetype != APR_REG
            && fi.filetype != APR_DIR) {
            s->st->skipped++;       /* readdir's d_type already tells */
            continue;
        }
        nlen = strlen(fi.name);
        clen = child_path(s, rlen, fi.name, nlen);
        rv = stat_entry(s->buf, &e, &served, s->lp);
        if (rv == APR_ENOENT) {
            continue;               /* gone since readdir(): not there */
        }
        if (rv != APR_SUCCESS) {
            break;
        }
        if (!served) {
            s->st->skipped++;
            continue;
        }
        if (e.type == 'd') {
            s->st->dirs++;
            APR_ARRAY_PUSH(subdirs, const char *) =
                apr_pstrmemdup(dp, fi.name, nlen);
        }
        else {
            s->st->files++;
        }
        compare(s, clen, &e, &matched);
    }
    if (!APR_STATUS_IS_ENOENT(rv)) {
        /* the buffer names the entry that failed (or the directory) */
        rv = fail(s, rv, strlen(s->buf + s->base));
        apr_pool_clear(s->lp);
        apr_pool_destroy(dp);
        return rv;
    }
    rv = apr_dir_close(dir);
    apr_pool_clear(s->lp);
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(dp);
        return fail(s, rv, rlen);
    }

    info = apr_hash_get(s->parents, s->buf + s->base, rlen);
    if (info != NULL) {
        info->walked = 1;
        info->deficit = matched < info->count;
    }

    for (i = 0; i < subdirs->nelts; i++) {
        const char *name = APR_ARRAY_IDX(subdirs, i, const char *);

        rv = walk(s, child_path(s, rlen, name, strlen(name)), dp);
        if (rv != APR_SUCCESS) {
            break;
        }
    }
    apr_pool_destroy(dp);
    return rv;
}

/* Length of the parent part of index key @a k (@a klen bytes) in *plen;
 * returns a pointer to the last '/' or NULL when the parent is the root. */
static const char *split_key(const char *k, apr_size_t klen,
                             apr_size_t *plen)
{
    const char *p = k + klen;

    while (p > k) {
        if (*--p == '/') {
            *plen = (apr_size_t)(p - k);
            return p;
        }
    }
    *plen = 0;
    return NULL;
}

static void count_parents(scan_t *s)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(s->sp, s->index); hi; hi = apr_hash_next(hi)) {
        const void *k;
        apr_ssize_t klen;
        apr_size_t plen;
        const char *slash;
        parent_t *info;

        apr_hash_this(hi, &k, &klen, NULL);
        slash = split_key(k, (apr_size_t)klen, &plen);
        if (slash != NULL && plen == 0) {
            continue;               /* "/x": no walked path; removed later */
        }
        info = apr_hash_get(s->parents, k, plen);
        if (info == NULL) {
            info = apr_pcalloc(s->sp, sizeof(*info));
            apr_hash_set(s->parents, k, plen, info);
        }
        info->count++;
    }
}

/* Whether index key @a k was not seen on disk (see the top of the file). */
static apr_status_t key_removed(scan_t *s, const char *k, apr_size_t klen,
                                int *removed)
{
    apr_size_t plen;
    const char *slash = split_key(k, klen, &plen);
    const parent_t *info;
    iss_scan_entry_t e;
    apr_status_t rv;
    int served = 0;

    *removed = 1;
    if (klen == 0 || memchr(k, '\0', klen) || (slash && plen == 0)) {
        return APR_SUCCESS;
    }
    info = apr_hash_get(s->parents, k, plen);
    if (info == NULL || !info->walked) {
        return APR_SUCCESS;
    }
    if (!info->deficit) {
        *removed = 0;
        return APR_SUCCESS;
    }
    ensure(s, s->base + klen + 1);
    memcpy(s->buf + s->base, k, klen);
    s->buf[s->base + klen] = '\0';
    if (iss_scan_ignored(s->ignore,
                         s->buf + s->base + (slash ? plen + 1 : 0))) {
        return APR_SUCCESS;
    }
    rv = stat_entry(s->buf, &e, &served, s->lp);
    apr_pool_clear(s->lp);
    if (rv == APR_ENOENT) {
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS) {
        return fail(s, rv, klen);
    }
    *removed = !served;
    return APR_SUCCESS;
}

static apr_status_t find_removals(scan_t *s)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(s->sp, s->index); hi; hi = apr_hash_next(hi)) {
        const void *k;
        apr_ssize_t klen;
        void *v;
        const iss_scan_entry_t *old;
        apr_status_t rv;
        int removed;

        apr_hash_this(hi, &k, &klen, &v);
        if (apr_hash_get(s->touched, k, klen) != NULL) {
            continue;
        }
        rv = key_removed(s, k, (apr_size_t)klen, &removed);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        if (removed) {
            old = v;
            add(s->removals, ISS_CHANGE_REMOVED, old && old->type == 'd',
                apr_pstrmemdup(s->pool, k, (apr_size_t)klen));
        }
    }
    return APR_SUCCESS;
}

static int item_cmp(const void *a, const void *b)
{
    return strcmp(((const item_t *)a)->change.path,
                  ((const item_t *)b)->change.path);
}

static void emit(const apr_array_header_t *list, apr_array_header_t *changes,
                 apr_array_header_t *updates)
{
    const item_t *it = (const item_t *)list->elts;
    int i;

    for (i = 0; i < list->nelts; i++) {
        iss_scan_update_t *u = apr_array_push(updates);

        *(iss_change_t *)apr_array_push(changes) = it[i].change;
        u->path = it[i].change.path;
        u->entry = it[i].entry;
    }
}

apr_status_t iss_scan_tree(const char *root, const iss_scan_ignore_t *ignore,
                           apr_hash_t *index,
                           apr_array_header_t *changes,
                           apr_array_header_t *updates,
                           iss_scan_stats_t *stats, apr_pool_t *pool)
{
    iss_scan_stats_t dummy;
    scan_t s;
    apr_size_t rootlen;
    apr_status_t rv;

    if (stats == NULL) {
        stats = &dummy;
    }
    memset(stats, 0, sizeof(*stats));
    if (root == NULL || root[0] == '\0' || changes == NULL || updates == NULL
        || changes->elt_size != sizeof(iss_change_t)
        || updates->elt_size != sizeof(iss_scan_update_t)) {
        return APR_EINVAL;
    }

    memset(&s, 0, sizeof(s));
    s.pool = pool;
    s.ignore = ignore;
    s.st = stats;
    rv = apr_pool_create(&s.sp, pool);
    if (rv == APR_SUCCESS) {
        rv = apr_pool_create(&s.lp, s.sp);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    s.index = index ? index : apr_hash_make(s.sp);
    s.parents = apr_hash_make(s.sp);
    s.touched = apr_hash_make(s.sp);
    s.removals = apr_array_make(s.sp, 16, sizeof(item_t));
    s.others = apr_array_make(s.sp, 16, sizeof(item_t));

    /* buf = root without its trailing slashes, then one '/' */
    rootlen = strlen(root);
    while (rootlen > 0 && root[rootlen - 1] == '/') {
        rootlen--;
    }
    s.base = rootlen + 1;
    s.cap = 256;
    while (s.cap < s.base + 1) {
        s.cap *= 2;
    }
    s.buf = apr_palloc(s.sp, s.cap);
    memcpy(s.buf, root, rootlen);
    s.buf[rootlen] = '/';

    count_parents(&s);
    rv = walk(&s, 0, s.sp);
    if (rv == APR_SUCCESS && s.matched < apr_hash_count(s.index)) {
        rv = find_removals(&s);
    }
    if (rv == APR_SUCCESS) {
        stats->removed = (apr_uint64_t)s.removals->nelts;
        qsort(s.removals->elts, s.removals->nelts, sizeof(item_t), item_cmp);
        qsort(s.others->elts, s.others->nelts, sizeof(item_t), item_cmp);
        emit(s.removals, changes, updates);
        emit(s.others, changes, updates);
    }
    apr_pool_destroy(s.sp);
    return rv;
}
