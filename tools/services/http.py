"""A small HTTP/1.1 origin server for `tunstack up --serve http` (RFC 9110, RFC 9112).

    GET/HEAD /          a small HTML page
    GET/HEAD /bytes/N   N bytes (0 <= N <= MAX_BYTES) of the pattern byte[i] = i % 256,
                        streamed in chunks with a Content-Length, never held in memory
    anything else       404; other methods 405; malformed requests 400 (and close)

Requests are parsed by h11 (the sans-IO HTTP/1.1 parser of the Python ecosystem, strict per
RFC 9112: Content-Length must be ASCII digits, one framing only, bounded head), one h11
connection per request so that leading empty lines can be skipped (RFC 9112 §2.2) and
HTTP/1.0 keep-alive is honoured.  Responses are written here (`response_head`).

Persistent connections per RFC 9112 §9.3: HTTP/1.1 keeps the connection unless
`Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.  Pipelined requests
are answered in order.

Bounds (`HttpLimits`, counted in `HttpCounters`), in the manner of a reverse proxy's
client_header_timeout/client_body_timeout/keepalive_timeout/send_timeout:
- the whole request (head and body) must arrive within `request_timeout` of its first
  byte (for the first request on a connection: of the accept) -> 408 and close, or a
  silent close if nothing at all arrived;
- a keep-alive connection waits `idle_timeout` for the next request, then closes;
- the head is at most `max_head` bytes -> 431; a body at most `max_body` -> 413 (both close);
- each piece of a response (its head, then 256 KiB chunks) must be taken by the peer within
  `send_timeout`, so a reader slower than ~4 KiB/s is given up -> close;
- at most `max_connections` connections at once per service: the next ones are accepted
  and closed at once (tools/services/builtin.py), counted in `refused`.
Parsing and response building are pure functions (`parse_request`, `respond`,
`response_head`, `pattern_bytes`) so unit tests need no socket; `serve_connection` is the
only part that does I/O.
"""
from __future__ import annotations

import email.utils
import html
import re
import socket as _pysocket
from dataclasses import dataclass, replace
from typing import Any

import h11
import trio

MAX_HEAD = 16 * 1024          # request line + header fields (h11's default as well)
MAX_BYTES = 10**12            # largest /bytes/N
MAX_BODY = 1 << 20            # a request body up to this is read and dropped; larger: 413
CHUNK = 256 * 1024            # streaming unit, a multiple of the 256-byte pattern
RECV_SIZE = 65536

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 413: "Content Too Large", 431: "Request Header Fields Too Large",
           501: "Not Implemented", 505: "HTTP Version Not Supported"}

