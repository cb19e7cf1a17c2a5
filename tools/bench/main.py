"""`make bench`: tunstack's TCP side by side with its peers, measured in one run.

Figures, never assertions: every cell is a number measured now, or "n/a" with the
reason (a footnote) -- never a number carried over from elsewhere.

Sections (`--only` takes these names, comma-separated):
  veth        Linux ↔ Linux over a veth pair between two namespaces (iperf3; the ceiling)
  pytcp       pmd-pytcp 0.3.8 on a TAP, pip-installed into .bench/venv, driven by our harness
  slirp       slirp4netns (Debian package) between the host's loopback and a namespace
  limit       the limit: a minimal single-threaded Python TCP endpoint of our own on the same
              kind of TUN (no stack; tools/bench/limit.py), the same Linux peers as tunstack
  tunstack    tunstack over TUN, offload on and off, scale (10 to 1000 connections), in child processes
  svc         ATM SVC calls through the emulated switch vs linux-atm's atmsigd, and ATM
              cell throughput: unpaced AAL5 PVC in one process, CLIP TCP between two
              `tunstack atm ip` processes (a second table; tools/bench/svc.py, atm_pvc.py)
  gateway     user-mode gateways: tunstack gateway, slirp4netns, pasta at MTU 1500 and 65520,
              and the gateway's limit, a minimal Python relay of our own (tools/bench/gwrelay.py;
              request/response and connections at 1500) (a third table; tools/bench/gateway.py)
  lossy       bulk TCP over issue 10's impaired path (loss, reordering, duplication,
              corruption), tunstack against Linux through the same fault injector (a fourth
              table; tools/bench/lossy_table.py running tools/bench/lossy.py)

Prints one table (rows: measurements; columns: tunstack, pmd-pytcp, slirp4netns, veth, limit,
tunstack ÷ pmd-pytcp, tunstack ÷ veth, tunstack ÷ limit, and the CPU µs per unit of work of
tunstack and of the limit) and writes it to bench-out/bench.json.
Needs root (namespaces, TUN/TAP); without it every cell says so.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import gateway as bench_gateway
from . import limit as bench_limit
from . import lossy_table as bench_lossy
from . import pytcp as bench_pytcp
from . import slirp as bench_slirp
from . import svc as bench_svc
from . import tunstack as bench_tunstack
from . import veth as bench_veth
from .common import ROOT, Cell, Params, Section, fmt, markdown_table, params

# key, label, unit (for memory smaller is better; the ratio still reads tunstack ÷ peer)
ROWS: list[tuple[str, str, str]] = [
    ("bulk_in", "bulk kernel→stack, offload on", "Mbit/s"),
    ("bulk_out", "bulk stack→kernel, offload on", "Mbit/s"),
    ("bulk_in_nooff", "bulk kernel→stack, offload off", "Mbit/s"),
    ("bulk_out_nooff", "bulk stack→kernel, offload off", "Mbit/s"),
    ("rr", "1-byte request/response", "per s"),
    ("cps", "accepted connections", "per s"),
    ("mem", "Python heap per idle connection (tracemalloc; lower is better)", "KiB"),
    ("mem_rss", "RSS per idle connection (lower is better)", "KiB"),
    ("bulk_in6", "IPv6: bulk kernel→stack, offload on", "Mbit/s"),
    ("bulk_out6", "IPv6: bulk stack→kernel, offload on", "Mbit/s"),
    ("rr6", "IPv6: 1-byte request/response", "per s"),
    ("cps6", "IPv6: accepted connections", "per s"),
    # issue 15's scale rows: many connections at once, offload on (tunstack only)
    ("bulk_in_c10", "10 connections at once, bulk kernel→stack, aggregate", "Mbit/s"),
    ("fair_c10", "10 connections at once, Jain fairness (1 = equal)", "index"),
    ("bulk_in_c100", "100 connections at once, bulk kernel→stack, aggregate", "Mbit/s"),
    ("fair_c100", "100 connections at once, Jain fairness", "index"),
    ("bulk_in_c1000", "1000 connections at once, bulk kernel→stack, aggregate", "Mbit/s"),
    ("fair_c1000", "1000 connections at once, Jain fairness", "index"),
    ("drops_c1000", "1000 connections at once, frames the TUN queue dropped", "packets"),
    ("rr_c100", "1-byte request/response, 100 clients at once", "per s"),
]
# the IPv6 rows read against tunstack's own IPv4 figures of the same run (issue 12's target: within 10 %)
V6_OF = {"bulk_in6": "bulk_in", "bulk_out6": "bulk_out", "rr6": "rr", "cps6": "cps"}
COLUMNS = ["tunstack", "pmd-pytcp", "slirp4netns", "veth", "limit"]
CPU_COLUMNS = ["tunstack", "limit"]     # CPU µs per unit of work beside the figures (issue 15)
SECTIONS: dict[str, tuple[str, Callable[[Params], Section]]] = {
    "veth": ("veth", bench_veth.run),
    "pytcp": ("pmd-pytcp", bench_pytcp.run),
    "slirp": ("slirp4netns", bench_slirp.run),
    "limit": ("limit", bench_limit.run),
    "tunstack": ("tunstack", bench_tunstack.run),
}
# the peers have no offload switch: their one bulk figure stands in both offload rows
SAME_AS = {"bulk_in_nooff": "bulk_in", "bulk_out_nooff": "bulk_out"}
OUT = ROOT / "bench-out" / "bench.json"
EXTRA_TABLES = ("svc", "gateway", "lossy")   # tables of their own, after the main one


def fill_peer_rows(sec: Section) -> None:
    if sec.name == "tunstack":
        return
    for row, src in SAME_AS.items() if sec.name != "limit" else ():
        if row not in sec.cells and src in sec.cells:
            c = sec.cells[src]
            sec.cells[row] = Cell(c.value, c.note)
    for key, _, _ in ROWS:
        sec.cells.setdefault(key, Cell(None, "not measured for this peer"))


def ratio(a: Cell, b: Cell) -> float | None:
    return a.value / b.value if a.value is not None and b.value else None


def cpu_per_unit(sections: dict[str, Section], column: str, key: str) -> float | None:
    """The CPU µs per unit of work that `column` measured for row `key`, if it did."""
    sec = sections.get(column)
    got = sec.details.get("cpu", {}).get(key) if sec else None
    return got["us"] if got else None


def render(sections: dict[str, Section], meta: dict[str, object]) -> str:
    """The table as Markdown, with the reasons for missing figures as numbered footnotes."""
    notes: list[str] = []

    def cell(c: Cell, unit: str = "") -> str:
        if c.value is not None:
            return f"{c.value:,.0f}" if unit == "packets" else fmt(c.value)
        if c.note in ("not measured for this peer", "section not run"):
            return "—"
        if c.note not in notes:
            notes.append(c.note)
        return f"n/a [{notes.index(c.note) + 1}]"

    head = ["measurement", "unit", *COLUMNS, "tunstack ÷ pmd-pytcp", "tunstack ÷ veth", "tunstack ÷ limit",
            *(f"{c} CPU µs/unit" for c in CPU_COLUMNS)]
    rows = [head]
    for key, label, unit in ROWS:
        cs = [sections[c].cells[key] if c in sections else Cell(None, "section not run") for c in COLUMNS]
        r_p, r_v, r_l = ratio(cs[0], cs[1]), ratio(cs[0], cs[3]), ratio(cs[0], cs[4])
        cpu = [cpu_per_unit(sections, c, key) for c in CPU_COLUMNS]
        rows.append([label, unit, *(cell(c, unit) for c in cs),
                     f"{r_p:.2f}×" if r_p is not None else "", f"{r_v:.3f}×" if r_v is not None else "",
                     f"{r_l:.2f}×" if r_l is not None else "", *(fmt(u) for u in cpu)])
    lines = markdown_table(rows)
    lines.insert(0, f"tunstack benchmark, {meta['date']}, {meta['machine']}"
                    f"{' (--quick)' if meta['quick'] else ''}; {meta['seconds']:g} s per figure\n")
    lines += [""] + [f"[{i + 1}] {n}" for i, n in enumerate(notes)] + remarks(sections)
    return "\n".join(lines)


def remarks(sections: dict[str, Section]) -> list[str]:
    """How to read the table: the facts behind columns that are not obvious."""
    out = ["Ratios divide tunstack's figure by the peer's (for memory, below 1× favours tunstack).",
           "The peers have no offload switch: each shows its one bulk figure in both offload rows."]
    if "veth" in sections:
        out.append("veth: iperf3 for bulk (one run; a veth is symmetric), the same Python peers as tunstack "
                   "for request/response and connections.")
    if "limit" in sections:
        sizes = [f"{c} {d['avg_frame_octets'] / 1000:.1f} KB" for c in CPU_COLUMNS if c in sections
                 and (d := sections[c].details.get("bulk_in", {})).get("avg_frame_octets")]
        out.append("limit: a minimal single-threaded Python TCP endpoint on the same kind of TUN, no stack "
                   "(tools/bench/limit.py), driven by the same Linux peers as tunstack.")
        out.append("CPU µs/unit: the measuring process's user + system CPU (getrusage; the kernel's TCP work "
                   "inside its TUN writes included) per frame read from the TUN for bulk (offload on: GSO "
                   "super-frames; for stack→kernel the frames read are the ACKs), per round trip, per accepted "
                   "connection." + (f" Average frame kernel→stack, offload on: {', '.join(sizes)}." if sizes else ""))
    if "slirp4netns" in sections:
        out.append("slirp4netns: kernel→stack is namespace→host, stack→kernel is host→namespace (port forward).")
    d = sections["pmd-pytcp"].details if "pmd-pytcp" in sections else {}
    if d.get("listening_after_s"):
        mem = d.get("mem", {})
        after = " and ".join(f"{s:g}" for s in d["listening_after_s"])
        out.append(f"pmd-pytcp: TAP (it has no offloads); its listeners bound {after} s after start "
                   f"(address conflict detection)"
                   + (f"; memory over {mem['connections']} connections." if mem else "."))
    t = sections["tunstack"].details if "tunstack" in sections else {}
    if t.get("mem"):
        out.append(f"tunstack: TUN; memory over {t['mem']['connections']} idle connections.")
    if "tunstack" in sections:
        cells = sections["tunstack"].cells
        shares = [f"{v6[:-1].replace('_', ' ')} {r:.2f}×" for v6, v4 in V6_OF.items()
                  if v6 in cells and v4 in cells and (r := ratio(cells[v6], cells[v4])) is not None]
        if shares:
            out.append("tunstack over IPv6 ÷ over IPv4, same run: " + ", ".join(shares) + ".")
    return [""] + out


def to_json(sections: dict[str, Section], meta: dict[str, object]) -> dict[str, object]:
    rows = []
    for key, label, unit in ROWS:
        r: dict[str, object] = {"key": key, "label": label, "unit": unit}
        for c in COLUMNS:
            cl = sections[c].cells[key] if c in sections else Cell(None, "section not run")
            r[c] = {"value": cl.value, "note": cl.note}
        t = sections.get("tunstack")
        for peer, name in (("pmd-pytcp", "ratio_tunstack_pmd_pytcp"), ("veth", "ratio_tunstack_veth"),
                           ("limit", "ratio_tunstack_limit")):
            r[name] = ratio(t.cells[key], sections[peer].cells[key]) if t and peer in sections else None
        for c in CPU_COLUMNS:
            r[f"cpu_us_per_unit_{c}"] = cpu_per_unit(sections, c, key)
        rows.append(r)
    return {**meta, "rows": rows, "details": {n: s.details for n, s in sections.items() if s.details}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tunstack bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 s per figure and 2000 idle connections (~1 min)")
    ap.add_argument("--only", metavar="SECTION[,SECTION]",
                    help=f"run only these: {', '.join([*SECTIONS, *EXTRA_TABLES])}")
    ap.add_argument("--out", type=Path, default=OUT, help=f"JSON output (default {OUT.relative_to(ROOT)})")
    a = ap.parse_args(argv)
    chosen = list(SECTIONS)
    if a.only:
        chosen = [s.strip() for s in a.only.split(",") if s.strip()]
        bad = [s for s in chosen if s not in SECTIONS and s not in EXTRA_TABLES]
        if bad:
            ap.error(f"unknown section(s) {', '.join(bad)}; choose from {', '.join([*SECTIONS, *EXTRA_TABLES])}")
    run_svc = "svc" in chosen or not a.only
    run_gateway = "gateway" in chosen or not a.only
    run_lossy = "lossy" in chosen or not a.only
    chosen = [s for s in chosen if s not in EXTRA_TABLES]
    p = params(a.quick)
    meta: dict[str, object] = {
        "date": datetime.date.today().isoformat(), "quick": p.quick, "seconds": p.seconds,
        "idle_connections": p.idle_conns,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
                   f"Python {platform.python_version()}",
    }
    sections: dict[str, Section] = {}
    t_all = time.monotonic()
    # the peers first: tunstack's figures are then read against numbers of the same minute
    for key in sorted(chosen, key=lambda s: list(SECTIONS).index(s)):
        column, fn = SECTIONS[key]
        print(f"== {column} ...", flush=True)
        t0 = time.monotonic()
        sec = fn(p)
        fill_peer_rows(sec)
        sections[column] = sec
        done = ", ".join(f"{k} {fmt(c.value)}" for k, c in sec.cells.items() if c.value is not None) or \
            next((c.note for c in sec.cells.values()), "")
        print(f"   {time.monotonic() - t0:.0f} s: {done}", flush=True)
    svc: dict[str, Section] = {}
    if run_svc:
        print("== ATM SVC calls (tunstack switch, atmsigd) ...", flush=True)
        t0 = time.monotonic()
        svc = bench_svc.run(p)
        print(f"   {time.monotonic() - t0:.0f} s", flush=True)
    gateways: dict[str, Section] = {}
    if run_gateway:
        print("== user-mode gateways (tunstack gateway, slirp4netns, pasta) ...", flush=True)
        t0 = time.monotonic()
        gateways = bench_gateway.run(p)
        print(f"   {time.monotonic() - t0:.0f} s", flush=True)
    lossy: Section | None = None
    if run_lossy:
        print("== the lossy path (tunstack and Linux through the same impairment) ...", flush=True)
        t0 = time.monotonic()
        lossy = bench_lossy.run(p)
        print(f"   {time.monotonic() - t0:.0f} s", flush=True)
    meta["elapsed_s"] = round(time.monotonic() - t_all, 1)
    print()
    if sections:
        print(render(sections, meta))
    if svc:
        print()
        print(bench_svc.render(svc))
    if gateways:
        print()
        print(bench_gateway.render(gateways))
    if lossy is not None:
        print()
        print(bench_lossy.render(lossy))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    out = to_json(sections, meta)
    if svc:
        out["svc"] = {n: {"cells": {k: {"value": c.value, "note": c.note} for k, c in s.cells.items()},
                          "details": s.details} for n, s in svc.items()}
    if gateways:
        out["gateway"] = bench_gateway.to_json(gateways)
    if lossy is not None:
        out["lossy"] = bench_lossy.to_json(lossy)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwritten: {a.out} ({meta['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    # SIGTERM and SIGHUP unwind like Ctrl-C, so every namespace and child is cleaned up
    from tools.cli.command import run_sync_command
    sys.exit(run_sync_command("bench", main))
