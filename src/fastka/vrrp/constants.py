"""VRRP wire constants and the decode-failure reasons, named as in the RFCs.

Both codec implementations (``fastka._vrrp`` and ``fastka._vrrp_py``) import this module,
so it must not import either of them; ``fastka.vrrp.codec`` re-exports everything here.
RFC 3768 is VRRPv2 (IPv4 only), RFC 5798 VRRPv3 (IPv4 and IPv6), RFC 9568 its update,
RFC 2402 the IPsec Authentication Header Keepalived still uses with VRRPv2.
"""

from __future__ import annotations

import socket
from enum import IntEnum

# RFC 3768 §5.3.1 / RFC 5798 §5.2.1
VRRP_VERSION_2 = 2
VRRP_VERSION_3 = 3
# RFC 3768 §5.3.2 / RFC 5798 §5.2.2: the only type defined
VRRP_TYPE_ADVERTISEMENT = 1
# IANA protocol numbers (RFC 3768 §5.2.4, RFC 2402 §2)
IPPROTO_VRRP = 112
IPPROTO_AH = 51
# RFC 3768 §5.2.2 / RFC 5798 §5.1.1.2 and §5.1.2.2
VRRP_MCAST_GROUP4 = "224.0.0.18"
VRRP_MCAST_GROUP6 = "ff02::12"
VRRP_MCAST_GROUP4_PACKED = socket.inet_pton(socket.AF_INET, VRRP_MCAST_GROUP4)
VRRP_MCAST_GROUP6_PACKED = socket.inet_pton(socket.AF_INET6, VRRP_MCAST_GROUP6)
# RFC 3768 §5.2.3 / RFC 5798 §5.1.1.3: TTL / hop limit of every advert, checked on receive
VRRP_TTL = 255
# Keepalived sends with TOS / traffic class 0xc0 (internetwork control)
VRRP_TOS = 0xC0
# RFC 3768 §5.3.4 priority: 255 = address owner, 0 = master stops
VRRP_PRIO_OWNER = 255
VRRP_PRIO_STOP = 0
# RFC 3768 §5.3.6 auth types (RFC 5798 removed authentication)
VRRP_AUTH_NONE = 0
VRRP_AUTH_PASS = 1
VRRP_AUTH_AH = 2
VRRP_AUTH_DATA_LEN = 8
# Header sizes: VRRP fixed part, IPv4 header as Keepalived builds it, RFC 2402 AH with
# HMAC-MD5-96 (next header, payload len 4, reserved, SPI, sequence, 12-byte ICV)
VRRP_HEADER_LEN = 8
IPV4_HEADER_LEN = 20
AH_HEADER_LEN = 24
AH_ICV_LEN = 12
# RFC 5798 §5.2.7: Max Adver Int is a 12-bit count of centiseconds
VRRP_V3_MAX_ADVER_INT = 0xFFF
# count_ip is one byte
VRRP_MAX_ADDRESSES = 255

AF_INET = int(socket.AF_INET)
AF_INET6 = int(socket.AF_INET6)

# Batch ``status`` value of an accepted packet (every other value is a ``Reason``).
ACCEPTED = 0

# ``Advert.flags`` / ``Batch.flags`` bits: facts about an *accepted* advert.
FLAG_MULTICAST = 0x01  # destination was multicast (known destination only)
FLAG_CHECKSUM_UNVERIFIED = 0x02  # v3 without src/dst, or receiver in v3_checksum_as_v2 mode
FLAG_OLD_UNICAST_CHECKSUM = 0x04  # v3 unicast checksum matched only with 224.0.0.18 as pseudo dst
FLAG_AUTH_UNVERIFIED = 0x08  # PASS/AH present but no expectation to check it against
FLAG_ADVER_INT_DIFFERS = 0x10  # v3: interval differs from ours (accepted: RFC 5798 learning)
FLAG_ADDRESS_MISMATCH = 0x20  # address set differs from the expected one (accepted unless strict)
FLAG_AH = 0x40  # arrived with an IPsec AH header (ah_seq is valid)
# Same packet as the last one this ``Expect`` accepted (every byte but the IPv4 ID,
# fragment and checksum fields; same source, destination and TTL): the steady state of a
# BACKUP hearing its master. Never set with AH (each AH packet must be verified).
FLAG_UNCHANGED = 0x80


class Reason(IntEnum):
    """Why a received VRRP packet was refused (``VrrpDecodeError.reason``).

    Values follow the order of the checks (Keepalived's ``vrrp_check_packet()``, see
    behaviour.md V2; for IPv6 the destination kind, 21/22, is checked first, by the
    dispatcher). Each is either KO (an invalid packet) or DROP (ignored without
    complaint); the state machines treat both alike: the master-down timer is not reset.
    """

    # -- before the instance is known (dispatcher level)
    TOO_SHORT = 1  # shorter than IP header (+ AH) + the 8-byte VRRP header
    BAD_IP_HEADER = 2  # not IPv4, or an IHL that does not fit
    BAD_IP_PROTOCOL = 3  # IPv4 protocol neither 112 (VRRP) nor 51 (AH)
    UNKNOWN_VRID = 4  # batch path: no instance registered for this VRID (DROP)
    # -- instance checks, in Keepalived's order
    AH_UNEXPECTED = 5  # AH header but auth type is not AH
    AH_MISSING = 6  # auth type AH but no AH header
    BAD_LENGTH = 7  # length does not match the address count (Ethernet padding tolerated)
    BAD_TTL = 8  # multicast advert whose TTL / hop limit is not 255
    BAD_VERSION = 9  # not the instance's version (or not 2/3; or v2 over IPv6)
    BAD_AUTH_TYPE = 10  # v2 auth type not in {0, 1, 2}
    AUTH_TYPE_MISMATCH = 11  # v2 auth type differs from the configured one
    AUTH_DATA_MISMATCH = 12  # v2 PASS: the 8 password bytes differ
    BAD_AH_HEADER = 13  # AH next header not 112 or payload length not 4 (DROP)
    BAD_AH_ICV = 14  # HMAC-MD5-96 ICV does not verify
    BAD_AH_SPI = 15  # SPI differs from the IPv4 source address
    AH_SEQUENCE = 16  # AH sequence number not above the last accepted one (replay)
    ADVER_INT_MISMATCH = 17  # v2: advert interval differs from ours (DROP)
    BAD_TYPE = 18  # type is not 1 (ADVERTISEMENT)
    BAD_IP_TOTAL_LENGTH = 19  # IPv4 total length differs from the received length
    BAD_CHECKSUM = 20
    EXPECTED_UNICAST = 21  # multicast destination on a unicast instance
    EXPECTED_MULTICAST = 22  # unicast destination on a multicast instance
    ADDRESS_MISMATCH = 23  # address set differs and the instance is strict (2.2.7 rule)

    @property
    def is_drop(self) -> bool:
        """True for the reasons Keepalived ignores silently rather than counting as errors."""
        return self in DROP_REASONS


DROP_REASONS = frozenset({Reason.UNKNOWN_VRID, Reason.BAD_AH_HEADER, Reason.ADVER_INT_MISMATCH})
