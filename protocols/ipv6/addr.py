"""IPv6 addresses (RFC 4291) as 128-bit ints: text, prefixes, classes and scopes, multicast
mappings, interface identifiers (EUI-64, RFC 7217 stable privacy) and RFC 6724 source
address selection.  Nothing here keeps state: many stacks share one process."""
from __future__ import annotations

import hashlib
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

ALL_ONES = (1 << 128) - 1
UNSPECIFIED = 0                                  # ::      RFC 4291 §2.5.2
LOOPBACK = 1                                     # ::1     RFC 4291 §2.5.3
ALL_NODES = 0xFF02 << 112 | 1                    # ff02::1 RFC 4291 §2.7.1
ALL_ROUTERS = 0xFF02 << 112 | 2                  # ff02::2
ALL_MLDV2_ROUTERS = 0xFF02 << 112 | 0x16         # ff02::16 RFC 3810 §5.2.14
LINK_LOCAL_PREFIX = 0xFE80 << 112                # fe80::/64 (RFC 4291 §2.5.6: the 54 bits after fe80::/10 are 0)
SOLICITED_NODE_PREFIX = 0xFF02 << 112 | 0x1FF << 24   # ff02::1:ff00:0/104 (RFC 4291 §2.7.1)
V4_MAPPED_PREFIX = 0xFFFF << 32                  # ::ffff:0:0/96 (RFC 4291 §2.5.5.2)

# multicast scopes (RFC 4291 §2.7, RFC 7346) -- RFC 6724 §3.1 uses the same values for unicast
SCOPE_INTERFACE_LOCAL = 0x1
SCOPE_LINK_LOCAL = 0x2
SCOPE_REALM_LOCAL = 0x3
SCOPE_ADMIN_LOCAL = 0x4
SCOPE_SITE_LOCAL = 0x5
SCOPE_ORGANIZATION_LOCAL = 0x8
SCOPE_GLOBAL = 0xE

IID_BITS = 64


# --- text -------------------------------------------------------------------------------------
def ip6_to_int(addr: str | int) -> int:
    """'2001:db8::1' -> int.  Text goes through inet_pton (RFC 4291 §2.2 forms, the mixed
    '::ffff:1.2.3.4' one included); a zone ('fe80::1%eth0') is not part of an address here."""
    if isinstance(addr, int):
        if not 0 <= addr <= ALL_ONES:
            raise ValueError(f"IPv6 address out of range: {addr}")
        return addr
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET6, addr), "big")
    except (OSError, TypeError, ValueError):   # ValueError: an embedded NUL
        raise ValueError(f"not an IPv6 address: {addr!r}") from None


def int_to_ip6(value: int) -> str:
    """The RFC 5952 text (inet_ntop): lower case, longest zero run as '::'."""
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


def ip6_from_bytes(data: bytes | bytearray | memoryview) -> int:
    return int.from_bytes(data, "big")


def ip6_to_bytes(value: int) -> bytes:
    return value.to_bytes(16, "big")


# --- prefixes ---------------------------------------------------------------------------------
def prefix_mask(prefixlen: int) -> int:
    if not 0 <= prefixlen <= 128:
        raise ValueError(f"bad IPv6 prefix length: {prefixlen}")
    return (ALL_ONES << (128 - prefixlen)) & ALL_ONES


def parse_prefix(text: str) -> tuple[int, int]:
    """'fd00::2/64' -> (address int, 64).  A bare address means /128.  The host bits are kept
    (an interface address is given this way, as with IPv4's parse_prefix)."""
    addr, slash, plen = text.partition("/")
    if not slash:
        return ip6_to_int(addr), 128
    if not plen.isdigit() or not 0 <= int(plen) <= 128:
        raise ValueError(f"bad IPv6 prefix length in {text!r}")
    return ip6_to_int(addr), int(plen)


def network(addr: int, prefixlen: int) -> int:
    return addr & prefix_mask(prefixlen)


def in_prefix(addr: int, prefix: int, prefixlen: int) -> bool:
    mask = prefix_mask(prefixlen)
    return addr & mask == prefix & mask


