"""`make bench` section "gateway": user-mode gateways side by side in one run (issue 13).

tunstack gateway, slirp4netns and pasta (Debian packages), each at MTU 1500 and 65520, and the
`limit` (tools/bench/gwrelay.py: a minimal Python relay, the least a Python gateway must do
per message, busy-polling as the gateway does; request/response and connections only, at
1500), each in the same topology
(tools/lab/gwtopo.py: guest netns <- gateway in a host netns -> veth -> internet netns) with
the same Python peers (tools/bench/gwpeer.py, tools/bench/peer.py).
The guest is always the client: a gateway relays the connections its guest opens.

  up     bulk guest -> internet: guest `source`, internet `sink` (the sink's figure)
  down   bulk internet -> guest: guest `down-client` reads what the internet `down-server` sends
  rr     1-byte request/response on one connection (guest rr-client, internet rr-server)
  crr    connect + 1-byte request + 1-byte response + close, sequential (guest crr-client)
  cpu_*  the gateway's CPU seconds (utime + stime from /proc/PID/stat) during a bulk row, per
         Gbit moved: cores it keeps busy per Gbit/s
  rss    the gateway's peak RSS (VmHWM) at the end of its run

Every measurement has a deadline (`seconds` + STALL_S): a gateway that stops moving data
gets "stalled" in its cell, never a number.  Figures, not assertions.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from tools.lab.gwtopo import (
    INTERNET_ADDR,
    LIMIT,
    PASTA,
    ROOT,
    SLIRP4NETNS,
    TUNSTACK,
    GatewaySpec,
    Topology,
    gateway_topology,
    project_env,
)

from .common import Cell, Params, Section, can_run, fmt, markdown_table, reason

ROWS: list[tuple[str, str, str]] = [
    ("up", "bulk guest → internet", "Mbit/s"),
    ("down", "bulk internet → guest", "Mbit/s"),
    ("rr", "1-byte request/response", "per s"),
    ("crr", "connect + request + close", "per s"),
    ("cpu_up", "gateway CPU per Gbit/s, guest → internet (lower is better)", "cores"),
    ("cpu_down", "gateway CPU per Gbit/s, internet → guest (lower is better)", "cores"),
    ("cpu_rr", "gateway CPU per round trip (lower is better)", "µs"),
    ("cpu_crr", "gateway CPU per connection (lower is better)", "µs"),
    ("rss", "gateway peak RSS (lower is better)", "MiB"),
]
GATEWAYS: list[GatewaySpec] = [TUNSTACK, SLIRP4NETNS, PASTA, LIMIT]
MTUS = [1500, 65520]
LIMIT_ROWS = ("rr", "crr")   # the minimal relay has no flow control: no bulk through it
LIMIT_MTU = 1500


def _runs(spec: GatewaySpec, mtu: int) -> bool:
    return spec is not LIMIT or mtu == LIMIT_MTU


COLUMNS = [f"{g.name} {m}" for m in MTUS for g in GATEWAYS if _runs(g, m)]
STALL_S = 20.0               # beyond its own length, how long a measurement may take
PEER = [sys.executable, "-m", "tools.bench.gwpeer"]


class Stalled(RuntimeError):
    pass


def unavailable(spec: GatewaySpec) -> str:
    """'' when `spec` can run here, else why not."""
    if spec is TUNSTACK and importlib.util.find_spec("tools.gateway.main") is None:
        return "`tunstack gateway` (tools/gateway/main.py) is not on this branch yet"
    why = spec.missing()
    if why and spec is SLIRP4NETNS:
        why += " (Debian package slirp4netns)"
    elif why and spec is PASTA:
        why += " (Debian package passt)"
    return why


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        line = line.removeprefix("stderr: ")
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return {}


async def _client(topo: Topology, p: Params, role: str, port: int) -> dict[str, Any]:
    """A guest-side peer run to completion; its JSON result (Stalled past the deadline)."""
    argv = topo.guest_argv(*PEER, role, INTERNET_ADDR, str(port), "--seconds", str(p.seconds),
                           "--timeout", str(p.seconds + STALL_S))
    with trio.move_on_after(p.seconds + STALL_S) as scope:
        r = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False,
                                   env=project_env(), cwd=str(ROOT))
    if scope.cancelled_caught:
        raise Stalled(f"stalled: {role} had no result within {p.seconds + STALL_S:g} s")
    out = _last_json(r.stdout.decode(errors="replace"))
    if not out or "error" in out:
        raise RuntimeError(f"{role}: {out.get('error') or r.stderr.decode(errors='replace').strip()[-160:]}")
    return out


async def _server(topo: Topology, role: str, port: int, timeout: float) -> Callable[[float], Awaitable[dict[str, Any]]]:
    """An internet-side peer; returns a function awaiting its result line."""
    child, _ = await topo.spawn(topo.internet, [*PEER, role, str(port), "--timeout", str(timeout)], role,
                                ready='{"ready"')

    async def result(within: float) -> dict[str, Any]:
        with trio.move_on_after(within):
            while True:
                for line in reversed(child.output):
                    obj = _last_json(line)
                    if obj and "ready" not in obj:
                        return obj
                await trio.sleep(0.05)
        raise Stalled(f"stalled: {role} had no result within {within:g} s")
    return result


def _cpu_per_gbit(before: dict[str, Any], after: dict[str, Any], nbytes: float) -> float | None:
    gbit = nbytes * 8 / 1e9
    return (after["cpu_s"] - before["cpu_s"]) / gbit if gbit > 0 else None


def _cpu_us_per(before: dict[str, Any], after: dict[str, Any], count: float) -> float | None:
    """The gateway's CPU (user + system) per unit of work, in µs: the steadier figure on a
    shared machine, where rates swing with the other processes' turns on the cores."""
    return (after["cpu_s"] - before["cpu_s"]) / count * 1e6 if count > 0 else None


