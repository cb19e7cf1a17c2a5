"""The gateway's ICMP echo side: every echo request the guest sends to a remote address (one
the stack has only by its transparent interface) reaches `on_echo` (the ICMP and ICMPv6
cores' forwarder hook); the gateway asks the policy where it may go, takes a slot in the
flow table and pings the destination from the host through an unprivileged ping socket
(ping.open_ping_socket) -- one per (guest, echo identifier, destination), as the kernel owns
each socket's identifier -- and each reply goes back to the guest from the address it pinged
with its own identifier and the reply's sequence and data (`send_echo_reply`) (issue 13,
"ICMP echo").

Never a forged reply: when ping sockets are not allowed here (net.ipv4.ping_group_range
excludes our group: socket() fails with EACCES) the gateway logs it once, drops the guest's
echo requests and counts them, trying again every `UNAVAILABLE_RETRY` seconds (the range
may be changed under it).  Refused destinations (policy.Policy) and a full flow table are
silent drops too: a ping has no port to refuse.

Each flow's requests wait in a bounded queue (dgflow.PendingQueue, shared total budget) while
its socket opens; a flow expires after `FlowConfig.ping_idle` seconds idle (30 s).
"""
from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from ndd.counters import Counters
from protocols.echo import EchoForward

from .dgflow import DatagramFlow, DatagramGateway, OutboundPolicy, PendingQueue, QueueBudget, format_addr, poll_flows
from .flows import FlowKey, FlowTable
from .outbound import Outbound
from .ping import PingUnavailable, echo_request, open_ping_socket, parse_echo_reply
from .policy import Refuse

log = logging.getLogger(__name__)

PER_FLOW_REQUESTS = 16               # `ping -f` keeps one in flight; `ping -l 16` sixteen
PER_FLOW_OCTETS = 128 << 10          # two of the largest echo requests
TOTAL_OCTETS = 4 << 20               # all echo flows together
UNAVAILABLE_RETRY = 10.0             # seconds between attempts once ping sockets were refused
ECHO_HEADER = 8                      # type, code, checksum, identifier, sequence


@dataclass
class EchoGatewayStats(Counters):
    requests: int = 0             # echo requests from the guest handed to the gateway
    requests_to_host: int = 0     # ... sent through a ping socket
    octets_to_host: int = 0
    replies_to_guest: int = 0
    octets_to_guest: int = 0
    flows_opened: int = 0
    refused_policy: int = 0       # a destination the guest may not ping: dropped
    refused_full: int = 0         # the flow table was full (--max-flows): dropped
    dropped_unavailable: int = 0  # ping sockets not allowed (net.ipv4.ping_group_range): dropped
    dropped_queue: int = 0        # a flow's queue (or the total) was full: dropped
    open_errors: int = 0          # a ping socket could not be opened or connected (EMFILE, ...)
    expired: int = 0
    host_errors: int = 0          # errors on a ping socket (an ICMP error about the echo, ...)
    ignored: int = 0              # what a ping socket read that is no echo reply
    send_errors: int = 0          # send_echo_reply refused a reply (its errno)


@dataclass(eq=False, kw_only=True)
class _EchoFlow(DatagramFlow[tuple[int, bytes]]):
    """One pinged destination of one guest identifier; its queue holds (sequence, data)."""
    ident: int

    @property
    def fid(self) -> EchoId:
        return (self.family, self.guest, self.ident, self.dst)


EchoId = tuple[int, int, int, int]       # (family, guest, ident, dst)


