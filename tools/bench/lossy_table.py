"""`make bench` section "lossy": bulk TCP over issue 10's impaired path, tunstack against Linux.

Runs `python -m tools.bench.lossy` (5 % loss, 25 % reordering, 1 % duplication, 1 % corruption
both ways through drivers/fault.py; BBR on both sides) in a child process and tabulates its
medians: the stack sending to Linux, Linux sending to the stack, Linux to Linux through the
same impairment, and tunstack ÷ Linux for each direction -- issue 10 point 11 asks for at most
2×.  100 MB and 3 runs each (20 MB and 1 run with --quick).  Figures, not assertions; the
stream's SHA-256 is checked end to end, and a run that did not arrive intact shows n/a.
"""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from .common import ROOT, Cell, Params, Section, can_run, fmt, markdown_table, reason

ROWS: list[tuple[str, str]] = [
    ("out", "bulk stack → Linux over the lossy path"),
    ("in", "bulk Linux → stack over the lossy path"),
]
TARGET = 2.0            # issue 10 point 11: within 2× of Linux's time on the same path


def run(p: Params) -> Section:
    """One child run of tools.bench.lossy; cells `<dir>` (tunstack s), `linux` (Linux s),
    `cpu_<dir>` / `cpu_linux` (CPU s of the measuring process)."""
    sec = Section("lossy")
    keys = ["out", "in", "linux", "cpu_out", "cpu_in", "cpu_linux"]
    why = can_run()
    if why:
        sec.fail(keys, why)
        return sec
    mb, runs = (20, 1) if p.quick else (100, 3)
    argv = [sys.executable, "-m", "tools.bench.lossy", "--mb", str(mb), "--runs", str(runs),
            "--stack-cc", "bbr", "--linux-cc", "bbr"]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, cwd=str(ROOT), timeout=1800, check=False)
        report: dict[str, Any] = json.loads(r.stdout[r.stdout.index("{"):]) if "{" in r.stdout else {}
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        sec.fail(keys, reason(exc))
        return sec
    if not report:
        sec.fail(keys, f"tools.bench.lossy failed: {r.stderr.strip().splitlines()[-1:] or r.returncode}")
        return sec
    sec.details = {"mb": mb, "runs": runs, "report": report}
    for key, name in (("out", "stack_out"), ("in", "stack_in"), ("linux", "linux")):
        got = report.get(name, {})
        if not got.get("intact"):
            sec.fail([key, f"cpu_{key}"], f"{name}: the stream did not arrive intact" if got else f"{name}: no result")
            continue
        sec.set(key, got["seconds"])
        sec.set(f"cpu_{key}", got["cpu"])
    return sec


def render(sec: Section) -> str:
    notes: list[str] = []

    def cell(c: Cell) -> str:
        if c.value is not None:
            return f"{c.value:.2f}"
        if not c.note or c.note == "section not run":
            return "—"
        if c.note not in notes:
            notes.append(c.note)
        return f"n/a [{notes.index(c.note) + 1}]"

    linux = sec.cells.get("linux", Cell(None, "section not run"))
    rows = [["lossy path (issue 10 point 11)", "unit", "tunstack", "Linux", "tunstack ÷ Linux",
             "tunstack CPU s", "Linux CPU s"]]
    for key, label in ROWS:
        c = sec.cells.get(key, Cell(None, "section not run"))
        ratio = f"{c.value / linux.value:.2f}×" if c.value is not None and linux.value else ""
        rows.append([label, "s", cell(c), cell(linux), ratio, cell(sec.cells.get(f"cpu_{key}", Cell(None, ""))),
                     cell(sec.cells.get("cpu_linux", Cell(None, "")))])
    lines = markdown_table(rows)
    d = sec.details
    lines.append(f"\n{fmt(d['mb']) if d else '?'} MB per transfer, median of {d.get('runs', '?')} run(s), BBR on "
                 f"both sides; time from the end of the handshake to the receiver's close. Both directions "
                 f"of tunstack run on a TUN without offloads with the fault injector in the stack's process; "
                 f"Linux is two namespaces whose TUNs a Python relay joins through the same injector "
                 f"(tools/bench/lossy.py). Target: at most {TARGET:g}×.")
    lines += [f"[{i + 1}] {n}" for i, n in enumerate(notes)]
    return "\n".join(lines)


def to_json(sec: Section) -> dict[str, Any]:
    return {"cells": {k: {"value": c.value, "note": c.note} for k, c in sec.cells.items()}, "details": sec.details}
