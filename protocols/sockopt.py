"""The socket options every IP socket shares (SOL_SOCKET, IPPROTO_IP and IPPROTO_IPV6), on
the pcb that holds them: the user requests of UDP and TCP (and SOL_SOCKET of the ATM family)
serve them from here, each with its own exceptions first.  Linux is the reference
(net/core/sock.c sk_setsockopt, net/ipv4/ip_sockglue.c, net/ipv6/ipv6_sockglue.c)."""
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


# IP_TRANSPARENT (SOL_IP 19, <linux/in.h>) and IPV6_TRANSPARENT (SOL_IPV6 75, <linux/in6.h>):
# one flag of the socket in Linux (inet->transparent), set by either level.  Set, bind() takes
# an address that is not the host's (inet_can_nonlocal_bind / ipv6_can_nonlocal_bind); without
# it such a bind is EADDRNOTAVAIL.  Linux asks CAP_NET_ADMIN or CAP_NET_RAW for it: a userspace
# stack has no capabilities to check, and what it makes possible here is bounded anyway -- a
# foreign source leaves only by a transparent interface (Ipv4.transparent_source), where the
# replies to it can come back (a gateway connecting to its guest as the real client, issue 13).
IP_TRANSPARENT = 19
IPV6_TRANSPARENT = 75


def set_ip_option(pcb: Any, name: int, value: int, *, stream: bool = False) -> int:
    """IPPROTO_IP on a pcb with ttl (None: the default), tos and transparent: 0 or an errno.
    `stream`: a TCP socket, whose ECN bits are TCP's own (below)."""
    if name == IP_TRANSPARENT:
        pcb.transparent = bool(value)
        return 0
    if name == _pysocket.IP_TTL:
        if not (value == -1 or 1 <= value <= 255):
            return errno.EINVAL
        pcb.ttl = None if value == -1 else value
        return 0
    if name == _pysocket.IP_TOS:
        pcb.tos = _keep_ecn(pcb.tos, value & 0xFF) if stream else value & 0xFF
        return 0
    return errno.ENOPROTOOPT


def _keep_ecn(current: int, value: int) -> int:
    """IP_TOS / IPV6_TCLASS on a TCP socket: the DSCP is the user's, the two ECN bits stay
    TCP's (RFC 3168 §6.1: ECT on data only, never CE from a host) -- Linux __ip_sock_set_tos
    and do_ipv6_setsockopt do the same for SOCK_STREAM."""
    return (value & ~3) | (current & 3)


def get_ip_option(pcb: Any, name: int, default_ttl: int) -> int | None:
    if name == _pysocket.IP_TTL:
        return int(pcb.ttl) if pcb.ttl is not None else default_ttl
    if name == _pysocket.IP_TOS:
        return int(pcb.tos)
    if name == IP_TRANSPARENT:
        return int(pcb.transparent)
    return None


# IPPROTO_IPV6 option names (<linux/in6.h>; CPython's socket module lacks some of them)
IPV6_UNICAST_HOPS = 16
IPV6_MULTICAST_HOPS = 18
IPV6_JOIN_GROUP = 20
IPV6_LEAVE_GROUP = 21
IPV6_MTU_DISCOVER = 23
IPV6_RECVERR = 25
IPV6_V6ONLY = 26
IPV6_DONTFRAG = 62
IPV6_TCLASS = 67
IPV6_PMTUDISC_OMIT = 5                 # the largest IPV6_MTU_DISCOVER value (IPV6_PMTUDISC_DONT 0 ..)
DEFAULT_MULTICAST_HOPS = 1             # IPV6_DEFAULT_MCASTHOPS
# the pcb attribute of each boolean option
_IPV6_FLAGS = {IPV6_V6ONLY: "v6only", IPV6_RECVERR: "recverr6", IPV6_DONTFRAG: "dontfrag",
               IPV6_TRANSPARENT: "transparent"}


def set_ipv6_option(pcb: Any, name: int, value: int, *, bound: bool, stream: bool) -> int:
    """IPPROTO_IPV6 on a pcb with v6only, recverr6, dontfrag, hop_limit (None: the default),
    mcast_hops, tclass and pmtudisc: 0 or an errno, as Linux do_ipv6_setsockopt.
    `bound`: the socket has a local port (IPV6_V6ONLY is then EINVAL); `stream`: a TCP
    socket (multicast hops are not its business: ENOPROTOOPT)."""
    attr = _IPV6_FLAGS.get(name)
    if attr is not None:
        if name == IPV6_V6ONLY and bound:
            return errno.EINVAL
        setattr(pcb, attr, bool(value))
        return 0
    if name == IPV6_UNICAST_HOPS:
        if not -1 <= value <= 255:
            return errno.EINVAL
        pcb.hop_limit = None if value == -1 else value
        return 0
    if name == IPV6_MULTICAST_HOPS and not stream:
        if not -1 <= value <= 255:
            return errno.EINVAL
        pcb.mcast_hops = DEFAULT_MULTICAST_HOPS if value == -1 else value
        return 0
    if name == IPV6_TCLASS:
        if not -1 <= value <= 0xFF:
            return errno.EINVAL
        value = 0 if value == -1 else value            # RFC 3542 §6.5: -1 is the default, 0
        pcb.tclass = _keep_ecn(pcb.tclass, value) if stream else value
        return 0
    if name == IPV6_MTU_DISCOVER:
        if not 0 <= value <= IPV6_PMTUDISC_OMIT:
            return errno.EINVAL
        pcb.pmtudisc = value
        return 0
    return errno.ENOPROTOOPT


def get_ipv6_option(pcb: Any, name: int, default_hop_limit: int, *, stream: bool) -> int | None:
    """The value Linux do_ipv6_getsockopt reads back, or None for an option not served here."""
    attr = _IPV6_FLAGS.get(name)
    if attr is not None:
        return int(getattr(pcb, attr))
    if name == IPV6_UNICAST_HOPS:
        return int(pcb.hop_limit) if pcb.hop_limit is not None else default_hop_limit
    if name == IPV6_MULTICAST_HOPS and not stream:
        return int(pcb.mcast_hops)
    if name == IPV6_TCLASS:
        return int(pcb.tclass)
    if name == IPV6_MTU_DISCOVER:
        return int(pcb.pmtudisc)
    return None
