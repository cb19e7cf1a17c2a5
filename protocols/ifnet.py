"""The interface table: one Interface per NDD the stack uses (BSD `struct ifnet`)."""
from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .addr import BROADCAST, int_to_ip, prefix_mask
from .contracts import LinkAddressOutput, LinkOutput

if TYPE_CHECKING:
    from ndd.ndd import Ndd
    from ndd.pktbuf import PacketBuffer

IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_LOOPBACK = 0x8
IFF_POINTOPOINT = 0x10
IFF_RUNNING = 0x40
IFF_NOARP = 0x80
IFF_MULTICAST = 0x1000


@dataclass(frozen=True)
class IfAddr:
    """An interface address; its mask, network and broadcast are worked out once (the input
    path tests every packet's source against them: issue 15)."""
    addr: int
    prefixlen: int
    netmask: int = field(init=False, compare=False)
    network: int = field(init=False, compare=False)
    broadcast: int = field(init=False, compare=False)
    directed_broadcast: bool = field(init=False, compare=False)   # a /30 or shorter has one

    def __post_init__(self) -> None:
        mask = prefix_mask(self.prefixlen)
        set_ = object.__setattr__
        set_(self, "netmask", mask)
        set_(self, "network", self.addr & mask)
        set_(self, "broadcast", (self.addr & mask) | (~mask & 0xFFFFFFFF) if self.prefixlen < 31 else BROADCAST)
        set_(self, "directed_broadcast", self.prefixlen < 31)

    def __str__(self) -> str:
        return f"{int_to_ip(self.addr)}/{self.prefixlen}"


@dataclass(eq=False)
class Interface:
    name: str
    ndd: Ndd
    index: int
    mtu: int
    flags: int = 0
    addrs: list[IfAddr] = field(default_factory=list)
    link: LinkOutput | None = None
    # A gateway's interface (issue 13, `tunstack gateway`; gVisor netstack's promiscuous +
    # spoofing NIC, Linux's IP_TRANSPARENT/TPROXY together): every unicast destination that
    # arrives on it is the host's -- IPv4 and IPv6 input deliver it to the transports, whose
    # forwarder hooks (tcp.forwarder, udp.forwarder, icmp.forwarder) hand it to the owner --
    # and the host may send from any source address through it.  Broadcast and multicast are
    # untouched; only the interface's own addresses are answered by the stack itself (echo).
    transparent: bool = False

    @property
    def is_up(self) -> bool:
        return self.flags & (IFF_UP | IFF_RUNNING) == IFF_UP | IFF_RUNNING

    @property
    def primary(self) -> int | None:
        return self.addrs[0].addr if self.addrs else None

    def is_broadcast(self, addr: int) -> bool:
        if addr == BROADCAST:
            return True
        for a in self.addrs:    # noqa: SIM110  (a plain loop: any() over a generator costs more per packet)
            if a.broadcast == addr and a.directed_broadcast:
                return True
        return False

    def transmit(self, pkt: PacketBuffer, nexthop: int, now: float) -> int:
        """Hand a network-layer packet to this interface's link output (any family): 0 or an
        errno, ENETDOWN when the interface is down or has no link."""
        if not self.is_up or self.link is None:
            return errno.ENETDOWN
        return self.link.output(pkt, nexthop, now)

    def transmit_to(self, pkt: PacketBuffer, lladdr: bytes, now: float) -> int:
        """Hand a network-layer packet to this interface's link for the link-layer address
        `lladdr`, unresolved (contracts.LinkAddressOutput): ENETDOWN as `transmit`, EOPNOTSUPP
        on a link without link-layer addresses (TUN, loopback, CLIP)."""
        if not self.is_up or self.link is None:
            return errno.ENETDOWN
        if not isinstance(self.link, LinkAddressOutput):
            return errno.EOPNOTSUPP
        return self.link.output_to(pkt, lladdr, now)

    def source_for(self, dst: int) -> int | None:
        """An address of ours on dst's subnet, else the primary one."""
        for a in self.addrs:
            if dst & a.netmask == a.network:
                return a.addr
        return self.primary


class InterfaceTable:
    def __init__(self) -> None:
        self.by_name: dict[str, Interface] = {}
        self.local_addrs: dict[int, Interface] = {}   # our unicast addresses -> owner
        self._next_index = 1
        # bumped by every change to the interfaces, their addresses or their up/running
        # flags (touch()): routes cached elsewhere (a TCP connection's) are then stale
        self.gen = 0

    def touch(self) -> None:
        """An interface changed (its flags): cached routes are stale."""
        self.gen += 1

    def create(self, name: str, ndd: Ndd, mtu: int, flags: int) -> Interface:
        if name in self.by_name:
            raise OSError(errno.EEXIST, os.strerror(errno.EEXIST))
        ifp = Interface(name, ndd, self._next_index, mtu, flags)
        self.gen += 1
        self._next_index += 1
        self.by_name[name] = ifp
        return ifp

    def remove(self, ifp: Interface) -> None:
        self.gen += 1
        self.by_name.pop(ifp.name, None)
        for a in ifp.addrs:
            self.local_addrs.pop(a.addr, None)

    def add_address(self, ifp: Interface, addr: int, prefixlen: int) -> IfAddr:
        if addr in self.local_addrs:
            raise OSError(errno.EEXIST, os.strerror(errno.EEXIST))
        ia = IfAddr(addr, prefixlen)
        self.gen += 1
        ifp.addrs.append(ia)
        self.local_addrs[addr] = ifp
        return ia

    def get(self, name: str) -> Interface:
        try:
            return self.by_name[name]
        except KeyError:
            raise OSError(errno.ENODEV, f"{os.strerror(errno.ENODEV)}: {name}") from None

    def is_local(self, addr: int) -> bool:
        return addr in self.local_addrs

    def __iter__(self) -> Iterator[Interface]:
        return iter(self.by_name.values())
