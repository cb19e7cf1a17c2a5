"""Differential test: the scenario table (tests/differential/scenarios.py) run against
Linux's own socket module and against tunstack must give the same outcomes.

Linux: a namespace at LOCAL joined by a veth to a PEER namespace.  tunstack: a Stack on
a TUN at LOCAL whose kernel side, in a PEER namespace, is PEER.  Both families: LOCAL6 /
PEER6 and the link-local LOCALLL / PEERLL sit beside LOCAL / PEER on the same link (added
without DAD, so usable at once).  Each PEER namespace runs the same UDP and TCP echo on
ECHO_PORT, dual-stack on `::` as a Linux server would listen (the TCP echo closes after
the client's FIN), nothing on CLOSED_PORT, and does not rate-limit its ICMP or ICMPv6
errors (so the outcome never depends on how many scenarios ran before)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from drivers.tuntap import TunNdd
from stack import Stack
from tests.differential import runner
from tests.differential.scenarios import ECHO_PORT, LOCAL, LOCAL6, LOCALLL, PEER, PEER6, PEERLL, SCENARIOS
from tools.lab.netns import NetnsHost, ip, unique_name

from .conftest import require_real_peer

ROOT = Path(__file__).resolve().parents[2]
ECHO = f"""
import socket, threading
PORT = {ECHO_PORT}

def udp(s):
    while True:
        d, a = s.recvfrom(65535)
        s.sendto(d, a)

def tcp_echo(c):
    # echo until the client's FIN, then close our side too
    try:
        while d := c.recv(65536):
            c.sendall(d)
    except OSError:
        pass
    finally:
        c.close()

# dual stack: IPv4 clients arrive as ::ffff:a.b.c.d, link-local ones with their scope id
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
u.bind(("::", PORT))
t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("::", PORT))
t.listen(64)
threading.Thread(target=udp, args=(u,), daemon=True).start()
print("ready", flush=True)
while True:
    c, _ = t.accept()
    threading.Thread(target=tcp_echo, args=(c,), daemon=True).start()
"""


@contextmanager
def peer_namespace() -> Iterator[NetnsHost]:
    """A fresh namespace that will hold PEER, with the echo service once `echo()` is called."""
    host = NetnsHost.create(unique_name("td"))
    try:
        host.run("sysctl", "-qw", "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0", check=True)
        yield host
    finally:
        host.delete()


@contextmanager
def echo_service(host: NetnsHost) -> Iterator[None]:
    proc = subprocess.Popen(host.exec_argv(sys.executable, "-c", ECHO), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        proc.kill()
        proc.wait()


def add_ipv6(host: NetnsHost, dev: str, addr: str, link_local: str) -> None:
    """The kernel's IPv6 addresses on `dev`, usable at once (no DAD: the link is ours alone),
    added once the kernel made its own link-local address -- the order tunstack's are in (its
    RFC 7217 link-local comes with the interface).  Source selection cannot tell two /64
    link-locals apart (RFC 6724 rule 8 stops at the prefix length) and takes the newest, so
    `link_local` is the source towards the other side's, in both runs."""
    deadline = time.monotonic() + 10
    while not host.ip("-6", "-o", "addr", "show", "dev", dev, "scope", "link").stdout.strip():
        assert time.monotonic() < deadline, f"no link-local address on {dev}"
        time.sleep(0.05)
    for a in (addr, link_local):
        host.ip("-6", "addr", "add", f"{a}/64", "dev", dev, "nodad")


def linux_results(names: list[str] | None = None) -> dict[str, Any]:
    with peer_namespace() as peer, peer_namespace() as local:
        a, b = unique_name("dl"), unique_name("dp")
        ip("link", "add", a, "netns", local.name, "type", "veth", "peer", "name", b, "netns", peer.name)
        local.ip("addr", "add", f"{LOCAL}/24", "dev", a)
        local.ip("link", "set", a, "up")
        peer.ip("addr", "add", f"{PEER}/24", "dev", b)
        peer.ip("link", "set", b, "up")             # carrier on both ends: link-locals appear
        add_ipv6(local, a, LOCAL6, LOCALLL)
        add_ipv6(peer, b, PEER6, PEERLL)
        with echo_service(peer):
            proc = subprocess.run(local.exec_argv(sys.executable, "-m", "tests.differential.runner", *(names or [])),
                                  cwd=ROOT, capture_output=True, text=True, timeout=120,
                                  env={**os.environ, "DIFF_DEV": a})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


async def tunstack_run(names: list[str] | None = None) -> dict[str, Any]:
    with peer_namespace() as peer:
        ndd = TunNdd(unique_name("dt"))
        ndd.create()
        peer.adopt(ndd.ndd_name, f"{PEER}/24")
        add_ipv6(peer, ndd.ndd_name, PEER6, PEERLL)
        with echo_service(peer):
            async with Stack("differential") as st:
                st.add_interface(ndd, f"{LOCAL}/24")
                for addr in (LOCAL6, LOCALLL):      # a TUN: no DAD, usable at once
                    st.add_address(ndd.ndd_name, f"{addr}/64", dad=False)
                runner.set_interface(ndd.ndd_name, st.if_nametoindex(ndd.ndd_name))
                return await runner.run_table(st.socket, lambda s: s.connect(0), names)


@pytest.fixture(scope="module")
def results() -> tuple[dict[str, Any], dict[str, Any]]:
    require_real_peer()
    return linux_results(), trio.run(tunstack_run)


# Differences that cannot be fixed in the socket layer or UDP (strict: they fail loudly once fixed)
KNOWN_DIFFERENCES: dict[str, str] = {
}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_DIFFERENCES[n], strict=True))
                                  if n in KNOWN_DIFFERENCES else n for n in SCENARIOS])
def test_same_as_linux(results: tuple[dict[str, Any], dict[str, Any]], name: str) -> None:
    linux, tunstack = results
    steps = [list(s) if not any(isinstance(a, bytes) and len(a) > 16 for a in s) else [s[0], s[1], "..."]
             for s in SCENARIOS[name]]
    table = "\n".join(f"{st!s:60.60} linux={lx} tunstack={ts}"
                      for st, lx, ts in zip(steps, linux[name], tunstack[name], strict=False))   # shown on failure
    assert tunstack[name] == linux[name], f"\n{table}"
