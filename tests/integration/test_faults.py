"""Two Stacks with a FaultInjector on one end: loss, duplication, reordering, corruption, delay."""
from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.fault import FaultInjector
from drivers.memlink import MemoryNdd
from ndd import constants as C
from ndd.demux import NsFilter, NsUser
from ndd.pktbuf import PacketBuffer
from ndd.services import NetServices

from .helpers import IP_A, IP_B, MAC_A, MAC_B, Pair, ether_frame, link_pair, two_stacks

FAULTS = dict(drop=0.2, duplicate=0.1, reorder=0.1, corrupt=0.05, delay=0.1)
LOSS_ERRNOS = {errno.ETIMEDOUT, errno.EHOSTUNREACH}   # what a lost echo may look like; never EIO


@asynccontextmanager
async def faulty_stacks(seed: int, *, settle: bool = True, direction: str = "both",
                        **faults: float) -> AsyncIterator[tuple[Pair, FaultInjector]]:
    """Stacks a and b; a's NDD is wrapped in a FaultInjector.  With `settle`, ARP is resolved and the
    announcements are over before the faults are switched on (ARP has no checksum, so a corrupted
    sender MAC would poison a cache for the rest of a short test)."""
    holder: list[FaultInjector] = []

    def wrap(a: MemoryNdd) -> FaultInjector:
        holder.append(FaultInjector(a, seed=seed, direction=direction, **({} if settle else faults)))
        return holder[0]

    # IPv4 only: the fault counts and ICMP counters below are about the pings alone
    async with two_stacks(wrap_a=wrap, ipv6=False) as p:
        inj = holder[0]
        if settle:
            await trio.sleep(5)
            await p.sa.ping(IP_B)
            inj.p.update(faults)
        yield p, inj


async def ping_many(p: Pair, n: int, *, size: int = 56, timeout: float = 0.5) -> tuple[int, dict[int, int]]:
    """n sequential pings a -> b; (successes, {errno: count}) -- only loss-like errors are tolerated."""
    ok, errors = 0, {}
    for _ in range(n):
        try:
            await p.sa.ping(IP_B, size=size, timeout=timeout)
            ok += 1
        except OSError as exc:
            assert exc.errno in LOSS_ERRNOS, exc
            errors[exc.errno] = errors.get(exc.errno, 0) + 1
    return ok, errors


def detected_errors(p: Pair) -> int:
    """Every counter a corrupted frame can land in, on both stacks."""
    total = 0
    for stack in (p.sa, p.sb):
        s = stack.stats()
        total += sum(s["ipv4"][k] for k in ("in_hdr_errors", "in_csum_errors", "in_truncated", "in_martians",
                                             "in_addr_errors", "in_unknown_protos"))
        total += s["icmp"]["in_errors"]
        for entry in s["interfaces"].values():
            nd = entry["ndd"]
            total += nd["ndd_ierrors"] + nd["ndd_ibadpackets"] + nd["ndd_ipackets_drop"] + entry["demux"]["nd_nofilter"]
            total += entry.get("arp", {}).get("malformed", 0)
    return total


async def test_pings_survive_faults(autojump_clock: trio.testing.MockClock) -> None:
    # under 20% loss plus duplication/reorder/corruption/delay most pings still succeed, nothing raises
    n = 40
    async with faulty_stacks(seed=11, **FAULTS) as (p, inj):
        ok, errors = await ping_many(p, n)
        f = inj.faults
        assert ok >= n // 4, (ok, errors, f)
        assert ok + sum(errors.values()) == n
        assert min(f.dropped, f.duplicated, f.reordered, f.corrupted, f.delayed) > 0, f
        assert p.sa.stats()["interfaces"]["m0"]["faults"] == f.as_dict()   # Stack.stats() shows them


async def test_corrupted_frames_are_counted(autojump_clock: trio.testing.MockClock) -> None:
    # a flipped bit is caught by an IP/ICMP checksum or a link-level check and counted, not delivered
    n = 60
    async with faulty_stacks(seed=3, corrupt=0.3) as (p, inj):
        ok, _ = await ping_many(p, n)
        corrupted = inj.faults.corrupted
        assert corrupted >= 5
        # only the Ethernet source MAC (6 of 98 octets) carries no check at all
        assert detected_errors(p) >= corrupted // 2
        csum = sum(s.ipv4.stats.in_csum_errors + s.icmp.stats.in_csum_errors for s in (p.sa, p.sb))
        assert csum > 0
        assert ok >= n - corrupted        # a corrupted frame costs at most its own ping


async def test_duplicates_are_answered_but_ignored(autojump_clock: trio.testing.MockClock) -> None:
    # every duplicated request is answered twice; the second reply has no waiter and is ignored
    async with faulty_stacks(seed=5, direction="out", duplicate=1.0) as (p, inj):
        ok, _ = await ping_many(p, 10)
        await trio.sleep(1)
        assert ok == 10 and inj.faults.duplicated == 10
        assert p.sb.icmp.stats.in_echos == 21             # 1 settling ping + 10 doubled
        assert p.sa.icmp.stats.in_ignored == 10


