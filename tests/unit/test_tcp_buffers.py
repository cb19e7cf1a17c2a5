"""The byte queues of a connection (protocols/tcp/buffers.py): the send buffer, the
receive buffer's reassembly of out-of-order segments (RFC 9293 §3.10.7.4 "segment text")
with the SACK blocks it reports (RFC 2018 §4), and the sender's SACK scoreboard (RFC 6675 §3)."""
from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.tcp import seq as sq
from protocols.tcp.buffers import (
    COALESCE_BELOW,
    COMPACT_MIN,
    OOO_MAX_BLOCKS,
    OOO_MIN_BLOCKS,
    PIN_SLACK,
    SACK_RECENT,
    TAIL_MAX,
    RecvBuffer,
    Scoreboard,
    SendBuffer,
)
from protocols.tcp.tcp import TcpStats

FAST = settings(max_examples=150, deadline=None)


# --- SendBuffer ------------------------------------------------------------------------------
def test_send_buffer_takes_what_fits() -> None:
    """SEND queues as much as the buffer holds (backpressure, no unbounded queue)."""
    sb = SendBuffer(10)
    assert sb.write(memoryview(b"abcdefgh")) == 8
    assert sb.write(memoryview(b"ijklmn")) == 2
    assert sb.space() == 0 and sb.write(memoryview(b"x")) == 0
    assert bytes(sb.view(0, 10)) == b"abcdefghij"
    sb.consume(4)                                         # SND.UNA advanced by 4
    assert len(sb) == 6 and sb.space() == 4
    assert bytes(sb.view(2, 3)) == b"ghi"


def test_send_buffer_compacts_lazily_without_losing_bytes() -> None:
    sb = SendBuffer(1 << 20)
    data = bytes(random.Random(3).randbytes(3 * COMPACT_MIN))
    sb.write(memoryview(data))
    consumed = 0
    for step in (1000, COMPACT_MIN, COMPACT_MIN + 7, 5):
        sb.consume(step)
        consumed += step
        assert bytes(sb.view(0, 64)) == data[consumed:consumed + 64]
    assert sb.head < COMPACT_MIN + 8                      # it did compact


# --- RecvBuffer: the in-order chunk queue (issue 15) ----------------------------------------------
HEADERS = b"h" * 52                                       # an IPv4 + TCP header with timestamps


def frame_payload(payload: bytes) -> memoryview:
    """A payload as the TUN driver hands it up: a view into the frame's own bytes."""
    return memoryview(HEADERS + payload)[len(HEADERS):]


def test_a_frame_payload_is_queued_without_a_copy_and_a_whole_chunk_read_as_is() -> None:
    rcv = RecvBuffer(1 << 20)
    payload = bytes(range(256)) * 8
    view = frame_payload(payload)
    rcv.append_in_order(view, 0)
    held = rcv._chunks[-1]
    assert isinstance(held, memoryview) and held.obj is view.obj      # the frame itself, no copy
    rcv.append_in_order(payload, len(payload))                         # a bytes is kept as it is
    assert rcv.read(len(payload)) == payload
    assert rcv.read(len(payload)) is payload                           # one whole bytes chunk: no copy either


def test_a_payload_in_a_much_larger_buffer_is_copied_not_pinned() -> None:
    rcv = RecvBuffer(1 << 20)
    big = bytes(64 << 10)
    rcv.append_in_order(memoryview(big)[:COALESCE_BELOW + 10], 0)       # pins 64 KiB for 522 bytes
    assert not isinstance(rcv._chunks[-1], memoryview)
    ok = memoryview(bytes(2 * 1000 + PIN_SLACK))[:1000]                # at the bound: kept by reference
    rcv.append_in_order(ok, COALESCE_BELOW + 10)
    assert isinstance(rcv._chunks[-1], memoryview)


def test_a_payload_in_a_mutable_buffer_is_copied_once() -> None:
    """A bytearray may be reused or resized by whoever handed it up (loopback, reassembly):
    the queue must not see later changes, nor stop the buffer from being resized."""
    rcv = RecvBuffer(1 << 20)
    source = bytearray(b"x" * 2000)
    rcv.append_in_order(memoryview(source), 0)
    small = bytearray(b"y" * 10)
    rcv.append_in_order(small, 2000)
    source[:] = b"z" * 3000                                            # resizing must still work
    small[0] = 0
    assert rcv.read(5000) == b"x" * 2000 + b"y" * 10


def test_tiny_segments_are_coalesced_so_each_byte_does_not_cost_a_chunk() -> None:
    """1-byte segments must not each cost a view and a pinned frame (~250 bytes) while the
    window counts one byte each: they share bytearray chunks of up to TAIL_MAX bytes."""
    rcv = RecvBuffer(1 << 20)
    n = 3 * TAIL_MAX
    for k in range(n):
        rcv.append_in_order(frame_payload(bytes([k & 0xFF])), k)
    assert len(rcv) == rcv.held() == n
    assert len(rcv._chunks) <= n // TAIL_MAX + 1
    assert rcv.read(n) == bytes(k & 0xFF for k in range(n))
    assert rcv.held() == 0 and rcv._chunks == []                       # drained: everything given back


def test_held_counts_a_partly_read_chunk_until_it_is_done() -> None:
    rcv = RecvBuffer(1 << 20)
    rcv.append_in_order(frame_payload(b"a" * 1000), 0)
    rcv.append_in_order(frame_payload(b"b" * 1000), 1000)
    assert rcv.read(600) == b"a" * 600
    assert len(rcv) == 1400 and rcv.held() == 2000 and rcv.free() == (1 << 20) - 1400
    assert rcv.read(500) == b"a" * 400 + b"b" * 100
    assert rcv.held() == 1000


