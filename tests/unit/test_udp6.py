"""UDP over IPv6 and AF_INET6 datagram sockets (protocols/udp/, protocols/inet6sock.py), sans-IO
with an explicit clock, over a real Ipv6 layer on fake interfaces (test_ipv6_ip6's host) and a
real Ipv4 layer (fakes.make_host).  Packets in are built by scapy and packets out parsed by
scapy, so neither side checks itself.  RFC 8200 §8.1, RFC 4443 §3.1 and Linux (net/ipv6/udp.c,
datagram.c, af_inet6.c) case by case."""
from __future__ import annotations

import errno
import random
import socket
import struct
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6PacketTooBig, IPv6, IPv6ExtHdrFragment

from ndd.ndd import DeviceCaps
from ndd.pktbuf import GSO_UDP_L4, PacketBuffer
from protocols.addr import ip_to_int
from protocols.contracts import Protosw
from protocols.icmpv6.core import Icmpv6, Icmpv6Error
from protocols.icmpv6.wire import DEST_UNREACH, PACKET_TOO_BIG, UNREACH_PORT
from protocols.inet6sock import BindKey, Ipv6Mreq, needs_scope_id, rcv_saddr_equal
from protocols.ipv6.addr import ALL_NODES, SourceCandidate, v4_mapped
from protocols.ipv6.ip6 import Ip6Meta
from protocols.sockopt import (
    IPV6_DONTFRAG,
    IPV6_JOIN_GROUP,
    IPV6_LEAVE_GROUP,
    IPV6_MTU_DISCOVER,
    IPV6_MULTICAST_HOPS,
    IPV6_RECVERR,
    IPV6_TCLASS,
    IPV6_UNICAST_HOPS,
    IPV6_V6ONLY,
)
from protocols.udp.pcb import IPV6_MULTICAST_ALL, MAX_MEMBERSHIPS6, Udp6Pcb, UdpPcb
from protocols.udp.udp import Udp
from protocols.udp.usrreq import Udp6UserRequests, UdpUserRequests

from . import fakes
from .fakes import rx
from .test_ipv6_ip6 import PEER, PEER_LL, US, US_LL, US_TENTATIVE, US_ULA, Host, ip, make_host

V4_US, V4_PEER = "10.0.0.2", "10.0.0.1"
GROUP = "ff02::1:3"            # LLMNR's group: link scope
GLOBAL_GROUP = "ff0e::1234"
IPV6 = socket.IPPROTO_IPV6
T0 = 100.0


@dataclass
class Net:
    """One host: the IPv6 core of test_ipv6_ip6 (eth0 index 1, eth1 2, lo 3), an IPv4 core
    (fakes: eth0 10.0.0.2/24), a Udp over both, its AF_INET and AF_INET6 requests."""
    v6: Host
    v4: fakes.Host
    udp: Udp
    usr4: UdpUserRequests
    usr6: Udp6UserRequests
    icmp4: list[tuple[int, int]]
    joins: list[tuple[str, int, int]]

    def deliver6(self, pkt: Any, now: float = T0, ifp: Any = None, csum_valid: bool = False) -> None:
        buf = rx(bytes(pkt))
        buf.csum_valid = csum_valid
        self.v6.ipv6.input(ifp or self.v6.eth0, buf, now)

    def deliver4(self, pkt: Any, now: float = T0) -> None:
        self.v4.ipv4.input(self.v4.eth0, rx(bytes(pkt)), now)

    def sent6(self) -> list[IPv6]:
        out = [IPv6(data) for data, _, _ in self.v6.link.sent]
        self.v6.link.sent.clear()
        return out

    def sent4(self) -> list[IP]:
        out = [IP(data) for data, _, _ in self.v4.link.sent]
        self.v4.link.sent.clear()
        return out

    def sock6(self, **opts: int) -> Udp6Pcb:
        pcb = self.usr6.attach(T0)
        for name, value in opts.items():
            assert self.usr6.setsockopt(pcb, IPV6, globals()[name], value, T0) == 0
        return pcb

    def counters(self) -> dict[str, int]:
        return {k: v for k, v in self.udp.stats.as_dict().items() if v}


def make_net() -> Net:
    v6 = make_host()
    v4 = fakes.make_host(V4_US)
    by_index = {1: v6.eth0, 2: v6.eth1, 3: v6.lo}
    for ifp in (v6.eth0, v6.eth1, v6.lo, v4.eth0):
        ifp.ndd.caps = DeviceCaps()          # type: ignore[attr-defined]  # no offloads
    udp = Udp(v4.ipv4, random.Random(5), v6.ipv6, interface_by_index=by_index.get)
    entry = v6.ipv6.protosw.ip6_protox[17]
    entry.input, entry.ctlinput = udp.input6, udp.ctlinput6
    v4.protosw.add(socket.AF_INET, Protosw("udp", socket.SOCK_DGRAM, 17, input=udp.input,
                                                 ctlinput=udp.ctlinput))
    icmp4: list[tuple[int, int]] = []
    v4.ipv4.send_icmp_error = lambda type_, code, pkt, meta, now, extra: icmp4.append((type_, code))
    usr6 = UdpUserRequests(udp, family=socket.AF_INET6)
    assert isinstance(usr6, Udp6UserRequests)
    net = Net(v6, v4, udp, UdpUserRequests(udp), usr6, icmp4, [])

    def join(ifindex: int, group: int, now: float) -> int:
        net.joins.append(("join", ifindex, group))
        v6.groups.setdefault(ifindex, set()).add(group)     # what MLD + is_ours will do
        return 0

    def leave(ifindex: int, group: int, now: float) -> int:
        net.joins.append(("leave", ifindex, group))
        v6.groups[ifindex].discard(group)
        return 0

    udp.join_group, udp.leave_group = join, leave
    return net


def with_icmpv6(net: Net) -> Icmpv6:
    """The ICMPv6 core registered for next header 58, as the Stack does."""
    icmp = Icmpv6(net.v6.ipv6, rng=random.Random(1), random_cost=False)
    net.v6.ipv6.protosw.add(socket.AF_INET6, Protosw("icmpv6", socket.SOCK_RAW, 58, input=icmp.input,
                                                     ctlinput=icmp.ctlinput))
    return icmp


@pytest.fixture
def net() -> Net:
    return make_net()


def udp6(src: str = PEER, dst: str = US, sport: int = 1000, dport: int = 5000, payload: bytes = b"hello",
         **kw: Any) -> IPv6:
    return IPv6(src=src, dst=dst) / UDP(sport=sport, dport=dport, **kw) / payload


def udp4(src: str = V4_PEER, dst: str = V4_US, sport: int = 1000, dport: int = 5000,
         payload: bytes = b"hello4") -> IP:
    return IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload


def checksum_ok(pkt: IPv6) -> bool:
    """Scapy recomputes the UDP checksum over the IPv6 pseudo-header and compares."""
    u = pkt[UDP]
    sent = u.chksum
    del u.chksum
    return IPv6(bytes(pkt))[UDP].chksum == sent


def sa(addr: str, port: int, scope: int = 0) -> tuple[int, int, int, int]:
    return ip(addr), port, 0, scope


def mapped(v4: str) -> int:
    return v4_mapped(ip_to_int(v4))


# --- the requests object per family ------------------------------------------------------------
def test_one_requests_object_per_family(net: Net) -> None:
    assert type(net.usr4) is UdpUserRequests and net.usr4.family == socket.AF_INET
    assert net.usr6.family == socket.AF_INET6
    assert type(net.usr4.attach(T0)) is UdpPcb and net.usr6.attach(T0).family == socket.AF_INET6
    with pytest.raises(ValueError):
        UdpUserRequests(net.udp, family=socket.AF_UNIX)


