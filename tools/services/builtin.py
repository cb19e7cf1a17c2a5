"""Small network services a stack can offer (`tunstack up --serve NAME[:PORT]`).

Each service is an async function `service(stack, port, *, task_status)` meant for
`nursery.start`: it binds its socket, reports `started(label)` (e.g. "udp/echo:7"), then
serves until cancelled.  A failed bind raises OSError before `started`, so the caller
never announces a service that is not listening.  Errors while serving are logged and
the service carries on: a bad peer must not take the stack down.

UDP: echo (RFC 862) and discard (RFC 863).  TCP: echo, discard, chargen (RFC 864) and
http (tools/services/http.py); every accepted connection is served in its own task, and
whatever ends it (a reset, a bug) ends only that connection.

Both families: with no address a service binds one AF_INET6 socket to `::` with IPV6_V6ONLY
0 (the Linux default), which takes IPv4 too, as ::ffff:a.b.c.d -- one socket, one port, as
a dual-stack nginx does; an IPv4 or IPv6 address binds that family only.  With IPv6 off on
the interfaces (StackConfig.ipv6, Linux's disable_ipv6) the `::` socket still takes IPv4.
"""
from __future__ import annotations

import errno
import logging
import socket as _pysocket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from . import http
from .http import SockAddr

log = logging.getLogger("tunstack.services")

MAX_DATAGRAM = 65535


@dataclass
class ServiceStats:
    received: int = 0       # datagrams (UDP)
    sent: int = 0
    errors: int = 0         # failed datagrams, accepts, or connections ended by an error
    connections: int = 0    # accepted (TCP)
    bytes_in: int = 0
    bytes_out: int = 0


def service_socket(stack: Any, kind: int, addr: str, port: int) -> Any:
    """A bound socket of type `kind` for a service at `addr` ("" = every address of both
    families: `::`, dual stack), port `port`.  The caller closes it."""
    family = _pysocket.AF_INET6 if ":" in addr or not addr else _pysocket.AF_INET
    sock = stack.socket(family, kind)
    try:
        sock.bind((addr or "::", port))
    except BaseException:
        sock.close()
        raise
    return sock


def peer_text(sockaddr: tuple[Any, ...]) -> str:
    """`a.b.c.d:port` or `[v6]:port` for a log line; an IPv4 peer of a dual-stack socket
    (::ffff:a.b.c.d) as its IPv4 address."""
    return http.sockaddr_text(sockaddr)


async def _udp_service(stack: Any, name: str, port: int, addr: str, stats: ServiceStats | None,
                       task_status: trio.TaskStatus[str], echo: bool) -> None:
    """One UDP service loop: bind, report started, then receive (and echo) forever."""
    stats = stats if stats is not None else ServiceStats()
    with service_socket(stack, _pysocket.SOCK_DGRAM, addr, port) as sock:
        task_status.started(f"udp/{name}:{sock.getsockname()[1]}")
        while True:
            try:
                data, peer = await sock.recvfrom(MAX_DATAGRAM)
                stats.received += 1
                stats.bytes_in += len(data)
                if echo and peer is not None:
                    await sock.sendto(data, peer)
                    stats.sent += 1
                    stats.bytes_out += len(data)
            except OSError as exc:
                # e.g. EMSGSIZE, a route gone away; never fatal for the service
                stats.errors += 1
                log.warning("udp/%s:%d: %s", name, port, exc)
                await trio.sleep(0)


