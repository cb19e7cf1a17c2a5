"""The gateway's hooks in the sans-IO cores (issue 13), with an explicit clock: transparent
interfaces at IPv4 input, and the TCP forwarder's table (tcp.forwarder, forward_accept,
forward_reject): what is sent back for each answer, retransmitted SYNs, the bound on held
SYNs and their lifetime."""
from __future__ import annotations

import errno
import random
import socket
import struct
import tracemalloc

from ndd.checksum import checksum, pseudo_header_sum
from ndd.pktbuf import PacketBuffer
from protocols.addr import ip_to_int
from protocols.contracts import Protosw
from protocols.ipv4 import IPPROTO_TCP, IPPROTO_UDP, Ipv4Repr, is_foreign_unicast
from protocols.tcp.conn import State
from protocols.tcp.forward import ForwardRequest
from protocols.tcp.wire import ACK, RST, SYN, TcpRepr

from .fakes import ip_packet, make_icmp_host
from .test_tcp_listen import PEER, PEER_PORT, US, Net

REMOTE = ip_to_int("203.0.113.9")
ISN = 0x12345678


def gateway(**cfg: object) -> tuple[Net, list[ForwardRequest]]:
    net = Net(**cfg)   # type: ignore[arg-type]
    net.host.eth0.transparent = True
    requests: list[ForwardRequest] = []
    net.tcp.forwarder = requests.append
    return net, requests


def syn(net: Net, sport: int = PEER_PORT, dst: int = REMOTE, dport: int = 80, seq: int = ISN,
        at: float | None = None) -> list:
    return net.rx(SYN, seq, sport=sport, dst=dst, dport=dport, mss=1400, wscale=7, sack_perm=True,
                  ts=(99, 0), at=at)


# --- IPv4 input -------------------------------------------------------------------------------
def test_transparent_interface_takes_foreign_unicast_only() -> None:
    host, _ = make_icmp_host()
    got: list[int] = []
    host.protosw.add(socket.AF_INET, Protosw("udp", socket.SOCK_DGRAM, IPPROTO_UDP,
                                             input=lambda pkt, meta, now: got.append(meta.dst)))
    udp = bytes(8)
    for dst in ("203.0.113.9", "224.0.0.5", "127.0.0.1", "240.0.0.1", "0.1.2.3"):
        host.ipv4.input(host.eth0, PacketBuffer(ip_packet("10.0.0.1", dst, IPPROTO_UDP, udp)), 0.0)
    assert got == []                                     # a host: nothing that is not ours
    assert host.ipv4.stats.in_addr_errors == 5
    host.eth0.transparent = True
    for dst in ("203.0.113.9", "224.0.0.5", "127.0.0.1", "240.0.0.1", "0.1.2.3"):
        host.ipv4.input(host.eth0, PacketBuffer(ip_packet("10.0.0.1", dst, IPPROTO_UDP, udp)), 0.0)
    assert got == [REMOTE]                               # unicast only: the rest stays refused
    assert [is_foreign_unicast(ip_to_int(a)) for a in ("8.8.8.8", "127.0.0.2", "239.1.1.1", "0.0.0.0")] == \
        [True, False, False, False]


# --- the TCP forwarder ----------------------------------------------------------------------------
def test_syn_is_held_and_handed_to_the_forwarder() -> None:
    net, requests = gateway()
    assert syn(net) == []                                # held: no answer yet
    (req,) = requests
    assert (req.src, req.sport, req.dst, req.dport) == (PEER, PEER_PORT, REMOTE, 80)
    assert req.family == socket.AF_INET and req.ifp is net.host.eth0 and req.now == net.now
    assert (req.options.mss, req.options.wscale, req.options.sack_permitted, req.options.timestamps) == \
        (1400, 7, True, True)
    assert net.tcp.forward_pending == 1 and net.tcp.stats.forward_requests == 1
    assert net.tcp.stats.no_ports == 0


