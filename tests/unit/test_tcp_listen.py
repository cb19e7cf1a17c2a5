"""The TCP protocol object (protocols/tcp/tcp.py) over a real Ipv4 core with a recording
link: the LISTEN state and its queues (RFC 9293 §3.10.7.2), SYN cookies (listen.py),
resets for segments no connection owns (RFC 9293 §3.10.7.1), ISNs (RFC 6528), the
challenge-ACK budget (RFC 5961 §7), checksums, and ICMP errors (RFC 5927, RFC 1191).
No trio, no devices; the clock is a plain float."""
from __future__ import annotations

import errno
import random
import struct
from typing import Any

import pytest

from ndd.checksum import checksum, ones_sum, pseudo_header_sum
from ndd.ndd import DeviceCaps
from ndd.pktbuf import PacketBuffer
from protocols.addr import ip_to_int
from protocols.icmp import IcmpError
from protocols.ipv4 import IPPROTO_TCP, IpMeta, Ipv4Repr
from protocols.tcp import seq as sq
from protocols.tcp.conn import Connection, State, TcpConfig
from protocols.tcp.listen import COOKIE_PERIOD, MSS_TABLE, SynCookies
from protocols.tcp.tcp import Tcp
from protocols.tcp.wire import ACK, FIN, PSH, RST, SYN, TcpRepr, wscale_for

from .fakes import Host, make_host

US, PEER = ip_to_int("10.0.0.2"), ip_to_int("10.0.0.1")
PEER_PORT = 5555
T0 = 1000.0


class Net:
    """A Tcp on a host whose eth0 (10.0.0.2/24) records what IPv4 sends."""

    def __init__(self, mtu: int = 1500, seed: int = 7, **cfg: Any) -> None:
        self.host: Host = make_host(mtu=mtu)
        self.host.eth0.ndd.caps = DeviceCaps(mtu=mtu)   # type: ignore[attr-defined]
        self.now = T0
        self.tcp = Tcp(self.host.ipv4, random.Random(seed), lambda: self.now, TcpConfig(**cfg))

    def listener(self, port: int = 80, backlog: int = 5) -> Connection:
        lst = self.tcp.attach()
        assert self.tcp.bind(lst, 0, port) == 0
        assert self.tcp.listen(lst, backlog) == 0
        return lst

    def rx(self, flags: int, seq: int, ack: int = 0, payload: bytes = b"", *, sport: int = PEER_PORT,
           dport: int = 80, win: int = 0xFFFF, src: int = PEER, dst: int = US, at: float | None = None,
           csum_ok: bool = True, bcast: bool = False, ll_bcast: bool = False,
           **opts: Any) -> list[tuple[TcpRepr, bytes]]:
        """Deliver one segment (checksummed like a real one); return the segments sent back."""
        if at is not None:
            self.now = at
        seg = TcpRepr(sport, dport, seq, ack, flags, win, **opts)
        o = seg.options_bytes()
        data = bytearray(20 + len(o)) + payload
        seg.emit(data, o)
        csum = checksum(data, pseudo_header_sum(src, dst, IPPROTO_TCP, len(data)))
        struct.pack_into("!H", data, 16, csum if csum_ok else csum ^ 0x5555)
        meta = IpMeta(src, dst, IPPROTO_TCP, 64, 0, 20, self.host.eth0, 0, bcast)
        pkt = PacketBuffer(bytes(data))
        pkt.ll_bcast = ll_bcast                   # the demuxer's mark: a frame to a group MAC
        self.tcp.input(pkt, meta, self.now)
        return self.take()

    def take(self) -> list[tuple[TcpRepr, bytes]]:
        out = []
        for data, _, _ in self.host.link.sent:
            ip = Ipv4Repr.parse(data)
            assert isinstance(ip, Ipv4Repr) and ip.proto == IPPROTO_TCP
            tcp = data[ip.hdr_len:ip.total_len]
            # RFC 9293 §3.1: the checksum covers the pseudo-header, header and text
            assert ones_sum(tcp, pseudo_header_sum(ip.src, ip.dst, IPPROTO_TCP, len(tcp))) == 0xFFFF
            seg = TcpRepr.parse(tcp)
            assert isinstance(seg, TcpRepr)
            out.append((seg, bytes(tcp[seg.hdr_len:])))
        self.host.link.sent.clear()
        return out

    def poll(self, at: float) -> list[tuple[TcpRepr, bytes]]:
        self.now = at
        self.tcp.poll(at)
        return self.take()

    def child(self) -> Connection:
        (c,) = [c for c in self.tcp.conns.values() if c.fport == PEER_PORT]
        return c


