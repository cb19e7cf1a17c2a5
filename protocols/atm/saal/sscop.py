"""SSCOP connection state machine (ITU-T Q.2110), sans-IO.

`Sscop` is fed PDU bytes with `receive(data, now)` and user calls (`establish`, `release`,
`send`, ...); it answers with PDUs to send (`take_output()`), events for the user
(`take_events()`) and a deadline (`poll_at()` / `poll(now)`, the stack/timers.py contract).

State variables are Q.2110 §8's: transmitter VT(S), VT(PS), VT(A), VT(PA), VT(MS), VT(PD),
VT(CC), VT(SQ); receiver VR(R), VR(H), VR(MR), VR(SQ).  Sequence numbers are mod 2^24 and
compared relative to the window base (VT(A) or VR(R)).

Deliberate deviations, because our PHY (UDP) can duplicate and reorder where an ATM VC
cannot, and Q.2110 would call recovery on every stale STAT:
  * a STAT whose N(PS) is behind VT(PA) is stale and dropped (counted), not error R;
  * an N(R) or list element behind VT(A) is clamped to VT(A), not error S/T;
  only values *ahead* of what was ever sent are protocol errors (MAA-ERROR + recovery).
Recovery (ER) and resynchronization (RS) discard unacknowledged data and renumber from 0,
as Q.2110 §§20.5-20.6 do; the user learns of it through AA-RECOVER / AA-RESYNC.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, IntEnum

from ndd.counters import Counters

from .sscop_pdu import (
    MASK,
    MOD,
    Bgak,
    Bgn,
    Bgrej,
    End,
    Endak,
    Er,
    Erak,
    Md,
    Pdu,
    Poll,
    Rs,
    Rsak,
    Sd,
    Stat,
    Ud,
    Ustat,
    parse_pdu,
)

HALF = MOD // 2


class State(IntEnum):
    """Q.2110 §20 state numbers."""
    IDLE = 1
    OUTGOING_CONNECTION_PENDING = 2
    INCOMING_CONNECTION_PENDING = 3
    OUTGOING_DISCONNECTION_PENDING = 4
    OUTGOING_RESYNC_PENDING = 5
    INCOMING_RESYNC_PENDING = 6
    OUTGOING_RECOVERY_PENDING = 7
    RECOVERY_RESPONSE_PENDING = 8
    INCOMING_RECOVERY_PENDING = 9
    DATA_TRANSFER_READY = 10


class Ev(str, Enum):
    ESTABLISH_IND = "AA-ESTABLISH.indication"
    ESTABLISH_CONF = "AA-ESTABLISH.confirm"
    RELEASE_IND = "AA-RELEASE.indication"
    RELEASE_CONF = "AA-RELEASE.confirm"
    DATA_IND = "AA-DATA.indication"
    UNITDATA_IND = "AA-UNITDATA.indication"
    RESYNC_IND = "AA-RESYNC.indication"
    RESYNC_CONF = "AA-RESYNC.confirm"
    RECOVER_IND = "AA-RECOVER.indication"
    MAA_UNITDATA_IND = "MAA-UNITDATA.indication"
    MAA_ERROR = "MAA-ERROR.indication"


# MAA-ERROR codes (Q.2110 Table 2 / Q.2140 appendix): unsolicited or inappropriate PDUs A-M,
# other errors O-U, credit W/X.
ERROR_CODES = {
    "A": "SD PDU unsolicited", "B": "BGN PDU unsolicited", "C": "BGAK PDU unsolicited",
    "D": "BGREJ PDU unsolicited", "E": "END PDU unsolicited", "F": "ENDAK PDU unsolicited",
    "G": "POLL PDU unsolicited", "H": "STAT PDU unsolicited", "I": "USTAT PDU unsolicited",
    "J": "RS PDU unsolicited", "K": "RSAK PDU unsolicited", "L": "ER PDU unsolicited",
    "M": "ERAK PDU unsolicited",
    "O": "VT(CC) >= MaxCC: unsuccessful retransmission", "P": "Timer_NO-RESPONSE expiry",
    "Q": "SD or POLL N(S) error", "R": "STAT N(PS) error", "S": "STAT N(R) or list elements error",
    "T": "USTAT N(R) or list elements error", "U": "PDU length violation",
    "V": "SD PDUs must be retransmitted", "W": "lack of credit", "X": "credit obtained",
}


@dataclass(frozen=True, slots=True)
class Event:
    kind: Ev
    data: bytes = b""                 # SSCOP-UU, SDU, or MU
    source: str | None = None         # AA-RELEASE.indication: "user" or "sscop" (Q.2110 §6.1)
    code: str | None = None           # MAA-ERROR code


@dataclass
class SscopConfig:
    """Timers and limits; defaults are SSCF-UNI's (Q.2130 §7, as used by linux-atm)."""
    timer_cc: float = 1.0
    timer_poll: float = 0.75
    timer_keepalive: float = 2.0
    timer_noresp: float = 7.0
    timer_idle: float = 15.0
    max_cc: int = 4
    max_pd: int = 25
    max_stat: int = 67                # list elements per STAT (Q.2110 §7.x MaxSTAT)
    window: int = 128                 # receive credit: VR(MR) - VR(R)
    max_queue: int = 1 << 16          # SDUs waiting for credit before send() refuses
    auto_respond: bool = False        # answer AA-ESTABLISH/RESYNC/RECOVER.indication at once (SSCF-UNI)
    initial_sq: int = 0               # VT(SQ) at creation (Q.2110: 0); see SaalEndpoint


