"""The address options of `tunstack up`, `ping` and `nc` (--addr, --peer-addr, --gw), both
families, checked before any device exists: every mistake is one line saying what is wrong.

IPv4 is checked as an interface address is (RFC 1122 §3.2.1.3, RFC 5735): a unicast host
on a subnet, neither its network nor its broadcast address.  IPv6 in the same spirit
(RFC 4291): a unicast address, not ::, ::1, multicast (ff00::/8), IPv4-mapped
(::ffff:0:0/96) or a subnet-router anycast address (§2.6.1: the subnet prefix with a zero
interface identifier).  A link-local --addr (fe80::/10) is accepted, as Linux's `ip addr
add` accepts it: the stack's own link-local address is formed beside it.  The prefix
length is required for both families (a bare address would be a /32 or /128, with no
neighbour on its subnet), and /0 is refused.

Every interface with IPv6 has fe80::/64: a link-local --peer-addr or --gw is on the link
whatever the --addr are.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from protocols.addr import int_to_ip, ip_to_int, is_multicast, prefix_mask
from protocols.ipv6 import addr as v6

EXAMPLE4, EXAMPLE6 = "10.77.0.2/24", "fd00:77::2/64"
PEER_EXAMPLE4, PEER_EXAMPLE6 = "10.77.0.1/24", "fd00:77::1/64"
LINK_LOCAL_NET = (v6.LINK_LOCAL_PREFIX, 64)       # on every IPv6 interface (RFC 4291 §2.5.6)


@dataclass(frozen=True)
class IfAddress:
    """One address/prefix of an option: `family` 4 or 6, the address an int."""
    text: str
    family: int
    value: int
    plen: int

    @property
    def address(self) -> str:
        return int_to_ip(self.value) if self.family == 4 else v6.int_to_ip6(self.value)

    @property
    def prefix(self) -> str:
        """`address/plen` in canonical text (RFC 5952 for IPv6), as `ip addr` shows it."""
        return f"{self.address}/{self.plen}"

    def subnet(self) -> str:
        return subnet_str(self.family, self.value, self.plen)


@dataclass
class AddressPlan:
    """What the address options ask for, checked: the stack's addresses, the kernel side's,
    and the default gateway of each family (an IPv6 one may be link-local: on the device)."""
    addrs: list[IfAddress] = field(default_factory=list)
    peers: list[IfAddress] = field(default_factory=list)
    gw4: str | None = None
    gw6: str | None = None

    def of(self, family: int) -> list[IfAddress]:
        return [a for a in self.addrs if a.family == family]

    def peers_of(self, family: int) -> list[IfAddress]:
        return [a for a in self.peers if a.family == family]

    @property
    def names_ipv6(self) -> bool:
        """Whether the options ask for IPv6 at all (an IPv6 --addr, --peer-addr or --gw)."""
        return bool(self.of(6) or self.peers_of(6) or self.gw6)


# --- one address ------------------------------------------------------------------------------
def mask(family: int, plen: int) -> int:
    return prefix_mask(plen) if family == 4 else v6.prefix_mask(plen)


def on_subnet(value: int, net: int, plen: int, family: int = 4) -> bool:
    m = mask(family, plen)
    return value & m == net & m


def subnet_str(family: int, value: int, plen: int) -> str:
    net = value & mask(family, plen)
    return f"{int_to_ip(net) if family == 4 else v6.int_to_ip6(net)}/{plen}"


def check_unicast(text: str, value: int) -> None:
    """An address a host interface may have: not 0.0.0.0/8, loopback, multicast, class E or
    broadcast (RFC 1122 §3.2.1.3, RFC 5735)."""
    top = value >> 24
    if top == 0:
        raise ValueError(f"{text}: 0.0.0.0/8 is 'this network', not an address for an interface")
    if top == 127:
        raise ValueError(f"{text}: a loopback address (127.0.0.0/8), not one for a TUN/TAP device")
    if is_multicast(value):
        raise ValueError(f"{text}: a multicast address (224.0.0.0/4), not one for an interface")
    if top >= 240:
        raise ValueError(f"{text}: a reserved or broadcast address (240.0.0.0/4), not one for an interface")


def check_unicast6(text: str, value: int) -> None:
    """An IPv6 address a host interface may have (RFC 4291 §2.5.2, §2.5.3, §2.7, §2.5.5.2)."""
    if v6.is_unspecified(value):
        raise ValueError(f"{text}: the unspecified address (::), not one for an interface")
    if v6.is_loopback(value):
        raise ValueError(f"{text}: the loopback address (::1), not one for a TUN/TAP device")
    if v6.is_multicast(value):
        raise ValueError(f"{text}: a multicast address (ff00::/8), not one for an interface")
    if v6.is_v4_mapped(value):
        raise ValueError(f"{text}: an IPv4-mapped address (::ffff:0:0/96); give IPv4 addresses as A.B.C.D/P")


def parse_interface_address(text: str, example: str = EXAMPLE4) -> tuple[int, int]:
    """A.B.C.D/P for an interface: the prefix is required (a bare address would make a /32
    with no neighbour the stack could answer), 1..32, and the address a unicast host's."""
    addr_s, sep, plen_s = text.partition("/")
    if not sep:
        raise ValueError(f"{text}: no prefix length; expected A.B.C.D/P, e.g. {example}")
    try:
        value = ip_to_int(addr_s)
    except ValueError:
        raise ValueError(f"{text}: not an IPv4 address; expected A.B.C.D/P, e.g. {example}") from None
    if not plen_s.isascii() or not plen_s.isdigit() or not 0 <= int(plen_s) <= 32:
        raise ValueError(f"{text}: the prefix length must be 1..32")
    plen = int(plen_s)
    if plen == 0:
        raise ValueError(f"{text}: /0 would put every address on the link; give the subnet's prefix, e.g. "
                         f"{example}")
    check_unicast(text, value)
    if plen <= 30:
        host = value & ~prefix_mask(plen) & 0xFFFFFFFF
        if host == 0:
            raise ValueError(f"{text}: the subnet's network address, not a host's")
        if host == ~prefix_mask(plen) & 0xFFFFFFFF:
            raise ValueError(f"{text}: the subnet's broadcast address, not a host's")
    return value, plen


