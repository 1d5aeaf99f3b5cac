/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * Sync tokens (declared in iss_sync_log.h): the text of a position in
 * the change log, made and parsed without the store, so that the parser
 * of this hostile input is fuzzed alone (fuzz/fuzz_ifhdr.c).  Every
 * number in a token is sealed with the state directory's key
 * (iss_sync_key_t): a token tells no count of writes, and only the
 * server makes valid ones (issue 16 item 1).
 */

#include "iss_sync_log.h"
#include "iss_bytes.h"

#include <apr_lib.h>
#include <apr_strings.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* Strict unsigned decimal (iss_sync_log.h). */
apr_status_t iss_sync_parse_u64(const char *s, apr_size_t len, apr_uint64_t *v)
{
    apr_uint64_t n = 0;
    apr_size_t i;

    if (len == 0 || len > 20) {
        return APR_EINVAL;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return APR_EINVAL;
        }
        if (n > (APR_UINT64_MAX - (apr_uint64_t)(s[i] - '0')) / 10) {
            return APR_EINVAL;
        }
        n = n * 10 + (apr_uint64_t)(s[i] - '0');
    }
    *v = n;
    return APR_SUCCESS;
}

/* ---- tokens ------------------------------------------------------------- */

static int unreserved(unsigned char c)
{
    return apr_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~'
           || c == '/';
}

static const char *pct_encode(const char *s, apr_pool_t *p)
{
    apr_size_t n = strlen(s), i, o = 0;
    char *out = apr_palloc(p, 3 * n + 1);

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (unreserved(c)) {
            out[o++] = (char)c;
        }
        else {
            apr_snprintf(out + o, 4, "%%%02X", c);
            o += 3;
        }
    }
    out[o] = '\0';
    return out;
}

static apr_status_t pct_decode(const char *s, const char **out, apr_pool_t *p)
{
    apr_size_t n = strlen(s), i, o = 0;
    char *d = apr_palloc(p, n + 1);

    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;

            if (i + 2 >= n) {
                return APR_EINVAL;
            }
            hi = iss_hex_digit((unsigned char)s[i + 1]);
            lo = hi < 0 ? -1 : iss_hex_digit((unsigned char)s[i + 2]);
            if (lo < 0 || (hi == 0 && lo == 0)) {
                return APR_EINVAL;
            }
            d[o++] = (char)(hi * 16 + lo);
            i += 2;
        }
        else if (unreserved((unsigned char)s[i])) {
            d[o++] = s[i];
        }
        else {
            return APR_EINVAL;
        }
    }
    d[o] = '\0';
    *out = d;
    return APR_SUCCESS;
}

/* ---- the opaque numbers -------------------------------------------------- */

/* Roles of a token's numbers: the redundancy of each block names its
 * role, so that no block can be moved to another place of a token. */
#define ROLE_POS     'n'           /* BASE id "/" X: n = seq - 1 */
#define ROLE_INITIAL 'i'           /* BASE id "/i" X "/" path: n = seq - 1 */
#define ROLE_SEQ     'c'           /* BASE id "/" X "/" Y "/" path: seq */
#define ROLE_ITEM    'j'           /* ... Y: idx, bound to that seq too */

#define BLOCK_HEX (2 * ISS_SYNC_KEY_LEN)

/* The 8 bytes a block of @a role in a token of @a id must decrypt to
 * besides its number: the first 8 bytes of SHA-256 of the role, the
 * store id and @a bound (the entry an item index belongs to).  A token
 * whose id was edited, or a block moved to another role, decrypts to
 * something else. */
static int check_bytes(unsigned char out[8], int role, const char *id,
                       apr_uint64_t bound)
{
    static const char label[] = "mod_iss sync token 1";
    unsigned char md[EVP_MAX_MD_SIZE], b[8];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char r = (unsigned char)role;
    int ok;

    iss_be64_put(b, bound);
    ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)
         && EVP_DigestUpdate(ctx, label, sizeof(label))
         && EVP_DigestUpdate(ctx, &r, 1)
         && EVP_DigestUpdate(ctx, id, strlen(id) + 1)
         && EVP_DigestUpdate(ctx, b, sizeof(b))
         && EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen >= 8;
    EVP_MD_CTX_free(ctx);
    if (ok) {
        memcpy(out, md, 8);
    }
    return ok;
}

/* One AES-128 block (ECB: one block, no chaining to speak of). */
static int cipher(const iss_sync_key_t *key, int enc,
                  unsigned char out[16], const unsigned char in[16])
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, m = 0, ok;

    ok = ctx != NULL
         && EVP_CipherInit_ex(ctx, EVP_aes_128_ecb(), NULL, key->k, NULL, enc)
         && EVP_CIPHER_CTX_set_padding(ctx, 0)
         && EVP_CipherUpdate(ctx, out, &n, in, 16)
         && EVP_CipherFinal_ex(ctx, out + n, &m) && n + m == 16;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

/* The 32 hex digits of @a v in role @a role; NULL if the cipher fails. */
static const char *seal(const iss_sync_key_t *key, int role, const char *id,
                        apr_uint64_t bound, apr_uint64_t v, apr_pool_t *p)
{
    unsigned char plain[16], sealed[16];
    char *hex = apr_palloc(p, BLOCK_HEX + 1);

    iss_be64_put(plain, v);
    if (!check_bytes(plain + 8, role, id, bound)
        || !cipher(key, 1, sealed, plain)) {
        return NULL;
    }
    iss_hex_encode(hex, sealed, 16);
    return hex;
}

