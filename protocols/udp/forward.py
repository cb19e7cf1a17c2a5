"""The UDP side of a gateway (issue 13): a datagram no socket takes goes to the owner's
`Udp.forwarder` as a `UdpForward` instead of drawing an ICMP port unreachable; the owner
relays it through a host socket and answers with `Udp.forward_send` (a datagram from the
remote's address and port, as Linux's IP_TRANSPARENT allows a gateway) and, when the host
socket reports an error (IP_RECVERR), `Udp.forward_error` (an ICMP(v6) error to the guest
quoting a datagram of that flow, which is all the guest's udp_err needs to find its socket).

The core keeps nothing per flow: the forwarder is called in the packet's path and what it
keeps is its business, so nothing here grows with the guest's traffic.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..ipv4 import FLAG_DF, IPPROTO_UDP, Ipv4Repr
from ..ipv6.wire import Ipv6Repr
from .wire import UDP_HLEN

if TYPE_CHECKING:
    from ..ifnet import Interface

# forward_error's `kind`: destination unreachable for a port, a host, a network, a filter;
# "frag" the path MTU (IPv4 fragmentation needed, RFC 1191; IPv6 Packet Too Big, RFC 8201)
ICMP_CODES = {"net": 0, "host": 1, "port": 3, "frag": 4, "admin": 13}
ICMP6_CODES = {"net": 0, "admin": 1, "host": 3, "port": 4}


@dataclass(frozen=True, slots=True)
class UdpForward:
    """A datagram no socket took: from the guest (`src`, `sport`) to (`dst`, `dport`).
    Addresses are ints (32- or 128-bit by `family`); `ifp` the interface it came in by."""
    family: int
    src: int
    sport: int
    dst: int
    dport: int
    payload: bytes
    ifp: Interface | None
    now: float


def invoking_datagram4(src: int, sport: int, dst: int, dport: int, length: int, df: bool) -> bytes:
    """The IPv4 header and UDP header of a datagram of the flow, as an ICMP error quotes it
    (RFC 792: the header and the first 64 bits): what a real network's error would carry."""
    header = bytearray(20)
    Ipv4Repr(src, dst, IPPROTO_UDP, 20 + UDP_HLEN + length, flags_frag=FLAG_DF if df else 0).emit(header)
    return bytes(header) + struct.pack("!HHHH", sport, dport, UDP_HLEN + length, 0)


def invoking_datagram6(src: int, sport: int, dst: int, dport: int, length: int) -> bytes:
    """The same for IPv6 (RFC 4443 §2.4(c)): the fixed header and the UDP header."""
    header = bytearray(40)
    Ipv6Repr(src, dst, IPPROTO_UDP, UDP_HLEN + length, 64).emit(header)
    return bytes(header) + struct.pack("!HHHH", sport, dport, UDP_HLEN + length, 0)
