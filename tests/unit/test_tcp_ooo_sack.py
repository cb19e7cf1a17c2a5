"""Issue 10 points 2-3 on a whole Connection (the Rig of test_tcp_conn): the out-of-order
queue's block cap and the SACK scoreboard's validation and cap, seen through input.py's
counters and the segments that go out.  The data structures themselves are tested in
test_tcp_buffers.py."""
from __future__ import annotations

from protocols.tcp.buffers import Scoreboard
from protocols.tcp.wire import ACK, FIN

from .test_tcp_conn import IRS, ISS, data_segments, established, sack_in_flight, seg_range


def test_out_of_order_segment_beyond_the_block_cap_is_dropped_and_counted() -> None:
    """CVE-2018-5390: 1-byte segments with holes stop adding blocks at the cap; the ones
    that would be the highest are dropped (ofo_dropped), still answered by a SACK ACK;
    a FIN riding on a dropped segment is not remembered (it comes back with its data)."""
    rig = established(ts=False)
    c = rig.conn
    limit = c.rcv.ooo_block_limit()
    for i in range(limit):
        rig.rx(ACK, seq=IRS + 5 + 4 * i, payload=b"x")
    stats = rig.host.stats
    assert c.rcv.ooo_count == limit and stats.ooo_segs == limit and stats.ofo_dropped == 0
    top = IRS + 5 + 4 * (limit - 1)
    *held, a = rig.rx(ACK | FIN, seq=top + 10, payload=b"y")
    assert len(held) == 1                      # the compressed ACKs, sent before the would-be new block
    assert stats.ofo_dropped == 1 and c.ooo_fin is None and c.rcv.ooo_count == limit
    assert a.ack == IRS + 1 and a.seg.sack[0] == (top, top + 1)
    # a block below the highest evicts the highest (ofo_pruned); filling the holes delivers
    rig.rx(ACK, seq=IRS + 3, payload=b"z")
    assert stats.ofo_pruned == 1 and c.rcv.ooo_count == limit
    assert c.rcv.sack_blocks(4)[:2] == ((IRS + 3, IRS + 4), (top - 4, top - 3))
    (a,) = rig.rx(ACK, seq=IRS + 1, payload=b"ab")
    assert a.ack == IRS + 4 and c.rcv.read(10) == b"abz"


def test_invalid_and_old_sack_blocks_are_counted_and_ignored() -> None:
    """RFC 2883 / RFC 6675: blocks beyond SND.MAX or inverted (invalid) and blocks at or
    below SND.UNA (old) leave the scoreboard alone; recovery is not entered on them."""
    rig, mss = sack_in_flight()
    c = rig.conn
    beyond = (ISS + 1 + 10 * mss, ISS + 1 + 12 * mss)
    inverted = (ISS + 1 + 5 * mss, ISS + 1 + 2 * mss)
    old = (ISS - 1000, ISS + 1)
    rig.rx(ACK, ack=ISS + 1, sack=(beyond, inverted, old), at=rig.now + 0.1)
    stats = rig.host.stats
    assert (stats.sack_blocks_invalid, stats.sack_blocks_old) == (2, 1)
    assert len(c.scoreboard) == 0 and not c.in_recovery


def test_sack_flood_beyond_the_scoreboard_cap_keeps_recovery_working() -> None:
    """A receiver SACKing tiny blocks fills the scoreboard to its cap; further new blocks
    are ignored (sack_blocks_ignored), and the holes are still retransmitted."""
    rig, mss = sack_in_flight()
    c = rig.conn
    c.scoreboard = Scoreboard(max_ranges=8)
    blocks = [(ISS + 1 + mss + 4 * k, ISS + 2 + mss + 4 * k) for k in range(12)]
    out = []
    for i in range(0, 12, 3):
        out += rig.rx(ACK, ack=ISS + 1, sack=tuple(blocks[i:i + 3]), at=rig.now + 0.001)
    assert len(c.scoreboard) == 8 and rig.host.stats.sack_blocks_ignored == 4
    # the fourth duplicate ACK: SND.UNA was retransmitted (RFC 6675 §5 / RFC 5681 §3.2)
    assert c.in_recovery and data_segments(out) == [(0, mss)]
    # the real SACK of segments 2..10 swallows the tiny ranges (they lie in segment 2)
    rig.rx(ACK, ack=ISS + 1, sack=(seg_range(mss, 2, 10),), at=rig.now + 0.01)
    assert len(c.scoreboard) == 1 and c.scoreboard.sacked == 9 * mss
    rig.rx(ACK, ack=ISS + 1 + 10 * mss, at=rig.now + 0.05)
    assert not c.in_recovery and len(c.scoreboard) == 0


def test_an_ack_carries_its_sack_blocks_in_linux_layout() -> None:
    """With timestamps, an ACK's options are NOP NOP TS, NOP NOP SACK -- the most recent
    block first, at most three (RFC 2018 §3: 40 octets) -- laid out byte for byte as
    TcpRepr.options_bytes does."""
    from protocols.tcp.wire import TcpRepr
    rig = established()
    captured: list[bytes] = []
    real_emit = rig.host.emit

    def emit(conn, seg, opts, payload, gso, now):  # type: ignore[no-untyped-def]
        captured.append(opts)
        return real_emit(conn, seg, opts, payload, gso, now)

    rig.host.emit = emit                         # type: ignore[method-assign]
    base = rig.conn.rcv_nxt
    for k in range(1, 6):                        # five holes: the ACK keeps the three newest
        out = rig.rx(ACK, seq=(base + 1000 * 2 * k) & 0xFFFFFFFF, payload=b"y" * 1000)
        (ack,) = out
        blocks = tuple(((base + 2000 * j) & 0xFFFFFFFF, (base + 2000 * j + 1000) & 0xFFFFFFFF)
                       for j in range(k, max(k - 3, 0), -1))
        assert ack.seg.sack == blocks
        assert captured[-1] == TcpRepr(0, 0, 0, 0, ACK, 0, ts=ack.seg.ts, sack=blocks).options_bytes()
