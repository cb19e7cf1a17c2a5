"""RACK: time-based loss detection (RFC 8985 §6), the sender's per-segment record.

Every transmission (new data or a retransmission) is a SentSegment with its transmit
time.  A segment is lost when a segment sent *after* it has been delivered (ACKed or
SACKed) and more than RACK.rtt + RACK.reo_wnd has passed since it left (§6.2 step 5).
This catches what duplicate-ACK counting cannot: a retransmission lost again (SND.UNA
and the SACK holes do not move, so no dupthresh ever fires -- only the RTO would), and
a loss among the last few segments in flight (fewer than DupThresh behind it).  The
reordering window adapts (§6.2 step 4): zero until reordering is seen, then
min(reo_wnd_mult * min_RTT / 4, SRTT), widened per round that brought D-SACKs.

Two orders, as in Linux (an rb-tree by sequence, a list by transmit time):
  * by sequence: sorted lists of starts (bisect), for what an ACK or SACK delivers;
  * by transmit time: an OrderedDict of the segments in flight (not delivered, not
    marked lost), oldest first; a retransmission moves its segment to the end.
Delivered segments leave both; lost ones leave the time order until retransmitted.
Each segment enters and leaves each structure once per transmission, so an ACK costs
O(log n) plus what it delivers or marks lost (amortised), whatever a peer sends.  The
number of records is bounded: one per segment sent, at most RACK_MAX_SEGMENTS (beyond
it new data joins the newest record, and a retransmission re-stamps the records it
touches whole instead of splitting them; below it a retransmission splits one in two).

Sequence numbers are kept as absolute positions (a base that moves with SND.UNA, as in
the Scoreboard), so comparisons are plain integers.
"""
from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from . import seq as sq
from .rate import RateEstimator

# The containers of a Rack that has sent nothing (issue 14: the idle heap per connection).
_NONE: Any = ()

# Records kept at most (a retransmission cutting one in two may add one more; at the cap it
# re-stamps whole records instead): a record per
# full-sized segment of a 4 MiB send buffer is ~2900; tiny segments beyond the cap merge
# into the newest record (Linux bounds the same by charging each skb's truesize to sndbuf).
RACK_MAX_SEGMENTS = 4096
REO_WND_PERSIST = 16            # RFC 8985 §6.2 step 4: recoveries a widened window persists
REO_WND_MIN = 0.002             # the reordering window's floor: Linux TCP_TIMEOUT_MIN at HZ=1000 (see reo_wnd)
DUPTHRESH = 3                   # RFC 6675 §2 / RFC 8985 §6.2 step 4
# Below every position: positions start at the first sequence number sent, read as a signed
# 32-bit distance from 0 -- negative for an ISN in the upper half of the space, so a fack of 0
# took every delivery for a reordered one (issue 14's scripted recovery tests found it)
NO_POSITION = -(1 << 62)


class SentSegment:
    # the last four: the delivery-rate snapshot (rate.py), only when a controller asks for it
    __slots__ = ("start", "end", "xmit_ts", "order", "retransmitted", "lost",
                 "delivered", "delivered_time", "first_sent_time", "app_limited")
    delivered: int                      # set by RateEstimator.on_sent (with delivered_time)
    first_sent_time: float
    app_limited: bool

    def __init__(self, start: int, end: int, xmit_ts: float, retransmitted: bool) -> None:
        self.start = start
        self.end = end
        self.xmit_ts = xmit_ts
        self.order = 0                  # transmissions before it (Rack.sent): the tie-break of equal times
        self.retransmitted = retransmitted
        self.lost = False
        self.delivered_time: float | None = None

    def copy_rate(self, other: SentSegment) -> None:
        """The back of a split record keeps the snapshot of its transmission."""
        if other.delivered_time is not None:
            self.delivered, self.delivered_time = other.delivered, other.delivered_time
            self.first_sent_time, self.app_limited = other.first_sent_time, other.app_limited


def _sent_after(t1: float, order1: int, end1: int, t2: float, order2: int, end2: int) -> bool:
    """RFC 8985 §6.2 RACK_sent_after: was (t1, order1, end1) sent after (t2, order2, end2)?
    The RFC breaks a tie of equal times by sequence; here first by the order of
    transmission, which a tie means to approximate: under a coarse (or a test's mock)
    clock a new segment and a retransmission below it leave at the same instant in either
    order, and the sequence tie-break took a retransmission sent after new data for one
    sent before it -- lost as soon as that data was SACKed.  Pieces of one transmission (a
    super-segment cut at a SACK block) share its order: between them the end sequence
    decides, as in Linux (tcp_rack_sent_after)."""
    return t1 > t2 or (t1 == t2 and (order1 > order2 or (order1 == order2 and end1 > end2)))


