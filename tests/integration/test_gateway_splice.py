"""The gateway's TCP relays through TcpGateway -- each test twice: the lean relay
(tools/gateway/lean.py over protocols/tcp/relayed.py, the default for IPv4) and the splice
(tools/gateway/splice.py, a full Connection) -- a guest Stack connects through a gateway
Stack over a memory link, the host end is a kernel socket on loopback.
Half-close either way first, resets mapped across, backpressure both ways with the relay's
own buffering bounded by its budget, and a gateway that stops resets what it still relays.
(A memory link has no device read batches, so every upcall here goes through the poller's
eventfd; the TAP path, at the end of each read batch, is what the realpeer tests drive.)"""
from __future__ import annotations

import random
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import trio

from drivers.fault import FaultInjector
from protocols.tcp.relayed import RELAY_WINDOW, SEND_MAX
from tools.gateway.flows import FlowConfig, FlowTable
from tools.gateway.policy import AddressModel, Policy
from tools.gateway.relay import RelayBudget
from tools.gateway.tcp import TcpGateway

from .helpers import IP_B, two_stacks

MODEL = AddressModel.from_cidr("10.0.0.0/24")
LINGER_RST = struct.pack("ii", 1, 0)


@dataclass
class Flow:
    guest: Any                     # the guest Stack's socket
    host: trio.SocketStream        # the kernel end the gateway connected to
    gw: TcpGateway
    nursery: trio.Nursery


pytestmark = pytest.mark.parametrize("relay", ["lean", "splice"])


