"""Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation-02), for BBR.

Each transmission snapshots the connection's delivery state into its RACK record
(rack.SentSegment: `delivered`, `delivered_time`, `first_sent_time`, `app_limited`),
so there is no second per-segment structure.  When an ACK or SACK delivers segments,
the one sent last among them gives the rate sample:

    delivery_rate = (C.delivered - P.delivered) / max(send_elapsed, ack_elapsed)

send_elapsed = P.sent_time - P.first_sent_time (how fast the flight left),
ack_elapsed = C.delivered_time - P.delivered_time (how fast it was acknowledged); the
larger bounds ACK compression and stretched sends (§3.3).  A sample whose interval is
shorter than min_RTT is discarded (§3.3, "not a full flight").  A sample taken while
the sender was application-limited is marked so; BBR lets it raise, never lower, its
bandwidth estimate (§3.4).

Everything is O(1) per segment delivered: the estimator only sees the segments the
ACK removes from the RACK record.
"""
from __future__ import annotations

from typing import Protocol


class SentSegment(Protocol):
    """What the estimator reads and stamps in a transmission's record (rack.SentSegment; a
    protocol, so that rate.py needs no import of rack.py, which imports it)."""
    xmit_ts: float
    retransmitted: bool
    delivered: int
    delivered_time: float | None        # None: no snapshot (taken before a controller asked)
    first_sent_time: float
    app_limited: bool


class RateSample:
    """One ACK's sample (§3.3); `delivery_rate` in bytes/s, 0 when there is none."""
    __slots__ = ("delivered", "interval", "delivery_rate", "is_app_limited", "prior_delivered", "rtt",
                 "newly_delivered", "newly_lost")

    def __init__(self) -> None:
        self.delivered = 0              # bytes delivered over the interval
        self.interval = 0.0
        self.delivery_rate = 0.0
        self.is_app_limited = False
        self.prior_delivered = 0        # C.delivered when the sampled segment left (BBR's rounds)
        self.rtt = -1.0                 # RTT of the sampled segment, -1 if ambiguous (retransmitted)
        self.newly_delivered = 0        # bytes this ACK delivered
        self.newly_lost = 0             # bytes this ACK's loss detection marked lost


class RateEstimator:
    """The connection-level state (§3.1: C.delivered, C.delivered_time,
    C.first_sent_time, C.app_limited) and the per-ACK sample being built."""
    __slots__ = ("delivered", "delivered_time", "first_sent_time", "app_limited", "lost",
                 "_prior_delivered", "_prior_xmit", "_send_elapsed", "_ack_elapsed",
                 "_app_limited", "_rtt", "_acked", "_lost_before")

    def __init__(self) -> None:
        self.delivered = 0              # bytes delivered (ACKed or SACKed) so far
        self.delivered_time = 0.0
        self.first_sent_time = 0.0
        self.app_limited = 0            # C.delivered mark past which the app limit is over; 0: none
        self.lost = 0                   # bytes marked lost so far (BBR's loss-recovery cwnd modulation)
        self._lost_before = 0
        self._reset()

    def _reset(self) -> None:
        self._prior_delivered: int | None = None
        self._prior_xmit = 0.0
        self._send_elapsed = 0.0
        self._ack_elapsed = 0.0
        self._app_limited = False
        self._rtt = -1.0
        self._acked = 0

    # --- §3.2 transmitting --------------------------------------------------------------------
    def on_sent(self, seg: SentSegment, now: float, inflight: int) -> None:
        """Snapshot the delivery state into `seg` (OnPacketSent)."""
        if inflight == 0:
            # nothing in flight: the next flight's clocks start now (the idle gap is no interval)
            self.first_sent_time = self.delivered_time = now
        seg.first_sent_time = self.first_sent_time
        seg.delivered_time = self.delivered_time
        seg.delivered = self.delivered
        seg.app_limited = self.app_limited != 0

    # --- §3.3 acknowledging -----------------------------------------------------------------
    def on_delivered(self, seg: SentSegment, size: int, now: float) -> None:
        """`size` bytes of `seg` were delivered now (UpdateRateSample)."""
        self.delivered += size
        self.delivered_time = now
        self._acked += size
        if seg.delivered_time is None:
            return                              # a trimmed front counted already: no new snapshot
        prior = self._prior_delivered
        if prior is None or seg.delivered > prior or (seg.delivered == prior and seg.xmit_ts > self._prior_xmit):
            self._prior_delivered = seg.delivered
            self._prior_xmit = seg.xmit_ts
            self._app_limited = seg.app_limited
            self._send_elapsed = seg.xmit_ts - seg.first_sent_time
            self._ack_elapsed = now - seg.delivered_time
            self._rtt = -1.0 if seg.retransmitted else now - seg.xmit_ts
            # the next sample's send interval starts at this segment's send time
            self.first_sent_time = seg.xmit_ts

    def on_partly_delivered(self, size: int, now: float) -> None:
        """The cumulative ACK took the front of a record: bytes delivered, no snapshot."""
        self.delivered += size
        self.delivered_time = now
        self._acked += size

    def sample(self, min_rtt: float) -> RateSample | None:
        """GenerateRateSample for this ACK (None if it delivered nothing); resets for the next."""
        if self.app_limited and self.delivered > self.app_limited:
            self.app_limited = 0                # §3.4: the app-limited flight has been delivered
        if self._acked == 0:
            self._reset()
            return None
        rs = RateSample()
        rs.newly_delivered = self._acked
        rs.newly_lost = self.lost - self._lost_before
        self._lost_before = self.lost
        if self._prior_delivered is not None:
            rs.prior_delivered = self._prior_delivered
            rs.is_app_limited = self._app_limited
            rs.rtt = self._rtt
            rs.delivered = self.delivered - self._prior_delivered
            rs.interval = max(self._send_elapsed, self._ack_elapsed)
            # §3.3: an interval below min_RTT is not a full flight's worth -- no rate
            if rs.interval > 0 and rs.interval >= min_rtt:
                rs.delivery_rate = rs.delivered / rs.interval
        else:
            rs.prior_delivered = self.delivered
        self._reset()
        return rs

    def mark_app_limited(self, inflight: int) -> None:
        """§3.4: the application has nothing more to send and the window is not full: the
        samples up to what is in flight now are app-limited."""
        self.app_limited = (self.delivered + inflight) or 1
