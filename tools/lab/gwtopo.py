"""Three namespaces around a user-mode gateway, as containers see one: a real-peer topology.

    guest netns                host netns                         internet netns
    (empty; the gateway   <--  gateway process, host sockets  --veth--  servers (gwservers.py),
     makes its TAP here)       192.0.2.1/24, 2001:db8::1/64           192.0.2.2/24, 2001:db8::2/64
                               default routes via the internet side,  DNS responder when asked
                               /etc/netns/HOST/resolv.conf -> 192.0.2.2

The gateway (slirp4netns, pasta, `tunstack gateway`: a GatewaySpec) runs in the host namespace
as `ip netns exec HOST ARGV` -- ip(8) execs ARGV, so the PID we hold is the gateway's own --
and serves the guest namespace through /run/netns/GUEST.  No traffic touches the machine's
own network: the host namespace's only way out is the veth to the internet namespace, and
its resolver is the namespace's own resolv.conf (ip-netns(8) bind-mounts /etc/netns/NAME/*
over /etc for what it runs), never the machine's.

`gateway_topology(spec, mtu=...)` is an async (trio) context manager: it makes everything with
names from tools.lab.netns.unique_name, starts the servers and the gateway, checks that the
guest got its address, yields a Topology, and afterwards stops only the processes it started
(by PID: SIGTERM, then SIGKILL) and deletes every namespace, device and file it made.
Used by tests/realpeer/test_gateway_topology.py and by `make bench` (tools/bench/gateway.py).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import trio

from tools.lab.netns import NetnsHost, ip, unique_name

ROOT = Path(__file__).resolve().parents[2]
SERVERS = str(Path(__file__).with_name("gwservers.py"))
NETNS_ETC = Path("/etc/netns")        # ip-netns(8): per-namespace files bind-mounted over /etc

# slirp4netns's address model (the one `tunstack gateway` keeps)
GUEST_ADDR = "10.0.2.100"
GATEWAY_ADDR = "10.0.2.2"
DNS_ADDR = "10.0.2.3"
# the host namespace's uplink and the "internet" behind it (RFC 5737 / RFC 3849 documentation ranges)
HOST_ADDR, INTERNET_ADDR = "192.0.2.1", "192.0.2.2"
HOST_ADDR6, INTERNET_ADDR6 = "2001:db8::1", "2001:db8::2"
HOST_ALT_ADDR = "192.0.2.11"          # a secondary address of the host namespace (--outbound-addr)
NO_HOST_ADDR = "192.0.2.99"           # on the uplink's subnet, nobody answers its ARP
UNREACHABLE_NET = "198.51.100.0/24"   # an `unreachable` route in the host netns: EHOSTUNREACH at once
UNREACHABLE_ADDR = "198.51.100.7"
UNREACHABLE_NET6 = "2001:db8:dead::/48"
UNREACHABLE_ADDR6 = "2001:db8:dead::7"
PING_ALLOWED = "0 2147483647"         # net.ipv4.ping_group_range: every group may open ping sockets
PING_REFUSED = "1 0"                  # the kernel's default: nobody

ReadyKind = Literal["fd", "line", "configured"]


@dataclass(frozen=True)
class Launch:
    """What a GatewaySpec needs to build its command line."""
    guest_netns: str          # /run/netns/GUEST
    ifname: str
    mtu: int
    ready_fd: int             # -1 unless the spec's ready kind is "fd"
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class GatewaySpec:
    """One gateway program: its argv, and how it says it is serving.

    ready: "fd"         -- it writes to --ready-fd once the guest is configured (slirp4netns)
           "line"       -- it prints a `ready:` line on stdout (tunstack gateway)
           "configured" -- neither: serving once the guest has an address and a default route (pasta -f)
    guest_addr: the IPv4 address the guest must get (None: any global one, pasta copies the host's).
    ipv6_args: what it needs to serve the guest IPv6 too (slirp4netns: --enable-ipv6)."""
    name: str
    build: Callable[[Launch], list[str]]
    ready: ReadyKind
    guest_addr: str | None = GUEST_ADDR
    program: str = ""         # the executable that must be installed ("" = always there)
    ipv6_args: tuple[str, ...] = ()

    def missing(self) -> str:
        """'' when the program is installed, else why not."""
        if self.program and shutil.which(self.program) is None:
            return f"{self.program} is not installed"
        return ""


def _slirp4netns(launch: Launch) -> list[str]:
    return ["slirp4netns", "--configure", f"--mtu={launch.mtu}", "--netns-type=path",
            f"--ready-fd={launch.ready_fd}", *launch.extra, launch.guest_netns, launch.ifname]


def _tunstack(launch: Launch) -> list[str]:
    return [sys.executable, "-m", "tools.cli.main", "gateway", "--configure", "--mtu", str(launch.mtu),
            *launch.extra, "--netns", launch.guest_netns, launch.ifname]


def _pasta(launch: Launch) -> list[str]:
    # -f: stay in the foreground, so the PID we hold is pasta's; no port forwards either way;
    # --no-map-gw: the guest's gateway (192.0.2.2, copied from the host netns) is the internet
    # namespace, not the host's loopback; --runas 0: as root, it would otherwise drop to nobody
    # and fail to join the guest namespace
    # (measured: "Couldn't switch to pasta namespaces").
    return ["pasta", "-f", "-q", "--runas", "0:0", "--config-net",
            "-t", "none", "-u", "none", "-T", "none", "-U", "none", "--no-map-gw",
            "-m", str(launch.mtu), "-I", launch.ifname, *launch.extra, "--netns", launch.guest_netns]


def _relay(launch: Launch) -> list[str]:
    return [sys.executable, "-m", "tools.bench.gwrelay", "--netns", launch.guest_netns, "--mtu", str(launch.mtu),
            launch.ifname]


SLIRP4NETNS = GatewaySpec("slirp4netns", _slirp4netns, "fd", program="slirp4netns", ipv6_args=("--enable-ipv6",))
# the bench's minimal Python relay (tools/bench/gwrelay.py): request/response and connections only
LIMIT = GatewaySpec("limit", _relay, "line")
TUNSTACK = GatewaySpec("tunstack", _tunstack, "line")
PASTA = GatewaySpec("pasta", _pasta, "configured", guest_addr=None, program="pasta")


def project_env() -> dict[str, str]:
    """This environment with the project first on PYTHONPATH, for what runs in a namespace."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


class TopologyError(RuntimeError):
    """Something in the topology did not come up; the message says what and shows the output."""


class LineReader:
    """Lines from a trio stream, for the processes whose output we watch."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buf = b""

    async def line(self) -> str | None:
        while b"\n" not in self.buf:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                rest, self.buf = self.buf, b""
                return rest.decode(errors="replace") if rest else None
            self.buf += chunk
        text, self.buf = self.buf.split(b"\n", 1)
        return text.decode(errors="replace")


@dataclass
class Child:
    """A process we started; its output kept (the last lines) for error messages."""
    name: str
    proc: trio.Process
    output: deque[str] = field(default_factory=lambda: deque(maxlen=200))

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def tail(self, lines: int = 20) -> str:
        return "\n".join(list(self.output)[-lines:])

    async def drain(self, reader: LineReader, prefix: str = "") -> None:
        while (text := await reader.line()) is not None:
            self.output.append(prefix + text)

    async def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM to this PID (its own clean exit), SIGKILL after `grace` seconds."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with trio.move_on_after(grace):
                await self.proc.wait()
            if self.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode


@dataclass
class Topology:
    """What gateway_topology made.  Addresses are the module's constants."""
    spec: GatewaySpec
    mtu: int
    ifname: str
    guest: NetnsHost
    host: NetnsHost
    internet: NetnsHost
    nursery: trio.Nursery
    ipv6: bool = True
    gateway: Child | None = None
    ready_line: str = ""
    children: list[Child] = field(default_factory=list)
    resolv_dir: Path | None = None
    made_netns_etc: bool = False      # /etc/netns did not exist before: removed again when empty

    @property
    def guest_path(self) -> str:
        return f"/run/netns/{self.guest.name}"

    def guest_argv(self, *argv: str) -> list[str]:
        return self.guest.exec_argv(*argv)

    def guest_python(self, code: str, *args: str) -> list[str]:
        """This Python running `code` in the guest namespace, with the project importable."""
        return self.guest.exec_argv(sys.executable, "-c", code, *args)

    async def spawn(self, ns: NetnsHost, argv: Sequence[str], name: str, *, ready: str | None = None,
                    pass_fds: Sequence[int] = (), timeout: float = 15.0) -> tuple[Child, str]:
        """Start `argv` in `ns` (as `ip netns exec NS ARGV`), keep its output, and when `ready`
        is given wait for the first stdout line starting with it (returned)."""
        proc = await trio.lowlevel.open_process(ns.exec_argv(*argv), stdin=subprocess.DEVNULL,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                pass_fds=tuple(pass_fds), cwd=str(ROOT), env=project_env())
        child = Child(name, proc)
        self.children.append(child)
        assert proc.stdout is not None and proc.stderr is not None
        out, err = LineReader(proc.stdout), LineReader(proc.stderr)
        self.nursery.start_soon(child.drain, err, "stderr: ")
        line = ""
        if ready is not None:
            with trio.move_on_after(timeout) as waited:
                while (text := await out.line()) is not None:
                    child.output.append(text)
                    if text.startswith(ready):
                        line = text
                        break
            if not line:
                why = "timed out" if waited.cancelled_caught else f"exited ({proc.returncode})"
                await trio.sleep(0.1)          # let the stderr drain catch up for the message
                raise TopologyError(f"{name}: no `{ready}` line ({why}):\n{child.tail()}")
        self.nursery.start_soon(child.drain, out)
        return child, line

    async def guest_addresses(self) -> list[str]:
        r = await trio.run_process(["ip", "-n", self.guest.name, "-j", "-4", "addr", "show", "dev", self.ifname],
                                   capture_stdout=True, capture_stderr=True, check=False)
        if r.returncode != 0:
            return []
        return [a["local"] for link in json.loads(r.stdout or b"[]") for a in link.get("addr_info", [])
                if a.get("scope") == "global"]

    async def guest_addresses6(self) -> list[str]:
        """The guest's global IPv6 addresses that finished DAD (SLAAC from the gateway's RA)."""
        r = await trio.run_process(["ip", "-n", self.guest.name, "-j", "-6", "addr", "show", "dev", self.ifname],
                                   capture_stdout=True, capture_stderr=True, check=False)
        if r.returncode != 0:
            return []
        return [a["local"] for link in json.loads(r.stdout or b"[]") for a in link.get("addr_info", [])
                if a.get("scope") == "global" and not a.get("tentative")]

    async def wait_guest_ipv6(self, timeout: float = 15.0) -> list[str]:
        """The guest's IPv6 addresses once it has one and an IPv6 default route (RA), or
        TopologyError: router solicitation, RA, SLAAC and DAD take a few seconds."""
        addrs: list[str] = []
        with trio.move_on_after(timeout):
            while True:
                addrs = await self.guest_addresses6()
                r = await trio.run_process(["ip", "-n", self.guest.name, "-6", "route", "show", "default"],
                                           capture_stdout=True, capture_stderr=True, check=False)
                if addrs and b"default" in r.stdout:
                    return addrs
                await trio.sleep(0.1)
        tail = self.gateway.tail() if self.gateway else ""
        raise TopologyError(f"{self.spec.name}: guest has {addrs or 'no IPv6 address'} and "
                            f"{'a' if addrs else 'maybe no'} default route after {timeout:g} s:\n{tail}")

    async def guest_has_default_route(self) -> bool:
        r = await trio.run_process(["ip", "-n", self.guest.name, "-4", "route", "show", "default"],
                                   capture_stdout=True, capture_stderr=True, check=False)
        return r.returncode == 0 and b"default" in r.stdout

    async def set_ping_group_range(self, value: str) -> None:
        """net.ipv4.ping_group_range of the host namespace (it is per network namespace)."""
        await trio.run_process(self.host.exec_argv("sysctl", "-qw", f"net.ipv4.ping_group_range={value}"),
                               capture_stdout=True, capture_stderr=True)

    def internet_counter(self, group: str, name: str) -> int:
        """A /proc/net/snmp counter of the internet namespace (e.g. Icmp InEchos)."""
        r = self.internet.run("cat", "/proc/net/snmp", check=True)
        rows = [line.split() for line in r.stdout.splitlines() if line.startswith(group + ":")]
        header, values = rows[0], rows[1]
        return int(values[header.index(name)])

    def internet_counter6(self, name: str) -> int:
        """A /proc/net/snmp6 counter of the internet namespace (e.g. Icmp6InEchos)."""
        r = self.internet.run("cat", "/proc/net/snmp6", check=True)
        return next(int(v) for k, v in (line.split() for line in r.stdout.splitlines() if line.strip()) if k == name)

    def gateway_stat(self) -> dict[str, Any]:
        """The gateway's CPU seconds (user + system) and memory now, from /proc/PID."""
        assert self.gateway is not None
        pid = self.gateway.pid
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ":" in line)
        kib = {k: int(status[k].split()[0]) for k in ("VmRSS", "VmHWM") if k in status}
        # after ")" the fields are numbered from 3 (state): utime is 14, stime is 15 (proc(5))
        return {"cpu_s": (int(fields[11]) + int(fields[12])) / ticks, "rss_kib": kib.get("VmRSS", 0),
                "hwm_kib": kib.get("VmHWM", 0)}


