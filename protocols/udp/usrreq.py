"""What the socket layer calls of UDP (pr_usrreqs, protocols/contracts.py UserRequests), for
AF_INET and AF_INET6 sockets: addresses in the family's sockaddr shape, options by level."""
from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from socket import IPPROTO_IP, SOL_SOCKET
from typing import TYPE_CHECKING, Any, cast

from ..contracts import SS_ISCONNECTED
from ..inet6sock import Ipv6Mreq, needs_scope_id
from ..ipv6.addr import V4_MAPPED_PREFIX
from ..sockopt import (
    IPV6_JOIN_GROUP,
    IPV6_LEAVE_GROUP,
    get_ip_option,
    get_ipv6_option,
    get_socket_option,
    set_ip_option,
    set_ipv6_option,
    set_socket_option,
)
from .pcb import IPV6_MULTICAST_ALL, Udp6Pcb, UdpPcb
from .udp import Udp


class UdpUserRequests:
    """pr_usrreqs for SOCK_DGRAM/IPPROTO_UDP (protocols.contracts.UserRequests): the calls the
    socket layer makes.  Every call returns at once -- an errno, data, or None for "would block".
    `family` AF_INET6 gives the AF_INET6 requests (Udp6UserRequests)."""
    family = socket.AF_INET

    def __new__(cls, udp: Udp, family: int = socket.AF_INET) -> UdpUserRequests:
        if family == socket.AF_INET6 and cls is UdpUserRequests:
            return object.__new__(Udp6UserRequests)
        if family not in (socket.AF_INET, socket.AF_INET6):
            raise ValueError(f"UDP has no family {family}")
        return object.__new__(cls)

    def __init__(self, udp: Udp, family: int = socket.AF_INET) -> None:
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

    def bind(self, pcb: UdpPcb, addr: tuple[int, ...], now: float) -> int:
        return self.udp.bind(pcb, *addr)

    def listen(self, pcb: UdpPcb, backlog: int, now: float) -> int:
        return errno.EOPNOTSUPP

    def accept(self, pcb: UdpPcb, now: float) -> None:
        return None

    def connect(self, pcb: UdpPcb, addr: tuple[int, ...], now: float) -> int:
        return self.udp.connect(pcb, *addr)

    def abandon_connect(self, pcb: UdpPcb, now: float) -> None:
        pass                                     # a datagram connect completes at once

    def disconnect(self, pcb: UdpPcb, now: float) -> int:
        self.udp.disconnect(pcb)
        return 0

    def shutdown(self, pcb: UdpPcb, how: int, now: float) -> int:
        return 0 if pcb.connected else errno.ENOTCONN   # the socket marks its halves

    def send(self, pcb: UdpPcb, data: memoryview, addr: tuple[int, ...] | None, now: float, flags: int = 0) -> int:
        err = self.udp.output(pcb, data, addr, now)  # type: ignore[arg-type]  # an AF_INET pair
        return -err if err else len(data)

    def recv(self, pcb: UdpPcb, bufsize: int, peek: bool, now: float) -> tuple[bytes, tuple[int, ...]] | None:
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

    def sockaddr(self, pcb: UdpPcb) -> tuple[int, ...]:
        return pcb.laddr, pcb.lport

    def peeraddr(self, pcb: UdpPcb) -> tuple[int, ...] | None:
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


def _v6(pcb: UdpPcb) -> Udp6Pcb:
    """The pcb an AF_INET6 request gets is one its attach made."""
    return cast(Udp6Pcb, pcb)


