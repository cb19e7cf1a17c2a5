"""The gateway's DNS forwarder, sans-IO: which resolvers to ask, and the table of queries
in flight.

The guest asks the gateway's DNS address (10.0.2.3:53 in slirp4netns's address model,
pasta's `--dns-forward ADDR`); the gateway asks the host's resolvers and relays the
answers. This module holds what needs no socket and no trio:

- the upstreams: the `nameserver` lines of `/etc/resolv.conf` as glibc's resolver reads
  them (at most MAXNS = 3), and, when that file names only systemd-resolved's stub
  127.0.0.53, the upstreams systemd-resolved itself lists in
  `/run/systemd/resolve/resolv.conf` (Docker's resolv.conf handling does the same), read
  again when the files change (`ResolvConfWatch`);
- `DnsForwarder`: a guest's query in (bytes, client key, now) and what to send upstream
  out, under a fresh random transaction ID; an upstream's answer in and the guest's
  answer out, with the guest's ID restored. Timeouts come from `poll(now)` (or
  `timeout(upstream_id, now)` for one query), as the other cores of the stack do.

Anti-spoofing (RFC 5452 §4, §9.1): the ID a query carries upstream is drawn from
`secrets` (the guest's own ID is never shown to the upstream, so a guest with a weak ID
generator does not weaken the host side), and an answer is relayed only when it comes from
the upstream that query was sent to, carries its ID, and repeats its question.

When no upstream answers: silence. slirp4netns (libslirp) and pasta both relay the guest's
datagram to one host resolver by address translation and never make up an answer, so a
guest's stub resolver sees a timeout and retries (glibc: `timeout:5 attempts:2`). We do
one better than both and try the next upstream after `timeout` seconds, as glibc does
across its nameservers, but still answer nothing of our own.
"""
from __future__ import annotations

import ipaddress
import secrets
import socket
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ndd.counters import Counters

DNS_PORT = 53
HEADER_LEN = 12            # RFC 1035 §4.1.1: ID, flags, QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT
MAX_MESSAGE = 65535        # RFC 1035 §4.2.2: a TCP message length is two octets
MAX_NAME = 255             # RFC 1035 §3.1: a name on the wire, length octets included
MAXNS = 3                  # glibc <resolv.h> MAXNS: nameserver lines after the third are ignored
QR_BIT = 0x80              # first flags octet: 1 in a response, 0 in a query

RESOLV_CONF = Path("/etc/resolv.conf")
RESOLVED_RESOLV_CONF = Path("/run/systemd/resolve/resolv.conf")
RESOLVED_STUB = ipaddress.IPv4Address("127.0.0.53")   # systemd-resolved's stub listener
GLIBC_DEFAULT_NAMESERVER = ipaddress.IPv4Address("127.0.0.1")   # res_init without nameserver

DEFAULT_DNS_ADDRESS = "10.0.2.3"   # slirp4netns's address model: 10.0.2.0/24, DNS at .3
DEFAULT_TIMEOUT = 5.0              # seconds per upstream: glibc's RES_TIMEOUT
DEFAULT_MAX_OUTSTANDING = 1024     # queries in flight upstream, all clients together
# A query longer than this is garbage: a question, EDNS (RFC 6891), a cookie (RFC 7873)
# and padding to a 468-octet block (RFC 8467) stay far below; so the table holds at most
# max_outstanding x 4 KiB whatever the guest sends.
DEFAULT_MAX_QUERY = 4096
# TCP: answers may be 64 KiB each and a guest may stop reading, so what may wait for it is
# max_tcp_clients x tcp_pipeline answers: 32 x 8 x 64 KiB = 16 MiB at most.
DEFAULT_MAX_TCP_CLIENTS = 32       # guest TCP connections served at once (RFC 7766 §6.2.2)
DEFAULT_TCP_IDLE_TIMEOUT = 10.0    # RFC 7766 §6.2.3: close an idle client connection
DEFAULT_TCP_PIPELINE = 8           # queries in flight per guest TCP connection (§6.2.1.1)
ID_DRAWS = 16                      # random IDs tried before a query is refused as table full

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class DnsConfig:
    """The DNS part of the gateway's configuration (the CLI fills it in later)."""
    enabled: bool = True                          # False with `--disable-dns`
    address: str = DEFAULT_DNS_ADDRESS            # `--dns-forward ADDR`: where the guest asks
    port: int = DNS_PORT
    resolv_conf: Path = RESOLV_CONF
    resolved_conf: Path = RESOLVED_RESOLV_CONF
    timeout: float = DEFAULT_TIMEOUT
    max_outstanding: int = DEFAULT_MAX_OUTSTANDING
    max_query: int = DEFAULT_MAX_QUERY
    max_tcp_clients: int = DEFAULT_MAX_TCP_CLIENTS
    tcp_idle_timeout: float = DEFAULT_TCP_IDLE_TIMEOUT
    tcp_pipeline: int = DEFAULT_TCP_PIPELINE


