"""IPv6 fragmentation at the source and reassembly (RFC 8200 §4.5), sans-IO.

Reassembly is keyed by (source, destination, Identification) -- plus a scope the caller may
give for link-local and multicast destinations, as Linux keys those by interface -- and is
defensive in the ways RFC 8200 and its updates ask:
  * a non-final fragment whose length is not a multiple of 8 octets, and a fragment whose
    end would take the reassembled payload past 65535 octets, are answered with a
    Parameter Problem verdict (code 0, pointing at the Payload Length / Fragment Offset
    field) for the caller to send; the datagram they belong to is kept (as Linux does);
  * an overlapping fragment discards the whole datagram *and every later fragment of it*
    until its timer runs out (RFC 5722 §4: "including those not yet received"); only an
    exact duplicate (same offset, length and octets, which RFC 8200 §4.5 allows a host to
    tolerate) is dropped alone;
  * an atomic fragment (offset 0, M = 0) is processed at once, in isolation from any
    datagram in progress under the same key (RFC 6946 §4);
  * an incomplete datagram expires 60 s after its first fragment arrived (RFC 8200 §4.5);
    if fragment zero had arrived, `on_timeout` is told to send ICMPv6 Time Exceeded code 1;
  * memory is bounded by a byte budget (Linux's net.ipv6.ip6frag_high_thresh, 4 MiB) and
    the number of datagrams in progress by a count; the oldest datagram is evicted first
    (Linux instead refuses to start a datagram above the threshold, inet_frag_alloc: a flood
    then starves new traffic there, the oldest datagrams here);
  * per-fragment work is O(log n) in the fragments of its datagram (a bisected sorted list,
    checked against its two neighbours only) and O(1) in the number of datagrams.

What is the caller's (the IPv6 input): parsing the header chain up to the Fragment header,
checking that fragment zero holds the whole header chain (RFC 7112, RFC 8200 §4.5's
Parameter Problem code 3), counting its own in_hdr_errors for the Parameter Problem
verdicts, and rate limiting the ICMPv6 errors it sends.

Fragmentation (`fragment`, `fragment_sizes`, `encode_fragment_header`) cuts a packet's
fragmentable part by a path MTU (never below IPv6's 1280) with a caller-given
Identification (RFC 7739: unpredictable, from the caller's rng).
"""
from __future__ import annotations

import bisect
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ndd.counters import Counters

from .exthdr import FRAG_HDR_LEN, FragmentHeader, encode_fragment_header
from .wire import HDR_LEN, MAX_PAYLOAD_LEN, MIN_MTU, NH_FRAGMENT

PAYLOAD_LENGTH_FIELD = 4      # octet offset of Payload Length in the fixed header
FRAGMENT_OFFSET_FIELD = 2     # octet offset of Fragment Offset in the Fragment header
DEFAULT_TIMEOUT = 60.0        # RFC 8200 §4.5 (Linux net.ipv6.ip6frag_time)
DEFAULT_MAX_BYTES = 4 << 20   # Linux net.ipv6.ip6frag_high_thresh
# Linux bounds datagrams in progress by memory alone; a count bound keeps the table (and a
# flood of one-fragment datagrams, each charged little) in check on its own.  1024 datagrams
# holding one full-size (1232-octet) fragment each are ~2 MiB, half the byte budget.
DEFAULT_MAX_DATAGRAMS = 1024
# What a held fragment and a datagram in progress cost beyond their octets (the fragment's
# tuple, bytes object and list slot; the datagram's record, list and table entry), charged
# so a flood of tiny fragments meets the budget as fast as big ones (Linux charges each skb
# its truesize for the same reason).  Measured with tracemalloc on CPython 3.11 (10000 of
# each: 170 and 475 octets), rounded up.
FRAG_OVERHEAD = 176
DATAGRAM_OVERHEAD = 480

# ECN codepoints of a fragment, as bits of a set (RFC 3168 §5.3; Linux ip_frag_ecn_table)
_NOT_ECT, _ECT_1, _ECT_0, _CE = 1, 2, 4, 8

Key = tuple[int, int, int, int]   # (src, dst, identification, scope)


