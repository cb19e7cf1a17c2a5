"""The gateway's TCP relay without a task per flow: each guest connection (a tunstack
connection, driven through its protocol's user requests) is spliced to its host socket by
callbacks -- the connection's upcall on the guest side, one epoll over every host socket on
the other -- the way passt and libslirp run all their flows from one event loop.

Why (issue 13: the gateway's request/response and connection rates): the stream relay
(relay.py) moves each read through two trio tasks per flow and trio's socket and stream
layers, with an epoll re-registration per wait -- three task steps per guest round trip.
Here a guest segment's data goes to the host socket at the end of the device read that
brought it (the Stack's rx-batch hook, in the device reader's own step), and the host's
answer goes out to the guest in the one step of the poller's task that read it.

The rules are relay.py's (issue 13, "TCP"), kept by the same budget:
  * backpressure: a read (at most `RelayBudget.chunk_max`, counted in the budget) goes to
    the far side at once, and what it does not take is the one read a direction holds;
    until the far side takes it, that direction stops reading -- the guest's receive
    window, or the host socket's, closes towards the faster peer;
  * half-close: an EOF (the guest's FIN, the host's EOF) becomes SHUT_WR on the other side
    once everything read before it is handed over; the other direction flows on;
  * resets: a side that resets (or fails) is answered by resetting the other -- SO_LINGER
    {1, 0}, then close: an RST (RFC 9293 §3.10.7.1) -- and the splice ends.
"""
from __future__ import annotations

import errno
import os
import select
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from protocols.contracts import SS_CANTRCVMORE, SS_IN_CONNECTION

from .relay import LINGER_RST, RelayBudget, RelayResult


class HostSide(Protocol):
    """What the poller serves: a host socket's owner (a Splice, or lean.LeanRelay)."""
    host: socket.socket

    def on_host(self, events: int) -> None: ...

    def abort(self) -> None: ...


_EAGAIN = -errno.EAGAIN
_IN, _OUT = select.EPOLLIN, select.EPOLLOUT
READS_PER_WAKE = 4                # host reads per epoll report, while each comes back full


@dataclass
class SpliceStats:
    spliced: int = 0              # flows handed to a splice
    wakeups: int = 0              # the poller's task woke (host sockets ready, or a kick)
    kicks: int = 0                # upcalls outside a device read (a timer's): the eventfd written
    guest_runs: int = 0           # guest sides served after their upcalls
    polled: int = 0               # host sockets found ready by a busy poll (stack/busypoll.py)


