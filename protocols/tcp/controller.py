"""The interface every congestion control implements (congestion.py's NewReno and CUBIC,
bbr.py's BBR, plug-ins): a module of its own so that the controllers build on it and the
registry (congestion.ALGORITHMS) imports them all without an import cycle."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import random

    from .rate import RateSample

INITIAL_WINDOW_SEGMENTS = 10    # RFC 6928 (Linux's default)


def _slot_names(cls: type) -> tuple[str, ...]:
    """Every slot a controller class and its bases declare (its state, with any __dict__;
    taken at a reduction only)."""
    return tuple(name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ())
                 if name not in ("__dict__", "__weakref__"))


class CongestionControl:
    name = "base"
    # slots, as the built-in controllers' (one per connection: the idle heap); a plug-in
    # that declares none has a __dict__ as well, and snapshot/undo take both
    __slots__ = ("mss", "cwnd", "ssthresh", "pacing_rate")
    # A model-based controller (BBR) hears every ACK's delivery-rate sample (rate.py) and
    # sets a pacing rate (bytes/s) the sender obeys (output.py); loss-based ones do neither,
    # and cost the sender nothing for it.
    wants_rate_samples = False
    pacing_rate: float | None

    def __init__(self, mss: int) -> None:
        self.mss = mss
        self.cwnd = INITIAL_WINDOW_SEGMENTS * mss
        self.ssthresh = 1 << 30
        self.pacing_rate = None

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
        state = {name: getattr(self, name) for name in _slot_names(type(self)) if hasattr(self, name)}
        state.update(getattr(self, "__dict__", {}))
        return state

    def undo(self, before: dict[str, object]) -> None:
        """The reduction was for nothing (the retransmissions were spurious): restore the
        state from before it, keeping any growth since (Linux tcp_undo_cwnd_reduction)."""
        cwnd = self.cwnd
        for name, value in before.items():
            setattr(self, name, value)
        self.cwnd = max(self.cwnd, cwnd)

    def on_rate_sample(self, rs: RateSample, delivered: int, inflight: int, now: float, srtt: float) -> None:
        """Every ACK that delivered data, for controllers with wants_rate_samples."""

    def use_rng(self, rng: random.Random) -> None:
        """The stack's seeded generator, for a controller that makes random choices."""
