"""The emulated ATM adapter: an NDD of type NDD_ATM over a pluggable cell PHY.

How a VC travels with a packet
------------------------------
Every frame that crosses this NDD -- down through `ndd_output`, up through `deliver`,
and past the taps -- starts with a 4-octet ATM link header (ndd_hdrlen 4):

    flags (1, 0 from users; reserved) | VPI (1) | VCI (2, big-endian) | AAL5 SDU ...

the same layout as the LINKTYPE_SUNATM pseudo-header, so the pcap tap, the fault
injector and the demuxer need nothing beyond the bytes (no new PacketBuffer slot).
Users prepend it into the headroom (`pkt.prepend(4)`, no copy of the SDU); the
`atm_output(vpi, vci, sdu)` helper does that for callers holding plain bytes.
The ATM demuxer (ndd.atm.AtmDemuxer) dispatches on it and strips it for every pkt_format
but NS_INCLUDE_MAC (leaving it in `pkt.ll_src`); NS_INCLUDE_MAC users get it whole.

Transmit: the SDU is checked against the VC (open? <= its max SDU?), segmented by
`drivers.atm.aal5.segment` and queued per VC.  One task drains the queues round
robin, in batches of at most ~1 ms of line time, and sleeps so the cells leave at the
line rate (cell rate = line_rate / 424 bits; OC-3c 149.76 Mbit/s -> 353,207 cells/s) and
no VC exceeds its peak cell rate.  line_rate 0 disables pacing.

Receive: PHY blobs -> cells -> HEC (bad: `hec_errors`; `hec_correct=True` repairs
single-bit header errors as I.432.1 allows, off by default) -> VC table (unknown:
`unknown_vc`) -> OAM F5 (PTI 4/5: loopback requests answered) -> AAL5 reassembly
(per-VC timeout driven by a task sleeping until `poll_at`) -> `deliver`.  A blob is
handled as a whole where it can be (drivers.atm.cell.CellBlock): runs of cells with one
header are found, HEC-checked and stripped of their headers by C-level bytes operations,
and AAL5 takes each PDU's payloads in one piece (`Reassembler.feed_cells`), so Python
runs per run and per PDU; bad-HEC, OAM and RM cells, and blobs of VCs interleaved cell by
cell, go cell by cell.  Either way the counters and deliveries are those of the per-cell
rules (tests/unit/test_atm_rx_block.py holds the two side by side).

Cell relay (a switch's cross-connects): a VC opened with `VcParams(relay=fn)` is not
reassembled.  Its user cells and end-to-end OAM F5 cells (PTI 0-3, 5) go to `fn` raw,
N*53 octets per received PHY blob, and never reach `deliver` or the taps; segment OAM
(PTI 4) still ends here: the switch port may be an F5 segment end point (I.610).
`send_cells(vpi, vci, cells)` is the other half: cells from elsewhere, relabelled with
this VC's VPI/VCI (PTI and CLP kept, HEC recomputed) and queued on it like any SDU's.

VC table, statistics and the line rate are managed with device-specific ndd_ctl
commands (ndd.constants NDD_ATM_*, above ATM_DEVICE_SPECIFIC), errors raised as OSError(errno).

AIX's ATM NDD interface (<sys/cdli_atmuser.h>) is there too: ATM_VC_OPEN takes an
atm_vc_open_req_t (ndd.atm.AtmVcOpenReq: the caller's vc_handle, VCOPEN_CID with the
conn_id, aal_parm's AAL5 sizes -- backward is the receive limit, forward the send limit --
and traffic_des's forward peak rate in Kbit/s as the VC's shaping rate), ATM_VC_CLOSE a
vc_handle, ATM_VC_ACK an SVC VC's new aal_parm, ATM_VC_LOCAL two handles to loop inside
the adapter (an SDU sent on one is received on the other, never segmented), ATM_VS_Q_LEN a
VC's queue limit.  Each reports its ATM_VC_*_DONE status block (option: the handle(s))
before ndd_ctl returns; a refused request raises instead and reports nothing.
ATM_TXBUF_REG/GET lend adapter transmit buffers on AIX: there are none here (EOPNOTSUPP).
The NDD has a 6-octet physical address (ATM_PHYSADDR_LEN: the ESI), and NDD_GET_STATS
answers ndd_genstats, then atm_genstats by the header's names, then this adapter's own
counters (`AtmStats`).
"""
from __future__ import annotations

import errno
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from drivers.atm import aal5, cell, oam
from drivers.base import TaskNdd, random_mac
from ndd import constants as C
from ndd.atm import (
    AAL5_MAX_SDU,
    ATM_HDRLEN,
    DEFAULT_MTU,
    ILMI_VPI_VCI,
    RESERVED_VCI_MAX,
    SIG_VPI_VCI,
    VCI_MAX,
    VPI_MAX,
    AtmGenStats,
    AtmVcAckReq,
    AtmVcLocalReq,
    AtmVcOpenReq,
    AtmVcTxqLen,
    VcParams,
    atm_link_header,
)
from ndd.ndd import StatusBlock, ndd_error
from ndd.pktbuf import PacketBuffer

from .phy import Phy, UdpPhy

OC3C_LINE_RATE = 149_760_000     # bit/s of cells (SONET STS-3c payload), 353,207 cells/s
CELL_BITS = cell.CELL_LEN * 8
PACING_CREDIT = 0.002            # seconds of late sends the pacer may catch up on
_PL = cell.PAYLOAD_LEN          # octets of a cell payload (short: the receive path slices by it)
OAM_REPLIES_KEPT = 64            # loopback replies remembered (the newest); older ones are only counted


