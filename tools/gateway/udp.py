"""The gateway's UDP side: every datagram the guest sends to an address and port no socket of
the stack takes reaches `on_datagram` (the Udp core's forwarder hook); the gateway decides
where the flow goes (policy.Policy), takes a slot in the flow table, and relays the flow
through one connected host socket (hostudp.open_flow) -- replies come back to the guest from
the address it wrote to (`forward_send`), and the errors the host's kernel reports about the
flow (IP_RECVERR) as the ICMP a real network would have sent (`forward_error`) (issue 13, "UDP").

  * one host socket per (guest address, guest port, destination, port), bound to the guest's
    source port when the host has it free -- QUIC, WireGuard and STUN rely on a stable source
    port -- else to an ephemeral one (and to one when the port is privileged here:
    net.ipv4.ip_unprivileged_port_start);
  * `on_datagram` runs in the stack's input path and never blocks: a datagram waits in its
    flow's queue (bounded in datagrams and octets, and by a total over all flows) until the
    host socket takes it; beyond a bound it is dropped and counted, as a full socket buffer
    drops (Linux's UDP RcvbufErrors);
  * refusals answer as the network would: the policy's "port" a port unreachable, "host" /
    "admin" their ICMP, "drop" nothing; a full flow table (--max-flows) or a host out of
    sockets an administratively prohibited (RFC 1812 §5.2.7.1: a filter's answer), while
    the flows already open keep working;
  * a flow lives until the flow table expires it (30 s idle one-way, 180 s once replied, as
    conntrack's nf_conntrack_udp_timeout / _stream): its socket is closed and its task ends.

The sans-IO parts -- the bounded queue and what a host error becomes for the guest -- are
plain classes and functions here (PendingQueue, QueueBudget, guest_error), shared with echo.py.
"""
from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from ndd.counters import Counters
from protocols.udp.forward import UdpForward

from .dgflow import (
    DatagramFlow,
    DatagramGateway,
    FlowOwner,
    OutboundPolicy,
    PendingQueue,
    QueueBudget,
    expire_owner,
    format_addr,
    poll_flows,
)
from .flows import FlowKey, FlowTable
from .hostudp import SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6, HostError, error_of, open_flow, read_error
from .outbound import Outbound
from .policy import Refuse

log = logging.getLogger(__name__)

# Bounds of the datagrams waiting for a host socket.  A host socket normally takes a datagram
# at once (its send buffer, net.core.wmem_default, is 208 KiB): the queue covers the socket
# being opened, a full send buffer, and the stack's reader delivering a burst in one turn of
# the scheduler.  256 datagrams, as many as a Linux socket's 208 KiB receive buffer holds of
# small ones; the octets bound is what bounds memory.
PER_FLOW_DATAGRAMS = 256
PER_FLOW_OCTETS = 256 << 10
TOTAL_OCTETS = 16 << 20            # all UDP flows together
RECV_SIZE = 65535                  # the largest datagram a host socket can return
# Datagrams a flow's task moves per turn of the scheduler before it lets others run: one per
# turn (trio's socket calls each yield) let the stack's reader, which delivers a whole batch
# of frames per turn, fill the flow's queue faster than it drained (measured: 94% of a bulk
# flow's datagrams dropped at the queue); a batch keeps up and stays fair.
BATCH = 64
FULL_KIND = "admin"                # what a guest is told when the gateway has no room for its flow

# --- sans-IO: what the guest is told about a host error ---------------------------------------------
# ICMP destination unreachable codes (RFC 792, RFC 1812 §5.2.7.1) as forward_error kinds: net
# (0 net, 6 net unknown, 11 net for TOS), host (1 host, 5 source route failed, 7 host unknown,
# 12 host for TOS), port (3; 2 protocol unreachable too: the guest's closest errno is its
# ECONNREFUSED), frag (4), admin (9, 10 net / host prohibited, 13 communication prohibited)
_ICMP_UNREACH = {0: "net", 6: "net", 11: "net", 1: "host", 5: "host", 7: "host", 12: "host", 2: "port", 3: "port",
                 4: "frag", 9: "admin", 10: "admin", 13: "admin"}
