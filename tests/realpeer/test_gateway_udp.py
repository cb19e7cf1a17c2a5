"""The gateway's UDP and ICMP echo sides with a Linux guest (tools/gateway/udp.py, echo.py): the
guest's namespace (10.0.2.100, fd00::100) reaches the gateway over TUN, its default routes via
10.0.2.2 and fd00::2.

  * UDP: with host loopback allowed, datagrams of every size 1..8000 bytes to 10.0.2.2:PORT
    ([fd00::2]:PORT) are relayed to an echo server on this host's 127.0.0.1:PORT (::1) -- the
    test's own -- and come back intact (the guest's kernel fragments and reassembles the large
    ones); a closed port is the guest's ECONNREFUSED -- from the host's ICMP, read by the
    gateway from IP_RECVERR; host loopback off, refused as a closed port;
  * ping: the guest pings 198.51.100.7 (2001:db8:5::9), which the test's policy maps to the
    host's 127.0.0.1 (::1) -- the gateway's own 10.0.2.2 is answered by its stack, as
    slirp4netns answers its own -- and the host pings it through an unprivileged ping socket:
    net.ipv4.ping_group_range is set for the test and restored after; refused, the guest sees
    no reply (none forged).
"""
from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from drivers.tuntap import TunNdd
from stack import Stack
from tools.gateway.echo import EchoGateway
from tools.gateway.flows import FlowTable
from tools.gateway.policy import AddressModel, Policy, Relay, Verdict
from tools.gateway.udp import UdpGateway
from tools.lab.netns import NetnsHost, unique_name

from .conftest import require_real_peer
from .helpers import loss_percent, run

REMOTE, REMOTE6 = "198.51.100.7", "2001:db8:5::9"
PING_RANGE = Path("/proc/sys/net/ipv4/ping_group_range")
ECHO = """
import socket, sys
gateway = sys.argv[3]
s = socket.socket(socket.AF_INET6 if ":" in gateway else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.connect((gateway, int(sys.argv[1])))
ok = 0
for size in range(1, 8001, int(sys.argv[2])):
    data = bytes((size + i) & 0xFF for i in range(size))
    s.send(data)
    if s.recv(65535) != data[::-1]:
        print("mismatch", size); sys.exit(1)
    ok += 1
print(ok, s.getsockname()[1])
"""
REFUSED = """
import socket, sys
gateway = sys.argv[2] if len(sys.argv) > 2 else "10.0.2.2"
s = socket.socket(socket.AF_INET6 if ":" in gateway else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.connect((gateway, int(sys.argv[1])))
s.send(b"anyone there?")
try:
    s.recv(100)
    print("answered")
except OSError as exc:
    print(exc.errno)
"""


class Mapped:
    """REMOTE and REMOTE6 stand for the host's loopback; the rest as the real policy says."""

    def __init__(self, allow_host_loopback: bool) -> None:
        self.inner = Policy(AddressModel.from_cidr(), allow_host_loopback=allow_host_loopback)

    def outbound(self, dst: str, port: int) -> Verdict:
        if dst in (REMOTE, REMOTE6):
            return Relay("::1" if dst == REMOTE6 else "127.0.0.1", port)
        return self.inner.outbound(dst, port)


@contextmanager
def ping_group_range(value: str) -> Iterator[None]:
    """net.ipv4.ping_group_range of this (the gateway's) namespace for the test, then restored."""
    saved = PING_RANGE.read_text()
    PING_RANGE.write_text(value)
    try:
        yield
    finally:
        PING_RANGE.write_text(saved)


