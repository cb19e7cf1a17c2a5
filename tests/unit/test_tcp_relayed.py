"""The lean relayed flow (protocols/tcp/relayed.py, issue 13), sans-IO with an explicit
clock: a held SYN answered by Tcp.forward_relay, segments in through Tcp.input, the host
socket a fake.  The handshake it offers, where the guest's bytes go and when they are
ACKed, the window it advertises and that its right edge never moves left, what the host's
bytes become (segments, retransmissions on timeout and on three duplicate ACKs, zero-window
probes), and how each side's end reaches the other."""
from __future__ import annotations

import random
import socket

import pytest

from protocols.ipv6.addr import ip6_to_int
from protocols.tcp import relayed as R
from protocols.tcp import seq as sq
from protocols.tcp.conn import State
from protocols.tcp.forward import ForwardRequest
from protocols.tcp.relayed import RelayedFlow
from protocols.tcp.wire import ACK, FIN, PSH, RST, SYN, TcpRepr, wscale_for

from .tcp6_net import pair
from .test_forwarder import REMOTE, gateway
from .test_tcp_listen import PEER, PEER_PORT

GUEST_ISN = 1000


class FakeHost:
    """The host socket: takes what `room` allows (None: all), records the rest."""

    def __init__(self, room: int | None = None) -> None:
        self.room = room
        self.got = bytearray()
        self.shut = False
        self.reads: list[bool] = []
        self.writes: list[bool] = []
        self.closed: bool | None = None          # None: open; else reset or not
        self.fail = False

    def to_host(self, data: memoryview) -> int:
        if self.fail:
            return -1
        n = len(data) if self.room is None else min(self.room, len(data))
        self.got += data[:n]
        if self.room is not None:
            self.room -= n
        return n

    def shut_host(self) -> None:
        self.shut = True

    def host_reads(self, on: bool) -> None:
        self.reads.append(on)

    def host_writes(self, on: bool) -> None:
        self.writes.append(on)

    def close_host(self, reset: bool) -> None:
        self.closed = reset


class Guest:
    """One relayed flow and the guest's side of the conversation."""

    def __init__(self, host: FakeHost | None = None, *, wscale: int | None = 7, mss: int = 1400,
                 win: int = 0xFFFF, sack: bool = False) -> None:
        self.net, self.requests = gateway()
        self.host = host or FakeHost()
        opts: dict[str, object] = {"mss": mss, "sack_perm": sack}
        if wscale is not None:
            opts["wscale"] = wscale
        self.wscale = wscale or 0
        self.net.rx(SYN, GUEST_ISN, dst=REMOTE, win=win, **opts)
        flow = self.net.tcp.forward_relay(self.requests[0].id, self.host, self.net.now)
        assert flow is not None
        self.flow: RelayedFlow = flow
        ((self.synack, _),) = self.net.take()
        self.seq = GUEST_ISN + 1                 # the guest's SND.NXT
        self.ack = self.synack.seq + 1           # ... and its RCV.NXT

    def rx(self, flags: int = ACK, payload: bytes = b"", *, seq: int | None = None, ack: int | None = None,
           win: int = 0xFFFF, at: float | None = None,
           sack: tuple[tuple[int, int], ...] = ()) -> list[tuple[TcpRepr, bytes]]:
        seqno = self.seq if seq is None else seq
        out = self.net.rx(flags, seqno, self.ack if ack is None else ack, payload, dst=REMOTE, win=win, at=at,
                          sack=sack)
        if seq is None:
            self.seq += len(payload) + (1 if flags & FIN else 0)
        return out

    def open(self, win: int = 0xFFFF) -> None:
        assert self.rx(win=win) == []


def test_handshake_offers_mss_and_window_scaling_only() -> None:
    g = Guest()
    s = g.synack
    assert s.flags == SYN | ACK and s.ack == GUEST_ISN + 1 and (s.src_port, s.dst_port) == (80, PEER_PORT)
    assert s.mss == 1460 and s.wscale == wscale_for(R.RELAY_WINDOW)
    assert not s.sack_perm and s.ts is None                  # one hop from its peer: no SACK, no timestamps
    assert s.window == 0xFFFF                                # RFC 7323 §2.2: a SYN's window is never scaled
    assert g.flow.state == R.SYN_RECEIVED and g.host.reads == []   # nothing read from the host yet
    g.open()
    assert g.flow.state == R.OPEN and g.host.reads == [True]
    assert g.net.tcp.relays.flows[(REMOTE, 80, PEER, PEER_PORT)] is g.flow


