"""Path MTU (protocols/pmtu.py) and ICMP errors validated before anyone acts on them
(RFC 1191, RFC 5927 §4.1/§5, Linux __ip_rt_update_pmtu / tcp_v4_err / udp_err).

Issue 10 point 4: one spoofed "fragmentation needed, MTU 68" used to drop the MSS to 76.
Now the path MTU is floored at min_pmtu (552: MSS >= 512), only a frag-needed quoting a
sequence number in flight on an existing connection is acted on, an MTU not below the
current one is ignored, and the lowering expires (600 s).  Explicit clock throughout; the
ICMP packets go through the whole receive path (Ipv4.input -> Icmp -> Tcp/Udp.ctlinput).
"""
from __future__ import annotations

import errno
import random
import socket
import struct

from ndd.pktbuf import PacketBuffer
from protocols.addr import ip_to_int
from protocols.contracts import PR_ADDR, PR_ATOMIC, PR_CONNREQUIRED, Protosw
from protocols.icmp import DEST_UNREACH, FRAG_NEEDED, Icmp, IcmpRepr
from protocols.ipv4 import FLAG_DF, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4Repr
from protocols.pmtu import MIN_PMTU_IPV4, MIN_PMTU_IPV6, MTU_EXPIRES, PmtuCache
from protocols.tcp.conn import Connection, State
from protocols.tcp.wire import ACK, SYN, TcpRepr
from protocols.udp.pcb import UdpPcb
from protocols.udp.udp import Udp

from .fakes import ip_packet, rx
from .test_tcp_listen import ISN_PEER, PEER, T0, US, Net

DST = ip_to_int("10.0.0.9")             # on the link, not the peer
ROUTER = "10.0.0.254"


# --- the cache alone ----------------------------------------------------------------------------------
def test_floor_is_min_pmtu_and_locks() -> None:
    """Linux net.ipv4.route.min_pmtu: a reported MTU below 552 becomes 552, locked (DF cleared)."""
    cache = PmtuCache()
    assert cache.update(DST, 68, 1500, T0)
    assert cache.path_mtu(DST, 1500, T0) == MIN_PMTU_IPV4 == 552
    assert not cache.dont_fragment(DST, T0)
    assert cache.stats.clamped == 1 and cache.stats.updates == 1


def test_floor_is_per_family_config() -> None:
    """The floor is a parameter: IPv6's is its minimum link MTU, 1280 (RFC 8200 §5)."""
    cache = PmtuCache(min_pmtu=MIN_PMTU_IPV6)
    cache.update(DST, 576, 1500, T0)
    assert cache.path_mtu(DST, 1500, T0) == 1280


def test_locked_entry_is_not_lowered_again() -> None:
    cache = PmtuCache()
    cache.update(DST, 100, 1500, T0)
    assert not cache.update(DST, 68, 1500, T0 + 1)
    assert cache.path_mtu(DST, 1500, T0 + 1) == 552 and cache.stats.ignored_locked == 1


def test_mtu_not_lower_is_ignored() -> None:
    """Linux __ip_rt_update_pmtu: old_mtu < mtu -> nothing (a frag-needed cannot raise it)."""
    cache = PmtuCache()
    assert not cache.update(DST, 9000, 1500, T0)
    assert not cache.update(DST, 1500, 1500, T0)          # the link's own MTU teaches nothing
    assert len(cache) == 0
    assert cache.update(DST, 1400, 1500, T0)
    assert not cache.update(DST, 1450, 1500, T0 + 1)
    assert cache.path_mtu(DST, 1500, T0 + 1) == 1400 and cache.stats.ignored_not_lower == 3
    assert cache.dont_fragment(DST, T0 + 1)                # a normal lowering keeps DF


def test_same_mtu_refreshes_only_late_in_life() -> None:
    cache = PmtuCache()
    cache.update(DST, 1400, 1500, T0)
    assert not cache.update(DST, 1400, 1500, T0 + 10)        # early: ignored
    assert cache.stats.refreshes == 0
    cache.update(DST, 1400, 1500, T0 + MTU_EXPIRES - 10)      # second half: expiry pushed back
    assert cache.stats.refreshes == 1
    assert cache.path_mtu(DST, 1500, T0 + MTU_EXPIRES + 1) == 1400


