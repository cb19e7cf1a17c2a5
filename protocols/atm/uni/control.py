"""Q.2931 / UNI 3.1 call control, sans-IO: one entity per signalling channel (VC 0/5).

`Uni(Side.USER)` is a host's end of a UNI, `Uni(Side.NETWORK)` a switch port's.  The
entity never touches the SAAL itself: it is fed

    aal_event(AalEvent, now)    SAAL primitives up (link up/down, AAL-DATA = a message)
    receive(bytes, now)         one Q.2931 message (what AAL-DATA.indication carries)
    setup/proceeding/alerting/connect/release/status_enquiry/restart   user primitives
    poll(now)                   timers, when `poll_at()` says

and answers with `take_actions()` -- ("data", bytes) to send by AAL-DATA.request,
("establish",) / ("release",) for the SAAL -- and `take_events()` (CallEvent), plus
`on_event` if set.  Handling follows Q.2931 §5 with the UNI 3.1 subset:
  §5.1-5.2  call establishment (T303 once more, T310, T313; the network's first answer
            carries the connection identifier, §5.1.2)
  §5.4      clearing (RELEASE / RELEASE COMPLETE, T308 once more, clear collision §5.4.5)
  §5.5      RESTART of one VC or the interface (T316 once more, T317)
  §5.6      error handling: header faults ignored, unknown call references (cause 81,
            101 for a STATUS naming one), unknown / unexpected messages (97 / 101) and IE
            errors (96 / 99 / 100) per the compatibility instruction, STATUS ENQUIRY ->
            STATUS (cause 30), STATUS audit (cause 101), T322; SAAL loss (T309) and
            re-establishment audits.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from protocols.atm.saal.sscf import AalEv, AalEvent

from .call import Call, CallEv, CallEvent, Side, UniConfig, UniStats, Why, states_compatible
from .causes import (
    CAUSE_DESTINATION_OUT_OF_ORDER,
    CAUSE_IE_NONEXISTENT,
    CAUSE_INVALID_CALL_REFERENCE,
    CAUSE_INVALID_IE_CONTENTS,
    CAUSE_MANDATORY_IE_MISSING,
    CAUSE_MESSAGE_NOT_COMPATIBLE,
    CAUSE_MESSAGE_TYPE_NONEXISTENT,
    CAUSE_NO_USER_RESPONDING,
    CAUSE_NORMAL_CLEARING,
    CAUSE_NORMAL_UNSPECIFIED,
    CAUSE_PROTOCOL_ERROR,
    CAUSE_RECOVERY_ON_TIMER_EXPIRY,
    CAUSE_RESOURCE_UNAVAILABLE,
    CAUSE_RESPONSE_TO_STATUS_ENQUIRY,
    CAUSE_TEMPORARY_FAILURE,
)
from .q2931 import (
    ALERTING,
    CALL_PROCEEDING,
    CALLREF_MAX,
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
    IE_CALL_STATE,
    IE_CAUSE,
    IE_CONN_ID,
    IE_RESTART,
    LOC_PRIVATE_LOCAL,
    LOC_USER,
    MANDATORY_IES,
    MESSAGE_NAMES,
    MSG_ACT_CLEAR,
    MSG_ACT_DISCARD,
    RELEASE,
    RELEASE_COMPLETE,
    RESTART,
    RESTART_ACK,
    RESTART_ALL,
    RESTART_VC,
    SETUP,
    STATUS,
    STATUS_ENQUIRY,
    AnyIE,
    CallState,
    Cause,
    ConnectionId,
    MalformedIE,
    Q2931Message,
    RestartIndicator,
    UnknownIE,
    parse_header,
    parse_message,
)

Action = tuple  # ("data", bytes) | ("establish",) | ("release",)

# Messages that are valid in any call state (Q.2931 §5.6.4 exceptions).
_ANY_STATE = frozenset({RELEASE, RELEASE_COMPLETE, STATUS, STATUS_ENQUIRY})
# Call-reference messages this entity knows; RESTART(-ACK) use the global reference.
_CALL_MESSAGES = frozenset({ALERTING, CALL_PROCEEDING, SETUP, CONNECT, CONNECT_ACK, RELEASE,
                            RELEASE_COMPLETE, STATUS, STATUS_ENQUIRY})
# State -> messages expected there (besides _ANY_STATE), per side.
_EXPECTED: dict[Side, dict[int, frozenset[int]]] = {
    Side.USER: {
        CS_CALL_INITIATED: frozenset({CALL_PROCEEDING, ALERTING, CONNECT}),
        CS_OUTGOING_PROCEEDING: frozenset({ALERTING, CONNECT}),
        CS_CALL_DELIVERED: frozenset({CONNECT}),
        CS_CONNECT_REQUEST: frozenset({CONNECT_ACK}),
        CS_ACTIVE: frozenset({CONNECT_ACK}),       # a late duplicate is harmless
    },
    Side.NETWORK: {
        CS_CALL_PRESENT: frozenset({CALL_PROCEEDING, ALERTING, CONNECT}),
        CS_INCOMING_PROCEEDING: frozenset({ALERTING, CONNECT}),
        CS_CALL_RECEIVED: frozenset({CONNECT}),
        CS_ACTIVE: frozenset({CONNECT_ACK}),       # the calling user's CONNECT ACK
    },
}
_RELEASING = frozenset({CS_RELEASE_REQUEST, CS_RELEASE_INDICATION})


class Uni:
    """One Q.2931 entity (module doc).  `calls` maps (callref, ours) -> Call."""

    def __init__(self, side: Side | str = Side.USER, config: UniConfig | None = None, *,
                 on_event: Callable[[CallEvent], None] | None = None,
                 auto_restart_ack: bool = True) -> None:
        self.side = Side(side)
        self.config = config or UniConfig()
        self.on_event = on_event
        self.auto_restart_ack = auto_restart_ack
        self.calls: dict[tuple[int, bool], Call] = {}
        self.stats = UniStats()
        self.link_up = False
        # The global call reference runs two machines (Q.2931 §5.5; ngatm's glob_start
        # and glob_respond): our own RESTART (REST0/REST1) and the peer's (REST0/REST2).
        self._rest_start = CS_NULL
        self._rest_respond = CS_NULL
        self.kick: Callable[..., None] = lambda at=None: None
        self._link_asked = False
        self._held: list[bytes] = []          # messages waiting for the SAAL
        self._actions: list[Action] = []
        self._events: list[CallEvent] = []
        self._next_ref = 1
        self._gtimers: dict[str, list[float]] = {}   # T309, T316, T317
        self._restart_msg: Q2931Message | None = None
        self._restart_ies: list[AnyIE] = []

    # --- outputs ----------------------------------------------------------------------
    def take_actions(self) -> list[Action]:
        a, self._actions = self._actions, []
        return a

    def take_events(self) -> list[CallEvent]:
        e, self._events = self._events, []
        return e

    @property
    def restart_state(self) -> int:
        """REST1 while our RESTART awaits its ACK, else REST2 while a received RESTART
        is not acknowledged yet, else REST0."""
        return self._rest_start or self._rest_respond

    @property
    def location(self) -> int:
        return LOC_USER if self.side is Side.USER else LOC_PRIVATE_LOCAL

    # --- timers (stack/timers.py contract) ------------------------------------------------
    def poll_at(self) -> float | None:
        ats = [t[0] for t in self._gtimers.values()]
        for c in self.calls.values():
            ats.extend(t[0] for t in c.timers.values())
        return min(ats, default=None)

    def poll(self, now: float) -> None:
        for name, t in list(self._gtimers.items()):
            if t[0] <= now and self._gtimers.get(name) is t:
                self.stats.timer_expiries += 1
                getattr(self, f"_expire_{name}")(now)
        for call in list(self.calls.values()):
            for name, t in list(call.timers.items()):
                if t[0] <= now and call.timers.get(name) is t and self.calls.get(call.key) is call:
                    self.stats.timer_expiries += 1
                    t[1] += 1
                    getattr(self, f"_expire_{name}")(call, now, t[1])

    def _start(self, call: Call, name: str, now: float, count: int = 0) -> None:
        at = now + getattr(self.config, name)
        call.timers[name] = [at, count]
        self.kick(at)

    def _gstart(self, name: str, now: float, count: int = 0) -> None:
        at = now + getattr(self.config, name)
        self._gtimers[name] = [at, count]
        self.kick(at)

    # --- SAAL side ----------------------------------------------------------------------
    def aal_event(self, ev: AalEvent, now: float) -> None:
        if ev.kind in (AalEv.ESTABLISH_IND, AalEv.ESTABLISH_CONF):
            self._link_established(now)
        elif ev.kind in (AalEv.RELEASE_IND, AalEv.RELEASE_CONF):
            self._link_lost(now)
        elif ev.kind == AalEv.DATA_IND:
            self.receive(ev.data, now)
        # AAL-UNITDATA carries nothing for UNI 3.1 call control.

    def _link_established(self, now: float) -> None:
        self.link_up, self._link_asked = True, False
        self._gtimers.pop("t309", None)
        self._event(CallEvent(CallEv.LINK_UP))
        held, self._held = self._held, []
        for m in held:
            self._actions.append(("data", m))
        # Q.2931 §5.6.10-11: after the link was re-established (or resynchronised while
        # up) audit each surviving active call with STATUS ENQUIRY.
        for call in list(self.calls.values()):
            if call.state == CS_ACTIVE and "t322" not in call.timers:
                self.status_enquiry(call, now)

    def _link_lost(self, now: float) -> None:
        if not self.link_up and not self._link_asked and not self._held:
            return
        was_up, self.link_up, self._link_asked = self.link_up, False, False
        self._event(CallEvent(CallEv.LINK_DOWN))
        # §5.6.10: calls not active are cleared at once (41; 27 when the link never came
        # up: the far end is out of order); active ones wait for T309.
        active = False
        for call in list(self.calls.values()):
            if call.state == CS_ACTIVE:
                active = True
                call.timers.pop("t322", None)
                call.enquiries.clear()                # their answers are lost with the link
            else:
                self._clear_internally(call, CAUSE_TEMPORARY_FAILURE if was_up
                                       else CAUSE_DESTINATION_OUT_OF_ORDER, Why.SAAL)
        if self._held:
            self._held.clear()
        if active:
            if "t309" not in self._gtimers:
                self._gstart("t309", now)
            self._ask_link()

    def _expire_t309(self, now: float) -> None:
        del self._gtimers["t309"]
        for call in list(self.calls.values()):
            self.stats.t309_cleared += 1
            self._clear_internally(call, CAUSE_DESTINATION_OUT_OF_ORDER, Why.SAAL)

    def _ask_link(self) -> None:
        if not self.link_up and not self._link_asked:
            self._link_asked = True
            self._actions.append(("establish",))

    def establish_link(self) -> None:
        """Ask for the signalling AAL now (a switch port, or a host at start)."""
        self._ask_link()

    def shutdown(self) -> None:
        """The entity goes away: every call ends here (RELEASE.indication, Why.SAAL,
        cause 41), nothing more is sent."""
        self.link_up = self._link_asked = False
        self._held.clear()
        self._gtimers.clear()
        for call in list(self.calls.values()):
            self._clear_internally(call, CAUSE_TEMPORARY_FAILURE, Why.SAAL)
        self._actions.clear()

    # --- sending --------------------------------------------------------------------------
    def _send_msg(self, msg: Q2931Message) -> None:
        data = msg.emit()
        self.stats.tx_msgs += 1
        if self.link_up:
            self._actions.append(("data", data))
        else:
            self.stats.queued_link_down += 1
            if len(self._held) >= self.config.max_held:
                del self._held[0]                     # bounded: the oldest goes (T309 clears calls anyway)
                self.stats.held_dropped += 1
            self._held.append(data)
            self._ask_link()

    def _send(self, call: Call, mtype: int, ies: Iterable[AnyIE] = ()) -> Q2931Message:
        msg = Q2931Message(mtype, call.callref, call.flag, list(ies))
        self._send_msg(msg)
        return msg

    def _cause(self, cause: int, diagnostics: bytes = b"") -> Cause:
        return Cause(cause, self.location, diagnostics)

    def _event(self, ev: CallEvent) -> None:
        if self.on_event is not None:
            self.on_event(ev)
        else:
            self._events.append(ev)

    def _new_callref(self) -> int:
        for _ in range(CALLREF_MAX):
            ref = self._next_ref
            self._next_ref = ref % CALLREF_MAX + 1
            if (ref, True) not in self.calls:
                return ref
        raise OSError(105, "no call reference free")   # ENOBUFS

    # --- user primitives ------------------------------------------------------------------
    def setup(self, ies: Iterable[AnyIE], now: float, *, conn_id: ConnectionId | None = None,
              context: object = None) -> Call:
        """Send SETUP (user: U0 -> U1; network: N0 -> N6, `conn_id` is mandatory: the
        network assigns the VC, UNI 3.1 §5.1.2.1; EINVAL without it)."""
        if self.side is Side.NETWORK and conn_id is None:
            raise OSError(22, "the network's SETUP needs a connection identifier")
        if len(self.calls) >= self.config.max_calls:
            raise OSError(105, "call table full")       # ENOBUFS
        call = Call(self._new_callref(), True, context=context)
        ies = [ie for ie in ies if ie.id != IE_CONN_ID]
        if conn_id is not None:
            call.conn_id = conn_id
            ies.append(conn_id)
        call.state = CS_CALL_INITIATED if self.side is Side.USER else CS_CALL_PRESENT
        self.calls[call.key] = call
        self.stats.calls_out += 1
        call.setup = self._send(call, SETUP, ies)
        self._start(call, "t303", now)
        return call

    def proceeding(self, call: Call, now: float, conn_id: ConnectionId | None = None) -> None:
        """CALL PROCEEDING to a SETUP we received (U6 -> U9, N1 -> N3)."""
        want = CS_CALL_PRESENT if self.side is Side.USER else CS_CALL_INITIATED
        self._check(call, (want,))
        ies = self._first_answer_ies(call, conn_id)
        call.state = CS_INCOMING_PROCEEDING if self.side is Side.USER else CS_OUTGOING_PROCEEDING
        self._send(call, CALL_PROCEEDING, ies)

    def alerting(self, call: Call, now: float, conn_id: ConnectionId | None = None) -> None:
        """ALERTING (U6/U9 -> U7; N1/N3 -> N4)."""
        if self.side is Side.USER:
            self._check(call, (CS_CALL_PRESENT, CS_INCOMING_PROCEEDING))
            ies = self._first_answer_ies(call, conn_id)
            call.state = CS_CALL_RECEIVED
        else:
            self._check(call, (CS_CALL_INITIATED, CS_OUTGOING_PROCEEDING))
            ies = self._first_answer_ies(call, conn_id)
            call.state = CS_CALL_DELIVERED
        self._send(call, ALERTING, ies)

    def connect(self, call: Call, now: float, ies: Iterable[AnyIE] = (),
                conn_id: ConnectionId | None = None) -> None:
        """CONNECT: a user accepts a call (-> U8, T313); the network tells the calling
        user its call is answered (-> N10)."""
        if self.side is Side.USER:
            self._check(call, (CS_CALL_PRESENT, CS_INCOMING_PROCEEDING, CS_CALL_RECEIVED))
        else:
            self._check(call, (CS_CALL_INITIATED, CS_OUTGOING_PROCEEDING, CS_CALL_DELIVERED))
        # (a primitive that raises leaves the call as it was)
        ies = [ie for ie in ies if ie.id != IE_CONN_ID] + self._first_answer_ies(call, conn_id)
        if self.side is Side.USER:
            call.state = CS_CONNECT_REQUEST
            self._send(call, CONNECT, ies)
            self._start(call, "t313", now)
        else:
            call.state = CS_ACTIVE
            self._send(call, CONNECT, ies)

    def release(self, call: Call, now: float, cause: int = CAUSE_NORMAL_CLEARING,
                diagnostics: bytes = b"", location: int | None = None) -> None:
        """Clear a call (§5.4.2): an unanswered incoming SETUP is refused with RELEASE
        COMPLETE (state -> 0, RELEASE.confirm at once), any other call gets RELEASE
        (-> 11, T308).  Releasing a call already being cleared does nothing.  `location`
        defaults to ours; a switch passing on the far leg's cause keeps its location
        (Q.850 §2.2.5: the location is where the cause was generated)."""
        if self.calls.get(call.key) is not call or call.state in _RELEASING:
            return
        loc = self.location if location is None else location
        call.cause, call.location, call.why = cause, loc, call.why or Why.LOCAL
        call.diagnostics = diagnostics
        ie = Cause(cause, loc, diagnostics)
        if not call.answered and not call.ours:
            self._send(call, RELEASE_COMPLETE, [ie])
            self._finish(call, CallEv.RELEASE_CONF)
            return
        self._send_release(call, [ie], now)

    def status_enquiry(self, call: Call, now: float) -> None:
        """STATUS ENQUIRY (§5.6.11), T322; n322 tries, then the call is cleared (41)."""
        if self.calls.get(call.key) is not call:
            return
        self._send_enquiry(call)
        if "t322" not in call.timers:
            self._start(call, "t322", now)

    def _send_enquiry(self, call: Call) -> None:
        self._send(call, STATUS_ENQUIRY)
        call.enquiries = call.enquiries[-7:] + [call.state]

    def restart(self, now: float, conn_id: ConnectionId | None = None) -> list[Call]:
        """RESTART (§5.5.1) of one VC (`conn_id`) or of every VC on this interface: the
        calls on it are cleared here at once (RELEASE.indication, Why.RESTART) and the
        peer is asked to do the same.  Returns the calls cleared."""
        if self._rest_start != CS_NULL:
            raise OSError(114, "a RESTART is already in progress")   # EALREADY
        ind = RestartIndicator(RESTART_ALL if conn_id is None else RESTART_VC)
        self._restart_ies = [ind, conn_id] if conn_id is not None else [ind]
        cleared = self._restart_calls(conn_id)
        self._rest_start = CS_REST1
        self.stats.restarts_out += 1
        self._send_global(RESTART, self._restart_ies, flag=0)
        self._gstart("t316", now)
        return cleared

    def restart_ack(self) -> None:
        """Acknowledge a received RESTART (only needed with auto_restart_ack=False)."""
        if self._rest_respond == CS_REST2 and self._restart_msg is not None:
            self._gtimers.pop("t317", None)
            self._rest_respond = CS_NULL
            ies = [ie for ie in self._restart_msg.ies if ie.id in (IE_RESTART, IE_CONN_ID)]
            self._send_global(RESTART_ACK, ies, flag=1)
            self._restart_msg = None

    def _check(self, call: Call, states: tuple[int, ...]) -> None:
        if self.calls.get(call.key) is not call or call.state not in states:
            raise OSError(22, f"call {call.callref} in state {call.state}")   # EINVAL

    def _first_answer_ies(self, call: Call, conn_id: ConnectionId | None) -> list[AnyIE]:
        """The network's first answer to a SETUP carries the connection identifier
        (UNI 3.1 §5.1.2.1); later answers do not repeat it."""
        if self.side is Side.NETWORK and not call.answered:
            if conn_id is None:
                conn_id = call.conn_id
            if conn_id is None:
                raise OSError(22, "the network's first answer needs a connection identifier")
            call.conn_id = conn_id
            call.answered = True
            return [conn_id]
        call.answered = True
        return []

    # --- ending a call --------------------------------------------------------------------
    def _finish(self, call: Call, kind: CallEv | None, msg: Q2931Message | None = None) -> None:
        """Release the call reference (-> state 0) and give the user one terminal event."""
        call.state = CS_NULL
        call.timers.clear()
        self.calls.pop(call.key, None)
        if kind is not None and not call.done:
            call.done = True
            self._event(CallEvent(kind, call, call.cause, msg, call.why))

    def _clear_internally(self, call: Call, cause: int, why: Why) -> None:
        if call.state == CS_RELEASE_REQUEST and call.why is Why.LOCAL:
            self._finish(call, CallEv.RELEASE_CONF)   # our own release, cut short
            return
        if call.cause is None or why in (Why.SAAL, Why.RESTART):
            call.cause, call.location, call.why = cause, self.location, why
        self._finish(call, CallEv.RELEASE_IND)

    def _indicate_release(self, call: Call, cause: int, why: Why) -> None:
        """The call is over for the user (RELEASE.indication now) but the call
        reference lives on until the peer completes the clearing."""
        call.cause, call.location, call.why = cause, self.location, why
        if not call.done:
            call.done = True
            self._event(CallEvent(CallEv.RELEASE_IND, call, cause, None, why))

    def _clear(self, call: Call, cause: int, why: Why, now: float, diagnostics: bytes = b"") -> None:
        """Clear a call ourselves for a protocol or timer reason: the user learns at once.
        A call already being cleared is left to its RELEASE COMPLETE / T308 (§5.4.3)."""
        if call.state in _RELEASING:
            return
        self._indicate_release(call, cause, why)
        if not call.answered and not call.ours:
            self._send(call, RELEASE_COMPLETE, [self._cause(cause, diagnostics)])
            self._finish(call, None)
            return
        self._send_release(call, [self._cause(cause, diagnostics)], now)

    def _send_release(self, call: Call, ies: list[AnyIE], now: float) -> None:
        call.timers.clear()
        call.state = CS_RELEASE_REQUEST
        call.release_ies = ies
        self._send(call, RELEASE, ies)
        self._start(call, "t308", now)

    # --- timer expiries (Q.2931 §5.1-5.6) --------------------------------------------------
    def _expire_t303(self, call: Call, now: float, n: int) -> None:
        if n < 2 and call.setup is not None:          # SETUP once more (§5.1.1)
            self._send_msg(call.setup)
            self._start(call, "t303", now, n)
            return
        # Second expiry: RELEASE COMPLETE (102) to the called side; the calling side of a
        # switch learns "no user responding" (18).
        cause = CAUSE_RECOVERY_ON_TIMER_EXPIRY
        self._send(call, RELEASE_COMPLETE, [self._cause(cause)])
        self._clear_internally(call, CAUSE_NO_USER_RESPONDING if self.side is Side.NETWORK
                               else cause, Why.TIMER)

    def _expire_t310(self, call: Call, now: float, n: int) -> None:
        self._clear(call, CAUSE_NO_USER_RESPONDING if self.side is Side.NETWORK
                    else CAUSE_RECOVERY_ON_TIMER_EXPIRY, Why.TIMER, now)

    def _expire_t313(self, call: Call, now: float, n: int) -> None:
        self._clear(call, CAUSE_RECOVERY_ON_TIMER_EXPIRY, Why.TIMER, now)

    def _expire_t308(self, call: Call, now: float, n: int) -> None:
        if n < 2:                                     # the same RELEASE once more (§5.4.3)
            self._send(call, RELEASE, call.release_ies
                       or [self._cause(call.cause or CAUSE_RECOVERY_ON_TIMER_EXPIRY)])
            self._start(call, "t308", now, n)
            return
        self._finish(call, CallEv.RELEASE_CONF)       # give the call reference up

    def _expire_t322(self, call: Call, now: float, n: int) -> None:
        if n < self.config.n322:
            self._send_enquiry(call)
            self._start(call, "t322", now, n)
            return
        call.timers.pop("t322", None)
        call.enquiries.clear()
        self._clear(call, CAUSE_TEMPORARY_FAILURE, Why.TIMER, now)

    def _expire_t316(self, now: float) -> None:
        t = self._gtimers["t316"]
        if t[1] < 1:                                  # RESTART once more (§5.5.1)
            self._send_global(RESTART, self._restart_ies, flag=0)
            self._gstart("t316", now, int(t[1]) + 1)
            return
        del self._gtimers["t316"]
        self._rest_start = CS_NULL
        self._event(CallEvent(CallEv.RESTART_FAIL, why=Why.TIMER))

    def _expire_t317(self, now: float) -> None:
        del self._gtimers["t317"]                     # §5.5.2: maintenance, no ACK
        self._rest_respond = CS_NULL
        self._restart_msg = None
        self._event(CallEvent(CallEv.RESTART_FAIL, why=Why.RESTART))

    # --- receiving ------------------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> None:
        self.stats.rx_msgs += 1
        msg = parse_message(data)
        if isinstance(msg, str):
            hdr = parse_header(data)
            if isinstance(hdr, str):
                self.stats.rx_bad += 1                # §5.6.1-5.6.2: ignore
                return
            # The header is sound but the IE part cannot be framed: protocol error on
            # the call it names (answered on *its* call reference).
            msg = Q2931Message(hdr.msg_type, hdr.callref, hdr.flag, [], hdr.compat)
            self._protocol_error(msg, now)
            return
        if msg.callref == GLOBAL_CALLREF:
            self._receive_global(msg, now)
            return
        call = self.calls.get((msg.callref, msg.flag == 1))
        if call is None:
            self._unknown_callref(msg, now)
            return
        self._receive_call(call, msg, now)

    def _protocol_error(self, msg: Q2931Message, now: float) -> None:
        call = self.calls.get((msg.callref, msg.flag == 1))
        if call is not None and msg.msg_type == SETUP:
            self.stats.rx_bad += 1                    # §5.6.3: a repeated SETUP is ignored
        elif call is not None:
            self._clear(call, CAUSE_PROTOCOL_ERROR, Why.PROTOCOL, now)
        elif msg.msg_type == SETUP and msg.flag == 0 and msg.callref != GLOBAL_CALLREF:
            self._reply(msg, RELEASE_COMPLETE, [self._cause(CAUSE_PROTOCOL_ERROR)])
        else:
            self.stats.rx_bad += 1

    def _reply(self, msg: Q2931Message, mtype: int, ies: list[AnyIE]) -> None:
        """Answer a message on its own call reference, no call record (§5.6.3)."""
        self._send_msg(Q2931Message(mtype, msg.callref, msg.flag ^ 1, ies))

    def _status(self, msg_or_call: Q2931Message | Call, state: int, cause: int,
                diagnostics: bytes = b"") -> None:
        self.stats.status_sent += 1
        ies: list[AnyIE] = [CallState(state), self._cause(cause, diagnostics)]
        if isinstance(msg_or_call, Call):
            self._send(msg_or_call, STATUS, ies)
        else:
            self._reply(msg_or_call, STATUS, ies)

    def _unknown_callref(self, msg: Q2931Message, now: float) -> None:
        """Q.2931 §5.6.3.1: a message for a call reference not in use."""
        t = msg.msg_type
        if t == SETUP and msg.flag == 0:
            self._incoming_setup(msg, now)
            return
        self.stats.unknown_callref += 1
        if t in (RELEASE_COMPLETE, SETUP):
            return                                    # ignore (SETUP with the flag set too)
        if t == STATUS_ENQUIRY:
            self._status(msg, CS_NULL, CAUSE_RESPONSE_TO_STATUS_ENQUIRY)
            return
        if t == STATUS:
            # §5.6.3.2 g) -> §5.6.12: null there too is fine; any other state is answered
            # RELEASE COMPLETE "message not compatible with call state" (as atmsigd and
            # ngatm do), not 81.
            st = msg.get(IE_CALL_STATE)
            if not isinstance(st, CallState) or st.state == CS_NULL:
                return
            self._reply(msg, RELEASE_COMPLETE, [self._cause(CAUSE_MESSAGE_NOT_COMPATIBLE,
                                                            bytes((t,)))])
            return
        self._reply(msg, RELEASE_COMPLETE, [self._cause(CAUSE_INVALID_CALL_REFERENCE)])

    def _incoming_setup(self, msg: Q2931Message, now: float) -> None:
        if len(self.calls) >= self.config.max_calls:
            # a peer opening calls without end must not grow the table: refused at once,
            # no call record (§5.6.3-style answer on its call reference)
            self.stats.calls_refused_full += 1
            self._reply(msg, RELEASE_COMPLETE, [self._cause(CAUSE_RESOURCE_UNAVAILABLE)])
            return
        call = Call(msg.callref, False, setup=msg)
        call.state = CS_CALL_PRESENT if self.side is Side.USER else CS_CALL_INITIATED
        self.calls[call.key] = call
        # Refused here (§5.6.7-5.6.8: RELEASE COMPLETE, back to null), the call was never
        # offered to the user: no RELEASE.indication for it either.
        call.done = True
        verdict = self._check_ies(call, msg, now)
        call.done = False
        if verdict == "drop":
            self.calls.pop(call.key, None)
            return
        if verdict == "cleared":
            return
        cid = msg.get(IE_CONN_ID)
        if isinstance(cid, ConnectionId):
            call.conn_id = cid
        self.stats.calls_in += 1
        self._event(CallEvent(CallEv.SETUP_IND, call, None, msg))

    def _mandatory(self, call: Call, msg: Q2931Message) -> tuple[int, ...]:
        ids = MANDATORY_IES.get(msg.msg_type, ())
        if self.side is Side.USER and (
                msg.msg_type == SETUP or (call.state == CS_CALL_INITIATED and msg.msg_type in
                                          (CALL_PROCEEDING, ALERTING, CONNECT))):
            ids = (*ids, IE_CONN_ID)      # the network assigns the VC (UNI 3.1 §5.1.2.1)
        return ids

    def _check_ies(self, call: Call, msg: Q2931Message, now: float) -> str:
        """Q.2931 §5.6.7-5.6.8.  Returns "ok", "drop" (ignore the message), "cleared"
        (the call was cleared for it).  Reports STATUS where the instruction says so and
        strips IEs to be discarded."""
        mandatory = self._mandatory(call, msg)
        present = {ie.id: ie for ie in reversed(msg.ies)}
        missing = [i for i in mandatory if i not in present]
        bad = [i for i in mandatory if isinstance(present.get(i), (MalformedIE, UnknownIE))]
        t = msg.msg_type
        if missing or bad:
            cause = CAUSE_MANDATORY_IE_MISSING if missing else CAUSE_INVALID_IE_CONTENTS
            diag = bytes(missing or bad)
            if t == RELEASE:
                # §5.6.7.1: a RELEASE without its cause is still a RELEASE (cause 31),
                # completed with RELEASE COMPLETE carrying 96/100.
                msg.ies = [ie for ie in msg.ies if ie.id != IE_CAUSE] + [
                    Cause(CAUSE_NORMAL_UNSPECIFIED, LOC_USER)]
                call.reply_ies = [self._cause(cause, diag)]   # in our RELEASE COMPLETE
                return "ok"
            if t in (RELEASE_COMPLETE, STATUS):
                return "ok" if t == RELEASE_COMPLETE else "drop"
            if t == SETUP or (call.state == CS_CALL_INITIATED and self.side is Side.USER):
                self._clear(call, cause, Why.PROTOCOL, now, diag)
                return "cleared"
            self._status(call, call.state, cause, diag)
            return "drop"
        # A clearing message is acted upon whatever its IEs say (the call is ending
        # anyway; ngatm likewise verifies RELEASE / RELEASE COMPLETE "for no point"): IE
        # errors in a RELEASE are reported in our RELEASE COMPLETE (cause 99/100).
        clearing = t in (RELEASE, RELEASE_COMPLETE)
        report: list[int] = []
        report_cause = 0
        keep: list[AnyIE] = []
        for ie in msg.ies:
            if not isinstance(ie, (UnknownIE, MalformedIE)):
                keep.append(ie)
                continue
            cause = CAUSE_IE_NONEXISTENT if isinstance(ie, UnknownIE) else CAUSE_INVALID_IE_CONTENTS
            act = ie.action if ie.flag else None
            if clearing:
                act = None if act != IE_ACT_DISCARD else act
            if act == IE_ACT_CLEAR:
                self._clear(call, cause, Why.PROTOCOL, now, bytes((ie.id,)))
                return "cleared"
            if act in (IE_ACT_DISCARD_MSG, IE_ACT_DISCARD_MSG_REPORT):
                if act == IE_ACT_DISCARD_MSG_REPORT:
                    self._status(call, call.state, cause, bytes((ie.id,)))
                return "drop"
            if act != IE_ACT_DISCARD:                 # default, and "discard and report"
                report.append(ie.id)
                report_cause = report_cause or cause
        msg.ies = keep
        if report and t == RELEASE:
            if not call.reply_ies:
                call.reply_ies = [self._cause(report_cause, bytes(report))]
        elif report and not clearing:
            self._status(call, call.state, report_cause, bytes(report))
        return "ok"

    def _receive_call(self, call: Call, msg: Q2931Message, now: float) -> None:
        t = msg.msg_type
        if t not in _CALL_MESSAGES:
            self._unexpected(call, msg, CAUSE_MESSAGE_TYPE_NONEXISTENT, now)
            return
        if t == SETUP:
            return                                    # a repeated SETUP (our T303 peer)
        if t not in _ANY_STATE and t not in _EXPECTED[self.side].get(call.state, ()):
            if call.state not in _RELEASING:
                self._unexpected(call, msg, CAUSE_MESSAGE_NOT_COMPATIBLE, now)
            return
        if self._check_ies(call, msg, now) != "ok":
            return
        getattr(self, f"_on_{MESSAGE_NAMES[t].lower().replace(' ', '_')}")(call, msg, now)

    def _unexpected(self, call: Call, msg: Q2931Message, cause: int, now: float) -> None:
        """§5.6.4-5.6.5: by the message's explicit instruction, else STATUS (97 / 101)."""
        if msg.msg_flag:
            if msg.msg_action == MSG_ACT_CLEAR:
                self._clear(call, cause, Why.PROTOCOL, now, bytes((msg.msg_type,)))
                return
            if msg.msg_action == MSG_ACT_DISCARD:
                return
        self._status(call, call.state, cause, bytes((msg.msg_type,)))

    # one handler per message type -----------------------------------------------------
    def _take_conn_id(self, call: Call, msg: Q2931Message) -> None:
        cid = msg.get(IE_CONN_ID)
        if isinstance(cid, ConnectionId) and call.conn_id is None:
            call.conn_id = cid

    def _on_call_proceeding(self, call: Call, msg: Q2931Message, now: float) -> None:
        self._take_conn_id(call, msg)
        call.timers.pop("t303", None)
        call.state = (CS_OUTGOING_PROCEEDING if self.side is Side.USER
                      else CS_INCOMING_PROCEEDING)
        self._start(call, "t310", now)
        self._event(CallEvent(CallEv.PROCEEDING_IND, call, None, msg))

    def _on_alerting(self, call: Call, msg: Q2931Message, now: float) -> None:
        self._take_conn_id(call, msg)
        call.timers.pop("t303", None)
        call.timers.pop("t310", None)
        call.state = CS_CALL_DELIVERED if self.side is Side.USER else CS_CALL_RECEIVED
        self._event(CallEvent(CallEv.ALERTING_IND, call, None, msg))

    def _on_connect(self, call: Call, msg: Q2931Message, now: float) -> None:
        self._take_conn_id(call, msg)
        call.timers.pop("t303", None)
        call.timers.pop("t310", None)
        call.state = CS_ACTIVE            # via U10 / N8 -> N10: CONNECT ACK at once
        self._send(call, CONNECT_ACK)
        self._event(CallEvent(CallEv.SETUP_CONF, call, None, msg))

    def _on_connect_acknowledge(self, call: Call, msg: Q2931Message, now: float) -> None:
        if call.state == CS_CONNECT_REQUEST:
            call.timers.pop("t313", None)
            call.state = CS_ACTIVE
            self._event(CallEvent(CallEv.SETUP_COMPLETE_IND, call, None, msg))

    def _on_release(self, call: Call, msg: Q2931Message, now: float) -> None:
        causes = [ie for ie in msg.ies if isinstance(ie, Cause)]
        peer = causes[0] if causes else Cause(CAUSE_NORMAL_UNSPECIFIED)
        if call.state == CS_RELEASE_REQUEST:
            # §5.4.5 clear collision: both sent RELEASE; no RELEASE COMPLETE is sent.
            if call.cause is None:
                call.cause, call.location, call.diagnostics = peer.cause, peer.location, peer.diagnostics
            self._finish(call, CallEv.RELEASE_CONF, msg)
            return
        call.state = CS_RELEASE_INDICATION
        call.timers.clear()
        call.cause, call.location, call.why = peer.cause, peer.location, Why.PEER
        call.diagnostics = peer.diagnostics
        self._send(call, RELEASE_COMPLETE, call.reply_ies)   # 96/100 for a faulty RELEASE
        self._finish(call, CallEv.RELEASE_IND, msg)

    def _on_release_complete(self, call: Call, msg: Q2931Message, now: float) -> None:
        peer = msg.get(IE_CAUSE)
        mine = call.state == CS_RELEASE_REQUEST and call.why is Why.LOCAL
        if isinstance(peer, Cause) and not mine and call.cause is None:
            call.cause, call.location, call.why = peer.cause, peer.location, Why.PEER
            call.diagnostics = peer.diagnostics
        elif call.cause is None:
            call.cause, call.why = CAUSE_NORMAL_UNSPECIFIED, Why.PEER
        self._finish(call, CallEv.RELEASE_CONF if mine else CallEv.RELEASE_IND, msg)

    def _on_status_enquiry(self, call: Call, msg: Q2931Message, now: float) -> None:
        self._status(call, call.state, CAUSE_RESPONSE_TO_STATUS_ENQUIRY)

    def _on_status(self, call: Call, msg: Q2931Message, now: float) -> None:
        """§5.6.12: audit the peer's state; null there means the call is gone."""
        st = msg.get(IE_CALL_STATE)
        peer = st.state if isinstance(st, CallState) else CS_NULL
        cause = msg.get(IE_CAUSE)
        asked = None
        if isinstance(cause, Cause) and cause.cause == CAUSE_RESPONSE_TO_STATUS_ENQUIRY:
            # §5.6.11: the answer to our enquiry stops T322; a STATUS reporting an error
            # (97, 99, 101...) does not.
            call.timers.pop("t322", None)
            asked = call.enquiries.pop(0) if call.enquiries else None
        self._event(CallEvent(CallEv.STATUS_IND, call,
                              cause.cause if isinstance(cause, Cause) else None, msg))
        if peer == CS_NULL:
            if call.cause is None:
                call.cause = cause.cause if isinstance(cause, Cause) else CAUSE_NORMAL_UNSPECIFIED
                call.why = Why.PEER
            local = call.state == CS_RELEASE_REQUEST and call.why is Why.LOCAL
            self._finish(call, CallEv.RELEASE_CONF if local else CallEv.RELEASE_IND, msg)
            return
        # The answer shows the peer before it saw what we sent after the enquiry (our own
        # CONNECT, say): consistent with the state we asked from is consistent too.  The
        # link keeps order, so answers pair with enquiries oldest first.
        if not states_compatible(call.state, peer) and not (
                asked is not None and states_compatible(asked, peer)):
            self._clear(call, CAUSE_MESSAGE_NOT_COMPATIBLE, Why.PROTOCOL, now)

    # --- the global call reference: RESTART (§5.5) -----------------------------------------
    def _send_global(self, mtype: int, ies: list[AnyIE], flag: int) -> None:
        self._send_msg(Q2931Message(mtype, GLOBAL_CALLREF, flag, list(ies)))

    def _restart_calls(self, conn_id: ConnectionId | None) -> list[Call]:
        hit = [c for c in self.calls.values() if conn_id is None or c.vc == (conn_id.vpi, conn_id.vci)]
        for c in hit:
            self._clear_internally(c, CAUSE_TEMPORARY_FAILURE, Why.RESTART)
        return hit

    def _receive_global(self, msg: Q2931Message, now: float) -> None:
        t = msg.msg_type
        # flag 0: from the side that restarts (our respond machine is meant), 1: toward it.
        mine = self._rest_start if msg.flag else self._rest_respond
        if t == RESTART:
            self._on_restart(msg, now)
        elif t == RESTART_ACK:
            if self._rest_start == CS_REST1:
                self._gtimers.pop("t316", None)
                self._rest_start = CS_NULL
                self._event(CallEvent(CallEv.RESTART_CONF, msg=msg))
            else:
                self._status(msg, self._rest_start, CAUSE_MESSAGE_NOT_COMPATIBLE,
                             bytes((t,)))
        elif t == STATUS:
            pass                                      # an answer to our global enquiry
        else:
            # Only RESTART, RESTART ACK and STATUS belong on the global call reference; any
            # other message, STATUS ENQUIRY included, gets STATUS 81 with the global state
            # (Q.931 §5.8.3.3, which Q.2931 §5.6.3 follows; atmsigd stays silent instead).
            self.stats.unknown_callref += 1
            self._status(msg, mine, CAUSE_INVALID_CALL_REFERENCE)

    def _on_restart(self, msg: Q2931Message, now: float) -> None:
        ind = msg.get(IE_RESTART)
        cid = msg.get(IE_CONN_ID)
        if not isinstance(ind, RestartIndicator):
            cause = CAUSE_MANDATORY_IE_MISSING if ind is None else CAUSE_INVALID_IE_CONTENTS
            self._status(msg, self._rest_respond, cause, bytes((IE_RESTART,)))
            return
        if ind.restart_class == RESTART_VC and not isinstance(cid, ConnectionId):
            cause = CAUSE_MANDATORY_IE_MISSING if cid is None else CAUSE_INVALID_IE_CONTENTS
            self._status(msg, self._rest_respond, cause, bytes((IE_CONN_ID,)))
            return
        self.stats.restarts_in += 1
        cleared = self._restart_calls(cid if ind.restart_class == RESTART_VC else None)  # type: ignore[arg-type]
        self._rest_respond = CS_REST2
        self._restart_msg = msg
        self._event(CallEvent(CallEv.RESTART_IND, msg=msg, calls=tuple(cleared)))
        if self.auto_restart_ack:
            self.restart_ack()
        elif self._rest_respond == CS_REST2:
            self._gstart("t317", now)
