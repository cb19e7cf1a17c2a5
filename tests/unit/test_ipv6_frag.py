"""IPv6 fragmentation and reassembly (RFC 8200 §4.5; overlaps RFC 5722; atomic fragments
RFC 6946; ECN RFC 3168 §5.3), with an explicit clock."""
from __future__ import annotations

import os
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.ipv6.exthdr import FragmentHeader, encode_fragment_header, parse_fragment_header
from protocols.ipv6.frag import (
    DATAGRAM_OVERHEAD,
    FRAG_OVERHEAD,
    Datagram,
    Ipv6Reassembler,
    ParamProblem,
    fragment,
    fragment_sizes,
)
from protocols.ipv6.wire import MAX_PAYLOAD_LEN, MIN_MTU

SRC = 0x20010DB8000000000000000000000001
DST = 0x20010DB8000000000000000000000002
UDP, HOP_BY_HOP, FRAG = 17, 0, 44
IDENT = 0xDEADBEEF


def fixed_header(payload_len: int, next_header: int, *, tclass: int = 0, hop_limit: int = 64,
                 src: int = SRC, dst: int = DST) -> bytes:
    first = (6 << 28) | (tclass << 20)
    addresses = src.to_bytes(16, "big") + dst.to_bytes(16, "big")
    return struct.pack("!IHBB", first, payload_len, next_header, hop_limit) + addresses


def packet(payload: bytes, *, ext: bytes = b"", tclass: int = 0, hop_limit: int = 64) -> bytes:
    """A complete packet: fixed header, then `ext` (a hop-by-hop header naming UDP) if any."""
    return fixed_header(len(ext) + len(payload), HOP_BY_HOP if ext else UDP, tclass=tclass,
                        hop_limit=hop_limit) + ext + payload


HBH = bytes([UDP, 0, 1, 4, 0, 0, 0, 0])     # hop-by-hop: next UDP, PadN option (8 octets)


def fragment_packet(unfrag: bytes, offset: int, data: bytes, more: bool, *, ident: int = IDENT,
                    next_header: int = UDP, nh_offset: int = 6) -> bytes:
    """One fragment packet built by hand (the Fragment header right after `unfrag`)."""
    head = bytearray(unfrag)
    head[nh_offset] = FRAG
    struct.pack_into("!H", head, 4, len(unfrag) - 40 + 8 + len(data))
    return bytes(head) + encode_fragment_header(next_header, offset, more, ident) + data


def add(r: Ipv6Reassembler, pkt: bytes, now: float = 0.0, *, unfrag_len: int = 40, nh_offset: int = 6,
        scope: int = 0) -> Datagram | ParamProblem | None:
    """Feed a fragment packet as the IPv6 input would: split at its Fragment header."""
    frag = parse_fragment_header(pkt[unfrag_len:])
    assert frag is not None
    return r.add(SRC, DST, pkt[:unfrag_len], nh_offset, frag, pkt[unfrag_len + 8:], now, scope=scope)


def split(payload: bytes, step: int, **kw: int) -> list[bytes]:
    """Fragment packets of `payload` (no extension headers), `step` octets each."""
    unfrag = fixed_header(0, UDP)
    return [fragment_packet(unfrag, off, payload[off:off + step], off + step < len(payload), **kw)
            for off in range(0, len(payload), step)]


def feed(r: Ipv6Reassembler, frags: list[bytes], now: float = 0.0, **kw: int) -> Datagram | ParamProblem | None:
    results = [add(r, f, now, **kw) for f in frags]
    assert all(x is None for x in results[:-1])
    return results[-1]


PAYLOAD = os.urandom(3000)
WHOLE = packet(PAYLOAD)


def check_empty(r: Ipv6Reassembler) -> None:
    assert not r.pending and r.memory == 0 and r.poll_at() is None


# --- the Fragment header -------------------------------------------------------------------------
@given(st.integers(0, 255), st.integers(0, 8191).map(lambda u: u * 8), st.booleans(), st.integers(0, 2**32 - 1))
def test_fragment_header_round_trip(next_header: int, offset: int, more: bool, ident: int) -> None:
    raw = encode_fragment_header(next_header, offset, more, ident)
    assert len(raw) == 8 and raw[1] == 0 and raw[3] & 6 == 0      # reserved fields zero
    assert parse_fragment_header(raw) == FragmentHeader(next_header, offset, more, ident)


