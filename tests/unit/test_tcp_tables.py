"""TCP's connection tables (protocols/tcp/tcp.py), as Linux's inet_hashinfo: listeners by
port then local address with the wildcard as fallback (inet_lookup_listener), connections
by 4-tuple, bind buckets per port; the backlog clamp (net.core.somaxconn); SYN-ACK ISNs
that are SYN cookies.  No trio, no devices; the clock is a plain float."""
from __future__ import annotations

import errno
import gc
import tracemalloc
from collections import deque
from typing import Any, NoReturn

from protocols.addr import ip_to_int
from protocols.tcp.conn import Connection, State
from protocols.tcp.listen import COOKIE_PERIOD
from protocols.tcp.usrreq import TcpUserRequests
from protocols.tcp.wire import ACK, FIN, RST, SYN

from .test_tcp_listen import ISN_PEER, PEER, PEER_PORT, T0, US, Net

LOOPBACK = ip_to_int("127.0.0.1")


class NoWalk(dict):  # type: ignore[type-arg]
    """A table that may be looked up and updated, but never iterated."""

    def _walk(self, *_: Any) -> NoReturn:
        raise AssertionError("a per-segment path walked a table")

    __iter__ = keys = values = items = _walk     # type: ignore[assignment]


def listen_on(net: Net, addr: int, port: int = 80, backlog: int = 5, **opts: bool) -> Connection:
    lst = net.tcp.attach()
    for name, value in opts.items():
        setattr(lst, name, value)
    assert net.tcp.bind(lst, addr, port) == 0
    assert net.tcp.listen(lst, backlog) == 0
    return lst


def handshake(net: Net, sport: int, dport: int = 80, src: int = PEER) -> Connection:
    ((synack, _),) = net.rx(SYN, ISN_PEER, sport=sport, dport=dport, src=src)
    assert synack.flags == SYN | ACK
    assert net.rx(ACK, ISN_PEER + 1, synack.seq + 1, sport=sport, dport=dport, src=src) == []
    return net.tcp.conns[(US, dport, src, sport)]


# --- listener lookup -------------------------------------------------------------------------------
def test_specific_listener_wins_over_wildcard_whatever_the_order() -> None:
    """Linux's listener scoring: the exact local address before 0.0.0.0 (the two may
    coexist only as an SO_REUSEPORT pair, as on Linux)."""
    for wildcard_first in (True, False):
        net = Net()
        if wildcard_first:
            wild = listen_on(net, 0, reuseport=True)
            specific = listen_on(net, US, reuseport=True)
        else:
            specific = listen_on(net, US, reuseport=True)
            wild = listen_on(net, 0, reuseport=True)
        net.rx(SYN, ISN_PEER)
        assert net.child().parent is specific and wild.syn_count == 0


def test_wildcard_is_the_fallback_and_other_addresses_meet_their_own() -> None:
    net = Net()
    lo = listen_on(net, LOOPBACK)
    here = listen_on(net, US)
    assert net.tcp.listeners == {80: {LOOPBACK: [lo], US: [here]}}
    net.rx(SYN, ISN_PEER)
    assert net.child().parent is here
    # no listener for this address on port 81: a reset (RFC 9293 §3.10.7.1)
    (rst, _), = net.rx(SYN, ISN_PEER, dport=81)
    assert rst.flags & RST and net.tcp.stats.no_ports == 1


def test_listen_conflicts_on_overlapping_addresses_only() -> None:
    """Two SO_REUSEADDR sockets may bind overlapping names while neither listens; the
    second to listen finds the first in the listener index: EADDRINUSE (Linux)."""
    net = Net()
    here, wild, lo = (net.tcp.attach() for _ in range(3))
    for sock, addr in ((here, US), (wild, 0), (lo, LOOPBACK)):
        sock.reuseaddr = True
        assert net.tcp.bind(sock, addr, 80) == 0
    assert net.tcp.listen(here, 5) == 0
    assert net.tcp.listen(wild, 5) == errno.EADDRINUSE
    assert net.tcp.listen(lo, 5) == 0                       # another address: no overlap
    assert net.tcp.listeners == {80: {US: [here], LOOPBACK: [lo]}}
    blocked = net.tcp.attach()
    blocked.reuseaddr = True
    assert net.tcp.bind(blocked, 0, 80) == errno.EADDRINUSE  # nor may anyone bind over a listener


