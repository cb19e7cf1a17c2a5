"""A UNI signalling endpoint: Q.2931 call control (control.py) over a SAAL endpoint (saal/endpoint.py).

Glue only, no trio, like SaalEndpoint: it turns the Uni's actions into SAAL primitives
on VC 0/5 of one AtmNdd, feeds AAL events back, and is a timer core for the Stack's
TimerService (the SAAL endpoint registers itself separately).  A host runs one with
`Side.USER` per adapter; the switch runs one with `Side.NETWORK` per port (its SAAL
kept up: SSCF `keep_up`).

    sig = UniEndpoint.on_stack(stack, ndd, side=Side.USER, on_event=handler)
    call = sig.setup([TrafficDescriptor(...), BearerCapability(), CalledNumber(aesa),
                      QosParameter()])
    ...                                           # handler gets CallEvents
    sig.release(call)
    sig.close()

Primitives take no clock: the endpoint reads its own (`now`).  They may be called from
inside `on_event`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from protocols.atm.saal.endpoint import SIG_VCI, SIG_VPI, SaalEndpoint
from protocols.atm.saal.sscf import AalEvent, State

from .call import Call, CallEvent, Side, UniConfig
from .causes import CAUSE_NORMAL_CLEARING
from .control import Uni
from .q2931 import AnyIE, ConnectionId


class UniEndpoint:
    def __init__(self, ns: Any, ndd: Any, now: Callable[[], float], *,
                 side: Side | str = Side.USER, config: UniConfig | None = None,
                 on_event: Callable[[CallEvent], None] | None = None, timers: Any = None,
                 keep_up: bool | None = None, vpi: int = SIG_VPI, vci: int = SIG_VCI,
                 **saal_kw: Any) -> None:
        self.now = now
        self.timers = timers
        self.on_event = on_event
        self.uni = Uni(side, config, on_event=self._call_event)
        self.events: list[CallEvent] = []     # without on_event
        if keep_up is None:
            keep_up = self.uni.side is Side.NETWORK
        self.saal = SaalEndpoint(ns, ndd, now, vpi=vpi, vci=vci, timers=timers,
                                 keep_up=keep_up, on_event=self._aal_event, **saal_kw)
        self.kick: Callable[..., None] = lambda at=None: None
        self._open = False

    @classmethod
    def on_stack(cls, stack: Any, ndd: Any, *, establish: bool = True,
                 **kw: Any) -> UniEndpoint:
        ep = cls(stack.ns, ndd, stack.now, timers=stack.timers, **kw)
        ep.open(establish=establish)
        return ep

    # --- life cycle -------------------------------------------------------------------
    def open(self, establish: bool = True) -> None:
        """Open VC 0/5 (OSError from the NDD), and ask for the link at once if told to."""
        self.saal.open()
        self._open = True
        self.uni.kick = self._kick
        if self.timers is not None:
            self.timers.register(self)
        if establish:
            self.uni.establish_link()
            self._flush()

    def close(self, release_link: bool = True) -> None:
        """Drop the endpoint.  Calls still open end with RELEASE.indication (Why.SAAL)
        after the link is released; no RELEASE is sent for them."""
        if not self._open:
            return
        if release_link and self.saal.established:
            self.saal.release()
        self._open = False
        if self.timers is not None:
            self.timers.unregister(self)
        self.saal.close()
        self.uni.shutdown()

    def release_link(self) -> None:
        """Release the signalling link (SSCOP END) but keep VC 0/5 open, so the peer's
        ENDAK can still arrive; `close()` alone sends the END too (its VC close drains
        the adapter's queue) but hears nothing back.  A far end that never sees the END
        keeps the old SSCOP connection (a restarted peer's BGN then looks like a
        retransmission to it, Q.2110)."""
        if self._open and self.saal.established:
            self.saal.release()

    @property
    def link_up(self) -> bool:
        return self.uni.link_up

    @property
    def calls(self) -> dict[tuple[int, bool], Call]:
        return self.uni.calls

    # --- primitives ---------------------------------------------------------------------
    def setup(self, ies: Iterable[AnyIE], *, conn_id: ConnectionId | None = None,
              context: object = None) -> Call:
        call = self.uni.setup(ies, self.now(), conn_id=conn_id, context=context)
        self._flush()
        return call

    def proceeding(self, call: Call, conn_id: ConnectionId | None = None) -> None:
        self.uni.proceeding(call, self.now(), conn_id)
        self._flush()

    def alerting(self, call: Call, conn_id: ConnectionId | None = None) -> None:
        self.uni.alerting(call, self.now(), conn_id)
        self._flush()

    def connect(self, call: Call, ies: Iterable[AnyIE] = (),
                conn_id: ConnectionId | None = None) -> None:
        self.uni.connect(call, self.now(), ies, conn_id)
        self._flush()

    def release(self, call: Call, cause: int = CAUSE_NORMAL_CLEARING,
                diagnostics: bytes = b"", location: int | None = None) -> None:
        self.uni.release(call, self.now(), cause, diagnostics, location)
        self._flush()

    def status_enquiry(self, call: Call) -> None:
        self.uni.status_enquiry(call, self.now())
        self._flush()

    def restart(self, conn_id: ConnectionId | None = None) -> list[Call]:
        cleared = self.uni.restart(self.now(), conn_id)
        self._flush()
        return cleared

    def establish_link(self) -> None:
        self.uni.establish_link()
        self._flush()

    # --- timer core ---------------------------------------------------------------------
    def _kick(self, at: float | None = None) -> None:
        self.kick(at)

    def poll_at(self) -> float | None:
        return self.uni.poll_at() if self._open else None

    def poll(self, now: float) -> None:
        self.uni.poll(now)
        self._flush()

    # --- plumbing -----------------------------------------------------------------------
    def _aal_event(self, ev: AalEvent) -> None:
        self.uni.aal_event(ev, self.now())
        self._flush()

    def _call_event(self, ev: CallEvent) -> None:
        if self.on_event is not None:
            self.on_event(ev)
        else:
            self.events.append(ev)

    def _flush(self) -> None:
        for act in self.uni.take_actions():
            if not self._open:
                continue
            if act[0] == "data":
                self.saal.send(act[1])
            elif act[0] == "establish":
                if self.saal.state in (State.RELEASED, State.AWAITING_RELEASE):
                    self.saal.establish()
            elif act[0] == "release":
                self.saal.release()
