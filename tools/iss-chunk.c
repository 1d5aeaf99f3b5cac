/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * iss-chunk — chunk manifests and deltas from the command line (tests and
 * debugging of the chunk protocol, issue 5; not installed).
 *
 *   iss-chunk manifest [--params MIN,AVG,MAX] FILE
 *                              the ISM1 manifest of FILE on stdout
 *                              (default parameters 16384,65536,262144)
 *   iss-chunk ids MANIFEST     one line per entry: hex id, length, offset
 *   iss-chunk delta BASE.ism NEW.ism
 *                              the ISD1 delta from BASE to NEW on stdout
 *   iss-chunk apply BASE.ism DELTA
 *                              the ISM1 manifest BASE + DELTA on stdout
 *   iss-chunk frames FILE MANIFEST [IDS]
 *                              the chunk frames of FILE for an upload
 *                              (application/vnd.mod-iss.chunks,
 *                              iss_frames.h): for each distinct chunk of
 *                              MANIFEST, in manifest order, whose id is
 *                              listed in IDS (one hex id a line; all
 *                              chunks without IDS): id[32], length u32
 *                              big-endian, the bytes; each chunk is
 *                              checked against its id first
 *
 * Manifests and deltas are read with no limits beyond the format's.
 * Exit status: 0 done, 1 an error (a message on stderr), 2 usage.
 */

#include "iss_cdc.h"
#include "iss_bytes.h"
#include "iss_digest.h"
#include "iss_frames.h"
#include "iss_manifest.h"

#include <apr_general.h>
#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_strings.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIECE   ((apr_size_t)1 << 20)
#define SHA_LEN ISS_DIGEST_SHA256_LEN

static const iss_manifest_limits_t no_limits = {
    APR_UINT32_MAX, APR_UINT64_MAX, NULL
};

static int usage(void)
{
    fprintf(stderr,
            "usage: iss-chunk manifest [--params MIN,AVG,MAX] FILE\n"
            "       iss-chunk ids MANIFEST\n"
            "       iss-chunk delta BASE.ism NEW.ism\n"
            "       iss-chunk apply BASE.ism DELTA\n"
            "       iss-chunk frames FILE MANIFEST [IDS]\n");
    return 2;
}

static int fail(const char *what, apr_status_t rv)
{
    char buf[256];
    const char *text = iss_manifest_error_text(rv);

    fprintf(stderr, "iss-chunk: %s: %s\n", what,
            text ? text : apr_strerror(rv, buf, sizeof(buf)));
    return 1;
}

static int write_out(const void *buf, apr_size_t len)
{
    if (len > 0 && fwrite(buf, 1, len, stdout) != len) {
        fprintf(stderr, "iss-chunk: writing to stdout failed\n");
        return 1;
    }
    return 0;
}

static int flush_out(void)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "iss-chunk: writing to stdout failed\n");
        return 1;
    }
    return 0;
}

/* The whole of @a path (a file or a pipe) in *buf / *len. */
static apr_status_t read_all(const char *path, unsigned char **buf,
                             apr_size_t *len, apr_pool_t *pool)
{
    apr_file_t *f;
    apr_size_t cap = PIECE, have = 0;
    unsigned char *b;
    apr_status_t rv;

    if ((rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT, pool))
        != APR_SUCCESS)
        return rv;
    b = malloc(cap);
    for (;;) {
        apr_size_t n = 0;

        if (b == NULL) {
            rv = APR_ENOMEM;
            break;
        }
        rv = apr_file_read_full(f, b + have, cap - have, &n);
        have += n;
        if (rv == APR_EOF) {
            rv = APR_SUCCESS;
            break;
        }
        if (rv != APR_SUCCESS)
            break;
        if (have == cap) {
            unsigned char *nb = cap > ((apr_size_t)-1) / 2 ? NULL
                                : realloc(b, cap * 2);

            if (nb == NULL)
                free(b);
            b = nb;
            cap *= 2;
        }
    }
    apr_file_close(f);
    if (rv == APR_SUCCESS) {
        *buf = apr_pmemdup(pool, b, have ? have : 1);
        *len = have;
    }
    free(b);
    return rv;
}

static int load_manifest(const char *path, iss_manifest_t **m,
                         apr_pool_t *pool)
{
    unsigned char *buf;
    apr_size_t len;
    apr_status_t rv;

    if ((rv = read_all(path, &buf, &len, pool)) != APR_SUCCESS)
        return fail(path, rv);
    if ((rv = iss_manifest_parse(buf, len, &no_limits, m, pool))
        != APR_SUCCESS)
        return fail(path, rv);
    return 0;
}

