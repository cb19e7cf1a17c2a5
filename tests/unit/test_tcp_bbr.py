"""BBR v1 (protocols/tcp/bbr.py), delivery-rate estimation (rate.py) and pacing (output.py),
with an explicit clock: the state machine fed synthetic rate samples, the estimator fed
the RACK record, and pacing on the Connection harness of test_tcp_conn."""
from __future__ import annotations

import random

import pytest

from protocols.tcp.bbr import (
    DRAIN,
    DRAIN_GAIN,
    HIGH_GAIN,
    PACING_GAIN_CYCLE,
    PROBE_BW,
    PROBE_RTT,
    PROBE_RTT_DURATION,
    STARTUP,
    Bbr,
    MaxFilter,
)
from protocols.tcp.congestion import ALGORITHMS
from protocols.tcp.rack import Rack
from protocols.tcp.rate import RateEstimator, RateSample
from protocols.tcp.wire import ACK

from .test_tcp_conn import ISS, data_segments, established

MSS = 1000


class Driver:
    """Feeds a Bbr one ACK at a time: each ACK delivers `acked` bytes at rate `rate`; a
    round ends when `round_end` is set (the sampled segment left after the round began)."""

    def __init__(self, rtt: float = 0.1, start: float = 0.0) -> None:
        self.bbr = Bbr(MSS, rng=random.Random(1))
        self.delivered = 0
        self.now = start
        self.rtt = rtt

    def ack(self, rate: float, acked: int = 10 * MSS, inflight: int = 10 * MSS, new_round: bool = True,
            dt: float | None = None, rtt: float | None = None, app_limited: bool = False, lost: int = 0) -> None:
        self.now += self.rtt if dt is None else dt
        rs = RateSample()
        # a new round: the sampled segment left after the previous round's end was delivered
        rs.prior_delivered = self.delivered if new_round else max(self.bbr.next_round_delivered - 1, 0)
        self.delivered += acked
        rs.delivered = acked
        rs.newly_delivered = acked
        rs.newly_lost = lost
        rs.delivery_rate = rate
        rs.interval = self.rtt
        rs.rtt = self.rtt if rtt is None else rtt
        rs.is_app_limited = app_limited
        self.bbr.on_rate_sample(rs, self.delivered, inflight, self.now, self.rtt)


# --- the filter -----------------------------------------------------------------------------
def test_max_filter_keeps_the_window_maximum_and_forgets_it() -> None:
    f = MaxFilter(10)
    assert f.update(5.0, 0) == 5.0
    assert f.update(3.0, 1) == 5.0                      # lower: the max stays
    assert f.update(4.0, 6) == 5.0
    assert f.update(2.0, 11) == 4.0                     # 5.0 is 11 rounds old: the next best (4.0 at 6)
    assert f.update(1.0, 17) == 2.0                     # 4.0 is too old as well
    assert f.update(9.0, 18) == 9.0                     # a new maximum replaces everything


# --- STARTUP, DRAIN ----------------------------------------------------------------------------
def test_first_ack_on_a_clock_far_from_zero_starts_up_not_probe_rtt() -> None:
    """trio's clock starts at a random 10^4..2*10^5 s: the RTprop filter is not expired
    before its first sample (it sent every real connection to PROBE_RTT at 4 segments)."""
    d = Driver(start=54321.0)
    b = d.bbr
    rate = 1e6
    for _ in range(4):
        d.ack(rate)
        rate *= 2
        assert b.state == STARTUP and not b.rtprop_expired
    assert b.rtprop == d.rtt and b.rtprop_stamp is not None
    d.now += 11                                         # 10 s later without a lower sample: expired
    d.ack(rate, rtt=2 * d.rtt)
    assert b.rtprop_expired


