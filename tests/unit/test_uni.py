"""Q.2931 / UNI 3.1 call control (protocols/atm/uni/control.py, call.py), case by case.

A user-side and a network-side `Uni` face each other over a fake signalling link with an
explicit clock: every message either end sends is parsed and kept (`Pair.sent`), then
queued toward the other end, where it can be dropped, delivered one at a time or all at
once.  Hand-built messages (or raw bytes) can be injected into either end, and what an
end answers can be taken off the wire before the other end sees it (`Pair.out`).
"""
from __future__ import annotations

from collections import deque

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.atm.saal.sscf import AalEv, AalEvent
from protocols.atm.uni.call import CallEv, Side, UniConfig, Why, states_compatible
from protocols.atm.uni.control import Uni
from protocols.atm.uni.q2931 import (
    ALERTING,
    CALL_PROCEEDING,
    CALLREF_MAX,
    COMPAT_EXT,
    COMPAT_FLAG,
    CONNECT,
    CONNECT_ACK,
    CS_ACTIVE,
    CS_CALL_DELIVERED,
    CS_CALL_INITIATED,
    CS_CALL_PRESENT,
    CS_CALL_RECEIVED,
    CS_CONNECT_REQUEST,
    CS_INCOMING_PROCEEDING,
    CS_NULL,
    CS_OUTGOING_PROCEEDING,
    CS_RELEASE_INDICATION,
    CS_RELEASE_REQUEST,
    CS_REST1,
    CS_REST2,
    GLOBAL_CALLREF,
    IE_ACT_CLEAR,
    IE_ACT_DISCARD,
    IE_ACT_DISCARD_MSG,
    IE_ACT_DISCARD_MSG_REPORT,
    IE_ACT_DISCARD_REPORT,
    IE_CALL_STATE,
    IE_CALLED,
    IE_CAUSE,
    IE_CONN_ID,
    IE_QOS,
    IE_RESTART,
    IE_TRAFFIC,
    LOC_PRIVATE_LOCAL,
    LOC_USER,
    MSG_ACT_CLEAR,
    MSG_ACT_DISCARD,
    MSG_ACT_DISCARD_REPORT,
    MSG_COMPAT_DEFAULT,
    MSG_COMPAT_FLAG,
    RELEASE,
    RELEASE_COMPLETE,
    RESTART,
    RESTART_ACK,
    RESTART_ALL,
    RESTART_VC,
    SETUP,
    STATUS,
    STATUS_ENQUIRY,
    BearerCapability,
    CalledNumber,
    CallState,
    Cause,
    ConnectionId,
    Q2931Message,
    QosParameter,
    RestartIndicator,
    TrafficDescriptor,
    UnknownIE,
    parse_message,
)

U, N = 0, 1                       # the user end and the network end of a Pair
TERMINAL = (CallEv.RELEASE_IND, CallEv.RELEASE_CONF)
LINK_EVENTS = (CallEv.LINK_UP, CallEv.LINK_DOWN)
UNKNOWN_MSG = 0x3F                # not a Q.2931 message type
UNKNOWN_IE = 0x7E                 # not a Q.2931 IE identifier


def setup_ies() -> list:
    """The SETUP's mandatory IEs (q2931.MANDATORY_IES), the called party an AESA."""
    return [TrafficDescriptor(fwd_pcr_01=1000, bwd_pcr_01=1000), BearerCapability(),
            CalledNumber(b"\x47" + bytes(19)), QosParameter()]


def cid(vci: int = 40, vpi: int = 0) -> ConnectionId:
    return ConnectionId(vpi, vci)


def unknown_ie(action: int | None = None, ie_id: int = UNKNOWN_IE) -> UnknownIE:
    """An IE we do not know; `action` set means "follow the explicit instruction"."""
    compat = COMPAT_EXT if action is None else COMPAT_EXT | COMPAT_FLAG | action
    return UnknownIE(ie_id, b"\x01\x02", compat=compat)


def msg_compat(action: int | None) -> int:
    return MSG_COMPAT_DEFAULT if action is None else MSG_COMPAT_DEFAULT | MSG_COMPAT_FLAG | action


def raw(mtype: int, callref: int, flag: int, body: bytes) -> bytes:
    """A message whose header is sound (its length covers `body`) but whose IE part is
    whatever `body` says."""
    hdr = bytearray(Q2931Message(mtype, callref, flag).emit())
    hdr[7:9] = len(body).to_bytes(2, "big")
    return bytes(hdr) + body


def cause_of(m: Q2931Message) -> int | None:
    c = m.get(IE_CAUSE)
    return c.cause if isinstance(c, Cause) else None


def diag_of(m: Q2931Message) -> bytes:
    c = m.get(IE_CAUSE)
    assert isinstance(c, Cause)
    return c.diagnostics


def state_of(m: Q2931Message) -> int:
    s = m.get(IE_CALL_STATE)
    assert isinstance(s, CallState)
    return s.state


class Pair:
    """A user and a network Uni over a fake SAAL with an explicit clock."""

    def __init__(self, *, ucfg: UniConfig | None = None, ncfg: UniConfig | None = None,
                 up: bool = True, n_auto_ack: bool = True, u_auto_ack: bool = True) -> None:
        self.ends = (Uni(Side.USER, ucfg, auto_restart_ack=u_auto_ack),
                     Uni(Side.NETWORK, ncfg, auto_restart_ack=n_auto_ack))
        self.now = 0.0
        self.wire: tuple[deque, deque] = (deque(), deque())   # in flight from end i
        self.sent: tuple[list, list] = ([], [])               # every message end i sent
        self.events: tuple[list, list] = ([], [])
        self.saal: tuple[list, list] = ([], [])               # SAAL requests of end i
        self.drop_types: tuple[set, set] = (set(), set())     # types from end i that vanish
        self.drop_next = [0, 0]                               # drop end i's next k messages
        self.link_ok = True                                   # establish requests succeed
        self._asked: set[int] = set()
        if up:
            self.u.establish_link()
            self.run()
            self.take(U), self.take(N)

    @property
    def u(self) -> Uni:
        return self.ends[U]

    @property
    def n(self) -> Uni:
        return self.ends[N]

    # --- moving things -----------------------------------------------------------------
    def _establish(self) -> None:
        for i in sorted(self._asked):
            self.ends[i].aal_event(AalEvent(AalEv.ESTABLISH_CONF), self.now)
            other = self.ends[1 - i]
            if not other.link_up and (1 - i) not in self._asked:
                other.aal_event(AalEvent(AalEv.ESTABLISH_IND), self.now)
        self._asked.clear()

    def collect(self) -> None:
        busy = True
        while busy:
            busy = False
            for i, end in enumerate(self.ends):
                self.events[i].extend(end.take_events())
                for act in end.take_actions():
                    busy = True
                    if act[0] == "data":
                        m = parse_message(act[1])
                        assert isinstance(m, Q2931Message), m
                        self.sent[i].append(m)
                        if self.drop_next[i] > 0:
                            self.drop_next[i] -= 1
                        elif m.msg_type not in self.drop_types[i]:
                            self.wire[i].append(act[1])
                    else:
                        self.saal[i].append(act[0])
                        if act[0] == "establish":
                            self._asked.add(i)
            if self._asked and self.link_ok:
                self._establish()
                busy = True

    def deliver(self, i: int) -> bool:
        """One message from end i to the other end, if any is in flight."""
        self.collect()
        if not self.wire[i]:
            return False
        self.ends[1 - i].receive(self.wire[i].popleft(), self.now)
        self.collect()
        return True

    def run(self) -> None:
        """Deliver until nothing is in flight (no time passes)."""
        self.collect()
        while self.wire[U] or self.wire[N]:
            for i in (U, N):
                self.deliver(i)

    def advance(self, dt: float) -> None:
        """Let `dt` seconds pass, firing timers on the way (messages take no time)."""
        until = self.now + dt
        while True:
            self.run()
            ats = [a for e in self.ends if (a := e.poll_at()) is not None]
            nxt = min(ats, default=None)
            if nxt is None or nxt > until:
                break
            self.now = max(self.now, nxt)
            for e in self.ends:
                if (a := e.poll_at()) is not None and a <= self.now:
                    e.poll(self.now)
        self.now = until
        self.run()

    def inject(self, i: int, m: Q2931Message | bytes) -> None:
        """Hand a message to end i as if the other end had sent it."""
        self.ends[i].receive(m if isinstance(m, bytes) else m.emit(), self.now)
        self.collect()

    def out(self, i: int) -> list[Q2931Message]:
        """Take what end i has in flight off the wire (the other end never sees it)."""
        self.collect()
        got = [parse_message(b) for b in self.wire[i]]
        self.wire[i].clear()
        return got  # type: ignore[return-value]

    def link_down(self) -> None:
        """The SAAL fails under both ends; what was in flight is lost."""
        self.link_ok = False
        for w in self.wire:
            w.clear()
        for e in self.ends:
            e.aal_event(AalEvent(AalEv.RELEASE_IND, source="sscop"), self.now)
        self.collect()

    def link_back(self) -> None:
        self.link_ok = True
        if not self._asked:
            for i, e in enumerate(self.ends):
                if not e.link_up:
                    self._asked.add(i)
        self.collect()
        self.run()

    # --- looking -----------------------------------------------------------------------
    def take(self, i: int) -> list:
        self.collect()
        ev = [e for e in self.events[i] if e.kind not in LINK_EVENTS]
        self.events[i].clear()
        return ev

    def kinds(self, i: int) -> list[CallEv]:
        self.collect()
        return [e.kind for e in self.events[i] if e.kind not in LINK_EVENTS]

    def types(self, i: int) -> list[int]:
        self.collect()
        return [m.msg_type for m in self.sent[i]]

    def last(self, i: int, mtype: int) -> Q2931Message:
        return [m for m in self.sent[i] if m.msg_type == mtype][-1]

    def forget(self) -> None:
        for i in (U, N):
            self.sent[i].clear()
            self.events[i].clear()

    # --- canned calls ------------------------------------------------------------------
    def offer(self, i: int = U, conn_id: ConnectionId | None = None):
        """End i sends SETUP; returns (caller's call, callee's call)."""
        kw = {"conn_id": conn_id or cid()} if i == N else {}
        c = self.ends[i].setup(setup_ies(), self.now, **kw)
        self.run()
        ev = [e for e in self.events[1 - i] if e.kind == CallEv.SETUP_IND]
        assert ev, self.events[1 - i]
        return c, ev[-1].call

    def active(self, vci: int = 40):
        """A user-originated call, answered by the network: (user call, network call)."""
        uc, nc = self.offer(U)
        self.n.connect(nc, self.now, conn_id=cid(vci))
        self.run()
        assert uc.state == nc.state == CS_ACTIVE
        self.forget()
        return uc, nc

    def active_in(self, vci: int = 50):
        """A network-originated call, answered by the user: (user call, network call)."""
        nc, uc = self.offer(N, cid(vci))
        self.u.connect(uc, self.now)
        self.run()
        assert uc.state == nc.state == CS_ACTIVE
        self.forget()
        return uc, nc


