"""Issue 14's socket-level rules between two Stacks: a blocked send() wakes as Linux's
sk_stream_write_space would (a third of the send buffer free), TCP_NOTSENT_LOWAT holds
writers back, and the stream socket's ioctl answers SIOCINQ/SIOCOUTQ."""
from __future__ import annotations

import errno
import socket

import pytest
import trio
import trio.testing

from protocols.tcp.usrreq import SIOCINQ, SIOCOUTQ, SIOCOUTQNSEQ, TCP_CM_INQ, TCP_INQ

from .helpers import IP_B, two_stacks
from .test_tcp_sockets import cfg, connected

CONFIG = cfg()


async def test_a_blocked_send_wakes_with_a_third_of_the_buffer_free(
        autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(config_a=CONFIG["config_a"], config_b=CONFIG["config_b"]) as p:
        srv, cl, conn = await connected(p)
        cl.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        capacity = cl._pcb.snd.capacity
        with pytest.raises(BlockingIOError):     # nobody reads: the window and the buffer fill
            for _ in range(1000):
                await cl.send(bytes(4096), socket.MSG_DONTWAIT)
                await trio.sleep(0.01)
        assert cl._pcb.snd.space() == 0
        sizes: list[int] = []

        async def writer() -> None:
            sizes.append(await cl.send(bytes(capacity)))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            while not sizes:                     # the reader drains a segment at a time
                await conn.recv(1000)
                await trio.sleep(0.01)
        # Linux sk_stream_is_writeable: woken only once free >= queued / 2, i.e. a third free
        assert sizes[0] >= capacity // 3
        assert not cl.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)


async def test_notsent_lowat_holds_a_writer_back(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(config_a=CONFIG["config_a"], config_b=CONFIG["config_b"]) as p:
        srv, cl, conn = await connected(p)
        cl.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, 2000)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with pytest.raises(BlockingIOError):     # the peer's window fills: data stays unsent,
            for _ in range(100):                 # and sending stops at the mark (Linux
                await cl.send(bytes(1000), socket.MSG_DONTWAIT)    # sk_stream_memory_free)
                await trio.sleep(0.1)
        assert 2000 <= cl.tcp_info()["notsent_bytes"] < 3000
        with trio.move_on_after(1) as scope:
            await cl.wait_writable()
        assert scope.cancelled_caught            # 2 * notsent >= 2000: not writable
        got = 0
        while got < 4096:
            got += len(await conn.recv(65536))
        await cl.wait_writable()
        assert 2 * cl.tcp_info()["notsent_bytes"] < 2000


async def test_ioctl_siocinq_siocoutq(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks(config_a=CONFIG["config_a"], config_b=CONFIG["config_b"]) as p:
        srv, cl, conn = await connected(p)
        await cl.send(bytes(1234))
        assert cl.ioctl(SIOCOUTQ) in (0, 1234)   # ACKed or not yet, depending on the link
        await trio.sleep(0.5)
        assert conn.ioctl(SIOCINQ) == 1234
        assert cl.ioctl(SIOCOUTQ) == cl.ioctl(SIOCOUTQNSEQ) == 0
        with pytest.raises(OSError) as exc:
            srv.ioctl(SIOCINQ)
        assert exc.value.errno == errno.EINVAL
        with pytest.raises(OSError) as exc:
            cl.ioctl(0x1234)
        assert exc.value.errno == errno.ENOTTY


async def test_recvmsg_carries_tcp_inq(autojump_clock: trio.testing.MockClock) -> None:
    """TCP_INQ's control message (Linux tcp_recvmsg, tcp_inq_hint): the bytes still queued,
    plus one once the FIN is in; none without TCP_INQ; MSG_CTRUNC when the buffer is short."""
    async with two_stacks(config_a=CONFIG["config_a"], config_b=CONFIG["config_b"]) as p:
        _, cl, conn = await connected(p)
        await cl.send(bytes(300))
        await trio.sleep(0.5)
        assert await conn.recvmsg(100, 64) == (bytes(100), [], 0, None)
        conn.setsockopt(socket.IPPROTO_TCP, TCP_INQ, 1)
        inq = (socket.IPPROTO_TCP, TCP_CM_INQ)
        le = "little"
        assert await conn.recvmsg(100, socket.CMSG_SPACE(4)) == (bytes(100), [(*inq, (100).to_bytes(4, le))], 0, None)
        assert await conn.recvmsg(10, 18) == (bytes(10), [(*inq, (90).to_bytes(4, le)[:2])], socket.MSG_CTRUNC, None)
        assert await conn.recvmsg(10) == (bytes(10), [], socket.MSG_CTRUNC, None)
        cl.shutdown(socket.SHUT_WR)
        await trio.sleep(0.5)
        assert await conn.recvmsg(10, 64) == (bytes(10), [(*inq, (71).to_bytes(4, le))], 0, None)
        assert await conn.recvmsg(100, 64) == (bytes(70), [(*inq, (1).to_bytes(4, le))], 0, None)
        assert await conn.recvmsg(100, 64) == (b"", [(*inq, (1).to_bytes(4, le))], 0, None)


async def test_defer_accept_waits_for_data(autojump_clock: trio.testing.MockClock) -> None:
    """TCP_DEFER_ACCEPT: the client's handshake completes (its ACK is dropped and counted),
    accept() waits until the first data, which the accepted socket reads."""
    async with two_stacks(config_a=CONFIG["config_a"], config_b=CONFIG["config_b"]) as p:
        srv = p.sb.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 10)
        assert srv.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) == 15
        srv.bind(("", 5000))
        srv.listen(8)
        cl = p.sa.socket(socket.AF_INET, socket.SOCK_STREAM)
        await cl.connect((IP_B, 5000))
        with trio.move_on_after(5) as scope:
            await srv.accept()
        assert scope.cancelled_caught and p.sb.tcp.stats.defer_accept_drops == 1
        await cl.send(b"hello")
        conn, _ = await srv.accept()
        assert await conn.recv(100) == b"hello"
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT) == 0    # not inherited
