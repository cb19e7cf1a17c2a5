"""The ICMPv6 core (protocols/icmpv6/core.py) over a real Ipv6 layer with fake interfaces
(test_ipv6_ip6's host): echo, echo waiters, RFC 4443 §2.4(e) error rules, rate limits with an
explicit clock, Packet Too Big and the path MTU (RFC 8201), ctlinput dispatch, ND/MLD hand-off.
Packets in are built by scapy and packets out parsed by scapy, so neither side checks itself."""
from __future__ import annotations

import errno
import random
import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6MLQuery,
    ICMPv6ND_NS,
    ICMPv6ND_Redirect,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    ICMPv6Unknown,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    RouterAlert,
)

from ndd.pktbuf import PacketBuffer
from protocols.contracts import Protosw
from protocols.icmp import TokenBucket
from protocols.icmpv6.core import Icmpv6, Icmpv6Error
from protocols.icmpv6.mld import MldV1Query
from protocols.icmpv6.nd import NeighborSolicitation
from protocols.icmpv6.wire import (
    DEST_UNREACH,
    MAX_QUOTE,
    PACKET_TOO_BIG,
    PARAM_PROBLEM,
    TIME_EXCEEDED,
)
from protocols.ipv6.addr import ALL_NODES, is_multicast, solicited_node
from protocols.ipv6.ip6 import Ip6Meta

from .fakes import rx
from .test_ipv6_ip6 import PEER, PEER_LL, US, US_LL, US_ULA, Host, ip, make_host

NH_UDP, NH_ICMPV6, NH_SCTP = 17, 58, 132
REMOTE = "2001:db8:77::9"       # beyond the default router
ROUTER = "2001:db8:ff::1"       # a router on the path that reports errors


class Core:
    """The host, its ICMPv6 core registered for next header 58, a UDP ctlinput recorder."""

    def __init__(self, **kw: Any) -> None:
        self.host: Host = make_host()
        kw.setdefault("rng", random.Random(1))
        kw.setdefault("random_cost", False)
        self.icmp = Icmpv6(self.host.ipv6, **kw)
        sw = self.host.ipv6.protosw
        sw.add(socket.AF_INET6, Protosw("icmpv6", socket.SOCK_RAW, NH_ICMPV6, input=self.icmp.input,
                                        ctlinput=self.icmp.ctlinput))
        self.udp_errors: list[Icmpv6Error] = []
        sw.ip6_protox[NH_UDP].ctlinput = lambda err, now: self.udp_errors.append(err)
        sw.add(socket.AF_INET6, Protosw("sctp6", socket.SOCK_STREAM, NH_SCTP, input=lambda p, m, n: None))
        self.nd: list[tuple[Any, Ip6Meta]] = []
        self.mld: list[tuple[Any, Ip6Meta]] = []
        self.icmp.nd_input = lambda msg, meta, now: self.nd.append((msg, meta))
        self.icmp.mld_input = lambda msg, meta, now: self.mld.append((msg, meta))

    def deliver(self, pkt: Any, now: float = 0.0) -> None:
        self.host.ipv6.input(self.host.eth0, rx(bytes(pkt)), now)

    def sent(self) -> list[IPv6]:
        out = [IPv6(data) for data, _, _ in self.host.link.sent]
        self.host.link.sent.clear()
        return out

    def counters(self) -> dict[str, int]:
        return {k: v for k, v in self.icmp.stats.as_dict().items() if v}


@pytest.fixture
def core() -> Core:
    return Core()


def checksum_ok(pkt: IPv6) -> bool:
    """Scapy recomputes the ICMPv6 checksum from scratch and compares."""
    icmp = pkt.payload
    sent = icmp.cksum
    del icmp.cksum
    return IPv6(bytes(pkt)).payload.cksum == sent


def udp_out(dst: str = REMOTE, payload: bytes = b"data", src: str = US) -> bytes:
    """A UDP packet we sent, as a router would quote it."""
    return bytes(IPv6(src=src, dst=dst) / UDP(sport=4000, dport=53) / payload)


