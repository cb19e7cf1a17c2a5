"""TCP against the Linux kernel, over TUN and over TAP (offloads on unless noted).

  * bulk: a Linux client (Python in the namespace) uploads 100 MiB to a stack server and
    downloads 100 MiB back; a stack client does the same against a Linux server.  Each
    side hashes what it sends and what it receives: the four SHA-256s must agree with
    the expected ones.  The upload ends with shutdown(SHUT_WR), so every transfer also
    crosses a half-close.
  * the same with a FaultInjector between stack and device: 2 % loss + 2 % reordering
    both ways: with offloads on (a lost frame may be a 64 KiB GSO super-segment: burst
    loss) the same 100 MiB each way; with offloads off (every frame one MTU-sized
    segment, so ~50x more frames for Python to handle) 20 MiB each way.
  * errors: RST -> ECONNREFUSED; silence -> ETIMEDOUT after TcpConfig.syn_retries;
    ARP failure on TAP -> EHOSTUNREACH.
  * `nc -N` (half-close after stdin EOF) against an echo service written here.
  * tshark over the stack's own capture (device opened offload=False, so every checksum
    is complete): no malformed segment, no bad IP/TCP checksum.

Data: chunk i of stream `seed` is random.Random(seed * 1_000_003 + i).randbytes(CHUNK),
generated on the fly on both sides -- nothing holds a whole stream.
"""
from __future__ import annotations

import errno
import hashlib
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache

import pytest
import trio

from drivers.fault import FaultInjector
from drivers.pcap import PcapRecorder
from drivers.tuntap import TapNdd, TunNdd
from protocols.addr import ip_to_int
from protocols.tcp.config import TcpConfig
from stack import Stack
from stack.stack import StackConfig
from tools.lab.netns import NetnsHost, unique_name

from .conftest import KERNEL_IP, STACK_IP, Peer, require_real_peer
from .helpers import kill_if_running, output_at_exit, read_all, run, start_linux

CHUNK = 1 << 20
BULK = 100 * CHUNK                  # 100 MiB each way
LOSSY = 20 * CHUNK                  # 20 MiB each way under loss without offloads
UP_SEED, DOWN_SEED = 1, 2           # client -> server, server -> client
NOBODY = "10.77.0.9"                # on the subnet, owned by nobody
NOBODY2 = "10.77.0.10"

DATA_SRC = f"""
import random
CHUNK = {CHUNK}

def chunks(seed, total):
    i = 0
    while total > 0:
        block = random.Random(seed * 1_000_003 + i).randbytes(CHUNK)
        yield block[:total]
        total -= CHUNK
        i += 1
"""
_ns: dict = {}
exec(DATA_SRC, _ns)
chunks = _ns["chunks"]


@cache
def expected(seed: int, total: int) -> str:
    h = hashlib.sha256()
    for block in chunks(seed, total):
        h.update(block)
    return h.hexdigest()


# The Linux half of a bulk exchange over either family (by the address given): send `total`
# bytes of UP (client) or DOWN (server) data, shutdown(SHUT_WR) when it is the client, receive
# to EOF; prints "sent_sha got_sha got_bytes send_secs recv_secs peer_host".
LINUX_PEER = DATA_SRC + """
import hashlib, socket, sys, time
role, host, port, total, up, down = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \\
    int(sys.argv[5]), int(sys.argv[6])

def send(s, seed):
    h = hashlib.sha256(); t0 = time.monotonic()
    for block in chunks(seed, total):
        h.update(block); s.sendall(block)
    return h.hexdigest(), time.monotonic() - t0

def recv(s):
    h = hashlib.sha256(); n = 0; t0 = time.monotonic()
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        h.update(d); n += len(d)
    return h.hexdigest(), n, time.monotonic() - t0

if role == "client":
    s = socket.create_connection((host, port), timeout=60)
    other = s.getpeername()[0]
    sent, ts = send(s, up)
    s.shutdown(socket.SHUT_WR)
    got, n, tr = recv(s)
else:
    l = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((host, port)); l.listen(1); l.settimeout(30)
    print("bound", flush=True)
    s, addr = l.accept(); s.settimeout(60)
    other = addr[0]
    got, n, tr = recv(s)
    sent, ts = send(s, down)
s.close()
print(sent, got, n, "%.3f" % ts, "%.3f" % tr, other, flush=True)
"""


