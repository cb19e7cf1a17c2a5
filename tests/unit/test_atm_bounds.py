"""Per-input state on the ATM side stays bounded (issue 10 point 9): each table, queue or
buffer a peer can grow is fed ten times its bound; its size stays within the bound and a
counter says what was dropped.  Sans-IO where the core is; the adapter is driven by
calling its receive entry point directly, with an explicit clock and no trio task."""
from __future__ import annotations

from typing import Any

from drivers.atm import OAM_REPLIES_KEPT, AtmNdd, VcParams
from drivers.atm_phy import PhyPair
from ndd import constants as C
from ndd.services import NetServices
from protocols.atm import aal5, oam
from protocols.atm.cell import PAYLOAD_LEN, PTI_EOP_BIT, CellHeader

VC = (1, 42)


def adapter(**kw: Any) -> AtmNdd:
    """An AtmNdd attached to services whose tasks never run: `_rx_cells` is the input."""
    ns = NetServices(lambda *a, **k: None, lambda: 0.0)
    nd = AtmNdd("atm0", PhyPair().a, **kw)
    ns.ns_attach(nd)
    ns.ns_alloc("atm0")
    nd.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(*VC))
    return nd


def reply_cells(n: int, first_tag: int = 1000) -> bytes:
    return b"".join(oam.loopback_reply(oam.loopback_request(*VC, first_tag + i, end_to_end=True)) for i in range(n))


# --- OAM F5 loopback replies ------------------------------------------------------------------
def test_oam_replies_keep_the_last_few_and_count_the_rest() -> None:
    nd = adapter()
    n = 10 * OAM_REPLIES_KEPT
    nd._rx_cells(reply_cells(n))
    assert len(nd.oam_replies) == OAM_REPLIES_KEPT
    assert nd.oam_replies[-1] == (*VC, 1000 + n - 1) and nd.oam_replies[0] == (*VC, 1000 + n - OAM_REPLIES_KEPT)
    assert nd.stats.oam_loopback_replies == n
    assert nd.stats.oam_replies_forgotten == n - OAM_REPLIES_KEPT


def test_an_own_loopback_reply_is_still_found() -> None:
    """What the tools and tests use: the reply to our request is in oam_replies."""
    nd = adapter()
    nd._rx_cells(reply_cells(3 * OAM_REPLIES_KEPT))
    nd._rx_cells(reply_cells(1, first_tag=7))
    assert (*VC, 7) in nd.oam_replies


# --- AAL5 reassembly ----------------------------------------------------------------------------
def test_aal5_partial_pdu_bounded_by_the_vcs_max_sdu() -> None:
    """A VC opened for 100-octet SDUs never buffers more than the 3 cells they need."""
    r = aal5.Reassembler()
    limit = aal5.pdu_limit(100)
    assert limit == 3 * PAYLOAD_LEN
    for i in range(30):                                      # 10x the cells, no last cell
        r.feed(*VC, 0, bytes(PAYLOAD_LEN), float(i), limit)
        assert r.held <= limit
    st = r.stats(*VC)
    assert st.oversize == 1                                  # dropped once, then discarding
    r.feed(*VC, PTI_EOP_BIT, bytes(PAYLOAD_LEN), 31.0, limit)  # the last cell ends the discard
    sdu = aal5.segment(b"x" * 100, *VC)
    out = [r.feed(*VC, c[3] >> 1 & 7, c[5:], 32.0, limit) for c in (sdu[i:i + 53] for i in range(0, len(sdu), 53))]
    assert out[-1] == b"x" * 100 and r.held == 0


def test_aal5_all_vcs_partial_pdus_share_one_byte_budget() -> None:
    """Partial PDUs on many VCs: the oldest are evicted to stay under max_bytes, counted."""
    budget = 10 * PAYLOAD_LEN
    r = aal5.Reassembler(max_bytes=budget)
    for vci in range(32, 32 + 100):                          # 10x the budget, one cell per VC
        r.feed(0, vci, 0, bytes(PAYLOAD_LEN), 0.0)
        assert r.held <= budget
    assert r.held == budget and r.evictions == 90
    assert sum(r.stats(0, vci).evicted for vci in range(32, 132)) == 90
    assert r.stats(0, 32).evicted == 1 and r.stats(0, 131).evicted == 0    # the oldest went
    # one PDU alone larger than the budget is dropped too
    for _ in range(20):
        r.feed(0, 500, 0, bytes(PAYLOAD_LEN), 1.0)
        assert r.held <= budget
    assert r.stats(0, 500).evicted == 1


def test_aal5_held_bytes_return_to_zero() -> None:
    """Completion, timeout and close all give their bytes back (the budget never leaks)."""
    r = aal5.Reassembler(timeout=1.0)
    r.feed(0, 40, 0, bytes(PAYLOAD_LEN), 0.0)
    r.feed(0, 41, 0, bytes(PAYLOAD_LEN), 0.0)
    r.feed(0, 42, 0, bytes(PAYLOAD_LEN), 0.0)
    r.close(0, 40)
    r.feed(0, 41, PTI_EOP_BIT, bytes(PAYLOAD_LEN), 0.5)      # completes (a bad CRC: counted)
    assert r.held == PAYLOAD_LEN
    r.poll(2.0)
    assert r.held == 0 and r.stats(0, 42).timeouts == 1


def test_adapter_reassembly_honours_the_vc_max_sdu() -> None:
    nd = adapter()
    nd.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(1, 43, max_sdu=100))
    one = CellHeader(0, 1, 43, 0, 0).emit() + bytes(PAYLOAD_LEN)
    nd._rx_cells(one * 40)
    assert nd.reasm.held <= aal5.pdu_limit(100)
    assert nd.vc_stats(1, 43)["oversize_errors"] == 1
