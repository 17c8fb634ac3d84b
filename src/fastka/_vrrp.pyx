# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False, binding=False
"""VRRP codec, compiled. The specification is the pure-Python reference
``fastka._vrrp_py`` (same public API, same results); read its docstrings.

The C-level functions declared in ``_vrrp.pxd`` do the work without the GIL and without
Python objects; the ``def`` functions only convert arguments. Checksums are summed in
native byte order with 64-bit loads (RFC 1071 §2(B): the one's-complement sum is
byte-order independent; a word's carry out weighs 1, as the end-around carry) and swapped
once at the end.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_CheckExact, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongAndOverflow
from cpython.number cimport PyNumber_AsSsize_t as _index
from cpython.ref cimport PyObject
from libc.stdint cimport int16_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcmp, memcpy, memset

from fastka._include.md5 cimport fk_md5_final, fk_md5_init, fk_md5_t, fk_md5_update

import ipaddress as _ipaddress
from functools import partial

from fastka.errors import VrrpDecodeError
from fastka.vrrp.constants import Reason as _Reason

cdef extern from "Python.h":
    # exc NULL: clamp out-of-range values instead of raising (then our range check says ValueError)
    Py_ssize_t PyNumber_AsSsize_t(object o, PyObject *exc) except? -1

cdef extern from "Python.h":
    # Hot entry points are plain METH_FASTCALL builtins: a Cython ``def`` spends more on
    # argument bookkeeping than the codec spends on the packet.
    ctypedef struct PyMethodDef:
        const char *ml_name
        void *ml_meth
        int ml_flags
        const char *ml_doc
    int METH_FASTCALL
    int METH_KEYWORDS
    object PyCFunction_NewEx(PyMethodDef *ml, object self, object module)
    Py_ssize_t PyTuple_GET_SIZE(PyObject *)
    Py_ssize_t Py_REFCNT(object)
    PyObject *PyTuple_GET_ITEM(PyObject *, Py_ssize_t)

cdef extern from "<sys/socket.h>":
    int AF_INET
    int AF_INET6

cdef extern from *:
    """
    #include <string.h>
    #include <stdint.h>
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    #define FK_LITTLE_ENDIAN 0
    #else
    #define FK_LITTLE_ENDIAN 1
    #endif
    /* A folded native-order sum as the big-endian value it stands for. */
    static inline uint16_t fk_be16(uint16_t native) {
    #if FK_LITTLE_ENDIAN
        return (uint16_t)((native >> 8) | (native << 8));
    #else
        return native;
    #endif
    }
    static inline uint32_t fk_load32(const uint8_t *p) { uint32_t w; memcpy(&w, p, 4); return w; }
    static inline uint16_t fk_load16(const uint8_t *p) { uint16_t w; memcpy(&w, p, 2); return w; }
    static inline uint64_t fk_load64(const uint8_t *p) { uint64_t w; memcpy(&w, p, 8); return w; }
    /* bytes 0-5 of a native 64-bit load (a VRRP header without its checksum field) */
    #if FK_LITTLE_ENDIAN
    #define FK_HEAD_MASK 0x0000FFFFFFFFFFFFULL
    #else
    #define FK_HEAD_MASK 0xFFFFFFFFFFFF0000ULL
    #endif
    static inline void fk_store16(uint8_t *p, uint16_t w) { memcpy(p, &w, 2); }
    static inline void fk_store32(uint8_t *p, uint32_t w) { memcpy(p, &w, 4); }
    /* The native 32-bit word that holds these four bytes in memory order: headers are
       built in registers and summed from there, not stored byte by byte and loaded back
       as words (a load spanning several narrower stores waits for them to retire). */
    static inline uint32_t fk_word4(unsigned b0, unsigned b1, unsigned b2, unsigned b3) {
    #if FK_LITTLE_ENDIAN
        return (uint32_t)(b0 & 0xFF) | (uint32_t)(b1 & 0xFF) << 8 | (uint32_t)(b2 & 0xFF) << 16
               | (uint32_t)(b3 & 0xFF) << 24;
    #else
        return (uint32_t)(b0 & 0xFF) << 24 | (uint32_t)(b1 & 0xFF) << 16 | (uint32_t)(b2 & 0xFF) << 8
               | (uint32_t)(b3 & 0xFF);
    #endif
    }
    /* memcpy for the short runs of an advert, inline (no call): whole words, the last
       one overlapping; libc's memcpy for long runs. */
    static inline void fk_copy(uint8_t *d, const uint8_t *s, Py_ssize_t n) {
        uint64_t x, y;
        uint32_t u, v;
        if (n > 64) { memcpy(d, s, (size_t)n); return; }
        if (n >= 8) {
            memcpy(&y, s + n - 8, 8);
            while (n > 8) { memcpy(&x, s, 8); memcpy(d, &x, 8); d += 8; s += 8; n -= 8; }
            memcpy(d + n - 8, &y, 8);
            return;
        }
        if (n >= 4) {
            memcpy(&u, s, 4); memcpy(&v, s + n - 4, 4);
            memcpy(d, &u, 4); memcpy(d + n - 4, &v, 4);
            return;
        }
        while (n-- > 0) *d++ = *s++;
    }
    /* Put a METH_FASTCALL method into an extension type (Cython's own methods parse
       their arguments with more bookkeeping than a hot call can afford). */
    static int fk_install_method(PyObject *type, PyMethodDef *m) {
        PyTypeObject *t = (PyTypeObject *)type;
        PyObject *d = PyDescr_NewMethod(t, m);
        int r;
        if (d == NULL) return -1;
        r = PyDict_SetItemString(t->tp_dict, m->ml_name, d);
        Py_DECREF(d);
        PyType_Modified(t);
        return r;
    }
    /* Equality of short byte strings (a packet against the one accepted last): whole
       words, the last one overlapping (equal is the common case, so no early exit);
       16-byte vectors where SSE2 is there (every x86-64). */
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    static inline int fk_equal(const uint8_t *a, const uint8_t *b, Py_ssize_t n) {
        uint64_t x, y, diff = 0;
        if (n > 256)  /* libc's memcmp wins on long runs (many IPv6 addresses) */
            return memcmp(a, b, (size_t)n) == 0;
    #if defined(__SSE2__)
        if (n >= 16) {
            const uint8_t *a_last = a + n - 16, *b_last = b + n - 16;
            __m128i d = _mm_setzero_si128();
            while (a < a_last) {
                d = _mm_or_si128(d, _mm_xor_si128(_mm_loadu_si128((const __m128i *)a),
                                                  _mm_loadu_si128((const __m128i *)b)));
                a += 16;
                b += 16;
            }
            d = _mm_or_si128(d, _mm_xor_si128(_mm_loadu_si128((const __m128i *)a_last),
                                              _mm_loadu_si128((const __m128i *)b_last)));
            return _mm_movemask_epi8(_mm_cmpeq_epi8(d, _mm_setzero_si128())) == 0xFFFF;
        }
    #endif
        if (n >= 8) {
            const uint8_t *a_last = a + n - 8, *b_last = b + n - 8;
            while (a < a_last) { memcpy(&x, a, 8); memcpy(&y, b, 8); diff |= x ^ y; a += 8; b += 8; }
            memcpy(&x, a_last, 8); memcpy(&y, b_last, 8);
            return (diff | (x ^ y)) == 0;
        }
        if (n >= 4) {
            uint32_t u, v, w, z;
            memcpy(&u, a, 4); memcpy(&v, b, 4); memcpy(&w, a + n - 4, 4); memcpy(&z, b + n - 4, 4);
            return ((u ^ v) | (w ^ z)) == 0;
        }
        while (n-- > 0) diff |= (uint64_t)(*a++ ^ *b++);
        return diff == 0;
    }
    /* Exact small ints without a call (argument conversion is most of a 40 ns budget);
       0 = not handled here, take the general path. */
    static inline int fk_small_long(PyObject *o, long *out) {
    #if PY_VERSION_HEX >= 0x030C0000
        if (PyLong_CheckExact(o) && PyUnstable_Long_IsCompact((PyLongObject *)o)) {
            *out = (long)PyUnstable_Long_CompactValue((PyLongObject *)o);
            return 1;
        }
    #else
        if (PyLong_CheckExact(o)) {
            Py_ssize_t size = Py_SIZE(o);
            if (size == 0) { *out = 0; return 1; }
            if (size == 1) { *out = (long)((PyLongObject *)o)->ob_digit[0]; return 1; }
            if (size == -1) { *out = -(long)((PyLongObject *)o)->ob_digit[0]; return 1; }
        }
    #endif
        return 0;
    }
    """
    bint FK_LITTLE_ENDIAN
    uint16_t fk_be16(uint16_t) noexcept nogil
    uint32_t fk_load32(const uint8_t *) noexcept nogil
    uint16_t fk_load16(const uint8_t *) noexcept nogil
    uint64_t fk_load64(const uint8_t *) noexcept nogil
    uint64_t FK_HEAD_MASK
    void fk_store16(uint8_t *, uint16_t) noexcept nogil
    void fk_store32(uint8_t *, uint32_t) noexcept nogil
    uint32_t fk_word4(unsigned, unsigned, unsigned, unsigned) noexcept nogil
    void fk_copy(uint8_t *, const uint8_t *, Py_ssize_t) noexcept nogil
    bint fk_equal(const uint8_t *, const uint8_t *, Py_ssize_t) noexcept nogil
    int fk_install_method(object, PyMethodDef *) except -1
    bint fk_small_long(object, long *) noexcept
    # the same on borrowed pointers, for the argument fast paths (no reference counting)
    bint _p_small_long "fk_small_long"(PyObject *, long *) noexcept
    bint _p_bytes_exact "PyBytes_CheckExact"(PyObject *) noexcept
    const uint8_t *_p_bytes_data "(const uint8_t *)PyBytes_AS_STRING"(PyObject *) noexcept
    Py_ssize_t _p_bytes_len "PyBytes_GET_SIZE"(PyObject *) noexcept
    bint _p_bytearray_exact "PyByteArray_CheckExact"(PyObject *) noexcept
    uint8_t *_p_bytearray_data "(uint8_t *)PyByteArray_AS_STRING"(PyObject *) noexcept
    Py_ssize_t _p_bytearray_len "PyByteArray_GET_SIZE"(PyObject *) noexcept
    PyObject *_p_True "Py_True"
    PyObject *_p_False "Py_False"


# Values of fastka.vrrp.constants.Reason and the FLAG_* bits (checked by the tests).
cdef enum:
    TOO_SHORT = 1
    BAD_IP_HEADER = 2
    BAD_IP_PROTOCOL = 3
    UNKNOWN_VRID = 4
    AH_UNEXPECTED = 5
    AH_MISSING = 6
    BAD_LENGTH = 7
    BAD_TTL = 8
    BAD_VERSION = 9
    BAD_AUTH_TYPE = 10
    AUTH_TYPE_MISMATCH = 11
    AUTH_DATA_MISMATCH = 12
    BAD_AH_HEADER = 13
    BAD_AH_ICV = 14
    BAD_AH_SPI = 15
    AH_SEQUENCE = 16
    ADVER_INT_MISMATCH = 17
    BAD_TYPE = 18
    BAD_IP_TOTAL_LENGTH = 19
    BAD_CHECKSUM = 20
    EXPECTED_UNICAST = 21
    EXPECTED_MULTICAST = 22
    ADDRESS_MISMATCH = 23

cdef enum:
    FLAG_MULTICAST = 0x01
    FLAG_CHECKSUM_UNVERIFIED = 0x02
    FLAG_OLD_UNICAST_CHECKSUM = 0x04
    FLAG_AUTH_UNVERIFIED = 0x08
    FLAG_ADVER_INT_DIFFERS = 0x10
    FLAG_ADDRESS_MISMATCH = 0x20
    FLAG_AH = 0x40
    FLAG_UNCHANGED = 0x80

cdef enum:
    IPPROTO_VRRP = 112
    IPPROTO_AH = 51
    VRRP_AUTH_PASS = 1
    VRRP_AUTH_AH = 2
    MIN_IP_PAYLOAD = 46  # Ethernet pads frames to 60 bytes

_REASON_CODES = {
    "TOO_SHORT": TOO_SHORT, "BAD_IP_HEADER": BAD_IP_HEADER, "BAD_IP_PROTOCOL": BAD_IP_PROTOCOL,
    "UNKNOWN_VRID": UNKNOWN_VRID, "AH_UNEXPECTED": AH_UNEXPECTED, "AH_MISSING": AH_MISSING,
    "BAD_LENGTH": BAD_LENGTH, "BAD_TTL": BAD_TTL, "BAD_VERSION": BAD_VERSION,
    "BAD_AUTH_TYPE": BAD_AUTH_TYPE, "AUTH_TYPE_MISMATCH": AUTH_TYPE_MISMATCH,
    "AUTH_DATA_MISMATCH": AUTH_DATA_MISMATCH, "BAD_AH_HEADER": BAD_AH_HEADER,
    "BAD_AH_ICV": BAD_AH_ICV, "BAD_AH_SPI": BAD_AH_SPI, "AH_SEQUENCE": AH_SEQUENCE,
    "ADVER_INT_MISMATCH": ADVER_INT_MISMATCH, "BAD_TYPE": BAD_TYPE,
    "BAD_IP_TOTAL_LENGTH": BAD_IP_TOTAL_LENGTH, "BAD_CHECKSUM": BAD_CHECKSUM,
    "EXPECTED_UNICAST": EXPECTED_UNICAST, "EXPECTED_MULTICAST": EXPECTED_MULTICAST,
    "ADDRESS_MISMATCH": ADDRESS_MISMATCH,
}
_FLAG_BITS = {
    "FLAG_MULTICAST": FLAG_MULTICAST, "FLAG_CHECKSUM_UNVERIFIED": FLAG_CHECKSUM_UNVERIFIED,
    "FLAG_OLD_UNICAST_CHECKSUM": FLAG_OLD_UNICAST_CHECKSUM, "FLAG_AUTH_UNVERIFIED": FLAG_AUTH_UNVERIFIED,
    "FLAG_ADVER_INT_DIFFERS": FLAG_ADVER_INT_DIFFERS, "FLAG_ADDRESS_MISMATCH": FLAG_ADDRESS_MISMATCH,
    "FLAG_AH": FLAG_AH, "FLAG_UNCHANGED": FLAG_UNCHANGED,
}

cdef object _EMPTY = b""
cdef object _ZERO = 0
cdef object _MINUS_ONE = -1
cdef tuple _REASONS = (None,) + tuple(_Reason(i) for i in range(1, ADDRESS_MISMATCH + 1))
cdef object _IPv4Address = _ipaddress.IPv4Address
cdef object _IPv6Address = _ipaddress.IPv6Address
cdef uint8_t _MCAST4[4]
_MCAST4[:] = [224, 0, 0, 18]

__all__ = [
    "Advert", "Batch", "Expect", "Template", "VridTable", "decode", "decode_ipv4", "encode", "encode_into",
    "encode_ipv4", "encode_ipv4_into", "inet_checksum", "ipv4_header_into", "update_priority",
    "vrrp_checksum",
]


# ============================================================================ checksums

cdef uint64_t vrrp_sum(const uint8_t *p, Py_ssize_t n, uint64_t acc) noexcept nogil:
    return _sum(p, n, acc)


cdef inline uint64_t _sum(const uint8_t *p, Py_ssize_t n, uint64_t acc) noexcept nogil:
    # 64-bit words with their carries counted apart (2**64 = 1 modulo 0xFFFF, so a carry
    # weighs 1, like the end-around carry of RFC 1071); the result is congruent to the
    # plain sum modulo 0xFFFF, and 0 only if every byte is (what _fold needs).
    cdef uint64_t w, carry = 0
    while n >= 16:
        w = fk_load64(p)
        acc += w
        carry += acc < w
        w = fk_load64(p + 8)
        acc += w
        carry += acc < w
        p += 16
        n -= 16
    if n >= 8:
        w = fk_load64(p)
        acc += w
        carry += acc < w
        p += 8
        n -= 8
    acc = (acc & 0xFFFFFFFFU) + (acc >> 32) + carry  # < 2**34: the tail cannot overflow
    if n >= 4:
        acc += fk_load32(p)
        p += 4
        n -= 4
    if n >= 2:
        acc += fk_load16(p)
        p += 2
        n -= 2
    if n:
        # the odd byte is the high-order byte of a zero-padded big-endian word
        acc += (<uint64_t>p[0]) if FK_LITTLE_ENDIAN else (<uint64_t>p[0] << 8)
    return acc


cdef uint16_t vrrp_fold(uint64_t acc) noexcept nogil:
    return _fold(acc)


cdef inline uint16_t _fold(uint64_t acc) noexcept nogil:
    acc = (acc & 0xFFFFFFFFU) + (acc >> 32)
    acc = (acc & 0xFFFFFFFFU) + (acc >> 32)
    acc = (acc & 0xFFFF) + (acc >> 16)
    acc = (acc & 0xFFFF) + (acc >> 16)
    acc = (acc & 0xFFFF) + (acc >> 16)
    return <uint16_t>acc


cdef inline uint64_t _pseudo_sum(const uint8_t *src, const uint8_t *dst, int alen,
                                 Py_ssize_t length) noexcept nogil:
    # IPv4 (RFC 768 style): zero, protocol, 16-bit length; IPv6 (RFC 8200 §8.1): 32-bit
    # length, three zero bytes, next header. As big-endian 16-bit words: the protocol,
    # the length's halves; fk_be16 turns each into the native word the sums use.
    cdef uint64_t acc = _sum(src, alen, 0)
    acc = _sum(dst, alen, acc)
    acc += fk_be16(IPPROTO_VRRP) + fk_be16(<uint16_t>length)
    if alen != 4:
        acc += fk_be16(<uint16_t>(length >> 16))
    return acc


cdef uint16_t vrrp_checksum_c(const uint8_t *msg, Py_ssize_t n, const uint8_t *src,
                              const uint8_t *dst, int alen) noexcept nogil:
    return _checksum(msg, n, src, dst, alen)


cdef inline uint16_t _checksum(const uint8_t *msg, Py_ssize_t n, const uint8_t *src,
                               const uint8_t *dst, int alen) noexcept nogil:
    # the first 8 bytes as one word with the checksum field (bytes 6-7) masked out, then
    # the rest (n >= 8)
    cdef uint64_t acc = 0, head = fk_load64(msg) & FK_HEAD_MASK
    if src != NULL and dst != NULL:
        acc = _pseudo_sum(src, dst, alen, n)
    acc += (head & 0xFFFFFFFFU) + (head >> 32)
    acc = _sum(msg + 8, n - 8, acc)
    return fk_be16(<uint16_t>~_fold(acc))


cdef uint16_t vrrp_update_priority(uint8_t *msg, int priority) noexcept nogil:
    # RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), m the 16-bit word holding the priority
    cdef uint32_t old_word = (<uint32_t>msg[2] << 8) | msg[3]
    cdef uint32_t new_word = (<uint32_t>priority << 8) | msg[3]
    cdef uint32_t hc = (<uint32_t>msg[6] << 8) | msg[7]
    cdef uint64_t total = (~hc & 0xFFFF) + (~old_word & 0xFFFF) + new_word
    cdef uint16_t csum = <uint16_t>~_fold(total)
    msg[2] = <uint8_t>priority
    msg[6] = <uint8_t>(csum >> 8)
    msg[7] = <uint8_t>csum
    return csum


# ============================================================================ HMAC-MD5 (RFC 1321, RFC 2104)

cdef void _hmac_md5(const uint8_t *key, Py_ssize_t klen, const uint8_t *p1, Py_ssize_t n1,
                    const uint8_t *p2, Py_ssize_t n2, const uint8_t *p3, Py_ssize_t n3,
                    uint8_t *out) noexcept nogil:
    # RFC 2104 with a key of at most one block (Keepalived's is the 8-byte auth_pass)
    cdef uint8_t k[64]
    cdef uint8_t inner[16]
    cdef fk_md5_t c
    cdef int i
    memset(k, 0, 64)
    memcpy(k, key, klen)
    for i in range(64):
        k[i] ^= 0x36
    fk_md5_init(&c)
    fk_md5_update(&c, k, 64)
    fk_md5_update(&c, p1, n1)
    fk_md5_update(&c, p2, n2)
    fk_md5_update(&c, p3, n3)
    fk_md5_final(&c, inner)
    for i in range(64):
        k[i] ^= 0x36 ^ 0x5c
    fk_md5_init(&c)
    fk_md5_update(&c, k, 64)
    fk_md5_update(&c, inner, 16)
    fk_md5_final(&c, out)


cdef inline bint _is_mcast(const uint8_t *a, int alen) noexcept nogil:
    return (a[0] & 0xF0) == 0xE0 if alen == 4 else a[0] == 0xFF


cdef inline bint _equal_ct(const uint8_t *a, const uint8_t *b, int n) noexcept nogil:
    # constant time, as Keepalived compares passwords and ICVs
    cdef uint8_t diff = 0
    cdef int i
    for i in range(n):
        diff |= a[i] ^ b[i]
    return diff == 0


cdef void _ah_icv(const uint8_t *p, Py_ssize_t ihl, Py_ssize_t end, const uint8_t *key,
                  uint8_t *out16) noexcept nogil:
    # RFC 2402 §3.3.3.1: IPv4 header with TOS, flags/fragment and checksum zeroed (TTL
    # too for unicast, as Keepalived), the AH header with a zero ICV, then the advert.
    cdef uint8_t hdr[60]
    cdef uint8_t ah[24]
    memcpy(hdr, p, ihl)
    hdr[1] = 0
    hdr[6] = 0
    hdr[7] = 0
    hdr[10] = 0
    hdr[11] = 0
    if not _is_mcast(hdr + 16, 4):
        hdr[8] = 0
    memcpy(ah, p + ihl, 12)
    memset(ah + 12, 0, 12)
    _hmac_md5(key, 8, hdr, ihl, ah, 24, p + ihl + 24, end - ihl - 24, out16)


cdef void vrrp_ah_sign(uint8_t *pkt, Py_ssize_t n, const uint8_t *key, uint32_t seq) noexcept nogil:
    cdef Py_ssize_t ihl = (pkt[0] & 0x0F) * 4
    cdef uint8_t *ah = pkt + ihl
    cdef uint8_t icv[16]
    ah[0] = IPPROTO_VRRP
    ah[1] = 4  # payload length in 32-bit words minus 2 (RFC 2402 §2.2)
    ah[2] = 0
    ah[3] = 0
    memcpy(ah + 4, pkt + 12, 4)  # SPI = source address, as Keepalived
    ah[8] = <uint8_t>(seq >> 24)
    ah[9] = <uint8_t>(seq >> 16)
    ah[10] = <uint8_t>(seq >> 8)
    ah[11] = <uint8_t>seq
    memset(ah + 12, 0, 12)
    _ah_icv(pkt, ihl, n, key, icv)
    memcpy(ah + 12, icv, 12)


# ============================================================================ encoding (C)

cdef Py_ssize_t vrrp_encode(uint8_t *out, int version, int vrid, int priority, int adver_int,
                            const uint8_t *addrs, Py_ssize_t addrs_len, int auth_type,
                            const uint8_t *auth, Py_ssize_t auth_len, const uint8_t *src,
                            const uint8_t *dst, int alen, bint pseudo_header) noexcept nogil:
    return _encode(out, version, vrid, priority, adver_int, addrs, addrs_len, auth_type, auth,
                   auth_len, src, dst, alen, pseudo_header)


cdef inline Py_ssize_t _encode(uint8_t *out, int version, int vrid, int priority, int adver_int,
                               const uint8_t *addrs, Py_ssize_t addrs_len, int auth_type,
                               const uint8_t *auth, Py_ssize_t auth_len, const uint8_t *src,
                               const uint8_t *dst, int alen, bint pseudo_header) noexcept nogil:
    # The checksum is summed from the inputs (header words in registers, the caller's
    # addresses), never from what was just stored (see fk_word4).
    cdef Py_ssize_t length = 8 + addrs_len
    cdef uint64_t acc, trailer = 0
    cdef uint32_t w0, w1
    cdef int count = <int>(addrs_len >> (2 if alen == 4 else 4))  # alen is 4 or 16: no division
    if version == 2:
        w0 = fk_word4(0x21, vrid, priority, count)
        w1 = fk_word4(auth_type, adver_int, 0, 0)
    else:
        w0 = fk_word4(0x31, vrid, priority, count)
        w1 = fk_word4((adver_int >> 8) & 0x0F, adver_int, 0, 0)
    fk_store32(out, w0)
    fk_store32(out + 4, w1)
    fk_copy(out + 8, addrs, addrs_len)
    acc = _sum(addrs, addrs_len, <uint64_t>w0 + w1)
    if version == 2:
        if auth_type == VRRP_AUTH_PASS and auth_len > 0:
            memcpy(&trailer, auth, auth_len)  # zero-padded to 8 bytes
            acc += (trailer & 0xFFFFFFFFU) + (trailer >> 32)
        memcpy(out + length, &trailer, 8)
        length += 8
    elif pseudo_header or alen == 16:
        acc += _pseudo_sum(src, dst, alen, length)
    fk_store16(out + 6, <uint16_t>~_fold(acc))
    return length


cdef void vrrp_ipv4_header(uint8_t *out, const uint8_t *src, const uint8_t *dst, int ttl,
                           int ident, int protocol, int total_len) noexcept nogil:
    # version/IHL 0x45; TOS 0xc0 (Keepalived: IPTOS_PREC_INTERNETCONTROL); flags/fragment 0
    # (DF clear, as Keepalived); words built in registers and summed from there
    cdef uint32_t w0 = fk_word4(0x45, 0xC0, total_len >> 8, total_len)
    cdef uint32_t w1 = fk_word4(ident >> 8, ident, 0, 0)
    cdef uint32_t w2 = fk_word4(ttl, protocol, 0, 0)
    cdef uint32_t s = fk_load32(src), d = fk_load32(dst)
    fk_store32(out, w0)
    fk_store32(out + 4, w1)
    fk_store32(out + 8, w2)
    fk_store32(out + 12, s)
    fk_store32(out + 16, d)
    fk_store16(out + 10, <uint16_t>~_fold(<uint64_t>w0 + w1 + w2 + s + d))


# ============================================================================ receiving (C)

cdef int vrrp_parse_ipv4(const uint8_t *p, Py_ssize_t n, vrrp_pkt_t *pkt) noexcept nogil:
    return _parse_ipv4(p, n, pkt)


cdef inline int _parse_ipv4(const uint8_t *p, Py_ssize_t n, vrrp_pkt_t *pkt) noexcept nogil:
    cdef Py_ssize_t ihl, mo, ah, tot
    if n < 20:
        return TOO_SHORT
    ihl = (p[0] & 0x0F) * 4
    if (p[0] >> 4) != 4 or ihl < 20 or ihl > n:
        return BAD_IP_HEADER
    if p[9] == IPPROTO_AH:
        ah = ihl
        mo = ihl + 24
    elif p[9] == IPPROTO_VRRP:
        ah = -1
        mo = ihl
    else:
        return BAD_IP_PROTOCOL
    if n < mo + 8:
        return TOO_SHORT
    tot = (<Py_ssize_t>p[2] << 8) | p[3]
    pkt.data = p
    pkt.ihl = ihl
    pkt.ah = ah
    pkt.mo = mo
    pkt.end = tot if (mo + 8 <= tot and tot < n and n <= MIN_IP_PAYLOAD) else n
    pkt.family = AF_INET
    pkt.ttl = p[8]
    pkt.src = p + 12
    pkt.dst = p + 16
    return 0


cdef int vrrp_check(vrrp_pkt_t *pkt, vrrp_expect_t *e, bint track) noexcept nogil:
    cdef const uint8_t *p = pkt.data
    cdef const uint8_t *m = p + pkt.mo
    cdef const uint8_t *a
    cdef int ver = m[0] >> 4
    cdef int count = m[3]
    cdef int alen = 4 if pkt.family == AF_INET else 16
    cdef int flags = 0
    cdef int mcast = -1
    cdef int unicast = e.unicast
    cdef int want, v, at, i, j
    cdef Py_ssize_t length
    cdef int64_t seq = -1
    cdef uint64_t acc
    cdef uint8_t icv[16]
    cdef bint ok, found
    if pkt.dst != NULL:
        mcast = _is_mcast(pkt.dst, alen)
        if mcast:
            flags |= FLAG_MULTICAST
    # IPv6: the dispatcher drops the wrong kind of destination before any check
    if pkt.family == AF_INET6 and mcast >= 0 and unicast >= 0 and mcast == unicast:
        return EXPECTED_UNICAST if unicast else EXPECTED_MULTICAST
    # 1. AH header present iff auth type AH
    if pkt.ihl:
        want = e.auth_type if e.auth_type >= 0 else (m[4] if ver == 2 else 0)
        if pkt.ah >= 0 and want != VRRP_AUTH_AH:
            return AH_UNEXPECTED
        if pkt.ah < 0 and want == VRRP_AUTH_AH:
            return AH_MISSING
    # 2. length against the address count (the instance's version decides the layout)
    v = e.version if e.version else ver
    length = 8 + alen * count + (8 if v == 2 else 0)
    if pkt.end - pkt.mo != length:
        return BAD_LENGTH
    # 3. TTL / hop limit, multicast only
    if pkt.ttl >= 0 and pkt.ttl != 255 and ((not unicast) if unicast >= 0 else (mcast != 0)):
        return BAD_TTL
    # 4. version
    if (e.version and ver != e.version) or (ver != 2 and ver != 3) or (ver == 2 and alen == 16):
        return BAD_VERSION
    if ver == 2:
        at = m[4]
        if at > VRRP_AUTH_AH:
            return BAD_AUTH_TYPE
        if e.auth_type >= 0 and at != e.auth_type:
            return AUTH_TYPE_MISMATCH
        if at == VRRP_AUTH_PASS:
            if e.auth_type == VRRP_AUTH_PASS:
                if not _equal_ct(p + pkt.end - 8, e.auth_data, 8):
                    return AUTH_DATA_MISMATCH
            else:
                flags |= FLAG_AUTH_UNVERIFIED
        elif at == VRRP_AUTH_AH and pkt.ah >= 0:
            a = p + pkt.ah
            if a[0] != IPPROTO_VRRP or a[1] != 4:
                return BAD_AH_HEADER
            if e.auth_type == VRRP_AUTH_AH:
                _ah_icv(p, pkt.ihl, pkt.end, e.auth_data, icv)
                if not _equal_ct(icv, a + 12, 12):
                    return BAD_AH_ICV
            else:
                flags |= FLAG_AUTH_UNVERIFIED
            if memcmp(a + 4, p + 12, 4) != 0:
                return BAD_AH_SPI
            seq = ((<int64_t>a[8] << 24) | (<int64_t>a[9] << 16) | (<int64_t>a[10] << 8) | a[11])
            if seq <= e.ah_last_seq:
                return AH_SEQUENCE
        elif at == VRRP_AUTH_AH:  # a VRRP message given without its IP header: AH unseen
            flags |= FLAG_AUTH_UNVERIFIED
        if e.adver_int and m[5] != e.adver_int:
            return ADVER_INT_MISMATCH
    # 11. type
    if (m[0] & 0x0F) != 1:
        return BAD_TYPE
    # 12. IPv4 total length against what arrived
    if pkt.ihl and ((<Py_ssize_t>p[2] << 8) | p[3]) != pkt.end:
        return BAD_IP_TOTAL_LENGTH
    # 13. v3 interval: accepted, flagged (RFC 5798 learns Master_Adver_Interval)
    if ver == 3 and e.adver_int and (((m[4] & 0x0F) << 8) | m[5]) != e.adver_int:
        flags |= FLAG_ADVER_INT_DIFFERS
    # 14. checksum
    acc = _sum(m, length, 0)
    if ver == 2:
        if _fold(acc) != 0xFFFF:
            return BAD_CHECKSUM
    elif e.v3_checksum_as_v2 or pkt.src == NULL or pkt.dst == NULL:
        flags |= FLAG_CHECKSUM_UNVERIFIED
    elif _fold(acc + _pseudo_sum(pkt.src, pkt.dst, alen, length)) != 0xFFFF:
        if (alen == 4 and mcast == 0 and e.old_unicast_checksum
                and _fold(acc + _pseudo_sum(pkt.src, _MCAST4, 4, length)) == 0xFFFF):
            flags |= FLAG_OLD_UNICAST_CHECKSUM
        else:
            return BAD_CHECKSUM
    # 15. destination kind (IPv4; IPv6 was done above)
    if alen == 4 and mcast >= 0 and unicast >= 0 and mcast == unicast:
        return EXPECTED_UNICAST if unicast else EXPECTED_MULTICAST
    # 17. address list: same count, every expected address present
    if e.addresses_len >= 0:
        ok = e.addresses_len == alen * count
        j = 0
        while ok and j < e.addresses_len:
            found = False
            i = 8
            while not found and i < length:
                found = memcmp(e.addresses + j, m + i, alen) == 0
                i += alen
            ok = found
            j += alen
        if not ok:
            if e.strict_addresses:
                return ADDRESS_MISMATCH
            flags |= FLAG_ADDRESS_MISMATCH
    if pkt.ah >= 0:
        flags |= FLAG_AH
        if track:
            e.ah_last_seq = seq
    elif track and _remember(e, pkt, flags):
        flags |= FLAG_UNCHANGED
    pkt.msg_len = length
    pkt.flags = flags
    pkt.ah_seq = seq
    return 0


cdef int _signature(vrrp_pkt_t *pkt, uint8_t *head, const uint8_t **ptr, Py_ssize_t *n) noexcept nogil:
    """The pieces of the signature of fastka._vrrp_py._signature; returns their number."""
    cdef const uint8_t *p = pkt.data
    cdef int alen = 4 if pkt.family == AF_INET else 16
    if pkt.ihl:
        ptr[0] = p
        n[0] = 4
        ptr[1] = p + 8
        n[1] = 2
        ptr[2] = p + 12
        n[2] = pkt.end - 12
        return 3
    head[0] = 0
    head[1] = <uint8_t>(alen if pkt.src != NULL else 0)
    head[2] = <uint8_t>(alen if pkt.dst != NULL else 0)
    head[3] = <uint8_t>((pkt.ttl >> 8) & 0xFF)
    head[4] = <uint8_t>(pkt.ttl & 0xFF)
    ptr[0] = head
    n[0] = 5
    ptr[1] = pkt.src
    n[1] = head[1]
    ptr[2] = pkt.dst
    n[2] = head[2]
    ptr[3] = p + pkt.mo
    n[3] = pkt.end - pkt.mo
    return 4


cdef inline const uint8_t *_sig(const vrrp_expect_t *e) noexcept nogil:
    """Where e's signature is (when it has one)."""
    if e.last_len <= VRRP_SIG_INLINE:
        return &e.sig_inline[0]
    return e.last_sig


