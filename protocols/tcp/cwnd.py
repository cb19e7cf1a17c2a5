"""Linux's rules for when cwnd may grow and when it restarts, sans-IO.

* cwnd-limited (Linux tcp_cwnd_validate / tcp_is_cwnd_limited): cwnd grows on ACKs only
  while it is what limits sending.  After each burst the sender notes whether cwnd stopped
  it, and the most it had in flight; the note holds for a window (until SND.UNA passes
  what was sent when it was taken), so one short write does not forget a full window.  In
  slow start cwnd also grows while it is below twice that most in flight (it must be able
  to double what the ACKs show); in congestion avoidance only when cwnd stopped sending.
  An application that sends less than cwnd allows does not grow it (RFC 7661 §4.1's
  concern: a cwnd never used says nothing of the path).
* restart after idle (RFC 5681 §4.1, Linux tcp_slow_start_after_idle / tcp_cwnd_restart):
  when new data is queued with nothing in flight and the last data left more than an RTO
  ago, cwnd is halved per RTO idle, down to the restart window min(initial window, cwnd),
  and ssthresh keeps at least 3/4 of the old cwnd (tcp_current_ssthresh).  Linux halves in
  whole segments; so does this.
"""
from __future__ import annotations

from . import seq as sq


class CwndUse:
    """How fully cwnd was used over the last window (Linux is_cwnd_limited,
    max_packets_out, cwnd_usage_seq), and when data last left (lsndtime)."""
    __slots__ = ("limited", "max_out", "usage_seq", "last_send")

    def __init__(self) -> None:
        self.limited = False
        self.max_out = 0            # octets in flight at most during the window
        self.usage_seq: int | None = None
        self.last_send: float | None = None

    def on_burst(self, cwnd_limited: bool, in_flight: int, una: int, nxt: int) -> None:
        """After the sender sent what it could (Linux tcp_cwnd_validate): a new window, a
        cwnd-limited burst, or more in flight than noted so far replaces the note."""
        if self.usage_seq is None or sq.ge(una, self.usage_seq) or cwnd_limited \
                or (not self.limited and in_flight > self.max_out):
            self.limited = cwnd_limited
            self.max_out = in_flight
            self.usage_seq = nxt

    def is_cwnd_limited(self, cwnd: int, ssthresh: int) -> bool:
        """Linux tcp_is_cwnd_limited: may an ACK grow cwnd?"""
        if self.limited:
            return True
        return cwnd < ssthresh and cwnd < 2 * self.max_out


def restart_after_idle(cwnd: int, ssthresh: int, idle: float, rto: float, mss: int,
                       initial: int) -> tuple[int, int]:
    """Linux tcp_cwnd_restart: (cwnd, ssthresh) after `idle` seconds without sending.
    Only called when idle > rto (tcp_slow_start_after_idle_check)."""
    ssthresh = max(ssthresh, cwnd * 3 // 4)             # tcp_current_ssthresh (not in a reduction)
    restart = min(initial, cwnd)
    segs, floor = cwnd // mss, max(restart // mss, 1)
    idle -= rto
    while idle > 0 and segs > floor:
        segs >>= 1
        idle -= rto
    return max(segs * mss, restart), ssthresh
