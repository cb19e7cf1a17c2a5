"""Socket-buffer memory (protocols/tcp/memory.py): receive autotuning (Linux DRS,
tcp_rcv_space_adjust), send buffer growth with the window (tcp_sndbuf_expand), the
stack-wide budget (tcp_mem: low / pressure / high) and what each of its states does to a
connection, and buffers given back the moment a connection ends.  Explicit clock
throughout; connections on the recording fake host of test_tcp_conn.py, or on a real Tcp
(test_tcp_offload.py's OffloadNet) where the accounting of the protocol object is the point."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from protocols.tcp import seq as sq
from protocols.tcp.buffers import OOO_BLOCK_OVERHEAD, RecvBuffer, SendBuffer
from protocols.tcp.conn import Connection, State, TcpConfig
from protocols.tcp.memory import SocketMemory
from protocols.tcp.tcp import TcpStats
from protocols.tcp.usrreq import TcpUserRequests
from protocols.tcp.wire import ACK, RST, SYN

from .test_tcp_conn import IRS, ISS, Rig, established
from .test_tcp_offload import OffloadNet

MSS = 1460
RTT = 0.05                       # established()'s SYN-ACK sample: the receiver's RTT until it measures one


def deliver(rig: Rig, nbytes: int, at: float) -> None:
    """The peer sends nbytes in order, MSS by MSS, at time `at`."""
    rig.now = at
    while nbytes > 0:
        n = min(MSS, nbytes)
        rig.rx(ACK, payload=b"d" * n)
        nbytes -= n


def read_all(rig: Rig, at: float) -> int:
    rig.now = at
    data = rig.conn.receive(1 << 30, False, at)
    rig.take()
    return len(data)


# --- receive autotuning ------------------------------------------------------------------------------
def test_receive_buffer_starts_at_rmem1_and_window_scale_covers_rmem2() -> None:
    rig = established(ts=False)
    c = rig.conn
    assert c.rcv.capacity == 131072 and not c.rcvbuf_locked
    assert c.rcv_wscale == 7                            # 0xFFFF << 7 >= tcp_rmem[2] (6 MiB)
    assert c.snd.capacity == 2 * 10 * c.mss             # tcp_init_buffer_space: 2 x the initial window


def test_drs_grows_by_what_the_application_drained_per_rtt() -> None:
    """Linux tcp_rcv_space_adjust: once per receiver RTT, if the application drained more
    than the last measure, the buffer becomes 2 x drained + 16 MSS, plus twice that again in
    proportion to the drain's growth over the last measure (the first compares with 10 MSS)."""
    rig = established(ts=False)
    c = rig.conn
    t = rig.now
    deliver(rig, 10 * MSS, t + 0.001)
    assert read_all(rig, t + 0.002) == 10 * MSS          # the first read starts the measure
    deliver(rig, 40 * MSS, t + 0.010)
    read_all(rig, t + 0.020)                             # within one RTT: no decision yet
    assert c.rcv.capacity == 131072
    deliver(rig, 20 * MSS, t + 0.030)
    read_all(rig, t + 0.002 + RTT)                       # one RTT after the start
    drained, space = 70 * MSS, 10 * MSS                 # from the start of the measure: the first read too
    want = 2 * drained + 16 * MSS
    want += 2 * want * (drained - space) // space
    assert c.rcv.capacity == want
    assert c.rcvq_space == drained
    # the next RTT drains less: no change (the buffer never shrinks by itself)
    deliver(rig, 5 * MSS, t + 0.06)
    read_all(rig, t + 0.002 + 2 * RTT + 0.001)
    assert c.rcv.capacity == want
    # the window the next ACK offers follows the larger buffer
    out = rig.rx(ACK, payload=b"d" * MSS, at=rig.now + 0.001)
    rig.conn.ack_now = True
    rig.conn.output(rig.now)
    out += rig.take()
    assert max(s.window << c.rcv_wscale for s in out) > 131072


def test_drs_is_capped_at_rmem2() -> None:
    rig = established(ts=False, rmem=(4096, 131072, 200_000))
    t = rig.now
    deliver(rig, 10 * MSS, t + 0.001)
    read_all(rig, t + 0.002)
    deliver(rig, 80 * MSS, t + 0.01)
    read_all(rig, t + 0.002 + RTT)
    assert rig.conn.rcv.capacity == 200_000


