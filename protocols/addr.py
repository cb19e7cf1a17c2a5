"""IPv4 and MAC address helpers.  Addresses are ints inside the stack (fast compares)."""
from __future__ import annotations

import socket

BROADCAST = 0xFFFFFFFF
ANY = 0


def ip_to_int(addr: str | int) -> int:
    if isinstance(addr, int):
        if not 0 <= addr <= 0xFFFFFFFF:
            raise ValueError(f"IPv4 address out of range: {addr}")
        return addr
    try:
        return int.from_bytes(socket.inet_aton(addr), "big") if addr.count(".") == 3 else _bad(addr)
    except OSError:
        return _bad(addr)


def _bad(addr: str) -> int:
    raise ValueError(f"not an IPv4 address: {addr!r}")


def int_to_ip(value: int) -> str:
    return socket.inet_ntoa(value.to_bytes(4, "big"))


def prefix_mask(prefixlen: int) -> int:
    return (0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF if prefixlen else 0


def parse_prefix(text: str) -> tuple[int, int]:
    """'10.0.0.2/24' -> (address int, 24).  A bare address means /32."""
    addr, _, plen = text.partition("/")
    prefixlen = int(plen) if plen else 32
    if not 0 <= prefixlen <= 32:
        raise ValueError(f"bad prefix length in {text!r}")
    return ip_to_int(addr), prefixlen


def is_multicast(addr: int) -> bool:
    return addr >> 28 == 0xE


def is_martian_source(addr: int) -> bool:
    """Sources no host may use (RFC 1122 §3.2.1.3): broadcast, multicast, class E, 0/8 except 0."""
    top = addr >> 24
    return addr == BROADCAST or top >= 224 or (top == 0 and addr != 0)


def mac_to_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def mac_from_str(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


MAC_BROADCAST = b"\xff" * 6


def multicast_mac(group: int) -> bytes:
    """RFC 1112 §6.4: 01:00:5e + low 23 bits of the group."""
    return b"\x01\x00\x5e" + (group & 0x7FFFFF).to_bytes(3, "big")