@dataclass(frozen=True, slots=True)
class Datagram:
    """A reassembled (or atomic-fragment) packet, as if it had never been fragmented:
    fragment zero's unfragmentable part with its Payload Length rewritten and the Next Header
    that named the Fragment header set to the Fragment header's Next Header, then the
    reassembled fragmentable part.  Input continues at `header_len` with `next_header`."""
    packet: bytes
    header_len: int      # where the fragmentable part starts (= the unfragmentable part's length)
    next_header: int     # the header type found at `header_len` (fragment zero's Next Header)

    @property
    def payload(self) -> bytes:
        return self.packet[self.header_len:]


@dataclass(frozen=True, slots=True)
class ParamProblem:
    """The verdict on a fragment that must be answered with ICMPv6 Parameter Problem
    (RFC 4443 §3.4): `code` 0 (erroneous header field), `pointer` the octet offset in the
    fragment's own packet of the field at fault.  The fragment itself was discarded."""
    pointer: int
    code: int = 0


@dataclass
class Ipv6ReasmStats(Counters):
    """RFC 4293 ipSystemStats names, lower-cased (as Linux's Ip6Reasm* counters), plus the
    reasons, one counter each."""
    reasm_reqds: int = 0        # fragments received, atomic ones included (Linux Ip6ReasmReqds)
    reasm_oks: int = 0          # datagrams reassembled, atomic fragments included (as Linux)
    reasm_fails: int = 0        # datagrams given up, whatever the reason (Linux Ip6ReasmFails)
    reasm_timeout: int = 0      # ... of them at the 60 s timeout (Linux Ip6ReasmTimeout)
    reasm_overlaps: int = 0     # ... for an overlapping fragment, RFC 5722 (Linux REASM_OVERLAPS)
    reasm_after_overlap: int = 0   # later fragments of a datagram discarded for an overlap
    reasm_duplicates: int = 0   # exact duplicates dropped, their datagram kept
    reasm_atomic: int = 0       # atomic fragments (RFC 6946), processed alone
    reasm_not_multiple_of_8: int = 0   # non-final fragment length: Parameter Problem verdict
    reasm_too_big: int = 0      # reassembled payload past 65535: Parameter Problem verdict (or,
                                # when only fragment zero's headers take it past, a failure)
    reasm_inconsistent: int = 0   # an empty fragment, two different ends, data past the end
    reasm_ecn_mismatch: int = 0   # Not-ECT fragments mixed with ECN-capable ones (RFC 3168 §5.3)
    reasm_budget_evictions: int = 0   # datagrams evicted, oldest first, for the byte budget
    reasm_table_evictions: int = 0    # datagrams evicted, oldest first, for the count bound
    reasm_budget_drops: int = 0       # a fragment larger than the whole budget (a tiny budget)


@dataclass(eq=False, slots=True)
class _Pending:
    deadline: float
    frags: list[tuple[int, int, bytes]] = field(default_factory=list)   # sorted (start, end, octets)
    total: int = -1           # the fragmentable part's length, once the final fragment arrived
    max_end: int = 0          # the highest end seen (a final fragment may not end before it)
    received: int = 0         # octets held (fragments never overlap, so == covered octets)
    charge: int = DATAGRAM_OVERHEAD   # memory accounted to this datagram
    unfragmentable: bytes = b""       # fragment zero's headers before the Fragment header, as received
    nh_offset: int = 0        # where in them the Next Header naming the Fragment header is
    next_header: int = 0      # fragment zero's Next Header (RFC 8200 §4.5: only its value is used)
    ecn: int = 0              # the set of ECN codepoints the held fragments carried
    dead: bool = False        # discarded for an overlap: later fragments dropped too (RFC 5722)


