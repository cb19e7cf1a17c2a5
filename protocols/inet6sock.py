"""Socket-level IPv6 rules a transport applies at its user requests, without a pcb: Linux's
bind-overlap test across families, which addresses need a scope id, and the ipv6_mreq
option value.  UDP uses them (protocols/udp/udp.py); they hold for TCP's binds too.

  * `rcv_saddr_equal` is Linux's inet_rcv_saddr_equal(sk, sk2, match_wildcard=true), the
    address half of a bind conflict (udp_lib_lport_inuse, inet_csk_bind_conflict): each
    socket is described by a `BindKey` -- its family, its IPv6 receive address (an IPv4
    association shows as ::ffff:a.b.c.d), its IPv4 receive address and IPV6_V6ONLY.  A
    wildcard `::` without V6ONLY overlaps every IPv4 bind of the port; with V6ONLY none.
  * `needs_scope_id`: link-local unicast and link- or interface-local multicast name an
    interface (RFC 4007 §6; Linux __ipv6_addr_needs_scope_id).
  * `Ipv6Mreq`: struct ipv6_mreq (RFC 3493 §5.2): the 16-octet group, then the interface
    index as a native 32-bit unsigned int.
"""
from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass

from .ipv6.addr import (
    SCOPE_INTERFACE_LOCAL,
    SCOPE_LINK_LOCAL,
    is_link_local,
    is_multicast,
    is_v4_mapped,
    multicast_scope,
)

# the IPv4 receive address Linux gives an AF_INET6 socket bound (or connected) to a real IPv6
# address: 127.0.0.6 (LOOPBACK4_IPV6), never a real IPv4 destination
LOOPBACK4_IPV6 = 0x7F000006
MREQ_LEN = 20
_MREQ_IFINDEX = struct.Struct("=I" if sys.byteorder == "little" else ">I")   # host order


@dataclass(frozen=True, slots=True)
class BindKey:
    """What Linux's bind-overlap test reads of one socket."""
    family: int         # socket.AF_INET or socket.AF_INET6
    addr6: int          # AF_INET6: sk_v6_rcv_saddr (:: wildcard, ::ffff:a.b.c.d for IPv4); else unused
    addr4: int          # sk_rcv_saddr (0 wildcard)
    v6only: bool = False


def _mapped_equal(a4: int, b4: int, b_v6only: bool) -> bool:
    """Two IPv4 receive addresses overlap: equal, or either is the wildcard -- unless the
    second socket is V6ONLY (it takes no IPv4 at all)."""
    if b_v6only:
        return False
    return a4 == b4 or not a4 or not b4


def rcv_saddr_equal(sk: BindKey, sk2: BindKey) -> bool:
    """Do the receive addresses of `sk` (the one binding) and `sk2` (already bound) overlap?"""
    if sk.family != socket.AF_INET6:
        return _mapped_equal(sk.addr4, sk2.addr4, sk2.v6only)
    mapped = is_v4_mapped(sk.addr6)
    mapped2 = sk2.family != socket.AF_INET6 or is_v4_mapped(sk2.addr6)
    if mapped and mapped2:          # both IPv4 in effect: the IPv4 rule
        return _mapped_equal(sk.addr4, sk2.addr4, sk2.v6only)
    any1 = sk.addr6 == 0
    any2 = sk2.family == socket.AF_INET6 and sk2.addr6 == 0
    if any1 and any2:
        return True
    if any2 and not (sk2.v6only and mapped):
        return True
    if any1 and not (sk.v6only and mapped2):
        return True
    return sk2.family == socket.AF_INET6 and sk.addr6 == sk2.addr6


def needs_scope_id(addr: int) -> bool:
    """RFC 4007 §6: the address means something only on one link (or interface)."""
    if is_multicast(addr):
        return multicast_scope(addr) in (SCOPE_INTERFACE_LOCAL, SCOPE_LINK_LOCAL)
    return is_link_local(addr)


@dataclass(frozen=True, slots=True)
class Ipv6Mreq:
    """IPV6_JOIN_GROUP / IPV6_LEAVE_GROUP's value."""
    group: int
    ifindex: int = 0        # 0: the interface the route to the group names

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> Ipv6Mreq | None:
        """None when shorter than struct ipv6_mreq (Linux: EINVAL); extra octets are ignored."""
        if len(data) < MREQ_LEN:
            return None
        return cls(int.from_bytes(data[:16], "big"), _MREQ_IFINDEX.unpack_from(data, 16)[0])

    def to_bytes(self) -> bytes:
        return self.group.to_bytes(16, "big") + _MREQ_IFINDEX.pack(self.ifindex)
