"""Two dual-stack hosts for TCP over IPv6 tests: each a Tcp core over a real Ipv4 core (the
recording fake host of fakes.py) and a real Ipv6 core (with lambdas for is_ours, route and
source_candidates, as test_ipv6_ip6.py builds it) and an Icmpv6 core, registered in the protocol
switch the way the Stack will (AF_INET "tcp" and AF_INET6 "tcp6" entries).  Their eth0
interfaces are joined by a wire: what one side's link outputs is queued for the other side's
IPv4 or IPv6 input (by the version nibble) and `pump` delivers it.  Every frame that crossed
is kept in `wire.log` for the tests to parse independently (scapy).  Explicit clock, no trio."""
from __future__ import annotations

import errno
import random
import socket
from collections import deque
from dataclasses import dataclass
from typing import Any

from ndd import gso
from ndd.ndd import DeviceCaps
from ndd.pktbuf import PacketBuffer
from protocols.contracts import PR_CONNREQUIRED, Protosw
from protocols.icmpv6.core import Icmpv6
from protocols.ifnet import Interface
from protocols.ipv4 import IPPROTO_TCP
from protocols.ipv6.addr import ALL_NODES, SourceCandidate, in_prefix, ip6_to_int
from protocols.ipv6.ip6 import Ipv6
from protocols.ipv6.route import needs_scope_id
from protocols.tcp.conn import TcpConfig
from protocols.tcp.tcp import Tcp
from protocols.tcp.usrreq import TcpUserRequests

from .fakes import make_host, rx

T0 = 1000.0
NET6 = ip6_to_int("2001:db8::")


@dataclass
class Frame:
    """One packet that crossed the wire, as the sender's link output saw it."""
    src: Node
    data: bytes
    gso_type: int
    gso_size: int
    csum_start: int          # relative to the IP header, -1 when the checksum is complete


@dataclass(frozen=True)
class NextHop:
    ifp: Interface
    nexthop: int
    source: int | None = None


class Wire:
    def __init__(self) -> None:
        self.queue: deque[tuple[Node, PacketBuffer]] = deque()
        self.log: list[Frame] = []
        self.down = False          # drop everything (an unanswered connect)
        self.now = T0
        self.loss = 0.0            # drop this share of packets ...
        self.reorder = 0.0         # ... and put this share ahead of the one queued before it
        self.rng = random.Random(9)
        self.dropped = 0

    def pump(self, limit: int = 100_000) -> None:
        """Deliver until nothing is in flight (each delivery may queue replies)."""
        for _ in range(limit):
            if not self.queue:
                return
            dst, pkt = self.queue.popleft()
            if pkt.view()[0] >> 4 == 6:
                dst.ipv6.input(dst.eth0, pkt, self.now)
            else:
                dst.host.ipv4.input(dst.eth0, pkt, self.now)
        raise AssertionError("the wire never went quiet")


