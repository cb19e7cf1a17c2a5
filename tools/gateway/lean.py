"""The lean TCP relay's host side (issue 13): a relayed flow (protocols/tcp/relayed.py, the
guest side the Tcp core runs without a Connection) and its host socket, served from the
splice poller's epoll like a splice.

What the guest sends reaches the host socket inside the device read that brought it (the
core calls `to_host`); what the host sends is read here when the epoll says so -- at most
what the flow has room for (the guest's window, bounded), so an idle guest leaves the
host's data in the host socket and the kernel's window closes towards the far peer.  The
flow keeps what the guest has not acknowledged; nothing else is buffered here.

The gateway's byte budget (relay.RelayBudget, --max-buffer) counts what every lean flow
holds through the Tcp core's relay table (`held_elsewhere`): over it, a read is cut to
`chunk_min` and new flows are refused, as for the splice.
"""
from __future__ import annotations

import select
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from .relay import LINGER_RST, RelayBudget, RelayResult
from .splice import PolledHost, SplicePoller

if TYPE_CHECKING:
    from protocols.tcp.relayed import RelayedFlow

# EPOLLRDHUP with every read interest: an event that says the host's FIN is queued behind its
# data lets one wake-up read both and send the guest one segment with data and FIN
_IN, _OUT, _RDHUP = select.EPOLLIN | select.EPOLLRDHUP, select.EPOLLOUT, select.EPOLLRDHUP
_ERR = select.EPOLLERR | select.EPOLLHUP
READS_PER_WAKE = 4                # host reads per epoll report, while each comes back full


class LeanRelay(PolledHost):
    """The host socket of one relayed flow (the flow's RelayHost)."""

    def __init__(self, poller: SplicePoller, host: socket.socket, budget: RelayBudget,
                 on_end: Callable[[RelayResult], None]) -> None:
        self.poller, self.host, self.budget = poller, host, budget
        self.flow: RelayedFlow | None = None          # set once the core made it (forward_relay)
        self.result = RelayResult()
        self._on_end = on_end
        self._mask = 0                                # not in the epoll until the flow opens
        self.ended = False                            # (`host` is non-blocking: hosttcp.start_connect)
        poller._live[self] = None

    # --- RelayHost: what the flow asks ------------------------------------------------------------
    def to_host(self, data: memoryview) -> int:
        try:
            sent = self.host.send(data)
        except BlockingIOError:
            return 0
        except OSError:
            return -1
        self.result.to_host.octets += sent
        return sent

    def shut_host(self) -> None:
        self.result.to_host.eof = True
        try:
            self.host.shutdown(socket.SHUT_WR)
        except OSError:
            pass                                       # the host is gone too: its read says so

    def host_reads(self, on: bool) -> None:
        self._want(self._mask | _IN if on else self._mask & ~_IN)

    def host_writes(self, on: bool) -> None:
        self._want(self._mask | _OUT if on else self._mask & ~_OUT)

    def close_host(self, reset: bool) -> None:
        """The flow is over (`reset`: the guest reset, or the gateway stops): the host socket
        closed -- with an RST when asked (SO_LINGER {1, 0}, RFC 9293 §3.10.7.1)."""
        if self.ended:
            return
        self.ended = True
        if not reset and self.flow is not None and self.flow.host_shut:
            self.result.to_host.eof = True             # the guest's FIN: this close sends it
        self.poller._forget(self, closing=True)
        self.poller._live.pop(self, None)
        if reset:
            self.result.to_host.reset = True
            try:
                self.host.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
            except OSError:
                pass
        self.host.close()
        self._on_end(self.result)

    # --- the poller's side ------------------------------------------------------------------------
    def on_host(self, events: int) -> None:
        flow = self.flow
        if flow is None:
            return
        now = self._now()
        if events & _OUT or (events & _ERR and flow.pending):
            flow.host_writable(now)
        if self.ended or not events & ~_OUT or not self._mask & _IN:
            return
        budget = self.budget
        for _ in range(READS_PER_WAKE):
            room = flow.send_room()
            if room <= 0:
                return
            want = budget.grant(min(room, budget.chunk_max))
            try:
                data = self.host.recv(want)
            except BlockingIOError:
                return
            except OSError:
                self.result.to_guest.reset = True
                flow.host_failed(now)
                return
            if not data:
                self._host_eof()
                flow.host_eof(now)
                return
            self.result.to_guest.octets += len(data)
            short = len(data) < want
            if short and events & _RDHUP and self._eof_follows():
                flow.host_data(data, now, eof=True)       # the last data and the FIN: one segment
                return
            flow.host_data(data, now)
            if short or self.ended:
                return

    def _eof_follows(self) -> bool:
        """After a short read with EPOLLRDHUP: is the EOF next (nothing else queued)?"""
        try:
            if self.host.recv(1, socket.MSG_PEEK):
                return False
        except OSError:
            return False                                  # the next pass reads the error
        self._host_eof()
        return True

    def _host_eof(self) -> None:
        self.result.to_guest.eof = True
        self._want(self._mask & ~_IN)

    def on_guest(self) -> None:
        """The splice's upcall entry: a relayed flow's guest side calls in directly."""

    def abort(self) -> None:
        """The gateway stops: both sides reset."""
        if self.flow is not None and not self.ended:
            self.flow.abort(self._now())
        self.close_host(True)


__all__ = ["LeanRelay"]
