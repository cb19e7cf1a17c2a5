"""ATM adapter memory under a flood of OAM F5 loopback replies (issue 10 point 9).

Before the fix `AtmNdd.oam_replies` kept every reply: 120 000 reply cells cost +11.5 MiB
(tracemalloc), linearly.  Now it keeps the last OAM_REPLIES_KEPT and counts the rest:
measured +7 KiB.  In-process (no namespace, no root): the cells enter at the adapter's
receive entry point exactly as the PHY hands them over, 24 cells per blob like UdpPhy."""
from __future__ import annotations

import tracemalloc

from drivers.atm import oam
from drivers.atm.adapter import OAM_REPLIES_KEPT, AtmNdd
from drivers.atm.phy import PhyPair
from ndd import constants as C
from ndd.atm import VcParams
from ndd.services import NetServices

from .conftest import soak

VC = (1, 42)
PER_BLOB = 24


def test_oam_reply_flood_costs_no_memory() -> None:
    cells = soak(120_000, 1_200_000)
    ns = NetServices(lambda *a, **k: None, lambda: 0.0)
    nd = AtmNdd("atm0", PhyPair().a)
    ns.ns_attach(nd)
    ns.ns_alloc("atm0")
    nd.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(*VC))
    # 5760 distinct tags (each parsed into a new int, as from a hostile far end), built
    # before measuring and sent round and round
    distinct = [b"".join(oam.loopback_reply(oam.loopback_request(*VC, 100_000 + i * PER_BLOB + j, end_to_end=True))
                         for j in range(PER_BLOB)) for i in range(240)]
    blob_count = cells // PER_BLOB
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(blob_count):
            nd._rx_cells(distinct[i % len(distinct)])
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert nd.atm_stats.oam_loopback_replies == blob_count * PER_BLOB
    assert nd.atm_stats.oam_replies_forgotten == blob_count * PER_BLOB - OAM_REPLIES_KEPT
    assert len(nd.oam_replies) == OAM_REPLIES_KEPT
    # measured +7 KiB; the limit is generous (the unbounded list was +11.5 MiB)
    assert grown < 512 * 1024, f"+{grown / 2**20:.2f} MiB for {cells} OAM reply cells"
