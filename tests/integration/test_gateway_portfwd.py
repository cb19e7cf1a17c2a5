"""The gateway's inbound port forwards end to end in one process (tools/gateway/portfwd.py): a
guest Stack (10.0.0.1, default route via the gateway) runs servers; the gateway Stack
(10.0.0.2, its interface transparent) forwards host ports on the kernel's loopback to them.
A client on the host's loopback is shown as the gateway address (the substitute); a client
from elsewhere -- given to the forwarder directly, as no kernel client here can have a foreign
address -- reaches the guest from its own address and port through IP_TRANSPARENT."""
from __future__ import annotations

import errno
import hashlib
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from protocols.sockopt import IPV6_TRANSPARENT
from stack.trio_compat import TrioSocket
from tools.gateway.args import AddHostFwd, parse_port_spec
from tools.gateway.policy import AddressModel
from tools.gateway.portfwd import ForwardError, PortForwarder

from .helpers import IP_A, IP_B, Pair, two_stacks

MODEL = AddressModel.from_cidr("10.0.0.0/24")     # 10.0.0.2 (stack b) the gateway
CLIENT = ("198.51.100.7", 41000)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_pair() -> int:
    """A port P with P and P + 1 both free on 127.0.0.1 (for a range forward)."""
    for _ in range(100):
        lo = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", lo + 1))
            except OSError:
                continue
        return lo
    raise AssertionError("no two adjacent free ports")


async def expect_reset(port: int) -> None:
    """A client of the forward is reset: at connect (the RST can beat the handshake's end to a
    non-blocking connect on loopback) or at its first read."""
    with trio.socket.socket() as c, pytest.raises(ConnectionResetError):
        await c.connect(("127.0.0.1", port))
        await c.recv(10)


@asynccontextmanager
async def gateway(**kw: Any) -> AsyncIterator[tuple[Pair, PortForwarder, trio.Nursery]]:
    async with two_stacks("rawip", ipv6=False) as p:
        p.ifb.transparent = True
        p.sa.add_route("0.0.0.0/0", IP_B)             # the guest's replies to any client go by the gateway
        fwd = PortForwarder(p.sb, MODEL, guest_addr=IP_A, **kw)
        async with trio.open_nursery() as nursery:
            await nursery.start(fwd.run)
            yield p, fwd, nursery
            nursery.cancel_scope.cancel()


def tcp_server(p: Pair, port: int, seen: list[tuple[str, int]], greeting: bytes = b"") -> Any:
    """A guest server: records each client's address, sends `greeting`, echoes to EOF,
    half-closes."""
    srv = p.sa.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("", port))
    srv.listen(8)

    async def one(conn: Any) -> None:
        if greeting:
            await conn.sendall(greeting)
        while data := await conn.recv(1 << 16):
            await conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        conn.close()

    async def serve() -> None:
        async with trio.open_nursery() as n:
            while True:
                conn, peer = await srv.accept()
                seen.append(peer)
                n.start_soon(one, conn)
    return serve


async def test_loopback_client_reaches_the_guest_shown_as_the_gateway() -> None:
    payload = random.Random(3).randbytes(1 << 20)
    host_port = free_port()
    async with gateway() as (p, fwd, nursery):
        seen: list[tuple[str, int]] = []
        nursery.start_soon(tcp_server(p, 8080, seen, greeting=b"hello\n"))
        entry = await fwd.add(AddHostFwd("tcp", "127.0.0.1", host_port, IP_A, 8080))
        assert entry.id == 1 and fwd.list() == [entry]
        with trio.fail_after(60):
            client = await trio.open_tcp_stream("127.0.0.1", host_port)
            got = bytearray()

            async def read() -> None:
                while data := await client.receive_some(1 << 16):
                    got.extend(data)
            async with trio.open_nursery() as n:
                n.start_soon(read)
                await client.send_all(payload)
                await client.send_eof()                    # half-close crosses the relay
            await client.aclose()
            while fwd.connections:
                await trio.sleep(0.01)
    assert hashlib.sha256(got).digest() == hashlib.sha256(b"hello\n" + payload).digest()
    assert [addr for addr, _ in seen] == [IP_B]           # the substitute: the gateway address
    s = fwd.stats
    assert (s.tcp_accepted, s.tcp_relayed, s.source_substituted, s.source_shown) == (1, 1, 1, 0)
    # each way counted as itself (they were swapped until 2026-12-07: an echo hid it)
    assert (s.octets_to_guest, s.octets_to_client) == (len(payload), 6 + len(payload))
    assert fwd.budget.in_use == 0