class Ipv6Reassembler:
    """A timed core (protocols/contracts.py TimedCore): `poll_at()`, `poll(now)`, `kick`."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_datagrams: int = DEFAULT_MAX_DATAGRAMS) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_datagrams = max_datagrams
        # insertion order is deadline order: every datagram lives `timeout` from its first fragment
        self.pending: OrderedDict[Key, _Pending] = OrderedDict()
        self.memory = 0
        self.stats = Ipv6ReasmStats()
        self.kick: Callable[..., None] = lambda at=None: None
        # (src, dst, fragment zero's packet as received, now) of a datagram that timed out after
        # fragment zero arrived: the caller sends ICMPv6 Time Exceeded code 1 to src (RFC 8200
        # §4.5, RFC 4443 §3.3), truncating the packet to fit 1280 octets (RFC 4443 §2.4 (c)).
        # (src, dst, fragment zero, scope, now): the scope is add()'s, so a link-scope sender is
        # answered on the interface the fragments came in on
        self.on_timeout: Callable[[int, int, bytes, int, float], None] = lambda src, dst, pkt, scope, now: None

    # --- input --------------------------------------------------------------------------
    def add(self, src: int, dst: int, unfragmentable: bytes, nh_offset: int, frag: FragmentHeader,
            data: bytes, now: float, *, scope: int = 0) -> Datagram | ParamProblem | None:
        """Take one fragment.

        `unfragmentable`: the fragment's octets before its Fragment header -- the 40-octet fixed
        header and any extension headers before the Fragment header (at least 40 octets).
        `nh_offset`: the offset in it of the Next Header field whose value is 44 (6 when the
        Fragment header follows the fixed header).  `frag`: the Fragment header's fields.
        `data`: the octets after the Fragment header, up to the end given by Payload Length.
        `scope`: anything that must separate datagrams beyond the addresses (Linux keys
        link-local and multicast destinations by interface index as well).

        Returns a Datagram when this fragment completes one (or is an atomic fragment), a
        ParamProblem verdict for the caller to answer (the fragment was discarded), or None
        (held, or dropped and counted)."""
        st = self.stats
        st.reasm_reqds += 1
        if frag.offset == 0 and not frag.more:
            # RFC 6946 §4: in isolation from every datagram in progress, even under the same key
            st.reasm_atomic += 1
            st.reasm_oks += 1
            return _datagram(unfragmentable, nh_offset, frag.next_header, bytes(data),
                             _ecn_bit(unfragmentable))
        key = (src, dst, frag.ident, scope)
        p = self.pending.get(key)
        if p is not None and p.dead:
            st.reasm_after_overlap += 1
            return None
        end = frag.offset + len(data)
        if len(unfragmentable) - HDR_LEN + end > MAX_PAYLOAD_LEN:
            st.reasm_too_big += 1     # RFC 8200 §4.5: point at the Fragment Offset field
            return ParamProblem(len(unfragmentable) + FRAGMENT_OFFSET_FIELD)
        if frag.more and len(data) % 8:
            st.reasm_not_multiple_of_8 += 1   # RFC 8200 §4.5: point at the Payload Length field
            return ParamProblem(PAYLOAD_LENGTH_FIELD)
        if end == frag.offset or (p is not None and not _fits(p, frag.more, end)):
            # an empty fragment, or ends that disagree: the datagram is corrupt (Linux discards it)
            st.reasm_inconsistent += 1
            self._discard(key)
            return None
        cost = len(data) + FRAG_OVERHEAD + (len(unfragmentable) if frag.offset == 0 else 0)
        p = self._admit(key, cost, now)
        if p is None:
            return None
        i = bisect.bisect_left(p.frags, (frag.offset,))
        verdict = _neighbours(p.frags, i, frag.offset, end, data)
        if verdict == _DUPLICATE:
            st.reasm_duplicates += 1
            return None
        if verdict == _OVERLAP:
            st.reasm_overlaps += 1
            self._kill(key, p)
            return None
        p.frags.insert(i, (frag.offset, end, bytes(data)))
        p.received += len(data)
        p.charge += cost
        self.memory += cost
        p.ecn |= _ecn_bit(unfragmentable)
        if end > p.max_end:
            p.max_end = end
        if not frag.more:
            p.total = end
        if frag.offset == 0:
            p.unfragmentable, p.nh_offset, p.next_header = bytes(unfragmentable), nh_offset, frag.next_header
        if p.received == p.total and p.unfragmentable:
            return self._complete(key, p)
        return None

    def _admit(self, key: Key, cost: int, now: float) -> _Pending | None:
        """The datagram `key` with room made for `cost` more octets, created when new.  Makes
        room by evicting the oldest datagrams, possibly this very one (it then starts afresh)."""
        st = self.stats
        p = self.pending.get(key)
        if p is None:
            while len(self.pending) >= self.max_datagrams:
                self._evict_oldest()
                st.reasm_table_evictions += 1
        need = cost + (0 if p is not None else DATAGRAM_OVERHEAD)
        while self.pending and self.memory + need > self.max_bytes:
            self._evict_oldest()
            st.reasm_budget_evictions += 1
            if p is not None and key not in self.pending:
                p = None
                need += DATAGRAM_OVERHEAD
        if self.memory + need > self.max_bytes:
            st.reasm_budget_drops += 1      # alone larger than the whole budget: never admitted
            st.reasm_fails += 1
            return None
        if p is None:
            p = _Pending(deadline=now + self.timeout)
            self.pending[key] = p
            self.memory += p.charge
            if len(self.pending) == 1:
                self.kick(p.deadline)       # the only, hence the earliest, deadline
        return p

    def _complete(self, key: Key, p: _Pending) -> Datagram | None:
        st = self.stats
        del self.pending[key]
        self.memory -= p.charge
        if len(p.unfragmentable) - HDR_LEN + p.total > MAX_PAYLOAD_LEN:
            st.reasm_too_big += 1   # fragment zero's headers are longer than the others' (Linux out_oversize)
            st.reasm_fails += 1
            return None
        if p.ecn & _NOT_ECT and p.ecn != _NOT_ECT:
            st.reasm_ecn_mismatch += 1    # RFC 3168 §5.3: never turn a Not-ECT fragment into ECT/CE
            st.reasm_fails += 1
            return None
        st.reasm_oks += 1
        return _datagram(p.unfragmentable, p.nh_offset, p.next_header, b"".join(f[2] for f in p.frags), p.ecn)

    def _discard(self, key: Key) -> None:
        p = self.pending.pop(key, None)
        if p is not None:
            self.memory -= p.charge
        self.stats.reasm_fails += 1

    def _kill(self, key: Key, p: _Pending) -> None:
        """RFC 5722 §4: discard the datagram and whatever of it is still to come; a tombstone
        (no octets held) stays in the table until the datagram's own deadline."""
        self.memory -= p.charge - DATAGRAM_OVERHEAD
        p.charge = DATAGRAM_OVERHEAD
        p.frags = []
        p.unfragmentable = b""
        p.dead = True
        self.stats.reasm_fails += 1

    def _evict_oldest(self) -> None:
        _, p = self.pending.popitem(last=False)
        self.memory -= p.charge
        if not p.dead:              # a tombstone was counted when it died
            self.stats.reasm_fails += 1

    # --- timer --------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        p = next(iter(self.pending.values()), None)
        return None if p is None else p.deadline

    def poll(self, now: float) -> None:
        while self.pending:
            key, p = next(iter(self.pending.items()))
            if p.deadline > now:
                break
            del self.pending[key]
            self.memory -= p.charge
            if p.dead:
                continue            # RFC 5722: silently, and counted when it died
            self.stats.reasm_timeout += 1
            self.stats.reasm_fails += 1
            if p.unfragmentable:    # RFC 8200 §4.5: Time Exceeded only if fragment zero arrived
                src, dst, _, scope = key
                self.on_timeout(src, dst, _fragment_zero(key, p), scope, now)