ISN_PEER = 0x12345678


# --- passive open (RFC 9293 §3.5 Figure 6, §3.10.7.2) ---------------------------------------------
def test_passive_open() -> None:
    """LISTEN + SYN -> a child in SYN-RECEIVED answering <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>,
    echoing the options the SYN offered; the ACK of the SYN-ACK -> ESTABLISHED, moved from
    the SYN queue to the accept queue."""
    net = Net()
    lst = net.listener()
    ((synack, _),) = net.rx(SYN, ISN_PEER, mss=1400, wscale=2, sack_perm=True, ts=(777, 0))
    child = net.child()
    assert child.state == State.SYN_RECEIVED and lst.syn_count == 1 and not lst.accept_queue
    assert synack.flags == SYN | ACK and synack.ack == ISN_PEER + 1 and synack.seq == child.iss
    assert (synack.src_port, synack.dst_port) == (80, PEER_PORT)
    assert synack.mss == 1460 and synack.sack_perm and synack.wscale == 7
    assert synack.ts is not None and synack.ts[1] == 777            # RFC 7323 §3.2: TSecr = TSval
    assert synack.window == 45 * 1448         # RFC 7323 §2.2: not scaled; whole MSSes less TS (Linux)
    out = net.rx(ACK, ISN_PEER + 1, child.iss + 1, win=1000, ts=(778, synack.ts[0]), at=T0 + 0.02)
    assert out == []
    assert child.state == State.ESTABLISHED and list(lst.accept_queue or ()) == [child]
    assert lst.syn_count == 0 and net.tcp.stats.passive_opens == 1
    assert child.snd_wnd == 4000                                   # the third segment is scaled
    assert child.mss == 1400 - 12 and child.sack_ok and child.ts_ok
    assert child.rtt.samples == 1


def test_passive_open_without_options() -> None:
    """A bare SYN: the SYN-ACK carries only our MSS (RFC 7323 §2.2, RFC 2018 §2: never offer
    in a SYN-ACK what the SYN did not); MSS defaults to 536 (RFC 9293 §3.7.1)."""
    net = Net()
    net.listener()
    ((synack, _),) = net.rx(SYN, ISN_PEER)
    assert synack.mss == 1460 and synack.wscale is None and not synack.sack_perm and synack.ts is None
    child = net.child()
    assert child.mss == 536 and child.rcv_wscale == 0 and not child.sack_ok and not child.ts_ok


def test_syn_ack_mss_from_route_mtu() -> None:
    """RFC 9293 §3.7.1: MSS = MTU of the route's interface - 40."""
    net = Net(mtu=9000)
    net.listener()
    ((synack, _),) = net.rx(SYN, ISN_PEER, mss=65000)
    assert synack.mss == 8960 and net.child().mss == 8960


def test_data_on_the_handshake_ack() -> None:
    """RFC 9293 §3.10.7.4: the ACK completing the handshake may carry data (and a FIN)."""
    net = Net()
    lst = net.listener()
    ((synack, _),) = net.rx(SYN, ISN_PEER, mss=1460)
    out = net.rx(ACK | PSH | FIN, ISN_PEER + 1, synack.seq + 1, payload=b"GET /")
    child = net.child()
    assert child.state == State.CLOSE_WAIT and lst.accept_queue and child.receive(10, False, net.now) == b"GET /"
    # the ACK of data and FIN waits the delayed-ACK timeout (Linux tcp_fin's ping-pong mode)
    assert not any(seg.ack == ISN_PEER + 1 + 5 + 1 for seg, _ in out) and child.delack_at is not None


