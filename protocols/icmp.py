"""ICMP for IPv4 (RFC 792, RFC 1122 §3.2.2).

  * echo requests are answered (any size IPv4 can reassemble); broadcast echo is
    ignored as Linux does by default (icmp_echo_ignore_broadcasts),
  * errors are generated under the RFC 1122 §3.2.2 rules (never about an ICMP error,
    a broadcast/multicast, a non-initial fragment or a non-unicast source) and
    rate-limited by a token bucket (Linux: icmp_msgs_per_sec 1000, burst 50) whose
    cost per error is random, 0, 1 or 2 tokens (Linux >= 5.10 icmp_global_consume):
    an exactly countable global budget let an off-path attacker learn which UDP
    ports were open (SADDNS, CVE-2020-25705); and per destination, one error per
    `ratelimit` seconds after a burst of 6 (Linux net.ipv4.icmp_ratelimit 1000 ms,
    XRLIM_BURST_FACTOR), so spoofed packets cannot aim more than that at one victim
    (the table of destinations is bounded, oldest out),
  * received errors are handed to the transport's `ctlinput` with the errno Linux
    would report (`ICMP_ERRNO`); the transport validates them against its connections
    (RFC 5927) before acting.  A "fragmentation needed" quoting a datagram without DF
    cannot be genuine (RFC 1191: routers send it only for DF datagrams) and is dropped
    here, counted; the path MTU it carries is used only through protocols/pmtu.py,
    floored at min_pmtu,
  * echo replies and errors about our own echo requests go to `echo_waiters`
    (the Stack's ping: `send_echo`, and `cancel_echo` when it stops waiting).
"""
from __future__ import annotations

import errno
import random
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from ndd.checksum import checksum, ones_sum
from ndd.counters import Counters
from ndd.pktbuf import PacketBuffer

from .addr import is_martian_source
from .echo import EchoCallback, EchoForward, EchoWaiters
from .ipv4 import _HDR as IP_HDR
from .ipv4 import FLAG_MF, HDR_LEN, IPPROTO_ICMP, OFFSET_MASK, IpMeta, Ipv4, Ipv4Repr

ECHO_REPLY = 0
DEST_UNREACH = 3
SOURCE_QUENCH = 4
REDIRECT = 5
ECHO_REQUEST = 8
TIME_EXCEEDED = 11
PARAM_PROBLEM = 12

FRAG_NEEDED = 4              # destination unreachable code: "fragmentation needed and DF set"

ERROR_TYPES = frozenset({DEST_UNREACH, SOURCE_QUENCH, REDIRECT, TIME_EXCEEDED, PARAM_PROBLEM})

# Linux icmp_err_convert[] for destination unreachable codes 0..15
_UNREACH_ERRNO = [errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENOPROTOOPT, errno.ECONNREFUSED,
                  errno.EMSGSIZE, errno.EOPNOTSUPP, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENONET,
                  errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTUNREACH,
                  errno.EHOSTUNREACH, errno.EHOSTUNREACH, errno.EHOSTUNREACH]

_HDR = struct.Struct("!BBHHH")


def icmp_errno(type_: int, code: int) -> int:
    if type_ == DEST_UNREACH:
        return _UNREACH_ERRNO[code] if code < len(_UNREACH_ERRNO) else errno.EHOSTUNREACH
    if type_ == TIME_EXCEEDED:
        return errno.EHOSTUNREACH
    if type_ == PARAM_PROBLEM:
        return errno.EPROTO
    return 0


@dataclass(slots=True)
class IcmpRepr:
    type: int
    code: int
    rest: int          # the 4 octets after the checksum (id/seq, next-hop MTU, pointer, ...)
    data: bytes

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, *, verify: bool = True) -> IcmpRepr | str:
        if len(data) < 8:
            return "in_truncated"
        if verify and ones_sum(data) != 0xFFFF:
            return "in_csum_errors"
        type_, code, _csum, hi, lo = _HDR.unpack_from(data, 0)
        return cls(type_, code, (hi << 16) | lo, bytes(data[8:]))

    def emit(self) -> bytes:
        buf = bytearray(_HDR.pack(self.type, self.code, 0, self.rest >> 16, self.rest & 0xFFFF))
        buf += self.data
        struct.pack_into("!H", buf, 2, checksum(buf))
        return bytes(buf)


@dataclass(slots=True)
class IcmpError:
    """What a transport's ctlinput receives about one of its datagrams."""
    type: int
    code: int
    errno: int
    reporter: int       # who sent the ICMP (0 for a locally generated error)
    src: int            # the offending datagram's source (us) ...
    dst: int            # ... and destination
    proto: int
    payload: bytes      # at least the first 8 octets of the offending transport header
    mtu: int = 0        # next-hop MTU for "fragmentation needed" (RFC 1191)


