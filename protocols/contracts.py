"""The contracts page: everything a protocol plugs in by, on one page (as gVisor's
stack/registration.go is for netstack).

  the protocol switch   domains hold protosw entries (4.4BSD `struct protosw`); IPv4 input
                        dispatches on `ip_protox` (protocol number -> entry), IPv6 input on
                        `ip6_protox` (next header -> entry, AF_INET6 entries), the socket
                        layer finds entries by (family, protocol, type) like `pffindproto`
  what a protocol plugs into
                        `ProtocolHost` (what a plug-in's `register(host)` may use of the
                        Stack), the pr_input / pr_ctlinput signatures, the timed-core
                        interface the Stack's timer service drives, the link-output interface
  what the socket layer may ask
                        `UserRequests` (4.4BSD `pr_usrreqs`: one interface, uniform signatures,
                        every request takes `now`, options by level) and the `so_state` flags
                        (SS_*) a protocol reports; the socket layer (stack/) uses nothing else

This module sits at the bottom of protocols/: it imports nothing of the project above
ndd/, so every core (and the Stack) may name it without a cycle.
"""
from __future__ import annotations

import errno
import os
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

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
    usrreqs: UserRequests | None = None   # the socket requests (below); None: no sockets
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
        self.ip6_protox: dict[int, Protosw] = {}    # IPv6 input's table (next header -> entry)

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
        elif family == socket.AF_INET6 and pr.input is not None:
            self.ip6_protox.setdefault(pr.protocol, pr)
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

    def cached_header(self, nexthop: int) -> bytes | None:
        """The link-layer header of an IPv4 packet to `nexthop` when sending one needs no
        step of the link's own now (Linux's neighbour hh_cache, used only while the
        neighbour is confirmed): the frame is then that header, the packet, and goes out by
        the NDD's ndd_output_gather -- what output() would have sent, octet for octet.  None
        (EtherLink: no REACHABLE ARP entry, a tap to show the frame to, a device that cannot
        gather; CLIP) sends it by output()."""

    def cached_header6(self, nexthop: int, src: int, now: float) -> bytes | None:
        """cached_header for an IPv6 packet from `src`: Ethernet's while Neighbor
        Discovery's entry is REACHABLE and not past its time (whose use, as output()'s,
        notes `src` for the entry's next solicitation, RFC 4861 §7.2.2)."""


@runtime_checkable
class LinkAddressOutput(Protocol):
    """A link with link-layer addresses that can also send a network-layer packet to a
    given one, with no resolution (`Interface.transmit_to`; EtherLink): what a DHCP server
    needs to answer a client that has no address yet at its chaddr (RFC 2131 §4.1), where
    Linux's dnsmasq injects an ARP entry instead.  Returns 0 or an errno."""

    def output_to(self, pkt: PacketBuffer, lladdr: bytes, now: float) -> int: ...


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


# --- what the socket layer may ask: user requests and socket state ---------------------------
# The socket layer (stack/socket.py, stack/stream.py, stack/ndd_socket.py) sees a protocol only
# through this: its user requests (4.4BSD `struct pr_usrreqs`, FreeBSD sys/protosw.h) and the
# socket-state flags one request returns.  It never reads a pcb's fields nor a protocol's states.

# so_state bits, with 4.4BSD's names and values (sys/socketvar.h)
SS_ISCONNECTED = 0x0002       # connected to a peer: data may flow
SS_ISCONNECTING = 0x0004      # connecting (TCP: SYN-SENT, SYN-RECEIVED; an SVC: SETUP sent)
SS_ISDISCONNECTING = 0x0008   # our side has closed, the peer not yet (TCP: FIN-WAIT-*, CLOSING, LAST-ACK)
SS_CANTSENDMORE = 0x0010      # no more data may be sent (our FIN is queued or gone)
SS_CANTRCVMORE = 0x0020       # no more data will arrive (the peer's FIN): reads end at EOF
# any of the three: a connection remains, data may still move one way or the other
SS_IN_CONNECTION = SS_ISCONNECTED | SS_ISCONNECTING | SS_ISDISCONNECTING
# A listening socket.  BSD says so with the socket option SO_ACCEPTCONN (so_options 0x0002),
# not with an so_state bit; here it is one more bit of the same answer, a value above every
# so_state bit BSD defines, and getsockopt(SOL_SOCKET, SO_ACCEPTCONN) reads it.
SS_ISACCEPTING = 0x10000

Pcb = Any        # a protocol's control block: opaque to the socket layer
Sockaddr = Any   # a protocol's address form, both ways: (addr: int, port: int) for AF_INET,
                 # SockaddrNddAtm for AF_NDD; the family's socket class parses and formats it
Upcall = Callable[[], None]