# --- input: checksum, lengths, delivery ----------------------------------------------------------
def test_datagram_delivered_with_the_4tuple_sender(net: Net) -> None:
    pcb = net.sock6()
    assert net.usr6.bind(pcb, sa("::", 5000), T0) == 0
    net.deliver6(udp6())
    assert net.usr6.recv(pcb, 100, False, T0) == (b"hello", sa(PEER, 1000))
    assert net.counters() == {"in_datagrams": 1}


def test_link_local_sender_carries_the_incoming_interface_as_scope_id(net: Net) -> None:
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    net.deliver6(udp6(src=PEER_LL, dst=US_LL))
    assert net.usr6.recv(pcb, 100, False, T0) == (b"hello", sa(PEER_LL, 1000, scope=1))


def test_zero_checksum_dropped_and_counted(net: Net) -> None:
    """RFC 8200 §8.1: the UDP checksum is mandatory over IPv6; Linux counts a zero one as
    InCsumErrors + InErrors and answers nothing (no port unreachable either)."""
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    net.deliver6(udp6(chksum=0))
    net.deliver6(udp6(dport=5001, chksum=0))         # nobody there: still no ICMPv6
    assert not pcb.queue
    assert net.counters() == {"in_csum_zero": 2, "in_csum_errors": 2, "in_errors": 2}
    assert net.v6.errors == []


def test_zero_checksum_dropped_even_when_the_device_validated(net: Net) -> None:
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    net.deliver6(udp6(chksum=0), csum_valid=True)
    assert not pcb.queue and net.counters()["in_csum_zero"] == 1


def test_bad_checksum_counted(net: Net) -> None:
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    good = udp6()
    bad = udp6(chksum=(IPv6(bytes(good))[UDP].chksum ^ 0x0101))
    net.deliver6(bad)
    assert not pcb.queue
    assert net.counters() == {"in_csum_errors": 1, "in_errors": 1}
    assert net.v6.errors == []


def test_device_validated_checksum_is_not_recomputed(net: Net) -> None:
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    net.deliver6(udp6(chksum=0x1234), csum_valid=True)      # virtio DATA_VALID: trusted, as on IPv4
    assert len(pcb.queue) == 1


def test_checksum_uses_the_pseudo_header(net: Net) -> None:
    """A checksum right for another source address is wrong here (RFC 8200 §8.1)."""
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    other = IPv6(bytes(udp6(src="2001:db8::99")))[UDP].chksum
    net.deliver6(udp6(chksum=other))
    assert not pcb.queue and net.counters()["in_csum_errors"] == 1


@pytest.mark.parametrize("length", [7, 14, 100])
def test_bad_udp_length_counted_as_truncated(net: Net, length: int) -> None:
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    net.deliver6(udp6(len=length))
    assert not pcb.queue
    assert net.counters() == {"in_truncated": 1, "in_errors": 1}


def test_udp_length_zero_means_the_rest_as_linux(net: Net) -> None:
    """Linux __udp6_lib_rcv takes a UDP length of 0 as the jumbogram convention (RFC 2675 §4):
    the datagram is what the IPv6 payload holds (the kernel delivers it; checked in a netns)."""
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    net.deliver6(udp6(len=0))
    assert net.usr6.recv(pcb, 100, False, T0) == (b"hello", sa(PEER, 1000))


def test_shorter_udp_length_trims_the_payload(net: Net) -> None:
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    raw = bytearray(bytes(IPv6(src=PEER, dst=US) / UDP(sport=1000, dport=5000, len=11) / b"abcdefgh"))
    struct.pack_into("!H", raw, 46, 0)
    pkt = IPv6(bytes(raw))
    pkt[UDP].chksum = IPv6(bytes(IPv6(src=PEER, dst=US) / UDP(sport=1000, dport=5000) / b"abc"))[UDP].chksum
    net.deliver6(pkt)
    assert net.usr6.recv(pcb, 100, False, T0) == (b"abc", sa(PEER, 1000))


def test_gso_super_frame_split_into_datagrams(net: Net) -> None:
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    buf = rx(bytes(udp6(payload=b"aaabbbcc")))
    buf.gso_type, buf.gso_size = GSO_UDP_L4, 3
    net.v6.ipv6.input(net.v6.eth0, buf, T0)
    assert [d for d, _ in pcb.queue] == [b"aaa", b"bbb", b"cc"]


def test_receive_buffer_overflow_counted(net: Net) -> None:
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    pcb.rcvbuf = 2000
    for _ in range(3):
        net.deliver6(udp6(payload=bytes(500)))
    assert len(pcb.queue) == 1
    assert net.counters() == {"in_datagrams": 1, "rcvbuf_errors": 2, "in_errors": 2}


@given(st.binary(max_size=80), st.booleans())
@settings(max_examples=300, deadline=None)
def test_any_bytes_are_dropped_or_delivered_never_raised(data: bytes, csum_valid: bool) -> None:
    net = make_net()
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    buf = PacketBuffer(data)
    buf.csum_valid = csum_valid
    meta = Ip6Meta(ip(PEER), ip(US), 17, 64, 0, 0, net.v6.eth0, 0, 0)
    net.udp.input6(buf, meta, T0)
    c = net.counters()
    assert c.get("in_datagrams", 0) + c.get("in_errors", 0) + c.get("no_ports", 0) >= 1


# --- no listener: ICMPv6 port unreachable -------------------------------------------------------
def test_port_unreachable_through_the_ipv6_layer_hook(net: Net) -> None:
    pkt = udp6(dport=5001)
    net.deliver6(pkt, now=T0 + 1)
    assert net.counters() == {"no_ports": 1}
    (type_, code, param, invoking, ifp, now), = net.v6.errors
    assert (type_, code, param, ifp, now) == (DEST_UNREACH, UNREACH_PORT, 0, net.v6.eth0, T0 + 1)
    assert invoking == bytes(pkt)          # the invoking packet from its IPv6 header


def test_port_unreachable_sent_by_the_icmpv6_core(net: Net) -> None:
    with_icmpv6(net)
    net.deliver6(udp6(dport=5001))
    (out,) = net.sent6()
    assert out.dst == PEER and out.src == US
    err = out[ICMPv6DestUnreach]
    assert err.code == 4 and IPv6(bytes(err.payload))[UDP].dport == 5001


def test_no_port_unreachable_for_a_group(net: Net) -> None:
    """RFC 4443 §2.4 (e.3): nothing about a datagram sent to a group; Linux counts IgnoredMulti."""
    net.deliver6(udp6(dst="ff02::1", dport=5001))
    assert net.counters() == {"ignored_multi": 1}
    assert net.v6.errors == []


# --- multicast memberships --------------------------------------------------------------------
def mreq(group: str, ifindex: int = 0) -> bytes:
    return Ipv6Mreq(ip(group), ifindex).to_bytes()


def test_join_group_delivers_the_group_and_tells_mld(net: Net) -> None:
    joined = net.sock6()
    joined.reuseaddr = True
    net.usr6.bind(joined, sa("::", 5000), T0)
    not_joined = net.sock6(IPV6_MULTICAST_ALL=0)
    joined.reuseaddr = not_joined.reuseaddr = True       # both on the port (SO_REUSEADDR)
    assert net.usr6.bind(not_joined, sa("::", 5000), T0) == 0
    net.deliver6(udp6(dst=GROUP))
    assert net.v6.ipv6.stats.in_addr_errors == 1      # not a member yet: the host refuses it
    assert net.usr6.setsockopt(joined, IPV6, IPV6_JOIN_GROUP, mreq(GROUP, 1), T0) == 0
    assert net.joins == [("join", 1, ip(GROUP))]
    net.deliver6(udp6(dst=GROUP, payload=b"to the group"))
    assert net.usr6.recv(joined, 100, False, T0) == (b"to the group", sa(PEER, 1000))
    assert not not_joined.queue                        # IPV6_MULTICAST_ALL off, not joined
    assert net.usr6.setsockopt(joined, IPV6, IPV6_LEAVE_GROUP, mreq(GROUP, 1), T0) == 0
    assert net.joins[-1] == ("leave", 1, ip(GROUP))
    assert net.usr6.setsockopt(joined, IPV6, IPV6_LEAVE_GROUP, mreq(GROUP, 1), T0) == errno.EADDRNOTAVAIL


