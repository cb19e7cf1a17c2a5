"""TCP and UDP over IPv6 against the Linux kernel, over TUN and TAP (issue 12, "Real peer").

  * bulk TCP: a Linux client (Python in the namespace) uploads to a stack server on `::` and
    downloads back, and a stack client does the same against a Linux server; every stream is
    hashed on both sides (SHA-256).  100 MiB each way in both roles with offloads on, where
    GSO_TCPV6 super-frames must cross the device both ways (counted on the NDD's taps); 100 MiB
    each way with offloads off (every frame one MTU-sized segment: ~10 s per device, so one
    role only); then both roles through a FaultInjector, 2 % loss + 2 % reordering both ways
    (100 MiB with offloads, 20 MiB without, as tests/realpeer/test_tcp.py).  This kernel has
    no netem (CONFIG_NET_SCH_NETEM unset: `tc qdisc add ... netem` says "unknown qdisc"), so
    the impairment sits between the stack and the device.
  * UDP: 2000 datagrams of 1..8000 bytes each way (most of them fragmented at MTU 1500).
  * dual stack: one AF_INET6 listener on `::` answers a Linux IPv4 client and an IPv6 client;
    with IPV6_V6ONLY the IPv4 one is refused.  TCP between link-local addresses both ways.
  * errors as Linux gives them: RST -> ECONNREFUSED both ways, no Neighbor Advertisement ->
    EHOSTUNREACH, no route -> ENETUNREACH, a connected UDP socket and a port unreachable ->
    ECONNREFUSED; with the kernel as a router, its ICMPv6 errors (no route, prohibited,
    address unreachable, hop limit exceeded) and Packet Too Big (RFC 8201: TCP and UDP
    follow the path MTU; EMSGSIZE on a connected UDP socket unless IPV6_PMTUDISC_DONT).
  * IPV6_UNICAST_HOPS / IPV6_TCLASS as Linux's receiver reports them.
  * captures taken in the namespace (tcpdump on the kernel's side of the device, from before
    the stack comes up): offloads off, tshark finds no malformed frame and no bad TCP/UDP/
    ICMPv6 checksum from the stack; offloads on, every partial checksum carries the right
    pseudo-header seed (checked here: tshark would call all of them bad).

Throughput is printed (pytest -s), never asserted.  The whole file: ~80 s on the 2-core
development machine.
"""
from __future__ import annotations

import errno
import hashlib
import re
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest
import trio

from drivers import vnet
from drivers.fault import FaultInjector
from drivers.tuntap import TapNdd, TunNdd
from ndd.pktbuf import GSO_TCPV6, GSO_UDP_L4, PacketBuffer
from protocols.ipv6.addr import ip6_to_int
from protocols.sockopt import IPV6_MTU_DISCOVER
from protocols.udp.pcb import IPV6_PMTUDISC_DONT
from stack import Stack
from tools.demo.tour import Tcpdump
from tools.lab.netns import NetnsHost, unique_name

from .conftest import KERNEL_IP, STACK_IP, Peer
from .helpers import kill_if_running, output_at_exit, read_all, run, start_linux, wait_for
from .test_tcp import CHUNK, DOWN_SEED, LINUX_PEER, UP_SEED, expected, mbit, stack_recv, stack_send, stalled
from .test_udp import LINUX_CLIENT, LINUX_ECHO_SERVER, payload, size
from .test_udp import digest as udp_digest

KERNEL6, STACK6 = "fd00:77::1", "fd00:77::2"
NOBODY6 = "fd00:77::99"             # on the link's prefix, owned by nobody
UNROUTED6 = "2001:db8::1"           # no route: the stack has no default router here
MAPPED_KERNEL = f"::ffff:{KERNEL_IP}"
INET6 = socket.AF_INET6

BULK = 100 * CHUNK                  # each way, offloads on (clean and lossy)
NO_OFFLOAD_BULK = 100 * CHUNK       # each way, offloads off, clean (~150-210 Mbit/s: ~10 s per device)
LOSSY_NO_OFFLOAD = 20 * CHUNK       # each way, offloads off, 2 % loss + reordering (as test_tcp.py)


# --- peers -----------------------------------------------------------------------------------

@asynccontextmanager
async def open_peer6(host: NetnsHost, kind: str, *, offload: bool = True, faults: dict[str, Any] | None = None,
                     dump: Path | None = None, dad: bool = False) -> AsyncIterator[Peer]:
    """A stack on a TUN or TAP device, KERNEL6/64 on the kernel's side in `host` and STACK6/64
    on the stack's, IPv4 as in conftest beside them.  Both sides' addresses are added `nodad`
    (usable at once; tests/realpeer/test_ipv6.py covers DAD) unless `dad`: then the test waits
    for the stack's DAD (TAP: ~2 s).  The link-local address goes through DAD all the same.
    With `faults`, a seeded FaultInjector between stack and device; with `dump`, tcpdump on
    the kernel's side writes there from before the stack comes up (so the capture holds its
    router solicitation, MLD reports and DAD probes) to the end."""
    ndd = (TunNdd if kind == "tun" else TapNdd)(unique_name(kind[:2]), offload=offload)
    ndd.create()
    host.adopt(ndd.ndd_name, f"{KERNEL_IP}/24")
    host.ip("-6", "addr", "add", f"{KERNEL6}/64", "dev", ndd.ndd_name, "nodad")
    tcpdump = Tcpdump(host, ndd.ndd_name, dump) if dump else None
    if tcpdump is not None:
        # a 64 MiB capture buffer: 64 KiB GSO super-frames fill tcpdump's default 2 MiB at once
        tcpdump.argv[-2:-2] = ["-B", str(64 << 10)]
        assert await tcpdump.start()
    try:
        async with open_stack6(host, ndd, faults, dad) as peer:
            yield peer
            if tcpdump is not None:     # before the device goes away with the stack
                await tcpdump.stop()
                assert re.search(rb"^0 packets dropped by kernel", tcpdump.stderr, re.M), tcpdump.stderr
    finally:
        if tcpdump is not None:
            tcpdump.kill()


