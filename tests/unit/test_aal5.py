"""AAL5 (I.363.5): CRC-32/BZIP2, CPCS-PDU framing, SAR round trips, defensive reassembly."""
from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.atm.aal5 import MAX_CELLS, Reassembler, cpcs_pdu, crc32_bzip2, segment
from drivers.atm.cell import CELL_LEN, CellHeader, parse_cells
from ndd.atm import AAL5_MAX_SDU


def slow_crc32_bzip2(data: bytes) -> int:
    reg = 0xFFFFFFFF
    for byte in data:
        reg ^= byte << 24
        for _ in range(8):
            reg = ((reg << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if reg & 0x80000000 else (reg << 1) & 0xFFFFFFFF
    return reg ^ 0xFFFFFFFF


def test_crc_check_value() -> None:
    assert crc32_bzip2(b"123456789") == 0xFC891918 == slow_crc32_bzip2(b"123456789")
    assert crc32_bzip2(memoryview(b"123456789")) == crc32_bzip2(bytearray(b"123456789"))


@given(st.binary(max_size=300))
def test_crc_matches_bitwise_reference(data: bytes) -> None:
    assert crc32_bzip2(data) == slow_crc32_bzip2(data)


def feed_all(r: Reassembler, cells: bytes, now: float = 0.0) -> list[tuple[int, int, bytes]]:
    out = []
    for h, payload in parse_cells(cells):
        if isinstance(h, str):
            continue
        sdu = r.feed(h.vpi, h.vci, h.pti, payload, now)
        if sdu is not None:
            out.append((h.vpi, h.vci, sdu))
    return out


def sdu_of(n: int, seed: int = 0) -> bytes:
    return random.Random(n * 7919 + seed).randbytes(n)


def check_round_trip(n: int, r: Reassembler | None = None) -> None:
    r = r or Reassembler()
    sdu = sdu_of(n)
    cells = segment(sdu, 1, 42, uu=0x5A)
    ncells = -(-(n + 8) // 48)
    assert len(cells) == ncells * CELL_LEN
    hdrs = [h for h, _ in parse_cells(cells)]
    assert all(isinstance(h, CellHeader) and (h.vpi, h.vci, h.clp) == (1, 42, 0) for h in hdrs)
    assert [h.pti for h in hdrs] == [0] * (ncells - 1) + [1]   # type: ignore[union-attr]
    assert feed_all(r, cells) == [(1, 42, sdu)]


def test_cpcs_pdu_layout() -> None:
    pdu = cpcs_pdu(b"abc", uu=7)
    assert len(pdu) == 48 and pdu[:3] == b"abc" and pdu[3:40] == bytes(37)
    assert struct.unpack(">BBHI", pdu[40:]) == (7, 0, 3, crc32_bzip2(pdu[:44]))
    assert len(cpcs_pdu(bytes(40))) == 48 and len(cpcs_pdu(bytes(41))) == 96


def test_every_small_and_large_length() -> None:
    r = Reassembler()
    lengths = list(range(1, 2 * 48 + 10)) + list(range(AAL5_MAX_SDU - 60, AAL5_MAX_SDU + 1, 7)) + [AAL5_MAX_SDU]
    for n in lengths:
        check_round_trip(n, r)
    s = r.stats(1, 42)
    assert s.rx_pdus == len(lengths) and s.rx_octets == sum(lengths)
    assert not (s.crc_errors or s.length_errors or s.oversize or s.timeouts)


boundary_lengths = st.one_of(
    st.sampled_from([1, 40, 41, 47, 48, 49, 88, 89, 95, 96, 97, 9180, 65487, 65488, 65495, 65527, 65528, 65535]),
    st.builds(lambda k, d: min(max(k * 48 + d, 1), AAL5_MAX_SDU), st.integers(1, 1366), st.integers(-9, 1)),
    st.integers(1, AAL5_MAX_SDU),
)


@settings(max_examples=60, deadline=None)
@given(boundary_lengths)
def test_sar_round_trip_boundary_classes(n: int) -> None:
    check_round_trip(n)


def test_caller_bugs_raise() -> None:
    with pytest.raises(ValueError):
        segment(bytes(AAL5_MAX_SDU + 1), 0, 100)
    with pytest.raises(ValueError):
        segment(b"", 0, 100)          # Length 0 is the abort code


def test_abort_pdu_counted() -> None:
    body = bytes(40) + struct.pack(">BBH", 0, 0, 0)
    pdu = body + crc32_bzip2(body).to_bytes(4, "big")
    r = Reassembler()
    assert r.feed(0, 100, 1, pdu, 0.0) is None
    assert r.stats(0, 100).aborts == 1


def test_cpi_nonzero_dropped() -> None:
    r = Reassembler()
    assert feed_all(r, segment(b"x" * 100, 0, 100, cpi=1)) == []
    assert r.stats(0, 100).cpi_errors == 1
    assert feed_all(r, segment(b"y" * 100, 0, 100)) == [(0, 100, b"y" * 100)]


def test_interleaved_vcs() -> None:
    r = Reassembler()
    vcs = [(0, 32), (0, 33), (5, 1000), (255, 65535)]
    sdus = {vc: [sdu_of(300 + 97 * i, seed=vc[1]) for i in range(3)] for vc in vcs}
    streams = {vc: [c[i:i + CELL_LEN] for c in (segment(s, *vc) for s in sdus[vc])
                    for i in range(0, len(c), CELL_LEN)] for vc in vcs}
    rng = random.Random(1)
    mixed = b""
    while any(streams.values()):
        vc = rng.choice([v for v in vcs if streams[v]])
        mixed += streams[vc].pop(0)
    got = feed_all(r, mixed)
    for vc in vcs:
        assert [s for v1, v2, s in got if (v1, v2) == vc] == sdus[vc]
        assert r.stats(*vc).rx_pdus == 3


def test_lost_last_cell_merges_and_is_rejected() -> None:
    r = Reassembler()
    a, b, c = segment(sdu_of(200), 0, 40), segment(sdu_of(100, 1), 0, 40), segment(b"ok", 0, 40)
    assert feed_all(r, a[:-CELL_LEN] + b + c) == [(0, 40, b"ok")]
    s = r.stats(0, 40)
    assert s.length_errors + s.crc_errors == 1 and s.rx_pdus == 1


def test_lost_middle_cell_is_rejected() -> None:
    r = Reassembler()
    a = segment(sdu_of(500), 0, 40)
    assert feed_all(r, a[:CELL_LEN] + a[2 * CELL_LEN:]) == []
    assert r.stats(0, 40).length_errors == 1


def test_corrupt_payload_bit_is_crc_error() -> None:
    r = Reassembler()
    a = bytearray(segment(sdu_of(500), 0, 40))
    a[CELL_LEN + 20] ^= 0x04
    assert feed_all(r, bytes(a)) == []
    assert r.stats(0, 40).crc_errors == 1


def test_reassembly_timeout() -> None:
    r = Reassembler(timeout=2.0)
    kicked: list[float | None] = []
    r.kick = lambda at=None: kicked.append(at)
    cells = segment(sdu_of(300), 0, 50)
    assert r.poll_at() is None
    feed_all(r, cells[:2 * CELL_LEN], now=10.0)
    assert r.poll_at() == 12.0 and kicked == [12.0]
    r.poll(11.9)
    assert r.stats(0, 50).timeouts == 0
    r.poll(12.0)
    assert r.stats(0, 50).timeouts == 1 and r.poll_at() is None
    # the rest of the PDU now arrives alone and is rejected; the next PDU is fine
    assert feed_all(r, cells[2 * CELL_LEN:], now=12.5) == []
    assert feed_all(r, cells, now=13.0) == [(0, 50, sdu_of(300))]
    assert r.poll_at() is None


def test_timer_order_over_vcs() -> None:
    r = Reassembler(timeout=1.0)
    r.feed(0, 40, 0, bytes(48), 1.0)
    r.feed(0, 41, 0, bytes(48), 2.0)
    assert r.poll_at() == 2.0
    r.poll(2.5)
    assert r.poll_at() == 3.0 and r.stats(0, 40).timeouts == 1 and r.stats(0, 41).timeouts == 0


def test_oversize_discards_until_end_of_pdu() -> None:
    r = Reassembler()
    for _ in range(MAX_CELLS):
        assert r.feed(0, 60, 0, bytes(48), 0.0) is None
    assert r.stats(0, 60).oversize == 0
    r.feed(0, 60, 0, bytes(48), 0.0)              # cell 1367: past 65535 + 48 + 8
    assert r.stats(0, 60).oversize == 1 and r.poll_at() is None
    good = segment(b"hello", 0, 60)
    # a complete PDU inside the discard window is swallowed up to its end-of-PDU cell
    assert feed_all(r, good) == []
    assert feed_all(r, good) == [(0, 60, b"hello")]
    assert r.stats(0, 60).oversize == 1


def test_non_user_cells_and_short_payloads() -> None:
    r = Reassembler()
    assert r.feed(0, 70, 5, bytes(48), 0.0) is None and r.stats(0, 70).rx_cells == 0
    assert r.feed(0, 70, 0, bytes(47), 0.0) is None
    assert r.stats(0, 70).length_errors == 1
    assert feed_all(r, segment(b"z" * 60, 0, 70)) == []      # its end cell closes the discard
    assert feed_all(r, segment(b"z" * 60, 0, 70)) == [(0, 70, b"z" * 60)]


def test_close_forgets_state() -> None:
    r = Reassembler()
    r.feed(0, 80, 0, bytes(48), 0.0)
    r.close(0, 80)
    assert r.poll_at() is None and (0, 80) not in r.vcs


# --- faults: a wrong SDU is never delivered -----------------------------------------------

faults = st.lists(st.sampled_from(["keep"] * 6 + ["drop", "dup", "flip", "swap"]), min_size=1, max_size=400)


def apply_faults(cells: list[bytes], ops: list[str], rng: random.Random) -> list[bytes]:
    out: list[bytes] = []
    for i, cell in enumerate(cells):
        op = ops[i % len(ops)]
        if op == "drop":
            continue
        if op == "flip":
            b = bytearray(cell)
            bit = rng.randrange(CELL_LEN * 8)
            b[bit // 8] ^= 0x80 >> (bit % 8)
            cell = bytes(b)
        out.append(cell)
        if op == "dup":
            out.append(cell)
        if op == "swap" and len(out) >= 2:
            out[-1], out[-2] = out[-2], out[-1]
    return out


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=12), faults, st.integers(0, 2**32))
def test_faults_never_deliver_a_wrong_sdu(lengths: list[int], ops: list[str], seed: int) -> None:
    rng = random.Random(seed)
    # the index makes each SDU unique, so "one that was sent" is exact
    sdus = [i.to_bytes(2, "big") + rng.randbytes(n) for i, n in enumerate(lengths)]
    cells = [c[i:i + CELL_LEN] for c in (segment(s, 0, 99) for s in sdus) for i in range(0, len(c), CELL_LEN)]
    r = Reassembler()
    got = [s for _, _, s in feed_all(r, b"".join(apply_faults(cells, ops, rng)))]
    assert all(s in sdus for s in got)
    if not {"dup", "swap"} & set(ops):
        # with only loss and corruption, delivery is also in order and without repeats.  A
        # duplicated or misordered one-cell PDU is a legal-looking PDU: AAL5 has no sequence
        # numbers and relies on the ATM layer's in-sequence delivery (I.363.5 §10.2.4).
        idx = [sdus.index(s) for s in got]
        assert idx == sorted(set(idx))
    if set(ops) == {"keep"}:
        assert got == sdus
