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
