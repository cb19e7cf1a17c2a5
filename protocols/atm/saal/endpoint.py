"""A SAAL endpoint: SSCF-UNI + SSCOP (sans-IO, protocols/atm/saal/sscf.py) on VC 0/5 of an ATM NDD.

Glue only, and no trio: the endpoint opens the signalling VC (NDD_ATM_OPEN_VC with
`reserved=True`, the only way the adapter lets a user onto VCI 5), claims it with an
NS_ATM_VC filter, sends every SSCOP PDU as one AAL5 SDU (Q.2100: SSCOP rides AAL5
CPCS directly, one PDU per SDU), feeds every SDU received to SSCOP, and is itself the
timer core (`poll_at`/`poll`/`kick`) a Stack's TimerService drives.

The SAAL user (Q.2931 call control) calls `establish`/`release`/`send`/`send_unitdata`
and gets AalEvents through `on_event` (called synchronously, may call back into the
endpoint) or, without a callback, from `take_events()`.

    ep = SaalEndpoint.on_stack(stack, ndd)          # open + register with stack.timers
    ep.establish()
    ...
    ep.close()
"""
from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ndd import constants as C
from ndd.atm import ATM_HDRLEN, RESERVED_VCI_MAX, SIG_VPI_VCI, VcParams, atm_link_header
from ndd.counters import Counters
from ndd.demux import NsFilter, NsUser
from ndd.pktbuf import PacketBuffer

from .sscf import AalEvent, Sscf, State, sscf_uni_config
from .sscop import SscopConfig

SIG_VPI, SIG_VCI = SIG_VPI_VCI
SAAL_MAX_SDU = 4096 + 12        # SSCF-UNI max SDU k = 4096 (Q.2130 §7) + SSCOP pad and trailer


@dataclass
class SaalStats(Counters):
    rx_sdus: int = 0
    tx_sdus: int = 0
    tx_errors: int = 0          # ndd_output refused an SDU (errno); SSCOP retransmits SDs


class SaalEndpoint:
    def __init__(self, ns: Any, ndd: Any, now: Callable[[], float], *, vpi: int = SIG_VPI,
                 vci: int = SIG_VCI, config: SscopConfig | None = None, keep_up: bool = False,
                 on_event: Callable[[AalEvent], None] | None = None, timers: Any = None,
                 max_sdu: int = SAAL_MAX_SDU) -> None:
        self.ns, self.ndd, self.now = ns, ndd, now
        self.vpi, self.vci, self.max_sdu = vpi, vci, max_sdu
        if config is None:
            # A fresh process's first BGN must not carry the N(SQ) its predecessor on this
            # VC used last: the far end would take it for a retransmission (Q.2110 §20.1)
            # and answer BGREJ, or BGAK without resetting its state.  Q.2110 starts VT(SQ)
            # at 0; a random start makes that collision a 1-in-256 event.
            config = sscf_uni_config(initial_sq=secrets.randbelow(256))
        self.sscf = Sscf(config, keep_up=keep_up)
        self.on_event = on_event
        self.timers = timers
        self.stats = SaalStats()
        self.last_tx_errno = 0
        self._events: list[AalEvent] = []
        self._filter = NsFilter(C.NS_ATM_VC, vpi=vpi, vci=vci)
        self._hdr = atm_link_header(vpi, vci)
        self._open = False

    @classmethod
    def on_stack(cls, stack: Any, ndd: Any, **kw: Any) -> SaalEndpoint:
        """An endpoint on `ndd` (attached to `stack.ns`, open), driven by `stack.timers`."""
        ep = cls(stack.ns, ndd, stack.now, timers=stack.timers, **kw)
        ep.open()
        return ep

    # --- life cycle ---------------------------------------------------------------------
    def open(self) -> None:
        """Open VC vpi/vci on the adapter and claim it.  Raises OSError from the NDD:
        EADDRINUSE (VC already open), EEXIST (already claimed), EINVAL."""
        self.ndd.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(self.vpi, self.vci, max_sdu=self.max_sdu,
                                                     reserved=self.vci <= RESERVED_VCI_MAX))
        try:
            self.ns.ns_add_filter(self.ndd, self._filter, NsUser(self._isr, None))
        except OSError:
            self.ndd.ndd_ctl(C.NDD_ATM_CLOSE_VC, (self.vpi, self.vci))
            raise
        self._open = True
        if self.timers is not None:
            self.timers.register(self)

    def close(self) -> None:
        """Close the VC (call `release` first for a clean release).  PDUs already handed
        to the adapter -- the END of that release -- still leave (NDD_ATM_CLOSE_VC_DRAIN);
        nothing more is received or retransmitted."""
        if not self._open:
            return
        self._open = False
        if self.timers is not None:
            self.timers.unregister(self)
        try:
            self.ns.ns_del_filter(self.ndd, self._filter)
        except OSError:
            pass
        for cmd in (C.NDD_ATM_CLOSE_VC_DRAIN, C.NDD_ATM_CLOSE_VC):
            try:
                self.ndd.ndd_ctl(cmd, (self.vpi, self.vci))
                return
            except OSError:
                continue            # an adapter without the draining close: close it plainly

    # --- SAAL primitives (protocols/atm/saal/sscf.py) --------------------------------------------
    @property
    def state(self) -> State:
        return self.sscf.state

    @property
    def established(self) -> bool:
        return self.sscf.established

    def establish(self, uu: bytes = b"") -> None:
        self.sscf.establish(uu, self.now())
        self._flush()

    def release(self, uu: bytes = b"") -> None:
        self.sscf.release(uu, self.now())
        self._flush()

    def send(self, msg: bytes) -> bool:
        ok = self.sscf.send(msg, self.now())
        self._flush()
        return ok

    def send_unitdata(self, msg: bytes) -> None:
        self.sscf.send_unitdata(msg, self.now())
        self._flush()

    def take_events(self) -> list[AalEvent]:
        ev, self._events = self._events, []
        return ev

    # --- timer core (stack/timers.py) -------------------------------------------------------
    @property
    def kick(self) -> Callable[..., None]:
        return self.sscf.kick

    @kick.setter
    def kick(self, fn: Callable[..., None]) -> None:
        self.sscf.kick = fn

    def poll_at(self) -> float | None:
        return self.sscf.poll_at() if self._open else None

    def poll(self, now: float) -> None:
        self.sscf.poll(now)
        self._flush()

    # --- the wire ---------------------------------------------------------------------------
    def _isr(self, ndd: Any, pkt: PacketBuffer, arg: Any) -> None:
        # NS_PROTO delivery: the link header is already stripped, pkt is one AAL5 SDU
        self.stats.rx_sdus += 1
        self.sscf.receive(pkt.tobytes(), self.now())
        self._flush()

    def _flush(self) -> None:
        # Loop: an on_event callback may call back in (send, release) and make more output.
        while True:
            out = self.sscf.take_output()
            events = self.sscf.take_events()
            if not out and not events:
                return
            for pdu in out:
                self._output(pdu)
            for e in events:
                if self.on_event is not None:
                    self.on_event(e)
                else:
                    self._events.append(e)

    def _output(self, pdu: bytes) -> None:
        if not self._open:
            return
        pkt = PacketBuffer.from_payload(pdu)
        pkt.prepend(ATM_HDRLEN)[:] = self._hdr
        err = self.ndd.ndd_output(pkt)
        if err:
            # a lost PDU, as far as SSCOP is concerned: its timers recover it
            self.stats.tx_errors += 1
            self.last_tx_errno = err
        else:
            self.stats.tx_sdus += 1
