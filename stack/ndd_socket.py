"""AF_NDD sockets: Ndd8022Socket, the 802.2 datagram family (whole Ethernet frames; nothing
waits but recv), and AtmSocket, the waiting half of the ATM service (protocols/atm/sockets/usrreq.py holds the
sans-IO user requests and their semantics, pcb.py the per-socket state).  Like stack/stream.py
for TCP, this is where trio is: parking on the queue, on an SVC's call (connect until CONNECT,
accept until a call is queued, an accepted call's first send until CONNECT ACKNOWLEDGE), on a
full adapter or a rate-enforced VC's SO_ATM_MAX_PEND (send waits for the protocol's upcall,
which the adapter's NDD_TX_READY status triggers).
Cancellation: a cancelled SVC connect clears its call (RELEASE) and leaves the socket
unconnected; a cancelled accept takes nothing off the queue."""
from __future__ import annotations

import errno
import socket as _pysocket
from typing import Any

import trio

from protocols.atm.sockets.sockaddr import SO_ATM_MAX_PEND, parse_sockaddr_atm
from protocols.atm.sockets.usrreq import SOL_NDD_ATM
from protocols.contracts import SS_ISACCEPTING, SS_ISCONNECTED, SS_ISCONNECTING, oserror
from protocols.ndd8022 import parse_sockaddr_8022

from .socket import MSG_DONTWAIT, Socket, _optval

_EAGAIN = -errno.EAGAIN


