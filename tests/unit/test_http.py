"""The HTTP/1.1 server of `--serve http` (tools/services/http.py): parsing and replies as pure
functions (RFC 9112 case by case), then one connection driven through a fake socket."""
from __future__ import annotations

import hashlib

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.services.http import (
    CHUNK,
    MAX_BYTES,
    MAX_HEAD,
    HttpCounters,
    HttpError,
    HttpLimits,
    Request,
    parse_request,
    pattern_bytes,
    respond,
    response_head,
    serve_connection,
    sockaddr_text,
)


def req(text: str) -> Request:
    return parse_request(text.replace("\n", "\r\n").encode("latin-1"))


def status_of(text: str) -> int:
    with pytest.raises(HttpError) as exc:
        req(text)
    return exc.value.status


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
    "POST / HTTP/1.1\nHost: a\nContent-Length: \xb2\n\n",       # str.isdigit() is true, int() fails
    "POST / HTTP/1.1\nHost: a\nContent-Length: \xd9\xa3\n\n",   # Arabic-Indic 3, as UTF-8
    "POST / HTTP/1.1\nHost: a\nContent-Length: 1_0\n\n",
    "POST / HTTP/1.1\nHost: a\nContent-Length: +10\n\n",
    "POST / HTTP/1.1\nHost: a\nContent-Length:  \n\n",
    "POST / HTTP/1.1\nHost: a\nContent-Length: 1" + "0" * 30 + "\n\n",
    "\x00GET / HTTP/1.1\nHost: a\n\n",
    "GET http:// HTTP/1.1\nHost: a\n\n",
])
def test_malformed_requests_are_400(text: str) -> None:
    assert status_of(text) == 400


def test_other_rejections() -> None:
    assert status_of("GET / HTTP/2.0\nHost: a\n\n") == 505
    assert status_of("POST / HTTP/1.1\nHost: a\nTransfer-Encoding: gzip\n\n") == 501
    assert status_of("GET / HTTP/1.1\nHost: a\nX: " + "y" * MAX_HEAD + "\n\n") == 431
    with pytest.raises(HttpError):
        parse_request(b"")


def test_repeated_equal_content_length_is_accepted() -> None:
    r = req("POST / HTTP/1.1\nHost: a\nContent-Length: 7\ncontent-length: 7, 7\n\n")
    assert r.content_length == 7


def test_obs_fold_is_joined() -> None:
    """RFC 9112 §5.2 lets a server reject or unfold obs-fold; h11 unfolds."""
    assert req("GET / HTTP/1.1\nHost: a\nX: 1\n  folded\n\n").get_all("x") == ["1 folded"]


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

    async def send(self, data: bytes) -> int:   # what CountingSocket (tools/services/builtin.py) calls
        await self.sendall(bytes(data))
        return len(data)

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
        assert await serve_connection(sock, ("1.2.3.4", 5), limits=HttpLimits(idle_timeout=30)) == 1


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


# --- bounds: timeouts, sizes, the connection cap (issue 10) ---------------------------------

LIMITS = HttpLimits(request_timeout=10, idle_timeout=30, send_timeout=60, linger=2)


class TrickleSock(FakeSock):
    """Sends its input one byte every `gap` seconds (a slowloris client); never EOF."""

    def __init__(self, data: bytes, gap: float) -> None:
        super().__init__(data, piece=1, eof=False)
        self.gap = gap

    async def recv(self, n: int) -> bytes:
        if self.pieces and self.out == b"":
            await trio.sleep(self.gap)
        return await super().recv(n)


async def serve(sock: FakeSock, limits: HttpLimits = LIMITS) -> tuple[int, HttpCounters, float]:
    counters = HttpCounters()
    t0 = trio.current_time()
    n = await serve_connection(sock, ("1.2.3.4", 5), limits=limits, counters=counters)
    return n, counters, trio.current_time() - t0


