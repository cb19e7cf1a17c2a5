"""The Linux side of `make bench`: small stdlib-only TCP peers run inside a namespace.

Run as `ip netns exec NS python -m tools.bench.peer ROLE ...` (or as a plain script by
the pmd-pytcp scratch venv).  Each role prints exactly one JSON line with its figures on
stdout; servers first print `{"ready": true}` once listening, so the caller can start the
other side without guessing.  Every loop is bounded in time: nothing here runs forever.
"""
from __future__ import annotations

import argparse
import errno
import json
import resource
import select
import selectors
import socket
import struct
import sys
import time

CHUNK = 256 * 1024


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def family_of(addr: str) -> socket.AddressFamily:
    """IPv6 for an address with a colon ("fd00::1", "::"), else IPv4."""
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def connect_retry(host: str, port: int, deadline: float, *, nodelay: bool = False) -> socket.socket:
    """Connect, retrying refused/unreachable attempts until `deadline` (a stack may bind late)."""
    while True:
        s = socket.socket(family_of(host), socket.SOCK_STREAM)
        if nodelay:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(max(0.5, min(5.0, deadline - time.monotonic())))
        try:
            s.connect((host, port))
            s.settimeout(None)
            return s
        except OSError as exc:
            s.close()
            if time.monotonic() >= deadline or exc.errno not in (
                    errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT, None):
                raise
            time.sleep(0.2)


def listener(a: argparse.Namespace, backlog: int = 128) -> socket.socket:
    ls = socket.socket(family_of(a.bind), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.bind, a.port))
    ls.listen(backlog)
    emit(ready=True, port=ls.getsockname()[1])  # port 0 asks for a free one: say which
    return ls


def role_source(a: argparse.Namespace) -> None:
    """Bulk sender: send for `seconds`, half-close, wait for the peer's EOF; time it all."""
    s = connect_retry(a.host, a.port, time.monotonic() + a.connect_timeout)
    buf = b"\x5a" * CHUNK
    t0 = time.monotonic()
    end = t0 + a.seconds
    sent = 0
    s.settimeout(a.seconds + 30)
    while time.monotonic() < end:
        sent += s.send(buf)
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):  # the receiver closes once it has read everything
        pass
    dt = time.monotonic() - t0
    s.close()
    emit(bytes=sent, seconds=dt, mbit_s=sent * 8 / dt / 1e6)


def role_sink(a: argparse.Namespace) -> None:
    """Bulk receiver: accept one connection, read to EOF; time from accept to EOF."""
    ls = listener(a)
    ls.settimeout(a.timeout)
    c, _ = ls.accept()
    c.settimeout(a.timeout)
    t0 = time.monotonic()
    got = 0
    while data := c.recv(CHUNK):
        got += len(data)
    dt = time.monotonic() - t0
    c.close()
    ls.close()
    emit(bytes=got, seconds=dt, mbit_s=got * 8 / dt / 1e6 if dt else 0.0)


def role_rr_client(a: argparse.Namespace) -> None:
    """1-byte request/response ping-pong for `seconds`."""
    s = connect_retry(a.host, a.port, time.monotonic() + a.connect_timeout, nodelay=True)
    # a kernel timeout (SO_RCVTIMEO), not settimeout(): CPython would poll() before every
    # recv and send, and that extra syscall per call would be measured as the peer's cost
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 5, 0))
    n = 0
    t0 = time.monotonic()
    end = t0 + a.seconds
    while time.monotonic() < end:
        for _ in range(100):  # check the clock every 100 round trips, not every one
            s.send(b"x")
            if not s.recv(1):
                raise ConnectionError("peer closed during request/response")
        n += 100
    dt = time.monotonic() - t0
    s.close()
    emit(count=n, seconds=dt, per_s=n / dt)


def role_rr_server(a: argparse.Namespace) -> None:
    """1-byte echo for one connection (the Linux peer of rr-client over the veth)."""
    ls = listener(a)
    ls.settimeout(a.timeout)
    c, _ = ls.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.settimeout(a.timeout)
    while data := c.recv(64):
        c.sendall(data)
    c.close()
    ls.close()
    emit(done=True)


def role_cps_client(a: argparse.Namespace) -> None:
    """Sequential connect → wait for the server's close → close, for `seconds`."""
    n = 0
    t0 = time.monotonic()
    end = t0 + a.seconds
    while time.monotonic() < end:
        s = connect_retry(a.host, a.port, time.monotonic() + 5)
        s.settimeout(5)
        s.recv(1)  # EOF: the server accepted and closed, so the accept really happened
        s.close()
        n += 1
    dt = time.monotonic() - t0
    emit(count=n, seconds=dt, per_s=n / dt)


def role_cps_server(a: argparse.Namespace) -> None:
    """Accept and close until `timeout` passes without a connection (Linux side of cps)."""
    ls = listener(a, backlog=1024)
    ls.settimeout(a.timeout)
    n = 0
    try:
        while True:
            c, _ = ls.accept()
            c.close()
            n += 1
    except TimeoutError:
        pass
    ls.close()
    emit(accepted=n)


