"""The ATM socket family: socket(AF_NDD, SOCK_CONN_DGRAM, NDD_PROT_ATM) over an AtmNdd.

AIX's connection-oriented datagram service (docs/design.md, "Socket semantics" and "The ATM
path"): message boundaries are kept, nothing is retransmitted.  Addresses and option values:
sockaddr.py; socket state and the data path: pcb.py; SVC call control: svc.py (Q.2931 over
the SAAL on VC 0/5, one user-side UNI per adapter, started by the first SVC listen/connect).

  bind((nddname,))   names the adapter and takes an ns_alloc reference on it (opens it).
                     Unknown name -> ENODEV: that is what AIX's ns_alloc() returns, and
                     the NDD name is the whole "address" here.  A known NDD that is not an
                     ATM adapter -> EADDRNOTAVAIL: the name exists but is no address of this
                     family (Linux's errno for a name not usable by the socket).
                     Bound twice -> EINVAL (as Linux).  A PVC address binds its adapter only.
  bind(SVC address)  also claims the service access point (adapter, AESA with its
                     selector, subaddress, SO_ATM_BLLI): the called party callers name.
                     The same SAP twice -> EADDRINUSE (another B-LLI or subaddress on the
                     same AESA is another SAP); SO_ATM_BLLI set later re-keys it (EADDRINUSE
                     likewise).  A connecting socket's bound AESA is its calling number.
  listen(backlog)    SVC only: the socket must be bound to an ATM address (else
                     EDESTADDRREQ, as POSIX says for a protocol that cannot listen
                     unbound); a PVC -> EOPNOTSUPP (Linux's PVC sockets have no listen); a
                     connected or connecting SVC -> EINVAL; again -> only the backlog
                     changes.  backlog: the calls held before accept() (<= 0: 32, Linux's
                     ATM_BACKLOG_DEFAULT); one more is refused with cause 17 (user busy), a
                     call no listener matches with 88.  (SO_ATM_MAX_PEND is not the
                     backlog: see send.)
  accept()           not listening -> EINVAL.  AIX's two steps (IBM, accept(): "a socket is
                     not ready to transmit/receive data until SO_ATM_ACCEPT socket option is
                     called"): returns the oldest queued call while it is proceeding --
                     (socket, the caller's address from its calling party number, b"" if it
                     sent none).  getsockopt on it shows what the caller asked for (AAL,
                     traffic, bearer, QoS, B-LLI, B-HLI, calling/called, this side's view);
                     SO_ATM_AAL_PARM and SO_ATM_BLLI may be changed; setsockopt(SO_ATM_ACCEPT)
                     sends CONNECT with them (EISCONN twice, ECONNABORTED if the call was
                     cleared meanwhile -- recv then reads EOF); CONNECT ACKNOWLEDGE makes it
                     connected (a send waits till then; before SO_ATM_ACCEPT: ENOTCONN).
                     close() before SO_ATM_ACCEPT rejects the call: RELEASE with SO_ATM_CAUSE
                     as set, else cause 21 (call rejected).  A queued call cleared first is
                     skipped.  The accepted socket inherits the listener's SO_RCVBUF,
                     SO_SNDBUF and SO_ATM_MAX_PEND.
  connect(PVC)       local station only -- NO cell leaves: NDD_ATM_OPEN_VC with the AAL
                     and traffic parameters, then an NS_ATM_VC filter for the socket.
                     Unbound sockets bind to the address's adapter first (that binding
                     survives a failed connect, as an auto-bound name does).  EINVAL: bad
                     vc_type, VPI/VCI out of range or reserved (VCI 0-31), another adapter
                     than the bound one, or a socket bound to an ATM address; EADDRINUSE:
                     the VC is open (or claimed) already; EISCONN: connected.
  connect(SVC)       SETUP carrying SO_ATM_AAL_PARM, TRAFFIC_DES, BEARER, QOS_PARM, BLLI,
                     CALLING (svc_params.py), then waits for CONNECT (the VC the network
                     names is opened at its first answer).  Failure -> the errno of the
                     clearing cause (q2931.cause_to_errno: 1 EADDRNOTAVAIL, 3/37/47
                     EHOSTUNREACH, 22 EREMCHG, 27 EHOSTDOWN -- also when the signalling link
                     is down --, any other ECONNREFUSED), no answer (T303 twice, T310) ->
                     ETIMEDOUT, RESTART -> ENETRESET; SO_ATM_CAUSE has the cause.  The
                     socket is left unconnected and may connect again.  EALREADY while
                     connecting, EISCONN once connected, EOPNOTSUPP when listening.
  send               before connect -> ENOTCONN (connection-oriented: the peer is the VC,
                     there is no sendto destination to be missing, so not EDESTADDRREQ);
                     empty -> EINVAL (AAL5 Length 0 means "abort"); over the forward max SDU
                     -> EMSGSIZE.  Waits while the adapter's transmit queue is full, and on
                     a rate-enforced VC (SO_ATM_TRAFFIC_DES with a forward peak rate) while
                     SO_ATM_MAX_PEND of the socket's SDUs (AIX <sys/atmsock.h> atm_pcb:
                     "max outstanding writes", a u_char) are still in the adapter; 0 (the
                     default, tunstack's) leaves only the adapter's queue.
  recv               one SDU per call; a smaller buffer truncates (the rest is lost, as for
                     any datagram socket).  The queue is bounded by SO_RCVBUF (bytes, each SDU
                     charged like UDP); overflows and SDUs over the backward max are dropped
                     and counted (`sock.stats()`).
  call cleared       by the far end or the network while open (svc.reset_errno): normal
                     clearing (cause 16/31) reads as EOF -- recv returns what had arrived,
                     then b"" --, like a FIN; any other cause first raises ECONNRESET once,
                     a lost signalling link (T309) or a RESTART ENETRESET once; then EOF.
                     send -> EPIPE.  SO_ATM_CAUSE tells the cause.
  close              PVC: deletes the filter and closes the VC (SDUs still queued in the
                     adapter are discarded, `vc_closed_tx_drops`), so the VC can be opened
                     again.  SVC: the same, after RELEASE with SO_ATM_CAUSE as set (16 by
                     default, 21 for an accepted call not confirmed by SO_ATM_ACCEPT); a
                     listener refuses its queued calls (cause 21, call rejected).
"""
from __future__ import annotations

