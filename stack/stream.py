"""Stream sockets (SOCK_STREAM): the waiting half of TCP's user interface.

Semantics follow Linux (and DESIGN.md §3):
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
"""
from __future__ import annotations

import errno
import socket as _pysocket
import struct
from typing import TYPE_CHECKING, Any

import trio

from .sockaddr import format_inet
from protocols.contracts import oserror
from .socket import BUF_MAX, MIN_RCVBUF, MIN_SNDBUF, Socket, _bufsize, _optval

if TYPE_CHECKING:
    from protocols.contracts import Protosw
    from .stack import Stack

TCP_CONGESTION = _pysocket.TCP_CONGESTION
# Linux caps SO_RCVBUF/SO_SNDBUF at net.core.[rw]mem_max (212992); a stream may ask for up to
# 32 times that here (~6.5 MiB, about tcp_rmem[2]), so a fixed buffer can still be as large as
# an autotuned one -- the Gbit/s of TUN offloads need MiB windows, Linux's cap would not do
STREAM_BUF_MAX = BUF_MAX * 32
TCP_INFO = _pysocket.TCP_INFO
# TCP states by their Linux numbers (protocols/tcp/state.py): the socket layer sees only
# the protocol's `state` value, so it does not import the protocol.
(_ESTABLISHED, _SYN_SENT, _SYN_RECEIVED, _FIN_WAIT_1, _FIN_WAIT_2, _TIME_WAIT, _CLOSED, _CLOSE_WAIT, _LAST_ACK,
 _LISTEN, _CLOSING) = range(1, 12)
_PEER_KNOWN = (_ESTABLISHED, _SYN_RECEIVED, _FIN_WAIT_1, _FIN_WAIT_2, _CLOSE_WAIT, _LAST_ACK, _CLOSING)
_CAN_SEND = (_ESTABLISHED, _CLOSE_WAIT)             # (Linux: not TIME-WAIT -- the socket is CLOSE then)
_OPENING = (_SYN_SENT, _SYN_RECEIVED)


