/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* iss_sync_log: tokens round-trip and refuse malformations; begin/end
 * record intents and append numbered entries with the index updates; a
 * dead writer's intent is recovered, a live one's left alone; concurrent
 * writers from several processes get distinct consecutive numbers;
 * retention compacts by count and by age, a bounded number per append;
 * damaged records are reported, never returned as data. */

#include "iss_sync_log.h"
#include "iss_change.h"
#include "iss_store.h"
#include "tap.h"
#include "testfs.h"
#include "teststore.h"

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>
#include <apr_time.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define B ISS_SYNC_TOKEN_BASE
#define SID "0123abcd-ef45-6789-abcd-ef0123456789"

static apr_pool_t *gp;          /* test-wide pool */

/* ---- temp dirs and stores ----------------------------------------------- */

typedef struct {
    char *base;                 /* mkdtemp directory, removed at the end */
    const char *dir;            /* the store directory inside it */
} tmp_t;


static void tmp_done(tmp_t *t)
{
    if (t->base)
        testfs_rm_rf(t->base, gp);
    t->base = NULL;
}

static iss_store_t *open_store(const char *dir, apr_pool_t *p)
{
    iss_store_t *s = NULL;
    apr_status_t rv = iss_store_open(&s, dir, "sdbm", NULL, NULL, NULL, p);

    if (rv != APR_SUCCESS) {
        diag("iss_store_open(%s): %d %s", dir, rv,
             s ? iss_store_last_error(s) : "");
        return NULL;
    }
    /* No fsync: every guarantee against dying processes still holds. */
    iss_store_set_sync(s, 0);
    return s;
}

/* A new store in a new temp dir; NULL (and a failed test) on failure. */
static iss_store_t *fresh_store(tmp_t *t, const char *what)
{
    iss_store_t *s = NULL;

    t->base = apr_pstrdup(gp, "/tmp/iss-synclog-test-XXXXXX");
    if (!mkdtemp(t->base)) {
        t->base = NULL;
        ok(0, "%s: mkdtemp", what);
        return NULL;
    }
    t->dir = apr_pstrcat(gp, t->base, "/state", NULL);
    if (apr_dir_make(t->dir, APR_FPROT_OS_DEFAULT, gp) != APR_SUCCESS
        || !(s = open_store(t->dir, gp))) {
        ok(0, "%s: open a fresh store", what);
        tmp_done(t);
    }
    return s;
}

static const char *get_s(iss_store_t *s, const char *key)
{
    return teststore_get(s, key, gp);
}

static apr_status_t put_s(iss_store_t *s, const char *k, const char *v)
{
    return iss_store_put(s, k, strlen(k), v, strlen(v));
}

/* The words of @a v sorted, space separated ("" if none or NULL). */
static const char *sorted_words(const char *v)
{
    apr_array_header_t *w = apr_array_make(gp, 4, sizeof(char *));
    char *copy, *last, *t;
    int i, j;

    if (!v)
        return "";
    copy = apr_pstrdup(gp, v);
    for (t = apr_strtok(copy, " ", &last); t; t = apr_strtok(NULL, " ", &last))
        APR_ARRAY_PUSH(w, char *) = t;
    for (i = 1; i < w->nelts; i++)
        for (j = i; j > 0 && strcmp(APR_ARRAY_IDX(w, j - 1, char *),
                                    APR_ARRAY_IDX(w, j, char *)) > 0; j--) {
            char *x = APR_ARRAY_IDX(w, j, char *);

            APR_ARRAY_IDX(w, j, char *) = APR_ARRAY_IDX(w, j - 1, char *);
            APR_ARRAY_IDX(w, j - 1, char *) = x;
        }
    return apr_array_pstrcat(gp, w, ' ');
}

/* The ids listed in log/pending, sorted, space separated ("" if none). */
static const char *pending(iss_store_t *s)
{
    return sorted_words(get_s(s, "log/pending"));
}

static const char *sorted2(const char *a, const char *b)
{
    return strcmp(a, b) < 0 ? apr_pstrcat(gp, a, " ", b, NULL)
                            : apr_pstrcat(gp, b, " ", a, NULL);
}

static const char *ekey(apr_uint64_t seq)
{
    return apr_psprintf(gp, "log/e/%016" APR_UINT64_T_HEX_FMT, seq);
}

/* ---- change lists ------------------------------------------------------- */

/* "C0:a;M1:dir" -> array of iss_change_t (kind, collection, path). */
static apr_array_header_t *chg(const char *spec)
{
    apr_array_header_t *a = apr_array_make(gp, 4, sizeof(iss_change_t));
    const char *p = spec;

    while (*p) {
        const char *end = strchr(p, ';');
        iss_change_t *c = apr_array_push(a);

        if (!end)
            end = p + strlen(p);
        c->kind = (iss_change_kind_e)p[0];
        c->collection = p[1] == '1';
        c->path = apr_pstrmemdup(gp, p + 3, (apr_size_t)(end - p - 3));
        p = *end ? end + 1 : end;
    }
    return a;
}

/* The inverse of chg(). */
static const char *chg_str(const apr_array_header_t *a, apr_pool_t *p)
{
    const char *s = "";
    int i;

    for (i = 0; i < a->nelts; i++) {
        const iss_change_t *c = &APR_ARRAY_IDX(a, i, iss_change_t);

        s = apr_psprintf(p, "%s%s%c%d:%s", s, i ? ";" : "", (char)c->kind,
                         c->collection, c->path);
    }
    return s;
}

static apr_array_header_t *idx_make(void)
{
    return apr_array_make(gp, 4, sizeof(iss_sync_index_t));
}

static void idx_add(apr_array_header_t *a, const char *path, const char *val)
{
    iss_sync_index_t *x = apr_array_push(a);

    x->path = path;
    x->value = val;
    x->digest = NULL;
    x->manifest = NULL;
}

/* ---- reading the log ---------------------------------------------------- */

typedef struct {
    int calls;
    int stop_after;             /* return 1 after this many calls (0: never) */
    apr_array_header_t *seqs;   /* apr_uint64_t */
    apr_array_header_t *whens;  /* apr_time_t */
    apr_array_header_t *texts;  /* "METHOD|chg_str" */
} coll_t;

static int collect(void *baton, apr_uint64_t seq, apr_time_t when,
                   const char *method, const apr_array_header_t *changes)
{
    coll_t *c = baton;

    c->calls++;
    APR_ARRAY_PUSH(c->seqs, apr_uint64_t) = seq;
    APR_ARRAY_PUSH(c->whens, apr_time_t) = when;
    APR_ARRAY_PUSH(c->texts, const char *) =
        apr_pstrcat(gp, method, "|", chg_str(changes, gp), NULL);
    return c->stop_after && c->calls >= c->stop_after;
}

static apr_status_t read_log(iss_store_t *s, apr_uint64_t from,
                             apr_uint64_t to, int stop_after, coll_t *c)
{
    c->calls = 0;
    c->stop_after = stop_after;
    c->seqs = apr_array_make(gp, 4, sizeof(apr_uint64_t));
    c->whens = apr_array_make(gp, 4, sizeof(apr_time_t));
    c->texts = apr_array_make(gp, 4, sizeof(const char *));
    return iss_sync_log_read(s, from, to, collect, c, gp);
}

#define SEQ(c, i) APR_ARRAY_IDX((c)->seqs, i, apr_uint64_t)
#define TEXT(c, i) APR_ARRAY_IDX((c)->texts, i, const char *)

/* The time in the head of entry @a seq ("ISL1 <time>\n..."), as text;
 * NULL if there is no such entry. */
static char *entry_time_s(iss_store_t *s, apr_uint64_t seq)
{
    const char *key = apr_psprintf(gp, "log/e/%016" APR_UINT64_T_HEX_FMT,
                                   seq);
    void *v;
    apr_size_t vl;
    const char *nl;

    if (iss_store_get(s, key, strlen(key), &v, &vl, gp) != APR_SUCCESS
        || vl < 5 || memcmp(v, "ISL1 ", 5) != 0
        || !(nl = memchr(v, '\n', vl)))
        return NULL;
    return apr_pstrmemdup(gp, (char *)v + 5, (apr_size_t)(nl - (char *)v) - 5);
}

static int bounds_are(iss_store_t *s, apr_uint64_t want_last,
                      apr_uint64_t want_first)
{
    apr_uint64_t last = 99999, first = 99999;
    apr_status_t rv = iss_sync_log_bounds(s, &last, &first, gp);

    if (rv != APR_SUCCESS || last != want_last || first != want_first) {
        diag("bounds: rv %d, last %" APR_UINT64_T_FMT " first %"
             APR_UINT64_T_FMT ", want %" APR_UINT64_T_FMT " / %"
             APR_UINT64_T_FMT, rv, last, first, want_last, want_first);
        return 0;
    }
    return 1;
}

/* Append @a n entries "PUT C0:n<i>" with @a ret; 1 if all got the next
 * numbers from @a first_seq on. */
static int append_n(iss_store_t *s, int n, apr_uint64_t first_seq,
                    const iss_sync_retention_t *ret)
{
    int i;

    for (i = 0; i < n; i++) {
        apr_uint64_t seq = 0;
        apr_status_t rv = iss_sync_log_append(
            s, "PUT", chg(apr_psprintf(gp, "C0:n%d", i)), NULL, ret, NULL,
            NULL, &seq, gp);

        if (rv != APR_SUCCESS || seq != first_seq + (apr_uint64_t)i) {
            diag("append %d: rv %d seq %" APR_UINT64_T_FMT, i, rv, seq);
            return 0;
        }
    }
    return 1;
}

/* ---- tokens ------------------------------------------------------------- */

/* Two keys, as two state directories would have. */
static const iss_sync_key_t K = { { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
                                    0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                                    0xee, 0xff } };
static const iss_sync_key_t K2 = { { 0x01, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
                                     0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                                     0xee, 0xff } };

static int parse_rejects(const char *token)
{
    const char *id = NULL;
    iss_sync_pos_t pos;

    return iss_sync_token_parse(&K, token, &id, &pos, gp) == APR_EINVAL;
}

static const char *mk(const iss_sync_key_t *key, const char *sid,
                      apr_uint64_t seq, apr_uint32_t idx, int initial,
                      const char *after)
{
    iss_sync_pos_t pos;

    memset(&pos, 0, sizeof(pos));
    pos.seq = seq;
    pos.idx = idx;
    pos.initial = initial;
    pos.after = after;
    return iss_sync_token_make(key, sid, &pos, gp);
}

/* make -> parse gives back @a pos and @a sid. */
static int round_trip(const char *sid, const iss_sync_pos_t *pos)
{
    const char *tok = iss_sync_token_make(&K, sid, pos, gp), *id = NULL;
    iss_sync_pos_t back;
    apr_status_t rv = tok ? iss_sync_token_parse(&K, tok, &id, &back, gp)
                          : APR_EGENERAL;
    int same = rv == APR_SUCCESS && id && !strcmp(id, sid)
               && back.seq == pos->seq && !back.initial == !pos->initial;

    if (same && pos->initial)
        same = back.after && !strcmp(back.after, pos->after);
    else if (same && pos->after && *pos->after)
        same = back.after && !strcmp(back.after, pos->after)
               && back.idx == pos->idx;
    else if (same)
        same = back.idx == 0 && back.after == NULL;
    if (!same)
        diag("round trip failed for %s (rv %d)", tok ? tok : "(null)", rv);
    return same;
}