def test_startup_exits_after_three_rounds_without_25_percent_growth() -> None:
    d = Driver()
    b = d.bbr
    assert b.state == STARTUP and b.pacing_gain == HIGH_GAIN and b.cwnd_gain == HIGH_GAIN
    rate = 1e6
    for _ in range(5):                                  # doubling: still growing
        d.ack(rate, inflight=10 * MSS)
        rate *= 2
        assert b.state == STARTUP and not b.filled_pipe
    top = rate / 2
    d.ack(top * 1.2, inflight=10 ** 9)                  # +20 %: not growth (1/3)
    d.ack(top * 1.2, inflight=10 ** 9)                  # 2/3
    assert b.state == STARTUP
    d.ack(top * 1.2, new_round=False, inflight=10 ** 9)  # not a round start: not counted
    assert b.state == STARTUP
    d.ack(top * 1.2, inflight=10 ** 9)                  # 3/3: the pipe is full -> DRAIN
    assert b.filled_pipe and b.state == DRAIN
    assert b.pacing_gain == DRAIN_GAIN and b.cwnd_gain == HIGH_GAIN


def test_app_limited_rounds_do_not_fill_the_pipe() -> None:
    d = Driver()
    for _ in range(6):
        d.ack(1e6, app_limited=True)
    assert d.bbr.state == STARTUP and not d.bbr.filled_pipe


def test_drain_lasts_until_inflight_is_down_to_the_bdp() -> None:
    d = Driver()
    b = d.bbr
    for _ in range(4):
        d.ack(1e6, inflight=10 ** 9)                    # flat rate: full after 3 rounds
    assert b.state == DRAIN
    bdp = b.bdp()
    assert bdp == int(1e6 * 0.1)
    d.ack(1e6, inflight=bdp + MSS)
    assert b.state == DRAIN
    d.ack(1e6, inflight=bdp)
    assert b.state == PROBE_BW and b.cwnd_gain == 2.0
    assert b.pacing_gain != 0.75                        # never starts in the draining phase


# --- PROBE_BW -------------------------------------------------------------------------------------
def in_probe_bw() -> Driver:
    d = Driver()
    for _ in range(4):
        d.ack(1e6, inflight=10 ** 9)
    d.ack(1e6, inflight=0)
    assert d.bbr.state == PROBE_BW
    return d


def test_probe_bw_cycles_through_the_eight_gains_one_rtprop_each() -> None:
    d = in_probe_bw()
    b = d.bbr
    bdp = b.bdp()
    # walk to the probing phase
    while b.pacing_gain != 1.25:
        d.ack(1e6, dt=0.101, inflight=bdp)
    seen = [b.pacing_gain]
    d.ack(1e6, dt=0.101, inflight=bdp)                  # a full RTprop, but inflight < 1.25 BDP:
    assert b.pacing_gain == 1.25                        # keep probing
    d.ack(1e6, dt=0.001, inflight=int(1.25 * bdp) + 1)  # 5/4 BDP in flight: the drain phase
    seen.append(b.pacing_gain)
    d.ack(1e6, dt=0.001, inflight=bdp)                  # 3/4 ends early once inflight <= BDP
    seen.append(b.pacing_gain)
    d.ack(1e6, dt=0.001, inflight=bdp)                  # a gain-1 phase lasts a whole RTprop
    assert b.pacing_gain == 1.0 and b.cycle_index == 2
    for _ in range(6):
        d.ack(1e6, dt=0.101, inflight=bdp)
        seen.append(b.pacing_gain)
    assert tuple(seen) == PACING_GAIN_CYCLE + (1.25,)
    # the pacing rate follows gain x BtlBw (less Linux's 1 % margin)
    assert b.pacing_rate is not None and abs(b.pacing_rate - 1.25 * 1e6 * 0.99) < 1e-6


def test_probe_bw_cwnd_is_twice_the_bdp_plus_quanta() -> None:
    d = in_probe_bw()
    b = d.bbr
    for _ in range(30):
        d.ack(1e6, dt=0.05, inflight=b.bdp())
    # ACKs on schedule: the aggregation allowance is one ACK's worth
    assert b.aggregation_cwnd() == 10 * MSS
    assert b.cwnd == 2 * b.bdp() + 3 * b.send_quantum() + 10 * MSS