def test_chunk_list_is_compacted_when_a_reader_lags() -> None:
    rcv = RecvBuffer(1 << 30)
    seq = 0
    for _ in range(2000):
        rcv.append_in_order(frame_payload(b"q" * 1000), seq)
        seq += 1000
        rcv.read(999)                                     # never drains: one byte more each time
    assert len(rcv) == 2000 and len(rcv._chunks) - rcv._first <= 3
    assert len(rcv._chunks) <= 2 * 64 + 3                 # dead slots compacted away


_SOURCES = st.sampled_from(["bytes", "frame", "bytearray", "view_of_bytearray", "big_bytes"])
_OPS = st.lists(st.one_of(
    st.tuples(st.just("append"), _SOURCES, st.integers(0, 3000)),
    st.tuples(st.just("read"), st.booleans(), st.integers(0, 5000)),
    st.tuples(st.just("peek_at"), st.integers(0, 4000), st.integers(0, 4000)),
    st.tuples(st.just("consume"), st.booleans(), st.integers(0, 4000)),
), max_size=60)


@FAST
@given(ops=_OPS, seed=st.integers(0, 2**32 - 1))
def test_chunk_queue_matches_a_bytes_model(ops: list[tuple[str, object, int]], seed: int) -> None:
    """Random appends of every kind of source, reads, peeks and consumes, compared with a
    plain bytes model; sources are scribbled over after they were queued."""
    rnd = random.Random(seed)
    rcv = RecvBuffer(1 << 30)
    model = b""
    rcv_nxt = appended = 0
    mutable: list[bytearray] = []
    for op, arg, n in ops:
        if op == "append":
            payload = rnd.randbytes(n)
            data: memoryview | bytes | bytearray
            if arg == "bytes":
                data = payload
            elif arg == "frame":
                data = frame_payload(payload)
            elif arg == "bytearray":
                data = bytearray(payload)
                mutable.append(data)
            elif arg == "view_of_bytearray":
                source = bytearray(b"hdr" + payload)
                mutable.append(source)
                data = memoryview(source)[3:]
            else:
                data = memoryview(payload + bytes(3 * n + PIN_SLACK))[:n]
            rcv_nxt = rcv.append_in_order(data, rcv_nxt)
            model += payload
            appended += n
            del data
        elif op == "read":
            out = rcv.read(n, peek=bool(arg))
            assert out == model[:n]
            if not arg:
                model = model[n:]
        elif op == "peek_at":
            assert isinstance(arg, int)
            assert rcv.peek_at(arg, n) == model[arg:arg + n]
        else:
            k = n if arg else len(model)
            rcv.consume(k)
            model = model[k:]
        for source in mutable:                            # whoever handed them up reuses them
            source[:] = b"!" * (len(source) + 1)
        assert len(rcv) == len(model) and rcv_nxt == appended
        assert rcv.held() >= len(rcv) and rcv.free() == (1 << 30) - len(model)
        if not model:
            assert rcv.held() == 0
    assert rcv.read(1 << 20) == model


def test_the_empty_ooo_queue_is_shared_until_a_first_block_and_never_written() -> None:
    """An idle connection does not pay for the out-of-order queue's containers; the first
    block gives the buffer its own, so nothing leaks into another buffer, also after clear()."""
    a, b = RecvBuffer(1 << 20), RecvBuffer(1 << 20)
    assert a.ooo_starts is b.ooo_starts and a._blocks is b._blocks
    a.insert_ooo(100, b"x" * 10, 0)
    assert a.ooo_count == 1 and b.ooo_count == 0 and b.sack_blocks(4) == () and not b._blocks
    a.clear()
    assert a.ooo_count == 0 and a.held() == 0
    a.insert_ooo(50, b"y" * 5, 0)
    b.insert_ooo(70, b"z" * 7, 0)
    assert a.ooo_snapshot() == [(50, b"yyyyy")] and b.ooo_snapshot() == [(70, b"z" * 7)]
    assert RecvBuffer(100).ooo_count == 0 and RecvBuffer(100).prune_ooo() == 0


# --- RecvBuffer: reassembly --------------------------------------------------------------------
class Receiver:
    """RCV.NXT plus a RecvBuffer, fed the way input.py feeds it: trim what is already
    received, append in-order data, keep the rest out of order."""

    def __init__(self, irs: int, capacity: int = 1 << 20, buf: RecvBuffer | None = None) -> None:
        self.rcv_nxt = irs
        self.buf = buf if buf is not None else RecvBuffer(capacity)
        self.stats = TcpStats()

    def segment(self, seqno: int, data: bytes) -> None:
        front = sq.diff(self.rcv_nxt, seqno)
        if front >= len(data):
            return                                        # wholly old
        if front > 0:
            data, seqno = data[front:], self.rcv_nxt
        if seqno == self.rcv_nxt:
            self.rcv_nxt = self.buf.append_in_order(memoryview(data), self.rcv_nxt)
        else:
            self.buf.insert_ooo(seqno, memoryview(data), self.rcv_nxt, self.stats)
        self.check_invariants()

    def check_invariants(self) -> None:
        """`ooo` is sorted, disjoint, not adjacent, beyond RCV.NXT; ooo_bytes is its size."""
        prev_end = None
        for start, block in self.buf.ooo_snapshot():
            assert len(block) > 0
            assert sq.gt(start, self.rcv_nxt)
            if prev_end is not None:
                assert sq.gt(start, prev_end)
            prev_end = sq.add(start, len(block))
        assert self.buf.ooo_bytes == sum(len(b) for _, b in self.buf.ooo_snapshot())
        assert self.buf.ooo_count <= self.buf.ooo_block_limit()
        # every SACK block reported is one held, distinct, the most recent first (RFC 2018 §4)
        held = {(s, sq.add(s, len(b))) for s, b in self.buf.ooo_snapshot()}
        reported = self.buf.sack_blocks(4)
        assert set(reported) <= held and len(set(reported)) == len(reported) == min(4, len(held))

    def ranges(self) -> list[tuple[int, int]]:
        """The out-of-order blocks as (offset from `origin`, length)."""
        return [(sq.diff(s, self.origin), len(b)) for s, b in self.buf.ooo_snapshot()]

    origin = 0