@dataclass
class IcmpStats(Counters):
    in_msgs: int = 0
    in_errors: int = 0
    in_csum_errors: int = 0
    in_truncated: int = 0
    in_echos: int = 0
    in_echo_reps: int = 0
    in_dest_unreachs: int = 0
    in_time_excds: int = 0
    in_frag_needed: int = 0
    in_frag_needed_no_df: int = 0   # quotes a datagram without DF: forged, dropped
    in_ignored: int = 0
    echo_waiters_evicted: int = 0   # the oldest ping waiter gave way to a new one (MAX_ECHO_WAITERS)
    out_msgs: int = 0
    out_echo_reps: int = 0
    out_echos: int = 0
    out_dest_unreachs: int = 0
    out_time_excds: int = 0
    out_rate_limited: int = 0       # the global bucket said no (Linux RateLimitGlobal)
    out_rate_limited_host: int = 0  # the destination's bucket said no (Linux RateLimitHost)
    out_rate_hosts_evicted: int = 0  # destinations forgotten by the full per-destination table
    out_suppressed: int = 0     # errors RFC 1122 forbids us to send
    in_echo_forwarded: int = 0      # echo requests to a foreign address handed to icmp.forwarder
    in_echo_foreign_dropped: int = 0  # ... with no forwarder: dropped, never answered by the stack



class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.stamp: float | None = None

    def allows(self, now: float) -> bool:
        """Refill, then: is a whole token left?"""
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.tokens >= 1

    def consume(self, cost: float = 1.0) -> None:
        """The cost may take the balance below zero (Linux's credit may go negative); later
        refills pay it back."""
        self.tokens -= cost

    def take(self, now: float, cost: float = 1.0) -> bool:
        if self.allows(now):
            self.consume(cost)
            return True
        return False


class PerDestinationLimiter:
    """Linux inet_peer_xrlim_allow: per destination, one message per `interval` seconds with
    a burst of `burst`; a new destination starts with its burst.  At most `max_entries`
    destinations are remembered -- the oldest gives way, which only ever grants it a fresh
    burst, never lets more through overall than the global bucket."""

    def __init__(self, interval: float, burst: int = 6, max_entries: int = 4096) -> None:
        self.interval, self.burst, self.max_entries = interval, burst, max(max_entries, 1)
        self._peers: dict[int, tuple[float, float]] = {}    # dst -> (tokens in seconds, stamp)
        self.evicted = 0

    def take(self, dst: int, now: float) -> bool:
        if self.interval <= 0:
            return True
        cap = self.burst * self.interval
        state = self._peers.get(dst)
        if state is None:
            if len(self._peers) >= self.max_entries:
                del self._peers[next(iter(self._peers))]
                self.evicted += 1
            tokens = cap
        else:
            tokens = min(cap, state[0] + max(now - state[1], 0.0))
        allowed = tokens >= self.interval
        if allowed:
            tokens -= self.interval
        self._peers[dst] = (tokens, now)
        return allowed

    def __len__(self) -> int:
        return len(self._peers)


def quoted_header(original: bytes) -> Ipv4Repr | None:
    """The IPv4 header quoted in an ICMP error.  The datagram is truncated, so only the
    header + 8 octets (RFC 792) must be present and no checksum is checked."""
    if len(original) < HDR_LEN or original[0] >> 4 != 4:
        return None
    ihl = (original[0] & 0xF) * 4
    if ihl < HDR_LEN or len(original) < ihl + 8:
        return None
    _, tos, total, ident, ff, ttl, proto, _, src, dst = IP_HDR.unpack_from(original, 0)
    return Ipv4Repr(src, dst, proto, total, ttl, tos, ident, ff, ihl)




