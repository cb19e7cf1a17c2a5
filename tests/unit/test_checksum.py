"""RFC 1071 Internet checksum (ndd/checksum.py)."""
from __future__ import annotations

import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from ndd.checksum import checksum, ones_sum, pseudo_header_sum, verify


def slow_ones_sum(data: bytes, initial: int = 0) -> int:
    """Reference: add 16-bit big-endian words with end-around carry (RFC 1071 §4.1)."""
    if len(data) % 2:
        data += b"\x00"
    s = initial
    for (word,) in struct.iter_unpack("!H", data):
        s += word
        s = (s & 0xFFFF) + (s >> 16)
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def test_rfc1071_example() -> None:
    # RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 (checksum 220d)
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ones_sum(data) == 0xDDF2
    assert checksum(data) == 0x220D


def test_odd_length_pads_with_zero_octet() -> None:
    # RFC 1071 §4.1: an odd trailing octet is the high byte of a zero-padded word
    assert ones_sum(b"\x01") == 0x0100
    assert ones_sum(b"\x12\x34\x56") == 0x1234 + 0x5600
    assert ones_sum(bytes.fromhex("0001f203f4f5f6f7ab")) == slow_ones_sum(bytes.fromhex("0001f203f4f5f6f7ab"))


def test_all_zero_and_all_ones() -> None:
    # only an all-zero buffer sums to +0; a nonzero buffer summing to zero is 0xFFFF (-0)
    assert ones_sum(b"") == 0
    assert ones_sum(bytes(20)) == 0
    assert checksum(bytes(20)) == 0xFFFF
    assert ones_sum(b"\xff\xff") == 0xFFFF
    assert ones_sum(b"\xff\xff" * 7) == 0xFFFF
    assert ones_sum(b"\x80\x00\x80\x00") == 0x0001   # carry wraps around


def test_initial_value_is_added() -> None:
    assert ones_sum(b"\x00\x01", 0xFFFF) == 0x0001
    assert ones_sum(b"", 0x1234) == 0x1234


def test_verify_with_checksum_inserted() -> None:
    # a real IPv4 header (RFC 791) with the checksum field zeroed, then filled in
    hdr = bytearray.fromhex("450000730000400040110000c0a80001c0a800c7")
    csum = checksum(hdr)
    assert csum == 0xB861
    struct.pack_into("!H", hdr, 10, csum)
    assert verify(hdr)
    assert verify(memoryview(hdr))
    hdr[0] ^= 0x01
    assert not verify(hdr)


def test_pseudo_header_sum() -> None:
    # RFC 768 pseudo-header: src, dst, zero, proto, length
    src, dst, proto, length = 0xC0A80001, 0xC0A800C7, 17, 0x73 - 20
    ref = slow_ones_sum(struct.pack("!IIBBH", src, dst, 0, proto, length))
    assert pseudo_header_sum(src, dst, proto, length) == ref
    assert pseudo_header_sum(0xFFFFFFFF, 0xFFFFFFFF, 255, 0xFFFF) == \
        slow_ones_sum(struct.pack("!IIBBH", 0xFFFFFFFF, 0xFFFFFFFF, 0, 255, 0xFFFF))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_matches_reference(data: bytes, initial: int) -> None:
    assert ones_sum(data, initial) == slow_ones_sum(data, initial)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=2, max_size=300).map(lambda b: b if len(b) % 2 == 0 else b + b"\x00"))
def test_inserted_checksum_always_verifies(data: bytes) -> None:
    buf = bytearray(b"\x00\x00" + data)
    struct.pack_into("!H", buf, 0, checksum(buf))
    assert verify(buf)


@settings(max_examples=60, deadline=None)
@given(st.integers(1000, 70000), st.integers(0, 2**32 - 1), st.integers(0, 0x1FFFE))
def test_long_buffers_fold_to_the_reference(length: int, seed: int, initial: int) -> None:
    """Past _FOLD_FROM the sum is folded at 16 * 2**k bits before the modulo (up to a GSO
    super-frame and beyond the largest mask); all-ones and all-zero buffers too."""
    data = random.Random(seed).randbytes(length)
    assert ones_sum(data, initial) == slow_ones_sum(data, initial)
    assert ones_sum(b"\xff" * length) == slow_ones_sum(b"\xff" * length)
    assert ones_sum(bytes(length)) == 0


def test_beyond_the_largest_fold_mask() -> None:
    data = bytes(range(256)) * 1100 + b"\x01"      # 281,601 octets: k capped at 15
    assert ones_sum(data) == slow_ones_sum(data)
