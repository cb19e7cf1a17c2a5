"""`tunstack gateway` at run time: the pieces of tools/gateway/ put together around one Stack.

    guest namespace                    the gateway (our namespaces)
    ┌───────────────┐  TAP (or TUN)   ┌──────────────────────────────────────────────┐
    │ tap0          │ ══════════════▶ │ Stack "gateway": the guest's device is a      │
    │ 10.0.2.100/24 │  IFF_VNET_HDR   │ transparent interface (10.0.2.2, 10.0.2.3 and │──▶ host sockets
    │ via 10.0.2.2  │  offloads       │ every remote address the guest talks to)      │    (TCP, UDP, ping)
    └───────────────┘                 └──────────────────────────────────────────────┘

Order of a run (`run_gateway`), each step undone on the way out whatever happens:
  1. the target: a network namespace named by PID, path or name, or a new user + network
     namespace made for `-- COMMAND` (nsenter.spawn_in_new_namespaces; COMMAND waits);
  2. the device: a TAP (or TUN) created inside the target from a forked helper and used
     from here (nsenter.netns_opener), offloads negotiated on its fd; `--configure` sets the
     guest side's address, default route and MTU through a socket made in the target;
  3. the Stack on it, the interface transparent; the gateway and DNS addresses its own;
  4. the services: the TCP, UDP and echo sides (tcp, udp, echo) sharing one flow table, the
     DNS forwarder on DNS:53 (dns_serve), on a TAP DHCP and Router Advertisements
     (dhcp_serve, radv_serve), the port forwards and the API socket (portfwd, api);
  5. ready: `--ready-fd` gets "1", stdout a `ready:` line, COMMAND is let go;
  6. until a stop: SIGINT/SIGTERM/SIGHUP (tools/cli/command.py), `--exit-fd` readable, the
     target PID's exit, the namespace file's removal, or COMMAND's exit (its status is ours).
"""
from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import trio

from drivers.pcap import PcapRecorder
from drivers.tuntap import TapNdd, TunNdd, TunTapNdd
from protocols.dhcp.server import DhcpServer
from stack import Stack, StackConfig
from stack.busypoll import BusyPoller
from tools.cli.command import CliError

from .api import start_forwarding
from .args import PortForwardSpec
from .dhcp_serve import gateway_dhcp_config, serve_dhcp
from .dns import DnsConfig, ResolvConfWatch, forwarder_from_config
from .dns_serve import serve_dns
from .echo import EchoGateway
from .flows import FlowConfig, FlowTable
from .ifconfig import configure_interface
from .lifecycle import signal_ready, wait_exit_fd, wait_namespace_file_gone, wait_process_exit
from .nsenter import NamespacedChild, NamespaceTarget, netns_opener, same_namespace, spawn_in_new_namespaces
from .outbound import Outbound
from .policy import DEFAULT_MTU, AddressModel, Policy
from .portfwd import ForwardError
from .radv_serve import gateway_radv_config, make_advertiser, serve_ra
from .relay import RelayBudget
from .tcp import TcpGateway
from .udp import UdpGateway

CHILD_GRACE = 5.0            # seconds COMMAND has after our SIGTERM before SIGKILL
DEFAULT_BUSY_POLL = 50e-6    # stack/busypoll.py: the round trips' wake-ups fall inside it here
NOFILE_WANTED = 65536        # a host socket per flow: --max-flows 4096 needs more than the usual 1024


@dataclass
class GatewayOptions:
    """Everything a run needs, from either command line (tools/gateway/cli.py)."""
    target: NamespaceTarget | None = None          # None: make one for `command`
    command: list[str] = field(default_factory=list)
    watch_pid: int | None = None                   # the slirp4netns PID form: stop when it exits
    watch_path: str | None = None                  # a namespace file: stop when it is gone
    ifname: str = "tap0"
    tun: bool = False
    mtu: int = DEFAULT_MTU
    offload: bool = True
    model: AddressModel = field(default_factory=AddressModel.from_cidr)
    configure: bool = False
    mac: bytes | None = None                       # the guest side's MAC with --configure (TAP)
    ipv6: bool = True
    allow_host_loopback: bool = False
    allow_metadata: bool = False
    dns: DnsConfig = field(default_factory=DnsConfig)
    flows: FlowConfig = field(default_factory=FlowConfig)
    max_buffer: int = RelayBudget.total           # octets all TCP relays may hold at once
    tcp_relay: str = "lean"                       # the guest's TCP: "lean" (relayed.py) or "splice"
    busy_poll: float = DEFAULT_BUSY_POLL          # seconds the run loop polls after activity (0: never)
    outbound: Outbound = field(default_factory=Outbound)   # --outbound-addr[6], resolved
    tcp_forwards: list[PortForwardSpec] = field(default_factory=list)
    udp_forwards: list[PortForwardSpec] = field(default_factory=list)
    api_socket: str | None = None
    ready_fd: int | None = None
    exit_fd: int | None = None
    pcap: str | None = None
    stats: bool = False
    debug: bool = False
    prog: str = "tunstack gateway"                 # how messages name us (slirp4netns in compat mode)


