"""TCP and UDP over IPv6 against the Linux kernel, over TUN and TAP (issue 12, "Real peer").

  * bulk TCP: a Linux client (Python in the namespace) uploads to a stack server on `::` and
    downloads back, and a stack client does the same against a Linux server; every stream is
    hashed on both sides (SHA-256).  100 MiB each way with offloads on, where GSO_TCPV6
    super-frames must cross the device both ways (counted on the NDD's taps); offloads off
    (every frame one MTU-sized segment) NO_OFFLOAD_BULK each way (see its comment); then the
    same through a FaultInjector (2 % loss + 2 % reordering both ways: this kernel has no
    netem, CONFIG_NET_SCH_NETEM unset, so the impairment sits between the stack and the device
    as in tests/realpeer/test_tcp.py).
  * UDP: datagrams of 1..8000 bytes both ways (most of them fragmented at MTU 1500).
  * dual stack: one AF_INET6 listener on `::` answers a Linux IPv4 client and an IPv6 client.
  * errors as Linux gives them: RST -> ECONNREFUSED both ways, no Neighbor Advertisement ->
    EHOSTUNREACH, no route -> ENETUNREACH, a connected UDP socket and a port unreachable ->
    ECONNREFUSED.
  * tshark over a capture taken in the namespace (tcpdump on the kernel's side of the device)
    of all of that, offloads off: no malformed frame, no bad TCP/UDP/ICMPv6 checksum from the
    stack.

Throughput is printed (pytest -s), never asserted.
"""
from __future__ import annotations

import errno
import hashlib
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from drivers.fault import FaultInjector
from drivers.tuntap import TapNdd, TunNdd
from ndd.pktbuf import GSO_TCPV6, PacketBuffer
from stack import Stack
from tools.demo.tour import Tcpdump
from tools.lab.netns import NetnsHost, unique_name

from .conftest import KERNEL_IP, STACK_IP, Peer
from .helpers import kill_if_running, output_at_exit, read_all, run, start_linux, wait_for
from .test_tcp import CHUNK, DATA_SRC, DOWN_SEED, UP_SEED, expected, mbit, stack_recv, stack_send, stalled

KERNEL6, STACK6 = "fd00:77::1", "fd00:77::2"
NOBODY6 = "fd00:77::99"             # on the link's prefix, owned by nobody
UNROUTED6 = "2001:db8::1"           # no route: the stack has no default router here
MAPPED_KERNEL = f"::ffff:{KERNEL_IP}"
INET6 = socket.AF_INET6

BULK = 100 * CHUNK                  # each way, offloads on (clean and lossy)
NO_OFFLOAD_BULK = 100 * CHUNK       # each way, offloads off, clean
LOSSY_NO_OFFLOAD = 20 * CHUNK       # each way, offloads off, 2 % loss + reordering (as test_tcp.py)


# --- peers -----------------------------------------------------------------------------------

@asynccontextmanager
async def open_peer6(host: NetnsHost, kind: str, *, offload: bool = True,
                     faults: dict[str, Any] | None = None) -> AsyncIterator[Peer]:
    """A stack on a TUN or TAP device, KERNEL6/64 on the kernel's side in `host` (nodad: usable
    at once) and STACK6/64 on the stack's, usable once its DAD has passed (TAP: ~2 s); IPv4
    as in conftest beside it.  With `faults`, a seeded FaultInjector between stack and device."""
    ndd = (TunNdd if kind == "tun" else TapNdd)(unique_name(kind[:2]), offload=offload)
    ndd.create()
    host.adopt(ndd.ndd_name, f"{KERNEL_IP}/24")
    host.ip("-6", "addr", "add", f"{KERNEL6}/64", "dev", ndd.ndd_name, "nodad")
    async with Stack(f"rp6-{ndd.ndd_name}") as st:
        st.add_interface(FaultInjector(ndd, **faults) if faults else ndd, f"{STACK_IP}/24")
        st.add_address(ndd.ndd_name, f"{STACK6}/64")
        peer = Peer(st, ndd, host, kernel_ip=KERNEL6, stack_ip=STACK6)

        def state() -> str | None:
            found = [a["state"] for a in st.stats()["interfaces"][ndd.ndd_name]["ipv6"]["addresses"]
                     if a["addr"] == STACK6]
            return found[0] if found else None
        assert await wait_for(lambda: state() == "preferred", 5), state()
        yield peer


