"""The relays' shared buffer budget (tools/gateway/relay.py RelayBudget): reads grow while
the total allows, squeezed to the minimum past it, and new flows are refused when even
the minimum no longer fits."""
from __future__ import annotations

from tools.gateway.relay import RelayBudget


def test_reads_granted_until_the_total_then_squeezed() -> None:
    b = RelayBudget(total=100, chunk_min=8, chunk_max=64)
    assert b.reserve(64) == 64 and b.reserve(32) == 32
    assert b.reserve(16) == 8 and b.squeezed == 1          # 96 + 16 > 100: the minimum
    assert b.in_use == 104 and b.peak == 104                 # bound: total + chunk_min per direction
    b.release(64)
    assert b.reserve(16) == 16 and b.squeezed == 1
    b.release(32), b.release(8), b.release(16)
    assert b.in_use == 0 and b.peak == 104


def test_exhausted_when_a_new_flows_two_minimum_reads_do_not_fit() -> None:
    b = RelayBudget(total=100, chunk_min=8, chunk_max=64)
    b.reserve(64)
    b.reserve(16)
    assert not b.exhausted                                   # 80 + 16 <= 100
    b.reserve(8)
    assert b.exhausted                                       # 88 + 16 > 100
