"""Every timer loop makes progress whatever the float arithmetic does (issue 10 point 1).

The bug: a keepalive due exactly at `now` with last_rcv = 7577.55 and keepidle = 7200 sees
`now - last_rcv` = 7199.999999999999 < keepidle, returned without acting and was re-armed at
`now`, so `Tcp.poll`'s heap loop spun forever.  The tests below use those exact floats with
an explicit clock; a loop that stops progressing fails on an iteration budget, never hangs.
Then a property per timer owner: after `poll(now)` its `poll_at()` is None or > now.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.atm import aal5
from ndd.pktbuf import PacketBuffer
from protocols.arp import ArpCache, ArpConfig
from protocols.atm.clip.atmarp import request
from protocols.atm.clip.atmarp_server import AtmArpServer
from protocols.atm.clip.link import AtmArpTable, ClipConfig, ClipStats
from protocols.atm.clip.svc import ClipSvc, SvcVc
from protocols.atm.saal.sscf import AalEv, AalEvent
from protocols.atm.saal.sscop import Sscop, SscopConfig
from protocols.atm.uni.control import Side, Uni
from protocols.ipfrag import Reassembler
from protocols.tcp.conn import Connection, State
from protocols.tcp.timer import TIMER_TICK
from protocols.tcp.wire import ACK, SYN

from .test_atmarp import AESA_A, AESA_B, IP_A, IP_B
from .test_tcp_conn import ISS, Rig, established
from .test_tcp_listen import ISN_PEER, PEER_PORT, Net
from .test_uni import setup_ies

LAST_RCV, KEEPIDLE = 7577.55, 7200.0
DUE = LAST_RCV + KEEPIDLE                       # 14777.55, and DUE - LAST_RCV < KEEPIDLE
assert DUE - LAST_RCV < KEEPIDLE                # the float rounding the bug needs


def idle_keepalive(rig: Rig, last_rcv: float, keepidle: float, keepintvl: float = 75.0, keepcnt: int = 9) -> None:
    c = rig.conn
    c.keepalive = True
    c.keepidle, c.keepintvl, c.keepcnt = keepidle, keepintvl, keepcnt
    c.last_rcv = last_rcv
    c.keep_at = None
    c.keep_probes = 0
    rig.now = last_rcv
    c.arm_keepalive(last_rcv)


# --- the connection's own timers ------------------------------------------------------------------
def test_keepalive_due_by_a_rounding_hair_probes_and_rearms_later() -> None:
    """The exact floats of the report: the probe goes at DUE and the next deadline is
    strictly later (before the fix: no probe, keep_at == now, forever)."""
    rig = established(ts=False)
    idle_keepalive(rig, LAST_RCV, KEEPIDLE)
    c = rig.conn
    assert c.keep_at == DUE
    out = rig.poll(DUE)
    assert [(s.flags, s.seq) for s in out] == [(ACK, ISS)]        # the probe <SEQ=SND.NXT-1>
    assert c.keep_probes == 1
    at = c.poll_at()
    assert at is not None and at > DUE and at == pytest.approx(DUE + c.keepintvl)


def test_keepalive_more_than_a_tick_early_rearms_for_the_rest() -> None:
    """Traffic arrived since the timer was armed: it waits out the rest of keepidle (Linux
    tcp_keepalive_timer) -- strictly after now, no probe."""
    rig = established(ts=False)
    idle_keepalive(rig, LAST_RCV, KEEPIDLE)
    c = rig.conn
    c.last_rcv = LAST_RCV + 5 * TIMER_TICK                        # an ACK came in a little later
    assert rig.poll(DUE) == []
    at = c.poll_at()
    assert at is not None and at > DUE and at == pytest.approx(c.last_rcv + KEEPIDLE)
    out = rig.poll(at)                                            # and then it probes
    assert [s.flags for s in out] == [ACK] and c.keep_probes == 1


@settings(max_examples=300, deadline=None)
@given(last_rcv=st.floats(0.0, 1e7, allow_nan=False), keepidle=st.integers(1, 32767),
       keepintvl=st.integers(1, 32767), keepcnt=st.integers(1, 9),
       late=st.floats(0.0, 2.0))
def test_keepalive_always_progresses_to_the_drop(last_rcv: float, keepidle: int, keepintvl: int, keepcnt: int,
                                                   late: float) -> None:
    """Any float times, polled exactly at each deadline (as MockClock does) or a little late:
    every poll leaves the next deadline after now, and an unanswered keepalive ends in
    keepcnt probes then ETIMEDOUT -- a bounded number of polls."""
    rig = established(ts=False)
    idle_keepalive(rig, last_rcv, float(keepidle), float(keepintvl), keepcnt)
    c = rig.conn
    probes = polls = 0
    while c.state == State.ESTABLISHED:
        at = c.poll_at()
        assert at is not None
        now = max(at, rig.now) + (late if polls == 1 else 0.0)
        out = rig.poll(now)
        probes += sum(1 for s in out if s.flags == ACK)
        polls += 1
        nxt = c.poll_at()
        assert nxt is None or nxt > now
        assert polls <= keepcnt + 2
    assert probes == keepcnt and c.so_error != 0


# --- Tcp.poll: the heap loop ------------------------------------------------------------------------
def established_child(net: Net) -> Connection:
    net.listener()
    ((synack, _),) = net.rx(SYN, ISN_PEER)
    net.rx(ACK, ISN_PEER + 1, synack.seq + 1)
    (child,) = [c for c in net.tcp.conns.values() if c.fport == PEER_PORT]
    assert child.state == State.ESTABLISHED
    return child


def budgeted_polls(monkeypatch: pytest.MonkeyPatch, budget: int = 100) -> list[float]:
    """Count Connection.poll calls; past `budget` the test fails instead of hanging."""
    calls: list[float] = []
    real = Connection.poll

    def counting(self: Connection, now: float) -> None:
        calls.append(now)
        if len(calls) > budget:
            raise AssertionError("a timer loop is spinning")
        real(self, now)

    monkeypatch.setattr(Connection, "poll", counting)
    return calls


def test_tcp_poll_with_the_reported_floats_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    net = Net()
    child = established_child(net)
    child.keepalive, child.keepidle, child.last_rcv, child.keep_at = True, KEEPIDLE, LAST_RCV, None
    net.now = LAST_RCV
    child.arm_keepalive(LAST_RCV)
    net.tcp.schedule(child)
    net.take()
    calls = budgeted_polls(monkeypatch)
    out = net.poll(DUE)
    assert calls == [DUE]                                    # handled once
    assert [seg.flags for seg, _ in out] == [ACK]            # the probe
    head = net.tcp.poll_at()
    assert head is not None and head > DUE
    assert net.tcp.stats.timer_deferrals == 0


def test_tcp_poll_handles_each_connection_once_and_defers_a_stuck_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Structural guard: a handler that makes no progress (simulated: keepalive handling
    does nothing) costs one poll per call, the entry goes one tick past now, counted."""
    net = Net()
    child = established_child(net)
    child.keepalive, child.keepidle = True, 10.0
    child.keep_at = None
    child.arm_keepalive(net.now)
    net.tcp.schedule(child)
    monkeypatch.setattr(Connection, "_on_keepalive", lambda self, now: None)
    calls = budgeted_polls(monkeypatch)
    due = child.keep_at
    assert due is not None
    net.poll(due)
    assert calls == [due]
    assert net.tcp.stats.timer_deferrals == 1
    head = net.tcp.poll_at()
    assert head == pytest.approx(due + TIMER_TICK) and head > due
    net.poll(head)                                           # still stuck: once more, a tick on
    assert calls == [due, head] and net.tcp.stats.timer_deferrals == 2


