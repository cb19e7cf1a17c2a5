"""Classical IP over SVCs on the command line: `tunstack atm ip --switch ...` and
`tunstack atm arp-server`.

  atm ip --switch HOST:PORT --aesa AESA --addr A.B.C.D/P
         [--arp-server AESA | --serve-arp] [--peer IP=AESA ...] [--idle-timeout S]
      the `atm ip` stack, its adapter aimed at a switch port instead of a PVC's far end:
      IP over SVCs (RFC 2225), calls placed on demand for next hops resolved by the static
      --peer entries or the ATMARP server; --serve-arp makes this host the LIS's server.
  atm arp-server --switch HOST:PORT --addr AESA
      a host that is only the LIS's ATMARP server (RFC 2225 §8.4): no IP address, it
      registers and answers the clients that call it until SIGINT/SIGTERM/SIGHUP.

atm.py owns the options common to `atm ip` and calls the hooks below.
"""
from __future__ import annotations

import argparse
import errno
import json
import sys
from typing import Any

import trio

from drivers.atm.adapter import OC3C_LINE_RATE, AtmNdd
from drivers.atm.phy import UdpPhy
from drivers.pcap import PcapRecorder

from .command import until_shutdown

EPILOG_SVC = """
IP over SVCs (--switch instead of --remote/-l; see `tunstack atm switch --help`):
  tunstack atm switch --port a=127.0.0.1:7101,prefix=47000580ffe1000000f21a0001 \\
                      --port b=127.0.0.1:7102,prefix=47000580ffe1000000f21a0002
  tunstack atm ip --switch 127.0.0.1:7101 --aesa 47000580ffe1000000f21a00010020481a000100 \\
      --addr 10.79.0.1/24 --serve-arp --serve echo
  tunstack atm ip --switch 127.0.0.1:7102 --aesa 47000580ffe1000000f21a00020020481a000200 \\
      --addr 10.79.0.2/24 --arp-server 47000580ffe1000000f21a00010020481a000100 --ping 10.79.0.1
  (or, without a server, --peer 10.79.0.1=47000580ffe1000000f21a00010020481a000100)

With --switch the adapter's UDP PHY talks to a switch port and IPv4 goes over SVCs: calls
for --aesa with B-LLI LLC are accepted, a next hop is resolved to an AESA by the --peer
entries or the ATMARP server (--arp-server AESA; --serve-arp: this host is it) and called
on the first packet; a VC without IP for --idle-timeout seconds (default 1200) is released.
`ready:` comes once the signalling link is up (and, with a server, we are registered).
"""

EPILOG_SERVER = """examples:
  tunstack atm switch --port s=127.0.0.1:7103,prefix=47000580ffe1000000f21a0003 ...
  tunstack atm arp-server --switch 127.0.0.1:7103 --addr 47000580ffe1000000f21a00030020481a000300
  tunstack atm ip ... --arp-server 47000580ffe1000000f21a00030020481a000300

The LIS's ATMARP server (RFC 2225 §8.4) as a host of its own, with no IP address: it
accepts the clients' calls for --addr (B-LLI LLC), learns each client's (IP, ATM address)
from its registration and its answer to InATMARP, answers ATMARP_Requests with a reply or
a NAK, and forgets entries not refreshed for --lifetime seconds (default 1200).  Prints
`ready:` (stdout) once its signalling link is up; on SIGINT/SIGTERM/SIGHUP the table and,
with --stats, the counters go to stderr, exit 128 + the signal's number (130, 143, 129).
"""


# --- options ----------------------------------------------------------------------------------
def add_ip_svc_options(ip: argparse.ArgumentParser) -> None:
    g = ip.add_argument_group("IP over SVCs (with --switch)")
    g.add_argument("--aesa", metavar="AESA", help="our ATM address (hex, 20 octets, or 19 + selector 0)")
    g.add_argument("--arp-server", metavar="AESA", help="resolve next hops through this ATMARP server")
    g.add_argument("--serve-arp", action="store_true", help="be the LIS's ATMARP server (at --aesa) too")
    g.add_argument("--peer", action="append", default=[], metavar="IP=AESA",
                   help="a static IP -> ATM address entry; repeatable")
    g.add_argument("--idle-timeout", type=float, default=1200.0, metavar="S",
                   help="release an SVC after S seconds without IP (default 1200)")
    ip.epilog = (ip.epilog or "") + EPILOG_SVC