def test_entry_expires() -> None:
    """net.ipv4.route.mtu_expires (600 s): a lowering -- spoofed or real -- does not last."""
    cache = PmtuCache()
    cache.update(DST, 68, 1500, T0)
    assert cache.path_mtu(DST, 1500, T0 + MTU_EXPIRES - 0.001) == 552
    assert cache.path_mtu(DST, 1500, T0 + MTU_EXPIRES) == 1500
    assert cache.dont_fragment(DST, T0 + MTU_EXPIRES) and len(cache) == 0 and cache.stats.expired == 1


def test_table_is_bounded() -> None:
    cache = PmtuCache(max_entries=4)
    for i in range(10):
        cache.update(DST + i, 1400, 1500, T0)
    assert len(cache) == 4 and cache.stats.evicted == 6
    assert cache.path_mtu(DST + 9, 1500, T0) == 1400 and cache.path_mtu(DST, 1500, T0) == 1500


def test_ipv4_clears_df_on_a_locked_path() -> None:
    """Linux ip_dont_fragment: a route whose MTU is locked at the floor sends without DF, so a
    real path below 552 still works through fragmentation."""
    net = Net()
    ipv4 = net.host.ipv4
    ipv4.pmtu.update(DST, 68, 1500, T0)
    for dst in (DST, DST + 1):
        assert ipv4.output(_payload(), US, dst, IPPROTO_TCP, T0, df=True) == 0
    locked, other = (Ipv4Repr.parse(d) for d, _, _ in net.host.link.sent)
    assert isinstance(locked, Ipv4Repr) and isinstance(other, Ipv4Repr)
    assert not locked.df and other.df


def _payload() -> PacketBuffer:
    return PacketBuffer.from_payload(bytes(100))


# --- through ICMP into TCP -----------------------------------------------------------------------------
class IcmpNet(Net):
    """Net (test_tcp_listen) with ICMP, TCP and UDP registered, so that an ICMP packet takes the
    whole receive path."""

    def __init__(self, **cfg) -> None:
        super().__init__(**cfg)
        h = self.host
        self.icmp = Icmp(h.ipv4)
        h.protosw.add(socket.AF_INET, Protosw("icmp", socket.SOCK_RAW, IPPROTO_ICMP, input=self.icmp.input,
                                              ctlinput=self.icmp.ctlinput, flags=PR_ATOMIC | PR_ADDR))
        h.protosw.add(socket.AF_INET, Protosw("tcp", socket.SOCK_STREAM, IPPROTO_TCP, input=self.tcp.input,
                                              ctlinput=self.tcp.ctlinput, flags=PR_CONNREQUIRED))
        self.udp = Udp(h.ipv4, random.Random(3))
        h.protosw.add(socket.AF_INET, Protosw("udp", socket.SOCK_DGRAM, IPPROTO_UDP, input=self.udp.input,
                                              ctlinput=self.udp.ctlinput, flags=PR_ATOMIC | PR_ADDR))

    def established(self, *, ts: bool = False, nbytes: int = 30000) -> tuple[Connection, list[tuple[TcpRepr, bytes]]]:
        """An active open to PEER:80 with `nbytes` in flight; returns it and what it sent."""
        c = self.tcp.attach()
        assert self.tcp.connect(c, PEER, 80, self.now) == 0
        ((syn, _),) = self.take()
        opts = {"ts": (1, syn.ts[0])} if ts and syn.ts else {}
        self.rx(SYN | ACK, ISN_PEER, syn.seq + 1, sport=80, dport=syn.src_port, mss=1460, **opts)
        c.nodelay = True
        c.send(memoryview(bytes(nbytes)), self.now)
        out = [s for s in self.take() if s[1]]
        assert out and c.state == State.ESTABLISHED
        return c, out

    def frag_needed(self, c: Connection, mtu: int, seqno: int, *, df: bool = True, sport: int | None = None,
                    at: float | None = None) -> list[tuple[TcpRepr, bytes]]:
        """A router's "fragmentation needed" quoting one of our segments (IP header + 8 octets)."""
        if at is not None:
            self.now = at
        quoted_tcp = struct.pack("!HHI", c.lport if sport is None else sport, c.fport, seqno & 0xFFFFFFFF)
        quoted = ip_packet(US, PEER, IPPROTO_TCP, quoted_tcp, ff=FLAG_DF if df else 0, total=1500)
        icmp = IcmpRepr(DEST_UNREACH, FRAG_NEEDED, mtu, quoted).emit()
        self.host.ipv4.input(self.host.eth0, rx(ip_packet(ROUTER, US, IPPROTO_ICMP, icmp)), self.now)
        return self.take_raw()

    def take_raw(self) -> list[tuple[TcpRepr, bytes]]:
        """What was sent, each TCP segment with its IP header's DF bit checked by the caller."""
        self.last_ip = [Ipv4Repr.parse(d) for d, _, _ in self.host.link.sent]
        return self.take()


