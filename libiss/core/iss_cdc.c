/* Licensed under the Apache License, Version 2.0 (see LICENSE). */

/*
 * iss_cdc — FastCDC content-defined chunking; the rule is specified in
 * iss_cdc.h.  This file holds the GEAR table, the masks and the scanning
 * loop shared by the streaming API and the one-shot iss_cdc_cut(), so
 * that both find the same boundaries by construction.
 */

#include "iss_cdc.h"

/*
 * GEAR[i] is the (i+1)-th output of SplitMix64 (Steele, Lea and Flood,
 * "Fast splittable pseudorandom number generators", OOPSLA 2014) seeded
 * with the ASCII bytes "iss-gear" read as a big-endian integer,
 * 0x6973732d67656172:
 *
 *     state += 0x9e3779b97f4a7c15;
 *     z = state;
 *     z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
 *     z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
 *     output z ^ (z >> 31);              (all arithmetic mod 2^64)
 *
 * Regenerate with Python:
 *
 *     M = 2**64 - 1; s = int.from_bytes(b"iss-gear", "big"); g = []
 *     for _ in range(256):
 *         s = (s + 0x9e3779b97f4a7c15) & M
 *         z = ((s ^ (s >> 30)) * 0xbf58476d1ce4e5b9) & M
 *         z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M
 *         g.append(z ^ (z >> 31))
 *
 * The SHA-256 of the 256 values written big-endian one after the other
 * (2048 bytes) is
 * 5e68c61d2c948e36296f645297efd3c8a3076a1f04ef7a106b1057720a73a8c5,
 * checked by unit/test_cdc.c.  Changing a value changes every boundary
 * and so every chunk id of every store: never edit this table.
 */
