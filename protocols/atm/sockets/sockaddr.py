"""The ATM socket family's address and option values (AIX names).

Address: the Python form of AIX `struct sockaddr_ndd_atm`
----------------------------------------------------------
AIX: (len, family AF_NDD, vc_type CONN_PVC 1 / CONN_SVC 2, nddname <= 16 octets, then
either (VPI, VCI) or (20-octet ATM address, subaddress)).  Here, as CPython does for its
families, an address is a tuple -- the length and family are implicit:

    (nddname, CONN_PVC, vpi, vci)                       a permanent VC
    (nddname, CONN_SVC, atm_address, subaddress)        a switched VC (Q.2931 call)
    (nddname,)                                          bind() only: names the adapter

`SockaddrNddAtm` is the same value with field names; sockets accept it or the tuple,
and return tuples (getsockname/getpeername/recvfrom), as CPython returns tuples.
Shape errors (not a tuple, wrong length, wrong types, a 19-octet ATM address) raise
TypeError/ValueError before any call is made, like CPython's address parsing; values a
kernel would judge (vc_type not 1/2, VPI/VCI out of range or reserved) are OSError
EINVAL from the call itself.

Options: level SOL_NDD_ATM (= NDD_PROT_ATM, 5)
----------------------------------------------
AIX gives the option names/values but we could not confirm its level constant, so the
BSD rule applies: a protocol's options live at level = its protocol number (as
IPPROTO_TCP for TCP_NODELAY).  Values are these dataclasses or their packed bytes
(network byte order, `FORMAT` on each class); getsockopt(level, name) returns the
dataclass, getsockopt(level, name, buflen) the packed bytes cut to buflen.

    SO_ATM_CALLING     1  AtmAddr(address, subaddress, plan): two call_pnum_t, 52 octets (or one, 26)
    SO_ATM_CALLED      2  AtmAddr (read-only: the called party of the call)
    SO_ATM_AAL_PARM    3  AalParm(fwd_max_sdu, bwd_max_sdu, ...): aal_parm_t ">hHHHHBx" 12 octets
    SO_ATM_TRAFFIC_DES 4  TrafficDes (= ndd.atm.AtmTrafficDes): traffic_des_t, Kbit/s  ">15I" 60 octets
    SO_ATM_BEARER      5  Bearer(bearer_class, traffic_type, timing, clipping, up_config):
                          bearer_t ">BxHBB" 6 octets
    SO_ATM_BHLI        6  Bhli(hli_type, info) -- <sys/call_ie.h> bhli_t  ">hBx8s"   12 octets
    SO_ATM_BLLI        7  Blli(l2_proto, l3_proto, snap, modes, window sizes, infos, ipi):
                          blli_t ">h10B3s2sx" 18 octets; up to 3 choices (set only)
    SO_ATM_QOS_PARM    8  QosParm(fwd_class, bwd_class) UNI 3.1 classes   "!BB"      2 octets
    SO_ATM_TRANSIT_SEL 9  TransitSel(net_type, plan, net_id): transit_sel_t ">hBB5sx" 10 octets
    SO_ATM_PARAM      11  ConnectIe: connect_ie_t, 260 octets -- every call option at once
                          (set: all but the called party, which connect names)
    SO_ATM_MAX_PEND   10  int 0..255 (AIX: a u_char, 1 octet): at most this many SDUs
                          outstanding in the adapter on a rate-enforced VC (one with a forward
                          peak rate); a send beyond waits.  0: no limit of its own (tunstack's
                          default; AIX's is not public).  Fixed when the VC opens.
    SO_ATM_CAUSE      12  AtmCause(location, cause, diag): cause_t      ">BxH28s"  32 octets
    SO_ATM_ACCEPT     13  set only, on an incoming call accept() returned: sends CONNECT
                          (with SO_ATM_AAL_PARM / SO_ATM_BLLI as set meanwhile); the value
                          is not looked at (any int or buffer)

The listen queue's length is listen(backlog)'s alone.
Forward/backward are always this socket's view: forward is what it sends.  A called
socket therefore reads the caller's forward values as its backward ones (protocols/atm/
svc_params.py turns them around).
"""
from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ndd import constants as C
from ndd.atm import AAL5_MAX_SDU, RESERVED_VCI_MAX, VCI_MAX, VPI_MAX, AtmAal5, AtmAalParm, AtmTrafficDes
from protocols.atm.uni.ie import AESA_LEN
from protocols.contracts import oserror

CONN_PVC = 1
CONN_SVC = 2
AF_NDD = C.AF_NDD            # 23, <sys/socket.h>
CM_UNKNOWN_PLAN = 0          # a call_pnum_t a program left zeroed: taken as an AESA (tunstack's)
# struct sockaddr_ndd_atm: len, family, vc_type, nddname[16], a pad octet, the 52-octet union
SOCKADDR_NDD_ATM = struct.Struct(">BBB16sx52s")
NDD_MAXNAMELEN = 16          # sockaddr_ndd_atm nddname field (AIX)
AAL_TYPE_5 = 5

