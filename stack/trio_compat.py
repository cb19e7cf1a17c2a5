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

Names: trio answers numeric hosts itself (the stdlib getaddrinfo with AI_NUMERICHOST, so
"2001:db8::1" and "fe80::1%3" never reach a custom resolver, and a "%zone" that names an
interface of this machine gets this machine's index); everything else reaches
`StackResolver`: the stack's hosts table (a name's values of either family, in the table's
order for AF_UNSPEC), literals of both families with glibc's rules (EAI_ADDRFAMILY for a
literal of the other family, AI_V4MAPPED, zones named by the stack's interfaces).

Servers that create stdlib sockets themselves and hand them to trio with
`trio.socket.from_stdlib_socket` (hypercorn's trio worker, anyio's create_tcp_listener)
bypass the factory.  Inside the block, for IPv4 and IPv6 stream and datagram sockets (IPv6
when the stack has an AF_INET6 domain), those are *adopted*: `from_stdlib_socket` returns a
stack socket bound (and listening) like the kernel socket it was given, with its
SO_REUSEADDR/SO_REUSEPORT/IPV6_V6ONLY, and a kernel `bind()` to an address only the stack
owns, which would fail with EADDRNOTAVAIL, is retried with IP_FREEBIND (which Linux honours
for both families).  The kernel socket stays as a placeholder holding the port, bound but
no longer listening (so the host's own clients are refused, not left hanging in a backlog
nobody reads), until the stack socket closes.  Connected kernel sockets and Unix sockets
are left to the kernel.
"""
from __future__ import annotations

import contextlib
import errno
import itertools
import os
import socket as _pysocket
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, TypeVar

import trio

from protocols.addr import int_to_ip
from protocols.ipv6.addr import int_to_ip6, is_link_local, is_v4_mapped, v4_mapped

from .sockaddr import (
    HostsTable,
    gai_error,
    host_values,
    split_v6_literal,
    v4_literal,
    v6_literal,
    zone_index,
)
from .socket import SocketHost

if TYPE_CHECKING:
    from .socket import Socket


class SocketStack(SocketHost, Protocol):
    """What this module needs of a Stack: the socket layer's host, and socket(2)."""

    def socket(self, family: int = ..., type: int = ..., proto: int = ...) -> Any: ...


StackT = TypeVar("StackT", bound=SocketStack)


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

    def detach(self) -> Any:
        """The tunstack socket's protocol control block, the socket closed around it
        (stack.socket.Socket.detach); an adopted placeholder is closed."""
        pcb = self._sock.detach()
        if self._placeholder is not None:
            self._placeholder.close()
        return pcb

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
    def __init__(self, stack: SocketStack) -> None:
        self.stack = stack

    def socket(self, family: int | None = None, type: int | None = None, proto: int | None = None) -> TrioSocket:
        return TrioSocket(self.stack.socket(_pysocket.AF_INET if family in (None, -1) else family,
                                            _pysocket.SOCK_STREAM if type in (None, -1) else type,
                                            0 if proto in (None, -1) else proto))


# trio.abc.HostnameResolver's getaddrinfo result, as trio declares it
_AddrInfo: TypeAlias = (
    tuple[Literal[_pysocket.AddressFamily.AF_INET], _pysocket.SocketKind, int, str, tuple[str, int]]
    | tuple[Literal[_pysocket.AddressFamily.AF_INET6], _pysocket.SocketKind, int, str,
            tuple[str, int, int, int] | tuple[int, bytes]])
# an address found: (AF_INET, addr32, 0) or (AF_INET6, addr128, scope_id)
_Found: TypeAlias = tuple[int, int, int]
_V4, _V6 = _pysocket.AF_INET, _pysocket.AF_INET6
_LOOPBACK_V4, _LOOPBACK_V6 = 0x7F000001, 1


