"""SACK compression (delack.py, Linux 4.18+ __tcp_ack_snd_check / tcp_compressed_ack_kick /
tcp_sack_new_ofo_skb): out-of-order data is ACKed at once three times per RCV.NXT, then
one ACK stands for up to `comp_sack_nr` of them after min(`comp_sack_delay`, RTT/20).
Found on the lossy path (issue 10 point 11): ACKing every out-of-order segment cost the
receiver ~40 % of its CPU and sent three times the ACKs Linux's receiver sends."""
from __future__ import annotations

from protocols.tcp.wire import ACK

from .test_tcp_conn import IRS, Rig, Sent, established

MSS = 1000


def _rig(comp_sack_nr: int = 44) -> Rig:
    rig = established(ts=False, comp_sack_nr=comp_sack_nr)
    c = rig.conn
    c.quickacks = 0                              # past the start's quick-ACK mode
    c.rcv_rtt = 0.01                             # a receiver RTT: the delay is 5 % of it
    return rig


def _ooo(rig: Rig, k: int) -> list[Sent]:
    """Segment k of a run above a one-segment hole at IRS + 1 (contiguous: one block)."""
    return rig.rx(ACK, seq=IRS + 1 + MSS * (k + 1), payload=bytes(MSS))


def test_three_out_of_order_acks_go_at_once_then_one_waits_for_the_timer() -> None:
    rig = _rig()
    c = rig.conn
    acks = [len(_ooo(rig, k)) for k in range(10)]
    assert acks == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert c.comp_acks == 7
    assert c.comp_at == rig.now + 0.01 / 20        # min(1 ms, RTT / 20)
    (a,) = rig.poll(c.comp_at)
    assert a.ack == IRS + 1 and a.seg.sack[0] == (IRS + 1 + MSS, IRS + 1 + 11 * MSS)
    assert rig.host.stats.acks_compressed == 6     # the one sent is not counted (Linux)
    assert c.comp_acks == 0 and c.comp_at is None


def test_the_delay_is_at_most_comp_sack_delay() -> None:
    rig = _rig()
    rig.conn.rcv_rtt = 1.0
    for k in range(4):
        _ooo(rig, k)
    assert rig.conn.comp_at == rig.now + 0.001


def test_filling_the_hole_sends_the_held_ack_with_the_cumulative_ack() -> None:
    rig = _rig()
    for k in range(6):
        _ooo(rig, k)
    (a,) = rig.rx(ACK, seq=IRS + 1, payload=bytes(MSS))
    assert a.ack == IRS + 1 + 7 * MSS and not a.seg.sack
    assert rig.conn.comp_at is None and rig.host.stats.acks_compressed == 3


def test_a_new_hole_gives_three_immediate_acks_again() -> None:
    """RCV.NXT moved: the sender's duplicate-ACK count starts over (tp->dup_ack_counter)."""
    rig = _rig()
    for k in range(5):
        _ooo(rig, k)
    # the first hole fills, a segment of the run is missing: a new RCV.NXT with holes above
    rig.rx(ACK, seq=IRS + 1, payload=bytes(MSS))
    rig.conn.quickacks = 0                       # (the first in-order data started quick-ACK mode)
    acks = [len(rig.rx(ACK, seq=IRS + 1 + MSS * k, payload=bytes(MSS))) for k in range(8, 13)]
    assert acks == [1, 1, 1, 0, 0]