# ======================================================================================
# Call establishment (Q.2931 §5.1 user side, §5.2 network side)
# ======================================================================================
def test_user_originated_u0_u1_u3_u4_u10() -> None:
    p = Pair()
    uc = p.u.setup(setup_ies(), 0.0)
    assert uc.state == CS_CALL_INITIATED and uc.ours and uc.callref == 1
    assert "t303" in uc.timers
    p.run()
    s = p.last(U, SETUP)
    assert s.flag == 0 and s.callref == uc.callref
    (ind,) = p.take(N)
    assert ind.kind == CallEv.SETUP_IND and ind.msg.msg_type == SETUP
    nc = ind.call
    assert nc.state == CS_CALL_INITIATED and not nc.ours                      # N1

    p.n.proceeding(nc, p.now, cid(40))
    p.run()
    assert nc.state == CS_OUTGOING_PROCEEDING                                 # N3
    assert uc.state == CS_OUTGOING_PROCEEDING                                 # U3
    assert "t303" not in uc.timers and "t310" in uc.timers
    assert uc.vc == (0, 40)
    (ev,) = p.take(U)
    assert ev.kind == CallEv.PROCEEDING_IND and ev.call is uc

    p.n.alerting(nc, p.now)
    p.run()
    assert nc.state == uc.state == CS_CALL_DELIVERED                         # N4, U4
    assert "t310" not in uc.timers
    assert [e.kind for e in p.take(U)] == [CallEv.ALERTING_IND]

    p.n.connect(nc, p.now)
    p.run()
    assert nc.state == uc.state == CS_ACTIVE                                  # N10, U10
    assert [e.kind for e in p.take(U)] == [CallEv.SETUP_CONF]
    assert p.types(U) == [SETUP, CONNECT_ACK]                                 # U10: ACK sent
    assert p.types(N) == [CALL_PROCEEDING, ALERTING, CONNECT]
    assert p.take(N) == []                            # the late CONNECT ACK is harmless
    assert not uc.timers and not nc.timers and p.u.poll_at() is None


def test_user_originated_u1_straight_to_u10() -> None:
    p = Pair()
    uc, nc = p.offer(U)
    p.n.connect(nc, p.now, conn_id=cid(77))
    p.run()
    assert uc.state == nc.state == CS_ACTIVE and uc.vc == nc.vc == (0, 77)
    assert p.types(U) == [SETUP, CONNECT_ACK]
    assert p.types(N) == [CONNECT]
    assert p.last(N, CONNECT).get(IE_CONN_ID) == cid(77)
    assert not uc.timers


def test_user_incoming_u0_u6_u9_u7_u8_u10() -> None:
    p = Pair()
    nc = p.n.setup(setup_ies(), 0.0, conn_id=cid(60))
    assert nc.state == CS_CALL_PRESENT and "t303" in nc.timers                # N6
    p.run()
    (ind,) = p.take(U)
    uc = ind.call
    assert ind.kind == CallEv.SETUP_IND and uc.state == CS_CALL_PRESENT       # U6
    assert not uc.ours and uc.vc == (0, 60)      # the network's SETUP names the VC

    p.u.proceeding(uc, p.now)
    p.run()
    assert uc.state == CS_INCOMING_PROCEEDING                                 # U9
    assert nc.state == CS_INCOMING_PROCEEDING and "t310" in nc.timers         # N9
    assert "t303" not in nc.timers
    assert p.last(U, CALL_PROCEEDING).get(IE_CONN_ID) is None    # users name no VC

    p.u.alerting(uc, p.now)
    p.run()
    assert uc.state == CS_CALL_RECEIVED and nc.state == CS_CALL_RECEIVED      # U7, N7
    assert "t310" not in nc.timers

    p.u.connect(uc, p.now)
    assert uc.state == CS_CONNECT_REQUEST and "t313" in uc.timers             # U8
    p.deliver(U)                                                              # CONNECT
    assert nc.state == CS_ACTIVE                                              # N8 -> N10
    assert p.types(N)[-1] == CONNECT_ACK                  # the network acknowledges
    assert p.kinds(N)[-1] == CallEv.SETUP_CONF
    p.run()
    assert uc.state == CS_ACTIVE and "t313" not in uc.timers                  # U10
    assert p.kinds(U)[-1] == CallEv.SETUP_COMPLETE_IND
    assert p.types(U) == [CALL_PROCEEDING, ALERTING, CONNECT]
    assert p.types(N) == [SETUP, CONNECT_ACK]


def test_network_incoming_n0_n1_n3_n4_n10() -> None:
    p = Pair()
    uc, nc = p.offer(U)
    assert nc.state == CS_CALL_INITIATED                                      # N1
    p.n.proceeding(nc, p.now, cid(41))
    assert nc.state == CS_OUTGOING_PROCEEDING                                 # N3
    p.n.alerting(nc, p.now)
    assert nc.state == CS_CALL_DELIVERED                                      # N4
    p.n.connect(nc, p.now)
    assert nc.state == CS_ACTIVE and not nc.timers                            # N10
    p.run()
    assert uc.state == CS_ACTIVE


def test_network_outgoing_n6_n9_n7_n10() -> None:
    p = Pair()
    nc, uc = p.offer(N, cid(61))
    assert nc.state == CS_CALL_PRESENT                                        # N6
    p.u.proceeding(uc, p.now)
    p.run()
    assert nc.state == CS_INCOMING_PROCEEDING                                 # N9
    assert p.kinds(N)[-1] == CallEv.PROCEEDING_IND
    p.u.alerting(uc, p.now)
    p.run()
    assert nc.state == CS_CALL_RECEIVED                                       # N7
    assert p.kinds(N)[-1] == CallEv.ALERTING_IND
    p.u.connect(uc, p.now)
    p.run()
    assert nc.state == CS_ACTIVE and uc.state == CS_ACTIVE
    ack = p.last(N, CONNECT_ACK)
    assert ack.flag == 0 and ack.callref == nc.callref


def test_network_first_answer_carries_connection_id_later_ones_not() -> None:
    p = Pair()
    uc, nc = p.offer(U)
    with pytest.raises(OSError) as ei:
        p.n.proceeding(nc, p.now)                 # no VC for the first answer
    assert ei.value.errno == 22
    assert nc.state == CS_CALL_INITIATED and p.types(N) == []
    p.n.proceeding(nc, p.now, cid(42))
    p.n.alerting(nc, p.now)
    p.n.connect(nc, p.now)
    p.run()
    pr, al, co = p.sent[N]
    assert pr.get(IE_CONN_ID) == cid(42)
    assert al.get(IE_CONN_ID) is None and co.get(IE_CONN_ID) is None
    assert uc.vc == (0, 42) and uc.state == CS_ACTIVE


