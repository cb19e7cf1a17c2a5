"""Connection timers (4.4BSD tcp_timer): retransmission (RFC 6298), persist, delayed
ACK, keepalive (RFC 1122 §4.2.3.6), TIME-WAIT / FIN-WAIT-2.  The Tcp protocol keeps
one heap of connections ordered by `poll_at()`; the Stack's timer task drives it.  A half
of Connection over the control block (tcb.py)."""
from __future__ import annotations

import errno

from ..timing import TICK as TIMER_TICK
from . import deferaccept, info, mtuprobe_conn
from . import seq as sq
from .rtt import INITIAL_RTO
from .state import State
from .tcb import Tcb

ORPHAN_RETRIES = 8      # what net.ipv4.tcp_orphan_retries = 0 (its default) stands for in Linux

# RFC 8985 §7.2 PTO = 2 SRTT; plus a timer slack (Linux adds TCP_TIMEOUT_MIN, 2 jiffies: 2 ms
# at HZ=1000, 8 ms at HZ=250 -- measured here, 2 ms recovers fastest) so a
# sub-millisecond SRTT does not probe ahead of an ACK that is merely a little late
PTO_FLOOR = 0.002
SENDING = frozenset({State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1, State.CLOSING, State.LAST_ACK})

# TIMER_TICK (protocols/timing.py): a deadline still due after its handler ran is pushed this
# far past `now`, and a keepalive that is this close to its idle time is taken as due --
# float rounding of last_rcv + keepidle must never leave a timer at `now`.


def syn_interval(k: int, linear: int, rto_max: float) -> float:
    """The wait before SYN expiry k (1-based) of a connect(): the initial RTO for the first
    `linear` + 1 (net.ipv4.tcp_syn_linear_timeouts), doubling after."""
    return min(rto_max, INITIAL_RTO * (1 << max(0, k - linear - 1)))


def syn_elapsed(k: int, linear: int, rto_max: float) -> float:
    """Time from the first SYN to expiry k (the timer fires on time here)."""
    return sum(syn_interval(i, linear, rto_max) for i in range(1, k + 1))


def syn_timeout_budget(retries: int, rto_max: float) -> float:
    """How long connect() tries: Linux's tcp_model_timeout(syn_retries, TCP_TIMEOUT_INIT),
    the time `retries` doubling retransmissions would take -- (2^(retries+1) - 1) s, 127 s
    for 6.  Linux checks it by time (retransmits_timed_out) at each expiry, so with linear
    timeouts more SYNs fit in it: 6 retries give SYNs at 0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67
    s and ETIMEDOUT at 131 s."""
    total, rto = 0.0, INITIAL_RTO
    for _ in range(retries + 1):
        total += min(rto, rto_max)
        rto *= 2
    return total


