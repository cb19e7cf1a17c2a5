"""Relayed TCP: the lean guest side of a gateway's TCP flow (issue 13, `tunstack gateway`).

A gateway terminates the guest's connection only to copy its bytes to a host socket.  The
full Connection (retransmission queue, receive queue, congestion control, RACK, the socket
layer) makes that copy cost ~4x what a relay needs: the host socket already keeps the far
side's reliability, and the guest is one hop away over a device that rarely drops.  So a
relayed flow is this instead, passt's way (learnt from its design notes, not its code):

  * guest -> host: a segment in order goes straight to the host socket (`RelayHost.to_host`);
    what the socket does not take waits here, and the window we advertise is RELAY_WINDOW
    minus what waits -- the host socket's send buffer is the backpressure, the right edge
    never moves left (RFC 9293 §3.8.6.2.2).  A segment beyond RCV.NXT is kept (OOO_MAX,
    within the window) and named in SACK blocks (RFC 2018) on the duplicate ACK it gets.
  * host -> guest: what the gateway reads from the host socket (at most `send_room()`,
    bounded by the guest's window and SEND_MAX) is kept until the guest ACKs it, sent in
    MSS-sized segments or TSO/GSO super-segments; lost ones are resent by the holes the
    guest's SACK blocks show (RFC 6675's next segment, one per ACK), by NewReno's partial
    ACKs without SACK (RFC 6582), or on the retransmission timeout (go-back-N from
    SND.UNA, RFC 6298 timer with Karn's rule and exponential backoff; a zero window is
    probed by the same timer, as Linux's tcp_xmit_probe_skb).  No congestion control: the
    guest's window bounds the flight.
  * the handshake: the SYN-ACK offers MSS and, when the guest did, window scaling and SACK
    -- no timestamps (RFC 7323 is an option: a relay one hop from its peer gains nothing
    from it and would have to carry it on every segment).
  * ACKs: piggybacked on the host's answer when it comes; a pure ACK at the end of the
    device read once two segments' worth is unacknowledged (RFC 9293 §3.8.6.3), for a FIN,
    for a segment out of order or beyond the window; else after DELAYED_ACK.
  * the ends map as the splice maps them (issue 13): the guest's FIN is SHUT_WR on the host
    once everything before it was taken, the host's EOF is our FIN after its data; an RST
    either way resets the other side.  A closed flow lingers LINGER seconds to ACK a
    retransmitted FIN (the guest in LAST-ACK) and then is forgotten.

Sans-IO: the host socket is the owner's (`RelayHost`), the clock is passed in, segments go
out through the Tcp core's cached IPv4 way or its IPv6 output (`net6`).
"""
from __future__ import annotations

import bisect
import heapq
import itertools
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from . import seq as sq
from .buffers import NO_SCOREBOARD, Scoreboard
from .wire import ACK, FIN, PSH, RST, SYN, TcpRepr, wscale_for

if TYPE_CHECKING:
    from ..ifnet import Interface
    from .stats import TcpStats

RELAY_WINDOW = 256 << 10     # guest octets we take ahead of the host socket (our receive window)
SEND_MAX = 256 << 10         # host octets kept until the guest ACKs them
DELAYED_ACK = 0.04           # Linux TCP_DELACK_MIN
RTO_INITIAL = 1.0            # RFC 6298 §2.1
RTO_MIN = 0.2                # Linux TCP_RTO_MIN
RTO_MAX = 120.0              # Linux TCP_RTO_MAX
RETRIES = 15                 # Linux tcp_retries2: then the flow is reset both ways
SYNACK_RETRIES = 5           # Linux tcp_synack_retries
LINGER = 2.0                 # a closed flow still ACKs a retransmitted FIN this long
LINGER_MAX = 16384           # closed flows kept lingering at most (the oldest goes first)
SACKED_MAX = 8               # SACKed ranges kept of the guest's blocks (the Scoreboard's cap)
OOO_MAX = 64                 # guest segments kept beyond RCV.NXT, at most (within the window too)
SYNACK_OPTIONS_KEPT = 16     # the SYN-ACK option blocks RelayTable keeps built (one per MTU and offer)
LINGER_SLACK = 0.25          # lingering flows are forgotten in batches: one timer wake per 1/4 s

SYN_RECEIVED, OPEN, LINGERING, CLOSED = 0, 1, 2, 3


class RelayCore(Protocol):
    """What a relayed flow calls on its Tcp core (tcp.py Tcp)."""
    batching: bool                       # inside a device's receive batch (ACKs wait for its end)
    clock: Callable[[], float]
    kick: Callable[..., None]            # the timer service: an earlier deadline
    @property
    def stats(self) -> TcpStats: ...
    def emit_relayed(self, flow: RelayedFlow, seg: TcpRepr, opts: bytes, payload: memoryview | None, gso: int,
                     now: float) -> None: ...
    def emit_ack(self, conn: RelayedFlow, seqno: int, window: int, opts: bytes, now: float) -> int | None: ...
    def emit_plain4(self, conn: RelayedFlow, seqno: int, ackno: int, flags: int, window: int, opts: bytes,
                    payload: memoryview | None, now: float) -> int | None: ...
    def emit_plain6(self, conn: RelayedFlow, seqno: int, ackno: int, flags: int, window: int, opts: bytes,
                    payload: memoryview | None, now: float) -> int | None: ...


