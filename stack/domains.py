"""socket(2) for the Stack: the socket layer's map of (family, type) -> socket class.

A domain registers its socket class here, in the socket layer (4.4BSD keeps the socket
layer's side of a domain in `struct domain`; here the protocol side is the protosw entry
of protocols/contracts.py and this map is the rest): AF_INET and AF_INET6 stream sockets
wait as stack/stream.py says, their datagram and raw sockets as stack/socket.py (both
classes take and give addresses by the socket's family: stack/sockaddr.py), and AF_NDD
(the ATM family, whose addresses are sockaddr_ndd_atm, and the 802.2 datagram family with
sockaddr_ndd_8022) as stack/ndd_socket.py.  A protocol
never chooses its socket class.
"""
from __future__ import annotations

import errno
import socket as _pysocket

from ndd.constants import AF_NDD
from protocols.contracts import oserror

from .ndd_socket import AtmSocket, Ndd8022Socket
from .socket import KNOWN_TYPES, SOCK_FLAGS, SOCK_TYPE_MASK, Socket, SocketHost
from .stream import StreamSocket

# (family, type) -> class; (family, None): every other type of the family; absent: Socket
SOCKET_CLASSES: dict[tuple[int, int | None], type[Socket]] = {
    (_pysocket.AF_INET, _pysocket.SOCK_STREAM): StreamSocket,
    (_pysocket.AF_INET6, _pysocket.SOCK_STREAM): StreamSocket,
    (AF_NDD, None): AtmSocket,
    (AF_NDD, _pysocket.SOCK_DGRAM): Ndd8022Socket,
}


def register_socket_class(family: int, type: int | None, cls: type[Socket]) -> None:
    """A domain's socket class for `type` (None: for any type of the family)."""
    SOCKET_CLASSES[(family, type)] = cls


def socket_class(family: int, type: int) -> type[Socket]:
    return SOCKET_CLASSES.get((family, type)) or SOCKET_CLASSES.get((family, None)) or Socket


def create(stack: SocketHost, family: int, type: int, proto: int = 0) -> Socket:
    base_type = type & SOCK_TYPE_MASK
    if type & ~SOCK_TYPE_MASK & ~SOCK_FLAGS:   # sys_socket: unknown flag bits are EINVAL
        raise oserror(errno.EINVAL)
    dom = stack.protosw.domains.get(family)
    if dom is None or not any(p.usrreqs is not None for p in dom.protosw):
        raise oserror(errno.EAFNOSUPPORT)     # no such family, or none of its protocols has sockets
    if base_type not in KNOWN_TYPES or not 0 <= proto <= 255:
        raise oserror(errno.EINVAL)
    candidates = [p for p in dom.protosw if p.type == base_type and p.usrreqs is not None]
    if not candidates:
        raise oserror(errno.ESOCKTNOSUPPORT)
    pr = next((p for p in candidates if proto in (0, p.protocol)), None)
    if pr is None:
        raise oserror(errno.EPROTONOSUPPORT)
    return socket_class(family, base_type)(stack, family, base_type, pr.protocol, pr)
