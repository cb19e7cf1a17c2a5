"""--outbound-addr / --outbound-addr6 (slirp4netns's options): the host address the guest's
flows leave from -- every host socket of the TCP, UDP and echo sides is bound to it before it
connects -- instead of the one the host's routes would pick.  Given as an address or as an
interface name (its first IPv4 address, or its first global IPv6 address), resolved and
checked once at start: an address this host cannot bind is an error then, not a refused flow
later.
"""
from __future__ import annotations

import errno
import fcntl
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

SIOCGIFADDR = 0x8915
IF_INET6 = Path("/proc/net/if_inet6")
SCOPE_GLOBAL = 0x00


@dataclass(frozen=True)
class Outbound:
    """The source address per family (None: the routes choose)."""
    v4: str | None = None
    v6: str | None = None

    def source(self, family: int) -> str | None:
        return self.v6 if family == socket.AF_INET6 else self.v4


def _interface_ipv4(name: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            ifr = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("16s16x", name.encode()[:15]))
        except OSError as exc:
            why = "no such interface" if exc.errno == errno.ENODEV else \
                "it has no IPv4 address" if exc.errno == errno.EADDRNOTAVAIL else os.strerror(exc.errno or 0)
            raise ValueError(f"{name}: {why}") from None
    return socket.inet_ntoa(ifr[20:24])


def _interface_ipv6(name: str) -> str:
    try:
        lines = IF_INET6.read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"{IF_INET6}: {exc.strerror}") from None
    for line in lines:             # address ifindex prefixlen scope flags name (proc(5))
        fields = line.split()
        if len(fields) == 6 and fields[5] == name and int(fields[3], 16) == SCOPE_GLOBAL:
            return str(ipaddress.IPv6Address(bytes.fromhex(fields[0])))
    if not Path(f"/sys/class/net/{name}").exists():
        raise ValueError(f"{name}: no such interface")
    raise ValueError(f"{name}: it has no global IPv6 address")


def resolve(value: str, family: int) -> str:
    """`value` (an address of `family` or an interface name) as an address this host can bind;
    ValueError, one line, otherwise."""
    option = "--outbound-addr6" if family == socket.AF_INET6 else "--outbound-addr"
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        try:
            text = _interface_ipv6(value) if family == socket.AF_INET6 else _interface_ipv4(value)
        except ValueError as exc:
            raise ValueError(f"{option} {exc}") from None
    else:
        if addr.version != (6 if family == socket.AF_INET6 else 4):
            raise ValueError(f"{option} {value}: not an IPv{6 if family == socket.AF_INET6 else 4} address")
        text = str(addr)
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((text, 0))
        except OSError as exc:
            raise ValueError(f"{option} {value}: {exc.strerror} (not an address of this host)") from None
    return text


__all__ = ["Outbound", "resolve"]
