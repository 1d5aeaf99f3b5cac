/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* iss_frames: a body of chunk frames gives the same chunks whatever the
 * sizes of the pieces it is fed in (one byte included); frames of length
 * 0 and of exactly max_len are valid; a longer frame, a chunk that does
 * not hash to its id, a body cut inside a frame and a callback's refusal
 * stop the parser, and stay (sticky); the writer makes the heads the
 * parser reads. */

#include "iss_frames.h"
#include "iss_bytes.h"
#include "tap.h"
#include "testdata.h"

#include <apr_general.h>
#include <apr_strings.h>

#include <stdlib.h>
#include <string.h>

#define ID_LEN ISS_DIGEST_SHA256_LEN
#define MAX_LEN 300                 /* the parser's max_len in most tests */

static apr_pool_t *gp;
static iss_digest_t *gd;            /* the tests' own SHA-256 */

/* ---- a body of frames ---------------------------------------------------- */

typedef struct body_t {
    unsigned char *bytes;
    apr_size_t len;
    int nframes;
    apr_size_t *ends;               /* where frame i ends in bytes */
    apr_uint32_t *lens;
} body_t;

static void sha256(const void *buf, apr_size_t len, unsigned char out[ID_LEN])
{
    iss_digest_update(gd, buf, len);
    iss_digest_final(gd, out);
}

/* Frames of the given lengths, their bytes from @a seed. */
static body_t make_body(const apr_uint32_t *lens, int n, apr_uint64_t seed)
{
    body_t b;
    apr_size_t total = 0, at = 0;
    int i;

    for (i = 0; i < n; i++)
        total += ISS_FRAMES_HEAD_LEN + lens[i];
    b.bytes = apr_palloc(gp, total ? total : 1);
    b.len = total;
    b.nframes = n;
    b.ends = apr_palloc(gp, sizeof(apr_size_t) * (n ? n : 1));
    b.lens = apr_pmemdup(gp, lens, sizeof(apr_uint32_t) * (n ? n : 1));
    for (i = 0; i < n; i++) {
        unsigned char *data = testdata_random(seed + (apr_uint64_t)i, lens[i]);
        unsigned char id[ID_LEN];

        sha256(data, lens[i], id);
        iss_frames_head(b.bytes + at, id, lens[i]);
        memcpy(b.bytes + at + ISS_FRAMES_HEAD_LEN, data, lens[i]);
        free(data);
        at += ISS_FRAMES_HEAD_LEN + lens[i];
        b.ends[i] = at;
    }
    return b;
}

/* ---- what the callbacks saw ---------------------------------------------- */

typedef struct seen_t {
    int heads, chunks;
    int refuse_head_at;             /* refuse the head of frame N (1-based) */
    int refuse_chunk_at;            /* ... or its chunk; 0: never */
    apr_status_t refusal;
    int head_before_bytes;          /* every head came before its chunk */
    unsigned char *out;             /* the body rebuilt from the chunks */
    apr_size_t out_len;
    apr_uint32_t last_head_len;
    int bad;                        /* a chunk without its head, or ... */
} seen_t;

static apr_status_t on_head(void *baton, const unsigned char *id,
                            apr_uint32_t len)
{
    seen_t *s = baton;

    (void)id;
    s->heads++;
    if (s->heads != s->chunks + 1)
        s->bad++;                   /* heads and chunks alternate */
    s->last_head_len = len;
    if (s->refuse_head_at == s->heads)
        return s->refusal;
    return APR_SUCCESS;
}

static apr_status_t on_chunk(void *baton, const unsigned char *id,
                             const unsigned char *bytes, apr_uint32_t len)
{
    seen_t *s = baton;
    unsigned char sha[ID_LEN];

    s->chunks++;
    if (s->heads != s->chunks || len != s->last_head_len)
        s->bad++;
    sha256(bytes, len, sha);
    if (memcmp(sha, id, ID_LEN) != 0)
        s->bad++;                   /* the parser let a bad chunk through */
    if (s->refuse_chunk_at == s->chunks)
        return s->refusal;
    /* rebuild the frame: what was accepted re-encodes to the input */
    iss_frames_head(s->out + s->out_len, id, len);
    memcpy(s->out + s->out_len + ISS_FRAMES_HEAD_LEN, bytes, len);
    s->out_len += ISS_FRAMES_HEAD_LEN + len;
    return APR_SUCCESS;
}

