"""Segmentation and ACK timing as Linux (issue 14, point 1): the write queue's skb ends and
PSH bits (protocols/tcp/segmentation.py), Minshall's Nagle, MSG_MORE / MSG_EOR / TCP_CORK,
and the delayed-ACK engine (protocols/tcp/delack.py).  The same behaviours are checked
against the kernel by tests/scripted/scripts (psh-*, nagle-*, msg-*, cork-*, quickack-*,
delack-*)."""
from __future__ import annotations

from protocols.tcp.output import AUTOCORK
from protocols.tcp.segmentation import MAX_MARKS, WriteMarks, initial_window, tso_autosize
from protocols.tcp.wire import ACK, PSH
from tests.unit.test_tcp_conn import ISS, established

HALF = 1 << 30                     # half the peer's largest window: no forced push in these


def ends(marks: WriteMarks) -> list[tuple[int, bool]]:
    return [(e >> 1, bool(e & 1)) for e in marks.ends[marks.head:]]


# --- WriteMarks: Linux's skbs ---------------------------------------------------------------------
def test_each_write_ends_in_psh_and_unsent_tails_merge() -> None:
    m = WriteMarks()
    m.wrote(1000, sent=0, more=False, eor=False, half_window=HALF)
    assert ends(m) == [(1000, True)]
    # appended to the unsent tail: one skb, the PSH moves to its new end (tcp_sendmsg_locked)
    m.wrote(500, sent=0, more=False, eor=False, half_window=HALF)
    assert ends(m) == [(1500, True)]
    # the tail was sent: a new skb, the old end stays
    m.wrote(200, sent=1500, more=False, eor=False, half_window=HALF)
    assert ends(m) == [(1500, True), (1700, True)]
    assert m.next_end(0) == 1500 << 1 | 1 and m.next_end(1500) == 1700 << 1 | 1 and m.next_end(1700) == -1


def test_msg_more_leaves_the_tail_unpushed_until_half_the_window_waits() -> None:
    m = WriteMarks()
    m.wrote(300, sent=0, more=True, eor=False, half_window=1000)
    assert ends(m) == [(300, False)]
    m.wrote(300, sent=0, more=False, eor=False, half_window=1000)
    assert ends(m) == [(600, True)]
    # MSG_MORE, but more than half the largest window unpushed: tcp_push's forced_push
    m.wrote(1200, sent=600, more=True, eor=False, half_window=1000)
    assert ends(m) == [(600, True), (1800, True)]


def test_eor_keeps_the_next_write_out_of_its_skb() -> None:
    m = WriteMarks()
    m.wrote(500, sent=0, more=False, eor=True, half_window=HALF)
    m.wrote(300, sent=0, more=False, eor=False, half_window=HALF)
    assert ends(m) == [(500, True), (800, True)]


def test_acked_ends_are_forgotten_and_the_marks_are_bounded() -> None:
    m = WriteMarks()
    for i in range(MAX_MARKS + 50):
        m.wrote(10, sent=10 * i, more=False, eor=False, half_window=HALF)   # each tail already sent
    assert len(m.ends) - m.head == MAX_MARKS
    assert ends(m)[-1] == (10 * (MAX_MARKS + 50), True)
    m.acked_to(10 * (MAX_MARKS + 40))
    assert all(end > m.acked for end, _ in ends(m))
    m.acked_to(100)
    assert ends(m) == [] and m.next_end(0) == -1


def test_tso_autosize_follows_the_pacing_rate() -> None:
    # 10 x 1000 octets per 100 ms in slow start: 200 KB/s, ~195 octets a millisecond -> 2 segments
    assert tso_autosize(1000, 10_000, 0.1, 0.1, slow_start=True) == 2
    # a 1 ms path: the rate and the low-RTT bonus (65536 >> 1) make far larger chunks
    assert tso_autosize(1000, 10_000, 0.001, 0.001, slow_start=True) >= 32
    assert tso_autosize(1000, 10_000, 0.0, 0.0, slow_start=True) > 1000      # no RTT yet: no limit
    # a near-zero SRTT (back-to-back in a test clock) is a huge rate, not an overflow
    assert tso_autosize(1000, 1 << 22, 5e-324, 5e-324, slow_start=True) == 65


def test_initial_window_is_whole_segments() -> None:
    assert initial_window(131072, 1460) == 64240 == 44 * 1460
    assert initial_window(131072, 1448) == 65160 == 45 * 1448
    assert initial_window(1000, 1460) == 1000


# --- on a connection ----------------------------------------------------------------------------------
def sent_flags(out: list) -> list[tuple[int, int, bool]]:
    return [(s.seq - ISS - 1, len(s.payload), bool(s.flags & PSH)) for s in out if s.payload]


def test_minshall_nagle_holds_only_behind_a_short_segment() -> None:
    rig = established(ts=False, peer_ws=None)
    assert sent_flags(rig.send(bytes(100))) == [(0, 100, True)]
    assert sent_flags(rig.send(bytes(500))) == []                     # a short segment is out
    out = rig.rx(ACK, ack=ISS + 101, at=rig.now + 0.05)
    assert sent_flags(out) == [(100, 500, True)]