@dataclass(frozen=True)
class Upstream:
    """A resolver the gateway asks: an address, a port, and for a link-local IPv6 address
    the `%scope` resolv.conf gave it (an interface name or index, kept as text)."""
    address: IpAddress
    port: int = DNS_PORT
    scope: str = ""

    @property
    def family(self) -> int:
        return socket.AF_INET6 if self.address.version == 6 else socket.AF_INET

    @property
    def host(self) -> str:
        """The address as getaddrinfo takes it, scope included."""
        return f"{self.address}%{self.scope}" if self.scope else str(self.address)

    def matches(self, source: object) -> bool:
        """Whether a sockaddr (as recvfrom or getpeername gives it) is this upstream."""
        if not isinstance(source, tuple) or len(source) < 2 or not isinstance(source[0], str):
            return False
        try:
            address = ipaddress.ip_address(source[0].split("%", 1)[0])
        except ValueError:
            return False
        return address == self.address and source[1] == self.port


# --- upstreams ----------------------------------------------------------------------

def parse_nameserver(token: str, port: int = DNS_PORT) -> Upstream | None:
    """One `nameserver` value, or None when glibc would skip it (not an address)."""
    text, _, scope = token.partition("%")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 4 and scope:
        return None          # glibc reads an IPv4 nameserver with inet_aton: no scope
    return Upstream(address, port, scope)


def parse_resolv_conf(text: str, port: int = DNS_PORT) -> list[Upstream]:
    """The nameservers of a resolv.conf text, as glibc's res_init reads them: a line that
    starts with `nameserver` and a blank, its first word after that; `#` and `;` lines are
    comments, every other keyword (`options`, `search`, ...) is not ours; at most MAXNS.
    A server named twice is asked once. resolv.conf has no ports: `port` is 53 but for
    tests, whose servers listen on ephemeral ports."""
    found: list[Upstream] = []
    for line in text.splitlines():
        if not line.startswith(("nameserver ", "nameserver\t")):
            continue
        words = line.split()
        upstream = parse_nameserver(words[1], port) if len(words) > 1 else None
        if upstream is not None and upstream not in found:
            found.append(upstream)
            if len(found) == MAXNS:
                break
    return found


