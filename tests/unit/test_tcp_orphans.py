"""Orphans: connections the application closed that still deliver their data and FIN
(Linux net.ipv4.tcp_orphan_retries, tcp_max_orphans, tcp_fin_timeout).

The bug: an app queues 100 kB for a peer that keeps a zero window and answers every probe
(an HTTP client that never reads: the service's send_timeout, then close), and closes.  The
probes, answered, never end -- after 10 h (295 probes) the connection was still in FIN_WAIT_1
holding its 100 kB.  Now an orphan gives up after tcp_orphan_retries probes once their
backoff is at its maximum (or that many RTO retries), is reset and freed; and beyond
max_orphans a newly orphaned connection is reset at once.  A real Tcp (OffloadNet) so the
orphan count and the tcp_mem budget are the protocol's own; the clock is explicit."""
from __future__ import annotations

import errno

import pytest

from protocols.tcp.conn import Connection, State
from protocols.tcp.timer import ORPHAN_RETRIES
from protocols.tcp.usrreq import TcpUserRequests
from protocols.tcp.wire import ACK, FIN, RST, TcpRepr

from .test_tcp_offload import OffloadNet

QUEUED = 100_000
HOURS_10 = 10 * 3600.0


def never_reading_peer(net: OffloadNet, usr: TcpUserRequests) -> Connection:
    """An established connection whose peer took the first flight, then shut its window;
    QUEUED bytes wait in the send queue."""
    conn = net.established()
    assert usr.send(conn, memoryview(bytes(QUEUED)), None, net.now) == QUEUED
    net.now += 0.01
    net.rx(conn, ACK, 5001, conn.snd_max, win=0)          # what was in flight arrived; window shut
    net.segments()
    assert conn.snd_wnd == 0 and len(conn.snd) > 0 and conn.persist_at is not None
    return conn


def run_answering_probes(net: OffloadNet, conn: Connection, until: float) -> tuple[int, list[TcpRepr]]:
    """Fire every timer until `until` or the connection's end; the peer answers each probe
    at once with its unchanged zero window (RFC 9293 §3.8.6.1).  Returns the probes seen
    and the last segments sent."""
    probes = 0
    last: list[TcpRepr] = []
    while conn.state != State.CLOSED:
        at = net.tcp.poll_at()
        assert at is not None and at >= net.now - 1e-9
        if at > until:
            break
        net.now = at
        net.tcp.poll(net.now)
        last = [seg for seg, _ in net.segments()]
        if any(seg.flags & RST for seg in last):
            break
        if last:
            probes += sum(1 for seg in last if seg.seq == (conn.snd_una - 1) % (1 << 32))   # SND.UNA - 1: a bare probe
            net.now += 0.005
            net.rx(conn, ACK, 5001, conn.snd_una, win=0)
    return probes, last


def test_orphan_in_zero_window_probing_is_reset_and_freed() -> None:
    net = OffloadNet()
    usr = TcpUserRequests(net.tcp)
    conn = never_reading_peer(net, usr)
    usr.detach(conn, net.now)                              # close(): FIN after the data, an orphan
    assert conn.state == State.FIN_WAIT_1 and net.tcp.orphan_count == 1
    assert net.tcp.mem_allocated >= QUEUED - 20_000
    t0 = net.now
    probes, last = run_answering_probes(net, conn, t0 + HOURS_10)
    assert conn.state == State.CLOSED
    assert probes == ORPHAN_RETRIES                        # Linux's tcp_orphan_retries default
    assert net.now - t0 < 3600                             # minutes, not hours
    assert [s.flags & RST for s in last] == [RST]          # the answering peer is told
    stats = net.tcp.stats
    assert stats.orphan_timeouts == 1 and stats.aborts == 1
    assert net.tcp.orphan_count == 0 and net.tcp.mem_allocated == 0 and net.tcp.mem_committed == 0
    assert len(conn.snd) == 0 and not net.tcp.conns


def test_orphan_retries_is_configurable() -> None:
    net = OffloadNet()
    net.tcp.config.orphan_retries = 3
    usr = TcpUserRequests(net.tcp)
    conn = never_reading_peer(net, usr)
    usr.detach(conn, net.now)
    probes, _ = run_answering_probes(net, conn, net.now + HOURS_10)
    assert conn.state == State.CLOSED and probes == 3


def test_a_socket_still_open_keeps_probing_an_answering_peer() -> None:
    """RFC 1122 §4.2.2.17: a zero window answered is no reason to give up while someone owns
    the socket (it can still read, write or close it) -- only orphans are limited."""
    net = OffloadNet()
    usr = TcpUserRequests(net.tcp)
    conn = never_reading_peer(net, usr)
    probes, _ = run_answering_probes(net, conn, net.now + HOURS_10)
    assert conn.state == State.ESTABLISHED and probes > 100
    assert net.tcp.stats.orphan_timeouts == 0


