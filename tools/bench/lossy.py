"""Bulk TCP over a lossy path: tunstack against Linux over the same impairment.

    python -m tools.bench.lossy [--mb 20] [--runs 3] [--which stack,linux] [--dir out,in]

The path (issue 10 point 11): 5 % loss, 25 % reordering, 1 % duplication, 1 % corruption
in BOTH directions, applied per frame by drivers/fault.py's FaultInjector (this kernel
has no netem, CONFIG_NET_SCH_NETEM unset; the injector is seeded, so run k of the stack
and run k of Linux see the same fault sequence for the same frame sequence).
  * tunstack: the stack on a TUN device without offloads (every frame one segment),
    the FaultInjector between the stack and the device; the kernel side in a namespace.
  * Linux: two namespaces, each holding the kernel side of a TUN device (no offloads);
    this process relays frames between the two devices through the same FaultInjector.
    (The relay costs this process CPU and adds a hop: Linux's figures are a little
    pessimistic, never optimistic.)

`out` sends from the stack (or namespace A) to a Linux sink; `in` sends from a Linux
source to the stack.  Each run reports the wall time, this process's CPU time (the
stack, or the relay), and the loss-recovery counters of the sender: the stack's
TcpStats (rto_fires, fast_retransmits, retrans_segs, loss_probes, ...) or Linux's
per-namespace MIB (TcpExtTCPTimeouts, TCPLostRetransmit, RetransSegs, ...); and the
segments (ACKs) the receiver sent, `receiver_out_segs` -- Linux's, or the stack's when it
receives -- so the two receivers can be set side by side.  Medians
over `--runs`.  The stream is checked end to end (SHA-256 on both sides).  The time runs
from the end of the handshake to the last byte acknowledged (the sender's close): a lost
SYN or SYN-ACK (1 s, as in Linux) falls on whichever run draws it -- which side's
handshake meets the first drop depends only on how many other frames (the kernel's IPv6
ND and MLD) went through the injector before it -- and it is not loss recovery.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import socket as pysocket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio

from tools.lab.netns import NetnsHost, unique_name

FAULTS: dict[str, float] = {"drop": 0.05, "reorder": 0.25, "duplicate": 0.01, "corrupt": 0.01}


def fault_spec(text: str) -> dict[str, float]:
    """`--faults`: NAME=P pairs, comma-separated, NAME one of FAULTS, 0 <= P <= 1."""
    out: dict[str, float] = {}
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        try:
            p = float(value)
        except ValueError:
            p = -1.0
        if name not in FAULTS or not 0.0 <= p <= 1.0:
            raise argparse.ArgumentTypeError(f"{item!r}: expected NAME=P with NAME one of "
                                             f"{', '.join(FAULTS)} and P from 0 to 1")
        out[name] = p
    return out


def faulty_device(inner: Any, seed: int) -> Any:
    """The path's impairment around `inner` (a FaultInjector)."""
    from drivers.fault import FaultInjector

    return FaultInjector(inner, seed=seed, drop=FAULTS["drop"], reorder=FAULTS["reorder"],
                         duplicate=FAULTS["duplicate"], corrupt=FAULTS["corrupt"])
KERNEL_IP, STACK_IP = "10.79.0.1", "10.79.0.2"
LINUX_A, LINUX_B = "10.79.1.1", "10.79.1.2"
PORT = 5301
BLOCK = random.Random(10).randbytes((1 << 20) + 7)     # odd size: blocks land at varying offsets
LINUX_MIB = ("TCPTimeouts", "TCPLostRetransmit", "RetransSegs", "OutSegs", "TCPFastRetrans", "TCPSackRecovery",
             "TCPLossProbes", "TCPSpuriousRTOs", "TCPDSACKUndo", "TCPSACKReorder", "TCPRenoRecovery",
             "TCPSackRecoveryFail", "TCPDSACKRecv", "TCPFullUndo", "TCPPartialUndo", "TCPLossUndo",
             "TCPDSACKIgnoredNoUndo", "TCPDSACKIgnoredOld", "TCPDSACKRecvSegs")
