"""The gateway's lean relayed flow (protocols/tcp/relayed.py, issue 13) as a fuzz target: a
Tcp core with a transparent interface answers a guest SYN with forward_relay, then the input
drives both sides -- guest segments crafted around the flow's own sequence variables (or
raw mutated headers, checksums re-sealed), the host socket's events (data within the room
the flow gives, EOF, a socket that takes only part, failure) and time steps.

Invariants after every step: the guest's bytes reach the host socket in order and intact
(each guest stream octet k is k % 251), every octet sent to the guest is the host's octet at
its sequence offset, the flow's buffers stay within their bounds, the relay table's count of
held octets is what the flows hold, SND.UNA <= SND.NXT <= SND.UNA + kept + FIN."""
from __future__ import annotations

import random
import struct
from itertools import pairwise

from ndd.checksum import checksum, pseudo_header_sum
from ndd.ndd import DeviceCaps
from ndd.pktbuf import PacketBuffer
from protocols.ipv4 import IpMeta, Ipv4Repr
from protocols.tcp import relayed as R
from protocols.tcp import seq as sq
from protocols.tcp.config import TcpConfig
from protocols.tcp.forward import ForwardRequest
from protocols.tcp.tcp import Tcp
from protocols.tcp.wire import ACK, FIN, PSH, RST, SYN, TcpRepr
from tests.unit.fakes import make_host

from . import check, target
from .harness import IPPROTO_TCP, TIME_STEPS, Fdp, mutate, pick, steps

GUEST, REMOTE = 0x0A000063, 0xCB007109       # 10.0.0.99 on eth0's subnet, 203.0.113.9 (relayed)
GUEST_PORT, REMOTE_PORT, ISN = 40000, 80, 0xFFFFF000   # the guest's ISN wraps soon
_PATTERN = bytes(range(251)) * 400
FLAGS = (ACK, ACK | PSH, ACK | FIN, ACK | PSH | FIN, RST, RST | ACK, SYN, SYN | ACK, FIN, 0, ACK | SYN | FIN)


def pattern(offset: int, n: int) -> bytes:
    start = offset % 251
    return _PATTERN[start:start + n] if n <= len(_PATTERN) - 251 else bytes((offset + i) % 251 for i in range(n))


class FuzzHost:
    """The host socket: takes up to `room` octets per call (None: everything)."""

    def __init__(self) -> None:
        self.got = 0                              # guest octets taken, in order
        self.room: int | None = None
        self.fail = False
        self.closed: bool | None = None
        self.shut = False

    def to_host(self, data: memoryview) -> int:
        if self.fail:
            return -1
        n = len(data) if self.room is None else min(self.room, len(data))
        check(bytes(data[:n]) == pattern(self.got, n), "the host got the guest's octets out of order")
        self.got += n
        if self.room is not None:
            self.room -= n
        return n

    def shut_host(self) -> None:
        check(not self.shut, "SHUT_WR twice")
        self.shut = True

    def host_reads(self, on: bool) -> None:
        pass

    def host_writes(self, on: bool) -> None:
        pass

    def close_host(self, reset: bool) -> None:
        check(self.closed is None, "the host socket closed twice")
        self.closed = reset