async def _row(sec: Section, key: str, measure: Callable[[], Awaitable[None]]) -> None:
    try:
        await measure()
    except (Stalled, RuntimeError, OSError, ValueError, KeyError) as exc:
        why = str(exc) if isinstance(exc, Stalled) else reason(exc)
        sec.fail([key, "cpu_" + key], why)


ALL_ROWS = ("up", "down", "rr", "crr")


async def _measure(topo: Topology, p: Params, sec: Section, keys: tuple[str, ...] = ALL_ROWS) -> None:
    long = p.seconds + STALL_S

    async def up() -> None:
        result = await _server(topo, "sink", 5001, long)
        before = topo.gateway_stat()
        await _client(topo, p, "source", 5001)
        got = await result(10)
        sec.set("up", got["mbit_s"])
        sec.set("cpu_up", _cpu_per_gbit(before, topo.gateway_stat(), got["bytes"]))

    async def down() -> None:
        await _server(topo, "down-server", 5002, long)
        before = topo.gateway_stat()
        got = await _client(topo, p, "down-client", 5002)
        sec.set("down", got["mbit_s"])
        sec.set("cpu_down", _cpu_per_gbit(before, topo.gateway_stat(), got["bytes"]))

    async def rr() -> None:
        await _server(topo, "rr-server", 5003, long)
        before = topo.gateway_stat()
        got = await _client(topo, p, "rr-client", 5003)
        sec.set("rr", got["per_s"])
        sec.set("cpu_rr", _cpu_us_per(before, topo.gateway_stat(), got["count"]))

    async def crr() -> None:
        await _server(topo, "crr-server", 5004, 3)
        before = topo.gateway_stat()
        got = await _client(topo, p, "crr-client", 5004)
        sec.set("crr", got["per_s"])
        sec.set("cpu_crr", _cpu_us_per(before, topo.gateway_stat(), got["count"]))

    for key, fn in (("up", up), ("down", down), ("rr", rr), ("crr", crr)):
        if key in keys:
            await _row(sec, key, fn)
        else:
            sec.fail([key, "cpu_" + key], "the minimal relay has no flow control: no bulk through it")
    sec.set("rss", topo.gateway_stat()["hwm_kib"] / 1024)


