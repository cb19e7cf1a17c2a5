"""Section a: Linux to Linux over a veth pair between two namespaces -- the ceiling.

Bulk with iperf3 (one run; a veth is symmetric, so the figure stands for both
directions); 1-byte request/response and accepted connections/s with the same stdlib
peers that face tunstack, so those rows compare like with like.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time

from tools.lab.netns import NetnsHost

from .common import Params, Proc, Section, can_run, netns, peer_argv, reason, run_peer, veth_pair

A_IP, B_IP = "10.78.9.1", "10.78.9.2"
ROWS = ["bulk_in", "bulk_out", "rr", "cps"]


def iperf3_mbit(server_ns: NetnsHost, client_ns: NetnsHost, seconds: float) -> float:
    def client() -> subprocess.CompletedProcess[str]:
        return client_ns.run("iperf3", "-c", A_IP, "-p", "5201", "-t", str(max(1, round(seconds))), "-J",
                             timeout=seconds + 30)

    with Proc(server_ns.exec_argv("iperf3", "-s", "-1", "-B", A_IP, "-p", "5201")):
        out = client()
        # the server may not listen yet: retry a refused client briefly (25 tries in all); with -J
        # iperf3 reports "unable to connect" in its JSON, whatever its exit status
        for _ in range(24):
            if "unable to connect" not in out.stdout + out.stderr:
                break
            time.sleep(0.2)
            out = client()
    if out.returncode != 0:
        raise RuntimeError(f"iperf3 failed: {(out.stderr or out.stdout).strip()[-200:]}")
    data = json.loads(out.stdout)
    if "sum_received" not in data.get("end", {}):
        raise RuntimeError(f"iperf3: {data.get('error', 'no sum_received in its JSON')}")
    return float(data["end"]["sum_received"]["bits_per_second"]) / 1e6


def run(p: Params) -> Section:
    sec = Section("veth")
    why = can_run()
    if why:
        sec.fail(ROWS, why)
        return sec
    try:
        with netns("tsba") as a, netns("tsbb") as b:
            veth_pair(a, b, f"{A_IP}/24", f"{B_IP}/24")
            try:
                if not shutil.which("iperf3"):
                    raise RuntimeError("iperf3 is not installed")
                mbit = iperf3_mbit(a, b, p.seconds)
                sec.set("bulk_in", mbit, "iperf3, one stream")
                sec.set("bulk_out", mbit, "iperf3, one stream (veth is symmetric: same run)")
            except (RuntimeError, ValueError, KeyError, subprocess.SubprocessError) as exc:
                sec.fail(["bulk_in", "bulk_out"], reason(exc))
            with Proc(peer_argv(a, "rr-server", "5007", "--timeout", "30")) as srv:
                srv.line(10)
                rr = run_peer(b, "rr-client", A_IP, "5007", "--seconds", str(p.seconds))
                sec.set("rr", rr["per_s"], "Python client/server")
            with Proc(peer_argv(a, "cps-server", "5009", "--timeout", "1")) as srv:
                srv.line(10)
                cps = run_peer(b, "cps-client", A_IP, "5009", "--seconds", str(p.seconds))
                sec.set("cps", cps["per_s"], "Python client/server, sequential")
    except (OSError, RuntimeError, TimeoutError, EOFError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        sec.fail(ROWS, reason(exc))
    return sec
