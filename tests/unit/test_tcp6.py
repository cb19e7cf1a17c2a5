"""TCP over IPv6 (protocols/tcp/tcp.py input6/ctlinput6/bind6/connect6, usrreq.py AF_INET6):
two Tcp cores over real Ipv6 cores joined by a wire (tcp6_net.py), an explicit clock.
What crossed the wire is parsed by scapy, independently of our codecs."""
from __future__ import annotations

import errno
import hashlib
import random
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.inet import TCP as ScapyTCP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6PacketTooBig, ICMPv6TimeExceeded, IPv6
from scapy.packet import Packet, Raw

from ndd.checksum import checksum, ones_sum
from ndd.ndd import DeviceCaps
from ndd.pktbuf import GSO_TCPV6, PacketBuffer
from protocols.icmpv6.core import Icmpv6Error
from protocols.ipv6.addr import ip6_to_int, v4_mapped
from protocols.ipv6.ip6 import Ip6Meta
from protocols.ipv6.wire import pseudo_header_sum as pseudo6
from protocols.sockopt import IPV6_TCLASS, IPV6_UNICAST_HOPS, IPV6_V6ONLY
from protocols.tcp import seq as sq
from protocols.tcp.conn import Connection, State
from protocols.tcp.wire import ACK, SYN, TcpRepr

from .tcp6_net import Frame, Node, Wire, pair, run_timers

A6, B6 = ip6_to_int("2001:db8::2"), ip6_to_int("2001:db8::1")
A_LL, B_LL = ip6_to_int("fe80::2"), ip6_to_int("fe80::1")
A4, B4 = 0x0A000002, 0x0A000001
PORT = 8080


def v6_frames(wire: Wire, sender: Node | None = None) -> list[IPv6]:
    return [IPv6(f.data) for f in wire.log if f.data[0] >> 4 == 6 and (sender is None or f.src is sender)
            and IPv6(f.data).nh == 6]


def listen6(node: Node, addr: int = 0, port: int = PORT, backlog: int = 8, v6only: bool | None = None) -> Connection:
    lst = node.usr6.attach(node.wire.now)
    if v6only is not None:
        assert node.usr6.setsockopt(lst, socket.IPPROTO_IPV6, IPV6_V6ONLY, int(v6only), node.wire.now) == 0
    assert node.usr6.bind(lst, (addr, port, 0, 0), node.wire.now) == 0
    assert node.usr6.listen(lst, backlog, node.wire.now) == 0
    return lst


def connect6(wire: Wire, client: Node, server: Node, lst: Connection, addr: int = B6,
             scope: int = 0) -> tuple[Connection, Connection]:
    c = client.usr6.attach(wire.now)
    assert client.usr6.connect(c, (addr, PORT, 0, scope), wire.now) == 0
    wire.pump()
    assert c.state == State.ESTABLISHED
    got = server.usr6.accept(lst, wire.now)
    assert got is not None
    return c, got[0]


def transfer(wire: Wire, nodes: tuple[Node, Node], snd: Connection, rcv: Connection, data: bytes) -> bytes:
    sender, receiver = nodes
    out = bytearray()
    sent = 0
    for _ in range(100_000):
        if sent < len(data):
            n = sender.usr6.send(snd, memoryview(data)[sent:sent + 65536], None, wire.now)
            sent += max(n, 0)
        wire.pump()
        while (got := receiver.usr6.recv(rcv, 1 << 20, False, wire.now)) is not None:
            out += got[0]
        wire.pump()
        if len(out) == len(data):
            return bytes(out)
        run_timers(wire, nodes, wire.now + 0.05)
    raise AssertionError(f"stalled at {len(out)} of {len(data)}")


# --- handshake and bulk data --------------------------------------------------------------------------
def test_handshake_and_1mib_transfer_over_ipv6_with_sha256() -> None:
    wire, a, b = pair()
    lst = listen6(b)
    c, s = connect6(wire, a, b, lst)
    assert c.net6 and s.net6 and c.family == s.family == socket.AF_INET6
    assert a.usr6.sockaddr(c) == (A6, c.lport, 0, 0)
    assert a.usr6.peeraddr(c) == (B6, PORT, 0, 0)
    assert b.usr6.peeraddr(s) == (A6, c.lport, 0, 0)
    assert b.usr6.sockaddr(lst) == (0, PORT, 0, 0)
    data = random.Random(5).randbytes(1 << 20)
    got = transfer(wire, (a, b), c, s, data)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    # every segment went over IPv6 (no IPv4 frame crossed) and the tables stayed per family
    assert all(f.data[0] >> 4 == 6 for f in wire.log)
    assert not a.tcp.conns and not b.tcp.conns and len(a.tcp.conns6) == len(b.tcp.conns6) == 1
    # TCP_INFO works on the IPv6 connection: state ESTABLISHED, the MSS, bytes acked
    run_timers(wire, (a, b), wire.now + 1)             # the last delayed ACK
    info = a.usr6.getsockopt(c, socket.IPPROTO_TCP, socket.TCP_INFO, wire.now)
    assert isinstance(info, bytes) and info[0] == State.ESTABLISHED
    assert struct.unpack_from("<I", info, 8 + 4 * 2)[0] == c.mss == 1500 - 60 - 12     # tcpi_snd_mss
    assert c.bytes_acked == len(data)


def test_4mib_over_ipv6_through_loss_and_reordering_with_sha256() -> None:
    wire, a, b = pair()
    lst = listen6(b)
    c, s = connect6(wire, a, b, lst)
    wire.loss, wire.reorder = 0.02, 0.02
    data = random.Random(6).randbytes(4 << 20)
    got = transfer(wire, (a, b), c, s, data)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert wire.dropped > 50 and c.total_retrans > 0 and c.sack_ok     # recovery over IPv6 took place


