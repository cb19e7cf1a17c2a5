"""Socket-buffer memory between two Stacks over a memory link (issue 10 point 6).

Stack B opens connections to stack A and never reads: pairs of one to a service on A that
writes until it cannot (A's send buffers fill) and one to a service that accepts and never
reads while B writes until it cannot (A's receive buffers fill).  A runs with a small
tcp_mem budget, so the clients cross every mark: each of A's sockets stays within its own
autotuned size, the total (held + windows promised) stays near the high mark, connections
attempted over it are refused (counted), and closing gives every byte back at once.
"""
from __future__ import annotations

import errno
import socket
from typing import Any

import pytest
import trio
import trio.testing

from protocols.tcp.config import TcpConfig
from stack.stack import StackConfig

from .helpers import IP_A, IP_B, two_stacks

A, S = socket.AF_INET, socket.SOCK_STREAM
SINK, WRITER = 5000, 5001
KIB = 1024
LOW, PRESSURE, HIGH = 1024 * KIB, 1536 * KIB, 2048 * KIB
MAX_CLIENTS = 64                             # per service: 128 connections, ~20 MiB if unbounded


async def sink(lst: Any, held: list[Any]) -> None:
    while True:
        conn, _ = await lst.accept()
        held.append(conn)


async def writer(lst: Any, held: list[Any], nursery: trio.Nursery) -> None:
    async def write_forever(conn: Any) -> None:
        try:
            while True:
                await conn.send(b"w" * 65536)
        except OSError:
            pass
    while True:
        conn, _ = await lst.accept()
        held.append(conn)
        nursery.start_soon(write_forever, conn)


async def fill(sock: Any) -> int:
    """Write until the peer's window and our send buffer are full."""
    sent = 0
    with trio.move_on_after(5):
        while True:
            sent += await sock.send(b"c" * 65536)
    return sent


async def test_never_reading_clients_bounded_per_socket_and_globally(
        autojump_clock: trio.testing.MockClock) -> None:
    tcp_a = TcpConfig(msl=0.5, mem=(LOW, PRESSURE, HIGH), syn_retries=2)
    async with two_stacks(config_a=StackConfig(seed=1, tcp=tcp_a),
                          config_b=StackConfig(seed=2, tcp=TcpConfig(msl=0.5, syn_retries=2,
                                                                       syn_linear_timeouts=0))) as p:
        tcp = p.sa.tcp
        st = tcp.stats
        held: list[Any] = []
        clients: list[Any] = []
        async with trio.open_nursery() as services:
            for port, service in ((SINK, sink), (WRITER, writer)):
                lst = p.sa.socket(A, S)
                lst.bind(("", port))
                lst.listen(64)
                services.start_soon(*((service, lst, held) if service is sink else (service, lst, held, services)))
            # clients arrive until the budget refuses them: every window A offers counts
            refused_at = None
            for i in range(MAX_CLIENTS):
                try:
                    for port in (SINK, WRITER):
                        c = p.sb.socket(A, S)
                        await c.connect((IP_A, port))
                        clients.append(c)
                        if port == SINK:
                            await fill(c)
                except OSError as exc:
                    assert exc.errno == errno.ETIMEDOUT              # SYNs dropped, never answered
                    refused_at = i
                    break
            assert refused_at is not None and refused_at >= 2
            assert st.mem_refused >= 3 and st.mem_pressure >= 1 and st.mem_window_clamped >= 1
            await trio.sleep(5)
            assert len(held) == len(clients)
            for conn in held:
                pcb = conn._pcb
                # per socket: never-reading peers pin the initial receive buffer and twice
                # the peer's window on the send side -- not tcp_rmem[2] / tcp_wmem[2]
                assert pcb.rcv.capacity == tcp_a.rmem[1] and pcb.rcv.held() <= tcp_a.rmem[1]
                # the send buffer grows to twice the peer's window at most (tcp_sndbuf_expand;
                # under pressure it shrinks below what it holds, sk_stream_moderate_sndbuf);
                # what it holds stays under twice that (consumed octets wait for the next
                # compaction, which ByteQueue.consume makes once they are half the queue)
                assert pcb.snd.capacity <= 2 * 131072 and pcb.snd.held() < 2 * 2 * 131072
            accounted = sum(c._pcb.snd.held() + c._pcb.rcv.held() for c in held)
            assert tcp.mem_allocated == accounted <= tcp.mem_committed
            # globally: past the high mark by no more than one window opened just before it was
            # reached, and what each connection may still take under pressure (4 segments) and
            # over the mark (tcp_rmem[0])
            slack = tcp_a.rmem[1] + len(held) * (4 * 1460 + tcp_a.rmem[0])
            assert tcp.mem_committed <= HIGH + slack
            assert tcp.mem.over_high()
            assert p.sa.stats()["tcp_mem"] == {"allocated": tcp.mem_allocated, "committed": tcp.mem_committed,
                                               "pressure": True,          # exposed as Linux's sockstat
                                               "promising": tcp.mem.promising}
            assert 0 < tcp.mem.promising <= len(tcp.conns)
            # still over the high mark: another connection is refused (its 3 SYNs counted)
            refused = st.mem_refused
            late = p.sb.socket(A, S)
            with pytest.raises(OSError) as late_err:
                await late.connect((IP_A, SINK))
            assert late_err.value.errno == errno.ETIMEDOUT
            assert st.mem_refused == refused + 3
            assert len(held) == len(clients)
            # the clients go (unread data: RSTs) and the services let go: all given back at once
            for c in clients:
                c.close()
            await trio.sleep(0.1)
            for conn in held:
                conn.close()
            assert tcp.mem_allocated == tcp.mem_committed == 0
            assert tcp.mem.promising == 0                # (the even share's count: no window left open)
            assert not tcp.mem.under_pressure()
            services.cancel_scope.cancel()