class AtmSocket(Socket):
    """A socket of the ATM family; the Socket base serves close/shutdown/recv wrappers and
    SOL_SOCKET options, this class the sockaddr_ndd_atm addresses and SOL_NDD_ATM options."""

    # --- naming -----------------------------------------------------------------------------
    def bind(self, address: object) -> None:
        pcb = self._check()
        # an ATM address binds the SAP callers name; a PVC address the adapter only
        self._raise(self._ops.bind(pcb, parse_sockaddr_atm(address, "bind", name_only=True), self._stack.now()))

    def _format(self, addr: Any) -> tuple[Any, ...]:
        return addr.astuple()

    @property
    def vc(self) -> tuple[int, int] | None:
        """(VPI, VCI) of the data VC while it is open: a PVC's, or the one the network gave an SVC."""
        vc: tuple[int, int] | None = self._ops.info(self._pcb)["vc"]
        return vc

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"laddr={self.getsockname()}"
        return f"<tunstack.AtmSocket {state}>"

    # --- connection --------------------------------------------------------------------------
    async def connect(self, address: object) -> None:
        pcb = self._check()
        ops = self._ops
        if address == _pysocket.AF_UNSPEC:
            ops.disconnect(pcb, self._stack.now())   # as TCP: AF_UNSPEC dissolves the association (closes the VC)
            self._readers.unpark_all()
            await trio.lowlevel.checkpoint()
            return
        self._raise(ops.connect(pcb, parse_sockaddr_atm(address, "connect"), self._stack.now()))
        try:
            while ops.state(pcb) & SS_ISCONNECTING:   # an SVC: until CONNECT, or the call is cleared
                await self._read_queue().park()
        except BaseException:
            ops.abandon_connect(pcb, self._stack.now())
            raise
        if not ops.state(pcb) & SS_ISCONNECTED:      # a cleared call that was up stays so: recv tells the rest
            self._raise(ops.take_error(pcb) or errno.ECONNREFUSED)
        await trio.lowlevel.checkpoint()

    async def accept(self) -> tuple[AtmSocket, tuple[Any, ...]]:
        pcb = self._check()
        await trio.lowlevel.checkpoint()
        while True:
            if self._closed:
                raise oserror(errno.EBADF)
            if not self._ops.state(pcb) & SS_ISACCEPTING:
                raise oserror(errno.EINVAL)
            accepted = self._ops.accept(pcb, self._stack.now())
            if accepted is not None:
                child, peer = accepted
                sock = AtmSocket(self._stack, self.family, self.type, self.proto, self._pr, child)
                return sock, peer.astuple() if peer is not None else ()
            await self._read_queue().park()

    # --- data -----------------------------------------------------------------------------
    async def sendto(self, data: bytes | bytearray | memoryview, flags_or_addr: object, addr: object = None) -> int:
        flags, address = (0, flags_or_addr) if addr is None else (flags_or_addr, addr)
        if not isinstance(flags, int):
            raise TypeError(f"'{type(flags).__name__}' object cannot be interpreted as an integer")
        dst = parse_sockaddr_atm(address, "sendto")
        self._check()
        return await self._send(data, flags, dst)    # the protocol checks it names the VC's far end

    async def _send(self, data: Any, flags: int, dst: Any) -> int:
        pcb = self._check()
        view = memoryview(data).cast("B")
        await trio.lowlevel.checkpoint()
        while True:
            if self._closed:
                raise oserror(errno.EBADF)
            self._raise(self._ops.take_error(pcb))
            if self._shut_wr:
                raise oserror(errno.EPIPE)
            n = self._ops.send(pcb, view, dst, self._stack.now())
            if n != _EAGAIN:
                if n < 0:
                    raise oserror(-n)
                return n
            if flags & MSG_DONTWAIT:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            await self._read_queue().park()   # the adapter's queue is full: until the protocol says it has room

    def _source_name(self, source: Any) -> Any:
        return source.astuple() if source is not None else None   # the PVC's far end

    def stats(self) -> dict[str, int]:
        stats: dict[str, int] = self._ops.info(self._pcb)["stats"]
        return stats

    # --- options ----------------------------------------------------------------------------
    def setsockopt(self, level: int, optname: int, value: object) -> None:
        pcb = self._check()
        if level == _pysocket.SOL_SOCKET:   # SO_RCVBUF bounds the receive queue, as for UDP
            super().setsockopt(level, optname, value)   # type: ignore[arg-type]
            return
        if level != SOL_NDD_ATM:
            raise oserror(errno.ENOPROTOOPT)
        if optname == SO_ATM_MAX_PEND:
            # AIX's is a u_char: one octet as a C program passes it, or an int as CPython takes ints
            if isinstance(value, (bytes, bytearray, memoryview)) and memoryview(value).nbytes == 1:
                value = bytes(value)[0]
            else:
                value = _optval(value)
        self._raise(self._ops.setsockopt(pcb, level, optname, value, self._stack.now()))

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        pcb = self._check()
        if level == _pysocket.SOL_SOCKET:
            return super().getsockopt(level, optname, buflen)
        v = self._ops.getsockopt(pcb, level, optname, self._stack.now()) if level == SOL_NDD_ATM else None
        if v is None:
            raise oserror(errno.ENOPROTOOPT)
        if buflen is None:
            return v
        if optname == SO_ATM_MAX_PEND:
            return bytes((v,))[:buflen]        # a u_char
        return v.pack()[:buflen]


class Ndd8022Socket(Socket):
    """socket(AF_NDD, SOCK_DGRAM, NDD_PROT_ETHER): whole Ethernet frames by a sockaddr_ndd_8022
    filter (protocols/ndd8022.py holds the requests and their errnos).  Addresses are the tuple
    (nddname, filtertype, dsap, orgcode, ethertype), (nddname, ethertype), or the 36 octets of
    the C structure; the datagram paths of the Socket base serve the rest (a send never waits:
    a full device queue is ENOBUFS, as for a datagram on AIX)."""

    def _addr(self, address: object, what: str) -> Any:
        return parse_sockaddr_8022(address, what)

    def _format(self, addr: Any) -> Any:
        return addr.astuple() if addr is not None else None

    def getsockname(self) -> Any:
        return self._format(self._ops.sockaddr(self._check()))

    async def connect(self, address: object) -> None:
        pcb = self._check()
        if address == _pysocket.AF_UNSPEC:
            self._ops.disconnect(pcb, self._stack.now())
        else:
            self._raise(self._ops.connect(pcb, parse_sockaddr_8022(address, "connect"), self._stack.now()))
        await trio.lowlevel.checkpoint()

    def stats(self) -> dict[str, int]:
        stats: dict[str, int] = self._ops.info(self._pcb)["stats"]
        return stats

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"laddr={self.getsockname()}"
        return f"<tunstack.Ndd8022Socket {state}>"
