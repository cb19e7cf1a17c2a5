"""`tunstack atm switch`: the emulated ATM switch (stack/atm_switch.py) as a process.

    tunstack atm switch --port a=127.0.0.1:7101,prefix=47000580ffe1000000f21a0001 \\
                        --port b=127.0.0.1:7102,prefix=47000580ffe1000000f21a0002 \\
                        --pvc a:0.100=b:0.100 --pcap-dir caps --stats -v

Each --port is one switch port: an emulated adapter whose UDP PHY binds HOST:PORT (port 0:
any free port) and sends its cells to `remote=HOST:PORT`, or, without remote=, to whoever
sent the last cell datagram (the endpoint is learned from its first one).  Once every port
is bound it prints one line to stdout,

    ready: switch=atmsw port.a=127.0.0.1:7101 port.b=127.0.0.1:7102 pvcs=1 line-rate=149.76Mbit/s

and switches calls until SIGINT, SIGTERM or SIGHUP (exit 128 + the signal's number: 130,
143, 129; a bad option: one line on stderr, exit 2; a port that cannot be bound: exit 1).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from drivers.atm.adapter import OC3C_LINE_RATE
from drivers.atm.phy import UdpPhy
from ndd.atm import VPI_MAX
from protocols.atm.switch.core import FIRST_VCI, LAST_VCI, parse_address, parse_prefix

from .atm_args import hostport, line_rate, rate_text
from .command import until_shutdown

EPILOG = """examples:
  tunstack atm switch --port a=127.0.0.1:7101,prefix=47000580ffe1000000f21a0001 \\
                      --port b=127.0.0.1:7102,prefix=47000580ffe1000000f21a0002
      endpoints then point their UDP PHYs at 127.0.0.1:7101 and :7102 and call each
      other's AESA (47000580ffe1000000f21a0002 + ESI + SEL reaches port b)
  tunstack atm switch --port a=127.0.0.1:0,prefix=47.0005.80ffe1 --port b=127.0.0.1:0,prefix=* \\
                      --pcap-dir caps --stats -v
      any free ports (see the ready: line); b is the default route; caps/a.pcap and
      caps/b.pcap hold each port's signalling (SSCOP, Q.2931); calls logged on stderr
  tunstack atm switch --port a=127.0.0.1:7101,remote=127.0.0.1:7201 \\
                      --port b=127.0.0.1:7102,remote=127.0.0.1:7202 --pvc a:0.100=b:0.200
      a permanent cross-connect: cells on a's VC 0/100 leave b on 0/200 and back

--port NAME=HOST:PORT[,OPTION...]   (repeatable; NAME: 1-15 characters)
  remote=HOST:PORT   send this port's cells there (default: to the last sender)
  prefix=P           AESA prefix routed to this port: hex nibbles of the 20-octet
                     address ('.' allowed), '+digits' for E.164, '*' for the default
                     route; repeatable.  Ports also learn the calling numbers of the
                     SETUPs they send (prefix + ESI) unless `nolearn` is given.
  addr=A             an address that exists behind the port (AESA, selector ignored);
                     repeatable.  With any addr=, other numbers under its prefixes are
                     refused as unallocated (cause 1).
  vci=FIRST-LAST     VCIs for switched VCs on VPI 0 (default 32-65535); vpi=N moves them
  nolearn            do not learn routes from this port's calling numbers

