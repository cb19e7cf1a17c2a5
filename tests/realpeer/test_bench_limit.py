"""The bench's minimal TCP endpoint (tools/bench/limit.py) against the Linux kernel over a TUN:
every byte of a short bulk transfer each way and of a request/response exchange arrives intact
(no timing: speed is `make bench`'s figure)."""
from __future__ import annotations

import hashlib
import sys
import textwrap
from collections.abc import Iterator

import pytest

from drivers.tuntap import TunNdd
from tools.bench.limit import CLOSED, MOD, PATTERN, Endpoint, Loop, Peer
from tools.lab.netns import NetnsHost, unique_name

KERNEL, LIMIT = "10.79.3.1", "10.79.3.2"
SIZE = 3_000_000


@pytest.fixture(params=[True, False], ids=["offload", "no-offload"])
def loop(request: pytest.FixtureRequest, netns: NetnsHost) -> Iterator[Loop]:
    ndd = TunNdd(unique_name("tsl"), offload=request.param)
    ndd.create()
    try:
        netns.adopt(ndd.ndd_name, f"{KERNEL}/24")
        yield Loop(Endpoint(LIMIT, offload=ndd.vnet, hash_input=True), ndd.fd)
    finally:
        ndd.release()


def kernel(netns: NetnsHost, script: str) -> Peer:
    return Peer(netns.exec_argv(sys.executable, "-c", textwrap.dedent(script)))


def test_bulk_into_the_endpoint_arrives_intact(loop: Loop, netns: NetnsHost) -> None:
    loop.ep.listen(5001, "sink")
    peer = kernel(netns, f"""
        import hashlib, json, os, socket
        data = os.urandom({SIZE})
        s = socket.create_connection(("{LIMIT}", 5001), timeout=20)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):
            pass
        print(json.dumps({{"sha256": hashlib.sha256(data).hexdigest()}}), flush=True)
    """)
    try:
        loop.run(lambda: False, watch=peer.out_fd, timeout=30)
        res = peer.line()
    finally:
        peer.stop()
    (c,) = [c for c in [*loop.ep.conns.values(), *loop.ep.finished] if c.lport == 5001]
    assert c.rx_bytes == SIZE
    assert c.hasher.hexdigest() == res["sha256"]


def test_bulk_out_of_the_endpoint_arrives_intact(loop: Loop, netns: NetnsHost) -> None:
    peer = kernel(netns, """
        import hashlib, json, socket
        ls = socket.socket()
        ls.bind(("0.0.0.0", 5002))
        ls.listen(1)
        print(json.dumps({"ready": True}), flush=True)
        ls.settimeout(20)
        c, _ = ls.accept()
        c.settimeout(20)
        h, n = hashlib.sha256(), 0
        while data := c.recv(65536):
            h.update(data)
            n += len(data)
        c.close()
        print(json.dumps({"bytes": n, "sha256": h.hexdigest()}), flush=True)
    """)
    try:
        peer.line()
        c = loop.ep.connect(KERNEL, 5002)
        loop.run(lambda: (c.snd_nxt - c.iss - 1) % MOD >= SIZE, timeout=30)
        loop.ep.shutdown(c)
        loop.run(lambda: c.state == CLOSED, timeout=30)
        res = peer.line()
    finally:
        peer.stop()
    sent = (c.snd_nxt - c.iss - 2) % MOD
    stream = PATTERN * (sent // len(PATTERN) + 1)
    assert res["bytes"] == sent >= SIZE
    assert res["sha256"] == hashlib.sha256(stream[:sent]).hexdigest()


def test_request_response_echoes_every_byte(loop: Loop, netns: NetnsHost) -> None:
    loop.ep.listen(5007, "echo")
    peer = kernel(netns, f"""
        import json, socket
        s = socket.create_connection(("{LIMIT}", 5007), timeout=20)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bad = 0
        for i in range(500):
            s.send(bytes([i % 256]))
            bad += s.recv(1) != bytes([i % 256])
        s.close()
        print(json.dumps({{"bad": bad}}), flush=True)
    """)
    try:
        loop.run(lambda: False, watch=peer.out_fd, timeout=30)
        res = peer.line()
    finally:
        peer.stop()
    assert res["bad"] == 0