@dataclass
class AtmStats(AtmGenStats):
    """The NDD's ndd_specstats: atm_genstats (ndd.atm.AtmGenStats), then this adapter's own
    counters.  NDD_GET_STATS answers ndd_genstats and these, as an AIX ATM driver answers
    with atm_ndd_stats (ndd_genstats, then atm_genstats).  crc_errors, oversized_sdus and
    incomplete_pkts hold what closed VCs counted; the open VCs' counts are added on reading."""
    hec_errors: int = 0
    truncated_cells: int = 0     # a PHY blob not a multiple of 53 octets
    unknown_vc: int = 0          # cells for a VC not in the table
    oam_in: int = 0
    oam_out: int = 0
    oam_loopbacks_answered: int = 0
    oam_loopback_replies: int = 0   # F5 loopback replies received (any sender's, any tag)
    oam_replies_forgotten: int = 0  # older replies pushed out of `oam_replies` (it keeps the last few)
    oam_errors: int = 0          # bad CRC-10 or an OAM type we do not handle
    rm_cells: int = 0            # PTI 6/7: no ABR here, dropped
    tx_cells_dropped: int = 0    # the PHY lost them (line down / no far end)
    vc_closed_tx_drops: int = 0  # SDUs queued on a VC when it was closed
    relay_cells_in: int = 0      # cells handed to a VC's relay hook (cross-connects)
    relay_cells_out: int = 0     # cells queued by send_cells
    relay_tx_drops: int = 0      # send_cells refused them (queue full, VC gone, adapter down)


@dataclass
class VcStats:
    cells_in: int = 0
    cells_out: int = 0
    sdus_in: int = 0
    sdus_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    oam_in: int = 0
    oam_out: int = 0
    max_sdu_drops: int = 0       # reassembled fine but over this VC's max SDU

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


# the reassembler's per-VC error counters reported by NDD_ATM_GET_VC_STATS
_REASM_ERRORS = ("crc_errors", "length_errors", "cpi_errors", "aborts", "oversize", "timeouts", "evicted")


@dataclass(eq=False)
class AtmVc:
    vpi: int
    vci: int
    max_sdu: int
    pcr: float
    stats: VcStats = field(default_factory=VcStats)
    txq: deque[bytes] = field(default_factory=deque)   # cell blobs, one per SDU
    tx_off: int = 0                                    # octets of txq[0] already sent
    next_tx: float = 0.0                               # earliest time the PCR allows more
    relay: Callable[[bytes], None] | None = None       # cell relay hook (module doc)
    pdu_limit: int = aal5.MAX_PDU                      # reassembly stops (oversize) past this
    tx_max_sdu: int = -1                               # largest SDU sent (-1: max_sdu)
    handle: int | None = None                          # ATM_VC_OPEN's vc_handle
    svc: bool = False                                  # opened with VCOPEN_SVC
    local: AtmVc | None = None                         # ATM_VC_LOCAL: SDUs sent go to this VC
    max_txq: int = 0                                   # ATM_VS_Q_LEN: SDUs queued at most (0: any)


