"""The TCP protocol object (pr_input / pr_ctlinput / output for IPv4).

Owns the connection tables (below), ISNs (RFC 6528), the challenge-ACK budget (RFC 5961
§7), SYN cookies, the timer heap, and turns a Connection's segments into IPv4 packets --
with a partial checksum and TSO when the device offers them (README "Offloads").

The tables are Linux's three hashes of `struct inet_hashinfo`, each a dict:
  * `conns` (ehash): 4-tuple -> every connection with a peer (SYN-RECEIVED .. TIME-WAIT);
  * `listeners` (lhash2): port -> local address -> the LISTEN sockets there (a list: an
    SO_REUSEPORT group); a SYN looks up its address, then the wildcard 0.0.0.0, as
    inet_lookup_listener does;
  * `ports` (bhash): port -> every socket holding it (bound, listening, connected and
    accepted ones alike, as Linux's bind buckets), for bind conflicts and ephemeral ports.
A segment costs at most three dict lookups whatever the number of connections.  Only
bind() of a given port walks the sockets holding that port (as Linux's
inet_csk_bind_conflict), and closing a listener walks its port's to find its children.
"""
from __future__ import annotations

import errno
import hashlib
import heapq
import itertools
import struct
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ndd import checksum as ck
from ndd.pktbuf import GSO_TCPV4, PacketBuffer
from protocols.addr import BROADCAST, is_multicast

from ..icmp import DEST_UNREACH, FRAG_NEEDED
from ..ipv4 import IPPROTO_TCP, IpMeta, Ipv4
from ..ports import EphemeralPorts
from ..timing import TICK as TIMER_TICK
from . import seq as sq
from .config import TcpConfig
from .conn import Connection
from .listen import COOKIE_PERIOD, SynCookies
from .memory import SocketMemory
from .state import State
from .stats import TcpStats
from .wire import ACK, FIN, RST, SYN, TcpRepr

if TYPE_CHECKING:
    from ..icmp import IcmpError

IP_TCP_HDR = 40
# Linux TCP_SYNCOOKIE_VALID: a listener takes cookie ACKs only this long after its SYN
# queue last overflowed (tcp_synq_no_recent_overflow; FreeBSD's sch_last_overflow)
SYNCOOKIE_VALID = 2 * COOKIE_PERIOD