# --- peers -----------------------------------------------------------------------------------

@asynccontextmanager
async def open_peer(host: NetnsHost, kind: str, *, offload: bool = True, faults: dict | None = None,
                    tcp: TcpConfig | None = None) -> AsyncIterator[Peer]:
    """A stack on a TUN or TAP device whose kernel side (KERNEL_IP/24) is in `host`;
    with `faults`, a seeded FaultInjector sits between the stack and the device."""
    ndd = (TunNdd if kind == "tun" else TapNdd)(unique_name(kind[:2]), offload=offload)
    ndd.create()
    host.adopt(ndd.ndd_name, f"{KERNEL_IP}/24")
    async with Stack(f"tcp-{ndd.ndd_name}", StackConfig(tcp=tcp)) as st:
        st.add_interface(FaultInjector(ndd, **faults) if faults else ndd, f"{STACK_IP}/24")
        yield Peer(st, ndd, host)


@pytest.fixture(params=["tun", "tap"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def peer(netns: NetnsHost, kind: str) -> AsyncIterator[Peer]:
    async with open_peer(netns, kind) as p:
        yield p


def tcp_sock(peer: Peer):
    return peer.stack.socket(socket.AF_INET, socket.SOCK_STREAM)


async def stack_send(s, seed: int, total: int) -> tuple[str, float]:
    h = hashlib.sha256()
    t0 = trio.current_time()
    for block in chunks(seed, total):
        h.update(block)
        await s.sendall(block)
    return h.hexdigest(), trio.current_time() - t0


async def stack_recv(s) -> tuple[str, int, float]:
    h = hashlib.sha256()
    n = 0
    t0 = trio.current_time()
    while data := await s.recv(1 << 20):
        h.update(data)
        n += len(data)
    return h.hexdigest(), n, trio.current_time() - t0


def stalled(peer: Peer, sock) -> None:
    """A transfer ran out of time: fail with what the stack and Linux know of it."""
    info = sock._pcb.info() if sock is not None else "no connection accepted"    # also once closed
    ss = peer.host.run("ss", "-tnie").stdout
    pytest.fail(f"transfer stalled\nstack: {info}\n{peer.stack.stats()['tcp']}\nlinux:\n{ss}")


def mbit(nbytes: int, secs: float) -> str:
    return f"{nbytes * 8 / max(secs, 1e-9) / 1e6:.0f} Mbit/s"


# --- bulk transfers, both roles ---------------------------------------------------------------

async def linux_client_to_stack_server(peer: Peer, total: int, timeout: float) -> str:
    with tcp_sock(peer) as lst:
        lst.bind(("", 5001))
        lst.listen(1)
        result: dict = {}

        async def server() -> None:
            conn, addr = await lst.accept()
            assert addr[0] == peer.kernel_ip
            result["conn"] = conn
            with conn:
                result["got"], result["n"], result["secs"] = await stack_recv(conn)
                result["sent"], _ = await stack_send(conn, DOWN_SEED, total)

        try:
            with trio.fail_after(timeout):
                async with trio.open_nursery() as n:
                    n.start_soon(server)
                    r = await run(peer.exec(sys.executable, "-c", LINUX_PEER, "client", peer.stack_ip, "5001",
                                            str(total), str(UP_SEED), str(DOWN_SEED)), timeout=timeout)
        except trio.TooSlowError:
            stalled(peer, result.get("conn"))
    assert r.returncode == 0, r.stderr.decode()
    linux_sent, linux_got, linux_n, _, down_secs, _ = r.stdout.decode().split()
    assert result["n"] == int(linux_n) == total
    assert linux_sent == result["got"] == expected(UP_SEED, total)
    assert result["sent"] == linux_got == expected(DOWN_SEED, total)
    # throughput as the receiver saw it (a sender's sendall returns while data is still buffered)
    return (f"linux client -> stack server {mbit(total, result['secs'])}, "
            f"stack server -> linux client {mbit(total, float(down_secs))}")


async def stack_client_to_linux_server(peer: Peer, total: int, timeout: float) -> str:
    proc = await start_linux(peer.exec(sys.executable, "-c", LINUX_PEER, "server", peer.kernel_ip, "5002",
                                       str(total), str(UP_SEED), str(DOWN_SEED)))
    try:
        with tcp_sock(peer) as s:
            try:
                with trio.fail_after(timeout):
                    await s.connect((peer.kernel_ip, 5002))
                    assert s.getpeername() == (peer.kernel_ip, 5002)
                    assert s.getsockname()[0] == peer.stack_ip
                    sent, _ = await stack_send(s, UP_SEED, total)
                    s.shutdown(socket.SHUT_WR)
                    got, n, down_secs = await stack_recv(s)
            except trio.TooSlowError:
                stalled(peer, s)
        out = await output_at_exit(proc, 10)
    finally:
        await kill_if_running(proc)
    assert proc.returncode == 0, await read_all(proc.stderr)
    linux_sent, linux_got, linux_n, _, up_secs, _ = out.decode().split()
    assert n == int(linux_n) == total
    assert sent == linux_got == expected(UP_SEED, total)
    assert linux_sent == got == expected(DOWN_SEED, total)
    return (f"stack client -> linux server {mbit(total, float(up_secs))}, "
            f"linux server -> stack client {mbit(total, down_secs)}")


async def test_bulk_linux_client_stack_server(peer: Peer, kind: str) -> None:
    print(f"{kind}: {await linux_client_to_stack_server(peer, BULK, timeout=60)}")
    assert peer.stack.stats()["tcp"]["in_csum_errors"] == 0


async def test_bulk_stack_client_linux_server(peer: Peer, kind: str) -> None:
    print(f"{kind}: {await stack_client_to_linux_server(peer, BULK, timeout=60)}")
    assert peer.stack.stats()["tcp"]["in_csum_errors"] == 0


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "no-offload"])
async def test_bulk_under_loss_and_reordering(netns: NetnsHost, kind: str, offload: bool) -> None:
    faults = dict(seed=4, drop=0.02, reorder=0.02)
    async with open_peer(netns, kind, offload=offload, faults=faults) as p:
        size = BULK if offload else LOSSY
        print(f"{kind} lossy: {await linux_client_to_stack_server(p, size, timeout=120)}")
        print(f"{kind} lossy: {await stack_client_to_linux_server(p, size, timeout=120)}")
        st = p.stack.stats()
        tcp, inj = st["tcp"], st["interfaces"][p.dev]["faults"]
        print(f"{kind} lossy: faults {inj}; stack retransmitted {tcp['retrans_segs']} segments, "
              f"{tcp['fast_retransmits']} fast retransmits, {tcp['rto_fires']} RTOs")
    assert inj["dropped"] >= 20 and inj["reordered"] >= 20      # ~2 % of ~4 000 (offload) / ~100 000 frames
    assert tcp["retrans_segs"] > 0