def test_without_the_guests_window_scale_neither_side_scales() -> None:
    g = Guest(wscale=None)
    assert g.synack.wscale is None
    g.open()
    g.flow.host_data(b"x" * 10, g.net.now)
    ((seg, _),) = g.net.take()
    assert seg.window == 0xFFFF                              # RELAY_WINDOW, capped to 16 bits unscaled


def test_lost_synack_is_sent_again_on_the_syn_and_on_the_timer() -> None:
    g = Guest()
    ((again, _),) = g.net.rx(SYN, GUEST_ISN, dst=REMOTE, mss=1400, wscale=7)
    assert again.flags == SYN | ACK and again.seq == g.synack.seq
    ((timed, _),) = g.net.poll(g.net.now + R.RTO_INITIAL)
    assert timed.flags == SYN | ACK
    for _ in range(R.SYNACK_RETRIES + 1):                    # then it gives up: the host is reset
        g.net.poll(g.flow.rto_at or g.net.now)
    assert g.host.closed is True and not g.net.tcp.relays.flows


def test_an_ack_for_something_else_in_syn_received_is_reset() -> None:
    g = Guest()
    ((rst, _),) = g.rx(ack=g.ack + 5)
    assert rst.flags == RST and rst.seq == g.ack + 5         # RFC 9293 §3.10.7.4: <SEQ=SEG.ACK><CTL=RST>
    assert g.flow.state == R.SYN_RECEIVED


def test_in_order_text_goes_before_its_ack_and_what_the_ack_lets_go_acknowledges_it() -> None:
    """Linux's tcp_rcv_established fast path: in-order text is taken before the ACK riding
    on it is processed -- the host socket has the request before any of the ACK's
    bookkeeping, and the data the ACK's window lets go carries the ACK of that text, so
    none is owed after it."""
    order: list[str] = []

    class Watching(FakeHost):
        def to_host(self, data: memoryview) -> int:
            order.append("to_host")
            return super().to_host(data)

    g = Guest(Watching())
    g.open(win=0)                                            # the guest's window shut
    g.flow.host_data(b"answer", g.net.now)
    assert g.net.take() == []                                # waits for the window
    window_seen = g.flow.snd_wnd
    ((seg, payload),) = g.rx(ACK | PSH, b"request", win=100)   # text + the window opening
    assert order == ["to_host"] and window_seen == 0 and bytes(g.host.got) == b"request"
    assert payload == b"answer" and seg.ack == g.seq         # the answer acknowledges the request
    assert g.flow.rcv_unacked == 0 and g.flow.delack_at is None


def test_guest_data_goes_to_the_host_and_its_ack_is_delayed() -> None:
    g = Guest()
    g.open()
    assert g.rx(ACK | PSH, b"request") == []                 # no ACK yet: the answer may carry it
    assert bytes(g.host.got) == b"request"
    ((ack, _),) = g.net.poll(g.net.now + R.DELAYED_ACK)
    assert ack.flags == ACK and ack.ack == g.seq


def test_the_hosts_answer_carries_the_ack() -> None:
    g = Guest()
    g.open()
    g.rx(ACK | PSH, b"request")
    g.flow.host_data(b"answer", g.net.now)
    ((seg, payload),) = g.net.take()
    assert payload == b"answer" and seg.flags == ACK | PSH and seg.ack == g.seq and seg.seq == g.ack
    assert g.net.poll(g.net.now + 0.5) == []                 # nothing owed: no delayed ACK (the RTO is 1 s)
    assert g.flow.rto_at is not None                         # (the answer is timed, until ACKed)


def test_two_segments_worth_is_acked_at_once() -> None:
    g = Guest()
    g.open()
    assert g.rx(payload=b"a" * 1400) == []
    ((ack, _),) = g.rx(payload=b"b" * 1400)
    assert ack.ack == g.seq and len(g.host.got) == 2800


