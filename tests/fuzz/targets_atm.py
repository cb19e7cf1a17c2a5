"""ATM fuzz targets: cells into an adapter (HEC, AAL5, OAM, relay, CLIP/InATMARP above it),
AAL5 reassembly, SSCOP between two ends in every state, the SSCOP / Q.2931 / ATMARP codecs
(parse -> emit -> parse), Q.2931 call control with a user and a network end, the switch's
call routing with two hosts behind it, and the ATMARP server."""
from __future__ import annotations

import errno

from drivers.atm import aal5, cell, oam
from drivers.atm.adapter import AtmNdd
from drivers.atm.phy import Phy
from ndd.atm import VcParams
from protocols.atm.clip.atmarp import (
    OP_INARP_REPLY,
    OP_INARP_REQUEST,
    OP_NAK,
    OP_REPLY,
    OP_REQUEST,
    TL_E164,
    AtmArpRepr,
)
from protocols.atm.clip.atmarp_server import LOCAL, AtmArpServer
from protocols.atm.clip.link import LLC_SNAP_ATMARP, LLC_SNAP_IPV4
from protocols.atm.saal import sscop_pdu as sp
from protocols.atm.saal.sscf import AalEv, AalEvent
from protocols.atm.saal.sscop import Sscop, SscopConfig
from protocols.atm.switch.core import SwitchCore
from protocols.atm.uni.call import Call, CallEv, Side, UniConfig
from protocols.atm.uni.control import Uni
from protocols.atm.uni.q2931 import (
    ALERTING,
    CALL_PROCEEDING,
    CONNECT,
    CONNECT_ACK,
    RELEASE,
    RELEASE_COMPLETE,
    RESTART,
    RESTART_ACK,
    SETUP,
    STATUS,
    STATUS_ENQUIRY,
    AalParameters,
    BearerCapability,
    Blli,
    CalledNumber,
    CallingNumber,
    CallState,
    Cause,
    ConnectionId,
    Q2931Message,
    QosParameter,
    RestartIndicator,
    TrafficDescriptor,
    UnknownIE,
    parse_message,
)
from protocols.udp.usrreq import UdpUserRequests

from . import check, target
from .harness import (
    TIME_STEPS,
    ClockStack,
    Fdp,
    ip_packet,
    mutate,
    pick,
    run_timers,
    steps,
)

UDP = 17


# --- cells into an adapter ------------------------------------------------------------------------
class RecordingPhy(Phy):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []

    def open(self, start_task) -> None:                   # type: ignore[no-untyped-def]
        self.is_open = True
        self._set_up(True)

    def close(self) -> None:
        self.is_open = False

    def send(self, cells: bytes) -> int:
        if len(self.sent) < 64:
            self.sent.append(cells)
        return 0


def _sdu(fdp: Fdp) -> bytes:
    """What a CLIP VC carries: LLC/SNAP + IPv4 or ATMARP, or anything."""
    kind = fdp.ConsumeIntInRange(0, 3)
    if kind == 0:
        return LLC_SNAP_IPV4 + ip_packet(0x0A010001, pick(fdp, (0x0A010002, 0x0A0100FF)), UDP,
                                         bytes(8) + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 100)))
    if kind == 1:
        return LLC_SNAP_ATMARP + _atmarp(fdp).emit()
    if kind == 2:
        return LLC_SNAP_IPV4 + bytes(fdp.ConsumeIntInRange(0, 10000))
    return fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 200)) or b"\0"


