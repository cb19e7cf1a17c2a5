"""Demuxers: the receive function `ns_alloc` installs as an NDD's `nd_receive`.

One demuxer per NDD type (AIX: ns_add_demux).  It looks at the link header and
hands the frame to the user whose filter matches; frames nobody wants are counted
in the NDD's nd_dmxstats (`ndd_nsdemux`: nd_nofilter, nd_bcast, nd_mcast, nd_nobufs),
not in its genstats.  Filters:
  Ethernet (NDD_ISO88023): NS_ETHERTYPE, NS_8022_LLC_DSAP, NS_8022_LLC_DSAP_SNAP, NS_TAP
  raw IP   (NDD_RAWIP, NDD_SOFTWARE_LOOPBACK): NS_IPVERSION, NS_TAP
  ATM      (NDD_ATM): ndd.atm.AtmDemuxer

What a user gets is its ns_user's `pkt_format` (<sys/cdli.h>; the rules of AIX's Ethernet
demuxer and common 802.2 demuxer, IBM "Packet Format Registration Specifics"):
  Ethernet II frame (NS_ETHERTYPE)   the 14-octet MAC header is removed unless NS_INCLUDE_MAC
  802.3 + 802.2 LLC (DSAP, SNAP)     NS_PROTO removes MAC + LLC (3 octets; a SNAP header stays),
                                     NS_PROTO_SNAP MAC + LLC + SNAP (8), NS_INCLUDE_LLC the MAC
                                     header only, NS_INCLUDE_MAC nothing
  An LLC frame without SNAP under NS_PROTO_SNAP loses MAC + LLC only (AIX's demuxer would cut
  8 octets whatever the frame holds; we do not eat five octets of data).  Whatever is removed,
  the MAC addresses travel in pkt.ll_dst / pkt.ll_src.
Delivery (AIX IFSTUFF_AND_DELIVER): a user with an `ifp` whose IFF_UP is clear loses the
frame (counted in ndd_ipackets_drop); a user with a `protoq` has the frame queued there
(dropped when full, counted in ifq_drops and nd_dmxstats.nd_nobufs) and its `netisr` scheduled; any other user's
`isr(nddp, pkt, isr_data)` is called.
"""
from __future__ import annotations

import errno
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import constants as C
from .ndd import BROADCAST_MAC, Ndd, ndd_error
from .pktbuf import PacketBuffer

# pkt_format values (<sys/cdli.h>), also importable from here as before
NS_PROTO = C.NS_PROTO
NS_PROTO_SNAP = C.NS_PROTO_SNAP
NS_INCLUDE_LLC = C.NS_INCLUDE_LLC
NS_INCLUDE_MAC = C.NS_INCLUDE_MAC
PKT_FORMATS = frozenset({NS_PROTO, NS_PROTO_SNAP, NS_INCLUDE_LLC, NS_INCLUDE_MAC})

IFF_UP = 0x1          # <net/if.h>: what an ns_user's ifp must have set to receive
IFQ_MAXLEN = 50       # <net/if.h>: a protocol input queue's default bound
ETHER_HDRLEN = 14     # ie3_mac_hdr / ether_header
LLC_HDRLEN = 3        # ie2_llc_hdr: DSAP, SSAP, control
LLC_SNAP_HDRLEN = 8   # ie2_llc_snaphdr: the LLC, then the SNAP OUI (3) and type (2)

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


IsrFn = Callable[[Ndd, PacketBuffer, Any], None]


@dataclass(eq=False)
class IfQueue:
    """struct ifqueue: a bounded protocol input queue of (nddp, pkt), the `protoq` of an
    ns_user whose frames a network software interrupt (`netisr`) processes."""
    ifq_maxlen: int = IFQ_MAXLEN
    ifq_drops: int = 0
    items: deque[tuple[Ndd, PacketBuffer]] = field(default_factory=deque)

    @property
    def ifq_len(self) -> int:
        return len(self.items)

    def enqueue(self, ndd: Ndd, pkt: PacketBuffer) -> bool:
        """IF_ENQUEUE, or IF_DROP (False) when IF_QFULL."""
        if len(self.items) >= self.ifq_maxlen:
            self.ifq_drops += 1
            return False
        self.items.append((ndd, pkt))
        return True

    def dequeue(self) -> tuple[Ndd, PacketBuffer] | None:
        """IF_DEQUEUE: the oldest entry, or None when empty."""
        return self.items.popleft() if self.items else None


