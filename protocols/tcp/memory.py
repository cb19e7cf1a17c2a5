"""Socket-buffer memory: per-connection sizing (autotuning) and the stack-wide budget.

Linux is the model (net/ipv4/tcp_input.c, tcp_output.c, net/core/sock.c):

  * Buffers start small -- tcp_rmem[1] / tcp_wmem[1] -- and grow only when they are used:
    the receive buffer by Dynamic Right-Sizing (tcp_rcv_space_adjust: once per receiver
    RTT, if the application drained more than the last measurement, the buffer becomes
    about twice what it drained, up to tcp_rmem[2]); the send buffer with the congestion
    window (tcp_sndbuf_expand: twice the window in use, up to tcp_wmem[2]).  A client that
    never reads therefore pins tcp_rmem[1] + a couple of windows, not the maximum.
  * An explicit SO_RCVBUF / SO_SNDBUF fixes that buffer and turns its autotuning off
    (SOCK_RCVBUF_LOCK / SOCK_SNDBUF_LOCK).
  * One budget for every TCP buffer of the stack, tcp_mem's three marks (here in bytes,
    Linux counts pages):  below `low` buffers grow freely; above `pressure` the stack is
    under memory pressure until it falls back below `low` -- buffers stop growing and
    receive windows open by at most 4 segments at a time (Linux clamps rcv_ssthresh to
    4 * advmss) without ever retracting an edge already advertised; between `low` and
    `pressure` a window may promise at most an even share, the pressure mark over the
    connections with a window open (not Linux: see `window_share`); above `high`
    out-of-order data is dropped (the queue pruned, RFC 2018 §8 reneging, as
    tcp_prune_ofo_queue), send buffers are moderated to half of what they hold
    (sk_stream_moderate_sndbuf) and new connections are refused.  In-order data inside a
    window already advertised is always taken: a window is a promise (RFC 9293 §3.8.6.2.2,
    RFC 7323 §2.4), and per connection it is bounded by that buffer's size anyway.
  * The accounting counts what the buffers hold (`allocated`): the bytes in the send and
    receive queues (consumed bytes not yet compacted included) and every out-of-order block
    with a per-block overhead (buffers.OOO_BLOCK_OVERHEAD; Linux charges skb truesize, not
    payload) and the free room a block keeps in front for prepending.  The marks are compared
    with `committed`: that plus every receive window still open (RCV.ADV - RCV.NXT).  Linux
    instead drops in-window data at its hard limit; keeping every promise, we count it when
    it is made -- so a burst of handshakes, each offered a window, meets the budget before
    any byte arrives, and the total cannot pass `high` by more than one window plus a few
    segments per connection.  A connection that ends -- closed, reset, aborted, timed out --
    gives its buffers back at once.

Sans-IO like the rest of the core: the budget is a plain object on the Tcp protocol
(`Tcp.mem`), every step counted in TcpStats.
"""
from __future__ import annotations

from . import seq as sq
from .config import TcpConfig
from .state import State
from .stats import TcpStats
from .tcb import Tcb

# Under pressure a receive window opens by at most this many segments beyond what is
# already promised (Linux tcp_adjust_rcv_ssthresh: 4 * advmss).
PRESSURE_WINDOW_SEGMENTS = 4
# Dynamic Right-Sizing: the buffer aims at twice what the application drained per RTT,
# plus slack for 16 segments (Linux tcp_rcv_space_adjust).
DRS_SLACK_SEGMENTS = 16
INIT_CWND_SEGMENTS = 10           # RFC 6928; Linux tcp_sndbuf_expand's floor (TCP_INIT_CWND)
# The states in which the peer may still send us data: a window there is a promise
RECEIVING = frozenset({State.SYN_RECEIVED, State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2})


