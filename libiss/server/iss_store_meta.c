/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * iss_store_meta.c - the store directory and its generations: paths of
 * the store's files, the meta file (reading, atomic rewriting), listing
 * and sweeping the directory, rebuilding a generation and recovering
 * from a dead writer (see RECOVERY at the top of iss_store.c), and the
 * start of an operation or an open: checking the meta file, re-reading
 * it (refresh), creating a new store.
 */

#include "iss_store_private.h"

#include <apr_file_info.h>
#include <apr_general.h>
#include <apr_strings.h>

#include <string.h>
#include <strings.h>

#define META_MAGIC     "iss-store-meta"
#define FORMAT_VERSION 1
#define META_MAX       4096

/* ---- paths -------------------------------------------------------------- */

const char *iss_store__fpath(iss_store_t *s, apr_pool_t *p, const char *name)
{
    return apr_pstrcat(p, s->dir, "/", name, NULL);
}

const char *iss_store__gen_path(iss_store_t *s, apr_pool_t *p,
                                apr_uint64_t gen, int mirror)
{
    return apr_psprintf(p, "%s/" GEN_PREFIX "%" APR_UINT64_T_FMT "%s",
                        s->dir, gen, mirror ? MIRROR_SUFFIX : "");
}

/* The files of copy @a c (0 primary, 1 mirror) of the current generation
 * (names[i] NULL: the DBM type has no second file) and their sizes (0:
 * absent).  0 if the DBM type cannot name them (resolve_type() checked). */
int iss_store__copy_sizes(iss_store_t *s, apr_pool_t *p, int c,
                          const char *names[2], apr_uint64_t size[2])
{
    apr_finfo_t fi;
    int j;

    names[0] = names[1] = NULL;
    size[0] = size[1] = 0;
    if (apr_dbm_get_usednames_ex(p, s->type,
                                 iss_store__gen_path(s, p, s->gen, c),
                                 &names[0], &names[1]) != APR_SUCCESS)
        return 0;
    for (j = 0; j < 2; j++) {
        if (names[j] && apr_stat(&fi, names[j], APR_FINFO_SIZE, p)
                        == APR_SUCCESS)
            size[j] = (apr_uint64_t)fi.size;
    }
    return 1;
}

/* Whether the files of copy @a c have the sizes in @a want. */
static apr_status_t sizes_match(iss_store_t *s, apr_pool_t *p, int c,
                                const apr_uint64_t want[2])
{
    const char *f[2];
    apr_uint64_t have[2];
    int j;

    if (!iss_store__copy_sizes(s, p, c, f, have))
        return APR_SUCCESS;
    for (j = 0; j < 2; j++) {
        if (f[j] && have[j] != want[j])
            return iss_store__damaged(s, "the copies of the DBM differ from "
                                      "what the state store left: %s has %"
                                      APR_UINT64_T_FMT " bytes, not %"
                                      APR_UINT64_T_FMT " (a file was "
                                      "truncated, removed or replaced)", f[j],
                                      have[j], want[j]);
    }
    return APR_SUCCESS;
}

/* Whether the file that holds the records of copy @a c (sdbm: the .pag;
 * the others have one file) is empty or missing. */
static int copy_empty(iss_store_t *s, apr_pool_t *p, int c)
{
    const char *f[2];
    apr_uint64_t size[2];

    return iss_store__copy_sizes(s, p, c, f, size)
           && size[f[1] ? 1 : 0] == 0;
}

/* The DBM files as the store left them.  While the mirror is current (no
 * checkpoint mark, no applied generation) the primary and the mirror hold
 * the same records written by the same operations in the same order, or
 * are byte copies, so their files have the same sizes (every DBM type);
 * while it lags, each copy's files have the sizes this boot's processes
 * last gave them (the shared header), when known (the mirror's only when
 * no checkpoint is under way: one may be copying the primary over it).
 * A file that differs was truncated or replaced from outside: the store
 * is damaged (ISS_STORE_EDAMAGED), and is not used, rather than read as
 * if the lost records had never been (a lost log position would restart
 * the sync log).  Under the DBM lock.  Cost: a directory read and up to
 * four stat() calls (and a try of the checkpoint lock). */
