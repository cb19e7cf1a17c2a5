"""The NDD base: one network device as the protocol side sees it (AIX `struct ndd`).

A driver subclasses `Ndd` and implements `_open_device`, `_close_device` and
`_transmit`.  The receive side calls `self.deliver(pkt)`, which feeds taps and then
`nd_receive`, the demuxer entry installed by `ns_alloc`.  `output` and `deliver`
keep the general statistics (ndd_genstats) so every driver counts the same way.
"""
from __future__ import annotations

import errno
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic
from typing import Any, Protocol

from . import constants as C
from . import gso
from .counters import Counters
from .mib import mib_ctl
from .pktbuf import PacketBuffer


class DeviceServices(Protocol):
    """What a device may ask of the network services that attached it (ndd/services.py's
    NetServices): start a task in the owning Stack's nursery, and read the Stack's clock."""
    spawn: Callable[..., Any]
    clock: Callable[[], float]


BROADCAST_MAC = b"\xff\xff\xff\xff\xff\xff"


def ndd_error(code: int, what: str = "") -> OSError:
    msg = os.strerror(code)
    return OSError(code, f"{msg}: {what}" if what else msg)


@dataclass
class GenStats(Counters):
    """ndd_genstats (<sys/ndd.h>): the counters every NDD keeps, under AIX's names.  AIX
    splits the packet and octet counters into 32-bit _msw/_lsw halves; a Python int needs
    none, so each is one field under the name without the suffix.  `ndd_elapsed_time` and
    `ndd_xmitque_cur` are gauges the NDD fills in when its statistics are read
    (Ndd.genstats, NDD_GET_STATS).  What the demuxer counts is in nd_dmxstats, not here."""
    ndd_elapsed_time: int = 0      # seconds since the counters were last cleared (or the NDD made)
    ndd_ipackets: int = 0          # frames received (delivered to the demuxer or dropped there)
    ndd_ibytes: int = 0
    ndd_recvintr: int = 0          # receive wake-ups: a driver's read loop woke with frames to take
    ndd_ierrors: int = 0           # the device failed to receive (read errors, bad offload headers)
    ndd_opackets: int = 0          # frames the device accepted for transmission
    ndd_obytes: int = 0
    ndd_xmitintr: int = 0          # transmit completions: a driver's transmit loop handed a batch on
    ndd_oerrors: int = 0           # the device failed to send (an errno other than a full queue)
    ndd_nobufs: int = 0            # no buffer for a received frame (no driver of ours runs short: 0)
    ndd_xmitque_max: int = 0       # the longest the transmit queue has been, in frames
    ndd_xmitque_ovf: int = 0       # frames refused because the transmit queue was full (ENOBUFS)
    ndd_ipackets_drop: int = 0     # received frames not passed up (not our address, the user's ifp down)
    ndd_ibadpackets: int = 0       # received frames too short for their link header, or malformed
    ndd_opackets_drop: int = 0     # frames not transmitted because the NDD is closed or not running
    ndd_xmitque_cur: int = 0       # frames in the transmit queue now (driver and device)
    ndd_ifOutUcastPkts: int = 0    # frames requested for transmission to a unicast address
    ndd_ifOutMcastPkts: int = 0    # ... to a multicast address (Ethernet)
    ndd_ifOutBcastPkts: int = 0    # ... to the broadcast address (Ethernet)


@dataclass
class NdDmxStats(Counters):
    """nd_dmxstats (<sys/cdli.h>): what the demuxer counts for one NDD (ndd_nsdemux)."""
    nd_nofilter: int = 0           # frames dropped because no user's filter wanted them
    nd_nobufs: int = 0             # frames dropped for want of a buffer (protoq full)
    nd_bcast: int = 0              # broadcast frames received
    nd_mcast: int = 0              # multicast frames received


@dataclass(eq=False)
class NsDmxCtl:
    """ns_dmx_ctl: the common demux control of one NDD (its `ndd_nsdemux`): here just the
    demuxer's statistics for it, which live as long as the NDD."""
    nd_dmxstats: NdDmxStats = field(default_factory=NdDmxStats)


