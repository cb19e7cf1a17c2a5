"""The gateway table's peers (tools/bench/gateway.py): tools/bench/peer.py's roles, plus the
two that table needs where the guest is always the client (a gateway relays connections the
guest opens):

  down-server / down-client  bulk internet -> guest: the server sends for `seconds`, then
                             closes; the client reads to EOF and reports what it got
  crr-server / crr-client    connect + 1-byte request + 1-byte response + close, sequential

Run as `python -m tools.bench.gwpeer ROLE ...` (stdlib only, like peer.py); each role prints
one JSON line, servers first `{"ready": true, "port": N}`.
"""
from __future__ import annotations

import argparse
import socket
import sys
import time

from tools.bench import peer

CHUNK = peer.CHUNK


def role_down_server(a: argparse.Namespace) -> None:
    """Accept one connection, send for `seconds`, close; report what was sent."""
    ls = peer.listener(a)
    ls.settimeout(a.timeout)
    c, _ = ls.accept()
    c.settimeout(a.seconds + 30)
    buf = b"\xa5" * CHUNK
    sent = 0
    end = time.monotonic() + a.seconds
    while time.monotonic() < end:
        sent += c.send(buf)
    c.close()
    ls.close()
    peer.emit(sent=sent)


def role_down_client(a: argparse.Namespace) -> None:
    """Connect, read to EOF; time from connect to EOF."""
    s = peer.connect_retry(a.host, a.port, time.monotonic() + a.connect_timeout)
    s.settimeout(a.timeout)
    t0 = time.monotonic()
    got = 0
    while data := s.recv(CHUNK):
        got += len(data)
    dt = time.monotonic() - t0
    s.close()
    peer.emit(bytes=got, seconds=dt, mbit_s=got * 8 / dt / 1e6 if dt else 0.0)


def role_crr_server(a: argparse.Namespace) -> None:
    """Per connection: read the 1-byte request, answer 1 byte, close; until `timeout` idle."""
    ls = peer.listener(a, backlog=1024)
    ls.settimeout(a.timeout)
    n = 0
    try:
        while True:
            c, _ = ls.accept()
            c.settimeout(5)
            try:
                if c.recv(1):
                    c.sendall(b"y")
                    n += 1
            except OSError:
                pass
            c.close()
    except TimeoutError:
        pass
    ls.close()
    peer.emit(served=n)


def role_crr_client(a: argparse.Namespace) -> None:
    """Sequential connect -> 1-byte request -> 1-byte response -> close, for `seconds`."""
    n = 0
    t0 = time.monotonic()
    end = t0 + a.seconds
    while time.monotonic() < end:
        s = socket.create_connection((a.host, a.port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"x")
        if s.recv(1) != b"y":
            raise ConnectionError("no response")
        s.close()
        n += 1
    dt = time.monotonic() - t0
    peer.emit(count=n, seconds=dt, per_s=n / dt)


ROLES = {"down-server": (role_down_server, False), "down-client": (role_down_client, True),
         "crr-server": (role_crr_server, False), "crr-client": (role_crr_client, True)}


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ROLES:
        peer.main(argv)                    # source, sink, rr-client, rr-server, ...
        return
    fn, client = ROLES[argv[0]]
    p = argparse.ArgumentParser(prog=f"python -m tools.bench.gwpeer {argv[0]}")
    if client:
        p.add_argument("host")
    p.add_argument("port", type=int)
    if not client:
        p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--connect-timeout", type=float, default=30.0)
    a = p.parse_args(argv[1:])
    try:
        fn(a)
    except (OSError, ConnectionError) as exc:
        peer.emit(error=f"{type(exc).__name__}: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
