"""The host side of the gateway's UDP flows: one connected kernel socket per (guest address and
port, destination), with IP_RECVERR / IPV6_RECVERR so the ICMP errors the host receives about
the flow come back as data the gateway turns into ICMP for the guest (issue 13, "UDP": port
unreachable, fragmentation needed / packet too big).

Linux (ip(7), ipv6(7)): with IP_RECVERR a connected UDP socket's recv fails with the error's
errno and the error itself waits on the socket's error queue, read with
recvmsg(MSG_ERRQUEUE): a `struct sock_extended_err` (ee_errno, ee_origin, ee_type, ee_code,
ee_pad, ee_info, ee_data, then the offender's sockaddr) in a control message (SOL_IP,
IP_RECVERR) or (SOL_IPV6, IPV6_RECVERR).  ee_info is the MTU of a "fragmentation needed" /
"packet too big".
"""
from __future__ import annotations

import errno
import socket
import struct
from dataclasses import dataclass

import trio

# <linux/in.h>, <linux/in6.h>, <linux/errqueue.h>, <bits/socket.h>: not all in Python's socket
IP_RECVERR = 11
IPV6_RECVERR = 25
MSG_ERRQUEUE = 0x2000
SO_EE_ORIGIN_LOCAL, SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 1, 2, 3
_EXTENDED_ERR = struct.Struct("=IBBBBII")        # struct sock_extended_err
ERRQUEUE_ANCILLARY = 512                         # room for one control message with its offender


@dataclass(frozen=True, slots=True)
class HostError:
    """One error the host's stack reported about a flow's datagram."""
    errno: int
    origin: int            # SO_EE_ORIGIN_*: ICMP / ICMP6 from the network, LOCAL from this host
    type: int              # the ICMP(v6) type and code, for an ICMP origin
    code: int
    info: int              # the MTU, for fragmentation needed / packet too big
    offender: str | None   # who sent the ICMP (the router), when the kernel says


def parse_extended_err(level: int, kind: int, data: bytes) -> HostError | None:
    """The error in one control message of an MSG_ERRQUEUE recvmsg, or None if it is not one."""
    if (level, kind) not in ((socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)):
        return None
    if len(data) < _EXTENDED_ERR.size:
        return None
    ee_errno, origin, type_, code, _pad, info, _data = _EXTENDED_ERR.unpack_from(data, 0)
    offender = _offender(data[_EXTENDED_ERR.size:])
    return HostError(ee_errno, origin, type_, code, info, offender)


def _offender(raw: bytes) -> str | None:
    """SO_EE_OFFENDER: a sockaddr_in / sockaddr_in6 after the struct (family 0: none)."""
    if len(raw) >= 8 and struct.unpack_from("=H", raw, 0)[0] == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8])
    if len(raw) >= 24 and struct.unpack_from("=H", raw, 0)[0] == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24])
    return None


async def open_flow(destination: tuple[str, int], *, source: tuple[str, int] | None = None) -> trio.socket.SocketType:
    """A UDP socket connected to `destination` (IPv4 or IPv6 by its address) with the error
    queue on; bound to `source` first when given (the guest's port kept where it is free:
    QUIC, WireGuard and STUN rely on a stable source port)."""
    family = socket.AF_INET6 if ":" in destination[0] else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        if source is not None:
            try:
                await sock.bind(source)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                await sock.bind((source[0], 0))   # the port is taken here: any other one
        await sock.connect(destination)
    except BaseException:
        sock.close()
        raise
    return sock


def read_error(sock: trio.socket.SocketType) -> HostError | None:
    """The next error on the socket's error queue, without waiting (None: the queue is empty)."""
    try:
        _data, ancillary, _flags, _addr = sock._sock.recvmsg(1, ERRQUEUE_ANCILLARY,  # type: ignore[attr-defined]
                                                             MSG_ERRQUEUE | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return None
    for level, kind, data in ancillary:
        err = parse_extended_err(level, kind, data)
        if err is not None:
            return err
    return None


def error_of(sock: trio.socket.SocketType, exc: OSError) -> HostError | None:
    """What a failed recv on the flow's socket means: the error queue's next report, or the
    local error itself when it is one the flow's destination caused; None for other errors
    (the caller raises them)."""
    err = read_error(sock)
    if err is not None:
        return err
    if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EMSGSIZE):
        return HostError(exc.errno, SO_EE_ORIGIN_LOCAL, 0, 0, 0, None)
    return None


async def receive(sock: trio.socket.SocketType, bufsize: int = 65535) -> bytes | HostError:
    """The flow's next datagram from the destination, or the next error the host reported
    about it (a recv that fails because of an error on the queue returns that error)."""
    try:
        return await sock.recv(bufsize)
    except OSError as exc:
        err = error_of(sock, exc)
        if err is None:
            raise
        return err


__all__ = [
    "IPV6_RECVERR",
    "IP_RECVERR",
    "MSG_ERRQUEUE",
    "SO_EE_ORIGIN_ICMP",
    "SO_EE_ORIGIN_ICMP6",
    "SO_EE_ORIGIN_LOCAL",
    "HostError",
    "error_of",
    "open_flow",
    "parse_extended_err",
    "read_error",
    "receive",
]