def test_timestamps_sack_and_window_scale_negotiated_over_ipv6() -> None:
    wire, a, b = pair()
    lst = listen6(b)
    c, s = connect6(wire, a, b, lst)
    syn = next(p for p in v6_frames(wire, a) if p[ScapyTCP].flags == "S")
    names = {o[0] for o in syn[ScapyTCP].options}
    assert {"MSS", "SAckOK", "Timestamp", "WScale"} <= names
    assert c.ts_ok and c.sack_ok and s.ts_ok and s.sack_ok and c.snd_wscale == s.rcv_wscale


def test_closed_port_answers_rst_and_connect_is_refused() -> None:
    wire, a, b = pair()
    c = a.usr6.attach(wire.now)
    assert a.usr6.connect(c, (B6, 9, 0, 0), wire.now) == 0
    wire.pump()
    rst = [p for p in v6_frames(wire, b) if "R" in p[ScapyTCP].flags]
    assert len(rst) == 1 and rst[0].src == "2001:db8::1" and rst[0].dst == "2001:db8::2"
    assert b.tcp.stats.no_ports == 1 and b.tcp.stats.out_rsts == 1
    assert c.state == State.CLOSED and a.usr6.take_error(c) == errno.ECONNREFUSED


def test_segment_checksum_is_over_the_ipv6_pseudo_header() -> None:
    wire, a, b = pair()
    lst = listen6(b)
    c, s = connect6(wire, a, b, lst)
    a.usr6.send(c, memoryview(b"checksummed payload"), None, wire.now)
    wire.pump()
    for f in wire.log:
        pkt = IPv6(f.data)
        seg = bytes(pkt[ScapyTCP])
        # recomputed by scapy from the packet with the field zeroed: RFC 8200 §8.1
        redo = IPv6(f.data)
        del redo[ScapyTCP].chksum
        assert IPv6(bytes(redo))[ScapyTCP].chksum == pkt[ScapyTCP].chksum
        # and by hand: src + dst + 32-bit length + next header 6, folded with the segment
        words = sum(struct.unpack(f"!{len(f.data[8:40]) // 2}H", f.data[8:40])) + len(seg) + 6
        assert ones_sum(seg, words % 0xFFFF) == 0xFFFF
    # a segment whose checksum is wrong is dropped and counted
    bad = TcpRepr(c.lport, PORT, s.rcv_nxt, s.snd_nxt, ACK, 1000)
    raw = bytearray(20)
    bad.emit(raw, b"")
    struct.pack_into("!H", raw, 16, 0x1234)
    before = b.tcp.stats.in_csum_errors
    b.tcp.input6(PacketBuffer(bytes(raw)), Ip6Meta(A6, B6, 6, 64, 0, 0, b.eth0, 40, 0), wire.now)
    assert b.tcp.stats.in_csum_errors == before + 1


@pytest.mark.parametrize("mtu", [1500, 9000, 1280])
def test_syn_mss_is_path_mtu_minus_60(mtu: int) -> None:
    wire, a, b = pair(mtu=mtu)
    lst = listen6(b)
    connect6(wire, a, b, lst)
    syn, synack = (p for p in v6_frames(wire) if "S" in p[ScapyTCP].flags)
    assert dict(syn[ScapyTCP].options)["MSS"] == mtu - 60
    assert dict(synack[ScapyTCP].options)["MSS"] == mtu - 60


def test_ipv4_mss_is_still_mtu_minus_40() -> None:
    wire, a, b = pair()
    lst = b.usr.attach(wire.now)
    assert b.usr.bind(lst, (0, PORT), wire.now) == 0 and b.usr.listen(lst, 4, wire.now) == 0
    c = a.usr.attach(wire.now)
    assert a.usr.connect(c, (B4, PORT), wire.now) == 0
    wire.pump()
    syn = IP(wire.log[0].data)
    assert dict(syn[ScapyTCP].options)["MSS"] == 1460 and c.state == State.ESTABLISHED


# --- ICMPv6 errors -------------------------------------------------------------------------------------
def icmp6_from_router(node: Node, msg: Packet, quoted: bytes, now: float) -> None:
    """An ICMPv6 error from a router (2001:db8::fe) to `node` quoting one of its packets,
    through the real Ipv6 and Icmpv6 cores (checksum by scapy)."""
    pkt = bytes(IPv6(src="2001:db8::fe", dst="2001:db8::2") / msg / Raw(quoted[:1232]))
    node.ipv6.input(node.eth0, PacketBuffer(pkt), now)


def test_packet_too_big_lowers_the_mss_and_resends_at_the_new_size() -> None:
    wire, a, b = pair()
    lst = listen6(b)
    c, s = connect6(wire, a, b, lst)
    assert c.mss == 1500 - 60 - 12                      # timestamps on
    wire.down = True                                    # the data is "lost" beyond the router
    a.usr6.send(c, memoryview(bytes(20_000)), None, wire.now)
    data = [f for f in wire.log if f.src is a and len(f.data) > 1000]
    assert data and all(len(f.data) == 1500 for f in data)
    # a PTB quoting a sequence number not in flight is ignored (RFC 5927, issue 10)
    stale = bytearray(data[0].data)
    struct.pack_into("!I", stale, 44, sq.add(c.snd_una, -100_000))
    icmp6_from_router(a, ICMPv6PacketTooBig(mtu=1280), bytes(stale), wire.now)
    assert a.tcp.stats.out_of_window_icmps == 1 and c.mss == 1428
    # the real one: the Icmpv6 core lowers ipv6.pmtu (RFC 8201), TCP follows and resends
    wire.log.clear()
    icmp6_from_router(a, ICMPv6PacketTooBig(mtu=1280), data[0].data, wire.now)
    assert a.ipv6.pmtu.path_mtu(B6, 1500, wire.now) == 1280
    assert c.mss == 1280 - 60 - 12 and a.tcp.stats.pmtu_reductions == 1
    resent = [f for f in wire.log if f.src is a]
    assert resent and max(len(f.data) for f in resent) == 1280
    assert IPv6(resent[0].data)[ScapyTCP].seq == c.snd_una
    wire.down = False
    wire.queue.clear()
    got = bytearray()
    for _ in range(1000):                               # the stream goes on at the new size
        run_timers(wire, (a, b), wire.now + 0.2)
        while (r := b.usr6.recv(s, 1 << 20, False, wire.now)) is not None:
            got += r[0]
        if len(got) == 20_000:
            break
    assert bytes(got) == bytes(20_000)
    assert max(len(f.data) for f in wire.log if f.src is a) == 1280


