"""The socket layer: BSD sockets over the protocol switch, with Linux's errno rules.

`stack.socket(family, type, proto)` finds a protosw entry and attaches its user
requests (`pr.usrreqs`, sans-IO: they return errnos and never wait).  Waiting is
done here, with trio: a reader parks until the protocol's `on_readable` hook fires.

Semantics (DESIGN.md §3):
  * created unconnected; `connect` binds a permanent destination;
  * datagram `connect` only stores the destination -- no packet leaves;
  * `connect` on an unbound socket first binds an ephemeral port (32768-60999) and
    the route's source address; a failed connect leaves that name bound;
  * `connect(AF_UNSPEC)` (pass the constant) or `disconnect()` dissolves the
    association, forgetting what connect chose;
  * errors are OSError with Linux's errno and message; bad arguments raise what
    CPython's socket module raises.
Cancellation: a cancelled `recv`/`recvfrom` consumed nothing.  A cancelled datagram
`connect` cannot happen half-way: it completes before its first checkpoint returns.
"""
from __future__ import annotations

import errno
import socket as _pysocket
from typing import TYPE_CHECKING, Any

import trio

from ndd import constants as C
from .sockaddr import format_inet, parse_inet
from protocols.contracts import oserror

if TYPE_CHECKING:
    from protocols.contracts import Protosw
    from .stack import Stack

# The constants, re-exported with the names and values of Python's socket module on
# Linux (`from stack.socket import AF_INET, SOCK_STREAM, SO_REUSEADDR, TCP_NODELAY, ...`),
# plus the AIX names of the ATM socket family (DESIGN.md §6).
_CONSTANT_PREFIXES = ("AF_", "SOCK_", "SOL_", "SO_", "IPPROTO_", "IP_", "TCP_", "MSG_", "SHUT_", "INADDR_",
                      "SOMAXCONN")
globals().update({name: getattr(_pysocket, name) for name in dir(_pysocket)
                  if name.startswith(_CONSTANT_PREFIXES) and isinstance(getattr(_pysocket, name), int)})
AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM = C.AF_NDD, C.SOCK_CONN_DGRAM, C.NDD_PROT_ATM   # AIX, beside Linux's

SOCK_TYPE_MASK = 0xF
SOCK_FLAGS = _pysocket.SOCK_NONBLOCK | _pysocket.SOCK_CLOEXEC
KNOWN_TYPES = {_pysocket.SOCK_STREAM, _pysocket.SOCK_DGRAM, _pysocket.SOCK_RAW, _pysocket.SOCK_RDM,
               _pysocket.SOCK_SEQPACKET, C.SOCK_CONN_DGRAM}
RECV_FLAGS = _pysocket.MSG_PEEK | _pysocket.MSG_DONTWAIT | _pysocket.MSG_TRUNC
SEND_FLAGS = _pysocket.MSG_DONTWAIT | _pysocket.MSG_NOSIGNAL | _pysocket.MSG_DONTROUTE
MIN_RCVBUF, MIN_SNDBUF, BUF_MAX = 2304, 4608, 212992   # Linux SOCK_MIN_*, net.core.[rw]mem_max


def create(stack: "Stack", family: int, type: int, proto: int = 0) -> "Socket":
    base_type = type & SOCK_TYPE_MASK
    if type & ~SOCK_TYPE_MASK & ~SOCK_FLAGS:   # sys_socket: unknown flag bits are EINVAL
        raise oserror(errno.EINVAL)
    dom = stack.protosw.domains.get(family)
    if dom is None:
        raise oserror(errno.EAFNOSUPPORT)
    if base_type not in KNOWN_TYPES or not 0 <= proto <= 255:
        raise oserror(errno.EINVAL)
    candidates = [p for p in dom.protosw if p.type == base_type and p.usrreqs is not None]
    if not candidates:
        raise oserror(errno.ESOCKTNOSUPPORT)
    pr = next((p for p in candidates if proto in (0, p.protocol)), None)
    if pr is None:
        raise oserror(errno.EPROTONOSUPPORT)
    socket_class = getattr(pr.usrreqs, "socket_class", None)
    if socket_class is not None:   # a family with its own address form (AF_NDD ATM) brings its socket
        return socket_class(stack, family, base_type, pr.protocol, pr)
    if base_type == _pysocket.SOCK_STREAM:
        from .stream import StreamSocket
        return StreamSocket(stack, family, base_type, pr.protocol, pr)
    return Socket(stack, family, base_type, pr.protocol, pr)


