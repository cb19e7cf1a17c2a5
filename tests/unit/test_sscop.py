"""SSCOP state machine (Q.2110 §20): two ends back to back over a simulated link with an
explicit clock; the link can lose, duplicate and reorder PDUs."""
from __future__ import annotations

import heapq
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.atm.saal.sscop import Ev, Event, Sscop, SscopConfig, State
from protocols.atm.saal.sscop_pdu import BGN, END, POLL, SD, STAT, Poll, Sd, parse_pdu, pdu_type


class Link:
    def __init__(self, a: Sscop, b: Sscop, *, seed: int = 0, loss: float = 0.0, dup: float = 0.0,
                 jitter: float = 0.0, delay: float = 0.001) -> None:
        self.a, self.b = a, b
        self.rng = random.Random(seed)
        self.loss, self.dup, self.jitter, self.delay = loss, dup, jitter, delay
        self.heap: list[tuple[float, int, int, bytes]] = []
        self.n = 0
        self.now = 0.0
        self.events: dict[int, list[Event]] = {0: [], 1: []}
        self.sent: dict[int, list[int]] = {0: [], 1: []}     # PDU types each end sent
        self.drop_from: set[int] = set()                      # ends whose output vanishes

    def ends(self) -> tuple[Sscop, Sscop]:
        return self.a, self.b

    def _collect(self) -> None:
        for i, end in enumerate((self.a, self.b)):
            self.events[i] += end.take_events()
            for pdu in end.take_output():
                self.sent[i].append(pdu_type(pdu))
                if i in self.drop_from or self.rng.random() < self.loss:
                    continue
                copies = 2 if self.rng.random() < self.dup else 1
                for _ in range(copies):
                    t = self.now + self.delay + self.rng.random() * self.jitter
                    self.n += 1
                    heapq.heappush(self.heap, (t, self.n, 1 - i, pdu))

    def run(self, duration: float) -> None:
        until = self.now + duration
        self._collect()
        while True:
            cands = [self.heap[0][0]] if self.heap else []
            cands += [at for e in (self.a, self.b) if (at := e.poll_at()) is not None]
            nxt = min(cands, default=None)
            if nxt is None or nxt > until:
                break
            self.now = max(self.now, nxt)
            while self.heap and self.heap[0][0] <= self.now:
                _, _, dst, pdu = heapq.heappop(self.heap)
                (self.a, self.b)[dst].receive(pdu, self.now)
                self._collect()
            for e in (self.a, self.b):
                if (at := e.poll_at()) is not None and at <= self.now:
                    e.poll(self.now)
            self._collect()
        self.now = until
        self._collect()

    def kinds(self, i: int) -> list[Ev]:
        return [e.kind for e in self.events[i] if e.kind != Ev.MAA_ERROR]

    def data(self, i: int) -> list[bytes]:
        return [e.data for e in self.events[i] if e.kind == Ev.DATA_IND]

    def errors(self, i: int) -> list[str]:
        return [e.code for e in self.events[i] if e.kind == Ev.MAA_ERROR]


def pair(**cfg) -> tuple[Sscop, Sscop]:
    return Sscop(SscopConfig(auto_respond=True, **cfg)), Sscop(SscopConfig(auto_respond=True, **cfg))


def connected(**kw) -> Link:
    a, b = pair(**kw.pop("cfg", {}))
    link = Link(a, b, **kw)
    a.establish(b"hi", link.now)
    link.run(0.1)
    assert a.state == b.state == State.DATA_TRANSFER_READY
    return link


# --- connection control -------------------------------------------------------------------