@target("atm_cells")
def atm_cells(data: bytes) -> None:
    """Cell streams into an AtmNdd on a Stack: CLIP PVCs (static and InATMARP), a relayed VC,
    unknown VCs, OAM F5 loopbacks, corrupted HECs (detection or correction mode), truncated
    blobs, reassembly timeouts."""
    fdp = Fdp(data)
    st = ClockStack(seed=4)
    phy = RecordingPhy()
    ndd = AtmNdd("atm0", phy, hec_correct=fdp.ConsumeBool())
    st.add_interface(ndd, "10.1.0.2/24")
    st.add_atm_pvc("atm0", 0, 100, "10.1.0.1")
    st.add_atm_pvc("atm0", 0, 101)
    relayed: list[bytes] = []
    ndd.open_vc(VcParams(0, 200, relay=lambda blob: relayed.append(blob) if len(relayed) < 64 else None))
    vcs = ((0, 100), (0, 101), (0, 200), (1, 1), (0, 5))
    for _ in steps(fdp):
        op = fdp.ConsumeIntInRange(0, 5)
        if op <= 1:
            vpi, vci = pick(fdp, vcs)
            blob = bytearray(aal5.segment(_sdu(fdp), vpi, vci, uu=fdp.ConsumeIntInRange(0, 255),
                                          cpi=pick(fdp, (0, 0, 1))))
            if op == 1:
                blob = bytearray(mutate(fdp, bytes(blob), 4))
            ndd._rx_cells(bytes(blob))
        elif op == 2:
            vpi, vci = pick(fdp, vcs)
            pti = fdp.ConsumeIntInRange(0, 7)
            payload = fdp.ConsumeBytes(48).ljust(48, b"\0")
            if pti in (4, 5) and fdp.ConsumeBool():
                payload = oam.loopback_request(vpi, vci, fdp.ConsumeIntInRange(0, 9), end_to_end=pti == 5)[5:]
            hdr = bytearray(cell.header_bytes(vpi, vci, pti, fdp.ConsumeIntInRange(0, 1)))
            if fdp.ConsumeBool():
                hdr[fdp.ConsumeIntInRange(0, 4)] ^= 1 << fdp.ConsumeIntInRange(0, 7)
            ndd._rx_cells(bytes(hdr) + payload)
        elif op == 3:
            ndd._rx_cells(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300)))
        elif op == 4:
            st.tick(pick(fdp, TIME_STEPS))
            run_timers([ndd.reasm], st.t)
        else:
            # a datagram out: over the static PVC, or held for InATMARP on the other
            u = UdpUserRequests(st.udp)
            pcb = u.attach(st.t)
            u.send(pcb, memoryview(bytes(fdp.ConsumeIntInRange(0, 3000))),
                   (pick(fdp, (0x0A010001, 0x0A010003)), 9), st.t)
            u.detach(pcb, st.t)
        del phy.sent[:], relayed[:]
        check(len(ndd.reasm._active) <= len(ndd.reasm.vcs), "AAL5 active VCs")


@target("aal5")
def aal5_reassembly(data: bytes) -> None:
    """AAL5 SAR: SDUs segmented and fed back (possibly interleaved, mutated, cut); an intact
    SDU must come back unchanged, a PDU never exceeds 65535 octets."""
    fdp = Fdp(data)
    r = aal5.Reassembler(timeout=1.0)
    now = 0.0
    big = fdp.ConsumeIntInRange(0, 7) == 0      # in one input of 8: 1250 cells cost ~50 ms instrumented
    for _ in steps(fdp, 64):
        op = fdp.ConsumeIntInRange(0, 3)
        if op <= 1:
            vci = fdp.ConsumeIntInRange(32, 34)
            sdu = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 200)) or b"x"
            if big:                                      # one SDU near the 65535 bound
                big = False
                sdu = bytes(fdp.ConsumeIntInRange(60000, 65535))
            cells = aal5.segment(sdu, 0, vci)
            intact = op == 0
            if not intact:
                cells = mutate(fdp, cells, 3)
            got = []
            for hdr, payload in cell.parse_cells(cells):
                if isinstance(hdr, str):
                    continue
                out = r.feed(hdr.vpi, hdr.vci, hdr.pti, payload, now)
                if out is not None:
                    check(len(out) <= 65535, "AAL5 SDU over 65535")
                    got.append(out)
            if intact and not r.vcs[(0, vci)].discarding and len(sdu) <= 65535:
                check(got[-1:] == [sdu] or not got, f"AAL5 returned {got!r:.80} for an intact SDU")
        elif op == 2:
            odd = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 60))     # a cell payload of any length
            r.feed(0, fdp.ConsumeIntInRange(32, 34), fdp.ConsumeIntInRange(0, 7), odd, now)
        else:
            now += pick(fdp, (0.1, 0.99, 1.0, 5.0))
            run_timers([r], now)
        for vc in r.vcs.values():
            check(len(vc.buf) <= aal5.MAX_PDU, "AAL5 buffer over its bound")


