"""slirp4netns's API socket served by the gateway (tools/gateway/api.py) over a real Unix
socket: add_hostfwd / list_hostfwd / remove_hostfwd wired to the port forwarder, the replies
and errors byte for byte as slirp4netns 1.2 writes them, the socket file's life."""
from __future__ import annotations

import json
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from tools.gateway.api import ApiServer, bind_unix, start_forwarding
from tools.gateway.args import parse_port_spec
from tools.gateway.portfwd import ForwardError, PortForwarder

from .helpers import Pair
from .test_gateway_portfwd import IP_A, MODEL, free_port, gateway, tcp_server


async def ask(path: Path, request: bytes, *, shut: bool = True) -> bytes:
    """One API exchange as rootlesskit makes it: write, shut the write side, read to EOF."""
    with trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        await c.connect(str(path))
        await c.send(request)
        if shut:
            c.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := await c.recv(65536):
            reply += chunk
        return reply


@asynccontextmanager
async def api(path: Path, **kw: float) -> AsyncIterator[tuple[PortForwarder, ApiServer, Pair, trio.Nursery]]:
    async with gateway() as (p, fwd, nursery):
        server = ApiServer(fwd, str(path), **kw)  # type: ignore[arg-type]
        await nursery.start(server.run)
        yield fwd, server, p, nursery


async def test_add_list_remove_and_the_forward_works(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    port = free_port()
    async with api(path) as (fwd, server, p, nursery):
        seen: list[tuple[str, int]] = []
        nursery.start_soon(tcp_server(p, 80, seen))
        add = {"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_addr": "127.0.0.1",
                                                       "host_port": port, "guest_port": 80}}
        with trio.fail_after(30):
            assert await ask(path, json.dumps(add).encode()) == b'{"return":{"id":1}}'
            c = await trio.open_tcp_stream("127.0.0.1", port)
            await c.send_all(b"through the API")
            assert await c.receive_some(100) == b"through the API"
            await c.aclose()
            # the guest address defaults to the model's guest (here the guest Stack, 10.0.0.1)
            assert await ask(path, b'{"execute": "list_hostfwd"}') == (
                b'{"entries":[{"id":1,"proto":"tcp","host_addr":"127.0.0.1","host_port":%d,'
                b'"guest_addr":"%s","guest_port":80}]}' % (port, IP_A.encode()))
            # the same again: slirp4netns's error, and no id spent on it
            assert await ask(path, json.dumps(add).encode()) == \
                b'{"error":{"desc":"bad request: add_hostfwd: slirp_add_hostfwd failed"}}'
            assert await ask(path, b'{"execute":"remove_hostfwd","arguments":{"id":1}}') == b'{"return":{}}'
            assert await ask(path, b'{"execute":"remove_hostfwd","arguments":{"id":1}}') == \
                b'{"error":{"desc":"bad request: remove_hostfwd: bad arguments.id"}}'
            assert await ask(path, b'{"execute":"list_hostfwd"}') == b'{"entries":[]}'
            udp = {"execute": "add_hostfwd", "arguments": {"proto": "udp", "host_port": free_port(socket.SOCK_DGRAM),
                                                           "guest_addr": IP_A, "guest_port": 53}}
            assert await ask(path, json.dumps(udp).encode()) == b'{"return":{"id":2}}'
            assert [e.proto for e in fwd.list()] == ["udp"] and fwd.list()[0].host_addr == "0.0.0.0"
        assert path.exists()
    assert not path.exists()                              # removed at exit
    assert server.stats.requests == 7 and server.stats.errors == 2


