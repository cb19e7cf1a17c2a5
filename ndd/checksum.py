"""RFC 1071 Internet checksum at C speed.

Since 2**16 == 1 (mod 0xFFFF), the ones'-complement sum of 16-bit big-endian words
equals the buffer read as one big integer, modulo 0xFFFF (RFC 1071 §2).  The modulo
maps a true sum of 0xFFFF to 0; only an all-zero buffer really sums to 0, which the
`v != 0` test tells apart.
"""
from __future__ import annotations


def ones_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """Folded 16-bit ones'-complement sum of `data` (+ `initial`), not complemented."""
    v = int.from_bytes(data, "big")
    if len(data) & 1:
        v <<= 8  # odd length: pad with a zero octet (RFC 1071 §4.1)
    v += initial
    if v == 0:
        return 0
    s = v % 0xFFFF
    return s if s else 0xFFFF


def checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The value to put in a checksum field (complement of the sum)."""
    return ~ones_sum(data, initial) & 0xFFFF


def verify(data: bytes | bytearray | memoryview, initial: int = 0) -> bool:
    """True when `data` (checksum field included) sums to 0xFFFF."""
    return ones_sum(data, initial) == 0xFFFF


def pseudo_header_sum(src: int, dst: int, proto: int, length: int) -> int:
    """Folded sum of the IPv4 pseudo-header (RFC 793 §3.1 / RFC 768)."""
    s = (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + proto + length
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s
