"""One ATM socket's state (PVC or SVC) and its data path: the VC on the adapter.

A PVC and a connected SVC move data the same way: NDD_ATM_OPEN_VC with the AAL and
traffic parameters, an NS_ATM_VC filter that queues each SDU on the socket, atm_output
to send.  Only how the VPI/VCI is found differs (the address, or the network's
connection identifier).  No trio here.
"""
from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from ndd import constants as C
from ndd.atm import DEFAULT_MTU, VcParams
from ndd.counters import Counters
from ndd.demux import NS_PROTO, NsFilter, NsUser
from protocols.atm.uni.causes import CAUSE_CALL_REJECTED, CAUSE_NORMAL_CLEARING
from protocols.sockopt import BUF_DEFAULT

from .sockaddr import AalParm, AtmAddr, AtmCause, Bearer, Bhli, Blli, QosParm, SockaddrNddAtm, TrafficDes, TransitSel

if TYPE_CHECKING:
    from ndd.ndd import Ndd
    from ndd.pktbuf import PacketBuffer
    from ndd.services import NetServices

    from .svc_params import CallParams

SDU_OVERHEAD = 768           # charged per queued SDU, like UDP's skb truesize


class St(str, Enum):
    """Where a socket is.  PVCs know IDLE and CONNECTED only."""
    IDLE = "idle"                # unconnected (bound or not)
    CONNECTING = "connecting"    # SETUP sent, waiting for CONNECT
    CONNECTED = "connected"      # data flows
    RELEASED = "released"        # the call was cleared under us: EOF / the error, once
    LISTENING = "listening"
    PENDING = "pending"          # an incoming call (CALL PROCEEDING sent): queued, or accepted
                                 # and not yet confirmed by SO_ATM_ACCEPT
    ACCEPTING = "accepting"      # SO_ATM_ACCEPT sent CONNECT, waiting for CONNECT ACKNOWLEDGE


@dataclass
class AtmSockStats(Counters):
    sdus_in: int = 0
    sdus_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    rcvq_drops: int = 0       # the receive queue (SO_RCVBUF) was full
    oversize_drops: int = 0   # over the backward max SDU (SO_ATM_AAL_PARM)


class AtmPcb:
    """One ATM socket: its adapter (bind), its VC (connect / the call), its parameters."""

    def __init__(self) -> None:
        self.ndd: Any = None                       # the bound AtmNdd (an ns_alloc reference)
        self.state = St.IDLE
        self.peer: SockaddrNddAtm | None = None    # the far end: the PVC, or the SVC's party
        self.vc: tuple[int, int] | None = None     # the data VC, while open
        self.aal: AalParm | None = None            # None: the adapter's MTU both ways
        self.traffic = TrafficDes()
        self.blli = Blli()
        self.blli_alt: tuple[Blli, ...] = ()       # a caller's 2nd and 3rd B-LLI choices (SETUP only)
        self.bhli = Bhli()
        self.transit = TransitSel()                # SO_ATM_TRANSIT_SEL
        self.bearer = Bearer()
        self.qos = QosParm()
        self.max_sdu = (0, 0)                      # (fwd, bwd) fixed when the VC opens
        self.user: NsUser | None = None
        self.queue: deque[bytes] = deque()
        self.queued = 0
        self.rcvbuf = BUF_DEFAULT     # as UDP
        self.sndbuf = BUF_DEFAULT
        self.reuseaddr = self.reuseport = self.broadcast = False   # SOL_SOCKET options (protocols/sockopt.py)
        self.keepalive = False
        self.so_error = 0
        self.stats = AtmSockStats()
        self.on_readable: Callable[[], None] = lambda: None
        # an in-stack user of the VC (CLIP, protocols/atm/clip/calls.py) takes each SDU as it
        # comes, as Linux's clip replaces a vcc's push(): nothing is queued on the socket then
        self.sink: Callable[[AtmPcb, PacketBuffer], None] | None = None
        # --- SVC ---
        self.local: SockaddrNddAtm | None = None   # bind()'s ATM address (the SAP with `blli`)
        self.calling: AtmAddr | None = None        # SO_ATM_CALLING as set
        self.params: CallParams | None = None      # what the call carried, this socket's view
        self.call: Any = None                      # uni.call.Call while one exists
        self.endpoint: Any = None                  # the UniEndpoint of `call`
        self.cause = AtmCause()                    # SO_ATM_CAUSE: why the last call ended
        self.release_cause: int | None = None      # SO_ATM_CAUSE as set: what our own release sends
        self.release_diag = b""                    # ... and its diagnostics
        self.max_pend = 0                          # SO_ATM_MAX_PEND (0: no limit of its own)
        self.backlog = 0                           # listen(backlog)
        self.pending: deque[AtmPcb] = deque()      # a listener's incoming calls, in order
        self.listener: AtmPcb | None = None        # an incoming call's listener (until accepted)
        self.confirmed = False                     # an incoming call: SO_ATM_ACCEPT sent CONNECT
        self.blli_choices = 0                      # an incoming call: the B-LLIs its SETUP offered

    @property
    def connected(self) -> bool:
        return self.state in (St.CONNECTED, St.RELEASED)

    def take_error(self) -> int:
        err, self.so_error = self.so_error, 0
        return err

    def own_release_cause(self) -> int:
        """What our release of the call sends: SO_ATM_CAUSE if set, else 21 (call rejected) for
        an incoming call not accepted (SO_ATM_ACCEPT) yet, 16 (normal clearing) otherwise."""
        if self.release_cause is not None:
            return self.release_cause
        return CAUSE_CALL_REJECTED if self.state is St.PENDING else CAUSE_NORMAL_CLEARING

    def aal_parm(self) -> AalParm:
        if self.aal is not None:
            return self.aal
        mtu = self.ndd.ndd_mtu if self.ndd is not None else DEFAULT_MTU
        return AalParm(mtu, mtu)

    # the demuxer's NS_PROTO isr: the link header is already stripped
    def input(self, ndd: Ndd, pkt: PacketBuffer, _data: object) -> None:
        if self.sink is not None:
            self.sink(self, pkt)
            return
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


