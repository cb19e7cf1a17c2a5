"""TCP_INFO as Linux fills it, and the readiness rules Linux's TCP users rely on (issue 14,
points 9 and 13; TCP_NOTSENT_LOWAT, TCP_USER_TIMEOUT, TCP_INQ, SIOCINQ/SIOCOUTQ).

`tcp_info` packs struct tcp_info (include/uapi/linux/tcp.h) to the 280 octets of Linux
6.18, field by field as tcp_get_info fills it: counts of segments in packets, times in
microseconds (RTTs, busy time) or milliseconds (the last_* ages), an unset ssthresh as
TCP_INFINITE_SSTHRESH, tcpi_ca_state from the connection's real state.  The hooks the
connection calls (`data_received`, `chrono_*`) keep the few counters it needs; each is
O(1) and runs only where Linux does the same work (a data segment, a send call).

Sans-IO: `now` comes in; nothing here waits.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from . import seq as sq
from .state import SYNCHRONIZED, State

if TYPE_CHECKING:
    from .tcb import Tcb

# tcpi_ca_state (Linux enum tcp_ca_state)
CA_OPEN, CA_DISORDER, CA_CWR, CA_RECOVERY, CA_LOSS = range(5)
TCP_INFINITE_SSTHRESH = 0x7FFFFFFF
INFINITE_SSTHRESH_BYTES = 1 << 30           # controller.py's "not set yet"
TCP_INFO_LEN = 280
_TCP_INFO = struct.Struct("<8B24I4Q2I4I4Q2I2Q6I2HI7I2H")
assert _TCP_INFO.size == TCP_INFO_LEN
TCP_MSS_DEFAULT, TCP_MIN_MSS = 536, 88      # RFC 1122 / Linux's floor
INIT_CWND = 10
_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1

# Linux tcp_chrono types: where the sender's time goes while it has data (tcp_chrono_start)
CHRONO_UNSPEC, CHRONO_BUSY, CHRONO_RWND_LIMITED, CHRONO_SNDBUF_LIMITED = range(4)
# chrono_stat of a connection whose clock never ran: shared, read-only (a tuple), so an
# idle connection holds no list (_chrono_set makes one)
NO_CHRONO: Any = (0.0, 0.0, 0.0)
_HANDSHAKE = (State.SYN_SENT, State.SYN_RECEIVED)


# --- the hooks -----------------------------------------------------------------------------
def established(conn: Tcb, now: float) -> None:
    """A connection comes up (Linux tcp_finish_connect / tcp_create_openreq_child): the
    last_* ages start here and rcv_mss takes Linux's first guess, tcp_initialize_rcv_mss:
    min(advmss, mss, window/2, 536), at least 88."""
    conn.lsndtime = conn.lrcvtime = conn.rcv_tstamp = now
    conn.rcv_mss = max(min(conn.our_mss, conn.mss, conn.rcv.free() // 2, TCP_MSS_DEFAULT), TCP_MIN_MSS)
    conn.delivered = 1                      # the SYN (Linux counts it delivered)
    if conn.parent is not None:
        # a listener's child: Linux's request socket sent the SYN-ACK, the child counts the SYN
        conn.segs_out = 0
        conn.segs_in += 1


def measure_rcv_mss(conn: Tcb, length: int, flags: int) -> None:
    """In-order data arrived (Linux tcp_event_data_recv -> tcp_measure_rcv_mss): the peer's
    segment size is learnt from a segment at least as large as the estimate, or from two
    equal smaller ones that are not a remnant (PSH/FIN/URG/SYN: an application write's tail)."""
    if length >= conn.rcv_mss:
        conn.rcv_mss = min(length, conn.our_mss)
        return
    header = 32 if conn.ts_ok else 20       # Linux tp->tcp_header_len
    whole = length + header
    if whole >= TCP_MSS_DEFAULT + 20 or (whole >= TCP_MIN_MSS + 20 and not flags & _REMNANT):
        if length == conn.rcv_last_seg:
            conn.rcv_mss = length
        conn.rcv_last_seg = length


_REMNANT = 0x01 | 0x02 | 0x08 | 0x20        # FIN SYN PSH URG: Linux TCP_REMNANT


def chrono_start(conn: Tcb, kind: int, now: float) -> None:
    """Linux tcp_chrono_start: a more limiting kind takes over the clock."""
    if kind > conn.chrono_type:
        _chrono_set(conn, kind, now)


def chrono_stop(conn: Tcb, kind: int, now: float) -> None:
    """Linux tcp_chrono_stop: all sent data ACKed and nothing queued stops the clock;
    else the limit named ends and the sender is merely busy again."""
    if not conn.snd.queued and conn.snd_una == conn.snd_max:
        _chrono_set(conn, CHRONO_UNSPEC, now)
    elif kind == conn.chrono_type:
        _chrono_set(conn, CHRONO_BUSY, now)


def _chrono_set(conn: Tcb, kind: int, now: float) -> None:
    if conn.chrono_type:
        if conn.chrono_stat is NO_CHRONO:
            conn.chrono_stat = [0.0, 0.0, 0.0]
        conn.chrono_stat[conn.chrono_type - 1] += now - conn.chrono_start
    conn.chrono_type, conn.chrono_start = kind, now


def rto_fired(conn: Tcb, now: float) -> None:
    """Linux tcp_update_rto_stats: every RTO counts; the first since progress starts an RTO
    recovery, timed until an ACK ends it (tcp_update_rto_time)."""
    if not conn.retransmits:
        conn.total_rto_recoveries += 1
        # a listener's child times it from its first SYN-ACK, as Linux's request socket does
        # (tcp_create_openreq_child: since snt_synack): that one timeout before now
        passive = conn.state == State.SYN_RECEIVED and conn.parent is not None
        conn.rto_stamp = now - conn.rtt.current() if passive else now
    conn.total_rto += 1


def rto_recovered(conn: Tcb, now: float) -> None:
    if conn.rto_stamp is not None:
        conn.total_rto_time += now - conn.rto_stamp
        conn.rto_stamp = None


# --- readiness (issue 14, point 9; TCP_NOTSENT_LOWAT) --------------------------------------
def notsent_bytes(conn: Tcb) -> int:
    """Queued and never sent (Linux write_seq - snd_nxt; SND.MAX here: an RTO rewinds SND.NXT)."""
    return max(conn.snd.queued - sq.diff(conn.snd_max, conn.snd_una), 0)


def stream_writeable(conn: Tcb) -> bool:
    """Linux __sk_stream_is_writeable(sk, wake=1): the free space at least half of what is
    queued (sk_stream_wspace >= sk_stream_min_wspace, i.e. a third of the buffer free when it
    was full), and twice the unsent bytes below TCP_NOTSENT_LOWAT (tcp_stream_memory_free).
    A blocked writer wakes, and poll says POLLOUT, only then -- not on any free byte."""
    queued = conn.snd.queued
    return conn.snd.capacity - queued >= queued >> 1 and conn.snd.space() > 0 \
        and (notsent_bytes(conn) << 1) < (conn.notsent_lowat or conn.config.notsent_lowat)


# --- the struct ----------------------------------------------------------------------------
def ca_state(conn: Tcb) -> int:
    """Linux icsk_ca_state: Loss from an RTO until the data it found lost is ACKed; Recovery
    in fast recovery; CWR while ECN's reduction runs (ecn.py in_cwr); Disorder while duplicate ACKs
    or SACKed data show something missing (tcp_try_to_open: tcp_left_out); else Open."""
    if conn.rto_recovery or (conn.retransmits and conn.state in _HANDSHAKE):
        return CA_LOSS                      # (Linux tcp_enter_loss on a SYN's RTO too)
    if conn.in_recovery:
        return CA_RECOVERY
    if conn.ecn is not None and conn.ecn.in_cwr:
        return CA_CWR
    if conn.dupacks or conn.scoreboard.sacked:
        return CA_DISORDER
    return CA_OPEN


def _packets(nbytes: int, mss: int) -> int:
    return -(-nbytes // max(mss, 1)) if nbytes > 0 else 0


def queue_packets(conn: Tcb) -> tuple[int, int, int, int]:
    """Linux packets_out, sacked_out, lost_out, retrans_out: segments, not octets.  From
    RACK's per-transmission records where kept (SACK), else from the sequence variables."""
    mss = conn.mss
    sacked = _packets(conn.scoreboard.sacked, mss)
    records = conn.rack._segs               # a read-only walk of RACK's records, on getsockopt only
    recovering = conn.in_recovery or conn.rto_recovery
    if records:
        unacked = lost = retrans = 0
        for seg in records:
            n = _packets(seg.end - seg.start, mss)
            unacked += n
            if seg.lost or (recovering and seg.retransmitted):
                lost += n                   # Linux keeps a lost segment marked once resent
            if recovering and seg.retransmitted and not seg.lost:
                retrans += n                # (a loss probe's copy is no retrans_out in Open)
        return unacked + sacked, sacked, lost, retrans
    unacked = _packets(sq.diff(conn.snd_max, conn.snd_una), mss)
    if conn.state in _HANDSHAKE:
        lost = 1 if conn.retransmits else 0     # the SYN (or SYN-ACK), RTO'd and sent again
        return unacked, 0, lost, lost
    if not conn.sack_ok:
        sacked = min(conn.dupacks, max(unacked - 1, 0))     # Reno: a dup ACK stands for one segment
    if conn.rto_recovery:
        resent = _packets(sq.diff(conn.snd_nxt, conn.snd_una), mss)
        return unacked, sacked, max(unacked - sacked, 0), resent
    if conn.in_recovery:
        resent = _packets(max(sq.diff(conn.high_rxt, conn.snd_una), 0), mss)
        return unacked, sacked, 1, resent
    return unacked, sacked, 0, 0


def _ms(since: float, now: float) -> int:
    return min(max(round((now - since) * 1000), 0), _U32)


def _us(seconds: float) -> int:
    return min(max(round(seconds * 1e6), 0), _U64)


def tcp_info(conn: Tcb, now: float) -> bytes:
    """struct tcp_info, 280 octets (Linux 6.18 tcp_get_info)."""
    st = conn.state
    mss = max(conn.mss, 1)
    if st == State.LISTEN:                  # Linux: the accept queue and its limit
        unacked, sacked, lost, retrans = conn.accept_live, conn.backlog, 0, 0
    else:
        unacked, sacked, lost, retrans = queue_packets(conn)
    synced = st in SYNCHRONIZED
    ssthresh = conn.cc.ssthresh
    chrono = list(conn.chrono_stat)
    if conn.chrono_type:
        chrono[conn.chrono_type - 1] += now - conn.chrono_start
    rtt = conn.rtt
    min_rtt = rtt.min_rtt if rtt.samples else None
    rcv_wnd = max(sq.diff(conn.rcv_adv, conn.last_ack_sent), 0) if synced else 0   # the last window offered
    rto_time = conn.total_rto_time + (now - conn.rto_stamp if conn.rto_stamp is not None else 0.0)
    ecn = conn.ecn
    rate = conn.rack.rate                   # Linux tcp_rate.c's kept sample (rate.py)
    # (made at the first send: before it, the app-limited bit a fresh estimator would give)
    app_limited = rate.rate_app_limited if rate is not None else conn.rack.want_rate
    options = (1 if conn.ts_ok else 0) | (2 if conn.sack_ok else 0) | (4 if conn.peer_wscale is not None else 0) \
        | (8 if ecn is not None else 0) | (16 if ecn is not None and ecn.seen else 0)   # TCPI_OPT_ECN, _ECN_SEEN
    return _TCP_INFO.pack(
        # Linux hands TIME-WAIT to a minisocket: the socket itself then reports CLOSE
        int(State.CLOSED if st == State.TIME_WAIT else st), ca_state(conn), conn.retransmits & 0xFF,
        (conn.keep_probes or conn.persist_backoff) & 0xFF, (rtt.backoff or conn.persist_backoff) & 0xFF, options,
        # the last octet's bit 0: tcpi_delivery_rate_app_limited (bits 1-2, fastopen_client_fail: 0)
        (conn.snd_wscale & 0xF) | ((conn.rcv_wscale & 0xF) << 4), int(app_limited),
        _us(rtt.current()), _us(conn.ato), conn.mss, conn.rcv_mss,
        unacked, sacked, lost, retrans, 0,
        _ms(conn.lsndtime, now) if synced else 0, 0,
        _ms(conn.lrcvtime, now) if synced else 0, _ms(conn.rcv_tstamp, now) if synced else 0,
        conn.ifp.mtu if conn.ifp is not None else 0, conn.rcv.capacity, _us(rtt.srtt), _us(rtt.rttvar),
        TCP_INFINITE_SSTHRESH if ssthresh >= INFINITE_SSTHRESH_BYTES else ssthresh // mss,
        conn.cc.cwnd // mss, conn.our_mss, 3,
        _us(conn.rcv_rtt), conn.rcvq_space or (INIT_CWND * conn.our_mss if synced else 0), conn.total_retrans,
        int(conn.cc.pacing_rate or 0), _U64, conn.bytes_acked, conn.bytes_received,
        conn.segs_out & _U32, conn.segs_in & _U32,
        notsent_bytes(conn), _U32 if min_rtt is None else _us(min_rtt), conn.data_segs_in & _U32,
        conn.data_segs_out & _U32,
        rate.delivery_rate() if rate is not None else 0,
        _us(sum(chrono)), _us(chrono[CHRONO_RWND_LIMITED - 1]), _us(chrono[CHRONO_SNDBUF_LIMITED - 1]),
        conn.delivered & _U32, conn.delivered_ce & _U32, conn.bytes_sent, conn.bytes_retrans,
        conn.dsack_dups & _U32, conn.reord_seen & _U32, conn.rcv_ooopack & _U32, conn.snd_wnd & _U32, rcv_wnd, 0,
        min(conn.total_rto, 0xFFFF), min(conn.total_rto_recoveries, 0xFFFF), min(round(rto_time * 1000), _U32),
        0, 0, 0, 0, 0, 0, 0, 0, 0)


def chrono_rwnd(conn: Tcb, now: float) -> None:
    """After a send pass (Linux tcp_write_xmit): unsent data the peer's window has no room for
    is rwnd-limited time, else that limit ends."""
    off = sq.diff(conn.snd_nxt, conn.snd_una)
    waiting = conn.snd.queued - off
    if waiting > 0 and conn.snd_wnd - off < min(waiting, conn.mss):
        chrono_start(conn, CHRONO_RWND_LIMITED, now)
    elif conn.chrono_type == CHRONO_RWND_LIMITED:
        chrono_stop(conn, CHRONO_RWND_LIMITED, now)