def udp_in(src: str = PEER, dst: str = US, payload: bytes = b"data") -> bytes:
    """A UDP packet we received, as the IPv6 layer hands it to `error`."""
    return bytes(IPv6(src=src, dst=dst) / UDP(sport=1000, dport=2000) / payload)


def error_to_us(icmp: Any, quote: bytes, reporter: str = ROUTER, dst: str = US) -> IPv6:
    return IPv6(src=reporter, dst=dst) / icmp / quote


# --- echo --------------------------------------------------------------------------------------
def test_echo_request_answered_with_same_data(core: Core) -> None:
    core.deliver(IPv6(src=PEER, dst=US, tc=0x20) / ICMPv6EchoRequest(id=7, seq=3, data=b"x" * 100), now=1.0)
    (reply,) = core.sent()
    assert (reply.src, reply.dst, reply.nh, reply.tc) == (US, PEER, NH_ICMPV6, 0x20)
    echo = reply[ICMPv6EchoReply]
    assert (echo.id, echo.seq, echo.data) == (7, 3, b"x" * 100)
    assert checksum_ok(reply)
    assert core.counters() == {"in_msgs": 1, "in_echos": 1, "out_msgs": 1, "out_echo_replies": 1}


def test_echo_to_a_deprecated_or_ula_address_answers_from_it(core: Core) -> None:
    core.deliver(IPv6(src=PEER, dst=US_ULA) / ICMPv6EchoRequest(id=1, seq=1))
    (reply,) = core.sent()
    assert reply.src == US_ULA


@pytest.mark.parametrize("src, expected_src", [(PEER_LL, US_LL), (PEER, US)])
def test_multicast_echo_answered_from_a_unicast_address(core: Core, src: str, expected_src: str) -> None:
    # RFC 4443 §4.2; Linux icmp_echo_ignore_multicast = 0 answers
    core.deliver(IPv6(src=src, dst="ff02::1") / ICMPv6EchoRequest(id=9, seq=1, data=b"m"))
    (reply,) = core.sent()
    assert reply.src == expected_src and not is_multicast(ip(reply.src)) and reply.dst == src
    assert reply[ICMPv6EchoReply].data == b"m" and checksum_ok(reply)


def test_multicast_echo_ignored_when_configured() -> None:
    c = Core(echo_ignore_multicast=True)
    c.deliver(IPv6(src=PEER, dst="ff02::1") / ICMPv6EchoRequest())
    assert c.sent() == [] and c.icmp.stats.in_echo_ignored == 1 and c.icmp.stats.in_echos == 1
    c.deliver(IPv6(src=PEER, dst=US) / ICMPv6EchoRequest())      # unicast still answered
    assert len(c.sent()) == 1


def test_echo_waiter_round_trip(core: Core) -> None:
    got: list[tuple[int, int, bytes]] = []
    assert core.icmp.send_echo(ip(PEER), 0x1234, 5, b"ping!", 2.0, lambda *a: got.append(a)) == 0
    (req,) = core.sent()
    assert (req.src, req.dst) == (US, PEER) and checksum_ok(req)
    echo = req[ICMPv6EchoRequest]
    assert (echo.id, echo.seq, echo.data) == (0x1234, 5, b"ping!")
    core.deliver(IPv6(src=PEER, dst=US) / ICMPv6EchoReply(id=0x1234, seq=5, data=b"ping!"))
    assert got == [(0, ip(PEER), b"ping!")] and core.icmp.echo_waiters == {}
    core.deliver(IPv6(src=PEER, dst=US) / ICMPv6EchoReply(id=0x1234, seq=5, data=b"ping!"))
    assert len(got) == 1 and core.icmp.stats.in_echo_unmatched == 1
    assert core.icmp.stats.out_echos == 1 and core.icmp.stats.in_echo_replies == 2


