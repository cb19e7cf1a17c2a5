"""The rest of the datagram socket API, UDP's receive checks and its offloaded send checksum.

Two Stacks over a memory link (tests/integration/helpers.py).  Where CPython's own
socket module decides an outcome (argument errors), a real AF_UNIX datagram socketpair
-- no network involved -- is asked the same question and the answers compared.
"""
from __future__ import annotations

import errno
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from drivers.memlink import MemoryNdd
from ndd.checksum import checksum, pseudo_header_sum, verify
from ndd.gso import finish_checksum
from ndd.ndd import Ndd
from ndd.pktbuf import PacketBuffer
from protocols.addr import ip_to_int
from protocols.udp.wire import udp_checksum
from stack.socket import Socket
from stack.stack import Stack, StackConfig

from .helpers import IP_A, IP_B, MAC_A, MAC_B, Pair, two_stacks

D = socket.SOCK_DGRAM
A = socket.AF_INET
SOL = socket.SOL_SOCKET
EPHEMERAL = range(32768, 61000)
IPPROTO_UDP = 17


def err(code: int) -> Any:
    """pytest.raises for an OSError with exactly this errno."""
    return pytest.raises(OSError, match=rf"^\[Errno {code}\]")


@asynccontextmanager
async def pair(kind: str = "ether") -> AsyncIterator[Pair]:
    async with two_stacks(kind) as p:
        await p.sa.ping(IP_B)     # ARP settled
        yield p


async def bound(p: Pair, port: int = 7000) -> tuple[Socket, Socket]:
    """A server on b:port and a client on a, connected to it."""
    server = p.sb.socket(A, D)
    server.bind(("", port))
    client = p.sa.socket(A, D)
    await client.connect((IP_B, port))
    return server, client


async def recv_within(sock: Socket, n: int = 65535, timeout: float = 1.0) -> tuple[bytes, Any] | None:
    with trio.move_on_after(timeout):
        return await sock.recvfrom(n)
    return None


