"""Pluggable congestion control: NewReno (RFC 5681/6582), CUBIC (RFC 9438, the default,
as Linux's upstream default) and BBR v1 (bbr.py).

A controller owns `cwnd` and `ssthresh` (bytes) and hears four events from the
connection; loss detection and recovery bookkeeping stay in the connection.  A
model-based one (BBR) also hears every ACK's delivery-rate sample and sets a pacing rate.
Selected per socket with TCP_CONGESTION; `ALGORITHMS` is the registry plug-ins extend.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import random

    from .rate import RateSample

INITIAL_WINDOW_SEGMENTS = 10    # RFC 6928 (Linux's default)


class CongestionControl:
    name = "base"
    # A model-based controller (BBR) hears every ACK's delivery-rate sample (rate.py) and
    # sets a pacing rate (bytes/s) the sender obeys (output.py); loss-based ones do neither,
    # and cost the sender nothing for it.
    wants_rate_samples = False
    pacing_rate: float | None = None

    def __init__(self, mss: int) -> None:
        self.mss = mss
        self.cwnd = INITIAL_WINDOW_SEGMENTS * mss
        self.ssthresh = 1 << 30

    def send_quantum(self) -> int:
        """How much a paced sender may release at once (draft-cardwell-iccrg-bbr §4.2.2):
        ~1 ms of data at the pacing rate, at least 2 segments (Linux tcp_tso_autosize), at
        most 64 KB (a TSO super-segment).  Here so that any plug-in setting pacing_rate works."""
        rate = self.pacing_rate or 0.0
        return min(max(int(rate * 0.001), 2 * self.mss), 65536)

    def set_mss(self, mss: int) -> None:
        self.cwnd = max(self.cwnd * mss // self.mss, mss) if self.mss else self.cwnd
        self.mss = mss

    def on_ack(self, acked: int, flight: int, now: float, rtt: float) -> None:
        """New data acknowledged outside loss recovery."""
        if self.cwnd < self.ssthresh:
            # slow start; counting bytes as Linux does (RFC 3465 with a large L), because one
            # ACK of a TSO super-segment covers many MSS
            self.cwnd += acked
        else:
            self.congestion_avoidance(acked, now, rtt)

    def congestion_avoidance(self, acked: int, now: float, rtt: float) -> None:
        raise NotImplementedError

    def on_congestion(self, flight: int, now: float) -> None:
        """Loss detected by duplicate ACKs / SACK: set ssthresh and cwnd (recovery begins)."""
        raise NotImplementedError

    def on_rto(self, flight: int, now: float) -> None:
        """RFC 5681 §3.1 eq. 4: ssthresh = max(FlightSize/2, 2*SMSS); cwnd = 1 SMSS (loss window)."""
        self.on_congestion(flight, now)
        self.cwnd = self.mss

    def on_recovery_exit(self) -> None:
        self.cwnd = max(self.ssthresh, 2 * self.mss)   # RFC 6582 §3.2 step 3 (full ACK)

    def snapshot(self) -> dict[str, object]:
        """The controller's state before a reduction, for undoing it (RFC 4015 §3)."""
        return dict(vars(self))

    def undo(self, before: dict[str, object]) -> None:
        """The reduction was for nothing (the retransmissions were spurious): restore the
        state from before it, keeping any growth since (Linux tcp_undo_cwnd_reduction)."""
        cwnd = self.cwnd
        vars(self).update(before)
        self.cwnd = max(self.cwnd, cwnd)

    def on_rate_sample(self, rs: "RateSample", delivered: int, inflight: int, now: float, srtt: float) -> None:
        """Every ACK that delivered data, for controllers with wants_rate_samples."""

    def use_rng(self, rng: "random.Random") -> None:
        """The stack's seeded generator, for a controller that makes random choices."""


class NewReno(CongestionControl):
    name = "reno"

    def __init__(self, mss: int) -> None:
        super().__init__(mss)
        self._acc = 0

    def congestion_avoidance(self, acked: int, now: float, rtt: float) -> None:
        # RFC 5681 §3.1: about one SMSS per RTT, counted in bytes
        self._acc += acked
        if self._acc >= self.cwnd:
            self._acc -= self.cwnd
            self.cwnd += self.mss

    def on_congestion(self, flight: int, now: float) -> None:
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.ssthresh


class Cubic(CongestionControl):
    """RFC 9438, in segments: W_cubic(t) = C (t - K)^3 + W_max, beta 0.7, with the
    Reno-friendly region (§4.3) and fast convergence (§4.7)."""
    name = "cubic"
    C = 0.4
    BETA = 0.7

    def __init__(self, mss: int) -> None:
        super().__init__(mss)
        self.w_max = 0.0
        self.w_last_max = 0.0
        self.k = 0.0
        self.epoch: float | None = None
        self.w_est = 0.0
        self._acc = 0.0

    def congestion_avoidance(self, acked: int, now: float, rtt: float) -> None:
        mss = self.mss
        cwnd_seg = self.cwnd / mss
        if self.epoch is None:
            self.epoch = now
            if cwnd_seg < self.w_max:
                self.k = ((self.w_max - cwnd_seg) / self.C) ** (1 / 3)
            else:
                self.k, self.w_max = 0.0, cwnd_seg
            self.w_est = cwnd_seg
        t = now - self.epoch
        target = self.C * (t + rtt - self.k) ** 3 + self.w_max        # §4.2: W_cubic(t + RTT)
        target = min(max(target, cwnd_seg), 1.5 * cwnd_seg)
        # §4.3: Reno-friendly estimate, alpha = 3 (1 - beta) / (1 + beta)
        alpha = 3 * (1 - self.BETA) / (1 + self.BETA)
        self.w_est += alpha * (acked / mss) / cwnd_seg
        if self.w_est > target:
            target = self.w_est
        # grow (target - cwnd) / cwnd segments per acked segment
        self._acc += (target - cwnd_seg) / cwnd_seg * (acked / mss)
        if self._acc >= 1:
            whole = int(self._acc)
            self._acc -= whole
            self.cwnd += whole * mss

    def on_congestion(self, flight: int, now: float) -> None:
        cwnd_seg = self.cwnd / self.mss
        # §4.7 fast convergence
        if cwnd_seg < self.w_last_max:
            self.w_last_max = cwnd_seg
            self.w_max = cwnd_seg * (1 + self.BETA) / 2
        else:
            self.w_last_max = self.w_max = cwnd_seg
        self.ssthresh = max(int(self.cwnd * self.BETA), 2 * self.mss)   # §4.6
        self.cwnd = self.ssthresh
        self.epoch = None
        self._acc = 0.0



ALGORITHMS: dict[str, Callable[[int], CongestionControl]] = {"reno": NewReno, "newreno": NewReno, "cubic": Cubic}
DEFAULT = "cubic"

from .bbr import Bbr  # noqa: E402  (bbr.py builds on CongestionControl above)

ALGORITHMS["bbr"] = Bbr