class RelayHost(Protocol):
    """The owner's side of a relayed flow: its host socket."""

    def to_host(self, data: memoryview) -> int:
        """Give the host socket `data`: the octets it took (0: none now, `host_writable`
        follows), -1 when it failed (the flow resets the guest)."""

    def shut_host(self) -> None:
        """The guest's FIN, after all its data: shutdown(SHUT_WR).  Not called when the flow
        ends at once (our FIN acknowledged already): close_host(False) follows instead."""

    def host_reads(self, on: bool) -> None:
        """Resume (True) or pause (False) reading the host socket: room for host data here."""

    def host_writes(self, on: bool) -> None:
        """Tell (True) or stop telling (False) when the host socket takes data again."""

    def close_host(self, reset: bool) -> None:
        """The flow is over: close the host socket, with an RST when `reset` (without, after
        the guest's FIN the close is the FIN: `host_shut` says so)."""


class RelayedFlow:
    """One relayed connection's guest side (the attributes the core's output reads -- laddr,
    faddr, lport, fport, tos, ttl, csum_offload, dst_cache, net6, hop_limit, tclass, oif,
    rcv_nxt -- are named as a Connection's)."""

    __slots__ = ("table", "host", "laddr", "lport", "faddr", "fport", "ifp", "state", "iss", "snd_una", "snd_nxt",
                 "snd_max", "recover", "retx_high", "sacked", "ooo", "snd_wnd", "snd_wscale", "rcv_wscale",
                 "rcv_nxt", "mss", "burst", "unacked", "pending",
                 "fin_in", "fin_wanted", "fin_sent", "fin_acked", "host_shut", "reading",
                 "rcv_unacked", "adv_edge", "dupacks", "rto", "srtt", "rttvar", "backoff", "rtt_seq", "rtt_at",
                 "rto_at", "delack_at", "sched_at", "tos", "ttl", "csum_offload", "dst_cache", "our_mss",
                 "net6", "hop_limit", "tclass", "oif", "ws_ok", "sack_ok", "last_ooo", "ooo_held")

    def __init__(self, table: RelayTable, host: RelayHost, key: tuple[int, int, int, int], irs: int, iss: int,
                 peer_mss: int | None, peer_wscale: int | None, ifp: Interface, mtu: int, net6: bool = False,
                 oif: Interface | None = None, peer_sack: bool = False) -> None:
        self.table, self.host = table, host
        self.laddr, self.lport, self.faddr, self.fport = key
        self.ifp = ifp
        self.state = SYN_RECEIVED
        self.iss = self.snd_una = iss
        self.snd_nxt = self.snd_max = sq.add(iss, 1)    # snd_max: the highest sent (BSD's)
        self.recover: int | None = None                   # in a fast recovery: SND.MAX when it began
        self.retx_high = self.snd_una                     # ... the highest octet resent in it
        self.sacked = NO_SCOREBOARD                       # the guest's SACK blocks above SND.UNA
        self.snd_wnd = 0
        self.rcv_nxt = sq.add(irs, 1)
        # RFC 7323 §2.2: both shifts only when the guest offered one; 14 at most (§2.3)
        self.snd_wscale = min(peer_wscale, 14) if peer_wscale is not None else 0
        self.rcv_wscale = wscale_for(RELAY_WINDOW) if peer_wscale is not None else 0
        caps = ifp.ndd.caps
        hdrs = 60 if net6 else 40                                  # IPv6 (RFC 8200 §8.3) or IPv4 and TCP
        self.our_mss = max(mtu - hdrs, 88)
        # RFC 9293 §3.7.1: 536 without the option (1220 over IPv6, RFC 8200 §5's 1280 less headers)
        self.mss = max(min(peer_mss or (1220 if net6 else 536), self.our_mss), 88)
        self.csum_offload = bool(caps.tx_csum_offload)
        tso = min(caps.tso_max, 65535) - 2 * hdrs if caps.tso_max and caps.tx_csum_offload else 65535 - 2 * hdrs
        self.burst = max(tso // self.mss, 1) * self.mss             # one TSO (or GSO) super-segment
        self.unacked = bytearray()       # host octets from SND.UNA on (sent or not)
        self.pending = bytearray()       # guest octets the host socket has not taken yet
        self.ooo: list[tuple[int, bytes, bool]] = []   # guest segments beyond RCV.NXT: (seq, text, FIN)
        self.ooo_held = 0                                # ... their octets: at most RELAY_WINDOW
        self.fin_in = self.fin_wanted = self.fin_sent = self.fin_acked = self.host_shut = False
        self.reading = False             # the owner reads the host socket once the flow is open
        self.rcv_unacked = 0             # guest octets taken since our last ACK
        self.adv_edge = self.rcv_nxt     # the right edge of the window we advertised last
        self.dupacks = 0
        self.rto, self.srtt, self.rttvar, self.backoff = RTO_INITIAL, 0.0, 0.0, 0
        self.rtt_seq: int | None = None  # the segment being timed (RFC 6298 §3, Karn's rule)
        self.rtt_at = 0.0
        self.rto_at: float | None = None
        self.delack_at: float | None = None
        self.sched_at: float | None = None
        self.tos, self.ttl, self.net6 = 0, None, net6
        self.hop_limit: int | None = None                        # the IPv6 layer's default
        self.tclass = 0
        self.oif = oif                                           # a link-local guest's interface
        self.dst_cache: tuple[int, Interface, int] | None = None
        self.ws_ok = peer_wscale is not None
        self.sack_ok = peer_sack         # we send SACK blocks for what the OOO queue holds (RFC 2018)
        self.last_ooo = 0                # the sequence number of the segment queued last

    # --- what the owner asks ----------------------------------------------------------------------
    def send_room(self) -> int:
        """How much host data to read now: what fits in the guest's window (at least one
        segment, so a zero window is probed with data waiting) and SEND_MAX, less what is kept."""
        return min(SEND_MAX, max(self.snd_wnd, self.mss)) - len(self.unacked)

    @property
    def held(self) -> int:
        """Octets this flow holds (the owner's budget counts them)."""
        return len(self.unacked) + len(self.pending) + self.ooo_held

    def host_data(self, data: bytes, now: float, eof: bool = False) -> None:
        """Octets read from the host socket: to the guest (`eof`: the host's EOF follows
        them, and our FIN rides on their last segment)."""
        if self.state == OPEN and not self.fin_wanted:
            self.unacked += data
            self.table.held += len(data)
            self.fin_wanted = eof
            self._output(now)
            self._reads()
            self.table.schedule(self)

    def host_eof(self, now: float) -> None:
        """The host's EOF: our FIN once its data is sent."""
        if self.state == OPEN and not self.fin_wanted:
            self.fin_wanted = True
            self._output(now)
            self.table.schedule(self)

    def host_writable(self, now: float) -> None:
        """The host socket takes data again: what waits goes, the window reopens."""
        if self.state != OPEN:
            return
        if self.pending and not self._flush_pending(now):
            return
        self.host.host_writes(False)
        if self.fin_in and not self.host_shut:
            self._shut_host()
            self._maybe_done(now)
        elif self._window() >= 2 * sq.diff(self.adv_edge, self.rcv_nxt):
            self._ack(now)                            # a window update (Linux __tcp_cleanup_rbuf)

    def host_failed(self, now: float) -> None:
        """The host socket failed (ECONNRESET, EPIPE): the guest gets an RST."""
        if self.state in (SYN_RECEIVED, OPEN):
            self._send_rst(now)
            self._end(False)

    def abort(self, now: float) -> None:
        """The gateway stops: both sides reset."""
        if self.state in (SYN_RECEIVED, OPEN):
            self._send_rst(now)
            self._end(True)

    # --- segments from the guest --------------------------------------------------------------------
    def input(self, seg: TcpRepr, payload: memoryview, now: float) -> bool:
        """A segment of this flow's 4-tuple.  False (nothing done) when it is a new SYN for a
        lingering flow: the flow is gone and the caller offers the SYN to the forwarder."""
        return self.segment(seg.seq, seg.ack, seg.flags, seg.window, seg.sack, payload, now)

    def segment(self, seqno: int, ackno: int, flags: int, window: int, sack: tuple[tuple[int, int], ...],
                payload: memoryview, now: float) -> bool:
        """input() by the header's fields (window the raw field, `sack` the blocks of a SACK
        option): what Tcp.relayed_input4 and relayed_input6 call with the fields they read
        from the frame itself."""
        state = self.state
        if state >= LINGERING:
            if flags & SYN and not flags & (ACK | RST):
                self.table.forget(self)
                return False
            if flags & FIN and not flags & RST:
                self._pure_ack(self.snd_nxt, 0, now)  # the guest missed our last ACK
            return True
        if flags & RST:
            # RFC 5961 §3.2: an RST at RCV.NXT resets, one elsewhere in the window is challenged
            if seqno == self.rcv_nxt:
                self.table.tcp.stats.estab_resets += 1
                self._end(True)
            elif sq.between(self.rcv_nxt, seqno, sq.add(self.rcv_nxt, RELAY_WINDOW)):
                self._ack(now)
            return True
        if flags & SYN:
            if state == SYN_RECEIVED and seqno == sq.add(self.rcv_nxt, -1):
                self._send_synack(now)                # our SYN-ACK was lost: the guest asks again
            else:
                self._ack(now)                        # RFC 5961 §4: a challenge ACK
            return True
        if not flags & ACK:
            return True                               # RFC 9293 §3.10.7.4: dropped
        if state == SYN_RECEIVED:
            if ackno != self.snd_nxt:
                self._send_rst_for(ackno, now)        # §3.10.7.4: <SEQ=SEG.ACK><CTL=RST>
                return True
            self.state = OPEN
            self.snd_una = self.snd_nxt
            self.rto_at, self.backoff = None, 0
            self.snd_wnd = window << self.snd_wscale
            self._reads()                             # the host's data may flow now
        fin = flags & FIN
        if payload and not fin and seqno == self.rcv_nxt and self.state == OPEN and not self.pending \
                and not self.ooo and not self.fin_in:
            # in-order text first, then its ACK -- Linux's tcp_rcv_established fast path
            # (tcp_queue_rcv before tcp_ack): the guest's request reaches the host socket
            # before the ACK's bookkeeping, and what that ACK lets us send acknowledges it
            self._on_text(seqno, payload, False, now)
            if self.state == OPEN:
                self._on_ack(ackno, window, sack, len(payload), now)
        else:
            self._on_ack(ackno, window, sack, len(payload) or fin, now)
            if self.state == OPEN and (payload or fin):
                self._on_text(seqno, payload, bool(fin), now)
        if self.state == OPEN:
            self.table.schedule(self)
        return True

    def _on_ack(self, ack: int, window: int, sack: tuple[tuple[int, int], ...], carries: int, now: float) -> None:
        una = self.snd_una
        if sq.gt(ack, self.snd_max):
            self._ack(now)                            # §3.10.7.4: it ACKs what we never sent
            return
        if sack and self.sack_ok and sq.ge(ack, una):
            sacked = self.sacked
            if sacked is NO_SCOREBOARD:                   # the first SACK: a scoreboard of its own
                sacked = self.sacked = Scoreboard(SACKED_MAX)
            sacked.update(sack, ack, self.snd_max, self.table.tcp.stats)
        if ack == una:
            wnd = window << self.snd_wscale
            duplicate = not carries and wnd == self.snd_wnd and self.snd_max != una
            if duplicate:
                self.dupacks += 1
            if self.recover is not None:
                if duplicate or sack:
                    self._resend_holes(now)           # RFC 6675 §5: each ACK in recovery, the next hole
            elif self.dupacks >= 3 or self.sacked.sacked >= 3 * self.mss:
                # RFC 5681 §3.2 fast retransmit; with SACK also when DupThresh segments are SACKed
                # above SND.UNA (RFC 6675 §4 IsLost) -- ACKs riding on the guest's data count too
                self._recover(now)
            if not duplicate:
                if wnd == 0 and self.snd_max == una:
                    self.backoff = 0                  # a probe answered: persist on (Linux tcp_ack)
                self.snd_wnd = wnd
                self._output(now)
                self._reads()
            return
        if sq.lt(ack, una):
            return                                    # an old ACK
        acked = sq.diff(ack, una)
        if acked > len(self.unacked):                 # it covers our FIN
            self.fin_acked = self.fin_sent = True
            acked = len(self.unacked)
        del self.unacked[:acked]
        self.table.held -= acked
        self.snd_una = ack
        self.snd_wnd = window << self.snd_wscale
        self.dupacks = 0
        self.sacked.prune(ack)
        if self.recover is not None:
            if sq.ge(ack, self.recover):
                self.recover = None                   # a full ACK: the recovery is over
            elif self.unacked:
                self._resend_holes(now)               # RFC 6582 §3.2: a partial ACK, the next hole now
        elif self.sacked.sacked >= 3 * self.mss:
            self._recover(now)
        if self.rtt_seq is not None and sq.ge(ack, self.rtt_seq):
            self._rtt_sample(now - self.rtt_at)
        self.backoff = 0
        if sq.lt(self.snd_nxt, ack):
            self.snd_nxt = ack                        # a late ACK of what went before a go-back-N
        self.rto_at = now + self.rto if self.snd_max != ack else None
        if self.fin_acked:
            self._maybe_done(now)
            return
        self._output(now)
        self._reads()

    def _on_text(self, seqno: int, payload: memoryview, fin: bool, now: float) -> None:
        n = len(payload)
        if self.fin_in:
            self._ack(now)                            # a retransmission after the FIN
            return
        if seqno != self.rcv_nxt:
            ahead = sq.diff(self.rcv_nxt, seqno)
            if ahead < 0:
                self._queue_ooo(seqno, payload, fin, now)
                return
            if ahead > n or (ahead == n and not fin):
                self._ack(now)                        # old: a duplicate ACK
                return
            payload, n = payload[ahead:], n - ahead   # the part we have, trimmed (§3.10.7.4)
        if not self._take(payload, fin, now):
            return
        if self.ooo:
            self._merge_ooo(now)                      # RFC 5681 §4.2: a gap filled is ACKed at once
        elif self.rcv_unacked >= 2 * self.mss:
            self._ack_soon(now)
        elif self.delack_at is None:
            self.delack_at = now + DELAYED_ACK

    def _take(self, payload: memoryview, fin: bool, now: float) -> bool:
        """In-order guest text (and its FIN) to the host socket, what it does not take kept:
        True when all of it was taken and the flow goes on (else it was answered here)."""
        n = len(payload)
        take = min(n, self._window())
        if take:
            part = payload[:take] if take < n else payload
            if self.pending:
                self.pending += part
                self.table.held += take
            else:
                sent = self.host.to_host(part)
                if sent < 0:
                    self._send_rst(now)
                    self._end(False)
                    return False
                if sent < take:
                    self.pending += part[sent:]
                    self.table.held += take - sent
                    self.host.host_writes(True)
            self.rcv_nxt = sq.add(self.rcv_nxt, take)
            self.rcv_unacked += take
        if take < n:
            self._ack(now)                            # beyond the window: say where it is
            return False
        if fin:
            self.rcv_nxt = sq.add(self.rcv_nxt, 1)
            self.fin_in = True
            if not self.pending:
                self._shut_host()
            self._ack(now)
            self._maybe_done(now)
            return False
        return True

    def _queue_ooo(self, seqno: int, payload: memoryview, fin: bool, now: float) -> None:
        """A segment beyond RCV.NXT: kept (at most OOO_MAX of them, within the window) so the
        guest's retransmission of the hole is all it has to resend -- with no SACK between
        us, NewReno would otherwise resend the rest a segment per round trip -- and answered
        by a duplicate ACK (RFC 5681 §4.2: at once)."""
        stats = self.table.tcp.stats
        ooo = self.ooo
        n = len(payload)
        if (n or fin) and len(ooo) < OOO_MAX and self.ooo_held + n <= RELAY_WINDOW \
                and sq.diff(sq.add(seqno, n), self.rcv_nxt) <= self._window():
            rcv_nxt = self.rcv_nxt
            ahead = sq.diff(seqno, rcv_nxt)
            i = bisect.bisect_left(ooo, ahead, key=lambda held: sq.diff(held[0], rcv_nxt))
            if i == len(ooo) or ooo[i][0] != seqno or len(ooo[i][1]) < n:
                if i < len(ooo) and ooo[i][0] == seqno:
                    shorter = len(ooo.pop(i)[1])                # a longer copy replaces it
                    self.table.held -= shorter
                    self.ooo_held -= shorter
                ooo.insert(i, (seqno, bytes(payload), fin))
                self.table.held += n
                self.ooo_held += n
                self.last_ooo = seqno
                stats.relay_ooo_queued += 1
        else:
            stats.relay_dropped_ooo += 1
        self._ack(now)

    def _merge_ooo(self, now: float) -> None:
        """What the queue holds from RCV.NXT on goes to the host now; then the ACK."""
        ooo = self.ooo
        while ooo and self.state == OPEN and not self.fin_in:
            seqno, data, fin = ooo[0]
            ahead = sq.diff(self.rcv_nxt, seqno)
            if ahead < 0:
                break                                 # a hole still
            del ooo[0]
            self.table.held -= len(data)
            self.ooo_held -= len(data)
            if ahead > len(data) or (ahead == len(data) and not fin):
                continue                              # all of it came in order meanwhile
            if not self._take(memoryview(data)[ahead:], fin, now):
                return
        if self.state == OPEN and not self.fin_in:
            self._ack(now)

    # --- output ---------------------------------------------------------------------------------
    def _window(self) -> int:
        """The guest octets we take now: RELAY_WINDOW less what waits for the host socket, and
        never less than we advertised (RFC 9293 §3.8.6.2.2: the right edge stays put)."""
        free = RELAY_WINDOW - len(self.pending)
        promised = sq.diff(self.adv_edge, self.rcv_nxt)
        return free if free >= promised else promised

    def _window_field(self) -> int:
        """The window field: rounded up to the scale's unit, as Linux's tcp_select_window does
        so that scaling never moves the right edge left (a promise of < 2**shift octets more)."""
        shift = self.rcv_wscale
        wnd = (self._window() + (1 << shift) - 1) >> shift
        return wnd if wnd < 0xFFFF else 0xFFFF

    def _output(self, now: float) -> None:
        """Send what the guest's window allows from SND.NXT, then the FIN once all is sent."""
        unacked, una = self.unacked, self.snd_una
        sent_any = False
        while True:
            off = sq.diff(self.snd_nxt, una)
            avail = len(unacked) - off
            room = self.snd_wnd - off
            n = min(avail, room, self.burst)
            if n <= 0:
                break
            self._send_from(self.snd_nxt, n, now)
            sent_any = True
        if self.fin_wanted and not self.fin_sent and sq.diff(self.snd_nxt, una) == len(unacked):
            self._send_from(self.snd_nxt, 0, now)
            sent_any = True
        if not sent_any and self.snd_wnd == 0 and unacked and self.rto_at is None:
            self.rto_at = now + self.rto              # the persist timer (RFC 9293 §3.8.6.1)

    def _send_from(self, seqno: int, n: int, now: float) -> None:
        """One segment (or super-segment) of `n` kept octets from `seqno`, with the ACK."""
        off = sq.diff(seqno, self.snd_una)
        flags = ACK
        payload = memoryview(self.unacked[off:off + n]) if n else None
        if off + n == len(self.unacked):
            flags |= PSH if n else 0
            if self.fin_wanted:
                flags |= FIN                          # the host's EOF rides on its last data
        tcp = self.table.tcp
        window = self._window_field()
        if n > self.mss or (tcp.emit_plain6 if self.net6 else tcp.emit_plain4)(
                self, seqno, self.rcv_nxt, flags, window, b"", payload, now) is None:
            seg = TcpRepr(self.lport, self.fport, seqno, self.rcv_nxt, flags, window)
            self._emit(seg, b"", payload, self.mss if n > self.mss else 0, now)
        end = sq.add(seqno, n + (1 if flags & FIN else 0))
        if sq.gt(end, self.snd_nxt):
            self.snd_nxt = end
        if sq.gt(end, self.snd_max):
            if self.rtt_seq is None and self.backoff == 0:
                self.rtt_seq, self.rtt_at = end, now
            self.snd_max = end
        else:
            tcp.stats.retrans_segs += 1
        if flags & FIN:
            self.fin_sent = True
        if self.rto_at is None:
            self.rto_at = now + self.rto
        self._acked(now)

    def _recover(self, now: float) -> None:
        """A fast recovery begins: until SND.MAX is acknowledged, the holes are resent."""
        self.recover, self.retx_high = self.snd_max, self.snd_una
        self._resend_holes(now)

    def _resend_holes(self, now: float) -> None:
        """In a fast recovery, one segment of the next hole again: the first octet from
        SND.UNA not yet resent in this recovery and not SACKed, up to the next SACKed block
        (RFC 6675's NextSeg, one per ACK).  Without SACK blocks that is SND.UNA once per
        partial ACK (NewReno, RFC 6582)."""
        una = self.snd_una
        start = self.retx_high if sq.gt(self.retx_high, una) else una
        if self.sacked.lefts:
            hole = self.sacked.next_hole(start, una)
            if hole is None:
                return                                # nothing known lost above the last block
            start, end = hole
            if sq.gt(end, sq.add(start, self.mss)):
                end = sq.add(start, self.mss)
        elif start == una:
            end = sq.add(start, self.mss)
        else:
            return
        n = min(sq.diff(end, start), len(self.unacked) - sq.diff(start, una))
        if n <= 0:
            return
        self.table.tcp.stats.relay_fast_retrans += 1
        self.rtt_seq = None
        self._send_from(start, n, now)
        self.retx_high = sq.add(start, n)

    def _acked(self, now: float) -> None:
        """An ACK went out (alone or on data): the delayed one is no longer due."""
        self.rcv_unacked = 0
        self.delack_at = None
        self.adv_edge = sq.add(self.rcv_nxt, self._window_field() << self.rcv_wscale)
        self.table.deferred.pop(self, None)

    def _emit(self, seg: TcpRepr, opts: bytes, payload: memoryview | None, gso: int, now: float) -> None:
        self.table.tcp.emit_relayed(self, seg, opts, payload, gso, now)

    def _pure_ack(self, seqno: int, window: int, now: float) -> None:
        tcp = self.table.tcp
        opts = self._sack_blocks() if self.ooo and self.sack_ok else b""
        if (tcp.emit_plain6(self, seqno, self.rcv_nxt, ACK, window, opts, None, now) if self.net6
                else tcp.emit_ack(self, seqno, window, opts, now)) is None:
            self._emit(TcpRepr(self.lport, self.fport, seqno, self.rcv_nxt, ACK, window), opts, None, 0, now)

    def _sack_blocks(self) -> bytes:
        """The SACK option for what the OOO queue holds (RFC 2018 §4: the block with the
        segment queued last first, then the others; at most 3).  Only pure ACKs carry it:
        on a full-sized data segment it would push the segment past the MSS."""
        rcv = self.rcv_nxt
        blocks: list[list[int]] = []
        for seqno, text, _ in self.ooo:
            end = sq.add(seqno, len(text))
            if not text or sq.le(end, rcv):
                continue
            if blocks and sq.le(seqno, blocks[-1][1]):
                if sq.gt(end, blocks[-1][1]):
                    blocks[-1][1] = end
            else:
                blocks.append([seqno, end])
        if not blocks:
            return b""
        first = next((i for i, (lo, hi) in enumerate(blocks) if sq.between(lo, self.last_ooo, hi)), 0)
        order = [blocks[first], *blocks[:first], *blocks[first + 1:]][:3]
        return TcpRepr(0, 0, 0, 0, 0, 0, sack=tuple((lo, hi) for lo, hi in order)).options_bytes()

    def _ack(self, now: float) -> None:
        """A pure ACK now."""
        self._pure_ack(self.snd_nxt, self._window_field(), now)
        self._acked(now)

    def _ack_soon(self, now: float) -> None:
        """An ACK at the end of the device read under way (one for all its segments), or now."""
        if self.table.tcp.batching:
            self.table.deferred[self] = None
        else:
            self._ack(now)

    def flush(self, now: float) -> None:
        """The end of the device read: the ACK still owed, unless data carried it."""
        if self.state == OPEN and self.rcv_unacked:
            self._ack(now)

    def _send_synack(self, now: float) -> None:
        # MSS, SACK permitted (RFC 2018 §2) and window scale (RFC 7323 §2.2) as the guest offered
        wscale = self.rcv_wscale if self.ws_ok else None
        known, offer = self.table.synack_options, (self.our_mss, wscale, self.sack_ok)
        opts = known.get(offer)
        if opts is None:
            opts = TcpRepr(0, 0, 0, 0, 0, 0, mss=self.our_mss, wscale=wscale, sack_perm=self.sack_ok).options_bytes()
            if len(known) >= SYNACK_OPTIONS_KEPT:
                known.clear()
            known[offer] = opts
        tcp, window = self.table.tcp, min(RELAY_WINDOW, 0xFFFF)
        if (tcp.emit_plain6 if self.net6 else tcp.emit_plain4)(self, self.iss, self.rcv_nxt, SYN | ACK, window, opts,
                                                               None, now) is None:
            self._emit(TcpRepr(self.lport, self.fport, self.iss, self.rcv_nxt, SYN | ACK, window), opts, None, 0, now)
        self.rto_at = now + self.rto

    def _send_rst(self, now: float) -> None:
        self._emit(TcpRepr(self.lport, self.fport, self.snd_nxt, self.rcv_nxt, RST | ACK, 0), b"", None, 0, now)
        self.table.tcp.stats.out_rsts += 1

    def _send_rst_for(self, ackno: int, now: float) -> None:
        self._emit(TcpRepr(self.lport, self.fport, ackno, 0, RST, 0), b"", None, 0, now)
        self.table.tcp.stats.out_rsts += 1

    # --- timers ---------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        at = self.rto_at
        d = self.delack_at
        if d is not None and (at is None or d < at):
            at = d
        return at

    def on_timer(self, now: float) -> None:
        d = self.delack_at
        if d is not None and d <= now:
            self.delack_at = None
            if self.rcv_unacked:
                self._ack(now)
        at = self.rto_at
        if at is None or at > now or self.state >= LINGERING:
            return
        self.rto_at = None
        self.backoff += 1
        if self.backoff > (SYNACK_RETRIES if self.state == SYN_RECEIVED else RETRIES):
            self.table.tcp.stats.relay_aborted += 1
            self._send_rst(now)
            self._end(True)
            return
        self.table.tcp.stats.relay_timeouts += 1
        self.rto = min(self.rto * 2, RTO_MAX)         # RFC 6298 §5.5
        self.rtt_seq = None                           # Karn: no sample from a resent segment
        self.recover = None
        self.sacked.clear()                           # RFC 6675 §5.1: the scoreboard starts over
        if self.state == SYN_RECEIVED:
            self._send_synack(now)
        elif self.snd_max != self.snd_una:
            self.snd_nxt = self.snd_una               # go back N: everything from SND.UNA again
            self.fin_sent = False
            self._output(now)
        elif self.snd_wnd == 0 and self.unacked:
            self._pure_ack(sq.add(self.snd_una, -1), self._window_field(), now)
            self.rto_at = now + self.rto              # a zero-window probe (Linux tcp_xmit_probe_skb)
        self.table.schedule(self)

    def _rtt_sample(self, r: float) -> None:
        """RFC 6298 §2.2-2.3, with Linux's 200 ms floor."""
        self.rtt_seq = None
        if self.srtt == 0.0:
            self.srtt, self.rttvar = r, r / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - r)
            self.srtt = 0.875 * self.srtt + 0.125 * r
        self.rto = min(max(self.srtt + 4 * self.rttvar, RTO_MIN), RTO_MAX)

    # --- the ends ---------------------------------------------------------------------------------
    def _flush_pending(self, now: float) -> bool:
        """The waiting guest octets to the host: True once all went."""
        sent = self.host.to_host(memoryview(self.pending))
        if sent < 0:
            self._send_rst(now)
            self._end(False)
            return False
        del self.pending[:sent]
        self.table.held -= sent
        return not self.pending

    def _shut_host(self) -> None:
        """The guest's FIN, all its data taken: SHUT_WR on the host socket -- unless our FIN
        is acknowledged too, when the flow ends now and the close sends the FIN itself (the
        host's EOF was read, so nothing unread turns it into an RST): a system call saved
        per connection."""
        self.host_shut = True
        if not self.fin_acked:
            self.host.shut_host()

    def _reads(self) -> None:
        want = self.send_room() > 0 and not self.fin_wanted
        if want != self.reading:
            self.reading = want
            self.host.host_reads(want)

    def _maybe_done(self, now: float) -> None:
        if self.fin_in and self.host_shut and self.fin_acked:
            self._end(False, linger=True)

    def _end(self, reset: bool, linger: bool = False) -> None:
        self.state = CLOSED
        self.table.held -= self.held
        self.unacked = bytearray()
        self.pending = bytearray()
        self.ooo = []
        self.ooo_held = 0
        self.rto_at = self.delack_at = None
        self.table.closed(self, linger)
        self.host.close_host(reset)


