"""Third-party trio servers over the stack (issue 10 point 12), two stacks on a memory link:
trio's SocketStream on a TrioSocket (fileno() no longer -1 while open), an h11 server on
trio.serve_tcp, hypercorn's trio worker and an anyio listener, both of which build stdlib
sockets and hand them to trio.socket.from_stdlib_socket."""
from __future__ import annotations

import errno
import socket

import pytest
import trio
import trio.testing
from anyio.abc import SocketAttribute

from stack.trio_compat import PSEUDO_FD_BASE, TrioSocket, tunstack_sockets
from tests.third_party_servers import (
    ANYIO_BODY,
    H11_BODY,
    HYPERCORN_BODY,
    body_of,
    h11_hello,
    run_anyio,
    run_hypercorn,
)

from .helpers import IP_B, two_stacks


async def http_get(stack: object, host: str, port: int, path: str = "/") -> tuple[int, bytes]:
    """One GET from `stack`'s own sockets, read to EOF."""
    sock = stack.socket(socket.AF_INET, socket.SOCK_STREAM)   # type: ignore[attr-defined]
    with sock:
        await sock.connect((host, port))
        await sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        got = b""
        while data := await sock.recv(65536):
            got += data
    return body_of(got)


async def test_socket_stream_fileno_is_live_until_closed(autojump_clock: trio.testing.MockClock) -> None:
    """send_all(b"") and wait_send_all_might_not_block() raised ClosedResourceError on a live
    socket while fileno() was always -1."""
    async with two_stacks() as p, trio.open_nursery() as nursery:
        with tunstack_sockets(p.sb):
            listeners = await nursery.start(trio.serve_tcp, h11_hello, 8080)
        with tunstack_sockets(p.sa):
            stream = await trio.open_tcp_stream(IP_B, 8080)
        sock = stream.socket
        assert isinstance(sock, TrioSocket)
        fd = sock.fileno()
        assert fd >= PSEUDO_FD_BASE and sock.fileno() == fd   # stable, beyond any real fd
        assert listeners[0].socket.fileno() not in (-1, fd)
        await stream.send_all(b"")
        await stream.wait_send_all_might_not_block()
        # a pseudo-fd that reaches epoll gets EBADF, never waits on some other file
        with pytest.raises(OSError) as exc:
            await trio.lowlevel.wait_readable(sock)
        assert exc.value.errno == errno.EBADF
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n")
        got = b""
        while data := await stream.receive_some():
            got += data
        assert body_of(got) == (200, H11_BODY)
        await stream.aclose()
        assert sock.fileno() == -1
        with pytest.raises(trio.ClosedResourceError):
            await stream.send_all(b"")
        with pytest.raises(trio.ClosedResourceError):
            await stream.wait_send_all_might_not_block()
        nursery.cancel_scope.cancel()


async def test_hypercorn_trio_worker_over_the_stack(autojump_clock: trio.testing.MockClock) -> None:
    """hypercorn binds a stdlib socket to the stack's address (IP_FREEBIND in the kernel),
    listens and wraps it: the stack adopts it, and the ASGI app answers over the stack."""
    async with two_stacks() as p:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            with tunstack_sockets(p.sb):
                binds = await nursery.start(run_hypercorn, f"{IP_B}:8000", stop)
            assert binds == [f"http://{IP_B}:8000"]
            for _ in range(3):
                assert await http_get(p.sa, IP_B, 8000) == (200, HYPERCORN_BODY)
            stop.set()


async def test_anyio_listener_over_the_stack(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as p, trio.open_nursery() as nursery:
        with tunstack_sockets(p.sb):
            listener = await nursery.start(run_anyio, IP_B, 8001)
        assert listener.extra(SocketAttribute.local_address) == (IP_B, 8001)
        for _ in range(3):
            assert await http_get(p.sa, IP_B, 8001) == (200, ANYIO_BODY)
        nursery.cancel_scope.cancel()


async def test_adopted_wildcard_listener_leaves_no_kernel_listener(autojump_clock: trio.testing.MockClock) -> None:
    """anyio on 0.0.0.0 with an ephemeral port: the kernel picks the port, the stack listens
    on it, and the kernel socket left behind holds the port without listening: a kernel
    client gets ECONNREFUSED, not a handshake nobody accepts."""
    async with two_stacks() as p, trio.open_nursery() as nursery:
        with tunstack_sockets(p.sb):
            listener = await nursery.start(run_anyio, "0.0.0.0", 0)
        port = listener.extra(SocketAttribute.local_port)
        assert port > 0
        assert await http_get(p.sa, IP_B, port) == (200, ANYIO_BODY)
        probe = socket.socket()
        try:
            assert probe.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED
        finally:
            probe.close()
        nursery.cancel_scope.cancel()
    # the stack socket closed, so did the kernel placeholder: the port is free again
    again = socket.socket()
    try:
        again.bind(("0.0.0.0", port))
    finally:
        again.close()


async def test_outside_the_block_stdlib_sockets_stay_the_kernels(autojump_clock: trio.testing.MockClock) -> None:
    kernel = socket.socket()
    try:
        with pytest.raises(OSError) as exc:
            kernel.bind(("10.0.0.2", 0))   # no block active: the stdlib bind is untouched
        assert exc.value.errno == errno.EADDRNOTAVAIL
        wrapped = trio.socket.from_stdlib_socket(kernel)
        assert not isinstance(wrapped, TrioSocket)
    finally:
        kernel.close()
    async with two_stacks() as p:
        with tunstack_sockets(p.sb, adopt_stdlib=False):
            kernel = socket.socket()
            try:
                assert not isinstance(trio.socket.from_stdlib_socket(kernel), TrioSocket)
            finally:
                kernel.close()


async def test_adopting_an_address_the_stack_lacks_says_so(autojump_clock: trio.testing.MockClock) -> None:
    """A kernel socket bound where the stack has no address cannot be adopted: the error
    names the address and the way out, and the kernel socket is left as it was."""
    async with two_stacks() as p:
        kernel = socket.socket()
        try:
            kernel.bind(("0.0.0.0", 0))
            port = kernel.getsockname()[1]
            kernel.close()
            kernel = socket.socket()
            kernel.setsockopt(socket.IPPROTO_IP, 15, 1)   # IP_FREEBIND: an address nobody has
            kernel.bind(("192.0.2.7", port))
            kernel.listen()
            with tunstack_sockets(p.sb), pytest.raises(OSError) as exc:
                trio.socket.from_stdlib_socket(kernel)
            assert exc.value.errno == errno.EADDRNOTAVAIL
            assert "192.0.2.7" in str(exc.value) and "adopt_stdlib=False" in str(exc.value)
            assert kernel.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        finally:
            kernel.close()
