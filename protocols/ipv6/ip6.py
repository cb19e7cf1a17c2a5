"""The IPv6 network layer (RFC 8200) of a host, sans-IO: input and output, shaped as Ipv4.

Input validates the fixed header once (`Ipv6Repr.parse`, then Linux ip6_rcv_core's address
rules), accepts only what is addressed to this host on the interface it came in by (no
forwarding: RFC 8200 §3's hop limit is a router's to decrement), walks the extension-header
chain (exthdr.walk_chain), reassembles fragments (frag.Ipv6Reassembler, owned here and
exposed as `reasm` for the timer service) and dispatches on the upper-layer protocol through
the protocol switch's `ip6_protox` with an `Ip6Meta`.  Output chooses the route and, when the
caller left it unspecified, the source address (RFC 6724), prepends the fixed header into the
buffer's headroom and fragments at the source above the path MTU (RFC 8200 §4.5, §5).

What the owner (the Stack) provides, as callables, because the tables live elsewhere:
  is_ours(ifp, dst)        this host accepts `dst` on `ifp`: one of its unicast addresses that
                           is not tentative (RFC 4862 §5.4), or a multicast group joined on
                           the interface (ff02::1, the solicited-node groups, socket joins);
                           on a transparent interface (ifnet.Interface.transparent) any
                           unicast address of global scope (a gateway's)
  route(dst, now, oif)     a next hop (its `ifp`, `nexthop` and preferred `source`, as
                           protocols/ipv6/route.py's Ipv6Routes.route answers) or an errno;
                           `oif` the interface a scope id or SO_BINDTODEVICE names, or None
  source_candidates(ifp, now)
                           addr.SourceCandidate records of the addresses usable as a source
                           (preferred and deprecated, never tentative): those of `ifp`, or
                           of every interface when `ifp` is None, each with its ifindex
and one hook the ICMPv6 core fills in (`icmp_error`), a no-op until then, as Ipv4's are.

Nothing here raises on bad input: every drop is counted in `Ipv6Stats` (RFC 4293 names).
"""
from __future__ import annotations

import errno
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ndd.pktbuf import PacketBuffer

from ..icmpv6.wire import (
    DEST_UNREACH,
    MAX_QUOTE,
    PACKET_TOO_BIG,
    PARAM_NEXT_HEADER,
    PARAM_OPTION,
    PARAM_PROBLEM,
    TIME_EXCEEDED,
    TIME_EXCEEDED_REASSEMBLY,
    UNREACH_ADDR,
)
from ..ifnet import IFF_LOOPBACK
from ..pmtu import MIN_PMTU_IPV6, MTU_EXPIRES, PmtuCache
from .addr import (
    SCOPE_LINK_LOCAL,
    SourceCandidate,
    address_scope,
    is_link_local,
    is_multicast,
    is_unspecified,
    is_v4_mapped,
    select_source,
)
from .exthdr import FRAG_HDR_LEN, Chain, Drop, encode_fragment_header, resume_after_reassembly, walk_chain
from .frag import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DATAGRAMS,
    DEFAULT_TIMEOUT,
    Datagram,
    Ipv6Reassembler,
    ParamProblem,
    fragment_sizes,
)
from .stats import Ipv6Stats
from .wire import DEFAULT_HOP_LIMIT, HDR_LEN, MAX_PAYLOAD_LEN, NH_FRAGMENT, NH_NONE, Ipv6Repr, check_addresses

if TYPE_CHECKING:
    from ..contracts import ProtocolSwitch
    from ..ifnet import Interface

# The ICMPv6 error types and codes the network layer asks for through `icmp_error`, and how
# much of the invoking packet an error quotes (RFC 4443 §2.4(c)), are the codec's (icmpv6/wire.py).
DEFAULT_MULTICAST_HOPS = 1        # Linux IPV6_DEFAULT_MCASTHOPS (RFC 3493 §5.2: default 1)
IDENT_BUCKETS = 2048



class NextHopView(Protocol):
    """What output reads of a route lookup's answer (route.NextHop fits)."""
    @property
    def ifp(self) -> Interface: ...

    @property
    def nexthop(self) -> int: ...

    @property
    def source(self) -> int | None: ...


