"""Device options shared by `tunstack up`, `ping` and `demo`: build the NDD, put its
kernel side in a namespace, attach it to a Stack, and undo all of it afterwards."""
from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

from drivers.pcap import PcapRecorder
from drivers.tuntap import TapNdd, TunNdd, TunTapNdd
from protocols.addr import int_to_ip, ip_to_int, is_multicast, parse_prefix, prefix_mask
from protocols.ifnet import Interface
from stack import Stack
from tools.lab.netns import NetnsHost, ip, netns_spec

from .command import CliError


def add_device_options(p: argparse.ArgumentParser) -> None:
    dev = p.add_mutually_exclusive_group(required=True)
    dev.add_argument("--tun", metavar="NAME", help="create a TUN (layer 3) device NAME")
    dev.add_argument("--tap", metavar="NAME", help="create a TAP (Ethernet) device NAME")
    p.add_argument("--addr", required=True, metavar="A.B.C.D/P", help="the stack's address and prefix length")
    p.add_argument("--gw", metavar="G", help="default gateway (must be on the device's subnet)")
    p.add_argument("--mtu", type=int, default=1500, help="device MTU (default 1500)")
    p.add_argument("--netns", metavar="NS",
                   help="move the kernel side of the device into a namespace: NS is a name (created if "
                        "missing, deleted on exit if created), a PID (that process's namespace) or a path "
                        "to a namespace file (e.g. /proc/PID/ns/net), as slirp4netns and pasta take it")
    p.add_argument("--peer-addr", metavar="A.B.C.D/P",
                   help="address of the kernel side of the device (in NS with --netns), on --addr's subnet")
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


def check_unicast(text: str, value: int) -> None:
    """An address a host interface may have: not 0.0.0.0/8, loopback, multicast, class E or
    broadcast (RFC 1122 §3.2.1.3, RFC 5735)."""
    top = value >> 24
    if top == 0:
        raise ValueError(f"{text}: 0.0.0.0/8 is 'this network', not an address for an interface")
    if top == 127:
        raise ValueError(f"{text}: a loopback address (127.0.0.0/8), not one for a TUN/TAP device")
    if is_multicast(value):
        raise ValueError(f"{text}: a multicast address (224.0.0.0/4), not one for an interface")
    if top >= 240:
        raise ValueError(f"{text}: a reserved or broadcast address (240.0.0.0/4), not one for an interface")


def parse_interface_address(text: str, example: str = "10.77.0.2/24") -> tuple[int, int]:
    """A.B.C.D/P for an interface: the prefix is required (a bare address would make a /32
    with no neighbour the stack could answer), 1..32, and the address a unicast host's."""
    addr_s, sep, plen_s = text.partition("/")
    if not sep:
        raise ValueError(f"{text}: no prefix length; expected A.B.C.D/P, e.g. {example}")
    try:
        value = ip_to_int(addr_s)
    except ValueError:
        raise ValueError(f"{text}: not an IPv4 address; expected A.B.C.D/P, e.g. {example}") from None
    if not plen_s.isascii() or not plen_s.isdigit() or not 0 <= int(plen_s) <= 32:
        raise ValueError(f"{text}: the prefix length must be 1..32")
    plen = int(plen_s)
    if plen == 0:
        raise ValueError(f"{text}: /0 would put every address on the link; give the subnet's prefix, e.g. "
                         f"{example}")
    check_unicast(text, value)
    if plen <= 30:
        host = value & ~prefix_mask(plen) & 0xFFFFFFFF
        if host == 0:
            raise ValueError(f"{text}: the subnet's network address, not a host's")
        if host == ~prefix_mask(plen) & 0xFFFFFFFF:
            raise ValueError(f"{text}: the subnet's broadcast address, not a host's")
    return value, plen


def on_subnet(value: int, net: int, plen: int) -> bool:
    mask = prefix_mask(plen)
    return value & mask == net & mask


def subnet_str(value: int, plen: int) -> str:
    return f"{int_to_ip(value & prefix_mask(plen))}/{plen}"