static seen_t new_seen(const body_t *b)
{
    seen_t s;

    memset(&s, 0, sizeof(s));
    s.out = apr_palloc(gp, b->len + 1);
    s.refusal = APR_EGENERAL;
    return s;
}

/* Feed @a b in pieces of @a piece bytes (0: pieces of a size from a
 * generator seeded with @a seed, 1 to 97 bytes); returns the first
 * non-success status of a feed, or that of finish. */
static apr_status_t feed_all(iss_frames_t *f, const body_t *b,
                             apr_size_t piece, apr_uint64_t seed,
                             apr_size_t upto)
{
    apr_size_t at = 0;
    apr_status_t rv;

    if (upto > b->len)
        upto = b->len;
    while (at < upto) {
        apr_size_t n = piece ? piece
                             : (apr_size_t)(testdata_splitmix64(&seed) % 97) + 1;

        if (n > upto - at)
            n = upto - at;
        if ((rv = iss_frames_feed(f, b->bytes + at, n)) != APR_SUCCESS)
            return rv;
        at += n;
    }
    return iss_frames_finish(f);
}

static iss_frames_t *parser(seen_t *s, apr_uint32_t max_len)
{
    iss_frames_t *f = NULL;

    if (iss_frames_create(&f, max_len, on_head, on_chunk, s, gp)
        != APR_SUCCESS)
        abort();
    return f;
}

/* ---- tests --------------------------------------------------------------- */

static void test_writer(void)
{
    unsigned char id[ID_LEN], head[ISS_FRAMES_HEAD_LEN];
    int i;

    for (i = 0; i < ID_LEN; i++)
        id[i] = (unsigned char)(i * 7 + 1);
    iss_frames_head(head, id, 0x01020304u);
    ok(memcmp(head, id, ID_LEN) == 0 && head[32] == 1 && head[33] == 2
       && head[34] == 3 && head[35] == 4,
       "a head: the id, then the length big-endian");
    iss_frames_head(head, id, 0);
    ok(iss_be32_get(head + ID_LEN) == 0, "length 0");
    iss_frames_head(head, id, APR_UINT32_MAX);
    ok(iss_be32_get(head + ID_LEN) == APR_UINT32_MAX, "length 2^32-1");
    is_int(ISS_FRAMES_HEAD_LEN, 36, "a head is 36 bytes");
    is_str(ISS_FRAMES_MEDIA_TYPE, "application/vnd.mod-iss.chunks",
           "the media type");
}

static void test_create(void)
{
    iss_frames_t *f = NULL;
    seen_t s;

    memset(&s, 0, sizeof(s));
    is_int(iss_frames_create(&f, 10, on_head, NULL, &s, gp), APR_EINVAL,
           "no chunk callback: APR_EINVAL");
    is_int(iss_frames_create(&f, 10, NULL, on_chunk, &s, gp), APR_SUCCESS,
           "no head callback is fine");
    ok(f && !iss_frames_partial(f) && iss_frames_count(f) == 0,
       "a new parser: nothing under way, no frame");
    is_int(iss_frames_feed(f, NULL, 0), APR_SUCCESS, "feeding nothing");
    is_int(iss_frames_finish(f), APR_SUCCESS,
           "an empty body is a valid body of no frames");
    ok(iss_frames_error_text(ISS_FRAMES_ETOOBIG)
       && iss_frames_error_text(ISS_FRAMES_EDIGEST)
       && iss_frames_error_text(ISS_FRAMES_ETRUNCATED)
       && !iss_frames_error_text(APR_EGENERAL)
       && !iss_frames_error_text(APR_SUCCESS),
       "a message for each ISS_FRAMES_E*, NULL for other codes");
}

/* Every piece size from 1 byte to more than the body, and random ones:
 * the same chunks, in order, re-encoding to the body. */