@asynccontextmanager
async def linux_guest(netns: NetnsHost, *, allow_host_loopback: bool = True) -> AsyncIterator[tuple[Any, Any]]:
    """The guest 10.0.2.100 and fd00::100 (slirp4netns's model), its default routes via the
    gateway's 10.0.2.2 and fd00::2."""
    ndd = TunNdd(unique_name("tg"))
    ndd.create()
    netns.adopt(ndd.ndd_name, "10.0.2.100/24")
    netns.ip("-6", "addr", "add", "fd00::100/64", "dev", ndd.ndd_name, "nodad")
    netns.ip("route", "add", "default", "via", "10.0.2.2")
    netns.ip("-6", "route", "add", "default", "via", "fd00::2")
    async with Stack("gateway") as st:
        ifp = st.add_interface(ndd, "10.0.2.2/24")
        st.add_address(ifp, "fd00::2/64", dad=False)
        ifp.transparent = True
        flows = FlowTable()
        policy = Mapped(allow_host_loopback)
        udp, echo = UdpGateway(st, policy, flows), EchoGateway(st, policy, flows)
        async with trio.open_nursery() as nursery:
            await nursery.start(udp.run)
            await nursery.start(echo.run)
            yield udp, echo
            nursery.cancel_scope.cancel()


async def reverse_server(sock: trio.socket.SocketType) -> None:
    while True:
        data, peer = await sock.recvfrom(65535)
        await sock.sendto(data[::-1], peer)


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["v4", "v6"])
async def test_linux_guest_udp_through_the_gateway(netns: NetnsHost, family: int) -> None:
    require_real_peer()
    v6 = family == socket.AF_INET6
    loopback, gateway = ("::1", "fd00::2") if v6 else ("127.0.0.1", "10.0.2.2")
    server = trio.socket.socket(family, trio.socket.SOCK_DGRAM)
    await server.bind((loopback, 0))
    port = server.getsockname()[1]
    closed = trio.socket.socket(family, trio.socket.SOCK_DGRAM)
    await closed.bind((loopback, 0))
    free = closed.getsockname()[1]
    closed.close()                                     # nothing listens there now
    async with linux_guest(netns) as (udp, _echo), trio.open_nursery() as n:
        n.start_soon(reverse_server, server)
        step = 1                                       # every size
        r = await run(netns.exec_argv(sys.executable, "-c", ECHO, str(port), str(step), gateway), timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
        count, gport = map(int, r.stdout.split())
        assert count == len(range(1, 8001, step))
        r = await run(netns.exec_argv(sys.executable, "-c", REFUSED, str(free), gateway), timeout=60)
        assert r.stdout.strip() == b"111", r.stdout + r.stderr          # ECONNREFUSED
        n.cancel_scope.cancel()
    server.close()
    st = udp.stats
    assert st.datagrams_to_guest == st.datagrams_to_host - 1 == count   # the refused one came back as ICMP
    assert st.icmp_to_guest >= 1 and st.flows_opened == 2 and st.dropped_queue == 0
    assert st.port_kept + st.port_changed == 2 and gport > 0


async def test_linux_guest_udp_refused_without_host_loopback(netns: NetnsHost) -> None:
    require_real_peer()
    async with linux_guest(netns, allow_host_loopback=False) as (udp, _echo):
        r = await run(netns.exec_argv(sys.executable, "-c", REFUSED, "9"), timeout=60)
        assert r.stdout.strip() == b"111", r.stdout + r.stderr          # refused as a closed port
    assert udp.stats.refused_policy >= 1 and udp.stats.datagrams_to_host == 0


@pytest.mark.parametrize("remote", [REMOTE, REMOTE6], ids=["v4", "v6"])
@pytest.mark.parametrize("allowed", [True, False], ids=["ping-sockets", "no-ping-sockets"])
async def test_linux_guest_ping_through_the_gateway(netns: NetnsHost, allowed: bool, remote: str) -> None:
    require_real_peer()
    with ping_group_range("0 2147483647" if allowed else "1 0"):     # IPv6 ping sockets obey it too
        async with linux_guest(netns) as (_udp, echo):
            r = await run(netns.exec_argv("ping", "-c", "3", "-i", "0.2", "-W", "2", "-s", "1000", remote), timeout=60)
    st = echo.stats
    if allowed:
        assert r.returncode == 0 and loss_percent(r.stdout) == 0, r.stdout + r.stderr
        assert st.replies_to_guest == st.requests_to_host == 3 and st.octets_to_guest == 3000
    else:
        assert r.returncode != 0 and loss_percent(r.stdout) == 100, r.stdout + r.stderr
        assert st.replies_to_guest == 0 and st.dropped_unavailable == 3