def test_cancelled_echo_reply_ignored(core: Core) -> None:
    got: list[tuple[int, int, bytes]] = []
    core.icmp.send_echo(ip(PEER), 1, 1, b"", 0.0, lambda *a: got.append(a))
    core.icmp.cancel_echo(1, 1)
    core.deliver(IPv6(src=PEER, dst=US) / ICMPv6EchoReply(id=1, seq=1))
    assert got == [] and core.icmp.stats.in_echo_unmatched == 1


def test_error_about_our_echo_reaches_the_waiter(core: Core) -> None:
    got: list[tuple[int, int, bytes]] = []
    core.icmp.send_echo(ip(REMOTE), 3, 4, b"abc", 0.0, lambda *a: got.append(a))
    (req,) = core.sent()
    core.deliver(error_to_us(ICMPv6DestUnreach(code=3), bytes(req)))
    assert got == [(errno.EHOSTUNREACH, ip(ROUTER), b"")] and core.icmp.echo_waiters == {}


def test_send_echo_without_route_fails_and_keeps_no_waiter(core: Core) -> None:
    err = core.icmp.send_echo(ip("2001:db8:dead::1"), 1, 1, b"", 0.0, lambda *a: None)
    assert err == errno.ENETUNREACH and core.icmp.echo_waiters == {} and core.icmp.stats.out_discards == 1


# --- malformed input -----------------------------------------------------------------------------
def meta(src: str = PEER, dst: str = US, hop_limit: int = 64, core: Core | None = None) -> Ip6Meta:
    return Ip6Meta(ip(src), ip(dst), NH_ICMPV6, hop_limit, 0, 0, core.host.eth0 if core else None, 40, 0)


def test_bad_checksum_and_truncated_counted(core: Core) -> None:
    good = bytes(ICMPv6EchoRequest(id=1, seq=1, cksum=0x1111))
    core.icmp.input(PacketBuffer(good), meta(core=core), 0.0)
    core.icmp.input(PacketBuffer(good[:4]), meta(core=core), 0.0)
    assert core.sent() == []
    assert core.counters() == {"in_msgs": 2, "in_errors": 2, "in_csum_errors": 1, "in_truncated": 1}


def test_bad_checksum_through_the_ip_layer(core: Core) -> None:
    core.deliver(IPv6(src=PEER, dst=US) / ICMPv6EchoRequest(cksum=0xBEEF))
    assert core.sent() == [] and core.icmp.stats.in_csum_errors == 1


def test_echo_from_unspecified_source_not_answered(core: Core) -> None:
    request = bytes(IPv6(src="::", dst=US) / ICMPv6EchoRequest())[40:]
    core.icmp.input(PacketBuffer(request), meta(src="::", core=core), 0.0)
    assert core.sent() == [] and core.icmp.stats.in_echo_ignored == 1 and core.icmp.stats.in_echos == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_any_bytes_are_counted_never_raised(data: bytes, csum_valid: bool) -> None:
    c = CORE_FOR_FUZZ
    before = c.icmp.stats.in_msgs
    pkt = PacketBuffer(data)
    pkt.csum_valid = csum_valid        # skip the checksum: the codecs see every shape
    c.icmp.input(pkt, meta(src=PEER_LL, dst="ff02::1", hop_limit=255, core=c), 0.0)
    assert c.icmp.stats.in_msgs == before + 1


def test_unknown_informational_type_discarded(core: Core) -> None:
    core.deliver(IPv6(src=PEER, dst=US) / ICMPv6Unknown(type=200, msgbody=b"abcd"))
    assert core.sent() == [] and core.counters() == {"in_msgs": 1, "in_unknown_types": 1}


# --- errors received: ctlinput, Packet Too Big ---------------------------------------------------------
def test_port_unreachable_to_udp_ctlinput(core: Core) -> None:
    quote = udp_out()
    core.deliver(error_to_us(ICMPv6DestUnreach(code=4), quote), now=3.0)
    (err,) = core.udp_errors
    assert (err.type, err.code, err.errno, err.fatal) == (DEST_UNREACH, 4, errno.ECONNREFUSED, True)
    assert (err.reporter, err.src, err.dst, err.next_header) == (ip(ROUTER), ip(US), ip(REMOTE), NH_UDP)
    assert err.payload == quote[40:] and err.payload[:4] == bytes.fromhex("0fa00035")
    assert core.icmp.stats.in_dest_unreachs == 1