def test_reuseport_group_shares_the_address() -> None:
    net = Net()
    a = listen_on(net, 0, reuseport=True)
    b = listen_on(net, 0, reuseport=True)
    assert net.tcp.listeners[80][0] == [a, b]
    net.rx(SYN, ISN_PEER)
    assert net.child().parent is a
    net.tcp.stop_listening(a)
    net.tcp.unbind(a)
    net.rx(SYN, ISN_PEER, sport=PEER_PORT + 1)
    assert net.tcp.conns[(US, 80, PEER, PEER_PORT + 1)].parent is b


def test_closed_listener_leaves_the_index_and_the_port() -> None:
    net = Net()
    lst = listen_on(net, 0)
    lst.close(T0)
    assert net.tcp.listeners == {} and net.tcp.ports == {}
    (rst, _), = net.rx(SYN, ISN_PEER)
    assert rst.flags & RST


# --- per-segment work never walks a table ----------------------------------------------------------
def test_syn_and_segments_touch_no_other_connection() -> None:
    """With 300 connections on the port, a new handshake, data and a close look up
    dicts only: the port's bucket and the 4-tuple table refuse to be iterated."""
    net = Net()
    lst = listen_on(net, 0, backlog=1000)
    for i in range(300):
        handshake(net, 10000 + i)
    assert len(net.tcp.ports[80]) == 301 and len(lst.accept_queue or ()) == 300
    net.tcp.ports[80] = NoWalk(net.tcp.ports[80])
    net.tcp.conns = NoWalk(net.tcp.conns)
    child = handshake(net, 20000)
    assert child.state == State.ESTABLISHED and child.parent is lst
    net.rx(ACK | FIN, ISN_PEER + 1, child.snd_nxt, b"x", sport=20000)
    assert child.state == State.CLOSE_WAIT
    (rst, _), = net.rx(SYN, ISN_PEER, dport=81)            # no listener: a reset, still no walk
    assert rst.flags & RST


def test_connections_leave_their_port_in_constant_time() -> None:
    """Accepted connections hold the port (Linux __inet_inherit_port) and leave it when
    they end; the bucket is a dict, so leaving costs the same for the first and the last."""
    net = Net()
    lst = listen_on(net, 0, backlog=1000)
    kids = [handshake(net, 10000 + i) for i in range(50)]
    assert all(k in net.tcp.ports[80] for k in kids)
    for k in kids:
        net.rx(RST, ISN_PEER + 1, sport=k.fport)
    assert list(net.tcp.ports[80]) == [lst] and not net.tcp.conns
    assert len(lst.accept_queue or ()) == 50           # dead, but accept() still returns them


class NoSearchDeque(deque):  # type: ignore[type-arg]
    """An accept queue that may be appended to and popped, but never searched or walked."""

    def _search(self, *_: Any) -> NoReturn:
        raise AssertionError("a dying child searched its listener's accept queue")

    __contains__ = remove = index = __iter__ = _search    # type: ignore[assignment]