def test_duplicate_syn_resends_syn_ack() -> None:
    """RFC 9293 §3.10.7.4 / Figure 6: a retransmitted SYN (our SYN-ACK was lost) gets the same
    SYN-ACK again; no second child."""
    net = Net()
    lst = net.listener()
    ((first, _),) = net.rx(SYN, ISN_PEER, mss=1460)
    ((again, _),) = net.rx(SYN, ISN_PEER, mss=1460, at=T0 + 1)
    assert (again.flags, again.seq, again.ack) == (SYN | ACK, first.seq, first.ack)
    assert lst.syn_count == 1 and len(net.tcp.conns) == 1


def test_syn_received_bad_ack_gets_reset() -> None:
    """RFC 9293 §3.10.7.4 SYN-RECEIVED: an unacceptable ACK -> <SEQ=SEG.ACK><CTL=RST>."""
    net = Net()
    net.listener()
    ((synack, _),) = net.rx(SYN, ISN_PEER)
    ((rst, _),) = net.rx(ACK, ISN_PEER + 1, synack.seq + 50)
    assert (rst.flags, rst.seq) == (RST, synack.seq + 50)
    assert net.child().state == State.SYN_RECEIVED


def test_syn_received_rst_returns_to_listen() -> None:
    """RFC 9293 §3.10.7.4: an RST in SYN-RECEIVED from a passive OPEN -> back to LISTEN
    (the child just disappears)."""
    net = Net()
    lst = net.listener()
    net.rx(SYN, ISN_PEER)
    assert net.rx(RST, ISN_PEER + 1) == []
    assert net.tcp.conns == {} and lst.syn_count == 0 and lst.state == State.LISTEN


def test_syn_ack_retries_then_gives_up() -> None:
    """Linux tcp_synack_retries: the SYN-ACK is retransmitted with backoff, then the half-open
    child is dropped silently."""
    net = Net(synack_retries=2)
    lst = net.listener()
    net.rx(SYN, ISN_PEER)
    times = []
    while net.tcp.conns:
        at = net.tcp.poll_at()
        assert at is not None
        for seg, _ in net.poll(at):
            assert seg.flags == SYN | ACK
            times.append(at - T0)
    assert times == pytest.approx([1.0, 3.0]) and net.now == pytest.approx(T0 + 7.0)
    assert lst.syn_count == 0


def test_accept_queue_full_drops_syns() -> None:
    """Linux: with the accept queue full, new SYNs are dropped (the peer retries)."""
    net = Net(syncookies=False)
    lst = net.listener(backlog=1)
    ((synack, _),) = net.rx(SYN, ISN_PEER)
    net.rx(ACK, ISN_PEER + 1, synack.seq + 1)
    assert len(lst.accept_queue or ()) == 1
    assert net.rx(SYN, 999, sport=6000) == []
    assert net.tcp.stats.listen_overflows == 1


def test_syn_queue_full_without_cookies_drops() -> None:
    net = Net(syncookies=False)
    lst = net.listener(backlog=1)
    net.rx(SYN, ISN_PEER)
    assert net.rx(SYN, 999, sport=6000) == []
    assert lst.syn_count == 1 and net.tcp.stats.listen_drops == 1


# --- SYN cookies -------------------------------------------------------------------------------------------
def test_cookie_round_trip_when_syn_queue_is_full() -> None:
    """When the SYN queue overflows, the SYN-ACK carries a cookie and no state is kept; a valid
    cookie in the ACK creates the connection directly (MSS only: no window scaling, SACK or
    timestamps -- see listen.py)."""
    net = Net()
    lst = net.listener(backlog=1)
    net.rx(SYN, ISN_PEER)                                          # fills the SYN queue
    out = net.rx(SYN, 4242, sport=6000, mss=1400, wscale=7, sack_perm=True, ts=(1, 0))
    ((cookie, _),) = out
    assert cookie.flags == SYN | ACK and cookie.ack == 4243 and cookie.mss == 1360
    assert cookie.wscale is None and not cookie.sack_perm and cookie.ts is None
    assert net.tcp.stats.syncookies_sent == 1 and len(net.tcp.conns) == 1   # nothing kept
    out = net.rx(ACK | PSH, 4243, cookie.seq + 1, payload=b"hello", sport=6000, at=T0 + 5)
    (child,) = [c for c in net.tcp.conns.values() if c.fport == 6000]
    assert child.state == State.ESTABLISHED and child.cookie and child in (lst.accept_queue or ())
    assert child.mss == 1360 and child.snd_wscale == 0 and not child.sack_ok and not child.ts_ok
    assert child.receive(10, False, net.now) == b"hello"
    assert out and out[-1][0].ack == 4243 + 5
    assert net.tcp.stats.syncookies_recv == 1 and lst.syn_count == 1       # the first SYN still half-open


