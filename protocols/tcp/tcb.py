"""The TCP control block (RFC 9293 §3.3.1 TCB): every field of a connection, typed, and the
calls one half of the connection makes into another.

Design (issue 11): the connection's code stays split by concern like 4.4BSD's tcp_input.c /
tcp_output.c / tcp_timer.c -- input.py, output.py, timer.py, memory.py -- and each half is a
subclass of `Tcb`, which declares what they share:

  * every field with its type (the slots live here; Connection.__init__ gives the initial
    values), so mypy checks every read and write of the state in every half;
  * the methods one half calls in another (`output` from input and timer, `arm_probe` from
    input and output, ...) as abstract stubs: the half that owns one overrides it, mypy
    checks that the override keeps the signature, and that Connection leaves none
    unimplemented (it refuses to instantiate a class with an abstract method left; no
    ABCMeta, so nothing of this runs at run time);
  * `host`, the protocol the connection lives in (tcp.py's Tcp, or a test double), as the
    `TcpHost` interface below -- typed by `Self`, so a host of Connections is handed
    Connections, while tcb.py imports neither tcp.py nor conn.py (no import cycle).

`Connection(InputMixin, OutputMixin, TimerMixin, MemoryMixin)` (conn.py) joins the halves;
Tcb comes last in its MRO, so each stub is overridden by the real method.  This is a typing
device only: attribute and method lookups go through the class's slots and method cache
as before, so no call or indirection is added per segment.
"""
from __future__ import annotations

from abc import abstractmethod
from collections import deque
from collections.abc import Callable
from functools import lru_cache
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar, overload

from ..shared import frozen
from .buffers import RecvBuffer, Scoreboard, SendBuffer
from .config import TcpConfig
from .controller import CongestionControl
from .cwnd import CwndUse
from .ecn import Ecn
from .fastopen import ClientFastOpen, FastOpenQueue, PassiveFastOpen
from .mtuprobe import MtuSearch
from .prr import Prr
from .rack import Rack
from .rtt import RttEstimator
from .state import State
from .stats import TcpStats
from .urgent import Urgent
from .wire import TcpRepr

if TYPE_CHECKING:
    from ..ifnet import Interface

ConnT_contra = TypeVar("ConnT_contra", contravariant=True)


class MemoryBudget(Protocol):
    """The stack-wide tcp_mem budget as a connection uses it (memory.py SocketMemory)."""
    @property
    def pressure(self) -> bool: ...
    def below_low(self) -> bool: ...
    def under_pressure(self) -> bool: ...
    def over_high(self) -> bool: ...
    def window_share(self) -> int | None: ...
    def update(self, conn: Tcb) -> None: ...


class Route(Protocol):
    """The interface a connection's route leaves by (the stack's Interface): its MTU."""
    @property
    def mtu(self) -> int: ...


class TcpHost(Protocol[ConnT_contra]):
    """What a connection calls on its protocol (tcp.py Tcp; tests use a recording double).
    ConnT_contra is the connection class the host keeps in its tables."""
    batching: bool          # inside a device's receive batch: output_later waits for its end
    @property
    def stats(self) -> TcpStats: ...
    @property
    def mem(self) -> MemoryBudget: ...
    def ts_clock(self, now: float) -> int: ...
    def challenge_ack_allowed(self, now: float) -> bool: ...
    def path_mtu(self, conn: ConnT_contra, now: float) -> int: ...
    def emit(self, conn: ConnT_contra, seg: TcpRepr, opts: bytes, payload: memoryview | None, gso: int,
             now: float) -> int: ...
    def emit_ack(self, conn: ConnT_contra, seqno: int, window: int, opts: bytes, now: float) -> int | None: ...
    def reset_reply(self, conn: ConnT_contra, seg: TcpRepr, datalen: int, now: float) -> None: ...
    def output_later(self, conn: ConnT_contra, now: float) -> None: ...
    def established(self, conn: ConnT_contra) -> None: ...
    def accept_queue_full(self, lst: ConnT_contra) -> bool: ...
    def time_wait(self, conn: ConnT_contra) -> None: ...
    def detach(self, conn: ConnT_contra) -> None: ...


