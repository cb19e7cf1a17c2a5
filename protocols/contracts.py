"""The contracts page: everything a protocol plugs in by, on one page (as gVisor's
stack/registration.go is for netstack).

  the protocol switch   domains hold protosw entries (4.4BSD `struct protosw`); IPv4 input
                        dispatches on `ip_protox` (protocol number -> entry), the socket
                        layer finds entries by (family, protocol, type) like `pffindproto`
  what a protocol plugs into
                        `ProtocolHost` (what a plug-in's `register(host)` may use of the
                        Stack), the pr_input / pr_ctlinput signatures, the timed-core
                        interface the Stack's timer service drives, the link-output interface

This module sits at the bottom of protocols/: it imports nothing of the project above
ndd/, so every core (and the Stack) may name it without a cycle.
"""
from __future__ import annotations

import errno
import os
import random
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ndd.pktbuf import PacketBuffer

# pr_flags
PR_ATOMIC = 0x01        # exchange atomic messages only
PR_ADDR = 0x02          # addresses given with messages
PR_CONNREQUIRED = 0x04  # connection required by protocol


@dataclass(eq=False)
class Protosw:
    name: str
    type: int                      # socket type (SOCK_DGRAM, SOCK_STREAM, SOCK_RAW, ...)
    protocol: int                  # IPPROTO_* (or NDD_PROT_*)
    input: TransportInput | None = None        # pr_input(pkt, meta, now)
    ctlinput: ControlInput | None = None       # pr_ctlinput(error, now)
    usrreqs: Any = None            # socket user requests, filled by the socket layer
    flags: int = 0
    core: Any = None               # the protocol object itself, for introspection


@dataclass(eq=False)
class Domain:
    family: int
    name: str
    protosw: list[Protosw] = field(default_factory=list)


class ProtocolSwitch:
    def __init__(self) -> None:
        self.domains: dict[int, Domain] = {}
        self.ip_protox: dict[int, Protosw] = {}

    def add_domain(self, family: int, name: str) -> Domain:
        return self.domains.setdefault(family, Domain(family, name))

    def add(self, family: int, pr: Protosw) -> Protosw:
        dom = self.domains.get(family)
        if dom is None:
            raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))
        if any(p.type == pr.type and p.protocol == pr.protocol for p in dom.protosw):
            raise OSError(errno.EEXIST, f"{os.strerror(errno.EEXIST)}: protocol {pr.name}")
        dom.protosw.append(pr)
        if family == socket.AF_INET and pr.input is not None:
            self.ip_protox.setdefault(pr.protocol, pr)
        return pr

    def find_proto(self, family: int, protocol: int, type: int | None = None) -> Protosw | None:
        dom = self.domains.get(family)
        if dom is None:
            return None
        for p in dom.protosw:
            if p.protocol == protocol and (type is None or p.type == type):
                return p
        return None


# --- what a protocol plugs into: host, input, timers, link output ----------------------------------
# pr_input: a datagram for this protocol, positioned at its own header, with what the network
# layer learnt of it (AF_INET: protocols.ipv4.IpMeta -- src, dst, proto, ttl, tos, ifp...),
# and the time.  Bad input is dropped and counted in the protocol's stats, never raised.
# The meta is typed Any because the switch is family-neutral and the family's meta is
# defined by its network layer, which imports this page (naming it here would be a cycle).
TransportInput = Callable[[PacketBuffer, Any, float], None]

# pr_ctlinput: an error about a datagram this protocol sent (AF_INET: protocols.icmp.IcmpError,
# from a received ICMP error or a local one such as an ARP failure), and the time.
ControlInput = Callable[[Any, float], None]


class TimedCore(Protocol):
    """A core with deadlines, as the Stack's timer service (stack/timers.py) drives it --
    smoltcp's `poll_at` contract.  The core answers its earliest deadline in `poll_at()`
    (None: nothing armed) and does its due work in `poll(now)`; when it arms an earlier
    deadline between polls it calls `kick(at)` (or `kick()`), a hook the timer service sets
    at registration so its loop recomputes.  A core never sees trio."""
    kick: Callable[..., None]

    def poll_at(self) -> float | None: ...

    def poll(self, now: float) -> None: ...


class TimerRegistry(Protocol):
    """Where timed cores are registered (the Stack's TimerService)."""

    def register(self, core: TimedCore) -> None: ...

    def unregister(self, core: TimedCore) -> None: ...


class LinkOutput(Protocol):
    """Link-layer output: frame the IP packet for this medium and hand it to the NDD
    (`Interface.link`: Ethernet + ARP, raw IP, CLIP's LLC/SNAP over ATM).  Returns 0 or an errno."""

    def output(self, pkt: PacketBuffer, nexthop: int, now: float) -> int: ...


class ProtocolHost(Protocol):
    """What a protocol plug-in's `register(host)` (entry point group `tunstack.protocols`)
    and the protocol-side wiring (protocols/atm/clip/calls.py) may use of the Stack: the
    protocol switch to add domains and entries to, the timer registry for its timed cores,
    the clock and the Stack's random source (seeded by StackConfig.seed, so tests replay).
    The built-in cores are built by the Stack itself (stack/stack.py) and need none of it."""

    @property
    def protosw(self) -> ProtocolSwitch: ...

    @property
    def timers(self) -> TimerRegistry: ...

    @property
    def rng(self) -> random.Random: ...

    def now(self) -> float: ...


def oserror(code: int) -> OSError:
    """The OSError a user request's errno becomes at the socket API (errno and its text)."""
    return OSError(code, os.strerror(code))