def _veth(host: NetnsHost, internet: NetnsHost, ipv6: bool) -> None:
    """The uplink: a veth pair, host side 192.0.2.1 with its default route via 192.0.2.2."""
    dev_h, dev_i = unique_name("tgh"), unique_name("tgi")
    ip("link", "add", dev_h, "netns", host.name, "type", "veth", "peer", "name", dev_i, "netns", internet.name)
    for ns, dev, addr4, addr6 in ((host, dev_h, HOST_ADDR, HOST_ADDR6), (internet, dev_i, INTERNET_ADDR,
                                                                         INTERNET_ADDR6)):
        ns.devices.append(dev)
        ns.ip("addr", "add", f"{addr4}/24", "dev", dev)
        if ipv6:
            ns.ip("addr", "add", f"{addr6}/64", "dev", dev, "nodad")
        ns.ip("link", "set", dev, "up")
    # a second host address, never the routes' choice of source: --outbound-addr's
    host.ip("addr", "add", f"{HOST_ALT_ADDR}/24", "dev", dev_h)
    host.ip("route", "add", "default", "via", INTERNET_ADDR)
    host.ip("route", "add", "unreachable", UNREACHABLE_NET)
    if ipv6:
        host.ip("-6", "route", "add", "default", "via", INTERNET_ADDR6)
        host.ip("-6", "route", "add", "unreachable", UNREACHABLE_NET6)