_FITS, _DUPLICATE, _OVERLAP = 0, 1, 2


def _neighbours(frags: list[tuple[int, int, bytes]], i: int, start: int, end: int, data: bytes) -> int:
    """How [start, end) sits among held fragments, `i` its insertion point.  They are disjoint
    and sorted, so only the one before and the one at `i` can overlap it."""
    for j in (i - 1, i):
        if 0 <= j < len(frags):
            s, e, held = frags[j]
            if s < end and start < e:
                # RFC 8200 §4.5 lets a host drop an exact duplicate alone.  Linux is looser: any
                # fragment inside an already-received run is a duplicate, octets unchecked
                # (inet_frag_queue_insert's IPFRAG_DUP); we call that an overlap unless the
                # range and the octets are the same.
                return _DUPLICATE if s == start and e == end and held == data else _OVERLAP
    return _FITS


def _fits(p: _Pending, more: bool, end: int) -> bool:
    """The fragment's end agrees with what the datagram already knows (Linux ip6_frag_queue)."""
    if not more:
        return end >= p.max_end and p.total in (-1, end)
    return p.total < 0 or end <= p.total


def _ecn_bit(unfragmentable: bytes) -> int:
    # Traffic Class straddles octets 0-1; ECN is its two low bits (RFC 3168 §5, RFC 8200 §7)
    return 1 << ((unfragmentable[1] >> 4) & 3)