def test_out_of_order_data_waits_for_the_hole_with_a_duplicate_ack() -> None:
    g = Guest()
    g.open()
    ((dup, _),) = g.rx(payload=b"world", seq=g.seq + 6)      # the hole first: kept, ACKed at once
    assert dup.ack == g.seq and not g.host.got and g.net.tcp.stats.relay_ooo_queued == 1
    assert g.net.tcp.relays.held == 5
    ((dup, _),) = g.rx(payload=b"old", seq=g.seq - 3)        # all old: a duplicate ACK too
    assert dup.ack == g.seq and not g.host.got
    ((ack, _),) = g.rx(payload=b"hello ")                     # the hole filled: all of it, ACKed at once
    g.seq += 5
    assert bytes(g.host.got) == b"hello world" and ack.ack == g.seq and g.net.tcp.relays.held == 0


def test_out_of_order_segments_beyond_the_window_or_the_bound_are_dropped() -> None:
    g = Guest()
    g.open()
    g.rx(payload=b"x", seq=g.seq + R.RELAY_WINDOW + 10)       # beyond the window
    for i in range(R.OOO_MAX + 5):
        g.rx(payload=b"y", seq=g.seq + 10 + 2 * i)
    assert len(g.flow.ooo) == R.OOO_MAX and g.net.tcp.stats.relay_dropped_ooo == 1 + 5


def test_a_retransmission_overlapping_new_data_is_trimmed() -> None:
    g = Guest()
    g.open()
    g.rx(payload=b"abc")
    g.rx(payload=b"abcdef", seq=g.seq - 3)
    g.seq += 3
    assert bytes(g.host.got) == b"abcdef"


def test_what_the_host_does_not_take_waits_and_closes_the_window() -> None:
    g = Guest(FakeHost(room=1000))
    g.open()
    ((ack, _),) = g.rx(payload=b"x" * 1400) + g.rx(payload=b"y" * 1400)
    assert len(g.host.got) == 1000 and g.host.writes == [True]
    waiting = 2800 - 1000
    assert ack.window << ack_shift(g) == R.RELAY_WINDOW - waiting and g.net.tcp.relays.held == waiting
    g.host.room = None
    g.flow.host_writable(g.net.now)
    assert bytes(g.host.got) == b"x" * 1400 + b"y" * 1400 and g.host.writes == [True, False]
    assert g.net.tcp.relays.held == 0
    assert g.net.take() == []      # the window grew by less than twice what was left: no update (Linux)


def ack_shift(g: Guest) -> int:
    return g.flow.rcv_wscale


def test_a_window_filled_then_emptied_is_announced() -> None:
    g = Guest(FakeHost(room=0))
    g.open()
    chunk = b"z" * 1400
    sent = 0
    while sent + len(chunk) <= R.RELAY_WINDOW:
        g.rx(payload=chunk)
        sent += len(chunk)
    room = R.RELAY_WINDOW - sent
    ((full, _),) = g.rx(payload=chunk)                       # what fits is taken, the rest ACKed back
    assert full.ack == g.seq - len(chunk) + room and full.window == 0
    g.seq = full.ack
    sent += room
    g.host.room = None
    g.flow.host_writable(g.net.now)
    ((update, _),) = g.net.take()
    assert update.window << ack_shift(g) == R.RELAY_WINDOW and len(g.host.got) == sent


def test_the_right_edge_never_moves_left() -> None:
    rng = random.Random(5)
    g = Guest(FakeHost(room=0))
    g.open()
    edge = g.seq
    for _ in range(400):
        if rng.random() < 0.2:
            g.host.room = rng.randrange(0, 20000)
            g.flow.host_writable(g.net.now)
            out = g.net.take()
        else:
            out = g.rx(payload=b"q" * rng.randrange(1, 1400))
            if g.flow.rcv_nxt != g.seq:
                g.seq = g.flow.rcv_nxt                       # the part beyond the window, resent later
        for seg, _ in out:
            right = seg.ack + (seg.window << g.flow.rcv_wscale)
            assert sq.ge(right, edge)
            edge = right