# --- SSCOP -------------------------------------------------------------------------------------------
class SscopPair:
    def __init__(self, auto: bool, window: int) -> None:
        cfg = SscopConfig(auto_respond=auto, window=window, max_queue=32)
        self.ends = (Sscop(cfg), Sscop(cfg))
        self.wire: tuple[list[bytes], list[bytes]] = ([], [])
        self.now = 0.0

    def collect(self) -> None:
        for i, e in enumerate(self.ends):
            self.wire[i].extend(e.take_output())
            del self.wire[i][256:]
            e.take_events()

    def deliver(self, i: int, k: int = 0) -> None:
        self.collect()
        if self.wire[i]:
            self.ends[1 - i].receive(self.wire[i].pop(k % len(self.wire[i])), self.now)
        self.collect()

    def run(self, limit: int = 200) -> None:
        for _ in range(limit):
            self.collect()
            if not (self.wire[0] or self.wire[1]):
                return
            self.deliver(0)
            self.deliver(1)

    def tick(self, dt: float) -> None:
        self.now += dt
        run_timers(list(self.ends), self.now)
        self.collect()


def _crafted_sscop(fdp: Fdp, e: Sscop) -> bytes:
    near = pick(fdp, (e.vr_r, e.vr_h, e.vr_mr, e.vt_s, e.vt_a, e.vt_ms, e.vt_ps, 0, 0xFFFFFF))
    n = (near + fdp.ConsumeIntInRange(-3, 3)) & 0xFFFFFF
    m = (pick(fdp, (e.vr_r, e.vt_s, e.vt_ms, e.vt_a)) + fdp.ConsumeIntInRange(-3, 40)) & 0xFFFFFF
    sq = (e.vr_sq if e.vr_sq is not None and fdp.ConsumeBool() else fdp.ConsumeIntInRange(0, 255)) & 0xFF
    uu = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 9))
    kind = fdp.ConsumeIntInRange(0, 14)
    pdus = (lambda: sp.Bgn(sq, m, uu), lambda: sp.Bgak(m, uu), lambda: sp.Bgrej(uu),
            lambda: sp.End(fdp.ConsumeBool(), uu), lambda: sp.Endak(), lambda: sp.Rs(sq, m, uu),
            lambda: sp.Rsak(m), lambda: sp.Er(sq, m), lambda: sp.Erak(m), lambda: sp.Sd(n, uu),
            lambda: sp.Poll(m, n),
            lambda: sp.Stat(n, m, (n + fdp.ConsumeIntInRange(0, 4)) & 0xFFFFFF,
                            tuple((n + fdp.ConsumeIntInRange(0, 70)) & 0xFFFFFF
                                  for _ in range(fdp.ConsumeIntInRange(0, 6)))),
            lambda: sp.Ustat(m, n, ((n + 1) & 0xFFFFFF, (n + fdp.ConsumeIntInRange(0, 9)) & 0xFFFFFF)),
            lambda: sp.Ud(uu), lambda: sp.Md(uu))
    return pdus[kind]().emit()


def _sscop_primitive(fdp: Fdp, e: Sscop, now: float) -> None:
    what = fdp.ConsumeIntInRange(0, 8)   # 7 and 8 both recover: the range the seed corpus was recorded with
    uu = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 5))
    if what == 0:
        e.establish(uu, now)
    elif what == 1:
        e.accept(uu, now)
    elif what == 2:
        e.release(uu, now)
    elif what == 3:
        e.send(bytes(fdp.ConsumeIntInRange(0, 100)), now)
    elif what == 4:
        e.send_unitdata(uu, now)
    elif what == 5:
        e.resync(now, uu)
    elif what == 6:
        e.resync_response(now)
    else:
        e.recover_response(now)