T = TypeVar("T")


@lru_cache(maxsize=1024)
def shared_int(value: int) -> int:
    """The one int object for `value` that connections on the same route share: an MSS, the
    TSO payload -- the same numbers for every connection over an interface, 28-32 bytes
    each per connection otherwise (CPython shares only -5..256).  A bounded cache: a value
    it no longer holds is merely not shared."""
    return value


class TcbRare:
    """The fields of a connection that most connections leave at their defaults all their
    lives: a loss recovery's undo state, TCP_INFO's counters of retransmissions, RTOs,
    reordering and D-SACKs, the options few sockets set.  Every connection starts with the
    shared RARE_DEFAULTS, never written, and gets a record of its own at the first write of
    a value other than the default (Rare.__set__): 43 fields cost an idle connection one
    slot instead of 43 (issue 15: an idle connection's heap).  Nothing here is read per
    segment: a read goes through the descriptor (~0.1 µs)."""
    __slots__ = (
        "undo_cc", "undo_retrans", "undo_tsval", "undo_marker", "probe_retrans", "tail_lost", "last_oow_ack",
        "comp_rcv_nxt", "comp_dups", "soft_error", "total_retrans", "cookie", "mapped_bound", "oif_gone", "dontfrag",
        "pmtudisc", "tfo_connect", "rcv_last_seg", "bytes_retrans", "defer_acked", "delivered_ce", "total_rto",
        "total_rto_recoveries", "total_rto_time", "rto_stamp", "rcv_ooopack", "dsack_dups", "reord_seen", "linger0",
        "user_mss", "transparent", "v6only", "recverr6", "user_timeout", "recv_inq", "defer_accept", "reuseport",
        # a listener's own (its children never set them)
        "bound_port", "backlog", "syn_count", "accept_queue", "accept_live", "tfo_queue",
    )

    def __init__(self) -> None:
        # undoing a spurious recovery (RFC 3708, 3522, 4015): the controller before it
        self.undo_cc: dict[str, object] | None = None
        self.undo_retrans: int = 0                       # retransmissions of the episode not yet D-SACKed
        self.undo_tsval: int | None = None               # TSval of its first retransmission
        self.undo_marker: int = 0                        # SND.UNA when it began: older D-SACKs are not its
        self.probe_retrans: bool = False
        self.tail_lost: bool = False                     # in recovery: nothing above the highest SACK is in flight
        # last ACK answering an invalid segment (Linux last_oow_ack_time)
        self.last_oow_ack: float | None = None
        self.comp_rcv_nxt: int = 0
        self.comp_dups: int = 0
        self.soft_error: int = 0
        self.total_retrans: int = 0
        self.cookie: bool = False
        self.mapped_bound: bool = False
        self.oif_gone: int = 0
        self.dontfrag: bool = False
        self.pmtudisc: int = 1                  # IPV6_PMTUDISC_WANT, Linux's default
        self.tfo_connect: bool = False
        self.rcv_last_seg: int = 0
        self.bytes_retrans: int = 0
        self.defer_acked: bool = False                   # a child whose bare handshake ACK the deferral dropped
        self.delivered_ce: int = 0
        self.total_rto: int = 0
        self.total_rto_recoveries: int = 0
        self.total_rto_time: float = 0.0
        self.rto_stamp: float | None = None
        self.rcv_ooopack: int = 0
        self.dsack_dups: int = 0
        self.reord_seen: int = 0
        self.linger0: bool = False
        self.user_mss: int = 0
        self.transparent: bool = False
        self.v6only: bool = False
        self.recverr6: bool = False
        self.user_timeout: float = 0.0
        self.recv_inq: bool = False
        self.defer_accept: int = 0
        self.reuseport: bool = False
        self.bound_port: bool = False
        self.backlog: int = 0
        self.syn_count: int = 0
        self.accept_queue: deque[Any] | None = None
        self.accept_live: int = 0
        self.tfo_queue: FastOpenQueue | None = None

    def inherited(self) -> TcbRare:
        """A listener's record as its child starts (Linux sk_clone_lock clones the options):
        the shared defaults when the listener set none of the options children inherit."""
        if self is RARE_DEFAULTS:
            return RARE_DEFAULTS
        values = _inherited_values(self)            # (one C-level call per SYN)
        if values == _DEFAULT_INHERITED:
            return RARE_DEFAULTS
        child = TcbRare()
        for name, value in zip(RARE_INHERITED, values, strict=True):
            setattr(child, name, value)
        return child


