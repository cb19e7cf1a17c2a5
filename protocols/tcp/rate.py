"""Delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation-02): BBR's model,
and TCP_INFO's tcpi_delivery_rate for every connection, as Linux runs tcp_rate.c for all.

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
ACK removes from the RACK record.  A loss-based controller wants no sample object: each
ACK only ends in `finish` (Linux tcp_rate_gen's last step), which keeps the last valid
sample's delivered octets and interval -- the last one not app-limited, or an app-limited
one showing a higher rate -- and TCP_INFO divides them when read (`delivery_rate`).
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
    C.first_sent_time, C.app_limited) and the per-ACK sample being built: only the
    record of the transmission it will come from (P), read when the ACK ends -- a record
    the ACK delivered leaves the RACK record and is not changed again."""
    __slots__ = ("delivered", "delivered_time", "first_sent_time", "app_limited", "lost",
                 "rate_delivered", "rate_interval", "rate_app_limited",
                 "_prior", "_acked", "_lost_before")

    def __init__(self) -> None:
        self.delivered = 0              # bytes delivered (ACKed or SACKed) so far
        self.delivered_time = 0.0
        self.first_sent_time = 0.0
        self.app_limited = 0            # C.delivered mark past which the app limit is over; 0: none
        self.lost = 0                   # bytes marked lost so far (BBR's loss-recovery cwnd modulation)
        # the sample TCP_INFO reports (Linux tp->rate_delivered, rate_interval_us, rate_app_limited)
        self.rate_delivered = 0
        self.rate_interval = 0.0
        self.rate_app_limited = True     # Linux tcp_init_sock: a socket's first reading says so
        self._lost_before = 0
        self._prior: SentSegment | None = None      # P: the latest sent of what this ACK delivered
        self._acked = 0                             # bytes this ACK delivered

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
        prior = self._prior
        if prior is None or seg.delivered > prior.delivered \
                or (seg.delivered == prior.delivered and seg.xmit_ts > prior.xmit_ts):
            self._prior = seg

    def on_partly_delivered(self, size: int, now: float) -> None:
        """The cumulative ACK took the front of a record: bytes delivered, no snapshot."""
        self.delivered += size
        self.delivered_time = now
        self._acked += size

    def _take_prior(self) -> tuple[SentSegment | None, float]:
        """End of the ACK: P and the sample's interval (§3.3: the longer of its send and ACK
        phases); the next sample's send phase starts at P's send time.  The app-limited
        mark ends once the flight it covered is delivered (§3.4)."""
        if self.app_limited and self.delivered > self.app_limited:
            self.app_limited = 0
        prior = self._prior
        if prior is None:
            return None, 0.0
        self._prior = None
        self.first_sent_time = prior.xmit_ts
        assert prior.delivered_time is not None
        return prior, max(prior.xmit_ts - prior.first_sent_time, self.delivered_time - prior.delivered_time)

    def sample(self, min_rtt: float) -> RateSample | None:
        """GenerateRateSample for this ACK (None if it delivered nothing); resets for the next."""
        prior, interval = self._take_prior()
        acked, self._acked = self._acked, 0
        if acked == 0:
            return None
        rs = RateSample()
        rs.newly_delivered = acked
        rs.newly_lost = self.lost - self._lost_before
        self._lost_before = self.lost
        if prior is not None:
            rs.prior_delivered = prior.delivered
            rs.is_app_limited = prior.app_limited
            rs.rtt = -1.0 if prior.retransmitted else self.delivered_time - prior.xmit_ts
            rs.delivered = self.delivered - prior.delivered
            rs.interval = interval
            # §3.3: an interval below min_RTT is not a full flight's worth -- no rate
            if interval > 0 and interval >= min_rtt:
                rs.delivery_rate = rs.delivered / interval
                self._record(rs.delivered, interval, rs.is_app_limited)
        else:
            rs.prior_delivered = self.delivered
        return rs

    def finish(self, min_rtt: float) -> None:
        """The end of an ACK for a controller that takes no samples: what `sample` does,
        without building one -- the app-limited mark, and the sample TCP_INFO keeps.
        (_take_prior and _record written out: this runs once per ACK on the bulk path.)"""
        if self.app_limited and self.delivered > self.app_limited:
            self.app_limited = 0
        prior = self._prior
        if prior is not None:
            self._prior = None
            self.first_sent_time = xmit = prior.xmit_ts
            send_phase = xmit - prior.first_sent_time
            ack_phase = self.delivered_time - prior.delivered_time    # type: ignore[operator]
            interval = send_phase if send_phase > ack_phase else ack_phase
            if interval > 0 and interval >= min_rtt:
                delivered = self.delivered - prior.delivered
                if not prior.app_limited or delivered * self.rate_interval >= self.rate_delivered * interval:
                    self.rate_delivered, self.rate_interval = delivered, interval
                    self.rate_app_limited = prior.app_limited
        if self._acked:
            # as `sample`: newly_lost runs from the last ACK that delivered something, so an
            # ACK that delivers nothing (a window update) leaves the count alone -- header
            # prediction takes such an ACK without coming here (test_tcp_fastpath)
            self._acked = 0
            self._lost_before = self.lost

    def _record(self, delivered: int, interval: float, app_limited: bool) -> None:
        """Linux tcp_rate_gen: keep a valid sample unless it is app-limited and shows a lower
        rate than the one kept (an app-limited flight says only that the path does at least
        that much)."""
        if not app_limited or delivered * self.rate_interval >= self.rate_delivered * interval:
            self.rate_delivered, self.rate_interval, self.rate_app_limited = delivered, interval, app_limited

    def delivery_rate(self) -> int:
        """tcpi_delivery_rate, bytes/s: the kept sample over its interval in whole µs, as
        Linux's tcp_get_info divides them (0 before the first)."""
        interval_us = round(self.rate_interval * 1e6)
        return self.rate_delivered * 1_000_000 // interval_us if self.rate_delivered and interval_us else 0

    def mark_app_limited(self, inflight: int) -> None:
        """§3.4: the application has nothing more to send and the window is not full: the
        samples up to what is in flight now are app-limited."""
        self.app_limited = (self.delivered + inflight) or 1