apr_status_t iss_store__copies_check(iss_store_t *s, apr_pool_t *p)
{
    const char *f[2][2];
    apr_finfo_t fi[2];
    apr_uint64_t want[2];
    int i, j, marks;

    if (iss_store__mirror_lags(s, p, &marks)) {
        apr_status_t rv = APR_SUCCESS;

        /* The records of both copies gone alike: every record lost,
         * consistently (as when the mirror is current); what the mirror
         * lacked goes too. */
        if (!marks && copy_empty(s, p, 0) && copy_empty(s, p, 1)) {
            int took;

            if (!iss_store__ckpt_idle(s, &took))
                return APR_SUCCESS;     /* the next look, when it is ours */
            iss_store__note(s, LOG_WARNING, APR_SUCCESS, "state store in %s: "
                            "both copies of the DBM are empty (truncated from "
                            "outside): every record is lost", s->dir);
            rv = iss_store__mirror_refresh(s, p);
            if (took)
                iss_store__ckpt_release(s);
            return rv;
        }
        for (i = 0; i < 2 && rv == APR_SUCCESS; i++) {
            int took = 0;

            /* The mirror is rewritten in place by a checkpointer holding
             * the checkpoint lock alone (not the DBM lock, which keeps
             * the primary still): while one is at it, the mirror's sizes
             * mean nothing.  (A copy a dead checkpointer left is done
             * again before anyone checks: by recovery at open, by the
             * next checkpoint first.)  The checkpoint checks them
             * itself, under its lock. */
            if (i == 1 && !iss_store__ckpt_idle(s, &took))
                continue;
            if (iss_store__sizes_known(s, i, want))
                rv = sizes_match(s, p, i, want);
            if (took)
                iss_store__ckpt_release(s);
        }
        return rv;
    }
    for (i = 0; i < 2; i++) {
        if (apr_dbm_get_usednames_ex(p, s->type,
                                     iss_store__gen_path(s, p, s->gen, i),
                                     &f[i][0], &f[i][1]) != APR_SUCCESS)
            return APR_SUCCESS;         /* resolve_type() checked it */
    }
    for (j = 0; j < 2; j++) {
        apr_status_t r0, r1;

        if (!f[0][j] || !f[1][j])
            continue;
        r0 = apr_stat(&fi[0], f[0][j], APR_FINFO_SIZE, p);
        r1 = apr_stat(&fi[1], f[1][j], APR_FINFO_SIZE, p);
        if (r0 != APR_SUCCESS && r1 != APR_SUCCESS)
            continue;                   /* neither made yet (sdbm .dir) */
        if (r0 != APR_SUCCESS || r1 != APR_SUCCESS
            || fi[0].size != fi[1].size)
            return iss_store__damaged(s, "the two copies of the DBM differ: "
                                      "%s has %" APR_OFF_T_FMT " bytes, %s %"
                                      APR_OFF_T_FMT " (a file was truncated, "
                                      "removed or replaced)", f[0][j],
                                      r0 == APR_SUCCESS ? fi[0].size
                                                        : (apr_off_t)-1,
                                      f[1][j],
                                      r1 == APR_SUCCESS ? fi[1].size
                                                        : (apr_off_t)-1);
    }
    /* The sizes to hold them to once the mirror lags again (a process
     * that died before it noted them leaves older ones). */
    iss_store__sizes_note(s, 0, p);
    iss_store__sizes_note(s, 1, p);
    return APR_SUCCESS;
}

/* ---- the meta file ------------------------------------------------------ */

/* Next line of @a *text (without its newline) or NULL. */
static char *next_line(char **text)
{
    char *line = *text, *nl;

    if (!line || !*line)
        return NULL;
    nl = strchr(line, '\n');
    if (!nl)
        return NULL;
    *nl = '\0';
    *text = nl + 1;
    return line;
}

static const char *field(char *line, const char *name)
{
    apr_size_t n = strlen(name);

    if (!line || strncmp(line, name, n) != 0 || line[n] != ' ' || !line[n + 1])
        return NULL;
    return line + n + 1;
}

static int valid_token(const char *t, apr_size_t max, const char *chars)
{
    apr_size_t n = strlen(t);

    return n > 0 && n <= max && strspn(t, chars) == n;
}