def test_multicast_all_default_delivers_groups_others_joined(net: Net) -> None:
    """Linux inet6_mc_check: a socket that joined nothing still gets a group the host is in
    while IPV6_MULTICAST_ALL is on (the default)."""
    a, b = net.sock6(), net.sock6()
    a.reuseaddr = b.reuseaddr = True
    net.usr6.bind(a, sa("::", 5000), T0)
    net.usr6.bind(b, sa("::", 5000), T0)
    assert net.usr6.getsockopt(b, IPV6, IPV6_MULTICAST_ALL, T0) == 1
    net.usr6.setsockopt(a, IPV6, IPV6_JOIN_GROUP, mreq(GROUP, 1), T0)
    net.deliver6(udp6(dst=GROUP))
    assert len(a.queue) == len(b.queue) == 1
    assert net.counters() == {"in_datagrams": 2}


def test_socket_bound_to_the_group_only(net: Net) -> None:
    pcb = net.sock6()
    assert net.usr6.bind(pcb, sa(GROUP, 5000, scope=1), T0) == 0     # a group needs no address of ours
    net.usr6.setsockopt(pcb, IPV6, IPV6_JOIN_GROUP, mreq(GROUP, 0), T0)   # 0: the route's interface
    assert net.joins == [("join", 1, ip(GROUP))]
    net.deliver6(udp6(dst="ff02::1"))
    net.deliver6(udp6(dst=GROUP))
    assert len(pcb.queue) == 1
    assert net.counters() == {"in_datagrams": 1, "ignored_multi": 1}


def test_join_errors_as_linux(net: Net) -> None:
    pcb = net.sock6()
    usr = net.usr6
    assert usr.setsockopt(pcb, IPV6, IPV6_JOIN_GROUP, mreq(US), T0) == errno.EINVAL        # not a group
    assert usr.setsockopt(pcb, IPV6, IPV6_JOIN_GROUP, mreq(GROUP)[:19], T0) == errno.EINVAL   # short
    assert usr.setsockopt(pcb, IPV6, IPV6_JOIN_GROUP, mreq(GROUP, 9), T0) == errno.ENODEV
    assert usr.setsockopt(pcb, IPV6, IPV6_JOIN_GROUP, mreq(GROUP, 1), T0) == 0
    assert usr.setsockopt(pcb, IPV6, IPV6_JOIN_GROUP, mreq(GROUP, 1), T0) == errno.EADDRINUSE
    assert usr.setsockopt(pcb, IPV6, IPV6_LEAVE_GROUP, mreq(US), T0) == errno.EINVAL
    assert usr.setsockopt(pcb, IPV6, IPV6_LEAVE_GROUP, mreq(GROUP, 0), T0) == 0     # 0: wherever joined


def test_memberships_are_bounded_and_dropped_on_close(net: Net) -> None:
    pcb = net.sock6()
    for i in range(MAX_MEMBERSHIPS6):
        assert net.usr6.setsockopt(pcb, IPV6, IPV6_JOIN_GROUP, mreq(f"ff0e::{i + 1:x}", 1), T0) == 0
    assert net.usr6.setsockopt(pcb, IPV6, IPV6_JOIN_GROUP, mreq("ff0e::ffff", 1), T0) == errno.ENOBUFS
    net.joins.clear()
    net.usr6.detach(pcb, T0)
    assert len(net.joins) == MAX_MEMBERSHIPS6 and all(j[0] == "leave" for j in net.joins)


def test_join_refused_by_the_host_fails(net: Net) -> None:
    net.udp.join_group = lambda ifindex, group, now: errno.ENOBUFS
    pcb = net.sock6()
    assert net.usr6.setsockopt(pcb, IPV6, IPV6_JOIN_GROUP, mreq(GROUP, 1), T0) == errno.ENOBUFS
    assert not pcb.memberships


# --- output -----------------------------------------------------------------------------------
def test_sendto_builds_a_checksummed_datagram(net: Net) -> None:
    pcb = net.sock6()
    assert net.usr6.send(pcb, memoryview(b"ping"), sa(PEER, 53), T0) == 4
    (out,) = net.sent6()
    assert (out.src, out.dst, out.nh, out.hlim, out.tc) == (US, PEER, 17, 64, 0)
    assert out[UDP].dport == 53 and out[UDP].sport == pcb.lport and bytes(out[UDP].payload) == b"ping"
    assert checksum_ok(out)
    assert net.usr6.sockaddr(pcb) == (0, pcb.lport, 0, 0)       # auto-bound to ::
    assert net.counters() == {"out_datagrams": 1}


def test_unbound_source_follows_the_route_and_the_checksum_covers_it(net: Net) -> None:
    pcb = net.sock6()
    net.usr6.send(pcb, memoryview(b"x"), sa("2001:db8:7::1", 53), T0)    # a route with a preferred source
    (out,) = net.sent6()
    assert out.src == US_ULA and checksum_ok(out)


def test_bound_source_is_used(net: Net) -> None:
    pcb = net.sock6()
    assert net.usr6.bind(pcb, sa(US_ULA, 0), T0) == 0
    net.usr6.send(pcb, memoryview(b"x"), sa(PEER, 53), T0)
    (out,) = net.sent6()
    assert out.src == US_ULA and checksum_ok(out)


def test_hop_limit_tclass_and_multicast_hops(net: Net) -> None:
    pcb = net.sock6(IPV6_UNICAST_HOPS=7, IPV6_TCLASS=0xB8)
    net.usr6.send(pcb, memoryview(b"x"), sa(PEER, 53), T0)
    net.usr6.send(pcb, memoryview(b"x"), sa(GROUP, 53, scope=1), T0)
    uni, multi = net.sent6()
    assert (uni.hlim, uni.tc) == (7, 0xB8)
    assert (multi.hlim, multi.dst) == (1, GROUP)        # IPV6_MULTICAST_HOPS defaults to 1
    net.usr6.setsockopt(pcb, IPV6, IPV6_MULTICAST_HOPS, 5, T0)
    net.usr6.send(pcb, memoryview(b"x"), sa(GLOBAL_GROUP, 53), T0)
    assert net.sent6()[0].hlim == 5


def test_partial_checksum_offload(net: Net) -> None:
    net.v6.eth0.ndd.caps = DeviceCaps(tx_csum_offload=True)    # type: ignore[attr-defined]
    captured: list[PacketBuffer] = []
    link = net.v6.eth0.link
    net.v6.eth0.link = type("L", (), {"output": lambda self, pkt, nh, now: captured.append(pkt) or 0})()
    pcb = net.sock6()
    net.usr6.send(pcb, memoryview(b"offload"), sa(PEER, 53), T0)
    (pkt,) = captured
    assert pkt.csum_start == pkt.start + 40 and pkt.csum_offset == 6
    # finish it as the device does: complement of the sum from csum_start, seeded by the field
    from ndd.checksum import checksum
    data = bytearray(pkt.tobytes())
    csum = checksum(data[40:]) or 0xFFFF
    struct.pack_into("!H", data, 46, csum)
    assert checksum_ok(IPv6(bytes(data)))
    # too big for one packet: no partial checksum, the IPv6 layer fragments a full one
    net.v6.eth0.link = link
    net.usr6.send(pcb, memoryview(bytes(3000)), sa(PEER, 53), T0)
    assert len(net.sent6()) == 3