STACK_STATS = ("rto_fires", "fast_retransmits", "retrans_segs", "out_segs", "loss_probes", "probe_recoveries",
               "rack_lost", "lost_retransmits", "rack_timeouts", "dsacks_received", "sack_reneging",
               "recovery_undos", "dsacks_sent", "ooo_segs", "acks_compressed", "ofo_dropped", "paws_drops",
               "out_of_window", "in_csum_errors", "to_zero_window", "from_zero_window")

# the Linux side of a transfer: `source HOST PORT BYTES` or `sink PORT`; prints JSON
PEER = r"""
import hashlib, json, random, socket, sys, time
BLOCK = random.Random(10).randbytes((1 << 20) + 7)
role, cc = sys.argv[1], sys.argv[-1]

def congestion(s):
    # per socket: the namespace's default may be BBR, which does not slow down for loss
    if cc:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
    return s

if role == "sink":
    ls = congestion(socket.socket()); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", int(sys.argv[2]))); ls.listen(1)
    print(json.dumps({"listening": True}), flush=True)
    c, _ = ls.accept(); h = hashlib.sha256(); n = 0
    while d := c.recv(1 << 18):
        h.update(d); n += len(d)
    c.close()
    print(json.dumps({"bytes": n, "sha256": h.hexdigest()}), flush=True)
else:
    host, port, total = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    s = congestion(socket.socket()); s.connect((host, port)); t0 = time.monotonic(); h = hashlib.sha256(); left = total
    while left:
        d = BLOCK[:left]; s.sendall(d); h.update(d); left -= len(d)
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    print(json.dumps({"bytes": total, "sha256": h.hexdigest(), "seconds": time.monotonic() - t0}), flush=True)
"""


def linux_mib(host: NetnsHost) -> dict[str, int]:
    """The namespace's TcpExt and Tcp counters (a fresh namespace starts them at zero)."""
    out: dict[str, int] = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        lines = host.run("cat", path).stdout.splitlines()
        # the kernel prints each table as a names line and a values line; a torn read is cut short
        for names, values in zip(lines[::2], lines[1::2], strict=False):
            for k, v in zip(names.split()[1:], values.split()[1:], strict=False):
                if k in LINUX_MIB:
                    out[k] = int(v)
    return out


@contextmanager
def namespaces(n: int) -> Iterator[list[NetnsHost]]:
    hosts: list[NetnsHost] = []
    try:
        for _ in range(n):
            hosts.append(NetnsHost.create(unique_name("tslo")))
        yield hosts
    finally:
        for h in hosts:
            h.delete()


LINUX_CC = ["cubic"]                # the Linux peers' congestion control (set by --linux-cc)


def peer_argv(host: NetnsHost, *args: str) -> list[str]:
    return host.exec_argv(sys.executable, "-c", PEER, *args, LINUX_CC[0])


def expected_sha(total: int) -> str:
    h = hashlib.sha256()
    left = total
    while left:
        d = BLOCK[:left]
        h.update(d)
        left -= len(d)
    return h.hexdigest()