GUEST_PORTS = "1024 65535"     # the guest's ephemeral ports (Linux's default: 32768-60999)


async def _wide_ports(guest: NetnsHost) -> None:
    """The guest's ephemeral ports span GUEST_PORTS.  A sequential connect + request + close
    client's FIN mostly crosses the gateway's (a simultaneous close: the client closes as
    soon as it has the answer, before the server's FIN has come through), so the guest
    keeps each such connection in TIME-WAIT for 60 s, and with Linux's
    28 232 default ports its connect(2) searched longer and longer for a free one: ~0.17 ms
    a connect until ~14 000 were taken, ~2.2 ms after (4 s into a run at 3.7 k connections
    per s, whatever the gateway) -- the bench measured the guest's port search instead of
    the gateway, the faster gateways the sooner.  65 k ports hold ~34 000 connections in
    10 s through tunstack at an even rate."""
    await trio.run_process(guest.exec_argv("sysctl", "-qw", f"net.ipv4.ip_local_port_range={GUEST_PORTS}"),
                           capture_stdout=True, capture_stderr=True)


async def _fast_slaac(guest: NetnsHost) -> None:
    """The guest's new interfaces skip DAD and the router-solicitation delay (RFC 4862 5.4,
    RFC 4861 6.3.7; Linux accept_dad, router_solicitation_delay): SLAAC in well under a second
    instead of ~3.5 s, and nothing else on that link could hold the address anyway."""
    for key, value in (("accept_dad", "0"), ("router_solicitation_delay", "0")):
        await trio.run_process(guest.exec_argv("sysctl", "-qw", f"net.ipv6.conf.default.{key}={value}"),
                               capture_stdout=True, capture_stderr=True)


