# cython: language_level=3
"""C-level interface of the compiled VRRP codec, for the VRRP hot path to ``cimport``.

Everything here runs without the GIL and without creating Python objects: the future
steady-state path (a MASTER's advert going out, a BACKUP re-arming its master-down
timer on a valid advert) calls ``vrrp_encode``/``vrrp_update_priority`` into its own
buffers and ``vrrp_validate_batch`` on a ``Batch`` filled by ``recvmmsg``.
Reason codes are the values of ``fastka.vrrp.constants.Reason`` (0 = accepted).
"""

from libc.stdint cimport int16_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t


cdef enum:
    VRRP_SIG_INLINE = 128           # signatures up to this long live in vrrp_expect_t itself


ctypedef struct vrrp_expect_t:
    # what one instance accepts; see fastka._vrrp_py.Expect for the meaning of each field
    int version                     # 2, 3; 0 = any
    int auth_type                   # 0, 1, 2; -1 = not checked
    uint8_t auth_data[8]            # auth_pass, zero-padded: PASS password / AH HMAC key
    int adver_int                   # s (v2) / cs (v3); 0 = not checked
    int unicast                     # 1 unicast, 0 multicast, -1 unknown
    bint v3_checksum_as_v2
    bint old_unicast_checksum
    bint strict_addresses
    Py_ssize_t addresses_len        # -1: address list not checked
    const uint8_t *addresses        # packed, owned by the Expect object
    int64_t ah_last_seq             # -1: none accepted yet
    # the last accepted packet without AH, for FLAG_UNCHANGED and the batch fast path:
    # its signature (see fastka._vrrp_py._signature) is in sig_inline when it fits (the
    # batch path then reaches it without loading a pointer), else in last_sig
    uint8_t *last_sig               # malloc'd, for signatures longer than VRRP_SIG_INLINE
    Py_ssize_t last_len             # -1: none
    Py_ssize_t last_cap             # of last_sig
    int last_flags
    uint8_t sig_inline[VRRP_SIG_INLINE]


ctypedef struct vrrp_pkt_t:
    # one received packet: filled by the caller / vrrp_parse_ipv4, completed by vrrp_check
    const uint8_t *data             # IPv4 header, or the VRRP message when ihl == 0
    Py_ssize_t ihl                  # IPv4 header length, 0 without header
    Py_ssize_t ah                   # AH header offset, -1 without
    Py_ssize_t mo                   # VRRP message offset
    Py_ssize_t end                  # end of what arrived (Ethernet padding trimmed)
    int family                      # AF_INET / AF_INET6
    int ttl                         # TTL / hop limit, -1 unknown
    const uint8_t *src              # packed source, NULL if unknown
    const uint8_t *dst              # packed destination, NULL if unknown
    # outputs of vrrp_check
    Py_ssize_t msg_len
    int flags                       # FLAG_* of fastka.vrrp.constants
    int64_t ah_seq                  # -1 without AH


ctypedef struct vrrp_batch_t:
    # the memory of a Batch object (see fastka._vrrp_py.Batch)
    Py_ssize_t capacity
    Py_ssize_t slot_size
    int family
    uint8_t *buffer
    uint32_t *length
    int16_t *hoplimit
    uint8_t *src
    uint8_t *dst
    uint8_t *status
    uint8_t *vrid
    uint8_t *priority
    uint8_t *flags
    uint16_t *adver_int


# RFC 1071 sum of p[0:n] in native byte order, added to acc (n may be odd: pass the
# pieces of one message in order, every piece but the last of even length).
cdef uint64_t vrrp_sum(const uint8_t *p, Py_ssize_t n, uint64_t acc) noexcept nogil
# Fold a vrrp_sum accumulator to 16 bits (native order; 0xffff over a valid whole).
cdef uint16_t vrrp_fold(uint64_t acc) noexcept nogil
# Checksum a VRRP message should carry (its checksum field counted as zero), as an
# integer; with src/dst (alen 4 or 16) the pseudo-header is included.
cdef uint16_t vrrp_checksum_c(const uint8_t *msg, Py_ssize_t n, const uint8_t *src,
                              const uint8_t *dst, int alen) noexcept nogil