/* Whether the @a n characters at @a s are lowercase hex digits. */
static int lower_hex(const char *s, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* @a tok with bit @a bit of the 16 bytes in hex at offset @a off flipped. */
static const char *flip(const char *tok, apr_size_t off, int bit)
{
    char *t = apr_pstrdup(gp, tok);
    int d = (t[off + bit / 4] >= 'a') ? t[off + bit / 4] - 'a' + 10
                                      : t[off + bit / 4] - '0';

    d ^= 1 << (bit % 4);
    t[off + bit / 4] = "0123456789abcdef"[d];
    return t;
}

/* Every one of the 128 flipped bits of the block at @a off is refused. */
static int every_flip_refused(const char *tok, apr_size_t off)
{
    int bit, all = 1;

    for (bit = 0; bit < 128; bit++)
        if (!parse_rejects(flip(tok, off, bit))) {
            diag("accepted with bit %d at %lu flipped: %s", bit,
                 (unsigned long)off, flip(tok, off, bit));
            all = 0;
        }
    return all;
}

/* Bits that differ between the hex blocks at @a a and @a b. */
static int bits_apart(const char *a, const char *b)
{
    int i, n = 0;

    for (i = 0; i < 32; i++) {
        int x = (a[i] >= 'a' ? a[i] - 'a' + 10 : a[i] - '0')
                ^ (b[i] >= 'a' ? b[i] - 'a' + 10 : b[i] - '0');

        n += (x & 1) + ((x >> 1) & 1) + ((x >> 2) & 1) + ((x >> 3) & 1);
    }
    return n;
}

static void test_tokens(void)
{
    static const char *const paths[] = {
        "a", "dir/sub/file.txt", "with space", "two  spaces/ and / more",
        "100%", "%41%", "\xc3\xa9t\xc3\xa9/\xe2\x82\xac \xf0\x9f\x98\x80",
        "-._~", "a+b=c&d?e#f;g,h:i@j!k$l'(m)*n[o]", "x/", "/", "trailing.",
        "\x01\x1f\x7f\x80\xff", "i0/5.3", "..", "a\tb\nc\r"
    };
    const apr_size_t b = sizeof(B) - 1 + strlen(SID) + 1; /* after "id/" */
    iss_sync_pos_t pos, back;
    const char *id, *t, *t2;
    apr_size_t i;
    int all, min;

    /* the forms: the store id, then 32 lowercase hex digits per number */
    t = mk(&K, SID, 43, 0, 0, NULL);
    ok(t && strlen(t) == b + 32 && !strncmp(t, B SID "/", b)
       && lower_hex(t + b, 32), "token: " B SID "/<32 hex> (%s)", t);
    t = mk(&K, SID, 11, 0, 1, "a b/c%d/\xc3\xa9");
    ok(t && t[b] == 'i'
       && lower_hex(t + b + 1, 32) && !strcmp(t + b + 33, "/a%20b/c%25d/%C3%A9"),
       "token: initial listing i<32 hex>/<escaped path> (%s)", t);
    t = mk(&K, SID, 1, 0, 1, "dir/file.txt");
    ok(t && !strcmp(t + b + 33, "/dir/file.txt"),
       "token: initial listing, plain path unescaped");
    t = mk(&K, SID, 7, 2, 0, "bob/b 3.txt");
    ok(t && strlen(t) == b + 32 + 1 + 32 + 1 + 13 && lower_hex(t + b, 32)
       && t[b + 32] == '/' && lower_hex(t + b + 33, 32)
       && !strcmp(t + b + 65, "/bob/b%203.txt"),
       "token: member continuation <32 hex>/<32 hex>/<escaped path> (%s)", t);
    ok(parse_rejects(t) == 0 && iss_sync_token_parse(&K, t, &id, &back, gp)
       == APR_SUCCESS && back.seq == 7 && back.idx == 2 && !back.initial
       && !strcmp(back.after, "bob/b 3.txt") && !strcmp(id, SID),
       "parse: entry, nth, member");
    t = mk(&K, SID, 7, 3, 0, NULL);
    ok(t && iss_sync_token_parse(&K, t, &id, &back, gp) == APR_SUCCESS
       && back.seq == 7 && back.idx == 0 && back.after == NULL,
       "an index without a member is not kept (no <n>.<i> form any more)");

    /* round trips */
    memset(&pos, 0, sizeof(pos));
    all = 1;
    for (pos.seq = 1; pos.seq < 20; pos.seq++)
        all &= round_trip(SID, &pos);
    pos.seq = APR_UINT64_C(1) << 40;
    all &= round_trip(SID, &pos);
    pos.seq = APR_UINT64_MAX;
    all &= round_trip(SID, &pos);
    all &= round_trip("abc", &pos);
    ok(all, "round trip: complete positions (and a short store id)");
    all = 1;
    memset(&pos, 0, sizeof(pos));
    pos.initial = 1;
    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        pos.seq = 1 + i * 1000;
        pos.after = paths[i];
        all &= round_trip(SID, &pos);
        /* the token itself must be printable ASCII without spaces */
        {
            const char *c;

            t = iss_sync_token_make(&K, SID, &pos, gp);
            for (c = t; *c; c++)
                if (*c <= ' ' || *c >= 0x7f) {
                    diag("token %s has byte 0x%02x", t, (unsigned char)*c);
                    all = 0;
                    break;
                }
        }
    }
    pos.seq = APR_UINT64_MAX;
    pos.after = "z";
    all &= round_trip(SID, &pos);
    ok(all, "round trip: initial positions (spaces, %%, UTF-8, '/', "
       "control bytes)");
    all = 1;
    memset(&pos, 0, sizeof(pos));
    for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        pos.seq = 1 + i * 1000;
        pos.idx = (apr_uint32_t)i;
        pos.after = paths[i];
        all &= round_trip(SID, &pos);
    }
    pos.seq = APR_UINT64_MAX - 1;
    pos.idx = 0xFFFFFFFFu;
    pos.after = "z";
    all &= round_trip(SID, &pos);
    ok(all, "round trip: member continuations");

    /* what the text tells: equal positions give equal text, others
     * unrelated text of one length */
    ok(!strcmp(mk(&K, SID, 43, 0, 0, NULL), mk(&K, SID, 43, 0, 0, NULL)),
       "equal positions: equal tokens");
    all = 1;
    min = 128;
    for (i = 1; i <= 300; i++) {
        apr_size_t j;

        t = mk(&K, SID, i, 0, 0, NULL);
        for (j = i + 1; j <= 300 && j <= i + 5; j++) {
            int d;

            t2 = mk(&K, SID, j, 0, 0, NULL);
            d = bits_apart(t + b, t2 + b);
            all &= strlen(t) == strlen(t2) && d > 0;
            min = d < min ? d : min;
        }
    }
    ok(all && min >= 30, "positions 1..300: same length, every pair of "
       "neighbours apart by at least 30 of 128 bits (fewest: %d)", min);
    ok(strcmp(mk(&K, SID, 43, 0, 0, NULL), mk(&K2, SID, 43, 0, 0, NULL)),
       "another key: another token for the same position");
    ok(strcmp(mk(&K, SID, 43, 0, 0, NULL) + b, mk(&K, "abc", 43, 0, 0, NULL)
              + sizeof(B) - 1 + 4), "another store id: another block");

    /* only what the key made is accepted */
    t = mk(&K, SID, 43, 0, 0, NULL);
    ok(every_flip_refused(t, b), "complete: each of the 128 flipped bits "
       "refused");
    t = mk(&K, SID, 11, 0, 1, "a");
    ok(every_flip_refused(t, b + 1), "initial: each flipped bit refused");
    t = mk(&K, SID, 7, 2, 0, "a");
    ok(every_flip_refused(t, b) && every_flip_refused(t, b + 33),
       "member continuation: each flipped bit of either block refused");
    all = 1;
    for (i = 0; i < 32; i++) {
        char *u = apr_pstrdup(gp, mk(&K, SID, 43, 0, 0, NULL));

        if (u[b + i] >= 'a') {
            u[b + i] = (char)(u[b + i] - 'a' + 'A');
            all &= parse_rejects(u);
        }
    }
    ok(all, "an upper-case digit is refused (one text per block)");
    ok(iss_sync_token_parse(&K2, mk(&K, SID, 43, 0, 0, NULL), &id, &back, gp)
       == APR_EINVAL, "another key refuses it (complete)");
    ok(iss_sync_token_parse(&K2, mk(&K, SID, 11, 0, 1, "a"), &id, &back, gp)
       == APR_EINVAL, "another key refuses it (initial)");
    ok(iss_sync_token_parse(&K2, mk(&K, SID, 7, 2, 0, "a"), &id, &back, gp)
       == APR_EINVAL, "another key refuses it (member continuation)");
    t = mk(&K, SID, 43, 0, 0, NULL);
    ok(parse_rejects(apr_pstrcat(gp, B "0123abcd-ef45-6789-abcd-ef0123456788/",
                                 t + b, NULL)),
       "the block under another store id is refused");
    ok(parse_rejects(apr_pstrcat(gp, B SID "/i", t + b, "/a", NULL)),
       "a complete position's block as a listing continuation: refused");
    t2 = mk(&K, SID, 43, 0, 1, "a");
    ok(parse_rejects(apr_pstrcat(gp, B SID "/", t2 + b + 1, NULL)),
       "a listing continuation's block as a complete position: refused");
    t = mk(&K, SID, 7, 2, 0, "a");
    t2 = mk(&K, SID, 8, 2, 0, "a");
    ok(parse_rejects(apr_pstrcat(gp, B SID "/", apr_pstrndup(gp, t + b, 33),
                                 t2 + b + 33, NULL)),
       "a member continuation's item index under another entry: refused");
    ok(parse_rejects(apr_pstrcat(gp, B SID "/", apr_pstrndup(gp, t + b, 32),
                                 NULL)),
       "its entry block alone as a complete position: refused");

    /* the old decimal forms (issue 16 item 1: they told the count, and
     * accepting them would let anyone probe the log's bounds) */
    ok(parse_rejects(B SID "/42"), "reject the old complete form");
    ok(parse_rejects(B SID "/0"), "reject the old form of position 0");
    ok(parse_rejects(B SID "/7.3"), "reject the old partial form");
    ok(parse_rejects(B SID "/i10/a%20b"), "reject the old listing form");
    ok(parse_rejects(B SID "/7/2/bob/b%203.txt"),
       "reject the old member continuation");

    /* malformations around valid blocks */
    t = mk(&K, SID, 43, 0, 0, NULL);
    ok(parse_rejects(apr_pstrcat(gp, t, "/", NULL)), "reject trailing slash");
    ok(parse_rejects(apr_pstrcat(gp, t, "0", NULL)), "reject a 33rd digit");
    ok(parse_rejects(apr_pstrndup(gp, t, strlen(t) - 1)),
       "reject 31 digits");
    ok(parse_rejects(apr_pstrcat(gp, t, " ", NULL)), "reject trailing space");
    t = mk(&K, SID, 11, 0, 1, "a");
    ok(parse_rejects(apr_pstrndup(gp, t, strlen(t) - 1)),
       "reject initial with empty path");
    ok(parse_rejects(apr_pstrndup(gp, t, strlen(t) - 2)),
       "reject initial without path");
    ok(parse_rejects(apr_pstrcat(gp, apr_pstrndup(gp, t, strlen(t) - 1),
                                 "a%zz", NULL)), "reject bad escape");
    ok(parse_rejects(apr_pstrcat(gp, apr_pstrndup(gp, t, strlen(t) - 1),
                                 "%00", NULL)), "reject %%00");
    ok(parse_rejects(apr_pstrcat(gp, apr_pstrndup(gp, t, strlen(t) - 1),
                                 "a b", NULL)), "reject raw space in path");
    ok(parse_rejects(apr_pstrcat(gp, apr_pstrndup(gp, t, strlen(t) - 1),
                                 "a\xc3\xa9", NULL)), "reject raw UTF-8");
    t = mk(&K, SID, 7, 2, 0, "a");
    ok(parse_rejects(apr_pstrndup(gp, t, strlen(t) - 1)),
       "reject member continuation with empty member");
    ok(parse_rejects(apr_pstrcat(gp, B SID "/", apr_pstrndup(gp, t + b, 32),
                                 "//a", NULL)),
       "reject member continuation without item block");
    ok(iss_sync_token_parse(&K, NULL, &id, &back, gp) == APR_EINVAL,
       "reject NULL");
    ok(parse_rejects(""), "reject empty");
    t = mk(&K, SID, 43, 0, 0, NULL);
    ok(parse_rejects(apr_pstrcat(gp, "http", t + 5, NULL)),
       "reject http: prefix");
    ok(parse_rejects(apr_pstrcat(gp, "https://example.org/ns/sync/",
                                 t + sizeof(B) - 1, NULL)),
       "reject another base");
    ok(parse_rejects("urn:uuid:" SID), "reject a urn");
    ok(parse_rejects(B), "reject the bare base");
    ok(parse_rejects(apr_pstrcat(gp, B "/", t + b, NULL)),
       "reject empty store id");
    ok(parse_rejects(B SID), "reject store id without a position");
    ok(parse_rejects(apr_pstrcat(gp, B "xyz/", t + b, NULL)),
       "reject non-hex store id");
    ok(parse_rejects(B SID "/"), "reject missing block");

    /* memset on refusal: nothing half-parsed is left */
    memset(&back, 0x5a, sizeof(back));
    iss_sync_token_parse(&K, B SID "/i10/a", &id, &back, gp);
    ok(back.seq == 0 && back.idx == 0 && !back.initial && !back.after,
       "a refused token leaves an empty position");
}