class RelayWorld:
    def __init__(self, fdp: Fdp) -> None:
        self.host_stack = make_host(addr="10.0.0.2")
        tso = fdp.ConsumeBool()
        self.host_stack.eth0.ndd.caps = DeviceCaps(mtu=1500, tx_csum_offload=tso,   # type: ignore[attr-defined]
                                                  tso_max=65535 if tso else 0)
        self.host_stack.eth0.transparent = True
        self.now = 1000.0
        self.early = False                        # rx_raw: this segment offered to relayed_input4 first
        self.tcp = Tcp(self.host_stack.ipv4, random.Random(3), lambda: self.now, TcpConfig())
        requests: list[ForwardRequest] = []
        self.tcp.forwarder = requests.append
        wscale = fdp.ConsumeIntInRange(0, 15)
        self.rx(TcpRepr(GUEST_PORT, REMOTE_PORT, ISN, 0, SYN, 0xFFFF, mss=fdp.ConsumeIntInRange(0, 9000) or None,
                        wscale=None if wscale == 15 else wscale, sack_perm=fdp.ConsumeBool()), b"")
        self.host = FuzzHost()
        check(len(requests) == 1, "the SYN was not handed to the forwarder")
        flow = self.tcp.forward_relay(requests[0].id, self.host, self.now)
        assert flow is not None
        self.flow = flow
        self.iss = flow.iss
        self.host_sent = 0                        # host octets given to the flow
        self.guest_off = 0                        # the guest's next stream offset (its SND.NXT - ISN - 1)
        self.drain()

    def rx(self, seg: TcpRepr, payload: bytes) -> None:
        opts = seg.options_bytes()
        data = bytearray(20 + len(opts)) + payload
        seg.emit(data, opts)
        struct.pack_into("!H", data, 16, checksum(data, pseudo_header_sum(GUEST, REMOTE, IPPROTO_TCP, len(data))))
        self.rx_raw(bytes(data))

    def rx_raw(self, data: bytes) -> None:
        # every other segment is offered first to the early way a driver's nd_fast_rx takes
        # (Tcp.relayed_input4, from the frame's octets), the rest go the whole way at once
        self.early = not self.early
        if self.early:
            ip = bytearray(20)
            Ipv4Repr(GUEST, REMOTE, IPPROTO_TCP, 20 + len(data)).emit(ip)
            frame = bytes(ip) + data
            if self.tcp.relayed_input4(frame, 0, len(frame), False, self.host_stack.eth0, self.now):
                return
        meta = IpMeta(GUEST, REMOTE, IPPROTO_TCP, 64, 0, 20, self.host_stack.eth0, 0, False)
        self.tcp.input(PacketBuffer(data), meta, self.now)

    def accepted(self) -> int:
        """The guest stream octets the flow has taken (its RCV.NXT, less the FIN)."""
        return sq.diff(self.flow.rcv_nxt, ISN + 1) - (1 if self.flow.fin_in else 0)

    def drain(self) -> None:
        """What went to the guest: each octet the host's at its offset."""
        for frame, _, _ in self.host_stack.link.sent:
            ip = Ipv4Repr.parse(frame)
            assert isinstance(ip, Ipv4Repr)
            tcp = frame[ip.hdr_len:ip.total_len]
            seg = TcpRepr.parse(tcp)
            check(isinstance(seg, TcpRepr), "an unparsable segment went to the guest")
            assert isinstance(seg, TcpRepr)
            payload = bytes(tcp[seg.hdr_len:])
            if payload:
                off = sq.diff(seg.seq, sq.add(self.iss, 1))
                check(off >= 0 and payload == pattern(1_000_000 + off, len(payload)),
                      "the guest got octets the host did not send there")
        self.host_stack.link.sent.clear()

    def invariants(self) -> None:
        f = self.flow
        table = self.tcp.relays
        held = sum(x.held for x in table.flows.values())
        check(table.held == held, f"the table counts {table.held} held octets, the flows hold {held}")
        check(len(f.pending) <= R.RELAY_WINDOW + (1 << 14), "the guest's octets waiting beyond the window")
        check(len(f.ooo) <= R.OOO_MAX and f.ooo_held == sum(len(t) for _, t, _ in f.ooo) <= R.RELAY_WINDOW,
              "the out-of-order queue beyond its bounds, or miscounted")
        blocks = f.sacked.blocks
        check(len(blocks) <= R.SACKED_MAX and all(sq.lt(lo, hi) and sq.lt(f.snd_una, hi) for lo, hi in blocks)
              and all(sq.lt(a[1], b[0]) for a, b in pairwise(blocks)),
              f"the scoreboard is not sorted, merged and above SND.UNA: {blocks}")
        check(all(0 < len(t) <= R.RELAY_WINDOW + (1 << 14) or fin for _, t, fin in f.ooo), "a kept segment's size")
        check(len(f.unacked) <= R.SEND_MAX + f.mss, "host octets kept beyond SEND_MAX")
        if f.state == R.OPEN:
            out, top = sq.diff(f.snd_nxt, f.snd_una), sq.diff(f.snd_max, f.snd_una)
            check(0 <= out <= top <= len(f.unacked) + 1,
                  f"SND.NXT - SND.UNA = {out}, SND.MAX - SND.UNA = {top} with {len(f.unacked)} kept")
        check(f.state < R.LINGERING or (not f.unacked and not f.pending), "a closed flow keeps octets")

    def step(self, fdp: Fdp) -> None:
        f = self.flow
        kind = fdp.ConsumeIntInRange(0, 9)
        if kind <= 3:                             # a guest segment around the flow's variables
            flags = pick(fdp, FLAGS)
            ahead = fdp.ConsumeIntInRange(-3000, 3000) if fdp.ConsumeBool() else 0
            off = self.guest_off + ahead
            n = pick(fdp, (0, 0, 1, 10, 536, 1460, 3000, 65000))
            ack = sq.add(f.snd_una, fdp.ConsumeIntInRange(-5, len(f.unacked) + 5))
            seq = sq.add(ISN + 1, off)
            text = pattern(off, n) if off >= 0 else bytes(min(-off, n)) + pattern(0, max(n + off, 0))
            sack = tuple((sq.add(f.snd_una, fdp.ConsumeIntInRange(-100, len(f.unacked) + 100)),
                          sq.add(f.snd_una, fdp.ConsumeIntInRange(-100, len(f.unacked) + 100)))
                         for _ in range(fdp.ConsumeIntInRange(0, 3)))
            window = fdp.ConsumeIntInRange(0, 0xFFFF)
            self.rx(TcpRepr(GUEST_PORT, REMOTE_PORT, seq, ack, flags, window, sack=sack), text)
            self.guest_off = max(self.guest_off, self.accepted())   # what the flow took, the guest moves past
        elif kind == 4:                           # a raw, mutated header
            base = TcpRepr(GUEST_PORT, REMOTE_PORT, sq.add(ISN + 1, self.guest_off), f.snd_nxt, ACK, 1000)
            data = bytearray(20)
            base.emit(data, b"")
            data = bytearray(mutate(fdp, bytes(data)))
            if len(data) >= 20:
                del data[max((data[12] >> 4) * 4, 20):]           # the header alone: its text is the crafted steps'
            if len(data) >= 18:
                data[16:18] = b"\0\0"
                struct.pack_into("!H", data, 16, checksum(data, pseudo_header_sum(GUEST, REMOTE, IPPROTO_TCP,
                                                                                  len(data))))
            self.rx_raw(bytes(data))
        elif kind == 5:                           # the host's data, within the room given
            room = f.send_room()
            if room > 0 and f.state == R.OPEN and not f.fin_wanted:
                n = min(room, pick(fdp, (1, 100, 1460, 5000, 70000, 300000)))
                f.host_data(pattern(1_000_000 + self.host_sent, n), self.now)
                self.host_sent += n
        elif kind == 6:
            f.host_eof(self.now)
        elif kind == 7:                           # the host socket takes a little, or all again
            self.host.room = pick(fdp, (None, 0, 1, 1000, 100000))
            f.host_writable(self.now)
        elif kind == 8:
            self.now += pick(fdp, TIME_STEPS)
            self.tcp.poll(self.now)
        else:
            how = fdp.ConsumeIntInRange(0, 9)
            if how == 0:
                f.host_failed(self.now)
            elif how == 1:
                self.tcp.relays.abort_all(self.now)
            elif how == 2:
                self.host.fail = True
        self.drain()
        self.invariants()


@target("tcp_relayed")
def tcp_relayed(data: bytes) -> None:
    """A relayed flow driven from both sides."""
    fdp = Fdp(data)
    w = RelayWorld(fdp)
    for _ in steps(fdp):
        w.step(fdp)