class SocketMemory:
    """The stack-wide budget (tcp_mem) and its state.

    `allocated` is the sum of what every connection's buffers hold.  `committed` adds what
    their receive windows have promised and not yet received (RCV.ADV - RCV.NXT): a peer
    may send that much at any moment and it will be taken, so it is memory already spent
    as far as the marks are concerned.  Deciding on `committed` is what makes the budget
    hold against a burst of connections: each SYN-ACK's window counts the moment it is
    offered, so a thousand handshakes cannot each be promised 64 KiB while nothing is
    held yet.  Both are kept by `update(conn)` after each event that may change a
    connection's buffers or window (segment input, user send/recv, timers, end of life)."""
    __slots__ = ("config", "stats", "allocated", "committed", "pressure", "promising")

    def __init__(self, config: TcpConfig, stats: TcpStats) -> None:
        self.config = config          # TcpConfig: `mem` is read at every check, so it may be retuned live
        self.stats = stats
        self.allocated = 0
        self.committed = 0
        self.pressure = False         # Linux tcp_memory_pressure
        self.promising = 0            # connections with a receive window open (their share, window_share)

    # --- the marks ---------------------------------------------------------------------------
    def below_low(self) -> bool:
        return self.committed < self.config.mem[0]

    def under_pressure(self) -> bool:
        return self.pressure

    def over_high(self) -> bool:
        return self.committed >= self.config.mem[2]

    def window_share(self) -> int | None:
        """Above `low` (not yet under pressure): the most one connection's receive window may
        promise, the pressure mark split evenly over the connections with a window open;
        None below `low`, where windows are free.  Without it the flows that grew first
        kept their large windows, pushed the budget into pressure, and the others were
        held to 4 segments there: 100 bulk flows into the stack got Jain's fairness 0.5."""
        mem = self.config.mem
        if self.committed <= mem[0]:
            return None
        return mem[1] // max(self.promising, 1)

    # --- accounting --------------------------------------------------------------------------
    def update(self, conn: Tcb) -> None:
        """Re-charge `conn` for what its buffers hold and its window promises now (O(1))."""
        # per segment: kept to a few attribute reads (sq.diff inlined: RCV.ADV >= RCV.NXT always)
        held = conn.snd.held() + conn.rcv.held()
        if conn.state in RECEIVING and not conn.rcv_fin and not conn.rcv_closed:
            promised = (conn.rcv_adv - conn.rcv_nxt) & sq.MASK
            if promised > sq.HALF:
                promised = 0
        else:
            promised = 0
        delta = held - conn.mem_charged
        delta_c = delta + promised - conn.mem_promised
        if delta or delta_c:
            if (promised > 0) != (conn.mem_promised > 0):
                self.promising += 1 if promised else -1
            conn.mem_charged = held
            conn.mem_promised = promised
            self.allocated += delta
            self.committed += delta_c
            self._track()

    def _track(self) -> None:
        low, pressure, _ = self.config.mem
        if self.pressure:
            if self.committed < low:              # Linux sk_leave_memory_pressure
                self.pressure = False
        elif self.committed > pressure:           # Linux sk_enter_memory_pressure
            self.pressure = True
            self.stats.mem_pressure += 1

    def admit(self) -> bool:
        """May a new connection be created?  No above `high` (counted)."""
        if self.over_high():
            self.stats.mem_refused += 1
            return False
        return True


