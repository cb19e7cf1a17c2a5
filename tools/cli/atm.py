"""`tunstack atm`: two endpoints in separate processes, joined by the emulated ATM adapter's
UDP PHY (cells in UDP datagrams, drivers/atm/phy.py).

  atm pvc  an AF_NDD PVC socket (SOCK_CONN_DGRAM, NDD_PROT_ATM): each stdin line goes out
           as one AAL5 SDU, every SDU received is written to stdout (as `tunstack nc -u`).
  atm ip   a stack whose only interface is the ATM adapter, with Classical IP (RFC 2225)
           over one PVC -- or over SVCs through a switch (--switch; tools/cli/atm_clip.py) --:
           serves like `tunstack up --serve`, or with --ping / --fetch acts as a client and exits.
  atm switch / svc-server / svc-call / arp-server   an emulated ATM switch, an SVC echo
           server, an SVC caller and an ATMARP server (tools/cli/atm_switch.py,
           tools/cli/atm_svc.py, tools/cli/atm_clip.py).

The far end is given with --remote HOST:PORT, or learned with -l/--listen from the first
cell datagram that arrives (so one side can use --local 127.0.0.1:0 and print its port).
"""
from __future__ import annotations

import argparse
import errno
import hashlib
import json
import socket as _pysocket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import trio

from drivers.atm.adapter import OC3C_LINE_RATE, AtmNdd
from drivers.atm.phy import UdpPhy
from drivers.pcap import PcapRecorder
from ndd.atm import RESERVED_VCI_MAX, VCI_MAX, VPI_MAX
from tools.services.builtin import ServiceStats, parse_serve, start_services

from .atm_args import hostport, line_rate, rate_text
from .atm_clip import (
    add_arp_server_parser,
    add_ip_svc_options,
    announce_svc,
    check_arp_server_options,
    check_ip_svc_options,
    clip_config,
    finish_svc,
    ready_fields,
    run_arp_server,
    start_svc,
    wait_svc,
)
from .atm_svc import add_svc_parsers, check_svc_options, run_call, run_server
from .atm_switch import add_switch_parser, check_switch_options, serve_switch
from .command import cancel_on_shutdown, run_command, until_shutdown
from .nc import DatagramSession

DEFAULT_VPI, DEFAULT_VCI = 0, 100

EPILOG_ATM = """examples (two terminals; cells travel as UDP datagrams between the two processes):
  tunstack atm pvc --local 127.0.0.1:7001 --remote 127.0.0.1:7002
  tunstack atm pvc --local 127.0.0.1:7002 --remote 127.0.0.1:7001
  tunstack atm ip --local 127.0.0.1:7001 --remote 127.0.0.1:7002 --addr 10.79.0.1/24 --serve http
  tunstack atm ip --local 127.0.0.1:7002 --remote 127.0.0.1:7001 --addr 10.79.0.2/24 --ping 10.79.0.1

`tunstack atm pvc --help` and `tunstack atm ip --help` have more.
"""

EPILOG_PVC = """examples:
  tunstack atm pvc --local 127.0.0.1:7001 --remote 127.0.0.1:7002 --vci 42
  tunstack atm pvc --local 127.0.0.1:7002 --remote 127.0.0.1:7001 --vci 42
      then type lines in either terminal: each is one AAL5 SDU on VC 0/42
  tunstack atm pvc -l --local 127.0.0.1:0 -W 1                # prints local=127.0.0.1:PORT
      then: echo hi | tunstack atm pvc --remote 127.0.0.1:PORT -q 1
  tunstack atm pvc --local 127.0.0.1:7001 --remote 127.0.0.1:7002 --pcap pvc.pcap --line-rate 2M

Opens VC VPI/VCI on an emulated ATM adapter whose PHY is a UDP socket bound to --local,
connects a PVC socket to it (no cell leaves: a PVC needs no signalling), then prints one
line beginning with `ready:` to stderr, with the UDP address actually bound.  Each stdin
line (newline included) goes out as one AAL5 SDU; each SDU received is written to stdout
as it is.  Both ends must use the same VPI/VCI.

Ending it (as `tunstack nc -u`): -W N after N SDUs received, -w S after S idle seconds,
-q S S seconds after EOF on stdin (default: keep receiving), or SIGINT/SIGTERM/SIGHUP
(exit 128 + the signal's number).
With -l, lines typed before the far end has sent anything are held until it has.
"""