def test_host_data_is_cut_to_segments_within_the_guests_window() -> None:
    g = Guest(mss=1000, wscale=0)
    g.open(win=2500)
    assert g.flow.send_room() == 2500
    g.flow.host_data(b"d" * 2500, g.net.now)
    assert g.host.reads == [True, False]                     # the window is full: host reads pause
    segs = g.net.take()
    assert sum(len(p) for _, p in segs) == 2500
    assert all(seg.seq - g.ack + len(p) <= 2500 for seg, p in segs)
    g.rx(ack=g.ack + 2500, win=2500)
    g.ack += 2500
    assert g.host.reads == [True, False, True] and g.net.tcp.relays.held == 0


def test_the_timeout_resends_from_snd_una_with_backoff_then_gives_up() -> None:
    g = Guest()
    g.open()
    g.flow.host_data(b"lost", g.net.now)
    g.net.take()
    t = g.net.now
    rtos = []
    for _ in range(3):
        at = g.flow.rto_at
        assert at is not None
        ((again, payload),) = g.net.poll(at)
        assert payload == b"lost" and again.seq == g.ack
        rtos.append(at - t)
        t = at
    assert rtos == [R.RTO_INITIAL, 2 * R.RTO_INITIAL, 4 * R.RTO_INITIAL]   # RFC 6298 §5.5
    assert g.net.tcp.stats.relay_timeouts == 3
    out = []
    for _ in range(R.RETRIES - 3 + 1):
        at = g.flow.rto_at
        assert at is not None
        out = g.net.poll(at)
    assert [seg.flags & RST for seg, _ in out] == [RST]      # the last try: the guest is reset
    assert g.host.closed is True and g.net.tcp.stats.relay_aborted == 1 and not g.net.tcp.relays.flows


def test_three_duplicate_acks_resend_one_segment() -> None:
    g = Guest(mss=1000)
    g.open()
    g.flow.host_data(bytes(range(250)) * 20, g.net.now)      # 5000 octets: five segments
    g.net.take()
    for _ in range(2):
        assert g.rx() == []
    ((again, payload),) = g.rx()
    assert again.seq == g.ack and len(payload) == 1000 and g.net.tcp.stats.relay_fast_retrans == 1


def test_a_zero_window_is_probed_and_reopened() -> None:
    g = Guest()
    g.open(win=0)
    g.flow.host_data(b"wait", g.net.now)
    assert g.net.take() == []                                # nothing fits
    at = g.flow.rto_at
    assert at is not None
    ((probe, payload),) = g.net.poll(at)
    assert probe.seq == g.ack - 1 and payload == b""         # Linux tcp_xmit_probe_skb: SND.UNA - 1
    for _ in range(2 * R.RETRIES):                           # a guest that answers keeps the flow
        at = g.flow.rto_at
        assert at is not None
        g.net.poll(at)
        assert g.rx(win=0) == []
    assert g.host.closed is None and g.flow.rto <= R.RTO_MAX
    ((seg, payload),) = g.rx(win=100)                        # the window opens: the data goes
    assert payload == b"wait" and seg.seq == g.ack


def test_guest_fin_then_host_eof_closes_cleanly_and_lingers() -> None:
    g = Guest()
    g.open()
    ((ack, _),) = g.rx(ACK | FIN, b"bye")
    assert ack.ack == g.seq and g.host.shut and bytes(g.host.got) == b"bye"
    g.flow.host_data(b"more", g.net.now)                     # the other direction flows on
    g.flow.host_eof(g.net.now)
    segs = g.net.take()
    assert b"".join(p for _, p in segs) == b"more" and segs[-1][0].flags & FIN
    g.rx(ack=g.ack + 5)
    assert g.flow.state == R.LINGERING and g.host.closed is False
    ((again, _),) = g.rx(ACK | FIN, seq=g.seq - 1, ack=g.ack + 5)   # our ACK was lost: once more
    assert again.flags == ACK and again.ack == g.seq
    g.net.poll(g.net.now + R.LINGER)
    assert not g.net.tcp.relays.flows


def test_host_eof_first_and_the_guest_keeps_sending() -> None:
    g = Guest()
    g.open()
    g.flow.host_eof(g.net.now)
    ((fin, _),) = g.net.take()
    assert fin.flags == ACK | FIN and fin.seq == g.ack
    g.ack += 1
    g.rx(payload=b"still")
    assert bytes(g.host.got) == b"still" and g.flow.state == R.OPEN
    ((ack, _),) = g.rx(ACK | FIN)
    # our FIN was ACKed already: the flow ends, and closing the host socket is its FIN
    assert ack.ack == g.seq and g.flow.state == R.LINGERING and not g.host.shut and g.host.closed is False


