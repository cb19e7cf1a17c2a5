"""IPv4 (RFC 791, host requirements RFC 1122 §3.2.1): header view/repr, input, output.

Input validates once (version, IHL, total length, header checksum, source), then
reassembles fragments and dispatches on the protocol switch.  Output picks the route,
the source address and an ID (RFC 6864), fragments above the link MTU and hands the
packet to the interface's link layer.  Nothing here raises on bad input: every drop
is counted in `Ipv4Stats`.
"""
from __future__ import annotations

import errno
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ndd.checksum import checksum, ones_sum
from ndd.counters import Counters
from ndd.pktbuf import PacketBuffer

from .addr import BROADCAST, is_martian_source, is_multicast
from .ipfrag import Reassembler, fragment_sizes
from .pmtu import MIN_PMTU_IPV4, MTU_EXPIRES, PmtuCache

if TYPE_CHECKING:
    from .contracts import ProtocolSwitch
    from .ifnet import Interface, InterfaceTable
    from .route import RoutingTable

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17

HDR_LEN = 20
DEFAULT_TTL = 64
FLAG_DF = 0x4000
FLAG_MF = 0x2000
OFFSET_MASK = 0x1FFF

_HDR = struct.Struct("!BBHHHBBHII")


@dataclass(slots=True)
class Ipv4Repr:
    """The fields of an IPv4 header we act on.  Options are carried opaquely."""
    src: int
    dst: int
    proto: int
    total_len: int
    ttl: int = DEFAULT_TTL
    tos: int = 0
    ident: int = 0
    flags_frag: int = 0     # DF / MF bits and the 13-bit offset in 8-octet units
    hdr_len: int = HDR_LEN

    @property
    def df(self) -> bool:
        return bool(self.flags_frag & FLAG_DF)

    @property
    def mf(self) -> bool:
        return bool(self.flags_frag & FLAG_MF)

    @property
    def frag_offset(self) -> int:
        return (self.flags_frag & OFFSET_MASK) * 8

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, *, verify_checksum: bool = True) -> Ipv4Repr | str:
        """A repr, or the name of the counter to bump (a reason string) when malformed."""
        n = len(data)
        if n < HDR_LEN:
            return "in_truncated"
        vihl, tos, total, ident, ff, ttl, proto, _csum, src, dst = _HDR.unpack_from(data, 0)
        if vihl >> 4 != 4:
            return "in_hdr_errors"
        ihl = (vihl & 0xF) * 4
        if ihl < HDR_LEN:
            return "in_hdr_errors"
        if ihl > n or total > n:
            return "in_truncated"
        if total < ihl:
            return "in_hdr_errors"
        if verify_checksum and ones_sum(data[:ihl]) != 0xFFFF:
            return "in_csum_errors"
        return cls(src, dst, proto, total, ttl, tos, ident, ff, ihl)

    def emit(self, into: memoryview | bytearray) -> None:
        """Write a 20-octet header (no options) with its checksum into `into[0:20]`."""
        _HDR.pack_into(into, 0, 0x45, self.tos, self.total_len, self.ident, self.flags_frag,
                       self.ttl, self.proto, 0, self.src, self.dst)
        struct.pack_into("!H", into, 10, checksum(into[:HDR_LEN]))


@dataclass(slots=True)
class IpMeta:
    """What a transport learns about the datagram it receives (BSD: the ip header it is given)."""
    src: int
    dst: int
    proto: int
    ttl: int
    tos: int
    hdr_len: int
    ifp: Interface | None
    hdr_start: int          # absolute index of the IP header in pkt.buf (for ICMP errors)
    bcast: bool = False     # sent to a broadcast or multicast address

    def original(self, pkt: PacketBuffer, extra: int = 8) -> bytes:
        """The offending datagram's header + `extra` payload octets, for an ICMP error."""
        return bytes(memoryview(pkt.buf)[self.hdr_start:min(pkt.end, pkt.start + extra)])


@dataclass
class Ipv4Stats(Counters):
    """RFC 4293 ipSystemStats names, lower-cased."""
    in_receives: int = 0
    in_hdr_errors: int = 0
    in_csum_errors: int = 0
    in_truncated: int = 0
    in_martians: int = 0
    in_addr_errors: int = 0
    in_unknown_protos: int = 0
    in_discards: int = 0
    in_delivers: int = 0
    out_requests: int = 0
    out_no_routes: int = 0
    out_discards: int = 0
    frag_oks: int = 0
    frag_fails: int = 0
    frag_creates: int = 0



