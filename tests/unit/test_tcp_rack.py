"""RACK loss detection (RFC 8985 §6) and the RTO's use of the scoreboard (RFC 6675 §5.1),
with an explicit clock: the Connection harness of test_tcp_conn, and the sent-segment
record of protocols/tcp/rack.py on its own."""
from __future__ import annotations

import itertools

from protocols.tcp.rack import REO_WND_MIN, Rack
from protocols.tcp.wire import ACK, SYN

from .test_tcp_conn import IRS, ISS, Rig, active_open, data_segments, established, sack_in_flight, seg_range


# --- the record on its own -------------------------------------------------------------------
def test_rack_marks_what_was_sent_before_a_delivered_segment() -> None:
    """§6.2 step 5: sent before the newest delivered segment, and older than RACK.rtt +
    reo_wnd -> lost; sent after it -> still in flight."""
    r = Rack()
    for k in range(4):
        r.sent(k * 100, (k + 1) * 100, 1.0 + k * 0.001, False)
    assert r.inflight == 400
    # segment 2 (sent at 1.002) SACKed at 1.012: RACK.rtt = 10 ms
    assert r.on_ack(0, ((200, 300),), lambda s, e: s >= 200 and e <= 300, 1.012)
    marked, rexmits, timeout = r.detect_loss(1.012, 0.0)
    # segments 0 and 1 were sent 12 and 11 ms ago: more than RACK.rtt -> lost
    assert (marked, rexmits, timeout) == (2, 0, 0.0)
    assert r.first_lost(0) == (0, 100) and r.first_lost(100) == (100, 200) and r.first_lost(200) is None
    assert r.inflight == 100 and r.lost_bytes == 200            # segment 3 is still in flight


def test_rack_waits_out_the_reordering_window() -> None:
    r = Rack()
    r.sent(0, 100, 1.0, False)
    r.sent(100, 200, 1.0005, False)
    r.on_ack(0, ((100, 200),), lambda s, e: True, 1.0105)
    marked, _, timeout = r.detect_loss(1.0105, 0.004)
    # remaining = 1.0 + 0.010 + 0.004 - 1.0105 = 3.5 ms
    assert marked == 0 and abs(timeout - 0.0035) < 1e-9
    assert r.detect_loss(1.0141, 0.004)[0] == 1


def test_rack_retransmission_replaces_the_record_and_is_caught_lost_again() -> None:
    r = Rack()
    r.sent(0, 100, 1.0, False)
    r.sent(100, 200, 1.001, False)
    r.on_ack(0, ((100, 200),), lambda s, e: True, 1.011)
    assert r.detect_loss(1.011, 0.0)[0] == 1
    r.sent(0, 100, 1.012, True)                                   # the retransmission
    assert not r.has_lost and r.inflight == 100
    r.sent(200, 300, 1.013, False)                                # new data after it
    r.on_ack(0, ((100, 300),), lambda s, e: s >= 100, 1.023)      # arrives; the retransmission does not
    assert r.detect_loss(1.023, 0.0)[:2] == (1, 1)                # lost again, found without an RTO


def test_rack_records_split_when_a_retransmission_covers_part_of_one() -> None:
    r = Rack()
    r.sent(0, 3000, 1.0, False)                                   # one TSO super-segment
    r.mark_all_lost()
    r.sent(1000, 2000, 1.1, True)                                 # its middle resent
    assert r.lost_bytes == 2000 and r.inflight == 1000
    assert r.first_lost(0) == (0, 1000) and r.first_lost(1000) == (2000, 3000)
    r.on_ack(3000, (), lambda s, e: False, 1.2)                   # everything acknowledged
    assert len(r) == 0 and r.lost_bytes == 0 and r.inflight == 0