static int write_manifest(const iss_manifest_t *m, apr_pool_t *pool)
{
    unsigned char *buf;
    apr_size_t len;
    apr_status_t rv;

    if ((rv = iss_manifest_encode(m, &buf, &len, pool)) != APR_SUCCESS)
        return fail("encoding the manifest", rv);
    return write_out(buf, len) || flush_out();
}

/* "MIN,AVG,MAX" -> @a p; 0 if it is not three decimal numbers. */
static int parse_params(const char *s, iss_cdc_params_t *p)
{
    apr_uint32_t v[3];
    int i;

    for (i = 0; i < 3; i++) {
        char *end;
        unsigned long long n;

        if (*s < '0' || *s > '9')
            return 0;
        n = strtoull(s, &end, 10);
        if (n > APR_UINT32_MAX || *end != (i < 2 ? ',' : '\0'))
            return 0;
        v[i] = (apr_uint32_t)n;
        s = end + 1;
    }
    p->min_size = v[0];
    p->avg_size = v[1];
    p->max_size = v[2];
    return 1;
}

static int cmd_manifest(int argc, const char *const *argv, apr_pool_t *pool)
{
    iss_cdc_params_t prm = ISS_CDC_PARAMS_DEFAULT;
    iss_manifest_t *m;
    const char *path, *why;
    apr_file_t *f;
    apr_status_t rv;

    if (argc == 3 && strcmp(argv[0], "--params") == 0) {
        if (!parse_params(argv[1], &prm))
            return usage();
        argv += 2;
        argc -= 2;
    }
    if (argc != 1)
        return usage();
    path = argv[0];
    if ((why = iss_cdc_params_check(&prm)) != NULL) {
        fprintf(stderr, "iss-chunk: --params %u,%u,%u: %s\n", prm.min_size,
                prm.avg_size, prm.max_size, why);
        return 1;
    }
    if ((rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT, pool))
        != APR_SUCCESS)
        return fail(path, rv);
    if ((rv = iss_manifest_of_file(f, &prm, &m, pool)) != APR_SUCCESS)
        return fail(path, rv);
    apr_file_close(f);
    return write_manifest(m, pool);
}

static int cmd_ids(int argc, const char *const *argv, apr_pool_t *pool)
{
    iss_manifest_t *m;
    apr_uint32_t i;
    int r;

    if (argc != 1)
        return usage();
    if ((r = load_manifest(argv[0], &m, pool)) != 0)
        return r;
    for (i = 0; i < m->count; i++) {
        printf("%s %u %" APR_UINT64_T_FMT "\n",
               iss_hex_id(m->entries[i].sha256, pool),
               m->entries[i].length, m->entries[i].offset);
    }
    return flush_out();
}

/* The start of the commands taking BASE.ism and one more file: checks
 * that there are two arguments and loads the first.  0, or the exit
 * status to return. */
static int load_base(int argc, const char *const *argv, iss_manifest_t **base,
                     apr_pool_t *pool)
{
    if (argc != 2)
        return usage();
    return load_manifest(argv[0], base, pool);
}

static int cmd_delta(int argc, const char *const *argv, apr_pool_t *pool)
{
    iss_manifest_t *base, *nm;
    unsigned char *buf;
    apr_size_t len;
    apr_status_t rv;
    int r;

    if ((r = load_base(argc, argv, &base, pool)) != 0
        || (r = load_manifest(argv[1], &nm, pool)) != 0)
        return r;
    rv = iss_manifest_delta_make(base, nm, &buf, &len, pool);
    if (rv == ISS_MANIFEST_EMISMATCH) {
        fprintf(stderr, "iss-chunk: %s and %s have different chunking "
                "parameters\n", argv[0], argv[1]);
        return 1;
    }
    if (rv != APR_SUCCESS)
        return fail("making the delta", rv);
    return write_out(buf, len) || flush_out();
}

static int cmd_apply(int argc, const char *const *argv, apr_pool_t *pool)
{
    iss_manifest_t *base, *m;
    unsigned char *buf;
    apr_size_t len;
    apr_status_t rv;
    int r;

    if ((r = load_base(argc, argv, &base, pool)) != 0)
        return r;
    if ((rv = read_all(argv[1], &buf, &len, pool)) != APR_SUCCESS)
        return fail(argv[1], rv);
    if ((rv = iss_manifest_delta_apply(base, buf, len, &no_limits, &m, pool))
        != APR_SUCCESS)
        return fail(argv[1], rv);
    return write_manifest(m, pool);
}

/* The ids listed in @a path (64 hex digits a line; blank lines and a
 * CR before the LF are allowed) as a set of 32-byte keys. */