async def test_a_duplicate_arrives_whole_though_the_first_copy_lost_its_headers(
        autojump_clock: trio.testing.MockClock) -> None:
    # inbound duplicates: the stack pulls the IP and ICMP headers off the first copy it is
    # handed; the second must still be the frame as it came (it was copied before)
    async with faulty_stacks(seed=5, direction="in", duplicate=1.0) as (p, inj):
        ok, _ = await ping_many(p, 10)
        await trio.sleep(1)
        assert ok == 10 and inj.faults.duplicated >= 10
        assert p.sa.ipv4.stats.in_hdr_errors == 0 and p.sa.ipv4.stats.in_truncated == 0
        assert p.sa.icmp.stats.in_ignored == 10             # each second echo reply: no waiter


async def test_total_loss_times_out(autojump_clock: trio.testing.MockClock) -> None:
    # drop=1.0 outbound: every ping is ETIMEDOUT, b never sees one, and the waiters are cleaned up
    async with faulty_stacks(seed=1, direction="out", drop=1.0) as (p, inj):
        echos = p.sb.icmp.stats.in_echos
        ok, errors = await ping_many(p, 5)
        assert (ok, errors) == (0, {errno.ETIMEDOUT: 5})
        assert p.sb.icmp.stats.in_echos == echos and p.sa.icmp.echo_waiters == {}
        assert inj.faults.dropped == 5


async def test_delay_shows_in_rtt(autojump_clock: trio.testing.MockClock) -> None:
    # delay=1.0 outbound holds each request for delay_time: the RTT is exactly that
    async with faulty_stacks(seed=1, direction="out", delay=1.0) as (p, inj):
        assert await p.sa.ping(IP_B) == pytest.approx(inj.delay_time)
        assert await p.sa.ping(IP_B, size=4000) == pytest.approx(inj.delay_time)


async def run_scenario(seed: int) -> tuple[dict[str, int], int, dict[str, Any], dict[str, Any]]:
    async with faulty_stacks(seed, direction="out", **FAULTS) as (p, inj):
        ok, _ = await ping_many(p, 30)
        await trio.sleep(1)
        return inj.faults.as_dict(), ok, p.sa.stats()["icmp"], p.sb.stats()["ipv4"]


async def test_same_seed_same_faults(autojump_clock: trio.testing.MockClock) -> None:
    # a seed replays exactly: the same faults, the same outcomes; another seed differs.  Faults on the
    # way out only: both directions share one RNG, so their draws interleave in task-scheduling order
    first = await run_scenario(42)
    assert first == await run_scenario(42)
    assert sum(first[0].values()) > 30
    assert first[0] != (await run_scenario(43))[0]


async def test_injector_alone_is_deterministic(nursery: trio.Nursery,
                                               autojump_clock: trio.testing.MockClock) -> None:
    # both directions through one injector: same seed, same frames at the same times on each side
    async def trace(seed: int) -> tuple[list[tuple[float, bytes]], list[tuple[float, bytes]], dict]:
        ns = NetServices(nursery.start_soon, trio.current_time)
        a, b = link_pair()
        inj = FaultInjector(a, seed=seed, **FAULTS)
        seen: dict[str, list[tuple[float, bytes]]] = {"a": [], "b": []}
        for nd, key in ((inj, "a"), (b, "b")):
            ns.ns_attach(nd)
            ns.ns_alloc(nd.ndd_name)
            user = NsUser(lambda _n, pkt, k: seen[k].append((round(trio.current_time() - t0, 6), pkt.tobytes())),
                          key)
            ns.ns_add_filter(nd, NsFilter(C.NS_TAP), user)
        t0 = trio.current_time()
        for i in range(200):
            inj.ndd_output(PacketBuffer(ether_frame(MAC_B, MAC_A, 0x88B5, i.to_bytes(2, "big") + bytes(44))))
            b.ndd_output(PacketBuffer(ether_frame(MAC_A, MAC_B, 0x88B5, i.to_bytes(2, "big") + bytes(44))))
            await trio.sleep(0.013)   # never a multiple of hold/delay_time: no ties with the injector's timer
        await trio.sleep(1)
        ns.ns_free(inj)
        ns.ns_free(b)
        return seen["a"], seen["b"], inj.faults.as_dict()

    one, two, other = await trace(7), await trace(7), await trace(8)
    assert one == two
    assert one != other
    at_a, at_b, faults = one
    assert faults["dropped"] > 0 and faults["passed"] > 0
    sent = [ether_frame(MAC_B, MAC_A, 0x88B5, i.to_bytes(2, "big") + bytes(44)) for i in range(200)]
    assert [f for _, f in at_b] != sent                   # something was lost, doubled, moved or damaged
    assert len(at_a) + len(at_b) == 400 - faults["dropped"] + faults["duplicated"]