# --- connect errors -----------------------------------------------------------------------------

async def test_connect_refused(peer: Peer) -> None:
    with tcp_sock(peer) as s:
        with trio.fail_after(5), pytest.raises(ConnectionRefusedError) as info:
            await s.connect((peer.kernel_ip, 5999))
        assert info.value.errno == errno.ECONNREFUSED
        # the auto-bound name stays (as on Linux); the socket is not connected
        assert s.getsockname()[0] == peer.stack_ip and 32768 <= s.getsockname()[1] <= 60999
        with pytest.raises(OSError) as info2:
            s.getpeername()
        assert info2.value.errno == errno.ENOTCONN


async def expect_connect_error(peer: Peer, addr: tuple[str, int], err: int, within: tuple[float, float]) -> None:
    with tcp_sock(peer) as s:
        t0 = trio.current_time()
        with trio.fail_after(within[1] + 5), pytest.raises(OSError) as info:
            await s.connect(addr)
        took = trio.current_time() - t0
        assert info.value.errno == err, info.value
        assert within[0] <= took <= within[1], took


async def test_connect_timeout_and_unreachable(netns: NetnsHost, kind: str) -> None:
    # syn_retries=2: SYNs at 0, 1, 2, 3, 4, 5 s (linear timeouts), give up at 7 s (Linux the same)
    async with open_peer(netns, kind, tcp=TcpConfig(syn_retries=2)) as p:
        async with trio.open_nursery() as n:
            if kind == "tun":
                # the kernel (not forwarding) silently drops a SYN for an address it does not own
                n.start_soon(expect_connect_error, p, (NOBODY, 80), errno.ETIMEDOUT, (6.5, 10))
            else:
                # same over Ethernet: a static ARP entry sends NOBODY's frames to the kernel's MAC
                arp = p.stack.arp_cache(p.dev)
                arp.add_static(ip_to_int(NOBODY), p.ndd.kernel_mac, p.stack.now())
                n.start_soon(expect_connect_error, p, (NOBODY, 80), errno.ETIMEDOUT, (6.5, 10))
                # nobody answers ARP for NOBODY2: the SYN never leaves -> EHOSTUNREACH (Linux: ~3 s)
                n.start_soon(expect_connect_error, p, (NOBODY2, 80), errno.EHOSTUNREACH, (2, 5))
        assert p.stack.stats()["tcp"]["timeouts"] >= 1


