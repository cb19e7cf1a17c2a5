"""The HTTP service's request handling (tools/services/http.py `serve_connection`), lightly: a
connection whose bytes arrive in pieces the input chooses, then EOF or silence, under
trio's MockClock (timeouts pass in virtual time).  Only HttpError turned into a 4xx/5xx
reply, or OSError from the socket, may end it."""
from __future__ import annotations

import errno
from collections import deque

import trio
import trio.testing

from tools.services import http

from . import check, target
from .harness import Fdp

SEND_LIMIT = 1 << 20        # a peer that stops reading: the socket fails like a reset one


class PieceSocket:
    def __init__(self, pieces: list[bytes], hang: bool) -> None:
        self.pieces = deque(pieces)
        self.hang = hang
        self.out = bytearray()

    async def recv(self, n: int) -> bytes:
        await trio.lowlevel.checkpoint()
        if not self.pieces:
            if self.hang:
                await trio.sleep_forever()
            return b""
        piece = self.pieces.popleft()
        if len(piece) > n:
            self.pieces.appendleft(piece[n:])
            piece = piece[:n]
        return piece

    async def sendall(self, data: bytes | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        if len(self.out) + len(data) > SEND_LIMIT:
            raise OSError(errno.ECONNRESET, "the fuzzing peer stopped reading")
        self.out += data

    def shutdown(self, how: int) -> None:
        pass


REQUESTS = (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HEAD /bytes/100 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
            b"GET /bytes/10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", b"\r\n\r\n")


@target("http")
def http_request(data: bytes) -> None:
    """Request heads and bodies, pipelined, split anywhere, then EOF or a silent peer."""
    fdp = Fdp(data)
    hang = fdp.ConsumeBool()
    pieces: list[bytes] = []
    while fdp.remaining_bytes() and len(pieces) < 16:
        if fdp.ConsumeIntInRange(0, 3) == 0:
            pieces.append(REQUESTS[fdp.ConsumeIntInRange(0, len(REQUESTS) - 1)])
        else:
            pieces.append(fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 300)))
    sock = PieceSocket(pieces, hang)
    answered: list[int] = []

    async def main() -> None:
        # a silent peer is cut by the service's own timeouts; the outer bound only keeps a
        # service without one (a body that never comes) from holding the fuzzer forever
        with trio.move_on_after(24 * 3600):
            try:
                answered.append(await http.serve_connection(sock, ("10.0.0.1", 1234), ("10.0.0.2", 80)))
            except OSError:
                pass                      # documented: the socket's own errors end the connection

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    if sock.out:
        check(sock.out.startswith(b"HTTP/1.1 "), f"the reply does not start with a status line: {sock.out[:40]!r}")