def common_prefix_len(a: int, b: int) -> int:
    """Number of leading bits a and b share (0..128)."""
    return 128 - (a ^ b).bit_length()


# --- classes (RFC 4291 §2.4) --------------------------------------------------------------------
def is_unspecified(addr: int) -> bool:
    return addr == UNSPECIFIED


def is_loopback(addr: int) -> bool:
    return addr == LOOPBACK


def is_multicast(addr: int) -> bool:
    return addr >> 120 == 0xFF


def is_link_local(addr: int) -> bool:
    """Link-local unicast, fe80::/10."""
    return addr >> 118 == 0xFE80 >> 6


def is_site_local(addr: int) -> bool:
    """fec0::/10, deprecated by RFC 3879 but still site scope for RFC 6724 §3.1."""
    return addr >> 118 == 0xFEC0 >> 6


def is_unique_local(addr: int) -> bool:
    """Unique local unicast, fc00::/7 (RFC 4193)."""
    return addr >> 121 == 0xFC >> 1


def is_v4_mapped(addr: int) -> bool:
    return addr >> 32 == 0xFFFF


def v4_mapped(v4: int) -> int:
    """IPv4 a.b.c.d -> ::ffff:a.b.c.d (how a dual-stack socket shows an IPv4 peer)."""
    return V4_MAPPED_PREFIX | (v4 & 0xFFFFFFFF)


def v4_from_mapped(addr: int) -> int | None:
    return addr & 0xFFFFFFFF if is_v4_mapped(addr) else None


def multicast_scope(addr: int) -> int:
    """The scop nibble of a multicast address (RFC 4291 §2.7): 1 interface, 2 link, 5 site, 0xE global."""
    return (addr >> 112) & 0xF


def multicast_flags(addr: int) -> int:
    """The flgs nibble (RFC 4291 §2.7): T (0x1) transient, P (0x2) prefix-based, R (0x4) embedded RP."""
    return (addr >> 116) & 0xF


def _masked(text: str) -> tuple[int, int]:
    """'prefix/len' -> (mask, prefix & mask), for matching without recomputing the mask."""
    addr, plen = parse_prefix(text)
    mask = prefix_mask(plen)
    return mask, addr & mask


# RFC 6890 / the IANA IPv6 special-purpose registry: blocks whose "Globally Reachable" is False.
# Exceptions inside 2001::/23 that are globally reachable are listed first and win.
_GLOBAL_EXCEPTIONS = tuple(_masked(t) for t in (
    "2001:1::1/128",     # Port Control Protocol anycast (RFC 7723)
    "2001:1::2/128",     # TURN anycast (RFC 8155)
    "2001:1::3/128",     # DNS-SD SRP anycast (RFC 9665)
    "2001:3::/32",       # AMT (RFC 7450)
    "2001:4:112::/48",   # AS112-v6 (RFC 7535)
    "2001:20::/28",      # ORCHIDv2 (RFC 7343)
    "2001:30::/28",      # DRIP DETs (RFC 9374)
))
_NOT_GLOBAL = tuple(_masked(t) for t in (
    "::1/128", "::/128", "::ffff:0:0/96",
    "64:ff9b:1::/48",    # local-use IPv4/IPv6 translation (RFC 8215)
    "100::/64",          # discard-only (RFC 6666)
    "2001::/23",         # IETF protocol assignments (RFC 2928)
    "2001:db8::/32",     # documentation (RFC 3849)
    "3fff::/20",         # documentation (RFC 9637)
    "5f00::/16",         # segment routing SIDs (RFC 9602)
    "fc00::/7",          # unique local (RFC 4193)
    "fe80::/10",         # link-local unicast (RFC 4291)
))


def is_global(addr: int) -> bool:
    """Globally reachable unicast per the RFC 6890 special-purpose registry.  Multicast is
    global only with global scope; site-local fec0::/10 (RFC 3879) is not."""
    if is_multicast(addr):
        return multicast_scope(addr) == SCOPE_GLOBAL
    if is_site_local(addr):
        return False
    if any(addr & mask == prefix for mask, prefix in _GLOBAL_EXCEPTIONS):
        return True
    return not any(addr & mask == prefix for mask, prefix in _NOT_GLOBAL)


