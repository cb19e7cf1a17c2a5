"""The signalling side of CLIP over SVCs: in-stack ATM sockets for ClipSvc's calls (no trio).

Linux runs this in atmarpd, a daemon whose ATM sockets hand each VC to the kernel's clip
device.  Here it happens inside the Stack: a CLIP interface owns AtmPcbs driven through
the ATM protocol's user requests (protocols/atm/sockets/usrreq.py: bind, listen, accept,
connect, detach) and never waits on them -- each pcb's `on_readable` hook reports its
state changes, and its `sink` hands every SDU straight to the CLIP link (AtmLink.input).

  listener  bound to (adapter, our AESA, no subaddress, B-LLI LLC ISO 8802/2), so the
            SvcManager offers it every call for our address with that B-LLI (RFC 1755:
            LLC/SNAP-encapsulated IP).  Each call is accepted at once (CONNECT); at CONNECT
            ACKNOWLEDGE it becomes an incoming VC of the core.  SDUs that raced ahead of
            CONNECT ACKNOWLEDGE waited on the socket's queue and are handed over then.
  call      SETUP with AAL5 max CPCS-SDU = IP MTU + 8 both ways (RFC 2225 §7.2: 9188 by
            default), B-LLI LLC, no PCR (best effort), BCOB-X, QoS unspecified, our AESA as
            the calling party number (RFC 1755's IP-over-ATM call).
  release   RELEASE with cause 16, normal clearing (the socket's close).

`enable_svc` / `disable_svc` wire a core, its glue and optionally an ATMARP server to an
AtmLink: `Stack.add_atm_svc` and `Stack.remove_interface` call them.
"""
from __future__ import annotations

import errno
import os
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from ndd.constants import AF_NDD, NDD_PROT_ATM
from ndd.pktbuf import PacketBuffer
from protocols.atm.sockets.pcb import AtmPcb, St
from protocols.atm.sockets.sockaddr import AalParm, AtmAddr, Blli, SockaddrNddAtm
from protocols.atm.uni.ie import L2_ISO8802

from .atmarp_server import AtmArpServer
from .link import LLC_SNAP_ATMARP, LLC_SNAP_IPV4, LLC_SNAP_LEN, AtmLink
from .svc import CALLING, ClipSvc, SvcVc

if TYPE_CHECKING:
    from protocols.atm.sockets.usrreq import AtmUserRequests
    from protocols.contracts import ProtocolHost

CLIP_BLLI = Blli(L2_ISO8802)     # RFC 2225 §8.5 / RFC 1755: B-LLI layer 2 = LLC (ISO/IEC 8802-2)
LISTEN_BACKLOG = 32              # calls queued on CLIP's listener (its own choice, as atmarpd's)


class ClipCalls:
    def __init__(self, usr: AtmUserRequests, nddname: str, aesa: bytes, max_sdu: int, core: ClipSvc,
                 link: AtmLink, now: Callable[[], float]) -> None:
        self.usr, self.nddname, self.aesa, self.max_sdu = usr, nddname, aesa, max_sdu
        self.core, self.link, self.now = core, link, now
        self.listener: AtmPcb | None = None
        self.pcbs: dict[AtmPcb, SvcVc] = {}
        core.call, core.release = self.call, self.release

    def start(self) -> None:
        """Listen on our AESA (this also starts the adapter's UNI).  OSError: EADDRINUSE when a
        socket holds that address with CLIP's B-LLI, or the adapter's errors."""
        lst = self.usr.attach(self.now())
        lst.blli = CLIP_BLLI
        err = self.usr.bind_svc(lst, SockaddrNddAtm.svc(self.nddname, self.aesa))
        if not err:
            err = self.usr.listen(lst, LISTEN_BACKLOG, self.now())
        if err:
            self.usr.detach(lst, self.now())
            raise OSError(err, f"{os.strerror(err)}: CLIP listener on {self.aesa.hex()}")
        lst.on_readable = self._accept
        self.listener = lst

    def close(self) -> None:
        for pcb in list(self.pcbs):
            self._drop(pcb)
        if self.listener is not None:
            self.listener.on_readable = lambda: None
            self.usr.detach(self.listener, self.now())        # refuses calls still queued (cause 21)
            self.listener = None

    # --- the core's requests ------------------------------------------------------------------
    def call(self, vc: SvcVc) -> int:
        pcb = self.usr.attach(self.now())
        err = self.usr.bind_adapter(pcb, self.nddname)
        if err:
            return err
        pcb.aal = AalParm(self.max_sdu, self.max_sdu)
        pcb.blli = CLIP_BLLI
        pcb.calling = AtmAddr(self.aesa)
        self._own(pcb, vc)
        err = self.usr.connect(pcb, SockaddrNddAtm.svc(self.nddname, vc.aesa), self.now())
        if err:
            self._drop(pcb)
        return err

    def release(self, vc: SvcVc) -> None:
        pcb = vc.handle
        if pcb in self.pcbs:
            self._drop(pcb)                       # RELEASE, cause 16

    # --- socket events ------------------------------------------------------------------------
    def _own(self, pcb: AtmPcb, vc: SvcVc) -> None:
        self.pcbs[pcb] = vc
        vc.handle = pcb
        pcb.sink = self._sdu
        pcb.on_readable = partial(self._changed, pcb)

    def _drop(self, pcb: AtmPcb) -> None:
        self.pcbs.pop(pcb, None)
        pcb.sink = None
        pcb.on_readable = lambda: None
        self.usr.detach(pcb, self.now())

    def _changed(self, pcb: AtmPcb) -> None:
        vc = self.pcbs.get(pcb)
        if vc is None:
            return
        now = self.now()
        if pcb.state is St.CONNECTED and vc.state == CALLING and pcb.vc is not None:
            self.core.connected(vc, pcb.vc, now)
        elif pcb.state is St.RELEASED:
            vc.cause = pcb.cause.cause
            self._drop(pcb)
            self.core.cleared(vc, now)
        elif pcb.state is St.IDLE and vc.state == CALLING:
            vc.cause = pcb.cause.cause
            pcb.take_error()
            self._drop(pcb)
            self.core.failed(vc, now)

    def _accept(self) -> None:
        lst = self.listener
        while lst is not None and (accepted := self.usr.accept_active(lst, self.now())) is not None:
            child = accepted[0]
            if child.state is not St.CONNECTED or child.vc is None:
                self.usr.detach(child, self.now())    # cleared before it was ours
                continue
            vc = SvcVc(child.peer.atm_address if child.peer is not None else b"", outgoing=False)
            self._own(child, vc)
            self.core.incoming(vc, child.vc, self.now())
            early, child.queue, child.queued = child.queue, type(child.queue)(), 0
            for sdu in early:
                self._sdu(child, PacketBuffer.from_payload(sdu))

    def _sdu(self, pcb: AtmPcb, pkt: PacketBuffer) -> None:
        vc = self.pcbs.get(pcb)
        if vc is None or pcb.vc is None:
            return
        now = self.now()
        if pkt.view()[:LLC_SNAP_LEN] == LLC_SNAP_IPV4:
            vc.last = now                         # only IP keeps a VC from idling out
        self.link.input(pkt, pcb.vc[0], pcb.vc[1], now)


