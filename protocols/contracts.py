"""BSD-style protocol switch: domains hold protosw entries (4.4BSD `struct protosw`).

IPv4 input dispatches on `ip_protox` (protocol number -> entry); the socket layer
(next issue) finds entries by (family, type, protocol) like `pffindproto`/`pffindtype`.
"""
from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

# pr_flags
PR_ATOMIC = 0x01        # exchange atomic messages only
PR_ADDR = 0x02          # addresses given with messages
PR_CONNREQUIRED = 0x04  # connection required by protocol


@dataclass(eq=False)
class Protosw:
    name: str
    type: int                      # socket type (SOCK_DGRAM, SOCK_STREAM, SOCK_RAW, ...)
    protocol: int                  # IPPROTO_* (or NDD_PROT_*)
    input: Callable[..., None] | None = None       # pr_input(pkt, ip_meta, now)
    ctlinput: Callable[..., None] | None = None    # pr_ctlinput(icmp_error)
    usrreqs: "UserRequests | None" = None   # the socket requests (below); None: no sockets
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

    def find_type(self, family: int, type: int) -> Protosw | None:
        dom = self.domains.get(family)
        if dom is None:
            return None
        return next((p for p in dom.protosw if p.type == type), None)


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
    def send(self, pcb: Pcb, data: memoryview, addr: Sockaddr | None, now: float) -> int:
        """pru_send: the bytes taken (>= 0), or -errno; -EAGAIN: no room now, wait for the upcall."""
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