static const apr_uint64_t iss_cdc_gear_table[256] = {
    /*   0 */ 0xe79b3f0657422eddu, 0x272700135d824cc7u, 0x94dfd650736e2f19u,
    /*   3 */ 0xaa351d45d61bbb4eu, 0x7a33db8242a04624u, 0x1da3d8a1b3e5e9ecu,
    /*   6 */ 0xc36eac452916a1ffu, 0x87afa9d59ce57180u, 0x98cbea474d5f3920u,
    /*   9 */ 0x8d512ccf8d8f3719u, 0x97ca402b5b2177f2u, 0x9874305b714284f9u,
    /*  12 */ 0xf4bbfb7bf2dfad16u, 0x922a64eed78bc589u, 0x58ffe34bd8058977u,
    /*  15 */ 0x316f8bf3b95767b5u, 0x79f7423d23d63e54u, 0x2fe0e4a3a924d515u,
    /*  18 */ 0xf1b030ef6e3d9d8au, 0x59dccdff5cb70a04u, 0xdcd0b007fc4aee3du,
    /*  21 */ 0xcb39e8670939c2bbu, 0xf6fe494da17979a4u, 0x88dee1bcd6b6c843u,
    /*  24 */ 0x56df1c4a336bdef0u, 0xfa9554d4d15f6deeu, 0x8cf3274a2eb18e67u,
    /*  27 */ 0x6422ff8b02a10c7bu, 0xe2145f685fb18f76u, 0x2236940e1f32b467u,
    /*  30 */ 0xac5502e54f9a5b1au, 0x0b976e5ea8065e8cu, 0x478fb76b9ef5477eu,
    /*  33 */ 0xe9dd4774ab1b0fc7u, 0x77e366e113b9108bu, 0x6b493ff7c4db1a40u,
    /*  36 */ 0x9e68750e4ee52ae6u, 0x6177fd70c1b22da2u, 0x3e62947095eeab18u,
    /*  39 */ 0x035780a1956104eeu, 0x8fa1dd0d1049ef23u, 0x5c5e3f77df3dfef1u,
    /*  42 */ 0x7a4af61ef1de2434u, 0xc3e9cdec2bb6595au, 0x887b779f8b6a5cb3u,
    /*  45 */ 0x669e763526687a9eu, 0x4593dba224d4e9bau, 0x1edb4e05b4f10b6fu,
    /*  48 */ 0xda7ba32a64780746u, 0xcea0b2518d386be9u, 0x2a9fe2342d240c0cu,
    /*  51 */ 0x417780ca9b10f2f6u, 0xb309c7086d7dfaf6u, 0x5a0371b140d082fdu,
    /*  54 */ 0x0fe81ebd6858e27du, 0x64c745a22caa76fau, 0xbef7ce646a0e9f93u,
    /*  57 */ 0x87019a6305a2a786u, 0x555a7bf1b6e7be44u, 0x319b1d2a33db1314u,
    /*  60 */ 0xaf8f83b768acacecu, 0x8606f5ad206e5543u, 0x91fe308425e218f3u,
    /*  63 */ 0x51456c98dfbd9718u, 0xd26ea0a2c62b02eau, 0xc6d85fab4988c113u,
    /*  66 */ 0x87d5c441855ce255u, 0x062f72f500a1d387u, 0x7719eda03ce3f633u,
    /*  69 */ 0xbe8cd1f5799baa96u, 0x408314fe98be968au, 0x2f46f8e607c066c1u,
    /*  72 */ 0x2fc4a9a968e5122fu, 0x1edc21b5457ee36eu, 0xc62f455a474f686au,
    /*  75 */ 0xf60309d774a0730bu, 0x2841b10720cd844du, 0xd004f86732ce7335u,
    /*  78 */ 0xdc2d4c0d108441a5u, 0xb541d62006ee691au, 0x94c25dd1006fe259u,
    /*  81 */ 0xa13fcc8c5a74f5cau, 0x64b9af6841915bb3u, 0x8e874d573fded6f9u,
    /*  84 */ 0x8bf094615c178529u, 0x4edbab1d12b4c8fau, 0x7cb9839627c91fecu,
    /*  87 */ 0xab3b532a23a54b22u, 0xabc01b80051d7a73u, 0xd08c10f42e762fc6u,
    /*  90 */ 0x7802054d58be764bu, 0x8f3bc749f5766910u, 0xa15ee3d9fb834f4cu,
    /*  93 */ 0xa14e5505db694c13u, 0xac500f18e382dee6u, 0xc7a431bdf4dad36eu,
    /*  96 */ 0x765295b5946c4ac2u, 0xc20c8302a91e3385u, 0xd668412bee408196u,
    /*  99 */ 0x0960b0706444de53u, 0x11234e213410d4d5u, 0xe5bd8f6dae065570u,
    /* 102 */ 0x2f5daa699dfd988au, 0xf23406309f9c830au, 0x7b48f78902d6ef23u,
    /* 105 */ 0xbf685d378ae88d05u, 0xf1f16100e27031dfu, 0xd56e9d11a5c0c33eu,
    /* 108 */ 0x03b3b27d10aa5d87u, 0x23cc0a9a0fc9b2adu, 0x5cfc40a0871b7fffu,
    /* 111 */ 0x5b20263e84ca8ff4u, 0x1fcb67082c31190du, 0xc94a556d492e3600u,
    /* 114 */ 0x56424ed9bdd06536u, 0x4f61358073ddeccbu, 0x23b679dab9c9533au,
    /* 117 */ 0xd979eb12464f5c5du, 0x71bdd2e74e83aa7eu, 0x91c01e7dd01bf698u,
    /* 120 */ 0x11036c9ec84e65efu, 0x16f226626df7c380u, 0x2ad2d11844a8ab69u,
    /* 123 */ 0x2a17a23752b6b8cau, 0x17612ec2e623c508u, 0x59e9a6dab7628087u,
    /* 126 */ 0xfc413b6872eeb62fu, 0x1ce8aa47d88e40dau, 0x6dc83a3e07ffc811u,
    /* 129 */ 0xaf57c5d20d87e411u, 0x1627e9526ba7fccbu, 0x0ec901841522cd03u,
    /* 132 */ 0x42b6a734c3464fa5u, 0x1d5fcc7be4e3c953u, 0x956d90019117f604u,
    /* 135 */ 0x3e30d36c2b34ded2u, 0x72d90bf5cd962619u, 0xa7903f91c1ddbc61u,
    /* 138 */ 0x9566aca16f9ed9f0u, 0xe3cbfb7a12277d1fu, 0x074dacc85ea9ffe3u,
    /* 141 */ 0x74e13c2a55266ba1u, 0x3b29e6d240f65c4cu, 0x3eb6deaf7d118581u,
    /* 144 */ 0x896d4e0ce4c05174u, 0x8d6a5e1f8913b960u, 0x7269e58ae8f5867au,
    /* 147 */ 0x057e3f6d5be12671u, 0x16db17f61d5daed3u, 0x34360a80fb7068e0u,
    /* 150 */ 0x0e7d4d6d0166533bu, 0x43f49ca09ee6b5c3u, 0xc86766116d136c2cu,
    /* 153 */ 0xfcade0b8ca55f3bcu, 0x3550193e58682e4fu, 0x388d6bb8c4647039u,
    /* 156 */ 0xe528d6c0cbc37eb0u, 0x1809a3abc6c42a38u, 0x1056a7b4d66895f4u,
    /* 159 */ 0x1032b127425cb425u, 0xb9c7dfcec0b0f94bu, 0x398e3d1d4f8cc550u,
    /* 162 */ 0x6565da3adb107408u, 0x78633dc0b8f9c808u, 0x39396bfc8008b705u,
    /* 165 */ 0x2a3954f8d37cfa35u, 0xc209112c35485350u, 0x7a1580524dd2323au,
    /* 168 */ 0x121c10c03a941769u, 0x5c4153d24c9f0455u, 0x2e8819b32f5f8611u,
    /* 171 */ 0x8206a9549aa22f74u, 0xdce2b979fbf1787cu, 0x4229d533c24f0720u,
    /* 174 */ 0xf1288f1bad229500u, 0x727d9ea00a759b33u, 0x8d93452298e2e71bu,
    /* 177 */ 0x39a921de2604541cu, 0x0f9129812b29a065u, 0x5ded443fbce336c1u,
    /* 180 */ 0x47877d16b11f6e74u, 0x30726b10292ee860u, 0x7830185a02c21adbu,
    /* 183 */ 0xd2fcb23afc47e603u, 0xdf0761c40a8a196cu, 0x2b50d48d298559fcu,
    /* 186 */ 0x068a623a9778d2ceu, 0x69803f46b05d678fu, 0xe7ef94af399d6a0eu,
    /* 189 */ 0xb52cbd687c8e03f9u, 0x8a118a481653ecc1u, 0x4e8815952c2b3584u,
    /* 192 */ 0xc33b0d62f9726ba3u, 0x0ff627ee6c733f3cu, 0x59677c36919ab468u,
    /* 195 */ 0x06a5492306ac377bu, 0xbdd9219c78bc07f1u, 0xb2c9e05b83327e03u,
    /* 198 */ 0x323e59450e5acc91u, 0xbdc2c798365733bau, 0xa1338783493c0759u,
    /* 201 */ 0xd8d5bd842855c426u, 0x63df04ccd4e341bau, 0x5d1fd556ac464fc5u,
    /* 204 */ 0x4c4ec0746d2306f5u, 0xb651c1fdc4716ccau, 0x4454bdab9bc7e839u,
    /* 207 */ 0x7ce8097fceb19f9cu, 0x8e67df0a99647f40u, 0x091693a4cb919908u,
    /* 210 */ 0x46104b5ed88c5a29u, 0xfefa9c7922cc8fd8u, 0x57e9db38dae4ed8fu,
    /* 213 */ 0x21278460378c4f3du, 0xb587598fb9cee9f4u, 0x8ba99b584bc7e992u,
    /* 216 */ 0x70ddccc12f9ca346u, 0xc94ef47a12577d92u, 0x44ad84f36328151cu,
    /* 219 */ 0x6e71be6b6bbe55a7u, 0x1b3a68dd475d1a04u, 0xae1459c8ab2ec8d3u,
    /* 222 */ 0x197b043d5fbba6fcu, 0x821349d451ca0c6fu, 0x76da6bc874bc8c10u,
    /* 225 */ 0x61fe9fa58ebea051u, 0x447d8d070276305au, 0x91c3a9318083b733u,
    /* 228 */ 0xc2d72eca2ae349dbu, 0x340c7bf670548723u, 0x513673c31124fb28u,
    /* 231 */ 0x19588b7c4357be8cu, 0xb1f181978ad57e5du, 0x42e803d20c7df3b3u,
    /* 234 */ 0xf99e09fc895592b1u, 0x69e8dbfbc25b3befu, 0x02c1f0b6ad7fa18cu,
    /* 237 */ 0xcaa3ab921172c414u, 0x139ee37b5af5ab74u, 0x545ce19037b9adedu,
    /* 240 */ 0x0c507fe528d45b9fu, 0x0c9d838b5d32c7f6u, 0xf69fd72558808bf6u,
    /* 243 */ 0x9b098ef54bd1ef8cu, 0x20c4e81314e1aea2u, 0x0cbc17759ff5fda1u,
    /* 246 */ 0x58f956177e3252dcu, 0x1b31d0329fd560c8u, 0xdccb20876165d978u,
    /* 249 */ 0x123ab12e662e4387u, 0x4b6ded4df9b9e158u, 0xe78b560f008dd0a5u,
    /* 252 */ 0x86ab78336dc98ed1u, 0x82969ceacc5189e6u, 0xb9341b67b93b4554u,
    /* 255 */ 0xce17b8659577c406u
};