def test_ack_aggregation_widens_cwnd_by_the_burst_beyond_btlbw() -> None:
    """ACKs that arrive in a burst deliver more than BtlBw predicts since the burst began;
    the excess is added to cwnd (draft -02 §4.6.4.3 extra_acked; Linux BBR v1 since 4.20)."""
    d = in_probe_bw()
    b = d.bbr
    for _ in range(12):
        d.ack(1e6, dt=0.05, inflight=b.bdp(), new_round=True)
    d.ack(1e6, dt=0.2, acked=10 * MSS, inflight=b.bdp(), new_round=False)   # a gap: on schedule, an epoch
    for _ in range(5):                                  # then 50 KB in the same millisecond
        d.ack(1e6, dt=0.0002, acked=10 * MSS, inflight=b.bdp(), new_round=False)
    # 60 KB acked over 1 ms, when 1 MB/s predicts 1 KB
    assert b.aggregation_cwnd() == 60 * MSS - 1000
    assert b.cwnd <= 2 * b.bdp() + 3 * b.send_quantum() + b.aggregation_cwnd()


def test_random_loss_does_not_shrink_the_model() -> None:
    """What BBR is for on issue 10's path: losses cost cwnd in recovery, never BtlBw."""
    d = in_probe_bw()
    b = d.bbr
    b.on_congestion(20 * MSS, d.now)
    for _ in range(20):
        d.ack(1e6, dt=0.05, inflight=b.bdp(), lost=MSS)
    b.on_recovery_exit()
    assert b.btlbw == 1e6 and b.state == PROBE_BW
    for _ in range(20):
        d.ack(1e6, dt=0.05, inflight=b.bdp())
    assert b.cwnd == 2 * b.bdp() + 3 * b.send_quantum() + b.aggregation_cwnd()


# --- PROBE_RTT -------------------------------------------------------------------------------------
def test_probe_rtt_after_10_s_without_a_new_minimum_holds_4_segments_200_ms() -> None:
    d = in_probe_bw()
    b = d.bbr
    start = b.rtprop_stamp
    cwnd_before = b.cwnd
    while True:
        cwnd_before = b.cwnd
        d.ack(1e6, dt=0.1, rtt=0.12, inflight=b.bdp())  # RTTs above the minimum: no refresh
        if d.now > start + 10.0:
            break
        assert b.state == PROBE_BW
    # the first ACK more than 10 s after the minimum was seen: PROBE_RTT
    assert b.state == PROBE_RTT and b.cwnd == 4 * MSS and b.pacing_gain == 1.0
    d.ack(1e6, dt=0.01, inflight=5 * MSS, new_round=True)
    assert b.probe_rtt_done_stamp is None               # inflight not down to 4 segments yet
    d.ack(1e6, dt=0.01, inflight=4 * MSS, new_round=False)
    assert b.probe_rtt_done_stamp is not None
    hold_until = b.probe_rtt_done_stamp
    assert abs(hold_until - d.now - PROBE_RTT_DURATION) < 1e-9
    d.ack(1e6, dt=0.01, inflight=4 * MSS, new_round=True)   # a round, but not 200 ms
    assert b.state == PROBE_RTT
    d.ack(1e6, dt=PROBE_RTT_DURATION, inflight=4 * MSS, new_round=False)   # 200 ms, round done
    assert b.state == PROBE_BW and b.rtprop_stamp == d.now
    assert b.cwnd >= cwnd_before                         # the prior cwnd is back


def test_a_new_minimum_rtt_postpones_probe_rtt() -> None:
    d = in_probe_bw()
    b = d.bbr
    for _ in range(150):                                 # 15 s, each ACK at the minimum RTT
        d.ack(1e6, dt=0.1, rtt=0.1, inflight=b.bdp())
        assert b.state == PROBE_BW


def test_rto_collapses_cwnd_and_restores_it_a_round_later() -> None:
    d = in_probe_bw()
    b = d.bbr
    for _ in range(10):
        d.ack(1e6, dt=0.05, inflight=b.bdp())
    before = b.cwnd
    b.on_rto(before, d.now)
    assert b.cwnd == MSS
    d.ack(1e6, acked=MSS, inflight=0, new_round=False)
    assert b.cwnd < before
    d.ack(1e6, acked=MSS, inflight=0, new_round=True)
    assert b.cwnd >= before


