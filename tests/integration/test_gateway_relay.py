"""The gateway's TCP relay (tools/gateway/relay.py) between two real loopback TCP connections:
bulk both ways with half-close, resets mapped across, and backpressure that keeps the relay's
own buffering to one chunk per direction."""
from __future__ import annotations

import hashlib
import random
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from tools.gateway.relay import CHUNK, RelayResult, relay


async def _pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    """Two ends of one loopback TCP connection."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listeners[0].accept()
    await listeners[0].aclose()
    return client, server


@asynccontextmanager
async def spliced() -> AsyncIterator[tuple[trio.SocketStream, trio.SocketStream, list[RelayResult], trio.Nursery]]:
    """guest client <-> [relay] <-> host server; yields the two outer ends."""
    guest_client, guest_end = await _pair()
    host_end, host_server = await _pair()
    results: list[RelayResult] = []

    async def run() -> None:
        results.append(await relay(guest_end, host_end))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        yield guest_client, host_server, results, nursery


async def read_all(stream: trio.SocketStream) -> bytes:
    parts = []
    while data := await stream.receive_some(1 << 20):
        parts.append(data)
    return b"".join(parts)


async def test_both_ways_with_half_close() -> None:
    up, down = random.Random(1).randbytes(8 << 20), random.Random(2).randbytes(5 << 20)
    async with spliced() as (guest, host, results, _):
        got: dict[str, bytes] = {}

        async def guest_side() -> None:
            await guest.send_all(up)
            await guest.send_eof()                   # the guest's FIN: the host sees EOF ...
            got["down"] = await read_all(guest)      # ... and still sends its answer
            await guest.aclose()

        async def host_side() -> None:
            got["up"] = await read_all(host)
            await host.send_all(down)
            await host.aclose()

        async with trio.open_nursery() as n:
            n.start_soon(guest_side)
            n.start_soon(host_side)
    assert hashlib.sha256(got["up"]).digest() == hashlib.sha256(up).digest()
    assert hashlib.sha256(got["down"]).digest() == hashlib.sha256(down).digest()
    (r,) = results
    assert (r.to_host.octets, r.to_guest.octets) == (len(up), len(down))
    assert r.to_host.eof and r.to_guest.eof and not r.reset


def _rst(stream: trio.SocketStream) -> None:
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def test_host_reset_resets_the_guest() -> None:
    async with spliced() as (guest, host, results, _):
        await guest.send_all(b"hello")
        assert await host.receive_some(10) == b"hello"
        _rst(host)
        await host.aclose()                          # the host's RST ...
        with pytest.raises(trio.BrokenResourceError) as info:   # ... becomes the guest's
            with trio.fail_after(5):
                while await guest.receive_some(10):
                    pass
        assert isinstance(info.value.__cause__, ConnectionResetError)
    assert results[0].to_guest.reset


async def test_guest_reset_resets_the_host() -> None:
    async with spliced() as (guest, host, results, _):
        await host.send_all(b"hi")
        assert await guest.receive_some(10) == b"hi"
        _rst(guest)
        await guest.aclose()
        with pytest.raises(trio.BrokenResourceError) as info:
            with trio.fail_after(5):
                while await host.receive_some(10):
                    pass
        assert isinstance(info.value.__cause__, ConnectionResetError)
    assert results[0].to_host.reset


async def test_backpressure_bounds_what_the_relay_takes() -> None:
    # a host that reads nothing: the guest's writes stall once the socket buffers are full,
    # and the relay itself holds no more than one chunk
    async with spliced() as (guest, host, results, nursery):
        sent = 0
        with trio.move_on_after(2):
            while True:
                await guest.send_all(b"x" * CHUNK)
                sent += CHUNK
        assert sent < 64 << 20                        # it stalled
        host_buffer = host.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        guest_buffer = guest.socket.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        # all that left the guest is in kernel buffers or the relay's one chunk
        assert sent <= 4 * (host_buffer + guest_buffer) + CHUNK
        _rst(guest)
        await guest.aclose()
        await host.aclose()
        nursery.cancel_scope.deadline = trio.current_time() + 5


async def test_a_tunstack_guest_connection_spliced_to_a_kernel_one() -> None:
    # what the gateway does: the guest's connection ends in a tunstack socket (here: stack b,
    # reached from stack a over a memory link), the host's in a kernel socket on loopback
    from stack.trio_compat import tunstack_sockets

    from .helpers import IP_B, two_stacks

    up, down = random.Random(3).randbytes(3 << 20), random.Random(4).randbytes(2 << 20)
    host_end, host_server = await _pair()
    async with two_stacks("rawip", ipv6=False) as p:
        with tunstack_sockets(p.sb, adopt_stdlib=False):
            listeners = await trio.open_tcp_listeners(7000, host=IP_B)
        guest = p.sa.socket(socket.AF_INET, socket.SOCK_STREAM)
        await guest.connect((IP_B, 7000))
        guest_end = await listeners[0].accept()
        got: dict[str, bytes] = {}
        results: list[RelayResult] = []

        async def run() -> None:
            results.append(await relay(guest_end, host_end))

        async def guest_side() -> None:
            await guest.sendall(up)
            guest.shutdown(socket.SHUT_WR)
            parts = []
            while data := await guest.recv(1 << 20):
                parts.append(data)
            got["down"] = b"".join(parts)
            guest.close()

        async def host_side() -> None:
            got["up"] = await read_all(host_server)
            await host_server.send_all(down)
            await host_server.aclose()

        with trio.fail_after(60):
            async with trio.open_nursery() as n:
                n.start_soon(run)
                n.start_soon(guest_side)
                n.start_soon(host_side)
        await listeners[0].aclose()
    assert got["up"] == up and got["down"] == down
    assert results[0].to_host.eof and results[0].to_guest.eof and not results[0].reset
