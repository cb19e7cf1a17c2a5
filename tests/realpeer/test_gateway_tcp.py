"""The gateway's TCP side with a Linux guest (tools/gateway/tcp.py): the guest's namespace
reaches the gateway over TUN, its default route via 10.0.2.2; with host loopback allowed,
a connection to 10.0.2.2:PORT is relayed to a server on this host's 127.0.0.1:PORT (the
test's own, on loopback), 20 MiB each way with SHA-256; a closed port is the guest's
ECONNREFUSED, and with host loopback off the guest is refused too."""
from __future__ import annotations

import hashlib
import random
import sys

import pytest
import trio

from drivers.tuntap import TunNdd
from stack import Stack
from tools.gateway.flows import FlowTable
from tools.gateway.policy import AddressModel, Policy
from tools.gateway.tcp import TcpGateway
from tools.lab.netns import NetnsHost, unique_name

from .conftest import require_real_peer
from .helpers import run

SIZE = 20 << 20
GUEST = """
import hashlib, socket, sys
s = socket.create_connection(("10.0.2.2", int(sys.argv[1])), timeout=30)
up = int(sys.argv[2])
data = bytes((i * 7 + 3) & 0xFF for i in range(65536))
sent = hashlib.sha256(); left = up
while left:
    chunk = data[:min(left, len(data))]; s.sendall(chunk); sent.update(chunk); left -= len(chunk)
s.shutdown(socket.SHUT_WR)
got = hashlib.sha256(); n = 0
while d := s.recv(1 << 20):
    got.update(d); n += len(d)
print(sent.hexdigest(), got.hexdigest(), n)
"""
REFUSED = """
import socket, sys
try:
    socket.create_connection(("10.0.2.2", int(sys.argv[1])), timeout=20)
    print("connected")
except OSError as exc:
    print(exc.errno)
"""


def _guest_pattern(n: int) -> hashlib._Hash:
    data = bytes((i * 7 + 3) & 0xFF for i in range(65536))
    h = hashlib.sha256()
    while n:
        chunk = data[:min(n, len(data))]
        h.update(chunk)
        n -= len(chunk)
    return h


@pytest.mark.parametrize("allow", [True, False], ids=["host-loopback", "no-host-loopback"])
async def test_linux_guest_through_the_gateway(netns: NetnsHost, allow: bool) -> None:
    require_real_peer()
    down = random.Random(9).randbytes(SIZE)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    received = hashlib.sha256()

    async def host_server() -> None:
        stream = await listeners[0].accept()
        while data := await stream.receive_some(1 << 20):
            received.update(data)
        await stream.send_all(down)
        await stream.aclose()

    ndd = TunNdd(unique_name("tg"))
    ndd.create()
    netns.adopt(ndd.ndd_name, "10.0.2.100/24")
    netns.ip("route", "add", "default", "via", "10.0.2.2")
    async with Stack("gateway") as st:
        ifp = st.add_interface(ndd, "10.0.2.2/24")
        ifp.transparent = True
        gw = TcpGateway(st, Policy(AddressModel.from_cidr(), allow_host_loopback=allow), FlowTable())
        async with trio.open_nursery() as nursery:
            await nursery.start(gw.run)
            if allow:
                nursery.start_soon(host_server)
                r = await run(netns.exec_argv(sys.executable, "-c", GUEST, str(port), str(SIZE)), timeout=120)
                sent, got, n = r.stdout.decode().split()
                assert sent == received.hexdigest() == _guest_pattern(SIZE).hexdigest()
                assert (got, int(n)) == (hashlib.sha256(down).hexdigest(), SIZE), r.stderr
                closed = await trio.open_tcp_listeners(0, host="127.0.0.1")
                free = closed[0].socket.getsockname()[1]
                await closed[0].aclose()            # nothing listens there now
                r = await run(netns.exec_argv(sys.executable, "-c", REFUSED, str(free)), timeout=60)
                assert r.stdout.strip() == b"111", r.stdout + r.stderr      # ECONNREFUSED
            else:
                r = await run(netns.exec_argv(sys.executable, "-c", REFUSED, str(port)), timeout=60)
                assert r.stdout.strip() == b"111", r.stdout + r.stderr      # refused: no loopback
                assert gw.stats.refused_policy >= 1
            nursery.cancel_scope.cancel()
    await listeners[0].aclose()
