"""TCP fuzz targets: two Stacks (A = 10.0.0.1 the client, B = 10.0.0.2 the server on port 80)
on a wire the input controls, each connection brought to its state by a real handshake.

The input then is a sequence of steps: deliver, drop, duplicate or reorder what is in
flight; a mutated copy of a real segment (checksums re-sealed); a segment crafted relative
to a connection's own sequence variables (in-window, just outside, SACK blocks around
SND.UNA, timestamps around TS.Recent); ICMP errors quoting a real segment; application
calls (send, recv, shutdown, close, abort, accept, keepalive); and time steps that fire
the timers.  After every step the TCB invariants of every connection are checked."""
from __future__ import annotations

import errno
import socket
import struct

from ndd.pktbuf import PacketBuffer
from protocols.tcp import seq as sq
from protocols.tcp.conn import Connection, TcpConfig
from protocols.tcp.state import SYNCHRONIZED, State
from protocols.tcp.usrreq import TcpUserRequests
from protocols.tcp.wire import ACK, FIN, PSH, RST, SYN, URG, TcpRepr

from . import check, target
from .harness import (
    IPPROTO_ICMP,
    IPPROTO_TCP,
    TIME_STEPS,
    CaptureNdd,
    ClockStack,
    Fdp,
    fix_checksums,
    ip_packet,
    mutate,
    pick,
    steps,
)

A_IP, B_IP, OTHER_IP = 0x0A000001, 0x0A000002, 0x0A000009
_PATTERN = bytes(range(251)) * 400          # byte k of a stream is k % 251 (a prime: no alignment)


def pattern(offset: int, n: int) -> bytes:
    start = offset % 251
    return _PATTERN[start:start + n]
PORT = 80
CONGESTION = ("cubic", "reno", "bbr")
FLAG_SETS = (SYN, ACK, SYN | ACK, RST, RST | ACK, FIN | ACK, PSH | ACK, FIN, FIN | PSH | ACK, SYN | FIN,
             URG | ACK, 0)


