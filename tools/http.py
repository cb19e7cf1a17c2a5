"""A small HTTP/1.1 origin server for `tunstack up --serve http` (RFC 9110, RFC 9112).

    GET/HEAD /          a small HTML page
    GET/HEAD /bytes/N   N bytes (0 <= N <= MAX_BYTES) of the pattern byte[i] = i % 256,
                        streamed in chunks with a Content-Length, never held in memory
    anything else       404; other methods 405; malformed requests 400 (and close)

Persistent connections per RFC 9112 §9.3: HTTP/1.1 keeps the connection unless
`Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.  Pipelined requests
are answered in order.  Request parsing and response building are pure functions
(`head_end`, `parse_request`, `respond`, `response_head`, `pattern_bytes`) so unit
tests need no socket; `serve_connection` is the only part that does I/O.
"""
from __future__ import annotations

import email.utils
import html
import re
import socket as _pysocket
from dataclasses import dataclass, replace
from typing import Any

import trio

MAX_HEAD = 16 * 1024          # request line + header fields
MAX_BYTES = 10**12            # largest /bytes/N
MAX_DISCARD = 1 << 20         # a request body up to this is read and dropped; larger ones close
CHUNK = 256 * 1024            # streaming unit, a multiple of the 256-byte pattern
IDLE_TIMEOUT = 30.0           # seconds a keep-alive connection may wait for its next request
LINGER = 2.0                  # seconds to drain the peer before closing (see lingering_close)
RECV_SIZE = 65536

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           431: "Request Header Fields Too Large", 501: "Not Implemented",
           505: "HTTP Version Not Supported"}

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")          # RFC 9110 §5.6.2 tchar
_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")               # RFC 9112 §2.3
_TARGET = re.compile(r"[\x21-\x7e]+")                          # visible ASCII, no spaces
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")         # no CTLs except HTAB
_BLOCK = bytes(range(256)) * (CHUNK // 256)


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
        return int(values[0].split(",")[0]) if values else 0   # validated by parse_request

    @property
    def path(self) -> str:
        """The path of an origin-form or absolute-form target, without the query."""
        target = self.target
        if not target.startswith("/"):
            rest = target.split("://", 1)[1]
            target = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        return target.split("?", 1)[0]


def head_end(buf: bytes | bytearray) -> int | None:
    """Index just past the blank line ending the request head in `buf`, or None if it has
    not all arrived.  A bare LF is accepted as a line end (RFC 9112 §2.2)."""
    ends = [i for i in (buf.find(b"\n\r\n"), buf.find(b"\n\n")) if i >= 0]
    if not ends:
        return None
    i = min(ends)
    return i + (3 if buf[i + 1:i + 2] == b"\r" else 2)


def skip_empty_lines(buf: bytes | bytearray) -> int:
    """How many leading CR/LF bytes to ignore before a request line (RFC 9112 §2.2)."""
    return len(buf) - len(buf.lstrip(b"\r\n")) if buf[:1] in (b"\r", b"\n") else 0


def parse_request(head: bytes) -> Request:
    """Parse a request head (request line + fields, up to and including the blank line).
    Raises HttpError(400/505/501) for what RFC 9112 says a server must reject."""
    if len(head) > MAX_HEAD:
        raise HttpError(431, "request head too large")
    text = head.decode("latin-1")
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise HttpError(400, "empty request")
    if any("\r" in ln or "\0" in ln for ln in lines):
        raise HttpError(400, "bare CR or NUL in the request head")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not all(parts):
        raise HttpError(400, "request line is not METHOD SP TARGET SP VERSION")
    method, target, version_s = parts
    if not _TOKEN.fullmatch(method):
        raise HttpError(400, "bad method")
    if not _TARGET.fullmatch(target):
        raise HttpError(400, "bad request target")
    m = _VERSION.fullmatch(version_s)
    if not m:
        raise HttpError(400, "bad HTTP version")
    version = (int(m.group(1)), int(m.group(2)))
    if version[0] != 1:
        raise HttpError(505, f"HTTP/{version[0]}.{version[1]} is not supported")
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            raise HttpError(400, "obsolete line folding")   # RFC 9112 §5.2: may reject
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):        # also no space before the colon (§5.1)
            raise HttpError(400, f"bad header field {line[:40]!r}")
        value = value.strip(" \t")
        if not _FIELD_VALUE.fullmatch(value):
            raise HttpError(400, f"bad value in {name}")
        headers.append((name.lower(), value))
    req = Request(method, target, version, tuple(headers))
    _check_framing(req)
    return req


