"""PHYs for the emulated ATM adapter: the "fibre" that carries 53-octet UNI cells.

A PHY moves opaque blobs of N*53 octets; it never looks inside a cell (HEC, VPI/VCI
and AAL5 are the adapter's business, as on a real SONET framer).  The adapter
(`drivers.atm.adapter.AtmNdd`) plugs itself in with `phy.bind(rx, status)` and then calls
`open(start_task)` / `close()` / `send(cells)`.

  PhyPair  two ends in one process (tests): cells are copied into the peer's queue and
           delivered by the peer's task after an optional latency, never re-entrantly.
           Carrier: an end is up while both ends are open (the far end closing is loss
           of signal, reported as NDD_LINK_DOWN by the adapter).
  UdpPhy   cells over UDP datagrams between processes.  Datagram format (version 1):

             octet 0..3   magic/version  b"ATM\\x01"
             octet 4..    N cells, N >= 1, each the full 53-octet UNI cell
                          (4 header octets + HEC + 48 payload octets), in wire order

           so a datagram is 4 + 53*N octets.  A datagram with another magic/version or a
           length that is not 4 + 53*N is dropped and counted (`bad_datagrams`).  The
           sender packs up to `cells_per_datagram` (default 24: 1276 octets, below a
           1500-octet IP MTU so nothing is fragmented) cells per datagram; cells of one
           send() never reorder.  UDP has no carrier: the PHY is up while its socket is
           open.  The socket is bound at construction so `local_address` is known
           before the far end is configured (`remote=`, or `connect(addr)` later).
           A configured far end is also a filter: datagrams from any other address are
           dropped and counted (`foreign_datagrams`), as a connected UDP socket would --
           unless `follow_sender`, whose point is to take whoever sends.  The datagrams
           waiting when the reader wakes (up to `batch`) reach the adapter as one block.
           UDP has no back-pressure, so the socket buffers are sized for bursts
           (`rcvbuf`, default 8 MiB: ~200 ms of OC-3c; SO_RCVBUFFORCE when allowed, as
           root, else capped by net.core.rmem_max); the adapter's pacing at the line rate
           keeps a far end that keeps up from losing cells.
"""
from __future__ import annotations

import errno
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import trio

from ndd.counters import Counters

from .cell import CELL_LEN

UDP_MAGIC = b"ATM\x01"
# Socket buffers for UdpPhy.  UDP has no back-pressure: cells arriving while the receiving
# process is busy wait in its socket buffer or are lost.  At OC-3c (353 207 cells/s, 14 717
# datagrams of 24 cells) the default 208 KiB holds ~70 datagrams (the kernel charges ~2.3
# KiB per 1.3 KiB datagram): 5 ms.  8 MiB holds ~200 ms of line time.
DEFAULT_RCVBUF = 8 << 20
DEFAULT_SNDBUF = 1 << 20
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)    # Linux values, in case the module lacks them
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)

RxFn = Callable[[bytes], None]
StatusFn = Callable[[bool], None]
StartTask = Callable[..., None]


@dataclass
class PhyStats(Counters):
    tx_blobs: int = 0
    tx_cells: int = 0
    rx_blobs: int = 0
    rx_cells: int = 0
    tx_drops: int = 0          # cells the line lost on the way out (no peer, socket error)
    tx_busy: int = 0           # send() refused with ENOBUFS: the adapter waits and retries
    bad_datagrams: int = 0     # UDP: wrong magic/version or length
    foreign_datagrams: int = 0  # UDP: from an address other than the configured far end


class Phy:
    """Base PHY.  `rx(cells)` is called from the PHY's task with N*53 octets."""

    def __init__(self) -> None:
        self.rx: RxFn | None = None
        self.status: StatusFn | None = None
        self.up = False
        self.is_open = False
        self.stats = PhyStats()

    def bind(self, rx: RxFn, status: StatusFn) -> None:
        self.rx, self.status = rx, status

    def open(self, start_task: StartTask) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def send(self, cells: bytes) -> int:
        """Put N*53 octets on the line.  0, or ENOBUFS (retry after `wait_writable`) or another errno."""
        raise NotImplementedError

    async def wait_writable(self) -> None:
        await trio.lowlevel.checkpoint()

    def _set_up(self, up: bool) -> None:
        if up != self.up:
            self.up = up
            if self.status is not None:
                self.status(up)