@pytest.mark.parametrize("mtype", [CALL_PROCEEDING, ALERTING, CONNECT])
def test_user_first_answer_without_connection_id_clears_96(mtype: int) -> None:
    p = Pair()
    uc = p.u.setup(setup_ies(), 0.0)
    p.out(U)
    p.inject(U, Q2931Message(mtype, uc.callref, 1))
    (rel,) = p.out(U)
    assert rel.msg_type == RELEASE and cause_of(rel) == 96
    assert diag_of(rel) == bytes((IE_CONN_ID,))
    assert uc.state == CS_RELEASE_REQUEST and "t308" in uc.timers
    (ev,) = p.take(U)
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_IND, 96, Why.PROTOCOL)


def test_call_reference_flag_both_directions() -> None:
    p = Pair()
    # Both ends allocate call reference 1: two different calls, told apart by the flag.
    uc, nc_in = p.offer(U)
    nc, uc_in = p.offer(N, cid(70))
    assert uc.callref == nc.callref == uc_in.callref == nc_in.callref == 1
    assert set(p.u.calls) == {(1, True), (1, False)}
    assert set(p.n.calls) == {(1, True), (1, False)}
    p.n.proceeding(nc_in, p.now, cid(71))
    p.u.proceeding(uc_in, p.now)
    p.run()
    # originator sends flag 0, the other side answers with flag 1 (Q.2931 §4.3)
    assert [(m.msg_type, m.flag) for m in p.sent[U]] == [(SETUP, 0), (CALL_PROCEEDING, 1)]
    assert [(m.msg_type, m.flag) for m in p.sent[N]] == [(SETUP, 0), (CALL_PROCEEDING, 1)]
    assert uc.state == CS_OUTGOING_PROCEEDING and uc_in.state == CS_INCOMING_PROCEEDING
    assert nc.state == CS_INCOMING_PROCEEDING and nc_in.state == CS_OUTGOING_PROCEEDING
    assert uc.vc == (0, 71) and uc_in.vc == (0, 70)


def test_call_reference_allocation_unique_wraps_never_zero() -> None:
    uni = Uni(Side.USER)                        # link down: the SETUPs are only held
    refs = [uni.setup(setup_ies(), 0.0).callref for _ in range(3)]
    assert refs == [1, 2, 3]
    uni._next_ref = CALLREF_MAX - 1
    refs = [uni.setup(setup_ies(), 0.0).callref for _ in range(4)]
    # 2^23-2, 2^23-1, then wrap: never 0 (the global call reference), skip 1-3 in use
    assert refs == [CALLREF_MAX - 1, CALLREF_MAX, 4, 5]
    assert GLOBAL_CALLREF not in {c.callref for c in uni.calls.values()}
    assert len({c.callref for c in uni.calls.values()}) == len(uni.calls) == 7


# ======================================================================================
# Call clearing (§5.4)
# ======================================================================================
def test_release_then_release_complete() -> None:
    p = Pair()
    uc, nc = p.active()
    p.u.release(uc, p.now, cause=16)
    assert uc.state == CS_RELEASE_REQUEST and "t308" in uc.timers            # U11
    p.deliver(U)
    assert p.types(U) == [RELEASE] and cause_of(p.sent[U][0]) == 16
    assert p.sent[U][0].get(IE_CAUSE).location == LOC_USER
    assert p.types(N) == [RELEASE_COMPLETE]            # N12 is left at once
    assert nc.state == CS_NULL and not p.n.calls
    (ev,) = p.take(N)
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_IND, 16, Why.PEER)
    p.run()
    assert uc.state == CS_NULL and not p.u.calls and p.u.poll_at() is None
    (ev,) = p.take(U)
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_CONF, 16, Why.LOCAL)


def test_release_complete_as_first_clearing_message_refuses_setup() -> None:
    p = Pair()
    uc, nc = p.offer(U)
    p.take(U), p.take(N)
    p.n.release(nc, p.now, cause=17)                      # user busy
    assert p.types(N) == [RELEASE_COMPLETE] and cause_of(p.sent[N][0]) == 17
    assert p.sent[N][0].get(IE_CAUSE).location == LOC_PRIVATE_LOCAL     # a private switch
    assert nc.state == CS_NULL and not p.n.calls
    assert [e.kind for e in p.take(N)] == [CallEv.RELEASE_CONF]
    p.run()
    (ev,) = p.take(U)
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_IND, 17, Why.PEER)
    assert not p.u.calls and p.types(U) == [SETUP]        # nothing answers a RELEASE COMPLETE


def test_user_refuses_unanswered_incoming_setup_with_release_complete() -> None:
    p = Pair()
    nc, uc = p.offer(N, cid(60))
    p.take(U), p.take(N)
    p.u.release(uc, p.now, cause=21)
    p.run()
    assert p.types(U) == [RELEASE_COMPLETE] and cause_of(p.sent[U][0]) == 21
    assert [e.kind for e in p.take(U)] == [CallEv.RELEASE_CONF]
    (ev,) = p.take(N)
    assert (ev.kind, ev.cause) == (CallEv.RELEASE_IND, 21)
    assert not p.u.calls and not p.n.calls


def test_release_collision_both_release() -> None:
    p = Pair()
    uc, nc = p.active()
    p.u.release(uc, p.now, cause=16)
    p.n.release(nc, p.now, cause=31)
    p.run()                                  # the RELEASEs cross
    assert p.types(U) == [RELEASE] and p.types(N) == [RELEASE]   # no RELEASE COMPLETE
    assert uc.state == nc.state == CS_NULL and not p.u.calls and not p.n.calls
    assert [e.kind for e in p.take(U)] == [CallEv.RELEASE_CONF]
    assert [e.kind for e in p.take(N)] == [CallEv.RELEASE_CONF]
    assert p.u.poll_at() is None and p.n.poll_at() is None


def test_release_of_a_call_being_cleared_does_nothing() -> None:
    p = Pair()
    uc, nc = p.active()
    p.u.release(uc, p.now)
    p.u.release(uc, p.now)
    assert p.types(U) == [RELEASE]
    p.run()
    p.u.release(uc, p.now)                   # gone: still nothing
    assert p.types(U) == [RELEASE]


def test_t308_resends_the_same_release_then_gives_the_call_reference_up() -> None:
    p = Pair()
    uc, nc = p.active()
    p.drop_types[U].add(RELEASE)             # the network never hears it
    p.u.release(uc, p.now, cause=16, diagnostics=b"\x01\x02")
    p.advance(29.9)
    assert p.types(U) == [RELEASE]
    p.advance(0.2)                           # first expiry: once more (§5.4.3)
    assert p.types(U) == [RELEASE, RELEASE]
    first, second = p.sent[U]
    assert second.emit() == first.emit()     # same cause, same diagnostics
    assert uc.state == CS_RELEASE_REQUEST and p.take(U) == []
    p.advance(30)                            # second expiry: call reference released
    assert uc.state == CS_NULL and not p.u.calls
    (ev,) = p.take(U)
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_CONF, 16, Why.LOCAL)
    assert p.types(U) == [RELEASE, RELEASE] and p.u.poll_at() is None


# ======================================================================================
# Timers
# ======================================================================================
def test_t303_user_setup_once_more_then_release_complete_102() -> None:
    p = Pair()
    p.drop_types[U].add(SETUP)
    uc = p.u.setup(setup_ies(), p.now)
    p.advance(3.9)
    assert p.types(U) == [SETUP]
    p.advance(0.2)
    assert p.types(U) == [SETUP, SETUP] and p.sent[U][0].emit() == p.sent[U][1].emit()
    assert uc.state == CS_CALL_INITIATED and p.take(U) == []
    p.advance(4)
    assert p.types(U) == [SETUP, SETUP, RELEASE_COMPLETE]
    assert cause_of(p.sent[U][2]) == 102
    (ev,) = p.take(U)
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_IND, 102, Why.TIMER)
    assert not p.u.calls and p.u.poll_at() is None
    assert p.u.stats.timer_expiries == 2


def test_t303_network_no_user_responding() -> None:
    p = Pair()
    p.drop_types[N].add(SETUP)
    nc = p.n.setup(setup_ies(), p.now, conn_id=cid(60))
    p.advance(8.1)
    assert p.types(N) == [SETUP, SETUP, RELEASE_COMPLETE]
    assert cause_of(p.sent[N][2]) == 102          # to the called user
    (ev,) = p.take(N)
    # the calling side (the switch's other leg) learns "no user responding"
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_IND, 18, Why.TIMER)
    assert nc.state == CS_NULL and not p.n.calls


def test_t303_stopped_by_the_repeated_setup_being_answered() -> None:
    p = Pair()
    p.drop_next[U] = 1                          # the first SETUP is lost
    uc = p.u.setup(setup_ies(), p.now)
    p.advance(4.1)
    (ind,) = p.take(N)                          # the repeated one gets through
    p.n.proceeding(ind.call, p.now, cid(40))
    p.advance(1)
    assert uc.state == CS_OUTGOING_PROCEEDING and "t303" not in uc.timers