cdef bint _same(vrrp_expect_t *e, vrrp_pkt_t *pkt) noexcept nogil:
    """Is this packet the one ``e`` accepted last?"""
    cdef uint8_t head[5]
    cdef const uint8_t *ptr[4]
    cdef Py_ssize_t n[4]
    cdef int k = _signature(pkt, head, ptr, n), i
    cdef Py_ssize_t total = 0
    for i in range(k):
        total += n[i]
    if e.last_len != total:
        return False
    cdef const uint8_t *s = _sig(e)
    total = 0
    for i in range(k):
        if not fk_equal(s + total, ptr[i], n[i]):
            return False
        total += n[i]
    return True


cdef bint _remember(vrrp_expect_t *e, vrrp_pkt_t *pkt, int flags) noexcept nogil:
    """After acceptance: True if unchanged, else store this packet's signature."""
    cdef uint8_t head[5]
    cdef const uint8_t *ptr[4]
    cdef Py_ssize_t n[4]
    cdef int k, i
    cdef Py_ssize_t total = 0
    cdef uint8_t *mem
    if _same(e, pkt):
        return True
    k = _signature(pkt, head, ptr, n)
    for i in range(k):
        total += n[i]
    if total <= VRRP_SIG_INLINE:
        mem = e.sig_inline
    else:
        if e.last_cap < total:
            mem = <uint8_t *>realloc(e.last_sig, total)
            if mem == NULL:  # out of memory: just forget; the next packet takes the full path
                e.last_len = -1
                return False
            e.last_sig = mem
            e.last_cap = total
        mem = e.last_sig
    total = 0
    for i in range(k):
        memcpy(mem + total, ptr[i], n[i])
        total += n[i]
    e.last_len = total
    e.last_flags = flags
    return False


