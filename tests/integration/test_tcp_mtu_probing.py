"""Path-MTU probing (RFC 4821, Linux tcp_mtu_probing; protocols/tcp/mtuprobe.py) over a
path-MTU black hole: a memory link whose far side silently drops every packet longer than
1200 octets -- no ICMP "fragmentation needed" comes back (RFC 2923 §2.1) -- while both ends
believe in their 1500-octet link MTU.

With tcp_mtu_probing=1 the sender's RTOs reveal the black hole, the MSS drops to
tcp_base_mss and probes search upward for the largest size that passes; the bulk transfer
completes.  With 0 (Linux's default) every full-sized segment is lost for good: the
transfer stalls in RTOs."""
from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing

from drivers.fault import FaultInjector
from drivers.memlink import MemoryNdd
from protocols.tcp.config import TcpConfig
from stack.stack import StackConfig

from .helpers import IP_B, Pair, two_stacks

BLACK_HOLE = 1200            # the largest packet the path carries
PORT = 5040
SIZE = 300_000


@asynccontextmanager
async def black_hole_path(mtu_probing: int) -> AsyncIterator[tuple[Pair, FaultInjector]]:
    holder: list[FaultInjector] = []

    def wrap(a: MemoryNdd) -> FaultInjector:
        holder.append(FaultInjector(a, direction="out", blackhole_mtu=BLACK_HOLE))
        return holder[0]

    config_a = StackConfig(seed=1, ipv6=False, tcp=TcpConfig(mtu_probing=mtu_probing))
    async with two_stacks(wrap_a=wrap, config_a=config_a, ipv6=False) as p:
        yield p, holder[0]


async def send_bulk(p: Pair, deadline: float) -> tuple[int, Any]:
    """a sends SIZE octets to b; what b received by `deadline` (mock seconds), and a's socket."""
    received = 0
    srv = p.sb.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("", PORT))
    srv.listen(1)
    cl = p.sa.socket(socket.AF_INET, socket.SOCK_STREAM)

    async def server() -> None:
        nonlocal received
        conn, _ = await srv.accept()
        while data := await conn.recv(1 << 16):
            received += len(data)

    async def client() -> None:
        await cl.connect((IP_B, PORT))
        await cl.sendall(bytes(SIZE))
        cl.shutdown(socket.SHUT_WR)

    with trio.move_on_after(deadline):
        async with trio.open_nursery() as n:
            n.start_soon(server)
            n.start_soon(client)
    return received, cl


async def test_probing_finds_the_black_hole_and_the_transfer_completes(
        autojump_clock: trio.testing.MockClock) -> None:
    async with black_hole_path(mtu_probing=1) as (p, inj):
        received, cl = await send_bulk(p, deadline=120)
        assert received == SIZE
        tcp = p.sa.stats()["tcp"]
        assert tcp["mtu_black_holes"] >= 1
        assert tcp["mtu_probes"] >= 1 and tcp["mtu_probe_successes"] >= 1
        assert inj.faults.blackholed > 0
        # the search settled below the hole and above tcp_base_mss: 1200 less IP, TCP and
        # timestamps is 1148
        mss = cl.tcp_info()["snd_mss"]
        assert 1024 < mss <= BLACK_HOLE - 52


async def test_without_probing_the_transfer_stalls_in_rtos(autojump_clock: trio.testing.MockClock) -> None:
    async with black_hole_path(mtu_probing=0) as (p, inj):
        received, cl = await send_bulk(p, deadline=120)
        assert received < SIZE
        tcp = p.sa.stats()["tcp"]
        assert tcp["rto_fires"] >= 5 and tcp["mtu_black_holes"] == 0
        assert cl.tcp_info()["snd_mss"] == 1448
