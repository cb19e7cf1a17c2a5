"""ICMP (RFC 792) with the host rules of RFC 1122 §3.2.2: echo, error generation limits,
rate limiting, delivery of received errors to transports with Linux errno values."""
from __future__ import annotations

import errno
import socket
import struct

import dpkt
import pytest

from ndd.checksum import verify
from ndd.pktbuf import PacketBuffer
from protocols.addr import ip_to_int
from protocols.contracts import Protosw
from protocols.icmp import (
    DEST_UNREACH,
    ECHO_REPLY,
    ECHO_REQUEST,
    PARAM_PROBLEM,
    SOURCE_QUENCH,
    TIME_EXCEEDED,
    Icmp,
    IcmpError,
    IcmpRepr,
    TokenBucket,
    icmp_errno,
)
from protocols.ipv4 import FLAG_DF, FLAG_MF, IpMeta, Ipv4Repr

from .fakes import Host, ip_packet, make_icmp_host, rx

US, PEER = "10.0.0.2", "10.0.0.1"
UDP, ICMP = 17, 1


@pytest.fixture
def net() -> tuple[Host, Icmp]:
    return make_icmp_host()


def deliver(host: Host, data: bytes, now: float = 0.0) -> None:
    host.ipv4.input(host.eth0, rx(data), now)


def sent_icmp(host: Host) -> list[tuple[Ipv4Repr, IcmpRepr]]:
    out = []
    for data, _, _ in host.link.sent:
        ip = Ipv4Repr.parse(data)
        assert isinstance(ip, Ipv4Repr) and ip.proto == ICMP
        msg = IcmpRepr.parse(data[ip.hdr_len:ip.total_len])
        assert isinstance(msg, IcmpRepr), msg
        out.append((ip, msg))
    return out


def meta_of(datagram: bytes, *, bcast: bool = False, ifp=None) -> IpMeta:
    ip = Ipv4Repr.parse(datagram, verify_checksum=False)
    assert isinstance(ip, Ipv4Repr)
    return IpMeta(ip.src, ip.dst, ip.proto, ip.ttl, ip.tos, ip.hdr_len, ifp, 0, bcast)


def error_from(reporter: str, type_: int, code: int, original: bytes, rest: int = 0) -> bytes:
    """An ICMP error as a router or the peer would send it to us."""
    return ip_packet(reporter, US, ICMP, IcmpRepr(type_, code, rest, original).emit())


# --- echo -------------------------------------------------------------------
def test_echo_request_answered(net: tuple[Host, Icmp]) -> None:
    host, icmp = net
    req = IcmpRepr(ECHO_REQUEST, 0, (0x4242 << 16) | 9, b"abcdefgh" * 7).emit()
    deliver(host, ip_packet(PEER, US, ICMP, req, tos=0x10))
    ((ip, msg),) = sent_icmp(host)
    assert (ip.src, ip.dst, ip.tos) == (ip_to_int(US), ip_to_int(PEER), 0x10)
    assert (msg.type, msg.code, msg.rest, msg.data) == (ECHO_REPLY, 0, (0x4242 << 16) | 9, b"abcdefgh" * 7)
    d = dpkt.ip.IP(host.link.sent[0][0])
    assert d.data.type == 0 and d.data.data.id == 0x4242 and d.data.data.seq == 9
    assert icmp.stats.in_echos == 1 and icmp.stats.out_echo_reps == 1