def test_t310_user_clears_102() -> None:
    p = Pair()
    uc, nc = p.offer(U)
    p.n.proceeding(nc, p.now, cid(40))
    p.run()
    p.drop_types[U].add(RELEASE)
    p.advance(9.9)
    assert uc.state == CS_OUTGOING_PROCEEDING
    p.advance(0.2)
    rel = p.last(U, RELEASE)
    assert cause_of(rel) == 102 and uc.state == CS_RELEASE_REQUEST
    ev = p.take(U)[-1]
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_IND, 102, Why.TIMER)


def test_t310_network_no_user_responding() -> None:
    p = Pair()
    nc, uc = p.offer(N, cid(60))
    p.u.proceeding(uc, p.now)
    p.run()
    assert "t310" in nc.timers
    p.take(N)
    p.advance(10.1)
    ev = p.take(N)[-1]
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_IND, 18, Why.TIMER)
    assert RELEASE in p.types(N)
    assert not p.n.calls and not p.u.calls         # the user completed the clearing
    assert p.take(U)[-1].kind == CallEv.RELEASE_IND


def test_t310_not_running_once_alerted() -> None:
    p = Pair()
    uc, nc = p.offer(U)
    p.n.proceeding(nc, p.now, cid(40))
    p.n.alerting(nc, p.now)
    p.advance(60)
    assert uc.state == CS_CALL_DELIVERED and p.u.poll_at() is None


def test_t313_connect_not_acknowledged() -> None:
    p = Pair()
    nc, uc = p.offer(N, cid(60))
    p.drop_types[N].add(CONNECT_ACK)
    p.u.connect(uc, p.now)
    p.advance(3.9)
    assert uc.state == CS_CONNECT_REQUEST
    p.take(U)
    p.advance(0.2)
    rel = p.last(U, RELEASE)
    assert cause_of(rel) == 102
    ev = p.take(U)[0]
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_IND, 102, Why.TIMER)
    p.run()
    assert not p.u.calls and not p.n.calls


def test_t313_stopped_by_connect_ack() -> None:
    p = Pair()
    uc, nc = p.active_in()
    assert not uc.timers and p.u.poll_at() is None


def test_t322_status_enquiry_n322_times_then_clear_41() -> None:
    p = Pair()
    uc, nc = p.active()
    p.drop_types[N].add(STATUS)
    p.u.status_enquiry(uc, p.now)
    p.advance(4.1)
    p.advance(4)
    assert p.types(U) == [STATUS_ENQUIRY] * 3
    assert uc.state == CS_ACTIVE and p.take(U) == []
    p.advance(4)
    assert p.types(U) == [STATUS_ENQUIRY] * 3 + [RELEASE]
    assert cause_of(p.sent[U][-1]) == 41
    (ev,) = p.take(U)
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_IND, 41, Why.TIMER)


def test_t322_stopped_only_by_the_answer_to_the_enquiry() -> None:
    p = Pair()
    uc, nc = p.active()
    p.u.status_enquiry(uc, p.now)
    p.out(U)
    # a STATUS reporting an error (97) is not the answer: T322 keeps running
    p.inject(U, Q2931Message(STATUS, uc.callref, 1, [CallState(CS_ACTIVE), Cause(97)]))
    assert "t322" in uc.timers
    p.inject(U, Q2931Message(STATUS, uc.callref, 1, [CallState(CS_ACTIVE), Cause(30)]))
    assert "t322" not in uc.timers and uc.state == CS_ACTIVE
    assert [e.kind for e in p.take(U)] == [CallEv.STATUS_IND, CallEv.STATUS_IND]


def test_t316_restart_once_more_then_failure() -> None:
    p = Pair()
    p.drop_types[U].add(RESTART)
    p.u.restart(p.now)
    assert p.u.restart_state == CS_REST1
    p.advance(119.9)
    assert p.types(U) == [RESTART]
    p.advance(0.2)
    assert p.types(U) == [RESTART, RESTART] and p.sent[U][0].emit() == p.sent[U][1].emit()
    assert p.take(U) == []
    p.advance(120)
    (ev,) = p.take(U)
    assert (ev.kind, ev.why) == (CallEv.RESTART_FAIL, Why.TIMER)
    assert p.u.restart_state == CS_NULL and p.u.poll_at() is None
    p.u.restart(p.now)                         # free to try again


def test_t317_no_restart_ack_in_time() -> None:
    p = Pair(n_auto_ack=False, ncfg=UniConfig(t317=60.0))
    uc, nc = p.active()
    p.u.restart(p.now)
    p.run()
    assert p.n.restart_state == CS_REST2 and "t317" in p.n._gtimers
    ind = [e for e in p.take(N) if e.kind == CallEv.RESTART_IND]
    assert len(ind) == 1 and ind[0].calls == (nc,)
    p.advance(60.1)
    assert p.take(N)[-1].kind == CallEv.RESTART_FAIL
    assert RESTART_ACK not in p.types(N)
    assert p.n.restart_state == CS_NULL
    p.n.restart_ack()                          # too late: nothing to acknowledge
    assert RESTART_ACK not in p.types(N)


def test_t317_restart_ack_in_time() -> None:
    p = Pair(n_auto_ack=False)
    p.u.restart(p.now)
    p.run()
    p.advance(10)
    p.n.restart_ack()
    p.run()
    assert p.types(N) == [RESTART_ACK] and p.n.restart_state == CS_NULL
    assert p.n.poll_at() is None
    assert p.take(U)[-1].kind == CallEv.RESTART_CONF and p.u.restart_state == CS_NULL


# --- T309: SAAL failure (§5.6.10) -----------------------------------------------------
def test_saal_loss_clears_calls_not_active_keeps_active_ones() -> None:
    p = Pair()
    uc, nc = p.active()
    waiting = p.u.setup(setup_ies(), p.now)
    p.out(U)
    p.take(U)
    p.link_down()
    assert CallEv.LINK_DOWN in [e.kind for e in p.events[U]]
    evs = p.take(U)
    assert [(e.kind, e.call, e.cause, e.why) for e in evs] == [
        (CallEv.RELEASE_IND, waiting, 41, Why.SAAL)]
    assert uc.state == CS_ACTIVE and "t309" in p.u._gtimers
    assert p.saal[U][-1] == "establish"


def test_saal_back_before_t309_keeps_the_call_and_audits_it() -> None:
    p = Pair()
    uc, nc = p.active()
    p.link_down()
    p.advance(9)
    p.link_back()
    assert "t309" not in p.u._gtimers and "t309" not in p.n._gtimers
    # both ends audit their active call with STATUS ENQUIRY; the answers agree
    assert STATUS_ENQUIRY in p.types(U) and STATUS_ENQUIRY in p.types(N)
    st = p.last(N, STATUS)
    assert state_of(st) == CS_ACTIVE and cause_of(st) == 30
    assert uc.state == nc.state == CS_ACTIVE
    assert TERMINAL[0] not in p.kinds(U) and TERMINAL[0] not in p.kinds(N)
    p.advance(60)
    assert uc.state == nc.state == CS_ACTIVE and p.u.poll_at() is None


def test_t309_expiry_clears_27() -> None:
    p = Pair()
    uc, nc = p.active()
    p.link_down()
    p.take(U)
    p.advance(10.1)
    ev = p.take(U)[-1]
    assert (ev.kind, ev.call, ev.cause, ev.why) == (CallEv.RELEASE_IND, uc, 27, Why.SAAL)
    assert not p.u.calls and p.u.stats.t309_cleared == 1
    ev = p.take(N)[-1]
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_IND, 27, Why.SAAL)


def test_release_while_saal_down_waits_for_the_link() -> None:
    p = Pair()
    uc, nc = p.active()
    p.link_down()
    p.u.release(uc, p.now)
    assert p.wire[U] == deque() and p.u.stats.queued_link_down == 1
    p.advance(2)
    p.link_back()
    assert uc.state == nc.state == CS_NULL
    assert p.kinds(U)[-1] == CallEv.RELEASE_CONF and p.kinds(N)[-1] == CallEv.RELEASE_IND


# ======================================================================================
# STATUS ENQUIRY / STATUS (§5.6.11-5.6.12)
# ======================================================================================
def test_status_enquiry_answered_with_call_state_and_cause_30() -> None:
    p = Pair()
    uc, nc = p.active()
    p.n.status_enquiry(nc, p.now)
    assert "t322" in nc.timers
    p.run()
    st = p.last(U, STATUS)
    assert (st.callref, st.flag) == (uc.callref, 0)     # the user's own call: flag 0
    assert state_of(st) == CS_ACTIVE and cause_of(st) == 30
    (ev,) = p.take(N)
    assert (ev.kind, ev.cause, ev.call) == (CallEv.STATUS_IND, 30, nc)
    assert "t322" not in nc.timers and nc.state == CS_ACTIVE
    assert p.u.stats.status_sent == 1