# --- delivery-rate estimation (draft-cheng-iccrg-delivery-rate-estimation) ----------------------------
def flight(rack: Rack, n: int, t0: float, gap: float, size: int = MSS) -> None:
    for k in range(n):
        rack.sent(k * size, (k + 1) * size, t0 + k * gap, False)


def test_rate_of_a_flight_acked_at_the_pace_it_was_sent() -> None:
    """§3.3: 10 segments sent 1 ms apart and ACKed one RTT (100 ms) later, 1 ms apart:
    the last ACK's sample covers the bytes delivered since the first segment's send, over
    the larger of the send and ACK intervals."""
    r = Rack()
    r.rate = RateEstimator()
    flight(r, 10, 1.0, 0.001)
    rs = None
    for k in range(10):
        now = 1.1 + k * 0.001
        r.on_ack((k + 1) * MSS, (), lambda s, e: False, now)
        rs = r.rate.sample(r.min_rtt)
        assert rs is not None and rs.newly_delivered == MSS
    assert rs is not None
    # the last segment was sent with C.delivered = 0 (nothing ACKed yet) at 1.009
    assert rs.prior_delivered == 0 and rs.delivered == 10 * MSS
    # send_elapsed 9 ms; ack_elapsed: from the first send (delivered_time = 1.0) to 1.109
    assert abs(rs.interval - 0.109) < 1e-9
    assert abs(rs.delivery_rate - 10 * MSS / 0.109) < 1e-6
    assert abs(rs.rtt - 0.1) < 1e-9


def test_rate_of_the_second_flight_is_the_bottleneck_rate() -> None:
    """In steady state each segment's sample spans one flight: with ACKs arriving every
    1 ms (a 1 MB/s bottleneck for 1000-byte segments), the rate is 1 MB/s."""
    r = Rack()
    r.rate = RateEstimator()
    now = 1.0
    sent = 0
    rates = []
    for k in range(40):                                   # ack clocked: one out per one delivered
        if k < 10:
            r.sent(sent, sent + MSS, now, False)
            sent += MSS
            continue
        now += 0.001
        r.on_ack((k - 9) * MSS, (), lambda s, e: False, now + 0.05)
        rs = r.rate.sample(r.min_rtt)
        if rs is not None and rs.delivery_rate:
            rates.append(rs.delivery_rate)
        r.sent(sent, sent + MSS, now + 0.05, False)
        sent += MSS
        now += 0.0
    assert rates and abs(rates[-1] - 1e6) / 1e6 < 0.15


def test_ack_compression_is_bounded_by_the_send_interval() -> None:
    """§3.3: ten segments sent over 10 ms and all ACKed in one ACK: the rate is over the
    send interval, not the (zero) ACK interval."""
    r = Rack()
    r.rate = RateEstimator()
    flight(r, 10, 1.0, 0.01)                            # sent over 90 ms
    r.on_ack(10 * MSS, (), lambda s, e: False, 1.2)
    rs = r.rate.sample(0.05)
    assert rs is not None
    assert abs(rs.interval - 0.2) < 1e-9                # ack_elapsed from delivered_time 1.0
    # a second flight sent back to back after it, ACKed in one ACK 100 ms later
    for k in range(10, 20):
        r.sent(k * MSS, (k + 1) * MSS, 1.2 + (k - 10) * 0.01, False)
    r.on_ack(20 * MSS, (), lambda s, e: False, 1.4)
    rs = r.rate.sample(0.05)
    assert rs is not None
    # send_elapsed = 1.29 - 1.2 (first_sent_time moved to the last delivered send, 1.09..)
    # and ack_elapsed = 1.4 - 1.2: the larger wins
    assert abs(rs.interval - 0.2) < 1e-9 and rs.delivered == 10 * MSS