class StreamSocket(Socket):
    def __init__(self, stack: "Stack", family: int, type: int, proto: int, pr: "Protosw",
                 pcb: Any = None) -> None:
        super().__init__(stack, family, type, proto, pr, pcb)
        self._ever_connected = pcb is not None

    def _hook_wakeup(self) -> None:
        self._pcb.on_event = self._readers.unpark_all     # any change: data, space, state

    # --- connection -------------------------------------------------------------------
    async def accept(self) -> tuple["StreamSocket", tuple[str, int]]:
        pcb = self._check()
        await trio.lowlevel.checkpoint()
        while True:
            accepted = self._take_child(pcb)
            if accepted is not None:
                return accepted
            await self._readers.park()

    def accept_nowait(self) -> tuple["StreamSocket", tuple[str, int]]:
        """accept(2) on a non-blocking socket: the next queued connection at once, or
        BlockingIOError (EAGAIN) when there is none.  A server woken by `accept()` drains
        the rest of the queue with it -- one wake-up for a whole burst, as asyncio's accept
        loop takes up to `backlog` connections per readiness event."""
        accepted = self._take_child(self._check())
        if accepted is None:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return accepted

    def _take_child(self, pcb: Any) -> tuple["StreamSocket", tuple[str, int]] | None:
        if self._closed:
            raise oserror(errno.EBADF)
        if pcb.state != _LISTEN:
            raise oserror(errno.EINVAL)
        child = self._ops.accept(pcb)
        if child is None:
            return None
        sock = StreamSocket(self._stack, self.family, self.type, self.proto, self._pr, child)
        return sock, format_inet(child.faddr, child.fport)

    async def connect(self, address: object) -> None:
        pcb = self._check()
        addr, port = self._addr(address, "connect")
        if pcb.state == _LISTEN:
            raise oserror(errno.EISCONN)             # Linux inet_stream_connect: not TCP_CLOSE
        if pcb.state in _OPENING:
            raise oserror(errno.EALREADY)
        if pcb.state != _CLOSED or self._ever_connected and pcb.fport:
            raise oserror(errno.EISCONN)
        self._raise(self._ops.connect(pcb, addr, port, self._stack.now()))
        self._ever_connected = True
        try:
            while pcb.state in _OPENING:
                await self._readers.park()
        except BaseException:
            if pcb.state in _OPENING:
                self._ops.abandon_connect(pcb)
                self._ever_connected = False
            raise
        if pcb.state == _CLOSED:
            self._ever_connected = False
            pcb.faddr = pcb.fport = 0
            raise oserror(self._ops.take_error(pcb) or errno.ECONNREFUSED)
        await trio.lowlevel.checkpoint()

    def disconnect(self) -> None:
        raise oserror(errno.EOPNOTSUPP)

    def shutdown(self, how: int) -> None:
        pcb = self._check()
        if how not in (_pysocket.SHUT_RD, _pysocket.SHUT_WR, _pysocket.SHUT_RDWR):
            raise oserror(errno.EINVAL)
        # Linux inet_shutdown: a CLOSE socket (never connected, failed, reset or past
        # TIME-WAIT) is ENOTCONN; a listener ignores SHUT_WR and stops listening on SHUT_RD;
        # in SYN-SENT the connect is aborted and the waiting connect() gets ECONNRESET.
        if pcb.state in (_CLOSED, _TIME_WAIT):
            raise oserror(errno.ENOTCONN)
        if pcb.state == _SYN_SENT:
            self._ops.abort_connect(pcb, errno.ECONNRESET)
            return
        if pcb.state == _LISTEN:
            if how != _pysocket.SHUT_WR:
                self._ops.unlisten(pcb, self._stack.now())
                self._readers.unpark_all()
            return
        if how in (_pysocket.SHUT_RD, _pysocket.SHUT_RDWR):
            self._shut_rd = True
            self._readers.unpark_all()
        if how in (_pysocket.SHUT_WR, _pysocket.SHUT_RDWR):
            self._shut_wr = True
            self._ops.shutdown_write(pcb, self._stack.now())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ops.detach(self._pcb, self._stack.now())
        self._readers.unpark_all()

    # --- data ------------------------------------------------------------------------------
    async def send(self, data: bytes | bytearray | memoryview, flags: int = 0) -> int:
        pcb = self._check()
        view = memoryview(data).cast("B")
        # as recv: raise if cancelled, then send first and yield after -- the segment is on
        # its way while other tasks run (parking is the checkpoint on the slow path)
        await trio.lowlevel.checkpoint_if_cancelled()
        n, parked = await self._send_wait(pcb, view, flags)
        if not parked:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return n

    async def _send_wait(self, pcb: Any, view: memoryview, flags: int) -> tuple[int, bool]:
        parked = False
        while True:
            if self._closed:
                raise oserror(errno.EBADF)
            self._raise(self._ops.take_error(pcb))
            st = pcb.state
            if self._shut_wr or pcb.shut_wr or st not in _CAN_SEND + _OPENING:
                raise oserror(errno.EPIPE)
            if st in _CAN_SEND:
                if not view:
                    return 0, parked
                n = self._ops.send(pcb, view, self._stack.now())
                if n:
                    return n, parked
            if flags & _pysocket.MSG_DONTWAIT:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            await self._readers.park()
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
        self._check()
        self._addr(address, "sendto")
        return await self.send(data, flags)

    async def _recv(self, bufsize: int, flags: int, what: str) -> tuple[bytes, tuple[str, int] | None]:
        if bufsize < 0:
            raise ValueError(f"negative buffersize in {what}")
        pcb = self._check()
        # trio's socket pattern: raise if already cancelled; yield once on the fast path
        # (parking is itself the checkpoint on the slow path)
        await trio.lowlevel.checkpoint_if_cancelled()
        data, parked = await self._recv_wait(pcb, bufsize, flags)
        if not parked:
            await trio.lowlevel.cancel_shielded_checkpoint()
        return data, None

    async def _recv_wait(self, pcb: Any, bufsize: int, flags: int) -> tuple[bytes, bool]:
        peek = bool(flags & _pysocket.MSG_PEEK)
        parked = False
        while True:
            if self._closed:
                raise oserror(errno.EBADF)
            if pcb.state == _LISTEN:
                raise oserror(errno.ENOTCONN)
            if bufsize == 0:
                return b"", parked
            data = self._ops.recv(pcb, bufsize, peek, self._stack.now())
            if data:
                return data, parked
            self._raise(self._ops.take_error(pcb))
            if pcb.rcv_fin or self._shut_rd:
                return b"", parked
            if pcb.state == _CLOSED:
                if not self._ever_connected:
                    raise oserror(errno.ENOTCONN)
                return b"", parked
            if flags & _pysocket.MSG_DONTWAIT:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            await self._readers.park()
            parked = True

    async def wait_writable(self) -> None:
        pcb = self._check()
        while not (self._closed or pcb.so_error or pcb.state not in _OPENING + _CAN_SEND
                   or (pcb.state in _CAN_SEND and pcb.writable_space() > 0)):
            await self._readers.park()
        await trio.lowlevel.checkpoint()

    # --- names -----------------------------------------------------------------------------
    def getpeername(self) -> tuple[str, int]:
        pcb = self._check()
        if pcb.state not in _PEER_KNOWN:
            raise oserror(errno.ENOTCONN)
        return format_inet(pcb.faddr, pcb.fport)

    # --- options -----------------------------------------------------------------------------
    def setsockopt(self, level: int, optname: int, value: int | bytes) -> None:
        pcb = self._check()
        if level == _pysocket.IPPROTO_TCP and optname == TCP_CONGESTION:
            name = bytes(value).split(b"\0", 1)[0].decode() if not isinstance(value, int) else ""
            self._raise(self._ops.set_congestion(pcb, name) if name else errno.EINVAL)
            return
        if level == _pysocket.SOL_SOCKET and optname == _pysocket.SO_LINGER:
            if isinstance(value, int) or len(value) < 8:
                raise oserror(errno.EINVAL)
            onoff, seconds = struct.unpack_from("ii", value)
            pcb.linger0 = bool(onoff) and seconds == 0
            return
        v = _optval(value)
        if level == _pysocket.SOL_SOCKET and optname == _pysocket.SO_RCVBUF:
            # Linux: an explicit size (doubled) also turns autotuning off (SOCK_RCVBUF_LOCK)
            self._ops.set_rcvbuf(pcb, _bufsize(v, STREAM_BUF_MAX, MIN_RCVBUF))
        elif level == _pysocket.SOL_SOCKET and optname == _pysocket.SO_SNDBUF:
            self._ops.set_sndbuf(pcb, _bufsize(v, STREAM_BUF_MAX, MIN_SNDBUF))
        elif level == _pysocket.SOL_SOCKET and optname == _pysocket.SO_KEEPALIVE:
            self._ops.set_keepalive(pcb, bool(v))
        elif level == _pysocket.SOL_SOCKET and optname == _pysocket.SO_BROADCAST:
            pass                                    # accepted and meaningless for TCP, as on Linux
        else:
            super().setsockopt(level, optname, value)

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        pcb = self._check()
        if level == _pysocket.IPPROTO_TCP and optname == TCP_INFO:
            info = self._ops.tcp_info(pcb)
            return info[:buflen] if buflen is not None else info[:4]
        if level == _pysocket.IPPROTO_TCP and optname == TCP_CONGESTION:
            name = pcb.cc.name.encode()
            return (name + bytes(16))[:buflen or 16]
        if level == _pysocket.SOL_SOCKET and optname == _pysocket.SO_LINGER:
            data = struct.pack("ii", int(pcb.linger0), 0)
            return data[:buflen] if buflen is not None else 0
        return super().getsockopt(level, optname, buflen)

    def _getopt(self, pcb: Any, level: int, optname: int) -> int:
        if level == _pysocket.SOL_SOCKET:
            if optname == _pysocket.SO_RCVBUF:
                return pcb.rcv.capacity
            if optname == _pysocket.SO_SNDBUF:
                return pcb.snd.capacity
            if optname == _pysocket.SO_KEEPALIVE:
                return int(pcb.keepalive)
            if optname == _pysocket.SO_BROADCAST:
                return 0
            if optname == _pysocket.SO_ACCEPTCONN:
                return int(pcb.state == _LISTEN)
        return super()._getopt(pcb, level, optname)

    def tcp_info(self) -> dict[str, Any]:
        """TCP_INFO as a dict (state, rtt, cwnd, retransmits, ...)."""
        return self._check().info()