# --- nc -N: half-close ----------------------------------------------------------------------------

async def echo_server(stack: Stack, port: int, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """A TCP echo service: each connection echoes until the peer's FIN, then closes."""
    lst = stack.socket(socket.AF_INET, socket.SOCK_STREAM)
    with lst:
        lst.bind(("", port))
        lst.listen(8)
        task_status.started()

        async def serve(conn) -> None:
            with conn:
                while data := await conn.recv(65536):
                    await conn.sendall(data)

        async with trio.open_nursery() as n:
            while True:
                conn, _ = await lst.accept()
                n.start_soon(serve, conn)


async def test_nc_half_close(peer: Peer) -> None:
    require_real_peer("nc")
    text = b"".join(b"line %06d of the nc -N half-close test\n" % i for i in range(5000))   # ~200 KB
    async with trio.open_nursery() as n:
        await n.start(echo_server, peer.stack, 7)
        # -N: shutdown(SHUT_WR) after stdin EOF; nc exits once the stack closes in turn
        with trio.fail_after(20):
            r = await trio.run_process(peer.exec("nc", "-N", peer.stack_ip, "7"), stdin=text,
                                       capture_stdout=True, capture_stderr=True, check=False)
        n.cancel_scope.cancel()
    assert r.returncode == 0, r.stderr
    assert r.stdout == text


# --- tshark over the stack's capture ------------------------------------------------------------

async def test_tshark_no_bad_segments(netns: NetnsHost, kind: str, tmp_path) -> None:
    total = 2 * CHUNK
    async with open_peer(netns, kind, offload=False) as p:
        assert not p.ndd.vnet
        pcap = tmp_path / "tcp.pcap"
        rec = PcapRecorder.attach(p.ndd, str(pcap))
        try:
            await linux_client_to_stack_server(p, total, timeout=30)
            # software GRO (protocols/gro.py) merged the kernel's segments; the capture, taken
            # at the device, still shows each segment as it came
            assert p.stack.stats()["gro"]["merged"] > 0
            await stack_client_to_linux_server(p, total, timeout=30)
            with tcp_sock(p) as s, pytest.raises(ConnectionRefusedError):
                await s.connect((p.kernel_ip, 5999))
            assert p.stack.stats()["tcp"]["in_csum_errors"] == 0
        finally:
            rec.close()
    base = ["tshark", "-n", "-r", str(pcap), "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"]
    from_stack = f"ip.src == {STACK_IP} && tcp"
    good = await run(base + ["-Y", f'{from_stack} && tcp.checksum.status == "Good"'])
    segments = await run(base + ["-o", "tcp.relative_sequence_numbers:FALSE", "-Y", "tcp", "-T", "fields",
                                 "-e", "frame.number", "-e", "tcp.stream", "-e", "ip.src", "-e", "tcp.flags",
                                 "-e", "tcp.seq", "-e", "tcp.ack", "-e", "tcp.len"])
    # Linux's software checksum (skb_checksum_help) writes a zero TCP checksum as 0xFFFF, the
    # other ones'-complement zero -- valid (RFC 1624 §3), but Wireshark calls it bad.  Such
    # frames from the kernel are exempt; the stack verified them itself (in_csum_errors == 0).
    linux_ffff = f"(ip.src == {KERNEL_IP} && tcp.checksum == 0xffff)"
    bad = await run(base + ["-Y", '(tcp.checksum.status == "Bad" || ip.checksum.status == "Bad" || _ws.malformed'
                            f' || _ws.expert.severity == error) && !{linux_ffff}'])
    assert good.returncode == bad.returncode == segments.returncode == 0, good.stderr + bad.stderr
    n_good = len(good.stdout.splitlines())
    assert n_good > 2 * total // 1460, n_good        # every segment the stack sent, data and ACKs
    assert bad.stdout.strip() == b"", bad.stdout.decode()[:3000]
    # the refused connect's RST came from Linux; the stack's only admissible one is below
    resets = unexplained_resets(segments.stdout.decode())
    assert resets == [], resets


def unexplained_resets(fields: str) -> list[str]:
    """The stack's RSTs in a capture (tshark fields: frame, stream, src, flags, seq, ack, len)
    that are not the one a correct stack -- Linux included -- may send at the end of a clean
    transfer: its FIN went twice (a loss probe or an RTO crossed the peer's ACKs, which a loaded
    machine delays), the first ACK of the FIN closed LAST-ACK, and the peer's TIME-WAIT re-ACK
    of the duplicate FIN then met no connection: <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.10.7.1;
    Linux's tcp_v4_send_reset).  tests/unit/test_tcp_close_race.py pins that sequence."""
    FIN, RST, ACK = 0x01, 0x04, 0x10
    by_stream: dict[str, list[tuple[str, str, int, int, int, int]]] = {}
    for line in fields.splitlines():
        frame, stream, src, flags, seq, ack, length = line.split("\t")
        by_stream.setdefault(stream, []).append((frame, src, int(flags, 16), int(seq), int(ack or 0), int(length)))
    unexplained = []
    for segs in by_stream.values():
        # where each of the stack's FINs ends (SND.MAX): the original and any retransmission
        fin_ends = {(seq + n + 1) & 0xFFFFFFFF for _, src, flags, seq, _, n in segs if src == STACK_IP and flags & FIN}
        n_fins = sum(1 for _, src, flags, *_ in segs if src == STACK_IP and flags & FIN)
        for i, (frame, src, flags, seq, _, _) in enumerate(segs):
            if src != STACK_IP or not flags & RST:
                continue
            prev = segs[i - 1] if i else None
            re_ack = prev is not None and prev[1] == KERNEL_IP and prev[2] == ACK and prev[5] == 0 and prev[4] == seq
            if not (flags == RST and n_fins >= 2 and fin_ends == {seq} and re_ack):
                unexplained.append(f"frame {frame}: RST seq={seq} after {prev}, stack FINs {n_fins} ending {fin_ends}")
    return unexplained