def test_sendto_errors_in_linux_order(net: Net) -> None:
    pcb = net.sock6()
    usr = net.usr6
    assert usr.send(pcb, memoryview(b"x"), None, T0) == -errno.EDESTADDRREQ
    assert usr.send(pcb, memoryview(b"x"), sa(PEER, 0), T0) == -errno.EINVAL
    assert usr.send(pcb, memoryview(b"x"), sa("2001:db8:dead::1", 53), T0) == -errno.ENETUNREACH
    assert usr.send(pcb, memoryview(b"x"), sa("2001:db8::1", 53, scope=9), T0) == 1   # scope ignored: global
    # an unknown scope id: Linux's route lookup by that ifindex fails (the differential table)
    assert usr.send(pcb, memoryview(b"x"), sa(PEER_LL, 53, scope=9), T0) == -errno.ENETUNREACH


def test_largest_datagram_and_emsgsize(net: Net) -> None:
    """Linux ip6_append_data: at most 65535 octets of IPv6 payload, so 65527 of data."""
    pcb = net.sock6()
    assert net.usr6.send(pcb, memoryview(bytes(65528)), sa(PEER, 53), T0) == -errno.EMSGSIZE
    assert net.usr6.send(pcb, memoryview(bytes(65527)), sa(PEER, 53), T0) == 65527
    frags = net.sent6()
    assert len(frags) == 46 and all(IPv6ExtHdrFragment in f for f in frags)
    assert all(len(f) <= 1500 for f in frags)


@pytest.mark.parametrize("opt", [(IPV6_DONTFRAG, 1), (IPV6_MTU_DISCOVER, 2)])
def test_dontfrag_and_pmtudisc_do_cap_at_the_path_mtu(net: Net, opt: tuple[int, int]) -> None:
    pcb = net.sock6()
    net.usr6.setsockopt(pcb, IPV6, opt[0], opt[1], T0)
    assert net.usr6.send(pcb, memoryview(bytes(1453)), sa(PEER, 53), T0) == -errno.EMSGSIZE
    assert net.usr6.send(pcb, memoryview(bytes(1452)), sa(PEER, 53), T0) == 1452
    net.v6.ipv6.pmtu.update(ip(PEER), 1280, 1500, T0)            # a Packet Too Big taught 1280
    assert net.usr6.send(pcb, memoryview(bytes(1233)), sa(PEER, 53), T0) == -errno.EMSGSIZE
    assert net.usr6.send(pcb, memoryview(bytes(1232)), sa(PEER, 53), T0) == 1232


def test_sendto_unspecified_means_the_loopback(net: Net) -> None:
    """Linux keeps the BSD-ism: a datagram to :: goes to ::1 (and to 127.0.0.1 from a socket
    bound to an IPv4-mapped address)."""
    net.v6.candidates.append(SourceCandidate(1, 128, ifindex=3))
    pcb = net.sock6()
    assert net.usr6.send(pcb, memoryview(b"x"), sa("::", 53), T0) == 1
    (data, _, _), = net.v6.lo.link.sent               # type: ignore[union-attr]
    out = IPv6(data)
    assert (out.src, out.dst) == ("::1", "::1") and checksum_ok(out)
    net.v4.ipv4.loopback = net.v4.eth0          # stands in for lo: its link records
    m = net.sock6()
    net.usr6.bind(m, (mapped(V4_US), 0, 0, 0), T0)
    assert net.usr6.send(m, memoryview(b"x"), sa("::", 53), T0) == 1
    assert net.sent4()[0].dst == "127.0.0.1" and net.sent6() == []


# --- fragmentation through two IPv6 cores ---------------------------------------------------------
class Wire:
    """Eth0's link output of one host handing every packet to the other's IPv6 input."""

    def __init__(self, peer: Net) -> None:
        self.peer = peer
        self.packets: list[bytes] = []

    def cached_header(self, nexthop: int) -> bytes | None:
        return None                   # contracts.LinkOutput: no header ready, output() each time

    def cached_header6(self, nexthop: int, src: int, now: float) -> bytes | None:
        return None

    def output(self, pkt: PacketBuffer, nexthop: int, now: float) -> int:
        data = pkt.tobytes()
        self.packets.append(data)
        self.peer.v6.ipv6.input(self.peer.v6.eth0, rx(data), now)
        return 0


def make_pair() -> tuple[Net, Net, Wire]:
    a, b = make_net(), make_net()
    # b is PEER (2001:db8::1) on the same link
    b.v6.ours = {1: {ip(PEER)}}
    b.v6.candidates[:] = [SourceCandidate(ip(PEER), 64, ifindex=1)]
    wire = Wire(b)
    a.v6.eth0.link = wire
    return a, b, wire


def test_8000_byte_datagram_fragmented_and_reassembled() -> None:
    a, b, wire = make_pair()
    server = b.sock6()
    assert b.usr6.bind(server, sa("::", 9000), T0) == 0
    client = a.sock6()
    data = random.Random(3).randbytes(8000)
    assert a.usr6.send(client, memoryview(data), sa(PEER, 9000), T0) == 8000
    assert len(wire.packets) == 6 and all(len(p) <= 1500 for p in wire.packets)
    assert all(IPv6ExtHdrFragment in IPv6(p) for p in wire.packets)
    assert b.usr6.recv(server, 65536, False, T0) == (data, sa(US, a.usr6.sockaddr(client)[1]))
    assert b.v6.ipv6.counters()["reasm_oks"] == 1


@given(st.binary(max_size=9000))
@settings(max_examples=40, deadline=None)
def test_round_trip_between_two_cores(data: bytes) -> None:
    a, b, _ = make_pair()
    server = b.sock6()
    b.usr6.bind(server, sa("::", 9000), T0)
    client = a.sock6()
    assert a.usr6.send(client, memoryview(data), sa(PEER, 9000), T0) == len(data)
    got = b.usr6.recv(server, 65536, False, T0)
    assert got is not None and got[0] == data


# --- sockaddr shapes -------------------------------------------------------------------------
def test_sockaddr_shapes(net: Net) -> None:
    usr = net.usr6
    pcb = net.sock6()
    assert usr.sockaddr(pcb) == (0, 0, 0, 0) and usr.peeraddr(pcb) is None
    assert usr.bind(pcb, sa(US, 5000), T0) == 0
    assert usr.sockaddr(pcb) == sa(US, 5000)
    assert usr.connect(pcb, sa(PEER, 53), T0) == 0
    assert usr.peeraddr(pcb) == sa(PEER, 53)
    ll = net.sock6()
    assert usr.bind(ll, sa(US_LL, 5001, scope=1), T0) == 0
    assert usr.sockaddr(ll) == sa(US_LL, 5001, scope=1)
    assert usr.connect(ll, sa(PEER_LL, 53), T0) == 0      # the bound interface is the scope
    assert usr.peeraddr(ll) == sa(PEER_LL, 53, scope=1)
    m = net.sock6()
    assert usr.bind(m, (mapped(V4_US), 5002, 0, 0), T0) == 0
    assert usr.sockaddr(m) == (mapped(V4_US), 5002, 0, 0)