static void test_pieces(void)
{
    static const apr_uint32_t lens[] = { 5, 0, 300, 1, 0, 0, 64, 299, 36, 2 };
    body_t b = make_body(lens, 10, 11);
    apr_size_t piece;
    int bad = 0;
    apr_uint64_t seed;

    for (piece = 1; piece <= b.len + 1; piece++) {
        seen_t s = new_seen(&b);
        iss_frames_t *f = parser(&s, MAX_LEN);
        apr_status_t rv = feed_all(f, &b, piece, 0, b.len);

        if (rv != APR_SUCCESS || s.bad || s.chunks != 10 || s.heads != 10
            || iss_frames_count(f) != 10 || iss_frames_partial(f)
            || s.out_len != b.len || memcmp(s.out, b.bytes, b.len) != 0) {
            if (bad++ < 5)
                diag("pieces of %d: rv %d, %d chunks, %d bad", (int)piece,
                     rv, s.chunks, s.bad);
        }
    }
    is_int(bad, 0, "pieces of every size from 1 to %d bytes: the same 10 "
           "chunks (lengths 0, 1 and max_len among them)", (int)b.len + 1);
    bad = 0;
    for (seed = 1; seed <= 200; seed++) {
        seen_t s = new_seen(&b);
        iss_frames_t *f = parser(&s, MAX_LEN);

        if (feed_all(f, &b, 0, seed, b.len) != APR_SUCCESS || s.bad
            || s.chunks != 10 || s.out_len != b.len
            || memcmp(s.out, b.bytes, b.len) != 0)
            bad++;
    }
    is_int(bad, 0, "200 feeds in random pieces of 1 to 97 bytes");
}

/* Frames of length 0 only: each completes with its head, also at the
 * very end of a piece and of the body. */
static void test_empty_frames(void)
{
    static const apr_uint32_t lens[] = { 0, 0, 0 };
    body_t b = make_body(lens, 3, 5);
    unsigned char empty[ID_LEN];
    seen_t s = new_seen(&b);
    iss_frames_t *f = parser(&s, 0);
    apr_size_t piece;
    int bad = 0;

    sha256("", 0, empty);
    ok(memcmp(b.bytes, empty, ID_LEN) == 0,
       "a frame of length 0 carries the SHA-256 of nothing");
    is_int(iss_frames_feed(f, b.bytes, ISS_FRAMES_HEAD_LEN), APR_SUCCESS,
           "one head of length 0 fed alone");
    ok(s.chunks == 1 && iss_frames_count(f) == 1 && !iss_frames_partial(f),
       "... is a complete frame at once");
    is_int(feed_all(f, &(body_t){ b.bytes + ISS_FRAMES_HEAD_LEN,
                                  b.len - ISS_FRAMES_HEAD_LEN, 0, NULL, NULL },
                    1, 0, (apr_size_t)-1),
           APR_SUCCESS, "two more, byte by byte, then the end");
    is_int(s.chunks, 3, "three chunks of length 0");
    for (piece = 1; piece <= b.len; piece++) {
        seen_t t = new_seen(&b);
        iss_frames_t *g = parser(&t, 0);

        if (feed_all(g, &b, piece, 0, b.len) != APR_SUCCESS || t.chunks != 3
            || t.bad)
            bad++;
    }
    is_int(bad, 0, "max_len 0: frames of length 0 in pieces of every size");

    /* The SHA-256 of nothing is the only id a frame of length 0 has. */
    {
        unsigned char head[ISS_FRAMES_HEAD_LEN];
        seen_t u = new_seen(&b);
        iss_frames_t *g = parser(&u, 10);

        memset(empty, 0xab, sizeof(empty));
        iss_frames_head(head, empty, 0);
        is_int(iss_frames_feed(g, head, sizeof(head)), ISS_FRAMES_EDIGEST,
               "a frame of length 0 with another id: ISS_FRAMES_EDIGEST");
        is_int(u.chunks, 0, "... no chunk");
    }
}

/* A length above max_len is refused as soon as the head is complete,
 * before the head callback and before any byte of the chunk. */