@target("sscop")
def sscop(data: bytes) -> None:
    """Two SSCOP ends (auto-responding or not) brought to a state -- idle, incoming
    connection pending, data transfer with SDs in flight, resync or release pending --
    then PDUs delivered, lost, duplicated, reordered, mutated or crafted around the
    receiver's own state variables, user primitives and timer expiries."""
    fdp = Fdp(data)
    p = SscopPair(fdp.ConsumeBool(), pick(fdp, (4, 128)))
    a, b = p.ends
    how = fdp.ConsumeIntInRange(0, 4)
    if how >= 1:
        a.establish(b"hi", p.now)
        p.deliver(0)
        b.accept(b"", p.now)
        if how >= 2:
            p.run()
            for k in range(fdp.ConsumeIntInRange(0, 10)):
                a.send(bytes([k]) * 8, p.now)
                b.send(bytes([k]) * 5, p.now)
            p.collect()
        if how == 3:
            a.resync(p.now)
            p.collect()
        elif how == 4:
            b.release(b"bye", p.now)
            p.collect()
    for _ in steps(fdp, 64):
        op = fdp.ConsumeIntInRange(0, 7)
        i = fdp.ConsumeIntInRange(0, 1)
        e = p.ends[i]
        if op == 0:
            p.deliver(i, fdp.ConsumeIntInRange(0, 3))
        elif op == 1:
            p.collect()
            if p.wire[i]:
                p.wire[i].pop(fdp.ConsumeIntInRange(0, len(p.wire[i]) - 1))
        elif op == 2:
            p.collect()
            if p.wire[i]:
                pdu = pick(fdp, p.wire[i])
                p.ends[1 - i].receive(mutate(fdp, pdu, 3) if fdp.ConsumeBool() else pdu, p.now)
        elif op == 3:
            e.receive(_crafted_sscop(fdp, e), p.now)
        elif op == 4:
            e.receive(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40)), p.now)
        elif op == 5:
            _sscop_primitive(fdp, e, p.now)
        elif op == 6:
            p.tick(pick(fdp, (0.1, 0.75, 1.0, 2.0, 7.0, 15.0, 30.0)))
        else:
            p.run(fdp.ConsumeIntInRange(1, 20))
        p.collect()
        for x in p.ends:
            check(len(x.txq) <= x.config.max_queue, "SSCOP transmission queue over max_queue")
            check(len(x.rxbuf) <= x.config.window, f"SSCOP holds {len(x.rxbuf)} SDs, window {x.config.window}")


@target("sscop_pdu")
def sscop_pdu(data: bytes) -> None:
    """SSCOP PDU codec: whatever parses re-emits to bytes that parse to the same PDU."""
    pdu = sp.parse_pdu(data)
    if isinstance(pdu, str):
        return
    again = sp.parse_pdu(pdu.emit())
    check(again == pdu, f"SSCOP re-parse {again!r} != {pdu!r}")


@target("q2931")
def q2931(data: bytes) -> None:
    """Q.2931 codec: a parsed message re-emits to bytes that parse and re-emit identically."""
    m = parse_message(data)
    if isinstance(m, str):
        return
    out = m.emit()
    again = parse_message(out)
    check(not isinstance(again, str), f"re-emitted message does not parse: {again}")
    assert not isinstance(again, str)
    check(again.emit() == out, "Q.2931 emit is not stable")
    check(len(again.ies) == len(m.ies), "IE count changed")