# AIX option names (<sys/atmsock.h>; the table above)
SO_ATM_CALLING = 1
SO_ATM_CALLED = 2
SO_ATM_AAL_PARM = 3
SO_ATM_TRAFFIC_DES = 4
SO_ATM_BEARER = 5
SO_ATM_BHLI = 6
SO_ATM_BLLI = 7
SO_ATM_QOS_PARM = 8
SO_ATM_TRANSIT_SEL = 9
SO_ATM_MAX_PEND = 10
SO_ATM_PARAM = 11
SO_ATM_CAUSE = 12
SO_ATM_ACCEPT = 13


@dataclass(frozen=True)
class SockaddrNddAtm:
    """sockaddr_ndd_atm with names.  PVC: vpi/vci; SVC: atm_address (20 octets), subaddress
    (empty or 20 octets).  Use `pvc()`/`svc()`; `astuple()` gives the tuple form."""
    nddname: str
    vc_type: int
    vpi: int = 0
    vci: int = 0
    atm_address: bytes = b""
    subaddress: bytes = b""

    @classmethod
    def pvc(cls, nddname: str, vpi: int, vci: int) -> SockaddrNddAtm:
        return cls(nddname, CONN_PVC, vpi, vci)

    @classmethod
    def svc(cls, nddname: str, atm_address: bytes, subaddress: bytes = b"") -> SockaddrNddAtm:
        return cls(nddname, CONN_SVC, atm_address=atm_address, subaddress=subaddress)

    @property
    def plan(self) -> int:
        """An SVC address's numbering plan: CM_E164 for 1-15 IA5 digits, else CM_NSAP (an AESA)."""
        return CM_NSAP if len(self.atm_address) in (0, AESA_LEN) else CM_E164

    def astuple(self) -> tuple[Any, ...]:
        if self.vc_type == CONN_SVC:
            return (self.nddname, CONN_SVC, self.atm_address, self.subaddress)
        return (self.nddname, self.vc_type, self.vpi, self.vci)

    def pack(self) -> bytes:
        """The C form (<sys/atmsock.h> struct sockaddr_ndd_atm, big-endian, natural alignment,
        72 octets): u_char sndd_atm_len (72), sndd_atm_family (AF_NDD 23), sndd_atm_vc_type;
        char sndd_atm_nddname[16]; a pad octet; then the union atm_id -- an SVC's atm_addr
        {call_pnum_t sndd_atm_addr, call_pnum_t sndd_atm_sub_addr} or a PVC's atm_conn_id_t
        {ushort vpi, vci} (the rest zero)."""
        if self.vc_type == CONN_SVC:
            e164 = self.plan == CM_E164
            union = (pack_call_pnum(self.atm_address, self.plan, CM_INTL_ADDR_TYPE if e164 else CM_UNKNOWN_ADDR_TYPE)
                     + pack_call_pnum(self.subaddress))
        else:
            union = struct.pack(">HH", self.vpi & 0xFFFF, self.vci & 0xFFFF)
        return SOCKADDR_NDD_ATM.pack(SOCKADDR_NDD_ATM.size, AF_NDD, self.vc_type & 0xFF,
                                     self.nddname.encode(), union)

    @classmethod
    def unpack(cls, b: bytes) -> SockaddrNddAtm:
        """The C form back (shape errors: ValueError; another family: EAFNOSUPPORT)."""
        if len(b) != SOCKADDR_NDD_ATM.size:
            raise ValueError(f"a sockaddr_ndd_atm is {SOCKADDR_NDD_ATM.size} octets, not {len(b)}")
        length, family, vc_type, name, union = SOCKADDR_NDD_ATM.unpack(b)
        if family != AF_NDD:
            raise oserror(errno.EAFNOSUPPORT)
        if length != SOCKADDR_NDD_ATM.size:
            raise ValueError(f"sndd_atm_len must be {SOCKADDR_NDD_ATM.size}, not {length}")
        nddname = _nddname(name.split(b"\0", 1)[0])
        if vc_type == CONN_SVC:
            number, plan, *_ = unpack_call_pnum(union[:CALL_PNUM.size])
            subaddr = unpack_call_pnum(union[CALL_PNUM.size:])[0]
            aesa = plan in (CM_NSAP, CM_UNKNOWN_PLAN) and len(number) == AESA_LEN
            e164 = plan == CM_E164 and number and number_ok(number, CM_E164)
            if not (aesa or e164) or len(subaddr) not in (0, AESA_LEN):
                raise ValueError("an SVC's sockaddr_ndd_atm must carry a 20-octet AESA or an E.164 number "
                                 "(and an AESA subaddress)")
            return cls.svc(nddname, number, subaddr)
        vpi, vci = struct.unpack_from(">HH", union)
        return cls(nddname, vc_type, vpi, vci)


def _int(v: object) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"'{type(v).__name__}' object cannot be interpreted as an integer")
    return v


def _octets(v: object, what: str, lengths: tuple[int, ...]) -> bytes:
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be a bytes-like object, not {type(v).__name__}")
    b = bytes(v)
    if len(b) not in lengths:
        raise ValueError(f"{what} must be {' or '.join(map(str, lengths))} octets, not {len(b)}")
    return b