class Tcp:
    def __init__(self, ipv4: Ipv4, rng: Any, clock: Callable[[], float], config: TcpConfig | None = None) -> None:
        self.ipv4 = ipv4
        self.rng = rng
        self.clock = clock
        self.config = config or TcpConfig()
        self.stats = TcpStats()
        self.mem = SocketMemory(self.config, self.stats)
        self.conns: dict[tuple[int, int, int, int], Connection] = {}
        self.listeners: dict[int, dict[int, list[Connection]]] = {}
        self.ports: dict[int, dict[Connection, None]] = {}      # an insertion-ordered set per port
        self._overflowed_at: dict[Connection, float] = {}        # listener -> its last cookie sent
        self._time_wait: dict[Connection, None] = {}             # connections in TIME_WAIT (a set)
        self._orphans: dict[Connection, None] = {}               # closed by the application, not yet ended
        self._secret = rng.getrandbits(128).to_bytes(16, "big")
        self.cookies = SynCookies(rng.getrandbits(128).to_bytes(16, "big"))
        self.ephemeral = EphemeralPorts(rng)
        self._heap: list[tuple[float, int, Connection]] = []
        self._tiebreak = itertools.count()
        self._challenge_second: int | None = None   # the second the host budget is for
        self._challenge_count = 0
        self.kick: Callable[..., None] = lambda at=None: None

    # --- sockets ------------------------------------------------------------------------
    def attach(self) -> Connection:
        return Connection(self, self.config)

    def bind(self, conn: Connection, addr: int, port: int, explicit: bool = True) -> int:
        if conn.lport:
            return errno.EINVAL
        if addr and not (self.ipv4.ifnet.is_local(addr) or addr >> 24 == 127):
            return errno.EADDRNOTAVAIL
        if is_multicast(addr) or addr == BROADCAST:
            return errno.EADDRNOTAVAIL
        if port == 0:
            port = self._ephemeral(conn, addr)
            if not port:
                return errno.EADDRINUSE if explicit else errno.EAGAIN
        elif self._conflicts(conn, addr, port):
            return errno.EADDRINUSE
        conn.laddr, conn.lport = addr, port
        conn.bound_port = explicit
        self._hold_port(conn, port)
        return 0

    def _hold_port(self, conn: Connection, port: int) -> None:
        self.ports.setdefault(port, {})[conn] = None

    def _conflicts(self, conn: Connection, addr: int, port: int) -> bool:
        """Linux inet_csk_bind_conflict: overlapping addresses conflict unless both set
        SO_REUSEPORT, or both set SO_REUSEADDR and the other is not listening."""
        for other in self.ports.get(port, ()):
            if other is conn or (other.laddr and addr and other.laddr != addr):
                continue
            if conn.reuseport and other.reuseport:
                continue
            if conn.reuseaddr and (other.reuseaddr or other.state == State.TIME_WAIT) \
                    and other.state != State.LISTEN:
                continue
            return True
        return False

    def _ephemeral(self, conn: Connection, addr: int) -> int:
        for port in self.ephemeral.candidates():
            if port not in self.ports:
                self.ephemeral.taken(port)
                return port
        return 0

    def _share_ephemeral(self, conn: Connection, laddr: int, faddr: int, fport: int) -> bool:
        """No free ephemeral port: share one held only by other connect()-bound sockets,
        as long as the 4-tuple stays unique (Linux __inet_hash_connect)."""
        for port in self.ephemeral.candidates():
            users = self.ports.get(port, ())
            if all(not u.bound_port and u.state != State.LISTEN for u in users) \
                    and (laddr, port, faddr, fport) not in self.conns:
                conn.laddr, conn.lport, conn.bound_port = 0, port, False
                self._hold_port(conn, port)
                self.ephemeral.taken(port)
                return True
        return False

    def unbind(self, conn: Connection) -> None:
        self._forget_listener(conn)
        users = self.ports.get(conn.lport)
        if users is not None and conn in users:
            del users[conn]
            if not users:
                del self.ports[conn.lport]

    def listen(self, conn: Connection, backlog: int) -> int:
        if conn.state not in (State.CLOSED, State.LISTEN) or conn.connected:
            return errno.EINVAL
        if not conn.lport:
            err = self.bind(conn, 0, 0, explicit=False)
            if err:
                return err
        if conn.state == State.CLOSED:
            if self._listen_conflict(conn):
                return errno.EADDRINUSE
            self.listeners.setdefault(conn.lport, {}).setdefault(conn.laddr, []).append(conn)
        conn.state = State.LISTEN
        # Linux __sys_listen: min(backlog, net.core.somaxconn); the socket layer, as
        # CPython's listen(), has already made a negative backlog 0
        conn.backlog = max(0, min(backlog, self.config.somaxconn))
        if conn.accept_queue is None:
            conn.accept_queue = deque()
        return 0

    def _listen_conflict(self, conn: Connection) -> bool:
        """Another listener on an overlapping address of the port, outside an SO_REUSEPORT
        group.  Walks the port's local addresses, not its connections."""
        for laddr, group in self.listeners.get(conn.lport, {}).items():
            if laddr and conn.laddr and laddr != conn.laddr:
                continue
            if any(not (conn.reuseport and other.reuseport) for other in group if other is not conn):
                return True
        return False

    def stop_listening(self, conn: Connection) -> None:
        """LISTEN -> CLOSED (close or shutdown(SHUT_RD) of a listener): out of the index."""
        self._forget_listener(conn)
        conn.state = State.CLOSED

    def _forget_listener(self, conn: Connection) -> None:
        self._overflowed_at.pop(conn, None)
        by_addr = self.listeners.get(conn.lport)
        if by_addr is None:
            return
        group = by_addr.get(conn.laddr)
        if group is None or conn not in group:
            return
        group.remove(conn)                               # an SO_REUSEPORT group: a few sockets
        if not group:
            del by_addr[conn.laddr]
            if not by_addr:
                del self.listeners[conn.lport]

    def connect(self, conn: Connection, addr: int, port: int, now: float) -> int:
        if conn.state == State.LISTEN:
            return errno.EINVAL
        if conn.state != State.CLOSED or conn.connected:
            return errno.EISCONN if conn.state in (State.ESTABLISHED, State.CLOSE_WAIT) else errno.EALREADY
        if addr == 0:
            addr = conn.laddr or 0x7F000001              # Linux: INADDR_ANY means this host
        if is_multicast(addr) or addr == BROADCAST:
            return errno.ENETUNREACH
        hop = self.ipv4.route(addr, src=conn.laddr)
        if isinstance(hop, int):
            return hop
        ifp, _, src = hop
        if ifp.is_broadcast(addr):
            return errno.ENETUNREACH                     # Linux tcp_v4_connect: RTCF_BROADCAST route
        if not conn.lport:
            err = self.bind(conn, 0, 0, explicit=False)
            if err and not self._share_ephemeral(conn, conn.laddr or src or 0, addr, port):
                return errno.EADDRNOTAVAIL               # Linux: the ephemeral range is exhausted
        if not conn.laddr:
            conn.laddr = src or 0
        key = (conn.laddr, conn.lport, addr, port)
        if key in self.conns:
            return errno.EADDRNOTAVAIL
        if not self.mem.admit():
            return errno.ENOBUFS                         # tcp_mem[2]: no memory for another connection
        conn.faddr, conn.fport = addr, port
        self._use_route(conn, ifp)
        self.conns[key] = conn
        conn.rcv_wscale = self._wscale_for(conn.rcv_space_max()) if conn.want_wscale else 0
        conn.ts_offset = self._hash32(b"ts", key)
        conn.open_active(self.isn(key, now), now)
        self.schedule(conn)
        return 0

    def _use_route(self, conn: Connection, ifp: Any) -> None:
        conn.ifp = ifp
        caps = ifp.ndd.caps
        conn.csum_offload = bool(caps.tx_csum_offload)
        conn.tso_max = (min(caps.tso_max, 65535) - IP_TCP_HDR - 40) if caps.tso_max and caps.tx_csum_offload else 0
        conn.set_mss_for(ifp.mtu)

    @staticmethod
    def _wscale_for(capacity: int) -> int:
        shift = 0
        while (0xFFFF << shift) < capacity and shift < 14:
            shift += 1
        return shift

    # --- ISNs, clocks, budgets -------------------------------------------------------------------
    def _hash32(self, tag: bytes, key: tuple[int, int, int, int]) -> int:
        h = hashlib.blake2s(b"%s %d %d %d %d" % (tag, *key), digest_size=4, key=self._secret)
        return int.from_bytes(h.digest(), "big")

    def isn(self, key: tuple[int, int, int, int], now: float) -> int:
        """RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey),
        M a 4-microsecond timer."""
        return (int(now * 250_000) + self._hash32(b"isn", key)) & 0xFFFFFFFF

    def ts_clock(self, now: float) -> int:
        return int(now * 1000) & 0xFFFFFFFF

    def challenge_ack_allowed(self, now: float) -> bool:
        """The host-wide challenge-ACK budget, when one is configured (None: none, Linux >= 6.0's
        default).  Each second draws a fresh budget uniformly in [limit/2, 3*limit/2) like Linux
        >= 4.7 (tcp_send_challenge_ack), so an off-path prober cannot count it exactly
        (CVE-2016-5696).  The per-connection limit comes first (input.py _challenge_ack)."""
        limit = self.config.challenge_ack_limit
        if limit is None:
            return True
        second = int(now)
        if second != self._challenge_second:
            self._challenge_second = second
            half = (limit + 1) >> 1
            self._challenge_count = self.rng.randint(half, limit + half - 1) if limit > 0 else 0
        if self._challenge_count > 0:
            self._challenge_count -= 1
            return True
        return False

    def path_mtu(self, conn: Connection, now: float) -> int:
        """The path MTU to conn's peer when the route cache holds one below the link MTU, else 0."""
        ifp = conn.ifp
        if ifp is None:
            return 0
        mtu: int = self.ipv4.pmtu.path_mtu(conn.faddr, ifp.mtu, now)
        return mtu if mtu < ifp.mtu else 0

    # --- connection lifecycle hooks (called by Connection) ---------------------------------------
    def detach(self, conn: Connection) -> None:
        """The connection is CLOSED: forget it.  Its port stays while a socket holds it."""
        key = (conn.laddr, conn.lport, conn.faddr, conn.fport)
        if self.conns.get(key) is conn:
            del self.conns[key]
        self._time_wait.pop(conn, None)
        self._orphans.pop(conn, None)
        parent = conn.parent
        if parent is not None:
            conn.parent = None
            if conn.queued:
                conn.queued = False              # left in the queue, dead: accept() skips it
                parent.accept_live -= 1
                self._compact_accept_queue(parent)
            elif parent.syn_count:
                parent.syn_count -= 1
        if conn.user_closed or not conn.owned:
            self.unbind(conn)
        else:
            self._forget_listener(conn)

    def established(self, conn: Connection) -> None:
        parent = conn.parent
        if parent is None:
            conn.on_event()                              # simultaneous open: wake the connect() waiter
            return
        if parent.syn_count:
            parent.syn_count -= 1
        if parent.accept_queue is not None:
            parent.accept_queue.append(conn)
            conn.queued = True
            parent.accept_live += 1
        parent.on_event()

    @staticmethod
    def _compact_accept_queue(lst: Connection) -> None:
        """Drop the dead entries once they are half the queue: each rebuild costs at most
        twice the deaths since the last one, so a death is O(1) amortized, and the queue
        never holds more than twice its live children (bounded by the backlog)."""
        q = lst.accept_queue
        if q is None or 2 * (len(q) - lst.accept_live) <= len(q):
            return
        live = [c for c in q if c.queued]
        q.clear()
        q.extend(live)

    def pop_accepted(self, lst: Connection) -> Connection | None:
        """The oldest live child of the accept queue, now owned by a socket; dead entries on
        the way are dropped."""
        q = lst.accept_queue
        while q:
            child = q.popleft()
            if child.queued:
                child.queued = False
                lst.accept_live -= 1
                child.parent = None
                child.owned = True
                return child
        return None

    def accept_queue_full(self, lst: Connection) -> bool:
        """Linux sk_acceptq_is_full: a SYN or a handshake ACK finding it full is dropped (counted).
        Only live children count: one that died waiting frees its place at once."""
        if lst.accept_live < max(lst.backlog, 1):
            return False
        self.stats.listen_overflows += 1
        self.stats.listen_drops += 1
        return True

    def time_wait(self, conn: Connection) -> None:
        """`conn` entered TIME_WAIT.  Beyond config.max_tw_buckets of them it leaves at once
        instead (Linux tcp_time_wait on overflow): its 2*MSL timer is cut to now, so it is
        gone at the next timer pass, after the ACK of the peer's FIN went out (counted)."""
        self._orphans.pop(conn, None)                    # a TIME_WAIT is bounded by max_tw_buckets instead
        if conn not in self._time_wait and len(self._time_wait) >= self.config.max_tw_buckets:
            self.stats.tw_overflows += 1
            conn.tw_at = self.clock()
        else:
            self._time_wait[conn] = None
        self.schedule(conn)

    def orphaned(self, conn: Connection, now: float) -> None:
        """The application closed `conn` and it lives on to deliver its data and FIN.  Beyond
        config.max_orphans of them it is reset at once instead (Linux tcp_close with too many
        orphans), its buffers given back; otherwise it is counted until it ends."""
        if conn.state in (State.CLOSED, State.TIME_WAIT) or conn in self._orphans:
            return
        if len(self._orphans) >= self.config.max_orphans:
            self.stats.orphan_overflows += 1
            conn.abort(now, 0)
            return
        self._orphans[conn] = None

    @property
    def orphan_count(self) -> int:
        """Orphans alive now (Linux /proc/net/sockstat "orphan")."""
        return len(self._orphans)

    # --- timers (one heap; the Stack's TimerService polls us) ------------------------------------
    def schedule(self, conn: Connection) -> None:
        at = conn.poll_at()
        if at is not None and (conn.sched_at is None or at < conn.sched_at):
            conn.sched_at = at
            heapq.heappush(self._heap, (at, next(self._tiebreak), conn))
            self.kick(at)

    def poll_at(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    @property
    def mem_allocated(self) -> int:
        """Bytes every TCP buffer of the stack holds (Linux: /proc/net/sockstat "mem")."""
        return self.mem.allocated

    @property
    def mem_committed(self) -> int:
        """What the budget's marks are compared with: held + promised by open windows."""
        return self.mem.committed

    def poll(self, now: float) -> None:
        # Every connection due at entry is handled exactly once per call.  One whose handler
        # leaves a deadline at or before `now` made no progress (float rounding, a bug): it is
        # pushed one tick past `now` and counted, so neither this loop nor the TimerService's
        # can spin (issue 10 point 1: a keepalive re-armed at `now` froze the Stack).
        heap = self._heap
        due: list[Connection] = []
        while heap and heap[0][0] <= now:
            at, _, conn = heapq.heappop(heap)
            if conn.sched_at != at:
                continue                                 # stale entry: a newer one exists
            conn.sched_at = None
            due.append(conn)
        for conn in due:
            if conn.state != State.CLOSED:
                conn.poll(now)
                self.mem.update(conn)                    # a timer's ACK may have opened the window
            if conn.state != State.CLOSED:
                self.schedule(conn)
                if conn.sched_at is not None and conn.sched_at <= now:
                    self.stats.timer_deferrals += 1
                    conn.sched_at = now + TIMER_TICK
                    heapq.heappush(heap, (conn.sched_at, next(self._tiebreak), conn))
        while heap and heap[0][2].sched_at != heap[0][0]:
            heapq.heappop(heap)                          # stale heads: poll_at() tells the truth

    # --- input (pr_input) ---------------------------------------------------------------------------
    def input(self, pkt: PacketBuffer, ip: IpMeta, now: float) -> None:
        stats = self.stats
        stats.in_segs += 1
        view = pkt.view()
        seg = TcpRepr.parse(view)
        if isinstance(seg, str):
            stats.in_errs += 1
            stats.bump(seg)
            return
        if ip.bcast:
            stats.in_errs += 1                           # RFC 1122 §4.2.3.10: not for broadcasts
            return
        if not pkt.csum_valid and ck.ones_sum(view, ck.pseudo_header_sum(ip.src, ip.dst, IPPROTO_TCP,
                                                                           len(view))) != 0xFFFF:
            stats.in_errs += 1
            stats.in_csum_errors += 1
            return
        payload = view[seg.hdr_len:]
        conn = self.conns.get((ip.dst, seg.dst_port, ip.src, seg.src_port))
        if conn is not None:
            if conn.state == State.TIME_WAIT and seg.flags & SYN and not seg.flags & (ACK | RST) \
                    and sq.gt(seg.seq, conn.rcv_nxt) and self._listener(ip.dst, seg.dst_port) is not None:
                conn.destroy()                           # RFC 9293 §3.10.7.4 note / RFC 6191: reuse
            else:
                conn.input(seg, payload, now)
                self.mem.update(conn)
                if conn.state != State.CLOSED:
                    self.schedule(conn)
                return
        listener = self._listener(ip.dst, seg.dst_port)
        if listener is not None:
            self._listen_input(listener, seg, ip, payload, now)
            return
        stats.no_ports += 1
        self._reset_for(seg, ip.dst, ip.src, len(payload), now)

    def _listener(self, addr: int, port: int) -> Connection | None:
        """Linux inet_lookup_listener: the listener on (addr, port), else on (0.0.0.0, port).
        Two dict lookups; the port's connections are never looked at."""
        by_addr = self.listeners.get(port)
        if by_addr is None:
            return None
        group = by_addr.get(addr) or by_addr.get(0)
        return group[0] if group else None

    def _listen_input(self, lst: Connection, seg: TcpRepr, ip: IpMeta, payload: memoryview, now: float) -> None:
        flags = seg.flags
        if flags & RST:
            return
        if flags & ACK:
            if not flags & SYN and self.config.syncookies and self._recent_overflow(lst, now):
                mss = self.cookies.check(ip.dst, seg.dst_port, ip.src, seg.src_port, seg, now)
                if mss is not None:
                    if self.accept_queue_full(lst) or not self.mem.admit():
                        return                           # Linux: dropped; the peer's next segment retries
                    self.stats.syncookies_recv += 1
                    self._cookie_child(lst, seg, ip, mss, payload, now)
                    return
                self.stats.syncookies_failed += 1
            self._reset_for(seg, ip.dst, ip.src, len(payload), now)   # §3.10.7.2: <SEQ=SEG.ACK><CTL=RST>
            return
        if not flags & SYN:
            return
        if self.accept_queue_full(lst):
            return                                       # Linux: a full accept queue drops SYNs
        if not self.mem.admit():
            return                                       # tcp_mem[2]: dropped; the peer's SYN retries
        if lst.syn_count >= max(lst.backlog, 1):
            if self.config.syncookies:
                self._send_cookie(lst, seg, ip, now)
            else:
                self.stats.listen_drops += 1
            return
        child = self._child(lst, ip.dst, seg.dst_port, ip.src, seg.src_port)
        child.state = State.SYN_RECEIVED
        key = (child.laddr, child.lport, child.faddr, child.fport)
        child.iss = child.snd_una = child.snd_nxt = child.snd_max = self._passive_iss(seg, ip, now)
        child.recover = child.iss
        child.irs = seg.seq
        child.rcv_nxt = child.rcv_adv = child.last_ack_sent = sq.add(seg.seq, 1)
        child.want_wscale = lst.want_wscale
        child._take_syn_options(seg, now)
        child.rcv_wscale = self._wscale_for(child.rcv_space_max()) if child.peer_wscale is not None else 0
        child.ts_offset = self._hash32(b"ts", key)
        child.last_rcv = now
        lst.syn_count += 1
        child.output(now)
        self.mem.update(child)                           # the SYN-ACK's window is a promise
        self.schedule(child)

    def _passive_iss(self, seg: TcpRepr, ip: IpMeta, now: float) -> int:
        """With SYN cookies on, a SYN-ACK's ISN is the cookie, whether a child was made or
        not (as FreeBSD's syncache): when a burst answers one SYN with a cookie and its
        retransmission with a child, the peer's ACK of either fits both -- with an RFC 6528
        ISN it met the child with the wrong ACK number and was reset.  While cookies are in
        use, a child lost (SYN-ACK retries spent) is rebuilt from the ACK's cookie.  The
        cookie is a keyed hash of the 4-tuple and the peer's ISN: unpredictable off path,
        as RFC 6528 wants."""
        if not self.config.syncookies:
            return self.isn((ip.dst, seg.dst_port, ip.src, seg.src_port), now)
        return self.cookies.make(ip.dst, seg.dst_port, ip.src, seg.src_port, seg.seq, seg.mss or 536, now)[0]

    def _child(self, lst: Connection, laddr: int, lport: int, faddr: int, fport: int) -> Connection:
        child = Connection(self, self.config)
        child.laddr, child.lport, child.faddr, child.fport = laddr, lport, faddr, fport
        child.parent = lst
        child.owned = False
        self._hold_port(child, lport)                    # Linux __inet_inherit_port
        for name in ("nodelay", "keepalive", "keepidle", "keepintvl", "keepcnt", "linger0", "ttl", "tos"):
            setattr(child, name, getattr(lst, name))
        child.inherit_buffers(lst)
        child.set_congestion(lst.cc.name)
        hop = self.ipv4.route(faddr, src=laddr)
        if not isinstance(hop, int):
            self._use_route(child, hop[0])
        self.conns[(laddr, lport, faddr, fport)] = child
        return child

    def _recent_overflow(self, lst: Connection, now: float) -> bool:
        """Cookies are checked only while the listener has recently sent some: an ACK
        that matches no connection otherwise gets its RST at once, and neither a late
        duplicate of a finished handshake nor a guess can open a connection (all our
        SYN-ACK ISNs are cookies)."""
        at = self._overflowed_at.get(lst)
        return at is not None and now - at <= SYNCOOKIE_VALID

    def _send_cookie(self, lst: Connection, seg: TcpRepr, ip: IpMeta, now: float) -> None:
        self._overflowed_at[lst] = now
        isn, mss = self.cookies.make(ip.dst, seg.dst_port, ip.src, seg.src_port, seg.seq,
                                     seg.mss or 536, now)
        hop = self.ipv4.route(ip.src, src=ip.dst)
        our_mss = hop[0].mtu - IP_TCP_HDR if not isinstance(hop, int) else 536
        reply = TcpRepr(seg.dst_port, seg.src_port, isn, sq.add(seg.seq, 1), SYN | ACK,
                        min(lst.rcv.capacity, 0xFFFF), mss=min(mss, our_mss))
        self.stats.syncookies_sent += 1
        self._send_raw(reply, reply.options_bytes(), ip.dst, ip.src, now)

    def _cookie_child(self, lst: Connection, seg: TcpRepr, ip: IpMeta, mss: int, payload: memoryview,
                      now: float) -> None:
        child = self._child(lst, ip.dst, seg.dst_port, ip.src, seg.src_port)
        child.cookie = True
        child.state = State.SYN_RECEIVED
        child.iss = sq.add(seg.ack, -1)
        child.snd_una, child.snd_nxt = child.iss, seg.ack
        child.snd_max = seg.ack
        child.irs = sq.add(seg.seq, -1)
        child.rcv_nxt = child.rcv_adv = child.last_ack_sent = seg.seq
        child.peer_mss = mss
        child.want_wscale = False
        child._update_mss()
        child.last_rcv = now
        child._advertise(now, syn=True)
        lst.syn_count += 1
        child.input(seg, payload, now)
        self.mem.update(child)
        self.schedule(child)

    def _reset_for(self, seg: TcpRepr, src: int, dst: int, datalen: int, now: float) -> None:
        """RFC 9293 §3.10.7.1: the reply to a segment no connection owns (never to an RST)."""
        if seg.flags & RST:
            return
        if seg.flags & ACK:
            reply = TcpRepr(seg.dst_port, seg.src_port, seg.ack, 0, RST, 0)
        else:
            seglen = datalen + (1 if seg.flags & SYN else 0) + (1 if seg.flags & FIN else 0)
            reply = TcpRepr(seg.dst_port, seg.src_port, 0, sq.add(seg.seq, seglen), RST | ACK, 0)
        self.stats.out_rsts += 1
        self._send_raw(reply, b"", src, dst, now)

    def reset_reply(self, conn: Connection, seg: TcpRepr, datalen: int, now: float) -> None:
        self._reset_for(seg, conn.laddr, conn.faddr, datalen, now)

    # --- output -------------------------------------------------------------------------------
    @staticmethod
    def _segment(seg: TcpRepr, opts: bytes, payload: memoryview | None, src: int, dst: int,
                 offload: bool) -> PacketBuffer:
        """Header in front of the payload; the checksum complete, or left for the device
        as the folded pseudo-header sum (virtio_net_hdr NEEDS_CSUM, <linux/virtio_net.h>)."""
        pkt = PacketBuffer.from_payload(payload) if payload is not None else PacketBuffer.allocate(0)
        hdr = pkt.prepend(20 + len(opts))
        seg.emit(hdr, opts)
        pseudo = ck.pseudo_header_sum(src, dst, IPPROTO_TCP, len(pkt))
        if offload:
            struct.pack_into("!H", hdr, 16, pseudo)
            pkt.csum_start, pkt.csum_offset = pkt.start, 16
        else:
            struct.pack_into("!H", hdr, 16, ck.checksum(pkt.view(), pseudo))
        return pkt

    def emit(self, conn: Connection, seg: TcpRepr, opts: bytes, payload: memoryview | None, gso: int,
             now: float) -> int:
        pkt = self._segment(seg, opts, payload, conn.laddr, conn.faddr, conn.csum_offload)
        if gso:
            pkt.gso_size, pkt.gso_type = gso, GSO_TCPV4
        self.stats.out_segs += 1
        err = self.ipv4.output(pkt, conn.laddr, conn.faddr, IPPROTO_TCP, now, ttl=conn.ttl, tos=conn.tos,
                               df=True)
        if err:
            self.stats.out_errors += 1
        return err

    def _send_raw(self, seg: TcpRepr, opts: bytes, src: int, dst: int, now: float) -> None:
        """A segment no connection owns (RSTs, cookie SYN-ACKs): always a full checksum."""
        self.stats.out_segs += 1
        self.ipv4.output(self._segment(seg, opts, None, src, dst, offload=False), src, dst, IPPROTO_TCP, now)

    # --- ICMP errors (pr_ctlinput) ----------------------------------------------------------------
    def ctlinput(self, err: IcmpError, now: float) -> None:
        """An ICMP error about one of our segments.  Acted on only if it names a connection of
        ours and quotes a sequence number in flight, [SND.UNA, SND.MAX] (RFC 5927 §4.1, §5;
        Linux tcp_v4_err): a blind attacker must guess both the 4-tuple and the window."""
        if len(err.payload) < 8:                         # ICMP guarantees 8 octets; be safe
            self.stats.icmp_no_conn += 1
            return
        sport, dport, seqno = struct.unpack_from("!HHI", err.payload, 0)
        conn = self.conns.get((err.src, sport, err.dst, dport))
        if conn is None:
            self.stats.icmp_no_conn += 1
            return
        if not (sq.le(conn.snd_una, seqno) and sq.le(seqno, conn.snd_max)):
            self.stats.out_of_window_icmps += 1
            return
        if conn.state == State.TIME_WAIT:
            self.stats.icmp_ignored += 1                 # Linux: nothing left to tell or resize
            return
        if err.type == DEST_UNREACH and err.code == FRAG_NEEDED:
            self._mtu_reduced(conn, err.mtu, now)
            return
        if not err.errno:
            return
        if conn.state == State.SYN_SENT:
            # Linux tcp_v4_err: an unreachable during connect fails it at once
            self.stats.attempt_fails += 1
            conn.drop(err.errno)
        else:
            conn.soft_error = err.errno                  # reported only if we time out

    def _mtu_reduced(self, conn: Connection, mtu: int, now: float) -> None:
        """RFC 1191 (Linux tcp_v4_mtu_reduced): the route cache takes the new path MTU -- floored
        at min_pmtu, ignored unless lower, expiring (protocols/pmtu.py) -- and a connection whose
        MSS shrank resends what is in flight at the new size (Linux tcp_simple_retransmit)."""
        ifp = conn.ifp
        if ifp is None or not self.ipv4.pmtu.update(conn.faddr, mtu, ifp.mtu, now):
            return
        old_mss = conn.mss
        conn.sync_pmtu(now)
        if conn.mss < old_mss:
            self.stats.pmtu_reductions += 1
            if conn.state not in (State.SYN_SENT, State.SYN_RECEIVED):
                conn.snd_nxt = conn.snd_una
                conn.output(now)
            self.schedule(conn)