/* The key file: made once, read back, damage detected and replaced. */
static void test_token_key(void)
{
    tmp_t t = { 0 };
    iss_store_t *s = fresh_store(&t, "token key");
    iss_sync_key_t k1, k2, k3;
    const char *why = NULL, *path, *tok;
    apr_finfo_t fi, ident;
    apr_file_t *f;
    apr_status_t rv;
    int made = -1;
    char buf[128];
    apr_size_t n = sizeof(buf);

    if (!s)
        return;
    path = apr_pstrcat(gp, t.dir, "/" ISS_SYNC_KEY_FILE, NULL);
    rv = iss_sync_key_load(&k1, t.dir, 0, &made, NULL, &why, gp);
    ok(rv == APR_ENOENT && made == 0 && why,
       "key: none, not made when not asked to (%s)", why ? why : "");
    rv = iss_sync_key_load(&k1, t.dir, 1, &made, NULL, &why, gp);
    ok(rv == APR_SUCCESS && made == 1, "key: made on first use");
    ok(apr_stat(&fi, path, APR_FINFO_PROT | APR_FINFO_SIZE, gp)
       == APR_SUCCESS && fi.protection == (APR_FPROT_UREAD | APR_FPROT_UWRITE) && fi.size == 66,
       "key: its file is mode 0600, one line of 66 bytes");
    ok(apr_file_open(&f, path, APR_FOPEN_READ, 0, gp) == APR_SUCCESS
       && (apr_file_read_full(f, buf, sizeof(buf), &n), apr_file_close(f),
           n == 66) && !strncmp(buf, "iss-token-key 1 ", 16)
       && buf[65] == '\n', "key: iss-token-key 1 <hex> <check>");
    rv = iss_sync_key_load(&k2, t.dir, 1, &made, &ident, &why, gp);
    ok(rv == APR_SUCCESS && made == 0 && !memcmp(&k1, &k2, sizeof(k1)),
       "key: read back, the same");
    ok(!iss_sync_key_changed(t.dir, &ident, gp),
       "key: unchanged file, iss_sync_key_changed() says so");
    ok(apr_stat(&fi, apr_pstrcat(gp, path, ".tmp.", apr_ltoa(gp, getpid()),
                                 NULL), APR_FINFO_SIZE, gp) != APR_SUCCESS,
       "key: no temporary file left");
    tok = mk(&k1, iss_store_id(s), 5, 0, 0, NULL);

    /* garbled: one digit of the key changed */
    buf[20] = buf[20] == '0' ? '1' : '0';
    testfs_put(path, apr_pstrndup(gp, buf, 66), gp);
    rv = iss_sync_key_load(&k2, t.dir, 0, &made, NULL, &why, gp);
    ok(rv == ISS_STORE_EDAMAGED && made == 0,
       "key: a changed digit is damage (%s)", why ? why : "");
    testfs_put(path, apr_pstrndup(gp, buf, 30), gp);
    rv = iss_sync_key_load(&k2, t.dir, 0, &made, NULL, &why, gp);
    ok(rv == ISS_STORE_EDAMAGED, "key: a truncated file is damage");
    testfs_put(path, "", gp);
    rv = iss_sync_key_load(&k2, t.dir, 0, &made, NULL, &why, gp);
    ok(rv == ISS_STORE_EDAMAGED, "key: an empty file is damage");
    ok(iss_sync_key_changed(t.dir, &ident, gp),
       "key: a rewritten file is a changed key file");
    rv = iss_sync_key_load(&k3, t.dir, 1, &made, &ident, &why, gp);
    ok(rv == APR_SUCCESS && made == 2 && memcmp(&k1, &k3, sizeof(k1)),
       "key: a damaged one is replaced by a new key");
    ok(!iss_sync_key_changed(t.dir, &ident, gp),
       "key: the identity given with the new key is its file's");
    ok(iss_sync_token_parse(&k3, tok, &why, &(iss_sync_pos_t){ 0 }, gp)
       == APR_EINVAL, "key: a token of the old key is refused by the new");
    rv = iss_sync_key_load(&k2, t.dir, 0, &made, NULL, &why, gp);
    ok(rv == APR_SUCCESS && !memcmp(&k2, &k3, sizeof(k2)),
       "key: the new one is what is read next");

    /* a directory where no key can be made: an error saying why */
    {
        const char *ro = apr_pstrcat(gp, t.base, "/ro", NULL);

        apr_dir_make(ro, APR_FPROT_OS_DEFAULT, gp);
        apr_file_perms_set(ro, APR_FPROT_UREAD | APR_FPROT_UEXECUTE);
        rv = iss_sync_key_load(&k2, ro, 1, &made, NULL, &why, gp);
        ok(rv != APR_SUCCESS && made == 0 && why,
           "key: none can be made in a read-only directory (%s)",
           why ? why : "");
        apr_file_perms_set(ro, APR_FPROT_OS_DEFAULT);
    }
    tmp_done(&t);
}

/* ---- begin / end / append / read ---------------------------------------- */

static void test_begin_end(void)
{
    tmp_t t = { 0 };
    iss_store_t *s = fresh_store(&t, "begin/end");
    apr_array_header_t *c1, *c2, *ix;
    const char *id1 = NULL, *id2 = NULL, *v, *self;
    apr_uint64_t seq = 77;
    apr_time_t t0, t1;
    coll_t c;

    if (!s)
        return;
    self = iss_sync_log_owner_self(gp);
    ok(bounds_are(s, 0, 1), "empty log: last 0, first 1");
    is_str(pending(s), "", "empty log: nothing pending");

    c1 = chg("C0:a.txt;M1:dir;R0:dir/old file;P0:d\xc3\xa9j\xc3\xa0 vu");
    is_int(iss_sync_log_begin(s, "PUT", c1, &id1, gp), APR_SUCCESS,
           "begin PUT");
    ok(id1 && *id1 && !strchr(id1, ' '), "begin gives an id without spaces");
    if (!id1)
        id1 = "none";
    is_str(pending(s), id1, "log/pending lists the intent");
    v = get_s(s, apr_pstrcat(gp, "intent/", id1, NULL));
    ok(v && !strncmp(v, apr_pstrcat(gp, "ISI1 ", self, " claimed\n", NULL),
                     strlen(self) + 14),
       "intent/<id> names this process as owner, and that it is claimed");
    {
        const char *m = NULL;
        apr_array_header_t *back = NULL;
        const char *nl = v ? strchr(v, '\n') : NULL;

        ok(nl && iss_change_decode(nl + 1, strlen(nl + 1), &m, &back, gp)
                 == APR_SUCCESS
           && !strcmp(m, "PUT") && !strcmp(chg_str(back, gp), chg_str(c1, gp)),
           "intent/<id> holds the method and the members");
    }
    ok(bounds_are(s, 0, 1), "begin appends nothing");

    c2 = chg("R1:moved;C1:target");
    is_int(iss_sync_log_begin(s, "MOVE", c2, &id2, gp), APR_SUCCESS,
           "second begin");
    if (!id2)
        id2 = "none2";
    ok(strcmp(id1, id2) != 0, "ids differ");
    is_str(pending(s), sorted2(id1, id2), "log/pending lists both intents");

    put_s(s, "f/dir/old file", "f 1 1 1 1");
    put_s(s, "f/untouched", "f 2 2 2 2");
    ix = idx_make();
    idx_add(ix, "a.txt", "f 10 1700000000000000 1700000000000000 5");
    idx_add(ix, "dir/old file", NULL);
    t0 = apr_time_now();
    is_int(iss_sync_log_end(s, id1, "PUT", c1, ix, NULL, &seq, gp),
           APR_SUCCESS, "end with changes");
    t1 = apr_time_now();
    is_int(seq, 1, "first entry is 1");
    ok(bounds_are(s, 1, 1), "bounds after one entry: 1..1");
    is_str(get_s(s, apr_pstrcat(gp, "intent/", id1, NULL)), NULL,
           "end removes intent/<id>");
    is_str(pending(s), id2, "end removes the id from log/pending");
    is_str(get_s(s, "f/a.txt"), "f 10 1700000000000000 1700000000000000 5",
           "end writes index records");
    is_str(get_s(s, "f/dir/old file"), NULL, "end deletes index records");
    is_str(get_s(s, "f/untouched"), "f 2 2 2 2",
           "end leaves other index records alone");

    seq = 77;
    is_int(iss_sync_log_end(s, id2, "MOVE", NULL, NULL, NULL, &seq, gp),
           APR_SUCCESS, "end without changes");
    is_int(seq, 0, "end without changes: seq 0");
    ok(bounds_are(s, 1, 1), "end without changes appends nothing");
    is_str(get_s(s, apr_pstrcat(gp, "intent/", id2, NULL)), NULL,
           "end without changes removes intent/<id>");
    is_str(pending(s), "", "nothing pending any more");

    is_int(iss_sync_log_end(s, NULL, "MKCOL", chg("C1:new dir"), NULL, NULL,
                            &seq, gp),
           APR_SUCCESS, "end without an intent");
    is_int(seq, 2, "second entry is 2");
    is_int(iss_sync_log_end(s, NULL, "PROPPATCH",
                            apr_array_make(gp, 1, sizeof(iss_change_t)), NULL,
                            NULL, &seq, gp),
           APR_SUCCESS, "end with an empty (non-NULL) change list");
    is_int(seq, 3, "an empty change list still appends entry 3");
    ok(bounds_are(s, 3, 1), "bounds 1..3");

    /* read */
    is_int(read_log(s, 1, 3, 0, &c), APR_SUCCESS, "read 1..3");
    is_int(c.calls, 3, "read 1..3: three calls");
    if (c.calls == 3) {
        ok(SEQ(&c, 0) == 1 && SEQ(&c, 1) == 2 && SEQ(&c, 2) == 3,
           "read delivers in order");
        is_str(TEXT(&c, 0), apr_pstrcat(gp, "PUT|", chg_str(c1, gp), NULL),
               "entry 1: method and members intact");
        is_str(TEXT(&c, 1), "MKCOL|C1:new dir", "entry 2 intact");
        is_str(TEXT(&c, 2), "PROPPATCH|", "entry 3: no members");
        ok(APR_ARRAY_IDX(c.whens, 0, apr_time_t) >= t0
           && APR_ARRAY_IDX(c.whens, 0, apr_time_t) <= t1,
           "entry 1: time of the end step");
        ok(APR_ARRAY_IDX(c.whens, 0, apr_time_t)
           <= APR_ARRAY_IDX(c.whens, 1, apr_time_t),
           "entry times do not go backwards");
    }
    else {
        skip(6, "read did not deliver three entries");
    }
    is_int(read_log(s, 2, 3, 1, &c), APR_SUCCESS, "read with early stop");
    ok(c.calls == 1 && SEQ(&c, 0) == 2, "callback stop: called once, for 2");
    is_int(read_log(s, 3, 2, 0, &c), APR_SUCCESS, "read of an empty range");
    is_int(c.calls, 0, "empty range: no calls");
    is_int(read_log(s, 2, 2, 0, &c), APR_SUCCESS, "read of one entry");
    ok(c.calls == 1 && !strcmp(TEXT(&c, 0), "MKCOL|C1:new dir"),
       "read 2..2 gives entry 2");

    /* append with key/val */
    ix = idx_make();
    idx_add(ix, "x y", "d 0 1 1 7");
    idx_add(ix, "a.txt", NULL);
    is_int(iss_sync_log_append(s, "RECONCILE", chg("C1:x y;R0:a.txt"), ix,
                               NULL, "log/scan", "1234567", &seq, gp),
           APR_SUCCESS, "append with key/val");
    is_int(seq, 4, "append: entry 4");
    is_str(get_s(s, "log/scan"), "1234567", "append puts key = val");
    is_str(get_s(s, "f/x y"), "d 0 1 1 7", "append writes index records");
    is_str(get_s(s, "f/a.txt"), NULL, "append deletes index records");
    is_int(read_log(s, 4, 4, 0, &c), APR_SUCCESS, "read entry 4");
    ok(c.calls == 1 && !strcmp(TEXT(&c, 0), "RECONCILE|C1:x y;R0:a.txt"),
       "entry 4 intact");
    is_int(iss_sync_log_append(s, "RECONCILE", chg("M0:b"), NULL, NULL, NULL,
                               NULL, &seq, gp),
           APR_SUCCESS, "append without key, without index");
    is_int(seq, 5, "append: entry 5");
    is_str(get_s(s, "log/scan"), "1234567", "append without key: no put");
    is_str(pending(s), "", "append records no intent");

    /* a compacted (here: removed) entry */
    is_int(iss_sync_log_compact(s, &(iss_sync_retention_t){ 0, 2 }, 0, &seq,
                                gp),
           APR_SUCCESS, "compact to the newest 2");
    is_int(seq, 3, "compact removed 3 entries");
    ok(bounds_are(s, 5, 4), "bounds 4..5");
    is_int(read_log(s, 1, 1, 0, &c), APR_NOTFOUND,
           "read of a compacted entry: APR_NOTFOUND");
    is_int(read_log(s, 3, 5, 0, &c), APR_NOTFOUND,
           "read of a range starting at a compacted entry: APR_NOTFOUND");
    is_int(read_log(s, 4, 5, 0, &c), APR_SUCCESS, "read of kept entries");
    is_int(c.calls, 2, "kept entries: two calls");
    tmp_done(&t);
}

