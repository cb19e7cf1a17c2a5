"""IPv4 fragmentation and reassembly (RFC 791 §3.2, RFC 815; overlap rule of RFC 5722;
timer of RFC 1122 §3.3.2 and RFC 792 time exceeded)."""
from __future__ import annotations

import itertools
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.ipfrag import DATAGRAM_OVERHEAD, FRAG_OVERHEAD, MAX_DATAGRAM, Reassembler, fragment_sizes

KEY = (0x0A000001, 0x0A000002, 17, 0x1234)
HDR = b"H" * 20


def split(payload: bytes, step: int = 16) -> list[tuple[int, bytes, bool]]:
    """(offset, data, more) for each fragment of `payload`."""
    return [(off, payload[off:off + step], off + step < len(payload)) for off in range(0, len(payload), step)]


def feed(r: Reassembler, frags: list[tuple[int, bytes, bool]], key=KEY, now: float = 0.0):
    results = [r.add(key, HDR, off, data, more, now) for off, data, more in frags]
    assert all(x is None for x in results[:-1])
    return results[-1]


PAYLOAD = os.urandom(100)


def test_in_order() -> None:
    r = Reassembler()
    assert feed(r, split(PAYLOAD)) == (HDR, PAYLOAD)
    assert r.stats.oks == 1 and not r.pending and r.memory == 0


def test_reverse_order() -> None:
    r = Reassembler()
    assert feed(r, split(PAYLOAD)[::-1]) == (HDR, PAYLOAD)
    assert r.memory == 0


def test_header_comes_from_fragment_zero() -> None:
    r = Reassembler()
    frags = split(PAYLOAD)
    r.add(KEY, b"D" * 20, 0, frags[0][1], True, 0.0)          # (octet 1's ECN bits alike: Not-ECT)
    out = None
    for off, data, more in frags[1:]:
        out = r.add(KEY, b"L" * 24, off, data, more, 0.0)
    assert out == (b"D" * 20, PAYLOAD)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=200), st.integers(1, 6).map(lambda k: 8 * k), st.data())
def test_any_order(payload: bytes, step: int, data: st.DataObject) -> None:
    frags = data.draw(st.permutations(split(payload, step)))
    r = Reassembler()
    assert feed(r, frags) == (HDR, payload)
    assert r.memory == 0 and not r.pending


def test_independent_datagrams_do_not_mix() -> None:
    r = Reassembler()
    a, b = split(b"A" * 40), split(b"B" * 40)
    other = (KEY[0], KEY[1], KEY[2], KEY[3] + 1)
    assert r.add(KEY, HDR, *a[0], 0.0) is None
    assert r.add(other, HDR, *b[0], 0.0) is None
    assert feed(r, a[1:]) == (HDR, b"A" * 40)
    assert feed(r, b[1:], key=other) == (HDR, b"B" * 40)


def test_duplicate_ignored() -> None:
    r = Reassembler()
    frags = split(PAYLOAD)
    r.add(KEY, HDR, *frags[0], 0.0)
    assert r.add(KEY, HDR, *frags[0], 0.0) is None
    assert r.stats.duplicates == 1 and r.stats.overlaps == 0
    assert feed(r, frags[1:]) == (HDR, PAYLOAD)


def test_overlap_drops_datagram() -> None:
    r = Reassembler()
    r.add(KEY, HDR, 0, b"a" * 16, True, 0.0)
    assert r.add(KEY, HDR, 8, b"b" * 16, True, 0.0) is None    # overlaps [8, 16)
    assert r.stats.overlaps == 1 and r.stats.fails == 1
    assert KEY not in r.pending and r.memory == 0
    # the rest of the datagram can no longer complete it: it starts a fresh one
    assert r.add(KEY, HDR, 16, b"c" * 8, False, 0.0) is None
    assert KEY in r.pending and not r.pending[KEY].header


def test_same_range_different_data_is_an_overlap() -> None:
    r = Reassembler()
    r.add(KEY, HDR, 0, b"a" * 16, True, 0.0)
    r.add(KEY, HDR, 0, b"X" * 16, True, 0.0)
    assert r.stats.overlaps == 1 and KEY not in r.pending


def test_overlap_spanning_two_fragments() -> None:
    r = Reassembler()
    r.add(KEY, HDR, 0, b"a" * 8, True, 0.0)
    r.add(KEY, HDR, 24, b"c" * 8, True, 0.0)
    r.add(KEY, HDR, 8, b"b" * 32, True, 0.0)      # covers 8..40, overlaps the one at 24
    assert r.stats.overlaps == 1 and KEY not in r.pending