@pytest.mark.parametrize("flag", [0, 1])
def test_status_enquiry_on_the_global_call_reference(flag: int) -> None:
    p = Pair()
    p.inject(U, Q2931Message(STATUS_ENQUIRY, GLOBAL_CALLREF, flag))
    (st,) = p.out(U)
    assert st.msg_type == STATUS and st.callref == 0 and st.flag == flag ^ 1
    assert state_of(st) == CS_NULL and cause_of(st) == 81          # REST0, not a global message


def test_status_enquiry_on_the_global_call_reference_during_restart() -> None:
    p = Pair(n_auto_ack=False)
    p.drop_types[U].add(RESTART)
    p.u.restart(p.now)
    p.inject(U, Q2931Message(STATUS_ENQUIRY, GLOBAL_CALLREF, 1))   # about our RESTART
    assert state_of(p.out(U)[0]) == CS_REST1
    p.inject(N, Q2931Message(RESTART, GLOBAL_CALLREF, 0, [RestartIndicator(RESTART_ALL)]))
    p.inject(N, Q2931Message(STATUS_ENQUIRY, GLOBAL_CALLREF, 0))   # about the peer's
    assert state_of(p.out(N)[-1]) == CS_REST2


def test_status_peer_null_releases_our_call() -> None:
    p = Pair()
    uc, nc = p.active()
    p.inject(U, Q2931Message(STATUS, uc.callref, 1, [CallState(CS_NULL), Cause(30)]))
    assert p.out(U) == [] and not p.u.calls and uc.state == CS_NULL
    kinds = [e.kind for e in p.take(U)]
    assert kinds == [CallEv.STATUS_IND, CallEv.RELEASE_IND]


def test_status_peer_null_completes_our_release() -> None:
    p = Pair()
    uc, nc = p.active()
    p.u.release(uc, p.now)
    p.out(U)
    p.inject(U, Q2931Message(STATUS, uc.callref, 1, [CallState(CS_NULL), Cause(30)]))
    assert not p.u.calls
    assert p.kinds(U)[-1] == CallEv.RELEASE_CONF


@pytest.mark.parametrize("peer", [CS_CALL_DELIVERED, CS_CALL_RECEIVED, CS_INCOMING_PROCEEDING])
def test_status_incompatible_state_clears_101(peer: int) -> None:
    p = Pair()
    uc, nc = p.active()
    p.inject(U, Q2931Message(STATUS, uc.callref, 1, [CallState(peer), Cause(30)]))
    (rel,) = p.out(U)
    assert rel.msg_type == RELEASE and cause_of(rel) == 101
    assert uc.state == CS_RELEASE_REQUEST
    ev = p.take(U)[-1]
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_IND, 101, Why.PROTOCOL)


@pytest.mark.parametrize("peer", [CS_ACTIVE, CS_CONNECT_REQUEST, CS_RELEASE_REQUEST,
                                  CS_RELEASE_INDICATION])
def test_status_compatible_state_does_nothing(peer: int) -> None:
    p = Pair()
    uc, nc = p.active()
    p.inject(U, Q2931Message(STATUS, uc.callref, 1, [CallState(peer), Cause(30)]))
    assert p.out(U) == [] and uc.state == CS_ACTIVE
    assert p.kinds(U) == [CallEv.STATUS_IND]


def test_status_direction_mismatch_clears_101() -> None:
    p = Pair()
    uc, nc = p.offer(U)                   # the user's outgoing call, U1
    p.out(U)
    p.inject(U, Q2931Message(STATUS, uc.callref, 1, [CallState(CS_CALL_PRESENT), Cause(30)]))
    (rel,) = p.out(U)
    assert rel.msg_type == RELEASE and cause_of(rel) == 101


def test_status_answer_older_than_our_own_connect_is_not_incompatible() -> None:
    p = Pair()
    uc, nc = p.offer(U)
    p.n.alerting(nc, p.now, cid(40))
    p.run()
    p.n.status_enquiry(nc, p.now)        # asked in N4 ...
    p.n.connect(nc, p.now)               # ... then answered: N10
    p.run()                              # STATUS(U4) arrives after our CONNECT left
    assert state_of(p.last(U, STATUS)) == CS_CALL_DELIVERED
    assert nc.state == uc.state == CS_ACTIVE
    assert RELEASE not in p.types(N) and "t322" not in nc.timers


def test_states_compatible_table() -> None:
    assert states_compatible(CS_NULL, CS_NULL)
    for s in (CS_CALL_INITIATED, CS_ACTIVE, CS_RELEASE_REQUEST):
        assert not states_compatible(s, CS_NULL) and not states_compatible(CS_NULL, s)
    assert states_compatible(CS_ACTIVE, CS_ACTIVE)
    assert states_compatible(CS_ACTIVE, CS_CONNECT_REQUEST)
    assert states_compatible(CS_CONNECT_REQUEST, CS_ACTIVE)
    for s in (CS_CALL_INITIATED, CS_OUTGOING_PROCEEDING, CS_CALL_DELIVERED, CS_CALL_PRESENT,
              CS_CALL_RECEIVED, CS_INCOMING_PROCEEDING):
        assert not states_compatible(CS_ACTIVE, s) and not states_compatible(s, CS_ACTIVE)
        assert states_compatible(s, CS_RELEASE_REQUEST)
        assert states_compatible(CS_RELEASE_INDICATION, s)
    # the same direction in different phases: messages in flight
    assert states_compatible(CS_CALL_INITIATED, CS_CALL_DELIVERED)
    assert states_compatible(CS_CALL_RECEIVED, CS_CONNECT_REQUEST)
    # opposite directions never
    assert not states_compatible(CS_CALL_INITIATED, CS_CALL_PRESENT)
    assert not states_compatible(CS_CONNECT_REQUEST, CS_CALL_DELIVERED)


# ======================================================================================
# Unknown call reference (§5.6.3)
# ======================================================================================
@pytest.mark.parametrize("m,answer", [
    (Q2931Message(RELEASE, 99, 0, [Cause(16)]), (RELEASE_COMPLETE, 81)),
    (Q2931Message(RELEASE_COMPLETE, 99, 0, [Cause(16)]), None),
    (Q2931Message(STATUS_ENQUIRY, 99, 0), (STATUS, 30)),
    (Q2931Message(STATUS, 99, 0, [CallState(CS_NULL), Cause(30)]), None),
    (Q2931Message(STATUS, 99, 0, [CallState(CS_ACTIVE), Cause(30)]), (RELEASE_COMPLETE, 101)),
    (Q2931Message(SETUP, 99, 1, setup_ies() + [cid()]), None),
    (Q2931Message(CONNECT, 99, 1), (RELEASE_COMPLETE, 81)),
    (Q2931Message(ALERTING, 99, 0), (RELEASE_COMPLETE, 81)),
    (Q2931Message(CONNECT_ACK, 99, 1), (RELEASE_COMPLETE, 81)),
    (Q2931Message(UNKNOWN_MSG, 99, 1), (RELEASE_COMPLETE, 81)),
], ids=["release", "release-complete", "status-enquiry", "status-null", "status-active",
        "setup-flag-1", "connect", "alerting", "connect-ack", "unknown-type"])
def test_unknown_call_reference(m: Q2931Message, answer: tuple[int, int] | None) -> None:
    p = Pair()
    p.inject(U, m)
    got = p.out(U)
    assert not p.u.calls and p.take(U) == []
    if answer is None:
        assert got == []
        return
    (r,) = got
    assert (r.msg_type, cause_of(r)) == answer
    assert (r.callref, r.flag) == (m.callref, m.flag ^ 1)    # on its own call reference
    if r.msg_type == STATUS:
        assert state_of(r) == CS_NULL


def test_setup_on_a_call_reference_in_use_is_ignored() -> None:
    p = Pair()
    nc, uc = p.offer(N, cid(60))
    p.take(U)
    p.inject(U, p.last(N, SETUP))                # the peer's T303 repeat
    assert p.out(U) == [] and p.take(U) == [] and uc.state == CS_CALL_PRESENT