class TimerMixin(Tcb):
    __slots__ = ()

    def poll_at(self) -> float | None:
        best = None
        for at in (self.rto_at, self.delack_at, self.persist_at, self.keep_at, self.tw_at, self.probe_at,
                   self.rack_at, self.pace_at, self.comp_at):
            if at is not None and (best is None or at < best):
                best = at
        return best

    def poll(self, now: float) -> None:
        if self.tw_at is not None and now >= self.tw_at:
            self.tw_at = None
            self.destroy()                       # TIME-WAIT over, or an orphan gave up in FIN-WAIT-2
            return
        if self.probe_at is not None and now >= self.probe_at:
            self.probe_at = None                 # before the RTO: a probe due with it goes instead
            self._on_probe(now)
        if self.rto_at is not None and now >= self.rto_at:
            self.rto_at = None
            self.probe_at = None
            self._on_rto(now)
        if self.rack_at is not None and now >= self.rack_at:
            self.rack_at = None
            self._on_rack_timer(now)
        if self.pace_at is not None and now >= self.pace_at:
            self.pace_at = None                  # the pacing debt is paid, or the autocork is over (output.py)
            self.output(now)
        if self.persist_at is not None and now >= self.persist_at:
            self.persist_at = None
            if self._orphan_gives_up_probing(now) or self._user_timeout_probing(now):
                return
            self.persist_backoff += 1
            self.output(now, force_probe=True)
            if self.user_timeout and self.persist_at is not None and self.probes_stamp is not None:
                # Linux tcp_clamp_probe0_to_user_timeout: the next probe no later than the timeout
                self.persist_at = min(self.persist_at, max(self.probes_stamp + self.user_timeout, now + TIMER_TICK))
        if self.delack_at is not None and now >= self.delack_at:
            self.delack_at = None
            self.delack_fired()                  # delack.py: ato and interactive mode
            self.ack_now = True
            self.output(now)
        if self.comp_at is not None and now >= self.comp_at:
            self.comp_at = None
            self.comp_ack_fired(now)             # the compressed SACK (delack.py)
        if self.keep_at is not None and now >= self.keep_at:
            self.keep_at = None
            self._on_keepalive(now)
        self.arm_keepalive(now)

    def _on_rto(self, now: float) -> None:
        st = self.state
        if st in (State.CLOSED, State.LISTEN, State.TIME_WAIT):
            return
        self.retries += 1
        info.rto_fired(self, now)
        self.retransmits += 1
        cfg = self.config
        limit = cfg.synack_retries if st == State.SYN_RECEIVED else cfg.retries2
        if self.user_closed:
            limit = min(limit, self.orphan_retry_limit())
        if self.user_timeout:
            expired = self._user_timed_out(now)
        elif st == State.SYN_SENT:
            expired = syn_elapsed(self.retries, cfg.syn_linear_timeouts, cfg.rto_max) \
                >= syn_timeout_budget(cfg.syn_retries, cfg.rto_max)
        else:
            expired = self.retries > limit and not (self.defer_acked and deferaccept.keeps_waiting(self))
        if expired:
            self.host.stats.timeouts += 1
            if self.user_closed:
                self.host.stats.orphan_timeouts += 1
            err = self.soft_error or errno.ETIMEDOUT
            if st == State.SYN_RECEIVED and self.parent is not None:
                self.destroy()                   # a listener's child: back to LISTEN, quietly
            else:
                self.drop(err)                   # Linux tcp_write_err: no RST to a silent peer
            return
        self.host.stats.rto_fires += 1
        if self.retrans_stamp is None:
            self.retrans_stamp = now             # Linux: the first RTO retransmission's time
        if self.mtup is not None and st not in (State.SYN_SENT, State.SYN_RECEIVED):
            mtuprobe_conn.on_rto(self, now)           # black-hole detection (tcp_mtu_probing)
        if st != State.SYN_SENT or self.retries > cfg.syn_linear_timeouts:
            self.rtt.on_timeout()
        if self.ecn is not None and st != State.SYN_RECEIVED:
            self.ecn.on_timeout()                # RFC 3168 §6.1.2: CWR after a timeout too (ecn.py)
            if st == State.SYN_SENT and self.retries == 1 and cfg.ecn_fallback:
                self.host.stats.ecn_syn_fallbacks += 1
        if st in (State.SYN_SENT, State.SYN_RECEIVED):
            if self.defer_acked and deferaccept.holds_synack(self):
                self.rto_at = now + self.rtt.current()   # TCP_DEFER_ACCEPT: the peer ACKed already
                return
            self.snd_nxt = self.iss
            self.total_retrans += 1              # Linux counts the SYN's copies (tcp_retransmit_skb)
            self.output(now)
            return
        # RFC 5681 §3.1 / RFC 6298 §5.4-5.6: collapse to one segment and go back N
        flight = sq.diff(self.snd_max, self.snd_una)
        if self.snd_wnd == 0:
            pass                                 # an unanswered window probe: flow control, not congestion
        elif self.rtt.backoff == 1:
            self.cc.on_rto(flight, now)
        else:
            self.cc.cwnd = self.mss
        self.in_recovery = False
        self.prr.end()
        self.rto_recovery = True                 # until SND.UNA passes RECOVER: no loss probes
        self.probe_at = None
        self.tail_lost = False
        self.probe_high = self.tlp_pending = None
        self.dupacks = 0
        self.recover = self.snd_max
        # RFC 6675 §5.1 keeps the scoreboard: SACKed data is skipped as SND.NXT goes back
        # (cleared only when the peer shows it reneged, input.py); RFC 8985 §6.3: all the
        # rest is taken as lost
        self.rack.mark_all_lost()
        self.rack_at = None
        self.undo_cc = None                      # no undo of an RTO (F-RTO, RFC 5682, is not done)
        self.rtt_seq = None
        self.snd_nxt = self.snd_una
        self.output(now)
        if self.rto_at is None and self.snd_max != self.snd_una:
            self.rto_at = now + self.rtt.current()
        if self.user_timeout and self.rto_at is not None:
            # Linux tcp_clamp_rto_to_user_timeout: the next RTO no later than the user timeout
            self.rto_at = min(self.rto_at, max(self.retrans_stamp + self.user_timeout, now + TIMER_TICK))

    def _user_timed_out(self, now: float) -> bool:
        """TCP_USER_TIMEOUT (RFC 5482; Linux retransmits_timed_out): data unACKed that long
        since the first RTO retransmission ends the connection -- time, not a count of retries."""
        return self.retrans_stamp is not None and now - self.retrans_stamp >= self.user_timeout - TIMER_TICK

    def _user_timeout_probing(self, now: float) -> bool:
        """Zero-window probing under TCP_USER_TIMEOUT (Linux tcp_probe_timer): given up that
        long after the first probe, answered or not, until the window opens; no RST."""
        if not self.user_timeout:
            return False
        if self.probes_stamp is None:
            self.probes_stamp = now
            return False
        if now - self.probes_stamp < self.user_timeout - TIMER_TICK:
            return False
        self.host.stats.timeouts += 1
        self.drop(errno.ETIMEDOUT)               # Linux tcp_write_err
        return True

    # --- orphans (closed by the application; Linux net.ipv4.tcp_orphan_retries) ---------------
    def orphan_retry_limit(self) -> int:
        return self.config.orphan_retries or ORPHAN_RETRIES

    def _orphan_gives_up_probing(self, now: float) -> bool:
        """An orphan's zero-window probes: once tcp_orphan_retries of them went out it is
        reset and freed (Linux tcp_probe_timer: icsk_probes_out >= tcp_orphan_retries; its
        peer answers the probes, so the RST frees the other end too).  A live socket probes
        on as long as they are answered (RFC 1122 §4.2.2.17); an orphan would hold its send
        queue forever for a peer that never reads."""
        if not self.user_closed or self.persist_backoff < self.orphan_retry_limit():
            return False
        self.host.stats.orphan_timeouts += 1
        self.abort(now, errno.ETIMEDOUT)
        return True

    # --- loss probes: a simplified RACK-TLP (RFC 8985) ------------------------------------------
    def arm_probe(self, now: float) -> None:
        """PTO = 2 SRTT (+ a delayed-ACK allowance for a lone segment), never later than the
        RTO (RFC 8985 §7.2).  Only with SACK and an RTT sample, and one probe at a time."""
        if not self.config.loss_probes or not self.sack_ok or not self.rtt.samples or self.snd_una == self.snd_max \
                or self.state not in SENDING or (self.probe_high is not None and not self.in_recovery) \
                or self.rto_recovery or (not self.in_recovery and self._tail_sacked()):
            # RFC 8985 §7.2 / Linux tcp_schedule_loss_probe: no TLP in the Loss state -- after
            # an RTO the retransmissions are the RTO's to time; a probe armed on each of them
            # sent every backed-off retransmission twice (issue 14's scripted rto-backoff).
            # Nor when the peer SACKed the last segment sent: the probe would resend a SACKed
            # segment (issue 14 point 3), and RACK's reordering timer covers everything below
            # it.  (Linux probes in no Disorder at all; RFC 8985 §7.2 allows it, and with the
            # tail unSACKed -- reordering keeps a bulk flow in Disorder -- the probe saves the
            # RTO a lost tail would cost: the lossy bench's RTOs went 3 -> 9 without it.)
            self.probe_at = None
            return
        # Linux tcp_schedule_loss_probe: 2 SRTT, plus for a lone segment the worst-case
        # delayed ACK (tcp_rto_min: RFC 8985 §7.2's WCDelAckT), else 2 ms of timer slack;
        # never later than the RTO would fire -- then the probe goes in its place, and the
        # RTO restarts from it (tcp_send_loss_probe's tcp_rearm_rto)
        pto = 2 * self.rtt.srtt + (self.config.rto_min if sq.diff(self.snd_max, self.snd_una) <= self.mss
                                   else PTO_FLOOR)
        at = now + pto
        self.probe_at = at if self.rto_at is None else min(at, self.rto_at)

    def _tail_sacked(self) -> bool:
        high = self.scoreboard.high_sack
        return high is not None and sq.ge(high, self.snd_max)

    def _on_probe(self, now: float) -> None:
        if self.snd_una == self.snd_max or self.state not in SENDING:
            return
        self.host.stats.loss_probes += 1
        if self.in_recovery:
            # Nothing heard for 2 SRTT in recovery: the retransmissions and the tail above the
            # highest SACK are taken as lost (RACK's reordering-window verdict, RFC 8985 §6.2)
            # and go again within cwnd -- without an RTO's collapse to one segment.
            self.high_rxt = self.snd_una
            self.tail_lost = True
            self.probe_high = self.snd_max
            self.probe_retrans = False               # recovery has reduced cwnd already
            if self.config.rack:
                self.rack.mark_all_lost()
            self.output(now)
            return
        # RFC 8985 §7.3: send new data if the windows allow, else the last segment again
        self.probe_high = self.snd_max
        self.probe_retrans = not self._probe_new_data(now)
        if self.probe_retrans:
            self._retransmit_tail(now)
        self.probe_high = self.snd_max           # Linux tlp_high_seq: SND.NXT after the probe
        self.rto_at = now + self.rtt.current()   # the RTO restarts from the probe (tcp_rearm_rto)

    def _on_rack_timer(self, now: float) -> None:
        """RFC 8985 §6.2 step 5: the reordering window of a segment ran out -- detect again."""
        if self.snd_una == self.snd_max or self.state not in SENDING:
            return
        self.host.stats.rack_timeouts += 1
        self._rack_detect(now)
        if self.prr.active and self.prr.out == 0 and self.prr.delivered == 0:
            # recovery began on the timer, with no ACK to take PRR's first step: Linux
            # tcp_rack_reo_timeout takes it as one segment delivered
            cwnd = self.prr.on_ack(self.mss, self._pipe(), self.mss, False, True)
            if cwnd is not None:
                self.cc.cwnd = cwnd
        self.output(now)

    def arm_keepalive(self, now: float) -> None:
        if self.keepalive and self.state in (State.ESTABLISHED, State.CLOSE_WAIT) and self.keep_at is None:
            base = self.last_rcv if self.keep_probes == 0 else now
            wait = self.keepidle if self.keep_probes == 0 else self.keepintvl
            self.keep_at = max(base + wait, now)
        elif not self.keepalive:
            self.keep_at = None

    def _on_keepalive(self, now: float) -> None:
        if self.keep_probes == 0:
            remaining = self.last_rcv + self.keepidle - now
            if remaining > TIMER_TICK:
                # Traffic since: wait out the rest of the idle time (Linux tcp_keepalive_timer
                # re-arms for keepalive_time - elapsed).  More than a tick away, so strictly
                # after `now` whatever the rounding; within a tick the probe goes now.
                self.keep_at = now + remaining
                return
        if (self.keep_probes >= self.keepcnt) if not self.user_timeout else \
                (self.keep_probes > 0 and now - self.last_rcv >= self.user_timeout - TIMER_TICK):
            # Linux tcp_keepalive_timer: with TCP_USER_TIMEOUT, idle that long with a probe out
            self.host.stats.keepalive_drops += 1
            self.abort(now, errno.ETIMEDOUT)         # Linux sends an RST here (tcp_keepalive_timer)
            return
        self.keep_probes += 1
        self.send_keepalive(now)
        self.keep_at = now + self.keepintvl