@dataclass
class DeviceCaps:
    """What the device can do for us (smoltcp DeviceCapabilities)."""
    mtu: int = 1500
    tx_csum_offload: bool = False     # we may hand it partial L4 checksums
    rx_csum_partial: bool = False     # it may hand us partial L4 checksums (virtio NEEDS_CSUM)
    tso_max: int = 0                  # largest TCP super-segment it accepts (0: none)
    gso_rx: bool = False              # it may hand us super-segments
    uso: bool = False                 # UDP segmentation offload
    gather: bool = False              # ndd_output_gather writes the parts itself (no copy, no PacketBuffer)


@dataclass
class StatusBlock:
    """ndd_statblk: code (NDD_HARD_FAIL, NDD_STATUS, ...: one bit each) and option words."""
    code: int
    option: tuple[int, ...] = ()


# The errno of a failed device read or write, as the AIX reason code NDD_HARD_FAIL's
# option[0] carries (<sys/ndd.h>); the errno itself follows in option[1].
_HARD_FAIL_REASON = {
    errno.EIO: C.NDD_PIO_FAIL,            # the I/O operation on the device failed
    errno.EBADF: C.NDD_ADAPTER_DELETED,   # the fd no longer names a device: it went away
    errno.EBADFD: C.NDD_ADAPTER_DELETED,  # (Linux tun: a queue detached from its device)
    errno.ENODEV: C.NDD_ADAPTER_DELETED,
    errno.ENXIO: C.NDD_ADAPTER_DELETED,
}


def _group_address(arg: Any) -> bytes:
    """NDD_ENABLE/DISABLE_ADDRESS's argument: a 6-octet group address other than broadcast
    (which is always received); EINVAL otherwise, as AIX's Ethernet drivers answer."""
    if not isinstance(arg, (bytes, bytearray)) or len(arg) != 6:
        raise ndd_error(errno.EINVAL, "address must be 6 octets")
    if not arg[0] & 1 or bytes(arg) == BROADCAST_MAC:
        raise ndd_error(errno.EINVAL, "not a multicast address")
    return bytes(arg)


def hard_fail(err: int) -> StatusBlock:
    """The NDD_HARD_FAIL block for a device operation that failed with `err`:
    option = (reason code, errno); an errno not in the table is NDD_CMD_FAIL."""
    return StatusBlock(C.NDD_HARD_FAIL, (_HARD_FAIL_REASON.get(err, C.NDD_CMD_FAIL), err))


ReceiveFn = Callable[["Ndd", PacketBuffer], None]
TapFn = Callable[["Ndd", str, PacketBuffer], None]


