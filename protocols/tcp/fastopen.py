"""TCP Fast Open (RFC 7413) as Linux does it: cookies, the client's cookie cache, the policy.

The policy follows net.ipv4.tcp_fastopen (TcpConfig.fastopen), whose bits Linux names
TFO_CLIENT_ENABLE (0x1: MSG_FASTOPEN / TCP_FASTOPEN_CONNECT allowed), TFO_SERVER_ENABLE
(0x2: a listener with TCP_FASTOPEN takes SYN-data), TFO_CLIENT_NO_COOKIE (0x4: SYN-data
without any cookie option), TFO_SERVER_COOKIE_NOT_REQD (0x200: SYN-data accepted without a
valid cookie) and TFO_SERVER_WO_SOCKOPT1 (0x400: every listener as if TCP_FASTOPEN were its
backlog).  Linux's default is 1: client only.

Server (Linux tcp_try_fastopen).  A SYN to a listener that set TCP_FASTOPEN (its value:
the pending Fast Open requests at most) with server mode on, and whose queue is not full:
  * a cookie request (`FO` empty) gets a cookie in the SYN-ACK, and no data is taken;
  * a valid cookie (or 0x200 without one) makes the child at SYN time: its data is
    delivered at once, the SYN-ACK acknowledges it (and carries no cookie), and the child
    is in the accept queue before the handshake completes;
  * an invalid cookie: the data is dropped, the SYN-ACK acks the SYN only and carries the
    valid cookie (the client sends its data again after the handshake).
A full queue turns Fast Open off for that SYN: a normal handshake, no cookie.

Cookie = the first 8 octets of BLAKE2s keyed with a per-stack random key over the client
and server addresses (RFC 7413 §4.1.2: a MAC of the client IP under a server secret; Linux
uses SipHash over the same addresses, so the values differ -- by design, a cookie is only
ever checked by the stack that made it).  It does not cover ports: one cookie per client.

Client (Linux tcp_send_syn_data, tcp_rcv_fastopen_synack).  The cookie cache is per
destination address, LRU, bounded (Linux keeps it in the TCP metrics).  The first SYN
carries the cached cookie and the data (at most the MSS less 40 octets of option space,
Linux's MAX_TCP_OPTION_SPACE); without a cookie it carries a cookie request and no data.
A retransmitted SYN carries neither.  If the SYN-ACK does not acknowledge the data, the
data is sent again at once after the handshake.  A request that brought no cookie makes
the next request use the experimental option (kind 254, magic 0xF989), and one that fails
with it goes back to kind 34 for good (Linux try_exp).  Both kinds are read on input, and
a server answers in the kind the client used.

Deliberate differences: no key rotation (Linux keeps a backup key: its sysctl
net.ipv4.tcp_fastopen_key is not mapped); no active-side blackhole detection
(tcp_fastopen_blackhole_timeout_sec); a child reset before its handshake completes frees
its place in the queue at once (Linux holds it until the SYN-ACK timeout would have run).
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import TcpConfig

if TYPE_CHECKING:
    from .stats import TcpStats

TFO_CLIENT_ENABLE = 0x1
TFO_SERVER_ENABLE = 0x2
TFO_CLIENT_NO_COOKIE = 0x4
TFO_SERVER_COOKIE_NOT_REQD = 0x200
TFO_SERVER_WO_SOCKOPT1 = 0x400

COOKIE_LEN = 8                  # what we make (Linux TCP_FASTOPEN_COOKIE_SIZE); the option: wire.py
MAX_TCP_OPTION_SPACE = 40       # room kept in SYN-data for options (Linux)
CACHE_MAX = 1024                # destinations whose cookie a client remembers


class CookieJar:
    """The server's cookies: a keyed MAC of the two addresses (RFC 7413 §4.1.2)."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def make(self, client: int, server: int, v6: bool = False) -> bytes:
        width = 16 if v6 else 4
        h = hashlib.blake2s(digest_size=COOKIE_LEN, key=self.key)
        h.update(b"6" if v6 else b"4")
        h.update(client.to_bytes(width, "big"))
        h.update(server.to_bytes(width, "big"))
        return h.digest()

    def valid(self, cookie: bytes, client: int, server: int, v6: bool = False) -> bool:
        return len(cookie) == COOKIE_LEN and cookie == self.make(client, server, v6)