def test_fragment_header_reserved_bits_ignored_and_short_input() -> None:
    raw = bytearray(encode_fragment_header(UDP, 1232, True, 7))
    raw[1] = 0xFF
    raw[3] |= 6
    assert parse_fragment_header(bytes(raw)) == FragmentHeader(UDP, 1232, True, 7)
    assert parse_fragment_header(raw[:7]) is None


# --- reassembly: the good cases ------------------------------------------------------------------
def test_in_order() -> None:
    r = Ipv6Reassembler()
    out = feed(r, fragment(WHOLE, 40, 6, IDENT, MIN_MTU))
    assert isinstance(out, Datagram)
    assert out.packet == WHOLE and out.header_len == 40 and out.next_header == UDP and out.payload == PAYLOAD
    assert r.stats.reasm_reqds == 3 and r.stats.reasm_oks == 1 and r.stats.reasm_fails == 0
    check_empty(r)


def test_reverse_order() -> None:
    r = Ipv6Reassembler()
    out = feed(r, fragment(WHOLE, 40, 6, IDENT, MIN_MTU)[::-1])
    assert isinstance(out, Datagram) and out.packet == WHOLE
    check_empty(r)


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=600), st.integers(1, 12).map(lambda k: 8 * k), st.data())
def test_any_permutation_of_any_split(payload: bytes, step: int, data: st.DataObject) -> None:
    frags = split(payload, step)
    r = Ipv6Reassembler()
    out = feed(r, data.draw(st.permutations(frags)))
    if len(frags) == 1:      # offset 0, M = 0: an atomic fragment
        assert r.stats.reasm_atomic == 1
    assert isinstance(out, Datagram) and out.packet == packet(payload)
    check_empty(r)


@settings(max_examples=60, deadline=None)
@given(st.integers(1281, 9000), st.integers(1280, 9000), st.booleans(), st.integers(0, 2**32 - 1), st.data())
def test_round_trip_fragment_then_reassemble(size: int, mtu: int, with_ext: bool, ident: int,
                                             data: st.DataObject) -> None:
    original = packet(os.urandom(size), ext=HBH if with_ext else b"")
    unfrag_len, nh_offset = (48, 40) if with_ext else (40, 6)
    frags = fragment(original, unfrag_len, nh_offset, ident, mtu)
    if len(original) <= mtu:
        assert frags == [original]
        return
    assert len(frags) >= 2
    for f in frags:
        assert len(f) <= mtu and struct.unpack_from("!H", f, 4)[0] == len(f) - 40
        assert f[nh_offset] == FRAG and f[:unfrag_len][7] == 64
        header = parse_fragment_header(f[unfrag_len:])
        assert header is not None and header.ident == ident and header.next_header == UDP
        assert not header.more or (len(f) - unfrag_len - 8) % 8 == 0
    r = Ipv6Reassembler()
    out = feed(r, data.draw(st.permutations(frags)), unfrag_len=unfrag_len, nh_offset=nh_offset)
    assert isinstance(out, Datagram)
    assert out.packet == original and out.header_len == unfrag_len and out.next_header == UDP
    check_empty(r)


def test_unfragmentable_part_and_next_header_come_from_fragment_zero() -> None:
    # RFC 8200 §4.5: the unfragmentable part and the Next Header of the offset-zero fragment
    r = Ipv6Reassembler()
    zero_unfrag = fixed_header(0, UDP, hop_limit=7)
    other_unfrag = fixed_header(0, UDP, hop_limit=200)
    assert add(r, fragment_packet(other_unfrag, 16, b"c" * 8, False, next_header=6)) is None
    assert add(r, fragment_packet(other_unfrag, 8, b"b" * 8, True, next_header=58)) is None
    out = add(r, fragment_packet(zero_unfrag, 0, b"a" * 8, True))
    assert isinstance(out, Datagram) and out.next_header == UDP
    assert out.packet == fixed_header(24, UDP, hop_limit=7) + b"a" * 8 + b"b" * 8 + b"c" * 8


