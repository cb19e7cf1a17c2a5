"""Sequence-number arithmetic modulo 2**32 (RFC 9293 §3.4, RFC 1982 style)."""
from __future__ import annotations

MOD = 1 << 32
MASK = MOD - 1
HALF = 1 << 31


def add(a: int, n: int) -> int:
    return (a + n) & MASK


def diff(a: int, b: int) -> int:
    """a - b as a signed distance in (-2**31, 2**31]."""
    d = (a - b) & MASK
    return d - MOD if d > HALF else d


# The comparisons test the masked distance d = (a - b) mod 2**32 directly (diff(a, b) is
# d, or d - 2**32 when d > 2**31): one Python call each, not two -- TCP makes dozens per
# segment.
def lt(a: int, b: int) -> bool:
    """diff(a, b) < 0"""
    return (a - b) & MASK > HALF


def le(a: int, b: int) -> bool:
    """diff(a, b) <= 0"""
    d = (a - b) & MASK
    return d == 0 or d > HALF


def gt(a: int, b: int) -> bool:
    """diff(a, b) > 0"""
    return 0 < (a - b) & MASK <= HALF


def ge(a: int, b: int) -> bool:
    """diff(a, b) >= 0"""
    return (a - b) & MASK <= HALF


def between(low: int, x: int, high: int) -> bool:
    """low <= x <= high, modulo 2**32."""
    return (x - low) & MASK <= (high - low) & MASK
