"""A hostile guest against `tunstack gateway` (issue 13, "Hostile guest"), the command run
as users run it: in a host namespace of the test's, serving a guest namespace.

  * A SYN flood to many destinations: each SYN makes the gateway try a host connect(2);
    the destinations route to a veth whose other end answers nothing, so every attempt
    hangs (as toward a firewalled internet) and holds a flow.  The flow table stays at
    --max-flows (refused_full counts the rest), the gateway's RSS and CPU per SYN stay
    under generous bounds, and a connection the guest opened before the flood keeps
    echoing through it.
  * Without --allow-host-loopback nothing the guest sends reaches the host's loopback:
    the gateway address, 127.0.0.1 itself (raw SYNs to it), the DNS address and ::1 --
    a listener there accepts nothing.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

from tests.realpeer.helpers import Lines, kill_if_running, read_all, run, start_linux
from tools.lab.netns import NetnsHost, unique_name

from .conftest import require_real_peer, soak

REPO = Path(__file__).resolve().parents[2]
TUNSTACK = [sys.executable, "-m", "tools.cli.main"]
SYNS = soak(3000, 50_000)
MAX_FLOWS = 64
RSS_GROWTH = 40 << 20          # bytes: the flood's flows are bounded; measured 3 MiB
CPU_PER_SYN = 0.0005           # seconds of the gateway's CPU per flood SYN; measured 40 us, 12x slack

ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(64)
print("bound", flush=True)
accepted = 0
while True:
    c, _ = s.accept(); accepted += 1
    print("accepted", accepted, flush=True)
    while d := c.recv(65536):
        c.sendall(d)
    c.close()
"""
# the guest's long-lived connection: one line echoed before the flood (then it waits for
# "go" on stdin), and one after
CLIENT = """
import socket, sys
s = socket.create_connection(("10.0.2.2", int(sys.argv[1])), timeout=20)
s.sendall(b"before\\n"); print(s.recv(100).decode().strip(), flush=True)
sys.stdin.readline()
s.sendall(b"after\\n"); print(s.recv(100).decode().strip(), flush=True)
"""
FLOOD = """
import random, socket, struct, sys
n = int(sys.argv[1]); rnd = random.Random(7)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
def csum(b):
    if len(b) % 2: b += b"\\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b)); t = (t >> 16) + (t & 0xFFFF); t += t >> 16
    return ~t & 0xFFFF
src = socket.inet_aton("10.0.2.100")
for i in range(n):
    dst = socket.inet_aton("198.51.100.%d" % rnd.randrange(1, 254))
    sport, dport = rnd.randrange(1024, 65535), rnd.choice((80, 443, 8080))
    hdr = struct.pack("!HHIIBBHHH", sport, dport, rnd.getrandbits(32), 0, 5 << 4, 0x02, 64240, 0, 0)
    c = csum(src + dst + struct.pack("!BBH", 0, 6, len(hdr)) + hdr)
    s.sendto(hdr[:16] + struct.pack("!H", c) + hdr[18:], (socket.inet_ntoa(dst), 0))
print("sent", n)
"""
# SYNs the guest's kernel would never route to the gateway, put on the wire by hand: to
# the host's loopback addresses themselves, by the TAP, to the gateway's MAC
RAW_LOOPBACK = """
import sys
from scapy.all import IP, TCP, Ether, IPv6, conf, getmacbyip, sendp
conf.verb = 0
port = int(sys.argv[1]); mac = getmacbyip("10.0.2.2")
assert mac, "no ARP answer from the gateway"
frames = [Ether(dst=mac) / IP(src="10.0.2.100", dst=d) / TCP(sport=40000 + i, dport=port, flags="S")
          for i, d in enumerate(("127.0.0.1", "127.0.0.2"))]
frames += [Ether(dst=mac) / IPv6(src="fd00::100", dst="::1") / TCP(sport=40010, dport=port, flags="S")]
sendp(frames * 5, iface="tap0")
print("sent", len(frames) * 5)
"""
PROBES = """
import socket, sys
port = int(sys.argv[1]); out = []
for dst in ("10.0.2.2", "10.0.2.3", "127.0.0.1", "fd00::2", "::1"):
    try:
        socket.create_connection((dst, port), timeout=3).close(); out.append(dst + "=connected")
    except OSError as exc:
        out.append(dst + "=" + (str(exc.errno) if exc.errno else type(exc).__name__))
print(" ".join(out))
"""


@contextmanager
def _host_and_guest() -> Iterator[tuple[NetnsHost, NetnsHost]]:
    """A host namespace (where the gateway runs) whose 198.51.100.0/24 leads into a veth
    pair that answers nothing, and an empty guest namespace."""
    host = NetnsHost.create(unique_name("gh"))
    guest = None
    try:
        guest = NetnsHost.create(unique_name("gg"))
        a, b = unique_name("va"), unique_name("vb")
        host.ip("link", "add", a, "type", "veth", "peer", "name", b)
        host.ip("addr", "add", "198.51.100.1/24", "dev", a)
        host.ip("link", "set", a, "up")
        host.ip("link", "set", b, "up")
        # every destination's next hop "answers" ARP permanently and then drops: SYNs vanish
        host.ip("neigh", "replace", "198.51.100.254", "lladdr", "02:00:00:00:00:fe", "dev", a, "nud", "permanent")
        host.ip("route", "replace", "198.51.100.0/25", "via", "198.51.100.254", "dev", a)
        host.ip("route", "replace", "198.51.100.128/25", "via", "198.51.100.254", "dev", a)
        yield host, guest
    finally:
        if guest is not None:
            guest.delete()
        host.delete()