def test_error_quote_walks_extension_headers(core: Core) -> None:
    quote = bytes(IPv6(src=US, dst=REMOTE) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
                  / UDP(sport=4000, dport=53) / b"q")
    core.deliver(error_to_us(ICMPv6TimeExceeded(code=0), quote))
    (err,) = core.udp_errors
    assert (err.type, err.errno, err.fatal, err.next_header) == (TIME_EXCEEDED, errno.EHOSTUNREACH, False, NH_UDP)
    assert err.payload[:4] == bytes.fromhex("0fa00035")


def test_parameter_problem_carries_pointer(core: Core) -> None:
    core.deliver(error_to_us(ICMPv6ParamProblem(code=0, ptr=7), udp_out()))
    (err,) = core.udp_errors
    assert (err.type, err.errno, err.pointer) == (PARAM_PROBLEM, errno.EPROTO, 7)


def test_unknown_error_type_still_reaches_the_transport(core: Core) -> None:
    # RFC 4443 §2.4(b): an unknown error goes to the upper layer of the invoking packet
    core.deliver(error_to_us(ICMPv6Unknown(type=100, code=0, msgbody=bytes(4) + udp_out()), b""))
    (err,) = core.udp_errors
    assert (err.type, err.errno) == (100, errno.EPROTO)


def test_bad_quotes_counted(core: Core) -> None:
    core.deliver(error_to_us(ICMPv6DestUnreach(code=4), udp_out()[:30]))              # < IPv6 header
    core.deliver(error_to_us(ICMPv6DestUnreach(code=4), b"\x45" + udp_out()[1:]))     # not IPv6
    cut = bytes(IPv6(src=US, dst=REMOTE) / IPv6ExtHdrDestOpt(options=[]) / UDP())[:44]
    core.deliver(error_to_us(ICMPv6DestUnreach(code=4), cut))                          # cut in the chain
    core.deliver(error_to_us(ICMPv6DestUnreach(code=4), bytes(IPv6(src=US, dst=REMOTE, nh=NH_SCTP) / (b"x" * 12))))
    assert core.udp_errors == []
    st = core.icmp.stats
    assert (st.in_quote_truncated, st.in_quote_bad_version, st.in_quote_bad_chain, st.in_err_no_transport) == \
        (1, 1, 1, 1)
    assert st.in_errors == 2 and st.in_dest_unreachs == 4


def test_local_error_reaches_the_transport(core: Core) -> None:
    # ND gave up on the next hop (RFC 4861 §7.3.3): address unreachable, EHOSTUNREACH, reporter 0
    core.host.ipv6.unreachable_from_link(PacketBuffer(udp_out()), 4.0)
    (err,) = core.udp_errors
    assert (err.type, err.code, err.errno, err.reporter, err.dst) == (DEST_UNREACH, 3, errno.EHOSTUNREACH, 0,
                                                                       ip(REMOTE))


def test_packet_too_big_lowers_path_mtu(core: Core) -> None:
    quote = udp_out(payload=bytes(1400))
    core.deliver(error_to_us(ICMPv6PacketTooBig(mtu=1400), quote), now=1.0)
    assert core.host.ipv6.path_mtu(core.host.eth0, ip(REMOTE), 1.0) == 1400
    (err,) = core.udp_errors
    assert (err.type, err.errno, err.fatal, err.mtu, err.dst) == (PACKET_TOO_BIG, errno.EMSGSIZE, False, 1400,
                                                                  ip(REMOTE))
    assert core.icmp.stats.in_pkt_too_bigs == 1