@asynccontextmanager
async def flow(relay: str, budget: RelayBudget | None = None,
               faults: dict[str, float] | None = None) -> AsyncIterator[Flow]:
    """`faults`: the guest's link drops, duplicates, reorders or corrupts (FaultInjector)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    wrap = (lambda nd: FaultInjector(nd, seed=7, **faults)) if faults else None
    async with two_stacks("rawip", ipv6=False, wrap_a=wrap) as p:
        p.ifb.transparent = True
        gw = TcpGateway(p.sb, Policy(MODEL, allow_host_loopback=True), FlowTable(FlowConfig()),
                        budget=budget or RelayBudget(), lean=relay == "lean")
        async with trio.open_nursery() as nursery:
            await nursery.start(gw.run)
            guest = p.sa.socket(socket.AF_INET, socket.SOCK_STREAM)
            with trio.fail_after(10):
                await guest.connect((IP_B, port))
                host = await listeners[0].accept()
            await listeners[0].aclose()
            try:
                with trio.fail_after(60):
                    yield Flow(guest, host, gw, nursery)
            finally:
                nursery.cancel_scope.cancel()


async def read_all(recv: Any) -> bytes:
    parts = []
    while data := await recv(1 << 20):
        parts.append(data)
    return b"".join(parts)


async def until_no_flows(gw: TcpGateway) -> None:
    while len(gw.flows):
        await trio.sleep(0.01)


async def both_sides(f: Flow, host_side: Any, guest_side: Any) -> None:
    """Run the two ends of a flow at once, then wait for the gateway to forget it."""
    async with trio.open_nursery() as n:
        n.start_soon(host_side)
        n.start_soon(guest_side)
    await until_no_flows(f.gw)


async def test_host_eof_first_and_the_guest_keeps_sending(relay: str) -> None:
    down, up1, up2 = (random.Random(i).randbytes(n) for i, n in ((1, 300_000), (2, 500_000), (3, 700_000)))
    async with flow(relay) as f:
        got: dict[str, bytes] = {}

        async def host_side() -> None:
            await f.host.send_all(down)
            await f.host.send_eof()                  # the host's EOF first ...
            got["up"] = await read_all(f.host.receive_some)
            await f.host.aclose()

        async def guest_side() -> None:
            await f.guest.sendall(up1)
            got["down"] = await read_all(f.guest.recv)   # ... reaches the guest as a FIN
            await f.guest.sendall(up2)               # and the guest's direction still flows
            f.guest.shutdown(socket.SHUT_WR)
            f.guest.close()

        await both_sides(f, host_side, guest_side)
    assert got == {"down": down, "up": up1 + up2}
    if relay == "lean":
        assert f.gw.stack.tcp.relays.opened == 1 and f.gw.stack.tcp.relays.held == 0
    else:
        assert f.gw.poller is not None and f.gw.poller.stats.spliced == 1 and f.gw.poller.stats.kicks >= 1
    assert (f.gw.stats.octets_to_host, f.gw.stats.octets_to_guest) == (len(up1) + len(up2), len(down))
    assert f.gw.budget.in_use == 0


async def test_host_reset_resets_the_guest(relay: str) -> None:
    async with flow(relay) as f:
        await f.guest.sendall(b"hello")
        assert await f.host.receive_some(10) == b"hello"
        f.host.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        await f.host.aclose()
        with pytest.raises(ConnectionResetError):
            while await f.guest.recv(10):
                pass
        await until_no_flows(f.gw)
    assert f.gw.budget.in_use == 0


async def test_guest_reset_resets_the_host(relay: str) -> None:
    async with flow(relay) as f:
        await f.host.send_all(b"hi")
        assert await f.guest.recv(10) == b"hi"
        f.guest.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        f.guest.close()
        with pytest.raises(trio.BrokenResourceError) as info:
            while await f.host.receive_some(10):
                pass
        assert isinstance(info.value.__cause__, ConnectionResetError)
        await until_no_flows(f.gw)


@pytest.mark.parametrize("stalled", ["host", "guest"])
async def test_backpressure_when_one_side_reads_nothing(stalled: str, relay: str) -> None:
    budget = RelayBudget()
    async with flow(relay, budget) as f:
        if stalled == "host":                        # the guest writes, the host never reads
            async def write(data: bytes) -> None:
                await f.guest.sendall(data)
        else:                                        # the host writes, the guest never reads
            async def write(data: bytes) -> None:
                await f.host.send_all(data)
        sent = 0
        with trio.move_on_after(2):
            while True:
                await write(b"x" * 65536)
                sent += 65536
        assert sent < 64 << 20                       # it stalled
        # the splice holds at most one read per direction, a lean flow its window and what
        # the guest has not acknowledged
        assert budget.in_use <= budget.chunk_max
        assert f.gw.stack.tcp.relays.held <= RELAY_WINDOW + SEND_MAX
        host_bufs = sum(f.host.socket.getsockopt(socket.SOL_SOCKET, o) for o in (socket.SO_RCVBUF, socket.SO_SNDBUF))
        stack_bufs = 2 * (8 << 20)                   # the two Stacks' send and receive buffers at most
        assert sent <= 2 * host_bufs + stack_bufs + budget.chunk_max


@pytest.mark.parametrize("paused", [False, True])
async def test_a_stopping_gateway_resets_what_it_relays(paused: bool, relay: str) -> None:
    # paused: the guest reads nothing, so the host side waits on the guest's send buffer and
    # its socket is out of the epoll -- it is reset all the same
    async with flow(relay) as f:
        await f.guest.sendall(b"ping")
        assert await f.host.receive_some(10) == b"ping"
        if paused:
            with trio.move_on_after(1):
                while True:
                    await f.host.send_all(b"x" * 65536)
            poller = f.gw.poller
            assert poller is not None and not poller._by_fd     # nothing of this flow is watched
        f.nursery.cancel_scope.cancel()              # the gateway stops
        await trio.sleep(0.1)
        with pytest.raises(trio.BrokenResourceError):
            while await f.host.receive_some(1 << 16):
                pass
    assert len(f.gw.flows) == 0 and f.gw.budget.in_use == 0 and f.gw.stack.tcp.relays.held == 0


async def test_a_lossy_link_to_the_guest_loses_nothing(relay: str) -> None:
    """Loss, duplication, reordering and corruption between the guest and the gateway (the
    TAP side): both directions arrive whole, and the ends still map."""
    down, up = random.Random(5).randbytes(1_500_000), random.Random(6).randbytes(1_200_000)
    faults = {"drop": 0.03, "duplicate": 0.01, "reorder": 0.03, "corrupt": 0.01}
    async with flow(relay, faults=faults) as f:
        got: dict[str, bytes] = {}

        async def host_side() -> None:
            await f.host.send_all(down)
            await f.host.send_eof()
            got["up"] = await read_all(f.host.receive_some)
            await f.host.aclose()

        async def guest_side() -> None:
            async def reader() -> None:
                got["down"] = await read_all(f.guest.recv)
            async with trio.open_nursery() as n:
                n.start_soon(reader)
                await f.guest.sendall(up)
                f.guest.shutdown(socket.SHUT_WR)
            f.guest.close()

        await both_sides(f, host_side, guest_side)
    assert got["down"] == down and got["up"] == up
    assert f.gw.stack.tcp.relays.held == 0 and f.gw.budget.in_use == 0
    if relay == "lean":
        assert f.gw.stack.tcp.stats.retrans_segs > 0          # the loss was repaired by the relay