EPILOG_IP = """examples:
  tunstack atm ip --local 127.0.0.1:7001 --remote 127.0.0.1:7002 --addr 10.79.0.1/24 \\
      --serve http --serve echo
  tunstack atm ip --local 127.0.0.1:7002 --remote 127.0.0.1:7001 --addr 10.79.0.2/24 -c 3 \\
      --ping 10.79.0.1
  tunstack atm ip --local 127.0.0.1:7002 --remote 127.0.0.1:7001 --addr 10.79.0.2/24 \\
      --fetch http://10.79.0.1/bytes/10000000 -o /dev/null
  tunstack atm ip -l --local 127.0.0.1:0 --addr 10.79.0.1/24 --peer-ip 10.79.0.2 --pcap atm.pcap

A stack whose only interface is the ATM adapter (IP MTU 9180), carrying IPv4 over PVC
VPI/VCI with RFC 2684 LLC/SNAP.  Without --peer-ip the far end's address is learned by
Inverse ATMARP (RFC 2225); a line `inatmarp: ...` on stderr says when.  Once the PVC is
open and every --serve service is bound it prints one line beginning with `ready:`
(stdout; stderr with --fetch), then:
  - by default serves until SIGINT, SIGTERM or SIGHUP (--serve as in `tunstack up`; exit
    128 + the signal's number);
  - with --ping HOST: waits for the PVC's far end to be known, pings it -c times and
    exits (0 when every echo came back);
  - with --fetch URL: waits likewise, GETs the URL over the stack's TCP, writes the body
    to stdout (or -o FILE) and "fetched ..: status, bytes, Mbit/s, SHA-256" to stderr;
    exits 0 on status 200.

services (--serve NAME[:PORT], repeatable):
  echo     RFC 862, UDP and TCP port 7      discard  RFC 863, UDP and TCP port 9
  chargen  RFC 864, TCP port 19             http     TCP port 80: / and /bytes/N
"""


# --- options -----------------------------------------------------------------------------
def _add_phy_options(p: argparse.ArgumentParser, switch: bool = False) -> None:
    p.add_argument("--local", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="UDP address the PHY binds (default 127.0.0.1:0: any free port, shown by `ready:`)")
    far = p.add_mutually_exclusive_group()
    far.add_argument("--remote", metavar="HOST:PORT", help="UDP address of the far end's PHY")
    far.add_argument("-l", "--listen", action="store_true",
                     help="no --remote: send to whoever sent the last cell datagram (the far end is "
                          "learned from the first one)")
    if switch:
        far.add_argument("--switch", metavar="HOST:PORT",
                         help="UDP address of an ATM switch port: IP over SVCs, no PVC (see below)")
    p.add_argument("--vpi", type=int, default=DEFAULT_VPI, help=f"VPI of the PVC, 0..255 (default {DEFAULT_VPI})")
    p.add_argument("--vci", type=int, default=DEFAULT_VCI,
                   help=f"VCI of the PVC, 32..65535 (0..31 are reserved; default {DEFAULT_VCI})")
    p.add_argument("--line-rate", default=str(OC3C_LINE_RATE), metavar="BPS",
                   help="cell pacing in bit/s; k/M/G suffixes; 0 = unpaced (default OC-3c, 149.76M)")
    p.add_argument("--dev", default="atm0", metavar="NAME", help="the adapter's name (default atm0)")
    p.add_argument("--pcap", metavar="FILE", help="record every SDU in and out to FILE (LINKTYPE_SUNATM)")
    p.add_argument("--stats", action="store_true", help="print the adapter's counters on exit (stderr)")


