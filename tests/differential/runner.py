"""Run the scenario table (scenarios.py) against Linux's socket module or a tunstack Stack.

    ip netns exec NS python -m tests.differential.runner      # Linux: prints JSON {name: outcomes}

`run_table(make_socket, disconnect)` is shared: the tunstack side passes `stack.socket`
and awaits what is awaitable (inspect.isawaitable).  Outcomes are normalised: LOCAL/PEER
addresses (either family) by name, ephemeral ports as "EPHEMERAL", data as its length and
digest, an exception as [type name, errno].

The interface joining LOCAL to PEER differs between the two runs (a veth, a TUN) and so
does its index: `set_interface(name, index)` names it, the symbols "SCOPE" (its index, a
scope id) and "PEERLL%DEV" (a zone by name) stand for it in steps, and a scope id equal to
it comes out as "SCOPE".  The Linux run reads the name from $DIFF_DEV.

Linux's sockets are blocking.  A stream `recv` or an `accept` is first tried with
MSG_DONTWAIT / non-blocking, so an immediate error (ENOTCONN, EINVAL) is the kernel's own;
only when it would block does the runner wait, up to a timeout ("timeout" if nothing
comes) -- the tunstack side waits under trio.move_on_after, with the same outcome."""
from __future__ import annotations

import ctypes
import hashlib
import inspect
import json
import socket
import struct
import sys
from collections.abc import Callable
from typing import Any

import trio

from .scenarios import (
    CLOSED_PORT,
    ECHO_PORT,
    LOCAL,
    LOCAL6,
    LOCALLL,
    PEER,
    PEER6,
    PEERLL,
    PORT1,
    PORT2,
    SCENARIOS,
    Step,
)

ADDRESSES = {"LOCAL": LOCAL, "PEER": PEER, "LOCAL6": LOCAL6, "PEER6": PEER6, "LOCALLL": LOCALLL,
             "PEERLL": PEERLL, "MAPPED_LOCAL": f"::ffff:{LOCAL}", "MAPPED_PEER": f"::ffff:{PEER}"}
SYMBOLS: dict[str, Any] = dict(ADDRESSES)            # + SCOPE and PEERLL%DEV and the %DEV zones (set_interface)
NAMES = {**{text: name for name, text in ADDRESSES.items()}, "0.0.0.0": "ANY", "::": "ANY6"}
PORTS = {ECHO_PORT: "ECHO_PORT", CLOSED_PORT: "CLOSED_PORT", PORT1: "PORT1", PORT2: "PORT2"}
SOCKET_SPECS: dict[str, tuple[int, int, int]] = {
    "dgram": (socket.AF_INET, socket.SOCK_DGRAM, 0), "stream": (socket.AF_INET, socket.SOCK_STREAM, 0),
    "dgram6": (socket.AF_INET6, socket.SOCK_DGRAM, 0), "stream6": (socket.AF_INET6, socket.SOCK_STREAM, 0)}
RECV_TIMEOUT = 2.0
STEP_TIMEOUT = 15.0                  # a tunstack call that never returns is an outcome, not a hang


_scope: dict[str, Any] = {"index": None}


def set_interface(name: str, index: int) -> None:
    """The interface between LOCAL and PEER in this run: its index is "SCOPE"."""
    _scope["index"] = index
    SYMBOLS["SCOPE"] = index
    SYMBOLS["PEERLL%DEV"] = f"{PEERLL}%{name}"
    SYMBOLS["LOCALLL%DEV"] = f"{LOCALLL}%{name}"
    # struct ipv6_mreq (group, then the interface index as a native unsigned int)
    SYMBOLS["MREQ_LL_GROUP"] = socket.inet_pton(socket.AF_INET6, "ff02::1:3") + struct.pack("=I", index)
    SYMBOLS["MREQ_UNKNOWN_IF"] = socket.inet_pton(socket.AF_INET6, "ff02::1:3") + struct.pack("=I", 999)
    SYMBOLS["MREQ_UNICAST"] = socket.inet_pton(socket.AF_INET6, PEER6) + struct.pack("=I", index)


def subst(arg: Any) -> Any:
    if isinstance(arg, str) and arg in SYMBOLS:
        return SYMBOLS[arg]
    if isinstance(arg, tuple):
        return tuple(subst(a) for a in arg)
    if isinstance(arg, list):
        return [subst(a) for a in arg]
    return arg


def normalise(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
        return ["bytes", len(data), data.hex() if len(data) <= 16 else hashlib.sha1(data).hexdigest()[:12]]
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int):
        host, port = value
        if port in PORTS:
            port_name: Any = PORTS[port]
        else:
            port_name = "EPHEMERAL" if 32768 <= port <= 60999 else port
        return [NAMES.get(host, host), port_name]
    if isinstance(value, tuple) and len(value) == 4 and isinstance(value[0], str) \
            and all(isinstance(v, int) for v in value[1:]):
        host, port, flowinfo, scope_id = value        # an AF_INET6 sockaddr
        scope: Any = "SCOPE" if scope_id and scope_id == _scope["index"] else scope_id
        return [*normalise((host, port)), flowinfo, scope]
    if isinstance(value, (tuple, list)):
        return [normalise(v) for v in value]
    return value


