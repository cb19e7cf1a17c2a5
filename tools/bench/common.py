"""Shared pieces of `make bench`: result cells, namespaces that always go away, peers.

Every namespace and device is named with `tools.lab.netns.unique_name` and deleted in a
`finally`; every process is one we started, stopped by its own PID.
"""
from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.lab.netns import NetnsHost, have_tun, ip, unique_name

ROOT = Path(__file__).resolve().parents[2]
PEER = str(Path(__file__).with_name("peer.py"))  # run as a script: stdlib only, any Python


@dataclass
class Cell:
    """One figure, or why there is none (never a made-up number)."""
    value: float | None = None
    note: str = ""

    @classmethod
    def na(cls, why: str) -> Cell:
        return cls(None, f"not available: {why}")


@dataclass
class Section:
    """What one column measured: row key -> Cell, plus free-form details for the JSON."""
    name: str
    cells: dict[str, Cell] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def set(self, key: str, value: float | None, note: str = "") -> None:
        self.cells[key] = Cell(value, note)

    def fail(self, keys: list[str], why: str) -> None:
        for k in keys:
            self.cells.setdefault(k, Cell.na(why))


@dataclass
class Params:
    quick: bool
    seconds: float          # per bulk / rr / cps measurement
    idle_conns: int          # connections for the memory figure


def params(quick: bool) -> Params:
    return Params(quick, 1.0 if quick else 3.0, 2000 if quick else 10000)


def can_run() -> str:
    """'' when namespaces and TUN/TAP are usable, else the reason."""
    ok, why = have_tun()
    return "" if ok else why


@contextlib.contextmanager
def netns(prefix: str = "tsb") -> Iterator[NetnsHost]:
    host = NetnsHost.create(unique_name(prefix))
    try:
        yield host
    finally:
        host.delete()


class Proc:
    """A child we started; reads its JSON lines with timeouts; killed by PID on exit."""

    def __init__(self, argv: list[str], *, stdin: bool = False, cwd: Path = ROOT) -> None:
        self.argv = argv
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  cwd=cwd, text=True, start_new_session=True)
        self._buf = ""

    def line(self, timeout: float) -> dict[str, Any]:
        """Next JSON line on stdout (non-JSON lines skipped); TimeoutError/EOFError otherwise."""
        assert self.p.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while True:
            if "\n" in self._buf:
                text, self._buf = self._buf.split("\n", 1)
                try:
                    obj = json.loads(text)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    return obj
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from {self.argv[-1] if self.argv else '?'} within {timeout:.0f} s")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536).decode(errors="replace")
                if not chunk:
                    err = self.stderr_tail()
                    raise EOFError(f"process exited ({self.p.poll()}){': ' + err if err else ''}")
                self._buf += chunk

    def send(self, text: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def stderr_tail(self) -> str:
        if self.p.poll() is None or self.p.stderr is None:
            return ""
        lines = self.p.stderr.read().strip().splitlines()
        return lines[-1][:200] if lines else ""

    def stop(self, grace: float = 3.0) -> None:
        """Close stdin, then SIGINT (its cleanup runs: trio and asyncio unwind), SIGTERM, SIGKILL.

        Each signal goes to this child's own process group (start_new_session), nothing else.
        """
        if self.p.stdin is not None and not self.p.stdin.closed:
            with contextlib.suppress(OSError):
                self.p.stdin.close()
        for sig in (None, signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if sig is not None and self.p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.p.pid, sig)
            try:
                self.p.wait(timeout=grace if sig != signal.SIGINT else 10)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def peer_argv(host: NetnsHost, role: str, *args: str) -> list[str]:
    """The stdlib peer, run by this Python inside namespace `host`."""
    return host.exec_argv(sys.executable, PEER, role, *args)


def run_peer(host: NetnsHost, role: str, *args: str, timeout: float = 60) -> dict[str, Any]:
    """Run a client-type peer to completion and return its JSON figures."""
    with Proc(peer_argv(host, role, *args)) as p:
        out = p.line(timeout)
    if out.get("error"):
        raise RuntimeError(out["error"])
    return out


def veth_pair(a: NetnsHost, b: NetnsHost, addr_a: str, addr_b: str) -> None:
    """A veth pair with one end in each namespace (deleted with the namespaces)."""
    va, vb = unique_name("tva"), unique_name("tvb")
    ip("link", "add", va, "type", "veth", "peer", "name", vb)
    try:
        ip("link", "set", va, "netns", a.name)
        ip("link", "set", vb, "netns", b.name)
    except subprocess.CalledProcessError:
        ip("link", "del", va, check=False)
        raise
    for host, dev, addr in ((a, va, addr_a), (b, vb, addr_b)):
        host.ip("addr", "add", addr, "dev", dev)
        host.ip("link", "set", dev, "up")


# CPU per unit of work (issue 15): what each measure divides the measuring process's CPU by
UNIT_OF = {"bulk_in": "frame read", "bulk_out": "frame read (ACK)", "rr": "round trip", "cps": "connection",
           "bulk_in_c10": "frame read", "bulk_in_c100": "frame read", "bulk_in_c1000": "frame read",
           "rr_c100": "round trip"}


def cpu_s() -> float:
    """This process's user + system CPU seconds (its children not included: the Linux peers
    run in their own processes).  System time includes the kernel's own TCP work done inside
    our TUN writes (the device hands the frame to the kernel's stack in the writer's context)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def add_cpu(out: dict[str, Any], measure: str, units: int, cpu: float) -> None:
    """`out` (a measure's result) gets its CPU µs per unit, the unit's name and count."""
    out["per"] = UNIT_OF[measure]
    out["units"] = units
    out["cpu_us"] = round(cpu / units * 1e6, 2) if units else None
    out.setdefault("details", {})["cpu_s"] = round(cpu, 3)


def reason(exc: BaseException) -> str:
    """A one-line why; the first real error inside (trio) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1][:160] if text else ''}".rstrip(": ")


def fmt(v: float | None) -> str:
    if v is None:
        return ""
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def markdown_table(rows: list[list[str]]) -> list[str]:
    """`rows` (the head first) as the lines of a Markdown table, a rule under the head: the
    first two columns (what, unit) left-aligned, the figures right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(x.ljust(w) if i < 2 else x.rjust(w)
                               for i, (x, w) in enumerate(zip(r, widths, strict=True))) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return lines


def record_measure(sec: Section, row: str, result: Any, out: dict[str, Any]) -> dict[str, Any]:
    """One measure a bench child reported (its line's `result`, or the line's error): the
    row's cell, its details, extra rows and CPU per unit in `sec`; returns the result."""
    got: dict[str, Any] = result if isinstance(result, dict) else {"error": out.get("error", "no result")}
    if got.get("value") is None:
        sec.cells[row] = Cell.na(got.get("error", "no result"))
    else:
        sec.set(row, got["value"], got.get("note", ""))
    if got.get("details"):
        sec.details[row] = got["details"]
    for extra, cell in got.get("extra_rows", {}).items():
        sec.set(extra, cell["value"], cell.get("note", ""))
    if got.get("cpu_us") is not None:
        sec.details.setdefault("cpu", {})[row] = {"us": got["cpu_us"], "per": got["per"]}
    return got
