"""Device options shared by `tunstack up`, `ping` and `demo`: build the NDD, put its
kernel side in a namespace, attach it to a Stack, and undo all of it afterwards."""
from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass, field
from typing import Iterator

from drivers import PcapRecorder, TapNdd, TunNdd
from drivers.tuntap import TunTapNdd
from stack import Stack
from stack.addr import int_to_ip, parse_prefix
from stack.ifnet import Interface

from .netns import NetnsHost, ip


def add_device_options(p: argparse.ArgumentParser) -> None:
    dev = p.add_mutually_exclusive_group(required=True)
    dev.add_argument("--tun", metavar="NAME", help="create a TUN (layer 3) device NAME")
    dev.add_argument("--tap", metavar="NAME", help="create a TAP (Ethernet) device NAME")
    p.add_argument("--addr", required=True, metavar="A.B.C.D/P", help="the stack's address and prefix length")
    p.add_argument("--gw", metavar="G", help="default gateway (must be on the device's subnet)")
    p.add_argument("--mtu", type=int, default=1500, help="device MTU (default 1500)")
    p.add_argument("--netns", metavar="NS",
                   help="move the kernel side of the device into namespace NS (created if missing, "
                        "deleted on exit if created)")
    p.add_argument("--peer-addr", metavar="A.B.C.D/P",
                   help="address of the kernel side of the device (in NS with --netns)")
    p.add_argument("--pcap", metavar="FILE", help="record every frame in and out of the device to FILE")
    p.add_argument("--no-offload", action="store_true",
                   help="open without IFF_VNET_HDR: no checksum offload, no TSO/GSO")


def check_device_options(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for opt in ("addr", "peer_addr"):
        value = getattr(args, opt)
        if value is None:
            continue
        try:
            parse_prefix(value)
        except ValueError as exc:
            p.error(f"--{opt.replace('_', '-')}: {exc}")
    if args.netns and not args.peer_addr:
        p.error("--netns needs --peer-addr (the kernel side's address in the namespace)")
    name = args.tun or args.tap
    if len(name) > 15:
        p.error("device names are at most 15 characters (IFNAMSIZ)")
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
            parts.append(f"netns={self.host.name}")
        if self.kind == "tap":
            parts.append(f"mac={':'.join(f'{b:02x}' for b in self.ndd.ndd_physaddr)}")
        parts.append(f"offload={'on' if self.ndd.vnet else 'off'}")
        return "ready: " + " ".join(parts)


@contextlib.contextmanager
def open_device(args: argparse.Namespace) -> Iterator[Device]:
    """Create the device and its kernel side; on exit delete the namespace if we made it."""
    kind = "tun" if args.tun else "tap"
    cls = TunNdd if kind == "tun" else TapNdd
    ndd = cls(args.tun or args.tap, mtu=args.mtu, offload=not args.no_offload)
    host: NetnsHost | None = None
    try:
        ndd.create()
        if args.netns:
            host = NetnsHost.create(args.netns)
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
        if host is not None:
            host.delete()


def attach(stack: Stack, dev: Device, args: argparse.Namespace) -> Interface:
    dev.ifp = stack.add_interface(dev.ndd, args.addr, mtu=args.mtu)
    if args.gw:
        stack.add_route("0.0.0.0/0", args.gw)
    if args.pcap:
        dev.pcap = PcapRecorder.attach(dev.ndd, args.pcap)
    return dev.ifp


def peer_ip(args: argparse.Namespace) -> str | None:
    return int_to_ip(parse_prefix(args.peer_addr)[0]) if args.peer_addr else None