def address_scope(addr: int) -> int:
    """The scope RFC 6724 §3.1 compares: a multicast address's own scope; link-local unicast and
    the loopback are link-local; fec0::/10 site-local; IPv4-mapped by the IPv4 rules
    (127/8 and 169.254/16 link-local); everything else global."""
    if is_multicast(addr):
        return multicast_scope(addr)
    if is_link_local(addr) or is_loopback(addr):
        return SCOPE_LINK_LOCAL
    if is_site_local(addr):
        return SCOPE_SITE_LOCAL
    if is_v4_mapped(addr):
        v4 = addr & 0xFFFFFFFF
        if v4 >> 24 == 127 or v4 >> 16 == 0xA9FE:
            return SCOPE_LINK_LOCAL
    return SCOPE_GLOBAL


# --- multicast mappings -------------------------------------------------------------------------
def solicited_node(addr: int) -> int:
    """ff02::1:ffXX:XXXX, the low 24 bits of a unicast or anycast address (RFC 4291 §2.7.1):
    where Neighbor Solicitations for `addr` are sent (RFC 4861 §7.2.2)."""
    return SOLICITED_NODE_PREFIX | (addr & 0xFFFFFF)


def is_solicited_node(addr: int) -> bool:
    """ff02::1:ff00:0/104 (RFC 4291 §2.7.1)."""
    return addr >> 24 == SOLICITED_NODE_PREFIX >> 24


def multicast_mac(group: int) -> bytes:
    """33:33 + the group's low 32 bits (RFC 2464 §7)."""
    return b"\x33\x33" + (group & 0xFFFFFFFF).to_bytes(4, "big")


# --- interface identifiers -----------------------------------------------------------------------
def eui64_iid(mac: bytes) -> int:
    """Modified EUI-64 from a 48-bit MAC (RFC 4291 App. A, RFC 2464 §4): ff:fe in the middle and
    the universal/local bit inverted."""
    if len(mac) != 6:
        raise ValueError(f"EUI-64 needs a 6-octet MAC, got {len(mac)} octets")
    return int.from_bytes(bytes((mac[0] ^ 0x02,)) + mac[1:3] + b"\xff\xfe" + mac[3:6], "big")


def with_iid(prefix: int, iid: int) -> int:
    """The upper 64 bits of `prefix` and the 64-bit interface identifier (RFC 4291 §2.5.1)."""
    return (prefix & prefix_mask(128 - IID_BITS)) | (iid & ((1 << IID_BITS) - 1))


def link_local_from_iid(iid: int) -> int:
    """fe80::/64 + iid (RFC 4862 §5.3)."""
    return with_iid(LINK_LOCAL_PREFIX, iid)


# RFC 5453 §3 and the IANA "Reserved IPv6 Interface Identifiers" registry
_RESERVED_IID_RANGES = (
    (0x0000_0000_0000_0000, 0x0000_0000_0000_0000),   # subnet-router anycast (RFC 4291 §2.6.1)
    (0x0200_5EFF_FE00_0000, 0x0200_5EFF_FEFF_FFFF),   # IANA Ethernet block (incl. PMIPv6 ...:5213)
    (0xFDFF_FFFF_FFFF_FF80, 0xFDFF_FFFF_FFFF_FFFF),   # reserved subnet anycast (RFC 2526)
)


def is_reserved_iid(iid: int) -> bool:
    return any(lo <= iid <= hi for lo, hi in _RESERVED_IID_RANGES)


IDGEN_RETRIES = 3   # RFC 7217 §6: attempts after a collision before giving up


def stable_iid(prefix: int, net_iface: bytes | str, network_id: bytes, dad_counter: int,
               secret_key: bytes) -> int | None:
    """RFC 7217 §5: RID = F(Prefix, Net_Iface, Network_ID, DAD_Counter, secret_key), F being
    SHA-256 over the length-framed parameters, truncated to its leftmost 64 bits.  Stable for a
    given network and prefix, different across networks, not derived from the MAC.  None when
    the result is a reserved IID (RFC 5453): RFC 7217 §5 treats that like a DAD collision, so
    the caller retries with dad_counter + 1 (`stable_address` does)."""
    iface = net_iface.encode() if isinstance(net_iface, str) else net_iface
    msg = b"".join((
        (prefix >> IID_BITS & ((1 << 64) - 1)).to_bytes(8, "big"),
        struct.pack("!H", len(iface)), iface,
        struct.pack("!H", len(network_id)), network_id,
        struct.pack("!I", dad_counter & 0xFFFFFFFF),
        secret_key,
    ))
    iid = int.from_bytes(_prf(msg)[:8], "big")
    return None if is_reserved_iid(iid) else iid


