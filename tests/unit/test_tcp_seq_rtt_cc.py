"""Sequence arithmetic (RFC 9293 §3.4), the RFC 6298 retransmission-timer estimator, and
the congestion controllers: NewReno (RFC 5681, RFC 6582) and CUBIC (RFC 9438).
Pure functions and small objects; time is a plain float."""
from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.tcp import seq as sq
from protocols.tcp.congestion import ALGORITHMS, Cubic, NewReno
from protocols.tcp.controller import INITIAL_WINDOW_SEGMENTS
from protocols.tcp.rtt import CLOCK_GRANULARITY, INITIAL_RTO, RttEstimator

FAST = settings(max_examples=300, deadline=None)
u32 = st.integers(0, 0xFFFFFFFF)
dist = st.integers(-(1 << 31) + 1, (1 << 31) - 1)
MSS = 1000


# --- sequence numbers ------------------------------------------------------------------------
def test_add_wraps_modulo_2_32() -> None:
    """RFC 9293 §3.4: all arithmetic on sequence numbers is modulo 2**32."""
    assert sq.add(0xFFFFFFFF, 1) == 0
    assert sq.add(0xFFFFFF00, 0x200) == 0x100
    assert sq.add(5, -10) == 0xFFFFFFFB


def test_comparisons_across_the_wrap() -> None:
    """0xFFFFFFF0 comes before 0x10: the wrap must not invert the order."""
    a, b = 0xFFFFFFF0, 0x10
    assert sq.lt(a, b) and sq.le(a, b) and sq.gt(b, a) and sq.ge(b, a)
    assert not sq.lt(b, a) and not sq.gt(a, b)
    assert sq.diff(b, a) == 0x20 and sq.diff(a, b) == -0x20
    assert sq.le(a, a) and sq.ge(a, a) and not sq.lt(a, a)


def test_between_across_the_wrap() -> None:
    assert sq.between(0xFFFFFFF0, 0x5, 0x10)
    assert sq.between(0xFFFFFFF0, 0xFFFFFFF0, 0x10) and sq.between(0xFFFFFFF0, 0x10, 0x10)
    assert not sq.between(0xFFFFFFF0, 0x11, 0x10)
    assert not sq.between(0xFFFFFFF0, 0xFFFFFFEF, 0x10)


@FAST
@given(u32, dist)
def test_diff_inverts_add(a: int, n: int) -> None:
    b = sq.add(a, n)
    assert sq.diff(b, a) == n
    assert sq.lt(a, b) == (n > 0) and sq.gt(a, b) == (n < 0) and (a == b) == (n == 0)


@FAST
@given(u32, u32)
def test_order_is_antisymmetric(a: int, b: int) -> None:
    if a != b and sq.diff(a, b) != 1 << 31:
        assert sq.lt(a, b) != sq.lt(b, a)
        assert sq.lt(a, b) == sq.gt(b, a)


@FAST
@given(u32, st.integers(0, 1 << 20), st.integers(0, 1 << 20))
def test_between_is_an_interval(low: int, x_off: int, width: int) -> None:
    high, x = sq.add(low, width), sq.add(low, x_off)
    assert sq.between(low, x, high) == (x_off <= width)


# --- RFC 6298 estimator ------------------------------------------------------------------------
def test_initial_rto_is_one_second() -> None:
    """RFC 6298 §2.1: until a measurement is made, RTO = 1 second."""
    est = RttEstimator()
    assert INITIAL_RTO == 1.0 and est.current() == 1.0 and est.samples == 0


def test_first_sample() -> None:
    """RFC 6298 §2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, K*RTTVAR), K = 4."""
    est = RttEstimator(min_rto=0.0)
    est.sample(0.5)
    assert est.srtt == 0.5 and est.rttvar == 0.25
    assert est.rto == pytest.approx(0.5 + 4 * 0.25)