def _datagram(unfragmentable: bytes, nh_offset: int, next_header: int, payload: bytes, ecn: int) -> Datagram:
    head = bytearray(unfragmentable)
    head[nh_offset] = next_header
    struct.pack_into("!H", head, PAYLOAD_LENGTH_FIELD, len(head) - HDR_LEN + len(payload))
    if ecn & _CE:
        head[1] |= 0x30       # CE on any fragment marks the datagram (RFC 3168 §5.3)
    return Datagram(bytes(head) + payload, len(head), next_header)


def _fragment_zero(key: Key, p: _Pending) -> bytes:
    """Fragment zero as it arrived, for the Time Exceeded message (its reserved fields as 0)."""
    _, _, data = p.frags[0]        # held fragments are sorted: fragment zero is first
    return p.unfragmentable + encode_fragment_header(p.next_header, 0, True, key[2]) + data


# --- fragmentation at the source ---------------------------------------------------------------
def fragment_sizes(unfragmentable_len: int, fragmentable_len: int, mtu: int) -> list[tuple[int, int]]:
    """(offset, length) of each fragment's share of the fragmentable part: every fragment
    packet is `unfragmentable_len + 8 + length` octets, at most max(mtu, 1280); every length
    but the last a multiple of 8 (RFC 8200 §4.5).  [] when it cannot be done: no room for
    8 octets of data beside the headers, or a payload past 65535 (no jumbograms)."""
    step = (max(mtu, MIN_MTU) - unfragmentable_len - FRAG_HDR_LEN) & ~7
    if step <= 0 or unfragmentable_len - HDR_LEN + fragmentable_len > MAX_PAYLOAD_LEN:
        return []
    return [(off, min(step, fragmentable_len - off)) for off in range(0, fragmentable_len, step)]


def fragment(packet: bytes, unfragmentable_len: int, nh_offset: int, ident: int, mtu: int) -> list[bytes]:
    """Cut a complete IPv6 packet into fragment packets for a path MTU (RFC 8200 §4.5).

    `packet`: the packet as it would go unfragmented (fixed header, extension headers,
    upper-layer data); each fragment gets its own Payload Length.  `unfragmentable_len`: the length of
    its unfragmentable part (the fixed header plus any Hop-by-Hop, Routing, or Destination
    Options-before-Routing headers); the Fragment header goes there.  `nh_offset`: the offset
    of the Next Header field that names the first fragmentable header (6 for the fixed
    header's own); it becomes 44 and its value moves into each Fragment header.  `ident`: the
    Identification, unpredictable per RFC 7739 (the caller's rng).  `mtu`: the path MTU,
    taken as 1280 when lower (RFC 8200 §5).

    Returns the fragment packets, complete (Payload Length set), in order.  A packet that fits
    `mtu` is returned alone and unchanged (no atomic fragments: RFC 8021).  [] when it
    cannot be fragmented (see fragment_sizes); the caller counts frag_fails.  The caller must
    also keep the first fragment holding the whole header chain (RFC 7112), which any chain
    shorter than 1280 - unfragmentable_len - 8 octets does.

    A caller that builds its packets itself (prepending the fixed header to a buffer) uses
    `fragment_sizes` and `encode_fragment_header` the same way."""
    mtu = max(mtu, MIN_MTU)
    if len(packet) <= mtu:
        return [bytes(packet)]
    fragmentable_len = len(packet) - unfragmentable_len
    sizes = fragment_sizes(unfragmentable_len, fragmentable_len, mtu)
    if not sizes:
        return []
    next_header = packet[nh_offset]
    head = bytearray(packet[:unfragmentable_len])
    head[nh_offset] = NH_FRAGMENT
    out = []
    view = memoryview(packet)
    for off, length in sizes:
        struct.pack_into("!H", head, PAYLOAD_LENGTH_FIELD,
                         unfragmentable_len - HDR_LEN + FRAG_HDR_LEN + length)
        more = off + length < fragmentable_len
        start = unfragmentable_len + off
        out.append(b"".join((head, encode_fragment_header(next_header, off, more, ident),
                             view[start:start + length])))
    return out