def _prf(msg: bytes) -> bytes:
    return hashlib.sha256(msg).digest()


def stable_address(prefix: int, net_iface: bytes | str, network_id: bytes, secret_key: bytes,
                   dad_counter: int = 0, *, used: Callable[[int], bool] = lambda addr: False) -> tuple[int, int] | None:
    """(address, the DAD counter that produced it) for `prefix`/64, skipping reserved IIDs and
    addresses `used` says are taken, at most IDGEN_RETRIES more tries (RFC 7217 §6); None then."""
    for counter in range(dad_counter, dad_counter + IDGEN_RETRIES + 1):
        iid = stable_iid(prefix, net_iface, network_id, counter, secret_key)
        if iid is not None and not used(with_iid(prefix, iid)):
            return with_iid(prefix, iid), counter
    return None


# --- source address selection (RFC 6724 §5) ----------------------------------------------------------
# RFC 6724 §2.1 default policy table, longest prefix first: (mask, prefix, label).
_POLICY_LABELS = tuple((*_masked(t), label) for t, label in (
    ("::1/128", 0), ("::ffff:0:0/96", 4), ("::/96", 3), ("2001::/32", 5), ("2002::/16", 2),
    ("3ffe::/16", 12), ("fec0::/10", 11), ("fc00::/7", 13), ("::/0", 1),
))


def policy_label(addr: int) -> int:
    for mask, prefix, label in _POLICY_LABELS:
        if addr & mask == prefix:
            return label
    return 1   # unreachable: ::/0 matches everything


@dataclass(frozen=True, slots=True)
class SourceCandidate:
    """One of our addresses, as source address selection sees it.  `scope` defaults to the
    address's own (address_scope); `prefix_len` bounds rule 8 (RFC 6724 §2.2 CommonPrefixLen
    stops at the source's prefix); tentative addresses are never chosen (RFC 4862 §5.4)."""
    addr: int
    prefix_len: int = 64
    deprecated: bool = False
    tentative: bool = False
    ifindex: int = 0
    scope: int = -1

    @property
    def effective_scope(self) -> int:
        return self.scope if self.scope >= 0 else address_scope(self.addr)


def select_source(dst: int, candidates: Sequence[SourceCandidate],
                  out_ifindex: int = 0) -> SourceCandidate | None:
    """The best source for `dst` among `candidates` (RFC 6724 §5), or None if none is usable.
    Rules applied in order: 1 same address, 2 appropriate scope, 3 avoid deprecated,
    5 prefer the outgoing interface (when out_ifindex is given), 6 matching label,
    8 longest matching prefix.  Rule 4 (home addresses) and rule 7 (temporary addresses) do not
    apply: there are no Mobile IPv6 home addresses nor RFC 8981 temporaries here.  The caller
    restricts candidates to the outgoing interface for link-local and multicast destinations (§4)."""
    dst_scope = address_scope(dst)
    dst_label = policy_label(dst)

    def rank(c: SourceCandidate) -> tuple[bool, bool, int, bool, bool, bool, int]:
        s = c.effective_scope
        return (
            c.addr != dst,                                  # rule 1
            s < dst_scope, s if s >= dst_scope else -s,     # rule 2: smallest scope >= dst's, else largest
            c.deprecated,                                   # rule 3
            bool(out_ifindex) and c.ifindex != out_ifindex,  # rule 5
            policy_label(c.addr) != dst_label,              # rule 6
            -min(common_prefix_len(c.addr, dst), c.prefix_len),  # rule 8
        )

    usable = [c for c in candidates if not c.tentative]
    return min(usable, key=rank) if usable else None