def test_extension_header_before_the_fragment_header() -> None:
    # the Next Header that named the Fragment header is in the hop-by-hop header (octet 40)
    original = packet(PAYLOAD[:2000], ext=HBH)
    frags = fragment(original, 48, 40, IDENT, MIN_MTU)
    assert all(f[6] == HOP_BY_HOP and f[40] == FRAG for f in frags)
    r = Ipv6Reassembler()
    out = feed(r, frags, unfrag_len=48, nh_offset=40)
    assert isinstance(out, Datagram) and out.packet == original and out.header_len == 48


def test_datagrams_are_keyed_by_addresses_ident_and_scope() -> None:
    r = Ipv6Reassembler()
    a, b = split(b"A" * 40, 16), split(b"B" * 40, 16, ident=IDENT + 1)
    c = split(b"C" * 40, 16)
    assert add(r, a[0]) is None and add(r, b[0]) is None
    assert add(r, c[0], scope=2) is None     # same key on another interface: apart
    assert len(r.pending) == 3
    assert feed(r, c[1:], scope=2) == Datagram(packet(b"C" * 40), 40, UDP)
    assert feed(r, b[1:]) == Datagram(packet(b"B" * 40), 40, UDP)
    assert feed(r, a[1:]) == Datagram(packet(b"A" * 40), 40, UDP)
    check_empty(r)


def test_tiny_fragments() -> None:
    # 8-octet fragments are legal (RFC 8200 requires only the header chain in fragment zero);
    # each is charged its overhead so a flood of them meets the budget like big ones
    payload = os.urandom(1000)
    frags = split(payload, 8)
    r = Ipv6Reassembler()
    for f in frags[1:]:
        assert add(r, f) is None
    assert r.memory == DATAGRAM_OVERHEAD + (len(frags) - 1) * (8 + FRAG_OVERHEAD)
    out = add(r, frags[0])
    assert isinstance(out, Datagram) and out.packet == packet(payload)
    check_empty(r)


def test_exact_duplicate_is_dropped_alone() -> None:
    r = Ipv6Reassembler()
    frags = split(PAYLOAD, 1000)
    assert add(r, frags[1]) is None
    memory = r.memory
    assert add(r, frags[1]) is None
    assert r.stats.reasm_duplicates == 1 and r.stats.reasm_overlaps == 0 and r.memory == memory
    out = feed(r, [frags[0], frags[1], frags[2]])       # fragment one a third time, in the middle
    assert isinstance(out, Datagram) and out.packet == WHOLE
    assert r.stats.reasm_duplicates == 2 and r.stats.reasm_fails == 0


# --- atomic fragments (RFC 6946) ----------------------------------------------------------------
def test_atomic_fragment_is_processed_at_once() -> None:
    r = Ipv6Reassembler()
    out = add(r, fragment_packet(fixed_header(0, UDP), 0, b"hello", False))
    assert out == Datagram(packet(b"hello"), 40, UDP)
    assert r.stats.reasm_atomic == 1 and r.stats.reasm_oks == 1 and r.stats.reasm_reqds == 1
    check_empty(r)


def test_atomic_fragment_leaves_a_datagram_in_progress_alone() -> None:
    # RFC 6946 §4: in isolation, even with the same {src, dst, Identification}
    r = Ipv6Reassembler()
    frags = split(PAYLOAD, 1000)
    assert add(r, frags[1]) is None
    memory = r.memory
    atomic = fragment_packet(fixed_header(0, UDP), 0, b"x" * 1000, False)    # would overlap frags[0]'s range
    assert add(r, atomic) == Datagram(packet(b"x" * 1000), 40, UDP)
    assert r.memory == memory and r.stats.reasm_overlaps == 0
    out = feed(r, [frags[0], frags[2]])
    assert isinstance(out, Datagram) and out.packet == WHOLE


def test_empty_atomic_fragment() -> None:
    r = Ipv6Reassembler()
    assert add(r, fragment_packet(fixed_header(0, UDP), 0, b"", False)) == Datagram(packet(b""), 40, UDP)


# --- overlaps (RFC 5722) ------------------------------------------------------------------------
def overlap_case(first: tuple[int, int], second: tuple[int, int]) -> Ipv6Reassembler:
    r = Ipv6Reassembler()
    unfrag = fixed_header(0, UDP)
    assert add(r, fragment_packet(unfrag, first[0], b"a" * (first[1] - first[0]), True)) is None
    assert add(r, fragment_packet(unfrag, second[0], b"b" * (second[1] - second[0]), True)) is None
    return r


