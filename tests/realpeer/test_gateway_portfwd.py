"""The gateway's inbound port forwards with Linux on both ends (tools/gateway/portfwd.py,
api.py; issue 13 "Port forwards"): a Linux guest namespace behind the gateway over TUN
(10.0.2.100, default route via 10.0.2.2) runs a TCP and a UDP server that tell each client
the address they see it from; a client namespace joined to this (the root) namespace by a veth
connects to forwards bound on the root side's veth address -- the guest sees the client's own
address and port -- while a client on this host's 127.0.0.1 is shown as 10.0.2.2, the
substitute.  Forwards are made by -t / -u specs and through the JSON API socket (socat as the
client, as scripts use it).

Addresses: the veth is a /30 of 100.64.0.0/10 picked from the pid (shared address space, RFC
6598: on no network of this machine), the guest's 10.0.2.0/24 exists only in its namespace."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from drivers.tuntap import TunNdd
from stack import Stack
from tools.gateway.api import ApiServer
from tools.gateway.args import parse_port_spec
from tools.gateway.policy import AddressModel
from tools.gateway.portfwd import PortForwarder
from tools.lab.netns import NetnsHost, ip, unique_name

from .conftest import require_real_peer
from .helpers import kill_if_running, run, start_linux

GUEST_SERVER = """
import socket, threading
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", 8080)); tcp.listen(16)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("0.0.0.0", 5353))
def serve(c, peer):
    c.sendall(("%s %d\\n" % peer).encode())
    while d := c.recv(1 << 20):
        c.sendall(d)
    c.shutdown(socket.SHUT_WR); c.close()
def udp_echo():
    while True:
        d, peer = udp.recvfrom(65535)
        udp.sendto(("%s %d " % peer).encode() + d, peer)
threading.Thread(target=udp_echo, daemon=True).start()
print("bound", flush=True)
while True:
    c, peer = tcp.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
"""
TCP_CLIENT = """
import hashlib, socket, sys, threading
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port), timeout=30)
buf = b""
while b"\\n" not in buf:
    d = s.recv(4096)
    if not d:
        print("closed", s.getsockname()[1]); sys.exit()
    buf += d
line, _, rest = buf.partition(b"\\n")
got = hashlib.sha256(rest); n = [len(rest)]
def read():
    while d := s.recv(1 << 20):
        got.update(d); n[0] += len(d)
reader = threading.Thread(target=read)     # the echo comes back while we send: read it meanwhile
reader.start()
data = bytes((i * 13 + 5) & 0xFF for i in range(65536))
left = size
while left:
    chunk = data[:min(left, len(data))]; s.sendall(chunk); left -= len(chunk)
s.shutdown(socket.SHUT_WR)
reader.join()
print(line.decode(), s.getsockname()[1], got.hexdigest(), n[0])
"""
UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(10)
s.connect((sys.argv[1], int(sys.argv[2])))
peers = set()
for size in (1, 100, 1400, 8000):
    msg = bytes([size & 0xFF]) * size
    s.send(msg)
    reply = s.recv(65535)
    addr, port, body = reply.split(b" ", 2)
    assert body == msg, (size, len(body))
    peers.add((addr.decode(), int(port)))
print(" ".join("%s %d" % p for p in peers), s.getsockname()[1])
"""
REFUSED = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    print("connected")
except OSError as exc:
    print(exc.errno)