# --- wiring (Stack.add_atm_svc / remove_interface) -------------------------------------------------
# The host is the Stack seen through protocols.contracts.ProtocolHost: its AF_NDD ATM protocol
# (the protosw entry's user requests place and take the calls), its timers and its clock.
def enable_svc(host: ProtocolHost, link: AtmLink, aesa: bytes, *, arp_server: bytes | None = None,
               serve_atmarp: bool = False) -> ClipSvc:
    if len(aesa) != 20:
        raise ValueError("an AESA is 20 octets")
    if arp_server is not None and len(arp_server) != 20:
        raise ValueError("the ATMARP server's AESA is 20 octets")
    if serve_atmarp and arp_server not in (None, aesa):
        raise ValueError("an ATMARP server host resolves through itself: no other arp_server")
    if link.svc is not None:
        raise OSError(errno.EEXIST, f"{os.strerror(errno.EEXIST)}: {link.ifp.name} runs SVCs already")
    table, cfg = link.table, link.table.config
    core = ClipSvc(aesa, table.local_addrs, table.source_for, link.stats, cfg,
                   transmit=lambda vc, data: link.send(PacketBuffer.from_payload(data), vc[0], vc[1],
                                                       LLC_SNAP_ATMARP),
                   transmit_ip=lambda pkt, vc: link.send(pkt, vc[0], vc[1], LLC_SNAP_IPV4),
                   unreachable=lambda pkt: table.unreachable(pkt))
    pr = host.protosw.find_proto(AF_NDD, NDD_PROT_ATM)
    assert pr is not None
    calls = ClipCalls(cast("AtmUserRequests", pr.usrreqs), link.ndd.ndd_name, aesa, link.ifp.mtu + LLC_SNAP_LEN, core,
                      link, host.now)
    calls.start()
    link.svc, link.svc_calls = core, calls
    host.timers.register(core)
    if serve_atmarp:
        core.server = AtmArpServer(send=core.server_send, is_open=core.is_open, own_ip=core.primary_ip, aesa=aesa,
                                   lifetime=cfg.server_lifetime, retrans=cfg.retrans_time,
                                   retries=cfg.max_retries, stats=link.stats, max_entries=cfg.server_max_entries)
        host.timers.register(core.server)
        arp_server = aesa
    core.use_server(arp_server, host.now())
    return core


def disable_svc(host: ProtocolHost, link: AtmLink) -> None:
    core: Any = link.svc
    if core is None:
        return
    host.timers.unregister(core)
    if core.server is not None:
        host.timers.unregister(core.server)
    core.close()
    link.svc_calls.close()
    link.svc = link.svc_calls = None


__all__ = ["CLIP_BLLI", "ClipCalls", "disable_svc", "enable_svc"]