class MemoryMixin(Tcb):
    """Buffer sizing of one Connection (a half of it over the control block, tcb.py, like
    input/output/timer)."""
    __slots__ = ()

    # --- limits ------------------------------------------------------------------------------
    def rcv_space_max(self) -> int:
        """The largest the receive buffer may become -- what the window scale is chosen
        for (Linux tcp_select_initial_window: tcp_rmem[2] unless SO_RCVBUF locked it)."""
        if self.rcvbuf_locked:
            return self.rcv.capacity
        return max(self.rcv.capacity, self.config.rmem[2])

    def set_rcvbuf(self, size: int) -> None:
        """SO_RCVBUF: a fixed size, no autotuning (SOCK_RCVBUF_LOCK)."""
        self.rcv.capacity = size
        self.rcvbuf_locked = True

    def set_sndbuf(self, size: int) -> None:
        """SO_SNDBUF: a fixed size, no autotuning (SOCK_SNDBUF_LOCK)."""
        self.snd.capacity = size
        self.sndbuf_locked = True

    def inherit_buffers(self, parent: Tcb) -> None:
        """An accepted child takes the listener's sizes and locks (Linux sk_clone_lock)."""
        self.rcv.capacity, self.snd.capacity = parent.rcv.capacity, parent.snd.capacity
        self.rcvbuf_locked, self.sndbuf_locked = parent.rcvbuf_locked, parent.sndbuf_locked

    # --- receive side: Dynamic Right-Sizing --------------------------------------------------
    def rcv_rtt_measure(self, now: float) -> None:
        """The receiver's RTT without timestamps' help (Linux tcp_rcv_rtt_measure): the time
        one advertised window takes to arrive is an upper bound of the RTT; keep the least.
        Called on in-order data."""
        if self.rcv_rtt_time is not None and sq.lt(self.rcv_nxt, self.rcv_rtt_seq):
            return
        if self.rcv_rtt_time is not None:
            sample = now - self.rcv_rtt_time
            if sample > 0 and (self.rcv_rtt == 0.0 or sample < self.rcv_rtt):
                self.rcv_rtt = sample
        self.rcv_rtt_seq = sq.add(self.rcv_nxt, max(sq.diff(self.rcv_adv, self.rcv_nxt), self.our_mss))
        self.rcv_rtt_time = now

    def _receiver_rtt(self) -> float:
        """The RTT the receive buffer is sized for: the receiver's own (windowed) estimate,
        as Linux's rcv_rtt_est; until there is one, the sender-side SRTT."""
        if self.rcv_rtt > 0.0:
            return self.rcv_rtt
        return self.rtt.srtt if self.rtt.samples else 0.0

    def rcv_space_adjust(self, copied: int, now: float) -> None:
        """After the application read `copied` bytes (Linux tcp_rcv_space_adjust): at most
        once per receiver RTT, compare what it drained in that time with the last measure."""
        self.rcv_copied += copied
        if self.rcvq_time is None:                  # the first read starts the first measure
            self.rcvq_seq, self.rcvq_time = self.rcv_copied - copied, now
            return
        rtt = self._receiver_rtt()
        if rtt <= 0.0 or now - self.rcvq_time < rtt:
            return
        drained = self.rcv_copied - self.rcvq_seq
        # Linux tcp_init_buffer_space: the first measure compares with an initial window
        space = self.rcvq_space or INIT_CWND_SEGMENTS * self.our_mss
        if drained > space:
            if self.config.moderate_rcvbuf and not self.rcvbuf_locked:
                self._grow_rcvbuf(drained, space)
            self.rcvq_space = drained
        self.rcvq_seq, self.rcvq_time = self.rcv_copied, now

    def _grow_rcvbuf(self, drained: int, space: int) -> None:
        cap = self.rcv.capacity
        limit = self.config.rmem[2]
        if cap >= limit:
            return
        # twice the drain rate, plus slack; and more in proportion to how fast the drain
        # rate itself grew (a sender in slow start doubles every RTT)
        want = 2 * drained + DRS_SLACK_SEGMENTS * self.our_mss
        want += 2 * want * (drained - space) // space
        want = min(want, limit)
        if want <= cap:
            return
        mem = self.host.mem
        if mem.under_pressure():
            self.host.stats.mem_grow_denied += 1       # Linux: no growth under pressure
            return
        self.rcv.capacity = want

    # --- send side: with the congestion window -----------------------------------------------
    def expand_sndbuf(self) -> None:
        """After an ACK moved the window (Linux tcp_new_space / tcp_sndbuf_expand): the send
        buffer holds twice the window in use -- what is in flight plus as much queued
        behind it -- never less than tcp_wmem[1], never more than tcp_wmem[2].  The window
        in use is cwnd, but no more than the peer's largest window: a receiver that does not
        read does not make us buffer more for it."""
        if self.sndbuf_locked:
            return
        window = min(max(self.cc.cwnd, INIT_CWND_SEGMENTS * self.mss), max(self.max_snd_wnd, self.mss))
        want = min(2 * window, self.config.wmem[2])
        if want <= self.snd.capacity:
            return
        mem = self.host.mem
        if not mem.below_low():                   # Linux tcp_should_expand_sndbuf: below tcp_mem[0]
            self.host.stats.mem_grow_denied += 1
            return
        self.snd.capacity = want

    def moderate_sndbuf(self) -> None:
        """Over the high mark, a writer's buffer shrinks to half of what it holds, not below
        tcp_wmem[0] (Linux sk_stream_moderate_sndbuf): it blocks until the queue drains."""
        if self.sndbuf_locked:
            return
        target = max(self.snd.queued // 2, self.config.wmem[0])
        if target < self.snd.capacity:
            self.snd.capacity = target
            self.host.stats.mem_sndbuf_moderated += 1

    def release_buffers(self) -> None:
        """End of life: give back what nobody can use any more.  The send queue always
        (nothing is sent from a CLOSED connection); the receive queue when no application
        can read it -- the socket was closed, or never accepted.  An open socket keeps its
        unread data until it reads it or closes (then this runs again)."""
        self.snd.clear()
        if self.user_closed or not self.owned:
            self.rcv.clear()
        self.host.mem.update(self)