def parse_interface_address6(text: str, example: str = EXAMPLE6) -> tuple[int, int]:
    """X:X::X/P for an interface: the prefix required, 1..128, a unicast address that is not
    its subnet's router anycast address (RFC 4291 §2.6.1; a /127 has none, RFC 6164)."""
    addr_s, sep, plen_s = text.partition("/")
    if "%" in addr_s:
        raise ValueError(f"{text}: a zone (%...) does not belong in an interface address (the address "
                         f"is on the device already); e.g. {example}")
    if not sep:
        raise ValueError(f"{text}: no prefix length; expected X:X::X/P, e.g. {example}")
    try:
        value = v6.ip6_to_int(addr_s)
    except ValueError:
        raise ValueError(f"{text}: not an IPv6 address; expected X:X::X/P, e.g. {example}") from None
    if not plen_s.isascii() or not plen_s.isdigit() or not 0 <= int(plen_s) <= 128:
        raise ValueError(f"{text}: the prefix length must be 1..128")
    plen = int(plen_s)
    if plen == 0:
        raise ValueError(f"{text}: /0 would put every address on the link; give the subnet's prefix, e.g. "
                         f"{example}")
    check_unicast6(text, value)
    if plen <= 126 and value & ~v6.prefix_mask(plen) & v6.ALL_ONES == 0:
        raise ValueError(f"{text}: the subnet-router anycast address of {subnet_str(6, value, plen)} "
                         f"(RFC 4291 §2.6.1), not a host's")
    return value, plen


