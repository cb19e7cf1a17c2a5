"""The gateway's DNS forwarder under trio: the guest-side sockets (the Stack's, bound to
10.0.2.3:53) in, the host's resolvers through host sockets (trio.socket) out.

The guest side is typed by two small Protocols, `DatagramEndpoint` and `StreamListener`,
that a tunstack socket and a trio socket both satisfy, so tests can stand either there.
The decisions (which upstream, which ID, which answer is genuine) are `DnsForwarder`'s
(tools/gateway/dns.py); this module moves bytes and keeps time. The Protocols' methods
return awaitables rather than being `async def`, because trio declares its socket
methods that way; an `async def` method satisfies them.

UDP: every query sent upstream gets a host socket of its own, connected to the upstream,
so the kernel picks a fresh random source port for it and drops datagrams from any other
address: with the random ID that is ~32 bits an off-path spoofer must guess (RFC 5452 §4,
§9.2), and an ICMP port unreachable from a dead upstream comes back as ECONNREFUSED, which
moves the query to the next upstream at once. The sockets in use are bounded by the
forwarder's table (max_outstanding).

TCP (RFC 1035 §4.2.2, RFC 7766): a message is two octets of length and the message. A
guest connection's queries are answered concurrently, up to `pipeline` in flight, each
over an upstream TCP connection of its own (RFC 7766 §6.2.1 allows it), answers in the
order they come (§7); at most `max_clients` guest connections at once (the next ones are
closed at once and counted), and a connection idle `idle_timeout` seconds is closed
(§6.2.3). A query no upstream answers gets no answer, as over UDP.
"""
from __future__ import annotations

import errno
import functools
import socket
from collections.abc import Awaitable
from typing import Any, Protocol

import trio

from tools.gateway.dns import (
    DEFAULT_MAX_TCP_CLIENTS,
    DEFAULT_TCP_IDLE_TIMEOUT,
    DEFAULT_TCP_PIPELINE,
    MAX_MESSAGE,
    DnsConfig,
    DnsForwarder,
    Forward,
    Reply,
    ResolvConfWatch,
    Upstream,
)


class DatagramEndpoint(Protocol):
    """The guest-side UDP socket: what the forwarder uses of it."""
    def recvfrom(self, bufsize: int, /) -> Awaitable[tuple[bytes, Any]]: ...
    def sendto(self, data: bytes, address: Any, /) -> Awaitable[int]: ...


class StreamConnection(Protocol):
    """One accepted guest-side TCP connection."""
    def recv(self, bufsize: int, /) -> Awaitable[bytes]: ...
    def send(self, data: bytes, /) -> Awaitable[int]: ...
    def close(self) -> None: ...


class StreamListener(Protocol):
    """The guest-side listening TCP socket."""
    def accept(self) -> Awaitable[tuple[StreamConnection, Any]]: ...


async def _upstream_sockaddr(upstream: Upstream, kind: int) -> Any:
    """The sockaddr of an upstream, its %scope resolved by getaddrinfo (numeric only: no
    name is looked up)."""
    infos = await trio.socket.getaddrinfo(upstream.host, upstream.port, upstream.family, kind,
                                          0, socket.AI_NUMERICHOST)
    return infos[0][4]


async def serve_dns(config: DnsConfig, guest_udp: DatagramEndpoint, guest_tcp: StreamListener,
                    forwarder: DnsForwarder, watch: ResolvConfWatch | None = None) -> None:
    """The whole forwarder until cancelled: UDP and TCP on the guest-side sockets the
    gateway bound to (config.address, config.port), with the configuration's TCP bounds;
    with `watch`, the upstreams follow resolv.conf. With `--disable-dns` (config.enabled
    False) the gateway does not call this."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(serve_dns_udp, guest_udp, forwarder, watch=watch))
        nursery.start_soon(functools.partial(
            serve_dns_tcp, guest_tcp, forwarder, max_clients=config.max_tcp_clients,
            idle_timeout=config.tcp_idle_timeout, pipeline=config.tcp_pipeline, watch=watch))


def _query(forwarder: DnsForwarder, watch: ResolvConfWatch | None, message: bytes,
           client: object) -> Forward | None:
    """A guest's query to the forwarder, its upstreams refreshed first when resolv.conf
    changed (a stat at most once a second)."""
    now = trio.current_time()
    if watch is not None:
        upstreams = watch.check(now)
        if upstreams is not None:
            forwarder.set_upstreams(upstreams)
    return forwarder.query(message, client, now)


def _guest_error(forwarder: DnsForwarder, exc: OSError) -> None:
    """An error from the guest-side socket: counted; a closed socket ends the service."""
    if exc.errno == errno.EBADF:
        raise exc
    forwarder.stats.guest_socket_errors += 1


# --- UDP ----------------------------------------------------------------------------

async def serve_dns_udp(guest: DatagramEndpoint, forwarder: DnsForwarder, *,
                        watch: ResolvConfWatch | None = None) -> None:
    """Answer the guest's UDP queries on `guest` until cancelled."""
    async with trio.open_nursery() as nursery:
        while True:
            try:
                message, client = await guest.recvfrom(MAX_MESSAGE)
            except OSError as exc:            # a pending socket error: counted, not fatal
                _guest_error(forwarder, exc)
                continue
            forward = _query(forwarder, watch, message, client)
            if forward is not None:
                nursery.start_soon(_udp_exchange, guest, forwarder, forward)


