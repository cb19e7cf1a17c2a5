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
"""
from __future__ import annotations

import errno
import random
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from socket import IPPROTO_IP, SOL_SOCKET
from typing import TYPE_CHECKING, Any

from ndd.checksum import checksum, ones_sum, pseudo_header_sum
from ndd.counters import Counters
from ndd.pktbuf import GSO_UDP_L4, PacketBuffer

from .addr import BROADCAST, is_multicast
from .contracts import SS_ISCONNECTED
from .ipv4 import HDR_LEN, IPPROTO_UDP, IpMeta, Ipv4
from .ports import EphemeralPorts
from .sockopt import BUF_DEFAULT, get_ip_option, get_socket_option, set_ip_option, set_socket_option

if TYPE_CHECKING:
    from .icmp import IcmpError

UDP_HLEN = 8
MAX_PAYLOAD = 65535 - HDR_LEN - UDP_HLEN     # 65507
DATAGRAM_OVERHEAD = 768                      # charged per queued datagram, like skb truesize

_HDR = struct.Struct("!HHHH")


@dataclass(slots=True)
class UdpRepr:
    src_port: int
    dst_port: int
    length: int
    checksum: int

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> UdpRepr | str:
        if len(data) < UDP_HLEN:
            return "in_truncated"
        sport, dport, length, csum = _HDR.unpack_from(data, 0)
        if length < UDP_HLEN or length > len(data):
            return "in_truncated"
        return cls(sport, dport, length, csum)


def udp_checksum(src: int, dst: int, segment: bytes | bytearray | memoryview) -> int:
    """RFC 768: over the pseudo-header and the segment; a computed 0 is sent as 0xFFFF."""
    c = checksum(segment, pseudo_header_sum(src, dst, IPPROTO_UDP, len(segment)))
    return c or 0xFFFF


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


class UdpPcb:
    """One UDP endpoint.  Addresses are ints; 0 means wildcard / unset."""

    def __init__(self, udp: Udp) -> None:
        self.udp = udp
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
        self.queue: deque[tuple[bytes, tuple[int, int]]] = deque()
        self.queued = 0
        self.so_error = 0
        self.ttl: int | None = None
        self.tos = 0
        self.on_readable: Callable[[], None] = lambda: None
        self.closed = False

    @property
    def connected(self) -> bool:
        return self.fport != 0

    # --- receive side -------------------------------------------------------------
    def enqueue(self, data: bytes, src: tuple[int, int]) -> bool:
        cost = len(data) + DATAGRAM_OVERHEAD
        if self.queued + cost > self.rcvbuf:
            return False
        self.queue.append((data, src))
        self.queued += cost
        self.on_readable()
        return True

    def dequeue(self) -> tuple[bytes, tuple[int, int]] | None:
        if not self.queue:
            return None
        data, src = self.queue.popleft()
        self.queued -= len(data) + DATAGRAM_OVERHEAD
        return data, src

    def take_error(self) -> int:
        err, self.so_error = self.so_error, 0
        return err


class Udp:
    def __init__(self, ipv4: Ipv4, rng: random.Random) -> None:
        self.ipv4 = ipv4
        self.rng = rng
        self.stats = UdpStats()
        self.ports: dict[int, list[UdpPcb]] = {}
        self.ephemeral = EphemeralPorts(rng)
        self._hash_salt = rng.getrandbits(32)

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
                         or addr >> 24 == 127):
            return errno.EADDRNOTAVAIL
        if port == 0:
            port = self._ephemeral(pcb, addr)
            if port == 0:
                return errno.EAGAIN   # Linux: the ephemeral range is exhausted
        elif self._conflicts(pcb, addr, port):
            return errno.EADDRINUSE
        pcb.laddr, pcb.lport = addr, port
        if explicit:
            pcb.bound_addr = addr != 0
            pcb.bound_port = True
        self.ports.setdefault(port, []).append(pcb)
        return 0

    def _ephemeral(self, pcb: UdpPcb, addr: int) -> int:
        for port in self.ephemeral.candidates():
            if port not in self.ports:
                self.ephemeral.taken(port)
                return port
        for port in self.ephemeral.candidates():   # all in use by someone: share one without conflict
            if not self._conflicts(pcb, addr, port):
                return port
        return 0

    def unbind(self, pcb: UdpPcb) -> None:
        users = self.ports.get(pcb.lport)
        if users and pcb in users:
            users.remove(pcb)
            if not users:
                del self.ports[pcb.lport]
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
        else:
            best = self._lookup(ip, hdr)
            targets = [best] if best is not None else []
        if not targets:
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
        if matched:
            self.stats.icmp_ignored += 1
        else:
            self.stats.icmp_no_socket += 1


class UdpUserRequests:
    """pr_usrreqs for SOCK_DGRAM/IPPROTO_UDP (protocols.contracts.UserRequests): the calls the
    socket layer makes.  Every call returns at once -- an errno, data, or None for "would block"."""

    def __init__(self, udp: Udp) -> None:
        self.udp = udp

    def attach(self, now: float) -> UdpPcb:
        return UdpPcb(self.udp)

    def set_upcall(self, pcb: UdpPcb, upcall: Callable[[], None]) -> None:
        pcb.on_readable = upcall

    def detach(self, pcb: UdpPcb, now: float) -> None:
        if pcb.lport:
            self.udp.unbind(pcb)
        pcb.queue.clear()
        pcb.queued = 0
        pcb.closed = True

    def bind(self, pcb: UdpPcb, addr: tuple[int, int], now: float) -> int:
        return self.udp.bind(pcb, *addr)

    def listen(self, pcb: UdpPcb, backlog: int, now: float) -> int:
        return errno.EOPNOTSUPP

    def accept(self, pcb: UdpPcb, now: float) -> None:
        return None

    def connect(self, pcb: UdpPcb, addr: tuple[int, int], now: float) -> int:
        return self.udp.connect(pcb, *addr)

    def abandon_connect(self, pcb: UdpPcb, now: float) -> None:
        pass                                     # a datagram connect completes at once

    def disconnect(self, pcb: UdpPcb, now: float) -> int:
        self.udp.disconnect(pcb)
        return 0

    def shutdown(self, pcb: UdpPcb, how: int, now: float) -> int:
        return 0 if pcb.connected else errno.ENOTCONN   # the socket marks its halves

    def send(self, pcb: UdpPcb, data: memoryview, addr: tuple[int, int] | None, now: float) -> int:
        err = self.udp.output(pcb, data, addr, now)
        return -err if err else len(data)

    def recv(self, pcb: UdpPcb, bufsize: int, peek: bool, now: float) -> tuple[bytes, tuple[int, int]] | None:
        if peek:
            return pcb.queue[0] if pcb.queue else None
        return pcb.dequeue()

    def state(self, pcb: UdpPcb) -> int:
        return SS_ISCONNECTED if pcb.connected else 0

    def readable(self, pcb: UdpPcb) -> bool:
        return bool(pcb.queue) or bool(pcb.so_error)

    def writable(self, pcb: UdpPcb) -> bool:
        return True                              # datagrams never wait for buffer space

    def take_error(self, pcb: UdpPcb) -> int:
        return pcb.take_error()

    def sockaddr(self, pcb: UdpPcb) -> tuple[int, int]:
        return pcb.laddr, pcb.lport

    def peeraddr(self, pcb: UdpPcb) -> tuple[int, int] | None:
        return (pcb.faddr, pcb.fport) if pcb.connected else None

    def setsockopt(self, pcb: UdpPcb, level: int, name: int, value: Any, now: float) -> int:
        if level == SOL_SOCKET:
            return set_socket_option(pcb, name, value)
        if level == IPPROTO_IP:
            return set_ip_option(pcb, name, value)
        return errno.ENOPROTOOPT

    def getsockopt(self, pcb: UdpPcb, level: int, name: int, now: float) -> int | None:
        if level == SOL_SOCKET:
            return get_socket_option(pcb, name)
        if level == IPPROTO_IP:
            return get_ip_option(pcb, name, self.udp.ipv4.default_ttl)
        return None

    def info(self, pcb: UdpPcb) -> dict[str, Any]:
        return {"queued": pcb.queued, "datagrams": len(pcb.queue)}


if TYPE_CHECKING:
    from .contracts import UserRequests

    def _implements_the_contract(requests: UdpUserRequests) -> UserRequests:
        return requests     # mypy checks every request's signature against protocols/contracts.py