class StackResolver(trio.abc.HostnameResolver):
    """Literal addresses and the stack's hosts table; nothing leaves the process.  The answers
    are glibc's getaddrinfo()'s for a host whose /etc/hosts is the table (see the module
    docstring for what trio answers before asking here)."""

    def __init__(self, stack: SocketStack) -> None:
        self.stack = stack

    async def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                          flags: int = 0) -> list[_AddrInfo]:
        await trio.lowlevel.checkpoint()
        if family not in (_pysocket.AF_UNSPEC, _V4, _V6):
            raise gai_error(_pysocket.EAI_FAMILY)
        name = host.decode() if isinstance(host, bytes) else host
        found = self._find(name, family, flags)
        if isinstance(port, bytes):
            port = port.decode()
        if isinstance(port, str):
            port = int(port) if port.isdigit() else _pysocket.getservbyname(port)   # /etc/services only
        port = int(port or 0)
        kinds = [type] if type else [_pysocket.SOCK_STREAM, _pysocket.SOCK_DGRAM]
        canon = name if flags & _pysocket.AI_CANONNAME and name else ""
        out: list[_AddrInfo] = []
        for fam, addr, scope in found:
            for k in kinds:
                kind, number = _pysocket.SocketKind(k), proto or (6 if k == _pysocket.SOCK_STREAM else 17)
                if fam == _V6:
                    out.append((_pysocket.AddressFamily.AF_INET6, kind, number, canon,
                                (int_to_ip6(addr), port, 0, scope)))
                else:
                    out.append((_pysocket.AddressFamily.AF_INET, kind, number, canon, (int_to_ip(addr), port)))
        return out

    def _find(self, name: str | None, family: int, flags: int) -> list[_Found]:
        """The addresses of a host text for `family` (AF_UNSPEC: both), glibc's rules."""
        if not name:   # no host: the wildcard (AI_PASSIVE) or the loopback, of each family asked
            passive = bool(flags & _pysocket.AI_PASSIVE)
            v4: _Found = (_V4, 0 if passive else _LOOPBACK_V4, 0)
            v6: _Found = (_V6, 0 if passive else _LOOPBACK_V6, 0)
            if family != _pysocket.AF_UNSPEC:
                return [v4 if family == _V4 else v6]
            if _V6 not in self.stack.protosw.domains:    # a stack without IPv6 offers none
                return [v4]
            return [v4, v6] if passive else [v6, v4]
        literal = self._literal(name, family, flags)
        if literal is not None:
            return literal
        if flags & _pysocket.AI_NUMERICHOST:
            raise gai_error(_pysocket.EAI_NONAME)
        found = self._names(name, family, flags)
        if not found:
            raise gai_error(_pysocket.EAI_NONAME)
        return found

    def _literal(self, name: str, family: int, flags: int) -> list[_Found] | None:
        """A literal address (gaih_inet's numeric step), or None for a name."""
        v4 = v4_literal(name)
        if v4 is None and family in (_pysocket.AF_UNSPEC, _V4) and name == "<broadcast>":
            v4 = 0xFFFFFFFF    # what this resolver has always answered for it
        if v4 is not None:
            if family != _V6:
                return [(_V4, v4, 0)]
            if flags & _pysocket.AI_V4MAPPED:
                return [(_V6, v4_mapped(v4), 0)]
            raise gai_error(_pysocket.EAI_ADDRFAMILY)
        v6 = split_v6_literal(name)
        if v6 is None:
            return None
        addr, zone = v6
        if family == _V4 and not is_v4_mapped(addr):
            raise gai_error(_pysocket.EAI_ADDRFAMILY)     # glibc checks the family before the zone
        scope = zone_index(addr, zone, self.stack.if_nametoindex)
        return [(_V4, addr & 0xFFFFFFFF, 0)] if family == _V4 else [(_V6, addr, scope)]

    def _names(self, name: str, family: int, flags: int) -> list[_Found]:
        """The hosts table's values of `name` for `family`, in the table's order; AF_INET6 with
        AI_V4MAPPED gives IPv4 values as mapped addresses when there is no IPv6 one (all of
        them with AI_ALL too)."""
        found: list[_Found] = []
        mapped: list[_Found] = []
        for text in host_values(self.stack.hosts, name):
            v4, v6 = v4_literal(text), v6_literal(text)
            if v6 is not None and family != _V4:
                found.append((_V6, v6, 0))
            elif v4 is not None and family != _V6:
                found.append((_V4, v4, 0))
            elif v4 is not None:
                mapped.append((_V6, v4_mapped(v4), 0))
        if family == _V6 and flags & _pysocket.AI_V4MAPPED and (not found or flags & _pysocket.AI_ALL):
            found += mapped
        return found

    async def getnameinfo(self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int) -> tuple[str, str]:
        await trio.lowlevel.checkpoint()
        host, port = sockaddr[0], sockaddr[1]
        name = None if flags & _pysocket.NI_NUMERICHOST else _reverse(self.stack.hosts, host)
        if name is None:
            if flags & _pysocket.NI_NAMEREQD:
                raise gai_error(_pysocket.EAI_NONAME)
            v6 = v6_literal(host)
            scope = sockaddr[3] if len(sockaddr) == 4 else 0
            if v6 is not None and scope and is_link_local(v6):
                host = f"{host}%{scope}"   # glibc names the interface; the index here (NI_NUMERICSCOPE)
            return host, str(port)
        return name, str(port)


def _reverse(hosts: HostsTable, host: str) -> str | None:
    """The first name of the hosts table with `host` (either family's text) among its values."""
    v4, v6 = v4_literal(host), v6_literal(host)
    for name in hosts:
        for text in host_values(hosts, name):
            if text == host or (v4 is not None and v4_literal(text) == v4) or (
                    v6 is not None and v6_literal(text) == v6):
                return name
    return None


# --- stdlib sockets handed to trio (hypercorn, anyio) ---------------------------------------

