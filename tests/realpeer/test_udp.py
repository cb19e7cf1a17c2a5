"""UDP against the Linux kernel: Linux clients (Python sockets, socat, nc -u) talk to the
stack's echo service, the stack's sockets talk to Linux servers, 10 000 datagrams of
mixed sizes (1..8000 bytes, most of them fragmented) cross each way without loss, a connected
socket hears ECONNREFUSED, and tshark finds every UDP checksum the stack wrote valid.

Pacing: every bulk exchange is an echo with a bounded number of datagrams in flight
(WINDOW), so neither Linux's nor the stack's receive buffer can overflow on the clean
link -- a lost datagram is a real failure, not an artefact of the test.
"""
from __future__ import annotations

import errno
import hashlib
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import trio

from drivers.pcap import PcapRecorder
from drivers.tuntap import TunNdd
from tools.lab.netns import NetnsHost, unique_name
from tools.services.builtin import ServiceStats, udp_echo

from .conftest import Peer, _peer, require_real_peer
from .helpers import kill_if_running, output_at_exit, run, start_linux, wait_for

COUNT = 10_000
WINDOW = 16

# Shared by both ends (exec'd in the namespace and imported here): datagram i's size
# and content.  Sizes cycle through every value of 1..8000 (stride 2411, coprime with
# 8000), so 82% exceed 1472 bytes and are fragmented at MTU 1500 (up to 6 fragments).
PAYLOAD_SRC = """
def size(i):
    return 1 + (i * 2411) % 8000

def payload(i):
    n = size(i)
    seed = i.to_bytes(4, "big")
    return (seed * (n // 4 + 1))[:n]
"""
_ns: dict = {}
exec(PAYLOAD_SRC, _ns)
size, payload = _ns["size"], _ns["payload"]

LINUX_CLIENT = PAYLOAD_SRC + """
import hashlib, socket, sys, time
host, port, count, window = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)   # SO_RCVBUFFORCE (root)
s.settimeout(5)
s.connect((host, port))
sent, got = hashlib.sha256(), hashlib.sha256()
nxt = received = bad = 0
t0 = time.monotonic()
while nxt < min(window, count):
    d = payload(nxt); sent.update(len(d).to_bytes(4, "big") + d); s.send(d); nxt += 1
try:
    while received < count:
        d = s.recv(65535)
        if d != payload(received):
            bad += 1
        got.update(len(d).to_bytes(4, "big") + d)
        received += 1
        if nxt < count:
            d = payload(nxt); sent.update(len(d).to_bytes(4, "big") + d); s.send(d); nxt += 1
except OSError as exc:
    print("error", exc, file=sys.stderr)
print(received, bad, sent.hexdigest(), got.hexdigest(), "%.2f" % (time.monotonic() - t0), flush=True)
"""

# prints the datagrams echoed, their SHA-256 and the last sender's address
LINUX_ECHO_SERVER = """
import hashlib, socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)   # SO_RCVBUFFORCE (root)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(10)
print("bound", flush=True)
h, n = hashlib.sha256(), 0
while True:
    d, peer = s.recvfrom(65535)
    if d == b"STOP!":
        break
    h.update(len(d).to_bytes(4, "big") + d)
    n += 1
    s.sendto(d, peer)
print(n, h.hexdigest(), peer[0], flush=True)
"""

