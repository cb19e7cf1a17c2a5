"""The socket layer: BSD sockets over the protocol switch, with Linux's errno rules.

`stack.socket(family, type, proto)` (stack/domains.py) finds a protosw entry and attaches
its user requests (`pr.usrreqs`, protocols.contracts.UserRequests, sans-IO: they return
errnos and never wait).  Waiting is done here, with trio: a reader parks until the
protocol calls the socket's upcall.  This layer knows a protocol only by that page.

Semantics (docs/design.md, "Socket semantics"):
  * created unconnected; `connect` binds a permanent destination;
  * datagram `connect` only stores the destination -- no packet leaves;
  * `connect` on an unbound socket first binds an ephemeral port (32768-60999) and
    the route's source address; a failed connect leaves that name bound;
  * `connect(AF_UNSPEC)` (pass the constant) or `disconnect()` dissolves the
    association, forgetting what connect chose;
  * errors are OSError with Linux's errno and message; bad arguments raise what
    CPython's socket module raises;
  * addresses go by the socket's family (stack/sockaddr.py): AF_INET (host, port) pairs,
    AF_INET6 (host, port[, flowinfo[, scope_id]]) tuples taken and 4-tuples given, as
    CPython's; the protocol sees (addr32, port) / (addr128, port, flowinfo, scope_id).
Cancellation: a cancelled `recv`/`recvfrom` consumed nothing.  A cancelled datagram
`connect` cannot happen half-way: it completes before its first checkpoint returns.
"""
from __future__ import annotations

import errno
import socket as _pysocket
from typing import TYPE_CHECKING, Any, Protocol

import trio

from ndd import constants as C
from protocols import sockopt
from protocols.contracts import UserRequests, oserror

from .sockaddr import HostsTable, format_inet, format_inet6, parse_inet, parse_inet6
from .waiters import IDLE, WaitQueue

if TYPE_CHECKING:
    from protocols.contracts import ProtocolSwitch, Protosw


class SocketHost(Protocol):
    """What the socket layer needs of its Stack (stack/stack.py's Stack is one): the clock every
    user request takes, the protocol switch socket(2) searches, the names sockets resolve
    (name -> address text, or a sequence of texts, of either family) and the interface
    index an IPv6 zone names ("fe80::1%eth0")."""

    @property
    def hosts(self) -> HostsTable: ...

    @property
    def protosw(self) -> ProtocolSwitch: ...

    def now(self) -> float: ...

    def if_nametoindex(self, name: str) -> int:
        """The index of the interface called `name`; OSError (or 0) when there is none,
        as socket.if_nametoindex."""
        ...

# The constants, re-exported with the names and values of Python's socket module on
# Linux (`from stack.socket import AF_INET, SOCK_STREAM, SO_REUSEADDR, TCP_NODELAY, ...`),
# plus the AIX names of the ATM socket family (docs/design.md, "AIX NDD names, and where
# tunstack departs").
_CONSTANT_PREFIXES = ("AF_", "SOCK_", "SOL_", "SO_", "IPPROTO_", "IP_", "IPV6_", "TCP_", "MSG_", "SHUT_",
                      "INADDR_", "SOMAXCONN")
globals().update({name: getattr(_pysocket, name) for name in dir(_pysocket)
                  if name.startswith(_CONSTANT_PREFIXES) and isinstance(getattr(_pysocket, name), int)})
AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM = C.AF_NDD, C.SOCK_CONN_DGRAM, C.NDD_PROT_ATM   # AIX, beside Linux's
NDD_PROT_ETHER = C.NDD_PROT_ETHER
IPV6_MTU_DISCOVER, IPV6_RECVERR = sockopt.IPV6_MTU_DISCOVER, sockopt.IPV6_RECVERR   # Linux's, not in Python's