async def udp_echo(stack: Any, port: int = 7, *, addr: str = "", stats: ServiceStats | None = None,
                   task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """RFC 862 echo over UDP: every datagram goes back to its sender unchanged."""
    await _udp_service(stack, "echo", port, addr, stats, task_status, echo=True)


async def udp_discard(stack: Any, port: int = 9, *, addr: str = "", stats: ServiceStats | None = None,
                      task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """RFC 863 discard over UDP: read and drop (binding it means no ICMP port unreachable)."""
    await _udp_service(stack, "discard", port, addr, stats, task_status, echo=False)


# --- TCP ----------------------------------------------------------------------------------

RECV_SIZE = 65536
SEND_SIZE = 65536
BACKLOG = _pysocket.SOMAXCONN     # as trio's listeners: the most the stack grants (net.core.somaxconn)
PEER_GONE = (errno.ECONNRESET, errno.EPIPE)


class CountingSocket:
    """The few stream calls a handler uses, counting bytes into the service's stats."""

    def __init__(self, sock: Any, stats: ServiceStats) -> None:
        self.sock, self.stats = sock, stats

    async def recv(self, n: int) -> bytes:
        data = await self.sock.recv(n)
        self.stats.bytes_in += len(data)
        return data

    async def send(self, data: Any) -> int:
        n = await self.sock.send(data)
        self.stats.bytes_out += n
        return n

    async def sendall(self, data: Any) -> None:
        view = memoryview(data)
        while view:   # chunk by chunk, so bytes_out is right even if it fails half-way
            view = view[await self.send(view):]

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)


Handler = Callable[[CountingSocket, SockAddr, SockAddr], Awaitable[None]]


async def _serve_conn(label: str, conn: Any, peer: SockAddr, handler: Handler,
                      stats: ServiceStats) -> None:
    try:
        with conn:
            await handler(CountingSocket(conn, stats), peer, conn.getsockname())
    except OSError as exc:
        stats.errors += 1
        log.info("%s: %s: %s", label, peer_text(peer), exc)
    except Exception:   # a bug in a handler: log it, keep serving the others
        stats.errors += 1
        log.exception("%s: connection from %s failed", label, peer_text(peer))


async def _tcp_service(stack: Any, name: str, port: int, addr: str, stats: ServiceStats | None,
                       task_status: trio.TaskStatus[str], handler: Handler) -> None:
    """Bind and listen, report started, then accept forever, one task per connection."""
    stats = stats if stats is not None else ServiceStats()
    with service_socket(stack, _pysocket.SOCK_STREAM, addr, port) as lsock:
        lsock.listen(BACKLOG)
        label = f"tcp/{name}:{lsock.getsockname()[1]}"
        async with trio.open_nursery() as conns:
            task_status.started(label)
            while True:
                try:
                    conn, peer = await lsock.accept()
                except OSError as exc:
                    # e.g. ECONNABORTED, or out of memory: back off a little, keep listening
                    stats.errors += 1
                    log.warning("%s: accept: %s", label, exc)
                    await trio.sleep(0.05)
                    continue
                while True:
                    # a burst: take every queued connection before yielding again (one
                    # accept per scheduler round let the accept queue overflow)
                    stats.connections += 1
                    conns.start_soon(_serve_conn, label, conn, peer, handler, stats)
                    try:
                        conn, peer = lsock.accept_nowait()
                    except OSError:        # EAGAIN: the queue is empty; others: accept() reports them
                        break


async def echo_conn(sock: CountingSocket, peer: SockAddr, local: SockAddr) -> None:
    """RFC 862: send back everything; at the peer's FIN, finish echoing and send ours."""
    while data := await sock.recv(RECV_SIZE):
        await sock.sendall(data)
    sock.shutdown(_pysocket.SHUT_WR)


async def discard_conn(sock: CountingSocket, peer: SockAddr, local: SockAddr) -> None:
    """RFC 863: read and drop until the peer's FIN."""
    while await sock.recv(RECV_SIZE):
        pass


def chargen_cycle() -> bytes:
    """RFC 864's pattern: 95 lines of 72 printable ASCII characters plus CRLF, each line
    starting one character further along the 95 characters ' '..'~'."""
    chars = bytes(range(32, 127))
    return b"".join((chars * 2)[i:i + 72] + b"\r\n" for i in range(95))


_CYCLE = chargen_cycle()
# enough whole cycles that any start offset within one cycle has SEND_SIZE bytes after it
_CHARGEN = memoryview(_CYCLE * (SEND_SIZE // len(_CYCLE) + 2))


async def _drain(sock: CountingSocket) -> None:
    try:
        while await sock.recv(RECV_SIZE):
            pass
    except OSError:
        pass   # the sender meets the same error and ends the connection


async def chargen_conn(sock: CountingSocket, peer: SockAddr, local: SockAddr) -> None:
    """RFC 864: send the pattern until the peer goes away; what it sends is thrown away.
    A FIN from the peer only means it sends no more (it may still read, as with
    `nc -N`), so we stop when a send fails (the peer closed: RST -> ECONNRESET/EPIPE)."""
    async with trio.open_nursery() as n:
        n.start_soon(_drain, sock)
        off = 0
        try:
            while True:
                off = (off + await sock.send(_CHARGEN[off:off + SEND_SIZE])) % len(_CYCLE)
        except OSError as exc:
            if exc.errno not in PEER_GONE:
                raise
        n.cancel_scope.cancel()


@dataclass
class HttpServiceStats(ServiceStats, http.HttpCounters):
    """An HTTP service's counters: the TCP ones and what its bounds did (http.HttpCounters)."""


async def http_conn(sock: CountingSocket, peer: SockAddr, local: SockAddr,
                    limits: http.HttpLimits = http.DEFAULT_LIMITS,
                    counters: http.HttpCounters | None = None) -> None:
    """HTTP/1.1 (tools/services/http.py) on one connection; beyond `limits.max_connections` open at
    once, the connection is closed at once, before reading anything, and counted `refused`."""
    if counters is None:
        counters = sock.stats if isinstance(sock.stats, http.HttpCounters) else http.HttpCounters()
    if counters.active >= limits.max_connections:
        counters.refused += 1
        return   # _serve_conn closes it
    counters.active += 1
    counters.active_peak = max(counters.active_peak, counters.active)
    try:
        await http.serve_connection(sock, peer, local, limits, counters)
    finally:
        counters.active -= 1


def _tcp(name: str, handler: Handler, default_port: int) -> Callable[..., Awaitable[None]]:
    async def service(stack: Any, port: int = default_port, *, addr: str = "",
                      stats: ServiceStats | None = None,
                      task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        await _tcp_service(stack, name, port, addr, stats, task_status, handler)
    service.__name__ = service.__qualname__ = f"tcp_{name}"
    service.__doc__ = handler.__doc__
    return service


tcp_echo = _tcp("echo", echo_conn, 7)
tcp_discard = _tcp("discard", discard_conn, 9)
tcp_chargen = _tcp("chargen", chargen_conn, 19)


async def tcp_http(stack: Any, port: int = 80, *, addr: str = "", stats: ServiceStats | None = None,
                   limits: http.HttpLimits = http.DEFAULT_LIMITS,
                   task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """HTTP/1.1 (tools/services/http.py) with the bounds of `limits`; with an HttpServiceStats as
    `stats` its counters show what the bounds did."""
    stats = stats if stats is not None else HttpServiceStats()
    # one counter set per service, also when the caller's stats are plain ServiceStats
    counters = stats if isinstance(stats, http.HttpCounters) else http.HttpCounters()
    await _tcp_service(stack, "http", port, addr, stats, task_status,
                       partial(http_conn, limits=limits, counters=counters))

Service = Callable[..., Awaitable[None]]

# the stats a service counts into, when not plain ServiceStats
STATS_TYPES: dict[Service, type[ServiceStats]] = {tcp_http: HttpServiceStats}

# name -> (default port, the services started for it)
SERVICES: dict[str, tuple[int, tuple[Service, ...]]] = {
    "echo": (7, (udp_echo, tcp_echo)),
    "discard": (9, (udp_discard, tcp_discard)),
    "chargen": (19, (tcp_chargen,)),
    "http": (80, (tcp_http,)),
}


def parse_serve(spec: str) -> tuple[str, int]:
    """`NAME[:PORT]` -> (name, port); ValueError with a readable message."""
    name, _, port_s = spec.partition(":")
    name = name.strip().lower()
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r} (known: {', '.join(SERVICES)})")
    if not port_s:
        return name, SERVICES[name][0]
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"bad port {port_s!r} in {spec!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range 1..65535")
    return name, port


async def start_services(nursery: trio.Nursery, stack: Any, specs: list[tuple[str, int]],
                         stats: dict[str, ServiceStats] | None = None) -> list[str]:
    """Start every service in `nursery`; returns once all are bound, with their labels.
    With `stats`, each label's ServiceStats is put there."""
    labels = []
    for name, port in specs:
        for service in SERVICES[name][1]:
            st = STATS_TYPES.get(service, ServiceStats)()
            try:
                label = await nursery.start(partial(service, stack, port, stats=st))
            except OSError as exc:   # say which one: "Address already in use: udp/discard:7"
                raise OSError(exc.errno, f"{exc.strerror}: {service.__name__.replace('_', '/')}:{port}") from None
            labels.append(label)
            if stats is not None:
                stats[label] = st
    return labels