/* ---- recovery and owners ------------------------------------------------ */

/* In a child: open the store at @a dir and begin an intent, then die. */
static void child_begin_and_die(const char *dir, const char *spec, int n)
{
    apr_pool_t *p;
    iss_store_t *s;
    const char *id;
    int i;

    apr_pool_create(&p, NULL);
    if (!(s = open_store(dir, p)))
        _exit(2);
    for (i = 0; i < n; i++)
        if (iss_sync_log_begin(s, "DELETE", chg(spec), &id, p) != APR_SUCCESS)
            _exit(3);
    _exit(0);
}

static int fork_and_wait(const char *dir, const char *spec, int n,
                         pid_t *pid)
{
    apr_proc_t proc;
    apr_exit_why_e why;
    int code = -1;
    apr_status_t rv = apr_proc_fork(&proc, gp);

    if (rv == APR_INCHILD)
        child_begin_and_die(dir, spec, n);
    if (rv != APR_INPARENT) {
        diag("fork: %d", rv);
        return 0;
    }
    *pid = proc.pid;
    rv = apr_proc_wait(&proc, &code, &why, APR_WAIT);
    if (rv != APR_CHILD_DONE || why != APR_PROC_EXIT || code != 0) {
        diag("child: rv %d why %d code %d", rv, (int)why, code);
        return 0;
    }
    return 1;
}

static void child_lazy_and_die(const char *dir, const char *spec, int n);

static int fork_and_wait_lazy(const char *dir, const char *spec, int n,
                              pid_t *pid)
{
    apr_proc_t proc;
    apr_exit_why_e why;
    int code = -1;
    apr_status_t rv = apr_proc_fork(&proc, gp);

    if (rv == APR_INCHILD)
        child_lazy_and_die(dir, spec, n);
    if (rv != APR_INPARENT)
        return 0;
    *pid = proc.pid;
    rv = apr_proc_wait(&proc, &code, &why, APR_WAIT);
    if (rv != APR_CHILD_DONE || why != APR_PROC_EXIT || code != 0) {
        diag("child: rv %d why %d code %d", rv, (int)why, code);
        return 0;
    }
    return 1;
}

static void test_owner(void)
{
    const char *self = iss_sync_log_owner_self(gp);
    char *end;
    long pid = strtol(self, &end, 10);
    apr_uint64_t start = *end == ' ' ? apr_strtoi64(end + 1, NULL, 10) : 0;
    pid_t child = 0;
    tmp_t t = { 0 };
    iss_store_t *s;

    ok(pid == (long)getpid() && *end == ' ', "owner_self: '<pid> <start>'");
    is_int(iss_sync_log_owner_alive(self), 1, "owner_alive(self)");
    is_int(iss_sync_log_owner_alive("garbage"), 0, "owner_alive(garbage)");
    is_int(iss_sync_log_owner_alive(""), 0, "owner_alive(empty)");
    is_int(iss_sync_log_owner_alive("-1 0"), 0, "owner_alive(negative pid)");
    is_int(iss_sync_log_owner_alive("0 0"), 0, "owner_alive(pid 0)");
#ifdef __linux__
    ok(start > 0, "owner_self has a start time on Linux");
    is_int(iss_sync_log_owner_alive(apr_psprintf(
               gp, "%ld %" APR_UINT64_T_FMT, pid, start + 1)), 0,
           "owner_alive(our pid, another start time): a reused pid");
#else
    (void)start;
    skip(2, "start times are read from /proc (Linux)");
#endif

    if (!(s = fresh_store(&t, "owner")))
        return;
    if (fork_and_wait(t.dir, "M0:x", 1, &child)) {
        const char *list = pending(s), *v, *owner;

        v = get_s(s, apr_pstrcat(gp, "intent/", list, NULL));
        owner = v && !strncmp(v, "ISI1 ", 5)
                ? apr_pstrndup(gp, v + 5, strcspn(v + 5, "\n")) : "";
        ok(strtol(owner, NULL, 10) == (long)child,
           "the child's intent names the child");
        is_int(iss_sync_log_owner_alive(owner), 0,
               "owner_alive(reaped child's owner string)");
        is_int(iss_sync_log_owner_alive(apr_psprintf(gp, "%ld 0",
                                                     (long)child)),
               0, "owner_alive(reaped child's pid)");
    }
    else {
        ok(0, "child ran");
        skip(2, "no child");
    }
    tmp_done(&t);
}

static void test_recover(void)
{
    tmp_t t = { 0 };
    iss_store_t *s = fresh_store(&t, "recover");
    const char *mine = NULL, *list, *dead, *v;
    pid_t child = 0;
    int rec = -1;
    coll_t c;

    if (!s)
        return;
    is_int(iss_sync_log_recover(s, NULL, &rec, gp), APR_SUCCESS,
           "recover on an empty store");
    is_int(rec, 0, "nothing recovered");
    ok(bounds_are(s, 0, 1), "still empty");

    put_s(s, "f/r/x", "f 1 1 1 1");
    put_s(s, "f/r/gone", "d 0 1 1 2");
    put_s(s, "f/r/gone/in", "f 3 1 1 3");
    put_s(s, "f/other", "f 4 1 1 4");
    is_int(iss_sync_log_begin(s, "PUT", chg("M0:other"), &mine, gp),
           APR_SUCCESS, "live intent of this process");
    if (!mine)
        mine = "none";
    if (!fork_and_wait(t.dir, "M0:r/x;R1:r/gone;R0:r/gone/in", 1, &child)) {
        ok(0, "child began an intent and died");
        tmp_done(&t);
        return;
    }
    list = pending(s);
    ok(strlen(list) == strlen(mine) * 2 + 1 && strstr(list, mine),
       "two intents pending");
    dead = !strncmp(list, mine, strlen(mine)) ? list + strlen(mine) + 1
                                              : apr_pstrndup(gp, list,
                                                             strlen(mine));
    ok(get_s(s, apr_pstrcat(gp, "intent/", dead, NULL)) != NULL,
       "the dead child's intent is there");

    is_int(iss_sync_log_recover(s, NULL, &rec, gp), APR_SUCCESS, "recover");
    is_int(rec, 1, "one intent recovered");
    ok(bounds_are(s, 1, 1), "recovery appended entry 1");
    is_int(read_log(s, 1, 1, 0, &c), APR_SUCCESS, "read the recovered entry");
    ok(c.calls == 1
       && !strcmp(TEXT(&c, 0), "DELETE|M0:r/x;R1:r/gone;R0:r/gone/in"),
       "recovered entry: the dead intent's method and members");
    is_str(get_s(s, apr_pstrcat(gp, "intent/", dead, NULL)), NULL,
           "dead intent removed");
    is_str(pending(s), mine, "only the live intent is still pending");
    v = get_s(s, apr_pstrcat(gp, "intent/", mine, NULL));
    ok(v != NULL, "the live intent is left alone");
    ok(!get_s(s, "f/r/x") && !get_s(s, "f/r/gone") && !get_s(s, "f/r/gone/in"),
       "index records of the recovered members deleted");
    is_str(get_s(s, "f/other"), "f 4 1 1 4",
           "index record of the live intent's member kept");

    is_int(iss_sync_log_recover(s, NULL, &rec, gp), APR_SUCCESS,
           "recover again");
    is_int(rec, 0, "again: nothing recovered");
    ok(bounds_are(s, 1, 1), "again: nothing appended");
    is_int(iss_sync_log_end(s, mine, "PUT", NULL, NULL, NULL, NULL, gp),
           APR_SUCCESS, "the live intent ends without changes");
    is_str(pending(s), "", "nothing pending");

    /* an intent whose owner cannot be read counts as dead */
    {
        char *enc;
        apr_size_t elen;
        const char *val;

        iss_change_encode("COPY", chg("C0:copied"), &enc, &elen, gp);
        val = apr_pstrcat(gp, "ISI1 not-a-pid\n",
                          apr_pstrmemdup(gp, enc, elen), NULL);
        put_s(s, "intent/00000000feedbeef", val);
        put_s(s, "log/pending", "00000000feedbeef");
        put_s(s, "f/copied", "f 1 1 1 9");
        is_int(iss_sync_log_recover(s, NULL, &rec, gp), APR_SUCCESS,
               "recover an intent with an unreadable owner");
        is_int(rec, 1, "it is recovered");
        is_int(read_log(s, 2, 2, 0, &c), APR_SUCCESS, "read entry 2");
        ok(c.calls == 1 && !strcmp(TEXT(&c, 0), "COPY|C0:copied"),
           "entry 2: the intent's members");
        is_str(get_s(s, "f/copied"), NULL, "its index record deleted");
        is_str(pending(s), "", "pending emptied");
    }

    /* several dead intents at once, with retention applied */
    if (fork_and_wait(t.dir, "M0:many", 3, &child)) {
        is_int(iss_sync_log_recover(s, &(iss_sync_retention_t){ 0, 2 }, &rec,
                                    gp),
               APR_SUCCESS, "recover three dead intents");
        is_int(rec, 3, "three recovered");
        ok(bounds_are(s, 5, 4), "entries 3..5 appended, retention kept 2");
        is_str(pending(s), "", "pending emptied");
    }
    else {
        ok(0, "child began three intents and died");
        skip(3, "no child");
    }
    tmp_done(&t);
}

/* ---- a settlement that fails in a process that lives on ------------------ */

/* The size of the largest file named iss-store.wal.* in @a dir. */
static apr_off_t wal_size(const char *dir)
{
    apr_dir_t *d;
    apr_finfo_t fi;
    apr_off_t max = -1;

    if (apr_dir_open(&d, dir, gp) != APR_SUCCESS)
        return -1;
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_SIZE, d)
           == APR_SUCCESS) {
        if (!strncmp(fi.name, "iss-store.wal.", 14) && fi.size > max)
            max = fi.size;
    }
    apr_dir_close(d);
    return max;
}

/* An intent whose settlement failed (here: the log cannot grow, as on a
 * full disk; RLIMIT_FSIZE makes the append fail for real) in a process
 * that goes on is recovered, by this process or another handle; one whose
 * write is still under way is not, whoever asks. */
static void test_abandoned(void)
{
    tmp_t t = { 0 };
    iss_store_t *s = fresh_store(&t, "abandoned"), *s2;
    const char *id = NULL, *busy = NULL;
    apr_status_t srv;
    struct rlimit old, lim;
    apr_off_t size;
    int rec = -1;
    coll_t c;

    if (!s)
        return;
    s2 = open_store(t.dir, gp);
    ok(s2 != NULL, "abandoned: a second handle");
    if (!s2) {
        tmp_done(&t);
        return;
    }
    is_int(iss_sync_log_begin(s, "PUT", chg("C0:put.txt"), &id, gp),
           APR_SUCCESS, "abandoned: begin a PUT");
    is_int(iss_sync_log_begin(s, "PUT", chg("M0:busy.txt"), &busy, gp),
           APR_SUCCESS, "abandoned: begin another one, still under way");
    is_int(iss_sync_log_recover(s, NULL, &rec, gp), APR_SUCCESS,
           "abandoned: recover while both are under way");
    is_int(rec, 0, "abandoned: nothing recovered (this handle asks)");
    is_int(iss_sync_log_recover(s2, NULL, &rec, gp), APR_SUCCESS,
           "abandoned: recover through another handle");
    is_int(rec, 0, "abandoned: nothing recovered (another handle asks)");

    /* The settlement fails: the log cannot grow past its current end. */
    size = wal_size(t.dir);
    ok(size > 0, "abandoned: the log file (%" APR_OFF_T_FMT " bytes)", size);
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)(size > 0 ? size : 1);
    setrlimit(RLIMIT_FSIZE, &lim);
    srv = iss_sync_log_settle(s, id, "PUT", chg("C0:put.txt"), NULL, NULL, 0,
                              NULL, gp);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
    ok(srv != APR_SUCCESS, "abandoned: the settlement fails (%d)", srv);
    ok(strstr(pending(s), id) != NULL, "abandoned: the intent stays pending");
    ok(bounds_are(s, 0, 1), "abandoned: no entry yet");

    is_int(iss_sync_log_recover(s2, NULL, &rec, gp), APR_SUCCESS,
           "abandoned: recover, in a process that lives on");
    is_int(rec, 1, "abandoned: the failed write's intent is recovered");
    ok(bounds_are(s, 1, 1), "abandoned: entry 1 appended");
    is_int(read_log(s, 1, 1, 0, &c), APR_SUCCESS, "abandoned: read entry 1");
    ok(c.calls == 1 && !strcmp(TEXT(&c, 0), "PUT|C0:put.txt"),
       "abandoned: it names the file the failed write put in place");
    is_str(pending(s), busy, "abandoned: the write under way is still "
           "pending");
    is_int(iss_sync_log_end(s, busy, "PUT", chg("M0:busy.txt"), NULL, NULL,
                            NULL, gp),
           APR_SUCCESS, "abandoned: the other write settles");
    ok(bounds_are(s, 2, 1) && !*pending(s), "abandoned: entry 2, nothing "
       "pending");
    iss_store_close(s2);
    tmp_done(&t);
}