@asynccontextmanager
async def open_stack6(host: NetnsHost, ndd: TunNdd | TapNdd, faults: dict[str, Any] | None,
                      dad: bool) -> AsyncIterator[Peer]:
    async with Stack(f"rp6-{ndd.ndd_name}") as st:
        st.add_interface(FaultInjector(ndd, **faults) if faults else ndd, f"{STACK_IP}/24")
        st.add_address(ndd.ndd_name, f"{STACK6}/64", dad=dad)
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

# the IPv4 tests' Linux bulk peer, which takes either family by the address given
LINUX_PEER6 = LINUX_PEER


def give_up(peer: Peer, sock: Any) -> NoReturn:
    """A transfer ran out of time: fail with what the stack and Linux know of it."""
    stalled(peer, sock)                 # pytest.fail
    raise AssertionError("unreachable")


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
            give_up(peer, result.get("conn"))
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
                give_up(peer, s)
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


# --- UDP: datagrams of 1..8000 bytes both ways ------------------------------------------------

UDP_COUNT = 2000                    # each way; 82 % of them above 1452 bytes: fragmented
UDP_WINDOW = 16                     # datagrams in flight: no receive buffer can overflow
UDP_MAX_UNFRAGMENTED = 1500 - 40 - 8

# the IPv4 tests' Linux client and echo server, which take either family by the address given
LINUX_UDP_CLIENT6, LINUX_UDP_ECHO6 = LINUX_CLIENT, LINUX_ECHO_SERVER


