/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* iss_ifhdr: our sync tokens in an If header become constant DAV:no-lock
 * conditions with the same truth value, everything else survives byte
 * for byte; every malformed header is refused before anything is
 * evaluated; random and mutated headers never crash it. */

#include "iss_ifhdr.h"
#include "tap.h"

#include <apr_general.h>
#include <apr_strings.h>
#include <stdint.h>
#include <stdlib.h>

#define SYNC "https://mod-iss.org/ns/sync/"
#define T_TRUE "Not <DAV:no-lock>"
#define T_FALSE "<DAV:no-lock>"

typedef struct ev_t {
    apr_pool_t *pool;
    int keep_log;               /* append "tag|token;" to log */
    char *log;
    int calls;
    int check_tags;             /* fuzz: token ".../T<k>-..." needs tag "/t<k>" */
    int tag_errors;
} ev_t;

/* Ours: tokens starting with SYNC; they match if they end in "match". */
static int eval(void *baton, const char *tag, const char *token)
{
    ev_t *ev = baton;
    apr_size_t len = strlen(token);

    ev->calls++;
    if (ev->keep_log)
        ev->log = apr_pstrcat(ev->pool, ev->log, tag ? tag : "-", "|", token,
                              ";", NULL);
    if (ev->check_tags && strncmp(token, SYNC "T", sizeof(SYNC)) == 0) {
        const char *k = token + sizeof(SYNC), *dash = strchr(k, '-');
        const char *slash = tag ? strrchr(tag, '/') : NULL;

        if (dash == NULL)
            ev->tag_errors++;
        else if (*k == 'u' ? tag != NULL
                 : (slash == NULL || slash[1] != 't'
                    || strncmp(slash + 2, k, dash - k) != 0
                    || slash[2 + (dash - k)] != '\0'))
            ev->tag_errors++;
    }
    if (strncmp(token, SYNC, sizeof(SYNC) - 1) != 0)
        return -1;
    return len >= 5 && strcmp(token + len - 5, "match") == 0;
}

static void ev_reset(ev_t *ev, apr_pool_t *p)
{
    memset(ev, 0, sizeof(*ev));
    ev->pool = p;
    ev->keep_log = 1;
    ev->log = "";
}

/* Entity tags: "\"ours\"" matches, "\"other\"" does not, the rest
 * (W/ included) is left alone; logs "E:tag|etag;". */
static int eval_etag(void *baton, const char *tag, const char *etag)
{
    ev_t *ev = baton;

    ev->calls++;
    ev->log = apr_pstrcat(ev->pool, ev->log, "E:", tag ? tag : "-", "|",
                          etag, ";", NULL);
    if (strcmp(etag, "\"ours\"") == 0)
        return 1;
    if (strcmp(etag, "\"other\"") == 0)
        return 0;
    return -1;
}

static void good_ex(const char *in, const char *want, int want_n,
                    const char *want_log, const char *name, apr_pool_t *p)
{
    ev_t ev;
    const char *out = NULL;
    int n = -1;

    ev_reset(&ev, p);
    is_int(iss_ifhdr_rewrite(in, eval, eval_etag, &ev, &out, &n, p),
           APR_SUCCESS, "%s: parses", name);
    is_str(out, want, "%s: output", name);
    is_int(n, want_n, "%s: conditions replaced", name);
    is_str(ev.log, want_log, "%s: evaluated", name);
}