def _optval(value: object) -> int:
    """setsockopt's value as CPython takes it: an int (C int range) or a bytes-like buffer."""
    if isinstance(value, int):
        if not -2**31 <= value < 2**31:
            raise OverflowError("signed integer is greater than maximum" if value > 0
                                else "signed integer is less than minimum")
        return value
    try:
        buf = memoryview(value).cast("B")   # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not '{type(value).__name__}'") from None
    if len(buf) < 4:
        raise oserror(errno.EINVAL)   # Linux: an int option shorter than sizeof(int)
    return int.from_bytes(buf[:4], "little", signed=True)


def _bufsize(value: int, maximum: int, minimum: int) -> int:
    """SO_RCVBUF/SO_SNDBUF as sock_setsockopt sets them: min_t(u32, val, [rw]mem_max), so a
    negative int is a huge unsigned one and clamps to the maximum; then doubled for
    overhead and raised to SOCK_MIN_*.  Linux: setsockopt(SO_RCVBUF, -1) reads back 2 * rmem_max."""
    return max(minimum, min(value & 0xFFFFFFFF, maximum) * 2)


def _writable(buffer: Any, what: str) -> memoryview:
    """The buffer of recv_into/recvfrom_into: CPython's "w*" -- checked before anything is received."""
    try:
        view = memoryview(buffer)
    except TypeError:
        view = None
    if view is None or view.readonly:
        raise TypeError(f"{what}() argument 1 must be read-write bytes-like object, not {type(buffer).__name__}")
    return view.cast("B")