"""


def pattern_sha(n: int) -> str:
    data = bytes((i * 13 + 5) & 0xFF for i in range(65536))
    h = hashlib.sha256()
    while n:
        chunk = data[:min(n, len(data))]
        h.update(chunk)
        n -= len(chunk)
    return h.hexdigest()


def veth_addresses() -> tuple[str, str]:
    """(root side, client side) of a /30 in 100.64.0.0/10 chosen by the pid."""
    base = (100 << 24) | (64 << 16) | ((os.getpid() % (1 << 20)) << 2)
    return socket.inet_ntoa((base + 1).to_bytes(4, "big")), socket.inet_ntoa((base + 2).to_bytes(4, "big"))


def free_port(host: str, kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Topology:
    guest: NetnsHost
    client: NetnsHost
    root_addr: str
    client_addr: str
    forwarder: PortForwarder
    nursery: trio.Nursery


@asynccontextmanager
async def open_topology(netns: NetnsHost) -> AsyncIterator[Topology]:
    """The guest behind a gateway Stack with a PortForwarder running, and the client namespace
    on its veth; everything deleted on the way out (the adversarial suite uses it too)."""
    require_real_peer()
    client = NetnsHost.create(unique_name())
    root_dev, client_dev = unique_name("tv"), unique_name("tv")
    root_addr, client_addr = veth_addresses()
    server = None
    try:
        ip("link", "add", root_dev, "type", "veth", "peer", "name", client_dev, "netns", client.name)
        ip("addr", "add", f"{root_addr}/30", "dev", root_dev)
        ip("link", "set", root_dev, "up")
        client.ip("addr", "add", f"{client_addr}/30", "dev", client_dev)
        client.ip("link", "set", client_dev, "up")
        ndd = TunNdd(unique_name("tg"))
        ndd.create()
        netns.adopt(ndd.ndd_name, "10.0.2.100/24")
        netns.ip("route", "add", "default", "via", "10.0.2.2")
        server = await start_linux(netns.exec_argv(sys.executable, "-c", GUEST_SERVER))
        async with Stack("gateway") as st:
            st.add_interface(ndd, "10.0.2.2/24").transparent = True
            fwd = PortForwarder(st, AddressModel.from_cidr())
            async with trio.open_nursery() as nursery:
                await nursery.start(fwd.run)
                yield Topology(netns, client, root_addr, client_addr, fwd, nursery)
                nursery.cancel_scope.cancel()
    finally:
        if server is not None:
            await kill_if_running(server)
        ip("link", "del", root_dev, check=False)
        client.delete()


@pytest.fixture
async def topology(netns: NetnsHost) -> AsyncIterator[Topology]:
    async with open_topology(netns) as topo:
        yield topo


async def tcp_through(topo: Topology, port: int, size: int) -> tuple[str, int, int]:
    """A client in the client namespace through the forward: (address the guest saw, port the
    guest saw, the client's own port); the echo checked."""
    r = await run(topo.client.exec_argv(sys.executable, "-c", TCP_CLIENT, topo.root_addr, str(port), str(size)),
                  timeout=120)
    seen_addr, seen_port, own_port, sha, n = r.stdout.decode().split()
    assert (sha, int(n)) == (pattern_sha(size), size), r.stderr
    return seen_addr, int(seen_port), int(own_port)


async def test_tcp_forward_shows_the_client_its_own_address(topology: Topology) -> None:
    topo = topology
    port = free_port(topo.root_addr)
    made = await topo.forwarder.add_spec(parse_port_spec("tcp", f"{topo.root_addr}/{port}:8080"))
    assert [(e.host_addr, e.host_port, e.guest_addr, e.guest_port) for e in made] == \
        [(topo.root_addr, port, "10.0.2.100", 8080)]
    with trio.fail_after(120):
        seen_addr, seen_port, own_port = await tcp_through(topo, port, 8 << 20)
    assert (seen_addr, seen_port) == (topo.client_addr, own_port)       # the real client, port too
    # a client on this host's loopback: shown as the gateway, the documented substitute
    lo_port = free_port("127.0.0.1")
    await topo.forwarder.add_spec(parse_port_spec("tcp", f"127.0.0.1/{lo_port}:8080"))
    with trio.fail_after(30):
        stream = await trio.open_tcp_stream("127.0.0.1", lo_port)
        line = b""
        while not line.endswith(b"\n"):
            line += await stream.receive_some(100)
        await stream.send_all(b"echo")
        assert await stream.receive_some(100) == b"echo"
        await stream.aclose()
    assert line.split()[0] == b"10.0.2.2"
    # a forward to a guest port nobody serves: the client is reset at once
    dead = free_port(topo.root_addr)
    await topo.forwarder.add_spec(parse_port_spec("tcp", f"{topo.root_addr}/{dead}:9"))
    r = await run(topo.client.exec_argv(sys.executable, "-c", TCP_CLIENT, topo.root_addr, str(dead), "1"), timeout=60)
    assert r.stdout.startswith(b"closed") or b"ConnectionResetError" in r.stderr, r.stdout + r.stderr
    s = topo.forwarder.stats
    assert (s.source_shown, s.source_substituted, s.tcp_guest_refused) == (2, 1, 1)


async def test_udp_forward_shows_the_client_its_own_address(topology: Topology) -> None:
    topo = topology
    port = free_port(topo.root_addr, socket.SOCK_DGRAM)
    await topo.forwarder.add_spec(parse_port_spec("udp", f"{topo.root_addr}/{port}:5353"))
    with trio.fail_after(60):
        r = await run(topo.client.exec_argv(sys.executable, "-c", UDP_CLIENT, topo.root_addr, str(port)), timeout=60)
    seen_addr, seen_port, own_port = r.stdout.decode().split()
    assert (seen_addr, seen_port) == (topo.client_addr, own_port), r.stderr     # one flow, the client's own
    assert topo.forwarder.stats.udp_flows_opened == 1 and topo.forwarder.stats.udp_to_client == 4


async def test_api_socket_add_list_remove(topology: Topology, tmp_path: Path) -> None:
    if shutil.which("socat") is None:
        require_real_peer("socat")
    topo = topology
    path = tmp_path / "api.sock"
    server = ApiServer(topo.forwarder, str(path))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await api_session(topo, path)
        nursery.cancel_scope.cancel()
    assert not path.exists()                                           # removed at exit
    assert server.stats.requests == 5 and server.stats.errors == 1


async def api_session(topo: Topology, path: Path) -> None:

    async def socat(request: dict[str, object]) -> dict[str, object]:
        with trio.fail_after(30):
            r = await trio.run_process(["socat", "-t", "5", "-", f"UNIX-CONNECT:{path}"],
                                       stdin=json.dumps(request).encode(), capture_stdout=True, capture_stderr=True)
        reply: dict[str, object] = json.loads(r.stdout)
        return reply

    port = free_port(topo.root_addr)
    add = await socat({"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_addr": topo.root_addr,
                                                               "host_port": port, "guest_port": 8080}})
    assert add == {"return": {"id": 1}}
    assert await socat({"execute": "list_hostfwd"}) == {"entries": [
        {"id": 1, "proto": "tcp", "host_addr": topo.root_addr, "host_port": port, "guest_addr": "10.0.2.100",
         "guest_port": 8080}]}
    with trio.fail_after(60):
        seen_addr, seen_port, own_port = await tcp_through(topo, port, 1 << 20)
    assert (seen_addr, seen_port) == (topo.client_addr, own_port)
    assert await socat({"execute": "remove_hostfwd", "arguments": {"id": 1}}) == {"return": {}}
    assert await socat({"execute": "list_hostfwd"}) == {"entries": []}
    r = await run(topo.client.exec_argv(sys.executable, "-c", REFUSED, topo.root_addr, str(port)), timeout=30)
    assert r.stdout.strip() == b"111", r.stdout + r.stderr             # the forward is gone: ECONNREFUSED
    assert await socat({"execute": "remove_hostfwd", "arguments": {"id": 1}}) == \
        {"error": {"desc": "bad request: remove_hostfwd: bad arguments.id"}}