/* ---- intents in slots of the shared area --------------------------------- */

/* In a child: open the store at @a dir, begin @a n lazy intents (slots),
 * then die without settling them. */
static void child_lazy_and_die(const char *dir, const char *spec, int n)
{
    apr_pool_t *p;
    iss_store_t *s;
    const char *id;
    apr_uint64_t last;
    int i;

    apr_pool_create(&p, NULL);
    if (!(s = open_store(dir, p)))
        _exit(2);
    for (i = 0; i < n; i++)
        if (iss_sync_log_begin_at(s, "PUT", chg(spec), ISS_STORE_LAZY, &id,
                                  &last, p) != APR_SUCCESS
            || get_s(s, apr_pstrcat(p, "intent/", id, NULL)) != NULL)
            _exit(3);               /* not a slot */
    _exit(0);
}

/* What iss_sync_log_pending() lists, sorted. */
static const char *all_pending(iss_store_t *s)
{
    const char *ids = NULL;

    if (iss_sync_log_pending(s, &ids, gp) != APR_SUCCESS)
        return "(error)";
    return sorted_words(ids);
}

static apr_status_t lazy(iss_store_t *s, const char *spec, const char **id,
                         apr_uint64_t *last)
{
    return iss_sync_log_begin_at(s, "PUT", chg(spec), ISS_STORE_LAZY, id,
                                 last, gp);
}

static void test_slots(void)
{
    tmp_t t = { 0 };
    iss_store_t *s = fresh_store(&t, "slots"), *s2;
    const char *first = NULL, *a = NULL, *b = NULL, *big = NULL, *x;
    apr_uint64_t last = 99, seq = 0;
    apr_array_header_t *ids, *idx;
    pid_t child = 0;
    int rec = -1, cont = -1, i;
    coll_t c;

    if (!s)
        return;
    /* A new store has no hint of the log's last entry yet: the first lazy
     * begin goes through the log (and leaves the hint). */
    is_int(lazy(s, "C0:one", &first, &last), APR_SUCCESS,
           "slots: a first lazy begin");
    ok(get_s(s, apr_pstrcat(gp, "intent/", first, NULL)) != NULL,
       "slots: ... is recorded in the log (no hint yet)");
    is_int(iss_sync_log_settle(s, first, "PUT", chg("C0:one"), NULL, NULL,
                               last, &seq, gp),
           APR_SUCCESS, "slots: settle it");
    is_int((int)seq, 1, "slots: entry 1");

    /* Now lazy begins take slots: no intent record, no log/pending. */
    is_int(lazy(s, "M0:a.txt", &a, &last), APR_SUCCESS, "slots: begin A");
    is_int((int)last, 1, "slots: A's since is the last entry (1)");
    is_str(get_s(s, apr_pstrcat(gp, "intent/", a, NULL)), NULL,
           "slots: A has no intent record");
    is_str(pending(s), "", "slots: log/pending is empty");
    is_str(all_pending(s), a, "slots: iss_sync_log_pending() lists A");
    is_int(iss_sync_log_intent_pending(s, a, gp), 1,
           "slots: A is pending (iss_sync_log_intent_pending)");
    is_int(iss_sync_log_contended(s, NULL, 1, "a.txt", &cont, gp),
           APR_SUCCESS, "slots: contended, asked by no write");
    is_int(cont, 1, "slots: A's slot makes a.txt contended");
    is_int(iss_sync_log_contended(s, a, 1, "a.txt", &cont, gp), APR_SUCCESS,
           "slots: contended, asked by A itself");
    is_int(cont, 0, "slots: ... not by its own slot");
    is_int(iss_sync_log_contended(s, NULL, 1, "other.txt", &cont, gp),
           APR_SUCCESS, "slots: contended for another path");
    is_int(cont, 0, "slots: ... not contended");
    is_int(iss_sync_log_contended(s, NULL, 5, "other.txt", &cont, gp),
           APR_SUCCESS, "slots: contended with a since past the log's end");
    is_int(cont, 1, "slots: ... assumed contended (another numbering)");

    /* B writes the same path while A is under way: A's settlement must
     * not keep its digest, B's neither (A's entry comes after B's since). */
    is_int(lazy(s, "M0:a.txt", &b, &last), APR_SUCCESS, "slots: begin B");
    is_str(all_pending(s), sorted2(a, b), "slots: A and B pending");
    idx = apr_array_make(gp, 1, sizeof(iss_sync_index_t));
    {
        iss_sync_index_t *u = apr_array_push(idx);

        memset(u, 0, sizeof(*u));
        u->path = "a.txt";
        u->value = "f 1 1 1 1";
        u->digest = "digest-of-A";
        u->guarded = 1;
    }
    is_int(iss_sync_log_settle(s, a, "PUT", chg("M0:a.txt"), idx, NULL, 1,
                               &seq, gp),
           APR_SUCCESS, "slots: settle A");
    is_int((int)seq, 2, "slots: A is entry 2");
    is_str(get_s(s, "d/a.txt"), NULL,
           "slots: A's digest is not kept (B's slot names a.txt)");
    is_str(all_pending(s), b, "slots: A's slot is free, B pending");
    is_int(iss_sync_log_intent_pending(s, a, gp), 0, "slots: A is settled");
    APR_ARRAY_IDX(idx, 0, iss_sync_index_t).digest = "digest-of-B";
    is_int(iss_sync_log_settle(s, b, "PUT", chg("M0:a.txt"), idx, NULL, 1,
                               &seq, gp),
           APR_SUCCESS, "slots: settle B (since 1)");
    is_str(get_s(s, "d/a.txt"), NULL,
           "slots: B's digest is not kept either (entry 2 is A's)");
    is_str(all_pending(s), "", "slots: nothing pending");
    /* A lone write keeps its digest. */
    is_int(lazy(s, "M0:a.txt", &a, &last), APR_SUCCESS, "slots: begin C");
    is_int((int)last, 3, "slots: C's since is entry 3 (the hint followed)");
    APR_ARRAY_IDX(idx, 0, iss_sync_index_t).digest = "digest-of-C";
    is_int(iss_sync_log_settle(s, a, "PUT", chg("M0:a.txt"), idx, NULL, last,
                               &seq, gp),
           APR_SUCCESS, "slots: settle C");
    is_str(get_s(s, "d/a.txt"), "digest-of-C", "slots: C's digest is kept");

    /* An intent too large for a slot goes to the log. */
    {
        apr_array_header_t *many = apr_array_make(gp, 40,
                                                  sizeof(iss_change_t));

        for (i = 0; i < 40; i++) {
            iss_change_t *ch = apr_array_push(many);

            memset(ch, 0, sizeof(*ch));
            ch->kind = ISS_CHANGE_MODIFIED;
            ch->path = apr_psprintf(gp, "folder/with/a/long/name/file-%d.txt",
                                    i);
        }
        is_int(iss_sync_log_begin_at(s, "PUT", many, ISS_STORE_LAZY, &big,
                                     &last, gp),
               APR_SUCCESS, "slots: begin a large intent");
        ok(get_s(s, apr_pstrcat(gp, "intent/", big, NULL)) != NULL,
           "slots: ... recorded in the log");
        is_str(all_pending(s), big, "slots: ... and listed");
        is_int(iss_sync_log_settle(s, big, "PUT", NULL, NULL, NULL, last,
                                   NULL, gp),
               APR_SUCCESS, "slots: ... settled");
        is_str(all_pending(s), "", "slots: ... gone");
    }

    /* Every slot taken: the next lazy begin goes to the log. */
    ids = apr_array_make(gp, 300, sizeof(const char *));
    for (i = 0; i < 300; i++) {
        const char *id = NULL;

        if (lazy(s, apr_psprintf(gp, "C0:n%d", i), &id, &last)
            != APR_SUCCESS)
            break;
        APR_ARRAY_PUSH(ids, const char *) = id;
        if (get_s(s, apr_pstrcat(gp, "intent/", id, NULL)))
            break;
    }
    ok(i >= 200 && i < 300,
       "slots: %d lazy begins took slots, the next went to the log", i);
    for (i = 0; i < ids->nelts; i++)
        iss_sync_log_settle(s, APR_ARRAY_IDX(ids, i, const char *), "PUT",
                            NULL, NULL, NULL, last, NULL, gp);
    is_str(all_pending(s), "", "slots: all settled, every slot free");

    /* A process that dies with intents in slots: recovered into entries,
     * its members' records dropped, the slots freed. */
    put_s(s, "f/dead/x", "f 1 1 1 1");
    put_s(s, "d/dead/x", "some digest");
    {
        apr_uint64_t before = 0, first_ = 0;

        iss_sync_log_bounds(s, &before, &first_, gp);
        if (fork_and_wait_lazy(t.dir, "M0:dead/x", 2, &child)) {
            x = all_pending(s);
            ok(strlen(x) == 33, "slots: the dead child's two intents are "
               "pending (%s)", x);
            is_str(pending(s), "", "slots: ... not in log/pending");
            s2 = open_store(t.dir, gp);
            is_int(iss_sync_log_recover(s2 ? s2 : s, NULL, &rec, gp),
                   APR_SUCCESS, "slots: recover through another handle");
            is_int(rec, 2, "slots: two intents recovered");
            ok(bounds_are(s, before + 2, first_), "slots: two entries");
            is_int(read_log(s, before + 1, before + 2, 0, &c), APR_SUCCESS,
                   "slots: read them");
            ok(c.calls == 2 && !strcmp(TEXT(&c, 0), "PUT|M0:dead/x")
               && !strcmp(TEXT(&c, 1), "PUT|M0:dead/x"),
               "slots: they name the dead writes' members");
            ok(!get_s(s, "f/dead/x") && !get_s(s, "d/dead/x"),
               "slots: the members' stat and digest records dropped");
            is_str(all_pending(s), "", "slots: nothing pending");
            is_int(iss_sync_log_recover(s, NULL, &rec, gp), APR_SUCCESS,
                   "slots: recover again");
            is_int(rec, 0, "slots: nothing more");
            ok(bounds_are(s, before + 2, first_), "slots: no entry more");
            if (s2)
                iss_store_close(s2);
        }
        else {
            ok(0, "slots: a child began lazy intents and died");
        }
    }

    /* A settlement that fails in a process that lives on: the slot is
     * given up, and recovery through another handle logs it. */
    {
        struct rlimit old, lim;
        apr_off_t size = wal_size(t.dir);
        apr_uint64_t before = 0, first_ = 0;
        apr_status_t srv;
        iss_store_t *s3;

        is_int(lazy(s, "C0:failed.txt", &a, &last), APR_SUCCESS,
               "slots: begin a write whose settlement will fail");
        is_str(get_s(s, apr_pstrcat(gp, "intent/", a, NULL)), NULL,
               "slots: ... in a slot");
        iss_sync_log_bounds(s, &before, &first_, gp);
        signal(SIGXFSZ, SIG_IGN);
        getrlimit(RLIMIT_FSIZE, &old);
        lim = old;
        lim.rlim_cur = (rlim_t)(size > 0 ? size : 1);
        setrlimit(RLIMIT_FSIZE, &lim);
        srv = iss_sync_log_settle(s, a, "PUT", chg("C0:failed.txt"), NULL,
                                  NULL, last, NULL, gp);
        setrlimit(RLIMIT_FSIZE, &old);
        signal(SIGXFSZ, SIG_DFL);
        ok(srv != APR_SUCCESS, "slots: the settlement fails (%d)", srv);
        is_str(all_pending(s), a, "slots: the intent stays pending");
        s2 = open_store(t.dir, gp);
        is_int(iss_sync_log_recover(s2 ? s2 : s, NULL, &rec, gp),
               APR_SUCCESS, "slots: recover through another handle");
        is_int(rec, 1, "slots: the given-up slot is recovered, its process "
               "living on");
        is_int(read_log(s, before + 1, before + 1, 0, &c), APR_SUCCESS,
               "slots: read its entry");
        ok(c.calls == 1 && !strcmp(TEXT(&c, 0), "PUT|C0:failed.txt"),
           "slots: it names the file");
        is_str(all_pending(s), "", "slots: nothing pending");

        /* A handle closed with a write under way (its claim goes). */
        s3 = open_store(t.dir, gp);
        ok(s3 != NULL, "slots: a third handle");
        if (s3) {
            is_int(lazy(s3, "C0:closed.txt", &b, &last), APR_SUCCESS,
                   "slots: it begins a write");
            is_int(iss_sync_log_recover(s, NULL, &rec, gp), APR_SUCCESS,
                   "slots: recover while that handle is open");
            is_int(rec, 0, "slots: ... nothing (its handle holds its claim)");
            iss_store_close(s3);
            is_int(iss_sync_log_recover(s2 ? s2 : s, NULL, &rec, gp),
                   APR_SUCCESS, "slots: recover once it is closed");
            is_int(rec, 1, "slots: ... its write is logged");
            is_str(all_pending(s), "", "slots: nothing pending");
        }
        if (s2)
            iss_store_close(s2);
    }

    /* The numbering lost (log/seq gone): a begin that took its `since`
     * from the old numbering's hint keeps no digest, and the hint follows
     * the new numbering. */
    {
        apr_uint64_t l2 = 0, f2 = 0, old_since;

        is_int(iss_store_delete(s, "log/seq", 7), APR_SUCCESS,
               "slots: log/seq deleted (a lost numbering)");
        is_int(lazy(s, "M0:a.txt", &a, &last), APR_SUCCESS,
               "slots: a lazy begin after the loss");
        old_since = last;
        APR_ARRAY_IDX(idx, 0, iss_sync_index_t).digest = "digest-after-loss";
        is_int(iss_sync_log_settle(s, a, "PUT", chg("M0:a.txt"), idx, NULL,
                                   last, &seq, gp),
               APR_SUCCESS, "slots: ... settles under a new numbering");
        iss_sync_log_bounds(s, &l2, &f2, gp);
        ok(seq == l2 && l2 < old_since, "slots: the new numbering's entry "
           "(%d) is below the old since (%d)", (int)l2, (int)old_since);
        is_str(get_s(s, "d/a.txt"), NULL,
               "slots: ... so its digest is not kept");
        is_int(lazy(s, "M0:a.txt", &a, &last), APR_SUCCESS,
               "slots: the next lazy begin");
        is_int((int)last, (int)l2, "slots: ... takes the new numbering's "
               "last entry as its since");
        iss_sync_log_settle(s, a, "PUT", NULL, NULL, NULL, last, NULL, gp);

        /* Lost again, and a token request makes the new numbering: the
         * hint is forgotten, the next lazy begin goes through the log. */
        {
            const char *lid = NULL;

            is_int(iss_store_delete(s, "log/seq", 7), APR_SUCCESS,
                   "slots: log/seq deleted again");
            is_int(iss_sync_log_bounds_id(s, &l2, &f2, &lid, gp),
                   APR_SUCCESS, "slots: a token's bounds make a numbering");
            is_int(lazy(s, "M0:a.txt", &a, &last), APR_SUCCESS,
                   "slots: a lazy begin after that");
            ok(get_s(s, apr_pstrcat(gp, "intent/", a, NULL)) != NULL,
               "slots: ... went through the log (the hint was forgotten)");
            is_int((int)last, (int)l2, "slots: ... with the new last entry");
            iss_sync_log_settle(s, a, "PUT", NULL, NULL, NULL, last, NULL,
                                gp);
        }
    }
    tmp_done(&t);
}