def test_a_client_that_never_reads_keeps_the_initial_buffer() -> None:
    """The peer fills the window; nothing is read: the buffer stays at tcp_rmem[1] and
    the window closes -- what a never-reading client pins is bounded by it."""
    rig = established(ts=False)
    c = rig.conn
    for _ in range(200):
        rig.rx(ACK, payload=b"d" * MSS, at=rig.now + 0.001)
    assert c.rcv.capacity == 131072
    assert len(c.rcv) <= 131072 and c.rcv.held() <= 131072
    assert c.rcv.free() < MSS                          # window closed (or nearly)


def test_so_rcvbuf_locks_the_size() -> None:
    """An explicit SO_RCVBUF turns autotuning off (Linux SOCK_RCVBUF_LOCK)."""
    rig = established(ts=False)
    c = rig.conn
    c.set_rcvbuf(65536)
    t = rig.now
    deliver(rig, 10 * MSS, t + 0.001)
    read_all(rig, t + 0.002)
    deliver(rig, 40 * MSS, t + 0.01)
    read_all(rig, t + 0.002 + RTT)
    assert c.rcv.capacity == 65536 and c.rcvbuf_locked
    assert c.rcv_space_max() == 65536                  # and the window scale is chosen for it


def test_config_rcvbuf_is_a_fixed_buffer() -> None:
    rig = established(ts=False, rcvbuf=4096, window_scaling=False)
    assert rig.conn.rcv.capacity == 4096 and rig.conn.rcvbuf_locked


def test_no_receive_growth_under_memory_pressure() -> None:
    rig = established(ts=False)
    c = rig.conn
    rig.host.mem.pressure = True
    t = rig.now
    deliver(rig, 10 * MSS, t + 0.001)
    read_all(rig, t + 0.002)
    deliver(rig, 40 * MSS, t + 0.01)
    read_all(rig, t + 0.002 + RTT)
    assert c.rcv.capacity == 131072
    assert rig.host.stats.mem_grow_denied == 1


def test_receiver_rtt_is_the_time_a_window_takes() -> None:
    """Linux tcp_rcv_rtt_measure: a window's worth of data arriving bounds the RTT from above."""
    rig = established(ts=False)
    c = rig.conn
    rig.rx(ACK, payload=b"d" * MSS, at=rig.now + 0.001)
    start, edge = rig.now, c.rcv_rtt_seq
    while sq.lt(c.rcv_nxt, edge):
        read_all(rig, rig.now)
        rig.rx(ACK, payload=b"d" * MSS, at=rig.now + 0.0005)
    assert c.rcv_rtt == pytest.approx(rig.now - start)


# --- send buffer -------------------------------------------------------------------------------------
def test_send_buffer_grows_with_the_window_in_use() -> None:
    """Linux tcp_sndbuf_expand: 2 x the window -- cwnd, but no more than the peer's largest."""
    rig = established(ts=False, win=0xFFFF)
    c = rig.conn
    c.nodelay = True
    c.cc.cwnd = 300_000
    n = c.send(memoryview(b"s" * 20_000), rig.now)
    rig.take()
    rig.rx(ACK, ack=ISS + 1 + n, win=0x2000, at=rig.now + 0.01)    # 0x2000 << 7 = 1 MiB
    assert c.max_snd_wnd == 1 << 20
    assert c.snd.capacity == 2 * 300_000
    c.cc.cwnd = 4 << 20
    m = c.send(memoryview(b"s" * 10_000), rig.now)
    rig.take()
    rig.rx(ACK, ack=ISS + 1 + n + m, win=0x2000, at=rig.now + 0.01)
    assert c.snd.capacity == 2 * (1 << 20)               # the peer's window bounds it


