"""TCP Fast Open (RFC 7413) between two tunstack Stacks: a client learns the server's cookie,
then its data rides in the SYN and is delivered to the server's accepted socket -- the
bytes themselves checked, over IPv4 and IPv6 (the scripted tests check the segments)."""
from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from protocols.tcp.config import TcpConfig
from stack.stack import StackConfig

from .helpers import IP_B, Pair, two_stacks

A6, B6 = "fd00:1::1", "fd00:1::2"
TCP_FASTOPEN_CONNECT = 30


@asynccontextmanager
async def fastopen_pair(ipv6: bool, server_flags: int = 0x3) -> AsyncIterator[Pair]:
    client = StackConfig(seed=1, ipv6=ipv6, tcp=TcpConfig(fastopen=0x1))
    server = StackConfig(seed=2, ipv6=ipv6, tcp=TcpConfig(fastopen=server_flags))
    async with two_stacks(config_a=client, config_b=server, ipv6=ipv6) as p:
        if ipv6:
            p.sa.add_address(p.ifa, f"{A6}/64")
            p.sb.add_address(p.ifb, f"{B6}/64")
            await trio.sleep(3)                  # DAD
        yield p


async def serve_once(srv: Any, got: list[bytes]) -> None:
    conn, _ = await srv.accept()
    got.append(await conn.recv(65536))
    await conn.send(b"pong:" + got[-1])
    conn.close()


@pytest.mark.parametrize("ipv6", [False, True])
async def test_cookie_then_data_in_the_syn(ipv6: bool, autojump_clock: trio.testing.MockClock) -> None:
    family, server = (socket.AF_INET6, B6) if ipv6 else (socket.AF_INET, IP_B)
    async with fastopen_pair(ipv6) as p:
        srv = p.sb.socket(family, socket.SOCK_STREAM)
        srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 8)
        srv.bind(("", 5000))
        srv.listen(8)
        stats_a, stats_b = p.sa.tcp.stats, p.sb.tcp.stats
        got: list[bytes] = []
        for message in (b"first: a cookie request", b"second: data in the SYN"):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve_once, srv, got)
                cl = p.sa.socket(family, socket.SOCK_STREAM)
                assert await cl.sendto(message, socket.MSG_FASTOPEN, (server, 5000)) == len(message)
                assert await cl.recv(100) == b"pong:" + message
                cl.close()
        assert got == [b"first: a cookie request", b"second: data in the SYN"]
        assert (stats_a.fastopen_active, stats_a.fastopen_active_fail) == (1, 0)
        assert (stats_b.fastopen_cookie_reqd, stats_b.fastopen_passive, stats_b.fastopen_passive_fail) == (1, 1, 0)


async def test_connect_option_with_a_cookie_from_another_server_port(autojump_clock: trio.testing.MockClock) -> None:
    """The cookie is the server host's, not a port's: learned on one port, used on another,
    with TCP_FASTOPEN_CONNECT -- connect() returns at once, the first send() is the SYN."""
    async with fastopen_pair(False) as p:
        servers = []
        for port in (5000, 5001):
            srv = p.sb.socket(socket.AF_INET, socket.SOCK_STREAM)
            srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 4)
            srv.bind(("", port))
            srv.listen(4)
            servers.append(srv)
        got: list[bytes] = []
        for srv, port in zip(servers, (5000, 5001), strict=True):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve_once, srv, got)
                cl = p.sa.socket(socket.AF_INET, socket.SOCK_STREAM)
                cl.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
                await cl.connect((IP_B, port))
                if port == 5001:                 # deferred: SYN-SENT, no SYN out yet
                    assert cl.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[0] == 2
                    assert p.sa.tcp.stats.fastopen_active == 0
                assert await cl.send(b"hello %d" % port) == 10
                assert await cl.recv(100) == b"pong:hello %d" % port
                cl.close()
        assert got == [b"hello 5000", b"hello 5001"]
        assert p.sa.tcp.stats.fastopen_active == 1 and p.sb.tcp.stats.fastopen_passive == 1


async def test_server_without_the_flag_falls_back(autojump_clock: trio.testing.MockClock) -> None:
    """A server with Fast Open off answers no cookie request: every connection is a normal
    handshake and the data goes after it."""
    async with fastopen_pair(False, server_flags=0x1) as p:
        srv = p.sb.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 8)
        srv.bind(("", 5000))
        srv.listen(8)
        got: list[bytes] = []
        for message in (b"one", b"two"):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(serve_once, srv, got)
                cl = p.sa.socket(socket.AF_INET, socket.SOCK_STREAM)
                assert await cl.sendto(message, socket.MSG_FASTOPEN, (IP_B, 5000)) == 3
                assert await cl.recv(100) == b"pong:" + message
                cl.close()
        assert got == [b"one", b"two"]
        assert p.sa.tcp.stats.fastopen_active == 0 and p.sb.tcp.stats.fastopen_passive == 0