def check_addresses(args: argparse.Namespace) -> None:
    """--addr, --peer-addr and --gw, alone and together; ValueError says what is wrong."""
    try:
        addr, plen = parse_interface_address(args.addr)
    except ValueError as exc:
        raise ValueError(f"--addr {exc}") from None
    if args.peer_addr is not None:
        try:
            peer, peer_plen = parse_interface_address(args.peer_addr, "10.77.0.1/24")
        except ValueError as exc:
            raise ValueError(f"--peer-addr {exc}") from None
        if peer == addr:
            raise ValueError(f"--peer-addr {args.peer_addr}: the same address as --addr; the kernel side "
                             f"needs its own, e.g. another host on {subnet_str(addr, plen)}")
        if not on_subnet(peer, addr, plen) or not on_subnet(addr, peer, peer_plen):
            raise ValueError(f"--peer-addr {args.peer_addr}: not on --addr's subnet {subnet_str(addr, plen)}; "
                             f"the two ends of the device must share one")
    if args.gw is not None:
        try:
            gw = ip_to_int(args.gw)
        except ValueError:
            raise ValueError(f"--gw {args.gw}: not an IPv4 address") from None
        check_unicast(f"--gw {args.gw}", gw)
        if gw == addr:
            raise ValueError(f"--gw {args.gw}: the stack's own address; the gateway is another host")
        if not on_subnet(gw, addr, plen):
            raise ValueError(f"--gw {args.gw}: the gateway {args.gw} is not on --addr's subnet "
                             f"{subnet_str(addr, plen)}")


def check_device_options(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    name = args.tun if args.tun is not None else args.tap
    try:
        check_ifname(name)
    except ValueError as exc:
        p.error(f"--{'tun' if args.tun is not None else 'tap'}: {exc}")
    try:
        check_addresses(args)
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


@dataclass
class Device:
    ndd: TunTapNdd
    host: NetnsHost | None
    kind: str
    ifp: Interface | None = None
    pcap: PcapRecorder | None = None
    notes: list[str] = field(default_factory=list)

    def ready_line(self, args: argparse.Namespace) -> str:
        parts = [f"dev={self.ndd.ndd_name}", f"kind={self.kind}", f"addr={args.addr}"]
        if args.peer_addr:
            parts.append(f"peer={args.peer_addr}")
        if self.host:
            parts.append(f"netns={args.netns if self.host.alias else self.host.name}")
        if self.kind == "tap":
            parts.append(f"mac={':'.join(f'{b:02x}' for b in self.ndd.ndd_physaddr)}")
        parts.append(f"offload={'on' if self.ndd.vnet else 'off'}")
        return "ready: " + " ".join(parts)


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
    host: NetnsHost | None = None
    existed = os.path.exists(f"/sys/class/net/{ndd.ndd_name}")     # --reuse-device of a persistent one
    try:
        _create(ndd, kind, getattr(args, "reuse_device", False))
        if args.netns:
            host = NetnsHost.open(args.netns)
            host.adopt(ndd.ndd_name, args.peer_addr, mtu=args.mtu)
        elif args.peer_addr:
            ip("link", "set", ndd.ndd_name, "mtu", str(args.mtu))
            ip("addr", "add", args.peer_addr, "dev", ndd.ndd_name)
            ip("link", "set", ndd.ndd_name, "up")
        yield Device(ndd, host, kind)
    finally:
        ndd.ndd_close()
        if ndd.device is not None:   # never opened by a stack: close the fd ourselves
            ndd.device.close()
            ndd.device = None
        if existed:
            _give_back(ndd.ndd_name, host, args.peer_addr)
        if host is not None:
            host.delete()


def _give_back(name: str, host: NetnsHost | None, peer_addr: str | None) -> None:
    """A reused persistent device outlives us: take our address off it and bring it back to
    our namespace (a namespace we delete would destroy it with itself)."""
    if host is not None:
        host.ip("link", "set", name, "netns", str(os.getpid()), check=False)
    if peer_addr:
        ip("addr", "del", peer_addr, "dev", name, check=False)


def attach(stack: Stack, dev: Device, args: argparse.Namespace) -> Interface:
    dev.ifp = stack.add_interface(dev.ndd, args.addr, mtu=args.mtu)
    if args.gw:
        stack.add_route("0.0.0.0/0", args.gw)
    if args.pcap:
        try:
            recorder = StdoutPcapRecorder if args.pcap == "-" else PcapRecorder
            dev.pcap = recorder.attach(dev.ndd, args.pcap)
        except OSError as exc:
            raise CliError(f"--pcap {args.pcap}: {exc.strerror or exc}") from None
    return dev.ifp


def peer_ip(args: argparse.Namespace) -> str | None:
    return int_to_ip(parse_prefix(args.peer_addr)[0]) if args.peer_addr else None
