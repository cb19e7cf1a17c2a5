"""Q.2931 / UNI 3.1 call control vocabulary: sides, timers, the Call record, events.

The entity itself is `protocols/atm/uni/control.py`.  States are the Q.2931 call state codes
(`ie.CS_*`), shared by the user side (U0-U12) and the network side (N0-N12):

    0 null              1 call initiated         3 outgoing call proceeding
    4 call delivered    6 call present           7 call received
    8 connect request   9 incoming call proceeding
    10 active           11 release request       12 release indication

Events are the Q.2931 primitives toward the call control user (the socket layer on a
host, the routing core of a switch), one `CallEvent` each.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ndd.counters import Counters

from .q2931 import (
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
    ConnectionId,
    Q2931Message,
)


class Side(str, Enum):
    USER = "user"
    NETWORK = "network"


@dataclass(frozen=True)
class UniConfig:
    """Timer values in seconds (UNI 3.1 §5.7).  T317 is implementation
    dependent (it must be shorter than the peer's T316)."""
    t303: float = 4.0      # SETUP sent, no answer: SETUP once more, then clear
    t308: float = 30.0     # RELEASE sent, no RELEASE COMPLETE: RELEASE once more
    t309: float = 10.0     # SAAL lost with active calls: wait for the link to return
    t310: float = 10.0     # CALL PROCEEDING received, no ALERTING/CONNECT/RELEASE
    t313: float = 4.0      # user's CONNECT sent, no CONNECT ACKNOWLEDGE
    t316: float = 120.0    # RESTART sent, no RESTART ACKNOWLEDGE: RESTART once more
    t317: float = 60.0     # RESTART received: our calls must be cleared within this
    t322: float = 4.0      # STATUS ENQUIRY sent, no STATUS
    n322: int = 3          # STATUS ENQUIRY transmissions before clearing (cause 41)
    # Bounds on what a peer can make us hold.  Calls: a SETUP beyond max_calls is refused
    # at once with RELEASE COMPLETE, cause 47 (resource unavailable); our own setup() gets
    # ENOBUFS.  Held: messages waiting for the SAAL to come up, oldest dropped beyond it.
    max_calls: int = 4096
    max_held: int = 256


# States where the call is being cleared (for STATUS audits).
CLEARING_STATES = frozenset({CS_RELEASE_REQUEST, CS_RELEASE_INDICATION})


# The call state codes say which way a call goes, on either side of the UNI: 1/3/4 are
# the user's outgoing call (U1/U3/U4 against N1/N3/N4), 6/7/8/9 its incoming call.
OUTGOING_STATES = frozenset({CS_CALL_INITIATED, CS_OUTGOING_PROCEEDING, CS_CALL_DELIVERED})
INCOMING_STATES = frozenset({CS_CALL_PRESENT, CS_CALL_RECEIVED, CS_CONNECT_REQUEST,
                             CS_INCOMING_PROCEEDING})


def states_compatible(ours: int, theirs: int) -> bool:
    """Q.2931 §5.6.12: is the peer's call state (from STATUS) consistent with ours?
    (Which states are incompatible is the implementation's choice.)  Null against
    non-null never is; a call being cleared on either side always is; a call going one
    way never meets one going the other (as ngatm's state_compat); the active state meets
    only active or connect request (CONNECT / CONNECT ACK in flight)."""
    if (ours == CS_NULL) != (theirs == CS_NULL):
        return False
    if ours in CLEARING_STATES or theirs in CLEARING_STATES:
        return True
    if ((ours in OUTGOING_STATES and theirs in INCOMING_STATES)
            or (ours in INCOMING_STATES and theirs in OUTGOING_STATES)):
        return False
    if ours == CS_ACTIVE or theirs == CS_ACTIVE:
        return {ours, theirs} <= {CS_ACTIVE, CS_CONNECT_REQUEST}
    return True


class CallEv(str, Enum):
    """Q.2931 primitives to the call control user."""
    SETUP_IND = "SETUP.indication"                  # a SETUP arrived: answer it
    PROCEEDING_IND = "PROCEEDING.indication"        # CALL PROCEEDING received
    ALERTING_IND = "ALERTING.indication"
    SETUP_CONF = "SETUP.confirm"                    # CONNECT received: the call is active
    SETUP_COMPLETE_IND = "SETUP-COMPLETE.indication"  # CONNECT ACKNOWLEDGE received
    RELEASE_IND = "RELEASE.indication"              # the call ended, not by our request
    RELEASE_CONF = "RELEASE.confirm"                # our release is complete
    STATUS_IND = "STATUS.indication"                # a STATUS arrived (after an enquiry)
    RESTART_IND = "RESTART.indication"              # peer restarted a VC / the interface
    RESTART_CONF = "RESTART.confirm"                # our RESTART was acknowledged
    RESTART_FAIL = "RESTART.failure"                # T316 twice / T317 (maintenance)
    LINK_UP = "LINK.up"                             # the signalling AAL is established
    LINK_DOWN = "LINK.down"


class Why(str, Enum):
    """Why a call ended, for the socket layer's errno (sockets/svc.py: connect_errno, reset_errno)."""
    PEER = "peer"            # RELEASE / RELEASE COMPLETE from the peer (its cause)
    LOCAL = "local"          # our own release
    TIMER = "timer"          # T303 twice, T310, T313, T322: no answer
    SAAL = "saal"            # the signalling link was lost (T309 expired, or not active)
    RESTART = "restart"      # RESTART of the VC or the interface
    PROTOCOL = "protocol"    # a message or IE error (cause 96/97/99/100/101/111)


@dataclass(eq=False)
class Call:
    """One call reference on one UNI.  `ours`: we allocated the call reference, so our
    messages carry flag 0 (Q.2931 §4.3)."""
    callref: int
    ours: bool
    state: int = CS_NULL
    setup: Q2931Message | None = None       # the SETUP, sent or received
    conn_id: ConnectionId | None = None     # the VC (network-assigned)
    cause: int | None = None                # clearing cause, once known
    location: int | None = None
    diagnostics: bytes = b""                # the clearing cause's diagnostics, as sent or received
    why: Why | None = None
    answered: bool = False                  # our side has answered the SETUP (not U6/N1 raw)
    done: bool = False                      # terminal event already given to the user
    context: Any = None                     # the call control user's own (socket, leg)
    reply_ies: list[Any] = field(default_factory=list)   # our RELEASE COMPLETE's cause
    release_ies: list[Any] = field(default_factory=list)  # our RELEASE's, for T308 to repeat
    enquiries: list[int] = field(default_factory=list)   # our state as each unanswered
                                                          # STATUS ENQUIRY left (oldest first)
    # timers: name -> (deadline, expiries so far)
    timers: dict[str, list[float]] = field(default_factory=dict)

    @property
    def flag(self) -> int:
        return 0 if self.ours else 1

    @property
    def key(self) -> tuple[int, bool]:
        return (self.callref, self.ours)

    @property
    def vc(self) -> tuple[int, int] | None:
        return None if self.conn_id is None else (self.conn_id.vpi, self.conn_id.vci)


@dataclass(frozen=True, slots=True)
class CallEvent:
    kind: CallEv
    call: Call | None = None
    cause: int | None = None
    msg: Q2931Message | None = None
    why: Why | None = None
    calls: tuple[Call, ...] = ()             # RESTART: the calls it cleared


@dataclass
class UniStats(Counters):
    rx_msgs: int = 0
    tx_msgs: int = 0
    rx_bad: int = 0             # header faults: ignored (Q.2931 §5.6.1-5.6.2)
    unknown_callref: int = 0    # §5.6.3
    status_sent: int = 0
    calls_in: int = 0
    calls_out: int = 0
    timer_expiries: int = 0
    t309_cleared: int = 0
    restarts_in: int = 0
    restarts_out: int = 0
    queued_link_down: int = 0   # messages held until the SAAL came up
    held_dropped: int = 0       # held messages dropped, the oldest first, beyond max_held
    calls_refused_full: int = 0  # SETUPs refused (cause 47) with max_calls calls in the table
