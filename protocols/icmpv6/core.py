"""The ICMPv6 protocol core (RFC 4443), sans-IO, shaped as protocols/icmp.py's Icmp.

  * input (next header 58): header and checksum once (message.parse_message), counted per
    type (Icmpv6Stats.count_in); a message that fails is dropped and counted in the section
    its codec names (icmpv6, nd, mld);
  * echo requests are answered with the same identifier, sequence number and data (§4.2),
    also when sent to a multicast group -- Linux net.ipv6.icmp.echo_ignore_multicast is 0 by
    default -- from a unicast source then (§4.2: "the source address of the reply MUST be a
    unicast address belonging to the interface on which the ... Request was received");
  * echo replies, and errors about our own echo requests, go to `echo_waiters`
    (`send_echo` / `cancel_echo`, the Stack's ping), as IPv4's;
  * errors are handed to the `ctlinput` of the transport named by the quoted packet's
    upper-layer header (the quote's extension chain walked with exthdr.walk_chain) with
    Linux's errno (wire.icmpv6_errno).  A Packet Too Big lowers `ipv6.pmtu` for the quoted
    destination -- never below 1280 (RFC 8201 §4, the cache's floor) -- only when the quote
    is a packet we could have sent (RFC 5927 §4.1 spirit): its source one of our addresses
    and the one the error came to;
  * Neighbor Discovery and MLD messages pass their receipt checks (nd.validate,
    mld.validate: hop limit, code, source...) and go to the owner's `nd_input` / `mld_input`
    hooks; an invalid one is counted in `nd_stats` / `mld_stats`, never acted on;
  * errors we send (`error`, plugged into `ipv6.icmp_error`) follow RFC 4443 §2.4(e)
    (wire.may_send_error), then a global token bucket (Linux icmp_msgs_per_sec 1000, burst
    50, shared with IPv4 when the owner passes Icmp's: Linux icmp_global_allow serves both
    families) with SADDNS's random cost (CVE-2020-25705) and a per-destination limit (Linux
    net.ipv6.icmp.ratelimit 1000 ms, burst 6); both only for the types of
    net.ipv6.icmp.ratemask (default 0-1,3-127: Packet Too Big is never limited).  The quote is
    cut to MAX_QUOTE (§2.4(c)); the source is the invoking packet's destination when that is
    one of our unicast addresses (Linux icmp6_send), else source address selection.

Nothing here raises on bad input: every drop is a counter.
"""
from __future__ import annotations

import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ndd.pktbuf import PacketBuffer

from ..echo import EchoCallback, EchoForward, EchoWaiters
from ..icmp import PerDestinationLimiter, TokenBucket
from ..ifnet import IFF_LOOPBACK
from ..ipv6.addr import SCOPE_LINK_LOCAL, address_scope, is_multicast, is_unspecified
from ..ipv6.exthdr import Drop, walk_chain
from ..ipv6.wire import NH_ICMPV6
from . import mld, nd
from .message import MLD_TYPES, ND_TYPES, parse_message
from .stats import Icmpv6Stats, MldStats, NdStats
from .wire import (
    DEST_UNREACH,
    ECHO_REQUEST,
    MAX_QUOTE,
    PACKET_TOO_BIG,
    PARAM_PROBLEM,
    REDIRECT,
    TIME_EXCEEDED,
    DestUnreachable,
    EchoReply,
    EchoRequest,
    ErrorMessage,
    PacketTooBig,
    ParamProblem,
    QuotedPacket,
    TimeExceeded,
    UnknownError,
    icmpv6_errno,
    is_error,
    may_send_error,
)

if TYPE_CHECKING:
    from ..ifnet import Interface
    from ..ipv6.ip6 import Ip6Meta, Ipv6

# Linux net.ipv6.icmp.ratemask default "0-1,3-127": every error type but Packet Too Big
DEFAULT_RATEMASK = frozenset(t for t in range(128) if t != PACKET_TOO_BIG)

NdHook = Callable[[nd.AnyNdMessage, "Ip6Meta", float], None]
MldHook = Callable[[mld.AnyMldMessage, "Ip6Meta", float], None]

_ERROR_CLASSES: dict[int, type[DestUnreachable] | type[TimeExceeded]] = {
    DEST_UNREACH: DestUnreachable, TIME_EXCEEDED: TimeExceeded,
}