class Icmp:
    def __init__(self, ipv4: Ipv4, *, rate: float = 1000.0, burst: int = 50,
                 ignore_broadcast_echo: bool = True, rng: random.Random | None = None,
                 random_cost: bool = True, ratelimit: float = 1.0) -> None:
        self.ipv4 = ipv4
        self.stats = IcmpStats()
        self.limiter = TokenBucket(rate, burst)
        self.host_limiter = PerDestinationLimiter(ratelimit)   # 0 disables (as icmp_ratelimit=0)
        self.rng = rng or random.SystemRandom()
        self.random_cost = random_cost       # False only for tests that count exactly
        self.ignore_broadcast_echo = ignore_broadcast_echo
        self.echo_waiters = EchoWaiters()
        # a gateway's (issue 13): echo requests to foreign addresses on a transparent interface
        self.forwarder: Callable[[EchoForward], None] | None = None
        ipv4.send_icmp_error = self.send_error
        ipv4.local_error = self.local_error
        ipv4.reasm.on_timeout = self._reasm_timeout

    # --- input --------------------------------------------------------------
    def input(self, pkt: PacketBuffer, ip: IpMeta, now: float) -> None:
        self.stats.in_msgs += 1
        msg = IcmpRepr.parse(pkt.view(), verify=not pkt.csum_valid)
        if isinstance(msg, str):
            self.stats.in_errors += 1
            self.stats.bump(msg)
            return
        if msg.type == ECHO_REQUEST:
            self.stats.in_echos += 1
            if ip.bcast and self.ignore_broadcast_echo:
                self.stats.in_ignored += 1
                return
            ifp = ip.ifp
            if ifp is not None and ifp.transparent and not ip.bcast and not self.ipv4.ifnet.is_local(ip.dst):
                self._forward_echo(msg, ip, now)
                return
            reply = IcmpRepr(ECHO_REPLY, 0, msg.rest, msg.data).emit()
            # a broadcast/multicast dst is not a source: let routing pick ours (RFC 1122 §3.2.2.6)
            self._send(reply, ip.dst if not ip.bcast else 0, ip.src, now, tos=ip.tos)
            self.stats.out_echo_reps += 1
        elif msg.type == ECHO_REPLY:
            self.stats.in_echo_reps += 1
            if not self.echo_waiters.answer(msg.rest >> 16, msg.rest & 0xFFFF, ip.src, msg.data):
                self.stats.in_ignored += 1
        elif msg.type in ERROR_TYPES:
            if msg.type == DEST_UNREACH:
                self.stats.in_dest_unreachs += 1
            elif msg.type == TIME_EXCEEDED:
                self.stats.in_time_excds += 1
            self._deliver_error(msg.type, msg.code, ip.src, msg.data, now,
                                mtu=msg.rest & 0xFFFF if msg.type == DEST_UNREACH and msg.code == FRAG_NEEDED else 0)
        else:
            self.stats.in_ignored += 1   # timestamp, address mask, router adv.: not implemented

    def _forward_echo(self, msg: IcmpRepr, ip: IpMeta, now: float) -> None:
        """An echo to an address that is ours only by transparency: the owner's, never ours to
        answer (a gateway forges no replies for hosts it cannot reach)."""
        forwarder = self.forwarder
        if forwarder is None:
            self.stats.in_echo_foreign_dropped += 1
            return
        self.stats.in_echo_forwarded += 1
        forwarder(EchoForward(socket.AF_INET, ip.src, ip.dst, msg.rest >> 16, msg.rest & 0xFFFF, msg.data, ip.ttl,
                              ip.ifp, now))

    def send_echo_reply(self, src: int, dst: int, ident: int, seq: int, data: bytes, now: float) -> int:
        """An echo reply from `src` -- a remote's address when the route to `dst` leaves by a
        transparent interface -- to `dst`: what a gateway sends when the host's ping to the
        remote was answered.  0 or an errno (EADDRNOTAVAIL for a source it may not use)."""
        err = self.ipv4.transparent_source(src, dst)
        if err:
            return err
        err = self._send(IcmpRepr(ECHO_REPLY, 0, ((ident & 0xFFFF) << 16) | (seq & 0xFFFF), data).emit(), src, dst,
                         now)
        if not err:
            self.stats.out_echo_reps += 1
        return err

    def _deliver_error(self, type_: int, code: int, reporter: int, original: bytes, now: float, mtu: int = 0) -> None:
        if type_ in (SOURCE_QUENCH, REDIRECT):
            self.stats.in_ignored += 1   # RFC 6633: ignore source quench; hosts ignore redirects here
            return
        inner = quoted_header(original)
        if inner is None:
            self.stats.in_errors += 1
            return
        if type_ == DEST_UNREACH and code == FRAG_NEEDED:
            self.stats.in_frag_needed += 1
            if not inner.df:
                self.stats.in_frag_needed_no_df += 1   # RFC 1191 §3: only DF datagrams get one
                return
        err = IcmpError(type_, code, icmp_errno(type_, code), reporter, inner.src, inner.dst, inner.proto,
                        bytes(original[inner.hdr_len:]), mtu)
        pr = self.ipv4.protosw.ip_protox.get(inner.proto)
        if pr is not None and pr.ctlinput is not None:
            pr.ctlinput(err, now)
        else:
            self.stats.in_ignored += 1

    def ctlinput(self, err: IcmpError, now: float) -> None:
        """Errors about ICMP we sent: only echo requests have a waiter."""
        self.echo_waiters.fail(err.payload, ECHO_REQUEST, err.errno, err.reporter)

    def local_error(self, type_: int, code: int, original: bytes, now: float) -> None:
        """An error detected locally (e.g. ARP failure): no packet, straight to the transport."""
        self._deliver_error(type_, code, 0, original, now)

    # --- output -------------------------------------------------------------
    def send_echo(self, dst: int, ident: int, seq: int, payload: bytes, now: float, callback: EchoCallback,
                  *, src: int = 0, ttl: int | None = None, df: bool = False) -> int:
        if self.echo_waiters.wait(ident, seq, callback):
            self.stats.echo_waiters_evicted += 1
        err = self._send(IcmpRepr(ECHO_REQUEST, 0, (ident << 16) | seq, payload).emit(), src, dst, now,
                         ttl=ttl, df=df)
        if err:
            self.echo_waiters.pop((ident, seq), None)
        else:
            self.stats.out_echos += 1
        return err

    def cancel_echo(self, ident: int, seq: int) -> None:
        """Forget the waiter of an echo nobody waits for any more (the Stack's ping timed
        out): a late reply then counts as `in_ignored` and the table does not grow."""
        self.echo_waiters.pop((ident, seq), None)

    def send_error(self, type_: int, code: int, pkt: PacketBuffer, ip: IpMeta, now: float, extra: int = 0) -> None:
        """Report a problem with a received datagram (RFC 1122 §3.2.2 limits apply)."""
        view = memoryview(pkt.buf)
        first = view[ip.hdr_start:pkt.end]
        if len(first) < ip.hdr_len:
            return
        (ff,) = struct.unpack_from("!H", first, 6)
        if (ip.bcast or pkt.ll_bcast or ff & OFFSET_MASK or is_martian_source(ip.src) or ip.src == 0
                or (ip.src >> 24 == 127 and ip.ifp is not self.ipv4.loopback)):
            self.stats.out_suppressed += 1
            return
        if ip.proto == IPPROTO_ICMP:
            inner_type = first[ip.hdr_len] if len(first) > ip.hdr_len else ECHO_REQUEST
            if inner_type in ERROR_TYPES or inner_type not in (ECHO_REQUEST, ECHO_REPLY, 13, 14, 15, 16, 17, 18):
                self.stats.out_suppressed += 1
                return
        if not self.limiter.allows(now):
            self.stats.out_rate_limited += 1
            return
        # Linux icmpv4_xrlim_allow: never for the loopback
        if ip.ifp is not self.ipv4.loopback:
            allowed = self.host_limiter.take(ip.src, now)
            self.stats.out_rate_hosts_evicted = self.host_limiter.evicted
            if not allowed:
                self.stats.out_rate_limited_host += 1
                return
        # SADDNS (CVE-2020-25705): 0, 1 or 2 tokens, 1 on average, so the number of errors a
        # prober sees no longer tells how many the stack sent to others (Linux >= 5.10)
        self.limiter.consume(self.rng.randrange(3) if self.random_cost else 1)
        # RFC 1812 §4.3.2.3 allows more; RFC 792 asks for header + 64 bits.  Linux sends up to 576.
        quote = bytes(first[:min(len(first), 576 - HDR_LEN - 8)])
        msg = IcmpRepr(type_, code, extra, quote).emit()
        if type_ == DEST_UNREACH:
            self.stats.out_dest_unreachs += 1
        elif type_ == TIME_EXCEEDED:
            self.stats.out_time_excds += 1
        self._send(msg, ip.dst, ip.src, now)   # never a broadcast: suppressed above

    def _reasm_timeout(self, header: bytes, first8: bytes, now: float) -> None:
        """RFC 792: time exceeded, code 1, when fragment zero had arrived."""
        ip = quoted_header(header + first8)
        if ip is None:
            return
        # not one of our unicast addresses: it was a broadcast/multicast, which gets no error (RFC 1122 §3.2.2)
        bcast = not self.ipv4.ifnet.is_local(ip.dst) and ip.dst >> 24 != 127
        meta = IpMeta(ip.src, ip.dst, ip.proto, ip.ttl, ip.tos, ip.hdr_len, None, 0, bcast)
        self.send_error(TIME_EXCEEDED, 1, PacketBuffer(header + first8), meta, now)

    def _send(self, msg: bytes, src: int, dst: int, now: float, *, tos: int = 0,
              ttl: int | None = None, df: bool = False) -> int:
        self.stats.out_msgs += 1
        return self.ipv4.output(PacketBuffer.from_payload(msg), src, dst, IPPROTO_ICMP, now, tos=tos, ttl=ttl, df=df)


__all__ = ["FLAG_MF", "FRAG_NEEDED", "HDR_LEN", "Icmp", "IcmpError", "IcmpRepr", "PerDestinationLimiter", "icmp_errno"]
