"""The connection's side of path-MTU probing (mtuprobe.py): the hooks input.py, output.py
and timer.py call, with the connection's sequence numbers, header sizes and windows."""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import seq as sq
from .mtuprobe import TIME_SLACK, MtuSearch, model_timeout

if TYPE_CHECKING:
    from .tcb import Tcb

PROBE_FOLLOWERS = 4          # segments after a probe: Linux's (tp->reordering + 1), reordering 3


def overhead(conn: Tcb) -> int:
    """IP and TCP headers with the options every segment carries (Linux tcp_mss_to_mtu)."""
    return 20 + conn.net_hdr_len + (12 if conn.ts_ok else 0)


def start(conn: Tcb, active: bool) -> None:
    """At the handshake (Linux tcp_mtup_init): from tcp_base_mss up to the MSS both ends
    and our link allow; searching already with tcp_mtu_probing=2.  Linux does it for an
    active open in tcp_connect_init, before the SYN-ACK: the floor's MTU counts the
    timestamps we offered, and the MSS obeys it at once; a passive open's MSS obeys it
    only from the search's first move."""
    cfg = conn.config
    ts = cfg.timestamps if active else conn.ts_ok
    conn.mtup = MtuSearch(cfg.mtu_probing > 1, cfg.base_mss + 20 + conn.net_hdr_len + (12 if ts else 0),
                          min(conn.peer_mss, conn.our_mss) + 20 + conn.net_hdr_len, clamped=active)


def on_rto(conn: Tcb, now: float) -> None:
    """Black-hole detection at an RTO of an established connection (Linux tcp_write_timeout):
    once the retransmissions have gone on longer than tcp_retries1 backoffs of TCP_RTO_MIN
    take, each RTO lowers the search floor (the MSS follows).  An RTO with the probe
    outstanding: the probe was lost.  Linux times that from the first retransmission's
    original send (retrans_stamp); here from when the first RTO was armed -- the same
    unless a loss probe came first (it re-arms the RTO)."""
    search = conn.mtup
    assert search is not None
    if conn.retries == 1:
        search.rto_stamp = now - conn.rtt.current()
    if search.probe_size and sq.lt(conn.snd_una, search.probe_end):
        search.probe_lost()
    cfg = conn.config
    # (Linux compares whole milliseconds; TIME_SLACK keeps float sums from missing equality)
    if cfg.mtu_probing and conn.retries >= 2 \
            and now - search.rto_stamp + TIME_SLACK >= model_timeout(cfg.retries1):
        conn.host.stats.mtu_black_holes += 1
        search.black_hole(overhead(conn), cfg.base_mss, cfg.mtu_probe_floor, now)
        conn._update_mss()


def send_probe(conn: Tcb, now: float) -> int:
    """The probe's payload if one may go now (Linux tcp_mtu_probe), else 0: the search is on
    and open, the congestion state is Open with cwnd >= 11 segments, no SACK blocks to send
    (they would change the size), and the window and the queue hold the probe and the
    (reordering + 1) segments after it that would tell its loss."""
    search = conn.mtup
    assert search is not None
    cfg = conn.config
    if conn.cc.cwnd < 11 * conn.mss or conn.rcv.ooo_starts or conn.dsack is not None:
        return 0
    if conn.pmtu and search.search_high > conn.pmtu:
        search.search_high = conn.pmtu          # ICMP told of a smaller path (Linux tcp_sync_mss)
    header = overhead(conn)
    probe = search.next_probe(header, cfg.probe_threshold)
    if probe is None:
        if not search.probe_size:
            search.reprobe_due(now, cfg.probe_interval, min(conn.peer_mss, conn.our_mss) + 20 + conn.net_hdr_len,
                               conn.mss + header)
        return 0
    needed = probe + PROBE_FOLLOWERS * conn.mss
    off = sq.diff(conn.snd_nxt, conn.snd_una)
    if conn.snd.queued - off < needed or conn.snd_wnd - off < needed or off + 2 * conn.mss > conn.cc.cwnd:
        return 0
    search.probe_sent(probe + header, conn.snd_nxt, sq.add(conn.snd_nxt, probe))
    conn.host.stats.mtu_probes += 1
    conn.cc.cwnd -= conn.mss                    # the probe is two segments' worth (Linux)
    return probe


def on_ack(conn: Tcb, ack: int) -> None:
    """The probe acknowledged: that size passes, the MSS grows to it -- and cwnd keeps its
    bytes in fewer, larger segments, ssthresh at least 3/4 of it (Linux
    tcp_mtup_probe_success; set_mss alone would keep the segment count)."""
    search = conn.mtup
    assert search is not None
    if search.probe_size and sq.ge(ack, search.probe_end):
        cc = conn.cc
        packets, old_mtu, probe_mtu = cc.cwnd // max(conn.mss, 1), conn.mss + overhead(conn), search.probe_size
        search.probe_acked()
        conn.host.stats.mtu_probe_successes += 1
        conn._update_mss()
        cc.cwnd = max(packets * old_mtu // probe_mtu, 1) * conn.mss
        cc.ssthresh = max(cc.ssthresh, cc.cwnd * 3 // 4)
