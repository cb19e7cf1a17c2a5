"""The ATM part of `tunstack demo` (tools/demo/tour.py calls `atm_demo` in both variants: it
needs no root).

Two stacks, each with an emulated ATM adapter; the adapters' PHYs are UDP sockets on
127.0.0.1 carrying 53-octet cells, paced at OC-3c.  First a PVC socket pair on VC 0/42
(AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM): connecting sends no cell, then datagrams go both
ways with their boundaries kept.  Then Classical IP on VC 0/100: InATMARP learns each far
end, pings (one of 20000 bytes, fragmented at MTU 9180), an HTTP GET over TCP, all
recorded as SUNATM pcaps (atm-a.pcap, atm-b.pcap; tshark checks it decodes IP inside and
finds nothing malformed), and, once the captures have stopped, 10 MB over TCP with its
SHA-256 and Mbit/s.
"""
from __future__ import annotations

import hashlib
import shutil
import socket
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from drivers.atm.adapter import AtmNdd
from drivers.atm.phy import UdpPhy
from drivers.pcap import PcapRecorder
from ndd.atm import DEFAULT_MTU
from protocols.atm.sockets.sockaddr import CONN_PVC
from stack import Stack
from stack.socket import AF_NDD, NDD_PROT_ATM, SOCK_CONN_DGRAM
from tools.services.builtin import ServiceStats, tcp_http
from tools.services.http import pattern_bytes

from .probes import http_get_pattern, ping_series
from .svc import svc_demo

if TYPE_CHECKING:
    from .report import Report

ATM_A, ATM_B = "10.79.0.1", "10.79.0.2"
DGRAM_VC = (0, 42)
CLIP_VC = (0, 100)
DGRAM_SIZES = (1, 48, 1000, DEFAULT_MTU)
HTTP_BYTES = 100_000
BULK = 10_000_000
SINK_PORT = 5001
_BLOCK = memoryview(pattern_bytes(0, 1 << 18))   # 256 KiB, a whole number of 256-byte patterns


def _cells(*ndds: AtmNdd) -> int:
    return sum(n.atm_stats.xmt_cells + n.phy.stats.tx_cells for n in ndds)


def _data(size: int, salt: int) -> bytes:
    return bytes((i * 7 + size + salt) % 251 for i in range(size))


async def pvc_datagrams(report: Report, sa: Stack, sb: Stack, a: AtmNdd, b: AtmNdd) -> None:
    vpi, vci = DGRAM_VC
    before = _cells(a, b)
    with sa.socket(AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM) as x, sb.socket(AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM) as y:
        await x.connect((a.ndd_name, CONN_PVC, vpi, vci))
        await y.connect((b.ndd_name, CONN_PVC, vpi, vci))
        sent = _cells(a, b) - before
        report.step(f"ATM: PVC sockets connected on VC {vpi}/{vci} at both ends, no cell sent (no signalling)",
                    sent == 0, f"{sent} cells")
        results: list[str] = []
        ok = True
        with trio.move_on_after(5) as timeout:
            for src, dst, salt, arrow in ((x, y, 0, "a->b"), (y, x, 1, "b->a")):
                for size in DGRAM_SIZES:
                    await src.send(_data(size, salt))
                got = [await dst.recv(65535) for _ in DGRAM_SIZES]
                good = got == [_data(n, salt) for n in DGRAM_SIZES]
                ok &= good
                results.append(f"{arrow} {'ok' if good else 'MISMATCH'}")
        ok &= not timeout.cancelled_caught
        cells = _cells(a, b) - before
        report.step(f"ATM: datagrams of {'/'.join(map(str, DGRAM_SIZES))} bytes both ways over VC {vpi}/{vci} "
                    "(one AAL5 SDU each, boundaries kept)", ok,
                    ", ".join(results) + (" (timed out)" if timeout.cancelled_caught else "") + f"; {cells} cells")


async def _learned(st: Stack, ifname: str) -> int | None:
    from protocols.atm.clip.link import VALID
    pvc = st.atm_table(ifname).pvcs[CLIP_VC]
    return pvc.peer if pvc.state == VALID else None


async def _pings(report: Report, st: Stack, dst: str, who: str, peer: str, count: int, size: int,
                 extra: str = "") -> None:
    ok, detail = await ping_series(st, dst, count, size)
    report.step(f"ATM: {who} pings {peer} at {dst} over CLIP ({size} bytes{extra})", ok, detail)