async def ping_checked(p: Pair, inj: FaultInjector, size: int) -> None:
    """One ping that may be lost; wrong data (EIO) is allowed only if two or more frames were corrupted
    while it was in flight: two flips of the same bit in opposite directions at the same offset within
    16-bit words cancel in the Internet checksum (a real Ethernet's FCS would have dropped them)."""
    before = inj.faults.corrupted
    try:
        await p.sa.ping(IP_B, size=size, timeout=0.5)
    except OSError as exc:
        if exc.errno == errno.EIO:
            assert size > 1472 and inj.faults.corrupted - before >= 2, exc
        else:
            assert exc.errno in LOSS_ERRNOS, exc


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), drop=st.floats(0, 0.3), duplicate=st.floats(0, 0.3),
       reorder=st.floats(0, 0.3), corrupt=st.floats(0, 0.3), delay=st.floats(0, 0.3),
       direction=st.sampled_from(["both", "in", "out"]))
async def test_faults_never_deliver_wrong_data(autojump_clock: trio.testing.MockClock, seed: int, drop: float,
                                               duplicate: float, reorder: float, corrupt: float, delay: float,
                                               direction: str) -> None:
    # whatever the faults (ARP included), a one-frame ping returns exactly its data or is lost; a
    # fragmented one too unless several of its frames were damaged; nothing escapes the stack, and
    # once the faults stop both stacks recover fully
    faults = dict(drop=drop, duplicate=duplicate, reorder=reorder, corrupt=corrupt, delay=delay)
    async with faulty_stacks(seed, settle=False, direction=direction, **faults) as (p, inj):
        for _ in range(10):
            await ping_checked(p, inj, 56)
        for _ in range(5):
            await ping_checked(p, inj, 4000)
        inj.p.update(dict.fromkeys(faults, 0.0))
        await trio.sleep(100)   # past ARP reachable+stale time and the reassembly timeout
        await p.sa.ping(IP_B)
        await p.sb.ping(IP_A, size=4000)
        assert p.sa.ipv4.reasm.pending == {} and p.sb.ipv4.reasm.pending == {}


async def test_corrupt_fragments_are_caught_after_reassembly(autojump_clock: trio.testing.MockClock) -> None:
    # a damaged fragment payload is reassembled, then rejected by the ICMP checksum: a lost ping
    async with faulty_stacks(seed=9, direction="out", corrupt=0.3) as (p, inj):
        echos = p.sb.icmp.stats.in_echos
        for _ in range(30):
            await ping_checked(p, inj, 4000)
        sb = p.sb.stats()
        assert sb["icmp"]["in_csum_errors"] > 0 and sb["reasm"]["oks"] > sb["icmp"]["in_csum_errors"]
        assert p.sb.icmp.stats.in_echos > echos and inj.faults.corrupted > 0


def test_finish_checksum_on_a_read_only_buffer() -> None:
    """A received frame's buffer may be bytes: finishing its partial checksum copies it to a
    bytearray (same offsets) instead of failing, and the sum comes out right."""
    from ndd.checksum import ones_sum
    from ndd.gso import finish_checksum

    segment = bytearray(b"\x12\x34\x56\x78" + bytes(4) + b"payload!")   # 8-octet header, field at 6
    partial = 0x1ABC                                                    # some pseudo-header sum
    segment[6:8] = partial.to_bytes(2, "big")
    pkt = PacketBuffer(bytes(b"\xee" * 4 + segment), 4)
    pkt.csum_start, pkt.csum_offset = 4, 6
    finish_checksum(pkt)
    assert isinstance(pkt.buf, bytearray) and pkt.csum_start == -1 and pkt.start == 4
    assert ones_sum(pkt.view(), partial) == 0xFFFF                      # it verifies
    assert pkt.tobytes()[:6] == bytes(segment[:6]) and pkt.tobytes()[8:] == bytes(segment[8:])


async def test_the_inner_devices_read_batches_reach_the_stack(autojump_clock: trio.testing.MockClock) -> None:
    """The injector passes its inner device's read batches (Ndd.nd_rx_batch) on: TCP
    coalesces its output per batch, and a stack behind the injector must see the batches
    a TUN reader brackets (the lossy bench's stack sent an ACK per segment without them)."""
    async with faulty_stacks(seed=1) as (p, inj):
        seen: list[bool] = []
        stack_hook = inj.nd_rx_batch
        assert stack_hook is not None

        def hook(starting: bool) -> None:
            seen.append(starting)
            stack_hook(starting)

        inj.nd_rx_batch = hook
        inner_hook = inj.inner.nd_rx_batch
        assert inner_hook is not None
        inner_hook(True)
        inner_hook(False)
        assert seen == [True, False]
