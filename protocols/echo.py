"""Callbacks waiting for echo replies (ICMP and ICMPv6 ping), by (identifier, sequence).

A reply wakes its waiter with (0, replier, data); an error about the echo request wakes it
with (errno, reporter, b"").  The table is bounded: the oldest waiter gives way to a new
one, and the owner counts it."""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .ifnet import Interface

EchoCallback = Callable[[int, int, bytes], None]   # (errno or 0, reporter, payload)
MAX_ECHO_WAITERS = 1024      # pings in flight; the oldest gives way
_ECHO_IDS = struct.Struct("!HH")


class EchoWaiters(dict[tuple[int, int], EchoCallback]):
    def __init__(self, limit: int = MAX_ECHO_WAITERS) -> None:
        super().__init__()
        self.limit = limit

    def wait(self, ident: int, seq: int, callback: EchoCallback) -> bool:
        """Wait for the reply to (ident, seq); True when the oldest waiter was dropped for room."""
        evicted = len(self) >= self.limit and (ident, seq) not in self
        if evicted:
            del self[next(iter(self))]
        self[(ident, seq)] = callback
        return evicted

    def answer(self, ident: int, seq: int, replier: int, data: bytes) -> bool:
        """A reply: wake its waiter; False when nobody waits for it."""
        callback = self.pop((ident, seq), None)
        if callback is None:
            return False
        callback(0, replier, data)
        return True

    def fail(self, quoted: bytes, request_type: int, err: int, reporter: int) -> None:
        """An error whose quoted message starts with an echo request of ours: wake its waiter."""
        if len(quoted) >= 8 and quoted[0] == request_type:
            callback = self.pop(_ECHO_IDS.unpack_from(quoted, 4), None)
            if callback is not None:
                callback(err, reporter, b"")


@dataclass(frozen=True, slots=True)
class EchoForward:
    """An echo request to an address that is ours only by a transparent interface (issue 13):
    the ICMP core does not answer it -- only the gateway's own addresses are the stack's -- but
    hands it to its `forwarder`, which may ping `dst` from the host (an unprivileged ping
    socket) and answer with `send_echo_reply(dst, src, ...)`, or drop it: never a forged reply.
    `family` AF_INET or AF_INET6; addresses are ints."""
    family: int
    src: int
    dst: int
    ident: int
    seq: int
    data: bytes
    ttl: int                   # as received (the hop limit over IPv6)
    ifp: Interface | None
    now: float