def test_a_child_dying_in_the_accept_queue_stays_there_as_in_linux() -> None:
    """A queued child that is reset stays in the queue (not searched for: that would be
    O(backlog) per death) and keeps its place against the backlog until accepted, as in
    Linux; accept() returns it in its turn, with ECONNRESET for its first read
    (scripts/rst-before-accept.pkt shows the kernel doing the same)."""
    net = Net()
    lst = listen_on(net, 0, backlog=3)
    kids = [handshake(net, 10000 + i) for i in range(3)]
    lst.accept_queue = NoSearchDeque(lst.accept_queue or ())
    net.rx(RST, ISN_PEER + 1, sport=kids[1].fport)
    assert kids[1].state == State.CLOSED and lst.accept_live == 3 and len(lst.accept_queue) == 3
    assert net.rx(SYN, ISN_PEER, sport=20000) == []        # the backlog is still full
    assert net.tcp.stats.listen_overflows == 1
    usr = TcpUserRequests(net.tcp)
    assert usr.readable(lst)
    accepted = [a[0] if a else None for a in (usr.accept(lst, T0) for _ in range(4))]
    assert accepted == [kids[0], kids[1], kids[2], None]
    assert all(c.owned and c.parent is None for c in accepted[:3])
    assert kids[1].so_error == errno.ECONNRESET
    assert lst.accept_live == 0 and not usr.readable(lst)


def test_children_dying_unaccepted_are_bounded_by_the_backlog() -> None:
    """Children reset faster than the application accepts fill the backlog and no more:
    later handshakes overflow (counted), and accept() drains the dead ones."""
    net = Net()
    lst = listen_on(net, 0, backlog=100)
    for i in range(100):
        kid = handshake(net, 20000 + i)
        net.rx(RST, ISN_PEER + 1, sport=kid.fport)
    for i in range(400):
        assert net.rx(SYN, ISN_PEER, sport=30000 + i) == []     # dropped: the queue is full
    assert len(lst.accept_queue or ()) == lst.accept_live == 100
    assert net.tcp.stats.listen_overflows == 400
    usr = TcpUserRequests(net.tcp)
    drained = [a[0] for a in iter(lambda: usr.accept(lst, T0), None)]
    assert len(drained) == 100 and all(c.state == State.CLOSED for c in drained)


# --- bind and port in use (SO_REUSEADDR as before) ------------------------------------------------------
def test_port_in_use_while_children_hold_it() -> None:
    """A server restarting while its old connections live: without SO_REUSEADDR the port
    is in use; with it (and the old ones not listening) it may be bound again."""
    net = Net()
    lst = listen_on(net, 0)
    handshake(net, 10000)
    net.tcp.stop_listening(lst)
    net.tcp.unbind(lst)
    again = net.tcp.attach()
    assert net.tcp.bind(again, 0, 80) == errno.EADDRINUSE
    again.reuseaddr = True
    assert net.tcp.bind(again, 0, 80) == errno.EADDRINUSE     # the child does not have it
    child = net.tcp.conns[(US, 80, PEER, 10000)]
    child.reuseaddr = True
    assert net.tcp.bind(again, 0, 80) == 0 and net.tcp.listen(again, 5) == 0


def test_time_wait_child_yields_to_reuseaddr_and_to_a_new_syn() -> None:
    net = Net()
    lst = listen_on(net, 0)
    child = handshake(net, 10000)
    child.owned = True                                       # accepted
    child.close(T0)                                          # our FIN
    (fin, _), = net.take()
    assert fin.flags & FIN
    net.rx(ACK | FIN, ISN_PEER + 1, child.snd_nxt, sport=10000)
    assert child.state == State.TIME_WAIT and child in net.tcp.ports[80]
    lst.close(T0)                                            # the server restarts
    other = net.tcp.attach()
    assert net.tcp.bind(other, US, 80) == errno.EADDRINUSE
    other.reuseaddr = True
    assert net.tcp.bind(other, US, 80) == 0                  # TIME-WAIT does not block SO_REUSEADDR
    assert net.tcp.listen(other, 5) == 0
    # RFC 6191: a new SYN above the old sequence space takes the 4-tuple over
    out = net.rx(SYN, ISN_PEER + 100_000, sport=10000)
    assert out and out[0][0].flags == SYN | ACK and child.state == State.CLOSED


