"""UDP's protocol control blocks: what a socket owns (its queue, its name and peer, its
options), for AF_INET (`UdpPcb`) and AF_INET6 (`Udp6Pcb`), and the counters (`UdpStats`)."""
from __future__ import annotations

import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ndd.counters import Counters

from ..ipv6.addr import V4_MAPPED_PREFIX
from ..sockopt import BUF_DEFAULT, DEFAULT_MULTICAST_HOPS

DATAGRAM_OVERHEAD = 768                      # charged per queued datagram, like skb truesize
INADDR_LOOPBACK = 0x7F000001
IPV6_MULTICAST_ALL = 29                      # <linux/in6.h>: deliver groups this socket did not join
IPV6_PMTUDISC_DONT, IPV6_PMTUDISC_WANT, IPV6_PMTUDISC_DO = 0, 1, 2
IPV6_PMTUDISC_INTERFACE, IPV6_PMTUDISC_OMIT = 4, 5
# Linux charges each IPV6_JOIN_GROUP to net.core.optmem_max (ENOBUFS when spent); a fixed
# number of memberships per socket bounds the same thing here
MAX_MEMBERSHIPS6 = 64


class PcbOwner(Protocol):
    """What a pcb reads of the UDP core that makes it (protocols/udp/udp.py Udp)."""
    bindv6only: bool            # net.ipv6.bindv6only: IPV6_V6ONLY's default


@dataclass
class UdpStats(Counters):
    """RFC 4113 udp MIB names, lower-cased, plus Linux's extras."""
    in_datagrams: int = 0
    no_ports: int = 0
    in_errors: int = 0
    in_csum_errors: int = 0
    in_truncated: int = 0
    rcvbuf_errors: int = 0
    out_datagrams: int = 0
    out_errors: int = 0
    icmp_no_socket: int = 0     # ICMP error quoting ports no socket of ours has (Linux: ICMP InErrors)
    icmp_ignored: int = 0       # quoting an unconnected socket: Linux tells only connected ones
    in_csum_zero: int = 0       # IPv6 with a zero checksum (RFC 8200 §8.1), also in in_csum_errors
    ignored_multi: int = 0      # IPv6 to a group no socket takes (Linux IgnoredMulti)
    forwarded: int = 0          # datagrams no socket took, handed to udp.forwarder (a gateway)
    forward_out: int = 0        # datagrams sent by forward_send (from a remote's address)
    forward_icmp: int = 0       # errors asked for by forward_error (before the ICMP rate limits)


class UdpPcb:
    """One UDP endpoint.  Addresses are ints; 0 means wildcard / unset."""
    family = socket.AF_INET
    inet4 = True                # the association runs over IPv4 (Udp6Pcb: may be False)
    v6only = False
    bound_ifindex = 0           # sk_bound_dev_if (an AF_INET6 scope id)

    def __init__(self, udp: PcbOwner) -> None:
        self.laddr = 0
        self.lport = 0
        self.faddr = 0
        self.fport = 0
        self.bound_addr = False     # SOCK_BINDADDR_LOCK: the address came from bind()
        self.bound_port = False     # SOCK_BINDPORT_LOCK: the port came from bind()
        self.reuseaddr = False
        self.reuseport = False
        self.broadcast = False
        self.keepalive = False      # SO_KEEPALIVE: stored and read back, meaningless for UDP (as Linux)
        self.rcvbuf = BUF_DEFAULT
        self.sndbuf = BUF_DEFAULT
        self.queue: deque[tuple[bytes, tuple[int, ...]]] = deque()
        self.queued = 0
        self.so_error = 0
        self.ttl: int | None = None
        self.tos = 0
        self.transparent = False    # IP_TRANSPARENT / IPV6_TRANSPARENT: bind to a foreign address
        self.on_readable: Callable[[], None] = lambda: None
        self.closed = False

    @property
    def connected(self) -> bool:
        return self.fport != 0

    # --- receive side -------------------------------------------------------------
    def enqueue(self, data: bytes, src: tuple[int, ...]) -> bool:
        cost = len(data) + DATAGRAM_OVERHEAD
        if self.queued + cost > self.rcvbuf:
            return False
        self.queue.append((data, src))
        self.queued += cost
        self.on_readable()
        return True

    def dequeue(self) -> tuple[bytes, tuple[int, ...]] | None:
        if not self.queue:
            return None
        data, src = self.queue.popleft()
        self.queued -= len(data) + DATAGRAM_OVERHEAD
        return data, src

    def take_error(self) -> int:
        err, self.so_error = self.so_error, 0
        return err


class Udp6Pcb(UdpPcb):
    """The pcb of an AF_INET6 socket.  `inet4` False: in `Udp.ports6` with 128-bit addresses
    (0 is ::); True: bound or connected to an IPv4-mapped address, in `Udp.ports` with the
    32-bit ones.  Its queue holds the sender as the 4-tuple the socket returns."""
    family = socket.AF_INET6

    def __init__(self, udp: PcbOwner) -> None:
        super().__init__(udp)
        self.inet4 = False
        self.bound_mapped = False   # bound to ::ffff:a.b.c.d: IPv4 for good
        self.v6only = udp.bindv6only
        self.bound_ifindex = 0
        # IPPROTO_IPV6 options (protocols/sockopt.py), Linux's defaults
        self.recverr6 = False
        self.dontfrag = False
        self.hop_limit: int | None = None
        self.mcast_hops = DEFAULT_MULTICAST_HOPS
        self.tclass = 0
        self.pmtudisc = IPV6_PMTUDISC_WANT
        self.mc_all = True          # IPV6_MULTICAST_ALL, on by default in Linux
        self.memberships: dict[tuple[int, int], None] = {}    # (ifindex, group), insertion-ordered

    def enqueue(self, data: bytes, src: tuple[int, ...]) -> bool:
        """From the IPv4 input: the sender shows as ::ffff:a.b.c.d (Linux udp_recvmsg)."""
        return UdpPcb.enqueue(self, data, (V4_MAPPED_PREFIX | src[0], src[1], 0, 0))

    enqueue6 = UdpPcb.enqueue       # from the IPv6 input: already the 4-tuple

    def joined(self, group: int) -> bool:
        return any(g == group for _, g in self.memberships)