@pytest.fixture(params=["tun", "tap"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def peer6(netns: NetnsHost, kind: str) -> AsyncIterator[Peer]:
    async with open_peer6(netns, kind) as p:
        yield p


def sock6(peer: Peer, kind: int = socket.SOCK_STREAM) -> Any:
    return peer.stack.socket(INET6, kind)


# --- bulk TCP ----------------------------------------------------------------------------------

# The Linux half of a bulk exchange over any family: send `total` bytes of UP (client) or
# DOWN (server) data, shutdown(SHUT_WR) when it is the client, receive to EOF; prints
# "sent_sha got_sha got_bytes send_secs recv_secs peer_host".
LINUX_PEER6 = DATA_SRC + """
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


async def linux_client_to_stack_server(peer: Peer, total: int, timeout: float, port: int = 5001) -> str:
    """Linux uploads `total` bytes to a stack server on [::]:port, which sends `total` back."""
    with sock6(peer) as lst:
        lst.bind(("::", port))
        lst.listen(1)
        result: dict[str, Any] = {}

        async def server() -> None:
            conn, addr = await lst.accept()
            result["conn"], result["addr"] = conn, addr
            with conn:
                result["got"], result["n"], result["secs"] = await stack_recv(conn)
                result["sent"], _ = await stack_send(conn, DOWN_SEED, total)

        try:
            with trio.fail_after(timeout):
                async with trio.open_nursery() as n:
                    n.start_soon(server)
                    r = await run(peer.exec(sys.executable, "-c", LINUX_PEER6, "client", STACK6, str(port),
                                            str(total), str(UP_SEED), str(DOWN_SEED)), timeout=timeout)
        except trio.TooSlowError:
            stalled(peer, result.get("conn"))
    assert r.returncode == 0, r.stderr.decode()
    linux_sent, linux_got, linux_n, _, down_secs, linux_saw = r.stdout.decode().split()
    host, _, flowinfo, scope_id = result["addr"]            # CPython's AF_INET6 4-tuple
    assert (host, flowinfo, scope_id) == (KERNEL6, 0, 0)
    assert linux_saw == STACK6
    assert result["n"] == int(linux_n) == total
    assert linux_sent == result["got"] == expected(UP_SEED, total)
    assert result["sent"] == linux_got == expected(DOWN_SEED, total)
    # throughput as the receiver saw it (a sender's sendall returns while data is still buffered)
    return (f"linux client -> stack server {mbit(total, result['secs'])}, "
            f"stack server -> linux client {mbit(total, float(down_secs))}")


async def stack_client_to_linux_server(peer: Peer, total: int, timeout: float, port: int = 5002) -> str:
    """The stack uploads `total` bytes to a Linux server on [KERNEL6]:port, which sends `total` back."""
    proc = await start_linux(peer.exec(sys.executable, "-c", LINUX_PEER6, "server", KERNEL6, str(port),
                                       str(total), str(UP_SEED), str(DOWN_SEED)))
    try:
        with sock6(peer) as s:
            try:
                with trio.fail_after(timeout):
                    await s.connect((KERNEL6, port))
                    assert s.getpeername() == (KERNEL6, port, 0, 0)
                    assert s.getsockname()[0] == STACK6
                    sent, _ = await stack_send(s, UP_SEED, total)
                    s.shutdown(socket.SHUT_WR)
                    got, n, down_secs = await stack_recv(s)
            except trio.TooSlowError:
                stalled(peer, s)
        out = await output_at_exit(proc, 10)
    finally:
        await kill_if_running(proc)
    assert proc.returncode == 0, await read_all(proc.stderr)
    linux_sent, linux_got, linux_n, _, up_secs, linux_saw = out.decode().split()
    assert linux_saw == STACK6
    assert n == int(linux_n) == total
    assert sent == linux_got == expected(UP_SEED, total)
    assert linux_sent == got == expected(DOWN_SEED, total)
    return (f"stack client -> linux server {mbit(total, float(up_secs))}, "
            f"linux server -> stack client {mbit(total, down_secs)}")


def count_tcp6_gso(peer: Peer) -> dict[str, int]:
    """Tap the NDD: how many GSO_TCPV6 super-frames went out ("out") and came in ("in")."""
    seen = {"in": 0, "out": 0}

    def tap(ndd: Any, direction: str, pkt: PacketBuffer) -> None:
        if pkt.gso_type & ~0x80 == GSO_TCPV6 and pkt.gso_size:
            seen[direction] += 1

    peer.ndd.taps.append(tap)
    return seen


async def test_bulk_100_mib_each_way_with_offloads(peer6: Peer, kind: str) -> None:
    """100 MiB each way in both roles; GSO_TCPV6 super-frames cross the device both ways
    (TSO6 from the stack, and the kernel's super-segments given to us whole)."""
    assert peer6.ndd.vnet and peer6.ndd.caps.gso_rx and peer6.ndd.caps.tso_max
    gso = count_tcp6_gso(peer6)
    print(f"{kind} v6: {await linux_client_to_stack_server(peer6, BULK, timeout=60)}")
    print(f"{kind} v6: {await stack_client_to_linux_server(peer6, BULK, timeout=60)}")
    print(f"{kind} v6: GSO_TCPV6 super-frames {gso}")
    st = peer6.stack.stats()
    assert st["tcp"]["in_csum_errors"] == 0
    # 4 x 100 MiB: hundreds of 64 KiB super-frames each way (far more if each were one MSS)
    assert gso["out"] >= 100 and gso["in"] >= 100, gso
    assert st["ipv6"]["out_frag_oks"] == 0          # TCP is never fragmented (ip6_xmit)


async def test_bulk_each_way_without_offloads(netns: NetnsHost, kind: str) -> None:
    """No IFF_VNET_HDR: every frame is one segment with a full checksum, both ways."""
    async with open_peer6(netns, kind, offload=False) as p:
        assert not p.ndd.vnet
        gso = count_tcp6_gso(p)
        print(f"{kind} v6 no offload: {await linux_client_to_stack_server(p, NO_OFFLOAD_BULK, timeout=90)}")
        assert gso == {"in": 0, "out": 0}
        assert p.stack.stats()["tcp"]["in_csum_errors"] == 0


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "no-offload"])
async def test_bulk_under_loss_and_reordering(netns: NetnsHost, kind: str, offload: bool) -> None:
    faults = dict(seed=6, drop=0.02, reorder=0.02)
    async with open_peer6(netns, kind, offload=offload, faults=faults) as p:
        size = BULK if offload else LOSSY_NO_OFFLOAD
        print(f"{kind} v6 lossy: {await linux_client_to_stack_server(p, size, timeout=120)}")
        print(f"{kind} v6 lossy: {await stack_client_to_linux_server(p, size, timeout=120)}")
        st = p.stack.stats()
        tcp, inj = st["tcp"], st["interfaces"][p.dev]["faults"]
        print(f"{kind} v6 lossy: faults {inj}; stack retransmitted {tcp['retrans_segs']} segments, "
              f"{tcp['fast_retransmits']} fast retransmits, {tcp['rto_fires']} RTOs")
    assert inj["dropped"] >= 20 and inj["reordered"] >= 20
    assert tcp["retrans_segs"] > 0 and tcp["in_csum_errors"] == 0
