"""Device options shared by `tunstack up`, `ping` and `demo`: build the NDD, put its
kernel side in a namespace, attach it to a Stack, and undo all of it afterwards."""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

import trio

from drivers.pcap import PcapRecorder
from drivers.tuntap import TapNdd, TunNdd, TunTapNdd
from protocols.ifnet import Interface
from protocols.ipv6.addr import int_to_ip6
from protocols.ipv6.addrconf import DUPLICATE, SLAAC, TENTATIVE, AddressInfo
from protocols.ipv6.host import Inet6Config
from protocols.ipv6.wire import MIN_MTU as MIN_MTU6
from stack import Stack, StackConfig
from tools.lab.netns import NetnsHost, ip, netns_spec

from .addrs import IfAddress, address_plan, check_addresses
from .addrs import parse_interface_address as parse_interface_address  # atm.py and the tests import it here
from .command import CliError

# the longest `settle` waits for DAD: a second of random delay and a second per probe (Linux
# dad_transmits 1), and an RFC 7217 retry of a duplicate link-local address -- with room to spare
DAD_WAIT = 10.0


def add_device_options(p: argparse.ArgumentParser) -> None:
    dev = p.add_mutually_exclusive_group(required=True)
    dev.add_argument("--tun", metavar="NAME", help="create a TUN (layer 3) device NAME")
    dev.add_argument("--tap", metavar="NAME", help="create a TAP (Ethernet) device NAME")
    p.add_argument("--addr", required=True, action="append", metavar="ADDR/P",
                   help="an address of the stack with its prefix length, IPv4 (A.B.C.D/P) or IPv6 (X:X::X/P); "
                        "repeatable, at least one (e.g. --addr 10.77.0.2/24 --addr fd00:77::2/64). IPv6 "
                        "ones go through DAD on TAP first; a link-local address is formed besides")
    p.add_argument("--gw", action="append", metavar="G",
                   help="default gateway, one per family: IPv4 on an --addr's subnet; IPv6 on an --addr's "
                        "subnet or link-local (fe80::1, always on the device)")
    p.add_argument("--mtu", type=int, default=1500, help="device MTU (default 1500)")
    p.add_argument("--netns", metavar="NS",
                   help="move the kernel side of the device into a namespace: NS is a name (created if "
                        "missing, deleted on exit if created), a PID (that process's namespace) or a path "
                        "to a namespace file (e.g. /proc/PID/ns/net), as slirp4netns and pasta take it")
    p.add_argument("--peer-addr", action="append", metavar="ADDR/P",
                   help="an address of the kernel side of the device (in NS with --netns), on the subnet of "
                        "an --addr of its family (IPv6: added nodad, usable at once; a link-local one is "
                        "always on the link); repeatable")
    p.add_argument("--slaac", action=argparse.BooleanOptionalAction, default=None,
                   help="accept Router Advertisements from the kernel side: SLAAC addresses from their "
                        "prefixes and default routers (Linux accept_ra 1, autoconf 1); on by default, on "
                        "TUN as on TAP; --no-slaac ignores them")
    p.add_argument("--no-ipv6", action="store_true",
                   help="IPv4 only: no IPv6 on the device (no link-local address, IPv6 frames dropped), "
                        "as Linux's disable_ipv6 1")
    p.add_argument("--pcap", metavar="FILE",
                   help="record every frame in and out of the device to FILE (`-`: stdout, as tcpdump -w -)")
    p.add_argument("--no-offload", action="store_true",
                   help="open without IFF_VNET_HDR: no checksum offload, no TSO/GSO")
    p.add_argument("--reuse-device", action="store_true",
                   help="attach to an existing persistent TUN/TAP device of that name instead of refusing")


# --- argument checks (no root needed) ---------------------------------------------------------
def check_ifname(name: str) -> None:
    """Linux's dev_valid_name(): 1..15 bytes, not "." or "..", no "/", ":" or whitespace."""
    if not name:
        raise ValueError("a device name cannot be empty")
    if len(name.encode()) > 15:
        raise ValueError(f"{name!r}: device names are at most 15 characters (IFNAMSIZ)")
    if name in (".", "..") or any(c in "/:" or c.isspace() for c in name):
        raise ValueError(f"{name!r}: not a device name (no '/', ':' or spaces; not '.' or '..')")