class UserRequests(Protocol):
    """One interface for every protocol's socket requests (pr_usrreqs).  Sans-IO: a request
    never waits; "would block" is None (recv, accept) or -EAGAIN (send), and the protocol
    calls the socket's upcall when what the socket may wait for changes (data, space, a
    connection, an error, a state).  Errors are errnos; a request a protocol has no use for
    answers EOPNOTSUPP, as BSD's pru_*_notsupp.  Every request that may act takes `now`."""

    # --- life --------------------------------------------------------------------------------
    def attach(self, now: float) -> Pcb:
        """pru_attach: a new, unbound control block for a new socket."""
        ...

    def set_upcall(self, pcb: Pcb, upcall: Upcall) -> None:
        """so_upcall: whom to wake on any change the socket may wait for (also for a pcb
        that accept() returned)."""
        ...

    def detach(self, pcb: Pcb, now: float) -> None:
        """pru_detach: the socket is closed (a connection may live on, orphaned)."""
        ...

    # --- names and connections -------------------------------------------------------------
    def bind(self, pcb: Pcb, addr: Sockaddr, now: float) -> int:
        ...

    def listen(self, pcb: Pcb, backlog: int, now: float) -> int:
        ...

    def accept(self, pcb: Pcb, now: float) -> tuple[Pcb, Sockaddr] | None:
        """pru_accept: the next connection ready on a listener and its peer's address, or None."""
        ...

    def connect(self, pcb: Pcb, addr: Sockaddr, now: float) -> int:
        """pru_connect: 0 once started (wait while `state` says SS_ISCONNECTING), or an errno."""
        ...

    def abandon_connect(self, pcb: Pcb, now: float) -> None:
        """A connect() the user gave up (cancelled): forget the attempt, keep the bound name."""
        ...

    def disconnect(self, pcb: Pcb, now: float) -> int:
        """pru_disconnect: connect(AF_UNSPEC) -- dissolve the association."""
        ...

    def shutdown(self, pcb: Pcb, how: int, now: float) -> int:
        """pru_shutdown for SHUT_RD/SHUT_WR/SHUT_RDWR; ENOTCONN when there is no connection.
        The socket marks its own halves once the state still shows a connection."""
        ...

    # --- data ------------------------------------------------------------------------------
    def send(self, pcb: Pcb, data: memoryview, addr: Sockaddr | None, now: float, flags: int = 0) -> int:
        """pru_send: the bytes taken (>= 0), or -errno; -EAGAIN: no room now, wait for the upcall.
        `flags`: the call's MSG_* bits a protocol acts on (TCP: MSG_MORE, MSG_EOR)."""
        ...

    def recv(self, pcb: Pcb, bufsize: int, peek: bool, now: float) -> tuple[bytes, Sockaddr | None] | None:
        """soreceive's protocol half: (data, the sender for datagrams) or None when nothing
        is there now (EOF and errors are told by `state` and `take_error`)."""
        ...

    # --- what the socket may ask -------------------------------------------------------------
    def state(self, pcb: Pcb) -> int:
        """so_state: the SS_* bits above, computed from the protocol's own state."""
        ...

    def readable(self, pcb: Pcb) -> bool:
        """recv/accept would not wait: data, EOF, a connection or an error pending."""
        ...

    def writable(self, pcb: Pcb) -> bool:
        """send would not wait: room, or an error or state that makes it fail."""
        ...

    def take_error(self, pcb: Pcb) -> int:
        """so_error, reported once (SO_ERROR, or the next call)."""
        ...

    def sockaddr(self, pcb: Pcb) -> Sockaddr:
        """pru_sockaddr: the local name."""
        ...

    def peeraddr(self, pcb: Pcb) -> Sockaddr | None:
        """pru_peeraddr: the peer's name, or None (ENOTCONN)."""
        ...

    # --- options and control -------------------------------------------------------------------
    def setsockopt(self, pcb: Pcb, level: int, name: int, value: Any, now: float) -> int:
        """pr_ctloutput(PRCO_SETOPT): `value` is an int for an int option (the socket layer
        decoded it as Linux does), else the caller's bytes or object."""
        ...

    def getsockopt(self, pcb: Pcb, level: int, name: int, now: float) -> Any:
        """pr_ctloutput(PRCO_GETOPT): the value, or None for ENOPROTOOPT."""
        ...

    def info(self, pcb: Pcb) -> dict[str, Any]:
        """pru_control's read side: the protocol's own description of the pcb (TCP_INFO as a
        dict; an ATM socket's VC and counters)."""
        ...


class StreamUserRequests(UserRequests, Protocol):
    """A byte stream's requests beyond every protocol's (4.4BSD pru_sendoob, pru_rcvoob and
    pru_control): urgent data, and the socket's ioctls."""

    def send_oob(self, pcb: Pcb, data: memoryview, now: float) -> int:
        """send(MSG_OOB): as `send`; the last byte taken is urgent data."""
        ...

    def recv_oob(self, pcb: Pcb, bufsize: int, peek: bool, now: float) -> bytes | int:
        """recv(MSG_OOB): the urgent data (at most `bufsize` bytes), or an errno -- it never
        waits (EAGAIN is an errno here, as in Linux)."""
        ...

    def control(self, pcb: Pcb, request: int, now: float) -> int:
        """ioctl(2) with an int result (SIOCATMARK): the value (>= 0) or -errno (-ENOTTY:
        not served)."""
        ...

    def recv_control(self, pcb: Pcb) -> list[tuple[int, int, bytes]]:
        """The ancillary data of a recvmsg that just read: (level, type, data) each, in the
        order the kernel puts them (TCP: TCP_INQ's TCP_CM_INQ)."""
        ...
