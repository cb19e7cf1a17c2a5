"""Shared set-up for the integration tests: two Stacks joined by a memory link."""
from __future__ import annotations

import os
import shutil
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from drivers.memlink import MemoryNdd
from ndd.ndd import Ndd
from protocols.ifnet import Interface
from stack.stack import Stack, StackConfig

IP_A, IP_B = "10.0.0.1", "10.0.0.2"
# fixed MACs (locally administered) so seeded runs see identical frames
MAC_A = bytes.fromhex("02000000000a")
MAC_B = bytes.fromhex("02000000000b")
MAC_OTHER = bytes.fromhex("0200000000ff")
MAC_BCAST = b"\xff" * 6


@dataclass
class Pair:
    sa: Stack
    sb: Stack
    a: MemoryNdd          # stack a's end of the cable (possibly wrapped, see nd_a)
    b: MemoryNdd
    nd_a: Ndd             # what stack a attached: `a` or a wrapper such as a FaultInjector
    ifa: Interface
    ifb: Interface


def link_pair(kind: str = "ether", **kw: object) -> tuple[MemoryNdd, MemoryNdd]:
    """Like drivers.memory_link_pair, but with fixed MACs."""
    a = MemoryNdd("m0", kind=kind, physaddr=MAC_A, **kw)  # type: ignore[arg-type]
    b = MemoryNdd("m1", kind=kind, physaddr=MAC_B, **kw)  # type: ignore[arg-type]
    a.peer, b.peer = b, a
    return a, b


@asynccontextmanager
async def two_stacks(kind: str = "ether", *, latency: float = 0.0, seed: int = 1,
                     wrap_a: Callable[[MemoryNdd], Ndd] | None = None,
                     config_a: StackConfig | None = None,
                     config_b: StackConfig | None = None, ipv6: bool = True) -> AsyncIterator[Pair]:
    """Stack a (10.0.0.1/24 on m0) and stack b (10.0.0.2/24 on m1) over one memory link.
    `ipv6=False` keeps IPv6 (link-local DAD, MLD, router solicitations) off the link, for
    tests that count IPv4 frames exactly."""
    async with Stack("a", config_a or StackConfig(seed=seed, ipv6=ipv6)) as sa, \
            Stack("b", config_b or StackConfig(seed=seed + 1, ipv6=ipv6)) as sb:
        a, b = link_pair(kind, latency=latency)
        nd_a = wrap_a(a) if wrap_a is not None else a
        ifa = sa.add_interface(nd_a, f"{IP_A}/24")
        ifb = sb.add_interface(b, f"{IP_B}/24")
        yield Pair(sa, sb, a, b, nd_a, ifa, ifb)


def ether_frame(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def llc_frame(dst: bytes, src: bytes, llc: bytes, payload: bytes, pad_to: int = 60) -> bytes:
    """An 802.3 frame (length field, then the 802.2 LLC header), padded to the Ethernet minimum."""
    body = llc + payload
    frame = dst + src + struct.pack("!H", len(body)) + body
    return frame + bytes(max(0, pad_to - len(frame)))


def require_tool(name: str) -> None:
    """Skip without `name` -- but fail under TUNSTACK_REQUIRE_TUN=1 (CI), where `make test`
    has installed it: CI must never be green by skipping."""
    if shutil.which(name) is None:
        if os.environ.get("TUNSTACK_REQUIRE_TUN") == "1":
            pytest.fail(f"{name} is missing (make test installs it as root)")
        pytest.skip(f"{name} is not installed")


def require_atmsigd() -> None:
    """gcc (the shim is compiled by the tests) and linux-atm's atmsigd, as require_tool."""
    from tools.lab.atmsigd import find_atmsigd
    require_tool("gcc")
    if find_atmsigd() is None:          # /usr/sbin may be off a user's PATH: look there too
        require_tool("atmsigd")


async def tcp_connected(client_stack: Any, server_stack: Any, server_ip: str, port: int) -> tuple[Any, Any]:
    """A TCP connection from `client_stack` to a listener of `server_stack` on
    (server_ip, port): (the client's socket, the server's accepted one)."""
    lst = server_stack.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("", port))
    lst.listen(1)
    client = client_stack.socket(socket.AF_INET, socket.SOCK_STREAM)
    await client.connect((server_ip, port))
    server, _ = await lst.accept()
    return client, server


async def tcp_exchange(sa: Any, sb: Any, up: bytes, down: bytes, on_up: Callable[[bytes], Any],
                       on_down: Callable[[bytes], Any], *, timeout: float = 900, port: int = 5000) -> float:
    """Stack `sa` connects to `sb` (IP_B:port), sends `up` and half-closes while `sb` answers
    `down` and closes; both read to EOF, handing every chunk to on_up / on_down.  Returns the
    wall-clock seconds taken."""
    srv = sb.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("", port))
    srv.listen(4)

    async def drain(sock: Any, sink: Callable[[bytes], Any]) -> None:
        while data := await sock.recv(1 << 20):
            sink(data)

    async def server() -> None:
        conn, _ = await srv.accept()
        async with trio.open_nursery() as n:
            n.start_soon(drain, conn, on_up)
            await conn.sendall(down)
            conn.shutdown(socket.SHUT_WR)
        conn.close()

    start = time.perf_counter()
    with trio.fail_after(timeout):
        async with trio.open_nursery() as n:
            n.start_soon(server)
            cl = sa.socket(socket.AF_INET, socket.SOCK_STREAM)
            await cl.connect((IP_B, port))
            async with trio.open_nursery() as inner:
                inner.start_soon(drain, cl, on_down)
                await cl.sendall(up)
                cl.shutdown(socket.SHUT_WR)
            cl.close()
    srv.close()
    return time.perf_counter() - start
