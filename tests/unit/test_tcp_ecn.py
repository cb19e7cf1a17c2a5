"""ECN for TCP (RFC 3168; protocols/tcp/ecn.py and its hooks): the negotiation rules and the
per-connection state as pure functions, then two Tcp cores over real IPv6 cores (tcp6_net.py)
-- the traffic class's ECN bits reach TCP and TCP sets them -- with what crossed the wire
parsed by scapy.  The segment-by-segment behaviour against Linux is in the scripted tests
(tests/scripted/scripts/ecn-*.pkt)."""
from __future__ import annotations

import hashlib
import random
import socket
from typing import Any

import pytest
from scapy.layers.inet import TCP as ScapyTCP
from scapy.layers.inet6 import IPv6

from ndd import gso
from ndd.pktbuf import PacketBuffer
from protocols.sockopt import IPV6_TCLASS
from protocols.tcp import info
from protocols.tcp.conn import State
from protocols.tcp.ecn import (
    CE,
    ECN_OFF,
    ECN_ON,
    ECN_PASSIVE,
    ECT0,
    ECT1,
    NOT_ECT,
    Ecn,
    listener_accepts,
    syn_ecn_flags,
    syn_requests_ecn,
    synack_agrees,
)
from protocols.tcp.wire import ACK, CWR, ECE, PSH, SYN

from .tcp6_net import Node, Wire, pair
from .test_tcp6 import B6, PORT, connect6, listen6, transfer
from .test_tcp_conn import IRS, ISS, Rig, active_open


# --- negotiation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("mode", "flags", "codepoint", "agrees"), [
    (ECN_PASSIVE, SYN | ECE | CWR, NOT_ECT, True),     # Linux's default accepts
    (ECN_ON, SYN | ECE | CWR, NOT_ECT, True),
    (ECN_OFF, SYN | ECE | CWR, NOT_ECT, False),        # off: a plain SYN-ACK
    (ECN_PASSIVE, SYN | ECE, NOT_ECT, False),          # not an ECN-setup SYN: both flags needed
    (ECN_PASSIVE, SYN | CWR, NOT_ECT, False),
    (ECN_PASSIVE, SYN, NOT_ECT, False),
    (ECN_PASSIVE, SYN | ECE | CWR, ECT0, False),       # an ECT SYN: the field was rewritten on the way
    (ECN_PASSIVE, SYN | ECE | CWR, CE, False),
])
def test_listener_agrees_to_an_ecn_setup_syn_as_linux(mode: int, flags: int, codepoint: int, agrees: bool) -> None:
    assert listener_accepts(mode, flags, codepoint) is agrees


def test_syn_and_synack_flags() -> None:
    assert syn_requests_ecn(SYN | ECE | CWR) and not syn_requests_ecn(SYN | ECE)
    assert synack_agrees(SYN | ACK | ECE)
    assert not synack_agrees(SYN | ACK) and not synack_agrees(SYN | ACK | ECE | CWR)   # a reflector
    assert syn_ecn_flags(synack=False, retries=0, fallback=True) == ECE | CWR
    assert syn_ecn_flags(synack=False, retries=1, fallback=True) == 0        # tcp_ecn_fallback
    assert syn_ecn_flags(synack=False, retries=3, fallback=False) == ECE | CWR
    assert syn_ecn_flags(synack=True, retries=2, fallback=True) == ECE       # every SYN-ACK


# --- the receiver: CE -> ECE until CWR ----------------------------------------------------------
def test_ce_is_echoed_until_cwr_and_asks_for_quick_acks_once() -> None:
    e = Ecn()
    assert e.on_data(ECT0) is False and e.ack_flags() == 0
    assert e.on_data(CE) is True                          # the first CE: quick ACKs
    assert e.ack_flags() == ECE and e.data_flags() == ECE
    assert e.on_data(CE) is False                         # already echoing
    assert e.on_data(ECT1) is False and e.ack_flags() == ECE
    e.on_cwr()
    assert e.ack_flags() == 0
    assert e.on_data(CE) is True                          # a new episode


def test_not_ect_after_ect_asks_for_quick_acks() -> None:
    e = Ecn()
    assert e.on_data(NOT_ECT) is False                    # nothing seen yet
    e.on_data(ECT0)
    assert e.on_data(NOT_ECT) is True                     # likely a retransmission (Linux TCP_ECN_SEEN)


# --- the sender: one reduction per window, CWR once ---------------------------------------------------
def test_cwr_goes_on_one_data_segment_after_a_reduction() -> None:
    e = Ecn()
    assert e.data_flags() == 0 and not e.in_cwr
    e.enter_cwr(snd_max=5000)
    assert e.in_cwr and e.cwr_high == 5000
    assert e.ack_flags() == 0                             # never on a pure ACK
    assert e.data_flags() == CWR
    assert e.data_flags() == 0                            # once


