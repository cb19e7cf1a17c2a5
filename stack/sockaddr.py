"""AF_INET socket addresses, checked the way CPython's socket module checks them
(same exception types and messages), resolved through the stack's hosts table."""
from __future__ import annotations

import errno
import socket

from protocols.addr import BROADCAST, int_to_ip, ip_to_int


def parse_inet(address: object, hosts: dict[str, str], what: str = "") -> tuple[int, int]:
    prefix = f"{what}(): " if what else ""
    if not isinstance(address, tuple):
        raise TypeError(f"{prefix}AF_INET address must be tuple, not {type(address).__name__}")
    if len(address) != 2:
        raise TypeError("AF_INET address must be a pair (host, port)")
    host, port = address
    if not isinstance(host, (str, bytes, bytearray)):
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"'{type(port).__name__}' object cannot be interpreted as an integer")
    if not 0 <= port <= 65535:
        raise OverflowError(f"{prefix}port must be 0-65535.")
    return resolve_host(host.decode() if not isinstance(host, str) else host, hosts), port


def resolve_host(host: str, hosts: dict[str, str]) -> int:
    if host in ("", "0.0.0.0"):
        return 0
    if host == "<broadcast>":
        return BROADCAST
    if host in hosts:
        return ip_to_int(hosts[host])
    try:
        return ip_to_int(host)
    except ValueError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


def format_inet(addr: int, port: int) -> tuple[str, int]:
    return int_to_ip(addr), port


__all__ = ["errno", "format_inet", "parse_inet", "resolve_host"]