_BLOCK = bytes(range(256)) * (CHUNK // 256)

# a socket address as the stack gives it: (host, port) for AF_INET, (host, port, flowinfo,
# scope_id) for AF_INET6
SockAddr = tuple[Any, ...]
V4_MAPPED = "::ffff:"


def sockaddr_text(addr: SockAddr) -> str:
    """`a.b.c.d:port`, or `[v6]:port` (RFC 3986 §3.2.2); an IPv4 peer of a dual-stack socket
    (::ffff:a.b.c.d, RFC 4291 §2.5.5.2) shows as the IPv4 address it is."""
    host, port = str(addr[0]), addr[1]
    if host.lower().startswith(V4_MAPPED) and "." in host:
        host = host[len(V4_MAPPED):]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class HttpLimits:
    """The bounds of one HTTP service; see the module docstring for what each does."""
    request_timeout: float = 10.0   # seconds for a whole request, head + body
    idle_timeout: float = 30.0      # seconds a keep-alive connection waits for its next request
    send_timeout: float = 60.0      # seconds a response write may make no progress
    linger: float = 2.0             # seconds to drain the peer before closing (lingering_close)
    max_head: int = MAX_HEAD        # bytes of request line + fields
    max_body: int = MAX_BODY        # bytes of a request body we read and drop
    max_connections: int = 256      # concurrent connections per service


DEFAULT_LIMITS = HttpLimits()


@dataclass
class HttpCounters:
    """What the bounds did, per service (merged into its ServiceStats by tools/services/builtin.py)."""
    requests: int = 0         # requests answered (any status)
    bad_requests: int = 0     # malformed: answered 400 (or 501/505) and closed
    too_large: int = 0        # head over max_head (431) or body over max_body (413)
    timeouts: int = 0         # request not complete within request_timeout (408 or close)
    idle_closed: int = 0      # keep-alive connections closed after idle_timeout
    send_timeouts: int = 0    # responses abandoned: the peer stopped reading
    refused: int = 0          # connections closed at once: max_connections were open
    active: int = 0           # connections open now
    active_peak: int = 0      # most connections open at once


class HttpError(Exception):
    """A request we refuse; `status` is the response code.  Always closes the connection,
    because after a malformed head we cannot know where the next request starts."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    version: tuple[int, int]
    headers: tuple[tuple[str, str], ...]   # (lower-cased name, value) in arrival order

    def get_all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name]

    def tokens(self, name: str) -> set[str]:
        """A comma-separated list field (e.g. Connection) as lower-cased tokens."""
        return {t.strip().lower() for v in self.get_all(name) for t in v.split(",") if t.strip()}

    @property
    def keep_alive(self) -> bool:
        conn = self.tokens("connection")
        if "close" in conn:
            return False
        return self.version >= (1, 1) or "keep-alive" in conn

    @property
    def content_length(self) -> int:
        values = self.get_all("content-length")
        return int(values[0]) if values else 0   # h11 accepts ASCII digits only

    @property
    def path(self) -> str:
        """The path of an origin-form or absolute-form target, without the query."""
        target = self.target
        if not target.startswith("/"):
            rest = target.split("://", 1)[1]   # absolute-form: checked by _check_request
            target = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        return target.split("?", 1)[0]


def _from_h11(event: h11.Request) -> Request:
    return Request(event.method.decode("ascii"), event.target.decode("ascii"),
                   (int(event.http_version[:1]), int(event.http_version[2:3])),
                   tuple((n.decode("ascii"), v.decode("latin-1")) for n, v in event.headers))


_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")   # RFC 9110 §5.5: no CTLs but HTAB in a value


def _check_request(req: Request) -> None:
    """What RFC 9112 asks beyond h11's checks, and what this server does not do."""
    if req.version[0] != 1:
        raise HttpError(505, f"HTTP/{req.version[0]}.{req.version[1]} is not supported")
    if any(_CTL.search(v) for _, v in req.headers):
        raise HttpError(400, "control character in a field value")
    if req.get_all("transfer-encoding") and (req.version < (1, 1) or req.get_all("content-length")):
        # RFC 9112 §6.1 (HTTP/1.0 framing is faulty) and §6.3 (both: a smuggling attempt)
        raise HttpError(400, "Transfer-Encoding with HTTP/1.0 or with Content-Length")
    hosts = req.get_all("host")
    if len(hosts) > 1:
        raise HttpError(400, "more than one Host")   # RFC 9112 §3.2
    if hosts and not re.fullmatch(r"[\x21-\x7e]*", hosts[0]):
        raise HttpError(400, "bad Host")
    if not (req.target.startswith("/") or re.match(r"(?i)https?://[^/]", req.target)):
        raise HttpError(400, "request target is neither origin-form nor absolute-form")


def _check_head_size(conn: h11.Connection, fed: int, max_head: int) -> None:
    """h11 bounds an incomplete head only; a whole one that came in a single receive can be
    larger.  `fed` bytes went in for this request; what h11 has not parsed is not head."""
    if fed > max_head and fed - len(conn.trailing_data[0]) > max_head:
        raise HttpError(431, f"the request head is over {max_head} bytes")


def _h11_error(exc: h11.RemoteProtocolError) -> HttpError:
    return HttpError(exc.error_status_hint, str(exc))


def parse_request(data: bytes, max_head: int = MAX_HEAD) -> Request:
    """Parse a whole request head (h11 underneath).  Raises HttpError(400/431/501/505)
    for what RFC 9112 says a server must reject, and 400 for an incomplete head."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head)
    conn.receive_data(data)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        raise _h11_error(exc) from None
    if not isinstance(event, h11.Request):
        raise HttpError(400, "incomplete request head")
    _check_head_size(conn, len(data), max_head)
    req = _from_h11(event)
    _check_request(req)
    return req


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    length: int                 # Content-Length
    body: bytes = b""           # the body, unless `pattern`
    pattern: bool = False       # the body is pattern_bytes(0, length), streamed
    close: bool = False         # close the connection after this reply
    allow: str | None = None    # the Allow field of a 405


def error_reply(status: int, detail: str, close: bool = True) -> Reply:
    body = f"{status} {REASONS.get(status, '')}: {detail}\n".encode()
    return Reply(status, "text/plain; charset=utf-8", len(body), body, close=close)


def page(local: str, peer: str) -> bytes:
    esc = html.escape
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>tunstack</title></head>\n"
            f"<body><h1>tunstack</h1>\n<p>Served over TCP by a userspace Python stack at {esc(local)} "
            f"to {esc(peer)}.</p>\n<p><a href=\"/bytes/1000000\">/bytes/1000000</a> sends one million "
            f"bytes; <code>/bytes/N</code> sends N.</p>\n</body></html>\n").encode()


def respond(req: Request, local: str = "", peer: str = "") -> Reply:
    """What to answer to a well-formed request."""
    if req.method not in ("GET", "HEAD"):
        return replace(error_reply(405, f"{req.method} is not served here", close=False),
                       allow="GET, HEAD")
    path = req.path
    if path == "/":
        body = page(local, peer)
        return Reply(200, "text/html; charset=utf-8", len(body), body)
    if path.startswith("/bytes/"):
        n = path[len("/bytes/"):]
        if n.isascii() and n.isdigit():
            if len(n) > 13 or int(n) > MAX_BYTES:
                return error_reply(400, f"at most {MAX_BYTES} bytes", close=False)
            return Reply(200, "application/octet-stream", int(n), pattern=True)
    return error_reply(404, f"no such page: {path[:100]}", close=False)


def response_head(reply: Reply, keep_alive: bool, date: str | None = None) -> bytes:
    """The status line and header fields, ending with the blank line."""
    fields = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, '')}",
              f"Date: {date or email.utils.formatdate(usegmt=True)}",   # RFC 9110 §6.6.1
              "Server: tunstack",
              f"Content-Type: {reply.content_type}",
              f"Content-Length: {reply.length}"]
    if reply.allow:
        fields.append(f"Allow: {reply.allow}")
    fields.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(fields) + "\r\n\r\n").encode("latin-1")


def pattern_bytes(offset: int, size: int) -> bytes:
    """`size` bytes of the /bytes/N body starting at `offset`: byte i is i % 256."""
    out = bytearray()
    while size > 0:
        start = offset % 256
        piece = _BLOCK[start:start + min(size, CHUNK - start)]
        out += piece
        offset += len(piece)
        size -= len(piece)
    return bytes(out)


# --- one connection ------------------------------------------------------------------------

class _SendTimeout(Exception):
    """The peer read nothing for send_timeout: give the connection up."""


async def _send(sock: Any, data: Any, limits: HttpLimits) -> None:
    with trio.move_on_after(limits.send_timeout) as scope:
        await sock.sendall(data)
    if scope.cancelled_caught:
        raise _SendTimeout


async def send_reply(sock: Any, reply: Reply, head_only: bool, keep_alive: bool,
                     limits: HttpLimits = DEFAULT_LIMITS) -> None:
    head = response_head(reply, keep_alive)
    if head_only or not reply.length:
        await _send(sock, head, limits)
    elif not reply.pattern:
        await _send(sock, head + reply.body, limits)
    else:
        await _send(sock, head, limits)
        view = memoryview(_BLOCK)
        left = reply.length
        while left:   # offsets stay multiples of CHUNK, so every chunk starts the pattern at 0
            n = min(left, CHUNK)
            await _send(sock, view[:n], limits)   # send_timeout bounds each chunk's progress
            left -= n


async def lingering_close(sock: Any, linger: float = HttpLimits.linger) -> None:
    """Send FIN, then read and drop what the peer still sends for a moment: closing with
    unread data would send an RST that can destroy the reply in flight (RFC 9112 §9.6)."""
    try:
        sock.shutdown(_pysocket.SHUT_WR)
        with trio.move_on_after(linger):
            while await sock.recv(RECV_SIZE):
                pass
    except OSError:
        pass


class _Reader:
    """Feeds one connection's bytes to a fresh h11 parser per request."""

    def __init__(self, sock: Any, limits: HttpLimits) -> None:
        self.sock, self.limits = sock, limits
        self.eof = False
        self.conn = h11.Connection(h11.SERVER)
        self.started = False      # a byte (other than CR/LF) of the current request has arrived
        self.fed = 0              # bytes given to this request's parser

    def new_request(self) -> None:
        """A fresh parser, fed what followed the previous request (pipelining)."""
        leftover = self.conn.trailing_data[0] if self.started else b""
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_head)
        self.started = False
        self.fed = 0
        self._feed(leftover)

    def _feed(self, data: bytes) -> None:
        if not self.started:
            # RFC 9112 §2.2: ignore empty lines before a request line (h11 would refuse them)
            data = data.lstrip(b"\r\n")
            if not data:
                return
            self.started = True
        self.fed += len(data)
        self.conn.receive_data(data)

    async def fill(self) -> None:
        """One recv into the parser; EOF is passed on as h11 expects it (b"")."""
        data = await self.sock.recv(RECV_SIZE)
        if not data:
            self.eof = True
            if self.started:
                self.conn.receive_data(b"")
            return
        self._feed(data)

    async def wait_first_byte(self) -> bool:
        """Until a byte of the next request arrives (CR/LF count: they start the clock);
        False at EOF."""
        if self.started:
            return True
        data = await self.sock.recv(RECV_SIZE)
        if not data:
            self.eof = True
            return False
        self._feed(data)
        return True

    async def next_event(self) -> Any:
        """The next h11 event of the request, receiving as needed; None at EOF before any
        byte of a request.  Raises HttpError for what h11 refuses."""
        while True:
            if not self.started:
                if self.eof:
                    return None
                await self.fill()
                continue
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise _h11_error(exc) from None
            if event is h11.NEED_DATA:
                await self.fill()
                continue
            return event