# ICMPv6 destination unreachable codes (RFC 4443 §3.1): 0 no route, 1 prohibited, 2 beyond the
# source's scope, 3 address unreachable, 4 port, 5 source address failed policy, 6 reject route
_ICMP6_UNREACH = {0: "net", 1: "admin", 2: "host", 3: "host", 4: "port", 5: "admin", 6: "admin"}
ICMP_DEST_UNREACH, ICMP6_DEST_UNREACH, ICMP6_PACKET_TOO_BIG = 3, 1, 2
# errnos of a local error (or of a failed open / send) as forward_error kinds
_ERRNO_KINDS = {errno.ECONNREFUSED: "port", errno.EHOSTUNREACH: "host", errno.EHOSTDOWN: "host",
                errno.ENETUNREACH: "net", errno.ENETDOWN: "net", errno.EADDRNOTAVAIL: "net",
                errno.EAFNOSUPPORT: "net", errno.EACCES: "admin", errno.EPERM: "admin",
                errno.EMFILE: FULL_KIND, errno.ENFILE: FULL_KIND, errno.ENOBUFS: FULL_KIND,
                errno.ENOMEM: FULL_KIND}


@dataclass(frozen=True, slots=True)
class GuestError:
    """What forward_error sends the guest: `kind` and, for "frag", the path MTU."""
    kind: str
    mtu: int = 0


def guest_error(err: HostError) -> GuestError | None:
    """The ICMP the guest is shown for an error the host reported about its flow, or None
    when there is none to show (a time exceeded, a redirect: nothing forward_error says; a
    fragmentation needed without an MTU)."""
    if err.origin == SO_EE_ORIGIN_ICMP:
        kind = _ICMP_UNREACH.get(err.code) if err.type == ICMP_DEST_UNREACH else None
    elif err.origin == SO_EE_ORIGIN_ICMP6:
        if err.type == ICMP6_PACKET_TOO_BIG:
            kind = "frag"
        else:
            kind = _ICMP6_UNREACH.get(err.code) if err.type == ICMP6_DEST_UNREACH else None
    else:                                    # the host's own (SO_EE_ORIGIN_LOCAL): by errno
        kind = "frag" if err.errno == errno.EMSGSIZE else _ERRNO_KINDS.get(err.errno)
    if kind is None:
        return None
    if kind == "frag":
        return GuestError("frag", err.info) if err.info else None
    return GuestError(kind)


def errno_kind(code: int) -> str:
    """The ICMP a guest is shown when its flow's host socket cannot be opened or used."""
    return _ERRNO_KINDS.get(code, FULL_KIND)


def _recv_nowait(sock: trio.socket.SocketType, raw: socket.socket) -> bytes | HostError | None:
    """hostudp.receive without waiting: the next datagram, the next error the host reported
    about the flow, or None when there is nothing to read.  Other errors are raised."""
    try:
        return raw.recv(RECV_SIZE)
    except BlockingIOError:
        return None
    except OSError as exc:
        err = error_of(sock, exc)
        if err is None:
            raise
        return err


# --- the gateway ------------------------------------------------------------------------------------
@dataclass
class UdpGatewayStats(Counters):
    datagrams_to_host: int = 0
    octets_to_host: int = 0
    datagrams_to_guest: int = 0
    octets_to_guest: int = 0
    flows_opened: int = 0
    port_kept: int = 0            # the host socket has the guest's source port
    port_changed: int = 0         # ... taken or privileged here: another one
    refused_policy: int = 0       # answered with the policy's ICMP
    dropped_policy: int = 0       # the policy's "drop": multicast, broadcast
    refused_full: int = 0         # the flow table was full (--max-flows): ICMP admin prohibited
    open_errors: int = 0          # the host socket could not be opened (EMFILE, no route, ...)
    dropped_queue: int = 0        # a flow's queue (or the total) was full: the datagram dropped
    expired: int = 0
    host_errors: int = 0          # errors the host reported about a flow (IP_RECVERR, send)
    icmp_to_guest: int = 0        # ... and refusals, asked of forward_error (before the ICMP rate limits)
    send_errors: int = 0          # forward_send refused a reply (its errno)


