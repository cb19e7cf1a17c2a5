"""BBR v1 congestion control, from draft-cardwell-iccrg-bbr-congestion-control-00.

BBR models the path instead of reacting to loss: BtlBw, the windowed maximum of the
delivery rate (rate.py) over the last 10 round trips, and RTprop, the windowed minimum
RTT over the last 10 s.  It paces at pacing_gain x BtlBw and keeps at most
cwnd_gain x BDP (BtlBw x RTprop) in flight.  A state machine (§4.3) sets the gains:

  STARTUP    pacing/cwnd gain 2/ln 2 (doubling per round) until the bandwidth has not
             grown by 25 % for 3 rounds (the pipe is full);
  DRAIN      pacing gain ln 2 / 2 until inflight <= BDP (the queue STARTUP built drains);
  PROBE_BW   cwnd gain 2, pacing gain cycling 5/4, 3/4, 1 x6, one phase per RTprop:
             probe for more bandwidth, then drain what the probe queued;
  PROBE_RTT  when RTprop has not been refreshed for 10 s: cwnd 4 segments for at
             least 200 ms and a round trip, so the queue empties and the min RTT is seen.

Why v1 and not BBRv3 (draft-ietf-ccwg-bbr): v3 bounds inflight by loss (inflight_hi
cut when a probing round loses more than 2 %), which is its fairness to loss-based
flows -- and on the 5 % random-loss path issue 10 measures, every round would cross
that threshold and v3 would back off like CUBIC.  v1 is what Linux's tcp_bbr (the
default congestion control of the machine that path was measured on) implements, so
it is also the like-for-like comparison.  Loss still matters to v1 only in recovery
(§4.2.3.4): cwnd shrinks by what is lost, packet conservation for the first round.

Sizes are bytes, rates bytes/s, times seconds.  Every update is O(1) per ACK.
"""
from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING

from .controller import INITIAL_WINDOW_SEGMENTS, CongestionControl

if TYPE_CHECKING:
    from .rate import RateSample

STARTUP, DRAIN, PROBE_BW, PROBE_RTT = "STARTUP", "DRAIN", "PROBE_BW", "PROBE_RTT"
HIGH_GAIN = 2 / math.log(2)             # §4.3.2.1: 2/ln(2) ~ 2.885, doubles the rate each round
DRAIN_GAIN = 1 / HIGH_GAIN              # §4.3.3
PACING_GAIN_CYCLE = (1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)   # §4.3.4.3
PROBE_BW_CWND_GAIN = 2.0                # §4.3.4.3
BTLBW_FILTER_ROUNDS = 10                # §4.1.1.2 BtlBwFilterLen
RTPROP_FILTER_LEN = 10.0                # §4.1.2.2: seconds
PROBE_RTT_DURATION = 0.2                # §4.3.5: 200 ms
MIN_PIPE_CWND_SEGMENTS = 4              # §4.2.3.1 BBRMinPipeCwnd
FULL_BW_THRESHOLD = 1.25                # §4.3.2.2: growth that counts as "still growing"
FULL_BW_COUNT = 3                       # §4.3.2.2: rounds without it -> the pipe is full
EXTRA_ACKED_WIN_ROUNDS = 5              # ACK aggregation: each of two slots holds the max of 5 rounds
EXTRA_ACKED_MAX_TIME = 0.1              # ...and what it adds is at most 100 ms at BtlBw
ACK_EPOCH_RESET = 1 << 20               # bytes: an aggregation epoch this long starts over
PACING_MARGIN = 0.99                    # Linux paces ~1 % below the estimate (bbr_pacing_margin_percent)