def _check_framing(req: Request) -> None:
    hosts = req.get_all("host")
    if len(hosts) > 1 or (req.version >= (1, 1) and not hosts):
        raise HttpError(400, "an HTTP/1.1 request needs exactly one Host")   # RFC 9112 §3.2
    if hosts and not re.fullmatch(r"[\x21-\x7e]*", hosts[0]):
        raise HttpError(400, "bad Host")
    if req.get_all("transfer-encoding"):
        if req.version < (1, 1) or req.get_all("content-length"):
            raise HttpError(400, "Transfer-Encoding with HTTP/1.0 or with Content-Length")   # §6.1, §6.3
        raise HttpError(501, "request bodies with Transfer-Encoding are not supported")
    lengths = {v.strip() for f in req.get_all("content-length") for v in f.split(",")}
    if lengths and (len(lengths) > 1 or not all(v.isdigit() and len(v) < 19 for v in lengths)):
        raise HttpError(400, "bad Content-Length")   # §6.3: differing or invalid values
    if not (req.target.startswith("/") or re.match(r"(?i)https?://[^/]", req.target)):
        raise HttpError(400, "request target is neither origin-form nor absolute-form")


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


async def send_reply(sock: Any, reply: Reply, head_only: bool, keep_alive: bool) -> None:
    head = response_head(reply, keep_alive)
    if head_only or not reply.length:
        await sock.sendall(head)
    elif not reply.pattern:
        await sock.sendall(head + reply.body)
    else:
        await sock.sendall(head)
        view = memoryview(_BLOCK)
        left = reply.length
        while left:   # offsets stay multiples of CHUNK, so every chunk starts the pattern at 0
            n = min(left, CHUNK)
            await sock.sendall(view[:n])
            left -= n


async def lingering_close(sock: Any) -> None:
    """Send FIN, then read and drop what the peer still sends for a moment: closing with
    unread data would send an RST that can destroy the reply in flight (RFC 9112 §9.6)."""
    try:
        sock.shutdown(_pysocket.SHUT_WR)
        with trio.move_on_after(LINGER):
            while await sock.recv(RECV_SIZE):
                pass
    except OSError:
        pass


async def _read_head(sock: Any, buf: bytearray) -> int | None:
    """Receive into `buf` until a whole request head is there; its end, or None at EOF."""
    while True:
        del buf[:skip_empty_lines(buf)]
        end = head_end(buf)
        if end is not None:
            return end
        if len(buf) > MAX_HEAD:
            raise HttpError(431, "request head too large")
        data = await sock.recv(RECV_SIZE)
        if not data:
            return None
        buf += data


async def _discard_body(sock: Any, buf: bytearray, length: int) -> bool:
    """Drop a request body of `length` bytes; False when the peer closed first."""
    take = min(length, len(buf))
    del buf[:take]
    length -= take
    while length:
        data = await sock.recv(min(length, RECV_SIZE))
        if not data:
            return False
        length -= len(data)
    return True


async def serve_connection(sock: Any, peer: tuple[str, int], local: tuple[str, int] | None = None,
                           idle_timeout: float = IDLE_TIMEOUT) -> int:
    """Answer requests on one accepted connection until it closes; returns how many."""
    peer_s = "%s:%d" % peer
    local_s = "%s:%d" % local if local else ""
    buf = bytearray()
    answered = 0
    while True:
        end = None
        try:
            with trio.move_on_after(idle_timeout):
                end = await _read_head(sock, buf)
            if end is None:   # EOF, or idle too long between requests: just close
                return answered
            head = bytes(buf[:end])
            del buf[:end]
            req = parse_request(head)
        except HttpError as exc:
            err = error_reply(exc.status, exc.detail)
            await sock.sendall(response_head(err, False) + err.body)
            await lingering_close(sock)
            return answered
        reply = respond(req, local_s, peer_s)
        keep = req.keep_alive and not reply.close
        body = req.content_length
        if body > MAX_DISCARD:
            keep = False
        elif body and not await _discard_body(sock, buf, body):
            return answered
        await send_reply(sock, reply, req.method == "HEAD", keep)
        answered += 1
        if not keep:
            await lingering_close(sock)
            return answered