static void test_etags(apr_pool_t *p)
{
    ev_t ev;
    const char *out = NULL;
    int n = -1;

    good_ex("([\"ours\"])", "(" T_TRUE ")", 1, "E:-|\"ours\";",
            "etag, matches", p);
    good_ex("([ \"other\" ])", "(" T_FALSE ")", 1, "E:-|\"other\";",
            "etag with white space, does not match", p);
    good_ex("(Not [\"ours\"])", "(" T_FALSE ")", 1, "E:-|\"ours\";",
            "Not etag", p);
    good_ex("([W/\"ours\"])", "([W/\"ours\"])", 0, "E:-|W/\"ours\";",
            "a weak etag is passed as written (and left alone here)", p);
    good_ex("</a/b> (<opaquelocktoken:x> [\"ours\"]) (<" SYNC "2>)",
            "</a/b> (<opaquelocktoken:x> " T_TRUE ") (" T_FALSE ")", 2,
            "/a/b|opaquelocktoken:x;E:/a/b|\"ours\";/a/b|" SYNC "2;",
            "tagged: lock token kept, etag and sync token decided", p);
    good_ex("([\"a\\\"b\"])", "([\"a\\\"b\"])", 0,
            "E:-|\"a\\\"b\";", "escaped quote inside", p);
    /* Without etag_fn, entity tags stay. */
    ev_reset(&ev, p);
    is_int(iss_ifhdr_rewrite("([\"ours\"])", eval, NULL, &ev, &out, &n, p),
           APR_SUCCESS, "rewrite: parses");
    is_str(out, "([\"ours\"])", "without etag_fn, entity tags stay");
    is_int(ev.calls, 0, "... and asks nothing");
    /* Only etag_fn: state tokens stay. */
    ev_reset(&ev, p);
    iss_ifhdr_rewrite("(<" SYNC "1-match> [\"other\"])", NULL, eval_etag,
                         &ev, &out, &n, p);
    is_str(out, "(<" SYNC "1-match> " T_FALSE ")",
           "etag_fn alone: state tokens stay");
}

/* 4 tests: status, output, count, what was evaluated. */
static void good(const char *in, const char *want, int want_n,
                 const char *want_log, const char *name, apr_pool_t *p)
{
    ev_t ev;
    const char *out = NULL;
    int n = -1;

    ev_reset(&ev, p);
    is_int(iss_ifhdr_rewrite(in, eval, NULL, &ev, &out, &n, p), APR_SUCCESS,
           "%s: accepted", name);
    is_str(out, want, "%s: rewritten", name);
    is_int(n, want_n, "%s: %d replaced", name, want_n);
    if (want_log)
        is_str(ev.log, want_log, "%s: tokens and tags evaluated", name);
}

/* 1 test: refused, untouched, nothing evaluated. */
static void bad(const char *in, const char *name, apr_pool_t *p)
{
    ev_t ev;
    const char *out = "unset";
    int n = -1;
    apr_status_t rv;

    ev_reset(&ev, p);
    rv = iss_ifhdr_rewrite(in, eval, NULL, &ev, &out, &n, p);
    if (!ok(rv == APR_EINVAL && out == in && n == 0 && ev.calls == 0,
            "refused: %s", name))
        diag("rv %d, out %s, n %d, calls %d", rv,
             out == in ? "== in" : out ? out : "NULL", n, ev.calls);
}

/* ---- random headers ------------------------------------------------ */

typedef struct rng_t { uint64_t s; } rng_t;

static uint32_t rnd(rng_t *r, uint32_t n)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 32) % n;
}

typedef struct sbuf_t { char b[16384]; apr_size_t n; } sbuf_t;

static void put(sbuf_t *s, const char *str)
{
    apr_size_t l = strlen(str);

    if (s->n + l >= sizeof(s->b)) {
        fprintf(stderr, "test buffer overflow\n");
        abort();
    }
    memcpy(s->b + s->n, str, l + 1);
    s->n += l;
}

static const char *lws(rng_t *r, int required)
{
    static const char *const w[] = { " ", "  ", "\t", "\r\n ", " \t" };

    if (!required && rnd(r, 2))
        return "";
    return w[rnd(r, 5)];
}

/* A valid header into @a in, its expected rewrite into @a exp; returns
 * the number of our conditions. */