def test_unreachable_during_connect_fails_it_with_ehostunreach() -> None:
    wire, a, b = pair()
    wire.down = True
    c = a.usr6.attach(wire.now)
    assert a.usr6.connect(c, (ip6_to_int("2001:db8::99"), PORT, 0, 0), wire.now) == 0
    syn = wire.log[-1].data
    # address unreachable (RFC 4443 §3.1 code 3): Linux EHOSTUNREACH, the connect ends
    icmp6_from_router(a, ICMPv6DestUnreach(code=3), syn, wire.now)
    assert c.state == State.CLOSED and a.usr6.take_error(c) == errno.EHOSTUNREACH
    assert a.tcp.stats.attempt_fails == 1 and not a.tcp.conns6


def test_port_unreachable_after_connect_is_a_soft_error_unless_recverr() -> None:
    wire, a, b = pair()
    lst = listen6(b)
    c, _ = connect6(wire, a, b, lst)
    wire.down = True
    a.usr6.send(c, memoryview(b"x" * 100), None, wire.now)
    seg = wire.log[-1].data
    icmp6_from_router(a, ICMPv6DestUnreach(code=4), seg, wire.now)
    assert c.state == State.ESTABLISHED and c.soft_error == errno.ECONNREFUSED and c.so_error == 0
    assert a.usr6.setsockopt(c, socket.IPPROTO_IPV6, 25, 1, wire.now) == 0        # IPV6_RECVERR
    icmp6_from_router(a, ICMPv6DestUnreach(code=4), seg, wire.now)
    assert a.usr6.take_error(c) == errno.ECONNREFUSED and c.state == State.ESTABLISHED


def test_icmpv6_error_for_no_connection_is_counted() -> None:
    wire, a, b = pair()
    fake = bytes(IPv6(src="2001:db8::2", dst="2001:db8::1") / ScapyTCP(sport=1, dport=2, seq=5))
    icmp6_from_router(a, ICMPv6DestUnreach(code=4), fake, wire.now)
    assert a.tcp.stats.icmp_no_conn == 1


# --- dual stack -------------------------------------------------------------------------------------
def test_dual_stack_listener_accepts_ipv4_with_mapped_sockaddrs() -> None:
    wire, a, b = pair()
    lst = listen6(b)                                     # :: with V6ONLY off (the default)
    assert b.usr6.getsockopt(lst, socket.IPPROTO_IPV6, IPV6_V6ONLY, wire.now) == 0
    c = a.usr.attach(wire.now)                          # a plain AF_INET client
    assert a.usr.connect(c, (B4, PORT), wire.now) == 0
    wire.pump()
    assert c.state == State.ESTABLISHED
    got = b.usr6.accept(lst, wire.now)
    assert got is not None
    s, peer = got
    assert peer == (v4_mapped(A4), c.lport, 0, 0)
    assert b.usr6.sockaddr(s) == (v4_mapped(B4), PORT, 0, 0)
    assert b.usr6.peeraddr(s) == (v4_mapped(A4), c.lport, 0, 0)
    # it runs over IPv4: 32-bit addresses in the IPv4 table, IPv4 frames on the wire
    assert not s.net6 and s.family == socket.AF_INET6 and (B4, PORT, A4, c.lport) in b.tcp.conns
    assert all(f.data[0] >> 4 == 4 for f in wire.log)
    a.usr.send(c, memoryview(b"hello over v4"), None, wire.now)
    wire.pump()
    assert b.usr6.recv(s, 100, False, wire.now) == (b"hello over v4", None)


def test_v6only_listener_refuses_ipv4() -> None:
    wire, a, b = pair()
    lst = listen6(b, v6only=True)
    c = a.usr.attach(wire.now)
    assert a.usr.connect(c, (B4, PORT), wire.now) == 0
    wire.pump()
    assert c.state == State.CLOSED and a.usr.take_error(c) == errno.ECONNREFUSED
    assert b.usr6.accept(lst, wire.now) is None
    # IPv6 still reaches it
    connect6(wire, a, b, lst)


def test_af_inet6_connect_to_a_mapped_address_runs_over_ipv4() -> None:
    wire, a, b = pair()
    lst = b.usr.attach(wire.now)
    assert b.usr.bind(lst, (0, PORT), wire.now) == 0 and b.usr.listen(lst, 4, wire.now) == 0
    c = a.usr6.attach(wire.now)
    assert a.usr6.connect(c, (v4_mapped(B4), PORT, 0, 0), wire.now) == 0
    wire.pump()
    assert c.state == State.ESTABLISHED and not c.net6
    assert a.usr6.peeraddr(c) == (v4_mapped(B4), PORT, 0, 0)
    assert a.usr6.sockaddr(c) == (v4_mapped(A4), c.lport, 0, 0)
    assert wire.log[0].data[0] >> 4 == 4
    got = b.usr.accept(lst, wire.now)
    assert got is not None and got[1] == (A4, c.lport)
    # IPV6_V6ONLY forbids it (Linux tcp_v6_connect: ENETUNREACH)
    d = a.usr6.attach(wire.now)
    assert a.usr6.setsockopt(d, socket.IPPROTO_IPV6, IPV6_V6ONLY, 1, wire.now) == 0
    assert a.usr6.connect(d, (v4_mapped(B4), PORT, 0, 0), wire.now) == errno.ENETUNREACH