async def _udp_exchange(guest: DatagramEndpoint, forwarder: DnsForwarder, first: Forward) -> None:
    """One query, from upstream to upstream until answered or given up."""
    try:
        forward: Forward | None = first
        while forward is not None:
            forward = await _udp_attempt(guest, forwarder, forward)
    finally:
        forwarder.forget(first.upstream_id)     # cancelled midway: leave no entry behind


async def _udp_attempt(guest: DatagramEndpoint, forwarder: DnsForwarder,
                       forward: Forward) -> Forward | None:
    """Ask one upstream: None when done (answered or given up), else the next Forward."""
    upstream_id = forward.upstream_id
    try:
        host = trio.socket.socket(forward.upstream.family, socket.SOCK_DGRAM)
    except OSError:                       # EMFILE, ENFILE, no IPv6: this upstream fails
        return forwarder.fail(upstream_id, trio.current_time())
    with host:
        try:
            await host.connect(await _upstream_sockaddr(forward.upstream, socket.SOCK_DGRAM))
            await host.send(forward.message)
        except OSError:
            return forwarder.fail(upstream_id, trio.current_time())
        with trio.move_on_at(forward.deadline):
            while True:
                try:
                    data, source = await host.recvfrom(MAX_MESSAGE)
                except OSError:           # ECONNREFUSED: ICMP port unreachable (IP_RECVERR)
                    return forwarder.fail(upstream_id, trio.current_time())
                reply = forwarder.answer(data, source, trio.current_time())
                if reply is not None:
                    await _reply_udp(guest, forwarder, reply)
                    return None
    return forwarder.timeout(upstream_id, trio.current_time())


async def _reply_udp(guest: DatagramEndpoint, forwarder: DnsForwarder, reply: Reply) -> None:
    try:
        await guest.sendto(reply.message, reply.client)
    except OSError:
        forwarder.stats.reply_errors += 1


# --- TCP ----------------------------------------------------------------------------

async def serve_dns_tcp(listener: StreamListener, forwarder: DnsForwarder, *,
                        max_clients: int = DEFAULT_MAX_TCP_CLIENTS,
                        idle_timeout: float = DEFAULT_TCP_IDLE_TIMEOUT,
                        pipeline: int = DEFAULT_TCP_PIPELINE,
                        watch: ResolvConfWatch | None = None) -> None:
    """Answer the guest's TCP queries on connections accepted from `listener` until
    cancelled."""
    slots = trio.CapacityLimiter(max_clients)
    async with trio.open_nursery() as nursery:
        while True:
            try:
                conn, _address = await listener.accept()
            except OSError as exc:            # ECONNABORTED and the like: the next one
                _guest_error(forwarder, exc)
                continue
            try:
                slots.acquire_on_behalf_of_nowait(conn)
            except trio.WouldBlock:
                forwarder.stats.tcp_refused += 1
                conn.close()
                continue
            nursery.start_soon(_tcp_client, conn, forwarder, slots, idle_timeout, pipeline,
                               watch)


async def _tcp_client(conn: StreamConnection, forwarder: DnsForwarder,
                      slots: trio.CapacityLimiter, idle_timeout: float, pipeline: int,
                      watch: ResolvConfWatch | None) -> None:
    """One guest connection: read queries while at most `pipeline` are in flight (the
    next one stays unread in the socket: TCP's window tells the guest), answer each as it
    comes (RFC 7766 §6.2.1.1: concurrently; §7: in any order). Idle, EOF or a reset ends
    the reading; the queries in flight are still answered, then the connection closes."""
    client = object()          # the forwarder's key for this connection: unique, hashable
    sending = trio.Lock()      # one answer's frame at a time
    room = trio.Semaphore(pipeline)
    try:
        async with trio.open_nursery() as exchanges:
            while True:
                await room.acquire()           # a free place first, then read a query
                try:
                    message = await _read_query(conn, forwarder, idle_timeout)
                except _BadFrame:              # counted; the connection ends at once
                    room.release()
                    exchanges.cancel_scope.cancel()
                    break
                forward = _query(forwarder, watch, message, client) if message else None
                if forward is not None:
                    exchanges.start_soon(_tcp_answer, conn, forwarder, forward, sending, room,
                                         exchanges.cancel_scope)
                    continue
                room.release()
                if message is None:            # idle, EOF, a reset, or a cut-short message
                    break
                # else garbage or a duplicate: dropped and counted by the forwarder
    finally:
        conn.close()
        slots.release_on_behalf_of(conn)