def test_send_buffer_capped_locked_and_not_grown_above_low() -> None:
    for setup, expect_denied in ((lambda r: r.conn.set_sndbuf(8192), 0),
                                 (lambda r: setattr(r.host.mem, "committed", r.config.mem[0]), 1)):
        rig = established(ts=False)
        c = rig.conn
        setup(rig)
        before = c.snd.capacity
        c.nodelay = True
        c.cc.cwnd = 300_000
        n = c.send(memoryview(b"s" * 4000), rig.now)
        rig.take()
        rig.rx(ACK, ack=ISS + 1 + n, win=0x2000, at=rig.now + 0.01)
        assert c.snd.capacity == before
        assert rig.host.stats.mem_grow_denied == expect_denied
    rig = established(ts=False, wmem=(4096, 16384, 50_000))
    rig.conn.cc.cwnd = 300_000
    rig.conn.nodelay = True
    n = rig.conn.send(memoryview(b"s" * 4000), rig.now)
    rig.rx(ACK, ack=ISS + 1 + n, win=0x2000, at=rig.now + 0.01)
    assert rig.conn.snd.capacity == 50_000               # tcp_wmem[2]


def test_send_buffer_moderated_over_the_high_mark() -> None:
    """Linux sk_stream_moderate_sndbuf: over the hard limit a writer's buffer drops to half
    of what it holds (not below tcp_wmem[0]), so it blocks until the queue drains."""
    rig = established(ts=False, win=0)
    c = rig.conn
    assert c.snd.capacity == 16384                       # a zero window: nothing to grow for
    assert c.send(memoryview(b"s" * 16000), rig.now) == 16000      # all queued
    rig.host.mem.committed = rig.config.mem[2]
    assert c.send(memoryview(b"s" * 1000), rig.now) == 0
    assert c.snd.capacity == 8000 and rig.host.stats.mem_sndbuf_moderated == 1


# --- the budget -------------------------------------------------------------------------------------
def budget_conn() -> Any:
    """What SocketMemory.update reads of a connection."""
    return SimpleNamespace(snd=SendBuffer(1 << 20), rcv=RecvBuffer(1 << 20), mem_charged=0, mem_promised=0,
                           state=State.ESTABLISHED, rcv_adv=0, rcv_nxt=0, rcv_fin=False, rcv_closed=False)


def charged(mem: SocketMemory, nbytes: int, conn: Any) -> None:
    conn.snd.data = bytearray(nbytes)
    mem.update(conn)


def test_budget_states_low_pressure_high() -> None:
    """tcp_mem: pressure is entered above [1] and left only below [0]; [2] refuses."""
    stats = TcpStats()
    mem = SocketMemory(TcpConfig(mem=(100, 200, 300)), stats)
    conn = budget_conn()
    charged(mem, 50, conn)
    assert mem.allocated == 50 and mem.below_low() and not mem.under_pressure() and mem.admit()
    charged(mem, 150, conn)
    assert not mem.below_low() and not mem.under_pressure()
    charged(mem, 201, conn)
    assert mem.under_pressure() and stats.mem_pressure == 1 and mem.admit()
    charged(mem, 150, conn)
    assert mem.under_pressure()                          # hysteresis: still under pressure
    charged(mem, 99, conn)
    assert not mem.under_pressure()
    charged(mem, 300, conn)
    assert mem.over_high() and stats.mem_pressure == 2
    assert not mem.admit() and stats.mem_refused == 1
    charged(mem, 0, conn)
    assert mem.allocated == mem.committed == 0 and conn.mem_charged == 0


def test_open_windows_count_as_committed() -> None:
    """What a window promised counts against the marks (not as held): a burst of
    handshakes, each offered a window, reaches pressure before any byte arrives."""
    stats = TcpStats()
    mem = SocketMemory(TcpConfig(mem=(100_000, 150_000, 200_000)), stats)
    conns = [budget_conn() for _ in range(3)]
    for c in conns:
        c.rcv_nxt, c.rcv_adv = 1000, 1000 + 65535          # a SYN-ACK's window
        mem.update(c)
    assert mem.allocated == 0 and mem.committed == 3 * 65535
    assert mem.under_pressure() and stats.mem_pressure == 1
    c = conns[0]
    c.rcv.append_in_order(b"x" * 5000, c.rcv_nxt)         # data arrives: promise becomes held
    c.rcv_nxt += 5000
    mem.update(c)
    assert mem.allocated == 5000 and mem.committed == 3 * 65535
    c.rcv_fin = True                                       # nothing more will come
    mem.update(c)
    assert mem.committed == 2 * 65535 + 5000
    for c in conns:
        c.state, c.rcv = State.CLOSED, RecvBuffer(1 << 20)
        mem.update(c)
    assert mem.allocated == mem.committed == 0


