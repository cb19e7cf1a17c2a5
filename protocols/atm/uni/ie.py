"""Q.2931 / UNI 3.1 information elements: one small repr per IE, with parse and emit.

IE layout (Q.2931 §4.5.1; ATM Forum UNI 3.1 §5.4.5.1): identifier (1) | compatibility
instruction (1) | length of contents (2) | contents.  The compatibility octet is
  bit 8 ext (1) | bits 7-6 coding standard | bit 5 IE instruction flag | bit 4 spare |
  bits 3-1 IE action indicator
and is kept verbatim on every IE, so call control can apply it (Q.2931 §5.6.8.1).

`parse_ie(ie_id, compat, contents)` never raises: an IE we do not know becomes an
`UnknownIE`, one whose contents break its layout a `MalformedIE` carrying a reason
string.  Either way the message around it still parses; deciding between "ignore",
"report STATUS" and "clear with cause 96/99/100" is call control's job.

Where UNI 3.1 and Q.2931 differ (AAL mode, BLLI TR 9577 / SNAP, subaddress types) this
follows UNI 3.1, which is what linux-atm's atmsigd speaks with `-u uni31`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from . import causes as _causes  # private: q2931 re-exports this module's names with *

Buf = bytes | bytearray | memoryview

# --- IE identifiers (Q.2931 §4.5.1 table 4-3; UNI 3.1 table 5-6) ----------------------
IE_CAUSE = 0x08
IE_CALL_STATE = 0x14
IE_AAL = 0x58
IE_TRAFFIC = 0x59
IE_CONN_ID = 0x5A
IE_QOS = 0x5C
IE_BHLI = 0x5D
IE_BBCAP = 0x5E
IE_BLLI = 0x5F
IE_CALLING = 0x6C
IE_CALLING_SUB = 0x6D
IE_CALLED = 0x70
IE_CALLED_SUB = 0x71
IE_TRANSIT = 0x78            # transit network selection
IE_RESTART = 0x79

# --- compatibility instruction octet (Q.2931 §4.5.1, octet 2) ---------------------------
COMPAT_EXT = 0x80
CODING_ITU = 0 << 5
CODING_ISO = 1 << 5
CODING_NATIONAL = 2 << 5
CODING_NETWORK = 3 << 5      # "network specific"; UNI 3.1 uses it for QoS classes 1-4
COMPAT_FLAG = 0x10           # 1 = follow the explicit action indicator below
COMPAT_DEFAULT = COMPAT_EXT | CODING_ITU
# IE action indicator, bits 3-1 (meaningful only with COMPAT_FLAG set)
IE_ACT_CLEAR = 0             # clear call
IE_ACT_DISCARD = 1           # discard IE and proceed
IE_ACT_DISCARD_REPORT = 2    # discard IE, proceed, report STATUS
IE_ACT_DISCARD_MSG = 5       # discard message and ignore
IE_ACT_DISCARD_MSG_REPORT = 6

# Cause location, octet 5 bits 4-1 (Q.2931 §4.5.15 / Q.2610); the cause values are in causes.py
LOC_USER = 0
LOC_PRIVATE_LOCAL = 1
LOC_PUBLIC_LOCAL = 2
LOC_TRANSIT = 3
LOC_PUBLIC_REMOTE = 4
LOC_PRIVATE_REMOTE = 5
LOC_INTERNATIONAL = 7
LOC_BEYOND_INTERWORKING = 10

# Call state values, 6 bits (Q.2931 §4.5.7): user side U*, network side N* share codes.
CS_NULL = 0
CS_CALL_INITIATED = 1
CS_OUTGOING_PROCEEDING = 3
CS_CALL_DELIVERED = 4
CS_CALL_PRESENT = 6
CS_CALL_RECEIVED = 7
CS_CONNECT_REQUEST = 8
CS_INCOMING_PROCEEDING = 9
CS_ACTIVE = 10
CS_RELEASE_REQUEST = 11
CS_RELEASE_INDICATION = 12
CS_REST0 = 0                 # global call reference states (Q.2931 §4.5.7)
CS_REST1 = 61
CS_REST2 = 62

# Restart class (Q.2931 §4.5.21)
RESTART_VC = 0               # the VC in the connection identifier
RESTART_ALL = 2              # all VCs controlled by this signalling channel

# AAL types (UNI 3.1 §5.4.5.5) and AAL5 subfield values
AAL_1 = 0x01
AAL_34 = 0x03
AAL_5 = 0x05
AAL_USER = 0x10
AAL_MODE_MESSAGE = 1
AAL_MODE_STREAMING = 2
SSCS_NULL = 0
SSCS_SSCOP_ASSURED = 1
SSCS_SSCOP_NON_ASSURED = 2
SSCS_FRAME_RELAY = 4

# Broadband bearer class (UNI 3.1 §5.4.5.7)
BCOB_A = 0x01
BCOB_C = 0x03
BCOB_X = 0x10

# Numbering (UNI 3.1 §5.4.5.11): type of number bits 7-5, numbering plan bits 4-1
TON_UNKNOWN = 0
TON_INTERNATIONAL = 1
PLAN_UNKNOWN = 0
PLAN_E164 = 1
PLAN_AESA = 2                # ATM Endsystem Address (NSAP format, 20 octets)
PLAN_PRIVATE = 9
AESA_LEN = 20                # an AESA / NSAPA: UNI 3.1 §5.1.3, RFC 2225's ATMARP too
# Subaddress types (UNI 3.1 §5.4.5.14): 000 NSAP, 001 ATM endsystem address
SUB_NSAP = 0
SUB_AESA = 1
SUB_USER = 2

# BLLI (UNI 3.1 §5.4.5.9)
L2_ISO8802 = 0x0C            # LLC (ISO 8802/2): what CLIP signals
L2_USER = 0x10
L3_X25 = 0x06
L3_ISO8208 = 0x07
L3_X223 = 0x08
L3_TR9577 = 0x0B
L3_USER = 0x10
IPI_SNAP = 0x80              # ISO/IEC TR 9577 initial protocol identifier for SNAP
IPI_IP = 0xCC

# ATM traffic descriptor subfield identifiers (UNI 3.1 §5.4.5.6) -> attribute name.
# Rates are 24-bit cells/s; burst sizes are cells.
_TD_FIELDS: dict[int, str] = {
    0x82: "fwd_pcr_0", 0x83: "bwd_pcr_0",
    0x84: "fwd_pcr_01", 0x85: "bwd_pcr_01",
    0x88: "fwd_scr_0", 0x89: "bwd_scr_0",
    0x90: "fwd_scr_01", 0x91: "bwd_scr_01",
    0xA0: "fwd_mbs_0", 0xA1: "bwd_mbs_0",
    0xB0: "fwd_mbs_01", 0xB1: "bwd_mbs_01",
}
TD_BEST_EFFORT = 0xBE        # no value octets
TD_MGMT_OPTIONS = 0xBF       # one octet: bit 1 forward tagging, bit 2 backward tagging

# AAL5 subfield identifiers (UNI 3.1 §5.4.5.5)
AAL5_FWD_SDU = 0x8C
AAL5_BWD_SDU = 0x81
AAL5_MODE = 0x83             # UNI 3.1 only (dropped in UNI 4.0 / Q.2931)
AAL5_SSCS = 0x84


# --- base --------------------------------------------------------------------------
@dataclass(slots=True)
class IE:
    """Base of every IE repr: the compatibility octet, kept verbatim."""
    compat: int = field(default=COMPAT_DEFAULT, kw_only=True)
    ie_id: ClassVar[int] = -1

    @property
    def id(self) -> int:
        return self.ie_id

    @property
    def coding(self) -> int:
        return (self.compat >> 5) & 3

    @property
    def flag(self) -> bool:
        """Follow the explicit action indicator (Q.2931 §4.5.1)."""
        return bool(self.compat & COMPAT_FLAG)

    @property
    def action(self) -> int:
        return self.compat & 7

    def contents(self) -> bytes:
        raise NotImplementedError

    def emit(self) -> bytes:
        body = self.contents()
        return bytes((self.id & 0xFF, self.compat & 0xFF)) + len(body).to_bytes(2, "big") + body


@dataclass(slots=True)
class _OpaqueIE(IE):
    """An IE kept as its identifier and raw contents (emitted back unchanged)."""
    raw_id: int = 0
    data: bytes = b""

    @property
    def id(self) -> int:
        return self.raw_id

    def contents(self) -> bytes:
        return self.data


@dataclass(slots=True)
class UnknownIE(_OpaqueIE):
    """An IE this codec does not implement: kept opaque for call control (cause 99)."""


@dataclass(slots=True)
class MalformedIE(_OpaqueIE):
    """A known IE whose contents break its layout (cause 100 if it matters)."""
    reason: str = ""


# --- cause, call state, restart indicator ---------------------------------------------
@dataclass(slots=True)
class Cause(IE):
    """Cause (Q.2931 §4.5.15, Q.2610): ext|spare|location, ext|cause value, diagnostics."""
    ie_id: ClassVar[int] = IE_CAUSE
    cause: int = _causes.CAUSE_NORMAL_UNSPECIFIED
    location: int = LOC_USER
    diagnostics: bytes = b""

    @classmethod
    def parse(cls, compat: int, c: bytes) -> Cause | str:
        if len(c) < 2:
            return "ie_too_short"
        # No octet 5a in Q.2931 (unlike Q.931): ext must be 1 on both fixed octets.
        if not (c[0] & 0x80 and c[1] & 0x80):
            return "bad_ext"
        return cls(c[1] & 0x7F, c[0] & 0x0F, bytes(c[2:]), compat=compat)

    def contents(self) -> bytes:
        return bytes((0x80 | (self.location & 0x0F), 0x80 | (self.cause & 0x7F))) + self.diagnostics


@dataclass(slots=True)
class CallState(IE):
    """Call state (Q.2931 §4.5.7): one octet, bits 6-1."""
    ie_id: ClassVar[int] = IE_CALL_STATE
    state: int = CS_NULL

    @classmethod
    def parse(cls, compat: int, c: bytes) -> CallState | str:
        if len(c) != 1:
            return "ie_too_short" if not c else "ie_too_long"
        return cls(c[0] & 0x3F, compat=compat)

    def contents(self) -> bytes:
        return bytes((self.state & 0x3F,))


@dataclass(slots=True)
class RestartIndicator(IE):
    """Restart indicator (Q.2931 §4.5.21): ext|spare|class (3 bits)."""
    ie_id: ClassVar[int] = IE_RESTART
    restart_class: int = RESTART_ALL

    @classmethod
    def parse(cls, compat: int, c: bytes) -> RestartIndicator | str:
        if len(c) != 1:
            return "ie_too_short" if not c else "ie_too_long"
        if not c[0] & 0x80:
            return "bad_ext"
        if c[0] & 7 not in (RESTART_VC, RESTART_ALL):
            return "bad_value"      # other classes are reserved
        return cls(c[0] & 7, compat=compat)

    def contents(self) -> bytes:
        return bytes((0x80 | (self.restart_class & 7),))


# --- AAL parameters ---------------------------------------------------------------
@dataclass(slots=True)
class AalParameters(IE):
    """AAL parameters (UNI 3.1 §5.4.5.5): AAL type, then identifier-tagged subfields.

    AAL5 subfields are decoded (forward/backward max CPCS-SDU size, mode, SSCS type);
    for other AAL types the octets after the type are kept in `other`.
    """
    ie_id: ClassVar[int] = IE_AAL
    aal_type: int = AAL_5
    fwd_max_sdu: int | None = None
    bwd_max_sdu: int | None = None
    mode: int | None = None
    sscs_type: int | None = None
    other: bytes = b""

    @classmethod
    def parse(cls, compat: int, c: bytes) -> AalParameters | str:
        if not c:
            return "ie_too_short"
        if c[0] != AAL_5:
            return cls(c[0], other=bytes(c[1:]), compat=compat)
        ie = cls(AAL_5, compat=compat)
        i, n = 1, len(c)
        while i < n:
            ident = c[i]
            if ident in (AAL5_FWD_SDU, AAL5_BWD_SDU):
                if i + 3 > n:
                    return "ie_too_short"
                v = c[i + 1] << 8 | c[i + 2]
                if ident == AAL5_FWD_SDU:
                    ie.fwd_max_sdu = v
                else:
                    ie.bwd_max_sdu = v
                i += 3
            elif ident in (AAL5_MODE, AAL5_SSCS):
                if i + 2 > n:
                    return "ie_too_short"
                if ident == AAL5_MODE:
                    ie.mode = c[i + 1]
                else:
                    ie.sscs_type = c[i + 1]
                i += 2
            else:
                return "bad_subfield"
        return ie

    def contents(self) -> bytes:
        out = bytearray((self.aal_type & 0xFF,))
        if self.aal_type != AAL_5:
            return bytes(out) + self.other
        if self.fwd_max_sdu is not None:
            out += bytes((AAL5_FWD_SDU,)) + (self.fwd_max_sdu & 0xFFFF).to_bytes(2, "big")
        if self.bwd_max_sdu is not None:
            out += bytes((AAL5_BWD_SDU,)) + (self.bwd_max_sdu & 0xFFFF).to_bytes(2, "big")
        if self.mode is not None:
            out += bytes((AAL5_MODE, self.mode & 0xFF))
        if self.sscs_type is not None:
            out += bytes((AAL5_SSCS, self.sscs_type & 0xFF))
        return bytes(out)


# --- ATM traffic descriptor -----------------------------------------------------------
@dataclass(slots=True)
class TrafficDescriptor(IE):
    """ATM traffic descriptor (UNI 3.1 §5.4.5.6): identifier-tagged 3-octet values.

    Parse accepts any order; emit writes the identifiers in ascending order (the order the
    standard lists them).
    """
    ie_id: ClassVar[int] = IE_TRAFFIC
    fwd_pcr_0: int | None = None
    bwd_pcr_0: int | None = None
    fwd_pcr_01: int | None = None
    bwd_pcr_01: int | None = None
    fwd_scr_0: int | None = None
    bwd_scr_0: int | None = None
    fwd_scr_01: int | None = None
    bwd_scr_01: int | None = None
    fwd_mbs_0: int | None = None
    bwd_mbs_0: int | None = None
    fwd_mbs_01: int | None = None
    bwd_mbs_01: int | None = None
    best_effort: bool = False
    mgmt_options: int | None = None

    @classmethod
    def parse(cls, compat: int, c: bytes) -> TrafficDescriptor | str:
        ie = cls(compat=compat)
        i, n = 0, len(c)
        while i < n:
            ident = c[i]
            name = _TD_FIELDS.get(ident)
            if name is not None:
                if i + 4 > n:
                    return "ie_too_short"
                setattr(ie, name, int.from_bytes(c[i + 1:i + 4], "big"))
                i += 4
            elif ident == TD_BEST_EFFORT:
                ie.best_effort = True
                i += 1
            elif ident == TD_MGMT_OPTIONS:
                if i + 2 > n:
                    return "ie_too_short"
                ie.mgmt_options = c[i + 1]
                i += 2
            else:
                return "bad_subfield"
        return ie

    def contents(self) -> bytes:
        out = bytearray()
        for ident, name in _TD_FIELDS.items():
            v = getattr(self, name)
            if v is not None:
                out += bytes((ident,)) + (v & 0xFFFFFF).to_bytes(3, "big")
        if self.best_effort:
            out.append(TD_BEST_EFFORT)
        if self.mgmt_options is not None:
            out += bytes((TD_MGMT_OPTIONS, self.mgmt_options & 0xFF))
        return bytes(out)


# --- connection identifier, QoS, bearer capability, BHLI -------------------------------
@dataclass(slots=True)
class ConnectionId(IE):
    """Connection identifier (UNI 3.1 §5.4.5.16): ext|spare|VP-assoc sig (2)|pref/excl (3),
    VPCI (2), VCI (2).  UNI 3.1 allows only VP-assoc = 01 (explicit VPCI) and pref/excl
    000 (exclusive VPCI, exclusive VCI) or 001 (exclusive VPCI, any VCI); other codes
    are kept for call control to judge."""
    ie_id: ClassVar[int] = IE_CONN_ID
    vpi: int = 0
    vci: int = 0
    vp_assoc: int = 1
    pref_excl: int = 0

    @classmethod
    def parse(cls, compat: int, c: bytes) -> ConnectionId | str:
        if len(c) != 5:
            return "ie_too_short" if len(c) < 5 else "ie_too_long"
        if not c[0] & 0x80:
            return "bad_ext"
        return cls(c[1] << 8 | c[2], c[3] << 8 | c[4], (c[0] >> 3) & 3, c[0] & 7, compat=compat)

    def contents(self) -> bytes:
        return (bytes((0x80 | (self.vp_assoc & 3) << 3 | (self.pref_excl & 7),))
                + (self.vpi & 0xFFFF).to_bytes(2, "big") + (self.vci & 0xFFFF).to_bytes(2, "big"))


@dataclass(slots=True)
class QosParameter(IE):
    """QoS parameter (UNI 3.1 §5.4.5.18): forward and backward QoS class, one octet each."""
    ie_id: ClassVar[int] = IE_QOS
    fwd_class: int = 0
    bwd_class: int = 0

    @classmethod
    def parse(cls, compat: int, c: bytes) -> QosParameter | str:
        if len(c) != 2:
            return "ie_too_short" if len(c) < 2 else "ie_too_long"
        return cls(c[0], c[1], compat=compat)

    def contents(self) -> bytes:
        return bytes((self.fwd_class & 0xFF, self.bwd_class & 0xFF))


@dataclass(slots=True)
class BearerCapability(IE):
    """Broadband bearer capability (UNI 3.1 §5.4.5.7).

    Octet 5: ext|spare|bearer class (5); octet 5a (present iff octet 5 ext = 0, used with
    BCOB-X): ext|spare|traffic type (3)|timing requirements (2); octet 6:
    ext|susceptibility to clipping (2)|spare|user plane connection configuration (2).
    """
    ie_id: ClassVar[int] = IE_BBCAP
    bearer_class: int = BCOB_X
    traffic_type: int | None = None
    timing: int | None = None
    clipping: int = 0
    up_config: int = 0          # 0 point-to-point, 1 point-to-multipoint

    @classmethod
    def parse(cls, compat: int, c: bytes) -> BearerCapability | str:
        if len(c) < 2:
            return "ie_too_short"
        ttype = timing = None
        i = 1
        if not c[0] & 0x80:
            if len(c) < 3:
                return "ie_too_short"
            if not c[1] & 0x80:
                return "bad_ext"
            ttype, timing = (c[1] >> 2) & 7, c[1] & 3
            i = 2
        if len(c) > i + 1:
            return "ie_too_long"
        if not c[i] & 0x80:
            return "bad_ext"
        return cls(c[0] & 0x1F, ttype, timing, (c[i] >> 5) & 3, c[i] & 3, compat=compat)

    def contents(self) -> bytes:
        o6 = 0x80 | (self.clipping & 3) << 5 | (self.up_config & 3)
        if self.traffic_type is None and self.timing is None:
            return bytes((0x80 | (self.bearer_class & 0x1F), o6))
        o5a = 0x80 | ((self.traffic_type or 0) & 7) << 2 | ((self.timing or 0) & 3)
        return bytes((self.bearer_class & 0x1F, o5a, o6))


@dataclass(slots=True)
class Bhli(IE):
    """Broadband high layer information (UNI 3.1 §5.4.5.8): ext|type (7), then ≤ 8 octets."""
    ie_id: ClassVar[int] = IE_BHLI
    hli_type: int = 0
    info: bytes = b""

    @classmethod
    def parse(cls, compat: int, c: bytes) -> Bhli | str:
        if not c:
            return "ie_too_short"
        if len(c) > 9:
            return "ie_too_long"
        if not c[0] & 0x80:
            return "bad_ext"
        return cls(c[0] & 0x7F, bytes(c[1:]), compat=compat)

    def contents(self) -> bytes:
        return bytes((0x80 | (self.hli_type & 0x7F),)) + self.info


# --- BLLI -------------------------------------------------------------------------
@dataclass(slots=True)
class Blli(IE):
    """Broadband low layer information (UNI 3.1 §5.4.5.9).

    Up to three octet groups, each opened by an octet whose bits 7-6 name the layer
    (01 layer 1, 10 layer 2, 11 layer 3) with the protocol in bits 5-1, continued by
    further octets while bit 8 (ext) is 0.  The continuation octets are kept as 7-bit
    values (`l2_extra`, `l3_extra`: mode, window, packet size, user-specified info...).
    For layer 3 = ISO/IEC TR 9577 the two continuation octets carry the 8-bit IPI
    (bits 7-1 of 8a, bit 7 of 8b); IPI = SNAP is followed by octet 9 (SNAP identifier
    0x80) and octets 10-14: OUI (3) and PID (2).
    """
    ie_id: ClassVar[int] = IE_BLLI
    l1: int | None = None
    l2: int | None = None
    l2_extra: tuple[int, ...] = ()
    l3: int | None = None
    l3_extra: tuple[int, ...] = ()
    snap: tuple[int, int] | None = None       # (OUI, PID)

    @property
    def ipi(self) -> int | None:
        if self.l3 != L3_TR9577 or len(self.l3_extra) != 2:
            return None
        return (self.l3_extra[0] & 0x7F) << 1 | (self.l3_extra[1] >> 6) & 1

    @staticmethod
    def tr9577(ipi: int) -> tuple[int, int]:
        """`l3_extra` for an IPI (UNI 3.1 §5.4.5.9, octets 8a/8b)."""
        return ((ipi >> 1) & 0x7F, (ipi & 1) << 6)

    @classmethod
    def parse(cls, compat: int, c: bytes) -> Blli | str:
        if not c:
            return "ie_too_short"
        ie = cls(compat=compat)
        i, n, last = 0, len(c), 0
        while i < n:
            layer = (c[i] >> 5) & 3
            if layer == 0 or layer <= last:
                # bits 7-6 = 00 is not a layer id; layers appear once, in order
                return "bad_layer" if layer == 0 else "bad_order"
            last = layer
            proto = c[i] & 0x1F
            extra: list[int] = []
            ext = c[i] & 0x80
            i += 1
            while not ext:
                if i >= n:
                    return "ie_too_short"
                extra.append(c[i] & 0x7F)
                ext = c[i] & 0x80
                i += 1
            if layer == 1:
                if extra:
                    return "bad_ext"
                ie.l1 = proto
            elif layer == 2:
                ie.l2, ie.l2_extra = proto, tuple(extra)
            else:
                ie.l3, ie.l3_extra = proto, tuple(extra)
                if ie.ipi == IPI_SNAP:
                    if i + 6 > n:
                        return "ie_too_short"
                    if c[i] != 0x80:
                        return "bad_snap"
                    ie.snap = (int.from_bytes(c[i + 1:i + 4], "big"), c[i + 4] << 8 | c[i + 5])
                    i += 6
                if i != n:
                    return "ie_too_long"      # nothing may follow layer 3
        return ie

    def contents(self) -> bytes:
        out = bytearray()
        for layer, proto, extra in ((1, self.l1, ()), (2, self.l2, self.l2_extra),
                                    (3, self.l3, self.l3_extra)):
            if proto is None:
                continue
            out.append((0 if extra else 0x80) | layer << 5 | (proto & 0x1F))
            for k, v in enumerate(extra):
                out.append((0x80 if k == len(extra) - 1 else 0) | (v & 0x7F))
        if self.snap is not None and self.ipi == IPI_SNAP:
            oui, pid = self.snap
            out += b"\x80" + (oui & 0xFFFFFF).to_bytes(3, "big") + (pid & 0xFFFF).to_bytes(2, "big")
        return bytes(out)


# --- party numbers and subaddresses -----------------------------------------------------
def _check_address(plan: int, addr: bytes, *, allow_empty: bool) -> str | None:
    if not addr:
        return None if allow_empty else "ie_too_short"
    if plan == PLAN_AESA and len(addr) != AESA_LEN:
        return "bad_aesa_length"
    if plan == PLAN_E164 and not all(0x30 <= b <= 0x39 for b in addr):
        return "bad_digit"      # E.164 digits are IA5 '0'-'9' (UNI 3.1 §5.4.5.11)
    return None


@dataclass(slots=True)
class CalledNumber(IE):
    """Called party number (UNI 3.1 §5.4.5.11): ext|type of number (3)|plan (4), then
    the AESA (20 octets, plan 2) or the E.164 digits in IA5 (plan 1)."""
    ie_id: ClassVar[int] = IE_CALLED
    address: bytes = b""
    plan: int = PLAN_AESA
    ton: int = TON_UNKNOWN

    @classmethod
    def parse(cls, compat: int, c: bytes) -> CalledNumber | str:
        if len(c) < 2:
            return "ie_too_short"
        if not c[0] & 0x80:
            return "bad_ext"
        plan, addr = c[0] & 0x0F, bytes(c[1:])
        err = _check_address(plan, addr, allow_empty=False)
        return err or cls(addr, plan, (c[0] >> 4) & 7, compat=compat)

    def contents(self) -> bytes:
        return bytes((0x80 | (self.ton & 7) << 4 | (self.plan & 0x0F),)) + self.address


@dataclass(slots=True)
class CallingNumber(IE):
    """Calling party number (UNI 3.1 §5.4.5.13): as the called number, plus an optional
    octet 5a (octet 5 ext = 0): ext|presentation indicator (2)|spare|screening (2)."""
    ie_id: ClassVar[int] = IE_CALLING
    address: bytes = b""
    plan: int = PLAN_AESA
    ton: int = TON_UNKNOWN
    presentation: int | None = None
    screening: int | None = None

    @classmethod
    def parse(cls, compat: int, c: bytes) -> CallingNumber | str:
        if not c:
            return "ie_too_short"
        pres = scr = None
        i = 1
        if not c[0] & 0x80:
            if len(c) < 2:
                return "ie_too_short"
            if not c[1] & 0x80:
                return "bad_ext"
            pres, scr = (c[1] >> 5) & 3, c[1] & 3
            i = 2
        plan, addr = c[0] & 0x0F, bytes(c[i:])
        # An empty number is legal here: presentation restricted / number not available.
        err = _check_address(plan, addr, allow_empty=True)
        return err or cls(addr, plan, (c[0] >> 4) & 7, pres, scr, compat=compat)

    def contents(self) -> bytes:
        o5 = (self.ton & 7) << 4 | (self.plan & 0x0F)
        if self.presentation is None and self.screening is None:
            return bytes((0x80 | o5,)) + self.address
        o5a = 0x80 | ((self.presentation or 0) & 3) << 5 | ((self.screening or 0) & 3)
        return bytes((o5, o5a)) + self.address


@dataclass(slots=True)
class _Subaddress(IE):
    """Subaddress (UNI 3.1 §5.4.5.12/14): ext|type (3)|odd/even|spare, then ≤ 20 octets."""
    address: bytes = b""
    sub_type: int = SUB_AESA
    odd: int = 0

    @classmethod
    def parse(cls, compat: int, c: bytes) -> _Subaddress | str:
        if len(c) < 2:
            return "ie_too_short"
        if len(c) > 1 + AESA_LEN:
            return "ie_too_long"
        if not c[0] & 0x80:
            return "bad_ext"
        return cls(bytes(c[1:]), (c[0] >> 4) & 7, (c[0] >> 3) & 1, compat=compat)

    def contents(self) -> bytes:
        return bytes((0x80 | (self.sub_type & 7) << 4 | (self.odd & 1) << 3,)) + self.address


@dataclass(slots=True)
class CalledSubaddress(_Subaddress):
    ie_id: ClassVar[int] = IE_CALLED_SUB


@dataclass(slots=True)
class CallingSubaddress(_Subaddress):
    ie_id: ClassVar[int] = IE_CALLING_SUB


# --- transit network selection --------------------------------------------------------
TNS_NATIONAL = 0x2           # type of network identification: national network identification
TNS_CARRIER_CODE = 0x1       # network identification plan: carrier identification code


@dataclass(slots=True)
class TransitNetwork(IE):
    """Transit network selection (UNI 3.1 §5.4.5.22): ext|type (3 bits)|plan (4 bits), then
    the network identification in IA5 characters (UNI 3.1: the carrier identification
    code, 3 or 4 digits)."""
    ie_id: ClassVar[int] = IE_TRANSIT
    net_type: int = TNS_NATIONAL
    plan: int = TNS_CARRIER_CODE
    net_id: bytes = b""

    @classmethod
    def parse(cls, compat: int, c: bytes) -> TransitNetwork | str:
        if len(c) < 2:
            return "ie_too_short"
        if not c[0] & 0x80:
            return "bad_ext"
        if any(b & 0x80 for b in c[1:]):
            return "bad_ia5"
        return cls((c[0] >> 4) & 0x7, c[0] & 0x0F, bytes(c[1:]), compat=compat)

    def contents(self) -> bytes:
        return bytes((0x80 | (self.net_type & 0x7) << 4 | (self.plan & 0x0F),)) + self.net_id


# --- registry -----------------------------------------------------------------------
KnownIE = (Cause | CallState | RestartIndicator | AalParameters | TrafficDescriptor | ConnectionId | QosParameter
           | BearerCapability | Bhli | Blli | CalledNumber | CallingNumber | CalledSubaddress | CallingSubaddress
           | TransitNetwork)
AnyIE = KnownIE | UnknownIE | MalformedIE

IE_CLASSES: dict[int, Any] = {cls.ie_id: cls for cls in (
    Cause, CallState, RestartIndicator, AalParameters, TrafficDescriptor, ConnectionId,
    QosParameter, BearerCapability, Bhli, Blli, CalledNumber, CallingNumber,
    CalledSubaddress, CallingSubaddress, TransitNetwork)}

_PARSERS: dict[int, Callable[[int, bytes], object]] = {i: c.parse for i, c in IE_CLASSES.items()}


def parse_ie(ie_id: int, compat: int, contents: Buf) -> AnyIE:
    """The repr of one IE's contents; never raises (see module doc)."""
    data = bytes(contents)
    parser = _PARSERS.get(ie_id)
    if parser is None:
        return UnknownIE(ie_id, data, compat=compat)
    r = parser(compat, data)
    if isinstance(r, str):
        return MalformedIE(ie_id, data, r, compat=compat)
    return r  # type: ignore[return-value]


def ie_error_cause(ie: AnyIE) -> int | None:
    """The cause call control reports for a bad IE (Q.2931 §5.6.8): 99 unknown, 100 bad
    contents, None for a good IE.  Whether to clear, report or ignore is decided by the
    compatibility instruction and whether the IE is mandatory; see Q2931Message."""
    if isinstance(ie, UnknownIE):
        return _causes.CAUSE_IE_NONEXISTENT
    if isinstance(ie, MalformedIE):
        return _causes.CAUSE_INVALID_IE_CONTENTS
    return None