class TcpWorld:
    """Two stacks on one clock; `wire[i]` holds what stack i sent."""

    def __init__(self, backlog: int = 4, small_buffers: bool = False, congestion: str = "cubic") -> None:
        # small buffers reach the full-window, zero-window and persist paths in a few steps;
        # the congestion control is drawn too, so BBR, rate estimation and pacing are fuzzed
        cfg = TcpConfig(rcvbuf=6000, sndbuf=9000, congestion=congestion) if small_buffers \
            else TcpConfig(congestion=congestion)
        self.stacks = (ClockStack(seed=1, tcp=cfg), ClockStack(seed=2, tcp=cfg))
        self.ndds = (CaptureNdd("tun0"), CaptureNdd("tun1"))
        self.stacks[0].add_interface(self.ndds[0], "10.0.0.1/24")
        self.stacks[1].add_interface(self.ndds[1], "10.0.0.2/24")
        self.user = tuple(TcpUserRequests(s.tcp) for s in self.stacks)
        self.lst = self.user[1].attach(0.0)
        assert self.user[1].bind(self.lst, (0, PORT), 0.0) == 0 and self.user[1].listen(self.lst, backlog, 0.0) == 0
        self.cli: Connection = self.user[0].attach(0.0)
        self.srv: Connection | None = None
        self.cookie_seq = self.cookie_ack = 0      # the numbers an ACK of B's last SYN-ACK carries
        # the data oracle: each side's app sends the pattern stream, so what the other app
        # reads must be that stream at its offset -- unless foreign bytes may have entered
        # that side's stream (crafted or mutated segments: TCP accepts in-window spoofing)
        self.sent_off = [0, 0]
        self.recv_off = [0, 0]
        self.tainted = [False, False]

    @property
    def now(self) -> float:
        return self.stacks[0].t

    def tick(self, dt: float) -> None:
        for s in self.stacks:
            s.tick(dt)

    # --- the wire -------------------------------------------------------------------------------
    def inject(self, to: int, pkt: bytes) -> None:
        self.ndds[to].deliver(PacketBuffer(pkt))

    def deliver(self, frm: int, index: int = 0) -> None:
        out = self.ndds[frm].out
        if out:
            self.inject(1 - frm, out.pop(index % len(out)))

    def pump(self, limit: int = 64) -> None:
        for _ in range(limit):
            if not (self.ndds[0].out or self.ndds[1].out):
                return
            self.deliver(0)
            self.deliver(1)

    def connect(self) -> None:
        assert self.user[0].connect(self.cli, (B_IP, PORT), self.now) == 0

    def established(self) -> None:
        self.connect()
        self.pump()
        accepted = self.user[1].accept(self.lst, self.now)
        self.srv = accepted[0] if accepted is not None else None
        assert self.cli.state == State.ESTABLISHED and self.srv is not None

    # --- the application streams ----------------------------------------------------------------------
    def stream_end(self, side: int) -> Connection | None:
        """Side's end of the A<->B stream (B's: the accepted child of A's connection)."""
        if side == 0:
            return self.cli
        srv = self.srv
        if srv is not None and (srv.faddr, srv.fport) == (self.cli.laddr, self.cli.lport):
            return srv
        return None

    def app_send(self, side: int, c: Connection, n: int) -> None:
        if c is not self.stream_end(side):
            self.user[side].send(c, memoryview(bytes(n)), None, self.now)
            return
        off = self.sent_off[side]
        self.sent_off[side] += max(0, self.user[side].send(c, memoryview(pattern(off, n)), None, self.now))

    def app_recv(self, side: int, c: Connection, n: int, peek: bool) -> None:
        item = self.user[side].recv(c, n, peek, self.now)
        data = item[0] if item is not None else b""
        if c is not self.stream_end(side):
            return
        off = self.recv_off[side]
        if not self.tainted[side]:
            check(data == pattern(off, len(data)),
                  f"side {side} read {len(data)} bytes at offset {off} that are not what the peer sent")
        if not peek:
            self.recv_off[side] += len(data)

    # --- who is there ------------------------------------------------------------------------------
    def conns(self) -> list[tuple[int, Connection]]:
        found = [(i, c) for i, s in enumerate(self.stacks) for c in s.tcp.conns.values()]
        found.append((1, self.lst))
        return found

    def check_invariants(self) -> None:
        for _, c in self.conns():
            if c.state in SYNCHRONIZED or c.state in (State.SYN_SENT, State.SYN_RECEIVED):
                check(sq.le(c.snd_una, c.snd_nxt), f"{c}: snd_una {c.snd_una} > snd_nxt {c.snd_nxt}")
                check(sq.le(c.snd_nxt, c.snd_max), f"{c}: snd_nxt {c.snd_nxt} > snd_max {c.snd_max}")
                check(sq.diff(c.snd_max, c.snd_una) <= len(c.snd) + 2,
                      f"{c}: {sq.diff(c.snd_max, c.snd_una)} in flight, {len(c.snd)} buffered")
            check(len(c.rcv) <= c.rcv.capacity, f"{c}: receive buffer {len(c.rcv)} > {c.rcv.capacity}")
            check(len(c.snd) <= c.snd.capacity, f"{c}: send buffer {len(c.snd)} > {c.snd.capacity}")
            if c.state == State.LISTEN:
                check(c.syn_count >= 0, f"{c}: syn_count {c.syn_count}")
                check(len(c.accept_queue or ()) <= max(c.backlog, 1), f"{c}: accept queue over backlog")


# --- one step -------------------------------------------------------------------------------------
def _crafted(w: TcpWorld, fdp: Fdp) -> None:
    """A segment from a connection's peer address, its numbers near the connection's own."""
    _, c = pick(fdp, w.conns())
    if c.state == State.LISTEN or not c.faddr:
        src, sport = pick(fdp, (A_IP, OTHER_IP)), fdp.ConsumeIntInRange(1000, 1003)
        dst, dport = B_IP, PORT
    else:
        src, sport, dst, dport = c.faddr, c.fport, c.laddr, c.lport
    seq_base = pick(fdp, (c.rcv_nxt, c.rcv_adv, c.irs, sq.add(c.rcv_nxt, 1 << 31), w.cookie_seq))
    ack_base = pick(fdp, (c.snd_una, c.snd_nxt, c.snd_max, c.iss, w.cookie_ack))
    seq = sq.add(seq_base, fdp.ConsumeIntInRange(-70000, 70000))
    ack = sq.add(ack_base, fdp.ConsumeIntInRange(-3000, 3000))
    flags = pick(fdp, FLAG_SETS) if fdp.ConsumeBool() else fdp.ConsumeIntInRange(0, 255)
    seg = TcpRepr(sport, dport, seq, ack, flags, fdp.ConsumeIntInRange(0, 0xFFFF))
    if fdp.ConsumeBool():
        seg.mss = fdp.ConsumeIntInRange(0, 0xFFFF)
    if fdp.ConsumeBool():
        seg.wscale = fdp.ConsumeIntInRange(0, 255)
    seg.sack_perm = fdp.ConsumeBool()
    if fdp.ConsumeBool():
        ts_base = pick(fdp, (c.ts_recent, 0, 0xFFFFFFFF))
        seg.ts = (sq.add(ts_base, fdp.ConsumeIntInRange(-5, 5000)), fdp.ConsumeIntInRange(0, 0xFFFFFFFF))
    if fdp.ConsumeBool():
        blocks = []
        room = (40 - len(seg.options_bytes()) - 4) // 8      # 40 octets of options at most
        for _ in range(min(fdp.ConsumeIntInRange(1, 4), room)):
            left = sq.add(c.snd_una, fdp.ConsumeIntInRange(-2000, 70000))
            blocks.append((left, sq.add(left, fdp.ConsumeIntInRange(-10, 3000))))
        seg.sack = tuple(blocks)
    if flags & URG:
        seg.urgent = fdp.ConsumeIntInRange(0, 0xFFFF)
    opts = seg.options_bytes()
    hdr = bytearray(20 + len(opts))
    seg.emit(hdr, opts)
    payload = bytes(fdp.ConsumeIntInRange(0, 1600)) if fdp.ConsumeBool() else b""
    to = 1 if dst == B_IP else 0
    w.tainted[to] |= bool(payload)
    w.inject(to, ip_packet(src, dst, IPPROTO_TCP, bytes(hdr) + payload))