/* The number of the BLOCK_HEX lowercase hex digits at @a hex in role
 * @a role; APR_EINVAL unless they decrypt to the role's check. */
static apr_status_t unseal(const iss_sync_key_t *key, int role,
                           const char *id, apr_uint64_t bound,
                           const char *hex, apr_uint64_t *v)
{
    unsigned char sealed[16], plain[16], want[8];
    apr_size_t i;

    for (i = 0; i < BLOCK_HEX; i++) {
        /* One text per block: lowercase only. */
        if (!((hex[i] >= '0' && hex[i] <= '9')
              || (hex[i] >= 'a' && hex[i] <= 'f'))) {
            return APR_EINVAL;
        }
    }
    if (!iss_hex_decode(sealed, 16, hex, BLOCK_HEX)
        || !cipher(key, 0, plain, sealed)
        || !check_bytes(want, role, id, bound)
        || CRYPTO_memcmp(plain + 8, want, 8) != 0) {
        return APR_EINVAL;
    }
    *v = iss_be64_get(plain);
    return APR_SUCCESS;
}

const char *iss_sync_token_make(const iss_sync_key_t *key,
                                const char *store_id,
                                const iss_sync_pos_t *pos, apr_pool_t *pool)
{
    const char *x, *y;

    if (pos->initial) {
        x = seal(key, ROLE_INITIAL, store_id, 0, pos->seq - 1, pool);
        return x ? apr_pstrcat(pool, ISS_SYNC_TOKEN_BASE, store_id, "/i", x,
                               "/", pct_encode(pos->after, pool), NULL)
                 : NULL;
    }
    if (pos->after && *pos->after) {
        x = seal(key, ROLE_SEQ, store_id, 0, pos->seq, pool);
        y = seal(key, ROLE_ITEM, store_id, pos->seq, pos->idx, pool);
        return x && y ? apr_pstrcat(pool, ISS_SYNC_TOKEN_BASE, store_id, "/",
                                    x, "/", y, "/",
                                    pct_encode(pos->after, pool), NULL)
                      : NULL;
    }
    x = seal(key, ROLE_POS, store_id, 0, pos->seq - 1, pool);
    return x ? apr_pstrcat(pool, ISS_SYNC_TOKEN_BASE, store_id, "/", x, NULL)
             : NULL;
}

apr_status_t iss_sync_token_parse(const iss_sync_key_t *key,
                                  const char *token, const char **store_id,
                                  iss_sync_pos_t *pos, apr_pool_t *pool)
{
    apr_size_t blen = sizeof(ISS_SYNC_TOKEN_BASE) - 1;
    const char *id, *slash, *rest;
    apr_uint64_t n, i;
    apr_size_t k;

    memset(pos, 0, sizeof(*pos));
    if (!token || strncmp(token, ISS_SYNC_TOKEN_BASE, blen) != 0) {
        return APR_EINVAL;
    }
    id = token + blen;
    if (!(slash = strchr(id, '/')) || slash == id || slash - id > 64) {
        return APR_EINVAL;
    }
    for (k = 0; id + k < slash; k++) {
        if (!apr_isxdigit(id[k]) && id[k] != '-') {
            return APR_EINVAL;
        }
    }
    id = apr_pstrmemdup(pool, id, (apr_size_t)(slash - id));
    rest = slash + 1;
    if (rest[0] == 'i') {                        /* i<X>/<path> */
        rest++;
        if (strlen(rest) < BLOCK_HEX + 2 || rest[BLOCK_HEX] != '/'
            || unseal(key, ROLE_INITIAL, id, 0, rest, &n) != APR_SUCCESS
            || n == APR_UINT64_MAX
            || pct_decode(rest + BLOCK_HEX + 1, &pos->after, pool)
               != APR_SUCCESS) {
            memset(pos, 0, sizeof(*pos));
            return APR_EINVAL;
        }
        pos->initial = 1;
        pos->seq = n + 1;
        *store_id = id;
        return APR_SUCCESS;
    }
    if (strlen(rest) == BLOCK_HEX) {              /* <X> */
        if (unseal(key, ROLE_POS, id, 0, rest, &n) != APR_SUCCESS
            || n == APR_UINT64_MAX) {
            return APR_EINVAL;
        }
        pos->seq = n + 1;
        *store_id = id;
        return APR_SUCCESS;
    }
    /* <X>/<Y>/<path> */
    if (strlen(rest) < 2 * BLOCK_HEX + 3 || rest[BLOCK_HEX] != '/'
        || rest[2 * BLOCK_HEX + 1] != '/'
        || unseal(key, ROLE_SEQ, id, 0, rest, &n) != APR_SUCCESS
        || n == 0 || n == APR_UINT64_MAX
        || unseal(key, ROLE_ITEM, id, n, rest + BLOCK_HEX + 1, &i)
           != APR_SUCCESS
        || i > 0xFFFFFFFFu
        || pct_decode(rest + 2 * BLOCK_HEX + 2, &pos->after, pool)
           != APR_SUCCESS) {
        memset(pos, 0, sizeof(*pos));
        return APR_EINVAL;
    }
    pos->seq = n;
    pos->idx = (apr_uint32_t)i;
    *store_id = id;
    return APR_SUCCESS;
}
