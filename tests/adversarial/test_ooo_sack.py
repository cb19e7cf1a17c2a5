"""Out-of-order and SACK floods against a running stack (issue 10 points 2 and 3).

A hand-made TCP peer in the namespace -- an AF_PACKET socket on the kernel side of the
TUN device, speaking from an address the namespace's kernel does not own (10.77.0.50),
so the kernel neither answers the stack's segments with RSTs nor gets in the way --
opens a real connection to a stack listener and then:

  * SegmentSmack (CVE-2018-5390): sends 1-byte segments each leaving a 1-byte hole, so
    every one is a new out-of-order block.  The stack's CPU per segment must stay flat
    (the last phase costs < 3x the first) and under a generous absolute bound, and its
    out-of-order queue must stay within its block cap (the excess is dropped, counted).
  * SACK panic (CVE-2019-11477/8): lets the stack send bulk to it and answers with
    duplicate ACKs carrying four 1-byte SACK blocks each, all new ranges.  The CPU per
    ACK must stay flat and bounded, the scoreboard within its cap (the excess ignored,
    counted).

The attack runs in phases; after each the attacker prints `done`, the test reads the
stack's CPU (it runs in this process: time.process_time) and the segments it processed
(TcpStats counters, so segments lost in the TUN queue do not count), then says `go`.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import Any

import trio

from protocols.tcp.buffers import SACK_MAX_RANGES

from .conftest import Peer, soak

ATTACKER_IP = "10.77.0.50"          # on the namespace's subnet, owned by nobody there
PHASE = 1000                        # segments (or ACKs) per measured phase

ATTACKER = r"""
import os, select, socket, struct, sys, time
dev, src, dst, dport, mode, total, phase = sys.argv[1:8]
dport, total, phase = int(dport), int(total), int(phase)
SRC, DST = socket.inet_aton(src), socket.inet_aton(dst)
SPORT = 40000 + os.getpid() % 20000
ACKF, PSH, SYN = 0x10, 0x08, 0x02
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))   # ETH_P_ALL: TUN frames are IP
s.bind((dev, 3))
s.setblocking(False)

def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF

def segment(seq, ack, flags, win, opts=b"", payload=b""):
    hdr = bytearray(struct.pack("!HHIIBBHHH", SPORT, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                                (20 + len(opts)) // 4 << 4, flags, win, 0, 0) + opts)
    pseudo = SRC + DST + struct.pack("!BBH", 0, 6, len(hdr) + len(payload))
    struct.pack_into("!H", hdr, 16, csum(pseudo + bytes(hdr) + payload))
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(hdr) + len(payload), 0, 0x4000, 64, 6, 0,
                               SRC, DST))
    struct.pack_into("!H", ip, 10, csum(bytes(ip)))
    while True:
        try:
            s.send(bytes(ip + hdr) + payload)
            return
        except BlockingIOError:
            time.sleep(0.0005)

def receive(timeout):
    # (seq, ack, flags, datalen) of one segment from the stack to us, or None
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left < 0 or not select.select([s], [], [], left)[0]:
            return None
        while True:
            try:
                frame, addr = s.recvfrom(70000)
            except BlockingIOError:
                break
            if addr[2] == 4 or len(frame) < 40 or frame[9] != 6 or frame[16:20] != SRC:
                continue                                     # ours going out, or not TCP to us
            ihl = (frame[0] & 15) * 4
            sp, dp, seq, ack, off, flags = struct.unpack_from("!HHIIBB", frame, ihl)
            if sp != dport or dp != SPORT:
                continue
            total_len = struct.unpack_from("!H", frame, 2)[0]
            return seq, ack, flags, total_len - ihl - (off >> 4) * 4

def phase_done(k):
    print("done", k, flush=True)
    assert sys.stdin.readline().strip() == "go"

# the handshake: MSS 1460, window scale 7, SACK permitted; no timestamps
ISN = 1000
segment(ISN, 0, SYN, 0xFFFF, b"\x02\x04\x05\xb4\x01\x03\x03\x07\x04\x02\x01\x01")
while True:
    r = receive(5)
    assert r is not None, "no SYN-ACK"
    if r[2] & (SYN | ACKF) == SYN | ACKF:
        break