cdef inline bint _same_ipv4(vrrp_expect_t *e, const uint8_t *p, Py_ssize_t end) noexcept nogil:
    """``_same`` for a packet with IPv4 header, inlined for the batch fast path."""
    cdef const uint8_t *s = _sig(e)
    return (e.last_len == end - 6 and fk_load32(s) == fk_load32(p)
            and fk_load16(s + 4) == fk_load16(p + 8) and fk_equal(s + 6, p + 12, end - 12))


cdef inline bint _same_ipv6(vrrp_expect_t *e, const uint8_t *p, Py_ssize_t n, int ttl,
                            const uint8_t *src, const uint8_t *dst) noexcept nogil:
    """``_same`` for an IPv6 payload with 16-byte addresses, for the batch fast path."""
    cdef const uint8_t *s = _sig(e)
    return (e.last_len == 37 + n and fk_load32(s) == fk_word4(0, 16, 16, ttl >> 8) and s[4] == (ttl & 0xFF)
            and fk_equal(s + 5, src, 16) and fk_equal(s + 21, dst, 16) and fk_equal(s + 37, p, n))


cdef Py_ssize_t vrrp_validate_batch(vrrp_expect_t **table, vrrp_batch_t *b,
                                    Py_ssize_t n) noexcept nogil:
    cdef vrrp_pkt_t pkt
    cdef vrrp_expect_t *e
    cdef const uint8_t *p
    cdef const uint8_t *m
    cdef Py_ssize_t i, ln, accepted = 0
    cdef int code
    cdef bint ipv4 = b.family == AF_INET
    # locals, not b->...: the byte stores below would otherwise force reloads (aliasing)
    cdef const uint8_t *buffer = b.buffer
    cdef const uint32_t *length = b.length
    cdef Py_ssize_t slot = b.slot_size
    cdef int16_t *hoplimit = b.hoplimit
    cdef uint8_t *src = b.src
    cdef uint8_t *dst = b.dst
    cdef uint8_t *status = b.status
    cdef uint8_t *vrid = b.vrid
    cdef uint8_t *priority = b.priority
    cdef uint8_t *flags = b.flags
    cdef uint16_t *adver_int = b.adver_int
    for i in range(n):
        p = buffer + i * slot
        ln = length[i]
        if ln > slot:
            ln = slot
        if ipv4:
            if ln >= 28 and p[0] == 0x45:
                # The steady state: the packet this instance accepted last time (IP ID and
                # checksum aside). Accepted packets have no AH and total length == what
                # arrived, so if the signature matches, the VRID is at byte 21 and no
                # check can answer differently than last time.
                e = table[p[21]]
                if e != NULL and _same_ipv4(e, p, ln):
                    accepted += 1
                    m = p + 20
                    vrid[i] = m[1]
                    priority[i] = m[2]
                    adver_int[i] = (((m[4] & 0x0F) << 8) | m[5]) if (m[0] >> 4) == 3 else m[5]
                    flags[i] = <uint8_t>(e.last_flags | FLAG_UNCHANGED)
                    memcpy(src + 16 * i, p + 12, 4)
                    memcpy(dst + 16 * i, p + 16, 4)
                    hoplimit[i] = p[8]
                    status[i] = 0
                    continue
            code = _parse_ipv4(p, ln, &pkt)
            if code == 0:
                memcpy(src + 16 * i, p + 12, 4)
                memcpy(dst + 16 * i, p + 16, 4)
                hoplimit[i] = p[8]
        elif ln < 8:
            code = TOO_SHORT
        else:
            e = table[p[1]]
            if e != NULL and _same_ipv6(e, p, ln, hoplimit[i], src + 16 * i, dst + 16 * i):
                accepted += 1
                vrid[i] = p[1]
                priority[i] = p[2]
                adver_int[i] = (((p[4] & 0x0F) << 8) | p[5]) if (p[0] >> 4) == 3 else p[5]
                flags[i] = <uint8_t>(e.last_flags | FLAG_UNCHANGED)
                status[i] = 0
                continue
            code = 0
            pkt.data = p
            pkt.ihl = 0
            pkt.ah = -1
            pkt.mo = 0
            pkt.end = ln
            pkt.family = AF_INET6
            pkt.ttl = hoplimit[i]
            pkt.src = src + 16 * i
            pkt.dst = dst + 16 * i
        vrid[i] = 0
        priority[i] = 0
        flags[i] = 0
        adver_int[i] = 0
        if code == 0:
            m = p + pkt.mo
            vrid[i] = m[1]
            e = table[m[1]]
            if e == NULL:
                code = UNKNOWN_VRID
            else:
                code = vrrp_check(&pkt, e, True)
                if code == 0:
                    accepted += 1
                    priority[i] = m[2]
                    adver_int[i] = (((m[4] & 0x0F) << 8) | m[5]) if (m[0] >> 4) == 3 else m[5]
                    flags[i] = <uint8_t>pkt.flags
        status[i] = <uint8_t>code
    return accepted