apr_status_t iss_store__meta_read(iss_store_t *s, apr_pool_t *p, meta_t *m,
                                  int *missing)
{
    const char *path = iss_store__fpath(s, p, META_NAME), *v;
    char *buf, *text, *line, *last;
    apr_size_t n = 0;
    apr_file_t *f;
    apr_uint32_t crc;
    apr_int64_t ver;
    apr_status_t rv;

    *missing = 0;
    rv = apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_OS_DEFAULT, p);
    if (APR_STATUS_IS_ENOENT(rv)) {
        *missing = 1;
        return APR_SUCCESS;
    }
    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "cannot open %s: %pm", path, &rv);
    buf = apr_palloc(p, META_MAX + 2);
    rv = apr_file_read_full(f, buf, META_MAX + 1, &n);
    {
        apr_finfo_t fi;

        if (apr_file_info_get(&fi, APR_FINFO_IDENT | APR_FINFO_MTIME
                              | APR_FINFO_SIZE, f) == APR_SUCCESS) {
            iss_store__meta_ident(s, &fi);
        }
    }
    apr_file_close(f);
    if (rv != APR_SUCCESS && !APR_STATUS_IS_EOF(rv))
        return iss_store__fail(s, rv, "cannot read %s: %pm", path, &rv);
    if (n > META_MAX)
        return iss_store__damaged(s, "%s is garbled: too large for a meta "
                                  "file", path);
    buf[n] = '\0';
    if (strlen(buf) != n || n == 0 || buf[n - 1] != '\n')
        return iss_store__damaged(s, "%s is garbled: not an iss-store meta "
                                  "file", path);

    text = apr_pstrdup(p, buf);
    line = next_line(&text);
    v = field(line, META_MAGIC);
    if (!v || !valid_token(v, 9, "0123456789"))
        return iss_store__damaged(s, "%s is garbled: not an iss-store meta "
                                  "file", path);
    ver = apr_atoi64(v);
    if (ver != FORMAT_VERSION)
        return iss_store__damaged(s, "%s has format version %s, but this "
                                  "mod_iss reads version %d only", path, v,
                                  FORMAT_VERSION);

    /* The last line is "crc32 XXXXXXXX" over everything before it. */
    buf[n - 1] = '\0';
    last = strrchr(buf, '\n');
    v = last ? field(last + 1, "crc32") : NULL;
    if (!v || !valid_token(v, 8, "0123456789abcdef") || strlen(v) != 8)
        return iss_store__damaged(s, "%s is garbled: no checksum line", path);
    crc = (apr_uint32_t)iss_store__crc_add(crc32(0L, Z_NULL, 0), buf,
                                           (apr_size_t)(last + 1 - buf));
    if (crc != (apr_uint32_t)apr_strtoi64(v, NULL, 16))
        return iss_store__damaged(s, "%s is garbled: checksum mismatch", path);

    text = apr_pstrndup(p, buf, (apr_size_t)(last + 1 - buf));
    (void)next_line(&text);
    m->type = field(next_line(&text), "dbm-type");
    m->id = field(next_line(&text), "store-id");
    v = field(next_line(&text), "generation");
    if (!m->type || !valid_token(m->type, 31, "abcdefghijklmnopqrstuvwxyz0123456789")
        || !m->id || !valid_token(m->id, 36, "0123456789abcdef-")
        || !v || !valid_token(v, 19, "0123456789") || *text)
        return iss_store__damaged(s, "%s is garbled: unexpected contents",
                                  path);
    m->gen = (apr_uint64_t)apr_atoi64(v);
    if (m->gen == 0)
        return iss_store__damaged(s, "%s is garbled: generation 0", path);
    return APR_SUCCESS;
}

/* A small file written whole: @a len bytes to @a tmp, synced, renamed to
 * @a dst (the directory is not synced: the caller's). */
apr_status_t iss_store__write_whole(iss_store_t *s, const char *tmp,
                                    const char *dst, const char *data,
                                    apr_size_t len, apr_pool_t *p)
{
    apr_file_t *f;
    apr_status_t rv;

    rv = apr_file_open(&f, tmp, APR_FOPEN_WRITE | APR_FOPEN_CREATE
                       | APR_FOPEN_TRUNCATE | APR_FOPEN_BINARY, FILE_PERMS, p);
    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "cannot create %s: %pm", tmp, &rv);
    rv = apr_file_write_full(f, data, len, NULL);
    if (rv != APR_SUCCESS) {
        apr_file_close(f);
        rv = iss_store__fail(s, rv, "writing %s failed: %pm", tmp, &rv);
    }
    else {
        rv = iss_store__close_synced(s, f, tmp);
    }
    if (rv == APR_SUCCESS && (rv = apr_file_rename(tmp, dst, p)) != APR_SUCCESS)
        rv = iss_store__fail(s, rv, "cannot rename %s to %s: %pm", tmp, dst,
                             &rv);
    if (rv != APR_SUCCESS)
        apr_file_remove(tmp, p);
    return rv;
}