# --- Linux <-> Linux ----------------------------------------------------------------------
async def run_linux(total: int, seed: int, timeout: float, linux_cc: str) -> dict[str, Any]:
    from drivers.tuntap import TunNdd
    from stack import Stack

    with namespaces(2) as (a, b):
        tun_a, tun_b = TunNdd(unique_name("tsla"), offload=False), TunNdd(unique_name("tslb"), offload=False)
        for ndd, host, addr in ((tun_a, a, LINUX_A), (tun_b, b, LINUX_B)):
            ndd.create()
            host.adopt(ndd.ndd_name, f"{addr}/24")
        async with Stack("bench-relay") as st:      # only for its device services
            faulty = faulty_device(tun_a, seed)
            for ndd in (faulty, tun_b):
                st.ns.ns_attach(ndd)
                st.ns.ns_alloc(ndd.ndd_name)
            # A -> (faults "in") -> B, and B -> (faults "out") -> A
            faulty.nd_receive = lambda _ndd, pkt: tun_b.ndd_output(pkt)
            tun_b.nd_receive = lambda _ndd, pkt: faulty.ndd_output(pkt)
            async with trio.open_nursery() as n:
                sink = await n.start(lambda task_status: trio.run_process(
                    peer_argv(b, "sink", str(PORT)), stdout=subprocess.PIPE, check=False,
                    task_status=task_status))
                await _line(sink)
                cpu0 = time.process_time()
                with trio.fail_after(timeout):
                    out = await trio.run_process(peer_argv(a, "source", LINUX_B, str(PORT), str(total)),
                                                 capture_stdout=True, check=False)
                    got = await _line(sink)
                cpu = time.process_time() - cpu0
        sent = json.loads(out.stdout.decode().strip().splitlines()[-1])
        return {"seconds": sent["seconds"], "cpu": cpu, "faults": faulty.faults.as_dict(),
                "intact": got["sha256"] == sent["sha256"] and got["bytes"] == total, "counters": linux_mib(a),
                "receiver_out_segs": linux_mib(b)["OutSegs"]}      # the ACKs Linux's receiver sent


_buffers: dict[int, bytes] = {}


async def _line(proc: trio.Process) -> dict[str, Any]:
    """One JSON line from a peer's stdout."""
    assert proc.stdout is not None
    buf = _buffers.get(id(proc), b"")
    while b"\n" not in buf:
        chunk = await proc.stdout.receive_some(4096)
        if not chunk:
            raise EOFError("Linux peer exited")
        buf += chunk
    text, _buffers[id(proc)] = buf.split(b"\n", 1)
    line: dict[str, Any] = json.loads(text)
    return line


# --- tunstack <-> Linux -------------------------------------------------------------------
async def run_stack(total: int, seed: int, direction: str, timeout: float, linux_cc: str,
                    stack_cc: str = "") -> dict[str, Any]:
    from drivers.tuntap import TunNdd
    from stack import Stack

    with namespaces(1) as (host,):
        ndd = TunNdd(unique_name("tslt"), offload=False)
        ndd.create()
        host.adopt(ndd.ndd_name, f"{KERNEL_IP}/24")
        async with Stack("bench-lossy") as st:
            faulty = faulty_device(ndd, seed)
            st.add_interface(faulty, f"{STACK_IP}/24")
            cpu0 = time.process_time()
            with trio.fail_after(timeout):
                if direction == "out":
                    res = await _stack_sends(st, host, total, stack_cc)
                else:
                    res = await _stack_receives(st, host, total, stack_cc)
            res["cpu"] = time.process_time() - cpu0
            res["faults"] = faulty.faults.as_dict()
            stats = st.tcp.stats.as_dict()
            res["stack"] = {k: stats[k] for k in STACK_STATS if k in stats}
            # the sender's view: the stack's own counters, or the Linux sender's MIB
            res["counters"] = res["stack"] if direction == "out" else linux_mib(host)
            if direction == "in":
                res["receiver_out_segs"] = stats["out_segs"]     # the ACKs the stack's receiver sent
    return res


async def _stack_sends(st: Any, host: NetnsHost, total: int, stack_cc: str) -> dict[str, Any]:
    async with trio.open_nursery() as n:
        proc: trio.Process = await n.start(lambda task_status: trio.run_process(
            peer_argv(host, "sink", str(PORT)), stdout=subprocess.PIPE, check=False, task_status=task_status))
        await _line(proc)
        s = st.socket(pysocket.AF_INET, pysocket.SOCK_STREAM)
        if stack_cc:
            s.setsockopt(pysocket.IPPROTO_TCP, pysocket.TCP_CONGESTION, stack_cc.encode())
        await s.connect((KERNEL_IP, PORT))
        t0 = trio.current_time()
        left = total
        while left:
            d = BLOCK[:left]
            await s.sendall(d)
            left -= len(d)
        s.shutdown(pysocket.SHUT_WR)
        while await s.recv(65536):
            pass
        seconds = trio.current_time() - t0
        s.close()
        got = await _line(proc)
    return {"seconds": seconds, "intact": got["bytes"] == total and got["sha256"] == expected_sha(total)}