def add_arp_server_parser(asub: Any) -> None:
    p = asub.add_parser("arp-server", help="the LIS's ATMARP server for IP over SVCs (RFC 2225)",
                        description="Bring up an ATM adapter on a UDP PHY aimed at a switch port and serve "
                                    "ATMARP (RFC 2225 §8.4) at an ATM address, with no IP of its own.",
                        epilog=EPILOG_SERVER, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--switch", required=True, metavar="HOST:PORT", help="UDP address of the switch port")
    p.add_argument("--addr", required=True, metavar="AESA", help="the server's ATM address (hex, 19 or 20 octets)")
    p.add_argument("--selector", type=int, metavar="N", help="the AESA's selector octet, 0..255")
    p.add_argument("--lifetime", type=float, default=1200.0, metavar="S",
                   help="seconds an entry lives unless refreshed (default 1200, RFC 2225)")
    p.add_argument("--local", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="UDP address the adapter's PHY binds (default 127.0.0.1:0: any free port)")
    p.add_argument("--dev", default="atm0", metavar="NAME", help="the adapter's name (default atm0)")
    p.add_argument("--line-rate", default=str(OC3C_LINE_RATE), metavar="BPS",
                   help="cell pacing in bit/s; k/M/G suffixes; 0 = unpaced (default OC-3c, 149.76M)")
    p.add_argument("--wait", type=float, default=10.0, metavar="S",
                   help="seconds to wait for the signalling link before giving up (default 10)")
    p.add_argument("--pcap", metavar="FILE", help="record every SDU in and out to FILE (LINKTYPE_SUNATM)")
    p.add_argument("--stats", action="store_true", help="print the counters on exit (stderr, JSON)")
    p.set_defaults(atm_parser=p)


def check_ip_svc_options(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """`atm ip`: the SVC options make sense only with --switch, and --switch needs --aesa."""
    from .atm_svc import parse_aesa
    svc_opts = args.aesa or args.arp_server or args.serve_arp or args.peer
    if not args.switch:
        if svc_opts:
            p.error("--aesa, --arp-server, --serve-arp and --peer need --switch (IP over SVCs)")
        return
    if args.peer_ip:
        p.error("--peer-ip is the far end of a PVC; with --switch use --peer IP=AESA")
    if not args.aesa:
        p.error("--switch: our ATM address, --aesa AESA, is needed")
    args.aesa_b = parse_aesa(p, "--aesa", args.aesa, None)
    args.arp_server_b = parse_aesa(p, "--arp-server", args.arp_server, None) if args.arp_server else None
    if args.serve_arp and args.arp_server_b not in (None, args.aesa_b):
        p.error("--serve-arp: this host is the server; no other --arp-server")
    args.peers = []
    for spec in args.peer:
        ip, sep, addr = spec.partition("=")
        if not sep or ip.count(".") != 3:
            p.error(f"--peer: expected IP=AESA, got {spec!r}")
        try:
            import socket
            socket.inet_aton(ip)
        except OSError:
            p.error(f"--peer: not an IPv4 address: {ip!r}")
        args.peers.append((ip, parse_aesa(p, "--peer", addr, None)))
    if not args.arp_server_b and not args.serve_arp and not args.peers:
        p.error("--switch: say how next hops resolve: --arp-server AESA, --serve-arp or --peer IP=AESA")
    if args.idle_timeout <= 0:
        p.error("--idle-timeout must be > 0")


def check_arp_server_options(args: argparse.Namespace) -> None:
    from .atm_svc import check_switch_host_options, parse_aesa
    p = check_switch_host_options(args)
    args.aesa_b = parse_aesa(p, "--addr", args.addr, args.selector)
    if args.lifetime <= 0:
        p.error("--lifetime must be > 0")


# --- `atm ip --switch` hooks (tools/cli/atm.py run_ip) ---------------------------------------
def clip_config(args: argparse.Namespace) -> Any:
    from protocols.atm.clip.link import ClipConfig
    return ClipConfig(svc_idle_timeout=args.idle_timeout) if getattr(args, "switch", None) else None


def start_svc(st: Any, args: argparse.Namespace) -> None:
    st.add_atm_svc(args.dev, args.aesa_b, arp_server=args.arp_server_b, serve_atmarp=args.serve_arp)
    for ip, aesa in args.peers:
        st.add_atm_svc_peer(args.dev, ip, aesa)


def ready_fields(args: argparse.Namespace) -> str:
    how = "serve-arp" if args.serve_arp else (f"arp-server={args.arp_server_b.hex()}" if args.arp_server_b
                                               else "static")
    return f"aesa={args.aesa_b.hex()} {how} peers={len(args.peers)}"


async def wait_svc(st: Any, args: argparse.Namespace) -> None:
    """Until our signalling link is up and, with a server, our address is registered."""
    from protocols.atm.clip.svc import REGISTERED
    from protocols.atm.sockets.usrreq import svc_manager
    ep = svc_manager(st).endpoint(args.dev)
    core = st.atm_svc(args.dev)
    with trio.move_on_after(args.wait):
        while not (ep is not None and ep.link_up and (core.server_aesa is None or core.reg == REGISTERED)):
            await trio.sleep(0.02)
        return
    what = "registration with the ATMARP server" if ep is not None and ep.link_up else "signalling link"
    raise OSError(errno.EHOSTUNREACH, f"no {what} within {args.wait:g} s (is the switch at {args.switch} running, "
                                      f"and does it route the server's address?)")


async def announce_svc(st: Any, args: argparse.Namespace) -> None:
    try:
        await wait_svc(st, args)
    except OSError as exc:
        print(f"atmarp: {exc.strerror}", file=sys.stderr, flush=True)
        return
    core = st.atm_svc(args.dev)
    if core.server_aesa is not None:
        where = "ourselves" if args.serve_arp else core.server_aesa.hex()
        print(f"atmarp: {args.addr.split('/')[0]} registered with {where}", file=sys.stderr, flush=True)


async def finish_svc(st: Any, ndd: AtmNdd, args: argparse.Namespace) -> None:
    """Release our calls, let the RELEASEs leave, then end the signalling link cleanly."""
    from protocols.atm.clip.calls import disable_svc
    from protocols.atm.sockets.usrreq import svc_manager
    disable_svc(st, st._clip_link(args.dev))
    with trio.move_on_after(1):
        await ndd.wait_tx_idle()
        await trio.sleep(0.05)
    ep = svc_manager(st).endpoint(args.dev)
    if ep is not None:
        ep.release_link()
    with trio.move_on_after(1):
        await ndd.wait_tx_idle()


# --- atm arp-server ----------------------------------------------------------------------------
async def run_arp_server(args: argparse.Namespace) -> int:
    from protocols.addr import int_to_ip
    from protocols.atm.clip.link import ClipConfig
    from protocols.atm.sockets.usrreq import svc_manager
    from stack import Stack
    from stack.stack import StackConfig

    try:
        phy = UdpPhy(args.local_addr, args.switch_addr)
    except OSError as exc:
        raise OSError(exc.errno, f"--local {args.local}: {exc.strerror or exc}") from None
    pcap: PcapRecorder | None = None
    try:
        async with Stack(f"atm-arp-server:{args.dev}", StackConfig(clip=ClipConfig(server_lifetime=args.lifetime))) \
                as st:
            ndd = AtmNdd(args.dev, phy, line_rate=args.line_rate_bps)
            st.add_interface(ndd)
            if args.pcap:
                pcap = PcapRecorder.attach(ndd, args.pcap)
            core = st.add_atm_svc(args.dev, args.aesa_b, serve_atmarp=True)
            try:
                ep = svc_manager(st).endpoint(args.dev)
                with trio.move_on_after(args.wait):      # a signal here cancels it (tools/cli/command.py)
                    while ep is None or not ep.link_up:
                        await trio.sleep(0.02)
                if ep is None or not ep.link_up:
                    raise OSError(errno.EHOSTDOWN, f"no signalling link to the switch at {args.switch} "
                                                   f"within {args.wait:g} s")
                print("ready: dev={} kind=atm-udp local={}:{} switch={}:{} addr={} lifetime={:g}".format(
                      args.dev, *phy.local_address, *args.switch_addr, args.aesa_b.hex(), args.lifetime),
                      flush=True)
                await until_shutdown()
                for ip, aesa, expires, is_open in core.server.table():
                    print(f"entry {int_to_ip(ip)} {aesa.hex()} expires-in={expires - trio.current_time():.0f}s"
                          f"{' vc' if is_open else ''}", file=sys.stderr)
                if args.stats:
                    print(json.dumps(st.stats()["interfaces"][args.dev]["clip"], indent=1), file=sys.stderr)
            finally:
                with trio.CancelScope(shield=True):      # release the calls and the link (bounded)
                    await finish_svc(st, ndd, args)
    finally:
        if pcap is not None:
            pcap.close()
        phy.shutdown()
    return 0


__all__ = ["add_arp_server_parser", "add_ip_svc_options", "announce_svc", "check_arp_server_options",
           "check_ip_svc_options", "clip_config", "finish_svc", "ready_fields", "run_arp_server", "start_svc",
           "wait_svc"]