def test_connect_chooses_the_source_and_disconnect_forgets_it(net: Net) -> None:
    usr = net.usr6
    pcb = net.sock6()
    assert usr.connect(pcb, sa(PEER, 53), T0) == 0
    port = pcb.lport
    assert usr.sockaddr(pcb) == sa(US, port)
    assert usr.send(pcb, memoryview(b"q"), None, T0) == 1
    assert net.sent6()[0].dst == PEER
    assert usr.disconnect(pcb, T0) == 0
    assert usr.sockaddr(pcb) == (0, 0, 0, 0) and usr.peeraddr(pcb) is None   # auto port gone too


def test_connected_socket_takes_only_its_peer(net: Net) -> None:
    usr = net.usr6
    wild, conn = net.sock6(), net.sock6()
    wild.reuseaddr = conn.reuseaddr = True
    usr.bind(wild, sa("::", 5000), T0)
    usr.bind(conn, sa("::", 5000), T0)
    usr.connect(conn, sa(PEER, 1000), T0)
    net.deliver6(udp6())                                  # from PEER:1000
    net.deliver6(udp6(src="2001:db8::5"))
    assert [s for _, s in conn.queue] == [sa(PEER, 1000)]
    assert [s for _, s in wild.queue] == [sa("2001:db8::5", 1000)]


# --- scope ids ---------------------------------------------------------------------------------
def test_link_local_needs_a_scope_id(net: Net) -> None:
    usr = net.usr6
    assert usr.bind(net.sock6(), sa(US_LL, 5000), T0) == errno.EINVAL
    assert usr.bind(net.sock6(), sa(US_LL, 5000, scope=9), T0) == errno.ENODEV
    assert usr.bind(net.sock6(), sa(US_LL, 5000, scope=2), T0) == errno.EADDRNOTAVAIL   # not eth1's
    assert usr.connect(net.sock6(), sa(PEER_LL, 53), T0) == errno.EINVAL
    assert usr.bind(net.sock6(), sa(GROUP, 5000), T0) == errno.EINVAL      # link-scope group too
    pcb = net.sock6()
    assert usr.bind(pcb, sa(US_LL, 5000, scope=1), T0) == 0
    assert usr.connect(pcb, sa(PEER_LL, 53, scope=2), T0) == errno.EINVAL  # bound to eth0
    failed = net.sock6()       # Linux: a failed bind keeps the device its scope id named
    assert usr.bind(failed, sa(US_LL, 5000, scope=2), T0) == errno.EADDRNOTAVAIL
    assert usr.connect(failed, sa(PEER_LL, 53, scope=1), T0) == errno.EINVAL
    # ... and a connect without one goes by eth1, whose only address is tentative: no source
    assert usr.connect(failed, sa(PEER_LL, 53), T0) == errno.EADDRNOTAVAIL
    assert needs_scope_id(ip("ff01::1")) and not needs_scope_id(ip("ff05::1"))


def test_sendto_scoped_destination_without_scope_takes_the_first_link(net: Net) -> None:
    """Linux 6.x: sendto(fe80::1 or ff02::1) with no scope id and no bound device leaves by
    the first interface with a link-local source (its fe80::/64 or ff00::/8 route) -- the
    differential table checks it -- and fails with EADDRNOTAVAIL while no link-local address
    is usable (checked against the kernel in a netns during DAD); connect() says EINVAL."""
    pcb = net.sock6()
    assert net.usr6.send(pcb, memoryview(b"x"), sa(PEER_LL, 53), T0) == 1
    assert net.usr6.send(pcb, memoryview(b"x"), sa("ff02::1", 53), T0) == 1
    assert [(p.src, p.dst) for p in net.sent6()] == [(US_LL, PEER_LL), (US_LL, "ff02::1")]
    assert net.usr6.connect(pcb, sa("ff02::1", 53), T0) == errno.EINVAL
    assert net.usr6.send(pcb, memoryview(b"x"), sa(PEER_LL, 53, scope=1), T0) == 1
    out = net.sent6()[0]
    assert out.src == US_LL and checksum_ok(out)
    net.v6.candidates = [c for c in net.v6.candidates if c.addr != ip(US_LL)]   # no link-local yet
    assert net.usr6.send(pcb, memoryview(b"x"), sa(PEER_LL, 53), T0) == -errno.EADDRNOTAVAIL
    assert net.usr6.send(pcb, memoryview(b"x"), sa("ff02::1", 53), T0) == -errno.EADDRNOTAVAIL
    assert net.sent6() == []


def test_bind_checks_the_address(net: Net) -> None:
    usr = net.usr6
    assert usr.bind(net.sock6(), sa("2001:db8::77", 5000), T0) == errno.EADDRNOTAVAIL
    assert usr.bind(net.sock6(), sa(US_TENTATIVE, 5000), T0) == errno.EADDRNOTAVAIL   # RFC 4862 §5.4
    assert usr.bind(net.sock6(), sa("::1", 5000), T0) == 0
    pcb = net.sock6()
    assert usr.bind(pcb, sa(US, 5001), T0) == 0
    assert usr.bind(pcb, sa(US, 5002), T0) == errno.EINVAL                            # already bound


# --- dual stack ------------------------------------------------------------------------------
def test_dual_stack_socket_receives_ipv4_as_mapped(net: Net) -> None:
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    net.deliver4(udp4())
    assert net.usr6.recv(pcb, 100, False, T0) == (b"hello4", (mapped(V4_PEER), 1000, 0, 0))
    assert net.icmp4 == []


def test_v6only_keeps_ipv4_out(net: Net) -> None:
    pcb = net.sock6(IPV6_V6ONLY=1)
    net.usr6.bind(pcb, sa("::", 5000), T0)
    net.deliver4(udp4())
    assert not pcb.queue
    assert net.icmp4 == [(3, 3)] and net.counters() == {"no_ports": 1}


def test_ipv4_socket_preferred_over_dual_stack(net: Net) -> None:
    v6, v4 = net.sock6(), net.usr4.attach(T0)
    v6.reuseaddr = v4.reuseaddr = True
    assert net.usr6.bind(v6, sa("::", 5000), T0) == 0
    assert net.usr4.bind(v4, (0, 5000), T0) == 0
    net.deliver4(udp4())
    assert len(v4.queue) == 1 and not v6.queue


def test_ipv4_broadcast_reaches_dual_stack_sockets_too(net: Net) -> None:
    v6, v4 = net.sock6(), net.usr4.attach(T0)
    v6.reuseaddr = v4.reuseaddr = True
    net.usr6.bind(v6, sa("::", 5000), T0)
    net.usr4.bind(v4, (0, 5000), T0)
    net.deliver4(udp4(dst="255.255.255.255"))
    assert len(v4.queue) == 1
    assert [s for _, s in v6.queue] == [(mapped(V4_PEER), 1000, 0, 0)]


def test_ipv6_input_never_reaches_ipv4_sockets(net: Net) -> None:
    v4 = net.usr4.attach(T0)
    net.usr4.bind(v4, (0, 5000), T0)
    net.deliver6(udp6())
    assert not v4.queue and net.counters() == {"no_ports": 1}
    assert 1 not in net.udp.ports6.get(5000, [])       # ::1 == 1 must never meet a 32-bit key


def test_sendto_mapped_goes_over_ipv4(net: Net) -> None:
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    assert net.usr6.send(pcb, memoryview(b"v4!"), (mapped(V4_PEER), 53, 0, 0), T0) == 3
    (out,) = net.sent4()
    assert (out.src, out.dst, out[UDP].sport, out[UDP].dport) == (V4_US, V4_PEER, 5000, 53)
    assert net.sent6() == []
    net.deliver4(udp4(sport=53))
    assert net.usr6.recv(pcb, 100, False, T0) == (b"hello4", (mapped(V4_PEER), 53, 0, 0))


