"""Segment arrival (RFC 9293 §3.10.7.3-4), with RFC 5961, RFC 7323 and RFC 6675 rules.

A half of Connection over the control block (tcb.py); the listening side (LISTEN, SYN cookies) lives in listen.py.
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Self

from . import deferaccept, info, mtuprobe_conn, prr
from . import fastopen_conn as fastopen
from . import seq as sq
from .buffers import NO_SCOREBOARD, Scoreboard
from .ecn import CE, QUICKACKS_ON_CE, syn_requests_ecn, synack_agrees
from .state import CLOSED, LISTEN, RECEIVES_TEXT, SYN_RECEIVED, SYN_SENT, TIME_WAIT, State
from .tcb import Tcb, shared_int
from .urgent import NOTYET, Urgent, read_seq
from .wire import ACK, CWR, ECE, FIN, RST, SYN, URG

# states in which we send data, where an ECE asks us to slow down
SYNCHRONIZED_DATA = (State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1, State.CLOSING, State.LAST_ACK)

if TYPE_CHECKING:
    from .buffers import SackCounters
    from .wire import TcpRepr

# header prediction (_predicted): the states it serves, and the flags that send a segment down
# the full path
PREDICTABLE = frozenset({State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSING,
                         State.LAST_ACK})
_UNPREDICTED = SYN | FIN | RST | URG | ACK
PAWS_IDLE = 24 * 86400.0          # RFC 7323 §5.5: TS.Recent older than 24 days is invalid
DUPTHRESH = 3                     # RFC 5681 §3.2 / RFC 6675 §2


class InputMixin(Tcb):
    __slots__ = ()

    def input(self: Self, seg: TcpRepr, payload: memoryview, now: float) -> None:
        self.segs_in += 1
        if payload:
            self.data_segs_in += 1
        held = self.ack_held
        if held is not None and (payload or seg.flags != ACK or seg.seq != held.seq or sq.lt(seg.ack, held.ack)):
            self.release_held_ack()                  # anything but the next pure ACK: the held ones first
        st = self.state
        if st in PREDICTABLE and seg.flags & _UNPREDICTED == ACK and self.urg is None:
            ahead = (seg.seq - self.rcv_nxt) & sq.MASK
            # in order, or text beyond a hole that starts inside the window (a lossy path)
            if (ahead == 0 or (payload and ahead < (self.rcv_adv - self.rcv_nxt) & sq.MASK < sq.HALF)) \
                    and self._predicted(seg, payload, now, ahead != 0):
                return
        if self.ack_held is not None:
            self.release_held_ack()
            if self.state == CLOSED:
                return
            st = self.state
        if st == SYN_SENT:
            self._input_syn_sent(seg, payload, now)
            return
        if st in (CLOSED, LISTEN):
            return
        flags = seg.flags
        if st == SYN_RECEIVED and flags & SYN and not flags & (ACK | RST) and seg.seq == self.irs:
            self.snd_nxt = self.iss                  # the peer lost our SYN-ACK: send it again
            self.output(now)
            return
        if st == SYN_RECEIVED and flags & (SYN | ACK | RST) == SYN | ACK and self.parent is None \
                and seg.seq == self.irs and seg.ack == self.snd_nxt:
            # RFC 9293 §3.5 Figure 8: the SYN-ACK of a simultaneous open completes it (Linux
            # tcp_validate_incoming lets it past RFC 5961's SYN check); a SYN's window is unscaled
            self.last_rcv = now
            self._establish(seg, now)
            self.snd_wnd = self.max_snd_wnd = seg.window
            # its SYN is one we had: ACK it with a D-SACK of that octet, as Linux does
            # (tcp_data_queue sees an old sequence: RFC 2883 §4)
            self._note_duplicate(seg.seq, 1, now)
            self.ack_now = True
            self.output(now)
            return
        self.last_rcv = now
        self.keep_probes = 0
        # RFC 7323 §5.3 PAWS: an older timestamp is an old duplicate -- except a reordered
        # duplicate ACK, which still carries SACK news for loss recovery (Linux
        # tcp_disordered_ack): no text, no SYN/FIN, at RCV.NXT, acking SND.UNA
        if self.ts_ok and seg.ts is not None and not flags & RST and sq.lt(seg.ts[0], self.ts_recent) \
                and now - self.ts_recent_stamp < PAWS_IDLE \
                and not (not payload and not flags & (SYN | FIN) and seg.seq == self.rcv_nxt
                         and seg.ack == self.snd_una and self.snd_una != self.snd_max):
            self.host.stats.paws_drops += 1
            self._note_duplicate(seg.seq, len(payload), now)
            self._dupack_invalid(seg, payload, "ack_skipped_paws", now)
            return
        seglen = len(payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        wnd = max(sq.diff(self.rcv_adv, self.rcv_nxt), 0)
        if not self._acceptable(seg.seq, seglen, wnd):
            self.host.stats.out_of_window += 1
            if flags & RST:
                return
            if flags & SYN:
                self._challenge_ack(now)             # RFC 5961 §4.2 whatever its sequence (Linux syn_challenge)
                return
            if st == State.TIME_WAIT and flags & FIN:
                self.tw_at = now + 2 * self.config.msl
            # §3.10.7.4: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, a D-SACK if it was old data
            self._note_duplicate(seg.seq, len(payload), now)
            self._dupack_invalid(seg, payload, "ack_skipped_time_wait" if st == State.TIME_WAIT
                                 else "ack_skipped_seq", now)
            return
        if flags & RST:
            self._input_rst(seg, now)
            return
        if flags & SYN:
            # RFC 5961 §4.2: any SYN in a synchronized state gets a challenge ACK
            self._challenge_ack(now)
            return
        if not flags & ACK:
            return
        if st == State.SYN_RECEIVED:
            if not (sq.lt(self.snd_una, seg.ack) and sq.le(seg.ack, self.snd_max)):
                self.host.reset_reply(self, seg, len(payload), now)
                return
            if self.parent is not None and self.parent.defer_accept and deferaccept.drops_bare_ack(self, seglen):
                return                               # TCP_DEFER_ACCEPT: wait for data (deferaccept.py)
            if self.parent is not None and not self.queued and self.host.accept_queue_full(self.parent):
                return                               # our SYN-ACK timer will ask again
            self._establish(seg, now)
        # RFC 5961 §5.2: ACK must lie in [SND.UNA - MAX.SND.WND, SND.MAX]
        if sq.gt(seg.ack, self.snd_max) or sq.lt(seg.ack, sq.add(self.snd_una, -max(self.max_snd_wnd, 1))):
            self._challenge_ack(now)
            return
        if self.ts_ok and seg.ts is not None and sq.le(seg.seq, self.last_ack_sent) \
                and (sq.ge(seg.ts[0], self.ts_recent) or now - self.ts_recent_stamp >= PAWS_IDLE):
            # RFC 7323 §4.3; §5.5: a TS.Recent idle for 24 days is invalid, so it is replaced
            self.ts_recent, self.ts_recent_stamp = seg.ts[0], now
        if self.ecn is not None:
            self._ecn_input(seg, len(payload), now)
        self._process_ack(seg, len(payload), now)
        st = self.state
        if st == CLOSED:
            return
        if flags & URG or self.urg is not None:
            self._urgent_input(seg, payload)          # RFC 9293 §3.10.7.4 sixth: the URG bit
        if (payload or flags & FIN) and st in RECEIVES_TEXT:
            self._process_text(seg, payload, now)
        elif flags & FIN and st == TIME_WAIT:
            self.ack_now = True                      # a retransmitted FIN: ACK it, restart 2 MSL
            self.tw_at = now + 2 * self.config.msl
        elif payload or flags & FIN:
            self.ack_now = True
        if self.state != CLOSED:
            self.output(now)

    # --- header prediction (Van Jacobson; 4.4BSD tcp_input, Linux tcp_rcv_established) ------
    def _predicted(self: Self, seg: TcpRepr, payload: memoryview, now: float, out_of_order: bool) -> bool:
        """The segments of a synchronized connection that make up nearly all of its
        traffic -- the pure ACK of data in flight, the in-order text at RCV.NXT, and on a
        lossy path the text beyond a hole -- past the checks of input() that cannot fail for
        them; False (nothing done) sends any other segment down the full path.  The caller
        checked: a synchronized state other than TIME-WAIT (ESTABLISHED as in BSD and Linux,
        and the half-closed states, where a bulk transfer often ends), only ACK of SYN, FIN,
        RST, URG and ACK (PSH, ECE and CWR go to the same helpers as on the full path),
        SEG.SEQ = RCV.NXT -- or, `out_of_order`, text with RCV.NXT < SEG.SEQ < RCV.NXT +
        RCV.WND -- and no urgent data in play.
        What is left out, and why it gives the same result:
        - PAWS (RFC 7323 §5.3) cannot drop a segment whose TSval is not older than TS.Recent,
          which is required here when timestamps are on (a segment without one falls through);
        - SEG.SEQ = RCV.NXT is acceptable for any window (RFC 9293 §3.10.7.4's four cases:
          with a zero window only RCV.NXT is, with an open one RCV.NXT is its left edge), and
          text starting inside an open window is too (the fourth case);
          text beyond the window is trimmed by _process_text, as on the full path;
        - SND.UNA <= SEG.ACK <= SND.MAX lies inside RFC 5961 §5.2's range, so no challenge
          ACK; an older ACK falls through;
        - SYN-RECEIVED's and TIME-WAIT's checks do not apply; no URG bit, no urgent data waits,
          no FIN.
        Everything after those checks is the same helpers in the same order: TS.Recent,
        ECN, the ACK (RTT sample, cwnd, RACK, PRR, window, FIN acknowledged, TCP_INFO
        counters), the text (delayed or quick ACK; after our FIN, none is taken), output --
        except that text acknowledging nothing new, with nothing else in play, only updates
        the send window (what _process_ack would do for it).  The output pass waits for the
        end of the receive batch, out-of-order text's too when SACK reports it (delack.py:
        what is read in one batch is all here; _process_text sends early what a block
        needs), except after text that fills a hole: its ACK goes at once, as on the full
        path (the sender times holes), and out-of-order text without SACK: each duplicate
        ACK counts (RFC 5681 §4.2)."""
        snd_una = self.snd_una
        if (seg.ack - snd_una) & sq.MASK > (self.snd_max - snd_una) & sq.MASK:
            return False                             # not in [SND.UNA, SND.MAX]
        if self.ts_ok:
            ts = seg.ts
            if ts is None or (ts[0] - self.ts_recent) & sq.MASK > sq.HALF:
                return False                         # no TSval, or older than TS.Recent: PAWS decides
            if sq.le(seg.seq, self.last_ack_sent):
                self.ts_recent, self.ts_recent_stamp = ts[0], now   # RFC 7323 §4.3
        self.last_rcv = now
        self.keep_probes = 0
        if self.ecn is not None:
            self._ecn_input(seg, len(payload), now)
        if payload and seg.ack == snd_una and not seg.sack and self.probe_high is None and self.tlp_pending is None \
                and (not self.cc.wants_rate_samples or snd_una == self.snd_max) and not self.prr.active \
                and self.fin_seq is None:
            # text that acknowledges nothing new: of _process_ack only what such an ACK does
            # when no SACK, loss probe, rate sample (or nothing of ours in flight: Linux's
            # tcp_ack leaves for no_queue before the congestion control), PRR or FIN of ours
            # is in play -- the window (Linux's fast path: tcp_update_wl)
            self.rcv_tstamp = now
            self._update_send_window(seg, snd_una, seg.window << self.snd_wscale)
            if self.snd_wnd == 0:
                self.retries = 0                     # as _process_ack: probes answered, stay open
        elif not payload and self.host.batching and self.sack_ok and seg.flags == ACK \
                and not (seg.sack and _is_dsack(seg.sack, seg.ack)):
            self._hold_ack(seg, now)                 # taken with the batch's others at its end
        else:
            if self.ack_held is not None:
                self.release_held_ack()              # (a D-SACK: the ACKs before it go first)
            self._process_ack(seg, len(payload), now)
        st = self.state
        if st == CLOSED:
            return True
        # text at RCV.NXT with holes above fills one (in part or whole): its ACK goes at
        # once too (RFC 5681 §4.2; Linux: RCV.NXT moved, so __tcp_ack_snd_check sends) --
        # held to the batch's end, the sender's RACK would time the hole out and resend it
        filling = bool(payload) and not out_of_order and bool(self.rcv.ooo_starts)
        if payload:
            if st in RECEIVES_TEXT:
                self._process_text(seg, payload, now)
            else:
                self.ack_now = True
        if self.state != CLOSED:
            if filling or (out_of_order and not (self.host.batching and self.sack_ok)):
                if not self.output_idle():           # (an ACK held back by delack.py: none owed yet)
                    self.output(now)
            else:
                self.host.output_later(self, now)    # coalesced per receive batch (tcp.py)
        return True

    # --- pure ACKs of one receive batch --------------------------------------------------
    def _hold_ack(self, seg: TcpRepr, now: float) -> None:
        """A pure ACK inside a receive batch (SACK on, no D-SACK, past header prediction's
        checks) waits for the batch's end, joined with the ones before it: the newest
        cumulative ACK, window and timestamp, and every SACK block any of them carried
        (_union_sack).  What the sender then does once -- the scoreboard, RACK, the rate
        sample and the congestion control, PRR -- it did once per ACK, and the output pass
        waited for the batch's end anyway (tcp.py rx_batch_end).  Cumulative all of it, as
        Linux's handling of a stretch ACK is; without SACK each duplicate ACK counts, so
        none is held.  Beyond Linux, which takes every ACK of a NAPI poll on its own."""
        held = self.ack_held
        if held is None:
            self.ack_held_una = self.snd_una
        else:
            if held.sack:
                # joined once, when taken (release_held_ack: more than one block); a lone block
                # of an older ACK at once, as it may lie below this one's cumulative ACK
                joined = held.sack + seg.sack
                seg.sack = joined if len(joined) > 1 else _union_sack(joined, seg.ack, self.snd_max, self.host.stats)
            if sq.gt(held.ack, self.ack_held_una):
                # its RTT sample, as _new_ack would have taken it: one per ACK of new data, as
                # Linux; one per batch, an SRTT far off (a SYN-ACK echoing the first of two
                # SYNs: 1 s) came down ten times slower, and the probe and RTO timers with it
                if self.ts_ok:
                    self._rtt_from(held, self.ack_held_now, self.rtt_time)
                self.ack_held_una = held.ack
        self.ack_held, self.ack_held_now = seg, now

    def release_held_ack(self) -> None:
        """The held ACK (_hold_ack) taken now: at the batch's end, or before any other
        segment of the connection."""
        seg = self.ack_held
        if seg is not None:
            self.ack_held = None
            if len(seg.sack) > 1:
                seg.sack = _union_sack(seg.sack, seg.ack, self.snd_max, self.host.stats)
            self._process_ack(seg, 0, self.ack_held_now)

    # --- ECN (RFC 3168; the state and rules in ecn.py) -----------------------------------
    def _ecn_input(self, seg: TcpRepr, datalen: int, now: float) -> None:
        """An acceptable segment of an ECN connection: the receiver's side (CWR ends our ECE
        echo, a CE data segment starts it) then the sender's (an ECE reduces once per window
        -- before this ACK can grow cwnd, as Linux's tcp_fastretrans_alert comes before
        tcp_cong_control)."""
        ecn = self.ecn
        assert ecn is not None
        flags = seg.flags
        if flags & CWR:
            ecn.on_cwr()
            if datalen:
                self.ack_now = True                  # its cwnd may be tiny: ACK at once (Linux)
        if datalen:
            if seg.ecn == CE:
                self.host.stats.ecn_ce_received += 1
            if ecn.on_data(seg.ecn):
                self.quickacks = max(self.quickacks, QUICKACKS_ON_CE)
        high = ecn.cwr_high
        if high is not None and sq.gt(seg.ack, high):
            ecn.cwr_high = None                      # the window that carried CWR is acknowledged
        if flags & ECE and ecn.cwr_high is None and not self.in_recovery and not self.rto_recovery \
                and self.state in SYNCHRONIZED_DATA:
            # §6.1.2: halve cwnd -- cwnd, not the flight (Linux's ssthresh() hooks read cwnd)
            self.cc.on_congestion(self.cc.cwnd, now)
            ecn.enter_cwr(self.snd_max)
            self.host.stats.ecn_reductions += 1

    # --- SYN-SENT (RFC 9293 §3.10.7.3) -------------------------------------------------------
    def _input_syn_sent(self: Self, seg: TcpRepr, payload: memoryview, now: float) -> None:
        flags = seg.flags
        if flags & ACK and not (sq.lt(self.iss, seg.ack) and sq.le(seg.ack, self.snd_max)):
            if not flags & RST:
                self.host.reset_reply(self, seg, len(payload), now)
            return
        if flags & RST:
            if flags & ACK:                          # RFC 5961 §3.2: only an RST that ACKs our SYN
                self.host.stats.in_rsts += 1
                self.host.stats.attempt_fails += 1
                self.drop(errno.ECONNREFUSED)
            return
        if not flags & SYN:
            return
        self.irs = seg.seq
        self.rcv_nxt = self.rcv_adv = self.last_ack_sent = sq.add(seg.seq, 1)
        self._take_syn_options(seg, now)
        if self.ecn is not None:
            # RFC 3168 §6.1.1: ECN only if the SYN-ACK agrees (ECE, not CWR) -- or, in a
            # simultaneous open, the peer's SYN asks too (Linux tcp_ecn_rcv_synack/_syn)
            if synack_agrees(flags) if flags & ACK else syn_requests_ecn(flags):
                self.host.stats.ecn_negotiated += 1
            else:
                self.ecn = None
        if flags & ACK:
            self.snd_wnd = seg.window                # RFC 7323 §2.2: never scaled in a SYN
            self.max_snd_wnd = self.snd_wnd
            self.snd_wl1, self.snd_wl2 = seg.seq, seg.ack
            self._ack_syn(seg.ack, seg, now)
            # RFC 7413: the data the SYN carried, the cookie; a sender waiting takes the ACK along
            save_ack = fastopen.on_synack(self, seg) if self.tfo is not None else False
            self.state = State.ESTABLISHED
            info.established(self, now)
            self.host.stats.active_opens += 1
            self.expand_sndbuf()                     # Linux tcp_init_buffer_space
            if save_ack:
                self.delack_at = now + fastopen.SAVED_ACK_DELAY
            else:
                self.ack_now = True
            if self.fin_queued or self.shut_wr:
                self.shut_wr = False
                self.shutdown_write(now)
            self.on_event()
        else:
            self.state = State.SYN_RECEIVED          # simultaneous open: SYN-ACK with our ISS
            self.snd_nxt = self.iss
        self.output(now)

    def _take_syn_options(self, seg: TcpRepr, now: float) -> None:
        """What the peer's SYN offered; both ends must agree (RFC 7323 §2.2, §3.2; RFC 2018 §2)."""
        self.peer_mss = seg.mss if seg.mss else 536  # RFC 9293 §3.7.1 default
        if seg.wscale is not None and self.want_wscale:
            self.peer_wscale = seg.wscale
            self.snd_wscale = seg.wscale
        else:
            self.peer_wscale = None
            self.snd_wscale = self.rcv_wscale = 0
        self.sack_ok = bool(seg.sack_perm and self.config.sack)
        ts = seg.ts
        self.ts_ok = ts is not None and self.config.timestamps
        if ts is not None and self.ts_ok:
            self.ts_recent, self.ts_recent_stamp = ts[0], now
        if self.config.mtu_probing:
            mtuprobe_conn.start(self, self.state == State.SYN_SENT)
        self._update_mss()

    def _update_mss(self) -> None:
        """Payload per segment: the smaller MSS of the two ends, within the path MTU (floored
        by the route cache at min_pmtu, protocols/pmtu.py), less the timestamp option."""
        mss = min(self.peer_mss, self.our_mss)
        if self.pmtu:
            mss = min(mss, self.pmtu - 20 - self.net_hdr_len)
        self.mss = shared_int(max(mss - (12 if self.ts_ok else 0), 64))
        if self.mtup is not None and (limit := self.mtup.mss_limit(mtuprobe_conn.overhead(self))) is not None:
            self.mss = min(self.mss, limit)         # path-MTU probing's floor (mtuprobe.py)
        self.cc.set_mss(self.mss)

    def _ack_syn(self, ack: int, seg: TcpRepr, now: float) -> None:
        """Our SYN is acknowledged: SND.UNA moves past it; take the RTT sample (Karn: not if
        resent -- but a timestamp echo still is one, as Linux's tcp_ack_update_rtt takes it
        when the ACK's timing cannot be used)."""
        if self.retries == 0:
            self._rtt_from(seg, now, sent_at=self.rtt_time)
        else:
            self.rtt.backoff = 0
            if self.ts_ok and seg.ts is not None and seg.ts[1]:
                self._rtt_from(seg, now, sent_at=now)
            if self.rtt.samples == 0:
                # RFC 6298 §5.7: a SYN timed out and left no sample -- data starts with an RTO of 3 s
                self.rtt.rto = max(self.rtt.rto, 3.0)
        self.snd_una = ack
        if sq.lt(self.snd_nxt, ack):
            self.snd_nxt = ack
        self.retries = 0
        if self.retransmits:
            info.rto_recovered(self, now)        # Linux tcp_ack clears icsk_retransmits
            self.retransmits = 0
        self.rto_at = None
        self.recover = sq.add(ack, -1)
        self.rtt_seq = None

    def _establish(self: Self, seg: TcpRepr, now: float) -> None:
        """SYN-RECEIVED -> ESTABLISHED on an ACK of our SYN (RFC 9293 §3.10.7.4 fifth check)."""
        # an ACK past our SYN (a Fast Open child's data, RFC 7413): SND.UNA past the SYN, the rest
        # is an ACK of data for _process_ack
        self._ack_syn(sq.add(self.iss, 1) if sq.diff(seg.ack, self.snd_una) > 1 else seg.ack, seg, now)
        self.snd_wnd = seg.window << self.snd_wscale
        self.max_snd_wnd = self.snd_wnd
        self.snd_wl1, self.snd_wl2 = seg.seq, seg.ack
        self.state = State.ESTABLISHED
        info.established(self, now)
        self.host.stats.passive_opens += 1
        self.expand_sndbuf()                         # Linux tcp_init_buffer_space
        self.host.established(self)
        if self.fin_queued:
            self.state = State.FIN_WAIT_1

    # --- acceptability, RST, challenge ACK -------------------------------------------------
    def _acceptable(self, seqno: int, seglen: int, wnd: int) -> bool:
        """RFC 9293 §3.10.7.4, the four cases of the first check."""
        rcv_nxt = self.rcv_nxt
        if seglen == 0:
            if wnd == 0:
                return seqno == rcv_nxt
            return sq.le(rcv_nxt, seqno) and sq.lt(seqno, sq.add(rcv_nxt, wnd))
        if wnd == 0:
            return seqno == rcv_nxt                  # lets ACK/RST/FIN through; text is trimmed to 0
        end = sq.add(seqno, seglen - 1)
        right = sq.add(rcv_nxt, wnd)
        return (sq.le(rcv_nxt, seqno) and sq.lt(seqno, right)) or (sq.le(rcv_nxt, end) and sq.lt(end, right))

    def _input_rst(self, seg: TcpRepr, now: float) -> None:
        """RFC 5961 §3.2: reset only on an exact RCV.NXT match; in-window gets a challenge ACK."""
        if seg.seq != self.rcv_nxt:
            self._challenge_ack(now)
            return
        self.host.stats.in_rsts += 1
        st = self.state
        if st == State.SYN_RECEIVED and self.parent is not None:
            self.destroy()                           # passive open: back to LISTEN, quietly
        elif st in (State.CLOSING, State.LAST_ACK, State.TIME_WAIT):
            self.destroy()
        elif st == State.CLOSE_WAIT:
            self.drop(errno.EPIPE)                   # Linux tcp_reset
        else:
            self.drop(errno.ECONNREFUSED if st == State.SYN_RECEIVED else errno.ECONNRESET)

    def _oow_rate_limited(self, now: float) -> bool:
        """Linux __tcp_oow_rate_limited: one ACK answering invalid segments per
        tcp_invalid_ratelimit per connection, so neither an ACK loop nor an attacker's
        flood draws more -- and, being per connection, what one connection answers says
        nothing of another's (the CVE-2016-5696 side channel needs a shared budget)."""
        last = self.last_oow_ack
        if last is not None and 0.0 <= now - last < self.config.invalid_ratelimit:
            return True
        self.last_oow_ack = now
        return False

    def _dupack_invalid(self, seg: TcpRepr, payload: memoryview, skipped: str,
                        now: float) -> None:
        """The duplicate ACK owed to an unacceptable or PAWS-failed segment, rate-limited per
        connection except for data without SYN, which is no ACK loop and whose dup ACK
        loss recovery needs (Linux tcp_oow_rate_limited)."""
        stats = self.host.stats
        if (payload and not seg.flags & SYN) or not self._oow_rate_limited(now):
            stats.oow_acks += 1
            self.ack_now = True
            self.output(now)
        else:
            stats.bump(skipped)

    def _challenge_ack(self, now: float) -> None:
        """RFC 5961 §3.2/§4.2/§5.2: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, limited first per
        connection, then by the host-wide budget if one is configured (Linux
        tcp_send_challenge_ack)."""
        stats = self.host.stats
        if self._oow_rate_limited(now):
            stats.ack_skipped_challenge += 1
            stats.challenge_acks_suppressed += 1
        elif not self.host.challenge_ack_allowed(now):
            stats.challenge_acks_suppressed += 1
        else:
            stats.challenge_acks += 1
            self.ack_now = True
            self.output(now)

    # --- ACK processing ------------------------------------------------------------------
    def _process_ack(self, seg: TcpRepr, datalen: int, now: float) -> None:
        ack = seg.ack
        self.rcv_tstamp = now                        # TCP_INFO's last_ack_recv (Linux tcp_ack)
        win = seg.window << self.snd_wscale
        sack_news = dsack = False
        sacked_before, rack_lost_before = self.scoreboard.sacked, self.host.stats.rack_lost   # for PRR
        dupacks_before = self.dupacks
        if self.sack_ok and seg.sack:
            if self.scoreboard is NO_SCOREBOARD:
                self.scoreboard = Scoreboard()
            sack_news = self.scoreboard.update(seg.sack, self.snd_una, self.snd_max, self.host.stats)
            if _is_dsack(seg.sack, ack):
                dsack = True
                self.host.stats.dsacks_received += 1
                lo, hi = seg.sack[0]                 # Linux tcp_dsack_seen: whole segments, one at least
                self.dsack_dups += max(-(-sq.diff(hi, lo) // max(self.mss, 1)), 1)
                self.rack.on_dsack(self.snd_una, self.snd_nxt)
                self._dsack_undo(seg.sack[0], now)
        acked = sq.diff(ack, self.snd_una)
        if self.probe_high is not None:
            if sq.ge(ack, self.probe_high):
                if self.probe_retrans and not self.in_recovery:
                    self.tlp_pending = self.probe_high   # RFC 8985 §7.4: was it needed?
                self.probe_high = None                   # the probe (or what it chased) arrived
                self.tail_lost = False
            elif sack_news and not self.in_recovery and self.scoreboard.high_sack is not None \
                    and sq.ge(self.scoreboard.high_sack, self.probe_high):
                self.host.stats.probe_recoveries += 1    # RFC 8985 §7.4: the probe got through,
                self.probe_high = None                   # what it overtook did not
                self._enter_recovery(now)
        if self.tlp_pending is not None:
            self._tlp_verdict(ack, self.tlp_pending, acked, sack_news, dsack, now)
        if acked > 0:
            self._new_ack(seg, acked, now, sacked_before)
        elif acked == 0 and self.snd_max != self.snd_una and datalen == 0 \
                and not seg.flags & (SYN | FIN) and (win == self.snd_wnd or sack_news):
            self._dupack(now)
        if self.sack_ok and self.config.rack and (acked > 0 or seg.sack):
            self._rack_on_ack(seg, now)
        elif acked > 0 and self.rack.rate is not None:
            # no SACK (or no RACK): the records serve delivery-rate estimation only
            self.rack.on_ack(self.snd_una, (), self._range_sacked, now)
        rate = self.rack.rate
        if rate is not None:
            if self.cc.wants_rate_samples:
                self._rate_sample(now)
            else:
                rate.finish(self.rack.min_rtt)       # TCP_INFO's delivery rate only (rate.py)
        if self.prr.active and self.in_recovery:
            self._prr_on_ack(acked, sacked_before, rack_lost_before, dupacks_before)
        self._update_send_window(seg, ack, win)
        if acked > 0 and self.snd.capacity < self.config.wmem[2]:
            self.expand_sndbuf()                     # with the new cwnd and window (memory.py)
        if self.snd_wnd == 0:
            self.retries = 0                         # RFC 1122 §4.2.2.17: probes answered, stay open
        if self.fin_seq is not None and not self.fin_acked and sq.gt(ack, self.fin_seq):
            self.fin_acked = True
            st = self.state
            if st == State.FIN_WAIT_1:
                self.state = State.FIN_WAIT_2
                if self.user_closed:
                    self.tw_at = now + self.config.fin_timeout
            elif st == State.CLOSING:
                self._enter_time_wait(now)
            elif st == State.LAST_ACK:
                self.destroy()
            self.on_event()

    def _update_send_window(self, seg: TcpRepr, ack: int, win: int) -> None:
        """RFC 9293 §3.10.7.4: the send window from the newest segment only (SND.WL1/WL2)."""
        if sq.lt(self.snd_wl1, seg.seq) or (self.snd_wl1 == seg.seq and sq.le(self.snd_wl2, ack)):
            if win and self.snd_wnd == 0 and sq.gt(self.snd_nxt, self.snd_una):
                self.snd_nxt = self.snd_una          # the window reopens: resend the probe octet it dropped
            if win != self.snd_wnd:                  # (an equal value: keep the one object)
                self.snd_wnd = win
            self.snd_wl1, self.snd_wl2 = seg.seq, ack
            if win > self.max_snd_wnd:
                self.max_snd_wnd = win
            if win:
                self.persist_at = None
                self.persist_backoff = 0
                self.probes_stamp = None             # TCP_USER_TIMEOUT's probing time (timer.py)

    def _rack_on_ack(self, seg: TcpRepr, now: float) -> None:
        """RFC 8985 §6.2: what this ACK delivered advances RACK; then every segment sent
        before the newest delivered one, and older than RACK.rtt + reo_wnd, is lost."""
        rack = self.rack
        seen = rack.reorderings
        if rack.on_ack(self.snd_una, seg.sack or (), self._range_sacked, now):
            self._rack_detect(now)
        if rack.reorderings != seen:
            self.reord_seen += 1                     # once per ACK, as Linux's tcp_check_sack_reordering

    def _tlp_verdict(self, ack: int, pending: int, acked: int, sack_news: bool, dsack: bool,
                     now: float) -> None:
        """RFC 8985 §7.4 TLP loss detection (Linux tcp_process_tlp_ack) for a probe that resent
        data, once the ACKs reached its SND.MAX (`pending`): an ACK past it without a D-SACK
        shows the probe repaired a loss -- cwnd is reduced once (Linux enters and ends CWR at
        once: cwnd = ssthresh); a D-SACK, or a pure duplicate ACK at it, shows the original got
        there too (no reduction).  The ACK of exactly the probe leaves it open for the next.
        Unlike Linux, an open verdict does not hold back the next probe (tlp_high_seq does):
        on a reordering path that cost the lossy bench its RTOs."""
        if dsack or self.in_recovery:
            self.tlp_pending = None
        elif sq.gt(ack, pending):
            self.tlp_pending = None
            self.host.stats.probe_recoveries += 1
            self.cc.on_congestion(sq.diff(self.snd_max, self.snd_una), now)
        elif acked <= 0 and not sack_news:
            self.tlp_pending = None

    def _prr_on_ack(self, acked: int, sacked_before: int, rack_lost_before: int, dupacks_before: int) -> None:
        """RFC 6937 §3 on every ACK of recovery, after loss detection (Linux tcp_cong_control
        -> tcp_cwnd_reduction): cwnd from what this ACK delivered -- with SACK the cumulative
        advance plus the change in SACKed octets (SACKed octets the ACK now covers were
        delivered before); without, a segment per duplicate ACK, and for a partial ACK what
        it covers beyond the duplicate ACKs already counted (Linux tcp_remove_reno_sacks)."""
        if self.sack_ok:
            delivered = max(acked, 0) + self.scoreboard.sacked - sacked_before
            newly_lost = self.host.stats.rack_lost != rack_lost_before
        elif acked > 0:
            delivered = max(acked - dupacks_before * self.mss, self.mss)
            newly_lost = True                        # the new head (rexmit_una)
        else:
            delivered = self.mss if self.dupacks > dupacks_before else 0
            newly_lost = False
        cwnd = self.prr.on_ack(delivered, self._pipe(), self.mss, acked > 0, newly_lost)
        if cwnd is not None:
            self.cc.cwnd = cwnd

    def _rate_sample(self, now: float) -> None:
        """A model-based controller (BBR) hears what this ACK delivered and the rate it shows
        (draft-cheng-iccrg-delivery-rate-estimation §3.3)."""
        rack = self.rack
        assert rack.rate is not None
        rs = rack.rate.sample(rack.min_rtt)
        if rs is None:
            return
        inflight = rack.inflight if self.sack_ok and self.config.rack else sq.diff(self.snd_max, self.snd_una)
        self.cc.on_rate_sample(rs, rack.rate.delivered, inflight, now, self.rtt.srtt)

    def _range_sacked(self, start: int, end: int) -> bool:
        got = self.scoreboard.sacked_end(start)
        return got is not None and sq.ge(got, end)

    def _rack_detect(self, now: float) -> None:
        rack = self.rack
        reo_wnd = rack.reo_wnd(self.in_recovery, self.scoreboard.sacked >= DUPTHRESH * self.mss, self.rtt.srtt)
        marked, retransmitted, timeout = rack.detect_loss(now, reo_wnd)
        self.rack_at = now + timeout if timeout > 0 else None
        if not marked:
            return
        stats = self.host.stats
        stats.rack_lost += marked
        stats.lost_retransmits += retransmitted
        # RFC 8985 §6.2 / RFC 6675 §5: a loss starts fast recovery -- once per window
        # (RFC 6582 §3.2 step 1: not again before the old RecoveryPoint is ACKed)
        if not self.in_recovery and sq.ge(self.snd_una, self.recover):
            self._enter_recovery(now)

    def _rtt_from(self, seg: TcpRepr, now: float, sent_at: float) -> None:
        if self.ts_ok and seg.ts is not None and seg.ts[1]:
            r = ((self.host.ts_clock(now) + self.ts_offset - seg.ts[1]) & 0xFFFFFFFF) / 1000.0
            if r < 60:                               # RFC 7323 §4.1: a sane echo only
                self.rtt.sample(r)
        elif self.rtt_seq is not None:
            self.rtt.sample(now - sent_at)

    def _new_ack(self, seg: TcpRepr, acked: int, now: float, sacked_before: int = 0) -> None:
        ack = seg.ack
        if self.ts_ok or (self.rtt_seq is not None and sq.gt(ack, self.rtt_seq)):
            self._rtt_from(seg, now, self.rtt_time)
            if self.rtt_seq is not None and sq.gt(ack, self.rtt_seq):
                self.rtt_seq = None
        flight = sq.diff(self.snd_max, self.snd_una)
        data_acked = min(acked, self.snd.queued)
        self.snd.consume(data_acked)
        self.bytes_acked += data_acked
        self.delivered += -(-data_acked // max(self.mss, 1))
        if seg.flags & ECE and self.ecn is not None:     # Linux tcp_count_delivered (TCP_INFO)
            self.delivered_ce += -(-data_acked // max(self.mss, 1))
        self.retrans_stamp = None                    # progress: TCP_USER_TIMEOUT counts afresh
        self.snd_una = ack
        chrono = self.chrono_type
        if chrono == info.CHRONO_SNDBUF_LIMITED or (chrono and ack == self.snd_max):
            if ack == self.snd_max and not self.snd.queued:
                info.chrono_stop(self, info.CHRONO_UNSPEC, now)      # all ACKed, nothing queued
            else:                                    # (the writeable test only when it matters)
                info.chrono_stop(self, info.CHRONO_SNDBUF_LIMITED if info.stream_writeable(self)
                                 else info.CHRONO_UNSPEC, now)
        if sq.lt(self.snd_nxt, ack):
            self.snd_nxt = ack
        if sq.lt(self.high_rxt, ack):
            self.high_rxt = ack
        self.retries = 0
        if self.retransmits:
            info.rto_recovered(self, now)
        self.retransmits = 0
        self.rtt.backoff = 0
        self.scoreboard.prune(ack)
        if self.mtup is not None:
            mtuprobe_conn.on_ack(self, ack)
        if self.scoreboard.lefts and self.scoreboard.is_sacked(ack):
            # RFC 6675 §5.1 / RFC 2018 §8: the cumulative ACK stops where the peer had SACKed
            # -- it reneged (dropped out-of-order data); only now is the scoreboard void
            # (Linux tcp_check_sack_reneging)
            self.host.stats.sack_reneging += 1
            self.scoreboard.clear()
        if self.rto_recovery and sq.ge(ack, self.recover):
            self.rto_recovery = False                # out of the Loss state: loss probes again
        if self.in_recovery:
            if sq.ge(ack, self.recover):             # full ACK (RFC 6582 §3.2 step 3)
                self.in_recovery = False
                self.prr.end()
                self.tail_lost = False
                self.dupacks = 0
                if self._may_undo(seg):
                    self._undo_recovery()
                elif self.undo_cc is not None or not self.sack_ok:
                    self.cc.on_recovery_exit()       # (not after a D-SACK undo: nothing to end)
                self.undo_cc = None
                self.rack.on_recovery_exit()
            elif not self.sack_ok:
                # partial ACK (RFC 6582 step 5): the new head is lost; of the duplicate ACKs
                # counted as segments that left, those this ACK covers are gone (Linux
                # tcp_remove_reno_sacks); PRR sets cwnd (_prr_on_ack)
                self.rexmit_una = True
                self.dupacks = max(self.dupacks - (-(-acked // max(self.mss, 1)) - 1), 0)
        else:
            self.dupacks = 0
            if self.ecn is not None and self.ecn.cwr_high is not None:
                pass                                 # ECN's CWR: no growth (ecn.py)
            elif self.cwnd_use.is_cwnd_limited(self.cc.cwnd, self.cc.ssthresh):
                # grow only when cwnd was the limit (Linux tcp_is_cwnd_limited, cwnd.py)
                # what this ACK delivered: octets SACKed before were counted then (Linux's
                # acked_sacked), so an ACK filling a hole below them grows cwnd by the hole
                delivered = max(data_acked + self.scoreboard.sacked - sacked_before, 0)
                self.cc.on_ack(delivered, flight, now, self.rtt.srtt)
        # RFC 6298 §5.2-5.3
        self.rto_at = None if self.snd_una == self.snd_max else now + self.rtt.current()
        self.arm_probe(now)
        if data_acked:
            self.on_event()

    def _dupack(self, now: float) -> None:
        self.dupacks += 1
        if self.probe_at is not None and (self.in_recovery or self.scoreboard.lefts):
            # SACK progress: restart the probe (RFC 8985 §7.2); arm_probe cancels it once the
            # peer has SACKed the last segment sent
            self.arm_probe(now)
        if self.in_recovery:
            return                                   # PRR paces it (_prr_on_ack), with or without SACK
        if self.sack_ok and self.config.rack and self.rack.reordering_seen:
            return                                   # RFC 8985 §6.2: reordering seen, time decides
        lost = self.dupacks >= DUPTHRESH or (
            self.sack_ok and self.scoreboard.sacked >= DUPTHRESH * self.mss)   # RFC 6675 IsLost(SND.UNA)
        # RFC 6582 §3.2 step 1 guards NewReno against a second reduction for one window;
        # with SACK (RFC 6675 §5) a loss at the old RecoveryPoint is already a new episode
        if lost and (sq.gt(self.snd_una, self.recover) or (self.sack_ok and self.snd_una == self.recover)):
            self._enter_recovery(now)

    def _enter_recovery(self, now: float) -> None:
        """Fast retransmit (RFC 5681 §3.2, RFC 6582 §3.2 step 2, RFC 6675 §5 step 4)."""
        flight = sq.diff(self.snd_max, self.snd_una)
        probe_lost = self.mtup is not None and self.mtup.probe_size and self.snd_una == self.mtup.probe_start
        self.host.stats.fast_retransmits += 1
        self.in_recovery = True
        self.recover = self.snd_max
        self.undo_cc = self.cc.snapshot()
        self.undo_marker = self.snd_una
        self.undo_retrans = 0
        self.undo_tsval = None
        prior_cwnd = self.cc.cwnd
        if self.ecn is None or not self.ecn.to_recovery():
            self.cc.on_congestion(flight, now)       # (not twice in one window: ECE reduced already)
        if probe_lost:
            self._mtu_probe_lost()                   # no reduction, so no PRR either
        else:
            # RFC 6937: PRR takes cwnd from here to ssthresh, ACK by ACK (_prr_on_ack) --
            # without SACK too, each duplicate ACK counting as a segment delivered, as Linux
            # does (RFC 6582's window inflation is not used)
            if self.prr is prr.IDLE:
                self.prr = prr.Prr()
            self.prr.start(prior_cwnd, self.cc.ssthresh)
        self.high_rxt = self.snd_una
        self.rexmit_una = True
        self.rtt_seq = None                          # Karn
        if self.probe_at is None:
            # the recovery probe (timer.py _on_probe): the tail-loss probe may have been
            # cancelled in Disorder (a SACKed tail), and nothing else arms it in recovery
            self.arm_probe(now)

    def _mtu_probe_lost(self) -> None:
        """The path-MTU probe is the hole (mtuprobe.py): its size does not pass, and its loss
        says nothing of congestion (RFC 4821 §7.6.2; Linux tcp_simple_retransmit leaves cwnd
        and gives back the segment the probe took) -- the reduction is undone at once."""
        assert self.mtup is not None and self.undo_cc is not None
        self.mtup.probe_lost()
        self.cc.undo(self.undo_cc)
        self.cc.cwnd += self.mss
        self.undo_cc = None

    def _note_duplicate(self, seqno: int, datalen: int, now: float, out_of_order: bool = False,
                        whole: bool = True) -> None:
        """RFC 2883 §4: data we already had is reported once, as the first SACK block of the
        next ACK, so the sender can tell a needless retransmission from a loss (and undo,
        widen its reordering window).  Below RCV.NXT, a segment that was old as a `whole`
        also starts quick-ACK mode, as Linux's tcp_data_queue (DELAYEDACKLOST) and
        tcp_send_dupack do, with or without SACK; a segment only partly old, and a duplicate
        of out-of-order data (tcp_data_queue_ofo: "all the bits are present"), get the
        D-SACK alone -- after each duplicate beyond a hole, quick ACKs would undo SACK
        compression for the next 16 segments."""
        if not datalen:
            return
        end = sq.add(seqno, datalen)
        old = not out_of_order and not sq.gt(end, self.rcv_nxt) \
            and sq.diff(self.rcv_nxt, seqno) <= max(self.rcv.capacity, 1 << 16)
        if old and whole:
            self.enter_quickack_mode()
        if not self.sack_ok or not self.config.dsack or not (old or out_of_order):
            return                                   # not (only) old data, or far too old to be ours
        if self.dsack is not None and self.host.batching:
            self.send_ack(now)                       # one per ACK: the one a batch's ACK holds goes first
        self.dsack = (seqno, end)
        self.host.stats.dsacks_sent += 1

    def _extend_duplicate(self, start: int, end: int) -> None:
        """Linux tcp_dsack_extend, for queued data that text at RCV.NXT ran into: the D-SACK
        when none is pending, else joined to the pending one where they touch (one D-SACK
        block per ACK, RFC 2883 §4); no quick-ACK mode (Linux tcp_ofo_queue)."""
        if not self.sack_ok or not self.config.dsack:
            return
        pending = self.dsack
        if pending is None:
            self.dsack = (start, end)
            self.host.stats.dsacks_sent += 1
        elif sq.le(start, pending[1]) and sq.le(pending[0], end):
            self.dsack = (start if sq.lt(start, pending[0]) else pending[0],
                          end if sq.gt(end, pending[1]) else pending[1])

    # --- undoing a spurious recovery (RFC 3708, RFC 3522, RFC 4015; Linux tcp_try_undo_*) ---------
    def note_retransmission(self, now: float) -> None:
        if self.undo_cc is not None:
            self.undo_retrans += 1
            if self.undo_tsval is None and self.ts_ok:
                self.undo_tsval = self._ts_val(now)

    def _dsack_undo(self, block: tuple[int, int], now: float) -> None:
        """RFC 3708 §3: each D-SACK of the episode's retransmissions reports one that was
        not needed; when all are reported, the reduction was for nothing."""
        if self.undo_cc is None or not self.in_recovery or sq.lt(block[0], self.undo_marker):
            return
        self.undo_retrans -= max(1, sq.diff(block[1], block[0]) // max(self.mss, 1))
        if self.undo_retrans <= 0:
            self._undo_recovery()

    def _may_undo(self, seg: TcpRepr) -> bool:
        """At the end of recovery: all retransmissions D-SACKed, or (RFC 3522 §2) the ACK
        echoes a timestamp older than the first retransmission -- an original arrived."""
        if self.undo_cc is None:
            return False
        if self.undo_retrans <= 0:
            return True
        return self.undo_tsval is not None and seg.ts is not None and sq.lt(seg.ts[1], self.undo_tsval)

    def _undo_recovery(self) -> None:
        """RFC 4015 §3.2: restore the congestion state from before the false alarm."""
        assert self.undo_cc is not None
        self.cc.undo(self.undo_cc)
        self.undo_cc = None
        self.prr.end()                               # nothing left to reduce
        self.host.stats.recovery_undos += 1

    # --- urgent data (urgent.py) ----------------------------------------------------------
    def _urgent_input(self, seg: TcpRepr, payload: memoryview) -> None:
        """Linux tcp_urg, before the text is queued: a new pointer, then the urgent byte if
        this segment holds it."""
        urg = self.urg
        if seg.flags & URG:
            if urg is None:
                urg = self.urg = Urgent()
            if urg.on_pointer(seg.urgent, seg.seq, read_seq(self.rcv_nxt, self.rcv.queued, self.rcv_fin),
                              self.rcv_nxt):
                self.rcv.consume(1)                  # the reader stood on the old urgent byte
        if urg is not None and urg.rcv_state == NOTYET and urg.take_byte(seg.seq, payload):
            self.on_event()

    # --- segment text and FIN -----------------------------------------------------------
    def _process_text(self, seg: TcpRepr, payload: memoryview, now: float) -> None:
        # per segment on every data path: sq.diff and len() written out (n is len(data))
        seqno = seg.seq
        data = payload
        n = len(data)
        fin = bool(seg.flags & FIN)
        rcv_nxt = self.rcv_nxt
        front = (rcv_nxt - seqno) & sq.MASK
        if 0 < front <= sq.HALF:                     # already have the start: trim it (sq.diff > 0)
            self._note_duplicate(seqno, min(front, n), now, whole=front >= n)
            if front > n:
                self.ack_now = True
                return
            data = data[front:]
            n -= front
            seqno = rcv_nxt
        room = sq.diff(self.rcv_adv, seqno)
        if n > room:                                 # beyond the window we offered: trim, keep no FIN
            data = data[:max(room, 0)]
            n = len(data)
            fin = False
            self.ack_now = True                      # e.g. a zero-window probe: answer at once (Linux)
        if self.rcv_closed and n:
            # Linux: data for a socket the application closed gets an RST (RFC 9293 §3.10.7.4)
            self.abort(now, 0)
            return
        rcv = self.rcv
        if seqno == rcv_nxt:
            had_holes = bool(rcv.ooo_starts)
            if n:
                if n != self.rcv_mss:                # (a segment of the size known changes nothing)
                    info.measure_rcv_mss(self, n, seg.flags)
                self.rcv_nxt = rcv.append_in_order(data, rcv_nxt)
                if had_holes and rcv.dup_range is not None:
                    self._extend_duplicate(*rcv.dup_range)   # it ran into queued data
                self.bytes_received += (self.rcv_nxt - rcv_nxt) & sq.MASK   # queued data joined too (Linux)
                if self.rcv_rtt_time is None or (self.rcv_nxt - self.rcv_rtt_seq) & sq.MASK < sq.HALF:
                    self.rcv_rtt_measure(now)        # a window's worth arrived (memory.py)
                self.on_event()
            if fin or (self.ooo_fin is not None and self.rcv_nxt == self.ooo_fin):
                if n:
                    self.data_received(n, now)       # Linux tcp_event_data_recv (delack.py)
                self._fin_received(now)
            elif had_holes:
                if n:
                    self.data_received(n, now)
                self.ack_now = True
            else:
                self.ack_in_order(n, now)            # Linux's delayed-ACK rules (delack.py; lrcvtime too)
        else:
            if n and self.host.mem.over_high():
                # tcp_mem[2]: no memory for data the peer will send again anyway (Linux
                # tcp_prune_ofo_queue, then the segment is dropped: TCPOFODrop)
                stats = self.host.stats
                if rcv.prune_ooo():
                    stats.mem_ooo_pruned += 1
                stats.mem_ooo_dropped += 1
                self.ack_now = True
                return
            if n and self.host.batching and self.sack_ok:
                fresh, once = rcv.sack_fresh_after(seqno, n)
                limit = 3 if self.ts_ok else 4
                if fresh > limit - 1 or fresh + once > limit:
                    # Inside a receive batch the ACK waits for the batch's end, when every
                    # frame read is in (_predicted); it goes now only when this segment
                    # would push a block out of the ones the next ACK carries (three beside
                    # a timestamp, four without) before an ACK reported it (one place kept
                    # for a D-SACK) or two did (one may be lost): the same information as
                    # Linux's per-segment ACKs, without the ones that report a hole the
                    # batch's next frame fills (delack.py)
                    self.send_ack(now)
            elif n and self.comp_acks and rcv.reorders_sack(seqno, n):
                # Held (compressed) ACKs go, as a pure ACK, before this segment reorders the
                # SACK list: afterwards their blocks may no longer be among the three an ACK
                # carries, and a block the sender never hears of is resent for nothing
                # (Linux tcp_sack_new_ofo_skb -> tcp_sack_compress_send_ack, before the SACK
                # array changes)
                self.send_ack(now)
            if n:
                self.rcv_ooopack += 1
                if n != self.rcv_mss:
                    info.measure_rcv_mss(self, n, seg.flags)
                stats = self.host.stats
                if rcv.insert_ooo(seqno, data, rcv_nxt, stats):
                    stats.ooo_segs += 1
                    dup = rcv.dup_range
                    if dup is not None:
                        # some or all of it was queued already: RFC 2883 §4.2, the D-SACK block
                        # (its lowest such part, as Linux) and then the block holding it
                        # (insert_ooo made that the most recent)
                        self._note_duplicate(dup[0], (dup[1] - dup[0]) & sq.MASK, now, out_of_order=True)
                else:
                    fin = False                      # dropped (block cap): the FIN comes back with it
                    self.ack_now = True
            if fin:
                self.ooo_fin = sq.add(seqno, len(data))
                self.ack_now = True
            else:
                # RFC 5681 §4.2: out of order -> immediate ACK; Linux compresses past the
                # first three for a RCV.NXT (delack.py)
                self.ack_out_of_order(now)

    def _fin_received(self, now: float) -> None:
        self.rcv_nxt = sq.add(self.rcv_nxt, 1)
        self.rcv_fin = True
        self.ooo_fin = None
        st = self.state
        if st == State.ESTABLISHED:
            self.state = State.CLOSE_WAIT
            self.ack_fin(now)                        # Linux tcp_fin: ping-pong mode (delack.py)
            self.on_event()
            return
        self.ack_now = True
        if st == State.FIN_WAIT_1:
            if self.fin_acked:
                self._enter_time_wait(now)
            else:
                self.state = State.CLOSING
        elif st == State.FIN_WAIT_2:
            self._enter_time_wait(now)
        self.on_event()

    def _enter_time_wait(self: Self, now: float) -> None:
        self.state = State.TIME_WAIT
        self.rto_at = self.persist_at = self.keep_at = self.delack_at = None
        self.probe_at = self.rack_at = self.pace_at = self.comp_at = None   # nothing is sent in TIME-WAIT
        self.tw_at = now + 2 * self.config.msl
        self.host.time_wait(self)


def _union_sack(blocks: tuple[tuple[int, int], ...], ack: int, snd_max: int,
                stats: SackCounters) -> tuple[tuple[int, int], ...]:
    """The SACK blocks of several ACKs as one list, for the cumulative ACK `ack`: what
    lies above it, overlapping and adjacent blocks joined, lowest first (so none reads as a
    D-SACK).  A block that is inverted, empty or beyond SND.MAX is dropped and counted
    here, as the scoreboard would have (sack_blocks_invalid): joined to a good one it
    would spoil it."""
    span = sq.diff(snd_max, ack)
    ranges = []
    for left, right in blocks:
        lo, hi = sq.diff(left, ack), sq.diff(right, ack)
        if hi <= lo or hi > span:
            stats.sack_blocks_invalid += 1
        elif hi > 0:
            ranges.append((max(lo, 0), hi))
    ranges.sort()
    out: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if out and lo <= out[-1][1]:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(((ack + lo) & sq.MASK, (ack + hi) & sq.MASK) for lo, hi in out)


def _is_dsack(sacks: tuple[tuple[int, int], ...], ack: int) -> bool:
    """RFC 2883 §4: the first block reports a duplicate when it lies at or below the
    cumulative ACK, or inside the second block."""
    left, right = sacks[0]
    if sq.le(right, ack):
        return True
    return len(sacks) > 1 and sq.ge(left, sacks[1][0]) and sq.le(right, sacks[1][1])
