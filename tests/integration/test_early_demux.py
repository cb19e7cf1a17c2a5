"""Early demux (Tcp.early_input, Linux ip_early_demux): a segment of a known connection goes
straight to it past IPv4's input.  It must be invisible -- the same frames out, the same
counters, the same bytes as the whole way -- and never taken where the whole way could
decide otherwise (another interface, a spoofed source, a bad checksum, IP options)."""
from __future__ import annotations

import random
import struct
from typing import Any

import hypothesis  # noqa: F401  (loads trio's deterministic scheduling, see _run_seeded)
import pytest
import trio
import trio._core._run as trio_run
import trio.testing

from drivers.fault import FaultInjector
from ndd.checksum import checksum, pseudo_header_sum
from ndd.pktbuf import PacketBuffer
from protocols.addr import ip_to_int
from protocols.ipv4 import Ipv4Repr
from protocols.tcp.wire import ACK, TcpRepr
from stack.stack import StackConfig

from .helpers import IP_A, IP_B, tcp_connected, two_stacks

DATA = random.Random(5).randbytes(400_000)
EARLY_TAKEN = [0]                 # segments early_input took, over the module's runs
ACKS_WHOLE = [0]                  # pure ACKs Tcp.emit_ack built whole, over the module's runs


async def _lossy_exchange(early_demux: bool, route_cache: bool = True,
                          kind: str = "rawip") -> tuple[list[tuple[str, bytes]], dict[str, Any], bytes, bytes]:
    """Stack b sends DATA to stack a and a answers a tenth of it back, over a link that
    loses, duplicates, reorders and corrupts frames on a's side; every frame a's device
    saw, a's IPv4 and TCP counters, the bytes each side read."""
    frames: list[tuple[str, bytes]] = []
    cfg_a = StackConfig(seed=1, ipv6=False, early_demux=early_demux)
    cfg_b = StackConfig(seed=2, ipv6=False, early_demux=early_demux)
    wrap = lambda nd: FaultInjector(nd, seed=9, drop=0.03, duplicate=0.01, reorder=0.1, corrupt=0.01)  # noqa: E731
    async with two_stacks(kind, wrap_a=wrap, config_a=cfg_a, config_b=cfg_b, ipv6=False) as p:
        p.sa.tcp.route_cache = p.sb.tcp.route_cache = route_cache
        p.a.taps.append(lambda ndd, way, pkt: frames.append((way, pkt.tobytes())))
        early_input = p.sa.tcp.early_input

        def counted(pkt: PacketBuffer, ifp: Any, now: float) -> bool:
            taken = early_input(pkt, ifp, now)
            EARLY_TAKEN[0] += taken
            return taken

        p.sa.tcp.early_input = counted                 # type: ignore[method-assign]
        emit_ack = p.sa.tcp.emit_ack

        def counted_ack(conn: Any, seqno: int, window: int, opts: bytes, now: float) -> int | None:
            err = emit_ack(conn, seqno, window, opts, now)
            ACKS_WHOLE[0] += err is not None
            return err

        p.sa.tcp.emit_ack = counted_ack                # type: ignore[method-assign]
        client, server = await tcp_connected(p.sb, p.sa, IP_A, 7100)
        got_a = bytearray()
        got_b = bytearray()

        async def a_side() -> None:
            while len(got_a) < len(DATA):
                got_a.extend(await server.recv(65536))
            await server.sendall(DATA[:40_000])

        async def b_side() -> None:
            await client.sendall(DATA)
            while len(got_b) < 40_000:
                got_b.extend(await client.recv(65536))

        with trio.fail_after(600):
            async with trio.open_nursery() as n:
                n.start_soon(a_side)
                n.start_soon(b_side)
        ip, tcp = p.sa.ipv4.stats, p.sa.tcp.stats
        assert (server._pcb.dst_cache is not None) == route_cache    # the cached path was taken
        counters = {"ip_in_receives": ip.in_receives, "ip_in_delivers": ip.in_delivers,
                    "ip_out_requests": ip.out_requests, "ip_out_discards": ip.out_discards,
                    "ip_in_csum_errors": ip.in_csum_errors, "tcp_in_segs": tcp.in_segs,
                    "tcp_in_errs": tcp.in_errs, "tcp_in_csum_errors": tcp.in_csum_errors,
                    "tcp_out_segs": tcp.out_segs, "ooo": tcp.ooo_segs}
        return frames, counters, bytes(got_a), bytes(got_b)


def _run_seeded(early_demux: bool, route_cache: bool = True,
                kind: str = "rawip") -> tuple[list[tuple[str, bytes]], dict[str, Any], bytes, bytes]:
    """One exchange in its own trio run: a fresh clock, and trio's scheduler made
    deterministic (it is while Hypothesis is loaded, which registers its random for seeding)
    and seeded, so two runs that differ only in `early_demux` must match frame for frame."""
    assert trio_run._ALLOW_DETERMINISTIC_SCHEDULING, "trio's deterministic scheduling is not on"
    trio_run._r.seed(1)
    return trio.run(_lossy_exchange, early_demux, route_cache, kind, clock=trio.testing.MockClock(autojump_threshold=0))


def test_early_demux_is_invisible() -> None:
    before = EARLY_TAKEN[0]
    early = _run_seeded(True)
    taken = EARLY_TAKEN[0] - before
    whole = _run_seeded(False)
    assert EARLY_TAKEN[0] - before == taken            # (switched off, never asked)
    frames, counters, got_a, got_b = early
    assert got_a == DATA and got_b == DATA[:40_000]
    assert counters["ip_in_csum_errors"] + counters["tcp_in_csum_errors"] > 0   # the corruption was seen
    assert counters["ooo"] > 0
    assert taken > 0.9 * counters["tcp_in_segs"]       # nearly every segment went the early way
    assert counters == whole[1]
    assert len(frames) == len(whole[0])
    assert frames == whole[0]