def test_establish_and_release_handshakes() -> None:
    a, b = Sscop(), Sscop()
    link = Link(a, b)
    a.establish(b"setup-uu", 0.0)
    assert a.state == State.OUTGOING_CONNECTION_PENDING
    link.run(0.01)
    assert b.state == State.INCOMING_CONNECTION_PENDING
    assert link.events[1] == [Event(Ev.ESTABLISH_IND, b"setup-uu")]
    b.accept(b"ok", link.now)
    link.run(0.01)
    assert a.state == b.state == State.DATA_TRANSFER_READY
    assert link.kinds(0) == [Ev.ESTABLISH_CONF] and link.events[0][0].data == b"ok"
    b.release(b"bye", link.now)
    assert b.state == State.OUTGOING_DISCONNECTION_PENDING
    link.run(0.01)
    assert a.state == b.state == State.IDLE
    assert link.events[0][-1] == Event(Ev.RELEASE_IND, b"bye", source="user")
    assert link.kinds(1)[-1] == Ev.RELEASE_CONF
    assert a.poll_at() is None and b.poll_at() is None


def test_bgrej() -> None:
    a, b = Sscop(), Sscop()
    link = Link(a, b)
    a.establish(b"", 0.0)
    link.run(0.01)
    b.reject(b"no", link.now)
    link.run(0.01)
    assert a.state == b.state == State.IDLE
    assert link.events[0] == [Event(Ev.RELEASE_IND, b"no", source="user")]


def test_establish_collision() -> None:
    a, b = Sscop(), Sscop()
    link = Link(a, b, delay=0.01)
    a.establish(b"", 0.0)
    b.establish(b"", 0.0)                 # both BGNs in flight at once (Q.2110 §20.1, state 2)
    link.run(0.1)
    assert a.state == b.state == State.DATA_TRANSFER_READY
    assert link.kinds(0)[0] == link.kinds(1)[0] == Ev.ESTABLISH_CONF


def test_release_collision() -> None:
    link = connected(delay=0.01)
    a, b = link.ends()
    a.release(b"", link.now)
    b.release(b"", link.now)
    link.run(0.1)
    assert a.state == b.state == State.IDLE
    assert link.kinds(0)[-1] == link.kinds(1)[-1] == Ev.RELEASE_CONF


def test_lost_bgak_is_recovered_by_duplicate_bgn() -> None:
    a, b = pair()
    link = Link(a, b)
    link.drop_from = {1}
    a.establish(b"", 0.0)
    link.run(0.5)                         # B accepted, but its BGAK vanished
    assert b.state == State.DATA_TRANSFER_READY and a.state == State.OUTGOING_CONNECTION_PENDING
    link.drop_from = set()
    link.run(1.0)                         # Timer_CC resends BGN with the same N(SQ): BGAK again
    assert a.state == State.DATA_TRANSFER_READY
    assert link.kinds(1) == [Ev.ESTABLISH_IND]  # no second indication for the retransmission


def test_cc_retries_up_to_maxcc_then_release_indication() -> None:
    a, b = Sscop(), Sscop()
    link = Link(a, b)
    link.drop_from = {0}
    a.establish(b"", 0.0)
    link.run(10.0)
    assert link.sent[0].count(BGN) == 4                  # MaxCC = 4 (SSCF-UNI)
    assert a.state == State.IDLE
    assert link.kinds(0) == [Ev.RELEASE_IND] and link.events[0][-1].source == "sscop"
    assert link.errors(0) == ["O"]


def test_end_retried_then_confirmed() -> None:
    link = connected()
    a, b = link.ends()
    link.drop_from = {0}
    a.release(b"", link.now)
    t0 = link.now
    link.run(10.0)
    # 4 user ENDs (MaxCC), then an SSCOP END (S=1) for each POLL B sends to an Idle A
    assert link.sent[0].count(END) >= 4 and a.state == State.IDLE
    assert link.kinds(0)[-1] == Ev.RELEASE_CONF and "O" in link.errors(0)
    assert b.state == State.IDLE          # B released itself: NORESP, its POLLs unanswered
    assert t0 < link.now


def test_noresp_releases_silent_peer() -> None:
    link = connected()
    a, b = link.ends()
    link.drop_from = {1}                  # B goes silent
    start = link.now
    link.run(6.9)
    assert a.state == State.DATA_TRANSFER_READY
    link.run(0.2)
    assert a.state == State.IDLE
    assert link.errors(0) == ["P"]
    assert link.kinds(0)[-1] == Ev.RELEASE_IND and link.events[0][-1].source == "sscop"
    assert link.now - start < 7.2


