"""trio integration: inside `with tunstack_sockets(stack):`, `trio.socket.socket()`
returns sockets of `stack`, and trio's `getaddrinfo` answers from the stack's hosts
table and literal addresses -- so `trio.open_tcp_stream`, `trio.serve_tcp` and
`trio.SocketStream` run over tunstack unchanged.

trio's socket API differs from the stdlib's in a few places (`bind` is async there),
so the factory hands out `TrioSocket`, a thin adapter over `stack.socket.Socket`.

fileno(): trio (SocketStream.send_all(b"") and wait_send_all_might_not_block) and anyio
(its closed checks) read `fileno() == -1` as "closed" and use the fd for nothing else on a
socket of a custom factory.  A TrioSocket therefore answers a stable pseudo-fd above any
real descriptor (PSEUDO_FD_BASE..., beyond Linux's default fs.nr_open of 2**20) while open,
and -1 once closed.  Should one ever reach epoll (trio.lowlevel.wait_readable(sock)), the
kernel answers EBADF instead of waiting on some unrelated file.

Servers that create stdlib sockets themselves and hand them to trio with
`trio.socket.from_stdlib_socket` (hypercorn's trio worker, anyio's create_tcp_listener)
bypass the factory.  Inside the block, for IPv4 stream and datagram sockets, those are
*adopted*: `from_stdlib_socket` returns a stack socket bound (and listening) like the
kernel socket it was given, and a kernel `bind()` to an address only the stack owns,
which would fail with EADDRNOTAVAIL, is retried with IP_FREEBIND.  The kernel socket stays
as a placeholder holding the port, bound but no longer listening (so the host's own
clients are refused, not left hanging in a backlog nobody reads), until the stack socket
closes.  Connected kernel sockets, IPv6 and Unix sockets are left to the kernel.
"""
from __future__ import annotations

import contextlib
import errno
import itertools
import os
import socket as _pysocket
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import trio

from protocols.addr import int_to_ip

from .sockaddr import resolve_host

if TYPE_CHECKING:
    from .socket import Socket
    from .stack import Stack


# Pseudo descriptors: far above RLIMIT_NOFILE and Linux's default fs.nr_open (2**20), below
# INT_MAX, so no real descriptor of this process has one of these numbers.
PSEUDO_FD_BASE = 1 << 30
PSEUDO_FD_SPAN = (1 << 31) - 64 - PSEUDO_FD_BASE
_pseudo_fds = itertools.count()


class TrioSocket(trio.socket.SocketType):
    def __init__(self, sock: Socket, placeholder: _pysocket.socket | None = None) -> None:
        super().__init__()
        self._sock = sock
        self._did_shutdown_wr = False
        self._pseudo_fd = PSEUDO_FD_BASE + next(_pseudo_fds) % PSEUDO_FD_SPAN
        self._placeholder = placeholder   # an adopted kernel socket, closed with us

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
        """-1 once closed (what trio and anyio test), a stable pseudo-fd before."""
        return -1 if self._sock._closed else self._pseudo_fd

    def __repr__(self) -> str:
        return f"<TrioSocket {self._sock!r}>"

    def __enter__(self) -> TrioSocket:
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
        if self._placeholder is not None:
            self._placeholder.close()

    def is_readable(self) -> bool:
        return self._sock._closed or self._sock._ops.readable(self._sock._pcb)

    # asynchronous calls
    async def bind(self, address: Any) -> None:
        self._sock.bind(address)
        await trio.lowlevel.checkpoint()

    async def connect(self, address: Any) -> None:
        await self._sock.connect(address)

    async def accept(self) -> tuple[TrioSocket, Any]:
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
    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def socket(self, family: int | None = None, type: int | None = None, proto: int | None = None) -> TrioSocket:
        return TrioSocket(self.stack.socket(_pysocket.AF_INET if family in (None, -1) else family,
                                            _pysocket.SOCK_STREAM if type in (None, -1) else type,
                                            0 if proto in (None, -1) else proto))


# trio.abc.HostnameResolver's getaddrinfo result, as trio declares it (we only ever answer AF_INET)
_AddrInfo: TypeAlias = (
    tuple[Literal[_pysocket.AddressFamily.AF_INET], _pysocket.SocketKind, int, str, tuple[str, int]]
    | tuple[Literal[_pysocket.AddressFamily.AF_INET6], _pysocket.SocketKind, int, str,
            tuple[str, int, int, int] | tuple[int, bytes]])


