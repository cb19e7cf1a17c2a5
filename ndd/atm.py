"""The NDD family's own ATM interface (NDD_ATM): what a protocol and the adapter driver
agree on without importing each other.

  ATM_HDRLEN, atm_link_header  the 4-octet link header every NDD_ATM frame starts with
  VcParams                     the argument of NDD_ATM_OPEN_VC
  DEFAULT_MTU                  the adapter's default max AAL5 SDU and CLIP's IP MTU
  AAL5_MAX_SDU                 the largest SDU any VC can carry
  LLC_HEADER                   how an LLC-encapsulated SDU (RFC 2684) starts
  VPI_MAX, VCI_MAX, RESERVED_VCI_MAX, SIG_VPI_VCI, ILMI_VPI_VCI   the VC numbering at the UNI
  AtmDemuxer                   the receive demuxer ns_alloc installs on an NDD_ATM device
  AtmVcOpenReq, AtmVcAckReq, AtmVcLocalReq, AtmVcTxqLen   the arguments of ATM_VC_OPEN,
                               ATM_VC_ACK, ATM_VC_LOCAL, ATM_VS_Q_LEN (<sys/cdli_atmuser.h>),
                               with AtmAalParm / AtmTrafficDes / AtmConnId (<sys/call_ie.h>)
  AtmGenStats                  atm_genstats: the counters an ATM NDD keeps beside ndd_genstats

The adapter itself (cells, HEC, AAL5 SAR, OAM, pacing) is drivers/atm/.
"""
from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import astuple, dataclass, field
from typing import ClassVar

from . import constants as C
from .counters import Counters
from .demux import NS_INCLUDE_MAC, Demuxer, NsFilter, NsUser
from .ndd import Ndd, ndd_error
from .pktbuf import PacketBuffer

# RFC 2225 §5/§7: the default IP MTU over ATM is 9180, and the adapter's default max AAL5
# SDU is the same figure (CLIP opens its VCs with 9188 = 9180 + the 8-octet LLC/SNAP header).
DEFAULT_MTU = 9180
AAL5_MAX_SDU = 65535         # the CPCS-PDU's 16-bit Length field (I.363.5 §9.2.1)

# VC numbers at the UNI (I.361 §2.2): VPI 8 bits (an NNI would give 12), VCI 16 bits.
# VCIs 0-31 are reserved (I.361; ATM Forum UNI 3.1): never a user's VC.  Of them the stack
# itself uses 0/5, point-to-point signalling (Q.2931 over SSCOP), and 0/16, ILMI.
VPI_MAX = 0xFF
VCI_MAX = 0xFFFF
RESERVED_VCI_MAX = 31
SIG_VPI_VCI = (0, 5)
ILMI_VPI_VCI = (0, 16)

# RFC 2684 §5.1: an LLC-encapsulated SDU starts with LLC AA-AA-03 (a SNAP header follows).
# CLIP builds its headers on it; a capture uses it to mark a VC's SDUs as LLC (SUNATM type 2).
LLC_HEADER = b"\xaa\xaa\x03"

# The ATM link header every NDD_ATM frame starts with (drivers/atm/adapter.py explains why):
# flags (1) | VPI (1) | VCI (2, big-endian) -- the LINKTYPE_SUNATM pseudo-header layout.
ATM_HDRLEN = 4


def atm_link_header(vpi: int, vci: int, flags: int = 0) -> bytes:
    return bytes((flags, vpi, vci >> 8, vci & 0xFF))



@dataclass(frozen=True)
class VcParams:
    """Argument of NDD_ATM_OPEN_VC.  pcr: peak cell rate in cells/s (0: line rate).
    Reserved VCIs (<= RESERVED_VCI_MAX) are refused unless `reserved` is set and the VC is
    SIG_VPI_VCI or ILMI_VPI_VCI.
    `relay`: switch the VC at cell level -- its cells go to this callable raw (module doc).
    `max_txq`: at most this many of the VC's SDUs queued in the adapter (0: any; a send
    beyond it is refused with ENOBUFS, and NDD_TX_READY follows when the VC has room) --
    the ATM socket's SO_ATM_MAX_PEND on a rate-enforced VC, as ATM_VS_Q_LEN for a handle."""
    vpi: int
    vci: int
    max_sdu: int | None = None
    pcr: float = 0.0
    reserved: bool = False
    max_txq: int = 0
    relay: Callable[[bytes], None] | None = field(default=None, compare=False)