static apr_status_t meta_write(iss_store_t *s, apr_pool_t *p, apr_uint64_t gen)
{
    const char *tmp = iss_store__fpath(s, p, META_TMP),
               *dst = iss_store__fpath(s, p, META_NAME);
    char *text, *all;
    apr_status_t rv;

    text = apr_psprintf(p, META_MAGIC " %d\ndbm-type %s\nstore-id %s\n"
                        "generation %" APR_UINT64_T_FMT "\n",
                        FORMAT_VERSION, s->type, s->id, gen);
    all = apr_psprintf(p, "%scrc32 %08x\n", text,
                       (unsigned)iss_store__crc_add(crc32(0L, Z_NULL, 0), text,
                                                    strlen(text)));
    if ((rv = iss_store__write_whole(s, tmp, dst, all, strlen(all), p))
        != APR_SUCCESS)
        return rv;
    {
        apr_finfo_t fi;

        if (apr_stat(&fi, dst, APR_FINFO_IDENT | APR_FINFO_MTIME
                     | APR_FINFO_SIZE, p) == APR_SUCCESS) {
            iss_store__meta_ident(s, &fi);
        }
    }
    return iss_store__sync_dir(s, p);
}

/* ---- generations, recovery ---------------------------------------------- */

/* Generation number in a DBM file name, or 0 if @a name is none. */
static apr_uint64_t gen_of(const char *name)
{
    apr_size_t n = strlen(GEN_PREFIX);
    apr_uint64_t g = 0;
    const char *d;

    if (strncmp(name, GEN_PREFIX, n) != 0)
        return 0;
    for (d = name + n; *d >= '0' && *d <= '9'; d++) {
        if (g > (APR_UINT64_MAX - 9) / 10)
            return 0;
        g = g * 10 + (apr_uint64_t)(*d - '0');
    }
    if (d == name + n || (*d != '\0' && *d != '.'))
        return 0;
    return g;
}

/* Names in the store directory that start with "iss-store." or are
 * Berkeley DB's temporary names for them. */
static apr_status_t list_dir(iss_store_t *s, apr_pool_t *p,
                             apr_array_header_t **names)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_status_t rv = apr_dir_open(&d, s->dir, p);

    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "cannot read directory %s: %pm", s->dir,
                               &rv);
    *names = apr_array_make(p, 8, sizeof(const char *));
    while ((rv = apr_dir_read(&fi, APR_FINFO_NAME, d)) == APR_SUCCESS
           || rv == APR_INCOMPLETE) {
        if (fi.name && (strncmp(fi.name, "iss-store.", 10) == 0
                        || strncmp(fi.name, BDB_TMP_PREFIX "iss-store.",
                                   strlen(BDB_TMP_PREFIX) + 10) == 0))
            APR_ARRAY_PUSH(*names, const char *) = apr_pstrdup(p, fi.name);
    }
    apr_dir_close(d);
    if (!APR_STATUS_IS_ENOENT(rv))
        return iss_store__fail(s, rv, "cannot read directory %s: %pm", s->dir,
                               &rv);
    return APR_SUCCESS;
}

static int is_scratch_name(const char *name)
{
    return strcmp(name, META_TMP) == 0 || strcmp(name, JOURNAL_TMP) == 0
           || strcmp(name, JOURNAL_MIRROR ".tmp") == 0
           || strncmp(name, PROBE_NAME, strlen(PROBE_NAME)) == 0
           || strncmp(name, BDB_TMP_PREFIX, strlen(BDB_TMP_PREFIX)) == 0;
}

/* Remove files of generations other than the current one and scratch
 * files left by dead writers.  Called under the lock with no journal. */
apr_status_t iss_store__sweep(iss_store_t *s, apr_pool_t *p)
{
    apr_array_header_t *names;
    apr_status_t rv = list_dir(s, p, &names);
    int i, removed = 0;

    for (i = 0; rv == APR_SUCCESS && i < names->nelts; i++) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);
        apr_uint64_t g = gen_of(name);

        if (strcmp(name, JOURNAL_MIRROR ".tmp") == 0) {
            /* The mirror's mark being written: a checkpointer writes it
             * under its own lock, not the DBM lock this holds.  Left by
             * a dead one only if that lock is free (a sweep that removed
             * a live one's made its copy fail: t/09_writers.t). */
            if (!iss_store__ckpt_try(s))
                continue;
            rv = iss_store__remove_file(s, iss_store__fpath(s, p, name), p);
            iss_store__ckpt_release(s);
            removed++;
        }
        else if ((g && g != s->gen) || is_scratch_name(name)) {
            rv = iss_store__remove_file(s, iss_store__fpath(s, p, name), p);
            removed++;
        }
    }
    if (removed && rv == APR_SUCCESS)
        iss_store__note(s, LOG_INFO, APR_SUCCESS, "state store in %s: removed "
                        "%d leftover files of old generations or dead writers",
                        s->dir, removed);
    return rv;
}

/* Remove a DBM on an error path, keeping the error message. */
static void discard_dbm(iss_store_t *s, apr_pool_t *p, const char *path)
{
    char keep[sizeof(iss_store__err)];

    apr_cpystrn(keep, iss_store__err, sizeof(keep));
    (void)iss_store__remove_dbm(s, p, path);
    apr_cpystrn(iss_store__err, keep, sizeof(iss_store__err));
}