def add_atm_parser(sub: Any) -> None:
    atm = sub.add_parser("atm", help="ATM over the UDP PHY: PVC sockets (pvc), IP over ATM (ip), a switch "
                                     "(switch), SVC calls through it (svc-server, svc-call) and an "
                                     "ATMARP server (arp-server)",
                         description="Run one end of an emulated ATM link, or an ATM switch, in this "
                                     "process; cells travel in UDP datagrams between the processes.",
                         epilog=EPILOG_ATM, formatter_class=argparse.RawDescriptionHelpFormatter)
    asub = atm.add_subparsers(dest="atm_command", required=True, metavar="SUBCOMMAND")

    pvc = asub.add_parser("pvc", help="exchange datagrams (AAL5 SDUs) over a PVC socket, like nc -u",
                          description="Bring up an ATM adapter on a UDP PHY, open a PVC socket on "
                                      "VPI/VCI, send stdin lines as SDUs and print the SDUs received.",
                          epilog=EPILOG_PVC, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_phy_options(pvc)
    pvc.add_argument("-W", "--count", type=int, metavar="N", help="quit after receiving N SDUs")
    pvc.add_argument("-w", "--idle", type=float, metavar="S", help="quit after S seconds with nothing received or sent")
    pvc.add_argument("-q", "--quit-after-eof", type=float, default=-1.0, metavar="S",
                     help="quit S seconds after EOF on stdin (negative: never; the default)")
    pvc.set_defaults(atm_parser=pvc)

    ip = asub.add_parser("ip", help="a stack with Classical IP over one PVC or over SVCs: serve, ping or fetch",
                         description="Bring up an ATM adapter on a UDP PHY as the stack's only interface, "
                                     "carry IPv4 over one PVC (RFC 2684 LLC/SNAP, InATMARP) -- or over SVCs "
                                     "through a switch (--switch) --, and serve (--serve), ping (--ping) or "
                                     "fetch a URL (--fetch).",
                         epilog=EPILOG_IP, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_phy_options(ip, switch=True)
    ip.add_argument("--addr", required=True, metavar="A.B.C.D/P", help="the stack's address and prefix length")
    ip.add_argument("--peer-ip", metavar="A.B.C.D",
                    help="the far end's address on the PVC (a static entry; default: learn it by InATMARP)")
    ip.add_argument("--mtu", type=int, metavar="N", help="IP MTU (default 9180, RFC 2225)")
    ip.add_argument("--serve", action="append", default=[], metavar="NAME[:PORT]",
                    help="offer a service: echo, discard, chargen or http (as `tunstack up`); repeatable")
    mode = ip.add_mutually_exclusive_group()
    mode.add_argument("--ping", metavar="HOST", help="ping HOST over the PVC, then exit")
    mode.add_argument("--fetch", metavar="URL", help="HTTP GET URL (http://HOST[:PORT]/PATH) over TCP, then exit")
    ip.add_argument("-c", "--count", type=int, default=3, help="--ping: echo requests (default 3)")
    ip.add_argument("-s", "--size", type=int, default=56, help="--ping: payload bytes (default 56)")
    ip.add_argument("--timeout", type=float, default=3.0, help="--ping: seconds per reply (default 3); "
                                                               "--fetch: idle seconds (default 3, x10)")
    ip.add_argument("-o", "--output", metavar="FILE", help="--fetch: write the body to FILE, not stdout")
    ip.add_argument("--wait", type=float, default=10.0, metavar="S",
                    help="--ping/--fetch: seconds to wait for the far end to be known (default 10)")
    add_ip_svc_options(ip)
    ip.set_defaults(atm_parser=ip)
    add_switch_parser(asub)
    add_svc_parsers(asub)
    add_arp_server_parser(asub)





def check_atm_options(args: argparse.Namespace) -> None:
    p: argparse.ArgumentParser = args.atm_parser
    args.local_addr = hostport(p, "--local", args.local)
    args.remote_addr = hostport(p, "--remote", args.remote) if args.remote else None
    if getattr(args, "switch", None):
        args.remote_addr = hostport(p, "--switch", args.switch)     # IP over SVCs through a switch
    if args.remote_addr is None and not args.listen:
        p.error("the far end: --remote HOST:PORT, or -l to learn it from the first datagram"
                + (", or --switch HOST:PORT for SVCs" if args.atm_command == "ip" else ""))
    if args.remote_addr is not None and args.remote_addr[1] == 0:
        p.error("--remote: port 0 is not an address to send to")
    if not 0 <= args.vpi <= VPI_MAX:
        p.error(f"--vpi must be within 0..{VPI_MAX}")
    if not RESERVED_VCI_MAX < args.vci <= VCI_MAX:
        p.error(f"--vci must be within {RESERVED_VCI_MAX + 1}..{VCI_MAX} "
                f"(0..{RESERVED_VCI_MAX} are reserved: signalling 0/5, ILMI 0/16, ...)")
    args.line_rate_bps = line_rate(p, args.line_rate)
    if not 1 <= len(args.dev) <= 15:
        p.error("--dev: 1 to 15 characters")
    if args.atm_command == "pvc":
        if args.count is not None and args.count < 1:
            p.error("--count must be at least 1")
        return
    from .device import parse_interface_address
    try:
        parse_interface_address(args.addr, "10.79.0.1/24")
    except ValueError as exc:
        p.error(f"--addr {exc}")
    check_ip_svc_options(p, args)
    for opt in ("peer_ip", "ping"):
        value = getattr(args, opt)
        if value is not None:
            try:
                _pysocket.inet_aton(value)
                if value.count(".") != 3:
                    raise OSError
            except OSError:
                p.error(f"--{opt.replace('_', '-')}: not an IPv4 address: {value!r}")
    if args.mtu is not None and not 68 <= args.mtu <= 65527:
        p.error("--mtu must be within 68..65527")
    try:
        args.serve_specs = [parse_serve(s) for s in args.serve]
    except ValueError as exc:
        p.error(f"--serve: {exc}")
    if args.fetch is not None:
        u = urlsplit(args.fetch)
        if u.scheme != "http" or not u.hostname:
            p.error(f"--fetch: expected http://HOST[:PORT]/PATH, got {args.fetch!r}")
        try:
            args.fetch_port = u.port or 80
        except ValueError:
            p.error(f"--fetch: bad port in {args.fetch!r}")
        args.fetch_host = u.hostname
        args.fetch_path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    if args.count < 1:
        p.error("--count must be at least 1")
    if not 0 <= args.size <= 65507:
        p.error("--size must be within 0..65507")


# --- the PHY and the adapter ---------------------------------------------------------------
def make_phy(args: argparse.Namespace) -> UdpPhy:
    try:
        # with -l (no --remote) answer whoever sent last, as `nc -u -l` does
        return UdpPhy(args.local_addr, args.remote_addr, follow_sender=args.remote_addr is None)
    except OSError as exc:
        raise OSError(exc.errno, f"--local {args.local}: {exc.strerror or exc}") from None


def _addr(a: tuple[str, int] | None) -> str:
    return "{}:{}".format(*a) if a else "learning"


def phy_ready(args: argparse.Namespace, phy: UdpPhy) -> str:
    vc = "svc" if getattr(args, "switch", None) else f"pvc={args.vpi}/{args.vci}"
    return (f"ready: dev={args.dev} kind=atm-udp local={_addr(phy.local_address)} remote={_addr(phy.remote)} "
            f"{vc} line-rate={rate_text(args.line_rate_bps)}")


def adapter_stats(ndd: AtmNdd, phy: UdpPhy, vc: tuple[int, int]) -> dict[str, Any]:
    # ndd_genstats, atm_genstats (atm_macadr as colon-hex text, for JSON), the adapter's own
    adapter = {k: v.hex(":") if isinstance(v, bytes) else v for k, v in ndd.genstats().items()}
    out: dict[str, Any] = {"adapter": adapter, "phy": phy.stats.as_dict()}
    try:
        out["vc"] = ndd.vc_stats(*vc)
    except (OSError, KeyError):
        pass
    return out


async def _drain(ndd: AtmNdd) -> None:
    """Let the paced cell queue empty, so the last SDU really leaves before we close."""
    with trio.move_on_after(2):
        await ndd.wait_tx_idle()


# --- atm pvc -------------------------------------------------------------------------------
class _Pvc(DatagramSession):
    """An ATM PVC: with -l, lines wait until the PHY has learned the far end."""

    def __init__(self, args: argparse.Namespace, sock: Any, phy: UdpPhy, scope: trio.CancelScope) -> None:
        super().__init__(args, sock, scope)
        self.phy = phy

    async def send(self, line: bytes) -> None:
        await self.phy.learned.wait()     # -l: hold lines until the far end is known
        await self.sock.send(line)


async def run_pvc(args: argparse.Namespace) -> int:
    from protocols.atm.sockets.sockaddr import CONN_PVC
    from stack import Stack
    from stack.socket import AF_NDD, NDD_PROT_ATM, SOCK_CONN_DGRAM

    phy = make_phy(args)
    pcap: PcapRecorder | None = None
    try:
        ndd = AtmNdd(args.dev, phy, line_rate=args.line_rate_bps)
        async with Stack(f"atm-pvc:{args.dev}") as st:
            st.ns.ns_attach(ndd)
            if args.pcap:
                pcap = PcapRecorder.attach(ndd, args.pcap)
            with st.socket(AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM) as sock:
                await sock.connect((args.dev, CONN_PVC, args.vpi, args.vci))
                print(phy_ready(args, phy), file=sys.stderr, flush=True)
                with trio.CancelScope() as scope:
                    pvc = _Pvc(args, sock, phy, scope)
                    pvc.activity()
                    async with trio.open_nursery() as n:
                        n.start_soon(cancel_on_shutdown, scope)   # a signal ends the session, then we drain
                        n.start_soon(pvc.receiver)
                        n.start_soon(pvc.sender)
                await _drain(ndd)
                if args.stats:
                    print(json.dumps({**adapter_stats(ndd, phy, (args.vpi, args.vci)),
                                      "socket": sock.stats()}, indent=1), file=sys.stderr)
    finally:
        if pcap is not None:
            pcap.close()
        phy.shutdown()
    if pvc.error is not None:
        print(f"tunstack atm pvc: {pvc.error}", file=sys.stderr)
        return 1
    return 0


# --- atm ip --------------------------------------------------------------------------------
def _peer_of(st: Any, args: argparse.Namespace) -> int | None:
    from protocols.atm.clip.link import VALID
    pvc = st.atm_table(args.dev).pvcs.get((args.vpi, args.vci))
    return pvc.peer if pvc is not None and pvc.state == VALID else None


async def _announce_peer(st: Any, args: argparse.Namespace) -> None:
    from protocols.addr import int_to_ip
    t0 = trio.current_time()
    while (peer := _peer_of(st, args)) is None:
        await trio.sleep(0.02)
    how = "static" if args.peer_ip else f"learned by InATMARP in {trio.current_time() - t0:.2f} s"
    print(f"inatmarp: PVC {args.vpi}/{args.vci} leads to {int_to_ip(peer)} ({how})", file=sys.stderr, flush=True)


async def _wait_peer(st: Any, args: argparse.Namespace) -> None:
    with trio.move_on_after(args.wait):
        while _peer_of(st, args) is None:
            await trio.sleep(0.02)
        return
    raise OSError(errno.EHOSTUNREACH, f"no answer to InATMARP on PVC {args.vpi}/{args.vci} within {args.wait:g} s "
                                      f"(is the far end running, with --remote pointing here?)")


async def _ping(st: Any, args: argparse.Namespace) -> int:
    lost = 0
    for i in range(args.count):
        try:
            rtt = await st.ping(args.ping, size=args.size, timeout=args.timeout)
            print(f"{args.size + 8} bytes from {args.ping}: seq={i + 1} time={rtt * 1000:.3f} ms", flush=True)
        except OSError as exc:
            lost += 1
            print(f"seq={i + 1}: {exc.strerror or exc}", flush=True)
        if i + 1 < args.count:
            await trio.sleep(0.2)
    print(f"{args.count} sent, {args.count - lost} received, {100 * lost // args.count}% loss", flush=True)
    return 1 if lost else 0


async def _fetch(st: Any, args: argparse.Namespace) -> int:
    """GET the URL with Connection: close; the body goes to stdout or -o FILE."""
    head_sent = (f"GET {args.fetch_path} HTTP/1.1\r\nHost: {args.fetch_host}\r\n"
                 f"User-Agent: tunstack-atm\r\nConnection: close\r\n\r\n").encode()
    # a file we open we close below; stdout is not ours to close
    sink = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
    h, n, head, buf = hashlib.sha256(), 0, b"", b""
    t0 = time.perf_counter()
    try:
        with st.socket(_pysocket.AF_INET, _pysocket.SOCK_STREAM) as s:
            try:
                with trio.fail_after(args.timeout * 10):
                    await s.connect((args.fetch_host, args.fetch_port))
            except OSError as exc:
                raise OSError(exc.errno, f"connect to {args.fetch_host} port {args.fetch_port} (tcp) failed: "
                                         f"{exc.strerror or exc}") from None
            await s.sendall(head_sent)
            while True:
                with trio.move_on_after(args.timeout * 10) as idle:
                    chunk = await s.recv(1 << 20)
                if idle.cancelled_caught:
                    raise OSError(errno.ETIMEDOUT, f"nothing received for {args.timeout * 10:g} s")
                if not chunk:
                    break
                if not head:
                    buf += chunk
                    if b"\r\n\r\n" not in buf:
                        continue
                    head, _, chunk = buf.partition(b"\r\n\r\n")
                h.update(chunk)
                n += len(chunk)
                sink.write(chunk)
    except trio.TooSlowError:
        raise OSError(errno.ETIMEDOUT, f"connect to {args.fetch_host}:{args.fetch_port} timed out") from None
    finally:
        sink.flush()
        if args.output:
            sink.close()
    secs = time.perf_counter() - t0
    status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
    parts = status_line.split()
    ok = len(parts) >= 2 and parts[1] == "200"
    print(f"fetched {args.fetch}: {status_line or 'no response'}, {n} bytes in {secs:.2f} s = "
          f"{n * 8 / max(secs, 1e-9) / 1e6:.1f} Mbit/s, SHA-256 {h.hexdigest()}", file=sys.stderr, flush=True)
    return 0 if ok else 1


async def run_ip(args: argparse.Namespace) -> int:
    from stack import Stack
    from stack.stack import StackConfig

    phy = make_phy(args)
    pcap: PcapRecorder | None = None
    rc = 0
    try:
        ndd = AtmNdd(args.dev, phy, line_rate=args.line_rate_bps)
        async with Stack(f"atm-ip:{args.dev}", StackConfig(clip=clip_config(args))) as st:
            ifp = st.add_interface(ndd, args.addr, mtu=args.mtu)
            if args.pcap:
                pcap = PcapRecorder.attach(ndd, args.pcap)
            try:
                service_stats: dict[str, ServiceStats] = {}
                failed: OSError | None = None
                if args.switch:
                    start_svc(st, args)                  # IP over SVCs (tools/cli/atm_clip.py)
                    await wait_svc(st, args)
                else:
                    st.add_atm_pvc(args.dev, args.vpi, args.vci, peer_ip=args.peer_ip)
                client = args.ping is not None or args.fetch is not None
                async with trio.open_nursery() as n:
                    try:
                        labels = await start_services(n, st, args.serve_specs, service_stats)
                    except OSError as exc:   # caught here so it is not wrapped in an ExceptionGroup
                        failed = exc
                    else:
                        far = ready_fields(args) if args.switch else f"peer={args.peer_ip or 'inatmarp'}"
                        ready = (f"{phy_ready(args, phy)} addr={args.addr} {far} mtu={ifp.mtu}"
                                 + (f" serve={','.join(labels)}" if labels else ""))
                        print(ready, file=sys.stderr if args.fetch else sys.stdout, flush=True)
                        n.start_soon(announce_svc if args.switch else _announce_peer, st, args)
                        if client:
                            with trio.CancelScope() as scope:
                                n.start_soon(cancel_on_shutdown, scope)
                                try:
                                    if not args.switch:
                                        await _wait_peer(st, args)
                                    rc = await (_ping(st, args) if args.ping else _fetch(st, args))
                                except OSError as exc:
                                    failed = exc
                        else:
                            await until_shutdown()
                    n.cancel_scope.cancel()
            finally:
                if args.switch:                      # release our calls, even when cancelled (bounded)
                    with trio.CancelScope(shield=True):
                        await finish_svc(st, ndd, args)
            await _drain(ndd)
            if failed is not None:
                raise failed
            if args.stats:
                stats = {**st.stats(), "phy": phy.stats.as_dict(),
                         "services": {k: vars(v) for k, v in service_stats.items()}}
                print(json.dumps(stats, indent=1, default=str), file=sys.stderr)
    finally:
        if pcap is not None:
            pcap.close()
        phy.shutdown()
    return rc


# --- entry ---------------------------------------------------------------------------------
def run_atm(args: argparse.Namespace, debug: bool = False) -> int:
    """Every `tunstack atm` subcommand: check its options, run it (tools/cli/command.py: signals,
    exit status, one line per error)."""
    cmd = args.atm_command
    check = {"switch": check_switch_options, "svc-server": check_svc_options, "svc-call": check_svc_options,
             "arp-server": check_arp_server_options}.get(cmd, check_atm_options)
    runner = {"pvc": run_pvc, "ip": run_ip, "switch": serve_switch, "svc-server": run_server,
              "svc-call": run_call, "arp-server": run_arp_server}[cmd]
    check(args)
    return run_command(f"atm {cmd}", runner, args, debug=debug)
