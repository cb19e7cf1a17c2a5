"""AF_NDD sockets: the waiting half of the ATM service (protocols/atm/sockets/usrreq.py holds the
sans-IO user requests and their semantics, atm_pcb.py the per-socket state).  Like
stack/stream.py for TCP, this is where trio is: parking on the queue, on an SVC's call
(connect until CONNECT, accept until CONNECT ACKNOWLEDGE), pacing waits on a full adapter.
Cancellation: a cancelled SVC connect clears its call (RELEASE) and leaves the socket
unconnected; a cancelled accept leaves its call first in the queue (CONNECT may be out:
the next accept completes it)."""
from __future__ import annotations

import errno
import socket as _pysocket
from typing import Any

import trio

from protocols.atm.sockets.pcb import St
from protocols.atm.sockets.sockaddr import CONN_SVC, SO_ATM_CALLING, SO_ATM_MAX_PEND, parse_sockaddr_atm
from protocols.atm.sockets.usrreq import SOL_NDD_ATM, AtmPcb, AtmUserRequests

from protocols.contracts import oserror
from .socket import Socket, _optval


_UNBOUND = ("", 0, 0, 0)


class AtmSocket(Socket):
    """A socket of the ATM family; the Socket base serves close/shutdown/recv wrappers and
    SOL_SOCKET options, this class the sockaddr_ndd_atm addresses and SOL_NDD_ATM options."""

    _ops: AtmUserRequests
    _pcb: AtmPcb

    # --- naming -----------------------------------------------------------------------------
    def bind(self, address: object) -> None:
        pcb = self._check()
        addr = parse_sockaddr_atm(address, "bind", name_only=True)
        if addr.vc_type == CONN_SVC:       # an ATM address: the SAP callers name
            self._raise(self._ops.bind_svc(pcb, addr))
        else:                              # the adapter only: a PVC's VPI/VCI is chosen by connect
            self._raise(self._ops.bind(pcb, addr.nddname))

    def getsockname(self) -> tuple[Any, ...]:
        pcb = self._check()
        if pcb.local is not None:
            return pcb.local.astuple()
        if pcb.peer is not None and pcb.peer.vc_type == CONN_SVC:
            calling = self._ops.getopt(pcb, SO_ATM_CALLING)   # what our SETUP said we are
            return (pcb.peer.nddname, CONN_SVC, calling.address, calling.subaddress)
        if pcb.peer is not None:
            return pcb.peer.astuple()      # a PVC's VPI/VCI name both ends at this UNI
        return (pcb.ndd.ndd_name, 0, 0, 0) if pcb.ndd is not None else _UNBOUND

    def getpeername(self) -> tuple[Any, ...]:
        pcb = self._check()
        if pcb.peer is None or not pcb.connected:
            raise oserror(errno.ENOTCONN)
        return pcb.peer.astuple()

    @property
    def vc(self) -> tuple[int, int] | None:
        """(VPI, VCI) of the data VC while it is open: a PVC's, or the one the network gave an SVC."""
        return self._pcb.vc

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"laddr={self.getsockname()}"
        return f"<tunstack.AtmSocket {state}>"

    # --- connection --------------------------------------------------------------------------
    async def connect(self, address: object) -> None:
        pcb = self._check()
        if address == _pysocket.AF_UNSPEC:
            self._ops.disconnect(pcb)      # as TCP: AF_UNSPEC dissolves the association (closes the VC)
            self._readers.unpark_all()
            await trio.lowlevel.checkpoint()
            return
        self._raise(self._ops.connect(pcb, parse_sockaddr_atm(address, "connect")))
        try:
            while pcb.state is St.CONNECTING:      # an SVC: until CONNECT, or the call is cleared
                await self._readers.park()
        except BaseException:
            self._ops.abandon_connect(pcb)
            raise
        if pcb.state not in (St.CONNECTED, St.RELEASED):   # RELEASED: it was up; recv tells the rest
            self._raise(pcb.take_error() or errno.ECONNREFUSED)
        await trio.lowlevel.checkpoint()

    async def accept(self) -> tuple["AtmSocket", tuple[Any, ...]]:
        pcb = self._check()
        await trio.lowlevel.checkpoint()
        while True:
            if self._closed:
                raise oserror(errno.EBADF)
            if pcb.state is not St.LISTENING:
                raise oserror(errno.EINVAL)
            child = self._ops.accept(pcb)
            if child is not None:
                sock = AtmSocket(self._stack, self.family, self.type, self.proto, self._pr, child)
                return sock, child.peer.astuple() if child.peer is not None else ()
            await self._readers.park()

    # --- data -----------------------------------------------------------------------------
    async def sendto(self, data: bytes | bytearray | memoryview, flags_or_addr: object, addr: object = None) -> int:
        flags, address = (0, flags_or_addr) if addr is None else (flags_or_addr, addr)
        if not isinstance(flags, int):
            raise TypeError(f"'{type(flags).__name__}' object cannot be interpreted as an integer")
        dst = parse_sockaddr_atm(address, "sendto")
        pcb = self._check()
        if pcb.peer is None:
            raise oserror(errno.ENOTCONN)
        if dst.astuple() != pcb.peer.astuple():
            raise oserror(errno.EISCONN)   # a VC has one destination
        return await self._send(data, flags, None)

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
            err = self._ops.send(pcb, view)
            if err not in (errno.ENOBUFS, errno.EAGAIN):
                self._raise(err)
                return len(view)
            if flags & _pysocket.MSG_DONTWAIT:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            await pcb.ndd.wait_tx_idle()   # the adapter's cell queue is full: wait for it to drain

    def _source_name(self, source: Any) -> Any:
        return source.astuple() if source is not None else None   # the PVC's far end

    def stats(self) -> dict[str, int]:
        return self._pcb.stats.as_dict()

    # --- options ----------------------------------------------------------------------------
    def setsockopt(self, level: int, optname: int, value: object) -> None:  # type: ignore[override]
        pcb = self._check()
        if level == _pysocket.SOL_SOCKET:   # SO_RCVBUF bounds the receive queue, as for UDP
            super().setsockopt(level, optname, value)   # type: ignore[arg-type]
            return
        if level != SOL_NDD_ATM:
            raise oserror(errno.ENOPROTOOPT)
        if optname == SO_ATM_MAX_PEND:     # an int option, taken as CPython/Linux take ints
            value = _optval(value)
        self._raise(self._ops.setopt(pcb, optname, value))

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> Any:
        pcb = self._check()
        if level == _pysocket.SOL_SOCKET:
            return super().getsockopt(level, optname, buflen)
        v = self._ops.getopt(pcb, optname) if level == SOL_NDD_ATM else None
        if v is None:
            raise oserror(errno.ENOPROTOOPT)
        if buflen is None:
            return v
        return (v.to_bytes(4, "little", signed=True) if isinstance(v, int) else v.pack())[:buflen]