async def test_buffer_options_default_double_and_lock(autojump_clock: trio.testing.MockClock) -> None:
    """A fresh TCP socket reads back Linux's tcp_rmem[1] / tcp_wmem[1]; SO_RCVBUF/SO_SNDBUF
    are doubled (sock_setsockopt) and lock the size (SOCK_*BUF_LOCK): no autotuning for that
    socket, nor for the children a listener passes it on to."""
    async with two_stacks() as p:
        s = p.sa.socket(A, S)
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 131072
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 16384
        assert not s._pcb.rcvbuf_locked and not s._pcb.sndbuf_locked
        lst = p.sb.socket(A, S)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
        lst.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        assert lst.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 65536
        assert lst.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 16384
        lst.bind(("", SINK))
        lst.listen(4)
        await s.connect((IP_B, SINK))
        conn, _ = await lst.accept()
        pcb = conn._pcb
        assert pcb.rcvbuf_locked and pcb.sndbuf_locked
        assert pcb.rcv_wscale == 1                            # chosen for 64 KiB, not tcp_rmem[2]
        # a reader that drains fast: the locked buffer stays; the autotuned sender's grows
        async with trio.open_nursery() as n:
            async def drain() -> None:
                while await conn.recv(1 << 20):
                    pass
            n.start_soon(drain)
            for _ in range(64):
                await s.sendall(b"x" * 65536)
            s.shutdown(socket.SHUT_WR)
        assert pcb.rcv.capacity == 65536 and pcb.snd.capacity == 16384
        assert s._pcb.snd.capacity > 16384 and not s._pcb.sndbuf_locked


async def test_receive_buffer_grows_for_a_draining_reader(autojump_clock: trio.testing.MockClock) -> None:
    """DRS end to end: over a link with some latency, a reader that keeps up makes its
    buffer (and window) grow past tcp_rmem[1]; the sender's buffer follows its window."""
    async with two_stacks(latency=0.005) as p:
        lst = p.sb.socket(A, S)
        lst.bind(("", SINK))
        lst.listen(4)
        s = p.sa.socket(A, S)
        await s.connect((IP_B, SINK))
        conn, _ = await lst.accept()
        got = 0
        async with trio.open_nursery() as n:
            async def drain() -> None:
                nonlocal got
                while data := await conn.recv(1 << 20):
                    got += len(data)
            n.start_soon(drain)
            for _ in range(128):
                await s.sendall(b"x" * 65536)
            s.shutdown(socket.SHUT_WR)
        assert got == 128 * 65536
        assert conn._pcb.rcv.capacity > 4 * 131072
        assert s._pcb.snd.capacity > 4 * 16384
        await trio.sleep(1)                                  # the last ACKs cross the link
        assert p.sb.tcp.mem_allocated == 0 and p.sa.tcp.mem_allocated == 0   # all delivered and read
