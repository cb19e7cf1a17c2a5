"""Segment departure (4.4BSD tcp_output): what may be sent now, and sending it.

Decides with the peer's window, the congestion window (or RFC 6675's pipe during
SACK recovery), Nagle (RFC 896) and sender-side SWS avoidance (RFC 9293 §3.8.6.2.1),
and builds TSO super-segments when the device can cut them.  A half of Connection over
the control block (tcb.py).
"""
from __future__ import annotations

import math
import struct
from typing import Self

from . import fastopen_conn as fastopen
from . import info, mtuprobe_conn, rate_conn
from . import seq as sq
from .controller import INITIAL_WINDOW_SEGMENTS
from .cwnd import restart_after_idle
from .ecn import ECN_MASK, ECT0, NOT_ECT, syn_ecn_flags
from .fastopen import ClientFastOpen
from .memory import PRESSURE_WINDOW_SEGMENTS
from .rack import DUPTHRESH
from .segmentation import initial_window, tso_autosize
from .state import RECEIVES_TEXT, State
from .tcb import Tcb
from .wire import ACK, FIN, PSH, RST, SYN, URG, TcpRepr

_TS_ONLY = struct.Struct("!BBBBII")      # NOP NOP TS(10): Linux's layout on data segments
# ... then NOP NOP SACK with n = 1-3 blocks (TcpRepr.options_bytes's layout, in one pack): an ACK's
_TS_SACK = {n: struct.Struct("!BBBBIIBBBB" + "II" * n) for n in (1, 2, 3)}
MAX_TSO = 65535 - 20 - 60                # IPv4 total length minus headers
PACING_SLACK = 0.001                     # the pacing credit for a late timer (see _paced)
PROBE_PSH = 2                            # chunk_psh: the probe timer's segment, PSH whatever its skb
BULK_SKB = 32 * 1024                     # a write run this long ends in a held runt (_nagle_holds)
AUTOCORK = 0.001                         # ... which waits this long after a write for the next one
# the state tests of every output() as sets: a State.X costs ~0.3 us on CPython 3.11 (state.py)
_IDLE = frozenset({State.CLOSED, State.LISTEN})
_OPENING = frozenset({State.SYN_SENT, State.SYN_RECEIVED})
_LONE_WRITE_STATES = frozenset({State.ESTABLISHED, State.CLOSE_WAIT})   # (_send_lone_write)
_SENDS_DATA = frozenset({State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1, State.CLOSING, State.LAST_ACK})


