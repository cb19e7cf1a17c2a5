"""`make bench` section "svc", ATM cell throughput rows (issue 15): no root needed.

pvc:  one process, two AtmNdds joined by an in-process PhyPair, line rate 0 (unpaced): one
      PVC carries 9180-octet SDUs (the CLIP MTU) as fast as the sender can queue them.  The
      figures are the SDU octets delivered per second and the process's CPU time per cell
      (sent and received: both adapters are in the process).  The machine is shared, so
      the CPU figure is the stable one; 1 / it is the cell rate one core would reach.
clip: two `tunstack atm ip` processes over the UDP PHY on 127.0.0.1, paced at OC-3c (the
      default line rate): one serves HTTP, the other fetches /bytes/N over CLIP TCP.  The
      figures are the fetch's Mbit/s, the cells the server's PHY sent that the client's did
      not receive (lost in the kernel's UDP socket) and the client's CPU per cell received.
"""
from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import time
from typing import Any

import trio

from drivers.atm.adapter import AtmNdd
from drivers.atm.phy import PhyPair
from ndd import constants as C
from ndd.atm import VcParams
from ndd.demux import NsFilter, NsUser
from ndd.ndd import Ndd
from ndd.pktbuf import PacketBuffer
from ndd.services import NetServices

SDU = 9180
VC = (0, 42)
CLIP_MBIT_S = 17.0              # roughly what OC-3c carries of TCP payload, in MB/s: sizes the fetch


async def _pvc(seconds: float) -> dict[str, float]:
    async with trio.open_nursery() as nursery:
        ns = NetServices(nursery.start_soon, trio.current_time)
        pair = PhyPair()
        a, b = AtmNdd("atm0", pair.a, line_rate=0), AtmNdd("atm1", pair.b, line_rate=0)
        for nd in (a, b):
            ns.ns_attach(nd)
            ns.ns_alloc(nd.ndd_name)
            nd.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(*VC))
        got = [0]

        def isr(ndd: Ndd, pkt: PacketBuffer, data: object) -> None:
            got[0] += 1

        ns.ns_add_filter(b, NsFilter(C.NS_ATM_VC, vpi=VC[0], vci=VC[1]), NsUser(isr, None, 1))
        payload = (bytes(range(256)) * (SDU // 256 + 1))[:SDU]
        await trio.sleep(0.05)
        cells0 = b.atm_stats.rcv_cells + a.atm_stats.xmt_cells
        t0, c0 = time.perf_counter(), time.process_time()
        sent = 0
        while time.perf_counter() - t0 < seconds:
            for _ in range(64):
                if a.atm_output(*VC, payload):
                    break                       # the transmit queue is full: let it drain
                sent += 1
            await trio.sleep(0)
        with trio.move_on_after(10):
            while got[0] < sent:
                await trio.sleep(0.001)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        cells = b.atm_stats.rcv_cells + a.atm_stats.xmt_cells - cells0
        nursery.cancel_scope.cancel()
    return {"mbit_s": got[0] * SDU * 8 / wall / 1e6, "cpu_us_per_cell": cpu * 1e6 / (cells / 2),
            "sdus": got[0], "cells_each_way": cells / 2, "wall_s": wall, "cpu_s": cpu}


def pvc(seconds: float) -> dict[str, float]:
    return trio.run(_pvc, seconds)


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tools.cli.main", "atm", "ip", *args]


def _stats(stderr: str) -> dict[str, Any]:
    """The --stats JSON a `tunstack atm ip` prints on exit (the last object on stderr)."""
    start = stderr.rfind("\n{")
    obj, _ = json.JSONDecoder().raw_decode(stderr[start + 1:] if start >= 0 else stderr[stderr.index("{"):])
    return dict(obj)


def _fetch(remote: str, size: int, timeout: float) -> tuple[float, str]:
    """One client process fetching `size` octets: (its CPU seconds, its stderr)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = subprocess.run(_cmd("--remote", remote, "--addr", "10.79.0.2/24", "--peer-ip", "10.79.0.1",
                                 "--stats", "--fetch", f"http://10.79.0.1/bytes/{size}", "-o", "/dev/null"),
                            capture_output=True, text=True, timeout=timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if client.returncode or "200 OK" not in client.stderr:
        raise RuntimeError(f"fetch failed ({client.returncode}): {client.stderr[-300:]!r}")
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), client.stderr


def clip(seconds: float) -> dict[str, float]:
    size = int(CLIP_MBIT_S * 1e6 * seconds)
    server = subprocess.Popen(_cmd("-l", "--local", "127.0.0.1:0", "--addr", "10.79.0.1/24", "--peer-ip", "10.79.0.2",
                                   "--serve", "http", "--stats"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        ready = server.stdout.readline()
        m = re.search(r"local=(\S+)", ready)
        if m is None:
            raise RuntimeError(f"server not ready: {ready!r}")
        # a 1-octet fetch first: its CPU is the client's start-up and exit, taken off below
        idle_cpu, first = _fetch(m.group(1), 1, 60)
        cpu, err = _fetch(m.group(1), size, 60 + 20 * seconds)
        fetched = re.search(r"fetched \S+: HTTP/1.1 200 OK, (\d+) bytes in ([\d.]+) s", err)
        assert fetched is not None
    finally:
        server.terminate()
        _, server_err = server.communicate(timeout=30)
    cs, ss = _stats(err), _stats(server_err)
    sent0 = _stats(first)["phy"]["rx_cells"] + _AFTER_EXIT_CELLS      # the server's cells of the first fetch
    received, sent = cs["phy"]["rx_cells"], ss["phy"]["tx_cells"] - sent0
    return {"mbit_s": int(fetched.group(1)) * 8 / float(fetched.group(2)) / 1e6,
            "cells_lost": max(0, sent - received - _AFTER_EXIT_CELLS), "cells_sent": sent,
            "client_cpu_us_per_cell": max(0.0, cpu - idle_cpu) * 1e6 / max(1, received),
            "client_startup_cpu_s": idle_cpu, "tcp_retransmits": ss["tcp"]["retrans_segs"]}


# The server's last ACK of the client's FIN leaves after the client has exited: one
# 40-octet segment + 8 octets of LLC/SNAP = 2 cells nobody receives, not a loss.
_AFTER_EXIT_CELLS = 2
