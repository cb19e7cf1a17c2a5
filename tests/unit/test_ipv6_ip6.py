"""The IPv6 network layer (protocols/ipv6/ip6.py): input (RFC 8200 §3-4 checks, Linux
ip6_rcv_core's address rules, the host-only acceptance, the extension chain, reassembly,
dispatch on ip6_protox) and output (route, RFC 6724 source, fragmentation by path MTU), with
an explicit clock, fake interfaces and a recording link.  Input packets are built by scapy,
output is parsed by scapy: neither side checks itself."""
from __future__ import annotations

import errno
import random
import socket
import struct
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    HBHOptUnknown,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    RouterAlert,
    defragment6,
    fragment6,
)

from ndd.pktbuf import PacketBuffer
from protocols.contracts import ProtocolSwitch, Protosw
from protocols.ifnet import IFF_LOOPBACK, IFF_RUNNING, IFF_UP, Interface
from protocols.ipv6.addr import (
    ALL_NODES,
    SourceCandidate,
    in_prefix,
    ip6_to_int,
    is_link_local,
    is_multicast,
    solicited_node,
)
from protocols.ipv6.exthdr import parse_fragment_header
from protocols.ipv6.frag import Ipv6Reassembler
from protocols.ipv6.ip6 import (
    DEST_UNREACH,
    PARAM_PROBLEM,
    TIME_EXCEEDED,
    Ip6Meta,
    Ipv6,
)

from .fakes import RecordingLink, StubNdd, rx

NH_UDP, NH_SCTP, NH_NONE = 17, 132, 59

US = "2001:db8::2"
US_DEPRECATED = "2001:db8::3"
US_TENTATIVE = "2001:db8::99"
US_LL = "fe80::2"
US_ULA = "fd00::2"
PEER = "2001:db8::1"
PEER_LL = "fe80::1"
ROUTER_LL = "fe80::ff"
NO_ROUTE = "2001:db8:dead::1"
REJECT = "2001:db8:beef::1"
OTHER = "2001:db8::77"          # on our link, not ours
PREFSRC_NET = "2001:db8:7::1"   # routed with a preferred source


def ip(text: str) -> int:
    return ip6_to_int(text)


class Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[bytes, Ip6Meta, PacketBuffer, float]] = []

    def input(self, pkt: PacketBuffer, meta: Ip6Meta, now: float) -> None:
        self.got.append((pkt.tobytes(), meta, pkt, now))


@dataclass
class Host:
    """An Ipv6 core over fake tables: eth0 (index 1) carrying our addresses, eth1 (index 2)
    with only a tentative one, lo (index 3); `ours` and `groups` answer is_ours."""
    ipv6: Ipv6
    eth0: Interface
    eth1: Interface
    lo: Interface
    link: RecordingLink
    link1: RecordingLink
    udp: Recorder
    candidates: list[SourceCandidate]
    ours: dict[int, set[int]] = field(default_factory=dict)      # ifindex -> accepted unicast
    groups: dict[int, set[int]] = field(default_factory=dict)    # ifindex -> joined groups
    errors: list[tuple[int, int, int, bytes, Interface | None, float]] = field(default_factory=list)
    local_errors: list[tuple[int, int, bytes, float]] = field(default_factory=list)
    candidate_queries: list[tuple[Interface | None, float]] = field(default_factory=list)


@dataclass(frozen=True)
class NextHop:
    """The shape of protocols/ipv6/route.py's answer."""
    ifp: Interface
    nexthop: int
    source: int | None = None


def make_interface(name: str, index: int, mtu: int = 1500,
                   flags: int = IFF_UP | IFF_RUNNING) -> tuple[Interface, RecordingLink]:
    ifp = Interface(name, StubNdd(name, mtu), index, mtu, flags)  # type: ignore[arg-type]
    link = RecordingLink()
    ifp.link = link
    return ifp, link


