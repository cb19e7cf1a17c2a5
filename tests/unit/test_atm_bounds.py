"""Per-input state on the ATM side stays bounded (issue 10 point 9): each table, queue or
buffer a peer can grow is fed ten times its bound; its size stays within the bound and a
counter says what was dropped.  Sans-IO where the core is; the adapter is driven by
calling its receive entry point directly, with an explicit clock and no trio task."""
from __future__ import annotations

import errno
from typing import Any

import pytest

from drivers.atm import aal5, oam
from drivers.atm.adapter import OAM_REPLIES_KEPT, AtmNdd
from drivers.atm.cell import PAYLOAD_LEN, PTI_EOP_BIT, CellHeader
from drivers.atm.phy import PhyPair
from ndd import constants as C
from ndd.atm import VcParams
from ndd.pktbuf import PacketBuffer
from ndd.services import NetServices
from protocols.addr import ip_to_int
from protocols.atm.clip.atmarp import AtmArpRepr, request
from protocols.atm.clip.atmarp_server import AtmArpServer
from protocols.atm.clip.link import AtmArpTable, ClipConfig, ClipStats
from protocols.atm.clip.svc import ClipSvc
from protocols.atm.saal.sscf import AalEv, AalEvent
from protocols.atm.saal.sscop import Sscop, SscopConfig
from protocols.atm.saal.sscop import State as SscopState
from protocols.atm.saal.sscop_pdu import Sd
from protocols.atm.switch.core import SwitchCore
from protocols.atm.uni.causes import CAUSE_RESOURCE_UNAVAILABLE
from protocols.atm.uni.control import Side, Uni, UniConfig
from protocols.atm.uni.q2931 import (
    IE_CAUSE,
    RELEASE_COMPLETE,
    SETUP,
    CallingNumber,
    Cause,
    Q2931Message,
    parse_message,
)

from .test_uni import cid, setup_ies

VC = (1, 42)
BASE_IP = ip_to_int("10.0.0.1")
AESA_A = bytes.fromhex("47000580ffe1000000f21a0001") + bytes.fromhex("00010020481a000100")
AESA_S = bytes.fromhex("47000580ffe1000000f21a0001") + bytes.fromhex("00030020481a000300")


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
    assert nd.atm_stats.oam_loopback_replies == n
    assert nd.atm_stats.oam_replies_forgotten == n - OAM_REPLIES_KEPT


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


# --- Q.2931 call table and messages held for the SAAL ---------------------------------------------
def test_q2931_setups_beyond_max_calls_are_refused_with_cause_47() -> None:
    bound = 8
    u = Uni(Side.USER, UniConfig(max_calls=bound))
    u.aal_event(AalEvent(AalEv.ESTABLISH_CONF), 0.0)
    u.take_actions()
    for ref in range(1, 10 * bound + 1):                      # 10x: a peer that never ends its calls
        u.receive(Q2931Message(SETUP, ref, 0, [*setup_ies(), cid(32 + ref)]).emit(), 0.0)
        assert len(u.calls) <= bound
    assert len(u.calls) == bound and u.stats.calls_refused_full == 9 * bound
    answers = [parse_message(a[1]) for a in u.take_actions() if a[0] == "data"]
    refusals = [m for m in answers if isinstance(m, Q2931Message) and m.msg_type == RELEASE_COMPLETE]
    assert len(refusals) == 9 * bound
    cause = refusals[0].get(IE_CAUSE)
    assert isinstance(cause, Cause) and cause.cause == CAUSE_RESOURCE_UNAVAILABLE
    with pytest.raises(OSError) as exc:                       # our own calls too: ENOBUFS
        u.setup(setup_ies(), 0.0)
    assert exc.value.errno == errno.ENOBUFS


def test_q2931_messages_held_while_the_link_is_down_are_bounded() -> None:
    bound = 4
    u = Uni(Side.USER, UniConfig(max_held=bound))
    for _ in range(10 * bound):
        u.setup(setup_ies(), 0.0)
    assert len(u._held) == bound and u.stats.held_dropped == 9 * bound


# --- the switch's learned routes -------------------------------------------------------------------
def test_switch_learns_at_most_max_learned_calling_numbers() -> None:
    bound = 16
    core = SwitchCore(max_learned=bound)
    port = core.add_port("a", object())  # type: ignore[arg-type]
    for i in range(10 * bound):
        core._learn(port, CallingNumber(bytes([0x47]) + i.to_bytes(18, "big") + b"\x00"))
        assert core.routes.learned <= bound
    assert core.routes.learned == bound == len(core.routes)
    assert core.stats.routes_learned == bound and core.stats.learn_table_full == 9 * bound
    core.remove_port("a")                                     # learned routes go with their port
    assert core.routes.learned == 0 == len(core.routes)