async def _gateway(host: NetnsHost, guest: NetnsHost, *options: str) -> tuple[trio.Process, str]:
    proc = await trio.lowlevel.open_process(
        host.exec_argv(*TUNSTACK, "gateway", "--configure", "--stats", *options, "--netns", guest.name),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None and proc.stderr is not None
    line = b""
    with trio.fail_after(30):
        while not line.endswith(b"\n"):
            chunk = await proc.stdout.receive_some()
            if not chunk:
                raise AssertionError(await read_all(proc.stderr))
            line += chunk
    assert line.startswith(b"ready: "), line
    return proc, line.decode()


def _cpu_and_rss(pid: int) -> tuple[float, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])           # utime + stime (fields 14, 15)
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # rss pages (field 24)
    return ticks / os.sysconf("SC_CLK_TCK"), rss


async def _stop(proc: trio.Process) -> dict[str, object]:
    proc.send_signal(signal.SIGTERM)
    with trio.fail_after(20):
        await proc.wait()
    assert proc.stderr is not None
    err = (await read_all(proc.stderr)).decode()
    return dict(json.loads(err[err.index("{"):]))


async def test_syn_flood_to_many_destinations_stays_within_max_flows() -> None:
    require_real_peer()
    with _host_and_guest() as (host, guest):
        server = await start_linux(host.exec_argv(sys.executable, "-c", ECHO, "127.0.0.1", "7007"))
        try:
            proc, _ = await _gateway(host, guest, "--allow-host-loopback", "--max-flows", str(MAX_FLOWS))
            client = await trio.lowlevel.open_process(guest.exec_argv(sys.executable, "-c", CLIENT, "7007"),
                                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            try:
                assert client.stdout is not None and client.stdin is not None
                client_lines = Lines(client.stdout)
                assert await client_lines.next(timeout=20) == b"before"
                # the gateway runs in its own process: its CPU is read from /proc, around the flood
                gw_pid = proc.pid                 # `ip netns exec` execs in place: the gateway's PID
                cpu0, rss0 = _cpu_and_rss(gw_pid)
                r = await run(guest.exec_argv(sys.executable, "-c", FLOOD, str(SYNS)), timeout=120)
                assert r.returncode == 0, r.stderr
                await trio.sleep(1.0)                      # let the gateway drain what it read
                cpu1, rss1 = _cpu_and_rss(gw_pid)
                await client.stdin.send_all(b"go\n")
                assert await client_lines.next(timeout=20) == b"after"   # still served
                await client.wait()
                stats = await _stop(proc)
            finally:
                await kill_if_running(client)
                await kill_if_running(proc)
        finally:
            await kill_if_running(server)
    flows = stats["flows"]
    assert isinstance(flows, dict)
    print(f"flood: {SYNS} SYNs, gateway CPU {(cpu1 - cpu0) / SYNS * 1e6:.0f} us/SYN, "
          f"RSS {rss0 >> 20} -> {rss1 >> 20} MiB, flows {flows}")
    assert flows["refused_full"] > 0 and flows["peak"] == MAX_FLOWS
    assert rss1 - rss0 < RSS_GROWTH
    assert (cpu1 - cpu0) / SYNS < CPU_PER_SYN


async def test_without_the_flag_nothing_reaches_host_loopback() -> None:
    require_real_peer()
    with _host_and_guest() as (host, guest):
        v4 = await start_linux(host.exec_argv(sys.executable, "-c", ECHO, "127.0.0.1", "7008"))
        v6 = await start_linux(host.exec_argv(sys.executable, "-c", ECHO, "::1", "7008"))
        try:
            proc, ready = await _gateway(host, guest)
            assert "host-loopback=off" in ready
            try:
                await trio.sleep(2.5)                        # the guest's IPv6 address leaves DAD
                r = await run(guest.exec_argv(sys.executable, "-c", PROBES, "7008"), timeout=60)
                probes = r.stdout.decode().split()
                # refused (RST) for the gateway and DNS addresses; 127.0.0.1 and ::1 are the
                # guest's own loopback, never sent to the gateway; none reaches the host's
                assert "10.0.2.2=111" in probes and "10.0.2.3=111" in probes, probes
                r = await run(guest.exec_argv(sys.executable, "-c", RAW_LOOPBACK, "7008"), timeout=60)
                assert r.returncode == 0 and r.stdout.startswith(b"sent"), r.stderr
                await trio.sleep(0.5)
                stats = await _stop(proc)
            finally:
                await kill_if_running(proc)
        finally:
            for server in (v4, v6):
                server.kill()
            outputs = [await read_all(s.stdout) for s in (v4, v6) if s.stdout is not None]
            for server in (v4, v6):
                await server.wait()
    stack = stats["stack"]
    assert isinstance(stack, dict)
    # the hand-made SYNs to the loopback addresses were martian destinations, dropped and
    # counted by the gateway's stack (Linux's InAddrErrors; InHdrErrors for ::1, ip6_rcv_core)
    assert stack["ipv4"]["in_addr_errors"] >= 10 and stack["ipv6"]["in_hdr_errors"] >= 5, stack
    assert all(b"accepted" not in out for out in outputs), outputs
    tcp_gateway = stats["tcp_gateway"]
    assert isinstance(tcp_gateway, dict) and tcp_gateway["relayed"] == 0