def make_host(mtu: int = 1500, seed: int = 7) -> Host:
    eth0, link = make_interface("eth0", 1, mtu)
    eth1, link1 = make_interface("eth1", 2, mtu)
    lo, _ = make_interface("lo", 3, 65536, IFF_UP | IFF_RUNNING | IFF_LOOPBACK)
    candidates = [
        SourceCandidate(ip(US), 64, ifindex=1),
        SourceCandidate(ip(US_DEPRECATED), 64, deprecated=True, ifindex=1),
        SourceCandidate(ip(US_TENTATIVE), 64, tentative=True, ifindex=1),
        SourceCandidate(ip(US_LL), 64, ifindex=1),
        SourceCandidate(ip(US_ULA), 64, ifindex=1),
        SourceCandidate(ip("2001:db8:1::5"), 64, tentative=True, ifindex=2),
    ]

    def route(dst: int, now: float, oif: Interface | None) -> NextHop | int:
        if oif is not None:
            return NextHop(oif, dst)
        if is_multicast(dst) or is_link_local(dst):
            return NextHop(eth0, dst)
        if dst == 1:
            return NextHop(lo, dst)
        if in_prefix(dst, ip(NO_ROUTE), 48):
            return errno.ENETUNREACH
        if in_prefix(dst, ip(REJECT), 48):
            return errno.EHOSTUNREACH       # a reject route (Linux RTN_UNREACHABLE)
        if in_prefix(dst, ip(PREFSRC_NET), 64):
            return NextHop(eth0, ip(ROUTER_LL), ip(US_ULA))     # a route with a preferred source
        if in_prefix(dst, ip(US), 64) or in_prefix(dst, ip(US_ULA), 64):
            return NextHop(eth0, dst)
        return NextHop(eth0, ip(ROUTER_LL))          # the default router

    def source_candidates(ifp: Interface | None, now: float) -> list[SourceCandidate]:
        host.candidate_queries.append((ifp, now))
        return [c for c in host.candidates if ifp is None or c.ifindex == ifp.index]

    protosw = ProtocolSwitch()
    protosw.add_domain(socket.AF_INET6, "internet6")
    host = Host(None, eth0, eth1, lo, link, link1, Recorder(), candidates)  # type: ignore[arg-type]
    host.ours = {1: {ip(US), ip(US_DEPRECATED), ip(US_LL), ip(US_ULA)}, 3: {1}}
    host.groups = {1: {ALL_NODES, solicited_node(ip(US))}}

    def is_ours(ifp: Interface, dst: int) -> bool:
        return dst in host.ours.get(ifp.index, set()) or dst in host.groups.get(ifp.index, set())

    host.ipv6 = Ipv6(protosw, is_ours=is_ours, route=route, source_candidates=source_candidates,
                     rng=random.Random(seed))
    host.ipv6.icmp_error = lambda *args: host.errors.append(args)
    host.ipv6.local_error = lambda *args: host.local_errors.append(args)
    protosw.add(socket.AF_INET6, Protosw("udp6", socket.SOCK_DGRAM, NH_UDP, input=host.udp.input))
    return host


@pytest.fixture
def host() -> Host:
    return make_host()


def deliver(host: Host, data: bytes, now: float = 0.0, ifp: Interface | None = None) -> None:
    host.ipv6.input(ifp or host.eth0, rx(data), now)


def udp_packet(src: str = PEER, dst: str = US, payload: bytes = b"payload", **ipkw: object) -> bytes:
    return bytes(IPv6(src=src, dst=dst, **ipkw) / UDP(sport=1000, dport=2000) / payload)


def udp_bytes(payload: bytes = b"payload", src: str = PEER, dst: str = US) -> bytes:
    """A UDP datagram with its checksum over the IPv6 pseudo-header (scapy computes it)."""
    return udp_packet(src, dst, payload)[40:]


def counters(host: Host) -> dict[str, int]:
    return {k: v for k, v in host.ipv6.counters().items() if v}


# --- the protocol switch ---------------------------------------------------------------------------
def test_ip6_protox_holds_only_af_inet6_entries() -> None:
    sw = ProtocolSwitch()
    sw.add_domain(socket.AF_INET, "internet")
    sw.add_domain(socket.AF_INET6, "internet6")
    v4 = sw.add(socket.AF_INET, Protosw("udp", socket.SOCK_DGRAM, NH_UDP, input=lambda p, m, n: None))
    v6 = sw.add(socket.AF_INET6, Protosw("udp6", socket.SOCK_DGRAM, NH_UDP, input=lambda p, m, n: None))
    sw.add(socket.AF_INET6, Protosw("raw6", socket.SOCK_RAW, 255))      # no input: not dispatched
    assert sw.ip_protox == {NH_UDP: v4}
    assert sw.ip6_protox == {NH_UDP: v6}


# --- input: good packets ---------------------------------------------------------------------------
def test_delivery_with_meta(host: Host) -> None:
    data = udp_packet(hlim=33, tc=0xB8, fl=0x12345)
    deliver(host, data, now=5.0)
    (upper, meta, pkt, now), = host.udp.got
    assert upper == udp_bytes() and now == 5.0
    assert (meta.src, meta.dst, meta.next_header, meta.hop_limit, meta.tclass, meta.flow_label) == \
        (ip(PEER), ip(US), NH_UDP, 33, 0xB8, 0x12345)
    assert meta.ifp is host.eth0 and meta.header_len == 40 and meta.router_alert is None
    assert not meta.mcast and not meta.reassembled
    assert meta.original(pkt) == data
    assert counters(host) == {"in_receives": 1, "in_delivers": 1}
    assert host.errors == []


def test_link_padding_trimmed(host: Host) -> None:
    deliver(host, udp_packet(payload=b"") + bytes(10))
    (upper, meta, pkt, _), = host.udp.got
    assert upper == udp_bytes(b"") and len(meta.original(pkt)) == 48


def test_original_is_cut_to_fit_an_icmpv6_error(host: Host) -> None:
    deliver(host, udp_packet(payload=bytes(3000)))
    (_, meta, pkt, _), = host.udp.got
    assert len(meta.original(pkt)) == 1280 - 40 - 8     # RFC 4443 §2.4 (c)


def test_hop_by_hop_router_alert_and_destination_options(host: Host) -> None:
    data = bytes(IPv6(src=PEER_LL, dst=US_LL, hlim=1) / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)])
                 / IPv6ExtHdrDestOpt() / UDP(sport=1000, dport=2000) / b"payload")
    deliver(host, data)
    (upper, meta, _, _), = host.udp.got
    assert upper == udp_bytes(src=PEER_LL, dst=US_LL)
    assert meta.header_len == 56 and meta.router_alert == 0 and meta.hop_limit == 1