# --- the ATM NDD interface of <sys/cdli_atmuser.h> ------------------------------------------
# The structures' fields carry the headers' names; they are Python records handed to ndd_ctl
# (an ndd_ctl argument is a pointer on AIX, not bytes on a wire).

@dataclass(frozen=True)
class AtmConnId:
    """atm_conn_id_t (<sys/call_ie.h>): the VC's numbers."""
    vpi: int
    vci: int


@dataclass(frozen=True)
class AtmAal5:
    """aal_5_t (<sys/call_ie.h>): forward (we send) and backward (we receive) max SDU sizes."""
    fwd_max_sdu_size: int
    bak_max_sdu_size: int
    mode: int = C.CM_MESSAGE_MODE
    sscs_type: int = C.CM_NULL_SSCS


@dataclass(frozen=True)
class AtmAalParm:
    """aal_parm_t (<sys/call_ie.h>): the AAL type and its parameters (AAL5 is the only one).

    Bytes: as AIX passes it (big-endian, natural alignment), 12 octets -- short length (of
    aal_info: sizeof(aal_5_t), 8), ushort aal_type, then aal_5_t: ushort fwd_max_sdu_size,
    ushort bak_max_sdu_size, ushort mode, uchar sscs_type, one octet of padding."""
    aal5: AtmAal5
    aal_type: int = C.CM_AAL_5
    FORMAT: ClassVar[struct.Struct] = struct.Struct(">hHHHHBx")
    AAL5_LEN: ClassVar[int] = 8            # sizeof(aal_5_t): 7 octets of fields, padded to 8

    def pack(self) -> bytes:
        a = self.aal5
        return self.FORMAT.pack(self.AAL5_LEN, self.aal_type, a.fwd_max_sdu_size & 0xFFFF,
                                a.bak_max_sdu_size & 0xFFFF, a.mode & 0xFFFF, a.sscs_type & 0xFF)

    @classmethod
    def unpack(cls, b: bytes) -> AtmAalParm:
        """The length field is not looked at (tunstack's: a C program sets it to 7 or 8)."""
        _length, aal_type, fwd, bak, mode, sscs = cls.FORMAT.unpack(b)
        return cls(AtmAal5(fwd, bak, mode, sscs), aal_type)


def _specified(v: int) -> bool:
    return v not in (0, C.NOT_SPECIFIED_L, -1)


