"""ATM UNI cells: header layout (I.361 §2.2) and HEC (I.432.1 §4.3), with known HEC vectors."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.atm.cell import (
    CELL_LEN,
    HDR_LEN,
    PAYLOAD_LEN,
    PTI_OAM_END_TO_END,
    PTI_OAM_SEGMENT,
    PTI_RM,
    PTI_USER,
    PTI_USER_EOP,
    CellHeader,
    header_bytes,
    hec,
    parse_cells,
)
from ndd.atm import ILMI_VPI_VCI, RESERVED_VCI_MAX, SIG_VPI_VCI


def slow_hec(first4: bytes) -> int:
    """Bit-serial CRC-8 (x^8+x^2+x+1) then the 0x55 coset: the textbook definition."""
    reg = 0
    for byte in first4:
        for i in range(7, -1, -1):
            top = (reg >> 7) ^ (byte >> i) & 1
            reg = (reg << 1) & 0xFF
            if top:
                reg ^= 0x07
    return reg ^ 0x55


def test_constants() -> None:
    assert (CELL_LEN, HDR_LEN, PAYLOAD_LEN) == (53, 5, 48)
    assert (PTI_USER, PTI_USER_EOP, PTI_OAM_SEGMENT, PTI_OAM_END_TO_END, PTI_RM) == (0, 1, 4, 5, 6)
    assert RESERVED_VCI_MAX == 31 and SIG_VPI_VCI == (0, 5) and ILMI_VPI_VCI == (0, 16)


def test_hec_vectors() -> None:
    assert hec(bytes(4)) == 0x55
    assert header_bytes(0, 5) == bytes.fromhex("00000050e2")
    assert header_bytes(0, 5, 1)[4] == 0xEC
    assert CellHeader(0, 0, 5, 0, 0).emit()[4] == 0xE2


@given(st.binary(min_size=4, max_size=4))
def test_hec_table_matches_bitwise(first4: bytes) -> None:
    assert hec(first4) == slow_hec(first4)


headers = st.builds(CellHeader, st.integers(0, 15), st.integers(0, 255), st.integers(0, 0xFFFF),
                    st.integers(0, 7), st.integers(0, 1))


@given(headers)
def test_header_round_trip(h: CellHeader) -> None:
    raw = h.emit()
    assert len(raw) == HDR_LEN and raw[4] == hec(raw[:4])
    assert CellHeader.parse(raw) == h
    assert CellHeader.parse(raw + bytes(PAYLOAD_LEN)) == h
    if h.gfc == 0:
        assert header_bytes(h.vpi, h.vci, h.pti, h.clp) == raw


def test_field_layout() -> None:
    raw = CellHeader(gfc=0xA, vpi=0xBC, vci=0xDEF1, pti=5, clp=1).emit()
    assert raw[:4] == bytes.fromhex("abcdef1b")


@given(headers, st.integers(0, 39))
def test_bad_hec_is_counted_not_raised(h: CellHeader, bit: int) -> None:
    raw = bytearray(h.emit())
    raw[bit // 8] ^= 0x80 >> (bit % 8)
    assert CellHeader.parse(raw) == "hec_errors"
    fixed = CellHeader.parse(raw, correct=True)
    assert fixed == h and isinstance(fixed, CellHeader) and fixed.corrected


def test_double_bit_errors_are_never_miscorrected() -> None:
    # HEC has distance 4 over the 40-bit header: 1 bit correctable, 2 bits always detected.
    raw = header_bytes(3, 1234, 1, 0)
    for a in range(40):
        for b in range(a + 1, 40):
            bad = bytearray(raw)
            bad[a // 8] ^= 0x80 >> (a % 8)
            bad[b // 8] ^= 0x80 >> (b % 8)
            assert CellHeader.parse(bad, correct=True) == "hec_errors"


@given(st.binary(max_size=60))
def test_parse_never_raises(data: bytes) -> None:
    r = CellHeader.parse(data)
    assert isinstance(r, (CellHeader, str))
    if len(data) < 5:
        assert r == "truncated"


def test_header_bytes_rejects_caller_bugs() -> None:
    for args in ((256, 0), (0, 65536), (0, 5, 8), (0, 5, 0, 2), (-1, 5)):
        with pytest.raises(ValueError):
            header_bytes(*args)


def test_parse_cells() -> None:
    good = header_bytes(1, 40) + bytes(range(48))
    bad = bytearray(header_bytes(1, 41) + bytes(48))
    bad[4] ^= 0x03                                   # two-bit error: detected in both modes
    last = header_bytes(1, 40, 1) + bytes(48)
    buf = good + bad + last + b"\x01\x02\x03"
    out = list(parse_cells(buf))
    assert [h if isinstance(h, str) else (h.vpi, h.vci, h.pti) for h, _ in out] == \
        [(1, 40, 0), "hec_errors", (1, 40, 1), "truncated"]
    assert bytes(out[0][1]) == bytes(range(48)) and bytes(out[3][1]) == b"\x01\x02\x03"
    assert [h for h, _ in parse_cells(buf, correct=True)][1] == "hec_errors"
    assert list(parse_cells(b"")) == []


def test_parse_cells_corrects_single_bit_when_asked() -> None:
    cell = bytearray(header_bytes(2, 77) + bytes(48))
    cell[1] ^= 0x10
    assert next(parse_cells(cell))[0] == "hec_errors"
    h = next(parse_cells(cell, correct=True))[0]
    assert isinstance(h, CellHeader) and (h.vpi, h.vci, h.corrected) == (2, 77, True)