def test_routing_header_with_no_segments_left_is_ignored(host: Host) -> None:
    rh = IPv6ExtHdrRouting(type=0, segleft=0, addresses=["2001:db8::9"])
    deliver(host, bytes(IPv6(src=PEER, dst=US) / rh / UDP(sport=1000, dport=2000) / b"payload"))
    (upper, meta, _, _), = host.udp.got
    assert upper == udp_bytes() and meta.header_len == 40 + 24


def test_all_nodes_multicast_delivered_and_counted(host: Host) -> None:
    deliver(host, udp_packet(src=PEER_LL, dst="ff02::1"))
    (_, meta, _, _), = host.udp.got
    assert meta.mcast and meta.dst == ALL_NODES
    assert counters(host) == {"in_receives": 1, "in_delivers": 1, "in_mcast_pkts": 1}


def test_solicited_node_group_is_ours(host: Host) -> None:
    deliver(host, udp_packet(src="::", dst="ff02::1:ff00:2"))      # DAD: unspecified source is allowed
    (_, meta, _, _), = host.udp.got
    assert meta.src == 0 and meta.dst == solicited_node(ip(US))


def test_loopback_address_accepted_on_loopback_interface(host: Host) -> None:
    deliver(host, udp_packet(src="::1", dst="::1"), ifp=host.lo)
    (_, meta, _, _), = host.udp.got
    assert meta.ifp is host.lo and meta.src == 1


def test_hop_limit_zero_accepted_by_a_host(host: Host) -> None:
    # RFC 8200 §3: hop limit is a forwarding node's to decrement and check; a host delivers
    deliver(host, udp_packet(hlim=0))
    (_, meta, _, _), = host.udp.got
    assert meta.hop_limit == 0


def test_no_next_header_consumed_silently(host: Host) -> None:
    deliver(host, bytes(IPv6(src=PEER, dst=US, nh=NH_NONE) / b"ignored"))
    deliver(host, bytes(IPv6(src=PEER, dst=US) / IPv6ExtHdrDestOpt(nh=NH_NONE)))
    assert host.udp.got == [] and host.errors == []
    assert counters(host) == {"in_receives": 2, "in_delivers": 2}     # as Linux's IPPROTO_NONE handler


# --- input: malformed packets, each dropped and counted --------------------------------------------------
@pytest.mark.parametrize(("data", "reason"), [
    (b"", "in_truncated_pkts"),
    (bytes(IPv6(src=PEER, dst=US))[:39], "in_truncated_pkts"),
    (udp_packet()[:-1], "in_truncated_pkts"),                             # shorter than payload length
    (b"\x40" + udp_packet()[1:], "in_hdr_errors"),                        # version 4
    (b"\x70" + udp_packet()[1:], "in_hdr_errors"),                        # version 7
    (udp_packet(src="ff02::1"), "in_hdr_errors"),                         # multicast source
    (udp_packet(src="::1"), "in_hdr_errors"),                             # loopback from the wire
    (udp_packet(dst="::1"), "in_hdr_errors"),
    (udp_packet(dst="ff00::1"), "in_hdr_errors"),                         # reserved multicast scope 0
    (udp_packet(dst="ff01::1"), "in_hdr_errors"),                         # interface-local from the wire
    (udp_packet(src="::ffff:127.0.0.1"), "in_hdr_errors"),                # IPv4-mapped source (Linux)
    (udp_packet(dst=OTHER), "in_addr_errors"),                            # not ours: a host does not forward
    (udp_packet(dst=US_TENTATIVE), "in_addr_errors"),                     # tentative (RFC 4862 §5.4)
    (udp_packet(dst="ff02::2"), "in_addr_errors"),                        # a group we have not joined
    (udp_packet(dst="ff02::1:ff00:77"), "in_addr_errors"),
])
def test_malformed_dropped_and_counted(host: Host, data: bytes, reason: str) -> None:
    deliver(host, data)
    assert host.udp.got == [] and host.errors == []
    assert counters(host) == {"in_receives": 1, reason: 1}


def test_our_address_on_another_interface_is_the_owners_call(host: Host) -> None:
    deliver(host, udp_packet(), ifp=host.eth1)      # is_ours(eth1, US) says no here
    assert host.udp.got == [] and counters(host) == {"in_receives": 1, "in_addr_errors": 1}


def _param_problem(host: Host, data: bytes, code: int, pointer: int, reason: str = "in_hdr_errors") -> None:
    deliver(host, data, now=3.0)
    assert host.udp.got == []
    assert counters(host) == {"in_receives": 1, reason: 1}
    (type_, got_code, got_pointer, invoking, ifp, now), = host.errors
    assert (type_, got_code, got_pointer, ifp, now) == (PARAM_PROBLEM, code, pointer, host.eth0, 3.0)
    assert invoking == data[:1232]


def test_routing_type_0_with_segments_left_param_problem(host: Host) -> None:
    # RFC 5095 §3 / RFC 8200 §4.4: code 0 pointing at the Routing Type
    rh = IPv6ExtHdrRouting(type=0, segleft=1, addresses=["2001:db8::9"])
    _param_problem(host, bytes(IPv6(src=PEER, dst=US) / rh / UDP() / b"x"), 0, 42)