@dataclass
class Icmpv6CoreStats(Icmpv6Stats):
    """Icmpv6Stats and the core's own events."""
    in_echo_ignored: int = 0            # echo from :: (or to a group with echo_ignore_multicast)
    in_echo_unmatched: int = 0          # an echo reply nobody waits for
    in_err_no_transport: int = 0        # an error about a protocol with no ctlinput
    in_quote_bad_chain: int = 0         # the quote's extension chain ends before an upper header
    in_quote_not_ours: int = 0          # a Packet Too Big quoting a packet we did not send (RFC 5927)
    in_pkt_too_big_below_min: int = 0   # reported MTU < 1280: the path MTU stops at 1280 (RFC 8201 §4)
    out_rate_hosts_evicted: int = 0     # destinations forgotten by the full per-destination table
    out_discards: int = 0               # ipv6.output refused a message we built (no route, no source)
    echo_waiters_evicted: int = 0       # the oldest waiter gave way to a new ping
    in_echo_forwarded: int = 0          # echo requests to a foreign address handed to the forwarder
    in_echo_foreign_dropped: int = 0    # ... with no forwarder: dropped, never answered by the stack


@dataclass(slots=True)
class Icmpv6Error:
    """What a transport's ctlinput receives about one of its packets (IcmpError for IPv6)."""
    type: int
    code: int
    errno: int
    fatal: bool             # Linux icmpv6_err_convert: report at once, abort a connect
    reporter: int           # who sent the ICMPv6 (0 for a locally detected error)
    src: int                # the invoking packet's source (us) ...
    dst: int                # ... and destination
    next_header: int        # its upper-layer protocol, after the extension headers
    payload: bytes          # from its upper-layer header on: ports first (as much as quoted)
    mtu: int = 0            # Packet Too Big: the next-hop MTU (RFC 4443 §3.2)
    pointer: int = 0        # Parameter Problem: the offset of the faulty octet (§3.4)


