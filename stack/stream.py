"""Stream sockets (SOCK_STREAM): the waiting half of TCP's user interface.

Semantics follow Linux (docs/design.md, "Socket semantics"):
  * `connect` builds the connection: it returns once ESTABLISHED, or raises
    ECONNREFUSED (RST), ETIMEDOUT (SYN retries), EHOSTUNREACH/ENETUNREACH (ICMP or
    routing).  An unbound socket is auto-bound first, and keeps that name if it fails.
  * `send` waits while the send buffer is full (backpressure); `recv` returns b"" at
    EOF; a reset surfaces once as ECONNRESET, then EPIPE on send.
  * `close` with unread data sends RST (RFC 2525); otherwise FIN, and the connection
    finishes in the background (an orphan, as in the kernel).
Cancellation: a cancelled `recv`/`accept`/`send` consumed or queued nothing beyond
what it returned; a cancelled `connect` abandons the handshake -- the socket is left
unconnected with its (auto-)bound name, and may connect again.

Wake-ups (issue 15: a task switch costs more than the TCP work of a 1-byte round trip):
  * readers and writers park apart, as BSD's sorwakeup/sowwakeup: the protocol's one upcall
    per change is filtered here -- writers wake once the socket is writable (Linux
    sk_stream_write_space), not on every ACK; readers (recv, accept, connect) when there is
    something to read, an error, or a new connection state -- not on the ACKs of their own
    data;
  * every operation is a trio checkpoint, and one only (but connect, which also yields
    once after its handshake): a cancel point first, then either the park (the schedule
    point of an operation that waits) or one cancel_shielded_checkpoint after the work;
  * a `send` right after a wait of the same task on this socket (the echo pattern: recv
    woke it, send answers; sendall's next chunk after a send that waited for room) skips
    that trailing schedule point -- the wait was the task's schedule point, and the
    socket spares at most one per wait, so no loop of sends can starve other tasks.
"""
from __future__ import annotations

import errno
import socket as _pysocket
from typing import TYPE_CHECKING, Any, cast

import trio

from protocols.contracts import (
    SS_CANTRCVMORE,
    SS_IN_CONNECTION,
    SS_ISACCEPTING,
    SS_ISCONNECTED,
    SS_ISCONNECTING,
    SS_ISDISCONNECTING,
    oserror,
)

from .socket import (
    MSG_DONTWAIT,
    MSG_FASTOPEN,
    MSG_OOB,
    MSG_PEEK,
    STRUCT_OPTIONS,
    Socket,
    SocketHost,
    _optval,
    struct_optval,
)
from .waiters import IDLE, WaitQueue

if TYPE_CHECKING:
    from protocols.contracts import Protosw, StreamUserRequests

_EAGAIN = -errno.EAGAIN
# options whose value is a struct, passed to the protocol as the caller's bytes
_STRUCT_OPTIONS = ((_pysocket.IPPROTO_TCP, _pysocket.TCP_CONGESTION), (_pysocket.SOL_SOCKET, _pysocket.SO_LINGER))


def _never(pcb: Any) -> bool:
    return False


def _no_upcall() -> None:
    """The upcall of a closed socket: a connection living on as an orphan wakes nobody
    (and keeps no reference to the socket)."""


_CMSGHDR_LEN = 16                       # struct cmsghdr on LP64: size_t len, int level, int type
MSG_CTRUNC = int(_pysocket.MSG_CTRUNC)


def _fit_cmsgs(cmsgs: list[tuple[int, int, bytes]], space: int) -> tuple[list[tuple[int, int, bytes]], int]:
    """The control messages that fit in a `space`-octet msg_control, and the msg_flags: Linux
    put_cmsg copies a header and what fits of the data, or nothing when not even the header
    fits, and flags either cut MSG_CTRUNC; each message takes CMSG_SPACE (8-aligned)."""
    fitted: list[tuple[int, int, bytes]] = []
    flags = 0
    for level, kind, data in cmsgs:
        if space < _CMSGHDR_LEN:
            return fitted, MSG_CTRUNC
        room = space - _CMSGHDR_LEN
        if room < len(data):
            flags = MSG_CTRUNC
        fitted.append((level, kind, data[:room]))
        space -= (_CMSGHDR_LEN + len(data) + 7) & ~7
    return fitted, flags