SOCK_TYPE_MASK = 0xF
SOCK_FLAGS = _pysocket.SOCK_NONBLOCK | _pysocket.SOCK_CLOEXEC
KNOWN_TYPES = {_pysocket.SOCK_STREAM, _pysocket.SOCK_DGRAM, _pysocket.SOCK_RAW, _pysocket.SOCK_RDM,
               _pysocket.SOCK_SEQPACKET, C.SOCK_CONN_DGRAM}
# The MSG_* flags as plain ints: `int & socket.MsgFlag` makes a new enum member (~1 us, and
# a send and a recv test several -- 3 % of a request/response round trip, issue 15)
MSG_OOB, MSG_PEEK, MSG_DONTWAIT, MSG_TRUNC, MSG_NOSIGNAL, MSG_DONTROUTE, MSG_FASTOPEN = (
    int(_pysocket.MSG_OOB), int(_pysocket.MSG_PEEK), int(_pysocket.MSG_DONTWAIT), int(_pysocket.MSG_TRUNC),
    int(_pysocket.MSG_NOSIGNAL), int(_pysocket.MSG_DONTROUTE), int(_pysocket.MSG_FASTOPEN))
RECV_FLAGS = MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC
SEND_FLAGS = MSG_DONTWAIT | MSG_NOSIGNAL | MSG_DONTROUTE


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


# options whose value is a struct: the protocol gets the caller's bytes, as the kernel gets
# optval/optlen (struct ipv6_mreq for the IPv6 group joins: 16 address octets, the ifindex)
STRUCT_OPTIONS = {(_pysocket.IPPROTO_IPV6, sockopt.IPV6_JOIN_GROUP), (_pysocket.IPPROTO_IPV6, sockopt.IPV6_LEAVE_GROUP)}