class Socket:
    """A stack socket.  Synchronous where Python's socket is (bind, listen, close,
    options); `await` for anything that may wait (connect, send*, recv*, accept)."""

    def __init__(self, stack: "Stack", family: int, type: int, proto: int, pr: "Protosw",
                 pcb: Any = None) -> None:
        self._stack = stack
        self.family, self.type, self.proto = family, type, proto
        self._pr = pr
        self._ops = pr.usrreqs
        self._pcb = pcb if pcb is not None else self._ops.attach()   # given: an accepted connection
        self._readers = trio.lowlevel.ParkingLot()
        self._hook_wakeup()
        self._closed = False
        self._shut_rd = self._shut_wr = False
        self.keepalive = False
        self._timeout: float | None = None

    # --- plumbing --------------------------------------------------------------------
    def _hook_wakeup(self) -> None:
        """Let the protocol wake our waiters (datagram pcbs call on_readable)."""
        self._pcb.on_readable = self._readers.unpark_all

    def _check(self) -> Any:
        if self._closed:
            raise oserror(errno.EBADF)
        return self._pcb

    def _raise(self, err: int) -> None:
        if err:
            raise oserror(err)

    def _addr(self, address: object, what: str) -> tuple[int, int]:
        return parse_inet(address, self._stack.hosts, what)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"laddr={self._name(False)}"
        return f"<tunstack.Socket family={self.family} type={self.type} proto={self.proto} {state}>"

    def fileno(self) -> int:
        return -1   # no kernel file descriptor: wait with wait_readable()/wait_writable()

    # --- naming -----------------------------------------------------------------------
    def bind(self, address: object) -> None:
        pcb = self._check()
        addr, port = self._addr(address, "")
        self._raise(self._ops.bind(pcb, addr, port))

    def _name(self, peer: bool) -> tuple[str, int]:
        pcb = self._pcb
        return format_inet(pcb.faddr, pcb.fport) if peer else format_inet(pcb.laddr, pcb.lport)

    def getsockname(self) -> tuple[str, int]:
        self._check()
        return self._name(False)

    def getpeername(self) -> tuple[str, int]:
        pcb = self._check()
        if not pcb.connected:
            raise oserror(errno.ENOTCONN)
        return self._name(True)

    # --- connection -------------------------------------------------------------------
    def listen(self, backlog: int = 128) -> None:
        pcb = self._check()
        self._raise(self._ops.listen(pcb, backlog))

    async def accept(self) -> tuple["Socket", tuple[str, int]]:
        pcb = self._check()
        await trio.lowlevel.checkpoint()
        self._raise(self._ops.listen(pcb, 0) or errno.EOPNOTSUPP)
        raise oserror(errno.EOPNOTSUPP)   # stream sockets arrive with TCP

    async def connect(self, address: object) -> None:
        pcb = self._check()
        if address == _pysocket.AF_UNSPEC:
            self._ops.disconnect(pcb)
        else:
            addr, port = self._addr(address, "connect")
            self._raise(self._ops.connect(pcb, addr, port, self._stack.now()))
        await trio.lowlevel.checkpoint()

    def disconnect(self) -> None:
        self._ops.disconnect(self._check())

    def shutdown(self, how: int) -> None:
        pcb = self._check()
        if how not in (_pysocket.SHUT_RD, _pysocket.SHUT_WR, _pysocket.SHUT_RDWR):
            raise oserror(errno.EINVAL)
        if not pcb.connected:
            raise oserror(errno.ENOTCONN)
        if how in (_pysocket.SHUT_RD, _pysocket.SHUT_RDWR):
            self._shut_rd = True
            self._readers.unpark_all()
        if how in (_pysocket.SHUT_WR, _pysocket.SHUT_RDWR):
            self._shut_wr = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ops.detach(self._pcb)
        self._readers.unpark_all()

    def __enter__(self) -> "Socket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- data -----------------------------------------------------------------------------
    async def send(self, data: bytes | bytearray | memoryview, flags: int = 0) -> int:
        return await self._send(data, flags, None)

    async def sendto(self, data: bytes | bytearray | memoryview, flags_or_addr: object, addr: object = None) -> int:
        flags, address = (0, flags_or_addr) if addr is None else (flags_or_addr, addr)
        if not isinstance(flags, int):
            raise TypeError(f"'{type(flags).__name__}' object cannot be interpreted as an integer")
        return await self._send(data, flags, self._addr(address, "sendto"))

    async def sendall(self, data: bytes | bytearray | memoryview, flags: int = 0) -> None:
        view = memoryview(data)
        while True:   # do ... while, as CPython: sendall(b"") still sends one empty datagram
            sent = await self.send(view, flags)
            view = view[sent:]
            if not view:
                return

    async def _send(self, data: Any, flags: int, dst: tuple[int, int] | None) -> int:
        pcb = self._check()
        view = memoryview(data).cast("B")
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise oserror(errno.EBADF)
        self._raise(self._ops.take_error(pcb))   # sock_error() comes before the EPIPE check
        if self._shut_wr:
            raise oserror(errno.EPIPE)
        self._raise(self._ops.send(pcb, view, dst, self._stack.now()))
        return len(view)

    async def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return (await self._recv(bufsize, flags, "recv"))[0]

    async def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, tuple[str, int] | None]:
        return await self._recv(bufsize, flags, "recvfrom")

    async def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = _writable(buffer, "recv_into")
        if nbytes < 0:
            raise ValueError("negative buffersize in recv_into")
        if nbytes > len(view):
            raise ValueError("buffer too small for requested bytes")
        data, _ = await self._recv(nbytes or len(view), flags, "recv_into")
        view[:len(data)] = data
        return len(data)

    async def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, tuple[str, int] | None]:
        view = _writable(buffer, "recvfrom_into")
        if nbytes < 0:
            raise ValueError("negative buffersize in recvfrom_into")
        if nbytes > len(view):
            raise ValueError("nbytes is greater than the length of the buffer")
        data, addr = await self._recv(nbytes or len(view), flags, "recvfrom_into")
        view[:len(data)] = data
        return len(data), addr

    async def _recv(self, bufsize: int, flags: int, what: str) -> tuple[bytes, tuple[str, int] | None]:
        if bufsize < 0:
            raise ValueError(f"negative buffersize in {what}")
        pcb = self._check()
        await trio.lowlevel.checkpoint()
        while True:
            if self._closed:
                raise oserror(errno.EBADF)
            self._raise(self._ops.take_error(pcb))
            item = self._ops.recv(pcb, bool(flags & _pysocket.MSG_PEEK))
            if item is not None:
                data, source = item
                # datagram semantics: the rest of a datagram longer than bufsize is lost
                return data[:bufsize], self._source_name(source)
            if self._shut_rd:
                return b"", None
            if flags & _pysocket.MSG_DONTWAIT:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            await self._readers.park()

    def _source_name(self, source: Any) -> Any:
        """A received datagram's sender as recvfrom returns it (families override)."""
        addr, port = source
        return format_inet(addr, port)

    async def wait_readable(self) -> None:
        pcb = self._check()
        while not (self._ops.readable(pcb) or pcb.so_error or self._shut_rd or self._closed):
            await self._readers.park()
        await trio.lowlevel.checkpoint()

    async def wait_writable(self) -> None:
        self._check()
        await trio.lowlevel.checkpoint()   # datagrams never wait for buffer space here

    # --- options ----------------------------------------------------------------------------
    def setsockopt(self, level: int, optname: int, value: int | bytes) -> None:
        pcb = self._check()
        v = _optval(value)
        if level == _pysocket.SOL_SOCKET:
            if optname == _pysocket.SO_REUSEADDR:
                pcb.reuseaddr = bool(v)
            elif optname == _pysocket.SO_REUSEPORT:
                pcb.reuseport = bool(v)
            elif optname == _pysocket.SO_BROADCAST:
                pcb.broadcast = bool(v)
            elif optname == _pysocket.SO_KEEPALIVE:
                self.keepalive = bool(v)
            elif optname == _pysocket.SO_RCVBUF:
                pcb.rcvbuf = _bufsize(v, BUF_MAX, MIN_RCVBUF)     # Linux doubles for overhead
            elif optname == _pysocket.SO_SNDBUF:
                pcb.sndbuf = _bufsize(v, BUF_MAX, MIN_SNDBUF)
            elif optname in (_pysocket.SO_ERROR, _pysocket.SO_TYPE, _pysocket.SO_DOMAIN, _pysocket.SO_PROTOCOL):
                raise oserror(errno.ENOPROTOOPT)
            else:
                raise oserror(errno.ENOPROTOOPT)
            return
        if level == _pysocket.IPPROTO_IP and optname in (_pysocket.IP_TTL, _pysocket.IP_TOS):
            if optname == _pysocket.IP_TTL:
                if not (v == -1 or 1 <= v <= 255):
                    raise oserror(errno.EINVAL)
                pcb.ttl = None if v == -1 else v
            else:
                pcb.tos = v & 0xFF
            return
        self._raise(self._ops.setopt(pcb, level, optname, v))

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        pcb = self._check()
        value = self._getopt(pcb, level, optname)
        if buflen is not None:
            return value.to_bytes(4, "little", signed=True)[:buflen]
        return value

    def _getopt(self, pcb: Any, level: int, optname: int) -> int:
        if level == _pysocket.SOL_SOCKET:
            table = {
                _pysocket.SO_REUSEADDR: lambda: int(pcb.reuseaddr),
                _pysocket.SO_REUSEPORT: lambda: int(pcb.reuseport),
                _pysocket.SO_BROADCAST: lambda: int(pcb.broadcast),
                _pysocket.SO_KEEPALIVE: lambda: int(self.keepalive),
                _pysocket.SO_RCVBUF: lambda: pcb.rcvbuf,
                _pysocket.SO_SNDBUF: lambda: pcb.sndbuf,
                _pysocket.SO_ERROR: lambda: self._ops.take_error(pcb),
                _pysocket.SO_TYPE: lambda: self.type,
                _pysocket.SO_DOMAIN: lambda: self.family,
                _pysocket.SO_PROTOCOL: lambda: self.proto,
            }
            if optname in table:
                return table[optname]()
            raise oserror(errno.ENOPROTOOPT)
        if level == _pysocket.IPPROTO_IP and optname == _pysocket.IP_TTL:
            return pcb.ttl if pcb.ttl is not None else self._stack.config.default_ttl
        if level == _pysocket.IPPROTO_IP and optname == _pysocket.IP_TOS:
            return pcb.tos
        value = self._ops.getopt(pcb, level, optname)
        if value is None:
            raise oserror(errno.ENOPROTOOPT)
        return value
