"""Our harness around pmd-pytcp (GPL; pip-installed into `.bench/venv`, never copied here).

Runs under the scratch venv's Python as a plain script, driven line by line over
stdin/stdout by `tools.bench.pytcp`.  It only calls pmd-pytcp's public API: the stack
lifecycle (`stack.init`, `stack.initialize_interface__tap`, `stack.add_interface`,
`stack.start`, `stack.stop`) and its BSD-style asyncio sockets (`socket.socket`, `bind`,
`listen`, `accept`, `connect`, `send`, `recv`, `status()`).

Conversation (one JSON line per event on stdout):
  -> {"event": "tap", "dev": NAME}          TAP created; the parent moves it into a netns
  <- go                                     parent has configured the kernel side
  -> {"event": "listening", "after_s": T}   sink, echo, accept, hold listeners bound (after its ACD)
  <- send HOST PORT SECONDS                 connect to a Linux sink and send bulk
  -> {"event": "sent", "bytes": N}
  <- membase / memstat                      start tracemalloc / report growth per held connection
  -> {"event": "membase"} / {"event": "mem", "held": N, "py_kib": X, "rss_kib": Y}
  <- quit
Sink/echo results are reported as {"event": "sink", ...} when each connection ends.
"""
from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import json
import sys
import time
import tracemalloc
from typing import Any

from pmd_net_addr import Ip4IfAddr, MacAddress
from pmd_pytcp import socket as psock
from pmd_pytcp import stack

TX_LIMIT = 2 * 1024 * 1024  # its send() buffers without limit: keep at most this much queued
CHUNK = 64 * 1024


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def readline() -> str:
    line: str = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return line.strip()


async def bind_listener(addr: str, port: int, deadline: float, *, nodelay: bool = False) -> Any:
    """Bind once the stack owns `addr`: until its address conflict detection ends, EADDRNOTAVAIL."""
    while True:
        s = psock.socket(psock.AF_INET, psock.SOCK_STREAM)
        try:
            s.bind((addr, port))
        except OSError as exc:
            s.close()
            if exc.errno != errno.EADDRNOTAVAIL or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
            continue
        if nodelay:  # like the Linux echo peer: answer each byte at once (inherited by accepted sockets)
            s.setsockopt(psock.IPPROTO_TCP, psock.TCP_NODELAY, 1)
        s.listen(backlog=16)
        return s


async def serve_sink(ls: Any) -> None:
    while True:
        c, _ = await ls.accept()
        t0, got = time.monotonic(), 0
        while data := await c.recv():
            got += len(data)
        c.close()
        emit(event="sink", bytes=got, seconds=time.monotonic() - t0)


async def serve_echo(ls: Any) -> None:
    while True:
        c, _ = await ls.accept()
        while data := await c.recv():
            await c.send(data)
        c.close()


async def serve_close(ls: Any) -> None:
    """Accept and close at once: the peer of Linux's connect/close loop."""
    while True:
        c, _ = await ls.accept()
        c.close()


async def serve_hold(ls: Any, held: list[Any]) -> None:
    """Accept and keep: idle connections for the memory figure."""
    while True:
        c, _ = await ls.accept()
        held.append(c)


def rss_kib() -> int:
    """VmRSS less what tracemalloc itself holds for its traces (it is on while we measure)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) - tracemalloc.get_tracemalloc_memory() // 1024
    return 0


async def send_bulk(host: str, port: int, seconds: float) -> int:
    s = psock.socket(psock.AF_INET, psock.SOCK_STREAM)
    await s.connect((host, port))
    buf = b"\xa5" * CHUNK
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await s.send(buf)
        sent += len(buf)
        while s.status().tx_buffer_len > TX_LIMIT:  # backpressure by polling its public status
            await asyncio.sleep(0.001)
    s.close()  # graceful: queued data, then FIN; the Linux sink times the whole transfer
    return sent


async def main(a: argparse.Namespace) -> None:
    tap = stack.initialize_interface__tap(a.dev, mac_address=MacAddress(a.mac))
    emit(event="tap", dev=a.dev)
    if await readline() != "go":
        return
    stack.init()
    stack.add_interface(**tap, ip4_host=Ip4IfAddr(a.addr), ip4_dhcp=False, ip6_support=False,
                        ip6_gua_autoconfig=False, ip6_lla_autoconfig=False)
    await stack.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        t0 = time.monotonic()
        ip = a.addr.split("/")[0]
        sink = await bind_listener(ip, a.sink_port, t0 + a.bind_timeout)
        echo = await bind_listener(ip, a.echo_port, t0 + a.bind_timeout, nodelay=True)
        accept = await bind_listener(ip, a.accept_port, t0 + a.bind_timeout)
        hold = await bind_listener(ip, a.hold_port, t0 + a.bind_timeout)
        held: list[Any] = []
        tasks = [asyncio.create_task(serve_sink(sink)), asyncio.create_task(serve_echo(echo)),
                 asyncio.create_task(serve_close(accept)), asyncio.create_task(serve_hold(hold, held))]
        base = (0, 0)
        emit(event="listening", after_s=time.monotonic() - t0)
        while (line := await readline()) and line != "quit":
            cmd, *args = line.split()
            if cmd == "send":
                try:
                    emit(event="sent", bytes=await send_bulk(args[0], int(args[1]), float(args[2])))
                except OSError as exc:
                    emit(event="sent", error=str(exc))
            elif cmd == "membase":
                gc.collect()
                tracemalloc.start()
                base = (tracemalloc.get_traced_memory()[0], rss_kib())
                emit(event="membase")
            elif cmd == "memstat":  # growth since membase, per connection held
                gc.collect()
                n = len(held)
                py, rss = tracemalloc.get_traced_memory()[0] - base[0], rss_kib() - base[1]
                emit(event="mem", held=n, py_kib=py / 1024 / n if n else None, rss_kib=rss / n if n else None)

    finally:
        for t in tasks:
            t.cancel()
        await stack.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dev", required=True)
    p.add_argument("--addr", required=True, help="stack address/prefix, e.g. 10.78.1.2/24")
    p.add_argument("--mac", default="02:00:00:78:01:02")
    p.add_argument("--sink-port", type=int, default=5001)
    p.add_argument("--echo-port", type=int, default=5007)
    p.add_argument("--accept-port", type=int, default=5009)
    p.add_argument("--hold-port", type=int, default=5010)
    p.add_argument("--bind-timeout", type=float, default=40.0)
    try:
        asyncio.run(main(p.parse_args()))
    except Exception as exc:  # reported to the parent as data, which prints it in the table
        emit(event="error", error=f"{type(exc).__name__}: {exc}")
        sys.exit(1)