@pytest.mark.parametrize("first, second, expect", [
    # (family, address, v6only) of two binds on one port, and the errno of the second
    ((4, 0, False), (6, 0, False), errno.EADDRINUSE),          # 0.0.0.0 vs dual ::
    ((4, 0, False), (6, 0, True), 0),                          # :: V6ONLY leaves IPv4 alone
    ((6, 0, False), (4, 0, False), errno.EADDRINUSE),
    ((6, 0, False), (4, A4, False), errno.EADDRINUSE),         # dual :: covers every IPv4 address
    ((6, 0, True), (4, A4, False), 0),
    ((6, 0, True), (6, 0, True), errno.EADDRINUSE),            # two :: always conflict
    ((6, A6, False), (4, 0, False), 0),                        # a specific IPv6 address is IPv6-only
    ((6, A6, False), (6, 0, False), errno.EADDRINUSE),
    ((6, A6, False), (6, A6, False), errno.EADDRINUSE),
    ((6, "m", False), (4, A4, False), errno.EADDRINUSE),       # ::ffff:10.0.0.2 is 10.0.0.2
    ((4, A4, False), (6, "m", False), errno.EADDRINUSE),
    ((4, A4, False), (6, A6, False), 0),
    ((6, "m", False), (6, 0, True), 0),                        # mapped vs :: V6ONLY
])
def test_bind_conflicts_across_families(first: tuple[int, object, bool], second: tuple[int, object, bool],
                                        expect: int) -> None:
    wire, a, _ = pair()

    def bind(spec: tuple[int, object, bool]) -> int:
        fam, addr, v6only = spec
        if fam == 4:
            pcb = a.usr.attach(wire.now)
            assert isinstance(addr, int)
            return a.usr.bind(pcb, (addr, PORT), wire.now)
        pcb = a.usr6.attach(wire.now)
        if v6only:
            assert a.usr6.setsockopt(pcb, socket.IPPROTO_IPV6, IPV6_V6ONLY, 1, wire.now) == 0
        addr6 = v4_mapped(A4) if addr == "m" else addr
        assert isinstance(addr6, int)
        return a.usr6.bind(pcb, (addr6, PORT, 0, 0), wire.now)

    assert bind(first) == 0
    assert bind(second) == expect


def test_bind_rules_of_af_inet6() -> None:
    wire, a, _ = pair()
    now = wire.now
    p = a.usr6.attach(now)
    assert a.usr6.bind(p, (ip6_to_int("2001:db8::77"), 0, 0, 0), now) == errno.EADDRNOTAVAIL
    assert a.usr6.bind(p, (A6, 0, 0, 0), now) == 0
    assert a.usr6.getsockopt(p, socket.IPPROTO_IPV6, IPV6_V6ONLY, now) == 1   # Linux sets sk_ipv6only
    assert a.usr6.setsockopt(p, socket.IPPROTO_IPV6, IPV6_V6ONLY, 0, now) == errno.EINVAL   # bound
    assert a.usr6.bind(p, (A6, 0, 0, 0), now) == errno.EINVAL                 # already bound
    q = a.usr6.attach(now)
    assert a.usr6.setsockopt(q, socket.IPPROTO_IPV6, IPV6_V6ONLY, 1, now) == 0
    assert a.usr6.bind(q, (v4_mapped(A4), 0, 0, 0), now) == errno.EINVAL      # mapped with V6ONLY
    # link-local: a scope id naming the interface that has the address
    r = a.usr6.attach(now)
    assert a.usr6.bind(r, (A_LL, 0, 0, 0), now) == errno.EINVAL
    assert a.usr6.bind(r, (A_LL, 0, 0, 77), now) == errno.ENODEV
    assert a.usr6.bind(r, (A_LL, 0, 0, a.eth0.index), now) == 0
    assert a.usr6.sockaddr(r) == (A_LL, r.lport, 0, a.eth0.index)
    # IPv6 options are ENOPROTOOPT on an AF_INET socket, as on Linux
    v4 = a.usr.attach(now)
    assert a.usr.setsockopt(v4, socket.IPPROTO_IPV6, IPV6_V6ONLY, 1, now) == errno.ENOPROTOOPT
    # group memberships are a datagram socket's: a TCP one says EPROTO once the struct
    # ipv6_mreq is whole, EINVAL before (Linux do_ipv6_setsockopt; the differential table)
    mreq = bytes(16) + bytes(4)
    for opt in (socket.IPV6_JOIN_GROUP, socket.IPV6_LEAVE_GROUP):
        assert a.usr6.setsockopt(q, socket.IPPROTO_IPV6, opt, mreq, now) == errno.EPROTO
        assert a.usr6.setsockopt(q, socket.IPPROTO_IPV6, opt, mreq[:8], now) == errno.EINVAL
        assert a.usr6.setsockopt(q, socket.IPPROTO_IPV6, opt, 1, now) == errno.EINVAL
        assert a.usr.setsockopt(v4, socket.IPPROTO_IPV6, opt, mreq, now) == errno.ENOPROTOOPT


def test_unbound_af_inet6_names() -> None:
    wire, a, _ = pair()
    p = a.usr6.attach(wire.now)
    assert a.usr6.sockaddr(p) == (0, 0, 0, 0) and a.usr6.peeraddr(p) is None


