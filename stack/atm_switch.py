"""The emulated ATM switch under trio: ports are emulated adapters, calls are routed by
`protocols.atm.switch.core.SwitchCore`, data cells are relayed cell by cell.

    async with AtmSwitch("sw") as sw:
        sw.add_port("a", UdpPhy(("127.0.0.1", 7101), follow_sender=True),
                    prefixes=["47000580ffe1000000f21a0001"], pcap="a.pcap")
        sw.add_port("b", PhyPair().b, prefixes=["47000580ffe1000000f21a0002"],
                    addresses=["47000580ffe1000000f21a0002020000000001"])
        sw.add_pvc(("a", 0, 100), ("b", 0, 100))
        await trio.sleep_forever()                      # sw.stats() any time

Each port is an `AtmNdd` (named after the port) on the PHY given, attached to the
switch's own Stack (no IP, no loopback), with a network-side `UniEndpoint` on VC 0/5
whose SAAL the switch keeps established (SSCF keep_up), and optionally a SUNATM pcap.
The switch owns the PHYs handed to it: a UdpPhy's socket is closed with its port.

Switching is at the cell level, as in a real switch: a cross-connected VC is opened on
its adapter with a relay hook (`VcParams(relay=...)`, drivers/atm/adapter.py), so its cells are
never reassembled; each batch is relabelled with the far VC's VPI/VCI (HEC recomputed)
and queued on the far adapter with `send_cells`, paced at that port's line rate.  PVCs
(`add_pvc`) and answered SVCs use the same path.  Consequently a port's pcap shows its
signalling (SSCOP and Q.2931 on 0/5, what the adapter sends and delivers) but not the
relayed data cells, which never become SDUs inside the switch; capture at an endpoint
to see those.
"""
from __future__ import annotations

import errno
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from drivers.atm.adapter import OC3C_LINE_RATE, AtmNdd
from drivers.atm.phy import Phy
from drivers.pcap import PcapRecorder
from ndd import constants as C
from ndd.atm import VcParams
from protocols.atm.switch.core import FIRST_VCI, LAST_VCI, Port, SwitchCore, VcRef
from protocols.atm.uni.call import CallEvent, Side, UniConfig
from protocols.atm.uni.endpoint import UniEndpoint

from .stack import Stack, StackConfig

VcSpec = VcRef | tuple[str, int, int]


@dataclass(eq=False)
class SwitchPort:
    name: str
    phy: Phy
    ndd: AtmNdd
    sig: UniEndpoint
    core: Port
    pcap: PcapRecorder | None = None

    @property
    def link_up(self) -> bool:
        return self.sig.link_up

    def stats(self) -> dict[str, Any]:
        adapter = {k: v.hex(":") if isinstance(v, bytes) else v for k, v in self.ndd.genstats().items()}
        return {"link_up": self.sig.link_up, "adapter": adapter,
                "phy": self.phy.stats.as_dict(), "uni": self.sig.uni.stats.as_dict(),
                "saal": self.sig.saal.stats.as_dict(), "vcis_in_use": len(self.core.vcis.in_use),
                "pcap_frames": self.pcap.frames if self.pcap is not None else None}


