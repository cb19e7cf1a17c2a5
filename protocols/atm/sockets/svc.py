"""SVC call control for ATM sockets: one per Stack, no trio (the socket layer waits).

The manager runs the user side of the UNI on each ATM adapter that SVC sockets use
(`UniEndpoint`, Side.USER, on VC 0/5; started by the first listen/connect there, or by
`start`), keeps the service access points of bound SVC sockets, and turns call events
into socket state (protocols/atm/sockets/pcb.py):

  outgoing  connect(): SETUP with the socket's parameters (svc_params.py).  The network's
            first answer names the VC; it is opened at once, so SDUs sent right after
            CONNECT are not lost.  CONNECT -> CONNECTED.
  incoming  SETUP.indication: the listener whose SAP matches the called address,
            subaddress and B-LLI (and B-HLI, when it set one) gets it -- none: RELEASE
            COMPLETE cause 88 (incompatible destination); its queue holds listen()'s
            backlog of calls already: cause 17 (user busy); the VC is taken: cause 35.
            Otherwise the VC opens, CALL PROCEEDING goes back and the call waits in the
            queue (the network's T310 bounds the wait).
  accept    AIX's two steps (IBM, accept(): "a socket is not ready to transmit/receive
            data until SO_ATM_ACCEPT socket option is called"; <sys/call_ie.h>
            call_ind_accept, indaccept_ie_t {aal_parm, blli}): accept() takes the oldest
            queued call off the queue while it is still proceeding; its socket shows the
            caller's parameters (getsockopt) and may change SO_ATM_AAL_PARM and SO_ATM_BLLI;
            setsockopt(SO_ATM_ACCEPT) sends CONNECT with them (`confirm`), CONNECT
            ACKNOWLEDGE makes it CONNECTED.  Closed before that, the call is rejected:
            RELEASE with SO_ATM_CAUSE, or 21 (call rejected).  `accept(one_step=True)` is
            tunstack's own in-stack form (CLIP's calls): CONNECT at once, the call handed
            over once active.
  cleared   RELEASE.indication: a connecting socket fails with `connect_errno`, a
            queued call leaves its queue, an open call keeps its data for reading and
            then reads EOF -- after an error first, per `reset_errno`.

SAP matching: the AESA (selector included) must be equal; a listener with a subaddress
needs that called subaddress; a listener's B-LLI must be one the SETUP offers, and a
listener without one takes any call; the most specific listener wins.

A started endpoint whose first establishment fails (the switch is not there yet, or it
answers BGREJ: a switch that still remembers our previous incarnation takes our first
BGN, N(SQ) 1 again, for a retransmission -- Q.2110 §20.1) asks again after
`LINK_RETRY` s, up to `LINK_RETRIES` times; the next BGN carries a new N(SQ).  Calls
placed meanwhile are cleared with cause 27 (EHOSTDOWN) by the Q.2931 entity: tools
wait for `link_up` before calling.  Once the link has been up, Q.2931 itself asks for
it again when it needs it (SETUP, T309).
"""
from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from ndd.counters import Counters
from protocols.atm.uni.call import CallEv, CallEvent, Side, Why
from protocols.atm.uni.causes import (
    CAUSE_CALL_REJECTED,
    CAUSE_INCOMPATIBLE_DESTINATION,
    CAUSE_MANDATORY_IE_MISSING,
    CAUSE_NORMAL_CLEARING,
    CAUSE_NORMAL_UNSPECIFIED,
    CAUSE_REQUESTED_VPCI_VCI_NOT_AVAILABLE,
    CAUSE_USER_BUSY,
    CAUSE_VPCI_VCI_ASSIGNMENT_FAILURE,
    cause_to_errno,
    restart_errno,
)
from protocols.atm.uni.endpoint import UniEndpoint

from .pcb import AtmPcb, St, close_vc, errno_of, free_adapter, open_vc
from .sockaddr import CM_DIAG_SIZE, AalParm, AtmAddr, AtmCause, Blli, SockaddrNddAtm
from .svc_params import CallParams, connect_ies, connect_params, setup_bllis, setup_ies, setup_params

if TYPE_CHECKING:
    from ndd.services import NetServices

LINK_RETRY = 0.5             # seconds before a start-up establishment is tried again
LINK_RETRIES = 3
_NORMAL = (CAUSE_NORMAL_CLEARING, CAUSE_NORMAL_UNSPECIFIED)

