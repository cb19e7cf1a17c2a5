"""The gateway's inbound port forwards (issue 13, "Inbound port forwards"): `-t`/`-u` (pasta's
grammar, args.parse_port_spec) and slirp4netns's API (api.py) land here.

Per forward a host socket listens on ADDR:PORT (TCP) or is bound there (UDP):
  * TCP: each connection a host client makes is answered by a stack TCP connection to the
    guest's port, and the two are spliced (splice.Splice: backpressure, half-close, resets).
    The guest's connection comes from the client's own address and port where the address
    model allows it -- the socket is bound there with IP_TRANSPARENT, and leaves by the
    transparent interface the guest's replies come back on (protocols/sockopt.py) -- which is
    what users of slirp4netns (every connection from 10.0.2.2) miss most.  A guest that
    refuses or cannot be reached shows the client a reset; so does a full forwarder
    (`max_connections`, counted).
  * UDP: per client (address, port) a flow -- a stack UDP socket bound the same way and
    connected to the guest's port -- its replies sent back to the client from the forward's
    socket; flows end after `udp_timeout` idle (30 s, 180 s once the guest answered: the
    gateway's UDP timeouts, conntrack's) and are bounded (`max_udp_flows`, counted).

Which client addresses the guest sees (`guest_visible_source`): an IPv4 unicast address that
is neither the host's own (its loopback or any local address: the guest would be talking to
the host under a name the host does not answer to for it) nor inside the guest's network
(the guest would look for it on its link).  Any other client -- on the host's loopback, another
local address, an IPv6 client of the IPv4 guest -- is shown as the gateway address (10.0.2.2),
the documented substitute (slirp4netns shows a loopback client so too).

The forwards are kept in an args.HostFwdTable (ids from 1, never reused, bounded), the
table list_hostfwd shows.
"""
from __future__ import annotations

import builtins
import errno
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from ndd.counters import Counters
from protocols.ipv4 import is_foreign_unicast
from protocols.sockopt import IP_TRANSPARENT
from stack.trio_compat import TrioSocket

from .args import AddHostFwd, ApiError, HostFwd, HostFwdTable, PortForwardSpec
from .policy import AddressModel
from .relay import RelayBudget, RelayResult, reset_stream
from .splice import Splice, SplicePoller

MAX_CONNECTIONS = 1024            # TCP connections relayed at once, all forwards together
MAX_UDP_FLOWS = 1024              # UDP client flows at once, all forwards together
MAX_FORWARDS = 1024               # forwards (host sockets) at once: HostFwdTable's limit
CONNECT_TIMEOUT = 30.0            # the guest's answer to a forwarded connection
UDP_ONE_WAY, UDP_TWO_WAY = 30.0, 180.0
LISTEN_BACKLOG = 128
UDP_MAX = 65535


class ForwardError(Exception):
    """A forward that cannot be set up: `desc` is the API's answer, as slirp4netns words it;
    str() adds what went wrong (the bind's error), one line for a log or the command line."""

    def __init__(self, desc: str, detail: str = "") -> None:
        super().__init__(f"{desc} ({detail})" if detail else desc)
        self.desc = desc
        self.detail = detail


@dataclass
class PortForwardStats(Counters):
    tcp_accepted: int = 0         # host connections taken
    tcp_relayed: int = 0          # ... spliced to a guest connection
    tcp_refused_full: int = 0     # reset: max_connections relayed already
    tcp_guest_refused: int = 0    # reset: the guest refused, was unreachable or silent
    tcp_accept_errors: int = 0    # accept(2) failed (EMFILE, ENOBUFS...): the listener goes on
    source_shown: int = 0         # the guest saw the client's own address
    source_substituted: int = 0   # ... the gateway address instead
    udp_flows_opened: int = 0
    udp_flows_expired: int = 0
    udp_refused_full: int = 0     # datagrams dropped: max_udp_flows open already
    udp_to_guest: int = 0         # datagrams
    udp_to_client: int = 0
    udp_send_errors: int = 0      # a datagram one side would not take, or an error read (dropped)
    octets_to_guest: int = 0
    octets_to_client: int = 0