# ============================================================================ argument helpers

ctypedef struct _rbuf:
    const uint8_t *p
    Py_ssize_t n
    bint release
    Py_buffer view


cdef inline int _ro(object o, _rbuf *b) except -1:
    """Read-only bytes of a buffer object; bytes and bytearray without the buffer protocol."""
    if PyBytes_CheckExact(o):
        b.p = <const uint8_t *>PyBytes_AS_STRING(o)
        b.n = PyBytes_GET_SIZE(o)
        b.release = False
    elif PyByteArray_CheckExact(o):
        b.p = <const uint8_t *>PyByteArray_AS_STRING(o)
        b.n = PyByteArray_GET_SIZE(o)
        b.release = False
    else:
        PyObject_GetBuffer(o, &b.view, PyBUF_SIMPLE)
        b.p = <const uint8_t *>b.view.buf
        b.n = b.view.len
        b.release = True
    return 0


cdef inline void _release(_rbuf *b) noexcept:
    if b.release:
        b.release = False
        PyBuffer_Release(&b.view)


cdef inline Py_ssize_t _small(object o, uint8_t *out, Py_ssize_t cap) except -1:
    """Copy up to ``cap`` bytes of a buffer argument; returns its full length."""
    cdef _rbuf b
    if o is _EMPTY:  # the usual default, CPython's b"" singleton
        return 0
    _ro(o, &b)
    memcpy(out, b.p, b.n if b.n < cap else cap)
    _release(&b)
    return b.n


cdef long _field_slow(object o, long lo, long hi, str name) except -2:
    cdef long v
    cdef int overflow = 0
    v = PyLong_AsLongAndOverflow(o, &overflow)  # TypeError for non-integers, as operator.index
    if overflow or v < lo or v > hi:
        raise ValueError(f"{name} {o} out of range [{lo}, {hi}]")
    return v


cdef inline long _field(object o, long lo, long hi, str name) except -2:
    """An integer argument in [lo, hi] (every lo is >= -1, so -2 can flag the error)."""
    cdef long v
    if fk_small_long(o, &v) and lo <= v <= hi:
        return v
    return _field_slow(o, lo, hi, name)


cdef inline int _check_len(Py_ssize_t n, str name, Py_ssize_t a, Py_ssize_t b, Py_ssize_t c) except -1:
    if n != a and n != b and n != c:
        raise ValueError(f"{name} must be {a}, {b} or {c} bytes, not {n}")
    return 0


cdef inline int _src_dst(object src, object dst, uint8_t *s, uint8_t *d, int *sl, int *dl) except -1:
    cdef Py_ssize_t n = _small(src, s, 16)
    _check_len(n, "src", 0, 4, 16)
    sl[0] = <int>n
    n = _small(dst, d, 16)
    _check_len(n, "dst", 0, 4, 16)
    dl[0] = <int>n
    if sl[0] and dl[0] and sl[0] != dl[0]:
        raise ValueError("src and dst must be of the same family")
    return 0