async def _read_request(reader: _Reader, limits: HttpLimits) -> Request | None:
    """Read one request head and drop its body; the request, or None at EOF."""
    event = await reader.next_event()
    if event is None or isinstance(event, h11.ConnectionClosed):
        return None
    if not isinstance(event, h11.Request):   # cannot happen with h11's server role
        raise HttpError(400, f"unexpected {type(event).__name__}")
    _check_head_size(reader.conn, reader.fed, limits.max_head)
    req = _from_h11(event)
    _check_request(req)
    if req.content_length > limits.max_body:
        raise HttpError(413, f"a request body is at most {limits.max_body} bytes")
    if reader.conn.they_are_waiting_for_100_continue:
        await reader.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")   # RFC 9110 §10.1.1
    body = 0
    while True:
        event = await reader.next_event()
        if isinstance(event, h11.Data):
            body += len(event.data)
            if body > limits.max_body:   # chunked bodies have no length up front
                raise HttpError(413, f"a request body is at most {limits.max_body} bytes")
        elif isinstance(event, h11.EndOfMessage):
            return req
        else:   # None / ConnectionClosed: the peer went away mid-body
            return None


def _count_error(counters: HttpCounters, status: int) -> None:
    if status in (413, 431):
        counters.too_large += 1
    elif status == 408:
        counters.timeouts += 1
    else:
        counters.bad_requests += 1


