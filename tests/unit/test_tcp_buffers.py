"""The byte queues of a connection (protocols/tcp/buffers.py): the send buffer, the
receive buffer's reassembly of out-of-order segments (RFC 9293 §3.10.7.4 "segment text")
with the SACK blocks it reports (RFC 2018 §4), and the sender's SACK scoreboard (RFC 6675 §3)."""
from __future__ import annotations

import random

from hypothesis import given, settings, strategies as st

from protocols.tcp import seq as sq
from protocols.tcp.buffers import COMPACT_MIN, RecvBuffer, Scoreboard, SendBuffer

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


# --- RecvBuffer: reassembly --------------------------------------------------------------------
class Receiver:
    """RCV.NXT plus a RecvBuffer, fed the way input.py feeds it: trim what is already
    received, append in-order data, keep the rest out of order."""

    def __init__(self, irs: int, capacity: int = 1 << 20) -> None:
        self.rcv_nxt = irs
        self.buf = RecvBuffer(capacity)

    def segment(self, seqno: int, data: bytes) -> None:
        front = sq.diff(self.rcv_nxt, seqno)
        if front >= len(data):
            return                                        # wholly old
        if front > 0:
            data, seqno = data[front:], self.rcv_nxt
        if seqno == self.rcv_nxt:
            self.rcv_nxt = self.buf.append_in_order(memoryview(data), self.rcv_nxt)
        else:
            self.buf.insert_ooo(seqno, memoryview(data), self.rcv_nxt)
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


def test_in_order_segments_append() -> None:
    r = Receiver(100)
    r.segment(100, b"hello ")
    r.segment(106, b"world")
    assert r.rcv_nxt == 111 and r.buf.read(100) == b"hello world"


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
    for a, b in zip(cuts, cuts[1:]):
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
    for (l1, r1), (l2, _) in zip(sb.blocks, sb.blocks[1:]):
        assert sq.lt(r1, l2)                               # disjoint, sorted, not adjacent