ISS = r[0]
UNA = (ISS + 1) & 0xFFFFFFFF
WIN = 0xFFFF
segment(ISN + 1, UNA, ACKF, WIN)
print("established", flush=True)
assert sys.stdin.readline().strip() == "go"                    # the test accepted the connection

if mode == "ooo":
    # 1-byte segments, each one past a 1-byte hole: every one a new out-of-order block;
    # closed loop on the stack's immediate ACKs (RFC 5681 §4.2) so the TUN queue keeps up
    acked = 0
    for i in range(total):
        segment(ISN + 3 + 2 * i, UNA, ACKF | PSH, WIN, payload=b"x")
        while receive(0) is not None:
            acked += 1
        while i + 1 - acked > 32 and receive(0.5) is not None:
            acked += 1
        if (i + 1) % phase == 0:
            while acked < i + 1 and receive(0.3) is not None:
                acked += 1
            phase_done((i + 1) // phase)
else:
    # let the stack fill its initial window, then duplicate ACKs with four new 1-byte SACK
    # blocks each (1-byte gaps between them), cycling over the data in flight
    high = UNA
    t_end = time.monotonic() + 3
    while time.monotonic() < t_end:
        r = receive(0.3)
        if r is None:
            if (high - UNA) & 0xFFFFFFFF >= 8 * 1400:
                break
            continue
        if r[3]:
            end = (r[0] + r[3]) & 0xFFFFFFFF
            if (end - high) & 0xFFFFFFFF < 1 << 31:
                high = end
    flight = (high - UNA) & 0xFFFFFFFF
    assert flight >= 4000, f"the stack sent only {flight} bytes"
    print("flight", flight, flush=True)
    slots = flight // 2 - 1
    k = 0
    for i in range(total):
        blocks = b""
        for j in range(4):
            left = (UNA + 1 + 2 * ((k + j) % slots)) & 0xFFFFFFFF
            blocks += struct.pack("!II", left, (left + 1) & 0xFFFFFFFF)
        k += 4
        segment(ISN + 1, UNA, ACKF, WIN, b"\x01\x01\x05\x22" + blocks)
        if i % 16 == 15:
            while receive(0) is not None:
                pass
            time.sleep(0.001)                                  # ~10k ACKs/s at most
        if (i + 1) % phase == 0:
            time.sleep(0.2)                                    # let the stack drain the TUN queue
            phase_done((i + 1) // phase)
"""


class Attack:
    """The attacker process in the namespace, and per-phase CPU figures of the stack."""

    def __init__(self, peer: Peer, proc: trio.Process) -> None:
        self.peer = peer
        self.proc = proc
        self.buf = b""
        self.phases: list[tuple[float, int]] = []      # (CPU seconds, segments processed) per phase

    @classmethod
    async def start(cls, peer: Peer, port: int, mode: str, total: int) -> Attack:
        argv = peer.exec(sys.executable, "-c", ATTACKER, peer.dev, ATTACKER_IP, peer.stack_ip, str(port), mode,
                         str(total), str(PHASE))
        proc = await trio.lowlevel.open_process(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE)
        return cls(peer, proc)

    async def line(self, timeout: float = 30) -> str:
        assert self.proc.stdout is not None
        with trio.fail_after(timeout):
            while b"\n" not in self.buf:
                chunk = await self.proc.stdout.receive_some()
                if not chunk:
                    assert self.proc.stderr is not None
                    err = await self.proc.stderr.receive_some()
                    raise AssertionError(f"attacker exited: {self.buf!r} {err!r}")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    async def measure(self, phases: int, processed: Any, probe: Any = None) -> list[Any]:
        """Run `phases` phases; `processed()` counts segments the stack handled so far,
        `probe()` (optional) samples some state after each phase."""
        assert self.proc.stdin is not None
        samples = []
        cpu, count = time.process_time(), processed()
        for k in range(1, phases + 1):
            assert await self.line(120) == f"done {k}"
            now_cpu, now_count = time.process_time(), processed()
            self.phases.append((now_cpu - cpu, now_count - count))
            if probe is not None:
                samples.append(probe())
            cpu, count = time.process_time(), processed()
            await self.proc.stdin.send_all(b"go\n")
        with trio.fail_after(10):
            await self.proc.wait()
        assert self.proc.returncode == 0
        return samples

    async def go(self) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.send_all(b"go\n")

    def per_segment_us(self) -> list[float]:
        return [1e6 * secs / max(n, 1) for secs, n in self.phases]

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


def listener(peer: Peer, port: int) -> Any:
    lst = peer.stack.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("", port))
    lst.listen(4)
    return lst


async def test_ooo_flood_cost_per_segment_stays_flat(tun_peer: Peer) -> None:
    """1-byte segments past 1-byte holes (SegmentSmack): CPU per segment flat and bounded,
    the out-of-order queue within its cap, the excess dropped and counted."""
    total = soak(10_000, 200_000)
    tcp = tun_peer.stack.tcp
    with listener(tun_peer, 7101) as lst:
        attack = await Attack.start(tun_peer, 7101, "ooo", total)
        try:
            assert await attack.line() == "established"
            with trio.fail_after(10):
                conn, addr = await lst.accept()
            assert addr[0] == ATTACKER_IP
            pcb = conn._pcb
            before = tcp.stats.ooo_segs + tcp.stats.ofo_dropped
            await attack.go()
            blocks = await attack.measure(total // PHASE, lambda: tcp.stats.ooo_segs + tcp.stats.ofo_dropped,
                                          lambda: pcb.rcv.ooo_count)
            handled = tcp.stats.ooo_segs + tcp.stats.ofo_dropped - before
            conn.close()
        finally:
            attack.kill()
    cost = attack.per_segment_us()
    print(f"OOO flood: {handled}/{total} segments handled, us/segment per phase: {[round(c) for c in cost]}, "
          f"blocks {blocks[-1]}, ofo_dropped {tcp.stats.ofo_dropped}")
    limit = pcb.rcv.ooo_block_limit()
    assert handled >= total // 2                         # the closed loop keeps the TUN queue from overflowing
    assert max(blocks) <= limit and blocks[-1] == limit
    # ascending 1-byte blocks: the first `limit` are queued, every later one dropped
    assert tcp.stats.ofo_dropped == handled - limit
    # flat: the last phase costs less than 3x the first; bounded: measured ~60-150 us/segment
    # on the shared 2-core machine (1.7 ms at 10 000 holes before the fix) -- 1.5 ms is generous
    assert cost[-1] < 3 * cost[0], cost
    assert max(cost) < 1500, cost


async def test_sack_flood_cost_per_ack_stays_flat(tun_peer: Peer) -> None:
    """Duplicate ACKs with four new 1-byte SACK blocks each against a stack sender (SACK
    panic): CPU per ACK flat and bounded, the scoreboard within its cap, the excess ignored."""
    total = soak(6_000, 100_000)
    tcp = tun_peer.stack.tcp
    with listener(tun_peer, 7102) as lst:
        attack = await Attack.start(tun_peer, 7102, "sack", total)
        try:
            assert await attack.line() == "established"
            with trio.fail_after(10):
                conn, _ = await lst.accept()
            pcb = conn._pcb
            await attack.go()
            async with trio.open_nursery() as nursery:
                async def bulk() -> None:
                    await conn.sendall(bytes(1 << 20))
                nursery.start_soon(bulk)
                flight = await attack.line()
                assert flight.startswith("flight")
                sizes = await attack.measure(total // PHASE, lambda: tcp.stats.in_segs, lambda: len(pcb.scoreboard))
                nursery.cancel_scope.cancel()
            conn.close()
        finally:
            attack.kill()
    cost = attack.per_segment_us()
    handled = sum(n for _, n in attack.phases)
    print(f"SACK flood ({flight}): {handled}/{total} ACKs handled, us/ACK per phase: {[round(c) for c in cost]}, "
          f"scoreboard {sizes}, ignored {tcp.stats.sack_blocks_ignored}")
    assert handled >= total // 2                         # paced: most reach the stack
    assert max(sizes) <= SACK_MAX_RANGES
    assert tcp.stats.sack_blocks_ignored > 0
    # measured ~40-120 us/ACK on the shared 2-core machine (3.5-39 ms before the fix)
    assert cost[-1] < 3 * cost[0], cost
    assert max(cost) < 1500, cost