def test_unknown_option_discard_and_report(host: Host) -> None:
    # RFC 8200 §4.2: an unrecognized option of type 10xxxxxx -> code 2 pointing at its type
    opt = HBHOptUnknown(otype=0x87, optdata=b"\x00\x00\x00\x00")
    _param_problem(host, bytes(IPv6(src=PEER, dst=US) / IPv6ExtHdrDestOpt(options=[opt]) / UDP() / b"x"), 2, 42)


def test_unknown_option_silent_discard(host: Host) -> None:
    opt = HBHOptUnknown(otype=0x47, optdata=b"\x00\x00\x00\x00")    # 01xxxxxx: discard silently
    deliver(host, bytes(IPv6(src=PEER, dst=US) / IPv6ExtHdrDestOpt(options=[opt]) / UDP() / b"x"))
    assert host.udp.got == [] and host.errors == []
    assert counters(host) == {"in_receives": 1, "in_hdr_errors": 1}


def test_hop_by_hop_not_first_param_problem_code_1(host: Host) -> None:
    data = bytes(IPv6(src=PEER, dst=US) / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / UDP() / b"x")
    _param_problem(host, data, 1, 40, reason="in_unknown_protos")


def test_unknown_upper_protocol_param_problem_code_1(host: Host) -> None:
    _param_problem(host, bytes(IPv6(src=PEER, dst=US, nh=NH_SCTP) / b"sctp-ish"), 1, 6,
                   reason="in_unknown_protos")


def test_unknown_upper_protocol_after_extension_header_points_at_it(host: Host) -> None:
    _param_problem(host, bytes(IPv6(src=PEER, dst=US) / IPv6ExtHdrDestOpt(nh=NH_SCTP) / b"sctp-ish"), 1, 40,
                   reason="in_unknown_protos")


def test_routing_header_to_multicast_dropped(host: Host) -> None:
    rh = IPv6ExtHdrRouting(type=0, segleft=0, addresses=["2001:db8::9"])
    deliver(host, bytes(IPv6(src=PEER_LL, dst="ff02::1") / rh / UDP() / b"x"))
    assert host.udp.got == [] and host.errors == []
    assert counters(host) == {"in_receives": 1, "in_mcast_pkts": 1, "in_addr_errors": 1}


def test_chain_too_long_dropped_silently(host: Host) -> None:
    chain = IPv6ExtHdrDestOpt()
    for _ in range(8):
        chain = chain / IPv6ExtHdrDestOpt()
    deliver(host, bytes(IPv6(src=PEER, dst=US) / chain / UDP() / b"x"))
    assert host.udp.got == [] and host.errors == []
    assert counters(host) == {"in_receives": 1, "in_hdr_errors": 1}


def test_truncated_extension_header(host: Host) -> None:
    data = bytearray(bytes(IPv6(src=PEER, dst=US) / IPv6ExtHdrDestOpt(nh=NH_NONE)))
    data[41] = 3                                   # says 32 octets, 8 are there
    deliver(host, bytes(data))
    assert counters(host) == {"in_receives": 1, "in_truncated_pkts": 1}


def test_first_fragment_without_the_upper_header_param_problem_code_3(host: Host) -> None:
    # RFC 7112 / RFC 8200 §4.5: the first fragment holds the whole chain through the upper header
    data = bytes(IPv6(src=PEER, dst=US) / IPv6ExtHdrFragment(nh=6, offset=0, m=1, id=9) / bytes(8))   # TCP: 20
    _param_problem(host, data, 3, 0)


def test_fragment_not_multiple_of_8_param_problem(host: Host) -> None:
    data = bytes(IPv6(src=PEER, dst=US) / IPv6ExtHdrFragment(nh=NH_UDP, offset=1, m=1, id=9) / bytes(12))
    _param_problem(host, data, 0, 4)


def test_no_handler_is_unknown(host: Host) -> None:
    host.ipv6.protosw.ip6_protox[NH_SCTP] = Protosw("sctp6", socket.SOCK_STREAM, NH_SCTP)   # no input
    _param_problem(host, bytes(IPv6(src=PEER, dst=US, nh=NH_SCTP) / b"x"), 1, 6, reason="in_unknown_protos")


# --- input: fragments -----------------------------------------------------------------------------------
def _fragments(payload_len: int = 3000, ident: int = 0x1234, src: str = PEER, dst: str = US,
               mtu: int = 1280) -> tuple[list[bytes], bytes]:
    whole = IPv6(src=src, dst=dst) / IPv6ExtHdrFragment(id=ident) / UDP(sport=1000, dport=2000) / bytes(
        i % 251 for i in range(payload_len))
    return [bytes(f) for f in fragment6(whole, mtu)], bytes(whole)[48:]


def test_fragments_reassembled_and_delivered_once(host: Host) -> None:
    frags, upper = _fragments()
    assert len(frags) == 3
    for i, f in enumerate(reversed(frags)):
        deliver(host, f, now=float(i))
    deliver(host, frags[1], now=4.0)           # a late duplicate starts nothing new worth delivering
    (got, meta, pkt, now), = host.udp.got
    assert got == upper and now == 2.0
    assert meta.reassembled and meta.hdr_start == 0 and meta.header_len == 40
    assert (meta.src, meta.dst, meta.next_header) == (ip(PEER), ip(US), NH_UDP)
    original = meta.original(pkt)
    assert original[:4] == frags[0][:4] and original[8:40] == frags[0][8:40]
    assert struct.unpack_from("!HB", original, 4) == (len(upper), NH_UDP)    # plen and nh rewritten
    assert original[40:48] == upper[:8]
    c = host.ipv6.counters()
    assert (c["in_receives"], c["in_delivers"], c["reasm_reqds"], c["reasm_oks"]) == (4, 1, 4, 1)
    assert host.ipv6.reasm.pending != {}       # the duplicate opened a new datagram that will time out