def test_above_low_each_window_may_promise_an_even_share() -> None:
    """Between tcp_mem's low and pressure marks a window may promise at most the pressure
    mark over the connections with a window open (window_share); below low, no limit.
    `promising` follows the windows as they open and close."""
    stats = TcpStats()
    mem = SocketMemory(TcpConfig(mem=(100_000, 150_000, 200_000)), stats)
    conns = [budget_conn() for _ in range(3)]
    for c in conns:
        c.rcv_nxt, c.rcv_adv = 1000, 1000 + 30_000
        mem.update(c)
    assert mem.promising == 3 and mem.committed == 90_000 and mem.window_share() is None
    conns[0].rcv_adv += 20_000                             # one window grows: above low
    mem.update(conns[0])
    assert mem.committed == 110_000 and not mem.under_pressure() and mem.window_share() == 50_000
    conns[1].rcv_fin = True                                # its window closes: two share
    mem.update(conns[1])
    assert mem.promising == 2 and mem.window_share() is None    # (80 000: below low again)
    conns[2].state = State.CLOSED
    mem.update(conns[2])
    assert mem.promising == 1


def test_a_window_above_its_share_is_offered_only_the_share_and_never_retracted() -> None:
    """A connection whose buffer has room for more than its share offers only the share
    (counted in mem_window_shared) and opens freely again once the budget is back below
    low -- so flows that grew first cannot hold the budget and push it into pressure,
    where the others would be held to 4 segments (100 bulk flows into the stack: Jain's
    fairness 0.5 -> 0.9)."""
    rig = established(ts=False)
    c = rig.conn
    mem = rig.host.mem
    deliver(rig, 2 * MSS, rig.now + 0.001)
    read_all(rig, rig.now + 0.001)
    mem.update(c)
    w = mem.committed                                      # its window, the only one so far
    c.rcv.capacity = 1 << 20                               # (as if DRS had grown it since)
    mem.config = TcpConfig(mem=(3 * w, 8 * w, 1 << 30))
    mem.committed += 3 * w                                 # three others, as large: above low
    mem.promising += 3
    assert mem.window_share() == 2 * w and not mem.under_pressure()
    c.ack_now = True
    c.output(rig.now)
    rig.take()
    offered = sq.diff(c.rcv_adv, c.rcv_nxt)
    assert 2 * w - (1 << c.rcv_wscale) < offered <= 2 * w     # (the scaled field's granularity)
    assert rig.host.stats.mem_window_shared >= 1
    mem.committed -= 3 * w                                 # they are gone: below low again
    mem.promising -= 3
    c.ack_now = True
    c.output(rig.now)
    rig.take()
    assert sq.diff(c.rcv_adv, c.rcv_nxt) > 4 * w           # the buffer's whole room


def test_accounting_counts_ooo_blocks_with_their_overhead() -> None:
    rcv = RecvBuffer(1 << 20)
    rcv.append_in_order(b"a" * 100, 0)
    rcv.insert_ooo(1000, b"b" * 10, 100)
    rcv.insert_ooo(2000, b"c" * 10, 100)
    assert rcv.held() == 100 + 20 + 2 * OOO_BLOCK_OVERHEAD
    assert rcv.prune_ooo() == 20                   # data bytes (its contract); held() drops the overhead too
    assert rcv.held() == 100 and rcv.ooo_count == 0 and rcv.sack_blocks(4) == ()


def _ooo_bytes_allocated(rcv: RecvBuffer) -> int:
    return sum(len(block.buf) for block in rcv._blocks.values())