def parse_option_address(text: str, peer: bool = False) -> IfAddress:
    """Either family, by the text: a colon makes it IPv6."""
    if ":" in text.partition("/")[0]:
        value, plen = parse_interface_address6(text, PEER_EXAMPLE6 if peer else EXAMPLE6)
        return IfAddress(text, 6, value, plen)
    value, plen = parse_interface_address(text, PEER_EXAMPLE4 if peer else EXAMPLE4)
    return IfAddress(text, 4, value, plen)


# --- the options together ---------------------------------------------------------------------
def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _subnets(plan: AddressPlan, family: int, ipv6: bool) -> list[tuple[int, int]]:
    """The stack's subnets of a family: its --addr ones, and fe80::/64 when IPv6 is on."""
    nets = [(a.value, a.plen) for a in plan.of(family)]
    if family == 6 and ipv6:
        nets.append(LINK_LOCAL_NET)
    return nets


def _family_name(family: int) -> str:
    return "IPv4" if family == 4 else "IPv6"


def _check_addrs(texts: list[str], ipv6: bool) -> list[IfAddress]:
    addrs: list[IfAddress] = []
    for text in texts:
        try:
            a = parse_option_address(text)
        except ValueError as exc:
            raise ValueError(f"--addr {exc}") from None
        if a.family == 6 and not ipv6:
            raise ValueError(f"--addr {text}: an IPv6 address, but IPv6 is off (--no-ipv6)")
        for b in addrs:
            if b.family == a.family and b.value == a.value:
                raise ValueError(f"--addr {text}: given twice")
            if a.family == b.family == 4 and a.plen == b.plen and on_subnet(a.value, b.value, b.plen):
                raise ValueError(f"--addr {text}: on the subnet {a.subnet()} of --addr {b.text} too; the "
                                 f"stack takes one IPv4 address per subnet")
        addrs.append(a)
    return addrs


def _check_peer(text: str, plan: AddressPlan, ipv6: bool) -> IfAddress:
    try:
        p = parse_option_address(text, peer=True)
    except ValueError as exc:
        raise ValueError(f"--peer-addr {exc}") from None
    fam = _family_name(p.family)
    if p.family == 6 and not ipv6:
        raise ValueError(f"--peer-addr {text}: an IPv6 address, but IPv6 is off (--no-ipv6)")
    ours = plan.of(p.family)
    for a in ours:
        if a.value == p.value:
            raise ValueError(f"--peer-addr {text}: the same address as --addr {a.text}; the kernel side "
                             f"needs its own, e.g. another host on {a.subnet()}")
    if any(q.family == p.family and q.value == p.value for q in plan.peers):
        raise ValueError(f"--peer-addr {text}: given twice")
    if p.family == 6 and v6.is_link_local(p.value):
        return p                              # on fe80::/64, which the stack has on the device
    if not ours:
        raise ValueError(f"--peer-addr {text}: no {fam} --addr to share a subnet with; the two ends of the "
                         f"device must share one, e.g. --addr {EXAMPLE4 if p.family == 4 else EXAMPLE6}")
    if not any(on_subnet(p.value, a.value, a.plen, p.family) and on_subnet(a.value, p.value, p.plen, p.family)
               for a in ours):
        where = (f"--addr's subnet {ours[0].subnet()}" if len(ours) == 1
                 else f"the subnet of any {fam} --addr ({', '.join(a.subnet() for a in ours)})")
        raise ValueError(f"--peer-addr {text}: not on {where}; the two ends of the device must share one")
    return p


def _check_gw4(text: str, plan: AddressPlan) -> str:
    try:
        gw = ip_to_int(text)
    except ValueError:
        raise ValueError(f"--gw {text}: not an IPv4 address, nor an IPv6 one") from None
    check_unicast(f"--gw {text}", gw)
    ours = plan.of(4)
    if any(a.value == gw for a in ours):
        raise ValueError(f"--gw {text}: the stack's own address; the gateway is another host")
    if not ours:
        raise ValueError(f"--gw {text}: no IPv4 --addr, so no subnet the gateway could be on")
    if not any(on_subnet(gw, a.value, a.plen) for a in ours):
        where = ours[0].subnet() if len(ours) == 1 else ", ".join(a.subnet() for a in ours)
        raise ValueError(f"--gw {text}: the gateway {text} is not on --addr's subnet {where}")
    return int_to_ip(gw)