# ======================================================================================
# RESTART (§5.5)
# ======================================================================================
def test_restart_of_one_vc() -> None:
    p = Pair()
    uc1, nc1 = p.active(vci=40)
    uc2, nc2 = p.active(vci=41)
    cleared = p.n.restart(p.now, cid(41))
    assert cleared == [nc2] and nc2.state == CS_NULL
    (ev,) = p.take(N)
    assert (ev.kind, ev.call, ev.why) == (CallEv.RELEASE_IND, nc2, Why.RESTART)
    p.run()
    rs = p.last(N, RESTART)
    assert rs.callref == GLOBAL_CALLREF and rs.flag == 0
    assert rs.get(IE_RESTART).restart_class == RESTART_VC and rs.get(IE_CONN_ID) == cid(41)
    ack = p.last(U, RESTART_ACK)
    assert ack.callref == GLOBAL_CALLREF and ack.flag == 1
    assert ack.get(IE_RESTART).restart_class == RESTART_VC     # echoes the indicator
    assert ack.get(IE_CONN_ID) == cid(41)                       # and the VC
    evs = p.take(U)
    assert [(e.kind, e.why) for e in evs] == [(CallEv.RELEASE_IND, Why.RESTART),
                                              (CallEv.RESTART_IND, None)]
    assert evs[0].call is uc2 and evs[1].calls == (uc2,)
    assert [e.kind for e in p.take(N)] == [CallEv.RESTART_CONF]
    assert set(p.u.calls.values()) == {uc1} and set(p.n.calls.values()) == {nc1}
    assert uc1.state == nc1.state == CS_ACTIVE
    assert p.u.restart_state == p.n.restart_state == CS_NULL
    assert p.u.stats.restarts_in == 1 and p.n.stats.restarts_out == 1


@pytest.mark.parametrize("side", [U, N])
def test_restart_of_the_interface_from_either_side(side: int) -> None:
    p = Pair()
    a = p.active(vci=40)
    b = p.active_in(vci=41)
    c = p.offer(U)                                   # one still being set up
    p.forget()
    restarter, other = p.ends[side], p.ends[1 - side]
    cleared = restarter.restart(p.now)
    assert len(cleared) == 3 and not restarter.calls
    p.run()
    assert not other.calls
    rs = p.last(side, RESTART)
    assert rs.get(IE_RESTART).restart_class == RESTART_ALL and rs.get(IE_CONN_ID) is None
    ack = p.last(1 - side, RESTART_ACK)
    assert ack.get(IE_RESTART).restart_class == RESTART_ALL
    mine = p.take(side)
    theirs = p.take(1 - side)
    assert [e.kind for e in mine] == [CallEv.RELEASE_IND] * 3 + [CallEv.RESTART_CONF]
    assert [e.kind for e in theirs] == [CallEv.RELEASE_IND] * 3 + [CallEv.RESTART_IND]
    assert all(e.why is Why.RESTART for e in mine[:3] + theirs[:3])
    assert len(theirs[3].calls) == 3
    assert {id(x) for calls in (a, b, c) for x in calls} == \
        {id(e.call) for e in mine[:3] + theirs[:3]}


def test_restart_without_restart_indicator_status_96() -> None:
    p = Pair()
    uc, nc = p.active()
    p.inject(U, Q2931Message(RESTART, GLOBAL_CALLREF, 0))
    (st,) = p.out(U)
    assert (st.msg_type, cause_of(st), diag_of(st)) == (STATUS, 96, bytes((IE_RESTART,)))
    assert st.callref == GLOBAL_CALLREF and st.flag == 1
    assert uc.state == CS_ACTIVE and p.take(U) == []


def test_restart_of_a_vc_without_connection_identifier_status_96() -> None:
    p = Pair()
    uc, nc = p.active()
    p.inject(U, Q2931Message(RESTART, GLOBAL_CALLREF, 0, [RestartIndicator(RESTART_VC)]))
    (st,) = p.out(U)
    assert (st.msg_type, cause_of(st), diag_of(st)) == (STATUS, 96, bytes((IE_CONN_ID,)))
    assert uc.state == CS_ACTIVE and p.take(U) == []


def test_restart_ack_when_none_pending_status_101() -> None:
    p = Pair()
    p.inject(U, Q2931Message(RESTART_ACK, GLOBAL_CALLREF, 1, [RestartIndicator(RESTART_ALL)]))
    (st,) = p.out(U)
    assert (st.msg_type, cause_of(st), state_of(st)) == (STATUS, 101, CS_NULL)
    assert diag_of(st) == bytes((RESTART_ACK,)) and p.take(U) == []


def test_other_message_on_the_global_call_reference_status_81() -> None:
    p = Pair()
    p.inject(N, Q2931Message(CONNECT, GLOBAL_CALLREF, 0))
    (st,) = p.out(N)
    assert (st.msg_type, cause_of(st)) == (STATUS, 81)


def test_restart_collision_both_sides_complete() -> None:
    p = Pair()
    p.active()
    p.u.restart(p.now)
    p.n.restart(p.now)
    p.run()                                              # the RESTARTs cross
    assert STATUS not in p.types(U) and STATUS not in p.types(N)
    assert p.kinds(U)[-1] == CallEv.RESTART_CONF and p.kinds(N)[-1] == CallEv.RESTART_CONF
    assert p.u.restart_state == p.n.restart_state == CS_NULL
    p.advance(300)
    assert p.types(U).count(RESTART) == 1 and p.types(N).count(RESTART) == 1
    p.drop_types[U].add(RESTART)
    p.u.restart(p.now)
    with pytest.raises(OSError) as ei:                   # one at a time
        p.u.restart(p.now)
    assert ei.value.errno == 114


# ======================================================================================
# Compatibility instruction and IE errors (§5.6.4-5.6.8)
# ======================================================================================
def incoming_setup(p: Pair, ies: list, *, to: int = N, callref: int = 7,
                   compat: int = MSG_COMPAT_DEFAULT) -> list[Q2931Message]:
    """Hand end `to` a SETUP (flag 0) carrying `ies`; returns what it answered."""
    p.inject(to, Q2931Message(SETUP, callref, 0, ies, compat))
    return p.out(to)


@pytest.mark.parametrize("missing", [IE_TRAFFIC, IE_CALLED, IE_QOS])
def test_setup_missing_mandatory_ie_release_complete_96(missing: int) -> None:
    p = Pair()
    ies = [ie for ie in setup_ies() if ie.id != missing]
    (rc,) = incoming_setup(p, ies)
    assert rc.msg_type == RELEASE_COMPLETE and (rc.callref, rc.flag) == (7, 1)
    assert cause_of(rc) == 96 and diag_of(rc) == bytes((missing,))
    assert not p.n.calls and p.take(N) == []        # never offered, nothing to end


def test_user_setup_without_connection_identifier_96() -> None:
    p = Pair()
    with pytest.raises(OSError) as ei:               # our network side never sends one
        p.n.setup(setup_ies(), p.now)
    assert ei.value.errno == 22 and not p.n.calls and p.types(N) == []
    (rc,) = incoming_setup(p, setup_ies(), to=U)
    assert (rc.msg_type, cause_of(rc), diag_of(rc)) == (RELEASE_COMPLETE, 96, bytes((IE_CONN_ID,)))
    assert not p.u.calls and p.take(U) == []


def test_setup_malformed_mandatory_ie_release_complete_100() -> None:
    p = Pair()
    ies = [ie for ie in setup_ies() if ie.id != IE_CALLED]
    ies.append(UnknownIE(IE_CALLED, b"\x82\x01\x02"))     # an AESA 2 octets long
    (rc,) = incoming_setup(p, ies)
    assert (rc.msg_type, cause_of(rc), diag_of(rc)) == (RELEASE_COMPLETE, 100, bytes((IE_CALLED,)))
    assert not p.n.calls and p.take(N) == []


def test_unknown_ie_without_instruction_processed_and_reported_99() -> None:
    p = Pair()
    (st,) = incoming_setup(p, setup_ies() + [unknown_ie()])
    assert (st.msg_type, cause_of(st), diag_of(st)) == (STATUS, 99, bytes((UNKNOWN_IE,)))
    assert state_of(st) == CS_CALL_INITIATED
    (ev,) = p.take(N)
    assert ev.kind == CallEv.SETUP_IND
    assert all(ie.id != UNKNOWN_IE for ie in ev.msg.ies)      # stripped before delivery


def test_unknown_ie_clear_call_on_setup_release_complete_99() -> None:
    p = Pair()
    (rc,) = incoming_setup(p, setup_ies() + [unknown_ie(IE_ACT_CLEAR)])
    assert (rc.msg_type, cause_of(rc), diag_of(rc)) == (RELEASE_COMPLETE, 99, bytes((UNKNOWN_IE,)))
    assert not p.n.calls and p.take(N) == []


def test_unknown_ie_clear_call_on_an_active_call_99() -> None:
    p = Pair()
    uc, nc = p.active()
    p.inject(U, Q2931Message(STATUS_ENQUIRY, uc.callref, 1, [unknown_ie(IE_ACT_CLEAR)]))
    (rel,) = p.out(U)
    assert (rel.msg_type, cause_of(rel), diag_of(rel)) == (RELEASE, 99, bytes((UNKNOWN_IE,)))
    ev = p.take(U)[-1]
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_IND, 99, Why.PROTOCOL)


