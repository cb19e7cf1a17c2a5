"""Pluggable congestion control: NewReno (RFC 5681/6582), CUBIC (RFC 9438, the default,
as Linux's upstream default) and BBR v1 (bbr.py).

A controller owns `cwnd` and `ssthresh` (bytes) and hears four events from the
connection; loss detection and recovery bookkeeping stay in the connection.  A
model-based one (BBR) also hears every ACK's delivery-rate sample and sets a pacing rate.
Selected per socket with TCP_CONGESTION; `ALGORITHMS` is the registry plug-ins extend, and
CongestionControl (controller.py) the interface they implement.
"""
from __future__ import annotations

from collections.abc import Callable

from .bbr import Bbr
from .controller import CongestionControl


class NewReno(CongestionControl):
    name = "reno"
    __slots__ = ("_acc",)

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
    __slots__ = ("w_max", "w_last_max", "k", "epoch", "w_est", "_acc")

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



ALGORITHMS: dict[str, Callable[[int], CongestionControl]] = {"reno": NewReno, "newreno": NewReno, "cubic": Cubic,
                                                           "bbr": Bbr}
DEFAULT = "cubic"