@dataclass(eq=False)
class NsUser:
    """ns_user (<sys/cdli.h>): isr, isr_data, protoq, pkt_format, netisr, ifp.  Positionally
    (isr, isr_data, pkt_format) as tunstack's callers have always written it; the rest by
    keyword.  `isr` may be None for a user that has a `protoq` and a `netisr` (as on AIX:
    EINVAL for no isr and no netisr, and for a protoq without a netisr)."""
    isr: IsrFn | None
    isr_data: Any = None
    pkt_format: int = NS_PROTO
    protoq: IfQueue | None = None
    netisr: int = 0                 # the software interrupt schednetisr runs (NetServices.add_netisr)
    ifp: Any = None                 # the ifnet of a socket user: frames only while its IFF_UP is set


def check_user(user: NsUser) -> None:
    """What AIX's demuxers check in nd_add_filter, and the formats tunstack presents."""
    if user.isr is None and not user.netisr:
        raise ndd_error(errno.EINVAL, "ns_user has neither an isr nor a netisr")
    if user.protoq is not None and not user.netisr:
        raise ndd_error(errno.EINVAL, "ns_user has a protoq but no netisr")
    if user.protoq is None and user.isr is None:
        raise ndd_error(errno.EINVAL, "ns_user has a netisr but no protoq to queue on")
    if user.pkt_format & C.NS_HANDLE_NON_UI:
        raise ndd_error(errno.EINVAL, "NS_HANDLE_NON_UI (XID/TEST answered by the demuxer) is not implemented")
    if user.pkt_format not in PKT_FORMATS:
        raise ndd_error(errno.EINVAL, f"pkt_format {user.pkt_format:#x}")


class Demuxer:
    """Base: filter table per NDD and status users; subclasses parse link headers."""

    filter_types: frozenset[int] = frozenset()

    def __init__(self) -> None:
        self.filters: dict[str, dict[tuple, NsUser]] = {}
        self.taps: dict[str, list[tuple[NsFilter, NsUser]]] = {}
        # schednetisr of the network services that installed this demuxer (ns_add_demux)
        self.schednetisr: Callable[[int], None] = lambda n: None

    def add_filter(self, ndd: Ndd, flt: NsFilter, user: NsUser) -> None:
        if flt.filtertype not in self.filter_types:
            raise ndd_error(errno.EINVAL, f"filter type {flt.filtertype} not supported on {ndd.ndd_name}")
        check_user(user)
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
            self.deliver(ndd, pkt.copy(), user)

    def deliver(self, ndd: Ndd, pkt: PacketBuffer, user: NsUser) -> None:
        """Hand `pkt` to `user` (module doc: ifp, protoq and netisr, or isr)."""
        if user.ifp is not None and not user.ifp.flags & IFF_UP:
            ndd.stats.ndd_ipackets_drop += 1
            return
        if user.protoq is None:
            user.isr(ndd, pkt, user.isr_data)  # type: ignore[misc]   # check_user: set when protoq is not
        elif user.protoq.enqueue(ndd, pkt):
            self.schednetisr(user.netisr)
        else:
            ndd.ndd_nsdemux.nd_dmxstats.nd_nobufs += 1     # no room on the protoq

    def specdemux(self, ndd: Ndd) -> dict[tuple, NsUser]:
        """This demuxer's control for `ndd` (its `ndd_specdemux`): the filter table."""
        return self.filters.setdefault(ndd.ndd_name, {})

    def receive(self, ndd: Ndd, pkt: PacketBuffer) -> None:
        raise NotImplementedError