def errno_of(exc: OSError) -> int:
    return exc.errno or errno.EIO


def open_vc(ns: NetServices, pcb: AtmPcb, vpi: int, vci: int, aal: AalParm, pcr: float) -> int:
    """Open VC vpi/vci on the socket's adapter and claim it for the socket: 0 or an errno
    (EADDRINUSE: open already, or claimed by another user such as CLIP).  A rate-enforced VC
    (`pcr`, a forward peak rate in cells/s: SO_ATM_TRAFFIC_DES's `pcr()`) holds at most
    SO_ATM_MAX_PEND of the socket's SDUs in the
    adapter; an unshaped one drains at the line rate and only the adapter's queue bounds it."""
    ndd = pcb.ndd
    # the adapter keeps one max SDU per VC: the larger; each direction is held to its own here
    params = VcParams(vpi, vci, max_sdu=max(aal.fwd_max_sdu, aal.bwd_max_sdu), pcr=pcr,
                      max_txq=pcb.max_pend if pcr else 0)
    try:
        ndd.ndd_ctl(C.NDD_ATM_OPEN_VC, params)
    except OSError as exc:
        return errno_of(exc)
    user = NsUser(pcb.input, None, NS_PROTO)
    try:
        ns.ns_add_filter(ndd, NsFilter(C.NS_ATM_VC, vpi=vpi, vci=vci), user)
    except OSError as exc:
        ndd.ndd_ctl(C.NDD_ATM_CLOSE_VC, (vpi, vci))
        # EEXIST: another user (e.g. CLIP) claims the VC in the demuxer -- in use all the same
        return errno.EADDRINUSE if exc.errno == errno.EEXIST else errno_of(exc)
    pcb.user = user
    pcb.vc = (vpi, vci)
    pcb.max_sdu = (aal.fwd_max_sdu, aal.bwd_max_sdu)
    return 0


def close_vc(ns: NetServices, pcb: AtmPcb) -> None:
    """Delete the filter and close the VC (SDUs still queued in the adapter are discarded),
    so it can be opened again.  Data already queued on the socket stays readable."""
    vc, pcb.vc = pcb.vc, None
    if vc is None:
        return
    ndd = pcb.ndd
    try:
        ns.ns_del_filter(ndd, NsFilter(C.NS_ATM_VC, vpi=vc[0], vci=vc[1]), pcb.user)
    except OSError:
        pass    # the adapter was freed under us (no reference left: ns_del_filter is ENODEV)
    try:
        ndd.ndd_ctl(C.NDD_ATM_CLOSE_VC, vc)
    except OSError:
        pass
    pcb.user = None


def free_adapter(ns: NetServices, pcb: AtmPcb) -> None:
    """Drop the socket's ns_alloc reference (the last one closes the adapter)."""
    if pcb.ndd is not None:
        ndd, pcb.ndd = pcb.ndd, None
        if ns.refcount.get(ndd.ndd_name, 0) > 0:
            ns.ns_free(ndd)
