"""The gateway's ICMP echo side in one process (tools/gateway/echo.py): a guest Stack (a) pings
remote addresses through a gateway Stack (b) whose interface is transparent.  The host's ping
socket is the test's stand-in here (real ping sockets need net.ipv4.ping_group_range: the
real-peer test tests/realpeer/test_gateway_udp.py uses them): it answers as the kernel's does
-- with its own identifier, which the gateway must put back to the guest's -- or is refused,
and then no reply is forged."""
from __future__ import annotations

import errno
import logging
import socket
import struct
from typing import Any

import pytest
import trio
import trio.testing

from tools.gateway.echo import EchoGateway
from tools.gateway.flows import FlowConfig, FlowTable
from tools.gateway.ping import PingUnavailable
from tools.gateway.policy import AddressModel, Policy, Relay, Verdict

from .helpers import IP_B, two_stacks

MODEL = AddressModel.from_cidr("10.0.0.0/24")
REMOTE, REMOTE6 = "203.0.113.9", "2001:db8:5::9"
GW6, GUEST6 = "fd00::2", "fd00::100"
KERNEL_IDENT = 0x4242                    # the identifier a ping socket's kernel would choose


class FakePingSocket:
    """What the gateway uses of a ping socket: connect, send an echo request (identifier and
    checksum the kernel's), recv the reply -- answered here, from the request."""

    def __init__(self, family: int, log: list[Any]) -> None:
        self.family = family
        self.log = log
        self.replies_send, self.replies = trio.open_memory_channel[bytes](16)

    async def connect(self, addr: tuple[str, int]) -> None:
        self.log.append(("connect", addr))

    async def send(self, message: bytes) -> int:
        kind, _code, _csum, _ident, seq = struct.unpack_from("!BBHHH", message)
        assert kind == (128 if self.family == socket.AF_INET6 else 8)
        reply_type = 129 if self.family == socket.AF_INET6 else 0
        self.replies_send.send_nowait(struct.pack("!BBHHH", reply_type, 0, 0, KERNEL_IDENT, seq) + message[8:])
        return len(message)

    async def recv(self, n: int) -> bytes:
        return await self.replies.receive()

    def close(self) -> None:
        self.log.append(("close",))


class Mapped:
    """The remote addresses stand for the host's loopback; the rest as the real policy says."""

    def __init__(self) -> None:
        self.inner = Policy(MODEL)

    def outbound(self, dst: str, port: int) -> Verdict:
        if dst in (REMOTE, REMOTE6):
            return Relay("::1" if ":" in dst else "127.0.0.1", port)
        return self.inner.outbound(dst, port)


async def _with_gateway(open_socket: Any, body: Any, *, ipv6: bool = False) -> EchoGateway:
    async with two_stacks("rawip", ipv6=ipv6) as p:
        p.ifb.transparent = True
        p.sa.add_route("0.0.0.0/0", IP_B)
        if ipv6:
            p.sb.add_address(p.ifb, f"{GW6}/64", dad=False)
            p.sa.add_address(p.ifa, f"{GUEST6}/64", dad=False)
            p.sa.add_route("::/0", GW6)
        gw = EchoGateway(p.sb, Mapped(), FlowTable(FlowConfig()), open_socket=open_socket)
        async with trio.open_nursery() as nursery:
            await nursery.start(gw.run)
            await body(p, gw)
            nursery.cancel_scope.cancel()
    return gw


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["v4", "v6"])
async def test_pings_relayed_with_the_guests_identifier(family: int) -> None:
    v6 = family == socket.AF_INET6
    log: list[Any] = []

    async def body(p: Any, gw: EchoGateway) -> None:
        with trio.fail_after(30):
            for size in (0, 56, 1400, 4000):
                await p.sa.ping(REMOTE6 if v6 else REMOTE, size=size)   # EIO if the data differ

    gw = await _with_gateway(lambda fam: FakePingSocket(fam, log), body, ipv6=v6)
    st = gw.stats
    # Stack.ping waits by (identifier, sequence): a reply with the kernel's identifier would
    # never have woken it -- every reply carried the guest's
    assert (st.requests, st.requests_to_host, st.replies_to_guest) == (4, 4, 4)
    assert st.octets_to_guest == st.octets_to_host == 0 + 56 + 1400 + 4000
    assert st.flows_opened == 1 and log[0] == ("connect", ("::1" if v6 else "127.0.0.1", 0))
    assert log[-1] == ("close",)                      # the flow's socket closed with the gateway


async def test_refused_ping_sockets_forge_nothing_and_log_once(caplog: pytest.LogCaptureFixture) -> None:
    attempts: list[int] = []

    def refused(family: int) -> Any:
        attempts.append(family)
        raise PingUnavailable("ping sockets refused (Permission denied): see net.ipv4.ping_group_range")

    async def body(p: Any, gw: EchoGateway) -> None:
        for _ in range(3):
            with pytest.raises(OSError) as info:
                await p.sa.ping(REMOTE, timeout=0.5)
            assert info.value.errno == errno.ETIMEDOUT            # no reply: nothing forged
        assert p.sa.icmp.stats.in_echo_reps == 0 and p.sb.icmp.stats.out_echo_reps == 0

    with caplog.at_level(logging.WARNING, logger="tools.gateway.echo"):
        gw = await _with_gateway(refused, body)
    st = gw.stats
    assert st.requests == 3 and st.dropped_unavailable == 3 and st.replies_to_guest == 0
    assert len(attempts) == 1                         # then not tried again for UNAVAILABLE_RETRY s
    warnings = [r for r in caplog.records if r.name == "tools.gateway.echo"]
    assert len(warnings) == 1 and "ping_group_range" in warnings[0].getMessage()
    assert len(gw.flows) == 0


async def test_policy_refusal_and_full_table_drop_silently() -> None:
    log: list[Any] = []

    async def body(p: Any, gw: EchoGateway) -> None:
        with pytest.raises(OSError) as info:
            await p.sa.ping("10.0.0.77", timeout=0.5)          # a neighbour nobody is: refused
        assert info.value.errno == errno.ETIMEDOUT
        gw.flows.config.max_flows = 0
        with pytest.raises(OSError) as info:
            await p.sa.ping(REMOTE, timeout=0.5)
        assert info.value.errno == errno.ETIMEDOUT

    gw = await _with_gateway(lambda fam: FakePingSocket(fam, log), body)
    assert (gw.stats.refused_policy, gw.stats.refused_full, gw.stats.replies_to_guest) == (1, 1, 0)
    assert log == []                                  # no host socket was ever opened


async def test_idle_echo_flows_expire(mock_clock: Any) -> None:
    """ping_idle (30 s) after the last echo, the clock a MockClock the test moves: the flow's
    socket closed, its slot free; the next ping opens a fresh flow."""
    log: list[Any] = []

    async def body(p: Any, gw: EchoGateway) -> None:
        await p.sa.ping(REMOTE)
        await trio.testing.wait_all_tasks_blocked(0.05)
        assert len(gw) == len(gw.flows) == 1
        mock_clock.jump(29.0)
        await trio.testing.wait_all_tasks_blocked(0.05)
        assert len(gw) == 1 and ("close",) not in log
        mock_clock.jump(1.5)
        await trio.testing.wait_all_tasks_blocked(0.05)
        assert len(gw) == len(gw.flows) == 0 and log[-1] == ("close",)
        await p.sa.ping(REMOTE)
        assert gw.stats.flows_opened == 2

    gw = await _with_gateway(lambda fam: FakePingSocket(fam, log), body)
    assert gw.stats.expired == 1 and gw.flows.stats.expired == 1 and gw.stats.replies_to_guest == 2
