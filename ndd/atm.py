"""The NDD family's own ATM interface (NDD_ATM): what a protocol and the adapter driver
agree on without importing each other.

  ATM_HDRLEN, atm_link_header  the 4-octet link header every NDD_ATM frame starts with
  VcParams                     the argument of NDD_ATM_OPEN_VC
  DEFAULT_MTU                  the adapter's default max AAL5 SDU and CLIP's IP MTU
  AAL5_MAX_SDU                 the largest SDU any VC can carry
  LLC_HEADER                   how an LLC-encapsulated SDU (RFC 2684) starts
  VPI_MAX, VCI_MAX, RESERVED_VCI_MAX, SIG_VPI_VCI, ILMI_VPI_VCI   the VC numbering at the UNI
  AtmDemuxer                   the receive demuxer ns_alloc installs on an NDD_ATM device

The adapter itself (cells, HEC, AAL5 SAR, OAM, pacing) is drivers/atm/.
"""
from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field

from . import constants as C
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
    `relay`: switch the VC at cell level -- its cells go to this callable raw (module doc)."""
    vpi: int
    vci: int
    max_sdu: int | None = None
    pcr: float = 0.0
    reserved: bool = False
    relay: Callable[[bytes], None] | None = field(default=None, compare=False)



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
