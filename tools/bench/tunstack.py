"""Section d: tunstack itself on a TUN device whose kernel side sits in a namespace.

The stack runs in a child process (`python -m tools.bench.tunstack --group G`), one per
group, so a hang or crash of the stack costs one group, never the whole run, and the
memory figure is the child's own.  In the child the stack uses its sockets directly
(`stack.socket(AF_INET, SOCK_STREAM)`, `bind/listen/accept/connect/send/recv`); the Linux
side is the stdlib peer (`tools/bench/peer.py`) inside the namespace.

Groups: `on` (offload on: bulk both ways, 1-byte request/response, accepted
connections/s), `off` (offload off: bulk both ways), `mem` (idle connections), `on6`:
the `on` measures again over IPv6 (fd00:78:2::/64 on the same TUN; AF_INET6 sockets on
both sides), for the IPv6 rows, and `scale` (offload on; issue 15): 10, 100 and 1000
concurrent bulk connections kernel→stack (aggregate, Jain's fairness over the bytes each
sent, and the packets the TUN's queue dropped), and request/response with 100 clients.
"""
from __future__ import annotations

import argparse
import gc
import json
import socket as pysocket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio

from tools.lab.netns import NetnsHost, unique_name

from .common import (
    UNIT_OF,
    Cell,
    Params,
    Proc,
    Section,
    add_cpu,
    can_run,
    cpu_s,
    netns,
    peer_argv,
    reason,
    record_measure,
)
from .steps import StepCounter

KERNEL_IP, STACK_IP = "10.78.2.1", "10.78.2.2"
KERNEL_IP6, STACK_IP6 = "fd00:78:2::1", "fd00:78:2::2"
CHUNK = 64 * 1024
GROUPS: dict[str, list[str]] = {
    "on": ["bulk_in", "bulk_out", "rr", "cps"],
    "off": ["bulk_in", "bulk_out"],
    "mem": ["mem"],
    "on6": ["bulk_in", "bulk_out", "rr", "cps"],
    "scale": ["bulk_in_c10", "bulk_in_c100", "bulk_in_c1000", "rr_c100"],
}
SCALE = {"bulk_in_c10": 10, "bulk_in_c100": 100, "bulk_in_c1000": 1000, "rr_c100": 100}
ROW_OF = {("on", "bulk_in"): "bulk_in", ("on", "bulk_out"): "bulk_out", ("off", "bulk_in"): "bulk_in_nooff",
          ("off", "bulk_out"): "bulk_out_nooff", ("on", "rr"): "rr", ("on", "cps"): "cps", ("mem", "mem"): "mem",
          ("on6", "bulk_in"): "bulk_in6", ("on6", "bulk_out"): "bulk_out6", ("on6", "rr"): "rr6",
          ("on6", "cps"): "cps6", **{("scale", m): m for m in SCALE}}
# rows a scale measure fills beside its own (fairness, drops)
EXTRA_ROWS = ["fair_c10", "fair_c100", "fair_c1000", "drops_c1000"]
ROWS = [*ROW_OF.values(), "mem_rss", *EXTRA_ROWS]


def limit(measure: str, seconds: float, conns: int) -> float:
    """How long one measurement may take before it counts as hung (a stack under development)."""
    return 20 + 3 * seconds + (conns / 200 if measure == "mem" else 0) + SCALE.get(measure, 0) / 20


# --- parent side ----------------------------------------------------------------
def stream_support() -> str:
    """'' when the stack can make stream sockets, else why not (e.g. ESOCKTNOSUPPORT)."""
    from stack import Stack

    async def probe() -> str:
        async with Stack("bench-probe") as st:
            try:
                st.socket(pysocket.AF_INET, pysocket.SOCK_STREAM).close()
            except OSError as exc:
                return f"stream sockets: {exc}"
        return ""
    try:
        return trio.run(probe)
    except Exception as exc:  # a broken work tree must not stop the other sections
        return f"stack does not start: {reason(exc)}"