static int gen_valid(rng_t *r, sbuf_t *in, sbuf_t *exp)
{
    static const char *const foreign[] = {
        "<opaquelocktoken:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>",
        "<urn:uuid:181d4fae-7dec-11d0-a765-00a0c91e6bf2>",
        "<DAV:no-lock>", "<https://mod-iss.org/ns/other/1>",
        "[\"etag\"]", "[W/\"weak\"]", "[ \"a)b>c]d\\\"e<(\" ]",
        "[w/\"\"]", "[\"\\\\\"]",
    };
    static const char *const nots[] = { "Not", "not", "NOT", "nOt" };
    int tagged = rnd(r, 2), groups = tagged ? 1 + rnd(r, 3) : 1, g, nours = 0;

    in->n = exp->n = 0;
    in->b[0] = exp->b[0] = '\0';
    for (g = 0; g < groups; g++) {
        int lists = 1 + rnd(r, 3), l;
        char k[16];

        snprintf(k, sizeof(k), "%d", g);
        if (tagged) {
            const char *t = rnd(r, 2) ? "http://h.example/a%20b/t" : "/p/t";
            const char *ws = lws(r, 0);

            put(in, ws); put(exp, ws);
            put(in, "<"); put(in, t); put(in, k); put(in, ">");
            put(exp, "<"); put(exp, t); put(exp, k); put(exp, ">");
        }
        for (l = 0; l < lists; l++) {
            int conds = 1 + rnd(r, 3), c;
            const char *ws = lws(r, 0);

            put(in, ws); put(exp, ws);
            put(in, "("); put(exp, "(");
            for (c = 0; c < conds; c++) {
                int neg = rnd(r, 3) == 0, kind = rnd(r, 3);
                apr_size_t mark;

                ws = lws(r, 0);
                put(in, ws); put(exp, ws);
                mark = in->n;   /* the Condition starts here */
                if (neg) {
                    put(in, nots[rnd(r, 4)]);
                    put(in, lws(r, 0));
                }
                if (kind == 2) {
                    /* foreign: copied as is, "Not" included */
                    put(in, foreign[rnd(r, 9)]);
                    put(exp, in->b + mark);
                }
                else {
                    int match = kind == 1;

                    put(in, "<" SYNC "T"); put(in, tagged ? k : "u");
                    put(in, match ? "-x-match>" : "-x>");
                    put(exp, (match != neg) ? T_TRUE : T_FALSE);
                    nours++;
                }
            }
            ws = lws(r, 0);
            put(in, ws); put(exp, ws);
            put(in, ")"); put(exp, ")");
        }
    }
    return nours;
}

static const char *const pieces[] = {
    "(", ")", "<", ">", "[", "]", "\"", "\\", "W/", "Not", "not", " ",
    "\t", "\r\n", "<" SYNC "1-match>", "<" SYNC "2>", "<opaquelocktoken:x>",
    "<http://h/p>", "</p>", "[\"e\"]", "[W/\"e\"]", "()", "a", ":", "/",
    "\x80", "\x01", "%", "<a:", "\"]", "Not <", "(<", "> (",
};

static int count_no_lock(const char *s)
{
    int n = 0;

    while ((s = strstr(s, "<DAV:no-lock>")) != NULL) {
        n++;
        s++;
    }
    return n;
}

/* Runs one input (copied to an exact-size malloc block so that ASan sees
 * any over-read) and checks the invariants; returns 0 if one broke. */
static int invariants(const char *src, apr_size_t len, apr_pool_t *p,
                      int *valid)
{
    char *in = malloc(len + 1);
    const char *out = NULL, *out2 = NULL;
    int n = -1, n2 = -1, good = 1;
    ev_t ev, ev2;
    apr_status_t rv;

    if (in == NULL)
        abort();
    memcpy(in, src, len);
    in[len] = '\0';
    ev_reset(&ev, p);
    ev.keep_log = 0;
    rv = iss_ifhdr_rewrite(in, eval, NULL, &ev, &out, &n, p);
    if (rv == APR_EINVAL) {
        good = out == in && n == 0 && ev.calls == 0;
    }
    else if (rv != APR_SUCCESS || n < 0 || n > ev.calls) {
        good = 0;
    }
    else if (n == 0) {
        good = out == in;
        (*valid)++;
    }
    else {
        /* the rewrite is valid, holds nothing of ours, keeps every state
         * token, and has n more DAV:no-lock tokens */
        (*valid)++;
        ev_reset(&ev2, p);
        ev2.keep_log = 0;
        good = iss_ifhdr_rewrite(out, eval, NULL, &ev2, &out2, &n2, p)
                   == APR_SUCCESS
               && n2 == 0 && out2 == out && ev2.calls == ev.calls
               && count_no_lock(out) == count_no_lock(in) + n;
    }
    if (!good)
        diag("invariant broken by input '%s'", in);
    free(in);
    return good;
}

