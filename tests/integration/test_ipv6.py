"""Two Stacks over memory links speaking IPv6: addresses through DAD, Neighbor Discovery on
Ethernet, echo small and fragmented, link-local scope, a DAD collision between two stacks
given the same address, and echoes through the fault injector."""
from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from drivers.fault import FaultInjector
from drivers.memlink import MemoryNdd
from stack import Stack

from .helpers import Pair, two_stacks

A6, B6 = "fd00:1::1", "fd00:1::2"


def addrs(stack: Stack, dev: str) -> dict[str, str]:
    return {a["addr"]: a["state"] for a in stack.stats()["interfaces"][dev]["ipv6"]["addresses"]}


def link_local(stack: Stack, dev: str) -> str:
    return next(a for a, s in addrs(stack, dev).items() if a.startswith("fe80:") and s == "preferred")


@asynccontextmanager
async def v6_stacks(kind: str, **kw: object) -> AsyncIterator[Pair]:
    async with two_stacks(kind, **kw) as p:  # type: ignore[arg-type]
        p.sa.add_address(p.ifa, f"{A6}/64")
        p.sb.add_address(p.ifb, f"{B6}/64")
        await trio.sleep(3)                       # DAD: up to 1 s delay + 1 s RetransTimer
        assert addrs(p.sa, "m0")[A6] == "preferred" and addrs(p.sb, "m1")[B6] == "preferred"
        yield p


@pytest.mark.parametrize("kind", ["ether", "rawip"])
async def test_echo_small_fragmented_and_link_local(kind: str, autojump_clock: trio.testing.MockClock) -> None:
    async with v6_stacks(kind) as p:
        assert await p.sa.ping(B6) >= 0
        assert await p.sb.ping(A6, size=4000) >= 0            # fragmented both ways, reassembled
        assert p.sa.stats()["ipv6"]["reasm_oks"] == 1 and p.sa.stats()["ipv6"]["out_frag_oks"] == 1
        await p.sa.ping(f"{link_local(p.sb, 'm1')}%m0")
        with pytest.raises(OSError) as info:
            await p.sa.ping(link_local(p.sb, "m1"))
        assert info.value.errno == errno.EINVAL               # no scope: Linux's EINVAL
        assert await p.sa.ping("::1") >= 0                    # the loopback has ::1


async def test_neighbor_discovery_resolves_both_ways(autojump_clock: trio.testing.MockClock) -> None:
    async with v6_stacks("ether") as p:
        await p.sa.ping(B6)
        nd_a = p.sa.inet6.ifaces[p.ifa.index].nd
        nd_b = p.sb.inet6.ifaces[p.ifb.index].nd
        assert nd_a is not None and nd_b is not None
        a_sees = {addr: mac for addr, _, mac, _ in nd_a.table()}
        b_sees = {addr: mac for addr, _, mac, _ in nd_b.table()}
        from protocols.ipv6.addr import ip6_to_int
        assert a_sees[ip6_to_int(B6)] == p.b.ndd_physaddr and b_sees[ip6_to_int(A6)] == p.a.ndd_physaddr
        with pytest.raises(OSError) as info:
            await p.sa.ping("fd00:1::99", timeout=10)
        assert info.value.errno == errno.EHOSTUNREACH           # 3 NS unanswered (RFC 4861 §7.3.3)


async def test_dad_collision_between_two_stacks(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks("ether") as p:
        p.sa.add_address(p.ifa, "fd00:1::7/64")
        await trio.sleep(3)
        assert addrs(p.sa, "m0")["fd00:1::7"] == "preferred"
        p.sb.add_address(p.ifb, "fd00:1::7/64")       # a holds it: b's probe is answered
        await trio.sleep(3)
        assert addrs(p.sb, "m1")["fd00:1::7"] == "duplicate"
        assert addrs(p.sa, "m0")["fd00:1::7"] == "preferred"
        assert p.sb.stats()["nd"]["dad_duplicates"] == 1
        with pytest.raises(OSError):                   # never a source: nothing else to send from
            await p.sb.ping("fd00:1::7", src="fd00:1::7", timeout=2)


async def test_echo_through_faults(autojump_clock: trio.testing.MockClock) -> None:
    holder: list[FaultInjector] = []

    def wrap(a: MemoryNdd) -> FaultInjector:
        holder.append(FaultInjector(a, seed=11))
        return holder[0]

    async with v6_stacks("ether", wrap_a=wrap) as p:
        await p.sa.ping(B6)                            # resolved before the faults begin
        holder[0].p.update(drop=0.2, duplicate=0.2, reorder=0.2, delay=0.1)
        ok = 0
        for _ in range(40):
            try:
                await p.sa.ping(B6, size=1800, timeout=2)   # two fragments each way
                ok += 1
            except OSError as exc:
                assert exc.errno in (errno.ETIMEDOUT, errno.EHOSTUNREACH), exc
        assert 10 <= ok < 40 and holder[0].faults.dropped > 0