# route(dst, now, oif) -> a next hop or an errno (ENETUNREACH, EINVAL for a missing scope, ...)
RouteLookup = Callable[[int, float, "Interface | None"], "NextHopView | int"]
SourceCandidates = Callable[["Interface | None", float], Sequence[SourceCandidate]]
# (type, code, parameter -- the pointer of a parameter problem, the MTU of a packet too big --,
#  the invoking packet from its IPv6 header cut to MAX_QUOTE octets, the interface it
#  came in by (None after a reassembly timeout), now).  Whether to send at all (RFC 4443
#  §2.4 (e): not about errors, nor to multicast but for the exceptions) and the rate limit
#  are the ICMPv6 core's: the invoking packet carries the addresses it needs.
IcmpErrorHook = Callable[[int, int, int, bytes, "Interface | None", float], None]


@dataclass(slots=True)
class Ip6Meta:
    """What a transport learns about the packet it receives (Ipv4's IpMeta for IPv6)."""
    src: int
    dst: int
    next_header: int          # the upper-layer protocol (after the extension headers)
    hop_limit: int            # as received: ND and MLD check it is 255 / 1 (RFC 4861 §6.1)
    tclass: int               # traffic class: DSCP << 2 | ECN (RFC 8200 §7)
    flow_label: int
    ifp: Interface | None
    header_len: int           # octets from the IPv6 header to the upper-layer header
    hdr_start: int            # absolute index of the IPv6 header in pkt.buf (for ICMPv6 errors)
    router_alert: int | None = None   # the hop-by-hop Router Alert value (RFC 2711; MLD: 0)
    mcast: bool = False       # sent to a multicast group
    reassembled: bool = False
    # it came as a link-layer multicast or broadcast: RFC 4443 §2.4 (e.3) wants no error
    # about it (but Packet Too Big and an unrecognized option of action 10), whatever its
    # IPv6 destination -- a transport's port unreachable included
    ll_mcast: bool = False

    def original(self, pkt: PacketBuffer, limit: int = MAX_QUOTE) -> bytes:
        """The invoking packet from its IPv6 header, at most `limit` octets: "as much ... as
        possible without the ICMPv6 packet exceeding the minimum IPv6 MTU" (RFC 4443 §2.4 (c))."""
        return bytes(memoryview(pkt.buf)[self.hdr_start:min(pkt.end, self.hdr_start + limit)])


