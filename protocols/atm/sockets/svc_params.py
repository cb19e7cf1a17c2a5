"""What an SVC carries: socket option values <-> Q.2931 SETUP information elements.

`CallParams` holds a call's parameters from one socket's point of view (forward = what
that socket sends, as for PVC sockets).  A SETUP is written from the caller's view, so
the called side turns the values around (`reversed()`).  The mapping:

    SO_ATM_AAL_PARM    AAL parameters 0x58: AAL5, fwd/bwd max CPCS-SDU, message mode, null SSCS
    SO_ATM_TRAFFIC_DES traffic descriptor 0x59 (`traffic_ie`, `traffic_of`): traffic_des_t's
                       Kbit/s as cells/s (rounded up, 424 bits a cell), bursts in octets as
                       cells (48 octets each, rounded up); _hp -> CLP=0+1, _lp -> CLP=0 for
                       peak, sustainable and burst; best_effort -> the best-effort
                       indicator, also set when a direction has no peak rate (the line
                       rate); tagging_fwd/_bak -> the management options' bits 1/2
    SO_ATM_BEARER      broadband bearer capability 0x5E
    SO_ATM_QOS_PARM    QoS parameter 0x5C (classes 1-4 coded "network specific", UNI 3.1)
    SO_ATM_BLLI        B-LLI 0x5F (absent when l2 = l3 = 0); SNAP only with TR 9577
    SO_ATM_BHLI        B-HLI 0x5D (absent when its info is empty)
    address / SO_ATM_CALLED    called party number 0x70 (+ subaddress 0x71)
    SO_ATM_CALLING     calling party number 0x6C (+ subaddress 0x6D)
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ndd.atm import CELL_PAYLOAD, cells_to_kbps, kbps_to_cells
from ndd.constants import NOT_SPECIFIED_L
from protocols.atm.uni.ie import AESA_LEN
from protocols.atm.uni.q2931 import (
    AAL_5,
    AAL_MODE_MESSAGE,
    CODING_NETWORK,
    COMPAT_DEFAULT,
    COMPAT_EXT,
    IE_AAL,
    IE_BBCAP,
    IE_BHLI,
    IE_BLLI,
    IE_CALLED,
    IE_CALLED_SUB,
    IE_CALLING,
    IE_CALLING_SUB,
    IE_QOS,
    IE_TRAFFIC,
    IPI_SNAP,
    L2_USER,
    L3_ISO8208,
    L3_TR9577,
    L3_USER,
    L3_X25,
    L3_X223,
    PLAN_AESA,
    PLAN_E164,
    SSCS_NULL,
    SUB_AESA,
    TON_INTERNATIONAL,
    TON_UNKNOWN,
    AalParameters,
    AnyIE,
    BearerCapability,
    CalledNumber,
    CalledSubaddress,
    CallingNumber,
    CallingSubaddress,
    Q2931Message,
    QosParameter,
    TrafficDescriptor,
    TransitNetwork,
)
from protocols.atm.uni.q2931 import (
    Bhli as BhliIE,
)
from protocols.atm.uni.q2931 import Blli as BlliIE

from .sockaddr import (
    BCOB_X,
    NOT_SPECIFIED_B,
    AalParm,
    AtmAddr,
    Bearer,
    Bhli,
    Blli,
    QosParm,
    TrafficDes,
    TransitSel,
    number_ok,
)


@dataclass(frozen=True)
class CallParams:
    aal: AalParm
    traffic: TrafficDes = field(default_factory=TrafficDes)
    bearer: Bearer = field(default_factory=Bearer)
    qos: QosParm = field(default_factory=QosParm)
    blli: Blli = field(default_factory=Blli)
    called: AtmAddr = field(default_factory=AtmAddr)
    calling: AtmAddr = field(default_factory=AtmAddr)
    bhli: Bhli = field(default_factory=Bhli)
    blli_alt: tuple[Blli, ...] = ()      # a caller's further B-LLI choices, in order (SETUP only)
    transit: TransitSel = field(default_factory=TransitSel)    # SETUP only: the network's

    def reversed(self) -> CallParams:
        """The other end's view: forward and backward swap; the parties keep their roles."""
        a, t, q = self.aal, self.traffic, self.qos
        return replace(self, aal=AalParm(a.bwd_max_sdu, a.fwd_max_sdu, a.aal_type),
                       traffic=t.reversed(), qos=QosParm(q.bwd_class, q.fwd_class))