def test_in_order_segments_append() -> None:
    r = Receiver(100)
    r.segment(100, b"hello ")
    r.segment(106, b"world")
    assert r.rcv_nxt == 111 and r.buf.read(100) == b"hello world"


def test_a_lossy_paths_next_segment_extends_the_highest_block() -> None:
    """The sender's next segments beyond a hole extend the highest block in place (the
    commonest out-of-order insertion); the bytes held and charged are the segments'."""
    data = bytes(range(200))
    r = Receiver(1000)
    r.segment(1010, data[10:20])                          # a hole at 1000, then a block
    r.segment(1050, data[50:60])                          # a second hole, the highest block
    for k in range(60, 200, 10):
        r.segment(1000 + k, data[k:k + 10])               # each extends the highest block
        assert r.buf.ooo_bytes == 10 + (k - 40) == sum(len(b) for _, b in r.buf.ooo_snapshot())
    assert [(sq.diff(s, 1000), len(b)) for s, b in r.buf.ooo_snapshot()] == [(10, 10), (50, 150)]
    r.segment(1020, data[20:50])                          # the second hole: one block again
    r.segment(1000, data[:10])                            # the first: all in order
    assert r.rcv_nxt == 1200 and r.buf.ooo_bytes == 0 and r.buf.read(1000) == data


def test_hole_filled_pulls_the_queue() -> None:
    """RFC 9293 §3.10.7.4: segments beyond RCV.NXT are held; when the gap fills, RCV.NXT
    jumps over everything contiguous."""
    r = Receiver(0)
    r.segment(5, b"fghij")
    r.segment(15, b"pqrst")
    assert r.rcv_nxt == 0 and len(r.buf) == 0 and r.buf.ooo_bytes == 10
    r.segment(0, b"abcde")
    assert r.rcv_nxt == 10 and r.buf.ooo_bytes == 5
    r.segment(10, b"klmno")
    assert r.rcv_nxt == 20 and r.buf.read(100) == b"abcdefghijklmnopqrst"
    assert r.buf.ooo_count == 0 and r.buf.ooo_bytes == 0


def test_overlaps_are_merged() -> None:
    """Overlapping and duplicate out-of-order segments: front overlap, tail overlap, one
    covering several blocks, exact duplicates -- the bytes come out once, in order."""
    data = bytes(range(100))
    r = Receiver(1000)
    r.segment(1010, data[10:20])
    r.segment(1015, data[15:25])                          # overlaps the tail
    r.segment(1005, data[5:12])                           # overlaps the front
    r.segment(1040, data[40:50])
    r.segment(1060, data[60:70])
    r.segment(1030, data[30:65])                          # swallows two blocks
    r.segment(1040, data[40:50])                          # a duplicate
    r.segment(1025, data[25:30])                          # adjacent on both sides: joins
    assert [(s - 1000, len(b)) for s, b in r.buf.ooo_snapshot()] == [(5, 65)]
    r.segment(1000, data[0:8])                            # in order, overlapping the block
    assert r.rcv_nxt == 1070
    r.segment(1060, data[60:100])                         # in order after a partial overlap
    assert r.rcv_nxt == 1100 and r.buf.read(200) == data


def test_reassembly_across_sequence_wrap() -> None:
    """RFC 9293 §3.4: reassembly works across the 2**32 boundary."""
    irs = 0xFFFFFFF0
    data = bytes(range(64))
    r = Receiver(irs)
    r.segment(sq.add(irs, 32), data[32:])
    r.segment(sq.add(irs, 8), data[8:32])
    assert r.buf.ooo_snapshot()[0][0] == sq.add(irs, 8)
    r.segment(irs, data[:8])
    assert r.rcv_nxt == sq.add(irs, 64) and r.buf.read(100) == data


def test_free_counts_out_of_order_bytes() -> None:
    """The window offered covers held out-of-order data too (it occupies the buffer)."""
    buf = RecvBuffer(100)
    buf.insert_ooo(30, memoryview(b"x" * 20), 0)
    assert buf.free() == 80
    buf.append_in_order(memoryview(b"y" * 10), 0)
    assert buf.free() == 70
    assert buf.read(5, peek=True) == b"yyyyy" and buf.free() == 70
    buf.read(10)
    assert buf.free() == 80
    buf.clear()
    assert buf.free() == 100 and buf.ooo_count == 0 and buf.sack_blocks(4) == ()


