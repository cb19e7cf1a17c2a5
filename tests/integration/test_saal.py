"""SAAL (SSCF-UNI over SSCOP) on VC 0/5 between two Stacks, each with an AtmNdd over a PhyPair:
establishment, Q.2931 messages as assured data in order (also through a lossy link),
release, and an establishment that fails against a silent far end after MaxCC BGNs.
The first test drives two sans-IO Sscf cores against each other with an explicit clock."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio
import trio.testing

from drivers.atm.adapter import AtmNdd
from drivers.atm.phy import PhyPair
from drivers.fault import FaultInjector
from ndd import constants as C
from ndd.atm import VcParams
from ndd.demux import NsFilter, NsUser
from ndd.ndd import Ndd
from protocols.atm.saal.endpoint import SaalEndpoint
from protocols.atm.saal.sscf import AalEv, AalEvent, Sscf, State, sscf_uni_config
from protocols.atm.saal.sscop_pdu import Bgn, End, parse_pdu
from protocols.atm.uni.q2931 import (
    AAL_5,
    BCOB_X,
    CONNECT,
    PLAN_AESA,
    SETUP,
    AalParameters,
    BearerCapability,
    CalledNumber,
    Q2931Message,
    TrafficDescriptor,
    parse_message,
)
from stack.stack import Stack, StackConfig

AESA = bytes.fromhex("47000580ffe1000000f21a3a4b0020481a3a4b00")


def setup_msg(callref: int) -> Q2931Message:
    return Q2931Message(SETUP, callref, 0, [AalParameters(AAL_5, 9188, 9188),
                                            TrafficDescriptor(fwd_pcr_01=353207, bwd_pcr_01=353207),
                                            BearerCapability(BCOB_X, 0, 0, 0, 0), CalledNumber(AESA, PLAN_AESA)])


# --- sans-IO: two SSCF-UNI cores, explicit clock -----------------------------------------
def shuttle(a: Sscf, b: Sscf, t0: float, t1: float, evs: dict[int, list[AalEvent]], *,
            link: bool = True, step: float = 0.05) -> float:
    t = t0
    while t <= t1:
        for x in (a, b):
            x.poll(t)
        moved = True
        while moved:
            moved = False
            for src, dst in ((a, b), (b, a)):
                for pdu in src.take_output():
                    moved = True
                    if link:
                        dst.receive(pdu, t)
        for x in (a, b):
            evs[id(x)] += x.take_events()
        t += step
    return t


def kinds(evs: list[AalEvent]) -> list[AalEv]:
    return [e.kind for e in evs]


def test_sscf_uni_mapping_sans_io() -> None:
    cfg = sscf_uni_config()
    assert (cfg.timer_cc, cfg.timer_poll, cfg.timer_keepalive, cfg.timer_noresp, cfg.timer_idle,
            cfg.max_cc, cfg.max_pd) == (1.0, 0.75, 2.0, 7.0, 15.0, 4, 25)
    a, b = Sscf(keep_up=True), Sscf()
    evs: dict[int, list[AalEvent]] = {id(a): [], id(b): []}
    a.release()                                              # released already: confirmed at once
    assert kinds(a.take_events()) == [AalEv.RELEASE_CONF]
    assert not a.send(b"x") and a.stats.data_refused == 1    # no data before establishment
    a.establish(b"hi", 0.0)
    t = shuttle(a, b, 0.0, 0.5, evs)
    assert kinds(evs[id(a)]) == [AalEv.ESTABLISH_CONF]
    assert evs[id(b)] == [AalEvent(AalEv.ESTABLISH_IND, b"hi")]  # accepted without asking (Q.2130)
    assert a.state == b.state == State.ESTABLISHED
    # AAL-ESTABLISH.request on a live link is a resynchronisation, seen as establishment by both
    evs[id(a)].clear(), evs[id(b)].clear()
    a.establish(b"", t)
    assert a.state == State.AWAITING_RESYNC
    t = shuttle(a, b, t, t + 0.5, evs)
    assert kinds(evs[id(a)]) == [AalEv.ESTABLISH_CONF] and kinds(evs[id(b)]) == [AalEv.ESTABLISH_IND]
    assert a.send(b"m1", t) and b.send(b"m2", t)
    t = shuttle(a, b, t, t + 0.5, evs)
    assert evs[id(b)][-1] == AalEvent(AalEv.DATA_IND, b"m1") and evs[id(a)][-1] == AalEvent(AalEv.DATA_IND, b"m2")
    # the link goes dead: NO-RESPONSE releases both ends; a (keep_up) asks for the link again
    evs[id(a)].clear(), evs[id(b)].clear()
    t = shuttle(a, b, t, t + 9.0, evs, link=False)
    assert kinds(evs[id(b)]) == [AalEv.RELEASE_IND] and evs[id(b)][0].source == "sscop"
    assert kinds(evs[id(a)])[0] == AalEv.RELEASE_IND and a.stats.reestablish >= 1
    assert a.state == State.AWAITING_ESTABLISH and b.state == State.RELEASED
    # the link comes back: a's next BGN is accepted by b
    evs[id(a)].clear(), evs[id(b)].clear()
    shuttle(a, b, t, t + 12.0, evs)
    assert kinds(evs[id(a)])[-1] == AalEv.ESTABLISH_CONF and kinds(evs[id(b)]) == [AalEv.ESTABLISH_IND]
    assert a.state == b.state == State.ESTABLISHED


# --- two Stacks over a PhyPair -----------------------------------------------------------
@dataclass
class Peer:
    events: list[AalEvent] = field(default_factory=list)
    msgs: list[Q2931Message] = field(default_factory=list)
    ep: SaalEndpoint | None = None
    answer: bool = False            # reply CONNECT to every SETUP

    def on_event(self, e: AalEvent) -> None:
        self.events.append(e)
        if e.kind == AalEv.DATA_IND:
            m = parse_message(e.data)
            assert isinstance(m, Q2931Message), m
            self.msgs.append(m)
            if self.answer and m.msg_type == SETUP and self.ep is not None:
                assert self.ep.send(Q2931Message(CONNECT, m.callref, 1).emit())

    def kinds(self) -> list[AalEv]:
        return [e.kind for e in self.events]


@dataclass
class Pair:
    sa: Stack
    sb: Stack
    a: AtmNdd
    b: AtmNdd
    nd_a: Ndd
    pa: Peer
    pb: Peer


@asynccontextmanager
async def saal_pair(*, wrap_a: Callable[[AtmNdd], Ndd] | None = None,
                    far_end: bool = True) -> AsyncIterator[Pair]:
    async with Stack("a", StackConfig(seed=1)) as sa, Stack("b", StackConfig(seed=2)) as sb:
        phy = PhyPair()
        a, b = AtmNdd("atm0", phy.a), AtmNdd("atm1", phy.b)
        nd_a = wrap_a(a) if wrap_a is not None else a
        for st, nd in ((sa, nd_a), (sb, b)):
            st.ns.ns_attach(nd)
            st.ns.ns_alloc(nd.ndd_name)
        pa, pb = Peer(), Peer(answer=True)
        pa.ep = SaalEndpoint.on_stack(sa, nd_a, on_event=pa.on_event)
        if far_end:
            pb.ep = SaalEndpoint.on_stack(sb, b, on_event=pb.on_event)
        try:
            yield Pair(sa, sb, a, b, nd_a, pa, pb)
        finally:
            for p in (pa, pb):
                if p.ep is not None:
                    p.ep.close()


async def until(cond: Callable[[], bool], timeout: float) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.01)


async def establish_exchange_release(p: Pair, n: int, timeout: float) -> None:
    assert p.pa.ep is not None and p.pb.ep is not None
    p.pa.ep.establish()
    await until(lambda: p.pa.ep.established and p.pb.ep.established, timeout)     # type: ignore[union-attr]
    assert p.pa.kinds() == [AalEv.ESTABLISH_CONF] and p.pb.kinds() == [AalEv.ESTABLISH_IND]
    sent = [setup_msg(cr) for cr in range(1, n + 1)]
    for m in sent:
        assert p.pa.ep.send(m.emit())
    await until(lambda: len(p.pa.msgs) == n, timeout)
    # every SETUP arrived once, in order, and parses to what was sent; CONNECTs came back in order
    assert [(m.msg_type, m.callref, m.flag, m.ies) for m in p.pb.msgs] == \
           [(SETUP, m.callref, 0, m.ies) for m in sent]
    assert [(m.msg_type, m.callref, m.flag) for m in p.pa.msgs] == [(CONNECT, cr, 1) for cr in range(1, n + 1)]
    p.pa.ep.release()
    await until(lambda: AalEv.RELEASE_CONF in p.pa.kinds() and AalEv.RELEASE_IND in p.pb.kinds(), timeout)
    assert p.pa.ep.state == p.pb.ep.state == State.RELEASED
    rel = [e for e in p.pb.events if e.kind == AalEv.RELEASE_IND]
    assert len(rel) == 1 and rel[0].source == "user"                # the peer released: not a failure
    assert AalEv.RELEASE_IND not in p.pa.kinds()


async def test_saal_establish_exchange_release(autojump_clock: trio.testing.MockClock) -> None:
    async with saal_pair() as p:
        await establish_exchange_release(p, 20, timeout=10)
        assert p.pa.ep is not None and p.pa.ep.stats.tx_errors == 0
        st = p.a.ndd_ctl(C.NDD_ATM_GET_VC_STATS, (0, 5))
        assert st["sdus_out"] == p.pa.ep.stats.tx_sdus and st["sdus_in"] == p.pa.ep.stats.rx_sdus
        assert p.pa.ep.sscf.sscop.stats.retransmits == 0


async def test_saal_survives_a_lossy_link(autojump_clock: trio.testing.MockClock) -> None:
    inj: list[FaultInjector] = []

    def lossy(nd: AtmNdd) -> Ndd:
        inj.append(FaultInjector(nd, seed=7, drop=0.2, direction="both"))
        return inj[0]

    async with saal_pair(wrap_a=lossy) as p:
        await establish_exchange_release(p, 60, timeout=120)
        assert inj[0].faults.dropped > 10
        assert p.pa.ep is not None and p.pb.ep is not None
        assert p.pa.ep.sscf.sscop.stats.retransmits + p.pb.ep.sscf.sscop.stats.retransmits > 0


async def test_saal_release_then_close_still_sends_the_end(autojump_clock: trio.testing.MockClock) -> None:
    # a process that releases and closes at once (its VC gone before the adapter sent the
    # END) must still tell the far end: the draining VC close lets the END leave
    async with saal_pair() as p:
        assert p.pa.ep is not None and p.pb.ep is not None
        p.pa.ep.establish()
        await until(lambda: p.pa.ep.established and p.pb.ep.established, 5)     # type: ignore[union-attr]
        t0 = trio.current_time()
        p.pa.ep.release()
        p.pa.ep.close()
        await until(lambda: AalEv.RELEASE_IND in p.pb.kinds(), 5)
        rel = [e for e in p.pb.events if e.kind == AalEv.RELEASE_IND]
        assert rel[0].source == "user" and trio.current_time() - t0 < 0.1    # END, not NO-RESPONSE (7 s)
        assert (0, 5) not in p.a.ndd_ctl(C.NDD_ATM_LIST_VCS)


async def test_saal_silent_far_end_fails_after_max_cc(autojump_clock: trio.testing.MockClock) -> None:
    async with saal_pair(far_end=False) as p:
        seen: list[bytes] = []
        # the far adapter carries 0/5 but nobody answers on it; a tap records what arrives
        p.b.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(0, 5, reserved=True))
        p.sb.ns.ns_add_filter(p.b, NsFilter(C.NS_TAP), NsUser(lambda nd, pkt, _: seen.append(pkt.tobytes()[4:]), None))
        assert p.pa.ep is not None
        t0 = trio.current_time()
        p.pa.ep.establish()
        await until(lambda: bool(p.pa.events), 30)
        took = trio.current_time() - t0
        assert p.pa.kinds() == [AalEv.RELEASE_IND] and p.pa.events[0].source == "sscop"
        assert p.pa.ep.state == State.RELEASED and "O" in p.pa.ep.sscf.maa_errors
        assert 4.0 <= took < 4.1                                    # MaxCC (4) x Timer_CC (1 s)
        await trio.sleep(1)
        pdus = [parse_pdu(s) for s in seen]
        assert [type(x) for x in pdus] == [Bgn] * 4 + [End]         # 4 BGNs, then END (source SSCOP)
        assert isinstance(pdus[-1], End) and pdus[-1].source
        assert p.b.ndd_nsdemux.nd_dmxstats.nd_nofilter == 5