def python_outcome(call: Callable[[socket.socket], Any]) -> tuple[type, str]:
    """What CPython's socket module does with the same arguments (on an idle AF_UNIX datagram pair)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        try:
            call(a)
        except Exception as exc:
            return type(exc), str(exc)
    raise AssertionError("CPython accepted the call")


# --- sendall --------------------------------------------------------------------------------
async def test_sendall_sends_one_datagram(autojump_clock: trio.testing.MockClock) -> None:
    async with pair() as p:
        server, client = await bound(p)
        name = client.getsockname()
        data = bytes(range(256)) * 12                       # 3072 bytes: fragmented by IPv4
        assert await client.sendall(bytearray(data)) is None
        assert await recv_within(server) == (data, name)
        await client.sendall(memoryview(data)[100:200])
        assert await recv_within(server) == (data[100:200], name)
        # CPython's sendall is a do ... while: b"" still sends one empty datagram (as on Linux)
        before = p.sa.stats()["udp"]["out_datagrams"]
        await client.sendall(b"")
        assert await recv_within(server) == (b"", name)
        assert p.sa.stats()["udp"]["out_datagrams"] == before + 1
        assert await recv_within(server, timeout=0.5) is None   # boundaries kept: nothing more


async def test_sendall_errors(autojump_clock: trio.testing.MockClock) -> None:
    async with pair() as p:
        s = p.sa.socket(A, D)
        with err(errno.EDESTADDRREQ):
            await s.sendall(b"x")
        await s.connect((IP_B, 7000))
        with err(errno.EMSGSIZE):
            await s.sendall(bytes(65508))
        with pytest.raises(TypeError):
            await s.sendall("text")   # type: ignore[arg-type]


# --- recv_into / recvfrom_into ----------------------------------------------------------------
async def test_recv_into_and_recvfrom_into(autojump_clock: trio.testing.MockClock) -> None:
    async with pair() as p:
        server, client = await bound(p)
        name = client.getsockname()
        buf = bytearray(16)
        await client.send(b"hello world")
        assert await server.recv_into(buf) == 11 and buf == b"hello world" + bytes(5)
        # a buffer shorter than the datagram: the rest of the datagram is lost, as on Linux
        small = bytearray(4)
        await client.send(b"truncated datagram")
        await client.send(b"next")
        assert await server.recv_into(small) == 4 and small == b"trun"
        assert await server.recv_into(small) == 4 and small == b"next"
        # nbytes caps what is written
        buf = bytearray(8)
        await client.send(b"abcdef")
        assert await server.recv_into(buf, 2) == 2 and buf == b"ab" + bytes(6)
        # into a slice of a larger buffer
        whole = bytearray(8)
        await client.send(b"xyz")
        assert await server.recv_into(memoryview(whole)[2:]) == 3 and whole == b"\0\0xyz\0\0\0"
        # recvfrom_into also says who sent it
        buf = bytearray(8)
        await client.send(b"from")
        assert await server.recvfrom_into(buf) == (4, name) and buf[:4] == b"from"
        await client.send(b"0123456789")
        assert await server.recvfrom_into(buf, 3) == (3, name) and buf[:3] == b"012"
        # MSG_PEEK leaves the datagram; MSG_DONTWAIT on an empty queue would block
        await client.send(b"peek")
        assert await server.recv_into(buf, 0, socket.MSG_PEEK) == 4
        assert await server.recvfrom_into(buf) == (4, name) and buf[:4] == b"peek"
        with pytest.raises(BlockingIOError):
            await server.recv_into(buf, 0, socket.MSG_DONTWAIT)
        with pytest.raises(BlockingIOError):
            await server.recvfrom_into(buf, 0, socket.MSG_DONTWAIT)


INTO_BAD_ARGUMENTS: list[tuple[str, Callable[[], Any], tuple[Any, ...]]] = [
    ("recv_into", lambda: bytearray(4), (-1,)),
    ("recv_into", lambda: bytearray(4), (5,)),
    ("recvfrom_into", lambda: bytearray(4), (-1,)),
    ("recvfrom_into", lambda: bytearray(4), (5,)),
    ("recv_into", lambda: b"read-only", ()),
    ("recvfrom_into", lambda: b"read-only", ()),
    ("recv_into", lambda: "text", ()),
]


@pytest.mark.parametrize("method,make_buffer,args", INTO_BAD_ARGUMENTS)
async def test_into_bad_arguments_like_python(autojump_clock: trio.testing.MockClock, method: str,
                                              make_buffer: Callable[[], Any], args: tuple[Any, ...]) -> None:
    expected = python_outcome(lambda s: getattr(s, method)(make_buffer(), *args))
    assert expected[0] in (ValueError, TypeError)
    async with pair() as p:
        server, client = await bound(p)
        await client.send(b"still here")
        await trio.sleep(0.1)
        with pytest.raises(expected[0]) as exc:
            await getattr(server, method)(make_buffer(), *args)
        assert str(exc.value) == expected[1]
        # the argument error came before anything was received
        assert await server.recv(100, socket.MSG_DONTWAIT) == b"still here"


# --- closing with `with` ----------------------------------------------------------------------
async def test_with_closes_then_ebadf(autojump_clock: trio.testing.MockClock) -> None:
    async with pair() as p:
        with p.sa.socket(A, D) as s:
            assert isinstance(s, Socket)
            s.bind(("", 7001))
            await s.sendto(b"x", (IP_B, 9))
        for call in (lambda: s.getsockname(), lambda: s.getpeername(), lambda: s.bind(("", 0)),
                     lambda: s.getsockopt(SOL, socket.SO_KEEPALIVE),
                     lambda: s.setsockopt(SOL, socket.SO_KEEPALIVE, 1), lambda: s.shutdown(socket.SHUT_RD)):
            with err(errno.EBADF):
                call()
        for acall in (lambda: s.sendall(b"x"), lambda: s.recv_into(bytearray(4)),
                      lambda: s.recvfrom_into(bytearray(4)), lambda: s.recvfrom(4),
                      lambda: s.wait_readable(), lambda: s.wait_writable(), lambda: s.connect((IP_B, 1))):
            with err(errno.EBADF):
                await acall()
        s.close()                                             # closing again is harmless
        # an exception leaving the block closes the socket too, and propagates
        with pytest.raises(RuntimeError), p.sa.socket(A, D) as t:
            t.bind(("", 7002))
            raise RuntimeError("boom")
        with err(errno.EBADF):
            t.getsockname()
        for port in (7001, 7002):                             # both ports are free again
            p.sa.socket(A, D).bind(("", port))


# --- readiness ----------------------------------------------------------------------------------
async def test_wait_readable_waits_for_a_datagram_without_consuming_it(
        autojump_clock: trio.testing.MockClock) -> None:
    async with pair() as p:
        server, client = await bound(p)
        woke: list[float] = []

        async def waiter() -> None:
            await server.wait_readable()
            woke.append(trio.current_time())

        with trio.fail_after(10):
            async with trio.open_nursery() as n:
                n.start_soon(waiter)
                await trio.sleep(5)
                assert woke == []                             # nothing to read: still waiting
                sent_at = trio.current_time()
                await client.send(b"ready")
        assert len(woke) == 1 and woke[0] - sent_at < 0.1
        # readable now: returns at once, and still nothing was consumed
        t0 = trio.current_time()
        await server.wait_readable()
        assert trio.current_time() == t0
        assert await server.recv(10, socket.MSG_DONTWAIT) == b"ready"


async def test_wait_readable_wakes_for_an_error_and_for_shutdown(autojump_clock: trio.testing.MockClock) -> None:
    async with pair() as p:
        s = p.sa.socket(A, D)
        await s.connect((IP_B, 9))                             # nobody listens on b:9
        with trio.fail_after(5):
            async with trio.open_nursery() as n:
                n.start_soon(s.wait_readable)
                await trio.sleep(1)
                await s.send(b"anyone?")
        assert s.getsockopt(SOL, socket.SO_ERROR) == errno.ECONNREFUSED   # reported once...
        with trio.move_on_after(1) as scope:
            await s.wait_readable()
        assert scope.cancelled_caught                          # ...so nothing is pending any more
        with trio.fail_after(5):
            async with trio.open_nursery() as n:
                n.start_soon(s.wait_readable)
                await trio.sleep(1)
                s.shutdown(socket.SHUT_RD)                     # EOF counts as readable
        assert await s.recv(10) == b""


async def test_cancelled_wait_readable_leaves_no_waiter(autojump_clock: trio.testing.MockClock) -> None:
    async with pair() as p:
        server, client = await bound(p)
        with trio.move_on_after(1) as scope:
            await server.wait_readable()
        assert scope.cancelled_caught
        assert len(server._readers) == 0
        await client.send(b"after")
        await server.wait_readable()
        assert await server.recv(10) == b"after"


async def test_wait_writable_never_waits_for_datagrams(autojump_clock: trio.testing.MockClock) -> None:
    async with pair() as p:
        s = p.sa.socket(A, D)
        t0 = trio.current_time()
        await s.wait_writable()                                # unbound, unconnected: still writable
        await s.connect((IP_B, 7000))
        await s.wait_writable()
        assert trio.current_time() == t0
        with trio.CancelScope() as scope:                      # it is a checkpoint
            scope.cancel()
            await s.wait_writable()
        assert scope.cancelled_caught


# --- options ------------------------------------------------------------------------------------
async def test_so_keepalive_on_a_datagram_socket(autojump_clock: trio.testing.MockClock) -> None:
    # Linux stores SOCK_KEEPOPEN on any socket and reads it back as 0/1; UDP never uses it
    async with pair() as p:
        s = p.sa.socket(A, D)
        assert s.getsockopt(SOL, socket.SO_KEEPALIVE) == 0
        s.setsockopt(SOL, socket.SO_KEEPALIVE, 5)
        assert s.getsockopt(SOL, socket.SO_KEEPALIVE) == 1
        assert s.getsockopt(SOL, socket.SO_KEEPALIVE, 4) == (1).to_bytes(4, "little")
        s.setsockopt(SOL, socket.SO_KEEPALIVE, 0)
        assert s.getsockopt(SOL, socket.SO_KEEPALIVE) == 0
        s.setsockopt(SOL, socket.SO_KEEPALIVE, (1).to_bytes(4, "little"))
        assert s.getsockopt(SOL, socket.SO_KEEPALIVE) == 1
        # and it sends nothing: no IP packet leaves an idle connected socket in an hour
        server, client = await bound(p, 7003)
        client.setsockopt(SOL, socket.SO_KEEPALIVE, 1)
        before = p.sa.stats()["ipv4"]["out_requests"]
        await trio.sleep(3600)
        assert p.sa.stats()["ipv4"]["out_requests"] == before


@pytest.mark.parametrize("value", [-1, -5000, -2**31, 2**31 - 1, b"\xff\xff\xff\xff"])
async def test_negative_or_huge_buffer_sizes_clamp_to_the_maximum(autojump_clock: trio.testing.MockClock,
                                                                  value: int | bytes) -> None:
    # Linux: min_t(u32, val, [rw]mem_max) * 2 -- a negative int is a huge unsigned one.
    # Checked on Linux 6.18: setsockopt(SO_RCVBUF, -1) reads back 2 * rmem_max (here 2 * 212992).
    async with pair() as p:
        s = p.sa.socket(A, D)
        s.setsockopt(SOL, socket.SO_RCVBUF, value)
        s.setsockopt(SOL, socket.SO_SNDBUF, value)
        assert s.getsockopt(SOL, socket.SO_RCVBUF) == 2 * 212992
        assert s.getsockopt(SOL, socket.SO_SNDBUF) == 2 * 212992
        s.setsockopt(SOL, socket.SO_RCVBUF, 0)                # the minimums still hold below
        s.setsockopt(SOL, socket.SO_SNDBUF, 0)
        assert (s.getsockopt(SOL, socket.SO_RCVBUF), s.getsockopt(SOL, socket.SO_SNDBUF)) == (2304, 4608)


# --- cancellation ---------------------------------------------------------------------------------
async def test_cancelled_datagram_connect_has_completed(autojump_clock: trio.testing.MockClock) -> None:
    # README "Sockets": a datagram connect completes before its first checkpoint, so it
    # cannot be cancelled half-way -- cancelled, it has still connected (and auto-bound).
    async with pair() as p:
        server = p.sb.socket(A, D)
        server.bind(("", 7000))
        s = p.sa.socket(A, D)
        frames = p.a.stats.ndd_opackets
        with trio.CancelScope() as scope:
            scope.cancel()
            await s.connect((IP_B, 7000))
            raise AssertionError("the checkpoint did not raise Cancelled")   # pragma: no cover
        assert scope.cancelled_caught
        name = s.getsockname()
        assert name[0] == IP_A and name[1] in EPHEMERAL
        assert s.getpeername() == (IP_B, 7000)
        assert p.a.stats.ndd_opackets == frames                   # still no packet left
        await s.send(b"no address needed")
        assert await recv_within(server) == (b"no address needed", name)
        # a cancelled re-connect and a cancelled disconnect have also fully happened
        with trio.CancelScope() as scope:
            scope.cancel()
            await s.connect((IP_B, 7001))
        assert scope.cancelled_caught and s.getpeername() == (IP_B, 7001)
        with trio.CancelScope() as scope:
            scope.cancel()
            await s.connect(socket.AF_UNSPEC)
        assert scope.cancelled_caught
        with err(errno.ENOTCONN):
            s.getpeername()
        with err(errno.EDESTADDRREQ):
            await s.send(b"x")


# --- UDP receive checks (protocols/udp/udp.py input), on frames written at the stack -----------------------
def ipv4_packet(src: str, dst: str, payload: bytes, proto: int = IPPROTO_UDP) -> bytes:
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                                socket.inet_aton(src), socket.inet_aton(dst)))
    struct.pack_into("!H", hdr, 10, checksum(hdr))
    return bytes(hdr) + payload


def udp_segment(sport: int, dport: int, payload: bytes, *, csum: int | None = None, length: int | None = None,
                src: str = IP_A, dst: str = IP_B) -> bytes:
    """A UDP header + payload; the checksum is computed unless `csum` is given."""
    seg = bytearray(struct.pack("!HHHH", sport, dport, 8 + len(payload) if length is None else length, 0) + payload)
    if csum is None:
        csum = udp_checksum(ip_to_int(src), ip_to_int(dst), seg)
    struct.pack_into("!H", seg, 6, csum)
    return bytes(seg)


async def test_udp_input_checks(autojump_clock: trio.testing.MockClock) -> None:
    async with pair("rawip") as p:
        server = p.sb.socket(A, D)
        server.bind(("", 7000))

        def inject(segment: bytes) -> None:
            p.b.deliver(PacketBuffer(ipv4_packet(IP_A, IP_B, segment)))

        def udp() -> dict[str, int]:
            return p.sb.stats()["udp"]

        def queued() -> list[bytes]:
            return [data for data, _ in server._pcb.queue]

        # the control: a well-formed datagram is delivered
        inject(udp_segment(5000, 7000, b"good"))
        assert queued() == [b"good"] and udp()["in_datagrams"] == 1
        assert await server.recvfrom(10) == (b"good", (IP_A, 5000))

        # a bad checksum: dropped and counted, even for a closed port (no ICMP then)
        good = udp_segment(5000, 7000, b"bad!")
        for bad in (good[:6] + bytes([good[6] ^ 0x01]) + good[7:],       # the field
                    good[:-1] + bytes([good[-1] ^ 0x80])):                # the data
            inject(bad)
        def icmp_errors() -> int:
            icmp = p.sb.stats()["icmp"]
            return icmp["out_dest_unreachs"] + icmp["out_rate_limited"]

        icmp_before = icmp_errors()
        inject(udp_segment(5000, 7999, b"closed", csum=0x1234))
        stats = udp()
        assert (stats["in_csum_errors"], stats["in_errors"], stats["in_datagrams"]) == (3, 3, 1)
        assert stats["no_ports"] == 0 and icmp_errors() == icmp_before
        assert queued() == []
        inject(udp_segment(5000, 7999, b"closed"))           # the control: that port is closed
        assert udp()["no_ports"] == 1 and icmp_errors() == icmp_before + 1

        # checksum 0: the sender computed none -- delivered unchecked (RFC 768)
        inject(udp_segment(5000, 7000, b"no checksum", csum=0))
        assert queued() == [b"no checksum"]
        # a computed checksum of 0 goes on the wire as 0xFFFF, and verifies
        body = bytearray(b"zero-sum" + bytes(2))
        struct.pack_into("!H", body, 8, checksum(udp_segment(5000, 7000, bytes(body), csum=0),
                                                 pseudo_header_sum(ip_to_int(IP_A), ip_to_int(IP_B),
                                                                   IPPROTO_UDP, 8 + len(body))))
        assert udp_checksum(ip_to_int(IP_A), ip_to_int(IP_B), udp_segment(5000, 7000, bytes(body), csum=0)) == 0xFFFF
        inject(udp_segment(5000, 7000, bytes(body), csum=0xFFFF))
        assert queued() == [b"no checksum", bytes(body)]
        assert udp()["in_csum_errors"] == 3 and udp()["in_datagrams"] == 3

        # a short header, and a length field larger than the data: in_truncated
        inject(udp_segment(5000, 7000, b"")[:4])
        inject(udp_segment(5000, 7000, b"short", length=8 + 6, csum=0))
        inject(udp_segment(5000, 7000, b"short", length=8 + 6))
        stats = udp()
        assert stats["in_truncated"] == 3 and stats["in_errors"] == 6 and stats["in_datagrams"] == 3
        assert stats["in_csum_errors"] == 3
        # a length field shorter than the data: the rest is not part of the datagram
        seg = udp_segment(5000, 7000, b"kept")
        inject(seg + b"trailing junk")
        assert queued() == [b"no checksum", bytes(body), b"kept"] and udp()["in_datagrams"] == 4
        assert p.sb.stats()["ipv4"]["in_hdr_errors"] == 0


# --- the offloaded send checksum ------------------------------------------------------------------------
class FinishingNdd(MemoryNdd):
    """A memory NDD that advertises tx_csum_offload and, like a NIC, finishes partial checksums."""

    def __init__(self, *args: Any, finish: bool = True, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.caps.tx_csum_offload = True
        self.finish = finish

    def _transmit(self, pkt: PacketBuffer) -> int:
        if self.finish:
            finish_checksum(pkt)
        return super()._transmit(pkt)


@asynccontextmanager
async def offload_pair(kind: str, finish: bool) -> AsyncIterator[tuple[Stack, Stack, FinishingNdd, MemoryNdd]]:
    async with Stack("a", StackConfig(seed=1)) as sa, Stack("b", StackConfig(seed=2)) as sb:
        a = FinishingNdd("m0", kind=kind, physaddr=MAC_A, finish=finish)
        b = MemoryNdd("m1", kind=kind, physaddr=MAC_B)
        a.peer, b.peer = b, a
        sa.add_interface(a, f"{IP_A}/24")
        sb.add_interface(b, f"{IP_B}/24")
        await sa.ping(IP_B)
        yield sa, sb, a, b


def capture_udp(nd: Ndd) -> list[PacketBuffer]:
    """Copies of the UDP frames `nd` is asked to send, as the device gets them."""
    seen: list[PacketBuffer] = []
    l2 = nd.ndd_hdrlen

    def tap(_nd: Ndd, way: str, pkt: PacketBuffer) -> None:
        view = pkt.view()
        if way == "out" and len(view) > l2 + 20 and view[l2 + 9] == IPPROTO_UDP:
            seen.append(pkt.copy())
    nd.taps.append(tap)
    return seen


@pytest.mark.parametrize("kind", ["ether", "rawip"])
@pytest.mark.parametrize("size", [0, 1, 100, 1471, 1472])
async def test_offloaded_udp_checksum_is_a_correct_partial_sum(autojump_clock: trio.testing.MockClock,
                                                               kind: str, size: int) -> None:
    async with offload_pair(kind, finish=True) as (sa, sb, a, b):
        server = sb.socket(A, D)
        server.bind(("", 7000))
        client = sa.socket(A, D)
        await client.connect((IP_B, 7000))
        seen = capture_udp(a)
        data = bytes((i * 13 + size) % 256 for i in range(size))
        await client.send(data)
        assert await recv_within(server) == (data, client.getsockname())
        assert sb.stats()["udp"]["in_csum_errors"] == 0

        assert len(seen) == 1
        pkt = seen[0]
        l2 = a.ndd_hdrlen
        frame = pkt.tobytes()
        udp_start = l2 + (frame[l2] & 0x0F) * 4
        # csum_start marks the UDP header, csum_offset its checksum field (virtio_net_hdr NEEDS_CSUM)
        assert pkt.csum_start - pkt.start == udp_start
        assert pkt.csum_offset == 6
        src, dst, length = ip_to_int(IP_A), ip_to_int(IP_B), 8 + size
        assert struct.unpack_from("!H", frame, udp_start + 4)[0] == length
        # the field holds the folded, uncomplemented pseudo-header sum
        partial = struct.unpack_from("!H", frame, udp_start + 6)[0]
        assert partial == pseudo_header_sum(src, dst, IPPROTO_UDP, length)
        # finishing it from csum_start, as the device does, gives a valid UDP checksum
        finish_checksum(pkt)
        segment = pkt.tobytes()[udp_start:]
        assert pkt.csum_start == -1
        assert verify(segment, pseudo_header_sum(src, dst, IPPROTO_UDP, length))
        field = struct.unpack_from("!H", segment, 6)[0]
        assert field == udp_checksum(src, dst, segment[:6] + b"\0\0" + segment[8:]) != 0
        assert verify(pkt.tobytes()[l2:udp_start])            # and the IP header checksum is real


async def test_offloaded_checksum_is_only_partial_on_the_wire(autojump_clock: trio.testing.MockClock) -> None:
    # a device that advertises the offload but does not finish it: the receiver must reject
    # the datagram -- the stack really left the work to the device
    async with offload_pair("ether", finish=False) as (sa, sb, a, b):
        server = sb.socket(A, D)
        server.bind(("", 7000))
        client = sa.socket(A, D)
        await client.sendto(b"partial", (IP_B, 7000))
        assert await recv_within(server) is None
        assert sb.stats()["udp"]["in_csum_errors"] == 1


async def test_fragmented_datagram_gets_a_full_software_checksum(autojump_clock: trio.testing.MockClock) -> None:
    # a partial checksum cannot be split across fragments: above the MTU the stack computes it
    async with offload_pair("ether", finish=False) as (sa, sb, a, b):
        server = sb.socket(A, D)
        server.bind(("", 7000))
        client = sa.socket(A, D)
        seen = capture_udp(a)
        data = bytes(range(256)) * 12
        await client.sendto(data, (IP_B, 7000))
        assert (await recv_within(server) or (None,))[0] == data
        assert len(seen) == 3 and all(pkt.csum_start == -1 for pkt in seen)
        assert sb.stats()["udp"]["in_csum_errors"] == 0