class Ipv6:
    def __init__(self, protosw: ProtocolSwitch, *,
                 is_ours: Callable[[Interface, int], bool],
                 route: RouteLookup,
                 source_candidates: SourceCandidates,
                 rng: random.Random | None = None,
                 reasm_timeout: float = DEFAULT_TIMEOUT, reasm_max_bytes: int = DEFAULT_MAX_BYTES,
                 reasm_max_datagrams: int = DEFAULT_MAX_DATAGRAMS,
                 default_hop_limit: int = DEFAULT_HOP_LIMIT, multicast_hops: int = DEFAULT_MULTICAST_HOPS,
                 mtu_expires: float = MTU_EXPIRES) -> None:
        self.protosw = protosw
        self.is_ours = is_ours
        self.route = route
        self.source_candidates = source_candidates
        self.stats = Ipv6Stats()
        self.default_hop_limit = default_hop_limit       # net.ipv6.conf.*.hop_limit
        self.multicast_hops = multicast_hops
        # a timed core: the owner registers it with its timer service, as ipv4.reasm
        self.reasm = Ipv6Reassembler(reasm_timeout, reasm_max_bytes, reasm_max_datagrams)
        self.reasm.on_timeout = self._reasm_timed_out
        self._scope_ifp: dict[int, Interface] = {}   # ifindex -> interface, for link-scope timeouts
        # path MTUs learnt from validated Packet Too Big messages (RFC 8201): floored at 1280
        # (RFC 8200 §5; no atomic fragments, RFC 8021) and aged out after 600 s -- RFC 8201 §4
        # "SHOULD NOT" retry a larger PMTU sooner than 5 minutes, and recommends 10
        self.pmtu = PmtuCache(MIN_PMTU_IPV6, mtu_expires)
        # the link MTU IPv6 sizes packets by: the interface's, or lower (an RA's MTU option, the
        # owner's business: Linux keeps it per interface as mtu6)
        self.link_mtu: Callable[[Interface], int] = lambda ifp: ifp.mtu
        rng = rng or random.SystemRandom()
        # RFC 7739 §5.3 (hash-based identification, as Linux ipv6_select_ident): per-bucket
        # 32-bit counters keyed by a secret hash of (src, dst), each starting at a random value
        self._salt = rng.getrandbits(64)
        self._idents = [rng.getrandbits(32) for _ in range(IDENT_BUCKETS)]
        # the ICMPv6 core plugs in here; the defaults keep the core usable alone
        self.icmp_error: IcmpErrorHook = lambda type_, code, param, invoking, ifp, now: None
        # a locally detected error about a packet we sent (ND resolution failed), for the
        # transports' control input: (type, code, the packet from its IPv6 header, now)
        self.local_error: Callable[[int, int, bytes, float], None] = lambda type_, code, original, now: None
        # the owner's: the interface one of the host's own link-local addresses is on, for a
        # packet the host sent itself through the loopback (None: not ours)
        self.loopback_link: Callable[[int], Interface | None] = lambda addr: None

    # --- counters ----------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        """Ipv6Stats as a dict, its reassembly counters read from the reassembler (which
        also counts what happens in its own poll: timeouts, evictions)."""
        self._sync_reasm_stats()
        return self.stats.as_dict()

    def _sync_reasm_stats(self) -> None:
        rs = self.reasm.stats
        self.stats.reasm_reqds, self.stats.reasm_oks, self.stats.reasm_fails = \
            rs.reasm_reqds, rs.reasm_oks, rs.reasm_fails

    # --- identification ------------------------------------------------------------------------
    def next_ident(self, src: int, dst: int) -> int:
        b = hash((self._salt, src, dst)) & (IDENT_BUCKETS - 1)
        ident = self._idents[b]
        self._idents[b] = (ident + 1) & 0xFFFFFFFF
        return ident

    # --- input -----------------------------------------------------------------------------------
    def input(self, ifp: Interface, pkt: PacketBuffer, now: float) -> None:
        st = self.stats
        st.in_receives += 1
        view = pkt.view()
        parsed = Ipv6Repr.parse(view)
        if isinstance(parsed, str):
            st.bump(parsed)
            return
        ip = parsed
        if ip.total_len < len(pkt):
            pkt.trim(ip.total_len)    # link padding (Linux pskb_trim_rcsum)
            view = pkt.view()
        reason = self._address_rules(ifp, ip.src, ip.dst)
        if reason is not None:
            st.bump(reason)
            return
        if ifp.flags & IFF_LOOPBACK and is_link_local(ip.dst):
            # to one of our link-local addresses, looped back: received on that address's link
            ifp = self.loopback_link(ip.dst) or ifp
        mcast = is_multicast(ip.dst)
        ll_mcast = pkt.ll_bcast
        if not self.is_ours(ifp, ip.dst):
            st.in_addr_errors += 1    # a host does not forward (RFC 8200 §3, RFC 1122 §3.3.1)
            return
        if mcast:
            st.in_mcast_pkts += 1
        verdict = walk_chain(view, ip.next_header, dst_multicast=mcast)
        if isinstance(verdict, Drop):
            self._drop(verdict, view, ifp, now, ll_mcast)
            return
        chain = verdict
        hdr_start = pkt.start
        reassembled = False
        if chain.needs_reassembly:
            whole = self._reassemble(ifp, ip, chain, view, now, ll_mcast)
            if whole is None:
                return
            pkt = PacketBuffer(whole.packet)
            hdr_start = 0
            reassembled = True
            resumed = resume_after_reassembly(whole.packet, chain, dst_multicast=mcast)
            if isinstance(resumed, Drop):
                self._drop(resumed, memoryview(whole.packet), ifp, now, ll_mcast)
                return
            chain = resumed
        elif chain.fragment is not None:
            # an atomic fragment (RFC 6946 §4): processed in isolation, counted as Linux does
            # (Ip6ReasmReqds and Ip6ReasmOKs) in the reassembler's record
            rs = self.reasm.stats
            rs.reasm_reqds += 1
            rs.reasm_atomic += 1
            rs.reasm_oks += 1
        self._deliver(ifp, pkt, ip, chain, hdr_start, mcast, reassembled, ll_mcast, now)

    def takes_foreign(self, ifp: Interface, src: int, dst: int, is_local: Callable[[int], bool]) -> bool:
        """Would input() take a packet from `src` to `dst` arriving by `ifp` as a transparent
        interface's unicast to an address of no interface of ours (a gateway's guest talking
        to the world)?  For a short way (Tcp.relayed_input6's SYN) that must decide as
        input() does: False covers every other case -- the address rules' drops, a
        destination of ours (`is_local`: any interface's usable address), link-local,
        multicast, unspecified or v4-mapped, an interface without IPv6 -- which the short way
        leaves to input()."""
        return ifp.transparent and not ifp.flags & IFF_LOOPBACK and self._address_rules(ifp, src, dst) is None \
            and not is_multicast(dst) and not is_link_local(dst) and not is_unspecified(dst) \
            and not is_v4_mapped(dst) and not is_local(dst) and self.is_ours(ifp, dst)

    def _address_rules(self, ifp: Interface, src: int, dst: int) -> str | None:
        loopback_if = bool(ifp.flags & IFF_LOOPBACK)
        reason = check_addresses(src, dst, loopback_if=loopback_if)
        if reason is None and is_v4_mapped(src):
            # Linux ip6_rcv_core: an IPv4-mapped source would pass for an IPv4 peer at a dual-stack
            # socket (::ffff:127.0.0.1 for one; draft-itojun-v6ops-v4mapped-harmful)
            reason = "in_hdr_errors"
        return reason

    def _drop(self, drop: Drop, packet: bytes | bytearray | memoryview, ifp: Interface, now: float,
              ll_mcast: bool = False) -> None:
        self.stats.bump(drop.reason)
        if drop.param_problem is not None:
            code, pointer = drop.param_problem
            if ll_mcast and not (code == PARAM_OPTION and packet[pointer] >> 6 == 0b10):
                return      # RFC 4443 §2.4 (e.3): only an option of action 10 is reported
            self.icmp_error(PARAM_PROBLEM, code, pointer, bytes(packet[:MAX_QUOTE]), ifp, now)

    def _reassemble(self, ifp: Interface, ip: Ipv6Repr, chain: Chain, view: memoryview,
                    now: float, ll_mcast: bool) -> Datagram | None:
        frag = chain.fragment
        if frag is None:
            return None
        # Linux keys link-local and multicast destinations by the incoming interface too
        scope = ifp.index if is_multicast(ip.dst) or is_link_local(ip.dst) else 0
        if scope:
            self._scope_ifp[scope] = ifp      # one entry per interface: bounded
        verdict = self.reasm.add(ip.src, ip.dst, bytes(view[:frag.hdr_offset]), frag.nh_field,
                                 frag.header,
                                 bytes(view[frag.payload_offset:]), now, scope=scope)
        self._sync_reasm_stats()
        if isinstance(verdict, ParamProblem):
            self._drop(Drop("in_hdr_errors", (verdict.code, verdict.pointer)), view, ifp, now, ll_mcast)
            return None
        return verdict

    def _deliver(self, ifp: Interface, pkt: PacketBuffer, ip: Ipv6Repr, chain: Chain, hdr_start: int,
                 mcast: bool, reassembled: bool, ll_mcast: bool, now: float) -> None:
        st = self.stats
        nh = chain.next_header
        if nh == NH_NONE:
            # RFC 8200 §4.7: nothing follows; Linux's IPPROTO_NONE handler discards it and
            # counts it delivered (ip6_protocol_deliver_rcu)
            st.in_delivers += 1
            return
        pr = self.protosw.ip6_protox.get(nh)
        meta = Ip6Meta(ip.src, ip.dst, nh, ip.hop_limit, ip.traffic_class, ip.flow_label, ifp, chain.offset,
                       hdr_start, chain.router_alert, mcast, reassembled, ll_mcast)
        if pr is None or pr.input is None:
            # RFC 8200 §4: "unrecognized Next Header value" -> parameter problem code 1 pointing
            # at the octet that named it (Linux ICMPV6_UNK_NEXTHDR, InUnknownProtos)
            st.in_unknown_protos += 1
            if not ll_mcast:
                self.icmp_error(PARAM_PROBLEM, PARAM_NEXT_HEADER, chain.nh_field, meta.original(pkt), ifp, now)
            return
        pkt.pull(chain.offset)
        st.in_delivers += 1
        pr.input(pkt, meta, now)

    def _reasm_timed_out(self, src: int, dst: int, fragment_zero: bytes, scope: int, now: float) -> None:
        # RFC 8200 §4.5: time exceeded code 1 to the source, when fragment zero had arrived; a
        # link-scope datagram (keyed by its interface) is answered on that interface
        ifp = self._scope_ifp.get(scope) if scope else None
        self.icmp_error(TIME_EXCEEDED, TIME_EXCEEDED_REASSEMBLY, 0, fragment_zero[:MAX_QUOTE], ifp, now)

    # --- output ----------------------------------------------------------------------------------
    def choose_source(self, dst: int, out_ifp: Interface, now: float) -> int | None:
        """RFC 6724 §4-5 over the host's addresses.  For a destination of link-local scope (a
        link-local unicast, or a multicast group of scope <= 2) only the outgoing interface's
        addresses are candidates (§4; Linux ipv6_dev_get_saddr); otherwise all of them, rule 5
        preferring the outgoing interface's."""
        link_scoped = address_scope(dst) <= SCOPE_LINK_LOCAL
        candidates = self.source_candidates(out_ifp if link_scoped else None, now)
        if link_scoped:
            candidates = [c for c in candidates if c.ifindex == out_ifp.index]
        best = select_source(dst, candidates, out_ifp.index)
        return None if best is None else best.addr

    def source_for(self, dst: int, now: float, oif: Interface | None = None) -> tuple[int, int]:
        """(0, the source `output` would choose for `dst`) or (errno, 0): what connect() and an
        unbound sendto() bind to (Linux ip6_dst_lookup_flow then ipv6_dev_get_saddr)."""
        hop = self.route(dst, now, oif)
        if isinstance(hop, int):
            return hop, 0
        src = hop.source or self.choose_source(dst, hop.ifp, now)
        return (0, src) if src is not None else (errno.EADDRNOTAVAIL, 0)

    def transparent_source(self, src: int, dst: int, now: float) -> int:
        """Ipv4.transparent_source for IPv6: 0 when `src` is one of our usable addresses or the
        route to `dst` leaves by a transparent interface, else EADDRNOTAVAIL (or the route's errno)."""
        hop = self.route(dst, now, None)
        if isinstance(hop, int):
            return hop
        if hop.ifp.transparent or any(c.addr == src and not c.tentative for c in self.source_candidates(None, now)):
            return 0
        return errno.EADDRNOTAVAIL

    def path_mtu(self, ifp: Interface, dst: int, now: float) -> int:
        """The MTU to size packets to `dst` by (TCP's MSS is this - 60): the link's, or the
        lower one a Packet Too Big taught (self.pmtu)."""
        return self.pmtu.path_mtu(dst, self.link_mtu(ifp), now)

    def output(self, pkt: PacketBuffer, src: int, dst: int, next_header: int, now: float, *,
               hop_limit: int | None = None, tclass: int = 0, flow_label: int = 0, oif: Interface | None = None,
               dontfrag: bool = False, send_unspecified: bool = False) -> int:
        """Send one upper-layer payload, `pkt`, which already carries its checksum computed over
        the source this call uses: a transport with no bound address asks `source_for` first
        (the same choice), or leaves a partial checksum to the device.

        `src` 0 means "choose" -- the route's preferred source if it has one (Linux
        rt6i_prefsrc), else RFC 6724's choice -- unless `send_unspecified`: a DAD Neighbor
        Solicitation (RFC 4862 §5.4.2) or an MLD report before a link-local address exists
        (RFC 3810 §5.2.13) goes from ::.  `oif`: the interface a link-local or multicast
        destination leaves by (the socket's scope id), or SO_BINDTODEVICE's.  `dontfrag`:
        IPV6_DONTFRAG (RFC 3542 §11.2), EMSGSIZE rather than fragments.  Returns 0 or an
        errno, as Ipv4.output."""
        st = self.stats
        st.out_requests += 1
        hop = self.route(dst, now, oif)
        if isinstance(hop, int):
            st.out_no_routes += 1
            return hop
        out_ifp, nexthop = hop.ifp, hop.nexthop
        if not src and not send_unspecified:
            chosen = hop.source or self.choose_source(dst, out_ifp, now)
            if chosen is None:
                st.out_discards += 1
                return errno.EADDRNOTAVAIL    # Linux ip6_dst_lookup_tail: no usable source
            src = chosen
        mcast = is_multicast(dst)
        if hop_limit is None:
            hop_limit = self.multicast_hops if mcast else self.default_hop_limit
        if not 0 <= hop_limit <= 255 or not 0 <= tclass <= 255 or not 0 <= flow_label <= 0xFFFFF:
            st.out_discards += 1
            return errno.EINVAL
        if mcast:
            st.out_mcast_pkts += 1
        header = Ipv6Repr(src, dst, next_header, len(pkt), hop_limit, tclass, flow_label)
        mtu = self.path_mtu(out_ifp, dst, now)
        if HDR_LEN + len(pkt) <= mtu or pkt.gso_size:
            if len(pkt) > MAX_PAYLOAD_LEN:
                st.out_discards += 1          # no jumbograms (RFC 2675)
                return errno.EMSGSIZE
            header.emit(pkt.prepend(HDR_LEN))
            return self._link_out(out_ifp, pkt, nexthop, now)
        st.out_frag_reqds += 1
        if dontfrag or pkt.csum_start >= 0:
            # a partial checksum cannot be finished over pieces: transports size such packets
            st.out_frag_fails += 1
            return errno.EMSGSIZE
        return self._fragment(out_ifp, pkt, header, mtu, nexthop, now)

    def _fragment(self, ifp: Interface, pkt: PacketBuffer, header: Ipv6Repr, mtu: int, nexthop: int,
                  now: float) -> int:
        """RFC 8200 §4.5 at the source: the unfragmentable part is the fixed header alone (the
        upper layers hand us no extension headers), each fragment carries a Fragment header
        with the same unpredictable Identification (RFC 7739) and, but the last, a multiple of
        8 octets; every fragment packet fits `mtu` (>= 1280)."""
        st = self.stats
        payload = pkt.view()
        pieces = fragment_sizes(HDR_LEN, len(payload), mtu)
        if not pieces:
            st.out_frag_fails += 1
            return errno.EMSGSIZE
        ident = self.next_ident(header.src, header.dst)
        upper = header.next_header
        header.next_header = NH_FRAGMENT
        err = 0
        for off, length in pieces:
            frag = PacketBuffer.from_payload(payload[off:off + length])
            more = off + length < len(payload)
            frag.prepend(FRAG_HDR_LEN)[:] = encode_fragment_header(upper, off, more, ident)
            header.payload_len = FRAG_HDR_LEN + length
            header.emit(frag.prepend(HDR_LEN))
            st.out_frag_creates += 1
            err = self._link_out(ifp, frag, nexthop, now) or err
        st.out_frag_oks += 1
        return err

    def _link_out(self, ifp: Interface, pkt: PacketBuffer, nexthop: int, now: float) -> int:
        err = ifp.transmit(pkt, nexthop, now)
        if err:
            self.stats.out_discards += 1
        return err

    def unreachable_from_link(self, pkt: PacketBuffer, now: float) -> None:
        """A queued packet's next hop never answered Neighbor Solicitations (RFC 4861 §7.3.3,
        MAX_MULTICAST_SOLICIT): tell its sender as a local destination unreachable code 3
        (address unreachable, RFC 4443 §3.1), which Linux reports as EHOSTUNREACH."""
        self.local_error(DEST_UNREACH, UNREACH_ADDR, pkt.tobytes()[:MAX_QUOTE], now)


__all__ = ["DEST_UNREACH", "PACKET_TOO_BIG", "PARAM_PROBLEM", "TIME_EXCEEDED", "Ip6Meta",
           "Ipv6"]