def _mutated(w: TcpWorld, fdp: Fdp) -> None:
    frm = fdp.ConsumeIntInRange(0, 1)
    out = w.ndds[frm].out
    if not out:
        return
    pkt = out[fdp.ConsumeIntInRange(0, len(out) - 1)]
    bad = mutate(fdp, pkt)
    w.tainted[1 - frm] = True
    w.inject(1 - frm, fix_checksums(bad) if fdp.ConsumeBool() else bad)


def _icmp_error(w: TcpWorld, fdp: Fdp) -> None:
    """An ICMP error about a segment a stack really sent, as a router would send it back."""
    frm = fdp.ConsumeIntInRange(0, 1)
    out = w.ndds[frm].out
    if not out:
        return
    quoted = out[fdp.ConsumeIntInRange(0, len(out) - 1)][:fdp.ConsumeIntInRange(20, 68)]
    type_, code = pick(fdp, ((3, 4), (3, 1), (3, 3), (3, 2), (11, 0), (12, 0), (4, 0), (5, 1), (3, 13)))
    mtu = fdp.ConsumeIntInRange(0, 0xFFFF) if fdp.ConsumeBool() else pick(fdp, (68, 296, 552, 576, 1280, 1500))
    body = struct.pack("!BBHHH", type_, code, 0, 0, mtu) + quoted
    w.inject(frm, ip_packet(pick(fdp, (OTHER_IP, A_IP if frm else B_IP)), B_IP if frm else A_IP,
                            IPPROTO_ICMP, body))


def _app(w: TcpWorld, fdp: Fdp) -> None:
    side = fdp.ConsumeIntInRange(0, 1)
    c = w.cli if side == 0 else (w.srv or w.lst)
    user = w.user[side]
    now = w.now
    what = fdp.ConsumeIntInRange(0, 7)
    if what == 0:
        w.app_send(side, c, fdp.ConsumeIntInRange(1, 5000))
    elif what == 1:
        w.app_recv(side, c, fdp.ConsumeIntInRange(1, 70000), fdp.ConsumeBool())
    elif what == 2:
        c.shutdown_write(now)                     # the bare CLOSE of the sending half, in any state
        w.stacks[side].tcp.schedule(c)
    elif what == 3:
        user.detach(c, now)
    elif what == 4:
        c.abort(now, errno.ECONNABORTED)
    elif what == 5:
        accepted = user.accept(w.lst, now) if side == 1 else None
        if accepted is not None:
            w.srv = accepted[0]
    elif what == 6:
        user.setsockopt(c, socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1, now)
        c.keepidle, c.keepintvl, c.keepcnt = pick(fdp, ((1.0, 1.0, 2), (7200.0, 75.0, 9), (0.5, 0.2, 1)))
        w.stacks[side].tcp.schedule(c)
    else:
        c.nodelay = fdp.ConsumeBool()