def test_a_sack_block_inside_a_super_segment_delivers_its_part() -> None:
    """A loss inside a super-segment (TSO, or software GSO): the pieces after it are SACKed,
    and that part of the record is delivered on its own -- Linux cuts the skb at the
    block's edges (tcp_sacktag_walk -> tcp_fragment).  Whole-record delivery hid it, so
    RACK never saw a later-sent segment delivered and a lost retransmission waited for the
    RTO (the SACK-against-go-back-N integration test found it with software GSO)."""
    r = Rack()
    r.sent(0, 4000, 1.0, False)                                   # one super-segment
    r.sent(4000, 5000, 1.001, False)
    # piece [1000, 2000) lost: the peer SACKs [2000, 3000) only (the rest not yet arrived)
    assert r.on_ack(1000, ((2000, 3000),), lambda s, e: s >= 2000 and e <= 3000, 1.011)
    assert r.fack == r.pos(3000) and r.rtt == 1.011 - 1.0
    assert [(seg.start, seg.end) for seg in r._segs] == [(r.pos(1000), r.pos(2000)), (r.pos(3000), r.pos(4000)),
                                                         (r.pos(4000), r.pos(5000))]
    assert r.inflight == 3000
    # [1000, 2000) left with it at 1.0, below it: lost once RACK.rtt has passed; [3000, 4000)
    # too, but above it -- taken as sent after it (Linux: equal times, the sequence decides)
    assert r.detect_loss(1.0111, 0.0)[0] == 1
    assert r.first_lost(1000) == (1000, 2000) and r.first_lost(2000) is None


def test_a_sack_block_at_the_record_cap_delivers_only_whole_records() -> None:
    r = Rack(max_segments=2)
    r.sent(0, 4000, 1.0, False)
    r.sent(4000, 5000, 1.001, False)
    assert not r.on_ack(0, ((2000, 3000),), lambda s, e: s >= 2000 and e <= 3000, 1.011)
    assert len(r._segs) == 2 and r.inflight == 5000


def test_rack_reordering_widens_the_window_and_dsack_widens_it_more() -> None:
    """§6.2 steps 3-4: no window before reordering is seen (in recovery); after it,
    min_RTT/4 (floored), and each round with a D-SACK adds a quarter min_RTT."""
    r = Rack()
    r.sent(0, 100, 1.0, False)
    r.sent(100, 200, 1.0, False)
    r.on_ack(0, ((100, 200),), lambda s, e: True, 1.040)          # min_RTT 40 ms
    assert r.reo_wnd(True, False, 0.05) == 0.0
    r.on_ack(200, (), lambda s, e: False, 1.041)                  # segment 0 arrives late: reordering
    assert r.reordering_seen
    assert abs(r.reo_wnd(True, False, 0.05) - 0.010) < 1e-9
    r.on_dsack(0, 300)
    assert abs(r.reo_wnd(True, False, 0.05) - 0.020) < 1e-9
    r.on_dsack(0, 300)                                            # same round: no further widening
    assert abs(r.reo_wnd(True, False, 0.05) - 0.020) < 1e-9
    assert r.reo_wnd(True, False, 0.0001) == REO_WND_MIN          # capped by SRTT, floored


def test_rack_one_acks_blocks_in_recency_order_are_not_reordering() -> None:
    r = Rack()
    for k in range(4):
        r.sent(k * 100, (k + 1) * 100, 1.0, False)
    r.on_ack(0, ((300, 400), (100, 200)), lambda s, e: True, 1.01)
    assert not r.reordering_seen


# --- the connection ------------------------------------------------------------------------------
def test_lost_retransmission_is_detected_without_an_rto() -> None:
    """RFC 8985 §6.2: a fast retransmission lost again is found when data sent after it
    is SACKed -- RFC 6675's HighRxt has moved past it and only the RTO would resend it."""
    rig, mss = sack_in_flight()
    c = rig.conn
    rig.conn.cc.cwnd = 20 * mss
    out = rig.rx(ACK, ack=ISS + 1, sack=(seg_range(mss, 2, 10),), at=rig.now + 0.05)
    assert c.in_recovery and data_segments(out) == [(0, mss)]
    out = rig.send(bytes(2 * mss))                                # new data, sent after the retransmission
    assert [off for off, _ in data_segments(out)] == [10 * mss, 11 * mss]
    # both new segments arrive, the retransmission of segment 1 does not
    out = rig.rx(ACK, ack=ISS + 1, sack=(seg_range(mss, 2, 12),), at=rig.now + 0.05)
    assert data_segments(out) == [(0, mss)]                      # resent at once
    assert rig.host.stats.lost_retransmits == 1 and rig.host.stats.rto_fires == 0