async def test_slow_body_gets_408_after_the_request_timeout(autojump_clock: trio.abc.Clock) -> None:
    """The issue's case: a POST that declares 10 bytes and sends 3 held the connection forever."""
    sock = FakeSock(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc", eof=False)
    n, counters, took = await serve(sock)
    assert n == 0 and sock.out.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and sock.shut_wr
    assert counters.timeouts == 1 and 10 <= took <= 10 + LIMITS.linger + 1


async def test_slowloris_head_is_cut_at_the_request_timeout(autojump_clock: trio.abc.Clock) -> None:
    """One byte a second keeps every per-recv timer happy; the whole-request clock does not."""
    sock = TrickleSock(b"GET / HTTP/1.1\r\nHost: a\r\nX-a: " + b"b" * 1000, gap=1.0)
    n, counters, took = await serve(sock)
    assert n == 0 and sock.out.startswith(b"HTTP/1.1 408 ") and counters.timeouts == 1
    assert took <= 10 + LIMITS.linger + 1


async def test_silent_connection_is_closed_quietly(autojump_clock: trio.abc.Clock) -> None:
    sock = FakeSock(b"", eof=False)
    n, counters, took = await serve(sock)
    assert (n, bytes(sock.out), counters.timeouts) == (0, b"", 1) and took == 10


async def test_idle_keep_alive_is_counted(autojump_clock: trio.abc.Clock) -> None:
    sock = FakeSock(b"GET /bytes/1 HTTP/1.1\r\nHost: a\r\n\r\n", eof=False)
    n, counters, took = await serve(sock)
    assert (n, counters.requests, counters.idle_closed, counters.timeouts) == (1, 1, 1, 0)
    assert took == 30


async def test_the_request_clock_restarts_per_request(autojump_clock: trio.abc.Clock) -> None:
    """Three requests, each slower than a third of the timeout but each within it."""
    req1 = b"GET /bytes/1 HTTP/1.1\r\nHost: a\r\n\r\n"
    sock = TrickleSock(req1 * 3, gap=0.2)   # ~7 s per request
    n, counters, _ = await serve(sock)
    assert n == 3 and counters.timeouts == 0 and counters.idle_closed == 1


@pytest.mark.parametrize("value", [b"\xb2", "\u0663".encode(), b"\xef\xbc\x91\xef\xbc\x90", b"1 0", b"0x0a"])
async def test_non_ascii_content_length_is_400_not_a_crash(value: bytes) -> None:
    sock = FakeSock(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + value + b"\r\n\r\n0123456789")
    n, counters, _ = await serve(sock)
    assert n == 0 and sock.out.startswith(b"HTTP/1.1 400 Bad Request\r\n") and counters.bad_requests == 1


async def test_body_over_the_limit_is_413() -> None:
    limits = HttpLimits(max_body=100)
    sock = FakeSock(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n" + b"x" * 101)
    n, counters, _ = await serve(sock, limits)
    assert n == 0 and sock.out.startswith(b"HTTP/1.1 413 Content Too Large\r\n") and counters.too_large == 1
    chunked = b"".join(b"20\r\n" + b"y" * 32 + b"\r\n" for _ in range(4)) + b"0\r\n\r\n"
    sock = FakeSock(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    n, counters, _ = await serve(sock, limits)
    assert n == 0 and sock.out.startswith(b"HTTP/1.1 413 ") and counters.too_large == 1


async def test_chunked_body_within_the_limit_is_read_and_dropped() -> None:
    body = b"5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n"
    sock = FakeSock(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body
                    + b"GET /bytes/2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    n, _, _ = await serve(sock)
    assert n == 2 and [r[0] for r in split_responses(bytes(sock.out))] == [
        "HTTP/1.1 405 Method Not Allowed", "HTTP/1.1 200 OK"]


async def test_expect_100_continue() -> None:
    sock = FakeSock(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n"
                    b"Connection: close\r\n\r\nbody")
    n, _, _ = await serve(sock)
    assert n == 1 and sock.out.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 405 ")


async def test_whole_head_over_the_limit_in_one_piece_is_431() -> None:
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"y" * 2000 + b"\r\n\r\n"
    sock = FakeSock(head, piece=len(head))
    n, counters, _ = await serve(sock, HttpLimits(max_head=1024))
    assert n == 0 and sock.out.startswith(b"HTTP/1.1 431 ") and counters.too_large == 1
    sock = FakeSock(head, piece=len(head))   # the same head under the default limit is fine
    n, counters, _ = await serve(sock)
    assert n == 1 and counters.too_large == 0


async def test_http10_keep_alive_is_kept() -> None:
    sock = FakeSock(b"GET /bytes/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /bytes/2 HTTP/1.0\r\n\r\n")
    n, _, _ = await serve(sock)
    res = split_responses(bytes(sock.out))
    assert n == 2 and [r[1]["connection"] for r in res] == ["keep-alive", "close"]


async def test_a_reader_that_stops_is_given_up_after_send_timeout(autojump_clock: trio.abc.Clock) -> None:
    class Stuck(FakeSock):
        async def sendall(self, data: bytes) -> None:
            if self.out:
                await trio.sleep_forever()   # the peer's window stays shut
            self.out += data

    sock = Stuck(b"GET /bytes/100000000 HTTP/1.1\r\nHost: a\r\n\r\n", eof=False)
    n, counters, took = await serve(sock)
    assert n == 0 and counters.send_timeouts == 1 and took == LIMITS.send_timeout


async def test_version_2_is_505_and_asterisk_is_400() -> None:
    sock = FakeSock(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n")
    assert (await serve(sock))[0] == 0 and sock.out.startswith(b"HTTP/1.1 505 ")
    sock = FakeSock(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n")
    assert (await serve(sock))[0] == 0 and sock.out.startswith(b"HTTP/1.1 400 ")


async def test_connections_beyond_the_cap_are_closed_at_once() -> None:
    from tools.services.builtin import CountingSocket, HttpServiceStats, http_conn
    stats = HttpServiceStats()
    limits = HttpLimits(max_connections=2)
    stats.active = 2   # two connections being served
    sock = FakeSock(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    await http_conn(CountingSocket(sock, stats), ("1.2.3.4", 5), ("5.6.7.8", 80), limits)  # type: ignore[arg-type]
    assert (bytes(sock.out), stats.refused, stats.active) == (b"", 1, 2)
    stats.active = 1
    await http_conn(CountingSocket(sock, stats), ("1.2.3.4", 5), ("5.6.7.8", 80), limits)  # type: ignore[arg-type]
    assert sock.out.startswith(b"HTTP/1.1 200 OK\r\n") and (stats.refused, stats.active, stats.active_peak) == (1, 1, 2)
    assert stats.requests == 1


# --- fuzz-ish: whatever arrives, an answer or a close, never an exception ---------------------

FUZZ_SEEDS = [b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
              b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FUZZ_SEEDS), st.lists(st.tuples(st.integers(0, 200), st.binary(max_size=4)), max_size=6),
       st.integers(1, 64))
def test_mutated_requests_never_escape(seed: bytes, edits: list[tuple[int, bytes]], piece: int) -> None:
    data = bytearray(seed)
    for pos, chunk in edits:
        pos %= len(data) + 1
        data[pos:pos + len(chunk)] = chunk
    sock = FakeSock(bytes(data), piece=piece)

    async def main() -> None:
        with trio.fail_after(60):
            await serve_connection(sock, ("1.2.3.4", 5), limits=HttpLimits(linger=0))

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    out = bytes(sock.out)
    assert out == b"" or out.startswith(b"HTTP/1.1 "), out[:80]
    for line in out.split(b"\r\n"):
        if line.startswith(b"HTTP/1.1 "):
            assert int(line[9:12]) in (100, 200, 400, 404, 405, 413, 431, 501, 505)


async def test_upgrade_and_connect_are_answered_like_any_request() -> None:
    """h11 pauses after a request that may switch protocols; we never switch, so the
    answer is an ordinary one (400 for CONNECT's authority-form, the page for an Upgrade GET)."""
    sock = FakeSock(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"
                    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                    b"GET /bytes/1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    n, counters, _ = await serve(sock)
    assert [r[0] for r in split_responses(bytes(sock.out))] == [
        "HTTP/1.1 400 Bad Request"] and n == 0 and counters.bad_requests == 1   # authority-form
    sock = FakeSock(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                    b"GET /bytes/1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    n, _, _ = await serve(sock)
    assert n == 2 and [r[0] for r in split_responses(bytes(sock.out))] == ["HTTP/1.1 200 OK"] * 2


def test_sockaddr_text_of_both_families() -> None:
    assert sockaddr_text(("10.77.0.1", 4000)) == "10.77.0.1:4000"
    assert sockaddr_text(("fd00:77::1", 80, 0, 0)) == "[fd00:77::1]:80"
    assert sockaddr_text(("fe80::1%tap0", 80, 0, 5)) == "[fe80::1%tap0]:80"
    # an IPv4 client of a dual-stack listener is shown as the IPv4 address it is
    assert sockaddr_text(("::ffff:10.77.0.1", 4000, 0, 0)) == "10.77.0.1:4000"
    assert sockaddr_text(("::ffff:a:1", 80, 0, 0)) == "[::ffff:a:1]:80"   # not dotted: left as is