@dataclass(slots=True)
class CacheEntry:
    cookie: bytes = b""         # b"": none known
    exp: bool = False           # the server answered with the experimental kind
    mss: int = 0                # the MSS of the SYN-ACK that brought it
    try_exp: int = 0            # 1: ask with the experimental kind next; 2: kind 34 for good


class CookieCache:
    """The client's cookies by destination (Linux tcp_fastopen_cache_get/set), LRU-bounded."""

    def __init__(self, limit: int = CACHE_MAX) -> None:
        self.limit = limit
        self.entries: OrderedDict[tuple[bool, int], CacheEntry] = OrderedDict()

    def get(self, v6: bool, addr: int) -> CacheEntry | None:
        entry = self.entries.get((v6, addr))
        if entry is not None:
            self.entries.move_to_end((v6, addr))
        return entry

    def _entry(self, v6: bool, addr: int) -> CacheEntry:
        entry = self.get(v6, addr)
        if entry is None:
            entry = self.entries[(v6, addr)] = CacheEntry()
            if len(self.entries) > self.limit:
                self.entries.popitem(last=False)
        return entry

    def learn(self, v6: bool, addr: int, mss: int, cookie: bytes | None, exp: bool, try_exp: int) -> None:
        """What a SYN-ACK taught (tcp_fastopen_cache_set): its MSS, its cookie if any, or
        -- a request that got none -- the option kind to ask with next."""
        entry = self._entry(v6, addr)
        if mss:
            entry.mss = mss
        if cookie:
            entry.cookie, entry.exp = cookie, exp
        elif try_exp > entry.try_exp and not entry.cookie and not entry.exp:
            entry.try_exp = try_exp


@dataclass(slots=True)
class ClientFastOpen:
    """An active open with Fast Open (Linux tp->fastopen_req / syn_fastopen)."""
    cache: CookieCache
    v6: bool = False
    addr: int = 0
    cookie: bytes | None = b""  # in the SYN: None no option (0x4), b"" a request
    exp: bool = False
    with_data: bool = False     # the SYN may carry data: a cookie is known, or 0x4
    cached_mss: int = 0         # the MSS the server's last SYN-ACK offered (0: unknown)
    deferred: bool = True       # no SYN yet: it waits for the data (TCP_FASTOPEN_CONNECT)
    sent: bool = False          # the first SYN went: a retransmission is a bare SYN
    syn_data: int = 0           # octets the first SYN carried
    write_pending: bool = False # a blocking sender waits to send the rest (Linux sk_write_pending)

    def room(self, our_mss: int) -> int:
        """Octets of data the SYN may carry (Linux tcp_send_syn_data): the MSS, or the
        cached one when smaller, less the maximum option space."""
        if not self.with_data:
            return 0
        mss = min(self.cached_mss, our_mss) if self.cached_mss else our_mss
        return max(mss - MAX_TCP_OPTION_SPACE, 0)


@dataclass(slots=True)
class FastOpenQueue:
    """A listener's TCP_FASTOPEN: pending Fast Open children at most, and how many are."""
    max_qlen: int
    qlen: int = 0


@dataclass(slots=True)
class PassiveFastOpen:
    """A listener's child: the cookie its SYN-ACK carries, or its place in the queue."""
    cookie: bytes | None = None
    exp: bool = False
    queue: FastOpenQueue | None = None      # a Fast Open child counted in its listener's qlen

    def done(self) -> None:
        """Its handshake completed or it died: its listener may take another."""
        if self.queue is not None:
            self.queue.qlen -= 1
            self.queue = None


