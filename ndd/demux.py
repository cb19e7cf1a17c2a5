"""Demuxers: the receive function `ns_alloc` installs as an NDD's `nd_receive`.

One demuxer per NDD type (AIX: ns_add_demux).  It looks at the link header and
hands the frame to the user whose filter matches; frames nobody wants are counted
in `nd_nofilter`.  Filters:
  Ethernet (NDD_ISO88023): NS_ETHERTYPE, NS_8022_LLC_DSAP, NS_8022_LLC_DSAP_SNAP, NS_TAP
  raw IP   (NDD_RAWIP, NDD_SOFTWARE_LOOPBACK): NS_IPVERSION, NS_TAP
  ATM      (NDD_ATM): ndd.atm.AtmDemuxer
"""
from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import constants as C
from .ndd import Ndd, ndd_error
from .pktbuf import PacketBuffer

NS_PROTO = 1         # pkt_format: link header stripped, link addresses in pkt.ll_src / ll_dst
NS_INCLUDE_MAC = 2   # pkt_format: the whole frame

@dataclass(frozen=True)
class NsFilter:
    """ns_8022 and friends in one hashable record; only the fields of `filtertype` matter."""
    filtertype: int
    ethertype: int = 0
    dsap: int = 0
    orgcode: bytes = b"\x00\x00\x00"
    version: int = 0
    vpi: int = 0
    vci: int = 0

    def key(self) -> tuple:
        t = self.filtertype
        if t == C.NS_ETHERTYPE:
            return (t, self.ethertype)
        if t == C.NS_8022_LLC_DSAP:
            return (t, self.dsap)
        if t == C.NS_8022_LLC_DSAP_SNAP:
            return (t, self.dsap, self.orgcode, self.ethertype)
        if t == C.NS_IPVERSION:
            return (t, self.version)
        if t == C.NS_ATM_VC:
            return (t, self.vpi, self.vci)
        return (t,)


@dataclass(eq=False)
class NsUser:
    """ns_user: the receiver's entry point and its private data."""
    isr: Callable[[Ndd, PacketBuffer, Any], None]
    isr_data: Any = None
    pkt_format: int = NS_PROTO


class Demuxer:
    """Base: filter table per NDD and status users; subclasses parse link headers."""

    filter_types: frozenset[int] = frozenset()

    def __init__(self) -> None:
        self.filters: dict[str, dict[tuple, NsUser]] = {}
        self.taps: dict[str, list[tuple[NsFilter, NsUser]]] = {}

    def add_filter(self, ndd: Ndd, flt: NsFilter, user: NsUser) -> None:
        if flt.filtertype not in self.filter_types:
            raise ndd_error(errno.EINVAL, f"filter type {flt.filtertype} not supported on {ndd.ndd_name}")
        if flt.filtertype == C.NS_TAP:
            taps = self.taps.setdefault(ndd.ndd_name, [])
            if any(u is user for _, u in taps):
                raise ndd_error(errno.EEXIST, "tap already registered")
            taps.append((flt, user))
            return
        table = self.filters.setdefault(ndd.ndd_name, {})
        if flt.key() in table:
            raise ndd_error(errno.EEXIST, f"filter {flt} already in use on {ndd.ndd_name}")
        table[flt.key()] = user
        ndd.ndd_ctl(C.NDD_ADD_FILTER, flt)

    def del_filter(self, ndd: Ndd, flt: NsFilter, user: NsUser | None = None) -> None:
        if flt.filtertype == C.NS_TAP:
            taps = self.taps.get(ndd.ndd_name, [])
            for i, (_, u) in enumerate(taps):
                if user is None or u is user:
                    del taps[i]
                    return
            raise ndd_error(errno.ENOENT, "no such tap")
        table = self.filters.get(ndd.ndd_name, {})
        if table.pop(flt.key(), None) is None:
            raise ndd_error(errno.ENOENT, f"no filter {flt} on {ndd.ndd_name}")
        ndd.ndd_ctl(C.NDD_DEL_FILTER, flt)

    def forget(self, ndd: Ndd) -> None:
        self.filters.pop(ndd.ndd_name, None)
        self.taps.pop(ndd.ndd_name, None)

    def _tap(self, ndd: Ndd, pkt: PacketBuffer) -> None:
        for _, user in self.taps.get(ndd.ndd_name, ()):
            user.isr(ndd, pkt.copy(), user.isr_data)

    def receive(self, ndd: Ndd, pkt: PacketBuffer) -> None:
        raise NotImplementedError


class EtherDemuxer(Demuxer):
    """Ethernet II by ethertype; 802.3 frames by LLC DSAP or SNAP (RFC 1042)."""

    filter_types = frozenset({C.NS_ETHERTYPE, C.NS_8022_LLC_DSAP, C.NS_8022_LLC_DSAP_SNAP, C.NS_TAP})

    def receive(self, ndd: Ndd, pkt: PacketBuffer) -> None:
        if len(pkt) < 14:
            ndd.stats.ierrors += 1
            return
        if ndd.ndd_name in self.taps:
            self._tap(ndd, pkt)
        view = pkt.view()
        dst = bytes(view[0:6])
        if not ndd.accepts_destination(dst):
            ndd.stats.ipackets_drop += 1
            return
        if dst[0] & 1:
            ndd.stats.imcasts += 1
            pkt.ll_bcast = True
        (etype,) = struct.unpack_from("!H", view, 12)
        table = self.filters.get(ndd.ndd_name, {})
        hdrlen = 14
        if etype >= 0x0600:
            user = table.get((C.NS_ETHERTYPE, etype))
        elif len(pkt) >= 17:
            # 802.3 length field + 802.2 LLC
            if etype < len(pkt) - 14:
                pkt.trim(14 + etype)  # drop padding beyond the 802.3 length
            if len(pkt) < 17:
                # a length field too short for DSAP/SSAP/control: pulling 17 would leave len < 0
                ndd.stats.ierrors += 1
                return
            dsap = view[14]
            if dsap == 0xAA and len(pkt) >= 22 and view[16] == 0x03:
                key = (C.NS_8022_LLC_DSAP_SNAP, 0xAA, bytes(view[17:20]), struct.unpack_from("!H", view, 20)[0])
                user = table.get(key)
                hdrlen = 22
            else:
                user = table.get((C.NS_8022_LLC_DSAP, dsap))
                hdrlen = 17
        else:
            ndd.stats.ierrors += 1
            return
        if user is None:
            ndd.stats.nd_nofilter += 1
            return
        if user.pkt_format == NS_PROTO:
            pkt.ll_dst = dst
            pkt.ll_src = bytes(view[6:12])
            pkt.pull(hdrlen)
        user.isr(ndd, pkt, user.isr_data)


class RawIpDemuxer(Demuxer):
    """Layer-3 devices (TUN, loopback): the frame is an IP packet; demux on the version nibble."""

    filter_types = frozenset({C.NS_IPVERSION, C.NS_TAP})

    def receive(self, ndd: Ndd, pkt: PacketBuffer) -> None:
        if ndd.ndd_name in self.taps:
            self._tap(ndd, pkt)
        if len(pkt) < 1:
            ndd.stats.ierrors += 1
            return
        user = self.filters.get(ndd.ndd_name, {}).get((C.NS_IPVERSION, pkt.buf[pkt.start] >> 4))
        if user is None:
            ndd.stats.nd_nofilter += 1
            return
        user.isr(ndd, pkt, user.isr_data)