def test_link_local_connect_needs_a_scope_id() -> None:
    wire, a, b = pair()
    lst = listen6(b)
    c = a.usr6.attach(wire.now)
    assert a.usr6.connect(c, (B_LL, PORT, 0, 0), wire.now) == errno.EINVAL
    assert a.usr6.connect(c, (B_LL, PORT, 0, 99), wire.now) == errno.ENETUNREACH   # as Linux: no route
    # ... and the socket stays bound to that missing interface (Linux's sk_bound_dev_if)
    assert a.usr6.connect(c, (B6, PORT, 0, 0), wire.now) == errno.ENETUNREACH
    assert a.usr6.connect(c, (v4_mapped(B4), PORT, 0, 0), wire.now) == errno.ENETUNREACH
    assert a.usr6.connect(c, (B_LL, PORT, 0, a.eth0.index), wire.now) == errno.EINVAL
    assert a.usr6.sockaddr(c) == (0, 0, 0, 0)
    c2, s = connect6(wire, a, b, lst, addr=B_LL, scope=a.eth0.index)
    assert a.usr6.sockaddr(c2) == (A_LL, c2.lport, 0, a.eth0.index)
    assert a.usr6.peeraddr(c2) == (B_LL, PORT, 0, a.eth0.index)
    # the accepted side is bound to the interface the SYN came in by
    assert b.usr6.peeraddr(s) == (A_LL, c2.lport, 0, b.eth0.index)
    a.usr6.send(c2, memoryview(b"link-local"), None, wire.now)
    wire.pump()
    assert b.usr6.recv(s, 100, False, wire.now) == (b"link-local", None)


def test_connect_errors_of_af_inet6() -> None:
    wire, a, _ = pair()
    now = wire.now
    assert a.usr6.connect(a.usr6.attach(now), (ip6_to_int("ff02::1"), PORT, 0, 1), now) == errno.ENETUNREACH
    assert a.usr6.connect(a.usr6.attach(now), (ip6_to_int("2001:db9::1"), PORT, 0, 0), now) == errno.ENETUNREACH


# --- options -----------------------------------------------------------------------------------------
def test_hop_limit_and_traffic_class_options_reach_the_wire() -> None:
    wire, a, b = pair()
    lst = listen6(b)
    c = a.usr6.attach(wire.now)
    assert a.usr6.getsockopt(c, socket.IPPROTO_IPV6, IPV6_UNICAST_HOPS, wire.now) == 64
    assert a.usr6.setsockopt(c, socket.IPPROTO_IPV6, IPV6_UNICAST_HOPS, 7, wire.now) == 0
    assert a.usr6.setsockopt(c, socket.IPPROTO_IPV6, IPV6_TCLASS, 0x28, wire.now) == 0
    assert a.usr6.getsockopt(c, socket.IPPROTO_IPV6, IPV6_TCLASS, wire.now) == 0x28
    assert a.usr6.setsockopt(c, socket.IPPROTO_IPV6, 18, 3, wire.now) == errno.ENOPROTOOPT   # MULTICAST_HOPS
    assert a.usr6.connect(c, (B6, PORT, 0, 0), wire.now) == 0
    wire.pump()
    syn = v6_frames(wire, a)[0]
    assert syn.hlim == 7 and syn.tc == 0x28
    assert b.usr6.accept(lst, wire.now) is not None


# --- RFC 5961, keepalive --------------------------------------------------------------------------
def test_in_window_rst_gets_a_challenge_ack_over_ipv6() -> None:
    wire, a, b = pair()
    lst = listen6(b)
    c, s = connect6(wire, a, b, lst)
    wire.log.clear()
    rst = TcpRepr(c.lport, PORT, sq.add(s.rcv_nxt, 10), 0, 0x04, 0)
    raw = bytearray(20)
    rst.emit(raw, b"")
    struct.pack_into("!H", raw, 16, checksum(raw, pseudo6(A6, B6, 6, 20)))
    b.tcp.input6(PacketBuffer(bytes(raw)), Ip6Meta(A6, B6, 6, 64, 0, 0, b.eth0, 40, 0), wire.now)
    assert s.state == State.ESTABLISHED                 # RFC 5961 §3.2: not exact, not reset
    acks = v6_frames(wire, b)
    assert len(acks) == 1 and acks[0][ScapyTCP].flags == "A" and acks[0][ScapyTCP].ack == s.rcv_nxt


def test_keepalive_probes_over_ipv6() -> None:
    wire, a, b = pair()
    lst = listen6(b)
    c, s = connect6(wire, a, b, lst)
    a.usr6.setsockopt(c, socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1, wire.now)
    a.usr6.setsockopt(c, socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 10, wire.now)
    wire.log.clear()
    run_timers(wire, (a, b), wire.now + 11)
    probe = [p for p in v6_frames(wire, a) if p[ScapyTCP].seq == sq.add(c.snd_una, -1)]
    assert probe and c.state == State.ESTABLISHED       # answered by the peer's ACK