class EtherDemuxer(Demuxer):
    """Ethernet II by ethertype; 802.3 frames by LLC DSAP or SNAP (RFC 1042)."""

    filter_types = frozenset({C.NS_ETHERTYPE, C.NS_8022_LLC_DSAP, C.NS_8022_LLC_DSAP_SNAP, C.NS_TAP})

    def receive(self, ndd: Ndd, pkt: PacketBuffer) -> None:
        if len(pkt) < 14:
            ndd.stats.ndd_ibadpackets += 1
            return
        if ndd.ndd_name in self.taps:
            self._tap(ndd, pkt)
        view = pkt.view()
        dst = bytes(view[0:6])
        if not ndd.accepts_destination(dst):
            ndd.stats.ndd_ipackets_drop += 1
            return
        if dst[0] & 1:
            if dst == BROADCAST_MAC:
                ndd.ndd_nsdemux.nd_dmxstats.nd_bcast += 1
            else:
                ndd.ndd_nsdemux.nd_dmxstats.nd_mcast += 1
            pkt.ll_bcast = True
        (etype,) = struct.unpack_from("!H", view, 12)
        table = self.filters.get(ndd.ndd_name, {})
        llc = 0          # the 802.2 header's length: 0 (Ethernet II), LLC_HDRLEN or LLC_SNAP_HDRLEN
        if etype >= 0x0600:
            user = table.get((C.NS_ETHERTYPE, etype))
        elif len(pkt) >= 17:
            # 802.3 length field + 802.2 LLC
            if etype < len(pkt) - 14:
                pkt.trim(14 + etype)  # drop padding beyond the 802.3 length
            if len(pkt) < 17:
                # a length field too short for DSAP/SSAP/control: pulling 17 would leave len < 0
                ndd.stats.ndd_ibadpackets += 1
                return
            dsap = view[14]
            if dsap == 0xAA and len(pkt) >= 22 and view[16] == 0x03:
                key = (C.NS_8022_LLC_DSAP_SNAP, 0xAA, bytes(view[17:20]), struct.unpack_from("!H", view, 20)[0])
                user = table.get(key)
                llc = LLC_SNAP_HDRLEN
            else:
                user = table.get((C.NS_8022_LLC_DSAP, dsap))
                llc = LLC_HDRLEN
        else:
            ndd.stats.ndd_ibadpackets += 1
            return
        if user is None:
            ndd.ndd_nsdemux.nd_dmxstats.nd_nofilter += 1
            return
        fmt = user.pkt_format
        pkt.ll_dst = dst
        pkt.ll_src = bytes(view[6:12])
        if fmt != NS_INCLUDE_MAC:
            if fmt == NS_INCLUDE_LLC or not llc:
                pkt.pull(ETHER_HDRLEN)
            elif fmt == NS_PROTO_SNAP:
                pkt.pull(ETHER_HDRLEN + llc)             # a frame without SNAP has none to remove
            else:
                pkt.pull(ETHER_HDRLEN + LLC_HDRLEN)      # NS_PROTO: the SNAP header stays
        if user.protoq is None and user.ifp is None:
            user.isr(ndd, pkt, user.isr_data)  # type: ignore[misc]   # deliver()'s common case, inline: per frame
        else:
            self.deliver(ndd, pkt, user)


class RawIpDemuxer(Demuxer):
    """Layer-3 devices (TUN, loopback): the frame is an IP packet; demux on the version nibble."""

    filter_types = frozenset({C.NS_IPVERSION, C.NS_TAP})

    def receive(self, ndd: Ndd, pkt: PacketBuffer) -> None:
        if ndd.ndd_name in self.taps:
            self._tap(ndd, pkt)
        if len(pkt) < 1:
            ndd.stats.ndd_ibadpackets += 1
            return
        user = self.filters.get(ndd.ndd_name, {}).get((C.NS_IPVERSION, pkt.buf[pkt.start] >> 4))
        if user is None:
            ndd.ndd_nsdemux.nd_dmxstats.nd_nofilter += 1
            return
        if user.protoq is None and user.ifp is None:
            user.isr(ndd, pkt, user.isr_data)  # type: ignore[misc]   # deliver()'s common case, inline: per frame
        else:
            self.deliver(ndd, pkt, user)
