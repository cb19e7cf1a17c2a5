"""The TCP part of `tunstack demo` (over TUN, either family; tools/demo/tour.py and
tools/demo/ipv6.py call these).

Captured with the rest: Linux `curl` fetches `/` and `/bytes/N` from the stack's http
service, and a stack connect to a closed Linux port meets ECONNREFUSED.  Then, after the
captures have stopped (100 MB would bloat them, and writing them would slow the very
transfer being timed): 200 MB each way with its Mbit/s -- Linux (Python) into the stack's
discard service, and a stack socket into a Linux sink that checks the SHA-256.
"""
from __future__ import annotations

import errno
import hashlib
import re
import shutil
import socket
import subprocess
import sys
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from tools.lab.netns import NetnsHost
from tools.services.builtin import ServiceStats, tcp_discard, tcp_http
from tools.services.http import pattern_bytes

from .probes import family_of, http_get_pattern, url_host

if TYPE_CHECKING:
    from .report import Report

HTTP_BYTES = 10_000_000
BULK = 200_000_000           # large enough for a steady figure (50 MB took ~30 ms)
SINK_PORT = 5001
_BLOCK = memoryview(pattern_bytes(0, 1 << 18))   # 256 KiB, a whole number of patterns

LINUX_SENDER = """
import socket, sys, time
n = int(sys.argv[3])
block = memoryview(bytes(range(256)) * 1024)
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
t = time.perf_counter()
left = n
while left:
    k = min(left, len(block))
    s.sendall(block[:k])
    left -= k
s.shutdown(socket.SHUT_WR)
s.recv(1)          # discard's FIN: it has read every byte
print(n, time.perf_counter() - t, flush=True)
"""

LINUX_SINK = """
import hashlib, socket, sys
ls = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], int(sys.argv[2])))
ls.listen(1)
ls.settimeout(30)
print("listening", flush=True)
c, _ = ls.accept()
c.settimeout(30)
h, n = hashlib.sha256(), 0
while d := c.recv(1 << 20):
    h.update(d)
    n += len(d)
c.close()
print(n, h.hexdigest(), flush=True)
"""


def pattern_sha256(n: int) -> str:
    h = hashlib.sha256()
    for off in range(0, n, len(_BLOCK)):
        h.update(_BLOCK[:min(len(_BLOCK), n - off)])
    return h.hexdigest()


def mbits(n: int, seconds: float) -> str:
    return f"{n / 1e6:.0f} MB in {seconds:.2f} s = {n * 8 / max(seconds, 1e-9) / 1e6:.0f} Mbit/s"


async def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    with trio.fail_after(timeout):
        return await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)


async def linux_curl(report: Report, host: NetnsHost, stack_ip: str, label: str,
                     nbytes: int = HTTP_BYTES) -> None:
    if shutil.which("curl") is None:
        report.step(f"{label}: Linux curl against the stack's http service", False, "curl is not installed")
        return
    curl = ["curl", "-6"] if ":" in stack_ip else ["curl"]
    base = f"http://{url_host(stack_ip)}"
    r = await _run(host.exec_argv(*curl, "-sS", "-m", "10", f"{base}/"), 20)
    report.step(f"{label}: Linux `{' '.join(curl)} {base}/` gets the stack's page",
                r.returncode == 0 and b"<h1>tunstack</h1>" in r.stdout,
                f"{len(r.stdout)} bytes of HTML" if r.returncode == 0 else r.stderr.decode().strip())
    url = f"{base}/bytes/{nbytes}"
    r = await _run(host.exec_argv(*curl, "-sS", "-m", "60", "-w", "%{stderr}%{http_code} %{time_total}", url), 70)
    m = re.search(rb"(\d{3}) ([\d.]+)\s*$", r.stderr)
    ok = (r.returncode == 0 and m is not None and m.group(1) == b"200" and len(r.stdout) == nbytes
          and hashlib.sha256(r.stdout).hexdigest() == pattern_sha256(nbytes))
    detail = (f"{len(r.stdout)} bytes, SHA-256 {'ok' if ok else 'MISMATCH'}, "
              + (mbits(len(r.stdout), float(m.group(2))) if m else r.stderr.decode().strip()[-200:]))
    report.step(f"{label}: Linux `{' '.join(curl)} {url}`", ok, detail)


async def stack_tcp_refused(report: Report, st: Any, kernel_ip: str, label: str, port: int = 9) -> None:
    """A SYN to a closed Linux port: the kernel's RST makes connect raise ECONNREFUSED."""
    got = "no error"
    with st.socket(family_of(kernel_ip), socket.SOCK_STREAM) as s:
        with trio.move_on_after(10):
            try:
                await s.connect((kernel_ip, port))
                got = "connected?"
            except OSError as exc:
                got = errno.errorcode.get(exc.errno or 0, str(exc))
    report.step(f"{label}: stack TCP connect to closed {url_host(kernel_ip)}:{port} -> ECONNREFUSED",
                got == "ECONNREFUSED", got)