@st.composite
def segmented(draw: st.DrawFn) -> tuple[int, bytes, list[tuple[int, bytes]]]:
    """A byte stream cut into segments (some overlapping, some duplicated), in any order."""
    data = draw(st.binary(min_size=1, max_size=600))
    irs = draw(st.integers(0, 0xFFFFFFFF))
    cuts = sorted(set(draw(st.lists(st.integers(1, len(data)), max_size=12))) | {0, len(data)})
    segs = []
    for a, b in itertools.pairwise(cuts):
        # stretch some segments backwards/forwards so that they overlap their neighbours
        a2 = max(0, a - draw(st.integers(0, 8)))
        b2 = min(len(data), b + draw(st.integers(0, 8)))
        segs.append((a2, b2))
    segs += draw(st.lists(st.sampled_from(segs), max_size=4))          # retransmissions
    order = draw(st.permutations(segs))
    return irs, data, [(sq.add(irs, a), data[a:b]) for a, b in order]


@FAST
@given(segmented())
def test_any_arrival_order_yields_the_original_bytes(case: tuple[int, bytes, list[tuple[int, bytes]]]) -> None:
    """Reassembly: whatever the order, overlap and duplication of the segments, the
    application reads exactly the original stream, and nothing is left out of order."""
    irs, data, segs = case
    r = Receiver(irs)
    for seqno, chunk in segs:
        r.segment(seqno, chunk)
    assert r.rcv_nxt == sq.add(irs, len(data))
    assert r.buf.read(len(data) + 1) == data
    assert r.buf.ooo_count == 0 and r.buf.ooo_bytes == 0


# --- RecvBuffer: SACK blocks (RFC 2018 §4) --------------------------------------------------------
def test_first_sack_block_is_the_most_recent_segment() -> None:
    """RFC 2018 §4: the first SACK block MUST specify the contiguous block containing the
    segment which triggered this ACK; the rest repeat the most recently reported blocks."""
    r = Receiver(0)
    r.segment(100, b"a" * 10)
    assert r.buf.sack_blocks(4) == ((100, 110),)
    r.segment(300, b"c" * 10)
    assert r.buf.sack_blocks(4) == ((300, 310), (100, 110))
    r.segment(200, b"b" * 10)
    assert r.buf.sack_blocks(4) == ((200, 210), (300, 310), (100, 110))
    r.segment(110, b"a" * 5)                               # extends the oldest block
    assert r.buf.sack_blocks(4) == ((100, 115), (200, 210), (300, 310))


def test_sack_blocks_respect_the_limit() -> None:
    """RFC 2018 §3: at most 4 blocks (3 alongside timestamps) fit in the option space."""
    r = Receiver(0)
    for i in range(6):
        r.segment(100 * (i + 1), b"z" * 10)
    assert r.buf.sack_blocks(3) == ((600, 610), (500, 510), (400, 410))
    assert len(r.buf.sack_blocks(4)) == 4


def test_merged_block_is_reported_once_with_its_new_edges() -> None:
    """RFC 2018 §4: blocks that are subsets of a reported block are not repeated."""
    r = Receiver(0)
    r.segment(100, b"a" * 10)
    r.segment(120, b"b" * 10)
    r.segment(110, b"c" * 10)                              # joins both
    assert r.buf.sack_blocks(4) == ((100, 130),)


def test_sack_block_disappears_once_acknowledged() -> None:
    """RFC 2018 §4: a block at or below RCV.NXT is never reported."""
    r = Receiver(0)
    r.segment(50, b"x" * 10)
    r.segment(200, b"y" * 10)
    r.segment(0, b"w" * 50)
    assert r.rcv_nxt == 60 and r.buf.sack_blocks(4) == ((200, 210),)


# --- Scoreboard (RFC 6675 §3) ----------------------------------------------------------------------
def test_scoreboard_merges_and_counts() -> None:
    sb = Scoreboard()
    assert sb.update(((2000, 3000),), 1000, 10000)
    assert sb.update(((4000, 5000), (2500, 3500)), 1000, 10000)
    assert sb.blocks == [(2000, 3500), (4000, 5000)]
    assert sb.sacked == 2500 and sb.high_sack == 5000
    assert not sb.update(((2000, 3000),), 1000, 10000)    # nothing new
    assert sb.update(((3500, 4000),), 1000, 10000)         # fills the gap between two blocks
    assert sb.blocks == [(2000, 5000)] and sb.sacked == 3000


def test_scoreboard_ignores_invalid_blocks() -> None:
    """RFC 2018 §8 / RFC 6675 §5.1: blocks below SND.UNA (D-SACKs), beyond SND.MAX or
    inverted carry no information for the scoreboard."""
    sb = Scoreboard()
    assert not sb.update(((500, 900),), 1000, 10000)       # D-SACK below SND.UNA
    assert not sb.update(((9000, 11000),), 1000, 10000)    # beyond SND.MAX
    assert not sb.update(((3000, 2000),), 1000, 10000)     # inverted
    assert sb.blocks == [] and sb.high_sack is None
    assert sb.update(((800, 1500),), 1000, 10000)          # straddles SND.UNA: clipped
    assert sb.blocks == [(1000, 1500)]


def test_scoreboard_prunes_on_cumulative_ack() -> None:
    sb = Scoreboard()
    sb.update(((2000, 3000), (4000, 5000)), 1000, 10000)
    sb.prune(2500)
    assert sb.blocks == [(2500, 3000), (4000, 5000)] and sb.sacked == 1500
    sb.prune(5000)
    assert sb.blocks == [] and sb.sacked == 0 and sb.high_sack is None