# --- every other timer owner: poll(now) leaves poll_at() None or > now --------------------------
def drive(core: Any, start: float, steps: int, between: Callable[[int, float], None] | None = None) -> int:
    """Poll `core` at each of its deadlines (exactly, as MockClock wakes); check progress."""
    now, polls = start, 0
    for i in range(steps):
        at = core.poll_at()
        if at is None or math.isinf(at):
            break
        now = max(now, at)
        core.poll(now)
        polls += 1
        nxt = core.poll_at()
        assert nxt is None or nxt > now, (type(core).__name__, now, nxt)
        if between is not None:
            between(i, now)
    return polls


times = st.floats(0.0, 1e7, allow_nan=False, allow_infinity=False)


@settings(max_examples=100, deadline=None)
@given(t0=times, gaps=st.lists(st.floats(0.0, 100.0), min_size=1, max_size=8),
       retrans=st.floats(0.001, 5.0), stale=st.floats(0.001, 100.0))
def test_arp_cache_progresses(t0: float, gaps: list[float], retrans: float, stale: float) -> None:
    cache = ArpCache(b"\x02\0\0\0\0\1", lambda: [0x0A000002], lambda dst, data: 0, lambda pkt: None,
                     ArpConfig(retrans_time=retrans, stale_time=stale))
    now = t0
    for i, gap in enumerate(gaps):
        now += gap
        cache.announce(0x0A000002, now)
        cache.resolve(0x0A000010 + i, PacketBuffer.from_payload(b"held"), now)
    assert drive(cache, t0, 200) > 0


