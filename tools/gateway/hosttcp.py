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


async def connect_host(host: str, port: int, *, timeout: float = CONNECT_TIMEOUT,
                       source: str | None = None) -> trio.SocketStream | Refuse:
    """A connected stream to (host, port) -- IPv4 or IPv6 by the address -- or the Refuse the
    guest should see.  `source`: the host address to connect from (--outbound-addr)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        if source is not None:
            await sock.bind((source, 0))
        with trio.move_on_after(timeout):
            await sock.connect((host, port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # the guest's segments set the pace
            return trio.SocketStream(sock)
        sock.close()
        return refusal_for(None)
    except OSError as exc:
        sock.close()
        return refusal_for(exc.errno)
    except BaseException:
        sock.close()
        raise


__all__ = ["CONNECT_TIMEOUT", "connect_host", "refusal_for"]
