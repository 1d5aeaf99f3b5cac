/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * libFuzzer target for the small parsers of request headers and tokens
 * that any client reaches without a body:
 *
 *  - the If header rewriter (libiss/server/iss_ifhdr.c), with state
 *    tokens and entity tags decided by a hash of their text (ours, true,
 *    false, or not ours), tagged or not;
 *  - sync tokens (libiss/server/iss_sync_token.c): parse, and for every
 *    accepted token make it again and parse that back; and (bit 2 of
 *    byte 0 set) make a token of the position the input spells, parse it
 *    back, and check that a flipped bit of its blocks is refused;
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
 *    position, and is printable ASCII without spaces; parse(make(pos))
 *    is pos; a token with a flipped bit is refused;
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

/* The key of the fuzzed tokens (a state directory's, in the server). */
static const iss_sync_key_t key = { { 0x6b, 0x65, 0x79, 0x20, 0x6f, 0x66,
                                      0x20, 0x74, 0x68, 0x65, 0x20, 0x66,
                                      0x75, 0x7a, 0x7a, 0x21 } };

static void check_printable(const char *t)
{
    const char *c;

    for (c = t; *c; c++) {
        if (*c <= ' ' || *c >= 0x7f) {
            abort();
        }
    }
}

/* Parse the input as a token: what is accepted makes itself again. */
static void fuzz_token(const char *in, apr_pool_t *p)
{
    iss_sync_pos_t pos, back;
    const char *id = NULL, *id2 = NULL, *made;

    if (iss_sync_token_parse(&key, in, &id, &pos, p) != APR_SUCCESS) {
        return;
    }
    if (id == NULL || strncmp(in, ISS_SYNC_TOKEN_BASE,
                              sizeof(ISS_SYNC_TOKEN_BASE) - 1) != 0) {
        abort();
    }
    made = iss_sync_token_make(&key, id, &pos, p);
    if (made == NULL) {
        abort();
    }
    check_printable(made);
    if (iss_sync_token_parse(&key, made, &id2, &back, p) != APR_SUCCESS
        || strcmp(id, id2) != 0 || back.seq != pos.seq
        || back.idx != pos.idx || !back.initial != !pos.initial
        || !back.after != !pos.after
        || (pos.after && strcmp(back.after, pos.after) != 0)) {
        abort();
    }
}

/* Make a token of the position the input spells (8 bytes of entry, 4 of
 * item, 1 of form, then the member), parse it back, and check that the
 * token with one bit of one block flipped (chosen by the input) is
 * refused: the fuzzer cannot forge blocks, so this is how it reaches the
 * parser's accepting paths. */
static void fuzz_make(const unsigned char *d, apr_size_t n, apr_pool_t *p)
{
    static const char sid[] = "0123abcd-ef45-6789-abcd-ef0123456789";
    apr_size_t b = sizeof(ISS_SYNC_TOKEN_BASE) - 1 + sizeof(sid);
    iss_sync_pos_t pos, back;
    const char *made, *id = NULL;
    char *bad;
    unsigned bit;
    int form, dg;
    apr_size_t i, at;

    if (n < 14) {
        return;
    }
    memset(&pos, 0, sizeof(pos));
    for (i = 0; i < 8; i++) {
        pos.seq = (pos.seq << 8) | d[i];
    }
    for (i = 8; i < 12; i++) {
        pos.idx = (pos.idx << 8) | d[i];
    }
    form = d[12] % 3;
    bit = d[13];
    pos.after = apr_pstrmemdup(p, (const char *)d + 14, n - 14);
    if (form == 0) {
        pos.idx = 0;
        pos.after = NULL;
    }
    else if (form == 1) {
        pos.initial = 1;
        pos.idx = 0;
    }
    /* What the server never makes: the parser refuses those. */
    if (pos.seq == 0 || pos.seq == APR_UINT64_MAX
        || (pos.after && !*pos.after)) {
        return;
    }
    made = iss_sync_token_make(&key, sid, &pos, p);
    if (made == NULL) {
        abort();
    }
    check_printable(made);
    if (iss_sync_token_parse(&key, made, &id, &back, p) != APR_SUCCESS
        || strcmp(id, sid) != 0 || back.seq != pos.seq
        || back.idx != pos.idx || !back.initial != !pos.initial
        || !back.after != !pos.after
        || (pos.after && strcmp(back.after, pos.after) != 0)) {
        abort();
    }
    /* One bit of a block flipped: refused. */
    at = b + (form == 1 ? 1 : 0) + (form == 2 && (bit & 0x80) ? 33 : 0);
    bad = apr_pstrdup(p, made);
    i = at + (bit & 0x7f) / 4;
    dg = bad[i] >= 'a' ? bad[i] - 'a' + 10 : bad[i] - '0';
    bad[i] = "0123456789abcdef"[dg ^ (1 << (bit % 4))];
    if (iss_sync_token_parse(&key, bad, &id, &back, p) != APR_EINVAL) {
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
        if (data[0] & 4) {
            fuzz_make(data + 1, size - 1, p);
        }
        else {
            fuzz_token(in, p);
        }
        break;
    default:
        fuzz_digest(in, p);
        break;
    }
    apr_pool_destroy(p);
    return 0;
}
