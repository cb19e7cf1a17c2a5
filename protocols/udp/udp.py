"""UDP (RFC 768, host requirements RFC 1122 §4.1) and its protocol control blocks.

Sans-IO: a `UdpPcb` is what a socket owns; the socket layer (stack/socket.py) waits
on it through the `on_readable` hook.  Linux is the reference for everything the
RFCs leave open:
  * demultiplexing scores candidates like udp4_lib_lookup (a connected or address-bound
    socket beats a wildcard one); SO_REUSEPORT groups spread flows by 4-tuple hash;
  * bind conflicts: same port and overlapping address, unless both sockets set
    SO_REUSEADDR or both set SO_REUSEPORT;
  * ICMP errors reach only connected sockets (no IP_RECVERR), as so_error, reported
    once by the next call;
  * disconnect (connect to AF_UNSPEC) forgets an auto-bound port and a source address
    that connect chose.

IPv6 (when the owner gives the core an `ipv6` layer) and AF_INET6 sockets, dual stack as
Linux (net/ipv6/udp.c, net/ipv6/datagram.c, net/ipv6/af_inet6.c):
  * `input6` / `ctlinput6` are the AF_INET6 protosw entry's pr_input / pr_ctlinput; the
    checksum is mandatory (RFC 8200 §8.1: a zero one is dropped and counted), a datagram
    nobody listens for gets an ICMPv6 port unreachable (RFC 4443 §3.1 code 4), never one sent
    to a group;
  * an AF_INET6 pcb (`Udp6Pcb`) lives in `ports6` with 128-bit addresses, unless it is bound
    or connected to an IPv4-mapped address: then its association runs over IPv4 and it lives
    in `ports` with 32-bit addresses, as an AF_INET pcb (Linux hands a mapped destination
    to udp_sendmsg / ip4_datagram_connect); only its sockaddr shapes are IPv6;
  * IPv4 input finds the IPv4 pcbs first and, on a miss only (or for a broadcast), the
    unconnected `::` pcbs without IPV6_V6ONLY, which see the sender as ::ffff:a.b.c.d --
    so the IPv4 hot path pays one dict truth test when no AF_INET6 socket exists;
  * one port space: binds of either family are checked against both tables with Linux's
    overlap rule (inet6sock.rcv_saddr_equal).
"""
from __future__ import annotations

import errno
import random
import socket
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from ndd.checksum import ones_sum, pseudo_header_sum
from ndd.pktbuf import GSO_UDP_L4, PacketBuffer

from ..addr import BROADCAST, is_multicast
from ..icmpv6.wire import DEST_UNREACH as ICMP6_DEST_UNREACH
from ..icmpv6.wire import PACKET_TOO_BIG as ICMP6_PACKET_TOO_BIG
from ..icmpv6.wire import UNREACH_PORT as ICMP6_UNREACH_PORT
from ..inet6sock import LOOPBACK4_IPV6, BindKey, Ipv6Mreq, needs_scope_id, rcv_saddr_equal
from ..ipv4 import HDR_LEN, IPPROTO_UDP, IpMeta, Ipv4
from ..ipv6.addr import LOOPBACK as LOOPBACK6
from ..ipv6.addr import V4_MAPPED_PREFIX, is_v4_mapped
from ..ipv6.addr import is_link_local as is_link_local6
from ..ipv6.addr import is_multicast as is_multicast6
from ..ipv6.wire import HDR_LEN as IP6_HDR_LEN
from ..ipv6.wire import MAX_PAYLOAD_LEN as IP6_MAX_PAYLOAD_LEN
from ..ipv6.wire import pseudo_header_sum as pseudo_header_sum6
from ..ports import EphemeralPorts
from .forward import ICMP6_CODES, ICMP_CODES, UdpForward, invoking_datagram4, invoking_datagram6
from .pcb import (
    INADDR_LOOPBACK,
    IPV6_PMTUDISC_DO,
    IPV6_PMTUDISC_DONT,
    IPV6_PMTUDISC_INTERFACE,
    IPV6_PMTUDISC_OMIT,
    MAX_MEMBERSHIPS6,
    Udp6Pcb,
    UdpPcb,
    UdpStats,
)
from .wire import _HDR, MAX_PAYLOAD, MAX_PAYLOAD6, UDP_HLEN, UdpRepr, udp6_checksum, udp_checksum

if TYPE_CHECKING:
    from ..icmp import IcmpError
    from ..icmpv6.core import Icmpv6Error
    from ..ifnet import Interface
    from ..ipv6.ip6 import Ip6Meta, Ipv6



