"""The two byte queues of a connection.

SendBuffer holds bytes from SND.UNA on: unacknowledged, then not yet sent.  RecvBuffer
holds in-order bytes the application has not read, plus out-of-order segments waiting
for the hole before them (RFC 9293 §3.10.7.4 "segment text"; RFC 2018 for SACK).
SendBuffer consumes from a head offset and compacts lazily, so an ACK never moves
megabytes (an amortised O(1) queue over one bytearray).  RecvBuffer's in-order bytes are
a queue of chunks instead -- views of the frames read, kept as they came (issue 15: the
one growing bytearray cost a copy per segment and its regrowth a quarter of the CPU with
ten connections) -- and a read joins only the bytes it asks for.

Per-segment work stays O(log n) whatever a peer sends: the out-of-order queue and the
sender's SACK scoreboard are bisected sorted lists with a bound on their length (the
SegmentSmack and SACK-panic attack classes, CVE-2018-5390 and CVE-2019-11477/8).
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Protocol, TypeAlias

from ..shared import frozen
from . import seq as sq
from .segmentation import NO_MARKS, WriteMarks

COMPACT_MIN = 1 << 16
_NO_DATA = bytearray()          # an empty ByteQueue's data, shared (idle connections hold none); never added to

# The in-order receive queue (RecvBuffer).  A segment's payload is kept as the view of the
# frame the driver read when that frame is an immutable `bytes` (drivers/tuntap.py reads
# each frame into its own bytes object), so nothing can change it under us and holding it
# pins little more than the payload: at most PIN_SLACK bytes of headers beyond twice the
# payload (a trimmed or padded segment), else it is copied, once, into a bytes of its own
# -- as is a payload whose buffer may be reused or resized (a bytearray: loopback, IP
# reassembly, tests).  A small payload is copied into the tail chunk instead (COALESCE_BELOW):
# a view and the frame it pins cost ~250 bytes whatever the payload, and the window counts
# payload bytes only, so a peer sending 1-byte segments must not make each byte cost that
# (Linux collapses such queues, tcp_collapse, for the same reason).  The tail stops growing
# at TAIL_MAX, so a slow reader's consumed bytes in it stay bounded.
PIN_SLACK = 256
COALESCE_BELOW = 512
TAIL_MAX = 1 << 16
CHUNKS_COMPACT_MIN = 64      # dead list slots before the chunk list is compacted (amortised O(1))
Chunk: TypeAlias = memoryview | bytes | bytearray
# What one out-of-order block costs beyond its payload, for the memory budget (memory.py):
# its list and bytearray headers and allocator slack (sys.getsizeof: 56 + 72 + 57), rounded
# up.  Linux charges each skb its truesize, not its payload, for the same reason.
OOO_BLOCK_OVERHEAD = 192

# Out-of-order queue bounds (SegmentSmack, CVE-2018-5390).  Linux charges every queued skb
# its truesize (~1 KiB or more for a tiny segment) against sk_rcvbuf, so tiny segments
# exhaust the budget fast; we charge each block OOO_BLOCK_TRUESIZE against the capacity
# to size the block budget (the window and free() still count data bytes only).
# The hard cap: a legitimate sender needs one block per loss in flight (a 4 MiB window
# with 10% loss at 1448-byte segments: ~290); the reporting costs nothing either way (3-4
# blocks an ACK).  The floor keeps SACK useful with small buffers.
OOO_BLOCK_TRUESIZE = 1024
OOO_MIN_BLOCKS = 64
OOO_MAX_BLOCKS = 1024
OOO_HEADROOM_MAX = 1 << 16           # front headroom a block may grow by at once
SACK_RECENT = 8                      # blocks remembered in reporting order (RFC 2018 §4)
TCP_NUM_SACKS = 4                    # the SACK blocks Linux's receiver remembers (its selective_acks)

# The sender's scoreboard: a SACKed range per loss in flight is what a receiver can
# legitimately make; 1024 matches the receiver's block cap (CVE-2019-11477/8).
SACK_MAX_RANGES = 1024


class ByteQueue:
    __slots__ = ("data", "head", "queued")

    def __init__(self) -> None:
        self.data = _NO_DATA                        # shared while empty: write() swaps in its own
        self.head = 0
        # len(self) as a plain attribute: TCP reads it a dozen times per segment, and a
        # Python-level __len__ costs a call each time
        self.queued = 0

    def __len__(self) -> int:
        return self.queued

    def consume(self, n: int) -> None:
        self.head += n
        self.queued -= n
        if self.head == len(self.data):
            self.data = _NO_DATA                    # drained: give the memory back (O(1))
            self.head = 0
        elif self.head >= COMPACT_MIN and self.head * 2 >= len(self.data):
            del self.data[:self.head]
            self.head = 0

    def view(self, offset: int, n: int) -> memoryview:
        start = self.head + offset
        return memoryview(self.data)[start:start + n]

    def held(self) -> int:
        """Bytes this queue really holds: consumed bytes stay until the next compaction."""
        return len(self.data)


class SendBuffer(ByteQueue):
    __slots__ = ("capacity", "marks")

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        # Linux's skb ends and PSH bits (segmentation.py): the shared NO_MARKS until the first
        # write (an idle connection holds none; every marks.wrote follows a write)
        self.marks = NO_MARKS

    def space(self) -> int:
        return max(0, self.capacity - self.queued)

    def write(self, data: memoryview) -> int:
        n = min(len(data), self.capacity - self.queued)
        if n > 0:
            if self.data is _NO_DATA:
                self.data = bytearray()
                if self.marks is NO_MARKS:
                    self.marks = WriteMarks()
            self.data += data[:n]
            self.queued += n
            return n
        return 0

    def consume(self, n: int) -> None:
        super().consume(n)
        if self.marks is not NO_MARKS:
            self.marks.acked_to(n)

    def clear(self) -> None:
        self.data = _NO_DATA
        self.head = self.queued = 0
        if self.marks is not NO_MARKS:
            self.marks.clear()


class OooCounters(Protocol):
    """Where RecvBuffer counts what it refuses (TcpStats has these fields)."""
    ofo_dropped: int
    ofo_pruned: int


class SackCounters(Protocol):
    """Where Scoreboard counts the SACK blocks it ignores (TcpStats has these fields)."""
    sack_blocks_invalid: int
    sack_blocks_old: int
    sack_blocks_ignored: int


class _OooBlock:
    """One run of contiguous out-of-order bytes, `buf[head:]`.  The headroom in front
    makes prepending amortised O(bytes added), like appending: a descending run of tiny
    segments in front of a large block must not copy the block for each one."""
    __slots__ = ("buf", "head", "size")

    def __init__(self, data: memoryview | bytes) -> None:
        self.buf = bytearray(data)
        self.head = 0
        self.size = len(self.buf)       # the bytes held, len(buf) - head (read per segment: no __len__ call)

    def __len__(self) -> int:
        return self.size

    def view(self, skip: int = 0) -> memoryview:
        return memoryview(self.buf)[self.head + skip:]

    def append(self, data: memoryview | bytes) -> None:
        self.buf += data
        self.size += len(data)

    def prepend(self, data: memoryview | bytes) -> None:
        n = len(data)
        if n > self.head:
            # one copy buys headroom for as many bytes as the block holds (64 KiB at most):
            # amortised O(1) per byte prepended, and never more than twice the block's bytes
            room = max(n, min(self.size, OOO_HEADROOM_MAX))
            self.buf[:self.head] = bytes(room)
            self.head = room
        self.buf[self.head - n:self.head] = data
        self.head -= n
        self.size += n


# RecvBuffer's empty out-of-order queue, shared until a connection gets its first block;
# never added to (RecvBuffer._new_block replaces them first)
_NO_STARTS: list[int] = []
_NO_CHUNKS: list[Chunk] = []                # the shared empty containers of idle buffers:
_NO_RANGES: list[int] = []                  # never added to (their owners swap in their own first)
_NO_BLOCKS: dict[int, _OooBlock] = {}
_NO_RECENT: list[int] = []


def _pieces(seg: memoryview, seg_start: int, lo: int, hi: int,
            blocks: list[tuple[int, _OooBlock]]) -> list[memoryview]:
    """The bytes of [lo, hi) in order: the blocks held there, and between them the
    segment's own bytes (it starts at `seg_start` and, touching every block of the run,
    covers the gaps)."""
    out: list[memoryview] = []
    pos = lo
    for start, block in blocks:
        if pos < start:
            out.append(seg[pos - seg_start:start - seg_start])
        out.append(block.view())
        pos = start + block.size
    if pos < hi:
        out.append(seg[pos - seg_start:hi - seg_start])
    return out


class RecvBuffer:
    """In-order bytes for the application, plus the out-of-order queue.

    The in-order bytes are `_chunks[_first:]` less the first `_skip` bytes of the first:
    appending a segment appends its chunk (no copy for a frame read into its own bytes,
    see PIN_SLACK), and a read copies exactly the bytes it returns, once (a read of one
    whole bytes chunk returns it as it is).  Consumed chunks leave the list lazily.

    The out-of-order queue is a sorted list of disjoint, non-adjacent block starts and a
    dict from start to block.  Positions are kept as unbounded integers ("absolute" offsets: a
    base sequence number and its absolute value move with RCV.NXT), so sorting and
    bisecting never meet the 2**32 wrap.  Inserting a segment is O(log n) to find its
    neighbours plus the blocks it merges (each block is merged away once: amortised O(1)),
    and bytes are copied small-into-large (SegmentSmack, CVE-2018-5390, made the
    linear scan a CPU attack).

    Bounds: the queue holds at most `ooo_block_limit()` blocks -- each block is charged
    OOO_BLOCK_TRUESIZE against the buffer's capacity as Linux charges an skb's truesize,
    clamped to [OOO_MIN_BLOCKS, OOO_MAX_BLOCKS] -- and its bytes are bounded by the
    window the caller trims segments to.  A segment that needs a new block at the limit
    prunes the highest block if it lies below it, else it is dropped (Linux
    tcp_data_queue_ofo / tcp_prune_ofo_queue): the lowest blocks, the most useful, stay.
    Counted in ofo_pruned / ofo_dropped."""
    __slots__ = ("capacity", "ooo_bytes", "ooo_headroom", "_chunks", "_first", "_skip", "queued",
                 "ooo_starts", "_blocks", "_recent", "_base_seq", "_base_abs", "dup_range", "sack_fresh", "sack_once")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # in-order data; [:_first] already read (b""); the shared empty list until the first
        # chunk (_push and _push_block alone add to it): an idle connection holds none
        self._chunks: list[Chunk] = _NO_CHUNKS
        self._first = 0                              # the first chunk not wholly read ...
        self._skip = 0                               # ... and the bytes read of it
        self.queued = 0                              # unread in-order bytes
        self.ooo_bytes = 0
        self.ooo_headroom = 0                        # bytes the blocks keep free in front (_OooBlock.head)
        # the out-of-order queue: the shared empty containers until the first block (an idle
        # connection does not pay for three; only _new_block adds to an empty queue)
        # absolute block starts, ascending; read-only outside (truth-tested per segment:
        # `if rcv.ooo_starts` is "any holes?" without the ooo_count call)
        self.ooo_starts: list[int] = _NO_STARTS
        self._blocks: dict[int, _OooBlock] = _NO_BLOCKS   # absolute start -> block
        self._recent: list[int] = _NO_RECENT         # starts, most recently changed first (SACK order)
        # how many of _recent's first blocks changed since the last segment we sent reported
        # them (new, grown or rotated to the front), and how many after those were reported
        # once since they changed: what a receive batch's held-back ACK owes the sender
        # (sack_fresh_after; delack.py); sack_reported moves them on
        self.sack_fresh = 0
        self.sack_once = 0
        self._base_seq = 0                           # a sequence number (the last RCV.NXT seen) ...
        self._base_abs = 0                           # ... and its absolute position
        # what of the last segment insert_ooo or append_in_order took was already held: (start,
        # end) sequence numbers of its lowest such part, the D-SACK to report (None: all new)
        self.dup_range: tuple[int, int] | None = None

    def __len__(self) -> int:
        return self.queued

    def free(self) -> int:
        return max(0, self.capacity - self.queued - self.ooo_bytes)

    def held(self) -> int:
        """Bytes held for the memory budget: the in-order chunks (the read part of the
        first included, as it stays until the chunk is done) and every out-of-order
        block with its overhead (OOO_BLOCK_OVERHEAD) and the headroom a prepend gave it
        (up to the block's own size: left out, a peer sending descending runs would hold
        twice what the budget saw)."""
        return self.queued + self._skip + self.ooo_bytes + self.ooo_headroom + OOO_BLOCK_OVERHEAD * len(self.ooo_starts)

    # --- the in-order chunks ----------------------------------------------------------------
    def _push(self, data: memoryview | bytes | bytearray) -> None:
        """Queue `data` as a chunk: by reference when nothing can change it and it pins
        little, else copied once (see PIN_SLACK, COALESCE_BELOW)."""
        n = len(data)
        if not n:
            return
        chunks = self._chunks
        if chunks is _NO_CHUNKS:
            self._chunks = chunks = []
        if n < COALESCE_BELOW:
            if len(chunks) > self._first:
                tail = chunks[-1]
                if type(tail) is bytearray and len(tail) < TAIL_MAX:
                    tail += data                     # ours alone: no view of it outlives a call
                    self.queued += n
                    return
            chunks.append(bytearray(data))
        elif type(data) is memoryview:
            frame = data.obj
            if type(frame) is bytes and len(frame) <= 2 * n + PIN_SLACK and data.contiguous:
                chunks.append(data)                  # the frame read: zero copy
            else:
                chunks.append(data.tobytes())
        elif type(data) is bytes:
            chunks.append(data)
        else:
            chunks.append(bytes(data))
        self.queued += n

    def _push_block(self, buf: bytearray) -> None:
        """Queue an out-of-order block's buffer that RCV.NXT reached, without copying it:
        nothing else refers to it any more."""
        if len(buf) < COALESCE_BELOW:
            self._push(buf)
            return
        if self._chunks is _NO_CHUNKS:
            self._chunks = []
        self._chunks.append(buf)
        self.queued += len(buf)

    def _gather(self, offset: int, n: int) -> bytes:
        """Bytes [offset, offset + n) of the unread data (0 <= offset, offset + n <= len),
        copied once."""
        if n <= 0:
            return b""
        chunks = self._chunks
        i = self._first
        pos = self._skip + offset
        size = len(chunks[i])
        while pos >= size:
            pos -= size
            i += 1
            size = len(chunks[i])
        chunk = chunks[i]
        if pos + n <= size:                          # within one chunk
            if type(chunk) is bytes and pos == 0 and n == size:
                return chunk
            return bytes(memoryview(chunk)[pos:pos + n])
        pieces: list[Chunk] = [memoryview(chunk)[pos:]]
        left = n - (size - pos)
        while left:
            i += 1
            chunk = chunks[i]
            size = len(chunk)
            if size <= left:
                pieces.append(chunk)
                left -= size
            else:
                pieces.append(memoryview(chunk)[:left])
                left = 0
        return b"".join(pieces)

    def consume(self, n: int) -> None:
        """Drop the first `n` unread bytes (fewer if fewer are queued)."""
        n = min(n, self.queued)
        if n <= 0:
            return
        self.queued -= n
        chunks = self._chunks
        if not self.queued:                          # drained: give every chunk back at once
            chunks.clear()
            self._first = self._skip = 0
            return
        i = self._first
        pos = self._skip + n
        size = len(chunks[i])
        while pos >= size:
            pos -= size
            i += 1
            size = len(chunks[i])
        self._skip = pos
        if i >= CHUNKS_COMPACT_MIN and 2 * i >= len(chunks):
            del chunks[:i]
            i = 0
        elif i > self._first:
            for k in range(self._first, i):      # let the frames go now, not at compaction
                chunks[k] = b""
        self._first = i

    def read(self, n: int, peek: bool = False) -> bytes:
        """Up to `n` unread bytes from the front; consumed unless `peek`."""
        chunks = self._chunks
        if n >= self.queued and not peek and not self._skip and len(chunks) == self._first + 1:
            # all of it, in one chunk (a request, a reply): handed over whole
            chunk = chunks[-1]
            chunks.clear()
            self._first = self.queued = 0
            return chunk if type(chunk) is bytes else bytes(chunk)
        n = min(n, self.queued)
        out = self._gather(0, n)
        if not peek:
            self.consume(n)
        return out

    def peek_at(self, offset: int, n: int) -> bytes:
        """Up to `n` unread bytes from `offset` on, left in the queue (a read that steps
        over the urgent byte looks past it first: conn.py)."""
        offset = max(0, min(offset, self.queued))
        return self._gather(offset, min(n, self.queued - offset))

    # --- positions ----------------------------------------------------------------------
    def _rebase(self, rcv_nxt: int) -> int:
        """Move the base to RCV.NXT (it moves less than 2**31 between calls: blocks lie in
        the window) and return its absolute position."""
        self._base_abs += sq.diff(rcv_nxt, self._base_seq)
        self._base_seq = rcv_nxt
        return self._base_abs

    def _seq(self, pos: int) -> int:
        return sq.add(self._base_seq, pos - self._base_abs)

    @property
    def ooo_count(self) -> int:
        """The number of out-of-order blocks held (0: no holes)."""
        return len(self.ooo_starts)

    def ooo_block_limit(self) -> int:
        """The block budget: the capacity over a per-block truesize, clamped."""
        return min(OOO_MAX_BLOCKS, max(OOO_MIN_BLOCKS, self.capacity // OOO_BLOCK_TRUESIZE))

    def ooo_snapshot(self) -> list[tuple[int, bytes]]:
        """(starting sequence number, bytes) of each block, ascending -- O(n), for tests
        and diagnostics only."""
        return [(self._seq(s), bytes(self._blocks[s].view())) for s in self.ooo_starts]

    # --- in order ------------------------------------------------------------------------
    def append_in_order(self, data: memoryview | bytes | bytearray, rcv_nxt: int) -> int:
        """Append in-sequence `data`, then pull any out-of-order blocks it reached.
        Returns the new RCV.NXT."""
        self.dup_range = None
        base = self._rebase(rcv_nxt)
        self._push(data)
        nxt = base + len(data)
        starts, blocks = self.ooo_starts, self._blocks
        if starts and starts[0] < nxt:
            # the text ran into queued data: its overlap with the lowest such block is the
            # D-SACK (Linux tcp_ofo_queue -> tcp_dsack_extend)
            self.dup_range = (self._seq(starts[0]), self._seq(min(starts[0] + blocks[starts[0]].size, nxt)))
        reached = 0
        while reached < len(starts) and starts[reached] <= nxt:
            start = starts[reached]
            block = blocks.pop(start)
            self.ooo_headroom -= block.head
            skip = nxt - start
            if skip < block.size:
                if skip or block.head:
                    self._push(bytes(block.view(skip)))    # one copy, so the headroom is not pinned
                else:
                    self._push_block(block.buf)            # the block is ours and done with: as it is
                nxt = start + block.size
            self.ooo_bytes -= block.size
            self._forget(start)
            reached += 1
        if reached:
            del starts[:reached]
        return self._seq(nxt)

    # --- out of order --------------------------------------------------------------------
    def reorders_sack(self, seq: int, size: int) -> bool:
        """Would queueing [seq, seq + size) change which blocks lead the SACK list, as Linux
        sees it (tcp_sack_new_ofo_skb, its four-entry array): True when it grows a block
        older than the two most recently changed, or makes a new block (or grows one older
        than the four) while two or more are held.  Growing either of the two most recent
        moves nothing past them."""
        pos = self._base_abs + sq.diff(seq, self._base_seq)
        end = pos + size
        blocks = self._blocks
        for rank, start in enumerate(self._recent[:TCP_NUM_SACKS]):
            if start <= end and pos <= start + blocks[start].size:
                return rank >= 2
        return len(self.ooo_starts) >= 2

    def insert_ooo(self, seq: int, data: memoryview | bytes, rcv_nxt: int,
                   stats: OooCounters | None = None) -> bool:
        """Keep a segment that starts beyond RCV.NXT (already trimmed to the window).
        Returns False when it was dropped because it would need a block beyond the limit
        (counted in stats.ofo_dropped); pruning a higher block to make room for it counts
        in stats.ofo_pruned."""
        self.dup_range = None
        if not data:
            return True
        base = self._rebase(rcv_nxt)
        s = base + sq.diff(seq, rcv_nxt)
        e = s + len(data)
        starts, blocks = self.ooo_starts, self._blocks
        if starts and self._recent and self._recent[0] == starts[-1]:
            # the commonest case on a lossy path: the sender's next segment extends the
            # highest block, the one that grew last (nothing above it to merge with)
            last = starts[-1]
            block = blocks[last]
            if last + block.size == s:
                block.append(data)
                self.ooo_bytes += e - s
                if not self.sack_fresh:
                    self.sack_fresh = 1
                    if self.sack_once:
                        self.sack_once -= 1
                return True
        # the blocks it touches (overlapping or adjacent) are starts[first:last]
        first = bisect_right(starts, s) - 1
        if first < 0 or starts[first] + blocks[starts[first]].size < s:
            first += 1
        last = bisect_right(starts, e)
        if first == last:
            return self._new_block(first, s, data, stats)
        self._note_overlap(first, last, s, e)
        if last - first == 1:
            start = starts[first]
            block = blocks[start]
            end = start + block.size
            if start <= s and e <= end:                  # a duplicate of what we hold
                self._touch(start)
                return True
            if start <= s:                               # the usual case: extends a block's tail
                tail = memoryview(data)[end - s:]
                block.append(tail)
                self.ooo_bytes += len(tail)
                self._touch(start)
                return True
            if e <= end:                                 # reordering: the segment just before a block
                self._extend_front(first, start, block, s, data)
                return True
        elif last - first == 2 and starts[first] <= s and e <= starts[first + 1] + blocks[starts[first + 1]].size:
            self._bridge(first, s, data)                 # a retransmission or late one fills a gap
            return True
        self._merge(first, last, s, e, data)
        return True

    def _note_overlap(self, first: int, last: int, s: int, e: int) -> None:
        """dup_range: the lowest part of [s, e) that the blocks starts[first:last] already
        hold -- what Linux's tcp_data_queue_ofo D-SACKs for a segment overlapping the queue
        (all of it, a "partial overlap" with the block before, or a block it covers; a
        second overlap is not contiguous with the first, so tcp_dsack_extend leaves it)."""
        blocks = self._blocks
        for start in self.ooo_starts[first:last]:
            lo, hi = max(s, start), min(e, start + blocks[start].size)
            if lo < hi:
                self.dup_range = (self._seq(lo), self._seq(hi))
                return

    # _merge's two commonest cases without its general bookkeeping (a lossy, reordering path
    # makes one of them every third segment): the same bytes moved, small into large
    def _extend_front(self, index: int, start: int, block: _OooBlock, s: int, data: memoryview | bytes) -> None:
        """[s, e) ends inside the block at `start` and begins before it."""
        self.ooo_headroom -= block.head
        block.prepend(memoryview(data)[:start - s])
        self.ooo_headroom += block.head
        self.ooo_bytes += start - s
        self.ooo_starts[index] = s
        blocks = self._blocks
        del blocks[start]
        blocks[s] = block
        self._forget(start)
        self._touch(s)

    def _bridge(self, index: int, s: int, data: memoryview | bytes) -> None:
        """[s, e) covers the gap between blocks `index` and `index + 1`, inside their span."""
        starts, blocks = self.ooo_starts, self._blocks
        left_start, right_start = starts[index], starts[index + 1]
        left, right = blocks[left_start], blocks.pop(right_start)
        left_end = left_start + len(left)
        gap = memoryview(data)[left_end - s:right_start - s]
        self.ooo_headroom -= left.head + right.head
        if len(left) >= len(right):
            left.append(gap)
            left.append(right.view())
        else:
            right.prepend(gap)
            right.prepend(left.view())
            blocks[left_start] = left = right
        self.ooo_headroom += left.head
        self.ooo_bytes += right_start - left_end
        del starts[index + 1]
        self._forget(right_start)
        self._touch(left_start)

    def _new_block(self, index: int, s: int, data: memoryview | bytes, stats: OooCounters | None) -> bool:
        starts = self.ooo_starts
        if starts is _NO_STARTS:                     # the first block: the queue's own containers
            starts = self.ooo_starts = []
            self._blocks, self._recent = {}, []
        limit = self.ooo_block_limit()
        if len(starts) >= limit:
            # keep the `limit` lowest blocks of those held and the new one: prune the far end
            # (the least useful data, Linux tcp_prune_ofo_queue), or drop the new block when
            # it is not among them (Linux TCPOFODrop)
            keep = limit - 1 if index < limit else limit
            if len(starts) > keep:
                while len(starts) > keep:
                    self._drop_last()
                if stats is not None:
                    stats.ofo_pruned += 1
            if index >= limit:
                if stats is not None:
                    stats.ofo_dropped += 1
                return False
        starts.insert(index, s)
        self._blocks[s] = _OooBlock(data)
        self.ooo_bytes += len(data)
        self._touch(s)
        return True

    def _merge(self, first: int, last: int, s: int, e: int, data: memoryview | bytes) -> None:
        """Join the segment [s, e) with the blocks starts[first:last] it touches, copying
        into the largest of them (small into large: each byte moves O(log n) times)."""
        starts, blocks = self.ooo_starts, self._blocks
        touched = [(start, blocks.pop(start)) for start in starts[first:last]]
        host_at = max(range(len(touched)), key=lambda k: len(touched[k][1]))
        host_start, host = touched[host_at]
        lo = min(s, touched[0][0])
        hi = max(e, touched[-1][0] + len(touched[-1][1]))
        old_bytes = sum(len(b) for _, b in touched)
        mv = memoryview(data)
        # what goes in front of the host, [lo, host_start), and behind it, [host_end, hi)
        front = _pieces(mv, s, lo, host_start, touched[:host_at])
        back = _pieces(mv, s, host_start + len(host), hi, touched[host_at + 1:])
        self.ooo_headroom -= sum(block.head for _, block in touched)
        if front:
            host.prepend(b"".join(front))
        self.ooo_headroom += host.head
        for piece in back:
            host.append(piece)
        for start, _ in touched:
            self._forget(start)
        starts[first:last] = [lo]
        blocks[lo] = host
        self.ooo_bytes += (hi - lo) - old_bytes
        self._touch(lo)

    def _drop_last(self) -> int:
        start = self.ooo_starts.pop()
        block = self._blocks.pop(start)
        self.ooo_bytes -= block.size
        self.ooo_headroom -= block.head
        self._forget(start)
        return block.size

    def prune_ooo(self, goal_bytes: int | None = None, stats: OooCounters | None = None) -> int:
        """Drop out-of-order blocks from the highest sequence number down, as Linux's
        tcp_prune_ofo_queue does under memory pressure: the data furthest from RCV.NXT is
        the least useful, and the sender still holds it (RFC 2018 §8 lets a receiver
        renege on SACKed data; the dropped blocks are simply no longer reported).

        Drops whole blocks until at least `goal_bytes` bytes of data are freed, or the
        whole queue when `goal_bytes` is None; returns the bytes freed (0 if none).  When
        it freed something and `stats` is given, counts one stats.ofo_pruned (one prune
        event, like Linux's OfoPruned).  In-order data, RCV.NXT and the offered window are
        left alone.  O(blocks dropped)."""
        freed = 0
        while self.ooo_starts and (goal_bytes is None or freed < goal_bytes):
            freed += self._drop_last()
        if freed and stats is not None:
            stats.ofo_pruned += 1
        return freed

    # --- SACK blocks (RFC 2018 §4) -----------------------------------------------------------
    def sack_blocks(self, limit: int) -> tuple[tuple[int, int], ...]:
        """RFC 2018 §4: the block holding the most recently received segment first, then
        the most recently reported others; then, to report as many distinct blocks as
        possible, the lowest ones.  O(limit), whatever the queue's size."""
        out: list[tuple[int, int]] = []
        blocks = self._blocks
        shift = self._base_seq - self._base_abs          # _seq(p) = (p + shift) mod 2**32, inlined
        for start in self._recent:
            out.append(((start + shift) & sq.MASK, (start + blocks[start].size + shift) & sq.MASK))
            if len(out) == limit:
                return tuple(out)
        for start in self.ooo_starts[:limit + len(self._recent)]:
            if start not in self._recent:
                out.append(((start + shift) & sq.MASK, (start + blocks[start].size + shift) & sq.MASK))
                if len(out) == limit:
                    break
        return tuple(out)

    def sack_fresh_after(self, seq: int, size: int) -> tuple[int, int]:
        """(sack_fresh, sack_once) once [seq, seq + size) is queued: the blocks it touches
        (overlaps or abuts) become one block at the front, changed; O(sack_fresh + sack_once)."""
        pos = self._base_abs + sq.diff(seq, self._base_seq)
        end = pos + size
        fresh, once = self.sack_fresh, self.sack_once
        blocks = self._blocks
        for rank, start in enumerate(self._recent[:fresh + once]):
            if start <= end and pos <= start + blocks[start].size:
                if rank < self.sack_fresh:
                    fresh -= 1
                else:
                    once -= 1
        return fresh + 1, once

    def sack_reported(self) -> None:
        """A segment carried the SACK list (the first blocks of _recent)."""
        self.sack_once = self.sack_fresh
        self.sack_fresh = 0

    def _touch(self, start: int) -> None:
        """The block at `start` changed: first in the SACK order, and unreported."""
        self._forget(start)
        recent = self._recent
        self.sack_fresh += 1
        recent.insert(0, start)
        del recent[SACK_RECENT:]
        if self.sack_fresh > len(recent):
            self.sack_fresh, self.sack_once = len(recent), 0
        elif self.sack_fresh + self.sack_once > len(recent):
            self.sack_once = len(recent) - self.sack_fresh

    def _forget(self, start: int) -> None:
        recent = self._recent
        if start in recent:
            rank = recent.index(start)
            if rank < self.sack_fresh:
                self.sack_fresh -= 1
            elif rank < self.sack_fresh + self.sack_once:
                self.sack_once -= 1
            del recent[rank]

    def clear(self) -> None:
        self._chunks.clear()
        self._first = self._skip = self.queued = 0
        self.ooo_starts, self._blocks, self._recent = _NO_STARTS, _NO_BLOCKS, _NO_RECENT
        self.sack_fresh = self.sack_once = 0
        self.ooo_bytes = 0
        self.ooo_headroom = 0


class Scoreboard:
    """The sender's record of SACKed ranges above SND.UNA (RFC 6675 §3).

    Two parallel sorted lists of range edges, in absolute positions (a base sequence
    number moving with SND.UNA, as in RecvBuffer), disjoint and not adjacent: updates and
    queries bisect, O(log n) plus the ranges a block merges.  At most `max_ranges`
    ranges (SACK_MAX_RANGES): a block that would add one more is ignored and counted
    (sack_blocks_ignored) -- the SACK-panic class (CVE-2019-11477/8) fragmented Linux's
    retransmit queue with tiny blocks.  Ignoring a block only costs a retransmission the
    receiver did not need: the scoreboard is advisory (RFC 6675 §1)."""
    __slots__ = ("max_ranges", "sacked", "lefts", "_rights", "_above", "_base_seq", "_base_abs")

    def __init__(self, max_ranges: int = SACK_MAX_RANGES) -> None:
        self.max_ranges = max_ranges
        self.sacked = 0                               # octets SACKed in all
        # the ranges' left edges (a plain truth test of it, `if sb.lefts`, is the per-segment
        # "anything SACKed?" without a Python-level __len__) and right edges: one shared empty
        # list until the first range (_add alone adds to an empty scoreboard): an idle
        # connection holds none of its own
        self.lefts: list[int] = _NO_RANGES
        self._rights: list[int] = _NO_RANGES
        self._above: tuple[int, int] | None = None    # the last sacked_above query and its answer
        self._base_seq = 0
        self._base_abs = 0

    def __len__(self) -> int:
        return len(self.lefts)

    @property
    def blocks(self) -> list[tuple[int, int]]:
        """The ranges as (left, right) sequence numbers, ascending -- O(n), for tests."""
        return [(self._seq(left), self._seq(right)) for left, right in zip(self.lefts, self._rights, strict=True)]

    @property
    def high_sack(self) -> int | None:
        """The highest SACKed sequence number plus one (RFC 6675 HighACK's companion)."""
        return self._seq(self._rights[-1]) if self._rights else None

    def _rebase(self, una: int) -> int:
        self._base_abs += sq.diff(una, self._base_seq)
        self._base_seq = una
        return self._base_abs

    def _pos(self, s: int) -> int:
        return self._base_abs + sq.diff(s, self._base_seq)

    def _seq(self, pos: int) -> int:
        return sq.add(self._base_seq, pos - self._base_abs)

    def update(self, sacks: tuple[tuple[int, int], ...], una: int, snd_max: int,
               stats: SackCounters | None = None) -> bool:
        """Merge the SACK blocks of one ACK; returns True if something new was SACKed.
        Blocks are checked first (RFC 2018 §8, RFC 2883, RFC 6675 §5.1; Linux
        tcp_is_sackblock_valid): empty, inverted or beyond SND.MAX -> sack_blocks_invalid;
        wholly at or below SND.UNA (a D-SACK, or stale) -> sack_blocks_old; both carry
        nothing for the scoreboard.  A block straddling SND.UNA is clipped to it."""
        assert self is not NO_SCOREBOARD, "a connection makes its own scoreboard at its first SACK"
        base = self._rebase(una)
        span = sq.diff(snd_max, una)
        before = self.sacked
        for left, right in sacks:
            lo, hi = sq.diff(left, una), sq.diff(right, una)
            if hi <= lo or hi > span:
                if stats is not None:
                    stats.sack_blocks_invalid += 1
                continue
            if hi <= 0:
                if stats is not None:
                    stats.sack_blocks_old += 1
                continue
            if not self._add(base + max(lo, 0), base + hi) and stats is not None:
                stats.sack_blocks_ignored += 1
        return self.sacked > before

    def _add(self, left: int, right: int) -> bool:
        """Merge [left, right); False if it would be one range too many (ignored)."""
        lefts, rights = self.lefts, self._rights
        if lefts is _NO_RANGES:
            self.lefts = lefts = []
            self._rights = rights = []
        first = bisect_left(rights, left)             # ranges ending at or after `left`...
        if first < len(lefts) and lefts[first] <= left and right <= rights[first]:
            return True                                # inside one range: nothing new (most blocks of an ACK)
        last = bisect_right(lefts, right)             # ...and starting at or before `right`
        if first == last:
            if len(lefts) >= self.max_ranges:
                return False
            lefts.insert(first, left)
            rights.insert(first, right)
            self.sacked += right - left
        else:
            new_left = min(left, lefts[first])
            new_right = max(right, rights[last - 1])
            covered = sum(rights[first:last]) - sum(lefts[first:last])
            lefts[first:last] = [new_left]
            rights[first:last] = [new_right]
            self.sacked += (new_right - new_left) - covered
        self._above = None
        return True

    def prune(self, una: int) -> None:
        """Forget what the cumulative ACK `una` covers (nothing to do while nothing is
        SACKed: the next update rebases)."""
        if not self.lefts:
            return
        edge = self._rebase(una)
        lefts, rights = self.lefts, self._rights
        gone = bisect_right(rights, edge)
        if gone:
            self.sacked -= sum(rights[:gone]) - sum(lefts[:gone])
            del lefts[:gone]
            del rights[:gone]
            self._above = None
        if lefts and lefts[0] < edge:
            self.sacked -= edge - lefts[0]
            lefts[0] = edge
            self._above = None

    def clear(self) -> None:
        if self.lefts is _NO_RANGES:
            return                                    # empty (NO_SCOREBOARD stays unwritten)
        self.lefts = self._rights = _NO_RANGES
        self._above = None
        self.sacked = 0

    def _holding(self, pos: int) -> int:
        """The index of the range holding `pos`, or -1."""
        k = bisect_right(self.lefts, pos) - 1
        return k if k >= 0 and pos < self._rights[k] else -1

    def is_sacked(self, s: int) -> bool:
        return self._holding(self._pos(s)) >= 0

    def sacked_end(self, s: int) -> int | None:
        """The right edge of the SACKed range holding `s`, if one does."""
        k = self._holding(self._pos(s))
        return self._seq(self._rights[k]) if k >= 0 else None

    def next_hole(self, start: int, una: int, end: int | None = None) -> tuple[int, int] | None:
        """The first un-SACKed range at or after `start` and below the highest SACK (or
        below `end`, when the tail above the highest SACK counts as lost too)."""
        if not self.lefts and end is None:
            return None
        if sq.lt(start, una):
            start = una
        pos = self._pos(start)
        k = bisect_right(self.lefts, pos)            # the first range starting above `pos`
        if k and pos < self._rights[k - 1]:
            pos = self._rights[k - 1]                 # inside a range: the hole starts at its end
        if k < len(self.lefts):
            return self._seq(pos), self._seq(self.lefts[k])
        if end is not None and sq.lt(self._seq(pos), end):
            return self._seq(pos), end
        return None

    def sacked_above(self, s: int) -> int:
        """Octets SACKed above `s`: O(log n) to find the range, then a C-level sum over the
        shorter side (at most n/2 ranges), remembered until the scoreboard changes."""
        if not self.lefts:
            return 0
        pos = self._pos(s)
        if self._above is not None and self._above[0] == pos:
            return self._above[1]
        lefts, rights = self.lefts, self._rights
        k = bisect_right(rights, pos)                 # ranges k.. end above `pos`
        if k == len(rights):
            above = 0
        elif k < len(rights) // 2:
            above = self.sacked - (sum(rights[:k]) - sum(lefts[:k]))
        else:
            above = sum(rights[k:]) - sum(lefts[k:])
        if k < len(rights) and lefts[k] < pos:
            above -= pos - lefts[k]                   # range k straddles `pos`
        self._above = (pos, above)
        return above


# every connection's scoreboard until its first ACK with SACK blocks (input.py): never
# written (update refuses it; prune and clear leave an empty scoreboard alone) -- an idle
# connection holds none of its own (issue 15: the idle heap)
NO_SCOREBOARD = frozen(Scoreboard(), "NO_SCOREBOARD")
