"""AF_INET and AF_INET6 socket addresses as CPython's socket module takes and gives them.

Parsing follows CPython 3.11's getsockaddrarg(): the same checks in the same order, the same
exception types and messages (the tuple's shape and types first, then the host, then the
port's and flowinfo's ranges).  A host is resolved as its setipaddr() does, with the stack's
hosts table standing in for glibc's getaddrinfo() and /etc/hosts:
  * "" is the wildcard; "<broadcast>" / "255.255.255.255" is INADDR_BROADCAST for AF_INET
    and OSError("address family mismatched") for AF_INET6;
  * a literal of the socket's family is taken as it is; IPv4 literals in the forms
    inet_aton() reads ("127.1", "0x7f.1") as getaddrinfo() does;
  * a literal of the other family is gaierror EAI_ADDRFAMILY (glibc without AI_V4MAPPED:
    "1.2.3.4" is no AF_INET6 address -- write "::ffff:1.2.3.4");
  * an IPv6 literal may carry a zone, "fe80::1%eth0" or "fe80::1%2", checked as glibc's
    __inet6_scopeid_pton() checks it (an interface name only for link-local and
    interface/link-local multicast addresses, else a decimal number <= 2**32-1;
    gaierror EAI_NONAME otherwise).  CPython then overwrites sin6_scope_id with the tuple's
    scope_id (its 4th item, 0 when absent), so in a socket address the zone text is checked
    but not used -- `bind(("fe80::1%eth0", 0))` is EINVAL on Linux.  getaddrinfo() (the
    trio resolver) does give the zone's index;
  * any other text is a name of the hosts table, with a value of the wanted family, else
    gaierror EAI_NONAME.
The hosts table maps a name to one address text or to a sequence of them (either family,
in the order lookups answer).  Formatting is CPython's makesockaddr(): (text, port) and
(text, port, flowinfo, scope_id), the text from inet_ntop ("::ffff:10.0.0.1" for a mapped
address, a link-local one without "%zone": its zone is the scope_id).
"""
from __future__ import annotations

import operator
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias

from protocols.addr import BROADCAST, int_to_ip
from protocols.ipv6.addr import int_to_ip6, ip6_to_int, is_link_local, is_multicast, is_v4_mapped, multicast_scope

HostsTable: TypeAlias = Mapping[str, "str | Sequence[str]"]
IfNameToIndex: TypeAlias = Callable[[str], int]

_INT_MIN, _INT_MAX = -2**31, 2**31 - 1           # a C int: CPython's "i" format
_UINT_MASK = 0xFFFFFFFF                          # CPython's "I" format: masked, never checked
FLOWINFO_MAX = 0xFFFFF                           # the 20-bit flow label
_GAI_MESSAGES = {socket.EAI_NONAME: "Name or service not known",
                 socket.EAI_ADDRFAMILY: "Address family for hostname not supported",
                 socket.EAI_FAMILY: "ai_family not supported"}


def gai_error(code: int) -> socket.gaierror:
    """socket.gaierror with glibc's gai_strerror() text."""
    return socket.gaierror(code, _GAI_MESSAGES[code])


# --- host text -------------------------------------------------------------------------------
def host_text(host: object) -> str:
    """CPython's idna_converter: str (non-ASCII through the "idna" codec), bytes or bytearray,
    without a NUL.  The result is the text the hosts table is searched with."""
    if isinstance(host, str):
        if host.isascii():
            raw = host.encode("ascii")
        else:
            try:
                raw = host.encode("idna")
            except UnicodeError:
                raise TypeError("encoding of hostname failed") from None
    elif isinstance(host, (bytes, bytearray)):
        raw = bytes(host)
    else:
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if b"\0" in raw:
        raise TypeError("host name must not contain null character")
    return raw.decode("latin-1")       # bytes are matched octet for octet


def host_values(hosts: HostsTable, name: str) -> tuple[str, ...]:
    """The address texts the hosts table gives `name` (none: an unknown name)."""
    value = hosts.get(name)
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def v4_literal(text: str) -> int | None:
    """An IPv4 literal as getaddrinfo() reads one (glibc's inet_aton_exact: "a.b.c.d" and
    the shorter and hex/octal forms, nothing after them), or None."""
    if not text or not text.isascii() or any(c.isspace() for c in text):
        return None
    try:
        return int.from_bytes(socket.inet_aton(text), "big")
    except OSError:
        return None


def v6_literal(text: str) -> int | None:
    """An IPv6 literal without a zone (inet_pton), or None."""
    try:
        return ip6_to_int(text)
    except ValueError:
        return None


def scope_index(addr: int, zone: str, if_nametoindex: IfNameToIndex) -> int | None:
    """The interface index a zone names, as glibc's __inet6_scopeid_pton reads it: an interface
    name (link-local unicast, interface- or link-local multicast only), else a decimal number
    that fits in 32 bits; None when it names nothing."""
    if is_link_local(addr) or (is_multicast(addr) and multicast_scope(addr) in (1, 2)):
        try:
            index = if_nametoindex(zone)
        except OSError:
            index = 0
        if index:
            return index
    if zone.isascii() and zone.isdigit():
        number = int(zone)
        return number if number <= _UINT_MASK else None
    return None


def split_v6_literal(text: str) -> tuple[int, str | None] | None:
    """An IPv6 literal with an optional zone, "fe80::1%eth0" -> (address, "eth0"); the zone is
    None without a "%"; None if `text` is no IPv6 literal."""
    addr_text, percent, zone = text.partition("%")
    addr = v6_literal(addr_text)
    if addr is None:
        return None
    return addr, zone if percent else None