def test_bad_cookie_gets_reset() -> None:
    """An ACK to a listener that matches no cookie -> RST <SEQ=SEG.ACK> (RFC 9293 §3.10.7.2)."""
    net = Net()
    net.listener(backlog=1)
    net.rx(SYN, ISN_PEER)
    ((cookie, _),) = net.rx(SYN, 4242, sport=6000)
    ((rst, _),) = net.rx(ACK, 4243, cookie.seq + 2, sport=6000)
    assert (rst.flags, rst.seq) == (RST, cookie.seq + 2)
    assert net.tcp.stats.syncookies_failed == 1 and len(net.tcp.conns) == 1


def test_stale_cookie_is_refused() -> None:
    """A cookie is valid for the minute it was made and the next one only."""
    net = Net()
    net.listener(backlog=1)
    net.rx(SYN, ISN_PEER)
    ((cookie, _),) = net.rx(SYN, 4242, sport=6000)
    net.now = T0 + 3 * COOKIE_PERIOD
    net.tcp.poll(net.now)                                   # the first child's SYN-ACK retries are spent
    net.rx(SYN, 1000, sport=7000)
    net.rx(SYN, 2000, sport=7001)                            # overflowing again: cookies are checked
    ((rst, _),) = net.rx(ACK, 4243, cookie.seq + 1, sport=6000)
    assert rst.flags == RST and net.tcp.stats.syncookies_failed == 1


def test_syn_cookies_unit() -> None:
    """SynCookies.make/check: the cookie is bound to the 4-tuple, the peer's ISN and the time;
    it encodes the largest table MSS not above the peer's."""
    sc = SynCookies(b"k" * 16)
    cookie, mss = sc.make(US, 80, PEER, 5555, ISN_PEER, 1460, T0)
    assert mss == 1460
    ack = TcpRepr(5555, 80, ISN_PEER + 1, sq.add(cookie, 1), ACK, 100)
    assert sc.check(US, 80, PEER, 5555, ack, T0) == 1460
    assert sc.check(US, 80, PEER, 5555, ack, T0 + COOKIE_PERIOD) == 1460       # the next minute
    assert sc.check(US, 80, PEER, 5555, ack, T0 + 2 * COOKIE_PERIOD) is None
    assert sc.check(US, 80, PEER, 5556, ack, T0) is None                       # another port
    assert sc.check(US, 80, PEER + 1, 5555, ack, T0) is None                   # another address
    other = TcpRepr(5555, 80, ISN_PEER + 2, sq.add(cookie, 1), ACK, 100)
    assert sc.check(US, 80, PEER, 5555, other, T0) is None                     # another peer ISN
    assert SynCookies(b"j" * 16).check(US, 80, PEER, 5555, ack, T0) is None     # another secret
    for delta in range(1, 8):                     # the MSS index bits are authenticated too
        near = TcpRepr(5555, 80, ISN_PEER + 1, sq.add(cookie, 1 + delta), ACK, 100)
        assert sc.check(US, 80, PEER, 5555, near, T0) is None
    for peer_mss, want in ((9000, 8960), (1400, 1360), (1460, 1460), (536, 536), (1219, 536)):
        assert sc.make(US, 80, PEER, 5555, ISN_PEER, peer_mss, T0)[1] == want
    assert MSS_TABLE[0] == 536


def test_many_cookies_never_validate_wrongly() -> None:
    """A blind attacker guessing ACK numbers essentially never hits a valid cookie."""
    sc = SynCookies(b"s" * 16)
    rng = random.Random(5)
    hits = 0
    for _ in range(2000):
        ack = TcpRepr(5555, 80, ISN_PEER + 1, rng.getrandbits(32), ACK, 100)
        hits += sc.check(US, 80, PEER, 5555, ack, T0) is not None
    assert hits == 0


