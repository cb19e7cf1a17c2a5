"""BSD-style protocol switch: domains hold protosw entries (4.4BSD `struct protosw`).

IPv4 input dispatches on `ip_protox` (protocol number -> entry); the socket layer
(next issue) finds entries by (family, type, protocol) like `pffindproto`/`pffindtype`.
"""
from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Callable

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

    def find_type(self, family: int, type: int) -> Protosw | None:
        dom = self.domains.get(family)
        if dom is None:
            return None
        return next((p for p in dom.protosw if p.type == type), None)


def oserror(code: int) -> OSError:
    """The OSError a user request's errno becomes at the socket API (errno and its text)."""
    return OSError(code, os.strerror(code))