async def tcp_captured(report: Report, st: Any, host: NetnsHost, kernel_ip: str, stack_ip: str,
                       label: str, http_bytes: int = HTTP_BYTES) -> None:
    http_stats = ServiceStats()
    async with trio.open_nursery() as services:
        await services.start(partial(tcp_http, st, 80, stats=http_stats))
        report.step(f"{label}: the stack serves HTTP on {url_host(stack_ip)}:80", True)
        await linux_curl(report, host, stack_ip, label, http_bytes)
        services.cancel_scope.cancel()
    print(f"    http service: {http_stats.connections} connections, {http_stats.bytes_in} bytes in, "
          f"{http_stats.bytes_out} out, {http_stats.errors} errors")
    await stack_tcp_refused(report, st, kernel_ip, label)


async def linux_to_stack(report: Report, st: Any, host: NetnsHost, stack_ip: str, label: str) -> None:
    stats = ServiceStats()
    async with trio.open_nursery() as services:
        await services.start(partial(tcp_discard, st, 9, stats=stats))
        r = await _run(host.exec_argv(sys.executable, "-c", LINUX_SENDER, stack_ip, "9", str(BULK)), 120)
        services.cancel_scope.cancel()
    fields = r.stdout.split()
    ok = r.returncode == 0 and len(fields) == 2 and stats.bytes_in == BULK
    report.step(f"{label}: Linux sends {BULK // 1_000_000} MB to the stack's TCP discard (not captured)", ok,
                mbits(BULK, float(fields[1])) if ok else f"{stats.bytes_in} bytes arrived; "
                + r.stderr.decode().strip()[-200:])


async def stack_to_linux(report: Report, st: Any, host: NetnsHost, kernel_ip: str, label: str) -> None:
    sink = await trio.lowlevel.open_process(
        host.exec_argv(sys.executable, "-c", LINUX_SINK, kernel_ip, str(SINK_PORT)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout = sink.stdout
    assert stdout is not None   # stdout=PIPE
    out, detail, ok = b"", "", False
    try:
        with trio.fail_after(120):
            while b"listening" not in out:
                chunk = await stdout.receive_some()
                if not chunk:
                    break
                out += chunk
            with st.socket(family_of(kernel_ip), socket.SOCK_STREAM) as s:
                await s.connect((kernel_ip, SINK_PORT))
                t0 = trio.current_time()
                for off in range(0, BULK, len(_BLOCK)):
                    await s.sendall(_BLOCK[:min(len(_BLOCK), BULK - off)])
                s.shutdown(socket.SHUT_WR)
                while await s.recv(65536):   # the sink closes once it has read our FIN
                    pass
                elapsed = trio.current_time() - t0
                info = s.tcp_info() if hasattr(s, "tcp_info") else {}
            async for chunk in stdout:
                out += chunk
            await sink.wait()
        fields = out.split()
        ok = (len(fields) == 3 and int(fields[1]) == BULK
              and fields[2].decode() == pattern_sha256(BULK))
        detail = (mbits(BULK, elapsed) + ", SHA-256 " + ("ok" if ok else f"MISMATCH ({out!r})")
                  + (f"; rtt {info['rtt_us'] / 1000:.2f} ms, cwnd {info['snd_cwnd']} segments, "
                     f"{info['total_retrans']} retransmitted" if {"rtt_us", "snd_cwnd", "total_retrans"} <= set(info)
                     else ""))
    except (OSError, trio.TooSlowError) as exc:
        detail = f"{type(exc).__name__}: {exc}"
    finally:
        if sink.returncode is None:
            sink.kill()
            await sink.wait()
    report.step(f"{label}: the stack sends {BULK // 1_000_000} MB to a Linux TCP sink (not captured)", ok, detail)


async def tcp_bulk(report: Report, st: Any, host: NetnsHost, kernel_ip: str, stack_ip: str, label: str) -> None:
    await linux_to_stack(report, st, host, stack_ip, label)
    await stack_to_linux(report, st, host, kernel_ip, label)


async def memory_tcp(report: Report, sa: Any, sb: Any, b_ip: str) -> None:
    """Two stacks over a memory link: an HTTP GET of 1 MB, then a refused connect."""
    n = 1_000_000
    async with trio.open_nursery() as services:
        await services.start(partial(tcp_http, sb, 80))
        ok, got = False, 0
        with trio.move_on_after(20):
            ok, got = await http_get_pattern(sa, b_ip, n)
        services.cancel_scope.cancel()
    report.step(f"memory: TCP HTTP GET /bytes/{n} between the stacks", ok, f"{got} bytes")
    await stack_tcp_refused(report, sa, b_ip, "memory", port=81)
