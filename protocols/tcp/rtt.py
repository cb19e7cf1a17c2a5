"""Retransmission timeout (RFC 6298) with Karn's algorithm and exponential backoff.

The minimum applies as Linux applies it: to the variance term, not to the sum -- RTO =
SRTT + max(G, 4*RTTVAR, rto_min) (Linux keeps rttvar_us >= tcp_rto_min and sets the RTO to
srtt + rttvar, tcp_rtt_estimator / __tcp_set_rto), where RFC 6298 §2.4 rounds the whole
sum up to the minimum.  On a 10 ms path Linux's first RTO is 210 ms after the send, not 200
(issue 14, point 5)."""
from __future__ import annotations

INITIAL_RTO = 1.0           # RFC 6298 §2.1
MIN_RTO = 0.2               # Linux TCP_RTO_MIN; RFC 6298 §2.4 suggests 1 s (see README)
MAX_RTO = 120.0             # Linux TCP_RTO_MAX; RFC 6298 §2.5 requires >= 60 s
CLOCK_GRANULARITY = 0.001   # G in RFC 6298 §2


class RttEstimator:
    __slots__ = ("srtt", "rttvar", "rto", "backoff", "min_rto", "max_rto", "samples", "min_rtt")

    def __init__(self, min_rto: float = MIN_RTO, max_rto: float = MAX_RTO, initial: float = INITIAL_RTO) -> None:
        self.srtt = 0.0
        self.rttvar = 0.0
        self.rto = initial
        self.backoff = 0
        self.min_rto = min_rto
        self.max_rto = max_rto
        self.samples = 0
        self.min_rtt = 0.0          # the least sample (TCP_INFO's tcpi_min_rtt; Linux windows it over 300 s)

    def sample(self, r: float) -> None:
        """One RTT measurement R (never from a retransmitted segment -- Karn, §3)."""
        r = max(r, 0.0)
        if self.samples == 0:                           # §2.2
            self.srtt, self.rttvar = r, r / 2
            self.min_rtt = r
        else:                                           # §2.3, alpha 1/8, beta 1/4
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - r)
            self.srtt = 0.875 * self.srtt + 0.125 * r
            if r < self.min_rtt:
                self.min_rtt = r
        self.samples += 1
        self.backoff = 0                                # §5.7: a new sample collapses the backoff
        self.rto = min(self.max_rto, self.srtt + max(CLOCK_GRANULARITY, 4 * self.rttvar, self.min_rto))

    def current(self) -> float:
        """The RTO with the exponential backoff applied (§5.5)."""
        return min(self.max_rto, self.rto * (1 << self.backoff))

    def on_timeout(self) -> None:
        self.backoff = min(self.backoff + 1, 16)