def test_scoreboard_holes_and_queries() -> None:
    """RFC 6675 §4 NextSeg rule (1): the first un-SACKed range below the highest SACK."""
    sb = Scoreboard()
    sb.update(((2000, 3000), (4000, 5000)), 1000, 10000)
    assert sb.next_hole(1000, 1000) == (1000, 2000)
    assert sb.next_hole(1500, 1000) == (1500, 2000)
    assert sb.next_hole(2000, 1000) == (3000, 4000)
    assert sb.next_hole(3500, 1000) == (3500, 4000)
    assert sb.next_hole(4000, 1000) is None                # nothing SACKed above it
    assert sb.next_hole(500, 1000) == (1000, 2000)         # never below SND.UNA
    assert sb.is_sacked(2000) and sb.is_sacked(2999) and not sb.is_sacked(3000)
    assert sb.sacked_above(2500) == 1500 and sb.sacked_above(0) == 2000
    sb.clear()
    assert sb.next_hole(1000, 1000) is None and sb.sacked == 0


def test_scoreboard_across_sequence_wrap() -> None:
    una = 0xFFFFF000
    sb = Scoreboard()
    sb.update(((sq.add(una, 0x2000), sq.add(una, 0x3000)), (sq.add(una, 0x800), sq.add(una, 0x1000))),
              una, sq.add(una, 0x10000))
    assert sb.blocks == [(sq.add(una, 0x800), sq.add(una, 0x1000)), (sq.add(una, 0x2000), sq.add(una, 0x3000))]
    assert sb.high_sack == sq.add(una, 0x3000) and sb.sacked == 0x1800
    assert sb.next_hole(una, una) == (una, sq.add(una, 0x800))


@FAST
@given(st.lists(st.tuples(st.integers(0, 100), st.integers(1, 20)), max_size=20))
def test_scoreboard_matches_a_set_model(blocks: list[tuple[int, int]]) -> None:
    """Whatever SACK blocks arrive, the scoreboard holds exactly their union (clipped)."""
    una, snd_max = 0xFFFFFFC0, sq.add(0xFFFFFFC0, 120)
    sb = Scoreboard()
    model: set[int] = set()
    for start, length in blocks:
        end = min(start + length, 120)
        if start >= end:
            continue
        sb.update(((sq.add(una, start), sq.add(una, end)),), una, snd_max)
        model |= set(range(start, end))
    assert sb.sacked == len(model)
    assert all(sb.is_sacked(sq.add(una, i)) == (i in model) for i in range(120))
    for (_, r1), (l2, _) in itertools.pairwise(sb.blocks):
        assert sq.lt(r1, l2)                               # disjoint, sorted, not adjacent


