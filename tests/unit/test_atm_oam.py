"""OAM F5 loopback cells (I.610) and their CRC-10."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from drivers.atm.cell import CellHeader, header_bytes
from drivers.atm.oam import (
    ALL_ONES_ID,
    OAM_LOOPBACK,
    OamLoopback,
    crc10,
    loopback_reply,
    loopback_request,
    parse_oam,
    seal_crc10,
)


def polymod(value: int, nbits: int, poly: int = 0x633) -> int:
    """Remainder of the nbits-long bit string `value` divided by poly (GF(2))."""
    for i in range(nbits - 1, 9, -1):
        if value >> i & 1:
            value ^= poly << (i - 10)
    return value


def test_crc10_check_value() -> None:
    assert crc10(b"123456789") == 0x199        # CRC-10/ATM catalogue check value


@given(st.binary(max_size=60))
def test_crc10_matches_polynomial_division(data: bytes) -> None:
    # the register after `data` is data(x) * x^10 mod G(x)
    assert crc10(data) == polymod(int.from_bytes(data, "big") << 10, len(data) * 8 + 10)


def test_request_layout() -> None:
    cell = loopback_request(0, 100, 0x01020304)
    assert len(cell) == 53 and cell[:5] == header_bytes(0, 100, 5)
    p = cell[5:]
    assert p[0] == OAM_LOOPBACK == 0x18 and p[1] == 1 and p[2:6] == bytes([1, 2, 3, 4])
    assert p[6:22] == ALL_ONES_ID and p[22:38] == ALL_ONES_ID and p[38:46] == b"\x6a" * 8
    assert p[46] >> 2 == 0
    # the CRC-10 covers the 374 bits before it (46 octets + 6 reserved bits)
    assert (p[46] << 8 | p[47]) & 0x3FF == polymod((int.from_bytes(p, "big") >> 10) << 10, 384)
    assert crc10(p) == 0
    seg = CellHeader.parse(loopback_request(0, 100, 1, end_to_end=False))
    assert isinstance(seg, CellHeader) and seg.pti == 4


@given(st.integers(0, 255), st.integers(32, 0xFFFF), st.integers(0, 2**32 - 1), st.booleans(),
       st.binary(min_size=16, max_size=16))
def test_request_reply_round_trip(vpi: int, vci: int, tag: int, e2e: bool, src: bytes) -> None:
    req = loopback_request(vpi, vci, tag, e2e, source_id=src)
    assert parse_oam(req[5:]) == OamLoopback(1, tag, ALL_ONES_ID, src)
    rep = loopback_reply(req)
    assert rep is not None and rep[:5] == req[:5]
    assert parse_oam(rep[5:]) == OamLoopback(0, tag, ALL_ONES_ID, src)
    assert loopback_reply(rep) is None            # a reply is not looped again


def test_bad_crc10_ignored() -> None:
    req = bytearray(loopback_request(0, 100, 7))
    req[20] ^= 0x01
    assert parse_oam(req[5:]) == "oam_crc_errors"
    assert loopback_reply(req) is None


def test_not_answered() -> None:
    req = loopback_request(0, 100, 7)
    user = header_bytes(0, 100, 0) + req[5:]
    assert loopback_reply(user) is None                       # not an OAM PTI
    bad_hec = bytearray(req)
    bad_hec[4] ^= 0xFF
    assert loopback_reply(bad_hec) is None
    assert loopback_reply(req[:52]) is None
    other = bytearray(OamLoopback(1, 7).payload())
    other[0] = 0x10                                           # AIS, not loopback
    assert parse_oam(other) == "oam_crc_errors"               # CRC no longer fits
    assert parse_oam(bytes(47)) == "truncated"


def test_unsupported_type_with_good_crc() -> None:
    p = bytearray(OamLoopback(1, 7).payload())
    p[0] = 0x10
    assert parse_oam(seal_crc10(p)) == "oam_unsupported"


def test_reserved_bits_are_covered() -> None:
    p = bytearray(OamLoopback(1, 7).payload())
    p[46] |= 0xFC
    sealed = seal_crc10(p)
    assert sealed[46] >> 2 == 0x3F and crc10(sealed) == 0


def test_location_id() -> None:
    me = bytes(range(16))
    req = loopback_request(1, 50, 9, location_id=me)
    assert loopback_reply(req) is None                        # addressed to another point
    rep = loopback_reply(req, my_id=me)
    assert rep is not None and parse_oam(rep[5:]) == OamLoopback(0, 9, me, ALL_ONES_ID)