import errno
import socket as _pysocket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ndd import constants as C
from ndd.constants import AF_NDD, NDD_PROT_ATM
from protocols.contracts import SS_CANTRCVMORE, SS_CANTSENDMORE, SS_ISACCEPTING, SS_ISCONNECTED, SS_ISCONNECTING
from protocols.sockopt import get_socket_option, set_socket_option

from .pcb import SDU_OVERHEAD, AtmPcb, St, close_vc, errno_of, free_adapter, open_vc
from .sockaddr import (
    CONN_PVC,
    CONN_SVC,
    SO_ATM_AAL_PARM,
    SO_ATM_ACCEPT,
    SO_ATM_BEARER,
    SO_ATM_BHLI,
    SO_ATM_BLLI,
    SO_ATM_CALLED,
    SO_ATM_CALLING,
    SO_ATM_CAUSE,
    SO_ATM_MAX_PEND,
    SO_ATM_PARAM,
    SO_ATM_QOS_PARM,
    SO_ATM_TRAFFIC_DES,
    SO_ATM_TRANSIT_SEL,
    AalParm,
    AtmAddr,
    AtmCause,
    Bearer,
    Bhli,
    Blli,
    ConnectIe,
    QosParm,
    SockaddrNddAtm,
    TrafficDes,
    TransitSel,
    check_pvc,
    coerce,
)
from .svc import SvcManager

if TYPE_CHECKING:
    from ndd.ndd import Ndd, StatusBlock
    from ndd.services import NetServices
    from protocols.contracts import ProtocolHost