# --- segments no one owns (RFC 9293 §3.10.7.1) ------------------------------------------------------
def test_syn_to_closed_port_is_refused() -> None:
    """CLOSED: a segment without ACK -> <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>."""
    net = Net()
    ((rst, payload),) = net.rx(SYN, ISN_PEER, dport=81)
    assert (rst.flags, rst.seq, rst.ack, payload) == (RST | ACK, 0, ISN_PEER + 1, b"")
    assert (rst.src_port, rst.dst_port) == (81, PEER_PORT)
    assert net.tcp.stats.no_ports == 1 and net.tcp.stats.out_rsts == 1


def test_ack_to_closed_port_gets_reset_at_its_ack() -> None:
    """CLOSED: a segment with ACK -> <SEQ=SEG.ACK><CTL=RST>."""
    net = Net()
    ((rst, _),) = net.rx(ACK | PSH, 77, 999, payload=b"abc", dport=81)
    assert (rst.flags, rst.seq, rst.ack) == (RST, 999, 0)


def test_data_fin_without_ack_counts_its_length() -> None:
    net = Net()
    ((rst, _),) = net.rx(FIN | PSH, 77, payload=b"abcd", dport=81)
    assert (rst.flags, rst.ack) == (RST | ACK, 77 + 4 + 1)


def test_rst_to_closed_port_is_ignored() -> None:
    """CLOSED: an incoming RST is discarded -- never answer an RST with an RST."""
    net = Net()
    assert net.rx(RST, 77, dport=81) == [] and net.rx(RST | ACK, 77, 5, dport=81) == []


def test_rst_to_listener_is_ignored() -> None:
    net = Net()
    net.listener()
    assert net.rx(RST, 77) == [] and net.tcp.conns == {}


def test_bad_checksum_is_dropped_and_counted() -> None:
    """RFC 9293 §3.1: a bad checksum is counted and the segment dropped unanswered."""
    net = Net()
    net.listener()
    assert net.rx(SYN, ISN_PEER, csum_ok=False) == []
    assert net.tcp.stats.in_csum_errors == 1 and net.tcp.conns == {}


def test_truncated_header_is_counted() -> None:
    net = Net()
    meta = IpMeta(PEER, US, IPPROTO_TCP, 64, 0, 20, net.host.eth0, 0)
    net.tcp.input(PacketBuffer(bytes(12)), meta, T0)
    assert net.tcp.stats.in_truncated == 1 and net.take() == []


def test_broadcast_segments_are_ignored() -> None:
    """RFC 1122 §4.2.3.10: a SYN to a broadcast/multicast address is silently discarded."""
    net = Net()
    net.listener()
    assert net.rx(SYN, ISN_PEER, bcast=True) == [] and net.tcp.conns == {}


def test_segments_that_came_as_link_layer_broadcast_are_dropped() -> None:
    """Linux tcp_v4_rcv takes PACKET_HOST frames only: our unicast address inside a frame to
    the broadcast (or a multicast) MAC is dropped and counted, as over IPv6."""
    net = Net()
    net.listener()
    assert net.rx(SYN, ISN_PEER, ll_bcast=True) == [] and net.tcp.conns == {}
    assert net.tcp.stats.in_errs == 1


# --- active open through Tcp --------------------------------------------------------------------------------
def test_connect_sends_syn_from_the_route() -> None:
    """connect: an ephemeral port (32768-60999), the route's source address, MSS from its MTU."""
    net = Net(mtu=9000)
    c = net.tcp.attach()
    assert net.tcp.connect(c, PEER, 80, net.now) == 0
    ((syn, _),) = net.take()
    assert syn.flags == SYN and syn.mss == 8960 and syn.dst_port == 80
    assert 32768 <= syn.src_port <= 60999 and c.laddr == US and c.lport == syn.src_port
    net.rx(SYN | ACK, ISN_PEER, syn.seq + 1, sport=80, dport=syn.src_port, mss=1460)
    assert c.state == State.ESTABLISHED


