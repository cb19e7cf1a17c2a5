"""Bulk transfers over a hostile path (issue 10 point 11), both ways, against Linux.

The path of tools/bench/lossy.py: 5 % loss, 25 % reordering, 1 % duplication and 1 %
corruption in both directions (drivers/fault.py's seeded FaultInjector between the
stack and a TUN device without offloads; the kernel peer in a namespace).  Each test
moves soak(5 MB, 100 MB) and asserts the stream arrives intact and the recovery stays
off the retransmission timer: RACK (RFC 8985) finds losses, lost retransmissions
included, without an RTO, and the receiver's D-SACKs (RFC 2883) let the Linux sender
tell reordering from loss.  The bounds on RTOs are generous -- several times what a
good run does (stack sender: ~0.1-0.3 RTO per MB; before RACK it was ~1.4 per MB) --
and nothing here is timed; tools/bench/lossy.py measures the times against Linux.
"""
from __future__ import annotations

from tests.realpeer.conftest import require_real_peer
from tools.bench.lossy import run_stack

from .conftest import soak

TIMEOUT = 600.0


def rto_bound(megabytes: float) -> float:
    return 4 + 0.6 * megabytes


async def test_stack_sends_intact_over_a_lossy_reordering_path() -> None:
    require_real_peer()
    size = soak(5_000_000, 100_000_000)
    res = await run_stack(size, 1, "out", TIMEOUT, "cubic")
    c = res["counters"]
    assert res["intact"], res
    assert res["faults"]["dropped"] > 0 and res["faults"]["reordered"] > 0
    assert c["rto_fires"] <= rto_bound(size / 1e6), c
    assert c["rack_lost"] > 0                       # the losses were found by RACK, not the timer
    # retransmissions stay of the order of the losses (not a go-back-N of whole windows)
    assert c["retrans_segs"] <= 4 * res["faults"]["dropped"] + 50, (c, res["faults"])


async def test_stack_receives_intact_and_reports_duplicates() -> None:
    require_real_peer()
    size = soak(5_000_000, 100_000_000)
    res = await run_stack(size, 2, "in", TIMEOUT, "cubic")
    c = res["counters"]                             # the Linux sender's MIB
    assert res["intact"], res
    assert res["stack"]["dsacks_sent"] > 0          # RFC 2883: duplicates reported
    assert c["TCPDSACKRecv"] > 0
    assert c["TCPTimeouts"] <= 3 * rto_bound(size / 1e6), c   # the Linux sender: ~0.6/MB, as to Linux


async def test_stack_sends_intact_with_bbr() -> None:
    """TCP_CONGESTION=bbr (protocols/tcp/bbr.py) over the same path: random loss is not
    congestion to BBR, so it keeps its window and pacing rate and the recovery stays with
    RACK -- no RTO at all in good runs (cubic: ~0.1-0.3 per MB); bound as for cubic."""
    require_real_peer()
    size = soak(5_000_000, 100_000_000)
    res = await run_stack(size, 3, "out", TIMEOUT, "cubic", stack_cc="bbr")
    c = res["counters"]
    assert res["intact"], res
    assert res["faults"]["dropped"] > 0
    assert c["rto_fires"] <= rto_bound(size / 1e6), c
    assert c["rack_lost"] > 0
    assert c["retrans_segs"] <= 4 * res["faults"]["dropped"] + 50, (c, res["faults"])