async def udp6_echo(stack: Stack, port: int, seen: list[tuple[Any, ...]], *,
                    task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """A UDP echo on [::]:port (dual stack); records each sender's address."""
    with stack.socket(INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::", port))
        task_status.started()
        while True:
            data, src = await s.recvfrom(65535)
            seen.append(src)
            await s.sendto(data, src)


async def test_udp_linux_client_to_stack_echo(peer6: Peer) -> None:
    seen: list[tuple[Any, ...]] = []
    async with trio.open_nursery() as n:
        await n.start(udp6_echo, peer6.stack, 7, seen)
        r = await run(peer6.exec(sys.executable, "-c", LINUX_UDP_CLIENT6, STACK6, "7", str(UDP_COUNT),
                                 str(UDP_WINDOW)), timeout=60)
        n.cancel_scope.cancel()
    assert r.returncode == 0, r.stderr
    received, bad, sent_sha, got_sha, secs = r.stdout.decode().split()
    assert (int(received), int(bad)) == (UDP_COUNT, 0), r.stderr
    assert sent_sha == got_sha == udp_digest(UDP_COUNT)
    assert len(seen) == UDP_COUNT and {src[0] for src in seen} == {KERNEL6}
    st = peer6.stack.stats()
    fragmented = sum(size(i) > UDP_MAX_UNFRAGMENTED for i in range(UDP_COUNT))
    assert st["udp"]["rcvbuf_errors"] == 0 and st["udp"]["in_csum_errors"] == 0
    assert st["ipv6"]["reasm_oks"] == fragmented          # Linux's fragments, reassembled by us
    assert st["ipv6"]["out_frag_oks"] == fragmented       # our echoes, fragmented at the source
    assert st["ipv6"]["reasm_fails"] == 0
    print(f"linux->stack v6 udp echo: {UDP_COUNT} datagrams in {secs} s")


async def test_udp_stack_client_to_linux_echo(peer6: Peer) -> None:
    proc = await start_linux(peer6.exec(sys.executable, "-c", LINUX_UDP_ECHO6, KERNEL6, "7000"))
    sent, got = hashlib.sha256(), hashlib.sha256()
    bad = 0
    window = trio.Semaphore(UDP_WINDOW)
    t0 = trio.current_time()
    try:
        with sock6(peer6, socket.SOCK_DGRAM) as s:
            await s.connect((KERNEL6, 7000))

            async def sender() -> None:
                for i in range(UDP_COUNT):
                    await window.acquire()
                    d = payload(i)
                    sent.update(len(d).to_bytes(4, "big") + d)
                    await s.send(d)

            with trio.fail_after(60):
                async with trio.open_nursery() as n:
                    n.start_soon(sender)
                    for i in range(UDP_COUNT):
                        with trio.fail_after(5):
                            d, src = await s.recvfrom(65535)
                        assert src == (KERNEL6, 7000, 0, 0)
                        bad += d != payload(i)
                        got.update(len(d).to_bytes(4, "big") + d)
                        window.release()
            await s.send(b"STOP!")
        out = await output_at_exit(proc, 10)
    finally:
        await kill_if_running(proc)
    elapsed = trio.current_time() - t0
    n_linux, linux_sha, linux_saw = out.decode().split()
    assert bad == 0 and int(n_linux) == UDP_COUNT and linux_saw == STACK6
    assert sent.hexdigest() == got.hexdigest() == linux_sha == udp_digest(UDP_COUNT)
    st = peer6.stack.stats()
    assert st["udp"]["rcvbuf_errors"] == 0 and st["udp"]["in_csum_errors"] == 0
    assert st["ipv6"]["reasm_oks"] == sum(size(i) > UDP_MAX_UNFRAGMENTED for i in range(UDP_COUNT))
    print(f"stack->linux v6 udp echo: {UDP_COUNT} datagrams in {elapsed:.2f} s")


# --- a dual-stack server on :: ------------------------------------------------------------------

LINUX_HELLO = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
names = s.getsockname()[0], s.getpeername()[0]
s.sendall(b"hello from " + sys.argv[1].encode())
s.shutdown(socket.SHUT_WR)
reply = b""
while d := s.recv(4096):
    reply += d
print(reply.decode(), *names, flush=True)
u = socket.socket(family, socket.SOCK_DGRAM)
u.settimeout(5)
u.sendto(b"udp hello", (sys.argv[1], int(sys.argv[2])))
d, src = u.recvfrom(100)
print(d.decode(), src[0], flush=True)
"""


async def test_dual_stack_server_answers_ipv4_and_ipv6_clients(peer6: Peer) -> None:
    """One AF_INET6 listener on [::]:5003 (IPV6_V6ONLY 0, Linux's default): Linux's IPv4 client
    is accepted as ::ffff:10.77.0.1, its IPv6 client as fd00:77::1; a UDP socket on [::]:5003
    answers both families too."""
    accepted: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = []
    udp_seen: list[tuple[Any, ...]] = []
    with sock6(peer6) as lst:
        assert lst.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        lst.bind(("::", 5003))
        lst.listen(4)

        async def serve() -> None:
            while True:
                conn, addr = await lst.accept()
                with conn:
                    accepted.append((addr, conn.getsockname()))
                    data = b""
                    while chunk := await conn.recv(4096):
                        data += chunk
                    await conn.sendall(b"echo: " + data + f" to {addr[0]}".encode())

        outputs = {}
        async with trio.open_nursery() as n:
            n.start_soon(serve)
            await n.start(udp6_echo, peer6.stack, 5003, udp_seen)
            for client, target in (("v4", STACK_IP), ("v6", STACK6)):
                r = await run(peer6.exec(sys.executable, "-c", LINUX_HELLO, target, "5003"), timeout=20)
                assert r.returncode == 0, r.stderr.decode()
                outputs[client] = r.stdout.decode().splitlines()
            n.cancel_scope.cancel()
    assert outputs["v4"] == [f"echo: hello from {STACK_IP} to {MAPPED_KERNEL} {KERNEL_IP} {STACK_IP}",
                             f"udp hello {STACK_IP}"]
    assert outputs["v6"] == [f"echo: hello from {STACK6} to {KERNEL6} {KERNEL6} {STACK6}", f"udp hello {STACK6}"]
    (addr4, name4), (addr6, name6) = accepted
    assert addr4[0] == MAPPED_KERNEL and addr4[2:] == (0, 0) and name4 == (f"::ffff:{STACK_IP}", 5003, 0, 0)
    assert addr6[0] == KERNEL6 and addr6[2:] == (0, 0) and name6 == (STACK6, 5003, 0, 0)
    assert [src[0] for src in udp_seen] == [MAPPED_KERNEL, KERNEL6]


# --- refused and unreachable: Linux's errnos ------------------------------------------------------

LINUX_CONNECT = """
import socket, sys
s = socket.socket(socket.AF_INET6)
s.settimeout(5)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    print("connected")
except OSError as exc:
    print(exc.errno)
"""


async def expect_connect_errno(peer: Peer, addr: tuple[str, int], err: int, within: float) -> float:
    """connect() from the stack fails with `err` within `within` seconds; returns how long it took."""
    with sock6(peer) as s:
        t0 = trio.current_time()
        with trio.fail_after(within), pytest.raises(OSError) as info:
            await s.connect(addr)
        assert info.value.errno == err, info.value
        return trio.current_time() - t0


async def test_refused_and_unreachable_errnos(peer6: Peer, kind: str) -> None:
    async with trio.open_nursery() as n:
        if kind == "tap":
            async def no_neighbor() -> None:
                # nobody answers the Neighbor Solicitations: the SYN never leaves. Linux: 3 probes
                # 1 s apart (MAX_MULTICAST_SOLICIT, RetransTimer), then EHOSTUNREACH.
                took = await expect_connect_errno(peer6, (NOBODY6, 80), errno.EHOSTUNREACH, 10)
                assert took >= 2, took
                assert peer6.stack.stats()["interfaces"][peer6.dev]["ipv6"]["neighbors"]["failures"] >= 1
            n.start_soon(no_neighbor)

        # the kernel answers our SYN to a closed port with a RST
        with sock6(peer6) as s:
            with trio.fail_after(5), pytest.raises(ConnectionRefusedError) as info:
                await s.connect((KERNEL6, 5999))
            assert info.value.errno == errno.ECONNREFUSED
            host, port, _, _ = s.getsockname()          # the auto-bound name stays, as on Linux
            assert host == STACK6 and 32768 <= port <= 60999
            with pytest.raises(OSError) as info2:
                s.getpeername()
            assert info2.value.errno == errno.ENOTCONN

        # we answer Linux's SYN to a closed port with a RST
        r = await run(peer6.exec(sys.executable, "-c", LINUX_CONNECT, STACK6, "5998"), timeout=10)
        assert r.stdout.decode().strip() == str(errno.ECONNREFUSED), r.stdout + r.stderr

        # no route at all (no default router): at once, TCP and UDP alike
        await expect_connect_errno(peer6, (UNROUTED6, 80), errno.ENETUNREACH, 1)
        with sock6(peer6, socket.SOCK_DGRAM) as u, pytest.raises(OSError) as info3:
            await u.sendto(b"x", (UNROUTED6, 9))
        assert info3.value.errno == errno.ENETUNREACH

        # a connected UDP socket hears the kernel's port unreachable as ECONNREFUSED
        with sock6(peer6, socket.SOCK_DGRAM) as u:
            await u.connect((KERNEL6, 7999))
            await u.send(b"anyone?")
            with trio.fail_after(5), pytest.raises(ConnectionRefusedError) as info4:
                await u.recv(100)
            assert info4.value.errno == errno.ECONNREFUSED
            assert u.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0     # reported once
    icmp6 = peer6.stack.stats()["icmpv6"]
    assert icmp6["in_dest_unreachs"] >= 1, icmp6


# --- tshark over the kernel side's capture --------------------------------------------------------

async def exchange_for_capture(p: Peer) -> None:
    """A bit of everything the stack sends over IPv6: TCP both ways (data, ACKs, FINs), a RST,
    fragmented UDP both ways, ICMPv6 echo replies (fragmented too), a port unreachable, echo
    requests of its own, and on TAP Neighbor Discovery and MLD."""
    await linux_client_to_stack_server(p, 2 * CHUNK, timeout=30)
    await stack_client_to_linux_server(p, 2 * CHUNK, timeout=30)
    r = await run(p.exec(sys.executable, "-c", LINUX_CONNECT, STACK6, "5998"), timeout=10)      # our RST
    assert r.stdout.decode().strip() == str(errno.ECONNREFUSED)
    seen: list[tuple[Any, ...]] = []
    async with trio.open_nursery() as n:
        await n.start(udp6_echo, p.stack, 7, seen)
        r = await run(p.exec(sys.executable, "-c", LINUX_UDP_CLIENT6, STACK6, "7", "40", "4"), timeout=30)
        assert r.stdout.split()[:2] == [b"40", b"0"], r.stdout + r.stderr
        n.cancel_scope.cancel()
    r = await run(p.exec(sys.executable, "-c", "import socket; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)"
                         f".sendto(b'x' * 3000, ('{STACK6}', 9))"))                   # our port unreachable
    assert r.returncode == 0, r.stderr
    for ping_size in (56, 4000):
        r = await run(p.exec("ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "-s", str(ping_size), STACK6))
        assert r.returncode == 0, r.stdout
        await p.stack.ping(KERNEL6, size=ping_size, timeout=3)


def stack_sources(p: Peer) -> str:
    """A display filter for what the stack sent: its IPv6 addresses (and :: for DAD)."""
    mine = [a["addr"] for a in p.stack.stats()["interfaces"][p.dev]["ipv6"]["addresses"]]
    return " || ".join(f"ipv6.src == {a}" for a in ("::", *mine))


async def test_tshark_no_malformed_frames_nor_bad_checksums(netns: NetnsHost, kind: str, tmp_path: Path) -> None:
    """Offloads off, so that every checksum the stack writes is complete.  (With offloads on, the
    stack leaves TCP/UDP checksums partial -- the pseudo-header sum, NEEDS_CSUM -- and the kernel
    never completes the checksum of a packet it delivers locally: tcpdump on either side shows
    them "bad", as tests/realpeer/test_udp.py explains for IPv4.)  Linux's own frames are exempt
    from the checksum check: the capture sees them before the device path completes theirs."""
    pcap = tmp_path / "v6.pcap"
    async with open_peer6(netns, kind, offload=False, dump=pcap, dad=True) as p:
        await exchange_for_capture(p)
        mine = stack_sources(p)
    base = ["tshark", "-n", "-r", str(pcap), "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]
    malformed = await run(base + ["-Y", "_ws.malformed"])
    bad = await run(base + ["-Y", f"({mine}) && (tcp.checksum.status == \"Bad\" || udp.checksum.status == \"Bad\""
                                  " || icmpv6.checksum.status == \"Bad\" || _ws.expert.severity == error)"])
    assert malformed.returncode == bad.returncode == 0, malformed.stderr + bad.stderr
    assert malformed.stdout.strip() == b"", malformed.stdout.decode()[:3000]
    assert bad.stdout.strip() == b"", bad.stdout.decode()[:3000]
    good: dict[str, int] = {}
    for proto in ("tcp", "udp", "icmpv6"):
        r = await run(base + ["-Y", f"({mine}) && {proto}.checksum.status == \"Good\""])
        good[proto] = len(r.stdout.splitlines())
    types = await run(base + ["-Y", f"({mine}) && icmpv6", "-T", "fields", "-e", "icmpv6.type"])
    icmp_types = {int(t) for t in types.stdout.split()}
    # every TCP segment the stack sent (2 x 2 MiB of data, ACKs of 2 x 2 MiB), 40 echoed datagrams,
    # its echo replies/requests and the port unreachable; on TAP also NS/NA and MLDv2 reports
    assert good["tcp"] > 2 * 2 * CHUNK // 1440 and good["udp"] >= 40 and good["icmpv6"] >= 7, good
    # port unreachable, echo request and reply, router solicitation, MLDv2 reports
    assert {1, 128, 129, 133, 143} <= icmp_types, icmp_types
    mss = await run(base + ["-Y", f"ipv6.src == {STACK6} && tcp.flags.syn == 1", "-T", "fields",
                            "-e", "tcp.options.mss_val"])
    assert set(mss.stdout.split()) == {b"1440"}, mss.stdout      # MTU 1500 - 40 - 20 (RFC 8200 §5)
    print(f"{kind}: ICMPv6 types the stack sent: {sorted(icmp_types)}, checksums good: {good}")
    if kind == "tap":
        assert {135, 136} <= icmp_types, icmp_types                 # DAD probes, neighbor advertisements


# --- offloads on: what the kernel side's capture holds -----------------------------------------

def ones_sum16(data: bytes) -> int:
    """RFC 1071's one's-complement sum, folded to 16 bits (computed here, not with the stack's
    own helpers, so that the test checks the stack independently)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ipv6_l4_frames(pcap: Path, src: str) -> list[tuple[int, bytes, bytes, bytes]]:
    """(next header, source, destination, upper-layer bytes) of every unfragmented IPv6 packet
    from `src` in the capture (raw IP from TUN or Ethernet from TAP) with no extension header."""
    import dpkt  # only this test reads pcaps itself

    want = socket.inet_pton(INET6, src)
    out = []
    with open(pcap, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        ethernet = reader.datalink() == dpkt.pcap.DLT_EN10MB
        for _, frame in reader:
            if ethernet:
                if frame[12:14] != b"\x86\xdd":
                    continue
                frame = frame[14:]
            if len(frame) < 40 or frame[0] >> 4 != 6 or frame[8:24] != want:
                continue
            nh, plen = frame[6], int.from_bytes(frame[4:6], "big")
            if nh in (socket.IPPROTO_TCP, socket.IPPROTO_UDP):
                out.append((nh, frame[8:24], frame[24:40], frame[40:40 + plen]))
    return out


async def test_offloaded_checksums_are_partial_or_complete_on_the_wire(netns: NetnsHost, kind: str,
                                                                      tmp_path: Path) -> None:
    """With offloads on, the stack hands the kernel TCP/UDP packets whose checksum field holds the
    pseudo-header sum (virtio NEEDS_CSUM: the device or the kernel's GSO finishes it from
    csum_start), and GSO_TCPV6 super-frames bigger than the MTU.  The kernel trusts such a
    packet when it delivers it locally, so a wrong seed would go unnoticed here and break only
    once the packet is forwarded out of a real NIC: check each seed ourselves.  Linux's
    convention (__tcp_v6_send_check, and tcp_gso_segment's per-segment length delta) is the
    pseudo-header sum over the packet's own upper-layer length, not complemented.  tshark calls
    such frames "bad", so it judges only what must be complete: ICMPv6 and fragmented UDP."""
    pcap = tmp_path / "v6-offload.pcap"
    async with open_peer6(netns, kind, dump=pcap) as p:
        assert p.ndd.vnet
        await linux_client_to_stack_server(p, 2 * CHUNK, timeout=30)
        seen: list[tuple[Any, ...]] = []
        async with trio.open_nursery() as n:
            await n.start(udp6_echo, p.stack, 7, seen)
            r = await run(p.exec(sys.executable, "-c", LINUX_UDP_CLIENT6, STACK6, "7", "40", "4"), timeout=30)
            assert r.stdout.split()[:2] == [b"40", b"0"], r.stdout + r.stderr
            n.cancel_scope.cancel()
        await p.stack.ping(KERNEL6, size=4000, timeout=3)
    partial = complete = super_frames = udp_whole = 0
    wrong = []
    for nh, src, dst, l4 in ipv6_l4_frames(pcap, STACK6):
        udp_whole += nh == socket.IPPROTO_UDP
        pseudo = src + dst + len(l4).to_bytes(4, "big") + bytes(3) + bytes([nh])
        field = l4[16:18] if nh == socket.IPPROTO_TCP else l4[6:8]
        if ones_sum16(pseudo + l4) == 0xFFFF:
            complete += 1
        elif int.from_bytes(field, "big") == ones_sum16(pseudo):
            partial += 1
            super_frames += len(l4) > 1500 - 40
        else:
            wrong.append((nh, len(l4), field.hex()))
    print(f"{kind} offload capture: {partial} partial (of which {super_frames} GSO super-frames), "
          f"{complete} complete checksums")
    assert wrong == [], wrong[:20]
    assert partial >= 40 and super_frames >= 10, (partial, super_frames)
    assert udp_whole == sum(size(i) <= UDP_MAX_UNFRAGMENTED for i in range(40))    # the unfragmented echoes
    base = ["tshark", "-n", "-r", str(pcap), "-o", "udp.check_checksum:TRUE"]
    malformed = await run(base + ["-Y", "_ws.malformed"])
    bad = await run(base + ["-Y", f"ipv6.src == {STACK6} && (icmpv6.checksum.status == \"Bad\""
                                  " || (ipv6.fragment && udp.checksum.status == \"Bad\"))"])
    reassembled = await run(base + ["-Y", f"ipv6.src == {STACK6} && ipv6.fragment && udp.checksum.status == \"Good\""])
    assert malformed.returncode == bad.returncode == 0, malformed.stderr + bad.stderr
    assert malformed.stdout.strip() == bad.stdout.strip() == b"", (malformed.stdout + bad.stdout).decode()[:3000]
    assert len(reassembled.stdout.splitlines()) >= 20       # most of the 40 echoes were fragmented


# --- link-local peers, V6ONLY, hop limit and traffic class --------------------------------------

LINUX_LL_ECHO = """
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
l = socket.socket(socket.AF_INET6)
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("::", port)); l.listen(1); l.settimeout(10)
print("bound", flush=True)
s, peer = l.accept()
data = b""
while d := s.recv(4096):
    data += d
s.sendall(data[::-1]); s.close()
print(peer[0], peer[3], flush=True)
c = socket.create_connection((addr, port + 1), timeout=10)       # addr carries %dev
c.sendall(b"from linux over link-local"); c.shutdown(socket.SHUT_WR)
print(c.recv(100).decode(), flush=True)
"""


async def test_tcp_between_link_local_addresses(peer6: Peer) -> None:
    """fe80:: both ways: the stack connects to the kernel's link-local address with the device's
    scope id, Linux connects to ours with %dev; each side sees the other's scoped address."""
    from .test_ipv6 import kernel_link_local, link_local

    mine, theirs = await link_local(peer6), await kernel_link_local(peer6)
    scope = peer6.stack.if_nametoindex(peer6.dev)
    with sock6(peer6) as lst:
        lst.bind(("::", 5011))
        lst.listen(1)
        proc = await start_linux(peer6.exec(sys.executable, "-c", LINUX_LL_ECHO, f"{mine}%{peer6.dev}", "5010"))
        try:
            with trio.fail_after(20):
                with sock6(peer6) as s:
                    await s.connect((theirs, 5010, 0, scope))
                    assert s.getsockname()[0] == mine and s.getsockname()[3] == scope
                    await s.sendall(b"from the stack over link-local")
                    s.shutdown(socket.SHUT_WR)
                    assert await s.recv(100) == b"from the stack over link-local"[::-1]
                conn, addr = await lst.accept()
                with conn:
                    assert addr == (theirs, addr[1], 0, scope)
                    assert await conn.recv(100) == b"from linux over link-local"
                    await conn.sendall(b"ok")
                out = await output_at_exit(proc, 10)
        finally:
            await kill_if_running(proc)
    linux_peer, linux_scope, reply = out.decode().split()
    assert linux_peer == mine and int(linux_scope) > 0 and reply == "ok"


async def test_v6only_listener_refuses_ipv4(peer6: Peer) -> None:
    """IPV6_V6ONLY=1 on [::]:5004: Linux's IPv4 client is refused (RST), the IPv6 one accepted."""
    with sock6(peer6) as lst:
        lst.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        lst.bind(("::", 5004))
        lst.listen(1)
        r4 = await run(peer6.exec(sys.executable, "-c", LINUX_CONNECT.replace("AF_INET6", "AF_INET"),
                                  STACK_IP, "5004"), timeout=10)
        r6 = await run(peer6.exec(sys.executable, "-c", LINUX_CONNECT, STACK6, "5004"), timeout=10)
        assert r4.stdout.decode().strip() == str(errno.ECONNREFUSED), r4.stdout + r4.stderr
        assert r6.stdout.decode().strip() == "connected", r6.stdout + r6.stderr
        with trio.fail_after(5):
            conn, addr = await lst.accept()
        conn.close()
        assert addr[0] == KERNEL6


LINUX_RECV_HOPS_TCLASS = """
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.settimeout(5)
print("bound", flush=True)
for _ in range(2):
    data, anc, _, src = s.recvmsg(65535, 256)
    got = {kind: int.from_bytes(d, sys.byteorder) for _, kind, d in anc}
    print(len(data), got.get(socket.IPV6_HOPLIMIT), got.get(socket.IPV6_TCLASS), flush=True)
"""


async def test_hop_limit_and_traffic_class_reach_linux(peer6: Peer) -> None:
    """IPV6_UNICAST_HOPS and IPV6_TCLASS on a stack socket are what Linux's IPV6_RECVHOPLIMIT /
    IPV6_RECVTCLASS report, the defaults (64, 0) first -- also on a fragmented datagram."""
    proc = await start_linux(peer6.exec(sys.executable, "-c", LINUX_RECV_HOPS_TCLASS, KERNEL6, "7100"))
    try:
        with sock6(peer6, socket.SOCK_DGRAM) as s:
            await s.sendto(b"d" * 100, (KERNEL6, 7100))
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 7)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 0x28)
            assert s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS) == 7
            await s.sendto(b"f" * 3000, (KERNEL6, 7100))
        out = await output_at_exit(proc, 10)
    finally:
        await kill_if_running(proc)
    assert proc.returncode == 0, await read_all(proc.stderr)
    assert out.decode().splitlines() == ["100 64 0", "3000 7 40"], out


# --- ICMPv6 errors from a Linux router --------------------------------------------------------------

ROUTER_NOROUTE = "2001:db8:1::1"     # `ip -6 route add unreachable`: destination unreachable, code 0
ROUTER_PROHIBIT = "2001:db8:2::1"    # `ip -6 route add prohibit`: code 1
ROUTER_ONLINK = "fd00:88::5"         # on a link of the router's where nobody answers ND: code 3


def make_router(peer: Peer) -> None:
    """The namespace forwards IPv6 and is the stack's default router; it has an unreachable
    and a prohibit route, and a veth link fd00:88::/64 with nobody else on it."""
    a, b = unique_name("va"), unique_name("vb")
    peer.host.run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", check=True)
    peer.host.ip("-6", "route", "add", "unreachable", "2001:db8:1::/64")
    peer.host.ip("-6", "route", "add", "prohibit", "2001:db8:2::/64")
    peer.host.ip("link", "add", a, "type", "veth", "peer", "name", b)
    peer.host.ip("link", "set", a, "up")
    peer.host.ip("link", "set", b, "up")
    peer.host.ip("-6", "addr", "add", "fd00:88::1/64", "dev", a, "nodad")
    peer.stack.add_route("::/0", KERNEL6, dev=peer.dev)


async def test_router_errors_end_connects_with_linux_errnos(peer6: Peer) -> None:
    """tcp_v6_err ends a connect in SYN-SENT on any ICMPv6 error, with icmpv6_err_convert's
    errno: no route -> ENETUNREACH, administratively prohibited -> EACCES, address unreachable
    (the router's ND failed, ~3 s) -> EHOSTUNREACH, hop limit exceeded -> EHOSTUNREACH.  A
    connected UDP socket hears only the `fatal` ones (__udp6_lib_err): EACCES, not ENETUNREACH."""
    make_router(peer6)

    async def hop_limit_exceeded() -> None:
        with sock6(peer6) as s:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 1)
            with trio.fail_after(5), pytest.raises(OSError) as info:
                await s.connect((ROUTER_ONLINK, 80))
            assert info.value.errno == errno.EHOSTUNREACH, info.value

    async with trio.open_nursery() as n:
        n.start_soon(expect_connect_errno, peer6, (ROUTER_ONLINK, 80), errno.EHOSTUNREACH, 10)
        n.start_soon(expect_connect_errno, peer6, (ROUTER_NOROUTE, 80), errno.ENETUNREACH, 5)
        n.start_soon(expect_connect_errno, peer6, (ROUTER_PROHIBIT, 80), errno.EACCES, 5)
        n.start_soon(hop_limit_exceeded)
    with sock6(peer6, socket.SOCK_DGRAM) as u:
        await u.connect((ROUTER_PROHIBIT, 9))
        await u.send(b"x")
        with trio.fail_after(5), pytest.raises(PermissionError) as info:
            await u.recv(100)
        assert info.value.errno == errno.EACCES
    with sock6(peer6, socket.SOCK_DGRAM) as u:
        await u.connect((ROUTER_NOROUTE, 9))
        await u.send(b"x")
        got = peer6.stack.stats()["icmpv6"]["in_dest_unreachs"]
        assert await wait_for(lambda: peer6.stack.stats()["icmpv6"]["in_dest_unreachs"] > got, 5)
        assert u.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0         # not fatal: not reported
    icmp6 = peer6.stack.stats()["icmpv6"]
    assert icmp6["in_dest_unreachs"] >= 5 and icmp6["in_time_excds"] >= 1, icmp6