# traffic_des_t's fields <-> the traffic descriptor IE's subfields (UNI 3.1 §5.4.5.6)
_TD_RATES = (("fwd_peakrate_hp", "fwd_pcr_01"), ("bak_peakrate_hp", "bwd_pcr_01"),
             ("fwd_peakrate_lp", "fwd_pcr_0"), ("bak_peakrate_lp", "bwd_pcr_0"),
             ("fwd_sus_rate_hp", "fwd_scr_01"), ("bak_sus_rate_hp", "bwd_scr_01"),
             ("fwd_sus_rate_lp", "fwd_scr_0"), ("bak_sus_rate_lp", "bwd_scr_0"))
_TD_BURSTS = (("fwd_bur_size_hp", "fwd_mbs_01"), ("bak_bur_size_hp", "bwd_mbs_01"),
              ("fwd_bur_size_lp", "fwd_mbs_0"), ("bak_bur_size_lp", "bwd_mbs_0"))
TAG_FWD, TAG_BWD = 0x01, 0x02      # traffic management options octet: tagging forward/backward
_CELLS_MAX = 0xFFFFFF              # a subfield's 3 octets


def _given(v: int) -> bool:
    return v not in (0, NOT_SPECIFIED_L, -1)


def traffic_ie(t: TrafficDes) -> TrafficDescriptor:
    """SO_ATM_TRAFFIC_DES (Kbit/s, octets) as a SETUP's traffic descriptor (cells)."""
    ie = TrafficDescriptor()
    for ours, theirs in _TD_RATES:
        v = getattr(t, ours)
        if _given(v):
            setattr(ie, theirs, min(kbps_to_cells(v), _CELLS_MAX))
    for ours, theirs in _TD_BURSTS:
        v = getattr(t, ours)
        if _given(v):
            setattr(ie, theirs, min(-(-v // CELL_PAYLOAD), _CELLS_MAX))
    ie.best_effort = bool(t.best_effort) or ie.fwd_pcr_01 is None or ie.bwd_pcr_01 is None
    if t.tagging_fwd or t.tagging_bak:
        ie.mgmt_options = (TAG_FWD if t.tagging_fwd else 0) | (TAG_BWD if t.tagging_bak else 0)
    return ie


def traffic_of(ie: TrafficDescriptor) -> TrafficDes:
    """A SETUP's traffic descriptor as traffic_des_t (the caller's view): what the IE
    leaves out is NOT_SPECIFIED_L.  best_effort shows the indicator as signalled."""
    v: dict[str, int] = {}
    for ours, theirs in _TD_RATES:
        cells = getattr(ie, theirs)
        if cells:
            v[ours] = cells_to_kbps(cells)
    for ours, theirs in _TD_BURSTS:
        cells = getattr(ie, theirs)
        if cells:
            v[ours] = cells * CELL_PAYLOAD
    mgmt = ie.mgmt_options or 0
    return TrafficDes(**v, best_effort=int(ie.best_effort), tagging_fwd=int(bool(mgmt & TAG_FWD)),
                      tagging_bak=int(bool(mgmt & TAG_BWD)))


# UNI 3.1 §5.4.5.9: the layer 2 protocols whose octet 6a/6b carry a mode and window size
# (ISO 1745, Q.921, X.25 link and multilink, extended LAPB, HDLC ARM/NRM/ABM, X.75 SLP,
# Q.922, ISO 7776) and the layer 3 ones whose 7a-7c carry mode, default packet size and
# packet window size (X.25 packet layer, ISO/IEC 8208, X.223/ISO 8878)
_L2_MODAL = frozenset({0x01, 0x02, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0D, 0x0E, 0x11})
_L3_MODAL = frozenset({L3_X25, L3_ISO8208, L3_X223})


def _trimmed(*octets: int) -> tuple[int, ...]:
    """Continuation octets up to the last one given (a missing one before it: 0)."""
    out = list(octets)
    while out and not out[-1]:
        out.pop()
    return tuple(out)


def blli_ie(b: Blli) -> BlliIE | None:
    """One blli_t choice as a B-LLI IE: the mode rides bits 7-6 of octet 6a/7a (a 7-bit
    continuation value << 5), window and packet sizes their own octets; a user-specified
    protocol's info is its one continuation octet; TR 9577's IPI octets 7a/7b."""
    if not b.present:
        return None
    ie = BlliIE(l2=b.l2_proto or None, l3=b.l3_proto or None)
    if b.l2_proto in _L2_MODAL:
        ie.l2_extra = _trimmed(b.l2_mode << 5, b.l2_win_size)
    elif b.l2_proto == L2_USER and b.l2_info != NOT_SPECIFIED_B:
        ie.l2_extra = (b.l2_info,)
    if b.l3_proto in _L3_MODAL:
        ie.l3_extra = _trimmed(b.l3_mode << 5, b.l3_def_pkt_size, b.l3_pkt_win_size)
    elif b.l3_proto == L3_USER and b.l3_info != NOT_SPECIFIED_B:
        ie.l3_extra = (b.l3_info,)
    elif b.l3_proto == L3_TR9577 and b.ipi:
        ie.l3_extra = BlliIE.tr9577(b.ipi)
        if b.ipi == IPI_SNAP and b.snap:
            ie.snap = (int.from_bytes(b.snap[:3], "big"), int.from_bytes(b.snap[3:], "big"))
    return ie


def blli_of(ie: BlliIE) -> Blli:
    """A received B-LLI IE as blli_t's friendly form (blli_ie's inverse)."""
    snap = b""
    if ie.snap is not None:
        snap = ie.snap[0].to_bytes(3, "big") + ie.snap[1].to_bytes(2, "big")
    l2x, l3x = ie.l2_extra + (0, 0), ie.l3_extra + (0, 0, 0)
    v: dict[str, int] = {}
    if ie.l2 in _L2_MODAL:
        v.update(l2_mode=(l2x[0] >> 5) & 3, l2_win_size=l2x[1])
    elif ie.l2 == L2_USER and ie.l2_extra:
        v.update(l2_info=ie.l2_extra[0])
    if ie.l3 in _L3_MODAL:
        v.update(l3_mode=(l3x[0] >> 5) & 3, l3_def_pkt_size=l3x[1] & 0x0F, l3_pkt_win_size=l3x[2])
    elif ie.l3 == L3_USER and ie.l3_extra:
        v.update(l3_info=ie.l3_extra[0])
    elif ie.l3 == L3_TR9577 and ie.ipi is not None:
        v.update(ipi=ie.ipi)
    return Blli(ie.l2 or 0, ie.l3 or 0, snap, **v)


def setup_ies(p: CallParams) -> list[AnyIE]:
    """The IEs of a SETUP for `p` (the caller's view); the network adds the VC."""
    td = traffic_ie(p.traffic)
    b = p.bearer
    x = b.bearer_class == BCOB_X     # octet 5a (traffic type, timing) exists for BCOB-X only
    qos_compat = COMPAT_EXT | CODING_NETWORK if p.qos.fwd_class or p.qos.bwd_class else COMPAT_DEFAULT
    ies: list[AnyIE] = [
        AalParameters(AAL_5, p.aal.fwd_max_sdu, p.aal.bwd_max_sdu, AAL_MODE_MESSAGE, SSCS_NULL),
        td,
        BearerCapability(b.bearer_class, b.traffic_type if x else None, b.timing if x else None,
                         b.clipping, b.up_config),
    ]
    if p.bhli.info:
        ies.append(BhliIE(p.bhli.hli_type, p.bhli.info))
    for choice in (p.blli, *p.blli_alt):      # UNI 3.1 §5.4.5.9: up to three, the first preferred
        blli = blli_ie(choice)
        if blli is not None:
            ies.append(blli)
    ies.append(CalledNumber(p.called.address, p.called.plan,
                            TON_INTERNATIONAL if p.called.plan == PLAN_E164 else TON_UNKNOWN))
    if p.called.subaddress:
        ies.append(CalledSubaddress(p.called.subaddress, SUB_AESA))
    if p.calling.address:
        e164 = p.calling.plan == PLAN_E164
        ies.append(CallingNumber(p.calling.address, p.calling.plan, TON_INTERNATIONAL if e164 else TON_UNKNOWN))
    if p.calling.subaddress:
        ies.append(CallingSubaddress(p.calling.subaddress, SUB_AESA))
    ies.append(QosParameter(p.qos.fwd_class, p.qos.bwd_class, compat=qos_compat))
    if p.transit.net_id:
        ies.append(TransitNetwork(p.transit.net_type, p.transit.plan, p.transit.net_id))
    return ies


def setup_params(msg: Q2931Message, default_sdu: int) -> CallParams:
    """A received SETUP's parameters, the caller's view; what it lacks takes the defaults
    (max SDU: `default_sdu`, the adapter's MTU)."""
    aal = msg.get(IE_AAL)
    fwd = bwd = default_sdu
    if isinstance(aal, AalParameters) and aal.aal_type == AAL_5:
        fwd = aal.fwd_max_sdu or default_sdu
        bwd = aal.bwd_max_sdu or default_sdu
    td = msg.get(IE_TRAFFIC)
    traffic = TrafficDes()
    if isinstance(td, TrafficDescriptor):
        traffic = traffic_of(td)
    bb = msg.get(IE_BBCAP)
    bearer = Bearer()
    if isinstance(bb, BearerCapability):
        bearer = Bearer(bb.bearer_class, bb.traffic_type or 0, bb.timing or 0, bb.clipping, bb.up_config)
    qos = msg.get(IE_QOS)
    blli = msg.get(IE_BLLI)
    bhli = msg.get(IE_BHLI)
    return CallParams(
        aal=AalParm(fwd, bwd),
        traffic=traffic,
        bearer=bearer,
        qos=QosParm(qos.fwd_class, qos.bwd_class) if isinstance(qos, QosParameter) else QosParm(),
        blli=blli_of(blli) if isinstance(blli, BlliIE) else Blli(),
        called=_party(msg, IE_CALLED, IE_CALLED_SUB),
        calling=_party(msg, IE_CALLING, IE_CALLING_SUB),
        bhli=_bhli_of(bhli) if isinstance(bhli, BhliIE) else Bhli())


def _bhli_of(ie: BhliIE) -> Bhli:
    b = Bhli(ie.hli_type, ie.info[:8])
    return b if b.check() == 0 else Bhli()     # a type the option cannot hold: not shown


def connect_ies(aal: AalParm | None, blli: Blli | None) -> list[AnyIE]:
    """The IEs of the CONNECT that accepts a call (SO_ATM_ACCEPT), from the called side's
    view; None leaves one out (the caller keeps what it offered): the AAL parameters when
    SO_ATM_AAL_PARM changed them, written in the caller's direction (UNI 3.1 §5.4.5.5: the
    called user may answer with other max SDU sizes), and the B-LLI when it was chosen among
    several or changed (§5.4.5.9, Annex C)."""
    ies: list[AnyIE] = []
    if aal is not None:
        ies.append(AalParameters(AAL_5, aal.bwd_max_sdu, aal.fwd_max_sdu, AAL_MODE_MESSAGE, SSCS_NULL))
    ie = blli_ie(blli) if blli is not None else None
    if ie is not None:
        ies.append(ie)
    return ies


def connect_params(msg: Q2931Message | None, p: CallParams) -> CallParams:
    """A caller's parameters once CONNECT came: the AAL sizes and B-LLI the called user
    answered with (no IE: as offered)."""
    if msg is None:
        return p
    aal, blli = msg.get(IE_AAL), msg.get(IE_BLLI)
    if isinstance(aal, AalParameters) and aal.aal_type == AAL_5 and aal.fwd_max_sdu and aal.bwd_max_sdu:
        p = replace(p, aal=AalParm(aal.fwd_max_sdu, aal.bwd_max_sdu))
    if isinstance(blli, BlliIE):
        p = replace(p, blli=blli_of(blli))
    return p


def setup_bllis(msg: Q2931Message) -> list[Blli]:
    """Every B-LLI a SETUP offers (UNI 3.1 allows up to three, in order of preference)."""
    return [blli_of(ie) for ie in msg.all(IE_BLLI) if isinstance(ie, BlliIE)]


def _party(msg: Q2931Message, num_id: int, sub_id: int) -> AtmAddr:
    """A party as AtmAddr: an AESA or an E.164 number (call_pnum_t's two plans); another
    plan, or an address the plan does not allow, is not shown."""
    num, sub = msg.get(num_id), msg.get(sub_id)
    addr, plan = b"", PLAN_AESA
    if isinstance(num, (CalledNumber, CallingNumber)) and number_ok(num.address, num.plan):
        addr, plan = num.address, num.plan
    subaddr = getattr(sub, "address", b"") if isinstance(sub, (CalledSubaddress, CallingSubaddress)) else b""
    return AtmAddr(addr, subaddr if len(subaddr) == AESA_LEN else b"", plan if addr else PLAN_AESA)