/* Build generation N+1 from the primary or the mirror of generation N,
 * apply @a ops (may be NULL) and make N+1 current. */
static apr_status_t rebuild(iss_store_t *s, int from_mirror,
                            const opset_t *ops, apr_pool_t *p,
                            const char *why)
{
    apr_uint64_t ng = s->gen + 1, og = s->gen;
    const char *src_path = iss_store__gen_path(s, p, og, from_mirror);
    const char *dst0 = iss_store__gen_path(s, p, ng, 0),
               *dst1 = iss_store__gen_path(s, p, ng, 1);
    db_t *src = NULL, *d0 = NULL, *d1 = NULL;
    apr_size_t copied = 0, dropped = 0;
    apr_pool_t *ip = NULL;
    iter_t *it = NULL;
    const char *dk;
    apr_size_t dklen;
    char kb[128];
    apr_status_t rv;

    if ((rv = iss_store__remove_dbm(s, p, dst0)) != APR_SUCCESS
        || (rv = iss_store__remove_dbm(s, p, dst1)) != APR_SUCCESS
        || (rv = iss_store__need_space(s,
                                       2 * iss_store__dbm_disk_size(s, p,
                                                                    src_path)
                                       + (ops ? 4 * iss_store__ops_bytes(ops)
                                              : 0)
                                       + 1024 * 1024)) != APR_SUCCESS
        || (rv = iss_store__db_open(s, src_path, APR_DBM_READONLY, p, &src))
           != APR_SUCCESS
        || (rv = iss_store__iter_open(s, src, p, &it)) != APR_SUCCESS
        || (rv = iss_store__db_open(s, dst0, APR_DBM_RWCREATE, p, &d0))
           != APR_SUCCESS
        || (rv = iss_store__db_open(s, dst1, APR_DBM_RWCREATE, p, &d1))
           != APR_SUCCESS)
        goto cleanup;
    if ((rv = apr_pool_create(&ip, p)) != APR_SUCCESS) {
        rv = iss_store__fail(s, rv, "cannot create a pool: %pm", &rv);
        goto cleanup;
    }
    for (;;) {
        char *rec;
        apr_size_t reclen;

        apr_pool_clear(ip);
        if ((rv = iss_store__iter_next(it, p, &dk, &dklen)) != APR_SUCCESS
            || !dk)
            break;
        if ((rv = iss_store__db_fetch(src, dk, dklen, ip, &rec, &reclen))
                != APR_SUCCESS)
            break;
        if (!rec || !iss_store__rec_ok(dk, dklen, rec, reclen)) {
            dropped++;
            iss_store__note(s, LOG_ERR, ISS_STORE_EDAMAGED, "state store "
                            "recovery: record %s in %s %s; it was dropped",
                            iss_store__show_dk(kb, sizeof(kb), dk, dklen),
                            src_path,
                            rec ? "fails its checksum"
                                : "cannot be fetched by its key");
            continue;
        }
        if ((rv = iss_store__db_store(d0, dk, dklen, rec, reclen))
                != APR_SUCCESS
            || (rv = iss_store__db_store(d1, dk, dklen, rec, reclen))
               != APR_SUCCESS)
            break;
        copied++;
    }
    iss_store__iter_close(it);
    it = NULL;
    iss_store__db_close(src);
    iss_store__db_close(d0);
    iss_store__db_close(d1);
    src = d0 = d1 = NULL;
    if (rv != APR_SUCCESS
        || (rv = iss_store__sync_dbm(s, p, dst0)) != APR_SUCCESS
        || (rv = iss_store__sync_dbm(s, p, dst1)) != APR_SUCCESS
        || (rv = iss_store__count_copy(s, dst0, copied, p)) != APR_SUCCESS
        || (rv = iss_store__count_copy(s, dst1, copied, p)) != APR_SUCCESS)
        goto cleanup;
    if (ops && ((rv = iss_store__apply_copy(s, dst0, ops, p, NULL))
                    != APR_SUCCESS
                || (rv = iss_store__apply_copy(s, dst1, ops, p, NULL))
                   != APR_SUCCESS))
        goto cleanup;
    if ((rv = meta_write(s, p, ng)) != APR_SUCCESS)
        goto cleanup;

    /* Committed: generation N+1 is current. */
    s->gen = ng;
    if ((rv = iss_store__remove_dbm(s, p, iss_store__gen_path(s, p, og, 0)))
            != APR_SUCCESS
        || (rv = iss_store__remove_dbm(s, p, iss_store__gen_path(s, p, og, 1)))
           != APR_SUCCESS
        || (rv = iss_store__remove_file(s,
                                        iss_store__fpath(s, p, JOURNAL_NAME),
                                        p)) != APR_SUCCESS
        || (rv = iss_store__remove_file(s,
                                        iss_store__fpath(s, p, JOURNAL_MIRROR),
                                        p)) != APR_SUCCESS
        || (rv = iss_store__sync_dir(s, p)) != APR_SUCCESS)
        return rv;
    iss_store__note(s, dropped ? LOG_ERR : LOG_WARNING, APR_SUCCESS,
                    "state store in %s recovered: %s; rebuilt generation %"
                    APR_UINT64_T_FMT " from %s (%" APR_SIZE_T_FMT
                    " records copied, %" APR_SIZE_T_FMT
                    " damaged records dropped)", s->dir, why, ng, src_path,
                    copied, dropped);
    return APR_SUCCESS;

cleanup:
    iss_store__iter_close(it);
    iss_store__db_close(src);
    iss_store__db_close(d0);
    iss_store__db_close(d1);
    if (ip)
        apr_pool_destroy(ip);
    discard_dbm(s, p, dst0);
    discard_dbm(s, p, dst1);
    return rv;
}

