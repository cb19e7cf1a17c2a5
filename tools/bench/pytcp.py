"""Section b: pmd-pytcp 0.3.8 on a TAP whose kernel side sits in a namespace.

pmd-pytcp is GPL: it is pip-installed into the benchmark's own scratch venv
(`.bench/venv`) and driven by our harness (`tools/bench/pytcp_harness.py`), which only
imports its public API.  Its listeners bind only after its address conflict detection
(~5-12 s), so one harness run serves all speed figures and a second, fresh one the
memory figures.
"""
from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tools.lab.netns import NetnsHost, unique_name

from .common import ROOT, Params, Proc, Section, can_run, netns, peer_argv, reason, run_peer

VERSION = "0.3.8"
VENV = ROOT / ".bench" / "venv"
HARNESS = str(Path(__file__).with_name("pytcp_harness.py"))
KERNEL_IP, STACK_IP = "10.78.1.1", "10.78.1.2"
ROWS = ["bulk_in", "bulk_out", "rr", "cps", "mem", "mem_rss"]


def ensure_venv() -> Path:
    """The scratch venv with pmd-pytcp==VERSION; created on first use (RuntimeError if impossible)."""
    py = VENV / "bin" / "python"
    check = [str(py), "-c", "import importlib.metadata as m; print(m.version('pmd-pytcp'))"]
    if py.exists():
        got = subprocess.run(check, capture_output=True, text=True)
        if got.returncode == 0 and got.stdout.strip() == VERSION:
            return py
    steps: list[list[str]] = []
    if not py.exists():  # built from the base interpreter: the project's .venv is a venv itself
        steps.append([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(VENV)])
    steps.append([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"pmd-pytcp=={VERSION}"])
    for argv in steps:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            tail = (out.stderr or out.stdout).strip().splitlines()
            raise RuntimeError(f"`{' '.join(argv[-3:])}` failed: {tail[-1] if tail else out.returncode}")
    return py


def expect(h: Proc, event: str, timeout: float) -> dict[str, Any]:
    """The harness's next `event` line, skipping progress events; its errors raise."""
    deadline = time.monotonic() + timeout
    while True:
        ev = h.line(max(0.1, deadline - time.monotonic()))
        if ev.get("event") == event:
            return ev
        if ev.get("event") == "error":
            raise RuntimeError(f"harness: {ev.get('error')}")


def measure_mem(p: Params, sec: Section, host: NetnsHost, h: Proc) -> None:
    """Idle connections held by its stack: its own tracemalloc and RSS growth per connection.

    Fewer connections than tunstack's 10 000: at its accept rate (a few hundred per second)
    that many would take minutes; the figure is per connection either way.
    """
    n = max(200, p.idle_conns // 5)
    h.send("membase")
    expect(h, "membase", 30)
    with Proc(peer_argv(host, "hold", STACK_IP, "5010", "--count", str(n), "--timeout", "300"), stdin=True) as k:
        opened = k.line(n / 20 + 60)
        if opened.get("error") and not opened.get("opened"):
            raise RuntimeError(opened["error"])
        deadline = time.monotonic() + 20
        while True:  # the last handshakes may still wait in its accept queue
            h.send("memstat")
            m = expect(h, "mem", 30)
            if m.get("held", 0) >= opened["opened"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    if not m.get("held"):
        raise RuntimeError("no connection accepted")
    sec.set("mem", m["py_kib"], f"tracemalloc growth over {m['held']} idle connections")
    sec.set("mem_rss", m["rss_kib"], f"VmRSS growth over {m['held']} idle connections")
    sec.details["mem"] = {"connections": m["held"], "linux_opened": opened["opened"],
                          "tracemalloc_kib_per_conn": round(m["py_kib"], 2),
                          "rss_kib_per_conn": round(m["rss_kib"], 2)}


@contextlib.contextmanager
def harness(py: Path, sec: Section) -> Iterator[tuple[NetnsHost, Proc]]:
    """pmd-pytcp on a fresh TAP whose kernel side is in a fresh namespace, listening."""
    with netns("tsbp") as host:
        dev = unique_name("tsq")
        with Proc([str(py), HARNESS, "--dev", dev, "--addr", f"{STACK_IP}/24"], stdin=True) as h:
            expect(h, "tap", 30)
            host.adopt(dev, f"{KERNEL_IP}/24")
            h.send("go")
            ev = expect(h, "listening", 60)
            sec.details.setdefault("listening_after_s", []).append(round(ev["after_s"], 1))
            yield host, h
            h.send("quit")


def measure_speed(p: Params, sec: Section, host: NetnsHost, h: Proc) -> None:
    secs, t = str(p.seconds), p.seconds + 60
    for row, role, port, note in (
            ("bulk_in", "source", "5001", "its TAP, no offloads; Linux Python sender"),
            ("rr", "rr-client", "5007", "its echo via our harness; Linux Python client"),
            ("cps", "cps-client", "5009", "accept+close via our harness; Linux sequential client")):
        try:
            got = run_peer(host, role, STACK_IP, port, "--seconds", secs, timeout=t)
            sec.set(row, got["mbit_s" if row == "bulk_in" else "per_s"], note)
        except (RuntimeError, TimeoutError, EOFError, KeyError) as exc:
            sec.fail([row], reason(exc))
    with Proc(peer_argv(host, "sink", "5002", "--timeout", str(t))) as sink:
        sink.line(10)
        h.send(f"send {KERNEL_IP} 5002 {secs}")
        got = sink.line(t + 30)
        if got.get("error"):
            raise RuntimeError(got["error"])
        sec.set("bulk_out", got["mbit_s"], "its TAP, no offloads; Linux Python receiver")


def run(p: Params) -> Section:
    sec = Section("pmd-pytcp")
    why = can_run()
    if why:
        sec.fail(ROWS, why)
        return sec
    try:
        py = ensure_venv()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        sec.fail(ROWS, f"cannot install pmd-pytcp {VERSION}: {reason(exc)}")
        return sec
    # two runs, each with its own ACD wait: idle connections left behind slow its later
    # figures, and bulk buffers left behind blur its RSS -- as tunstack's children avoid too
    for rows, measure in ((["bulk_in", "bulk_out", "rr", "cps"], measure_speed), (["mem", "mem_rss"], measure_mem)):
        try:
            with harness(py, sec) as (host, h):
                measure(p, sec, host, h)
        except (OSError, RuntimeError, TimeoutError, EOFError, subprocess.SubprocessError, KeyError) as exc:
            sec.fail(rows, reason(exc))
    return sec