def test_rto_keeps_the_scoreboard_and_never_resends_sacked_data() -> None:
    """RFC 6675 §5.1: the go-back-N after an RTO skips what the receiver SACKed -- even
    after repeated timeouts (the scoreboard is cleared only when the peer reneges)."""
    rig, mss = sack_in_flight()
    c = rig.conn
    rig.rx(ACK, ack=ISS + 1, sack=(seg_range(mss, 3, 3), seg_range(mss, 5, 5)), at=rig.now + 0.001)
    sacked = {2 * mss, 4 * mss}
    resent: list[tuple[int, int]] = []
    while rig.host.stats.rto_fires < 3:
        resent += data_segments(rig.poll_next())
    assert c.scoreboard.blocks == [seg_range(mss, 3, 3), seg_range(mss, 5, 5)]
    for k in range(2, 11):                                        # the peer takes the resends one by one
        if (k - 1) * mss in sacked:
            continue
        resent += data_segments(rig.rx(ACK, ack=ISS + 1 + (k - 1) * mss,
                                       sack=(seg_range(mss, 3, 3), seg_range(mss, 5, 5)), at=rig.now + 0.01))
    assert resent and not sacked & {off for off, _ in resent}
    assert rig.host.stats.sack_reneging == 0


def test_reneging_clears_the_scoreboard() -> None:
    """RFC 2018 §8: a cumulative ACK that stops at the start of a SACKed range means the
    receiver dropped that data -- only then is the scoreboard forgotten."""
    rig, mss = sack_in_flight()
    c = rig.conn
    rig.rx(ACK, ack=ISS + 1, sack=(seg_range(mss, 2, 2),), at=rig.now + 0.001)
    rig.rx(ACK, ack=ISS + 1 + mss, at=rig.now + 0.001)           # ACKs 1, not the SACKed 2
    assert rig.host.stats.sack_reneging == 1 and c.scoreboard.blocks == []


def test_reordering_waits_for_the_reordering_window() -> None:
    """RFC 8985 §6.2: once reordering has been seen, a hole is not retransmitted on
    DupThresh SACKs; it is when its reordering window runs out (the RACK timer) -- and not
    at all if it arrives within the window."""
    rig, mss = sack_in_flight(20)
    c = rig.conn
    t = rig.now
    # segment 1 arrives after segment 2: reordering, no retransmission
    out = rig.rx(ACK, ack=ISS + 1, sack=(seg_range(mss, 2, 2),), at=t + 0.05)
    assert data_segments(out) == []
    out = rig.rx(ACK, ack=ISS + 1 + 2 * mss, at=t + 0.0501)
    assert data_segments(out) == [] and c.rack.reordering_seen and c.rack_at is None
    # segment 3 late, 4..8 SACKed (more than DupThresh): it waits its window
    out = rig.rx(ACK, ack=ISS + 1 + 2 * mss, sack=(seg_range(mss, 4, 8),), at=t + 0.0502)
    assert data_segments(out) == [] and not c.in_recovery and c.rack_at is not None
    reo_wnd = c.rack.reo_wnd(False, True, c.rtt.srtt)
    assert c.rack_at > rig.now and abs(c.rack_at - (t + c.rack.rtt + reo_wnd)) < 1e-6
    # ...and arrives within it: nothing was ever resent
    out = rig.rx(ACK, ack=ISS + 1 + 8 * mss, at=rig.now + reo_wnd / 2)
    assert data_segments(out) == [] and rig.host.stats.retrans_segs == 0
    # segment 9 late, 10..12 SACKed: this time it never comes -- the RACK timer resends it
    out = rig.rx(ACK, ack=ISS + 1 + 8 * mss, sack=(seg_range(mss, 10, 12),), at=rig.now + 0.0001)
    assert data_segments(out) == []
    out = rig.poll_next()
    assert data_segments(out) == [(8 * mss, mss)]
    assert c.in_recovery and rig.host.stats.rack_timeouts == 1 and rig.host.stats.rto_fires == 0
    assert rig.host.stats.retrans_segs == 1


