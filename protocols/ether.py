"""Ethernet II framing (IEEE 802.3 / RFC 894) and the Ethernet link output."""
from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ndd.pktbuf import PacketBuffer

from .addr import MAC_BROADCAST, is_multicast, multicast_mac

if TYPE_CHECKING:
    from ndd.ndd import Ndd

    from .arp import ArpCache
    from .ifnet import Interface

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
    """IPv4 over Ethernet: choose the destination MAC (broadcast, multicast, ARP) and send."""

    def __init__(self, ifp: Interface, ndd: Ndd, arp: ArpCache) -> None:
        self.ifp = ifp
        self.ndd = ndd
        self.arp = arp

    def output(self, pkt: PacketBuffer, nexthop: int, now: float) -> int:
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


class RawIpLink:
    """Layer-3 devices (TUN, loopback): the IP packet is the frame."""

    def __init__(self, ndd: Ndd) -> None:
        self.ndd = ndd

    def output(self, pkt: PacketBuffer, nexthop: int, now: float) -> int:
        return self.ndd.ndd_output(pkt)


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
