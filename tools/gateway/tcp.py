"""The gateway's TCP side: every SYN the guest sends to an address the stack does not listen
on reaches `on_syn` (the Tcp core's forwarder hook); the gateway decides where the flow goes
(policy.Policy), takes a slot in the flow table, connects a host socket
(hosttcp.connect_host) and only then answers the guest -- `forward_accept` and the two
connections spliced (splice.py: no task per flow once it is relayed), or `forward_reject`
with what the host saw (issue 13, "TCP": ECONNREFUSED an RST, unreachable an ICMP, a
timeout silence).

`on_syn` runs inside the stack's input path, so it only queues the request (a bounded
channel: beyond it the SYN is left to expire, and the guest retries); `run` serves the queue.
"""
from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from protocols.addr import int_to_ip
from protocols.ipv6.addr import int_to_ip6
from protocols.tcp.forward import ForwardRequest

from .flows import FlowTable
from .hosttcp import CONNECT_TIMEOUT, connect_host
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
    octets_to_host: int = 0
    octets_to_guest: int = 0


class TcpGateway:
    def __init__(self, stack: Any, policy: Policy, flows: FlowTable, *, connect_timeout: float = CONNECT_TIMEOUT,
                 format_addr: Callable[[int, int], str] | None = None, budget: RelayBudget | None = None,
                 outbound: Outbound | None = None) -> None:
        self.stack = stack
        self.outbound = outbound or Outbound()
        self.policy = policy
        self.flows = flows
        self.budget = budget or RelayBudget()
        self.connect_timeout = connect_timeout
        self.stats = TcpGatewayStats()
        self._send, self._receive = trio.open_memory_channel[ForwardRequest](QUEUE)
        self._format = format_addr or _format_addr
        self.poller: SplicePoller | None = None

    def on_syn(self, req: ForwardRequest) -> None:
        """The core's forwarder hook: queue the held SYN (never block the input path)."""
        self.stats.syns += 1
        try:
            self._send.send_nowait(req)
        except trio.WouldBlock:
            self.stats.queue_full += 1

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve held SYNs until cancelled, one task per flow.  Start it with
        `await nursery.start(gateway.run)`: SYNs are forwarded from then on (before, the core
        answers them with RSTs as a host without the gateway would)."""
        self.stack.tcp.forwarder = self.on_syn
        try:
            async with trio.open_nursery() as nursery:
                self.poller = SplicePoller(self.stack)
                nursery.start_soon(self.poller.run)
                task_status.started()
                async for req in self._receive:
                    nursery.start_soon(self._flow, req)
        finally:
            self.stack.tcp.forwarder = None

    def _reject(self, req: ForwardRequest, how: str, why: str) -> None:
        log.debug("tcp %s:%d -> %s:%d refused (%s): %s", self._format(req.family, req.src), req.sport,
                  self._format(req.family, req.dst), req.dport, how, why)
        self.stack.tcp.forward_reject(req.id, "silent" if how == "drop" else how, self.stack.now())

    async def _flow(self, req: ForwardRequest) -> None:
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
        spliced = False
        try:
            host = await connect_host(verdict.host, verdict.port, timeout=self.connect_timeout,
                                      source=self.outbound.source(req.family))
            if isinstance(host, Refuse):
                self.stats.refused_host += 1
                self._reject(req, host.how, host.why)
                return
            conn = self.stack.tcp.forward_accept(req.id, self.stack.now())
            if conn is None:                       # expired meanwhile, or over memory: the guest retries
                await host.aclose()
                return
            family = socket.AF_INET6 if req.family == socket.AF_INET6 else socket.AF_INET
            pr = self.stack.protosw.find_proto(family, socket.IPPROTO_TCP, socket.SOCK_STREAM)
            host_sock = socket.socket(fileno=host.socket.detach())
            self.stats.relayed += 1

            def ended(result: RelayResult) -> None:
                self.stats.octets_to_host += result.to_host.octets
                self.stats.octets_to_guest += result.to_guest.octets
                flow.octets_out, flow.octets_in = result.to_host.octets, result.to_guest.octets
                log.debug("tcp %s:%d -> %s:%d relayed: %d octets out, %d in%s", key[1], req.sport, dst,
                          req.dport, result.to_host.octets, result.to_guest.octets,
                          ", reset" if result.reset else "")
                self.flows.remove(key)

            assert self.poller is not None            # run() made it before taking SYNs
            Splice(self.poller, conn, pr.usrreqs, host_sock, self.budget, ended)
            spliced = True                         # the splice removes the flow when it ends
        finally:
            if not spliced:
                self.flows.remove(key)


def _format_addr(family: int, addr: int) -> str:
    return int_to_ip6(addr) if family == socket.AF_INET6 else int_to_ip(addr)


__all__ = ["TcpGateway", "TcpGatewayStats"]