def test_v6only_forbids_mapped_peers(net: Net) -> None:
    pcb = net.sock6(IPV6_V6ONLY=1)
    assert net.usr6.send(pcb, memoryview(b"x"), (mapped(V4_PEER), 53, 0, 0), T0) == -errno.ENETUNREACH
    assert net.usr6.connect(pcb, (mapped(V4_PEER), 53, 0, 0), T0) == errno.ENETUNREACH
    assert net.usr6.bind(net.sock6(IPV6_V6ONLY=1), (mapped(V4_US), 5000, 0, 0), T0) == errno.EINVAL
    bound = net.sock6()
    net.usr6.bind(bound, sa(US, 5000), T0)                 # a real IPv6 address implies V6ONLY
    assert net.usr6.getsockopt(bound, IPV6, IPV6_V6ONLY, T0) == 1
    assert net.usr6.connect(bound, (mapped(V4_PEER), 53, 0, 0), T0) == errno.ENETUNREACH


def test_connect_to_a_mapped_peer_runs_over_ipv4(net: Net) -> None:
    usr = net.usr6
    pcb = net.sock6()
    assert usr.connect(pcb, (mapped(V4_PEER), 53, 0, 0), T0) == 0
    port = pcb.lport
    assert usr.sockaddr(pcb) == (mapped(V4_US), port, 0, 0)
    assert usr.peeraddr(pcb) == (mapped(V4_PEER), 53, 0, 0)
    assert usr.send(pcb, memoryview(b"a"), None, T0) == 1
    assert net.sent4()[0].dst == V4_PEER
    net.deliver4(udp4(sport=53, dport=port))
    net.deliver6(udp6(dport=port))                        # IPv6 no longer reaches it
    assert [s for _, s in pcb.queue] == [(mapped(V4_PEER), 53, 0, 0)]
    assert usr.setsockopt(pcb, IPV6, IPV6_V6ONLY, 1, T0) == errno.EINVAL   # bound by now
    assert usr.disconnect(pcb, T0) == 0
    assert usr.sockaddr(pcb) == (0, 0, 0, 0)              # auto-bound port forgotten


def test_reconnect_from_mapped_to_ipv6_and_back(net: Net) -> None:
    """Linux: connected to a mapped peer, a socket must disconnect before an IPv6 peer
    (EAFNOSUPPORT, sendto too); then it is `::` again."""
    usr = net.usr6
    pcb = net.sock6()
    assert usr.bind(pcb, sa("::", 5000), T0) == 0
    assert usr.connect(pcb, (mapped(V4_PEER), 53, 0, 0), T0) == 0
    assert usr.connect(pcb, sa(PEER, 53), T0) == errno.EAFNOSUPPORT
    assert usr.send(pcb, memoryview(b"x"), sa(PEER, 53), T0) == -errno.EAFNOSUPPORT
    assert usr.disconnect(pcb, T0) == 0
    assert usr.sockaddr(pcb) == sa("::", 5000)
    assert usr.connect(pcb, sa(PEER, 53), T0) == 0
    assert usr.sockaddr(pcb) == sa(US, 5000) and usr.peeraddr(pcb) == sa(PEER, 53)
    net.deliver6(udp6(sport=53))
    assert len(pcb.queue) == 1
    assert usr.disconnect(pcb, T0) == 0
    assert usr.sockaddr(pcb) == sa("::", 5000)            # the bound port stays
    net.deliver4(udp4())
    assert len(pcb.queue) == 2


def test_bound_to_mapped_is_an_ipv4_socket(net: Net) -> None:
    usr = net.usr6
    pcb = net.sock6()
    assert usr.bind(pcb, (mapped("10.9.9.9"), 5000, 0, 0), T0) == errno.EADDRNOTAVAIL
    assert usr.bind(pcb, (mapped(V4_US), 5000, 0, 0), T0) == 0
    net.deliver4(udp4())
    net.deliver6(udp6())
    assert [s for _, s in pcb.queue] == [(mapped(V4_PEER), 1000, 0, 0)]
    assert usr.connect(pcb, sa(PEER, 53), T0) == errno.EAFNOSUPPORT
    assert usr.send(pcb, memoryview(b"x"), sa(PEER, 53), T0) == -errno.EAFNOSUPPORT
    assert usr.send(pcb, memoryview(b"x"), (mapped(V4_PEER), 53, 0, 0), T0) == 1
    assert net.sent4()[0].src == V4_US


# --- one port space: Linux's cross-family bind conflicts ---------------------------------------------
ANY6, ANY4 = ("::", 0), ("0.0.0.0", 0)


def bind_any(net: Net, family: int, addr: str, port: int = 7000, v6only: bool = False,
             reuse: bool = False) -> int:
    if family == socket.AF_INET:
        pcb4 = net.usr4.attach(T0)
        pcb4.reuseaddr = reuse
        return net.usr4.bind(pcb4, (ip_to_int(addr), port), T0)
    pcb = net.sock6(IPV6_V6ONLY=int(v6only))
    pcb.reuseaddr = reuse
    host = mapped(addr[7:]) if addr.startswith("::ffff:") else ip(addr)
    return net.usr6.bind(pcb, (host, port, 0, 0), T0)


V4, V6, V6ONLY = "v4", "v6", "v6only"
# (first bind, second bind, errno of the second): every row checked against Linux 6.x (Python
# sockets in a network namespace with 10.0.0.2/24, 2001:db8::2 and ::3 on a veth)
CONFLICTS = [
    ((V4, "0.0.0.0"), (V6, "::"), errno.EADDRINUSE),
    ((V4, "0.0.0.0"), (V6ONLY, "::"), 0),
    ((V4, V4_US), (V6, "::"), errno.EADDRINUSE),
    ((V6, "::"), (V4, "0.0.0.0"), errno.EADDRINUSE),
    ((V6, "::"), (V4, V4_US), errno.EADDRINUSE),
    ((V6ONLY, "::"), (V4, "0.0.0.0"), 0),
    ((V6ONLY, "::"), (V4, V4_US), 0),
    ((V6, US), (V4, "0.0.0.0"), 0),
    ((V4, "0.0.0.0"), (V6, US), 0),
    ((V6, "::"), (V6, "::"), errno.EADDRINUSE),
    ((V6ONLY, "::"), (V6ONLY, "::"), errno.EADDRINUSE),
    ((V6, "::"), (V6, US), errno.EADDRINUSE),
    ((V6, US), (V6, US), errno.EADDRINUSE),
    ((V6, US), (V6, US_ULA), 0),
    ((V6, "::ffff:" + V4_US), (V4, V4_US), errno.EADDRINUSE),
    ((V6, "::ffff:" + V4_US), (V4, "0.0.0.0"), errno.EADDRINUSE),
    ((V6, "::ffff:" + V4_US), (V6, "::"), errno.EADDRINUSE),
    ((V6, "::ffff:" + V4_US), (V6ONLY, "::"), 0),
    ((V6, "::ffff:" + V4_US), (V6, US), 0),
    ((V4, V4_US), (V6, "::ffff:" + V4_US), errno.EADDRINUSE),
    ((V4, "0.0.0.0"), (V6, "::ffff:0.0.0.0"), errno.EADDRINUSE),
    ((V6ONLY, "::"), (V6, "::ffff:0.0.0.0"), 0),
    ((V6, US), (V6, "::"), errno.EADDRINUSE),
    ((V6, "::ffff:0.0.0.0"), (V6, "::"), errno.EADDRINUSE),
    ((V6, "::ffff:0.0.0.0"), (V4, V4_US), errno.EADDRINUSE),
]


@pytest.mark.parametrize(("first", "second", "expected"), CONFLICTS)
def test_cross_family_bind_conflicts(net: Net, first: tuple[str, str], second: tuple[str, str],
                                     expected: int) -> None:
    def do(kind: str, addr: str) -> int:
        family = socket.AF_INET if kind == V4 else socket.AF_INET6
        return bind_any(net, family, addr, v6only=kind == V6ONLY)

    assert do(*first) == 0
    assert do(*second) == expected


