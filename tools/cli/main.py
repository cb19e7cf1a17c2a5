"""`tunstack` command line: up, ping, nc, atm, gateway, demo, bench.

Every command runs through tools/cli/command.py: SIGINT/SIGTERM/SIGHUP clean up and exit
128+signal, and every error is one line, `tunstack: error: ...` (exit 2 for usage, 1 at
run time; --debug or TUNSTACK_DEBUG=1 for the traceback).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from tools.services.builtin import ServiceStats, parse_serve, start_services

from .atm import add_atm_parser
from .command import Parser, debug_enabled, error_line, run_command, run_sync_command, until_shutdown
from .device import (
    add_device_options,
    attach,
    check_device_options,
    open_device,
    report_address_changes,
    settle,
    stack_config,
    text_out,
)
from .nc import EPILOG_NC, add_nc_options, check_nc_options, run_nc

EPILOG_UP = """examples:
  tunstack up --tun ts0 --addr 10.77.0.2/24 --netns demo --peer-addr 10.77.0.1/24
      then: ip netns exec demo ping 10.77.0.2
  tunstack up --tap tp0 --addr 10.77.1.2/24 --netns demo --peer-addr 10.77.1.1/24 --pcap tp0.pcap
  tunstack up --tap tp0 --addr 10.77.1.2/24 --addr fd00:77:1::2/64 --netns demo \\
      --peer-addr 10.77.1.1/24 --peer-addr fd00:77:1::1/64 --gw fd00:77:1::1
      then: ip netns exec demo ping -6 fd00:77:1::2
  tunstack up --tun ts0 --addr 10.77.0.2/24 --netns demo --peer-addr 10.77.0.1/24 \\
      --serve echo --serve discard:9000
      then: echo hi | ip netns exec demo socat -t1 - UDP:10.77.0.2:7
            echo hi | ip netns exec demo nc -N 10.77.0.2 7
  tunstack up --tun ts0 --addr 10.77.0.2/24 --netns demo --peer-addr 10.77.0.1/24 --serve http
      then: ip netns exec demo curl -o /dev/null http://10.77.0.2/bytes/100000000

Prints one line beginning with `ready:` once the stack answers, every --serve service
is bound and, when the options name IPv6, none of its IPv6 addresses is tentative any
more (DAD, on TAP; at most 10 s); on stderr with --pcap -; here folded:
  ready: dev=tp0 kind=tap addr=10.77.1.2/24 addr6=fd00:77:1::2/64(preferred),
      fe80::.../64(preferred) peer=10.77.1.1/24,fd00:77:1::1/64 netns=demo mac=...
      offload=on serve=udp/echo:7,tcp/echo:7,...
addr6 lists every IPv6 address with its state (preferred, tentative, deprecated,
duplicate; `,slaac` for one formed from a Router Advertisement).  An --addr found
duplicate by DAD is an error (exit 1).  Later, each IPv6 address that appears, changes
state or goes prints a line, e.g.
  addr6: dev=tp0 fd00:99::a5f2:9d64:6eaa:20d1/64(preferred,slaac)
Runs until SIGINT, SIGTERM or SIGHUP, then deletes the device and the namespace (if it
created it) and exits 128 + the signal's number (130, 143, 129).

services (--serve NAME[:PORT], repeatable):
  echo     RFC 862, UDP and TCP port 7: everything goes back to its sender
  discard  RFC 863, UDP and TCP port 9: everything is read and dropped
  chargen  RFC 864, TCP port 19: 72-character lines until the peer closes
  http     TCP port 80: HTTP/1.1 (keep-alive); GET or HEAD / (a page) and
           /bytes/N (N bytes, byte i = i % 256); 404 otherwise.  Bounds: a
           request (head + body) within 10 s, 30 s idle between requests,
           head 16 KiB (431), body 1 MiB (413), 256 connections (more are
           closed at once); counted under --stats
