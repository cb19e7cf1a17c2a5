"""Sending an IP datagram to a given link-layer address, with no ARP (contracts.LinkAddressOutput,
Interface.transmit_to, Ipv4.output(lladdr=...), EtherLink.output_to): what the gateway's DHCP
server needs to answer a client that has no address yet at its chaddr (RFC 2131 §4.1)."""
from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, field

from ndd.checksum import verify
from ndd.pktbuf import PacketBuffer
from protocols.addr import ip_to_int
from protocols.contracts import LinkAddressOutput
from protocols.ether import ETHERTYPE_IPV4, ETHERTYPE_IPV6, EtherLink, RawIpLink
from protocols.ifnet import IFF_RUNNING
from protocols.ipv4 import Ipv4Repr
from protocols.ipv6.wire import Ipv6Repr

from .fakes import make_host

CLIENT_MAC = bytes.fromhex("020000aabbcc")
OUR_MAC = bytes.fromhex("020000000001")
UDP = 17


@dataclass
class AddressedLink:
    """A link with link-layer addresses: records both ways out."""
    resolved: list[tuple[bytes, int]] = field(default_factory=list)
    direct: list[tuple[bytes, bytes]] = field(default_factory=list)

    def cached_header(self, nexthop: int) -> bytes | None:
        return None                   # contracts.LinkOutput: no header ready, output() each time

    def cached_header6(self, nexthop: int, src: int, now: float) -> bytes | None:
        return None

    def output(self, pkt: PacketBuffer, nexthop: int, now: float) -> int:
        self.resolved.append((pkt.tobytes(), nexthop))
        return 0

    def output_to(self, pkt: PacketBuffer, lladdr: bytes, now: float) -> int:
        self.direct.append((pkt.tobytes(), lladdr))
        return 0


@dataclass
class RecordingNdd:
    ndd_physaddr: bytes = OUR_MAC
    frames: list[bytes] = field(default_factory=list)

    def ndd_output(self, pkt: PacketBuffer) -> int:
        self.frames.append(pkt.tobytes())
        return 0


class NoArp:
    """An ARP cache that must not be asked."""

    def resolve(self, nexthop: int, pkt: PacketBuffer, now: float) -> bytes | None:
        raise AssertionError("output_to must not resolve")


def test_ipv4_output_to_a_link_address_skips_resolution() -> None:
    host = make_host()
    link = AddressedLink()
    host.eth0.link = link
    pkt = PacketBuffer.from_payload(b"offer")
    err = host.ipv4.output(pkt, ip_to_int("10.0.0.2"), ip_to_int("10.0.0.100"), UDP, 0.0,
                           ifp=host.eth0, lladdr=CLIENT_MAC)
    assert err == 0 and not link.resolved
    (datagram, lladdr), = link.direct
    assert lladdr == CLIENT_MAC
    ip = Ipv4Repr.parse(datagram)
    assert not isinstance(ip, str)
    assert (ip.src, ip.dst, ip.proto, datagram[20:]) == (ip_to_int("10.0.0.2"), ip_to_int("10.0.0.100"), UDP, b"offer")


def test_ipv4_output_to_a_link_address_needs_the_interface() -> None:
    host = make_host()
    link = AddressedLink()
    host.eth0.link = link
    err = host.ipv4.output(PacketBuffer.from_payload(b"x"), 0, ip_to_int("10.0.0.100"), UDP, 0.0, lladdr=CLIENT_MAC)
    assert err == errno.EINVAL and not link.direct and not link.resolved
    assert host.ipv4.stats.out_discards == 1


def test_a_link_without_link_addresses_refuses() -> None:
    host = make_host()          # its RecordingLink has no output_to: a TUN's RawIpLink is the same
    assert not isinstance(host.link, LinkAddressOutput) and not isinstance(RawIpLink(None), LinkAddressOutput)  # type: ignore[arg-type]
    err = host.ipv4.output(PacketBuffer.from_payload(b"x"), 0, ip_to_int("10.0.0.100"), UDP, 0.0,
                           ifp=host.eth0, lladdr=CLIENT_MAC)
    assert err == errno.EOPNOTSUPP and not host.link.sent
    assert host.ipv4.stats.out_discards == 1


def test_an_interface_down_is_enetdown() -> None:
    host = make_host()
    link = AddressedLink()
    host.eth0.link = link
    host.eth0.flags &= ~IFF_RUNNING
    err = host.eth0.transmit_to(PacketBuffer.from_payload(b"x"), CLIENT_MAC, 0.0)
    assert err == errno.ENETDOWN and not link.direct


def test_fragments_all_go_to_the_link_address() -> None:
    host = make_host(mtu=576)
    link = AddressedLink()
    host.eth0.link = link
    err = host.ipv4.output(PacketBuffer.from_payload(bytes(1400)), 0, ip_to_int("10.0.0.100"), UDP, 0.0,
                           ifp=host.eth0, lladdr=CLIENT_MAC)
    assert err == 0 and len(link.direct) == 3 and not link.resolved
    assert {lladdr for _, lladdr in link.direct} == {CLIENT_MAC}
    assert sum(len(d) - 20 for d, _ in link.direct) == 1400


def test_etherlink_frames_ipv4_and_ipv6_to_the_given_mac() -> None:
    host = make_host()
    ndd = RecordingNdd()
    link = EtherLink(host.eth0, ndd, NoArp())  # type: ignore[arg-type]
    assert isinstance(link, LinkAddressOutput)
    v4 = bytearray(28)
    Ipv4Repr(ip_to_int("10.0.0.2"), ip_to_int("10.0.0.100"), UDP, 28).emit(v4)
    assert link.output_to(PacketBuffer.from_payload(bytes(v4)), CLIENT_MAC, 0.0) == 0
    v6 = bytearray(40)
    Ipv6Repr(0xFE80 << 112 | 1, 0xFE80 << 112 | 2, 59, 0, 64).emit(v6)
    assert link.output_to(PacketBuffer.from_payload(bytes(v6)), CLIENT_MAC, 0.0) == 0
    (f4, f6) = ndd.frames
    assert struct.unpack("!6s6sH", f4[:14]) == (CLIENT_MAC, OUR_MAC, ETHERTYPE_IPV4)
    assert f4[14:] == bytes(v4) and verify(f4[14:34])
    assert struct.unpack("!6s6sH", f6[:14]) == (CLIENT_MAC, OUR_MAC, ETHERTYPE_IPV6)


def test_etherlink_refuses_a_link_address_that_is_not_a_mac() -> None:
    host = make_host()
    ndd = RecordingNdd()
    link = EtherLink(host.eth0, ndd, NoArp())  # type: ignore[arg-type]
    v4 = bytearray(20)
    Ipv4Repr(1, 2, UDP, 20).emit(v4)
    assert link.output_to(PacketBuffer.from_payload(bytes(v4)), b"\x02\x00", 0.0) == errno.EINVAL
    assert not ndd.frames
