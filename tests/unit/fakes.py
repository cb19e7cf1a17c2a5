"""A host built from the real tables (ifnet, routes, protosw) around an Ipv4 core, with
recording fakes in place of the NDD and the link layer.  No trio, no devices."""
from __future__ import annotations

import random
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from ndd import gso
from ndd.checksum import checksum
from ndd.ndd import DeviceCaps
from ndd.pktbuf import PacketBuffer
from protocols.addr import ip_to_int
from protocols.contracts import PR_ADDR, PR_ATOMIC, ProtocolSwitch, Protosw
from protocols.icmp import Icmp
from protocols.ifnet import IFF_BROADCAST, IFF_RUNNING, IFF_UP, Interface, InterfaceTable
from protocols.ipv4 import IPPROTO_ICMP, Ipv4
from protocols.route import RoutingTable


@dataclass
class StubNdd:
    ndd_name: str
    ndd_mtu: int = 1500
    ndd_flags: int = 0x1 | 0x8          # NDD UP | RUNNING
    ndd_physaddr: bytes = b"\x02\x00\x00\x00\x00\x01"


@dataclass
class RecordingLink:
    """Stands in for EtherLink/RawIpLink: keeps what IPv4 hands down, as its device would
    get it (ndd/gso.py: checksums finished and super-segments cut unless the NDD's caps,
    when a test sets them, say the device does that itself)."""
    sent: list[tuple[bytes, int, float]] = field(default_factory=list)
    err: int = 0
    ndd: Any = None

    def cached_header(self, nexthop: int) -> bytes | None:
        return None                   # contracts.LinkOutput: no header ready, output() each time

    def cached_header6(self, nexthop: int, src: int, now: float) -> bytes | None:
        return None

    def output(self, pkt: PacketBuffer, nexthop: int, now: float) -> int:
        frames = gso.frames_for(pkt, getattr(self.ndd, "caps", None) or DeviceCaps())
        assert frames is not None, "a super-segment the device layer cannot cut"
        for frame in frames:
            self.sent.append((frame.tobytes(), nexthop, now))
        return self.err


@dataclass
class Host:
    ifnet: InterfaceTable
    routes: RoutingTable
    protosw: ProtocolSwitch
    ipv4: Ipv4
    eth0: Interface
    link: RecordingLink

    def add_interface(self, name: str, addr: str, prefixlen: int, mtu: int = 1500) -> tuple[Interface, RecordingLink]:
        ifp = self.ifnet.create(name, StubNdd(name, mtu), mtu, IFF_UP | IFF_RUNNING | IFF_BROADCAST)
        link = RecordingLink(ndd=ifp.ndd)
        ifp.link = link
        ia = self.ifnet.add_address(ifp, ip_to_int(addr), prefixlen)
        self.routes.add((ia.network, prefixlen), ifp, source=ia.addr, proto="kernel")
        return ifp, link


def make_host(addr: str = "10.0.0.2", prefixlen: int = 24, mtu: int = 1500, seed: int = 1) -> Host:
    ifnet, routes, protosw = InterfaceTable(), RoutingTable(), ProtocolSwitch()
    protosw.add_domain(socket.AF_INET, "internet")
    ipv4 = Ipv4(ifnet, routes, protosw, rng=random.Random(seed))
    host = Host(ifnet, routes, protosw, ipv4, None, None)  # type: ignore[arg-type]
    host.eth0, host.link = host.add_interface("eth0", addr, prefixlen, mtu)
    return host


def make_icmp_host(rate: float = 1000.0, burst: int = 50, random_cost: bool = False, ratelimit: float = 1.0,
                   **kw) -> tuple[Host, Icmp]:
    """A host with ICMP registered the way the Stack does (the rate limiter's
    random cost off unless asked for, so tests can count errors exactly)."""
    host = make_host(**kw)
    icmp = Icmp(host.ipv4, rate=rate, burst=burst, rng=random.Random(kw.get("seed", 1)), random_cost=random_cost,
                ratelimit=ratelimit)
    host.protosw.add(socket.AF_INET, Protosw("icmp", socket.SOCK_RAW, IPPROTO_ICMP, input=icmp.input,
                                             ctlinput=icmp.ctlinput, flags=PR_ATOMIC | PR_ADDR, core=icmp))
    return host, icmp


def ip_packet(src: str | int, dst: str | int, proto: int, payload: bytes = b"", *, ttl: int = 64, tos: int = 0,
              ident: int = 1, ff: int = 0, options: bytes = b"", total: int | None = None) -> bytes:
    """An IPv4 datagram built by hand with struct (independently of Ipv4Repr.emit)."""
    hl = 20 + len(options)
    total = hl + len(payload) if total is None else total
    hdr = bytearray(struct.pack("!BBHHHBBHII", 0x40 | hl // 4, tos, total, ident, ff, ttl, proto, 0,
                                ip_to_int(src), ip_to_int(dst)) + options)
    struct.pack_into("!H", hdr, 10, checksum(hdr))
    return bytes(hdr) + payload


def rx(data: bytes, headroom: int = 14) -> PacketBuffer:
    """A received packet as a driver hands it up: read-only bytes after a link header."""
    return PacketBuffer(bytes(headroom) + data, headroom)
