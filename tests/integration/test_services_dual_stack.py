"""The services of tools/services listen on both families: with no address they bind one
AF_INET6 socket to `::` (V6ONLY 0), so an IPv4 client and an IPv6 client of another stack are
both served; an explicit address binds its own family; with IPv6 off on the links the `::`
socket still serves IPv4.  The HTTP page names an IPv4 peer as IPv4 (not ::ffff:a.b.c.d)."""
from __future__ import annotations

import socket
from functools import partial
from typing import Any

import trio
import trio.testing

from tools.services.builtin import ServiceStats, service_socket, tcp_echo, tcp_http, udp_echo

from .helpers import IP_A, IP_B, two_stacks

A6, B6 = "fd00:5::1", "fd00:5::2"


async def tcp_round_trip(st: Any, family: int, addr: tuple[str, int], data: bytes) -> bytes:
    with st.socket(family, socket.SOCK_STREAM) as s:
        await s.connect(addr)
        await s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := await s.recv(65536):
            got += chunk
    return got


async def udp_round_trip(st: Any, family: int, addr: tuple[str, int], data: bytes) -> bytes:
    with st.socket(family, socket.SOCK_DGRAM) as s:
        await s.connect(addr)
        await s.send(data)
        with trio.fail_after(5):
            return bytes(await s.recv(65535))


async def test_echo_services_answer_both_families(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks("ether") as p:
        p.sa.add_address(p.ifa, f"{A6}/64")
        p.sb.add_address(p.ifb, f"{B6}/64")
        await trio.sleep(3)                     # DAD
        tcp_stats, udp_stats = ServiceStats(), ServiceStats()
        async with trio.open_nursery() as n:
            assert await n.start(partial(tcp_echo, p.sb, 7, stats=tcp_stats)) == "tcp/echo:7"
            assert await n.start(partial(udp_echo, p.sb, 7, stats=udp_stats)) == "udp/echo:7"
            for family, host in ((socket.AF_INET, IP_B), (socket.AF_INET6, B6)):
                data = f"over {host}".encode() * 1000
                assert await tcp_round_trip(p.sa, family, (host, 7), data) == data
                assert await udp_round_trip(p.sa, family, (host, 7), data[:3000]) == data[:3000]
            n.cancel_scope.cancel()
        assert tcp_stats.connections == 2 and tcp_stats.errors == 0
        assert udp_stats.received == udp_stats.sent == 2 and udp_stats.errors == 0


async def test_http_page_names_an_ipv4_peer_as_ipv4(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks("ether") as p:
        p.sb.add_address(p.ifb, f"{B6}/64")
        p.sa.add_address(p.ifa, f"{A6}/64")
        await trio.sleep(3)
        async with trio.open_nursery() as n:
            await n.start(partial(tcp_http, p.sb, 80))
            request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            page4 = await tcp_round_trip(p.sa, socket.AF_INET, (IP_B, 80), request)
            page6 = await tcp_round_trip(p.sa, socket.AF_INET6, (B6, 80), request)
            n.cancel_scope.cancel()
        assert f"stack at {IP_B}:80 to {IP_A}:".encode() in page4 and b"::ffff:" not in page4
        assert f"stack at [{B6}]:80 to [{A6}]:".encode() in page6


async def test_service_socket_families(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks("ether") as p:
        p.sb.add_address(p.ifb, f"{B6}/64", dad=False)
        with service_socket(p.sb, socket.SOCK_STREAM, "", 81) as wild:
            assert wild.family == socket.AF_INET6 and wild.getsockname()[:2] == ("::", 81)
        with service_socket(p.sb, socket.SOCK_DGRAM, IP_B, 82) as v4:
            assert v4.family == socket.AF_INET and v4.getsockname() == (IP_B, 82)
        with service_socket(p.sb, socket.SOCK_STREAM, B6, 83) as v6:
            assert v6.family == socket.AF_INET6 and v6.getsockname()[:2] == (B6, 83)


async def test_wildcard_service_takes_ipv4_with_ipv6_off(autojump_clock: trio.testing.MockClock) -> None:
    """StackConfig(ipv6=False) is Linux's disable_ipv6: no IPv6 on the links, but a `::`
    socket still exists and serves IPv4 clients (as ::ffff:a.b.c.d)."""
    async with two_stacks("ether", ipv6=False) as p, trio.open_nursery() as n:
        await n.start(partial(tcp_echo, p.sb, 7))
        assert await tcp_round_trip(p.sa, socket.AF_INET, (IP_B, 7), b"v4 only") == b"v4 only"
        n.cancel_scope.cancel()
