"""The connection's side of delivery-rate estimation (rate.py): when sending turns
application-limited.  Apart from rate.py, which the RACK record (rack.py) imports, so that
the estimator itself needs no import of the control block."""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import seq as sq
from .rate import RateEstimator

if TYPE_CHECKING:
    from .tcb import Tcb


def check_app_limited(conn: Tcb) -> None:
    """Linux tcp_rate_check_app_limited: less than a segment waits unsent, cwnd is not full
    and every octet marked lost was sent again -- what goes next is limited by the
    application (§3.4), its samples marked so.  Linux checks at each write (tcp_sendmsg);
    tunstack also when a send pass ends with nothing it may send but a short tail (the
    draft's "when sending"): the tail of a bulk write waits for the flight before it (output.py
    _nagle_holds, a deliberate difference), and sent alone into an empty pipe it would
    count as a network-limited sample of a few hundred octets per round trip -- which
    Linux, whose autocorking lets the tail go with the flight, never takes."""
    rack = conn.rack
    sent = sq.diff(conn.snd_nxt, conn.snd_una)
    if not rack.want_rate or conn.snd.queued - sent >= conn.mss or rack.lost_bytes:
        return
    inflight = rack.inflight if conn.sack_ok and conn.config.rack else sent
    if inflight < conn.cc.cwnd:
        estimator = rack.rate
        if estimator is None:                   # (made on first use: rack.py)
            estimator = rack.rate = RateEstimator()
        estimator.mark_app_limited(inflight)
