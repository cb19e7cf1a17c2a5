"""IPv4 fragmentation (RFC 791 §3.2) and reassembly (RFC 815 holes, RFC 791 timers).

Reassembly is defensive:
  * a datagram may not exceed 65535 octets (no "ping of death"),
  * non-final fragments must carry a multiple of 8 octets,
  * an exact duplicate fragment is ignored; any other overlap discards the whole
    datagram (the RFC 5722 rule, which Linux also applies to IPv4 since 2018) --
    overlapping data can never be used to rewrite a header,
  * memory is bounded (`max_bytes`); the oldest datagrams are evicted first,
  * an incomplete datagram expires after `timeout` (RFC 1122 §3.3.2 suggests 60-120 s;
    we use 30 s like Linux),
  * the ECN field is combined as RFC 3168 §5.3 asks (Linux ip_frag_ecn_table): CE on any
    fragment marks the datagram CE; Not-ECT fragments mixed with ECN-capable ones drop it.
"""
from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ndd.checksum import checksum
from ndd.counters import Counters

MAX_DATAGRAM = 65535
# What a fragment and a pending datagram cost beyond their payload (Python objects, list
# slots): charged so that floods of tiny fragments hit the bound as hard as big ones
# (Linux charges skb truesize for the same reason).
FRAG_OVERHEAD = 96
DATAGRAM_OVERHEAD = 256
# ECN codepoints seen among a datagram's fragments, as bits of a set (RFC 3168 §5.3)
_NOT_ECT, _CE = 1 << 0, 1 << 3

Key = tuple[int, int, int, int]   # (src, dst, proto, ident)


@dataclass(eq=False)
class _Pending:
    deadline: float
    frags: list[tuple[int, int, bytes]] = field(default_factory=list)  # sorted (start, end, data)
    total: int = -1            # payload length, known once the last fragment arrived
    received: int = 0
    charge: int = DATAGRAM_OVERHEAD   # memory accounted to this datagram
    header: bytes = b""        # IP header of the offset-0 fragment (for the datagram and for ICMP)
    first8: bytes = b""
    ecn: int = 0               # the set of ECN codepoints the fragments carried (1 << codepoint)


@dataclass
class ReasmStats(Counters):
    reqds: int = 0       # fragments received
    oks: int = 0         # datagrams rebuilt
    fails: int = 0       # datagrams given up (all reasons)
    timeouts: int = 0
    overlaps: int = 0
    duplicates: int = 0
    oversize: int = 0
    bad_length: int = 0
    evictions: int = 0
    ecn_mismatch: int = 0   # Not-ECT fragments mixed with ECN-capable ones: dropped (RFC 3168 §5.3)


class Reassembler:
    def __init__(self, timeout: float = 30.0, max_bytes: int = 4 << 20) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.pending: OrderedDict[Key, _Pending] = OrderedDict()
        self.memory = 0
        self.stats = ReasmStats()
        self.kick: Callable[[], None] = lambda: None
        # called with (ip header, first 8 payload octets) of a datagram that timed out
        # after its first fragment had arrived (RFC 792 time exceeded, code 1)
        self.on_timeout: Callable[[bytes, bytes, float], None] = lambda hdr, first8, now: None

    def add(self, key: Key, header: bytes, offset: int, data: bytes, more: bool,
            now: float) -> tuple[bytes, bytes] | None:
        """Add one fragment.  Returns (header of the first fragment, whole payload) when complete."""
        self.stats.reqds += 1
        end = offset + len(data)
        if end + len(header) > MAX_DATAGRAM:
            self.stats.oversize += 1
            self._drop(key)
            return None
        if more and (len(data) % 8 or not data):
            self.stats.bad_length += 1
            self._drop(key)
            return None
        # every fragment counts against the bound, not just a datagram's first: else tiny first
        # fragments grown later pin unbounded memory.  Oldest first, possibly this datagram.
        cost = len(data) + FRAG_OVERHEAD
        need = cost if key in self.pending else cost + DATAGRAM_OVERHEAD
        self._make_room(need)
        if key not in self.pending and need == cost:
            need += DATAGRAM_OVERHEAD   # making room evicted this very datagram: it starts afresh
            self._make_room(need)
        if self.memory + need > self.max_bytes:
            self._drop(key)      # bigger than the whole budget: never admit it
            return None
        p = self.pending.get(key)
        if p is None:
            p = _Pending(deadline=now + self.timeout)
            self.pending[key] = p
            self.memory += p.charge
            self.kick()
        if not more:
            if (p.total >= 0 and p.total != end) or end < max((f[1] for f in p.frags), default=0):
                self.stats.bad_length += 1
                self._drop(key)
                return None
            p.total = end
        elif p.total >= 0 and end > p.total:
            self.stats.bad_length += 1
            self._drop(key)
            return None
        i = bisect.bisect_left(p.frags, (offset,))
        for j in (i - 1, i):
            if 0 <= j < len(p.frags):
                s, e, d = p.frags[j]
                if s < end and offset < e:
                    if s == offset and e == end and d == data:
                        self.stats.duplicates += 1
                        return None
                    self.stats.overlaps += 1
                    self._drop(key)
                    return None
        p.frags.insert(i, (offset, end, bytes(data)))
        p.ecn |= 1 << (header[1] & 3)
        p.received += len(data)
        p.charge += cost
        self.memory += cost
        if offset == 0:
            p.header = header
            p.first8 = bytes(data[:8])
        if p.total >= 0 and p.received == p.total and p.header:
            del self.pending[key]
            self.memory -= p.charge
            if p.ecn & _NOT_ECT and p.ecn != _NOT_ECT:
                self.stats.ecn_mismatch += 1     # never turn a Not-ECT fragment into ECT or CE
                self.stats.fails += 1
                return None
            self.stats.oks += 1
            header = _mark_ce(p.header) if p.ecn & _CE else p.header
            return header, b"".join(d for _, _, d in p.frags)
        return None

    def _drop(self, key: Key) -> None:
        p = self.pending.pop(key, None)
        if p is not None:
            self.memory -= p.charge
        self.stats.fails += 1

    def _make_room(self, need: int) -> None:
        while self.pending and self.memory + need > self.max_bytes:
            _, p = self.pending.popitem(last=False)
            self.memory -= p.charge
            self.stats.evictions += 1
            self.stats.fails += 1

    def poll_at(self) -> float | None:
        # insertion order == deadline order (fixed timeout from first fragment)
        for p in self.pending.values():
            return p.deadline
        return None

    def poll(self, now: float) -> None:
        while self.pending:
            key, p = next(iter(self.pending.items()))
            if p.deadline > now:
                break
            del self.pending[key]
            self.memory -= p.charge
            self.stats.timeouts += 1
            self.stats.fails += 1
            if p.header:
                self.on_timeout(p.header, p.first8, now)


def _mark_ce(header: bytes) -> bytes:
    """Fragment zero's header with the ECN field set to CE and its checksum made good again:
    a CE mark on any fragment is the datagram's (RFC 3168 §5.3)."""
    out = bytearray(header)
    out[1] |= 3
    if len(out) >= 20:
        out[10:12] = b"\0\0"
        out[10:12] = checksum(out).to_bytes(2, "big")
    return bytes(out)


def fragment_sizes(payload_len: int, hdr_len: int, mtu: int) -> list[tuple[int, int]]:
    """(offset, length) of each fragment's payload; all but the last a multiple of 8."""
    step = (mtu - hdr_len) & ~7
    if step <= 0:
        return []
    return [(off, min(step, payload_len - off)) for off in range(0, payload_len, step)]