static void test_too_big(void)
{
    static const apr_uint32_t lens[] = { 10, 301, 5 };
    body_t b = make_body(lens, 3, 21);
    apr_size_t piece;
    int bad = 0;

    for (piece = 1; piece <= b.len; piece++) {
        seen_t s = new_seen(&b);
        iss_frames_t *f = parser(&s, MAX_LEN);
        apr_size_t at = 0, n = 0, head_end = b.ends[0] + ISS_FRAMES_HEAD_LEN;
        apr_status_t rv = APR_SUCCESS;

        while (at < b.len) {
            n = piece < b.len - at ? piece : b.len - at;
            rv = iss_frames_feed(f, b.bytes + at, n);
            at += n;
            if (rv != APR_SUCCESS)
                break;
        }
        /* the feed that failed is the one that completed the head */
        if (rv != ISS_FRAMES_ETOOBIG || at < head_end || at - n >= head_end
            || s.heads != 1 || s.chunks != 1 || iss_frames_count(f) != 1
            || iss_frames_feed(f, b.bytes, 1) != ISS_FRAMES_ETOOBIG
            || iss_frames_finish(f) != ISS_FRAMES_ETOOBIG)
            bad++;
    }
    is_int(bad, 0, "a frame of max_len + 1 bytes: ISS_FRAMES_ETOOBIG from "
           "the feed that completes its head, in pieces of every size; "
           "head not called; sticky");
    {
        seen_t s = new_seen(&b);
        iss_frames_t *f = parser(&s, 301);

        is_int(feed_all(f, &b, 7, 0, b.len), APR_SUCCESS,
               "the same body with max_len 301: accepted");
    }
    {
        unsigned char head[ISS_FRAMES_HEAD_LEN], id[ID_LEN];
        seen_t s = new_seen(&b);
        iss_frames_t *f = parser(&s, MAX_LEN);

        memset(id, 0, sizeof(id));
        iss_frames_head(head, id, APR_UINT32_MAX);
        is_int(iss_frames_feed(f, head, sizeof(head)), ISS_FRAMES_ETOOBIG,
               "a frame of 4 GiB - 1: refused, nothing allocated");
    }
}

/* A chunk whose bytes do not hash to its id: the chunk before it was
 * delivered, it is not, nothing after it is. */
static void test_bad_digest(void)
{
    static const apr_uint32_t lens[] = { 40, 50, 60 };
    body_t b = make_body(lens, 3, 31);
    apr_size_t piece, flip;
    int bad = 0;

    for (flip = 0; flip < b.len; flip += 7) {
        apr_size_t frame = flip < b.ends[0] ? 0 : flip < b.ends[1] ? 1 : 2;
        apr_size_t start = frame ? b.ends[frame - 1] : 0;
        int in_len = flip >= start + ID_LEN
                     && flip < start + ISS_FRAMES_HEAD_LEN;

        if (in_len)
            continue;               /* a length change is another test */
        b.bytes[flip] ^= 0x01;
        for (piece = 1; piece <= 41; piece += 8) {
            seen_t s = new_seen(&b);
            iss_frames_t *f = parser(&s, MAX_LEN);
            apr_status_t rv = feed_all(f, &b, piece, 0, b.len);

            if (rv != ISS_FRAMES_EDIGEST || s.chunks != (int)frame || s.bad
                || iss_frames_count(f) != frame
                || iss_frames_feed(f, b.bytes, 3) != ISS_FRAMES_EDIGEST
                || iss_frames_finish(f) != ISS_FRAMES_EDIGEST) {
                if (bad++ < 5)
                    diag("flip at %d, pieces of %d: rv %d, %d chunks",
                         (int)flip, (int)piece, rv, s.chunks);
            }
        }
        b.bytes[flip] ^= 0x01;
    }
    is_int(bad, 0, "a flipped bit in an id or a chunk: ISS_FRAMES_EDIGEST, "
           "the chunks before it delivered, not it; sticky");
}

/* The body cut at every byte: ETRUNCATED inside a frame, success at a
 * frame's end; what arrived whole was delivered. */