cdef uint8_t *_writable(object buf, object offset, Py_ssize_t length, _rbuf *w) except NULL:
    """Pointer to ``length`` writable bytes at ``buf[offset:]`` (``_release(w)`` after)."""
    cdef long off
    w.release = False
    if PyByteArray_CheckExact(buf):
        w.p = <const uint8_t *>PyByteArray_AS_STRING(buf)
        w.n = PyByteArray_GET_SIZE(buf)
    else:
        PyObject_GetBuffer(buf, &w.view, PyBUF_SIMPLE)
        w.release = True
        w.p = <const uint8_t *>w.view.buf
        w.n = w.view.len
        if w.view.readonly:
            _release(w)
            raise TypeError("buffer is read-only")
    if not fk_small_long(offset, &off):
        off = PyNumber_AsSsize_t(offset, NULL)  # TypeError like operator.index
    if off < 0 or off + length > w.n:
        _release(w)
        raise ValueError(f"buffer too small: {length} bytes at offset {off} of {w.n}")
    return <uint8_t *>w.p + off


ctypedef struct _enc_t:
    int version
    int vrid
    int priority
    int adver_int
    int auth_type
    int alen
    int srclen
    int dstlen
    Py_ssize_t auth_len
    Py_ssize_t length
    uint8_t auth[8]
    uint8_t src[16]
    uint8_t dst[16]


cdef inline int _prepare(_enc_t *f, object version, object vrid, object priority, object adver_int,
                  object addresses, _rbuf *ab, object auth_type, object auth_data,
                  object src, object dst) except -1:
    """Check the fields in the reference's order (same exception for the same mistake)."""
    f.version = <int>_field(version, 2, 3, "version")
    f.vrid = <int>_field(vrid, 0, 255, "vrid")
    f.priority = <int>_field(priority, 0, 255, "priority")
    _ro(addresses, ab)
    f.auth_type = <int>_field(auth_type, 0, 255, "auth_type")
    f.auth_len = _small(auth_data, f.auth, 8)
    if f.auth_len > 8:
        raise ValueError(f"auth_data must be at most 8 bytes, not {f.auth_len}")
    _src_dst(src, dst, f.src, f.dst, &f.srclen, &f.dstlen)
    if f.version == 2:
        f.adver_int = <int>_field(adver_int, 0, 255, "adver_int")
        if f.srclen == 16 or f.dstlen == 16:
            raise ValueError("VRRPv2 is IPv4 only (RFC 3768)")
        f.alen = 4
    else:
        f.adver_int = <int>_field(adver_int, 0, 0xFFF, "adver_int")
        if f.auth_type or f.auth_len:
            raise ValueError("VRRPv3 has no authentication (RFC 5798)")
        if not f.srclen or not f.dstlen:
            raise ValueError("VRRPv3 needs src and dst (checksum pseudo-header, family)")
        f.alen = f.srclen
    if ab.n % f.alen:
        raise ValueError(f"addresses must be a multiple of {f.alen} bytes, not {ab.n}")
    if ab.n // f.alen > 255:
        raise ValueError("at most 255 addresses fit in an advert")
    f.length = 8 + ab.n + (8 if f.version == 2 else 0)
    return 0


# ============================================================================ Python API

def inet_checksum(data):
    """RFC 1071 Internet checksum of ``data`` (the value to store; 0 over a valid whole)."""
    cdef _rbuf b
    _ro(data, &b)
    cdef uint16_t c = fk_be16(<uint16_t>~_fold(_sum(b.p, b.n, 0)))
    _release(&b)
    return c


cdef object _vrrp_checksum(object msg, object src, object dst):
    cdef _rbuf b
    cdef uint8_t s[16]
    cdef uint8_t d[16]
    cdef int sl, dl
    cdef uint16_t c
    _ro(msg, &b)
    try:
        if b.n < 8:
            raise ValueError("a VRRP message has at least 8 bytes")
        _src_dst(src, dst, s, d, &sl, &dl)
        if (sl == 0) != (dl == 0):
            raise ValueError("give both src and dst, or neither")
        c = vrrp_checksum_c(b.p, b.n, s if sl else NULL, d if dl else NULL, sl)
    finally:
        _release(&b)
    return c


def _vrrp_checksum_kw(msg, src=b"", dst=b""):
    return _vrrp_checksum(msg, src, dst)