class AtmSwitch:
    """An ATM switch in this process (module doc).  Use as an async context manager;
    ports, routes and PVCs can be added and removed while it runs."""

    def __init__(self, name: str = "atmsw", *, uni_config: UniConfig | None = None,
                 line_rate: float = OC3C_LINE_RATE, log: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.uni_config = uni_config
        self.line_rate = line_rate
        self.core = SwitchCore(cross_connect=self._xc_open, disconnect=self._xc_close, log=log)
        self.ports: dict[str, SwitchPort] = {}
        self.stack: Stack | None = None
        self.on_event: Callable[[str, CallEvent], None] | None = None   # a tap for tools and tests

    # --- life cycle ---------------------------------------------------------------------
    async def __aenter__(self) -> AtmSwitch:
        stack = Stack(self.name, StackConfig(loopback=False, plugins=False))
        await stack.__aenter__()
        self.stack = stack
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        stack = self.stack
        assert stack is not None
        try:
            for name in list(self.ports):
                self.remove_port(name)
        except BaseException as err:
            self.stack = None
            await stack.__aexit__(type(err), err, err.__traceback__)
            raise
        self.stack = None
        return await stack.__aexit__(*exc)

    def _running(self) -> Stack:
        if self.stack is None:
            raise RuntimeError("the switch is not running: use `async with AtmSwitch() as sw:`")
        return self.stack

    # --- ports --------------------------------------------------------------------------
    def add_port(self, name: str, phy: Phy, *, prefixes: Iterable[str] = (),
                 addresses: Iterable[str] | None = None, pcap: str | None = None,
                 vpi: int = 0, vci_range: tuple[int, int] = (FIRST_VCI, LAST_VCI),
                 learn: bool = True, line_rate: float | None = None) -> SwitchPort:
        """Attach a port on `phy` and start its signalling (the switch asks for the SAAL at
        once and keeps asking).  `prefixes`: AESA prefixes routed to it (hex nibbles, or
        "*"); `addresses`: if given, the only numbers that exist behind it (others under
        its prefixes: cause 1); `vpi`/`vci_range`: where its switched VCs go; `learn`:
        learn routes from the calling numbers of its SETUPs; `pcap`: a SUNATM capture.
        ValueError on a bad name/prefix/range, OSError from the adapter."""
        stack = self._running()
        if not name or len(name) > 15 or any(c in name for c in ",:=/ "):
            raise ValueError(f"port name {name!r}: 1-15 characters, none of ',:=/ '")
        if name in self.ports:
            raise ValueError(f"port {name} exists")
        ndd = AtmNdd(name, phy, line_rate=self.line_rate if line_rate is None else line_rate)
        stack.ns.ns_attach(ndd)
        stack.ns.ns_alloc(name)
        rec: PcapRecorder | None = None
        sig: UniEndpoint | None = None
        try:
            rec = PcapRecorder.attach(ndd, pcap) if pcap else None
            sig = UniEndpoint.on_stack(stack, ndd, side=Side.NETWORK, config=self.uni_config,
                                       on_event=partial(self._event, name), establish=False)
            core = self.core.add_port(name, sig, prefixes=prefixes, addresses=addresses, vpi=vpi,
                                      vci_range=vci_range, learn=learn)
        except BaseException:
            if sig is not None:
                sig.close(release_link=False)
            if rec is not None:
                rec.close()
            self._drop_ndd(ndd)
            raise
        port = SwitchPort(name, phy, ndd, sig, core, rec)
        self.ports[name] = port
        sig.establish_link()      # after the pcap is on: the capture starts with our BGN
        return port

    def remove_port(self, name: str) -> None:
        """Take a port away: its calls end (the far legs are cleared with cause 41), its
        SAAL is released, its PVCs and learned routes go; configured routes to it stay,
        so calls for it are refused with 27 until a port of that name is back."""
        port = self.ports.pop(name, None)
        if port is None:
            raise KeyError(name)
        try:
            port.sig.close()
            self.core.remove_port(name)
        finally:
            if port.pcap is not None:
                port.pcap.close()
            self._drop_ndd(port.ndd)
            shutdown = getattr(port.phy, "shutdown", None)
            if shutdown is not None:
                shutdown()

    def _drop_ndd(self, ndd: AtmNdd) -> None:
        stack = self._running()
        stack.ns.ns_free(ndd)
        if stack.ns.refcount.get(ndd.ndd_name) == 0:
            stack.ns.ns_detach(ndd)

    def add_route(self, prefix: str, port: str) -> None:
        self.core.add_route(prefix, port)

    def add_pvc(self, a: VcSpec, b: VcSpec) -> None:
        """A permanent cross-connect, e.g. add_pvc(("a", 0, 100), ("b", 0, 200))."""
        self.core.add_pvc(VcRef(*a), VcRef(*b))

    def remove_pvc(self, a: VcSpec) -> None:
        self.core.remove_pvc(VcRef(*a))

    # --- signalling and cells -------------------------------------------------------------
    def _event(self, port: str, ev: CallEvent) -> None:
        self.core.event(port, ev)
        if self.on_event is not None:
            self.on_event(port, ev)

    def _xc_open(self, a: VcRef, b: VcRef) -> None:
        opened: list[VcRef] = []
        try:
            for here, there in ((a, b), (b, a)):
                port = self.ports.get(here.port)
                if port is None:
                    raise OSError(errno.ENODEV, f"no port {here.port}")
                port.ndd.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(here.vpi, here.vci,
                                                            relay=partial(self._relay, there)))
                opened.append(here)
        except OSError:
            for v in opened:
                self._close_vc(v)
            raise

    def _xc_close(self, a: VcRef, b: VcRef) -> None:
        for v in (a, b):
            self._close_vc(v)

    def _close_vc(self, v: VcRef) -> None:
        port = self.ports.get(v.port)
        if port is not None:
            try:
                port.ndd.ndd_ctl(C.NDD_ATM_CLOSE_VC, (v.vpi, v.vci))
            except OSError:
                pass

    def _relay(self, dst: VcRef, cells: bytes) -> None:
        port = self.ports.get(dst.port)
        if port is not None:
            port.ndd.send_cells(dst.vpi, dst.vci, cells)   # refusals are counted there

    # --- views ------------------------------------------------------------------------------
    @property
    def cells_relayed(self) -> int:
        return sum(p.ndd.atm_stats.relay_cells_out for p in self.ports.values())

    def stats(self) -> dict[str, Any]:
        return {**self.core.snapshot(), "cells_relayed": self.cells_relayed,
                "relay_drops": sum(p.ndd.atm_stats.relay_tx_drops for p in self.ports.values()),
                "ports": {name: p.stats() for name, p in self.ports.items()}}

    async def wait_links_up(self, *names: str, poll: float = 0.01) -> None:
        """Return once the named ports' (default: all ports') signalling links are up."""
        want = names or tuple(self.ports)
        while not all(n in self.ports and self.ports[n].link_up for n in want):
            await trio.sleep(poll)