class OutputMixin(Tcb):
    __slots__ = ()

    def output(self, now: float, force_probe: bool = False) -> None:
        st = self.state
        if st in _IDLE:
            return
        if st in _OPENING:
            if self.snd_nxt == self.iss:
                self._send_syn(now)
                return
            if not (self.tfo is not None and fastopen.child_sends(self)):   # RFC 7413: data now
                if self.ack_now and st == State.SYN_RECEIVED:
                    self._emit(self.snd_nxt, ACK, None, now)
                return
        if self.snd_una == self.snd_max and not (self.snd.queued or self.fin_queued or self.rexmit_una
                                                  or force_probe):
            # Nothing to send or resend (a receiving side's pass, per ACK it owes): what the
            # pass below comes to, written out -- the ACK, and the receive-window-limited
            # chrono.  The MSS follows the path MTU at the next pass with data, as Linux's
            # tcp_current_mss runs only in tcp_write_xmit, not in tcp_send_ack.
            if self.chrono_type == info.CHRONO_RWND_LIMITED:
                info.chrono_rwnd(self, now)
            if self.ack_now:
                self.send_ack(now)
            return
        self.sync_pmtu(now)
        if st in _LONE_WRITE_STATES and not force_probe and self._send_lone_write(now):
            return
        self.chunk_end = self.snd_nxt                # each pass sends fresh chunks (tcp_write_xmit)
        sent = False
        if self.rexmit_una:
            self.rexmit_una = False
            sent = self._retransmit_head(now)
        if self.sack_ok and (self.in_recovery or (self.config.rack and self.rack.has_lost)):
            sent = self._sack_retransmit(now) or sent
        if force_probe and self._window_closed():
            self._send_window_probe(now)
            sent, force_probe = True, False
        if self.snd_una == self.snd_max and self.snd.queued:
            last = self.cwnd_use.last_send
            # idle longer than the RTO, which is never below rto_min: the cheap test first
            if last is not None and now - last > self.config.rto_min and self.config.slow_start_after_idle:
                self._restart_after_idle(now)
        sent_new = False
        if self.mtup is not None and self.mtup.enabled and not (self.in_recovery or self.rto_recovery):
            probe = mtuprobe_conn.send_probe(self, now)   # RFC 4821 §7.3: one probe segment
            if probe:
                self._send_data(self.snd_nxt, probe, False, now, probe=True)
                sent = sent_new = True
        while True:
            n, fin = self._sendable(force_probe, now)
            if n == 0 and not fin:
                if self.rack.want_rate and self.snd.queued != (self.snd_nxt - self.snd_una) & sq.MASK:
                    rate_conn.check_app_limited(self)      # a short tail waits (rate_conn.py: as at a write)
                break
            # a window probe goes regardless (Linux sends it outside its pacing, tcp_send_probe0):
            # held back, the persist timer would count a probe never sent
            if self.cc.pacing_rate and not force_probe and self._pacing_blocked(now):
                break
            self._send_data(self.snd_nxt, n, fin, now)
            sent = sent_new = True
            force_probe = False
        off = sq.diff(self.snd_nxt, self.snd_una)
        waiting = self.snd.queued > off
        if self.chrono_type and (waiting or self.chrono_type == info.CHRONO_RWND_LIMITED):
            info.chrono_rwnd(self, now)
        if sent_new or waiting:
            # Linux tcp_cwnd_validate: did cwnd stop this burst, and how much is out
            flight = self._cwnd_flight(off)
            self.cwnd_use.on_burst(self.cc.cwnd - flight < self.mss, flight, self.snd_una, self.snd_nxt)
        if not sent and self.ack_now:
            self.send_ack(now)
        # RFC 9293 §3.8.6.1: data waiting and nothing in flight arms the persist timer -- for a
        # zero window, and for a small one SWS avoidance will not use (the §3.8.6.2.1 override
        # timeout; Linux tcp_check_probe_timer), else a lost window update deadlocks both ends
        if waiting and self.rto_at is None and self.persist_at is None and st in _SENDS_DATA:
            self.persist_at = now + self._persist_interval()

    def send_ack(self, now: float) -> None:
        """A pure ACK now, whatever waits to be sent (Linux tcp_send_ack).  SND.MAX, not
        SND.NXT: after an RTO rewound SND.NXT the peer's RCV.NXT may be past it, and an "old"
        ACK would be dropped (and answered) by it (4.4BSD tcp_output)."""
        self._emit(self.snd_max, ACK, None, now)

    def output_idle(self) -> bool:
        """An output pass would do nothing: no ACK owed, nothing queued or in flight (data
        or FIN), no FIN to send.  A fast-path segment that leaves its connection so -- a
        request acknowledging the last reply, the reply waiting for the application --
        skips the pass (~10 us of a request/response round trip, all of it before the
        reply can be written)."""
        return not (self.ack_now or self.snd.queued or self.fin_queued) and self.snd_una == self.snd_max

    def _send_lone_write(self, now: float) -> bool:
        """The request/response case in a few lines: nothing in flight, and the buffer holds
        one write (one skb) shorter than a segment, no FIN, no urgent data, no cork --
        it goes at once as one segment, as the general pass below would send it (what that
        pass computes for it, written out: Nagle and SWS avoidance let it go with nothing in
        flight, _chunk ends the chunk at its end without PSH of its own, the PSH is its
        skb's; afterwards nothing waits).  False (nothing done) for anything else -- the
        output counterpart of input's header prediction (input.py _predicted)."""
        n = self.snd.queued
        if not n or self.snd_una != self.snd_max or self.snd_nxt != self.snd_una or self.fin_queued \
                or self.rexmit_una or self.in_recovery or self.rto_recovery or self.urg is not None \
                or self.cork or self.push_more or self.cc.pacing_rate or self.dsack is not None \
                or (self.sack_ok and self.rcv.ooo_starts) or (self.mtup is not None and self.mtup.enabled) \
                or self.rack.has_lost:
            return False
        if n >= self.mss or n > self.snd_wnd or n > self.cc.cwnd:
            return False
        marks = self.snd.marks
        if not self.nodelay and marks.written - marks.tail_start >= BULK_SKB:
            return False                             # a bulk write's tail: Nagle's and the autocork's
        encoded = marks.next_end(0)
        if encoded >> 1 != n:
            return False                             # more than one skb: the general pass
        last = self.cwnd_use.last_send
        if last is not None and now - last > self.config.rto_min and self.config.slow_start_after_idle:
            self._restart_after_idle(now)
            if n > self.cc.cwnd:
                return False
        self.skb_end = encoded
        self.chunk_end, self.chunk_psh = sq.add(self.snd_nxt, n), 0
        self._send_data(self.snd_nxt, n, False, now)
        if self.chrono_type == info.CHRONO_RWND_LIMITED:
            info.chrono_rwnd(self, now)
        flight = self._cwnd_flight(n)
        self.cwnd_use.on_burst(self.cc.cwnd - flight < self.mss, flight, self.snd_una, self.snd_nxt)
        return True

    # --- pacing (only while the controller sets a rate: BBR) ----------------------------------
    def _pacing_blocked(self, now: float) -> bool:
        """A token bucket one send quantum deep (~1 ms at the rate, Linux tcp_tso_autosize):
        `pace_next` is when everything sent so far has been paid for at pacing_rate.  Less
        than a quantum ahead of `now`, more may go; beyond it the sender waits -- until the
        debt is paid (pace_at, a timer), so the next release is a whole quantum, not a
        segment per wake-up."""
        rate = self.cc.pacing_rate
        assert rate
        ahead = self.pace_next - now
        if ahead < self.cc.send_quantum() / rate:
            return False
        self.pace_at = self.pace_next
        return True

    def _paced(self, size: int, now: float) -> None:
        rate = self.cc.pacing_rate
        if rate:
            # Time the sender was late by, up to a timer tick, is credit: the edge's timers wake
            # up to 1 ms late (epoll counts whole milliseconds), and a rate that only ever
            # loses that time would measure -- and pace at -- less and less (Linux likewise
            # gives back "OS jitter", tcp_update_skb_after_send).  Longer idle earns nothing.
            floor = now - PACING_SLACK
            start = self.pace_next if self.pace_next > floor else floor
            self.pace_next = start + size / rate

    def sync_pmtu(self: Self, now: float) -> None:
        """Size segments by the path MTU the route cache holds now (Linux tcp_current_mss
        re-reading dst_mtu): a lowered path shrinks the MSS, an expired entry restores it."""
        pmtu = self.host.path_mtu(self, now)
        if pmtu != self.pmtu:
            self.pmtu = pmtu
            self._update_mss()

    # --- how much ------------------------------------------------------------------------------
    def _pipe(self) -> int:
        """RFC 6675 §4 pipe, simplified: octets above the highest SACK are in flight, holes
        below it are lost unless retransmitted during this recovery."""
        sb = self.scoreboard
        if not self.sack_ok:
            off = sq.diff(self.snd_nxt, self.snd_una)
            if not self.in_recovery:
                return off
            # Linux for a peer without SACK: packets out - duplicate ACKs (as SACKed, at most
            # all but one) - the head while it is lost and not yet resent (rexmit_una)
            return max(off - min(self.dupacks * self.mss, max(off - self.mss, 0))
                       - (self.mss if self.rexmit_una else 0), 0)
        if self.config.rack and (self.in_recovery or self.rack.has_lost or sb.lefts):
            return self.rack.inflight                # RFC 8985: sent, not delivered, not lost
        if not self.in_recovery and sb.lefts:
            return max(sq.diff(self.snd_nxt, self.snd_una) - sb.sacked, 0)   # Disorder: SACKed left
        if not self.in_recovery or (sb.high_sack is None and not self.tail_lost):
            return sq.diff(self.snd_nxt, self.snd_una)
        if sb.high_sack is None:
            return max(sq.diff(self.high_rxt, self.snd_una), 0)
        above = 0 if self.tail_lost else max(sq.diff(self.snd_max, sb.high_sack), 0)
        rexmitted = max(sq.diff(self.high_rxt, self.snd_una), 0)
        sacked_below_rxt = sb.sacked - sb.sacked_above(self.high_rxt)
        return above + max(rexmitted - sacked_below_rxt, 0)

    def _restart_after_idle(self, now: float) -> None:
        """New data with nothing in flight, the last data sent more than an RTO ago: cwnd
        restarts (RFC 5681 §4.1, Linux tcp_slow_start_after_idle_check; cwnd.py).  Not for
        a model-based controller (BBR keeps its own model, as Linux skips cong_control ones)."""
        last = self.cwnd_use.last_send
        if last is None or self.cc.wants_rate_samples:
            return
        rto = self.rtt.current()
        if now - last > rto:
            cc = self.cc
            cc.cwnd, cc.ssthresh = restart_after_idle(cc.cwnd, cc.ssthresh, now - last, rto, self.mss,
                                                      INITIAL_WINDOW_SEGMENTS * self.mss)
            self.cwnd_use.last_send = now
            self.host.stats.cwnd_restarts += 1

    def _cwnd_flight(self, off: int) -> int:
        """What counts against cwnd for new data (Linux tcp_packets_in_flight): RFC 6675's
        pipe in recovery, and before it too (Linux's Disorder state) -- each segment the peer
        SACKed, or without SACK each duplicate ACK (Linux tcp_add_reno_sack), has left the
        network, so new data may take its place: RFC 3042 limited transmit as Linux does it."""
        if self.in_recovery or self.rto_recovery:
            return self._pipe() if self.in_recovery else off
        if self.sack_ok:
            return self._pipe() if self.scoreboard.lefts else off
        if self.dupacks:
            return max(off - min(self.dupacks, DUPTHRESH - 1) * self.mss, 0)
        return off

    def _window_closed(self) -> bool:
        """Data waits and the peer's window has no room for any of it: a zero window."""
        off = sq.diff(self.snd_nxt, self.snd_una)
        return self.snd.queued > off and self.snd_wnd <= off

    def _send_window_probe(self, now: float) -> None:
        """The persist timer's probe of a zero window, as Linux sends it (tcp_send_probe0 ->
        tcp_xmit_probe_skb): a bare ACK with SEG.SEQ = SND.UNA - 1, which the peer must answer
        with its window (RFC 9293 §3.10.7.4) -- no octet of new data (issue 14, point 12:
        tunstack sent one, RFC 9293 §3.8.6.1's way).  A small window the sender's SWS
        avoidance left unused gets its data instead (Linux tcp_write_wakeup)."""
        self.host.stats.window_probes += 1
        self._emit(sq.add(self.snd_una, -1), ACK, None, now)

    def _sendable(self, force_probe: bool, now: float) -> tuple[int, bool]:
        if self.state not in _SENDS_DATA and not (self.tfo is not None and fastopen.child_sends(self)):
            return 0, False
        off = sq.diff(self.snd_nxt, self.snd_una)
        total = self.snd.queued
        avail = max(total - off, 0)
        fin_possible = self.fin_queued and (self.fin_seq is None or sq.le(self.snd_nxt, self.fin_seq))
        if avail == 0:
            return 0, fin_possible and off == total
        if self.scoreboard.lefts and sq.lt(self.snd_nxt, self.snd_max):
            # going back N after an RTO: skip what the receiver SACKed (RFC 6675 §5.1)
            skip_to = self.scoreboard.sacked_end(self.snd_nxt)
            if skip_to is not None:
                self.snd_nxt = skip_to
                off = sq.diff(self.snd_nxt, self.snd_una)
                avail = max(total - off, 0)
                if avail == 0:
                    return 0, fin_possible and off == total
        flight = self._cwnd_flight(off)
        cwnd_room = self.cc.cwnd - flight
        room = min(self.snd_wnd - off, cwnd_room)
        if force_probe and room <= 0:
            room = 1                                  # RFC 9293 §3.8.6.1 window probe: one octet
        if room <= 0:
            return 0, False
        n = min(avail, room)
        mss = self._seg_mss()
        if mss < n < avail:
            n -= n % mss                              # window-limited: whole segments only (no runts)
        hole_cut = False
        if self.scoreboard.lefts and sq.lt(self.snd_nxt, self.snd_max):
            hole = self.scoreboard.next_hole(self.snd_nxt, self.snd_una)
            if hole is not None and hole[0] == self.snd_nxt and sq.diff(hole[1], hole[0]) < n:
                # a hole shorter than the MSS is what was sent there (a segment that carried
                # SACK blocks has less room): resent whole, never held as a runt below
                n, hole_cut = sq.diff(hole[1], hole[0]), True
        # a segment never runs past an skb end: Linux sends its write queue skb by skb
        self.skb_end = encoded = self.snd.marks.next_end(off)    # for _send_data's PSH
        skb_end = encoded >> 1
        last_skb = skb_end <= 0 or skb_end >= total
        if 0 < skb_end - off < n:
            n = skb_end - off
        elif last_skb and n == avail and n % mss and not (fin_possible or force_probe) and self._nagle_holds(off, now):
            if n < mss:
                return 0, False
            n -= n % mss                              # keep a short tail back (Nagle)
        # sender SWS (RFC 9293 §3.8.6.2.1): a window-limited runt only if it fills half the
        # largest window seen (a short skb before another is no runt: it goes whole)
        if n < mss and not force_probe and not hole_cut and n < avail and not (0 < skb_end - off == n) \
                and not (self.max_snd_wnd and n >= self.max_snd_wnd // 2):
            return 0, False
        if force_probe or not 0 < sq.diff(self.chunk_end, self.snd_nxt) <= n:
            self._chunk(n, cwnd_room, force_probe)       # a new chunk begins here
        limit = self._segment_limit()
        if n > limit:
            n = limit
        return n, fin_possible and off + n == total

    def _nagle_holds(self, off: int, now: float) -> bool:
        """Linux tcp_nagle_check for the partial tail of the last skb: TCP_CORK or this
        call's MSG_MORE hold it; else, without TCP_NODELAY, Minshall's variant of Nagle
        (RFC 896; tcp_minshall_check): only while a *small* segment is unacknowledged.
        Deliberate difference: the tail of a bulk write (an skb of BULK_SKB or more) waits
        for what is in flight, classic Nagle, and with nothing in flight for the
        application's next write, up to AUTOCORK after its last one, when it is what is
        left of an skb whose front was sent (an autocork: the timer sends it then).  Sent
        at once, each such runt drew an ACK of its own: a sender writing 64 KiB at a time
        lost a quarter of its throughput (bench bulk_out6), and with the flight ACKed
        before the application, sharing this thread, wrote again -- a trio task yields
        after each send -- two frames in five were runts (bench bulk_out: 2.7 -> 3.4
        Gbit/s without them).  Linux's bulk writers rarely send them: the application runs
        beside the stack, and autocorking holds a small push while earlier packets are
        queued in the host."""
        if self._urgent_push() or sq.lt(self.snd_nxt, self.snd_max):
            return False               # urgent mode (tcp_nagle_test), a go-back-N resend (no Nagle test)
        if self.cork or self.push_more:
            return True
        if self.nodelay or (off == 1 and self.tfo is not None):
            return False               # (a Fast Open child's unacknowledged SYN is no data in flight)
        marks = self.snd.marks
        bulk = marks.written - marks.tail_start >= BULK_SKB
        if off <= 0:
            # the rest of an skb whose front went out (a whole new write goes whole, as before)
            if bulk and marks.tail_start < marks.acked and now < self.cork_until:
                if self.pace_at is None or self.cork_until < self.pace_at:
                    self.pace_at = self.cork_until       # (the send timer: timer.py)
                return True
            return False
        return bulk or (sq.gt(self.snd_sml, self.snd_una) and sq.le(self.snd_sml, self.snd_nxt))

    def _chunk(self, n: int, cwnd_room: int, probe: bool) -> None:
        """Where the chunk now being sent ends (segmentation.py): n octets can go from
        SND.NXT in this pass; Linux sends them as chunks of at most tcp_tso_autosize
        segments, half the cwnd and what the cwnd has room for (tcp_cwnd_test).  A chunk
        cut there ends in PSH when its skb has it; one cut by the window or Nagle does not.
        What the probe timer sends always has PSH (tcp_write_wakeup)."""
        end = sq.add(self.snd_nxt, n)
        if probe:
            self.chunk_end, self.chunk_psh = end, PROBE_PSH
            return
        if self.tso_max:
            # a TSO device: its super-segments are the chunks, PSH only at a pushed skb's end
            # (the pacing-rate arithmetic per super-segment cost the bulk path 3 %)
            self.chunk_end, self.chunk_psh = end, 0
            return
        mss = max(self.mss, 1)
        if n < mss:
            # less than a segment: whatever tso_autosize says, the chunk is these n octets
            # and not cut by the cwnd (segs * mss > n below) -- the request/response case
            self.chunk_end, self.chunk_psh = end, 0
            return
        cc = self.cc
        min_rtt = self.rack.min_rtt if self.rack.min_rtt != math.inf else self.rtt.srtt
        chunk = tso_autosize(mss, cc.cwnd, self.rtt.srtt, min_rtt, cc.cwnd < cc.ssthresh // 2)
        segs = min(chunk, max(cc.cwnd // mss // 2, 1), max(cwnd_room // mss, 1))
        # a chunk the cwnd cuts shorter (tcp_cwnd_test: half the cwnd, or its room) is
        # tso_fragment's first part: no PSH (Linux gives PSH to the second part only) -- e.g.
        # one segment per SACK in limited transmit, or the first after an RTO
        self.chunk_psh = int(segs * mss <= n and segs == chunk)
        self.chunk_end = sq.add(self.snd_nxt, segs * mss) if self.chunk_psh else end

    def _urgent_push(self) -> bool:
        """Urgent mode overrides Nagle (Linux tcp_nagle_test): the peer should see the
        pointer now."""
        return self.urg is not None and self.urg.sending(self.snd_una)

    def _seg_mss(self) -> int:
        """Payload per segment now: the MSS less room for SACK blocks while we hold
        out-of-order data (Linux tcp_current_mss), so a segment never outgrows the MTU."""
        if self.sack_ok and (self.rcv.ooo_starts or self.dsack is not None):
            blocks = min(self.rcv.ooo_count + (self.dsack is not None), 3 if self.ts_ok else 4)
            return max(self.mss - 4 - 8 * blocks, 64)
        return self.mss

    def _segment_limit(self) -> int:
        mss = self._seg_mss()
        if self.tso_max and mss and (self.urg is None or not self._urgent_push()):   # no TSO in urgent mode
            limit = min(self.tso_max, MAX_TSO)
            if self.cc.pacing_rate:
                # Linux tcp_tso_autosize: a super-segment carries ~1 ms at the pacing rate
                # (at least 2 segments), so pacing releases bursts of that size
                limit = min(limit, self.cc.send_quantum())
            return max(mss, limit // mss * mss)
        if self.gso_max and mss and self.urg is None:
            # software GSO (ndd/gso.py): the chunk _chunk chose -- what Linux would send as
            # one GSO skb, its PSH rules unchanged -- goes as one super-segment
            left = sq.diff(self.chunk_end, self.snd_nxt)
            if left > mss:
                limit = self.gso_max if not self.cc.pacing_rate else min(self.gso_max, self.cc.send_quantum())
                return left if left <= limit else max(mss, limit // mss * mss)
        return mss

    # --- sending ---------------------------------------------------------------------------
    def _send_data(self, seqno: int, n: int, fin: bool, now: float, probe: bool = False) -> None:
        off = sq.diff(seqno, self.snd_una)
        payload = self.snd.view(off, n) if n else None
        flags = ACK | (FIN if fin else 0)
        mss = self._seg_mss()
        if n:
            # PSH on the last segment of a chunk of an skb that has it (segmentation.py); a
            # retransmission keeps it only at the skb's end (Linux resends the first part of
            # a split skb without it)
            # (the skb end _sendable found just before: this segment lies in that skb)
            skb_end = self.skb_end if seqno == self.snd_nxt else self.snd.marks.next_end(off + n - 1)
            psh = self.chunk_psh
            if (skb_end & 1 or psh == PROBE_PSH) and (
                    (skb_end >> 1) == off + n
                    or (psh and sq.ge(sq.add(seqno, n), self.chunk_end)
                        and (psh == PROBE_PSH or sq.ge(seqno, self.snd_max)))):
                flags |= PSH
            if n % mss and sq.ge(seqno, self.snd_max):
                self.snd_sml = sq.add(seqno, n)       # Minshall: the last small segment sent
        end = sq.add(seqno, n + (1 if fin else 0))
        retransmission = sq.lt(seqno, self.snd_max)
        self._emit(seqno, flags, payload, now, gso=mss if n > mss and not probe else 0)
        self._rack_sent(seqno, end, now, retransmission)
        if retransmission:
            self.total_retrans += 1
            self.host.stats.retrans_segs += 1
            if self.rtt_seq is not None and sq.ge(self.rtt_seq, seqno):
                self.rtt_seq = None                   # Karn: never time a retransmission
        elif n:
            if now - self.lrcvtime < self.ato:
                self.pingpong = True                  # a reply: interactive ACK mode (delack.py; tcp_event_data_sent)
            if self.rtt_seq is None and not self.ts_ok:
                self.rtt_seq, self.rtt_time = seqno, now
        if sq.gt(end, self.snd_max):
            self.snd_max = end
        if seqno == self.snd_nxt:
            self.snd_nxt = end
        if fin:
            self.fin_seq = sq.add(seqno, n)
        if self.rto_at is None:
            self.rto_at = now + self.rtt.current()
            self.persist_at = None
        if self.probe_at is None or not retransmission:
            # RFC 8985 §7.2: the PTO runs from the last new segment, with the flight as it is
            # now -- an ACK armed it when one segment or none was out (adding the delayed-ACK
            # allowance), before this segment left
            self.arm_probe(now)

    def _psh_at(self, end_off: int) -> int:
        """PSH for a retransmission ending `end_off` octets past SND.UNA: Linux resends an skb
        with its flags, so only where a pushed skb ends (segmentation.py)."""
        encoded = self.snd.marks.next_end(end_off - 1) if end_off > 0 else -1
        return PSH if encoded >= 0 and encoded & 1 and encoded >> 1 == end_off else 0

    def _retransmit_head(self, now: float) -> bool:
        """Fast retransmit / NewReno partial ACK: resend the first unacknowledged segment --
        no more of it than was sent: a head sent short (a small window) is resent as short,
        never topped up with unsent data, which would go out uncounted in SND.MAX (found by
        test_pair_transfers_the_stream_exactly: the peer's ACK of it then lay beyond SND.MAX
        and was refused, until the connection timed out)."""
        avail = self.snd.queued
        n = min(self._seg_mss(), avail, max(sq.diff(self.snd_max, self.snd_una), 0))
        fin = self.fin_seq is not None and n == avail
        if n == 0 and not fin:
            return False
        end = sq.add(self.snd_una, n + (1 if fin else 0))
        psh = self._psh_at(n)                         # as the skb was first sent (segmentation.py)
        self._emit(self.snd_una, ACK | (FIN if fin else 0) | psh, self.snd.view(0, n) if n else None, now)
        self._rack_sent(self.snd_una, end, now, True)
        self.total_retrans += 1
        self.host.stats.retrans_segs += 1
        if sq.lt(self.high_rxt, sq.add(self.snd_una, n)):
            self.high_rxt = sq.add(self.snd_una, n)
        # the RTO restarts from a retransmission of the head (Linux tcp_xmit_retransmit_queue)
        self.rto_at = now + self.rtt.current()
        return True

    def _retransmit_tail(self, now: float) -> None:
        """The loss probe's retransmission: the last segment before SND.MAX (with the FIN)."""
        fin = self.fin_seq is not None and sq.diff(self.snd_max, self.fin_seq) == 1
        # the end of what was SENT (SND.MAX), not of the buffer: a "probe" past SND.MAX would be
        # ACKed beyond SND.MAX, and such ACKs are dropped (RFC 5961 §5.2) -- the connection stalls
        data_end = min(self.snd.queued, sq.diff(self.snd_max, self.snd_una) - (1 if fin else 0))
        n = min(self._seg_mss(), data_end)
        if fin and self.rack.last_start() == self.fin_seq:
            n = 0                                     # the FIN went alone: so does its probe (issue 14 point 10)
        off = data_end - n
        if n == 0 and not fin:
            return
        # PSH as the segment first had it: it ends the data queued (Linux keeps the skb's flags)
        flags = ACK | (FIN if fin else 0) | (PSH if n and (data_end == self.snd.queued or self._psh_at(data_end))
                                             else 0)
        self._emit(sq.add(self.snd_una, off), flags, self.snd.view(off, n) if n else None, now)
        self._rack_sent(sq.add(self.snd_una, off), sq.add(self.snd_una, off + n + (1 if fin else 0)), now, True)
        self.total_retrans += 1
        self.host.stats.retrans_segs += 1
        self.rtt_seq = None

    def _probe_new_data(self, now: float) -> bool:
        """RFC 8985 §7.3: the loss probe is new data when some waits and the peer's window
        takes a segment of it -- past cwnd if need be (Linux tcp_send_loss_probe forces one
        segment out, tcp_write_xmit's push_one).  False when there is none to send."""
        if self.snd_nxt != self.snd_max:
            return False
        off = sq.diff(self.snd_nxt, self.snd_una)
        avail = self.snd.queued - off
        n = min(avail, self._seg_mss())
        if n <= 0 or off + n > self.snd_wnd:
            return False
        fin = self.fin_queued and self.fin_seq is None and off + n == self.snd.queued
        # not cut by _sendable: PSH only where a pushed skb ends (one segment cut from a longer
        # skb is tso_fragment's first part)
        self.skb_end = self.snd.marks.next_end(off)
        self.chunk_end, self.chunk_psh = sq.add(self.snd_nxt, n), 0
        self._send_data(self.snd_nxt, n, fin, now)
        return True

    def _rack_sent(self, start: int, end: int, now: float, retransmission: bool) -> None:
        self.cwnd_use.last_send = now                 # Linux lsndtime
        if self.prr.active:
            self.prr.out += sq.diff(end, start)       # RFC 6937 prr_out
        if retransmission:
            self.bytes_retrans += sq.diff(end, start)
            self.note_retransmission(now)
        if self.cc.pacing_rate:
            self._paced(sq.diff(end, start), now)
        if (self.sack_ok and self.config.rack) or self.rack.want_rate:
            self.rack.sent(start, end, now, retransmission)

    def _sack_retransmit(self, now: float) -> bool:
        """RFC 6675 §5 step (C): while cwnd - pipe >= 1 SMSS, resend the next hole -- as one
        TSO super-segment when the device cuts them and the window allows.  With RACK
        (RFC 8985 §6.2) the holes resent are those RACK marked lost, lowest first: a hole
        merely reordered waits its reordering window, and a retransmission lost again is
        resent as soon as RACK knows (RFC 6675's HighRxt walk would never come back to it)."""
        if self.config.rack:
            return self._rack_retransmit(now)
        sent = False
        limit = self.snd_max if self.tail_lost else None
        while (room := self.cc.cwnd - self._pipe()) >= self.mss:
            if self.cc.pacing_rate and self._pacing_blocked(now):
                break
            hole = self.scoreboard.next_hole(self.high_rxt, self.snd_una, limit)
            if hole is None:
                break
            start, stop = hole
            n = self._resend_hole(start, stop, room, now)
            if n < 0:
                break
            self.high_rxt = sq.add(start, n)
            sent = True
        return sent

    def _rack_retransmit(self, now: float) -> bool:
        sent = False
        at = self.snd_una
        # after an RTO, SND.NXT walks back over the window: what lies above it goes with it
        limit = self.snd_max if self.in_recovery else self.snd_nxt
        while (room := self.cc.cwnd - self._pipe()) >= self.mss:
            if self.cc.pacing_rate and self._pacing_blocked(now):
                break
            lost = self.rack.first_lost(at)
            if lost is None or sq.ge(lost[0], limit):
                break
            start, stop = lost
            hole = self.scoreboard.next_hole(start, self.snd_una, stop)
            if hole is None or sq.ge(hole[0], stop):
                # SACKed meanwhile (the scoreboard knew before RACK did): delivered
                self.rack.on_ack(self.snd_una, ((start, stop),), self._range_sacked, now)
                at = stop
                continue
            stop = hole[1] if sq.lt(hole[1], stop) else stop
            n = self._resend_hole(hole[0], stop, room, now)
            if n < 0:
                break
            at = sq.add(hole[0], n)
            if sq.gt(at, self.high_rxt):
                self.high_rxt = at
            sent = True
        return sent

    def _resend_hole(self, start: int, stop: int, room: int, now: float) -> int:
        """Resend [start, stop) as far as `room` allows; the octets sent (FIN counted), -1 if none."""
        mss = self._seg_mss()
        off = sq.diff(start, self.snd_una)
        n = min(sq.diff(stop, start), max(mss, min(room, self._segment_limit()) // mss * mss),
                max(self.snd.queued - off, 0), max(sq.diff(self.snd_max, start), 0))   # only what was sent
        # the hole may end with our FIN (it sits at fin_seq, after the last data octet)
        fin = self.fin_seq is not None and sq.add(start, n) == self.fin_seq and sq.gt(stop, self.fin_seq)
        if n == 0 and not fin:
            return -1
        end = sq.add(start, n + (1 if fin else 0))
        if start == self.snd_una:
            self.rto_at = now + self.rtt.current()    # the head resent: as _retransmit_head
        psh = self._psh_at(off + n)                   # as the skb was first sent (segmentation.py)
        self._emit(start, ACK | (FIN if fin else 0) | psh, self.snd.view(off, n) if n else None, now,
                   gso=mss if n > mss else 0)
        self._rack_sent(start, end, now, True)
        self.total_retrans += 1
        self.host.stats.retrans_segs += 1
        return n + (1 if fin else 0)

    def _send_syn(self, now: float) -> None:
        if isinstance(self.tfo, ClientFastOpen) and self.tfo.deferred:
            return                                    # TCP Fast Open: the SYN waits for the data
        synack = self.state == State.SYN_RECEIVED
        cfg = self.config
        seg = TcpRepr(self.lport, self.fport, self.iss, self.rcv_nxt if synack else 0,
                      SYN | (ACK if synack else 0), 0, mss=self.our_mss)
        if self.ecn is not None:
            seg.flags |= syn_ecn_flags(synack, self.retries, cfg.ecn_fallback)
        # RFC 7323 §2.2 / RFC 2018 §2: offer on an active open, echo on a passive one
        if (self.want_wscale and not synack) or (synack and self.peer_wscale is not None):
            seg.wscale = self.rcv_wscale
        if (cfg.sack and not synack) or (synack and self.sack_ok):
            seg.sack_perm = True
        if (cfg.timestamps and not synack) or (synack and self.ts_ok):
            seg.ts = (self._ts_val(now), self.ts_recent if synack else 0)
        seg.window = self._advertise(now, syn=True)
        self.snd_nxt = sq.add(self.iss, 1)
        if sq.gt(self.snd_nxt, self.snd_max):
            self.snd_max = self.snd_nxt
        payload = fastopen.on_syn(self, seg) if self.tfo is not None else None   # RFC 7413
        if self.retries == 0:
            self.rtt_time = now
            self.rtt_seq = self.iss                   # time the SYN too (RFC 6298 §3; Karn if resent)
        self._finish_emit(seg, seg.options_bytes(), payload, 0, now)
        if self.rto_at is None:
            self.rto_at = now + self.rtt.current()

    def send_rst(self: Self, now: float) -> None:
        """The connection's own abort (Linux tcp_send_active_reset): RST|ACK at SND.MAX, with
        the window it advertises and, when timestamps were negotiated, the TS option (RFC 7323
        §4.2 allows it; tcp_transmit_skb adds it to every segment of such a connection) --
        issue 14, point 6."""
        window = min(max(sq.diff(self.rcv_adv, self.rcv_nxt), 0) >> self.rcv_wscale, 0xFFFF)
        seg = TcpRepr(self.lport, self.fport, self.snd_max, self.rcv_nxt, RST | ACK, window)
        opts = b""
        if self.ts_ok:
            seg.ts = (self._ts_val(now), self.ts_recent)
            opts = _TS_ONLY.pack(1, 1, 8, 10, seg.ts[0], seg.ts[1])
        if self.ecn is not None:
            self._ecn_codepoint(NOT_ECT)         # Linux tcp_ecn_send: no data, no ECT
        self.host.stats.out_rsts += 1
        self.host.emit(self, seg, opts, None, 0, now)

    def send_keepalive(self, now: float) -> None:
        """RFC 1122 §4.2.3.6: SEG.SEQ = SND.NXT - 1 with no data draws an ACK."""
        self._emit(sq.add(self.snd_una, -1), ACK, None, now)

    # --- building a segment -------------------------------------------------------------------
    def _ts_val(self, now: float) -> int:
        return (self.host.ts_clock(now) + self.ts_offset) & 0xFFFFFFFF

    def _emit(self: Self, seqno: int, flags: int, payload: memoryview | None, now: float,
              gso: int = 0) -> None:
        window = self._advertise(now)
        sack: tuple[tuple[int, int], ...] = ()
        if self.sack_ok and (self.rcv.ooo_starts or self.dsack is not None):
            limit = 3 if self.ts_ok else 4
            if self.dsack is not None:               # RFC 2883 §4: the D-SACK block first, once
                sack = (self.dsack,) + (self.rcv.sack_blocks(limit - 1) if self.rcv.ooo_starts else ())
                self.dsack = None
            else:
                sack = self.rcv.sack_blocks(limit)
            self.rcv.sack_reported()
        ts: tuple[int, int] | None = None
        opts = b""
        if self.ts_ok:
            ts = (self._ts_val(now), self.ts_recent)
            if not sack:
                opts = _TS_ONLY.pack(1, 1, 8, 10, ts[0], ts[1])
            else:                                # at most 3 blocks beside a timestamp (`limit` above)
                opts = _TS_SACK[len(sack)].pack(1, 1, 8, 10, ts[0], ts[1], 1, 1, 5, 2 + 8 * len(sack),
                                                *[edge for block in sack for edge in block])
            if payload is None and flags == ACK and self.urg is None and self.ecn is None \
                    and self.host.emit_ack(self, seqno, window, opts, now) is not None:
                # a pure ACK, built whole by the host (tcp.py emit_ack): most of what a
                # receiver on a lossy path sends; no TcpRepr
                self._ack_sent(self.rcv_nxt)
                self.segs_out += 1
                return
        seg = TcpRepr(self.lport, self.fport, seqno, self.rcv_nxt, flags, window)
        if self.urg is not None and (up := self.urg.pointer(seqno, self.snd_una, self.snd_nxt)) is not None:
            seg.flags, seg.urgent = flags | URG, up  # a segment below SND.UP (urgent.py)
        seg.sack, seg.ts = sack, ts
        if ts is None and sack:
            opts = seg.options_bytes()
        self._finish_emit(seg, opts, payload, gso, now)

    def _ack_sent(self, ack: int) -> None:
        """An ACK of `ack` left: nothing is owed until more arrives (the delayed-ACK and
        SACK-compression state of delack.py cleared)."""
        self.last_ack_sent = ack
        self.ack_now = False
        self.delack_at = None
        self.delack_bytes = 0
        self.ack_pushed = 0
        if self.comp_acks:                           # this ACK carries the held ones (delack.py)
            self.host.stats.acks_compressed += self.comp_acks
            self.comp_acks = 0
            self.comp_at = None

    def _finish_emit(self: Self, seg: TcpRepr, opts: bytes, payload: memoryview | None, gso: int,
                     now: float) -> None:
        if seg.flags & ACK:
            self._ack_sent(seg.ack)
        if self.ecn is not None:
            self._ecn_output(seg, payload)
        self.segs_out += 1
        if payload:
            # Linux counts a TSO super-segment as the segments it becomes (tcp_skb_pcount)
            segs = -(-len(payload) // gso) if gso else 1
            self.segs_out += segs - 1
            self.data_segs_out += segs
            self.bytes_sent += len(payload)
            self.lsndtime = now
        self.host.emit(self, seg, opts, payload, gso, now)

    def _ecn_output(self, seg: TcpRepr, payload: memoryview | None) -> None:
        """RFC 3168 §6.1.2-6.1.5 as Linux tcp_ecn_send: new data goes ECT(0), with CWR once
        after a reduction; anything else (pure ACK, retransmission, bare FIN, probe, SYN)
        Not-ECT; every segment but a SYN echoes ECE while a CE is unanswered."""
        ecn = self.ecn
        assert ecn is not None
        if seg.flags & SYN:
            self._ecn_codepoint(NOT_ECT)
        elif payload is not None and sq.ge(seg.seq, self.snd_max):
            seg.flags |= ecn.data_flags()
            self._ecn_codepoint(ECT0)
        else:
            seg.flags |= ecn.ack_flags()
            self._ecn_codepoint(NOT_ECT)

    def _ecn_codepoint(self, codepoint: int) -> None:
        """The ECN field of what we send next: the low bits of the socket's TOS / traffic
        class, which the IP layer copies into the header (Linux INET_ECN_xmit/_dontxmit)."""
        self.tos = (self.tos & ~ECN_MASK) | codepoint
        self.tclass = (self.tclass & ~ECN_MASK) | codepoint

    def _advertise(self, now: float, syn: bool = False) -> int:
        """The window field (RFC 9293 §3.8.6.2.2): never shrink the right edge, and
        receiver SWS avoidance -- move it only by min(buffer/2, MSS) or more.  Under
        memory pressure the edge moves less, or not at all (memory.py)."""
        free = self.rcv.free()
        mem = self.host.mem
        if mem.pressure:
            free = self._pressure_window(free)
        elif (share := mem.window_share()) is not None and free > share:
            free = share                             # above tcp_mem's low mark: an even split
            self.host.stats.mem_window_shared += 1
        current = max(sq.diff(self.rcv_adv, self.rcv_nxt), 0)
        if free < current or free - current < min(self.rcv.capacity // 2, self.our_mss):
            free = current
        if syn:
            field = adv = initial_window(free, self.our_mss - (12 if self.ts_ok and self.state == State.SYN_RECEIVED
                                                                   else 0))
        else:
            field = min(free >> self.rcv_wscale, 0xFFFF)
            adv = field << self.rcv_wscale
            if (adv == 0) == (0 < (self.rcv_adv - self.last_ack_sent) & sq.MASK < sq.HALF) \
                    and self.segs_out > 1 and self.state in RECEIVES_TEXT:
                # the window advertised closes, or opens after it was shut (Linux tcp_select_window;
                # the ACK ending an active open is neither: the SYN's window came before it)
                if adv:
                    self.host.stats.from_zero_window += 1
                else:
                    self.host.stats.to_zero_window += 1
        edge = sq.add(self.rcv_nxt, adv)
        if sq.gt(edge, self.rcv_adv):
            self.rcv_adv = edge
            if adv > self.rcv_wnd_max:
                self.rcv_wnd_max = adv
        return field

    def _pressure_window(self, free: int) -> int:
        """Memory pressure (tcp_mem[1]): offer at most 4 segments (Linux clamps rcv_ssthresh
        to 4 * advmss); over the high mark, only what keeps this queue within tcp_rmem[0]
        (Linux still lets a socket below sk_rcvbuf's floor take data, sk_rmem_schedule).
        The caller never retracts the edge already advertised."""
        if self.host.mem.over_high():
            limit = max(self.config.rmem[0] - self.rcv.queued - self.rcv.ooo_bytes, 0)
        else:
            limit = PRESSURE_WINDOW_SEGMENTS * self.our_mss
        if free > limit:
            self.host.stats.mem_window_clamped += 1
            return limit
        return free

    def _window_update(self, now: float) -> None:
        """After a read: ACK when the window we could now advertise at least doubles (Linux
        tcp_cleanup_rbuf).  What could be advertised, not the free space: the field holds
        0xFFFF << our window scale, so with a peer that does not scale and a window already
        at 65535 a read changes nothing the peer can see -- no ACK (issue 14, point 7)."""
        if self.state not in RECEIVES_TEXT:
            return
        current = max(sq.diff(self.rcv_adv, self.rcv_nxt), 0)
        # a read opens the window at most to the largest yet offered (Linux's new window is
        # bounded by rcv_ssthresh, which grows as data arrives, not as it is read): no update
        # for the first read after a SYN's smaller window
        free = min(self.rcv.free(), 0xFFFF << self.rcv_wscale, max(self.rcv_wnd_max, 2 * self.our_mss))
        free -= free % (1 << self.rcv_wscale)             # what the scaled field can say
        if 2 * current <= self.rcv.capacity and free >= 2 * current and free - current >= self.our_mss:
            self.ack_now = True
            self.output(now)

    def _persist_interval(self) -> float:
        base = max(self.rtt.current(), self.config.persist_min)
        return min(base * (1 << min(self.persist_backoff, 16)), self.config.persist_max)