def test_fragments_with_link_local_destination_keyed_by_interface(host: Host) -> None:
    host.ours[2] = {ip(US_LL)}
    frags, upper = _fragments(src=PEER_LL, dst=US_LL)
    deliver(host, frags[0], ifp=host.eth0)
    deliver(host, frags[1], ifp=host.eth1)      # same addresses and id, another link: another datagram
    deliver(host, frags[2], ifp=host.eth0)
    assert host.udp.got == []
    deliver(host, frags[1], ifp=host.eth0)
    (got, meta, _, _), = host.udp.got
    assert got == upper and meta.ifp is host.eth0


def test_atomic_fragment_processed_alone(host: Host) -> None:
    data = bytes(IPv6(src=PEER, dst=US) / IPv6ExtHdrFragment(nh=NH_UDP, offset=0, m=0, id=5)
                 / UDP(sport=1000, dport=2000) / b"payload")
    deliver(host, data)
    (got, meta, _, _), = host.udp.got
    assert got == udp_bytes() and meta.header_len == 48 and not meta.reassembled
    assert host.ipv6.reasm.stats.reasm_atomic == 1 and host.ipv6.counters()["reasm_oks"] == 1


def test_overlapping_fragments_discard_the_datagram(host: Host) -> None:
    frags, _ = _fragments()
    deliver(host, frags[0])
    overlapping = bytearray(frags[1])
    struct.pack_into("!H", overlapping, 42, 1224 | 1)    # starts 8 octets before fragment zero ends
    deliver(host, bytes(overlapping))
    deliver(host, frags[1])
    deliver(host, frags[2])
    assert host.udp.got == []
    assert host.ipv6.counters()["reasm_fails"] == 1 and host.ipv6.reasm.stats.reasm_overlaps == 1


def test_reassembly_timeout_asks_time_exceeded(host: Host) -> None:
    frags, _ = _fragments()
    deliver(host, frags[0], now=10.0)
    deliver(host, frags[2], now=11.0)
    reasm = host.ipv6.reasm
    assert reasm.poll_at() == 70.0
    reasm.poll(69.9)
    assert host.errors == []
    reasm.poll(70.0)
    (type_, code, param, invoking, ifp, now), = host.errors
    assert (type_, code, param, ifp, now) == (TIME_EXCEEDED, 1, 0, None, 70.0)
    assert invoking[:40] == frags[0][:40] and invoking[40] == NH_UDP    # fragment zero as it came
    assert host.ipv6.counters()["reasm_fails"] == 1 and host.udp.got == []


def test_link_local_reassembly_timeout_is_answered_on_its_interface(host: Host) -> None:
    host.ours[2] = {ip(US_LL)}
    frags, _ = _fragments(src=PEER_LL, dst=US_LL)
    deliver(host, frags[0], ifp=host.eth1, now=10.0)
    host.ipv6.reasm.poll(70.0)
    (type_, code, _, _, ifp, _), = host.errors
    assert (type_, code) == (TIME_EXCEEDED, 1) and ifp is host.eth1


def test_chain_error_after_reassembly_points_into_the_reassembled_packet(host: Host) -> None:
    opt = HBHOptUnknown(otype=0x87, optdata=b"\x00\x00\x00\x00")
    whole = (IPv6(src=PEER, dst=US) / IPv6ExtHdrFragment(id=77) / IPv6ExtHdrDestOpt(options=[opt])
             / UDP(sport=1, dport=2) / bytes(2000))
    frags = [bytes(f) for f in fragment6(whole, 1280)]
    for f in frags:
        deliver(host, f)
    assert host.udp.got == []
    (type_, code, pointer, invoking, _, _), = host.errors
    # the Destination Options header sits at 40 once the Fragment header is gone: option type at 42
    assert (type_, code, pointer) == (PARAM_PROBLEM, 2, 42) and invoking[42] == 0x87
    assert host.ipv6.counters()["in_hdr_errors"] == 1


# --- output ---------------------------------------------------------------------------------------------
def send(host: Host, payload: bytes = b"", *, src: str | int = US, dst: str = PEER, nh: int = NH_UDP,
         now: float = 0.0, **kw: object) -> int:
    pkt = PacketBuffer.from_payload(payload or udp_bytes())
    return host.ipv6.output(pkt, ip(src) if isinstance(src, str) else src, ip(dst), nh, now, **kw)  # type: ignore[arg-type]


def test_output_builds_a_header_scapy_parses(host: Host) -> None:
    assert send(host, udp_bytes(b"hello"), hop_limit=9, tclass=0x2E, flow_label=0xABCDE, now=2.0) == 0
    (frame, nexthop, now), = host.link.sent
    p = IPv6(frame)
    assert (p.version, p.src, p.dst, p.nh, p.hlim, p.tc, p.fl, p.plen) == (6, US, PEER, NH_UDP, 9, 0x2E, 0xABCDE, 13)
    assert bytes(p[UDP].payload) == b"hello" and len(frame) == 40 + 13
    assert nexthop == ip(PEER) and now == 2.0
    assert counters(host) == {"out_requests": 1}


