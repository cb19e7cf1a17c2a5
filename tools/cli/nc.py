"""`tunstack nc`: a small netcat over its own stack.  TCP by default (tools/cli/nc_tcp.py);
this module has the options and UDP (-u).

UDP client (`nc -u HOST PORT`): connect a UDP socket, send each stdin line as one datagram,
write every datagram received to stdout.  Listener (`nc -u -l -p PORT`, or `-l PORT`):
bind, write every datagram to stdout, send stdin lines to the last sender (lines read
before anyone has sent are held until someone does).

Ending it (as OpenBSD nc):
  -W N  --count N   quit after receiving N datagrams (UDP)
  -w S  --idle S    quit after S seconds with nothing received or sent
  -q S              quit S seconds after EOF on stdin (negative: keep receiving; default)
Exit status: 0, or 1 on a socket error (e.g. ECONNREFUSED from an ICMP port
unreachable, reported on the call after it arrived, as Linux does).
"""
from __future__ import annotations

import argparse
import os
import socket as _pysocket
import sys
from typing import TYPE_CHECKING, Any

import trio

from .device import attach, open_device, settle, stack_config
from .nc_tcp import hostport, run_tcp, socket_family

if TYPE_CHECKING:
    from stack.socket import Socket

EPILOG_NC = """examples:
  ip netns exec demo socat TCP-LISTEN:5000,reuseaddr EXEC:cat &    # a Linux TCP echo
  echo hello | tunstack nc -N --tun tn0 --addr 10.77.5.2/24 --netns demo \\
      --peer-addr 10.77.5.1/24 10.77.5.1 5000
  tunstack nc -l -p 5000 --tun tn0 --addr 10.77.5.2/24 --netns demo --peer-addr 10.77.5.1/24
      then: echo hi | ip netns exec demo nc -N 10.77.5.2 5000
  ip netns exec demo socat UDP-RECVFROM:5000,fork EXEC:cat &     # a Linux UDP echo
  echo hello | tunstack nc -u -w 2 --tun tn0 --addr 10.77.5.2/24 --netns demo \\
      --peer-addr 10.77.5.1/24 10.77.5.1 5000
  tunstack nc -u -l -p 5000 -W 1 --tun tn0 --addr 10.77.5.2/24 --netns demo --peer-addr 10.77.5.1/24
      then: echo hi | ip netns exec demo nc -u -w1 10.77.5.2 5000

TCP (the default): stdin is sent as a byte stream and what arrives is written to
stdout; -l accepts one connection.  A client ends once stdin and the connection have
both reached EOF, a listener at the peer's FIN; also on an error, or by -w/-q.  At EOF
on stdin, -N sends our FIN (shutdown SHUT_WR) and keeps reading.
Errors print like nc ("connect to H port P (tcp) failed: Connection refused"), exit 1.

UDP (-u): each line of stdin is sent as one datagram (newline included); datagrams
received are written to stdout as they are.  -W quits as soon as the Nth datagram is
printed (stdin lines not yet sent are dropped).

The device's `ready:` line goes to stderr (with -l, then `accepted=tcp/IP:PORT`).
"""


def add_nc_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-u", "--udp", action="store_true", help="UDP instead of TCP")
    p.add_argument("-l", "--listen", action="store_true",
                   help="listen on PORT instead of connecting (TCP: for one connection)")
    p.add_argument("-N", "--shutdown", action="store_true",
                   help="TCP: shut down the write side (send FIN) at EOF on stdin")
    p.add_argument("-p", "--port", type=int, metavar="PORT", help="local port (the listening port with -l)")
    p.add_argument("-W", "--count", type=int, metavar="N", help="UDP: quit after receiving N datagrams")
    p.add_argument("-w", "--idle", type=float, metavar="S",
                   help="quit after S seconds with nothing received or sent (TCP: also a connect timeout)")
    p.add_argument("-q", "--quit-after-eof", type=float, default=-1.0, metavar="S",
                   help="quit S seconds after EOF on stdin (negative: never; the default)")
    family = p.add_mutually_exclusive_group()
    family.add_argument("-4", dest="family", action="store_const", const=4,
                        help="IPv4 only (a listener without HOST binds 0.0.0.0: the default)")
    family.add_argument("-6", dest="family", action="store_const", const=6,
                        help="IPv6 (a listener without HOST binds :: and, dual stack, takes IPv4 too)")
    p.add_argument("target", nargs="*", metavar="HOST PORT",
                   help="where to send (client); with -l an optional [HOST] PORT to bind; HOST is an IPv4 "
                        "or IPv6 literal (fe80::1%%DEV for a link-local one)")


def _address(p: argparse.ArgumentParser, args: argparse.Namespace, what: str, value: str) -> int:
    """An IPv4 or IPv6 literal (the stack has no name resolver): its family, as -4/-6 allow."""
    from protocols.addr import ip_to_int
    from protocols.ipv6.addr import ip6_to_int
    try:
        if ":" in value:
            ip6_to_int(value.partition("%")[0])
            family = 6
        else:
            ip_to_int(value)
            family = 4
    except ValueError:
        p.error(f"{what}: {value!r} is not an IPv4 or IPv6 address (the stack has no name resolver)")
    if args.family is not None and args.family != family:
        p.error(f"{what}: {value}: Address family for hostname not supported (-{args.family})")
    return family


