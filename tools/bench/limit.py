"""Section `limit`: the least a single-threaded Python process must do per frame on a TUN.

Issue 15 reads tunstack's figures against this: a minimal TCP endpoint of our own, no stack
(no sockets, no trio, no timers service, no reassembly, no congestion control), on the same
kind of TUN device, driven by the same Linux peers (tools/bench/peer.py) as the tunstack
section.  Per frame it reads, parses just enough (IPv4 + TCP header fields by one
`struct.unpack_from`), updates a handful of integers and writes an ACK or an echo.

What it does of TCP, just enough to keep Linux happy on a lossless path:
  - answers one IPv4 address (its own flows); anything else is dropped and counted;
  - SYN to a listening port → SYN-ACK with MSS and window scaling (no SACK, no
    timestamps); its own SYN for the bulk-out connection, the same options;
  - in-order data → one cumulative ACK per connection per TUN read batch (up to `batch`
    frames read while the fd stays readable: with offload off and a full batch that is one
    ACK per 64 segments); out-of-order or old data → an immediate duplicate ACK, no
    reassembly; the window advertised is always the full 8 MiB (the data is consumed as
    it arrives);
  - FIN both ways: a FIN received is ACKed and answered with our FIN; the connection is
    forgotten once both FINs are ACKed (no TIME-WAIT);
  - bulk out: as much as the peer's window allows, in MSS segments (offload off, full
    software checksum) or TSO super-segments of up to 44 MSS (offload on: virtio_net_hdr
    with GSO and a partial checksum); the bytes are a repeating 0..255 pattern, so any
    offset can be (re)generated without a send buffer;
  - robustness only: every 0.3 s without progress the oldest unacknowledged segment (SYN,
    SYN-ACK, data or FIN) is sent again; a segment for no connection gets a RST.

Received checksums are not verified: the frames come from the kernel's own memory on a TUN
(tunstack verifies them with offload off; that is part of what it pays beyond the limit).

Run in a child per group, as the tunstack section: `python -m tools.bench.limit --group on`
(offload on: bulk both ways, request/response, accepted connections) or `--group off`
(bulk both ways).  CPU per unit is the child's own getrusage (user + system) over each
measure, divided by the frames it read (bulk: GSO super-frames or segments in, ACKs for
bulk out), the round trips, or the connections.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from ndd.checksum import checksum, ones_sum

from .common import Params, Proc, Section, add_cpu, can_run, cpu_s, netns, peer_argv, reason, record_measure

KERNEL_IP, LIMIT_IP = "10.78.3.1", "10.78.3.2"
GROUPS: dict[str, list[str]] = {"on": ["bulk_in", "bulk_out", "rr", "cps"], "off": ["bulk_in", "bulk_out"]}
ROW_OF = {("on", "bulk_in"): "bulk_in", ("on", "bulk_out"): "bulk_out", ("off", "bulk_in"): "bulk_in_nooff",
          ("off", "bulk_out"): "bulk_out_nooff", ("on", "rr"): "rr", ("on", "cps"): "cps"}
ROWS = list(ROW_OF.values())

# IPv4 (20 octets, no options on output) + TCP (20 octets) as one struct
HDR = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")
IP_TCP = struct.Struct("!BBHHHBBH4s4sHHIIBBH")    # what input reads (up to the window)
VNET = struct.Struct("<BBHHHH")                   # virtio_net_hdr (drivers/vnet.py)
VNET_LEN = VNET.size
NO_VNET = bytes(VNET_LEN)
F_NEEDS_CSUM, GSO_TCPV4 = 1, 1
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
WSCALE = 7                      # our window scale; the window field is always 0xFFFF: 8 MiB
MSS = 1460
TSO_SEGS = 44                   # 44 × 1460 = 64 240 octets of payload per super-segment
RTO = 0.3
PATTERN = bytes(range(256)) * 512     # 128 KiB: any offset's next 64 KiB is one slice
PERIOD = 65536
MOD = 1 << 32
READ_SIZE = VNET_LEN + 65535 + 64
CLOSED, SYN_SENT, SYN_RCVD, ESTABLISHED = 0, 1, 2, 3


def pattern_at(offset: int, n: int) -> memoryview:
    """`n` (≤ 64 KiB) octets of the bulk-out stream from `offset`."""
    o = offset % PERIOD
    return memoryview(PATTERN)[o:o + n]


class Conn:
    """One connection's few integers.  Sequence numbers are plain ints mod 2**32."""
    __slots__ = ("key", "raddr", "rport", "lport", "mode", "state", "iss", "snd_una", "snd_nxt", "snd_wnd",
                 "snd_wscale", "mss", "rcv_nxt", "ack_due", "dirty", "sndbuf", "data_end", "fin_queued",
                 "fin_sent", "fin_rcvd", "last_progress", "rx_bytes", "hasher", "our_wscale", "pseudo_base")

    def __init__(self, key: tuple[bytes, int, int], mode: str, iss: int, now: float) -> None:
        self.key = key
        self.raddr, self.rport, self.lport = key
        self.mode = mode            # sink, echo, close (passive); source (active)
        self.state = CLOSED
        self.iss = iss
        self.snd_una = self.snd_nxt = iss
        self.snd_wnd = 0
        self.snd_wscale = 0
        self.our_wscale = 0
        self.mss = 536
        self.rcv_nxt = 0
        self.ack_due = False
        self.dirty = False          # in the endpoint's list of connections to flush
        self.sndbuf = bytearray()   # echo: unacknowledged + unsent octets from snd_una
        self.data_end = -1          # source: stream offset where the data ends (-1: not yet)
        self.fin_queued = False
        self.fin_sent = False
        self.fin_rcvd = False
        self.last_progress = now
        self.rx_bytes = 0
        self.hasher: Any = None     # tests: a hashlib object over the in-order data
        self.pseudo_base = 0        # the IPv4 pseudo-header's sum less the TCP length (set by the endpoint)


