"""`tunstack nc` over TCP: one connection, bytes both ways (as OpenBSD nc).

stdin is copied to the socket and the socket to stdout, as raw bytes.  As in OpenBSD
nc, the peer's FIN ends only our reading: a client goes on sending stdin and ends once
both stdin and the connection have reached EOF; a listener (-l) ends at the peer's FIN
(stdin not yet sent by then is dropped).
Also: -q S seconds after EOF on stdin, -w S seconds idle, a socket error (exit 1), or
stdout closing.  At EOF on stdin, -N shuts the write side down (SHUT_WR) so the peer
sees our FIN and can still answer; without -N nothing is sent at EOF.

Unlike a kernel socket, ours dies with the process: before exiting, nc closes its side
and waits (at most LINGER seconds) until the peer has acknowledged all nc sent.
"""
from __future__ import annotations

import argparse
import errno
import os
import socket as _pysocket
import sys
from typing import Any

import trio

CHUNK = 65536
LINGER = 5.0
_FIN_ACKED = ("FIN_WAIT_2", "TIME_WAIT", "CLOSED")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class TcpSession:
    def __init__(self, args: argparse.Namespace, sock: Any, scope: trio.CancelScope) -> None:
        self.args, self.sock, self.scope = args, sock, scope
        self.error: OSError | None = None
        self.stdin_eof = self.net_eof = self.shut_wr = False

    def activity(self) -> None:
        if self.args.idle is not None:
            self.scope.deadline = trio.current_time() + self.args.idle

    def fail(self, exc: OSError) -> None:
        self.error = self.error or exc
        self.scope.cancel()

    def maybe_done(self) -> None:
        if self.net_eof and (self.stdin_eof or self.args.listen):
            self.scope.cancel()

    async def net_to_stdout(self) -> None:
        while True:
            try:
                data = await self.sock.recv(CHUNK)
            except OSError as exc:
                self.fail(exc)
                return
            if not data:
                self.net_eof = True
                self.maybe_done()
                return
            self.activity()
            try:
                # in a thread: a slow stdout reader must not stall the stack's event loop
                await trio.to_thread.run_sync(_write_all, 1, data, abandon_on_cancel=True)
            except BrokenPipeError:
                self.scope.cancel()
                return

    async def stdin_to_net(self) -> None:
        while True:
            chunk = await trio.to_thread.run_sync(os.read, 0, CHUNK, abandon_on_cancel=True)
            if not chunk:
                break
            try:
                await self.sock.sendall(chunk)
            except OSError as exc:
                self.fail(exc)
                return
            self.activity()
        self.stdin_eof = True
        if self.args.shutdown:
            try:
                self.sock.shutdown(_pysocket.SHUT_WR)
                self.shut_wr = True
            except OSError as exc:
                self.fail(exc)
                return
        self.maybe_done()
        if self.args.quit_after_eof >= 0:
            await trio.sleep(self.args.quit_after_eof)
            self.scope.cancel()

    async def linger(self) -> None:
        """Send our FIN (if not yet) and wait until it, and so all our data, is acked."""
        info = getattr(self.sock, "tcp_info", None)
        if self.error is not None or info is None:
            return
        try:
            if not self.shut_wr:
                self.sock.shutdown(_pysocket.SHUT_WR)
            with trio.move_on_after(LINGER):
                while info()["state_name"] not in _FIN_ACKED:
                    await trio.sleep(0.01)
        except OSError:
            pass


def hostport(name: tuple[object, ...]) -> str:
    """A socket name as nc prints it: A.B.C.D:P, or [IPV6]:P."""
    host, port = name[0], name[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def socket_family(args: argparse.Namespace) -> int:
    """-6, or an IPv6 HOST, makes the socket AF_INET6 (check_nc_options sets args.family)."""
    return _pysocket.AF_INET6 if args.family == 6 else _pysocket.AF_INET


class Failed(Exception):
    """The session could not start; the message is what nc prints."""


async def _connect(args: argparse.Namespace, st: Any, ready: str) -> Any:
    sock = st.socket(socket_family(args), _pysocket.SOCK_STREAM)
    try:
        if args.port is not None:
            sock.bind(("", args.port))
        await sock.connect((args.host, args.dport))
    except OSError as exc:
        sock.close()
        raise Failed(f"connect to {args.host} port {args.dport} (tcp) failed: {exc.strerror or exc}") from None
    except BaseException:   # cancelled by -w: do not leak the half-open socket
        sock.close()
        raise
    print(f"{ready} connect=tcp/{hostport((args.host, args.dport))} local={hostport(sock.getsockname())}",
          file=sys.stderr, flush=True)
    return sock


async def _accept(args: argparse.Namespace, st: Any, ready: str) -> Any:
    try:
        with st.socket(socket_family(args), _pysocket.SOCK_STREAM) as listener:
            listener.bind((args.bind_host, args.port))
            listener.listen(1)
            print(f"{ready} listen=tcp/{hostport(listener.getsockname())}", file=sys.stderr, flush=True)
            sock, peer = await listener.accept()
    except OSError as exc:
        raise Failed(exc.strerror or str(exc)) from None
    print(f"accepted=tcp/{hostport(peer)}", file=sys.stderr, flush=True)
    return sock


async def run_tcp(args: argparse.Namespace, st: Any, ready: str) -> int:
    """Connect (or accept one connection) on stack `st`, then copy both ways."""
    scope = trio.CancelScope()
    if args.idle is not None:
        scope.deadline = trio.current_time() + args.idle   # -w also bounds connect and accept
    session: TcpSession | None = None
    sock = None
    try:
        with scope:
            sock = await (_accept(args, st, ready) if args.listen else _connect(args, st, ready))
            session = TcpSession(args, sock, scope)
            async with trio.open_nursery() as n:
                n.start_soon(session.net_to_stdout)
                n.start_soon(session.stdin_to_net)
        if session is not None:
            await session.linger()
    except Failed as exc:
        print(f"tunstack nc: {exc}", file=sys.stderr)
        return 1
    finally:
        if sock is not None:
            sock.close()
    if session is None:   # -w ran out first
        what = (f"no connection on port {args.port}" if args.listen
                else f"connect to {args.host} port {args.dport} (tcp) failed")
        print(f"tunstack nc: {what}: {os.strerror(errno.ETIMEDOUT)}", file=sys.stderr)
        return 1
    if session.error is not None:
        print(f"tunstack nc: {session.error.strerror or session.error}", file=sys.stderr)
        return 1
    return 0