@settings(max_examples=100, deadline=None)
@given(t0=times, gaps=st.lists(st.floats(0.0, 100.0), min_size=1, max_size=8), timeout=st.floats(0.001, 60.0))
def test_ip_reassembly_progresses(t0: float, gaps: list[float], timeout: float) -> None:
    r = Reassembler(timeout=timeout)
    now = t0
    for i, gap in enumerate(gaps):
        now += gap
        r.add((1, 2, 17, i), b"H" * 20, 0, b"x" * 16, True, now)
    assert drive(r, t0, 100) >= 1 and r.poll_at() is None


@settings(max_examples=100, deadline=None)
@given(t0=times, gaps=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=8), timeout=st.floats(0.001, 60.0))
def test_aal5_reassembly_progresses(t0: float, gaps: list[float], timeout: float) -> None:
    r = aal5.Reassembler(timeout=timeout)
    now = t0
    for i, gap in enumerate(gaps):
        now += gap
        r.feed(0, 32 + i, 0, bytes(48), now)                     # a first cell, not the last
    drive(r, t0, 100)
    assert r.poll_at() is None


@settings(max_examples=50, deadline=None)
@given(t0=times, cc=st.floats(0.001, 5.0), poll=st.floats(0.001, 5.0), keep=st.floats(0.001, 5.0))
def test_sscop_progresses(t0: float, cc: float, poll: float, keep: float) -> None:
    """An SSCOP connecting to a silent peer (Timer_CC retries, then gives up) and one in
    data transfer with a silent peer (POLL/keepalive/no-response)."""
    cfg = SscopConfig(timer_cc=cc, timer_poll=poll, timer_keepalive=keep, timer_noresp=max(poll, keep) * 3,
                      timer_idle=keep * 2)
    a = Sscop(cfg)
    a.establish(b"", t0)
    drive(a, t0, 50)
    assert a.poll_at() is None
    b, c = Sscop(cfg), Sscop(cfg)
    b.establish(b"", t0)
    for pdu in b.take_output():
        c.receive(pdu, t0)
    c.accept(b"", t0)
    for pdu in c.take_output():
        b.receive(pdu, t0)
    b.send(b"data", t0)
    drive(b, t0, 200)


@settings(max_examples=50, deadline=None)
@given(t0=times)
def test_q2931_timers_progress(t0: float) -> None:
    """A call placed over a link that never answers: T303 twice, then cleared -- each
    expiry advances or removes its timer."""
    u = Uni(Side.USER)
    u.aal_event(_link_up(), t0)
    _place_call(u, t0)
    drive(u, t0, 50)
    assert u.poll_at() is None


def _link_up() -> AalEvent:
    return AalEvent(AalEv.ESTABLISH_CONF)


def _place_call(u: Uni, now: float) -> None:
    u.setup(setup_ies(), now)