@dataclass(slots=True)
class ServerVerdict:
    accept_data: bool           # a Fast Open child: its SYN's data is taken
    cookie: bytes | None        # for the SYN-ACK (None: no option)
    exp: bool


class FastOpen:
    """The stack's Fast Open policy; its flags are config.fastopen (net.ipv4.tcp_fastopen),
    read at each use as the sysctl is."""

    def __init__(self, key: bytes, config: TcpConfig, cache_limit: int = CACHE_MAX) -> None:
        self.cookies = CookieJar(key)
        self.cache = CookieCache(cache_limit)
        self.config = config

    @property
    def flags(self) -> int:
        return self.config.fastopen

    @property
    def client(self) -> bool:
        return bool(self.flags & TFO_CLIENT_ENABLE)

    # --- client ---------------------------------------------------------------------
    def client_start(self, v6: bool, addr: int) -> ClientFastOpen:
        """What the SYN to `addr` will carry (Linux tcp_fastopen_cookie_check): the cached
        cookie and data; with 0x4 data and no option; else a cookie request and no data."""
        entry = self.cache.get(v6, addr)
        mss = entry.mss if entry is not None else 0
        if self.flags & TFO_CLIENT_NO_COOKIE:
            return ClientFastOpen(self.cache, v6, addr, None, False, True, mss)
        if entry is not None and entry.cookie:
            return ClientFastOpen(self.cache, v6, addr, entry.cookie, entry.exp, True, mss)
        return ClientFastOpen(self.cache, v6, addr, b"", entry is not None and entry.try_exp == 1, False, mss)

    @staticmethod
    def client_synack(tfo: ClientFastOpen, cookie: bytes | None, exp: bool, mss: int | None,
                      retransmitted: bool) -> None:
        """Learn from the SYN-ACK (tcp_rcv_fastopen_synack): a cookie, or, when a request
        got none on the first try, which kind to ask with next time.  (A connection that
        did not try Fast Open has no ClientFastOpen: a cookie it is sent is ignored.)"""
        try_exp = 0
        if not retransmitted and cookie is None and not tfo.syn_data:
            try_exp = 2 if tfo.exp else 1
        tfo.cache.learn(tfo.v6, tfo.addr, mss or 0, cookie or None, exp, try_exp)

    # --- server ---------------------------------------------------------------------
    def listen_queue(self, queue: FastOpenQueue | None, backlog: int) -> FastOpenQueue | None:
        """0x400: a listener without TCP_FASTOPEN gets its backlog as the limit."""
        if queue is None and self.flags & TFO_SERVER_WO_SOCKOPT1 and self.flags & TFO_SERVER_ENABLE:
            return FastOpenQueue(backlog)
        return queue

    def server_syn(self, queue: FastOpenQueue | None, cookie: bytes | None, exp: bool, datalen: int,
                   client: int, server: int, v6: bool, stats: TcpStats) -> ServerVerdict | None:
        """Linux tcp_try_fastopen for a SYN to a listener: None, a normal handshake."""
        if cookie == b"":
            stats.fastopen_cookie_reqd += 1
        if not (self.flags & TFO_SERVER_ENABLE and (datalen or cookie is not None)
                and queue is not None and queue.max_qlen):
            return None
        if queue.qlen >= queue.max_qlen:
            stats.fastopen_listen_overflow += 1
            return None
        if self.flags & TFO_SERVER_COOKIE_NOT_REQD:
            return ServerVerdict(True, None, exp)
        if cookie is None:
            return None                         # SYN-data without a cookie: a normal handshake
        if cookie and self.cookies.valid(cookie, client, server, v6):
            return ServerVerdict(True, None, exp)
        if cookie:
            stats.fastopen_passive_fail += 1
        return ServerVerdict(False, self.cookies.make(client, server, v6), exp)
