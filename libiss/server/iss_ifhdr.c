/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* Two passes over the header.  The first is a single left-to-right scan
 * (a loop, no recursion) that validates the whole grammar and records,
 * for every Condition with a state token, its byte span ("Not" included),
 * the token and the resource tag of its list.  Only when the header is
 * valid does the second pass call the evaluator for each recorded
 * Condition and splice the replacements into a copy of the header. */

#include "iss_ifhdr.h"

#include <apr_strings.h>
#include <apr_tables.h>
#include <string.h>

#define REPL_TRUE  "Not <" ISS_IFHDR_NO_LOCK ">"
#define REPL_FALSE "<" ISS_IFHDR_NO_LOCK ">"

typedef struct ifhdr_cond_t {
    apr_size_t start, end;       /* span in the header, end exclusive */
    apr_size_t tok, toklen;      /* state token, brackets excluded */
    apr_size_t tag, taglen;      /* resource tag of the list */
    int tagged;                  /* 0: untagged list (tag unused) */
    int neg;                     /* preceded by "Not" */
    int etag;                    /* an entity tag (tok: its text) */
    int truth;                   /* -1 foreign, else the Condition's value */
} ifhdr_cond_t;

static int iss_ifhdr_is_lws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int iss_ifhdr_is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int iss_ifhdr_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* The characters RFC 3986 allows in a URI reference: unreserved,
 * reserved and '%'. */
static int iss_ifhdr_is_uric(unsigned char c)
{
    if (iss_ifhdr_is_alpha(c) || iss_ifhdr_is_digit(c))
        return 1;
    return c != 0 && strchr("-._~:/?#[]@!$&'()*+,;=%", c) != NULL;
}

static int iss_ifhdr_is_scheme_char(unsigned char c)
{
    return iss_ifhdr_is_alpha(c) || iss_ifhdr_is_digit(c) || c == '+'
           || c == '-' || c == '.';
}

/* RFC 7230 qdtext and the second byte of a quoted-pair (minus '"' and
 * '\\' for qdtext, which the caller handles first). */
static int iss_ifhdr_is_qtext(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7F);
}

static apr_size_t iss_ifhdr_skip_lws(const unsigned char *s, apr_size_t i)
{
    while (iss_ifhdr_is_lws(s[i]))
        i++;
    return i;
}

/* s[*i] == '<'.  Parses "<" URI ">": an absolute-URI, or (if @a tag) a
 * Simple-ref.  On success *i is just past '>' and the URI is
 * s[*start .. *start + *len). */
static int iss_ifhdr_parse_uri(const unsigned char *s, apr_size_t *i, int tag,
                               apr_size_t *start, apr_size_t *len)
{
    apr_size_t b = *i + 1, j = b;

    if (iss_ifhdr_is_alpha(s[j])) {
        while (iss_ifhdr_is_scheme_char(s[j]))
            j++;
    }
    if (!(j > b && s[j] == ':')
        && !(tag && s[b] == '/' && s[b + 1] != '/')) {
        return 0;
    }
    j = b;
    while (iss_ifhdr_is_uric(s[j]))
        j++;
    if (s[j] != '>')
        return 0;
    *start = b;
    *len = j - b;
    *i = j + 1;
    return 1;
}

/* s[*i] == '['.  Parses "[" ["W/"] quoted-string "]"; *i just past ']'. */
static int iss_ifhdr_parse_etag(const unsigned char *s, apr_size_t *i,
                                apr_size_t *tok, apr_size_t *toklen)
{
    apr_size_t j = iss_ifhdr_skip_lws(s, *i + 1);

    *tok = j;

    if ((s[j] == 'W' || s[j] == 'w') && s[j + 1] == '/')
        j += 2;
    if (s[j] != '"')
        return 0;
    for (j++; s[j] != '"'; j++) {
        if (s[j] == '\\') {
            j++;
            if (!iss_ifhdr_is_qtext(s[j]))
                return 0;
        }
        else if (!iss_ifhdr_is_qtext(s[j])) {
            return 0;            /* includes the terminating NUL */
        }
    }
    *toklen = j + 1 - *tok;
    j = iss_ifhdr_skip_lws(s, j + 1);
    if (s[j] != ']')
        return 0;
    *i = j + 1;
    return 1;
}