def test_packet_too_big_never_below_1280(core: Core) -> None:
    core.deliver(error_to_us(ICMPv6PacketTooBig(mtu=600), udp_out(payload=bytes(1400))), now=1.0)
    assert core.host.ipv6.path_mtu(core.host.eth0, ip(REMOTE), 1.0) == 1280      # RFC 8201 §4
    assert core.icmp.stats.in_pkt_too_big_below_min == 1


@pytest.mark.parametrize("quote_src, to", [(PEER, US), (US_ULA, US), ("2001:db8::99", "2001:db8::99")])
def test_packet_too_big_quoting_a_packet_not_ours_ignored(core: Core, quote_src: str, to: str) -> None:
    # RFC 5927: not from one of our (non-tentative) addresses, or not sent to the quoted source
    core.host.ours[1].add(ip(to))
    core.deliver(error_to_us(ICMPv6PacketTooBig(mtu=1300), udp_out(src=quote_src, payload=bytes(1400)), dst=to),
                 now=1.0)
    assert core.host.ipv6.path_mtu(core.host.eth0, ip(REMOTE), 1.0) == 1500
    assert core.udp_errors == [] and core.icmp.stats.in_quote_not_ours == 1


# --- errors sent: RFC 4443 §2.4(e) -------------------------------------------------------------------------
def test_error_sent_from_the_address_the_packet_came_to(core: Core) -> None:
    invoking = udp_in(dst=US_ULA, payload=bytes(2000))
    core.icmp.error(DEST_UNREACH, 4, 0, invoking[:MAX_QUOTE], core.host.eth0, 1.0)
    (out,) = core.sent()
    assert (out.src, out.dst) == (US_ULA, PEER) and checksum_ok(out)
    assert out[ICMPv6DestUnreach].code == 4 and bytes(out)[48:] == invoking[:MAX_QUOTE]
    assert len(bytes(out)) == 1280                   # §2.4(c): as much as fits the minimum MTU
    assert core.counters() == {"out_msgs": 1, "out_errors": 1, "out_dest_unreachs": 1}


def test_unknown_next_header_gets_parameter_problem_through_the_ip_layer(core: Core) -> None:
    data = bytes(IPv6(src=PEER, dst=US, nh=253) / (b"x" * 16))
    core.deliver(data)
    (out,) = core.sent()
    pp = out[ICMPv6ParamProblem]
    assert (out.src, out.dst, pp.code, pp.ptr) == (US, PEER, 1, 6) and bytes(out)[48:] == data


def test_error_to_a_link_local_source_leaves_by_its_interface(core: Core) -> None:
    core.icmp.error(DEST_UNREACH, 4, 0, udp_in(src=PEER_LL, dst=US_LL), core.host.eth1, 0.0)
    (data, nexthop, _), = core.host.link1.sent
    assert nexthop == ip(PEER_LL) and IPv6(data).dst == PEER_LL


@pytest.mark.parametrize("inner", [ICMPv6DestUnreach(code=1) / (b"q" * 48), ICMPv6PacketTooBig() / (b"q" * 48),
                                   ICMPv6ND_Redirect(tgt="fe80::1", dst="2001:db8::5")])
def test_never_about_an_error_or_a_redirect(core: Core, inner: Any) -> None:
    invoking = bytes(IPv6(src=PEER, dst=US) / IPv6ExtHdrDestOpt() / inner)
    core.icmp.error(PARAM_PROBLEM, 0, 40, invoking, core.host.eth0, 0.0)
    assert core.sent() == [] and core.icmp.stats.out_suppressed == 1


def test_about_an_echo_request_is_allowed(core: Core) -> None:
    core.icmp.error(PARAM_PROBLEM, 0, 4, bytes(IPv6(src=PEER, dst=US) / ICMPv6EchoRequest()), core.host.eth0, 0.0)
    assert len(core.sent()) == 1


def test_icmpv6_cut_before_its_type_counts_as_an_error(core: Core) -> None:
    invoking = bytes(IPv6(src=PEER, dst=US, nh=NH_ICMPV6, plen=8))
    core.icmp.error(PARAM_PROBLEM, 0, 4, invoking, core.host.eth0, 0.0)
    assert core.sent() == [] and core.icmp.stats.out_suppressed == 1