def test_unknown_ie_discard_silently() -> None:
    p = Pair()
    assert incoming_setup(p, setup_ies() + [unknown_ie(IE_ACT_DISCARD)]) == []
    assert [e.kind for e in p.take(N)] == [CallEv.SETUP_IND]


def test_unknown_ie_discard_and_report() -> None:
    p = Pair()
    (st,) = incoming_setup(p, setup_ies() + [unknown_ie(IE_ACT_DISCARD_REPORT)])
    assert (st.msg_type, cause_of(st)) == (STATUS, 99)
    assert [e.kind for e in p.take(N)] == [CallEv.SETUP_IND]


def test_unknown_ie_discard_message() -> None:
    p = Pair()
    assert incoming_setup(p, setup_ies() + [unknown_ie(IE_ACT_DISCARD_MSG)]) == []
    assert p.take(N) == [] and not p.n.calls
    # on a call: the message is ignored (no STATUS answers this enquiry), the call goes on
    uc, nc = p.active()
    p.inject(U, Q2931Message(STATUS_ENQUIRY, uc.callref, 1, [unknown_ie(IE_ACT_DISCARD_MSG)]))
    assert p.out(U) == [] and uc.state == CS_ACTIVE and p.take(U) == []


def test_unknown_ie_discard_message_and_report() -> None:
    p = Pair()
    (st,) = incoming_setup(p, setup_ies() + [unknown_ie(IE_ACT_DISCARD_MSG_REPORT)])
    assert (st.msg_type, cause_of(st)) == (STATUS, 99)
    assert p.take(N) == [] and not p.n.calls


def test_malformed_optional_ie_reported_100() -> None:
    p = Pair()
    uc, nc = p.active()
    bad_cause = UnknownIE(IE_CAUSE, b"\x00")          # too short: a MalformedIE
    p.inject(U, Q2931Message(STATUS_ENQUIRY, uc.callref, 1, [bad_cause]))
    got = p.out(U)
    assert [(m.msg_type, cause_of(m)) for m in got] == [(STATUS, 100), (STATUS, 30)]
    assert diag_of(got[0]) == bytes((IE_CAUSE,))


def test_unknown_message_type_status_97() -> None:
    p = Pair()
    uc, nc = p.active()
    p.inject(U, Q2931Message(UNKNOWN_MSG, uc.callref, 1))
    (st,) = p.out(U)
    assert (st.msg_type, cause_of(st), diag_of(st)) == (STATUS, 97, bytes((UNKNOWN_MSG,)))
    assert state_of(st) == CS_ACTIVE and uc.state == CS_ACTIVE


@pytest.mark.parametrize("action,answer", [
    (MSG_ACT_CLEAR, (RELEASE, 97)), (MSG_ACT_DISCARD, None),
    (MSG_ACT_DISCARD_REPORT, (STATUS, 97))])
def test_unknown_message_type_follows_its_instruction(action: int, answer) -> None:
    p = Pair()
    uc, nc = p.active()
    p.inject(U, Q2931Message(UNKNOWN_MSG, uc.callref, 1, [], msg_compat(action)))
    got = [(m.msg_type, cause_of(m)) for m in p.out(U)]
    assert got == ([answer] if answer else [])
    if action == MSG_ACT_CLEAR:
        ev = p.take(U)[-1]
        assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_IND, 97, Why.PROTOCOL)
    else:
        assert uc.state == CS_ACTIVE


@pytest.mark.parametrize("mtype", [ALERTING, CALL_PROCEEDING, CONNECT])
def test_known_message_in_the_wrong_state_status_101(mtype: int) -> None:
    p = Pair()
    uc, nc = p.active()
    p.inject(U, Q2931Message(mtype, uc.callref, 1, [cid(40)]))
    (st,) = p.out(U)
    assert (st.msg_type, cause_of(st), diag_of(st)) == (STATUS, 101, bytes((mtype,)))
    assert state_of(st) == CS_ACTIVE and uc.state == CS_ACTIVE and p.take(U) == []


def test_unexpected_message_while_releasing_is_ignored() -> None:
    p = Pair()
    uc, nc = p.active()
    p.u.release(uc, p.now)
    p.out(U)
    p.inject(U, Q2931Message(CONNECT, uc.callref, 1))
    assert p.out(U) == [] and uc.state == CS_RELEASE_REQUEST


def test_release_without_cause_treated_as_31_answered_96() -> None:
    p = Pair()
    uc, nc = p.active()
    p.inject(U, Q2931Message(RELEASE, uc.callref, 1))
    (rc,) = p.out(U)
    assert (rc.msg_type, cause_of(rc), diag_of(rc)) == (RELEASE_COMPLETE, 96, bytes((IE_CAUSE,)))
    (ev,) = p.take(U)
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_IND, 31, Why.PEER)
    assert not p.u.calls


def test_release_with_unknown_ie_is_still_a_release() -> None:
    p = Pair()
    uc, nc = p.active()
    p.inject(U, Q2931Message(RELEASE, uc.callref, 1, [Cause(16), unknown_ie(IE_ACT_CLEAR)]))
    (rc,) = p.out(U)                       # no RELEASE of our own: the call just ends
    assert (rc.msg_type, cause_of(rc), diag_of(rc)) == (RELEASE_COMPLETE, 99, bytes((UNKNOWN_IE,)))
    (ev,) = p.take(U)
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_IND, 16, Why.PEER)
    assert not p.u.calls


def test_release_complete_with_unknown_ie_still_completes() -> None:
    p = Pair()
    uc, nc = p.active()
    p.u.release(uc, p.now)
    p.out(U)
    p.inject(U, Q2931Message(RELEASE_COMPLETE, uc.callref, 1, [unknown_ie(IE_ACT_DISCARD_MSG)]))
    assert p.out(U) == [] and not p.u.calls
    assert p.kinds(U)[-1] == CallEv.RELEASE_CONF


def test_ie_framing_overrun_on_a_known_call_clears_111() -> None:
    p = Pair()
    uc, nc = p.active()
    body = bytes((IE_CAUSE, 0x80, 0x00, 0x10, 0x80, 0x90))   # says 16 octets, has 2
    p.inject(U, raw(STATUS_ENQUIRY, uc.callref, 1, body))
    (rel,) = p.out(U)
    assert (rel.msg_type, cause_of(rel)) == (RELEASE, 111)
    ev = p.take(U)[-1]
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_IND, 111, Why.PROTOCOL)


def test_unparseable_setup_release_complete_111_on_its_own_call_reference() -> None:
    p = Pair()
    p.inject(N, raw(SETUP, 0x1234, 0, bytes((IE_TRAFFIC, 0x80, 0x00, 0x09, 0x82))))
    (rc,) = p.out(N)
    assert rc.msg_type == RELEASE_COMPLETE and cause_of(rc) == 111
    assert (rc.callref, rc.flag) == (0x1234, 1)
    assert not p.n.calls and p.take(N) == []


def test_unparseable_repeated_setup_leaves_the_call_alone() -> None:
    p = Pair()
    uc, nc = p.offer(U)
    p.inject(N, raw(SETUP, uc.callref, 0, b"\x59\x80\x00"))
    assert p.out(N) == [] and nc.state == CS_CALL_INITIATED


@pytest.mark.parametrize("data", [
    b"\x08\x03\x00\x00\x01\x75\x80\x00\x00",          # protocol discriminator Q.931
    b"\x09\x02\x00\x01\x75\x80\x00\x00",              # call reference 2 octets long
    b"\x09\x03\x00\x00",                              # truncated header
    b"",
], ids=["discriminator", "callref-length", "truncated", "empty"])
def test_header_faults_are_ignored_and_counted(data: bytes) -> None:
    p = Pair()
    uc, nc = p.active()
    before = p.u.stats.rx_bad
    p.inject(U, data)
    assert p.out(U) == [] and uc.state == CS_ACTIVE and p.take(U) == []
    assert p.u.stats.rx_bad == before + 1


def test_protocol_error_on_a_call_being_cleared_keeps_the_release() -> None:
    p = Pair()
    uc, nc = p.active()
    p.drop_types[U].update({RELEASE, STATUS_ENQUIRY})
    p.u.release(uc, p.now, cause=16)
    p.u.status_enquiry(uc, p.now)                    # unanswered: T322 runs out in U11
    p.inject(U, Q2931Message(STATUS_ENQUIRY, uc.callref, 1, [unknown_ie(IE_ACT_CLEAR)]))
    p.advance(20)
    assert p.take(U) == [] and uc.state == CS_RELEASE_REQUEST
    assert p.types(U).count(RELEASE) == 1
    p.advance(45)                                    # T308 twice
    (ev,) = p.take(U)
    assert (ev.kind, ev.cause, ev.why) == (CallEv.RELEASE_CONF, 16, Why.LOCAL)
    assert p.types(U).count(RELEASE) == 2