def test_a_new_syn_for_a_lingering_flow_goes_to_the_forwarder() -> None:
    g = Guest()
    g.open()
    g.flow.host_eof(g.net.now)
    g.net.take()
    g.ack += 1
    g.rx(ACK | FIN)
    assert g.flow.state == R.LINGERING
    g.net.rx(SYN, GUEST_ISN + 100_000, dst=REMOTE, mss=1400)
    assert len(g.requests) == 2 and not g.net.tcp.relays.flows


def test_guest_reset_resets_the_host_and_a_blind_one_is_challenged() -> None:
    g = Guest()
    g.open()
    ((challenge, _),) = g.rx(RST, seq=g.seq + 10)
    assert challenge.flags == ACK and g.host.closed is None   # RFC 5961 §3.2
    assert g.rx(RST) == [] and g.host.closed is True and not g.net.tcp.relays.flows


def test_host_failure_resets_the_guest() -> None:
    g = Guest()
    g.open()
    g.flow.host_failed(g.net.now)
    ((rst, _),) = g.net.take()
    assert rst.flags & RST and rst.seq == g.ack and g.host.closed is False
    h = FakeHost()
    g2 = Guest(h)
    g2.open()
    h.fail = True
    ((rst, _),) = g2.rx(payload=b"to a dead host")
    assert rst.flags & RST and h.closed is False


def test_abort_resets_both_sides_and_frees_what_it_held() -> None:
    g = Guest(FakeHost(room=0))
    g.open()
    g.rx(payload=b"held")
    g.flow.host_data(b"unacked", g.net.now)
    g.net.take()
    assert g.net.tcp.relays.held == len(b"held") + len(b"unacked")
    g.net.tcp.relays.abort_all(g.net.now)
    ((rst, _),) = g.net.take()
    assert rst.flags & RST and g.host.closed is True and g.net.tcp.relays.held == 0


@pytest.mark.parametrize("n", [1, 1460, 5000])
def test_send_room_is_bounded_by_send_max(n: int) -> None:
    g = Guest()
    g.open(win=0xFFFF)                                       # x 2**7: more than SEND_MAX
    assert g.flow.send_room() == R.SEND_MAX
    g.flow.host_data(b"r" * n, g.net.now)
    assert g.flow.send_room() == R.SEND_MAX - n


def test_the_hosts_last_data_and_its_eof_go_in_one_segment() -> None:
    g = Guest()
    g.open()
    g.flow.host_data(b"last words", g.net.now, eof=True)    # the edge saw EPOLLRDHUP behind them
    ((seg, payload),) = g.net.take()
    assert payload == b"last words" and seg.flags == ACK | PSH | FIN
    assert g.host.reads == [True, False]                      # nothing more is read
    g.rx(ACK | FIN, ack=g.ack + len(payload) + 1)
    assert g.flow.state == R.LINGERING and not g.host.shut and g.host.closed is False   # the close is the FIN