def test_idle_link_keeps_polling_and_survives() -> None:
    link = connected()
    a, b = link.ends()
    link.run(60.0)                        # POLL -> KEEP-ALIVE -> IDLE phases, STATs answer POLLs
    assert a.state == b.state == State.DATA_TRANSFER_READY
    polls = link.sent[0].count(POLL)
    assert 3 <= polls <= 20               # idle phase: about one POLL per Timer_IDLE
    assert a.timers["idle"] is not None or a.timers["poll"] is not None


# --- data transfer ------------------------------------------------------------------------

def test_data_transfer_with_poll_and_stat() -> None:
    link = connected()
    a, b = link.ends()
    msgs = [bytes([i]) * (i % 7) for i in range(100)]
    for m in msgs:
        assert a.send(m, link.now)
    link.run(2.0)
    assert link.data(1) == msgs
    assert link.sent[0].count(SD) == 100
    assert link.sent[0].count(POLL) >= 4          # MaxPD = 25
    assert a.vt_a == a.vt_s == 100 and not a.txbuf


def test_ustat_and_selective_retransmission() -> None:
    link = connected()
    a, b = link.ends()
    for i in range(5):
        a.send(b"%d" % i, link.now)
    out = a.take_output()
    assert [pdu_type(p) for p in out] == [SD] * 5
    for k, p in enumerate(out):
        if k != 2:
            b.receive(p, link.now)                 # SD 2 lost
    reply = [parse_pdu(p) for p in b.take_output()]
    assert [type(r).__name__ for r in reply] == ["Ustat"] and reply[0].list == (2, 3)
    assert [e.data for e in b.take_events()] == [b"0", b"1"]
    a.receive(reply[0].emit(), link.now)
    again = [parse_pdu(p) for p in a.take_output()]
    assert again == [Sd(2, b"2")]
    b.receive(again[0].emit(), link.now)
    assert [e.data for e in b.take_events()] == [b"2", b"3", b"4"]


def test_stat_lists_gaps() -> None:
    link = connected()
    a, b = link.ends()
    for _ in range(8):
        a.send(b"x", link.now)
    out = a.take_output()
    for k in (0, 3, 6):
        b.receive(out[k], link.now)
    b.take_output()
    b.receive(Poll(1, 8).emit(), link.now)
    stat = parse_pdu(b.take_output()[0])
    assert pdu_type(stat.emit()) == STAT
    assert stat.n_r == 1 and stat.list == (1, 3, 4, 6, 7, 8) and stat.n_ps == 1


def test_unitdata_and_malformed() -> None:
    link = connected()
    a, b = link.ends()
    a.send_unitdata(b"ud", link.now)
    b.receive(b"\x01\x02\x03", link.now)           # counted, reported as MAA-ERROR U, never raised
    link.run(0.01)
    assert Event(Ev.UNITDATA_IND, b"ud") in link.events[1]
    assert b.stats.rx_malformed == 1 and "U" in link.errors(1)
    assert b.state == State.DATA_TRANSFER_READY


def test_credit_limits_the_sender() -> None:
    link = connected(cfg={"window": 4})
    a, b = link.ends()
    for i in range(10):
        a.send(b"%d" % i, link.now)
    assert [pdu_type(p) for p in a.take_output()] == [SD] * 4   # credit N(MR) = 4
    assert a.vt_s == 4 and len(a.txq) == 6 and "W" in [e.code for e in a.take_events()]
    link.run(3.0)
    assert link.data(1)[-6:] == [b"%d" % i for i in range(4, 10)]