def struct_optval(value: object) -> bytes:
    """A struct option's value as the kernel would see it: a bytes-like object's octets, an int
    as the 4 native-order octets CPython passes for it (a short struct: the protocol's EINVAL)."""
    if isinstance(value, int):
        return _optval(value).to_bytes(4, "little", signed=True)
    try:
        return bytes(memoryview(value).cast("B"))   # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not '{type(value).__name__}'") from None


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
    # slots (a subclass without its own gets a dict): an accepted connection's socket is
    # part of every idle connection's memory (bench: Python heap per idle connection)
    __slots__ = ("_stack", "family", "type", "proto", "_pr", "_ops", "_pcb", "_readers", "_closed", "_shut_rd",
                 "_shut_wr", "_timeout")

    def __init__(self, stack: SocketHost, family: int, type: int, proto: int, pr: Protosw,
                 pcb: Any = None) -> None:
        self._stack = stack
        self.family, self.type, self.proto = family, type, proto
        self._pr = pr
        assert pr.usrreqs is not None
        self._ops: UserRequests = pr.usrreqs
        # given: an accepted connection; else a new control block
        self._pcb = pcb if pcb is not None else self._ops.attach(stack.now())
        self._readers = IDLE                # its own at the first park (_read_queue)
        self._ops.set_upcall(self._pcb, self._wake_readers)   # the protocol wakes our waiters
        self._closed = False
        self._shut_rd = self._shut_wr = False
        self._timeout: float | None = None

    # --- plumbing --------------------------------------------------------------------
    def _read_queue(self) -> WaitQueue:
        """The readers' queue to park on: made at the first park (an idle socket shares IDLE)."""
        queue = self._readers
        if queue is IDLE:
            queue = self._readers = WaitQueue()
        return queue

    def _wake_readers(self) -> None:
        self._readers.unpark_all()

    def _check(self) -> Any:
        if self._closed:
            raise oserror(errno.EBADF)
        return self._pcb

    def _raise(self, err: int) -> None:
        if err:
            raise oserror(err)

    def _addr(self, address: object, what: str) -> tuple[int, ...]:
        """A caller's address as the protocol takes it, by the socket's family (CPython's
        getsockaddrarg): AF_INET6 (addr128, port, flowinfo, scope_id), else (addr32, port)."""
        if self.family == _pysocket.AF_INET6:
            return parse_inet6(address, self._stack.hosts, self._stack.if_nametoindex, what)
        return parse_inet(address, self._stack.hosts, what)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"laddr={self.getsockname()}"
        return f"<tunstack.Socket family={self.family} type={self.type} proto={self.proto} {state}>"

    def fileno(self) -> int:
        return -1   # no kernel file descriptor: wait with wait_readable()/wait_writable()

    # --- naming -----------------------------------------------------------------------
    def bind(self, address: object) -> None:
        pcb = self._check()
        self._raise(self._ops.bind(pcb, self._addr(address, "bind"), self._stack.now()))

    def _format(self, addr: Any) -> Any:
        """A protocol's address as the socket API gives it (CPython's makesockaddr): by the
        socket's family, (text, port, flowinfo, scope_id) or (text, port); families with
        addresses of their own override."""
        if self.family == _pysocket.AF_INET6:
            return format_inet6(*addr)
        return format_inet(*addr)

    def getsockname(self) -> Any:
        return self._format(self._ops.sockaddr(self._check()))

    def getpeername(self) -> Any:
        peer = self._ops.peeraddr(self._check())
        if peer is None:
            raise oserror(errno.ENOTCONN)
        return self._format(peer)

    # --- connection -------------------------------------------------------------------
    def listen(self, backlog: int = 128) -> None:
        pcb = self._check()
        self._raise(self._ops.listen(pcb, backlog, self._stack.now()))

    async def accept(self) -> tuple[Socket, Any]:
        self._check()
        await trio.lowlevel.checkpoint()
        raise oserror(errno.EOPNOTSUPP)   # a datagram socket has no connections to accept

    async def connect(self, address: object) -> None:
        pcb = self._check()
        if address == _pysocket.AF_UNSPEC:
            self._ops.disconnect(pcb, self._stack.now())
        else:
            self._raise(self._ops.connect(pcb, self._addr(address, "connect"), self._stack.now()))
        await trio.lowlevel.checkpoint()

    def disconnect(self) -> None:
        self._ops.disconnect(self._check(), self._stack.now())

    def shutdown(self, how: int) -> None:
        pcb = self._check()
        if how not in (_pysocket.SHUT_RD, _pysocket.SHUT_WR, _pysocket.SHUT_RDWR):
            raise oserror(errno.EINVAL)
        err = self._ops.shutdown(pcb, how, self._stack.now())
        # Linux inet_shutdown marks the halves whatever the state, ENOTCONN included: an
        # unconnected socket shut for writing gets EPIPE once connected, one shut for reading
        # reads b"" rather than waiting
        if how in (_pysocket.SHUT_RD, _pysocket.SHUT_RDWR):
            self._shut_rd = True
            self._readers.unpark_all()
        if how in (_pysocket.SHUT_WR, _pysocket.SHUT_RDWR):
            self._shut_wr = True
        self._raise(err)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ops.detach(self._pcb, self._stack.now())
        self._readers.unpark_all()

    def detach(self) -> Any:
        """socket.detach's counterpart: the socket is closed, its connection is not; the
        protocol control block is returned for the caller to drive through the protocol's
        user requests (`pr.usrreqs`, its own upcall set there) -- the gateway's splices.
        Whoever holds it must `detach` it from the protocol in the end."""
        pcb = self._check()
        self._closed = True
        self._ops.set_upcall(pcb, _nobody)
        self._wake_all()
        return pcb

    def _wake_all(self) -> None:
        self._readers.unpark_all()

    def __enter__(self) -> Socket:
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

    async def _send(self, data: Any, flags: int, dst: Any) -> int:
        pcb = self._check()
        view = memoryview(data).cast("B")
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise oserror(errno.EBADF)
        self._raise(self._ops.take_error(pcb))   # sock_error() comes before the EPIPE check
        # Linux finds EPIPE when it allocates the datagram (sock_alloc_send_pskb), after
        # udp_sendmsg found a destination: with none at all the protocol's EDESTADDRREQ wins
        if self._shut_wr and (dst is not None or self._ops.peeraddr(pcb) is not None):
            raise oserror(errno.EPIPE)
        n = self._ops.send(pcb, view, dst, self._stack.now())
        if n < 0:
            raise oserror(-n)
        return n

    async def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return (await self._recv(bufsize, flags, "recv"))[0]

    async def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
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

    async def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        view = _writable(buffer, "recvfrom_into")
        if nbytes < 0:
            raise ValueError("negative buffersize in recvfrom_into")
        if nbytes > len(view):
            raise ValueError("nbytes is greater than the length of the buffer")
        data, addr = await self._recv(nbytes or len(view), flags, "recvfrom_into")
        view[:len(data)] = data
        return len(data), addr

    async def _recv(self, bufsize: int, flags: int, what: str) -> tuple[bytes, Any]:
        if bufsize < 0:
            raise ValueError(f"negative buffersize in {what}")
        pcb = self._check()
        await trio.lowlevel.checkpoint()
        peek = bool(flags & MSG_PEEK)
        while True:
            if self._closed:
                raise oserror(errno.EBADF)
            self._raise(self._ops.take_error(pcb))
            item = self._ops.recv(pcb, bufsize, peek, self._stack.now())
            if item is not None:
                data, source = item
                # datagram semantics: the rest of a datagram longer than bufsize is lost
                return data[:bufsize], self._source_name(source)
            if self._shut_rd:
                return b"", None
            if flags & MSG_DONTWAIT:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            await self._read_queue().park()

    def _source_name(self, source: Any) -> Any:
        """A received datagram's sender as recvfrom returns it (families override)."""
        return self._format(source)

    async def wait_readable(self) -> None:
        pcb = self._check()
        parked = False
        while not (self._closed or self._shut_rd or self._ops.readable(pcb)):
            await self._read_queue().park()
            parked = True
        if not parked:                  # else parking was the checkpoint
            await trio.lowlevel.checkpoint()

    async def wait_writable(self) -> None:
        self._check()
        await trio.lowlevel.checkpoint()   # datagrams never wait for buffer space here

    # --- options ----------------------------------------------------------------------------
    def setsockopt(self, level: int, optname: int, value: int | bytes) -> None:
        pcb = self._check()
        v: int | bytes = struct_optval(value) if (level, optname) in STRUCT_OPTIONS else _optval(value)
        self._raise(self._ops.setsockopt(pcb, level, optname, v, self._stack.now()))

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        pcb = self._check()
        value = self._getopt(pcb, level, optname)
        if buflen is not None:
            return value.to_bytes(4, "little", signed=True)[:buflen]
        return value

    def _getopt(self, pcb: Any, level: int, optname: int) -> Any:
        """What the socket layer itself knows (SO_ERROR, SO_TYPE, SO_DOMAIN, SO_PROTOCOL),
        then the protocol's options; None from it is ENOPROTOOPT."""
        if level == _pysocket.SOL_SOCKET:
            if optname == _pysocket.SO_ERROR:
                return self._ops.take_error(pcb)
            if optname == _pysocket.SO_TYPE:
                return self.type
            if optname == _pysocket.SO_DOMAIN:
                return self.family
            if optname == _pysocket.SO_PROTOCOL:
                return self.proto
        value = self._ops.getsockopt(pcb, level, optname, self._stack.now())
        if value is None:
            raise oserror(self._unknown_option_errno(level))
        return value

    def _unknown_option_errno(self, level: int) -> int:
        """An AF_INET socket hands a level that is neither the socket's, IP's nor its protocol's
        to ip_getsockopt, which says EOPNOTSUPP (Linux do_ip_getsockopt: level != SOL_IP);
        everything else unknown is ENOPROTOOPT (AF_INET6's ipv6_getsockopt too)."""
        if self.family == _pysocket.AF_INET and level not in (_pysocket.SOL_SOCKET, _pysocket.IPPROTO_IP, self.proto):
            return errno.EOPNOTSUPP
        return errno.ENOPROTOOPT


def _nobody() -> None:
    """The upcall of a detached socket's connection until its new holder sets its own."""