class PairEnd(Phy):
    """One end of a `PhyPair`."""

    def __init__(self, pair: PhyPair) -> None:
        super().__init__()
        self.pair = pair
        self.peer: PairEnd | None = None
        self._queue: deque[tuple[float, bytes]] = deque()
        self._queued_cells = 0
        self._wake = trio.Event()
        self._drained = trio.Event()
        self._clock: Callable[[], float] = trio.current_time

    def open(self, start_task: StartTask) -> None:
        self._queue.clear()
        self._queued_cells = 0
        self.is_open = True
        start_task(self._delivery)
        peer = self.peer
        if peer is not None and peer.is_open:
            peer._set_up(True)
            self._set_up(True)

    def close(self) -> None:
        self.is_open = False
        self._set_up(False)
        if self.peer is not None:
            self.peer._set_up(False)
        self._drained.set()

    def send(self, cells: bytes) -> int:
        peer = self.peer
        if peer is None or not peer.is_open or not self.up:
            self.stats.tx_drops += len(cells) // CELL_LEN
            return errno.ENETDOWN
        n = len(cells) // CELL_LEN
        if peer._queued_cells and peer._queued_cells + n > self.pair.queue_cells:
            self.stats.tx_busy += 1
            return errno.ENOBUFS        # the far end's receive FIFO is full: back-pressure
        latency = self.pair.latency
        peer._queue.append((self._clock() + latency if latency else 0.0, bytes(cells)))
        peer._queued_cells += n
        peer._wake.set()
        self.stats.tx_blobs += 1
        self.stats.tx_cells += n
        return 0

    async def wait_writable(self) -> None:
        peer = self.peer
        if peer is None or peer._queued_cells + 1 <= self.pair.queue_cells:
            await trio.lowlevel.checkpoint()
            return
        peer._drained = trio.Event()
        await peer._drained.wait()

    async def _delivery(self) -> None:
        while True:
            if not self._queue:
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            due, data = self._queue[0]
            if due and due > self._clock():
                await trio.sleep_until(due)
            self._queue.popleft()
            self._queued_cells -= len(data) // CELL_LEN
            self._drained.set()
            self.stats.rx_blobs += 1
            self.stats.rx_cells += len(data) // CELL_LEN
            if self.rx is not None:
                self.rx(data)
            await trio.lowlevel.checkpoint()   # let the sender and the stack run between blobs


class PhyPair:
    """An in-process fibre: `pair.a` and `pair.b` are the two ends (each an adapter's PHY)."""

    def __init__(self, *, latency: float = 0.0, queue_cells: int = 65536) -> None:
        self.latency = latency
        self.queue_cells = queue_cells
        self.a, self.b = PairEnd(self), PairEnd(self)
        self.a.peer, self.b.peer = self.b, self.a