@dataclass(frozen=True)
class AtmTrafficDes:
    """traffic_des_t (<sys/call_ie.h>): rates in Kbit/s, bursts in octets, _hp for CLP=0+1
    and _lp for CLP=0 (our reading of the header's names: the CLP=0+1 peak rate is the one
    every call carries); NOT_SPECIFIED_L (or 0, or -1 as a C program's int) leaves a value
    out.  best_effort and the tagging flags are 0 or 1.  The adapter shapes a VC to its
    forward peak rate (fwd_peakrate_hp) unless best_effort is set.

    Bytes: as AIX passes it, 15 big-endian ints, 60 octets (`pack`/`unpack`); an ATM
    socket's SO_ATM_TRAFFIC_DES takes either form (protocols/atm/sockets)."""
    fwd_peakrate_hp: int = C.NOT_SPECIFIED_L
    bak_peakrate_hp: int = C.NOT_SPECIFIED_L
    fwd_peakrate_lp: int = C.NOT_SPECIFIED_L
    bak_peakrate_lp: int = C.NOT_SPECIFIED_L
    fwd_sus_rate_hp: int = C.NOT_SPECIFIED_L
    bak_sus_rate_hp: int = C.NOT_SPECIFIED_L
    fwd_sus_rate_lp: int = C.NOT_SPECIFIED_L
    bak_sus_rate_lp: int = C.NOT_SPECIFIED_L
    fwd_bur_size_hp: int = C.NOT_SPECIFIED_L
    bak_bur_size_hp: int = C.NOT_SPECIFIED_L
    fwd_bur_size_lp: int = C.NOT_SPECIFIED_L
    bak_bur_size_lp: int = C.NOT_SPECIFIED_L
    best_effort: int = 0
    tagging_bak: int = 0
    tagging_fwd: int = 0
    FORMAT: ClassVar[struct.Struct] = struct.Struct(">15I")

    def pcr(self) -> float:
        """The forward peak rate as cells/s for the adapter's pacer (0: unshaped)."""
        rate = self.fwd_peakrate_hp
        if self.best_effort or not _specified(rate):
            return 0.0
        return rate * 1000 / CELL_BITS

    def pack(self) -> bytes:
        return self.FORMAT.pack(*(v & 0xFFFFFFFF for v in astuple(self)))

    @classmethod
    def unpack(cls, b: bytes) -> AtmTrafficDes:
        return cls(*cls.FORMAT.unpack(b))

    def check(self) -> int:
        """0, or EINVAL for a rate above CM_MAX_DATA_RATE, a burst above CM_MAX_BUR_SIZE or a
        flag other than 0/1 (unspecified values pass)."""
        v = astuple(self)
        rates_ok = all(not _specified(r) or 0 < r <= C.CM_MAX_DATA_RATE for r in v[:8])
        bursts_ok = all(not _specified(r) or 0 < r <= C.CM_MAX_BUR_SIZE for r in v[8:12])
        return 0 if rates_ok and bursts_ok and all(f in (0, 1) for f in v[12:]) else errno.EINVAL

    def reversed(self) -> AtmTrafficDes:
        """The other end's view: forward and backward swap."""
        v = list(astuple(self))
        for i in range(0, 12, 2):
            v[i], v[i + 1] = v[i + 1], v[i]
        v[13], v[14] = v[14], v[13]
        return AtmTrafficDes(*v)


CELL_BITS = 53 * 8                 # a cell on the line, for Kbit/s <-> cells/s
CELL_PAYLOAD = 48                  # an AAL5 cell's payload, for a burst in octets <-> cells


