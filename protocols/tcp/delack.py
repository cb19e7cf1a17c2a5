"""When a receiver ACKs: Linux's delayed-ACK engine (issue 14, point 1's neighbour; the
scripted tests check it against the kernel).

RFC 9293 §3.8.6.3 / RFC 5681 §4.2 only bound it (ACK at least every second full segment,
delay at most 500 ms); Linux (tcp_input.c __tcp_ack_snd_check, tcp_event_data_recv,
tcp_send_delayed_ack, tcp_cleanup_rbuf; tcp_timer.c tcp_delack_timer_handler) decides so:

  * quick-ACK mode: every segment is ACKed at once for a while at the start of a
    connection (and after a gap longer than the RTO) -- but not in interactive mode;
  * interactive (ping-pong) mode: entered when we send data within the ACK timeout
    (ato) of the last segment received (tcp_event_data_sent; tcp_pingpong_thresh = 1 --
    the check sits inline in output.py _send_data) -- the ACK rides on the reply, so a lone
    segment's ACK waits for the timer; left when the delayed-ACK timer fires (then ato is
    reset);
  * more than one receive MSS unacknowledged (rcv_nxt - rcv_wup > rcv_mss): ACK now;
  * otherwise the ACK is delayed by ato, which follows the inter-arrival time (halved
    towards it when segments come fast), doubles when the timer fires outside interactive
    mode, and is bounded by 200 ms in interactive mode (or after a short segment), else
    500 ms, and by the SRTT (at least TCP_ATO_MIN);
  * a read that empties the receive queue ACKs at once a pending ACK for a short segment
    (outside interactive mode; a second short one forces it);
  * TCP_QUICKACK: 1 leaves interactive mode (and ACKs what is pending that way), 0 enters it;
  * SACK compression (Linux 4.18+, tcp_comp_sack_*; the tail of __tcp_ack_snd_check): data
    that goes to the out-of-order queue is ACKed at once the first three times for a given
    RCV.NXT -- the sender's duplicate-ACK threshold, so fast retransmit is never late --
    and after that one ACK stands for up to `comp_sack_nr` of them, sent after
    min(`comp_sack_delay`, 5 % of the RTT) with the newest SACK blocks; a segment that
    would make a new block while two or more are held, or grow one older than the two most
    recent, first sends the held ACKs as they stand, before the blocks they report fall
    off the three an ACK carries (input.py _process_text; Linux tcp_sack_new_ofo_skb calls
    tcp_sack_compress_send_ack before changing its SACK array).  Any ACK we send in the
    meantime (a hole filled, a reply) takes their place.  Without SACK every such segment
    is ACKed (RFC 5681 §4.2's duplicates).
  * inside a receive batch (the frames of one device read, tcp.py rx_batch_end) the ACK
    these rules ask for goes at the batch's end -- with SACK, for out-of-order text too
    (without, each duplicate ACK counts and goes at once): every frame read is already
    here, so "at once" is the batch's end, and one ACK reports what Linux's per-segment
    ACKs would, minus the holes the batch itself filled (a reordered pair).  Only a
    hole-filling segment is ACKed at once (the sender times its hole), and
    an ACK goes early when the next segment would push a block out of the ones an ACK
    carries (three beside a timestamp, four without) before two ACKs reported it as it
    stands -- one ACK may be lost, and Linux's receiver repeats a growing block in many --
    or before one did, keeping a place for a D-SACK (RecvBuffer.sack_fresh, sack_once),
    or when a second D-SACK would replace the one held (RFC 2883 §4).
    Linux's count of three immediate ACKs per RCV.NXT counts ACKs sent, as there.  (The
    scripted tests deliver one segment per batch: Linux's rules, segment by segment.)
"""
from __future__ import annotations

from . import seq as sq
from .tcb import Tcb

DELACK_MAX = 0.2            # Linux TCP_DELACK_MAX
ATO_MAX = 0.5               # the delay outside interactive mode at most (HZ/2, RFC 9293's bound)
ACK_PUSHED, ACK_PUSHED2 = 1, 2   # icsk_ack.pending: a short segment arrived (twice)
COMP_SACK_DUPS = 3          # ACKs sent at once per RCV.NXT before compressing (TCP_FASTRETRANS_THRESH)


