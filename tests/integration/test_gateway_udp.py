"""The gateway's UDP side end to end in one process (tools/gateway/udp.py): a guest Stack (a)
sends datagrams through a gateway Stack (b) whose interface is transparent; the gateway
relays each flow through a connected host socket on the kernel's loopback, where the test's
own sockets answer.  Echo of 1..8000-byte datagrams both families, the guest's source port
kept, a closed host port seen by the guest's connected socket as ECONNREFUSED, a remote
address answered from that address, idle expiry at the default timeouts (MockClock), and a
full flow table refusing new flows while the old one keeps working."""
from __future__ import annotations

import errno
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio.testing

from protocols.addr import ip_to_int
from protocols.udp.forward import UdpForward
from tools.gateway.flows import FlowConfig, FlowTable
from tools.gateway.policy import AddressModel, Policy, Relay, Verdict
from tools.gateway.udp import UdpGateway

from .helpers import IP_A, IP_B, two_stacks

# the memory link's 10.0.0.0/24 read as slirp4netns's model: 10.0.0.2 (stack b) is the gateway,
# fd00::2 its IPv6 address; the guest (stack a) is 10.0.0.1 and fd00::100
MODEL = AddressModel.from_cidr("10.0.0.0/24")
GW6, GUEST6 = "fd00::2", "fd00::100"
REMOTE = "203.0.113.9"                       # a "remote" host: the test's policy maps it to 127.0.0.1
SIZES = sorted({*range(1, 8001, 7), 1, 2, 1472, 1473, 1480, 1481, 1500, 4096, 7999, 8000})


def free_udp_port(family: int = socket.AF_INET) -> int:
    """A port no kernel UDP socket of this host holds now."""
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        port: int = s.getsockname()[1]
    return port


@dataclass
class Gateway:
    p: Any
    gw: UdpGateway


@asynccontextmanager
async def gateway(policy: Any, flows: FlowTable | None = None, *, ipv6: bool = False) -> AsyncIterator[Gateway]:
    async with two_stacks("rawip", ipv6=ipv6) as p:
        p.ifb.transparent = True
        p.sa.add_route("0.0.0.0/0", IP_B)
        if ipv6:
            p.sb.add_address(p.ifb, f"{GW6}/64", dad=False)
            p.sa.add_address(p.ifa, f"{GUEST6}/64", dad=False)
        gw = UdpGateway(p.sb, policy, flows if flows is not None else FlowTable(FlowConfig()))
        async with trio.open_nursery() as nursery:
            await nursery.start(gw.run)
            yield Gateway(p, gw)
            nursery.cancel_scope.cancel()


async def echo_server(sock: trio.socket.SocketType, seen: list[tuple[Any, ...]]) -> None:
    """The host's side: every datagram back to its sender, upper-cased."""
    while True:
        data, peer = await sock.recvfrom(65535)
        seen.append(peer)
        await sock.sendto(data.upper(), peer)


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["v4", "v6"])
async def test_echo_1_to_8000_bytes_keeping_the_guest_port(family: int) -> None:
    v6 = family == socket.AF_INET6
    host = trio.socket.socket(family, socket.SOCK_DGRAM)
    await host.bind(("::1" if v6 else "127.0.0.1", 0))
    port = host.getsockname()[1]
    seen: list[tuple[Any, ...]] = []
    gport = free_udp_port(family)
    async with gateway(Policy(MODEL, allow_host_loopback=True), ipv6=v6) as g, trio.open_nursery() as n:
        n.start_soon(echo_server, host, seen)
        guest = g.p.sa.socket(family, socket.SOCK_DGRAM)
        guest.bind((GUEST6 if v6 else IP_A, gport))
        await guest.connect((GW6 if v6 else IP_B, port))          # the gateway address: host loopback
        with trio.fail_after(120):
            for size in SIZES:
                data = bytes((size + i) & 0xFF | 0x40 for i in range(size))   # letters to upper-case
                await guest.send(data)
                assert await guest.recv(65535) == data.upper(), size
        n.cancel_scope.cancel()
        st = g.gw.stats
    host.close()
    octets = sum(SIZES)
    assert (st.datagrams_to_host, st.octets_to_host) == (len(SIZES), octets)
    assert (st.datagrams_to_guest, st.octets_to_guest) == (len(SIZES), octets)
    assert (st.flows_opened, st.port_kept, st.dropped_queue) == (1, 1, 0)
    assert {peer[1] for peer in seen} == {gport}                  # QUIC / WireGuard / STUN: port kept


async def test_a_remote_address_answers_from_itself() -> None:
    """The guest talks to 203.0.113.9 (a policy maps it to the host's loopback): the reply comes
    from 203.0.113.9 -- the gateway sends from the remote's address (transparency)."""
    host = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await host.bind(("127.0.0.1", 0))
    port = host.getsockname()[1]

    class Mapped:
        def outbound(self, dst: str, port: int) -> Verdict:
            assert dst == REMOTE
            return Relay("127.0.0.1", port)

    async with gateway(Mapped()) as g, trio.open_nursery() as n:
        n.start_soon(echo_server, host, [])
        guest = g.p.sa.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with trio.fail_after(30):
            await guest.sendto(b"hello", (REMOTE, port))
            assert await guest.recvfrom(100) == (b"HELLO", (REMOTE, port))
        n.cancel_scope.cancel()
    host.close()


@pytest.mark.parametrize("family, where", [(socket.AF_INET, "closed"), (socket.AF_INET6, "closed"),
                                           (socket.AF_INET, "policy")])
