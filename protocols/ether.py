"""Ethernet II framing (IEEE 802.3 / RFC 894) and the Ethernet link output."""
from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ndd.pktbuf import PacketBuffer

from .addr import MAC_BROADCAST, is_multicast, multicast_mac
from .arp import REACHABLE
from .ipv6.addr import multicast_mac as ipv6_multicast_mac
from .ipv6.nd import REACHABLE as ND_REACHABLE

if TYPE_CHECKING:
    from ndd.ndd import Ndd

    from .arp import ArpCache
    from .ifnet import Interface
    from .ipv6.nd import NeighborCache

ETH_HLEN = 14
ETH_ZLEN = 60           # minimum frame without FCS; shorter frames are padded
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_VLAN = 0x8100
ETHERTYPE_IPV6 = 0x86DD

_HDR = struct.Struct("!6s6sH")


@dataclass(slots=True)
class EthernetRepr:
    dst: bytes
    src: bytes
    ethertype: int

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> EthernetRepr | None:
        """None when the frame cannot hold a header."""
        if len(data) < ETH_HLEN:
            return None
        dst, src, etype = _HDR.unpack_from(data, 0)
        return cls(dst, src, etype)

    def emit(self, into: memoryview | bytearray) -> None:
        _HDR.pack_into(into, 0, self.dst, self.src, self.ethertype)


def frame(pkt: PacketBuffer, dst: bytes, src: bytes, ethertype: int) -> PacketBuffer:
    """Prepend an Ethernet header in the headroom (no copy of the payload)."""
    _HDR.pack_into(pkt.prepend(ETH_HLEN), 0, dst, src, ethertype)
    return pkt


class EtherLink:
    """IP over Ethernet: choose the destination MAC -- IPv4: broadcast, multicast (RFC 1112
    §6.4), ARP; IPv6: multicast (RFC 2464 §7), Neighbor Discovery (`nd`, set when IPv6 is on)
    -- and send.  The family is the packet's version nibble."""

    def __init__(self, ifp: Interface, ndd: Ndd, arp: ArpCache) -> None:
        self.ifp = ifp
        self.ndd = ndd
        self.arp = arp
        self.nd: NeighborCache | None = None

    def output(self, pkt: PacketBuffer, nexthop: int, now: float) -> int:
        if pkt.buf[pkt.start] >> 4 == 6:
            return self._output6(pkt, nexthop, now)
        if self.ifp.is_broadcast(nexthop):
            dst = MAC_BROADCAST
        elif is_multicast(nexthop):
            dst = multicast_mac(nexthop)
        else:
            resolved = self.arp.resolve(nexthop, pkt, now)
            if resolved is None:
                return 0  # queued until ARP answers; a failure reaches the sender as EHOSTUNREACH
            dst = resolved
        return self.send(pkt, dst, ETHERTYPE_IPV4)

    def send(self, pkt: PacketBuffer, dst: bytes, ethertype: int) -> int:
        return self.ndd.ndd_output(frame(pkt, dst, self.ndd.ndd_physaddr, ethertype))

    def cached_header(self, nexthop: int) -> bytes | None:
        """contracts.LinkOutput: the Ethernet header while ARP's entry for `nexthop` is
        REACHABLE (a STALE one's use sends a probe: output() does that) and the device
        gathers with no tap to show the frame to."""
        entry = self.arp.entries.get(nexthop)
        ndd = self.ndd
        if entry is None or entry.state != REACHABLE or ndd.taps or not ndd.caps.gather \
                or is_multicast(nexthop) or self.ifp.is_broadcast(nexthop):    # (output() never asks ARP)
            return None
        return entry.mac + ndd.ndd_physaddr + b"\x08\x00"

    def cached_header6(self, nexthop: int, src: int, now: float) -> bytes | None:
        """contracts.LinkOutput: the Ethernet header while ND's entry for `nexthop` is
        REACHABLE and within its time (a STALE one's use starts DELAY: output() does that),
        noting `src` for its next solicitation as NeighborCache.resolve does."""
        nd, ndd = self.nd, self.ndd
        entry = nd.entries.get(nexthop) if nd is not None else None
        if entry is None or entry.state != ND_REACHABLE or now >= entry.deadline or ndd.taps \
                or not ndd.caps.gather or nexthop >> 120 == 0xFF:
            return None
        entry.src_hint = src
        return entry.mac + ndd.ndd_physaddr + b"\x86\xdd"

    def output_to(self, pkt: PacketBuffer, lladdr: bytes, now: float) -> int:
        """An IP packet (either family, by its version nibble) to the MAC `lladdr`, with no
        ARP or ND (contracts.LinkAddressOutput): EINVAL unless `lladdr` is 6 octets."""
        if len(lladdr) != 6:
            return errno.EINVAL
        ethertype = ETHERTYPE_IPV6 if pkt.buf[pkt.start] >> 4 == 6 else ETHERTYPE_IPV4
        return self.send(pkt, bytes(lladdr), ethertype)

    def _output6(self, pkt: PacketBuffer, nexthop: int, now: float) -> int:
        if nexthop >> 120 == 0xFF:
            return self.send(pkt, ipv6_multicast_mac(nexthop), ETHERTYPE_IPV6)
        if self.nd is None:
            return errno.ENETDOWN         # IPv6 is not on this interface
        # §7.2.2: the NS that resolves the next hop goes from the waiting packet's source
        src = int.from_bytes(pkt.buf[pkt.start + 8:pkt.start + 24], "big")
        resolved = self.nd.resolve(nexthop, pkt, now, src)
        if resolved is None:
            return 0  # queued until ND answers; a failure reaches the sender as EHOSTUNREACH
        return self.send(pkt, resolved, ETHERTYPE_IPV6)

    def send_ipv6(self, pkt: PacketBuffer, dst: bytes) -> int:
        """An IPv6 packet to a known link-layer address (ND's own messages, resolved packets)."""
        return self.send(pkt, dst, ETHERTYPE_IPV6)


class RawIpLink:
    """Layer-3 devices (TUN, loopback): the IP packet is the frame."""

    def __init__(self, ndd: Ndd) -> None:
        self.ndd = ndd

    def output(self, pkt: PacketBuffer, nexthop: int, now: float) -> int:
        return self.ndd.ndd_output(pkt)

    def cached_header(self, nexthop: int) -> bytes | None:
        """contracts.LinkOutput: none to add, when the device gathers with no tap."""
        ndd = self.ndd
        return b"" if ndd.caps.gather and not ndd.taps else None

    def cached_header6(self, nexthop: int, src: int, now: float) -> bytes | None:
        return self.cached_header(nexthop)


def is_unicast_mac(mac: bytes) -> bool:
    return len(mac) == 6 and not mac[0] & 1 and mac != b"\x00" * 6


__all__ = [
    "ETHERTYPE_ARP",
    "ETHERTYPE_IPV4",
    "ETHERTYPE_IPV6",
    "ETH_HLEN",
    "EtherLink",
    "EthernetRepr",
    "RawIpLink",
    "errno",
    "frame",
    "is_unicast_mac",
]