@pytest.mark.parametrize("kind", ["rawip", "ether"])
def test_the_route_cache_is_invisible(kind: str) -> None:
    """Tcp._emit4_cached (each connection's IPv4 route cached, both headers in one pack)
    and Tcp.emit_ack (a pure ACK over it, built whole) send what _segment + Ipv4.output
    send: the same frames, the same counters."""
    before = ACKS_WHOLE[0]
    cached = _run_seeded(True, True, kind)
    assert ACKS_WHOLE[0] - before > 100                # the pure ACKs went the whole-frame way
    before = ACKS_WHOLE[0]
    whole = _run_seeded(True, False, kind)
    assert ACKS_WHOLE[0] == before                     # (no route cached: never)
    assert cached[2] == DATA and cached[3] == DATA[:40_000]
    assert cached[1] == whole[1]
    assert cached[0] == whole[0]


def _segment_frame(src: int, dst: int, sport: int, dport: int, seq: int, ack: int, payload: bytes = b"",
                   options: bytes = b"") -> bytearray:
    seg = TcpRepr(sport, dport, seq, ack, ACK, 1000)
    tcp = bytearray(20) + payload
    seg.emit(tcp, b"")
    struct.pack_into("!H", tcp, 16, checksum(tcp, pseudo_header_sum(src, dst, 6, len(tcp))))
    hdr = bytearray(20 + len(options))
    Ipv4Repr(src, dst, 6, len(hdr) + len(tcp), 64, 0, 1, 0x4000).emit(memoryview(hdr))
    if options:
        hdr[0] = 0x40 | len(hdr) // 4
        hdr[20:] = options
        hdr[10:12] = b"\0\0"
        struct.pack_into("!H", hdr, 10, checksum(hdr))
    return hdr + tcp


async def test_early_demux_is_taken_only_where_the_whole_way_agrees(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks("rawip", ipv6=False) as p:
        client, server = await tcp_connected(p.sb, p.sa, IP_A, 7101)
        await trio.sleep(1)
        conn = server._pcb
        tcp, now = p.sa.tcp, p.sa.now()

        def frame(**kw: Any) -> PacketBuffer:
            args = dict(src=conn.faddr, dst=conn.laddr, sport=conn.fport, dport=conn.lport, seq=conn.rcv_nxt,
                        ack=conn.snd_una)
            args.update(kw)
            return PacketBuffer(bytes(_segment_frame(**args)))

        assert conn.rx_ifp is p.ifa
        assert tcp.early_input(frame(), p.ifa, now)                      # a duplicate ACK: taken
        other = p.sa.add_interface(type(p.a)("m9", kind="rawip"), "10.0.9.1/24")
        assert not tcp.early_input(frame(), other, now)                  # not the connection's interface
        assert not tcp.early_input(frame(src=ip_to_int("10.0.9.1")), p.ifa, now)   # no such connection
        bad = bytearray(frame().buf)
        bad[10] ^= 1                                                     # the IPv4 header checksum
        assert not tcp.early_input(PacketBuffer(bytes(bad)), p.ifa, now)
        bad = bytearray(frame(payload=b"abc").buf)
        bad[-1] ^= 1                                                     # the TCP checksum
        assert not tcp.early_input(PacketBuffer(bytes(bad)), p.ifa, now)
        assert not tcp.early_input(PacketBuffer(bytes(_segment_frame(
            conn.faddr, conn.laddr, conn.fport, conn.lport, conn.rcv_nxt, conn.snd_una,
            options=b"\x01\x01\x01\x00"))), p.ifa, now)                  # IPv4 options: the whole way
        # the peer's address becomes one of ours: its segments are spoofed now (martian)
        p.sa.ifnet.add_address(other, conn.faddr, 32)
        assert not tcp.early_input(frame(), p.ifa, now)


async def test_a_cached_route_follows_the_routing_table_and_the_interfaces(
        autojump_clock: trio.testing.MockClock) -> None:
    """The route a connection caches is looked up again after any change: a more specific
    route, its removal, the interface going down."""
    from drivers.memlink import MemoryNdd
    async with two_stacks("rawip", ipv6=False) as p:
        client, server = await tcp_connected(p.sb, p.sa, IP_A, 7102)
        await trio.sleep(1)
        other = MemoryNdd("m7", kind="rawip")
        p.sa.add_interface(other, "10.0.7.1/24")
        seen: list[str] = []
        for nd in (p.a, other):
            nd.taps.append(lambda ndd, way, pkt: seen.append(ndd.ndd_name) if way == "out" else None)

        async def one_write() -> list[str]:
            seen.clear()
            await server.send(b"x")
            await trio.sleep(0.5)
            return sorted(set(seen))

        assert await one_write() == ["m0"]
        assert server._pcb.dst_cache is not None
        p.sa.add_route(f"{IP_B}/32", dev="m7")
        assert await one_write() == ["m7"]                    # the /32 wins at once
        p.sa.routes.delete(f"{IP_B}/32")
        assert (await one_write())[:1] == ["m0"]              # back on the connected route
        ifa = p.sa.ifnet.get("m0")
        ifa.flags &= ~0x40                                    # m0 no longer running (what a status does) ...
        p.sa.ifnet.touch()
        outs = p.sa.ipv4.stats.out_no_routes
        assert "m0" not in await one_write()                  # ... no route: the whole way counts it
        assert p.sa.ipv4.stats.out_no_routes > outs
