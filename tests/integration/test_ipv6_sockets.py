"""AF_INET6 sockets between two Stacks over memory links: UDP (also 8000-byte datagrams, in
fragments), 20 MiB of TCP with SHA-256 (also through the fault injector), a dual-stack
listener on :: taking IPv4 and IPv6 clients, and trio's own stream helpers over IPv6."""
from __future__ import annotations

import errno
import functools
import hashlib
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from drivers.fault import FaultInjector
from drivers.memlink import MemoryNdd

from .helpers import IP_A, IP_B, Pair, two_stacks

A6, B6 = "fd00:1::1", "fd00:1::2"
INET6, DGRAM, STREAM = socket.AF_INET6, socket.SOCK_DGRAM, socket.SOCK_STREAM


@asynccontextmanager
async def v6(kind: str = "ether", **kw: Any) -> AsyncIterator[Pair]:
    async with two_stacks(kind, **kw) as p:
        p.sa.add_address(p.ifa, f"{A6}/64")
        p.sb.add_address(p.ifb, f"{B6}/64")
        await trio.sleep(3)                  # DAD
        yield p


def payload(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


async def recv_exactly(sock: Any, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = await sock.recv(min(65536, n - got))
        assert chunk, f"EOF after {got} of {n} bytes"
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


@pytest.mark.parametrize("kind", ["ether", "rawip"])
async def test_udp_both_ways_with_fragments(kind: str, autojump_clock: trio.testing.MockClock) -> None:
    async with v6(kind) as p:
        srv = p.sb.socket(INET6, DGRAM)
        srv.bind(("::", 7000))
        cl = p.sa.socket(INET6, DGRAM)
        for size in (0, 1, 1232, 1452, 8000):
            data = payload(size, size)
            await cl.sendto(data, (B6, 7000))
            got, frm = await srv.recvfrom(65535)
            assert got == data and frm[0] == A6 and frm[1:] == (cl.getsockname()[1], 0, 0)
            await srv.sendto(got, frm)
            back, who = await cl.recvfrom(65535)
            assert back == data and who == (B6, 7000, 0, 0)
        assert p.sb.stats()["ipv6"]["reasm_oks"] >= 1      # 8000 octets came in pieces
        # nobody on the port: port unreachable comes back as ECONNREFUSED on a connected socket
        c2 = p.sa.socket(INET6, DGRAM)
        await c2.connect((B6, 7999))
        await c2.send(b"x")
        with pytest.raises(OSError) as info:
            with trio.fail_after(2):
                await c2.recv(10)
        assert info.value.errno == errno.ECONNREFUSED


async def bulk(p: Pair, size: int, *, port: int = 5000) -> None:
    data = payload(size)
    srv = p.sb.socket(INET6, STREAM)
    srv.bind(("::", port))
    srv.listen(4)
    cl = p.sa.socket(INET6, STREAM)
    await cl.connect((B6, port))
    conn, peer = await srv.accept()
    assert peer == cl.getsockname() and peer[0] == A6
    got: list[bytes] = []
    async with trio.open_nursery() as n:
        async def reader() -> None:
            got.append(await recv_exactly(conn, size))
        n.start_soon(reader)
        await cl.sendall(data)
    assert hashlib.sha256(got[0]).digest() == hashlib.sha256(data).digest()
    cl.close()
    assert await conn.recv(10) == b""
    conn.close()
    srv.close()


async def test_tcp_20_mib_sha256(autojump_clock: trio.testing.MockClock) -> None:
    async with v6("ether") as p:
        await bulk(p, 20 << 20)
        assert p.sa.stats()["tcp"]["out_rsts"] == 0


async def test_tcp_through_faults(autojump_clock: trio.testing.MockClock) -> None:
    holder: list[FaultInjector] = []

    def wrap(a: MemoryNdd) -> FaultInjector:
        holder.append(FaultInjector(a, seed=21))
        return holder[0]

    async with v6("ether", wrap_a=wrap) as p:
        await p.sa.ping(B6)                             # neighbours resolved first
        holder[0].p.update(drop=0.02, duplicate=0.02, reorder=0.05, delay=0.05)
        await bulk(p, 4 << 20)
        assert holder[0].faults.dropped > 0 and p.sa.stats()["tcp"]["retrans_segs"] > 0


async def test_dual_stack_listener_takes_both_families(autojump_clock: trio.testing.MockClock) -> None:
    async with v6("ether") as p:
        srv = p.sb.socket(INET6, STREAM)
        srv.bind(("::", 6000))
        srv.listen(4)
        c4 = p.sa.socket(socket.AF_INET, STREAM)
        await c4.connect((IP_B, 6000))
        conn4, peer4 = await srv.accept()
        assert peer4 == (f"::ffff:{IP_A}", c4.getsockname()[1], 0, 0)
        assert conn4.getsockname() == (f"::ffff:{IP_B}", 6000, 0, 0)
        c6 = p.sa.socket(INET6, STREAM)
        await c6.connect((B6, 6000))
        conn6, peer6 = await srv.accept()
        assert peer6[0] == A6
        for c, conn in ((c4, conn4), (c6, conn6)):
            await c.sendall(b"hello")
            assert await recv_exactly(conn, 5) == b"hello"
        # with V6ONLY a v6 wildcard leaves IPv4 alone: an IPv4 bind of the same port succeeds
        only6 = p.sb.socket(INET6, STREAM)
        only6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        only6.bind(("::", 6001))
        v4 = p.sb.socket(socket.AF_INET, STREAM)
        v4.bind(("0.0.0.0", 6001))
        both = p.sb.socket(INET6, STREAM)
        with pytest.raises(OSError) as info:
            both.bind(("::", 6001))                      # V6ONLY off: conflicts with the IPv4 bind
        assert info.value.errno == errno.EADDRINUSE


async def test_refused_and_link_local_errors(autojump_clock: trio.testing.MockClock) -> None:
    async with v6("ether") as p:
        cl = p.sa.socket(INET6, STREAM)
        with pytest.raises(OSError) as info:
            await cl.connect((B6, 9))
        assert info.value.errno == errno.ECONNREFUSED
        ll = next(a["addr"] for a in p.sb.stats()["interfaces"]["m1"]["ipv6"]["addresses"]
                  if a["addr"].startswith("fe80:"))
        cl2 = p.sa.socket(INET6, STREAM)
        with pytest.raises(OSError) as info:
            await cl2.connect((ll, 9))                   # no scope id: Linux's EINVAL
        assert info.value.errno == errno.EINVAL
        cl3 = p.sa.socket(INET6, STREAM)
        with pytest.raises(OSError) as info:
            await cl3.connect((ll, 9, 0, p.sa.if_nametoindex("m0")))
        assert info.value.errno == errno.ECONNREFUSED     # with it: the peer answers (RST)


async def test_trio_streams_over_ipv6(autojump_clock: trio.testing.MockClock) -> None:
    from stack.trio_compat import tunstack_sockets

    async with v6("ether") as p:
        async def echo(stream: trio.SocketStream) -> None:
            async for chunk in stream:
                await stream.send_all(chunk)

        async with trio.open_nursery() as n:
            with tunstack_sockets(p.sb):
                listeners = await n.start(functools.partial(trio.serve_tcp, echo, 7070, host="::"))
            assert listeners[0].socket.getsockname()[:2] == ("::", 7070)
            with tunstack_sockets(p.sa):
                stream = await trio.open_tcp_stream(B6, 7070)
            await stream.send_all(b"ping over v6")
            assert await stream.receive_some(100) == b"ping over v6"
            await stream.aclose()
            n.cancel_scope.cancel()