def run(p: Params) -> Section:
    sec = Section("tunstack")
    why = can_run() or stream_support()
    if why:
        sec.fail(ROWS, why)
        return sec
    for group in GROUPS:
        argv = [sys.executable, "-m", "tools.bench.tunstack", "--group", group, "--seconds", str(p.seconds),
                "--conns", str(p.idle_conns)]
        # the child bounds each measurement itself; this only catches a child that hangs outright
        budget = 30 + sum(limit(m, p.seconds, p.idle_conns) for m in GROUPS[group])
        try:
            with Proc(argv) as child:
                out = child.line(budget)
        except (OSError, TimeoutError, EOFError) as exc:
            out = {"error": reason(exc)}
        if out.get("offload_flags") is not None:
            sec.details[f"tun_offload_flags_{group}"] = out["offload_flags"]
        for m in GROUPS[group]:
            row = ROW_OF[(group, m)]
            got = record_measure(sec, row, out.get(m), out)
            if row == "mem":
                rss = got.get("details", {}).get("rss_kib_per_conn")
                if rss is None:
                    sec.cells["mem_rss"] = Cell(sec.cells["mem"].value, sec.cells["mem"].note)
                else:
                    sec.set("mem_rss", rss, f"VmRSS growth over {got['details']['connections']} idle connections")
    for row in ROWS:    # a scale measure that failed leaves its extra rows unset
        sec.cells.setdefault(row, Cell.na("its measure gave no result"))
    return sec