class StackResolver(trio.abc.HostnameResolver):
    """Literal IPv4 addresses and the stack's hosts table; nothing leaves the process."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    async def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                          flags: int = 0) -> list[_AddrInfo]:
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

    async def getnameinfo(self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int) -> tuple[str, str]:
        await trio.lowlevel.checkpoint()
        host, port = sockaddr[0], sockaddr[1]
        if not flags & _pysocket.NI_NUMERICHOST:
            host = next((name for name, ip in self.stack.hosts.items() if ip == host), host)
        return host, str(port)


# --- stdlib sockets handed to trio (hypercorn, anyio) ---------------------------------------

IP_FREEBIND = getattr(_pysocket, "IP_FREEBIND", 15)   # <linux/in.h>; bind a non-local address
_ADOPTING: trio.lowlevel.RunVar[Stack | None] = trio.lowlevel.RunVar("tunstack_adopting", default=None)
_original_from_stdlib_socket = trio.socket.from_stdlib_socket
_original_bind = _pysocket.socket.bind
_patch_lock = threading.Lock()
_patch_users = 0


def _adopting_stack() -> Stack | None:
    try:
        return _ADOPTING.get()
    except RuntimeError:   # not inside trio.run (another thread): leave the kernel alone
        return None


def _stack_owns(stack: Stack, host: str) -> bool:
    probe = stack.socket(_pysocket.AF_INET, _pysocket.SOCK_DGRAM)
    try:
        probe.bind((host, 0))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _bind(sock: _pysocket.socket, address: Any) -> None:
    """socket.socket.bind while a block adopts: a kernel bind to an address the stack owns
    (EADDRNOTAVAIL in the kernel) is retried with IP_FREEBIND, for the socket to be adopted."""
    try:
        _original_bind(sock, address)
    except OSError as exc:
        stack = _adopting_stack()
        if (exc.errno != errno.EADDRNOTAVAIL or stack is None or sock.family != _pysocket.AF_INET
                or not _stack_owns(stack, address[0])):
            raise
        sock.setsockopt(_pysocket.IPPROTO_IP, IP_FREEBIND, 1)
        _original_bind(sock, address)


def _stop_listening(kernel: _pysocket.socket, addr: tuple[str, int]) -> None:
    """Swap a listening kernel socket for a bound, not listening one on the same fd: the
    port stays reserved and the caller's getsockname() keeps working, but the host's
    clients get a RST instead of a handshake nobody will ever accept."""
    fresh = _pysocket.socket(kernel.family, kernel.type)
    try:
        fresh.setsockopt(_pysocket.SOL_SOCKET, _pysocket.SO_REUSEADDR, 1)
        fresh.setsockopt(_pysocket.IPPROTO_IP, IP_FREEBIND, 1)
        os.dup2(fresh.fileno(), kernel.fileno())   # closes the listener, same fd number
    finally:
        fresh.close()
    try:
        _original_bind(kernel, addr)
    except OSError:
        pass   # the port went to someone else meanwhile: the placeholder stays unbound


def _adopt(stack: Stack, kernel: _pysocket.socket) -> TrioSocket | None:
    """A stack socket shaped like `kernel` (bound, listening), or None to leave it alone."""
    kind = kernel.type & ~(_pysocket.SOCK_NONBLOCK | _pysocket.SOCK_CLOEXEC)
    if kernel.family != _pysocket.AF_INET or kind not in (_pysocket.SOCK_STREAM, _pysocket.SOCK_DGRAM):
        return None
    try:
        kernel.getpeername()
        return None   # a live kernel connection stays the kernel's
    except OSError:
        pass
    host, port = kernel.getsockname()
    listening = kind == _pysocket.SOCK_STREAM and bool(
        kernel.getsockopt(_pysocket.SOL_SOCKET, _pysocket.SO_ACCEPTCONN))
    sock = stack.socket(_pysocket.AF_INET, kind, 0)
    try:
        for opt in (_pysocket.SO_REUSEADDR, _pysocket.SO_REUSEPORT):
            if kernel.getsockopt(_pysocket.SOL_SOCKET, opt):
                sock.setsockopt(_pysocket.SOL_SOCKET, opt, 1)
        if port:
            try:
                sock.bind((host, port))
            except OSError as exc:   # say where: the caller only sees trio.socket.from_stdlib_socket
                raise OSError(exc.errno, f"{exc.strerror}: {host}:{port} on the stack (a stdlib socket adopted "
                                         "by tunstack_sockets; adopt_stdlib=False leaves them to the kernel)") from None
        if listening:
            sock.listen(_pysocket.SOMAXCONN)   # the caller's backlog cannot be read back
    except BaseException:
        sock.close()
        raise
    if listening:
        _stop_listening(kernel, (host, port))
    return TrioSocket(sock, placeholder=kernel)


def _from_stdlib_socket(sock: Any) -> trio.socket.SocketType:
    """trio.socket.from_stdlib_socket, adopting into the stack of the active block."""
    stack = _adopting_stack()
    if stack is not None:
        if isinstance(sock, TrioSocket):
            return sock
        if hasattr(sock, "_pr") and hasattr(sock, "_ops"):   # already a stack.socket.Socket
            return TrioSocket(sock)
        if isinstance(sock, _pysocket.socket):
            adopted = _adopt(stack, sock)
            if adopted is not None:
                return adopted
    return _original_from_stdlib_socket(sock)


@contextlib.contextmanager
def _stdlib_patches() -> Iterator[None]:
    """Install the two hooks while any block (in any trio run) adopts; they act only in
    runs whose RunVar names a stack, so other runs and threads see the stdlib unchanged."""
    global _patch_users
    with _patch_lock:
        if _patch_users == 0:
            setattr(trio.socket, "from_stdlib_socket", _from_stdlib_socket)  # noqa: B010
            setattr(_pysocket.socket, "bind", _bind)  # noqa: B010
        _patch_users += 1
    try:
        yield
    finally:
        with _patch_lock:
            _patch_users -= 1
            if _patch_users == 0:
                setattr(trio.socket, "from_stdlib_socket", _original_from_stdlib_socket)  # noqa: B010
                setattr(_pysocket.socket, "bind", _original_bind)  # noqa: B010


@contextlib.contextmanager
def tunstack_sockets(stack: Stack, adopt_stdlib: bool = True) -> Iterator[Stack]:
    """Route trio.socket (and everything built on it) to `stack` for this block; with
    `adopt_stdlib`, also the stdlib sockets given to trio.socket.from_stdlib_socket (see
    the module docstring)."""
    old_factory = trio.socket.set_custom_socket_factory(StackSocketFactory(stack))
    old_resolver = trio.socket.set_custom_hostname_resolver(StackResolver(stack))
    token = _ADOPTING.set(stack if adopt_stdlib else None)
    try:
        with _stdlib_patches():
            yield stack
    finally:
        _ADOPTING.reset(token)
        trio.socket.set_custom_socket_factory(old_factory)
        trio.socket.set_custom_hostname_resolver(old_resolver)
