/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/**
 * iss_bytes — the byte helpers every format of libiss shares: hex text
 * and big-endian (network order) integers.
 *
 * One copy for the tree: the manifest and delta formats, chunk frames,
 * the chunk index, the state store's records, upload sessions, the
 * tools and the client all read and write through these.
 *
 *  - hex: lowercase on output; either case accepted on input; a decoder
 *    says 0 for anything that is not exactly the expected number of hex
 *    digits (no whitespace, no "0x", no odd length);
 *  - big-endian: loads and stores of 16, 32 and 64 bits from byte
 *    pointers of any alignment (byte by byte: no host-endian reads, no
 *    unaligned access).
 *
 * Pure code: APR only.
 */
#ifndef ISS_BYTES_H
#define ISS_BYTES_H

#include <apr.h>
#include <apr_pools.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The value of the hex digit @a c (0-9, a-f, A-F), or -1. */
int iss_hex_digit(int c);

/** Write the lowercase hex of the @a n bytes at @a in to @a out:
 *  2 * @a n characters and a terminating NUL (so @a out holds at least
 *  2 * n + 1 bytes). */
void iss_hex_encode(char *out, const unsigned char *in, apr_size_t n);

/** The lowercase hex of the @a n bytes at @a in, allocated from
 *  @a pool. */
const char *iss_hex_pencode(const unsigned char *in, apr_size_t n,
                            apr_pool_t *pool);

/** Decode exactly @a n bytes into @a out from the @a len characters at
 *  @a hex (either case).  Returns 1 if @a len is 2 * @a n and every
 *  character is a hex digit, else 0 (@a out may then be partly
 *  written). */
int iss_hex_decode(unsigned char *out, apr_size_t n, const char *hex,
                   apr_size_t len);

/** Whether the NUL-terminated @a s is exactly @a n lowercase hex
 *  digits (names made by iss_hex_encode: session ids, chunk files). */
int iss_hex_is_lower(const char *s, apr_size_t n);

/** Characters of the hex of a chunk id (a SHA-256). */
#define ISS_HEX_ID_LEN 64

/** The lowercase hex of a 32-byte id (a chunk id, a SHA-256),
 *  allocated from @a pool. */
static APR_INLINE const char *iss_hex_id(const unsigned char id[32],
                                         apr_pool_t *pool)
{
    return iss_hex_pencode(id, 32, pool);
}

/** Parse the @a len characters at @a hex as a 32-byte id: 1 if they are
 *  exactly 64 hex digits (either case). */
static APR_INLINE int iss_hex_id_decode(const char *hex, apr_size_t len,
                                        unsigned char id[32])
{
    return iss_hex_decode(id, 32, hex, len);
}

static APR_INLINE apr_uint16_t iss_be16_get(const unsigned char *p)
{
    return (apr_uint16_t)((p[0] << 8) | p[1]);
}

static APR_INLINE apr_uint32_t iss_be32_get(const unsigned char *p)
{
    return ((apr_uint32_t)p[0] << 24) | ((apr_uint32_t)p[1] << 16)
           | ((apr_uint32_t)p[2] << 8) | (apr_uint32_t)p[3];
}

static APR_INLINE apr_uint64_t iss_be64_get(const unsigned char *p)
{
    return ((apr_uint64_t)iss_be32_get(p) << 32) | iss_be32_get(p + 4);
}

static APR_INLINE void iss_be16_put(unsigned char *p, apr_uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static APR_INLINE void iss_be32_put(unsigned char *p, apr_uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static APR_INLINE void iss_be64_put(unsigned char *p, apr_uint64_t v)
{
    iss_be32_put(p, (apr_uint32_t)(v >> 32));
    iss_be32_put(p + 4, (apr_uint32_t)v);
}

#ifdef __cplusplus
}
#endif

#endif /* ISS_BYTES_H */