async def http_get(report: Report, sa: Stack, sb: Stack) -> None:
    stats = ServiceStats()
    ok, got = False, 0
    async with trio.open_nursery() as services:
        await services.start(partial(tcp_http, sb, 80, stats=stats))
        with trio.move_on_after(10):
            ok, got = await http_get_pattern(sa, ATM_B, HTTP_BYTES)
        services.cancel_scope.cancel()
    report.step(f"ATM: TCP HTTP GET /bytes/{HTTP_BYTES} from stack b over CLIP", ok, f"{got} bytes")


async def tcp_bulk(report: Report, sa: Stack, sb: Stack) -> None:
    expect = hashlib.sha256()
    for off in range(0, BULK, len(_BLOCK)):
        expect.update(_BLOCK[:min(len(_BLOCK), BULK - off)])
    got = hashlib.sha256()
    received, elapsed, detail = 0, 0.0, ""
    try:
        with trio.fail_after(30):
            with sb.socket(socket.AF_INET, socket.SOCK_STREAM) as ls:
                ls.bind(("", SINK_PORT))
                ls.listen(1)

                async def sink() -> None:
                    nonlocal received
                    conn, _ = await ls.accept()
                    with conn:
                        while data := await conn.recv(1 << 20):
                            got.update(data)
                            received += len(data)

                async with trio.open_nursery() as n:
                    n.start_soon(sink)
                    with sa.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                        await s.connect((ATM_B, SINK_PORT))
                        t0 = trio.current_time()
                        for off in range(0, BULK, len(_BLOCK)):
                            await s.sendall(_BLOCK[:min(len(_BLOCK), BULK - off)])
                        s.shutdown(socket.SHUT_WR)
                        while await s.recv(65536):   # b closes once it has read our FIN
                            pass
                        elapsed = trio.current_time() - t0
    except (OSError, trio.TooSlowError) as exc:
        detail = f"{type(exc).__name__}: {exc}; "
    ok = received == BULK and got.digest() == expect.digest()
    detail += (f"{received / 1e6:.0f} MB in {elapsed:.2f} s = {received * 8 / max(elapsed, 1e-9) / 1e6:.0f} Mbit/s "
               f"(OC-3c: 149.76 Mbit/s of cells), SHA-256 {'ok' if ok else 'MISMATCH'}")
    report.step(f"ATM: stack a sends {BULK // 1_000_000} MB to stack b over TCP/CLIP (not captured)", ok, detail)


async def _tshark(pcap: Path, *args: str) -> tuple[int, list[str]]:
    with trio.fail_after(60):
        r = await trio.run_process(["tshark", "-n", "-r", str(pcap), *args], capture_stdout=True,
                                   capture_stderr=True, check=False)
    return r.returncode, [ln for ln in r.stdout.decode().splitlines() if ln.strip()]


async def tshark_atm(pcap: Path) -> tuple[bool, str]:
    """(ok, detail): tshark finds IP on VC 0/100 inside LLC/SNAP and nothing malformed."""
    results: dict[str, tuple[int, list[str]]] = {}

    async def one(key: str, *args: str) -> None:
        results[key] = await _tshark(pcap, *args)

    async with trio.open_nursery() as n:
        n.start_soon(one, "rows", "-T", "fields", "-E", "separator=,", "-e", "atm.vpi", "-e", "atm.vci",
                     "-e", "ip.src", "-e", "_ws.col.Protocol")
        n.start_soon(one, "bad", "-Y", "_ws.malformed || _ws.expert.severity >= error")
    rc, rows = results["rows"]
    rc2, bad = results["bad"]
    fields = [r.split(",") for r in rows]
    ip_rows = [f for f in fields if len(f) > 2 and f[2]]
    protos = sorted({f[3] for f in fields if len(f) > 3 and f[3]})
    ok = rc == rc2 == 0 and not bad and bool(ip_rows) and all(f[:2] == ["0", "100"] for f in ip_rows)
    return ok, (f"{len(rows)} frames, {len(ip_rows)} IP on VC 0/100; protocols {'/'.join(protos)}; "
                f"{len(bad)} malformed or in error")