def test_time_wait_is_bounded_by_max_tw_buckets() -> None:
    """net.ipv4.tcp_max_tw_buckets: a peer making us close first cannot pile up TIME_WAIT
    connections; beyond the bound one still ACKs the peer's FIN, then is gone at the next
    timer pass (tw_overflows); a slot freed by a TIME_WAIT ending is usable again."""
    net = Net(max_tw_buckets=2)
    listen_on(net, 0, backlog=10)

    def close_first(sport: int) -> Connection:
        child = handshake(net, sport)
        child.owned = True
        child.close(net.now)                                 # our FIN
        net.take()
        out = net.rx(ACK | FIN, ISN_PEER + 1, child.snd_nxt, sport=sport)
        assert [seg.flags for seg, _ in out] == [ACK]        # the peer's FIN is ACKed
        return child

    first, second, third = (close_first(port) for port in (10001, 10002, 10003))
    assert first.state == second.state == third.state == State.TIME_WAIT
    assert net.tcp.stats.tw_overflows == 1
    net.tcp.poll(net.now)
    assert third.state == State.CLOSED and (US, 80, PEER, 10003) not in net.tcp.conns
    assert first.state == second.state == State.TIME_WAIT
    net.now += 2 * net.tcp.config.msl
    net.tcp.poll(net.now)                                    # 2*MSL: both end, their slots free
    assert first.state == second.state == State.CLOSED
    assert close_first(10004).state == State.TIME_WAIT and net.tcp.stats.tw_overflows == 1


def test_ephemeral_ports_skip_ports_in_use() -> None:
    net = Net()
    first = net.tcp.attach()
    assert net.tcp.bind(first, 0, 0, explicit=False) == 0
    taken = first.lport
    net.tcp.ephemeral.next = taken                           # the search starts on the port in use
    second = net.tcp.attach()
    assert net.tcp.bind(second, 0, 0, explicit=False) == 0
    assert second.lport != taken and set(net.tcp.ports) == {taken, second.lport}


# --- backlog: net.core.somaxconn --------------------------------------------------------------------------
def test_backlog_clamped_to_somaxconn() -> None:
    net = Net()
    assert listen_on(net, 0, port=80, backlog=100_000).backlog == 4096       # Linux's default somaxconn
    assert listen_on(net, 0, port=81, backlog=-5).backlog == 0
    small = Net(somaxconn=16)
    assert listen_on(small, 0, backlog=4096).backlog == 16


def test_relisten_changes_the_backlog_only() -> None:
    net = Net()
    lst = listen_on(net, 0, backlog=5)
    assert net.tcp.listen(lst, 50) == 0 and lst.backlog == 50
    assert net.tcp.listeners == {80: {0: [lst]}}


# --- SYN-ACK ISN = cookie --------------------------------------------------------------------------------
def test_child_after_a_cookie_accepts_the_cookie_ack() -> None:
    """A burst: the SYN queue is full, a SYN gets a cookie; its retransmission finds room
    and makes a child.  The peer ACKs the first SYN-ACK: the child takes it (the same ISN)
    instead of resetting the peer."""
    net = Net()
    listen_on(net, 0, backlog=1)
    net.rx(SYN, ISN_PEER, sport=6000)                        # fills the SYN queue
    ((cookie_synack, _),) = net.rx(SYN, ISN_PEER, sport=PEER_PORT)
    assert net.tcp.stats.syncookies_sent == 1
    net.rx(RST, ISN_PEER + 1, sport=6000)                    # room again
    ((synack, _),) = net.rx(SYN, ISN_PEER, sport=PEER_PORT)  # the retransmitted SYN
    assert synack.seq == cookie_synack.seq
    assert net.rx(ACK, ISN_PEER + 1, cookie_synack.seq + 1) == []
    assert net.child().state == State.ESTABLISHED and net.tcp.stats.out_rsts == 0


def test_lost_child_is_rebuilt_from_the_cookie_while_cookies_are_in_use() -> None:
    """The SYN-ACK retries of a child are spent and it is gone; the listener overflowed
    recently, so the peer's late ACK is checked as a cookie and the connection is made."""
    net = Net(synack_retries=1)
    listen_on(net, 0, backlog=1)
    ((synack, _),) = net.rx(SYN, ISN_PEER)
    net.rx(SYN, 4242, sport=6000)                            # the SYN queue overflows: a cookie
    while net.tcp.conns:
        at = net.tcp.poll_at()
        assert at is not None
        net.poll(at)
    assert net.rx(ACK, ISN_PEER + 1, synack.seq + 1) == []
    assert net.child().state == State.ESTABLISHED and net.child().cookie