IP_FREEBIND = getattr(_pysocket, "IP_FREEBIND", 15)   # <linux/in.h>; bind a non-local address
IPV6_V6ONLY = _pysocket.IPV6_V6ONLY
_ADOPTING: trio.lowlevel.RunVar[SocketStack | None] = trio.lowlevel.RunVar("tunstack_adopting", default=None)
_original_from_stdlib_socket = trio.socket.from_stdlib_socket
_original_bind = _pysocket.socket.bind
_patch_lock = threading.Lock()
_patch_users = 0


def _adopting_stack() -> SocketStack | None:
    try:
        return _ADOPTING.get()
    except RuntimeError:   # not inside trio.run (another thread): leave the kernel alone
        return None


def _adoptable_family(stack: SocketStack, family: int) -> bool:
    """IPv4, and IPv6 once the stack has an AF_INET6 domain."""
    return family in (_pysocket.AF_INET, _pysocket.AF_INET6) and family in stack.protosw.domains


def _stack_owns(stack: SocketStack, family: int, address: tuple[Any, ...]) -> bool:
    if not _adoptable_family(stack, family):
        return False
    probe = stack.socket(family, _pysocket.SOCK_DGRAM)
    try:
        probe.bind((address[0], 0, *address[2:]))
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
        if (exc.errno != errno.EADDRNOTAVAIL or stack is None or not isinstance(address, tuple)
                or not _stack_owns(stack, sock.family, address)):
            raise
        sock.setsockopt(_pysocket.IPPROTO_IP, IP_FREEBIND, 1)   # Linux honours it for AF_INET6 too
        _original_bind(sock, address)


def _stop_listening(kernel: _pysocket.socket, addr: tuple[Any, ...]) -> None:
    """Swap a listening kernel socket for a bound, not listening one on the same fd: the
    port stays reserved and the caller's getsockname() keeps working, but the host's
    clients get a RST instead of a handshake nobody will ever accept."""
    fresh = _pysocket.socket(kernel.family, kernel.type)
    try:
        fresh.setsockopt(_pysocket.SOL_SOCKET, _pysocket.SO_REUSEADDR, 1)
        fresh.setsockopt(_pysocket.IPPROTO_IP, IP_FREEBIND, 1)
        if kernel.family == _pysocket.AF_INET6:    # the listener's V6ONLY: hold the ports it held, no more
            v6only = kernel.getsockopt(_pysocket.IPPROTO_IPV6, IPV6_V6ONLY)
            fresh.setsockopt(_pysocket.IPPROTO_IPV6, IPV6_V6ONLY, v6only)
        os.dup2(fresh.fileno(), kernel.fileno())   # closes the listener, same fd number
    finally:
        fresh.close()
    try:
        _original_bind(kernel, addr)
    except OSError:
        pass   # the port went to someone else meanwhile: the placeholder stays unbound


def _adopt(stack: SocketStack, kernel: _pysocket.socket) -> TrioSocket | None:
    """A stack socket shaped like `kernel` (bound, listening), or None to leave it alone."""
    kind = kernel.type & ~(_pysocket.SOCK_NONBLOCK | _pysocket.SOCK_CLOEXEC)
    if not _adoptable_family(stack, kernel.family) or kind not in (_pysocket.SOCK_STREAM, _pysocket.SOCK_DGRAM):
        return None
    try:
        kernel.getpeername()
        return None   # a live kernel connection stays the kernel's
    except OSError:
        pass
    name = kernel.getsockname()      # (host, port) or (host, port, flowinfo, scope_id)
    host, port = name[0], name[1]
    listening = kind == _pysocket.SOCK_STREAM and bool(
        kernel.getsockopt(_pysocket.SOL_SOCKET, _pysocket.SO_ACCEPTCONN))
    sock = stack.socket(kernel.family, kind, 0)
    try:
        for opt in (_pysocket.SO_REUSEADDR, _pysocket.SO_REUSEPORT):
            if kernel.getsockopt(_pysocket.SOL_SOCKET, opt):
                sock.setsockopt(_pysocket.SOL_SOCKET, opt, 1)
        if kernel.family == _pysocket.AF_INET6:    # before bind: V6ONLY is EINVAL on a bound socket
            sock.setsockopt(_pysocket.IPPROTO_IPV6, IPV6_V6ONLY,
                            kernel.getsockopt(_pysocket.IPPROTO_IPV6, IPV6_V6ONLY))
        if port:
            try:
                sock.bind(name)
            except OSError as exc:   # say where: the caller only sees trio.socket.from_stdlib_socket
                where = f"[{host}]:{port}" if kernel.family == _pysocket.AF_INET6 else f"{host}:{port}"
                raise OSError(exc.errno, f"{exc.strerror}: {where} on the stack (a stdlib socket adopted "
                                         "by tunstack_sockets; adopt_stdlib=False leaves them to the kernel)") from None
        if listening:
            sock.listen(_pysocket.SOMAXCONN)   # the caller's backlog cannot be read back
    except BaseException:
        sock.close()
        raise
    if listening:
        _stop_listening(kernel, name)
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
def tunstack_sockets(stack: StackT, adopt_stdlib: bool = True) -> Iterator[StackT]:
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