def test_spoofed_mtu_68_in_window_is_clamped_at_512() -> None:
    """The issue's attack: MTU 68 quoting a segment in flight.  Acted on (it is valid), but the
    path MTU stops at 552: MSS 512, every resent segment <= 512 octets of payload, sent without
    DF so a real tiny-MTU path is fragmented, not black-holed."""
    net = IcmpNet()
    c, _ = net.established()
    assert c.mss == 1460
    out = net.frag_needed(c, 68, c.snd_una + 1460)
    assert c.mss == 512 and c.pmtu == 552
    data = [p for _, p in out if p]
    assert data and all(len(p) == 512 for p in data) and out[0][0].seq == c.snd_una
    assert all(ip is not None and not isinstance(ip, str) and not ip.df and ip.total_len <= 552
               for ip in net.last_ip)
    assert net.tcp.stats.pmtu_reductions == 1 and net.host.ipv4.pmtu.stats.clamped == 1
    assert net.icmp.stats.in_frag_needed == 1


def test_mss_with_timestamps_stays_at_or_above_500_payload() -> None:
    """With timestamps the payload per segment is MSS 512 less the 12-octet option (Linux's
    mss_cache 500): the IP packet is still 552."""
    net = IcmpNet()
    c, _ = net.established(ts=True)
    net.frag_needed(c, 68, c.snd_una)
    assert c.ts_ok and c.mss == 500


def test_quoted_sequence_out_of_window_is_dropped_and_counted() -> None:
    """RFC 5927 §4.1/§5: a quoted sequence number outside [SND.UNA, SND.MAX] is no segment of
    ours in flight -- dropped, counted (Linux OutOfWindowIcmps), the connection untouched."""
    net = IcmpNet()
    c, _ = net.established()
    for seqno in (c.snd_una - 1, c.snd_max + 1, c.snd_una + (1 << 31)):
        assert net.frag_needed(c, 68, seqno) == []
    assert c.mss == 1460 and c.pmtu == 0 and c.state == State.ESTABLISHED
    assert net.tcp.stats.out_of_window_icmps == 3 and len(net.host.ipv4.pmtu) == 0
    # the edges are in flight
    net.frag_needed(c, 1400, c.snd_max)
    assert c.mss == 1360


def test_frag_needed_for_no_connection_is_dropped_and_counted() -> None:
    net = IcmpNet()
    c, _ = net.established()
    net.frag_needed(c, 68, c.snd_una, sport=c.lport + 1)
    assert c.mss == 1460 and net.tcp.stats.icmp_no_conn == 1 and len(net.host.ipv4.pmtu) == 0


def test_frag_needed_quoting_no_df_is_dropped() -> None:
    net = IcmpNet()
    c, _ = net.established()
    net.frag_needed(c, 68, c.snd_una, df=False)
    assert c.mss == 1460 and net.icmp.stats.in_frag_needed_no_df == 1


def test_larger_mtu_is_ignored() -> None:
    """Linux: a frag-needed with an MTU larger than the current path MTU changes nothing."""
    net = IcmpNet()
    c, _ = net.established()
    net.frag_needed(c, 1400, c.snd_una)
    assert net.frag_needed(c, 1450, c.snd_una) == [] and c.mss == 1360
    assert net.frag_needed(c, 9000, c.snd_una) == [] and c.mss == 1360
    assert net.host.ipv4.pmtu.stats.ignored_not_lower == 2 and net.tcp.stats.pmtu_reductions == 1