/* Fewest and most one-bits of a mask: k - 2 and k + 2 for the lowest and
 * highest avg_size = 2^k allowed (2^8 and 2^24). */
#define ISS_CDC_MASK_FEWEST 6
#define ISS_CDC_MASK_MOST   26

struct iss_cdc_t {
    iss_cdc_params_t p;
    apr_uint64_t mask_s;   /* k + 2 one-bits: up to avg_size */
    apr_uint64_t mask_l;   /* k - 2 one-bits: after avg_size */
    apr_uint64_t h;        /* gear hash of the bytes after min_size */
    apr_uint32_t pos;      /* bytes consumed since the chunk start */
};

const apr_uint64_t *iss_cdc_gear(void)
{
    return iss_cdc_gear_table;
}

apr_uint64_t iss_cdc_mask(unsigned int bits)
{
    apr_uint64_t m = 0;
    unsigned int i;

    if (bits < ISS_CDC_MASK_FEWEST || bits > ISS_CDC_MASK_MOST)
        return 0;
    for (i = 0; i < bits; i++)
        m |= (apr_uint64_t)1 << (63 - i * 48 / bits);
    return m;
}

const char *iss_cdc_params_check(const iss_cdc_params_t *p)
{
    if (p == NULL)
        return "no chunking parameters";
    if (p->avg_size < ISS_CDC_AVG_LOWEST || p->avg_size > ISS_CDC_AVG_HIGHEST
        || (p->avg_size & (p->avg_size - 1)) != 0)
        return "the average chunk size must be a power of two from 256 B "
               "to 16 MiB";
    if (p->min_size < ISS_CDC_MIN_LOWEST)
        return "the minimum chunk size must be at least 64 bytes";
    if (p->min_size >= p->avg_size)
        return "the minimum chunk size must be less than the average";
    if (p->max_size > ISS_CDC_MAX_HIGHEST)
        return "the maximum chunk size must be at most 64 MiB";
    if (p->max_size / 2 < p->avg_size)
        return "the maximum chunk size must be at least twice the average";
    return NULL;
}