def test_accounting_counts_the_headroom_of_prepended_ooo_blocks() -> None:
    """A run of segments arriving in descending order grows a block at its front, with
    headroom up to the block's size: held() counts those bytes too, and gives them back
    when the block is merged, pulled in order or pruned."""
    rcv = RecvBuffer(1 << 20)
    top = 100_000
    rcv.insert_ooo(top, b"z" * 50_000, 0)
    for k in range(1, 11):                          # 1000-byte segments, each in front of the last
        rcv.insert_ooo(top - 1000 * k, b"y" * 1000, 0)
    assert rcv.ooo_count == 1 and rcv.ooo_bytes == 60_000
    overhead = OOO_BLOCK_OVERHEAD * rcv.ooo_count
    assert rcv.ooo_headroom > 0
    assert rcv.held() == _ooo_bytes_allocated(rcv) + overhead
    rcv.insert_ooo(20_000, b"x" * 10, 0)            # a second block below it
    rcv.insert_ooo(20_010, b"x" * (top - 10_000 - 20_010), 0)   # fills the gap: one block again
    assert rcv.ooo_count == 1
    assert rcv.held() == _ooo_bytes_allocated(rcv) + OOO_BLOCK_OVERHEAD
    rcv.append_in_order(b"w" * 20_000, 0)           # reaches it: everything in order
    assert rcv.ooo_count == 0 and rcv.ooo_headroom == 0 and rcv.held() == len(rcv)
    rcv.insert_ooo(300_000, b"v" * 5000, 150_000)
    rcv.insert_ooo(299_000, b"v" * 1000, 150_000)
    assert rcv.ooo_headroom > 0
    rcv.prune_ooo()
    assert rcv.ooo_headroom == 0 and rcv.held() == len(rcv)


def test_under_pressure_windows_open_by_four_segments_and_never_retract() -> None:
    rig = established(ts=False)
    c = rig.conn
    deliver(rig, 10 * MSS, rig.now + 0.001)
    edge = c.rcv_adv
    rig.host.mem.pressure = True
    read_all(rig, rig.now + 0.001)
    c.ack_now = True
    c.output(rig.now)
    rig.take()
    assert c.rcv_adv == edge                             # promised: kept; but not moved on
    assert rig.host.stats.mem_window_clamped >= 1
    # the peer may fill what was promised: all of it is taken
    promised = sq.diff(edge, c.rcv_nxt)
    deliver(rig, promised, rig.now + 0.001)
    assert c.rcv_nxt == edge and len(c.rcv) == promised
    read_all(rig, rig.now + 0.001)
    c.ack_now = True
    c.output(rig.now)
    rig.take()
    offered = sq.diff(c.rcv_adv, c.rcv_nxt)
    assert 0 < offered <= 4 * c.our_mss                  # Linux: rcv_ssthresh <= 4 * advmss


def test_over_high_a_window_opens_only_to_rmem0() -> None:
    rig = established(ts=False)
    c = rig.conn
    deliver(rig, 10 * MSS, rig.now + 0.001)
    rig.host.mem.pressure = True
    rig.host.mem.committed = rig.config.mem[2]
    promised = sq.diff(c.rcv_adv, c.rcv_nxt)
    deliver(rig, promised, rig.now + 0.001)
    read_all(rig, rig.now + 0.001)
    c.ack_now = True
    c.output(rig.now)
    assert sq.diff(c.rcv_adv, c.rcv_nxt) <= rig.config.rmem[0]


def test_over_high_out_of_order_data_is_pruned_and_dropped() -> None:
    rig = established(ts=False)
    c = rig.conn
    base = c.rcv_nxt
    rig.rx(ACK, seq=sq.add(base, 2 * MSS), payload=b"o" * MSS, at=rig.now + 0.001)
    assert c.rcv.ooo_bytes == MSS
    rig.host.mem.committed = rig.config.mem[2]
    out = rig.rx(ACK, seq=sq.add(base, 4 * MSS), payload=b"o" * MSS, at=rig.now + 0.001)
    assert c.rcv.ooo_bytes == 0 and c.rcv.ooo_count == 0
    assert rig.host.stats.mem_ooo_pruned == 1 and rig.host.stats.mem_ooo_dropped == 1
    assert out and out[-1].ack == base                   # still ACKed at once (a duplicate ACK)
    # in-order data inside the window is still taken
    rig.rx(ACK, payload=b"i" * MSS, at=rig.now + 0.001)
    assert len(c.rcv) == MSS


