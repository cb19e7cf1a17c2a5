"""The host side of a guest's TCP connection (tools/gateway/hosttcp.py): a connected stream,
or the answer a real network would give the guest for each way connect(2) fails."""
from __future__ import annotations

import errno
import socket

import pytest
import trio

from tools.gateway.hosttcp import connect_outcome, finish_connect, refusal_for, start_connect
from tools.gateway.policy import Refuse


async def connect_host(host: str, port: int, timeout: float = 60) -> socket.socket | Refuse:
    """What the gateway does for a held SYN, start to end: a connected socket or a Refuse."""
    sock = start_connect(host, port)
    if isinstance(sock, Refuse):
        return sock
    err = connect_outcome(sock)
    if err is None:
        err = await finish_connect(sock, timeout)
    if err != 0:
        sock.close()
        return refusal_for(err)
    return sock


async def test_connected_socket_to_a_listener() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    sock = await connect_host("127.0.0.1", port)
    assert isinstance(sock, socket.socket) and not sock.getblocking()
    peer = await listeners[0].accept()
    sock.send(b"ping")
    assert await peer.receive_some(10) == b"ping"
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    sock.close()
    for r in (peer, listeners[0]):
        await r.aclose()


def test_a_neighbours_handshake_is_done_when_connect_returns() -> None:
    # the gateway's fast path: no wait in the event loop when connect(2) already completed
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    sock = start_connect("127.0.0.1", lst.getsockname()[1])
    assert isinstance(sock, socket.socket)
    assert connect_outcome(sock) == 0
    sock.close()
    lst.close()


def test_an_immediate_refusal_needs_no_wait() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    sock = start_connect("127.0.0.1", port)
    got = sock if isinstance(sock, Refuse) else connect_outcome(sock)
    assert got in (Refuse("port", "connection refused"), errno.ECONNREFUSED)
    if isinstance(sock, socket.socket):
        sock.close()


async def test_refused_is_an_rst_for_the_guest() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                       # nothing listens there
    got = await connect_host("127.0.0.1", port)
    assert got == Refuse("port", "connection refused")


async def test_timeout_is_silence() -> None:
    # a listener whose accept queue is full drops further SYNs (Linux tcp_v4_syn_recv_sock):
    # the host connect never completes, and the guest is shown nothing
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    fillers = []
    for _ in range(3):                              # non-blocking: they fill the queue and wait
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(lst.getsockname())
        fillers.append(f)
    try:
        got = await connect_host("127.0.0.1", lst.getsockname()[1], timeout=0.5)
        assert isinstance(got, Refuse) and got.how == "drop", got
    finally:
        for f in fillers:
            f.close()
        lst.close()


@pytest.mark.parametrize("err, how", [(errno.ECONNREFUSED, "port"), (errno.EHOSTUNREACH, "host"),
                                      (errno.ENETUNREACH, "net"), (errno.EACCES, "admin"),
                                      (errno.EPERM, "admin"), (errno.ETIMEDOUT, "drop"), (None, "drop")])
def test_refusal_mapping(err: int | None, how: str) -> None:
    assert refusal_for(err).how == how