# --- undoing a spurious recovery (RFC 3708, RFC 3522, RFC 4015) ----------------------------------------
def _recovery_after_reordering() -> tuple[Rig, int, int, int]:
    """Segment 1 delayed (not lost): 2..10 SACKed, recovery, segment 1 retransmitted."""
    rig, mss = sack_in_flight()
    c = rig.conn
    c.cc.ssthresh = 40 * mss                                      # out of slow start, a known state
    cwnd, ssthresh = c.cc.cwnd, c.cc.ssthresh
    out = rig.rx(ACK, ack=ISS + 1, sack=(seg_range(mss, 2, 10),), at=rig.now + 0.05)
    assert c.in_recovery and data_segments(out) == [(0, mss)] and c.cc.cwnd < cwnd
    return rig, mss, cwnd, ssthresh


def test_dsack_of_every_retransmission_undoes_the_reduction() -> None:
    rig, mss, cwnd, ssthresh = _recovery_after_reordering()
    c = rig.conn
    # the original arrives, then the retransmission: the peer D-SACKs it (RFC 2883)
    rig.rx(ACK, ack=ISS + 1 + 10 * mss, sack=(seg_range(mss, 1, 1),), at=rig.now + 0.001)
    assert not c.in_recovery
    assert rig.host.stats.recovery_undos == 1 and rig.host.stats.dsacks_received == 1
    assert c.cc.cwnd == cwnd and c.cc.ssthresh == ssthresh


def test_ack_echoing_an_original_undoes_the_reduction() -> None:
    """RFC 3522 §2: the ACK ending recovery echoes a timestamp older than the first
    retransmission -- an original segment filled the hole (Linux tcp_packet_delayed)."""
    rig, mss, cwnd, ssthresh = _recovery_after_reordering()
    c = rig.conn
    assert c.undo_tsval is not None
    rig.rx(ACK, ack=ISS + 1 + 10 * mss, ts=(rig.peer_ts(), c.undo_tsval - 1), at=rig.now + 0.001)
    assert not c.in_recovery and rig.host.stats.recovery_undos == 1
    assert c.cc.cwnd == cwnd and c.cc.ssthresh == ssthresh


def test_needed_retransmission_keeps_the_reduction() -> None:
    rig, mss, _cwnd, ssthresh = _recovery_after_reordering()
    c = rig.conn
    rig.rx(ACK, ack=ISS + 1 + 10 * mss, at=rig.now + 0.001)       # echoes the retransmission
    assert not c.in_recovery and rig.host.stats.recovery_undos == 0
    assert c.cc.ssthresh < ssthresh and c.cc.cwnd == c.cc.ssthresh


def test_probe_timeout_is_two_srtt_plus_the_timer_slack() -> None:
    """RFC 8985 §7.2: PTO = 2 SRTT (several segments in flight), plus Linux's 2 ms slack
    -- not a fixed 10 ms floor, which left a sub-millisecond path idle for 10 ms."""
    from protocols.tcp.timer import PTO_FLOOR

    from .test_tcp_conn import established

    rig = established(ts=True, sack=True, peer_ws=None, rtt=0.001, loss_probes=True)
    c = rig.conn
    c.nodelay = True
    rig.send(bytes(4 * c.mss))
    rig.rx(ACK, ack=ISS + 1 + c.mss, at=rig.now + 0.001)          # re-arms with 3 segments out
    assert c.rtt.srtt > 0 and c.probe_at is not None
    assert abs(c.probe_at - (rig.now + 2 * c.rtt.srtt + PTO_FLOOR)) < 1e-9
    assert c.probe_at - rig.now < 0.01


# --- the receiver's D-SACK (RFC 2883) --------------------------------------------------------------------
def test_duplicate_segment_is_reported_once_as_a_dsack() -> None:
    """RFC 2883 §4: data at or below RCV.NXT arriving again is reported in the first SACK
    block of the next ACK -- once -- so the sender can undo a needless retransmission."""
    from .test_tcp_conn import IRS, established

    rig = established(ts=True, sack=True)
    c = rig.conn
    rig.rx(ACK, payload=b"a" * 1000, at=rig.now + 0.001)
    out = rig.rx(ACK, seq=IRS + 1, payload=b"a" * 1000, at=rig.now + 0.001)   # the same again
    assert len(out) == 1 and out[0].seg.sack == ((IRS + 1, IRS + 1001),)
    assert rig.host.stats.dsacks_sent == 1 and c.dsack is None
    # a partial duplicate: its old part is reported
    out = rig.rx(ACK, seq=IRS + 501, payload=b"b" * 1000, at=rig.now + 0.001)
    assert out and out[0].seg.sack == ((IRS + 501, IRS + 1001),)
    out = rig.rx(ACK, payload=b"c" * 10, at=rig.now + 0.001)
    assert all(not s.seg.sack for s in out)


