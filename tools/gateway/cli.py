"""`tunstack gateway`'s two command lines, both turned into one GatewayOptions:

  * its own (argparse, `tunstack gateway --help`):
        tunstack gateway [OPTIONS] PID [IFNAME]          the namespaces of process PID
        tunstack gateway [OPTIONS] --netns NS [IFNAME]   a name (ip netns), a path or a PID
        tunstack gateway [OPTIONS] -- COMMAND [ARG]...   a new user + network namespace for COMMAND
  * slirp4netns 1.2's, when invoked as `slirp4netns` (a symlink to tunstack) or with
    `tunstack gateway --as slirp4netns ...`: args.parse_slirp4netns_argv reads it as
    slirp4netns does, so rootlesskit and Podman can run tunstack in its place.

Errors are one line (`tunstack: error: ...`, exit 2; in slirp4netns mode slirp4netns's own
words and its exit status 1).
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace

from tools.cli.command import Parser, run_command, until_shutdown

from . import outbound
from .args import (
    ArgsError,
    Slirp4netnsArgs,
    check_port_specs,
    parse_mac,
    parse_port_spec,
    parse_slirp4netns_argv,
    slirp4netns_usage,
    slirp4netns_version,
)
from .dns import DnsConfig
from .flows import FlowConfig
from .main import DEFAULT_BUSY_POLL, GatewayOptions, run_gateway
from .nsenter import NamespaceError, NamespaceTarget
from .outbound import Outbound
from .policy import DEFAULT_CIDR, DEFAULT_CIDR6, DEFAULT_MTU, AddressModel
from .relay import RelayBudget

MIN_MTU, MAX_MTU = 68, 65521        # slirp4netns: 68 .. 65521 (its TAP's limit)

MAX_BUSY_POLL_US = 1000      # a longer poll would only burn a core: a wake-up costs tens of µs

USAGE = """tunstack gateway [OPTIONS] PID [IFNAME]
       tunstack gateway [OPTIONS] --netns NS [IFNAME]
       tunstack gateway [OPTIONS] -- COMMAND [ARG]..."""

DESCRIPTION = """\
User-mode networking for a network namespace, the job of slirp4netns and pasta: a TAP (or
TUN) made in the target namespace, and on our end a tunstack Stack that answers for the
gateway and for every address the guest talks to, relaying TCP, UDP and ping through
ordinary host sockets.  No root needed where slirp4netns works (user namespaces, a usable
/dev/net/tun).  Address model (slirp4netns's): 10.0.2.0/24, gateway 10.0.2.2, DNS 10.0.2.3,
guest 10.0.2.100; IPv6 fd00::/64, gateway fd00::2, DNS fd00::3."""

EPILOG = """\
examples:
  ip netns add guest; tunstack gateway --configure --netns guest
      then: ip netns exec guest curl http://example.org/
  unshare -rn sleep infinity & tunstack gateway -c $! tap0          (rootless, slirp4netns-style)
  tunstack gateway -- curl -sS http://example.org/                  (a new namespace for one command)
  ln -s "$(command -v tunstack)" ~/bin/slirp4netns                  (rootlesskit/Podman run it as slirp4netns)

Prints one `ready:` line on stdout once it serves, e.g.
  ready: dev=tap0 kind=tap guest=10.0.2.100/24 gateway=10.0.2.2 dns=10.0.2.3 mtu=65520
      prefix6=fd00::/64 gateway6=fd00::2 host-loopback=off offload=on
Stops on SIGINT, SIGTERM or SIGHUP (exit 128 + the signal's number), when --exit-fd becomes
readable, when the PID exits or the namespace file is removed (exit 0), or, with -- COMMAND,
when COMMAND exits (its status).  SIGUSR1 prints the flow table on stderr.

TCP: a guest SYN is answered only once the host's connect(2) succeeded; refused -> RST,
unreachable -> ICMP unreachable, a timeout -> silence.  Connections to the gateway address
go to the host's 127.0.0.1 only with --allow-host-loopback; 169.254.169.254 only with
--allow-metadata.
"""


def build_parser(prog: str = "tunstack gateway") -> argparse.ArgumentParser:
    p = Parser(prog=prog, usage=USAGE, description=DESCRIPTION, epilog=EPILOG,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("target", nargs="?", metavar="PID",
                   help="serve the network namespace of process PID (and join its user namespace to "
                        "create the device, as slirp4netns does)")
    p.add_argument("ifname", nargs="?", default=None, metavar="IFNAME",
                   help="the device's name in the target (default tap0, tun0 with --tun)")
    p.add_argument("--netns", metavar="NS",
                   help="the target network namespace: a name under /run/netns, a path (/proc/PID/ns/net, a "
                        "bind mount) or a PID")
    p.add_argument("--userns-path", metavar="PATH",
                   help="join this user namespace before the network namespace (as slirp4netns)")
    p.add_argument("--as", dest="as_name", choices=["slirp4netns"],
                   help="read the rest of the command line as that program does (compatibility mode)")
    dev = p.add_argument_group("the guest's device")
    dev.add_argument("--tun", action="store_true", help="an L3 TUN device instead of a TAP (no ARP, no DHCP)")
    dev.add_argument("-m", "--mtu", type=int, default=DEFAULT_MTU,
                     help=f"the device's MTU (default {DEFAULT_MTU}; {MIN_MTU}..{MAX_MTU}; IPv6 needs 1280)")
    dev.add_argument("--no-offload", action="store_true",
                     help="no IFF_VNET_HDR offloads (checksums and segmentation in Python)")
    dev.add_argument("-c", "--configure", action="store_true",
                     help="set the guest side's address (.100), default route (via .2) and MTU, and bring it up")
    dev.add_argument("--macaddress", metavar="MAC", help="with --configure: the guest side's MAC (TAP)")
    net = p.add_argument_group("addresses and policy")
    net.add_argument("--cidr", default=DEFAULT_CIDR, help=f"the guest's IPv4 network (default {DEFAULT_CIDR})")
    net.add_argument("--cidr6", default=DEFAULT_CIDR6, help=f"the guest's IPv6 /64 (default {DEFAULT_CIDR6})")
    net.add_argument("--no-ipv6", action="store_true", help="IPv4 only")
    net.add_argument("--allow-host-loopback", action="store_true",
                     help="connections to the gateway address reach the host's 127.0.0.1 / ::1 (off by default)")
    net.add_argument("--allow-metadata", action="store_true",
                     help="relay flows to 169.254.169.254 (a cloud's metadata service; off by default)")
    net.add_argument("--outbound-addr", metavar="ADDR|IFNAME",
                     help="the host IPv4 address the guest's flows leave from (or an interface's first)")
    net.add_argument("--outbound-addr6", metavar="ADDR|IFNAME",
                     help="the same for IPv6 (an interface's first global address)")
    net.add_argument("--disable-dns", action="store_true", help="no DNS forwarder")
    net.add_argument("--dns-forward", metavar="ADDR",
                     help="the IPv4 address the guest sends DNS queries to (default: the network's .3)")
    fwd = p.add_argument_group("inbound port forwards (pasta's grammar; the guest sees the client's own address "
                               "where the address model allows it, else the gateway's)")
    fwd.add_argument("-t", "--tcp-ports", action="append", default=[], metavar="SPEC",
                     help="forward host TCP ports to the guest: [ADDR/]PORT[-PORT][:PORT[-PORT]][,...], "
                          "~PORT excludes, `none`; e.g. -t 8080:80, -t 127.0.0.1/2222:22; repeatable")
    fwd.add_argument("-u", "--udp-ports", action="append", default=[], metavar="SPEC",
                     help="the same for UDP")
    fwd.add_argument("-a", "--api-socket", metavar="PATH",
                     help="serve slirp4netns's JSON API (add_hostfwd, list_hostfwd, remove_hostfwd) on this "
                          "Unix socket")
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-flows", type=int, default=FlowConfig.max_flows, metavar="N",
                     help=f"flows (TCP connections, UDP associations, pings) at once (default "
                          f"{FlowConfig.max_flows}); new ones beyond are refused and counted")
    lim.add_argument("--max-buffer", type=int, default=RelayBudget.total >> 20, metavar="MIB",
                     help=f"MiB the TCP relays may hold at once (default {RelayBudget.total >> 20}; a bulk flow "
                          f"reads up to 256 KiB a time while the total allows); new flows beyond are refused")
    lim.add_argument("--tcp-relay", choices=("lean", "splice"), default="lean",
                     help="how the guest's TCP is relayed: lean (default; the host socket keeps the data, the "
                          "guest side is a minimal TCP) or splice (a full tunstack connection per flow)")
    lim.add_argument("--udp-timeout", type=float, default=FlowConfig.udp_one_way, metavar="SECONDS",
                     help=f"seconds a UDP flow with no reply lives idle (default {FlowConfig.udp_one_way:g})")
    lim.add_argument("--udp-stream-timeout", type=float, default=FlowConfig.udp_two_way, metavar="SECONDS",
                     help=f"seconds a UDP flow that saw replies lives idle (default {FlowConfig.udp_two_way:g})")
    run = p.add_argument_group("running")
    run.add_argument("-r", "--ready-fd", type=int, metavar="FD", help='write "1" to FD and close it once serving')
    run.add_argument("-e", "--exit-fd", type=int, metavar="FD", help="stop when FD becomes readable or is closed")
    run.add_argument("--pcap", metavar="FILE", help="capture the guest's device to FILE")
    run.add_argument("--busy-poll", type=float, default=DEFAULT_BUSY_POLL * 1e6, metavar="USEC",
                     help=f"microseconds to keep polling after traffic before sleeping (default "
                          f"{DEFAULT_BUSY_POLL * 1e6:g}; adapts down for sparse traffic; 0: never): it saves "
                          f"a wake-up per event, which bounds request/response rates in a VM")
    run.add_argument("--stats", action="store_true", help="print the counters as JSON on stderr at exit")
    run.add_argument("-d", "--debug", action="store_true",
                     help="log every flow's fate (relayed with its octets, refused and why) on stderr, and "
                          "tracebacks instead of one-line errors")
    return p


def options_from_args(p: argparse.ArgumentParser, args: argparse.Namespace, command: list[str]) -> GatewayOptions:
    """Check the parsed options (p.error exits 2 with one line) and build GatewayOptions."""
    if command and (args.target or args.netns):
        p.error("give either a target (PID or --netns) or -- COMMAND, not both")
    if not command and not args.target and not args.netns:
        p.error("no target: give PID, --netns NS or -- COMMAND")
    if args.target and args.netns:
        if args.ifname is not None:
            p.error("PID and --netns name the same thing: give one")
        args.ifname, args.target = args.target, None      # --netns NS IFNAME
    if not MIN_MTU <= args.mtu <= MAX_MTU:
        p.error(f"--mtu must be within {MIN_MTU}..{MAX_MTU}")
    if args.max_flows < 1:
        p.error("--max-flows must be at least 1")
    if args.max_buffer < 1:
        p.error("--max-buffer must be at least 1 (MiB)")
    if not 0 <= args.busy_poll <= MAX_BUSY_POLL_US:
        p.error(f"--busy-poll must be within 0..{MAX_BUSY_POLL_US} microseconds")
    if not (args.udp_timeout > 0 and args.udp_stream_timeout > 0):
        p.error("--udp-timeout and --udp-stream-timeout must be > 0")
    for fd_opt in ("ready_fd", "exit_fd"):
        fd = getattr(args, fd_opt)
        if fd is not None and (fd < 0 or not _fd_open(fd)):
            p.error(f"--{fd_opt.replace('_', '-')} {fd}: not an open file descriptor")
    try:
        model = AddressModel.from_cidr(args.cidr, args.cidr6)
    except ValueError as exc:
        p.error(str(exc))
    mac = None
    if args.macaddress is not None:
        if not args.configure and not command:
            p.error("--macaddress needs --configure")
        try:
            mac = parse_mac(args.macaddress)
        except ArgsError as exc:
            p.error(str(exc))
    dns = DnsConfig(enabled=not args.disable_dns, address=str(model.dns))
    if args.dns_forward is not None:
        try:
            dns = replace(dns, address=str(ipaddress.IPv4Address(args.dns_forward)))
        except ValueError:
            p.error(f"--dns-forward {args.dns_forward}: not an IPv4 address")
    try:
        tcp_forwards = [parse_port_spec("tcp", text) for text in args.tcp_ports]
        udp_forwards = [parse_port_spec("udp", text) for text in args.udp_ports]
        check_port_specs([*tcp_forwards, *udp_forwards])
    except ArgsError as exc:
        p.error(str(exc))
    try:
        outbound = resolve_outbound(args.outbound_addr, args.outbound_addr6)
    except ValueError as exc:
        p.error(str(exc))
    target = watch_pid = watch_path = None
    spec = args.netns or args.target
    if spec:
        try:
            target = NamespaceTarget.from_spec(spec, args.userns_path)
        except NamespaceError as exc:
            p.error(str(exc))
        if spec.isdigit():
            watch_pid = int(spec)
        else:
            watch_path = target.net
    ifname = args.ifname or ("tun0" if args.tun else "tap0")
    if not 0 < len(ifname) < 16 or "/" in ifname or any(c.isspace() for c in ifname):
        p.error(f"bad IFNAME {ifname!r}: 1-15 characters, no '/' or space")
    return GatewayOptions(
        target=target, command=command, watch_pid=watch_pid, watch_path=watch_path, ifname=ifname,
        tun=args.tun, mtu=args.mtu, offload=not args.no_offload, model=model, configure=args.configure,
        mac=mac, ipv6=not args.no_ipv6, allow_host_loopback=args.allow_host_loopback,
        allow_metadata=args.allow_metadata, dns=dns,
        flows=FlowConfig(max_flows=args.max_flows, udp_one_way=args.udp_timeout,
                         udp_two_way=args.udp_stream_timeout),
        tcp_forwards=tcp_forwards, udp_forwards=udp_forwards, api_socket=args.api_socket,
        outbound=outbound, max_buffer=args.max_buffer << 20, tcp_relay=args.tcp_relay, ready_fd=args.ready_fd,
        busy_poll=args.busy_poll / 1e6,
        exit_fd=args.exit_fd, pcap=args.pcap, stats=args.stats, debug=args.debug)


def resolve_outbound(v4: str | None, v6: str | None) -> Outbound:
    """--outbound-addr/--outbound-addr6 resolved and checked (ValueError, one line)."""
    return Outbound(outbound.resolve(v4, socket.AF_INET) if v4 else None,
                    outbound.resolve(v6, socket.AF_INET6) if v6 else None)


def options_from_slirp4netns(a: Slirp4netnsArgs) -> GatewayOptions:
    """slirp4netns's command line as GatewayOptions: its defaults (host loopback ON unless
    --disable-host-loopback; IPv6 only with --enable-ipv6), its address model."""
    model = a.model
    if a.netns_type == "pid":
        assert a.target_pid is not None
        t = NamespaceTarget.for_pid(a.target_pid)
        target = NamespaceTarget(t.net, a.userns_path or t.user, user_required=a.userns_path is not None)
        watch_pid, watch_path = a.target_pid, None
    else:
        assert a.netns_path is not None
        target = NamespaceTarget.for_path(a.netns_path, a.userns_path)
        watch_pid, watch_path = None, a.netns_path
    return GatewayOptions(
        target=target, watch_pid=watch_pid, watch_path=watch_path, ifname=a.tapname, mtu=a.mtu, model=model,
        configure=a.configure, mac=a.macaddress, ipv6=a.enable_ipv6,
        allow_host_loopback=not a.disable_host_loopback,
        dns=DnsConfig(enabled=not a.disable_dns, address=str(model.dns)),
        outbound=resolve_outbound(a.outbound_addr, a.outbound_addr6), api_socket=a.api_socket,
        ready_fd=a.ready_fd, exit_fd=a.exit_fd, prog="slirp4netns")


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def split_command(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Our options and operands before the first `--`, COMMAND after it."""
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def slirp4netns_main(argv: Sequence[str], version: str, prog: str = "slirp4netns") -> int:
    """Compatibility mode: slirp4netns's options, help, version, errors and exit statuses."""
    try:
        a = parse_slirp4netns_argv(argv)
    except ArgsError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        print(slirp4netns_usage(prog), file=sys.stderr, end="")
        return 1
    if a.action == "help":
        print(slirp4netns_usage(prog), end="")
        return 0
    if a.action == "version":
        print(slirp4netns_version(version), end="")
        return 0
    for line in a.warnings:
        print(line, file=sys.stderr)
    try:
        options = options_from_slirp4netns(a)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    return run_command("gateway", _runner, options, debug=options.debug)


async def _runner(options: GatewayOptions) -> int:
    return await run_gateway(options, until_shutdown=until_shutdown)


def main(argv: Sequence[str], version: str, debug: bool = False) -> int:
    """`tunstack gateway ARGS` (argv without `gateway`)."""
    if argv[:2] == ["--as", "slirp4netns"] or (argv[:1] and argv[0] == "--as=slirp4netns"):
        return slirp4netns_main(argv[2:] if argv[0] == "--as" else argv[1:], version)
    ours, command = split_command(argv)
    p = build_parser()
    args = p.parse_args(ours)
    if args.as_name:
        p.error("--as must come first: tunstack gateway --as slirp4netns [slirp4netns options]")
    options = options_from_args(p, args, command)
    return run_command("gateway", _runner, options, debug=debug or options.debug)


__all__ = ["build_parser", "main", "options_from_args", "options_from_slirp4netns", "slirp4netns_main"]