SOL_NDD_ATM = NDD_PROT_ATM   # option level: the protocol number (BSD rule; see sockaddr.py)
ATM_BACKLOG_DEFAULT = 32     # Linux <linux/atmdev.h>: listen(fd, 0) still takes calls
_CALL_OPTIONS: dict[int, Any] = {SO_ATM_AAL_PARM: AalParm, SO_ATM_TRAFFIC_DES: TrafficDes, SO_ATM_BLLI: Blli,
                                  SO_ATM_BEARER: Bearer, SO_ATM_QOS_PARM: QosParm, SO_ATM_CALLING: AtmAddr,
                                  SO_ATM_BHLI: Bhli, SO_ATM_TRANSIT_SEL: TransitSel}
_FIELD = {SO_ATM_AAL_PARM: "aal", SO_ATM_TRAFFIC_DES: "traffic", SO_ATM_BLLI: "blli", SO_ATM_BEARER: "bearer",
          SO_ATM_QOS_PARM: "qos", SO_ATM_CALLING: "calling", SO_ATM_BHLI: "bhli", SO_ATM_TRANSIT_SEL: "transit"}
# what an accepted call may still change before SO_ATM_ACCEPT (<sys/call_ie.h> indaccept_ie_t)
_ACCEPT_OPTIONS = (SO_ATM_AAL_PARM, SO_ATM_BLLI)
MAX_PEND_MAX = 0xFF          # SO_ATM_MAX_PEND is a u_char (<sys/atmsock.h> atm_pcb.max_pend)
_IN_CALL = (St.CONNECTING, St.CONNECTED, St.RELEASED, St.PENDING, St.ACCEPTING)
# so_state by socket state; a cleared call stays "connected" (getpeername, recv's EOF) but moves no more data
_SO_STATE = {St.IDLE: 0, St.LISTENING: SS_ISACCEPTING, St.CONNECTING: SS_ISCONNECTING,
             St.PENDING: SS_ISCONNECTING, St.ACCEPTING: SS_ISCONNECTING, St.CONNECTED: SS_ISCONNECTED,
             St.RELEASED: SS_ISCONNECTED | SS_CANTSENDMORE | SS_CANTRCVMORE}