def test_dsack_comes_before_the_out_of_order_blocks() -> None:
    from .test_tcp_conn import IRS, established

    rig = established(ts=True, sack=True)
    rig.rx(ACK, payload=b"a" * 1000, at=rig.now + 0.001)
    rig.rx(ACK, seq=IRS + 2001, payload=b"c" * 1000, at=rig.now + 0.001)       # a hole at 1001
    out = rig.rx(ACK, seq=IRS + 1, payload=b"a" * 1000, at=rig.now + 0.001)
    assert out[0].seg.sack == ((IRS + 1, IRS + 1001), (IRS + 2001, IRS + 3001))


def test_probe_is_rearmed_by_new_data_without_the_delayed_ack_allowance() -> None:
    """RFC 8985 §7.2: an ACK leaving one segment out arms PTO with the delayed-ACK
    allowance; the new data that ACK lets out re-arms it as 2 SRTT + slack -- the
    allowance stayed, and a tail loss idled the connection 40 ms longer."""
    from protocols.tcp.timer import PTO_FLOOR

    from .test_tcp_conn import established

    rig = established(ts=True, sack=True, peer_ws=None, rtt=0.001, loss_probes=True)
    c = rig.conn
    c.nodelay = True
    rig.send(bytes(2 * c.mss))
    rig.rx(ACK, ack=ISS + 1 + c.mss, at=rig.now + 0.001)          # one segment left out
    assert c.probe_at is not None and c.probe_at - rig.now > c.config.delack
    rig.send(bytes(2 * c.mss))                                    # new data goes out
    assert abs(c.probe_at - (rig.now + 2 * c.rtt.srtt + PTO_FLOOR)) < 1e-9


def test_rack_records_are_bounded_for_tiny_segments() -> None:
    """Tiny segments (TCP_NODELAY, 1-octet writes) beyond the cap join the newest record
    instead of adding one each -- the record stays bounded whatever the application does."""
    r = Rack(max_segments=8)
    for k in range(100):
        r.sent(k, k + 1, 1.0 + k * 1e-4, False)
    assert len(r) == 8 and r.inflight == 100
    r.on_ack(50, (), lambda s, e: False, 1.02)
    assert r.inflight == 50 and len(r) <= 8
    r.on_ack(100, (), lambda s, e: False, 1.03)
    assert len(r) == 0 and r.inflight == 0


def test_duplicate_of_out_of_order_data_is_dsacked_before_its_block() -> None:
    """RFC 2883 §4.2: a duplicate of queued out-of-order data -- the D-SACK block, then
    the block that holds it."""
    from .test_tcp_conn import IRS, established

    rig = established(ts=True, sack=True)
    rig.rx(ACK, payload=b"a" * 1000, at=rig.now + 0.001)
    rig.rx(ACK, seq=IRS + 2001, payload=b"c" * 1000, at=rig.now + 0.001)       # a hole at 1001
    rig.rx(ACK, seq=IRS + 4001, payload=b"e" * 1000, at=rig.now + 0.001)       # another at 3001
    out = rig.rx(ACK, seq=IRS + 2001, payload=b"c" * 1000, at=rig.now + 0.001)
    assert out[0].seg.sack == ((IRS + 2001, IRS + 3001), (IRS + 2001, IRS + 3001), (IRS + 4001, IRS + 5001))
    assert rig.host.stats.dsacks_sent == 1


def test_a_sack_block_the_scoreboard_refuses_delivers_nothing_to_rack() -> None:
    """A block reaching beyond SND.MAX is invalid (RFC 2018 §8; counted, ignored by the
    scoreboard): RACK must not take the segments inside it as delivered either, or the
    records, the pipe and the loss verdicts follow a lying peer (found in review)."""
    rig, mss = sack_in_flight()
    c = rig.conn
    inflight = c.rack.inflight
    left, _ = seg_range(mss, 2, 10)
    rig.rx(ACK, ack=ISS + 1, sack=((left, ISS + 1 + 10 * mss + 1),), at=rig.now + 0.01)
    assert rig.host.stats.sack_blocks_invalid == 1 and c.scoreboard.blocks == []
    assert c.rack.inflight == inflight and c.rack_at is None
    rig.now += 0.1
    c.poll(rig.now)
    assert not c.in_recovery


