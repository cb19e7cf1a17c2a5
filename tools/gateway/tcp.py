"""The gateway's TCP side: every SYN the guest sends to an address the stack does not listen
on reaches `on_syn` (the Tcp core's forwarder hook); the gateway decides where the flow goes
(policy.Policy), takes a slot in the flow table, connects a host socket
(hosttcp.start_connect) and only then answers the guest -- `forward_relay` and a lean
relayed flow on the host socket (lean.py over protocols/tcp/relayed.py, the default), or
`forward_accept` and the two connections spliced (splice.py, `--tcp-relay splice`); no
task per flow either way -- or `forward_reject` with what the host saw (issue 13, "TCP":
ECONNREFUSED an RST, unreachable an ICMP, a timeout silence).

`on_syn` runs inside the stack's input path, so it only holds the request (a bounded queue:
beyond it the SYN is left to expire, and the guest retries).  The held SYNs are served at
the end of the device read that brought them (`Stack.rx_batch_hooks`) or, outside one, by
`run`'s task: a non-blocking connect each, and a flow whose connect completed inside
connect(2) -- a neighbour's SYN-ACK comes back in the same softirq -- is answered and
relayed at once; only a connect still under way gets a task, to wait for it.
"""
from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from protocols.addr import int_to_ip
from protocols.ipv6.addr import int_to_ip6
from protocols.tcp.forward import ForwardRequest

from .flows import Flow, FlowTable
from .hosttcp import CONNECT_TIMEOUT, connect_outcome, finish_connect, refusal_for, start_connect
from .lean import LeanRelay
from .outbound import Outbound
from .policy import Policy, Refuse
from .relay import RelayBudget, RelayResult
from .splice import Splice, SplicePoller

log = logging.getLogger(__name__)

QUEUE = 1024                      # SYNs waiting for a task; the core holds at most its own bound


@dataclass
class TcpGatewayStats:
    syns: int = 0
    queue_full: int = 0           # left to expire: the guest's retry comes back later
    refused_policy: int = 0
    refused_full: int = 0         # the flow table was full: RST
    refused_memory: int = 0       # the relays' total buffer cap was reached: RST
    refused_host: int = 0         # the host's connect failed: what it saw, mapped
    relayed: int = 0
    connected_at_once: int = 0    # host connects complete when connect(2) returned: no task
    connects_waited: int = 0      # ... still under way: a task waited for each
    octets_to_host: int = 0
    octets_to_guest: int = 0


