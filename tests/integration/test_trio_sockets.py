"""trio integration: inside `tunstack_sockets(stack)`, trio.socket is the stack."""
from __future__ import annotations

import socket

import pytest
import trio
import trio.testing

from stack.trio_compat import TrioSocket, tunstack_sockets

from .helpers import IP_A, IP_B, two_stacks


async def test_trio_socket_is_a_stack_socket(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as p:
        server = p.sb.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("", 5353))
        with tunstack_sockets(p.sa):
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            assert isinstance(sock, TrioSocket) and isinstance(sock, trio.socket.SocketType)
            assert sock.type == socket.SOCK_DGRAM and sock.family == socket.AF_INET
            await sock.bind(("", 0))
            await sock.connect((IP_B, 5353))
            await sock.send(b"over trio")
            data, addr = await server.recvfrom(100)
            assert data == b"over trio" and addr == (IP_A, sock.getsockname()[1])
            await server.sendto(b"reply", addr)
            assert await sock.recv(100) == b"reply"
            sock.close()
        # outside the block trio is back on the kernel's sockets
        plain = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        assert not isinstance(plain, TrioSocket)
        plain.close()


async def test_resolver_literals_and_hosts_table(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as p:
        p.sa.hosts["peer.test"] = IP_B
        with tunstack_sockets(p.sa):
            info = await trio.socket.getaddrinfo("peer.test", 7, type=trio.socket.SOCK_DGRAM)
            assert [(i[0], i[1], i[4]) for i in info] == [(socket.AF_INET, socket.SOCK_DGRAM, (IP_B, 7))]
            info = await trio.socket.getaddrinfo(IP_A, "9")
            assert {i[4] for i in info} == {(IP_A, 9)}
            with pytest.raises(socket.gaierror):
                await trio.socket.getaddrinfo("no.such.name", 80)
            assert await trio.socket.getnameinfo((IP_B, 7), 0) == ("peer.test", "7")


async def test_open_tcp_stream_and_serve_tcp(autojump_clock: trio.testing.MockClock) -> None:
    """trio's own TCP helpers run unchanged over the stack: serve_tcp on b, open_tcp_stream on a."""
    async with two_stacks() as p:
        async def echo(stream: trio.SocketStream) -> None:
            async for chunk in stream:
                await stream.send_all(chunk.upper())

        async with trio.open_nursery() as nursery:
            with tunstack_sockets(p.sb):
                listeners = await nursery.start(trio.serve_tcp, echo, 8080)
            assert listeners[0].socket.getsockname() == ("0.0.0.0", 8080)
            with tunstack_sockets(p.sa):
                stream = await trio.open_tcp_stream(IP_B, 8080)
            assert isinstance(stream, trio.SocketStream)
            await stream.send_all(b"hello over trio")
            got = b""
            while len(got) < 15:
                got += await stream.receive_some(100)
            assert got == b"HELLO OVER TRIO"
            await stream.send_eof()
            assert await stream.receive_some(100) == b""
            await stream.aclose()
            nursery.cancel_scope.cancel()
