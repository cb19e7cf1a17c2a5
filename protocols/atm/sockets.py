"""The ATM socket family: socket(AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM) over an AtmNdd.

AIX's connection-oriented datagram service (DESIGN.md §3, §6): message boundaries are
kept, nothing is retransmitted.  Addresses and option values: protocols.atm.sockaddr.

  bind((nddname,))   names the adapter and takes an ns_alloc reference on it (opens it).
                     Unknown name -> ENODEV: that is what AIX's ns_alloc() returns, and
                     the NDD name is the whole "address" here.  A known NDD that is not an
                     ATM adapter -> EADDRNOTAVAIL: the name exists but is no address of this
                     family (Linux's errno for a name not usable by the socket).
                     Bound twice -> EINVAL (as Linux).
  connect(PVC)       local station only -- NO cell leaves: NDD_ATM_OPEN_VC with the AAL
                     and traffic parameters, then an NS_ATM_VC filter for the socket.
                     Unbound sockets bind to the address's adapter first (that binding
                     survives a failed connect, as an auto-bound name does).  EINVAL: bad
                     vc_type, VPI/VCI out of range or reserved (VCI 0-31), or another adapter
                     than the bound one; EADDRINUSE: the VC is open (or claimed) already;
                     EISCONN: connected.
  connect(SVC)       EOPNOTSUPP until signalling exists (issue 6): the address type is
                     valid, the operation is what is missing (EPROTONOSUPPORT would wrongly
                     say the protocol itself is unknown).
  send               before connect -> ENOTCONN (connection-oriented: the peer is the VC,
                     there is no sendto destination to be missing, so not EDESTADDRREQ);
                     empty -> EINVAL (AAL5 Length 0 means "abort"); over the forward max SDU
                     -> EMSGSIZE.  Waits while the adapter's transmit queue is full.
  recv               one SDU per call; a smaller buffer truncates (the rest is lost, as for
                     any datagram socket).  The queue is bounded by SO_RCVBUF (bytes, each SDU
                     charged like UDP); overflows and SDUs over the backward max are dropped
                     and counted (`sock.stats()`).
  close              deletes the filter and closes the VC (SDUs still queued in the adapter
                     are discarded, `vc_closed_tx_drops`), so the VC can be opened again.
"""
from __future__ import annotations

import errno
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ndd import constants as C
from ndd.demux import NS_PROTO, NsFilter, NsUser
from stack.counters import Counters
from stack.protosw import AF_NDD, PR_ATOMIC, PR_CONNREQUIRED, Protosw

from .sockaddr import (CONN_PVC, CONN_SVC, SO_ATM_AAL_PARM, SO_ATM_BLLI, SO_ATM_TRAFFIC_DES, AalParm, Blli,
                       SockaddrNddAtm, TrafficDes, check_pvc)

if TYPE_CHECKING:
    from ndd.ndd import Ndd
    from ndd.services import NetServices
    from stack.pktbuf import PacketBuffer
    from stack.stack import Stack

SOCK_CONN_DGRAM = 6          # AIX (DESIGN.md §6)
NDD_PROT_ATM = 5
SOL_NDD_ATM = NDD_PROT_ATM   # option level: the protocol number (BSD rule; see sockaddr.py)
RCVBUF_DEFAULT = 212992      # net.core.rmem_default, as UDP
SNDBUF_DEFAULT = 212992
SDU_OVERHEAD = 768           # charged per queued SDU, like UDP's skb truesize


@dataclass
class AtmSockStats(Counters):
    sdus_in: int = 0
    sdus_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    rcvq_drops: int = 0       # the receive queue (SO_RCVBUF) was full
    oversize_drops: int = 0   # over the backward max SDU (SO_ATM_AAL_PARM)