class AtmNdd(TaskNdd):
    ndd_type = C.NDD_ATM
    ndd_addrlen = C.ATM_PHYSADDR_LEN
    ndd_hdrlen = ATM_HDRLEN
    linktype = 123   # LINKTYPE_SUNATM

    def __init__(self, name: str, phy: Phy | None = None, *, mtu: int = DEFAULT_MTU,
                 line_rate: float = OC3C_LINE_RATE, tx_queue_cells: int = 1 << 17, batch_cells: int = 256,
                 reasm_timeout: float | None = None, hec_correct: bool = False,
                 physaddr: bytes | None = None) -> None:
        if not 1 <= mtu <= AAL5_MAX_SDU:
            raise ValueError(f"mtu (max SDU) must be within 1..{AAL5_MAX_SDU}")
        if physaddr is not None and len(physaddr) != C.ATM_PHYSADDR_LEN:
            raise ValueError(f"an ATM physical address is {C.ATM_PHYSADDR_LEN} octets")
        super().__init__(name, mtu=mtu, physaddr=physaddr or random_mac())
        self.atm_stats = AtmStats()
        self.ndd_specstats = self.atm_stats
        self.phy = phy if phy is not None else UdpPhy()
        self.phy.bind(self._rx_cells, self._phy_status)
        self.line_rate = 0.0
        self.cell_rate = 0.0
        self.set_line_rate(line_rate)
        self.tx_queue_cells = tx_queue_cells
        self.batch_cells = batch_cells
        self.hec_correct = hec_correct   # I.432.1 single-bit correction (off: detection only)
        self.vcs: dict[tuple[int, int], AtmVc] = {}
        self.handles: dict[int, AtmVc] = {}      # ATM_VC_OPEN's vc_handle -> its VC
        self._local: deque[tuple[AtmVc, bytes]] = deque()   # ATM_VC_LOCAL SDUs to hand over
        self._reasm_timeout = reasm_timeout
        self.reasm = self._new_reassembler()
        self._active: deque[AtmVc] = deque()     # VCs with cells waiting, round robin
        self._queued_cells = 0
        self._queued_sdus = 0         # txq entries of all VCs: ndd_xmitque_cur
        self._tx_wake = trio.Event()
        self._tx_idle = trio.Event()
        self._tx_idle.set()
        self._reasm_scope: trio.CancelScope | None = None
        self._oam_tag = 0
        # (vpi, vci, tag) of the last loopback replies seen: a peer may send replies without
        # end, so only the newest OAM_REPLIES_KEPT stay (issue 10: a list grew 11.5 MiB per
        # 120 000 cells); the counters keep the totals
        self.oam_replies: deque[tuple[int, int, int]] = deque(maxlen=OAM_REPLIES_KEPT)

    def _new_reassembler(self) -> aal5.Reassembler:
        r = aal5.Reassembler() if self._reasm_timeout is None else aal5.Reassembler(self._reasm_timeout)
        r.kick = self._reasm_kick
        return r

    def _reasm_kick(self, at: float | None = None) -> None:
        # the reassembler went from idle to timing a PDU: wake the timer task earlier
        scope = self._reasm_scope
        if scope is not None and at is not None and at < scope.deadline:
            scope.deadline = at

    # --- life cycle -----------------------------------------------------------------
    def ndd_open(self) -> None:
        super().ndd_open()
        # the base marks RUNNING; the carrier decides (a PhyPair end alone has none)
        self.report_status(StatusBlock(C.NDD_STATUS, (C.NDD_LINK_UP if self.phy.up else C.NDD_LINK_DOWN,)))

    def _open_device(self) -> None:
        self.reasm = self._new_reassembler()
        self._active.clear()
        self._local.clear()
        self._queued_cells = 0
        self._queued_sdus = 0         # txq entries of all VCs: ndd_xmitque_cur
        for vc in self.vcs.values():
            vc.txq.clear()
            vc.tx_off = 0
        self._tx_idle = trio.Event()
        self._tx_idle.set()
        self.start_task(self._tx_loop)
        self.start_task(self._reasm_timer)
        self.phy.open(self.start_task)

    def _close_device(self) -> None:
        self.phy.close()
        super()._close_device()
        self._tx_idle.set()
        self.tx_drained()          # senders refused meanwhile try again (NDD_TX_READY)

    def _phy_status(self, up: bool) -> None:
        if self.is_open:
            if not up:
                self.atm_stats.loss_of_signal += 1
            self.report_status(StatusBlock(C.NDD_STATUS, (C.NDD_LINK_UP if up else C.NDD_LINK_DOWN,)))

    # --- VC table and device-specific ndd_ctl ------------------------------------------
    def set_line_rate(self, bits_per_s: float) -> None:
        if bits_per_s < 0 or not math.isfinite(bits_per_s):
            raise ndd_error(errno.EINVAL, "line rate must be >= 0 bit/s (0: unpaced)")
        self.line_rate = float(bits_per_s)
        self.cell_rate = self.line_rate / CELL_BITS

    def open_vc(self, p: VcParams) -> AtmVc:
        try:
            vc = self._open_vc(p)
        except OSError:
            self.atm_stats.atm_vc_fail += 1
            raise
        if len(self.vcs) > self.atm_stats.atm_vc_max:
            self.atm_stats.atm_vc_max = len(self.vcs)
        return vc

    def _open_vc(self, p: VcParams) -> AtmVc:
        if not (0 <= p.vpi <= VPI_MAX and 0 <= p.vci <= VCI_MAX):
            raise ndd_error(errno.EINVAL, f"VPI/VCI {p.vpi}/{p.vci} out of range")
        key = (p.vpi, p.vci)
        if p.vci <= RESERVED_VCI_MAX and not (p.reserved and key in (SIG_VPI_VCI, ILMI_VPI_VCI)):
            raise ndd_error(errno.EINVAL, f"VCI {p.vci} is reserved (0/5 and 0/16 only when asked for)")
        max_sdu = self.ndd_mtu if p.max_sdu is None else p.max_sdu
        if not 0 <= max_sdu <= AAL5_MAX_SDU:
            raise ndd_error(errno.EINVAL, f"max SDU {max_sdu} not within 0..{AAL5_MAX_SDU}")
        if p.pcr < 0 or not math.isfinite(p.pcr):
            raise ndd_error(errno.EINVAL, "peak cell rate must be >= 0")
        if p.max_txq < 0:
            raise ndd_error(errno.EINVAL, "max_txq must be >= 0")
        if key in self.vcs:
            raise ndd_error(errno.EADDRINUSE, f"VC {p.vpi}/{p.vci} already open on {self.ndd_name}")
        vc = AtmVc(p.vpi, p.vci, max_sdu, float(p.pcr), relay=p.relay, pdu_limit=aal5.pdu_limit(max_sdu),
                   tx_max_sdu=max_sdu, max_txq=p.max_txq)
        self.vcs[key] = vc
        return vc

    def close_vc(self, vpi: int, vci: int, drain: bool = False) -> None:
        """Close VC vpi/vci: nothing more is received on it and it can be opened again at
        once.  SDUs still queued are dropped (counted), or with `drain` sent first -- a
        signalling entity's last PDU (SSCOP END) must leave before its VC goes."""
        vc = self.vcs.pop((vpi, vci), None)
        if vc is None:
            raise ndd_error(errno.ENOENT, f"no VC {vpi}/{vci} on {self.ndd_name}")
        r, ast = self.reasm.stats(vpi, vci), self.atm_stats
        ast.crc_errors += r.crc_errors           # atm_genstats keep what a closed VC counted
        ast.incomplete_pkts += r.timeouts
        ast.oversized_sdus += r.oversize
        self.reasm.close(vpi, vci)   # a half-built PDU must not complete on a reopened VC
        if vc.handle is not None:
            del self.handles[vc.handle]
        if vc.local is not None:
            vc.local.local = None
            vc.local = None
        if drain and vc.txq:
            return                   # still active: the transmit loop sends the rest, then drops it
        if vc.txq:
            self.atm_stats.vc_closed_tx_drops += len(vc.txq)
            self._queued_cells -= (sum(len(b) for b in vc.txq) - vc.tx_off) // cell.CELL_LEN
            self._queued_sdus -= len(vc.txq)
            vc.txq.clear()
        if vc in self._active:
            self._active.remove(vc)

    def vc_stats(self, vpi: int, vci: int) -> dict[str, int]:
        vc = self.vcs.get((vpi, vci))
        if vc is None:
            raise ndd_error(errno.ENOENT, f"no VC {vpi}/{vci} on {self.ndd_name}")
        d = vc.stats.as_dict()
        r = self.reasm.stats(vpi, vci)
        for name in _REASM_ERRORS:
            d[name] = getattr(r, name)
        d["oversize_errors"] = r.oversize + vc.stats.max_sdu_drops
        d.update(max_sdu=vc.max_sdu, pcr=int(vc.pcr), tx_queued_sdus=len(vc.txq), max_txq=vc.max_txq)
        return d

    def xmitque_len(self) -> int:
        """ndd_xmitque_cur: SDUs (and relayed cell batches) queued on all VCs."""
        return self._queued_sdus

    def all_stats(self) -> dict[str, Any]:
        """NDD_GET_ALL_STATS: the adapter's counters, and each open VC's (as NDD_ATM_GET_VC_STATS)."""
        d: dict[str, Any] = super().all_stats()
        d["vcs"] = {key: self.vc_stats(*key) for key in sorted(self.vcs)}
        return d

    def genstats(self) -> dict[str, Any]:
        """NDD_GET_STATS: ndd_genstats, atm_genstats in the header's order (its gauges and the
        open VCs' AAL5 errors filled in), then this adapter's own counters."""
        d = super().genstats()
        reasm = [self.reasm.stats(vpi, vci) for vpi, vci in self.vcs]
        ast = self.atm_stats
        atm = {
            "device_type": 0,                       # none of the Turboways extensions
            "dev_elapsed_time": d["ndd_elapsed_time"],
            "ndd_flags": self.ndd_flags,
            "atm_macadr": bytes(self.ndd_physaddr),
            "rcv_cells": ast.rcv_cells,
            "dropped_cells": ast.dropped_cells,
            "crc_errors": ast.crc_errors + sum(r.crc_errors for r in reasm),
            "oversized_sdus": ast.oversized_sdus + sum(r.oversize for r in reasm),
            "total_no_rcv_buf": ast.total_no_rcv_buf,
            "incomplete_pkts": ast.incomplete_pkts + sum(r.timeouts for r in reasm),
            "xmt_cells": ast.xmt_cells,
            "sw_txq_len": self._queued_sdus,        # SDUs queued on the VCs
            "hw_txq_len": self._queued_cells,       # their cells, not yet on the line
            "total_no_xmt_buf": ast.total_no_xmt_buf,
            "loss_of_signal": ast.loss_of_signal,
            "restart_count": ast.restart_count,
            "atm_vc_inuse": len(self.vcs),
            "atm_vc_max": ast.atm_vc_max,
            "atm_vc_fail": ast.atm_vc_fail,
            "uni_ver": C.AUTO_DETECT,               # signalling runs above the NDD, not in it
        }
        for name in atm:
            d.pop(name, None)
        genstats = {k: d.pop(k) for k in list(d) if k.startswith("ndd_")}
        return {**genstats, **atm, **d}

    # --- <sys/cdli_atmuser.h> commands ---------------------------------------------
    def _by_handle(self, handle: Any) -> AtmVc:
        vc = self.handles.get(handle) if isinstance(handle, int) else None
        if vc is None:
            raise ndd_error(errno.ENOENT, f"no VC with handle {handle!r} on {self.ndd_name}")
        return vc

    def _aal5_sizes(self, aal_parm: Any) -> tuple[int, int]:
        """(send, receive) max SDU of an aal_parm (AtmAalParm): AAL5 only, 1..65535 each."""
        aal5 = getattr(aal_parm, "aal5", None)
        if getattr(aal_parm, "aal_type", None) != C.CM_AAL_5 or aal5 is None:
            raise ndd_error(errno.EINVAL, "aal_parm must be AAL5 (CM_AAL_5): the adapter has no other AAL")
        fwd, bak = aal5.fwd_max_sdu_size, aal5.bak_max_sdu_size
        if not (C.ATM_MIN_MTU <= fwd <= C.ATM_MAX_MTU and C.ATM_MIN_MTU <= bak <= C.ATM_MAX_MTU):
            raise ndd_error(errno.EINVAL, f"AAL5 max SDU sizes {fwd}/{bak} not within 1..65535")
        return fwd, bak

    def vc_open(self, req: AtmVcOpenReq) -> None:
        """ATM_VC_OPEN (module doc)."""
        if not req.flags & C.VCOPEN_CID:
            self.atm_stats.atm_vc_fail += 1
            raise ndd_error(errno.EINVAL, "ATM_VC_OPEN needs VCOPEN_CID: the adapter has no call manager")
        if req.vc_handle in self.handles or (req.vc_handle == 0 and self.ndd_flags & C.NDD_NO_HANDLE_0):
            self.atm_stats.atm_vc_fail += 1
            raise ndd_error(errno.EEXIST, f"vc_handle {req.vc_handle} in use")
        if req.checksum_prot != C.NO_CHECKSUM:
            self.atm_stats.atm_vc_fail += 1
            raise ndd_error(errno.EOPNOTSUPP, "no adapter checksum offload (checksum_prot NO_CHECKSUM only)")
        try:
            fwd, bak = self._aal5_sizes(req.aal_parm)
        except OSError:
            self.atm_stats.atm_vc_fail += 1
            raise
        vc = self.open_vc(VcParams(req.conn_id.vpi, req.conn_id.vci, max_sdu=bak, pcr=req.traffic_des.pcr()))
        vc.tx_max_sdu, vc.handle, vc.svc = fwd, req.vc_handle, bool(req.flags & C.VCOPEN_SVC)
        self.handles[req.vc_handle] = vc
        self.report_status(StatusBlock(C.ATM_VC_OPEN_DONE, (req.vc_handle, 0)))

    def vc_close(self, handle: int) -> None:
        vc = self._by_handle(handle)
        self.close_vc(vc.vpi, vc.vci)
        self.report_status(StatusBlock(C.ATM_VC_CLOSE_DONE, (handle, 0)))

    def vc_ack(self, req: AtmVcAckReq) -> None:
        vc = self._by_handle(req.vc_handle)
        if not vc.svc:
            raise ndd_error(errno.EINVAL, f"VC handle {req.vc_handle} is not an SVC's (VCOPEN_SVC)")
        if (req.conn_id.vpi, req.conn_id.vci) != (vc.vpi, vc.vci):
            raise ndd_error(errno.EINVAL, f"conn_id {req.conn_id} is not VC handle {req.vc_handle}'s")
        fwd, bak = self._aal5_sizes(req.aal_parm)
        vc.tx_max_sdu, vc.max_sdu, vc.pdu_limit = fwd, bak, aal5.pdu_limit(bak)
        self.report_status(StatusBlock(C.ATM_VC_ACK_DONE, (req.vc_handle, 0)))

    def vc_local(self, req: AtmVcLocalReq) -> None:
        a, b = self._by_handle(req.vc_handle1), self._by_handle(req.vc_handle2)
        if a is b or a.local is not None or b.local is not None or a.relay or b.relay:
            raise ndd_error(errno.EINVAL, "ATM_VC_LOCAL joins two distinct VCs, neither looped nor relayed")
        a.local, b.local = b, a
        self.report_status(StatusBlock(C.ATM_VC_LOCAL_DONE, (req.vc_handle1, req.vc_handle2)))

    def vc_txq_len(self, req: AtmVcTxqLen) -> None:
        if req.max_txq_len < 0:
            raise ndd_error(errno.EINVAL, "max_txq_len must be >= 0")
        self._by_handle(req.handle).max_txq = req.max_txq_len

    def device_ctl(self, cmd: int, arg: Any) -> Any:
        aix: dict[int, tuple[type, Callable[[Any], None]]] = {
            C.ATM_VC_OPEN: (AtmVcOpenReq, self.vc_open), C.ATM_VC_CLOSE: (int, self.vc_close),
            C.ATM_VC_ACK: (AtmVcAckReq, self.vc_ack), C.ATM_VC_LOCAL: (AtmVcLocalReq, self.vc_local),
            C.ATM_VS_Q_LEN: (AtmVcTxqLen, self.vc_txq_len)}
        if cmd in aix:
            kind, handler = aix[cmd]
            if not isinstance(arg, kind) or isinstance(arg, bool):
                raise ndd_error(errno.EINVAL, f"ndd_ctl {cmd:#x} takes a {kind.__name__}")
            handler(arg)
            return 0
        if cmd in (C.ATM_TXBUF_REG, C.ATM_TXBUF_GET):
            raise ndd_error(errno.EOPNOTSUPP, "no adapter transmit buffers to lend")
        if cmd == C.NDD_ATM_OPEN_VC:
            if not isinstance(arg, VcParams):
                raise ndd_error(errno.EINVAL, "NDD_ATM_OPEN_VC takes a VcParams")
            self.open_vc(arg)
            return 0
        if cmd in (C.NDD_ATM_CLOSE_VC, C.NDD_ATM_CLOSE_VC_DRAIN, C.NDD_ATM_GET_VC_STATS,
                   C.NDD_ATM_OAM_LOOPBACK):
            vpi, vci = _vc_arg(arg)
            if cmd in (C.NDD_ATM_CLOSE_VC, C.NDD_ATM_CLOSE_VC_DRAIN):
                self.close_vc(vpi, vci, drain=cmd == C.NDD_ATM_CLOSE_VC_DRAIN)
                return 0
            if cmd == C.NDD_ATM_GET_VC_STATS:
                return self.vc_stats(vpi, vci)
            return self.send_oam_loopback(vpi, vci)
        if cmd == C.NDD_ATM_SET_LINE_RATE:
            if not isinstance(arg, (int, float)):
                raise ndd_error(errno.EINVAL, "NDD_ATM_SET_LINE_RATE takes bit/s")
            self.set_line_rate(arg)
            return 0
        if cmd == C.NDD_ATM_LIST_VCS:
            return sorted(self.vcs)
        return super().device_ctl(cmd, arg)

    def ndd_ctl(self, cmd: int, arg: Any = None) -> Any:
        if cmd == C.NDD_CLEAR_STATS:
            for vc in self.vcs.values():
                vc.stats = VcStats()
                self.reasm.stats(vc.vpi, vc.vci).clear()
        return super().ndd_ctl(cmd, arg)

    # --- transmit --------------------------------------------------------------------
    def atm_output(self, vpi: int, vci: int, sdu: bytes | bytearray | memoryview) -> int:
        """Send one SDU on a VC: prepend the link header and go through ndd_output (taps, stats)."""
        pkt = PacketBuffer.from_payload(sdu)
        pkt.prepend(ATM_HDRLEN)[:] = atm_link_header(vpi, vci)
        return self.ndd_output(pkt)

    def _transmit(self, pkt: PacketBuffer) -> int:
        if len(pkt) < ATM_HDRLEN:
            return errno.EINVAL
        v = pkt.view()
        vc = self.vcs.get((v[1], v[2] << 8 | v[3]))
        if vc is None:
            return errno.ENOENT
        sdu = v[ATM_HDRLEN:]
        if len(sdu) > vc.tx_max_sdu:
            return errno.EMSGSIZE
        if not sdu:
            return errno.EINVAL      # AAL5 Length 0 is the abort code: an empty SDU has no encoding
        if vc.local is not None:
            # ATM_VC_LOCAL: handed to the looped VC by the transmit task, never segmented
            self._local.append((vc.local, bytes(sdu)))
            vc.stats.sdus_out += 1
            vc.stats.bytes_out += len(sdu)
            self._tx_idle = trio.Event() if self._tx_idle.is_set() else self._tx_idle
            self._tx_wake.set()
            return 0
        ncells = (len(sdu) + 8 + 47) // 48
        if ((self._queued_cells and self._queued_cells + ncells > self.tx_queue_cells)
                or (vc.max_txq and len(vc.txq) >= vc.max_txq)):
            self.atm_stats.total_no_xmt_buf += 1
            return errno.ENOBUFS
        cells = aal5.segment(sdu, vc.vpi, vc.vci)   # a fresh copy: the caller may reuse its buffer
        self._enqueue(vc, cells, ncells)
        vc.stats.sdus_out += 1
        vc.stats.bytes_out += len(sdu)
        return 0

    def _enqueue(self, vc: AtmVc, cells: bytes, ncells: int) -> None:
        if not vc.txq:
            self._active.append(vc)
        vc.txq.append(cells)
        self._queued_cells += ncells
        self._queued_sdus += 1
        if self._queued_sdus > self.stats.ndd_xmitque_max:
            self.stats.ndd_xmitque_max = self._queued_sdus
        self._tx_idle = trio.Event() if self._tx_idle.is_set() else self._tx_idle
        self._tx_wake.set()

    def send_cells(self, vpi: int, vci: int, cells: bytes | bytearray | memoryview) -> int:
        """Queue ready-made cells (N*53 octets, e.g. relayed from another port) on open VC
        vpi/vci: each is relabelled with this VC (PTI, CLP and payload kept, HEC
        recomputed) and paced out like an SDU's cells.  0, or ENETDOWN (adapter not
        running), ENOENT (no such VC), EINVAL (not whole cells), ENOBUFS (queue full);
        a refused batch is dropped and counted (`relay_tx_drops`), as a switch's full
        output buffer drops cells."""
        n, rest = divmod(len(cells), cell.CELL_LEN)
        vc = self.vcs.get((vpi, vci))
        err = 0
        if not self.is_open or not self.ndd_flags & C.NDD_RUNNING:
            err = errno.ENETDOWN
        elif vc is None:
            err = errno.ENOENT
        elif rest or not n:
            err = errno.EINVAL
        elif self._queued_cells and self._queued_cells + n > self.tx_queue_cells:
            err = errno.ENOBUFS
        if err:
            self.atm_stats.relay_tx_drops += n
            return err
        assert vc is not None
        self._enqueue(vc, cell.relabel(cells, vpi, vci), n)
        self.atm_stats.relay_cells_out += n
        return 0

    async def wait_tx_idle(self) -> None:
        """Return once every queued cell has left (and its line time has passed)."""
        await self._tx_idle.wait()

    @staticmethod
    def _peek(vc: AtmVc, n: int) -> tuple[bytes, int, int]:
        """Up to n cells from the head of vc's queue (may span SDUs), without taking them:
        (cells, SDU blobs finished, new offset into the next).  Committed only once the
        PHY took them, so back-pressure never loses or reorders a cell."""
        want = n * cell.CELL_LEN
        parts: list[bytes] = []
        i, off = 0, vc.tx_off
        q = vc.txq
        while want and i < len(q):
            head = q[i]
            chunk = head[off:off + want]
            parts.append(chunk)
            want -= len(chunk)
            off += len(chunk)
            if off == len(head):
                i, off = i + 1, 0
        return (parts[0] if len(parts) == 1 else b"".join(parts)), i, off

    async def _tx_loop(self) -> None:
        assert self.services is not None     # tasks run only once attached (TaskNdd.start_task)
        clock = self.services.clock
        line_free = clock()      # when the line has finished sending what we gave it
        while True:
            while self._local:
                peer, sdu = self._local.popleft()
                if self.vcs.get((peer.vpi, peer.vci)) is peer:   # still open
                    self._deliver_sdu(peer, sdu)
            if not self._active:
                self._tx_idle.set()
                self.tx_drained()          # senders refused meanwhile try again (NDD_TX_READY)
                self._tx_wake = trio.Event()
                if not self._local:
                    await self._tx_wake.wait()
                continue
            now = clock()
            # A sleep overshoots (epoll waits in whole milliseconds): keep up to 2 ms of the
            # lag as credit so the average stays at the line rate, but no more -- an idle
            # line does not bank a burst.
            line_free = max(line_free, now - PACING_CREDIT)
            rate = self.cell_rate
            quantum = max(1, min(self.batch_cells, int(rate * 0.001))) if rate else self.batch_cells
            sent = 0
            earliest = math.inf
            for _ in range(len(self._active)):
                vc = self._active.popleft()
                if vc.pcr and vc.next_tx > now:
                    earliest = min(earliest, vc.next_tx)
                    self._active.append(vc)
                    continue
                n = quantum
                if vc.pcr:
                    n = max(1, min(n, int(vc.pcr * 0.001)))
                blob, done, off = self._peek(vc, n)
                err = self.phy.send(blob)
                if err in (errno.ENOBUFS, errno.EAGAIN):
                    self._active.appendleft(vc)     # first in line once the PHY drains
                    await self.phy.wait_writable()
                    break
                for _ in range(done):
                    vc.txq.popleft()
                self._queued_sdus -= done
                if done and vc.max_txq:
                    self.tx_drained()      # a VC held to max_txq has room again: its sender may try
                self.stats.ndd_xmitintr += 1       # a batch of cells left for the PHY
                vc.tx_off = off
                k = len(blob) // cell.CELL_LEN
                self._queued_cells -= k
                if err:
                    self.atm_stats.tx_cells_dropped += k
                else:
                    self.atm_stats.xmt_cells += k
                    vc.stats.cells_out += k
                sent += k
                if vc.pcr:
                    vc.next_tx = max(vc.next_tx, now) + k / vc.pcr
                if vc.txq:
                    self._active.append(vc)
                if sent >= quantum and rate:
                    break
            if sent and rate:
                line_free += sent / rate
                await trio.sleep_until(line_free)
            elif sent:
                await trio.lowlevel.checkpoint()
            elif earliest < math.inf:
                await trio.sleep_until(earliest)
            if not self._active and line_free <= clock():
                self._tx_idle.set()
                self.tx_drained()          # senders refused meanwhile try again (NDD_TX_READY)

    # --- receive ---------------------------------------------------------------------
    def _rx_cells(self, data: bytes) -> None:
        """A PHY block of cells.  It is split in bulk into runs of cells with one header
        (drivers.atm.cell.CellBlock); a run of user cells with good HECs on a reassembled
        VC goes to AAL5 one PDU at a time, a relayed one is passed on as one slice.  Cells
        with a bad HEC and OAM/RM cells take the per-cell path (`_rx_slow`);
        the counters and what is delivered are those of handling each cell in turn."""
        if not self.is_open:
            return
        st, ast = self.stats, self.atm_stats
        st.ndd_recvintr += 1                 # a PHY block arrived: our receive interrupt
        vcs = self.vcs
        assert self.services is not None     # open, so attached
        now = self.services.clock()
        block = cell.CellBlock(data)
        relayed: dict[AtmVc, list[bytes]] = {}
        for run in block.runs:
            hdr = run.header
            if hdr is None or not run.hec_ok or hdr.pti & cell.PTI_NON_USER_BIT:
                self._rx_slow(block, run.start, run.end, now, relayed)
                continue
            key = (hdr.vpi, hdr.vci)
            vc = vcs.get(key)
            n = run.end - run.start
            if vc is None:
                ast.rcv_cells += n
                ast.unknown_vc += n
                ast.dropped_cells += n
                continue
            if vc.relay is not None:
                # a cross-connected VC is switched cell by cell, never reassembled
                ast.rcv_cells += n
                vc.stats.cells_in += n
                relayed.setdefault(vc, []).append(block.data[run.start * cell.CELL_LEN:run.end * cell.CELL_LEN])
                continue
            payloads = block.payloads()
            if n == 1:
                # interleaved VCs leave one-cell runs: no PDU search for them
                ast.rcv_cells += 1
                vc.stats.cells_in += 1
                sdu = self.reasm.feed(hdr.vpi, hdr.vci, hdr.pti, payloads[run.start * _PL:run.end * _PL], now,
                                      vc.pdu_limit)
                if sdu is not None:
                    self._deliver_sdu(vc, sdu)
                continue
            ends = block.pdu_ends(run)
            tail = not ends or ends[-1] != run.end - 1       # the run stops mid-PDU
            if tail:
                ends.append(run.end - 1)
            first = run.start
            for last in ends:
                k = last + 1 - first
                ast.rcv_cells += k
                vc.stats.cells_in += k
                eop = not tail or last != run.end - 1
                sdu = self.reasm.feed_cells(hdr.vpi, hdr.vci, payloads[first * _PL:(last + 1) * _PL], eop, now,
                                            vc.pdu_limit)
                first = last + 1
                if sdu is not None:
                    self._deliver_sdu(vc, sdu)
                    if first < run.end and vcs.get(key) is not vc:
                        # the SDU's user closed (or reopened) the VC: the rest as before, cell by cell
                        self._rx_slow(block, first, run.end, now, relayed)
                        break
        if block.truncated:
            ast.truncated_cells += 1
            st.ndd_ierrors += 1
        # one call per VC and PHY block: the far port queues them as one batch
        for rvc, parts in relayed.items():
            joined = parts[0] if len(parts) == 1 else b"".join(parts)
            ast.relay_cells_in += len(joined) // cell.CELL_LEN
            if rvc.relay is not None:
                rvc.relay(joined)

    def _rx_slow(self, block: cell.CellBlock, start: int, end: int, now: float,
                 relayed: dict[AtmVc, list[bytes]]) -> None:
        """Cells [start, end) of `block` one at a time: HEC errors (and their single-bit
        correction when asked for), OAM F5 and RM cells."""
        st, ast = self.stats, self.atm_stats
        vcs = self.vcs
        data = block.data
        mv = memoryview(data)
        parsed = cell.parsed_header
        for off in range(start * cell.CELL_LEN, end * cell.CELL_LEN, cell.CELL_LEN):
            hdr: cell.CellHeader | str | None = parsed(data[off:off + cell.HDR_LEN])
            if hdr is None:
                hdr = cell.CellHeader.parse(mv[off:off + cell.HDR_LEN], correct=True) if self.hec_correct else "hec"
            if isinstance(hdr, str):
                ast.hec_errors += 1
                ast.dropped_cells += 1
                st.ndd_ierrors += 1
                continue
            payload = mv[off + cell.HDR_LEN:off + cell.CELL_LEN]
            ast.rcv_cells += 1
            vc = vcs.get((hdr.vpi, hdr.vci))
            if vc is None:
                ast.unknown_vc += 1
                ast.dropped_cells += 1
                continue
            vc.stats.cells_in += 1
            pti = hdr.pti
            if vc.relay is not None and pti != cell.PTI_OAM_SEGMENT and pti < cell.PTI_RM:
                raw = hdr.emit() + bytes(payload) if hdr.corrected else data[off:off + cell.CELL_LEN]
                relayed.setdefault(vc, []).append(raw)
                continue
            if pti & cell.PTI_NON_USER_BIT:
                if pti in (cell.PTI_OAM_SEGMENT, cell.PTI_OAM_END_TO_END):
                    self._oam_in(vc, hdr, payload)
                else:
                    ast.rm_cells += 1
                    ast.dropped_cells += 1
                continue
            sdu = self.reasm.feed(hdr.vpi, hdr.vci, pti, payload, now, vc.pdu_limit)
            if sdu is not None:
                self._deliver_sdu(vc, sdu)

    def _deliver_sdu(self, vc: AtmVc, sdu: bytes) -> None:
        if len(sdu) > vc.max_sdu:
            vc.stats.max_sdu_drops += 1
            self.atm_stats.oversized_sdus += 1
            self.stats.ndd_ibadpackets += 1
            return
        vc.stats.sdus_in += 1
        vc.stats.bytes_in += len(sdu)
        pkt = PacketBuffer.from_payload(sdu)
        pkt.prepend(ATM_HDRLEN)[:] = atm_link_header(vc.vpi, vc.vci)
        self.deliver(pkt)

    async def _reasm_timer(self) -> None:
        assert self.services is not None
        clock = self.services.clock
        while True:
            at = self.reasm.poll_at()
            with trio.CancelScope(deadline=math.inf if at is None else at) as scope:
                self._reasm_scope = scope
                await trio.sleep_forever()
            self._reasm_scope = None
            self.reasm.poll(clock())

    # --- OAM F5 ------------------------------------------------------------------------
    def _oam_in(self, vc: AtmVc, hdr: cell.CellHeader, payload: memoryview) -> None:
        self.atm_stats.oam_in += 1
        vc.stats.oam_in += 1
        lb = oam.parse_oam(payload)              # one CRC-10 check per cell, whatever it is
        if isinstance(lb, str):
            self.atm_stats.oam_errors += 1
        elif lb.indication == 1:
            reply = oam.loopback_reply(hdr.emit() + bytes(payload))   # None: not addressed to us
            if reply is not None and self.phy.send(reply) == 0:
                self.atm_stats.oam_loopbacks_answered += 1
                self._count_oam_out(vc)
        else:
            self.atm_stats.oam_loopback_replies += 1
            if len(self.oam_replies) == self.oam_replies.maxlen:
                self.atm_stats.oam_replies_forgotten += 1
            self.oam_replies.append((vc.vpi, vc.vci, lb.tag))

    # OAM cells go straight to the PHY, ahead of the paced queues: one cell now and then,
    # and a loopback measures the path, not our own queueing
    def _count_oam_out(self, vc: AtmVc) -> None:
        self.atm_stats.oam_out += 1
        self.atm_stats.xmt_cells += 1
        vc.stats.oam_out += 1
        vc.stats.cells_out += 1

    def send_oam_loopback(self, vpi: int, vci: int) -> int:
        """Send an F5 end-to-end loopback request on an open VC; returns its correlation tag."""
        vc = self.vcs.get((vpi, vci))
        if vc is None:
            raise ndd_error(errno.ENOENT, f"no VC {vpi}/{vci} on {self.ndd_name}")
        if not self.is_open or not self.ndd_flags & C.NDD_RUNNING:
            raise ndd_error(errno.ENETDOWN, f"{self.ndd_name} is down")
        self._oam_tag = (self._oam_tag + 1) & 0xFFFFFFFF
        err = self.phy.send(oam.loopback_request(vpi, vci, self._oam_tag, end_to_end=True))
        if err:
            raise ndd_error(err, "OAM loopback cell not sent")
        self._count_oam_out(vc)
        return self._oam_tag


def _vc_arg(arg: Any) -> tuple[int, int]:
    if isinstance(arg, VcParams):
        return arg.vpi, arg.vci
    if isinstance(arg, tuple) and len(arg) == 2 and all(isinstance(x, int) for x in arg):
        return arg
    raise ndd_error(errno.EINVAL, "expected (vpi, vci)")
