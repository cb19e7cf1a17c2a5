"""The HTTP/1.1 server of `--serve http` (tools/http.py): parsing and replies as pure
functions (RFC 9112 case by case), then one connection driven through a fake socket."""
from __future__ import annotations

import hashlib

import pytest
import trio

from tools.http import (CHUNK, MAX_BYTES, MAX_HEAD, HttpError, Request, head_end, parse_request,
                        pattern_bytes, respond, response_head, serve_connection, skip_empty_lines)


def req(text: str) -> Request:
    return parse_request(text.replace("\n", "\r\n").encode("latin-1"))


def status_of(text: str) -> int:
    with pytest.raises(HttpError) as exc:
        req(text)
    return exc.value.status


# --- finding the end of the head ---------------------------------------------------------

@pytest.mark.parametrize("buf, end", [
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27),
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /x", 27),       # pipelined: stops at the first
    (b"GET / HTTP/1.1\nHost: a\n\n", 24),                    # bare LF (RFC 9112 §2.2)
    (b"GET / HTTP/1.0\r\n\r\n", 18),
    (b"GET / HTTP/1.1\r\nHost: a\r\n", None),
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r", None),
    (b"", None),
])
def test_head_end(buf: bytes, end: int | None) -> None:
    assert head_end(buf) == end


def test_leading_empty_lines_are_skipped() -> None:
    assert skip_empty_lines(b"\r\n\r\nGET /") == 4
    assert skip_empty_lines(b"\nGET /") == 1
    assert skip_empty_lines(b"GET /\r\n") == 0
    assert skip_empty_lines(b"") == 0


# --- request line and fields ---------------------------------------------------------------

def test_parse_simple_get() -> None:
    r = req("GET /bytes/10?x=1 HTTP/1.1\nHost: 10.77.0.2\nUser-Agent: curl/8\nAccept: */*\n\n")
    assert (r.method, r.target, r.version) == ("GET", "/bytes/10?x=1", (1, 1))
    assert r.path == "/bytes/10"
    assert r.get_all("host") == ["10.77.0.2"] and r.get_all("user-agent") == ["curl/8"]
    assert r.keep_alive and r.content_length == 0


def test_field_names_are_case_insensitive_and_values_trimmed() -> None:
    r = req("GET / HTTP/1.1\nHOST:   a  \nConNection:\tKeep-Alive, Upgrade \n\n")
    assert r.get_all("host") == ["a"]
    assert r.tokens("connection") == {"keep-alive", "upgrade"}


def test_absolute_form_target() -> None:
    assert req("GET http://10.77.0.2/bytes/5 HTTP/1.1\nHost: 10.77.0.2\n\n").path == "/bytes/5"
    assert req("GET http://10.77.0.2 HTTP/1.1\nHost: 10.77.0.2\n\n").path == "/"


@pytest.mark.parametrize("text", [
    "GET /  HTTP/1.1\nHost: a\n\n",            # two spaces
    "GET / HTTP/1.1 extra\nHost: a\n\n",
    "GET /\n\n",                                # HTTP/0.9 form
    "G(T / HTTP/1.1\nHost: a\n\n",              # method is not a token
    "GET / HTTP/1\nHost: a\n\n",
    "GET / http/1.1\nHost: a\n\n",
    "GET / HTTP/1.10\nHost: a\n\n",
    "GET * HTTP/1.1\nHost: a\n\n",             # asterisk-form is for OPTIONS only
    "GET bytes/1 HTTP/1.1\nHost: a\n\n",
    "GET /bytes/\xd9\xa1 HTTP/1.1\nHost: a\n\n",    # raw UTF-8 in the target
    "GET / HTTP/1.1\nHost : a\n\n",             # whitespace before the colon (§5.1)
    "GET / HTTP/1.1\nHost: a\nNoColon\n\n",
    "GET / HTTP/1.1\nHost: a\nX: 1\n  folded\n\n",   # obs-fold (§5.2)
    "GET / HTTP/1.1\nHost: a\nX: a\x01b\n\n",   # control character in a value
    "GET / HTTP/1.1\nHost: a\nX: a\rb\n\n",     # bare CR
    "GET / HTTP/1.1\n\n",                       # HTTP/1.1 without Host (§3.2)
    "GET / HTTP/1.1\nHost: a\nHost: b\n\n",     # two Hosts
    "GET / HTTP/1.0\nHost: a\nHost: a\n\n",
    "GET / HTTP/1.1\nHost: a b\n\n",
    "GET / HTTP/1.1\nHost: a\nContent-Length: 5\nContent-Length: 6\n\n",   # §6.3
    "GET / HTTP/1.1\nHost: a\nContent-Length: 5, 6\n\n",
    "GET / HTTP/1.1\nHost: a\nContent-Length: -1\n\n",
    "GET / HTTP/1.1\nHost: a\nContent-Length: 0x10\n\n",
    "GET / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\nContent-Length: 3\n\n",
    "GET / HTTP/1.0\nTransfer-Encoding: chunked\n\n",
])
def test_malformed_requests_are_400(text: str) -> None:
    assert status_of(text) == 400