/* Whether the mirror lags behind the primary: a checkpoint's mark (or
 * its scratch file; *marks), or applied log generations.  The marks
 * first: inside a checkpoint that answers without reading the directory.
 * A directory that cannot be read counts as lagging (the stricter
 * checks). */
int iss_store__mirror_lags(iss_store_t *s, apr_pool_t *p, int *marks)
{
    apr_uint64_t bytes;
    int applied = 0;

    if ((*marks = iss_store__journal_left(s, p)))
        return 1;
    return iss_store__applied_info(s, p, &applied, &bytes) != APR_SUCCESS
           || applied > 0;
}

/* Whether a dead writer left a journal (or its scratch file). */
int iss_store__journal_left(iss_store_t *s, apr_pool_t *p)
{
    return iss_store__file_exists(iss_store__fpath(s, p, JOURNAL_NAME), p)
           || iss_store__file_exists(iss_store__fpath(s, p, JOURNAL_MIRROR),
                                     p)
           || iss_store__file_exists(iss_store__fpath(s, p, JOURNAL_TMP), p);
}

/*
 * Finish what a checkpoint that died left (under the exclusive DBM lock):
 *  - JOURNAL_MIRROR: the primary is whole and the mirror was being made a
 *    copy of it: copy again (unless a live checkpointer is at it).
 *  - JOURNAL_NAME without operations (the mark a checkpoint keeps while it
 *    writes the primary): nothing if the primary is whole (s->dbm_torn
 *    unset: the checkpoint is under way, or died between two commits and
 *    the next applies its generations again); else rebuild the DBM from
 *    the mirror plus the applied generations, the state before that
 *    checkpoint (its generations are still live).
 *  - JOURNAL_NAME with operations (written by versions that committed
 *    batches to both copies in turn): the same rebuild, the batch applied
 *    on top if the journal is whole.
 */