def test_accept_answers_as_a_listener_would() -> None:
    net, requests = gateway()
    syn(net)
    net.now += 0.3
    conn = net.tcp.forward_accept(requests[0].id, net.now)
    assert conn is not None and conn.state == State.SYN_RECEIVED
    ((synack, _),) = net.take()
    # from the address and port the guest asked for, acknowledging its SYN, with its options echoed
    assert synack.flags == SYN | ACK and synack.ack == ISN + 1
    assert (synack.src_port, synack.dst_port) == (80, PEER_PORT)
    assert synack.mss == 1460 and synack.wscale is not None and synack.sack_perm and synack.ts is not None
    assert net.tcp.conns[(REMOTE, 80, PEER, PEER_PORT)] is conn
    events: list[int] = []
    conn.on_event = lambda: events.append(1)
    net.rx(ACK, ISN + 1, synack.seq + 1, dst=REMOTE, ts=(100, synack.ts[0]))
    assert conn.state == State.ESTABLISHED and events   # the owner's upcall hears of it
    assert conn.send(memoryview(b"hello"), net.now) == 5
    ((seg, payload),) = net.take()
    assert payload == b"hello" and seg.src_port == 80
    assert net.tcp.forward_pending == 0 and net.tcp.stats.forward_accepted == 1
    assert net.tcp.forward_accept(requests[0].id, net.now) is None       # once


def test_retransmitted_syn_while_held_asks_nobody_again() -> None:
    net, requests = gateway()
    syn(net)
    assert syn(net, at=net.now + 1) == [] and syn(net, at=net.now + 2) == []
    assert len(requests) == 1 and net.tcp.stats.forward_syn_retransmits == 2
    conn = net.tcp.forward_accept(requests[0].id, net.now)
    assert conn is not None
    net.take()
    # after the accept, a retransmitted SYN meets the connection: the SYN-ACK again, no new one
    ((again, _),) = syn(net)
    assert again.flags == SYN | ACK and again.seq == conn.iss
    assert len(requests) == 1 and len(net.tcp.conns) == 1


def test_reject_rst_is_the_reset_a_closed_port_sends() -> None:
    net, requests = gateway()
    syn(net)
    assert net.tcp.forward_reject(requests[0].id, "rst", net.now) == 0
    ((rst, _),) = net.take()
    assert rst.flags == RST | ACK and rst.ack == ISN + 1 and rst.src_port == 80
    assert net.tcp.stats.forward_rejected_rst == 1 and net.tcp.forward_pending == 0
    assert net.tcp.forward_reject(requests[0].id, "rst", net.now) == errno.ENOENT
    assert net.tcp.forward_reject(requests[0].id, "bogus", net.now) == errno.EINVAL


def test_reject_icmp_quotes_the_syn() -> None:
    from protocols.icmp import Icmp, IcmpRepr
    net, requests = gateway()
    Icmp(net.host.ipv4, random_cost=False, rng=random.Random(1))   # plugs ipv4.send_icmp_error
    # through IPv4 input this time: the quote is taken from the datagram's IP header on
    net.host.protosw.add(socket.AF_INET, Protosw("tcp", socket.SOCK_STREAM, IPPROTO_TCP, input=net.tcp.input))
    seg = TcpRepr(PEER_PORT, 80, ISN, 0, SYN, 0xFFFF, mss=1400)
    raw = bytearray(20 + len(seg.options_bytes()))
    seg.emit(raw, seg.options_bytes())
    struct.pack_into("!H", raw, 16, checksum(raw, pseudo_header_sum(PEER, REMOTE, IPPROTO_TCP, len(raw))))
    net.host.ipv4.input(net.host.eth0, PacketBuffer(ip_packet(PEER, REMOTE, IPPROTO_TCP, bytes(raw))), net.now)
    assert len(requests) == 1 and net.host.link.sent == []
    assert net.tcp.forward_reject(requests[0].id, "host", net.now) == 0
    ((data, _, _),) = net.host.link.sent
    ip = Ipv4Repr.parse(data)
    assert isinstance(ip, Ipv4Repr) and (ip.src, ip.dst) == (REMOTE, PEER)
    msg = IcmpRepr.parse(data[ip.hdr_len:])
    assert isinstance(msg, IcmpRepr) and (msg.type, msg.code) == (3, 1)
    inner = Ipv4Repr.parse(msg.data, verify_checksum=False)
    assert isinstance(inner, Ipv4Repr) and (inner.src, inner.dst, inner.proto) == (PEER, REMOTE, IPPROTO_TCP)
    assert msg.data[inner.hdr_len:inner.hdr_len + 4] == PEER_PORT.to_bytes(2, "big") + (80).to_bytes(2, "big")
    assert net.tcp.stats.forward_rejected_icmp == 1


