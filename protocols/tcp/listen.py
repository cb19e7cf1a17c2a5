"""The listening side (RFC 9293 §3.10.7.2): SYN queue, accept queue, SYN cookies.

A SYN makes a child Connection in SYN-RECEIVED (the SYN queue); its handshake ACK
moves it to the parent's accept queue.  Both queues are bounded by the backlog.  When
the SYN queue is full, a SYN-ACK carries a cookie instead of creating state (the idea
of D. J. Bernstein's SYN cookies; our own encoding, below), and a valid cookie in the
ACK creates the connection directly.

Cookie ISN (32 bits) = MAC(secret, 4-tuple, peer ISN, minute, MSS index)[24 bits] | minute mod 32
(5 bits) | MSS index (3 bits).  A cookie is valid for the current and previous minute.
Cookie connections get MSS only: window scaling, SACK and timestamps are not encoded.
The MAC covers the full addresses of either family (32-bit IPv4, 128-bit IPv6 ints), an
IPv6 4-tuple under its own tag: a cookie made for one family never checks for the other.
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from . import seq as sq

if TYPE_CHECKING:
    from .wire import TcpRepr

MSS_TABLE = (536, 1220, 1360, 1440, 1460, 4312, 8960, 9140)   # 3 bits
COOKIE_PERIOD = 60.0


class SynCookies:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def _mac(self, laddr: int, lport: int, faddr: int, fport: int, peer_isn: int, minute: int,
             v6: bool = False) -> int:
        h = hashlib.blake2s(digest_size=4, key=self.secret)
        h.update(b"%s%d %d %d %d %d %d" % (b"6 " if v6 else b"", laddr, lport, faddr, fport, peer_isn, minute))
        return int.from_bytes(h.digest(), "big") >> 8

    def make(self, laddr: int, lport: int, faddr: int, fport: int, peer_isn: int, mss: int,
             now: float, v6: bool = False) -> tuple[int, int]:
        """(cookie ISN, the MSS it encodes: the largest table entry <= the peer's)."""
        idx = max((i for i, m in enumerate(MSS_TABLE) if m <= mss), default=0)
        minute = int(now // COOKIE_PERIOD)
        mac = self._mac(laddr, lport, faddr, fport, peer_isn, (minute << 3) | idx, v6)   # the MSS index too
        return ((mac << 8) | ((minute & 0x1F) << 3) | idx) & 0xFFFFFFFF, MSS_TABLE[idx]

    def check(self, laddr: int, lport: int, faddr: int, fport: int, seg: TcpRepr, now: float,
              v6: bool = False) -> int | None:
        """The MSS if `seg` (the handshake ACK) carries a cookie we made, else None."""
        cookie = sq.add(seg.ack, -1)
        peer_isn = sq.add(seg.seq, -1)
        minute = int(now // COOKIE_PERIOD)
        for m in (minute, minute - 1):
            if m & 0x1F != (cookie >> 3) & 0x1F:
                continue
            if self._mac(laddr, lport, faddr, fport, peer_isn, (m << 3) | (cookie & 7), v6) == cookie >> 8:
                return MSS_TABLE[cookie & 7]
        return None