# --- RecvBuffer: the out-of-order queue's structure and bounds (issue 10, CVE-2018-5390) --------------
def test_blocks_are_kept_sorted_whatever_the_arrival_order() -> None:
    r = Receiver(1000)
    r.origin = 1000
    for off in (300, 100, 500, 200, 400):
        r.segment(1000 + off, bytes([off // 100]) * 10)
    assert r.ranges() == [(100, 10), (200, 10), (300, 10), (400, 10), (500, 10)]
    assert r.buf.ooo_count == 5 and r.buf.ooo_bytes == 50


def test_merge_keeps_the_bytes_when_the_largest_block_is_in_the_middle() -> None:
    """A segment bridging several blocks is copied into the largest (small into large);
    the bytes in front of it are prepended, the rest appended, first arrival kept."""
    data = bytes(random.Random(1).randbytes(400))
    r = Receiver(0)
    r.segment(50, data[50:60])
    r.segment(100, data[100:300])                          # the large one
    r.segment(320, data[320:330])
    r.segment(40, b"\xff" * 300)                           # overlaps all three: only gaps taken from it
    assert r.ranges() == [(40, 300)]
    (start, block), = r.buf.ooo_snapshot()
    assert block[10:20] == data[50:60] and block[60:260] == data[100:300] and block[280:290] == data[320:330]
    assert block[:10] == block[260:270] == block[290:] == b"\xff" * 10 and block[20:60] == b"\xff" * 40


def test_descending_tiny_segments_prepend_to_one_block() -> None:
    """1-byte segments arriving backwards in front of a block: one block, the right bytes
    (and, by the block's headroom, no copy of the whole block per segment)."""
    data = bytes(random.Random(2).randbytes(3000))
    r = Receiver(0)
    r.segment(2000, data[2000:])
    for off in range(1999, 0, -1):
        r.segment(off, data[off:off + 1])
    assert r.ranges() == [(1, 2999)]
    r.segment(0, data[:1])
    assert r.rcv_nxt == 3000 and r.buf.read(5000) == data


def test_blocks_and_sack_edges_across_the_wrap() -> None:
    """RFC 9293 §3.4 / RFC 2018: blocks on both sides of 2**32, reported modulo 2**32."""
    irs = 0xFFFFFF00
    r = Receiver(irs)
    r.segment(0xFFFFFFF0, b"a" * 0x20)                     # straddles the wrap
    r.segment(0x40, b"b" * 0x10)
    r.segment(0xFFFFFF80, b"c" * 0x10)
    assert [s for s, _ in r.buf.ooo_snapshot()] == [0xFFFFFF80, 0xFFFFFFF0, 0x40]
    assert r.buf.sack_blocks(4) == ((0xFFFFFF80, 0xFFFFFF90), (0x40, 0x50), (0xFFFFFFF0, 0x10))
    r.segment(0x10, b"d" * 0x30)                           # joins the two after the wrap
    assert r.buf.sack_blocks(4)[0] == (0xFFFFFFF0, 0x50)
    r.segment(irs, b"e" * 0x80)
    assert r.rcv_nxt == 0xFFFFFF90 and r.buf.ooo_count == 1


def test_block_limit_follows_the_capacity_charged_per_block() -> None:
    """A per-block truesize against the capacity (Linux charges skb truesize to the
    receive buffer), clamped between a floor and the hard cap."""
    assert RecvBuffer(100).ooo_block_limit() == OOO_MIN_BLOCKS
    assert RecvBuffer(256 << 10).ooo_block_limit() == 256
    assert RecvBuffer(4 << 20).ooo_block_limit() == OOO_MAX_BLOCKS == 1024


def test_a_new_block_beyond_the_cap_is_dropped_or_prunes_the_highest() -> None:
    """Linux tcp_data_queue_ofo / tcp_prune_ofo_queue: at the cap a segment that would be
    the highest block is dropped; one below it evicts the highest block instead.
    Segments extending an existing block never need a new one and are kept."""
    r = Receiver(0, capacity=4 << 20)
    limit = r.buf.ooo_block_limit()
    for i in range(limit):
        r.segment(10 + 4 * i, b"x")
    assert r.buf.ooo_count == limit and r.stats.ofo_dropped == 0
    top = 10 + 4 * (limit - 1)
    r.segment(top + 100, b"y")                             # would be the highest: dropped
    assert r.stats.ofo_dropped == 1 and r.buf.ooo_count == limit
    assert r.buf.sack_blocks(1) == ((top, top + 1),)
    r.segment(11, b"z")                                    # extends a block: kept, no new block
    assert r.buf.ooo_count == limit and r.stats.ofo_dropped == 1 and r.buf.ooo_bytes == limit + 1
    r.segment(5, b"w")                                     # a new lowest block: the highest goes
    assert r.stats.ofo_pruned == 1 and r.buf.ooo_count == limit
    assert r.ranges()[0] == (5, 1) and r.ranges()[-1] == (top - 4, 1)
    assert r.buf.ooo_bytes == limit + 1


def test_a_shrunk_budget_prunes_down_to_it_or_drops() -> None:
    """Should the capacity shrink below what the queue holds (a memory budget cutting
    the buffer), the next new block leaves the lowest `limit` blocks of the queue and
    itself: the far end is pruned, and the new block dropped if it is not among them."""
    r = Receiver(0, capacity=1 << 20)
    r.buf.insert_ooo(100, b"x", 0)
    for i in range(1, 200):
        r.buf.insert_ooo(100 + 4 * i, b"x", 0)
    assert r.buf.ooo_count == 200
    r.buf.capacity = 100                                   # the limit falls to OOO_MIN_BLOCKS
    r.segment(100 + 4 * 150 + 2, b"y")                     # block 151 of 201: pruned to 64, dropped
    assert r.buf.ooo_count == OOO_MIN_BLOCKS and (r.stats.ofo_pruned, r.stats.ofo_dropped) == (1, 1)
    r.segment(10, b"z")                                    # the lowest: one more pruned for it
    assert r.buf.ooo_count == OOO_MIN_BLOCKS and (r.stats.ofo_pruned, r.stats.ofo_dropped) == (2, 1)
    assert r.ranges()[0] == (10, 1) and r.ranges()[-1] == (100 + 4 * (OOO_MIN_BLOCKS - 2), 1)


def test_prune_ooo_drops_from_the_far_end() -> None:
    """prune_ooo(goal_bytes, stats): whole blocks from the highest down until at least
    goal_bytes are freed (all with None), returns the bytes freed, one ofo_pruned a call."""
    r = Receiver(0)
    for off in (100, 200, 300, 400):
        r.segment(off, b"p" * 10)
    r.segment(0, b"in order")
    stats = TcpStats()
    assert r.buf.prune_ooo(15, stats) == 20 and stats.ofo_pruned == 1
    assert r.ranges() == [(100, 10), (200, 10)] and r.buf.ooo_bytes == 20
    assert r.buf.sack_blocks(4) == ((200, 210), (100, 110))   # the dropped ones are not reported
    assert r.buf.prune_ooo(0, stats) == 0 and stats.ofo_pruned == 1
    assert r.buf.prune_ooo(None, stats) == 20 and stats.ofo_pruned == 2
    assert r.buf.ooo_count == 0 and r.buf.ooo_bytes == 0 and r.buf.sack_blocks(4) == ()
    assert r.buf.prune_ooo(None, stats) == 0 and stats.ofo_pruned == 2
    assert r.buf.read(100) == b"in order"                  # in-order data untouched
    r.segment(300, b"q" * 10)                              # and the queue works on
    r.segment(8, b"r" * 292)
    assert r.rcv_nxt == 310


def test_sack_blocks_fill_with_the_lowest_when_recent_ones_are_gone() -> None:
    """RFC 2018 §4: 'as many distinct SACK blocks as possible': when the recently
    reported blocks were delivered or pruned, the lowest others fill the option."""
    r = Receiver(0)
    for off in range(100, 1100, 100):
        r.segment(off, b"s" * 10)
    assert len(r.buf.sack_blocks(8)) == min(8, SACK_RECENT)
    r.buf.prune_ooo(50)                                    # drops 1000..600
    assert r.buf.sack_blocks(4) == ((500, 510), (400, 410), (300, 310), (100, 110))


class CappedBuffer(RecvBuffer):
    """A RecvBuffer with a tiny block budget, so that random streams reach it."""
    __slots__ = ()

    def ooo_block_limit(self) -> int:
        return 4


class ModelReceiver:
    """The reference: RCV.NXT, the bytes delivered, and a set of held byte offsets, with
    the same block cap rule written naively (blocks recomputed from the set)."""

    def __init__(self, limit: int) -> None:
        self.rcv_nxt = 0
        self.delivered = bytearray()
        self.held: dict[int, int] = {}
        self.limit = limit
        self.dropped = self.pruned = 0

    def blocks(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for off in sorted(self.held):
            if out and out[-1][1] == off:
                out[-1] = (out[-1][0], off + 1)
            else:
                out.append((off, off + 1))
        return out

    def segment(self, off: int, data: bytes) -> None:
        end = off + len(data)
        if end <= self.rcv_nxt:
            return
        if off < self.rcv_nxt:
            data, off = data[self.rcv_nxt - off:], self.rcv_nxt
        if off == self.rcv_nxt:
            self.delivered += data
            self.rcv_nxt = end
            for k in [k for k in self.held if k < self.rcv_nxt]:
                del self.held[k]
            while self.rcv_nxt in self.held:
                self.delivered.append(self.held.pop(self.rcv_nxt))
                self.rcv_nxt += 1
            return
        blocks = self.blocks()
        touches = any(lo <= end and off <= hi for lo, hi in blocks)
        if not touches and len(blocks) >= self.limit:
            if all(hi <= off for _, hi in blocks):
                self.dropped += 1
                return
            while len(blocks) >= self.limit and blocks[-1][0] > off:
                lo, hi = blocks.pop()
                for k in range(lo, hi):
                    del self.held[k]
            self.pruned += 1
        for i, b in enumerate(data):
            self.held.setdefault(off + i, b)


@FAST
@given(st.integers(0, 0xFFFFFFFF),
       st.lists(st.tuples(st.integers(0, 300), st.integers(1, 24)), min_size=1, max_size=60))
def test_ooo_queue_matches_a_byte_set_model(irs: int, segs: list[tuple[int, int]]) -> None:
    """Random segment streams (any order, overlaps, retransmissions, across the wrap): the
    queue, the bytes delivered, RCV.NXT and the cap's drop/prune decisions are those of a
    set-of-offsets model; so are sack_fresh and sack_once, the blocks changed since the
    last report (an ACK sent now and then) and those changed between the two before it,
    and sack_fresh_after predicts them (at least them, when the cap prunes)."""
    payload = bytes(random.Random(irs).randbytes(400))
    r = Receiver(irs, buf=CappedBuffer(1 << 20))
    model = ModelReceiver(limit=4)
    fresh: set[int] = set()                      # offsets queued out of order since the last report
    once: set[int] = set()                       # ... and between the last two reports
    for off, n in segs:
        chunk = payload[off:off + n]
        if off % 5 == 0:
            r.buf.sack_reported()                # an ACK reported the blocks (output.py _emit)
            once, fresh = fresh, set()
        start = max(off, model.rcv_nxt)
        predicted = r.buf.sack_fresh_after(sq.add(irs, start), off + n - start) \
            if start > model.rcv_nxt and start < off + n else None
        pruned_before = r.stats.ofo_pruned + r.stats.ofo_dropped
        # what of it (past RCV.NXT) the out-of-order queue holds already: its lowest run is
        # the D-SACK (dup_range), whether it goes to the queue or in order and pulls it in
        held = {k for k in range(max(off, model.rcv_nxt), off + n) if k in model.held}
        r.buf.dup_range = None
        r.segment(sq.add(irs, off), chunk)
        model.segment(off, chunk)
        expected = None
        if held:
            lo = hi = min(held)
            while hi in held:
                hi += 1
            expected = (sq.add(irs, lo), sq.add(irs, hi))
        assert r.buf.dup_range == expected
        assert sq.diff(r.rcv_nxt, irs) == model.rcv_nxt
        held = [(sq.diff(s, irs), b) for s, b in r.buf.ooo_snapshot()]
        assert [(o, o + len(b)) for o, b in held] == model.blocks()
        assert all(b == payload[o:o + len(b)] for o, b in held)
        assert (r.stats.ofo_dropped, r.stats.ofo_pruned) == (model.dropped, model.pruned)
        # the memory charged is what the blocks hold (their bytes and the headroom in front)
        blocks = [r.buf._blocks[s] for s in r.buf.ooo_starts]
        assert r.buf.ooo_bytes == sum(len(b) for b in blocks)
        assert r.buf.ooo_headroom == sum(b.head for b in blocks)
        if predicted is not None:
            fresh.update(range(start, off + n))
        expected_fresh = sum(1 for lo, hi in model.blocks() if fresh.intersection(range(lo, hi)))
        expected_once = sum(1 for lo, hi in model.blocks()
                            if once.intersection(range(lo, hi)) and not fresh.intersection(range(lo, hi)))
        assert (r.buf.sack_fresh, r.buf.sack_once) == (expected_fresh, expected_once)
        if predicted is not None:
            if r.stats.ofo_pruned + r.stats.ofo_dropped == pruned_before:
                assert predicted == (expected_fresh, expected_once)
            else:
                assert predicted[0] >= expected_fresh and sum(predicted) >= expected_fresh + expected_once
    assert r.buf.read(1000) == bytes(model.delivered)


# --- Scoreboard: validation and bounds (issue 10, CVE-2019-11477/8) ----------------------------------
def test_scoreboard_counts_the_blocks_it_refuses() -> None:
    """RFC 2883 / RFC 6675 §5.1 (Linux tcp_is_sackblock_valid): beyond SND.MAX, empty or
    inverted -> invalid; wholly at or below SND.UNA (a D-SACK or stale) -> old."""
    sb, stats = Scoreboard(), TcpStats()
    assert not sb.update(((9000, 10001), (3000, 3000), (3000, 2000)), 1000, 10000, stats)
    assert not sb.update(((500, 900), (900, 1000)), 1000, 10000, stats)
    assert (stats.sack_blocks_invalid, stats.sack_blocks_old, stats.sack_blocks_ignored) == (3, 2, 0)
    assert sb.update(((9000, 10000),), 1000, 10000, stats) and sb.blocks == [(9000, 10000)]
    # a block wrapping from just below SND.MAX to far beyond is inverted modulo 2**32
    assert not sb.update(((9999, sq.add(1000, -5)),), 1000, 10000, stats)
    assert stats.sack_blocks_invalid == 4 and len(sb) == 1


def test_scoreboard_ignores_blocks_that_would_fragment_it_beyond_its_cap() -> None:
    """At the cap a block that would add a range is ignored and counted; blocks that
    extend, join or repeat existing ranges are still taken."""
    sb, stats = Scoreboard(max_ranges=3), TcpStats()
    una, top = 1000, 100_000
    assert sb.update(((2000, 2001), (3000, 3001), (4000, 4001)), una, top, stats)
    assert not sb.update(((5000, 5001), (1500, 1501)), una, top, stats)
    assert stats.sack_blocks_ignored == 2 and len(sb) == 3 and sb.sacked == 3
    assert sb.update(((2001, 2500), (3001, 4000)), una, top, stats)   # extends; joins 3000 and 4000
    assert sb.blocks == [(2000, 2500), (3000, 4001)] and sb.sacked == 1501
    assert sb.update(((5000, 5001),), una, top, stats)                # room again
    assert len(sb) == 3 and stats.sack_blocks_ignored == 2 and sb.high_sack == 5001


def test_scoreboard_default_cap_bounds_a_flood_of_tiny_blocks() -> None:
    """Four 1-byte blocks an ACK, each a new range (the SACK-panic pattern): the
    scoreboard stops at its cap and ignores the rest."""
    sb, stats = Scoreboard(), TcpStats()
    una = 0xFFFF0000                                      # across the wrap too
    top = sq.add(una, 1 << 20)
    for ack in range(600):
        base = 10 + 8 * 4 * ack
        sb.update(tuple((sq.add(una, base + 8 * j), sq.add(una, base + 8 * j + 1)) for j in range(4)),
                  una, top, stats)
    assert len(sb) == sb.max_ranges == 1024 and sb.sacked == 1024
    assert stats.sack_blocks_ignored == 600 * 4 - 1024
    sb.prune(sq.add(una, 10 + 8 * 100))                   # a cumulative ACK frees the first 100
    assert len(sb) == 924 and sb.sacked == 924


def test_scoreboard_sacked_above_follows_changes() -> None:
    """sacked_above remembers its last answer; any change to the ranges forgets it."""
    sb = Scoreboard()
    sb.update(((2000, 3000), (4000, 5000), (6000, 7000)), 1000, 10000)
    assert sb.sacked_above(2500) == 2500 and sb.sacked_above(2500) == 2500
    sb.update(((3000, 3500),), 1000, 10000)
    assert sb.sacked_above(2500) == 3000
    sb.prune(4500)
    assert sb.sacked_above(2500) == 1500 and sb.sacked_above(6500) == 500 and sb.sacked_above(7000) == 0
    sb.clear()
    assert sb.sacked_above(0) == 0


@FAST
@given(st.lists(st.tuples(st.integers(-10, 130), st.integers(-5, 20)), max_size=30), st.integers(1, 6),
       st.integers(0, 0xFFFFFFFF))
def test_scoreboard_with_a_cap_matches_a_set_model(blocks: list[tuple[int, int]], cap: int, una: int) -> None:
    """Whatever blocks arrive (invalid, old, straddling, overlapping), the scoreboard holds
    the union a set model holds, with the cap rule: a block touching no range when the
    cap is reached is ignored.  The queries agree with the model."""
    span = 120
    snd_max = sq.add(una, span)
    sb, stats = Scoreboard(max_ranges=cap), TcpStats()
    model: set[int] = set()
    ignored = 0
    for start, length in blocks:
        end = start + length
        sb.update(((sq.add(una, start), sq.add(una, end)),), una, snd_max, stats)
        if end <= start or end > span or end <= 0:
            continue
        start = max(start, 0)
        ranges = sum(1 for i in model if i - 1 not in model)
        touches = any(i in model for i in range(start - 1, end + 1))
        if not touches and ranges >= cap:
            ignored += 1
            continue
        model |= set(range(start, end))
    assert stats.sack_blocks_ignored == ignored
    assert sb.sacked == len(model) and len(sb) <= cap
    assert all(sb.is_sacked(sq.add(una, i)) == (i in model) for i in range(-2, span + 2))
    for i in range(0, span + 1, 7):
        assert sb.sacked_above(sq.add(una, i)) == sum(1 for k in model if k >= i)
        hole = sb.next_hole(sq.add(una, i), una)
        below_top = [k for k in range(i, max(model, default=-1)) if k not in model]
        if not below_top:
            assert hole is None
        else:
            assert hole is not None and sq.diff(hole[0], una) == below_top[0]
            assert all(k not in model for k in range(below_top[0], sq.diff(hole[1], una)))
            assert sq.diff(hole[1], una) in model