def is_foreign_unicast(dst: int) -> bool:
    """A unicast destination a transparent interface takes for the host although it is not
    one of its addresses: not 0/8, loopback, multicast or class E (RFC 1122 §3.2.1.3, RFC 5735).
    The interface's broadcast addresses were handled before (Ipv4.input)."""
    top = dst >> 24
    return 0 < top < 224 and top != 127


class Ipv4:
    def __init__(self, ifnet: InterfaceTable, routes: RoutingTable, protosw: ProtocolSwitch,
                 *, rng: random.Random | None = None, reasm_timeout: float = 30.0,
                 reasm_max_bytes: int = 4 << 20, default_ttl: int = DEFAULT_TTL,
                 min_pmtu: int = MIN_PMTU_IPV4, mtu_expires: float = MTU_EXPIRES) -> None:
        self.ifnet = ifnet
        self.routes = routes
        self.protosw = protosw
        self.stats = Ipv4Stats()
        self.default_ttl = default_ttl
        self.reasm = Reassembler(reasm_timeout, reasm_max_bytes)
        # the route cache's path MTUs (Linux fnhe): written by transports after they validated
        # an ICMP "fragmentation needed", floored at min_pmtu, expiring (protocols/pmtu.py)
        self.pmtu = PmtuCache(min_pmtu, mtu_expires)
        self.loopback: Interface | None = None
        rng = rng or random.SystemRandom()
        # RFC 6864 §4 / RFC 7739: per-(src, dst, proto) counters hashed into buckets with a
        # secret salt, each starting at a random value -- unique per flow, not predictable.
        self._salt = rng.getrandbits(64)
        self._idents = [rng.getrandbits(16) for _ in range(2048)]
        # ICMP plugs in here to answer/report; defaults keep the core usable alone
        self.send_icmp_error: Callable[[int, int, PacketBuffer, IpMeta, float, int], None] = \
            lambda type_, code, pkt, meta, now, extra: None
        self.local_error: Callable[[int, int, bytes, float], None] = lambda type_, code, original, now: None

    # --- identification ------------------------------------------------------
    def next_ident(self, src: int, dst: int, proto: int, count: int = 1) -> int:
        """The first of `count` idents: a super-segment's pieces take one each (the device
        or ndd/gso.py counts up from this one; Linux ip_select_ident_segs)."""
        b = hash((self._salt, src, dst, proto)) & 2047
        ident = self._idents[b]
        self._idents[b] = (ident + count) & 0xFFFF
        return ident

    # --- input ----------------------------------------------------------------
    def input(self, ifp: Interface, pkt: PacketBuffer, now: float) -> None:
        self.stats.in_receives += 1
        view = pkt.view()
        repr_ = Ipv4Repr.parse(view)
        if isinstance(repr_, str):
            self.stats.bump(repr_)
            return
        ip = repr_
        if ip.total_len < len(pkt):
            pkt.trim(ip.total_len)   # link-layer padding (Ethernet minimum frame)
        if self.martian_source(ifp, ip.src):
            self.stats.in_martians += 1
            return
        dst = ip.dst
        bcast = False
        if dst >> 24 == 127 and ifp is not self.loopback:
            # a martian destination (RFC 1122 §3.2.1.3: 127/8 never appears outside a host;
            # Linux ip_route_input_slow without route_localnet) -- our 127.0.0.1 is not for the wire
            self.stats.in_addr_errors += 1
            return
        if not self.ifnet.is_local(dst):
            if ifp.is_broadcast(dst) or (is_multicast(dst) and self._joined(ifp, dst)):
                bcast = True
            elif ifp is self.loopback and dst >> 24 == 127:
                pass
            elif ifp.transparent and is_foreign_unicast(dst):
                pass                             # a gateway's interface: every unicast address is ours
            else:
                self.stats.in_addr_errors += 1   # we are a host: no forwarding (RFC 1122 §3.3.1)
                return
        hdr_start = pkt.start
        if ip.flags_frag & (FLAG_MF | OFFSET_MASK):
            whole = self.reasm.add((ip.src, ip.dst, ip.proto, ip.ident), bytes(view[:ip.hdr_len]),
                                   ip.frag_offset, bytes(view[ip.hdr_len:ip.total_len]), ip.mf, now)
            if whole is None:
                return
            header, payload = whole
            pkt = PacketBuffer(header + payload)
            hdr_start = 0
            ip.total_len = len(pkt)
            ip.hdr_len = len(header)   # fragment zero's header: later ones may lack its options (RFC 791 §3.2)
            ip.tos = header[1]         # with the fragments' ECN field combined (ipfrag.py, RFC 3168 §5.3)
        pr = self.protosw.ip_protox.get(ip.proto)
        meta = IpMeta(ip.src, ip.dst, ip.proto, ip.ttl, ip.tos, ip.hdr_len, ifp, hdr_start, bcast)
        if pr is None or pr.input is None:
            self.stats.in_unknown_protos += 1
            self.send_icmp_error(3, 2, pkt, meta, now, 0)   # protocol unreachable (RFC 1122 §3.2.2.1)
            return
        pkt.pull(ip.hdr_len)
        self.stats.in_delivers += 1
        pr.input(pkt, meta, now)

    def martian_source(self, ifp: Interface, src: int) -> bool:
        """A source no datagram arriving by `ifp` may have: RFC 1122 §3.2.1.3's, and (Linux
        fib_validate_source, accept_local 0) one of our own addresses, 127/8 or the
        interface's broadcast off the loopback -- spoofed: the LAND attack (a SYN from
        ourselves to ourselves) starts this way."""
        return is_martian_source(src) or (ifp is not self.loopback and (
            src >> 24 == 127 or self.ifnet.is_local(src) or ifp.is_broadcast(src)))

    def takes_foreign(self, ifp: Interface, src: int, dst: int) -> bool:
        """Would input() take a datagram from `src` to `dst` arriving by `ifp` as a transparent
        interface's unicast to an address not ours (a gateway's guest talking to the world)?
        For a short way (Tcp.relayed_input4's SYN) that must decide as input() does: False
        covers every other case -- a martian source, a destination of ours, 127/8, multicast,
        class E or a broadcast of the interface -- which the short way leaves to input()."""
        return ifp.transparent and ifp is not self.loopback and not self.martian_source(ifp, src) \
            and not self.ifnet.is_local(dst) and is_foreign_unicast(dst) and not ifp.is_broadcast(dst)

    def _joined(self, ifp: Interface, group: int) -> bool:
        return group == 0xE0000001   # all-hosts; IGMP group membership is not implemented yet

    # --- output -----------------------------------------------------------------
    def route(self, dst: int, ifp: Interface | None = None,
              src: int = 0) -> tuple[Interface, int, int | None] | int:
        """(interface, next hop, preferred source) or an errno."""
        if ifp is not None:
            return ifp, dst, ifp.source_for(dst)
        if self.ifnet.is_local(dst) or dst >> 24 == 127:
            if self.loopback is None:
                return errno.ENETUNREACH
            return self.loopback, dst, dst if dst >> 24 != 127 else 0x7F000001
        if dst == BROADCAST:
            # Linux: the limited broadcast leaves by the interface of a bound source address,
            # else by whatever route covers it (a default route) -- no route, ENETUNREACH
            owner = self.ifnet.local_addrs.get(src) if src else None
            if owner is not None and owner is not self.loopback:
                return owner, dst, src
            r = self.routes.lookup(dst)
            return (r.ifp, dst, r.ifp.primary) if r is not None else errno.ENETUNREACH
        r = self.routes.lookup(dst)
        if r is None:
            return errno.ENETUNREACH
        nexthop = r.gateway if r.gateway is not None else dst
        return r.ifp, nexthop, r.source if r.source is not None else r.ifp.source_for(nexthop)

    def transparent_source(self, src: int, dst: int) -> int:
        """May a packet to `dst` leave with the source `src` that is not ours?  0 when `src` is
        one of our addresses or the route to `dst` leaves by a transparent interface (Linux's
        IP_TRANSPARENT: a gateway answers from the remote's address), else EADDRNOTAVAIL; the
        route's errno when there is none."""
        hop = self.route(dst, src=src)
        if isinstance(hop, int):
            return hop
        return 0 if hop[0].transparent or self.ifnet.is_local(src) else errno.EADDRNOTAVAIL

    def output(self, pkt: PacketBuffer, src: int, dst: int, proto: int, now: float, *,
               ttl: int | None = None, tos: int = 0, df: bool = False,
               ifp: Interface | None = None, lladdr: bytes | None = None) -> int:
        """Send one transport payload.  Returns 0 or an errno (ENETUNREACH, EMSGSIZE, ...).
        With `lladdr` (and `ifp`, else EINVAL) the datagram goes to that link-layer address
        unresolved: a DHCP server's reply to a client with no address yet (RFC 2131 §4.1)."""
        self.stats.out_requests += 1
        if lladdr is not None and ifp is None:
            self.stats.out_discards += 1
            return errno.EINVAL
        hop = self.route(dst, ifp, src)
        if isinstance(hop, int):
            self.stats.out_no_routes += 1
            return hop
        out_ifp, nexthop, pref_src = hop
        if not src:
            src = pref_src or 0
        ttl = self.default_ttl if ttl is None else ttl
        if not 0 <= ttl <= 255 or not 0 <= tos <= 255:
            self.stats.out_discards += 1
            return errno.EINVAL
        if ttl == 0:
            ttl = self.default_ttl   # RFC 1122 §3.2.1.7: never send TTL 0
        total = HDR_LEN + len(pkt)
        ident = self.next_ident(src, dst, proto, len(pkt) // pkt.gso_size + 1 if pkt.gso_size else 1)
        if df and not self.pmtu.dont_fragment(dst, now):
            df = False               # path locked at min_pmtu: let routers fragment (Linux ip_dont_fragment)
        flags = FLAG_DF if df else 0
        if total <= out_ifp.mtu or pkt.gso_size:
            if total > 0xFFFF:
                self.stats.out_discards += 1
                return errno.EMSGSIZE
            Ipv4Repr(src, dst, proto, total, ttl, tos, ident, flags).emit(pkt.prepend(HDR_LEN))
            return self._link_out(out_ifp, pkt, nexthop, now, lladdr)
        if df:
            self.stats.frag_fails += 1
            return errno.EMSGSIZE
        return self._fragment(out_ifp, pkt, src, dst, proto, ttl, tos, ident, nexthop, now, lladdr)

    def _fragment(self, ifp: Interface, pkt: PacketBuffer, src: int, dst: int, proto: int, ttl: int,
                  tos: int, ident: int, nexthop: int, now: float, lladdr: bytes | None = None) -> int:
        payload = pkt.view()
        if pkt.csum_start >= 0:
            self.stats.frag_fails += 1   # partial checksums cannot be split; transports avoid this
            return errno.EMSGSIZE
        pieces = fragment_sizes(len(payload), HDR_LEN, ifp.mtu)
        if not pieces or len(payload) + HDR_LEN > 0xFFFF:
            self.stats.frag_fails += 1
            return errno.EMSGSIZE
        err = 0
        for off, length in pieces:
            more = FLAG_MF if off + length < len(payload) else 0
            frag = PacketBuffer.from_payload(payload[off:off + length])
            Ipv4Repr(src, dst, proto, HDR_LEN + length, ttl, tos, ident, more | (off >> 3)).emit(frag.prepend(HDR_LEN))
            self.stats.frag_creates += 1
            err = self._link_out(ifp, frag, nexthop, now, lladdr) or err
        self.stats.frag_oks += 1
        return err

    def _link_out(self, ifp: Interface, pkt: PacketBuffer, nexthop: int, now: float,
                  lladdr: bytes | None = None) -> int:
        err = ifp.transmit(pkt, nexthop, now) if lladdr is None else ifp.transmit_to(pkt, lladdr, now)
        if err:
            self.stats.out_discards += 1
        return err

    def unreachable_from_link(self, pkt: PacketBuffer, now: float) -> None:
        """A queued packet's next hop never answered ARP: report EHOSTUNREACH to its sender
        the way Linux does, as a local ICMP host unreachable (RFC 1122 §3.3.1.4 style)."""
        self.local_error(3, 1, pkt.tobytes()[:576], now)