def test_resync() -> None:
    link = connected()
    a, b = link.ends()
    a.send(b"before", link.now)
    link.run(0.5)
    a.resync(link.now)
    assert a.state == State.OUTGOING_RESYNC_PENDING
    link.run(0.1)
    assert a.state == b.state == State.DATA_TRANSFER_READY
    assert Ev.RESYNC_CONF in link.kinds(0) and Ev.RESYNC_IND in link.kinds(1)
    assert a.vt_s == 0 and b.vr_r == 0
    a.send(b"after", link.now)
    link.run(1.0)
    assert link.data(1) == [b"before", b"after"]


def test_resync_survives_lost_rsak() -> None:
    link = connected()
    a, b = link.ends()
    link.drop_from = {1}
    a.resync(link.now)
    link.run(0.5)
    link.drop_from = set()
    link.run(1.0)                                  # Timer_CC: RS again, same N(SQ): RSAK again
    assert a.state == b.state == State.DATA_TRANSFER_READY
    assert link.kinds(1).count(Ev.RESYNC_IND) == 1


def test_protocol_error_starts_recovery() -> None:
    link = connected()
    a, b = link.ends()
    a.receive(Poll(1, 5000).emit(), link.now)      # N(S) beyond any credit given: error Q
    assert "Q" in [e.code for e in a.take_events()] and a.state == State.OUTGOING_RECOVERY_PENDING
    link.run(0.1)
    assert a.state == b.state == State.DATA_TRANSFER_READY
    assert Ev.RECOVER_IND in link.kinds(0) and Ev.RECOVER_IND in link.kinds(1)
    a.send(b"ok", link.now)
    link.run(1.0)
    assert link.data(1) == [b"ok"]


def test_new_bgn_in_data_transfer_means_peer_restart() -> None:
    link = connected()
    a, b = link.ends()
    fresh = Sscop(SscopConfig(auto_respond=True))
    fresh.vt_sq = 41                                # a different N(SQ) from the first BGN
    link.a, link.b = fresh, b                       # the restarted A talks to B
    fresh.establish(b"", link.now)
    link.run(0.1)
    assert b.state == fresh.state == State.DATA_TRANSFER_READY
    assert "B" in link.errors(1) and Ev.RELEASE_IND in link.kinds(1)


# --- chaos: loss, duplication and reordering ----------------------------------------------

CHAOS = SscopConfig(auto_respond=True, max_cc=30, timer_noresp=60.0, window=32)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), loss=st.floats(0, 0.3), dup=st.floats(0, 0.3),
       jitter=st.floats(0, 0.05), n=st.integers(1, 120), both=st.booleans())
def test_chaos_never_corrupts_the_assured_stream(seed: int, loss: float, dup: float, jitter: float,
                                                 n: int, both: bool) -> None:
    a, b = Sscop(CHAOS), Sscop(CHAOS)
    link = Link(a, b, seed=seed, loss=loss, dup=dup, jitter=jitter, delay=0.002)
    a.establish(b"", 0.0)
    link.run(20.0)
    assert a.state == b.state == State.DATA_TRANSFER_READY
    rng = random.Random(seed)
    sent = {0: [rng.randbytes(rng.randrange(0, 40)) + b"%d" % i for i in range(n)],
            1: [b"b%d" % i for i in range(n // 2)] if both else []}
    k = {0: 0, 1: 0}
    for _ in range(4 * n):                          # interleave sending with the link running
        for i, end in enumerate((a, b)):
            if k[i] < len(sent[i]) and rng.random() < 0.5:
                assert end.send(sent[i][k[i]], link.now)
                k[i] += 1
        link.run(rng.random() * 0.01)
    for i, end in enumerate((a, b)):
        while k[i] < len(sent[i]):
            end.send(sent[i][k[i]], link.now)
            k[i] += 1
    for _ in range(300):                            # everything arrives eventually
        link.run(1.0)
        if link.data(1) == sent[0] and link.data(0) == sent[1]:
            break
    assert link.data(1) == sent[0]
    assert link.data(0) == sent[1]
    assert a.state == b.state == State.DATA_TRANSFER_READY
    assert not any(c in "QRST" for i in (0, 1) for c in link.errors(i))
