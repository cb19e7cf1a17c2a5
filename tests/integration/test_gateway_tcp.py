"""The gateway's TCP side end to end in one process (tools/gateway/tcp.py): a guest Stack
connects through a gateway Stack whose interface is transparent; the gateway holds each SYN,
connects a host socket on the kernel's loopback, then answers -- the connection spliced to
the host's, or the host's failure shown to the guest."""
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

from tools.gateway.flows import FlowConfig, FlowTable
from tools.gateway.policy import AddressModel, Policy
from tools.gateway.tcp import TcpGateway

from .helpers import IP_B, two_stacks

# the memory link's 10.0.0.0/24 read as slirp4netns's model: 10.0.0.2 (stack b) is the gateway
MODEL = AddressModel.from_cidr("10.0.0.0/24")


@asynccontextmanager
async def gateway(policy: Policy | None = None,
                  flows: FlowTable | None = None) -> AsyncIterator[tuple[Any, TcpGateway]]:
    """A guest Stack (a) behind a gateway Stack (b, transparent) whose TcpGateway serves until
    the block ends; yields a guest socket and the gateway."""
    async with two_stacks("rawip", ipv6=False) as p:
        p.ifb.transparent = True
        gw = TcpGateway(p.sb, Policy(MODEL, allow_host_loopback=True) if policy is None else policy,
                        FlowTable(FlowConfig()) if flows is None else flows)
        async with trio.open_nursery() as nursery:
            await nursery.start(gw.run)
            yield p.sa.socket(socket.AF_INET, socket.SOCK_STREAM), gw
            nursery.cancel_scope.cancel()


async def test_guest_reaches_the_host_through_the_gateway() -> None:
    up, down = random.Random(5).randbytes(2 << 20), random.Random(6).randbytes(1 << 20)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    async with gateway() as (guest, gw):
        got: dict[str, bytes] = {}

        async def host_side() -> None:
            server = await listeners[0].accept()
            parts = []
            while data := await server.receive_some(1 << 20):
                parts.append(data)
            got["up"] = b"".join(parts)
            await server.send_all(down)
            await server.aclose()

        async def guest_side() -> None:
            await guest.connect((IP_B, port))          # the gateway address: the host's loopback
            await guest.sendall(up)
            guest.shutdown(socket.SHUT_WR)
            parts = []
            while data := await guest.recv(1 << 20):
                parts.append(data)
            got["down"] = b"".join(parts)
            guest.close()

        with trio.fail_after(60):
            async with trio.open_nursery() as n:
                n.start_soon(host_side)
                n.start_soon(guest_side)
            while len(gw.flows):                       # the relay ends once both ways closed
                await trio.sleep(0.01)
    await listeners[0].aclose()
    assert hashlib.sha256(got["up"]).digest() == hashlib.sha256(up).digest()
    assert got["down"] == down
    assert (gw.stats.relayed, gw.stats.octets_to_host, gw.stats.octets_to_guest) == (1, len(up), len(down))
    # loopback: the handshake is over when connect(2) returns, so no task waited for it
    assert (gw.stats.connected_at_once, gw.stats.connects_waited) == (1, 0)
    assert len(gw.flows) == 0 and gw.flows.stats.closed == 1


@pytest.mark.parametrize("where, expected", [
    ("closed", errno.ECONNREFUSED),      # the host's connect is refused: an RST for the guest
    ("policy", errno.ECONNREFUSED),      # host loopback off: refused as a closed port
    ("neighbour", errno.EHOSTUNREACH),   # nobody else on the guest's subnet: host unreachable
])
async def test_refusals_reach_the_guest_as_a_network_would_show_them(where: str, expected: int) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed = s.getsockname()[1]
    s.close()
    async with gateway(Policy(MODEL, allow_host_loopback=where != "policy")) as (guest, gw):
        dst = "10.0.0.77" if where == "neighbour" else IP_B
        with pytest.raises(OSError) as info:
            with trio.fail_after(30):
                await guest.connect((dst, closed))
        assert info.value.errno == expected
    assert gw.stats.syns >= 1                               # the gateway answered, not the core
    assert gw.stats.relayed == 0 and len(gw.flows) == 0


async def test_full_flow_table_refuses_new_connections() -> None:
    flows = FlowTable(FlowConfig(max_flows=0))
    async with gateway(flows=flows) as (guest, gw):
        with pytest.raises(OSError) as info:
            with trio.fail_after(30):
                await guest.connect((IP_B, 9))
        assert info.value.errno == errno.ECONNREFUSED
    assert gw.stats.refused_full == 1 and flows.stats.refused_full == 1


async def test_a_host_connect_still_under_way_is_waited_for() -> None:
    # a listener whose accept queue is full drops SYNs: the host's connect is under way when
    # connect(2) returns, and a task waits for it -- here until the queue drains and the
    # kernel's SYN retry (1 s) gets through, and the flow is relayed as any other
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    for _ in range(3):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(("127.0.0.1", port))
        fillers.append(f)
    lst.setblocking(False)
    try:
        async with gateway() as (guest, gw):
            with trio.fail_after(10):
                async with trio.open_nursery() as n:
                    n.start_soon(guest.connect, (IP_B, port))
                    await trio.sleep(0.3)
                    assert gw.stats.connects_waited == 1 and gw.stats.relayed == 0
                    for f in fillers:                   # their SYN retries end with them
                        f.close()
                    while True:                         # drain the queue: the retry gets in
                        try:
                            lst.accept()[0].close()
                        except BlockingIOError:
                            break
                tserver = trio.socket.from_stdlib_socket(lst)
                server, _ = await tserver.accept()               # the gateway's, on its retry
                await guest.sendall(b"late but there")
                assert await server.recv(100) == b"late but there"
                server.close()
                guest.close()
            assert (gw.stats.connects_waited, gw.stats.connected_at_once, gw.stats.relayed) == (1, 0, 1)
    finally:
        for f in fillers:
            f.close()
        lst.close()
