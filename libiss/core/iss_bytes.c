/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

#include <apr_strings.h>

#include "iss_bytes.h"

static const char lower[] = "0123456789abcdef";

int iss_hex_digit(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

void iss_hex_encode(char *out, const unsigned char *in, apr_size_t n)
{
    apr_size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = lower[in[i] >> 4];
        out[2 * i + 1] = lower[in[i] & 15];
    }
    out[2 * n] = '\0';
}

const char *iss_hex_pencode(const unsigned char *in, apr_size_t n,
                            apr_pool_t *pool)
{
    char *s = apr_palloc(pool, 2 * n + 1);

    iss_hex_encode(s, in, n);
    return s;
}

int iss_hex_decode(unsigned char *out, apr_size_t n, const char *hex,
                   apr_size_t len)
{
    apr_size_t i;

    if (hex == NULL || len != 2 * n) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        int hi = iss_hex_digit((unsigned char)hex[2 * i]);
        int lo = iss_hex_digit((unsigned char)hex[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return 0;
        }
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 1;
}

int iss_hex_is_lower(const char *s, apr_size_t n)
{
    apr_size_t i;

    if (s == NULL) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;          /* a NUL inside stops here too */
        }
    }
    return s[n] == '\0';
}
