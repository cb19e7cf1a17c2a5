"""One TCP connection (RFC 9293 TCB): state, sequence variables, buffers, user calls.

The class is assembled from one concern per module, like 4.4BSD's tcp_input.c /
tcp_output.c / tcp_timer.c and gVisor's tcp/: segment arrival (input.py), segment
departure (output.py), timers (timer.py) and buffer memory (memory.py).  Each of those
halves subclasses the typed control block, Tcb (tcb.py: every field with its type, and
the calls one half makes into another), so mypy checks them all; Connection joins them and
gives the fields their initial values.  It is sans-IO: everything it sends goes through
`host.emit`, time comes in as `now`, and the socket layer is told of changes through
`on_event`.  `host` is the Tcp protocol (tcp.py) or a test double (tcb.TcpHost).
"""
from __future__ import annotations

import errno
from socket import AF_INET
from typing import Self

from . import info, prr
from . import seq as sq
from .buffers import NO_SCOREBOARD, RecvBuffer, SendBuffer
from .config import TcpConfig
from .congestion import ALGORITHMS
from .cwnd import CwndUse
from .delack import DelackMixin
from .ecn import ECN_ON, Ecn
from .input import InputMixin
from .memory import MemoryMixin
from .output import AUTOCORK, OutputMixin
from .rack import Rack
from .rate import RateEstimator
from .rtt import RttEstimator
from .state import CAN_SEND, SYNCHRONIZED, State
from .tcb import RARE_DEFAULTS, TcpHost, shared_int
from .timer import TimerMixin
from .urgent import Urgent, read_seq


