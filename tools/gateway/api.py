"""slirp4netns's API socket (`--api-socket PATH`, `-a`): a Unix stream socket taking one JSON
request per connection -- add_hostfwd, list_hostfwd, remove_hostfwd -- answering it and closing,
as slirp4netns 1.2's api.c does, so rootlesskit's `--port-driver=slirp4netns` and Podman's
port publishing drive tunstack unchanged.  The codec (requests, replies, error texts) is
args.py's; the forwards are portfwd.PortForwarder's.

slirp4netns reads a request with one read(2) of 4096 bytes; a client that writes the request
in pieces is served here too: the request ends at the client's EOF (rootlesskit shuts down its
write side), when what came parses as JSON, or at 4096 bytes (too large, slirp4netns's error).
Bounds: `max_clients` connections served at once (others are closed unanswered, counted), and
`request_timeout` seconds for a client to finish its request (then closed, counted).

The socket file is created at start (a stale one that nobody answers on is replaced; a live
one is an error, as two gateways must not share it) and removed at exit.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import trio

from ndd.counters import Counters

from .args import (
    API_MAX_REQUEST,
    AddHostFwd,
    ApiError,
    ListHostFwd,
    PortForwardSpec,
    RemoveHostFwd,
    format_add_reply,
    format_list_reply,
    format_remove_reply,
    parse_api_request,
    remove_unknown_id,
)
from .policy import AddressModel
from .portfwd import ForwardError, PortForwarder

MAX_CLIENTS = 16
REQUEST_TIMEOUT = 5.0


@dataclass
class ApiStats(Counters):
    requests: int = 0             # answered
    errors: int = 0               # ... with {"error": ...}
    busy: int = 0                 # closed unanswered: max_clients at work already
    timeouts: int = 0             # closed unanswered: no whole request in request_timeout


class ApiServer:
    def __init__(self, forwarder: PortForwarder, path: str, *, default_guest: str | None = None,
                 max_clients: int = MAX_CLIENTS, request_timeout: float = REQUEST_TIMEOUT) -> None:
        self.forwarder = forwarder
        self.path = path
        self.default_guest = default_guest or forwarder.guest_addr
        self.max_clients = max_clients
        self.request_timeout = request_timeout
        self.stats = ApiStats()
        self._active = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen at `path` until cancelled (started once the socket exists), then remove it.
        OSError when the path cannot be taken."""
        listener = bind_unix(self.path)
        inode = os.stat(self.path).st_ino
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while True:
                    conn, _ = await listener.accept()
                    if self._active >= self.max_clients:
                        self.stats.busy += 1
                        conn.close()
                        continue
                    self._active += 1
                    nursery.start_soon(self._serve, conn)
        finally:
            listener.close()
            _unlink_if_ours(self.path, inode)

    async def _serve(self, conn: trio.socket.SocketType) -> None:
        try:
            with conn:
                data = await self._read_request(conn)
                if data is None:
                    self.stats.timeouts += 1
                    return
                reply = await self.answer(data)
                try:
                    await conn.send(reply)
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass                         # the client left before its answer
        finally:
            self._active -= 1

    async def _read_request(self, conn: trio.socket.SocketType) -> bytes | None:
        buf = bytearray()
        with trio.move_on_after(self.request_timeout):
            while len(buf) < API_MAX_REQUEST:
                try:
                    chunk = await conn.recv(API_MAX_REQUEST - len(buf))
                except OSError:
                    return bytes(buf)
                if not chunk or _complete(buf := buf + chunk):
                    return bytes(buf)
            return bytes(buf)                    # 4096 bytes: parse_api_request says too large
        return None

    async def answer(self, data: bytes) -> bytes:
        """The reply to one request, as slirp4netns words it."""
        self.stats.requests += 1
        req = parse_api_request(data, self.default_guest)
        if isinstance(req, ApiError):
            return self._error(req.desc)
        if isinstance(req, AddHostFwd):
            try:
                entry = await self.forwarder.add(req)
            except ForwardError as exc:
                return self._error(exc.desc)
            return format_add_reply(entry.id)
        if isinstance(req, ListHostFwd):
            return format_list_reply(self.forwarder.list())
        assert isinstance(req, RemoveHostFwd)
        if not self.forwarder.remove(req.id):
            return self._error(remove_unknown_id().desc)
        return format_remove_reply()

    def _error(self, desc: str) -> bytes:
        self.stats.errors += 1
        return ApiError(desc).encode()


async def start_forwarding(nursery: trio.Nursery, stack: object, model: AddressModel,
                           specs: Sequence[PortForwardSpec] = (), api_socket: str | None = None,
                           **limits: Any) -> tuple[PortForwarder, ApiServer | None]:
    """What `tunstack gateway -t/-u/-a` starts, in `nursery`: the forwarder with every spec's
    forwards bound (ForwardError, one line, when one cannot be), and the API socket when asked
    for (OSError when its path cannot be taken).  `limits`: PortForwarder's keywords."""
    forwarder = PortForwarder(stack, model, **limits)
    await nursery.start(forwarder.run)
    for spec in specs:
        await forwarder.add_spec(spec)
    server = None
    if api_socket is not None:
        server = ApiServer(forwarder, api_socket)
        await nursery.start(server.run)
    return forwarder, server


def _complete(buf: bytes | bytearray) -> bool:
    try:
        json.loads(buf)
    except ValueError:
        return False
    return True


def bind_unix(path: str) -> trio.socket.SocketType:
    """A listening Unix stream socket at `path`.  A socket file there that refuses connections
    is stale (a gateway that died) and replaced; anything else there is EADDRINUSE."""
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock._sock.bind(path)                # type: ignore[attr-defined]  # a path: no resolving
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or not _stale(path):
                raise
            os.unlink(path)
            sock._sock.bind(path)                # type: ignore[attr-defined]
        sock.listen(MAX_CLIENTS)
    except BaseException:
        sock.close()
        raise
    return sock


def _stale(path: str) -> bool:
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return False
    except OSError:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


def _unlink_if_ours(path: str, inode: int) -> None:
    """Remove the socket file unless someone replaced it meanwhile."""
    try:
        if os.lstat(path).st_ino == inode:
            os.unlink(path)
    except OSError:
        pass


__all__ = ["MAX_CLIENTS", "REQUEST_TIMEOUT", "ApiServer", "ApiStats", "bind_unix", "start_forwarding"]