async def _one(spec: GatewaySpec, mtu: int, p: Params) -> Section:
    sec = Section(f"{spec.name} {mtu}")
    why = can_run() or unavailable(spec)
    if why:
        sec.fail([k for k, _, _ in ROWS], why)
        return sec
    try:
        async with gateway_topology(spec, mtu=mtu, servers=False) as topo:
            sec.details["ready"] = topo.ready_line or f"guest {await topo.guest_addresses()}"
            await _measure(topo, p, sec, LIMIT_ROWS if spec is LIMIT else ALL_ROWS)
    except Exception as exc:  # a figure missing is reported with its reason, never invented
        sec.fail([k for k, _, _ in ROWS], reason(exc))
    return sec


async def _all(p: Params, only: list[str] | None) -> dict[str, Section]:
    out: dict[str, Section] = {}
    for mtu in MTUS:
        for spec in GATEWAYS:
            if not _runs(spec, mtu):
                continue
            name = f"{spec.name} {mtu}"
            if only is not None and spec.name not in only:
                out[name] = Section(name)
                out[name].fail([k for k, _, _ in ROWS], "section not run")
                continue
            print(f"   {name} ...", flush=True)
            out[name] = await _one(spec, mtu, p)
    return out


def run(p: Params, only: list[str] | None = None) -> dict[str, Section]:
    """Every gateway at every MTU (or only the gateways named in `only`)."""
    return trio.run(_all, p, only)


def _ratio(a: Cell, b: Cell) -> str:
    return f"{a.value / b.value:.2f}×" if a.value is not None and b.value else ""


def render(sections: dict[str, Section]) -> str:
    notes: list[str] = []

    def cell(c: Cell) -> str:
        if c.value is not None:
            return fmt(c.value)
        if c.note == "section not run":
            return "—"
        if c.note not in notes:
            notes.append(c.note)
        return f"n/a [{notes.index(c.note) + 1}]"

    ratios = [(f"tunstack ÷ slirp4netns {m}", f"tunstack {m}", f"slirp4netns {m}") for m in MTUS]
    ratios.append((f"tunstack ÷ limit {LIMIT_MTU}", f"tunstack {LIMIT_MTU}", f"limit {LIMIT_MTU}"))
    rows = [["user-mode gateway", "unit", *COLUMNS, *(r[0] for r in ratios)]]
    for key, label, unit in ROWS:
        cs = {c: sections[c].cells.get(key, Cell(None, "section not run")) if c in sections
              else Cell(None, "section not run") for c in COLUMNS}
        rows.append([label, unit, *(cell(cs[c]) for c in COLUMNS), *(_ratio(cs[a], cs[b]) for _, a, b in ratios)])
    lines = markdown_table(rows)
    lines.append("\nSame topology and peers for every column: guest netns → gateway in a host netns → veth → "
                 "internet netns; the guest is the client in every row (its ephemeral ports 1024-65535: "
                 "the connections whose FINs cross wait in TIME-WAIT there, and a default range made its connect's "
                 "port search the bottleneck after ~14 000).  CPU per Gbit/s is the gateway "
                 "process's utime + stime over the bulk row divided by the Gbit it moved; per round trip and "
                 "per connection, over the rr and crr rows divided by their count.  For RSS and CPU, "
                 "below 1× favours tunstack.  limit: a minimal Python relay (tools/bench/gwrelay.py), "
                 "request/response and connections only.  tunstack and limit busy-poll for up to 50 µs after "
                 "traffic (stack/busypoll.py): their CPU per round trip and per connection includes the polling.")
    lines += [f"[{i + 1}] {n}" for i, n in enumerate(notes)]
    return "\n".join(lines)


def to_json(sections: dict[str, Section]) -> dict[str, Any]:
    return {n: {"cells": {k: {"value": c.value, "note": c.note} for k, c in s.cells.items()},
                "details": s.details} for n, s in sections.items()}
