"""The emulated ATM switch's call routing, sans-IO: no trio, no adapter, no clock.

A switch port is a UNI seen from the network side (Q.2931 N0-N12): `SwitchCore` is the
call control user of one network-side Q.2931 entity per port (anything with the
`Signalling` primitives; `protocols.atm.uni.endpoint.UniEndpoint` in practice) and is fed
their CallEvents with `core.event(port_name, ev)`.  It owns, with the vocabulary of
routes.py (routing keys, prefixes, the routing table, VCI pools):

  routes     AESA prefix -> port, longest match.  A prefix is any number of leading
             nibbles of the 20-octet AESA written in hex ("47000580ffe1000000f21a3a4b",
             dots allowed), "+digits" for E.164 numbers, "*" for a default route.  Routes
             are configured per port, or learned from the calling party number of the
             SETUPs a port sends (prefix + ESI, 19 octets: the selector octet is not used
             for routing, UNI 3.1 §5.1.3.1).  A learned route never overrides a
             configured one, and an address under another port's configured (non-default)
             prefix is not learned (it would let a user capture another port's calls).
  addresses  optionally, per port, the exact addresses that exist behind it (selector
             ignored): a number routed there but not listed is unallocated (cause 1).
  VCIs       per port, switched VCs get VPI 0 (configurable) and a VCI from a range
             (default 32-65535; 0-31 are reserved, I.361), taken round robin so a VCI just
             freed is not reused at once, and freed once the leg's call reference is gone.
  calls      a Connection pairs the calling leg (the SETUP that came in) with the called
             leg (the SETUP the switch sent on), each with its port's VC.
  xc         the cross-connect table {VcRef: VcRef}, both directions, SVCs and PVCs; the
             runner is told through `cross_connect(a, b)` / `disconnect(a, b)` and moves
             the cells (stack/atm_switch.py).

Call flow (Q.2931 §5.1-5.4 on each leg; the switch is the "network" of both):
  SETUP.ind on A -> route the called number -> take a VCI on A and on B ->
  CALL PROCEEDING to A with A's connection identifier (§5.1.2: the network's first
  answer assigns the VC) -> SETUP to B with B's connection identifier and A's IEs
  (calling/called numbers, AAL, traffic, bearer, QoS, BLLI/BHLI ... passed on) ->
  ALERTING from B -> ALERTING to A -> CONNECT from B (the entity acknowledges it) ->
  cross-connect A<->B, then CONNECT to A.  RELEASE.indication on either leg (the user
  cleared, T303 twice, T310, SAAL lost past T309, RESTART) -> cross-connect removed and
  the other leg released with the same cause, so the caller hears the called user's
  17 (busy), 21 (rejected), 88 (no listener / incompatible) as it was given.

Refusals (RELEASE COMPLETE to the unanswered SETUP, Q.2931 §5.4.2):
  3  no route to destination      no route matches the called number
  1  unallocated number           the route's port has an address list without it
  27 destination out of order     the port is absent, or its signalling link is down
  45 no VPCI/VCI available        no VCI free on either leg (Q.2931 §5.1.2)
  47 resource unavailable         no call reference free, or the cross-connect failed
  28 invalid number format        a called number this switch cannot route (no address)
and, from the far side: 18 when the called user never answers (the entity's T303 twice),
41 when its link fails or the port is removed during set-up.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from ndd.atm import VPI_MAX
from ndd.counters import Counters
from protocols.atm.uni.call import Call, CallEv, CallEvent, Why
from protocols.atm.uni.causes import (
    CAUSE_DESTINATION_OUT_OF_ORDER,
    CAUSE_INVALID_NUMBER_FORMAT,
    CAUSE_NO_ROUTE_TO_DESTINATION,
    CAUSE_NO_ROUTE_TRANSIT_NET,
    CAUSE_NO_VPCI_VCI_AVAILABLE,
    CAUSE_NORMAL_UNSPECIFIED,
    CAUSE_RESOURCE_UNAVAILABLE,
    CAUSE_UNALLOCATED_NUMBER,
)
from protocols.atm.uni.q2931 import (
    IE_AAL,
    IE_BLLI,
    IE_CALLED,
    IE_CALLING,
    IE_CONN_ID,
    IE_TRANSIT,
    AnyIE,
    CalledNumber,
    CallingNumber,
    ConnectionId,
    Q2931Message,
    TransitNetwork,
)

from .routes import (
    FIRST_VCI,
    LAST_VCI,
    Route,
    RoutingTable,
    VciPool,
    VcRef,
    address_key,
    parse_address,
    parse_prefix,
    routed,
)


# --- what the core drives -----------------------------------------------------------------
class Signalling(Protocol):
    """The network side of one UNI (UniEndpoint's primitives)."""

    @property
    def link_up(self) -> bool: ...

    @property
    def calls(self) -> dict[tuple[int, bool], Call]: ...

    def setup(self, ies: Iterable[AnyIE], *, conn_id: ConnectionId | None = None,
              context: object = None) -> Call: ...

    def proceeding(self, call: Call, conn_id: ConnectionId | None = None) -> None: ...

    def alerting(self, call: Call, conn_id: ConnectionId | None = None) -> None: ...

    def connect(self, call: Call, ies: Iterable[AnyIE] = (), conn_id: ConnectionId | None = None) -> None: ...

    def release(self, call: Call, cause: int = ..., diagnostics: bytes = ...,
                location: int | None = ...) -> None: ...


@dataclass(eq=False)
class Port:
    name: str
    sig: Signalling
    vcis: VciPool
    addresses: frozenset[str] | None = None
    learn: bool = True
    # VCIs whose leg ended for the user (RELEASE.indication) while the call reference
    # still clears (our RELEASE awaits RELEASE COMPLETE): freed once the call is gone
    draining: list[tuple[int, Call]] = field(default_factory=list)

    def sweep(self) -> None:
        """Free the VCIs of legs whose call references have since gone."""
        if self.draining:
            keep = []
            for vci, call in self.draining:
                if self.sig.calls.get(call.key) is call:
                    keep.append((vci, call))
                else:
                    self.vcis.free(self.vcis.vpi, vci)
            self.draining = keep

    def take_vci(self) -> int | None:
        self.sweep()
        return self.vcis.take()


class Phase(str, Enum):
    SETUP = "setup"
    ACTIVE = "active"
    CLEARING = "clearing"


@dataclass(eq=False)
class Leg:
    port: Port
    vc: VcRef
    call: Call | None = None
    ended: bool = False               # the leg's call is over; its VCI is (being) freed
    conn: Connection | None = None

    @property
    def conn_id(self) -> ConnectionId:
        return ConnectionId(self.vc.vpi, self.vc.vci)


@dataclass(eq=False)
class Connection:
    id: int
    calling: Leg
    called: Leg
    called_number: str
    phase: Phase = Phase.SETUP
    cause: int | None = None          # the clearing cause, once known
    cross_connected: bool = False
    answered: bool = False            # the called user connected (the call became active)

    def other(self, leg: Leg) -> Leg:
        return self.called if leg is self.calling else self.calling


@dataclass
class SwitchStats(Counters):
    setups_in: int = 0          # SETUPs received on any port
    calls_routed: int = 0       # SETUPs sent on toward a called port
    calls_connected: int = 0    # CONNECTs passed back: cross-connected
    calls_refused: int = 0      # never connected, cleared by the switch or the called side
    calls_abandoned: int = 0    # the caller cleared before the answer
    calls_cleared: int = 0      # connected calls that have ended
    routes_learned: int = 0
    learn_refused: int = 0      # a calling number under another port's configured prefix
    learn_table_full: int = 0   # a new calling number not learned: max_learned routes already
    xc_failures: int = 0        # the runner could not install a cross-connect


XcFn = Callable[[VcRef, VcRef], None]


class SwitchCore:
    """Routing, VCI allocation, call legs and the cross-connect table (module doc)."""

    def __init__(self, *, cross_connect: XcFn | None = None, disconnect: XcFn | None = None,
                 log: Callable[[str], None] | None = None, max_learned: int = 4096) -> None:
        self.cross_connect: XcFn = cross_connect or (lambda a, b: None)
        self.max_learned = max_learned          # learned routes (calling numbers) kept at most
        self.disconnect: XcFn = disconnect or (lambda a, b: None)
        self.log = log or (lambda text: None)
        self.ports: dict[str, Port] = {}
        self.routes = RoutingTable()
        self.xc: dict[VcRef, VcRef] = {}
        self.pvcs: dict[VcRef, VcRef] = {}           # both directions, like xc
        self.connections: dict[int, Connection] = {}
        self.stats = SwitchStats()
        self.refused_by_cause: dict[int, int] = {}    # cause given to callers of refused calls
        # transit network selection (UNI 3.1 §5.4.5.22): the carrier codes this network can hand
        # a call to.  It is one network, so a selected one it knows is honoured by routing as
        # usual; any other is refused with cause 2.  (tunstack's model of the transit networks.)
        self.transit_networks: set[bytes] = set()
        self._next_id = 1

    # --- configuration ------------------------------------------------------------------
    def add_port(self, name: str, sig: Signalling, *, prefixes: Iterable[str] = (),
                 addresses: Iterable[str] | None = None, vpi: int = 0,
                 vci_range: tuple[int, int] = (FIRST_VCI, LAST_VCI), learn: bool = True) -> Port:
        """A port; prefixes/addresses as parse_prefix/parse_address take them.  ValueError
        on a bad prefix, a prefix configured on another port, or a duplicate name."""
        if name in self.ports:
            raise ValueError(f"port {name} exists")
        keys = [parse_prefix(p) for p in prefixes]
        addrs = None if addresses is None else frozenset(parse_address(a) for a in addresses)
        for k in keys:
            cur = self.routes.lookup(k)
            if cur is not None and cur.prefix == k and not cur.learned and cur.port != name:
                raise ValueError(f"prefix {k or '*'} already leads to port {cur.port}")
        port = Port(name, sig, VciPool(vpi, *vci_range), addrs, learn)
        self.ports[name] = port
        for k in keys:
            self.routes.add(k, name)
        return port

    def remove_port(self, name: str) -> None:
        """Forget a port whose signalling is closed (its calls have ended: closing the
        endpoint gives RELEASE.indication for each, and the other legs were cleared).
        Its configured routes stay, so calls to it are refused with 27 (out of order)
        rather than 3; learned routes and PVCs through it go."""
        port = self.ports.pop(name, None)
        if port is None:
            return
        self.routes.remove_port(name, learned_only=True)
        for a in [a for a in self.pvcs if a.port == name]:
            if a in self.pvcs:
                self.remove_pvc(a)

    def add_route(self, prefix: str, port: str) -> Route:
        """A static route; the port need not exist (yet): calls to it get 27 meanwhile."""
        return self.routes.add(parse_prefix(prefix), port)

    def add_pvc(self, a: VcRef, b: VcRef) -> None:
        """A permanent cross-connect between two VCs (no signalling).  ValueError for
        unknown ports, a VC twice or a reserved VCI; OSError from the runner's hook."""
        for v in (a, b):
            if v.port not in self.ports:
                raise ValueError(f"no port {v.port}")
            if not (0 <= v.vpi <= VPI_MAX and FIRST_VCI <= v.vci <= LAST_VCI):
                raise ValueError(f"PVC {v}: VPI 0-255, VCI 32-65535 (0-31 are reserved)")
            if v in self.xc:
                raise ValueError(f"{v} is already cross-connected")
        if a == b:
            raise ValueError("a PVC joins two different VCs")
        pa, pb = self.ports[a.port], self.ports[b.port]
        if not pa.vcis.reserve(a.vpi, a.vci):
            raise ValueError(f"{a} carries a switched call")
        if not pb.vcis.reserve(b.vpi, b.vci):
            pa.vcis.free(a.vpi, a.vci)
            raise ValueError(f"{b} carries a switched call")
        try:
            self.cross_connect(a, b)
        except BaseException:
            pa.vcis.free(a.vpi, a.vci)
            pb.vcis.free(b.vpi, b.vci)
            raise
        self.xc[a], self.xc[b] = b, a
        self.pvcs[a], self.pvcs[b] = b, a

    def remove_pvc(self, a: VcRef) -> None:
        b = self.pvcs.pop(a, None)
        if b is None:
            raise ValueError(f"no PVC at {a}")
        del self.pvcs[b]
        self.xc.pop(a, None)
        self.xc.pop(b, None)
        for v in (a, b):
            port = self.ports.get(v.port)
            if port is not None:
                port.vcis.free(v.vpi, v.vci)
        self.disconnect(a, b)

    # --- routing --------------------------------------------------------------------------
    def resolve(self, key: str) -> tuple[Port | None, int]:
        """(port, 0) for a routable, reachable called number, else (None, cause)."""
        route = self.routes.lookup(key)
        if route is None:
            return None, CAUSE_NO_ROUTE_TO_DESTINATION
        port = self.ports.get(route.port)
        if port is not None and port.addresses is not None and routed(key) not in port.addresses:
            return None, CAUSE_UNALLOCATED_NUMBER
        if port is None or not port.sig.link_up:
            return None, CAUSE_DESTINATION_OUT_OF_ORDER
        return port, 0

    def _learn(self, port: Port, ie: AnyIE | None) -> None:
        if not port.learn or not isinstance(ie, CallingNumber) or not ie.address:
            return
        key = routed(address_key(ie.plan, ie.address))
        cur = self.routes.lookup(key)
        if cur is not None and not cur.learned and cur.prefix:
            if cur.port != port.name:
                self.stats.learn_refused += 1
            return                            # configured: nothing to learn
        if cur is not None and cur.prefix == key and cur.port == port.name:
            return
        if (cur is None or cur.prefix != key) and self.routes.learned >= self.max_learned:
            # every SETUP can carry a new calling number: learning must not grow the table
            # without end (the call itself still goes on)
            self.stats.learn_table_full += 1
            return
        self.routes.add(key, port.name, learned=True)
        self.stats.routes_learned += 1
        self.log(f"learned {key} -> port {port.name}")

    # --- call control events ------------------------------------------------------------------
    def event(self, port_name: str, ev: CallEvent) -> None:
        """Feed one CallEvent from port `port_name`'s network-side entity."""
        k = ev.kind
        if k == CallEv.SETUP_IND and ev.call is not None:
            port = self.ports.get(port_name)
            if port is not None and port.sig.calls.get(ev.call.key) is ev.call:
                self._incoming(port, ev.call)
            return
        leg = ev.call.context if ev.call is not None else None
        if not isinstance(leg, Leg) or leg.conn is None:
            if k in (CallEv.LINK_UP, CallEv.LINK_DOWN):
                self.log(f"port {port_name}: signalling link {'up' if k == CallEv.LINK_UP else 'down'}")
            return
        conn = leg.conn
        if k == CallEv.ALERTING_IND and leg is conn.called:
            self._pass(conn.calling, "alerting")
        elif k == CallEv.SETUP_CONF and leg is conn.called:
            self._answered(conn, ev.msg)
        elif k in (CallEv.RELEASE_IND, CallEv.RELEASE_CONF):
            self._leg_ended(leg, ev.kind, ev.cause)

    def _incoming(self, port: Port, call: Call) -> None:
        self.stats.setups_in += 1
        msg = call.setup
        assert msg is not None
        self._learn(port, msg.get(IE_CALLING))
        called = msg.get(IE_CALLED)
        if not isinstance(called, CalledNumber) or not called.address:
            self._refuse(port, call, CAUSE_INVALID_NUMBER_FORMAT, "?")
            return
        number = address_key(called.plan, called.address)
        transit = msg.get(IE_TRANSIT)
        if isinstance(transit, TransitNetwork) and transit.net_id not in self.transit_networks:
            self._refuse(port, call, CAUSE_NO_ROUTE_TRANSIT_NET, number)
            return
        dest, cause = self.resolve(number)
        if dest is None:
            self._refuse(port, call, cause, number)
            return
        vci_in = port.take_vci()
        vci_out = dest.take_vci() if vci_in is not None else None
        if vci_in is None or vci_out is None:
            if vci_in is not None:
                port.vcis.free(port.vcis.vpi, vci_in)
            self._refuse(port, call, CAUSE_NO_VPCI_VCI_AVAILABLE, number)
            return
        calling = Leg(port, VcRef(port.name, port.vcis.vpi, vci_in), call)
        called_leg = Leg(dest, VcRef(dest.name, dest.vcis.vpi, vci_out))
        conn = Connection(self._next_id, calling, called_leg, number)
        self._next_id += 1
        calling.conn = called_leg.conn = conn
        call.context = calling
        self.connections[conn.id] = conn
        port.sig.proceeding(call, calling.conn_id)
        ies = [ie for ie in msg.ies if ie.id not in (IE_CONN_ID, IE_TRANSIT)]   # the network's own
        try:
            called_leg.call = dest.sig.setup(ies, conn_id=called_leg.conn_id, context=called_leg)
        except OSError:                       # no call reference free on the far port
            called_leg.ended = True
            dest.vcis.free(called_leg.vc.vpi, called_leg.vc.vci)
            self._clear_leg(conn, calling, CAUSE_RESOURCE_UNAVAILABLE)
            return
        self.stats.calls_routed += 1
        self.log(f"call {conn.id}: {calling.vc} -> {number} via {called_leg.vc}")

    def _refuse(self, port: Port, call: Call, cause: int, number: str) -> None:
        self.stats.calls_refused += 1
        self.refused_by_cause[cause] = self.refused_by_cause.get(cause, 0) + 1
        self.log(f"refused {number} from port {port.name}: cause {cause}")
        port.sig.release(call, cause)         # unanswered: RELEASE COMPLETE

    def _live(self, leg: Leg) -> bool:
        call = leg.call
        return (not leg.ended and call is not None
                and leg.port.sig.calls.get(call.key) is call and not call.done)

    def _pass(self, leg: Leg, what: str) -> None:
        if self._live(leg):
            assert leg.call is not None
            try:
                getattr(leg.port.sig, what)(leg.call)
            except OSError:
                pass                          # the caller's call moved on (clearing): nothing to tell

    def _answered(self, conn: Connection, msg: Q2931Message | None = None) -> None:
        a, b = conn.calling, conn.called
        if conn.phase is not Phase.SETUP or not self._live(a):
            return
        try:
            self.cross_connect(a.vc, b.vc)
        except OSError as exc:
            self.stats.xc_failures += 1
            self.log(f"call {conn.id}: cross-connect {a.vc} <-> {b.vc} failed: {exc}")
            self._clear_leg(conn, a, CAUSE_RESOURCE_UNAVAILABLE)   # counted as refused (47)
            self._clear_leg(conn, b, CAUSE_RESOURCE_UNAVAILABLE)
            return
        self.xc[a.vc], self.xc[b.vc] = b.vc, a.vc
        conn.cross_connected = conn.answered = True
        conn.phase = Phase.ACTIVE
        self.stats.calls_connected += 1
        self.log(f"call {conn.id}: {a.vc} <-> {b.vc} connected")
        assert a.call is not None
        # the called user's answer to the AAL and B-LLI negotiation goes on to the caller
        # (UNI 3.1 §5.4.5.5, Annex C): CONNECT's AAL parameters and B-LLI, as it sent them
        passed = [ie for ie in msg.ies if ie.id in (IE_AAL, IE_BLLI)] if msg is not None else []
        a.port.sig.connect(a.call, passed)

    def _uncross(self, conn: Connection) -> None:
        if conn.cross_connected:
            conn.cross_connected = False
            a, b = conn.calling.vc, conn.called.vc
            self.xc.pop(a, None)
            self.xc.pop(b, None)
            self.disconnect(a, b)

    def _clear_leg(self, conn: Connection, leg: Leg, cause: int, location: int | None = None,
                   diagnostics: bytes = b"") -> None:
        """Release one leg (the switch's own decision or the other leg's clearing: then
        with the location the cause came from and its diagnostics)."""
        if conn.cause is None:
            conn.cause = cause
            if conn.phase is Phase.SETUP:
                # the caller learns why its call failed, or the callee that the caller gave up
                if leg is conn.calling:
                    self.stats.calls_refused += 1
                    self.refused_by_cause[cause] = self.refused_by_cause.get(cause, 0) + 1
                else:
                    self.stats.calls_abandoned += 1
        conn.phase = Phase.CLEARING
        if self._live(leg):
            assert leg.call is not None
            leg.port.sig.release(leg.call, cause, diagnostics, location=location)

    def _leg_ended(self, leg: Leg, kind: CallEv, cause: int | None) -> None:
        if leg.ended:
            return
        leg.ended = True
        conn = leg.conn
        assert conn is not None
        call = leg.call
        if call is not None and leg.port.sig.calls.get(call.key) is call:
            leg.port.draining.append((leg.vc.vci, call))     # still clearing toward the user
        else:
            leg.port.vcis.free(leg.vc.vpi, leg.vc.vci)
        # Q.2931 §5.4.3-5.4.4: the VC is disconnected as clearing starts on either leg
        self._uncross(conn)
        other = conn.other(leg)
        if kind == CallEv.RELEASE_IND and not other.ended:
            # a cause from the user keeps its location; a timer's is the switch's own
            peer = call is not None and call.why is Why.PEER
            loc = call.location if call is not None and peer else None
            diag = call.diagnostics if call is not None and peer else b""
            self._clear_leg(conn, other, cause if cause is not None else CAUSE_NORMAL_UNSPECIFIED, loc, diag)
        if conn.calling.ended and conn.called.ended and self.connections.pop(conn.id, None) is not None:
            if conn.answered:
                self.stats.calls_cleared += 1
            self.log(f"call {conn.id}: cleared (cause {conn.cause})")

    # --- views ------------------------------------------------------------------------------
    @property
    def active_calls(self) -> int:
        return sum(1 for c in self.connections.values() if c.phase is Phase.ACTIVE)

    def snapshot(self) -> dict[str, Any]:
        return {
            **self.stats.as_dict(),
            "active_calls": self.active_calls,
            "calls_in_progress": len(self.connections),
            "refused_by_cause": dict(sorted(self.refused_by_cause.items())),
            "routes": [{"prefix": r.prefix or "*", "port": r.port, "learned": r.learned} for r in self.routes],
            "cross_connects": sorted(f"{a} <-> {b}" for a, b in self.xc.items() if a < b),
            "pvcs": sorted(f"{a} <-> {b}" for a, b in self.pvcs.items() if a < b),
        }