def zone_index(addr: int, zone: str | None, if_nametoindex: IfNameToIndex) -> int:
    """The interface index of a literal's zone (0: no zone); gaierror EAI_NONAME when the
    zone names nothing (glibc's getaddrinfo)."""
    if zone is None:
        return 0
    index = scope_index(addr, zone, if_nametoindex)
    if index is None:
        raise gai_error(socket.EAI_NONAME)
    return index


def _values_of_family(hosts: HostsTable, name: str, family: int) -> list[int]:
    parse = v4_literal if family == socket.AF_INET else v6_literal
    return [addr for addr in map(parse, host_values(hosts, name)) if addr is not None]


def lookup_v4(hosts: HostsTable, name: str) -> list[int]:
    """The IPv4 addresses of `name` in the hosts table, in the table's order."""
    return _values_of_family(hosts, name, socket.AF_INET)


def lookup_v6(hosts: HostsTable, name: str) -> list[int]:
    """The IPv6 addresses of `name` in the hosts table, in the table's order."""
    return _values_of_family(hosts, name, socket.AF_INET6)


# --- the address tuples ----------------------------------------------------------------------
def _index(value: object) -> int:
    """An int as CPython's argument parser takes one (bool and __index__ too); TypeError
    "'str' object cannot be interpreted as an integer" else."""
    return operator.index(value)   # type: ignore[arg-type]


def _port(value: object, what: str) -> int:
    """CPython's "i" for the port: an index, an overflow of a C int reported as the port range."""
    port = _index(value)
    if not _INT_MIN <= port <= _INT_MAX:
        raise OverflowError(f"{what}(): port must be 0-65535.")
    return port


def _check_port(port: int, what: str) -> int:
    if not 0 <= port <= 0xFFFF:
        raise OverflowError(f"{what}(): port must be 0-65535.")
    return port


def parse_inet(address: object, hosts: HostsTable, what: str = "bind") -> tuple[int, int]:
    """A (host, port) pair for an AF_INET socket -> (addr32, port)."""
    if not isinstance(address, tuple):
        raise TypeError(f"{what}(): AF_INET address must be tuple, not {type(address).__name__}")
    if len(address) != 2:
        raise TypeError("AF_INET address must be a pair (host, port)")
    host, port = host_text(address[0]), _port(address[1], what)
    return resolve_host(host, hosts), _check_port(port, what)


def resolve_host(host: str, hosts: HostsTable) -> int:
    """The IPv4 address of a host text (CPython's setipaddr for AF_INET)."""
    if host in ("", "0.0.0.0"):
        return 0
    if host in ("<broadcast>", "255.255.255.255"):
        return BROADCAST
    addr = v4_literal(host)
    if addr is not None:
        return addr
    literal = split_v6_literal(host)
    if literal is not None:
        # getaddrinfo(AF_INET) unmaps ::ffff:a.b.c.d (then checks the zone), refuses other IPv6
        if not is_v4_mapped(literal[0]):
            raise gai_error(socket.EAI_ADDRFAMILY)
        zone_index(*literal, _no_interfaces)
        return literal[0] & _UINT_MASK
    found = lookup_v4(hosts, host)
    if not found:
        raise gai_error(socket.EAI_NONAME)
    return found[0]


def _no_interfaces(name: str) -> int:
    return 0


def format_inet(addr: int, port: int) -> tuple[str, int]:
    return int_to_ip(addr), port


def parse_inet6(address: object, hosts: HostsTable, if_nametoindex: IfNameToIndex,
                what: str = "bind") -> tuple[int, int, int, int]:
    """A (host, port[, flowinfo[, scope_id]]) tuple for an AF_INET6 socket ->
    (addr128, port, flowinfo, scope_id), as CPython's getsockaddrarg builds its sockaddr_in6."""
    if not isinstance(address, tuple):
        raise TypeError(f"{what}(): AF_INET6 address must be tuple, not {type(address).__name__}")
    if not 2 <= len(address) <= 4:
        raise TypeError("AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
    host, port = host_text(address[0]), _port(address[1], what)
    # flowinfo and scope_id: C unsigned ints taken modulo 2**32, as the "I" format does
    flowinfo, scope_id = ((_index(v) & _UINT_MASK) for v in (*address[2:], 0, 0)[:2])
    addr, _zone = resolve_host6(host, hosts, if_nametoindex)   # the zone is checked, then replaced
    _check_port(port, what)
    if flowinfo > FLOWINFO_MAX:
        raise OverflowError(f"{what}(): flowinfo must be 0-1048575.")
    return addr, port, flowinfo, scope_id


def resolve_host6(host: str, hosts: HostsTable, if_nametoindex: IfNameToIndex) -> tuple[int, int]:
    """The IPv6 address of a host text and the index its %zone names (0: none), as CPython's
    setipaddr for AF_INET6 and glibc's getaddrinfo(AF_INET6) find them."""
    if host == "":
        return 0, 0
    if host in ("<broadcast>", "255.255.255.255"):
        raise OSError("address family mismatched")
    if v4_literal(host) is not None:
        raise gai_error(socket.EAI_ADDRFAMILY)
    literal = split_v6_literal(host)
    if literal is not None:
        return literal[0], zone_index(*literal, if_nametoindex)
    found = lookup_v6(hosts, host)
    if not found:
        raise gai_error(socket.EAI_NONAME)
    return found[0], 0


def format_inet6(addr: int, port: int, flowinfo: int = 0, scope_id: int = 0) -> tuple[str, int, int, int]:
    return int_to_ip6(addr), port, flowinfo, scope_id