async def _stack_receives(st: Any, host: NetnsHost, total: int, stack_cc: str) -> dict[str, Any]:
    ls = st.socket(pysocket.AF_INET, pysocket.SOCK_STREAM)
    if stack_cc:
        ls.setsockopt(pysocket.IPPROTO_TCP, pysocket.TCP_CONGESTION, stack_cc.encode())
    ls.bind((STACK_IP, PORT))
    ls.listen(4)
    h = hashlib.sha256()
    got = 0

    async def sink() -> None:
        nonlocal got
        c, _ = await ls.accept()
        while d := await c.recv(1 << 18):
            h.update(d)
            got += len(d)
        c.close()

    async with trio.open_nursery() as n:
        n.start_soon(sink)
        out = await trio.run_process(peer_argv(host, "source", STACK_IP, str(PORT), str(total)),
                                     capture_stdout=True, check=False)
    ls.close()
    sent = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return {"seconds": sent["seconds"], "intact": got == total and h.hexdigest() == sent["sha256"]}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = sorted({k for r in runs for k in r["counters"]})
    return {"seconds": statistics.median(r["seconds"] for r in runs),
            "cpu": statistics.median(r["cpu"] for r in runs),
            "intact": all(r["intact"] for r in runs),
            "counters": {k: statistics.median(r["counters"].get(k, 0) for r in runs) for k in keys},
            **({"receiver_out_segs": statistics.median(r["receiver_out_segs"] for r in runs)}
               if all("receiver_out_segs" in r for r in runs) else {}),
            "runs": [round(r["seconds"], 2) for r in runs]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=20.0, help="megabytes per transfer (default 20)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--which", default="stack,linux")
    ap.add_argument("--dir", default="out,in", help="out: stack sends; in: Linux sends to the stack")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--linux-cc", default="cubic", help="Linux's congestion control in the namespaces "
                    "(cubic: the stack's default; '' keeps the kernel's default)")
    ap.add_argument("--stack-cc", default="", help="the stack's congestion control (TCP_CONGESTION on its "
                    "sockets; '' keeps its default)")
    ap.add_argument("--faults", type=fault_spec, default={},
                    help="change the impairment, e.g. 'reorder=0,duplicate=0,corrupt=0' for drops only "
                         f"(probabilities per frame; default {','.join(f'{k}={v}' for k, v in FAULTS.items())})")
    a = ap.parse_args(argv)
    FAULTS.update(a.faults)
    LINUX_CC[0] = a.linux_cc
    total = int(a.mb * 1_000_000)
    report: dict[str, Any] = {"faults": FAULTS, "linux_cc": a.linux_cc or "default",
                              "stack_cc": a.stack_cc or "default", "bytes": total,
                              "loadavg_before": os.getloadavg()[0]}
    for which in a.which.split(","):
        for direction in a.dir.split(",") if which == "stack" else ["out"]:
            runs = []
            for k in range(a.runs):
                if which == "linux":
                    runs.append(trio.run(run_linux, total, k + 1, a.timeout, a.linux_cc))
                else:
                    runs.append(trio.run(run_stack, total, k + 1, direction, a.timeout, a.linux_cc, a.stack_cc))
                print(json.dumps({which + "_" + direction: runs[-1]}), file=sys.stderr, flush=True)
            report[which if which == "linux" else f"stack_{direction}"] = summarize(runs)
    report["loadavg_after"] = os.getloadavg()[0]
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