def test_orphan_gives_up_after_orphan_retries_rtos_without_a_reset() -> None:
    """A silent peer: the orphan drops after tcp_orphan_retries RTO retries, not retries2
    (15); nothing more is sent to a peer that does not answer (Linux tcp_write_err)."""
    net = OffloadNet()
    usr = TcpUserRequests(net.tcp)
    conn = net.established()
    assert usr.send(conn, memoryview(bytes(5000)), None, net.now) == 5000
    usr.detach(conn, net.now)
    net.segments()
    rtos = 0
    while conn.state != State.CLOSED:
        at = net.tcp.poll_at()
        assert at is not None
        net.now = at
        net.tcp.poll(net.now)
        sent = [seg for seg, _ in net.segments()]
        assert not any(seg.flags & RST for seg in sent)
        rtos += 1
    assert rtos == ORPHAN_RETRIES + 1 < net.tcp.config.retries2
    stats = net.tcp.stats
    assert stats.orphan_timeouts == 1 and stats.timeouts == 1
    assert net.tcp.orphan_count == 0 and net.tcp.mem_allocated == 0


def test_beyond_max_orphans_a_closed_connection_is_reset_at_once() -> None:
    net = OffloadNet()
    net.tcp.config.max_orphans = 2
    usr = TcpUserRequests(net.tcp)
    conns = [never_reading_peer(net, usr) for _ in range(3)]
    held = net.tcp.mem_allocated
    for c in conns:
        usr.detach(c, net.now)
    assert [c.state for c in conns] == [State.FIN_WAIT_1, State.FIN_WAIT_1, State.CLOSED]
    rsts = [seg for seg, _ in net.segments() if seg.flags & RST]
    assert [seg.dst_port == 80 and seg.src_port for seg in rsts] == [conns[2].lport]
    assert net.tcp.stats.orphan_overflows == 1 and net.tcp.orphan_count == 2
    assert net.tcp.mem_allocated < held and len(conns[2].snd) == 0     # its queue given back
    # an orphan that ends frees its place
    conns[0].abort(net.now, 0)
    net.segments()
    assert net.tcp.orphan_count == 1
    c4 = never_reading_peer(net, usr)
    usr.detach(c4, net.now)
    assert c4.state == State.FIN_WAIT_1 and net.tcp.orphan_count == 2


def test_orphan_in_fin_wait_2_keeps_fin_timeout_and_time_wait_is_no_orphan() -> None:
    """Linux tcp_fin_timeout: a FIN_WAIT_2 orphan waits that long for the peer's FIN, not
    orphan_retries (no timer of ours is unanswered there); it leaves the orphan count
    when it ends.  TIME_WAIT is bounded by max_tw_buckets instead and is not an orphan."""
    net = OffloadNet()
    usr = TcpUserRequests(net.tcp)
    conn = net.established()
    usr.detach(conn, net.now)
    net.rx(conn, ACK, 5001, conn.snd_max)                  # our FIN is acknowledged
    assert conn.state == State.FIN_WAIT_2 and net.tcp.orphan_count == 1
    assert conn.poll_at() == pytest.approx(net.now + net.tcp.config.fin_timeout)
    net.now += net.tcp.config.fin_timeout - 1
    net.tcp.poll(net.now)
    assert conn.state == State.FIN_WAIT_2
    net.now += 1
    net.tcp.poll(net.now)
    assert conn.state == State.CLOSED and net.tcp.orphan_count == 0
    assert net.tcp.stats.orphan_timeouts == 0 and net.tcp.mem_allocated == 0

    net.segments()
    other = net.established()
    usr.detach(other, net.now)
    assert net.tcp.orphan_count == 1
    net.rx(other, ACK | FIN, 5001, other.snd_max)          # the peer's FIN: TIME_WAIT
    assert other.state == State.TIME_WAIT and net.tcp.orphan_count == 0


def test_an_orphan_reset_by_its_peer_leaves_the_count() -> None:
    net = OffloadNet()
    usr = TcpUserRequests(net.tcp)
    conn = never_reading_peer(net, usr)
    usr.detach(conn, net.now)
    assert net.tcp.orphan_count == 1
    net.rx(conn, RST, 5001, 0)
    assert conn.state == State.CLOSED and net.tcp.orphan_count == 0 and net.tcp.mem_allocated == 0
    assert conn.so_error in (0, errno.ECONNRESET)
