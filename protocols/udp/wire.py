"""UDP on the wire (RFC 768): the header view/repr, the checksum over the IPv4 and IPv6
pseudo-headers (RFC 768, RFC 8200 §8.1), the datagram size limits."""
from __future__ import annotations

import struct
from dataclasses import dataclass

from ndd.checksum import checksum, pseudo_header_sum

from ..ipv4 import HDR_LEN, IPPROTO_UDP
from ..ipv6.wire import MAX_PAYLOAD_LEN as IP6_MAX_PAYLOAD_LEN
from ..ipv6.wire import pseudo_header_sum as pseudo_header_sum6

UDP_HLEN = 8
MAX_PAYLOAD = 65535 - HDR_LEN - UDP_HLEN     # 65507
MAX_PAYLOAD6 = IP6_MAX_PAYLOAD_LEN - UDP_HLEN   # 65527: Linux's largest IPv6 datagram (no jumbograms)

_HDR = struct.Struct("!HHHH")


@dataclass(slots=True)
class UdpRepr:
    src_port: int
    dst_port: int
    length: int
    checksum: int

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> UdpRepr | str:
        if len(data) < UDP_HLEN:
            return "in_truncated"
        sport, dport, length, csum = _HDR.unpack_from(data, 0)
        if length < UDP_HLEN or length > len(data):
            return "in_truncated"
        return cls(sport, dport, length, csum)


def udp_checksum(src: int, dst: int, segment: bytes | bytearray | memoryview) -> int:
    """RFC 768: over the pseudo-header and the segment; a computed 0 is sent as 0xFFFF."""
    c = checksum(segment, pseudo_header_sum(src, dst, IPPROTO_UDP, len(segment)))
    return c or 0xFFFF


def udp6_checksum(src: int, dst: int, segment: bytes | bytearray | memoryview) -> int:
    """RFC 8200 §8.1: over the IPv6 pseudo-header and the segment; a computed 0 goes as 0xFFFF."""
    c = checksum(segment, pseudo_header_sum6(src, dst, IPPROTO_UDP, len(segment)))
    return c or 0xFFFF