class DelackMixin(Tcb):
    __slots__ = ()

    def ack_in_order(self, seglen: int, now: float) -> None:
        """In-order data arrived (no hole filled, no FIN): ACK now, or arm the timer.
        Per segment on the bulk path: kept to a few attribute reads."""
        rcv_mss = self.data_received(seglen, now)
        if self.delack_bytes > rcv_mss or (self.quickacks > 0 and not self.pingpong):
            self.ack_now = True
            if self.quickacks > 0:
                self.quickacks -= 1
            return
        self._delay_ack(now)

    def ack_out_of_order(self, now: float) -> None:
        """Data went to the out-of-order queue: ACK now, or compress the SACK (Linux
        __tcp_ack_snd_check with a non-empty out-of-order queue; see the module's text)."""
        if self.ack_now:
            return
        if self.delack_bytes > self.rcv_mss or (self.quickacks > 0 and not self.pingpong):
            self.ack_now = True                  # in-order data waits for an ACK, or quick-ACK mode
            if self.quickacks > 0:
                self.quickacks -= 1              # as ack_in_order: a quick ACK used
            return
        if not self.sack_ok or self.comp_acks >= self.config.comp_sack_nr:
            self.ack_now = True
            return
        if self.comp_rcv_nxt != self.rcv_nxt:   # a new hole: the sender's dupthresh again
            self.comp_rcv_nxt = self.rcv_nxt
            self.comp_dups = 0
        if self.comp_dups < COMP_SACK_DUPS:
            self.comp_dups += 1
            self.ack_now = True
            return
        self.comp_acks += 1
        if self.comp_at is None:
            # the receiver's RTT, or the SRTT when smaller (Linux: both scaled, 5 % of it)
            rtt = self.rcv_rtt
            srtt = self.rtt.srtt
            if srtt and srtt < rtt:
                rtt = srtt
            self.comp_at = now + min(self.config.comp_sack_delay, rtt / 20)

    def comp_ack_fired(self, now: float) -> None:
        """tcp_compressed_ack_kick: the held ACKs go as one (the one sent is not counted
        compressed)."""
        if self.comp_acks:
            self.comp_acks -= 1
            self.ack_now = True
            self.output(now)

    def data_received(self, seglen: int, now: float) -> int:
        """Linux tcp_event_data_recv for `seglen` octets in order: the short-segment bits,
        ato from the inter-arrival time, quick-ACK mode for the first data; the receive MSS."""
        # tcp_measure_rcv_mss (the estimate itself: info.measure_rcv_mss, just before): a
        # segment shorter than it is noted
        rcv_mss = self.rcv_mss
        if seglen < rcv_mss:
            self.ack_pushed |= ACK_PUSHED2 if self.ack_pushed & ACK_PUSHED else ACK_PUSHED
        # tcp_event_data_recv: ato follows the inter-arrival time
        ato_min = self.config.delack
        ato = self.ato
        gap = now - self.lrcvtime
        self.lrcvtime = now
        if gap <= ato_min / 2:
            if ato != ato_min:
                self.ato = ato / 2 + ato_min / 2 if ato else ato_min
                if not ato:
                    self._incr_quickack()        # the first data: quick-ACK mode
        else:
            self._adapt_ato(gap)
        self.delack_bytes += seglen
        return rcv_mss

    def ack_fin(self, now: float) -> None:
        """The peer's FIN in ESTABLISHED (Linux tcp_fin): interactive mode, so the ACK waits
        the ACK timeout for a reply to ride on -- at once while no data has come (ato 0)."""
        self.pingpong = True
        if self.ato:
            self._delay_ack(now)
        else:
            self.ack_now = True

    def _adapt_ato(self, gap: float) -> None:
        """tcp_event_data_recv for a gap over TCP_ATO_MIN / 2: ato moves towards it; the
        first data, or a gap longer than the RTO, starts quick-ACK mode (tcp_incr_quickack)."""
        ato = self.ato
        if not ato:
            self.ato = self.config.delack
            self._incr_quickack()
        elif gap < ato:
            self.ato = min(ato / 2 + gap, self.rtt.current())
        elif gap > self.rtt.current():
            self._incr_quickack()

    def _delay_ack(self, now: float) -> None:
        """tcp_send_delayed_ack: ato, bounded by 200 ms in interactive mode or after a short
        segment (else 500 ms) and by the SRTT (at least TCP_ATO_MIN)."""
        ato = self.ato
        if ato > self.config.delack:
            limit = DELACK_MAX if self.pingpong or self.ack_pushed & ACK_PUSHED else ATO_MAX
            if self.rtt.srtt:
                limit = min(limit, max(self.rtt.srtt, self.config.delack))
            ato = min(ato, limit)
        at = self.delack_at
        if at is not None:
            if at <= now + ato / 4:
                self.ack_now = True           # the timer is about to fire anyway
                return
            if at < now + ato:
                return                        # the earlier deadline stands
        self.delack_at = now + ato

    def enter_quickack_mode(self) -> None:
        """Linux tcp_enter_quickack_mode(TCP_MAX_QUICKACKS), for old data received: quick
        ACKs, out of interactive mode, the ACK timeout back to its floor."""
        self._incr_quickack()
        self.pingpong = False
        self.ato = self.config.delack

    def _incr_quickack(self) -> None:
        """As many quick ACKs as half the window holds segments, 2 at least, at most
        tcp_quickacks (Linux TCP_MAX_QUICKACKS)."""
        window = max(sq.diff(self.rcv_adv, self.rcv_nxt), 0)
        n = window // (2 * max(self.rcv_mss, 1)) or 2
        self.quickacks = max(self.quickacks, min(n, self.config.quickacks))

    def delack_fired(self) -> None:
        """tcp_delack_timer_handler: the ACK went unpiggybacked -- inflate ato, or leave
        interactive mode and deflate it."""
        if self.pingpong:
            self.pingpong = False
            self.ato = self.config.delack
        else:
            self.ato = min(2 * self.ato, self.rtt.current())

    def ack_on_read(self, now: float) -> None:
        """tcp_cleanup_rbuf: a pending delayed ACK goes now if more than a receive MSS waits,
        or the read emptied the queue after a short segment (outside interactive mode;
        after two short segments in any mode)."""
        if self.delack_at is None:
            return
        if self.delack_bytes > self.rcv_mss or (
                not self.rcv.queued and (self.ack_pushed & ACK_PUSHED2
                                       or (self.ack_pushed & ACK_PUSHED and not self.pingpong))):
            self.ack_now = True
            self.output(now)

    def set_quickack(self, on: bool, now: float) -> None:
        """TCP_QUICKACK (Linux __tcp_sock_set_quickack)."""
        if not on:
            self.pingpong = True
            return
        self.pingpong = False
        if self.delack_at is not None:
            self.ack_pushed |= ACK_PUSHED
            self.ack_on_read(now)