def host_has_address(addr: str) -> bool:
    """Is `addr` one of this host's own addresses?  bind(2) of a datagram socket to it
    succeeds only then (without net.ipv4.ip_nonlocal_bind, whose error is on the safe
    side: a substitute)."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((addr, 0))
        except OSError:
            return False
    return True


def guest_visible_source(client: str, model: AddressModel,
                         host_local: Callable[[str], bool] = host_has_address) -> str | None:
    """The address the guest is shown for a host client at `client` (an IPv4 guest), or None
    for the substitute, the gateway address (see the module docstring)."""
    addr = ipaddress.ip_address(client.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is None:
            return None           # an IPv6 client of an IPv4 guest
        addr = addr.ipv4_mapped
    if not is_foreign_unicast(int(addr)) or addr.is_link_local or addr == model.network.broadcast_address:
        return None               # loopback, 0/8, multicast, class E; 169.254/16 is on-link for a guest
    if addr in model.network or host_local(str(addr)):
        return None
    return str(addr)


@dataclass(eq=False)
class _Forward:
    entry: HostFwd
    sock: trio.socket.SocketType
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


@dataclass(eq=False)
class _UdpFlow:
    client: tuple[Any, ...]
    guest: TrioSocket
    last: float
    replied: bool = False


class PortForwarder:
    """The forwards of one gateway.  Start `run` in a nursery (`await nursery.start(fwd.run)`),
    then `add` / `add_spec` / `remove` / `list`."""

    def __init__(self, stack: Any, model: AddressModel, *, guest_addr: str | None = None,
                 max_connections: int = MAX_CONNECTIONS, max_udp_flows: int = MAX_UDP_FLOWS,
                 max_forwards: int = MAX_FORWARDS, connect_timeout: float = CONNECT_TIMEOUT,
                 udp_one_way: float = UDP_ONE_WAY, udp_two_way: float = UDP_TWO_WAY,
                 host_local: Callable[[str], bool] = host_has_address) -> None:
        self.stack = stack
        self.model = model
        self.guest_addr = guest_addr or str(model.guest)
        self.max_connections = max_connections
        self.max_udp_flows = max_udp_flows
        self.connect_timeout = connect_timeout
        self.udp_one_way, self.udp_two_way = udp_one_way, udp_two_way
        self.host_local = host_local
        self.table = HostFwdTable(limit=max_forwards)
        self.stats = PortForwardStats()
        self.connections = 0
        self.udp_flows = 0
        self._forwards: dict[int, _Forward] = {}
        self._nursery: trio.Nursery | None = None
        self._poller: SplicePoller | None = None
        self.budget = RelayBudget()

    # --- life ------------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the forwards until cancelled; every host socket is closed on the way out."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._poller = SplicePoller(self.stack)
                nursery.start_soon(self._poller.run)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = self._poller = None
            for fwd in self._forwards.values():
                fwd.sock.close()
            self._forwards.clear()

    # --- the table -------------------------------------------------------------------------
    def list(self) -> list[HostFwd]:
        return self.table.list()

    async def add(self, req: AddHostFwd) -> HostFwd:
        """One forward (an API add_hostfwd): the host socket bound, its task started.  Raises
        ForwardError with slirp4netns's desc when the table refuses it or the bind fails."""
        if self._nursery is None:
            raise ForwardError("bad request: add_hostfwd: the forwarder is not running")
        entry = self.table.add(req)
        if isinstance(entry, ApiError):
            raise ForwardError(entry.desc)
        try:
            sock = await self._bind(entry)
        except OSError as exc:
            self.table.remove(entry.id)
            self.table.next_id = entry.id     # slirp4netns numbers only the forwards it made
            raise ForwardError("bad request: add_hostfwd: slirp_add_hostfwd failed",
                               f"{entry.proto} {_hostport(entry.host_addr, entry.host_port)}: "
                               f"{exc.strerror or exc}") from None
        fwd = _Forward(entry, sock)
        self._forwards[entry.id] = fwd
        self._nursery.start_soon(self._serve, fwd)
        return entry

    async def add_spec(self, spec: PortForwardSpec) -> builtins.list[HostFwd]:
        """Every mapping of one -t / -u option; all or none (a failure removes the ones made)."""
        if spec.mode == "none":
            return []
        if spec.mode == "auto":
            raise ForwardError(f"-{spec.proto[0]} auto (forward the guest's listening ports as they come) "
                               "is not served: give the ports")
        if spec.interface is not None:
            raise ForwardError(f"-{spec.proto[0]} {spec.interface}: binding a forward to an interface "
                               "(%IFNAME) is not served: give an address")
        pairs = builtins.list(spec.mappings())
        room = self.table.limit - len(self.table.entries)
        if len(pairs) > room:             # "all" is ~28000 ports: refused before binding any
            raise ForwardError(f"bad request: add_hostfwd: too many forwards (limit {self.table.limit})",
                               f"-{spec.proto[0]} {spec.mode} asks for {len(pairs)} ports, {room} left")
        made: builtins.list[HostFwd] = []
        host_addr = spec.address or "::"
        try:
            for host_port, guest_port in pairs:
                made.append(await self.add(AddHostFwd(spec.proto, host_addr, host_port, self.guest_addr,
                                                      guest_port)))
        except ForwardError:
            for entry in made:
                self.remove(entry.id)
            raise
        return made

    def remove(self, fwd_id: int) -> bool:
        """Stop a forward: its host socket closes (new clients are refused); connections
        already relayed go on, as slirp4netns's remove_hostfwd leaves them.  UDP flows end."""
        fwd = self._forwards.pop(fwd_id, None)
        if fwd is None or isinstance(self.table.remove(fwd_id), ApiError):
            return False
        fwd.scope.cancel()
        fwd.sock.close()
        return True

    async def _bind(self, entry: HostFwd) -> trio.socket.SocketType:
        """The forward's host socket.  "::" (a -t without an address) is dual-stack, as pasta
        binds both families; IPv4 only where the host has no IPv6."""
        kind = socket.SOCK_STREAM if entry.proto == "tcp" else socket.SOCK_DGRAM
        addr = entry.host_addr
        if addr == "::" and not socket.has_ipv6:
            addr = "0.0.0.0"
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        try:
            sock = trio.socket.socket(family, kind)
        except OSError as exc:
            if addr != "::" or exc.errno != errno.EAFNOSUPPORT:
                raise
            addr, family = "0.0.0.0", socket.AF_INET
            sock = trio.socket.socket(family, kind)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if addr == "::" else 1)
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # a restart rebinds at once
            await sock.bind((addr, entry.host_port))
            if kind == socket.SOCK_STREAM:
                sock.listen(LISTEN_BACKLOG)
        except BaseException:
            sock.close()
            raise
        return sock

    async def _serve(self, fwd: _Forward) -> None:
        with fwd.scope:
            try:
                if fwd.entry.proto == "tcp":
                    await self._serve_tcp(fwd)
                else:
                    await self._serve_udp(fwd)
            finally:
                fwd.sock.close()

    # --- the address the guest sees ------------------------------------------------------------
    def _visible(self, client: tuple[Any, ...]) -> str | None:
        shown = guest_visible_source(client[0], self.model, self.host_local)
        if shown is None:
            self.stats.source_substituted += 1
        else:
            self.stats.source_shown += 1
        return shown

    def _guest_socket(self, kind: int, source: str | None) -> TrioSocket:
        sock = TrioSocket(self.stack.socket(socket.AF_INET, kind))
        if source is not None:
            sock.setsockopt(socket.IPPROTO_IP, IP_TRANSPARENT, 1)
        return sock

    # --- TCP -------------------------------------------------------------------------------------
    async def _serve_tcp(self, fwd: _Forward) -> None:
        nursery = self._nursery
        assert nursery is not None
        while True:
            try:
                conn, client = await fwd.sock.accept()
            except OSError:
                # EMFILE / ENFILE / ENOBUFS / ECONNABORTED: this client is lost, the forward
                # stays (a pause lets a descriptor shortage pass instead of spinning on it)
                self.stats.tcp_accept_errors += 1
                await trio.sleep(0.1)
                continue
            self.stats.tcp_accepted += 1
            stream = trio.SocketStream(conn)
            if self.connections >= self.max_connections:
                self.stats.tcp_refused_full += 1
                await reset_stream(stream)
                continue
            self.connections += 1
            nursery.start_soon(self._tcp_flow, fwd.entry, stream, client)

    async def _tcp_flow(self, entry: HostFwd, host: trio.SocketStream, client: tuple[Any, ...]) -> None:
        spliced = False
        try:
            guest = await self._connect_guest(entry, client)
            if guest is None:
                self.stats.tcp_guest_refused += 1
                await reset_stream(host)             # the client sees what a closed port shows
                return
            self.stats.tcp_relayed += 1
            pr = self.stack.protosw.find_proto(socket.AF_INET, socket.IPPROTO_TCP, socket.SOCK_STREAM)
            host_sock = socket.socket(fileno=host.socket.detach())

            def ended(result: RelayResult) -> None:
                # the splice's "host" is the client here: to_host is what the guest sent it
                self.stats.octets_to_client += result.to_host.octets
                self.stats.octets_to_guest += result.to_guest.octets
                self.connections -= 1

            assert self._poller is not None          # run() made it before any forward was served
            Splice(self._poller, guest.detach(), pr.usrreqs, host_sock, self.budget, ended)
            spliced = True
        finally:
            if not spliced:
                self.connections -= 1
                await trio.aclose_forcefully(host)

    async def _connect_guest(self, entry: HostFwd, client: tuple[Any, ...]) -> TrioSocket | None:
        """A stack connection to the guest's port from the client's address and port (its port
        when free here, else another), or from the gateway's own address; None when the guest
        refused, was unreachable or did not answer in connect_timeout."""
        source = self._visible(client)
        ports = (client[1], 0) if source is not None else (0,)
        for port in ports:
            sock = self._guest_socket(socket.SOCK_STREAM, source)
            try:
                if source is not None:
                    await sock.bind((source, port))
                with trio.move_on_after(self.connect_timeout):
                    await sock.connect((entry.guest_addr, entry.guest_port))
                    return sock
                sock.close()
                return None
            except OSError as exc:
                sock.close()
                # the client's port is held here (EADDRINUSE), or its 4-tuple still lives on in
                # TIME-WAIT (EADDRNOTAVAIL): the same address, another port
                if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL) or port == 0:
                    return None
            except BaseException:
                sock.close()
                raise
        return None

    # --- UDP -------------------------------------------------------------------------------------
    async def _serve_udp(self, fwd: _Forward) -> None:
        flows: dict[tuple[Any, ...], _UdpFlow] = {}
        async with trio.open_nursery() as nursery:
            while True:
                try:
                    data, client = await fwd.sock.recvfrom(UDP_MAX)
                except OSError:
                    self.stats.udp_send_errors += 1       # an ICMP error about a reply: read and gone
                    continue
                key = tuple(client[:2])
                flow = flows.get(key)
                if flow is None:
                    flow = await self._open_udp_flow(fwd.entry, client)
                    if flow is None:
                        continue
                    flows[key] = flow
                    nursery.start_soon(self._udp_replies, fwd, flows, key, flow)
                flow.last = trio.current_time()
                try:
                    await flow.guest.send(data)
                    self.stats.udp_to_guest += 1
                    self.stats.octets_to_guest += len(data)
                except OSError:
                    self.stats.udp_send_errors += 1

    async def _open_udp_flow(self, entry: HostFwd, client: tuple[Any, ...]) -> _UdpFlow | None:
        if self.udp_flows >= self.max_udp_flows:
            self.stats.udp_refused_full += 1
            return None
        source = self._visible(client)
        for port in ((client[1], 0) if source is not None else (0,)):
            sock = self._guest_socket(socket.SOCK_DGRAM, source)
            try:
                if source is not None:
                    await sock.bind((source, port))
                await sock.connect((entry.guest_addr, entry.guest_port))
            except OSError:
                sock.close()
                continue
            self.udp_flows += 1
            self.stats.udp_flows_opened += 1
            return _UdpFlow(client, sock, trio.current_time())
        self.stats.udp_send_errors += 1
        return None

    async def _udp_replies(self, fwd: _Forward, flows: dict[tuple[Any, ...], _UdpFlow], key: tuple[Any, ...],
                           flow: _UdpFlow) -> None:
        """The guest's datagrams back to the client, until the flow has been idle too long."""
        try:
            while True:
                timeout = self.udp_two_way if flow.replied else self.udp_one_way
                with trio.move_on_at(flow.last + timeout) as idle:
                    try:
                        data = await flow.guest.recv(UDP_MAX)
                    except OSError:
                        continue                         # an ICMP error from the guest's side
                if idle.cancelled_caught:
                    if trio.current_time() >= flow.last + timeout:
                        self.stats.udp_flows_expired += 1
                        return
                    continue                             # the client spoke meanwhile
                flow.last = trio.current_time()
                flow.replied = True
                try:
                    await fwd.sock.sendto(data, flow.client)
                    self.stats.udp_to_client += 1
                    self.stats.octets_to_client += len(data)
                except OSError:
                    self.stats.udp_send_errors += 1
        finally:
            flows.pop(key, None)
            self.udp_flows -= 1
            flow.guest.close()


def _hostport(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


__all__ = ["CONNECT_TIMEOUT", "MAX_CONNECTIONS", "MAX_FORWARDS", "MAX_UDP_FLOWS", "ForwardError", "PortForwardStats",
           "PortForwarder", "guest_visible_source", "host_has_address"]
