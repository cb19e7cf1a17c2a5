"""Stream sockets between two Stacks over a memory link: the README's "Sockets" and Linux's errnos."""
from __future__ import annotations

import errno
import socket
import struct
from typing import Any

import pytest
import trio
import trio.testing

from drivers.fault import FaultInjector
from drivers.memlink import MemoryNdd
from protocols.tcp.config import TcpConfig
from protocols.tcp.state import State
from stack.stack import StackConfig

from .helpers import IP_A, IP_B, two_stacks

A, S = socket.AF_INET, socket.SOCK_STREAM
EPHEMERAL = range(32768, 61000)


def err(code: int) -> Any:
    return pytest.raises(OSError, match=rf"^\[Errno {code}\]")


def cfg(seed: int = 1, ipv6: bool = True, **tcp: Any) -> dict[str, StackConfig]:
    t = TcpConfig(msl=0.5, **tcp)
    return {"config_a": StackConfig(seed=seed, tcp=t, ipv6=ipv6),
            "config_b": StackConfig(seed=seed + 1, tcp=t, ipv6=ipv6)}


async def listener(stack: Any, port: int = 5000, backlog: int = 8) -> Any:
    srv = stack.socket(A, S)
    srv.bind(("", port))
    srv.listen(backlog)
    return srv


async def connected(p: Any, port: int = 5000) -> tuple[Any, Any, Any]:
    srv = await listener(p.sb, port)
    cl = p.sa.socket(A, S)
    await cl.connect((IP_B, port))
    conn, addr = await srv.accept()
    assert addr == cl.getsockname()
    return srv, cl, conn


