"""What the gateway's TCP relays share (the relaying itself: lean.py, splice.py): the budget that
bounds what every relay holds at once, what a relay reports when it ends, and the abortive
close that turns a reset on one side into an RST on the other (RFC 9293 §3.10.7.1).

Earlier the relay was a pair of trio tasks per flow over two trio streams; splice.py
replaced it (issue 13: fewer task switches per round trip).  `reset_stream` is still how a
flow refused before it is spliced (a port forward's client) is answered.
"""
from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

LINGER_RST = struct.pack("ii", 1, 0)  # struct linger {l_onoff 1, l_linger 0}: close() sends RST


@dataclass
class Direction:
    """What one direction of a flow carried and how it ended."""
    octets: int = 0
    eof: bool = False             # the source sent EOF and it was passed on as SHUT_WR
    reset: bool = False           # the source failed (reset): the relay ended with RSTs


@dataclass
class RelayResult:
    to_host: Direction = field(default_factory=Direction)     # guest -> host
    to_guest: Direction = field(default_factory=Direction)    # host -> guest

    @property
    def reset(self) -> bool:
        return self.to_host.reset or self.to_guest.reset


async def reset_stream(stream: trio.abc.AsyncResource) -> None:
    """Abort: an RST instead of a FIN where the stream is a socket, else just close."""
    if isinstance(stream, trio.SocketStream):
        try:
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RST)
        except OSError:
            pass                  # already closed or reset: closing is all that is left
    await trio.aclose_forcefully(stream)


@dataclass
class RelayBudget:
    """The octets every relay of a gateway may hold at once (issue 13, "Limits": a total
    buffer cap beside the per-flow one).  Each direction reserves its next read before it
    reads and releases it once the other side took the data.  A splice asks for `chunk_max`
    (256 KiB: the per-read cost, not the copying, bounds a Python relay -- 0.54 -> 0.34 CPU
    s per Gbit/s measured when reads grew from 8 KiB) and hands the read over at once, so an
    idle flow holds nothing and only a read the far side has not taken stays reserved.
    Past the total a read gets `chunk_min` (counted in `squeezed`): the bound is `total`
    plus `chunk_min` per direction."""
    total: int = 64 << 20
    chunk_min: int = 8 << 10
    chunk_max: int = 256 << 10
    in_use: int = 0
    peak: int = 0
    squeezed: int = 0
    # what the lean relays hold (their flows' buffers, counted by the Tcp core's relay table)
    elsewhere: Callable[[], int] = field(default=lambda: 0)

    def reserve(self, want: int) -> int:
        grant = want if self.in_use + want <= self.total else self.chunk_min
        if grant < want:
            self.squeezed += 1
        self.in_use += grant
        self.peak = max(self.peak, self.in_use)
        return grant

    def grant(self, want: int) -> int:
        """A lean relay's next host read (nothing reserved: its flow's buffers are counted
        where they are kept, `elsewhere`): `want`, or `chunk_min` past the total."""
        held = self.in_use + self.elsewhere()
        self.peak = max(self.peak, held)
        if held + want <= self.total:
            return want
        self.squeezed += 1
        return min(want, self.chunk_min)

    def release(self, n: int) -> None:
        self.in_use -= n

    @property
    def exhausted(self) -> bool:
        """No room for another flow's reads: new flows are refused."""
        return self.in_use + self.elsewhere() + 2 * self.chunk_min > self.total


__all__ = ["LINGER_RST", "Direction", "RelayBudget", "RelayResult", "reset_stream"]