RARE_DEFAULTS = frozen(TcbRare(), "RARE_DEFAULTS")      # never written (protocols/shared.py)
RARE_INHERITED = ("linger0", "user_mss", "transparent", "v6only", "recverr6", "user_timeout", "recv_inq", "reuseport")
_inherited_values = attrgetter(*RARE_INHERITED)
_DEFAULT_INHERITED = _inherited_values(RARE_DEFAULTS)


class Rare(Generic[T]):
    """A Tcb field kept in the connection's TcbRare record (see there)."""
    __slots__ = ("name",)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> Rare[T]: ...
    @overload
    def __get__(self, obj: Tcb, objtype: type | None = None) -> T: ...

    def __get__(self, obj: Tcb | None, objtype: type | None = None) -> T | Rare[T]:
        if obj is None:
            return self
        value: T = getattr(obj.rare, self.name)
        return value

    def __set__(self, obj: Tcb, value: T) -> None:
        rare = obj.rare
        if rare is RARE_DEFAULTS:
            default = getattr(rare, self.name)
            if value is default or (type(value) is type(default) and value == default):
                return                                  # the default again: nothing of its own yet
            obj.rare = rare = TcbRare()
        setattr(rare, self.name, value)


class Tcb:
    """The fields of one connection, grouped as RFC 9293 §3.3.1 and BSD's struct tcpcb."""
    __slots__ = (
        "host", "config", "rare", "state", "laddr", "lport", "faddr", "fport",
        # send sequence space (RFC 9293 §3.3.1) + SND.MAX of BSD
        "iss", "snd_una", "snd_nxt", "snd_max", "snd_wnd", "snd_wl1", "snd_wl2", "max_snd_wnd", "snd_wscale",
        # receive sequence space
        "irs", "rcv_nxt", "rcv_adv", "rcv_wscale", "last_ack_sent",
        # options
        "mss", "peer_mss", "our_mss", "pmtu", "ts_ok", "ts_recent", "ts_recent_stamp", "ts_offset", "sack_ok",
        "want_wscale", "peer_wscale",
        # buffers
        "snd", "rcv", "rcvbuf_locked", "sndbuf_locked", "mem_charged", "mem_promised", "fin_queued", "fin_seq",
        "fin_acked", "rcv_fin", "ooo_fin", "rcv_closed",
        # RTT and congestion
        "rtt", "rtt_seq", "rtt_time", "cc", "dupacks", "in_recovery", "rto_recovery", "recover", "high_rxt",
        "rexmit_una",
        "scoreboard", "rack", "rack_at", "pace_at", "pace_next",
        "prr", "tlp_pending", "cwnd_use",
        # timers
        "rto_at", "delack_at", "persist_at", "keep_at", "tw_at", "sched_at", "retries", "persist_backoff",
        "probe_at", "probe_high",
        "keep_probes", "last_rcv",
        # acks
        "ack_now", "delack_bytes", "quickacks", "dsack",
        "comp_acks", "comp_at", "ack_held", "ack_held_now", "ack_held_una",
        # segmentation and delayed ACKs as Linux (segmentation.py, delack.py)
        "cork", "push_more", "cork_until", "snd_sml", "chunk_end", "chunk_psh", "skb_end",
        "ato", "lrcvtime", "pingpong", "ack_pushed", "rcv_mss", "rcv_wnd_max",
        # socket-facing
        "so_error", "nodelay", "keepalive", "keepidle", "keepintvl", "keepcnt",
        "on_event", "parent", "ifp", "csum_offload", "tso_max", "gso_max",
        "queued",
        "ttl", "tos", "reuseaddr", "user_closed", "shut_wr",
        "owned",
        # statistics (TCP_INFO)
        "retransmits", "segs_in", "segs_out", "bytes_acked", "bytes_received",
        # address family (dual stack, tcp.py): the socket's, and the one the association runs over
        "family", "net6", "net_hdr_len", "oif",
        "hop_limit", "tclass",
        # receive-buffer autotuning (memory.py): bytes read, the current measure, receiver RTT
        "rcv_copied", "rcvq_space", "rcvq_seq", "rcvq_time", "rcv_rtt", "rcv_rtt_seq", "rcv_rtt_time",
        # ECN (RFC 3168, ecn.py): None unless requested or negotiated
        "ecn",
        # TCP Fast Open (fastopen.py)
        "tfo",
        # TCP_INFO as Linux fills it, and the socket options of issue 14 (info.py)
        "lsndtime", "rcv_tstamp", "bytes_sent",
        "data_segs_in", "data_segs_out", "delivered", "chrono_type", "chrono_start", "chrono_stat",
        "notsent_lowat", "retrans_stamp", "probes_stamp",
        "urg",                          # urgent data (urgent.py), None until the connection uses it
        "mtup",                         # path-MTU probing's search (mtuprobe.py), None when off
        "rx_ifp",                       # where its segments come in: early demux (tcp.py)
        "dst_cache",                    # its IPv4 route, (generation, interface, next hop) (tcp.py)
    )

    host: TcpHost[Self]
    config: TcpConfig
    rare: TcbRare                       # the fields declared Rare[...] below (TcbRare)
    state: State
    laddr: int
    lport: int
    faddr: int
    fport: int
    # send sequence space
    iss: int
    snd_una: int
    snd_nxt: int
    snd_max: int                        # highest sequence sent (BSD): SND.NXT goes back after an RTO
    snd_wnd: int
    snd_wl1: int
    snd_wl2: int
    max_snd_wnd: int                    # the largest window the peer offered (RFC 5961 §5.2, SWS)
    snd_wscale: int
    # receive sequence space
    irs: int
    rcv_nxt: int
    rcv_adv: int                        # the right edge we advertised: never moves left
    rcv_wscale: int
    last_ack_sent: int                  # RFC 7323 §4.3 Last.ACK.sent
    # options
    mss: int                            # payload per segment, options deducted (input.py _update_mss)
    peer_mss: int
    our_mss: int
    pmtu: int                           # path MTU below the link's (0: none)
    ts_ok: bool
    ts_recent: int
    ts_recent_stamp: float
    ts_offset: int
    sack_ok: bool
    want_wscale: bool
    peer_wscale: int | None
    # buffers and their accounting (memory.py)
    snd: SendBuffer
    rcv: RecvBuffer
    rcvbuf_locked: bool
    sndbuf_locked: bool
    mem_charged: int
    mem_promised: int
    fin_queued: bool
    fin_seq: int | None
    fin_acked: bool
    rcv_fin: bool
    ooo_fin: int | None
    rcv_closed: bool
    # RTT and congestion
    rtt: RttEstimator
    rtt_seq: int | None
    rtt_time: float
    cc: CongestionControl
    dupacks: int
    in_recovery: bool
    rto_recovery: bool  # after an RTO until SND.UNA passes its RECOVER: Linux's Loss state (no TLP in it)
    recover: int
    high_rxt: int
    rexmit_una: bool
    scoreboard: Scoreboard
    rack: Rack
    prr: Prr                            # PRR's state during a cwnd reduction (prr.py)
    probe_retrans: Rare[bool] = Rare()  # the outstanding loss probe resent data (RFC 8985 §7.4)
    tlp_pending: int | None             # a probe's SND.MAX awaiting RFC 8985 §7.4's verdict
    cwnd_use: CwndUse                   # Linux's cwnd-limited state and last send time (cwnd.py)
    rack_at: float | None
    pace_at: float | None               # the send timer: pacing's debt paid, or the autocork's end
    pace_next: float
    undo_cc: Rare[dict[str, object] | None] = Rare()
    undo_retrans: Rare[int] = Rare()
    undo_tsval: Rare[int | None] = Rare()
    undo_marker: Rare[int] = Rare()
    # timers: deadlines, None when not armed (timer.py)
    rto_at: float | None
    delack_at: float | None
    persist_at: float | None
    keep_at: float | None
    tw_at: float | None
    sched_at: float | None              # where the protocol's timer heap holds it (tcp.py)
    retries: int
    persist_backoff: int
    probe_at: float | None
    probe_high: int | None
    tail_lost: Rare[bool] = Rare()
    keep_probes: int
    last_rcv: float
    # acks
    ack_now: bool
    delack_bytes: int
    quickacks: int
    last_oow_ack: Rare[float | None] = Rare()
    dsack: tuple[int, int] | None
    # SACK compression (delack.py): ACKs held, when they go, the RCV.NXT and how many
    # out-of-order ACKs went at once for it
    comp_acks: int
    comp_at: float | None
    comp_rcv_nxt: Rare[int] = Rare()
    comp_dups: Rare[int] = Rare()
    # the peer's pure ACKs of one receive batch, joined into one and taken at its end
    # (input.py _hold_ack), and the time of the last
    ack_held: TcpRepr | None
    ack_held_now: float
    ack_held_una: int                   # the cumulative ACK before the held one
    # segmentation (segmentation.py): TCP_CORK, this push's MSG_MORE, Minshall's snd_sml,
    # where the chunk being sent ends (Linux sends an skb in chunks, PSH on each one's last)
    cork: bool
    push_more: bool
    cork_until: float                   # the last write + AUTOCORK (output.py _nagle_holds)
    snd_sml: int
    chunk_end: int
    chunk_psh: int                      # 1: the chunk was cut by its size (PSH), 2: a probe
    skb_end: int                        # the skb end the next segment lies in (segmentation.next_end)
    # delayed ACKs (delack.py): Linux icsk_ack.ato, lrcvtime, pingpong, pending PUSHED bits, rcv_mss
    ato: float
    lrcvtime: float
    pingpong: bool
    ack_pushed: int
    rcv_mss: int
    rcv_wnd_max: int                    # the largest window advertised (output.py _window_update)
    # socket-facing
    so_error: int
    soft_error: Rare[int] = Rare()
    nodelay: bool
    keepalive: bool
    keepidle: float
    keepintvl: float
    keepcnt: int
    linger0: Rare[bool] = Rare()
    on_event: Callable[[], None]
    parent: Self | None
    backlog: Rare[int] = Rare()
    syn_count: Rare[int] = Rare()
    accept_queue: Rare[deque[Self] | None] = Rare()
    ifp: Route | None
    rx_ifp: object                      # the interface the full input path last took a segment from
    dst_cache: tuple[int, Any, int] | None
    csum_offload: bool
    tso_max: int
    gso_max: int                        # software GSO (ndd/gso.py): largest super-segment payload, 0: none
    # A child that dies in the accept queue stays there until accept() returns it, as in
    # Linux (tcp.py detach).  accept_live counts a listener's queued children -- what the
    # backlog limit compares.
    accept_live: Rare[int] = Rare()
    queued: bool
    ttl: int | None
    tos: int
    transparent: Rare[bool] = Rare()  # IP_TRANSPARENT / IPV6_TRANSPARENT (sockopt.py)
    user_mss: Rare[int] = Rare()  # TCP_MAXSEG before connect/listen (0: none); Linux rx_opt.user_mss
    reuseaddr: bool
    reuseport: Rare[bool] = Rare()
    bound_port: Rare[bool] = Rare()
    user_closed: bool
    shut_wr: bool
    owned: bool
    # statistics (TCP_INFO)
    total_retrans: Rare[int] = Rare()
    retransmits: int
    segs_in: int
    segs_out: int
    bytes_acked: int
    bytes_received: int
    cookie: Rare[bool] = Rare()
    # address family: `family` is the socket's (AF_INET / AF_INET6); `net6` says laddr/faddr are
    # 128-bit IPv6 addresses and segments go over IPv6 -- False for an AF_INET6 socket whose
    # association is v4-mapped (it runs over IPv4, only its sockaddrs are IPv6, as Linux's
    # ipv6_mapped af_ops); `net_hdr_len` the network header the MSS leaves room for (20 / 40)
    family: int
    net6: bool
    net_hdr_len: int
    mapped_bound: Rare[bool] = Rare()  # an AF_INET6 socket bound to a v4-mapped address: IPv4 for good
    oif: Interface | None               # the interface a scope id / link-local peer binds it to
    oif_gone: Rare[int] = Rare()  # a scope id naming no interface, kept as Linux keeps it
    v6only: Rare[bool] = Rare()  # IPPROTO_IPV6 options (protocols/sockopt.py)
    recverr6: Rare[bool] = Rare()
    dontfrag: Rare[bool] = Rare()
    hop_limit: int | None
    tclass: int
    pmtudisc: Rare[int] = Rare()
    # receive-buffer autotuning (memory.py)
    rcv_copied: int
    rcvq_space: int
    rcvq_seq: int
    rcvq_time: float | None
    rcv_rtt: float
    rcv_rtt_seq: int
    rcv_rtt_time: float | None
    ecn: Ecn | None                     # RFC 3168 state (ecn.py): None while ECN is off
    # TCP Fast Open (fastopen.py): the open in progress (an active one, or a listener's child),
    # TCP_FASTOPEN_CONNECT, and a listener's TCP_FASTOPEN queue
    tfo: ClientFastOpen | PassiveFastOpen | None
    tfo_connect: Rare[bool] = Rare()
    tfo_queue: Rare[FastOpenQueue | None] = Rare()
    # TCP_INFO (info.py): Linux's lsndtime (data sent), icsk_ack.lrcvtime (data received),
    # rcv_tstamp (an ACK received); rcv_mss as tcp_measure_rcv_mss estimates the peer's segments
    lsndtime: float
    rcv_tstamp: float
    rcv_last_seg: Rare[int] = Rare()  # (lrcvtime and rcv_mss: with the delayed-ACK fields above)
    bytes_sent: int
    bytes_retrans: Rare[int] = Rare()
    data_segs_in: int
    data_segs_out: int
    delivered: int                      # segments the peer got (ACKed or SACKed), the SYN too
    delivered_ce: Rare[int] = Rare()  # ...of them, ACKed with ECE (Linux tcp_count_delivered)
    chrono_type: int                    # Linux tcp_chrono: busy / rwnd- / sndbuf-limited (info.py)
    chrono_start: float
    chrono_stat: list[float]
    total_rto: Rare[int] = Rare()  # RTOs fired, the SYN's too (Linux tcp_update_rto_stats)
    total_rto_recoveries: Rare[int] = Rare()  # ...the first of each run: the RTO recoveries
    total_rto_time: Rare[float] = Rare()  # seconds spent in finished ones
    rto_stamp: Rare[float | None] = Rare()  # when the current one began
    rcv_ooopack: Rare[int] = Rare()  # data segments that came out of order (Linux tcp_data_queue_ofo)
    dsack_dups: Rare[int] = Rare()  # segments the peer D-SACKed (Linux tcp_dsack_seen)
    reord_seen: Rare[int] = Rare()  # ACKs that showed reordering (Linux tcp_check_sack_reordering)
    # socket options (usrreq.py, info.py)
    notsent_lowat: int                  # TCP_NOTSENT_LOWAT: writable while unsent bytes < it
    user_timeout: Rare[float] = Rare()  # TCP_USER_TIMEOUT in seconds (0: off), RFC 5482
    retrans_stamp: float | None         # the first RTO retransmission of the loss (Linux retrans_stamp)
    probes_stamp: float | None          # the first zero-window probe (Linux icsk_probes_tstamp)
    recv_inq: Rare[bool] = Rare()  # TCP_INQ
    defer_accept: Rare[int] = Rare()  # TCP_DEFER_ACCEPT as SYN-ACK timeouts (deferaccept.py)
    defer_acked: Rare[bool] = Rare()  # a child whose bare handshake ACK the deferral dropped
    urg: Urgent | None
    mtup: MtuSearch | None

    # --- the calls across halves, each overridden by the half named --------------------------
    # conn.py (user calls and the end of life)
    @abstractmethod
    def shutdown_write(self, now: float) -> None:
        raise NotImplementedError

    @abstractmethod
    def abort(self, now: float, err: int = 0) -> None:
        raise NotImplementedError

    @abstractmethod
    def drop(self, err: int) -> None:
        raise NotImplementedError

    @abstractmethod
    def destroy(self) -> None:
        raise NotImplementedError

    # input.py
    @abstractmethod
    def _update_mss(self) -> None:
        raise NotImplementedError

    @abstractmethod
    def _rack_detect(self, now: float) -> None:
        raise NotImplementedError

    @abstractmethod
    def _range_sacked(self, start: int, end: int) -> bool:
        raise NotImplementedError

    @abstractmethod
    def note_retransmission(self, now: float) -> None:
        raise NotImplementedError

    # output.py
    @abstractmethod
    def output(self, now: float, force_probe: bool = False) -> None:
        raise NotImplementedError

    @abstractmethod
    def send_ack(self, now: float) -> None:
        raise NotImplementedError

    @abstractmethod
    def output_idle(self) -> bool:
        raise NotImplementedError

    @abstractmethod
    def _pipe(self) -> int:
        raise NotImplementedError

    @abstractmethod
    def _sendable(self, force_probe: bool, now: float) -> tuple[int, bool]:
        raise NotImplementedError

    @abstractmethod
    def _probe_new_data(self, now: float) -> bool:
        raise NotImplementedError

    @abstractmethod
    def _retransmit_tail(self, now: float) -> None:
        raise NotImplementedError

    @abstractmethod
    def send_keepalive(self, now: float) -> None:
        raise NotImplementedError

    @abstractmethod
    def _ts_val(self, now: float) -> int:
        raise NotImplementedError

    @abstractmethod
    def _persist_interval(self) -> float:
        raise NotImplementedError

    # timer.py
    @abstractmethod
    def arm_probe(self, now: float) -> None:
        raise NotImplementedError

    # delack.py
    @abstractmethod
    def ack_in_order(self, seglen: int, now: float) -> None:
        raise NotImplementedError

    @abstractmethod
    def data_received(self, seglen: int, now: float) -> int:
        raise NotImplementedError

    @abstractmethod
    def ack_out_of_order(self, now: float) -> None:
        raise NotImplementedError

    @abstractmethod
    def comp_ack_fired(self, now: float) -> None:
        raise NotImplementedError

    @abstractmethod
    def ack_fin(self, now: float) -> None:
        raise NotImplementedError

    @abstractmethod
    def delack_fired(self) -> None:
        raise NotImplementedError

    @abstractmethod
    def enter_quickack_mode(self) -> None:
        raise NotImplementedError

    # memory.py
    @abstractmethod
    def expand_sndbuf(self) -> None:
        raise NotImplementedError

    @abstractmethod
    def rcv_rtt_measure(self, now: float) -> None:
        raise NotImplementedError