"""


def version() -> str:
    """The installed distribution's version, else pyproject.toml's (a source checkout)."""
    from importlib import metadata
    try:
        return metadata.version("tunstack")
    except metadata.PackageNotFoundError:
        pass
    import tomllib
    try:
        with open(Path(__file__).resolve().parents[2] / "pyproject.toml", "rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="tunstack", description="A userspace protocol stack over Linux TUN/TAP.")
    p.add_argument("--version", action="version", version=f"tunstack {version()}")
    p.add_argument("--debug", action="store_true",
                   help="show Python tracebacks instead of one-line errors (also TUNSTACK_DEBUG=1)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run a stack on a new TUN/TAP device until interrupted",
                        description="Create a TUN or TAP device, run a stack on it (IPv4 and IPv6), answer ping.",
                        epilog=EPILOG_UP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_options(up)
    up.set_defaults(cmd_parser=up)
    up.add_argument("--stats", action="store_true", help="print the stack's counters on exit (stderr)")
    up.add_argument("--serve", action="append", default=[], metavar="NAME[:PORT]",
                    help="offer a service: echo (UDP+TCP 7), discard (UDP+TCP 9), chargen (TCP 19) "
                         "or http (TCP 80); repeatable")

    nc = sub.add_parser("nc", help="a small netcat (TCP or UDP) over its own stack on a new TUN/TAP device",
                        description="Create the device like `up`, then connect over TCP (or listen with -l) "
                                    "and copy stdin to the connection and the connection to stdout; "
                                    "with -u, UDP datagrams instead.",
                        epilog=EPILOG_NC, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_options(nc)
    add_nc_options(nc)
    nc.set_defaults(cmd_parser=nc)

    ping = sub.add_parser("ping", help="bring a stack up on a device and ping from it",
                          description="Create the device like `up` (over IPv6, wait for its addresses to pass "
                                      "DAD), then send ICMP or ICMPv6 echo requests from the stack.")
    add_device_options(ping)
    ping.set_defaults(cmd_parser=ping)
    ping.add_argument("dest", help="IPv4 or IPv6 address to ping (a link-local one with its device: "
                                   "fe80::1%%DEV), or localhost, ip6-localhost, ip6-loopback (the stack's "
                                   "own loopback: it has no resolver)")
    family = ping.add_mutually_exclusive_group()
    family.add_argument("-4", dest="family", action="store_const", const=4,
                        help="IPv4 only (a name: its IPv4 address; an IPv6 address is an error)")
    family.add_argument("-6", dest="family", action="store_const", const=6,
                        help="IPv6 only (a name: its IPv6 address; an IPv4 address is an error)")
    ping.add_argument("-c", "--count", type=int, default=3, help="number of echo requests (default 3)")
    ping.add_argument("-s", "--size", type=int, default=56,
                      help=f"payload bytes (default 56; at most {MAX_PING4} over IPv4, {MAX_PING6} over IPv6: "
                           f"what fits one datagram, sent in fragments)")
    ping.add_argument("-W", "--timeout", type=float, default=3.0, help="seconds to wait per reply (default 3)")

    add_atm_parser(sub)

    demo = sub.add_parser("demo", help="the guided tour: Linux pings the stack over TUN and TAP, trades "
                                       "UDP datagrams, fetches pages with curl and times TCP both ways, "
                                       "with captures",
                          description="Set up a namespace with a TUN and a TAP device and a separate stack "
                                      "on each; let Linux ping them, ping back, exchange UDP, curl the TUN "
                                      "stack's http service, send 200 MB each way over TCP, capture with "
                                      "tcpdump, check with tshark, summarise. "
                                      "Without root it runs two stacks over an in-process link instead. "
                                      "Both end with ATM: two emulated adapters joined by cells over UDP "
                                      "(a PVC carrying datagrams, then CLIP: InATMARP, ping, TCP), then "
                                      "SVC calls through an emulated ATM switch (UNI 3.1 signalling: a "
                                      "call with datagrams, two refused calls with their causes), with "
                                      "SUNATM captures, signalling on VC 0/5 included.")
    demo.add_argument("--out", default="demo-out", help="directory for the pcaps and the summary (default demo-out/)")
    demo.add_argument("--memory", action="store_true", help="force the in-process (no root) variant")
    sub.add_parser("gateway", help="user-mode networking for a network namespace or a container, as "
                                   "slirp4netns and pasta (tunstack gateway --help)", add_help=False)
    sub.add_parser("bench", help="throughput, request/response, accepts/s and memory against pmd-pytcp, "
                                 "slirp4netns and a veth pair (tunstack bench --help)", add_help=False)
    return p


async def run_up(args: argparse.Namespace) -> int:
    from stack import Stack
    out = text_out(args)
    with open_device(args) as dev:
        async with Stack(f"up:{dev.ndd.ndd_name}", config=stack_config(args)) as st:
            attach(st, dev, args)
            await settle(dev, args)
            service_stats: dict[str, ServiceStats] = {}
            failed: OSError | None = None
            async with trio.open_nursery() as services:
                try:
                    labels = await start_services(services, st, args.serve_specs, service_stats)
                except OSError as exc:   # caught here so it is not wrapped in an ExceptionGroup
                    failed = exc
                else:
                    ready = dev.ready_line(args) + (f" serve={','.join(labels)}" if labels else "")
                    print(ready, file=out, flush=True)
                    if st.config.ipv6:
                        services.start_soon(report_address_changes, dev, out)
                    await until_shutdown()           # tools/cli/command.py prints which signal
                services.cancel_scope.cancel()
            if failed is not None:
                raise failed
            if args.stats:
                import json
                stats = {**st.stats(), "services": {k: vars(v) for k, v in service_stats.items()}}
                print(json.dumps(stats, indent=1), file=sys.stderr)
            if dev.pcap:
                dev.pcap.close()
    return 0


async def run_ping(args: argparse.Namespace) -> int:
    from stack import Stack
    lost = 0
    out = text_out(args)
    shown = args.dest if args.dest == args.dest_addr else f"{args.dest} ({args.dest_addr})"
    with open_device(args) as dev:
        async with Stack(f"ping:{dev.ndd.ndd_name}", config=stack_config(args)) as st:
            attach(st, dev, args)
            # a tentative address is no source (RFC 4862 §5.4): wait out DAD to ping over IPv6
            await settle(dev, args, wait=args.dest_family == 6 or None)
            for i in range(args.count):
                try:
                    rtt = await st.ping(args.dest_addr, size=args.size, timeout=args.timeout)
                    print(f"{args.size + 8} bytes from {shown}: seq={i + 1} time={rtt * 1000:.3f} ms",
                          file=out, flush=True)
                except OSError as exc:
                    lost += 1
                    print(f"seq={i + 1}: {exc.strerror or exc}", file=out, flush=True)
                if i + 1 < args.count:
                    await trio.sleep(0.2)
            if dev.pcap:
                dev.pcap.close()
    print(f"{args.count} sent, {args.count - lost} received, {100 * lost // max(args.count, 1)}% loss", file=out)
    return 1 if lost else 0


# the names `tunstack ping` knows, all on the stack's loopback: Stack.hosts (localhost ->
# 127.0.0.1) for IPv4, and for IPv6 the names Debian's /etc/hosts gives ::1 (Stack.hosts holds
# IPv4 only); there is no resolver
PING_NAMES: dict[str, dict[int, str]] = {"localhost": {4: "127.0.0.1", 6: "::1"},
                                         "ip6-localhost": {6: "::1"}, "ip6-loopback": {6: "::1"}}
MAX_PING4 = 65535 - 20 - 8    # an IPv4 datagram's 65535 octets less its header and ICMP's
MAX_PING6 = 65535 - 8         # IPv6's payload length (the header not counted) less ICMPv6's
IPV6_OFF = "--no-ipv6, or an --mtu below 1280"
NO_FAMILY = "Address family for hostname not supported"     # what Linux's ping says (EAI_ADDRFAMILY)


def resolve_ping_dest(dest: str, family: int | None, ipv6: bool, device: str) -> tuple[str, int]:
    """DEST as Stack.ping takes it ("10.0.0.1", "fd00::1", "fe80::1%tp0") and its family, for
    -4/-6 (`family`); ValueError with ping's words otherwise."""
    from protocols.addr import ip_to_int
    from protocols.ipv6.addr import int_to_ip6, ip6_to_int
    from protocols.ipv6.route import needs_scope_id
    if ":" in dest or "%" in dest:
        text, pct, zone = dest.partition("%")
        try:
            value = ip6_to_int(text)
        except ValueError:
            raise ValueError(f"{dest!r} is not an IPv6 address") from None
        if family == 4:
            raise ValueError(f"{dest}: {NO_FAMILY} (-4 with an IPv6 address)")
        if not ipv6:
            raise ValueError(f"{dest}: an IPv6 address, but IPv6 is off ({IPV6_OFF})")
        if pct and zone != device:
            raise ValueError(f"{dest}: no interface {zone!r} on the stack; its device is {device}")
        if needs_scope_id(value) and not pct:
            raise ValueError(f"{dest}: a link-local destination needs its interface, as with Linux's "
                             f"ping: {int_to_ip6(value)}%{device}")
        return (f"{int_to_ip6(value)}%{zone}" if pct else int_to_ip6(value)), 6
    try:
        ip_to_int(dest)
    except ValueError:
        pass
    else:
        if family == 6:
            raise ValueError(f"{dest}: {NO_FAMILY} (-6 with an IPv4 address)")
        return dest, 4
    known = PING_NAMES.get(dest)
    if known is None:
        raise ValueError(f"{dest!r} is not an IPv4 address, an IPv6 address or a name the stack knows "
                         f"({', '.join(PING_NAMES)}; the stack has no name resolver)")
    order = [family] if family else ([6, 4] if ipv6 else [4])   # RFC 6724 §10.3: ::1 before 127.0.0.1
    for fam in order:
        if fam in known:
            if fam == 6 and not ipv6:
                raise ValueError(f"{dest}: -6, but IPv6 is off ({IPV6_OFF})")
            return known[fam], fam
    raise ValueError(f"{dest}: {NO_FAMILY}")


