"""A fault injector that wraps any NDD: seeded drop, duplicate, reorder, corrupt, delay.

It is an NDD itself (attach it instead of the inner device).  Each fault has a
probability in [0, 1]; `direction` picks which way faults apply ("both", "in", "out").
Everything is driven by `random.Random(seed)`, so a failing test replays exactly.
  reorder: a frame is held back and released after the next one (or after `hold`),
  delay:   a frame is released `delay_time` later (others overtake it),
  corrupt: one random bit of the frame is flipped,
  blackhole_mtu: a frame whose packet (the frame less the link header) is longer is
           dropped silently -- a path-MTU black hole: a router that drops what it cannot
           forward and sends no ICMP "fragmentation needed" (RFC 2923 §2.1).
Frames keep their offload metadata (partial checksum, GSO, checksum-valid), so the
injector can wrap a TUN/TAP device with offloads on.  Corruption models the wire: a
partial checksum is finished in software first, a "checksum valid" mark is dropped, and
a GSO super-frame (whose checksums the device computes later) is dropped instead.
"""
from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import trio

from ndd.counters import Counters
from ndd.gso import finish_checksum
from ndd.ndd import Ndd
from ndd.pktbuf import PacketBuffer

from .base import TaskNdd


@dataclass
class FaultStats(Counters):
    passed: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    delayed: int = 0
    blackholed: int = 0



class FaultInjector(TaskNdd):
    def __init__(self, inner: Ndd, *, seed: int = 0, drop: float = 0.0, duplicate: float = 0.0,
                 reorder: float = 0.0, corrupt: float = 0.0, delay: float = 0.0,
                 delay_time: float = 0.05, hold: float = 0.02, direction: str = "both",
                 name: str | None = None, blackhole_mtu: int = 0) -> None:
        if direction not in ("both", "in", "out"):
            raise ValueError("direction must be 'both', 'in' or 'out'")
        for p in (drop, duplicate, reorder, corrupt, delay):
            if not 0.0 <= p <= 1.0:
                raise ValueError("fault probabilities must be within [0, 1]")
        self.ndd_type = inner.ndd_type
        self.ndd_addrlen = inner.ndd_addrlen
        self.ndd_hdrlen = inner.ndd_hdrlen
        self.linktype = inner.linktype
        super().__init__(name or inner.ndd_name, mtu=inner.ndd_mtu, physaddr=inner.ndd_physaddr)
        self.ndd_flags = inner.ndd_flags
        self.caps = inner.caps
        self.inner = inner
        self.rng = random.Random(seed)
        self.p = dict(drop=drop, duplicate=duplicate, reorder=reorder, corrupt=corrupt, delay=delay)
        self.delay_time, self.hold = delay_time, hold
        self.blackhole_mtu = blackhole_mtu
        self.direction = direction
        self.faults = FaultStats()
        self._timed: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._held: dict[str, tuple[float, PacketBuffer] | None] = {"in": None, "out": None}
        self._wake = trio.Event()

    def _open_device(self) -> None:
        self.inner.services = self.services
        self.inner.nd_receive = self._from_inner
        self.inner.nd_status = lambda ndd, block: self.report_status(block)
        self.inner.nd_rx_batch = self._rx_batch
        self.inner.ndd_open()
        self.start_task(self._timer)

    def _close_device(self) -> None:
        super()._close_device()
        self.inner.ndd_close()

    # --- both directions funnel through _apply --------------------------------
    def _transmit(self, pkt: PacketBuffer) -> int:
        if self.direction == "in":
            return self.inner.ndd_output(pkt)
        self._apply("out", pkt.copy(), self._send_inner)
        return 0

    def _send_inner(self, pkt: PacketBuffer) -> None:
        self.inner.ndd_output(pkt)

    def _rx_batch(self, starting: bool) -> None:
        """The inner device's read batches are this device's (its user coalesces work per
        batch, e.g. TCP's ACKs); frames held back and released by the timer come outside one."""
        if self.nd_rx_batch is not None:
            self.nd_rx_batch(starting)

    def _from_inner(self, inner: Ndd, pkt: PacketBuffer) -> None:
        if self.direction == "out":
            self.deliver(pkt)
            return
        self._apply("in", pkt.copy(), self.deliver)

    def _apply(self, way: str, data: PacketBuffer, sink: Callable[[PacketBuffer], None]) -> None:
        if self.blackhole_mtu and len(data) - self.ndd_hdrlen > self.blackhole_mtu and not data.gso_size:
            self.faults.blackholed += 1
            return
        rnd, p = self.rng.random, self.p
        if rnd() < p["drop"]:
            self.faults.dropped += 1
            return
        if len(data) and rnd() < p["corrupt"]:
            if data.gso_size:
                self.faults.dropped += 1
                return
            finish_checksum(data)
            data.csum_valid = False
            i = data.start + self.rng.randrange(len(data))
            _writable(data)[i] ^= 1 << self.rng.randrange(8)
            self.faults.corrupted += 1
        copies = 1
        if rnd() < p["duplicate"]:
            copies = 2
            self.faults.duplicated += 1
        now = self.attached.clock()
        # the duplicate is copied before the original goes anywhere: a receiver may pull
        # headers off the buffer it is handed (Ipv4.input does)
        frames = (data,) if copies == 1 else (data, data.copy())
        for frame in frames:
            if rnd() < p["delay"]:
                self.faults.delayed += 1
                self._later(now + self.delay_time, partial(sink, frame))
            elif self._held[way] is None and rnd() < p["reorder"]:
                self.faults.reordered += 1
                self._held[way] = (now, frame)
                self._later(now + self.hold, partial(self._release, way, sink))
            else:
                self.faults.passed += 1
                sink(frame)
                self._release(way, sink)

    def _release(self, way: str, sink: Callable[[PacketBuffer], None]) -> None:
        held = self._held[way]
        if held is not None:
            self._held[way] = None
            sink(held[1])

    def _later(self, when: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._timed, (when, self._seq, action))
        self._wake.set()

    async def _timer(self) -> None:
        clock = self.attached.clock
        while True:
            self._wake = trio.Event()
            while self._timed and self._timed[0][0] <= clock():
                _, _, action = heapq.heappop(self._timed)
                action()
            deadline = self._timed[0][0] if self._timed else float("inf")
            with trio.move_on_at(deadline):
                await self._wake.wait()

    # control goes to the real device, except what the wrapper itself answers
    def device_ctl(self, cmd: int, arg: object) -> object:
        return self.inner.ndd_ctl(cmd, arg)


def _writable(pkt: PacketBuffer) -> bytearray:
    """The packet's buffer, made a bytearray if it was read-only (same length, so every
    index stays valid).  The injector's own copies already are."""
    if not isinstance(pkt.buf, bytearray):
        pkt.buf = bytearray(pkt.buf)
    return pkt.buf