class Connection(InputMixin, OutputMixin, TimerMixin, MemoryMixin, DelackMixin):
    __slots__ = ()                      # the fields are Tcb's (tcb.py)

    def __init__(self, host: TcpHost[Self], config: TcpConfig) -> None:
        self.host = host
        self.config = config
        # the fields most connections never change, shared until one does (tcb.py TcbRare):
        # undo state, rare counters, options
        self.rare = RARE_DEFAULTS
        self.state = State.CLOSED
        self.laddr = self.lport = self.faddr = self.fport = 0
        self.iss = self.snd_una = self.snd_nxt = self.snd_max = 0
        self.snd_wnd = self.snd_wl1 = self.snd_wl2 = self.max_snd_wnd = self.snd_wscale = 0
        self.irs = self.rcv_nxt = self.rcv_adv = self.rcv_wscale = self.last_ack_sent = 0
        self.mss = self.our_mss = 536
        self.peer_mss = 536
        self.pmtu = 0                   # path MTU below the link's the MSS obeys (0: none; Linux icsk_pmtu_cookie)
        self.ts_ok = False
        self.ts_recent = 0
        self.ts_recent_stamp = 0.0
        self.ts_offset = 0
        self.sack_ok = False
        self.want_wscale = config.window_scaling
        self.peer_wscale = None
        self.snd = SendBuffer(config.sndbuf or config.wmem[1])
        self.rcv = RecvBuffer(config.rcvbuf or config.rmem[1])
        self.rcvbuf_locked = config.rcvbuf is not None
        self.sndbuf_locked = config.sndbuf is not None
        self.mem_charged = 0                    # what the budget (host.mem) counts we hold
        self.mem_promised = 0                   # and what our window promised on top
        self.rcv_copied = self.rcvq_space = self.rcvq_seq = 0
        self.rcvq_time = None
        self.rcv_rtt = 0.0
        self.rcv_rtt_seq = 0
        self.rcv_rtt_time = None
        self.fin_queued = False
        self.fin_seq = None
        self.fin_acked = False
        self.rcv_fin = False
        self.ooo_fin = None
        self.rcv_closed = False
        self.rtt = RttEstimator(config.rto_min, config.rto_max)
        self.rtt_seq = None
        self.rtt_time = 0.0
        self.cc = ALGORITHMS[config.congestion](self.mss)
        self.dupacks = 0
        self.in_recovery = False
        self.rto_recovery = False
        self.recover = 0
        self.high_rxt = 0
        self.rexmit_una = False
        self.scoreboard = NO_SCOREBOARD          # its own at the first SACK (input.py)
        self.rack = Rack()                      # per-segment transmit times (RFC 8985), see rack.py
        self.prr = prr.IDLE                     # proportional rate reduction (RFC 6937), see prr.py
        self.cwnd_use = CwndUse()               # when cwnd may grow or restarts, see cwnd.py
        self.rack_at = None       # RACK's reordering timer (RFC 8985 §6.2 step 5)
        # pacing (output.py), only while the controller sets a pacing rate: when what was sent
        # has been paid for at that rate, and the timer that waits for it when that blocked a send
        self.pace_next = 0.0
        self.pace_at = None
        self._want_rate_samples()
        self.rto_at = None
        self.delack_at = None
        self.persist_at = None
        self.keep_at = None
        self.tw_at = None
        self.probe_at = None      # loss probe (RFC 8985 TLP), see timer.py
        self.probe_high = None      # SND.MAX when the probe left
        self.tlp_pending = None
        self.sched_at = None
        self.retries = 0
        self.persist_backoff = 0
        self.keep_probes = 0
        self.last_rcv = 0.0
        self.ack_now = False
        self.delack_bytes = 0
        self.quickacks = config.quickacks
        self.dsack = None   # a duplicate to report in the next ACK (RFC 2883)
        self.comp_acks = 0
        self.comp_at = None
        self.ack_held = None
        self.ack_held_now = 0.0
        self.ack_held_una = 0
        self.cork = self.push_more = False
        self.cork_until = 0.0
        self.snd_sml = self.chunk_end = 0
        self.chunk_psh = 0
        self.skb_end = -1
        self.ato = self.lrcvtime = 0.0
        self.pingpong = False
        self.ack_pushed = 0
        self.rcv_mss = 536
        self.rcv_wnd_max = 0
        self.so_error = 0
        self.nodelay = False
        self.keepalive = False
        self.keepidle, self.keepintvl, self.keepcnt = config.keepidle, config.keepintvl, config.keepcnt
        self.on_event = _nothing
        self.parent = None
        self.queued = False             # a child: in its listener's accept queue
        self.ifp = None
        self.rx_ifp = None
        self.dst_cache = None
        self.csum_offload = False
        self.tso_max = 0
        self.gso_max = 0
        self.ttl = None
        self.tos = 0
        self.reuseaddr = False
        self.user_closed = False
        self.shut_wr = False
        self.owned = True               # a socket holds it (children: once accepted)
        self.retransmits = self.segs_in = self.segs_out = 0
        self.bytes_acked = self.bytes_received = 0
        self.family = AF_INET
        self.net6 = False
        self.net_hdr_len = 20
        self.oif = None
        self.hop_limit = None                   # None: the IPv6 layer's default
        self.tclass = 0
        self.ecn = None
        self.tfo = None                         # TCP Fast Open (fastopen.py)
        self.lsndtime = self.rcv_tstamp = 0.0
        self.bytes_sent = self.data_segs_in = self.data_segs_out = self.delivered = 0
        self.chrono_type, self.chrono_start, self.chrono_stat = 0, 0.0, info.NO_CHRONO
        self.notsent_lowat = 0                  # 0: the stack's net.ipv4.tcp_notsent_lowat
        self.retrans_stamp = self.probes_stamp = None
        self.urg = None
        self.mtup = None

    def __repr__(self) -> str:
        return f"<Connection {self.lport}->{self.fport} {self.state.name}>"

    # --- what the socket layer asks -------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.fport != 0 and self.state != State.LISTEN

    def readable(self) -> bool:
        unread = self.rcv.queued
        if self.urg is not None and unread:             # the urgent byte out of band is no data
            unread -= self.urg.hidden(read_seq(self.rcv_nxt, unread, self.rcv_fin))
        return unread > 0 or self.rcv_fin or self.state == State.CLOSED

    def writable_space(self) -> int:
        return self.snd.space()

    def take_error(self) -> int:
        err, self.so_error = self.so_error, 0
        return err

    def set_mss_for(self, mtu: int) -> None:
        """Our MSS from the interface MTU: MTU - 40 over IPv4 (RFC 9293 §3.7.1), MTU - 60 over
        IPv6 (RFC 8200 §8.3: the IPv6 header is 40 octets) -- at most the user's TCP_MAXSEG,
        which the route never overrides (Linux tcp_advertise_mss / tcp_mss_clamp)."""
        self.our_mss = shared_int(max(mtu - 20 - self.net_hdr_len, 88))
        if self.user_mss:
            self.our_mss = min(self.our_mss, self.user_mss)

    def set_congestion(self, name: str) -> int:
        factory = ALGORITHMS.get(name)
        if factory is None:
            return errno.ENOENT
        cc = factory(self.mss)
        cc.cwnd = self.cc.cwnd
        if not cc.wants_rate_samples:
            cc.ssthresh = self.cc.ssthresh
        self.cc = cc
        # pace_at stays armed: data held back by the old controller's pacing goes out at that
        # wake-up (cleared here, it waited for the next ACK or the persist timer)
        self._want_rate_samples()
        return 0

    def _want_rate_samples(self) -> None:
        """Delivery-rate estimation (rate.py) runs for every connection, as Linux's tcp_rate.c
        (TCP_INFO's delivery rate); a controller that takes its samples (BBR) makes random
        choices too, its PROBE_BW phase, from the stack's seeded generator."""
        if self.cc.wants_rate_samples:
            rng = getattr(self.host, "rng", None)
            if rng is not None:
                self.cc.use_rng(rng)
            if self.rack.rate is None:
                self.rack.rate = RateEstimator()
        self.rack.want_rate = True              # the others: made at the first send (rack.py)

    # --- user calls (RFC 9293 §3.10) ------------------------------------------------------
    def open_active(self, iss: int, now: float) -> None:
        """OPEN (active): send SYN, enter SYN-SENT."""
        self.iss = iss
        self.snd_una = self.snd_nxt = self.snd_max = iss
        self.recover = iss
        self.state = State.SYN_SENT
        self.last_rcv = now
        if self.config.ecn == ECN_ON:
            self.ecn = Ecn()                     # an ECN-setup SYN (RFC 3168 §6.1.1)
        self.output(now)

    def send(self, data: memoryview, now: float, urgent: bool = False, more: bool = False,
             eor: bool = False) -> int:
        """SEND: queue as much as fits; returns the count (0 = buffer full).  `urgent`
        (MSG_OOB): the last byte queued is urgent data (urgent.py); `more` (MSG_MORE) holds
        this call's partial segment back, `eor` (MSG_EOR) keeps what comes next out of its
        segments (segmentation.py)."""
        if self.host.mem.over_high():
            self.moderate_sndbuf()
        n = self.snd.write(data)
        if n:
            self.cork_until = now + AUTOCORK
            if not self.chrono_type:       # Linux tcp_skb_entail: info.chrono_start(BUSY), inline
                self.chrono_type, self.chrono_start = info.CHRONO_BUSY, now
            if urgent:
                self.urgent().mark(sq.add(self.snd_una, self.snd.queued))
            # a call that waits for room pushes what it wrote (Linux wait_for_space: tcp_push
            # without MSG_MORE); its EOR belongs to its last octet
            part = n < len(data)
            self.snd.marks.wrote(n, sq.diff(self.snd_max, self.snd_una), more and not part, eor and not part,
                                 self.max_snd_wnd >> 1)
            if self.state in CAN_SEND or self.tfo is not None:    # a Fast Open child sends early
                self.push_more = more and not part
                self.output(now)
                self.push_more = False
        return n

    def receive(self, n: int, peek: bool, now: float) -> bytes:
        """RECEIVE: up to n in-order bytes; opens the window when that is worth an ACK."""
        data = self.rcv.read(n, peek) if self.urg is None else self._receive_to_mark(n, peek)
        if data and not peek:
            self.rcv_space_adjust(len(data), now)
            self.ack_on_read(now)
            self._window_update(now)
        return data

    def _receive_to_mark(self, n: int, peek: bool) -> bytes:
        """A read with urgent data about (Linux tcp_recvmsg): it stops at the mark, and one
        standing on it steps over the urgent byte unless SO_OOBINLINE (urgent.py)."""
        assert self.urg is not None
        rcv = self.rcv
        seq = read_seq(self.rcv_nxt, rcv.queued, self.rcv_fin)
        skip, n = self.urg.read_plan(seq, n)
        skip = min(skip, rcv.queued)
        data = rcv.peek_at(skip, n)
        if not peek:
            rcv.consume(skip + len(data))
            self.urg.after_read(sq.add(seq, skip + len(data)))
        return data

    def urgent(self) -> Urgent:
        """The urgent-data state, made on first use."""
        if self.urg is None:
            self.urg = Urgent()
        return self.urg

    def shutdown_write(self, now: float) -> None:
        """CLOSE of the sending half: queue a FIN after the data (RFC 9293 §3.10.4)."""
        if self.shut_wr:
            return
        self.shut_wr = True
        if self.state in (State.SYN_SENT, State.LISTEN, State.CLOSED):
            return
        self.fin_queued = True
        if self.state in (State.ESTABLISHED, State.SYN_RECEIVED):
            self.state = State.FIN_WAIT_1 if self.state == State.ESTABLISHED else self.state
        elif self.state == State.CLOSE_WAIT:
            self.state = State.LAST_ACK
        self.output(now)

    def close(self, now: float) -> None:
        """The application let go (close(2)).  Unread data or SO_LINGER 0 mean RST
        (RFC 2525 §2.17, as Linux); otherwise a graceful FIN and the connection lives
        on as an orphan until it completes."""
        self.user_closed = True
        self.rcv_closed = True
        self.on_event = _nothing
        st = self.state
        if st in (State.CLOSED, State.LISTEN, State.SYN_SENT):
            self.destroy()
            return
        if self.rcv.queued or self.rcv.ooo_bytes or self.linger0:
            self.abort(now, errno.ECONNABORTED)
            return
        self.shut_wr = False
        self.shutdown_write(now)
        if self.state == State.FIN_WAIT_2:
            self.tw_at = now + self.config.fin_timeout

    def abort(self, now: float, err: int = 0) -> None:
        """ABORT: an RST to the peer when synchronized, then gone (RFC 9293 §3.10.5)."""
        if (self.state in SYNCHRONIZED and self.state != State.TIME_WAIT) or self.state == State.SYN_RECEIVED:
            self.send_rst(now)
        self.host.stats.aborts += 1
        self.drop(err)

    def drop(self, err: int) -> None:
        """Enter CLOSED with `err` for the socket (0: a clean end)."""
        if err and not self.user_closed:
            self.so_error = err
        self.destroy()

    def destroy(self: Self) -> None:
        self.state = State.CLOSED
        self.rto_at = self.delack_at = self.persist_at = self.keep_at = self.tw_at = self.probe_at = None
        self.rack_at = self.pace_at = self.comp_at = None
        self.host.detach(self)
        self.release_buffers()
        self.on_event()

    # --- TCP_INFO ----------------------------------------------------------------------------
    def info(self) -> dict[str, int | float | str]:
        unacked, sacked, lost, retrans = info.queue_packets(self)
        return {
            "ca_state": info.ca_state(self), "unacked_segs": unacked, "sacked": sacked, "lost": lost,
            "retrans": retrans, "rcv_mss_peer": self.rcv_mss, "notsent_bytes": info.notsent_bytes(self),
            "bytes_sent": self.bytes_sent, "bytes_retrans": self.bytes_retrans,
            "data_segs_in": self.data_segs_in, "data_segs_out": self.data_segs_out,
            "delivered": self.delivered, "min_rtt_us": int(self.rtt.min_rtt * 1e6),
            "delivery_rate": self.rack.rate.delivery_rate() if self.rack.rate is not None else 0,
            "rcv_wnd": max(sq.diff(self.rcv_adv, self.last_ack_sent), 0),
            "state": int(self.state), "state_name": self.state.name,
            "retransmits": self.retransmits, "total_retrans": self.total_retrans,
            "rto_us": int(self.rtt.current() * 1e6), "rtt_us": int(self.rtt.srtt * 1e6),
            "rttvar_us": int(self.rtt.rttvar * 1e6), "snd_mss": self.mss, "rcv_mss": self.our_mss,
            "snd_cwnd": self.cc.cwnd // max(self.mss, 1),
            "snd_ssthresh": info.TCP_INFINITE_SSTHRESH if self.cc.ssthresh >= info.INFINITE_SSTHRESH_BYTES
            else self.cc.ssthresh // max(self.mss, 1),
            "snd_wscale": self.snd_wscale, "rcv_wscale": self.rcv_wscale, "congestion": self.cc.name,
            "segs_in": self.segs_in, "segs_out": self.segs_out, "bytes_acked": self.bytes_acked,
            "bytes_received": self.bytes_received, "unacked": sq.diff(self.snd_max, self.snd_una),
            "snd_wnd": self.snd_wnd, "rcv_space": self.rcv.free(),
            "options": ((1 if self.ts_ok else 0) | (2 if self.sack_ok else 0)
                        | (4 if self.peer_wscale is not None else 0)
                        # TCPI_OPT_ECN, TCPI_OPT_ECN_SEEN (an ECT or CE data segment arrived)
                        | (8 if self.ecn is not None else 0) | (16 if self.ecn is not None and self.ecn.seen else 0)),
        }


def _nothing() -> None:
    pass
