"""The passive closer's last moments when a loss probe crosses the peer's ACKs.

Found by tests/realpeer/test_tcp.py::test_tshark_no_bad_segments (about one run in seven
on a loaded machine): the stack, in LAST-ACK with ~19 segments and its FIN in flight, heard
nothing for 2 SRTT (Linux's ACKs sat behind a descheduled stack), so its tail-loss probe
resent the last segment with the FIN; then the ACKs arrived and closed the connection; the
Linux peer, in TIME-WAIT, answered the duplicate FIN with an ACK (RFC 9293 §3.10.7.4), and
that ACK found no connection and got an RST.  Linux does exactly this: its PTO is 2 SRTT +
TCP_TIMEOUT_MIN when more than one segment is out (tcp_schedule_loss_probe, no exception for
LAST-ACK), the passive closer keeps no TIME-WAIT (tcp_rcv_state_process -> tcp_done), and a
segment for no socket is answered by tcp_v4_send_reset.  So the behaviour is right and
pinned here; the realpeer test accepts exactly this RST and no other.
"""
from __future__ import annotations

import socket

from protocols.tcp.conn import State
from protocols.tcp.usrreq import TcpUserRequests
from protocols.tcp.wire import ACK, FIN, RST, SYN

from .test_tcp_listen import ISN_PEER, PEER, PEER_PORT, T0, US, Net

RTT = 0.02


def last_ack_with_a_tail_in_flight() -> tuple[Net, int, int]:
    """A passive open, the peer's FIN, then our 4 segments of data and our FIN, unanswered.
    Returns the net, the peer's sequence number after its FIN, and our SND.MAX."""
    net = Net()
    usr = TcpUserRequests(net.tcp)
    net.listener()
    ((synack, _),) = net.rx(SYN, ISN_PEER, mss=1460, wscale=7, sack_perm=True, ts=(1, 0))
    c = net.child()
    assert synack.ts is not None
    net.rx(ACK, ISN_PEER + 1, c.iss + 1, ts=(2, synack.ts[0]), at=T0 + RTT)
    assert c.state == State.ESTABLISHED and c.sack_ok and c.rtt.samples == 1
    net.rx(FIN | ACK, ISN_PEER + 1, c.iss + 1, ts=(3, synack.ts[0]), at=T0 + 2 * RTT)
    assert c.state == State.CLOSE_WAIT
    c.nodelay = True
    assert usr.send(c, memoryview(bytes(4 * c.mss)), None, net.now) == 4 * c.mss
    usr.shutdown(c, socket.SHUT_WR, net.now)
    net.tcp.poll(net.now)
    out = net.take()
    assert c.state == State.LAST_ACK and out[-1][0].flags & FIN
    return net, ISN_PEER + 2, c.snd_max


def test_probe_resends_the_fin_and_the_late_re_ack_gets_a_reset() -> None:
    net, peer_seq, snd_max = last_ack_with_a_tail_in_flight()
    c = net.child()
    # RFC 8985 §7.2 / Linux: PTO = 2 SRTT (+ a small floor) with more than a segment out --
    # well before the RTO.  The probe is the last segment again, with the FIN.
    probe_at = c.probe_at
    assert probe_at is not None and c.rto_at is not None and probe_at < c.rto_at
    assert probe_at - net.now < 0.1
    ((probe, payload),) = net.poll(probe_at)
    assert probe.flags & FIN and probe.seq + len(payload) + 1 == snd_max
    assert net.tcp.stats.loss_probes == 1
    # The peer's ACK of everything (sent before the probe reached it) closes LAST-ACK: the
    # passive closer keeps no TIME-WAIT (RFC 9293 §3.10.7.4), Linux likewise.
    assert net.rx(ACK, peer_seq, snd_max, at=probe_at + 0.001) == []
    assert c.state == State.CLOSED and (US, 80, PEER, PEER_PORT) not in net.tcp.conns
    # The peer, in TIME-WAIT, re-ACKs the duplicate FIN; for us that segment belongs to no
    # connection: <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.10.7.1), as tcp_v4_send_reset does.
    ((rst, _),) = net.rx(ACK, peer_seq, snd_max, at=probe_at + 0.002)
    assert rst.flags == RST and rst.seq == snd_max
    assert (rst.src_port, rst.dst_port) == (80, PEER_PORT)


def test_without_the_crossing_no_reset() -> None:
    """The same close when the ACK comes before the PTO: no probe, no RST -- the RST of the
    test above exists only because a retransmitted FIN met the peer in TIME-WAIT."""
    net, peer_seq, snd_max = last_ack_with_a_tail_in_flight()
    c = net.child()
    assert c.probe_at is not None
    assert net.rx(ACK, peer_seq, snd_max, at=net.now + RTT) == []
    assert c.state == State.CLOSED
    assert net.poll(net.now + 5) == [] and net.tcp.stats.loss_probes == 0


def test_probe_deadline_follows_every_ack_when_the_rto_comes_first() -> None:
    """The probe of the capture above went 23 ms after our FIN although ACKs of new data kept
    arriving every 0.2 ms and SRTT was ~230 ms (a queue-dominated RTT: ~1 MB in flight).  With
    steady samples RTTVAR shrinks, so RTO = SRTT + 4 RTTVAR < 2 SRTT = PTO; arm_probe then
    declined to arm a probe later than the RTO -- and left the OLD, earlier deadline in place,
    from an ACK long before.  RFC 8985 §7.2 / Linux (tcp_schedule_loss_probe): every ACK of
    new data re-arms the probe at min(PTO, time to RTO) from now; a deadline from an earlier
    ACK never survives.  Invariant checked after each ACK: no probe due sooner than that."""
    from .test_tcp_conn import established

    rig = established(loss_probes=True, rtt=0.01)
    c = rig.conn
    c.nodelay = True
    queue_rtt, step = 0.23, 0.002
    in_flight: list[tuple[int, float]] = []           # (end seq, sent at) of each segment sent
    acked_any = False
    for _ in range(1500):
        rig.now += step
        c.send(memoryview(bytes(c.mss)), rig.now)         # as much as the send buffer takes
        for s in rig.take():
            in_flight.append((s.seq + len(s.payload), s.at))
        acked = None
        while in_flight and in_flight[0][1] <= rig.now - queue_rtt:
            acked = in_flight.pop(0)
        if acked is None:
            continue
        for s in rig.rx(ACK, ack=acked[0], win=0xFFFF, ts=(rig.peer_ts(), c.host.ts_clock(acked[1]))):
            in_flight.append((s.seq + len(s.payload), s.at))
        acked_any = True
        if c.probe_at is not None:
            earliest = rig.now + min(2 * c.rtt.srtt, c.rto_at - rig.now if c.rto_at is not None else 1e9)
            assert c.probe_at >= earliest - 1e-9, (rig.now, c.probe_at, c.rtt.srtt, c.rto_at)
    assert acked_any and c.rtt.samples > 100
    assert 2 * c.rtt.srtt > c.rtt.current()           # the case of the capture: the RTO comes first
    assert rig.host.stats.loss_probes == 0 and c.total_retrans == 0