def test_without_a_recent_overflow_a_stray_ack_is_reset() -> None:
    """Linux's tcp_synq_no_recent_overflow: no cookie sent lately, no cookie checked -- a
    late duplicate of a finished handshake's ACK is reset, it opens nothing (and is not
    counted as a failed cookie)."""
    net = Net(synack_retries=1)
    listen_on(net, 0)
    ((synack, _),) = net.rx(SYN, ISN_PEER)
    while net.tcp.conns:
        at = net.tcp.poll_at()
        assert at is not None
        net.poll(at)
    ((rst, _),) = net.rx(ACK, ISN_PEER + 1, synack.seq + 1)
    assert rst.flags == RST and not net.tcp.conns and net.tcp.stats.syncookies_failed == 0


def test_cookie_window_closes_two_periods_after_the_last_overflow() -> None:
    net = Net()
    listen_on(net, 0, backlog=1)
    net.rx(SYN, ISN_PEER)
    ((cookie, _),) = net.rx(SYN, 4242, sport=6000)
    net.rx(RST, ISN_PEER + 1)                                # the queue empties
    ((rst, _),) = net.rx(ACK, 4243, cookie.seq + 1, sport=6000, at=T0 + 2 * COOKIE_PERIOD + 1)
    assert rst.flags == RST and not net.tcp.conns and net.tcp.stats.syncookies_failed == 0


def test_isn_without_cookies_is_rfc6528() -> None:
    net = Net(syncookies=False)
    listen_on(net, 0)
    ((synack, _),) = net.rx(SYN, ISN_PEER)
    assert synack.seq == net.tcp.isn((US, 80, PEER, PEER_PORT), T0)


def test_closing_a_listener_finds_its_children_by_its_port() -> None:
    """Linux inet_csk_listen_stop: queued children are reset, half-open ones dropped.  They
    are found among the port's sockets, not by a walk over every connection."""
    from protocols.tcp.usrreq import TcpUserRequests
    net = Net()
    lst = listen_on(net, 0, backlog=10)
    queued = [handshake(net, 10000 + i) for i in range(3)]
    net.rx(SYN, ISN_PEER, sport=20000)                       # half-open
    net.tcp.conns = NoWalk(net.tcp.conns)
    TcpUserRequests(net.tcp).detach(lst, T0)
    rsts = [seg for seg, _ in net.take() if seg.flags & RST]
    assert sorted(seg.dst_port for seg in rsts) == [10000, 10001, 10002, 20000]
    assert all(c.state == State.CLOSED for c in queued)
    assert len(net.tcp.conns) == 0 and net.tcp.ports == {} and net.tcp.listeners == {}


def test_an_idle_accepted_connection_holds_under_three_kib() -> None:
    """Issue 15: an idle connection costs at most 3 KiB of Python heap (`make bench`'s
    tracemalloc row, with its socket and the tables).  The protocol's share, measured the
    same way over 1000 handshakes: fields most connections never change live in the shared
    TcbRare, empty containers are shared until used, and connections on one route share its
    cache entry and numbers -- 2.66 KiB when this test was written (4.2 KiB before)."""
    net = Net()
    listen_on(net, US, backlog=4096)
    for sport in range(1000, 1050):              # warm: tables and caches past their first growth
        handshake(net, sport)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        conns = [handshake(net, sport) for sport in range(2000, 3000)]
        gc.collect()
        per_conn = (tracemalloc.get_traced_memory()[0] - base) / len(conns)
    finally:
        tracemalloc.stop()
    assert all(c.state == State.ESTABLISHED for c in conns)
    assert per_conn <= 2.85 * 1024, per_conn
