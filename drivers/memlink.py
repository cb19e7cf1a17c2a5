"""In-process links: a pair of NDDs wired together (optional latency), and loopback.

Frames are copied on output (the receiver owns its buffer, as over a wire) and
delivered by a task of the receiving side, never re-entrantly from `ndd_output`.
The queue is bounded; overflow counts `ndd_xmitque_ovf` on the sender like a full TX ring,
and the sender's ndd_xmitque_cur/max are that queue's length (the frames on the cable).
"""
from __future__ import annotations

import errno
from collections import deque
from typing import Any

import trio

from ndd import constants as C
from ndd.ndd import StatusBlock
from ndd.pktbuf import PacketBuffer

from .base import TaskNdd, random_mac


class MemoryNdd(TaskNdd):
    linktype = 1

    def __init__(self, name: str, *, kind: str = "ether", mtu: int = 1500, latency: float = 0.0,
                 queue_len: int = 4096, physaddr: bytes | None = None) -> None:
        if kind not in ("ether", "rawip"):
            raise ValueError("kind must be 'ether' or 'rawip'")
        self.ndd_type = C.NDD_ISO88023 if kind == "ether" else C.NDD_RAWIP
        self.ndd_addrlen = 6 if kind == "ether" else 0
        self.ndd_hdrlen = 14 if kind == "ether" else 0
        self.linktype = 1 if kind == "ether" else 101
        super().__init__(name, mtu=mtu, physaddr=(physaddr or random_mac()) if kind == "ether" else b"")
        self.latency = latency
        self.queue_len = queue_len
        self.peer: MemoryNdd | None = None
        self._queue: deque[tuple[float, bytes]] = deque()
        self._wake = trio.Event()

    def _open_device(self) -> None:
        self._queue.clear()
        self.start_task(self._delivery)
        self.report_status(StatusBlock(C.NDD_STATUS, (C.NDD_LINK_UP,)))

    def _transmit(self, pkt: PacketBuffer) -> int:
        peer = self.peer
        if peer is None or not peer.is_open:
            return errno.ENETDOWN if peer is None else 0   # a closed far end is a cable to nowhere
        if len(peer._queue) >= peer.queue_len:
            return errno.ENOBUFS
        peer._queue.append((self.attached.clock() + self.latency if self.latency else 0.0, pkt.tobytes()))
        if len(peer._queue) > self.stats.ndd_xmitque_max:
            self.stats.ndd_xmitque_max = len(peer._queue)
        peer._wake.set()
        return 0

    def xmitque_len(self) -> int:
        return len(self.peer._queue) if self.peer is not None else 0

    async def _delivery(self) -> None:
        clock = self.attached.clock
        idle = True
        while True:
            if not self._queue:
                idle = True
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            if idle:
                idle = False
                self.stats.ndd_recvintr += 1      # frames to take after idling: a receive interrupt
            due, data = self._queue[0]
            if due and due > clock():
                await trio.sleep_until(due)
            self._queue.popleft()
            self.deliver(PacketBuffer(data))
            if len(self._queue) % 64 == 0:
                await trio.lowlevel.checkpoint()   # let the other side run under load


def memory_link_pair(name_a: str, name_b: str, **kw: Any) -> tuple[MemoryNdd, MemoryNdd]:
    """Two NDDs joined by a virtual cable.  kw: kind ('ether'/'rawip'), mtu, latency, queue_len."""
    a, b = MemoryNdd(name_a, **kw), MemoryNdd(name_b, **kw)
    a.peer, b.peer = b, a
    return a, b


class LoopbackNdd(MemoryNdd):
    """The software loopback: what goes out comes back in (via the delivery task)."""

    def __init__(self, name: str = "lo", *, mtu: int = 65536) -> None:
        super().__init__(name, kind="rawip", mtu=mtu)
        self.ndd_type = C.NDD_SOFTWARE_LOOPBACK
        self.peer = self
