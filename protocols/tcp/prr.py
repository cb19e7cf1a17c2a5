"""Proportional Rate Reduction (RFC 6937) with the slow-start reduction bound (PRR-SSRB),
as Linux's tcp_cwnd_reduction runs it: sans-IO, octets in, a congestion window out.

A reduction (fast recovery; ECN's CWR state may use the same) brings cwnd from its value
before the reduction (RecoverFS's stand-in: Linux takes prior_cwnd) down to ssthresh over
about one round trip, sending in proportion to what the peer delivers, instead of the
halving at once and the burst after it that RFC 6675 alone gives:

  * while the pipe is above ssthresh (§3 "proportional"): send so that, in all,
    ceil(ssthresh * prr_delivered / prior_cwnd) has gone out -- one segment per
    1/(1-beta) delivered (CUBIC: 7 per 10);
  * once the pipe is at or below ssthresh (§3 "SSRB"): grow back towards ssthresh no faster
    than slow start -- what was delivered and not yet answered, at least what this ACK
    delivered, plus one segment when SND.UNA moved and nothing new was found lost.

Linux counts whole segments; here octets, with the proportional target rounded up to whole
segments so that the same ACKs release the same segments as Linux's.  The first call of a
reduction always allows one segment: the fast retransmission goes whatever the pipe.

The caller (input.py) starts it when recovery begins, calls `on_ack` on every ACK during
recovery (after loss detection, with the pipe as it now is) and sets cwnd to its answer,
counts what it sends with `on_sent`, and ends it when recovery ends (cwnd = ssthresh then,
Linux tcp_end_cwnd_reduction).  O(1) per ACK.
"""
from __future__ import annotations


class Prr:
    __slots__ = ("active", "prior_cwnd", "ssthresh", "delivered", "out")

    def __init__(self) -> None:
        self.active = False
        self.prior_cwnd = 0         # cwnd when the reduction began (Linux prior_cwnd)
        self.ssthresh = 0           # the target
        self.delivered = 0          # prr_delivered: octets the peer got (ACKed or SACKed) since
        self.out = 0                # prr_out: octets sent since (retransmissions and new data)

    def start(self, prior_cwnd: int, ssthresh: int) -> None:
        """RFC 6937 §3 "at the beginning of recovery" (Linux tcp_init_cwnd_reduction)."""
        self.active = True
        self.prior_cwnd = max(prior_cwnd, 1)
        self.ssthresh = ssthresh
        self.delivered = 0
        self.out = 0

    def on_sent(self, octets: int) -> None:
        if self.active:
            self.out += octets

    def on_ack(self, delivered: int, pipe: int, mss: int, una_advanced: bool, newly_lost: bool) -> int | None:
        """RFC 6937 §3 "on every ACK during recovery": the new cwnd (pipe + sndcnt), or None
        when this ACK delivered nothing (cwnd stays, as in Linux)."""
        if not self.active or delivered <= 0:
            return None
        self.delivered += delivered
        room = self.ssthresh - pipe
        if room < 0:
            # proportional: ceil(ssthresh * prr_delivered / prior_cwnd), in whole segments
            whole = -(-self.ssthresh * self.delivered // (self.prior_cwnd * mss))
            sndcnt = whole * mss - self.out
        else:
            # PRR-SSRB: slow start back up to ssthresh
            sndcnt = max(self.delivered - self.out, delivered)
            if una_advanced and not newly_lost:
                sndcnt += mss
            sndcnt = min(room, sndcnt)
        if self.out == 0:
            sndcnt = max(sndcnt, mss)           # the fast retransmission goes (Linux does the same)
        return pipe + max(sndcnt, 0)

    def end(self) -> None:
        self.active = False


# The reduction of a connection that has never reduced: shared and never started (a
# connection makes its own at its first recovery, input.py) -- an idle one holds none.
IDLE = Prr()
