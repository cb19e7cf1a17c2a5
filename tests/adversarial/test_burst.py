"""Connection bursts and SYN floods against the echo service of a stack on a TUN device,
from the Linux side of the device (issue 10, points 7 and 8).

* A burst: soak(2000, 10000) clients connect at once, each sends a line and waits for its
  echo.  Every one must be echoed (Linux: all 10 000 in 0.5-3 s; tunstack lost 12-26 %
  with hundreds of resets before the accept queue, the listener lookup and the TUN queue
  were fixed).
* A SYN flood from an address that never answers (half-open connections fill the SYN
  queue, SYN cookies take over) while a legitimate client connects: it is echoed, the
  tables stay bounded by the backlog, and the CPU per segment stays bounded.
Bounds are several times the measured values (docstrings say which), for a loaded machine.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from functools import partial
from typing import Any

import trio

from tools.bench.tunstack import tun_drops
from tools.services import builtin as services

from .conftest import STACK_IP, Peer, require_real_peer, soak

CLIENT = os.path.join(os.path.dirname(__file__), "burst_client.py")
SPOOFED = "10.77.0.99"          # on the link, answered by nobody: its half-open connections stay


async def start_echo(nursery: trio.Nursery, peer: Peer) -> services.ServiceStats:
    stats = services.ServiceStats()
    await nursery.start(lambda task_status: services.tcp_echo(peer.stack, 7, stats=stats,
                                                               task_status=task_status))
    return stats


async def test_connection_burst_is_all_echoed(tun_peer: Peer) -> None:
    """Measured here: 10 000 clients all echoed in 2.7-2.9 s (half of them by 1.6-1.7 s),
    no reset, no frame dropped at the TUN's queue, 0.27-0.29 ms of stack CPU per connection
    (the kernel's own work inside our TUN writes included).  With the GC's default full
    collections (stack/gcpolicy.py) 3.2-3.5 s; with a 20 000-frame queue 15-22 k drops,
    7.5-8.3 s, 0.58 ms.  Before that: 74-88 % echoed, 545-632 resets or timeouts, stalls
    of minutes.  Linux as the server: 0.5-3 s."""
    n = soak(2000, 10000)
    deadline = soak(90, 150)
    async with trio.open_nursery() as nursery:
        stats = await start_echo(nursery, tun_peer)
        tcp = tun_peer.stack.tcp
        cpu0, overflows0 = time.process_time(), tcp.stats.listen_overflows
        done = await trio.run_process(
            tun_peer.exec("python3", CLIENT, STACK_IP, "7", str(n), str(deadline)),
            capture_stdout=True, capture_stderr=True, check=False)
        cpu = time.process_time() - cpu0
        nursery.cancel_scope.cancel()
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    st, drops = tcp.stats, tun_drops(tun_peer.host, tun_peer.dev)
    print(f"burst of {n}: {result}, stack CPU {cpu:.2f} s ({cpu / n * 1e6:.0f} us per connection); "
          f"RTOs {st.rto_fires}, retransmitted {st.retrans_segs}, SYN cookies {st.syncookies_sent}, "
          f"TUN queue drops {drops}")
    assert drops == 0, f"the TUN's queue dropped {drops} frames"   # each costs a client 1 s or more
    assert result["ok"] == n, result
    assert result["resets"] == 0 and result["timeouts"] == 0 and result["errors"] == 0, result
    assert stats.connections == n and stats.errors == 0
    assert tcp.stats.listen_overflows == overflows0          # the accept loop kept up with the queue
    assert cpu / n < 0.005, f"{cpu / n * 1e3:.2f} ms of CPU per connection"


LEGIT = """
import socket, sys, time
t = time.monotonic()
s = socket.create_connection((sys.argv[1], 7), timeout=float(sys.argv[2]))
s.sendall(b"legitimate\\n")
data = b""
while len(data) < 11:
    chunk = s.recv(100)
    if not chunk:
        break
    data += chunk
print(data.decode().strip(), round(time.monotonic() - t, 2))
"""


async def test_syn_flood_leaves_the_service_to_a_legitimate_client(tun_peer: Peer) -> None:
    """hping3 --flood from an address that never answers, for soak(3, 15) s: the SYN queue
    fills with half-open connections (bounded by the backlog), cookies answer the rest,
    and a client that connects during the flood is echoed.  Measured here: 35-60 us of
    stack CPU per segment processed (the device queue drops what we cannot take), the
    legitimate client echoed after 0.5-3.2 s, at most 4096 half-open connections."""
    require_real_peer("hping3")
    seconds = soak(3, 15)
    tcp = tun_peer.stack.tcp
    peak = 0
    async with trio.open_nursery() as nursery:
        await start_echo(nursery, tun_peer)
        cpu0, segs0 = time.process_time(), tcp.stats.in_segs
        flood = await nursery.start(partial(
            trio.run_process,
            tun_peer.exec("timeout", str(seconds), "hping3", "--flood", "-q", "-S", "-p", "7", "-a", SPOOFED,
                          STACK_IP),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False))

        async def watch_tables() -> None:
            nonlocal peak
            while True:
                peak = max(peak, len(tcp.conns))
                await trio.sleep(0.05)

        nursery.start_soon(watch_tables)
        await trio.sleep(min(1.0, seconds / 2))               # the SYN queue is full by now
        legit = await trio.run_process(
            tun_peer.exec("python3", "-c", LEGIT, STACK_IP, "60"),
            capture_stdout=True, capture_stderr=True, check=False)
        await flood.wait()
        cpu, segs = time.process_time() - cpu0, tcp.stats.in_segs - segs0
        nursery.cancel_scope.cancel()
    print(f"flood {seconds} s: {segs} segments, {cpu:.2f} s CPU ({cpu / max(segs, 1) * 1e6:.0f} us per segment), "
          f"cookies {tcp.stats.syncookies_sent}, peak table {peak}, legit: {legit.stdout!r}")
    assert legit.returncode == 0 and legit.stdout.startswith(b"legitimate"), legit.stderr.decode()[-2000:]
    assert tcp.stats.syncookies_sent > 0                      # the queue overflowed; cookies served
    assert peak <= 4096 + 16                                  # half-open state bounded by the backlog
    assert segs > 1000, segs
    assert cpu / segs < 0.0005, f"{cpu / segs * 1e6:.0f} us of CPU per segment"