def test_app_limited_marks_the_samples_until_that_flight_is_delivered() -> None:
    r = Rack()
    r.rate = RateEstimator()
    r.rate.mark_app_limited(0)                          # nothing to send: app-limited from now
    flight(r, 2, 1.0, 0.001)
    r.on_ack(2 * MSS, (), lambda s, e: False, 1.1)
    rs = r.rate.sample(r.min_rtt)
    assert rs is not None and rs.is_app_limited
    assert r.rate.app_limited == 0                      # delivered past the mark: over
    r.sent(2 * MSS, 3 * MSS, 1.1, False)
    r.on_ack(3 * MSS, (), lambda s, e: False, 1.2)
    rs = r.rate.sample(r.min_rtt)
    assert rs is not None and not rs.is_app_limited


def test_sacked_and_split_records_keep_their_snapshots() -> None:
    r = Rack()
    r.rate = RateEstimator()
    r.sent(0, 3 * MSS, 1.0, False)                      # one TSO super-segment
    r.mark_all_lost()
    assert r.rate.lost == 3 * MSS
    r.sent(MSS, 2 * MSS, 1.2, True)                     # its middle resent: the back is split off
    r.on_ack(0, ((MSS, 2 * MSS),), lambda s, e: s == MSS, 1.3)
    rs = r.rate.sample(0.05)
    assert rs is not None and rs.newly_delivered == MSS and rs.rtt == -1.0   # a retransmission
    r.on_ack(3 * MSS, (), lambda s, e: False, 1.4)
    rs = r.rate.sample(0.05)
    assert rs is not None and rs.newly_delivered == 2 * MSS and r.rate.delivered == 3 * MSS


# --- pacing on a connection --------------------------------------------------------------------------
def test_bbr_paces_segments_at_its_rate() -> None:
    rig = established(ts=True, sack=True, peer_ws=7, sndbuf=1 << 20, rtt=0.05)
    c = rig.conn
    c.nodelay = True
    assert c.set_congestion("bbr") == 0 and c.rack.rate is not None
    cc = c.cc
    assert isinstance(cc, Bbr)
    mss = c.mss
    cc.pacing_rate = 1000 * mss                         # 1000 segments/s: a quantum is 2 segments
    cc.cwnd = 100 * mss
    out = rig.send(bytes(40 * mss))
    # one quantum (2 segments) plus the late-timer credit (PACING_SLACK, 1 ms: 1 segment)
    assert len(data_segments(out)) == 3
    assert c.pace_at is not None and c.poll_at() == c.pace_at
    released = len(data_segments(out))
    t = rig.now
    while released < 40:
        at = c.poll_at()
        assert at is not None
        got = data_segments(rig.poll(at))
        assert 0 < len(got) <= 2
        released += len(got)
    # the other 37 at 1000/s, 2 every 2 ms (timers on time: no credit), the last one alone
    assert abs((rig.now - t) - 0.038) < 1e-6


def test_leaving_bbr_keeps_the_pacing_wakeup_so_held_data_goes() -> None:
    """Switching away from a paced controller must not strand what pacing held back (it
    waited for the next ACK, or the persist timer, found in review)."""
    rig = established(ts=True, sack=True, peer_ws=7, sndbuf=1 << 20, rtt=0.05)
    c = rig.conn
    c.nodelay = True
    c.set_congestion("bbr")
    c.cc.pacing_rate = 1000 * c.mss
    c.cc.cwnd = 100 * c.mss
    sent = len(data_segments(rig.send(bytes(40 * c.mss))))
    assert sent < 40 and c.pace_at is not None
    assert c.set_congestion("cubic") == 0 and c.pace_at is not None
    sent += len(data_segments(rig.poll(c.pace_at)))
    assert sent == 40                                   # cubic does not pace: all the rest at once


def test_a_base_controller_that_sets_a_pacing_rate_has_a_send_quantum() -> None:
    cc = ALGORITHMS["reno"](1000)
    cc.pacing_rate = 5e6                                # a plug-in may pace: 5 KB per ms
    assert cc.send_quantum() == 5000


