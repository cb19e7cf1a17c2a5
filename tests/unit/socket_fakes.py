"""Sockets over recording user requests: a SocketHost (the socket layer's view of a Stack) with
AF_INET and (optionally) AF_INET6 domains whose UDP and TCP entries keep what the socket layer
hands them and answer what a test sets.  No protocol runs."""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from protocols.contracts import SS_ISACCEPTING, SS_ISCONNECTED, ProtocolSwitch, Protosw
from stack.domains import create

V6_TEST = 0x2001_0DB8 << 96 | 1
FD00_1 = 0xFD00 << 112 | 1
LL_1 = 0xFE80 << 112 | 1
MAPPED = 0xFFFF_0A00_0001            # ::ffff:10.0.0.1


@dataclass(eq=False)
class Pcb:
    name: Any = None
    peer: Any = None
    listening: bool = False
    upcall: Any = None
    datagrams: list[tuple[bytes, Any]] = field(default_factory=list)
    children: list[tuple[Pcb, Any]] = field(default_factory=list)
    options: dict[tuple[int, int], Any] = field(default_factory=dict)


class RecordingRequests:
    """User requests that keep what the socket layer handed them and answer what the test set."""

    def __init__(self, unbound: Any) -> None:
        self.unbound = unbound          # the family's "nothing bound" sockaddr
        self.calls: list[tuple[Any, ...]] = []

    def attach(self, now: float) -> Pcb:
        return Pcb(name=self.unbound)

    def set_upcall(self, pcb: Pcb, upcall: Any) -> None:
        pcb.upcall = upcall

    def detach(self, pcb: Pcb, now: float) -> None:
        self.calls.append(("detach",))

    def bind(self, pcb: Pcb, addr: Any, now: float) -> int:
        self.calls.append(("bind", addr))
        pcb.name = addr
        return 0

    def listen(self, pcb: Pcb, backlog: int, now: float) -> int:
        pcb.listening = True
        return 0

    def accept(self, pcb: Pcb, now: float) -> tuple[Pcb, Any] | None:
        return pcb.children.pop(0) if pcb.children else None

    def connect(self, pcb: Pcb, addr: Any, now: float) -> int:
        self.calls.append(("connect", addr))
        pcb.peer = addr
        return 0

    def abandon_connect(self, pcb: Pcb, now: float) -> None:
        pass

    def disconnect(self, pcb: Pcb, now: float) -> int:
        pcb.peer = None
        return 0

    def shutdown(self, pcb: Pcb, how: int, now: float) -> int:
        return 0

    def send(self, pcb: Pcb, data: memoryview, addr: Any, now: float, flags: int = 0) -> int:
        self.calls.append(("send", bytes(data), addr))
        return len(data)

    def recv(self, pcb: Pcb, bufsize: int, peek: bool, now: float) -> tuple[bytes, Any] | None:
        return pcb.datagrams.pop(0) if pcb.datagrams else None

    def state(self, pcb: Pcb) -> int:
        return (SS_ISACCEPTING if pcb.listening else 0) | (SS_ISCONNECTED if pcb.peer is not None else 0)

    def readable(self, pcb: Pcb) -> bool:
        return bool(pcb.datagrams or pcb.children)

    def writable(self, pcb: Pcb) -> bool:
        return True

    def take_error(self, pcb: Pcb) -> int:
        return 0

    def sockaddr(self, pcb: Pcb) -> Any:
        return pcb.name

    def peeraddr(self, pcb: Pcb) -> Any:
        return pcb.peer

    def setsockopt(self, pcb: Pcb, level: int, name: int, value: Any, now: float) -> int:
        self.calls.append(("setsockopt", level, name, value))
        pcb.options[(level, name)] = value
        return 0

    def getsockopt(self, pcb: Pcb, level: int, name: int, now: float) -> Any:
        return pcb.options.get((level, name))

    def info(self, pcb: Pcb) -> dict[str, Any]:
        return {}


class Host:
    """A SocketHost with AF_INET and AF_INET6 domains of recording UDP/TCP entries (AF_INET only
    with `inet6=False`), its interfaces given as name -> index."""

    def __init__(self, inet6: bool = True, interfaces: dict[str, int] | None = None) -> None:
        self.hosts: dict[str, Any] = {"v6.test": "2001:db8::1", "v4.test": "10.0.0.9"}
        self.interfaces = {"eth0": 2} if interfaces is None else interfaces
        self.protosw = ProtocolSwitch()
        self.requests: dict[tuple[int, int], RecordingRequests] = {}
        families = ((socket.AF_INET, (0, 0)), (socket.AF_INET6, (0, 0, 0, 0)))[:2 if inet6 else 1]
        for family, unbound in families:
            self.protosw.add_domain(family, "inet")
            for kind, proto in ((socket.SOCK_DGRAM, socket.IPPROTO_UDP), (socket.SOCK_STREAM, socket.IPPROTO_TCP)):
                ops = self.requests[(family, kind)] = RecordingRequests(unbound)
                self.protosw.add(family, Protosw(f"{family}/{kind}", kind, proto, usrreqs=ops))

    def now(self) -> float:
        return 0.0

    def if_nametoindex(self, name: str) -> int:
        if name not in self.interfaces:
            raise OSError("no interface with this name")
        return self.interfaces[name]

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0) -> Any:
        return create(self, family, type, proto)