# --- Packet Too Big from a Linux router (RFC 8201) ----------------------------------------------------

FAR6, FAR6_WANT, FAR6_DONT = "fd00:88::2", "fd00:88::3", "fd00:88::4"  # a host behind a 1280-byte link

# A UDP echo on each address given (a socket bound to each, so that a reply leaves from the
# address the request went to: a wildcard socket's reply would take the source address
# selection picks, and a connected socket would not take it); answers `count` datagrams.
LINUX_UDP_ECHO_EACH = """
import selectors, socket, sys
port, count, addrs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
sel = selectors.DefaultSelector()
for a in addrs:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind((a, port))
    sel.register(s, selectors.EVENT_READ)
print("bound", flush=True)
answered = 0
while answered < count:
    events = sel.select(15)
    if not events:
        break
    for key, _ in events:
        d, peer = key.fileobj.recvfrom(65535)
        key.fileobj.sendto(d, peer)
        answered += 1
print("done", answered, flush=True)
"""


@asynccontextmanager
async def far_host_behind_small_link(peer: Peer) -> AsyncIterator[NetnsHost]:
    """A second namespace holding the FAR6 addresses on a 1500-byte veth link, reached through
    the first, a router whose route towards them has a locked MTU of 1280 (IPv6's minimum;
    Linux's ip6_forward honours a route MTU only when locked): the router answers the stack's
    bigger packets with Packet Too Big (mtu 1280).  The far host sees a 1500 link and
    advertises MSS 1440, so TCP has to learn the path MTU rather than take the peer's MSS."""
    far = NetnsHost.create(unique_name())
    try:
        a, b = unique_name("va"), unique_name("vb")
        peer.host.run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1", check=True)
        peer.host.ip("link", "add", a, "type", "veth", "peer", "name", b, "netns", far.name)
        peer.host.ip("-6", "addr", "add", "fd00:88::1/64", "dev", a, "nodad")
        peer.host.ip("link", "set", a, "up")
        peer.host.ip("-6", "route", "add", "fd00:88::/96", "dev", a, "mtu", "lock", "1280")
        far.ip("link", "set", b, "up")
        for addr in (FAR6, FAR6_WANT, FAR6_DONT):
            far.ip("-6", "addr", "add", f"{addr}/64", "dev", b, "nodad")
        far.ip("-6", "route", "add", "default", "via", "fd00:88::1", "dev", b)
        peer.stack.add_route("::/0", KERNEL6, dev=peer.dev)
        yield far
    finally:
        far.delete()