def check_ping_options(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    device = args.tun if args.tun is not None else args.tap
    try:
        args.dest_addr, args.dest_family = resolve_ping_dest(args.dest, args.family,
                                                             stack_config(args).ipv6, device)
    except ValueError as exc:
        p.error(str(exc))
    if args.count < 1:
        p.error("--count must be at least 1")
    if args.dest_family == 4 and not 0 <= args.size <= MAX_PING4:
        p.error(f"--size must be within 0..{MAX_PING4}")
    if args.dest_family == 6 and not 0 <= args.size <= MAX_PING6:
        p.error(f"--size must be within 0..{MAX_PING6} over IPv6 (65535 octets of payload less the ICMPv6 "
                f"header)")
    if not args.timeout > 0:
        p.error("--timeout must be > 0")


def main(argv: list[str] | None = None) -> int:
    if argv is None and Path(sys.argv[0]).name == "slirp4netns":   # a symlink: rootlesskit, Podman
        from tools.gateway.cli import slirp4netns_main
        return slirp4netns_main(sys.argv[1:], version())
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = debug_enabled()
    while argv[:1] == ["--debug"]:                # `tunstack --debug bench` too
        debug, argv = True, argv[1:]
    if argv[:1] == ["gateway"]:
        from tools.gateway.cli import main as gateway_main  # its own options: tunstack gateway --help
        return gateway_main(argv[1:], version(), debug)
    if argv[:1] == ["bench"]:
        from tools.bench.main import main as bench_main  # its own options: tunstack bench --help
        return run_sync_command("bench", lambda: bench_main(argv[1:]))
    p = build_parser()
    args = p.parse_args(argv)
    debug = debug or args.debug
    try:
        return _dispatch(p, args, debug)
    except KeyboardInterrupt:                     # Ctrl-C while checking options: nothing to undo
        print("tunstack: SIGINT: shutting down", file=sys.stderr)
        return 130
    except (OSError, ValueError) as exc:          # raised outside any runner (e.g. an option check)
        if debug:
            raise
        print(error_line(str(exc.strerror if isinstance(exc, OSError) and exc.strerror and not exc.filename
                                 else exc)), file=sys.stderr)
        return 1


def _dispatch(p: argparse.ArgumentParser, args: argparse.Namespace, debug: bool) -> int:
    if args.command == "atm":
        from .atm import run_atm
        return run_atm(args, debug=debug)
    if args.command in ("up", "ping", "nc"):
        p = args.cmd_parser                       # its errors say `see tunstack up --help`
        check_device_options(p, args)
        if args.command == "up":
            try:
                args.serve_specs = [parse_serve(s) for s in args.serve]
            except ValueError as exc:
                p.error(f"--serve: {exc}")
        if args.command == "nc":
            check_nc_options(p, args)
        if args.command == "ping":
            check_ping_options(p, args)
        runner = {"up": run_up, "ping": run_ping, "nc": run_nc}[args.command]
        return run_command(args.command, runner, args, debug=debug)
    from tools.demo.tour import run_demo
    return run_command("demo", run_demo, args, debug=debug)


if __name__ == "__main__":
    sys.exit(main())
