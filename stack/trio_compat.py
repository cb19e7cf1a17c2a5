"""trio integration: inside `with tunstack_sockets(stack):`, `trio.socket.socket()`
returns sockets of `stack`, and trio's `getaddrinfo` answers from the stack's hosts
table and literal addresses -- so `trio.open_tcp_stream`, `trio.serve_tcp` and
`trio.SocketStream` run over tunstack unchanged (once TCP exists; datagrams now).

trio's socket API differs from the stdlib's in a few places (`bind` is async there),
so the factory hands out `TrioSocket`, a thin adapter over `stack.socket.Socket`.
"""
from __future__ import annotations

import contextlib
import socket as _pysocket
from typing import TYPE_CHECKING, Any, Iterator

import trio

from .addr import int_to_ip
from .sockaddr import resolve_host

if TYPE_CHECKING:
    from .socket import Socket
    from .stack import Stack


class TrioSocket(trio.socket.SocketType):
    def __init__(self, sock: "Socket") -> None:
        super().__init__()
        self._sock = sock
        self._did_shutdown_wr = False

    # identity
    @property
    def family(self) -> Any:
        return _pysocket.AddressFamily(self._sock.family)

    @property
    def type(self) -> Any:
        return _pysocket.SocketKind(self._sock.type)

    @property
    def proto(self) -> int:
        return self._sock.proto

    @property
    def did_shutdown_SHUT_WR(self) -> bool:
        return self._did_shutdown_wr

    def fileno(self) -> int:
        return -1

    def __repr__(self) -> str:
        return f"<TrioSocket {self._sock!r}>"

    def __enter__(self) -> "TrioSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # synchronous calls
    def getsockname(self) -> Any:
        return self._sock.getsockname()

    def getpeername(self) -> Any:
        return self._sock.getpeername()

    def setsockopt(self, level: int, optname: int, value: Any, optlen: int | None = None) -> None:
        self._sock.setsockopt(level, optname, value)

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        return self._sock.getsockopt(level, optname, buflen)

    def listen(self, backlog: int = min(_pysocket.SOMAXCONN, 128)) -> None:
        self._sock.listen(backlog)

    def shutdown(self, flag: int) -> None:
        self._sock.shutdown(flag)
        if flag in (_pysocket.SHUT_WR, _pysocket.SHUT_RDWR):
            self._did_shutdown_wr = True

    def close(self) -> None:
        self._sock.close()

    def is_readable(self) -> bool:
        pcb = self._sock._pcb
        return self._sock._closed or bool(self._sock._ops.readable(pcb)) or bool(pcb.so_error)

    # asynchronous calls
    async def bind(self, address: Any) -> None:
        self._sock.bind(address)
        await trio.lowlevel.checkpoint()

    async def connect(self, address: Any) -> None:
        await self._sock.connect(address)

    async def accept(self) -> tuple["TrioSocket", Any]:
        sock, addr = await self._sock.accept()
        return TrioSocket(sock), addr

    async def wait_writable(self) -> None:
        await self._sock.wait_writable()

    async def send(self, data: Any, flags: int = 0) -> int:
        return await self._sock.send(data, flags)

    async def sendto(self, data: Any, *args: Any) -> int:
        return await self._sock.sendto(data, *args)

    async def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return await self._sock.recv(bufsize, flags)

    async def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        return await self._sock.recv_into(buffer, nbytes, flags)

    async def recvfrom(self, bufsize: int, flags: int = 0) -> Any:
        return await self._sock.recvfrom(bufsize, flags)

    async def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> Any:
        return await self._sock.recvfrom_into(buffer, nbytes, flags)


class StackSocketFactory(trio.abc.SocketFactory):
    def __init__(self, stack: "Stack") -> None:
        self.stack = stack

    def socket(self, family: int | None = None, type: int | None = None, proto: int | None = None) -> TrioSocket:
        return TrioSocket(self.stack.socket(_pysocket.AF_INET if family in (None, -1) else family,
                                            _pysocket.SOCK_STREAM if type in (None, -1) else type,
                                            0 if proto in (None, -1) else proto))


class StackResolver(trio.abc.HostnameResolver):
    """Literal IPv4 addresses and the stack's hosts table; nothing leaves the process."""

    def __init__(self, stack: "Stack") -> None:
        self.stack = stack

    async def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                          flags: int = 0) -> list[tuple[Any, Any, int, str, tuple[str, int]]]:
        await trio.lowlevel.checkpoint()
        if family not in (0, _pysocket.AF_INET):
            raise _pysocket.gaierror(_pysocket.EAI_FAMILY, "ai_family not supported")
        name = host.decode() if isinstance(host, bytes) else (host or ("0.0.0.0" if flags & _pysocket.AI_PASSIVE
                                                                        else "127.0.0.1"))
        addr = resolve_host(name, self.stack.hosts)
        if isinstance(port, bytes):
            port = port.decode()
        if isinstance(port, str):
            port = int(port) if port.isdigit() else _pysocket.getservbyname(port)   # /etc/services only
        port = int(port or 0)
        kinds = [type] if type else [_pysocket.SOCK_STREAM, _pysocket.SOCK_DGRAM]
        return [(_pysocket.AF_INET, _pysocket.SocketKind(k), proto or (6 if k == _pysocket.SOCK_STREAM else 17),
                 name if flags & _pysocket.AI_CANONNAME else "", (int_to_ip(addr), port)) for k in kinds]

    async def getnameinfo(self, sockaddr: tuple[str, int], flags: int) -> tuple[str, str]:
        await trio.lowlevel.checkpoint()
        host, port = sockaddr[0], sockaddr[1]
        if not flags & _pysocket.NI_NUMERICHOST:
            host = next((name for name, ip in self.stack.hosts.items() if ip == host), host)
        return host, str(port)


@contextlib.contextmanager
def tunstack_sockets(stack: "Stack") -> Iterator["Stack"]:
    """Route trio.socket (and everything built on it) to `stack` for this block."""
    old_factory = trio.socket.set_custom_socket_factory(StackSocketFactory(stack))
    old_resolver = trio.socket.set_custom_hostname_resolver(StackResolver(stack))
    try:
        yield stack
    finally:
        trio.socket.set_custom_socket_factory(old_factory)
        trio.socket.set_custom_hostname_resolver(old_resolver)