/* ---- concurrency -------------------------------------------------------- */

#define NPROC 4
#define NPAIRS 50

static void child_writer(const char *dir, int k)
{
    apr_pool_t *p, *it;
    iss_store_t *s;
    int i;

    apr_pool_create(&p, NULL);
    apr_pool_create(&it, p);
    if (!(s = open_store(dir, p)))
        _exit(2);
    for (i = 0; i < NPAIRS; i++) {
        const char *id;
        apr_array_header_t *c;
        apr_uint64_t seq = 0;

        apr_pool_clear(it);
        c = apr_array_make(it, 1, sizeof(iss_change_t));
        APR_ARRAY_PUSH(c, iss_change_t) = (iss_change_t){
            ISS_CHANGE_MODIFIED, 0, apr_psprintf(it, "w%d/%03d", k, i) };
        if (iss_sync_log_begin(s, "PUT", c, &id, it) != APR_SUCCESS)
            _exit(3);
        if (iss_sync_log_end(s, id, "PUT", c, NULL, NULL, &seq, it)
            != APR_SUCCESS || seq == 0 || seq > NPROC * NPAIRS)
            _exit(4);
    }
    _exit(0);
}

static void test_concurrency(void)
{
    tmp_t t = { 0 };
    iss_store_t *s = fresh_store(&t, "concurrency");
    apr_proc_t procs[NPROC];
    int started = 0, good = 0, k, i;
    int seen[NPROC][NPAIRS], last_i[NPROC];
    apr_time_t t0 = apr_time_now();
    coll_t c;

    if (!s)
        return;
    for (k = 0; k < NPROC; k++) {
        apr_status_t rv = apr_proc_fork(&procs[k], gp);

        if (rv == APR_INCHILD)
            child_writer(t.dir, k);
        if (rv != APR_INPARENT)
            break;
        started++;
    }
    for (k = 0; k < started; k++) {
        apr_exit_why_e why;
        int code = -1;

        if (apr_proc_wait(&procs[k], &code, &why, APR_WAIT) == APR_CHILD_DONE
            && why == APR_PROC_EXIT && code == 0)
            good++;
        else
            diag("writer %d: why %d code %d", k, (int)why, code);
    }
    is_int(good, NPROC, "%d writers of %d begin+end pairs succeeded",
           NPROC, NPAIRS);
    diag("%d x %d begin+end in %.2f s", NPROC, NPAIRS,
         (double)(apr_time_now() - t0) / APR_USEC_PER_SEC);
    ok(bounds_are(s, NPROC * NPAIRS, 1), "exactly %d entries", NPROC * NPAIRS);
    is_str(pending(s), "", "no intent left pending");
    is_int(read_log(s, 1, NPROC * NPAIRS, 0, &c), APR_SUCCESS, "read all");
    memset(seen, 0, sizeof(seen));
    for (k = 0; k < NPROC; k++)
        last_i[k] = -1;
    {
        int order_ok = c.calls == NPROC * NPAIRS, members_ok = 1;
        int switches = 0, prev = -1;

        for (i = 0; i < c.calls; i++) {
            int kk, ii;

            if (SEQ(&c, i) != (apr_uint64_t)i + 1)
                order_ok = 0;
            if (sscanf(TEXT(&c, i), "PUT|M0:w%d/%d", &kk, &ii) != 2
                || kk < 0 || kk >= NPROC || ii < 0 || ii >= NPAIRS) {
                members_ok = 0;
                continue;
            }
            seen[kk][ii]++;
            switches += prev >= 0 && kk != prev;
            prev = kk;
            if (ii != last_i[kk] + 1)
                members_ok = 0;     /* a writer's entries in its order */
            last_i[kk] = ii;
        }
        for (k = 0; k < NPROC; k++)
            for (i = 0; i < NPAIRS; i++)
                if (seen[k][i] != 1)
                    members_ok = 0;
        diag("the log switches writer %d times (%d = no overlap)", switches,
             NPROC - 1);
        ok(order_ok, "seq 1..%d each delivered once, in order",
           NPROC * NPAIRS);
        ok(members_ok, "every write logged exactly once, in its writer's "
           "order");
    }
    tmp_done(&t);
}

/* ---- retention ---------------------------------------------------------- */

static void test_retention_parse(void)
{
    iss_sync_retention_t r;
    static const char *const bad[] = {
        "age=", "age=0", "age=0s", "age=5x", "age=d", "age=-5", "age=+5",
        "age=1.5h", "age= 5", "age=5 ", "age=99999999999999999999d",
        "age=99999999999999999999", "age=100000000000000w", "age=OFF",
        "count=", "count=0", "count=-1", "count=+1", "count=abc",
        "count=5k", "count=99999999999999999999", "foo=1", "age", "count",
        "", "Age=5", "age:5", " age=5"
    };
    apr_size_t i;
    int all = 1;

    memset(&r, 0, sizeof(r));
    r.max_count = 77;
    ok(!iss_sync_retention_parse(&r, "age=30d", gp)
       && r.max_age == apr_time_from_sec(30 * 86400) && r.max_count == 77,
       "age=30d (count untouched)");
    ok(!iss_sync_retention_parse(&r, "age=12h", gp)
       && r.max_age == apr_time_from_sec(12 * 3600), "age=12h");
    ok(!iss_sync_retention_parse(&r, "age=90", gp)
       && r.max_age == apr_time_from_sec(90), "age=90 (seconds)");
    ok(!iss_sync_retention_parse(&r, "age=45s", gp)
       && r.max_age == apr_time_from_sec(45), "age=45s");
    ok(!iss_sync_retention_parse(&r, "age=5m", gp)
       && r.max_age == apr_time_from_sec(300), "age=5m");
    ok(!iss_sync_retention_parse(&r, "age=2w", gp)
       && r.max_age == apr_time_from_sec(14 * 86400), "age=2w");
    ok(!iss_sync_retention_parse(&r, "count=10", gp) && r.max_count == 10
       && r.max_age == apr_time_from_sec(14 * 86400),
       "count=10 (age untouched)");
    ok(!iss_sync_retention_parse(&r, "age=off", gp) && r.max_age == 0
       && r.max_count == 10, "age=off");
    ok(!iss_sync_retention_parse(&r, "count=off", gp) && r.max_count == 0,
       "count=off");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *err = iss_sync_retention_parse(&r, bad[i], gp);

        if (!err || !*err) {
            diag("'%s' accepted", bad[i]);
            all = 0;
        }
    }
    ok(all, "bad retention words give an error message");
}