def _resolv_conf(topo: Topology, nameserver: str) -> None:
    """/etc/netns/HOST/resolv.conf: what `ip netns exec HOST` shows as /etc/resolv.conf."""
    topo.made_netns_etc = not NETNS_ETC.exists()
    d = topo.resolv_dir = NETNS_ETC / topo.host.name
    d.mkdir(parents=True, exist_ok=False)
    (d / "resolv.conf").write_text(f"# tunstack gateway topology (tools/lab/gwtopo.py)\nnameserver {nameserver}\n")


async def _start_gateway(topo: Topology, extra: Sequence[str], timeout: float) -> None:
    spec = topo.spec
    ready_r = ready_w = -1
    if spec.ready == "fd":
        ready_r, ready_w = os.pipe()
    try:
        argv = spec.build(Launch(topo.guest_path, topo.ifname, topo.mtu, ready_w, tuple(extra)))
        child, line = await topo.spawn(topo.host, argv, spec.name, pass_fds=[ready_w] if ready_w >= 0 else [],
                                       ready="ready:" if spec.ready == "line" else None, timeout=timeout)
        topo.gateway, topo.ready_line = child, line
        if spec.ready == "fd":
            os.close(ready_w)           # ours: EOF on ready_r once the gateway's copy goes too
            ready_w = -1
            signalled = False
            with trio.move_on_after(timeout):
                await trio.lowlevel.wait_readable(ready_r)
                signalled = bool(os.read(ready_r, 1))     # one byte once serving; b"" if it died first
            if not signalled:
                await trio.sleep(0.2)
                raise TopologyError(f"{spec.name} did not signal ready on its --ready-fd:\n{child.tail()}")
    finally:
        for fd in (ready_r, ready_w):
            if fd >= 0:
                os.close(fd)
    await _check_guest(topo, timeout)