@dataclass(eq=False, kw_only=True)
class _UdpFlow(DatagramFlow[bytes]):
    """One relayed flow: the guest's view (family, guest, gport, dst, dport; ints) and the host's."""
    gport: int
    dport: int
    host_port: int
    last_length: int = 0          # the last datagram's size: what an ICMP error quotes

    @property
    def fid(self) -> FlowId:
        return (self.family, self.guest, self.gport, self.dst, self.dport)


FlowId = tuple[int, int, int, int, int]      # (family, guest, gport, dst, dport)


class UdpGateway(DatagramGateway[_UdpFlow]):
    kind = "udp"

    def __init__(self, stack: Any, policy: OutboundPolicy, flows: FlowTable, *, budget: QueueBudget | None = None,
                 per_flow_datagrams: int = PER_FLOW_DATAGRAMS, per_flow_octets: int = PER_FLOW_OCTETS,
                 format_addr: Callable[[int, int], str] = format_addr, outbound: Outbound | None = None) -> None:
        super().__init__(stack, policy, flows, budget if budget is not None else QueueBudget(TOTAL_OCTETS),
                         format_addr, outbound)
        self.per_flow_datagrams = per_flow_datagrams
        self.per_flow_octets = per_flow_octets
        self.stats = UdpGatewayStats()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Relay the guest's UDP flows until cancelled.  Start it with `await nursery.start(gw.run)`:
        from then on datagrams no socket takes are relayed (before, the core answers them with
        port unreachables, as a host without the gateway would)."""
        poll_flows(self.stack, self.flows)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.stack.udp.forwarder = self.on_datagram
            try:
                task_status.started()
                await trio.sleep_forever()
            finally:
                # Unhooked before the nursery closes to new tasks: while it waits for the flows'
                # tasks to end, a datagram the stack reads must find no gateway (start_soon
                # would raise into the stack's reader and bring the stack down).
                self.stack.udp.forwarder = None
                self._nursery = None

    # --- the input path: never blocks -------------------------------------------------------------
    def on_datagram(self, fwd: UdpForward) -> None:
        """The core's forwarder hook: the datagram joins its flow's queue, a new flow is opened
        (its task started), or the guest is answered with the refusal."""
        fid = (fwd.family, fwd.src, fwd.sport, fwd.dst, fwd.dport)
        flow = self._active.get(fid)
        if flow is None:
            flow = self._open(fwd)
            if flow is None:
                return
        self._enqueue(flow, fwd.payload, fwd.now)

    def _open(self, fwd: UdpForward) -> _UdpFlow | None:
        if self._nursery is None:
            return None
        dst = self._format(fwd.family, fwd.dst)
        verdict = self.policy.outbound(dst, fwd.dport)
        if isinstance(verdict, Refuse):
            if verdict.how == "drop":
                self.stats.dropped_policy += 1
            else:
                self.stats.refused_policy += 1
                self._tell_guest(fwd.family, fwd.src, fwd.sport, fwd.dst, fwd.dport, GuestError(verdict.how),
                                 len(fwd.payload))
            return None
        key: FlowKey = ("udp", self._format(fwd.family, fwd.src), fwd.sport, dst, fwd.dport)
        entry = self.flows.open(key, fwd.now)
        if entry is None:
            self.stats.refused_full += 1
            self._tell_guest(fwd.family, fwd.src, fwd.sport, fwd.dst, fwd.dport, GuestError(FULL_KIND),
                             len(fwd.payload))
            return None
        return self._start(_UdpFlow(
            gateway=self, family=fwd.family, guest=fwd.src, gport=fwd.sport, dst=fwd.dst, dport=fwd.dport,
            host=verdict.host, host_port=verdict.port, entry=entry,
            queue=PendingQueue(self.budget, self.per_flow_datagrams, self.per_flow_octets)))

    def _enqueue(self, flow: _UdpFlow, data: bytes, now: float) -> None:
        if not flow.queue.push(data, len(data)):
            self.stats.dropped_queue += 1
            return
        self.flows.outbound(flow.entry, len(data), now)
        flow.wake.set()

    # --- one flow's task (DatagramGateway._serve runs these) ---------------------------------------
    async def _connect(self, flow: _UdpFlow) -> trio.socket.SocketType | None:
        chosen = self.outbound.source(flow.family)
        address = chosen or ("::" if flow.family == socket.AF_INET6 else "0.0.0.0")
        try:
            try:
                sock = await open_flow((flow.host, flow.host_port), source=(address, flow.gport))
            except PermissionError:         # a privileged port here (ip_unprivileged_port_start)
                sock = await open_flow((flow.host, flow.host_port), source=(chosen, 0) if chosen else None)
        except OSError as exc:
            self.stats.open_errors += 1
            log.debug("udp flow %s: no host socket: %s", flow.entry.key, exc)
            self._flow_error(flow, GuestError(errno_kind(exc.errno or 0)))
            return None
        if sock.getsockname()[1] == flow.gport:
            self.stats.port_kept += 1
        else:
            self.stats.port_changed += 1
        return sock

    async def _to_host(self, flow: _UdpFlow) -> None:
        sock = flow.sock
        assert sock is not None
        raw = sock._sock                   # type: ignore[attr-defined]  # the stdlib socket: non-blocking
        while True:
            if not len(flow.queue):
                flow.wake = trio.Event()
                await flow.wake.wait()
                continue
            for _ in range(BATCH):
                data = flow.queue.peek()
                if data is None:
                    break
                flow.last_length = len(data)
                try:
                    raw.send(data)
                except BlockingIOError:    # the send buffer is full: the datagram waits in the queue
                    await trio.lowlevel.wait_writable(raw)
                    break
                except OSError as exc:     # an earlier ICMP error pending on the socket, EMSGSIZE, ...
                    flow.queue.pop()
                    self._host_error(flow, read_error(sock) or HostError(exc.errno or 0, 0, 0, 0, 0, None))
                    continue
                flow.queue.pop()
                self.stats.datagrams_to_host += 1
                self.stats.octets_to_host += len(data)
            await trio.lowlevel.checkpoint()

    async def _to_guest(self, flow: _UdpFlow) -> None:
        sock = flow.sock
        assert sock is not None
        raw = sock._sock                   # type: ignore[attr-defined]
        while True:
            await trio.lowlevel.wait_readable(raw)
            for _ in range(BATCH):
                got = _recv_nowait(sock, raw)
                if got is None:
                    break
                if isinstance(got, HostError):
                    self._host_error(flow, got)
                else:
                    self._reply(flow, got)

    def _reply(self, flow: _UdpFlow, data: bytes) -> None:
        now = self.stack.now()
        err = self.stack.udp.forward_send(flow.family, flow.dst, flow.dport, flow.guest, flow.gport, data, now)
        if err:
            self.stats.send_errors += 1
            return
        self.stats.datagrams_to_guest += 1
        self.stats.octets_to_guest += len(data)
        if self.flows.get(flow.entry.key) is flow.entry:
            self.flows.inbound(flow.entry, len(data), now)

    # --- errors, expiry ---------------------------------------------------------------------------
    def _host_error(self, flow: _UdpFlow, err: HostError) -> None:
        self.stats.host_errors += 1
        shown = guest_error(err)
        if shown is not None:
            self._flow_error(flow, shown)

    def _flow_error(self, flow: _UdpFlow, shown: GuestError) -> None:
        self._tell_guest(flow.family, flow.guest, flow.gport, flow.dst, flow.dport, shown, flow.last_length)

    def _tell_guest(self, family: int, guest: int, gport: int, dst: int, dport: int, shown: GuestError,
                    length: int) -> None:
        err = self.stack.udp.forward_error(family, guest, gport, dst, dport, shown.kind, self.stack.now(),
                                           mtu=shown.mtu, length=length)
        if not err:
            self.stats.icmp_to_guest += 1


__all__ = ["FULL_KIND", "FlowOwner", "GuestError", "OutboundPolicy", "PendingQueue", "QueueBudget", "UdpGateway",
           "UdpGatewayStats", "errno_kind", "expire_owner", "format_addr", "guest_error", "poll_flows"]