def test_a_new_block_while_acks_are_held_sends_them_first() -> None:
    """The blocks the held ACKs report must not fall off the three an ACK carries: with two
    blocks or more held, they go as they stand before a new block is made (Linux
    tcp_sack_new_ofo_skb -> tcp_sack_compress_send_ack), and the new block's own ACK is
    compressed in turn.  Beside a single block, a new one moves nothing out: no ACK."""
    rig = _rig()
    for k in range(5):
        _ooo(rig, k)
    assert rig.conn.comp_acks == 2
    assert rig.rx(ACK, seq=IRS + 1 + 20 * MSS, payload=bytes(MSS)) == []   # a second block: held
    assert rig.conn.comp_acks == 3
    (a,) = rig.rx(ACK, seq=IRS + 1 + 30 * MSS, payload=bytes(MSS))         # a third: flush first
    assert a.seg.sack == ((IRS + 1 + 20 * MSS, IRS + 1 + 21 * MSS), (IRS + 1 + MSS, IRS + 1 + 6 * MSS))
    assert rig.conn.comp_acks == 1
    (b,) = rig.poll(rig.conn.comp_at)
    assert b.seg.sack[0] == (IRS + 1 + 30 * MSS, IRS + 1 + 31 * MSS)


def test_growing_an_older_block_while_acks_are_held_sends_them_first() -> None:
    """Blocks A < B < C < D made in that order: once C has grown (the order is C, D, B, A),
    a segment growing B -- older than the two most recent -- would move it to the front
    and push another block towards the end of the few an ACK carries; the held ACK goes
    first, with the blocks as they stood.  Growing D or C (the two most recent) does not."""
    rig = _rig()
    c = rig.conn
    for k in (0, 3, 6, 9):                          # A, B, C, D (three ACKs at once, then held)
        _ooo(rig, k)
    assert [len(_ooo(rig, k)) for k in (10, 11, 7)] == [0, 0, 0]     # D grows twice, C once
    assert c.comp_acks == 4
    (a,) = _ooo(rig, 4)                             # B grows: the held ACK first
    assert [(lo - IRS - 1) // MSS for lo, _ in a.seg.sack] == [7, 10, 4, 1]    # C, D, B, A
    assert c.comp_acks == 1                          # and B's own ACK is held in turn


def test_at_most_comp_sack_nr_are_held() -> None:
    rig = _rig(comp_sack_nr=5)
    acks = [len(_ooo(rig, k)) for k in range(10)]
    assert acks == [1, 1, 1, 0, 0, 0, 0, 0, 1, 0]     # the 6th held one goes at once


def test_without_sack_every_out_of_order_segment_is_acked() -> None:
    """RFC 5681 §4.2: duplicate ACKs are all the sender has."""
    rig = established(ts=False, sack=False)
    rig.conn.quickacks = 0
    assert [len(_ooo(rig, k)) for k in range(6)] == [1] * 6


def test_comp_sack_nr_zero_turns_it_off() -> None:
    rig = _rig(comp_sack_nr=0)
    assert [len(_ooo(rig, k)) for k in range(6)] == [1] * 6


def test_quick_ack_mode_acks_every_segment() -> None:
    rig = _rig()
    rig.conn.quickacks = 4
    assert [len(_ooo(rig, k)) for k in range(8)] == [1, 1, 1, 1, 1, 1, 1, 0]


def test_text_filling_a_hole_is_acked_at_once_inside_a_receive_batch() -> None:
    """Inside a receive batch (tcp.py output_later defers the pass to its end) in-order text
    waits for the batch's ACK, but text that fills a hole -- in part or whole -- is ACKed
    at once, as out-of-order text is: held to the batch's end, the sender's RACK would time
    the hole out and resend it (RFC 5681 §4.2; Linux sends at once since RCV.NXT moved)."""
    rig = _rig()
    host = rig.host
    host.batching = True
    assert rig.rx(ACK, seq=IRS + 1, payload=bytes(MSS)) == [] and host.deferred   # in order: waits
    for k in (1, 3):                                     # two holes: [IRS+1+MSS, +2MSS) and [+3MSS, +4MSS)
        assert _ooo(rig, k) == []                        # out of order: waits too (the next test)
    (a,) = rig.rx(ACK, seq=IRS + 1 + MSS, payload=bytes(MSS))          # fills the first hole
    assert a.ack == IRS + 1 + 3 * MSS
    (b,) = rig.rx(ACK, seq=IRS + 1 + 3 * MSS, payload=bytes(MSS))      # and the last one
    assert b.ack == IRS + 1 + 5 * MSS and not b.seg.sack
    assert rig.rx(ACK, seq=IRS + 1 + 5 * MSS, payload=bytes(MSS)) == []
    host.batch_end(rig.now)
    (c,) = rig.take()
    assert c.ack == IRS + 1 + 6 * MSS


def test_out_of_order_text_inside_a_receive_batch_is_acked_once_at_its_end() -> None:
    """Inside a receive batch every frame read is already here: the ACKs the out-of-order
    segments ask for (RFC 5681 §4.2's immediate duplicates, Linux's first three per RCV.NXT)
    go as one at the batch's end, with every block.  A hole that opens and closes inside
    the batch (a reordered pair) is never reported: Linux's receiver, one segment at a
    time, sends an ACK for it -- the lossy bench's receiver sent 20 k ACKs per 100 MB, most
    of them for such holes, and now sends 6 k (issue 10 point 11)."""
    rig = established(ts=False)
    rig.conn.quickacks = 0
    rig.host.batching = True
    assert _ooo(rig, 0) == [] and _ooo(rig, 2) == []               # blocks [+MSS, +2MSS), [+3MSS, +4MSS)
    assert rig.rx(ACK, seq=IRS + 1 + 5 * MSS, payload=bytes(MSS)) == []    # a third: [+5MSS, +6MSS) ...
    assert rig.rx(ACK, seq=IRS + 1 + 4 * MSS, payload=bytes(MSS)) == []    # ... and its reordered neighbour
    rig.host.batch_end(rig.now)
    (a,) = rig.take()
    assert a.ack == IRS + 1
    assert a.seg.sack == ((IRS + 1 + 3 * MSS, IRS + 1 + 6 * MSS), (IRS + 1 + MSS, IRS + 1 + 2 * MSS))


def test_inside_a_batch_a_block_no_ack_reported_is_never_pushed_out() -> None:
    """The batch's ACK carries four blocks (three beside a timestamp), one of them kept for
    a D-SACK: a segment that would make a fourth block nobody has heard of first sends
    the three as they stand (what Linux's tcp_sack_compress_send_ack guards against, with
    its own per-segment rule)."""
    rig = established(ts=False)
    rig.conn.quickacks = 0
    rig.host.batching = True
    for k in (0, 2, 4):
        assert _ooo(rig, k) == []
    (a,) = _ooo(rig, 6)
    assert a.seg.sack == ((IRS + 1 + 5 * MSS, IRS + 1 + 6 * MSS), (IRS + 1 + 3 * MSS, IRS + 1 + 4 * MSS),
                          (IRS + 1 + MSS, IRS + 1 + 2 * MSS))
    assert _ooo(rig, 7) == []                        # grows the newest block: waits
    rig.host.batch_end(rig.now)
    (b,) = rig.take()
    assert b.seg.sack[0] == (IRS + 1 + 7 * MSS, IRS + 1 + 9 * MSS)
    assert rig.conn.comp_dups == 2                   # Linux's three immediate ones count ACKs sent


def test_inside_a_batch_a_block_reported_once_is_reported_again_before_it_is_pushed_out() -> None:
    """Linux's receiver reports a block in many ACKs while it grows; one ACK per batch may
    report it once, and the path may lose that ACK (the lossy bench: 5 % of them).  So a
    block leaves the ones an ACK carries only after two reports: here the fifth block
    sends the four as they stand.  Without it, drops alone (30 MB) made Linux resend 1.5 k
    segments instead of 1.1 k, 240 of them for nothing (D-SACKed back)."""
    rig = established(ts=False)
    rig.conn.quickacks = 0
    rig.host.batching = True
    for k in (0, 2):
        assert _ooo(rig, k) == []
    rig.host.batch_end(rig.now)
    (a,) = rig.take()                                # the batch's ACK: both blocks, once
    assert len(a.seg.sack) == 2
    rig.host.batching = True
    for k in (4, 6):
        assert _ooo(rig, k) == []
    (b,) = _ooo(rig, 8)
    assert b.seg.sack == tuple((IRS + 1 + (k + 1) * MSS, IRS + 1 + (k + 2) * MSS) for k in (6, 4, 2, 0))


def test_without_sack_each_duplicate_ack_goes_at_once_inside_a_batch_too() -> None:
    """Without SACK the sender counts duplicate ACKs (RFC 5681 §3.2): one per segment."""
    rig = established(ts=False, sack=False)
    rig.conn.quickacks = 0
    rig.host.batching = True
    assert [len(_ooo(rig, k)) for k in range(4)] == [1, 1, 1, 1]


def test_inside_a_batch_a_second_dsack_sends_the_first() -> None:
    """One D-SACK block per ACK (RFC 2883 §4): a second duplicate inside a batch sends the
    ACK holding the first, so neither is lost."""
    rig = established(ts=False)
    rig.conn.quickacks = 0
    rig.host.batching = True
    for k in range(4):
        _ooo(rig, k)
    assert _ooo(rig, 1) == []                        # a duplicate: its D-SACK waits
    (a,) = _ooo(rig, 2)                              # another: the first goes
    assert a.seg.sack[0] == (IRS + 1 + 2 * MSS, IRS + 1 + 3 * MSS)
    rig.host.batch_end(rig.now)
    (b,) = rig.take()
    assert b.seg.sack[0] == (IRS + 1 + 3 * MSS, IRS + 1 + 4 * MSS)


def test_a_duplicate_of_out_of_order_data_is_dsacked_without_quick_acks() -> None:
    """A segment whose bytes all wait in the out-of-order queue already (Linux
    tcp_data_queue_ofo: "all the bits are present") sets the D-SACK of the next ACK and
    nothing more: no quick-ACK mode, so the ACKs after it stay compressed.  Quick ACKs
    after each duplicate beyond a hole (a path duplicating 1 % of its segments) sent the
    lossy bench's sender one ACK per segment for 16 segments after every duplicate."""
    rig = _rig()
    c = rig.conn
    for k in range(4):
        _ooo(rig, k)
    assert c.comp_acks == 1
    assert _ooo(rig, 1) == []                        # the duplicate: held like the others
    assert c.dsack == (IRS + 1 + 2 * MSS, IRS + 1 + 3 * MSS) and c.quickacks == 0
    assert [len(_ooo(rig, k)) for k in range(4, 8)] == [0, 0, 0, 0]
    (a,) = rig.poll(c.comp_at)
    assert a.seg.sack[:2] == ((IRS + 1 + 2 * MSS, IRS + 1 + 3 * MSS), (IRS + 1 + MSS, IRS + 1 + 9 * MSS))


def test_a_whole_old_segment_starts_quick_ack_mode_a_partly_old_one_does_not() -> None:
    """Below RCV.NXT: a segment old as a whole is ACKed at once with its D-SACK and starts
    quick-ACK mode (Linux tcp_data_queue: DELAYEDACKLOST, tcp_enter_quickack_mode: the
    count half the window in segments, at most 16, interactive mode left); one that
    starts below RCV.NXT and brings new data gets the D-SACK of its old part only, on the
    ACK the rules for its new data send (tcp_data_queue's partial packet)."""
    rig = _rig()
    c = rig.conn
    rig.rx(ACK, seq=IRS + 1, payload=bytes(MSS))
    c.quickacks = 0
    c.pingpong = True
    (a,) = rig.rx(ACK, seq=IRS + 1, payload=bytes(MSS))
    assert a.ack == IRS + 1 + MSS and a.seg.sack == ((IRS + 1, IRS + 1 + MSS),)
    assert c.quickacks == 16 and not c.pingpong
    c.quickacks = 0
    assert rig.rx(ACK, seq=IRS + 1 + MSS // 2, payload=bytes(MSS)) == []   # half old: a delayed ACK
    assert c.quickacks == 0
    (b,) = rig.poll(c.delack_at)
    assert b.ack == IRS + 1 + MSS + MSS // 2 and b.seg.sack == ((IRS + 1 + MSS // 2, IRS + 1 + MSS),)