async def _check_guest(topo: Topology, timeout: float) -> None:
    """The guest has its address (the one the spec promises) and a default route."""
    assert topo.gateway is not None
    addrs: list[str] = []
    with trio.move_on_after(timeout):
        while True:
            addrs = await topo.guest_addresses()
            want = topo.spec.guest_addr
            if (addrs and (want is None or want in addrs)) and await topo.guest_has_default_route():
                return
            if topo.gateway.proc.returncode is not None:
                break
            await trio.sleep(0.05)
    raise TopologyError(f"{topo.spec.name}: guest {topo.ifname} has {addrs or 'no address'} (want "
                        f"{topo.spec.guest_addr or 'one'} and a default route):\n{topo.gateway.tail()}")


async def _teardown(topo: Topology) -> None:
    try:
        with trio.CancelScope(shield=True):
            # the gateway first: its exit is the clean one we want to see, then the servers
            for child in sorted(topo.children, key=lambda c: c is not topo.gateway):
                await child.stop()
    finally:
        _remove(topo)


def _remove(topo: Topology) -> None:
    for ns in (topo.guest, topo.host, topo.internet):
        ns.delete()
    if topo.resolv_dir is not None:
        with contextlib.suppress(FileNotFoundError):
            (topo.resolv_dir / "resolv.conf").unlink()
        for d in (topo.resolv_dir, NETNS_ETC if topo.made_netns_etc else None):
            with contextlib.suppress(OSError):
                if d is not None:
                    d.rmdir()          # /etc/netns only if we made it and no one else uses it now


@asynccontextmanager
async def gateway_topology(spec: GatewaySpec, *, mtu: int = 65520, extra: Sequence[str] = (),
                           ping_sockets: bool = True, ipv6: bool = True, servers: bool = True,
                           dns_responder: Sequence[str] | None = None, guest_ipv6: bool = False,
                           timeout: float = 15.0) -> AsyncIterator[Topology]:
    """The topology with `spec` serving the guest at `mtu` (see the module docstring).

    servers: start tools/lab/gwservers.py in the internet namespace; dns_responder: an argv
    (e.g. `python -m tests.dns_responder 192.0.2.2 53`) started there before the gateway,
    which prints `bound` once serving; ping_sockets: the host namespace's ping_group_range;
    guest_ipv6: the gateway serves the guest IPv6 too (spec.ipv6_args), and the guest has its
    SLAAC address and default route before this yields."""
    why = spec.missing()
    if why:
        raise TopologyError(why)
    made: list[NetnsHost] = []
    try:
        async with trio.open_nursery() as nursery:
            try:
                for prefix in ("tgg", "tgh", "tgi"):
                    made.append(NetnsHost.create(unique_name(prefix)))
                guest, host, internet = made
                topo = Topology(spec, mtu, "tap0", guest, host, internet, nursery, ipv6=ipv6)
                _veth(host, internet, ipv6)
                _resolv_conf(topo, INTERNET_ADDR)
                await topo.set_ping_group_range(PING_ALLOWED if ping_sockets else PING_REFUSED)
                if servers:
                    await topo.spawn(internet, [sys.executable, SERVERS, "::" if ipv6 else "0.0.0.0"], "servers",
                                     ready='{"ready"')
                if dns_responder is not None:
                    await topo.spawn(internet, dns_responder, "dns", ready="bound")
                await _wide_ports(guest)
                if guest_ipv6:
                    await _fast_slaac(guest)
                await _start_gateway(topo, [*extra, *(spec.ipv6_args if guest_ipv6 else ())], timeout)
                if guest_ipv6:
                    await topo.wait_guest_ipv6(timeout)
                yield topo
            finally:
                if len(made) == 3:
                    await _teardown(topo)
                else:
                    for ns in made:
                        ns.delete()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # the nursery (it only drains the children's output) wraps whatever the setup or the
        # caller's body raised: hand that on as itself, as a plain context manager would
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
