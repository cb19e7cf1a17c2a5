"""Routing vocabulary of the emulated ATM switch, sans-IO: party numbers as routing keys,
prefixes, the longest-match routing table and the per-port VCI pool.

A key is the called/calling number as text: an AESA (or any non-E.164 plan) in lower-case
hex, one character per nibble, so a prefix may end mid-octet; an E.164 number as '+' and
its digits.  Routing looks at an AESA's first 19 octets only (network prefix + ESI): the
selector octet belongs to the end system and is not used for routing (ATM Forum UNI 3.1
§5.1.3.1).
"""
from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from ndd.atm import RESERVED_VCI_MAX, VCI_MAX, VPI_MAX
from protocols.atm.uni.ie import AESA_LEN
from protocols.atm.uni.q2931 import PLAN_E164

ROUTED_NIBBLES = 38          # AESA prefix (13 octets) + ESI (6); the SEL octet is the end system's
AESA_NIBBLES = 2 * AESA_LEN
FIRST_VCI, LAST_VCI = RESERVED_VCI_MAX + 1, VCI_MAX   # the VCIs a switched VC may take


# --- addresses and prefixes ----------------------------------------------------------------
def address_key(plan: int, address: bytes) -> str:
    """The routing key of a party number: an AESA (or any non-E.164 plan) in lower-case
    hex, one character per nibble so a prefix may end mid-octet; E.164 as '+' digits."""
    if plan == PLAN_E164:
        return "+" + address.decode("ascii", "replace")
    return address.hex()


def parse_prefix(text: str) -> str:
    """A routing prefix as written by people: hex nibbles of an AESA ('.' and ':' allowed
    as separators, '0x' ignored), '+' and E.164 digits, or '*' (default route, "").
    ValueError otherwise."""
    t = text.strip().lower()
    if t == "*":
        return ""
    if t.startswith("+"):
        if not t[1:].isdigit() or len(t) > 16:
            raise ValueError(f"bad E.164 prefix {text!r}: '+' and up to 15 digits")
        return t
    t = t.removeprefix("0x").replace(".", "").replace(":", "")
    if not t or len(t) > AESA_NIBBLES or any(c not in string.hexdigits for c in t):
        raise ValueError(f"bad AESA prefix {text!r}: 1 to 40 hex digits")
    return t


def parse_address(text: str) -> str:
    """An exact address for a port's address list: a full 20-octet AESA (or its 19-octet
    prefix + ESI) or an E.164 number.  Kept without the selector."""
    key = parse_prefix(text)
    if not key:
        raise ValueError("an address cannot be '*'")
    if not key.startswith("+") and len(key) not in (ROUTED_NIBBLES, AESA_NIBBLES):
        raise ValueError(f"bad AESA {text!r}: 19 or 20 octets (38 or 40 hex digits)")
    return routed(key)


def routed(key: str) -> str:
    """The part of a key that routing looks at: an AESA without its selector octet."""
    return key[:ROUTED_NIBBLES] if len(key) == AESA_NIBBLES else key


class VcRef(NamedTuple):
    """One VC on one switch port."""
    port: str
    vpi: int
    vci: int

    def __str__(self) -> str:
        return f"{self.port}:{self.vpi}/{self.vci}"


@dataclass(frozen=True)
class Route:
    prefix: str
    port: str
    learned: bool = False


class RoutingTable:
    """Prefix -> port, longest match: one dict probe per prefix length (at most 41)."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self.learned = 0                    # how many of them are learned (bounded by the switch)

    def add(self, prefix: str, port: str, *, learned: bool = False) -> Route:
        """Add or replace a route.  A configured route is never replaced by a learned
        one; two ports cannot be configured with one prefix (ValueError)."""
        cur = self._routes.get(prefix)
        if cur is not None and not cur.learned:
            if learned:
                return cur
            if cur.port != port:
                raise ValueError(f"prefix {prefix or '*'} already leads to port {cur.port}")
        route = Route(prefix, port, learned)
        self.learned += learned - (cur is not None and cur.learned)
        self._routes[prefix] = route
        return route

    def remove(self, prefix: str) -> Route | None:
        r = self._routes.pop(prefix, None)
        if r is not None and r.learned:
            self.learned -= 1
        return r

    def remove_port(self, port: str, *, learned_only: bool = False) -> None:
        for p, r in list(self._routes.items()):
            if r.port == port and (r.learned or not learned_only):
                self.remove(p)

    def lookup(self, key: str) -> Route | None:
        routes = self._routes
        for n in range(len(key), -1, -1):
            r = routes.get(key[:n])
            if r is not None:
                return r
        return None

    def __iter__(self) -> Iterator[Route]:
        return iter(sorted(self._routes.values(), key=lambda r: (r.port, r.prefix)))

    def __len__(self) -> int:
        return len(self._routes)


class VciPool:
    """The VCIs a port hands out for switched VCs, on one VPI; PVCs reserve theirs."""

    def __init__(self, vpi: int = 0, first: int = FIRST_VCI, last: int = LAST_VCI) -> None:
        if not (0 <= vpi <= VPI_MAX and FIRST_VCI <= first <= last <= LAST_VCI):
            raise ValueError(f"VCI range {first}-{last} on VPI {vpi}: VPI 0-255, VCIs within 32-65535")
        self.vpi, self.first, self.last = vpi, first, last
        self.in_use: set[int] = set()
        self._next = first

    def take(self) -> int | None:
        size = self.last - self.first + 1
        for i in range(size):
            vci = self.first + (self._next - self.first + i) % size
            if vci not in self.in_use:
                self.in_use.add(vci)
                self._next = vci + 1 if vci < self.last else self.first
                return vci
        return None

    def reserve(self, vpi: int, vci: int) -> bool:
        """Claim a VC for a PVC; False if a switched VC has it.  VCs outside the pool's
        VPI or range cannot collide with it and are not tracked."""
        if vpi != self.vpi or not self.first <= vci <= self.last:
            return True
        if vci in self.in_use:
            return False
        self.in_use.add(vci)
        return True

    def free(self, vpi: int, vci: int) -> None:
        if vpi == self.vpi:
            self.in_use.discard(vci)