/* Set up @a c for valid parameters @a p, at a chunk start. */
static void iss_cdc_init(iss_cdc_t *c, const iss_cdc_params_t *p)
{
    unsigned int k = 0;

    while (((apr_uint32_t)1 << k) < p->avg_size)
        k++;
    c->p = *p;
    c->mask_s = iss_cdc_mask(k + 2);
    c->mask_l = iss_cdc_mask(k - 2);
    c->h = 0;
    c->pos = 0;
}

/* Hash the bytes from *@a pp to @a stop into *@a hp, testing the hash
 * against @a mask after each byte; returns 1 with *@a pp just after the
 * first byte whose hash matched, else 0 with *@a pp = @a stop.
 *
 * The result is exactly that of the one-byte loop
 *     h = (h << 1) + gear[*p++]; if ((h & mask) == 0) return 1;
 * but four bytes at a time, to shorten the chain of dependent operations:
 * with q2 = 2 g1 + g2, q3 = 2 q2 + g3, q4 = 2 q3 + g4 (independent of h),
 * the hashes after the four bytes are h1 = 2h + g1, h2 = 4h + q2,
 * h3 = 8h + q3, h4 = 16h + q4, so that only h4 waits for h. */
static APR_INLINE int iss_cdc_run(const unsigned char **pp,
                                  const unsigned char *stop,
                                  apr_uint64_t *hp, apr_uint64_t mask)
{
    const apr_uint64_t *gear = iss_cdc_gear_table;
    const unsigned char *p = *pp;
    apr_uint64_t h = *hp;

    while (stop - p >= 4) {
        apr_uint64_t g1 = gear[p[0]], g2 = gear[p[1]];
        apr_uint64_t g3 = gear[p[2]], g4 = gear[p[3]];
        apr_uint64_t q2 = (g1 << 1) + g2;
        apr_uint64_t q3 = (q2 << 1) + g3;
        apr_uint64_t q4 = (q3 << 1) + g4;
        apr_uint64_t h1 = (h << 1) + g1, h2 = (h << 2) + q2;
        apr_uint64_t h3 = (h << 3) + q3, h4 = (h << 4) + q4;

        if ((h1 & mask) == 0) {
            *hp = h1;
            *pp = p + 1;
            return 1;
        }
        if ((h2 & mask) == 0) {
            *hp = h2;
            *pp = p + 2;
            return 1;
        }
        if ((h3 & mask) == 0) {
            *hp = h3;
            *pp = p + 3;
            return 1;
        }
        if ((h4 & mask) == 0) {
            *hp = h4;
            *pp = p + 4;
            return 1;
        }
        h = h4;
        p += 4;
    }
    while (p < stop) {
        h = (h << 1) + gear[*p++];
        if ((h & mask) == 0) {
            *hp = h;
            *pp = p;
            return 1;
        }
    }
    *hp = h;
    *pp = p;
    return 0;
}