apr_status_t iss_store__recover(iss_store_t *s, apr_pool_t *p)
{
    const char *jp = iss_store__fpath(s, p, JOURNAL_NAME),
               *mp = iss_store__fpath(s, p, JOURNAL_MIRROR);
    const char *tp = iss_store__fpath(s, p, JOURNAL_TMP), *path, *why;
    int has_j = iss_store__file_exists(jp, p),
        has_m = iss_store__file_exists(mp, p);
    apr_uint64_t jgen = 0;
    opset_t *ops, *all;
    apr_status_t rv;
    int i;

    if (iss_store__file_exists(tp, p)) {
        if ((rv = iss_store__remove_file(s, tp, p)) != APR_SUCCESS)
            return rv;
        iss_store__note(s, LOG_WARNING, APR_SUCCESS, "state store in %s: "
                        "removed %s left by a writer that died before "
                        "committing; its batch was not applied", s->dir, tp);
    }
    if (!has_j && !has_m)
        return APR_SUCCESS;
    if (has_j && has_m)
        return iss_store__damaged(s, "both %s and %s exist: the state store "
                                  "cannot tell which copy is intact", jp, mp);
    path = has_j ? jp : mp;
    if ((rv = iss_store__journal_read(s, path, p, &ops, &jgen, &why))
            != APR_SUCCESS)
        return rv;
    if (!why && jgen != s->gen) {
        /* A rebuild committed but died before the unlink: both copies
         * hold everything applied, the applied generations too. */
        if ((rv = iss_store__remove_file(s, path, p)) != APR_SUCCESS
            || (rv = iss_store__applied_drop(s, p)) != APR_SUCCESS
            || (rv = iss_store__sweep(s, p)) != APR_SUCCESS)
            return rv;
        iss_store__note(s, LOG_WARNING, APR_SUCCESS,
                        "state store in %s: removed %s of generation %"
                        APR_UINT64_T_FMT ", already applied to generation %"
                        APR_UINT64_T_FMT, s->dir, path, jgen, s->gen);
        return APR_SUCCESS;
    }
    if (has_m) {
        if (!iss_store__ckpt_try(s))
            return APR_SUCCESS;         /* a live checkpointer copies it */
        rv = iss_store__mirror_refresh(s, p);
        iss_store__ckpt_release(s);
        if (rv == APR_SUCCESS)
            iss_store__note(s, LOG_WARNING, APR_SUCCESS, "state store in %s "
                            "recovered: a checkpoint died while copying the "
                            "DBM to its mirror copy; copied again", s->dir);
        return rv;
    }
    if (!why && ops->list->nelts == 0 && !s->dbm_torn)
        return APR_SUCCESS;             /* a checkpoint under way, or one
                                         * that died between two commits */
    all = iss_store__opset_make(p);
    if ((rv = iss_store__applied_read(s, p, all)) != APR_SUCCESS)
        return rv;
    for (i = 0; !why && i < ops->list->nelts; i++) {
        const op_t *op = APR_ARRAY_IDX(ops->list, i, const op_t *);

        iss_store__opset_stage(all, op->key, op->klen, op->val, op->vlen,
                               op->del);
    }
    rv = rebuild(s, 1, all, p,
                 why ? apr_psprintf(p, "a writer died while applying a batch "
                                    "and %s cannot be used (%s), so the "
                                    "batch was dropped", jp, why)
                 : ops->list->nelts
                   ? apr_psprintf(p, "a writer died while applying a batch of "
                                  "%d changes; the batch was applied again",
                                  ops->list->nelts)
                 : apr_psprintf(p, "a checkpoint died while writing the DBM; "
                                "it was restored from its mirror copy and %d "
                                "change(s) of the log applied to both (the "
                                "rest is applied again by the next "
                                "checkpoint)", all->list->nelts));
    if (rv == APR_SUCCESS)
        rv = iss_store__applied_drop(s, p);
    if (rv == APR_SUCCESS)
        rv = iss_store__sweep(s, p);
    if (rv == APR_SUCCESS) {
        iss_store__sizes_note(s, 0, p);
        iss_store__sizes_note(s, 1, p);
    }
    return rv;
}

/* ---- opening: checking the meta file, creating a store ------------------ */

static const char *type_shown(iss_store_t *s, apr_pool_t *p)
{
    if (strcasecmp(s->type_asked, s->type) == 0)
        return s->type_asked;
    return apr_psprintf(p, "%s (%s)", s->type_asked, s->type);
}

apr_status_t iss_store__check_meta(iss_store_t *s, apr_pool_t *p,
                                   const meta_t *m)
{
    if (strcmp(m->type, s->type) != 0)
        return iss_store__damaged(s, "state in %s was written with DBM type "
                                  "%s, ISSDBMType says %s", s->dir, m->type,
                                  type_shown(s, p));
    return APR_SUCCESS;
}

/* Re-read the meta file and recover; start of every operation. */
apr_status_t iss_store__refresh(iss_store_t *s, apr_pool_t *p)
{
    meta_t m;
    int missing;
    apr_status_t rv = iss_store__meta_read(s, p, &m, &missing);

    if (rv != APR_SUCCESS)
        return rv;
    if (missing)
        return iss_store__damaged(s, "%s has disappeared: the state store was "
                                  "removed while in use",
                                  iss_store__fpath(s, p, META_NAME));
    if ((rv = iss_store__check_meta(s, p, &m)) != APR_SUCCESS)
        return rv;
    if (strcmp(m.id, s->id) != 0) {
        iss_store__note(s, LOG_WARNING, APR_SUCCESS, "state store in %s was "
                        "re-created (id %s, was %s)", s->dir, m.id, s->id);
        apr_cpystrn(s->id, m.id, sizeof(s->id));
    }
    s->gen = m.gen;
    return iss_store__recover(s, p);
}

static apr_status_t new_id(iss_store_t *s)
{
    unsigned char r[16];
    char h[33];
    apr_status_t rv = apr_generate_random_bytes(r, sizeof(r));

    if (rv != APR_SUCCESS)
        return iss_store__fail(s, rv, "cannot generate a store id: %pm", &rv);
    iss_hex_encode(h, r, sizeof(r));
    apr_snprintf(s->id, sizeof(s->id), "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8,
                 h + 12, h + 16, h + 20);
    return APR_SUCCESS;
}