# --- ATMARP server and client, CLIP held next hops ---------------------------------------------------
class _Vc:
    open = True


def test_atmarp_server_registrations_are_bounded_and_requests_still_answered() -> None:
    bound = 8
    sent: list[tuple[Any, AtmArpRepr]] = []
    srv = AtmArpServer(send=lambda vc, arp, now: sent.append((vc, arp)), is_open=lambda vc: True,
                       own_ip=lambda: None, aesa=AESA_S, max_entries=bound)
    vc = _Vc()
    for i in range(10 * bound):                                # 10x clients inventing addresses
        srv.input(vc, request(BASE_IP + i, AESA_A, BASE_IP), 0.0)
        assert len(srv.entries) <= bound
    assert len(srv.entries) == bound
    assert srv.stats.server_registrations == bound and srv.stats.server_table_full == 9 * bound
    assert len(sent) == 10 * bound                             # every request got its answer


def test_atmarp_client_next_hops_are_bounded() -> None:
    bound = 8
    stats = ClipStats()
    core = ClipSvc(AESA_A, lambda: [BASE_IP], lambda ip: BASE_IP, stats, ClipConfig(max_entries=bound),
                   transmit=lambda vc, data: 0, transmit_ip=lambda pkt, vc: 0, unreachable=lambda pkt: None)
    core.call = lambda vc: 0
    core.use_server(AESA_S, 0.0)
    results = [core.resolve(BASE_IP + 1 + i, PacketBuffer.from_payload(b"x" * 20), 0.0) for i in range(10 * bound)]
    assert len(core.peers) == bound and stats.table_full == 9 * bound
    assert results[:bound] == [None] * bound and set(results[bound:]) == {errno.ENOBUFS}


def test_clip_pvc_pending_next_hops_are_bounded() -> None:
    bound = 8
    table = AtmArpTable(lambda: [BASE_IP], lambda vpi, vci, data: 0, lambda pkt, vpi, vci: 0, lambda pkt: None,
                        ClipConfig(max_entries=bound))
    table.add_pvc(0, 40, None, 0.0)                            # its far end still RESOLVING
    results = [table.resolve(BASE_IP + 1 + i, PacketBuffer.from_payload(b"x" * 20), 0.0) for i in range(10 * bound)]
    assert len(table.pending) == bound and table.stats.table_full == 9 * bound
    assert set(results[bound:]) == {errno.ENOBUFS}


# --- SSCOP: a peer's out-of-order SDs are held within the receive window ------------------------
def test_sscop_receive_buffer_bounded_by_the_window() -> None:
    window = 16
    a, b = Sscop(SscopConfig(window=window)), Sscop(SscopConfig(window=window))
    a.establish(b"", 0.0)
    for pdu in a.take_output():
        b.receive(pdu, 0.0)
    b.accept(b"", 0.0)
    for pdu in b.take_output():
        a.receive(pdu, 0.0)
    assert b.state == SscopState.DATA_TRANSFER_READY
    for seq in range(1, 10 * window + 1):                      # SD 0 never comes: all out of order
        b.receive(Sd(seq, b"x" * 100).emit(), 0.0)
        assert len(b.rxbuf) <= window
    assert b.stats.rx_sd_outside_window >= 9 * window - 1


def test_aal5_budget_spares_the_growing_pdu_while_others_can_go() -> None:
    """The PDU whose cell meets the full budget is the oldest one: the next oldest are
    evicted for it, and it goes itself only once it alone is over the budget."""
    budget = 4 * PAYLOAD_LEN
    r = aal5.Reassembler(max_bytes=budget)
    r.feed(0, 40, 0, bytes(PAYLOAD_LEN), 0.0)                # VC 40: the oldest PDU
    for vci in (41, 42, 43):
        r.feed(0, vci, 0, bytes(PAYLOAD_LEN), 0.0)
    assert r.held == budget
    r.feed(0, 40, 0, bytes(PAYLOAD_LEN), 0.0)                # the budget is full: 41 goes
    assert r.stats(0, 41).evicted == 1 and r.stats(0, 40).evicted == 0
    for _ in range(2):
        r.feed(0, 40, 0, bytes(PAYLOAD_LEN), 0.0)            # then 42, then 43
    assert [r.stats(0, v).evicted for v in (40, 41, 42, 43)] == [0, 1, 1, 1]
    assert r.held == budget
    r.feed(0, 40, 0, bytes(PAYLOAD_LEN), 0.0)                # alone and over: dropped itself
    assert r.stats(0, 40).evicted == 1 and r.held == 0 and r.evictions == 4
