"""Protocol cores (sans-IO).  `register(stack)` installs the built-in AF_INET family
the same way a third-party `tunstack.protocols` entry point installs its own."""
from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from .contracts import PR_ATOMIC, PR_ADDR, PR_CONNREQUIRED, Protosw

from .atm.sockets.usrreq import register as register_atm_sockets
from .icmp import Icmp
from .ipv4 import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Ipv4
from .tcp.tcp import Tcp
from .tcp.usrreq import TcpUserRequests
from .udp import Udp, UdpUserRequests

if TYPE_CHECKING:
    from stack.stack import Stack


def register(stack: "Stack") -> None:
    cfg = stack.config
    stack.protosw.add_domain(socket.AF_INET, "internet")
    stack.ipv4 = Ipv4(stack.ifnet, stack.routes, stack.protosw, rng=stack.rng, reasm_timeout=cfg.reasm_timeout,
                      reasm_max_bytes=cfg.reasm_max_bytes, default_ttl=cfg.default_ttl,
                      min_pmtu=cfg.min_pmtu, mtu_expires=cfg.mtu_expires)
    stack.timers.register(stack.ipv4.reasm)
    stack.icmp = Icmp(stack.ipv4, rate=cfg.icmp_rate, burst=cfg.icmp_burst, rng=stack.rng,
                      ratelimit=cfg.icmp_ratelimit)
    stack.protosw.add(socket.AF_INET, Protosw("icmp", socket.SOCK_RAW, IPPROTO_ICMP, input=stack.icmp.input,
                                              ctlinput=stack.icmp.ctlinput, flags=PR_ATOMIC | PR_ADDR,
                                              core=stack.icmp))
    stack.udp = Udp(stack.ipv4, stack.rng)
    stack.protosw.add(socket.AF_INET, Protosw("udp", socket.SOCK_DGRAM, IPPROTO_UDP, input=stack.udp.input,
                                              ctlinput=stack.udp.ctlinput, usrreqs=UdpUserRequests(stack.udp),
                                              flags=PR_ATOMIC | PR_ADDR, core=stack.udp))
    stack.tcp = Tcp(stack.ipv4, stack.rng, stack.now, cfg.tcp)
    stack.timers.register(stack.tcp)
    stack.protosw.add(socket.AF_INET, Protosw("tcp", socket.SOCK_STREAM, IPPROTO_TCP, input=stack.tcp.input,
                                              ctlinput=stack.tcp.ctlinput, usrreqs=TcpUserRequests(stack.tcp),
                                              flags=PR_CONNREQUIRED, core=stack.tcp))
    register_atm_sockets(stack)   # AF_NDD: the ATM socket family (PVCs, SVCs)