def test_connect_refused() -> None:
    """RST answering our SYN -> ECONNREFUSED; the connection leaves the table."""
    net = Net()
    c = net.tcp.attach()
    net.tcp.connect(c, PEER, 80, net.now)
    ((syn, _),) = net.take()
    net.rx(RST | ACK, 0, syn.seq + 1, sport=80, dport=syn.src_port)
    assert c.state == State.CLOSED and c.so_error == errno.ECONNREFUSED and net.tcp.conns == {}


def test_connect_unreachable_by_icmp() -> None:
    """Linux tcp_v4_err: an ICMP unreachable during connect fails it at once (EHOSTUNREACH)."""
    net = Net()
    c = net.tcp.attach()
    net.tcp.connect(c, PEER, 80, net.now)
    ((syn, _),) = net.take()
    quoted = struct.pack("!HHI", syn.src_port, 80, syn.seq)
    net.tcp.ctlinput(IcmpError(3, 1, errno.EHOSTUNREACH, PEER, US, PEER, IPPROTO_TCP, quoted), net.now)
    assert c.state == State.CLOSED and c.so_error == errno.EHOSTUNREACH


def test_icmp_for_data_not_in_flight_is_ignored() -> None:
    """RFC 5927 §4.1: an ICMP error must quote a sequence number in [SND.UNA, SND.MAX]."""
    net = Net()
    c = net.tcp.attach()
    net.tcp.connect(c, PEER, 80, net.now)
    ((syn, _),) = net.take()
    quoted = struct.pack("!HHI", syn.src_port, 80, syn.seq + 100000)
    net.tcp.ctlinput(IcmpError(3, 1, errno.EHOSTUNREACH, PEER, US, PEER, IPPROTO_TCP, quoted), net.now)
    assert c.state == State.SYN_SENT


def test_frag_needed_lowers_mss() -> None:
    """RFC 1191: "fragmentation needed" with a next-hop MTU lowers the MSS and resends."""
    net = Net()
    c = net.tcp.attach()
    net.tcp.connect(c, PEER, 80, net.now)
    ((syn, _),) = net.take()
    net.rx(SYN | ACK, ISN_PEER, syn.seq + 1, sport=80, dport=syn.src_port, mss=1460)
    net.take()
    c.nodelay = True
    c.send(memoryview(bytes(3000)), net.now)
    net.take()
    quoted = struct.pack("!HHI", syn.src_port, 80, syn.seq + 1)
    net.tcp.ctlinput(IcmpError(3, 4, 0, PEER, US, PEER, IPPROTO_TCP, quoted, mtu=1000), net.now)
    out = net.take()
    assert c.mss == 960 and out and all(len(p) <= 960 for _, p in out)
    assert out[0][0].seq == syn.seq + 1


# --- ISNs (RFC 6528), timestamps offset, challenge-ACK budget (RFC 5961 §7) ---------------------------
def test_isn_differs_per_four_tuple() -> None:
    """RFC 6528 §3: ISN = M + F(4-tuple, secret) -- different connections at the same moment
    get unrelated ISNs."""
    net = Net()
    isns = {net.tcp.isn((US, 40000 + i, PEER, 80), T0) for i in range(50)}
    assert len(isns) == 50
    assert net.tcp.isn((US, 40000, PEER, 80), T0) != net.tcp.isn((US, 40000, PEER + 1, 80), T0)


def test_isn_advances_with_a_4_microsecond_clock() -> None:
    """RFC 6528 §3 / RFC 9293 §3.4.1: M is a timer ticking every 4 microseconds, so a reused
    4-tuple gets a larger ISN later on."""
    net = Net()
    key = (US, 40000, PEER, 80)
    assert sq.diff(net.tcp.isn(key, T0 + 1.0), net.tcp.isn(key, T0)) == 250_000
    assert sq.gt(net.tcp.isn(key, T0 + 0.001), net.tcp.isn(key, T0))


def test_isn_secret_differs_per_stack() -> None:
    """RFC 6528 §3: the secret key is per host (here: per Stack, from its RNG)."""
    key = (US, 40000, PEER, 80)
    assert Net(seed=1).tcp.isn(key, T0) != Net(seed=2).tcp.isn(key, T0)