def _nddname(v: object) -> str:
    if isinstance(v, (bytes, bytearray)):
        v = bytes(v).decode("ascii", "strict")
    if not isinstance(v, str):
        raise TypeError(f"nddname must be str, bytes or bytearray, not {type(v).__name__}")
    if not v or len(v.encode()) > NDD_MAXNAMELEN or "\0" in v:
        raise ValueError(f"nddname must be 1..{NDD_MAXNAMELEN} octets without NUL")
    return v


def _number(v: object) -> bytes:
    """An SVC address's number: a 20-octet AESA or an E.164 number (1-15 IA5 digits)."""
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise TypeError(f"ATM address must be a bytes-like object, not {type(v).__name__}")
    b = bytes(v)
    if len(b) != AESA_LEN and not (b and number_ok(b, CM_E164)):
        raise ValueError(f"ATM address must be 20 octets (an AESA) or 1..15 E.164 digits, not {b!r}")
    return b


def parse_sockaddr_atm(address: object, what: str = "", *, name_only: bool = False) -> SockaddrNddAtm:
    """Check an AF_NDD address's shape (TypeError/ValueError); `name_only` allows (nddname,).
    The vc_type value and VPI/VCI ranges are left to the call (EINVAL there)."""
    prefix = f"{what}(): " if what else ""
    if isinstance(address, (bytes, bytearray, memoryview)):
        address = SockaddrNddAtm.unpack(bytes(address))     # the C form, as a C program passes it
    if isinstance(address, SockaddrNddAtm):
        address = address.astuple()     # then checked like the tuple form
    if not isinstance(address, tuple):
        raise TypeError(f"{prefix}AF_NDD address must be tuple, not {type(address).__name__}")
    if name_only and len(address) == 1:
        return SockaddrNddAtm(_nddname(address[0]), 0)
    if len(address) != 4:
        raise TypeError("AF_NDD address must be a tuple (nddname, CONN_PVC, vpi, vci) or "
                        "(nddname, CONN_SVC, atm_address, subaddress)")
    name, vc_type, x, y = address
    name = _nddname(name)
    vc_type = _int(vc_type)
    if vc_type == CONN_SVC:
        return SockaddrNddAtm(name, CONN_SVC, atm_address=_number(x),
                              subaddress=_octets(y, "ATM subaddress", (0, AESA_LEN)))
    return SockaddrNddAtm(name, vc_type, _int(x), _int(y))


def check_pvc(addr: SockaddrNddAtm) -> int:
    """0, or EINVAL for a vc_type other than PVC/SVC, a VPI/VCI beyond the UNI header or a
    reserved VCI (0-31: signalling and ILMI belong to the stack, not to a user PVC)."""
    if addr.vc_type not in (CONN_PVC, CONN_SVC):
        return errno.EINVAL
    if addr.vc_type == CONN_PVC and not (0 <= addr.vpi <= VPI_MAX and RESERVED_VCI_MAX < addr.vci <= VCI_MAX):
        return errno.EINVAL
    return 0


# --- option values ------------------------------------------------------------------------
def coerce(cls: Any, value: object) -> Any:
    """An option value from setsockopt: an instance of `cls`, or exactly its packed bytes
    (`cls.FORMAT`, `cls.unpack`).  An int or a buffer of another size is EINVAL (Linux: an
    optlen that does not fit)."""
    if isinstance(value, cls):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
        if len(b) != cls.FORMAT.size:
            raise oserror(errno.EINVAL)
        return cls.unpack(b)
    if isinstance(value, int):
        raise oserror(errno.EINVAL)
    raise TypeError(f"a bytes-like object is required, not '{type(value).__name__}'")


