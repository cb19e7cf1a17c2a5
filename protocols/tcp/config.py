"""The TCP tunables (TcpConfig), named after the Linux sysctls they follow.

A module of its own, below the control block (tcb.py) and the protocol (tcp.py) that
both read it."""
from __future__ import annotations

from dataclasses import dataclass

from .congestion import DEFAULT


@dataclass
class TcpConfig:
    """Tunables, named after their Linux sysctl where one exists."""
    syn_retries: int = 6                # net.ipv4.tcp_syn_retries (a 127 s budget: timer.syn_timeout_budget)
    # net.ipv4.tcp_syn_linear_timeouts (Linux >= 6.10): the first N SYN retransmissions of a
    # connect() back off linearly (1 s apart) before the doubling starts
    syn_linear_timeouts: int = 4
    synack_retries: int = 5             # net.ipv4.tcp_synack_retries
    retries2: int = 15                  # net.ipv4.tcp_retries2
    msl: float = 30.0                   # TIME_WAIT lasts 2*MSL (Linux: 60 s)
    # net.ipv4.tcp_max_tw_buckets: connections in TIME_WAIT at most.  Beyond it a closing
    # connection skips TIME_WAIT (Linux: "time wait bucket table overflow"), so a peer that
    # makes us close first at a high rate cannot pile up 2*MSL worth of connections (~3 KB
    # of objects each here, which the tcp_mem budget does not see).  Linux sizes it from
    # its hash table (131072 on a 24 GiB host); a fixed 16384 here: ~50 MB at most.
    max_tw_buckets: int = 16384
    fin_timeout: float = 60.0           # orphaned FIN_WAIT_2 (net.ipv4.tcp_fin_timeout)
    # Orphans: connections the application closed that still deliver their data and FIN
    # (FIN_WAIT_1/2, CLOSING, LAST_ACK).  Nobody can read or write them any more, so they
    # get fewer chances than a live socket.  net.ipv4.tcp_orphan_retries: RTO retries, and
    # zero-window probes once their backoff is at its maximum, before an orphan is dropped
    # (counted orphan_timeouts); 0, Linux's default, means 8.  A peer answering every probe
    # with a zero window (a client that never reads) no longer holds an orphan forever.
    orphan_retries: int = 0
    # net.ipv4.tcp_max_orphans: orphans at most; a connection orphaned beyond it is reset at
    # once (Linux "too many orphaned sockets"; counted orphan_overflows).  Linux sizes it from
    # RAM (its docs: 8192 of old, each orphan "up to ~64 KB"); here 16384, like
    # max_tw_buckets: ~3 KB of objects each (~50 MB at most) -- their buffers are under the
    # tcp_mem budget anyway -- which is far more than a server's normal closing traffic.
    max_orphans: int = 16384
    delack: float = 0.04                # delayed-ACK timer (Linux TCP_DELACK_MIN); RFC 9293 caps it at 0.5 s
    quickacks: int = 16                 # ACK every segment at the start (Linux quickack mode)
    # SACK compression (delack.py): out-of-order ACKs past the first three per RCV.NXT are
    # held, one ACK for up to this many, sent after at most this delay (net.ipv4.
    # tcp_comp_sack_nr -- 0 turns it off -- and tcp_comp_sack_delay_ns)
    comp_sack_nr: int = 44
    comp_sack_delay: float = 0.001
    rto_min: float = 0.2
    rto_max: float = 120.0
    # Socket buffers (memory.py).  Linux's defaults: they start at [1] and autotune up to [2]
    # -- the receive buffer when the application drains it (DRS), the send buffer with the
    # congestion window -- so an idle or never-reading peer pins ~[1], not [2].  Sizes are
    # payload bytes (Linux's count skb overhead too, about half of tcp_rmem's: our buffers
    # are flat bytearrays, so the same numbers buy a window about twice Linux's).
    rmem: tuple[int, int, int] = (4096, 131072, 6 << 20)     # net.ipv4.tcp_rmem
    wmem: tuple[int, int, int] = (4096, 16384, 4 << 20)      # net.ipv4.tcp_wmem
    moderate_rcvbuf: bool = True                             # net.ipv4.tcp_moderate_rcvbuf
    # A fixed size for every socket instead (as if SO_RCVBUF/SO_SNDBUF were set: no autotuning)
    rcvbuf: int | None = None
    sndbuf: int | None = None
    # net.ipv4.tcp_mem, in bytes (Linux: pages, scaled to RAM -- 3:4:6 of 1/16 of it): one budget
    # for every TCP buffer of this stack, held bytes plus open receive windows (memory.py):
    # below [0] buffers grow freely; above [1] memory pressure (no growth, windows open by
    # 4 segments at most) until back below [0]; at [2] out-of-order data is dropped and new
    # connections refused.  A userspace stack is one process among others, so a fixed cap
    # (Linux gives ~1/10 of RAM), 256 MiB: ~1300 never-reading connections at ~190 KB each,
    # ~13 000 idle ones, or ~20 bulk flows at full 6 MiB windows.
    mem: tuple[int, int, int] = (128 << 20, 192 << 20, 256 << 20)
    keepidle: float = 7200.0
    keepintvl: float = 75.0
    keepcnt: int = 9
    congestion: str = DEFAULT
    sack: bool = True
    timestamps: bool = True
    window_scaling: bool = True
    syncookies: bool = True
    # net.ipv4.tcp_fastopen: TCP Fast Open (RFC 7413) flags as Linux's -- 0x1 client, 0x2 server,
    # 0x4 client data without a cookie, 0x200 server without a cookie, 0x400 every listener
    # (fastopen.py).  Linux's default, 1: client only.
    fastopen: int = 1
    somaxconn: int = 4096               # net.core.somaxconn: listen() backlogs are clamped to it
    # RFC 5961 §7 asks to limit challenge ACKs.  Per connection, like Linux's per-socket
    # net.ipv4.tcp_invalid_ratelimit (500 ms): at most one ACK answering invalid segments
    # (challenge ACKs, and dup ACKs for out-of-window or PAWS-failed segments without data)
    # per interval.  A host-wide budget is what CVE-2016-5696 counted from off path; Linux 6.0
    # disabled it by default (tcp_challenge_ack_limit = INT_MAX), as None does here.  Set, it
    # is randomised per second like Linux >= 4.7: uniform in [limit/2, 3*limit/2).
    invalid_ratelimit: float = 0.5      # seconds (net.ipv4.tcp_invalid_ratelimit)
    challenge_ack_limit: int | None = None   # per second per stack (net.ipv4.tcp_challenge_ack_limit)
    # net.ipv4.tcp_slow_start_after_idle: after an idle longer than the RTO, cwnd restarts
    # towards the initial window (RFC 5681 §4.1; Linux tcp_cwnd_restart, cwnd.py)
    slow_start_after_idle: bool = True
    loss_probes: bool = True            # tail-loss probes and the recovery probe (RFC 8985 TLP, simplified)
    rack: bool = True                   # RACK time-based loss detection with SACK (RFC 8985; Linux tcp_recovery=1)
    dsack: bool = True                  # report duplicate segments (RFC 2883; net.ipv4.tcp_dsack)
    # ECN (RFC 3168, ecn.py), net.ipv4.tcp_ecn: 0 off, 1 request on connect() and accept, 2
    # accept only -- Linux's default: a listener agrees to a peer's ECN-setup SYN, connect()
    # does not ask (ECN on every outgoing SYN still meets middleboxes dropping them).
    ecn: int = 2
    ecn_fallback: bool = True           # net.ipv4.tcp_ecn_fallback: a retransmitted SYN drops ECE/CWR
    # The forwarder (forward.py, issue 13's gateway): SYNs held for the owner at most (like a
    # listen backlog, net.core.somaxconn; beyond it a SYN is dropped, counted
    # forward_dropped_full, and the guest's retry asks again), and how long one waits for
    # forward_accept / forward_reject before it is forgotten (counted forward_expired; the
    # guest's next SYN retry -- Linux's come at 1, 3, 7, 15, 31 s -- asks anew).
    forward_pending_max: int = 4096
    forward_timeout: float = 30.0
    # net.ipv4.tcp_notsent_lowat: a socket is writable while its unsent bytes stay below this
    # (Linux's default UINT_MAX: no limit); TCP_NOTSENT_LOWAT sets it per socket
    notsent_lowat: int = 0xFFFFFFFF
    # Packetization-layer path MTU discovery (mtuprobe.py): net.ipv4.tcp_mtu_probing (0 off,
    # Linux's default; 1 after a black hole is suspected; 2 always), tcp_base_mss,
    # tcp_mtu_probe_floor, tcp_probe_threshold (bytes), tcp_probe_interval (seconds), and
    # tcp_retries1, the RTOs after which a black hole is suspected
    mtu_probing: int = 0
    base_mss: int = 1024
    mtu_probe_floor: int = 48
    probe_threshold: int = 8
    probe_interval: float = 600.0
    retries1: int = 3
    persist_min: float = 0.2
    persist_max: float = 60.0