def raise_nofile(count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(count + 64, soft), hard), hard))


def jain(xs: list[int]) -> float:
    """Jain's fairness index: 1 when all equal, 1/n when one takes everything."""
    sq = sum(x * x for x in xs)
    return sum(xs) ** 2 / (len(xs) * sq) if sq else 0.0


def role_source_multi(a: argparse.Namespace) -> None:
    """`conns` bulk senders at once (one process, epoll): all connected first, then each sends
    whenever it can for `seconds`, half-closes, and waits for the receiver's EOF."""
    raise_nofile(a.conns)
    deadline = time.monotonic() + a.connect_timeout
    socks = [connect_retry(a.host, a.port, deadline) for _ in range(a.conns)]
    buf = memoryview(b"\x5a" * 65536)
    sel = selectors.DefaultSelector()
    sent = [0] * len(socks)
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_WRITE, i)
    t0 = time.monotonic()
    end = t0 + a.seconds
    while time.monotonic() < end:
        for key, _ in sel.select(0.1):
            try:
                sent[key.data] += key.fileobj.send(buf)  # type: ignore[union-attr]
            except BlockingIOError:
                pass
    open_ = len(socks)
    for i, s in enumerate(socks):
        sel.modify(s, selectors.EVENT_READ, i)
        s.shutdown(socket.SHUT_WR)
    give_up = time.monotonic() + a.seconds + 30
    while open_ and time.monotonic() < give_up:
        for key, _ in sel.select(0.5):
            try:
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(key.fileobj)
                open_ -= 1
    dt = time.monotonic() - t0
    for s in socks:
        s.close()
    emit(bytes=sum(sent), seconds=dt, mbit_s=sum(sent) * 8 / dt / 1e6, jain=jain(sent), conns=len(socks),
         unfinished=open_, min_bytes=min(sent), max_bytes=max(sent))


def role_rr_multi(a: argparse.Namespace) -> None:
    """`conns` clients, each 1-byte request/response in turn, all at once (one process, epoll)."""
    raise_nofile(a.conns)
    deadline = time.monotonic() + a.connect_timeout
    socks = [connect_retry(a.host, a.port, deadline, nodelay=True) for _ in range(a.conns)]
    sel = selectors.DefaultSelector()
    done = [0] * len(socks)
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
        s.send(b"x")
    t0 = time.monotonic()
    end = t0 + a.seconds
    while time.monotonic() < end:
        for key, _ in sel.select(0.1):
            sock = key.fileobj
            try:
                got = sock.recv(64)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            if not got:
                raise ConnectionError("peer closed during request/response")
            done[key.data] += len(got)
            sock.send(b"x" * len(got))  # type: ignore[union-attr]
    dt = time.monotonic() - t0
    for s in socks:
        s.close()
    emit(count=sum(done), seconds=dt, per_s=sum(done) / dt, jain=jain(done), conns=len(socks))


def role_hold(a: argparse.Namespace) -> None:
    """Open `count` idle connections, report, keep them until stdin closes or `timeout`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.count + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(want, soft), hard), hard))
    socks: list[socket.socket] = []
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    err = ""
    try:
        for _ in range(a.count):
            socks.append(connect_retry(a.host, a.port, deadline))
    except OSError as exc:
        err = str(exc)
    emit(opened=len(socks), seconds=time.monotonic() - t0, error=err)
    select.select([sys.stdin], [], [], max(0.0, deadline - time.monotonic()))
    for s in socks:
        s.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tools.bench.peer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="role", required=True)
    for name, fn, client in (("source", role_source, True), ("sink", role_sink, False),
                             ("rr-client", role_rr_client, True), ("rr-server", role_rr_server, False),
                             ("cps-client", role_cps_client, True), ("cps-server", role_cps_server, False),
                             ("hold", role_hold, True), ("source-multi", role_source_multi, True),
                             ("rr-multi", role_rr_multi, True)):
        sp = sub.add_parser(name)
        sp.set_defaults(fn=fn)
        if client:
            sp.add_argument("host")
        sp.add_argument("port", type=int)
        if not client:
            sp.add_argument("--bind", default="0.0.0.0",
                            help="address to listen on (127.0.0.1 on the host; :: for IPv6)")
        sp.add_argument("--seconds", type=float, default=3.0)
        sp.add_argument("--timeout", type=float, default=60.0, help="give up after this long idle")
        sp.add_argument("--connect-timeout", type=float, default=30.0)
        sp.add_argument("--count", type=int, default=10000)
        sp.add_argument("--conns", type=int, default=10, help="concurrent connections (the -multi roles)")
    a = p.parse_args(argv)
    try:
        a.fn(a)
    except (OSError, ConnectionError) as exc:
        emit(error=f"{type(exc).__name__}: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