static void fuzz(apr_pool_t *parent)
{
    rng_t r = { 0x9E3779B97F4A7C15ull };
    sbuf_t *in = malloc(sizeof(*in)), *exp = malloc(sizeof(*exp));
    char *m = malloc(sizeof(in->b) + 64);
    apr_pool_t *p;
    int i, gen_ok = 1, tags_ok = 1, mut_ok = 1, rand_ok = 1;
    int mut_valid = 0, rand_valid = 0;
    const int rounds = 34000;

    if (in == NULL || exp == NULL || m == NULL)
        abort();
    apr_pool_create(&p, parent);
    for (i = 0; i < rounds; i++) {
        int want = gen_valid(&r, in, exp), n = -1, edits, e;
        const char *out = NULL;
        apr_size_t len;
        ev_t ev;

        /* 1. valid by construction: exact expected rewrite */
        ev_reset(&ev, p);
        ev.keep_log = 0;
        ev.check_tags = 1;
        if (iss_ifhdr_rewrite(in->b, eval, NULL, &ev, &out, &n, p) != APR_SUCCESS
            || n != want || strcmp(out, exp->b) != 0
            || (want == 0 && out != in->b)) {
            if (gen_ok)
                diag("generated '%s' gave '%s' (%d), expected '%s' (%d)",
                     in->b, out ? out : "NULL", n, exp->b, want);
            gen_ok = 0;
        }
        if (ev.tag_errors) {
            if (tags_ok)
                diag("wrong tag passed for '%s'", in->b);
            tags_ok = 0;
        }

        /* 2. the same, mutated by a few random edits */
        len = in->n;
        memcpy(m, in->b, len);
        edits = 1 + rnd(&r, 4);
        for (e = 0; e < edits; e++) {
            apr_size_t at = len ? rnd(&r, (uint32_t)len + 1) : 0;
            unsigned char c = (unsigned char)(1 + rnd(&r, 255));

            switch (rnd(&r, 4)) {
            case 0:             /* delete */
                if (at < len) {
                    memmove(m + at, m + at + 1, len - at - 1);
                    len--;
                }
                break;
            case 1:             /* insert */
                if (len < sizeof(in->b)) {
                    memmove(m + at + 1, m + at, len - at);
                    m[at] = (char)c;
                    len++;
                }
                break;
            case 2:             /* replace */
                if (at < len)
                    m[at] = (char)c;
                break;
            default:            /* truncate */
                len = at;
                break;
            }
        }
        mut_ok &= invariants(m, len, p, &mut_valid);

        /* 3. random pieces */
        len = 0;
        edits = rnd(&r, 24);
        for (e = 0; e < edits; e++) {
            const char *pc = pieces[rnd(&r, sizeof(pieces) / sizeof(*pieces))];

            memcpy(m + len, pc, strlen(pc));
            len += strlen(pc);
        }
        rand_ok &= invariants(m, len, p, &rand_valid);
        apr_pool_clear(p);
    }
    ok(gen_ok, "%d generated valid headers rewritten exactly", rounds);
    ok(tags_ok, "generated headers: the right tag for every list");
    ok(mut_ok, "%d mutated headers: invariants hold (%d still valid)",
       rounds, mut_valid);
    ok(rand_ok, "%d random headers: invariants hold (%d valid)", rounds,
       rand_valid);
    ok(mut_valid > 0 && mut_valid < rounds,
       "mutations produce both valid and invalid headers");
    apr_pool_destroy(p);
    free(in);
    free(exp);
    free(m);
}

/* ---- long headers -------------------------------------------------- */

