"""DNS_CHECK (behaviour.md §C1): one UDP query for ``name``/``type``; success = a reply
with the same ID, QR set and RCODE NOERROR. dnspython builds and parses the messages;
the socket and the waiting are ours."""

from __future__ import annotations

import secrets

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from fastka.check.base import LoopLike, Target
from fastka.check.spec import DnsParams
from fastka.check.udp import DatagramProbe


class DnsProbe(DatagramProbe):
    __slots__ = ("_query", "params", "query_id")

    def __init__(self, loop: LoopLike, target: Target, timeout: float, params: DnsParams) -> None:
        super().__init__(loop, target, timeout)
        self.params = params
        self.query_id = 0
        self._query = dns.message.make_query(params.name, dns.rdatatype.from_text(params.type))

    def request(self) -> bytes:
        self.query_id = self._query.id = secrets.randbelow(65536)  # fresh ID per attempt
        wire: bytes = self._query.to_wire()
        return wire

    def reply(self, data: bytes, length: int) -> bool | None:
        if len(data) < 12 or int.from_bytes(data[:2], "big") != self.query_id:
            return None  # not an answer to this query: keep waiting
        try:
            msg = dns.message.from_wire(data, question_only=True)
        except dns.exception.DNSException:
            return False
        return bool(msg.flags & dns.flags.QR) and msg.rcode() == dns.rcode.NOERROR
