"""The socket options every IPv4 socket shares (SOL_SOCKET and IPPROTO_IP), on the pcb
that holds them: the user requests of UDP and TCP (and SOL_SOCKET of the ATM family)
serve them from here, each with its own exceptions first.  Linux is the reference
(net/core/sock.c sk_setsockopt, net/ipv4/ip_sockglue.c)."""
from __future__ import annotations

import errno
import socket as _pysocket
from typing import Any

# Linux's socket-buffer sysctls and floors, for every datagram socket (TCP autotunes: tcp/memory.py)
BUF_DEFAULT = 212992                 # net.core.rmem_default / wmem_default
BUF_MAX = 212992                     # net.core.rmem_max / wmem_max
MIN_RCVBUF, MIN_SNDBUF = 2304, 4608  # SOCK_MIN_RCVBUF / SOCK_MIN_SNDBUF
# SOL_SOCKET flags kept as a bool attribute of the pcb, by the pcb's attribute name
_FLAGS = {_pysocket.SO_REUSEADDR: "reuseaddr", _pysocket.SO_REUSEPORT: "reuseport",
          _pysocket.SO_BROADCAST: "broadcast", _pysocket.SO_KEEPALIVE: "keepalive"}


def bufsize(value: int, maximum: int, minimum: int) -> int:
    """SO_RCVBUF/SO_SNDBUF as sock_setsockopt sets them: min_t(u32, val, [rw]mem_max), so a
    negative int is a huge unsigned one and clamps to the maximum; then doubled for
    overhead and raised to SOCK_MIN_*.  Linux: setsockopt(SO_RCVBUF, -1) reads back 2 * rmem_max."""
    return max(minimum, min(value & 0xFFFFFFFF, maximum) * 2)


def set_socket_option(pcb: Any, name: int, value: int) -> int:
    """SOL_SOCKET on a pcb with reuseaddr/reuseport/broadcast/keepalive/rcvbuf/sndbuf: 0 or an errno."""
    attr = _FLAGS.get(name)
    if attr is not None:
        setattr(pcb, attr, bool(value))
    elif name == _pysocket.SO_RCVBUF:
        pcb.rcvbuf = bufsize(value, BUF_MAX, MIN_RCVBUF)     # Linux doubles for overhead
    elif name == _pysocket.SO_SNDBUF:
        pcb.sndbuf = bufsize(value, BUF_MAX, MIN_SNDBUF)
    else:
        return errno.ENOPROTOOPT    # SO_ERROR, SO_TYPE, ... are read-only; the rest not served
    return 0


def get_socket_option(pcb: Any, name: int) -> int | None:
    attr = _FLAGS.get(name)
    if attr is not None:
        return int(getattr(pcb, attr))
    if name == _pysocket.SO_RCVBUF:
        return int(pcb.rcvbuf)
    if name == _pysocket.SO_SNDBUF:
        return int(pcb.sndbuf)
    return None


def set_ip_option(pcb: Any, name: int, value: int) -> int:
    """IPPROTO_IP on a pcb with ttl (None: the default) and tos: 0 or an errno."""
    if name == _pysocket.IP_TTL:
        if not (value == -1 or 1 <= value <= 255):
            return errno.EINVAL
        pcb.ttl = None if value == -1 else value
        return 0
    if name == _pysocket.IP_TOS:
        pcb.tos = value & 0xFF
        return 0
    return errno.ENOPROTOOPT


def get_ip_option(pcb: Any, name: int, default_ttl: int) -> int | None:
    if name == _pysocket.IP_TTL:
        return int(pcb.ttl) if pcb.ttl is not None else default_ttl
    if name == _pysocket.IP_TOS:
        return int(pcb.tos)
    return None
