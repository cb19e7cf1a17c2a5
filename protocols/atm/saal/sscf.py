"""SSCF-UNI (ITU-T Q.2130), sans-IO: the signalling AAL's upper sublayer on 0/5.

`Sscf` owns one `Sscop` and maps the SAAL user's primitives onto it (Q.2130 §6, primitives
and their mapping to AA-signals; SDL of the SSCF-UNI states 1-5):

    AAL-ESTABLISH.request   released / awaiting release -> AA-ESTABLISH.request (BGN)
                            established                 -> AA-RESYNC.request (RS): Q.2130
                            re-establishes a live link by resynchronisation, not by BGN
    AAL-RELEASE.request     -> AA-RELEASE.request (END/BGREJ); when already released it is
                            confirmed at once
    AAL-DATA.request        -> AA-DATA.request (SD), established only
    AAL-UNITDATA.request    -> AA-UNITDATA.request (UD), any state

and back: AA-ESTABLISH.indication is answered at once with AA-ESTABLISH.response (the
SSCF-UNI never refuses a peer's establishment, Q.2130 §6) and reported as
AAL-ESTABLISH.indication; AA-RESYNC.indication and AA-RECOVER.indication are likewise
answered at once and reported as AAL-ESTABLISH.indication (the link was re-established:
Q.2931 §5.6.11 audits its calls on it); AA-RESYNC.confirm is AAL-ESTABLISH.confirm.

Re-establishment after a release is not the SSCF-UNI's job: Q.2130 just reports
AAL-RELEASE.indication, and it is the Q.2931 entity that asks for the link again
(Q.2931 §5.6.10, with T309 guarding active calls).  `keep_up=True` does that here, for
SAAL users that want a permanently established link (a switch port): after an
AAL-RELEASE.indication whose source is SSCOP (MaxCC, NO-RESPONSE, peer restart -- not a
peer's deliberate release) a new AA-ESTABLISH.request is issued.

Like `Sscop`, the core is fed with `receive(pdu, now)` and user calls, and answers with
`take_output()` (PDUs), `take_events()` (AalEvent) and `poll_at()`/`poll(now)`; `kick` is
forwarded to the SSCOP so a TimerService can register the Sscf itself.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum, IntEnum
from typing import Any

from ndd.counters import Counters

from .sscop import Ev, Sscop, SscopConfig
from .sscop import State as SscopState


def sscf_uni_config(**overrides: Any) -> SscopConfig:
    """The SSCOP parameters of SSCF-UNI (Q.2130 §7; linux-atm and ngatm use the same):
    SscopConfig's defaults, which are these (Timer_CC 1 s, Timer_POLL 0.75 s,
    Timer_KEEP-ALIVE 2 s, Timer_NO-RESPONSE 7 s, Timer_IDLE 15 s, MaxCC 4, MaxPD 25).  The
    SSCF answers indications itself, so SSCOP's own auto_respond stays off."""
    return replace(SscopConfig(auto_respond=False), **overrides)


class State(IntEnum):
    """SSCF-UNI states (Q.2130 §6 SDL)."""
    RELEASED = 1
    AWAITING_ESTABLISH = 2
    AWAITING_RELEASE = 3
    ESTABLISHED = 4
    AWAITING_RESYNC = 5


class AalEv(str, Enum):
    ESTABLISH_IND = "AAL-ESTABLISH.indication"
    ESTABLISH_CONF = "AAL-ESTABLISH.confirm"
    RELEASE_IND = "AAL-RELEASE.indication"
    RELEASE_CONF = "AAL-RELEASE.confirm"
    DATA_IND = "AAL-DATA.indication"
    UNITDATA_IND = "AAL-UNITDATA.indication"


@dataclass(frozen=True, slots=True)
class AalEvent:
    kind: AalEv
    data: bytes = b""              # SSCOP-UU of establish/release, or the message
    source: str | None = None      # AAL-RELEASE.indication: "user" (peer released) or "sscop"


@dataclass
class SscfStats(Counters):
    bad_signals: int = 0           # primitive or AA-signal not expected in this state: ignored
    maa_errors: int = 0            # SSCOP's MAA-ERROR.indications (for layer management)
    data_refused: int = 0          # AAL-DATA.request while not established or queue full
    reestablish: int = 0           # keep_up re-establishments


