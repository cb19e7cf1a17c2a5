"""The host side of a guest's TCP connection: the gateway holds the guest's SYN while it
connects a host socket to the destination, and answers the guest only then (issue 13, as
passt and VPNKit do): the SYN-ACK once the host connection is up, or what a real network
would have shown the guest when it is not.

How a failed connect(2) looks to the guest (`refusal_for`):
  ECONNREFUSED                       an RST (the destination's own answer)
  EHOSTUNREACH, EHOSTDOWN            ICMP host unreachable (RFC 792 code 1, ICMPv6 code 3)
  ENETUNREACH, ENETDOWN              ICMP net unreachable (code 0; ICMPv6 no route, code 0)
  EACCES, EPERM                      ICMP administratively prohibited (code 13; ICMPv6 code 1)
  a timeout, anything else           silence: the guest's own SYN retries run out, as they
                                     would behind a black hole
"""
from __future__ import annotations

import errno
import socket

import trio

from .policy import Refuse

# How long the gateway waits for the host's connect before going silent: the guest's own
# SYN retries (Linux tcp_syn_retries 6: 131 s) outlast it, so the guest times out itself.
CONNECT_TIMEOUT = 60.0

_REFUSALS = {
    errno.ECONNREFUSED: ("port", "connection refused"),
    errno.EHOSTUNREACH: ("host", "host unreachable"),
    errno.EHOSTDOWN: ("host", "host down"),
    errno.ENETUNREACH: ("net", "network unreachable"),
    errno.ENETDOWN: ("net", "network down"),
    errno.EACCES: ("admin", "administratively prohibited"),
    errno.EPERM: ("admin", "administratively prohibited"),
}


def refusal_for(err: int | None) -> Refuse:
    """What the guest is shown for a host connect that failed with `err` (None: timed out)."""
    if err is None:
        return Refuse("drop", "the host connect timed out")
    how, why = _REFUSALS.get(err, ("drop", f"host connect failed: {errno.errorcode.get(err, err)}"))
    return Refuse(how, why)


def start_connect(host: str, port: int, *, source: str | None = None) -> socket.socket | Refuse:
    """A non-blocking socket whose connect to (host, port) -- IPv4 or IPv6 by the address --
    is made or under way, or the Refuse of a failure known at once (a local ECONNREFUSED,
    an unreachable route, a bad `source`: the host address to connect from, --outbound-addr)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    except OSError as exc:                      # EMFILE, ENFILE, ENOBUFS: this flow is lost
        return refusal_for(exc.errno)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # the guest's segments set the pace
        if source is not None:
            sock.bind((source, 0))
        err = sock.connect_ex((host, port))
    except OSError as exc:
        sock.close()
        return refusal_for(exc.errno)
    if err not in (0, errno.EINPROGRESS):
        sock.close()
        return refusal_for(err)
    return sock


def connect_outcome(sock: socket.socket) -> int | None:
    """Where a connect from start_connect stands, without waiting: 0 made, an errno failed,
    None still under way.  To a neighbour the handshake often completes inside connect(2)
    itself (the SYN-ACK handled in the same softirq), and asking now saves the flow a trip
    through the event loop: one getpeername(2) when it is made (Linux inet_getname answers
    ENOTCONN in SYN-SENT and CLOSE), SO_ERROR to tell a failure from a connect under way."""
    try:
        sock.getpeername()
        return 0
    except OSError as exc:
        if exc.errno != errno.ENOTCONN:
            return exc.errno
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or None


async def finish_connect(sock: socket.socket, timeout: float = CONNECT_TIMEOUT) -> int | None:
    """Wait for a connect under way: 0 made, an errno failed, None timed out."""
    with trio.move_on_after(timeout):
        await trio.lowlevel.wait_writable(sock)
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return None


__all__ = ["CONNECT_TIMEOUT", "connect_outcome", "finish_connect", "refusal_for", "start_connect"]