# --- Q.2931 call control: both sides ---------------------------------------------------------------
# two hosts behind the switch differ in their ESI (the selector octet is not routed); one AESA leads nowhere
AESAS = (b"\x47" + bytes(19), b"\x47" + bytes(17) + b"\x01\x00", b"\x39" + bytes(19))
MSG_TYPES = (ALERTING, CALL_PROCEEDING, SETUP, CONNECT, CONNECT_ACK, RELEASE, RELEASE_COMPLETE, RESTART,
             RESTART_ACK, STATUS, STATUS_ENQUIRY, 0x3F)


def setup_ies(fdp: Fdp) -> list:
    ies = [TrafficDescriptor(fwd_pcr_01=1000, bwd_pcr_01=1000), BearerCapability(),
           CalledNumber(pick(fdp, AESAS)), QosParameter()]
    if fdp.ConsumeBool():
        ies.append(CallingNumber(pick(fdp, AESAS)))
    if fdp.ConsumeBool():
        ies.append(AalParameters())
    if fdp.ConsumeBool():
        ies.append(Blli())
    if fdp.ConsumeBool():
        del ies[fdp.ConsumeIntInRange(0, len(ies) - 1)]
    return ies


def _crafted_q2931(fdp: Fdp, uni: Uni) -> bytes:
    refs = [k[0] for k in uni.calls] or [1]
    callref = pick(fdp, (pick(fdp, refs), 0, fdp.ConsumeIntInRange(0, 0x7FFFFF)))
    ours = [k for k in uni.calls if k[0] == callref]
    flag = (0 if ours[0][1] else 1) if ours and fdp.ConsumeBool() else fdp.ConsumeIntInRange(0, 1)
    ies: list = []
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        ies.append(pick(fdp, (
            Cause(fdp.ConsumeIntInRange(0, 127)), CallState(fdp.ConsumeIntInRange(0, 63)),
            ConnectionId(0, fdp.ConsumeIntInRange(0, 70)), RestartIndicator(pick(fdp, (0, 2, 1))),
            TrafficDescriptor(fwd_pcr_01=10, bwd_pcr_01=10), BearerCapability(), QosParameter(),
            CalledNumber(pick(fdp, AESAS)), UnknownIE(0x7E, b"\1\2", compat=0x80 | fdp.ConsumeIntInRange(0, 0x1F)))))
    m = Q2931Message(pick(fdp, MSG_TYPES), callref, flag, ies, compat=0x80 | fdp.ConsumeIntInRange(0, 0x1F))
    return m.emit()


class UniPair:
    """A user and a network Uni over a wire the input controls (tests/unit/test_uni.py's
    Pair, driven by the fuzzer)."""

    def __init__(self) -> None:
        self.ends = (Uni(Side.USER, UniConfig()), Uni(Side.NETWORK, UniConfig()))
        self.wire: tuple[list[bytes], list[bytes]] = ([], [])
        self.now = 0.0
        self.incoming: tuple[list[Call], list[Call]] = ([], [])
        self.link_ok = True

    def collect(self) -> None:
        for _ in range(50):
            busy = False
            for i, e in enumerate(self.ends):
                for ev in e.take_events():
                    if ev.kind == CallEv.SETUP_IND and ev.call is not None:
                        self.incoming[i].append(ev.call)
                del self.incoming[i][:-8]
                for act in e.take_actions():
                    busy = True
                    if act[0] == "data":
                        if len(self.wire[i]) < 128:
                            self.wire[i].append(act[1])
                    elif act[0] == "establish" and self.link_ok:
                        e.aal_event(AalEvent(AalEv.ESTABLISH_CONF), self.now)
                        other = self.ends[1 - i]
                        if not other.link_up:
                            other.aal_event(AalEvent(AalEv.ESTABLISH_IND), self.now)
            if not busy:
                return

    def deliver(self, i: int, k: int = 0) -> None:
        self.collect()
        if self.wire[i]:
            self.ends[1 - i].receive(self.wire[i].pop(k % len(self.wire[i])), self.now)
        self.collect()