class StreamSocket(Socket):
    __slots__ = ("_ever_connected", "_connect_done", "_stream_ops", "_writers", "_seen_state", "_woken")

    def __init__(self, stack: SocketHost, family: int, type: int, proto: int, pr: Protosw,
                 pcb: Any = None) -> None:
        super().__init__(stack, family, type, proto, pr, pcb)
        # Linux's sock->state SS_CONNECTED: once connected, a socket stays "connected" for
        # connect() (EISCONN) and recv() (EOF, not ENOTCONN) even after the connection ends
        self._ever_connected = pcb is not None
        # Linux's SS_CONNECTED proper: a connect (or a Fast Open send) that returned with the
        # connection made, or an accepted socket -- not one that completed in the background
        # after EINPROGRESS (SS_CONNECTING).  Only sendto(MSG_FASTOPEN) tells them apart:
        # EISCONN for the first, a plain send for the second (__inet_stream_connect)
        self._connect_done = pcb is not None
        self._stream_ops = cast("StreamUserRequests", self._ops)   # urgent data, ioctls
        # BSD's so_snd waiters apart from so_rcv's (`_readers`: recv, accept, connect)
        self._writers = IDLE                # its own at the first park (_write_queue)
        # the so_state the parked readers waited under: another one wakes them (None: wake
        # at the next upcall; _park_reader)
        self._seen_state: int | None = None
        # the task whose wait on this socket (recv, send) ended last, until its next send:
        # that send needs no schedule point of its own (the wait was one)
        self._woken: trio.lowlevel.Task | None = None
        self._ops.set_upcall(self._pcb, self)      # __call__: the upcall with no bound method to keep

    def _write_queue(self) -> WaitQueue:
        """The writers' queue to park on: made at the first park (an idle socket shares IDLE)."""
        queue = self._writers
        if queue is IDLE:
            queue = self._writers = WaitQueue()
        return queue

    def _upcall(self) -> None:
        """The protocol's so_upcall (any change: data, space, state), split by who can
        proceed: sorwakeup for readers, sowwakeup for writers (module docstring)."""
        readers = self._readers                      # (once per segment: attribute tests only)
        if readers.waiting:
            # readable first: data arriving is the common upcall, and it needs no so_state
            # (unpark_all empties the lot, so the next reader to park records its state)
            ops, pcb = self._ops, self._pcb
            if ops.readable(pcb) or ops.state(pcb) != self._seen_state:
                readers.unpark_all()
        writers = self._writers
        if writers.waiting and self._ops.writable(self._pcb):
            writers.unpark_all()

    # The protocol's upcall is the socket itself (set_upcall above): a bound method would be
    # one more object per connection, 64 bytes of every idle one (issue 15: the idle heap).
    __call__ = _upcall

    async def _park_reader(self, state: int | None = None) -> None:
        """Wait as a reader.  The upcall wakes readers on a so_state other than the one they
        waited under: the first sets it; one parking beside others under another state
        (the state moved with no upcall) has the next upcall wake them all.  `state`: the
        so_state the caller has just read, if it has."""
        if state is None:
            state = self._ops.state(self._pcb)
        if not self._readers.waiting:
            self._seen_state = state
        elif state != self._seen_state:
            self._seen_state = None
        await self._read_queue().park()

    def _wake_all(self) -> None:
        """close, shutdown: every waiter looks again."""
        self._readers.unpark_all()
        self._writers.unpark_all()

    def close(self) -> None:
        if self._closed:
            return
        super().close()
        self._writers.unpark_all()
        self._woken = None
        self._ops.set_upcall(self._pcb, _no_upcall)

    # --- connection -------------------------------------------------------------------
    async def accept(self) -> tuple[StreamSocket, tuple[Any, ...]]:
        pcb = self._check()
        await trio.lowlevel.checkpoint_if_cancelled()
        accepted = self._take_child(pcb)
        if accepted is not None:                # one was ready: yield once after taking it
            await trio.lowlevel.cancel_shielded_checkpoint()
            return accepted
        while True:                             # parking is the schedule point
            await self._park_reader()
            accepted = self._take_child(pcb)
            if accepted is not None:
                return accepted

    def accept_nowait(self) -> tuple[StreamSocket, tuple[Any, ...]]:
        """accept(2) on a non-blocking socket: the next queued connection at once, or
        BlockingIOError (EAGAIN) when there is none.  A server woken by `accept()` drains
        the rest of the queue with it -- one wake-up for a whole burst, as asyncio's accept
        loop takes up to `backlog` connections per readiness event."""
        accepted = self._take_child(self._check())
        if accepted is None:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return accepted

    def _take_child(self, pcb: Any) -> tuple[StreamSocket, tuple[Any, ...]] | None:
        if self._closed:
            raise oserror(errno.EBADF)
        if not self._ops.state(pcb) & SS_ISACCEPTING:
            raise oserror(errno.EINVAL)
        accepted = self._ops.accept(pcb, self._stack.now())
        if accepted is None:
            return None
        child, peer = accepted
        sock = StreamSocket(self._stack, self.family, self.type, self.proto, self._pr, child)
        return sock, self._format(peer)

    async def connect(self, address: object) -> None:
        pcb = self._check()
        addr = self._addr(address, "connect")
        ops = self._ops
        # the protocol answers EISCONN (listening, connected) and EALREADY (connecting) first;
        # a socket that was connected once is EISCONN even when its connection has ended
        if self._ever_connected and not ops.state(pcb) & (SS_ISACCEPTING | SS_ISCONNECTING):
            raise oserror(errno.EISCONN)
        self._raise(ops.connect(pcb, addr, self._stack.now()))
        self._ever_connected = True
        try:
            while ops.state(pcb) & SS_ISCONNECTING:
                await self._park_reader()
        except BaseException:
            if ops.state(pcb) & SS_ISCONNECTING:
                ops.abandon_connect(pcb, self._stack.now())
                self._ever_connected = False
            raise
        if not ops.state(pcb) & (SS_ISCONNECTED | SS_ISDISCONNECTING):   # no connection came of it
            self._ever_connected = False
            self._shut_rd = self._shut_wr = False     # Linux: tcp_disconnect clears sk_shutdown
            err = ops.take_error(pcb)
            ops.abandon_connect(pcb, self._stack.now())
            raise oserror(err or errno.ECONNREFUSED)
        # TCP_FASTOPEN_CONNECT's deferred connect is SS_CONNECTING until its first write
        self._connect_done = not getattr(ops, "fastopen_deferred", _never)(pcb)
        # once per connection: the yield after the handshake stays (the accepting side
        # runs before the caller goes on, as it always has)
        await trio.lowlevel.checkpoint()

    def disconnect(self) -> None:
        raise oserror(errno.EOPNOTSUPP)

    def shutdown(self, how: int) -> None:
        pcb = self._check()
        if how not in (_pysocket.SHUT_RD, _pysocket.SHUT_WR, _pysocket.SHUT_RDWR):
            raise oserror(errno.EINVAL)
        # the protocol decides (Linux inet_shutdown: ENOTCONN, a listener stops, a connect is
        # aborted); the socket's halves are marked while a connection remains -- and on a
        # CLOSE socket too, which is ENOTCONN yet keeps them shut for a later connection
        # (sk_shutdown |= how: EPIPE on send, b"" from an empty recv) until a failed connect
        # clears them (tcp_disconnect)
        err = self._ops.shutdown(pcb, how, self._stack.now())
        if err == errno.ENOTCONN or self._ops.state(pcb) & SS_IN_CONNECTION:
            if how in (_pysocket.SHUT_RD, _pysocket.SHUT_RDWR):
                self._shut_rd = True
            if how in (_pysocket.SHUT_WR, _pysocket.SHUT_RDWR):
                self._shut_wr = True
        if how != _pysocket.SHUT_WR:
            self._wake_all()                # readers see EOF; a listener's accept() sees EINVAL
        else:
            self._writers.unpark_all()      # a writer waiting for room sees EPIPE
        self._raise(err)

    # --- data ------------------------------------------------------------------------------
    async def send(self, data: bytes | bytearray | memoryview, flags: int = 0) -> int:
        pcb = self._check()
        view = memoryview(data).cast("B")
        # as recv: raise if cancelled, then send first and yield after -- the segment is on
        # its way while other tasks run (parking is the checkpoint on the slow path)
        await trio.lowlevel.checkpoint_if_cancelled()
        n, parked = await self._send_wait(pcb, view, flags)
        if parked:
            self._woken = trio.lowlevel.current_task()     # sendall's next send may skip a yield
        elif self._woken is not None and self._woken is trio.lowlevel.current_task():
            self._woken = None          # right after this task's wait: that was its schedule point
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return n

    async def _send_wait(self, pcb: Any, view: memoryview, flags: int) -> tuple[int, bool]:
        parked = False
        ops = self._ops
        while True:
            if self._closed:
                raise oserror(errno.EBADF)
            self._raise(ops.take_error(pcb))
            if self._shut_wr:
                raise oserror(errno.EPIPE)
            if flags & MSG_OOB:
                n = self._stream_ops.send_oob(pcb, view, self._stack.now())
            else:
                n = ops.send(pcb, view, None, self._stack.now(), flags)
            if n >= 0:
                return n, parked
            if n != _EAGAIN:
                if n == -errno.EINPROGRESS:      # the first write after TCP_FASTOPEN_CONNECT
                    return await self._send_fastopen(pcb, view, flags, None), True
                raise oserror(-n)
            if flags & MSG_DONTWAIT:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            # Linux sk_stream_wait_memory: woken by sk_stream_write_space only once the socket
            # is writeable (a third of the buffer free), not on every ACK (issue 14, point 9):
            # the upcall wakes `_writers` only then, close and shutdown always
            await self._write_queue().park()
            parked = True

    async def sendall(self, data: bytes | bytearray | memoryview, flags: int = 0) -> None:
        view = memoryview(data).cast("B")
        while view:
            sent = await self.send(view, flags)
            view = view[sent:]

    async def sendto(self, data: bytes | bytearray | memoryview, flags_or_addr: object, addr: object = None) -> int:
        # Linux tcp_sendmsg ignores the address of a stream socket: send() semantics
        # (EPIPE unless connected).  The address is still parsed, as CPython does.
        flags, address = (0, flags_or_addr) if addr is None else (flags_or_addr, addr)
        if not isinstance(flags, int):
            raise TypeError(f"'{type(flags).__name__}' object cannot be interpreted as an integer")
        pcb = self._check()
        addr = self._addr(address, "sendto")
        if flags & MSG_FASTOPEN:
            await trio.lowlevel.checkpoint_if_cancelled()
            return await self._send_fastopen(pcb, memoryview(data).cast("B"), flags, addr)
        return await self.send(data, flags)

    async def _send_fastopen(self, pcb: Any, view: memoryview, flags: int, addr: tuple[int, ...] | None) -> int:
        """TCP Fast Open (RFC 7413) as Linux's tcp_sendmsg_fastopen: sendto(MSG_FASTOPEN) on an
        unconnected socket (`addr`), or the first write after TCP_FASTOPEN_CONNECT -- connect,
        the SYN carrying what it can of the data.  Non-blocking, that count is the result
        (EINPROGRESS when the SYN carries none: a cookie request); blocking, the call waits
        for the handshake (inet_wait_for_connect) and sends the rest as send() would."""
        ops = self._ops
        fastopen = getattr(ops, "fastopen_send", None)      # TCP's (protocols/tcp/usrreq.py)
        if fastopen is None:
            raise oserror(errno.EOPNOTSUPP)
        if addr is not None and not ops.fastopen_deferred(pcb):     # type: ignore[attr-defined]
            state = ops.state(pcb)
            if self._connect_done or (self._ever_connected and not state & SS_IN_CONNECTION):
                raise oserror(errno.EISCONN)    # as connect(): sock->state is SS_CONNECTED
            if state & (SS_ISCONNECTED | SS_ISDISCONNECTING):
                self._connect_done = True       # completed after EINPROGRESS: now SS_CONNECTED,
                return await self.send(view, flags)     # and the flag does nothing
        nonblocking = bool(flags & MSG_DONTWAIT)
        n = fastopen(pcb, view, addr, not nonblocking, self._stack.now())
        if n == -errno.EALREADY and not nonblocking:
            n = 0                               # a connect in progress: wait for it, then send
        elif n < 0:
            raise oserror(-n)
        self._ever_connected = True
        if nonblocking:
            if n == 0:
                raise oserror(errno.EINPROGRESS)
            return n
        while ops.state(pcb) & SS_ISCONNECTING:
            await self._park_reader()
        if not ops.state(pcb) & (SS_ISCONNECTED | SS_ISDISCONNECTING):
            self._ever_connected = False
            err = ops.take_error(pcb)
            ops.abandon_connect(pcb, self._stack.now())
            raise oserror(err or errno.ECONNREFUSED)
        self._connect_done = True
        if n < len(view):
            n += (await self._send_wait(pcb, view[n:], flags))[0]
        return n

    async def _recv(self, bufsize: int, flags: int, what: str) -> tuple[bytes, None]:
        if bufsize < 0:
            raise ValueError(f"negative buffersize in {what}")
        pcb = self._check()
        # trio's socket pattern: raise if already cancelled; yield once on the fast path
        # (parking is itself the checkpoint on the slow path)
        await trio.lowlevel.checkpoint_if_cancelled()
        data, parked = await self._recv_wait(pcb, bufsize, flags)
        if parked:
            self._woken = trio.lowlevel.current_task()     # its next send may skip a yield
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return data, None

    async def recvmsg(self, bufsize: int, ancbufsize: int = 0,
                      flags: int = 0) -> tuple[bytes, list[tuple[int, int, bytes]], int, None]:
        """socket.recvmsg: (data, ancdata, msg_flags, address).  The ancillary data are the
        protocol's for this read (TCP_INQ's TCP_CM_INQ), laid out in `ancbufsize` octets as
        Linux's put_cmsg does: one cut short gets MSG_CTRUNC.  A stream has no address."""
        if ancbufsize < 0:
            raise ValueError("negative buffer size in recvmsg()")
        data, _ = await self._recv(bufsize, flags, "recvmsg")
        ancdata, msg_flags = _fit_cmsgs(self._stream_ops.recv_control(self._check()), ancbufsize)
        return data, ancdata, msg_flags, None

    async def _recv_wait(self, pcb: Any, bufsize: int, flags: int) -> tuple[bytes, bool]:
        peek = bool(flags & MSG_PEEK)
        parked = False
        ops = self._ops
        while True:
            if self._closed:
                raise oserror(errno.EBADF)
            if flags & MSG_OOB:       # urgent data: never waits (Linux tcp_recv_urg)
                got = self._stream_ops.recv_oob(pcb, bufsize, peek, self._stack.now())
                if isinstance(got, int):
                    raise oserror(got)
                return got, parked
            if bufsize == 0:
                if ops.state(pcb) & SS_ISACCEPTING:
                    raise oserror(errno.ENOTCONN)
                return b"", parked
            item = ops.recv(pcb, bufsize, peek, self._stack.now())
            if item is not None:
                return item[0], parked
            # soreceive with nothing to read: a listener, the error, EOF, not connected, or wait
            st = ops.state(pcb)
            if st & SS_ISACCEPTING:
                raise oserror(errno.ENOTCONN)
            self._raise(ops.take_error(pcb))
            if st & SS_CANTRCVMORE or self._shut_rd:
                return b"", parked
            if not st & SS_IN_CONNECTION:         # CLOSED: never connected, or the connection ended
                if not self._ever_connected:
                    raise oserror(errno.ENOTCONN)
                return b"", parked
            if flags & MSG_DONTWAIT:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            await self._park_reader(st)
            parked = True

    async def wait_writable(self) -> None:
        pcb = self._check()
        parked = False
        while not (self._closed or self._ops.writable(pcb)):
            await self._write_queue().park()
            parked = True
        if not parked:                  # else parking was the checkpoint
            await trio.lowlevel.checkpoint()

    # --- options -----------------------------------------------------------------------------
    def setsockopt(self, level: int, optname: int, value: int | bytes) -> None:
        pcb = self._check()
        v: int | bytes
        if (level, optname) in _STRUCT_OPTIONS:
            v = value
        elif (level, optname) in STRUCT_OPTIONS:
            v = struct_optval(value)
        else:
            v = _optval(value)
        self._raise(self._ops.setsockopt(pcb, level, optname, v, self._stack.now()))

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        pcb = self._check()
        value = self._getopt(pcb, level, optname)
        if isinstance(value, int):
            return value if buflen is None else value.to_bytes(4, "little", signed=True)[:buflen]
        # a struct option, as this socket has always answered without a buffer length:
        # TCP_INFO's first word, TCP_CONGESTION's 16 octets, SO_LINGER as the int 0
        if level == _pysocket.IPPROTO_TCP and optname == _pysocket.TCP_CONGESTION:
            return value[:buflen or 16]     # the name and 16 NULs
        if buflen is not None:
            return value[:buflen]
        return 0 if optname == _pysocket.SO_LINGER and level == _pysocket.SOL_SOCKET else value[:4]

    def ioctl(self, request: int) -> int:
        """ioctl(2) with an int result, as fcntl.ioctl on a kernel socket gives it (Linux
        tcp_ioctl): SIOCINQ (FIONREAD), SIOCOUTQ (TIOCOUTQ), SIOCOUTQNSEQ, SIOCATMARK (1 when
        the next byte to read is the urgent one)."""
        value = self._stream_ops.control(self._check(), request, self._stack.now())
        if value < 0:
            raise oserror(-value)
        return value

    def tcp_info(self) -> dict[str, Any]:
        """TCP_INFO as a dict (state, rtt, cwnd, retransmits, ...)."""
        return self._ops.info(self._check())