Sap = tuple[str, bytes, bytes, Blli]    # (adapter, AESA, subaddress, B-LLI)


def connect_errno(ev: CallEvent) -> int:
    """The errno of a call that never became active (causes.py: linux-atm's mapping): no answer -> ETIMEDOUT,
    RESTART -> ENETRESET, otherwise the cause's (27 -> EHOSTDOWN when the signalling link
    is gone or never came up, 1 -> EADDRNOTAVAIL, 3 -> EHOSTUNREACH, ... ECONNREFUSED)."""
    if ev.why is Why.TIMER:
        return errno.ETIMEDOUT
    if ev.why is Why.RESTART:
        return restart_errno()
    return cause_to_errno(ev.cause or CAUSE_NORMAL_UNSPECIFIED)


def reset_errno(ev: CallEvent) -> int:
    """The error an open call's socket reports once when the call is cleared under it:
    0 for the peer's normal clearing (16/31: plain EOF, as a FIN), ENETRESET when the
    signalling link was lost (T309) or the VC restarted, ECONNRESET otherwise."""
    if ev.why in (Why.SAAL, Why.RESTART):
        return errno.ENETRESET
    if ev.why is Why.PEER and ev.cause in _NORMAL:
        return 0
    return errno.ECONNRESET


@dataclass
class SvcStats(Counters):
    calls_out: int = 0
    calls_in: int = 0
    refused_no_listener: int = 0    # cause 88
    refused_busy: int = 0           # cause 17
    refused_vc: int = 0             # cause 35/36: the network's VC is in use here