def _uni_primitive(fdp: Fdp, uni: Uni, incoming: list[Call], now: float) -> None:
    calls = list(uni.calls.values()) + incoming
    call = pick(fdp, calls) if calls else None
    cid = ConnectionId(0, fdp.ConsumeIntInRange(32, 40)) if fdp.ConsumeBool() or uni.side is Side.NETWORK else None
    what = fdp.ConsumeIntInRange(0, 7)
    try:
        if what == 0 or call is None:
            uni.setup(setup_ies(fdp), now, conn_id=cid)
        elif what == 1:
            uni.proceeding(call, now, cid)
        elif what == 2:
            uni.alerting(call, now, cid)
        elif what == 3:
            uni.connect(call, now, conn_id=cid)
        elif what == 4:
            uni.release(call, now, fdp.ConsumeIntInRange(0, 127))
        elif what == 5:
            uni.status_enquiry(call, now)
        elif what == 6:
            uni.restart(now, cid if fdp.ConsumeBool() else None)
        else:
            uni.restart_ack()
    except OSError as exc:
        # documented: a primitive in the wrong state or without what it needs refuses
        check(exc.errno in (errno.EINVAL, errno.EALREADY, errno.EPROTO, errno.ENOTCONN, errno.EISCONN,
                            errno.EAGAIN, errno.ENOENT, errno.EBUSY),
              f"unexpected errno from a Q.2931 primitive: {exc!r}")


@target("uni")
def uni(data: bytes) -> None:
    """Q.2931 call control, user and network side: calls set up either way, answered,
    released, restarted; messages lost, reordered, mutated, crafted (call references in use
    or not, IEs with instructions); SAAL loss and return; timer expiries."""
    fdp = Fdp(data)
    p = UniPair()
    p.ends[0].establish_link()
    p.collect()
    if fdp.ConsumeBool():                         # a call in progress or active to start from
        p.ends[0].setup(setup_ies(fdp), p.now)
        for _ in range(fdp.ConsumeIntInRange(0, 6)):
            p.deliver(0)
            p.deliver(1)
            if p.incoming[1]:
                try:
                    p.ends[1].connect(p.incoming[1][-1], p.now, conn_id=ConnectionId(0, 33))
                except OSError:
                    pass
    for _ in steps(fdp, 64):
        op = fdp.ConsumeIntInRange(0, 7)
        i = fdp.ConsumeIntInRange(0, 1)
        if op == 0:
            p.deliver(i, fdp.ConsumeIntInRange(0, 2))
        elif op == 1:
            if p.wire[i]:
                p.wire[i].pop(fdp.ConsumeIntInRange(0, len(p.wire[i]) - 1))
        elif op == 2:
            if p.wire[i]:
                p.ends[1 - i].receive(mutate(fdp, pick(fdp, p.wire[i]), 4), p.now)
        elif op == 3:
            p.ends[i].receive(_crafted_q2931(fdp, p.ends[i]), p.now)
        elif op == 4:
            _uni_primitive(fdp, p.ends[i], p.incoming[i], p.now)
        elif op == 5:
            kind = pick(fdp, (AalEv.RELEASE_IND, AalEv.ESTABLISH_IND, AalEv.ESTABLISH_CONF, AalEv.RELEASE_CONF))
            p.link_ok = kind != AalEv.RELEASE_IND
            p.ends[i].aal_event(AalEvent(kind), p.now)
        elif op == 6:
            p.now += pick(fdp, (0.5, 4.0, 10.0, 30.0, 120.0))
            run_timers(list(p.ends), p.now)
        else:
            p.ends[i].receive(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 60)), p.now)
        p.collect()
        for e in p.ends:
            check(all(c.key == k for k, c in e.calls.items()), "call table keyed wrongly")