class RelayTable:
    """The relayed flows of one Tcp core: the 4-tuple table early demux looks in, their
    timers (one lazy heap, as the core's own), the ACKs owed at the end of a device read,
    and the lingering closed flows (oldest first)."""

    def __init__(self, tcp: RelayCore) -> None:
        self.tcp = tcp
        self.flows: dict[tuple[int, int, int, int], RelayedFlow] = {}
        self.flows6: dict[tuple[int, int, int, int], RelayedFlow] = {}    # IPv6 ones (addresses 128-bit)
        self.deferred: dict[RelayedFlow, None] = {}
        self._heap: list[tuple[float, int, RelayedFlow]] = []
        self._tiebreak = itertools.count()
        self._lingering: deque[tuple[float, RelayedFlow]] = deque()
        self.held = 0                                 # octets every flow keeps (unacked + pending)
        self.opened = 0
        self.closed_count = 0
        # the SYN-ACKs' options by (MSS, window scale, SACK permitted): a few MTUs' worth
        self.synack_options: dict[tuple[int, int | None, bool], bytes] = {}

    def __len__(self) -> int:
        return len(self.flows) + len(self.flows6)

    @property
    def busy(self) -> bool:
        """Any timer to look at: a flow open or lingering."""
        return bool(self._heap or self._lingering)

    def open(self, host: RelayHost, key: tuple[int, int, int, int], seg: TcpRepr, iss: int, ifp: Interface,
             mtu: int, now: float, net6: bool = False, oif: Interface | None = None,
             dst_cache: tuple[int, Interface, int] | None = None) -> RelayedFlow:
        flow = RelayedFlow(self, host, key, seg.seq, iss, seg.mss, seg.wscale, ifp, mtu, net6, oif, seg.sack_perm)
        flow.dst_cache = dst_cache
        (self.flows6 if net6 else self.flows)[key] = flow
        self.opened += 1
        flow.snd_wnd = seg.window                     # RFC 7323 §2.2: a SYN's window is never scaled
        flow._send_synack(now)
        self.schedule(flow)
        return flow

    def schedule(self, flow: RelayedFlow) -> None:
        at = flow.poll_at()
        if at is not None and (flow.sched_at is None or at < flow.sched_at):
            flow.sched_at = at
            heapq.heappush(self._heap, (at, next(self._tiebreak), flow))
            self.tcp.kick(at)

    def closed(self, flow: RelayedFlow, linger: bool) -> None:
        self.deferred.pop(flow, None)
        self.closed_count += 1
        if not linger:
            self.forget(flow)
            return
        flow.state = LINGERING
        lingering = self._lingering
        if len(lingering) >= LINGER_MAX:
            self.forget(lingering.popleft()[1])
        until = self.tcp.clock() + LINGER
        lingering.append((until, flow))
        self.tcp.kick(until)

    def forget(self, flow: RelayedFlow) -> None:
        key = (flow.laddr, flow.lport, flow.faddr, flow.fport)
        flows = self.flows6 if flow.net6 else self.flows
        if flows.get(key) is flow:
            del flows[key]
        flow.state = CLOSED
        flow.sched_at = None

    def batch_end(self, now: float) -> None:
        deferred = self.deferred
        while deferred:
            flow = next(iter(deferred))
            del deferred[flow]
            flow.flush(now)

    def poll_at(self) -> float | None:
        heap = self._heap
        while heap:
            filed, _, flow = heap[0]
            if flow.sched_at != filed or flow.state >= LINGERING:
                heapq.heappop(heap)
                continue
            real = flow.poll_at()
            if real is not None and real <= filed:
                break
            heapq.heappop(heap)
            flow.sched_at = real
            if real is not None:
                heapq.heappush(heap, (real, next(self._tiebreak), flow))
        at = heap[0][0] if heap else None
        if self._lingering:
            first = self._lingering[0][0]
            if at is None or first < at:
                at = first
        return at

    def poll(self, now: float) -> None:
        # every lingering flow due within LINGER_SLACK goes now: at thousands of connections
        # per second, one timer wake-up per flow would cost more than the flows themselves
        lingering = self._lingering
        while lingering and lingering[0][0] <= now + LINGER_SLACK:
            self.forget(lingering.popleft()[1])
        heap = self._heap
        due = []
        while heap and heap[0][0] <= now:
            at, _, flow = heapq.heappop(heap)
            if flow.sched_at != at:
                continue
            flow.sched_at = None
            due.append(flow)
        for flow in due:
            if flow.state < LINGERING:
                flow.on_timer(now)
                self.schedule(flow)

    def abort_all(self, now: float) -> None:
        for flow in [*self.flows.values(), *self.flows6.values()]:
            flow.abort(now)


__all__ = ["LINGER", "RELAY_WINDOW", "SEND_MAX", "RelayHost", "RelayTable", "RelayedFlow"]