class Udp:
    def __init__(self, ipv4: Ipv4, rng: random.Random, ipv6: Ipv6 | None = None, *,
                 interface_by_index: Callable[[int], Interface | None] | None = None,
                 bindv6only: bool = False) -> None:
        self.ipv4 = ipv4
        self.rng = rng
        self.stats = UdpStats()
        self.ports: dict[int, list[UdpPcb]] = {}
        self.ephemeral = EphemeralPorts(rng)
        self._hash_salt = rng.getrandbits(32)
        # --- IPv6 (None: IPv4 only).  AF_INET6 pcbs on IPv6 addresses, by port: never in
        # `ports`, whose keys would collide (::1 == 1); one port space across both tables
        self.ipv6 = ipv6
        self.ports6: dict[int, list[UdpPcb]] = {}
        self.bindv6only = bindv6only            # net.ipv6.bindv6only: IPV6_V6ONLY's default
        # a scope id names an interface by index (the Stack's table; by default IPv4's)
        self.interface_by_index: Callable[[int], Interface | None] = \
            interface_by_index or self._interface_by_index
        # IPV6_JOIN_GROUP / IPV6_LEAVE_GROUP tell the host's MLD (RFC 3810) through these:
        # (ifindex, group, now) -> 0 or an errno; the Stack connects them, no-ops until then
        self.join_group: Callable[[int, int, float], int] = lambda ifindex, group, now: 0
        self.leave_group: Callable[[int, int, float], int] = lambda ifindex, group, now: 0
        # A gateway's catch-all (forward.py, issue 13): set, a unicast datagram no socket takes
        # goes to it instead of drawing a port unreachable; its replies leave by forward_send
        self.forwarder: Callable[[UdpForward], None] | None = None

    def _interface_by_index(self, index: int) -> Interface | None:
        return next((ifp for ifp in self.ipv4.ifnet if ifp.index == index), None)

    # --- binding ----------------------------------------------------------------------
    def _conflicts(self, pcb: UdpPcb, addr: int, port: int) -> bool:
        for other in self.ports.get(port, ()):
            if other is pcb:
                continue
            if other.laddr and addr and other.laddr != addr:
                continue
            if (pcb.reuseaddr and other.reuseaddr) or (pcb.reuseport and other.reuseport):
                continue
            return True
        return False

    def bind(self, pcb: UdpPcb, addr: int, port: int, *, explicit: bool = True) -> int:
        """Returns 0 or an errno.  Port 0 picks an ephemeral port."""
        if pcb.lport:
            return errno.EINVAL
        if addr and not (self.ipv4.ifnet.is_local(addr) or addr == BROADCAST or is_multicast(addr)
                         or addr >> 24 == 127 or pcb.transparent):
            return errno.EADDRNOTAVAIL          # IP_TRANSPARENT: any address (protocols/sockopt.py)
        if port == 0:
            port = self._ephemeral(pcb, addr)
            if port == 0:
                return errno.EAGAIN   # Linux: the ephemeral range is exhausted
        elif self._conflicts(pcb, addr, port) or (self.ports6 and self._conflicts_across(pcb, addr, port)):
            return errno.EADDRINUSE
        pcb.laddr, pcb.lport = addr, port
        if explicit:
            pcb.bound_addr = addr != 0
            pcb.bound_port = True
        self.ports.setdefault(port, []).append(pcb)
        return 0

    def _ephemeral(self, pcb: UdpPcb, addr: int) -> int:
        for port in self.ephemeral.candidates():
            if port not in self.ports and port not in self.ports6:
                self.ephemeral.taken(port)
                return port
        for port in self.ephemeral.candidates():   # all in use by someone: share one without conflict
            if not self._conflicts(pcb, addr, port) and not self._conflicts_across(pcb, addr, port):
                return port
        return 0

    def unbind(self, pcb: UdpPcb) -> None:
        table = self.ports if pcb.inet4 else self.ports6
        users = table.get(pcb.lport)
        if users and pcb in users:
            users.remove(pcb)
            if not users:
                del table[pcb.lport]
        pcb.lport = 0

    # --- connect ----------------------------------------------------------------------
    def autobind(self, pcb: UdpPcb) -> int:
        """inet_autobind: Linux gives an unbound socket its ephemeral port before connect
        or sendmsg looks at anything else, so the port stays even if the call fails."""
        return self.bind(pcb, 0, 0, explicit=False) if not pcb.lport else 0

    def connect(self, pcb: UdpPcb, addr: int, port: int) -> int:
        """Store the destination (no packet is sent).  Auto-binds an unbound socket."""
        err = self.autobind(pcb)
        if err:
            return err
        hop = self.ipv4.route(addr, src=pcb.laddr)
        if isinstance(hop, int):
            return hop
        # like ip4_datagram_connect: the broadcast check follows the route lookup
        if (addr == BROADCAST or self._is_broadcast(addr)) and not pcb.broadcast:
            return errno.EACCES
        _, _, src = hop
        if pcb.transparent and self._foreign_source_blocked(pcb.laddr, hop[0]):
            return errno.EADDRNOTAVAIL
        if not pcb.laddr and src:
            pcb.laddr = src
        pcb.faddr, pcb.fport = addr, port
        return 0   # a pending so_error survives connect, as in Linux

    def disconnect(self, pcb: UdpPcb) -> None:
        pcb.faddr = pcb.fport = 0
        if not pcb.bound_addr:
            pcb.laddr = 0
        if not pcb.bound_port and pcb.lport:
            self.unbind(pcb)

    def _foreign_source_blocked(self, laddr: int, ifp: Interface) -> bool:
        """A socket bound by IP_TRANSPARENT to an address not ours sends from it only by a
        transparent interface, the one place replies to it are taken (Ipv4.input); Linux
        sends anyway and leaves the replies to TPROXY's policy routing, which this stack
        does not have.  Asked only of transparent sockets: the usual path pays nothing."""
        return bool(laddr) and not ifp.transparent and not (
            self.ipv4.ifnet.is_local(laddr) or laddr >> 24 == 127 or laddr == BROADCAST or is_multicast(laddr))

    def _is_broadcast(self, addr: int) -> bool:
        return any(ifp.is_broadcast(addr) for ifp in self.ipv4.ifnet)

    # --- output -----------------------------------------------------------------------
    def output(self, pcb: UdpPcb, data: bytes | bytearray | memoryview, dst: tuple[int, int] | None,
               now: float) -> int:
        """Send one datagram; returns 0 or an errno, checked in udp_sendmsg's order."""
        err = self.autobind(pcb)
        if err:
            return err
        if len(data) > 0xFFFF:
            return errno.EMSGSIZE
        if dst is None:
            if not pcb.connected:
                return errno.EDESTADDRREQ
            daddr, dport = pcb.faddr, pcb.fport
        else:
            daddr, dport = dst
            if dport == 0:
                return errno.EINVAL
        hop = self.ipv4.route(daddr, src=pcb.laddr)
        if isinstance(hop, int):
            self.stats.out_errors += 1
            return hop
        if (daddr == BROADCAST or self._is_broadcast(daddr)) and not pcb.broadcast:
            return errno.EACCES
        if len(data) > MAX_PAYLOAD:
            return errno.EMSGSIZE
        ifp, _, pref_src = hop
        if pcb.transparent and self._foreign_source_blocked(pcb.laddr, ifp):
            self.stats.out_errors += 1
            return errno.EADDRNOTAVAIL
        src = pcb.laddr if pcb.laddr and not is_multicast(pcb.laddr) and pcb.laddr != BROADCAST else pref_src or 0
        length = UDP_HLEN + len(data)
        pkt = PacketBuffer.from_payload(data)
        hdr = pkt.prepend(UDP_HLEN)
        if ifp.ndd.caps.tx_csum_offload and HDR_LEN + length <= ifp.mtu:
            # the device finishes it: leave the folded pseudo-header sum (virtio_net_hdr NEEDS_CSUM)
            _HDR.pack_into(hdr, 0, pcb.lport, dport, length, pseudo_header_sum(src, daddr, IPPROTO_UDP, length))
            pkt.csum_start, pkt.csum_offset = pkt.start, 6
        else:
            _HDR.pack_into(hdr, 0, pcb.lport, dport, length, 0)
            struct.pack_into("!H", hdr, 6, udp_checksum(src, daddr, pkt.view()))
        err = self.ipv4.output(pkt, src, daddr, IPPROTO_UDP, now, ttl=pcb.ttl, tos=pcb.tos)
        if err:
            self.stats.out_errors += 1
            return err
        self.stats.out_datagrams += 1
        return 0

    # --- input (pr_input) -------------------------------------------------------------
    def input(self, pkt: PacketBuffer, ip: IpMeta, now: float) -> None:
        view = pkt.view()
        hdr = UdpRepr.parse(view)
        if isinstance(hdr, str):
            self.stats.in_errors += 1
            self.stats.bump(hdr)
            return
        if hdr.length < len(view):
            pkt.trim(hdr.length)
            view = pkt.view()
        if hdr.checksum and not pkt.csum_valid and \
                ones_sum(view, pseudo_header_sum(ip.src, ip.dst, IPPROTO_UDP, hdr.length)) != 0xFFFF:
            self.stats.in_errors += 1
            self.stats.in_csum_errors += 1
            return
        payload = bytes(view[UDP_HLEN:])
        if pkt.gso_type == GSO_UDP_L4 and pkt.gso_size:
            # a UDP_SEGMENT super-frame from the kernel: the sender wrote gso_size datagrams
            step = pkt.gso_size
            datagrams = [payload[i:i + step] for i in range(0, len(payload), step)] or [b""]
        else:
            datagrams = [payload]
        src = (ip.src, hdr.src_port)
        if ip.bcast:
            targets = [p for p in self.ports.get(hdr.dst_port, ()) if self._score(p, ip, hdr) >= 0]
            if self.ports6:
                targets += self._dual_stack(ip, hdr)
        else:
            best = self._lookup(ip, hdr)
            if best is None and self.ports6:
                # Linux scores an IPv4 pcb above an AF_INET6 one as specific; those that take
                # IPv4 (`::` without V6ONLY, unconnected) are all wildcards: after every IPv4 pcb
                best = self._pick(self._dual_stack(ip, hdr), ip.src, hdr.src_port, ip.dst, hdr.dst_port)
            ifp = ip.ifp
            if best is not None and ifp is not None and ifp.transparent and not best.laddr \
                    and not self.ipv4.ifnet.is_local(ip.dst):
                best = None      # a wildcard socket takes only our own addresses (Linux, without TPROXY)
            targets = [best] if best is not None else []
        if not targets:
            if self.forwarder is not None and not ip.bcast:
                self._forward(socket.AF_INET, ip.src, hdr.src_port, ip.dst, hdr.dst_port, datagrams, ip.ifp, now)
                return
            self.stats.no_ports += 1
            self.ipv4.send_icmp_error(3, 3, pkt, ip, now, 0)   # port unreachable (RFC 1122 §4.1.3.1)
            return
        for pcb in targets:
            for data in datagrams:
                if pcb.enqueue(data, src):
                    self.stats.in_datagrams += 1
                else:
                    self.stats.rcvbuf_errors += 1
                    self.stats.in_errors += 1

    # --- the gateway's catch-all (forward.py) ------------------------------------------------------
    def _forward(self, family: int, src: int, sport: int, dst: int, dport: int, datagrams: list[bytes],
                 ifp: Interface | None, now: float) -> None:
        forwarder = self.forwarder
        if forwarder is None:
            return
        for data in datagrams:
            self.stats.forwarded += 1
            forwarder(UdpForward(family, src, sport, dst, dport, data, ifp, now))

    def forward_send(self, family: int, src: int, sport: int, dst: int, dport: int,
                     data: bytes | bytearray | memoryview, now: float) -> int:
        """Send one datagram from (`src`, `sport`) -- a remote's address, when the route to `dst`
        leaves by a transparent interface (Linux IP_TRANSPARENT), or one of ours -- to (`dst`,
        `dport`), the guest.  No socket is involved; the IP layer fragments what exceeds the
        MTU.  0 or an errno: EADDRNOTAVAIL for a source that may not be used, EMSGSIZE, the
        route's."""
        if not sport or not dport:
            return errno.EINVAL
        net: Ipv4 | Ipv6
        if family == socket.AF_INET6:
            if self.ipv6 is None:
                return errno.EAFNOSUPPORT
            net, limit, csum = self.ipv6, MAX_PAYLOAD6, udp6_checksum
            err = net.transparent_source(src, dst, now)
        else:
            net, limit, csum = self.ipv4, MAX_PAYLOAD, udp_checksum
            err = net.transparent_source(src, dst)
        if err:
            return err
        if len(data) > limit:
            return errno.EMSGSIZE
        pkt = PacketBuffer.from_payload(data)
        _HDR.pack_into(pkt.prepend(UDP_HLEN), 0, sport, dport, UDP_HLEN + len(data), 0)
        struct.pack_into("!H", pkt.view(), 6, csum(src, dst, pkt.view()))
        err = net.output(pkt, src, dst, IPPROTO_UDP, now)
        if err:
            self.stats.out_errors += 1
            return err
        self.stats.forward_out += 1
        return 0

    def forward_error(self, family: int, src: int, sport: int, dst: int, dport: int, kind: str, now: float, *,
                      mtu: int = 0, length: int = 0) -> int:
        """Tell the guest (`src`, `sport`) that its datagrams to (`dst`, `dport`) fail, as the
        network would: an ICMP destination unreachable -- `kind` "port", "host", "net",
        "admin" -- or "frag" with `mtu` (IPv4 fragmentation needed, RFC 1191; an IPv6 Packet
        Too Big, RFC 8201), quoting a datagram of the flow of `length` payload octets.  The
        ICMP cores' rules and rate limits apply (RFC 1122 §3.2.2, RFC 4443 §2.4).  0, or EINVAL
        for another kind / a missing MTU, the route's errno when the guest is unreachable."""
        if kind == "frag" and not mtu:
            return errno.EINVAL
        if family == socket.AF_INET6:
            ipv6 = self.ipv6
            if ipv6 is None:
                return errno.EAFNOSUPPORT
            if kind != "frag" and kind not in ICMP6_CODES:
                return errno.EINVAL
            hop6 = ipv6.route(src, now, None)
            if isinstance(hop6, int):
                return hop6
            quote = invoking_datagram6(src, sport, dst, dport, length)
            if kind == "frag":
                ipv6.icmp_error(ICMP6_PACKET_TOO_BIG, 0, mtu, quote, hop6.ifp, now)
            else:
                ipv6.icmp_error(ICMP6_DEST_UNREACH, ICMP6_CODES[kind], 0, quote, hop6.ifp, now)
            self.stats.forward_icmp += 1
            return 0
        code = ICMP_CODES.get(kind)
        if code is None:
            return errno.EINVAL
        hop = self.ipv4.route(src, src=dst)
        if isinstance(hop, int):
            return hop
        quote = invoking_datagram4(src, sport, dst, dport, length, df=kind == "frag")
        meta = IpMeta(src, dst, IPPROTO_UDP, 64, 0, HDR_LEN, hop[0], 0)
        self.ipv4.send_icmp_error(3, code, PacketBuffer(quote), meta, now, mtu & 0xFFFF if kind == "frag" else 0)
        self.stats.forward_icmp += 1
        return 0

    def _score(self, pcb: UdpPcb, ip: IpMeta, hdr: UdpRepr) -> int:
        """-1: no match.  Otherwise higher is more specific (Linux compute_score)."""
        score = 0
        if pcb.laddr:
            if pcb.laddr != ip.dst:
                return -1
            score += 4
        if pcb.faddr:
            if pcb.faddr != ip.src:
                return -1
            score += 4
        if pcb.fport:
            if pcb.fport != hdr.src_port:
                return -1
            score += 4
        return score

    def _lookup(self, ip: IpMeta, hdr: UdpRepr) -> UdpPcb | None:
        best: list[UdpPcb] = []
        best_score = -1
        for pcb in self.ports.get(hdr.dst_port, ()):
            s = self._score(pcb, ip, hdr)
            if s > best_score:
                best, best_score = [pcb], s
            elif s == best_score and s >= 0:
                best.append(pcb)
        if not best:
            return None
        group = [p for p in best if p.reuseport]
        if len(group) > 1 and len(group) == len(best):
            # SO_REUSEPORT: one flow always lands on the same socket
            return group[hash((self._hash_salt, ip.src, hdr.src_port, ip.dst, hdr.dst_port)) % len(group)]
        return best[-1]   # SO_REUSEADDR sharers: the most recently bound wins, as in Linux

    # --- ICMP errors (pr_ctlinput) -------------------------------------------------------
    def ctlinput(self, err: IcmpError, now: float) -> None:
        """An ICMP error about a datagram we sent: acted on only when the quoted ports and
        addresses name one of our sockets (RFC 5927 §5, Linux udp_err); otherwise counted."""
        if len(err.payload) < UDP_HLEN:
            self.stats.icmp_no_socket += 1
            return
        sport, dport = struct.unpack_from("!HH", err.payload, 0)
        matched = False
        for pcb in self.ports.get(sport, ()):
            if pcb.laddr and pcb.laddr != err.src:
                continue
            if pcb.connected:
                if pcb.faddr != err.dst or pcb.fport != dport:
                    continue
                if err.errno:
                    # Linux udp_err without IP_RECVERR: only a connected socket hears of it
                    pcb.so_error = err.errno
                    pcb.on_readable()
                    return
            matched = True
        if not matched and self.ports6:
            # an unconnected dual-stack `::` socket sent it (a sendto to ::ffff:a.b.c.d)
            matched = any(not p.v6only and not p.laddr for p in self.ports6.get(sport, ()))
        if matched:
            self.stats.icmp_ignored += 1
        else:
            self.stats.icmp_no_socket += 1

    # --- dual stack: IPv4 datagrams for AF_INET6 pcbs ------------------------------------------
    def _dual_stack(self, ip: IpMeta, hdr: UdpRepr) -> list[UdpPcb]:
        """The `::` pcbs of the port that take IPv4: no IPV6_V6ONLY, unconnected (Linux's udp4
        compute_score accepts an AF_INET6 socket whose IPv4 receive address is 0)."""
        ifindex = ip.ifp.index if ip.ifp is not None else 0
        return [p for p in self.ports6.get(hdr.dst_port, ())
                if not p.v6only and not p.laddr and not p.fport
                and (not p.bound_ifindex or p.bound_ifindex == ifindex)]

    def _pick(self, candidates: list[UdpPcb], src: int, sport: int, dst: int, dport: int) -> UdpPcb | None:
        """One of equally specific pcbs: SO_REUSEPORT spreads flows, else the last bound wins."""
        if not candidates:
            return None
        group = [p for p in candidates if p.reuseport]
        if len(group) > 1 and len(group) == len(candidates):
            return group[hash((self._hash_salt, src, sport, dst, dport)) % len(group)]
        return candidates[-1]

    # --- AF_INET6: binding ------------------------------------------------------------------------
    def _bind_key(self, pcb: UdpPcb, addr: int | None = None) -> BindKey:
        """What the overlap rule reads of `pcb`, bound (or about to be) to `addr` in its table."""
        laddr = pcb.laddr if addr is None else addr
        if pcb.inet4:
            return BindKey(pcb.family, V4_MAPPED_PREFIX | laddr, laddr, pcb.v6only)
        return BindKey(socket.AF_INET6, laddr, LOOPBACK4_IPV6 if laddr else 0, pcb.v6only)

    def _overlaps(self, pcb: UdpPcb, key: BindKey, other: UdpPcb) -> bool:
        """udp_lib_lport_inuse for one other pcb of the port: both SO_REUSEADDR, different bound
        interfaces, or both SO_REUSEPORT share it."""
        if other is pcb or (pcb.reuseaddr and other.reuseaddr):
            return False
        if pcb.bound_ifindex and other.bound_ifindex and pcb.bound_ifindex != other.bound_ifindex:
            return False
        if not rcv_saddr_equal(key, self._bind_key(other)):
            return False
        return not (pcb.reuseport and other.reuseport)

    def _conflicts_across(self, pcb: UdpPcb, addr: int, port: int) -> bool:
        """A bind into `ports` (an IPv4 address) against the AF_INET6 pcbs of the port."""
        key = self._bind_key(pcb, addr)
        return any(self._overlaps(pcb, key, other) for other in self.ports6.get(port, ()))

    def _conflicts6(self, pcb: UdpPcb, addr: int, port: int) -> bool:
        """A bind into `ports6` against the pcbs of both tables."""
        key = self._bind_key(pcb, addr)
        return any(self._overlaps(pcb, key, other)
                   for table in (self.ports, self.ports6) for other in table.get(port, ()))

    def _ephemeral6(self, pcb: UdpPcb, addr: int) -> int:
        for port in self.ephemeral.candidates():
            if port not in self.ports and port not in self.ports6:
                self.ephemeral.taken(port)
                return port
        for port in self.ephemeral.candidates():
            if not self._conflicts6(pcb, addr, port):
                return port
        return 0

    def is_local6(self, addr: int, ifindex: int, now: float) -> bool:
        """One of our usable addresses (on `ifindex` unless 0); ::1 always, as 127/8 for IPv4.
        A tentative address is not ours yet (RFC 4862 §5.4; Linux: EADDRNOTAVAIL)."""
        if addr == LOOPBACK6:
            return True
        if self.ipv6 is None:
            return False
        return any(c.addr == addr and not c.tentative and (not ifindex or c.ifindex == ifindex)
                   for c in self.ipv6.source_candidates(None, now))

    def bind6(self, pcb: Udp6Pcb, addr: int, port: int, scope_id: int, now: float, *,
              explicit: bool = True) -> int:
        """inet6_bind: 0 or an errno.  Port 0 picks an ephemeral port."""
        if pcb.lport:
            return errno.EINVAL
        if is_v4_mapped(addr):
            return self._bind_mapped(pcb, addr & 0xFFFFFFFF, port)
        prev_v6only = pcb.v6only
        # a scope id binds the device even when the bind then fails, as in Linux
        err = self._bindable6(pcb, addr, scope_id, now) if addr else 0
        chosen = 0
        if addr and not err:
            pcb.v6only = True       # Linux __inet6_bind: a real IPv6 address takes no IPv4
        if not err:
            chosen = self._ephemeral6(pcb, addr) if port == 0 else port
            if chosen == 0:
                err = errno.EAGAIN   # the ephemeral range is exhausted
            elif port and self._conflicts6(pcb, addr, port):
                err = errno.EADDRINUSE
        if err:
            pcb.v6only = prev_v6only
            return err
        pcb.laddr, pcb.lport = addr, chosen
        if explicit:
            pcb.bound_addr = addr != 0
            pcb.bound_port = port != 0       # Linux: SOCK_BINDPORT_LOCK only for a given port
        self.ports6.setdefault(chosen, []).append(pcb)
        return 0

    def _bindable6(self, pcb: Udp6Pcb, addr: int, scope_id: int, now: float) -> int:
        scoped = needs_scope_id(addr)
        if scoped:
            if scope_id:
                pcb.bound_ifindex = scope_id     # Linux: a given scope id overrides the device
            if not pcb.bound_ifindex:
                return errno.EINVAL              # RFC 4007 §6: fe80::/10 means nothing without a link
        if pcb.bound_ifindex and self.interface_by_index(pcb.bound_ifindex) is None:
            return errno.ENODEV
        if is_multicast6(addr):
            return 0                             # a group: bound to receive it
        if not pcb.transparent and not self.is_local6(addr, pcb.bound_ifindex if scoped else 0, now):
            return errno.EADDRNOTAVAIL          # IPV6_TRANSPARENT: any address
        return 0

    def _bind_mapped(self, pcb: Udp6Pcb, v4: int, port: int) -> int:
        """::ffff:a.b.c.d: an IPv4 bind for good (Linux: EINVAL under IPV6_V6ONLY)."""
        if pcb.v6only:
            return errno.EINVAL
        pcb.inet4 = True
        err = self.bind(pcb, v4, port)
        if err:
            pcb.inet4 = False
            return err
        pcb.bound_mapped = True
        pcb.bound_addr = True       # SOCK_BINDADDR_LOCK, also for ::ffff:0.0.0.0
        return 0

    def autobind6(self, pcb: Udp6Pcb, now: float) -> int:
        return self.bind6(pcb, 0, 0, 0, now, explicit=False) if not pcb.lport else 0

    def _move(self, pcb: Udp6Pcb, inet4: bool) -> None:
        """The association changes family (Linux rehashes): into the other table, keeping the
        port, with no address of either family."""
        port = pcb.lport
        self.unbind(pcb)
        pcb.inet4 = inet4
        pcb.laddr = pcb.faddr = pcb.fport = 0
        pcb.lport = port
        (self.ports if inet4 else self.ports6).setdefault(port, []).append(pcb)

    # --- AF_INET6: connect ----------------------------------------------------------------------
    def connect6(self, pcb: Udp6Pcb, addr: int, port: int, scope_id: int, now: float) -> int:
        """ip6_datagram_connect: store the peer (no packet is sent); auto-binds first, so a
        connect that then fails leaves the socket bound (Linux inet_dgram_connect)."""
        err = self.autobind6(pcb, now)
        if err:
            return err
        if addr == 0:
            # Linux: :: means the loopback, IPv4's for a socket bound to a mapped address
            addr = V4_MAPPED_PREFIX | INADDR_LOOPBACK if pcb.bound_mapped else LOOPBACK6
        if is_v4_mapped(addr):
            if pcb.v6only:
                return errno.ENETUNREACH
            return self._connect_mapped(pcb, addr & 0xFFFFFFFF, port, now)
        if pcb.inet4:
            # bound or connected to a mapped address: Linux says EAFNOSUPPORT until disconnected
            return errno.EAFNOSUPPORT
        ifindex = pcb.bound_ifindex
        if needs_scope_id(addr):
            if scope_id:
                if ifindex and ifindex != scope_id:
                    return errno.EINVAL          # bound to another interface
                ifindex = scope_id
            if not ifindex:
                return errno.EINVAL              # RFC 4007 §6: which link?
            # Linux binds the device before the route lookup and keeps it if the lookup fails
            pcb.bound_ifindex = ifindex
        ipv6 = self.ipv6
        if ipv6 is None:
            return errno.ENETUNREACH
        oif = None
        if ifindex:
            oif = self.interface_by_index(ifindex)
            if oif is None:
                return errno.ENETUNREACH         # no route by an interface that is not there
        hop = ipv6.route(addr, now, oif)
        if isinstance(hop, int):
            return hop
        src = pcb.laddr if pcb.laddr and not is_multicast6(pcb.laddr) else \
            hop.source or ipv6.choose_source(addr, hop.ifp, now)
        if src is None:
            return errno.EADDRNOTAVAIL
        if not pcb.laddr:
            pcb.laddr = src
        pcb.bound_ifindex = ifindex
        pcb.faddr, pcb.fport = addr, port
        return 0      # a pending so_error survives connect, as in Linux

    def _connect_mapped(self, pcb: Udp6Pcb, v4: int, port: int, now: float) -> int:
        """A mapped peer: the association runs over IPv4 (Linux __ip4_datagram_connect).  A
        source an earlier IPv6 connect chose is forgotten: Linux keeps it as the socket's
        name and then receives nothing from its IPv4 peer; here the IPv4 source replaces it."""
        err = self.autobind6(pcb, now)
        if err:
            return err
        if pcb.inet4:
            return self.connect(pcb, v4, port)
        saved = pcb.laddr, pcb.faddr, pcb.fport, pcb.bound_ifindex
        self._move(pcb, inet4=True)
        pcb.bound_ifindex = 0
        err = self.connect(pcb, v4, port)
        if err:
            self._move(pcb, inet4=False)
            pcb.laddr, pcb.faddr, pcb.fport, pcb.bound_ifindex = saved
        return err

    def disconnect6(self, pcb: Udp6Pcb) -> None:
        self.disconnect(pcb)
        if not pcb.bound_addr:
            pcb.bound_ifindex = 0
        if pcb.inet4 and not pcb.bound_mapped:
            if pcb.lport:
                self._move(pcb, inet4=False)     # back to `::`
            else:
                pcb.inet4 = False

    # --- AF_INET6: output -------------------------------------------------------------------------
    def output6(self, pcb: Udp6Pcb, data: bytes | bytearray | memoryview,
                dst: tuple[int, int, int, int] | None, now: float) -> int:
        """udpv6_sendmsg: one datagram to a 4-tuple (None: the connected peer); 0 or an errno."""
        err = self.autobind6(pcb, now)
        if err:
            return err
        if dst is None:
            if not pcb.connected:
                return errno.EDESTADDRREQ
            if pcb.inet4:
                return self.output(pcb, data, None, now)
            daddr, dport, scope_id = pcb.faddr, pcb.fport, 0
        else:
            daddr, dport, _flowinfo, scope_id = dst
            if daddr == 0:   # :: is the loopback (a BSD-ism Linux keeps), IPv4's when bound so
                daddr = V4_MAPPED_PREFIX | INADDR_LOOPBACK if pcb.inet4 else LOOPBACK6
            if is_v4_mapped(daddr):
                return errno.ENETUNREACH if pcb.v6only else self._output_mapped(pcb, data, daddr, dport, now)
            if dport == 0:
                return errno.EINVAL
        if pcb.inet4:
            return errno.EAFNOSUPPORT            # an IPv4 association has no IPv6 source
        return self._send6(pcb, data, daddr, dport, scope_id, now)

    def _output_mapped(self, pcb: Udp6Pcb, data: bytes | bytearray | memoryview, daddr: int, dport: int,
                       now: float) -> int:
        """To ::ffff:a.b.c.d over IPv4 (Linux hands it to udp_sendmsg).  A pcb whose IPv6
        source an IPv6 connect chose sends with IPv4's own choice (Linux's inet_saddr is 0)."""
        v4dst = (daddr & 0xFFFFFFFF, dport)
        if pcb.inet4 or not pcb.laddr:
            return self.output(pcb, data, v4dst, now)
        laddr, pcb.laddr = pcb.laddr, 0          # sans-IO: nothing runs in between
        try:
            return self.output(pcb, data, v4dst, now)
        finally:
            pcb.laddr = laddr

    def _send6(self, pcb: Udp6Pcb, data: bytes | bytearray | memoryview, daddr: int, dport: int,
               scope_id: int, now: float) -> int:
        ipv6 = self.ipv6
        if ipv6 is None:
            return errno.ENETUNREACH
        scoped = needs_scope_id(daddr)
        ifindex = scope_id if scope_id and scoped else pcb.bound_ifindex
        if scoped and not ifindex:
            # no link named (a connect() says EINVAL instead): Linux's lookup takes the first
            # interface's fe80::/64 (or ff00::/8) route and its link-local source
            ifindex = self._first_link6(now)
            if not ifindex:
                self.stats.out_errors += 1
                return errno.EADDRNOTAVAIL       # no link-local source anywhere (yet)
        oif = None
        if ifindex:
            oif = self.interface_by_index(ifindex)
            if oif is None:
                self.stats.out_errors += 1
                return errno.ENETUNREACH         # Linux: no route by an unknown interface
        hop = ipv6.route(daddr, now, oif)
        if isinstance(hop, int):
            self.stats.out_errors += 1
            return hop
        ifp = hop.ifp
        laddr = pcb.laddr
        if pcb.transparent and laddr and not ifp.transparent and not is_multicast6(laddr) \
                and not self.is_local6(laddr, 0, now):
            self.stats.out_errors += 1
            return errno.EADDRNOTAVAIL           # a foreign source: as _foreign_source_blocked
        src = laddr if laddr and not is_multicast6(laddr) else hop.source or ipv6.choose_source(daddr, ifp, now)
        if src is None:
            self.stats.out_errors += 1
            return errno.EADDRNOTAVAIL           # no usable source (Linux ip6_dst_lookup_tail)
        length = UDP_HLEN + len(data)
        mtu = ipv6.path_mtu(ifp, daddr, now)
        # ip6_append_data: IPV6_MTU_DISCOVER DO/PROBE/INTERFACE send nothing above the path MTU,
        # IPV6_DONTFRAG neither; otherwise the IPv6 layer fragments up to 65535 octets of payload
        ignore_df = pcb.pmtudisc < IPV6_PMTUDISC_DO or pcb.pmtudisc == IPV6_PMTUDISC_OMIT
        limit = IP6_MAX_PAYLOAD_LEN if ignore_df and not pcb.dontfrag else mtu - IP6_HDR_LEN
        if length > limit:
            return errno.EMSGSIZE
        pkt = PacketBuffer.from_payload(data)
        hdr = pkt.prepend(UDP_HLEN)
        if ifp.ndd.caps.tx_csum_offload and IP6_HDR_LEN + length <= mtu:
            # the device finishes it over the source chosen here (virtio_net_hdr NEEDS_CSUM)
            _HDR.pack_into(hdr, 0, pcb.lport, dport, length, pseudo_header_sum6(src, daddr, IPPROTO_UDP, length))
            pkt.csum_start, pkt.csum_offset = pkt.start, 6
        else:
            _HDR.pack_into(hdr, 0, pcb.lport, dport, length, 0)
            struct.pack_into("!H", hdr, 6, udp6_checksum(src, daddr, pkt.view()))
        hop_limit = pcb.mcast_hops if is_multicast6(daddr) else pcb.hop_limit
        err = ipv6.output(pkt, src, daddr, IPPROTO_UDP, now, hop_limit=hop_limit, tclass=pcb.tclass, oif=oif,
                          dontfrag=pcb.dontfrag)
        if err:
            self.stats.out_errors += 1
            return err
        self.stats.out_datagrams += 1
        return 0

    def _first_link6(self, now: float) -> int:
        """The interface a scoped destination without a scope id leaves by: the lowest-numbered
        one with a usable link-local address, 0 if none.  (Linux takes the first interface's
        route whatever its address state, then fails with EADDRNOTAVAIL while that address is
        tentative: here an interface still in DAD is passed over.)"""
        ipv6 = self.ipv6
        if ipv6 is None:
            return 0
        return min((c.ifindex for c in ipv6.source_candidates(None, now)
                    if is_link_local6(c.addr) and not c.tentative), default=0)

    # --- AF_INET6: input (the AF_INET6 entry's pr_input) -----------------------------------------
    def input6(self, pkt: PacketBuffer, meta: Ip6Meta, now: float) -> None:
        st = self.stats
        view = pkt.view()
        n = len(view)
        if n < UDP_HLEN:
            st.in_errors += 1
            st.in_truncated += 1
            return
        sport, dport, length, csum = _HDR.unpack_from(view, 0)
        if length == 0:
            length = n      # Linux __udp6_lib_rcv: 0 is a jumbogram's length (RFC 2675 §4): the rest
        if length < UDP_HLEN or length > n:
            st.in_errors += 1
            st.in_truncated += 1
            return
        if length < n:
            pkt.trim(length)
            view = pkt.view()
        if csum == 0:
            # RFC 8200 §8.1: mandatory over IPv6 (Linux counts it a checksum error; no socket
            # here takes RFC 6936's zero-checksum exception)
            st.in_errors += 1
            st.in_csum_errors += 1
            st.in_csum_zero += 1
            return
        if not pkt.csum_valid and \
                ones_sum(view, pseudo_header_sum6(meta.src, meta.dst, IPPROTO_UDP, length)) != 0xFFFF:
            st.in_errors += 1
            st.in_csum_errors += 1
            return
        payload = bytes(view[UDP_HLEN:])
        if pkt.gso_type == GSO_UDP_L4 and pkt.gso_size:
            step = pkt.gso_size          # a UDP_SEGMENT super-frame: gso_size datagrams
            datagrams = [payload[i:i + step] for i in range(0, len(payload), step)] or [b""]
        else:
            datagrams = [payload]
        ifindex = meta.ifp.index if meta.ifp is not None else 0
        if meta.mcast:
            targets = [p for p in self.ports6.get(dport, ()) if self._takes_group(p, meta, sport, ifindex)]
            if not targets:
                st.ignored_multi += 1    # never an ICMPv6 error about a group (RFC 4443 §2.4 (e.3))
                return
        else:
            best = self._lookup6(meta.dst, dport, meta.src, sport, ifindex)
            ifp = meta.ifp
            if best is not None and ifp is not None and ifp.transparent and not best.laddr \
                    and not self.is_local6(meta.dst, 0, now):
                best = None      # a wildcard socket takes only our own addresses (Linux, without TPROXY)
            if best is None and self.forwarder is not None:
                self._forward(socket.AF_INET6, meta.src, sport, meta.dst, dport, datagrams, meta.ifp, now)
                return
            if best is None:
                st.no_ports += 1
                if self.ipv6 is not None:    # RFC 4443 §3.1 code 4, the ICMPv6 core rate-limits
                    self.ipv6.icmp_error(ICMP6_DEST_UNREACH, ICMP6_UNREACH_PORT, 0, meta.original(pkt),
                                         meta.ifp, now)
                return
            targets = [best]
        # recvfrom's 4-tuple: Linux gives the incoming interface as a link-local sender's scope id
        src = (meta.src, sport, 0, ifindex if needs_scope_id(meta.src) else 0)
        for pcb in targets:
            for data in datagrams:
                if UdpPcb.enqueue(pcb, data, src):
                    st.in_datagrams += 1
                else:
                    st.rcvbuf_errors += 1
                    st.in_errors += 1

    def _score6(self, pcb: UdpPcb, laddr: int, faddr: int, fport: int, ifindex: int | None) -> int:
        """Linux udp6 compute_score: -1 no match, higher more specific.  `ifindex` None: any."""
        score = 0
        if pcb.laddr:
            if pcb.laddr != laddr:
                return -1
            score += 4
        if pcb.faddr:
            if pcb.faddr != faddr:
                return -1
            score += 4
        if pcb.fport:
            if pcb.fport != fport:
                return -1
            score += 4
        if pcb.bound_ifindex and ifindex is not None:
            if pcb.bound_ifindex != ifindex:
                return -1
            score += 4
        return score

    def _lookup6(self, laddr: int, lport: int, faddr: int, fport: int, ifindex: int | None) -> UdpPcb | None:
        best: list[UdpPcb] = []
        best_score = -1
        for pcb in self.ports6.get(lport, ()):
            s = self._score6(pcb, laddr, faddr, fport, ifindex)
            if s > best_score:
                best, best_score = [pcb], s
            elif s == best_score and s >= 0:
                best.append(pcb)
        return self._pick(best, faddr, fport, laddr, lport)

    def _takes_group(self, pcb: UdpPcb, meta: Ip6Meta, sport: int, ifindex: int) -> bool:
        """__udp_v6_is_mcast_sock and inet6_mc_check: the pcb matches the datagram and either
        joined the group (on any interface) or keeps IPV6_MULTICAST_ALL on (Linux's default)."""
        if self._score6(pcb, meta.dst, meta.src, sport, ifindex) < 0 or not isinstance(pcb, Udp6Pcb):
            return False
        return pcb.mc_all or pcb.joined(meta.dst)

    # --- AF_INET6: ICMPv6 errors (the AF_INET6 entry's pr_ctlinput) --------------------------------
    def ctlinput6(self, err: Icmpv6Error, now: float) -> None:
        """An ICMPv6 error quoting a datagram we sent (Linux __udp6_lib_err): the socket that
        sent it, looked up as for a reply, hears of it when connected and the error is hard
        (a Packet Too Big is, unless IPV6_MTU_DISCOVER is DONT; INTERFACE and OMIT ignore it
        altogether) -- or always under IPV6_RECVERR (no error queue here: so_error only)."""
        if len(err.payload) < UDP_HLEN:
            self.stats.icmp_no_socket += 1
            return
        sport, dport = struct.unpack_from("!HH", err.payload, 0)
        pcb = self._lookup6(err.src, sport, err.dst, dport, None)
        if not isinstance(pcb, Udp6Pcb):
            self.stats.icmp_no_socket += 1
            return
        if err.type == ICMP6_PACKET_TOO_BIG and pcb.pmtudisc >= IPV6_PMTUDISC_INTERFACE:
            self.stats.icmp_ignored += 1             # Linux ip6_sk_accept_pmtu: not even IPV6_RECVERR
            return
        hard = err.fatal or (err.type == ICMP6_PACKET_TOO_BIG and pcb.pmtudisc != IPV6_PMTUDISC_DONT)
        if not pcb.recverr6 and (not hard or not pcb.connected):
            self.stats.icmp_ignored += 1
            return
        pcb.so_error = err.errno
        pcb.on_readable()

    # --- AF_INET6: multicast memberships -----------------------------------------------------------
    def join6(self, pcb: Udp6Pcb, mreq: Ipv6Mreq, now: float) -> int:
        """IPV6_JOIN_GROUP (Linux ipv6_sock_mc_join): 0 or an errno."""
        if not is_multicast6(mreq.group):
            return errno.EINVAL
        ifindex = mreq.ifindex
        if ifindex == 0:         # the interface the route to the group leaves by
            hop = self.ipv6.route(mreq.group, now, None) if self.ipv6 is not None else errno.ENODEV
            if isinstance(hop, int):
                return errno.ENODEV
            ifindex = hop.ifp.index
        elif self.interface_by_index(ifindex) is None:
            return errno.ENODEV
        key = (ifindex, mreq.group)
        if key in pcb.memberships:
            return errno.EADDRINUSE
        if len(pcb.memberships) >= MAX_MEMBERSHIPS6:
            return errno.ENOBUFS
        err = self.join_group(ifindex, mreq.group, now)
        if err:
            return err
        pcb.memberships[key] = None
        return 0

    def leave6(self, pcb: Udp6Pcb, mreq: Ipv6Mreq, now: float) -> int:
        """IPV6_LEAVE_GROUP (ipv6_sock_mc_drop): interface 0 leaves the group wherever joined first."""
        if not is_multicast6(mreq.group):
            return errno.EINVAL
        for key in pcb.memberships:
            if key[1] == mreq.group and (mreq.ifindex == 0 or key[0] == mreq.ifindex):
                del pcb.memberships[key]
                self.leave_group(key[0], key[1], now)
                return 0
        return errno.EADDRNOTAVAIL

    def leave_all6(self, pcb: Udp6Pcb, now: float) -> None:
        """close(): every membership goes (ipv6_sock_mc_close)."""
        for ifindex, group in pcb.memberships:
            self.leave_group(ifindex, group, now)
        pcb.memberships.clear()