def test_recovery_in_cwr_does_not_reduce_again() -> None:
    e = Ecn()
    e.enter_cwr(snd_max=100)
    e.data_flags()
    assert e.to_recovery() is True                        # reduced this window already
    assert not e.in_cwr and e.data_flags() == 0
    assert e.to_recovery() is False                       # a loss outside CWR: reduce, and say so
    assert e.data_flags() == CWR


def test_a_timeout_ends_cwr_and_queues_cwr() -> None:
    e = Ecn()
    e.enter_cwr(snd_max=100)
    e.data_flags()
    e.on_timeout()
    assert not e.in_cwr and e.data_flags() == CWR


# --- over IPv6: the traffic class's ECN bits both ways ----------------------------------------------
def _tcp_frames(wire: Wire, sender: Node) -> list[IPv6]:
    return [p for p in (IPv6(f.data) for f in wire.log if f.src is sender and f.data[0] >> 4 == 6) if p.nh == 6]


class _CeMarker:
    """A router on a's link that marks every ECT packet CE (RFC 3168 §5), as an AQM would."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.marked = 0

    def cached_header(self, nexthop: int) -> bytes | None:
        return None                   # contracts.LinkOutput: no header ready, output() each time

    def cached_header6(self, nexthop: int, src: int, now: float) -> bytes | None:
        return None

    def output(self, pkt: PacketBuffer, nexthop: int, now: float) -> int:
        # the router sees frames: what a's device layer sends (ndd/gso.py)
        for frame in gso.frames_for(pkt, self.node.eth0.ndd.caps) or []:
            data = frame.view()
            if data[0] >> 4 == 6 and (data[1] >> 4) & 3 in (ECT0, ECT1):
                marked = bytearray(data)
                marked[1] |= CE << 4               # the traffic class's low bits: byte 1, bits 4-5
                frame = PacketBuffer(bytes(marked))
                self.marked += 1
            self.node.output(frame, nexthop, now)
        return 0


def test_ecn_over_ipv6_sets_the_traffic_class_ect_on_data_only_and_keeps_the_dscp() -> None:
    wire, a, b = pair(ecn=ECN_ON)
    lst = listen6(b)
    c = a.usr6.attach(wire.now)
    assert a.usr6.setsockopt(c, socket.IPPROTO_IPV6, IPV6_TCLASS, 0x28, wire.now) == 0
    assert a.usr6.connect(c, (B6, PORT, 0, 0), wire.now) == 0
    wire.pump()
    got = b.usr6.accept(lst, wire.now)
    assert got is not None
    s = got[0]
    data = random.Random(3).randbytes(200_000)
    assert transfer(wire, (a, b), c, s, data) == data
    frames = _tcp_frames(wire, a)
    syn = frames[0]
    assert syn[ScapyTCP].flags == "SEC" and syn.tc == 0x28                     # ECE+CWR, Not-ECT
    synack = _tcp_frames(wire, b)[0]
    assert synack[ScapyTCP].flags == "SAE" and synack.tc & 3 == NOT_ECT
    with_data = [p for p in frames[1:] if len(p[ScapyTCP].payload)]
    assert with_data and all(p.tc == 0x28 | ECT0 for p in with_data)            # ECT(0), the DSCP kept
    pure_acks = [p for p in _tcp_frames(wire, b)[1:] if not len(p[ScapyTCP].payload)]
    assert pure_acks and all(p.tc & 3 == NOT_ECT for p in pure_acks)
    assert a.tcp.stats.ecn_negotiated == b.tcp.stats.ecn_negotiated == 1


def test_ce_marks_over_ipv6_reach_tcp_and_slow_the_sender() -> None:
    wire, a, b = pair()                                    # Linux's default: b accepts ...
    a.tcp.config.ecn = ECN_ON                              # ... and a asks
    lst = listen6(b)
    marker = _CeMarker(a)
    a.eth0.link = marker
    c, s = connect6(wire, a, b, lst)
    data = random.Random(4).randbytes(300_000)
    got = transfer(wire, (a, b), c, s, data)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert marker.marked > 0
    assert b.tcp.stats.ecn_ce_received == marker.marked       # the codepoint reached TCP
    b_flags = [p[ScapyTCP].flags for p in _tcp_frames(wire, b)[1:]]
    assert any(f.E for f in b_flags)                           # echoed
    assert a.tcp.stats.ecn_reductions >= 1                     # answered ...
    assert any(p[ScapyTCP].flags.C for p in _tcp_frames(wire, a)[1:])   # ... and said so with CWR
    assert c.cc.ssthresh < 1 << 30
    assert c.total_retrans == 0                                # no loss: ECN did the signalling


def test_no_ect_when_the_peer_does_not_negotiate() -> None:
    wire, a, b = pair(ecn=ECN_ON)
    b.tcp.config.ecn = ECN_OFF
    lst = listen6(b)
    c, s = connect6(wire, a, b, lst)
    assert c.ecn is None and s.ecn is None
    data = random.Random(5).randbytes(50_000)
    assert transfer(wire, (a, b), c, s, data) == data
    assert all(p.tc & 3 == NOT_ECT for p in _tcp_frames(wire, a))
    assert all(p.tc & 3 == NOT_ECT for p in _tcp_frames(wire, b))


# --- one connection on a recording host (test_tcp_conn.py's Rig) ---------------------------------------
def _ecn_established(**cfg: Any) -> Rig:
    """An active open with ECN asked for (tcp_ecn=1) and agreed by the SYN-ACK."""
    rig = Rig(ecn=ECN_ON, **cfg)
    syn = active_open(rig)
    assert syn.flags == SYN | ECE | CWR
    out = rig.rx(SYN | ACK | ECE, seq=IRS, ack=ISS + 1, at=rig.now + 0.05, mss=1460, wscale=7, sack_perm=True)
    assert rig.conn.state == State.ESTABLISHED and rig.conn.ecn is not None
    assert [s.flags for s in out] == [ACK]
    return rig


def test_the_first_ce_is_acked_at_once_with_ece_and_cwr_with_data_too() -> None:
    rig = _ecn_established(quickacks=0)
    c = rig.conn
    assert rig.rx(ACK | PSH, payload=bytes(100), ecn=ECT0) == []      # delayed, as any segment
    assert c.delack_at is not None
    out = rig.rx(ACK | PSH, payload=bytes(100), ecn=CE)               # Linux: quick ACK on CE
    assert [s.flags for s in out] == [ACK | ECE] and out[0].ack == IRS + 201
    assert rig.host.stats.ecn_ce_received == 1
    out = rig.rx(ACK | PSH | CWR, payload=bytes(100), ecn=ECT0)       # CWR with data: ACK at once
    assert [s.flags for s in out] == [ACK] and out[0].ack == IRS + 301


def test_a_loss_inside_cwr_does_not_reduce_twice() -> None:
    rig = _ecn_established()
    c = rig.conn
    out = rig.send(bytes(10 * c.mss))
    assert len(out) == 10 and all(not s.flags & CWR for s in out)
    cwnd0 = c.cc.cwnd
    rig.rx(ACK | ECE, ack=ISS + 1 + c.mss, at=rig.now + 0.05)          # one segment acked, with ECE
    assert info.ca_state(c) == info.CA_CWR and c.cc.ssthresh < cwnd0 and c.cc.cwnd == c.cc.ssthresh
    assert rig.host.stats.ecn_reductions == 1
    ssthresh = c.cc.ssthresh
    una = ISS + 1 + c.mss
    for k in range(1, 4):                                             # then a hole: SACKed beyond it
        rig.rx(ACK | ECE, ack=una, sack=((una + c.mss, una + (k + 1) * c.mss),), at=rig.now + 0.001)
    assert c.in_recovery and c.cc.ssthresh == ssthresh                # the window's one reduction
    assert info.ca_state(c) != info.CA_CWR and rig.host.stats.ecn_reductions == 1


def test_new_data_after_a_reduction_carries_cwr_once_retransmissions_go_not_ect() -> None:
    rig = _ecn_established()
    c = rig.conn
    (data,) = rig.send(bytes(c.mss))
    assert not data.flags & CWR and c.tos & 3 == ECT0
    assert rig.rx(ACK | ECE, ack=ISS + 1 + c.mss, at=rig.now + 0.05) == []
    (first,) = rig.send(bytes(c.mss))
    assert first.flags & CWR and c.tos & 3 == ECT0                    # CWR on the next new data
    (again,) = rig.poll_next()                                         # its RTO: a retransmission
    assert again.seq == first.seq and not again.flags & CWR and c.tos & 3 == NOT_ECT
    rig.rx(ACK, ack=ISS + 1 + 2 * c.mss, at=rig.now + 0.05)
    (after,) = rig.send(bytes(c.mss))
    assert after.flags & CWR and c.tos & 3 == ECT0                     # the timeout queued CWR again
    assert rig.rx(ACK, ack=ISS + 1 + 3 * c.mss, at=rig.now + 0.05) == []
    (last,) = rig.send(bytes(c.mss))
    assert not last.flags & CWR and c.tos & 3 == ECT0
