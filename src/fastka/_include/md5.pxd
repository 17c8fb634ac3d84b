# MD5 (RFC 1321) for the compiled modules: HMAC-MD5-96 of VRRPv2 AH (fastka._vrrp) and the
# HTTP_GET body digest (fastka._check). C, static inline: every module that cimports this
# gets its own copy, no cross-module call on the hot path.

from libc.stdint cimport uint8_t, uint32_t, uint64_t


cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    typedef struct {
        uint32_t h[4];
        uint64_t n;          /* bytes hashed */
        uint8_t buf[64];
    } fk_md5_t;

    /* K[i] = floor(|sin(i + 1)| * 2^32); per-round left rotations */
    static const uint32_t fk_md5_k[64] = {
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
        0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
        0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
        0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
        0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
        0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
        0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
    };
    static const uint8_t fk_md5_r[16] = {7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21};

    static inline void fk_md5_block(uint32_t *h, const uint8_t *p) {
        uint32_t m[16], a = h[0], b = h[1], c = h[2], d = h[3], f, t, x;
        int i, g, r;
        for (i = 0; i < 16; i++)
            m[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16
                   | (uint32_t)p[4 * i + 3] << 24;
        for (i = 0; i < 64; i++) {
            if (i < 16) { f = (b & c) | (~b & d); g = i; }
            else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) & 15; }
            else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) & 15; }
            else { f = c ^ (b | ~d); g = (7 * i) & 15; }
            x = a + f + fk_md5_k[i] + m[g];
            r = fk_md5_r[(i >> 4) * 4 + (i & 3)];
            t = d;
            d = c;
            c = b;
            b = b + ((x << r) | (x >> (32 - r)));
            a = t;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
    }

    static inline void fk_md5_init(fk_md5_t *s) {
        s->h[0] = 0x67452301;
        s->h[1] = 0xefcdab89;
        s->h[2] = 0x98badcfe;
        s->h[3] = 0x10325476;
        s->n = 0;
    }

    static inline void fk_md5_update(fk_md5_t *s, const uint8_t *p, size_t n) {
        size_t have = (size_t)(s->n & 63), take;
        s->n += n;
        if (have) {
            take = 64 - have < n ? 64 - have : n;
            memcpy(s->buf + have, p, take);
            p += take;
            n -= take;
            if (have + take < 64)
                return;
            fk_md5_block(s->h, s->buf);
        }
        for (; n >= 64; p += 64, n -= 64)
            fk_md5_block(s->h, p);
        if (n)
            memcpy(s->buf, p, n);
    }

    static inline void fk_md5_final(fk_md5_t *s, uint8_t *out) {
        uint8_t pad[72] = {0x80};
        uint64_t bits = s->n * 8;
        size_t have = (size_t)(s->n & 63), padlen = have < 56 ? 56 - have : 120 - have;
        int i;
        for (i = 0; i < 8; i++)
            pad[padlen + i] = (uint8_t)(bits >> (8 * i));
        fk_md5_update(s, pad, padlen + 8);
        for (i = 0; i < 16; i++)
            out[i] = (uint8_t)(s->h[i >> 2] >> (8 * (i & 3)));
    }
    """
    ctypedef struct fk_md5_t:
        pass
    void fk_md5_init(fk_md5_t *s) noexcept nogil
    void fk_md5_update(fk_md5_t *s, const uint8_t *p, size_t n) noexcept nogil
    void fk_md5_final(fk_md5_t *s, uint8_t *out) noexcept nogil