def read_resolv_conf(path: Path, port: int = DNS_PORT) -> list[Upstream]:
    """The nameservers of one file; none when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return parse_resolv_conf(text, port)


def load_upstreams(resolv_conf: Path = RESOLV_CONF,
                   resolved_conf: Path = RESOLVED_RESOLV_CONF,
                   port: int = DNS_PORT) -> list[Upstream]:
    """The resolvers the gateway forwards to.

    `resolv_conf` naming only 127.0.0.53 means systemd-resolved's stub: its own upstreams,
    listed in `resolved_conf`, are asked instead (the stub stays when that file lists
    none: the gateway runs in the host's namespace, where the stub answers). No nameserver
    at all means the local host, as glibc's res_init does."""
    upstreams = read_resolv_conf(resolv_conf, port)
    if upstreams and all(u.address == RESOLVED_STUB for u in upstreams):
        behind_stub = read_resolv_conf(resolved_conf, port)
        return behind_stub or upstreams
    return upstreams or [Upstream(GLIBC_DEFAULT_NAMESERVER, port)]


# --- messages -----------------------------------------------------------------------

def question_of(message: bytes) -> bytes | None:
    """The question section of a message that has exactly one question, its name in
    lower case (RFC 4343: names compare without regard to ASCII case), or None when the
    message has no single well-formed question. The first name of a message has nothing
    before it to point at, so a compression pointer there is malformed. O(MAX_NAME)."""
    if len(message) < HEADER_LEN or message[4:6] != b"\x00\x01":
        return None
    at = HEADER_LEN
    while True:
        if at >= len(message):
            return None
        length = message[at]
        if length == 0:
            break
        if length > 63:              # a pointer (0xC0) or a reserved label type
            return None
        at += 1 + length
        if at - HEADER_LEN >= MAX_NAME:
            return None
    end = at + 1 + 4                 # the root label, QTYPE, QCLASS
    if end > len(message):
        return None
    return message[HEADER_LEN:at + 1].lower() + message[at + 1:end]


@dataclass
class DnsStats(Counters):
    queries: int = 0              # well-formed queries from the guest
    forwarded: int = 0            # queries sent upstream (once per upstream tried)
    answered: int = 0             # answers relayed to the guest
    bad_queries: int = 0          # guest messages: short, QR set, no single good question
    long_queries: int = 0         # guest queries longer than max_query (TCP: seen by length)
    duplicates: int = 0           # a query already in flight again (same client, ID, question)
    table_full: int = 0           # queries dropped: max_outstanding already in flight
    no_upstream: int = 0          # queries dropped: no upstream configured
    failovers: int = 0            # an upstream timed out or failed, the next one was asked
    upstream_errors: int = 0      # a socket error toward an upstream (refused, unreachable)
    unanswered: int = 0           # queries given up after every upstream was tried
    bad_answers: int = 0          # upstream messages: short, or QR clear
    unknown_answers: int = 0      # answers whose ID names no query in flight (late, guessed)
    spoofed_answers: int = 0      # answers from an address that is not the upstream asked
    mismatched_answers: int = 0   # answers whose question is not the query's
    reply_errors: int = 0         # answers the guest-side socket did not take (edge counts)
    guest_socket_errors: int = 0  # errors a guest-side recvfrom/accept reported (edge counts)
    tcp_refused: int = 0          # guest TCP connections closed at once: max_tcp_clients
    tcp_bad_frames: int = 0       # guest TCP connections closed on a zero-length message


@dataclass(frozen=True)
class Forward:
    """Send `message` to `upstream`; if no answer has come by `deadline`, call
    `timeout(upstream_id, now)` (or let `poll` do it)."""
    upstream_id: int
    upstream: Upstream
    message: bytes
    deadline: float


@dataclass(frozen=True)
class Reply:
    """Send `message` (the answer, with the guest's ID) to `client`."""
    client: Hashable
    message: bytes


@dataclass
class _InFlight:
    client: Hashable
    client_id: bytes          # the guest's two ID octets, restored in the answer
    question: bytes           # question_of(query)
    message: bytes            # the query as sent upstream, under the upstream ID
    upstreams: tuple[Upstream, ...]   # the list when the query came (set_upstreams may change it)
    upstream_index: int       # the upstream asked now, in `upstreams`
    tried: int                # upstreams asked so far, this one included
    deadline: float


def _random_id() -> int:
    return secrets.randbelow(0x10000)


class DnsForwarder:
    """The table of queries in flight, keyed by the random ID each carries upstream.

    Entries sit in deadline order (an OrderedDict; a query moved to the next upstream goes
    to the end with the latest deadline), so `poll_at` is O(1) and `poll` O(expired). The
    upstream that answered last is asked first, so a dead first nameserver costs one
    timeout, not one per query."""

    def __init__(self, upstreams: Sequence[Upstream], *, timeout: float = DEFAULT_TIMEOUT,
                 max_outstanding: int = DEFAULT_MAX_OUTSTANDING,
                 max_query: int = DEFAULT_MAX_QUERY,
                 random_id: Callable[[], int] = _random_id) -> None:
        self.upstreams = tuple(upstreams)
        self.timeout_s = timeout
        self.max_outstanding = max_outstanding
        self.max_query = max_query
        self.stats = DnsStats()
        self._random_id = random_id
        self._in_flight: OrderedDict[int, _InFlight] = OrderedDict()
        self._by_client: dict[tuple[Hashable, bytes, bytes], int] = {}
        self._preferred = 0

    def set_upstreams(self, upstreams: Sequence[Upstream]) -> None:
        """New resolvers (resolv.conf changed): for the queries that come from now on; the
        ones in flight finish with the list they started with."""
        upstreams = tuple(upstreams)
        if upstreams != self.upstreams:
            self.upstreams = upstreams
            self._preferred = 0

    @property
    def outstanding(self) -> int:
        return len(self._in_flight)

    def is_pending(self, upstream_id: int) -> bool:
        return upstream_id in self._in_flight

    # --- guest to upstream ------------------------------------------------------------
    def query(self, message: bytes, client: Hashable, now: float) -> Forward | None:
        """A guest's query: what to send upstream, or None (dropped and counted)."""
        if len(message) > self.max_query:
            self.stats.long_queries += 1
            return None
        question = question_of(message)
        if question is None or message[2] & QR_BIT:
            self.stats.bad_queries += 1
            return None
        self.stats.queries += 1
        if not self.upstreams:
            self.stats.no_upstream += 1
            return None
        key = (client, message[:2], question)
        if key in self._by_client:
            self.stats.duplicates += 1      # the guest retransmitted; the first one is on its way
            return None
        upstream_id = self._draw_id() if len(self._in_flight) < self.max_outstanding else None
        if upstream_id is None:
            self.stats.table_full += 1
            return None
        entry = _InFlight(client, message[:2], question,
                          upstream_id.to_bytes(2, "big") + message[2:], self.upstreams,
                          self._preferred % len(self.upstreams), 1, now + self.timeout_s)
        self._in_flight[upstream_id] = entry
        self._by_client[key] = upstream_id
        return self._forward(upstream_id, entry)

    def _draw_id(self) -> int | None:
        for _ in range(ID_DRAWS):
            candidate = self._random_id()
            if candidate not in self._in_flight:
                return candidate
        return None

    def _forward(self, upstream_id: int, entry: _InFlight) -> Forward:
        self.stats.forwarded += 1
        return Forward(upstream_id, entry.upstreams[entry.upstream_index], entry.message,
                       entry.deadline)

    # --- upstream to guest ------------------------------------------------------------
    def answer(self, message: bytes, source: object, now: float) -> Reply | None:
        """An upstream's message from `source`: the guest's answer, or None (dropped and
        counted; the query stays in flight, so a spoofer cannot cancel it)."""
        if len(message) < HEADER_LEN or not message[2] & QR_BIT:
            self.stats.bad_answers += 1
            return None
        upstream_id = int.from_bytes(message[:2], "big")
        entry = self._in_flight.get(upstream_id)
        if entry is None:
            self.stats.unknown_answers += 1
            return None
        if not entry.upstreams[entry.upstream_index].matches(source):
            self.stats.spoofed_answers += 1
            return None
        if question_of(message) != entry.question:
            self.stats.mismatched_answers += 1
            return None
        self._remove(upstream_id, entry)
        if entry.upstreams is self.upstreams:
            self._preferred = entry.upstream_index
        self.stats.answered += 1
        return Reply(entry.client, entry.client_id + message[2:])

    # --- time and failure -------------------------------------------------------------
    def timeout(self, upstream_id: int, now: float) -> Forward | None:
        """The upstream asked has not answered: the same query to the next upstream, or
        None when every upstream has been tried (the query is dropped: silence)."""
        return self._next_upstream(upstream_id, now)

    def fail(self, upstream_id: int, now: float) -> Forward | None:
        """The upstream asked cannot be reached (a socket error): as `timeout`, at once."""
        if upstream_id in self._in_flight:
            self.stats.upstream_errors += 1
        return self._next_upstream(upstream_id, now)

    def _next_upstream(self, upstream_id: int, now: float) -> Forward | None:
        entry = self._in_flight.get(upstream_id)
        if entry is None:
            return None
        if entry.tried >= len(entry.upstreams):
            self._remove(upstream_id, entry)
            self.stats.unanswered += 1
            return None
        entry.upstream_index = (entry.upstream_index + 1) % len(entry.upstreams)
        entry.tried += 1
        entry.deadline = now + self.timeout_s
        self._in_flight.move_to_end(upstream_id)
        self.stats.failovers += 1
        return self._forward(upstream_id, entry)

    def poll_at(self) -> float | None:
        """The earliest deadline of a query in flight."""
        for entry in self._in_flight.values():
            return entry.deadline
        return None

    def poll(self, now: float) -> list[Forward]:
        """Every query past its deadline moves to its next upstream (returned) or is
        dropped."""
        expired = []
        for upstream_id, entry in self._in_flight.items():
            if entry.deadline > now:
                break
            expired.append(upstream_id)
        forwards = []
        for upstream_id in expired:
            forward = self._next_upstream(upstream_id, now)
            if forward is not None:
                forwards.append(forward)
        return forwards

    def forget(self, upstream_id: int) -> None:
        """Drop a query without a word (its relay was cancelled: the gateway stops)."""
        entry = self._in_flight.get(upstream_id)
        if entry is not None:
            self._remove(upstream_id, entry)

    def _remove(self, upstream_id: int, entry: _InFlight) -> None:
        del self._in_flight[upstream_id]
        self._by_client.pop((entry.client, entry.client_id, entry.question), None)


@dataclass(frozen=True)
class _FileState:
    inode: int
    size: int
    mtime_ns: int


def _file_state(path: Path) -> _FileState | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return _FileState(st.st_ino, st.st_size, st.st_mtime_ns)


class ResolvConfWatch:
    """Reads the upstreams again when a resolv.conf file changes (a VPN comes up, the
    laptop joins another network), as libslirp does for slirp4netns (it stats the file
    and re-reads it when it changed; pasta reads it once at start). A `stat` of both files
    at most every `interval` seconds; `check(now)` returns the new list, or None when
    nothing changed."""

    def __init__(self, resolv_conf: Path = RESOLV_CONF,
                 resolved_conf: Path = RESOLVED_RESOLV_CONF, interval: float = 1.0,
                 port: int = DNS_PORT) -> None:
        self.resolv_conf = resolv_conf
        self.port = port
        self.resolved_conf = resolved_conf
        self.interval = interval
        self._next_check = float("-inf")
        self._seen: tuple[_FileState | None, _FileState | None] | None = None

    def _states(self) -> tuple[_FileState | None, _FileState | None]:
        return _file_state(self.resolv_conf), _file_state(self.resolved_conf)

    def load(self) -> list[Upstream]:
        """The upstreams now (the files' state noted first, so a change while reading
        is seen by the next check)."""
        self._seen = self._states()
        return load_upstreams(self.resolv_conf, self.resolved_conf, self.port)

    def check(self, now: float) -> list[Upstream] | None:
        if now < self._next_check:
            return None
        self._next_check = now + self.interval
        if self._states() == self._seen:
            return None
        return self.load()


def forwarder_from_config(config: DnsConfig, upstreams: Sequence[Upstream] | None = None,
                          watch: ResolvConfWatch | None = None) -> DnsForwarder:
    """The forwarder a configuration describes; its upstreams given, else read through
    `watch` (which serve_dns then keeps checking), else from the configured files."""
    if upstreams is None:
        upstreams = watch.load() if watch is not None else load_upstreams(
            config.resolv_conf, config.resolved_conf)
    return DnsForwarder(upstreams, timeout=config.timeout,
                        max_outstanding=config.max_outstanding, max_query=config.max_query)