# ======================================================================================
# The signalling link (§5.6.9-5.6.10)
# ======================================================================================
def test_messages_held_until_the_saal_is_up() -> None:
    p = Pair(up=False)
    p.link_ok = False
    uc = p.u.setup(setup_ies(), 0.0)
    p.u.status_enquiry(uc, 0.0)
    p.collect()
    assert p.saal[U] == ["establish"]                 # asked once
    assert not p.wire[U] and p.u.stats.queued_link_down == 2
    p.link_back()
    assert p.u.link_up and p.n.link_up
    assert [m.msg_type for m in p.sent[U]] == [SETUP, STATUS_ENQUIRY]
    assert p.kinds(N)[0] == CallEv.SETUP_IND
    assert p.saal[U] == ["establish"]


def test_link_that_never_comes_up_ends_waiting_calls_27() -> None:
    p = Pair(up=False)
    p.link_ok = False
    uc = p.u.setup(setup_ies(), 0.0)
    p.collect()
    p.u.aal_event(AalEvent(AalEv.RELEASE_IND, source="sscop"), 1.0)
    p.collect()
    (ev,) = p.take(U)
    assert (ev.kind, ev.call, ev.cause, ev.why) == (CallEv.RELEASE_IND, uc, 27, Why.SAAL)
    assert not p.u.calls and not p.u._held


def test_shutdown_ends_every_call() -> None:
    p = Pair()
    uc1, _ = p.active(vci=40)
    uc2, _ = p.offer(U)
    _, uc3 = p.offer(N, cid(50))
    p.forget()
    p.u.shutdown()
    evs = p.take(U)
    assert {id(e.call) for e in evs} == {id(uc1), id(uc2), id(uc3)}
    assert all((e.kind, e.why, e.cause) == (CallEv.RELEASE_IND, Why.SAAL, 41) for e in evs)
    assert not p.u.calls and p.u.take_actions() == [] and p.u.poll_at() is None


def test_on_event_callback_instead_of_the_queue() -> None:
    seen = []
    uni = Uni(Side.USER, on_event=seen.append)
    uni.aal_event(AalEvent(AalEv.ESTABLISH_CONF), 0.0)
    assert [e.kind for e in seen] == [CallEv.LINK_UP] and uni.take_events() == []


# ======================================================================================
# Random sequences: never raise, agree after an audit, every call ends exactly once
# ======================================================================================
# One step: (what, which end, a small number picking a call / a count / a delay).
KINDS = ("setup",) * 3 + ("proceeding", "alerting") + ("connect",) * 4 + (
    "release", "release", "enquiry", "restart") + ("deliver",) * 3 + ("flush",) * 4 + (
    "drop", "advance", "advance", "link")
OPS = st.tuples(st.sampled_from(KINDS), st.sampled_from((U, N)), st.integers(0, 7))
DELAYS = (0.5, 1.0, 2.0, 4.5, 10.0, 15.0, 35.0, 125.0)

ANSWERS = {
    # primitive -> states it is valid in, per side
    (U, "proceeding"): (CS_CALL_PRESENT,),
    (U, "alerting"): (CS_CALL_PRESENT, CS_INCOMING_PROCEEDING),
    (U, "connect"): (CS_CALL_PRESENT, CS_INCOMING_PROCEEDING, CS_CALL_RECEIVED),
    (N, "proceeding"): (CS_CALL_INITIATED,),
    (N, "alerting"): (CS_CALL_INITIATED, CS_OUTGOING_PROCEEDING),
    (N, "connect"): (CS_CALL_INITIATED, CS_OUTGOING_PROCEEDING, CS_CALL_DELIVERED),
}


class Model:
    """Drives a Pair from a list of steps; starts with an active call each way and a
    call being offered each way, so that every run has something to break."""

    def __init__(self, prompt: bool = False) -> None:
        self.prompt = prompt
        self.p = Pair()
        self.known: tuple[dict, dict] = ({}, {})          # id(call) -> call, per side
        self.ends: tuple[dict, dict] = ({}, {})           # id(call) -> terminal events
        self.vci = 100
        self.protocol_clears: list = []
        for uc, nc in (self.p.active(vci=40), self.p.active_in(vci=41),
                       self.p.offer(U), self.p.offer(N, cid(42))[::-1]):
            self.known[U][id(uc)] = uc
            self.known[N][id(nc)] = nc
        self.p.forget()

    def observe(self) -> None:
        for i in (U, N):
            for e in self.p.events[i]:
                if e.kind == CallEv.SETUP_IND:
                    self.known[i][id(e.call)] = e.call
                elif e.kind in TERMINAL:
                    assert id(e.call) in self.known[i], e     # only calls the user knew
                    assert e.cause is not None and e.why is not None, e
                    if e.why is Why.PROTOCOL:
                        self.protocol_clears.append(e)
                    self.ends[i][id(e.call)] = self.ends[i].get(id(e.call), 0) + 1
            self.p.events[i].clear()

    def pick(self, i: int, k: int, states=None):
        calls = [c for c in self.p.ends[i].calls.values() if states is None or c.state in states]
        return calls[k % len(calls)] if calls else None

    def do(self, op: tuple) -> None:
        kind, i, k = op
        p, e, now = self.p, self.p.ends[op[1]], self.p.now
        if kind == "setup":
            kw = {}
            if i == N:
                self.vci += 1
                kw["conn_id"] = cid(self.vci)
            c = e.setup(setup_ies(), now, **kw)
            self.known[i][id(c)] = c
        elif kind in ("proceeding", "alerting", "connect"):
            c = self.pick(i, k, ANSWERS[(i, kind)])
            if c is not None:
                kw = {}
                if i == N:
                    self.vci += 1
                    kw["conn_id"] = cid(self.vci)
                getattr(e, kind)(c, now, **kw)
        elif kind == "release":
            if (c := self.pick(i, k)) is not None:
                e.release(c, now)
        elif kind == "enquiry":
            if (c := self.pick(i, k)) is not None:
                e.status_enquiry(c, now)
        elif kind == "restart":
            if e.restart_state != CS_REST1:
                c = self.pick(i, k) if k % 2 else None
                e.restart(now, c.conn_id if c is not None else None)
        elif kind == "deliver":
            for _ in range(k + 1):
                p.deliver(i)
        elif kind == "flush":
            p.run()
        elif kind == "drop":
            p.collect()
            if p.wire[i]:
                p.wire[i].popleft()
        elif kind == "advance":
            # timers fire, but messages stay in flight until delivered (unless the
            # model says the link is quicker than any timer)
            if self.prompt:
                p.run()
            until = now + DELAYS[k]
            while True:
                p.collect()
                ats = [a for x in p.ends if (a := x.poll_at()) is not None]
                nxt = min(ats, default=None)
                if nxt is None or nxt > until:
                    break
                p.now = max(p.now, nxt)
                for x in p.ends:
                    if (a := x.poll_at()) is not None and a <= p.now:
                        x.poll(p.now)
            p.now = until
        elif kind == "link":
            if k % 2:
                p.link_back()
            else:
                p.link_down()
        p.collect()
        self.observe()

    def settle_and_check(self) -> None:
        p = self.p
        p.link_back()
        p.run()
        self.observe()
        # audit: every call on either side asks; the answers settle any disagreement
        for i in (U, N):
            for c in list(p.ends[i].calls.values()):
                p.ends[i].status_enquiry(c, p.now)
        p.run()
        self.observe()
        for i in (U, N):
            for (ref, ours), c in p.ends[i].calls.items():
                peer = p.ends[1 - i].calls.get((ref, not ours))
                assert peer is not None, (i, c)
                assert states_compatible(c.state, peer.state), (c.state, peer.state)
                if c.vc is not None and peer.vc is not None:
                    assert c.vc == peer.vc
        # then everything is released and given time: every call ends exactly once
        for i in (U, N):
            for c in list(p.ends[i].calls.values()):
                p.ends[i].release(c, p.now)
        p.advance(400)
        self.observe()
        assert not p.u.calls and not p.n.calls
        assert p.u.poll_at() is None and p.n.poll_at() is None
        for i in (U, N):
            for k in self.known[i]:
                assert self.ends[i].get(k) == 1, (i, self.known[i][k], self.ends[i].get(k))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=5, max_size=60))
def test_random_sequences_agree_and_every_call_ends_once(ops: list) -> None:
    m = Model()
    for op in ops:
        m.do(op)
    m.settle_and_check()


LOSSLESS = st.tuples(st.sampled_from([k for k in KINDS if k not in ("drop", "link")]),
                     st.sampled_from((U, N)), st.integers(0, 7))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LOSSLESS, min_size=5, max_size=60))
def test_random_sequences_without_loss_never_clear_for_a_protocol_error(ops: list) -> None:
    """Nothing lost and the link quicker than any timer, messages only crossing: no
    STATUS audit may find the two ends incompatible, no message may look unexpected
    enough to clear a call."""
    m = Model(prompt=True)
    for op in ops:
        m.do(op)
    m.settle_and_check()
    assert m.protocol_clears == []
