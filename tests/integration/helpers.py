"""Shared set-up for the integration tests: two Stacks joined by a memory link."""
from __future__ import annotations

import struct
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from drivers.memlink import MemoryNdd
from ndd.ndd import Ndd
from stack.ifnet import Interface
from stack.stack import Stack, StackConfig

IP_A, IP_B = "10.0.0.1", "10.0.0.2"
# fixed MACs (locally administered) so seeded runs see identical frames
MAC_A = bytes.fromhex("02000000000a")
MAC_B = bytes.fromhex("02000000000b")
MAC_OTHER = bytes.fromhex("0200000000ff")
MAC_BCAST = b"\xff" * 6


@dataclass
class Pair:
    sa: Stack
    sb: Stack
    a: MemoryNdd          # stack a's end of the cable (possibly wrapped, see nd_a)
    b: MemoryNdd
    nd_a: Ndd             # what stack a attached: `a` or a wrapper such as a FaultInjector
    ifa: Interface
    ifb: Interface


def link_pair(kind: str = "ether", **kw: object) -> tuple[MemoryNdd, MemoryNdd]:
    """Like drivers.memory_link_pair, but with fixed MACs."""
    a = MemoryNdd("m0", kind=kind, physaddr=MAC_A, **kw)  # type: ignore[arg-type]
    b = MemoryNdd("m1", kind=kind, physaddr=MAC_B, **kw)  # type: ignore[arg-type]
    a.peer, b.peer = b, a
    return a, b


@asynccontextmanager
async def two_stacks(kind: str = "ether", *, latency: float = 0.0, seed: int = 1,
                     wrap_a: Callable[[MemoryNdd], Ndd] | None = None,
                     config_a: StackConfig | None = None,
                     config_b: StackConfig | None = None) -> AsyncIterator[Pair]:
    """Stack a (10.0.0.1/24 on m0) and stack b (10.0.0.2/24 on m1) over one memory link."""
    async with Stack("a", config_a or StackConfig(seed=seed)) as sa, \
            Stack("b", config_b or StackConfig(seed=seed + 1)) as sb:
        a, b = link_pair(kind, latency=latency)
        nd_a = wrap_a(a) if wrap_a is not None else a
        ifa = sa.add_interface(nd_a, f"{IP_A}/24")
        ifb = sb.add_interface(b, f"{IP_B}/24")
        yield Pair(sa, sb, a, b, nd_a, ifa, ifb)


def ether_frame(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def llc_frame(dst: bytes, src: bytes, llc: bytes, payload: bytes, pad_to: int = 60) -> bytes:
    """An 802.3 frame (length field, then the 802.2 LLC header), padded to the Ethernet minimum."""
    body = llc + payload
    frame = dst + src + struct.pack("!H", len(body)) + body
    return frame + bytes(max(0, pad_to - len(frame)))