# --- CLIP over SVCs: the idle timer had the keepalive's pattern ----------------------------------
def clip_svc_with_open_vc(opened_at: float, idle: float) -> tuple[ClipSvc, list[SvcVc], list[SvcVc]]:
    calls: list[SvcVc] = []
    released: list[SvcVc] = []
    core = ClipSvc(AESA_A, lambda: [IP_A], lambda ip: IP_A, ClipStats(), ClipConfig(svc_idle_timeout=idle),
                   transmit=lambda vc, data: 0, transmit_ip=lambda pkt, vc: 0, unreachable=lambda pkt: None)
    core.call = lambda vc: calls.append(vc) or 0
    core.release = released.append
    core.add_peer(IP_B, AESA_B, opened_at)
    core.resolve(IP_B, PacketBuffer.from_payload(b"x" * 20), opened_at)
    core.connected(calls[0], (0, 40), opened_at)
    return core, calls, released


def test_clip_svc_idle_release_at_the_rounded_deadline() -> None:
    """last = 7577.55, idle 1200: at the deadline now - last is 1199.9999999999990 < 1200,
    and the idle check used to do nothing while poll_at() stayed at `now`."""
    core, calls, released = clip_svc_with_open_vc(LAST_RCV, 1200.0)
    at = core.poll_at()
    assert at == LAST_RCV + 1200.0 and at - LAST_RCV < 1200.0
    core.poll(at)
    assert released == [calls[0]] and core.stats.calls_idle == 1
    nxt = core.poll_at()
    assert nxt is None or nxt > at


@settings(max_examples=100, deadline=None)
@given(t0=times, idle=st.floats(0.001, 5000.0))
def test_clip_svc_progresses(t0: float, idle: float) -> None:
    core, calls, released = clip_svc_with_open_vc(t0, idle)
    drive(core, t0, 20)
    assert released == [calls[0]]


@settings(max_examples=100, deadline=None)
@given(t0=times, lifetime=st.floats(0.001, 5000.0), retrans=st.floats(0.001, 10.0), retries=st.integers(0, 4))
def test_atmarp_server_aging_progresses(t0: float, lifetime: float, retrans: float, retries: int) -> None:
    class Vc:
        open = True

    srv = AtmArpServer(send=lambda vc, arp, now: None, is_open=lambda vc: True, own_ip=lambda: IP_A,
                       aesa=AESA_A, lifetime=lifetime, retrans=retrans, retries=retries)
    srv.input(Vc(), request(IP_B, AESA_B, IP_B), t0)
    drive(srv, t0, retries + 5)
    assert srv.entries == {}


@settings(max_examples=100, deadline=None)
@given(t0=times, retrans=st.floats(0.001, 10.0), slow=st.floats(0.001, 100.0))
def test_clip_pvc_table_progresses(t0: float, retrans: float, slow: float) -> None:
    """A PVC whose far end never answers InATMARP, and a packet held for an unknown next hop."""
    table = AtmArpTable(lambda: [IP_A], lambda vpi, vci, data: 0, lambda pkt, vpi, vci: 0, lambda pkt: None,
                        ClipConfig(retrans_time=retrans, slow_retry=slow))
    table.add_pvc(0, 40, None, t0)
    table.resolve(IP_B, PacketBuffer.from_payload(b"x" * 20), t0)
    assert drive(table, t0, 30) == 30                        # resolving for ever, always later


def test_one_tick_defined_below_the_stack() -> None:
    """The tick is defined once, in the protocol layer (protocols/timing.py); the TCP core and
    the Stack's TimerService use that same object -- and the definition imports nothing from
    `stack` (layering: ndd, then protocols and drivers, then stack)."""
    import ast
    import inspect

    import protocols.timing
    from stack import timers

    assert timers.TICK is protocols.timing.TICK and TIMER_TICK is protocols.timing.TICK
    assert "TICK =" not in inspect.getsource(timers)
    tree = ast.parse(inspect.getsource(protocols.timing))
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + \
        [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not any(m and m.split(".")[0] == "stack" for m in imported)
