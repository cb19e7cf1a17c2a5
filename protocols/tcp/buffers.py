"""The two byte queues of a connection.

SendBuffer holds bytes from SND.UNA on: unacknowledged, then not yet sent.  RecvBuffer
holds in-order bytes the application has not read, plus out-of-order segments waiting
for the hole before them (RFC 9293 §3.10.7.4 "segment text"; RFC 2018 for SACK).
Both consume from a head offset and compact lazily, so an ACK or a read never moves
megabytes (an amortised O(1) queue over one bytearray).
"""
from __future__ import annotations

from . import seq as sq

COMPACT_MIN = 1 << 16
# What one out-of-order block costs beyond its payload, for the memory budget (memory.py):
# its list and bytearray headers and allocator slack (sys.getsizeof: 56 + 72 + 57), rounded
# up.  Linux charges each skb its truesize, not its payload, for the same reason.
OOO_BLOCK_OVERHEAD = 192


class ByteQueue:
    __slots__ = ("data", "head")

    def __init__(self) -> None:
        self.data = bytearray()
        self.head = 0

    def __len__(self) -> int:
        return len(self.data) - self.head

    def consume(self, n: int) -> None:
        self.head += n
        if self.head == len(self.data):
            self.data = bytearray()                 # drained: give the memory back (O(1))
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
    __slots__ = ("capacity",)

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def space(self) -> int:
        return max(0, self.capacity - len(self))

    def write(self, data: memoryview) -> int:
        n = min(len(data), self.space())
        if n:
            self.data += data[:n]
        return n

    def clear(self) -> None:
        self.data = bytearray()
        self.head = 0


class RecvBuffer(ByteQueue):
    """`ooo` is a list of [seq, bytearray] blocks, sorted, disjoint and not adjacent."""
    __slots__ = ("capacity", "ooo", "ooo_bytes", "recent")

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.ooo: list[list] = []
        self.ooo_bytes = 0
        self.recent: list[int] = []      # block start seqs, most recently changed first (SACK order)

    def free(self) -> int:
        return max(0, self.capacity - len(self) - self.ooo_bytes)

    def held(self) -> int:
        """Bytes held for the memory budget: the in-order queue and every out-of-order
        block with its overhead (OOO_BLOCK_OVERHEAD)."""
        return len(self.data) + self.ooo_bytes + OOO_BLOCK_OVERHEAD * len(self.ooo)

    def prune_ooo(self) -> int:
        """Drop the out-of-order queue (memory pressure: Linux tcp_prune_ofo_queue; RFC 2018
        §8 lets a receiver renege on what it SACKed); returns the bytes freed."""
        freed = self.ooo_bytes + OOO_BLOCK_OVERHEAD * len(self.ooo)
        self.ooo.clear()
        self.ooo_bytes = 0
        self.recent.clear()
        return freed

    def read(self, n: int, peek: bool = False) -> bytes:
        n = min(n, len(self))
        out = bytes(self.view(0, n))
        if not peek:
            self.consume(n)
        return out

    def append_in_order(self, data: memoryview | bytes, rcv_nxt: int) -> int:
        """Append in-sequence `data`, then pull any out-of-order blocks it reached.
        Returns the new RCV.NXT."""
        self.data += data
        rcv_nxt = sq.add(rcv_nxt, len(data))
        while self.ooo:
            start, block = self.ooo[0]
            skip = sq.diff(rcv_nxt, start)
            if skip < 0:
                break
            self.ooo.pop(0)
            self.ooo_bytes -= len(block)
            if skip < len(block):
                self.data += memoryview(block)[skip:]
                rcv_nxt = sq.add(start, len(block))
            self._forget(start)
        return rcv_nxt

    def insert_ooo(self, seq: int, data: memoryview | bytes, rcv_nxt: int) -> None:
        """Keep a segment that starts beyond RCV.NXT (already trimmed to the window)."""
        s = sq.diff(seq, rcv_nxt)
        e = s + len(data)
        blocks = self.ooo
        i = 0
        while i < len(blocks) and sq.diff(blocks[i][0], rcv_nxt) + len(blocks[i][1]) < s:
            i += 1
        j = i
        while j < len(blocks) and sq.diff(blocks[j][0], rcv_nxt) <= e:
            j += 1
        touched = blocks[i:j]
        if len(touched) == 1:
            bs = sq.diff(touched[0][0], rcv_nxt)
            be = bs + len(touched[0][1])
            if bs <= s and e <= be:                     # a duplicate of what we hold
                self._touch(touched[0][0])
                return
            if bs <= s:                                 # the usual case: extends a block's tail
                tail = memoryview(data)[be - s:]
                touched[0][1] += tail
                self.ooo_bytes += len(tail)
                self._touch(touched[0][0])
                return
        lo = min([s] + [sq.diff(b[0], rcv_nxt) for b in touched])
        hi = max([e] + [sq.diff(b[0], rcv_nxt) + len(b[1]) for b in touched])
        merged = bytearray(hi - lo)
        for start, block in touched:
            off = sq.diff(start, rcv_nxt) - lo
            merged[off:off + len(block)] = block
            self.ooo_bytes -= len(block)
            self._forget(start)
        merged[s - lo:e - lo] = data
        new_start = sq.add(rcv_nxt, lo)
        blocks[i:j] = [[new_start, merged]]
        self.ooo_bytes += len(merged)
        self._touch(new_start)

    def sack_blocks(self, limit: int) -> tuple[tuple[int, int], ...]:
        """RFC 2018 §4: the most recently changed block first, then the others."""
        by_start = {b[0]: b for b in self.ooo}
        out = []
        for start in self.recent:
            b = by_start.get(start)
            if b is not None:
                out.append((start, sq.add(start, len(b[1]))))
                if len(out) == limit:
                    break
        return tuple(out)

    def _touch(self, start: int) -> None:
        self._forget(start)
        self.recent.insert(0, start)
        del self.recent[8:]

    def _forget(self, start: int) -> None:
        if start in self.recent:
            self.recent.remove(start)

    def clear(self) -> None:
        self.data = bytearray()
        self.head = 0
        self.ooo.clear()
        self.ooo_bytes = 0
        self.recent.clear()