@pytest.mark.parametrize("type_, code, sent", [
    (DEST_UNREACH, 4, False), (TIME_EXCEEDED, 1, False), (PARAM_PROBLEM, 0, False), (PARAM_PROBLEM, 1, False),
    (PARAM_PROBLEM, 2, True), (PACKET_TOO_BIG, 0, True)])
def test_multicast_destination_only_ptb_and_option_problem(core: Core, type_: int, code: int, sent: bool) -> None:
    core.icmp.error(type_, code, 1280, udp_in(dst="ff02::1"), core.host.eth0, 0.0)
    out = core.sent()
    assert len(out) == int(sent) and core.icmp.stats.out_suppressed == int(not sent)
    if sent:
        assert out[0].src == US and not is_multicast(ip(out[0].src))     # never from the group


@pytest.mark.parametrize("src", ["::", "ff02::1", "ff0e::5"])
def test_never_to_an_unspecified_or_multicast_source(core: Core, src: str) -> None:
    core.icmp.error(PARAM_PROBLEM, 2, 40, udp_in(src=src), core.host.eth0, 0.0)
    assert core.sent() == [] and core.icmp.stats.out_suppressed == 1


def test_reassembly_timeout_sends_time_exceeded(core: Core) -> None:
    fragment_zero = udp_in(payload=bytes(100))
    core.host.ipv6.icmp_error(TIME_EXCEEDED, 1, 0, fragment_zero, None, 60.0)
    (out,) = core.sent()
    assert (out.dst, out[ICMPv6TimeExceeded].code) == (PEER, 1)


# --- rate limiting -------------------------------------------------------------------------------------
def test_global_token_bucket() -> None:
    c = Core(rate=1.0, burst=3, ratelimit=0.0)
    for i in range(5):
        c.icmp.error(DEST_UNREACH, 4, 0, udp_in(src=f"2001:db8::{i + 10:x}"), c.host.eth0, 0.0)
    assert len(c.sent()) == 3 and c.icmp.stats.out_rate_limited == 2
    c.icmp.error(DEST_UNREACH, 4, 0, udp_in(), c.host.eth0, 1.0)            # one token back
    assert len(c.sent()) == 1


def test_per_destination_limit() -> None:
    c = Core(ratelimit=1.0)                  # net.ipv6.icmp.ratelimit 1000 ms, burst 6
    for _ in range(8):
        c.icmp.error(DEST_UNREACH, 4, 0, udp_in(), c.host.eth0, 0.0)
    assert len(c.sent()) == 6 and c.icmp.stats.out_rate_limited_host == 2
    c.icmp.error(DEST_UNREACH, 4, 0, udp_in(src="2001:db8::55"), c.host.eth0, 0.0)   # another victim
    assert len(c.sent()) == 1
    c.icmp.error(DEST_UNREACH, 4, 0, udp_in(), c.host.eth0, 0.5)
    assert c.sent() == []
    c.icmp.error(DEST_UNREACH, 4, 0, udp_in(), c.host.eth0, 1.0)
    assert len(c.sent()) == 1


def test_packet_too_big_not_rate_limited() -> None:
    # Linux net.ipv6.icmp.ratemask default 0-1,3-127
    c = Core(rate=1.0, burst=1)
    for _ in range(10):
        c.icmp.error(PACKET_TOO_BIG, 0, 1280, udp_in(), c.host.eth0, 0.0)
    assert len(c.sent()) == 10 and c.icmp.stats.out_rate_limited == 0


def test_loopback_skips_the_per_destination_limit() -> None:
    c = Core(ratelimit=1.0)            # Linux icmpv6_xrlim_allow: no host limit on loopback
    for _ in range(10):
        c.icmp.error(DEST_UNREACH, 4, 0, udp_in(), c.host.lo, 0.0)
    assert len(c.sent()) == 10 and c.icmp.stats.out_rate_limited_host == 0


