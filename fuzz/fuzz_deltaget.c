/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * libFuzzer target for the request side of the RFC 3229 delta GET
 * (libiss/core/iss_deltaget.c), which any client reaches with two
 * headers:
 *
 *  - A-IM: iss_deltaget_accepts_vcdiff() on the input (cut at its first
 *    NUL, as httpd gives a header value);
 *  - If-None-Match: iss_deltaget_base() with a current digest and a
 *    "retained" predicate that is a pure function of the digest (its
 *    first byte's low bit), and iss_deltaget_etag_decode() on every
 *    45-byte window of the input.
 *
 * Whatever the input, nothing outside the value is read, and the
 * answers must be consistent:
 *  - accepts_vcdiff is 1 only if "vcdiff" (any case) is in the value;
 *  - the predicate is asked at most ISS_DELTAGET_MAX_TAGS times, never
 *    for the current digest;
 *  - a VERSION answer's digest is one the predicate said yes to, and
 *    its ETag text (iss_digest_etag()) is in the value; a CURRENT answer
 *    means the current ETag's text is in the value;
 *  - a decoded ETag made into text again is the text decoded.
 *
 * Run under ASan and UBSan by scripts/fuzz.sh.
 */

#include "iss_deltaget.h"
#include "iss_digest.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static apr_pool_t *root;

typedef struct ask_t {
    const unsigned char *current;
    int calls;
    unsigned char last_yes[ISS_DIGEST_SHA256_LEN];
} ask_t;

static int retained(void *baton, const unsigned char d[ISS_DIGEST_SHA256_LEN])
{
    ask_t *a = baton;

    a->calls++;
    if (memcmp(d, a->current, ISS_DIGEST_SHA256_LEN) == 0) {
        abort();                  /* the current digest is never asked */
    }
    if (d[0] & 1) {
        memcpy(a->last_yes, d, ISS_DIGEST_SHA256_LEN);
        return 1;
    }
    return 0;
}

static int contains_ci(const char *s, const char *word)
{
    apr_size_t n = strlen(word);

    for (; *s; s++) {
        if (strncasecmp(s, word, n) == 0) {
            return 1;
        }
    }
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    unsigned char current[ISS_DIGEST_SHA256_LEN], out[ISS_DIGEST_SHA256_LEN];
    apr_pool_t *p;
    char *value;
    iss_deltaget_base_e b;
    ask_t a;
    size_t i;

    apr_pool_create(&p, root);
    /* Exactly the input, NUL-terminated, in a buffer of its own size so
     * that ASan sees any read past it. */
    value = malloc(size + 1);
    if (value == NULL) {
        abort();
    }
    memcpy(value, data, size);
    value[size] = '\0';

    if (iss_deltaget_accepts_vcdiff(value) && !contains_ci(value, "vcdiff")) {
        abort();
    }

    /* The current digest: the input's first decodable ETag if any (so
     * that CURRENT is reachable), else zeros. */
    memset(current, 0, sizeof(current));
    for (i = 0; i + ISS_DIGEST_ETAG_LEN <= size; i++) {
        unsigned char d[ISS_DIGEST_SHA256_LEN];

        if (iss_deltaget_etag_decode(value + i, ISS_DIGEST_ETAG_LEN, d)) {
            const char *t = iss_digest_etag(d, p);

            if (memcmp(t, value + i, ISS_DIGEST_ETAG_LEN) != 0) {
                abort();          /* not canonical, yet accepted */
            }
            if (!(d[0] & 1) || (data[0] & 1)) {
                memcpy(current, d, sizeof(current));
                break;
            }
        }
    }

    memset(&a, 0, sizeof(a));
    a.current = current;
    b = iss_deltaget_base(value, current, retained, &a, out);
    if (a.calls > ISS_DELTAGET_MAX_TAGS) {
        abort();
    }
    if (b == ISS_DELTAGET_VERSION
        && (memcmp(out, a.last_yes, sizeof(out)) != 0
            || strstr(value, iss_digest_etag(out, p)) == NULL)) {
        abort();
    }
    if (b == ISS_DELTAGET_CURRENT
        && strstr(value, iss_digest_etag(current, p)) == NULL) {
        abort();
    }
    if (b != ISS_DELTAGET_NONE && b != ISS_DELTAGET_CURRENT
        && b != ISS_DELTAGET_VERSION) {
        abort();
    }
    free(value);
    apr_pool_destroy(p);
    return 0;
}
