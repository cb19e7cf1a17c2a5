"""Accepting bursts: StreamSocket.accept_nowait (a non-blocking accept(2)), the services'
accept loop that drains the queue per wake-up, and the backlog the stack grants
(Linux's net.core.somaxconn clamp), over two Stacks on a memory link."""
from __future__ import annotations

import errno
import socket
from typing import Any

import pytest
import trio
import trio.testing

from stack.stream import StreamSocket
from tools.services import builtin as services

from .helpers import IP_B, two_stacks

A, S = socket.AF_INET, socket.SOCK_STREAM


async def test_accept_nowait_drains_then_eagain(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as p:
        srv = p.sb.socket(A, S)
        srv.bind(("", 5000))
        srv.listen(8)
        with pytest.raises(BlockingIOError) as exc:
            srv.accept_nowait()
        assert exc.value.errno == errno.EAGAIN
        clients = [p.sa.socket(A, S) for _ in range(5)]
        for c in clients:
            await c.connect((IP_B, 5000))
        first, _ = await srv.accept()
        rest = [srv.accept_nowait()[0] for _ in range(4)]
        with pytest.raises(BlockingIOError):
            srv.accept_nowait()
        peers = {s.getpeername() for s in [first, *rest]}
        assert peers == {c.getsockname() for c in clients}
        plain = p.sb.socket(A, S)
        with pytest.raises(OSError) as failed:
            plain.accept_nowait()                            # not listening: EINVAL, as accept(2)
        assert failed.value.errno == errno.EINVAL


async def test_listen_backlog_is_clamped_like_linux(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as p:
        for asked, granted in ((100_000, 4096), (socket.SOMAXCONN, 4096), (-1, 0)):
            s = p.sb.socket(A, S)
            s.listen(asked)
            assert s._pcb.backlog == granted
        s = p.sb.socket(A, S)
        s.listen()                                           # Python's default: min(128, SOMAXCONN)
        assert s._pcb.backlog == 128


async def test_echo_service_takes_a_burst_in_few_wakeups(autojump_clock: trio.testing.MockClock,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """60 clients connect at once: the service's accept loop wakes a few times and takes
    the queued connections with accept_nowait; every client is echoed, none overflows."""
    waits = 0
    real_accept = StreamSocket.accept

    async def counting_accept(self: StreamSocket) -> Any:
        nonlocal waits
        waits += 1
        return await real_accept(self)

    monkeypatch.setattr(StreamSocket, "accept", counting_accept)
    n = 60
    async with two_stacks() as p:
        stats = services.ServiceStats()
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: services.tcp_echo(p.sb, 7, stats=stats,
                                                                       task_status=task_status))
            echoed: list[bytes] = []

            async def client(i: int) -> None:
                c = p.sa.socket(A, S)
                await c.connect((IP_B, 7))
                await c.sendall(b"hello %d" % i)
                c.shutdown(socket.SHUT_WR)
                data = b""
                while chunk := await c.recv(100):
                    data += chunk
                echoed.append(data)
                c.close()

            with trio.fail_after(60):
                async with trio.open_nursery() as clients:
                    for i in range(n):
                        clients.start_soon(client, i)
            nursery.cancel_scope.cancel()
        assert sorted(echoed) == sorted(b"hello %d" % i for i in range(n))
        assert stats.connections == n and p.sb.stats()["tcp"]["listen_overflows"] == 0
        assert waits < n // 4, waits                        # one wait per connection before