static void test_retention(void)
{
    tmp_t ta = { 0 }, tb = { 0 }, tc = { 0 };
    iss_store_t *a, *b, *s;
    iss_sync_retention_t count5 = { 0, 5 }, age1 = { apr_time_from_sec(1), 0 };
    iss_sync_retention_t none = { 0, 0 };
    apr_uint64_t removed = 99, i;
    coll_t c;
    int all;

    /* by count */
    if (!(s = fresh_store(&tc, "count")))
        return;
    ok(append_n(s, 12, 1, &count5), "12 appends with count=5");
    ok(bounds_are(s, 12, 8), "count=5 after 12: first 8, last 12");
    all = 1;
    for (i = 1; i < 8; i++)
        all &= read_log(s, i, i, 0, &c) == APR_NOTFOUND
               && get_s(s, ekey(i)) == NULL;
    ok(all, "entries 1..7 are gone (read: APR_NOTFOUND, no log/e/ key)");
    is_int(read_log(s, 8, 12, 0, &c), APR_SUCCESS, "entries 8..12 readable");
    ok(c.calls == 5 && SEQ(&c, 0) == 8 && !strcmp(TEXT(&c, 4), "PUT|C0:n11"),
       "entries 8..12 intact");
    is_int(read_log(s, 7, 12, 0, &c), APR_NOTFOUND,
           "a range that starts in the compacted part: APR_NOTFOUND");
    tmp_done(&tc);

    /* at most 64 per append */
    if (!(s = fresh_store(&tc, "count, bounded")))
        return;
    ok(append_n(s, 70, 1, NULL), "70 appends without retention");
    ok(bounds_are(s, 70, 1), "all 70 kept");
    ok(append_n(s, 1, 71, &count5), "one append with count=5");
    ok(bounds_are(s, 71, 65), "it compacted 64, not 66");
    ok(append_n(s, 1, 72, &count5), "another append with count=5");
    ok(bounds_are(s, 72, 68), "the next one compacts the rest");
    is_int(iss_sync_log_compact(s, &count5, 0, &removed, gp), APR_SUCCESS,
           "compact with nothing to do");
    is_int(removed, 0, "removed 0");
    tmp_done(&tc);

    /* compact by count, with max_remove */
    if (!(s = fresh_store(&tc, "compact")))
        return;
    ok(append_n(s, 10, 1, NULL), "10 appends");
    is_int(iss_sync_log_compact(s, &none, 0, &removed, gp), APR_SUCCESS,
           "compact without limits");
    ok(removed == 0 && bounds_are(s, 10, 1), "removes nothing");
    is_int(iss_sync_log_compact(s, &(iss_sync_retention_t){ 0, 3 }, 4,
                                &removed, gp),
           APR_SUCCESS, "compact count=3, max_remove 4");
    ok(removed == 4 && bounds_are(s, 10, 5), "removed 4: first 5");
    is_int(iss_sync_log_compact(s, &(iss_sync_retention_t){ 0, 3 }, 0,
                                &removed, gp),
           APR_SUCCESS, "compact count=3, no max");
    ok(removed == 3 && bounds_are(s, 10, 8), "removed 3: first 8");
    is_int(iss_sync_log_compact(s, &(iss_sync_retention_t){ 0, 3 }, 0, NULL,
                                gp),
           APR_SUCCESS, "compact with removed NULL");
    tmp_done(&tc);

    /* by age: two stores share one sleep */
    a = fresh_store(&ta, "age");
    b = fresh_store(&tb, "age compact");
    if (!a || !b) {
        tmp_done(&ta);
        tmp_done(&tb);
        return;
    }
    ok(append_n(a, 3, 1, &age1), "3 appends with age=1s");
    ok(append_n(b, 5, 1, NULL), "5 appends without retention");
    /* An entry has one record: its time is in its head, and log/first
     * keeps a bound of the oldest entry's (here, entry 1's own), so
     * compaction by age reads no entry while that bound is young. */
    ok(!get_s(a, "log/t/0000000000000001") && !get_s(a, "log/t/"
       "0000000000000003"), "no log/t record beside an entry");
    {
        const char *f = get_s(a, "log/first");
        const char *t1 = entry_time_s(a, 1);
        const char *want = apr_psprintf(gp, "1 %s 1", t1 ? t1 : "?");

        ok(t1 && strlen(t1) < 35, "entry 1 starts with its time");
        ok(f && !strcmp(f, want), "log/first names entry 1 with its time "
           "and 1 as the first entry without log/t: %s (want %s)",
           f ? f : "(none)", want);
    }
    /* A log an older version wrote: a log/t record beside each entry,
     * log/first the number alone; compaction removes both records of an
     * entry, and log/t only where an older version wrote it. */
    ok(put_s(b, "log/t/0000000000000001", "1") == APR_SUCCESS
       && put_s(b, "log/t/0000000000000002", "2") == APR_SUCCESS
       && put_s(b, "log/first", "1") == APR_SUCCESS,
       "log/t records and the old log/first put for the older version's "
       "log");
    ok(bounds_are(a, 3, 1), "young entries are kept");
    apr_sleep(apr_time_from_msec(1200));
    ok(append_n(a, 1, 4, &age1), "an append 1.2 s later");
    ok(bounds_are(a, 4, 4), "the 3 old entries are compacted");
    ok(read_log(a, 3, 3, 0, &c) == APR_NOTFOUND
       && read_log(a, 1, 1, 0, &c) == APR_NOTFOUND,
       "old entries: APR_NOTFOUND");
    ok(read_log(a, 4, 4, 0, &c) == APR_SUCCESS && c.calls == 1,
       "the new entry is readable");

    is_int(iss_sync_log_compact(b, &(iss_sync_retention_t){
                                    apr_time_from_sec(3600), 0 }, 0,
                                &removed, gp),
           APR_SUCCESS, "compact age=1h");
    ok(removed == 0 && bounds_are(b, 5, 1), "age=1h removes nothing");
    is_int(iss_sync_log_compact(b, &age1, 2, &removed, gp), APR_SUCCESS,
           "compact age=1s, max_remove 2");
    ok(removed == 2 && bounds_are(b, 5, 3), "removed 2: first 3");
    ok(!get_s(b, "log/t/0000000000000001") && !get_s(b, "log/t/"
       "0000000000000002"), "their log/t records removed with them");
    {
        const char *f = get_s(b, "log/first");

        ok(f && !strncmp(f, "3 ", 2) && strlen(f) > 4
           && !strcmp(f + strlen(f) - 2, " 6"),
           "log/first: 3, entry 3's time, 6 (older entries may have a "
           "log/t): %s", f ? f : "(none)");
    }
    ok(put_s(b, "log/first", "3 1 x") == APR_SUCCESS
       && iss_sync_log_compact(b, &age1, 0, &removed, gp)
          == ISS_STORE_EDAMAGED && get_s(b, "log/first")
       && !strcmp(get_s(b, "log/first"), "3 1 x")
       && read_log(b, 3, 5, 0, &c) == APR_SUCCESS && c.calls == 3,
       "a damaged log/first: ISS_STORE_EDAMAGED, nothing removed");
    ok(put_s(b, "log/first", "3 0 6") == APR_SUCCESS,
       "log/first back, entry 3's time not known");
    ok(put_s(b, "log/e/0000000000000003", "garbage") == APR_SUCCESS
       && iss_sync_log_compact(b, &(iss_sync_retention_t){
                                   apr_time_from_sec(3600), 0 }, 0,
                               &removed, gp) == APR_SUCCESS
       && removed == 1 && bounds_are(b, 5, 4),
       "a damaged oldest entry is dropped by compaction by age (a token "
       "before it expires), not an error for every write");
    is_int(iss_sync_log_compact(b, &age1, 0, &removed, gp), APR_SUCCESS,
           "compact age=1s, no max");
    ok(removed == 2 && bounds_are(b, 5, 6),
       "removed the other 2: empty log, first == last + 1");
    is_int(read_log(b, 5, 5, 0, &c), APR_NOTFOUND,
           "the last entry is gone too");
    ok(append_n(b, 1, 6, &age1) && bounds_are(b, 6, 6),
       "numbering goes on after the log emptied");
    tmp_done(&ta);
    tmp_done(&tb);

    /* At the count limit each append removes the oldest entry by count.
     * log/first keeps the removed entries' time as a bound for the next
     * one (entries come in time order) instead of reading it: entry 1's
     * time while entries 3 to 5 are kept.  Once the bound is older than
     * the age, the entries themselves are read, and dropped by age. */
    a = fresh_store(&ta, "bound");
    if (!a) {
        tmp_done(&ta);
        return;
    }
    {
        iss_sync_retention_t both = { apr_time_from_sec(1), 3 };
        char *t1 = NULL, *t3 = NULL, *t6 = NULL, *want;

        ok(append_n(a, 1, 1, &both) && (t1 = entry_time_s(a, 1)) != NULL,
           "1 append with age=1s count=3");
        apr_sleep(apr_time_from_msec(5));
        ok(append_n(a, 4, 2, &both) && bounds_are(a, 5, 3),
           "4 more: entries 3 to 5 kept");
        t3 = entry_time_s(a, 3);
        ok(!entry_time_s(a, 1) && t3, "entry 1 gone, entry 3 there");
        want = apr_psprintf(gp, "3 %s 1", t1 ? t1 : "?");
        ok(t1 && t3 && get_s(a, "log/first")
           && !strcmp(get_s(a, "log/first"), want) && strcmp(t1, t3) != 0,
           "log/first: 3, entry 1's time as the bound (not entry 3's, "
           "which no write read), 1: %s (want %s)",
           get_s(a, "log/first") ? get_s(a, "log/first") : "(none)", want);
        apr_sleep(apr_time_from_msec(1200));
        ok(append_n(a, 1, 6, &both) && bounds_are(a, 6, 6),
           "an append 1.2 s later: the bound is too old, entries 4 and 5 "
           "are read and dropped by age (3 by count)");
        t6 = entry_time_s(a, 6);
        ok(t6 && get_s(a, "log/first")
           && !strcmp(get_s(a, "log/first"),
                      apr_psprintf(gp, "6 %s 1", t6)),
           "log/first: 6 with entry 6's own time: %s",
           get_s(a, "log/first") ? get_s(a, "log/first") : "(none)");
    }
    tmp_done(&ta);
}

/* ---- robustness --------------------------------------------------------- */

static void test_damage(void)
{
    tmp_t t = { 0 };
    iss_store_t *s = fresh_store(&t, "damage");
    static const char *const bad[] = {
        "garbage", "", "ISL1 ", "ISL1 123", "ISL1 12x\n", "ISL2 123\n",
        "ISL1 -5\n", "ISL1 123\n\x01\x02\x03 not an encoding"
    };
    apr_size_t i;
    apr_uint64_t last, first, seq;
    coll_t c;
    int all = 1;

    if (!s)
        return;
    ok(append_n(s, 2, 1, NULL), "two entries");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        apr_status_t rv;

        put_s(s, ekey(1), bad[i]);
        rv = read_log(s, 1, 2, 0, &c);
        if (rv != ISS_STORE_EDAMAGED) {
            diag("entry value '%s': read gives %d", bad[i], rv);
            all = 0;
        }
    }
    ok(all, "a damaged entry value: read returns ISS_STORE_EDAMAGED");
    is_int(read_log(s, 2, 2, 0, &c), APR_SUCCESS,
           "the intact entry after it is still readable");

    put_s(s, "log/seq", "x12");
    is_int(iss_sync_log_bounds(s, &last, &first, gp), ISS_STORE_EDAMAGED,
           "garbage under log/seq: bounds EDAMAGED");
    is_int(iss_sync_log_append(s, "PUT", chg("C0:z"), NULL, NULL, NULL, NULL,
                               &seq, gp),
           ISS_STORE_EDAMAGED, "garbage under log/seq: append EDAMAGED");
    is_int(seq, 0, "failed append: seq 0");
    all = 1;
    put_s(s, "log/seq", "-1");
    all &= iss_sync_log_bounds(s, &last, &first, gp) == ISS_STORE_EDAMAGED;
    put_s(s, "log/seq", "18446744073709551616");
    all &= iss_sync_log_bounds(s, &last, &first, gp) == ISS_STORE_EDAMAGED;
    put_s(s, "log/seq", "");
    all &= iss_sync_log_bounds(s, &last, &first, gp) == ISS_STORE_EDAMAGED;
    put_s(s, "log/seq", "2 ");
    all &= iss_sync_log_bounds(s, &last, &first, gp) == ISS_STORE_EDAMAGED;
    ok(all, "other bad log/seq values: EDAMAGED");
    put_s(s, "log/seq", "2");
    put_s(s, "log/first", "one");
    is_int(iss_sync_log_bounds(s, &last, &first, gp), ISS_STORE_EDAMAGED,
           "garbage under log/first: bounds EDAMAGED");
    tmp_done(&t);
}

/* ---- the log's identity: a lost position never comes back ---------------- */

static int uuid_like(const char *id)
{
    int i;

    if (!id || strlen(id) != 36)
        return 0;
    for (i = 0; i < 36; i++) {
        if ((i == 8 || i == 13 || i == 18 || i == 23) ? id[i] != '-'
                                                       : !apr_isxdigit(id[i]))
            return 0;
    }
    return 1;
}

