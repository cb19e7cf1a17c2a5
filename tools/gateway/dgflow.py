"""What the gateway's datagram sides share (udp.py: UDP flows; echo.py: ping identifiers):
a flow per guest association, its items from the guest waiting in a bounded queue
(PendingQueue, under a total QueueBudget) for its host socket, one task per flow moving both
ways, and its end -- idle expiry by the flow table (`expired()`), a failing socket, or the
gateway's stop.  A side subclasses DatagramGateway with its hook, `_connect`, `_to_host`
and `_to_guest`, and DatagramFlow with the fields that name its flow (`fid`).
"""
from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import trio

from protocols.addr import int_to_ip
from protocols.ipv6.addr import int_to_ip6

from .flows import Flow, FlowTable
from .outbound import Outbound
from .policy import Verdict

log = logging.getLogger(__name__)

T = TypeVar("T")


# --- sans-IO: the bounded queues ------------------------------------------------------------------
@dataclass
class QueueBudget:
    """The octets all of a gateway's flow queues may hold together (the total cap)."""
    limit: int
    used: int = 0


class PendingQueue(Generic[T]):
    """One flow's items from the guest waiting for its host socket, bounded by `max_items`,
    `max_octets` and the gateway's shared `budget`; `push` says False (the caller drops and
    counts) beyond any of them.  O(1) per item."""

    def __init__(self, budget: QueueBudget, max_items: int, max_octets: int) -> None:
        self.budget = budget
        self.max_items = max_items
        self.max_octets = max_octets
        self.octets = 0
        self._items: deque[tuple[T, int]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def push(self, item: T, size: int) -> bool:
        if len(self._items) >= self.max_items or self.octets + size > self.max_octets \
                or self.budget.used + size > self.budget.limit:
            return False
        self._items.append((item, size))
        self.octets += size
        self.budget.used += size
        return True

    def peek(self) -> T | None:
        """The oldest item, left in the queue (for a sender that may find its socket full)."""
        return self._items[0][0] if self._items else None

    def pop(self) -> T | None:
        if not self._items:
            return None
        item, size = self._items.popleft()
        self.octets -= size
        self.budget.used -= size
        return item

    def clear(self) -> int:
        """Drop everything (the flow ended): the budget gets its octets back.  How many items."""
        n = len(self._items)
        self._items.clear()
        self.budget.used -= self.octets
        self.octets = 0
        return n


class OutboundPolicy(Protocol):
    """Where a guest's flow may go: policy.Policy (or a test's stand-in)."""

    def outbound(self, dst: str, port: int) -> Verdict: ...


# --- the flow table's owners ------------------------------------------------------------------------
class FlowOwner(Protocol):
    def expired(self) -> None: ...


def expire_owner(flow: Flow) -> None:
    """The flow table's on_expire for the gateway: a flow's state is its owner (an object with
    `expired()`), which ends it -- one hook for every kind of flow, whoever sets it first."""
    owner = flow.state
    expired = getattr(owner, "expired", None)
    if expired is not None:
        expired()


def poll_flows(stack: Any, flows: FlowTable) -> None:
    """Have the stack's timer service drive the flow table (a contracts.TimedCore), once, and
    send its expiries to the flows' owners."""
    flows.on_expire = expire_owner
    if flows not in stack.timers.timed:
        stack.timers.register(flows)


def format_addr(family: int, addr: int) -> str:
    return int_to_ip6(addr) if family == socket.AF_INET6 else int_to_ip(addr)


# --- the flows and the gateway they share ----------------------------------------------------------
@dataclass(eq=False, kw_only=True)
class DatagramFlow(Generic[T]):
    """One relayed association: the guest's side (family, guest, dst; ints), the host's
    (`host`), its flow-table entry and its queue of T (what the guest sent, waiting)."""
    gateway: DatagramGateway[Any]
    family: int
    guest: int
    dst: int
    host: str
    entry: Flow
    queue: PendingQueue[T]
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    wake: trio.Event = field(default_factory=trio.Event)
    sock: trio.socket.SocketType | None = None

    @property
    def fid(self) -> tuple[int, ...]:
        """The key of the gateway's table of flows (what the core's hook looks up)."""
        raise NotImplementedError

    def expired(self) -> None:
        self.gateway._expired(self)


F = TypeVar("F", bound=DatagramFlow[Any])


class DatagramGateway(Generic[F]):
    """The shared part of a datagram side: its table of flows, each flow's task, its end.
    `stats` must count flows_opened, expired and host_errors."""
    kind = "datagram"                       # for logs: "udp", "echo"
    stats: Any

    def __init__(self, stack: Any, policy: OutboundPolicy, flows: FlowTable, budget: QueueBudget,
                 format_addr: Callable[[int, int], str], outbound: Outbound | None = None) -> None:
        self.stack = stack
        self.policy = policy
        self.flows = flows
        self.budget = budget
        self._format = format_addr
        self._active: dict[tuple[int, ...], F] = {}
        self._nursery: trio.Nursery | None = None
        self.outbound = outbound or Outbound()   # --outbound-addr: what the host sockets bind first

    def __len__(self) -> int:
        return len(self._active)

    def _start(self, flow: F) -> F:
        """A new flow: in both tables, its task started (the caller checked the nursery)."""
        assert self._nursery is not None
        flow.entry.state = flow
        self._active[flow.fid] = flow
        self.stats.flows_opened += 1
        self._nursery.start_soon(self._serve, flow)
        return flow

    async def _serve(self, flow: F) -> None:
        try:
            with flow.scope:
                flow.sock = await self._connect(flow)
                if flow.sock is None:
                    return
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._guarded, self._to_guest, flow)
                    await self._guarded(self._to_host, flow)
        finally:
            self._forget(flow)

    async def _connect(self, flow: F) -> trio.socket.SocketType | None:
        """The flow's host socket, or None (counted) when there is none to have."""
        raise NotImplementedError

    async def _to_host(self, flow: F) -> None:
        raise NotImplementedError

    async def _to_guest(self, flow: F) -> None:
        raise NotImplementedError

    async def _guarded(self, loop: Callable[[F], Awaitable[None]], flow: F) -> None:
        """One direction of the flow; when it fails the whole flow ends (the guest's next
        datagram opens a fresh one).  A socket closed by expiry is no failure."""
        try:
            await loop(flow)
        except (trio.ClosedResourceError, OSError) as exc:
            if not flow.scope.cancel_called:
                self.stats.host_errors += 1
                log.debug("%s flow %s ended: %s", self.kind, flow.entry.key, exc)
            flow.scope.cancel()

    def _expired(self, flow: F) -> None:
        """The flow table expired the flow (idle): end it now, so what the guest sends next
        opens a fresh one."""
        self.stats.expired += 1
        self._forget(flow)
        flow.scope.cancel()

    def _forget(self, flow: F) -> None:
        if self._active.get(flow.fid) is flow:
            del self._active[flow.fid]
        if self.flows.get(flow.entry.key) is flow.entry:
            self.flows.remove(flow.entry.key)
        flow.queue.clear()
        if flow.sock is not None:
            flow.sock.close()              # wakes a task waiting on it (ClosedResourceError)


__all__ = ["DatagramFlow", "DatagramGateway", "FlowOwner", "OutboundPolicy", "PendingQueue", "QueueBudget",
           "expire_owner", "format_addr", "poll_flows"]