def test_silent_reject_keeps_ignoring_until_the_lifetime_ends() -> None:
    net, requests = gateway(forward_timeout=30.0)
    t0 = net.now
    syn(net)
    assert net.tcp.forward_reject(requests[0].id, "silent", net.now) == 0
    assert net.take() == []
    assert syn(net, at=t0 + 3) == [] and len(requests) == 1
    assert net.tcp.forward_accept(requests[0].id, net.now) is None      # answered already
    assert net.poll(t0 + 30) == []
    assert net.tcp.forward_pending == 0 and net.tcp.stats.forward_expired == 0
    syn(net, at=t0 + 31)                                 # the guest's next retry asks anew
    assert len(requests) == 2


def test_pending_bound_drops_and_counts() -> None:
    net, requests = gateway(forward_pending_max=3)
    for i in range(5):
        assert syn(net, sport=40000 + i) == []
    assert len(requests) == 3 and net.tcp.forward_pending == 3
    assert net.tcp.stats.forward_dropped_full == 2
    assert net.tcp.forward_reject(requests[0].id, "rst", net.now) == 0
    net.take()
    syn(net, sport=40003)                                # room again
    assert len(requests) == 4


def test_unresolved_requests_expire() -> None:
    net, requests = gateway(forward_timeout=30.0)
    t0 = net.now
    syn(net, sport=1001)
    syn(net, sport=1002, at=t0 + 10)
    assert net.tcp.poll_at() == t0 + 30                  # the oldest one's deadline
    net.poll(t0 + 30)
    assert net.tcp.forward_pending == 1 and net.tcp.stats.forward_expired == 1
    assert net.tcp.poll_at() == t0 + 40
    assert net.tcp.forward_accept(requests[0].id, net.now) is None
    assert net.tcp.forward_accept(requests[1].id, t0 + 41) is None      # past its lifetime too
    assert net.tcp.stats.forward_expired == 2 and net.tcp.poll_at() is None
    assert net.take() == []


def test_only_a_pure_syn_is_forwarded() -> None:
    net, requests = gateway()
    ((rst, _),) = net.rx(ACK, ISN, 5, dst=REMOTE)        # no connection: the reset, as before
    assert rst.flags == RST and requests == []
    assert net.rx(SYN | RST, ISN, dst=REMOTE) == [] and requests == []
    net.tcp.forwarder = None
    ((rst, _),) = syn(net)                               # no forwarder: today's reset
    assert rst.flags == RST | ACK


def test_syn_received_timeout_tells_the_owner() -> None:
    net, requests = gateway(synack_retries=1)
    syn(net)
    conn = net.tcp.forward_accept(requests[0].id, net.now)
    assert conn is not None
    for _ in range(4):
        at = net.tcp.poll_at()
        assert at is not None
        net.poll(at)
        if conn.state == State.CLOSED:
            break
    assert conn.state == State.CLOSED and conn.take_error() == errno.ETIMEDOUT


def test_syn_to_our_own_address_without_listener_is_forwarded_too() -> None:
    """The gateway decides for its own address as well (host loopback mapping, or refusal)."""
    net, requests = gateway()
    assert net.rx(SYN, ISN, dport=22) == []
    assert [(r.dst, r.dport) for r in requests] == [(US, 22)]


def test_syn_flood_to_many_destinations_stays_bounded() -> None:
    """Adversarial bound: SYNs to 20 000 destinations hold at most forward_pending_max
    requests; each costs ~1 KB here (measured 1037 B with the forwarder's own list), the
    limit is generous for a loaded machine."""
    net, requests = gateway(forward_pending_max=4096)
    net.tcp.forwarder = lambda request: None            # an owner that keeps nothing itself
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(20_000):
            net.rx(SYN, i, sport=1024 + i % 60000, dst=REMOTE + i, dport=80 + i % 7)
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert net.tcp.forward_pending == 4096
    assert net.tcp.stats.forward_dropped_full == 20_000 - 4096
    assert held < 4096 * 4096                            # < 4 KB per held SYN (about 1 KB measured)
    net.poll(net.now + 30)
    assert net.tcp.forward_pending == 0 and net.tcp.stats.forward_expired == 4096