async def test_a_foreign_client_is_shown_to_the_guest_as_itself() -> None:
    async with gateway(host_local=lambda addr: False) as (p, fwd, nursery):
        seen: list[tuple[str, int]] = []
        nursery.start_soon(tcp_server(p, 8080, seen))
        entry = await fwd.add(AddHostFwd("tcp", "127.0.0.1", free_port(), IP_A, 8080))
        with trio.fail_after(30):
            guest = await fwd._connect_guest(entry, CLIENT)
            assert guest is not None
            assert guest.getsockname() == CLIENT
            await guest.send(b"ping")
            assert await guest.recv(100) == b"ping"
            # the same client port again while the first connection lives: another port, same address
            again = await fwd._connect_guest(entry, CLIENT)
            assert again is not None and again.getsockname()[0] == CLIENT[0] and again.getsockname()[1] != CLIENT[1]
            guest.close()
            again.close()
    assert seen[0] == CLIENT and seen[1][0] == CLIENT[0]
    assert fwd.stats.source_shown == 2
    # the gateway stack took the guest's replies by the 4-tuple: nothing reached a forwarder
    assert p.sb.tcp.stats.forward_requests == 0


async def test_refused_guest_port_resets_the_client() -> None:
    host_port = free_port()
    async with gateway() as (p, fwd, nursery):
        await fwd.add(AddHostFwd("tcp", "127.0.0.1", host_port, IP_A, 9))     # nothing listens on 9
        with trio.fail_after(30):
            await expect_reset(host_port)
            while fwd.connections:
                await trio.sleep(0.01)
    assert fwd.stats.tcp_guest_refused == 1 and fwd.stats.tcp_relayed == 0


async def test_connections_beyond_the_bound_are_reset_and_counted() -> None:
    host_port = free_port()
    async with gateway(max_connections=1) as (p, fwd, nursery):
        seen: list[tuple[str, int]] = []
        nursery.start_soon(tcp_server(p, 8080, seen))
        await fwd.add(AddHostFwd("tcp", "127.0.0.1", host_port, IP_A, 8080))
        with trio.fail_after(30):
            first = await trio.open_tcp_stream("127.0.0.1", host_port)
            await first.send_all(b"a")
            assert await first.receive_some(10) == b"a"           # relayed: the one slot taken
            await expect_reset(host_port)
            await first.send_all(b"b")
            assert await first.receive_some(10) == b"b"           # the existing one goes on
            await first.aclose()
    assert fwd.stats.tcp_refused_full == 1 and fwd.stats.tcp_relayed == 1