# --- the switch ----------------------------------------------------------------------------------------
class SwitchPort:
    """The Signalling the switch core drives: a network-side Uni on a shared clock."""

    def __init__(self, clock: list[float], on_event) -> None:   # type: ignore[no-untyped-def]
        self.clock = clock
        self.uni = Uni(Side.NETWORK, UniConfig(), on_event=on_event)

    @property
    def link_up(self) -> bool:
        return self.uni.link_up

    @property
    def calls(self) -> dict:
        return self.uni.calls

    def setup(self, ies, *, conn_id=None, context=None) -> Call:    # type: ignore[no-untyped-def]
        return self.uni.setup(ies, self.clock[0], conn_id=conn_id, context=context)

    def proceeding(self, call, conn_id=None) -> None:               # type: ignore[no-untyped-def]
        self.uni.proceeding(call, self.clock[0], conn_id)

    def alerting(self, call, conn_id=None) -> None:                 # type: ignore[no-untyped-def]
        self.uni.alerting(call, self.clock[0], conn_id)

    def connect(self, call, ies=(), conn_id=None) -> None:          # type: ignore[no-untyped-def]
        self.uni.connect(call, self.clock[0], ies, conn_id)

    def release(self, call, cause=16, diagnostics=b"", location=None) -> None:   # type: ignore[no-untyped-def]
        self.uni.release(call, self.clock[0], cause, diagnostics, location)


