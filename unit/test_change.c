/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/* iss_change: encoding round-trips any path bytes; decoding refuses
 * every malformation instead of returning half a list. */

#include "iss_change.h"
#include "tap.h"

#include <apr_general.h>
#include <apr_strings.h>

static apr_array_header_t *sample(apr_pool_t *p)
{
    apr_array_header_t *a = apr_array_make(p, 4, sizeof(iss_change_t));
    static const iss_change_t c[] = {
        { ISS_CHANGE_CREATED, 1, "/dav/new dir" },
        { ISS_CHANGE_MODIFIED, 0, "/dav/ü ñ 日本語/file name.txt" },
        { ISS_CHANGE_REMOVED, 0, "/dav/line\nbreak:and 12:colons" },
        { ISS_CHANGE_PROPS, 1, "/" },
    };
    unsigned i;

    for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        *(iss_change_t *)apr_array_push(a) = c[i];
    }
    return a;
}

static int decodes(const char *buf, apr_size_t len, apr_pool_t *p)
{
    const char *m;
    apr_array_header_t *a;

    return iss_change_decode(buf, len, &m, &a, p) == APR_SUCCESS;
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    apr_array_header_t *in, *out, *empty;
    const char *method;
    char *buf, *long_path;
    apr_size_t len, cut;
    int i, all_truncations_refused = 1;

    apr_app_initialize(&argc, &argv, NULL);
    apr_pool_create(&p, NULL);

    in = sample(p);
    iss_change_encode("MOVE", in, &buf, &len, p);
    is_int(iss_change_decode(buf, len, &method, &out, p), APR_SUCCESS,
           "encoded list decodes");
    is_str(method, "MOVE", "method survives");
    is_int(out->nelts, in->nelts, "every change survives");
    for (i = 0; i < in->nelts && i < out->nelts; i++) {
        const iss_change_t *a = &APR_ARRAY_IDX(in, i, iss_change_t);
        const iss_change_t *b = &APR_ARRAY_IDX(out, i, iss_change_t);

        ok(a->kind == b->kind && a->collection == b->collection
           && strcmp(a->path, b->path) == 0, "change %d identical (%s)", i,
           iss_change_kind_name(b->kind));
    }

    empty = apr_array_make(p, 1, sizeof(iss_change_t));
    iss_change_encode("PUT", empty, &buf, &len, p);
    ok(iss_change_decode(buf, len, &method, &out, p) == APR_SUCCESS
       && out->nelts == 0, "an empty list round-trips");

    long_path = apr_palloc(p, 5001);
    memset(long_path, 'x', 5000);
    long_path[0] = '/';
    long_path[5000] = '\0';
    APR_ARRAY_PUSH(empty, iss_change_t) =
        (iss_change_t){ ISS_CHANGE_CREATED, 0, long_path };
    iss_change_encode("PUT", empty, &buf, &len, p);
    ok(iss_change_decode(buf, len, &method, &out, p) == APR_SUCCESS
       && out->nelts == 1
       && strcmp(APR_ARRAY_IDX(out, 0, iss_change_t).path, long_path) == 0,
       "a 5000-byte path round-trips");

    /* Every proper prefix of a valid record is refused (or is itself a
     * complete shorter list ending on a record boundary). */
    iss_change_encode("COPY", sample(p), &buf, &len, p);
    for (cut = 0; cut < len; cut++) {
        if (decodes(buf, cut, p) && buf[cut - 1] != '\n') {
            all_truncations_refused = 0;
            diag("truncation at %" APR_SIZE_T_FMT " accepted", cut);
        }
    }
    ok(all_truncations_refused, "truncated records are refused");

    ok(!decodes("", 0, p), "empty buffer refused");
    ok(!decodes("ISC2 PUT\n", 9, p), "unknown version refused");
    ok(!decodes("ISC1 \n", 6, p), "empty method refused");
    ok(!decodes("ISC1 PUT\nXf 1:/\n", 16, p), "unknown kind refused");
    ok(!decodes("ISC1 PUT\nCx 1:/\n", 16, p), "unknown type refused");
    ok(!decodes("ISC1 PUT\nCf 9:/\n", 16, p), "length past the end refused");
    ok(!decodes("ISC1 PUT\nCf :/\n", 15, p), "missing length refused");
    ok(!decodes("ISC1 PUT\nCf 1234567890:/\n", 25, p),
       "over-long length refused");
    ok(!decodes("ISC1 PUT\nCf 2:/a!", 17, p), "missing newline refused");
    ok(!decodes("ISC1 PUT\nCf 2:/\0\n", 17, p), "NUL inside a path refused");
    ok(!decodes("ISC1 PUT\nCf 1:/\ntrailing", 24, p),
       "trailing garbage refused");

    apr_pool_destroy(p);
    apr_terminate();
    return done_testing();
}