class UdpPhy(Phy):
    """Cells over UDP datagrams (format in the module docstring)."""

    def __init__(self, local: tuple[str, int] = ("127.0.0.1", 0), remote: tuple[str, int] | None = None, *,
                 cells_per_datagram: int = 24, batch: int = 64, follow_sender: bool = False,
                 rcvbuf: int = DEFAULT_RCVBUF, sndbuf: int = DEFAULT_SNDBUF) -> None:
        """`follow_sender`: send to whoever sent the last valid datagram (like `nc -u -l`
        answering its last sender), so far ends in new processes are followed.
        `rcvbuf`/`sndbuf`: socket buffer sizes asked for (octets; 0 keeps the system's);
        `rcvbuf_size`/`sndbuf_size` say what the kernel granted."""
        super().__init__()
        if cells_per_datagram < 1:
            raise ValueError("cells_per_datagram must be >= 1")
        self.cells_per_datagram = cells_per_datagram
        self.batch = batch
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.rcvbuf_size = _size_buffer(self.sock, socket.SO_RCVBUF, _SO_RCVBUFFORCE, rcvbuf)
        self.sndbuf_size = _size_buffer(self.sock, socket.SO_SNDBUF, _SO_SNDBUFFORCE, sndbuf)
        self.sock.bind(local)
        self.local_address: tuple[str, int] = self.sock.getsockname()
        self.remote = remote
        self.follow_sender = follow_sender
        self.learned = trio.Event()         # set once a far end is known
        self._peer: tuple[str, int] | None = None   # the configured far end, numeric: the rx filter
        if remote is not None:
            self.connect(remote)

    def connect(self, remote: tuple[str, int]) -> None:
        self.remote = remote
        self._peer = _numeric(remote)
        self.learned.set()

    def open(self, start_task: StartTask) -> None:
        if self.sock.fileno() < 0:
            raise OSError(errno.EBADF, "UdpPhy socket already closed")
        self.is_open = True
        start_task(self._reader)
        self._set_up(True)

    def close(self) -> None:
        self.is_open = False
        self._set_up(False)

    def shutdown(self) -> None:
        """Release the socket for good (close() keeps it so the adapter can be reopened)."""
        self.close()
        self.sock.close()

    def send(self, cells: bytes) -> int:
        n = len(cells) // CELL_LEN
        if self.remote is None or not self.is_open:
            self.stats.tx_drops += n
            return errno.ENETDOWN
        step = self.cells_per_datagram * CELL_LEN
        view = memoryview(cells)
        for off in range(0, len(cells), step):
            chunk = view[off:off + step]
            try:
                self.sock.sendto(UDP_MAGIC + chunk, self.remote)
            except BlockingIOError:
                if off == 0:
                    self.stats.tx_busy += 1
                    return errno.ENOBUFS
                # part went out: the rest is lost like cells on an overrun line
                self.stats.tx_drops += (len(cells) - off) // CELL_LEN
                return 0
            except OSError:
                # ECONNREFUSED from an earlier ICMP and the like: the far end is not there
                self.stats.tx_drops += (len(cells) - off) // CELL_LEN
                return 0
            self.stats.tx_blobs += 1
        self.stats.tx_cells += n
        return 0

    async def wait_writable(self) -> None:
        await trio.lowlevel.wait_writable(self.sock)

    async def _reader(self) -> None:
        sock = self.sock
        while True:
            await trio.lowlevel.wait_readable(sock)
            # every datagram waiting (up to `batch`) goes up as one block: the adapter's
            # receive path works per block, and datagram bounds mean nothing to cells
            parts: list[memoryview] = []
            for _ in range(self.batch):
                try:
                    data, sender = sock.recvfrom(65536)
                except BlockingIOError:
                    break
                except OSError:
                    continue            # ICMP errors surface here on Linux; nothing to read
                if self._peer is not None and not self.follow_sender and sender[:2] != self._peer:
                    self.stats.foreign_datagrams += 1
                    continue            # not our fibre's far end: spoofed or stray cells
                n, rest = divmod(len(data) - 4, CELL_LEN)
                if data[:4] != UDP_MAGIC or rest or n < 1:
                    self.stats.bad_datagrams += 1
                    continue
                if self.follow_sender:
                    self.remote = sender[:2]
                    self.learned.set()
                self.stats.rx_blobs += 1
                self.stats.rx_cells += n
                parts.append(memoryview(data)[4:])
            if parts and self.rx is not None:
                self.rx(parts[0].tobytes() if len(parts) == 1 else b"".join(parts))


def _size_buffer(sock: socket.socket, opt: int, force_opt: int, size: int) -> int:
    """Ask for a socket buffer of `size` octets: SO_*BUFFORCE first (root may exceed
    net.core.[rw]mem_max), then the plain option (capped by that sysctl).  Returns the
    size the kernel reports (it doubles the request for its bookkeeping)."""
    if size > 0:
        for o in (force_opt, opt):
            try:
                sock.setsockopt(socket.SOL_SOCKET, o, size)
                break
            except OSError:
                continue            # EPERM without CAP_NET_ADMIN: the capped option then
    return int(sock.getsockopt(socket.SOL_SOCKET, opt))


def _numeric(addr: tuple[str, int]) -> tuple[str, int] | None:
    """`addr` as recvfrom reports a sender (dotted quad, port), or None when the name does
    not resolve (then sendto fails too, and nothing is filtered)."""
    try:
        info = socket.getaddrinfo(addr[0], addr[1], socket.AF_INET, socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return None
    host, port = info[0][4][:2]
    return str(host), int(port)