class Rack:
    """RFC 8985 §6.1 per-connection state plus the sent-segment record."""
    __slots__ = ("max_segments", "xmit_ts", "end_seq", "xmit_order", "sends", "rtt", "min_rtt", "fack",
                 "reordering_seen", "reorderings", "reo_wnd_mult",
                 "reo_wnd_persist", "dsack_round", "inflight", "lost_bytes", "rate", "want_rate",
                 "_starts", "_segs", "_tsorted", "_lost", "_base_seq", "_base_abs")

    def __init__(self, max_segments: int = RACK_MAX_SEGMENTS) -> None:
        self.max_segments = max_segments
        self.xmit_ts = 0.0              # RACK.xmit_ts: latest transmit time among delivered segments
        self.end_seq = NO_POSITION      # RACK.end_seq (position)
        self.xmit_order = -1            # the order (SentSegment.order) of that segment
        self.sends = 0                  # transmissions so far: the next SentSegment.order
        self.rtt = 0.0                  # RACK.rtt: RTT of that segment
        self.min_rtt = math.inf          # (the shared float: an idle connection makes none)
        self.fack = NO_POSITION         # RACK.fack: highest end delivered (position)
        self.reordering_seen = False
        self.reorderings = 0            # deliveries below RACK.fack (TCP_INFO's reord_seen counts the ACKs)
        self.reo_wnd_mult = 1
        self.reo_wnd_persist = REO_WND_PERSIST
        self.dsack_round: int | None = None
        self.inflight = 0               # octets sent, not delivered, not marked lost (the pipe)
        self.lost_bytes = 0             # octets marked lost and not yet sent again
        # delivery-rate estimation (rate.py): wanted for every connection (TCP_INFO's delivery
        # rate, as Linux's tcp_rate.c) but made at the first data sent or the first write
        # check (rate_conn.py) -- an idle connection holds none (issue 14: the idle heap);
        # BBR, which takes its samples, has it from the start.  None costs nothing per segment.
        self.rate: RateEstimator | None = None
        self.want_rate = False
        # made at the first transmission (_allocate); until then one shared empty tuple, which
        # every read accepts and any write would refuse: an idle connection holds none of them
        self._starts: list[int] = _NONE             # by sequence: segment starts, ascending...
        self._segs: list[SentSegment] = _NONE       # ...and the segments (not yet delivered)
        self._tsorted: OrderedDict[SentSegment, None] = _NONE   # in flight, oldest first
        self._lost: list[int] = _NONE               # starts of segments marked lost, ascending
        self._base_seq = 0
        self._base_abs = 0

    def __len__(self) -> int:
        return len(self._segs)

    # --- positions --------------------------------------------------------------------------
    def rebase(self, una: int) -> None:
        self._base_abs += sq.diff(una, self._base_seq)
        self._base_seq = una

    def pos(self, s: int) -> int:
        return self._base_abs + sq.diff(s, self._base_seq)

    def seq(self, p: int) -> int:
        return sq.add(self._base_seq, p - self._base_abs)

    # --- transmissions ------------------------------------------------------------------------
    def sent(self, start: int, end: int, now: float, retransmission: bool) -> None:
        """Record a transmission of [start, end): it replaces whatever covered that range."""
        lo, hi = self.pos(start), self.pos(end)
        if hi <= lo:
            return
        segs = self._segs
        if not segs or lo >= segs[-1].end:
            last = segs[-1] if segs else None
            if last is not None and len(segs) >= self.max_segments and lo == last.end \
                    and not last.lost and last in self._tsorted:
                # at the cap (tiny segments): the new data joins the newest record, which
                # takes this send time -- its older octets are detected later, never sooner
                last.end = hi
                last.xmit_ts = now
                last.order = self.sends
                self.sends += 1
                last.retransmitted = last.retransmitted or retransmission
                self._tsorted.move_to_end(last)
                self.inflight += hi - lo
                return
            self._insert(len(segs), self._stamped(SentSegment(lo, hi, now, retransmission), now))
            return
        if len(segs) >= self.max_segments:
            # at the cap: a retransmission re-stamps the records it touches whole instead of
            # splitting them (their other octets are detected later, never sooner), or a peer
            # shaping holes with its SACKs could make a record per retransmitted piece
            i = bisect_right(self._starts, lo) - 1
            if i >= 0 and segs[i].end > lo:
                lo = segs[i].start
            j = bisect_left(self._starts, hi) - 1
            if j >= 0 and segs[j].end > hi:
                hi = segs[j].end
        i = bisect_right(self._starts, lo) - 1
        if i >= 0 and segs[i].end > lo and segs[i].start < lo:
            old = segs[i]                       # we cut into it: it keeps its front...
            if old.end > hi:                    # ...and its back becomes a record of its own
                back = SentSegment(hi, old.end, old.xmit_ts, old.retransmitted)
                back.order = old.order
                back.lost = old.lost
                back.copy_rate(old)
                self._resize(old, old.start, lo)
                self._insert(i + 1, back)       # (appended to the time order: detected late at worst)
            else:
                self._resize(old, old.start, lo)
        i = bisect_left(self._starts, lo)
        while i < len(segs) and segs[i].start < hi:
            old = segs[i]
            if old.end > hi:                    # we cut into its front
                self._resize(old, hi, old.end)
                break
            self._remove(i, old)
        self._insert(bisect_left(self._starts, lo), self._stamped(SentSegment(lo, hi, now, retransmission), now))

    def _stamped(self, seg: SentSegment, now: float) -> SentSegment:
        seg.order = self.sends
        self.sends += 1
        rate = self.rate
        if rate is None and self.want_rate:
            rate = self.rate = RateEstimator()
        if rate is not None:
            rate.on_sent(seg, now, self.inflight)
        return seg

    def _allocate(self) -> None:
        self._starts, self._segs, self._tsorted, self._lost = [], [], OrderedDict(), []

    def _insert(self, i: int, seg: SentSegment) -> None:
        if self._segs is _NONE:
            self._allocate()
        self._starts.insert(i, seg.start)
        self._segs.insert(i, seg)
        if seg.lost:
            self._lost.insert(bisect_left(self._lost, seg.start), seg.start)
            self.lost_bytes += seg.end - seg.start
        else:
            self._tsorted[seg] = None
            self.inflight += seg.end - seg.start

    def _remove(self, i: int, seg: SentSegment) -> None:
        del self._starts[i]
        del self._segs[i]
        self._forget(seg)

    def _forget(self, seg: SentSegment) -> None:
        """Take `seg` out of the time order or the lost list, and out of the octet counts."""
        size = seg.end - seg.start
        if seg.lost:
            k = bisect_left(self._lost, seg.start)
            if k < len(self._lost) and self._lost[k] == seg.start:
                del self._lost[k]
            self.lost_bytes -= size
        elif seg in self._tsorted:
            del self._tsorted[seg]
            self.inflight -= size

    def _resize(self, seg: SentSegment, new_start: int, new_end: int) -> None:
        """Shrink `seg` to [new_start, new_end), a sub-range of it, keeping every index right."""
        removed = (seg.end - seg.start) - (new_end - new_start)
        if seg.lost:
            self.lost_bytes -= removed
            if new_start != seg.start:
                k = bisect_left(self._lost, seg.start)
                del self._lost[k]
                self._lost.insert(bisect_left(self._lost, new_start), new_start)
        elif seg in self._tsorted:
            self.inflight -= removed
        if new_start != seg.start:
            k = bisect_left(self._starts, seg.start)
            self._starts[k] = new_start
        seg.start, seg.end = new_start, new_end

    # --- delivery -----------------------------------------------------------------------------
    def on_ack(self, una: int, sacks: tuple[tuple[int, int], ...], is_sacked: Callable[[int, int], bool],
               now: float) -> bool:
        """Step 2-3 of RFC 8985 §6.2 for what this ACK delivered: the cumulative ACK to
        `una`, and the segments inside `sacks` that the scoreboard now holds whole
        (is_sacked(start_seq, end_seq)).  Returns True if anything was delivered."""
        self.rebase(una)
        edge = self._base_abs
        delivered = False
        segs = self._segs
        gone = bisect_right(self._starts, edge) if segs else 0
        while gone and segs[gone - 1].end > edge:
            gone -= 1                           # the last one straddles SND.UNA
        for seg in segs[:gone]:
            self._deliver(seg, now)
            self._forget(seg)
            delivered = True
        if gone:
            del segs[:gone]
            del self._starts[:gone]
        if segs and segs[0].start < edge:      # partly acknowledged: trim its front
            if self.rate is not None:
                self.rate.on_partly_delivered(edge - segs[0].start, now)
            self._resize(segs[0], edge, segs[0].end)
        # lowest block first (Linux sorts them too): one ACK's blocks arrive in recency
        # order (RFC 2018 §4), which is no evidence of reordering
        base_abs, base_seq = self._base_abs, self._base_seq
        blocks = [(base_abs + sq.diff(left, base_seq), base_abs + sq.diff(right, base_seq)) for left, right in sacks]
        if len(blocks) > 1:
            blocks.sort()
        for lo, hi in blocks:
            if hi <= edge or hi <= lo:
                continue
            lo = max(lo, edge)
            i = max(bisect_right(self._starts, lo) - 1, 0)
            if i < len(segs) and segs[i].end <= lo:
                i += 1                          # the record before the block (blocks of earlier ACKs: no more)
            while i < len(segs) and segs[i].start < hi:
                seg = segs[i]
                # only what the scoreboard accepted: a block it refused (beyond SND.MAX, or
                # past its range cap) delivers nothing, or a lying peer could empty the
                # records and the pipe estimate (Linux tcp_is_sackblock_valid runs first)
                if is_sacked(self.seq(seg.start), self.seq(seg.end)):
                    self._deliver(seg, now)
                    self._remove(i, seg)
                    delivered = True
                elif self._split_sacked(i, lo, hi, is_sacked):
                    continue                    # segs[i] is now the SACKed part: delivered next turn
                else:
                    i += 1
        return delivered

    def _split_sacked(self, i: int, lo: int, hi: int, is_sacked: Callable[[int, int], bool]) -> bool:
        """A record (a super-segment) the block [lo, hi) covers in part: cut it at the block's
        edges so the SACKed part is delivered on its own, as Linux cuts an skb at a SACK
        block's edges (tcp_sacktag_walk -> tcp_match_skb_to_sack -> tcp_fragment).  Else a
        loss inside a super-segment hid the delivery of every piece after it, and RACK could
        not see a later-sent segment delivered (a lost retransmission waited for the RTO).
        Not at the record cap (the rest is delivered whole, later).  True if it cut."""
        seg = self._segs[i]
        a, b = max(seg.start, lo), min(seg.end, hi)
        if a >= b or len(self._segs) + 2 > self.max_segments or not is_sacked(self.seq(a), self.seq(b)):
            return False
        if b < seg.end:
            self._cut(i, b)
        if a > seg.start:
            self._cut(i, a)                     # segs[i + 1] is [a, b)
            return False                        # the loop moves on to it
        return True

    def _cut(self, i: int, at: int) -> None:
        """Record i becomes [start, at) and a new record [at, end) with its transmission."""
        old = self._segs[i]
        back = SentSegment(at, old.end, old.xmit_ts, old.retransmitted)
        back.order = old.order
        back.lost = old.lost
        back.copy_rate(old)
        self._resize(old, old.start, at)
        self._insert(i + 1, back)

    def _deliver(self, seg: SentSegment, now: float) -> None:
        """RFC 8985 §6.2 steps 2 (RACK_update) and 3 (RACK_detect_reordering)."""
        if self.rate is not None:
            self.rate.on_delivered(seg, seg.end - seg.start, now)
        if seg.end > self.fack:
            self.fack = seg.end
        elif not seg.retransmitted:
            self.reordering_seen = True         # delivered below the highest delivered: reordered
            self.reorderings += 1
        rtt = now - seg.xmit_ts
        # step 2: a retransmission acked sooner than min_RTT was acked by its original
        # (ambiguous); Linux and the RFC skip it
        if seg.retransmitted and rtt < self.min_rtt:
            return
        self.min_rtt = min(self.min_rtt, rtt)
        self.rtt = rtt
        if _sent_after(seg.xmit_ts, seg.order, seg.end, self.xmit_ts, self.xmit_order, self.end_seq):
            self.xmit_ts, self.end_seq, self.xmit_order = seg.xmit_ts, seg.end, seg.order

    def on_dsack(self, snd_una: int, snd_nxt: int) -> None:
        """§6.2 step 4, first half: a D-SACK widens the window once per round trip."""
        if self.dsack_round is not None and sq.ge(snd_una, self.seq(self.dsack_round)):
            self.dsack_round = None
        if self.dsack_round is None:
            self.reo_wnd_mult += 1
            self.dsack_round = self.pos(snd_nxt)
            self.reo_wnd_persist = REO_WND_PERSIST

    def on_recovery_exit(self) -> None:
        """§6.2 step 4: after REO_WND_PERSIST recoveries without D-SACK, narrow again."""
        self.reo_wnd_persist -= 1
        if self.reo_wnd_persist <= 0:
            self.reo_wnd_mult = 1
            self.reo_wnd_persist = REO_WND_PERSIST

    def reo_wnd(self, in_recovery: bool, dupthresh_sacked: bool, srtt: float) -> float:
        """§6.2 step 4 RACK_update_reo_wnd: no window while no reordering has been seen
        and the loss is plain (in recovery, or DupThresh segments SACKed above it)."""
        if not self.reordering_seen and (in_recovery or dupthresh_sacked):
            return 0.0
        min_rtt = self.min_rtt if self.min_rtt != math.inf else srtt
        # floored at a timer's worth: on a sub-millisecond path min_RTT/4 is shorter than
        # the gap between two segments swapped on the wire, and every swap would be taken
        # for a loss (Linux's reordering timer never fires sooner than TCP_TIMEOUT_MIN, 2 ms)
        return max(min(self.reo_wnd_mult * min_rtt / 4, srtt), REO_WND_MIN)

    # --- loss ---------------------------------------------------------------------------------
    def detect_loss(self, now: float, reo_wnd: float) -> tuple[int, int, float]:
        """§6.2 step 5 RACK_detect_loss: mark lost every segment in flight sent before
        RACK.xmit_ts whose RACK.rtt + reo_wnd has run out.  Returns (segments newly
        marked lost, how many of them were retransmissions, time until the next one would be:
        the reordering timer, 0 if none).
        Walks the time order from the oldest and stops at the first segment sent after
        RACK.xmit_ts: the segments it passes are lost (leave) or waiting (the timer)."""
        marked = 0
        timeout = 0.0
        for seg in self._tsorted:
            if not _sent_after(self.xmit_ts, self.xmit_order, self.end_seq, seg.xmit_ts, seg.order, seg.end):
                break
            remaining = seg.xmit_ts + self.rtt + reo_wnd - now
            if remaining <= 0:
                marked += 1
            else:
                # the RFC arms the timer for the latest of the waiting segments; we arm it
                # for the first (the rest, sent later, are checked again when it fires)
                timeout = remaining
                break
        retransmitted = 0
        for _ in range(marked):
            seg, _none = self._tsorted.popitem(last=False)
            self._mark_lost(seg)
            retransmitted += seg.retransmitted
        return marked, retransmitted, timeout

    def _mark_lost(self, seg: SentSegment) -> None:
        if self.rate is not None:
            self.rate.lost += seg.end - seg.start
        seg.lost = True
        self.inflight -= seg.end - seg.start
        self.lost_bytes += seg.end - seg.start
        self._lost.insert(bisect_left(self._lost, seg.start), seg.start)

    def mark_all_lost(self) -> int:
        """Everything in flight is lost (an RTO, or nothing heard in recovery for a PTO)."""
        n = len(self._tsorted)
        while self._tsorted:
            seg, _none = self._tsorted.popitem(last=False)
            self._mark_lost(seg)
        return n

    def first_lost(self, at_or_after: int) -> tuple[int, int] | None:
        """The first range marked lost at or after sequence `at_or_after`: (start, end)."""
        p = self.pos(at_or_after)
        lost = self._lost
        k = bisect_right(lost, p) - 1
        if k < 0 or self._segs[bisect_left(self._starts, lost[k])].end <= p:
            k += 1
        if k >= len(lost):
            return None
        seg = self._segs[bisect_left(self._starts, lost[k])]
        return self.seq(max(seg.start, p)), self.seq(seg.end)

    def last_start(self) -> int | None:
        """Where the highest record begins (a sequence number), None without records: tells
        a FIN sent alone from one sent on the last data (the loss probe resends what was sent)."""
        return self.seq(self._segs[-1].start) if self._segs else None

    @property
    def has_lost(self) -> bool:
        return bool(self._lost)

    def clear(self) -> None:
        self._starts = self._segs = self._lost = _NONE
        self._tsorted = _NONE
        self.inflight = self.lost_bytes = 0
