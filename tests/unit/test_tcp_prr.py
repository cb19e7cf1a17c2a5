"""Proportional Rate Reduction (prr.py, RFC 6937 PRR-SSRB as Linux's tcp_cwnd_reduction),
Linux's cwnd-limited rule and restart after idle (cwnd.py), and two RACK details the scripted
recovery tests found (rack.py): positions of an ISN in the upper half of the sequence
space, and the tie-break of segments sent at the same instant."""
from __future__ import annotations

from protocols.tcp.cwnd import CwndUse, restart_after_idle
from protocols.tcp.prr import Prr
from protocols.tcp.rack import Rack

MSS = 1000


def _started(prior_cwnd: int = 10 * MSS, ssthresh: int = 7 * MSS) -> Prr:
    prr = Prr()
    prr.start(prior_cwnd, ssthresh)
    return prr


def test_prr_first_ack_always_lets_the_fast_retransmission_go() -> None:
    prr = _started()
    # pipe 8 segments, above ssthresh 7: ceil(7/10 * 1) = 1 segment
    assert prr.on_ack(MSS, 8 * MSS, MSS, False, True) == 9 * MSS
    # even where the proportion gives nothing, the first segment goes (Linux does the same)
    prr = _started(prior_cwnd=100 * MSS, ssthresh=10 * MSS)
    assert prr.on_ack(1, 50 * MSS, MSS, False, True) == 51 * MSS


def test_prr_proportional_part_sends_ssthresh_over_prior_cwnd_of_what_is_delivered() -> None:
    """cwnd 10 -> ssthresh 7: over ten segments delivered, seven go out, rounded up to whole
    segments as Linux counts them -- the sequence the prr-single-loss script shows."""
    prr = _started()
    sent = []
    pipe = 8 * MSS
    for _ in range(4):
        cwnd = prr.on_ack(MSS, pipe, MSS, False, False)
        assert cwnd is not None
        n = max(cwnd - pipe, 0) // MSS
        sent.append(n)
        prr.on_sent(n * MSS)
        pipe = pipe - MSS + n * MSS
    # ceil(0.7), ceil(1.4), ceil(2.1), ceil(2.8) in all -> 1, 1, 1, 0
    assert sent == [1, 1, 1, 0]


def test_prr_ssrb_grows_back_to_ssthresh_no_faster_than_slow_start() -> None:
    prr = _started()
    prr.on_sent(MSS)
    prr.delivered = 5 * MSS
    # pipe 4 below ssthresh 7: max(delivered - out, this ACK) + 1 MSS for an advancing ACK
    assert prr.on_ack(MSS, 4 * MSS, MSS, True, False) == 4 * MSS + 3 * MSS     # capped by ssthresh - pipe
    prr = _started()
    prr.on_sent(5 * MSS)
    prr.delivered = 5 * MSS
    assert prr.on_ack(MSS, 5 * MSS, MSS, True, False) == 5 * MSS + 2 * MSS     # 1 delivered + 1 for the ACK
    assert prr.on_ack(MSS, 6 * MSS, MSS, False, True) == 6 * MSS + MSS          # no bonus: a new loss


def test_prr_ack_that_delivers_nothing_leaves_cwnd_and_inactive_prr_answers_nothing() -> None:
    prr = _started()
    assert prr.on_ack(0, 5 * MSS, MSS, False, False) is None
    prr.end()
    assert prr.on_ack(MSS, 5 * MSS, MSS, False, False) is None
    prr.on_sent(MSS)
    assert prr.out == 0


def test_rack_isn_in_the_upper_half_is_no_reordering() -> None:
    """Positions of an ISN above 2^31 are negative; in-order SACKs are no reordering."""
    isn = 0xF0000000
    r = Rack()
    r.rebase(isn)
    for k in range(4):
        r.sent(isn + k * 100, isn + (k + 1) * 100, 1.0, False)
    def sacked(start: int, end: int) -> bool:
        return (start - isn) % (1 << 32) >= 100 and (end - isn) % (1 << 32) <= 300
    r.on_ack(isn, ((isn + 100, isn + 200),), sacked, 1.1)
    r.on_ack(isn, ((isn + 100, isn + 300),), sacked, 1.1)
    assert not r.reordering_seen


def test_rack_same_instant_ties_go_by_transmission_order_not_sequence() -> None:
    """New data sent, then at the same instant a retransmission below it: the SACK of the
    new data does not make the retransmission lost (it was sent after it)."""
    r = Rack()
    r.sent(0, 100, 1.0, False)
    r.sent(100, 200, 1.0, False)
    r.sent(200, 300, 1.5, False)                           # new data at 1.5...
    r.sent(0, 100, 1.5, True)                              # ...then the retransmission of 0
    r.on_ack(0, ((100, 300),), lambda s, e: s >= 100 and e <= 300, 1.6)
    marked, _, _ = r.detect_loss(1.6, 0.0)
    assert marked == 0 and r.first_lost(0) is None


# --- cwnd.py: Linux's cwnd-limited rule and restart after idle -------------------------------
def test_cwnd_limited_in_slow_start_below_twice_the_most_in_flight() -> None:
    use = CwndUse()
    use.on_burst(False, 5 * MSS, 0, 5 * MSS)
    assert not use.is_cwnd_limited(10 * MSS, 1 << 30)         # 10 < 2 x 5 is false
    use.on_burst(False, 6 * MSS, 0, 6 * MSS)                   # more in flight than noted
    assert use.is_cwnd_limited(10 * MSS, 1 << 30)
    assert not use.is_cwnd_limited(10 * MSS, 7 * MSS)          # congestion avoidance: only a full cwnd


def test_cwnd_limited_note_holds_for_a_window() -> None:
    use = CwndUse()
    use.on_burst(True, 10 * MSS, 0, 10 * MSS)
    use.on_burst(False, 2 * MSS, 5 * MSS, 12 * MSS)            # within the window: still limited
    assert use.is_cwnd_limited(10 * MSS, 7 * MSS)
    use.on_burst(False, 2 * MSS, 10 * MSS, 12 * MSS)           # SND.UNA passed it: a new note
    assert not use.is_cwnd_limited(10 * MSS, 7 * MSS)


def test_restart_after_idle_halves_per_rto_down_to_the_restart_window() -> None:
    init = 10 * MSS
    assert restart_after_idle(40 * MSS, 1 << 30, 0.45, 0.3, MSS, init) == (20 * MSS, 1 << 30)
    assert restart_after_idle(40 * MSS, 1 << 30, 0.65, 0.3, MSS, init) == (10 * MSS, 1 << 30)
    assert restart_after_idle(40 * MSS, 1 << 30, 9.0, 0.3, MSS, init) == (10 * MSS, 1 << 30)
    # ssthresh keeps 3/4 of the old cwnd; a cwnd below the initial window stays
    assert restart_after_idle(20 * MSS, 8 * MSS, 1.0, 0.3, MSS, init) == (10 * MSS, 15 * MSS)
    assert restart_after_idle(4 * MSS, 2 * MSS, 1.0, 0.3, MSS, init) == (4 * MSS, 3 * MSS)