def test_reuseaddr_on_both_shares_across_families(net: Net) -> None:
    assert bind_any(net, socket.AF_INET6, "::", reuse=True) == 0
    assert bind_any(net, socket.AF_INET, "0.0.0.0", reuse=True) == 0
    assert bind_any(net, socket.AF_INET, V4_US) == errno.EADDRINUSE


def test_ephemeral_ports_come_from_one_space(net: Net) -> None:
    net.udp.ephemeral.low = net.udp.ephemeral.high = net.udp.ephemeral.next = 40000
    v6 = net.sock6()
    assert net.usr6.bind(v6, sa("::", 0), T0) == 0 and v6.lport == 40000
    v4 = net.usr4.attach(T0)
    assert net.usr4.bind(v4, (0, 0), T0) == errno.EAGAIN      # the one port is the dual-stack socket's


def test_link_local_binds_on_different_interfaces_do_not_conflict(net: Net) -> None:
    net.v6.candidates.append(SourceCandidate(ip(US_LL), 64, ifindex=2))
    a, b = net.sock6(), net.sock6()
    assert net.usr6.bind(a, sa(US_LL, 5000, scope=1), T0) == 0
    assert net.usr6.bind(b, sa(US_LL, 5000, scope=2), T0) == 0
    c = net.sock6()
    assert net.usr6.bind(c, sa(US_LL, 5000, scope=1), T0) == errno.EADDRINUSE


@given(st.sampled_from([socket.AF_INET, socket.AF_INET6]), st.sampled_from([0, 1, ip(US), mapped(V4_US),
                                                                              mapped("0.0.0.0")]),
       st.booleans(), st.sampled_from([0, ip_to_int(V4_US), 0x7F000006]))
def test_wildcard_overlaps_itself(family: int, addr6: int, v6only: bool, addr4: int) -> None:
    """Property of Linux's rule: a socket's receive address always overlaps its own."""
    if family == socket.AF_INET:
        key = BindKey(family, 0, addr4)
    else:
        is_mapped = addr6 >> 32 == 0xFFFF
        key = BindKey(family, addr6, addr6 & 0xFFFFFFFF if is_mapped else (0x7F000006 if addr6 else 0),
                      v6only and not is_mapped)
    assert rcv_saddr_equal(key, key)


# --- ICMPv6 errors -----------------------------------------------------------------------------
def error(type_: int = DEST_UNREACH, code: int = UNREACH_PORT, sport: int = 5000, dport: int = 53,
          src: str = US, dst: str = PEER, errno_: int = errno.ECONNREFUSED, fatal: bool = True) -> Icmpv6Error:
    return Icmpv6Error(type_, code, errno_, fatal, ip(dst), ip(src), ip(dst), 17,
                       struct.pack("!HHHH", sport, dport, 8, 0))


def test_ctlinput6_refuses_a_connected_socket(net: Net) -> None:
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    net.usr6.connect(pcb, sa(PEER, 53), T0)
    net.udp.ctlinput6(error(), T0)
    assert net.usr6.readable(pcb) and net.usr6.take_error(pcb) == errno.ECONNREFUSED
    assert net.usr6.take_error(pcb) == 0                         # reported once


def test_ctlinput6_through_the_icmpv6_core(net: Net) -> None:
    with_icmpv6(net)
    pcb = net.sock6()
    net.usr6.connect(pcb, sa(PEER, 53), T0)
    net.usr6.send(pcb, memoryview(b"q"), None, T0)
    (sent,) = net.sent6()
    net.deliver6(IPv6(src=PEER, dst=US) / ICMPv6DestUnreach(code=4) / bytes(sent))
    assert net.usr6.take_error(pcb) == errno.ECONNREFUSED


def test_ctlinput6_leaves_unconnected_sockets_alone_without_recverr(net: Net) -> None:
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    net.udp.ctlinput6(error(), T0)
    assert pcb.so_error == 0 and net.counters() == {"icmp_ignored": 1}
    net.usr6.setsockopt(pcb, IPV6, IPV6_RECVERR, 1, T0)
    net.udp.ctlinput6(error(), T0)
    assert net.usr6.take_error(pcb) == errno.ECONNREFUSED


def test_ctlinput6_soft_errors_and_packet_too_big(net: Net) -> None:
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    net.usr6.connect(pcb, sa(PEER, 53), T0)
    net.udp.ctlinput6(error(type_=3, code=0, errno_=errno.EHOSTUNREACH, fatal=False), T0)   # time exceeded
    assert pcb.so_error == 0
    net.udp.ctlinput6(error(type_=PACKET_TOO_BIG, code=0, errno_=errno.EMSGSIZE, fatal=False), T0)
    assert net.usr6.take_error(pcb) == errno.EMSGSIZE            # Linux: hard unless PMTUDISC_DONT
    net.usr6.setsockopt(pcb, IPV6, IPV6_MTU_DISCOVER, 0, T0)
    net.udp.ctlinput6(error(type_=PACKET_TOO_BIG, code=0, errno_=errno.EMSGSIZE, fatal=False), T0)
    assert pcb.so_error == 0


@pytest.mark.parametrize("pmtudisc,reported", [(None, errno.EMSGSIZE), (0, 0), (4, 0), (5, 0)],
                         ids=["default-want", "dont", "interface", "omit"])
def test_packet_too_big_through_the_icmpv6_core(net: Net, pmtudisc: int | None, reported: int) -> None:
    """Regression (found against a Linux router, tests/realpeer/test_ipv6_sockets.py): the core
    called a Packet Too Big fatal, so a connected IPV6_PMTUDISC_DONT socket heard EMSGSIZE and
    INTERFACE/OMIT ones too.  Linux (__udp6_lib_err, ip6_sk_accept_pmtu): EMSGSIZE for the
    default WANT (and DO), nothing for DONT, the error ignored altogether for INTERFACE/OMIT."""
    with_icmpv6(net)
    pcb = net.sock6()
    if pmtudisc is not None:
        net.usr6.setsockopt(pcb, IPV6, IPV6_MTU_DISCOVER, pmtudisc, T0)
    net.usr6.connect(pcb, sa(PEER, 53), T0)
    net.usr6.send(pcb, memoryview(b"q" * 1300), None, T0)
    (sent,) = net.sent6()
    net.deliver6(IPv6(src=PEER, dst=US) / ICMPv6PacketTooBig(mtu=1280) / bytes(sent))
    assert net.usr6.take_error(pcb) == reported
    if pmtudisc is not None and pmtudisc >= 4:
        net.usr6.setsockopt(pcb, IPV6, IPV6_RECVERR, 1, T0)
        net.deliver6(IPv6(src=PEER, dst=US) / ICMPv6PacketTooBig(mtu=1280) / bytes(sent))
        assert net.usr6.take_error(pcb) == 0


def test_unknown_destination_unreachable_code_is_fatal(net: Net) -> None:
    """icmpv6_err_convert: a destination unreachable code past the table is EPROTO and fatal."""
    with_icmpv6(net)
    pcb = net.sock6()
    net.usr6.connect(pcb, sa(PEER, 53), T0)
    net.usr6.send(pcb, memoryview(b"q"), None, T0)
    (sent,) = net.sent6()
    net.deliver6(IPv6(src=PEER, dst=US) / ICMPv6DestUnreach(code=9) / bytes(sent))
    assert net.usr6.take_error(pcb) == errno.EPROTO