def assert_killed(r: Ipv6Reassembler) -> None:
    key = (SRC, DST, IDENT, 0)
    assert r.stats.reasm_overlaps == 1 and r.stats.reasm_fails == 1
    assert r.pending[key].dead and not r.pending[key].frags
    assert r.memory == DATAGRAM_OVERHEAD      # the tombstone holds no octets


def test_overlap_at_the_front() -> None:
    assert_killed(overlap_case((16, 48), (8, 24)))


def test_overlap_at_the_back() -> None:
    assert_killed(overlap_case((16, 48), (40, 56)))


def test_overlap_contained() -> None:
    assert_killed(overlap_case((16, 48), (24, 32)))


def test_overlap_containing() -> None:
    assert_killed(overlap_case((16, 48), (8, 56)))


def test_same_range_different_octets_is_an_overlap() -> None:
    assert_killed(overlap_case((16, 48), (16, 48)))


def test_overlap_spanning_two_fragments() -> None:
    r = Ipv6Reassembler()
    unfrag = fixed_header(0, UDP)
    add(r, fragment_packet(unfrag, 0, b"a" * 8, True))
    add(r, fragment_packet(unfrag, 32, b"c" * 8, True))
    add(r, fragment_packet(unfrag, 8, b"b" * 40, True))     # 8..48 covers the hole and the one at 32
    assert_killed(r)


def test_after_an_overlap_every_later_fragment_is_dropped_until_the_timeout() -> None:
    # RFC 5722 §4: the datagram "and any constituent fragments, including those not yet received"
    r = Ipv6Reassembler(timeout=60.0)
    timeouts: list[bytes] = []
    r.on_timeout = lambda src, dst, pkt, scope, now: timeouts.append(pkt)
    frags = split(PAYLOAD, 1000)
    add(r, frags[0], 10.0)
    add(r, fragment_packet(fixed_header(0, UDP), 992, b"z" * 16, True), 11.0)   # overlaps fragment zero
    for f in frags:          # the whole genuine datagram, every fragment: none of it completes
        assert add(r, f, 12.0) is None
    assert r.stats.reasm_after_overlap == 3 and r.stats.reasm_oks == 0 and r.stats.reasm_fails == 1
    assert r.memory == DATAGRAM_OVERHEAD and r.poll_at() == 70.0
    r.poll(70.0)      # the tombstone goes silently: no Time Exceeded, no second failure
    assert not timeouts and r.stats.reasm_timeout == 0 and r.stats.reasm_fails == 1
    check_empty(r)
    out = feed(r, frags, 71.0)     # the key is free again
    assert isinstance(out, Datagram) and out.packet == WHOLE


# --- malformed fragments -------------------------------------------------------------------------
def test_non_final_fragment_not_a_multiple_of_8_is_a_parameter_problem() -> None:
    r = Ipv6Reassembler()
    frags = split(PAYLOAD, 1000)
    add(r, frags[0])
    bad = fragment_packet(fixed_header(0, UDP), 1000, b"q" * 1001, True)
    assert add(r, bad) == ParamProblem(pointer=4, code=0)     # the Payload Length field
    assert r.stats.reasm_not_multiple_of_8 == 1 and r.stats.reasm_fails == 0
    out = feed(r, frags[1:])       # the fragment alone was discarded, as Linux does
    assert isinstance(out, Datagram) and out.packet == WHOLE


def test_final_fragment_of_any_length_is_fine() -> None:
    r = Ipv6Reassembler()
    out = feed(r, split(PAYLOAD[:1003], 1000))
    assert isinstance(out, Datagram) and out.payload == PAYLOAD[:1003]