async def _refuse(sock: Any, status: int, detail: str, limits: HttpLimits,
                  counters: HttpCounters) -> None:
    _count_error(counters, status)
    err = error_reply(status, detail)
    try:
        await _send(sock, response_head(err, False) + err.body, limits)
    except _SendTimeout:
        return
    await lingering_close(sock, limits.linger)


async def serve_connection(sock: Any, peer: SockAddr, local: SockAddr | None = None,
                           limits: HttpLimits = DEFAULT_LIMITS,
                           counters: HttpCounters | None = None) -> int:
    """Answer requests on one accepted connection until it closes; returns how many."""
    counters = counters if counters is not None else HttpCounters()
    peer_s = sockaddr_text(peer)
    local_s = sockaddr_text(local) if local else ""
    reader = _Reader(sock, limits)
    answered = 0
    # the first request's clock starts at the accept (nginx's client_header_timeout);
    # the next ones' at their first byte, after up to idle_timeout of waiting
    deadline = trio.current_time() + limits.request_timeout
    while True:
        reader.new_request()
        if answered:
            if not reader.started:   # (a pipelined request has begun already)
                with trio.move_on_after(limits.idle_timeout) as idle:
                    if not await reader.wait_first_byte():
                        return answered
                if idle.cancelled_caught:
                    counters.idle_closed += 1
                    return answered
            deadline = trio.current_time() + limits.request_timeout
        req: Request | None = None
        try:
            with trio.move_on_at(deadline) as scope:
                req = await _read_request(reader, limits)
            if scope.cancelled_caught:
                if not reader.started:   # nothing at all: close quietly, like an idle timeout
                    counters.timeouts += 1
                    return answered
                raise HttpError(408, f"the request did not arrive within {limits.request_timeout:g} s")
        except HttpError as exc:
            await _refuse(sock, exc.status, exc.detail, limits, counters)
            return answered
        if req is None:
            return answered
        reply = respond(req, local_s, peer_s)
        keep = req.keep_alive and not reply.close
        try:
            await send_reply(sock, reply, req.method == "HEAD", keep, limits)
        except _SendTimeout:
            counters.send_timeouts += 1
            return answered
        answered += 1
        counters.requests += 1
        if not keep:
            await lingering_close(sock, limits.linger)
            return answered