async def test_udp_forward_per_client_flows_replies_and_expiry() -> None:
    host_port = free_port(socket.SOCK_DGRAM)
    async with gateway(udp_one_way=0.3, udp_two_way=0.3) as (p, fwd, nursery):
        guest = p.sa.socket(socket.AF_INET, socket.SOCK_DGRAM)
        guest.bind(("", 5353))
        peers: list[tuple[str, int]] = []

        async def echo() -> None:
            while True:
                data, peer = await guest.recvfrom(65535)
                peers.append(peer)
                await guest.sendto(data.upper(), peer)
        nursery.start_soon(echo)
        await fwd.add(AddHostFwd("udp", "127.0.0.1", host_port, IP_A, 5353))
        clients = [trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        with trio.fail_after(30):
            for i, c in enumerate(clients):
                await c.connect(("127.0.0.1", host_port))
                for size in (1, 1400, 8000):
                    msg = bytes([97 + i]) * size
                    await c.send(msg)
                    assert await c.recv(65535) == msg.upper()
            assert fwd.udp_flows == 2 and fwd.stats.udp_flows_opened == 2
            while fwd.udp_flows:                               # idle past the timeout: gone
                await trio.sleep(0.05)
            await clients[0].send(b"again")                    # a new flow for the same client
            assert await clients[0].recv(100) == b"AGAIN"
        for c in clients:
            c.close()
    assert fwd.stats.udp_flows_expired == 2 and fwd.stats.udp_flows_opened == 3
    assert {addr for addr, _ in peers} == {IP_B}              # loopback clients: the substitute
    assert len({port for _, port in peers[:6]}) == 2          # one guest-side flow per client
    assert fwd.stats.udp_to_guest == fwd.stats.udp_to_client == 7


async def test_udp_flows_are_bounded() -> None:
    host_port = free_port(socket.SOCK_DGRAM)
    async with gateway(max_udp_flows=1) as (p, fwd, nursery):
        guest = p.sa.socket(socket.AF_INET, socket.SOCK_DGRAM)
        guest.bind(("", 5353))
        await fwd.add(AddHostFwd("udp", "127.0.0.1", host_port, IP_A, 5353))
        a, b = (trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
        with trio.fail_after(30):
            await a.sendto(b"1", ("127.0.0.1", host_port))
            assert (await guest.recvfrom(100))[0] == b"1"
            await b.sendto(b"2", ("127.0.0.1", host_port))
            while not fwd.stats.udp_refused_full:
                await trio.sleep(0.01)
            await a.sendto(b"3", ("127.0.0.1", host_port))
            assert (await guest.recvfrom(100))[0] == b"3"     # the existing flow goes on
        a.close()
        b.close()
    assert fwd.stats.udp_refused_full == 1 and fwd.udp_flows == 0


async def test_table_add_spec_remove_and_errors() -> None:
    lo = free_pair()
    async with gateway() as (p, fwd, nursery):
        seen: list[tuple[str, int]] = []
        nursery.start_soon(tcp_server(p, 7000, seen))
        nursery.start_soon(tcp_server(p, 7001, seen))
        made = await fwd.add_spec(parse_port_spec("tcp", f"127.0.0.1/{lo}-{lo + 1}:7000-7001"))
        assert [(e.host_port, e.guest_port) for e in made] == [(lo, 7000), (lo + 1, 7001)]
        with trio.fail_after(30):
            for port in (lo, lo + 1):
                c = await trio.open_tcp_stream("127.0.0.1", port)
                await c.send_all(b"x")
                assert await c.receive_some(10) == b"x"
                await c.aclose()
        # the same host address and port twice: slirp4netns's error, the table unchanged
        with pytest.raises(ForwardError, match="slirp_add_hostfwd failed"):
            await fwd.add(AddHostFwd("tcp", "127.0.0.1", lo, IP_A, 7000))
        # a port some other socket holds: the bind fails, nothing is kept
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen(1)
            taken = holder.getsockname()[1]
            with pytest.raises(ForwardError, match="slirp_add_hostfwd failed"):
                await fwd.add(AddHostFwd("tcp", "127.0.0.1", taken, IP_A, 7000))
        assert len(fwd.list()) == 2
        assert fwd.remove(made[0].id) and not fwd.remove(made[0].id)
        assert [e.id for e in fwd.list()] == [made[1].id]
        with trio.socket.socket() as probe, pytest.raises(OSError) as info:
            await probe.connect(("127.0.0.1", lo))                # the listener is closed
        assert info.value.errno == errno.ECONNREFUSED
        nxt = await fwd.add(AddHostFwd("tcp", "127.0.0.1", lo, IP_A, 7000))
        assert nxt.id == made[1].id + 1                          # ids never reused
        with pytest.raises(ForwardError, match="auto"):
            await fwd.add_spec(parse_port_spec("tcp", "auto"))
        with pytest.raises(ForwardError, match="too many forwards") as too_many:
            await fwd.add_spec(parse_port_spec("tcp", "all"))            # every non-ephemeral port
        assert "asks for 37303 ports" in str(too_many.value) and len(fwd.list()) == 2
        assert await fwd.add_spec(parse_port_spec("tcp", "none")) == []


async def test_ipv6_transparent_connect_from_a_foreign_source() -> None:
    """IPV6_TRANSPARENT end to end: the gateway Stack connects to an IPv6 guest from an
    address it does not have; the guest's replies come back by the transparent interface and
    reach the connection by its 4-tuple (Tcp.input6), never the forwarder."""
    foreign = ("2001:db8:77::7", 41000)
    async with two_stacks("rawip", ipv6=True) as p:
        p.ifb.transparent = True
        p.sa.add_address(p.ifa, "fd00:1::1/64", dad=False)
        p.sb.add_address(p.ifb, "fd00:1::2/64", dad=False)
        p.sa.add_route("::/0", "fd00:1::2")
        held: list[object] = []
        p.sb.tcp.forwarder = held.append                   # a gateway's hook: it must see nothing
        seen: list[tuple[str, int]] = []
        srv = p.sa.socket(socket.AF_INET6, socket.SOCK_STREAM)
        srv.bind(("::", 8080))
        srv.listen(2)
        with trio.fail_after(30):
            plain = p.sb.socket(socket.AF_INET6, socket.SOCK_STREAM)
            with pytest.raises(OSError) as info:
                plain.bind(foreign)
            assert info.value.errno == errno.EADDRNOTAVAIL
            plain.close()
            c = TrioSocket(p.sb.socket(socket.AF_INET6, socket.SOCK_STREAM))
            c.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
            await c.bind(foreign)
            async with trio.open_nursery() as n:
                async def accept() -> None:
                    conn, peer = await srv.accept()
                    seen.append(peer[:2])
                    await conn.sendall(await conn.recv(100))
                    conn.close()
                n.start_soon(accept)
                await c.connect(("fd00:1::1", 8080))
                await c.send(b"six")
                assert await c.recv(100) == b"six"
            c.close()
    assert seen == [foreign] and held == []


async def test_a_spec_without_an_address_listens_on_both_families() -> None:
    """-t PORT:GUEST binds [::]:PORT dual-stack, as pasta binds both: a client over IPv4
    (v4-mapped on the socket) and one over IPv6 loopback both reach the guest, both shown as
    the gateway address."""
    port = free_port()
    async with gateway() as (p, fwd, nursery):
        seen: list[tuple[str, int]] = []
        nursery.start_soon(tcp_server(p, 8080, seen))
        (entry,) = await fwd.add_spec(parse_port_spec("tcp", f"{port}:8080"))
        assert (entry.host_addr, entry.host_port, entry.guest_addr) == ("::", port, IP_A)
        with trio.fail_after(30):
            for host in ("127.0.0.1", "::1"):
                c = await trio.open_tcp_stream(host, port)
                await c.send_all(host.encode())
                assert await c.receive_some(100) == host.encode()
                await c.aclose()
    assert [addr for addr, _ in seen] == [IP_B, IP_B] and fwd.stats.source_substituted == 2