class TcpGateway:
    def __init__(self, stack: Any, policy: Policy, flows: FlowTable, *, connect_timeout: float = CONNECT_TIMEOUT,
                 format_addr: Callable[[int, int], str] | None = None, budget: RelayBudget | None = None,
                 outbound: Outbound | None = None, lean: bool = True) -> None:
        self.stack = stack
        self.outbound = outbound or Outbound()
        self.policy = policy
        self.flows = flows
        self.budget = budget or RelayBudget()
        self.budget.elsewhere = lambda: stack.tcp.relays.held
        # flows through the lean relay (lean.py, protocols/tcp/relayed.py), or through a full
        # Connection and the splice (--tcp-relay splice)
        self.lean = lean
        self.connect_timeout = connect_timeout
        self.stats = TcpGatewayStats()
        self._held: deque[ForwardRequest] = deque()      # SYNs not yet served (at most QUEUE)
        self._lot = trio.lowlevel.ParkingLot()            # the run task, while nothing is held
        self._nursery: trio.Nursery | None = None
        self._format = format_addr or _format_addr
        self.poller: SplicePoller | None = None

    def on_syn(self, req: ForwardRequest) -> None:
        """The core's forwarder hook, inside the stack's input: hold the request (never block
        the input path); it is served at the end of the device read under way, or by the
        run task when no read is (`_serve_held`)."""
        self.stats.syns += 1
        if len(self._held) >= QUEUE:
            self.stats.queue_full += 1
            return
        self._held.append(req)
        if not self.stack.in_rx_batch:
            self._lot.unpark_all()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve held SYNs until cancelled.  Start it with `await nursery.start(gateway.run)`:
        SYNs are forwarded from then on (before, the core answers them with RSTs as a host
        without the gateway would)."""
        self.stack.tcp.forwarder = self.on_syn
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.poller = SplicePoller(self.stack)
                nursery.start_soon(self.poller.run)
                self.stack.rx_batch_hooks.append(self._serve_held)
                task_status.started()
                while True:
                    self._serve_held()
                    await self._lot.park()
        finally:
            self.stack.tcp.forwarder = None
            if self._serve_held in self.stack.rx_batch_hooks:
                self.stack.rx_batch_hooks.remove(self._serve_held)
            self._held.clear()                     # never served: left to expire in the core
            self._nursery = None

    def _serve_held(self) -> None:
        """Start every held SYN's host connect; a flow whose connect completes at once is
        answered and spliced here, in the same step (no task), the others wait in one."""
        if not self._held or self._nursery is None:
            return
        while self._held:
            self._start(self._held.popleft())
        if self.poller is not None:
            self.poller.drain()                    # the new splices' first look at their guests

    def _reject(self, req: ForwardRequest, how: str, why: str) -> None:
        log.debug("tcp %s:%d -> %s:%d refused (%s): %s", self._format(req.family, req.src), req.sport,
                  self._format(req.family, req.dst), req.dport, how, why)
        self.stack.tcp.forward_reject(req.id, "silent" if how == "drop" else how, self.stack.now())

    def _start(self, req: ForwardRequest) -> None:
        dst = self._format(req.family, req.dst)
        verdict = self.policy.outbound(dst, req.dport)
        if isinstance(verdict, Refuse):
            self.stats.refused_policy += 1
            self._reject(req, verdict.how, verdict.why)
            return
        if self.budget.exhausted:
            self.stats.refused_memory += 1
            self._reject(req, "rst", "the relays' buffers are full (--max-buffer)")
            return
        key = ("tcp", self._format(req.family, req.src), req.sport, dst, req.dport)
        flow = self.flows.open(key, self.stack.now())
        if flow is None:
            self.stats.refused_full += 1
            self._reject(req, "rst", "the flow table is full (--max-flows)")
            return
        sock = start_connect(verdict.host, verdict.port, source=self.outbound.source(req.family))
        if isinstance(sock, Refuse):
            self._refused(req, key, sock)
            return
        err = connect_outcome(sock)
        if err is None:
            self.stats.connects_waited += 1
            assert self._nursery is not None
            self._nursery.start_soon(self._await_connect, req, key, flow, sock)
        else:
            self.stats.connected_at_once += 1
            self._connected(req, key, flow, sock, err)

    async def _await_connect(self, req: ForwardRequest, key: tuple[Any, ...], flow: Flow, sock: socket.socket) -> None:
        done = False
        try:
            err = await finish_connect(sock, self.connect_timeout)
            done = True
        finally:
            if not done:                           # cancelled: the gateway stops
                sock.close()
                self.flows.remove(key)
        self._connected(req, key, flow, sock, err)

    def _refused(self, req: ForwardRequest, key: tuple[Any, ...], refusal: Refuse) -> None:
        self.stats.refused_host += 1
        self.flows.remove(key)
        self._reject(req, refusal.how, refusal.why)

    def _connected(self, req: ForwardRequest, key: tuple[Any, ...], flow: Flow, sock: socket.socket,
                   err: int | None) -> None:
        """The host connect's outcome (`err`: 0 made, an errno, None timed out): the guest
        answered, the two connections spliced -- or the guest shown the failure."""
        if err != 0:
            sock.close()
            self._refused(req, key, refusal_for(err))
            return
        def ended(result: RelayResult) -> None:
            self.stats.octets_to_host += result.to_host.octets
            self.stats.octets_to_guest += result.to_guest.octets
            flow.octets_out, flow.octets_in = result.to_host.octets, result.to_guest.octets
            log.debug("tcp %s:%d -> %s:%d relayed: %d octets out, %d in%s", key[1], req.sport, key[3],
                      req.dport, result.to_host.octets, result.to_guest.octets,
                      ", reset" if result.reset else "")
            self.flows.remove(key)

        assert self.poller is not None             # run() made it before taking SYNs
        now = self.stack.now()
        if self.lean:
            edge = LeanRelay(self.poller, sock, self.budget, ended)
            relayed = self.stack.tcp.forward_relay(req.id, edge, now)
            if relayed is None:                       # expired meanwhile: the guest retries
                edge.ended = True
                self.poller._live.pop(edge, None)
                sock.close()
                self.flows.remove(key)
                return
            edge.flow = relayed
            self.stats.relayed += 1
            return
        conn = self.stack.tcp.forward_accept(req.id, now)
        if conn is None:                           # expired meanwhile, or over memory: the guest retries
            sock.close()
            self.flows.remove(key)
            return
        family = socket.AF_INET6 if req.family == socket.AF_INET6 else socket.AF_INET
        pr = self.stack.protosw.find_proto(family, socket.IPPROTO_TCP, socket.SOCK_STREAM)
        self.stats.relayed += 1
        Splice(self.poller, conn, pr.usrreqs, sock, self.budget, ended)   # it removes the flow at its end


def _format_addr(family: int, addr: int) -> str:
    return int_to_ip6(addr) if family == socket.AF_INET6 else int_to_ip(addr)


__all__ = ["TcpGateway", "TcpGatewayStats"]