def test_msg_more_and_cork_hold_the_partial_segment() -> None:
    rig = established(ts=False, peer_ws=None)
    c = rig.conn
    assert c.send(memoryview(bytes(300)), rig.now, more=True) == 300 and rig.take() == []
    assert c.send(memoryview(bytes(100)), rig.now) == 100
    assert sent_flags(rig.take()) == [(0, 400, True)]
    rig.rx(ACK, ack=ISS + 401, at=rig.now + 0.05)
    c.cork = True
    rig.send(bytes(200))
    assert rig.take() == []
    out = rig.poll_next()                                             # the probe timer: 1 RTO
    assert sent_flags(out) == [(400, 200, True)]


def test_eor_write_goes_alone_once_another_follows() -> None:
    rig = established(ts=False, peer_ws=None)
    c = rig.conn
    c.cork = True
    c.send(memoryview(bytes(500)), rig.now, eor=True)
    assert rig.take() == []                                           # corked: the last skb waits
    c.send(memoryview(bytes(300)), rig.now)
    assert sent_flags(rig.take()) == [(0, 500, True)]                 # no longer the last skb


# --- delayed ACKs -----------------------------------------------------------------------------------------
def test_interactive_mode_delays_the_ack_and_the_timer_leaves_it() -> None:
    rig = established(ts=False, peer_ws=None)
    c = rig.conn
    out = rig.rx(ACK | PSH, payload=b"q" * 100, at=rig.now + 0.1)
    assert [s.ack for s in out] == [c.rcv_nxt]                        # quick-ACK mode at the start
    rig.send(b"r" * 100)                                              # a reply within ato
    assert c.pingpong
    assert rig.rx(ACK | PSH, ack=ISS + 101, payload=b"q" * 100, at=rig.now + 0.1) == []
    assert c.delack_at == rig.now + c.config.delack
    out = rig.poll_next()
    assert [s.flags for s in out] == [ACK] and not c.pingpong


def test_two_full_segments_are_acked_at_once_even_when_interactive() -> None:
    rig = established(ts=False, peer_ws=None)
    c = rig.conn
    c.set_quickack(False, rig.now)
    assert rig.rx(ACK, payload=bytes(1460), at=rig.now + 0.1) == []
    out = rig.rx(ACK, payload=bytes(1460), at=rig.now + 0.001)
    assert [s.ack for s in out] == [c.rcv_nxt]


def test_a_bulk_writes_runt_waits_for_the_ack() -> None:
    """Deliberate difference (output.py BULK_SKB): the short tail of a write run of 32 KiB
    or more is held while its segments are in flight (classic Nagle); Minshall's rule
    would send it -- each such runt drew an ACK of its own and cost bulk senders CPU."""
    rig = established(ts=False, peer_ws=7)
    c = rig.conn
    c.cc.cwnd = c.snd.capacity = 1 << 20
    out = rig.send(bytes(40 * 1460 + 100))
    assert sent_flags(out)[-1][:2] == (39 * 1460, 1460)               # the 100 wait
    out = rig.rx(ACK, ack=ISS + 1 + 40 * 1460, at=rig.now + 0.05)
    assert sent_flags(out) == [(40 * 1460, 100, True)]


def test_a_bulk_writes_runt_waits_a_moment_for_the_next_write() -> None:
    """Deliberate difference (output.py AUTOCORK): with its segments ACKed before the
    application wrote again, the runt waits up to 1 ms after the last write -- the next
    write takes it along in full segments -- then the send timer sends it."""
    rig = established(ts=False, peer_ws=7)
    c = rig.conn
    c.cc.cwnd = c.snd.capacity = 1 << 20
    rig.send(bytes(40 * 1460 + 100))
    wrote = rig.now
    assert rig.rx(ACK, ack=ISS + 1 + 40 * 1460, at=wrote + 0.0002) == []    # held: wrote 0.2 ms ago
    assert c.pace_at == wrote + AUTOCORK and c.poll_at() == wrote + AUTOCORK
    out = rig.send(bytes(40 * 1460))                      # the next write: the runt goes with it
    assert sent_flags(out)[0] == (40 * 1460, 1460, False) and sent_flags(out)[-1][:2] == (79 * 1460, 1460)
    assert rig.rx(ACK, ack=ISS + 1 + 80 * 1460, at=rig.now + 0.0002) == []  # its own 100 wait in turn
    assert rig.poll_next() == [] and rig.now == wrote + AUTOCORK   # the first hold's timer: too early now
    out = rig.poll_next()                                 # nobody wrote: the timer, 1 ms after the write
    assert rig.now == wrote + 0.0002 + AUTOCORK and sent_flags(out) == [(80 * 1460, 100, True)]


def test_the_autocork_leaves_nodelay_and_small_writes_alone() -> None:
    """TCP_NODELAY sends the runt at once (as before), and so does a write run below
    BULK_SKB once nothing is in flight (Minshall)."""
    for nodelay, size in ((True, 40 * 1460 + 100), (False, 20 * 1460 + 100)):
        rig = established(ts=False, peer_ws=7)
        c = rig.conn
        c.cc.cwnd = c.snd.capacity = 1 << 20
        c.nodelay = nodelay
        first = rig.send(bytes(size))
        if nodelay:
            assert sent_flags(first)[-1][1] == 100
            continue
        out = rig.rx(ACK, ack=ISS + 1 + size - 100, at=rig.now + 0.0002)
        assert sent_flags(first + out)[-1] == (size - 100, 100, True)