def test_an_ipv6_guest_is_relayed_the_same_way() -> None:
    """Over IPv6 (tcp6_net's two nodes: a's TCP the guest, b the gateway answering for a
    remote address): the handshake with MSS = MTU - 60, data both ways, and the ends."""
    wire, a, b = pair()
    remote = ip6_to_int("2001:db8::99")
    ours = b.ipv6.is_ours
    b.ipv6.is_ours = lambda ifp, dst: dst == remote or ours(ifp, dst)   # the transparent interface
    requests: list[ForwardRequest] = []
    b.tcp.forwarder = requests.append
    c = a.usr6.attach(wire.now)
    assert a.usr6.connect(c, (remote, 443, 0, 0), wire.now) == 0
    wire.pump()
    host = FakeHost()
    flow = b.tcp.forward_relay(requests[0].id, host, wire.now)
    assert flow is not None and flow.net6 and b.tcp.relays.flows6 and not b.tcp.relays.flows
    wire.pump()
    assert c.state == State.ESTABLISHED and c.mss == 1440 and flow.state == R.OPEN
    assert a.usr6.send(c, memoryview(b"over six"), None, wire.now) == 8
    wire.pump()
    assert bytes(host.got) == b"over six"
    # early demux (Tcp.early_input6): the segment goes straight to the flow on a transparent
    # interface, and not on another
    wire.now += R.DELAYED_ACK
    b.tcp.poll(wire.now)                                  # our delayed ACK: the guest's Nagle lets go
    wire.pump()
    assert a.usr6.send(c, memoryview(b", early"), None, wire.now) == 7
    ((_, pkt),) = wire.queue
    wire.queue.clear()
    assert not b.tcp.early_input6(pkt.copy(), b.eth0, wire.now)    # eth0 is not transparent yet
    b.eth0.transparent = True
    delivered = b.ipv6.stats.in_delivers
    assert b.tcp.early_input6(pkt, b.eth0, wire.now)
    assert bytes(host.got) == b"over six, early" and b.ipv6.stats.in_delivers == delivered + 1
    flow.host_data(b"and back", wire.now, eof=True)
    wire.pump()
    got = a.usr6.recv(c, 100, False, wire.now)
    assert got is not None and got[0] == b"and back"
    a.usr6.shutdown(c, socket.SHUT_WR, wire.now)
    wire.pump()
    assert host.closed is False and flow.state == R.LINGERING and b.tcp.relays.held == 0   # closed: its FIN


def test_a_late_ack_of_what_went_before_a_go_back_is_taken() -> None:
    g = Guest(mss=1000, wscale=0)
    g.open(win=3000)
    g.flow.host_data(b"g" * 3000, g.net.now)
    assert len(g.net.take()) == 3
    assert g.rx(win=1000) == []                          # the guest's window shrinks (no ACK of data)
    at = g.flow.rto_at
    assert at is not None
    ((again, _),) = g.net.poll(at)                       # the RTO: back to SND.UNA, one window ...
    assert again.seq == g.ack and g.flow.snd_nxt == g.ack + 1000
    g.rx(ack=g.ack + 3000, win=1000)                     # ... and the first sending's ACK arrives
    assert g.flow.snd_una == g.flow.snd_nxt == g.flow.snd_max == g.ack + 3000 and not g.flow.unacked
    assert g.flow.rto_at is None and g.net.tcp.stats.retrans_segs >= 1


def test_with_sack_permitted_our_acks_name_what_waits_beyond_the_hole() -> None:
    g = Guest(sack=True)
    assert g.synack.sack_perm and g.synack.ts is None
    g.open()
    ((a1, _),) = g.rx(payload=b"b" * 100, seq=g.seq + 100)
    assert a1.ack == g.seq and a1.sack == ((g.seq + 100, g.seq + 200),)
    ((a2, _),) = g.rx(payload=b"d" * 100, seq=g.seq + 300)
    # RFC 2018 §4: the block of the segment that came last first
    assert a2.sack == ((g.seq + 300, g.seq + 400), (g.seq + 100, g.seq + 200))
    ((a3, _),) = g.rx(payload=b"a" * 100)
    assert a3.ack == g.seq + 100 and a3.sack == ((g.seq + 200, g.seq + 300),)     # (g.seq moved by 100)


def test_the_guests_sack_blocks_steer_the_resends_to_the_holes() -> None:
    g = Guest(mss=1000, wscale=0, sack=True)
    g.open(win=0xFFFF)
    g.flow.host_data(bytes(range(250)) * 40, g.net.now)     # ten segments
    g.net.take()
    base = g.ack
    # segments 0 and 3 lost: the guest SACKs 1-2, then 1-2 and 4..9
    holes = ((base + 1000, base + 3000),)
    g.rx(sack=holes)
    g.rx(sack=holes)
    ((first, p1),) = g.rx(sack=((base + 4000, base + 10000), (base + 1000, base + 3000)))
    assert first.seq == base and len(p1) == 1000                  # the third duplicate: hole one
    ((second, p2),) = g.rx(sack=((base + 4000, base + 10000), (base + 1000, base + 3000)))
    assert second.seq == base + 3000 and len(p2) == 1000          # the next: hole two, not 1-2 again
    assert g.rx(sack=((base + 4000, base + 10000), (base + 1000, base + 3000))) == []   # nothing else lost
    g.rx(ack=base + 10000)
    assert g.flow.recover is None and not g.flow.sacked and not g.flow.unacked