class _BadFrame(Exception):
    """A guest's TCP message that ends its connection (counted where raised)."""


async def _read_query(conn: StreamConnection, forwarder: DnsForwarder,
                      idle_timeout: float) -> bytes | None:
    """The guest's next query, or None when idle, at EOF or reset. A zero length or one
    over max_query raises _BadFrame: the message is not read, and nothing after it can be
    framed with confidence."""
    try:
        with trio.move_on_after(idle_timeout):
            message = await read_message(conn, forwarder.max_query)
            if message == b"":
                forwarder.stats.tcp_bad_frames += 1
                raise _BadFrame
            return message
    except MessageTooLong:
        forwarder.stats.long_queries += 1
        raise _BadFrame from None
    return None


async def _tcp_answer(conn: StreamConnection, forwarder: DnsForwarder, forward: Forward,
                      sending: trio.Lock, room: trio.Semaphore,
                      connection_scope: trio.CancelScope) -> None:
    """One query of a guest connection. No upstream answered: silence, as over UDP (the
    guest's resolver times out; other queries on the connection go on)."""
    try:
        reply = await _tcp_exchange(forwarder, forward)
        if reply is None:
            return
        async with sending:
            if not await _send_all(conn, frame(reply.message)):
                forwarder.stats.reply_errors += 1
                connection_scope.cancel()      # the guest's connection is broken
    finally:
        room.release()


async def _tcp_exchange(forwarder: DnsForwarder, first: Forward) -> Reply | None:
    try:
        forward: Forward | None = first
        while forward is not None:
            outcome = await _tcp_attempt(forwarder, forward)
            if isinstance(outcome, Reply):
                return outcome
            forward = outcome
        return None
    finally:
        forwarder.forget(first.upstream_id)


async def _tcp_attempt(forwarder: DnsForwarder, forward: Forward) -> Reply | Forward | None:
    """Ask one upstream over a TCP connection of its own: the answer, the next Forward,
    or None (given up)."""
    upstream_id = forward.upstream_id
    try:
        host = trio.socket.socket(forward.upstream.family, socket.SOCK_STREAM)
    except OSError:
        return forwarder.fail(upstream_id, trio.current_time())
    with host:
        with trio.move_on_at(forward.deadline):
            try:
                await host.connect(await _upstream_sockaddr(forward.upstream, socket.SOCK_STREAM))
                if not await _send_all(host, frame(forward.message)):
                    return forwarder.fail(upstream_id, trio.current_time())
                source = host.getpeername()
                while True:
                    data = await read_message(host)
                    if data is None:      # the upstream closed or reset before answering
                        return forwarder.fail(upstream_id, trio.current_time())
                    reply = forwarder.answer(data, source, trio.current_time())
                    if reply is not None:
                        return reply
            except OSError:
                return forwarder.fail(upstream_id, trio.current_time())
    return forwarder.timeout(upstream_id, trio.current_time())


# --- framing (RFC 1035 §4.2.2) ------------------------------------------------------

class _Receiver(Protocol):
    def recv(self, bufsize: int, /) -> Awaitable[bytes]: ...


class _Sender(Protocol):
    def send(self, data: bytes, /) -> Awaitable[int]: ...


def frame(message: bytes) -> bytes:
    """A message with its two-octet length in front."""
    return len(message).to_bytes(2, "big") + message


async def _recv_exactly(conn: _Receiver, size: int) -> bytes | None:
    """`size` octets, or None on EOF or a socket error first."""
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        try:
            chunk = await conn.recv(remaining)
        except OSError:
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class MessageTooLong(Exception):
    """A length prefix over the reader's limit: the message is not read."""


async def read_message(conn: _Receiver, max_size: int = MAX_MESSAGE) -> bytes | None:
    """One length-prefixed message, or None on EOF, a reset or a message cut short;
    MessageTooLong (nothing of it read) when its length is over `max_size`."""
    prefix = await _recv_exactly(conn, 2)
    if prefix is None:
        return None
    size = int.from_bytes(prefix, "big")
    if size > max_size:
        raise MessageTooLong(size)
    return await _recv_exactly(conn, size) if size else b""


async def _send_all(conn: _Sender, data: bytes) -> bool:
    """Send everything (a trio socket has no sendall); False on a socket error."""
    view = memoryview(data)
    try:
        while view:
            sent = await conn.send(bytes(view))
            view = view[sent:]
    except OSError:
        return False
    return True