class Ndd:
    """Base network device driver.  `ndd_open` / `ndd_close` are called by ns_alloc/ns_free."""

    ndd_type: int = C.NDD_ISO88023
    ndd_addrlen: int = 6
    ndd_hdrlen: int = 14
    linktype: int = 1   # pcap LINKTYPE for taps (EN10MB)

    def __init__(self, name: str, *, mtu: int = 1500, physaddr: bytes = b"", flags: int = 0,
                 alias: str = "") -> None:
        self.ndd_name = name
        self.ndd_alias = alias            # alternate name (AIX: en0's ent0); ns_alloc takes either
        # NDD_MULTICAST means all-multicast on (NDD_ENABLE_MULTICAST), so it starts clear
        self.ndd_flags = flags | C.NDD_BROADCAST if self.ndd_type == C.NDD_ISO88023 else flags
        self.ndd_2_flags = 0              # the flags extension field (NDD_2_LARGE_RECEIVE)
        self.ndd_mtu = mtu
        self.ndd_mintu = 0
        self.ndd_physaddr = physaddr
        self.stats = GenStats()           # ndd_genstats
        self.ndd_specstats: Counters | None = None   # the device-specific statistics, if any
        # demuxer linkage (<sys/ndd.h>), filled in by ns_alloc: the demuxer serving this NDD's
        # type, the common demux control (the demuxer's counters for this NDD), the demuxer's
        # own per-NDD control (its filter table), 0 = a system demuxer (1: NDD-provided)
        self.ndd_demuxer: Any = None
        self.ndd_nsdemux = NsDmxCtl()
        self.ndd_specdemux: Any = None
        self.ndd_demuxsource = 0
        self._stats_since: float | None = None   # ndd_elapsed_time counts from here (ns_attach)
        self.caps = DeviceCaps(mtu=mtu)
        self.nd_receive: ReceiveFn | None = None
        self.nd_status: Callable[[Ndd, StatusBlock], None] | None = None
        # called with True before a driver delivers a batch of frames read at once and with
        # False after it (tunstack's own, not AIX's): the layers above coalesce their answers
        # per batch, as Linux's GRO merges a NAPI poll's segments (issue 15)
        self.nd_rx_batch: Callable[[bool], None] | None = None
        # tunstack's own too, XDP's place (Linux's eXpress Data Path hook runs in the driver
        # before any socket buffer exists): a driver that offers it (TunTapNdd) hands each
        # frame it read -- `(data, start, csum_valid)`, the frame at data[start:], no
        # super-frame -- here first, while no tap is registered.  True: consumed (the driver
        # still counts it received); False: it goes the whole way, a PacketBuffer to
        # nd_receive.  The Stack sets it to take a gateway's relayed TCP segments
        # (Stack._fast_rx).
        self.nd_fast_rx: Callable[[bytes, int, bool], bool] | None = None
        self.services: DeviceServices | None = None
        self.taps: list[TapFn] = []
        self.alt_addrs: dict[bytes, int] = {}   # NDD_ENABLE_ADDRESS: group address -> references
        self.all_multicast = 0                  # NDD_ENABLE_MULTICAST references
        self.hw_filters: list[Any] = []
        self.is_open = False
        self._tx_refused = False     # a frame was refused (ENOBUFS) since the queue last drained

    # --- life cycle (ndd_open / ndd_close) ---------------------------------
    def ndd_open(self) -> None:
        if self.is_open:
            return
        self._open_device()
        self.is_open = True
        self.ndd_flags |= C.NDD_UP | C.NDD_RUNNING
        self.caps_flags()

    def caps_flags(self) -> None:
        """Show the device's capabilities (DeviceCaps, settled when it opens: a TUN/TAP
        negotiates its offloads then) in AIX's flags where AIX has one: checksum offload either
        way is NDD_CHECKSUM_OFFLOAD, super-segments handed up is ndd_2_flags'
        NDD_2_LARGE_RECEIVE.  TSO/USO have no NDD flag (AIX's largesend is the ifnet's)."""
        c = self.caps
        if c.tx_csum_offload or c.rx_csum_partial:
            self.ndd_flags |= C.NDD_CHECKSUM_OFFLOAD
        else:
            self.ndd_flags &= ~C.NDD_CHECKSUM_OFFLOAD
        if c.gso_rx:
            self.ndd_2_flags |= C.NDD_2_LARGE_RECEIVE
        else:
            self.ndd_2_flags &= ~C.NDD_2_LARGE_RECEIVE

    def ndd_close(self) -> None:
        if not self.is_open:
            return
        self.is_open = False
        self.ndd_flags &= ~(C.NDD_UP | C.NDD_RUNNING)
        self._close_device()

    def _open_device(self) -> None:
        pass

    def _close_device(self) -> None:
        pass

    # --- data path ---------------------------------------------------------
    def ndd_output(self, pkt: PacketBuffer) -> int:
        """Queue one frame for transmission.  Never blocks; returns 0 or an errno."""
        if not self.is_open or not self.ndd_flags & C.NDD_RUNNING:
            self._count_request(pkt)
            self.stats.ndd_opackets_drop += 1
            return errno.ENETDOWN
        caps = self.caps
        if pkt.csum_start >= 0 and ((pkt.gso_size and not caps.tso_max) or not caps.tx_csum_offload):
            return self._output_in_software(pkt)
        return self._output_frame(pkt)

    def ndd_output_gather(self, header: bytes | bytearray, payload: bytes | bytearray | memoryview | None,
                          csum_start: int, csum_offset: int) -> int:
        """ndd_output of the frame `header` + `payload` (tunstack's own: Linux's scatter-gather
        transmit), its L4 checksum left partial from `csum_start` (-1: complete) for the
        device to finish at `csum_offset` past it.  Here: copied into one PacketBuffer and
        sent by ndd_output.  A device with caps.gather (TunTapNdd) writes the parts as they
        are, counting what ndd_output counts; callers use it only while no tap is registered."""
        pkt = PacketBuffer.from_payload(bytes(header) + bytes(payload or b""))
        if csum_start >= 0:
            pkt.csum_start, pkt.csum_offset = pkt.start + csum_start, csum_offset
        return self.ndd_output(pkt)

    def _output_in_software(self, pkt: PacketBuffer) -> int:
        """What the device cannot do is done here, as Linux's validate_xmit_skb does it:
        a super-segment cut, a partial checksum finished (ndd/gso.py).  The first error ends
        it (the rest would meet the same full queue), and TCP resends what was not sent."""
        frames = gso.frames_for(pkt, self.caps)
        if frames is None:
            self._count_request(pkt)
            self.stats.ndd_oerrors += 1
            return errno.EINVAL
        for frame in frames:
            err = self._output_frame(frame)
            if err:
                return err
        return 0

    def _count_request(self, pkt: PacketBuffer) -> None:
        """ifOut{Ucast,Mcast,Bcast}Pkts count what was requested, sent or not (RFC 2863)."""
        st = self.stats
        if self.ndd_type == C.NDD_ISO88023 and len(pkt) > 0 and pkt.buf[pkt.start] & 1:
            if bytes(pkt.buf[pkt.start:pkt.start + 6]) == BROADCAST_MAC:
                st.ndd_ifOutBcastPkts += 1
            else:
                st.ndd_ifOutMcastPkts += 1
        else:
            st.ndd_ifOutUcastPkts += 1

    def _output_frame(self, pkt: PacketBuffer) -> int:
        st = self.stats
        if self.ndd_type == C.NDD_ISO88023 and len(pkt) > 0 and pkt.buf[pkt.start] & 1:
            self._count_request(pkt)
        else:
            st.ndd_ifOutUcastPkts += 1          # (_count_request's common case, inline: per frame)
        for tap in self.taps:
            tap(self, "out", pkt)
        return self._count_sent(self._transmit(pkt), len(pkt))

    def _count_sent(self, err: int, size: int) -> int:
        """What the driver's write of a `size`-octet frame returned, counted: 0 or the errno."""
        st = self.stats
        if err:
            if err in (errno.ENOBUFS, errno.EAGAIN):
                st.ndd_xmitque_ovf += 1
                self._tx_refused = True
            else:
                st.ndd_oerrors += 1
            return err
        st.ndd_opackets += 1
        st.ndd_obytes += size
        return 0

    def _transmit(self, pkt: PacketBuffer) -> int:
        raise NotImplementedError

    def deliver(self, pkt: PacketBuffer) -> None:
        """A driver hands a received frame up: taps, counters, then the demuxer."""
        self.stats.ndd_ipackets += 1
        self.stats.ndd_ibytes += len(pkt)
        for tap in self.taps:
            tap(self, "in", pkt)
        receive = self.nd_receive
        if receive is None:
            self.ndd_nsdemux.nd_dmxstats.nd_nofilter += 1
            return
        receive(self, pkt)

    def tx_drained(self) -> None:
        """A driver calls this when its transmit queue has drained: if a frame was refused
        (ENOBUFS) since the last time, users waiting to send hear NDD_STATUS / NDD_TX_READY
        (once per refusal, so an idle or unloaded device reports nothing)."""
        if self._tx_refused:
            self._tx_refused = False
            self.report_status(StatusBlock(C.NDD_STATUS, (C.NDD_TX_READY,)))

    def report_status(self, block: StatusBlock) -> None:
        """A driver reports a status block: ndd_flags follow it, then nd_status (the
        network services) hands it to the users whose mask holds its code."""
        self._status_flags(block.code, block.option[:1])
        if self.nd_status is not None:
            self.nd_status(self, block)

    def _status_flags(self, code: int, why: tuple[int, ...]) -> None:
        """What a status code means for ndd_flags, as AIX drivers keep them: HARD_FAIL is
        NDD_DEAD, LIMBO_ENTER/EXIT toggle NDD_LIMBO (network recovery mode) and RUNNING,
        tunstack's link options toggle RUNNING.  Device-specific codes leave them alone."""
        if code >= C.NDD_STAT_BLOCK:
            return
        if code & C.NDD_HARD_FAIL:
            self.ndd_flags = (self.ndd_flags & ~(C.NDD_RUNNING | C.NDD_LIMBO)) | C.NDD_DEAD
        elif code & C.NDD_LIMBO_ENTER:
            self.ndd_flags = (self.ndd_flags & ~C.NDD_RUNNING) | C.NDD_LIMBO
        elif code & C.NDD_LIMBO_EXIT:
            self.ndd_flags = (self.ndd_flags & ~C.NDD_LIMBO) | C.NDD_RUNNING
        elif code & C.NDD_STATUS and why == (C.NDD_LINK_DOWN,):
            self.ndd_flags &= ~C.NDD_RUNNING
        elif code & C.NDD_STATUS and why == (C.NDD_LINK_UP,):
            self.ndd_flags |= C.NDD_RUNNING

    # --- control (ndd_ctl) -------------------------------------------------
    def ndd_ctl(self, cmd: int, arg: Any = None) -> Any:
        """AIX ndd_ctl.  Unknown commands raise OSError(EOPNOTSUPP)."""
        if cmd == C.NDD_GET_STATS:
            return self.genstats()
        if cmd == C.NDD_CLEAR_STATS:
            self.stats.clear()
            if self.ndd_specstats is not None:
                self.ndd_specstats.clear()
            self.stats_epoch()
            return 0
        if cmd == C.NDD_PROMISCUOUS_ON:
            self.ndd_flags |= C.NDD_PROMISC
            return 0
        if cmd == C.NDD_PROMISCUOUS_OFF:
            self.ndd_flags &= ~C.NDD_PROMISC
            return 0
        if cmd in (C.NDD_ENABLE_ADDRESS, C.NDD_ENABLE_MULTICAST, C.NDD_DISABLE_ADDRESS, C.NDD_DISABLE_MULTICAST):
            return self._ctl_address(cmd, arg)
        if cmd == C.NDD_ADD_FILTER:
            self.hw_filters.append(arg)
            return 0
        if cmd == C.NDD_DEL_FILTER:
            if arg not in self.hw_filters:
                raise ndd_error(errno.ENOENT, "no such filter")
            self.hw_filters.remove(arg)
            return 0
        if cmd in (C.NDD_ADD_STATUS, C.NDD_DEL_STATUS):
            return 0  # status delivery lives in the network services; the device just acks
        if cmd in (C.NDD_MIB_QUERY, C.NDD_MIB_GET, C.NDD_MIB_SET, C.NDD_MIB_ADDR):
            return mib_ctl(self, cmd, arg)     # the generic interface MIB (ndd/mib.py)
        if cmd == C.NDD_GET_ALL_STATS:
            return self.all_stats()
        if cmd >= C.NDD_DEVICE_SPECIFIC:
            return self.device_ctl(cmd, arg)
        raise ndd_error(errno.EOPNOTSUPP, f"ndd_ctl command {cmd:#x}")

    def _ctl_address(self, cmd: int, arg: Any) -> int:
        """Address control as AIX Ethernet drivers do it: NDD_ENABLE/DISABLE_MULTICAST is
        all-multicast (no argument), NDD_ENABLE/DISABLE_ADDRESS one group address; both
        reference counted, so each user's enable is undone only by its own disable."""
        if self.ndd_type != C.NDD_ISO88023:
            raise ndd_error(errno.EOPNOTSUPP, "no link-layer addresses on this device")
        if cmd in (C.NDD_ENABLE_MULTICAST, C.NDD_DISABLE_MULTICAST):
            return self._ctl_all_multicast(cmd == C.NDD_ENABLE_MULTICAST)
        mac = _group_address(arg)
        if cmd == C.NDD_ENABLE_ADDRESS:
            self.alt_addrs[mac] = self.alt_addrs.get(mac, 0) + 1
            self.ndd_flags |= C.NDD_ALTADDRS
            return 0
        refs = self.alt_addrs.get(mac, 0)
        if not refs:
            raise ndd_error(errno.ENOENT, "address not enabled")
        if refs > 1:
            self.alt_addrs[mac] = refs - 1
            return 0
        del self.alt_addrs[mac]
        if not self.alt_addrs:
            self.ndd_flags &= ~C.NDD_ALTADDRS   # receiving no additional address any more
        return 0

    def _ctl_all_multicast(self, on: bool) -> int:
        """NDD_MULTICAST is set while any user has all-multicast on; a disable without an
        enable is EINVAL (as AIX's Ethernet drivers answer)."""
        if on:
            self.all_multicast += 1
            self.ndd_flags |= C.NDD_MULTICAST
            return 0
        if not self.all_multicast:
            raise ndd_error(errno.EINVAL, "all-multicast not enabled")
        self.all_multicast -= 1
        if not self.all_multicast:
            self.ndd_flags &= ~C.NDD_MULTICAST
        return 0

    def _now(self) -> float:
        services = self.services
        return services.clock() if services is not None else monotonic()

    def stats_epoch(self) -> None:
        """Start ndd_elapsed_time over: ns_attach (the NDD gets its Stack's clock) and
        NDD_CLEAR_STATS call this."""
        self._stats_since = self._now()

    def xmitque_len(self) -> int:
        """Frames in the transmit queue now (ndd_xmitque_cur); a driver with a queue says."""
        return 0

    def genstats(self) -> dict[str, Any]:
        """NDD_GET_STATS: ndd_genstats with its gauges brought up to date, then the device's
        ndd_specstats if it has any (as an AIX driver answers with its own structure that
        begins with ndd_genstats, e.g. atm_ndd_stats)."""
        st = self.stats
        if self._stats_since is None:
            self.stats_epoch()
        st.ndd_elapsed_time = int(self._now() - self._stats_since)  # type: ignore[operator]
        st.ndd_xmitque_cur = self.xmitque_len()
        d = st.as_dict()
        if self.ndd_specstats is not None:
            d.update(self.ndd_specstats.as_dict())
        return d

    def all_stats(self) -> dict[str, Any]:
        """NDD_GET_ALL_STATS: NDD_GET_STATS's dict, plus what a driver adds that is
        device-specific."""
        return self.genstats()

    def device_ctl(self, cmd: int, arg: Any) -> Any:
        raise ndd_error(errno.EOPNOTSUPP, f"device-specific ndd_ctl {cmd:#x}")

    def accepts_destination(self, mac: bytes) -> bool:
        """The device's address filter: unicast to us, broadcast, an enabled group address,
        any group address under all-multicast (NDD_MULTICAST), anything when promiscuous."""
        if mac == self.ndd_physaddr or mac == BROADCAST_MAC or self.ndd_flags & C.NDD_PROMISC:
            return True
        if mac[0] & 1:
            return (mac in self.alt_addrs or bool(self.ndd_flags & C.NDD_MULTICAST)
                    or (mac[:3] == b"\x01\x00\x5e" and self._all_ipv4_multicast(mac)))
        return False

    def _all_ipv4_multicast(self, mac: bytes) -> bool:
        return mac == b"\x01\x00\x5e\x00\x00\x01"  # 224.0.0.1 all-hosts is always joined (RFC 1112)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.ndd_name} type={self.ndd_type:#x} mtu={self.ndd_mtu}>"