class Icmpv6:
    def __init__(self, ipv6: Ipv6, *, rate: float = 1000.0, burst: int = 50, ratelimit: float = 1.0,
                 ratemask: frozenset[int] = DEFAULT_RATEMASK, limiter: TokenBucket | None = None,
                 echo_ignore_multicast: bool = False, rng: random.Random | None = None,
                 random_cost: bool = True, nd_stats: NdStats | None = None,
                 mld_stats: MldStats | None = None) -> None:
        self.ipv6 = ipv6
        self.stats = Icmpv6CoreStats()
        self.nd_stats = nd_stats or NdStats()
        self.mld_stats = mld_stats or MldStats()
        # Linux's global bucket serves ICMP and ICMPv6 alike: pass Icmp's `limiter` to share it
        self.limiter = limiter or TokenBucket(rate, burst)
        self.host_limiter = PerDestinationLimiter(ratelimit)     # 0 disables, as ratelimit=0
        self.ratemask = ratemask
        self.rng = rng or random.SystemRandom()
        self.random_cost = random_cost          # False only for tests that count exactly
        self.echo_ignore_multicast = echo_ignore_multicast
        self.echo_waiters = EchoWaiters()
        # the owner's ND and MLD cores plug in here; no-ops until then
        self.nd_input: NdHook = lambda msg, meta, now: None
        self.mld_input: MldHook = lambda msg, meta, now: None
        # a gateway's (issue 13): echo requests to foreign addresses on a transparent interface
        self.forwarder: Callable[[EchoForward], None] | None = None
        ipv6.icmp_error = self.error
        ipv6.local_error = self.local_error

    # --- input -------------------------------------------------------------------------------
    def input(self, pkt: PacketBuffer, meta: Ip6Meta, now: float) -> None:
        """pr_input for next header 58: `pkt` starts at the ICMPv6 header."""
        st = self.stats
        view = pkt.view()
        msg = parse_message(view, meta.src, meta.dst, verify=not pkt.csum_valid)
        if isinstance(msg, tuple):
            section, reason = msg
            if section == "icmpv6" and reason in ("in_truncated", "in_csum_errors"):
                st.in_msgs += 1
                st.in_errors += 1
                st.bump(reason)
                return
            st.count_in(view[0], view[1])      # the header was fine: count its type (Linux ICMP6MSGIN)
            {"icmpv6": st, "nd": self.nd_stats, "mld": self.mld_stats}[section].bump(reason)
            return
        type_ = view[0]
        st.count_in(type_, view[1])
        if isinstance(msg, EchoRequest):
            self._echo_request(msg, meta, now)
        elif isinstance(msg, EchoReply):
            if not self.echo_waiters.answer(msg.ident, msg.seq, meta.src, msg.data):
                st.in_echo_unmatched += 1
        elif isinstance(msg, DestUnreachable | PacketTooBig | TimeExceeded | ParamProblem | UnknownError):
            self._error_input(msg, meta, now)
        elif type_ in ND_TYPES:
            self._nd(msg, meta, now)
        elif type_ in MLD_TYPES:
            self._mld(msg, meta, now)

    def _echo_request(self, req: EchoRequest, meta: Ip6Meta, now: float) -> None:
        if (meta.mcast and self.echo_ignore_multicast) or is_unspecified(meta.src) or is_multicast(meta.src):
            # a group or :: is no one to answer (the IPv6 layer lets :: in for DAD probes)
            self.stats.in_echo_ignored += 1
            return
        # §4.2: from the address the request came to, unless that was a group; then a unicast
        # address chosen for the requester, by the interface it came in by (Linux icmpv6_echo_reply
        # sets the outgoing interface to the incoming one); the traffic class is reflected as Linux
        ifp = meta.ifp
        if ifp is not None and ifp.transparent and not meta.mcast and not self._is_our_unicast(meta.dst, now):
            self._forward_echo(req, meta, now)
            return
        src = 0 if meta.mcast else meta.dst
        self._send(req.reply(), src, meta.src, now, oif=meta.ifp, tclass=meta.tclass)

    def _forward_echo(self, req: EchoRequest, meta: Ip6Meta, now: float) -> None:
        """An echo to an address ours only by transparency: the owner's, never answered here."""
        forwarder = self.forwarder
        if forwarder is None:
            self.stats.in_echo_foreign_dropped += 1
            return
        self.stats.in_echo_forwarded += 1
        forwarder(EchoForward(socket.AF_INET6, meta.src, meta.dst, req.ident, req.seq, req.data, meta.hop_limit,
                              meta.ifp, now))

    def send_echo_reply(self, src: int, dst: int, ident: int, seq: int, data: bytes, now: float) -> int:
        """An echo reply from `src` -- a remote's address when the route to `dst` leaves by a
        transparent interface -- to `dst` (Icmp.send_echo_reply for IPv6).  0 or an errno."""
        err = self.ipv6.transparent_source(src, dst, now)
        if err:
            return err
        return self._send(EchoReply(ident & 0xFFFF, seq & 0xFFFF, data), src, dst, now)

    def _nd(self, msg: Any, meta: Ip6Meta, now: float) -> None:
        reason = nd.validate(msg, meta.src, meta.dst, meta.hop_limit)
        if reason is not None:
            self.nd_stats.bump(reason)      # RFC 4861 §6.1/§7.1: silently discarded
            return
        self.nd_input(msg, meta, now)

    def _mld(self, msg: Any, meta: Ip6Meta, now: float) -> None:
        reason = mld.validate(msg, meta.src, meta.dst, meta.hop_limit)
        if reason is not None:
            self.mld_stats.bump(reason)     # RFC 3810 §6.2
            return
        self.mld_input(msg, meta, now)

    # --- errors received ------------------------------------------------------------------------
    def _error_input(self, msg: ErrorMessage, meta: Ip6Meta, now: float) -> None:
        if isinstance(msg, PacketTooBig):
            self._packet_too_big(msg, meta, now)
        else:
            pointer = msg.pointer if isinstance(msg, ParamProblem) else 0
            self._deliver_error(msg.TYPE if not isinstance(msg, UnknownError) else msg.type,
                                msg.code, meta.src, msg.invoking, now, pointer=pointer)

    def _packet_too_big(self, msg: PacketTooBig, meta: Ip6Meta, now: float) -> None:
        st = self.stats
        quoted = QuotedPacket.parse(msg.invoking)
        if isinstance(quoted, str):
            st.in_errors += 1
            st.bump(quoted)
            return
        # RFC 5927 §4.1: the quote must be a packet of ours -- sent from one of our addresses,
        # and the error addressed to that source (RFC 4443 §2.2 sends it to the invoking source)
        if quoted.src != meta.dst or not self._is_our_unicast(quoted.src, now):
            st.in_quote_not_ours += 1
            return
        if msg.mtu < self.ipv6.pmtu.min_pmtu:
            st.in_pkt_too_big_below_min += 1    # RFC 8201 §4: never below 1280 (the cache clamps)
        # RFC 8201 §4: the path MTU of the quoted destination, against the MTU of the link
        # packets to it leave by (the one the error came in by when no route says); the
        # cache ignores a rise and floors a fall at 1280
        hop = self.ipv6.route(quoted.dst, now, None)
        out_ifp = meta.ifp if isinstance(hop, int) else hop.ifp
        if out_ifp is not None:
            self.ipv6.pmtu.update(quoted.dst, msg.mtu, self.ipv6.link_mtu(out_ifp), now)
        self._deliver_error(PACKET_TOO_BIG, msg.code, meta.src, msg.invoking, now, mtu=msg.mtu)

    def _is_our_unicast(self, addr: int, now: float) -> bool:
        """One of our usable unicast addresses (a tentative one is not ours yet, RFC 4862 §5.4)."""
        return any(c.addr == addr and not c.tentative for c in self.ipv6.source_candidates(None, now))

    def _deliver_error(self, type_: int, code: int, reporter: int, invoking: bytes, now: float, *,
                       mtu: int = 0, pointer: int = 0) -> None:
        """Find the transport of the quoted packet and hand it the error (Linux icmpv6_notify)."""
        st = self.stats
        quoted = QuotedPacket.parse(invoking)
        if isinstance(quoted, str):
            st.in_errors += 1
            st.bump(quoted)
            return
        chain = walk_chain(invoking, quoted.next_header, dst_multicast=is_multicast(quoted.dst))
        # a quote cut inside the chain, or a later fragment, names no transport header
        if isinstance(chain, Drop) or (chain.fragment is not None and chain.fragment.offset != 0):
            st.in_quote_bad_chain += 1
            return
        errno_, fatal = icmpv6_errno(type_, code)
        err = Icmpv6Error(type_, code, errno_, fatal, reporter, quoted.src, quoted.dst, chain.next_header,
                          bytes(invoking[chain.offset:]), mtu, pointer)
        pr = self.ipv6.protosw.ip6_protox.get(chain.next_header)
        if pr is not None and pr.ctlinput is not None:
            pr.ctlinput(err, now)
        else:
            st.in_err_no_transport += 1

    def ctlinput(self, err: Icmpv6Error, now: float) -> None:
        """Errors about ICMPv6 we sent: only echo requests have a waiter."""
        self.echo_waiters.fail(err.payload, ECHO_REQUEST, err.errno, err.reporter)

    def local_error(self, type_: int, code: int, original: bytes, now: float) -> None:
        """An error detected locally (ND resolution failed): no packet, straight to the transport."""
        self._deliver_error(type_, code, 0, original, now)

    # --- output ------------------------------------------------------------------------------
    def send_echo(self, dst: int, ident: int, seq: int, payload: bytes, now: float, callback: EchoCallback,
                  *, src: int = 0, hop_limit: int | None = None, oif: Interface | None = None) -> int:
        """Send an echo request; `callback` gets the reply (0, replier, data) or an error
        about the request (errno, reporter, b"").  Returns 0 or an errno."""
        if self.echo_waiters.wait(ident, seq, callback):
            self.stats.echo_waiters_evicted += 1
        err = self._send(EchoRequest(ident, seq, payload), src, dst, now, oif=oif, hop_limit=hop_limit)
        if err:
            self.echo_waiters.pop((ident, seq), None)
        return err

    def cancel_echo(self, ident: int, seq: int) -> None:
        """Forget the waiter of an echo nobody waits for any more: a late reply then counts as
        `in_echo_unmatched` and the table does not grow."""
        self.echo_waiters.pop((ident, seq), None)

    def error(self, type_: int, code: int, param: int, invoking: bytes, ifp: Interface | None,
              now: float) -> None:
        """Ipv6.icmp_error: report a problem with a received packet, `invoking` from its IPv6
        header; `param` is a Parameter Problem's pointer or a Packet Too Big's MTU."""
        st = self.stats
        quoted = QuotedPacket.parse(invoking)
        if isinstance(quoted, str):
            st.out_suppressed += 1
            return
        if not may_send_error(type_, code, src=quoted.src, dst=quoted.dst,
                              about_error=self._is_about_error(invoking, quoted)):
            st.out_suppressed += 1           # RFC 4443 §2.4(e)
            return
        if type_ in self.ratemask and not self._rate_allows(quoted.src, ifp, now):
            return
        msg = self._error_message(type_, code, param, bytes(invoking[:MAX_QUOTE]))
        # Linux icmp6_send: from the address the packet came to when it is one of ours
        src = quoted.dst if self._is_our_unicast(quoted.dst, now) else 0
        # a link-scoped source is reached back by the interface it came in by (its scope)
        oif = ifp if ifp is not None and address_scope(quoted.src) <= SCOPE_LINK_LOCAL else None
        self._send(msg, src, quoted.src, now, oif=oif)

    def _is_about_error(self, invoking: bytes, quoted: QuotedPacket) -> bool:
        """§2.4(e.1, e.2): is the invoking packet an ICMPv6 error or a Redirect?  A chain that
        cannot be walked (the very reason for a parameter problem) is not (Linux is_ineligible);
        an ICMPv6 header cut before its type is treated as one (the cautious choice, as Linux)."""
        chain = walk_chain(invoking, quoted.next_header, dst_multicast=is_multicast(quoted.dst))
        if isinstance(chain, Drop) or chain.next_header != NH_ICMPV6:
            return False
        if chain.fragment is not None and chain.fragment.offset != 0:
            return False
        if chain.offset >= len(invoking):
            return True
        inner_type = invoking[chain.offset]
        return is_error(inner_type) or inner_type == REDIRECT

    def _rate_allows(self, dst: int, ifp: Interface | None, now: float) -> bool:
        st = self.stats
        if not self.limiter.allows(now):
            st.out_rate_limited += 1
            return False
        # Linux icmpv6_xrlim_allow: no per-destination limit towards the loopback
        if ifp is None or not ifp.flags & IFF_LOOPBACK:
            allowed = self.host_limiter.take(dst, now)
            st.out_rate_hosts_evicted = self.host_limiter.evicted
            if not allowed:
                st.out_rate_limited_host += 1
                return False
        # SADDNS (CVE-2020-25705): 0, 1 or 2 tokens, 1 on average (Linux >= 5.10)
        self.limiter.consume(self.rng.randrange(3) if self.random_cost else 1)
        return True

    @staticmethod
    def _error_message(type_: int, code: int, param: int, quote: bytes) -> ErrorMessage:
        if type_ == PACKET_TOO_BIG:
            return PacketTooBig(code=code, invoking=quote, mtu=param)
        if type_ == PARAM_PROBLEM:
            return ParamProblem(code=code, invoking=quote, pointer=param)
        cls = _ERROR_CLASSES.get(type_)
        if cls is not None:
            return cls(code=code, invoking=quote)
        return UnknownError(code=code, invoking=quote, type=type_, rest=param)

    def _send(self, msg: ErrorMessage | EchoRequest | EchoReply, src: int, dst: int, now: float, *,
              oif: Interface | None = None, hop_limit: int | None = None, tclass: int = 0) -> int:
        """Emit with the checksum over the source `ipv6.output` will use (chosen here when 0)."""
        if not src:
            err, src = self.ipv6.source_for(dst, now, oif)
            if err:
                self.stats.out_discards += 1
                return err
        rep = msg.to_repr()
        pkt = PacketBuffer.from_payload(rep.emit(src, dst))
        err = self.ipv6.output(pkt, src, dst, NH_ICMPV6, now, hop_limit=hop_limit, tclass=tclass, oif=oif)
        if err:
            self.stats.out_discards += 1
        else:
            self.stats.count_out(rep.type, rep.code)
        return err


__all__ = ["DEFAULT_RATEMASK", "Icmpv6", "Icmpv6CoreStats", "Icmpv6Error"]