async def atm_demo(report: Report, out: Path) -> None:
    print(f"== ATM: two emulated adapters, cells over UDP on 127.0.0.1 (OC-3c paced): "
          f"stack a {ATM_A}, stack b {ATM_B}")
    t_start = trio.current_time()
    pa, pb = UdpPhy(), UdpPhy()
    pa.connect(pb.local_address)
    pb.connect(pa.local_address)
    print("    PHYs: a at {}:{}, b at {}:{}".format(*pa.local_address, *pb.local_address))
    a, b = AtmNdd("atm0", pa), AtmNdd("atm1", pb)
    paths = (out / "atm-a.pcap", out / "atm-b.pcap")
    recs: list[PcapRecorder] = []
    stats: dict[str, Any] = {}
    try:
        async with Stack("demo-atm-a") as sa, Stack("demo-atm-b") as sb:
            recs = [PcapRecorder.attach(a, str(paths[0])), PcapRecorder.attach(b, str(paths[1]))]
            sa.add_interface(a, f"{ATM_A}/24")
            sb.add_interface(b, f"{ATM_B}/24")
            await pvc_datagrams(report, sa, sb, a, b)
            # CLIP on another VC, no static entries: InATMARP (RFC 2225) learns each far end
            t0 = trio.current_time()
            sa.add_atm_pvc("atm0", *CLIP_VC)
            sb.add_atm_pvc("atm1", *CLIP_VC)
            peers: tuple[int | None, int | None] = (None, None)
            with trio.move_on_after(5):
                while None in peers:
                    await trio.sleep(0.005)
                    peers = (await _learned(sa, "atm0"), await _learned(sb, "atm1"))
            from protocols.addr import int_to_ip
            names = tuple(int_to_ip(p) if p is not None else "?" for p in peers)
            report.step(f"ATM: InATMARP learns the far end of VC {CLIP_VC[0]}/{CLIP_VC[1]} at both ends",
                        names == (ATM_B, ATM_A),
                        f"a: {names[0]}, b: {names[1]} in {(trio.current_time() - t0) * 1000:.0f} ms")
            await _pings(report, sa, ATM_B, "stack a", "stack b", 3, 56)
            await _pings(report, sb, ATM_A, "stack b", "stack a", 3, 56)
            frags = sa.stats()["ipv4"]["frag_creates"]
            await _pings(report, sa, ATM_B, "stack a", "stack b", 2, 20000, ", fragmented at MTU 9180")
            print(f"    2 echo requests of 20000 bytes left stack a in {sa.stats()['ipv4']['frag_creates'] - frags} "
                  f"fragments (9160 + 9160 + 1708 octets of IP payload each); b reassembled "
                  f"{sb.stats()['reasm']['oks']}")
            await http_get(report, sa, sb)
            for nd in (a, b):
                with trio.move_on_after(2):
                    await nd.wait_tx_idle()
            await trio.sleep(0.01)   # let the last cells arrive before the taps close
            for rec in recs:
                rec.close()
            frames = [rec.frames for rec in recs]
            await tcp_bulk(report, sa, sb)
            stats = {"a": a.genstats(), "b": b.genstats(), "clip": sa.stats()["interfaces"]["atm0"]["clip"]}
    finally:
        for rec in recs:
            rec.close()
        pa.shutdown()
        pb.shutdown()
    if stats:
        sa_ = stats["a"]
        print(f"    adapter a: cells out={sa_.get('xmt_cells')} in={sa_.get('rcv_cells')}, "
              f"hec_errors={sa_.get('hec_errors', 0)}; clip a: tx_ip={stats['clip'].get('tx_ip')} "
              f"rx_ip={stats['clip'].get('rx_ip')} learned={stats['clip'].get('learned')}")
        report.step("ATM: SUNATM (LINKTYPE 123) captures written", all(p.exists() for p in paths) and min(frames) > 10,
                    f"{paths[0].name}: {frames[0]} frames, {paths[1].name}: {frames[1]} frames")
    if shutil.which("tshark") and all(p.exists() for p in paths):
        checks: dict[Path, tuple[bool, str]] = {}

        async def check(p: Path) -> None:
            checks[p] = await tshark_atm(p)

        async with trio.open_nursery() as n:   # the two files side by side: tshark starts slowly
            for p in paths:
                n.start_soon(check, p)
        for p in paths:
            report.step(f"ATM: tshark decodes IP inside LLC/SNAP in {p.name}, nothing malformed", *checks[p])
    print(f"    ATM section: {trio.current_time() - t_start:.2f} s")
    await svc_demo(report, out)