def test_ctlinput6_about_no_socket(net: Net) -> None:
    net.udp.ctlinput6(error(sport=6000), T0)
    net.udp.ctlinput6(Icmpv6Error(1, 4, errno.ECONNREFUSED, True, 0, ip(US), ip(PEER), 17, b"\x00"), T0)
    assert net.counters() == {"icmp_no_socket": 2}


def test_ipv4_error_about_a_dual_stack_sendto_is_ignored_not_unknown(net: Net) -> None:
    from protocols.icmp import IcmpError
    pcb = net.sock6()
    net.usr6.bind(pcb, sa("::", 5000), T0)
    net.usr6.send(pcb, memoryview(b"x"), (mapped(V4_PEER), 53, 0, 0), T0)
    net.udp.ctlinput(IcmpError(3, 3, errno.ECONNREFUSED, ip_to_int(V4_PEER), ip_to_int(V4_US),
                               ip_to_int(V4_PEER), 17, struct.pack("!HHHH", 5000, 53, 8, 0)), T0)
    assert pcb.so_error == 0 and net.counters() == {"out_datagrams": 1, "icmp_ignored": 1}


def test_ipv4_errors_reach_a_socket_connected_to_a_mapped_peer(net: Net) -> None:
    from protocols.icmp import IcmpError
    pcb = net.sock6()
    net.usr6.connect(pcb, (mapped(V4_PEER), 53, 0, 0), T0)
    net.udp.ctlinput(IcmpError(3, 3, errno.ECONNREFUSED, ip_to_int(V4_PEER), ip_to_int(V4_US),
                               ip_to_int(V4_PEER), 17, struct.pack("!HHHH", pcb.lport, 53, 8, 0)), T0)
    assert net.usr6.take_error(pcb) == errno.ECONNREFUSED


# --- options -----------------------------------------------------------------------------------
def test_ipv6_options_read_back_linux_defaults(net: Net) -> None:
    usr, pcb = net.usr6, net.sock6()
    assert usr.getsockopt(pcb, IPV6, IPV6_V6ONLY, T0) == 0
    assert usr.getsockopt(pcb, IPV6, IPV6_UNICAST_HOPS, T0) == 64
    assert usr.getsockopt(pcb, IPV6, IPV6_MULTICAST_HOPS, T0) == 1
    assert usr.getsockopt(pcb, IPV6, IPV6_TCLASS, T0) == 0
    assert usr.getsockopt(pcb, IPV6, IPV6_MTU_DISCOVER, T0) == 1
    assert usr.getsockopt(pcb, IPV6, IPV6_JOIN_GROUP, T0) is None
    assert usr.setsockopt(pcb, IPV6, IPV6_UNICAST_HOPS, 256, T0) == errno.EINVAL
    assert usr.setsockopt(pcb, socket.IPPROTO_IP, socket.IP_TTL, 9, T0) == 0     # for mapped traffic
    assert usr.getsockopt(pcb, socket.IPPROTO_IP, socket.IP_TTL, T0) == 9
    usr.bind(pcb, sa("::", 5000), T0)
    assert usr.setsockopt(pcb, IPV6, IPV6_V6ONLY, 1, T0) == errno.EINVAL          # bound


def test_bindv6only_sysctl_sets_the_default(net: Net) -> None:
    net.udp.bindv6only = True
    assert net.usr6.getsockopt(net.sock6(), IPV6, IPV6_V6ONLY, T0) == 1


# --- codecs ------------------------------------------------------------------------------------
@given(st.integers(0, (1 << 128) - 1), st.integers(0, 0xFFFFFFFF))
def test_ipv6_mreq_round_trip(group: int, ifindex: int) -> None:
    data = Ipv6Mreq(group, ifindex).to_bytes()
    assert len(data) == 20 and Ipv6Mreq.parse(data) == Ipv6Mreq(group, ifindex)
    assert Ipv6Mreq.parse(data[:19]) is None


def test_ipv6_mreq_matches_the_c_struct() -> None:
    """struct ipv6_mreq as Linux reads it: the group, then a native unsigned int."""
    data = socket.inet_pton(socket.AF_INET6, "ff02::1") + struct.pack("@I", 3)
    assert Ipv6Mreq.parse(data) == Ipv6Mreq(ALL_NODES, 3)



# --- wiring, as the Stack registers it -------------------------------------------------------
def test_registered_as_the_af_inet6_protosw_entry() -> None:
    """The Stack's wiring: one Udp core behind both families' entries (dualstack.md)."""
    from protocols.contracts import PR_ADDR, PR_ATOMIC, ProtocolSwitch

    v6 = make_host()
    sw: ProtocolSwitch = v6.ipv6.protosw
    del sw.ip6_protox[17]                                # test_ipv6_ip6's recorder
    sw.domains[socket.AF_INET6].protosw.clear()
    v4 = fakes.make_host(V4_US)
    udp = Udp(v4.ipv4, random.Random(1))
    udp.ipv6 = v6.ipv6                                   # or Udp(..., ipv6=...)
    entry = sw.add(socket.AF_INET6, Protosw("udp6", socket.SOCK_DGRAM, 17, input=udp.input6,
                                            ctlinput=udp.ctlinput6,
                                            usrreqs=UdpUserRequests(udp, family=socket.AF_INET6),
                                            flags=PR_ATOMIC | PR_ADDR, core=udp))
    assert sw.ip6_protox[17] is entry and sw.find_proto(socket.AF_INET6, 17, socket.SOCK_DGRAM) is entry
    usr = entry.usrreqs
    assert usr is not None
    pcb = usr.attach(T0)
    assert usr.bind(pcb, sa("::", 5000), T0) == 0
    v6.ipv6.input(v6.eth0, rx(bytes(udp6())), T0)
    assert usr.recv(pcb, 100, False, T0) == (b"hello", sa(PEER, 1000))


def test_failed_connect_leaves_the_socket_bound(net: Net) -> None:
    """Linux inet_dgram_connect auto-binds before ip6_datagram_connect checks anything: a
    connect that fails (no scope id, IPV6_V6ONLY towards a mapped peer) leaves a port."""
    usr = net.usr6
    pcb = net.sock6()
    assert usr.connect(pcb, sa(PEER_LL, 53), T0) == errno.EINVAL
    assert pcb.lport and usr.sockaddr(pcb) == sa("::", pcb.lport) and usr.peeraddr(pcb) is None
    v6only = net.sock6(IPV6_V6ONLY=1)
    assert usr.connect(v6only, (mapped(V4_PEER), 53, 0, 0), T0) == errno.ENETUNREACH
    assert v6only.lport and usr.sockaddr(v6only) == sa("::", v6only.lport)


def test_unknown_scope_id_is_enetunreach_and_sticks(net: Net) -> None:
    """Linux: connect((fe80::1, p, 0, 99)) binds the socket to device 99 before the route lookup
    fails (ENETUNREACH) and keeps it: later sends go nowhere either; sendto with the scope id
    is ENETUNREACH too (checked by the differential table)."""
    usr = net.usr6
    pcb = net.sock6()
    assert usr.connect(pcb, sa(PEER_LL, 53, scope=99), T0) == errno.ENETUNREACH
    assert usr.peeraddr(pcb) is None and pcb.bound_ifindex == 99
    assert usr.send(pcb, memoryview(b"x"), sa(PEER, 53), T0) == -errno.ENETUNREACH
    assert usr.connect(pcb, sa(PEER_LL, 53, scope=1), T0) == errno.EINVAL      # bound to 99 now
    other = net.sock6()
    assert usr.send(other, memoryview(b"x"), sa(PEER_LL, 53, scope=99), T0) == -errno.ENETUNREACH
    assert usr.send(other, memoryview(b"x"), sa(PEER, 53), T0) == 1              # not sticky for sendto
    assert net.sent6()[0].dst == PEER