def test_output_via_the_default_router(host: Host) -> None:
    assert send(host, dst="2001:db8:5::1") == 0
    (frame, nexthop, _), = host.link.sent
    assert IPv6(frame).dst == "2001:db8:5::1" and nexthop == ip(ROUTER_LL) and IPv6(frame).hlim == 64


def test_output_prepends_into_headroom_without_copying(host: Host) -> None:
    pkt = PacketBuffer.from_payload(udp_bytes())
    buf = pkt.buf
    assert host.ipv6.output(pkt, ip(US), ip(PEER), NH_UDP, 0.0) == 0
    assert pkt.buf is buf and len(pkt) == 40 + len(udp_bytes())


@pytest.mark.parametrize(("dst", "expected"), [
    (PEER, US),                       # rule 3 avoids the deprecated one, rule 8 among the rest
    ("2001:db8:5::1", US),            # via the router: global scope, label 5 (2001::/32)
    (PEER_LL, US_LL),                 # rule 2: link-local scope
    ("fd00::1", US_ULA),              # rule 6: label 13
    ("ff02::1", US_LL),               # link-local multicast: link-local source
    (US, US),                         # rule 1
    (US_DEPRECATED, US_DEPRECATED),   # rule 1 before rule 3
])
def test_source_selected_per_rfc_6724(host: Host, dst: str, expected: str) -> None:
    assert send(host, src=0, dst=dst) == 0
    (frame, _, _), = host.link.sent
    assert IPv6(frame).src == expected


def test_global_destination_considers_every_interface(host: Host) -> None:
    host.candidates = [SourceCandidate(ip("2001:db8:1::5"), 64, ifindex=2)]    # on eth1, we leave by eth0
    assert send(host, src=0, now=2.0) == 0
    assert host.candidate_queries == [(None, 2.0)]
    (frame, _, _), = host.link.sent
    assert IPv6(frame).src == "2001:db8:1::5"


def test_route_preferred_source_wins(host: Host) -> None:
    assert send(host, src=0, dst=PREFSRC_NET) == 0
    (frame, nexthop, _), = host.link.sent
    assert IPv6(frame).src == US_ULA and nexthop == ip(ROUTER_LL) and host.candidate_queries == []


@pytest.mark.parametrize(("dst", "oif", "expected"), [
    (PEER, None, (0, ip(US))),
    (PEER_LL, None, (0, ip(US_LL))),
    (PREFSRC_NET, None, (0, ip(US_ULA))),
    (NO_ROUTE, None, (errno.ENETUNREACH, 0)),
    (PEER_LL, "eth1", (errno.EADDRNOTAVAIL, 0)),
])
def test_source_for_is_outputs_choice(host: Host, dst: str, oif: str | None, expected: tuple[int, int]) -> None:
    assert host.ipv6.source_for(ip(dst), 0.0, host.eth1 if oif else None) == expected
    assert counters(host) == {}


def test_tentative_address_never_chosen(host: Host) -> None:
    host.candidates = [c for c in host.candidates if c.addr == ip(US_TENTATIVE)]
    assert send(host, src=0) == errno.EADDRNOTAVAIL
    assert host.link.sent == [] and counters(host) == {"out_requests": 1, "out_discards": 1}


def test_link_local_destination_takes_a_source_of_the_outgoing_interface(host: Host) -> None:
    # eth1 has only a tentative address: eth0's link-local one must not be used there (RFC 6724 §4)
    assert send(host, src=0, dst=PEER_LL, oif=host.eth1, now=4.0) == errno.EADDRNOTAVAIL
    assert host.candidate_queries == [(host.eth1, 4.0)]     # only that interface's were asked for
    assert host.link.sent == [] and host.link1.sent == []
    host.candidates.append(SourceCandidate(ip("fe80::22"), 64, ifindex=2))
    assert send(host, src=0, dst=PEER_LL, oif=host.eth1) == 0
    (frame, _, _), = host.link1.sent
    assert IPv6(frame).src == "fe80::22"


def test_unspecified_source_kept_when_asked(host: Host) -> None:
    # a DAD Neighbor Solicitation (RFC 4862 §5.4.2)
    assert send(host, src=0, dst="ff02::1:ff00:2", nh=58, hop_limit=255, send_unspecified=True) == 0
    (frame, nexthop, _), = host.link.sent
    assert IPv6(frame).src == "::" and IPv6(frame).hlim == 255 and nexthop == ip("ff02::1:ff00:2")


def test_multicast_hop_limit_defaults_to_1(host: Host) -> None:
    assert send(host, dst="ff02::1") == 0
    assert send(host, dst="ff0e::1") == 0
    assert [IPv6(f).hlim for f, _, _ in host.link.sent] == [1, 1]
    assert counters(host) == {"out_requests": 2, "out_mcast_pkts": 2}


@pytest.mark.parametrize(("dst", "err"), [(NO_ROUTE, errno.ENETUNREACH), (REJECT, errno.EHOSTUNREACH)])
def test_route_failure_returned(host: Host, dst: str, err: int) -> None:
    assert send(host, dst=dst) == err
    assert host.link.sent == [] and counters(host) == {"out_requests": 1, "out_no_routes": 1}


