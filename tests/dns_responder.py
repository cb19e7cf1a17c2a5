"""A tiny DNS server for the gateway's DNS tests, and the hand-built messages it speaks
(dnslib is not in the venv): a query with one question, and its answer with one A record.

`Responder` runs under trio on 127.0.0.1, UDP and TCP on one ephemeral port, and frames
TCP messages itself (RFC 1035 §4.2.2) rather than with the code under test. Run as
`python -m tests.dns_responder HOST PORT` it is a resolver for a namespace test."""
from __future__ import annotations

import ipaddress
import random
import socket
import struct
from collections.abc import Awaitable, Callable

import trio

from tools.gateway.dns import Upstream

LOOPBACK = "127.0.0.1"


def encode_name(name: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".") if label) + b"\0"


def make_query(ident: int, name: str = "example.com", qtype: int = 1) -> bytes:
    header = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)      # RD, one question
    return header + encode_name(name) + struct.pack("!HH", qtype, 1)


def make_answer(query: bytes, address: str = "198.51.100.7") -> bytes:
    """The answer to `query`: QR, RD, RA, one A record pointing at the question's name."""
    header = query[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
    record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + ipaddress.ip_address(address).packed
    return header + query[12:] + record


def closed_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A loopback port nothing listens on, below the ephemeral range: checked free (bound,
    then closed), and no later bind to port 0 -- a listener or client of the test's own --
    can be handed it.  (One in the range was: a fresh-clone CI run's TCP listener got the
    "dead" DNS upstream's port, and the forwarder asked itself until its 32-client limit.)"""
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(max(1024, low - 12000), low) if low > 1025 else rng.randrange(1024, 65536)
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port below the ephemeral range")


def _ephemeral_low() -> int:
    try:
        return int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


async def _recv_exactly(conn: trio.socket.SocketType, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = await conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


class Responder:
    """Answers every query with `make_answer` (on `host`, 127.0.0.1 unless told), after
    the datagrams `before(query)` gives (forgeries, garbage) when set, and once
    `hold(query)` has returned (TCP) when set; `silent` answers nothing, `ignore(query)`
    True leaves that query unanswered. Records the IDs it saw."""

    def __init__(self, *, host: str = LOOPBACK, port: int = 0, silent: bool = False,
                 before: Callable[[bytes], list[bytes]] | None = None,
                 hold: Callable[[bytes], Awaitable[None]] | None = None,
                 ignore: Callable[[bytes], bool] | None = None) -> None:
        self.host = host
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.silent = silent
        self.ignore = ignore
        self.before = before
        self.hold = hold
        self.seen_ids: list[int] = []
        self.udp = trio.socket.socket(self.family, socket.SOCK_DGRAM)
        self.tcp = trio.socket.socket(self.family, socket.SOCK_STREAM)
        self.port = port

    async def _bind(self) -> None:
        """On `port` (UDP and TCP both, or OSError), else on an ephemeral port number free
        for UDP and TCP both (another process's TCP may hold the UDP port's number)."""
        if self.port:
            await self.udp.bind((self.host, self.port))
            await self.tcp.bind((self.host, self.port))
            self.tcp.listen(8)
            return
        for _ in range(20):
            await self.udp.bind((self.host, 0))
            port = self.udp.getsockname()[1]
            try:
                await self.tcp.bind((self.host, port))
            except OSError:
                self.udp.close()
                self.udp = trio.socket.socket(self.family, socket.SOCK_DGRAM)
                continue
            self.port = port
            self.tcp.listen(8)
            return
        raise OSError("no port free for UDP and TCP both")

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()

    @property
    def upstream(self) -> Upstream:
        return Upstream(ipaddress.ip_address(self.host), self.port)

    async def bind(self) -> None:
        try:
            await self._bind()
        except OSError:
            self.close()
            raise

    def start(self, nursery: trio.Nursery) -> None:
        """Answer in `nursery` until it is cancelled (bound first)."""
        nursery.start_soon(self._udp)
        nursery.start_soon(self._tcp, nursery)

    async def serve(self, nursery: trio.Nursery) -> None:
        await self.bind()
        self.start(nursery)

    def _answers(self, query: bytes) -> list[bytes]:
        self.seen_ids.append(int.from_bytes(query[:2], "big"))
        if self.silent or (self.ignore is not None and self.ignore(query)):
            return []
        extra = self.before(query) if self.before else []
        return [*extra, make_answer(query)]

    async def _udp(self) -> None:
        with self.udp:
            while True:
                query, client = await self.udp.recvfrom(65535)
                for answer in self._answers(query):
                    await self.udp.sendto(answer, client)

    async def _tcp(self, nursery: trio.Nursery) -> None:
        with self.tcp:
            while True:
                conn, _ = await self.tcp.accept()
                nursery.start_soon(self._tcp_conn, conn)

    async def _tcp_conn(self, conn: trio.socket.SocketType) -> None:
        with conn:
            while (prefix := await _recv_exactly(conn, 2)) is not None:
                query = await _recv_exactly(conn, int.from_bytes(prefix, "big"))
                if query is None:
                    return
                if self.hold is not None:
                    await self.hold(query)
                for answer in self._answers(query):
                    await conn.send(len(answer).to_bytes(2, "big") + answer)


async def _main(host: str, port: int) -> None:
    responder = Responder(host=host, port=port)
    async with trio.open_nursery() as nursery:
        await responder.serve(nursery)
        print("bound", responder.port, flush=True)


if __name__ == "__main__":
    # A resolver to run where the test needs one, e.g. in an "internet" namespace:
    #   ip netns exec NS python -m tests.dns_responder 10.0.3.1 53    (prints "bound PORT")
    import sys
    trio.run(_main, sys.argv[1] if len(sys.argv) > 1 else LOOPBACK,
             int(sys.argv[2]) if len(sys.argv) > 2 else 0)