cdef object _vrrp_checksum_fast(PyObject *self, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    cdef Py_ssize_t n, sl
    if (kwnames != NULL and PyTuple_GET_SIZE(kwnames)) or nargs < 1 or nargs > 3:
        return _slow(_vrrp_checksum_kw, args, nargs, kwnames)
    # the usual calls, on bytes: no reference counting, no copies
    if _p_bytes_exact(args[0]) and nargs != 2:
        n = _p_bytes_len(args[0])
        if n >= 8:
            if nargs == 1:
                return _checksum(_p_bytes_data(args[0]), n, NULL, NULL, 0)
            if _p_bytes_exact(args[1]) and _p_bytes_exact(args[2]):
                sl = _p_bytes_len(args[1])
                if (sl == 4 or sl == 16) and _p_bytes_len(args[2]) == sl:
                    return _checksum(_p_bytes_data(args[0]), n, _p_bytes_data(args[1]),
                                     _p_bytes_data(args[2]), <int>sl)
    return _vrrp_checksum(<object>args[0], <object>args[1] if nargs > 1 else _EMPTY,
                          <object>args[2] if nargs > 2 else _EMPTY)


cdef object _update_priority(object buf, object offset, object priority):
    cdef _rbuf w
    cdef int prio = <int>_field(priority, 0, 255, "priority")
    cdef uint8_t *p = _writable(buf, offset, 8, &w)
    cdef uint16_t c = vrrp_update_priority(p, prio)
    _release(&w)
    return c


def _update_priority_kw(buf, offset, priority):
    return _update_priority(buf, offset, priority)


cdef object _update_priority_fast(PyObject *self, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    if (kwnames != NULL and PyTuple_GET_SIZE(kwnames)) or nargs != 3:
        return _slow(_update_priority_kw, args, nargs, kwnames)
    return _update_priority(<object>args[0], <object>args[1], <object>args[2])


cdef object _encode_into(object buf, object offset, object version, object vrid, object priority,
                         object adver_int, object addresses, object auth_type, object auth_data,
                         object src, object dst, object pseudo_header):
    cdef _enc_t f
    cdef _rbuf ab
    cdef _rbuf w
    cdef uint8_t *out
    cdef bint pseudo
    ab.release = False
    try:
        _prepare(&f, version, vrid, priority, adver_int, addresses, &ab, auth_type, auth_data, src, dst)
        pseudo = pseudo_header
        out = _writable(buf, offset, f.length, &w)
        vrrp_encode(out, f.version, f.vrid, f.priority, f.adver_int, ab.p, ab.n, f.auth_type,
                f.auth, f.auth_len, f.src, f.dst, f.alen, pseudo)
        _release(&w)
    finally:
        _release(&ab)
    return f.length


def _encode_into_kw(buf, offset, version, vrid, priority, adver_int, addresses, auth_type=0,
                    auth_data=b"", src=b"", dst=b"", pseudo_header=True):
    return _encode_into(buf, offset, version, vrid, priority, adver_int, addresses, auth_type,
                        auth_data, src, dst, pseudo_header)


cdef inline Py_ssize_t _encode_common(PyObject **args, Py_ssize_t nargs) noexcept:
    """The usual call -- bytearray, small ints, bytes, all valid -- straight to C without
    touching a reference count; -1 sends the call to the general path (which also
    raises the errors)."""
    cdef long off, version, vrid, prio, adv, at = 0
    cdef Py_ssize_t na, auth_len = 0, sl = 0, dl = 0, length, cap
    cdef const uint8_t *auth = NULL
    cdef const uint8_t *sp = NULL
    cdef const uint8_t *dp = NULL
    cdef int alen = 4
    cdef bint pseudo = True
    cdef PyObject *o
    if not (_p_bytearray_exact(args[0]) and _p_small_long(args[1], &off) and _p_small_long(args[2], &version)
            and _p_small_long(args[3], &vrid) and _p_small_long(args[4], &prio)
            and _p_small_long(args[5], &adv) and _p_bytes_exact(args[6])):
        return -1
    if nargs > 7 and not _p_small_long(args[7], &at):
        return -1
    if nargs > 8:
        if not _p_bytes_exact(args[8]):
            return -1
        auth = _p_bytes_data(args[8])
        auth_len = _p_bytes_len(args[8])
    if nargs > 9:
        if not _p_bytes_exact(args[9]):
            return -1
        sp = _p_bytes_data(args[9])
        sl = _p_bytes_len(args[9])
    if nargs > 10:
        if not _p_bytes_exact(args[10]):
            return -1
        dp = _p_bytes_data(args[10])
        dl = _p_bytes_len(args[10])
    if nargs > 11:
        o = args[11]
        if o != _p_True and o != _p_False:
            return -1
        pseudo = o == _p_True
    if (vrid < 0 or vrid > 255 or prio < 0 or prio > 255 or at < 0 or at > 255 or auth_len > 8
            or (sl != 0 and sl != 4 and sl != 16) or (dl != 0 and dl != 4 and dl != 16)
            or (sl and dl and sl != dl)):
        return -1
    if version == 2:
        if adv < 0 or adv > 255 or sl == 16 or dl == 16:
            return -1
    elif version == 3:
        if adv < 0 or adv > 0xFFF or at or auth_len or not sl or not dl:
            return -1
        alen = <int>sl
    else:
        return -1
    na = _p_bytes_len(args[6])
    if na & (alen - 1) or na > 255 * alen:  # (alen is 4 or 16: no division)
        return -1
    length = 8 + na + (8 if version == 2 else 0)
    cap = _p_bytearray_len(args[0])
    if off < 0 or off + length > cap:
        return -1
    return _encode(_p_bytearray_data(args[0]) + off, <int>version, <int>vrid, <int>prio, <int>adv,
                   _p_bytes_data(args[6]), na, <int>at, auth, auth_len, sp, dp, alen, pseudo)


cdef object _encode_into_fast(PyObject *self, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    cdef Py_ssize_t n
    if (kwnames != NULL and PyTuple_GET_SIZE(kwnames)) or nargs < 7 or nargs > 12:
        return _slow(_encode_into_kw, args, nargs, kwnames)
    n = _encode_common(args, nargs)
    if n >= 0:
        return n
    return _encode_into(<object>args[0], <object>args[1], <object>args[2], <object>args[3],
                        <object>args[4], <object>args[5], <object>args[6],
                        <object>args[7] if nargs > 7 else _ZERO,
                        <object>args[8] if nargs > 8 else _EMPTY,
                        <object>args[9] if nargs > 9 else _EMPTY,
                        <object>args[10] if nargs > 10 else _EMPTY,
                        <object>args[11] if nargs > 11 else True)


def encode(version, vrid, priority, adver_int, addresses, auth_type=0, auth_data=b"", src=b"",
           dst=b"", pseudo_header=True):
    """``encode_into`` returning a new ``bytes``."""
    cdef _enc_t f
    cdef _rbuf ab
    cdef bytes out
    cdef bint pseudo
    ab.release = False
    try:
        _prepare(&f, version, vrid, priority, adver_int, addresses, &ab, auth_type, auth_data, src, dst)
        pseudo = pseudo_header
        out = PyBytes_FromStringAndSize(NULL, f.length)
        vrrp_encode(<uint8_t *>PyBytes_AS_STRING(out), f.version, f.vrid, f.priority, f.adver_int,
                    ab.p, ab.n, f.auth_type, f.auth, f.auth_len, f.src, f.dst, f.alen, pseudo)
    finally:
        _release(&ab)
    return out


# ---------------------------------------------------------------------------- Template

cdef inline void _stamp(uint8_t *out, const uint8_t *msg, Py_ssize_t n, uint64_t base,
                        int priority) noexcept nogil:
    """A prepared message with its priority set and its checksum patched."""
    fk_copy(out, msg, n)
    out[2] = <uint8_t>priority
    # the priority is byte 2: the low byte of a native 16-bit word on little-endian
    # machines, the high byte on big-endian ones (sums are native, see _sum)
    fk_store16(out + 6, <uint16_t>~_fold(base + (<uint64_t>priority << (0 if FK_LITTLE_ENDIAN else 8))))


@cython.final
@cython.auto_pickle(False)
cdef class Template:
    """An advertisement prepared once and written with any priority (see the reference)."""

    cdef bytes _msg             # the message with priority 0 (and its checksum)
    cdef uint64_t _base         # the checksum's folded sum for priority 0
    cdef readonly Py_ssize_t length

    def __init__(self, version, vrid, adver_int, addresses, auth_type=0, auth_data=b"", src=b"",
                 dst=b"", pseudo_header=True):
        cdef _enc_t f
        cdef _rbuf ab
        cdef bint pseudo
        cdef uint8_t *m
        ab.release = False
        try:
            _prepare(&f, version, vrid, _ZERO, adver_int, addresses, &ab, auth_type, auth_data, src, dst)
            pseudo = pseudo_header
            msg = PyBytes_FromStringAndSize(NULL, f.length)
            m = <uint8_t *>PyBytes_AS_STRING(msg)
            vrrp_encode(m, f.version, f.vrid, 0, f.adver_int, ab.p, ab.n, f.auth_type, f.auth, f.auth_len,
                    f.src, f.dst, f.alen, pseudo)
        finally:
            _release(&ab)
        self._msg = msg
        # the stored checksum is ~fold(sum); the sum of a message is never 0 (its first
        # byte is not), so fold(sum) is in 1..0xFFFF and adding the priority to it folds
        # exactly as adding it to the whole sum would
        self._base = <uint16_t>~fk_load16(m + 6)
        self.length = f.length

    # encode_into(buf, offset, priority): _template_encode_into_fast, installed below

    def encode(self, priority):
        """``encode_into`` returning a new ``bytes``."""
        cdef int prio = <int>_field(priority, 0, 255, "priority")
        out = PyBytes_FromStringAndSize(NULL, self.length)
        _stamp(<uint8_t *>PyBytes_AS_STRING(out), <const uint8_t *>PyBytes_AS_STRING(self._msg),
               self.length, self._base, prio)
        return out

    def __repr__(self):
        m = <const uint8_t *>PyBytes_AS_STRING(self._msg)
        return f"<Template v{m[0] >> 4} vrid={m[1]} count={m[3]} length={self.length}>"


def ipv4_header_into(buf, offset, src, dst, ttl, ident, protocol, payload_len):
    """Write the 20-byte IPv4 header Keepalived sends (TOS 0xc0, DF clear, checksum)."""
    cdef uint8_t s[16]
    cdef uint8_t d[16]
    cdef _rbuf w
    cdef Py_ssize_t n = _small(src, s, 16)
    if n != 4:
        raise ValueError(f"src must be 4 bytes, not {n}")
    n = _small(dst, d, 16)
    if n != 4:
        raise ValueError(f"dst must be 4 bytes, not {n}")
    cdef int t = <int>_field(ttl, 0, 255, "ttl")
    cdef int i = <int>_field(ident, 0, 0xFFFF, "ident")
    cdef int proto = <int>_field(protocol, 0, 255, "protocol")
    cdef int plen = <int>_field(payload_len, 0, 0xFFFF - 20, "payload_len")
    cdef uint8_t *out = _writable(buf, offset, 20, &w)
    vrrp_ipv4_header(out, s, d, t, i, proto, 20 + plen)
    _release(&w)
    return 20


def encode_ipv4_into(buf, offset, version, vrid, priority, adver_int, addresses, auth_type,
                     auth_data, src, dst, ttl=255, ident=1, ah_seq=1, pseudo_header=True):
    """A whole IPv4 packet as Keepalived sends it (header, AH for auth type AH, advert)."""
    cdef _enc_t f
    cdef _rbuf ab
    cdef _rbuf w
    cdef uint8_t s[16]
    cdef uint8_t d[16]
    cdef uint8_t *out
    cdef Py_ssize_t n, hlen, total
    cdef int t, ident_, proto
    cdef long seq
    cdef bint pseudo, ah
    n = _small(src, s, 16)
    if n != 4:
        raise ValueError(f"src must be 4 bytes, not {n}")
    n = _small(dst, d, 16)
    if n != 4:
        raise ValueError(f"dst must be 4 bytes, not {n}")
    t = <int>_field(ttl, 0, 255, "ttl")
    ident_ = <int>_field(ident, 0, 0xFFFF, "ident")
    seq = _field(ah_seq, 0, 0xFFFFFFFF, "ah_seq")
    ab.release = False
    try:
        _prepare(&f, version, vrid, priority, adver_int, addresses, &ab, auth_type, auth_data, src, dst)
        pseudo = pseudo_header
        ah = f.version == 2 and f.auth_type == VRRP_AUTH_AH
        hlen = 44 if ah else 20
        total = hlen + f.length
        out = _writable(buf, offset, total, &w)
        vrrp_ipv4_header(out, s, d, t, ident_, IPPROTO_AH if ah else IPPROTO_VRRP, <int>total)
        vrrp_encode(out + hlen, f.version, f.vrid, f.priority, f.adver_int, ab.p, ab.n, f.auth_type,
                    f.auth, f.auth_len, f.src, f.dst, f.alen, pseudo)
        if ah:
            memset(f.auth + f.auth_len, 0, 8 - f.auth_len)
            vrrp_ah_sign(out, total, f.auth, <uint32_t>seq)
        _release(&w)
    finally:
        _release(&ab)
    return total


def encode_ipv4(version, vrid, priority, adver_int, addresses, auth_type, auth_data, src, dst,
                ttl=255, ident=1, ah_seq=1, pseudo_header=True):
    """``encode_ipv4_into`` returning a new ``bytes``."""
    buf = bytearray(20 + 24 + 16 + 255 * 4)
    n = encode_ipv4_into(buf, 0, version, vrid, priority, adver_int, addresses, auth_type, auth_data,
                         src, dst, ttl, ident, ah_seq, pseudo_header)
    return bytes(buf[:n])


def _hmac_md5_96(key, data):
    """HMAC-MD5-96 (RFC 2403), exposed for tests of the built-in MD5."""
    cdef uint8_t k[64]
    cdef uint8_t out[16]
    cdef _rbuf b
    cdef Py_ssize_t kl = _small(key, k, 64)
    if kl > 64:
        raise ValueError("keys longer than one MD5 block are not supported")
    _ro(data, &b)
    _hmac_md5(k, kl, b.p, b.n, b.p, 0, b.p, 0, out)
    _release(&b)
    return PyBytes_FromStringAndSize(<char *>out, 12)


# ---------------------------------------------------------------------------- Expect

cdef vrrp_expect_t _ANY
_ANY.version = 0
_ANY.auth_type = -1
_ANY.adver_int = 0
_ANY.unicast = -1
_ANY.v3_checksum_as_v2 = False
_ANY.old_unicast_checksum = True
_ANY.strict_addresses = False
_ANY.addresses_len = -1
_ANY.addresses = NULL
_ANY.ah_last_seq = -1
_ANY.last_sig = NULL
_ANY.last_len = -1
_ANY.last_cap = 0
_ANY.last_flags = 0
memset(_ANY.auth_data, 0, 8)


@cython.final
@cython.auto_pickle(False)
cdef class Expect:
    """What one VRRP instance accepts (see ``fastka._vrrp_py.Expect``)."""

    def __init__(self, version=0, *, auth_type=-1, auth_data=b"", adver_int=0, unicast=None,
                 v3_checksum_as_v2=False, old_unicast_checksum=True, addresses=None,
                 strict_addresses=False):
        cdef long v = _field(version, 0, 3, "version")
        if v == 1:
            raise ValueError("version must be 0 (any), 2 or 3")
        self.c.version = <int>v
        self.c.auth_type = <int>_field(auth_type, -1, 2, "auth_type")
        memset(self.c.auth_data, 0, 8)
        cdef Py_ssize_t n = _small(auth_data, self.c.auth_data, 8)
        if n > 8:
            raise ValueError(f"auth_data must be at most 8 bytes, not {n}")
        self.c.adver_int = <int>_field(adver_int, 0, 0xFFF, "adver_int")
        self._unicast_obj = None if unicast is None else bool(unicast)
        self.c.unicast = -1 if unicast is None else (1 if unicast else 0)
        self.c.v3_checksum_as_v2 = bool(v3_checksum_as_v2)
        self.c.old_unicast_checksum = bool(old_unicast_checksum)
        cdef _rbuf b
        if addresses is None:
            self._addresses = None
            self.c.addresses = NULL
            self.c.addresses_len = -1
        else:
            _ro(addresses, &b)
            try:
                if b.n % 4 or b.n > 255 * 16:
                    raise ValueError("addresses must be packed IPv4 (4 bytes each) or IPv6 (16 bytes each)")
                self._addresses = PyBytes_FromStringAndSize(<const char *>b.p, b.n)
            finally:
                _release(&b)
            self.c.addresses = <const uint8_t *>PyBytes_AS_STRING(self._addresses)
            self.c.addresses_len = PyBytes_GET_SIZE(self._addresses)
        self.c.strict_addresses = bool(strict_addresses)
        self.c.ah_last_seq = -1
        self.c.last_len = -1

    def __cinit__(self):
        self.c.last_sig = NULL
        self.c.last_len = -1
        self.c.last_cap = 0

    def __dealloc__(self):
        free(self.c.last_sig)

    @property
    def version(self):
        return self.c.version

    @property
    def auth_type(self):
        return self.c.auth_type

    @property
    def auth_data(self):
        return PyBytes_FromStringAndSize(<const char *>self.c.auth_data, 8)

    @property
    def adver_int(self):
        return self.c.adver_int

    @property
    def unicast(self):
        return self._unicast_obj

    @property
    def v3_checksum_as_v2(self):
        return self.c.v3_checksum_as_v2

    @property
    def old_unicast_checksum(self):
        return self.c.old_unicast_checksum

    @property
    def addresses(self):
        return self._addresses

    @property
    def strict_addresses(self):
        return self.c.strict_addresses

    @property
    def ah_last_seq(self):
        return self.c.ah_last_seq

    @ah_last_seq.setter
    def ah_last_seq(self, value):
        self.c.ah_last_seq = _field(value, -1, 0xFFFFFFFF, "ah_last_seq")

    def __repr__(self):
        return (f"Expect(version={self.c.version}, auth_type={self.c.auth_type}, "
                f"adver_int={self.c.adver_int}, unicast={self._unicast_obj}, "
                f"ah_last_seq={self.c.ah_last_seq})")


# ---------------------------------------------------------------------------- Advert

@cython.final
@cython.auto_pickle(False)
@cython.freelist(32)
@cython.no_gc
cdef class Advert:
    """A received advertisement that passed validation (see ``fastka._vrrp_py.Advert``)."""

    def __init__(self):
        raise TypeError("Advert objects come from decode(), decode_ipv4() or Batch.advert()")

    @property
    def type(self):
        return self._type

    @property
    def length(self):
        return self._len

    @property
    def message(self):
        if self._off == 0 and PyBytes_GET_SIZE(self._data) == self._len:
            return self._data
        return PyBytes_FromStringAndSize(PyBytes_AS_STRING(self._data) + self._off, self._len)

    @property
    def auth_data(self):
        if self.version != 2:
            return b""
        return PyBytes_FromStringAndSize(PyBytes_AS_STRING(self._data) + self._off + self._len - 8, 8)

    @property
    def src(self):
        return PyBytes_FromStringAndSize(<const char *>self._src, self._srclen)

    @property
    def dst(self):
        return PyBytes_FromStringAndSize(<const char *>self._dst, self._dstlen)

    @property
    def addresses_packed(self):
        cdef int alen = 4 if self.family == AF_INET else 16
        return PyBytes_FromStringAndSize(PyBytes_AS_STRING(self._data) + self._off + 8, alen * self.count)

    def address(self, i):
        """The ``i``-th address (0-based, advert order)."""
        cdef Py_ssize_t k = _index(i, IndexError)
        cdef int alen = 4 if self.family == AF_INET else 16
        if k < 0 or k >= self.count:
            raise IndexError("address index out of range")
        raw = PyBytes_FromStringAndSize(PyBytes_AS_STRING(self._data) + self._off + 8 + alen * k, alen)
        return _IPv4Address(raw) if alen == 4 else _IPv6Address(raw)

    @property
    def addresses(self):
        return tuple([self.address(i) for i in range(self.count)])

    def as_dict(self):
        """Every field, addresses as strings (tests, dumps)."""
        return {
            "version": self.version,
            "type": self._type,
            "vrid": self.vrid,
            "priority": self.priority,
            "count": self.count,
            "auth_type": self.auth_type,
            "adver_int": self.adver_int,
            "checksum": self.checksum,
            "auth_data": self.auth_data,
            "family": self.family,
            "ttl": self.ttl,
            "flags": self.flags,
            "ah_seq": self.ah_seq,
            "src": self.src,
            "dst": self.dst,
            "addresses": [str(a) for a in self.addresses],
            "message": self.message,
        }

    def __repr__(self):
        return (f"<Advert v{self.version} vrid={self.vrid} priority={self.priority} "
                f"adver_int={self.adver_int} count={self.count} auth_type={self.auth_type}>")


cdef Advert _spare = None


cdef Advert _advert(object data, const uint8_t *p, vrrp_pkt_t *pkt, int srclen, int dstlen):
    """Build the Advert; ``data`` is the exact ``bytes`` object ``p`` points into (kept,
    no copy) or None (the message is copied: the caller's buffer may be reused).

    The last Advert made is recycled when nobody else holds it any more (its only
    references are ``_spare`` and ``a``), as CPython's zip/enumerate recycle their result
    tuple: a decode loop that drops each advert allocates nothing.
    """
    global _spare
    cdef Advert a = _spare
    if a is None or Py_REFCNT(a) != 2:
        a = Advert.__new__(Advert)
        _spare = a
    cdef const uint8_t *m = p + pkt.mo
    if data is not None:
        a._data = data
        a._off = pkt.mo
    else:
        a._data = PyBytes_FromStringAndSize(<const char *>m, pkt.msg_len)
        a._off = 0
    a._len = pkt.msg_len
    a.version = m[0] >> 4
    a._type = m[0] & 0x0F
    a.vrid = m[1]
    a.priority = m[2]
    a.count = m[3]
    if a.version == 2:
        a.auth_type = m[4]
        a.adver_int = m[5]
    else:
        a.auth_type = 0
        a.adver_int = ((m[4] & 0x0F) << 8) | m[5]
    a.checksum = (m[6] << 8) | m[7]
    a.family = pkt.family
    a.ttl = pkt.ttl
    a.flags = pkt.flags
    a.ah_seq = pkt.ah_seq
    a._srclen = srclen
    a._dstlen = dstlen
    if srclen:
        memcpy(a._src, pkt.src, srclen)
    if dstlen:
        memcpy(a._dst, pkt.dst, dstlen)
    return a


cdef inline object _fail(int code):
    return VrrpDecodeError(_REASONS[code])


cdef object _decode(object data, object src, object dst, object ttl, object expect):
    cdef _rbuf b
    cdef uint8_t s[16]
    cdef uint8_t d[16]
    cdef int sl, dl, code
    cdef long t
    cdef vrrp_pkt_t pkt
    cdef vrrp_expect_t *e
    if expect is not None and type(expect) is not Expect:
        raise TypeError("expect must be an Expect or None")
    _ro(data, &b)
    try:
        _src_dst(src, dst, s, d, &sl, &dl)
        t = _field(ttl, -1, 255, "ttl")
        if b.n < 8:
            raise _fail(TOO_SHORT)
        if sl:
            pkt.family = AF_INET if sl == 4 else AF_INET6
        elif dl:
            pkt.family = AF_INET if dl == 4 else AF_INET6
        elif (b.p[0] >> 4) != 3 or b.n != 8 + 16 * b.p[3] or b.p[3] == 0:
            pkt.family = AF_INET
        else:
            pkt.family = AF_INET6
        pkt.data = b.p
        pkt.ihl = 0
        pkt.ah = -1
        pkt.mo = 0
        pkt.end = b.n
        pkt.ttl = <int>t
        pkt.src = s if sl else NULL
        pkt.dst = d if dl else NULL
        e = &_ANY if expect is None else &(<Expect>expect).c
        code = vrrp_check(&pkt, e, expect is not None)
        if code:
            raise _fail(code)
        return _advert(data if PyBytes_CheckExact(data) else None, b.p, &pkt, sl, dl)
    finally:
        _release(&b)


def _decode_kw(data, src=b"", dst=b"", ttl=-1, expect=None):
    return _decode(data, src, dst, ttl, expect)


cdef object _decode_fast(PyObject *self, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    cdef Py_ssize_t n, sl = 0, dl = 0
    cdef long ttl = -1
    cdef const uint8_t *p
    cdef vrrp_pkt_t pkt
    cdef vrrp_expect_t *e = &_ANY
    cdef int code
    if (kwnames != NULL and PyTuple_GET_SIZE(kwnames)) or nargs < 1 or nargs > 5:
        return _slow(_decode_kw, args, nargs, kwnames)
    # the usual call -- bytes, valid addresses and TTL, an Expect or None -- without
    # reference counting or copies; anything else takes the general path
    if (_p_bytes_exact(args[0]) and (nargs < 2 or _p_bytes_exact(args[1]))
            and (nargs < 3 or _p_bytes_exact(args[2])) and (nargs < 4 or _p_small_long(args[3], &ttl))
            and (nargs < 5 or args[4] == <PyObject *>None or type(<object>args[4]) is Expect)):
        if nargs > 1:
            sl = _p_bytes_len(args[1])
        if nargs > 2:
            dl = _p_bytes_len(args[2])
        n = _p_bytes_len(args[0])
        if ((sl == 0 or sl == 4 or sl == 16) and (dl == 0 or dl == 4 or dl == 16)
                and (sl == 0 or dl == 0 or sl == dl) and -1 <= ttl <= 255 and n >= 8):
            p = _p_bytes_data(args[0])
            if sl:
                pkt.family = AF_INET if sl == 4 else AF_INET6
            elif dl:
                pkt.family = AF_INET if dl == 4 else AF_INET6
            elif (p[0] >> 4) != 3 or n != 8 + 16 * p[3] or p[3] == 0:
                pkt.family = AF_INET
            else:
                pkt.family = AF_INET6
            pkt.data = p
            pkt.ihl = 0
            pkt.ah = -1
            pkt.mo = 0
            pkt.end = n
            pkt.ttl = <int>ttl
            pkt.src = _p_bytes_data(args[1]) if sl else NULL
            pkt.dst = _p_bytes_data(args[2]) if dl else NULL
            if nargs > 4 and args[4] != <PyObject *>None:
                e = &(<Expect>args[4]).c
            code = vrrp_check(&pkt, e, e != &_ANY)
            if code:
                raise _fail(code)
            return _advert(<object>args[0], p, &pkt, <int>sl, <int>dl)
    return _decode(<object>args[0], <object>args[1] if nargs > 1 else _EMPTY,
                   <object>args[2] if nargs > 2 else _EMPTY, <object>args[3] if nargs > 3 else _MINUS_ONE,
                   <object>args[4] if nargs > 4 else None)


cdef object _decode_ipv4(object packet, object expect):
    cdef _rbuf b
    cdef int code
    cdef vrrp_pkt_t pkt
    cdef vrrp_expect_t *e
    if expect is not None and type(expect) is not Expect:
        raise TypeError("expect must be an Expect or None")
    _ro(packet, &b)
    try:
        code = vrrp_parse_ipv4(b.p, b.n, &pkt)
        if code:
            raise _fail(code)
        e = &_ANY if expect is None else &(<Expect>expect).c
        code = vrrp_check(&pkt, e, expect is not None)
        if code:
            raise _fail(code)
        return _advert(packet if PyBytes_CheckExact(packet) else None, b.p, &pkt, 4, 4)
    finally:
        _release(&b)


def _decode_ipv4_kw(packet, expect=None):
    return _decode_ipv4(packet, expect)


cdef object _decode_ipv4_fast(PyObject *self, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    if (kwnames != NULL and PyTuple_GET_SIZE(kwnames)) or nargs < 1 or nargs > 2:
        return _slow(_decode_ipv4_kw, args, nargs, kwnames)
    return _decode_ipv4(<object>args[0], <object>args[1] if nargs > 1 else None)


# ---------------------------------------------------------------------------- fast entry points

cdef object _slow(object impl, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    """Calls with keywords (or a wrong count): the ``def`` twin parses and complains."""
    cdef Py_ssize_t i, nk = PyTuple_GET_SIZE(kwnames) if kwnames != NULL else 0
    pos = tuple([<object>args[i] for i in range(nargs)])
    kw = {}
    for i in range(nk):
        kw[<object>PyTuple_GET_ITEM(kwnames, i)] = <object>args[nargs + i]
    return impl(*pos, **kw)


cdef object _template_encode_into(Template t, object buf, object offset, object priority):
    cdef int prio = <int>_field(priority, 0, 255, "priority")
    cdef _rbuf w
    cdef uint8_t *out = _writable(buf, offset, t.length, &w)
    _stamp(out, <const uint8_t *>PyBytes_AS_STRING(t._msg), t.length, t._base, prio)
    _release(&w)
    return t.length


def _template_encode_into_kw(Template t, buf, offset, priority):
    return _template_encode_into(t, buf, offset, priority)


cdef object _template_encode_into_fast(PyObject *self, PyObject **args, Py_ssize_t nargs,
                                       PyObject *kwnames):
    cdef long off, prio
    cdef Py_ssize_t n
    if (kwnames != NULL and PyTuple_GET_SIZE(kwnames)) or nargs != 3:
        return _slow(partial(_template_encode_into_kw, <object>self), args, nargs, kwnames)
    # the usual call (bytearray, small ints, room enough), no reference counting
    n = (<Template>self).length
    if (_p_bytearray_exact(args[0]) and _p_small_long(args[1], &off) and _p_small_long(args[2], &prio)
            and 0 <= prio <= 255 and 0 <= off <= _p_bytearray_len(args[0]) - n):
        _stamp(_p_bytearray_data(args[0]) + off, <const uint8_t *>PyBytes_AS_STRING((<Template>self)._msg),
               n, (<Template>self)._base, <int>prio)
        return n
    return _template_encode_into(<Template>self, <object>args[0], <object>args[1], <object>args[2])


cdef object _null_fast(PyObject *self, PyObject **args, Py_ssize_t nargs, PyObject *kwnames):
    return None


cdef PyMethodDef[7] _FAST
_FAST[0].ml_name = "encode_into"
_FAST[0].ml_meth = <void *>_encode_into_fast
_FAST[0].ml_doc = (
    "encode_into(buf, offset, version, vrid, priority, adver_int, addresses, auth_type=0, "
    "auth_data=b'', src=b'', dst=b'', pseudo_header=True)\n--\n\n"
    "Write one advertisement at ``buf[offset:]``; returns its length (see the reference).")
_FAST[1].ml_name = "decode"
_FAST[1].ml_meth = <void *>_decode_fast
_FAST[1].ml_doc = (
    "decode(data, src=b'', dst=b'', ttl=-1, expect=None)\n--\n\n"
    "Validate and decode a VRRP message without IP header (see the reference).")
_FAST[2].ml_name = "decode_ipv4"
_FAST[2].ml_meth = <void *>_decode_ipv4_fast
_FAST[2].ml_doc = (
    "decode_ipv4(packet, expect=None)\n--\n\n"
    "Validate and decode a whole IPv4 packet as a raw socket returns it.")
_FAST[3].ml_name = "vrrp_checksum"
_FAST[3].ml_meth = <void *>_vrrp_checksum_fast
_FAST[3].ml_doc = (
    "vrrp_checksum(msg, src=b'', dst=b'')\n--\n\n"
    "The checksum a VRRP message should carry; its own checksum field counts as zero.")
_FAST[4].ml_name = "update_priority"
_FAST[4].ml_meth = <void *>_update_priority_fast
_FAST[4].ml_doc = (
    "update_priority(buf, offset, priority)\n--\n\n"
    "Set the priority of the VRRP message at ``buf[offset:]`` and patch its checksum (RFC 1624).")
_FAST[5].ml_name = "encode_into"
_FAST[5].ml_meth = <void *>_template_encode_into_fast
_FAST[5].ml_doc = (
    "encode_into(self, buf, offset, priority)\n--\n\n"
    "Write the advert with ``priority`` at ``buf[offset:]``; returns its length.")
_FAST[6].ml_name = "_null"
_FAST[6].ml_meth = <void *>_null_fast
_FAST[6].ml_doc = (
    "_null(*args)\n--\n\n"
    "Benchmark hook: a METH_FASTCALL builtin like encode_into & co. that does nothing, "
    "returns None (the cost of the call itself, with any number of arguments).")
for _i in range(7):
    _FAST[_i].ml_flags = METH_FASTCALL | METH_KEYWORDS
fk_install_method(Template, &_FAST[5])
_null = PyCFunction_NewEx(&_FAST[6], None, __name__)
encode_into = PyCFunction_NewEx(&_FAST[0], None, __name__)
decode = PyCFunction_NewEx(&_FAST[1], None, __name__)
decode_ipv4 = PyCFunction_NewEx(&_FAST[2], None, __name__)
vrrp_checksum = PyCFunction_NewEx(&_FAST[3], None, __name__)
update_priority = PyCFunction_NewEx(&_FAST[4], None, __name__)


# ---------------------------------------------------------------------------- Batch

@cython.final
@cython.auto_pickle(False)
cdef class Batch:
    """Preallocated buffers for one ``recvmmsg`` worth of packets (see the reference)."""

    def __init__(self, capacity=64, slot_size=2048, family=AF_INET):
        cdef Py_ssize_t n = _field(capacity, 1, 1 << 20, "capacity")
        cdef Py_ssize_t slot = _field(slot_size, 8, 65535, "slot_size")
        if family != AF_INET and family != AF_INET6:
            raise ValueError("family must be AF_INET or AF_INET6")
        bufs = [bytearray(n * slot), bytearray(4 * n), bytearray(2 * n), bytearray(16 * n),
                bytearray(16 * n), bytearray(n), bytearray(n), bytearray(n), bytearray(n),
                bytearray(2 * n)]
        self._keep = bufs
        self.c.capacity = n
        self.c.slot_size = slot
        self.c.family = <int>family
        self.c.buffer = <uint8_t *>PyByteArray_AS_STRING(bufs[0])
        self.c.length = <uint32_t *>PyByteArray_AS_STRING(bufs[1])
        self.c.hoplimit = <int16_t *>PyByteArray_AS_STRING(bufs[2])
        self.c.src = <uint8_t *>PyByteArray_AS_STRING(bufs[3])
        self.c.dst = <uint8_t *>PyByteArray_AS_STRING(bufs[4])
        self.c.status = <uint8_t *>PyByteArray_AS_STRING(bufs[5])
        self.c.vrid = <uint8_t *>PyByteArray_AS_STRING(bufs[6])
        self.c.priority = <uint8_t *>PyByteArray_AS_STRING(bufs[7])
        self.c.flags = <uint8_t *>PyByteArray_AS_STRING(bufs[8])
        self.c.adver_int = <uint16_t *>PyByteArray_AS_STRING(bufs[9])
        # the memoryviews pin the bytearrays: they can never be resized under the pointers
        self.buffer = memoryview(bufs[0])
        self.length = memoryview(bufs[1]).cast("I")
        self.hoplimit = memoryview(bufs[2]).cast("h")
        self.src = memoryview(bufs[3])
        self.dst = memoryview(bufs[4])
        self.status = memoryview(bufs[5])
        self.vrid = memoryview(bufs[6])
        self.priority = memoryview(bufs[7])
        self.flags = memoryview(bufs[8])
        self.adver_int = memoryview(bufs[9]).cast("H")

    @property
    def capacity(self):
        return self.c.capacity

    @property
    def slot_size(self):
        return self.c.slot_size

    @property
    def family(self):
        return self.c.family

    def slot(self, i):
        """Writable view of slot ``i`` (a ``recv_into`` target)."""
        cdef Py_ssize_t k = _field(i, 0, self.c.capacity - 1, "slot")
        return self.buffer[k * self.c.slot_size:(k + 1) * self.c.slot_size]

    def set(self, i, data, src=b"", dst=b"", hoplimit=-1):
        """Copy one received packet (and, for IPv6, its metadata) into slot ``i``."""
        cdef Py_ssize_t k = _field(i, 0, self.c.capacity - 1, "slot")
        cdef _rbuf b
        cdef uint8_t s[16]
        cdef uint8_t d[16]
        cdef Py_ssize_t n
        _ro(data, &b)
        try:
            if b.n > self.c.slot_size:
                raise ValueError(f"packet of {b.n} bytes does not fit a {self.c.slot_size}-byte slot")
            memset(s, 0, 16)
            memset(d, 0, 16)
            _small(src, s, 16)
            _small(dst, d, 16)
            n = _field(hoplimit, -1, 255, "hoplimit")
            memcpy(self.c.buffer + k * self.c.slot_size, b.p, b.n)
            self.c.length[k] = <uint32_t>b.n
            memcpy(self.c.src + 16 * k, s, 16)
            memcpy(self.c.dst + 16 * k, d, 16)
            self.c.hoplimit[k] = <int16_t>n
        finally:
            _release(&b)

    def source(self, i):
        """Packed source address of packet ``i`` (4 or 16 bytes)."""
        cdef Py_ssize_t k = _field(i, 0, self.c.capacity - 1, "slot")
        return PyBytes_FromStringAndSize(<const char *>self.c.src + 16 * k, 4 if self.c.family == AF_INET else 16)

    def advert(self, i, Expect expect=None):
        """Decode packet ``i`` into an ``Advert`` (the slow path, when something changed)."""
        cdef Py_ssize_t k = _field(i, 0, self.c.capacity - 1, "slot")
        cdef Py_ssize_t off = k * self.c.slot_size
        cdef Py_ssize_t ln = min(<Py_ssize_t>self.c.length[k], self.c.slot_size)
        pkt = self.buffer[off:off + ln]
        if self.c.family == AF_INET:
            return decode_ipv4(pkt, expect)
        return decode(pkt, self.src[16 * k:16 * k + 16], self.dst[16 * k:16 * k + 16],
                      self.c.hoplimit[k], expect)


# ---------------------------------------------------------------------------- VridTable

@cython.final
@cython.auto_pickle(False)
cdef class VridTable:
    """The instances sharing one receive socket, by VRID (see the reference)."""

    def __cinit__(self):
        self._objects = [None] * 256
        memset(self.entries, 0, sizeof(self.entries))

    def __setitem__(self, vrid, Expect expect not None):
        cdef Py_ssize_t v = _field(vrid, 0, 255, "vrid")
        self._objects[v] = expect
        self.entries[v] = &expect.c

    def __getitem__(self, vrid):
        cdef Py_ssize_t v = _field(vrid, 0, 255, "vrid")
        e = self._objects[v]
        if e is None:
            raise KeyError(vrid)
        return e

    def __delitem__(self, vrid):
        cdef Py_ssize_t v = _field(vrid, 0, 255, "vrid")
        if self._objects[v] is None:
            raise KeyError(vrid)
        self._objects[v] = None
        self.entries[v] = NULL

    def __contains__(self, vrid):
        return isinstance(vrid, int) and 0 <= vrid <= 255 and self._objects[vrid] is not None

    def __len__(self):
        return sum([e is not None for e in self._objects])

    def validate(self, Batch batch not None, count):
        """Validate packets ``0..count-1`` of ``batch``; fills ``batch.status`` & co. and
        returns how many were accepted. No Python object is created per packet."""
        cdef Py_ssize_t n = _field(count, 0, batch.c.capacity, "count")
        return vrrp_validate_batch(self.entries, &batch.c, n)
