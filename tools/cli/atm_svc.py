"""`tunstack atm svc-server` / `svc-call`: SVC sockets through an ATM switch, one process each.

Each runs a Stack whose only adapter is an emulated ATM adapter on a UDP PHY aimed at a
switch port (`tunstack atm switch`); Q.2931 signalling runs on its VC 0/5 and the
switch routes calls by called party number.

  svc-server  binds an SVC socket to --addr (AESA + selector), listens, and echoes every
              SDU of every call it accepts, until SIGINT/SIGTERM/SIGHUP.
  svc-call    calls an AESA (SETUP ... CONNECT), sends -n datagrams one at a time, prints
              each round trip and a min/avg/max line, releases the call.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import time
from typing import Any

import trio

from drivers.atm.adapter import OC3C_LINE_RATE, AtmNdd
from drivers.atm.phy import UdpPhy
from drivers.pcap import PcapRecorder
from ndd.atm import AAL5_MAX_SDU, DEFAULT_MTU

from .atm_args import hostport, line_rate
from .command import until_shutdown

EXIT_CALL_FAILED = 2       # svc-call: the call was refused or cleared (cause printed)

EPILOG_SERVER = """examples (a switch with two ports first; see `tunstack atm switch --help`):
  tunstack atm switch --port a=127.0.0.1:7101,prefix=47000580ffe1000000f21a0001 \\
                      --port b=127.0.0.1:7102
  tunstack atm svc-server --switch 127.0.0.1:7101 --addr 47000580ffe1000000f21a00010020481a0001 \\
                          --selector 1 --backlog 4
  tunstack atm svc-call --switch 127.0.0.1:7102 47000580ffe1000000f21a00010020481a000101 -n 5