class SplicePoller:
    """Every splice of one Stack: the host sockets in one level-triggered epoll (registered
    once, modified only when a direction stops or resumes), waited on by one trio task, and
    the guest sides woken by their connections' upcalls.  An upcall only marks its splice:
    the work runs at the end of the device read under way (`Stack.rx_batch_hooks`), or, for
    an upcall from elsewhere (a timer), in the poller's task, kicked through an eventfd."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self._epoll = select.epoll()
        self._kick = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._kick, _IN)
        self._by_fd: dict[int, HostSide] = {}          # host sockets in the epoll
        self._live: dict[HostSide, None] = {}          # every relay not yet ended (reset when we stop)
        self._marked: dict[Splice, None] = {}         # guest sides to look at (insertion order)
        self._busy = False                            # inside a drain: marks wait for its end
        self._kicked = False
        self.stats = SpliceStats()
        self.wake_hooks: list[Callable[[], None]] = []   # at each wake, before its work (stack/busypoll.py)
        # awaited before each wait on the epoll: a busy poller that polls it itself holds the
        # task back while it does (stack/busypoll.py BusyPoller.while_polling)
        self.defer: Callable[[], Awaitable[None]] | None = None
        stack.rx_batch_hooks.append(self.drain)

    def mark(self, sp: Splice) -> None:
        """A guest side changed (the upcall): look at it at the next drain.  Inside a device
        read that is the rx-batch hook; a later hook that can make upcalls (the TCP gateway's
        `_serve_held`, splicing new flows) drains again itself."""
        self._marked[sp] = None
        if not (self._busy or self.stack.in_rx_batch or self._kicked):
            self._kicked = True
            self.stats.kicks += 1
            os.eventfd_write(self._kick, 1)

    def drain(self) -> None:
        """Serve the marked guest sides (the rx-batch hook, and the poller after each wake)."""
        marked = self._marked
        if not marked or self._busy:
            return
        self._busy = True
        try:
            while marked:
                sp = next(iter(marked))
                del marked[sp]
                self.stats.guest_runs += 1
                sp.on_guest()
        finally:
            self._busy = False

    async def run(self) -> None:
        """Serve the host sockets until cancelled; then every splice still open is reset."""
        epoll, kick = self._epoll, self._kick
        try:
            while True:
                if self.defer is not None:
                    await self.defer()
                await trio.lowlevel.wait_readable(epoll.fileno())
                self.stats.wakeups += 1
                for hook in self.wake_hooks:
                    hook()
                self._serve(epoll.poll(0))
        finally:
            self.stack.rx_batch_hooks.remove(self.drain)
            for sp in list(self._live):
                sp.abort()
            epoll.close()
            os.close(kick)

    def fileno(self) -> int:
        """The host sockets' epoll: readable while any of them is ready (a busy poller watches it)."""
        return self._epoll.fileno()

    def poll(self) -> bool:
        """The host sockets looked at without waiting, for a busy poll (stack/busypoll.py):
        True if any was ready (and served).  After the poller's end (its epoll closed), False."""
        if self._epoll.closed:
            return False
        events = self._epoll.poll(0)
        if not events:
            return False
        self.stats.polled += len(events)
        self._serve(events)
        return True

    def _serve(self, events: list[tuple[int, int]]) -> None:
        by_fd = self._by_fd
        self._busy = True
        try:
            for fd, mask in events:
                sp = by_fd.get(fd)
                if sp is not None:
                    sp.on_host(mask)
                elif fd == self._kick:
                    self._kicked = False
                    try:
                        os.eventfd_read(self._kick)
                    except BlockingIOError:
                        pass
        finally:
            self._busy = False
        self.drain()

    def _watch(self, sp: HostSide, mask: int) -> None:
        """Watch `sp`'s host socket for `mask`; 0 takes it out of the epoll altogether (a
        level-triggered EPOLLHUP cannot be masked, and would spin while a direction waits)."""
        fd = sp.host.fileno()
        if fd in self._by_fd:
            if mask:
                self._epoll.modify(fd, mask)
            else:
                del self._by_fd[fd]
                self._epoll.unregister(fd)
        elif mask:
            self._by_fd[fd] = sp
            self._epoll.register(fd, mask)

    def _forget(self, sp: HostSide, closing: bool = False) -> None:
        """Stop watching `sp`'s host socket (`closing`: it is about to be closed, which takes
        it out of the epoll by itself -- one epoll_ctl per flow saved)."""
        fd = sp.host.fileno()
        if self._by_fd.get(fd) is sp:
            del self._by_fd[fd]
            if not closing:
                self._epoll.unregister(fd)
        if isinstance(sp, Splice):
            self._marked.pop(sp, None)


class PolledHost:
    """What a relay whose host socket the poller watches shares (Splice, lean.LeanRelay):
    the clock and the epoll interest, changed only when it changes."""
    poller: SplicePoller
    host: socket.socket
    _mask: int
    ended: bool

    def on_host(self, events: int) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def _now(self) -> float:
        return float(self.poller.stack.now())

    def _want(self, mask: int) -> None:
        if mask != self._mask and not self.ended:
            self._mask = mask
            self.poller._watch(self, mask)