Calls are routed by called party number (longest prefix).  Refusals: no route 3,
unallocated number 1, port without signalling link 27, no VCI free 45; the called
user's cause (busy 17, rejected 21, no listener 88 ...) reaches the caller as given,
and an unanswered SETUP (T303 twice) ends with 18.  Data cells are switched cell by
cell (VPI/VCI rewritten, HEC recomputed): the pcaps show signalling, not relayed cells.
"""


def add_switch_parser(asub: Any) -> None:
    p = asub.add_parser("switch", help="an ATM switch: ports over the UDP PHY, Q.2931 call routing, PVCs",
                        description="Run an emulated ATM switch: each --port is an adapter on a UDP PHY "
                                    "with SAAL and the network side of Q.2931; SETUPs are routed by "
                                    "called party number, each leg gets a VPI/VCI, data cells are "
                                    "cross-connected; PVCs can be configured too.",
                        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", action="append", default=[], required=True, metavar="NAME=HOST:PORT[,OPT...]",
                   help="a switch port (options below); repeatable")
    p.add_argument("--pvc", action="append", default=[], metavar="P:VPI.VCI=P:VPI.VCI",
                   help="a permanent cross-connect between two ports' VCs; repeatable")
    p.add_argument("--route", action="append", default=[], metavar="PREFIX=PORT",
                   help="a static route (also to a port not given: calls to it get cause 27)")
    p.add_argument("--pcap-dir", metavar="DIR", help="write DIR/NAME.pcap per port (LINKTYPE_SUNATM)")
    p.add_argument("--line-rate", default=str(OC3C_LINE_RATE), metavar="BPS",
                   help="cell pacing per port in bit/s; k/M/G suffixes; 0 = unpaced (default OC-3c)")
    p.add_argument("--name", default="atmsw", help="the switch's name (default atmsw)")
    p.add_argument("--stats", action="store_true", help="print the switch's counters on exit (stderr, JSON)")
    p.add_argument("-v", "--verbose", action="store_true", help="log calls and routes learned (stderr)")
    p.set_defaults(atm_parser=p)


# --- option parsing -----------------------------------------------------------------------
def _port_spec(p: argparse.ArgumentParser, text: str) -> dict[str, Any]:
    first, *opts = text.split(",")
    name, sep, local = first.partition("=")
    if not sep or not name or len(name) > 15 or any(c in name for c in ":/ "):
        p.error(f"--port {text!r}: expected NAME=HOST:PORT[,option...] (NAME 1-15 characters)")
    spec: dict[str, Any] = {"name": name, "local": hostport(p, f"--port {name}", local), "remote": None,
                            "prefixes": [], "addresses": None, "vpi": 0, "vci_range": (FIRST_VCI, LAST_VCI),
                            "learn": True}
    for opt in opts:
        key, sep, value = opt.partition("=")
        try:
            if key == "remote" and sep:
                spec["remote"] = hostport(p, f"--port {name} remote", value)
                if spec["remote"][1] == 0:
                    p.error(f"--port {name}: remote port 0 is not an address to send to")
            elif key == "prefix" and sep:
                parse_prefix(value)
                spec["prefixes"].append(value)
            elif key == "addr" and sep:
                parse_address(value)
                spec["addresses"] = (spec["addresses"] or []) + [value]
            elif key == "vci" and sep:
                lo, _, hi = value.partition("-")
                spec["vci_range"] = (int(lo), int(hi or lo))
                if not FIRST_VCI <= spec["vci_range"][0] <= spec["vci_range"][1] <= LAST_VCI:
                    raise ValueError(f"vci={value}: FIRST-LAST within 32-65535")
            elif key == "vpi" and sep:
                spec["vpi"] = int(value)
                if not 0 <= spec["vpi"] <= 255:
                    raise ValueError("vpi must be within 0..255")
            elif key == "nolearn" and not sep:
                spec["learn"] = False
            else:
                raise ValueError(f"unknown option {opt!r} (remote=, prefix=, addr=, vci=, vpi=, nolearn)")
        except ValueError as exc:
            p.error(f"--port {name}: {exc}")
    return spec


def _vc(p: argparse.ArgumentParser, text: str) -> tuple[str, int, int]:
    port, sep, vc = text.partition(":")
    vpi_s, dot, vci_s = vc.replace("/", ".").partition(".")
    try:
        if not (sep and dot and port):
            raise ValueError
        vpi, vci = int(vpi_s), int(vci_s)
    except ValueError:
        p.error(f"--pvc: expected PORT:VPI.VCI, got {text!r}")
    if not (0 <= vpi <= VPI_MAX and FIRST_VCI <= vci <= LAST_VCI):
        p.error(f"--pvc {text}: VPI 0-255, VCI 32-65535 (0-31 are reserved)")
    return port, vpi, vci


def check_switch_options(args: argparse.Namespace) -> None:
    p: argparse.ArgumentParser = args.atm_parser
    args.port_specs = [_port_spec(p, s) for s in args.port]
    names = [s["name"] for s in args.port_specs]
    if len(set(names)) != len(names):
        p.error("--port: each port needs its own NAME")
    args.pvc_specs = []
    for text in args.pvc:
        a, sep, b = text.partition("=")
        if not sep:
            p.error(f"--pvc: expected P:VPI.VCI=P:VPI.VCI, got {text!r}")
        ends = (_vc(p, a), _vc(p, b))
        for end in ends:
            if end[0] not in names:
                p.error(f"--pvc {text}: no --port {end[0]}")
        args.pvc_specs.append(ends)
    args.route_specs = []
    for text in args.route:
        prefix, sep, port = text.rpartition("=")
        try:
            if not sep or not port:
                raise ValueError(f"expected PREFIX=PORT, got {text!r}")
            parse_prefix(prefix)
        except ValueError as exc:
            p.error(f"--route: {exc}")
        args.route_specs.append((prefix, port))
    args.line_rate_bps = line_rate(p, args.line_rate)
    if args.pcap_dir is not None and not os.path.isdir(args.pcap_dir):
        p.error(f"--pcap-dir {args.pcap_dir}: not a directory")


# --- running ------------------------------------------------------------------------------
async def serve_switch(args: argparse.Namespace) -> int:
    from stack.atm_switch import AtmSwitch

    log = (lambda text: print(f"{args.name}: {text}", file=sys.stderr, flush=True)) if args.verbose else None
    async with AtmSwitch(args.name, line_rate=args.line_rate_bps, log=log) as sw:
        for spec in args.port_specs:
            try:
                phy = UdpPhy(spec["local"], spec["remote"], follow_sender=spec["remote"] is None)
            except OSError as exc:
                raise OSError(exc.errno, f"--port {spec['name']}: {spec['local'][0]}:{spec['local'][1]}: "
                                         f"{exc.strerror or exc}") from None
            pcap = os.path.join(args.pcap_dir, f"{spec['name']}.pcap") if args.pcap_dir else None
            try:
                sw.add_port(spec["name"], phy, prefixes=spec["prefixes"], addresses=spec["addresses"],
                            pcap=pcap, vpi=spec["vpi"], vci_range=spec["vci_range"], learn=spec["learn"])
            except ValueError as exc:
                phy.shutdown()
                raise OSError(0, f"--port {spec['name']}: {exc}") from None
        for prefix, port in args.route_specs:
            try:
                sw.add_route(prefix, port)
            except ValueError as exc:
                raise OSError(0, f"--route {prefix}={port}: {exc}") from None
        for a, b in args.pvc_specs:
            try:
                sw.add_pvc(a, b)
            except ValueError as exc:
                raise OSError(0, f"--pvc: {exc}") from None
        ports = " ".join("port.{}={}:{}".format(n, *p.phy.local_address)    # type: ignore[attr-defined]
                         for n, p in sw.ports.items())
        print(f"ready: switch={args.name} {ports} pvcs={len(args.pvc_specs)} "
              f"line-rate={rate_text(args.line_rate_bps)}", flush=True)
        await until_shutdown()                   # tools/cli/command.py prints which signal
        stats = sw.stats()
    if args.stats:
        print(json.dumps(stats, indent=1, default=str), file=sys.stderr, flush=True)
    return 0