@target("switch")
def switch(data: bytes) -> None:
    """The switch's call routing with two hosts (user-side Unis) behind two ports: calls
    between them and to nowhere, answered, refused, released from either end, lost and
    mutated messages, links failing, restarts; the cross-connect table stays symmetric and
    only holds live connections' VCs."""
    fdp = Fdp(data)
    clock = [0.0]
    core = SwitchCore()
    hosts: list[Uni] = []
    ports: list[SwitchPort] = []
    wires: list[tuple[list[bytes], list[bytes]]] = []
    incoming: list[list[Call]] = [[], []]
    for k, prefix in enumerate((AESAS[0][:19].hex(), AESAS[1][:19].hex())):
        port = SwitchPort(clock, lambda ev, name=f"p{k}": core.event(name, ev))
        core.add_port(f"p{k}", port, prefixes=[prefix], vci_range=(32, 40))
        ports.append(port)
        hosts.append(Uni(Side.USER, UniConfig()))
        wires.append(([], []))      # (host -> switch, switch -> host)

    def collect() -> None:
        for _ in range(50):
            busy = False
            for k in range(2):
                for j, e in enumerate((hosts[k], ports[k].uni)):
                    for ev in (e.take_events() if j == 0 else ()):
                        if ev.kind == CallEv.SETUP_IND and ev.call is not None:
                            incoming[k].append(ev.call)
                    del incoming[k][:-8]
                    for act in e.take_actions():
                        busy = True
                        if act[0] == "data" and len(wires[k][j]) < 128:
                            wires[k][j].append(act[1])
                        elif act[0] == "establish":
                            e.aal_event(AalEvent(AalEv.ESTABLISH_CONF), clock[0])
                            other = ports[k].uni if j == 0 else hosts[k]
                            if not other.link_up:
                                other.aal_event(AalEvent(AalEv.ESTABLISH_IND), clock[0])
            if not busy:
                return

    for h in hosts:
        h.establish_link()
    collect()
    for _ in steps(fdp, 64):
        op = fdp.ConsumeIntInRange(0, 6)
        k, j = fdp.ConsumeIntInRange(0, 1), fdp.ConsumeIntInRange(0, 1)
        dst = ports[k].uni if j == 0 else hosts[k]
        w = wires[k][j]
        if op == 0 and w:
            dst.receive(w.pop(fdp.ConsumeIntInRange(0, len(w) - 1) if fdp.ConsumeBool() else 0), clock[0])
        elif op == 1 and w:
            msg = pick(fdp, w)
            dst.receive(mutate(fdp, msg, 4) if fdp.ConsumeBool() else msg, clock[0])
        elif op == 2:
            ports[k].uni.receive(_crafted_q2931(fdp, ports[k].uni), clock[0])
        elif op == 3:
            _uni_primitive(fdp, hosts[k], incoming[k], clock[0])
        elif op == 4:
            kind = pick(fdp, (AalEv.RELEASE_IND, AalEv.ESTABLISH_IND))
            dst.aal_event(AalEvent(kind), clock[0])
            if kind == AalEv.RELEASE_IND:
                w.clear()
        elif op == 5:
            clock[0] += pick(fdp, (0.5, 4.0, 10.0, 30.0, 120.0))
            run_timers([*hosts, *(port.uni for port in ports)], clock[0])
        else:
            for _ in range(fdp.ConsumeIntInRange(1, 10)):
                for kk in range(2):
                    for jj in range(2):
                        if wires[kk][jj]:
                            (ports[kk].uni if jj == 0 else hosts[kk]).receive(wires[kk][jj].pop(0), clock[0])
                collect()
        collect()
        for a, b in core.xc.items():
            check(core.xc.get(b) == a, f"cross-connect {a} -> {b} not symmetric")
        check(len(core.xc) <= 2 * (len(core.connections) + len(core.pvcs) // 2),
              f"{len(core.xc)} cross-connects for {len(core.connections)} connections")


# --- ATMARP ------------------------------------------------------------------------------------------
def _atmarp(fdp: Fdp) -> AtmArpRepr:
    def number() -> tuple[bytes, int]:
        kind = fdp.ConsumeIntInRange(0, 2)
        if kind == 0:
            return b"", 0
        if kind == 1:
            return pick(fdp, AESAS), 0
        return b"12345", TL_E164

    sha, stype = number()
    tha, ttype = number()
    return AtmArpRepr(pick(fdp, (OP_REQUEST, OP_REPLY, OP_NAK, OP_INARP_REQUEST, OP_INARP_REPLY)),
                      pick(fdp, (None, 0x0A010001, 0x0A010002, 0x0A010000 + fdp.ConsumeIntInRange(0, 40))),
                      pick(fdp, (None, 0x0A010001, 0x0A010002, 0x0A010003)), sha,
                      pick(fdp, AESAS) if stype == TL_E164 and fdp.ConsumeBool() else b"", tha, b"", stype, ttype)


@target("atmarp")
def atmarp(data: bytes) -> None:
    """ATMARP: the codec (what parses re-emits to what parses equal) and the RFC 2225 §8.4
    server fed requests, InATMARP replies and aging over several VCs."""
    fdp = Fdp(data)
    raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 120))
    parsed = AtmArpRepr.parse(raw)
    if parsed is not None:
        check(parsed.valid(), "a parsed ATMARP packet is not valid()")
        check(AtmArpRepr.parse(parsed.emit()) == parsed, "ATMARP re-parse differs")
    open_vcs = {1, 2, 3, LOCAL}
    sent: list = []
    server = AtmArpServer(send=lambda vc, arp, now: sent.append((vc, arp)), is_open=lambda vc: vc in open_vcs,
                          own_ip=lambda: 0x0A010002, aesa=AESAS[0], lifetime=60.0)
    now = 0.0
    for _ in steps(fdp, 64):
        op = fdp.ConsumeIntInRange(0, 4)
        if op <= 1:
            arp = _atmarp(fdp)
            if op == 1:
                got = AtmArpRepr.parse(mutate(fdp, arp.emit(), 3))
                if got is None:
                    continue
                arp = got
            if arp.valid():
                check(AtmArpRepr.parse(arp.emit()) == arp, "ATMARP round trip")
                server.input(pick(fdp, (1, 2, 3, 4, LOCAL)), arp, now)
        elif op == 2:
            vc = pick(fdp, (1, 2, 3))
            open_vcs.discard(vc)
            server.vc_closed(vc)
        elif op == 3:
            open_vcs.add(pick(fdp, (1, 2, 3)))
        else:
            now += pick(fdp, (0.5, 1.0, 30.0, 60.0, 61.0, 1200.0))
            run_timers([server], now)
        for reply in sent:
            check(AtmArpRepr.parse(reply[1].emit()) == reply[1], "the server sent an ATMARP packet it cannot parse")
        del sent[:]
