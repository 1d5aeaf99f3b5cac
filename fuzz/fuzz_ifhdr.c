/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * libFuzzer target for the small parsers of request headers and tokens
 * that any client reaches without a body:
 *
 *  - the If header rewriter (libiss/server/iss_ifhdr.c), with state
 *    tokens and entity tags decided by a hash of their text (ours, true,
 *    false, or not ours), tagged or not;
 *  - sync tokens (libiss/server/iss_sync_token.c): parse, and for every
 *    accepted token make it again and parse that back;
 *  - the digest fields of RFC 9530 (libiss/core/iss_digest.c):
 *    Repr-Digest / Content-Digest and Want-Repr-Digest, and ownCloud's
 *    OC-Checksum.
 *
 * Byte 0 picks the parser (its low two bits: 0 If, 1 token, 2 and 3
 * digest fields); the rest is the header
 * value, cut at the first NUL as httpd would give it.  Whatever the
 * input, a parser must return one of its codes and never touch memory it
 * does not own; and what it accepts must be consistent:
 *
 *  - If: a rewritten header is itself a valid If header, holds only
 *    DAV:no-lock where ours were, and is the input itself when nothing
 *    was decided; the number of conditions replaced is the number the
 *    callbacks decided;
 *  - tokens: make(parse(t)) parses back to the same store id and
 *    position, and is printable ASCII without spaces;
 *  - digests: a parsed sha-256 made into a field parses back to itself.
 *
 * Run under ASan and UBSan by scripts/fuzz.sh.
 */

#include "iss_ifhdr.h"
#include "iss_sync_log.h"
#include "iss_digest.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static apr_pool_t *root;

typedef struct decide_t {
    int decided;
} decide_t;

static unsigned hash(const char *s)
{
    unsigned h = 2166136261u;

    for (; s && *s; s++) {
        h = (h ^ (unsigned char)*s) * 16777619u;
    }
    return h;
}

/* The tag and token must be NUL-terminated strings from the pool and
 * the tag NULL only for an untagged list; the answer is a pure function
 * of their text. */
static int decide(void *baton, const char *tag, const char *token)
{
    decide_t *d = baton;
    unsigned h = hash(token) ^ (hash(tag) * 3u);

    if (token == NULL || strlen(token) > 65536
        || (tag != NULL && strlen(tag) > 65536)) {
        abort();
    }
    switch (h % 4) {
    case 0:
        return -1;
    case 1:
        d->decided++;
        return 1;
    case 2:
        d->decided++;
        return 0;
    default:
        d->decided++;
        return (int)(h % 7) + 2;          /* any positive value: true */
    }
}

static void fuzz_if(const char *in, apr_pool_t *p)
{
    decide_t d = { 0 }, again = { 0 };
    const char *out = NULL, *out2 = NULL;
    int nours = -1, nours2 = -1;
    apr_status_t rv;

    rv = iss_ifhdr_rewrite(in, decide, decide, &d, &out, &nours, p);
    if (rv != APR_SUCCESS) {
        if (rv != APR_EINVAL || out != in || nours != 0 || d.decided != 0) {
            abort();
        }
        return;
    }
    if (nours != d.decided || (nours == 0 && out != in) || out == NULL) {
        abort();
    }
    /* The rewritten header is valid, and deciding nothing leaves it. */
    rv = iss_ifhdr_rewrite(out, NULL, NULL, &again, &out2, &nours2, p);
    if (rv != APR_SUCCESS || nours2 != 0 || out2 != out) {
        abort();
    }
    /* Our replacements never match anything of the callbacks' again:
     * DAV:no-lock is not ours, and its count only grows. */
    if (nours > 0 && strstr(out, ISS_IFHDR_NO_LOCK) == NULL) {
        abort();
    }
}

static void fuzz_token(const char *in, apr_pool_t *p)
{
    iss_sync_pos_t pos, back;
    const char *id = NULL, *id2 = NULL, *made, *c;

    if (iss_sync_token_parse(in, &id, &pos, p) != APR_SUCCESS) {
        return;
    }
    if (id == NULL || strncmp(in, ISS_SYNC_TOKEN_BASE,
                              sizeof(ISS_SYNC_TOKEN_BASE) - 1) != 0) {
        abort();
    }
    made = iss_sync_token_make(id, &pos, p);
    for (c = made; *c; c++) {
        if (*c <= ' ' || *c >= 0x7f) {
            abort();
        }
    }
    if (iss_sync_token_parse(made, &id2, &back, p) != APR_SUCCESS
        || strcmp(id, id2) != 0 || back.seq != pos.seq
        || back.idx != pos.idx || !back.initial != !pos.initial
        || !back.after != !pos.after
        || (pos.after && strcmp(back.after, pos.after) != 0)) {
        abort();
    }
}

static void fuzz_digest(const char *in, apr_pool_t *p)
{
    unsigned char sha[ISS_DIGEST_SHA256_LEN], back[ISS_DIGEST_SHA256_LEN];
    iss_digest_sums_t sums;
    int found = 0, found2 = 0, want_sha = 0;

    if (iss_digest_parse(in, sha, &found) == APR_SUCCESS && found) {
        const char *field = iss_digest_field(sha, p);

        if (iss_digest_parse(field, back, &found2) != APR_SUCCESS || !found2
            || memcmp(sha, back, sizeof(sha)) != 0) {
            abort();
        }
        if (strlen(iss_digest_etag(sha, p)) != ISS_DIGEST_ETAG_LEN) {
            abort();
        }
    }
    (void)iss_digest_wanted(in);
    memset(&sums, 0, sizeof(sums));
    (void)iss_digest_sums_parse(in, &sums, sha, &want_sha);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    apr_initialize();
    apr_pool_create(&root, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    char *in;

    if (size < 1) {
        return 0;
    }
    apr_pool_create(&p, root);
    /* A header value as httpd gives it: a C string. */
    in = apr_pstrmemdup(p, (const char *)data + 1, size - 1);
    switch (data[0] & 3) {
    case 0:
        fuzz_if(in, p);
        break;
    case 1:
        fuzz_token(in, p);
        break;
    default:
        fuzz_digest(in, p);
        break;
    }
    apr_pool_destroy(p);
    return 0;
}
