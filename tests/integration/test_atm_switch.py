"""The emulated ATM switch (stack/atm_switch.py, protocols/atm/switch/core.py): user-side
UniEndpoints on their own Stacks, each with an AtmNdd over a PhyPair to a switch port, in
one process on trio's MockClock; then the CLI switch in its own process with endpoints on
UDP PHYs.  Called users behave by the selector octet of the number called (SEL below):
accept, refuse busy (17) or with no listener (88), or never answer."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
import trio.testing

from drivers.atm.adapter import AtmNdd
from drivers.atm.phy import PhyPair, UdpPhy
from drivers.fault import FaultInjector
from ndd import constants as C
from ndd.atm import VcParams
from ndd.demux import NsFilter, NsUser
from ndd.ndd import Ndd
from ndd.pktbuf import PacketBuffer
from protocols.atm.switch.core import RoutingTable, VciPool, parse_prefix
from protocols.atm.uni.call import Call, CallEv, CallEvent, Side
from protocols.atm.uni.causes import CAUSE_NORMAL_CLEARING
from protocols.atm.uni.endpoint import UniEndpoint
from protocols.atm.uni.q2931 import (
    CS_ACTIVE,
    MESSAGE_NAMES,
    RELEASE,
    RELEASE_COMPLETE,
    BearerCapability,
    CalledNumber,
    CallingNumber,
    ConnectionId,
    QosParameter,
    TrafficDescriptor,
)
from stack.atm_switch import AtmSwitch
from stack.stack import Stack, StackConfig

from .helpers import require_tool

NET = "47000580ffe1000000f21a"
PREFIX = {p: f"{NET}{i:04x}" for i, p in enumerate("abcdel", 1)}     # 13-octet prefixes
SEL_ACCEPT, SEL_ALERT, SEL_BUSY, SEL_NO_LISTENER, SEL_SILENT = 0x00, 0x01, 0x17, 0x88, 0x99
SDU_SIZES = [1, 40, 41, 48, 1000, 9180]


def aesa(port: str, esi: int = 1, sel: int = SEL_ACCEPT) -> bytes:
    return bytes.fromhex(f"{PREFIX[port]}{esi:012x}{sel:02x}")


def setup_ies(called: bytes, calling: bytes | None) -> list[Any]:
    ies: list[Any] = [TrafficDescriptor(fwd_pcr_01=10000, bwd_pcr_01=10000), BearerCapability(),
                      CalledNumber(called)]
    if calling is not None:
        ies.append(CallingNumber(calling))
    return ies + [QosParameter()]


@dataclass(eq=False)
class User:
    """A host on one switch port: its own Stack, adapter and user-side Q.2931."""
    name: str
    stack: Stack
    ndd: AtmNdd
    nd: Ndd                                   # what the stack attached: the adapter or a fault injector
    sig: UniEndpoint = None                   # type: ignore[assignment]
    events: list[CallEvent] = field(default_factory=list)
    got: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)

    @property
    def address(self) -> bytes:
        return aesa(self.name)

    def on_event(self, ev: CallEvent) -> None:
        self.events.append(ev)
        if ev.kind != CallEv.SETUP_IND or ev.call is None or ev.call.setup is None:
            return
        called = ev.call.setup.get(0x70)
        sel = called.address[-1] if isinstance(called, CalledNumber) else SEL_ACCEPT
        if sel in (SEL_ACCEPT, SEL_ALERT):
            assert ev.call.vc is not None
            self.open_vc(ev.call.vc)
            if sel == SEL_ALERT:
                self.sig.alerting(ev.call)
            self.sig.connect(ev.call)
        elif sel in (SEL_BUSY, SEL_NO_LISTENER):
            self.sig.release(ev.call, 17 if sel == SEL_BUSY else 88)

    def call(self, called: bytes) -> Call:
        return self.sig.setup(setup_ies(called, self.address))

    def open_vc(self, vc: tuple[int, int]) -> None:
        if vc in self.got:
            return
        self.got[vc] = []
        self.nd.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(*vc))
        self.stack.ns.ns_add_filter(self.nd, NsFilter(C.NS_ATM_VC, vpi=vc[0], vci=vc[1]),
                                    NsUser(lambda nd, pkt, _: self.got[vc].append(pkt.tobytes()), None))

    def send(self, vc: tuple[int, int], sdu: bytes) -> None:
        pkt = PacketBuffer.from_payload(bytes((0, vc[0], vc[1] >> 8, vc[1] & 0xFF)) + sdu)
        assert self.nd.ndd_output(pkt) == 0

    def of(self, call: Call, *kinds: CallEv) -> list[CallEvent]:
        return [e for e in self.events if e.call is call and (not kinds or e.kind in kinds)]

    def ended(self, call: Call) -> CallEvent | None:
        evs = self.of(call, CallEv.RELEASE_IND, CallEv.RELEASE_CONF)
        return evs[0] if evs else None

    def incoming(self) -> list[Call]:
        return [e.call for e in self.events if e.kind == CallEv.SETUP_IND and e.call is not None]


@dataclass
class World:
    sw: AtmSwitch
    users: dict[str, User]
    faults: dict[str, FaultInjector]
    sw_events: list[tuple[float, str, CallEvent]]      # (time, port, event) seen by the switch

    def __getitem__(self, name: str) -> User:
        return self.users[name]


@asynccontextmanager
async def world(users: str = "ab", *, ports: dict[str, dict[str, Any]] | None = None, latency: float = 0.0,
                faulty: str = "", pcap_dir: Path | None = None) -> AsyncIterator[World]:
    """A switch with a port per user (prefix PREFIX[name]) plus `ports` (name -> add_port
    keywords; no user behind them); users in `faulty` sit behind a FaultInjector."""
    sw_events: list[tuple[float, str, CallEvent]] = []
    async with AtmSwitch("sw") as sw:
        sw.on_event = lambda port, ev: sw_events.append((trio.current_time(), port, ev))
        kw_of = {name: {"prefixes": [PREFIX[name]]} for name in users}
        kw_of.update(ports or {})
        pairs = {name: PhyPair(latency=latency) for name in kw_of}
        for name, kw in kw_of.items():
            pcap = str(pcap_dir / f"{name}.pcap") if pcap_dir is not None else None
            sw.add_port(name, pairs[name].b, pcap=pcap, **kw)
        async with trio.open_nursery() as n:
            stacks: dict[str, Stack] = {}
            for i, name in enumerate(users):
                stacks[name] = await n.start(_run_stack, name, i)
            out: dict[str, User] = {}
            faults: dict[str, FaultInjector] = {}
            for name in users:
                st = stacks[name]
                ndd = AtmNdd("atm0", pairs[name].a)
                nd: Ndd = ndd
                if name in faulty:
                    nd = faults[name] = FaultInjector(ndd, seed=1)
                st.ns.ns_attach(nd)
                st.ns.ns_alloc(nd.ndd_name)
                u = out[name] = User(name, st, ndd, nd)
                u.sig = UniEndpoint.on_stack(st, nd, side=Side.USER, on_event=u.on_event)
            w = World(sw, out, faults, sw_events)
            await until(lambda: all(u.sig.link_up for u in out.values()), 10)
            await sw.wait_links_up(*users)
            try:
                yield w
            finally:
                for u in out.values():
                    u.sig.close()
                n.cancel_scope.cancel()


async def _run_stack(name: str, seed: int, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    async with Stack(name, StackConfig(seed=seed, loopback=False, plugins=False)) as st:
        task_status.started(st)
        await trio.sleep_forever()


async def until(cond: Callable[[], bool], timeout: float) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.01)


async def connected(w: World, caller: str, callee: str, esi: int = 1,
                    sel: int = SEL_ACCEPT) -> tuple[Call, Call]:
    """A call from `caller` to `callee`, active on both ends."""
    a, b = w[caller], w[callee]
    before = len(b.incoming())
    call = a.call(aesa(callee, esi, sel))
    await until(lambda: call.state == CS_ACTIVE and len(b.incoming()) > before
                and b.incoming()[-1].state == CS_ACTIVE, 10)
    return call, b.incoming()[-1]


def assert_idle(sw: AtmSwitch) -> None:
    """No call, cross-connect or switched VC is left anywhere in the switch."""
    core = sw.core
    assert core.connections == {} and core.xc == {}
    for name, port in sw.ports.items():
        port.core.sweep()
        assert port.core.vcis.in_use == set(), name
        assert port.ndd.ndd_ctl(C.NDD_ATM_LIST_VCS) == [(0, 5)], name
        assert port.sig.calls == {}, name


async def exchange(w: World, a: str, va: tuple[int, int], b: str, vb: tuple[int, int]) -> None:
    """SDUs of every size class both ways between a's VC va and b's VC vb."""
    ua, ub = w[a], w[b]
    ua.open_vc(va)
    ub.open_vc(vb)
    sdus = [bytes((n + i) & 0xFF for i in range(n)) for n in SDU_SIZES]
    na, nb = len(ua.got[va]), len(ub.got[vb])
    for s in sdus:
        ua.send(va, s)
        ub.send(vb, s[::-1])
    await until(lambda: len(ub.got[vb]) >= nb + len(sdus) and len(ua.got[va]) >= na + len(sdus), 10)
    assert ub.got[vb][nb:] == sdus and ua.got[va][na:] == [s[::-1] for s in sdus]


# --- routing and allocation, sans-IO ----------------------------------------------------------
def test_routing_table_and_vci_pool() -> None:
    rt = RoutingTable()
    rt.add(parse_prefix("47.0005.80ffe1"), "x")
    rt.add(parse_prefix(PREFIX["a"]), "a")
    rt.add(parse_prefix(PREFIX["a"] + "0"), "a0")           # a prefix may end mid-octet
    rt.add(parse_prefix("*"), "default")
    assert rt.lookup(aesa("a", esi=0x0ff).hex()).port == "a0"   # type: ignore[union-attr]
    assert rt.lookup(aesa("a", esi=1 << 44).hex()).port == "a"  # type: ignore[union-attr]
    assert rt.lookup(aesa("b").hex()).port == "x"               # type: ignore[union-attr]
    assert rt.lookup("39" + "00" * 19).port == "default"        # type: ignore[union-attr]
    assert rt.add(parse_prefix(PREFIX["a"]), "other", learned=True).port == "a"   # configured wins
    try:
        rt.add(parse_prefix(PREFIX["a"]), "other")
        raise AssertionError("two ports configured with one prefix")
    except ValueError:
        pass
    pool = VciPool(0, 32, 34)
    assert [pool.take(), pool.take()] == [32, 33]
    pool.free(0, 32)
    assert [pool.take(), pool.take(), pool.take()] == [34, 32, None]   # round robin: 32 comes last
    assert not pool.reserve(0, 33) and pool.reserve(0, 100) and pool.reserve(1, 33)


# --- calls through the switch ----------------------------------------------------------------
async def test_call_connects_carries_sdus_and_clears(autojump_clock: trio.testing.MockClock) -> None:
    async with world() as w:
        sw = w.sw
        call, incoming = await connected(w, "a", "b")
        conn = next(iter(sw.core.connections.values()))
        leg_a, leg_b = conn.calling.vc, conn.called.vc
        # each leg got its own connection identifier: CALL PROCEEDING to a, SETUP to b
        assert call.vc == (leg_a.vpi, leg_a.vci) and incoming.vc == (leg_b.vpi, leg_b.vci)
        assert leg_a.port == "a" and leg_b.port == "b" and leg_a.vci >= 32 and leg_b.vci >= 32
        assert [e.kind for e in w["a"].of(call)] == [CallEv.PROCEEDING_IND, CallEv.SETUP_CONF]
        assert w["a"].of(call)[0].msg.get(0x5A) == ConnectionId(leg_a.vpi, leg_a.vci)   # type: ignore[union-attr]
        assert [e.kind for e in w["b"].of(incoming)] == [CallEv.SETUP_IND, CallEv.SETUP_COMPLETE_IND]
        setup = incoming.setup
        assert setup is not None and setup.get(0x70) == CalledNumber(aesa("b"))
        assert setup.get(0x6C) == CallingNumber(aesa("a"))               # the caller's IEs go on
        assert sw.core.xc == {leg_a: leg_b, leg_b: leg_a} and sw.core.active_calls == 1
        # AAL5 SDUs both ways through the cell cross-connect: relayed, never reassembled
        await exchange(w, "a", call.vc, "b", incoming.vc)       # type: ignore[arg-type]
        cells = 2 * sum(-(-(n + 8) // 48) for n in SDU_SIZES)
        assert sw.cells_relayed == cells and sw.stats()["relay_drops"] == 0
        st = sw.ports["a"].ndd.ndd_ctl(C.NDD_ATM_GET_VC_STATS, (leg_a.vpi, leg_a.vci))
        assert st["cells_in"] == st["cells_out"] == cells // 2 and st["sdus_in"] == st["sdus_out"] == 0
        # the caller clears: both legs end, VCs and cross-connects are gone
        w["a"].sig.release(call)
        await until(lambda: w["a"].ended(call) is not None and w["b"].ended(incoming) is not None, 5)
        assert w["a"].ended(call).kind == CallEv.RELEASE_CONF                       # type: ignore[union-attr]
        end_b = w["b"].ended(incoming)
        assert end_b is not None and (end_b.kind, end_b.cause) == (CallEv.RELEASE_IND, CAUSE_NORMAL_CLEARING)
        await until(lambda: not sw.ports["b"].sig.calls, 5)
        assert_idle(sw)
        st = sw.stats()
        assert (st["setups_in"], st["calls_routed"], st["calls_connected"], st["calls_cleared"],
                st["calls_refused"], st["active_calls"]) == (1, 1, 1, 1, 0, 0)


async def test_callee_clears_and_the_vci_is_not_reused_at_once(autojump_clock: trio.testing.MockClock) -> None:
    async with world() as w:
        first, incoming = await connected(w, "a", "b")
        w["b"].sig.release(incoming, 31)
        await until(lambda: w["a"].ended(first) is not None and w["b"].ended(incoming) is not None, 5)
        end = w["a"].ended(first)
        assert end is not None and (end.kind, end.cause) == (CallEv.RELEASE_IND, 31)   # the callee's cause
        assert w["b"].ended(incoming).kind == CallEv.RELEASE_CONF                     # type: ignore[union-attr]
        await until(lambda: not w.sw.ports["a"].sig.calls, 5)
        assert_idle(w.sw)
        second, incoming2 = await connected(w, "a", "b")
        assert second.vc == (0, first.vc[1] + 1) and incoming2.vc == (0, incoming.vc[1] + 1)  # type: ignore[index]
        # b calls a back, and a alerts before it answers: ALERTING reaches b
        third, incoming3 = await connected(w, "b", "a", sel=SEL_ALERT)
        assert third.vc == (0, incoming2.vc[1] + 1)                                         # type: ignore[index]
        assert [e.kind for e in w["b"].of(third)] == [CallEv.PROCEEDING_IND, CallEv.ALERTING_IND,
                                                      CallEv.SETUP_CONF]
        await exchange(w, "b", third.vc, "a", incoming3.vc)                                 # type: ignore[arg-type]
        # a calls another of its own addresses: both legs on one port, cells hairpinned
        out, back = await connected(w, "a", "a", esi=2)
        assert out.vc != back.vc and w.sw.core.xc[("a", *out.vc)] == ("a", *back.vc)      # type: ignore[misc]
        await exchange(w, "a", out.vc, "a", back.vc)                                        # type: ignore[arg-type]
        assert w.sw.core.active_calls == 3


async def test_refusals_and_learned_routes(autojump_clock: trio.testing.MockClock) -> None:
    # c: a port whose far end never comes up, with one address listed; e: a route, no port;
    # l: a user whose port has no prefix, so the switch must learn it
    # b has a single VCI for switched calls
    ports = {"b": {"prefixes": [PREFIX["b"]], "vci_range": (32, 32)},
             "c": {"prefixes": [PREFIX["c"]], "addresses": [aesa("c", 1).hex()]}, "l": {}}
    async with world("abl", ports=ports) as w:
        w.sw.add_route(PREFIX["e"], "e")
        a = w["a"]

        async def refused(number: bytes, cause: int, *, answered: bool) -> None:
            call = a.call(number)
            await until(lambda: a.ended(call) is not None, 20)
            end = a.ended(call)
            assert end is not None and (end.kind, end.cause) == (CallEv.RELEASE_IND, cause), (number.hex(), end)
            # refused by the switch itself: RELEASE COMPLETE, no CALL PROCEEDING; past it: RELEASE
            assert end.msg is not None and end.msg.msg_type == (RELEASE if answered else RELEASE_COMPLETE)

        await refused(bytes.fromhex("39" + "11" * 19), 3, answered=False)      # no route
        await refused(aesa("c", 2), 1, answered=False)                         # not in c's address list
        await refused(aesa("c", 1), 27, answered=False)                        # c's link is down
        await refused(aesa("e"), 27, answered=False)                           # no port e at all
        await refused(aesa("l"), 3, answered=False)                            # not learned yet
        await refused(aesa("b", sel=SEL_BUSY), 17, answered=True)               # the callee's own causes
        await refused(aesa("b", sel=SEL_NO_LISTENER), 88, answered=True)
        assert [c.setup.get(0x70).address[-1] for c in w["b"].incoming()] == [SEL_BUSY, SEL_NO_LISTENER]  # type: ignore[union-attr]
        # l calls a: its calling number is learned (prefix + ESI), then a can call l
        await connected(w, "l", "a")
        learned = [r for r in w.sw.core.routes if r.learned]
        assert [(r.prefix, r.port) for r in learned] == [(aesa("l").hex()[:38], "l")]
        call, _ = await connected(w, "a", "l")
        conn = w.sw.core.connections[max(w.sw.core.connections)]
        assert conn.calling.vc.port == "a" and w.sw.core.xc[conn.calling.vc].port == "l"
        st = w.sw.stats()
        assert st["refused_by_cause"] == {1: 1, 3: 2, 17: 1, 27: 2, 88: 1} and st["calls_refused"] == 7
        assert st["routes_learned"] == 1 and st["active_calls"] == 2
        # b's only VCI is taken by a call: the next one gets 45 (no VPCI/VCI available)
        await connected(w, "a", "b")
        await refused(aesa("b", esi=2), 45, answered=False)
        assert w.sw.stats()["refused_by_cause"][45] == 1


async def test_unanswered_abandoned_and_lost_setups(autojump_clock: trio.testing.MockClock) -> None:
    async with world() as w:
        t0 = trio.current_time()
        call = w["a"].call(aesa("b", sel=SEL_SILENT))
        await until(lambda: w["a"].ended(call) is not None, 30)
        took = trio.current_time() - t0
        end = w["a"].ended(call)
        assert end is not None and (end.kind, end.cause) == (CallEv.RELEASE_IND, 18)
        assert 8.0 <= took < 8.5                                   # T303 (4 s) twice, SETUP sent twice
        [incoming] = w["b"].incoming()                             # the repeated SETUP is the same call
        end_b = w["b"].ended(incoming)
        assert end_b is not None and end_b.cause == 102 and end_b.msg.msg_type == RELEASE_COMPLETE  # type: ignore[union-attr]
        await until(lambda: not w.sw.ports["a"].sig.calls, 5)
        assert_idle(w.sw)
        assert w.sw.stats()["refused_by_cause"] == {18: 1}
        # the caller gives up first: the called leg is released with the caller's cause
        call = w["a"].call(aesa("b", sel=SEL_SILENT))
        await until(lambda: len(w["b"].incoming()) == 2, 5)
        w["a"].sig.release(call, 31)
        await until(lambda: w["b"].ended(w["b"].incoming()[1]) is not None, 5)
        assert w["b"].ended(w["b"].incoming()[1]).cause == 31                      # type: ignore[union-attr]
        await until(lambda: not w.sw.ports["b"].sig.calls, 5)
        assert_idle(w.sw)
        assert w.sw.stats()["calls_abandoned"] == 1
        # the called port goes away during set-up: 41 (temporary failure); then it is absent: 27
        call = w["a"].call(aesa("b", sel=SEL_SILENT))
        await until(lambda: len(w["b"].incoming()) == 3, 5)
        w.sw.remove_port("b")
        await until(lambda: w["a"].ended(call) is not None, 5)
        assert w["a"].ended(call).cause == 41                                      # type: ignore[union-attr]
        call = w["a"].call(aesa("b"))
        await until(lambda: w["a"].ended(call) is not None, 5)
        assert w["a"].ended(call).cause == 27                                      # type: ignore[union-attr]
        await until(lambda: not w.sw.ports["a"].sig.calls, 5)
        assert_idle(w.sw)


async def test_release_collision_on_one_leg(autojump_clock: trio.testing.MockClock) -> None:
    # both users clear at the same instant: the switch's RELEASE toward one of them (for the
    # other's RELEASE) crosses that user's own RELEASE -- Q.2931 §5.4.5 on that leg
    async with world(latency=0.002) as w:
        call, incoming = await connected(w, "a", "b")
        w["a"].sig.release(call)
        w["b"].sig.release(incoming)
        await until(lambda: w["a"].ended(call) is not None and w["b"].ended(incoming) is not None, 5)
        ends = [w["a"].ended(call), w["b"].ended(incoming)]
        assert all(e is not None and e.kind == CallEv.RELEASE_CONF for e in ends)
        # one user got RELEASE COMPLETE, the other a RELEASE (the collision)
        assert sorted(e.msg.msg_type for e in ends) == sorted([RELEASE, RELEASE_COMPLETE])  # type: ignore[union-attr]
        await until(lambda: all(not p.sig.calls for p in w.sw.ports.values()), 5)
        assert_idle(w.sw)


async def test_restart_of_a_vc_and_of_the_interface(autojump_clock: trio.testing.MockClock) -> None:
    async with world() as w:
        call, incoming = await connected(w, "a", "b")
        w["b"].sig.restart(ConnectionId(*incoming.vc))            # type: ignore[misc]
        await until(lambda: w["a"].ended(call) is not None, 5)
        end = w["a"].ended(call)
        assert end is not None and (end.kind, end.cause) == (CallEv.RELEASE_IND, 41)   # temporary failure
        await until(lambda: any(e.kind == CallEv.RESTART_CONF for e in w["b"].events), 5)
        await until(lambda: not w.sw.ports["a"].sig.calls, 5)
        assert_idle(w.sw)
        # the calling user restarts its whole interface: its two calls go, the far legs too
        calls = [await connected(w, "a", "b", esi=i) for i in (1, 2)]
        w["a"].sig.restart()
        await until(lambda: all(w["b"].ended(inc) is not None for _, inc in calls), 5)
        assert [w["b"].ended(inc).cause for _, inc in calls] == [41, 41]                # type: ignore[union-attr]
        await until(lambda: not w.sw.ports["b"].sig.calls, 5)
        assert_idle(w.sw)


async def test_saal_loss_t309(autojump_clock: trio.testing.MockClock) -> None:
    async with world(faulty="b") as w:
        cut = w.faults["b"].p
        # cut b's line for 12 s: SSCOP gives the link up (NO-RESPONSE, 7 s), T309 (10 s)
        # runs, the line is back before it expires: the call survives (and is audited)
        call, incoming = await connected(w, "a", "b")
        seen = len(w.sw_events)
        cut["drop"] = 1.0
        await trio.sleep(12)
        cut["drop"] = 0.0
        await until(lambda: w.sw.ports["b"].link_up and w["b"].sig.link_up, 10)
        await trio.sleep(15)
        kinds = [ev.kind for _, p, ev in w.sw_events[seen:] if p == "b"]
        assert kinds[0] == CallEv.LINK_DOWN and CallEv.LINK_UP in kinds
        assert CallEv.STATUS_IND in kinds[kinds.index(CallEv.LINK_UP):]     # the audit (Q.2931 §5.6.11)
        assert call.state == incoming.state == CS_ACTIVE and w.sw.core.active_calls == 1
        await exchange(w, "a", call.vc, "b", incoming.vc)         # type: ignore[arg-type]
        # cut it for good: T309 expires at the switch, which clears the caller with 27
        cut["drop"] = 1.0
        seen = len(w.sw_events)
        await until(lambda: w["a"].ended(call) is not None, 40)
        end = w["a"].ended(call)
        assert end is not None and (end.kind, end.cause) == (CallEv.RELEASE_IND, 27)
        b_events = [(t, ev) for t, p, ev in w.sw_events[seen:] if p == "b"]
        down = next(t for t, ev in b_events if ev.kind == CallEv.LINK_DOWN)
        t_rel, rel = next((t, ev) for t, ev in b_events if ev.kind == CallEv.RELEASE_IND)
        assert rel.cause == 27 and abs(t_rel - down - 10.0) < 0.01                 # T309
        await until(lambda: not w.sw.ports["a"].sig.calls, 5)
        assert_idle(w.sw)


async def test_pvc_cross_connect(autojump_clock: trio.testing.MockClock) -> None:
    async with world() as w:
        w.sw.add_pvc(("a", 0, 32), ("b", 0, 200))
        await exchange(w, "a", (0, 32), "b", (0, 200))
        assert w.sw.stats()["pvcs"] == ["a:0/32 <-> b:0/200"]
        # an end-to-end F5 loopback (PTI 5) crosses the switch and b's adapter answers it
        tag = w["a"].ndd.send_oam_loopback(0, 32)
        await until(lambda: (0, 32, tag) in w["a"].ndd.oam_replies, 5)
        assert w["b"].ndd.atm_stats.oam_loopbacks_answered == 1
        assert w.sw.ports["a"].ndd.atm_stats.oam_loopbacks_answered == 0
        # a switched call never gets a PVC's VCI (32 would be a's first)
        call, _ = await connected(w, "a", "b")
        assert call.vc == (0, 33)
        w.sw.remove_pvc(("b", 0, 200))
        before = w.sw.ports["a"].ndd.atm_stats.unknown_vc
        w["a"].send((0, 32), b"into the void")
        await until(lambda: w.sw.ports["a"].ndd.atm_stats.unknown_vc > before, 5)
        assert w.sw.core.pvcs == {} and w["b"].got[(0, 200)][-1] != b"into the void"


# --- captures -----------------------------------------------------------------------------------
def _tshark(path: Path) -> list[str]:
    out = subprocess.run(["tshark", "-r", str(path), "-V"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # (Wireshark 4.0's traffic descriptor loop reads one identifier past the IE -- `while
    # (len >= 0)` -- and warns "Unknown ATM traffic descriptor element": a warning, not an error)
    assert "Malformed" not in out.stdout and "Expert Info (Error" not in out.stdout
    return re.split(r"^Frame \d+:", out.stdout, flags=re.M)[1:]


async def test_pcaps_per_port_decode_as_sscop_and_q2931(tmp_path: Path,
                                                        autojump_clock: trio.testing.MockClock) -> None:
    require_tool("tshark")
    async with world(pcap_dir=tmp_path) as w:
        call, incoming = await connected(w, "a", "b")
        w["a"].sig.release(call)
        await until(lambda: w["b"].ended(incoming) is not None and not w.sw.ports["b"].sig.calls, 5)
        await trio.sleep(0.1)
        vci_a, vci_b = call.vc[1], incoming.vc[1]                  # type: ignore[index]
    for port, vci, want in (("a", vci_a, ["SETUP", "CALL PROCEEDING", "CONNECT", "CONNECT ACKNOWLEDGE",
                                           "RELEASE", "RELEASE COMPLETE"]),
                            ("b", vci_b, ["SETUP", "CONNECT", "CONNECT ACKNOWLEDGE", "RELEASE",
                                          "RELEASE COMPLETE"])):
        frames = _tshark(tmp_path / f"{port}.pcap")
        assert any("PDU Type: Begin" in f for f in frames) and all("SSCOP" in f for f in frames)
        q = [f for f in frames if "Message type:" in f]
        names = [re.search(r"Message type: ([A-Z ]+?) \(0x", f).group(1) for f in q]   # type: ignore[union-attr]
        assert names == want, (port, names)
        setup = q[0]
        assert "Called party number" in setup and f"High Order DSP: {PREFIX['b'][6:]}" in setup
        assert "End System Identifier: 000000000001" in setup
        assert f"High Order DSP: {PREFIX['a'][6:]}" in setup                     # the calling number
        with_vc = q[1] if port == "a" else q[0]                  # CALL PROCEEDING to a / SETUP to b
        assert "Connection identifier" in with_vc and re.search(rf"VCI: {vci}\n", with_vc), (port, with_vc)
        assert "Cause value: Normal call clearing (0x10)" in q[names.index("RELEASE")]


async def test_refused_and_unanswered_flows_decode_in_tshark(tmp_path: Path,
                                                              autojump_clock: trio.testing.MockClock) -> None:
    """Every failing flow's signalling, as the switch's ports captured it, decodes as SSCOP +
    Q.2931 with the right message types and cause values and nothing malformed."""
    require_tool("tshark")
    async with world(pcap_dir=tmp_path) as w:
        a = w["a"]
        for called in (bytes.fromhex("39" + "11" * 19), aesa("b", sel=SEL_BUSY),
                       aesa("b", sel=SEL_NO_LISTENER), aesa("b", sel=SEL_SILENT)):
            call = a.call(called)
            await until(lambda call=call: a.ended(call) is not None, 30)
        await until(lambda: not w.sw.core.connections and not w.sw.ports["b"].sig.calls, 5)
        await trio.sleep(0.1)

    def flow(port: str) -> list[tuple[str, str]]:
        _tshark(tmp_path / f"{port}.pcap")                     # nothing malformed, no error
        out = subprocess.run(["tshark", "-r", str(tmp_path / f"{port}.pcap"), "-Y", "q2931", "-T", "fields",
                              "-e", "q2931.message_type", "-e", "q2931.cause.value"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        return [(MESSAGE_NAMES[int(t, 16)], str(int(c, 16)) if c else "")
                for t, c in (ln.split("\t") for ln in out.splitlines())]

    assert flow("a") == [("SETUP", ""), ("RELEASE COMPLETE", "3"),                 # no route
                         ("SETUP", ""), ("CALL PROCEEDING", ""), ("RELEASE", "17"), ("RELEASE COMPLETE", ""),
                         ("SETUP", ""), ("CALL PROCEEDING", ""), ("RELEASE", "88"), ("RELEASE COMPLETE", ""),
                         ("SETUP", ""), ("CALL PROCEEDING", ""), ("RELEASE", "18"), ("RELEASE COMPLETE", "")]
    assert flow("b") == [("SETUP", ""), ("RELEASE COMPLETE", "17"),
                         ("SETUP", ""), ("RELEASE COMPLETE", "88"),
                         ("SETUP", ""), ("SETUP", ""), ("RELEASE COMPLETE", "102")]   # T303 twice


# --- the command line: the switch in its own process --------------------------------------------
TUNSTACK = [sys.executable, "-m", "tools.cli.main"]
ROOT = Path(__file__).resolve().parents[2]


async def test_cli_help() -> None:
    r = await trio.run_process([*TUNSTACK, "atm", "switch", "--help"], capture_stdout=True, cwd=ROOT)
    out = r.stdout.decode()
    assert "examples:" in out and "--port a=127.0.0.1:7101,prefix=" in out and "--pvc" in out


async def test_cli_switch_process_connects_two_udp_endpoints(tmp_path: Path) -> None:
    proc = await trio.lowlevel.open_process(
        [*TUNSTACK, "atm", "switch", "--port", f"a=127.0.0.1:0,prefix={PREFIX['a']}",
         "--port", f"b=127.0.0.1:0,prefix={PREFIX['b']}", "--pcap-dir", str(tmp_path), "--stats", "-v"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    try:
        buf = b""
        with trio.fail_after(15):
            while b"\n" not in buf:
                chunk = await proc.stdout.receive_some()        # type: ignore[union-attr]
                assert chunk, "exited before ready"
                buf += chunk
        ready = buf.split(b"\n", 1)[0].decode()
        ports = dict(re.findall(r"port\.(\w+)=127\.0\.0\.1:(\d+)", ready))
        assert ready.startswith("ready: switch=atmsw") and set(ports) == {"a", "b"}
        users: dict[str, User] = {}
        async with Stack("ua", StackConfig(seed=1, loopback=False)) as sa, \
                Stack("ub", StackConfig(seed=2, loopback=False)) as sb:
            for name, st in (("a", sa), ("b", sb)):
                ndd = AtmNdd("atm0", UdpPhy(("127.0.0.1", 0), ("127.0.0.1", int(ports[name]))))
                st.ns.ns_attach(ndd)
                st.ns.ns_alloc("atm0")
                u = users[name] = User(name, st, ndd, ndd)
                u.sig = UniEndpoint.on_stack(st, ndd, side=Side.USER, on_event=u.on_event)
            w = World(None, users, {}, [])                       # type: ignore[arg-type]
            await until(lambda: all(u.sig.link_up for u in users.values()), 10)
            call, incoming = await connected(w, "a", "b")
            await exchange(w, "a", call.vc, "b", incoming.vc)  # type: ignore[arg-type]
            users["a"].sig.release(call)
            await until(lambda: users["b"].ended(incoming) is not None, 5)
            for u in users.values():
                u.sig.close()
                u.ndd.phy.shutdown()                             # type: ignore[attr-defined]
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            rc = await proc.wait()
        err = b""
        while chunk := await proc.stderr.receive_some():        # type: ignore[union-attr]
            err += chunk
        assert rc == 128 + signal.SIGTERM, err
        text = err.decode()
        assert "SIGTERM: shutting down" in text and "Traceback" not in text
        assert "call 1: a:0/32 <-> b:0/32 connected" in text
        stats = json.loads(text[text.index("{"):])
        assert (stats["calls_connected"], stats["calls_cleared"]) == (1, 1)
        assert stats["cells_relayed"] == 2 * sum(-(-(n + 8) // 48) for n in SDU_SIZES)
        assert (tmp_path / "a.pcap").stat().st_size > 24 and (tmp_path / "b.pcap").stat().st_size > 24
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