class Sscf:
    """One SSCF-UNI + SSCOP stack end."""

    def __init__(self, config: SscopConfig | None = None, *, keep_up: bool = False) -> None:
        self.sscop = Sscop(config or sscf_uni_config())
        self.state = State.RELEASED
        self.keep_up = keep_up
        self.stats = SscfStats()
        self.maa_errors: list[str] = []       # last MAA-ERROR codes, newest last (bounded)
        self._events: list[AalEvent] = []

    # --- timer core contract (stack/timers.py), forwarded to SSCOP -----------------------
    @property
    def kick(self) -> Callable[..., None]:
        return self.sscop.kick

    @kick.setter
    def kick(self, fn: Callable[..., None]) -> None:
        self.sscop.kick = fn

    def poll_at(self) -> float | None:
        return self.sscop.poll_at()

    def poll(self, now: float) -> None:
        self.sscop.poll(now)
        self._drain(now)

    # --- I/O ----------------------------------------------------------------------------
    def receive(self, data: bytes | bytearray | memoryview, now: float) -> None:
        self.sscop.receive(data, now)
        self._drain(now)

    def take_output(self) -> list[bytes]:
        return self.sscop.take_output()

    def take_events(self) -> list[AalEvent]:
        ev, self._events = self._events, []
        return ev

    @property
    def established(self) -> bool:
        return self.state == State.ESTABLISHED

    # --- SAAL user primitives (Q.2130 §6) ------------------------------------------------
    def establish(self, uu: bytes = b"", now: float = 0.0) -> None:
        st = self.state
        if st in (State.RELEASED, State.AWAITING_RELEASE):
            self.state = State.AWAITING_ESTABLISH
            self.sscop.establish(uu, now)
        elif st == State.ESTABLISHED:
            self.state = State.AWAITING_RESYNC
            self.sscop.resync(now, uu)
        else:
            self.stats.bad_signals += 1
        self._drain(now)

    def release(self, uu: bytes = b"", now: float = 0.0) -> None:
        st = self.state
        if st == State.RELEASED:
            self._event(AalEv.RELEASE_CONF)       # nothing to release: confirm at once
        elif st == State.AWAITING_RELEASE:
            self.stats.bad_signals += 1
        else:
            self.state = State.AWAITING_RELEASE
            self.sscop.release(uu, now)
        self._drain(now)

    def send(self, data: bytes, now: float = 0.0) -> bool:
        """AAL-DATA.request: assured, in order.  False (and nothing sent) unless established
        and SSCOP's transmission queue has room."""
        ok = self.state == State.ESTABLISHED and self.sscop.send(data, now)
        if not ok:
            self.stats.data_refused += 1
        self._drain(now)
        return ok

    def send_unitdata(self, data: bytes, now: float = 0.0) -> None:
        self.sscop.send_unitdata(data, now)

    # --- AA-signals from SSCOP -----------------------------------------------------------
    def _drain(self, now: float) -> None:
        # Responses we give (accept, resync/recover response) may raise further AA-signals.
        while events := self.sscop.take_events():
            for e in events:
                self._on_sscop(e, now)

    def _on_sscop(self, e: Any, now: float) -> None:
        st, k = self.state, e.kind
        if k == Ev.ESTABLISH_IND:
            if st == State.RELEASED and self.sscop.state == SscopState.INCOMING_CONNECTION_PENDING:
                self.sscop.accept(b"", now)                    # never refused (Q.2130 §6)
                self.state = State.ESTABLISHED
                self._event(AalEv.ESTABLISH_IND, e.data)
            else:
                self.stats.bad_signals += 1
        elif k == Ev.ESTABLISH_CONF:
            if st == State.AWAITING_ESTABLISH:
                self.state = State.ESTABLISHED
                self._event(AalEv.ESTABLISH_CONF, e.data)
            else:
                self.stats.bad_signals += 1
        elif k == Ev.RELEASE_IND:
            if st in (State.AWAITING_ESTABLISH, State.ESTABLISHED, State.AWAITING_RESYNC):
                self.state = State.RELEASED
                self._event(AalEv.RELEASE_IND, e.data, e.source)
                if self.keep_up and e.source == "sscop":
                    # Q.2931 §5.6.10's AAL-ESTABLISH.request, done on the user's behalf
                    self.stats.reestablish += 1
                    self.state = State.AWAITING_ESTABLISH
                    self.sscop.establish(b"", now)
            else:
                self.stats.bad_signals += 1
        elif k == Ev.RELEASE_CONF:
            if st == State.AWAITING_RELEASE:
                self.state = State.RELEASED
                self._event(AalEv.RELEASE_CONF)
            else:
                self.stats.bad_signals += 1
        elif k == Ev.DATA_IND:
            if st == State.ESTABLISHED:
                self._event(AalEv.DATA_IND, e.data)
            else:
                self.stats.bad_signals += 1
        elif k == Ev.UNITDATA_IND:
            self._event(AalEv.UNITDATA_IND, e.data)           # in any state, like UD itself
        elif k == Ev.RESYNC_IND:
            if st == State.ESTABLISHED:
                self.sscop.resync_response(now)
                self._event(AalEv.ESTABLISH_IND, e.data)
            else:
                self.stats.bad_signals += 1
        elif k == Ev.RESYNC_CONF:
            if st == State.AWAITING_RESYNC:
                self.state = State.ESTABLISHED
                self._event(AalEv.ESTABLISH_CONF)
            else:
                self.stats.bad_signals += 1
        elif k == Ev.RECOVER_IND:
            if st == State.ESTABLISHED:
                self.sscop.recover_response(now)
                self._event(AalEv.ESTABLISH_IND)
            else:
                self.stats.bad_signals += 1
        elif k == Ev.MAA_ERROR:
            self.stats.maa_errors += 1
            self.maa_errors = (self.maa_errors + [e.code or "?"])[-32:]
        # MAA-UNITDATA (MD PDUs) belongs to layer management, which SSCF-UNI does not carry.

    def _event(self, kind: AalEv, data: bytes = b"", source: str | None = None) -> None:
        self._events.append(AalEvent(kind, bytes(data), source))