def check_device_options(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every device option; the checked addresses are left in `args.plan`."""
    name = args.tun if args.tun is not None else args.tap
    try:
        check_ifname(name)
    except ValueError as exc:
        p.error(f"--{'tun' if args.tun is not None else 'tap'}: {exc}")
    if args.no_ipv6 and args.slaac:
        p.error("--slaac needs IPv6; it cannot go with --no-ipv6")
    try:
        args.plan = check_addresses(args)
    except ValueError as exc:
        p.error(str(exc))
    if args.netns is not None:
        if not args.peer_addr:
            p.error("--netns needs --peer-addr (the kernel side's address in the namespace)")
        try:
            netns_spec(args.netns)
        except ValueError as exc:
            p.error(f"--netns: {exc}")
    if not 68 <= args.mtu <= 65535:
        p.error("--mtu must be within 68..65535")
    if args.mtu < MIN_MTU6 and not args.no_ipv6 and any(a.family == 6 for a in args.plan.addrs):
        p.error(f"--mtu {args.mtu}: an IPv6 --addr needs an MTU of at least {MIN_MTU6} (RFC 8200 §5); "
                f"Linux turns IPv6 off below it")


def stack_config(args: argparse.Namespace) -> StackConfig:
    """The Stack's settings from the device options: IPv6 on unless --no-ipv6, and Router
    Advertisements accepted (routers and SLAAC) unless --no-slaac."""
    # Linux turns IPv6 off on a device whose MTU is below 1280 (addrconf_notify, NETDEV_CHANGEMTU)
    ipv6 = not getattr(args, "no_ipv6", False) and getattr(args, "mtu", 1500) >= MIN_MTU6
    slaac = ipv6 and getattr(args, "slaac", None) is not False
    return StackConfig(ipv6=ipv6, inet6=Inet6Config(accept_ra=slaac, autoconf=slaac))


@dataclass
class Device:
    ndd: TunTapNdd
    host: NetnsHost | None
    kind: str
    ifp: Interface | None = None
    pcap: PcapRecorder | None = None
    notes: list[str] = field(default_factory=list)
    stack: Stack | None = None

    def addresses6(self) -> list[AddressInfo]:
        """The device's IPv6 addresses now (none before attach, or without IPv6)."""
        if self.stack is None or self.ifp is None:
            return []
        return self.stack.inet6.addresses(self.ifp, self.stack.now())

    def ready_line(self, args: argparse.Namespace) -> str:
        """`ready: dev=... kind=... addr=IPv4,... addr6=IPv6/P(state),... peer=...`: every
        address with, for IPv6, its state (and `slaac` for one formed from an RA)."""
        plan = address_plan(args)
        parts = [f"dev={self.ndd.ndd_name}", f"kind={self.kind}"]
        if plan.of(4):
            parts.append("addr=" + ",".join(a.prefix for a in plan.of(4)))
        infos = self.addresses6()
        if infos:
            order = {a.value: i for i, a in enumerate(plan.of(6))}
            infos.sort(key=lambda i: order.get(i.addr, len(order)))     # the --addr ones first, as given
            parts.append("addr6=" + ",".join(address6_text(i) for i in infos))
        if plan.peers:
            parts.append("peer=" + ",".join(p.prefix for p in plan.peers))
        if self.host:
            parts.append(f"netns={args.netns if self.host.alias else self.host.name}")
        if self.kind == "tap":
            parts.append(f"mac={':'.join(f'{b:02x}' for b in self.ndd.ndd_physaddr)}")
        parts.append(f"offload={'on' if self.ndd.vnet else 'off'}")
        return "ready: " + " ".join(parts)


def address6_text(info: AddressInfo, state: str | None = None) -> str:
    """`fd00:77::2/64(preferred)`, `fd00:99::5c1:9aff:fe3b:1/64(preferred,slaac)`."""
    tags = [(state or info.state).lower()] + (["slaac"] if info.origin == SLAAC else [])
    return f"{int_to_ip6(info.addr)}/{info.plen}({','.join(tags)})"


async def settle(dev: Device, args: argparse.Namespace, timeout: float = DAD_WAIT, *,
                 wait: bool | None = None) -> None:
    """Wait until no IPv6 address of the device is tentative any more (DAD, RFC 4862 §5.4:
    up to a second of random delay and a second per probe on TAP; nothing to wait for on
    TUN), at most `timeout` seconds; then an --addr found duplicate is an error (CliError),
    as Linux marks it dadfailed and never uses it.  Only when the options name IPv6
    (`wait` None) or `wait` says so: an IPv4-only command is ready at once, as before, its
    link-local address shown tentative and announced by an `addr6:` line once usable."""
    if wait is None:
        wait = address_plan(args).names_ipv6
    if wait:
        with trio.move_on_after(timeout):
            while any(i.state == TENTATIVE for i in dev.addresses6()):
                await trio.sleep(0.05)
    states = {i.addr: i.state for i in dev.addresses6()}
    for a in address_plan(args).of(6):
        if states.get(a.value) == DUPLICATE:
            raise CliError(f"--addr {a.text}: duplicate address detected on {dev.ndd.ndd_name} (DAD: another host "
                           f"on the link has it; Linux would mark it dadfailed); choose another address")


async def report_address_changes(dev: Device, out: TextIO, interval: float = 0.5) -> None:
    """After `ready:`, one line per IPv6 address that appears, changes state or goes (a SLAAC
    address from an RA, a deprecated or expired one): `addr6: dev=tp0 fd00:99::1/64(preferred,slaac)`."""
    seen = {i.addr: i for i in dev.addresses6()}
    name = dev.ndd.ndd_name
    while True:
        await trio.sleep(interval)
        now = {i.addr: i for i in dev.addresses6()}
        for addr, info in now.items():
            before = seen.get(addr)
            if before is None or (before.state, before.origin, before.plen) != (info.state, info.origin, info.plen):
                print(f"addr6: dev={name} {address6_text(info)}", file=out, flush=True)
        for addr, info in seen.items():
            if addr not in now:
                print(f"addr6: dev={name} {address6_text(info, 'removed')}", file=out, flush=True)
        seen = now


def _create(ndd: TunTapNdd, kind: str, reuse: bool) -> None:
    """TUNSETIFF, refusing to take over an existing device (a persistent TUN/TAP would
    otherwise be attached to and moved silently) unless --reuse-device."""
    name = ndd.ndd_name
    if os.path.exists(f"/sys/class/net/{name}") and not reuse:
        raise CliError(f"device {name} already exists (a persistent TUN/TAP or another interface); "
                       f"choose another name, or --reuse-device to attach to an existing persistent {kind}")
    try:
        ndd.create()
    except OSError as exc:
        why = exc.strerror or str(exc)
        hint = {errno.EPERM: " (needs root or CAP_NET_ADMIN)", errno.EACCES: " (needs root or CAP_NET_ADMIN)",
                errno.ENOENT: " (no TUN/TAP support: load the tun module, `modprobe tun`)",
                errno.EBUSY: f" (another process has {name} open)",
                errno.EINVAL: f" (is {name} an existing device of another kind than {kind}?)"}.get(exc.errno or 0, "")
        raise CliError(f"cannot create {kind.upper()} device {name}: /dev/net/tun: {why}{hint}") from None


class StdoutPcapRecorder(PcapRecorder):
    """`--pcap -`: the capture on stdout, as `tcpdump -w -` writes it (on a duplicate of fd 1,
    so closing the recorder leaves stdout itself open)."""

    def __init__(self, path: str, linktype: int) -> None:
        super().__init__("-", linktype, file=os.fdopen(os.dup(sys.stdout.fileno()), "wb"))


def text_out(args: argparse.Namespace) -> TextIO:
    """Where a command's text goes: stdout, unless --pcap - has it for the capture."""
    return sys.stderr if getattr(args, "pcap", None) == "-" else sys.stdout


@contextlib.contextmanager
def open_device(args: argparse.Namespace) -> Iterator[Device]:
    """Create the device and its kernel side; on exit delete the namespace if we made it."""
    kind = "tun" if args.tun is not None else "tap"
    cls = TunNdd if kind == "tun" else TapNdd
    ndd = cls(args.tun if kind == "tun" else args.tap, mtu=args.mtu, offload=not args.no_offload)
    peers = address_plan(args).peers
    host: NetnsHost | None = None
    existed = os.path.exists(f"/sys/class/net/{ndd.ndd_name}")     # --reuse-device of a persistent one
    try:
        _create(ndd, kind, getattr(args, "reuse_device", False))
        if args.netns:
            host = NetnsHost.open(args.netns)
            ip("link", "set", ndd.ndd_name, "netns", host.name)
            host.devices.append(ndd.ndd_name)
            configure_kernel_side(host.ip, ndd.ndd_name, peers, args.mtu)
        elif peers:
            configure_kernel_side(ip, ndd.ndd_name, peers, args.mtu)
        wait_kernel_link_ready(host.ip if host is not None else ip, ndd.ndd_name)
        yield Device(ndd, host, kind)
    finally:
        ndd.ndd_close()
        if ndd.device is not None:   # never opened by a stack: close the fd ourselves
            ndd.device.close()
            ndd.device = None
        if existed:
            _give_back(ndd.ndd_name, host, peers)
        if host is not None:
            host.delete()


def configure_kernel_side(run_ip: Callable[..., object], name: str, peers: list[IfAddress], mtu: int) -> None:
    """The kernel's end of the device: its MTU, every --peer-addr (IPv6 ones `nodad`, usable at
    once rather than after the kernel's own DAD second), up."""
    run_ip("link", "set", name, "mtu", str(mtu))
    for p in peers:
        run_ip("addr", "add", p.prefix, "dev", name, *(["nodad"] if p.family == 6 else []))
    run_ip("link", "set", name, "up")


# `ip -o link show`: the admin flags in <...>, the operational state after "state"
_LINK_FLAGS = re.compile(r"<([^>]*)>")
_LINK_STATE = re.compile(r" state (\S+)")


def wait_kernel_link_ready(run_ip: Callable[..., object], name: str, timeout: float = 2.0,
                           poll: float = 0.01) -> bool:
    """Wait until the kernel has taken in the carrier our open gave its end of the device
    (operstate UP, or UNKNOWN for a TUN), at most `timeout` s; False if it had not by then.

    Opening the TUN/TAP turns its carrier on, but the kernel acts on that later, in its
    linkwatch work (which needs the RTNL lock, held meanwhile by a namespace being torn down,
    say): until then its transmit queue is the no-op one, which drops every frame.  A DAD
    probe sent in that window is answered into the void, and a duplicate goes unseen --
    Linux itself starts DAD only once a link is ready (addrconf_link_ready).  A kernel end
    that is administratively down is not waited for: it sends nothing either way."""
    deadline = time.monotonic() + timeout
    while True:
        shown = run_ip("-o", "link", "show", "dev", name, check=False)
        text = getattr(shown, "stdout", "") or ""
        flags = _LINK_FLAGS.search(text)
        state = _LINK_STATE.search(text)
        if flags is None or "UP" not in flags[1].split(","):
            return True
        if state is not None and state[1] in ("UP", "UNKNOWN"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


def _give_back(name: str, host: NetnsHost | None, peers: list[IfAddress]) -> None:
    """A reused persistent device outlives us: take our addresses off it and bring it back to
    our namespace (a namespace we delete would destroy it with itself)."""
    if host is not None:
        host.ip("link", "set", name, "netns", str(os.getpid()), check=False)
    for p in peers:
        ip("addr", "del", p.prefix, "dev", name, check=False)


def attach(stack: Stack, dev: Device, args: argparse.Namespace) -> Interface:
    """The device on the stack with every --addr (IPv6 ones tentative until DAD: `settle`)
    and the --gw routes; the capture first, so that it holds the first DAD probes and reports."""
    plan = address_plan(args)
    if args.pcap:
        try:
            recorder = StdoutPcapRecorder if args.pcap == "-" else PcapRecorder
            dev.pcap = recorder.attach(dev.ndd, args.pcap)
        except OSError as exc:
            raise CliError(f"--pcap {args.pcap}: {exc.strerror or exc}") from None
    v4 = plan.of(4)
    dev.stack = stack
    dev.ifp = ifp = stack.add_interface(dev.ndd, v4[0].prefix if v4 else None, mtu=args.mtu)
    for a in [*v4[1:], *plan.of(6)]:
        stack.add_address(ifp, a.prefix)
    if plan.gw4:
        stack.add_route("0.0.0.0/0", plan.gw4)
    if plan.gw6:
        stack.add_route("::/0", plan.gw6, dev=ifp.name)
    return ifp


def peer_ip(args: argparse.Namespace) -> str | None:
    """The kernel side's first IPv4 address, if any."""
    peers = address_plan(args).peers_of(4)
    return peers[0].address if peers else None