def test_large_echo_reply_is_fragmented(net: tuple[Host, Icmp]) -> None:
    host, _ = net
    req = IcmpRepr(ECHO_REQUEST, 0, 1, bytes(range(256)) * 12).emit()
    frags = []
    # the request arrives fragmented too
    dgram = ip_packet(PEER, US, ICMP, req, ident=3)
    payload = dgram[20:]
    for off in range(0, len(payload), 1480):
        chunk = payload[off:off + 1480]
        more = FLAG_MF if off + 1480 < len(payload) else 0
        frags.append(ip_packet(PEER, US, ICMP, chunk, ident=3, ff=more | off // 8))
    for f in frags:
        deliver(host, f)
    assert len(host.link.sent) == 3
    body = b"".join(data[20:] for data, _, _ in host.link.sent)
    assert verify(body) and body[0] == ECHO_REPLY and body[8:] == bytes(range(256)) * 12


def test_broadcast_echo_ignored(net: tuple[Host, Icmp]) -> None:
    host, icmp = net
    req = IcmpRepr(ECHO_REQUEST, 0, 1, b"x").emit()
    deliver(host, ip_packet(PEER, "10.0.0.255", ICMP, req))
    deliver(host, ip_packet(PEER, "224.0.0.1", ICMP, req))
    assert host.link.sent == [] and icmp.stats.in_ignored == 2


def test_malformed_icmp_counted(net: tuple[Host, Icmp]) -> None:
    host, icmp = net
    bad = bytearray(IcmpRepr(ECHO_REQUEST, 0, 1, b"abc").emit())
    bad[4] ^= 1
    deliver(host, ip_packet(PEER, US, ICMP, bytes(bad)))
    deliver(host, ip_packet(PEER, US, ICMP, b"\x08\x00\x00"))
    assert icmp.stats.in_csum_errors == 1 and icmp.stats.in_truncated == 1 and icmp.stats.in_errors == 2
    assert host.link.sent == []


def test_echo_reply_wakes_waiter(net: tuple[Host, Icmp]) -> None:
    host, icmp = net
    got: list[tuple[int, int, bytes]] = []
    assert icmp.send_echo(ip_to_int(PEER), 77, 5, b"ping!", 0.0, lambda e, r, d: got.append((e, r, d))) == 0
    ((ip, req),) = sent_icmp(host)
    assert req.type == ECHO_REQUEST and req.rest == (77 << 16) | 5 and ip.dst == ip_to_int(PEER)
    deliver(host, ip_packet(PEER, US, ICMP, IcmpRepr(ECHO_REPLY, 0, (77 << 16) | 6, b"ping!").emit()))
    assert got == [] and icmp.stats.in_ignored == 1            # other sequence number
    deliver(host, ip_packet(PEER, US, ICMP, IcmpRepr(ECHO_REPLY, 0, (77 << 16) | 5, b"ping!").emit()))
    assert got == [(0, ip_to_int(PEER), b"ping!")] and icmp.echo_waiters == {}


def test_cancelled_echo_ignores_its_late_reply(net: tuple[Host, Icmp]) -> None:
    # the Stack's ping gives up (timeout): cancel_echo forgets the waiter, so the table does
    # not grow and a reply arriving afterwards is counted as ignored, never delivered
    host, icmp = net
    got: list[tuple[int, int, bytes]] = []
    assert icmp.send_echo(ip_to_int(PEER), 9, 3, b"late", 0.0, lambda e, r, d: got.append((e, r, d))) == 0
    icmp.cancel_echo(9, 3)
    assert icmp.echo_waiters == {}
    icmp.cancel_echo(9, 3)                                     # again, or never sent: nothing to do
    deliver(host, ip_packet(PEER, US, ICMP, IcmpRepr(ECHO_REPLY, 0, (9 << 16) | 3, b"late").emit()))
    assert got == [] and icmp.stats.in_echo_reps == 1 and icmp.stats.in_ignored == 1


def test_echo_send_failure_removes_waiter(net: tuple[Host, Icmp]) -> None:
    _, icmp = net
    assert icmp.send_echo(ip_to_int("8.8.8.8"), 1, 1, b"", 0.0, lambda e, r, d: None) == errno.ENETUNREACH
    assert icmp.echo_waiters == {}


def test_error_about_our_echo_wakes_waiter(net: tuple[Host, Icmp]) -> None:
    host, icmp = net
    got: list[tuple[int, int, bytes]] = []
    icmp.send_echo(ip_to_int("10.0.0.77"), 3, 4, b"data", 0.0, lambda e, r, d: got.append((e, r, d)))
    request = host.link.sent[0][0]
    deliver(host, error_from(PEER, DEST_UNREACH, 1, request[:28]))
    assert got == [(errno.EHOSTUNREACH, ip_to_int(PEER), b"")]


# --- errors we generate (RFC 1122 §3.2.2) --------------------------------------------
def test_protocol_unreachable_quotes_datagram(net: tuple[Host, Icmp]) -> None:
    host, icmp = net
    dgram = ip_packet(PEER, US, 99, b"0123456789")
    deliver(host, dgram)
    ((ip, msg),) = sent_icmp(host)
    assert (msg.type, msg.code) == (DEST_UNREACH, 2)
    assert msg.data == dgram and ip.dst == ip_to_int(PEER) and ip.src == ip_to_int(US)
    assert icmp.stats.out_dest_unreachs == 1


def test_quote_is_bounded_to_576(net: tuple[Host, Icmp]) -> None:
    host, _ = net
    deliver(host, ip_packet(PEER, US, 99, bytes(1400)))
    ((ip, msg),) = sent_icmp(host)
    assert ip.total_len <= 576 and len(msg.data) == 576 - 28


@pytest.mark.parametrize("inner_type", [DEST_UNREACH, TIME_EXCEEDED, PARAM_PROBLEM, SOURCE_QUENCH, 5, 42])
def test_no_error_about_icmp_error(net: tuple[Host, Icmp], inner_type: int) -> None:
    host, icmp = net
    dgram = ip_packet(PEER, US, ICMP, IcmpRepr(inner_type, 0, 0, bytes(28)).emit())
    icmp.send_error(DEST_UNREACH, 3, PacketBuffer(dgram), meta_of(dgram, ifp=host.eth0), 0.0)
    assert host.link.sent == [] and icmp.stats.out_suppressed == 1


def test_error_about_echo_is_allowed(net: tuple[Host, Icmp]) -> None:
    host, icmp = net
    dgram = ip_packet(PEER, US, ICMP, IcmpRepr(ECHO_REQUEST, 0, 0, b"").emit())
    icmp.send_error(PARAM_PROBLEM, 0, PacketBuffer(dgram), meta_of(dgram, ifp=host.eth0), 0.0, 20 << 24)
    ((_, msg),) = sent_icmp(host)
    assert msg.type == PARAM_PROBLEM and msg.rest >> 24 == 20


def test_no_error_for_broadcast_destination(net: tuple[Host, Icmp]) -> None:
    host, icmp = net
    deliver(host, ip_packet(PEER, "10.0.0.255", 99, b"x"))
    deliver(host, ip_packet(PEER, "255.255.255.255", 99, b"x"))
    dgram = ip_packet(PEER, US, 99, b"x")
    pkt = PacketBuffer(dgram)
    pkt.ll_bcast = True                       # link-layer broadcast to our unicast address
    icmp.send_error(DEST_UNREACH, 2, pkt, meta_of(dgram, ifp=host.eth0), 0.0)
    assert host.link.sent == [] and icmp.stats.out_suppressed == 3


def test_no_error_for_non_initial_fragment(net: tuple[Host, Icmp]) -> None:
    host, icmp = net
    dgram = ip_packet(PEER, US, 99, bytes(16), ff=FLAG_MF | 2)
    icmp.send_error(DEST_UNREACH, 2, PacketBuffer(dgram), meta_of(dgram, ifp=host.eth0), 0.0)
    assert host.link.sent == [] and icmp.stats.out_suppressed == 1
    first = ip_packet(PEER, US, 99, bytes(16), ff=FLAG_MF)
    icmp.send_error(DEST_UNREACH, 2, PacketBuffer(first), meta_of(first, ifp=host.eth0), 0.0)
    assert len(host.link.sent) == 1


@pytest.mark.parametrize("src", ["0.0.0.0", "127.0.0.1", "224.0.0.5", "255.255.255.255", "0.0.0.7"])
def test_no_error_to_martian_source(net: tuple[Host, Icmp], src: str) -> None:
    host, icmp = net
    dgram = ip_packet(src, US, 99, b"x")
    icmp.send_error(DEST_UNREACH, 2, PacketBuffer(dgram), meta_of(dgram, ifp=host.eth0), 0.0)
    assert host.link.sent == [] and icmp.stats.out_suppressed == 1


def test_rate_limit_burst_then_refill() -> None:
    host, icmp = make_icmp_host(rate=2.0, burst=3)
    dgram = ip_packet(PEER, US, 99, b"x")

    def storm(n: int, now: float) -> None:
        for _ in range(n):
            deliver(host, dgram, now)

    storm(5, 0.0)
    assert len(host.link.sent) == 3 and icmp.stats.out_rate_limited == 2
    storm(2, 0.25)                    # half a token: still nothing
    assert len(host.link.sent) == 3
    storm(2, 0.5)                     # one token back
    assert len(host.link.sent) == 4
    storm(10, 100.0)                  # refill is capped at the burst
    assert len(host.link.sent) == 7 and icmp.stats.out_rate_limited == 2 + 2 + 1 + 7


def test_rate_limit_cost_is_random() -> None:
    """SADDNS (CVE-2020-25705), Linux >= 5.10: each error costs 0, 1 or 2 tokens, so how many
    a prober gets out of a burst varies -- it cannot count what others spent -- while the
    average rate stays icmp_msgs_per_sec."""
    dgram = ip_packet(PEER, US, 99, b"x")
    counts = []
    for seed in range(10):
        host, icmp = make_icmp_host(burst=50, random_cost=True, seed=seed, ratelimit=0)
        for _ in range(300):
            deliver(host, dgram, 0.0)
        counts.append(len(host.link.sent))
        assert icmp.stats.out_rate_limited == 300 - counts[-1]
    assert all(30 <= n <= 80 for n in counts) and len(set(counts)) > 3
    # over a long flood the average is the configured rate
    host, icmp = make_icmp_host(rate=100.0, burst=5, random_cost=True, ratelimit=0)
    for i in range(20_000):
        deliver(host, dgram, i * 0.001)                 # 1000/s for 20 s against 100/s
    assert 1600 <= len(host.link.sent) <= 2400


def test_per_destination_rate_limit() -> None:
    """Linux net.ipv4.icmp_ratelimit (1000 ms, burst 6): spoofed datagrams "from" one victim
    draw at most 6 errors, then one a second; another destination has its own allowance."""
    host, icmp = make_icmp_host()
    victim = ip_packet(PEER, US, 99, b"x")
    other = ip_packet("10.0.0.3", US, 99, b"x")
    for _ in range(100):
        deliver(host, victim, 0.0)
    assert len(host.link.sent) == 6 and icmp.stats.out_rate_limited_host == 94
    deliver(host, other, 0.0)
    assert len(host.link.sent) == 7
    for i in range(100):
        deliver(host, victim, 1.0 + i * 0.01)           # one more second: one more error
    assert len(host.link.sent) == 8
    assert all(ip.dst == ip_to_int(PEER) for ip, _ in sent_icmp(host)[:6])


def test_per_destination_table_is_bounded() -> None:
    from protocols.icmp import PerDestinationLimiter
    lim = PerDestinationLimiter(1.0, burst=1, max_entries=3)
    assert all(lim.take(d, 0.0) for d in range(10))
    assert len(lim) == 3 and lim.evicted == 7
    assert not lim.take(9, 0.5) and lim.take(9, 1.0)
    assert PerDestinationLimiter(0.0).take(1, 0.0)      # icmp_ratelimit=0: off


def test_per_destination_evictions_are_counted_in_stats() -> None:
    """The full per-destination table forgets its oldest peer: Stack.stats() shows it."""
    host, icmp = make_icmp_host()
    icmp.host_limiter.max_entries = 2
    for n in range(5):
        deliver(host, ip_packet(f"10.0.0.{10 + n}", US, 99, b"x"), 0.0)
    assert len(icmp.host_limiter) == 2
    assert icmp.stats.out_rate_hosts_evicted == 3
    assert icmp.stats.as_dict()["out_rate_hosts_evicted"] == 3


def test_token_bucket() -> None:
    b = TokenBucket(rate=10.0, burst=2)
    assert [b.take(0.0) for _ in range(3)] == [True, True, False]
    assert b.take(0.05) is False
    assert b.take(0.1) is True
    assert [b.take(5.0) for _ in range(3)] == [True, True, False]


def test_reassembly_timeout_sends_time_exceeded(net: tuple[Host, Icmp]) -> None:
    # RFC 792: time exceeded code 1, only when fragment zero had arrived
    host, icmp = net
    first = ip_packet(PEER, US, UDP, b"UDPHDR!!" + bytes(8), ident=5, ff=FLAG_MF)
    deliver(host, first, 10.0)
    deliver(host, ip_packet(PEER, US, UDP, bytes(8), ident=6, ff=FLAG_MF | 2), 10.0)  # no fragment 0
    assert host.ipv4.reasm.poll_at() == 40.0
    host.ipv4.reasm.poll(39.0)
    assert host.link.sent == []
    host.ipv4.reasm.poll(40.0)
    ((ip, msg),) = sent_icmp(host)
    assert (msg.type, msg.code) == (TIME_EXCEEDED, 1) and ip.dst == ip_to_int(PEER) and ip.src == ip_to_int(US)
    assert msg.data == first[:28]
    assert icmp.stats.out_time_excds == 1 and host.ipv4.reasm.stats.timeouts == 2


def test_reassembly_timeout_of_broadcast_is_silent(net: tuple[Host, Icmp]) -> None:
    # RFC 1122 §3.2.2: no ICMP error about a datagram sent to a broadcast/multicast address
    host, icmp = net
    deliver(host, ip_packet(PEER, "10.0.0.255", UDP, bytes(16), ident=5, ff=FLAG_MF), 0.0)
    deliver(host, ip_packet(PEER, "224.0.0.1", UDP, bytes(16), ident=6, ff=FLAG_MF), 0.0)
    host.ipv4.reasm.poll(30.0)
    assert host.ipv4.reasm.stats.timeouts == 2
    assert host.link.sent == []


# --- errors we receive --------------------------------------------------------------
class CtlRecorder:
    def __init__(self) -> None:
        self.errors: list[IcmpError] = []

    def ctlinput(self, err: IcmpError, now: float) -> None:
        self.errors.append(err)


@pytest.fixture
def udp_ctl(net: tuple[Host, Icmp]) -> CtlRecorder:
    rec = CtlRecorder()
    net[0].protosw.add(socket.AF_INET, Protosw("udp", socket.SOCK_DGRAM, UDP, input=lambda *a: None,
                                               ctlinput=rec.ctlinput))
    return rec


OUR_UDP = ip_packet(US, "10.9.9.9", UDP, struct.pack("!HHHH", 40000, 53, 20, 0) + b"query...")


@pytest.mark.parametrize("type_,code,expected", [
    (DEST_UNREACH, 3, errno.ECONNREFUSED),   # port unreachable
    (DEST_UNREACH, 1, errno.EHOSTUNREACH),   # host unreachable
    (DEST_UNREACH, 0, errno.ENETUNREACH),
    (DEST_UNREACH, 2, errno.ENOPROTOOPT),
    (DEST_UNREACH, 13, errno.EHOSTUNREACH),  # administratively prohibited
    (TIME_EXCEEDED, 0, errno.EHOSTUNREACH),
    (PARAM_PROBLEM, 0, errno.EPROTO),
])
def test_error_delivered_to_ctlinput(net: tuple[Host, Icmp], udp_ctl: CtlRecorder, type_: int, code: int,
                                     expected: int) -> None:
    host, _ = net
    deliver(host, error_from(PEER, type_, code, OUR_UDP[:28]))
    (err,) = udp_ctl.errors
    assert (err.type, err.code, err.errno) == (type_, code, expected)
    assert (err.reporter, err.src, err.dst, err.proto) == (ip_to_int(PEER), ip_to_int(US), ip_to_int("10.9.9.9"), UDP)
    assert err.payload == OUR_UDP[20:28] and err.mtu == 0


OUR_UDP_DF = ip_packet(US, "10.9.9.9", UDP, struct.pack("!HHHH", 40000, 53, 20, 0) + b"query...", ff=FLAG_DF)


def test_frag_needed_carries_mtu(net: tuple[Host, Icmp], udp_ctl: CtlRecorder) -> None:
    # RFC 1191 §4: next-hop MTU in the low 16 bits of the second word
    host, icmp = net
    deliver(host, error_from(PEER, DEST_UNREACH, 4, OUR_UDP_DF, rest=1400))
    (err,) = udp_ctl.errors
    assert err.errno == errno.EMSGSIZE and err.mtu == 1400
    assert err.payload == OUR_UDP_DF[20:]
    assert icmp.stats.in_frag_needed == 1 and icmp.stats.in_frag_needed_no_df == 0


def test_frag_needed_about_a_datagram_without_df_is_dropped(net: tuple[Host, Icmp], udp_ctl: CtlRecorder) -> None:
    """RFC 1191 §3: a router sends "fragmentation needed and DF set" only for a DF datagram;
    one quoting a datagram without DF is forged -- dropped before any transport, counted."""
    host, icmp = net
    deliver(host, error_from(PEER, DEST_UNREACH, 4, OUR_UDP, rest=68))
    assert udp_ctl.errors == []
    assert icmp.stats.in_frag_needed == 1 and icmp.stats.in_frag_needed_no_df == 1
    assert len(host.ipv4.pmtu) == 0


def test_ignored_errors(net: tuple[Host, Icmp], udp_ctl: CtlRecorder) -> None:
    host, icmp = net
    deliver(host, error_from(PEER, SOURCE_QUENCH, 0, OUR_UDP[:28]))           # RFC 6633
    deliver(host, error_from(PEER, DEST_UNREACH, 3, OUR_UDP[:27]))            # quote too short
    deliver(host, error_from(PEER, DEST_UNREACH, 3, ip_packet(US, PEER, 132, bytes(8))))  # no such protocol
    assert udp_ctl.errors == []
    assert icmp.stats.in_ignored == 2 and icmp.stats.in_errors == 1


def test_no_error_in_reply_to_error(net: tuple[Host, Icmp], udp_ctl: CtlRecorder) -> None:
    host, _ = net
    deliver(host, error_from(PEER, DEST_UNREACH, 3, OUR_UDP[:28]))
    assert host.link.sent == []


def test_local_error_reaches_transport(net: tuple[Host, Icmp], udp_ctl: CtlRecorder) -> None:
    # an ARP failure: reported like a host unreachable from nobody
    host, _ = net
    host.ipv4.unreachable_from_link(PacketBuffer(OUR_UDP), 0.0)
    (err,) = udp_ctl.errors
    assert err.errno == errno.EHOSTUNREACH and err.reporter == 0 and err.dst == ip_to_int("10.9.9.9")


def test_icmp_errno_table() -> None:
    assert icmp_errno(DEST_UNREACH, 3) == errno.ECONNREFUSED
    assert icmp_errno(DEST_UNREACH, 4) == errno.EMSGSIZE
    assert icmp_errno(DEST_UNREACH, 99) == errno.EHOSTUNREACH
    assert icmp_errno(ECHO_REPLY, 0) == 0


def test_broadcast_echo_answered_from_unicast_when_enabled(net: tuple[Host, Icmp]) -> None:
    # RFC 1122 §3.2.2.6: a reply to a broadcast request comes from a specific (unicast) address
    host, icmp = net
    icmp.ignore_broadcast_echo = False
    deliver(host, ip_packet(PEER, "10.0.0.255", ICMP, IcmpRepr(ECHO_REQUEST, 0, 1, b"x").emit()))
    ((ip, msg),) = sent_icmp(host)
    assert msg.type == ECHO_REPLY and ip.src == ip_to_int(US) and ip.dst == ip_to_int(PEER)


def test_echo_waiters_are_bounded_and_the_oldest_gives_way() -> None:
    from protocols.echo import EchoWaiters
    waiters = EchoWaiters(limit=2)
    got: list[tuple[int, int, bytes]] = []
    assert not waiters.wait(1, 1, lambda *a: got.append(a)) and not waiters.wait(1, 2, lambda *a: got.append(a))
    assert waiters.wait(1, 3, lambda *a: got.append(a))          # (1, 1) gave way
    assert not waiters.answer(1, 1, 7, b"late") and waiters.answer(1, 3, 7, b"pong")
    waiters.fail(bytes((8, 0, 0, 0, 0, 1, 0, 2)), 8, 113, 9)      # an error quoting echo request (1, 2)
    assert got == [(0, 7, b"pong"), (113, 9, b"")] and waiters == {}