def test_retransmissions_at_the_cap_do_not_split_records() -> None:
    """RACK_MAX_SEGMENTS holds for retransmissions too: at the cap, resending every other
    piece of merged records re-stamps whole records (it made one record per piece, up to
    bytes in flight / MSS, found in review)."""
    r = Rack(max_segments=4)
    for k in range(100):
        r.sent(k * 64, (k + 1) * 64, 1.0 + k * 0.001, False)
    assert len(r._segs) == 4 and r.inflight == 6400
    r.mark_all_lost()
    for k in range(0, 100, 2):
        r.sent(k * 64, (k + 1) * 64, 2.0 + k * 0.001, True)
    assert len(r._segs) <= 5
    assert sum(seg.end - seg.start for seg in r._segs) == 6400       # still one record per octet
    r.on_ack(6400, (), lambda s, e: False, 3.0)
    assert r.inflight == 0 and not r._segs


def test_no_loss_probe_in_the_loss_state_after_an_rto() -> None:
    """RFC 8985 §7.2 / Linux tcp_schedule_loss_probe: no TLP while in the Loss state.  After
    an RTO each backed-off retransmission goes once -- a probe armed on each sent it twice
    (found by the scripted rto-backoff test) -- and once the retransmission is acknowledged
    past RECOVER, probes are armed again."""
    from .test_tcp_conn import established

    rig = established(ts=True, sack=True, peer_ws=None, rtt=0.1, loss_probes=True)
    c = rig.conn
    c.nodelay = True
    rig.send(bytes(1000))
    copies: list[float] = []
    while len(copies) < 5:
        out = rig.poll_next()
        copies += [rig.now for off, n in data_segments(out) if (off, n) == (0, 1000)]
    assert rig.host.stats.rto_fires >= 3 and c.rto_recovery
    gaps = [b - a for a, b in itertools.pairwise(copies[1:])]
    assert all(g > 0.05 for g in gaps), copies           # one copy per timeout, none doubled
    assert all(b >= 1.9 * a for a, b in itertools.pairwise(gaps))   # the RTO doubling alone
    rig.rx(ACK, ack=ISS + 1001, at=rig.now + 0.01)
    assert not c.rto_recovery
    rig.send(bytes(1000))
    assert c.probe_at is not None


# --- the pure ACKs of one receive batch, taken as one (input.py _hold_ack) -------------------
def test_a_batchs_pure_acks_are_taken_as_one_at_its_end() -> None:
    """Inside a receive batch the peer's pure ACKs wait, joined: at the batch's end one ACK
    with the newest cumulative ACK and every SACK block any of them carried goes through
    the scoreboard, RACK and the congestion control -- the lossy bench's sender handled
    ~9 ACKs per batch, each as long as a data segment's send."""
    rig, mss = sack_in_flight()
    c = rig.conn
    rig.host.batching = True
    rig.now += 0.1
    assert rig.rx(ACK, ack=ISS + 1 + mss) == []                      # segment 1
    assert rig.rx(ACK, ack=ISS + 1 + mss, sack=(seg_range(mss, 3, 3),)) == []
    assert rig.rx(ACK, ack=ISS + 1 + mss, sack=(seg_range(mss, 5, 6), seg_range(mss, 3, 3))) == []
    assert c.snd_una == ISS + 1 and not c.scoreboard.lefts           # nothing taken yet
    rig.host.batch_end(rig.now)
    assert c.snd_una == ISS + 1 + mss
    assert c.scoreboard.sacked == 3 * mss and c.ack_held is None
    assert rig.host.stats.dsacks_received == 0