async def test_closed_port_is_econnrefused_on_a_connected_guest_socket(family: int, where: str) -> None:
    """The host's kernel answers the relayed datagram with a port unreachable (read from the
    error queue); the gateway shows the guest the same -- or, host loopback off, refuses the
    flow itself as a closed port."""
    v6 = family == socket.AF_INET6
    closed = free_udp_port(family)
    async with gateway(Policy(MODEL, allow_host_loopback=where != "policy"), ipv6=v6) as g:
        guest = g.p.sa.socket(family, socket.SOCK_DGRAM)
        await guest.connect((GW6 if v6 else IP_B, closed))
        await guest.send(b"anyone there?")
        with pytest.raises(OSError) as info:
            with trio.fail_after(30):
                await guest.recv(100)
        assert info.value.errno == errno.ECONNREFUSED
        st = g.gw.stats
    if where == "closed":
        assert st.datagrams_to_host == 1 and st.host_errors >= 1 and st.icmp_to_guest >= 1
    else:
        assert (st.refused_policy, st.datagrams_to_host, st.flows_opened) == (1, 0, 0)


async def _settle() -> None:
    """Let every task run until all wait (the mock clock stands still meanwhile)."""
    await trio.testing.wait_all_tasks_blocked(0.05)


async def test_idle_flows_expire_at_conntracks_timeouts(mock_clock: trio.testing.MockClock) -> None:
    """Default timeouts (30 s one-way, 180 s two-way), the stack's clock a MockClock the test
    moves: a flow that saw a reply outlives 30 s idle and ends at 180 s (its socket closed, its
    slot free); a one-way flow ends at 30 s; the guest's next datagram opens a fresh flow."""
    host = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await host.bind(("127.0.0.1", 0))
    port = host.getsockname()[1]
    sink = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)     # reads, never answers
    await sink.bind(("127.0.0.1", 0))
    flows = FlowTable(FlowConfig())
    async with gateway(Policy(MODEL, allow_host_loopback=True), flows) as g, trio.open_nursery() as n:
        n.start_soon(echo_server, host, [])
        two_way = g.p.sa.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await two_way.connect((IP_B, port))
        await two_way.send(b"ping")
        assert await two_way.recv(100) == b"PING"
        one_way = g.p.sa.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await one_way.connect((IP_B, sink.getsockname()[1]))
        await one_way.send(b"nobody answers")
        assert (await sink.recvfrom(100))[0] == b"nobody answers"
        await _settle()
        assert len(flows) == len(g.gw) == 2
        socks = [f.state.sock for f in flows.flows.values()]
        mock_clock.jump(30.5)
        await _settle()
        assert len(flows) == len(g.gw) == 1 and flows.stats.expired == 1
        assert g.gw.stats.expired == 1
        mock_clock.jump(150.0)                            # 180.5 s since the reply
        await _settle()
        assert len(flows) == len(g.gw) == 0 and g.gw.stats.expired == 2
        assert all(s.fileno() == -1 for s in socks)       # the host sockets are closed
        await two_way.send(b"again")                      # a fresh flow, a fresh socket
        assert await two_way.recv(100) == b"AGAIN"
        assert g.gw.stats.flows_opened == 3 and len(flows) == 1
        n.cancel_scope.cancel()
    host.close()
    sink.close()


async def test_full_table_refuses_new_flows_while_the_old_one_works() -> None:
    host = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await host.bind(("127.0.0.1", 0))
    port = host.getsockname()[1]
    flows = FlowTable(FlowConfig(max_flows=1))
    async with gateway(Policy(MODEL, allow_host_loopback=True), flows) as g, trio.open_nursery() as n:
        n.start_soon(echo_server, host, [])
        first = g.p.sa.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await first.connect((IP_B, port))
        with trio.fail_after(30):
            await first.send(b"one")
            assert await first.recv(100) == b"ONE"
            second = g.p.sa.socket(socket.AF_INET, socket.SOCK_DGRAM)
            await second.connect((IP_B, port))            # another guest port: another flow
            await second.send(b"two")
            with pytest.raises(OSError) as info:
                await second.recv(100)
            # ICMP administratively prohibited: Linux's errno for it (icmp_err_convert)
            assert info.value.errno == errno.EHOSTUNREACH
            for i in range(20):                            # the existing flow keeps working
                await first.send(b"x%d" % i)
                assert await first.recv(100) == b"X%d" % i
        n.cancel_scope.cancel()
        st = g.gw.stats
    host.close()
    assert st.refused_full == 1 and flows.stats.refused_full == 1 and st.flows_opened == 1


async def test_a_datagram_while_the_gateway_shuts_down_finds_no_gateway() -> None:
    """Regression: cancelled, the gateway's nursery waits for its flows' tasks, closed to new
    ones; a datagram the stack read meanwhile reached on_datagram, whose start_soon raised
    RuntimeError into the stack's reader and brought the whole stack down."""
    host = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await host.bind(("127.0.0.1", 0))
    port = host.getsockname()[1]
    late: list[Any] = []
    async with gateway(Policy(MODEL, allow_host_loopback=True)) as g:
        guest = g.p.sa.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await guest.connect((IP_B, port))
        await guest.send(b"one flow")
        with trio.fail_after(30):
            await host.recvfrom(100)
        forget = g.gw._forget

        def forget_then_a_datagram(flow: Any) -> None:     # runs as the flows' tasks end
            forget(flow)
            if not late:
                late.append(g.p.sb.udp.forwarder)
                g.gw.on_datagram(UdpForward(socket.AF_INET, ip_to_int(IP_A), 999, ip_to_int(IP_B), port,
                                            b"late", None, g.p.sb.now()))

        g.gw._forget = forget_then_a_datagram              # type: ignore[method-assign]
    host.close()
    assert late == [None]                   # unhooked before the flows ended
    assert g.gw.stats.flows_opened == 1 and len(g.gw) == 0