/* No meta file: refuse if DBM files with records or a journal exist;
 * remove the empty files of an interrupted creation; create the store. */
apr_status_t iss_store__create(iss_store_t *s, apr_pool_t *p)
{
    apr_array_header_t *names, *gens;
    apr_status_t rv = list_dir(s, p, &names);
    int i, m;

    if (rv != APR_SUCCESS)
        return rv;
    gens = apr_array_make(p, 2, sizeof(apr_uint64_t));
    for (i = 0; i < names->nelts; i++) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);
        apr_uint64_t g = gen_of(name);

        if (strcmp(name, JOURNAL_NAME) == 0
            || strcmp(name, JOURNAL_MIRROR) == 0)
            return iss_store__damaged(s, "%s holds %s but no %s: refusing to "
                                      "start a new state store over it",
                                      s->dir, name, META_NAME);
        if (strncmp(name, WAL_PREFIX, strlen(WAL_PREFIX)) == 0) {
            apr_finfo_t fi;

            if (apr_stat(&fi, iss_store__fpath(s, p, name), APR_FINFO_SIZE, p)
                    == APR_SUCCESS && fi.size > WAL_HDR)
                return iss_store__damaged(s, "%s holds the write-ahead log "
                                          "%s but no %s: refusing to start a "
                                          "new state store over it", s->dir,
                                          name, META_NAME);
            if ((rv = iss_store__remove_file(s, iss_store__fpath(s, p, name),
                                             p)) != APR_SUCCESS)
                return rv;
        }
        if (g)
            APR_ARRAY_PUSH(gens, apr_uint64_t) = g;
    }
    for (i = 0; i < gens->nelts; i++) {
        for (m = 0; m < 2; m++) {
            const char *path = iss_store__gen_path(s, p,
                                                   APR_ARRAY_IDX(gens, i,
                                                                 apr_uint64_t),
                                                   m);
            const char *dk = NULL;
            apr_size_t dklen;
            iter_t *it = NULL;
            db_t *db = NULL;

            if (!iss_store__dbm_exists(s, p, path))
                continue;
            rv = iss_store__db_open(s, path, APR_DBM_READONLY, p, &db);
            if (rv == APR_SUCCESS)
                rv = iss_store__iter_open(s, db, p, &it);
            if (rv == APR_SUCCESS)
                rv = iss_store__iter_next(it, p, &dk, &dklen);
            iss_store__iter_close(it);
            iss_store__db_close(db);
            if (rv != APR_SUCCESS) {
                const char *why = apr_pstrdup(p, iss_store__err);

                return iss_store__damaged(s, "%s holds DBM file %s but no %s, "
                                          "and it cannot be read as DBM type "
                                          "%s (%s): refusing to start a new "
                                          "state store over it", s->dir, path,
                                          META_NAME, type_shown(s, p), why);
            }
            if (dk)
                return iss_store__damaged(s, "%s holds DBM file %s with "
                                          "records but no %s: refusing to "
                                          "start a new state store over it",
                                          s->dir, path, META_NAME);
            iss_store__note(s, LOG_WARNING, APR_SUCCESS, "state store in %s: "
                            "removing empty %s left by an interrupted "
                            "creation", s->dir, path);
            if ((rv = iss_store__remove_dbm(s, p, path)) != APR_SUCCESS)
                return rv;
        }
    }
    for (i = 0; i < names->nelts; i++) {
        const char *name = APR_ARRAY_IDX(names, i, const char *);

        if (is_scratch_name(name)
            && (rv = iss_store__remove_file(s, iss_store__fpath(s, p, name),
                                            p)) != APR_SUCCESS)
            return rv;
    }

    if ((rv = new_id(s)) != APR_SUCCESS)
        return rv;
    s->gen = 1;
    for (m = 0; m < 2; m++) {
        const char *path = iss_store__gen_path(s, p, s->gen, m);
        db_t *db;

        if ((rv = iss_store__db_open(s, path, APR_DBM_RWCREATE, p, &db))
                != APR_SUCCESS)
            return rv;
        iss_store__db_close(db);
        if ((rv = iss_store__sync_dbm(s, p, path)) != APR_SUCCESS)
            return rv;
    }
    if ((rv = meta_write(s, p, s->gen)) != APR_SUCCESS)
        return rv;
    iss_store__note(s, LOG_INFO, APR_SUCCESS, "created a new state store in "
                    "%s (DBM type %s, id %s)", s->dir, s->type, s->id);
    return APR_SUCCESS;
}