async def test_packet_too_big_from_a_router_lowers_the_path_mtu(peer6: Peer) -> None:
    """TCP: the stack's 1440-byte segments (GSO super-frames with offloads) meet the router's
    1280 link; its Packet Too Big lowers our path MTU to 1280, the MSS to 1220, what was in
    flight is resent, and 4 MiB each way arrive intact.  UDP: a connected socket hears the
    first Packet Too Big as EMSGSIZE (__udp6_lib_err: hard unless IPV6_PMTUDISC_DONT) and its
    next datagram leaves in 1280-byte fragments; with IPV6_PMTUDISC_DONT nothing is reported."""
    total = 4 * CHUNK
    async with far_host_behind_small_link(peer6) as far:
        proc = await start_linux(far.exec_argv(sys.executable, "-c", LINUX_PEER6, "server", FAR6, "5020",
                                               str(total), str(UP_SEED), str(DOWN_SEED)))
        try:
            with sock6(peer6) as s, trio.fail_after(60):
                await s.connect((FAR6, 5020))
                sent, _ = await stack_send(s, UP_SEED, total)
                s.shutdown(socket.SHUT_WR)
                got, n, _ = await stack_recv(s)
            out = await output_at_exit(proc, 10)
        finally:
            await kill_if_running(proc)
        linux_sent, linux_got, linux_n, *_ = out.decode().split()
        assert n == int(linux_n) == total
        assert sent == linux_got == expected(UP_SEED, total) and linux_sent == got == expected(DOWN_SEED, total)
        ifp = peer6.stack.interface(peer6.dev)
        ipv6 = peer6.stack.inet6.ip
        assert ipv6.path_mtu(ifp, ip6_to_int(FAR6), peer6.stack.now()) == 1280
        st = peer6.stack.stats()
        assert st["icmpv6"]["in_pkt_too_bigs"] >= 1 and st["tcp"]["pmtu_reductions"] >= 1, st["tcp"]

        echo = await start_linux(far.exec_argv(sys.executable, "-c", LINUX_UDP_ECHO_EACH, "7", "3",
                                               FAR6, FAR6_WANT, FAR6_DONT))
        try:
            for dest, dont in ((FAR6_WANT, False), (FAR6_DONT, True)):
                with sock6(peer6, socket.SOCK_DGRAM) as u:
                    await u.connect((dest, 7))
                    if dont:
                        u.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DONT)
                    ptbs = peer6.stack.stats()["icmpv6"]["in_pkt_too_bigs"]
                    await u.send(b"d" * 1400)                   # lost at the router: Packet Too Big
                    assert await wait_for(lambda ptbs=ptbs: peer6.stack.stats()["icmpv6"]["in_pkt_too_bigs"] > ptbs, 5)
                    if dont:
                        assert u.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0, dest
                    else:
                        with pytest.raises(OSError) as info:
                            await u.recv(2000)
                        assert info.value.errno == errno.EMSGSIZE
                    await u.send(b"d" * 1400)                   # in 1280-byte fragments now
                    with trio.fail_after(5):
                        assert await u.recv(2000) == b"d" * 1400
                    assert ipv6.path_mtu(ifp, ip6_to_int(dest), peer6.stack.now()) == 1280
            with sock6(peer6, socket.SOCK_DGRAM) as u:
                await u.connect((FAR6, 7))                      # the path MTU TCP learnt serves UDP too
                await u.send(b"w" * 1400)
                with trio.fail_after(5):
                    assert await u.recv(2000) == b"w" * 1400
            assert await output_at_exit(echo, 10) == b"done 3\n"
        finally:
            await kill_if_running(echo)


