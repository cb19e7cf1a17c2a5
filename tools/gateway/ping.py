"""The gateway's ICMP echo: a guest's ping to a remote address is sent from the host through an
unprivileged ping socket (socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP), and IPPROTO_ICMPV6), as
slirp4netns and pasta do -- never a forged reply (issue 13, "ICMP echo").

Linux (icmp(7), "ping sockets"): the kernel allows them to the groups in
net.ipv4.ping_group_range (IPv6 too); it sets the echo identifier itself (the socket's "port")
and checks the checksum, and recv returns the ICMP message without the IP header.  So the
gateway keeps one socket per guest echo identifier and destination and puts the guest's
identifier back into each reply.  When the range does not include us, socket() fails with
EACCES: the gateway says so once and drops guests' echo requests.
"""
from __future__ import annotations

import errno
import socket
import struct
from dataclasses import dataclass

import trio

ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0
ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY = 128, 129
_ECHO = struct.Struct("!BBHHH")         # type, code, checksum, identifier, sequence


class PingUnavailable(Exception):
    """Ping sockets are not allowed here (net.ipv4.ping_group_range excludes our group)."""


@dataclass(frozen=True, slots=True)
class EchoReply:
    seq: int
    data: bytes


def open_ping_socket(family: int) -> trio.socket.SocketType:
    """A ping socket of `family`; PingUnavailable when the kernel refuses it (EACCES/EPERM),
    or when the protocol is not there (EPROTONOSUPPORT, EAFNOSUPPORT)."""
    proto = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
    try:
        return trio.socket.socket(family, socket.SOCK_DGRAM, proto)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EPROTONOSUPPORT, errno.EAFNOSUPPORT):
            raise PingUnavailable(f"ping sockets refused ({exc.strerror}): see net.ipv4.ping_group_range") from None
        raise


def echo_request(family: int, seq: int, data: bytes) -> bytes:
    """An echo request for a ping socket: the kernel fills in the identifier and checksum."""
    kind = ICMPV6_ECHO_REQUEST if family == socket.AF_INET6 else ICMP_ECHO_REQUEST
    return _ECHO.pack(kind, 0, 0, 0, seq & 0xFFFF) + data


def parse_echo_reply(family: int, message: bytes) -> EchoReply | None:
    """An echo reply read from a ping socket, or None for anything else (too short, other type)."""
    if len(message) < _ECHO.size:
        return None
    kind, _code, _csum, _ident, seq = _ECHO.unpack_from(message, 0)
    if kind != (ICMPV6_ECHO_REPLY if family == socket.AF_INET6 else ICMP_ECHO_REPLY):
        return None
    return EchoReply(seq, message[_ECHO.size:])


async def ping_once(destination: str, seq: int, data: bytes, timeout: float) -> EchoReply | None:
    """One echo to `destination` through a fresh ping socket; the reply, or None on timeout."""
    family = socket.AF_INET6 if ":" in destination else socket.AF_INET
    sock = open_ping_socket(family)
    with sock:
        await sock.connect((destination, 0))
        await sock.send(echo_request(family, seq, data))
        with trio.move_on_after(timeout):
            while True:
                reply = parse_echo_reply(family, await sock.recv(65535))
                if reply is not None and reply.seq == seq & 0xFFFF:
                    return reply
    return None


__all__ = ["EchoReply", "PingUnavailable", "echo_request", "open_ping_socket", "parse_echo_reply", "ping_once"]