def test_connect_isns_differ_for_two_connections() -> None:
    net = Net()
    a, b = net.tcp.attach(), net.tcp.attach()
    net.tcp.connect(a, PEER, 80, net.now)
    net.tcp.connect(b, PEER, 80, net.now)
    assert a.lport != b.lport and a.iss != b.iss
    assert a.ts_offset != b.ts_offset                 # RFC 7323 §5.4: per-connection TS offset


def test_window_scale_for_the_buffer() -> None:
    """RFC 7323 §2.3: the smallest shift that lets the 16-bit field cover the buffer, at most 14."""
    assert [wscale_for(n) for n in (1000, 65535, 65536, 4 << 20, 1 << 30, 1 << 40)] == [0, 0, 1, 7, 14, 14]


def test_no_host_wide_challenge_ack_budget_by_default() -> None:
    """Linux >= 6.0 (tcp_challenge_ack_limit = INT_MAX): no host-wide budget, the shared
    counter CVE-2016-5696 read from off path; the per-connection limit does the work."""
    net = Net()
    assert net.tcp.config.challenge_ack_limit is None
    assert all(net.tcp.challenge_ack_allowed(T0) for _ in range(100_000))


def test_host_budget_when_configured_is_randomised_per_second() -> None:
    """Linux >= 4.7: each second's budget is drawn uniformly from [limit/2, 3*limit/2), so the
    number of challenge ACKs a prober sees in a second does not tell it how many others used."""
    budgets = set()
    for seed in range(20):
        net = Net(seed=seed, challenge_ack_limit=100)
        n = 0
        while net.tcp.challenge_ack_allowed(T0 + 0.5) and n < 1000:
            n += 1
        assert 50 <= n <= 149
        budgets.add(n)
        assert not net.tcp.challenge_ack_allowed(T0 + 0.999)
        assert net.tcp.challenge_ack_allowed(T0 + 1.0)          # a new second, a new budget
    assert len(budgets) > 5


def established_children(net: Net, ports: tuple[int, ...]) -> dict[int, TcpRepr]:
    net.listener()
    synacks = {}
    for port in ports:
        ((synack, _),) = net.rx(SYN, ISN_PEER, sport=port)
        net.rx(ACK, ISN_PEER + 1, synack.seq + 1, sport=port)
        synacks[port] = synack
    return synacks


def test_each_connection_has_its_own_challenge_ack_budget() -> None:
    """CVE-2016-5696: an attacker flooding one connection with in-window RSTs/SYNs exhausts
    only that connection's allowance (one per tcp_invalid_ratelimit, 500 ms); another
    connection's challenge ACK is still sent at once, so counting them reveals nothing."""
    net = Net()
    established_children(net, (6001, 6002))
    flood = [len(net.rx(RST if i % 2 else SYN, ISN_PEER + 100 + i, sport=6001, at=T0 + 0.001 * i))
             for i in range(200)]
    assert flood[0] == 1 and sum(flood) == 1
    ((victim, _),) = net.rx(RST, ISN_PEER + 100, sport=6002, at=T0 + 0.2)
    assert victim.flags == ACK and victim.dst_port == 6002
    stats = net.tcp.stats
    assert stats.challenge_acks == 2 and stats.ack_skipped_challenge == 199
    # and the flooded connection gets its next one 500 ms after its last
    assert len(net.rx(RST, ISN_PEER + 100, sport=6001, at=T0 + 0.5)) == 1
    assert all(c.state == State.ESTABLISHED for c in net.tcp.conns.values())


def test_host_budget_configured_still_spares_other_connections_within_it() -> None:
    """With a host budget configured as well (4: at least 2 a second once randomised), one
    connection's flood spends at most one challenge ACK of it per 500 ms, so others still
    get theirs."""
    net = Net(challenge_ack_limit=4)
    established_children(net, (6001, 6002))
    for i in range(100):
        net.rx(RST, ISN_PEER + 100 + i, sport=6001, at=T0 + 0.001 * i)
    assert len(net.rx(RST, ISN_PEER + 100, sport=6002, at=T0 + 0.2)) == 1


