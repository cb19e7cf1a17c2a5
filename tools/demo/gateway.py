"""The gateway part of `tunstack demo`: `tunstack gateway` gives a namespace a network the
way slirp4netns does, in the three-namespace topology of its tests (tools/lab/gwtopo.py:
a guest namespace, a host namespace where the gateway runs, an "internet" namespace behind
a veth with an HTTP server and UDP/TCP echo).  The guest -- an ordinary Linux namespace,
its tap0 made and configured by the gateway -- fetches 20 MB with curl (SHA-256 checked,
its Mbit/s), trades UDP datagrams up to 8000 bytes, pings through the host's ping sockets
and meets ECONNREFUSED from a closed port, while the gateway captures the guest's device;
the gateway's CPU and memory for all of it are read from /proc.  Nothing leaves the
namespaces.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from tools.lab.gwservers import CLOSED_PORT, ECHO_PORT, HTTP_PORT, payload
from tools.lab.gwtopo import INTERNET_ADDR, TUNSTACK, TopologyError, gateway_topology

from .probes import ping_loss, run

if TYPE_CHECKING:
    from tools.lab.gwtopo import Topology

    from .report import Report

FETCH = 20_000_000
RSS_BOUND = 200 << 10          # KiB: what the gateway may grow to here (it stays near 45 MiB)
UDP_SIZES = (1, 100, 1472, 4000, 8000)
UDP_ECHO = """
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect((sys.argv[1], int(sys.argv[2]))); s.settimeout(2)
ok = []
for size in map(int, sys.argv[3:]):
    data = bytes(i % 251 for i in range(size))
    for _ in range(3):                   # UDP may drop one: a resend is no failure
        s.send(data)
        try:
            if s.recv(65535) == data:
                ok.append(size); break
        except TimeoutError:
            continue
print(json.dumps({"echoed": ok}))
"""
CONNECT = """
import errno, socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); print("connected")
except OSError as exc:
    print(errno.errorcode.get(exc.errno, str(exc)))
"""


async def gateway_demo(report: Report, out: Path) -> None:
    print("== tunstack gateway: a namespace's network through host sockets (the slirp4netns job)")
    pcap = out / "gateway-guest.pcap"
    try:
        async with gateway_topology(TUNSTACK, mtu=65520, extra=("--pcap", str(pcap))) as topo:
            report.step("gateway: `tunstack gateway --configure --netns GUEST` is up", True, topo.ready_line)
            before = topo.gateway_stat()
            await _steps(report, topo, out)
            after = topo.gateway_stat()
            report.step("gateway: what it cost", after["hwm_kib"] < RSS_BOUND,
                        f"{after['cpu_s'] - before['cpu_s']:.2f} s of the gateway's CPU for the steps above, "
                        f"{after['hwm_kib'] // 1024} MiB peak RSS")
    except TopologyError as exc:
        report.step("gateway: the topology", False, str(exc).splitlines()[0])
        return
    size = pcap.stat().st_size if pcap.exists() else 0
    report.step("gateway: the guest's device captured (--pcap)", size > FETCH, f"{pcap.name}, {size:,} bytes")


async def _steps(report: Report, topo: Topology, out: Path) -> None:
    got = out / "gateway-fetch.bin"
    r = await run(topo.guest_argv("curl", "-sS", "--fail", "-m", "60", "-o", str(got), "-w", "%{speed_download}",
                                  f"http://{INTERNET_ADDR}:{HTTP_PORT}/bytes/{FETCH}"))
    same = r.returncode == 0 and got.exists() and \
        hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(payload(FETCH)).digest()
    speed = float(r.stdout or 0) * 8 / 1e6 if r.returncode == 0 else 0.0
    report.step(f"gateway: the guest's curl fetches {FETCH // 1_000_000} MB from the internet namespace", same,
                f"SHA-256 equal, {speed:,.0f} Mbit/s" if same else (r.stderr.decode().strip() or "differs"))
    got.unlink(missing_ok=True)
    r = await run(topo.guest_python(UDP_ECHO, INTERNET_ADDR, str(ECHO_PORT), *map(str, UDP_SIZES)))
    echoed = json.loads(r.stdout.decode().splitlines()[-1])["echoed"] if r.returncode == 0 else []
    report.step("gateway: UDP echo through a connected host socket", echoed == list(UDP_SIZES),
                f"sizes {echoed} echoed")
    r = await run(topo.guest_argv("ping", "-c", "3", "-i", "0.2", "-W", "2", INTERNET_ADDR))
    loss = ping_loss(r.stdout.decode())
    report.step(f"gateway: the guest pings {INTERNET_ADDR} (through the host's ping sockets)", loss == 0,
                f"{loss}% loss")
    r = await run(topo.guest_python(CONNECT, INTERNET_ADDR, str(CLOSED_PORT)))
    result = r.stdout.decode().strip()
    report.step("gateway: a closed port refuses the guest as the internet did the host", result == "ECONNREFUSED",
                result)