def test_other_rejections() -> None:
    assert status_of("GET / HTTP/2.0\nHost: a\n\n") == 505
    assert status_of("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: chunked\n\n") == 501
    assert status_of("GET / HTTP/1.1\nHost: a\nX: " + "y" * MAX_HEAD + "\n\n") == 431
    with pytest.raises(HttpError):
        parse_request(b"")


def test_repeated_equal_content_length_is_accepted() -> None:
    r = req("POST / HTTP/1.1\nHost: a\nContent-Length: 7\ncontent-length: 7, 7\n\n")
    assert r.content_length == 7


def test_obs_text_and_bare_lf_accepted() -> None:
    r = parse_request(b"GET / HTTP/1.1\nHost: a\nX-Name: caf\xe9\n\n")
    assert r.get_all("x-name") == ["caf\xe9"]


# --- persistence (RFC 9112 §9.3) -----------------------------------------------------------

@pytest.mark.parametrize("version, connection, keep", [
    ("1.1", None, True),
    ("1.1", "close", False),
    ("1.1", "Keep-Alive, CLOSE", False),
    ("1.0", None, False),
    ("1.0", "keep-alive", True),
    ("1.0", "close", False),
])
def test_keep_alive(version: str, connection: str | None, keep: bool) -> None:
    fields = "Host: a\n" + (f"Connection: {connection}\n" if connection else "")
    assert req(f"GET / HTTP/{version}\n{fields}\n").keep_alive is keep


# --- replies ---------------------------------------------------------------------------

def test_root_page() -> None:
    reply = respond(req("GET / HTTP/1.1\nHost: a\n\n"), "10.77.0.2:80", "10.77.0.1:4000")
    assert reply.status == 200 and reply.content_type.startswith("text/html")
    assert reply.length == len(reply.body) and b"<html>" in reply.body and b"10.77.0.1:4000" in reply.body
    assert b"<script>" not in respond(req("GET / HTTP/1.1\nHost: a\n\n"), "", "<script>").body


def test_bytes_n() -> None:
    reply = respond(req("GET /bytes/10000000 HTTP/1.1\nHost: a\n\n"))
    assert (reply.status, reply.length, reply.pattern, reply.body) == (200, 10_000_000, True, b"")
    assert respond(req("HEAD /bytes/0 HTTP/1.1\nHost: a\n\n")).length == 0
    assert respond(req(f"GET /bytes/{MAX_BYTES} HTTP/1.1\nHost: a\n\n")).length == MAX_BYTES
    too_big = respond(req(f"GET /bytes/{MAX_BYTES + 1} HTTP/1.1\nHost: a\n\n"))
    assert too_big.status == 400 and not too_big.close
    assert respond(req("GET /bytes/" + "9" * 5000 + " HTTP/1.1\nHost: a\n\n")).status == 400


@pytest.mark.parametrize("target", ["/nope", "/bytes/", "/bytes/-1", "/bytes/+5", "/bytes/1e3", "/bytes/5/",
                                    "/bytes/%31", "//", "/index.html"])
def test_404(target: str) -> None:
    reply = respond(req(f"GET {target} HTTP/1.1\nHost: a\n\n"))
    assert reply.status == 404 and not reply.close


def test_other_methods_get_405_with_allow() -> None:
    reply = respond(req("POST / HTTP/1.1\nHost: a\nContent-Length: 0\n\n"))
    assert reply.status == 405 and reply.allow == "GET, HEAD"
    assert respond(req("get / HTTP/1.1\nHost: a\n\n")).status == 405   # methods are case-sensitive


def test_response_head() -> None:
    reply = respond(req("GET /bytes/42 HTTP/1.1\nHost: a\n\n"))
    head = response_head(reply, keep_alive=True, date="Sun, 06 Nov 1994 08:49:37 GMT").decode()
    assert head.startswith("HTTP/1.1 200 OK\r\n") and head.endswith("\r\n\r\n")
    fields = dict(line.split(": ", 1) for line in head.split("\r\n")[1:-2])
    assert fields == {"Date": "Sun, 06 Nov 1994 08:49:37 GMT", "Server": "tunstack",
                      "Content-Type": "application/octet-stream", "Content-Length": "42",
                      "Connection": "keep-alive"}
    assert b"Connection: close\r\n" in response_head(reply, keep_alive=False)
    allow = response_head(respond(req("PUT / HTTP/1.1\nHost: a\n\n")), True)
    assert allow.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n") and b"Allow: GET, HEAD\r\n" in allow


def test_pattern_bytes() -> None:
    assert pattern_bytes(0, 5) == b"\x00\x01\x02\x03\x04"
    assert pattern_bytes(254, 4) == b"\xfe\xff\x00\x01"
    big = pattern_bytes(3, 3 * CHUNK + 17)
    assert big == bytes((3 + i) % 256 for i in range(len(big)))
    assert pattern_bytes(7, 0) == b""


# --- one connection through a fake socket ------------------------------------------------------

