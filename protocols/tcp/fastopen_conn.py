"""TCP Fast Open's hooks in a connection's SYN path (RFC 7413; the policy, cookies and cache
are fastopen.py's): the SYN or SYN-ACK built (output.py _send_syn), a client's SYN-ACK
(input.py _input_syn_sent), and whether a Fast Open child may send before its handshake
completes (output.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import seq as sq
from .fastopen import ClientFastOpen, FastOpen, PassiveFastOpen

if TYPE_CHECKING:
    from .tcb import Tcb
    from .wire import TcpRepr

SAVED_ACK_DELAY = 0.2           # the handshake ACK saved for a waiting sender (Linux TCP_DELACK_MAX)


def on_syn(conn: Tcb, seg: TcpRepr) -> memoryview | None:
    """A SYN or SYN-ACK is built: put in the option, and the data of a client's first SYN
    (SND.NXT then covers it).  Returns that data."""
    tfo = conn.tfo
    if isinstance(tfo, PassiveFastOpen):
        if tfo.cookie is not None:               # the first SYN-ACK only (Linux rtx_syn_ack: none)
            seg.fastopen, seg.fastopen_exp = tfo.cookie, tfo.exp
            tfo.cookie = None
        return None
    if tfo is None or tfo.sent or conn.retries:
        return None                              # a retransmitted SYN: neither option nor data
    tfo.sent = True
    seg.fastopen, seg.fastopen_exp = tfo.cookie, tfo.exp
    n = min(conn.snd.queued, tfo.room(conn.our_mss))
    tfo.syn_data = n
    if not n:
        return None
    conn.host.stats.fastopen_active += 1
    conn.snd_nxt = sq.add(conn.iss, 1 + n)
    if sq.gt(conn.snd_nxt, conn.snd_max):
        conn.snd_max = conn.snd_nxt
    return conn.snd.view(0, n)


def child_sends(conn: Tcb) -> bool:
    """A Fast Open child may send data in SYN-RECEIVED, its SYN-ACK out (Linux
    tcp_passive_fastopen: the client proved its address with the cookie; RFC 7413 §4.2.2)."""
    tfo = conn.tfo
    return isinstance(tfo, PassiveFastOpen) and tfo.queue is not None and conn.snd_nxt != conn.iss


def on_synack(conn: Tcb, seg: TcpRepr) -> bool:
    """A client's SYN-ACK (after SND.UNA took its ACK): the data it acknowledged leaves the
    send buffer; the rest is sent again at once (Linux tcp_rcv_fastopen_synack marks it
    lost); the cookie cache learns.  True when a blocking sender waits to send data: the
    handshake's ACK is saved for its segment (Linux tcp_rcv_synsent_state_process with
    sk_write_pending), under a delayed-ACK timer in case it sends nothing."""
    tfo, conn.tfo = conn.tfo, None
    if not isinstance(tfo, ClientFastOpen):
        return False
    acked = min(max(sq.diff(seg.ack, sq.add(conn.iss, 1)), 0), tfo.syn_data)
    if acked:
        conn.snd.consume(acked)
        conn.bytes_acked += acked
    if acked < tfo.syn_data:
        conn.snd_nxt = conn.snd_una
        conn.host.stats.fastopen_active_fail += 1
    FastOpen.client_synack(tfo, seg.fastopen, seg.fastopen_exp, seg.mss, conn.retransmits > 0)
    return tfo.write_pending and acked == tfo.syn_data