@pytest.mark.parametrize("kw", [{"hop_limit": 256}, {"hop_limit": -1}, {"tclass": 256}, {"flow_label": 1 << 20}])
def test_bad_header_values_einval(host: Host, kw: dict[str, int]) -> None:
    assert send(host, **kw) == errno.EINVAL
    assert host.link.sent == [] and counters(host) == {"out_requests": 1, "out_discards": 1}


def test_interface_down_enetdown(host: Host) -> None:
    host.eth0.flags &= ~IFF_RUNNING
    assert send(host) == errno.ENETDOWN
    assert counters(host) == {"out_requests": 1, "out_discards": 1}


def test_link_error_returned_and_counted(host: Host) -> None:
    host.link.err = errno.EHOSTUNREACH
    assert send(host) == errno.EHOSTUNREACH
    assert counters(host) == {"out_requests": 1, "out_discards": 1}


def _payload(n: int) -> bytes:
    return bytes((i * 7) % 256 for i in range(n))


def test_fragmented_over_the_link_mtu(host: Host) -> None:
    upper = udp_bytes(_payload(4000))
    assert send(host, upper) == 0
    frames = [f for f, _, _ in host.link.sent]
    assert len(frames) == 3 and all(len(f) <= 1500 for f in frames)
    assert all(IPv6(f).nh == 44 for f in frames)
    heads = [parse_fragment_header(f[40:]) for f in frames]
    assert len({h.ident for h in heads if h}) == 1
    assert [(h.offset, h.more) for h in heads if h] == [(0, True), (1448, True), (2896, False)]
    whole = defragment6([IPv6(f) for f in frames])
    assert bytes(whole[UDP]) == upper and whole.src == US and whole.dst == PEER
    assert counters(host) == {"out_requests": 1, "out_frag_reqds": 1, "out_frag_oks": 1, "out_frag_creates": 3}


def test_fragments_reassembled_by_the_reassembler(host: Host) -> None:
    upper = udp_bytes(_payload(5000))
    assert send(host, upper) == 0
    r = Ipv6Reassembler()
    results = []
    for frame, _, _ in host.link.sent:
        fh = parse_fragment_header(frame[40:])
        assert fh is not None
        results.append(r.add(ip(US), ip(PEER), frame[:40], 6, fh, frame[48:], 0.0))
    *held, done = results
    assert held == [None] * len(held) and done is not None
    assert done.payload == upper and done.next_header == NH_UDP   # type: ignore[union-attr]


def test_path_mtu_lowers_the_fragment_size_and_ages_out(host: Host) -> None:
    assert host.ipv6.pmtu.update(ip(PEER), 1300, host.eth0.mtu, 0.0)
    assert host.ipv6.path_mtu(host.eth0, ip(PEER), 1.0) == 1300
    assert send(host, udp_bytes(_payload(1400)), now=1.0) == 0
    assert [len(f) for f, _, _ in host.link.sent] == [1296, 48 + 1408 - 1248]
    host.link.sent.clear()
    assert send(host, udp_bytes(_payload(1400)), now=601.0) == 0    # RFC 8201 aging: the link MTU again
    assert [len(f) for f, _, _ in host.link.sent] == [40 + 1408]


def test_path_mtu_never_below_1280(host: Host) -> None:
    host.ipv6.pmtu.update(ip(PEER), 600, host.eth0.mtu, 0.0)
    assert host.ipv6.path_mtu(host.eth0, ip(PEER), 0.0) == 1280
    assert send(host, udp_bytes(_payload(1300))) == 0
    assert max(len(f) for f, _, _ in host.link.sent) <= 1280 and len(host.link.sent) == 2


def test_identification_unpredictable_and_per_datagram() -> None:
    idents = []
    for seed in (1, 2):
        h = make_host(seed=seed)
        for _ in range(2):
            h.link.sent.clear()
            assert send(h, udp_bytes(_payload(3000))) == 0
            fh = parse_fragment_header(h.link.sent[0][0][40:])
            assert fh is not None
            idents.append(fh.ident)
    assert idents[0] != idents[1] and idents[2] != idents[3]      # a new one per datagram
    assert idents[0] != idents[2]                                  # from the injected rng


def test_dontfrag_emsgsize(host: Host) -> None:
    assert send(host, udp_bytes(_payload(2000)), dontfrag=True) == errno.EMSGSIZE
    assert host.link.sent == []
    assert counters(host) == {"out_requests": 1, "out_frag_reqds": 1, "out_frag_fails": 1}


def test_partial_checksum_not_fragmented(host: Host) -> None:
    pkt = PacketBuffer.from_payload(udp_bytes(_payload(2000)))
    pkt.csum_start, pkt.csum_offset = pkt.start, 6
    assert host.ipv6.output(pkt, ip(US), ip(PEER), NH_UDP, 0.0) == errno.EMSGSIZE
    assert host.link.sent == [] and host.ipv6.stats.out_frag_fails == 1


def test_too_big_for_any_fragmentation(host: Host) -> None:
    assert send(host, bytes(65536)) == errno.EMSGSIZE
    assert host.link.sent == [] and host.ipv6.stats.out_frag_fails == 1