def _check_gw6(text: str, plan: AddressPlan, device: str | None, ipv6: bool) -> str:
    """An IPv6 default gateway: link-local (on the device: `fe80::1` or `fe80::1%DEV`) or on
    the subnet of an IPv6 --addr; returned without its zone."""
    addr_s, pct, zone = text.partition("%")
    if not ipv6:
        raise ValueError(f"--gw {text}: an IPv6 gateway, but IPv6 is off (--no-ipv6)")
    try:
        gw = v6.ip6_to_int(addr_s)
    except ValueError:
        raise ValueError(f"--gw {text}: not an IPv6 address") from None
    check_unicast6(f"--gw {text}", gw)
    if pct and (not v6.is_link_local(gw) or (device is not None and zone != device)):
        raise ValueError(f"--gw {text}: a zone names the device of a link-local gateway, and the only one "
                         f"here is {device or 'the device'}")
    if any(a.family == 6 and a.value == gw for a in plan.addrs):
        raise ValueError(f"--gw {text}: the stack's own address; the gateway is another host")
    if v6.is_link_local(gw):
        return v6.int_to_ip6(gw)
    ours = plan.of(6)
    if not ours:
        raise ValueError(f"--gw {text}: no IPv6 --addr, so no subnet the gateway could be on; a link-local "
                         f"gateway (fe80::...) is always on the device")
    if not any(on_subnet(gw, a.value, a.plen, 6) for a in ours):
        raise ValueError(f"--gw {text}: the gateway {addr_s} is not on the subnet of an IPv6 --addr "
                         f"({', '.join(a.subnet() for a in ours)}); a link-local gateway (fe80::...) is "
                         f"always on the device")
    return v6.int_to_ip6(gw)


def check_addresses(args: argparse.Namespace) -> AddressPlan:
    """--addr, --peer-addr and --gw (each repeatable; a str is taken as one), alone and
    together; ValueError says what is wrong.  `args.no_ipv6` (absent: False) refuses IPv6
    ones; `args.tun`/`args.tap` name the device a gateway's zone must name."""
    ipv6 = not getattr(args, "no_ipv6", False)
    device = getattr(args, "tun", None) or getattr(args, "tap", None)
    plan = AddressPlan()
    plan.addrs = _check_addrs(_as_list(args.addr), ipv6)
    if not plan.addrs:
        raise ValueError("--addr: at least one address is needed, e.g. --addr 10.77.0.2/24")
    for text in _as_list(args.peer_addr):
        plan.peers.append(_check_peer(text, plan, ipv6))
    for text in _as_list(args.gw):
        family = 6 if ":" in text else 4
        if (plan.gw4 if family == 4 else plan.gw6) is not None:
            raise ValueError(f"--gw {text}: a second {_family_name(family)} gateway; give one default "
                             f"gateway per family")
        if family == 4:
            plan.gw4 = _check_gw4(text, plan)
        else:
            plan.gw6 = _check_gw6(text, plan, device, ipv6)
    return plan


def address_plan(args: argparse.Namespace) -> AddressPlan:
    """The plan check_device_options stored, or a fresh one (callers that skipped it)."""
    plan = getattr(args, "plan", None)
    return plan if isinstance(plan, AddressPlan) else check_addresses(args)


__all__ = ["AddressPlan", "IfAddress", "address_plan", "check_addresses", "check_unicast", "check_unicast6",
           "on_subnet", "parse_interface_address", "parse_interface_address6", "parse_option_address",
           "subnet_str"]
