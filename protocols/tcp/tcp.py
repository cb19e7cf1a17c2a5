"""The TCP protocol object (pr_input / pr_ctlinput / output, for IPv4 and IPv6).

Owns the connection tables (below), ISNs (RFC 6528), the challenge-ACK budget (RFC 5961
§7), SYN cookies, the timer heap, and turns a Connection's segments into IPv4 or IPv6
packets -- with a partial checksum and TSO when the device offers them (README "Offloads").

Dual stack (issue 12).  The IPv6 layer is optional (`ipv6`, None: IPv4 only).  IPv4 input
arrives at `input` / `ctlinput`, IPv6 input at `input6` / `ctlinput6` (the AF_INET6 protosw
entry's pr_input / pr_ctlinput); sockets of either family come through `attach(family)`,
`bind` / `connect` (IPv4 addresses) and `bind6` / `connect6` (128-bit ones, v4-mapped ones
handed to the IPv4 side as Linux's tcp_v6_connect does).  Each connection knows the network
it runs over (`conn.net6`) and its address width with it; output tests that one attribute
per segment (`emit`), so IPv4 keeps its path.  IPv6 connections live in tables of their own
(`conns6`, `listeners6`); the port space (`ports`) is shared, with Linux's cross-family bind
rules (`_overlap`).  IPv4 input falls back to a dual-stack listener on `::` (not IPV6_V6ONLY)
when no IPv4 listener matches; the connection it makes runs over IPv4.

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
from collections import OrderedDict, deque
from collections.abc import Callable
from socket import AF_INET, AF_INET6
from typing import TYPE_CHECKING, Any

from ndd import checksum as ck
from ndd.pktbuf import DEFAULT_HEADROOM, GSO_TCPV4, GSO_TCPV6, PacketBuffer
from protocols.addr import BROADCAST, is_multicast

from ..icmp import DEST_UNREACH, FRAG_NEEDED
from ..icmpv6.wire import DEST_UNREACH as ICMP6_DEST_UNREACH
from ..icmpv6.wire import PACKET_TOO_BIG
from ..ipv4 import FLAG_DF, IPPROTO_TCP, IpMeta, Ipv4
from ..ipv6 import addr as a6
from ..ipv6.ip6 import Ip6Meta
from ..ipv6.route import needs_scope_id
from ..ipv6.wire import HDR_LEN as IP6_HDR_LEN
from ..ipv6.wire import pseudo_header_sum as pseudo_header_sum6
from ..ports import EphemeralPorts
from ..timing import TICK as TIMER_TICK
from . import mtuprobe_conn
from . import seq as sq
from .config import TcpConfig
from .conn import Connection
from .ecn import ECN_MASK, Ecn, listener_accepts
from .fastopen import FastOpen, PassiveFastOpen
from .forward import (
    ICMP6_UNREACH_CODES,
    ICMP_UNREACH_CODES,
    QUOTE_MAX,
    REJECT_RST,
    REJECT_SILENT,
    ForwardRequest,
    PendingSyn,
    SynOptions,
)
from .listen import COOKIE_PERIOD, SynCookies
from .memory import SocketMemory
from .relayed import RelayedFlow, RelayHost, RelayTable
from .segmentation import initial_window
from .state import CLOSED, TIME_WAIT, State
from .stats import TcpStats
from .tcb import shared_int
from .wire import ACK, FIN, RST, SYN, TcpRepr, wscale_for

if TYPE_CHECKING:
    from ..icmp import IcmpError
    from ..icmpv6.core import Icmpv6Error
    from ..ifnet import Interface
    from ..ipv6.ip6 import Ipv6

IP_TCP_HDR = 40
_EARLY_KEY = struct.Struct("!IIHH")      # early_input: source, destination, ports
_PORTS = struct.Struct("!HH")
# relayed_input4: addresses, ports, sequence and acknowledgment numbers, data offset, flags, window
_RELAYED_KEY = struct.Struct("!IIHHIIBBH")
_RELAYED_TCP = struct.Struct("!HHIIBBH")   # relayed_input6: the same from the ports on
_VTF_HLIM = struct.Struct("!I3xB")          # an IPv6 header's version/class/label word and hop limit
_IP_TCP = struct.Struct("!BBHHHBBHIIHHIIHHHH")   # _emit4_cached: IPv4 (no options) and TCP headers
_U16 = struct.Struct("!H")
_IP6_TCP = struct.Struct("!IHBB16s16sHHIIHHHH")   # emit_plain6: IPv6 (no extension headers) and TCP headers
IPV6_PMTUDISC_INTERFACE = 4             # <linux/in6.h> IPV6_MTU_DISCOVER values
IP6_TCP_HDR = IP6_HDR_LEN + 20          # MSS = path MTU - 60 over IPv6 (RFC 8200 §8.3)
# Linux TCP_SYNCOOKIE_VALID: a listener takes cookie ACKs only this long after its SYN
# queue last overflowed (tcp_synq_no_recent_overflow; FreeBSD's sch_last_overflow)
SYNCOOKIE_VALID = 2 * COOKIE_PERIOD
# connections sharing a route share its cache entry (_route4), as Linux's sockets share a
# refcounted dst_entry: at most this many distinct entries are kept for sharing
DST_SHARED_MAX = 1024


def _tcp_checksum(buf: bytearray, at: int, pseudo: int, payload: memoryview | None, offload: bool) -> int:
    """emit_plain4/6's TCP checksum, the header at buf[at:] and `payload` beside it: the
    pseudo-header sum for the device to complete (`offload`, as _emit4_cached and _segment6
    leave it; returns csum_start, `at`) or the whole checksum (RFC 1071 as ndd/checksum.py:
    the sum modulo 0xFFFF; returns -1)."""
    if offload:
        _U16.pack_into(buf, at + 16, pseudo)
        return at
    total = int.from_bytes(buf[at:], "big") + pseudo
    if payload is not None:
        total += ck.ones_sum(payload)                # (the header's length is even: no realignment)
    residue = total % 0xFFFF
    _U16.pack_into(buf, at + 16, 0xFFFF - residue if residue else 0)
    return -1


class Tcp:
    def __init__(self, ipv4: Ipv4, rng: Any, clock: Callable[[], float], config: TcpConfig | None = None, *,
                 ipv6: Ipv6 | None = None,
                 interface_by_index: Callable[[int], Interface | None] | None = None) -> None:
        self.ipv4 = ipv4
        # the IPv6 layer (None: an IPv4-only host) and how a scope id names an interface
        # (default: the interfaces of IPv4's table, which the Stack shares with IPv6)
        self.ipv6 = ipv6
        self.interface_by_index = interface_by_index or self._interface_by_index
        self.rng = rng
        self.clock = clock
        self.config = config or TcpConfig()
        self.stats = TcpStats()
        self.mem = SocketMemory(self.config, self.stats)
        self.conns: dict[tuple[int, int, int, int], Connection] = {}
        self.listeners: dict[int, dict[int, list[Connection]]] = {}
        # the IPv4 route cache entries of this routing generation, each shared by the
        # connections on that way (_route4): one tuple for thousands of them
        self._dsts: dict[tuple[int, Any, int], tuple[int, Any, int]] = {}
        self._dsts_gen = -1
        # IPv6 associations in tables of their own: 128-bit keys never meet 32-bit ones
        # (::1 == 1); the port space (`ports`) is one for both families, as Linux's bhash
        self.conns6: dict[tuple[int, int, int, int], Connection] = {}
        self.listeners6: dict[int, dict[int, list[Connection]]] = {}
        self.ports: dict[int, dict[Connection, None]] = {}      # an insertion-ordered set per port
        self._overflowed_at: dict[Connection, float] = {}        # listener -> its last cookie sent
        self._time_wait: dict[Connection, None] = {}             # connections in TIME_WAIT (a set)
        self._orphans: dict[Connection, None] = {}               # closed by the application, not yet ended
        self._secret = rng.getrandbits(128).to_bytes(16, "big")
        self.cookies = SynCookies(rng.getrandbits(128).to_bytes(16, "big"))
        # TCP Fast Open's cookie key and client cache; the key derived, not drawn, so the
        # stack's random sequence (ports, SYN cookies) stays what it was
        self.fastopen = FastOpen(hashlib.blake2s(b"fastopen", key=self._secret).digest()[:16], self.config)
        self.ephemeral = EphemeralPorts(rng)
        self._heap: list[tuple[float, int, Connection]] = []
        self._tiebreak = itertools.count()
        self._challenge_second: int | None = None   # the second the host budget is for
        self._challenge_count = 0
        self.kick: Callable[..., None] = lambda at=None: None
        # The forwarder (forward.py; a gateway's, issue 13): None, a SYN no listener takes is
        # reset (RFC 9293 §3.10.7.1); set, it is held and handed to this callable, which
        # answers later with forward_accept / forward_reject.  Held SYNs by request id, in
        # arrival order (= deadline order: one lifetime for all), and by 4-tuple.
        self.forwarder: Callable[[ForwardRequest], None] | None = None
        self.route_cache = True          # IPv4 segments over each connection's cached route (_emit4_cached)
        self._fwd_pending: OrderedDict[int, PendingSyn] = OrderedDict()
        self._fwd_by_key: dict[tuple[bool, int, int, int, int], int] = {}
        self._fwd_ids = itertools.count(1)
        # Relayed flows (relayed.py): a gateway's lean guest side, taken by forward_relay
        self.relays = RelayTable(self)
        # Output coalesced per receive batch (batching, rx_batch_end): while a device delivers the frames
        # of one read, a connection's fast-path segments defer their output pass to the end
        # of the batch -- one ACK for all its in-order data, as after Linux's GRO merged them
        # (a NAPI poll's segments become one); an insertion-ordered set
        self.batching = False                # inside a device read batch (set by the Stack)
        self._deferred: dict[Connection, None] = {}

    # --- receive batches ---------------------------------------------------------------
    def rx_batch_end(self) -> None:
        """A device has delivered one read's frames (the NDD's nd_rx_batch, wired by the
        Stack, which sets `batching` at the start).  Every connection deferred meanwhile has
        its output pass now -- the ACK, and the data the ACKs it got let it send.  (The clock
        is read only then: a batch of nothing for TCP costs two attribute stores.)"""
        self.batching = False
        if self.relays.deferred:
            self.relays.batch_end(self.clock())
        deferred = self._deferred
        if not deferred:
            return
        now = self.clock()
        while deferred:
            conn = next(iter(deferred))
            if conn.ack_held is not None:
                conn.release_held_ack()          # the batch's pure ACKs, as one (input.py _hold_ack)
            del deferred[conn]
            if conn.state != CLOSED and not conn.output_idle():
                conn.output(now)
                self.schedule(conn)              # the timers that pass armed (RTO, probe, send)

    def output_later(self, conn: Connection, now: float) -> None:
        """The output pass after a fast-path segment: at the end of the receive batch when
        one is under way, else now."""
        if self.batching:
            self._deferred[conn] = None
        elif not conn.output_idle():
            conn.output(now)

    # --- sockets ------------------------------------------------------------------------
    def attach(self, family: int = AF_INET) -> Connection:
        conn = Connection(self, self.config)
        if family == AF_INET6:
            conn.family = AF_INET6
            self._over_ipv6(conn, True)
        return conn

    @staticmethod
    def _over_ipv6(conn: Connection, net6: bool) -> None:
        """Which network the association uses: an AF_INET6 socket goes over IPv4 once its
        bound or peer address is v4-mapped (Linux tcp_v6_connect -> ipv6_mapped)."""
        conn.net6 = net6
        conn.net_hdr_len = IP6_HDR_LEN if net6 else 20

    def _interface_by_index(self, index: int) -> Interface | None:
        for ifp in self.ipv4.ifnet.by_name.values():
            if ifp.index == index:
                return ifp
        return None

    def bind(self, conn: Connection, addr: int, port: int, explicit: bool = True) -> int:
        """Bind to an IPv4 address (of an AF_INET socket, or the v4 half of a v4-mapped one)."""
        if conn.lport:
            return errno.EINVAL
        if addr and not (self.ipv4.ifnet.is_local(addr) or addr >> 24 == 127 or conn.transparent):
            return errno.EADDRNOTAVAIL                   # IP_TRANSPARENT: any address (sockopt.py)
        if is_multicast(addr) or addr == BROADCAST:
            return errno.EADDRNOTAVAIL
        return self._take_port(conn, addr, port, explicit)

    def bind6(self, conn: Connection, addr: int, port: int, scope_id: int, now: float,
              explicit: bool = True) -> int:
        """bind() of an AF_INET6 socket (Linux __inet6_bind): a v4-mapped address binds the
        IPv4 side (EINVAL with IPV6_V6ONLY); a link-local one needs a scope id naming the
        interface that has it (EINVAL without, ENODEV for no such interface); binding a
        specific IPv6 address makes the socket IPv6-only, as Linux sets sk_ipv6only."""
        if conn.lport:
            return errno.EINVAL
        if a6.is_v4_mapped(addr):
            if conn.v6only:
                return errno.EINVAL
            v4 = addr & 0xFFFFFFFF
            self._over_ipv6(conn, False)
            err = self.bind(conn, v4, port, explicit)
            if err:
                self._over_ipv6(conn, True)
            conn.mapped_bound = not err
            return err
        oif = conn.oif
        if needs_scope_id(addr) and scope_id:
            oif = self.interface_by_index(scope_id)
            if oif is None:
                return errno.ENODEV
        elif needs_scope_id(addr) and oif is None:
            return errno.EINVAL
        if addr and not conn.transparent and not self._is_local6(addr, oif if needs_scope_id(addr) else None, now):
            return errno.EADDRNOTAVAIL
        v6only = conn.v6only
        if addr:
            conn.v6only = True                   # Linux: a specific IPv6 address is IPv6-only
        err = self._take_port(conn, addr, port, explicit)
        if err:
            conn.v6only = v6only
            return err
        if needs_scope_id(addr):
            conn.oif = oif
        return 0

    def _is_local6(self, addr: int, ifp: Interface | None, now: float) -> bool:
        """One of our usable (not tentative, RFC 4862 §5.4) IPv6 addresses, on `ifp` if given."""
        if addr == a6.LOOPBACK:
            return True
        if self.ipv6 is None or a6.is_multicast(addr):
            return False
        return any(c.addr == addr and not c.tentative and (ifp is None or c.ifindex == ifp.index)
                   for c in self.ipv6.source_candidates(ifp, now))

    def _take_port(self, conn: Connection, addr: int, port: int, explicit: bool) -> int:
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
            if other is conn:
                continue
            if conn.family == AF_INET and other.family == AF_INET:
                if other.laddr and addr and other.laddr != addr:
                    continue
            elif not self._overlap(conn, addr, other, other.laddr):
                continue
            if conn.reuseport and other.reuseport:
                continue
            if conn.reuseaddr and (other.reuseaddr or other.state == State.TIME_WAIT) \
                    and other.state != State.LISTEN:
                continue
            return True
        return False

    @staticmethod
    def _overlap(conn: Connection, addr: int, other: Connection, other_addr: int) -> bool:
        """Do `conn` bound to `addr` and `other` bound to `other_addr` claim an address in
        common?  Linux ipv6_rcv_saddr_equal / ipv4_rcv_saddr_equal across families: an
        IPv4 (or v4-mapped) address against another as IPv4 does; `::` against anything but
        another's v4 side when IPv6-only; two `::` always; two IPv6 addresses when equal."""
        mine = "any" if conn.net6 and not addr else ("v6" if conn.net6 else "v4")
        theirs = "any" if other.net6 and not other_addr else ("v6" if other.net6 else "v4")
        if mine == "v4" and theirs == "v4":
            return not addr or not other_addr or addr == other_addr
        if mine == "any" and theirs == "any":
            return True
        if theirs == "any":
            return not (other.v6only and mine == "v4")
        if mine == "any":
            return not (conn.v6only and theirs == "v4")
        return mine == theirs == "v6" and addr == other_addr

    def _ephemeral(self, conn: Connection, addr: int) -> int:
        for port in self.ephemeral.candidates():
            if port not in self.ports:
                self.ephemeral.taken(port)
                return port
        return 0

    def _share_ephemeral(self, conn: Connection, laddr: int, faddr: int, fport: int) -> bool:
        """No free ephemeral port: share one held only by other connect()-bound sockets,
        as long as the 4-tuple stays unique (Linux __inet_hash_connect)."""
        conns = self.conns6 if conn.net6 else self.conns
        for port in self.ephemeral.candidates():
            users = self.ports.get(port, ())
            if all(not u.bound_port and u.state != State.LISTEN for u in users) \
                    and (laddr, port, faddr, fport) not in conns:
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
            listeners = self.listeners6 if conn.net6 else self.listeners
            listeners.setdefault(conn.lport, {}).setdefault(conn.laddr, []).append(conn)
        conn.state = State.LISTEN
        # Linux __sys_listen: min(backlog, net.core.somaxconn); the socket layer, as
        # CPython's listen(), has already made a negative backlog 0
        conn.backlog = max(0, min(backlog, self.config.somaxconn))
        conn.tfo_queue = self.fastopen.listen_queue(conn.tfo_queue, conn.backlog)
        if conn.accept_queue is None:
            conn.accept_queue = deque()
        return 0

    def _listen_conflict(self, conn: Connection) -> bool:
        """Another listener on an overlapping address of the port, outside an SO_REUSEPORT
        group.  Walks the port's local addresses, not its connections; across families (a
        dual-stack `::` and an IPv4 listener bound with SO_REUSEADDR) by address overlap."""
        same, other_family = (self.listeners6, self.listeners) if conn.net6 else (self.listeners, self.listeners6)
        for laddr, group in same.get(conn.lport, {}).items():
            if laddr and conn.laddr and laddr != conn.laddr:
                continue
            if any(not (conn.reuseport and other.reuseport) for other in group if other is not conn):
                return True
        for laddr, group in other_family.get(conn.lport, {}).items():
            if any(not (conn.reuseport and other.reuseport) and self._overlap(conn, conn.laddr, other, laddr)
                   for other in group):
                return True
        return False

    def stop_listening(self, conn: Connection) -> None:
        """LISTEN -> CLOSED (close or shutdown(SHUT_RD) of a listener): out of the index."""
        self._forget_listener(conn)
        conn.state = State.CLOSED

    def _forget_listener(self, conn: Connection) -> None:
        self._overflowed_at.pop(conn, None)
        listeners = self.listeners6 if conn.net6 else self.listeners
        by_addr = listeners.get(conn.lport)
        if by_addr is None:
            return
        group = by_addr.get(conn.laddr)
        if group is None or conn not in group:
            return
        group.remove(conn)                               # an SO_REUSEPORT group: a few sockets
        if not group:
            del by_addr[conn.laddr]
            if not by_addr:
                del listeners[conn.lport]

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
        if conn.transparent and conn.laddr and not ifp.transparent \
                and not (self.ipv4.ifnet.is_local(conn.laddr) or conn.laddr >> 24 == 127):
            # bound by IP_TRANSPARENT to an address not ours: only a transparent interface
            # takes the replies to it (Ipv4.input), so the route must leave by one.  (Linux
            # sends anyway and leaves the replies to TPROXY's policy routing, which this
            # stack does not have: a connect that can never complete is refused at once.)
            return errno.EADDRNOTAVAIL
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
        conn.rcv_wscale = wscale_for(conn.rcv_space_max()) if conn.want_wscale else 0
        conn.ts_offset = self._hash32(b"ts", key)
        conn.open_active(self.isn(key, now), now)
        self.schedule(conn)
        return 0

    def connect6(self, conn: Connection, addr: int, port: int, scope_id: int, now: float) -> int:
        """connect() of an AF_INET6 socket (Linux tcp_v6_connect): `::` means ::1; a
        v4-mapped peer is reached over IPv4 (ENETUNREACH when IPv6-only); a link-local one
        needs a scope id or a bound interface (EINVAL), and a scope id must agree with the
        interface the socket is bound to."""
        if conn.state == State.LISTEN:
            return errno.EINVAL
        if conn.state != State.CLOSED or conn.connected:
            return errno.EISCONN if conn.state in (State.ESTABLISHED, State.CLOSE_WAIT) else errno.EALREADY
        if addr == 0:
            addr = a6.v4_mapped(0x7F000001) if not conn.net6 else a6.LOOPBACK
        if a6.is_multicast(addr):
            return errno.ENETUNREACH
        if conn.oif_gone:
            # an earlier connect bound the socket to an interface that is not there (Linux keeps
            # sk_bound_dev_if): every route lookup fails, another scope id disagrees
            scoped_elsewhere = needs_scope_id(addr) and scope_id and scope_id != conn.oif_gone
            return errno.EINVAL if scoped_elsewhere else errno.ENETUNREACH
        if a6.is_v4_mapped(addr):
            if conn.v6only or (conn.net6 and conn.laddr):
                return errno.ENETUNREACH                 # an IPv6 source cannot reach an IPv4 peer
            was_net6 = conn.net6
            self._over_ipv6(conn, False)
            err = self.connect(conn, addr & 0xFFFFFFFF, port, now)
            if err and was_net6:
                self._over_ipv6(conn, True)
            return err
        if not conn.net6:
            if conn.mapped_bound:
                # bound to a v4-mapped address: Linux ip6_dst_lookup_tail refuses a mapped
                # source towards an IPv6 destination
                return errno.EAFNOSUPPORT
            # an earlier connect to a mapped peer failed: the socket is IPv6 again, its source
            # forgotten (Linux tcp_disconnect inet_reset_saddr; tcp_v6_connect's af_ops reset)
            self._over_ipv6(conn, True)
            conn.laddr = 0
        if needs_scope_id(addr):
            if scope_id:
                if conn.oif is not None and conn.oif.index != scope_id:
                    return errno.EINVAL
                oif = self.interface_by_index(scope_id)
                if oif is None:
                    conn.oif_gone = scope_id     # Linux: bound to it, and its route lookup fails
                    return errno.ENETUNREACH
                conn.oif = oif
            if conn.oif is None:
                return errno.EINVAL
        ipv6 = self.ipv6
        if ipv6 is None:
            return errno.ENETUNREACH
        oif6 = conn.oif
        hop = ipv6.route(addr, now, oif6)
        if isinstance(hop, int):
            return hop
        src = conn.laddr
        if conn.transparent and src and not hop.ifp.transparent and not self._is_local6(src, None, now):
            return errno.EADDRNOTAVAIL                   # a foreign source: as connect() for IPv4
        if not src:
            err, src = ipv6.source_for(addr, now, oif6)
            if err:
                return err
        if not conn.lport:
            err = self._take_port(conn, 0, 0, explicit=False)
            if err and not self._share_ephemeral(conn, src, addr, port):
                return errno.EADDRNOTAVAIL
        conn.laddr = src
        key = (conn.laddr, conn.lport, addr, port)
        if key in self.conns6:
            return errno.EADDRNOTAVAIL
        if not self.mem.admit():
            return errno.ENOBUFS
        conn.faddr, conn.fport = addr, port
        self._use_route(conn, hop.ifp, ipv6.path_mtu(hop.ifp, addr, now))
        self.conns6[key] = conn
        conn.rcv_wscale = wscale_for(conn.rcv_space_max()) if conn.want_wscale else 0
        conn.ts_offset = self._hash32(b"ts6", key)
        conn.open_active(self.isn(key, now, b"isn6"), now)
        self.schedule(conn)
        return 0

    def _use_route(self, conn: Connection, ifp: Any, mtu: int = 0) -> None:
        """The interface the connection leaves by, its offloads, and our MSS: from the link MTU,
        or from `mtu` when given (IPv6: Ipv6.path_mtu, which knows the link's IPv6 MTU -- an
        RA's MTU option -- and a learnt path MTU, as Linux's advmss = dst_mtu - 60)."""
        conn.ifp = ifp
        caps = ifp.ndd.caps
        hdrs = IP6_TCP_HDR if conn.net6 else IP_TCP_HDR
        conn.tso_max = shared_int(min(caps.tso_max, 65535) - hdrs - 40) if caps.tso_max and caps.tx_csum_offload else 0
        # Without TSO the device layer cuts super-segments in software (ndd/gso.py, Linux's
        # GSO): the chunks Linux would send as one GSO skb go as one, with a partial checksum
        # each piece's own completes; a lone segment gets its checksum here, as before.
        conn.gso_max = 0 if conn.tso_max else shared_int(65535 - hdrs - 40)
        conn.csum_offload = bool(caps.tx_csum_offload)
        conn.set_mss_for(mtu or ifp.mtu)

    # --- ISNs, clocks, budgets -------------------------------------------------------------------
    def _hash32(self, tag: bytes, key: tuple[int, int, int, int]) -> int:
        h = hashlib.blake2s(b"%s %d %d %d %d" % (tag, *key), digest_size=4, key=self._secret)
        return int.from_bytes(h.digest(), "big")

    def isn(self, key: tuple[int, int, int, int], now: float, tag: bytes = b"isn") -> int:
        """RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey),
        M a 4-microsecond timer.  IPv6 4-tuples hash under their own tag (b"isn6"), so the
        128-bit ::1 and the 32-bit 0.0.0.1 never share F."""
        return (int(now * 250_000) + self._hash32(tag, key)) & 0xFFFFFFFF

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
        if conn.net6:
            # IPV6_PMTUDISC_INTERFACE / _OMIT: the interface's MTU, whatever the path says
            if self.ipv6 is None or conn.pmtudisc >= IPV6_PMTUDISC_INTERFACE:
                return 0
            # (an IPv6 connection's ifp is the Interface its IPv6 route named)
            mtu: int = self.ipv6.path_mtu(ifp, conn.faddr, now)    # type: ignore[arg-type]
        else:
            mtu = self.ipv4.pmtu.path_mtu(conn.faddr, ifp.mtu, now)
        return mtu if mtu < ifp.mtu else 0

    # --- connection lifecycle hooks (called by Connection) ---------------------------------------
    def detach(self, conn: Connection) -> None:
        """The connection is CLOSED: forget it.  Its port stays while a socket holds it."""
        key = (conn.laddr, conn.lport, conn.faddr, conn.fport)
        conns = self.conns6 if conn.net6 else self.conns
        if conns.get(key) is conn:
            del conns[key]
        self._time_wait.pop(conn, None)
        self._orphans.pop(conn, None)
        if isinstance(conn.tfo, PassiveFastOpen):
            conn.tfo.done()
        parent = conn.parent
        if parent is not None and not conn.queued:
            conn.parent = None
            lr = parent.rare                             # a listener's own record (listen() made it)
            if lr.syn_count:
                lr.syn_count -= 1
        # A child that dies in the accept queue (reset, timed out) stays there, as in Linux
        # (inet_csk_accept returns whatever is queued): accept() returns it and the first
        # read() its error; it holds its place against the backlog until then.
        if conn.user_closed or not conn.owned:
            self.unbind(conn)
        else:
            self._forget_listener(conn)

    def established(self, conn: Connection) -> None:
        if isinstance(conn.tfo, PassiveFastOpen):
            if conn.tfo.queue is not None:               # a Fast Open child: SND.UNA passed the SYN
                conn.snd.consume(1)
            conn.tfo.done()                              # ... and it was queued at its SYN already
            conn.tfo = None
            if conn.queued or conn.parent is None:
                conn.on_event()
                return
        parent = conn.parent
        if parent is None:
            conn.on_event()                              # simultaneous open: wake the connect() waiter
            return
        lr = parent.rare                                 # a listener's own record (listen() made it)
        if lr.syn_count:
            lr.syn_count -= 1
        if lr.accept_queue is not None:
            lr.accept_queue.append(conn)
            conn.queued = True
            lr.accept_live += 1
        parent.on_event()

    def pop_accepted(self, lst: Connection) -> Connection | None:
        """The oldest child of the accept queue (alive or not), now owned by a socket."""
        lr = lst.rare
        q = lr.accept_queue
        if not q:
            return None
        child = q.popleft()
        child.queued = False
        lr.accept_live -= 1
        child.parent = None
        child.owned = True
        return child

    def accept_queue_full(self, lst: Connection) -> bool:
        """Linux sk_acceptq_is_full: a SYN or a handshake ACK finding it full is dropped (counted).
        A child that died waiting counts until accepted, as in Linux."""
        lr = lst.rare                                    # (the listener's fields: TcbRare)
        if lr.accept_live < max(lr.backlog, 1):
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
        # The heap is lazy: an entry stays when the timer that filed it is cancelled or moved
        # later (every FIN's retransmission timeout, ACKed at once).  Reported as it is, each
        # would cost the TimerService a wake-up that finds nothing due -- about one per
        # accepted connection (issue 15).  So the head is checked against its connection's
        # real deadline here, and refiled, until it is one that is due when it says.
        heap = self._heap
        while heap:
            filed, _, conn = heap[0]
            if conn.sched_at != filed:
                heapq.heappop(heap)                      # stale: a newer entry exists
                continue
            real = conn.poll_at()
            if real is not None and real <= filed:
                break
            heapq.heappop(heap)                          # cancelled or later: refile, or drop
            conn.sched_at = real
            if real is not None:
                heapq.heappush(heap, (real, next(self._tiebreak), conn))
        at = heap[0][0] if heap else None
        if self._fwd_pending:
            first = next(iter(self._fwd_pending.values())).deadline   # the oldest held SYN's
            if at is None or first < at:
                at = first
        if self.relays.busy:
            relayed = self.relays.poll_at()
            if relayed is not None and (at is None or relayed < at):
                at = relayed
        return at

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
        if self._fwd_pending:
            self._expire_forwards(now)
        if self.relays.busy:
            self.relays.poll(now)
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
        if ip.bcast or pkt.ll_bcast:
            # RFC 1122 §4.2.3.10: not for broadcasts; nor a frame to a link-layer group
            # address (Linux tcp_v4_rcv: PACKET_HOST only, as input6)
            stats.in_errs += 1
            return
        if not pkt.csum_valid and ck.ones_sum(view, ck.pseudo_header_sum(ip.src, ip.dst, IPPROTO_TCP,
                                                                           len(view))) != 0xFFFF:
            stats.in_errs += 1
            stats.in_csum_errors += 1
            return
        payload = view[seg.hdr_len:]
        seg.ecn = ip.tos & ECN_MASK                      # the IP ECN field, for ecn.py
        key = (ip.dst, seg.dst_port, ip.src, seg.src_port)
        conn = self.conns.get(key)
        if conn is not None:
            conn.rx_ifp = ip.ifp                         # early_input's interface check
            if self._established(conn, seg, payload, now, self._listener, ip.dst):
                return
        elif self.relays.flows:
            flow = self.relays.flows.get(key)
            if flow is not None and flow.input(seg, payload, now):
                return
        listener = self._listener(ip.dst, seg.dst_port)
        if listener is not None and (listener.laddr or not self._foreign(ip.ifp, ip.dst)):
            self._listen_input(listener, seg, ip, payload, now)
            return
        if self.forwarder is not None and seg.flags & (SYN | ACK | RST | FIN) == SYN:
            self._forward_syn(seg, ip, ip.original(pkt, len(view))[:QUOTE_MAX], len(payload), now, False)
            return
        stats.no_ports += 1
        self._reset_for(seg, ip.dst, ip.src, len(payload), now)

    def early_input(self, pkt: PacketBuffer, ifp: Interface, now: float) -> bool:
        """Early demux (Linux ip_rcv_finish -> tcp_v4_early_demux, sysctl ip_early_demux): a
        segment of a connection of the table goes straight to it, past IPv4's input and the
        protocol switch -- True once it did; False (nothing done, nothing counted) sends the
        packet the whole way, Ipv4.input.
        Taken only where the whole way cannot decide otherwise: a frame to our link-layer
        address, a plain IPv4 header (no
        options, not a fragment, its length the packet's, its checksum right), TCP with a
        right checksum and a header TcpRepr accepts, the 4-tuple of a connection whose
        last segment through the whole way came in by this interface (so its source passed
        the martian checks there), a destination that is still one of our addresses (or a
        transparent interface's, the gateway's), a source that is not.  What IPv4 and TCP
        count for it is counted; what else they do (reassembly, IpMeta, the listener and
        forwarder lookups) a segment of a connection does not need.  Over IPv6 the whole
        way is taken."""
        buf, s, end = pkt.buf, pkt.start, pkt.end
        n = end - s
        if n < 40 or pkt.ll_bcast or buf[s] != 0x45 or buf[s + 9] != 6 or buf[s + 6] & 0x3F or buf[s + 7] \
                or (buf[s + 2] << 8 | buf[s + 3]) != n:
            return False
        src, dst, sport, dport = _EARLY_KEY.unpack_from(buf, s + 12)
        conn = self.conns.get((dst, dport, src, sport))
        if conn is None:                                 # a gateway's relayed flow (relayed.py)?
            return bool(self.relays.flows) and self.relayed_input4(buf, s, end, pkt.csum_valid, ifp, now)
        if conn.rx_ifp is not ifp or conn.state == TIME_WAIT:
            return False                                 # (a SYN may retire it for a listener)
        local = self.ipv4.ifnet.local_addrs
        if src in local or not (dst in local or ifp.transparent):
            return False
        view = memoryview(buf)[s:end]
        if int.from_bytes(view[:20], "big") % 0xFFFF:
            return False                                 # a bad header checksum: IPv4 counts it
        view = view[20:]
        if not pkt.csum_valid and ck.ones_sum(view, int.from_bytes(buf[s + 12:s + 20], "big") + 6 + n - 20) != 0xFFFF:
            return False                                 # TCP counts it
        seg = TcpRepr.parse(view)
        if isinstance(seg, str):
            return False
        ipstats = self.ipv4.stats
        ipstats.in_receives += 1
        ipstats.in_delivers += 1
        self.stats.in_segs += 1
        seg.ecn = buf[s + 1] & ECN_MASK
        self._established(conn, seg, view[seg.hdr_len:], now, self._listener, dst)
        return True

    def relayed_input4(self, buf: bytes | bytearray | memoryview, s: int, end: int, csum_valid: bool, ifp: Interface,
                       now: float) -> bool:
        """Early demux for a gateway's relayed flow, from the octets of the frame itself (the
        IPv4 header at buf[s:end], no PacketBuffer: a driver's nd_fast_rx comes here through
        the Stack, early_input too): True once the segment went to its flow; False (nothing
        done, nothing counted) sends the packet the whole way.  Checked as early_input checks
        it -- a plain IPv4 header with its checksum right, TCP's checksum unless the device
        vouched for it (`csum_valid`), the 4-tuple of a flow whose guest is behind this
        interface (its SYN passed IPv4's martian checks for these same addresses), a source
        that is not ours.  A header without options (what a guest sends on a connection that
        did not negotiate timestamps: every segment but a SACK-carrying ACK) is read here
        field by field and handed to RelayedFlow.segment -- no TcpRepr; one with options is
        parsed whole."""
        n = end - s
        if n < 40 or buf[s] != 0x45 or buf[s + 9] != 6 or buf[s + 6] & 0x3F or buf[s + 7] \
                or (buf[s + 2] << 8 | buf[s + 3]) != n:
            return False
        src, dst, sport, dport, seqno, ackno, off, flags, window = _RELAYED_KEY.unpack_from(buf, s + 12)
        flow = self.relays.flows.get((dst, dport, src, sport))
        if flow is None:
            return flags & (SYN | ACK | RST | FIN) == SYN and self._syn_to_forward4(buf, s, end, csum_valid, ifp, now)
        if flow.ifp is not ifp:
            return False
        local = self.ipv4.ifnet.local_addrs
        if src in local or not (dst in local or ifp.transparent):
            return False
        if int.from_bytes(buf[s:s + 20], "big") % 0xFFFF:
            return False                                 # a bad header checksum: IPv4 counts it
        view = memoryview(buf)[s + 20:end]
        if not csum_valid and ck.ones_sum(view, src + dst + 6 + n - 20) != 0xFFFF:
            return False                                 # TCP counts it
        if self._to_flow(flow, view, off, seqno, ackno, flags, window, self.ipv4.stats, now):
            return True
        # a new SYN that retired its 4-tuple's lingering flow (a guest's port used again): the
        # forwarder's now, as Tcp.input goes on after the flow declines (its checksum is right)
        return flags & (SYN | ACK | RST | FIN) == SYN and self._syn_to_forward4(buf, s, end, True, ifp, now)

    def _syn_to_forward4(self, buf: bytes | bytearray | memoryview, s: int, end: int, csum_valid: bool,
                         ifp: Interface, now: float) -> bool:
        """relayed_input4's SYN that no flow knows -- a gateway's next connection: held for the
        forwarder as Tcp.input holds it, past the demuxer, IPv4's input and TCP's lookups,
        once what they would decide is sure: a forwarder, a transparent interface's unicast
        to an address not ours from a source that is not martian (Ipv4.takes_foreign), no
        connection or listener of the 4-tuple's, both checksums right, a header TcpRepr
        accepts.  False (nothing done, nothing counted): the whole way decides."""
        if self.forwarder is None:
            return False
        src, dst, sport, dport = _EARLY_KEY.unpack_from(buf, s + 12)
        ipv4 = self.ipv4
        if not ipv4.takes_foreign(ifp, src, dst) or (dst, dport, src, sport) in self.conns \
                or self._listener(dst, dport) is not None:
            return False
        if int.from_bytes(buf[s:s + 20], "big") % 0xFFFF:
            return False                                 # a bad header checksum: IPv4 counts it
        view = memoryview(buf)[s + 20:end]
        if not csum_valid and ck.ones_sum(view, src + dst + 6 + end - s - 20) != 0xFFFF:
            return False                                 # TCP counts it
        tos = buf[s + 1]
        return self._hold_syn(buf, s, end, view, IpMeta(src, dst, IPPROTO_TCP, buf[s + 8], tos, 20, ifp, s),
                              tos & ECN_MASK, ipv4.stats, now)

    def early_input6(self, pkt: PacketBuffer, ifp: Interface, now: float) -> bool:
        """Early demux over IPv6, for a gateway's relayed flows only (relayed.py; connections
        take the whole way): relayed_input6 on the packet's octets, for a frame to our
        link-layer address (one to a group address goes the whole way, which drops it)."""
        return not pkt.ll_bcast and self.relayed_input6(pkt.buf, pkt.start, pkt.end, pkt.csum_valid, ifp, now)

    def relayed_input6(self, buf: bytes | bytearray | memoryview, s: int, end: int, csum_valid: bool,
                       ifp: Interface, now: float) -> bool:
        """relayed_input4 over IPv6 (the IPv6 header at buf[s:end]; early_input6 and a
        driver's nd_fast_rx through the Stack come here): True once the segment went to its
        flow, False (nothing done, nothing counted) sends the packet through Ipv6.input.
        Taken only where the whole way cannot decide otherwise: a plain IPv6 header (TCP
        next, no extension header, its payload length the packet's), the 4-tuple of a flow
        whose guest is behind this transparent interface (so its SYN passed the address
        rules for these same addresses there), a TCP checksum that is right (or vouched for
        by the device) and a header TcpRepr accepts; one without options is read field by
        field."""
        n = end - s
        if n < 60 or buf[s] >> 4 != 6 or buf[s + 6] != IPPROTO_TCP or (buf[s + 4] << 8 | buf[s + 5]) != n - 40 \
                or not ifp.transparent or self.ipv6 is None:
            return False
        src = int.from_bytes(buf[s + 8:s + 24], "big")
        dst = int.from_bytes(buf[s + 24:s + 40], "big")
        sport, dport, seqno, ackno, off, flags, window = _RELAYED_TCP.unpack_from(buf, s + 40)
        flow = self.relays.flows6.get((dst, dport, src, sport))
        if flow is None:
            return flags & (SYN | ACK | RST | FIN) == SYN and self._syn_to_forward6(buf, s, end, src, dst, csum_valid,
                                                                                     ifp, now)
        if flow.ifp is not ifp:
            return False
        view = memoryview(buf)[s + 40:end]
        if not csum_valid and ck.ones_sum(view, pseudo_header_sum6(src, dst, IPPROTO_TCP, n - 40)) != 0xFFFF:
            return False                                 # TCP counts it
        if self._to_flow(flow, view, off, seqno, ackno, flags, window, self.ipv6.stats, now):
            return True
        # a new SYN that retired its 4-tuple's lingering flow: the forwarder's now (relayed_input4)
        return flags & (SYN | ACK | RST | FIN) == SYN and self._syn_to_forward6(buf, s, end, src, dst, True, ifp, now)

    def _syn_to_forward6(self, buf: bytes | bytearray | memoryview, s: int, end: int, src: int, dst: int,
                         csum_valid: bool, ifp: Interface, now: float) -> bool:
        """_syn_to_forward4 over IPv6 (relayed_input6 checked the plain header): held for the
        forwarder as input6 holds it once Ipv6.takes_foreign, the lookups, the checksum
        and TcpRepr are sure; False (nothing done, nothing counted): the whole way decides."""
        ipv6 = self.ipv6
        if self.forwarder is None or ipv6 is None:
            return False
        sport, dport = _PORTS.unpack_from(buf, s + 40)
        if not ipv6.takes_foreign(ifp, src, dst, lambda addr: self._is_local6(addr, None, now)) \
                or (dst, dport, src, sport) in self.conns6 or self._listener6(dst, dport) is not None:
            return False
        view = memoryview(buf)[s + 40:end]
        if not csum_valid and ck.ones_sum(view, pseudo_header_sum6(src, dst, IPPROTO_TCP, end - s - 40)) != 0xFFFF:
            return False                                 # TCP counts it
        vtf, hop_limit = _VTF_HLIM.unpack_from(buf, s)
        tclass = (vtf >> 20) & 0xFF
        meta = Ip6Meta(src, dst, IPPROTO_TCP, hop_limit, tclass, vtf & 0xFFFFF, ifp, IP6_HDR_LEN, s)
        return self._hold_syn(buf, s, end, view, meta, tclass & ECN_MASK, ipv6.stats, now)

    def _hold_syn(self, buf: bytes | bytearray | memoryview, s: int, end: int, view: memoryview,
                  meta: IpMeta | Ip6Meta, ecn: int, ipstats: Any, now: float) -> bool:
        """_syn_to_forward4/6's end, `view` the TCP header on: a header TcpRepr accepts is
        counted as IP's and TCP's input count it and held for the forwarder with its quote
        (the datagram from buf[s], at most QUOTE_MAX octets); False (nothing counted) else."""
        seg = TcpRepr.parse(view)
        if isinstance(seg, str):
            return False
        ipstats.in_receives += 1
        ipstats.in_delivers += 1
        self.stats.in_segs += 1
        seg.ecn = ecn
        self._forward_syn(seg, meta, bytes(buf[s:min(end, s + QUOTE_MAX)]), len(view) - seg.hdr_len, now,
                          isinstance(meta, Ip6Meta))
        return True

    def _to_flow(self, flow: RelayedFlow, view: memoryview, off: int, seqno: int, ackno: int, flags: int,
                 window: int, ipstats: Any, now: float) -> bool:
        """relayed_input4/6's end, `view` the TCP header on: a header without options is
        taken as read, one with them parsed whole (its SACK blocks); the segment counted as
        IP's and TCP's input count it and handed to its flow.  False (nothing counted): a
        header TcpRepr refuses, or a new SYN that retired a lingering flow -- the forwarder
        or the whole way takes it from there."""
        sack: tuple[tuple[int, int], ...] = ()
        if off == 0x50:
            payload = view[20:]
        else:
            seg = TcpRepr.parse(view)
            if isinstance(seg, str):
                return False
            sack, payload = seg.sack, view[seg.hdr_len:]
        if not flow.segment(seqno, ackno, flags, window, sack, payload, now):
            return False
        ipstats.in_receives += 1
        ipstats.in_delivers += 1
        self.stats.in_segs += 1
        return True

    def _established(self, conn: Connection, seg: TcpRepr, payload: memoryview, now: float,
                     listener: Callable[[int, int], Connection | None], laddr: int) -> bool:
        """A segment for a connection of the table: True once it went there.  False when it is
        a new SYN for a connection in TIME_WAIT that a listener of the port (or the forwarder)
        takes instead: the old one is retired (RFC 9293 §3.10.7.4 note, RFC 6191) and the
        caller goes on."""
        if conn.state == TIME_WAIT and seg.flags & SYN and not seg.flags & (ACK | RST) \
                and sq.gt(seg.seq, conn.rcv_nxt) \
                and (self.forwarder is not None or listener(laddr, seg.dst_port) is not None):
            conn.destroy()
            return False
        conn.input(seg, payload, now)
        self.mem.update(conn)
        if conn.state != CLOSED:
            self.schedule(conn)
        return True

    def _listener(self, addr: int, port: int) -> Connection | None:
        """Linux inet_lookup_listener: the listener on (addr, port), else on (0.0.0.0, port),
        else a dual-stack AF_INET6 listener on (::, port) that is not IPv6-only.  Two or
        three dict lookups; the port's connections are never looked at."""
        by_addr = self.listeners.get(port)
        group = (by_addr.get(addr) or by_addr.get(0)) if by_addr is not None else None
        if group:
            return group[0]
        by_addr6 = self.listeners6.get(port)
        if by_addr6 is not None:
            for lst in by_addr6.get(0, ()):
                if not lst.v6only:
                    return lst
        return None

    def _listener6(self, addr: int, port: int) -> Connection | None:
        """The IPv6 listener on (addr, port), else on (::, port): IPv6 input never finds
        an IPv4 socket (Linux inet6_lookup_listener)."""
        by_addr = self.listeners6.get(port)
        if by_addr is None:
            return None
        group = by_addr.get(addr) or by_addr.get(0)
        return group[0] if group else None

    # --- input from IPv6 (ip6_protox[6]) -------------------------------------------------------
    def input6(self, pkt: PacketBuffer, ip: Ip6Meta, now: float) -> None:
        """A segment from the IPv6 layer (Linux tcp_v6_rcv), `pkt` at the TCP header: the
        checksum over the RFC 8200 §8.1 pseudo-header unless the device vouched for it (a
        GSO TCPV6 super-frame's partial checksum included), then the same lookups as IPv4's
        in the IPv6 tables, and an RST when nothing listens."""
        stats = self.stats
        stats.in_segs += 1
        view = pkt.view()
        seg = TcpRepr.parse(view)
        if isinstance(seg, str):
            stats.in_errs += 1
            stats.bump(seg)
            return
        if ip.mcast or pkt.ll_bcast:
            stats.in_errs += 1                           # Linux tcp_v6_rcv: PACKET_HOST only
            return
        if not pkt.csum_valid and ck.ones_sum(view, pseudo_header_sum6(ip.src, ip.dst, IPPROTO_TCP,
                                                                        len(view))) != 0xFFFF:
            stats.in_errs += 1
            stats.in_csum_errors += 1
            return
        payload = view[seg.hdr_len:]
        seg.ecn = ip.tclass & ECN_MASK                   # the traffic class's ECN bits, for ecn.py
        key = (ip.dst, seg.dst_port, ip.src, seg.src_port)
        conn = self.conns6.get(key)
        if conn is not None:
            if self._established(conn, seg, payload, now, self._listener6, ip.dst):
                return
        elif self.relays.flows6:
            flow = self.relays.flows6.get(key)
            if flow is not None and flow.input(seg, payload, now):
                return
        listener = self._listener6(ip.dst, seg.dst_port)
        if listener is not None and (listener.laddr or not self._foreign6(ip.ifp, ip.dst, now)):
            self._listen_input(listener, seg, ip, payload, now, net6=True)
            return
        if self.forwarder is not None and seg.flags & (SYN | ACK | RST | FIN) == SYN:
            self._forward_syn(seg, ip, ip.original(pkt, QUOTE_MAX), len(payload), now, True)
            return
        stats.no_ports += 1
        self._reset_for(seg, ip.dst, ip.src, len(payload), now, net6=True, oif=ip.ifp)

    def _listen_input(self, lst: Connection, seg: TcpRepr, ip: IpMeta | Ip6Meta, payload: memoryview, now: float,
                      net6: bool = False) -> None:
        flags = seg.flags
        if flags & RST:
            return
        if flags & ACK:
            if not flags & SYN and self.config.syncookies and self._recent_overflow(lst, now):
                mss = self.cookies.check(ip.dst, seg.dst_port, ip.src, seg.src_port, seg, now, v6=net6)
                if mss is not None:
                    if self.accept_queue_full(lst) or not self.mem.admit():
                        return                           # Linux: dropped; the peer's next segment retries
                    self.stats.syncookies_recv += 1
                    self._cookie_child(lst, seg, ip, mss, payload, now, net6)
                    return
                self.stats.syncookies_failed += 1
            # §3.10.7.2: <SEQ=SEG.ACK><CTL=RST>
            self._reset_for(seg, ip.dst, ip.src, len(payload), now, net6=net6, oif=ip.ifp)
            return
        if not flags & SYN:
            return
        if self.accept_queue_full(lst):
            return                                       # Linux: a full accept queue drops SYNs
        if not self.mem.admit():
            return                                       # tcp_mem[2]: dropped; the peer's SYN retries
        lr = lst.rare
        if lr.syn_count >= max(lr.backlog, 1):
            if self.config.syncookies:
                self._send_cookie(lst, seg, ip, now, net6)
            else:
                self.stats.listen_drops += 1
            return
        child = self._child(lst, ip, seg.dst_port, seg.src_port, now, net6)
        self._syn_received(child, seg, self._passive_iss(seg, ip, now, net6), lst.want_wscale, now, net6)
        if not ((payload or seg.fastopen is not None) and self._fastopen_syn(lst, child, seg, payload, net6)):
            lr.syn_count += 1
        child.output(now)
        self.mem.update(child)                           # the SYN-ACK's window is a promise
        self.schedule(child)

    def _syn_received(self, child: Connection, seg: TcpRepr, iss: int, want_wscale: bool, now: float,
                      net6: bool) -> None:
        """A new connection answering the SYN `seg` enters SYN-RECEIVED with `iss` (RFC 9293
        §3.10.7.2): the peer's sequence and options taken, our window scale chosen."""
        child.state = State.SYN_RECEIVED
        key = (child.laddr, child.lport, child.faddr, child.fport)
        child.iss = child.snd_una = child.snd_nxt = child.snd_max = iss
        child.recover = child.iss
        child.irs = seg.seq
        child.rcv_nxt = child.rcv_adv = child.last_ack_sent = sq.add(seg.seq, 1)
        child.want_wscale = want_wscale
        child._take_syn_options(seg, now)
        child.rcv_wscale = wscale_for(child.rcv_space_max()) if child.peer_wscale is not None else 0
        child.ts_offset = self._hash32(b"ts6" if net6 else b"ts", key)
        child.last_rcv = now
        if listener_accepts(self.config.ecn, seg.flags, seg.ecn):
            child.ecn = Ecn()                            # the SYN-ACK answers with ECE (ecn.py)
            self.stats.ecn_negotiated += 1

    def _fastopen_syn(self, lst: Connection, child: Connection, seg: TcpRepr, payload: memoryview,
                      net6: bool) -> bool:
        """TCP Fast Open (fastopen.py, Linux tcp_try_fastopen): True when the child takes the
        SYN's data -- then it is in the accept queue at once, before its handshake completes;
        otherwise it may owe the client a cookie in its SYN-ACK."""
        verdict = self.fastopen.server_syn(lst.tfo_queue, seg.fastopen, seg.fastopen_exp, len(payload),
                                           child.faddr, child.laddr, net6, self.stats)
        if verdict is None:
            return False
        if not verdict.accept_data:
            child.tfo = PassiveFastOpen(verdict.cookie, verdict.exp)
            return False
        queue = lst.tfo_queue
        assert queue is not None and lst.accept_queue is not None
        queue.qlen += 1
        child.tfo = PassiveFastOpen(queue=queue)
        # it may send before the handshake ACK: the SYN's window, and an octet standing for the
        # SYN at the head of the send buffer, whose offsets count from SND.UNA (until established)
        child.snd_wnd = child.max_snd_wnd = seg.window
        child.snd_wl1, child.snd_wl2 = seg.seq, child.iss
        child.snd.write(memoryview(b"\0"))
        child.snd.marks.wrote(1, 0, False, True, 0)    # an skb of its own (the SYN's), so data starts a new one
        if payload:
            child.bytes_received += len(payload)
            child.rcv_nxt = child.rcv_adv = child.rcv.append_in_order(payload, child.rcv_nxt)
        self.stats.fastopen_passive += 1
        lst.accept_queue.append(child)
        child.queued = True
        lst.accept_live += 1
        lst.on_event()
        return True

    # --- the forwarder (forward.py) ---------------------------------------------------------------
    def _foreign(self, ifp: Interface | None, dst: int) -> bool:
        """An IPv4 destination that is ours only because it came by a transparent interface: a
        wildcard listener does not take it (Linux delivers a non-local address to no socket
        without TPROXY); the forwarder does."""
        return ifp is not None and ifp.transparent and not self.ipv4.ifnet.is_local(dst)

    def _foreign6(self, ifp: Interface | None, dst: int, now: float) -> bool:
        return ifp is not None and ifp.transparent and not self._is_local6(dst, None, now)

    def _forward_syn(self, seg: TcpRepr, ip: IpMeta | Ip6Meta, quote: bytes, datalen: int, now: float,
                     net6: bool) -> None:
        """Hold a SYN no listener takes and hand it to the forwarder.  A retransmission of a
        held one is ignored; beyond forward_pending_max the SYN is dropped (the guest retries)."""
        forwarder = self.forwarder
        if forwarder is None:
            return
        stats = self.stats
        key = (net6, ip.dst, seg.dst_port, ip.src, seg.src_port)
        if key in self._fwd_by_key:
            stats.forward_syn_retransmits += 1
            return
        pending = self._fwd_pending
        if pending:
            self._expire_forwards(now)
        if len(pending) >= self.config.forward_pending_max:
            stats.forward_dropped_full += 1
            return
        rid = next(self._fwd_ids)
        options = SynOptions(seg.mss, seg.wscale, bool(seg.sack_perm), seg.ts is not None)
        request = ForwardRequest(rid, AF_INET6 if net6 else AF_INET, ip.src, seg.src_port, ip.dst, seg.dst_port,
                                 options, ip.ifp, now)
        deadline = now + self.config.forward_timeout
        pending[rid] = PendingSyn(request, seg, ip, quote, datalen, net6, deadline)
        self._fwd_by_key[key] = rid
        stats.forward_requests += 1
        if len(pending) == 1:
            self.kick(deadline)                          # the only one: the earliest expiry
        forwarder(request)

    def _expire_forwards(self, now: float) -> None:
        """Forget the held SYNs whose lifetime is over (oldest first: O(1) each)."""
        pending = self._fwd_pending
        while pending:
            rid, p = next(iter(pending.items()))
            if p.deadline > now:
                return
            del pending[rid]
            self._fwd_by_key.pop(p.key, None)
            if not p.rejected:
                self.stats.forward_expired += 1

    def _take_forward(self, request_id: int, now: float) -> PendingSyn | None:
        if self._fwd_pending:
            self._expire_forwards(now)
        p = self._fwd_pending.get(request_id)
        if p is None or p.rejected:
            return None
        del self._fwd_pending[request_id]
        self._fwd_by_key.pop(p.key, None)
        return p

    @property
    def forward_pending(self) -> int:
        """SYNs held for the forwarder now (silently rejected ones included until they expire)."""
        return len(self._fwd_pending)

    def forward_accept(self, request_id: int, now: float) -> Connection | None:
        """Answer a held SYN as a listener would: a connection in SYN-RECEIVED, its SYN-ACK sent
        now (our ISN, RFC 6528; the options the SYN offered), from the address and port the
        guest asked for.  The caller owns it (a socket's pcb: TcpUserRequests set_upcall, send,
        recv, shutdown, detach ...); its upcall fires when the handshake completes (state()
        has SS_ISCONNECTED) or fails (CLOSED with ECONNREFUSED for the guest's RST, ETIMEDOUT
        when the SYN-ACK retries run out).  None: the request is unknown, expired, rejected,
        or its 4-tuple has a connection already; over tcp_mem[2] the guest gets an RST
        instead (counted forward_refused_mem)."""
        p = self._take_forward(request_id, now)
        if p is None:
            return None
        seg, ip, net6 = p.seg, p.meta, p.net6
        laddr, lport, faddr, fport = ip.dst, seg.dst_port, ip.src, seg.src_port
        key = (laddr, lport, faddr, fport)
        conns = self.conns6 if net6 else self.conns
        if key in conns:
            return None
        if not self.mem.admit():
            self.stats.forward_refused_mem += 1
            self._reset_for(seg, laddr, faddr, p.datalen, now, net6=net6, oif=ip.ifp)
            return None
        child = Connection(self, self.config)
        child.laddr, child.lport, child.faddr, child.fport = laddr, lport, faddr, fport
        if net6:
            child.family = AF_INET6
            self._over_ipv6(child, True)
            child.oif = ip.ifp if needs_scope_id(faddr) else None
            ipv6 = self.ipv6
            hop6 = ipv6.route(faddr, now, child.oif) if ipv6 is not None else errno.ENETUNREACH
            if ipv6 is not None and not isinstance(hop6, int):
                self._use_route(child, hop6.ifp, ipv6.path_mtu(hop6.ifp, faddr, now))
            iss = self.isn(key, now, b"isn6")
        else:
            hop = self.ipv4.route(faddr, src=laddr)
            if not isinstance(hop, int):
                self._use_route(child, hop[0])
            iss = self.isn(key, now)
        conns[key] = child
        self._syn_received(child, seg, iss, self.config.window_scaling, now, net6)
        self.stats.forward_accepted += 1
        child.output(now)
        self.mem.update(child)
        self.schedule(child)
        return child

    def forward_relay(self, request_id: int, host: RelayHost, now: float) -> RelayedFlow | None:
        """Answer a held SYN with a relayed flow (relayed.py: the lean guest side of a
        gateway's connection, its bytes to and from `host`) instead of a Connection: the SYN-ACK
        goes now.  None as forward_accept's, and for a guest no route leads back to (the
        guest's SYN retries ask again)."""
        p = self._take_forward(request_id, now)
        if p is None:
            return None
        seg, ip, net6 = p.seg, p.meta, p.net6
        key = (ip.dst, seg.dst_port, ip.src, seg.src_port)
        if key in (self.conns6 if net6 else self.conns) or key in (self.relays.flows6 if net6 else self.relays.flows):
            return None
        if net6:
            ipv6 = self.ipv6
            oif = ip.ifp if needs_scope_id(ip.src) else None
            hop6 = ipv6.route(ip.src, now, oif) if ipv6 is not None else errno.ENETUNREACH
            if ipv6 is None or isinstance(hop6, int):
                return None
            self.stats.forward_accepted += 1
            return self.relays.open(host, key, seg, self.isn(key, now, b"isn6"), hop6.ifp,
                                    ipv6.path_mtu(hop6.ifp, ip.src, now), now, net6=True, oif=oif)
        ipv4 = self.ipv4
        hop = ipv4.route(ip.src, src=ip.dst)
        if isinstance(hop, int):
            return None
        self.stats.forward_accepted += 1
        # the route just looked up is the flow's dst_cache (_route4 would look it up again)
        dst = self._dst_entry(ipv4.routes.gen + ipv4.ifnet.gen, hop[0], hop[1]) if self.route_cache else None
        return self.relays.open(host, key, seg, self.isn(key, now), hop[0], hop[0].mtu, now, dst_cache=dst)

    def forward_reject(self, request_id: int, how: str, now: float) -> int:
        """Answer a held SYN with a refusal, as the network would: "rst" (the RST a closed port
        sends: ECONNREFUSED for the guest), "net" / "host" / "port" / "admin" (an ICMP or
        ICMPv6 destination unreachable quoting the SYN, through the ICMP core's RFC 1122 /
        RFC 4443 rules and rate limits: ENETUNREACH, EHOSTUNREACH, ECONNREFUSED, EHOSTUNREACH
        or EACCES), or "silent" (nothing: the guest's SYN retries run out; its retransmissions
        stay ignored until the request's lifetime ends).  0, ENOENT for a request unknown,
        expired or already answered, EINVAL for another `how`."""
        if how not in ICMP_UNREACH_CODES and how not in (REJECT_RST, REJECT_SILENT):
            return errno.EINVAL
        if how == REJECT_SILENT:
            if self._fwd_pending:
                self._expire_forwards(now)
            held = self._fwd_pending.get(request_id)
            if held is None or held.rejected:
                return errno.ENOENT
            held.rejected = True
            self.stats.forward_rejected_silent += 1
            return 0
        p = self._take_forward(request_id, now)
        if p is None:
            return errno.ENOENT
        seg, ip = p.seg, p.meta
        if how == REJECT_RST:
            self.stats.forward_rejected_rst += 1
            self._reset_for(seg, ip.dst, ip.src, p.datalen, now, net6=p.net6, oif=ip.ifp)
            return 0
        self.stats.forward_rejected_icmp += 1
        if p.net6:
            if self.ipv6 is not None:
                self.ipv6.icmp_error(ICMP6_DEST_UNREACH, ICMP6_UNREACH_CODES[how], 0, p.quote, ip.ifp, now)
            return 0
        if not isinstance(ip, IpMeta):
            return 0
        # the quote starts at the SYN's IP header: the ICMP core reads the addresses from `meta`
        meta = IpMeta(ip.src, ip.dst, IPPROTO_TCP, ip.ttl, ip.tos, ip.hdr_len, ip.ifp, 0)
        self.ipv4.send_icmp_error(DEST_UNREACH, ICMP_UNREACH_CODES[how], PacketBuffer(p.quote), meta, now, 0)
        return 0

    def _passive_iss(self, seg: TcpRepr, ip: IpMeta | Ip6Meta, now: float, net6: bool = False) -> int:
        """With SYN cookies on, a SYN-ACK's ISN is the cookie, whether a child was made or
        not (as FreeBSD's syncache): when a burst answers one SYN with a cookie and its
        retransmission with a child, the peer's ACK of either fits both -- with an RFC 6528
        ISN it met the child with the wrong ACK number and was reset.  While cookies are in
        use, a child lost (SYN-ACK retries spent) is rebuilt from the ACK's cookie.  The
        cookie is a keyed hash of the 4-tuple and the peer's ISN: unpredictable off path,
        as RFC 6528 wants."""
        key = (ip.dst, seg.dst_port, ip.src, seg.src_port)
        if not self.config.syncookies:
            return self.isn(key, now, b"isn6" if net6 else b"isn")
        return self.cookies.make(*key, seg.seq, seg.mss or 536, now, v6=net6)[0]

    def _child(self, lst: Connection, ip: IpMeta | Ip6Meta, lport: int, fport: int, now: float,
               net6: bool = False) -> Connection:
        """A connection for a SYN (or a cookie's ACK) to `lst`.  It runs over the network the
        SYN came by -- over IPv4 from a dual-stack AF_INET6 listener, whose sockaddrs then
        show the peer v4-mapped -- and a link-local peer binds it to the interface it came in
        by (Linux: sk_bound_dev_if = the SYN's iif)."""
        laddr, faddr = shared_int(ip.dst), ip.src          # (one of our few addresses: its one int object)
        child = Connection(self, self.config)
        child.laddr, child.lport, child.faddr, child.fport = laddr, lport, faddr, fport
        child.parent = lst
        child.owned = False
        self._hold_port(child, lport)                    # Linux __inet_inherit_port
        # Linux clones the listener (sk_clone_lock): its options, SO_REUSEADDR/SO_REUSEPORT too --
        # so a new listener with SO_REUSEADDR may bind the port an accepted one holds (issue 14, 11)
        for name in ("nodelay", "keepalive", "keepidle", "keepintvl", "keepcnt", "ttl", "tos", "reuseaddr", "family",
                     "hop_limit", "tclass", "notsent_lowat"):
            setattr(child, name, getattr(lst, name))
        child.rare = lst.rare.inherited()                # the rest (tcb.py RARE_INHERITED)
        child.inherit_buffers(lst)
        child.set_congestion(lst.cc.name)
        if lst.urg is not None and lst.urg.inline:
            child.urgent().inline = True                 # SO_OOBINLINE, cloned as the rest
        if net6:
            self._over_ipv6(child, True)
            child.oif = ip.ifp if needs_scope_id(faddr) else lst.oif
            ipv6 = self.ipv6
            hop6 = ipv6.route(faddr, now, child.oif) if ipv6 is not None else errno.ENETUNREACH
            if ipv6 is not None and not isinstance(hop6, int):
                self._use_route(child, hop6.ifp, ipv6.path_mtu(hop6.ifp, faddr, now))
            self.conns6[(laddr, lport, faddr, fport)] = child
            return child
        if lst.net6:
            self._over_ipv6(child, False)                # a dual-stack listener's IPv4 child
        hop = self.ipv4.route(faddr, src=laddr)
        if not isinstance(hop, int):
            self._use_route(child, hop[0])
        # the SYN (or the cookie's ACK) came the whole way in by this interface, its source
        # checked there: the handshake's next segment may take the early way (early_input)
        child.rx_ifp = ip.ifp
        self.conns[(laddr, lport, faddr, fport)] = child
        return child

    def _recent_overflow(self, lst: Connection, now: float) -> bool:
        """Cookies are checked only while the listener has recently sent some: an ACK
        that matches no connection otherwise gets its RST at once, and neither a late
        duplicate of a finished handshake nor a guess can open a connection (all our
        SYN-ACK ISNs are cookies)."""
        at = self._overflowed_at.get(lst)
        return at is not None and now - at <= SYNCOOKIE_VALID

    def _send_cookie(self, lst: Connection, seg: TcpRepr, ip: IpMeta | Ip6Meta, now: float,
                     net6: bool = False) -> None:
        self._overflowed_at[lst] = now
        isn, mss = self.cookies.make(ip.dst, seg.dst_port, ip.src, seg.src_port, seg.seq,
                                     seg.mss or 536, now, v6=net6)
        if net6:
            oif = ip.ifp if needs_scope_id(ip.src) else None
            hop6 = self.ipv6.route(ip.src, now, oif) if self.ipv6 is not None else errno.ENETUNREACH
            our_mss = self.ipv6.path_mtu(hop6.ifp, ip.src, now) - IP6_TCP_HDR \
                if self.ipv6 is not None and not isinstance(hop6, int) else 1220
        else:
            hop = self.ipv4.route(ip.src, src=ip.dst)
            our_mss = hop[0].mtu - IP_TCP_HDR if not isinstance(hop, int) else 536
        if lst.user_mss:
            our_mss = min(our_mss, lst.user_mss)
        reply = TcpRepr(seg.dst_port, seg.src_port, isn, sq.add(seg.seq, 1), SYN | ACK,
                        initial_window(lst.rcv.capacity, min(mss, our_mss)), mss=min(mss, our_mss))
        self.stats.syncookies_sent += 1
        self._send_raw(reply, reply.options_bytes(), ip.dst, ip.src, now, net6=net6, oif=ip.ifp)

    def _cookie_child(self, lst: Connection, seg: TcpRepr, ip: IpMeta | Ip6Meta, mss: int, payload: memoryview,
                      now: float, net6: bool = False) -> None:
        child = self._child(lst, ip, seg.dst_port, seg.src_port, now, net6)
        child.cookie = True
        child.state = State.SYN_RECEIVED
        child.iss = sq.add(seg.ack, -1)
        child.snd_una, child.snd_nxt = child.iss, seg.ack
        child.snd_max = seg.ack
        child.irs = sq.add(seg.seq, -1)
        child.rcv_nxt = child.rcv_adv = child.last_ack_sent = seg.seq
        child.peer_mss = mss
        child.want_wscale = False
        if child.config.mtu_probing:
            mtuprobe_conn.start(child, active=False)   # (mtuprobe.py; Linux tcp_init_transfer)
        child._update_mss()
        child.last_rcv = now
        child._advertise(now, syn=True)
        lst.syn_count += 1
        child.input(seg, payload, now)
        self.mem.update(child)
        self.schedule(child)

    def _reset_for(self, seg: TcpRepr, src: int, dst: int, datalen: int, now: float, *, net6: bool = False,
                   oif: Interface | None = None) -> None:
        """RFC 9293 §3.10.7.1: the reply to a segment no connection owns (never to an RST)."""
        if seg.flags & RST:
            return
        if seg.flags & ACK:
            reply = TcpRepr(seg.dst_port, seg.src_port, seg.ack, 0, RST, 0)
        else:
            seglen = datalen + (1 if seg.flags & SYN else 0) + (1 if seg.flags & FIN else 0)
            reply = TcpRepr(seg.dst_port, seg.src_port, 0, sq.add(seg.seq, seglen), RST | ACK, 0)
        self.stats.out_rsts += 1
        self._send_raw(reply, b"", src, dst, now, net6=net6, oif=oif)

    def reset_reply(self, conn: Connection, seg: TcpRepr, datalen: int, now: float) -> None:
        self._reset_for(seg, conn.laddr, conn.faddr, datalen, now, net6=conn.net6, oif=conn.oif)

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

    @staticmethod
    def _segment6(seg: TcpRepr, opts: bytes, payload: memoryview | None, src: int, dst: int,
                  offload: bool) -> PacketBuffer:
        """_segment over the IPv6 pseudo-header (RFC 8200 §8.1), its own copy so the IPv4
        path pays no family test for it."""
        pkt = PacketBuffer.from_payload(payload) if payload is not None else PacketBuffer.allocate(0)
        hdr = pkt.prepend(20 + len(opts))
        seg.emit(hdr, opts)
        pseudo = pseudo_header_sum6(src, dst, IPPROTO_TCP, len(pkt))
        if offload:
            struct.pack_into("!H", hdr, 16, pseudo)
            pkt.csum_start, pkt.csum_offset = pkt.start, 16
        else:
            struct.pack_into("!H", hdr, 16, ck.checksum(pkt.view(), pseudo))
        return pkt

    def emit(self, conn: Connection, seg: TcpRepr, opts: bytes, payload: memoryview | None, gso: int,
             now: float) -> int:
        if conn.net6:
            return self._emit6(conn, seg, opts, payload, gso, now)   # the one family test per segment
        if self.route_cache:
            err = self._emit4_cached(conn, seg, opts, payload, gso, now)
            if err is not None:
                return err
        pkt = self._segment(seg, opts, payload, conn.laddr, conn.faddr, conn.csum_offload or gso > 0)
        if gso:
            pkt.gso_size, pkt.gso_type = gso, GSO_TCPV4
            self.stats.out_segs += -(-len(payload) // gso) if payload is not None else 1   # Linux: tcp_skb_pcount
        else:
            self.stats.out_segs += 1
        err = self.ipv4.output(pkt, conn.laddr, conn.faddr, IPPROTO_TCP, now, ttl=conn.ttl, tos=conn.tos,
                               df=True)
        if err:
            self.stats.out_errors += 1
        return err

    def _emit4_cached(self, conn: Connection | RelayedFlow, seg: TcpRepr, opts: bytes, payload: memoryview | None,
                      gso: int, now: float) -> int | None:
        """emit() over the connection's cached route (Linux sk_dst_cache, tcp_transmit_skb ->
        ip_queue_xmit): both headers in one pack, then the interface -- what _segment and
        Ipv4.output do for it, byte for byte and counter for counter.  The route is looked
        up again when the routing table or the interfaces changed since (their generation
        counters).  None (nothing done) when Ipv4.output must decide instead: no route, the
        interface down, a datagram beyond its MTU (fragments, EMSGSIZE), or a TTL/TOS it
        would refuse."""
        hlen = 20 + len(opts)
        tcp_len = hlen + (len(payload) if payload is not None else 0)
        route = self._route4(conn, 20 + tcp_len, gso)
        if route is None:
            return None
        ifp, nexthop, ttl = route
        ipv4, tos, total = self.ipv4, conn.tos, 20 + tcp_len
        src, dst = conn.laddr, conn.faddr
        ipv4.stats.out_requests += 1
        ident = ipv4.next_ident(src, dst, IPPROTO_TCP, tcp_len // gso + 1 if gso else 1)
        df = FLAG_DF if ipv4.pmtu.dont_fragment(dst, now) else 0
        pkt = PacketBuffer.from_payload(payload) if payload is not None else PacketBuffer.allocate(0)
        hdr = pkt.prepend(20 + hlen)
        _IP_TCP.pack_into(hdr, 0, 0x45, tos, total, ident, df, ttl, IPPROTO_TCP, 0, src, dst,
                          seg.src_port, seg.dst_port, seg.seq, seg.ack, (hlen << 10) | seg.flags, seg.window, 0,
                          seg.urgent)
        if opts:
            hdr[40:] = opts
        residue = int.from_bytes(hdr[:20], "big") % 0xFFFF   # RFC 1071, as ndd/checksum.py
        struct.pack_into("!H", hdr, 10, 0xFFFF - residue if residue else 0)
        pseudo = ck.pseudo_header_sum(src, dst, IPPROTO_TCP, tcp_len)
        if conn.csum_offload or gso:
            struct.pack_into("!H", hdr, 36, pseudo)
            pkt.csum_start, pkt.csum_offset = pkt.start + 20, 16
        else:
            struct.pack_into("!H", hdr, 36, ck.checksum(pkt.view()[20:], pseudo))
        if gso:
            pkt.gso_size, pkt.gso_type = gso, GSO_TCPV4
            self.stats.out_segs += -(-(tcp_len - hlen) // gso) if payload is not None else 1
        else:
            self.stats.out_segs += 1
        return self._transmit4(ifp, pkt, nexthop, now)

    def _dst_entry(self, gen: int, ifp: Interface, nexthop: int) -> tuple[int, Interface, int]:
        """A connection's dst_cache entry for a route looked up at generation `gen`: one
        tuple shared by the connections it serves (at most DST_SHARED_MAX kept)."""
        cached = (gen, ifp, nexthop)
        dsts = self._dsts
        if self._dsts_gen != gen:
            dsts.clear()
            self._dsts_gen = gen
        if len(dsts) < DST_SHARED_MAX:
            cached = dsts.setdefault(cached, cached)
        return cached

    def _route4(self, conn: Connection | RelayedFlow, total: int, gso: int) -> tuple[Interface, int, int] | None:
        """The cached IPv4 way's checks: the connection's route (Linux sk_dst_cache), looked up
        again when the routing table or the interfaces changed since (their generation
        counters), and the TTL to send with -- (interface, next hop, TTL); None where
        Ipv4.output must decide instead: no route, the interface down, a datagram of `total`
        octets beyond its MTU (a GSO one beyond 64 KiB), a TTL/TOS it would refuse."""
        ipv4 = self.ipv4
        gen = ipv4.routes.gen + ipv4.ifnet.gen
        cached = conn.dst_cache
        if cached is None or cached[0] != gen:
            hop = ipv4.route(conn.faddr, None, conn.laddr)
            if isinstance(hop, int):
                conn.dst_cache = None
                return None
            cached = conn.dst_cache = self._dst_entry(gen, hop[0], hop[1])
        ifp = cached[1]
        ttl, tos = conn.ttl, conn.tos
        if ttl is None or ttl == 0:
            ttl = ipv4.default_ttl                   # (RFC 1122 §3.2.1.7: never TTL 0)
        if not ifp.is_up or not 0 < ttl <= 255 or not 0 <= tos <= 255 or not conn.laddr \
                or (total > 0xFFFF if gso else total > ifp.mtu):
            return None
        return ifp, cached[2], ttl

    def _transmit4(self, ifp: Interface, pkt: PacketBuffer, nexthop: int, now: float) -> int:
        """The last step of the cached IPv4 way: the interface, and what IPv4 and TCP count
        when it refuses the packet (as Ipv4.output would)."""
        err = ifp.transmit(pkt, nexthop, now)
        if err:
            self.ipv4.stats.out_discards += 1
            self.stats.out_errors += 1
        return err

    def emit_relayed(self, flow: RelayedFlow, seg: TcpRepr, opts: bytes, payload: memoryview | None, gso: int,
                     now: float) -> None:
        """A relayed flow's segment (relayed.py): the cached IPv4 way, or the IPv6 output.  A
        failure (no route to the guest now, the device full) is counted; its timer resends."""
        if flow.net6:
            self._emit6(flow, seg, opts, payload, gso, now)
        elif self._emit4_cached(flow, seg, opts, payload, gso, now) is None:
            self.stats.out_errors += 1

    def emit_ack(self, conn: Connection | RelayedFlow, seqno: int, window: int, opts: bytes, now: float) -> int | None:
        """A pure ACK -- flags ACK alone, no text, no urgent pointer, `opts` its options --
        over the connection's cached IPv4 route (emit_plain4; about one segment in two a
        receiver sends on a lossy path is one).  None (nothing done, nothing counted) where
        the caller takes the general way."""
        return self.emit_plain4(conn, seqno, conn.rcv_nxt, ACK, window, opts, None, now)

    def emit_plain4(self, conn: Connection | RelayedFlow, seqno: int, ackno: int, flags: int, window: int,
                    opts: bytes, payload: memoryview | None, now: float) -> int | None:
        """A plain segment -- no urgent pointer, not a super-segment -- over the connection's
        cached IPv4 route: what _emit4_cached sends for it, octet for octet and counter for
        counter, with no TcpRepr.  The frame is built whole: when the link has the header
        ready (contracts.LinkOutput.cached_header: a REACHABLE ARP entry, a TUN) the link
        header, IPv4 and TCP headers in one buffer and the payload beside it, written by the
        NDD's ndd_output_gather (a relayed round trip's answer is one such write); else, for
        a pure ACK, one fresh PacketBuffer through the interface.  None (nothing done, nothing
        counted) wherever _emit4_cached would not go straight through -- IPv6, the route
        cache off, no route, the interface down, a TTL/TOS IPv4 would refuse (_route4) -- and
        for text where the link has no header ready: the caller takes the general way."""
        if not self.route_cache or conn.net6:
            return None
        olen = len(opts)
        tcp_len = 20 + olen + (len(payload) if payload is not None else 0)
        route = self._route4(conn, 20 + tcp_len, 0)
        if route is None:
            return None
        ifp, nexthop, ttl = route
        link = ifp.link
        hh = link.cached_header(nexthop) if link is not None else None
        if hh is None and payload is not None:
            return None
        ipv4, tos = self.ipv4, conn.tos
        src, dst = conn.laddr, conn.faddr
        ipv4.stats.out_requests += 1
        ident = ipv4.next_ident(src, dst, IPPROTO_TCP, 1)
        df = FLAG_DF if ipv4.pmtu.dont_fragment(dst, now) else 0
        h = DEFAULT_HEADROOM if hh is None else len(hh)
        buf = bytearray(h + 40 + olen)
        if hh:
            buf[:h] = hh
        _IP_TCP.pack_into(buf, h, 0x45, tos, 20 + tcp_len, ident, df, ttl, IPPROTO_TCP, 0, src, dst,
                          conn.lport, conn.fport, seqno, ackno, ((20 + olen) << 10) | flags, window, 0, 0)
        if olen:
            buf[h + 40:] = opts
        # RFC 1071 as ndd/checksum.py: the sum is the header read as one integer modulo 0xFFFF;
        # the pseudo-header's addresses go in whole (2**16 == 1 modulo 0xFFFF)
        residue = int.from_bytes(buf[h:h + 20], "big") % 0xFFFF
        _U16.pack_into(buf, h + 10, 0xFFFF - residue if residue else 0)
        csum_start = _tcp_checksum(buf, h + 20, ck.pseudo_header_sum(src, dst, IPPROTO_TCP, tcp_len), payload,
                                   conn.csum_offload)
        self.stats.out_segs += 1
        if hh is None:
            pkt = PacketBuffer(buf, h)
            if csum_start >= 0:
                pkt.csum_start, pkt.csum_offset = csum_start, 16
            return self._transmit4(ifp, pkt, nexthop, now)
        err = ifp.ndd.ndd_output_gather(buf, payload, csum_start, 16)
        if err:
            ipv4.stats.out_discards += 1
            self.stats.out_errors += 1
        return err

    def emit_plain6(self, conn: Connection | RelayedFlow, seqno: int, ackno: int, flags: int, window: int,
                    opts: bytes, payload: memoryview | None, now: float) -> int | None:
        """emit_plain4 over IPv6: a plain segment built whole -- the link's cached header
        (ND's entry REACHABLE), the IPv6 and TCP headers in one buffer, the payload beside it
        -- and written by ndd_output_gather: what _emit6 and Ipv6.output send for it, octet
        for octet and counter for counter.  None (nothing done, nothing counted) wherever
        they would decide otherwise -- no route, the interface down, a multicast
        destination, a hop limit or traffic class out of range, a packet beyond the path
        MTU -- or the link has no header ready: the caller takes the general way."""
        ipv6 = self.ipv6
        if ipv6 is None or not conn.net6:
            return None
        src, dst = conn.laddr, conn.faddr
        hop = ipv6.route(dst, now, conn.oif)
        if isinstance(hop, int) or not src or a6.is_multicast(dst):
            return None
        ifp, nexthop = hop.ifp, hop.nexthop
        hop_limit = conn.hop_limit if conn.hop_limit is not None else ipv6.default_hop_limit
        tclass, olen = conn.tclass, len(opts)
        tcp_len = 20 + olen + (len(payload) if payload is not None else 0)
        link = ifp.link
        if not ifp.is_up or link is None or not 0 <= hop_limit <= 255 or not 0 <= tclass <= 255 \
                or IP6_HDR_LEN + tcp_len > ipv6.path_mtu(ifp, dst, now):
            return None
        hh = link.cached_header6(nexthop, src, now)
        if hh is None:
            return None
        ipv6.stats.out_requests += 1
        h = len(hh)
        buf = bytearray(h + 60 + olen)
        buf[:h] = hh
        _IP6_TCP.pack_into(buf, h, 0x60000000 | tclass << 20, tcp_len, IPPROTO_TCP, hop_limit,
                           src.to_bytes(16, "big"), dst.to_bytes(16, "big"), conn.lport, conn.fport, seqno, ackno,
                           ((20 + olen) << 10) | flags, window, 0, 0)
        if olen:
            buf[h + 60:] = opts
        csum_start = _tcp_checksum(buf, h + 40, pseudo_header_sum6(src, dst, IPPROTO_TCP, tcp_len), payload,
                                   conn.csum_offload)
        self.stats.out_segs += 1
        err = ifp.ndd.ndd_output_gather(buf, payload, csum_start, 16)
        if err:
            ipv6.stats.out_discards += 1
            self.stats.out_errors += 1
        return err

    def _emit6(self, conn: Connection | RelayedFlow, seg: TcpRepr, opts: bytes, payload: memoryview | None, gso: int,
               now: float) -> int:
        """emit() over IPv6: TSO super-segments marked GSO_TCPV6 (virtio_net_hdr), the
        socket's hop limit and traffic class, its scope's interface; never fragmented
        (Linux ip6_xmit: a TCP segment above the path MTU is EMSGSIZE, the MSS follows the
        path MTU instead)."""
        pkt = self._segment6(seg, opts, payload, conn.laddr, conn.faddr, conn.csum_offload or gso > 0)
        if gso:
            pkt.gso_size, pkt.gso_type = gso, GSO_TCPV6
            self.stats.out_segs += -(-len(payload) // gso) if payload is not None else 1
        else:
            self.stats.out_segs += 1
        ipv6 = self.ipv6
        err = ipv6.output(pkt, conn.laddr, conn.faddr, IPPROTO_TCP, now, hop_limit=conn.hop_limit,
                          tclass=conn.tclass, oif=conn.oif, dontfrag=True) if ipv6 is not None else errno.ENETUNREACH
        if err:
            self.stats.out_errors += 1
        return err

    def _send_raw(self, seg: TcpRepr, opts: bytes, src: int, dst: int, now: float, *, net6: bool = False,
                  oif: Interface | None = None) -> None:
        """A segment no connection owns (RSTs, cookie SYN-ACKs): always a full checksum.
        Over IPv6 to a link-local peer it leaves by the interface the segment came in by."""
        self.stats.out_segs += 1
        if not net6:
            self.ipv4.output(self._segment(seg, opts, None, src, dst, offload=False), src, dst, IPPROTO_TCP, now)
        elif self.ipv6 is not None:
            self.ipv6.output(self._segment6(seg, opts, None, src, dst, offload=False), src, dst, IPPROTO_TCP, now,
                             oif=oif if needs_scope_id(dst) else None)

    # --- ICMP errors (pr_ctlinput) ----------------------------------------------------------------
    def _quoted_connection(self, table: dict[tuple[int, int, int, int], Connection], src: int, dst: int,
                           quote: bytes) -> Connection | None:
        """The connection an ICMP(v6) error quotes, if the quote names one of ours and a
        sequence number in flight, [SND.UNA, SND.MAX] (RFC 5927 §4.1, §5: a blind attacker
        must guess both the 4-tuple and the window); else None, counted."""
        if len(quote) < 8:                               # ICMP guarantees 8 octets; be safe
            self.stats.icmp_no_conn += 1
            return None
        sport, dport, seqno = struct.unpack_from("!HHI", quote, 0)
        conn = table.get((src, sport, dst, dport))
        if conn is None:
            self.stats.icmp_no_conn += 1
            return None
        if not (sq.le(conn.snd_una, seqno) and sq.le(seqno, conn.snd_max)):
            self.stats.out_of_window_icmps += 1
            return None
        if conn.state == State.TIME_WAIT:
            self.stats.icmp_ignored += 1                 # Linux: nothing left to tell or resize
            return None
        return conn

    def ctlinput(self, err: IcmpError, now: float) -> None:
        """An ICMP error about one of our segments.  Acted on only if it names a connection of
        ours and quotes a sequence number in flight, [SND.UNA, SND.MAX] (RFC 5927 §4.1, §5;
        Linux tcp_v4_err): a blind attacker must guess both the 4-tuple and the window."""
        conn = self._quoted_connection(self.conns, err.src, err.dst, err.payload)
        if conn is None:
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

    def ctlinput6(self, err: Icmpv6Error, now: float) -> None:
        """An ICMPv6 error about one of our segments (Linux tcp_v6_err), under the same
        validation as IPv4's: a connection of ours and a quoted sequence in flight (RFC 5927).
        A Packet Too Big finds ipv6.pmtu already lowered by the ICMPv6 core (RFC 8201): the
        MSS follows and what is in flight is resent.  Any other error ends a connect in
        SYN-SENT at once, as tcp_v6_err does whatever icmpv6_err_convert's `fatal`; later ones
        are reported at once with IPV6_RECVERR, else kept as the soft error a timeout reports."""
        conn = self._quoted_connection(self.conns6, err.src, err.dst, err.payload)
        if conn is None:
            return
        if err.type == PACKET_TOO_BIG:
            # Linux ip6_sk_accept_pmtu: IPV6_PMTUDISC_INTERFACE / _OMIT sockets ignore them
            if conn.pmtudisc < IPV6_PMTUDISC_INTERFACE:
                self._mss_follows_pmtu(conn, now)
            return
        if not err.errno:
            return
        if conn.state == State.SYN_SENT:
            self.stats.attempt_fails += 1
            conn.drop(err.errno)
        elif conn.recverr6:
            conn.so_error = err.errno                    # IPV6_RECVERR: reported at once
            conn.on_event()
        else:
            conn.soft_error = err.errno

    def _mtu_reduced(self, conn: Connection, mtu: int, now: float) -> None:
        """RFC 1191 (Linux tcp_v4_mtu_reduced): the route cache takes the new path MTU -- floored
        at min_pmtu, ignored unless lower, expiring (protocols/pmtu.py) -- and a connection whose
        MSS shrank resends what is in flight at the new size (Linux tcp_simple_retransmit)."""
        ifp = conn.ifp
        if ifp is None or not self.ipv4.pmtu.update(conn.faddr, mtu, ifp.mtu, now):
            return
        self._mss_follows_pmtu(conn, now)

    def _mss_follows_pmtu(self, conn: Connection, now: float) -> None:
        """The path MTU fell: a connection whose MSS shrank resends what is in flight at the
        new size (Linux tcp_simple_retransmit)."""
        old_mss = conn.mss
        conn.sync_pmtu(now)
        if conn.mss < old_mss:
            self.stats.pmtu_reductions += 1
            if conn.state not in (State.SYN_SENT, State.SYN_RECEIVED):
                conn.snd_nxt = conn.snd_una
                conn.output(now)
            self.schedule(conn)