def test_subsequent_samples() -> None:
    """RFC 6298 §2.3: RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'| first, then SRTT = 7/8 SRTT + 1/8 R'."""
    est = RttEstimator(min_rto=0.0)
    est.sample(1.0)
    est.sample(2.0)
    rttvar = 0.75 * 0.5 + 0.25 * abs(1.0 - 2.0)      # uses the old SRTT
    srtt = 0.875 * 1.0 + 0.125 * 2.0
    assert est.rttvar == pytest.approx(rttvar) and est.srtt == pytest.approx(srtt)
    assert est.rto == pytest.approx(srtt + 4 * rttvar)


def test_clock_granularity_bounds_the_variance_term() -> None:
    """RFC 6298 §2: max(G, K*RTTVAR) -- a perfectly steady RTT still adds G."""
    est = RttEstimator(min_rto=0.0)
    for _ in range(200):
        est.sample(0.1)
    assert est.rto == pytest.approx(0.1 + CLOCK_GRANULARITY, abs=1e-6)


def test_minimum_rto_floors_the_variance_term_as_linux() -> None:
    """Linux's minimum (200 ms, the default here) floors the variance term, not the sum (RFC
    6298 §2.4 rounds the sum up): RTO = SRTT + max(4*RTTVAR, rto_min) -- issue 14, point 5."""
    est = RttEstimator(min_rto=0.2)
    est.sample(0.001)
    assert est.rto == pytest.approx(0.001 + 0.2)
    for _ in range(50):
        est.sample(0.030)                       # a steady 30 ms path: RTTVAR decays to ~0
    assert est.rto == pytest.approx(0.030 + 0.2, abs=1e-4)
    est = RttEstimator(min_rto=0.2)
    est.sample(0.5)                             # 4*RTTVAR = 1 s beats the floor
    assert est.rto == pytest.approx(0.5 + 1.0)


def test_maximum_rto() -> None:
    """RFC 6298 §2.5: a maximum may be placed on RTO provided it is at least 60 seconds."""
    est = RttEstimator(max_rto=120.0)
    est.sample(100.0)
    assert est.rto == 120.0


def test_exponential_backoff_doubles_and_is_capped() -> None:
    """RFC 6298 §5.5: on expiry, RTO = RTO * 2 ("back off the timer"), bounded by the maximum."""
    est = RttEstimator(max_rto=60.0)
    seen = []
    for _ in range(10):
        seen.append(est.current())
        est.on_timeout()
    assert seen[:7] == [1, 2, 4, 8, 16, 32, 60]
    assert est.current() == 60.0


def test_new_sample_collapses_backoff() -> None:
    """RFC 6298 §5.7 note / Karn: once a valid sample arrives the backed-off RTO is recomputed."""
    est = RttEstimator(min_rto=0.0)
    est.sample(0.1)
    est.on_timeout()
    est.on_timeout()
    assert est.current() == pytest.approx(4 * est.rto)
    est.sample(0.1)
    assert est.backoff == 0 and est.current() == est.rto


@FAST
@given(st.lists(st.floats(0.0, 30.0), min_size=1, max_size=30))
def test_rto_stays_within_bounds(samples: list[float]) -> None:
    est = RttEstimator(min_rto=0.2, max_rto=120.0)
    for r in samples:
        est.sample(r)
        assert 0.2 <= est.rto <= 120.0
        assert est.srtt >= 0 and est.rttvar >= 0


# --- NewReno (RFC 5681 / RFC 6582) ---------------------------------------------------------------
def test_initial_window() -> None:
    """RFC 6928 (Linux's IW10); the registry selects controllers by TCP_CONGESTION name."""
    for name in ("reno", "newreno", "cubic"):
        cc = ALGORITHMS[name](MSS)
        assert cc.cwnd == INITIAL_WINDOW_SEGMENTS * MSS
        assert cc.ssthresh >= 1 << 30                    # RFC 5681 §3.1: arbitrarily high