/* First pass: validate @a s and record its state-token Conditions. */
static int iss_ifhdr_scan(const unsigned char *s, apr_array_header_t *conds)
{
    apr_size_t i = iss_ifhdr_skip_lws(s, 0), tag = 0, taglen = 0;
    int tagged;

    if (s[i] == '<')
        tagged = 1;
    else if (s[i] == '(')
        tagged = 0;
    else
        return 0;               /* empty, or garbage */

    while (s[i] != '\0') {
        int nconds = 0;

        if (s[i] == '<') {
            /* Resource-Tag; a Tagged-list needs at least one List */
            if (!tagged || !iss_ifhdr_parse_uri(s, &i, 1, &tag, &taglen))
                return 0;
            i = iss_ifhdr_skip_lws(s, i);
            if (s[i] != '(')
                return 0;
        }
        else if (s[i] != '(') {
            return 0;
        }
        /* List: s[i] == '(' */
        i++;
        for (;;) {
            apr_size_t start;
            int neg = 0;

            i = iss_ifhdr_skip_lws(s, i);
            if (s[i] == ')')
                break;
            start = i;
            if ((s[i] == 'N' || s[i] == 'n')
                && (s[i + 1] == 'O' || s[i + 1] == 'o')
                && (s[i + 2] == 'T' || s[i + 2] == 't')) {
                neg = 1;
                i = iss_ifhdr_skip_lws(s, i + 3);
            }
            if (s[i] == '<' || s[i] == '[') {
                ifhdr_cond_t *c;
                apr_size_t tok, toklen;
                int etag = s[i] == '[';

                if (etag ? !iss_ifhdr_parse_etag(s, &i, &tok, &toklen)
                         : !iss_ifhdr_parse_uri(s, &i, 0, &tok, &toklen))
                    return 0;
                c = apr_array_push(conds);
                c->etag = etag;
                c->start = start;
                c->end = i;
                c->tok = tok;
                c->toklen = toklen;
                c->tag = tag;
                c->taglen = taglen;
                c->tagged = tagged;
                c->neg = neg;
                c->truth = -1;
            }
            else {
                return 0;       /* stray character, NUL, or "Not" alone */
            }
            nconds++;
        }
        if (nconds == 0)
            return 0;           /* "()" */
        i = iss_ifhdr_skip_lws(s, i + 1);
    }
    return 1;
}

apr_status_t iss_ifhdr_rewrite(const char *in, iss_ifhdr_eval_fn *fn,
                               iss_ifhdr_eval_fn *etag_fn, void *baton,
                               const char **out, int *nours,
                               apr_pool_t *pool)
{
    const unsigned char *s = (const unsigned char *)in;
    apr_array_header_t *conds;
    ifhdr_cond_t *c;
    const char *tagstr = NULL;
    apr_size_t inlen, outlen, tagdone = 0, from, o;
    char *buf;
    int i, n = 0, havetag = 0;

    *out = in;
    *nours = 0;
    if (in == NULL)
        return APR_EINVAL;
    conds = apr_array_make(pool, 4, sizeof(ifhdr_cond_t));
    if (!iss_ifhdr_scan(s, conds))
        return APR_EINVAL;
    if ((fn == NULL && etag_fn == NULL) || conds->nelts == 0)
        return APR_SUCCESS;

    inlen = strlen(in);
    outlen = inlen;
    c = (ifhdr_cond_t *)conds->elts;
    for (i = 0; i < conds->nelts; i++) {
        const char *tok = apr_pstrmemdup(pool, in + c[i].tok, c[i].toklen);
        int r;

        if (c[i].tagged && (!havetag || tagdone != c[i].tag)) {
            tagstr = apr_pstrmemdup(pool, in + c[i].tag, c[i].taglen);
            tagdone = c[i].tag;
            havetag = 1;
        }
        if (c[i].etag ? etag_fn == NULL : fn == NULL)
            continue;
        r = (c[i].etag ? etag_fn : fn)(baton, c[i].tagged ? tagstr : NULL,
                                       tok);
        if (r < 0)
            continue;
        c[i].truth = (r > 0) != c[i].neg;
        outlen -= c[i].end - c[i].start;
        outlen += c[i].truth ? sizeof(REPL_TRUE) - 1 : sizeof(REPL_FALSE) - 1;
        n++;
    }
    if (n == 0)
        return APR_SUCCESS;

    buf = apr_palloc(pool, outlen + 1);
    for (i = 0, from = 0, o = 0; i < conds->nelts; i++) {
        const char *r;
        apr_size_t rlen;

        if (c[i].truth < 0)
            continue;
        r = c[i].truth ? REPL_TRUE : REPL_FALSE;
        rlen = c[i].truth ? sizeof(REPL_TRUE) - 1 : sizeof(REPL_FALSE) - 1;
        memcpy(buf + o, in + from, c[i].start - from);
        o += c[i].start - from;
        memcpy(buf + o, r, rlen);
        o += rlen;
        from = c[i].end;
    }
    memcpy(buf + o, in + from, inlen - from);
    o += inlen - from;
    buf[o] = '\0';
    *out = buf;
    *nours = n;
    return APR_SUCCESS;
}