class Node:
    def __init__(self, wire: Wire, v4: str, v6: str, ll: str, *, seed: int, mtu: int = 1500,
                 caps: DeviceCaps | None = None, **cfg: Any) -> None:
        self.wire = wire
        self.host = make_host(addr=v4, mtu=mtu, seed=seed)
        self.eth0 = self.host.eth0
        self.eth0.ndd.caps = caps or DeviceCaps(mtu=mtu)
        self.v6, self.ll = ip6_to_int(v6), ip6_to_int(ll)
        self.peer: Node | None = None
        self.candidates = [SourceCandidate(self.v6, 64, ifindex=self.eth0.index),
                           SourceCandidate(self.ll, 64, ifindex=self.eth0.index)]
        protosw = self.host.protosw
        protosw.add_domain(socket.AF_INET6, "internet6")
        eth0 = self.eth0

        def route(dst: int, now: float, oif: Interface | None) -> NextHop | int:
            if needs_scope_id(dst):
                return NextHop(oif, dst) if oif is not None else errno.EINVAL
            if in_prefix(dst, NET6, 64):
                return NextHop(oif or eth0, dst)
            return errno.ENETUNREACH

        def source_candidates(ifp: Interface | None, now: float) -> list[SourceCandidate]:
            return [c for c in self.candidates if ifp is None or c.ifindex == ifp.index]

        self.ipv6 = Ipv6(protosw, is_ours=lambda ifp, dst: dst in (self.v6, self.ll, ALL_NODES), route=route,
                         source_candidates=source_candidates, rng=random.Random(seed))
        self.icmp6 = Icmpv6(self.ipv6, rng=random.Random(seed), random_cost=False)
        protosw.add(socket.AF_INET6, Protosw("icmpv6", socket.SOCK_RAW, 58, input=self.icmp6.input,
                                             ctlinput=self.icmp6.ctlinput, core=self.icmp6))
        self.tcp = Tcp(self.host.ipv4, random.Random(seed), lambda: wire.now, TcpConfig(**cfg), ipv6=self.ipv6)
        self.usr = TcpUserRequests(self.tcp)
        self.usr6 = TcpUserRequests(self.tcp, family=socket.AF_INET6)
        protosw.add(socket.AF_INET, Protosw("tcp", socket.SOCK_STREAM, IPPROTO_TCP, input=self.tcp.input,
                                            ctlinput=self.tcp.ctlinput, usrreqs=self.usr,
                                            flags=PR_CONNREQUIRED, core=self.tcp))
        protosw.add(socket.AF_INET6, Protosw("tcp6", socket.SOCK_STREAM, IPPROTO_TCP, input=self.tcp.input6,
                                             ctlinput=self.tcp.ctlinput6, usrreqs=self.usr6,
                                             flags=PR_CONNREQUIRED, core=self.tcp))
        self.eth0.link = self                           # link output: onto the wire

    def cached_header(self, nexthop: int) -> bytes | None:
        return None                   # contracts.LinkOutput: no header ready, output() each time

    def cached_header6(self, nexthop: int, src: int, now: float) -> bytes | None:
        return None

    def output(self, pkt: PacketBuffer, nexthop: int, now: float) -> int:
        """What the device gets (ndd/gso.py cuts super-segments and finishes checksums the
        device would not), onto the wire."""
        frames = gso.frames_for(pkt, self.eth0.ndd.caps)
        assert frames is not None, "a super-segment the device layer cannot cut"
        for frame in frames:
            self._onto_wire(frame)
        return 0

    def _onto_wire(self, pkt: PacketBuffer) -> None:
        start = pkt.csum_start - pkt.start if pkt.csum_start >= 0 else -1
        self.wire.log.append(Frame(self, pkt.tobytes(), pkt.gso_type, pkt.gso_size, start))
        wire = self.wire
        if wire.down or self.peer is None:
            return
        if wire.loss and wire.rng.random() < wire.loss:
            wire.dropped += 1
            return
        copy = pkt.copy()
        gso.finish_checksum(copy)                          # what the device does with a partial checksum
        wire.queue.append((self.peer, rx(copy.tobytes())))
        if wire.reorder and len(wire.queue) > 1 and wire.rng.random() < wire.reorder:
            wire.queue[-1], wire.queue[-2] = wire.queue[-2], wire.queue[-1]


def pair(*, mtu: int = 1500, caps: DeviceCaps | None = None, **cfg: Any) -> tuple[Wire, Node, Node]:
    """a (10.0.0.2, 2001:db8::2, fe80::2) and b (10.0.0.1, 2001:db8::1, fe80::1) on one wire."""
    wire = Wire()
    cfg.setdefault("loss_probes", False)
    a = Node(wire, "10.0.0.2", "2001:db8::2", "fe80::2", seed=1, mtu=mtu, caps=caps, **cfg)
    b = Node(wire, "10.0.0.1", "2001:db8::1", "fe80::1", seed=2, mtu=mtu, caps=caps, **cfg)
    a.peer, b.peer = b, a
    return wire, a, b


def run_timers(wire: Wire, nodes: tuple[Node, ...], until: float) -> None:
    """Advance the clock to `until`, firing every timer due on the way."""
    while True:
        due = [t for t in (n.tcp.poll_at() for n in nodes) if t is not None and t <= until]
        wire.now = min(due) if due else until
        for n in nodes:
            n.tcp.poll(wire.now)
        wire.pump()
        if not due:
            return