@dataclass
class Gateway:
    """One running gateway: its stack, its sides and its flow table (what --stats and
    SIGUSR1 report)."""
    options: GatewayOptions
    stack: Stack
    ndd: TunTapNdd
    policy: Policy
    flows: FlowTable
    tcp: TcpGateway
    services: dict[str, Any] = field(default_factory=dict)   # name -> an object with .stats

    def counters(self) -> dict[str, Any]:
        relays = self.stack.tcp.relays
        out: dict[str, Any] = {"flows": {**vars(self.flows.stats), "open": len(self.flows)},
                               "tcp_gateway": vars(self.tcp.stats),
                               "tcp_splices": vars(self.tcp.poller.stats) if self.tcp.poller is not None else {},
                               "tcp_relayed": {"open": len(relays), "opened": relays.opened,
                                               "closed": relays.closed_count},
                               # frames the device's short ways carried (docs/design.md, "The short way")
                               "device": {"rx_fast": self.ndd.rx_fast, "tx_gathered": self.ndd.tx_gathered,
                                          "rx_polled": self.ndd.rx_polled},
                               "relay_buffers": {"total": self.tcp.budget.total, "in_use": self.tcp.budget.in_use,
                                                 "lean_held": relays.held, "peak": self.tcp.budget.peak,
                                                 "squeezed": self.tcp.budget.squeezed}}
        for name, service in self.services.items():
            stats = service.stats if hasattr(service, "stats") else service
            out[name] = vars(stats) if hasattr(stats, "__dict__") else stats
        out["stack"] = self.stack.stats()
        return out

    def flow_lines(self) -> list[str]:
        """The flow table as text (SIGUSR1): one flow per line."""
        now = self.stack.now()
        lines = [f"{self.options.prog}: {len(self.flows)} flows"]
        for flow in self.flows.flows.values():
            proto, src, sport, dst, dport = flow.key
            lines.append(f"  {proto} {_hostport(src, sport)} -> {_hostport(dst, dport)} "
                         f"age={now - flow.opened:.1f}s idle={now - flow.last:.1f}s "
                         f"out={flow.octets_out} in={flow.octets_in}")
        return lines