class Udp6UserRequests(UdpUserRequests):
    """pr_usrreqs of AF_INET6 datagram sockets: sockaddrs are (addr128, port, flowinfo,
    scope_id) both ways, an IPv4 peer or address as ::ffff:a.b.c.d (CPython's getsockname
    of such a socket: ('::ffff:10.0.0.1', 5000, 0, 0))."""
    family = socket.AF_INET6

    def attach(self, now: float) -> Udp6Pcb:
        return Udp6Pcb(self.udp)

    def detach(self, pcb: UdpPcb, now: float) -> None:
        if isinstance(pcb, Udp6Pcb):
            self.udp.leave_all6(pcb, now)
        super().detach(pcb, now)

    def bind(self, pcb: UdpPcb, addr: tuple[int, ...], now: float) -> int:
        host, port, _flowinfo, scope_id = addr
        return self.udp.bind6(_v6(pcb), host, port, scope_id, now)

    def connect(self, pcb: UdpPcb, addr: tuple[int, ...], now: float) -> int:
        host, port, _flowinfo, scope_id = addr
        return self.udp.connect6(_v6(pcb), host, port, scope_id, now)

    def disconnect(self, pcb: UdpPcb, now: float) -> int:
        self.udp.disconnect6(_v6(pcb))
        return 0

    def send(self, pcb: UdpPcb, data: memoryview, addr: tuple[int, ...] | None, now: float, flags: int = 0) -> int:
        if addr is not None:
            host, port, flowinfo, scope_id = addr
            addr = (host, port, flowinfo, scope_id)
        err = self.udp.output6(_v6(pcb), data, addr, now)
        return -err if err else len(data)

    def _sockaddr6(self, pcb: UdpPcb, host: int, port: int) -> tuple[int, int, int, int]:
        if pcb.inet4:
            return V4_MAPPED_PREFIX | host, port, 0, 0
        # Linux ipv6_iface_scope_id: the bound interface, for an address that needs one
        return host, port, 0, pcb.bound_ifindex if needs_scope_id(host) else 0

    def sockaddr(self, pcb: UdpPcb) -> tuple[int, ...]:
        return self._sockaddr6(pcb, pcb.laddr, pcb.lport)

    def peeraddr(self, pcb: UdpPcb) -> tuple[int, ...] | None:
        return self._sockaddr6(pcb, pcb.faddr, pcb.fport) if pcb.connected else None

    def setsockopt(self, pcb: UdpPcb, level: int, name: int, value: Any, now: float) -> int:
        pcb = _v6(pcb)
        if level != socket.IPPROTO_IPV6:
            return super().setsockopt(pcb, level, name, value, now)   # SOL_SOCKET, IPPROTO_IP (mapped)
        if name in (IPV6_JOIN_GROUP, IPV6_LEAVE_GROUP):
            mreq = Ipv6Mreq.parse(value) if isinstance(value, bytes | bytearray | memoryview) else None
            if mreq is None:
                return errno.EINVAL          # shorter than struct ipv6_mreq
            join = name == IPV6_JOIN_GROUP
            return self.udp.join6(pcb, mreq, now) if join else self.udp.leave6(pcb, mreq, now)
        if not isinstance(value, int):
            return errno.EINVAL
        if name == IPV6_MULTICAST_ALL:
            pcb.mc_all = bool(value)
            return 0
        return set_ipv6_option(pcb, name, value, bound=pcb.lport != 0, stream=False)

    def getsockopt(self, pcb: UdpPcb, level: int, name: int, now: float) -> int | None:
        pcb = _v6(pcb)
        if level != socket.IPPROTO_IPV6:
            return super().getsockopt(pcb, level, name, now)
        if name == IPV6_MULTICAST_ALL:
            return int(pcb.mc_all)
        ipv6 = self.udp.ipv6
        return get_ipv6_option(pcb, name, ipv6.default_hop_limit if ipv6 is not None else 64, stream=False)


if TYPE_CHECKING:
    from protocols.contracts import UserRequests

    def _implements_the_contract(requests: UdpUserRequests) -> UserRequests:
        return requests     # mypy checks every request's signature against protocols/contracts.py

    def _implements_the_contract6(requests: Udp6UserRequests) -> UserRequests:
        return requests