class AtmUserRequests:
    """pr_usrreqs of the ATM service (protocols.contracts.UserRequests; sans-IO: errnos, never
    waits).  Addresses are SockaddrNddAtm both ways (AtmSocket parses and formats them)."""

    def __init__(self, ns: NetServices, now: Callable[[], float] | None = None, timers: Any = None) -> None:
        self.ns = ns
        self.svc = SvcManager(ns, now or ns.clock, timers)
        # senders refused by a full adapter queue, by adapter, until it reports NDD_TX_READY
        self._tx_waiting: dict[str, list[AtmPcb]] = {}

    # --- life ------------------------------------------------------------------------------
    def attach(self, now: float) -> AtmPcb:
        return AtmPcb()

    def set_upcall(self, pcb: AtmPcb, upcall: Callable[[], None]) -> None:
        pcb.on_readable = upcall

    def detach(self, pcb: AtmPcb, now: float) -> None:
        self._stop_waiting(pcb)
        self.disconnect(pcb, now)
        self.svc.unclaim(pcb)
        pcb.local = None
        free_adapter(self.ns, pcb)
        pcb.queue.clear()
        pcb.queued = 0

    # --- names and connections -----------------------------------------------------------------
    def bind(self, pcb: AtmPcb, addr: SockaddrNddAtm, now: float) -> int:
        """An SVC address: the adapter, then the SAP callers name; a PVC address: the adapter only
        (a PVC's VPI/VCI is chosen by connect)."""
        if addr.vc_type == CONN_SVC:
            return self.bind_svc(pcb, addr)
        return self.bind_adapter(pcb, addr.nddname)

    def bind_adapter(self, pcb: AtmPcb, nddname: str) -> int:
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
            return errno_of(exc)
        return 0

    def bind_svc(self, pcb: AtmPcb, addr: SockaddrNddAtm) -> int:
        """bind() of an SVC address: the adapter, then the SAP."""
        err = self.bind_adapter(pcb, addr.nddname)
        if err:
            return err
        pcb.local = SockaddrNddAtm.svc(addr.nddname, addr.atm_address, addr.subaddress)
        err = self.svc.claim(pcb)
        if err:
            pcb.local = None
            free_adapter(self.ns, pcb)
        return err

    def listen(self, pcb: AtmPcb, backlog: int, now: float) -> int:
        if pcb.peer is not None and pcb.peer.vc_type == CONN_PVC and pcb.connected:
            return errno.EOPNOTSUPP
        if pcb.state in _IN_CALL:
            return errno.EINVAL
        if pcb.local is None:
            return errno.EDESTADDRREQ
        backlog = min(backlog if backlog > 0 else ATM_BACKLOG_DEFAULT, _pysocket.SOMAXCONN)
        if pcb.state is St.LISTENING:
            pcb.backlog = backlog
            return 0
        return self.svc.listen(pcb, backlog)

    def accept(self, pcb: AtmPcb, now: float) -> tuple[AtmPcb, SockaddrNddAtm | None] | None:
        """The oldest queued call, still to be confirmed with SO_ATM_ACCEPT (AIX's two steps)."""
        child = self.svc.accept(pcb)
        return (child, child.peer) if child is not None else None

    def accept_active(self, pcb: AtmPcb, now: float) -> tuple[AtmPcb, SockaddrNddAtm | None] | None:
        """tunstack's own one-step accept, for in-stack users (CLIP's calls): CONNECT for the
        oldest queued call at once, the call returned once CONNECT ACKNOWLEDGE came."""
        child = self.svc.accept(pcb, one_step=True)
        return (child, child.peer) if child is not None else None

    def connect(self, pcb: AtmPcb, addr: SockaddrNddAtm, now: float) -> int:
        if pcb.state is St.LISTENING:
            return errno.EOPNOTSUPP      # POSIX: "the socket is listening and cannot be connected"
        if pcb.state is St.CONNECTING:
            return errno.EALREADY
        if pcb.state is not St.IDLE:
            return errno.EISCONN
        err = check_pvc(addr)
        if err:
            return err
        if addr.vc_type == CONN_PVC and pcb.local is not None:
            return errno.EINVAL          # bound to an ATM address: a switched-VC socket
        if pcb.ndd is None:
            err = self.bind_adapter(pcb, addr.nddname)
            if err:
                return err
        elif pcb.ndd.ndd_name != addr.nddname:
            return errno.EINVAL
        if addr.vc_type == CONN_SVC:
            return self.svc.connect(pcb, addr)
        err = open_vc(self.ns, pcb, addr.vpi, addr.vci, pcb.aal_parm(), pcb.traffic.pcr())
        if not err:
            pcb.peer = SockaddrNddAtm.pvc(addr.nddname, addr.vpi, addr.vci)
            pcb.state = St.CONNECTED
        return err

    def abandon_connect(self, pcb: AtmPcb, now: float) -> None:
        """A cancelled connect(): clear the call (SO_ATM_CAUSE as set), stay unconnected."""
        if pcb.state is St.CONNECTING:
            self.svc.release(pcb)
            pcb.peer = None

    def disconnect(self, pcb: AtmPcb, now: float) -> int:
        if pcb.call is not None or pcb.pending or pcb.state is St.LISTENING:
            self.svc.release(pcb)
        close_vc(self.ns, pcb)
        pcb.peer = None
        pcb.state = St.IDLE
        return 0

    def shutdown(self, pcb: AtmPcb, how: int, now: float) -> int:
        return 0 if pcb.connected else errno.ENOTCONN    # the socket marks its halves

    # --- data ------------------------------------------------------------------------------------
    def send(self, pcb: AtmPcb, data: memoryview, addr: SockaddrNddAtm | None, now: float, flags: int = 0) -> int:
        """One SDU: its length, or -errno; -EAGAIN while the adapter's queue is full (the
        socket's upcall runs when the adapter reports room, NDD_STATUS/NDD_TX_READY)."""
        if addr is not None:             # sendto: a VC has one destination
            if pcb.peer is None:
                return -errno.ENOTCONN
            if addr.astuple() != pcb.peer.astuple():
                return -errno.EISCONN
        if pcb.state is St.RELEASED:
            return -errno.EPIPE
        if pcb.state is St.ACCEPTING:
            return -errno.EAGAIN         # CONNECT sent: until CONNECT ACKNOWLEDGE (the upcall runs)
        if pcb.state is not St.CONNECTED or pcb.vc is None:
            return -errno.ENOTCONN
        if not len(data):
            return -errno.EINVAL
        if len(data) > pcb.max_sdu[0]:
            return -errno.EMSGSIZE
        err = pcb.ndd.atm_output(*pcb.vc, data)
        if err in (errno.ENOBUFS, errno.EAGAIN):
            self._wait_for_room(pcb)
            return -errno.EAGAIN
        if err:
            return -err
        pcb.stats.sdus_out += 1
        pcb.stats.bytes_out += len(data)
        return len(data)

    def _wait_for_room(self, pcb: AtmPcb) -> None:
        """Hear from the adapter when its transmit queue has room again (one status user per
        adapter while any socket waits; the list is bounded by the sockets on the adapter)."""
        ndd = pcb.ndd
        waiting = self._tx_waiting.get(ndd.ndd_name)
        if waiting is None:
            self.ns.ns_add_status(ndd, self._tx_status, C.NDD_STATUS | C.NDD_HARD_FAIL)
            waiting = self._tx_waiting[ndd.ndd_name] = []
        if pcb not in waiting:
            waiting.append(pcb)

    def _tx_status(self, ndd: Ndd, block: StatusBlock) -> None:
        if block.code >= C.NDD_STAT_BLOCK:
            # ATM_VC_*_DONE and other device-specific codes are not one bit each
            # (<sys/cdli_atmuser.h>): CLOSE_DONE's low bit is not NDD_HARD_FAIL
            return
        if block.code & C.NDD_STATUS and block.option[:1] == (C.NDD_LINK_UP,):
            return
        # room again, the link down or the adapter dead: every waiting sender tries again
        self._forget_adapter(ndd)
        for pcb in self._tx_waiting.pop(ndd.ndd_name, ()):
            pcb.on_readable()

    def _stop_waiting(self, pcb: AtmPcb) -> None:
        """A closing socket leaves the adapter's list (the last one takes the status user away,
        before its ns_free may close the adapter)."""
        ndd = pcb.ndd
        waiting = self._tx_waiting.get(ndd.ndd_name) if ndd is not None else None
        if waiting is None or pcb not in waiting:
            return
        waiting.remove(pcb)
        if not waiting:
            del self._tx_waiting[ndd.ndd_name]
            self._forget_adapter(ndd)

    def _forget_adapter(self, ndd: Ndd) -> None:
        try:
            self.ns.ns_del_status(ndd, self._tx_status)
        except OSError:
            pass                         # the adapter was freed or detached under us

    def recv(self, pcb: AtmPcb, bufsize: int, peek: bool, now: float) -> tuple[bytes, SockaddrNddAtm | None] | None:
        """(SDU, the peer's address); b"" once a cleared call's SDUs are all read (EOF)."""
        if not pcb.queue:
            return (b"", pcb.peer) if pcb.state is St.RELEASED else None
        if peek:
            return pcb.queue[0], pcb.peer
        sdu = pcb.queue.popleft()
        pcb.queued -= len(sdu) + SDU_OVERHEAD
        return sdu, pcb.peer

    # --- what the socket may ask ---------------------------------------------------------------------
    def state(self, pcb: AtmPcb) -> int:
        return _SO_STATE[pcb.state]

    def readable(self, pcb: AtmPcb) -> bool:
        return bool(pcb.queue) or pcb.state is St.RELEASED or bool(pcb.pending) or bool(pcb.so_error)

    def writable(self, pcb: AtmPcb) -> bool:
        return True          # as any datagram socket: send itself waits for the adapter

    def take_error(self, pcb: AtmPcb) -> int:
        return pcb.take_error()

    def sockaddr(self, pcb: AtmPcb) -> SockaddrNddAtm:
        if pcb.local is not None:
            return pcb.local
        if pcb.peer is not None and pcb.peer.vc_type == CONN_SVC:
            calling = self._getopt(pcb, SO_ATM_CALLING)    # what our SETUP said we are
            return SockaddrNddAtm.svc(pcb.peer.nddname, calling.address, calling.subaddress)
        if pcb.peer is not None:
            return pcb.peer                  # a PVC's VPI/VCI name both ends at this UNI
        return SockaddrNddAtm(pcb.ndd.ndd_name if pcb.ndd is not None else "", 0)

    def peeraddr(self, pcb: AtmPcb) -> SockaddrNddAtm | None:
        accepted = pcb.state in (St.PENDING, St.ACCEPTING) and pcb.listener is None and pcb.params is not None
        return pcb.peer if pcb.connected or accepted else None

    # --- options ---------------------------------------------------------------------------
    def setsockopt(self, pcb: AtmPcb, level: int, name: int, value: Any, now: float) -> int:
        if level == _pysocket.SOL_SOCKET:    # SO_RCVBUF bounds the receive queue, as for UDP
            return set_socket_option(pcb, name, value)
        if level != SOL_NDD_ATM:
            return errno.ENOPROTOOPT
        if name == SO_ATM_MAX_PEND:
            if not isinstance(value, int) or not 0 <= value <= MAX_PEND_MAX:
                return errno.EINVAL
            if pcb.vc is not None:
                return errno.EISCONN         # the adapter holds the VC to it from its opening
            pcb.max_pend = value
            return 0
        if name == SO_ATM_ACCEPT:
            return self.svc.confirm(pcb)     # the value is not looked at
        if name == SO_ATM_PARAM:
            return self._set_param(pcb, value, now)
        cls = AtmCause if name == SO_ATM_CAUSE else _CALL_OPTIONS.get(name)
        if cls is None:
            return errno.ENOPROTOOPT     # SO_ATM_CALLED is read-only, as SO_ERROR; the rest not served
        v: Any
        alt: tuple[Blli, ...] = ()
        if name == SO_ATM_BLLI:          # up to CM_MAX_BLLI choices (blli_t each)
            choices = Blli.coerce_choices(value)
            v, alt = choices[0], choices[1:]
            if any(b.check() for b in choices) or any(not b.present for b in alt):
                return errno.EINVAL
            if alt and pcb.state in _IN_CALL:
                return errno.EINVAL      # an answer (indaccept_ie_t) holds one
        else:
            v = cls.coerce(value) if cls is AtmAddr else coerce(cls, value)   # TypeError / EINVAL: wrong shape
        err = v.check()
        if err:
            return err
        if name == SO_ATM_CAUSE:
            pcb.release_cause, pcb.release_diag = v.cause, v.diag
            return 0
        if pcb.state in _IN_CALL:
            if not (name in _ACCEPT_OPTIONS and self._unconfirmed(pcb)):
                return errno.EISCONN     # call parameters are fixed when the VC opens
        elif name == SO_ATM_BLLI and pcb.local is not None:
            err = self.svc.claim(pcb, v)     # a bound socket's SAP changes with it
            if err:
                return err
        setattr(pcb, _FIELD[name], v)
        if name == SO_ATM_BLLI:
            pcb.blli_alt = alt
        return 0

    def _set_param(self, pcb: AtmPcb, value: Any, now: float) -> int:
        """SO_ATM_PARAM: connect_ie_t's parameters, each as its own option would take it (all
        checked before any is set); the called party is connect's address, not this."""
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = ConnectIe.unpack(bytes(value))
        if not isinstance(value, ConnectIe):
            raise TypeError(f"a bytes-like object or ConnectIe is required, not '{type(value).__name__}'")
        if pcb.state in _IN_CALL:
            return errno.EISCONN
        opts: list[tuple[int, Any]] = [(SO_ATM_AAL_PARM, value.aal), (SO_ATM_TRAFFIC_DES, value.traffic),
                                       (SO_ATM_BEARER, value.bearer), (SO_ATM_BHLI, value.bhli),
                                       (SO_ATM_QOS_PARM, value.qos), (SO_ATM_TRANSIT_SEL, value.transit)]
        if value.blli:
            opts.append((SO_ATM_BLLI, value.blli))
        if value.calling.address:
            opts.append((SO_ATM_CALLING, value.calling))
        if any(v.check() for n, v in opts if n != SO_ATM_BLLI) or any(b.check() for b in value.blli):
            return errno.EINVAL
        for name, v in opts:
            err = self.setsockopt(pcb, SOL_NDD_ATM, name, v, now)
            if err:
                return err
        return 0

    def _param(self, pcb: AtmPcb) -> ConnectIe:
        blli = self._getopt(pcb, SO_ATM_BLLI)
        return ConnectIe(self._getopt(pcb, SO_ATM_AAL_PARM), pcb.traffic, pcb.bearer, pcb.bhli,
                         ((blli, *pcb.blli_alt) if blli.present else ()), self._getopt(pcb, SO_ATM_CALLED),
                         self._getopt(pcb, SO_ATM_CALLING), pcb.qos, pcb.transit)

    @staticmethod
    def _unconfirmed(pcb: AtmPcb) -> bool:
        """An incoming call accept() returned, SO_ATM_ACCEPT not set yet."""
        return pcb.state is St.PENDING and pcb.listener is None

    def getsockopt(self, pcb: AtmPcb, level: int, name: int, now: float) -> Any:
        if level == _pysocket.SOL_SOCKET:
            return get_socket_option(pcb, name)
        return self._getopt(pcb, name) if level == SOL_NDD_ATM else None

    def _getopt(self, pcb: AtmPcb, optname: int) -> Any:
        if optname == SO_ATM_AAL_PARM:
            if pcb.state is St.PENDING:
                return pcb.aal_parm()        # the caller's, or as changed before SO_ATM_ACCEPT
            return AalParm(*pcb.max_sdu) if pcb.connected or pcb.vc else pcb.aal_parm()
        if optname == SO_ATM_CALLING:
            if pcb.params is not None:
                return pcb.params.calling
            local = pcb.local
            return pcb.calling or (AtmAddr(local.atm_address, local.subaddress, local.plan) if local else AtmAddr())
        if optname == SO_ATM_CALLED:
            return pcb.params.called if pcb.params is not None else AtmAddr()
        if optname == SO_ATM_MAX_PEND:
            return pcb.max_pend
        if optname == SO_ATM_PARAM:
            return self._param(pcb)
        if optname == SO_ATM_CAUSE:
            return pcb.cause
        name = _FIELD.get(optname)
        return getattr(pcb, name) if name is not None else None

    def info(self, pcb: AtmPcb) -> dict[str, Any]:
        """The data VC while it is open, and the socket's counters."""
        return {"vc": pcb.vc, "stats": pcb.stats.as_dict()}


if TYPE_CHECKING:
    from protocols.contracts import UserRequests

    def _implements_the_contract(requests: AtmUserRequests) -> UserRequests:
        return requests     # mypy checks every request's signature against protocols/contracts.py


def svc_manager(host: ProtocolHost) -> SvcManager:
    """The host's SVC call control (start/stop an adapter's UNI, its endpoints, stats): the
    one of the AF_NDD ATM protocol the Stack installed (Stack._build_atm_sockets)."""
    pr = host.protosw.find_proto(AF_NDD, NDD_PROT_ATM)
    assert pr is not None and isinstance(pr.usrreqs, AtmUserRequests)
    return pr.usrreqs.svc


__all__ = ["ATM_BACKLOG_DEFAULT", "SOL_NDD_ATM", "AtmUserRequests", "svc_manager"]