def test_lowering_expires_and_the_mss_comes_back() -> None:
    """After mtu_expires the next transmission sizes segments by the link MTU again (Linux
    tcp_current_mss re-reads dst_mtu); before it, they keep the floor."""
    net = IcmpNet()
    c, _ = net.established(nbytes=5000)
    net.frag_needed(c, 68, c.snd_una)
    assert c.mss == 512
    # the peer ACKs everything; more data 10 minutes less a second later: still 512
    net.rx(ACK, ISN_PEER + 1, c.snd_max, sport=80, dport=c.lport, at=T0 + 1)
    c.send(memoryview(bytes(3000)), net.now)
    assert {len(p) for _, p in net.take() if p} <= {512, 3000 % 512}
    net.rx(ACK, ISN_PEER + 1, c.snd_max, sport=80, dport=c.lport, at=T0 + MTU_EXPIRES - 1)
    c.send(memoryview(bytes(3000)), net.now)
    assert max(len(p) for _, p in net.take() if p) == 512
    net.rx(ACK, ISN_PEER + 1, c.snd_max, sport=80, dport=c.lport, at=T0 + MTU_EXPIRES + 1)
    c.send(memoryview(bytes(3000)), net.now)
    assert max(len(p) for _, p in net.take() if p) == 1460 and c.mss == 1460 and c.pmtu == 0
    assert net.host.ipv4.pmtu.stats.expired == 1


def test_other_connection_to_same_destination_uses_the_path_mtu() -> None:
    """The path MTU belongs to the destination (the route cache), not the connection."""
    net = IcmpNet()
    a, _ = net.established()
    net.frag_needed(a, 1000, a.snd_una)
    b, sent = net.established()
    assert b.mss == 960 and max(len(p) for _, p in sent) == 960


def test_unreachable_out_of_window_does_not_fail_a_connect() -> None:
    """The same validation guards the other errors: a spoofed host unreachable quoting a
    wrong sequence cannot fail a connect() (RFC 5927 §4.1)."""
    net = IcmpNet()
    c = net.tcp.attach()
    net.tcp.connect(c, PEER, 80, net.now)
    ((syn, _),) = net.take()
    quoted = ip_packet(US, PEER, IPPROTO_TCP, struct.pack("!HHI", syn.src_port, 80, syn.seq + 7), ff=FLAG_DF)
    icmp = IcmpRepr(DEST_UNREACH, 1, 0, quoted).emit()
    net.host.ipv4.input(net.host.eth0, rx(ip_packet(ROUTER, US, IPPROTO_ICMP, icmp)), net.now)
    assert c.state == State.SYN_SENT and net.tcp.stats.out_of_window_icmps == 1
    quoted = ip_packet(US, PEER, IPPROTO_TCP, struct.pack("!HHI", syn.src_port, 80, syn.seq), ff=FLAG_DF)
    icmp = IcmpRepr(DEST_UNREACH, 1, 0, quoted).emit()
    net.host.ipv4.input(net.host.eth0, rx(ip_packet(ROUTER, US, IPPROTO_ICMP, icmp)), net.now)
    assert c.state == State.CLOSED and c.so_error == errno.EHOSTUNREACH


# --- through ICMP into UDP ------------------------------------------------------------------------------
def _udp_error(net: IcmpNet, sport: int, dport: int, dst: int = DST) -> None:
    quoted = ip_packet(US, dst, IPPROTO_UDP, struct.pack("!HHHH", sport, dport, 16, 0) + bytes(8))
    icmp = IcmpRepr(DEST_UNREACH, 3, 0, quoted).emit()      # port unreachable
    net.host.ipv4.input(net.host.eth0, rx(ip_packet(ROUTER, US, IPPROTO_ICMP, icmp)), net.now)


def test_udp_icmp_error_must_name_a_socket() -> None:
    """Linux udp_err: the quoted ports (and addresses) must match one of our sockets; only a
    connected one hears of it.  Everything else is counted, nothing raised."""
    net = IcmpNet()
    udp = net.udp
    pcb = UdpPcb(udp)
    assert udp.connect(pcb, DST, 53) == 0
    _udp_error(net, pcb.lport + 1, 53)                     # no socket on that port
    _udp_error(net, pcb.lport, 54)                         # the socket talks to port 53, not 54
    assert pcb.so_error == 0 and udp.stats.icmp_no_socket == 2
    lone = UdpPcb(udp)
    assert udp.bind(lone, 0, 7777) == 0
    _udp_error(net, 7777, 53)                              # an unconnected socket is not told
    assert lone.so_error == 0 and udp.stats.icmp_ignored == 1
    _udp_error(net, pcb.lport, 53)
    assert pcb.so_error == errno.ECONNREFUSED