static int load_ids(const char *path, apr_hash_t **ids, apr_pool_t *pool)
{
    unsigned char *buf;
    apr_size_t len, pos = 0;
    apr_status_t rv;
    unsigned line = 0;

    if ((rv = read_all(path, &buf, &len, pool)) != APR_SUCCESS)
        return fail(path, rv);
    *ids = apr_hash_make(pool);
    while (pos < len) {
        apr_size_t end = pos, n;
        unsigned char *id;

        while (end < len && buf[end] != '\n')
            end++;
        line++;
        n = end - pos;
        if (n > 0 && buf[pos + n - 1] == '\r')
            n--;
        if (n > 0) {
            id = apr_palloc(pool, SHA_LEN);
            if (!iss_hex_id_decode((const char *)buf + pos, n, id)) {
                fprintf(stderr, "iss-chunk: %s line %u: not a chunk id "
                        "(64 hex digits)\n", path, line);
                return 1;
            }
            apr_hash_set(*ids, id, SHA_LEN, id);
        }
        pos = end + 1;
    }
    return 0;
}

static int cmd_frames(int argc, const char *const *argv, apr_pool_t *pool)
{
    const char *path;
    iss_manifest_t *m;
    apr_hash_t *ids = NULL, *done;
    apr_uint32_t i, biggest = 0;
    unsigned char *buf, id[SHA_LEN], head[ISS_FRAMES_HEAD_LEN];
    iss_digest_t *d;
    apr_file_t *f;
    apr_finfo_t fi;
    apr_status_t rv;
    int r;

    if (argc != 2 && argc != 3)
        return usage();
    path = argv[0];
    if ((r = load_manifest(argv[1], &m, pool)) != 0)
        return r;
    if (argc == 3 && (r = load_ids(argv[2], &ids, pool)) != 0)
        return r;
    if ((rv = iss_digest_create(&d, pool)) != APR_SUCCESS)
        return fail("SHA-256", rv);
    if ((rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT, pool))
        != APR_SUCCESS
        || (rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f)) != APR_SUCCESS)
        return fail(path, rv);
    if ((apr_uint64_t)fi.size != m->file_size) {
        fprintf(stderr, "iss-chunk: %s does not match %s: %" APR_OFF_T_FMT
                " bytes, the manifest says %" APR_UINT64_T_FMT "\n", path,
                argv[1], fi.size, m->file_size);
        return 1;
    }
    for (i = 0; i < m->count; i++)
        if (m->entries[i].length > biggest)
            biggest = m->entries[i].length; /* <= max_size <= 64 MiB */
    buf = apr_palloc(pool, biggest ? biggest : 1);
    done = apr_hash_make(pool);
    for (i = 0; i < m->count; i++) {
        const iss_manifest_entry_t *e = &m->entries[i];
        apr_off_t off = (apr_off_t)e->offset;
        apr_size_t got = 0;

        if (apr_hash_get(done, e->sha256, SHA_LEN) != NULL
            || (ids != NULL && apr_hash_get(ids, e->sha256, SHA_LEN) == NULL))
            continue;
        apr_hash_set(done, e->sha256, SHA_LEN, e);
        if ((rv = apr_file_seek(f, APR_SET, &off)) != APR_SUCCESS
            || (rv = apr_file_read_full(f, buf, e->length, &got))
               != APR_SUCCESS)
            return fail(path, rv);
        iss_digest_update(d, buf, got);
        iss_digest_final(d, id);
        if (memcmp(id, e->sha256, SHA_LEN) != 0) {
            fprintf(stderr, "iss-chunk: %s does not match %s: chunk %u (%u "
                    "bytes at offset %" APR_UINT64_T_FMT ") has another "
                    "SHA-256\n", path, argv[1], i, e->length, e->offset);
            return 1;
        }
        iss_frames_head(head, e->sha256, e->length);
        if (write_out(head, sizeof(head)) || write_out(buf, e->length))
            return 1;
    }
    apr_file_close(f);
    return flush_out();
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *pool;
    const char *cmd;
    int r;

    if (apr_app_initialize(&argc, &argv, NULL) != APR_SUCCESS
        || apr_pool_create(&pool, NULL) != APR_SUCCESS) {
        fprintf(stderr, "iss-chunk: cannot initialise APR\n");
        return 1;
    }
    if (argc < 2) {
        r = usage();
    }
    else {
        cmd = argv[1];
        argc -= 2;
        argv += 2;
        if (strcmp(cmd, "manifest") == 0)
            r = cmd_manifest(argc, argv, pool);
        else if (strcmp(cmd, "ids") == 0)
            r = cmd_ids(argc, argv, pool);
        else if (strcmp(cmd, "delta") == 0)
            r = cmd_delta(argc, argv, pool);
        else if (strcmp(cmd, "apply") == 0)
            r = cmd_apply(argc, argv, pool);
        else if (strcmp(cmd, "frames") == 0)
            r = cmd_frames(argc, argv, pool);
        else
            r = usage();
    }
    apr_pool_destroy(pool);
    apr_terminate();
    return r;
}