# --- SYN cookies -----------------------------------------------------------------------------------------
class RawPeer:
    """Hand-built IPv6 segments from 2001:db8::1 to node a (b's addresses, b's core unused)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def send(self, flags: int, seq: int, ack: int = 0, sport: int = 40000, payload: bytes = b"", **opts: object
             ) -> None:
        seg = TcpRepr(sport, PORT, seq, ack, flags, 0xFFFF, **opts)   # type: ignore[arg-type]
        o = seg.options_bytes()
        raw = bytearray(20 + len(o)) + payload
        seg.emit(raw, o)
        struct.pack_into("!H", raw, 16, checksum(raw, pseudo6(B6, A6, 6, len(raw))))
        self.node.tcp.input6(PacketBuffer(bytes(raw)), Ip6Meta(B6, A6, 6, 64, 0, 0, self.node.eth0, 40, 0),
                             self.node.wire.now)


def test_syn_cookies_over_ipv6() -> None:
    wire, a, b = pair(syncookies=True)
    a.peer = None                                        # a's replies are only logged
    lst = listen6(a, backlog=1)
    peer = RawPeer(a)
    peer.send(SYN, 1000, sport=40000, mss=1440)          # fills the SYN queue (backlog 1)
    peer.send(SYN, 5000, sport=40001, mss=1440)          # answered with a cookie
    assert a.tcp.stats.syncookies_sent == 1
    synacks = [IPv6(f.data) for f in wire.log if "S" in IPv6(f.data)[ScapyTCP].flags]
    cookie = synacks[-1][ScapyTCP]
    assert cookie.dport == 40001 and dict(cookie.options)["MSS"] == 1440
    assert len(a.tcp.conns6) == 1                        # no state for the cookie's SYN
    peer.send(ACK, 5001, sq.add(cookie.seq, 1), sport=40001, payload=b"after the cookie")
    assert a.tcp.stats.syncookies_recv == 1
    child = a.tcp.conns6[(A6, PORT, B6, 40001)]
    assert child.state == State.ESTABLISHED and child.cookie and child.peer_mss == 1440
    assert a.tcp.stats.syncookies_failed == 0
    # a forged cookie is reset
    peer.send(ACK, 9001, 12345, sport=40002)
    assert a.tcp.stats.syncookies_failed == 1
    assert a.usr6.accept(lst, wire.now) is not None


def test_cookies_and_isns_are_per_family() -> None:
    wire, a, _ = pair(syncookies=True)
    c = a.tcp.cookies
    isn, _ = c.make(1, 80, 2, 40000, 777, 1460, wire.now, v6=True)
    seg = TcpRepr(40000, 80, 778, sq.add(isn, 1), ACK, 0)
    assert c.check(1, 80, 2, 40000, seg, wire.now, v6=True) == 1460
    assert c.check(1, 80, 2, 40000, seg, wire.now) is None    # ::1 is not 0.0.0.1
    assert a.tcp.isn((1, 80, 2, 40000), wire.now) != a.tcp.isn((1, 80, 2, 40000), wire.now, b"isn6")


# --- offloads ---------------------------------------------------------------------------------------------
def test_tso_super_segments_are_marked_gso_tcpv6() -> None:
    caps = DeviceCaps(mtu=1500, tx_csum_offload=True, tso_max=65535)
    wire, a, b = pair(caps=caps, sndbuf=1 << 20)
    lst = listen6(b)
    c, s = connect6(wire, a, b, lst)
    wire.log.clear()
    c.cc.cwnd = 1 << 20
    data = random.Random(2).randbytes(200_000)
    a.usr6.send(c, memoryview(data), None, wire.now)
    supers: list[Frame] = [f for f in wire.log if f.src is a and f.gso_size]
    assert supers
    for f in supers:
        assert f.gso_type == GSO_TCPV6 and f.gso_size == c.mss
        payload_len = struct.unpack_from("!H", f.data, 4)[0]
        assert payload_len <= 65535 and payload_len - 32 > c.mss     # several segments in one
        assert f.csum_start == 40                                    # partial checksum at the TCP header
        field = struct.unpack_from("!H", f.data, 40 + 16)[0]
        assert field == pseudo6(A6, B6, 6, payload_len)              # the pseudo-header sum, for the device
    got = bytearray()
    for _ in range(1000):                                # the device finishes the checksums: all arrives
        wire.pump()
        while (r := b.usr6.recv(s, 1 << 20, False, wire.now)) is not None:
            got += r[0]
        if len(got) == len(data):
            break
        run_timers(wire, (a, b), wire.now + 0.05)
    assert bytes(got) == data


def test_gso_tcpv6_super_frame_in_is_one_segment() -> None:
    wire, a, b = pair()
    a.peer = None
    lst = listen6(a)
    peer = RawPeer(a)
    peer.send(SYN, 1000, mss=1440)
    synack = IPv6(wire.log[-1].data)[ScapyTCP]
    peer.send(ACK, 1001, sq.add(synack.seq, 1))
    got = a.usr6.accept(lst, wire.now)
    assert got is not None
    conn = got[0]
    # a 4-segment super-frame as the kernel hands it with NEEDS_CSUM: only the pseudo sum in the field
    payload = bytes(range(256)) * 22
    seg = TcpRepr(40000, PORT, 1001, sq.add(synack.seq, 1), ACK, 0xFFFF)
    raw = bytearray(20) + payload
    seg.emit(raw, b"")
    struct.pack_into("!H", raw, 16, pseudo6(B6, A6, 6, len(raw)))
    pkt = PacketBuffer(bytes(raw))
    pkt.gso_size, pkt.gso_type, pkt.csum_valid = 1440, GSO_TCPV6, True
    a.tcp.input6(pkt, Ip6Meta(B6, A6, 6, 64, 0, 0, a.eth0, 40, 0), wire.now)
    assert a.usr6.recv(conn, 1 << 16, False, wire.now) == (payload, None)


def test_af_inet6_socket_goes_back_to_ipv6_after_a_failed_mapped_connect() -> None:
    wire, a, b = pair()
    lst = listen6(b)
    c = a.usr6.attach(wire.now)
    assert a.usr6.connect(c, (v4_mapped(B4), 9, 0, 0), wire.now) == 0     # nothing listens on 9
    wire.pump()
    assert a.usr6.take_error(c) == errno.ECONNREFUSED and not c.net6
    a.usr6.abandon_connect(c, wire.now)
    assert a.usr6.connect(c, (B6, PORT, 0, 0), wire.now) == 0
    wire.pump()
    assert c.state == State.ESTABLISHED and c.net6 and a.usr6.sockaddr(c)[0] == A6
    assert b.usr6.accept(lst, wire.now) is not None


def test_time_exceeded_during_connect_ends_it_as_linux_tcp_v6_err() -> None:
    # Linux tcp_v6_err ends a connect in SYN-SENT on any ICMPv6 error, not only the "fatal"
    # ones of icmpv6_err_convert: a Time Exceeded gives EHOSTUNREACH at once
    wire, a, _ = pair()
    wire.down = True
    c = a.usr6.attach(wire.now)
    assert a.usr6.connect(c, (ip6_to_int("2001:db8::99"), PORT, 0, 0), wire.now) == 0
    icmp6_from_router(a, ICMPv6TimeExceeded(code=0), wire.log[-1].data, wire.now)
    assert c.state == State.CLOSED and a.usr6.take_error(c) == errno.EHOSTUNREACH


def test_link_local_syn_to_a_closed_port_is_reset_on_its_interface() -> None:
    wire, a, b = pair()
    c = a.usr6.attach(wire.now)
    assert a.usr6.connect(c, (B_LL, 9, 0, a.eth0.index), wire.now) == 0
    wire.pump()
    rst = [p for p in v6_frames(wire, b) if "R" in p[ScapyTCP].flags]
    assert len(rst) == 1 and rst[0].src == "fe80::1" and rst[0].dst == "fe80::2"
    assert a.usr6.take_error(c) == errno.ECONNREFUSED


def test_listen_conflict_across_families_with_reuseaddr() -> None:
    wire, a, _ = pair()
    now = wire.now
    v4 = a.usr.attach(now)
    v6 = a.usr6.attach(now)
    for usr, pcb, addr in ((a.usr, v4, (0, PORT)), (a.usr6, v6, (0, PORT, 0, 0))):
        assert usr.setsockopt(pcb, socket.SOL_SOCKET, socket.SO_REUSEADDR, 1, now) == 0
        assert usr.bind(pcb, addr, now) == 0            # both SO_REUSEADDR, neither listening
    assert a.usr.listen(v4, 4, now) == 0
    assert a.usr6.listen(v6, 4, now) == errno.EADDRINUSE   # :: would take 0.0.0.0's IPv4 SYNs
    assert a.tcp.listeners6 == {}


def test_closed_ipv6_connections_leave_the_tables_and_free_the_port() -> None:
    wire, a, b = pair()
    lst = listen6(b)
    c, s = connect6(wire, a, b, lst)
    a.usr6.detach(c, wire.now)                          # active close: a goes through TIME-WAIT
    wire.pump()
    b.usr6.detach(s, wire.now)
    wire.pump()
    assert c.state == State.TIME_WAIT and s.state == State.CLOSED
    run_timers(wire, (a, b), wire.now + 121)            # 2 MSL
    assert c.state.name == "CLOSED"          # (after TIME-WAIT)
    assert not a.tcp.conns6 and not b.tcp.conns6 and c.lport not in a.tcp.ports
    b.usr6.detach(lst, wire.now)
    assert not b.tcp.listeners6 and PORT not in b.tcp.ports


def test_syn_to_time_wait_with_a_listener_reuses_it_over_ipv6() -> None:
    wire, a, b = pair()
    lst = listen6(b)
    c, s = connect6(wire, a, b, lst)
    b.usr6.detach(s, wire.now)                          # the server closes first: it holds TIME-WAIT
    wire.pump()
    a.usr6.detach(c, wire.now)
    wire.pump()
    assert s.state == State.TIME_WAIT
    d = a.usr6.attach(wire.now)
    assert a.usr6.bind(d, (0, c.lport, 0, 0), wire.now) == 0
    a.tcp.isn = lambda key, now, tag=b"isn": sq.add(s.rcv_nxt, 100_000)   # type: ignore[method-assign]
    assert a.usr6.connect(d, (B6, PORT, 0, 0), wire.now) == 0
    wire.pump()
    assert d.state == State.ESTABLISHED and s.state.name == "CLOSED"   # RFC 6191


def test_explicitly_bound_dual_socket_retries_over_ipv6_after_a_failed_mapped_connect() -> None:
    wire, a, b = pair()
    lst = listen6(b)
    c = a.usr6.attach(wire.now)
    assert a.usr6.bind(c, (0, 5555, 0, 0), wire.now) == 0                    # ::, port 5555
    assert a.usr6.connect(c, (v4_mapped(B4), 9, 0, 0), wire.now) == 0
    wire.pump()
    assert a.usr6.take_error(c) == errno.ECONNREFUSED
    a.usr6.abandon_connect(c, wire.now)
    assert a.usr6.connect(c, (B6, PORT, 0, 0), wire.now) == 0
    wire.pump()
    assert c.state == State.ESTABLISHED and a.usr6.sockaddr(c) == (A6, 5555, 0, 0)
    assert b.usr6.accept(lst, wire.now) is not None
    # bound to a v4-mapped address, a socket stays IPv4 (Linux ip6_dst_lookup_tail: EAFNOSUPPORT)
    d = a.usr6.attach(wire.now)
    assert a.usr6.bind(d, (v4_mapped(A4), 0, 0, 0), wire.now) == 0
    assert a.usr6.sockaddr(d) == (v4_mapped(A4), d.lport, 0, 0)
    assert a.usr6.getsockopt(d, socket.IPPROTO_IPV6, IPV6_V6ONLY, wire.now) == 0
    assert a.usr6.connect(d, (B6, PORT, 0, 0), wire.now) == errno.EAFNOSUPPORT


# --- bad input is data -------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=120), mcast=st.booleans(), csum_valid=st.booleans())
def test_input6_never_raises_on_arbitrary_segments(data: bytes, mcast: bool, csum_valid: bool) -> None:
    wire, a, _ = pair()
    a.peer = None
    listen6(a)
    pkt = PacketBuffer(data)
    pkt.csum_valid = csum_valid
    before = a.tcp.stats.in_segs
    a.tcp.input6(pkt, Ip6Meta(B6, A6, 6, 64, 0, 0, a.eth0, 40, 0, mcast=mcast), wire.now)
    assert a.tcp.stats.in_segs == before + 1


@settings(max_examples=200, deadline=None)
@given(quote=st.binary(max_size=40), ours=st.booleans(), seq_off=st.integers(-3, 3) | st.integers(0, 2**32 - 1),
       type_=st.sampled_from([1, 2, 3, 4]), code=st.integers(0, 8))
def test_ctlinput6_never_raises_and_acts_only_on_our_window(quote: bytes, ours: bool, seq_off: int, type_: int,
                                                             code: int) -> None:
    wire, a, b = pair()
    lst = listen6(b)
    c, _ = connect6(wire, a, b, lst)
    if ours:                                             # our ports, a sequence number near SND.UNA
        quote = struct.pack("!HHI", c.lport, PORT, sq.add(c.snd_una, seq_off)) + quote
    a.tcp.ctlinput6(Icmpv6Error(type_, code, errno.EHOSTUNREACH, False, 0, A6, B6, 6, quote, 1280), wire.now)
    in_window = ours and seq_off == 0                    # nothing in flight: SND.UNA == SND.MAX
    assert c.state == State.ESTABLISHED
    assert (c.soft_error == errno.EHOSTUNREACH) == (in_window and type_ != 2)


@pytest.mark.parametrize("pmtudisc, follows", [(1, True), (2, True), (4, False), (5, False)])
def test_packet_too_big_is_ignored_by_pmtudisc_interface_and_omit(pmtudisc: int, follows: bool) -> None:
    wire, a, b = pair()
    lst = listen6(b)
    c, _ = connect6(wire, a, b, lst)
    assert a.usr6.setsockopt(c, socket.IPPROTO_IPV6, 23, pmtudisc, wire.now) == 0     # IPV6_MTU_DISCOVER
    wire.down = True
    a.usr6.send(c, memoryview(bytes(5000)), None, wire.now)
    icmp6_from_router(a, ICMPv6PacketTooBig(mtu=1280), wire.log[-1].data, wire.now)
    assert (c.mss == 1280 - 72) == follows
    a.usr6.send(c, memoryview(bytes(5000)), None, wire.now)
    run_timers(wire, (a, b), wire.now + 2)              # retransmissions and new data alike
    assert c.mss == (1280 - 72 if follows else 1500 - 72)
    assert max(len(f.data) for f in wire.log[-3:]) == (1280 if follows else 1500)


def test_neighbor_discovery_failure_fails_the_connect_with_ehostunreach() -> None:
    # the SYN waited for a neighbour that never answered (RFC 4861 §7.3.3): the IPv6 layer
    # reports it as a local address unreachable, which ends the connect as on Linux
    wire, a, _ = pair()
    wire.down = True
    c = a.usr6.attach(wire.now)
    assert a.usr6.connect(c, (ip6_to_int("2001:db8::99"), PORT, 0, 0), wire.now) == 0
    a.ipv6.unreachable_from_link(PacketBuffer(wire.log[-1].data), wire.now + 3)
    assert c.state == State.CLOSED and a.usr6.take_error(c) == errno.EHOSTUNREACH


def test_one_dual_stack_listener_serves_both_families_at_once() -> None:
    wire, a, b = pair()
    lst = listen6(b)
    c6, s6 = connect6(wire, a, b, lst)
    c4 = a.usr.attach(wire.now)
    assert a.usr.connect(c4, (B4, PORT), wire.now) == 0
    wire.pump()
    got = b.usr6.accept(lst, wire.now)
    assert got is not None
    s4 = got[0]
    assert (s4.net6, s6.net6) == (False, True)
    assert list(b.tcp.conns) == [(B4, PORT, A4, c4.lport)] and list(b.tcp.conns6) == [(B6, PORT, A6, c6.lport)]
    for usr, c, s, text in ((a.usr, c4, s4, b"four"), (a.usr6, c6, s6, b"six")):
        usr.send(c, memoryview(text), None, wire.now)
        wire.pump()
        assert b.usr6.recv(s, 100, False, wire.now) == (text, None)


def test_a_learnt_path_mtu_sizes_the_next_connections_syn_mss() -> None:
    # Linux advertises dst_mtu - 60: a path MTU below the link's lowers the SYN's MSS too
    wire, a, b = pair()
    listen6(b)
    a.ipv6.pmtu.update(B6, 1400, 1500, wire.now)
    c = a.usr6.attach(wire.now)
    assert a.usr6.connect(c, (B6, PORT, 0, 0), wire.now) == 0
    syn = v6_frames(wire, a)[0]
    assert dict(syn[ScapyTCP].options)["MSS"] == 1340


def test_segments_that_came_as_link_layer_broadcast_are_dropped() -> None:
    wire, a, _ = pair()
    listen6(a)
    a.peer = None
    seg = TcpRepr(40000, PORT, 1000, 0, SYN, 0xFFFF)
    raw = bytearray(20)
    seg.emit(raw, b"")
    struct.pack_into("!H", raw, 16, checksum(raw, pseudo6(B6, A6, 6, 20)))
    pkt = PacketBuffer(bytes(raw))
    pkt.ll_bcast = True
    a.tcp.input6(pkt, Ip6Meta(B6, A6, 6, 64, 0, 0, a.eth0, 40, 0), wire.now)
    assert a.tcp.stats.in_errs == 1 and not a.tcp.conns6 and not wire.log