def _hostport(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def raise_nofile_limit(wanted: int = NOFILE_WANTED) -> int:
    """The soft RLIMIT_NOFILE up to `wanted` (never above the hard limit): each flow holds a
    host socket.  Returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def make_device(options: GatewayOptions, target: NamespaceTarget) -> TunTapNdd:
    """The guest's TAP/TUN, created inside `target` and served from here."""
    cls = TunNdd if options.tun else TapNdd
    ndd = cls(options.ifname, mtu=options.mtu, offload=options.offload, opener=netns_opener(target))
    ndd.create()
    return ndd


def configure_guest(options: GatewayOptions, ndd: TunTapNdd) -> None:
    """--configure: the guest side's address, default route, MTU (and MAC), up."""
    assert ndd.control is not None
    model = options.model
    address = ipaddress.IPv4Interface(f"{model.guest}/{model.network.prefixlen}")
    configure_interface(ndd.control, ndd.ndd_name, address, model.gateway, options.mtu,
                        mac=options.mac if not options.tun else None)


def build_stack(options: GatewayOptions, ndd: TunTapNdd) -> Stack:
    return Stack("gateway", config=StackConfig(ipv6=options.ipv6 and options.mtu >= 1280))


def attach_guest(options: GatewayOptions, st: Stack, ndd: TunTapNdd) -> Any:
    """The guest's device on the stack: transparent (it takes every address the guest sends
    to), with the gateway and DNS addresses as the stack's own."""
    model = options.model
    plen = model.network.prefixlen
    ifp = st.add_interface(ndd, f"{model.gateway}/{plen}", mtu=options.mtu)
    ifp.transparent = True
    if options.dns.enabled:
        dns = ipaddress.ip_address(options.dns.address)
        if dns != model.gateway and dns.version == 4:
            st.add_address(ifp, f"{dns}/{plen}" if dns in model.network else f"{dns}/32")
    if st.config.ipv6:
        plen6 = model.network6.prefixlen
        st.add_address(ifp, f"{model.gateway6}/{plen6}", dad=False)
        if options.dns.enabled:
            st.add_address(ifp, f"{model.dns6}/{plen6}", dad=False)
    return ifp


def ready_line(options: GatewayOptions, gw: Gateway) -> str:
    m = options.model
    parts = [f"ready: dev={gw.ndd.ndd_name}", f"kind={'tun' if options.tun else 'tap'}",
             f"guest={m.guest}/{m.network.prefixlen}", f"gateway={m.gateway}",
             f"dns={options.dns.address if options.dns.enabled else 'off'}", f"mtu={options.mtu}"]
    if gw.stack.config.ipv6:
        parts.append(f"prefix6={m.network6} gateway6={m.gateway6}")
    parts.append(f"host-loopback={'on' if options.allow_host_loopback else 'off'}")
    if options.command and isinstance(gw.services.get("child"), ChildWatch):
        parts.append(f"pid={gw.services['child'].child.pid}")
    parts.append(f"offload={'on' if gw.ndd.vnet else 'off'}")
    return " ".join(parts)


class ChildWatch:
    """COMMAND's process, as a service: its exit ends the run with its status."""
    def __init__(self, child: NamespacedChild) -> None:
        self.child = child
        self.stats: dict[str, Any] = {"pid": child.pid}


async def _serve_dns(options: GatewayOptions, st: Stack, nursery: trio.Nursery) -> Any:
    """The DNS forwarder on DNS:53 (UDP and TCP), and on the IPv6 DNS address too."""
    config = options.dns
    watch = ResolvConfWatch(config.resolv_conf, config.resolved_conf)
    forwarder = forwarder_from_config(config, watch=watch)
    addresses: list[tuple[int, str]] = [(socket.AF_INET, config.address)]
    if st.config.ipv6:
        addresses.append((socket.AF_INET6, str(options.model.dns6)))
    for family, address in addresses:
        udp = st.socket(family, socket.SOCK_DGRAM)
        udp.bind((address, config.port))
        tcp = st.socket(family, socket.SOCK_STREAM)
        tcp.bind((address, config.port))
        tcp.listen(128)
        nursery.start_soon(serve_dns, config, udp, tcp, forwarder, watch)
    return forwarder


async def _first(*waiters: Callable[[], Awaitable[object]]) -> None:
    """Return when the first of `waiters` returns (the others are cancelled)."""
    async with trio.open_nursery() as nursery:
        async def one(w: Callable[[], Awaitable[object]]) -> None:
            await w()
            nursery.cancel_scope.cancel()
        for w in waiters:
            nursery.start_soon(one, w)


async def _report_flows_on_sigusr1(gw: Gateway, err: TextIO) -> None:
    with trio.open_signal_receiver(signal.SIGUSR1) as signals:
        async for _ in signals:
            print("\n".join(gw.flow_lines()), file=err, flush=True)


def configure_logging(options: GatewayOptions, err: TextIO) -> None:
    """Warnings (ping sockets refused, ...) always; with -d every flow's fate too."""
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter(f"{options.prog}: %(message)s"))
    logger = logging.getLogger("tools.gateway")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG if options.debug else logging.WARNING)