@dataclass
class SscopStats(Counters):
    rx_pdus: int = 0
    tx_pdus: int = 0
    rx_malformed: int = 0
    rx_ignored: int = 0               # valid but inappropriate in this state
    rx_stale: int = 0                 # STAT/USTAT/POLL older than what we hold (reordering)
    rx_duplicate_sd: int = 0
    rx_sd_outside_window: int = 0
    tx_sd: int = 0
    retransmits: int = 0
    polls: int = 0
    stats: int = 0
    ustats: int = 0
    errors: int = 0


def _off(x: int, base: int) -> int:
    return (x - base) & MASK


_TIMERS = ("cc", "poll", "keepalive", "noresp", "idle")


class Sscop:
    """One SSCOP connection end (Q.2110 §20)."""

    def __init__(self, config: SscopConfig | None = None) -> None:
        self.config = config or SscopConfig()
        self.state = State.IDLE
        self.stats = SscopStats()
        self.kick = lambda at=None: None   # replaced by TimerService.register
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self.timers: dict[str, float | None] = dict.fromkeys(_TIMERS)
        self.vt_cc = 0
        self.vt_sq = self.config.initial_sq & 0xFF
        self.vr_sq: int | None = None      # None: no BGN/RS/ER seen yet
        self._last_uu = b""                # UU of the BGN/END/RS being retried by Timer_CC
        self._credit_lacking = False
        self.txq: deque[bytes] = deque()   # transmission queue: not yet numbered
        # data-transfer state variables, set by _reset_data (typed here for the checker)
        self.vt_s = self.vt_ps = self.vt_a = self.vt_pa = self.vt_pd = self.vt_ms = 0
        self.vr_r = self.vr_h = self.vr_mr = 0
        self._reset_data()

    # --- public surface ---------------------------------------------------------------------
    def take_output(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def take_events(self) -> list[Event]:
        ev, self._events = self._events, []
        return ev

    def poll_at(self) -> float | None:
        return min((t for t in self.timers.values() if t is not None), default=None)

    def poll(self, now: float) -> None:
        for name in _TIMERS:
            at = self.timers[name]
            if at is not None and now >= at:
                self.timers[name] = None
                getattr(self, f"_expire_{name}")(now)

    # AA-ESTABLISH.request (Q.2110 §20.1, state 1 and 4)
    def establish(self, uu: bytes = b"", now: float = 0.0) -> None:
        if self.state not in (State.IDLE, State.OUTGOING_DISCONNECTION_PENDING):
            return
        self._stop_all()
        self.txq.clear()
        self._reset_data()
        self._last_uu = bytes(uu)
        self._begin_cc(lambda sq, mr: Bgn(sq, mr, self._last_uu), State.OUTGOING_CONNECTION_PENDING, now)

    # AA-ESTABLISH.response (state 3)
    def accept(self, uu: bytes = b"", now: float = 0.0) -> None:
        if self.state != State.INCOMING_CONNECTION_PENDING:
            return
        self._reset_data(keep_ms=True)
        self._emit(Bgak(self.vr_mr, bytes(uu)))
        self._enter_ready(now)

    # AA-RELEASE.request in state 3: BGREJ; elsewhere END (Q.2110 §20.2)
    def release(self, uu: bytes = b"", now: float = 0.0) -> None:
        st = self.state
        if st in (State.IDLE, State.OUTGOING_DISCONNECTION_PENDING):
            return
        self._stop_all()
        self.txq.clear()
        self._reset_data()
        if st == State.INCOMING_CONNECTION_PENDING:
            self._emit(Bgrej(bytes(uu)))
            self.state = State.IDLE
            return
        self.vt_cc = 1
        self._last_uu = bytes(uu)
        self._emit(End(False, self._last_uu))
        self._set("cc", now)
        self.state = State.OUTGOING_DISCONNECTION_PENDING

    reject = release

    # AA-DATA.request: assured data (SD).  False when the queue is full or not connected.
    def send(self, data: bytes, now: float = 0.0) -> bool:
        if self.state != State.DATA_TRANSFER_READY or len(self.txq) >= self.config.max_queue:
            return False
        self.txq.append(bytes(data))
        self._pump(now)
        return True

    # AA-UNITDATA.request: UD is sent in any state (Q.2110 §20.8)
    def send_unitdata(self, data: bytes, now: float = 0.0) -> None:
        self._emit(Ud(bytes(data)))

    # AA-RESYNC.request (Q.2110 §20.5)
    def resync(self, now: float = 0.0, uu: bytes = b"") -> None:
        if self.state not in (State.DATA_TRANSFER_READY, State.INCOMING_RESYNC_PENDING,
                              State.OUTGOING_RECOVERY_PENDING, State.RECOVERY_RESPONSE_PENDING,
                              State.INCOMING_RECOVERY_PENDING):
            return
        self._stop_all()
        self.txq.clear()
        self._reset_data()
        self._last_uu = bytes(uu)
        self._begin_cc(lambda sq, mr: Rs(sq, mr, self._last_uu), State.OUTGOING_RESYNC_PENDING, now)

    # AA-RESYNC.response (state 6)
    def resync_response(self, now: float = 0.0) -> None:
        if self.state == State.INCOMING_RESYNC_PENDING:
            self._reset_data(keep_ms=True)
            self._emit(Rsak(self.vr_mr))
            self._enter_ready(now)

    # AA-RECOVER.response (states 8 and 9)
    def recover_response(self, now: float = 0.0) -> None:
        if self.state == State.INCOMING_RECOVERY_PENDING:
            self._reset_data(keep_ms=True)
            self._emit(Erak(self.vr_mr))
            self._enter_ready(now)
        elif self.state == State.RECOVERY_RESPONSE_PENDING:
            self._enter_ready(now)

    # --- PDU arrival ------------------------------------------------------------------------
    def receive(self, data: bytes | bytearray | memoryview, now: float) -> None:
        pdu = parse_pdu(data)
        if isinstance(pdu, str):
            self.stats.rx_malformed += 1
            if self.state == State.DATA_TRANSFER_READY:
                self._error("U")         # Q.2110 §20: length violations are reported, PDU discarded
            return
        self.stats.rx_pdus += 1
        getattr(self, f"_rx_{type(pdu).__name__.lower()}")(pdu, now)

    def _rx_ud(self, pdu: Ud, now: float) -> None:
        self._event(Ev.UNITDATA_IND, pdu.data)

    def _rx_md(self, pdu: Md, now: float) -> None:
        self._event(Ev.MAA_UNITDATA_IND, pdu.data)

    def _rx_bgn(self, pdu: Bgn, now: float) -> None:
        st = self.state
        dup = pdu.n_sq == self.vr_sq     # Q.2110 §20.1: N(SQ) detects a retransmitted BGN
        if st == State.IDLE:
            if dup:
                self._emit(Bgrej())      # a retry of a connection already given up on
                return
            self._incoming(pdu, now)
        elif st == State.OUTGOING_CONNECTION_PENDING:
            if dup:
                return self._ignore()
            # Connection collision (Q.2110 §20.1, state 2): both ends acknowledge and proceed.
            self.vr_sq = pdu.n_sq
            self._stop("cc")
            self.vt_ms = pdu.n_mr
            self._emit(Bgak(self.vr_mr))
            self._event(Ev.ESTABLISH_CONF, pdu.uu)
            self._enter_ready(now)
        elif st == State.INCOMING_CONNECTION_PENDING:
            self._ignore()
        elif st == State.OUTGOING_DISCONNECTION_PENDING:
            if dup:
                return self._ignore()
            self._stop("cc")
            self._event(Ev.RELEASE_CONF)
            self._incoming(pdu, now)
        elif st == State.DATA_TRANSFER_READY and dup:
            self._emit(Bgak(self.vr_mr))   # our BGAK was lost: the peer still waits for it
        elif dup:
            self._ignore()
        else:
            # A new BGN on a live connection: the peer restarted (Q.2110 §20, MAA-ERROR B).
            self._error("B")
            self._stop_all()
            self._event(Ev.RELEASE_IND, source="sscop")
            self._incoming(pdu, now)

    def _incoming(self, pdu: Bgn, now: float) -> None:
        self.vr_sq = pdu.n_sq
        self.txq.clear()
        self._reset_data()
        self.vt_ms = pdu.n_mr
        self.state = State.INCOMING_CONNECTION_PENDING
        self._event(Ev.ESTABLISH_IND, pdu.uu)
        if self.config.auto_respond:
            self.accept(b"", now)

    def _rx_bgak(self, pdu: Bgak, now: float) -> None:
        if self.state == State.OUTGOING_CONNECTION_PENDING:
            self._stop("cc")
            self.vt_ms = pdu.n_mr
            self._event(Ev.ESTABLISH_CONF, pdu.uu)
            self._enter_ready(now)
        elif self.state == State.IDLE:
            self._emit(End(True))        # Q.2110 §20.1 state 1: tell the peer we hold no connection
        else:
            self._ignore()               # duplicate (collision or retransmitted BGN)

    def _rx_bgrej(self, pdu: Bgrej, now: float) -> None:
        st = self.state
        if st == State.OUTGOING_CONNECTION_PENDING:
            self._stop("cc")
            self.state = State.IDLE
            self._event(Ev.RELEASE_IND, pdu.uu, source="user")
        elif st == State.OUTGOING_DISCONNECTION_PENDING:
            self._stop("cc")
            self.state = State.IDLE
            self._event(Ev.RELEASE_CONF)
        else:
            self._ignore()

    def _rx_end(self, pdu: End, now: float) -> None:
        st = self.state
        self._emit(Endak())              # END is always acknowledged, even in Idle
        if st == State.IDLE:
            return
        self._stop_all()
        self.txq.clear()
        self._reset_data()
        self.state = State.IDLE
        if st == State.OUTGOING_DISCONNECTION_PENDING:
            self._event(Ev.RELEASE_CONF)   # release collision
        else:
            self._event(Ev.RELEASE_IND, pdu.uu, source="sscop" if pdu.source else "user")

    def _rx_endak(self, pdu: Endak, now: float) -> None:
        if self.state == State.OUTGOING_DISCONNECTION_PENDING:
            self._stop("cc")
            self.state = State.IDLE
            self._event(Ev.RELEASE_CONF)
        else:
            self._ignore()               # a late duplicate; Q.2110's error F would tear down a healthy link

    def _rx_rs(self, pdu: Rs, now: float) -> None:
        st = self.state
        dup = pdu.n_sq == self.vr_sq
        if st == State.DATA_TRANSFER_READY:
            if dup:
                self._emit(Rsak(self.vr_mr))   # our RSAK was lost
                return
            self.vr_sq = pdu.n_sq
            self._stop_all()
            self.txq.clear()
            self._reset_data()
            self.vt_ms = pdu.n_mr
            self.state = State.INCOMING_RESYNC_PENDING
            self._event(Ev.RESYNC_IND, pdu.uu)
            if self.config.auto_respond:
                self.resync_response(now)
        elif st == State.OUTGOING_RESYNC_PENDING and not dup:
            # resync collision (Q.2110 §20.5, state 5): acknowledge and complete
            self.vr_sq = pdu.n_sq
            self._stop("cc")
            self.vt_ms = pdu.n_mr
            self._emit(Rsak(self.vr_mr))
            self._event(Ev.RESYNC_CONF)
            self._enter_ready(now)
        elif st == State.IDLE:
            self._emit(End(True))
        else:
            self._ignore()

    def _rx_rsak(self, pdu: Rsak, now: float) -> None:
        if self.state == State.OUTGOING_RESYNC_PENDING:
            self._stop("cc")
            self.vt_ms = pdu.n_mr
            self._event(Ev.RESYNC_CONF)
            self._enter_ready(now)
        elif self.state == State.IDLE:
            self._emit(End(True))
        else:
            self._ignore()

    def _rx_er(self, pdu: Er, now: float) -> None:
        st = self.state
        dup = pdu.n_sq == self.vr_sq
        if st in (State.DATA_TRANSFER_READY, State.RECOVERY_RESPONSE_PENDING) and dup:
            self._emit(Erak(self.vr_mr))   # our ERAK was lost
        elif st == State.DATA_TRANSFER_READY:
            self.vr_sq = pdu.n_sq
            self._stop_all()
            self._reset_data(requeue=True)
            self.vt_ms = pdu.n_mr
            self.state = State.INCOMING_RECOVERY_PENDING
            self._event(Ev.RECOVER_IND)
            if self.config.auto_respond:
                self.recover_response(now)
        elif st == State.OUTGOING_RECOVERY_PENDING and not dup:
            self.vr_sq = pdu.n_sq         # recovery collision
            self._stop("cc")
            self.vt_ms = pdu.n_mr
            self._emit(Erak(self.vr_mr))
            self.state = State.RECOVERY_RESPONSE_PENDING
            self._event(Ev.RECOVER_IND)
            if self.config.auto_respond:
                self.recover_response(now)
        elif st == State.IDLE:
            self._emit(End(True))
        else:
            self._ignore()

    def _rx_erak(self, pdu: Erak, now: float) -> None:
        if self.state == State.OUTGOING_RECOVERY_PENDING:
            self._stop("cc")
            self.vt_ms = pdu.n_mr
            self.state = State.RECOVERY_RESPONSE_PENDING
            self._event(Ev.RECOVER_IND)
            if self.config.auto_respond:
                self.recover_response(now)
        elif self.state == State.IDLE:
            self._emit(End(True))
        else:
            self._ignore()

    # --- data transfer: receiver (Q.2110 §20.7) ---------------------------------------------
    def _not_ready(self, code: str) -> bool:
        if self.state == State.DATA_TRANSFER_READY:
            return False
        if self.state == State.IDLE:
            self._emit(End(True))
        else:
            self._ignore()               # in the pending states data is discarded silently
        return True

    def _rx_sd(self, pdu: Sd, now: float) -> None:
        if self._not_ready("A"):
            return
        ns = pdu.n_s
        off = _off(ns, self.vr_r)
        if off >= _off(self.vr_mr, self.vr_r):
            if off >= HALF:
                self.stats.rx_duplicate_sd += 1       # behind VR(R): already delivered
            else:
                self.stats.rx_sd_outside_window += 1  # beyond the credit we gave
            return
        if ns in self.rxbuf:
            self.stats.rx_duplicate_sd += 1
            return
        off_h = _off(self.vr_h, self.vr_r)
        if off == 0:
            self._event(Ev.DATA_IND, pdu.data)
            r = (self.vr_r + 1) & MASK
            while r in self.rxbuf:                    # the gap closed: deliver in order
                self._event(Ev.DATA_IND, self.rxbuf.pop(r))
                r = (r + 1) & MASK
            self.vr_r = r
            if _off(self.vr_h, r) >= HALF or off_h == 0:
                self.vr_h = r
            self.vr_mr = (self.vr_r + self.config.window) & MASK
            return
        self.rxbuf[ns] = pdu.data
        if off > off_h:
            # a new gap [VR(H), N(S)): say so at once (Q.2110 §20.7, USTAT)
            self._emit(Ustat(self.vr_mr, self.vr_r, (self.vr_h, ns)))
            self.stats.ustats += 1
        if off >= off_h:
            self.vr_h = (ns + 1) & MASK

    def _rx_poll(self, pdu: Poll, now: float) -> None:
        if self._not_ready("G"):
            return
        off = _off(pdu.n_s, self.vr_r)
        if off < HALF:
            if off > _off(self.vr_mr, self.vr_r):
                self._error("Q")                      # claims SDs beyond any credit we gave
                self._start_recovery(now)
                return
            if off > _off(self.vr_h, self.vr_r):
                self.vr_h = pdu.n_s
        # else: a stale POLL from before VR(R) moved; the STAT it gets is stale too, and harmless
        gaps: list[int] = []
        i, end = self.vr_r, self.vr_h
        missing = False
        while i != end:
            have = i in self.rxbuf
            if have == missing:                        # a run boundary
                gaps.append(i)
                missing = not missing
            i = (i + 1) & MASK
        if missing:
            gaps.append(end)
        step = max(2, self.config.max_stat - self.config.max_stat % 2)
        for k in range(0, max(len(gaps), 1), step):    # MaxSTAT: split long lists (Q.2110 §20.7)
            self._emit(Stat(pdu.n_ps, self.vr_mr, self.vr_r, tuple(gaps[k:k + step])))
            self.stats.stats += 1

    # --- data transfer: transmitter ---------------------------------------------------------
    def _ack_to(self, n_r: int) -> None:
        """Release SDs below N(R) (clamped: a value behind VT(A) is old news)."""
        while self.vt_a != n_r:
            self.txbuf.pop(self.vt_a, None)
            self.vt_a = (self.vt_a + 1) & MASK

    def _queue_rtx(self, a: int, b: int, n_ps: int | None) -> None:
        i = a
        while i != b:
            ent = self.txbuf.get(i)
            # Only SDs sent before the POLL that the STAT answers (Q.2110 §20.7: VT(PS) stored
            # with each SD), and not already queued.
            if ent is not None and i not in self.rtx_set and (n_ps is None or 0 < _off(n_ps, ent[1]) < HALF):
                self.rtxq.append(i)
                self.rtx_set.add(i)
            i = (i + 1) & MASK

    def _valid_nr(self, n_r: int) -> int | None:
        """N(R) as a base: VT(A) if behind it, None if beyond VT(S) (a protocol error)."""
        off = _off(n_r, self.vt_a)
        if off >= HALF:
            return self.vt_a
        if off > _off(self.vt_s, self.vt_a):
            return None
        return n_r

    def _rx_stat(self, pdu: Stat, now: float) -> None:
        if self._not_ready("H"):
            return
        ps_off = _off(pdu.n_ps, self.vt_pa)
        if ps_off > _off(self.vt_ps, self.vt_pa):
            if ps_off >= HALF:
                self.stats.rx_stale += 1
                return
            self._error("R")
            self._start_recovery(now)
            return
        n_r = self._valid_nr(pdu.n_r)
        # list elements behind VT(A) are old news too (a USTAT overtook this STAT)
        elems = [self.vt_a if _off(e, self.vt_a) >= HALF else e for e in pdu.list]
        if len(elems) % 2:
            elems.append(self.vt_s)
        if n_r is not None:
            prev = n_r
            for e in elems:                           # ascending within [N(R), VT(S)]
                if not _off(prev, self.vt_a) <= _off(e, self.vt_a) <= _off(self.vt_s, self.vt_a):
                    n_r = None
                    break
                prev = e
        if n_r is None:
            self._error("S")
            self._start_recovery(now)
            return
        self.stats.stats += 1
        self._ack_to(n_r)
        for k in range(0, len(elems), 2):
            a, b = elems[k], elems[k + 1]
            self._queue_rtx(a, b, pdu.n_ps)
            # SDs between this gap and the next were received: free them (no reneging in SSCOP)
            i, nxt = b, elems[k + 2] if k + 2 < len(elems) else b
            while i != nxt:
                self.txbuf.pop(i, None)
                i = (i + 1) & MASK
        self.vt_pa = pdu.n_ps
        self.vt_ms = pdu.n_mr
        # Phases (Q.2110 §20.7): in the active phase a STAT proves the peer alive; in the
        # transient phase it ends it -- the link goes idle.
        if self.timers["poll"] is not None:
            self._set("noresp", now)
        elif self.timers["idle"] is None:
            self._stop("keepalive")
            self._stop("noresp")
            self._set("idle", now)
        if self._outstanding() and self.timers["poll"] is None:
            self._activate(now)
        self._pump(now)

    def _rx_ustat(self, pdu: Ustat, now: float) -> None:
        if self._not_ready("I"):
            return
        n_r = self._valid_nr(pdu.n_r)
        a, b = pdu.list
        off_a, off_b, off_s = _off(a, self.vt_a), _off(b, self.vt_a), _off(self.vt_s, self.vt_a)
        if n_r is None or (off_b < HALF and (off_b > off_s or (off_a < HALF and off_a > off_b))):
            self._error("T")
            self._start_recovery(now)
            return
        self.stats.ustats += 1
        if off_b >= HALF or off_b == 0:
            self.stats.rx_stale += 1                  # a STAT overtook it: nothing left to do
            return
        self._ack_to(n_r)
        self._queue_rtx(self.vt_a if off_a >= HALF else a, b, None)
        self.vt_ms = pdu.n_mr
        self._pump(now)

    def _outstanding(self) -> bool:
        return self.vt_a != self.vt_s or bool(self.rtxq) or bool(self.txq)

    def _activate(self, now: float) -> None:
        """Enter the active phase on new traffic (Q.2110 §20.7): Timer_POLL runs, and leaving
        the idle phase starts Timer_NO-RESPONSE."""
        if self.timers["idle"] is not None:
            self._stop("idle")
            self._set("noresp", now)
        self._stop("keepalive")
        if self.timers["poll"] is None:
            self._set("poll", now)

    def _pump(self, now: float) -> None:
        if self.state != State.DATA_TRANSFER_READY:
            return
        cfg = self.config
        sent = False
        while True:
            if self.rtxq:
                n = self.rtxq.popleft()
                self.rtx_set.discard(n)
                ent = self.txbuf.get(n)
                if ent is None:
                    continue
                ent[1] = self.vt_ps
                self.stats.retransmits += 1
                self._emit(Sd(n, ent[0]))
            elif self.txq and _off(self.vt_s, self.vt_a) < _off(self.vt_ms, self.vt_a) < HALF:
                data = self.txq.popleft()
                self.txbuf[self.vt_s] = [data, self.vt_ps]
                self._emit(Sd(self.vt_s, data))
                self.vt_s = (self.vt_s + 1) & MASK
            else:
                break
            sent = True
            self.stats.tx_sd += 1
            self.vt_pd += 1
            if self.vt_pd >= cfg.max_pd:              # MaxPD: solicit a STAT (Q.2110 §20.7)
                self._send_poll(now)
        if sent:
            self._activate(now)
        lacking = bool(self.txq)
        if lacking != self._credit_lacking:
            self._credit_lacking = lacking
            self._error("W" if lacking else "X")

    def _send_poll(self, now: float) -> None:
        self.vt_ps = (self.vt_ps + 1) & MASK
        self._emit(Poll(self.vt_ps, self.vt_s))
        self.stats.polls += 1
        self.vt_pd = 0
        self._set("poll", now)

    # --- timers (Q.2110 §20.7 and §7.8) -----------------------------------------------------
    def _expire_cc(self, now: float) -> None:
        st = self.state
        if self.vt_cc >= self.config.max_cc:
            self._error("O")
            if st == State.OUTGOING_DISCONNECTION_PENDING:
                self.state = State.IDLE
                self._event(Ev.RELEASE_CONF)
                return
            self._emit(End(True))
            self.state = State.IDLE
            self._reset_data()
            self._event(Ev.RELEASE_IND, source="sscop")
            return
        self.vt_cc += 1
        if st == State.OUTGOING_CONNECTION_PENDING:
            self._emit(Bgn(self.vt_sq, self.vr_mr, self._last_uu))
        elif st == State.OUTGOING_DISCONNECTION_PENDING:
            self._emit(End(False, self._last_uu))
        elif st == State.OUTGOING_RESYNC_PENDING:
            self._emit(Rs(self.vt_sq, self.vr_mr, self._last_uu))
        elif st == State.OUTGOING_RECOVERY_PENDING:
            self._emit(Er(self.vt_sq, self.vr_mr))
        else:
            return
        self._set("cc", now)

    def _expire_poll(self, now: float) -> None:
        if self.state != State.DATA_TRANSFER_READY:
            return
        self._send_poll(now)
        if not self._outstanding():
            self._stop("poll")                        # nothing in flight: transient phase
            self._set("keepalive", now)

    def _expire_keepalive(self, now: float) -> None:
        if self.state == State.DATA_TRANSFER_READY:
            self._send_poll(now)

    def _expire_idle(self, now: float) -> None:
        if self.state == State.DATA_TRANSFER_READY:
            self._set("noresp", now)
            self._send_poll(now)

    def _expire_noresp(self, now: float) -> None:
        if self.state != State.DATA_TRANSFER_READY:
            return
        # Q.2110 §20.7: the peer answered no POLL in time -- give the connection up.
        self._error("P")
        self._stop_all()
        self._emit(End(True))
        self.txq.clear()
        self._reset_data()
        self.state = State.IDLE
        self._event(Ev.RELEASE_IND, source="sscop")

    # --- helpers ----------------------------------------------------------------------------
    def _start_recovery(self, now: float) -> None:
        """Protocol error in data transfer: ER (Q.2110 §20.6)."""
        self._stop_all()
        self._reset_data(requeue=True)
        self._begin_cc(Er, State.OUTGOING_RECOVERY_PENDING, now)

    def _begin_cc(self, make: Callable[[int, int], Pdu], state: State, now: float) -> None:
        """Open a Timer_CC exchange (BGN, RS, ER): a fresh N(SQ), the PDU, CC, the pending state."""
        self.vt_cc = 1
        self.vt_sq = (self.vt_sq + 1) & 0xFF
        self._emit(make(self.vt_sq, self.vr_mr))
        self._set("cc", now)
        self.state = state

    def _enter_ready(self, now: float) -> None:
        self.state = State.DATA_TRANSFER_READY
        self._set("poll", now)                        # start in the active phase
        self._set("noresp", now)
        self._pump(now)

    def _reset_data(self, keep_ms: bool = False, requeue: bool = False) -> None:
        """Initialise the data-transfer state variables to 0 (Q.2110 §20: initialize state
        variables).  Unacknowledged SDs are discarded: recovery cannot know which the peer
        delivered.  The untouched transmission queue survives a recovery (`requeue`)."""
        if not requeue:
            self.txq.clear()
        self.vt_s = self.vt_ps = self.vt_a = self.vt_pa = self.vt_pd = 0
        if not keep_ms:
            self.vt_ms = 0
        self.vr_r = self.vr_h = 0
        self.vr_mr = self.config.window & MASK
        self.txbuf: dict[int, list] = {}
        self.rtxq: deque[int] = deque()
        self.rtx_set: set[int] = set()
        self.rxbuf: dict[int, bytes] = {}

    def _set(self, name: str, now: float) -> None:
        at = now + getattr(self.config, f"timer_{name}")
        self.timers[name] = at
        self.kick(at)

    def _stop(self, name: str) -> None:
        self.timers[name] = None

    def _stop_all(self) -> None:
        for name in _TIMERS:
            self.timers[name] = None

    def _emit(self, pdu: Pdu) -> None:
        self.stats.tx_pdus += 1
        self._out.append(pdu.emit())

    def _event(self, kind: Ev, data: bytes = b"", source: str | None = None, code: str | None = None) -> None:
        self._events.append(Event(kind, data, source, code))

    def _ignore(self) -> None:
        self.stats.rx_ignored += 1

    def _error(self, code: str) -> None:
        self.stats.errors += 1
        self._event(Ev.MAA_ERROR, code=code)