static void test_log_id(void)
{
    tmp_t t = { 0 };
    iss_store_t *s = fresh_store(&t, "log id");
    apr_uint64_t last = 99, first = 99, seq = 0;
    const char *id = NULL, *id2 = NULL, *id3 = NULL, *v;
    int i;

    if (!s)
        return;
    is_int(iss_sync_log_bounds_id(s, &last, &first, &id, gp), APR_SUCCESS,
           "log id: bounds of a new log");
    ok(last == 0 && first == 1, "log id: empty (0, 1)");
    ok(uuid_like(id) && strcmp(id, iss_store_id(s)) != 0,
       "log id: a new log gets an id of its own: %s", id ? id : "(null)");
    v = get_s(s, "log/seq");
    is_str(v, apr_pstrcat(gp, "0 ", id, NULL), "log id: durable in log/seq "
           "before a token names it");
    iss_sync_log_bounds_id(s, &last, &first, &id2, gp);
    is_str(id2, id, "log id: stable");
    for (i = 0; i < 3; i++)
        iss_sync_log_append(s, "PUT", chg("C0:a"), NULL, NULL, NULL, NULL,
                            &seq, gp);
    is_int(seq, 3, "log id: entries 1..3");
    is_str(get_s(s, "log/seq"), apr_pstrcat(gp, "3 ", id, NULL),
           "log id: log/seq keeps it with the position");

    /* The record is lost (a damaged DBM record dropped by recovery, a
     * truncated DBM file): a new numbering with a new id. */
    iss_store_delete(s, "log/seq", 7);
    is_int(iss_sync_log_bounds_id(s, &last, &first, &id3, gp), APR_SUCCESS,
           "log id: bounds after log/seq was lost");
    ok(uuid_like(id3) && strcmp(id3, id) != 0,
       "log id: the lost numbering's id is never used again");
    ok(last == 0 && first == 1, "log id: the new numbering starts after "
       "log/first");
    for (i = 0; i < 5; i++)
        iss_sync_log_append(s, "PUT", chg("C0:b"), NULL, NULL, NULL, NULL,
                            &seq, gp);
    iss_sync_log_bounds_id(s, &last, &first, &id2, gp);
    ok(seq == 5 && last == 5 && !strcmp(id2, id3),
       "log id: past the old position (5 > 3) under the new id only");

    /* Lost by an append (a write comes first). */
    put_s(s, "log/first", "4");
    iss_store_delete(s, "log/seq", 7);
    is_int(iss_sync_log_append(s, "PUT", chg("C0:c"), NULL, NULL, NULL, NULL,
                               &seq, gp),
           APR_SUCCESS, "log id: append after log/seq was lost");
    iss_sync_log_bounds_id(s, &last, &first, &id2, gp);
    ok(seq == 4 && last == 4 && first == 4 && uuid_like(id2)
       && strcmp(id2, id3) != 0 && strcmp(id2, id) != 0,
       "log id: entry 4 after log/first 4, under a third id");

    /* An intent listed in log/pending whose record was lost to damage:
     * what it changed is unknown, so the log takes a new id. */
    {
        const char *before = NULL, *after = NULL;
        apr_uint64_t l1 = 0, l2 = 0;
        int rec = -1;

        iss_sync_log_bounds_id(s, &l1, &first, &before, gp);
        put_s(s, "log/pending", "00000000deadbeef");
        is_int(iss_sync_log_recover(s, NULL, &rec, gp), APR_SUCCESS,
               "log id: recover with a pending intent whose record is lost");
        iss_sync_log_bounds_id(s, &l2, &first, &after, gp);
        ok(uuid_like(after) && strcmp(after, before) != 0 && l2 == l1,
           "log id: a new id, the position goes on (%" APR_UINT64_T_FMT
           ")", l2);
        is_str(pending(s), "", "log id: the lost intent left log/pending");
        iss_sync_log_bounds_id(s, &l1, &first, &before, gp);
        is_int(iss_sync_log_recover(s, NULL, &rec, gp), APR_SUCCESS,
               "log id: recover again");
        iss_sync_log_bounds_id(s, &l2, &first, &after, gp);
        is_str(after, before, "log id: nothing lost, the id stays");
    }

    /* A log made before log ids: the store's id, tokens stay valid. */
    put_s(s, "log/seq", "4");
    iss_sync_log_bounds_id(s, &last, &first, &id2, gp);
    is_str(id2, iss_store_id(s), "log id: a log without one goes by the "
           "store's id");
    iss_sync_log_append(s, "PUT", chg("C0:d"), NULL, NULL, NULL, NULL, &seq,
                        gp);
    is_str(get_s(s, "log/seq"), "5", "log id: and keeps its format");

    /* Bad ids are damage. */
    put_s(s, "log/seq", "4 not/an id");
    is_int(iss_sync_log_bounds_id(s, &last, &first, &id2, gp),
           ISS_STORE_EDAMAGED, "log id: a bad id is damage");
    tmp_done(&t);
}

/* The store's own recovery drops a damaged log/seq record (a dead
 * checkpointer's journal is unusable, so the DBM is rebuilt from the
 * mirror, whose log/seq record is damaged): the store is consistent
 * again (verify ok), and the log takes a new id instead of restarting
 * its numbering under the old one. */
static int flip_in_file(const char *path, const char *marker)
{
    apr_file_t *f;
    apr_finfo_t fi;
    apr_size_t n, m = strlen(marker), i;
    char *buf;
    int done = 0;

    if (apr_file_open(&f, path, APR_FOPEN_READ | APR_FOPEN_WRITE,
                      APR_OS_DEFAULT, gp) != APR_SUCCESS)
        return 0;
    if (apr_file_info_get(&fi, APR_FINFO_SIZE, f) == APR_SUCCESS
        && fi.size > 0) {
        n = (apr_size_t)fi.size;
        buf = apr_palloc(gp, n);
        if (apr_file_read_full(f, buf, n, NULL) == APR_SUCCESS) {
            for (i = 0; i + m <= n && !done; i++) {
                if (memcmp(buf + i, marker, m) == 0) {
                    apr_off_t off = (apr_off_t)(i + m / 2);
                    char c = (char)(buf[i + m / 2] ^ 0x01);

                    done = apr_file_seek(f, APR_SET, &off) == APR_SUCCESS
                           && apr_file_write_full(f, &c, 1, NULL)
                              == APR_SUCCESS;
                }
            }
        }
    }
    apr_file_close(f);
    return done;
}

static void test_recovery_drops_seq(void)
{
    tmp_t t = { 0 };
    iss_store_t *s;
    apr_uint64_t last, first, seq = 0;
    const char *id = NULL, *id2 = NULL;
    apr_pool_t *p;
    int i;

    /* All in the DBM, in both copies: a checkpoint per commit, each
     * followed by a copy of the primary to the mirror. */
    setenv("ISS_STORE_CHECKPOINT_BYTES", "0", 1);
    setenv("ISS_STORE_MIRROR_LAG_BYTES", "1", 1);
    apr_pool_create(&p, gp);
    s = fresh_store(&t, "recovery drops log/seq");
    if (!s) {
        unsetenv("ISS_STORE_CHECKPOINT_BYTES");
        unsetenv("ISS_STORE_MIRROR_LAG_BYTES");
        return;
    }
    iss_sync_log_bounds_id(s, &last, &first, &id, gp);
    for (i = 0; i < 21; i++)
        iss_sync_log_append(s, "PUT", chg("C0:f"), NULL, NULL, NULL, NULL,
                            &seq, gp);
    is_int(seq, 21, "recovery: entries 1..21 (a client holds token 21)");
    iss_store_close(s);
    unsetenv("ISS_STORE_CHECKPOINT_BYTES");
    unsetenv("ISS_STORE_MIRROR_LAG_BYTES");
    ok(flip_in_file(apr_pstrcat(gp, t.dir, "/iss-store.g1.mirror.pag", NULL),
                    apr_pstrcat(gp, "21 ", id, NULL)),
       "recovery: damage log/seq in the mirror");
    ok(testfs_put(apr_pstrcat(gp, t.dir, "/iss-store.journal", NULL),
                  "not a journal", gp),
       "recovery: a dead checkpointer's unusable journal");
    s = open_store(t.dir, p);
    ok(s != NULL, "recovery: the store opens (rebuilt from the mirror, the "
       "damaged record dropped)");
    if (!s) {
        tmp_done(&t);
        return;
    }
    is_str(get_s(s, "log/seq"), NULL, "recovery: log/seq was dropped");
    is_int(iss_store_verify(s, gp), APR_SUCCESS, "recovery: verify says ok");
    is_int(iss_sync_log_bounds_id(s, &last, &first, &id2, gp), APR_SUCCESS,
           "recovery: bounds");
    ok(id2 && strcmp(id2, id) != 0, "recovery: the log has a new id, so "
       "token 21 of the old one is refused");
    for (i = 0; i < 25; i++)
        iss_sync_log_append(s, "PUT", chg("C0:g"), NULL, NULL, NULL, NULL,
                            &seq, gp);
    iss_sync_log_bounds_id(s, &last, &first, &id2, gp);
    ok(last == 25 && strcmp(id2, id) != 0, "recovery: past 21 (%"
       APR_UINT64_T_FMT "), still never under the old id", last);
    iss_store_close(s);
    apr_pool_destroy(p);
    tmp_done(&t);
}

/* ---- digests with entries, and contention ------------------------------ */

static void test_digest_index(void)
{
    tmp_t t = { 0 };
    iss_store_t *s = fresh_store(&t, "digest index");
    const iss_sync_retention_t ret = { 0, 0 };
    apr_array_header_t *ix;
    iss_sync_index_t *x;
    const char *id = NULL, *id2 = NULL;
    apr_uint64_t seq = 0, since;
    int busy = -1;

    if (!s)
        return;
    /* An entry writes the digest record given with the index... */
    ix = idx_make();
    x = apr_array_push(ix);
    x->path = "a.bin";
    x->value = NULL;
    x->digest = "IFD1 1 2 3 DIGEST";
    iss_sync_log_begin(s, "PATCH", chg("M0:a.bin"), &id, gp);
    is_int(iss_sync_log_end(s, id, "PATCH", chg("M0:a.bin"), ix, &ret, &seq,
                            gp), APR_SUCCESS, "end with a digest record");
    is_str(get_s(s, "d/a.bin"), "IFD1 1 2 3 DIGEST",
           "the entry wrote d/<path>");
    /* ... and one without a digest removes the old record. */
    x->digest = NULL;
    x->manifest = NULL;
    iss_sync_log_begin(s, "PUT", chg("M0:a.bin"), &id, gp);
    iss_sync_log_end(s, id, "PUT", chg("M0:a.bin"), ix, &ret, &seq, gp);
    ok(get_s(s, "d/a.bin") == NULL, "an entry without a digest removes it");
    /* And a later entry with one writes it again. */
    x->digest = "IFD1 1 2 3 AGAIN";
    iss_sync_log_begin(s, "PUT", chg("M0:a.bin"), &id, gp);
    iss_sync_log_end(s, id, "PUT", chg("M0:a.bin"), ix, &ret, &seq, gp);
    is_str(get_s(s, "d/a.bin"), "IFD1 1 2 3 AGAIN", "written again");

    /* Contention: nothing else since -> not contended. */
    iss_sync_log_bounds(s, &since, &seq, gp);
    iss_sync_log_begin(s, "PUT", chg("M0:dir/f"), &id, gp);
    is_int(iss_sync_log_contended(s, id, since, "dir/f", &busy, gp),
           APR_SUCCESS, "contended: reads");
    is_int(busy, 0, "alone: not contended");
    /* Another pending intent on the same path. */
    iss_sync_log_begin(s, "PUT", chg("M0:dir/f"), &id2, gp);
    iss_sync_log_contended(s, id, since, "dir/f", &busy, gp);
    is_int(busy, 1, "another pending write of the path: contended");
    iss_sync_log_contended(s, id, since, "dir/g", &busy, gp);
    is_int(busy, 0, "... but not for another path");
    iss_sync_log_contended(s, id, since, "dir/ff", &busy, gp);
    is_int(busy, 0, "... nor for a path that only starts the same");
    /* It settles: now an entry since names the path. */
    iss_sync_log_end(s, id2, "PUT", chg("M0:dir/f"), NULL, &ret, &seq, gp);
    iss_sync_log_contended(s, id, since, "dir/f", &busy, gp);
    is_int(busy, 1, "an entry since the begin names the path: contended");
    iss_sync_log_contended(s, id, seq, "dir/f", &busy, gp);
    is_int(busy, 0, "entries before 'since' do not count");
    /* A pending write of a folder above. */
    iss_sync_log_begin(s, "DELETE", chg("R1:dir"), &id2, gp);
    iss_sync_log_contended(s, id, seq, "dir/f", &busy, gp);
    is_int(busy, 1, "a pending write of the folder above: contended");
    iss_sync_log_contended(s, id, seq, "other", &busy, gp);
    is_int(busy, 0, "... not for a path elsewhere");
    iss_sync_log_end(s, id2, "DELETE", chg("R1:dir"), NULL, &ret, &seq, gp);
    iss_sync_log_end(s, id, "PUT", chg("M0:dir/f"), NULL, &ret, &seq, gp);
    tmp_done(&t);
}

int main(void)
{
    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&gp, NULL);

    test_tokens();
    test_token_key();
    test_begin_end();
    test_owner();
    test_recover();
    test_abandoned();
    test_slots();
    test_concurrency();
    test_retention_parse();
    test_retention();
    test_damage();
    test_log_id();
    test_recovery_drops_seq();
    test_digest_index();
    return done_testing();
}