class Scoreboard:
    """The sender's record of SACKed ranges above SND.UNA (RFC 6675 §3)."""
    __slots__ = ("blocks", "sacked", "high_sack")

    def __init__(self) -> None:
        self.blocks: list[tuple[int, int]] = []
        self.sacked = 0
        self.high_sack: int | None = None

    def update(self, sacks: tuple[tuple[int, int], ...], una: int, snd_max: int) -> bool:
        """Merge the SACK blocks of one ACK; returns True if something new was SACKed."""
        before = self.sacked
        for left, right in sacks:
            # RFC 2018 §8 / RFC 6675: ignore blocks outside (SND.UNA, SND.MAX] (incl. D-SACK)
            if not (sq.lt(una, right) and sq.le(right, snd_max) and sq.lt(left, right)):
                continue
            if sq.lt(left, una):
                left = una
            self._add(left, right, una)
        self.prune(una)
        return self.sacked > before

    def _add(self, left: int, right: int, una: int) -> None:
        out: list[tuple[int, int]] = []
        for b in self.blocks:
            if sq.lt(b[1], left) or sq.lt(right, b[0]):
                out.append(b)
            else:
                left = b[0] if sq.lt(b[0], left) else left
                right = b[1] if sq.gt(b[1], right) else right
        out.append((left, right))
        out.sort(key=lambda b: sq.diff(b[0], una))
        self.blocks = out
        self._recount()

    def prune(self, una: int) -> None:
        kept = []
        for left, right in self.blocks:
            if sq.le(right, una):
                continue
            kept.append((una if sq.lt(left, una) else left, right))
        self.blocks = kept
        self._recount()

    def _recount(self) -> None:
        self.sacked = sum(sq.diff(r, l) for l, r in self.blocks)
        self.high_sack = self.blocks[-1][1] if self.blocks else None

    def clear(self) -> None:
        self.blocks = []
        self.sacked = 0
        self.high_sack = None

    def is_sacked(self, s: int) -> bool:
        return any(sq.le(l, s) and sq.lt(s, r) for l, r in self.blocks)

    def next_hole(self, start: int, una: int, end: int | None = None) -> tuple[int, int] | None:
        """The first un-SACKed range at or after `start` and below the highest SACK (or
        below `end`, when the tail above the highest SACK counts as lost too)."""
        if self.high_sack is None and end is None:
            return None
        if sq.lt(start, una):
            start = una
        for l, r in self.blocks:
            if sq.lt(start, l):
                return start, l
            if sq.lt(start, r):
                start = r
        if end is not None and sq.lt(start, end):
            return start, end
        return None

    def sacked_end(self, s: int) -> int | None:
        """The right edge of the SACKed block holding `s`, if one does."""
        for l, r in self.blocks:
            if sq.le(l, s) and sq.lt(s, r):
                return r
        return None

    def sacked_above(self, s: int) -> int:
        return sum(sq.diff(r, l if sq.gt(l, s) else s) for l, r in self.blocks if sq.gt(r, s))