class AtmPcb:
    """One ATM socket's state: its adapter (bind), its VC (connect), its parameters."""

    def __init__(self) -> None:
        self.ndd: Any = None                       # the bound AtmNdd (an ns_alloc reference)
        self.peer: SockaddrNddAtm | None = None    # the connected PVC
        self.aal: AalParm | None = None            # None: the adapter's MTU both ways
        self.traffic = TrafficDes()
        self.blli = Blli()
        self.max_sdu = (0, 0)                      # (fwd, bwd) fixed at connect
        self.user: NsUser | None = None
        self.queue: deque[bytes] = deque()
        self.queued = 0
        self.rcvbuf = RCVBUF_DEFAULT
        self.sndbuf = SNDBUF_DEFAULT
        self.reuseaddr = self.reuseport = self.broadcast = False   # SOL_SOCKET options the base serves
        self.so_error = 0
        self.stats = AtmSockStats()
        self.on_readable: Callable[[], None] = lambda: None

    @property
    def connected(self) -> bool:
        return self.peer is not None

    def take_error(self) -> int:
        err, self.so_error = self.so_error, 0
        return err

    def aal_parm(self) -> AalParm:
        if self.aal is not None:
            return self.aal
        from drivers.atm import DEFAULT_MTU
        mtu = self.ndd.ndd_mtu if self.ndd is not None else DEFAULT_MTU
        return AalParm(mtu, mtu)

    # the demuxer's NS_PROTO isr: the link header is already stripped
    def input(self, ndd: "Ndd", pkt: "PacketBuffer", _data: object) -> None:
        sdu = pkt.tobytes()
        if len(sdu) > self.max_sdu[1]:
            self.stats.oversize_drops += 1
            return
        cost = len(sdu) + SDU_OVERHEAD
        if self.queued + cost > self.rcvbuf:
            self.stats.rcvq_drops += 1
            return
        self.queue.append(sdu)
        self.queued += cost
        self.stats.sdus_in += 1
        self.stats.bytes_in += len(sdu)
        self.on_readable()


def _errno_of(exc: OSError) -> int:
    return exc.errno or errno.EIO