class MaxFilter:
    """A windowed maximum in O(1): Kathleen Nichols' algorithm, the best, second-best and
    third-best samples of the window, each newer than the one before (BBR's BtlBw filter)."""
    __slots__ = ("window", "_s")

    def __init__(self, window: float) -> None:
        self.window = window
        self._s: list[tuple[float, float]] = [(0.0, 0.0)] * 3     # (value, time)

    def get(self) -> float:
        return self._s[0][0]

    def reset(self, value: float, t: float) -> None:
        self._s = [(value, t)] * 3

    def update(self, value: float, t: float) -> float:
        s = self._s
        new = (value, t)
        if value >= s[0][0] or t - s[2][1] > self.window:
            self.reset(value, t)                 # a new maximum, or nothing in the window is recent
            return value
        if value >= s[1][0]:
            s[1] = s[2] = new
        elif value >= s[2][0]:
            s[2] = new
        # expire: the best is too old -> the second takes its place (and so on)
        dt = t - s[0][1]
        if dt > self.window:
            s[0], s[1], s[2] = s[1], s[2], new
            if t - s[0][1] > self.window:
                s[0], s[1] = s[1], s[2]
        elif s[1][1] == s[0][1] and dt > self.window / 4:
            s[1] = s[2] = new                    # a quarter of the window gone: take a fresher second
        elif s[2][1] == s[1][1] and dt > self.window / 2:
            s[2] = new                           # half gone: a fresher third
        return s[0][0]