def test_oversize_rejected() -> None:
    # "ping of death": offset 65528 + 8 data + header > 65535
    r = Reassembler()
    r.add(KEY, HDR, 0, bytes(8), True, 0.0)
    assert r.add(KEY, HDR, 65528, bytes(8), False, 0.0) is None
    assert r.stats.oversize == 1 and KEY not in r.pending and r.memory == 0
    assert r.add(KEY, HDR, MAX_DATAGRAM - 20 - 8, bytes(8), False, 0.0) is None   # exactly 65535 fits
    assert r.stats.oversize == 1


def test_non_final_fragment_must_be_multiple_of_8() -> None:
    r = Reassembler()
    assert r.add(KEY, HDR, 0, bytes(12), True, 0.0) is None
    assert r.stats.bad_length == 1 and KEY not in r.pending
    assert r.add(KEY, HDR, 0, b"", True, 0.0) is None           # empty non-final
    assert r.stats.bad_length == 2


def test_final_fragment_inconsistent_lengths() -> None:
    r = Reassembler()
    r.add(KEY, HDR, 16, bytes(8), False, 0.0)            # total is 24
    r.add(KEY, HDR, 24, bytes(8), True, 0.0)             # beyond the end
    assert r.stats.bad_length == 1 and KEY not in r.pending
    r.add(KEY, HDR, 32, bytes(8), True, 0.0)
    r.add(KEY, HDR, 0, bytes(8), False, 0.0)             # a last fragment before data we hold
    assert r.stats.bad_length == 2 and KEY not in r.pending


def test_timeout_via_poll_at_and_poll() -> None:
    r = Reassembler(timeout=30.0)
    timeouts: list[tuple[bytes, bytes, float]] = []
    r.on_timeout = lambda hdr, first8, now: timeouts.append((hdr, first8, now))
    kicked: list[int] = []
    r.kick = lambda: kicked.append(1)
    assert r.poll_at() is None
    r.add(KEY, HDR, 0, b"01234567" * 2, True, 100.0)
    assert kicked == [1]
    assert r.poll_at() == 130.0
    r.poll(129.9)
    assert KEY in r.pending and not timeouts
    r.poll(130.0)
    assert not r.pending and r.memory == 0 and r.poll_at() is None
    assert timeouts == [(HDR, b"01234567", 130.0)]
    assert r.stats.timeouts == 1


def test_timeout_without_fragment_zero_is_silent() -> None:
    # RFC 792: time exceeded code 1 only if fragment zero has been received
    r = Reassembler(timeout=30.0)
    called: list[bytes] = []
    r.on_timeout = lambda hdr, first8, now: called.append(hdr)
    r.add(KEY, HDR, 16, bytes(8), True, 0.0)
    r.poll(30.0)
    assert r.stats.timeouts == 1 and called == [] and not r.pending


def test_timeouts_expire_in_arrival_order() -> None:
    r = Reassembler(timeout=30.0)
    k2 = (1, 2, 3, 4)
    r.add(KEY, HDR, 8, bytes(8), True, 0.0)
    r.add(k2, HDR, 8, bytes(8), True, 10.0)
    r.poll(35.0)
    assert list(r.pending) == [k2] and r.poll_at() == 40.0


ONE = 48 + FRAG_OVERHEAD + DATAGRAM_OVERHEAD   # a datagram holding one 48-octet fragment


def test_memory_bound_evicts_oldest() -> None:
    r = Reassembler(max_bytes=2 * ONE + 10)
    keys = [(1, 2, 17, i) for i in range(3)]
    r.add(keys[0], HDR, 0, bytes(48), True, 0.0)
    r.add(keys[1], HDR, 0, bytes(48), True, 1.0)
    assert r.memory == 2 * ONE
    r.add(keys[2], HDR, 0, bytes(48), True, 2.0)       # needs room: the oldest goes
    assert list(r.pending) == keys[1:]
    assert r.stats.evictions == 1 and r.memory == 2 * ONE


def test_tiny_fragments_are_charged_their_overhead() -> None:
    # a flood of 8-octet fragments must not pin many times max_bytes in Python objects
    r = Reassembler(max_bytes=64 * 1024)
    for i in range(10_000):
        r.add((1, 2, 17, i), HDR, 8, bytes(8), True, 0.0)
    assert r.memory <= 64 * 1024
    assert len(r.pending) <= 64 * 1024 // (8 + FRAG_OVERHEAD + DATAGRAM_OVERHEAD)