def test_fragment_past_65535_is_a_parameter_problem_at_the_fragment_offset() -> None:
    r = Ipv6Reassembler()
    unfrag = fixed_header(0, UDP)
    assert add(r, fragment_packet(unfrag, 65528, b"x" * 7, False)) is None       # ends at 65535: fits
    assert r.stats.reasm_too_big == 0
    verdict = add(r, fragment_packet(unfrag, 65528, b"x" * 8, False))            # ends at 65536
    assert verdict == ParamProblem(pointer=40 + 2)
    # behind a hop-by-hop header the unfragmentable part counts too, and the pointer moves
    hbh_unfrag = fixed_header(0, HOP_BY_HOP) + HBH
    pkt = fragment_packet(hbh_unfrag, 65528, b"x" * 7, False, nh_offset=40)      # 8 + 65535 octets
    assert add(r, pkt, unfrag_len=48, nh_offset=40) == ParamProblem(pointer=48 + 2)
    assert r.stats.reasm_too_big == 2 and r.stats.reasm_fails == 0


def test_fragment_zero_headers_taking_the_datagram_past_65535() -> None:
    # every fragment fits by its own headers; fragment zero's longer ones do not: given up
    r = Ipv6Reassembler()
    assert add(r, fragment_packet(fixed_header(0, UDP), 8, b"x" * (MAX_PAYLOAD_LEN - 8), False)) is None
    hbh_unfrag = fixed_header(0, HOP_BY_HOP) + HBH
    assert add(r, fragment_packet(hbh_unfrag, 0, b"y" * 8, True, nh_offset=40), unfrag_len=48, nh_offset=40) is None
    assert r.stats.reasm_too_big == 1 and r.stats.reasm_fails == 1 and r.stats.reasm_oks == 0
    check_empty(r)


def test_empty_fragment_discards_the_datagram() -> None:
    r = Ipv6Reassembler()
    frags = split(PAYLOAD, 1000)
    add(r, frags[0])
    assert add(r, fragment_packet(fixed_header(0, UDP), 1000, b"", True)) is None
    assert r.stats.reasm_inconsistent == 1 and r.stats.reasm_fails == 1
    check_empty(r)


def test_final_fragments_that_disagree_discard_the_datagram() -> None:
    unfrag = fixed_header(0, UDP)
    # two different ends
    r = Ipv6Reassembler()
    add(r, fragment_packet(unfrag, 16, b"x" * 8, False))
    add(r, fragment_packet(unfrag, 32, b"x" * 8, False))
    assert r.stats.reasm_inconsistent == 1 and not r.pending
    # a non-final fragment past the known end
    add(r, fragment_packet(unfrag, 16, b"x" * 8, False))
    add(r, fragment_packet(unfrag, 24, b"x" * 8, True))
    assert r.stats.reasm_inconsistent == 2 and not r.pending
    # a final fragment that ends before data already held
    add(r, fragment_packet(unfrag, 32, b"x" * 8, True))
    add(r, fragment_packet(unfrag, 8, b"x" * 8, False))
    assert r.stats.reasm_inconsistent == 3 and r.stats.reasm_fails == 3
    check_empty(r)


# --- the 60 s timer and Time Exceeded ------------------------------------------------------------
def test_timeout_after_fragment_zero_reports_it() -> None:
    r = Ipv6Reassembler()
    timeouts: list[tuple[int, int, bytes, float]] = []
    r.on_timeout = lambda src, dst, pkt, scope, now: timeouts.append((src, dst, pkt, now))
    kicks: list[float | None] = []
    r.kick = lambda at=None: kicks.append(at)
    assert r.poll_at() is None
    frags = split(PAYLOAD, 1000)
    add(r, frags[0], 100.0)
    add(r, frags[2], 110.0)
    assert kicks == [160.0]           # armed once, at the first fragment (RFC 8200 §4.5: 60 s)
    assert r.poll_at() == 160.0
    r.poll(159.999)
    assert not timeouts and r.pending
    r.poll(160.0)
    assert timeouts == [(SRC, DST, frags[0], 160.0)]    # fragment zero as it arrived
    assert r.stats.reasm_timeout == 1 and r.stats.reasm_fails == 1
    check_empty(r)


def test_timeout_without_fragment_zero_is_silent() -> None:
    r = Ipv6Reassembler(timeout=60.0)
    timeouts: list[bytes] = []
    r.on_timeout = lambda src, dst, pkt, scope, now: timeouts.append(pkt)
    frags = split(PAYLOAD, 1000)
    add(r, frags[1], 0.0)
    add(r, frags[2], 1.0)
    r.poll(60.0)
    assert not timeouts and r.stats.reasm_timeout == 1 and r.stats.reasm_fails == 1
    check_empty(r)