class _Packed:
    FORMAT: ClassVar[struct.Struct]

    def pack(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def coerce(cls, value: object) -> Any:
        return coerce(cls, value)

    @classmethod
    def unpack(cls, b: bytes) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class AalParm(_Packed):
    """SO_ATM_AAL_PARM: AAL5 max CPCS-SDU sizes, forward (we send) and backward (we receive),
    1..65535 each.  Set before connect; the VC is opened with these.  The friendly form of
    <sys/call_ie.h>'s aal_parm_t (ndd.atm.AtmAalParm, `record()`), and packed as it: 12
    octets.  Only message mode and the null SSCS exist here (others: EINVAL)."""
    fwd_max_sdu: int
    bwd_max_sdu: int
    aal_type: int = AAL_TYPE_5
    mode: int = C.CM_MESSAGE_MODE
    sscs_type: int = C.CM_NULL_SSCS
    FORMAT: ClassVar[struct.Struct] = AtmAalParm.FORMAT

    def record(self) -> AtmAalParm:
        return AtmAalParm(AtmAal5(self.fwd_max_sdu, self.bwd_max_sdu, self.mode, self.sscs_type), self.aal_type)

    @classmethod
    def of(cls, r: AtmAalParm) -> AalParm:
        a = r.aal5
        return cls(a.fwd_max_sdu_size, a.bak_max_sdu_size, r.aal_type, a.mode, a.sscs_type)

    def pack(self) -> bytes:
        return self.record().pack()

    @classmethod
    def unpack(cls, b: bytes) -> AalParm:
        return cls.of(AtmAalParm.unpack(b))

    def check(self) -> int:
        if self.aal_type != AAL_TYPE_5 or self.mode != C.CM_MESSAGE_MODE or self.sscs_type != C.CM_NULL_SSCS:
            return errno.EINVAL          # only AAL5 exists on the adapter, message mode, no SSCS
        if not (1 <= self.fwd_max_sdu <= AAL5_MAX_SDU and 1 <= self.bwd_max_sdu <= AAL5_MAX_SDU):
            return errno.EINVAL
        return 0


# SO_ATM_TRAFFIC_DES: <sys/call_ie.h>'s traffic_des_t, rates in Kbit/s -- the one record the
# ATM NDD interface uses too (ndd/atm.py), 60 octets as bytes.  The forward peak rate
# (fwd_peakrate_hp) is what the adapter paces the VC's cells to; unspecified: the line rate.
TrafficDes = AtmTrafficDes


NOT_SPECIFIED_B = 0xFF       # <sys/call_ie.h>: a 1-octet subfield left out
CM_SNAP_OUI_SIZE, CM_SNAP_PID_SIZE = 3, 2
CM_MAX_BLLI = 3              # <sys/call_ie.h>: B-LLIs a connect request may offer
# blli_t codes (<sys/call_ie.h>; the B-LLI IE's own, UNI 3.1 §5.4.5.9)
CM_LAN_LLC_ISO_8802, CM_L2_PROT_USER = 0x0C, 0x10
CM_L2_MODE_NORMAL, CM_L2_MODE_EXTENDED = 0x01, 0x02
CM_CCITT_X25_PACKET, CM_ISO_8208, CM_ISO_8878, CM_ISO_9577, CM_L3_PROT_USER = 0x06, 0x07, 0x08, 0x0B, 0x10
CM_L3_MODE_NORMAL, CM_L3_MODE_EXTENDED = 0x01, 0x02
CM_PKT_16, CM_PKT_4096 = 0x04, 0x0C
CM_IPI_SNAP, CM_IPI_IP = 0x80, 0xCC


@dataclass(frozen=True)
class Blli(_Packed):
    """SO_ATM_BLLI: one B-LLI choice a call carries (Q.2931 IE 0x5F): user information
    layer 2 protocol (e.g. 12 = LLC ISO/IEC 8802-2) and layer 3 protocol (e.g. 11 = ISO/IEC
    TR 9577), 0 = absent; `snap` = OUI(3)+PID(2) or empty (signalled with TR 9577 only).
    An SVC's SETUP carries it; a listener's BLLI is part of the address callers must match.

    The rest of <sys/call_ie.h>'s blli_t, 0 = absent (NOT_SPECIFIED_B 0xFF reads as 0):
    `l2_mode` (CM_L2_MODE_NORMAL 1 / _EXTENDED 2) and `l2_win_size` (1-127) for the HDLC
    family of layer 2 protocols; `l2_info` for a user-specified one (NOT_SPECIFIED_B: none);
    `l3_mode`, `l3_def_pkt_size` (CM_PKT_16 4 .. CM_PKT_4096 12) and `l3_pkt_win_size` for
    X.25 packet layers; `l3_info` for a user-specified layer 3; `ipi`, TR 9577's initial
    protocol identifier (0 with a `snap` means CM_IPI_SNAP).

    Packed as blli_t, 18 octets: short length (18; 0: no B-LLI), uchar L2_prot, L2_mode,
    L2_win_size, L2_info, L3_prot, L3_mode, L3_def_pkt_size, L3_pkt_win_size, L3_info, ipi,
    snap_oui[3], snap_pid[2], a pad octet.  setsockopt takes up to CM_MAX_BLLI of them (the
    caller's choices, in order of preference: a sequence of Blli or 18, 36 or 54 octets)."""
    l2_proto: int = 0
    l3_proto: int = 0
    snap: bytes = b""
    l2_mode: int = 0
    l2_win_size: int = 0
    l2_info: int = NOT_SPECIFIED_B
    l3_mode: int = 0
    l3_def_pkt_size: int = 0
    l3_pkt_win_size: int = 0
    l3_info: int = NOT_SPECIFIED_B
    ipi: int = 0
    FORMAT: ClassVar[struct.Struct] = struct.Struct(">h10B3s2sx")

    def __post_init__(self) -> None:
        for name in ("l2_mode", "l2_win_size", "l3_mode", "l3_def_pkt_size", "l3_pkt_win_size", "ipi"):
            if getattr(self, name) == NOT_SPECIFIED_B:
                object.__setattr__(self, name, 0)
        if self.snap and self.ipi == 0:
            object.__setattr__(self, "ipi", CM_IPI_SNAP)

    @property
    def present(self) -> bool:
        return bool(self.l2_proto or self.l3_proto)

    def pack(self) -> bytes:
        snap = self.snap if len(self.snap) == 5 else bytes(5)
        return self.FORMAT.pack(self.FORMAT.size if self.present else 0, self.l2_proto, self.l2_mode,
                                self.l2_win_size, self.l2_info, self.l3_proto, self.l3_mode,
                                self.l3_def_pkt_size, self.l3_pkt_win_size, self.l3_info, self.ipi,
                                snap[:3], snap[3:])

    @classmethod
    def unpack(cls, b: bytes) -> Blli:
        length, *v, oui, pid = cls.FORMAT.unpack(b)
        if length == 0:
            return cls()
        l2, l2_mode, l2_win, l2_info, l3, l3_mode, l3_pkt, l3_win, l3_info, ipi = v
        snap = oui + pid if ipi == CM_IPI_SNAP else b""
        return cls(l2, l3, snap, l2_mode, l2_win, l2_info, l3_mode, l3_pkt, l3_win, l3_info, ipi)

    @classmethod
    def coerce_choices(cls, value: object) -> tuple[Blli, ...]:
        """SO_ATM_BLLI's value: one Blli, a sequence of 1..CM_MAX_BLLI, or as many blli_t."""
        if isinstance(value, (list, tuple)):
            if not 1 <= len(value) <= CM_MAX_BLLI or not all(isinstance(v, cls) for v in value):
                raise oserror(errno.EINVAL)
            return tuple(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            raw, size = bytes(value), cls.FORMAT.size
            if len(raw) not in (size, 2 * size, 3 * size):
                raise oserror(errno.EINVAL)
            return tuple(cls.unpack(raw[i:i + size]) for i in range(0, len(raw), size))
        return (coerce(cls, value),)

    def check(self) -> int:
        # the protocol codes are 5-bit fields of the IE (octets 6 and 7); the others 7-bit
        # (modes 2-bit, the packet size 4-bit); the IPI an octet
        ok = (0 <= self.l2_proto <= 31 and 0 <= self.l3_proto <= 31 and len(self.snap) in (0, 5)
              and self.l2_mode in (0, 1, 2) and self.l3_mode in (0, 1, 2) and 0 <= self.l3_def_pkt_size <= 15
              and 0 <= self.l2_win_size <= 127 and 0 <= self.l3_pkt_win_size <= 127
              and all(0 <= i <= 127 or i == NOT_SPECIFIED_B for i in (self.l2_info, self.l3_info))
              and 0 <= self.ipi <= 255 and (not self.snap or self.ipi == CM_IPI_SNAP))
        return 0 if ok else errno.EINVAL


# <sys/call_ie.h> call_pnum_t / call_psub_t codes (the Q.2931 IEs' own)
CM_UNKNOWN_ADDR_TYPE, CM_INTL_ADDR_TYPE = 0x00, 0x01          # call_pnum.type
CM_E164, CM_NSAP = 0x01, 0x02                                 # call_pnum.plan_id
CM_PRES_ALLOWED, CM_PRES_RESTRICTED, CM_PRES_NOT_AVAIL = 0x00, 0x01, 0x02
CM_NO_SCRN, CM_SCRN_PASS, CM_SCRN_FAIL, CM_SCRN_NET = 0x00, 0x01, 0x02, 0x03
CM_PSUB_NSAP, CM_PSUB_ATM = 0x00, 0x01                        # call_psub.type
ATM_ADDR_LEN = 20
E164_MAX_DIGITS = 15          # E.164: at most 15 digits, IA5 in the IE (UNI 3.1 §5.4.5.11)

CALL_PNUM = struct.Struct(">hBBBB20s")     # call_pnum_t: 26 octets
CALL_PSUB = struct.Struct(">hB20sx")       # call_psub_t: 23 octets of fields, 24 with padding


def pack_call_pnum(number: bytes, plan: int = CM_NSAP, ntype: int = CM_UNKNOWN_ADDR_TYPE,
                   pres_ind: int = CM_PRES_ALLOWED, screening: int = CM_NO_SCRN) -> bytes:
    """call_pnum_t: short length (of number), uchar type, plan_id, pres_ind, screening,
    atm_addr_t number (20 octets)."""
    return CALL_PNUM.pack(len(number), ntype, plan, pres_ind, screening, number)


def unpack_call_pnum(b: bytes) -> tuple[bytes, int, int, int, int]:
    """(number, plan_id, type, pres_ind, screening); EINVAL for a length over 20."""
    length, ntype, plan, pres, scrn, number = CALL_PNUM.unpack(b)
    if not 0 <= length <= ATM_ADDR_LEN:
        raise oserror(errno.EINVAL)
    return number[:length], plan, ntype, pres, scrn


def pack_call_psub(subaddr: bytes, stype: int = CM_PSUB_ATM) -> bytes:
    """call_psub_t: short length, uchar type, atm_addr_t subaddr, a pad octet."""
    return CALL_PSUB.pack(len(subaddr), stype, subaddr)


def unpack_call_psub(b: bytes) -> tuple[bytes, int]:
    length, stype, subaddr = CALL_PSUB.unpack(b)
    if not 0 <= length <= ATM_ADDR_LEN:
        raise oserror(errno.EINVAL)
    return subaddr[:length], stype


def number_ok(address: bytes, plan: int) -> bool:
    """An AESA (CM_NSAP): 20 octets; an E.164 number (CM_E164): 1-15 IA5 digits; empty: none."""
    if not address:
        return True
    if plan == CM_NSAP:
        return len(address) == AESA_LEN
    return plan == CM_E164 and len(address) <= E164_MAX_DIGITS and all(0x30 <= c <= 0x39 for c in address)


@dataclass(frozen=True)
class AtmAddr(_Packed):
    """SO_ATM_CALLING / SO_ATM_CALLED: a party's number -- an ATM End System Address (20
    octets, `plan` CM_NSAP) or an E.164 number (1-15 IA5 digits, `plan` CM_E164); empty: not
    known -- and subaddress (empty or a 20-octet AESA).

    Packed as <sys/call_ie.h>'s call_pnum_t for the number (26 octets: length, type --
    CM_INTL_ADDR_TYPE for E.164 --, plan_id, pres_ind, screening, number[20]), followed by a
    second call_pnum_t for the subaddress, as <sys/atmsock.h>'s sockaddr_ndd_atm pairs them:
    52 octets.  setsockopt takes the 52 octets or a lone call_pnum_t (26: the number only);
    getsockopt(..., 26) gives the number's call_pnum_t."""
    address: bytes = b""
    subaddress: bytes = b""
    plan: int = CM_NSAP
    FORMAT: ClassVar[struct.Struct] = struct.Struct(">26s26s")

    def pack(self) -> bytes:
        ntype = CM_INTL_ADDR_TYPE if self.plan == CM_E164 else CM_UNKNOWN_ADDR_TYPE
        return pack_call_pnum(self.address, self.plan, ntype) + pack_call_pnum(self.subaddress)

    @classmethod
    def unpack(cls, b: bytes) -> AtmAddr:
        number, plan, *_ = unpack_call_pnum(b[:CALL_PNUM.size])
        sub = unpack_call_pnum(b[CALL_PNUM.size:])[0] if len(b) > CALL_PNUM.size else b""
        return cls(number, sub, plan if number else CM_NSAP)

    @classmethod
    def coerce(cls, value: object) -> Any:
        if isinstance(value, (bytes, bytearray, memoryview)) and len(value) == CALL_PNUM.size:
            return cls.unpack(bytes(value))
        return coerce(cls, value)

    def check(self) -> int:
        ok = number_ok(self.address, self.plan) and len(self.subaddress) in (0, AESA_LEN)
        return 0 if ok else errno.EINVAL


CM_BHLI_INFO_SIZE = 8         # <sys/call_ie.h>: bhli_t's info octets
CM_ISO, CM_USER_SPECIFIED, CM_HI_LAYER_PROFILE, CM_VENDOR_SPECIFIC = 0x00, 0x01, 0x02, 0x03   # bhli_t.type


@dataclass(frozen=True)
class Bhli(_Packed):
    """SO_ATM_BHLI: the broadband high layer information a call carries (Q.2931 IE 0x5D, UNI
    3.1 §5.4.5.8): `hli_type` (CM_ISO 0, CM_USER_SPECIFIED 1, CM_HI_LAYER_PROFILE 2,
    CM_VENDOR_SPECIFIC 3 -- the IE's own codes) and up to 8 octets of `info`; empty info:
    absent.  A caller's SETUP carries it; a listener with one takes only calls that carry the
    same.  Packed as <sys/call_ie.h>'s bhli_t on AIX (big-endian, natural alignment):
    short length (of info), uchar type, uchar resvd, uchar info[8]."""
    hli_type: int = 0
    info: bytes = b""
    FORMAT: ClassVar[struct.Struct] = struct.Struct(">hBx8s")

    def pack(self) -> bytes:
        return self.FORMAT.pack(len(self.info), self.hli_type, self.info)

    @classmethod
    def unpack(cls, b: bytes) -> Bhli:
        length, hli_type, info = cls.FORMAT.unpack(b)
        if not 0 <= length <= CM_BHLI_INFO_SIZE:
            raise oserror(errno.EINVAL)
        return cls(hli_type if length else 0, info[:length])

    def check(self) -> int:
        ok = 0 <= self.hli_type <= CM_VENDOR_SPECIFIC and len(self.info) <= CM_BHLI_INFO_SIZE
        return 0 if ok else errno.EINVAL


BCOB_A, BCOB_C, BCOB_X = 0x01, 0x03, 0x10      # broadband bearer classes (UNI 3.1 §5.4.5.7)
# <sys/call_ie.h> bearer_t's codes: the classes under AIX's names, transfer_cap's two values
# (traffic type << 2 | timing: CBR and VBR, each with end-to-end timing required), timing,
# clipping and the user plane configuration
CM_CLASS_A, CM_CLASS_C, CM_CLASS_X = BCOB_A, BCOB_C, BCOB_X
CM_CONSTANT_BIT_RATE, CM_VARIABLE_BIT_RATE = 0x05, 0x09
CM_END_TO_END, CM_NO_END_TO_END = 0x01, 0x02
CM_NOT_SUSCEPTIBLE, CM_SUSCEPTIBLE = 0x00, 0x01
CM_CON_CFG_PTP, CM_CON_CFG_PTM = 0x00, 0x01


@dataclass(frozen=True)
class Bearer(_Packed):
    """SO_ATM_BEARER: the broadband bearer capability a call asks for (Q.2931 IE 0x5E):
    class (BCOB-A 1, BCOB-C 3, BCOB-X 16), traffic type (0-7) and timing (0-3) -- signalled
    with BCOB-X only --, susceptibility to clipping (0/1) and user plane configuration
    (0 point-to-point; point-to-multipoint calls are not implemented: EINVAL).

    Packed as <sys/call_ie.h>'s bearer_t, 6 octets: uchar bearer_class, a pad octet, ushort
    transfer_cap -- the IE's octet 5a as it stands, traffic type in bits 5-3 and timing in
    bits 2-1, so CM_CONSTANT_BIT_RATE 0x05 is CBR (1) with end-to-end timing (1) --, uchar
    clipping, uchar connection_cfg."""
    bearer_class: int = BCOB_X
    traffic_type: int = 0
    timing: int = 0
    clipping: int = 0
    up_config: int = 0
    FORMAT: ClassVar[struct.Struct] = struct.Struct(">BxHBB")

    @property
    def transfer_cap(self) -> int:
        return (self.traffic_type & 0x7) << 2 | (self.timing & 0x3)

    def pack(self) -> bytes:
        return self.FORMAT.pack(self.bearer_class, self.transfer_cap, self.clipping, self.up_config)

    @classmethod
    def unpack(cls, b: bytes) -> Bearer:
        bearer_class, cap, clipping, cfg = cls.FORMAT.unpack(b)
        if cap > 0x1F:
            raise oserror(errno.EINVAL)      # more than octet 5a's traffic type and timing
        return cls(bearer_class, cap >> 2, cap & 0x3, clipping, cfg)

    def check(self) -> int:
        ok = (self.bearer_class in (BCOB_A, BCOB_C, BCOB_X) and 0 <= self.traffic_type <= 7
              and 0 <= self.timing <= 3 and self.clipping in (0, 1) and self.up_config == 0)
        return 0 if ok else errno.EINVAL


CM_QOS_0, CM_QOS_1, CM_QOS_2, CM_QOS_3, CM_QOS_4 = 0, 1, 2, 3, 4     # <sys/call_ie.h> qos_parm_t


@dataclass(frozen=True)
class QosParm(_Packed):
    """SO_ATM_QOS_PARM: forward and backward QoS class (UNI 3.1 §5.4.5.18): 0 unspecified,
    1-4 the classes A-D.  Packed as <sys/call_ie.h>'s qos_parm_t: uchar qos_fwd, qos_bak."""
    fwd_class: int = 0
    bwd_class: int = 0
    FORMAT: ClassVar[struct.Struct] = struct.Struct("!BB")

    def pack(self) -> bytes:
        return self.FORMAT.pack(self.fwd_class, self.bwd_class)

    @classmethod
    def unpack(cls, b: bytes) -> QosParm:
        return cls(*cls.FORMAT.unpack(b))

    def check(self) -> int:
        return 0 if 0 <= self.fwd_class <= 4 and 0 <= self.bwd_class <= 4 else errno.EINVAL


CM_NET_ID_SIZE = 5            # <sys/call_ie.h>: transit_sel_t's net_id octets
CM_TS_NETID_TYPE = 0x02       # transit_sel.type: national network identification
CM_TS_NETID_PLAN = 0x01       # transit_sel.plan: carrier identification code


@dataclass(frozen=True)
class TransitSel(_Packed):
    """SO_ATM_TRANSIT_SEL: the transit network a call is to take (Q.2931 IE 0x78, UNI 3.1
    §5.4.5.22): type (CM_TS_NETID_TYPE), plan (CM_TS_NETID_PLAN) and the network's
    identification, up to CM_NET_ID_SIZE IA5 characters (UNI 3.1: a 3- or 4-digit carrier
    identification code); empty: none.  Set before connect; the SETUP carries it.

    Packed as <sys/call_ie.h>'s transit_sel_t, 10 octets: short length (of net_id), uchar
    type, uchar plan, uchar net_id[5], a pad octet."""
    net_type: int = CM_TS_NETID_TYPE
    plan: int = CM_TS_NETID_PLAN
    net_id: bytes = b""
    FORMAT: ClassVar[struct.Struct] = struct.Struct(">hBB5sx")

    def pack(self) -> bytes:
        return self.FORMAT.pack(len(self.net_id), self.net_type, self.plan, self.net_id)

    @classmethod
    def unpack(cls, b: bytes) -> TransitSel:
        length, net_type, plan, net_id = cls.FORMAT.unpack(b)
        if not 0 <= length <= CM_NET_ID_SIZE:
            raise oserror(errno.EINVAL)
        return cls(net_type, plan, net_id[:length]) if length else cls()

    def check(self) -> int:
        ok = (0 <= self.net_type <= 7 and 0 <= self.plan <= 15 and len(self.net_id) <= CM_NET_ID_SIZE
              and all(c < 0x80 for c in self.net_id))
        return 0 if ok else errno.EINVAL


CM_DIAG_SIZE = 28             # <sys/call_ie.h>: cause_t's diagnostics octets


@dataclass(frozen=True)
class AtmCause(_Packed):
    """SO_ATM_CAUSE: a Q.2931 cause (Q.2610 values), its location (0 user, 1 private network
    serving the local user, ...) and diagnostics (up to CM_DIAG_SIZE octets, as the Cause IE
    carries them: Q.2610 §4 -- e.g. the IE identifier a cause 99/100 is about).  getsockopt:
    why the socket's last call ended or was refused (cause 0: none yet).  setsockopt: the
    cause and diagnostics this socket's own release (close, disconnect) sends, cause 1..127
    (default 16, normal clearing); location is ignored.

    Packed as <sys/call_ie.h>'s cause_t, 32 octets: uchar cause, a pad octet, short length
    (of diag), uchar diag[28].  cause_t has no location: the packed form loses it (0 when
    read back)."""
    location: int = 0
    cause: int = 0
    diag: bytes = b""
    FORMAT: ClassVar[struct.Struct] = struct.Struct(">BxH28s")

    def pack(self) -> bytes:
        return self.FORMAT.pack(self.cause, len(self.diag), self.diag)

    @classmethod
    def unpack(cls, b: bytes) -> AtmCause:
        cause, length, diag = cls.FORMAT.unpack(b)
        if length > CM_DIAG_SIZE:
            raise oserror(errno.EINVAL)
        return cls(0, cause, diag[:length])

    def check(self) -> int:
        ok = 0 <= self.location <= 15 and 1 <= self.cause <= 127 and len(self.diag) <= CM_DIAG_SIZE
        return 0 if ok else errno.EINVAL


@dataclass(frozen=True)
class ConnectIe:
    """SO_ATM_PARAM: all of a call's parameters at once, <sys/call_ie.h>'s connect_ie_t (what
    <sys/atmsock.h>'s atm_pcb keeps as conn_ie): AAL, traffic, bearer, B-HLI, up to three
    B-LLIs, called and calling party (number and subaddress), QoS, transit network.  Packed:
    aal_parm_t 12, traffic_des_t 60, bearer_t 6, bhli_t 12, blli_t[3] 54, call_pnum_t 26 +
    call_psub_t 24 (called), the same (calling), qos_parm_t 2, bb_sending_comp_t 4 (length 0:
    tunstack never signals broadband sending complete), transit_sel_t 10 -- 260 octets."""
    aal: AalParm
    traffic: AtmTrafficDes = field(default_factory=AtmTrafficDes)
    bearer: Bearer = Bearer()
    bhli: Bhli = Bhli()
    blli: tuple[Blli, ...] = ()
    called: AtmAddr = AtmAddr()
    calling: AtmAddr = AtmAddr()
    qos: QosParm = QosParm()
    transit: TransitSel = TransitSel()
    SIZE: ClassVar[int] = 260

    def pack(self) -> bytes:
        bllis = (list(self.blli) + [Blli()] * CM_MAX_BLLI)[:CM_MAX_BLLI]
        out = (self.aal.pack() + self.traffic.pack() + self.bearer.pack() + self.bhli.pack()
               + b"".join(b.pack() for b in bllis))
        for party in (self.called, self.calling):
            ntype = CM_INTL_ADDR_TYPE if party.plan == CM_E164 else CM_UNKNOWN_ADDR_TYPE
            out += pack_call_pnum(party.address, party.plan, ntype) + pack_call_psub(party.subaddress)
        out += self.qos.pack() + bytes(4) + self.transit.pack()
        assert len(out) == self.SIZE
        return out

    @classmethod
    def unpack(cls, b: bytes) -> ConnectIe:
        if len(b) != cls.SIZE:
            raise oserror(errno.EINVAL)
        aal = AalParm.unpack(b[0:12])
        traffic = AtmTrafficDes.unpack(b[12:72])
        bearer = Bearer.unpack(b[72:78])
        bhli = Bhli.unpack(b[78:90])
        blli = tuple(x for x in (Blli.unpack(b[i:i + 18]) for i in range(90, 144, 18)) if x.present)
        parties = []
        for off in (144, 194):
            number, plan, *_ = unpack_call_pnum(b[off:off + 26])
            subaddr, _stype = unpack_call_psub(b[off + 26:off + 50])
            parties.append(AtmAddr(number, subaddr, plan if number else CM_NSAP))
        qos = QosParm.unpack(b[244:246])
        transit = TransitSel.unpack(b[250:260])
        return cls(aal, traffic, bearer, bhli, blli, parties[0], parties[1], qos, transit)
