"""tcpi_delivery_rate on a real transfer, the stack's and the kernel's (issue 14, point 13).

Each side sends 20 MiB to the other over TUN, reading its own TCP_INFO after every MiB
and once everything is ACKed (SIOCOUTQ 0); the median of those readings is compared (one
reading is one ACK's sample: the kernel's own last one was seen 7x below its goodput).
The kernel, a fast sender, is network-limited: its rate is its goodput (bytes over the
time from the first send to the last ACK) within a factor of 4.  The stack's sender is
limited by the application (Python filling the buffer), so its flights go faster than its
goodput: the rate it reports -- mostly the highest app-limited sample, as Linux keeps it
-- must lie between a quarter of its goodput and four times what the kernel measured on
the same path.  No timing is asserted beyond those factors.
"""
from __future__ import annotations

import socket
import statistics
import struct
import sys

import trio

from protocols.tcp.usrreq import SIOCOUTQ

from .conftest import Peer
from .helpers import kill_if_running, output_at_exit, run, start_linux
from .test_tcp import tcp_sock

TOTAL = 20 << 20
BLOCK = bytes(1 << 16)
FACTOR = 4.0
DELIVERY_RATE = struct.Struct("=Q")           # struct tcp_info: tcpi_delivery_rate at offset 160
DELIVERY_RATE_AT = 160

# The kernel's half: "sink" receives to EOF; "source" connects, sends TOTAL reading its
# delivery rate after every MiB, waits until all is ACKed, reads it again, then prints the
# median reading and its goodput (bytes/s)
LINUX_SIDE = f"""
import fcntl, socket, statistics, struct, sys, time
role, host, port, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if role == "sink":
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((host, port)); l.listen(1); l.settimeout(30)
    print("bound", flush=True)
    s, _ = l.accept(); s.settimeout(60)
    n = 0
    while d := s.recv(1 << 20):
        n += len(d)
    print(n, flush=True)
else:
    s = socket.create_connection((host, port), timeout=60)
    rate = lambda: struct.unpack_from("=Q", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 280),
                                      {DELIVERY_RATE_AT})[0]
    block = bytes(1 << 16); t0 = time.monotonic(); left = total; readings = []
    while left > 0:
        left -= s.send(block[:left])
        if left % (1 << 20) == 0:
            readings.append(rate())
    while struct.unpack("i", fcntl.ioctl(s, {SIOCOUTQ}, b"\\0" * 4))[0]:
        time.sleep(0.001)
    secs = time.monotonic() - t0
    readings.append(rate())
    print(statistics.median(readings), total / secs, flush=True)
    s.close()
"""


def within_factor(rate: float, goodput: float) -> bool:
    return goodput / FACTOR <= rate <= goodput * FACTOR


def delivery_rate(s) -> int:
    return DELIVERY_RATE.unpack_from(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 280), DELIVERY_RATE_AT)[0]


async def stack_sends(peer: Peer) -> tuple[float, float]:
    """The stack's median delivery rate and its goodput sending TOTAL to a kernel sink."""
    proc = await start_linux(peer.exec(sys.executable, "-c", LINUX_SIDE, "sink", peer.kernel_ip, "5011", str(TOTAL)))
    try:
        with tcp_sock(peer) as s, trio.fail_after(60):
            await s.connect((peer.kernel_ip, 5011))
            t0 = trio.current_time()
            left = TOTAL
            readings = []
            while left > 0:
                left -= await s.send(BLOCK[:left])
                if left % (1 << 20) == 0:
                    readings.append(delivery_rate(s))
            while s.ioctl(SIOCOUTQ):
                await trio.sleep(0.001)
            secs = trio.current_time() - t0
            readings.append(delivery_rate(s))
        assert int(await output_at_exit(proc, 30)) == TOTAL
    finally:
        await kill_if_running(proc)
    return statistics.median(readings), TOTAL / secs


async def kernel_sends(peer: Peer) -> tuple[float, float]:
    """The kernel's median delivery rate and its goodput sending TOTAL to the stack."""
    with tcp_sock(peer) as lst:
        lst.bind(("", 5012))
        lst.listen(1)
        got = 0

        async def sink() -> None:
            nonlocal got
            conn, _ = await lst.accept()
            with conn:
                while data := await conn.recv(1 << 20):
                    got += len(data)

        with trio.fail_after(60):
            async with trio.open_nursery() as n:
                n.start_soon(sink)
                r = await run(peer.exec(sys.executable, "-c", LINUX_SIDE, "source", peer.stack_ip, "5012", str(TOTAL)))
    assert r.returncode == 0, r.stderr.decode()
    assert got == TOTAL
    rate, goodput = r.stdout.decode().split()
    return float(rate), float(goodput)


async def test_delivery_rate_matches_the_goodput_as_the_kernels_does(tun_peer: Peer) -> None:
    stack_rate, stack_goodput = await stack_sends(tun_peer)
    kernel_rate, kernel_goodput = await kernel_sends(tun_peer)
    print(f"stack sender delivery_rate {stack_rate * 8e-6:.0f} Mbit/s, goodput {stack_goodput * 8e-6:.0f};"
          f" kernel sender {kernel_rate * 8e-6:.0f} Mbit/s, goodput {kernel_goodput * 8e-6:.0f}")
    assert within_factor(kernel_rate, kernel_goodput)           # the bound holds for the reference
    assert stack_goodput / FACTOR <= stack_rate <= FACTOR * max(kernel_rate, stack_goodput)
