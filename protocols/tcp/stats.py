"""The TCP counters (TcpStats): RFC 4022 MIB names plus Linux's TcpExt extras.

A module of its own so that the control block (tcb.py) can name the type its protocol
counts in without importing the protocol (tcp.py imports the connection)."""
from __future__ import annotations

from dataclasses import dataclass

from ndd.counters import Counters


@dataclass
class TcpStats(Counters):
    """RFC 4022 tcp MIB names, lower-cased, plus Linux's TcpExt extras."""
    active_opens: int = 0
    passive_opens: int = 0
    attempt_fails: int = 0
    estab_resets: int = 0
    in_segs: int = 0
    out_segs: int = 0
    retrans_segs: int = 0
    in_errs: int = 0
    in_csum_errors: int = 0
    in_truncated: int = 0
    in_hdr_errors: int = 0
    out_rsts: int = 0
    in_rsts: int = 0
    no_ports: int = 0
    fast_retransmits: int = 0
    loss_probes: int = 0
    window_probes: int = 0          # zero-window probes sent (Linux TCPWinProbe)
    to_zero_window: int = 0         # ACKs that closed our receive window (Linux TCPToZeroWindowAdv)
    from_zero_window: int = 0       # ACKs that opened it again (Linux TCPFromZeroWindowAdv)
    probe_recoveries: int = 0
    rack_lost: int = 0              # segments RACK marked lost (RFC 8985 §6.2; Linux counts them in TCPLost*)
    lost_retransmits: int = 0       # ...of them retransmissions lost again (Linux TCPLostRetransmit)
    rack_timeouts: int = 0          # RACK reordering-timer expiries (Linux's REO_TIMEOUT)
    cwnd_restarts: int = 0          # cwnd restarted after an idle (RFC 5681 §4.1, tcp_slow_start_after_idle)
    dsacks_sent: int = 0            # duplicates reported to the peer (RFC 2883; Linux TCPDSACKOldSent)
    dsacks_received: int = 0        # D-SACKs from the peer: spurious retransmissions (TCPDSACKRecv)
    recovery_undos: int = 0         # recoveries found spurious and undone (Linux TCPFullUndo + TCPDSACKUndo)
    sack_reneging: int = 0          # the peer dropped data it had SACKed: scoreboard cleared (TCPSACKReneging)
    rto_fires: int = 0
    # ECN (RFC 3168, ecn.py)
    ecn_negotiated: int = 0             # connections that agreed to ECN (either side's SYN)
    ecn_ce_received: int = 0            # data segments that arrived CE-marked (Linux IpExtInCEPkts, per TCP)
    ecn_reductions: int = 0             # cwnd reductions for an ECE (entering CWR; TcpExt has none)
    ecn_syn_fallbacks: int = 0          # ECN-setup SYNs retransmitted without ECE/CWR (tcp_ecn_fallback)
    mtu_black_holes: int = 0        # RTOs that lowered the MSS (tcp_mtu_probing; Linux has no counter)
    mtu_probes: int = 0             # path-MTU probes sent (Linux TCPMTUPFail + TCPMTUPSuccess)
    mtu_probe_successes: int = 0    # ...acknowledged: the MSS grew (Linux TCPMTUPSuccess)
    timeouts: int = 0
    timer_deferrals: int = 0     # a timer still due after its handler ran: pushed one tick on
    paws_drops: int = 0
    out_of_window: int = 0
    challenge_acks: int = 0             # sent (Linux TCPChallengeACK)
    challenge_acks_suppressed: int = 0  # not sent: per-connection limit or host budget
    ack_skipped_challenge: int = 0      # ... of which by the per-connection limit (TCPACKSkippedChallenge)
    oow_acks: int = 0                   # dup ACKs sent for out-of-window / PAWS-failed segments
    ack_skipped_seq: int = 0            # out-of-window, rate-limited (TCPACKSkippedSeq)
    ack_skipped_paws: int = 0           # PAWS-failed, rate-limited (TCPACKSkippedPAWS)
    ack_skipped_time_wait: int = 0      # out-of-window in TIME_WAIT, rate-limited (TCPACKSkippedTimeWait)
    icmp_no_conn: int = 0               # ICMP error quoting no connection of ours (Linux: ICMP InErrors)
    out_of_window_icmps: int = 0        # quoted sequence not in [SND.UNA, SND.MAX] (OutOfWindowIcmps)
    icmp_ignored: int = 0               # ICMP error for a connection in TIME_WAIT
    pmtu_reductions: int = 0            # a validated frag-needed shrank a connection's MSS
    ooo_segs: int = 0
    acks_compressed: int = 0            # out-of-order ACKs folded into a later one (Linux TCPAckCompressed)
    tw_overflows: int = 0               # TIME_WAIT skipped: max_tw_buckets already (TCPTimeWaitOverflow)
    orphan_timeouts: int = 0            # orphans dropped after tcp_orphan_retries (TCPAbortOnTimeout)
    orphan_overflows: int = 0           # closed beyond max_orphans: reset at once ("too many orphaned sockets")
    ofo_dropped: int = 0            # out-of-order segments refused: the block cap (Linux TCPOFODrop)
    ofo_pruned: int = 0             # prune events dropping queued blocks from the far end (OfoPruned)
    sack_blocks_invalid: int = 0    # SACK blocks empty, inverted or beyond SND.MAX (TCPSACKDiscard)
    sack_blocks_old: int = 0        # SACK blocks wholly at or below SND.UNA: D-SACK or stale
    sack_blocks_ignored: int = 0    # SACK blocks that would fragment the scoreboard beyond its cap
    syncookies_sent: int = 0
    syncookies_recv: int = 0
    syncookies_failed: int = 0
    # TCP Fast Open (fastopen.py; Linux TcpExt TCPFastOpen*)
    fastopen_active: int = 0            # SYN-data sent (TCPFastOpenActive)
    fastopen_active_fail: int = 0       # ... and the SYN-ACK did not acknowledge it (TCPFastOpenActiveFail)
    fastopen_passive: int = 0           # SYN-data accepted: a child made at SYN time (TCPFastOpenPassive)
    fastopen_passive_fail: int = 0      # a cookie that did not check (TCPFastOpenPassiveFail)
    fastopen_cookie_reqd: int = 0       # cookie requests received (TCPFastOpenCookieReqd)
    fastopen_listen_overflow: int = 0   # SYN-data refused: the TCP_FASTOPEN queue was full (TCPFastOpenListenOverflow)
    listen_overflows: int = 0
    listen_drops: int = 0
    defer_accept_drops: int = 0         # bare handshake ACKs TCP_DEFER_ACCEPT dropped (TCPDeferAcceptDrop)
    aborts: int = 0
    keepalive_drops: int = 0
    out_errors: int = 0
    # the socket-buffer budget (memory.py; Linux TcpExt names in the comments)
    mem_pressure: int = 0               # times the stack entered memory pressure (TCPMemoryPressures)
    mem_grow_denied: int = 0            # buffer growth withheld under pressure
    mem_window_clamped: int = 0         # windows offered smaller under pressure / over the high mark
    mem_window_shared: int = 0          # windows held to an even share of the budget above its low mark
    mem_sndbuf_moderated: int = 0       # send buffers cut to half their queue over the high mark
    mem_ooo_pruned: int = 0             # out-of-order queues dropped over the high mark (OfoPruned)
    mem_ooo_dropped: int = 0            # out-of-order segments dropped over the high mark (TCPOFODrop)
    mem_refused: int = 0                # new connections refused over the high mark
    # the forwarder (forward.py; a gateway's SYNs for addresses and ports no listener serves)
    forward_requests: int = 0           # SYNs handed to tcp.forwarder
    forward_syn_retransmits: int = 0    # the guest's SYN again while its request is held: ignored
    forward_accepted: int = 0           # forward_accept: a SYN-ACK went out
    forward_rejected_rst: int = 0       # forward_reject "rst"
    forward_rejected_icmp: int = 0      # forward_reject "net" / "host" / "port" / "admin"
    forward_rejected_silent: int = 0    # forward_reject "silent": nothing sent
    forward_refused_mem: int = 0        # forward_accept over tcp_mem[2]: an RST instead
    forward_dropped_full: int = 0       # SYN dropped: forward_pending_max requests held already
    forward_expired: int = 0            # requests unresolved after forward_timeout: forgotten
    # relayed flows (relayed.py; forward_relay's lean guest side)
    relay_ooo_queued: int = 0           # guest segments beyond RCV.NXT kept until the hole is filled
    relay_dropped_ooo: int = 0          # ... dropped: beyond the window, or OOO_MAX kept already
    relay_fast_retrans: int = 0         # one segment resent on three duplicate ACKs
    relay_timeouts: int = 0             # retransmission timeouts (go back N)
    relay_aborted: int = 0              # flows reset after their retries ran out