def run_steps(w: TcpWorld, fdp: Fdp) -> None:
    for _ in steps(fdp):
        op = fdp.ConsumeIntInRange(0, 9)
        if op <= 1:
            w.deliver(op)
        elif op == 2:
            out = w.ndds[fdp.ConsumeIntInRange(0, 1)].out
            if out:
                out.pop(fdp.ConsumeIntInRange(0, len(out) - 1))
        elif op == 3:
            frm = fdp.ConsumeIntInRange(0, 1)
            out = w.ndds[frm].out
            if out:                                       # reorder or duplicate
                i = fdp.ConsumeIntInRange(0, len(out) - 1)
                w.inject(1 - frm, out[i] if fdp.ConsumeBool() else out.pop(i))
        elif op == 4:
            _mutated(w, fdp)
        elif op == 5:
            _crafted(w, fdp)
        elif op == 6:
            _icmp_error(w, fdp)
        elif op == 7:
            _app(w, fdp)
        elif op == 8:
            w.tick(pick(fdp, TIME_STEPS))
        else:
            w.pump(fdp.ConsumeIntInRange(1, 16))
        w.check_invariants()


def _learn_cookie(w: TcpWorld) -> None:
    """Remember the numbers of the last SYN-ACK B sent, so crafted ACKs can complete it."""
    for pkt in reversed(w.ndds[1].out):
        if len(pkt) >= 40 and pkt[9] == IPPROTO_TCP and pkt[33] & (SYN | ACK) == SYN | ACK:
            seq, ack = struct.unpack_from("!II", pkt, 24)
            w.cookie_seq, w.cookie_ack = ack, sq.add(seq, 1)
            return


@target("tcp_listen")
def tcp_listen(data: bytes) -> None:
    """A listener (backlog 1, so SYN cookies come into play) fed crafted segments from two
    peers; A may also connect for real."""
    fdp = Fdp(data)
    w = TcpWorld(backlog=1, small_buffers=fdp.ConsumeBool(), congestion=pick(fdp, CONGESTION))
    if fdp.ConsumeBool():
        w.connect()
        w.deliver(0)
        _learn_cookie(w)
    run_steps(w, fdp)


@target("tcp_syn_received")
def tcp_syn_received(data: bytes) -> None:
    """B's child in SYN-RECEIVED (A's SYN delivered, the SYN-ACK still in flight or lost)."""
    fdp = Fdp(data)
    w = TcpWorld(small_buffers=fdp.ConsumeBool(), congestion=pick(fdp, CONGESTION))
    w.connect()
    w.deliver(0)
    _learn_cookie(w)
    if fdp.ConsumeBool():
        w.ndds[1].out.clear()
    run_steps(w, fdp)


@target("tcp_established")
def tcp_established(data: bytes) -> None:
    """A connection after a real handshake, optionally with data in flight both ways."""
    fdp = Fdp(data)
    w = TcpWorld(small_buffers=fdp.ConsumeBool(), congestion=pick(fdp, CONGESTION))
    w.established()
    assert w.srv is not None
    if fdp.ConsumeBool():
        w.app_send(0, w.cli, fdp.ConsumeIntInRange(1, 20000))
        w.app_send(1, w.srv, fdp.ConsumeIntInRange(1, 20000))
    run_steps(w, fdp)


@target("tcp_closing")
def tcp_closing(data: bytes) -> None:
    """The closing states: FIN-WAIT-1/2, CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT."""
    fdp = Fdp(data)
    w = TcpWorld(small_buffers=fdp.ConsumeBool(), congestion=pick(fdp, CONGESTION))
    w.established()
    srv = w.srv
    assert srv is not None
    how = fdp.ConsumeIntInRange(0, 4)
    if how == 0:                                   # A: FIN-WAIT-1, its FIN in flight
        w.user[0].detach(w.cli, w.now)
    elif how == 1:                                 # A: FIN-WAIT-2, B: CLOSE-WAIT
        w.user[0].shutdown(w.cli, socket.SHUT_WR, w.now)
        w.pump()
    elif how == 2:                                 # A: TIME-WAIT, B: LAST-ACK (the last ACK lost)
        w.user[0].shutdown(w.cli, socket.SHUT_WR, w.now)
        w.pump()
        w.user[1].shutdown(srv, socket.SHUT_WR, w.now)
        w.deliver(1)
        w.ndds[0].out.clear()
    elif how == 3:                                 # both: CLOSING (the FINs cross)
        w.user[0].shutdown(w.cli, socket.SHUT_WR, w.now)
        w.user[1].shutdown(srv, socket.SHUT_WR, w.now)
        w.deliver(0)
        w.deliver(1)
    else:                                          # B closes with data unread: RST
        w.app_send(0, w.cli, 6)
        w.pump()
        w.user[1].detach(srv, w.now)
    run_steps(w, fdp)
