"""How Linux cuts a byte stream into segments: its write queue's skb boundaries and PSH.

tunstack's send buffer is one byte stream; Linux's is a queue of skbs, and where a
segment ends and whether it carries PSH follow from them (issue 14, point 1).  What the
kernel (6.x, checked by the scripted tests against it) does:

  * each send()/write() ends with tcp_push, which flags the tail skb PSH -- unless the
    call says MSG_MORE (or TCP_CORK is on and the call is not the last: tcp_push's
    `forced_push` still flags it once more than half the peer's largest window has gone
    unpushed);
  * a write appends to the tail skb while that skb is not yet sent, and the first byte
    it copies clears the tail's PSH (tcp_sendmsg_locked): two writes queued behind a
    closed window become one skb with one PSH, at the end of the second;
  * a write after MSG_EOR starts a new skb (tcp_skb_can_collapse_to), and so does one
    after the tail was sent;
  * tcp_write_xmit sends an skb in chunks -- at most tcp_tso_autosize segments (about a
    millisecond at the pacing rate, at least two), at most half the cwnd
    (tcp_cwnd_test), up to the window -- and each chunk cut from a PSH skb keeps the
    flag on its last segment (the GSO split puts it on the chunk's last segment).  So
    a 3000-octet write at MSS 1000 over a 100 ms path is sent as two chunks, 2000 + 1000,
    each ending in PSH.

`WriteMarks` keeps the skb ends a segment may not run past, with their PSH bit, as
absolute stream offsets (octets written since the connection began): O(1) amortised per
write and per ACK, O(log n) per segment (a bisect), and at most MAX_MARKS of them -- past
that, a write merges with the tail as if into one skb (only where PSH lands changes).
"""
from __future__ import annotations

from bisect import bisect_left

from ..shared import frozen

MAX_MARKS = 1024               # skb ends kept at most (bounded whatever the writes)
GSO_MAX_SIZE = 65536           # Linux GSO_LEGACY_MAX_SIZE: what tcp_tso_autosize adds at most
TSO_RTT_LOG = 9                # net.ipv4.tcp_tso_rtt_log: the low-RTT bonus halves per 2**9 us
MIN_TSO_SEGS = 2               # net.ipv4.tcp_min_tso_segs
PACING_SHIFT = 10              # sk_pacing_shift: a chunk is ~1/1024 s at the pacing rate
_NO_ENDS: list[int] = []       # shared by every buffer never written to (never mutated): idle
                               # connections do not pay for a list each


class WriteMarks:
    """The skb ends of the send buffer (each `end << 1 | psh`, ascending), the tail skb's
    start, and tcp_push's pushed_seq -- all absolute stream offsets."""
    __slots__ = ("ends", "head", "acked", "written", "pushed", "tail_start", "tail_eor")

    def __init__(self) -> None:
        self.ends = _NO_ENDS
        self.head = 0                  # ends[:head] are acknowledged
        self.acked = 0                 # stream offset of SND.UNA
        self.written = 0               # stream offset of the end of the buffer (write_seq)
        self.pushed = 0                # Linux pushed_seq
        self.tail_start = 0            # where the tail skb begins
        self.tail_eor = False          # the tail ended an MSG_EOR write: never appended to

    def wrote(self, n: int, sent: int, more: bool, eor: bool, half_window: int) -> None:
        """`n` octets appended by one call; `sent` octets of the buffer (from SND.UNA) are
        sent.  Linux tcp_sendmsg_locked + tcp_push, one skb per run of appended writes."""
        start = self.written
        end = self.written = start + n
        ends = self.ends
        if ends is _NO_ENDS:
            ends = self.ends = []
        if start > max(self.tail_start, self.acked + sent) and not self.tail_eor:
            # appended to an unsent tail: its PSH (and its end) move to the new end
            if len(ends) > self.head and ends[-1] >> 1 == start:
                ends.pop()
        else:
            self.tail_start = start
        # tcp_push: PSH unless MSG_MORE, and even then once half the largest window waits
        psh = not more or end - self.pushed > half_window
        if psh:
            self.pushed = end
        if len(ends) - self.head >= MAX_MARKS:
            ends.pop()                 # bounded: merge with the previous skb
        ends.append(end << 1 | psh)
        self.tail_eor = eor

    def acked_to(self, n: int) -> None:
        """SND.UNA moved `n` octets on: forget the skb ends below it (amortised O(1))."""
        self.acked += n
        ends, head, limit = self.ends, self.head, self.acked << 1 | 1
        while head < len(ends) and ends[head] <= limit:
            head += 1
        if head >= 64 and head * 2 >= len(ends):
            del ends[:head]
            head = 0
        self.head = head

    def clear(self) -> None:
        self.acked = self.written
        self.ends = _NO_ENDS
        self.head = 0

    def next_end(self, off: int) -> int:
        """The first skb end after buffer offset `off` (from SND.UNA), encoded `end << 1 |
        psh` relative to SND.UNA; -1 if none (the buffer end has one unless bounded away)."""
        ends = self.ends
        i = bisect_left(ends, (self.acked + off + 1) << 1, self.head)
        if i == len(ends):
            return -1
        return ends[i] - (self.acked << 1)


# every send buffer's marks until its first write (buffers.py SendBuffer): never written --
# an idle connection holds none of its own (issue 15: the idle heap)
NO_MARKS = frozen(WriteMarks(), "NO_MARKS")


def tso_autosize(mss: int, cwnd: int, srtt: float, min_rtt: float, slow_start: bool) -> int:
    """Segments per chunk (Linux tcp_tso_autosize over tcp_update_pacing_rate): about
    1/1024 s at the pacing rate -- 200 % of cwnd/SRTT in slow start, 120 % after -- plus
    GSO_MAX_SIZE >> (min_rtt_us >> 9) on short paths, at least MIN_TSO_SEGS."""
    if srtt <= 0 or mss <= 0:
        return 1 << 16                 # no RTT yet: Linux's initial pacing rate is unlimited
    rate = cwnd / srtt * (2.0 if slow_start else 1.2)
    size = int(min(rate, GSO_MAX_SIZE << PACING_SHIFT)) >> PACING_SHIFT
    shift = int(min_rtt * 1e6) >> TSO_RTT_LOG
    if shift < 32:
        size += GSO_MAX_SIZE >> shift
    return max(min(size, GSO_MAX_SIZE) // mss, MIN_TSO_SEGS)


def initial_window(space: int, mss: int) -> int:
    """The window of a SYN or SYN-ACK (never scaled, RFC 7323 §2.2) as Linux's
    tcp_select_initial_window: at most 65535, rounded down to whole segments of the MSS we
    advertise (less the timestamp option when the SYN-ACK's connection uses it) -- 64240 =
    44 x 1460 for Linux's default buffer, 65160 = 45 x 1448 with timestamps."""
    window = min(space, 0xFFFF)
    return window - window % mss if window > mss > 0 else window