The server's adapter sends its cells to --switch from --local (default: any free port on
127.0.0.1).  It starts its UNI (SAAL on VC 0/5), binds an SVC socket to --addr -- 20
octets in hex, or 19 plus --selector (default 0); dots allowed -- and listens with
listen(--backlog) (--max-pend is its old name: AIX's SO_ATM_MAX_PEND is another thing).
Once the signalling link is up it prints one line beginning with `ready:` (stdout) with
the UDP address it bound, then accepts calls -- accept(), then SO_ATM_ACCEPT, AIX's two
steps -- and echoes each SDU back on its call, logging each call on stderr.  The switch must route
the address to the server's port (its prefix= option).  SIGINT/SIGTERM/SIGHUP: the calls
are released, exit 128 + the signal's number (130, 143, 129).  No signalling link within
--wait seconds: exit 1.
"""

EPILOG_CALL = """examples:
  tunstack atm svc-call --switch 127.0.0.1:7102 47000580ffe1000000f21a00010020481a000101 -n 5
  tunstack atm svc-call --switch 127.0.0.1:7102 47000580ffe1000000f21a00010020481a0001 \\
      --selector 1 -n 100 --size 9180 --interval 0 --max-sdu 9180 --peak-kbps 42400

Places one call (SETUP with the AAL parameters, traffic descriptor, bearer capability,
QoS and --calling number), prints `connected: ...` once CONNECT arrives, then sends -n
datagrams of --size octets one at a time, each answered by the echo server, with a
line per round trip and a closing summary:
  64 bytes from 4700..0101: seq=1 time=0.612 ms
  5 sent, 5 received, 0% loss
  rtt min/avg/max = 0.402/0.517/0.612 ms
Exit 0 when every datagram came back, 1 when some did not (or another error), 2 when
the call failed: refused or cleared by the network or the called user, with the cause
and the errno, e.g.
  tunstack atm svc-call: call failed: cause 88 (incompatible destination): ECONNREFUSED (Connection refused)
"""


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--local", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="UDP address the adapter's PHY binds (default 127.0.0.1:0: any free port)")
    p.add_argument("--switch", required=True, metavar="HOST:PORT", help="UDP address of the switch port")
    p.add_argument("--selector", type=int, metavar="N", help="the AESA's selector octet, 0..255 "
                                                              "(default: its 20th octet, or 0 for 19 octets)")
    p.add_argument("--dev", default="atm0", metavar="NAME", help="the adapter's name (default atm0)")
    p.add_argument("--line-rate", default=str(OC3C_LINE_RATE), metavar="BPS",
                   help="cell pacing in bit/s; k/M/G suffixes; 0 = unpaced (default OC-3c, 149.76M)")
    p.add_argument("--pcap", metavar="FILE", help="record every SDU in and out to FILE (LINKTYPE_SUNATM)")
    p.add_argument("--stats", action="store_true", help="print the adapter's and signalling counters on exit")


def add_svc_parsers(asub: Any) -> None:
    srv = asub.add_parser("svc-server", help="echo datagrams on SVCs: bind an ATM address, listen, accept",
                          description="Bring up an ATM adapter on a UDP PHY aimed at a switch port, bind an "
                                      "SVC socket to an ATM address and echo every SDU of every call.",
                          epilog=EPILOG_SERVER, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common(srv)
    srv.add_argument("--addr", required=True, metavar="AESA", help="the address to listen on (hex, 19 or 20 octets)")
    srv.add_argument("--backlog", "--max-pend", dest="backlog", type=int, default=8, metavar="N",
                     help="calls held before accept (listen's backlog; more are refused, cause 17; default 8)")
    srv.add_argument("--wait", type=float, default=10.0, metavar="S",
                     help="seconds to wait for the signalling link before giving up (default 10)")
    srv.set_defaults(atm_parser=srv)

    call = asub.add_parser("svc-call", help="call an ATM address and time datagrams echoed on the SVC",
                           description="Bring up an ATM adapter on a UDP PHY aimed at a switch port, call an "
                                       "AESA, send datagrams and time their echoes, release the call.",
                           epilog=EPILOG_CALL, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common(call)
    call.add_argument("aesa", metavar="AESA", help="the called address (hex, 19 or 20 octets)")
    call.add_argument("-n", "--count", type=int, default=5, metavar="N", help="datagrams to send (default 5)")
    call.add_argument("-s", "--size", type=int, default=64, metavar="B", help="octets per datagram (default 64)")
    call.add_argument("-i", "--interval", type=float, default=0.1, metavar="S",
                      help="seconds between datagrams (default 0.1)")
    call.add_argument("--timeout", type=float, default=5.0, metavar="S",
                      help="seconds to wait for the signalling link, for each echo, and for the call "
                           "beyond Q.2931's own timers (default 5)")
    call.add_argument("--calling", metavar="AESA", help="our calling party number (default: none)")
    call.add_argument("--max-sdu", type=int, metavar="N", help="AAL5 max SDU both ways (default: the adapter's 9180)")
    call.add_argument("--peak-kbps", type=int, default=0, metavar="KBITS",
                      help="peak rate both ways, Kbit/s as AIX's traffic_des_t (424 bits a cell; "
                           "default 0: best effort, line rate)")
    call.set_defaults(atm_parser=call)


# --- options ---------------------------------------------------------------------------------
def parse_aesa(p: argparse.ArgumentParser, what: str, text: str, selector: int | None) -> bytes:
    digits = text.lower().removeprefix("0x").replace(".", "").replace(":", "")
    try:
        raw = bytes.fromhex(digits)
    except ValueError:
        p.error(f"{what}: not hex: {text!r}")
    if len(raw) == 19:
        raw += bytes((selector or 0,))
    elif len(raw) == 20:
        raw = raw[:19] + bytes((raw[19] if selector is None else selector,))
    else:
        p.error(f"{what}: an AESA is 20 octets (40 hex digits), or 19 with --selector; got {len(raw)}")
    return raw


def check_switch_host_options(args: argparse.Namespace) -> argparse.ArgumentParser:
    """The options every host behind a switch port has: --local, --switch, --selector,
    --line-rate, --dev.  Returns the parser, for the caller's own checks."""
    p: argparse.ArgumentParser = args.atm_parser
    args.local_addr = hostport(p, "--local", args.local)
    args.switch_addr = hostport(p, "--switch", args.switch)
    if args.switch_addr[1] == 0:
        p.error("--switch: port 0 is not an address to send to")
    if args.selector is not None and not 0 <= args.selector <= 255:
        p.error("--selector must be within 0..255")
    args.line_rate_bps = line_rate(p, args.line_rate)
    if not 1 <= len(args.dev) <= 15:
        p.error("--dev: 1 to 15 characters")
    return p


def check_svc_options(args: argparse.Namespace) -> None:
    p = check_switch_host_options(args)
    if args.atm_command == "svc-server":
        args.aesa = parse_aesa(p, "--addr", args.addr, args.selector)
        if args.backlog < 1:
            p.error("--backlog must be at least 1")
        return
    args.called = parse_aesa(p, "AESA", args.aesa, args.selector)
    args.calling_aesa = parse_aesa(p, "--calling", args.calling, None) if args.calling else None
    if args.count < 1:
        p.error("--count must be at least 1")
    if args.max_sdu is not None and not 1 <= args.max_sdu <= AAL5_MAX_SDU:
        p.error(f"--max-sdu must be within 1..{AAL5_MAX_SDU}")
    if not 1 <= args.size <= (args.max_sdu or DEFAULT_MTU):
        p.error(f"--size must be within 1..{args.max_sdu or DEFAULT_MTU} (the max SDU)")
    if args.peak_kbps < 0 or args.interval < 0 or args.timeout <= 0:
        p.error("--peak-kbps and --interval must be >= 0, --timeout > 0")


# --- the adapter and its signalling ------------------------------------------------------------
class _Host:
    """The process's Stack, adapter, capture and SVC manager."""

    def __init__(self, args: argparse.Namespace, st: Any, phy: UdpPhy) -> None:
        from protocols.atm.sockets.usrreq import svc_manager
        self.args, self.st, self.phy = args, st, phy
        self.ndd = AtmNdd(args.dev, phy, line_rate=args.line_rate_bps)
        st.ns.ns_attach(self.ndd)
        self.pcap = PcapRecorder.attach(self.ndd, args.pcap) if args.pcap else None
        self.svc = svc_manager(st)
        self.sig = self.svc.start(args.dev)      # the UNI: VC 0/5, SAAL asked for at once

    async def wait_link(self, wait: float) -> None:
        """Until the SAAL link to the switch is up (a call placed before would be cleared
        with 27 if the first BGN is refused: svc.py)."""
        with trio.move_on_after(wait):
            while not self.sig.link_up:
                await trio.sleep(0.01)
            return
        raise OSError(errno.EHOSTDOWN, f"no signalling link to the switch at {self.args.switch} within {wait:g} s")

    def socket(self) -> Any:
        from stack.socket import AF_NDD, NDD_PROT_ATM, SOCK_CONN_DGRAM
        return self.st.socket(AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM)

    async def finish(self) -> None:
        with trio.move_on_after(2):              # the last SDUs and the RELEASEs leave first ...
            await self.ndd.wait_tx_idle()
            await trio.sleep(0.05)
        self.sig.release_link()                  # ... then the END, before VC 0/5 closes
        with trio.move_on_after(1):
            await self.ndd.wait_tx_idle()
        if self.args.stats:
            adapter = {k: v.hex(":") if isinstance(v, bytes) else v for k, v in self.ndd.genstats().items()}
            out = {"adapter": adapter, "phy": self.phy.stats.as_dict(),
                   "uni": self.sig.uni.stats.as_dict(), "svc": self.svc.stats.as_dict()}
            print(json.dumps(out, indent=1), file=sys.stderr)
        self.svc.stop(self.args.dev)
        if self.pcap is not None:
            self.pcap.close()


def _phy(args: argparse.Namespace) -> UdpPhy:
    try:
        return UdpPhy(args.local_addr, args.switch_addr)
    except OSError as exc:
        raise OSError(exc.errno, f"--local {args.local}: {exc.strerror or exc}") from None


def _errname(code: int) -> str:
    return errno.errorcode.get(code, str(code))


def _cause_line(sock: Any, exc: OSError | None = None) -> str:
    """"cause 88 (incompatible destination): ECONNREFUSED (Connection refused)" -- SO_ATM_CAUSE
    and the errno the socket reported."""
    from protocols.atm.sockets.sockaddr import SO_ATM_CAUSE
    from protocols.atm.sockets.usrreq import SOL_NDD_ATM
    from protocols.atm.uni.causes import cause_text
    c = sock.getsockopt(SOL_NDD_ATM, SO_ATM_CAUSE).cause
    parts = [f"cause {c} ({cause_text(c)})"] if c else []
    if exc is not None and exc.errno:
        parts.append(f"{_errname(exc.errno)} ({exc.strerror or os.strerror(exc.errno)})")
    return ": ".join(parts) or "no cause"


# --- svc-server ---------------------------------------------------------------------------------
async def _echo(sock: Any, peer: tuple[Any, ...]) -> None:
    from protocols.atm.sockets.sockaddr import SO_ATM_CAUSE
    from protocols.atm.sockets.usrreq import SOL_NDD_ATM
    from protocols.atm.uni.causes import cause_text
    who = peer[2].hex() or "an unknown number"
    echoed = 0
    with sock:
        vc = sock.vc
        print(f"call from {who} on VC {vc[0]}/{vc[1]}" if vc else f"call from {who}", file=sys.stderr, flush=True)
        end = "released"
        while True:
            try:
                data = await sock.recv(65535)
                if not data:
                    break
                await sock.send(data)
            except OSError as exc:
                end = f"ended: {_errname(exc.errno or 0)}"
                break
            echoed += 1
        c = sock.getsockopt(SOL_NDD_ATM, SO_ATM_CAUSE).cause
        print(f"call from {who}: {echoed} SDUs echoed, {end} (cause {c}, {cause_text(c)})",
              file=sys.stderr, flush=True)


async def run_server(args: argparse.Namespace) -> int:
    from protocols.atm.sockets.sockaddr import CONN_SVC, SO_ATM_ACCEPT
    from protocols.atm.sockets.usrreq import SOL_NDD_ATM
    from stack import Stack

    phy = _phy(args)
    try:
        async with Stack(f"atm-svc-server:{args.dev}") as st:
            host = _Host(args, st, phy)
            try:
                lst = host.socket()
                lst.bind((args.dev, CONN_SVC, args.aesa, b""))
                lst.listen(args.backlog)
                await host.wait_link(args.wait)          # a signal here cancels it (tools/cli/command.py)
                print("ready: dev={} kind=atm-udp local={}:{} switch={}:{} addr={} backlog={}".format(
                      args.dev, *phy.local_address, *args.switch_addr, args.aesa.hex(), args.backlog),
                      flush=True)
                async with trio.open_nursery() as n:
                    async def acceptor() -> None:
                        while True:
                            sock, peer = await lst.accept()
                            try:
                                sock.setsockopt(SOL_NDD_ATM, SO_ATM_ACCEPT, 1)    # CONNECT goes out
                            except OSError:
                                sock.close()                 # the caller gave up meanwhile
                                continue
                            n.start_soon(_echo, sock, peer)
                    n.start_soon(acceptor)
                    await until_shutdown()
                    n.cancel_scope.cancel()
                lst.close()
            finally:
                with trio.CancelScope(shield=True):      # release the calls and the link (bounded)
                    await host.finish()
    finally:
        phy.shutdown()
    return 0


# --- svc-call ---------------------------------------------------------------------------------------
async def _call(host: _Host, args: argparse.Namespace) -> int:
    from protocols.atm.sockets.sockaddr import (
        CONN_SVC,
        SO_ATM_AAL_PARM,
        SO_ATM_CALLING,
        SO_ATM_TRAFFIC_DES,
        AalParm,
        AtmAddr,
        TrafficDes,
    )
    from protocols.atm.sockets.usrreq import SOL_NDD_ATM
    called = args.called.hex()
    with host.socket() as sock:
        if args.max_sdu:
            sock.setsockopt(SOL_NDD_ATM, SO_ATM_AAL_PARM, AalParm(args.max_sdu, args.max_sdu))
        if args.peak_kbps:
            sock.setsockopt(SOL_NDD_ATM, SO_ATM_TRAFFIC_DES, TrafficDes(args.peak_kbps, args.peak_kbps))
        if args.calling_aesa:
            sock.setsockopt(SOL_NDD_ATM, SO_ATM_CALLING, AtmAddr(args.calling_aesa))
        await host.wait_link(args.timeout)
        t0 = time.perf_counter()
        try:
            # Q.2931's timers end a call that is never answered (T303 twice: 8 s; T310: 10 s);
            # --timeout on top of the longest of them bounds a stuck link too
            with trio.fail_after(args.timeout + 20):
                await sock.connect((args.dev, CONN_SVC, args.called, b""))
        except OSError as exc:
            print(f"tunstack atm svc-call: call failed: {_cause_line(sock, exc)}", file=sys.stderr, flush=True)
            return EXIT_CALL_FAILED
        except trio.TooSlowError:
            print(f"tunstack atm svc-call: call failed: no answer within {args.timeout + 20:g} s: ETIMEDOUT",
                  file=sys.stderr, flush=True)
            return EXIT_CALL_FAILED
        vc = sock.vc
        print(f"connected: called={called} vc={vc[0]}/{vc[1]} in {(time.perf_counter() - t0) * 1e3:.1f} ms",
              flush=True)
        rtts: list[float] = []
        for seq in range(1, args.count + 1):
            payload = seq.to_bytes(4, "big") + bytes((seq + i) & 0xFF for i in range(args.size - 4)) \
                if args.size >= 4 else bytes([seq & 0xFF]) * args.size
            t = time.perf_counter()
            try:
                await sock.send(payload)
                with trio.move_on_after(args.timeout) as scope:
                    while (got := await sock.recv(65535)) != payload and got:
                        pass                          # a late echo of an earlier datagram
                if scope.cancelled_caught:
                    print(f"seq={seq}: no echo within {args.timeout:g} s", flush=True)
                elif not got:
                    print(f"tunstack atm svc-call: call released by the far end: {_cause_line(sock)}",
                          file=sys.stderr, flush=True)
                    return EXIT_CALL_FAILED
                else:
                    rtt = (time.perf_counter() - t) * 1e3
                    rtts.append(rtt)
                    print(f"{args.size} bytes from {called}: seq={seq} time={rtt:.3f} ms", flush=True)
            except OSError as exc:
                print(f"tunstack atm svc-call: call lost: {_cause_line(sock, exc)}", file=sys.stderr, flush=True)
                return EXIT_CALL_FAILED
            if seq < args.count and args.interval:
                await trio.sleep(args.interval)
        lost = args.count - len(rtts)
        print(f"{args.count} sent, {len(rtts)} received, {100 * lost // args.count}% loss", flush=True)
        if rtts:
            print(f"rtt min/avg/max = {min(rtts):.3f}/{sum(rtts) / len(rtts):.3f}/{max(rtts):.3f} ms", flush=True)
    return 1 if lost else 0


async def run_call(args: argparse.Namespace) -> int:
    from stack import Stack

    phy = _phy(args)
    try:
        async with Stack(f"atm-svc-call:{args.dev}") as st:
            host = _Host(args, st, phy)
            try:
                rc = await _call(host, args)           # a signal cancels it (tools/cli/command.py)
            finally:
                with trio.CancelScope(shield=True):      # release the call and the link (bounded)
                    await host.finish()
    finally:
        phy.shutdown()
    return rc