@pytest.mark.parametrize("request_, desc", [
    (b"not json", "bad request: cannot parse JSON"),
    (b"[1, 2]", "bad request: json_object() failed"),
    (b'{"arguments": {}}', "bad request: no execute found"),
    (b'{"execute": "reboot"}', "bad request: unknown execute"),
    (b'{"execute": "add_hostfwd", "arguments": {"proto": "sctp", "host_port": 1, "guest_port": 1}}',
     "bad request: add_hostfwd: bad arguments.proto"),
    (b'{"execute": "add_hostfwd", "arguments": {"proto": "tcp", "host_port": 0, "guest_port": 1}}',
     "bad request: add_hostfwd: bad arguments.host_port"),
    # 4096 octets (slirp4netns's buffer, filled: refused), all read, so the close sends no RST
    (b'{"execute": "list_hostfwd", "pad": "' + b"x" * (4096 - 38) + b'"}', "bad request: too large message"),
])
async def test_errors_as_slirp4netns_words_them(tmp_path: Path, request_: bytes, desc: str) -> None:
    path = tmp_path / "api.sock"
    async with api(path) as (fwd, server, _, _n):
        with trio.fail_after(30):
            reply = await ask(path, request_)
    assert json.loads(reply) == {"error": {"desc": desc}} and fwd.list() == []


async def test_a_request_without_eof_is_answered_once_it_parses(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    async with api(path) as _:
        with trio.fail_after(30):
            assert await ask(path, b'{"execute": "list_hostfwd"}', shut=False) == b'{"entries":[]}'


async def test_a_client_that_never_finishes_is_closed_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    async with api(path, request_timeout=0.2) as (fwd, server, _, _n):
        with trio.fail_after(30):
            assert await ask(path, b'{"execute": ', shut=False) == b""
    assert server.stats.timeouts == 1 and server.stats.requests == 0


async def test_busy_beyond_max_clients(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    async with api(path, max_clients=1, request_timeout=30) as (fwd, server, _, _n):
        with trio.fail_after(30), trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as hog:
            await hog.connect(str(path))                    # holds the only slot, says nothing
            while not server._active:
                await trio.sleep(0.01)
            try:
                assert await ask(path, b'{"execute": "list_hostfwd"}') == b""
            except (ConnectionResetError, BrokenPipeError):
                pass                                        # closed with the request unread: an RST
    assert server.stats.busy == 1 and server.stats.requests == 0


async def test_stale_socket_file_is_replaced_a_live_one_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "api.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()                                             # the file stays, nobody listens
    live = bind_unix(path)
    try:
        with pytest.raises(OSError):
            bind_unix(path)                                   # someone answers there: not ours
    finally:
        live.close()
    os.unlink(path)
    Path(path).write_text("not a socket")
    with pytest.raises(OSError):
        bind_unix(path)
    assert Path(path).read_text() == "not a socket"


async def test_default_guest_comes_from_the_model(tmp_path: Path) -> None:
    async with gateway() as (p, fwd, nursery):
        plain = PortForwarder(p.sb, MODEL)
        server = ApiServer(plain, str(tmp_path / "x.sock"))
    assert server.default_guest == "10.0.0.100" == plain.guest_addr


async def test_start_forwarding_binds_the_specs_and_the_api(tmp_path: Path) -> None:
    """What the command starts for -t/-u/-a: every spec's forwards, then the API socket, whose
    list shows them with their ids; a spec that cannot bind is one ForwardError."""
    path = tmp_path / "api.sock"
    tport, uport = free_port(), free_port(socket.SOCK_DGRAM)
    async with gateway() as (p, _fwd, nursery):
        specs = [parse_port_spec("tcp", f"127.0.0.1/{tport}:80"), parse_port_spec("udp", f"127.0.0.1/{uport}:53")]
        fwd, server = await start_forwarding(nursery, p.sb, MODEL, specs, str(path), guest_addr=IP_A,
                                             max_connections=8)
        assert server is not None and fwd.max_connections == 8
        with trio.fail_after(30):
            listed = json.loads(await ask(path, b'{"execute": "list_hostfwd"}'))
        assert [(e["id"], e["proto"], e["host_port"], e["guest_port"]) for e in listed["entries"]] == \
            [(1, "tcp", tport, 80), (2, "udp", uport, 53)]
        with pytest.raises(ForwardError, match="slirp_add_hostfwd failed"):
            await start_forwarding(nursery, p.sb, MODEL, [specs[0]])          # the port is taken now