static void test_truncation(void)
{
    static const apr_uint32_t lens[] = { 3, 0, 17, 9 };
    body_t b = make_body(lens, 4, 41);
    apr_size_t cut;
    int bad = 0;

    for (cut = 0; cut <= b.len; cut++) {
        seen_t s = new_seen(&b);
        iss_frames_t *f = parser(&s, MAX_LEN);
        int whole = 0, boundary = cut == 0, i;
        apr_status_t rv;

        for (i = 0; i < b.nframes; i++) {
            if (b.ends[i] <= cut)
                whole = i + 1;
            if (b.ends[i] == cut)
                boundary = 1;
        }
        rv = feed_all(f, &b, 5, 0, cut);
        if (rv != (boundary ? APR_SUCCESS : ISS_FRAMES_ETRUNCATED)
            || s.chunks != whole || (int)iss_frames_count(f) != whole
            || iss_frames_partial(f) == boundary
            || iss_frames_finish(f) != rv) {
            if (bad++ < 5)
                diag("cut at %d: rv %d, %d chunks (want %d)", (int)cut, rv,
                     s.chunks, whole);
        }
    }
    is_int(bad, 0, "cut at each of %d places: ISS_FRAMES_ETRUNCATED inside a "
           "frame, success between frames, the whole frames delivered",
           (int)b.len + 1);
}

/* A callback's refusal stops the parser and is returned by every later
 * call. */
static void test_refusals(void)
{
    static const apr_uint32_t lens[] = { 10, 20, 0, 30 };
    body_t b = make_body(lens, 4, 51);
    const apr_status_t code = APR_OS_START_USERERR + 999;
    int k, bad = 0;

    for (k = 1; k <= 4; k++) {
        apr_size_t piece;

        for (piece = 1; piece <= 50; piece += 7) {
            seen_t s = new_seen(&b);
            iss_frames_t *f = parser(&s, MAX_LEN);
            apr_status_t rv;

            s.refuse_head_at = k;
            s.refusal = code;
            rv = feed_all(f, &b, piece, 0, b.len);
            if (rv != code || s.heads != k || s.chunks != k - 1
                || iss_frames_count(f) != (apr_uint64_t)(k - 1)
                || iss_frames_feed(f, b.bytes, b.len) != code
                || iss_frames_feed(f, NULL, 0) != code
                || iss_frames_finish(f) != code || s.heads != k)
                bad++;

            s = new_seen(&b);
            f = parser(&s, MAX_LEN);
            s.refuse_chunk_at = k;
            s.refusal = code;
            rv = feed_all(f, &b, piece, 0, b.len);
            if (rv != code || s.chunks != k
                || iss_frames_count(f) != (apr_uint64_t)(k - 1)
                || iss_frames_feed(f, b.bytes, b.len) != code
                || iss_frames_finish(f) != code || s.chunks != k)
                bad++;
        }
    }
    is_int(bad, 0, "a head or chunk callback refusing frame 1..4: its code "
           "from that feed, every later feed and finish; no callback after");
}

/* Many frames: memory does not grow with them, the count is right. */
static void test_many(void)
{
    enum { N = 20000 };
    apr_uint32_t *lens = apr_palloc(gp, sizeof(*lens) * N);
    apr_uint64_t seed = 77;
    apr_pool_t *p;
    body_t b;
    seen_t s;
    iss_frames_t *f;
    char *probe;
    int i;

    for (i = 0; i < N; i++)
        lens[i] = (apr_uint32_t)(testdata_splitmix64(&seed) % 65);
    b = make_body(lens, N, 99);
    s = new_seen(&b);
    apr_pool_create(&p, gp);
    if (iss_frames_create(&f, 64, on_head, on_chunk, &s, p) != APR_SUCCESS)
        abort();
    /* A pool hands out memory in order: if the parser took none, the
     * next 8 bytes come right after these. */
    probe = apr_palloc(p, 8);
    is_int(feed_all(f, &b, 0, 3, b.len), APR_SUCCESS,
           "%d frames of 0 to 64 bytes in random pieces", N);
    ok(s.chunks == N && iss_frames_count(f) == N && !s.bad
       && s.out_len == b.len && memcmp(s.out, b.bytes, b.len) == 0,
       "... every chunk, in order");
    ok((char *)apr_palloc(p, 8) == probe + 8,
       "... nothing allocated from its pool while it ran");
    apr_pool_destroy(p);
}

int main(int argc, const char *const *argv)
{
    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&gp, NULL);
    if (iss_digest_create(&gd, gp) != APR_SUCCESS)
        abort();

    test_writer();
    test_create();
    test_pieces();
    test_empty_frames();
    test_too_big();
    test_bad_digest();
    test_truncation();
    test_refusals();
    test_many();

    apr_pool_destroy(gp);
    apr_terminate();
    return done_testing();
}