async def test_connect_accept_names(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(**cfg()) as p:
        srv = await listener(p.sb)
        cl = p.sa.socket(A, S)
        assert cl.getsockname() == ("0.0.0.0", 0)
        with err(errno.ENOTCONN):
            cl.getpeername()
        await cl.connect((IP_B, 5000))
        name = cl.getsockname()
        assert name[0] == IP_A and name[1] in EPHEMERAL          # auto-bound, source from the route
        assert cl.getpeername() == (IP_B, 5000)
        conn, addr = await srv.accept()
        assert addr == name and conn.getpeername() == name and conn.getsockname() == (IP_B, 5000)
        assert srv.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        with err(errno.EISCONN):
            await cl.connect((IP_B, 5000))
        with err(errno.EINVAL):
            await conn.accept()                                 # not listening
        with err(errno.EINVAL):
            cl.listen(1)                                        # connected
        with err(errno.ENOTCONN):
            await srv.recv(10)


async def test_refused_keeps_autobound_name(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(**cfg()) as p:
        cl = p.sa.socket(A, S)
        with err(errno.ECONNREFUSED):
            await cl.connect((IP_B, 5001))                      # RST to our SYN
        name = cl.getsockname()
        assert name[1] in EPHEMERAL                             # as on Linux, the name remains
        assert p.sb.tcp.stats.out_rsts == 1
        assert p.sa.tcp.stats.in_rsts == 1 and p.sa.tcp.stats.attempt_fails == 1
        with err(errno.ENOTCONN):
            cl.getpeername()
        await listener(p.sb, 5001)
        await cl.connect((IP_B, 5001))                          # and the socket may try again
        assert cl.getsockname() == name


async def test_connect_times_out_after_syn_retries(autojump_clock: trio.testing.MockClock) -> None:
    def wrap(a: MemoryNdd) -> FaultInjector:
        return FaultInjector(a, drop=1.0, direction="out")
    async with two_stacks("rawip", wrap_a=wrap, **cfg(syn_retries=3, ipv6=False)) as p:   # SYNs alone dropped
        cl = p.sa.socket(A, S)
        start = trio.current_time()
        with err(errno.ETIMEDOUT):
            await cl.connect((IP_B, 5000))
        # Linux >= 6.10: SYNs 1 s apart five times, then 2 and 4 s; ETIMEDOUT at the first
        # expiry past tcp_model_timeout(3) = 15 s (1 + 2 + 4 + 8), which is 19 s
        assert trio.current_time() - start == pytest.approx(19, abs=0.1)
        assert p.nd_a.faults.dropped == 8


async def test_connect_host_unreachable(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(**cfg()) as p:
        cl = p.sa.socket(A, S)
        with err(errno.EHOSTUNREACH):
            await cl.connect(("10.0.0.99", 80))                 # ARP never answers
        with err(errno.ENETUNREACH):
            await p.sa.socket(A, S).connect(("192.0.2.1", 80))  # no route


async def test_send_backpressure_and_recv_eof(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(**cfg()) as p:
        srv, cl, conn = await connected(p)
        cl.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        # nobody reads: the peer's window and our send buffer fill, then send waits
        total = 0
        with trio.move_on_after(2):
            while True:
                total += await cl.send(b"x" * 4096)
        assert 32768 <= total < 200_000
        # the last send waits for a third of the buffer free (Linux sk_stream_is_writeable)
        assert cl._pcb.snd.space() < cl._pcb.snd.capacity // 3
        got = 0
        while got < total:
            got += len(await conn.recv(65536))
        assert got == total
        cl.close()
        assert await conn.recv(100) == b""
        assert await conn.recv(100) == b""


async def test_peer_reset_then_epipe(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(**cfg()) as p:
        srv, cl, conn = await connected(p)
        await cl.sendall(b"unread")
        await trio.sleep(0.1)
        conn.close()                                            # unread data: RST, not FIN (RFC 2525)
        await trio.sleep(0.1)
        assert p.sb.tcp.stats.out_rsts == 1
        with err(errno.ECONNRESET):
            await cl.recv(10)
        with err(errno.EPIPE):
            await cl.send(b"more")
        assert await cl.recv(10) == b""


async def test_linger_zero_resets(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(**cfg()) as p:
        srv, cl, conn = await connected(p)
        cl.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        cl.close()
        await trio.sleep(0.1)
        with err(errno.ECONNRESET):
            await conn.recv(10)
        assert not p.sa.tcp.conns                               # no TIME-WAIT after an abort


async def test_half_close_both_ways(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(**cfg()) as p:
        srv, cl, conn = await connected(p)
        await cl.sendall(b"request")
        cl.shutdown(socket.SHUT_WR)
        with err(errno.EPIPE):
            await cl.send(b"x")
        assert await conn.recv(100) == b"request"
        assert await conn.recv(100) == b""                      # EOF, but conn can still send
        await conn.sendall(b"response" * 1000)
        conn.close()
        data = b""
        while chunk := await cl.recv(65536):
            data += chunk
        assert data == b"response" * 1000
        assert cl._pcb.state == State.TIME_WAIT
        await trio.sleep(1.1)
        assert cl._pcb.state == State.CLOSED


async def test_simultaneous_close(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks("rawip", latency=0.01, **cfg()) as p:
        srv, cl, conn = await connected(p)
        cl.shutdown(socket.SHUT_WR)
        conn.shutdown(socket.SHUT_WR)                           # both FINs cross on the wire
        await trio.sleep(0.005)
        assert cl._pcb.state == State.FIN_WAIT_1 and conn._pcb.state == State.FIN_WAIT_1
        await trio.sleep(0.1)
        # RFC 9293 §3.6 case 2: CLOSING on both sides, then TIME-WAIT on both
        assert cl._pcb.state == State.TIME_WAIT and conn._pcb.state == State.TIME_WAIT


async def test_backlog_and_syn_cookies(autojump_clock: trio.testing.MockClock) -> None:
    """Backlog 2, five clients at once: two fit the SYN queue, the rest are answered with
    SYN cookies; the handshake ACKs that find the accept queue full are dropped, and each
    client's data segment (its ACK carries the cookie) completes the connection later."""
    async with two_stacks(**cfg()) as p:
        srv = await listener(p.sb, backlog=2)
        clients = [p.sa.socket(A, S) for _ in range(5)]

        async def client(c: Any, i: int) -> None:
            await c.connect((IP_B, 5000))
            await c.sendall(b"hi%d" % i)

        accepted = []
        async with trio.open_nursery() as n:
            for i, c in enumerate(clients):
                n.start_soon(client, c, i)
            await trio.sleep(0.01)
            for _ in range(5):
                with trio.fail_after(30):
                    accepted.append((await srv.accept())[0])
        st = p.sb.tcp.stats
        assert st.syncookies_sent == 3 and st.syncookies_recv == 3 and st.listen_overflows > 0
        got = sorted([await a.recv(10) for a in accepted])
        assert got == [b"hi%d" % i for i in range(5)]
        cookie_conns = [a for a in accepted if a._pcb.cookie]
        assert len(cookie_conns) == 3 and all(not a._pcb.ts_ok for a in cookie_conns)


async def test_listener_close_resets_queued(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(**cfg()) as p:
        srv = await listener(p.sb)
        cl = p.sa.socket(A, S)
        await cl.connect((IP_B, 5000))
        srv.close()                                             # never accepted
        await trio.sleep(0.1)
        with err(errno.ECONNRESET):
            await cl.recv(10)


async def test_cancelled_connect_leaves_socket_reusable(autojump_clock: trio.testing.MockClock) -> None:
    def wrap(a: MemoryNdd) -> FaultInjector:
        return FaultInjector(a, drop=1.0, direction="out")
    async with two_stacks("rawip", wrap_a=wrap, **cfg()) as p:
        cl = p.sa.socket(A, S)
        with trio.move_on_after(0.5):
            await cl.connect((IP_B, 5000))
        assert cl.getsockname()[1] in EPHEMERAL
        with err(errno.ENOTCONN):
            cl.getpeername()
        assert not p.sa.tcp.conns
        p.nd_a.p["drop"] = 0.0
        await listener(p.sb)
        await cl.connect((IP_B, 5000))
        assert cl.getpeername() == (IP_B, 5000)


async def test_keepalive_detects_dead_peer(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks("rawip", wrap_a=lambda a: FaultInjector(a, direction="in"), **cfg()) as p:
        srv, cl, conn = await connected(p)
        cl.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        cl.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 10)
        cl.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 2)
        cl.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        assert cl.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
        await trio.sleep(11)
        assert cl._pcb.state == State.ESTABLISHED              # probes answered
        p.nd_a.p["drop"] = 1.0                                 # the peer goes silent
        start = trio.current_time()
        with err(errno.ETIMEDOUT):
            await cl.recv(10)
        assert 10 + 3 * 2 - 1 <= trio.current_time() - start <= 10 + 4 * 2 + 1
        assert p.sa.tcp.stats.keepalive_drops == 1


async def test_nodelay_and_options(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(**cfg()) as p:
        srv, cl, conn = await connected(p)
        assert cl.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        cl.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert cl.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert cl.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == S
        assert cl.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        assert cl.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 1500 - 40 - 12   # timestamps on
        assert cl.getsockopt(socket.IPPROTO_TCP, 13, 16).rstrip(b"\0") == b"cubic"
        cl.setsockopt(socket.IPPROTO_TCP, 13, b"reno")
        assert cl.tcp_info()["congestion"] == "reno"
        with err(errno.ENOENT):
            cl.setsockopt(socket.IPPROTO_TCP, 13, b"nosuch")
        info = cl.getsockopt(socket.IPPROTO_TCP, 11, 104)
        assert len(info) == 104 and info[0] == 1               # tcpi_state TCP_ESTABLISHED
        assert cl.tcp_info()["state_name"] == "ESTABLISHED"


async def test_nagle_coalesces_small_writes(autojump_clock: trio.testing.MockClock) -> None:
    """RFC 896: with data outstanding, small writes wait and leave together; TCP_NODELAY
    sends each at once."""
    async with two_stacks("rawip", latency=0.05, **cfg()) as p:
        srv, cl, conn = await connected(p)
        counts = {}
        for nodelay in (0, 1):
            cl.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, nodelay)
            before = p.sa.tcp.stats.out_segs
            for _ in range(20):
                await cl.send(b"k")
            await trio.sleep(0.5)
            counts[nodelay] = p.sa.tcp.stats.out_segs - before
            got = b""
            while len(got) < 20:
                got += await conn.recv(100)
        assert counts[0] <= 3 and counts[1] >= 20


async def test_bind_rules(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(**cfg()) as p:
        a = p.sb.socket(A, S)
        a.bind(("", 6000))
        with err(errno.EINVAL):
            a.bind(("", 6001))
        b = p.sb.socket(A, S)
        with err(errno.EADDRINUSE):
            b.bind((IP_B, 6000))
        with err(errno.EADDRNOTAVAIL):
            b.bind(("10.9.9.9", 0))
        a.listen(1)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with err(errno.EADDRINUSE):
            b.bind(("", 6000))                                  # REUSEADDR never shares with a listener
        a.close()
        b.bind(("", 6000))


async def test_time_wait_then_rebind_with_reuseaddr(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(**cfg()) as p:
        srv, cl, conn = await connected(p)
        srv.close()
        conn.close()                                            # b closes first: b holds TIME-WAIT
        assert await cl.recv(10) == b""
        cl.close()
        await trio.sleep(0.1)
        assert conn._pcb.state == State.TIME_WAIT
        again = p.sb.socket(A, S)
        with err(errno.EADDRINUSE):
            again.bind(("", 5000))
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("", 5000))
        again.listen(1)


async def test_rebind_a_listening_port_an_accepted_connection_holds(autojump_clock: trio.testing.MockClock) -> None:
    """Linux: the accepted socket is a clone of the listener, SO_REUSEADDR included, so once
    the listener is closed a new one with SO_REUSEADDR binds the port while the accepted
    connection still holds it (issue 14, point 11; tunstack said EADDRINUSE) -- and one
    without SO_REUSEADDR still gets EADDRINUSE."""
    async with two_stacks(**cfg()) as p:
        srv = p.sb.socket(A, S)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("", 5005))
        srv.listen(4)
        cl = p.sa.socket(A, S)
        await cl.connect((IP_B, 5005))
        conn, _ = await srv.accept()
        assert conn.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        srv.close()
        plain = p.sb.socket(A, S)
        with err(errno.EADDRINUSE):
            plain.bind(("", 5005))
        again = p.sb.socket(A, S)
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("", 5005))
        again.listen(4)
        await cl.send(b"still")                                 # the accepted connection works on
        assert await conn.recv(10) == b"still"


async def test_tcp_maxseg_before_connect_and_listen_is_kept(autojump_clock: trio.testing.MockClock) -> None:
    """TCP_MAXSEG set before connect()/listen() is what the SYN (or SYN-ACK) offers -- the
    route's MSS never overrides it -- and it bounds what that side sends (Linux user_mss;
    issue 14, point 2: the SYN said 1460 where the user asked 1100)."""
    async with two_stacks(**cfg()) as p:
        srv = p.sb.socket(A, S)
        srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1000)
        srv.bind(("", 5006))
        srv.listen(4)
        cl = p.sa.socket(A, S)
        cl.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1100)
        assert cl.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 1100
        await cl.connect((IP_B, 5006))
        conn, _ = await srv.accept()
        assert conn._pcb.peer_mss == 1100 and cl._pcb.peer_mss == 1000      # each SYN's MSS option
        ts = 12 if cl._pcb.ts_ok else 0                        # the timestamp option's room, as Linux's mss_cache
        assert cl.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 1000 - ts
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 1000 - ts
        await conn.sendall(bytes(20000))
        got = 0
        while got < 20000:
            got += len(await cl.recv(65536))
        assert p.sb.tcp.stats.out_segs >= 20000 // 1000


async def test_recv_into_peek_and_dontwait(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(**cfg()) as p:
        srv, cl, conn = await connected(p)
        with pytest.raises(BlockingIOError):
            await conn.recv(10, socket.MSG_DONTWAIT)
        await cl.sendall(b"0123456789")
        await trio.sleep(0.1)
        assert await conn.recv(4, socket.MSG_PEEK) == b"0123"
        buf = bytearray(6)
        assert await conn.recv_into(buf) == 6 and buf == b"012345"
        assert await conn.recv(100) == b"6789"


async def test_shutdown_during_connect_resets_it(autojump_clock: trio.testing.MockClock) -> None:
    """Linux inet_shutdown in SYN-SENT: the attempt is dropped, connect() gets ECONNRESET,
    the auto-bound name stays and the socket may connect again."""
    def wrap(a: MemoryNdd) -> FaultInjector:
        return FaultInjector(a, drop=1.0, direction="out")
    async with two_stacks("rawip", wrap_a=wrap, **cfg()) as p:
        cl = p.sa.socket(A, S)
        outcome: list[int] = []

        async def connect() -> None:
            try:
                await cl.connect((IP_B, 5000))
            except OSError as exc:
                outcome.append(exc.errno or 0)

        async with trio.open_nursery() as n:
            n.start_soon(connect)
            await trio.sleep(0.5)
            cl.shutdown(socket.SHUT_RDWR)
        assert outcome == [errno.ECONNRESET]
        assert cl.getsockname()[1] in EPHEMERAL and not p.sa.tcp.conns
        p.nd_a.p["drop"] = 0.0
        await listener(p.sb)
        await cl.connect((IP_B, 5000))
        assert cl.getpeername() == (IP_B, 5000)


async def test_shutdown_before_connect_is_enotconn_yet_sticks(autojump_clock: trio.testing.MockClock) -> None:
    """Linux inet_shutdown on a CLOSE socket: ENOTCONN, but sk_shutdown |= how all the same --
    the connection made later cannot send (EPIPE, and no FIN goes out for it) and an empty
    recv is b"" at once; a connect that fails clears it (tcp_disconnect)."""
    async with two_stacks(**cfg()) as p:
        srv = await listener(p.sb)
        wr, rd, retry = p.sa.socket(A, S), p.sa.socket(A, S), p.sa.socket(A, S)
        with err(errno.ENOTCONN):
            wr.shutdown(socket.SHUT_WR)
        await wr.connect((IP_B, 5000))
        conn, _ = await srv.accept()
        with err(errno.EPIPE):
            await wr.send(b"x")
        with trio.move_on_after(1) as waited:
            await conn.recv(10)
        assert waited.cancelled_caught                       # no FIN: the peer still waits
        with err(errno.ENOTCONN):
            rd.shutdown(socket.SHUT_RD)
        await rd.connect((IP_B, 5000))
        conn2, _ = await srv.accept()
        assert await rd.recv(10) == b""                       # nothing queued: EOF at once
        await conn2.send(b"abc")
        await trio.sleep(0.1)
        assert await rd.recv(10) == b"abc"                    # data still comes first
        with err(errno.ENOTCONN):
            retry.shutdown(socket.SHUT_RDWR)
        with err(errno.ECONNREFUSED):
            await retry.connect((IP_B, 5001))
        await retry.connect((IP_B, 5000))
        assert await retry.send(b"ok") == 2


async def test_detach_closes_the_socket_not_the_connection(autojump_clock: trio.testing.MockClock) -> None:
    """Socket.detach (the gateway's splices take a stack socket's pcb so): the socket is closed
    -- EBADF, a parked reader woken -- while the connection lives on, driven through the
    protocol's user requests, until its new holder detaches it from the protocol."""
    async with two_stacks(**cfg()) as p:
        srv = await listener(p.sb)
        cl = p.sa.socket(A, S)
        await cl.connect((IP_B, 5000))
        conn, _ = await srv.accept()
        woken: list[BaseException] = []

        async def reader() -> None:
            try:
                await conn.recv(10)
            except OSError as exc:
                woken.append(exc)

        async with trio.open_nursery() as n:
            n.start_soon(reader)
            await trio.sleep(0.01)
            pcb = conn.detach()
        assert [e.errno for e in woken if isinstance(e, OSError)] == [errno.EBADF]
        with err(errno.EBADF):
            await conn.send(b"x")
        ops = conn._ops
        upcalls: list[None] = []
        ops.set_upcall(pcb, lambda: upcalls.append(None))
        assert ops.send(pcb, memoryview(b"through the pcb"), None, p.sb.now()) == 15
        assert await cl.recv(100) == b"through the pcb"
        await cl.sendall(b"back")
        await trio.sleep(0.1)
        assert upcalls and ops.recv(pcb, 100, False, p.sb.now()) == (b"back", None)
        ops.detach(pcb, p.sb.now())                              # now the FIN
        assert await cl.recv(100) == b""