def test_fragment_sizes_boundaries() -> None:
    assert fragment_sizes(0, 20, 1500) == []
    assert fragment_sizes(1480, 20, 1500) == [(0, 1480)]
    assert fragment_sizes(1481, 20, 1500) == [(0, 1480), (1480, 1)]
    assert fragment_sizes(4000, 20, 1500) == [(0, 1480), (1480, 1480), (2960, 1040)]
    # MTU - header not a multiple of 8: round down
    assert fragment_sizes(30, 20, 35) == [(0, 8), (8, 8), (16, 8), (24, 6)]
    assert fragment_sizes(100, 20, 27) == []      # fewer than 8 octets of room
    assert fragment_sizes(100, 60, 68) == [(i, min(8, 100 - i)) for i in range(0, 100, 8)]  # RFC 791 minimum


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 65515), st.integers(28, 9000))
def test_fragment_sizes_cover_payload(n: int, mtu: int) -> None:
    pieces = fragment_sizes(n, 20, mtu)
    assert pieces[0][0] == 0
    assert sum(length for _, length in pieces) == n
    for (off, length), (nxt, _) in itertools.pairwise(pieces):
        assert off + length == nxt and length % 8 == 0 and off % 8 == 0
    assert all(20 + length <= mtu for _, length in pieces)


def test_memory_bound_holds_when_datagrams_grow() -> None:
    # later fragments of an existing datagram count against the bound too: otherwise many tiny
    # first fragments, each grown afterwards, would pin far more than max_bytes
    r = Reassembler(max_bytes=2 * ONE + 10)
    a, b = (1, 2, 17, 1), (1, 2, 17, 2)
    r.add(a, HDR, 0, bytes(48), True, 0.0)
    r.add(b, HDR, 0, bytes(48), True, 1.0)
    r.add(b, HDR, 48, bytes(48), True, 1.0)
    assert r.memory <= 2 * ONE + 10
    assert list(r.pending) == [b] and r.stats.evictions == 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 40), st.integers(1, 8)), max_size=60))
def test_memory_never_exceeds_bound(ops: list[tuple[int, int, int]]) -> None:
    r = Reassembler(max_bytes=2048)
    for ident, slot, words in ops:
        r.add((1, 2, 17, ident), HDR, slot * 8, bytes(8 * words), True, 0.0)
        assert r.memory <= 2048
        assert r.memory == sum(p.charge for p in r.pending.values())


# --- ECN (RFC 3168 §5.3; Linux ip_frag_ecn_table) -----------------------------------------------
def _ip_header(tos: int) -> bytes:
    from ndd.checksum import checksum
    from protocols.ipv4 import Ipv4Repr
    hdr = bytearray(20)
    Ipv4Repr(0x0A000001, 0x0A000002, 17, 120, tos=tos, ident=0x1234).emit(hdr)
    assert checksum(hdr) == 0
    return bytes(hdr)


def _ecn_feed(r: Reassembler, codepoints: list[int]) -> tuple[bytes, bytes] | None:
    frags = split(PAYLOAD, 40)
    assert len(frags) == len(codepoints)
    out = None
    for (off, data, more), ecn in zip(frags, codepoints, strict=True):
        out = r.add(KEY, _ip_header(0xB8 | ecn), off, data, more, 0.0)
    return out


def test_ce_on_any_fragment_marks_the_datagram_ce_with_a_good_checksum() -> None:
    from ndd.checksum import checksum
    r = Reassembler()
    out = _ecn_feed(r, [2, 3, 2])                  # ECT(0), CE, ECT(0)
    assert out is not None and out[1] == PAYLOAD
    assert out[0][1] == 0xB8 | 3 and checksum(out[0]) == 0      # CE, the DSCP kept
    assert _ecn_feed(r, [2, 2, 2]) == (_ip_header(0xB8 | 2), PAYLOAD)


def test_not_ect_fragments_mixed_with_ect_drop_the_datagram() -> None:
    r = Reassembler()
    assert _ecn_feed(r, [0, 2, 0]) is None
    assert r.stats.ecn_mismatch == 1 and r.stats.fails == 1 and r.stats.oks == 0
    assert not r.pending and r.memory == 0
    assert _ecn_feed(r, [0, 0, 0]) is not None     # all Not-ECT: as ever