def test_global_bucket_shared_with_ipv4() -> None:
    # Linux icmp_global_allow serves ICMP and ICMPv6: the owner passes Icmp's bucket
    shared = TokenBucket(1.0, 2)
    assert shared.take(0.0)            # IPv4 spent one
    c = Core(limiter=shared, ratelimit=0.0)
    for _ in range(3):
        c.icmp.error(DEST_UNREACH, 4, 0, udp_in(), c.host.eth0, 0.0)
    assert len(c.sent()) == 1 and c.icmp.stats.out_rate_limited == 2


def test_random_cost_keeps_average_rate() -> None:
    # SADDNS (CVE-2020-25705): each error costs 0, 1 or 2 tokens
    c = Core(rate=1.0, burst=50, ratelimit=0.0, random_cost=True, rng=random.Random(3))
    for i in range(200):
        c.icmp.error(DEST_UNREACH, 4, 0, udp_in(src=f"2001:db8::{i + 10:x}"), c.host.eth0, 0.0)
    sent = len(c.sent())
    assert 30 < sent < 100 and sent + c.icmp.stats.out_rate_limited == 200


# --- ND and MLD ------------------------------------------------------------------------------------
def test_valid_ns_goes_to_the_nd_hook(core: Core) -> None:
    core.deliver(IPv6(src=PEER_LL, dst=ip_text(solicited_node(ip(US))), hlim=255) / ICMPv6ND_NS(tgt=US))
    ((msg, m),) = core.nd
    assert isinstance(msg, NeighborSolicitation) and msg.target == ip(US) and m.src == ip(PEER_LL)
    assert core.icmp.stats.in_neighbor_solicits == 1


def test_invalid_nd_counted_not_acted_on(core: Core) -> None:
    core.deliver(IPv6(src=PEER_LL, dst=US, hlim=64) / ICMPv6ND_NS(tgt=US))             # hop limit
    core.deliver(IPv6(src=PEER_LL, dst=US, hlim=255) / ICMPv6ND_NS(tgt="ff02::1"))     # multicast target
    core.deliver(IPv6(src=PEER_LL, dst=US, hlim=255) / ICMPv6Unknown(type=135, msgbody=bytes(10)))   # short
    assert core.nd == []
    nd = core.icmp.nd_stats
    assert (nd.in_bad_hop_limit, nd.in_target_multicast, nd.in_truncated) == (1, 1, 1)
    assert core.icmp.stats.in_neighbor_solicits == 3


def test_mld_query_goes_to_the_mld_hook(core: Core) -> None:
    query = IPv6(src=PEER_LL, dst="ff02::1", hlim=1) / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)]) \
        / ICMPv6MLQuery(mladdr="::")
    core.deliver(query)
    ((msg, m),) = core.mld
    assert isinstance(msg, MldV1Query) and m.dst == ALL_NODES and m.router_alert == 0
    assert core.icmp.stats.in_group_memb_queries == 1


def test_invalid_mld_counted_not_acted_on(core: Core) -> None:
    core.deliver(IPv6(src=PEER, dst="ff02::1", hlim=1) / ICMPv6MLQuery(mladdr="::"))    # not link-local
    core.deliver(IPv6(src=PEER_LL, dst="ff02::1", hlim=2) / ICMPv6MLQuery(mladdr="::"))  # hop limit
    assert core.mld == []
    assert (core.icmp.mld_stats.in_src_not_link_local, core.icmp.mld_stats.in_bad_hop_limit) == (1, 1)


def test_hooks_default_to_no_ops() -> None:
    c = Core()
    c.icmp.nd_input = Icmpv6(make_host().ipv6).nd_input
    c.deliver(IPv6(src=PEER_LL, dst=US, hlim=255) / ICMPv6ND_NS(tgt=US))
    assert c.sent() == [] and c.icmp.stats.in_neighbor_solicits == 1


def ip_text(addr: int) -> str:
    import ipaddress
    return str(ipaddress.IPv6Address(addr))


CORE_FOR_FUZZ = Core()