class FakeSock:
    """Hands out scripted input in pieces, records what is sent and how it ends."""

    def __init__(self, data: bytes, piece: int = 7, eof: bool = True) -> None:
        self.pieces = [data[i:i + piece] for i in range(0, len(data), piece)]
        self.eof = eof
        self.out = bytearray()
        self.sha = hashlib.sha256()
        self.count_only = False
        self.shut_wr = False

    async def recv(self, n: int) -> bytes:
        await trio.lowlevel.checkpoint()
        if self.pieces:
            piece = self.pieces.pop(0)
            if len(piece) > n:
                self.pieces.insert(0, piece[n:])
            return piece[:n]
        if not self.eof:
            await trio.sleep_forever()
        return b""

    async def sendall(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        assert not self.shut_wr
        self.out += data

    def shutdown(self, how: int) -> None:
        self.shut_wr = True


def split_responses(out: bytes) -> list[tuple[str, dict[str, str], bytes]]:
    """Cut a byte stream of responses apart by their Content-Length (no HEAD bodies here)."""
    res, buf = [], bytes(out)
    while buf:
        end = buf.index(b"\r\n\r\n") + 4
        lines = buf[:end].decode().split("\r\n")
        fields = {k.lower(): v for k, v in (ln.split(": ", 1) for ln in lines[1:-2])}
        n = int(fields["content-length"])
        res.append((lines[0], fields, buf[end:end + n]))
        buf = buf[end + n:]
    return res


async def test_keep_alive_pipelining_and_close() -> None:
    data = (b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /bytes/300 HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /missing HTTP/1.1\r\nHost: a\r\n\r\n"
            b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /bytes/3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            b"GET /never HTTP/1.1\r\nHost: a\r\n\r\n")
    sock = FakeSock(data)
    assert await serve_connection(sock, ("10.77.0.1", 4000), ("10.77.0.2", 80)) == 5
    res = split_responses(bytes(sock.out))
    assert [r[0] for r in res] == ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK", "HTTP/1.1 404 Not Found",
                                   "HTTP/1.1 405 Method Not Allowed", "HTTP/1.1 200 OK"]
    assert b"10.77.0.1:4000" in res[0][2]
    assert res[1][2] == pattern_bytes(0, 300)
    assert [r[1]["connection"] for r in res] == ["keep-alive"] * 4 + ["close"]
    assert res[4][2] == b"\x00\x01\x02" and sock.shut_wr


async def test_head_has_length_but_no_body() -> None:
    sock = FakeSock(b"HEAD /bytes/1000000 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert await serve_connection(sock, ("1.2.3.4", 5)) == 1
    assert sock.out.endswith(b"\r\n\r\n") and b"Content-Length: 1000000\r\n" in sock.out


async def test_http10_closes_by_default(autojump_clock: trio.abc.Clock) -> None:
    sock = FakeSock(b"GET /bytes/2 HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n", eof=False)
    assert await serve_connection(sock, ("1.2.3.4", 5)) == 1
    assert sock.out.endswith(b"Connection: close\r\n\r\n\x00\x01") and sock.shut_wr


async def test_malformed_gets_400_and_close() -> None:
    sock = FakeSock(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET nonsense\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert await serve_connection(sock, ("1.2.3.4", 5)) == 1
    res = split_responses(bytes(sock.out))
    assert [r[0] for r in res] == ["HTTP/1.1 200 OK", "HTTP/1.1 400 Bad Request"]
    assert res[1][1]["connection"] == "close" and sock.shut_wr


async def test_head_too_large_gets_431() -> None:
    sock = FakeSock(b"GET / HTTP/1.1\r\nX: " + b"y" * (2 * MAX_HEAD), piece=4096)
    await serve_connection(sock, ("1.2.3.4", 5))
    assert sock.out.startswith(b"HTTP/1.1 431 ")


async def test_idle_keep_alive_connection_is_closed(autojump_clock: trio.abc.Clock) -> None:
    sock = FakeSock(b"GET /bytes/1 HTTP/1.1\r\nHost: a\r\n\r\n", eof=False)
    with trio.fail_after(100):
        assert await serve_connection(sock, ("1.2.3.4", 5), idle_timeout=30) == 1


async def test_large_body_is_streamed() -> None:
    """10**8 bytes go out in CHUNK pieces without the body ever being built."""
    n = 10**8

    class Sink(FakeSock):
        async def sendall(self, data: bytes) -> None:
            if self.count_only:
                assert len(data) <= CHUNK
                self.sha.update(data)
            else:
                self.out += data
                self.count_only = True   # the head went first; count the rest
            self.total = getattr(self, "total", 0) + len(data)

    sock = Sink(f"GET /bytes/{n} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
    await serve_connection(sock, ("1.2.3.4", 5))
    assert f"Content-Length: {n}\r\n".encode() in sock.out
    expect = hashlib.sha256()
    block = bytes(range(256)) * 4096
    for off in range(0, n, len(block)):
        expect.update(block[:min(len(block), n - off)])
    assert sock.sha.hexdigest() == expect.hexdigest()