class SvcManager:
    def __init__(self, ns: NetServices, now: Callable[[], float], timers: Any) -> None:
        self.ns, self.now, self.timers = ns, now, timers
        self.endpoints: dict[str, UniEndpoint] = {}
        self.saps: dict[Sap, AtmPcb] = {}
        self.stats = SvcStats()
        self.kick: Callable[..., None] = lambda at=None: None   # TimerService.register sets it
        self._retry_at: dict[str, float] = {}                   # adapter -> when to ask again
        self._tries: dict[str, int] = {}
        self._was_up: set[str] = set()
        if timers is not None:
            timers.register(self)

    # --- the signalling endpoints ---------------------------------------------------------
    def start(self, nddname: str) -> UniEndpoint:
        """The adapter's UNI (user side), started if need be: it takes an adapter reference
        of its own and asks for the SAAL link at once.  OSError from the adapter (ENODEV,
        EADDRINUSE when VC 0/5 is taken)."""
        ep = self.endpoints.get(nddname)
        if ep is not None:
            return ep
        ndd = self.ns.ns_alloc(nddname)
        try:
            ep = UniEndpoint(self.ns, ndd, self.now, side=Side.USER, timers=self.timers,
                             on_event=partial(self._event, nddname))
            ep.open(establish=True)
        except OSError:
            self.ns.ns_free(ndd)
            raise
        self.endpoints[nddname] = ep
        return ep

    def stop(self, nddname: str) -> None:
        """Drop the endpoint and its adapter reference: its calls end (Why.SAAL: connecting
        sockets per the cause, open ones ENETRESET).  The SSCOP END it sends still leaves
        (VC 0/5 is closed draining) as long as the adapter's PHY stays up; tools release
        the link first and wait for the adapter to drain."""
        ep = self.endpoints.pop(nddname, None)
        self._retry_at.pop(nddname, None)
        self._tries.pop(nddname, None)
        self._was_up.discard(nddname)
        if ep is not None:
            ep.close()
            self.ns.ns_free(ep.saal.ndd)

    def endpoint(self, nddname: str) -> UniEndpoint | None:
        return self.endpoints.get(nddname)

    # --- service access points (bind) -----------------------------------------------------
    @staticmethod
    def sap_of(pcb: AtmPcb, blli: Blli | None = None) -> Sap | None:
        if pcb.local is None:
            return None
        return (pcb.local.nddname, pcb.local.atm_address, pcb.local.subaddress,
                pcb.blli if blli is None else blli)

    def claim(self, pcb: AtmPcb, blli: Blli | None = None) -> int:
        """Take the socket's SAP (with `blli` instead of its own, to re-key): 0 / EADDRINUSE."""
        new = self.sap_of(pcb, blli)
        if new is None:
            return 0
        holder = self.saps.get(new)
        if holder is not None and holder is not pcb:
            return errno.EADDRINUSE
        self.unclaim(pcb)
        self.saps[new] = pcb
        return 0

    def unclaim(self, pcb: AtmPcb) -> None:
        sap = self.sap_of(pcb)
        if sap is not None and self.saps.get(sap) is pcb:
            del self.saps[sap]

    def _listener_for(self, nddname: str, p: CallParams, offered: list[Blli]) -> AtmPcb | None:
        best, score = None, -1
        for (name, aesa, sub, blli), pcb in self.saps.items():
            if name != nddname or aesa != p.called.address or pcb.state is not St.LISTENING:
                continue
            if sub and sub != p.called.subaddress:
                continue
            if pcb.bhli.info and pcb.bhli != p.bhli:
                continue
            wild = blli == Blli()
            if not wild and blli not in offered:
                continue
            s = (0 if wild else 2) + (1 if sub else 0)
            if s > score:
                best, score = pcb, s
        return best

    # --- requests from the socket layer ---------------------------------------------------
    def connect(self, pcb: AtmPcb, addr: SockaddrNddAtm) -> int:
        """Send SETUP for `addr` (the socket is bound to its adapter): 0, then the socket
        waits for CONNECTED or an error in so_error."""
        try:
            ep = self.start(addr.nddname)
        except OSError as exc:
            return errno_of(exc)
        calling = pcb.calling
        if calling is None:
            local = pcb.local
            calling = AtmAddr(local.atm_address, local.subaddress, local.plan) if local else AtmAddr()
        params = CallParams(pcb.aal_parm(), pcb.traffic, pcb.bearer, pcb.qos, pcb.blli,
                            AtmAddr(addr.atm_address, addr.subaddress, addr.plan), calling, pcb.bhli,
                            pcb.blli_alt if pcb.blli.present else (), pcb.transit)
        try:
            call = ep.setup(setup_ies(params), context=pcb)
        except OSError as exc:          # ENOBUFS: no call reference free
            return errno_of(exc)
        self.stats.calls_out += 1
        pcb.call, pcb.endpoint, pcb.params = call, ep, params
        pcb.peer = addr
        pcb.cause = AtmCause()
        pcb.state = St.CONNECTING
        return 0

    def listen(self, pcb: AtmPcb, backlog: int) -> int:
        try:
            self.start(pcb.local.nddname)        # type: ignore[union-attr]
        except OSError as exc:
            return errno_of(exc)
        pcb.backlog = backlog
        pcb.state = St.LISTENING
        return 0

    def accept(self, pcb: AtmPcb, one_step: bool = False) -> AtmPcb | None:
        """The oldest queued call, or None: wait.  AIX's way: at once, still proceeding
        (`confirm` sends CONNECT).  `one_step` (tunstack's own): CONNECT sent by the first
        accept() to look at it, the call returned once CONNECT ACKNOWLEDGE came."""
        if not pcb.pending:
            return None
        child = pcb.pending[0]
        if one_step:
            if child.state is St.PENDING and self._answer(child):
                return None          # the VC could not take the AAL sizes: the call is cleared
            if child.state not in (St.CONNECTED, St.RELEASED):
                return None
        pcb.pending.popleft()
        child.listener = None
        return child

    def confirm(self, pcb: AtmPcb) -> int:
        """SO_ATM_ACCEPT: send CONNECT for an accepted incoming call, with its AAL parameters
        and B-LLI as they are now; 0 or an errno -- EINVAL: not an incoming call, EISCONN:
        confirmed already, ECONNABORTED: the caller or the network cleared it meanwhile.
        The VC follows new AAL sizes (reopened if they outgrow it: nothing was sent yet)."""
        if pcb.state is St.RELEASED:
            return errno.EISCONN if pcb.confirmed else errno.ECONNABORTED
        if pcb.state in (St.ACCEPTING, St.CONNECTED):
            return errno.EISCONN
        if pcb.state is not St.PENDING or pcb.call is None or pcb.listener is not None:
            return errno.EINVAL
        return self._answer(pcb)

    def _answer(self, pcb: AtmPcb) -> int:
        aal = pcb.aal_parm()
        err = self._fit_vc(pcb, aal)
        if err:
            return err
        pcb.state, pcb.confirmed = St.ACCEPTING, True
        asked = pcb.params
        assert asked is not None
        chosen = pcb.blli != asked.blli or pcb.blli_choices > 1
        pcb.endpoint.connect(pcb.call, connect_ies(aal if aal != asked.aal else None, pcb.blli if chosen else None))
        return 0

    def _fit_vc(self, pcb: AtmPcb, aal: AalParm) -> int:
        """The socket's open VC takes AAL sizes `aal`: held to them, reopened on the adapter
        if the larger is more than the VC was opened with (SDUs queued on the socket stay)."""
        if pcb.vc is None or (aal.fwd_max_sdu, aal.bwd_max_sdu) == pcb.max_sdu:
            return 0
        if max(aal.fwd_max_sdu, aal.bwd_max_sdu) <= max(pcb.max_sdu):
            pcb.max_sdu = (aal.fwd_max_sdu, aal.bwd_max_sdu)
            return 0
        vc = pcb.vc
        close_vc(self.ns, pcb)
        return open_vc(self.ns, pcb, *vc, aal, pcb.traffic.pcr())

    def release(self, pcb: AtmPcb) -> None:
        """Our side ends the socket's call (close, disconnect, an abandoned connect) with
        its SO_ATM_CAUSE; a listener also refuses the calls still queued (cause 21)."""
        while pcb.pending:
            child = pcb.pending.popleft()
            child.release_cause = CAUSE_CALL_REJECTED
            self.release(child)
            free_adapter(self.ns, child)
        call, pcb.call = pcb.call, None
        if call is not None:
            call.context = None          # later events of this call are no one's business
            diag = pcb.release_diag if pcb.release_cause is not None else b""
            pcb.endpoint.release(call, pcb.own_release_cause(), diag)
        close_vc(self.ns, pcb)
        pcb.state = St.IDLE

    # --- start-up link retries (a timer core of the Stack's TimerService) ---------------------
    def poll_at(self) -> float | None:
        return min(self._retry_at.values(), default=None)

    def poll(self, now: float) -> None:
        for name, at in list(self._retry_at.items()):
            if at <= now:
                del self._retry_at[name]
                ep = self.endpoints.get(name)
                if ep is not None and not ep.link_up:
                    ep.establish_link()

    def _link_event(self, nddname: str, up: bool) -> None:
        if up:
            self._was_up.add(nddname)
            self._retry_at.pop(nddname, None)
            return
        tries = self._tries.get(nddname, 0)
        if nddname not in self._was_up and tries < LINK_RETRIES:
            at = self.now() + LINK_RETRY
            self._retry_at[nddname] = at
            self._tries[nddname] = tries + 1
            self.kick(at)

    # --- call events ----------------------------------------------------------------------
    def _event(self, nddname: str, ev: CallEvent) -> None:
        if ev.kind in (CallEv.LINK_UP, CallEv.LINK_DOWN):
            self._link_event(nddname, ev.kind is CallEv.LINK_UP)
            return
        if ev.kind is CallEv.SETUP_IND and ev.call is not None:
            self._incoming(nddname, ev)
            return
        pcb = ev.call.context if ev.call is not None else None
        if not isinstance(pcb, AtmPcb):
            return
        if ev.kind in (CallEv.PROCEEDING_IND, CallEv.ALERTING_IND, CallEv.SETUP_CONF):
            self._answered(pcb, ev)
        elif ev.kind is CallEv.SETUP_COMPLETE_IND and pcb.state is St.ACCEPTING:
            pcb.state = St.CONNECTED
            pcb.on_readable()            # a send waiting for the call to be up
            if pcb.listener is not None:
                pcb.listener.on_readable()
        elif ev.kind is CallEv.RELEASE_IND:
            self._cleared(pcb, ev)

    def _answered(self, pcb: AtmPcb, ev: CallEvent) -> None:
        call = ev.call
        assert call is not None
        if pcb.state is not St.CONNECTING:
            return
        if pcb.vc is None and call.vc is not None:
            params = pcb.params
            assert params is not None
            err = open_vc(self.ns, pcb, *call.vc, params.aal, params.traffic.pcr())
            if err:
                self.stats.refused_vc += 1
                self._clear_for_vc(pcb, err)
                return
        if ev.kind is CallEv.SETUP_CONF:
            params = pcb.params
            assert params is not None
            answered = connect_params(ev.msg, params)     # the called user's AAL sizes and B-LLI
            pcb.blli_alt = ()                              # the call holds one B-LLI now
            if answered is not params:
                pcb.params, pcb.aal, pcb.blli = answered, answered.aal, answered.blli
                err = self._fit_vc(pcb, answered.aal)
                if err:
                    self._clear_for_vc(pcb, err)
                    return
            pcb.state = St.CONNECTED
            pcb.on_readable()

    def _clear_for_vc(self, pcb: AtmPcb, err: int) -> None:
        """The VC the network gave (or the sizes the called user answered with) cannot be
        opened here: ours to refuse only by clearing the call (cause 36); the connect fails
        with `err`."""
        pcb.release_cause = CAUSE_VPCI_VCI_ASSIGNMENT_FAILURE
        self.release(pcb)
        pcb.cause = AtmCause(0, CAUSE_VPCI_VCI_ASSIGNMENT_FAILURE)
        pcb.release_cause = None
        pcb.so_error, pcb.peer = err, None
        pcb.on_readable()

    def _cleared(self, pcb: AtmPcb, ev: CallEvent) -> None:
        call = ev.call
        assert call is not None
        call.context = None
        pcb.call = None
        pcb.cause = AtmCause(call.location or 0, ev.cause or 0, call.diagnostics[:CM_DIAG_SIZE])
        close_vc(self.ns, pcb)
        if pcb.state in (St.PENDING, St.ACCEPTING) and pcb.listener is not None:
            listener = pcb.listener         # still queued: it leaves the queue unseen
            if pcb in listener.pending:
                listener.pending.remove(pcb)
                listener.on_readable()
            pcb.listener = None
            free_adapter(self.ns, pcb)
            return
        if pcb.state in (St.PENDING, St.ACCEPTING):
            # accepted, not yet up: SO_ATM_ACCEPT is refused (ECONNABORTED), recv reads EOF
            pcb.so_error = reset_errno(ev)
            pcb.state = St.RELEASED
        if pcb.state is St.CONNECTING:
            pcb.so_error = connect_errno(ev)
            pcb.state = St.IDLE
            pcb.peer = None
        elif pcb.state is St.CONNECTED:
            pcb.so_error = reset_errno(ev)
            pcb.state = St.RELEASED
        pcb.on_readable()
        if pcb.listener is not None:        # cleared after CONNECT ACK, before accept()
            pcb.listener.on_readable()

    def _incoming(self, nddname: str, ev: CallEvent) -> None:
        call, msg = ev.call, ev.msg
        assert call is not None and msg is not None
        ep = self.endpoints[nddname]
        ndd = self.ns.ndds[nddname]
        p = setup_params(msg, ndd.ndd_mtu)
        offered = setup_bllis(msg)
        listener = self._listener_for(nddname, p, offered)
        if listener is None:
            self.stats.refused_no_listener += 1
            ep.release(call, CAUSE_INCOMPATIBLE_DESTINATION)
            return
        if len(listener.pending) >= listener.backlog:
            self.stats.refused_busy += 1
            ep.release(call, CAUSE_USER_BUSY)
            return
        if call.vc is None:             # Uni insists on it for a user-side SETUP; be safe
            ep.release(call, CAUSE_MANDATORY_IE_MISSING)
            return
        child = AtmPcb()
        child.ndd = self.ns.ns_alloc(nddname)
        mine = p.reversed()
        if listener.blli != Blli():
            mine = replace(mine, blli=listener.blli)     # the B-LLI it took of those offered
        child.params, child.aal, child.traffic = mine, mine.aal, mine.traffic
        child.bearer, child.qos, child.blli, child.bhli = mine.bearer, mine.qos, mine.blli, mine.bhli
        child.rcvbuf, child.sndbuf, child.max_pend = listener.rcvbuf, listener.sndbuf, listener.max_pend
        child.blli_choices = len(offered)
        err = open_vc(self.ns, child, *call.vc, mine.aal, mine.traffic.pcr())
        if err:
            self.stats.refused_vc += 1
            free_adapter(self.ns, child)
            ep.release(call, CAUSE_REQUESTED_VPCI_VCI_NOT_AVAILABLE)
            return
        self.stats.calls_in += 1
        child.call, child.endpoint, call.context = call, ep, child
        child.state, child.listener = St.PENDING, listener
        child.peer = SockaddrNddAtm.svc(nddname, p.calling.address, p.calling.subaddress)
        child.local = SockaddrNddAtm.svc(nddname, p.called.address, p.called.subaddress)
        ep.proceeding(call)
        listener.pending.append(child)
        listener.on_readable()


__all__ = ["SvcManager", "SvcStats", "connect_errno", "reset_errno"]