def test_slow_start_grows_by_bytes_acked() -> None:
    """RFC 5681 §3.1 / RFC 3465: in slow start cwnd grows by the bytes acknowledged, so it
    doubles every round trip."""
    cc = NewReno(MSS)
    start = cc.cwnd
    for _ in range(start // MSS):
        cc.on_ack(MSS, cc.cwnd, 0.0, 0.1)
    assert cc.cwnd == 2 * start


def test_congestion_avoidance_adds_one_mss_per_window() -> None:
    """RFC 5681 §3.1 eq. 3: about one SMSS per RTT once cwnd >= ssthresh."""
    cc = NewReno(MSS)
    cc.ssthresh = cc.cwnd = 10 * MSS
    for _ in range(5):
        w = cc.cwnd
        for _ in range(w // MSS):
            cc.on_ack(MSS, w, 0.0, 0.1)
        assert cc.cwnd == w + MSS


def test_loss_halves_flight() -> None:
    """RFC 5681 §3.2 eq. 4: ssthresh = max(FlightSize / 2, 2 * SMSS)."""
    cc = NewReno(MSS)
    cc.cwnd = 40 * MSS
    cc.on_congestion(30 * MSS, 0.0)
    assert cc.ssthresh == 15 * MSS and cc.cwnd == 15 * MSS
    cc.on_congestion(3 * MSS, 0.0)
    assert cc.ssthresh == 2 * MSS                        # never below 2 segments


def test_timeout_sets_loss_window() -> None:
    """RFC 5681 §3.1: after an RTO, ssthresh per eq. 4 and cwnd = LW = 1 SMSS."""
    cc = NewReno(MSS)
    cc.on_rto(20 * MSS, 0.0)
    assert cc.ssthresh == 10 * MSS and cc.cwnd == MSS
    # and slow start resumes from there
    cc.on_ack(MSS, MSS, 0.0, 0.1)
    assert cc.cwnd == 2 * MSS


def test_full_ack_deflates_to_ssthresh() -> None:
    """RFC 6582 §3.2 step 3 (option 2): on the full ACK, cwnd = ssthresh."""
    cc = NewReno(MSS)
    cc.on_congestion(20 * MSS, 0.0)
    cc.cwnd += 7 * MSS                                   # inflated by dup ACKs during recovery
    cc.on_recovery_exit()
    assert cc.cwnd == 10 * MSS


def test_set_mss_keeps_the_window_in_segments() -> None:
    cc = NewReno(1460)
    cc.set_mss(1448)
    assert cc.cwnd == 10 * 1448 and cc.mss == 1448


# --- CUBIC (RFC 9438) ------------------------------------------------------------------------------
def run_rounds(cc: Cubic, rounds: int, rtt: float, t0: float) -> list[float]:
    """Acknowledge one full window per round trip, one MSS at a time; cwnd (segments) per round."""
    t = t0
    seen = []
    for _ in range(rounds):
        w = cc.cwnd
        for i in range(max(w // MSS, 1)):
            cc.on_ack(MSS, w, t + rtt * i / max(w // MSS, 1), rtt)
        t += rtt
        seen.append(cc.cwnd / MSS)
    return seen


def test_cubic_multiplicative_decrease() -> None:
    """RFC 9438 §4.6: ssthresh = cwnd * beta_cubic (0.7); cwnd = ssthresh."""
    cc = Cubic(MSS)
    cc.cwnd = 100 * MSS
    cc.on_congestion(100 * MSS, 10.0)
    assert cc.ssthresh == 70 * MSS and cc.cwnd == 70 * MSS
    assert cc.w_max == 100


def test_cubic_fast_convergence() -> None:
    """RFC 9438 §4.7: a loss below the previous W_max sets W_max = cwnd * (1 + beta) / 2."""
    cc = Cubic(MSS)
    cc.cwnd = 100 * MSS
    cc.on_congestion(0, 0.0)
    cc.cwnd = 80 * MSS                                   # lost again before regaining 100
    cc.on_congestion(0, 1.0)
    assert cc.w_max == pytest.approx(80 * (1 + 0.7) / 2)
    assert cc.cwnd == 56 * MSS


def test_cubic_window_grows_to_w_max_at_k() -> None:
    """RFC 9438 §4.2: W_cubic(t) = C (t - K)^3 + W_max with K = cbrt((W_max - cwnd_epoch) / C):
    concave growth that reaches W_max after K seconds, then convex probing beyond it.  (A large
    window and a 100 ms RTT keep CUBIC out of the Reno-friendly region, §4.3.)"""
    cc = Cubic(MSS)
    cc.cwnd = 1000 * MSS
    cc.on_congestion(1000 * MSS, 0.0)
    rtt = 0.1
    k = ((1000 - 700) / 0.4) ** (1 / 3)                  # ~9.09 s
    rounds = run_rounds(cc, int(k / rtt) + 40, rtt, 0.0)
    assert cc.k == pytest.approx(k, rel=1e-6)
    at_k = rounds[int(k / rtt) - 1]
    assert 990 <= at_k <= 1005                           # plateau around W_max
    half = rounds[int(k / rtt / 2)]
    assert 700 < half < 1000
    assert half - 700 > at_k - half                      # concave: most of the gain comes early
    assert rounds[-1] > 1010                             # then the convex region probes beyond W_max
    assert cc.w_est < cc.cwnd / MSS                      # W_est (Reno) was never in charge
    # RFC 9438 §4.2: the target is clamped to at most 1.5 cwnd per round
    for a, b in itertools.pairwise([700.0, *rounds]):
        assert b <= 1.5 * a + 1


def test_cubic_reno_friendly_region() -> None:
    """RFC 9438 §4.3: while W_cubic is below the Reno estimate W_est, cwnd follows W_est,
    which grows by alpha_cubic = 3(1 - beta)/(1 + beta) ~ 0.53 segments per round trip."""
    class FlatCubic(Cubic):
        C = 1e-9                                         # a flat cubic curve: W_est must win

    cc = FlatCubic(MSS)
    cc.cwnd = 40 * MSS
    cc.on_congestion(40 * MSS, 0.0)
    start = cc.cwnd / MSS
    rounds = run_rounds(cc, 40, 0.1, 0.0)
    alpha = 3 * (1 - 0.7) / (1 + 0.7)
    gained = rounds[-1] - start
    assert alpha * 40 * 0.7 <= gained <= alpha * 40 * 1.3


def test_cubic_timeout() -> None:
    """RFC 9438 §4.8: on an RTO, the multiplicative decrease applies to ssthresh; cwnd to 1 SMSS,
    and a new congestion epoch starts afterwards."""
    cc = Cubic(MSS)
    cc.cwnd = 50 * MSS
    cc.on_congestion(0, 0.0)
    run_rounds(cc, 3, 0.1, 0.0)
    cc.on_rto(0, 5.0)
    assert cc.cwnd == MSS and cc.epoch is None
    assert cc.ssthresh >= 2 * MSS


def test_cubic_slow_start_below_ssthresh() -> None:
    """RFC 9438 §4.10: below ssthresh CUBIC uses standard slow start."""
    cc = Cubic(MSS)
    cc.on_ack(3 * MSS, cc.cwnd, 0.0, 0.1)
    assert cc.cwnd == 13 * MSS and cc.epoch is None


def test_cubic_epoch_starts_at_w_max_when_above_it() -> None:
    """RFC 9438 §4.2: if cwnd >= W_max when the epoch starts, K = 0 and W_max = cwnd."""
    cc = Cubic(MSS)
    cc.ssthresh = 20 * MSS
    cc.cwnd = 30 * MSS
    cc.on_ack(MSS, cc.cwnd, 1.0, 0.1)
    assert cc.k == 0.0 and cc.w_max == 30 and math.isclose(cc.epoch or 0, 1.0)