def test_timers_expire_in_arrival_order() -> None:
    r = Ipv6Reassembler(timeout=60.0)
    a, b = split(b"A" * 40, 16), split(b"B" * 40, 16, ident=2)
    add(r, a[0], 0.0)
    add(r, b[0], 5.0)
    add(r, a[1], 30.0)       # later fragments do not extend the deadline
    assert r.poll_at() == 60.0
    r.poll(60.0)
    assert r.poll_at() == 65.0 and len(r.pending) == 1
    r.poll(65.0)
    assert r.stats.reasm_timeout == 2
    check_empty(r)


# --- bounds: byte budget and datagram count ------------------------------------------------------
def test_byte_budget_evicts_the_oldest_datagram_first() -> None:
    one = 1000 + FRAG_OVERHEAD + 40 + DATAGRAM_OVERHEAD       # a datagram holding fragment zero
    r = Ipv6Reassembler(max_bytes=3 * one)
    firsts = [split(PAYLOAD, 1000, ident=i)[0] for i in range(4)]
    for i, f in enumerate(firsts):
        add(r, f, float(i))
    assert r.memory <= r.max_bytes and len(r.pending) == 3
    assert [k[2] for k in r.pending] == [1, 2, 3]
    assert r.stats.reasm_budget_evictions == 1 and r.stats.reasm_fails == 1
    # the newest completes, making room by evicting the older ones in turn
    out = feed(r, split(PAYLOAD, 1000, ident=3)[1:], 4.0)
    assert isinstance(out, Datagram) and out.packet == WHOLE
    assert r.stats.reasm_budget_evictions == 3 and [k[2] for k in r.pending] == []


def test_a_growing_datagram_may_evict_itself_and_start_afresh() -> None:
    r = Ipv6Reassembler(max_bytes=DATAGRAM_OVERHEAD + 2 * (1000 + FRAG_OVERHEAD) + 40)
    frags = split(PAYLOAD, 1000)
    add(r, frags[0])
    add(r, frags[1])
    add(r, frags[2])     # no room: the oldest (this very datagram) goes, the fragment starts anew
    key = (SRC, DST, IDENT, 0)
    assert r.stats.reasm_budget_evictions == 1
    assert [f[0] for f in r.pending[key].frags] == [2000]
    assert r.memory == DATAGRAM_OVERHEAD + 1000 + FRAG_OVERHEAD <= r.max_bytes


def test_fragment_larger_than_the_whole_budget_is_dropped() -> None:
    r = Ipv6Reassembler(max_bytes=1000)
    assert add(r, split(PAYLOAD, 1000)[0]) is None
    assert r.stats.reasm_budget_drops == 1 and r.stats.reasm_fails == 1
    check_empty(r)


def test_datagram_count_bound_evicts_the_oldest() -> None:
    r = Ipv6Reassembler(max_datagrams=3)
    for ident in range(5):
        add(r, split(b"x" * 40, 16, ident=ident)[0], float(ident))
    assert [k[2] for k in r.pending] == [2, 3, 4]
    assert r.stats.reasm_table_evictions == 2 and r.stats.reasm_fails == 2
    # a tombstone counts against the bound too, and is evicted without a second failure
    add(r, fragment_packet(fixed_header(0, UDP), 8, b"y" * 8, True, ident=2), 5.0)   # overlaps: dies
    assert r.stats.reasm_overlaps == 1 and r.stats.reasm_fails == 3
    add(r, split(b"x" * 40, 16, ident=9)[0], 6.0)
    assert [k[2] for k in r.pending] == [3, 4, 9] and r.stats.reasm_fails == 3


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(0, 24), st.booleans(),
                          st.integers(0, 2), st.floats(0, 30)), max_size=60))