/* The scanner behind iss_cdc_feed() and iss_cdc_cut(). */
static apr_size_t iss_cdc_scan(iss_cdc_t *c, const unsigned char *buf,
                               apr_size_t len, int *cut)
{
    const unsigned char *p = buf, *end = buf + len;
    apr_uint32_t pos = c->pos;
    apr_uint64_t h = c->h;
    apr_size_t n;

    *cut = 0;
    if (len == 0)
        return 0;
    /* Cut-point skipping: the first min_size bytes are not hashed. */
    if (pos < c->p.min_size) {
        n = c->p.min_size - pos;
        if (n >= len) {
            c->pos = pos + (apr_uint32_t)len;
            return len;
        }
        p += n;
        pos = c->p.min_size;
    }
    /* Up to avg_size: the harder mask. */
    if (pos < c->p.avg_size) {
        n = c->p.avg_size - pos;
        if (n > (apr_size_t)(end - p))
            n = (apr_size_t)(end - p);
        if (iss_cdc_run(&p, p + n, &h, c->mask_s))
            goto cut;
        pos += (apr_uint32_t)n;
    }
    /* Up to max_size: the easier mask, and a cut at max_size anyway. */
    n = c->p.max_size - pos;
    if (n > (apr_size_t)(end - p))
        n = (apr_size_t)(end - p);
    if (iss_cdc_run(&p, p + n, &h, c->mask_l))
        goto cut;
    pos += (apr_uint32_t)n;
    if (pos == c->p.max_size)
        goto cut;
    c->pos = pos;
    c->h = h;
    return len;

cut:
    c->pos = 0;
    c->h = 0;
    *cut = 1;
    return (apr_size_t)(p - buf);
}

apr_status_t iss_cdc_create(iss_cdc_t **c, const iss_cdc_params_t *p,
                            apr_pool_t *pool)
{
    if (iss_cdc_params_check(p) != NULL)
        return APR_EINVAL;
    *c = apr_palloc(pool, sizeof(**c));
    iss_cdc_init(*c, p);
    return APR_SUCCESS;
}

apr_size_t iss_cdc_feed(iss_cdc_t *c, const unsigned char *buf,
                        apr_size_t len, int *cut)
{
    return iss_cdc_scan(c, buf, len, cut);
}

apr_uint64_t iss_cdc_pending(const iss_cdc_t *c)
{
    return c->pos;
}

void iss_cdc_reset(iss_cdc_t *c)
{
    c->pos = 0;
    c->h = 0;
}

apr_size_t iss_cdc_cut(const iss_cdc_params_t *p, const unsigned char *buf,
                       apr_size_t len)
{
    iss_cdc_t c;
    int cut;

    if (iss_cdc_params_check(p) != NULL)
        return 0;
    iss_cdc_init(&c, p);
    return iss_cdc_scan(&c, buf, len, &cut);
}