# --- child side -----------------------------------------------------------------
class KernelPeer:
    """A bench_peer process in the namespace, read line by line from trio."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.buf = b""

    async def line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while b"\n" not in self.buf:
            chunk = await self.proc.stdout.receive_some(65536)
            if not chunk:
                raise EOFError(f"Linux peer exited ({self.proc.returncode})")
            self.buf += chunk
        text, self.buf = self.buf.split(b"\n", 1)
        obj: dict[str, Any] = json.loads(text)
        if obj.get("error"):
            raise RuntimeError(f"Linux peer: {obj['error']}")
        return obj


@asynccontextmanager
async def kernel_server(host: NetnsHost, role: str, *args: str, stdin: bool = False) -> AsyncIterator[KernelPeer]:
    """A server-type Linux peer for the body's duration; run_process kills it if we are cancelled."""
    async with trio.open_nursery() as n:
        proc = await n.start(partial(trio.run_process, peer_argv(host, role, *args), check=False,
                                     stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
        yield KernelPeer(proc)


async def run_kernel(host: NetnsHost, role: str, *args: str) -> dict[str, Any]:
    """Run a client-type Linux peer to completion; its JSON figures."""
    out = await trio.run_process(peer_argv(host, role, *args), capture_stdout=True, capture_stderr=True,
                                 check=False)
    lines = [ln for ln in out.stdout.decode().splitlines() if ln.startswith("{")]
    obj = json.loads(lines[-1]) if lines else {"error": out.stderr.decode().strip()[-200:] or "no output"}
    if obj.get("error"):
        raise RuntimeError(f"Linux peer: {obj['error']}")
    return obj


def v6(a: argparse.Namespace) -> bool:
    return str(a.group).endswith("6")


def stack_ip(a: argparse.Namespace) -> str:
    return STACK_IP6 if v6(a) else STACK_IP


def kernel_ip(a: argparse.Namespace) -> str:
    return KERNEL_IP6 if v6(a) else KERNEL_IP


def family(a: argparse.Namespace) -> int:
    return pysocket.AF_INET6 if v6(a) else pysocket.AF_INET


def listener(st: Any, a: argparse.Namespace, port: int, backlog: int = 128, *, nodelay: bool = False) -> Any:
    s = st.socket(family(a), pysocket.SOCK_STREAM)
    s.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_REUSEADDR, 1)
    if nodelay:
        s.setsockopt(pysocket.IPPROTO_TCP, pysocket.TCP_NODELAY, 1)
    s.bind((stack_ip(a), port))
    s.listen(backlog)
    return s


async def m_bulk_in(st: Any, host: NetnsHost, a: argparse.Namespace) -> dict[str, Any]:
    ls = listener(st, a, 5001)
    got = 0

    async def sink() -> None:
        nonlocal got
        c, _ = await ls.accept()
        while data := await c.recv(CHUNK * 4):
            got += len(data)
        c.close()

    async with trio.open_nursery() as n:
        n.start_soon(sink)
        res = await run_kernel(host, "source", stack_ip(a), "5001", "--seconds", str(a.seconds))
    ls.close()
    note = "Linux Python sender → stack socket"
    if got != res["bytes"]:
        note += f" (received {got} of {res['bytes']} bytes)"
    return {"value": res["mbit_s"], "note": note,
            "details": {"bytes_sent": res["bytes"], "bytes_received": got}}


async def m_bulk_out(st: Any, host: NetnsHost, a: argparse.Namespace) -> dict[str, Any]:
    bind = ["--bind", "::"] if v6(a) else []
    async with kernel_server(host, "sink", "5002", "--timeout", "60", *bind) as peer:
        await peer.line()  # listening
        s = st.socket(family(a), pysocket.SOCK_STREAM)
        if a.cc:
            s.setsockopt(pysocket.IPPROTO_TCP, pysocket.TCP_CONGESTION, a.cc.encode())
        cpu0 = time.process_time()
        await s.connect((kernel_ip(a), 5002))
        buf = b"\xa5" * CHUNK
        sent = 0
        end = trio.current_time() + a.seconds
        while trio.current_time() < end:
            await s.sendall(buf)
            sent += len(buf)
        # half-close and wait for the sink's close: every byte is delivered before we close
        s.shutdown(pysocket.SHUT_WR)
        while await s.recv(CHUNK):
            pass
        s.close()
        cpu = time.process_time() - cpu0
        res = await peer.line()
    note = "stack socket → Linux Python receiver"
    if res["bytes"] != sent:
        note += f" (received {res['bytes']} of {sent} bytes)"
    return {"value": res["mbit_s"], "note": note, "details": {"bytes_sent": sent, "bytes_received": res["bytes"],
                                                              "cpu_s": round(cpu, 3), "cc": a.cc or "default"}}


async def m_rr(st: Any, host: NetnsHost, a: argparse.Namespace) -> dict[str, Any]:
    ls = listener(st, a, 5007, nodelay=True)

    async def echo() -> None:
        c, _ = await ls.accept()
        while data := await c.recv(64):
            await c.sendall(data)
        c.close()

    async with trio.open_nursery() as n:
        n.start_soon(echo)
        res = await run_kernel(host, "rr-client", stack_ip(a), "5007", "--seconds", str(a.seconds))
    ls.close()
    return {"value": res["per_s"], "note": "Linux Python client; stack echo socket, TCP_NODELAY",
            "units": res["count"]}


async def m_cps(st: Any, host: NetnsHost, a: argparse.Namespace) -> dict[str, Any]:
    ls = listener(st, a, 5009, backlog=1024)
    accepted = 0

    async def acceptor() -> None:
        nonlocal accepted
        while True:
            c, _ = await ls.accept()
            c.close()
            accepted += 1

    async with trio.open_nursery() as n:
        n.start_soon(acceptor)
        res = await run_kernel(host, "cps-client", stack_ip(a), "5009", "--seconds", str(a.seconds))
        n.cancel_scope.cancel()
    ls.close()
    return {"value": res["per_s"], "note": "sequential connect/accept/close from Linux",
            "details": {"accepted": accepted}, "units": accepted}


def tun_drops(host: NetnsHost, dev: str) -> int:
    """Packets the kernel dropped at the TUN's queue towards us (its TX drops, `ip -s link`)."""
    out = host.ip("-s", "-j", "link", "show", "dev", dev, check=False).stdout
    try:
        return int(json.loads(out)[0]["stats64"]["tx"]["dropped"])
    except (ValueError, LookupError, TypeError):
        return -1


async def m_bulk_in_many(st: Any, host: NetnsHost, a: argparse.Namespace, conns: int) -> dict[str, Any]:
    """`conns` Linux senders at once into the stack, one sink task each."""
    ls = listener(st, a, 5011, backlog=max(128, conns + 64))
    got: list[int] = []

    async def sink(c: Any) -> None:
        i = len(got)
        got.append(0)
        while data := await c.recv(CHUNK * 4):
            got[i] += len(data)
        c.close()

    async def acceptor(n: trio.Nursery) -> None:
        while True:
            c, _ = await ls.accept()
            n.start_soon(sink, c)

    drops0 = tun_drops(host, a.tun)
    async with trio.open_nursery() as n:
        n.start_soon(acceptor, n)
        res = await run_kernel(host, "source-multi", stack_ip(a), "5011", "--conns", str(conns),
                               "--seconds", str(a.seconds))
        n.cancel_scope.cancel()
    ls.close()
    drops = tun_drops(host, a.tun) - drops0
    note = f"{conns} Linux Python senders at once (one process) → stack sockets"
    if sum(got) != res["bytes"]:
        note += f" (received {sum(got)} of {res['bytes']} bytes)"
    extra = {f"fair_c{conns}": {"value": res["jain"], "note": "Jain's index over the bytes each connection sent"}}
    if conns == 1000:
        extra["drops_c1000"] = {"value": drops, "note": f"TUN TX drops (txqueuelen {a.txqueuelen})"}
    return {"value": res["mbit_s"], "note": note, "extra_rows": extra,
            "details": {"bytes_sent": res["bytes"], "bytes_received": sum(got), "jain": round(res["jain"], 4),
                        "tun_drops": drops, "txqueuelen": a.txqueuelen, "connections": len(got),
                        "min_bytes": res["min_bytes"], "max_bytes": res["max_bytes"]}}


async def m_rr_many(st: Any, host: NetnsHost, a: argparse.Namespace, conns: int) -> dict[str, Any]:
    """`conns` Linux request/response clients at once, one echo task each."""
    ls = listener(st, a, 5012, backlog=max(128, conns + 64), nodelay=True)

    async def echo(c: Any) -> None:
        try:
            while data := await c.recv(64):
                await c.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            pass        # the clients' process ends with replies unread: its close() is a RST
        finally:
            c.close()

    async def acceptor(n: trio.Nursery) -> None:
        while True:
            c, _ = await ls.accept()
            n.start_soon(echo, c)

    async with trio.open_nursery() as n:
        n.start_soon(acceptor, n)
        res = await run_kernel(host, "rr-multi", stack_ip(a), "5012", "--conns", str(conns),
                               "--seconds", str(a.seconds))
        n.cancel_scope.cancel()
    ls.close()
    return {"value": res["per_s"], "note": f"{conns} Linux Python clients at once (one process); stack echo "
            "sockets, TCP_NODELAY", "units": res["count"], "details": {"jain": round(res["jain"], 4)}}


def rss_kib() -> int:
    """VmRSS less what tracemalloc itself holds for its traces (it is on while we measure)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) - tracemalloc.get_tracemalloc_memory() // 1024
    return 0


async def m_mem(st: Any, host: NetnsHost, a: argparse.Namespace) -> dict[str, Any]:
    """Idle established connections held by the stack: tracemalloc and RSS growth per connection."""
    ls = listener(st, a, 5010, backlog=4096)
    held: list[Any] = []
    gc.collect()
    tracemalloc.start()
    base_py, base_rss = tracemalloc.get_traced_memory()[0], rss_kib()

    async def acceptor() -> None:
        while True:
            c, _ = await ls.accept()
            held.append(c)

    try:
        async with trio.open_nursery() as n:
            n.start_soon(acceptor)
            async with kernel_server(host, "hold", stack_ip(a), "5010", "--count", str(a.conns),
                                     "--timeout", "300", stdin=True) as peer:
                res = await peer.line()
                with trio.move_on_after(10):  # the last handshakes may still be in the accept queue
                    while len(held) < res["opened"]:
                        await trio.sleep(0.05)
                await trio.sleep(0.5)  # let delayed ACKs and timers settle
                gc.collect()
                py, rss = tracemalloc.get_traced_memory()[0], rss_kib()
                assert peer.proc.stdin is not None
                await peer.proc.stdin.aclose()  # the peer closes its sockets and exits
            n.cancel_scope.cancel()
    finally:
        tracemalloc.stop()
    for c in held:
        c.close()
    ls.close()
    if not held:
        raise RuntimeError(f"no connection accepted (Linux opened {res['opened']}; {res.get('error', '')})")
    per_py = (py - base_py) / len(held) / 1024
    per_rss = (rss - base_rss) / len(held)
    return {"value": per_py, "note": f"tracemalloc growth over {len(held)} idle connections",
            "details": {"connections": len(held), "linux_opened": res["opened"],
                        "tracemalloc_kib_per_conn": round(per_py, 2), "rss_kib_per_conn": round(per_rss, 2)}}


MEASURES: dict[str, Callable[[Any, NetnsHost, argparse.Namespace], Awaitable[dict[str, Any]]]] = {
    "bulk_in": m_bulk_in, "bulk_out": m_bulk_out, "rr": m_rr, "cps": m_cps, "mem": m_mem,
    **{m: partial(m_bulk_in_many if m.startswith("bulk") else m_rr_many, conns=n) for m, n in SCALE.items()}}


async def child(a: argparse.Namespace) -> dict[str, Any]:
    from drivers.tuntap import TunNdd
    from stack import Stack

    results: dict[str, Any] = {}
    with netns("tsbt") as host:
        ndd = TunNdd(unique_name("tsu"), offload=a.group != "off",
                     **({"txqueuelen": a.txqueuelen} if a.txqueuelen else {}))
        ndd.create()
        a.tun = ndd.ndd_name
        a.txqueuelen = ndd.txqueuelen
        host.adopt(ndd.ndd_name, f"{KERNEL_IP}/24")
        host.ip("-6", "addr", "add", f"{KERNEL_IP6}/64", "dev", ndd.ndd_name, "nodad")
        async with Stack("bench") as st:
            st.add_interface(ndd, f"{STACK_IP}/24")
            st.add_address(ndd.ndd_name, f"{STACK_IP6}/64")     # TUN: no DAD, usable at once
            results["offload_flags"] = getattr(ndd, "offload_flags", None)
            for m in a.only.split(",") if a.only else GROUPS[a.group]:
                t = limit(m, a.seconds, a.conns)
                frames0, octets0, cpu0 = ndd.stats.ndd_ipackets, ndd.stats.ndd_ibytes, cpu_s()
                wakeups0 = st.timers.wakeups
                counter = StepCounter() if a.steps else None
                if counter is not None:
                    trio.lowlevel.add_instrument(counter)
                try:
                    with trio.fail_after(t):
                        results[m] = await MEASURES[m](st, host, a)
                    if m in UNIT_OF:    # CPU per unit: frames read (bulk), round trips, connections
                        units = results[m].pop("units", ndd.stats.ndd_ipackets - frames0)
                        add_cpu(results[m], m, units, cpu_s() - cpu0)
                        frames = ndd.stats.ndd_ipackets - frames0
                        if frames:
                            results[m]["details"]["avg_frame_octets"] = round((ndd.stats.ndd_ibytes - octets0) / frames)
                        if counter is not None:     # scheduling work per unit (tools/bench/steps.py)
                            results[m]["details"]["steps"] = {
                                **counter.per_unit(units),
                                "timer_wakeups": round((st.timers.wakeups - wakeups0) / max(units, 1), 3)}
                except trio.TooSlowError:
                    results[m] = {"error": f"timed out after {t:.0f} s"}
                except Exception as exc:  # stack errors arrive wrapped in nursery groups; keep going
                    results[m] = {"error": reason(exc)}
                finally:
                    if counter is not None:
                        trio.lowlevel.remove_instrument(counter)
    return results


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m tools.bench.tunstack", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--group", choices=list(GROUPS), required=True)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--conns", type=int, default=10000)
    p.add_argument("--cc", default="", help="the stack's congestion control for bulk_out (TCP_CONGESTION; "
                   "'' keeps the default)")
    p.add_argument("--only", default="", help="these measures of the group only (comma-separated)")
    p.add_argument("--txqueuelen", type=int, default=0, help="the TUN's txqueuelen (0: the driver's default)")
    p.add_argument("--steps", action="store_true", help="count trio's task steps and epoll passes per unit "
                   "(tools/bench/steps.py; the instrument costs CPU: not for the CPU figures)")
    a = p.parse_args()
    try:
        out = trio.run(child, a)
    except Exception as exc:
        out = {"error": reason(exc)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