async def run_gateway(options: GatewayOptions, *, until_shutdown: Callable[[], Awaitable[object]],
                      out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """A whole run (see the module docstring); the exit status: COMMAND's with `--`, else 0."""
    configure_logging(options, err)
    raise_nofile_limit()
    child: NamespacedChild | None = None
    if options.command:
        child = spawn_in_new_namespaces(options.command)
        target = child.target
        options.configure = True               # a new namespace has nothing else to configure it
    else:
        assert options.target is not None
        target = options.target
        target.check()
        if same_namespace(target.net, "/proc/self/ns/net"):
            # the guest side would be configured in our own namespace (its routes, its address)
            raise CliError(f"{target.net} is our own network namespace: a gateway serves another one")
    ndd: TunTapNdd | None = None
    try:
        ndd = make_device(options, target)
        if options.configure:
            configure_guest(options, ndd)
        pcap = PcapRecorder.attach(ndd, options.pcap) if options.pcap else None
        try:
            async with build_stack(options, ndd) as st:
                ifp = attach_guest(options, st, ndd)
                status = await _serve(options, st, ndd, ifp, child, until_shutdown, out, err)
        finally:
            if pcap is not None:
                pcap.close()
        return status
    finally:
        if ndd is not None:
            ndd.ndd_close()
        if child is not None and child.poll() is None:
            if child.go_fd >= 0:
                child.abort()                  # it never ran: it exits 125 unstarted
            else:
                _stop_child(child)


def _start_busy_poll(nursery: trio.Nursery, limit: float, st: Stack, ndd: TunTapNdd,
                     tcp: TcpGateway) -> BusyPoller:
    """Poll the run loop after each device read and each host-socket wake (stack/busypoll.py);
    told at their start, so an idle spell it measures ends when the event came, not after its work."""
    busy = BusyPoller(limit)
    st.rx_start_hooks.append(busy.activity)
    busy.watch(ndd.fd, ndd.poll_rx)
    ndd.rx_defer = busy.while_polling                        # the reader waits while the poller reads
    if tcp.poller is not None:
        tcp.poller.wake_hooks.append(busy.activity)
        busy.watch(tcp.poller.fileno(), tcp.poller.poll)     # its epoll: readable when a host socket is
        tcp.poller.defer = busy.while_polling
    nursery.start_soon(busy.run)
    return busy


def _stop_child(child: NamespacedChild, grace: float = CHILD_GRACE) -> None:
    """We are going while COMMAND runs (a signal to us): SIGTERM, and SIGKILL if it is still
    there `grace` seconds later -- never a wait without end on a child that ignores it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(child.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if child.poll() is not None:
            break
    child.wait()


async def _serve(options: GatewayOptions, st: Stack, ndd: TunTapNdd, ifp: Any, child: NamespacedChild | None,
                 until_shutdown: Callable[[], Awaitable[object]], out: TextIO, err: TextIO) -> int:
    policy = Policy(options.model, allow_host_loopback=options.allow_host_loopback,
                    allow_metadata=options.allow_metadata)
    flows = FlowTable(options.flows)
    st.timers.register(flows)
    tcp = TcpGateway(st, policy, flows, budget=RelayBudget(total=options.max_buffer), outbound=options.outbound,
                     lean=options.tcp_relay == "lean")
    gw = Gateway(options, st, ndd, policy, flows, tcp)
    status = 0
    async with trio.open_nursery() as nursery:
        await nursery.start(tcp.run)
        if options.busy_poll > 0:
            gw.services["busy_poll"] = _start_busy_poll(nursery, options.busy_poll, st, ndd, tcp)
        udp = UdpGateway(st, policy, flows, outbound=options.outbound)
        await nursery.start(udp.run)
        gw.services["udp_gateway"] = udp
        echo = EchoGateway(st, policy, flows, outbound=options.outbound)
        await nursery.start(echo.run)
        gw.services["echo_gateway"] = echo
        if options.dns.enabled:
            forwarder = await _serve_dns(options, st, nursery)
            gw.services["dns"] = forwarder
        if not options.tun:                    # an L2 guest: DHCP for VMs, RAs for SLAAC
            dhcp = DhcpServer(gateway_dhcp_config(options.model, options.mtu))
            gw.services["dhcp_link"] = await nursery.start(serve_dhcp, st, ifp, dhcp)
            gw.services["dhcp"] = dhcp
            if st.config.ipv6:
                advertiser = make_advertiser(st, ifp, gateway_radv_config(options.model, options.mtu))
                gw.services["radv"] = await nursery.start(serve_ra, st, ifp, advertiser)
        try:
            forwards, api = await start_forwarding(nursery, st, options.model,
                                                   [*options.tcp_forwards, *options.udp_forwards],
                                                   options.api_socket)
        except ForwardError as exc:
            raise CliError(f"port forward: {exc}") from None
        gw.services["port_forwards"] = forwards
        if api is not None:
            gw.services["api"] = api
        if child is not None:
            gw.services["child"] = ChildWatch(child)
        nursery.start_soon(_report_flows_on_sigusr1, gw, err)
        if options.ready_fd is not None and not signal_ready(options.ready_fd):
            print(f"{options.prog}: the --ready-fd reader has gone; serving on", file=err, flush=True)
        print(ready_line(options, gw), file=out, flush=True)
        stops: list[Callable[[], Awaitable[object]]] = [until_shutdown]
        if options.exit_fd is not None:
            fd = options.exit_fd
            stops.append(lambda: wait_exit_fd(fd))
        if options.watch_pid is not None:
            pid = options.watch_pid
            stops.append(lambda: wait_process_exit(pid))
        if options.watch_path is not None:
            path = options.watch_path
            stops.append(lambda: wait_namespace_file_gone(path))
        if child is not None:
            child.start()
            stops.append(lambda: wait_process_exit(child.pid))
        await _first(*stops)
        if child is not None and child.poll() is not None:
            status = child.wait()
        nursery.cancel_scope.cancel()
    st.timers.unregister(flows)
    if options.stats:
        print(json.dumps(gw.counters(), indent=1, default=_json_default), file=err, flush=True)
    return status


def _json_default(obj: object) -> Any:
    if isinstance(obj, float) and math.isinf(obj):
        return None
    if hasattr(obj, "__dict__"):
        return vars(obj)
    return str(obj)


__all__ = ["Gateway", "GatewayOptions", "raise_nofile_limit", "run_gateway"]