# --- TIME-WAIT through Tcp -----------------------------------------------------------------------------
def server_in_time_wait(net: Net) -> tuple[Connection, TcpRepr]:
    """A passively opened child that closed first and sits in TIME-WAIT."""
    net.listener()
    ((synack, _),) = net.rx(SYN, ISN_PEER)
    net.rx(ACK, ISN_PEER + 1, synack.seq + 1)
    child = net.child()
    child.close(net.now)
    net.take()
    net.rx(ACK, ISN_PEER + 1, synack.seq + 2)
    net.rx(FIN | ACK, ISN_PEER + 1, synack.seq + 2)
    assert child.state == State.TIME_WAIT
    return child, synack


def test_time_wait_out_of_window_acks_are_rate_limited() -> None:
    """Linux TCPACKSkippedTimeWait: a TIME-WAIT connection answers out-of-window segments
    without data once per 500 ms, so a spoofed flood cannot turn it into an ACK reflector;
    the peer's retransmitted FIN (with its 2 MSL restart) is still handled."""
    net = Net()
    child, synack = server_in_time_wait(net)
    far = ISN_PEER + 2 + (1 << 24)
    assert len(net.rx(ACK, far, synack.seq + 2, at=net.now + 1)) == 1
    assert [len(net.rx(ACK, far, synack.seq + 2, at=net.now + 0.01)) for _ in range(5)] == [0] * 5
    assert net.tcp.stats.ack_skipped_time_wait == 5 and child.state == State.TIME_WAIT
    assert len(net.rx(ACK, far, synack.seq + 2, at=net.now + 0.5)) == 1


def test_time_wait_reused_by_new_syn() -> None:
    """RFC 9293 §3.10.7.4 note / RFC 6191: a SYN beyond the old connection's sequence space may
    reopen a 4-tuple in TIME-WAIT when a listener exists; a SYN within it gets an ACK only."""
    net = Net()
    child, synack = server_in_time_wait(net)
    out = net.rx(SYN, ISN_PEER + 1, at=net.now + 1)                # old: not above RCV.NXT
    assert [s.flags for s, _ in out] == [ACK] and child.state == State.TIME_WAIT
    ((new_synack, _),) = net.rx(SYN, ISN_PEER + 100000, at=net.now + 1)
    assert new_synack.flags == SYN | ACK and new_synack.ack == ISN_PEER + 100001
    assert child.state == State.CLOSED and net.child() is not child


def test_time_wait_expires_through_the_timer_heap() -> None:
    """TIME-WAIT lasts 2 MSL (RFC 9293 §3.10.7.4); the Tcp timer heap closes it."""
    net = Net(msl=5.0)
    child, _ = server_in_time_wait(net)
    deadline = net.now + 10.0
    while child.state == State.TIME_WAIT:
        at = net.tcp.poll_at()
        assert at is not None and at <= deadline
        net.poll(at)
    assert net.now == pytest.approx(deadline) and net.tcp.conns == {}


def test_connect_shares_ephemeral_ports_when_the_range_is_full() -> None:
    """Every ephemeral port taken: connect() reuses one held by connect()-bound sockets when
    the 4-tuple differs (Linux __inet_hash_connect), else EADDRNOTAVAIL."""
    net = Net()
    tcp = net.tcp
    low, high = tcp.ephemeral.low, tcp.ephemeral.high
    tcp.ephemeral.low = tcp.ephemeral.high = tcp.ephemeral.next = 40000    # a one-port range
    try:
        first = tcp.attach()
        assert tcp.connect(first, PEER, 80, net.now) == 0 and first.lport == 40000
        second = tcp.attach()
        assert tcp.connect(second, PEER, 81, net.now) == 0 and second.lport == 40000
        third = tcp.attach()
        assert tcp.connect(third, PEER, 80, net.now) == errno.EADDRNOTAVAIL     # same 4-tuple
        bound = tcp.attach()
        assert tcp.bind(bound, 0, 0) == errno.EADDRINUSE                      # bind(0) cannot share
    finally:
        tcp.ephemeral.low, tcp.ephemeral.high = low, high
