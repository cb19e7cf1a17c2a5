"""The connection states (RFC 9293 §3.3.2)."""
from __future__ import annotations

from enum import IntEnum


class State(IntEnum):
    """The eleven states of RFC 9293 §3.3.2, numbered as Linux's TCP_INFO reports them."""
    ESTABLISHED = 1
    SYN_SENT = 2
    SYN_RECEIVED = 3
    FIN_WAIT_1 = 4
    FIN_WAIT_2 = 5
    TIME_WAIT = 6
    CLOSED = 7
    CLOSE_WAIT = 8
    LAST_ACK = 9
    LISTEN = 10
    CLOSING = 11


SYNCHRONIZED = frozenset({State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT,
                          State.CLOSING, State.LAST_ACK, State.TIME_WAIT})
CAN_SEND = frozenset({State.ESTABLISHED, State.CLOSE_WAIT})

# The states as module constants, for the per-segment path: on CPython 3.11 every `State.X`
# goes through the slot hook of EnumType.__getattr__ (~0.3 us, against ~0.02 us for a module
# global), and a segment tested the state a dozen times (issue 15)
ESTABLISHED, SYN_SENT, SYN_RECEIVED = State.ESTABLISHED, State.SYN_SENT, State.SYN_RECEIVED
FIN_WAIT_1, FIN_WAIT_2, TIME_WAIT = State.FIN_WAIT_1, State.FIN_WAIT_2, State.TIME_WAIT
CLOSED, CLOSE_WAIT, LAST_ACK = State.CLOSED, State.CLOSE_WAIT, State.LAST_ACK
LISTEN, CLOSING = State.LISTEN, State.CLOSING
# states whose segments' text is queued (RFC 9293 §3.10.7.4 seventh)
RECEIVES_TEXT = frozenset({ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2})