def test_bounds_hold_whatever_a_peer_sends(ops: list[tuple[int, int, int, bool, int, float]]) -> None:
    # arbitrary fragments (overlapping, malformed, tiny, duplicated) from a few datagrams
    r = Ipv6Reassembler(max_bytes=2000, max_datagrams=3)
    now = 0.0
    for ident, unit, length, more, ecn, dt in ops:
        now += dt
        r.poll(now)
        unfrag = fixed_header(0, UDP, tclass=ecn)
        verdict = add(r, fragment_packet(unfrag, unit * 8, bytes([ident]) * length, more, ident=ident), now)
        assert verdict is None or isinstance(verdict, (Datagram, ParamProblem))
        assert r.memory == sum(p.charge for p in r.pending.values()) <= r.max_bytes
        assert len(r.pending) <= r.max_datagrams
        assert all(p.deadline <= now + r.timeout for p in r.pending.values())
    r.poll(now + r.timeout)
    check_empty(r)


# --- ECN (RFC 3168 §5.3) -------------------------------------------------------------------------
def ecn_frags(ecns: list[int]) -> list[bytes]:
    step = 8
    return [fragment_packet(fixed_header(0, UDP, tclass=e), i * step, bytes([i]) * step, i + 1 < len(ecns))
            for i, e in enumerate(ecns)]


def test_ce_on_any_fragment_marks_the_datagram() -> None:
    r = Ipv6Reassembler()
    out = feed(r, ecn_frags([2, 3, 2]))      # ECT(0), CE, ECT(0)
    assert isinstance(out, Datagram) and (out.packet[1] >> 4) & 3 == 3


def test_not_ect_mixed_with_ect_is_dropped() -> None:
    r = Ipv6Reassembler()
    assert feed(r, ecn_frags([0, 2, 0])) is None
    assert r.stats.reasm_ecn_mismatch == 1 and r.stats.reasm_fails == 1 and r.stats.reasm_oks == 0
    check_empty(r)


def test_uniform_ecn_is_kept() -> None:
    for ecn in (0, 1, 2):
        out = feed(Ipv6Reassembler(), ecn_frags([ecn] * 3))
        assert isinstance(out, Datagram) and (out.packet[1] >> 4) & 3 == ecn


# --- fragmentation at the source -----------------------------------------------------------------
def test_fragment_sizes_are_multiples_of_8_within_the_mtu() -> None:
    sizes = fragment_sizes(40, 3000, 1280)
    assert sizes == [(0, 1232), (1232, 1232), (2464, 536)]
    assert fragment_sizes(48, 3000, 1500)[0] == (0, 1440)      # 1500 - 48 - 8 = 1444, down to 1440


def test_mtu_below_1280_is_taken_as_1280() -> None:
    assert fragment_sizes(40, 3000, 576) == fragment_sizes(40, 3000, 1280)
    frags = fragment(WHOLE, 40, 6, IDENT, 576)
    assert [len(f) for f in frags] == [1280, 1280, 40 + 8 + 536]


def test_packet_that_fits_is_not_fragmented() -> None:
    # RFC 8021: no atomic fragments
    small = packet(b"x" * 1000)
    assert fragment(small, 40, 6, IDENT, 1280) == [small]


def test_unfragmentable_part_too_long_cannot_be_fragmented() -> None:
    big_ext = bytes([UDP, 159]) + bytes(1278)       # a 1280-octet hop-by-hop header
    pkt = fixed_header(len(big_ext) + 100, HOP_BY_HOP) + big_ext + bytes(100)
    assert fragment(pkt, 40 + len(big_ext), 40, IDENT, 1280) == []
    assert fragment_sizes(1280 - 8 - 7, 100, 1280) == []      # room for 7 octets: none
    assert fragment_sizes(1280 - 8 - 8, 100, 1280)[0] == (0, 8)


def test_payload_past_65535_cannot_be_fragmented() -> None:
    assert fragment_sizes(40, MAX_PAYLOAD_LEN, 1280) != []
    assert fragment_sizes(48, MAX_PAYLOAD_LEN, 1280) == []


def test_fragments_carry_the_identification_and_first_next_header() -> None:
    frags = fragment(WHOLE, 40, 6, 0x01020304, 1500)
    headers = [parse_fragment_header(f[40:]) for f in frags]
    assert headers == [FragmentHeader(UDP, 0, True, 0x01020304), FragmentHeader(UDP, 1448, True, 0x01020304),
                       FragmentHeader(UDP, 2896, False, 0x01020304)]
    assert all(f[6] == FRAG for f in frags)
