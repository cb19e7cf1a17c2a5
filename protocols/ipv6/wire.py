"""The fixed IPv6 header (RFC 8200 §3): a checked parse, then a repr with emit; the addresses
Linux refuses on input; the upper-layer pseudo-header sum (RFC 8200 §8.1).

`Ipv6Repr.parse` validates once and never raises: a malformed header gives the name of the
Ipv6Stats counter to bump.  A frame longer than 40 + payload length carries link padding and
is trimmed by the caller to `total_len` (Linux pskb_trim_rcsum); a shorter one is dropped.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from .addr import SCOPE_INTERFACE_LOCAL, int_to_ip6, is_loopback, is_multicast, multicast_scope

HDR_LEN = 40
VERSION = 6
DEFAULT_HOP_LIMIT = 64          # Linux net.ipv6.conf.*.hop_limit
MIN_MTU = 1280                  # RFC 8200 §5
MAX_PAYLOAD_LEN = 0xFFFF        # without a Jumbo Payload option (RFC 2675, not supported)

# next header values (IANA protocol numbers; RFC 8200 §4.1 for the extension headers)
NH_HOPOPTS = 0
NH_TCP = 6
NH_UDP = 17
NH_ROUTING = 43
NH_FRAGMENT = 44
NH_ESP = 50
NH_AH = 51
NH_ICMPV6 = 58
NH_NONE = 59                    # RFC 8200 §4.7
NH_DSTOPTS = 60

ECN_MASK = 0x03

_HDR = struct.Struct("!IHBB")   # version/traffic class/flow label, payload length, next header, hop limit


@dataclass(slots=True)
class Ipv6Repr:
    """The fields of the fixed header.  Extension headers are walked by exthdr.walk_chain."""
    src: int
    dst: int
    next_header: int
    payload_len: int
    hop_limit: int = DEFAULT_HOP_LIMIT
    traffic_class: int = 0      # DSCP << 2 | ECN (RFC 2474, RFC 3168)
    flow_label: int = 0         # 20 bits (RFC 6437)

    @property
    def total_len(self) -> int:
        return HDR_LEN + self.payload_len

    @property
    def dscp(self) -> int:
        return self.traffic_class >> 2

    @property
    def ecn(self) -> int:
        return self.traffic_class & ECN_MASK

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> Ipv6Repr | str:
        """A repr, or the name of the counter to bump when the header is malformed."""
        n = len(data)
        if n < HDR_LEN:
            return "in_truncated_pkts"
        vtf, plen, nh, hlim = _HDR.unpack_from(data, 0)
        if vtf >> 28 != VERSION:
            return "in_hdr_errors"
        if HDR_LEN + plen > n:
            # RFC 4293 ipSystemStatsInTruncatedPkts; a payload length of 0 with a hop-by-hop
            # header would announce a jumbogram (RFC 2675 §3), which never fits a link here
            return "in_truncated_pkts"
        return cls(int.from_bytes(data[8:24], "big"), int.from_bytes(data[24:40], "big"), nh, plen, hlim,
                   (vtf >> 20) & 0xFF, vtf & 0xFFFFF)

    def emit(self, into: memoryview | bytearray) -> None:
        """Write the 40-octet header into `into[0:40]` (e.g. `pkt.prepend(HDR_LEN)`)."""
        _HDR.pack_into(into, 0, VERSION << 28 | (self.traffic_class & 0xFF) << 20 | (self.flow_label & 0xFFFFF),
                       self.payload_len, self.next_header, self.hop_limit)
        into[8:24] = self.src.to_bytes(16, "big")
        into[24:40] = self.dst.to_bytes(16, "big")

    def to_bytes(self) -> bytes:
        out = bytearray(HDR_LEN)
        self.emit(out)
        return bytes(out)

    def __str__(self) -> str:
        return (f"{int_to_ip6(self.src)} > {int_to_ip6(self.dst)} nh={self.next_header} "
                f"len={self.payload_len} hlim={self.hop_limit}")


def check_addresses(src: int, dst: int, *, loopback_if: bool = False) -> str | None:
    """The address rules Linux's ip6_rcv_core applies before routing, each a header error
    (ipSystemStatsInHdrErrors), or None when the pair may be received:
    - ::1 as source or destination on a non-loopback interface (RFC 4291 §2.5.3);
    - a multicast source (RFC 4291 §2.7: "must not be used as source addresses");
    - a multicast destination of reserved scope 0 (RFC 4291 §2.7: "silently dropped");
    - interface-local multicast arriving from the wire (RFC 4291 errata 3480)."""
    if not loopback_if and (is_loopback(src) or is_loopback(dst)):
        return "in_hdr_errors"
    if is_multicast(src):
        return "in_hdr_errors"
    if is_multicast(dst):
        scope = multicast_scope(dst)
        if scope == 0 or (scope == SCOPE_INTERFACE_LOCAL and not loopback_if):
            return "in_hdr_errors"
    return None


def pseudo_header_sum(src: int, dst: int, next_header: int, upper_len: int) -> int:
    """Folded (uncomplemented) ones'-complement sum of the RFC 8200 §8.1 pseudo-header: source,
    destination (the final one when a routing header is present), 32-bit upper-layer length,
    three zero octets and the next header.  Feed it to ndd.checksum's `initial`.

    2**16 == 1 (mod 0xFFFF), so the sum of an int's 16-bit words equals the int modulo 0xFFFF
    (the trick ndd/checksum.py relies on): no need to split the addresses into words."""
    v = src + dst + upper_len + next_header
    if v == 0:
        return 0
    s = v % 0xFFFF
    return s if s else 0xFFFF