def linux_disconnect(sock: socket.socket) -> None:
    """connect() to an AF_UNSPEC sockaddr: CPython's connect() cannot express it."""
    libc = ctypes.CDLL(None, use_errno=True)
    sa = (ctypes.c_ubyte * 16)()          # sin_family = AF_UNSPEC (0), rest zero
    if libc.connect(sock.fileno(), sa, 16) != 0:
        err = ctypes.get_errno()
        raise OSError(err, __import__("os").strerror(err))


async def _recv(sock: Any, op: str, bufsize: int, flags: int = 0, timeout: float = RECV_TIMEOUT) -> Any:
    if isinstance(sock, socket.socket):
        if sock.type == socket.SOCK_STREAM and bufsize >= 0 and not flags & socket.MSG_DONTWAIT \
                and sock.fileno() >= 0:
            try:
                return getattr(sock, op)(bufsize, flags | socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
            with trio.move_on_after(timeout):
                await trio.lowlevel.wait_readable(sock)
            if not _readable(sock):
                return "timeout"
        elif bufsize >= 0 and not flags & socket.MSG_DONTWAIT and sock.fileno() >= 0:
            with trio.move_on_after(timeout):
                await trio.lowlevel.wait_readable(sock)
            if not _readable(sock):
                return "timeout"
        return getattr(sock, op)(bufsize, flags)
    if flags & socket.MSG_DONTWAIT:
        return await getattr(sock, op)(bufsize, flags)
    with trio.move_on_after(timeout) as scope:
        return await getattr(sock, op)(bufsize, flags)
    assert scope.cancelled_caught
    return "timeout"


async def _accept(sock: Any, timeout: float = RECV_TIMEOUT) -> Any:
    """(new socket, address) or "timeout"."""
    if isinstance(sock, socket.socket):
        if sock.fileno() >= 0:
            sock.setblocking(False)
            try:
                return sock.accept()
            except BlockingIOError:
                pass
            finally:
                if sock.fileno() >= 0:
                    sock.setblocking(True)
            with trio.move_on_after(timeout):
                await trio.lowlevel.wait_readable(sock)
            if not _readable(sock):
                return "timeout"
        return sock.accept()
    with trio.move_on_after(timeout) as scope:
        return await sock.accept()
    assert scope.cancelled_caught
    return "timeout"


def _readable(sock: socket.socket) -> bool:
    import select
    p = select.poll()
    p.register(sock, select.POLLIN | select.POLLERR)
    return bool(p.poll(0))


async def run_steps(steps: list[Step], make_socket: Callable[..., Any],
                    disconnect: Callable[[Any], Any]) -> list[Any]:
    socks: dict[str, Any] = {}
    out: list[Any] = []
    try:
        for step in steps:
            op, *rest = step
            try:
                if op == "sleep":
                    await trio.sleep(rest[0])
                    result: Any = None
                elif op == "socket":
                    name, spec = rest
                    family_type_proto: tuple[int, int, int] = SOCKET_SPECS[spec] if isinstance(spec, str) else spec
                    socks[name] = make_socket(*family_type_proto)
                    result = None
                else:
                    name, *raw = rest
                    sock = socks[name]
                    args = [subst(a) for a in raw]
                    if op == "disconnect":
                        result = disconnect(sock)
                    elif op in ("recv", "recvfrom"):
                        result = await _recv(sock, op, *args)
                    elif op == "accept":             # ("accept", listener, name for the new socket)
                        result = await _accept(sock, *args[1:])
                        if result != "timeout":
                            socks[args[0]], result = result
                    else:
                        result = getattr(sock, op)(*args)
                    if inspect.isawaitable(result):
                        with trio.move_on_after(STEP_TIMEOUT) as scope:
                            result = await result
                        if scope.cancelled_caught:
                            result = "hung"
                out.append(["ok"] if result is None else ["ok", normalise(result)])
            except Exception as exc:
                out.append([type(exc).__name__, getattr(exc, "errno", None)])
    finally:
        for s in socks.values():
            s.close()
    return out


async def run_table(make_socket: Callable[..., Any], disconnect: Callable[[Any], Any],
                    names: list[str] | None = None) -> dict[str, list[Any]]:
    results = {}
    for name in names or list(SCENARIOS):
        results[name] = json.loads(json.dumps(await run_steps(SCENARIOS[name], make_socket, disconnect)))
    return results


def main() -> None:
    import os
    dev = os.environ["DIFF_DEV"]
    set_interface(dev, socket.if_nametoindex(dev))
    results = trio.run(run_table, socket.socket, linux_disconnect, sys.argv[1:] or None)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