def kbps_to_cells(kbps: int) -> int:
    """A rate in Kbit/s as whole cells/s, rounded up (what a Q.2931 traffic descriptor
    carries); `cells_to_kbps` turns it back into the same Kbit/s."""
    return -(-kbps * 1000 // CELL_BITS)


def cells_to_kbps(cells: int) -> int:
    """Rounded down (at least 1): kbps_to_cells's rounding up is undone exactly."""
    return max(1, cells * CELL_BITS // 1000)


@dataclass(frozen=True)
class AtmVcOpenReq:
    """atm_vc_open_req_t: ATM_VC_OPEN's argument.  `vc_handle` is the caller's name for the
    VC from now on (ATM_VC_CLOSE, ATM_VC_ACK, ATM_VC_LOCAL and the *_DONE blocks use it);
    `flags` VCOPEN_CID (required here: the adapter has no call manager to pick VPI/VCI) and
    VCOPEN_SVC (the VC carries an SVC, so ATM_VC_ACK may change its AAL parameters)."""
    vc_handle: int
    flags: int
    aal_parm: AtmAalParm
    traffic_des: AtmTrafficDes = AtmTrafficDes()
    conn_id: AtmConnId = AtmConnId(0, 0)
    checksum_prot: int = C.NO_CHECKSUM
    checksum_type: int = 0


@dataclass(frozen=True)
class AtmVcAckReq:
    """atm_vc_ack_req_t: ATM_VC_ACK's argument -- an SVC's VC takes `aal_parm` (the
    parameters the call was accepted with)."""
    vc_handle: int
    conn_id: AtmConnId
    aal_parm: AtmAalParm


@dataclass(frozen=True)
class AtmVcLocalReq:
    """atm_vc_local_req_t: ATM_VC_LOCAL's argument -- two open VCs joined inside the adapter:
    what is sent on one is received on the other, without reaching the line."""
    vc_handle1: int
    vc_handle2: int


@dataclass(frozen=True)
class AtmVcTxqLen:
    """atm_vc_txq_len_t: ATM_VS_Q_LEN's argument -- at most `max_txq_len` SDUs queued on the
    VC (more are refused with ENOBUFS); 0 lifts the limit."""
    handle: int
    max_txq_len: int


@dataclass
class AtmGenStats(Counters):
    """atm_genstats (<sys/cdli_atmuser.h>): the counters of an ATM NDD, by the header's names
    (the _msw/_lsw halves one int each).  The header's gauges -- device_type,
    dev_elapsed_time, ndd_flags, atm_macadr, sw_txq_len, hw_txq_len, atm_vc_inuse, uni_ver --
    and the totals a driver computes are filled in when the statistics are read."""
    rcv_cells: int = 0             # cells received by the adapter
    dropped_cells: int = 0         # received cells the adapter dropped (bad HEC, unknown VC, RM)
    crc_errors: int = 0            # AAL5 CRC-32 errors
    oversized_sdus: int = 0        # SDUs larger than the VC's receive size
    total_no_rcv_buf: int = 0      # SDUs dropped for want of a receive buffer
    incomplete_pkts: int = 0       # SDUs dropped by the reassembly timeout
    xmt_cells: int = 0             # cells transmitted by the adapter
    total_no_xmt_buf: int = 0      # transmissions refused for want of queue room
    loss_of_signal: int = 0        # times the line went down
    restart_count: int = 0         # adapter error recoveries
    atm_vc_max: int = 0            # the most VCs ever open at once
    atm_vc_fail: int = 0           # VC opens refused


class AtmDemuxer(Demuxer):
    """NDD_ATM: one user per VC.  The 4-octet link header is an NDD_ATM frame's MAC header:
    NS_INCLUDE_MAC users get it with the SDU; every other pkt_format has it removed and kept
    in `pkt.ll_src` (the VC the SDU arrived on).  The SDU itself is never cut: whether a VC
    carries LLC/SNAP (RFC 2684 §5) or is VC-multiplexed is agreed when it is set up, which
    the demuxer does not see, so an LLC header is the VC user's to read (CLIP's is).
    (tunstack's rule: AIX's ATM demuxer is not public.)"""

    filter_types = frozenset({C.NS_ATM_VC, C.NS_TAP})

    def add_filter(self, ndd: Ndd, flt: NsFilter, user: NsUser) -> None:
        if flt.filtertype == C.NS_ATM_VC and not (0 <= flt.vpi <= VPI_MAX and 0 <= flt.vci <= VCI_MAX):
            raise ndd_error(errno.EINVAL, f"VPI/VCI {flt.vpi}/{flt.vci} out of range")
        super().add_filter(ndd, flt, user)

    def receive(self, ndd: Ndd, pkt: PacketBuffer) -> None:
        if ndd.ndd_name in self.taps:
            self._tap(ndd, pkt)
        if len(pkt) < ATM_HDRLEN:
            ndd.stats.ndd_ibadpackets += 1
            return
        view = pkt.view()
        key = (C.NS_ATM_VC, view[1], view[2] << 8 | view[3])
        user = self.filters.get(ndd.ndd_name, {}).get(key)
        if user is None:
            ndd.ndd_nsdemux.nd_dmxstats.nd_nofilter += 1
            return
        if user.pkt_format != NS_INCLUDE_MAC:
            pkt.ll_src = bytes(view[:ATM_HDRLEN])
            pkt.pull(ATM_HDRLEN)
        self.deliver(ndd, pkt, user)