def test_tso_super_segments_carry_a_millisecond_at_the_pacing_rate() -> None:
    rig = established(ts=True, sack=True, peer_ws=7, sndbuf=1 << 20)
    c = rig.conn
    c.nodelay = True
    c.tso_max = 65536
    c.set_congestion("bbr")
    mss = c.mss
    c.cc.pacing_rate = 10_000 * mss                     # 10 segments per ms
    c.cc.cwnd = 200 * mss
    out = rig.send(bytes(100 * mss))
    assert max(len(s.payload) for s in out) == 10 * mss


def test_cubic_does_not_pace() -> None:
    rig = established(ts=True, sack=True, peer_ws=7, sndbuf=1 << 20)
    c = rig.conn
    c.nodelay = True
    assert c.cc.name == "cubic" and c.cc.pacing_rate is None and c.rack.want_rate   # (TCP_INFO's delivery rate)
    c.cc.cwnd = 40 * c.mss
    out = rig.send(bytes(40 * c.mss))
    assert len(data_segments(out)) == 40 and c.pace_at is None and c.pace_next == 0.0


@pytest.mark.parametrize("sack", [True, False], ids=["sack", "no-sack"])
def test_bbr_on_a_connection_grows_from_acks_and_sets_a_rate(sack: bool) -> None:
    """End to end on the harness: ACKs feed the estimator, BBR gets samples and paces --
    without SACK too (the RACK records then serve rate estimation only)."""
    rig = established(ts=True, sack=sack, peer_ws=7, sndbuf=1 << 20, rtt=0.05, congestion="bbr")
    c = rig.conn
    c.nodelay = True
    assert isinstance(c.cc, Bbr) and c.rack.rate is not None
    mss = c.mss
    rig.send(bytes(200 * mss))
    acked = 0
    for _ in range(200):
        # one RTT: fire the pacing timer as it comes due, then the peer ACKs everything sent
        end = rig.now + 0.05
        while (at := c.poll_at()) is not None and at <= end:
            rig.poll(max(at, rig.now))
        rig.now = end
        if c.snd_max == c.snd_una:
            break
        una = c.snd_max
        rig.rx(ACK, ack=una, win=0xFFFF)
        acked = una - (ISS + 1)
    assert acked == 200 * mss
    assert c.cc.btlbw > 0 and c.cc.pacing_rate and c.cc.rtprop < 0.06
    assert c.cc.cwnd > 20 * mss                         # grew beyond the initial window
    assert len(c.rack) == 0                             # every record went with its ACK


def test_bbr_is_registered() -> None:
    assert ALGORITHMS["bbr"] is Bbr


def test_time_wait_leaves_no_sending_timer_armed() -> None:
    """TIME-WAIT sends nothing: a pacing, probe or RACK deadline left armed only woke the
    connection for nothing (found in review)."""
    rig = established(ts=True, sack=True, peer_ws=7, sndbuf=1 << 20)
    c = rig.conn
    c.pace_at, c.probe_at, c.rack_at = rig.now + 1, rig.now + 2, rig.now + 3
    c._enter_time_wait(rig.now)
    assert (c.pace_at, c.probe_at, c.rack_at) == (None, None, None)
    assert c.poll_at() == c.tw_at


def test_a_window_probe_is_not_held_back_by_pacing() -> None:
    """The persist timer's probe goes out whatever the pacing debt (Linux sends it outside
    its pacing); held back, the probe was counted in persist_backoff but never sent."""
    rig = established(ts=True, sack=True, peer_ws=7, sndbuf=1 << 20)
    c = rig.conn
    c.nodelay = True
    c.set_congestion("bbr")
    c.cc.pacing_rate = 1.0                              # one byte a second: always in debt
    c.cc.cwnd = 100 * c.mss
    c.snd_wnd = 0
    c.pace_next = rig.now + 1e7                      # far beyond a quantum (2 MSS at 1 B/s)
    rig.send(bytes(10 * c.mss))
    out = c.output(rig.now, force_probe=True) or rig.take()
    assert [s.seq for s in out if s.is_pure_ack()] == [c.snd_una - 1]     # the (bare) probe went