LINUX_REFUSER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(5)
print("bound", flush=True)
d, peer = s.recvfrom(65535)
s.sendto(b"re:" + d, peer)
"""


def digest(count: int) -> str:
    h = hashlib.sha256()
    for i in range(count):
        d = payload(i)
        h.update(len(d).to_bytes(4, "big") + d)
    return h.hexdigest()


async def wait_udp_bound(peer: Peer, port: int) -> None:
    async def bound() -> bool:
        r = await run(peer.exec("ss", "-Hunl", f"sport = :{port}"))
        return bool(r.stdout.strip())
    with trio.fail_after(5):
        while not await bound():
            await trio.sleep(0.05)


def udp_sock(peer: Peer):
    return peer.stack.socket(socket.AF_INET, socket.SOCK_DGRAM)


# --- Linux client <-> stack server ------------------------------------------------------

async def test_linux_python_client_bulk_echo(tun_peer: Peer) -> None:
    stats = ServiceStats()
    async with trio.open_nursery() as n:
        await n.start(lambda task_status: udp_echo(tun_peer.stack, 7, stats=stats, task_status=task_status))
        r = await run(tun_peer.exec(sys.executable, "-c", LINUX_CLIENT, tun_peer.stack_ip, "7", str(COUNT),
                                    str(WINDOW)), timeout=60)
        n.cancel_scope.cancel()
    assert r.returncode == 0, r.stderr
    received, bad, sent_sha, got_sha, secs = r.stdout.decode().split()
    assert (int(received), int(bad)) == (COUNT, 0), r.stderr
    assert sent_sha == got_sha == digest(COUNT)
    assert stats.received == stats.sent == COUNT and stats.errors == 0
    st = tun_peer.stack.stats()
    assert st["udp"]["rcvbuf_errors"] == 0 and st["udp"]["in_csum_errors"] == 0
    assert st["reasm"]["oks"] == sum(size(i) > 1472 for i in range(COUNT))
    print(f"linux->stack echo: {COUNT} datagrams in {secs} s")


async def test_linux_socat_and_nc_clients(tun_peer: Peer) -> None:
    require_real_peer("socat", "nc")
    async with trio.open_nursery() as n:
        await n.start(udp_echo, tun_peer.stack, 7)
        with trio.fail_after(10):
            r = await trio.run_process(tun_peer.exec("socat", "-t", "1", "-", f"UDP:{tun_peer.stack_ip}:7"),
                                       stdin=b"hello from socat\n", capture_stdout=True, capture_stderr=True)
        assert r.stdout == b"hello from socat\n"
        big = b"S" * 5000 + b"\n"    # socat sends it as one datagram: fragmented both ways
        with trio.fail_after(10):
            r = await trio.run_process(tun_peer.exec("socat", "-t", "1", "-b", "65536", "-",
                                                     f"UDP:{tun_peer.stack_ip}:7"),
                                       stdin=big, capture_stdout=True, capture_stderr=True)
        assert r.stdout == big
        with trio.fail_after(10):
            r = await trio.run_process(tun_peer.exec("nc", "-u", "-w", "1", tun_peer.stack_ip, "7"),
                                       stdin=b"hello from nc\n", capture_stdout=True, capture_stderr=True,
                                       check=False)
        assert r.stdout == b"hello from nc\n", r.stderr
        n.cancel_scope.cancel()


# --- stack client <-> Linux server ------------------------------------------------------

async def test_stack_client_bulk_to_linux_echo(tun_peer: Peer) -> None:
    proc = await start_linux(tun_peer.exec(sys.executable, "-c", LINUX_ECHO_SERVER, tun_peer.kernel_ip, "7000"))
    sent, got = hashlib.sha256(), hashlib.sha256()
    bad = 0
    window = trio.Semaphore(WINDOW)
    t0 = trio.current_time()
    try:
        with udp_sock(tun_peer) as s:
            await s.connect((tun_peer.kernel_ip, 7000))

            async def sender() -> None:
                for i in range(COUNT):
                    await window.acquire()
                    d = payload(i)
                    sent.update(len(d).to_bytes(4, "big") + d)
                    await s.send(d)

            with trio.fail_after(60):
                async with trio.open_nursery() as n:
                    n.start_soon(sender)
                    for i in range(COUNT):
                        with trio.fail_after(5):
                            d = await s.recv(65535)
                        bad += d != payload(i)
                        got.update(len(d).to_bytes(4, "big") + d)
                        window.release()
            await s.send(b"STOP!")
        out = await output_at_exit(proc, 10)
    finally:
        await kill_if_running(proc)
    elapsed = trio.current_time() - t0
    n_linux, linux_sha, _ = out.decode().split()
    assert bad == 0
    assert int(n_linux) == COUNT
    assert sent.hexdigest() == got.hexdigest() == linux_sha == digest(COUNT)
    assert tun_peer.stack.stats()["udp"]["rcvbuf_errors"] == 0
    print(f"stack->linux echo: {COUNT} datagrams in {elapsed:.2f} s")


async def test_stack_client_socat_and_nc_servers(tun_peer: Peer) -> None:
    require_real_peer("socat", "nc")
    # socat as a UDP echo server
    socat = await trio.lowlevel.open_process(
        tun_peer.exec("socat", f"UDP-RECVFROM:7001,bind={tun_peer.kernel_ip},fork", "EXEC:cat"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_udp_bound(tun_peer, 7001)
        with udp_sock(tun_peer) as s:
            await s.connect((tun_peer.kernel_ip, 7001))
            for d in (b"ping over socat\n", b"F" * 3000):
                await s.send(d)
                with trio.fail_after(5):
                    assert await s.recv(65535) == d
    finally:
        socat.kill()
        await socat.wait()
    # nc -u -l: prints what the stack sends, then answers with its stdin
    nc = await trio.lowlevel.open_process(
        tun_peer.exec("nc", "-u", "-l", "-w", "3", tun_peer.kernel_ip, "7002"),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        await wait_udp_bound(tun_peer, 7002)
        with udp_sock(tun_peer) as s:
            await s.connect((tun_peer.kernel_ip, 7002))
            await s.send(b"hello nc\n")
            await nc.stdin.send_all(b"hello stack\n")
            with trio.fail_after(5):
                data, src = await s.recvfrom(100)
        assert data == b"hello stack\n" and src == (tun_peer.kernel_ip, 7002)
        with trio.fail_after(10):
            out = b""
            while b"hello nc\n" not in out:
                chunk = await nc.stdout.receive_some()
                if not chunk:
                    break
                out += chunk
        assert out == b"hello nc\n"
    finally:
        nc.kill()
        await nc.wait()


async def test_stack_unconnected_sendto_recvfrom_linux(tun_peer: Peer) -> None:
    proc = await start_linux(tun_peer.exec(sys.executable, "-c", LINUX_REFUSER, tun_peer.kernel_ip, "7003"))
    try:
        with udp_sock(tun_peer) as s:
            s.bind(("", 0))
            await s.sendto(b"x" * 2000, (tun_peer.kernel_ip, 7003))
            with trio.fail_after(5):
                data, src = await s.recvfrom(65535)
        assert data == b"re:" + b"x" * 2000 and src == (tun_peer.kernel_ip, 7003)
    finally:
        with trio.fail_after(5):
            await proc.wait()


# --- errors -------------------------------------------------------------------------------

async def test_connected_socket_to_closed_linux_port_is_refused(tun_peer: Peer) -> None:
    with udp_sock(tun_peer) as s:
        await s.connect((tun_peer.kernel_ip, 7999))
        await s.send(b"anyone?")
        with trio.fail_after(5), pytest.raises(ConnectionRefusedError) as info:
            await s.recv(100)
        assert info.value.errno == errno.ECONNREFUSED
        # reported once: the socket is usable again afterwards
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        # and the next send after another ICMP error raises on send itself
        await s.send(b"again")
        assert await wait_for(lambda: s._pcb.so_error == errno.ECONNREFUSED)
        with pytest.raises(ConnectionRefusedError):
            await s.send(b"third")
    assert tun_peer.stack.icmp.stats.in_dest_unreachs >= 2


# --- checksums, as tshark sees them --------------------------------------------------------

@pytest.fixture
async def tun_peer_no_offload(netns: NetnsHost) -> AsyncIterator[Peer]:
    """Like tun_peer, but opened without IFF_VNET_HDR: every checksum the stack sends is
    complete, so the stack's own capture can be checked.  (With offload on, frames sent
    with a partial checksum carry only the pseudo-header sum in the capture -- and the
    kernel-side tcpdump sees the same, as the kernel never completes a checksum it
    delivers locally -- so tshark would call them bad.)"""
    async for peer in _peer(netns, TunNdd(unique_name("tn"), offload=False)):
        yield peer


async def test_tshark_validates_udp_checksums(tun_peer_no_offload: Peer, tmp_path) -> None:
    peer = tun_peer_no_offload
    assert not peer.ndd.vnet
    pcap = tmp_path / "udp.pcap"
    rec = PcapRecorder.attach(peer.ndd, str(pcap))
    async with trio.open_nursery() as n:
        await n.start(udp_echo, peer.stack, 7)
        r = await run(peer.exec(sys.executable, "-c", LINUX_CLIENT, peer.stack_ip, "7", "60", "4"), timeout=30)
        n.cancel_scope.cancel()
    assert r.stdout.split()[:2] == [b"60", b"0"], r.stdout + r.stderr
    proc = await start_linux(peer.exec(sys.executable, "-c", LINUX_REFUSER, peer.kernel_ip, "7003"))
    with udp_sock(peer) as s:
        await s.sendto(b"y" * 3000, (peer.kernel_ip, 7003))
        with trio.fail_after(5):
            await s.recvfrom(65535)
    await proc.wait()
    rec.close()
    base = ["tshark", "-n", "-r", str(pcap), "-o", "udp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"]
    from_stack = f"ip.src == {peer.stack_ip} && udp"
    good = await run(base + ["-Y", f'{from_stack} && udp.checksum.status == "Good"'])
    bad = await run(base + ["-Y", 'udp.checksum.status == "Bad" || ip.checksum.status == "Bad" || _ws.malformed'])
    assert good.returncode == 0 and bad.returncode == 0, good.stderr + bad.stderr
    n_good = len(good.stdout.splitlines())
    assert n_good >= 61                  # 60 echoes (fragmented ones reassembled by tshark) + one sendto
    assert bad.stdout.strip() == b"", bad.stdout.decode()[:2000]