class Bbr(CongestionControl):
    name = "bbr"
    wants_rate_samples = True

    def __init__(self, mss: int, rng: random.Random | None = None) -> None:
        super().__init__(mss)
        self.rng = rng or random.Random()
        self.state = STARTUP
        self.btlbw_filter = MaxFilter(BTLBW_FILTER_ROUNDS)
        self.rtprop = float("inf")
        # None until the first RTT sample: the clock is arbitrary (trio's starts at a random
        # 10^4..2*10^5 s), so a stamp of 0 made the filter look expired on the first ACK and
        # sent every connection to PROBE_RTT instead of STARTUP (Linux stamps it at init)
        self.rtprop_stamp: float | None = None
        self.rtprop_expired = False
        self.round_count = 0
        self.next_round_delivered = 0
        self.round_start = False
        self.filled_pipe = False
        self.full_bw = 0.0
        self.full_bw_count = 0
        self.pacing_gain = HIGH_GAIN
        self.cwnd_gain = HIGH_GAIN
        self.cycle_index = 0
        self.cycle_stamp = 0.0
        self.probe_rtt_done_stamp: float | None = None
        self.probe_rtt_round_done = False
        self.prior_cwnd = 0
        self.packet_conservation = False
        self.conservation_round = 0     # the round in which packet conservation ends
        self.recovery_start = False     # recovery just began: cwnd = inflight (+ what this ACK delivered)
        self.restore_round: int | None = None   # after an RTO: the round whose start restores cwnd
        self.extra_acked = [0, 0]       # ACK aggregation (see _update_ack_aggregation)
        self.extra_acked_slot = 0
        self.extra_acked_rounds = 0
        self.ack_epoch_start = 0.0
        self.ack_epoch_acked = 0
        self.pacing_rate = None
        self.ssthresh = 1 << 30         # BBR sets no ssthresh; the connection's slow-start test stays off
        self.delivered = 0

    # --- what the connection asks -------------------------------------------------------
    @property
    def btlbw(self) -> float:
        return self.btlbw_filter.get()

    def bdp(self, gain: float = 1.0) -> int:
        """§4.2.3.2 BBRInflight: gain x BtlBw x RTprop (the initial window before a sample)."""
        if self.rtprop == float("inf") or self.btlbw == 0:
            return INITIAL_WINDOW_SEGMENTS * self.mss
        return int(gain * self.btlbw * self.rtprop)

    def use_rng(self, rng: random.Random) -> None:
        self.rng = rng

    # --- the loss-based hooks, in BBR's terms --------------------------------------------
    def on_ack(self, acked: int, flight: int, now: float, rtt: float) -> None:
        pass                            # everything happens in on_rate_sample, on every ACK

    def congestion_avoidance(self, acked: int, now: float, rtt: float) -> None:
        pass

    def save_cwnd(self) -> int:
        """§4.2.3.4 BBRSaveCwnd: the cwnd to come back to after recovery or PROBE_RTT."""
        if self.state != PROBE_RTT and not self.packet_conservation and self.restore_round is None:
            return self.cwnd
        return max(self.prior_cwnd, self.cwnd)

    def on_congestion(self, flight: int, now: float) -> None:
        """Fast recovery begins (§4.2.3.4): packet conservation for one round -- cwnd is set
        from what is in flight by the next rate sample."""
        self.prior_cwnd = self.save_cwnd()
        self.packet_conservation = True
        self.recovery_start = True
        self.conservation_round = self.round_count + 1
        self.ssthresh = self.cwnd       # for a connection without SACK (NewReno inflation)

    def on_rto(self, flight: int, now: float) -> None:
        """§4.2.3.4: an RTO -- cwnd one segment; the prior cwnd comes back after a round."""
        self.prior_cwnd = self.save_cwnd()
        self.cwnd = self.mss
        self.packet_conservation = False
        self.restore_round = self.round_count + 1

    def on_recovery_exit(self) -> None:
        self.packet_conservation = self.recovery_start = False
        self.cwnd = max(self.cwnd, self.prior_cwnd)     # BBRRestoreCwnd

    def snapshot(self) -> dict[str, object]:
        return {"cwnd": self.save_cwnd()}

    def undo(self, before: dict[str, object]) -> None:
        """A spurious recovery: only the window comes back; the model (filters, rounds,
        state) is evidence and stays (Linux bbr_undo_cwnd likewise keeps the model)."""
        self.packet_conservation = self.recovery_start = False
        self.full_bw_count = 0
        saved = before.get("cwnd")
        if isinstance(saved, int):
            self.cwnd = max(self.cwnd, saved)

    # --- per ACK (§4.2-4.3) --------------------------------------------------------------
    def on_rate_sample(self, rs: RateSample, delivered: int, inflight: int, now: float, srtt: float) -> None:
        """BBRUpdateOnACK: the model, the state machine, then pacing rate and cwnd."""
        self.delivered = delivered
        self._update_round(rs, delivered)
        self._update_btlbw(rs)
        self._update_ack_aggregation(rs, now)
        self._check_cycle_phase(inflight, rs, now)
        self._check_full_pipe(rs)
        self._check_drain(inflight, now)
        self._update_rtprop(rs, now)
        self._check_probe_rtt(inflight, now)
        self._set_pacing_rate(srtt)
        self._set_cwnd(rs, inflight)

    def _update_round(self, rs: RateSample, delivered: int) -> None:
        """§4.1.1.3: a round ends when a segment sent after the round began is delivered."""
        if rs.prior_delivered >= self.next_round_delivered:
            self.next_round_delivered = delivered
            self.round_count += 1
            self.round_start = True
        else:
            self.round_start = False

    def _update_btlbw(self, rs: RateSample) -> None:
        """§4.1.1.5: app-limited samples only raise the estimate."""
        if rs.delivery_rate > 0 and (rs.delivery_rate >= self.btlbw or not rs.is_app_limited):
            self.btlbw_filter.update(rs.delivery_rate, self.round_count)

    def _update_ack_aggregation(self, rs: RateSample, now: float) -> None:
        """ACKs that come in bursts (a receiver's stretch ACKs, an event loop that handles a
        batch of frames at a time) deliver more in a moment than BtlBw says; a cwnd of just
        gain x BDP then stalls the sender until the next burst.  The excess over what BtlBw
        predicts since the burst began is kept as a windowed max (two slots of 5 rounds) and
        added to cwnd -- the extra_acked term of draft-cardwell-iccrg-bbr-congestion-control-02
        §4.6.4.3, which Linux's BBR v1 has carried since 4.20."""
        acked = rs.newly_delivered
        if self.round_start:
            self.extra_acked_rounds += 1
            if self.extra_acked_rounds >= EXTRA_ACKED_WIN_ROUNDS:
                self.extra_acked_rounds = 0
                self.extra_acked_slot ^= 1
                self.extra_acked[self.extra_acked_slot] = 0
        expected = self.btlbw * (now - self.ack_epoch_start)
        if self.ack_epoch_acked <= expected or self.ack_epoch_acked + acked >= ACK_EPOCH_RESET:
            self.ack_epoch_acked = 0            # on schedule (or a long epoch): a new one starts
            self.ack_epoch_start = now
            expected = 0.0
        self.ack_epoch_acked += acked
        extra = min(int(self.ack_epoch_acked - expected), self.cwnd)
        if extra > self.extra_acked[self.extra_acked_slot]:
            self.extra_acked[self.extra_acked_slot] = extra

    def aggregation_cwnd(self) -> int:
        """What ACK aggregation adds to the target cwnd, once the pipe is full."""
        if not self.filled_pipe:
            return 0
        return min(max(self.extra_acked), int(self.btlbw * EXTRA_ACKED_MAX_TIME))

    def _update_rtprop(self, rs: RateSample, now: float) -> None:
        """§4.1.2.3."""
        stamp = self.rtprop_stamp
        self.rtprop_expired = stamp is not None and now > stamp + RTPROP_FILTER_LEN
        if rs.rtt >= 0 and (stamp is None or rs.rtt <= self.rtprop or self.rtprop_expired):
            self.rtprop = rs.rtt
            self.rtprop_stamp = now

    # --- STARTUP and DRAIN (§4.3.2-4.3.3) --------------------------------------------------
    def _check_full_pipe(self, rs: RateSample) -> None:
        if self.filled_pipe or not self.round_start or rs.is_app_limited:
            return
        if self.btlbw >= self.full_bw * FULL_BW_THRESHOLD:
            self.full_bw = self.btlbw           # still growing: wait three more rounds
            self.full_bw_count = 0
            return
        self.full_bw_count += 1
        if self.full_bw_count >= FULL_BW_COUNT:
            self.filled_pipe = True

    def _check_drain(self, inflight: int, now: float) -> None:
        if self.state == STARTUP and self.filled_pipe:
            self.state = DRAIN
            self.pacing_gain = DRAIN_GAIN
            self.cwnd_gain = HIGH_GAIN
        if self.state == DRAIN and inflight <= self.bdp():
            self._enter_probe_bw(now)

    # --- PROBE_BW (§4.3.4) -------------------------------------------------------------------
    def _enter_probe_bw(self, now: float) -> None:
        self.state = PROBE_BW
        self.pacing_gain = 1.0
        self.cwnd_gain = PROBE_BW_CWND_GAIN
        # a random phase, never the draining 3/4 first (§4.3.4.4): flows desynchronise
        self.cycle_index = len(PACING_GAIN_CYCLE) - 1 - self.rng.randrange(len(PACING_GAIN_CYCLE) - 1)
        self._advance_cycle_phase(now)

    def _check_cycle_phase(self, inflight: int, rs: RateSample, now: float) -> None:
        if self.state == PROBE_BW and self._is_next_cycle_phase(inflight, rs, now):
            self._advance_cycle_phase(now)

    def _advance_cycle_phase(self, now: float) -> None:
        self.cycle_stamp = now
        self.cycle_index = (self.cycle_index + 1) % len(PACING_GAIN_CYCLE)
        self.pacing_gain = PACING_GAIN_CYCLE[self.cycle_index]

    def _is_next_cycle_phase(self, inflight: int, rs: RateSample, now: float) -> bool:
        """§4.3.4.4: a phase lasts one RTprop; probing lasts until it put 5/4 BDP in flight
        (or lost), draining stops early once inflight is down to the BDP."""
        is_full_length = now - self.cycle_stamp > self.rtprop
        if self.pacing_gain == 1.0:
            return is_full_length
        if self.pacing_gain > 1.0:
            return is_full_length and (rs.newly_lost > 0 or inflight >= self.bdp(self.pacing_gain))
        return is_full_length or inflight <= self.bdp()

    # --- PROBE_RTT (§4.3.5) ------------------------------------------------------------------
    def _check_probe_rtt(self, inflight: int, now: float) -> None:
        if self.state != PROBE_RTT and self.rtprop_expired:
            self.state = PROBE_RTT
            self.pacing_gain = 1.0
            self.cwnd_gain = 1.0
            self.prior_cwnd = self.save_cwnd()
            self.probe_rtt_done_stamp = None
        if self.state == PROBE_RTT:
            self._handle_probe_rtt(inflight, now)

    def _handle_probe_rtt(self, inflight: int, now: float) -> None:
        if self.probe_rtt_done_stamp is None and inflight <= self.min_pipe_cwnd():
            # the queue is drained: hold the small window 200 ms and at least one round
            self.probe_rtt_done_stamp = now + PROBE_RTT_DURATION
            self.probe_rtt_round_done = False
            self.next_round_delivered = self.delivered
        elif self.probe_rtt_done_stamp is not None:
            if self.round_start:
                self.probe_rtt_round_done = True
            if self.probe_rtt_round_done and now > self.probe_rtt_done_stamp:
                self.rtprop_stamp = now
                self.cwnd = max(self.cwnd, self.prior_cwnd)
                self._exit_probe_rtt(now)

    def _exit_probe_rtt(self, now: float) -> None:
        if self.filled_pipe:
            self._enter_probe_bw(now)
        else:
            self.state = STARTUP
            self.pacing_gain = self.cwnd_gain = HIGH_GAIN

    def min_pipe_cwnd(self) -> int:
        return MIN_PIPE_CWND_SEGMENTS * self.mss

    # --- the control parameters (§4.2) -------------------------------------------------------
    def _set_pacing_rate(self, srtt: float) -> None:
        """§4.2.1: pacing_gain x BtlBw once there is a sample (before: the initial window over
        the SRTT, or 1 ms); never lowered before the pipe is full."""
        if self.btlbw == 0:
            if self.pacing_rate is None:
                nominal = INITIAL_WINDOW_SEGMENTS * self.mss / (srtt if srtt > 0 else 0.001)
                self.pacing_rate = self.pacing_gain * nominal
            return
        rate = self.pacing_gain * self.btlbw * PACING_MARGIN
        if self.filled_pipe or self.pacing_rate is None or rate > self.pacing_rate:
            self.pacing_rate = rate

    def _set_cwnd(self, rs: RateSample, inflight: int) -> None:
        """§4.2.3: toward cwnd_gain x BDP plus room for the send quantum, growing by what was
        delivered; conservation in recovery; 4 segments in PROBE_RTT."""
        acked = rs.newly_delivered
        if self.restore_round is not None and self.round_count >= self.restore_round:
            self.cwnd = max(self.cwnd, self.prior_cwnd)    # the RTO's loss round is over
            self.restore_round = None
        if self.packet_conservation and self.round_count >= self.conservation_round:
            self.packet_conservation = False
        if rs.newly_lost > 0:
            self.cwnd = max(self.cwnd - rs.newly_lost, self.mss)
        if self.recovery_start:
            self.recovery_start = False
            self.cwnd = inflight + max(acked, self.mss)
        elif self.packet_conservation:
            self.cwnd = max(self.cwnd, inflight + acked)
        else:
            target = self.bdp(self.cwnd_gain) + 3 * self.send_quantum() + self.aggregation_cwnd()
            if self.filled_pipe:
                self.cwnd = min(self.cwnd + acked, target)
            elif self.cwnd < target or self.delivered < INITIAL_WINDOW_SEGMENTS * self.mss:
                self.cwnd += acked
            self.cwnd = max(self.cwnd, self.min_pipe_cwnd())
        if self.state == PROBE_RTT:
            self.cwnd = min(self.cwnd, self.min_pipe_cwnd())