class AtmUserRequests:
    """pr_usrreqs of the ATM PVC service (sans-IO: errnos, never waits).  `socket_class`
    tells the socket layer to build AtmSocket, whose addresses are sockaddr_ndd_atm."""

    def __init__(self, ns: "NetServices") -> None:
        self.ns = ns
        from stack.ndd_socket import AtmSocket    # the waiting half lives in the socket layer
        self.socket_class = AtmSocket

    def attach(self) -> AtmPcb:
        return AtmPcb()

    def bind(self, pcb: AtmPcb, nddname: str) -> int:
        if pcb.ndd is not None:
            return errno.EINVAL
        ndd = self.ns.ndds.get(nddname)
        if ndd is None:
            return errno.ENODEV
        if ndd.ndd_type != C.NDD_ATM:
            return errno.EADDRNOTAVAIL
        try:
            pcb.ndd = self.ns.ns_alloc(nddname)
        except OSError as exc:
            return _errno_of(exc)
        return 0

    def listen(self, pcb: AtmPcb, backlog: int) -> int:
        return errno.EOPNOTSUPP   # PVCs are not called; SVC listen comes with signalling

    def connect(self, pcb: AtmPcb, addr: SockaddrNddAtm) -> int:
        from drivers.atm import VcParams
        if pcb.peer is not None:
            return errno.EISCONN
        err = check_pvc(addr)
        if err:
            return err
        if addr.vc_type == CONN_SVC:
            return errno.EOPNOTSUPP
        if pcb.ndd is None:
            err = self.bind(pcb, addr.nddname)
            if err:
                return err
        elif pcb.ndd.ndd_name != addr.nddname:
            return errno.EINVAL
        aal = pcb.aal_parm()
        ndd = pcb.ndd
        # the adapter keeps one max SDU per VC: the larger; each direction is held to its own here
        params = VcParams(addr.vpi, addr.vci, max_sdu=max(aal.fwd_max_sdu, aal.bwd_max_sdu),
                          pcr=float(pcb.traffic.fwd_pcr))
        try:
            ndd.ndd_ctl(C.NDD_ATM_OPEN_VC, params)
        except OSError as exc:
            return _errno_of(exc)
        user = NsUser(pcb.input, None, NS_PROTO)
        try:
            self.ns.ns_add_filter(ndd, NsFilter(C.NS_ATM_VC, vpi=addr.vpi, vci=addr.vci), user)
        except OSError as exc:
            ndd.ndd_ctl(C.NDD_ATM_CLOSE_VC, (addr.vpi, addr.vci))
            # EEXIST: another user (e.g. CLIP) claims the VC in the demuxer -- in use all the same
            return errno.EADDRINUSE if exc.errno == errno.EEXIST else _errno_of(exc)
        pcb.user = user
        pcb.peer = SockaddrNddAtm.pvc(addr.nddname, addr.vpi, addr.vci)
        pcb.max_sdu = (aal.fwd_max_sdu, aal.bwd_max_sdu)
        return 0

    def disconnect(self, pcb: AtmPcb) -> None:
        peer, pcb.peer = pcb.peer, None
        if peer is None:
            return
        ndd = pcb.ndd
        try:
            self.ns.ns_del_filter(ndd, NsFilter(C.NS_ATM_VC, vpi=peer.vpi, vci=peer.vci), pcb.user)
        except OSError:
            pass    # the adapter was freed under us (ns_free forgets its filters)
        try:
            ndd.ndd_ctl(C.NDD_ATM_CLOSE_VC, (peer.vpi, peer.vci))
        except OSError:
            pass
        pcb.user = None

    def send(self, pcb: AtmPcb, data: memoryview) -> int:
        peer = pcb.peer
        if peer is None:
            return errno.ENOTCONN
        if not len(data):
            return errno.EINVAL
        if len(data) > pcb.max_sdu[0]:
            return errno.EMSGSIZE
        err = pcb.ndd.atm_output(peer.vpi, peer.vci, data)
        if not err:
            pcb.stats.sdus_out += 1
            pcb.stats.bytes_out += len(data)
        return err

    def recv(self, pcb: AtmPcb, peek: bool) -> tuple[bytes, Any] | None:
        """(SDU, the peer's address) -- the shape the datagram socket's receive loop takes."""
        if not pcb.queue:
            return None
        if peek:
            return pcb.queue[0], pcb.peer
        sdu = pcb.queue.popleft()
        pcb.queued -= len(sdu) + SDU_OVERHEAD
        return sdu, pcb.peer

    def readable(self, pcb: AtmPcb) -> bool:
        return bool(pcb.queue)

    def take_error(self, pcb: AtmPcb) -> int:
        return pcb.take_error()

    def detach(self, pcb: AtmPcb) -> None:
        self.disconnect(pcb)
        if pcb.ndd is not None:
            ndd, pcb.ndd = pcb.ndd, None
            if self.ns.refcount.get(ndd.ndd_name, 0) > 0:
                self.ns.ns_free(ndd)
        pcb.queue.clear()
        pcb.queued = 0

    def setopt(self, pcb: AtmPcb, optname: int, value: object) -> int:
        if optname not in (SO_ATM_AAL_PARM, SO_ATM_TRAFFIC_DES, SO_ATM_BLLI):
            return errno.ENOPROTOOPT     # the other AIX names: with SVCs (issue 6)
        cls = {SO_ATM_AAL_PARM: AalParm, SO_ATM_TRAFFIC_DES: TrafficDes, SO_ATM_BLLI: Blli}[optname]
        v = cls.coerce(value)            # TypeError / OSError(EINVAL) for a wrong shape
        err = v.check()
        if err:
            return err
        if pcb.peer is not None:
            return errno.EISCONN         # call parameters are fixed when the VC opens
        if optname == SO_ATM_AAL_PARM:
            pcb.aal = v
        elif optname == SO_ATM_TRAFFIC_DES:
            pcb.traffic = v
        else:
            pcb.blli = v
        return 0

    def getopt(self, pcb: AtmPcb, optname: int) -> AalParm | TrafficDes | Blli | None:
        if optname == SO_ATM_AAL_PARM:
            if pcb.peer is not None:
                return AalParm(*pcb.max_sdu)
            return pcb.aal_parm()
        if optname == SO_ATM_TRAFFIC_DES:
            return pcb.traffic
        if optname == SO_ATM_BLLI:
            return pcb.blli
        return None


def register(stack: "Stack") -> None:
    """Install the AF_NDD domain with the ATM connection-oriented datagram protocol."""
    stack.protosw.add_domain(AF_NDD, "ndd")
    stack.protosw.add(AF_NDD, Protosw("atm", SOCK_CONN_DGRAM, NDD_PROT_ATM, usrreqs=AtmUserRequests(stack.ns),
                                      flags=PR_ATOMIC | PR_CONNREQUIRED))


__all__ = ["AtmPcb", "AtmSockStats", "AtmUserRequests", "CONN_PVC", "CONN_SVC", "NDD_PROT_ATM",
           "SOCK_CONN_DGRAM", "SOL_NDD_ATM", "register"]