class EchoGateway(DatagramGateway[_EchoFlow]):
    kind = "echo"

    def __init__(self, stack: Any, policy: OutboundPolicy, flows: FlowTable, *, budget: QueueBudget | None = None,
                 per_flow_requests: int = PER_FLOW_REQUESTS, per_flow_octets: int = PER_FLOW_OCTETS,
                 open_socket: Callable[[int], trio.socket.SocketType] = open_ping_socket,
                 format_addr: Callable[[int, int], str] = format_addr, outbound: Outbound | None = None) -> None:
        super().__init__(stack, policy, flows, budget if budget is not None else QueueBudget(TOTAL_OCTETS),
                         format_addr, outbound)
        self.per_flow_requests = per_flow_requests
        self.per_flow_octets = per_flow_octets
        self.stats = EchoGatewayStats()
        self._open_socket = open_socket
        self._unavailable_until = -float("inf")
        self.unavailable_logged = False

    def _icmp_cores(self) -> list[Any]:
        cores = [self.stack.icmp]
        inet6 = getattr(self.stack, "inet6", None)
        if inet6 is not None:
            cores.append(inet6.icmp)
        return cores

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Relay the guest's pings until cancelled (`await nursery.start(gw.run)`; before, the
        cores drop echo requests to remote addresses: nobody answers for them)."""
        poll_flows(self.stack, self.flows)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for core in self._icmp_cores():
                core.forwarder = self.on_echo
            try:
                task_status.started()
                await trio.sleep_forever()
            finally:
                # unhooked before the nursery closes to new tasks (see UdpGateway.run)
                for core in self._icmp_cores():
                    core.forwarder = None
                self._nursery = None

    # --- the input path: never blocks -------------------------------------------------------------
    def on_echo(self, fwd: EchoForward) -> None:
        self.stats.requests += 1
        eid = (fwd.family, fwd.src, fwd.ident, fwd.dst)
        flow = self._active.get(eid)
        if flow is None:
            if fwd.now < self._unavailable_until:
                self.stats.dropped_unavailable += 1
                return
            flow = self._open(fwd)
            if flow is None:
                return
        if not flow.queue.push((fwd.seq, fwd.data), ECHO_HEADER + len(fwd.data)):
            self.stats.dropped_queue += 1
            return
        self.flows.outbound(flow.entry, ECHO_HEADER + len(fwd.data), fwd.now)
        flow.wake.set()

    def _open(self, fwd: EchoForward) -> _EchoFlow | None:
        if self._nursery is None:
            return None
        dst = self._format(fwd.family, fwd.dst)
        verdict = self.policy.outbound(dst, 0)
        if isinstance(verdict, Refuse):
            self.stats.refused_policy += 1
            return None
        key: FlowKey = ("icmp", self._format(fwd.family, fwd.src), fwd.ident, dst, 0)
        entry = self.flows.open(key, fwd.now)
        if entry is None:
            self.stats.refused_full += 1
            return None
        return self._start(_EchoFlow(
            gateway=self, family=fwd.family, guest=fwd.src, ident=fwd.ident, dst=fwd.dst, host=verdict.host,
            entry=entry, queue=PendingQueue(self.budget, self.per_flow_requests, self.per_flow_octets)))

    # --- one flow's task (DatagramGateway._serve runs these) ---------------------------------------
    async def _connect(self, flow: _EchoFlow) -> trio.socket.SocketType | None:
        try:
            sock = self._open_socket(flow.family)
        except PingUnavailable as exc:
            self._unavailable(flow, str(exc))
            return None
        except OSError as exc:
            self.stats.open_errors += 1
            log.debug("echo flow %s: no ping socket: %s", flow.entry.key, exc)
            return None
        try:
            source = self.outbound.source(flow.family)
            if source is not None:
                await sock.bind((source, 0))
            await sock.connect((flow.host, 0))
        except OSError as exc:
            sock.close()
            self.stats.open_errors += 1
            log.debug("echo flow %s: %s", flow.entry.key, exc)
            return None
        except BaseException:
            sock.close()
            raise
        return sock

    def _unavailable(self, flow: _EchoFlow, why: str) -> None:
        """Ping sockets refused: say so once, drop this flow's requests and, for a while, every
        new one's (never a forged reply)."""
        self.stats.dropped_unavailable += len(flow.queue)
        self._unavailable_until = self.stack.now() + UNAVAILABLE_RETRY
        if not self.unavailable_logged:
            self.unavailable_logged = True
            log.warning("gateway: guests' pings are dropped: %s", why)

    async def _to_host(self, flow: _EchoFlow) -> None:
        sock = flow.sock
        assert sock is not None
        while True:
            item = flow.queue.pop()
            if item is None:
                flow.wake = trio.Event()
                await flow.wake.wait()
                continue
            seq, data = item
            try:
                await sock.send(echo_request(flow.family, seq, data))
            except OSError as exc:         # an ICMP error about an earlier echo, pending on the socket
                self.stats.host_errors += 1
                log.debug("echo flow %s: send: %s", flow.entry.key, exc)
                continue
            self.stats.requests_to_host += 1
            self.stats.octets_to_host += len(data)

    async def _to_guest(self, flow: _EchoFlow) -> None:
        sock = flow.sock
        assert sock is not None
        core = self.stack.inet6.icmp if flow.family == socket.AF_INET6 else self.stack.icmp
        while True:
            try:
                message = await sock.recv(65535)
            except OSError as exc:         # an ICMP error about the echo (host unreachable, ...)
                self.stats.host_errors += 1
                log.debug("echo flow %s: recv: %s", flow.entry.key, exc)
                continue
            reply = parse_echo_reply(flow.family, message)
            if reply is None:
                self.stats.ignored += 1
                continue
            now = self.stack.now()
            if core.send_echo_reply(flow.dst, flow.guest, flow.ident, reply.seq, reply.data, now):
                self.stats.send_errors += 1
                continue
            self.stats.replies_to_guest += 1
            self.stats.octets_to_guest += len(reply.data)
            if self.flows.get(flow.entry.key) is flow.entry:
                self.flows.inbound(flow.entry, ECHO_HEADER + len(reply.data), now)


__all__ = ["UNAVAILABLE_RETRY", "EchoGateway", "EchoGatewayStats"]