class Splice(PolledHost):
    """One guest connection (`pcb` of the Stack's TCP) and its connected host socket."""

    def __init__(self, poller: SplicePoller, pcb: Any, ops: Any, host: socket.socket, budget: RelayBudget,
                 on_end: Callable[[RelayResult], None]) -> None:
        self.poller, self.pcb, self.ops, self.host = poller, pcb, ops, host
        self.budget = budget
        self.result = RelayResult()
        self._on_end = on_end
        self._to_host: memoryview | None = None       # read from the guest, not yet taken by the host
        self._to_host_held = 0                        # its budget reservation
        self._to_guest: memoryview | None = None      # read from the host, not yet taken by the guest
        self._to_guest_held = 0
        self._mask = _IN
        self.ended = False
        host.setblocking(False)
        poller.stats.spliced += 1
        poller._live[self] = None
        ops.set_upcall(pcb, self._upcall)
        poller._watch(self, _IN)
        poller.mark(self)                             # data may have come with the handshake

    def _upcall(self) -> None:
        self.poller.mark(self)

    # --- guest -> host ----------------------------------------------------------------------
    def on_guest(self) -> None:
        """The guest side changed: move its data to the host, and resume host reads that
        waited for room in the guest's send buffer."""
        if self.ended:
            return
        if self._to_guest is not None and self.ops.writable(self.pcb):
            self._host_readable()
            if self.ended:
                return
        self._guest_to_host()

    def _guest_to_host(self) -> None:
        ops, pcb, way = self.ops, self.pcb, self.result.to_host
        if way.eof and ops.take_error(pcb):            # reset after its FIN: nothing else will tell
            way.reset = True
            self._end()
            return
        while not way.eof and self._to_host is None:
            n = self.budget.reserve(self.budget.chunk_max)
            item = ops.recv(pcb, n, False, self._now())
            if item is None:
                self.budget.release(n)
                err = ops.take_error(pcb)
                state = ops.state(pcb)
                if err:
                    way.reset = True
                    self._end()
                elif state & SS_CANTRCVMORE or not state & SS_IN_CONNECTION:
                    way.eof = True
                    self._shut_host()
                return
            data = item[0]
            if not self._send_host(memoryview(data), n):
                return

    def _send_host(self, view: memoryview, held: int) -> bool:
        """Hand `view` to the host socket; what it does not take waits for EPOLLOUT."""
        try:
            sent = self.host.send(view)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.budget.release(held)
            self.result.to_guest.reset = True          # the host side failed
            self._end()
            return False
        self.result.to_host.octets += sent
        if sent < len(view):
            self._to_host, self._to_host_held = view[sent:], held
            self._want(self._mask | _OUT)
            return False
        self.budget.release(held)
        return True

    def _host_writable(self) -> None:
        view, held = self._to_host, self._to_host_held
        if view is None:
            self._want(self._mask & ~_OUT)
            return
        self._to_host = None
        if self._send_host(view, held):
            self._want(self._mask & ~_OUT)
            self._guest_to_host()

    def _shut_host(self) -> None:
        try:
            self.host.shutdown(socket.SHUT_WR)
        except OSError:
            pass                                       # the host is gone too: its read says so
        self._maybe_done()

    # --- host -> guest ----------------------------------------------------------------------
    def on_host(self, events: int) -> None:
        if events & _OUT or (events & (select.EPOLLERR | select.EPOLLHUP) and self._to_host is not None):
            self._host_writable()
        if not self.ended and events & ~_OUT:
            self._host_readable()

    def _host_readable(self) -> None:
        """Move what the host socket holds to the guest: up to READS_PER_WAKE full reads while
        the guest takes them all (level-triggered: the epoll says again if more is left)."""
        way = self.result.to_guest
        if self._to_guest is not None:
            view, held = self._to_guest, self._to_guest_held
            self._to_guest = None
            if not self._send_guest(view, held):
                return
        for _ in range(READS_PER_WAKE):
            if way.eof or self.ended:
                return
            n = self.budget.reserve(self.budget.chunk_max)
            try:
                data = self.host.recv(n)
            except BlockingIOError:
                self.budget.release(n)
                return
            except OSError:
                self.budget.release(n)
                way.reset = True
                self._end()
                return
            if not data:
                self.budget.release(n)
                way.eof = True
                self._want(self._mask & ~_IN)
                self.ops.shutdown(self.pcb, socket.SHUT_WR, self._now())
                self._maybe_done()
                return
            if not self._send_guest(memoryview(data), n) or len(data) < n:
                return

    def _send_guest(self, view: memoryview, held: int) -> bool:
        """Hand `view` to the guest's connection; what its send buffer does not take waits,
        and host reads pause, until the upcall says there is room."""
        n = self.ops.send(self.pcb, view, None, self._now(), 0)
        if n < 0 and n != _EAGAIN:                      # EPIPE, ECONNRESET: the guest is gone
            self.budget.release(held)
            self.result.to_host.reset = True
            self._end()
            return False
        sent = max(n, 0)
        self.result.to_guest.octets += sent
        if sent < len(view):
            self._to_guest, self._to_guest_held = view[sent:], held
            self._want(self._mask & ~_IN)
            return False
        self.budget.release(held)
        if not self.result.to_guest.eof:
            self._want(self._mask | _IN)
        return True

    # --- the end ----------------------------------------------------------------------------
    def _maybe_done(self) -> None:
        r = self.result
        if r.to_host.eof and r.to_guest.eof and self._to_host is None and self._to_guest is None:
            self._end()

    def abort(self) -> None:
        """The gateway stops: both sides reset."""
        if not self.ended:
            self.result.to_host.reset = True
            self._end()

    def _end(self) -> None:
        """Close both sides -- the other side reset when one did -- and report."""
        if self.ended:
            return
        self.ended = True
        self.poller._forget(self)
        self.poller._live.pop(self, None)
        for held in (self._to_host_held if self._to_host is not None else 0,
                     self._to_guest_held if self._to_guest is not None else 0):
            self.budget.release(held)
        self._to_host = self._to_guest = None
        ops, pcb, now = self.ops, self.pcb, self._now()
        ops.set_upcall(pcb, _nobody)
        if self.result.to_host.reset:                  # the guest reset: the host gets an RST
            try:
                self.host.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
            except OSError:
                pass
        elif self.result.to_guest.reset:               # the host reset: the guest gets an RST
            ops.setsockopt(pcb, socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST, now)
        self.host.close()
        ops.detach(pcb, now)
        self._on_end(self.result)


def _nobody() -> None:
    """The upcall of a splice that ended: the connection lives on as an orphan."""


__all__ = ["Splice", "SplicePoller", "SpliceStats"]