class Endpoint:
    """Sans-IO: `input(frame)` per frame read, `flush()` after each read batch, `tick(now)`
    now and then; the frames to write (each a tuple for os.writev) collect in `out`."""

    def __init__(self, addr: str, *, offload: bool, hash_input: bool = False) -> None:
        self.addr = socket.inet_aton(addr)
        self.offload = offload
        self.hash_input = hash_input
        self.listeners: dict[int, str] = {}
        self.conns: dict[tuple[bytes, int, int], Conn] = {}
        self.dirty: list[Conn] = []
        self.out: list[tuple[bytes | bytearray | memoryview, ...]] = []
        self.now = time.monotonic()
        self.next_iss = 0x1000_0000
        self.next_port = 40000
        self.frames_in = self.frames_out = self.dropped = self.accepted = self.retransmits = 0
        self.rx_octets = 0              # TCP payload in order
        self.frame_octets = 0           # IP frames read (the virtio_net_hdr not counted)
        self.finished: list[Conn] = []     # connections closed both ways (source/sink: for the caller)

    # --- set-up -----------------------------------------------------------------------
    def listen(self, port: int, mode: str) -> None:
        self.listeners[port] = mode

    def connect(self, raddr: str, rport: int) -> Conn:
        """Active open (bulk out): the SYN goes into `out`."""
        self.next_port += 1
        key = (socket.inet_aton(raddr), rport, self.next_port)
        c = self._new(key, "source")
        c.state = SYN_SENT
        c.snd_nxt = (c.iss + 1) % MOD
        self._syn(c, SYN)
        return c

    def shutdown(self, c: Conn) -> None:
        """Source: no data past what is already sent; the FIN follows it."""
        c.data_end = (c.snd_nxt - c.iss - 1) % MOD
        c.fin_queued = True
        self._mark(c)

    def _new(self, key: tuple[bytes, int, int], mode: str) -> Conn:
        self.next_iss = (self.next_iss + 0x0100_0000 + 4321) % MOD
        c = self._conn(key, mode, self.next_iss)
        if self.hash_input:
            c.hasher = hashlib.sha256()
        self.conns[key] = c
        return c

    def _conn(self, key: tuple[bytes, int, int], mode: str, iss: int) -> Conn:
        c = Conn(key, mode, iss, self.now)
        c.pseudo_base = ones_sum(self.addr + c.raddr) + 6
        return c

    def _mark(self, c: Conn) -> None:
        if not c.dirty:
            c.dirty = True
            self.dirty.append(c)

    # --- output -----------------------------------------------------------------------
    def _emit(self, c: Conn, seq: int, flags: int, payload: bytes | memoryview = b"",
              options: bytes = b"") -> None:
        """One IPv4/TCP frame to `c`'s peer (a TSO super-segment when longer than its MSS)."""
        n = len(payload)
        tcp_len = 20 + len(options) + n
        # the window is always the most we can say: 8 MiB once scaled, 65 535 in a SYN
        hdr = bytearray(HDR.pack(0x45, 0, 20 + tcp_len, 0, 0x4000, 64, 6, 0, self.addr, c.raddr,
                                 c.lport, c.rport, seq, c.rcv_nxt if flags & ACK else 0,
                                 (5 + len(options) // 4) << 4, flags, 0xFFFF, 0, 0))
        hdr[10:12] = checksum(memoryview(hdr)[:20]).to_bytes(2, "big")
        if options:
            hdr += options
        pseudo = c.pseudo_base + tcp_len
        if self.offload:
            # partial checksum: the pseudo-header sum, folded; the kernel completes it
            s = pseudo % 0xFFFF or 0xFFFF
            hdr[36:38] = s.to_bytes(2, "big")
            gso = n > c.mss
            vnet = VNET.pack(F_NEEDS_CSUM, GSO_TCPV4 if gso else 0, len(hdr) if gso else 0,
                             c.mss if gso else 0, 20, 16)
            self.out.append((vnet, hdr, payload) if n else (vnet, hdr))
        else:
            s = ones_sum(payload, pseudo) if n else pseudo
            hdr[36:38] = checksum(memoryview(hdr)[20:], s).to_bytes(2, "big")
            self.out.append((hdr, payload) if n else (hdr,))
        self.frames_out += 1

    def _syn(self, c: Conn, flags: int) -> None:
        ws = bytes((1, 3, 3, WSCALE)) if c.state == SYN_SENT or c.our_wscale else b""    # NOP, WS
        self._emit(c, c.iss, flags, options=bytes((2, 4)) + MSS.to_bytes(2, "big") + ws)

    def _send_pending(self, c: Conn) -> None:
        """Data the window allows, then the FIN when due; else a bare ACK if one is owed."""
        sent = False
        if c.state == ESTABLISHED:
            in_flight = (c.snd_nxt - c.snd_una) % MOD
            room = c.snd_wnd - in_flight
            if c.mode == "source":
                seg_max = c.mss * TSO_SEGS if self.offload else c.mss
                while room > 0:
                    off = (c.snd_nxt - c.iss - 1) % MOD
                    n = min(room, seg_max)
                    if c.data_end >= 0:
                        n = min(n, c.data_end - off)
                    if n <= 0 or (n < c.mss and in_flight and c.data_end < 0):
                        break       # no silly small segment while data is in flight
                    self._emit(c, c.snd_nxt, ACK | PSH, pattern_at(off, n))
                    c.snd_nxt = (c.snd_nxt + n) % MOD
                    room -= n
                    in_flight += n
                    sent = True
            elif c.sndbuf and in_flight < len(c.sndbuf):
                n = min(len(c.sndbuf) - in_flight, room, c.mss)
                if n > 0:
                    self._emit(c, c.snd_nxt, ACK | PSH, bytes(c.sndbuf[in_flight:in_flight + n]))
                    c.snd_nxt = (c.snd_nxt + n) % MOD
                    sent = True
            if c.fin_queued and not c.fin_sent and self._data_all_sent(c):
                self._emit(c, c.snd_nxt, FIN | ACK)
                c.snd_nxt = (c.snd_nxt + 1) % MOD
                c.fin_sent = sent = True
        if c.ack_due and not sent:
            self._emit(c, c.snd_nxt, ACK)
        c.ack_due = False

    def _data_all_sent(self, c: Conn) -> bool:
        if c.mode == "source":
            return c.data_end >= 0 and (c.snd_nxt - c.iss - 1) % MOD >= c.data_end
        return (c.snd_nxt - c.snd_una) % MOD >= len(c.sndbuf)

    def flush(self) -> None:
        """After a read batch: one ACK (or data carrying it) per connection that owes one."""
        for c in self.dirty:
            c.dirty = False
            self._send_pending(c)
            if c.fin_rcvd and c.fin_sent and c.snd_una == c.snd_nxt:
                self._forget(c)
        self.dirty.clear()

    def _forget(self, c: Conn) -> None:
        if self.conns.get(c.key) is c:
            del self.conns[c.key]
            c.state = CLOSED
            self.finished.append(c)

    # --- input ------------------------------------------------------------------------
    def input(self, frame: bytes) -> None:
        """One frame as read from the TUN (with its virtio_net_hdr when offload is on)."""
        self.frames_in += 1
        base = VNET_LEN if self.offload else 0
        self.frame_octets += len(frame) - base
        if len(frame) < base + 40:
            self.dropped += 1
            return
        (vihl, _tos, tot_len, _id, _frag, _ttl, proto, _ck, src, dst, sport, dport, seq, ack, off, flags,
         window) = IP_TCP.unpack_from(frame, base)
        ihl = (vihl & 15) * 4
        if vihl >> 4 != 4 or proto != 6 or dst != self.addr:
            self.dropped += 1
            return
        if ihl != 20:       # IP options: parse again past them
            if len(frame) < base + ihl + 20:
                self.dropped += 1
                return
            sport, dport, seq, ack, off, flags, window = struct.unpack_from("!HHIIBBH", frame, base + ihl)
        data_at = base + ihl + (off >> 4) * 4
        end = base + tot_len if tot_len else len(frame)   # a GSO super-frame may say 0
        n = end - data_at
        key = (src, sport, dport)
        c = self.conns.get(key)
        if c is None:
            self._no_conn(frame, key, data_at, seq, ack, flags, n)
            return
        if flags & RST:
            self._forget(c)
            return
        if c.state != ESTABLISHED and not self._handshake(c, frame, base + ihl, data_at, seq, ack, flags, window):
            return
        if flags & ACK:
            acked = (ack - c.snd_una) % MOD
            if acked <= (c.snd_nxt - c.snd_una) % MOD:     # neither older than snd_una nor beyond snd_nxt
                c.snd_wnd = window << c.snd_wscale
                if acked:
                    c.snd_una = ack
                    c.last_progress = self.now
                    if c.sndbuf:
                        del c.sndbuf[:acked]
                    self._mark(c)
                elif c.mode == "source":
                    self._mark(c)       # a window update may open room
        if n > 0 or flags & FIN:
            if seq != c.rcv_nxt:
                self._emit(c, c.snd_nxt, ACK)      # out of order or old: duplicate ACK now
                return
            if n > 0:
                c.rcv_nxt = (c.rcv_nxt + n) % MOD
                c.rx_bytes += n
                self.rx_octets += n
                if c.hasher is not None:
                    c.hasher.update(memoryview(frame)[data_at:end])
                if c.mode == "echo":
                    c.sndbuf += memoryview(frame)[data_at:end]
                c.ack_due = True
                self._mark(c)
            if flags & FIN and not c.fin_rcvd:
                c.rcv_nxt = (c.rcv_nxt + 1) % MOD
                c.fin_rcvd = c.fin_queued = c.ack_due = True
                if c.mode == "source" and c.data_end < 0:
                    self.shutdown(c)
                self._mark(c)

    def _no_conn(self, frame: bytes, key: tuple[bytes, int, int], data_at: int, seq: int, ack: int,
                 flags: int, n: int) -> None:
        mode = self.listeners.get(key[2])
        if flags & RST:
            return
        if mode is None or flags & (SYN | ACK) != SYN:
            # RFC 9293 §3.10.7.1: a RST from the ACK field, or ACKing the segment
            c = self._conn(key, "", 0)
            c.state = ESTABLISHED
            if flags & ACK:
                self._emit(c, ack, RST)
            else:
                c.rcv_nxt = (seq + n + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)) % MOD
                self._emit(c, 0, RST | ACK)
            self.dropped += 1
            return
        c = self._new(key, mode)
        c.state = SYN_RCVD
        c.rcv_nxt = (seq + 1) % MOD
        c.snd_nxt = (c.iss + 1) % MOD
        self._options(c, frame, data_at)
        self._syn(c, SYN | ACK)

    def _options(self, c: Conn, frame: bytes, data_at: int) -> None:
        """MSS and window scale from a SYN's options (the rest is skipped)."""
        base = VNET_LEN if self.offload else 0
        i = base + 20 + 20      # no IP options on a SYN from Linux; a wrong guess only loses options
        while i < data_at:
            kind = frame[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            ln = frame[i + 1] if i + 1 < data_at else 0
            if ln < 2:
                break
            if kind == 2 and ln == 4:
                c.mss = min(MSS, int.from_bytes(frame[i + 2:i + 4], "big"))
            elif kind == 3 and ln == 3:
                c.snd_wscale = min(frame[i + 2], 14)
                c.our_wscale = WSCALE
            i += ln
        if not c.our_wscale:
            c.snd_wscale = 0

    def _handshake(self, c: Conn, frame: bytes, tcp_at: int, data_at: int, seq: int, ack: int, flags: int,
                   window: int) -> bool:
        """SYN_SENT / SYN_RCVD; True when the segment goes on to the established path."""
        if c.state == SYN_SENT:
            if flags & (SYN | ACK) == SYN | ACK and ack == (c.iss + 1) % MOD:
                c.rcv_nxt = (seq + 1) % MOD
                c.snd_una = ack
                self._options(c, frame, data_at)
                c.snd_wnd = window          # never scaled in a SYN
                c.state = ESTABLISHED
                c.last_progress = self.now
                c.ack_due = True
                self._mark(c)
            return False
        # SYN_RCVD
        if flags & SYN:             # our SYN-ACK was lost: again
            self._syn(c, SYN | ACK)
            return False
        if flags & ACK and ack == (c.iss + 1) % MOD:
            c.state = ESTABLISHED
            c.snd_una = ack
            c.snd_wnd = window << c.snd_wscale
            c.last_progress = self.now
            self.accepted += 1
            if c.mode == "close":
                c.fin_queued = True
                self._mark(c)
            return True
        return False

    # --- timer ------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Coarse retransmission: the oldest unacknowledged segment after RTO without progress."""
        self.now = now
        for c in list(self.conns.values()):
            if c.snd_una == c.snd_nxt or now - c.last_progress < RTO:
                continue
            c.last_progress = now
            self.retransmits += 1
            if c.state == SYN_SENT:
                self._syn(c, SYN)
            elif c.state == SYN_RCVD:
                self._syn(c, SYN | ACK)
            else:
                self._resend_oldest(c)

    def _resend_oldest(self, c: Conn) -> None:
        in_flight = (c.snd_nxt - c.snd_una) % MOD
        data_left = in_flight - (1 if c.fin_sent else 0)
        if data_left > 0:
            n = min(data_left, c.mss)
            if c.mode == "source":
                payload: bytes | memoryview = pattern_at((c.snd_una - c.iss - 1) % MOD, n)
            else:
                payload = bytes(c.sndbuf[:n])
            self._emit(c, c.snd_una, ACK | PSH, payload)
        elif c.fin_sent:
            self._emit(c, c.snd_una, FIN | ACK)


# --- the I/O loop -----------------------------------------------------------------------
class Loop:
    """The endpoint on a TUN fd: epoll, read up to `batch` frames, flush, write."""

    def __init__(self, ep: Endpoint, fd: int, batch: int = 64) -> None:
        self.ep, self.fd, self.batch = ep, fd, batch
        self.poll = select.epoll()
        self.poll.register(fd, select.EPOLLIN)
        self.last_tick = time.monotonic()

    def write_out(self) -> None:
        fd = self.fd
        for vec in self.ep.out:
            try:
                os.writev(fd, vec)
            except BlockingIOError:
                pass        # the coarse timer resends
        self.ep.out.clear()

    def run(self, done: Callable[[], bool], *, watch: int = -1, timeout: float = 60.0) -> None:
        """Until `done()` or `watch` (an fd, e.g. a peer's stdout) turns readable or `timeout`."""
        ep, fd, read, batch = self.ep, self.fd, os.read, self.batch
        if watch >= 0:
            self.poll.register(watch, select.EPOLLIN)
        deadline = time.monotonic() + timeout
        try:
            self.write_out()
            while not done():
                events = self.poll.poll(0.1)
                now = ep.now = time.monotonic()
                for efd, _ in events:
                    if efd == watch:
                        return
                for _ in range(batch):
                    try:
                        frame = read(fd, READ_SIZE)
                    except BlockingIOError:
                        break
                    ep.input(frame)
                ep.flush()
                self.write_out()
                if now - self.last_tick >= 0.1:
                    self.last_tick = now
                    ep.tick(now)
                    self.write_out()
                if now > deadline:
                    raise TimeoutError(f"limit endpoint: no end within {timeout:.0f} s")
        finally:
            if watch >= 0:
                self.poll.unregister(watch)


# --- parent side --------------------------------------------------------------------
def run(p: Params) -> Section:
    sec = Section("limit")
    why = can_run()
    if why:
        sec.fail(ROWS, why)
        return sec
    for group in GROUPS:
        argv = [sys.executable, "-m", "tools.bench.limit", "--group", group, "--seconds", str(p.seconds)]
        try:
            with Proc(argv) as child:
                out = child.line(30 + len(GROUPS[group]) * (20 + 3 * p.seconds))
        except (OSError, TimeoutError, EOFError) as exc:
            out = {"error": reason(exc)}
        for m in GROUPS[group]:
            row = ROW_OF[(group, m)]
            record_measure(sec, row, out.get(m), out)
    return sec


# --- child side -------------------------------------------------------------------------
class Peer:
    """A Linux peer process in the namespace; its one JSON line is the figures."""

    def __init__(self, argv: list[str]) -> None:
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)

    def line(self, timeout: float = 30) -> dict[str, Any]:
        assert self.p.stdout is not None
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        text = self.p.stdout.readline() if r else b""
        if not text:
            self.stop()
            err = self.p.stderr.read().decode(errors="replace").strip() if self.p.stderr else ""
            raise RuntimeError(f"Linux peer: no answer ({err[-200:]})")
        obj: dict[str, Any] = json.loads(text)
        if obj.get("error"):
            raise RuntimeError(f"Linux peer: {obj['error']}")
        return obj

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()

    @property
    def out_fd(self) -> int:
        assert self.p.stdout is not None
        return self.p.stdout.fileno()


def measure(loop: Loop, host: Any, m: str, seconds: float) -> dict[str, Any]:
    """One measure against the Linux peer; the figure, its note and the CPU per unit."""
    ep = loop.ep
    frames0, octets0, out0, cpu0 = ep.frames_in, ep.frame_octets, ep.frames_out, cpu_s()
    if m == "bulk_in":
        ep.listen(5001, "sink")
        rx0 = ep.rx_octets
        peer = Peer(peer_argv(host, "source", LIMIT_IP, "5001", "--seconds", str(seconds)))
        loop.run(lambda: False, watch=peer.out_fd, timeout=seconds + 30)
        res = peer.line()
        peer.stop()
        frames, got = ep.frames_in - frames0, ep.rx_octets - rx0
        out = {"value": res["mbit_s"], "note": "Linux Python sender → minimal endpoint",
               "units": frames,
               "details": {"bytes_sent": res["bytes"], "bytes_received": got, "frames_in": frames,
                           "frames_out": ep.frames_out - out0,
                           "avg_frame_octets": round((ep.frame_octets - octets0) / frames) if frames else 0}}
    elif m == "bulk_out":
        peer = Peer(peer_argv(host, "sink", "5002", "--timeout", "60"))
        peer.line()     # listening
        c = ep.connect(KERNEL_IP, 5002)
        end = time.monotonic() + seconds
        loop.run(lambda: time.monotonic() >= end, timeout=seconds + 30)
        ep.shutdown(c)
        loop.run(lambda: c.state == CLOSED, timeout=30)
        res = peer.line()
        peer.stop()
        sent = (c.snd_nxt - c.iss - 2) % MOD      # less SYN and FIN
        frames = ep.frames_in - frames0
        out = {"value": res["mbit_s"], "note": "minimal endpoint → Linux Python receiver",
               "units": frames,
               "details": {"bytes_sent": sent, "bytes_received": res["bytes"], "frames_in": frames,
                           "frames_out": ep.frames_out - out0}}
    elif m == "rr":
        ep.listen(5007, "echo")
        peer = Peer(peer_argv(host, "rr-client", LIMIT_IP, "5007", "--seconds", str(seconds)))
        loop.run(lambda: False, watch=peer.out_fd, timeout=seconds + 30)
        res = peer.line()
        peer.stop()
        out = {"value": res["per_s"], "note": "Linux Python client; minimal endpoint echoes",
               "units": res["count"]}
    elif m == "cps":
        ep.listen(5009, "close")
        acc0 = ep.accepted
        peer = Peer(peer_argv(host, "cps-client", LIMIT_IP, "5009", "--seconds", str(seconds)))
        loop.run(lambda: False, watch=peer.out_fd, timeout=seconds + 30)
        res = peer.line()
        peer.stop()
        out = {"value": res["per_s"], "note": "sequential connect/accept/close from Linux",
               "units": ep.accepted - acc0,
               "details": {"accepted": ep.accepted - acc0}}
    else:
        raise ValueError(m)
    add_cpu(out, m, out.pop("units"), cpu_s() - cpu0)
    return out


def child(a: argparse.Namespace) -> dict[str, Any]:
    from drivers.tuntap import TunNdd
    from tools.lab.netns import unique_name

    results: dict[str, Any] = {}
    with netns("tsbl") as host:
        ndd = TunNdd(unique_name("tsl"), offload=a.group != "off")
        ndd.create()    # the drivers' open + TUNSETOFFLOAD + txqueuelen; the loop below is ours
        try:
            host.adopt(ndd.ndd_name, f"{KERNEL_IP}/24")
            ep = Endpoint(LIMIT_IP, offload=ndd.vnet)
            loop = Loop(ep, ndd.fd, a.batch)
            results["offload_flags"] = ndd.offload_flags
            for m in a.only.split(",") if a.only else GROUPS[a.group]:
                try:
                    results[m] = measure(loop, host, m, a.seconds)
                except Exception as exc:
                    results[m] = {"error": reason(exc)}
            results["dropped"], results["retransmits"] = ep.dropped, ep.retransmits
        finally:
            ndd.release()
    return results


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tools.bench.limit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--group", choices=list(GROUPS), required=True)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--only", default="", help="these measures of the group only (comma-separated)")
    p.add_argument("--batch", type=int, default=64, help="frames read per wake-up, so at most this many "
                   "segments per cumulative ACK (default 64)")
    a = p.parse_args()
    try:
        out = child(a)
    except Exception as exc:
        out = {"error": reason(exc)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