# --- end of life: buffers back at once ---------------------------------------------------------
def net_with_data() -> tuple[OffloadNet, TcpUserRequests, Connection, int]:
    net = OffloadNet()
    usr = TcpUserRequests(net.tcp)
    conn = net.established()
    net.rx(conn, ACK, 5001, conn.snd_una, payload=b"r" * 3000)
    net.rx(conn, ACK, 5001 + 3000 + 2000, conn.snd_una, payload=b"o" * 1000)    # out of order
    net.rx(conn, ACK, 5001, conn.snd_una, win=0)                                # the peer's window shuts
    assert usr.send(conn, memoryview(b"s" * 7000), None, net.now) == 7000
    held = 3000 + 1000 + OOO_BLOCK_OVERHEAD + 7000
    assert net.tcp.mem_allocated == held
    return net, usr, conn, held


def test_close_with_unread_data_releases_everything_at_once() -> None:
    net, usr, conn, _ = net_with_data()
    usr.detach(conn, net.now)                            # close(): unread data -> RST (RFC 2525)
    assert conn.state == State.CLOSED
    assert net.tcp.mem_allocated == 0 and conn.mem_charged == 0
    assert conn.snd.held() == 0 and conn.rcv.held() == 0


def test_peer_reset_releases_the_send_queue_and_keeps_unread_data_until_close() -> None:
    net, usr, conn, _ = net_with_data()
    net.rx(conn, RST, conn.rcv_nxt, 0)
    assert conn.state == State.CLOSED
    assert net.tcp.mem_allocated == conn.rcv.held() == 3000 + 1000 + OOO_BLOCK_OVERHEAD
    assert usr.recv(conn, 1 << 20, False, net.now) == (b"r" * 3000, None)      # the data before the RST
    usr.detach(conn, net.now)
    assert net.tcp.mem_allocated == 0


def test_abort_and_timeout_release_at_once() -> None:
    net, usr, conn, _ = net_with_data()
    conn.owned = False                                   # e.g. a child the listener reset
    conn.abort(net.now, 0)
    assert net.tcp.mem_allocated == 0
    net, usr, conn, _ = net_with_data()
    conn.retries = net.tcp.config.retries2              # the next RTO gives up
    conn.user_closed = True
    conn.rto_at = net.now
    net.tcp.schedule(conn)
    net.tcp.poll(net.now)
    assert conn.state == State.CLOSED and net.tcp.mem_allocated == 0


def test_orphan_keeps_its_send_queue_until_acknowledged() -> None:
    """A graceful close(): the FIN follows the data, so the send queue stays charged while
    the orphan delivers it; the ACK of everything gives it back."""
    net = OffloadNet()
    usr = TcpUserRequests(net.tcp)
    conn = net.established()
    assert usr.send(conn, memoryview(b"s" * 5000), None, net.now) == 5000
    assert net.tcp.mem_committed > net.tcp.mem_allocated          # the open window counts
    usr.detach(conn, net.now)
    assert conn.state == State.FIN_WAIT_1 and net.tcp.mem_allocated == 5000
    # data for a closed socket gets an RST: its window is withdrawn from the budget at once
    assert net.tcp.mem_committed == net.tcp.mem_allocated
    net.rx(conn, ACK, 5001, conn.snd_max)
    assert net.tcp.mem_allocated == 0


def test_refused_over_high_connect_and_syn() -> None:
    net = OffloadNet()
    net.tcp.mem.committed = net.tcp.config.mem[2]
    conn = net.tcp.attach()
    assert net.tcp.connect(conn, 0x0A000001, 80, net.now) != 0
    assert net.tcp.stats.mem_refused == 1
    lst = net.tcp.attach()
    assert net.tcp.bind(lst, 0, 8080) == 0 and net.tcp.listen(lst, 16) == 0
    seg_count = len(net.tcp.conns)
    net.rx(lst, SYN, IRS, 0)                              # to port 8080 (rx uses lst.lport)
    assert len(net.tcp.conns) == seg_count and net.tcp.stats.mem_refused == 2
    assert net.segments() == []                           # dropped: the peer's SYN will retry