# Write an advert at out (the caller checked the fields and the space: 8 + addrs_len,
# + 8 for v2); alen 4 or 16 (v2: 4); src/dst only for v3 (may be NULL if not
# pseudo_header and alen == 4). Returns the length.
cdef Py_ssize_t vrrp_encode(uint8_t *out, int version, int vrid, int priority, int adver_int,
                            const uint8_t *addrs, Py_ssize_t addrs_len, int auth_type,
                            const uint8_t *auth, Py_ssize_t auth_len, const uint8_t *src,
                            const uint8_t *dst, int alen, bint pseudo_header) noexcept nogil
# Set the priority of the message at msg and patch its checksum (RFC 1624); returns it.
cdef uint16_t vrrp_update_priority(uint8_t *msg, int priority) noexcept nogil
# Write the 20-byte IPv4 header Keepalived sends (TOS 0xc0, DF clear, checksum).
cdef void vrrp_ipv4_header(uint8_t *out, const uint8_t *src, const uint8_t *dst, int ttl,
                           int ident, int protocol, int total_len) noexcept nogil
# Fill the AH header of the IPv4 packet at pkt (header, 24-byte AH, advert; n bytes).
cdef void vrrp_ah_sign(uint8_t *pkt, Py_ssize_t n, const uint8_t *key, uint32_t seq) noexcept nogil
# Dispatcher-level parse of a raw IPv4 packet into pkt (src/dst/ttl point into it).
cdef int vrrp_parse_ipv4(const uint8_t *p, Py_ssize_t n, vrrp_pkt_t *pkt) noexcept nogil
# Instance checks in Keepalived's order; track: update e.ah_last_seq on acceptance.
cdef int vrrp_check(vrrp_pkt_t *pkt, vrrp_expect_t *e, bint track) noexcept nogil
# Validate packets 0..n-1 of a batch against table[vrid]; returns how many were accepted.
# A packet identical to the last one its instance accepted (IPv4 ID/fragment/checksum
# aside; no AH) is accepted without re-running the checks and flagged FLAG_UNCHANGED: the
# steady state costs a table lookup and a compare.
cdef Py_ssize_t vrrp_validate_batch(vrrp_expect_t **table, vrrp_batch_t *b,
                                    Py_ssize_t n) noexcept nogil


cdef class Expect:
    cdef vrrp_expect_t c
    cdef bytes _addresses
    cdef object _unicast_obj


cdef class Advert:
    cdef object _data               # bytes holding the message
    cdef Py_ssize_t _off
    cdef Py_ssize_t _len
    cdef readonly long long ah_seq
    cdef uint8_t _src[16]
    cdef uint8_t _dst[16]
    cdef readonly uint16_t adver_int
    cdef readonly uint16_t checksum
    cdef readonly int16_t ttl
    cdef readonly uint8_t version
    cdef uint8_t _type
    cdef readonly uint8_t vrid
    cdef readonly uint8_t priority
    cdef readonly uint8_t count
    cdef readonly uint8_t auth_type
    cdef readonly uint8_t family
    cdef readonly uint8_t flags
    cdef uint8_t _srclen
    cdef uint8_t _dstlen


cdef class VridTable:
    cdef vrrp_expect_t *entries[256]
    cdef list _objects


cdef class Batch:
    cdef vrrp_batch_t c
    cdef object _keep
    cdef readonly object buffer
    cdef readonly object length
    cdef readonly object hoplimit
    cdef readonly object src
    cdef readonly object dst
    cdef readonly object status
    cdef readonly object vrid
    cdef readonly object priority
    cdef readonly object flags
    cdef readonly object adver_int