def check_nc_options(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.pcap == "-":
        p.error("--pcap -: stdout carries nc's data; give a file")
    if args.listen:
        if len(args.target) > 2:
            p.error("with -l: at most [HOST] PORT")
        if len(args.target) == 2:
            args.bind_host, args.target_port = args.target[0], args.target[1]
        else:
            args.bind_host = ""
            args.target_port = args.target[0] if args.target else None
        if args.target_port is None and args.port is None:
            p.error("-l needs a port (-p PORT or PORT)")
        port = args.target_port if args.target_port is not None else args.port
        args.port = _port(p, port)
        args.host = None
        if args.bind_host:
            args.family = _address(p, args, "HOST", args.bind_host)
    else:
        if len(args.target) != 2:
            p.error("HOST PORT required (or -l to listen)")
        args.host, args.dport = args.target[0], _port(p, args.target[1])
        args.family = _address(p, args, "HOST", args.host)
        if args.port is not None:
            args.port = _port(p, args.port, allow_zero=True)
    if args.count is not None and args.count < 1:
        p.error("--count must be at least 1")
    for opt, value in (("--idle", args.idle), ("-q", args.quit_after_eof)):
        if value is not None and value != value:         # NaN
            p.error(f"{opt}: not a number")
    if args.idle is not None and args.idle <= 0:
        p.error("--idle must be > 0")
    if args.count is not None and not args.udp:
        p.error("-W counts datagrams: it needs -u")
    if args.shutdown and args.udp:
        p.error("-N (shutdown) is for TCP: not with -u")


def _port(p: argparse.ArgumentParser, value: str | int, allow_zero: bool = False) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        p.error(f"bad port {value!r}")
    if not (0 if allow_zero else 1) <= port <= 65535:
        p.error(f"port {port} out of range")
    return port


async def read_stdin_lines(send: trio.MemorySendChannel) -> None:
    """Lines of fd 0 into `send`; closes it at EOF.  Reads in a worker thread (works for
    ttys, pipes and regular files alike) that is abandoned on cancellation; os.read
    holds no lock, so an abandoned read cannot wedge interpreter shutdown."""
    pending = b""
    async with send:
        while True:
            chunk = await trio.to_thread.run_sync(os.read, 0, 65536, abandon_on_cancel=True)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                await send.send(line + b"\n")
        if pending:
            await send.send(pending)


class DatagramSession:
    """A datagram netcat session: each stdin line goes out as one datagram, each datagram
    received goes to stdout.  It ends on a socket error (kept in `error`), after -c COUNT
    datagrams, -q SECS after stdin's EOF, or --idle SECS without traffic (`scope`'s deadline).
    Subclasses say how a datagram is received and sent."""

    def __init__(self, args: argparse.Namespace, sock: Any, scope: trio.CancelScope) -> None:
        self.args, self.sock, self.scope = args, sock, scope
        self.received = 0
        self.error: OSError | None = None

    async def receive(self) -> bytes:
        data: bytes = await self.sock.recv(65535)
        return data

    async def send(self, line: bytes) -> None:
        await self.sock.send(line)

    def activity(self) -> None:
        if self.args.idle is not None:
            self.scope.deadline = trio.current_time() + self.args.idle

    def fail(self, exc: OSError) -> None:
        self.error = exc
        self.scope.cancel()

    async def receiver(self) -> None:
        out = sys.stdout.buffer
        while True:
            try:
                data = await self.receive()
            except OSError as exc:
                self.fail(exc)
                return
            self.received += 1
            self.activity()
            out.write(data)
            out.flush()
            if self.args.count is not None and self.received >= self.args.count:
                self.scope.cancel()
                return

    async def sender(self) -> None:
        send, recv = trio.open_memory_channel[bytes](16)
        async with trio.open_nursery() as n:
            n.start_soon(read_stdin_lines, send)
            async for line in recv:
                try:
                    await self.send(line)
                except OSError as exc:
                    self.fail(exc)
                    return
                self.activity()
        if self.args.quit_after_eof >= 0:
            await trio.sleep(self.args.quit_after_eof)
            self.scope.cancel()


class _Nc(DatagramSession):
    """UDP: with -l the first sender becomes the peer our lines go to."""

    def __init__(self, args: argparse.Namespace, sock: Socket, scope: trio.CancelScope) -> None:
        super().__init__(args, sock, scope)
        self.peer: tuple[str, int] | None = None
        self.have_peer = trio.Event()

    async def receive(self) -> bytes:
        data, addr = await self.sock.recvfrom(65535)
        if self.args.listen and addr is not None:
            self.peer = addr
            self.have_peer.set()
        return data

    async def send(self, line: bytes) -> None:
        if self.args.listen:
            await self.have_peer.wait()
            await self.sock.sendto(line, self.peer)
        else:
            await self.sock.send(line)


async def run_nc(args: argparse.Namespace) -> int:
    from stack import Stack
    with open_device(args) as dev:
        async with Stack(f"nc:{dev.ndd.ndd_name}", config=stack_config(args)) as st:
            attach(st, dev, args)
            await settle(dev, args)
            if not args.udp:
                rc = await run_tcp(args, st, dev.ready_line(args))
                if dev.pcap:
                    dev.pcap.close()
                return rc
            sock = st.socket(socket_family(args), _pysocket.SOCK_DGRAM)
            with sock:
                if args.listen:
                    sock.bind((args.bind_host, args.port))
                    what = f"listen=udp/{hostport(sock.getsockname())}"
                else:
                    if args.port is not None:
                        sock.bind(("", args.port))
                    await sock.connect((args.host, args.dport))
                    what = f"connect=udp/{hostport((args.host, args.dport))} local={hostport(sock.getsockname())}"
                print(f"{dev.ready_line(args)} {what}", file=sys.stderr, flush=True)
                with trio.CancelScope() as scope:
                    nc = _Nc(args, sock, scope)
                    async with trio.open_nursery() as n:
                        nc.activity()
                        n.start_soon(nc.receiver)
                        n.start_soon(nc.sender)
            if dev.pcap:
                dev.pcap.close()
    if nc.error is not None:
        print(f"tunstack nc: {nc.error}", file=sys.stderr)
        return 1
    return 0