# --- UDP_SEGMENT from Linux over IPv6 -------------------------------------------------------------

UDP6_SEGMENT_SENDER = """
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_UDP, 103, int(sys.argv[3]))   # UDP_SEGMENT
s.sendto(bytes(i & 0xFF for i in range(int(sys.argv[2]))), (sys.argv[1], 9))
"""


async def test_linux_udp_segment_super_frame_becomes_datagrams(peer6: Peer) -> None:
    """Linux's UDP_SEGMENT over IPv6 (USO6 negotiated on the device): the kernel hands us one
    GSO_UDP_L4 super-frame with a partial checksum; the socket reads the 1000-byte datagrams
    the sender meant, and the rest."""
    assert peer6.ndd.offload_flags & vnet.TUN_F_USO6
    seen: list[tuple[int, int, int]] = []

    def tap(ndd: Any, direction: str, pkt: PacketBuffer) -> None:
        if direction == "in" and pkt.gso_type == GSO_UDP_L4:
            seen.append((pkt.gso_type, pkt.gso_size, len(pkt)))

    peer6.ndd.taps.append(tap)
    payload = bytes(i & 0xFF for i in range(5003))
    with sock6(peer6, socket.SOCK_DGRAM) as s:
        s.bind(("::", 9))
        r = await run(peer6.exec(sys.executable, "-c", UDP6_SEGMENT_SENDER, STACK6, "5003", "1000"))
        assert r.returncode == 0, r.stderr
        with trio.fail_after(5):
            got = [await s.recvfrom(65535) for _ in range(6)]
    assert [len(d) for d, _ in got] == [1000] * 5 + [3]
    assert b"".join(d for d, _ in got) == payload and {src[0] for _, src in got} == {KERNEL6}
    link = 14 if peer6.ndd.is_tap else 0
    assert seen == [(GSO_UDP_L4, 1000, link + 40 + 8 + 5003)], seen
    assert peer6.stack.stats()["udp"]["in_csum_errors"] == 0