def test_anything_but_the_next_pure_ack_takes_the_held_ones_first() -> None:
    """Order is kept: a data segment, an older ACK or a D-SACK meets the held ACK taken."""
    rig, mss = sack_in_flight()
    c = rig.conn
    rig.host.batching = True
    rig.now += 0.1
    rig.rx(ACK, ack=ISS + 1 + 2 * mss)
    assert c.snd_una == ISS + 1
    rig.rx(ACK, ack=ISS + 1 + mss)                                   # older: the held one first
    assert c.snd_una == ISS + 1 + 2 * mss
    rig.rx(ACK, ack=ISS + 1 + 3 * mss)
    rig.rx(ACK, ack=ISS + 1 + 3 * mss, sack=(seg_range(mss, 1, 1),))  # a D-SACK
    assert c.snd_una == ISS + 1 + 3 * mss and rig.host.stats.dsacks_received == 1
    rig.rx(ACK, ack=ISS + 1 + 4 * mss, sack=(seg_range(mss, 6, 6),))
    rig.rx(ACK, ack=ISS + 1 + 6 * mss)                               # its block is below this one's ACK:
    rig.host.batch_end(rig.now)                                      # no D-SACK for it
    assert c.snd_una == ISS + 1 + 6 * mss and rig.host.stats.dsacks_received == 1
    rig.host.batching = True
    rig.rx(ACK, ack=ISS + 1 + 7 * mss)
    rig.rx(ACK, seq=c.rcv_nxt, ack=ISS + 1 + 7 * mss, payload=b"x")  # text
    assert c.snd_una == ISS + 1 + 7 * mss and c.ack_held is None


def test_without_sack_or_outside_a_batch_every_ack_is_taken_at_once() -> None:
    rig = established(ts=True, sack=False, peer_ws=None, sndbuf=1 << 20)
    c = rig.conn
    c.nodelay = True
    mss = c.mss
    c.cc.cwnd = max(c.cc.cwnd, 4 * mss)
    rig.send(bytes(4 * mss))
    rig.host.batching = True
    rig.rx(ACK, ack=ISS + 1 + mss, at=rig.now + 0.1)
    assert c.snd_una == ISS + 1 + mss                                # duplicate ACKs count: none held
    rig2, mss2 = sack_in_flight()
    rig2.rx(ACK, ack=ISS + 1 + mss2, at=rig2.now + 0.1)
    assert rig2.conn.snd_una == ISS + 1 + mss2


def test_held_sack_blocks_are_joined_and_bad_ones_counted() -> None:
    """_union_sack: above the cumulative ACK, joined where they touch, lowest first; an
    inverted block or one beyond SND.MAX is dropped and counted, as the scoreboard does."""
    from protocols.tcp.input import _union_sack
    from protocols.tcp.stats import TcpStats
    st = TcpStats()
    ack, snd_max = 0xFFFFFF00, 0x1000                                # across the wrap
    got = _union_sack(((0xFFFFFF80, 0x100), (0xFFFFFE00, 0xFFFFFF10),
                       (0x100, 0x200), (0x300, 0x200), (0x800, 0x2000), (0x400, 0x500)), ack, snd_max, st)
    assert got == ((0xFFFFFF00, 0xFFFFFF10), (0xFFFFFF80, 0x200), (0x400, 0x500))
    assert st.sack_blocks_invalid == 2


def test_each_held_ack_of_new_data_gives_its_rtt_sample() -> None:
    """One RTT sample per ACK of new data, held or not (Linux tcp_ack_update_rtt): a SYN-ACK
    echoing the first of two SYNs starts the SRTT at 1 s, and one sample per batch brought
    it down ten times slower -- with the loss probe (2 SRTT) and the RTO after it."""
    srtts = []
    for batching in (False, True):
        rig = Rig(congestion="bbr")
        c = rig.conn
        syn1 = active_open(rig)
        rig.poll_next()                                               # the SYN-ACK was lost: SYN again
        rig.rx(SYN | ACK, seq=IRS, ack=ISS + 1, win=65535, at=rig.now + 0.002, mss=1460, wscale=7,
               sack_perm=True, ts=(rig.peer_ts(), syn1.seg.ts[0]))   # Linux echoes the first SYN
        assert c.rtt.srtt > 1.0
        out = rig.send(bytes(10 * 1448))
        rig.host.batching = batching
        rig.now += 0.002
        for k in range(1, 11):
            rig.rx(ACK, ack=ISS + 1 + k * 1448, ts=(rig.peer_ts(), out[k - 1].seg.ts[0]))
        rig.host.batch_end(rig.now)
        srtts.append(c.rtt.srtt)
    assert srtts[0] == srtts[1] < 0.3