static void long_headers(apr_pool_t *p)
{
    const int lists = 20000;
    char *in = malloc(lists * 64 + 64), *want = malloc(lists * 64 + 64);
    apr_size_t a = 0, b = 0, big = 4 * 1024 * 1024;
    const char *out;
    int i, n;
    ev_t ev;

    if (in == NULL || want == NULL)
        abort();
    for (i = 0; i < lists; i++) {
        a += sprintf(in + a, "(<" SYNC "%d%s>) ", i, i % 2 ? "-match" : "");
        b += sprintf(want + b, "(%s) ", i % 2 ? T_TRUE : T_FALSE);
    }
    ev_reset(&ev, p);
    ev.keep_log = 0;
    ok(iss_ifhdr_rewrite(in, eval, NULL, &ev, &out, &n, p) == APR_SUCCESS
       && n == lists && strcmp(out, want) == 0 && ev.calls == lists,
       "%d untagged lists (%zu bytes) rewritten", lists, a);

    a = sprintf(in, "<http://h/x> ");
    b = sprintf(want, "<http://h/x> ");
    for (i = 0; i < lists; i++) {
        a += sprintf(in + a, "(Not <" SYNC "%d-match> [\"e\"])", i);
        b += sprintf(want + b, "(" T_FALSE " [\"e\"])");
    }
    ev_reset(&ev, p);
    ev.keep_log = 0;
    ok(iss_ifhdr_rewrite(in, eval, NULL, &ev, &out, &n, p) == APR_SUCCESS
       && n == lists && strcmp(out, want) == 0,
       "%d lists under one tag rewritten", lists);

    /* valid but for its last byte */
    in[a - 1] = ' ';
    bad(in, "long header, last ')' missing", p);
    free(in);
    free(want);

    in = malloc(big + 1);
    if (in == NULL)
        abort();
    memset(in, '(', big);
    in[big] = '\0';
    bad(in, "4 MB of '('", p);
    in[0] = '(';
    for (i = 1; (apr_size_t)i + 4 < big; i += 4)
        memcpy(in + i, "Not ", 4);
    in[i] = '\0';
    bad(in, "4 MB of 'Not '", p);
    memcpy(in, "([\"", 3);
    memset(in + 3, 'x', big - 3);
    in[big] = '\0';
    bad(in, "4 MB unterminated entity tag", p);
    memcpy(in, "(<a:", 4);
    memset(in + 4, 'x', big - 4);
    bad(in, "4 MB unterminated state token", p);
    free(in);
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    const char *in, *out;
    int n;
    ev_t ev;

    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&p, NULL);

    /* ---- one condition, untagged ---- */
    good("(<" SYNC "1-match>)", "(" T_TRUE ")", 1, "-|" SYNC "1-match;",
         "ours, matches", p);
    good("(<" SYNC "2>)", "(" T_FALSE ")", 1, "-|" SYNC "2;",
         "ours, does not match", p);
    good("(Not <" SYNC "1-match>)", "(" T_FALSE ")", 1, NULL,
         "Not ours-matching", p);
    good("(Not <" SYNC "2>)", "(" T_TRUE ")", 1, NULL,
         "Not ours-not-matching", p);
    good("(not\t<" SYNC "2>)", "(" T_TRUE ")", 1, NULL, "lower-case not", p);
    good("(NOT<" SYNC "1-match>)", "(" T_FALSE ")", 1, NULL,
         "NOT without space", p);

    /* ---- several lists, mixed ours and foreign ---- */
    good("(<opaquelocktoken:abc>) (<" SYNC "2> [\"etag\"])",
         "(<opaquelocktoken:abc>) (" T_FALSE " [\"etag\"])", 1,
         "-|opaquelocktoken:abc;-|" SYNC "2;", "two lists", p);
    good("(<opaquelocktoken:1> <" SYNC "a-match> Not <urn:uuid:x> [\"e\"]"
         " Not <" SYNC "b>)",
         "(<opaquelocktoken:1> " T_TRUE " Not <urn:uuid:x> [\"e\"] " T_TRUE
         ")", 2,
         "-|opaquelocktoken:1;-|" SYNC "a-match;-|urn:uuid:x;-|" SYNC "b;",
         "ours and foreign in one list", p);
    good("  (<" SYNC "1-match>)\t(Not <" SYNC "x-match>)(<" SYNC "y>)  ",
         "  (" T_TRUE ")\t(" T_FALSE ")(" T_FALSE ")  ", 3, NULL,
         "three lists, whitespace kept", p);
    good("\r\n (<" SYNC "1-match>\r\n\t<DAV:no-lock>)",
         "\r\n (" T_TRUE "\r\n\t<DAV:no-lock>)", 1, NULL,
         "folded header (CR LF)", p);

    /* ---- tagged ---- */
    good("<http://h.example/a> (<" SYNC "a-match>) (<" SYNC "b>) "
         "</dir/b%20c> (Not <" SYNC "c> [W/\"x\"])",
         "<http://h.example/a> (" T_TRUE ") (" T_FALSE ") "
         "</dir/b%20c> (" T_TRUE " [W/\"x\"])", 3,
         "http://h.example/a|" SYNC "a-match;http://h.example/a|" SYNC "b;"
         "/dir/b%20c|" SYNC "c;",
         "tagged lists: tag per list", p);
    good("<http://h/a>(<opaquelocktoken:1>)<http://h/b>(<" SYNC "m-match>)",
         "<http://h/a>(<opaquelocktoken:1>)<http://h/b>(" T_TRUE ")", 1,
         "http://h/a|opaquelocktoken:1;http://h/b|" SYNC "m-match;",
         "tagged, no spaces", p);
    good("<http://[::1]:8080/x?q=1> (<" SYNC "v6>)",
         "<http://[::1]:8080/x?q=1> (" T_FALSE ")", 1,
         "http://[::1]:8080/x?q=1|" SYNC "v6;", "IPv6 tag with query", p);

    /* ---- entity tags with tricky characters ---- */
    good("([\"a)b>c]d\\\"e<(\" ] <" SYNC "m-match>) ([W/\"x\"] Not <" SYNC
         "q>)",
         "([\"a)b>c]d\\\"e<(\" ] " T_TRUE ") ([W/\"x\"] " T_TRUE ")", 2,
         "-|" SYNC "m-match;-|" SYNC "q;", "entity tags with ) > ] \\\"", p);
    good("([\"\"] [w/\"\\\\\"] [\"caf\xc3\xa9\"] <" SYNC "1>)",
         "([\"\"] [w/\"\\\\\"] [\"caf\xc3\xa9\"] " T_FALSE ")", 1, NULL,
         "empty, escaped-backslash and UTF-8 entity tags", p);

    /* ---- nothing of ours: the very same pointer ---- */
    in = "(<opaquelocktoken:1>) ([\"e\"]) (Not <DAV:no-lock>)";
    ev_reset(&ev, p);
    out = NULL;
    n = -1;
    ok(iss_ifhdr_rewrite(in, eval, NULL, &ev, &out, &n, p) == APR_SUCCESS
       && out == in && n == 0, "no ours: out is in, nours 0");
    is_str(ev.log, "-|opaquelocktoken:1;-|DAV:no-lock;",
           "no ours: foreign tokens were asked about, entity tags not");
    in = "<http://h/> ([\"x\"])";
    ev_reset(&ev, p);
    ok(iss_ifhdr_rewrite(in, eval, NULL, &ev, &out, &n, p) == APR_SUCCESS
       && out == in && n == 0 && ev.calls == 0,
       "entity tags only: nothing evaluated, out is in");
    ok(iss_ifhdr_rewrite("(<" SYNC "1>)", NULL, NULL, NULL, &out, &n, p)
       == APR_SUCCESS && n == 0 && strcmp(out, "(<" SYNC "1>)") == 0,
       "NULL evaluator: nothing is ours");

    /* ---- malformed ---- */
    bad(NULL, "NULL", p);
    bad("", "empty string", p);
    bad(" \t\r\n", "whitespace only", p);
    bad("If: (<" SYNC "1>)", "field name included", p);
    bad("(", "lone (", p);
    bad(")", "lone )", p);
    bad("()", "empty list", p);
    bad("( \t)", "blank list", p);
    bad("(<" SYNC "1>) ()", "empty second list", p);
    bad("(<" SYNC "1>", "unclosed list", p);
    bad("(<" SYNC "1>))", "extra )", p);
    bad("((<" SYNC "1>))", "nested lists", p);
    bad("(<" SYNC "1)", "unclosed <", p);
    bad("(<" SYNC "1> <)", "lone < in list", p);
    bad("(<" SYNC "1>>)", "extra >", p);
    bad("(<" SYNC "1> >)", "lone > in list", p);
    bad("(<>)", "empty state token", p);
    bad("(<nocolon>)", "state token without scheme", p);
    bad("(<:x>)", "state token with empty scheme", p);
    bad("(<1a:x>)", "scheme starting with a digit", p);
    bad("(</p/q>)", "relative state token", p);
    bad("(<" SYNC "a b>)", "space in a state token", p);
    bad("(< " SYNC "1>)", "space after <", p);
    bad("(<" SYNC "a<b>)", "< in a state token", p);
    bad("(<" SYNC "\"x\">)", "quote in a state token", p);
    bad("(<" SYNC "\xc3\xa9>)", "non-ASCII in a state token", p);
    bad("(<" SYNC "\x01>)", "control in a state token", p);
    bad("(Not)", "Not alone", p);
    bad("(Not )", "Not and space alone", p);
    bad("(<" SYNC "1> Not)", "trailing Not", p);
    bad("(Not Not <" SYNC "1>)", "Not Not", p);
    bad("(Nothing <" SYNC "1>)", "Nothing", p);
    bad("(No <" SYNC "1>)", "No", p);
    bad("(N", "N at the end", p);
    bad("(Not ())", "Not (", p);
    bad("([])", "empty brackets", p);
    bad("([etag])", "unquoted entity tag", p);
    bad("([\"e\" x])", "junk after entity tag", p);
    bad("([\"e\"", "unclosed [", p);
    bad("([\"e])", "unterminated quoted string", p);
    bad("([\"e\\", "backslash at the end", p);
    bad("([W/])", "W/ without quoted string", p);
    bad("([W/ \"e\"])", "space after W/", p);
    bad("([X/\"e\"])", "X/", p);
    bad("([\"a\x01\"])", "control in an entity tag", p);
    bad("([\"a\\\x01\"])", "escaped control in an entity tag", p);
    bad("([\"a\"] [\"b\")", "] missing", p);
    bad("(\"e\")", "entity tag without brackets", p);
    bad("(opaquelocktoken:1)", "state token without brackets", p);
    bad("<http://h/>", "tag without list", p);
    bad("<http://h/> ", "tag and space without list", p);
    bad("<http://h/> (<" SYNC "1>) <http://h/b>", "second tag without list",
        p);
    bad("<http://h/> <http://h/b> (<" SYNC "1>)", "two tags in a row", p);
    bad("(<" SYNC "1-match>) <http://h/> (<" SYNC "2>)",
        "untagged then tagged", p);
    bad("<http://h/> (<" SYNC "1-match>) (<" SYNC "2>) x", "trailing x", p);
    bad("(<" SYNC "1-match>) x", "trailing garbage", p);
    bad("(<" SYNC "1-match>) ,(<" SYNC "2>)", "comma between lists", p);
    bad("(<" SYNC "1-match>)\x01", "trailing control", p);
    bad("<> (<" SYNC "1>)", "empty tag", p);
    bad("<relative/x> (<" SYNC "1>)", "relative tag", p);
    bad("<//host/x> (<" SYNC "1>)", "network-path tag", p);
    bad("<http://h/a b> (<" SYNC "1>)", "space in tag", p);
    bad("<http://h/ (<" SYNC "1>)", "unclosed tag", p);
    bad("x", "one letter", p);
    bad("Not", "Not at top level", p);
    bad("[\"e\"]", "entity tag at top level", p);
    bad("\x80\xff garbage", "high bytes", p);
    bad("(<" SYNC "1-match>)\r\n(<" SYNC "1>) )", "stray ) after lists", p);

    long_headers(p);
    fuzz(p);
    test_etags(p);

    apr_pool_destroy(p);
    apr_terminate();
    return done_testing();
}