def test_gso_super_segment_not_fragmented(host: Host) -> None:
    pkt = PacketBuffer.from_payload(bytes(20 + 4 * 1440))
    pkt.gso_size = 1440
    assert host.ipv6.output(pkt, ip(US), ip(PEER), 6, 0.0) == 0
    (frame, _, _), = host.link.sent
    assert len(frame) == 40 + 20 + 4 * 1440 and IPv6(frame).plen == 20 + 4 * 1440


def test_gso_super_segment_beyond_64k_refused(host: Host) -> None:
    pkt = PacketBuffer.from_payload(bytes(65536))
    pkt.gso_size = 1440
    assert host.ipv6.output(pkt, ip(US), ip(PEER), 6, 0.0) == errno.EMSGSIZE
    assert host.link.sent == [] and host.ipv6.stats.out_discards == 1


def test_unreachable_from_link_reports_address_unreachable(host: Host) -> None:
    pkt = PacketBuffer.from_payload(udp_packet())
    host.ipv6.unreachable_from_link(pkt, 9.0)
    assert host.local_errors == [(DEST_UNREACH, 3, udp_packet(), 9.0)]


# --- output to input, both sides this module -------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 9000), mtu=st.integers(1280, 9000), tclass=st.integers(0, 255))
def test_output_then_input_round_trip(size: int, mtu: int, tclass: int) -> None:
    sender, receiver = make_host(mtu=mtu), make_host(seed=3)
    receiver.ours[1].add(ip(PEER))
    upper = udp_bytes(_payload(size))
    assert sender.ipv6.output(PacketBuffer.from_payload(upper), ip(US), ip(PEER), NH_UDP, 0.0, tclass=tclass) == 0
    assert all(len(f) <= mtu for f, _, _ in sender.link.sent)
    for frame, _, _ in sender.link.sent:
        receiver.ipv6.input(receiver.eth0, rx(frame), 1.0)
    (got, meta, _, _), = receiver.udp.got
    assert got == upper and (meta.src, meta.dst, meta.tclass) == (ip(US), ip(PEER), tclass)
    assert receiver.ipv6.reasm.pending == {} and receiver.ipv6.reasm.memory == 0
    assert receiver.errors == []


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200), nh=st.sampled_from([0, 43, 44, 60, 17, 59, 58, 6]))
def test_input_never_raises(data: bytes, nh: int) -> None:
    host = make_host()
    header = bytes(IPv6(src=PEER, dst=US, nh=nh, plen=len(data)))
    host.ipv6.input(host.eth0, rx(header + data), 0.0)
    c = host.ipv6.counters()
    assert c["in_receives"] == 1
    dropped = sum(c[k] for k in ("in_hdr_errors", "in_truncated_pkts", "in_addr_errors", "in_unknown_protos"))
    # each packet is delivered, or dropped under a counter, or taken by the reassembler
    # (held or refused under its own counters); never two of the first two
    assert c["in_delivers"] + dropped == 1 or (c["in_delivers"] + dropped == 0 and c["reasm_reqds"] == 1)
    assert c["in_delivers"] <= 1 and dropped <= 1


def _ll_multicast(data: bytes) -> PacketBuffer:
    pkt = rx(data)
    pkt.ll_bcast = True        # the demuxer's mark: the frame went to a multicast/broadcast MAC
    return pkt


def test_link_layer_multicast_gets_no_error_but_option_action_10(host: Host) -> None:
    # RFC 4443 §2.4 (e.3): no error about a packet sent as a link-layer multicast or broadcast,
    # but for Packet Too Big and an unrecognized option whose action is 10 (RFC 8200 §4.2)
    host.ipv6.input(host.eth0, _ll_multicast(bytes(IPv6(src=PEER, dst=US, nh=NH_SCTP) / (b"x" * 8))), 1.0)
    rh = IPv6ExtHdrRouting(type=0, segleft=1, addresses=["2001:db8::9"])
    host.ipv6.input(host.eth0, _ll_multicast(bytes(IPv6(src=PEER, dst=US) / rh / UDP() / b"x")), 1.0)
    assert host.errors == []
    assert counters(host) == {"in_receives": 2, "in_unknown_protos": 1, "in_hdr_errors": 1}   # still counted
    opt = HBHOptUnknown(otype=0x87, optdata=b"\x00\x00\x00\x00")        # 10xxxxxx: reported anyway
    host.ipv6.input(host.eth0, _ll_multicast(bytes(IPv6(src=PEER, dst=US) / IPv6ExtHdrDestOpt(options=[opt])
                                                   / UDP() / b"x")), 1.0)
    ((type_, code, pointer, _, _, _),) = host.errors
    assert (type_, code, pointer) == (PARAM_PROBLEM, 2, 42)
    opt = HBHOptUnknown(otype=0xC7, optdata=b"\x00\x00\x00\x00")        # 11xxxxxx: only for unicast
    host.ipv6.input(host.eth0, _ll_multicast(bytes(IPv6(src=PEER, dst=US) / IPv6ExtHdrDestOpt(options=[opt])
                                                   / UDP() / b"x")), 1.0)
    assert len(host.errors) == 1


def test_link_layer_multicast_is_told_to_the_transport(host: Host) -> None:
    host.ipv6.input(host.eth0, _ll_multicast(udp_packet()), 0.0)
    host.ipv6.input(host.eth0, rx(udp_packet()), 0.0)
    assert [meta.ll_mcast for _, meta, _, _ in host.udp.got] == [True, False]
