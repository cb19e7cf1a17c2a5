"""The AF_NDD 802.2 datagram family: socket(AF_NDD, SOCK_DGRAM, NDD_PROT_ETHER) over an
Ethernet NDD (a TAP, an in-process Ethernet link).  Whole frames both ways, as AIX gives them
to programs that use it (libdnet's eth-ndd.c, ISC dhcpd's NDD transmit interface).

Addresses are `struct sockaddr_ndd_8022` (AIX <sys/ndd_var.h>, bos530 1.6), big-endian as on
POWER, 36 octets:
    u_char sndd_8022_len, sndd_8022_family (AF_NDD 23); u_char nddname[16]; 2 pad octets;
    u_int sndd_8022_filterlen (sizeof(struct ns_8022) = 12);
    struct ns_8022 (<sys/cdli.h>) { u_int filtertype; u_char dsap; u_char orgcode[3];
                                    u_short ethertype; } and its 2 pad octets.
The Python form is the tuple (nddname, filtertype, dsap, orgcode, ethertype) -- the fields of
the filtertype that matter, the others 0 -- and the 36 octets are taken wherever it is.
filtertype: NS_ETHERTYPE (Ethernet II by type), NS_8022_LLC_DSAP (802.3 + LLC by DSAP),
NS_8022_LLC_DSAP_SNAP (DSAP 0xAA + SNAP orgcode and type, RFC 1042).

  bind(addr)     takes an ns_alloc reference on the NDD and claims the filter with
                 ns_add_filter, pkt_format NS_INCLUDE_MAC: every frame it matches arrives
                 whole (MAC header, LLC/SNAP, data; an 802.3 frame's padding trimmed).
                 ENODEV: no such NDD (AIX ns_alloc); EADDRNOTAVAIL: an NDD that is not
                 Ethernet; EINVAL: bound already, or a filtertype the demuxer has no use for
                 (NS_TAP included: it is no socket's); EADDRINUSE: the filter is claimed (by
                 the stack's IPv4/ARP/IPv6, or another socket -- the demuxer's EEXIST).
  connect(addr)  names the NDD sends go to (raw_nddpcb's rndd_sendnddp), claiming no filter
                 (dhcpd connects with a dummy ethertype, libdnet binds then connects with
                 the same address).  ENODEV / EADDRNOTAVAIL as bind; connect(AF_UNSPEC)
                 forgets it.
  send(frame)    one whole frame: destination, source, type or length, data (no FCS), the
                 source left as the program wrote it.  The NDD is the connected one, else
                 the bound one, else EDESTADDRREQ; sendto(frame, addr) names it.  Shorter
                 than a MAC header: EINVAL; above the NDD's MTU plus the 14-octet header:
                 EMSGSIZE; the NDD down: ENETDOWN (its ndd_output); a full transmit queue:
                 ENOBUFS (a datagram is not retried).
  recv           one frame per call, whole; a smaller buffer truncates.  The queue is bounded
                 by SO_RCVBUF (bytes, each frame charged FRAME_OVERHEAD more, as UDP charges
                 its skb); a frame that does not fit is dropped and counted (`stats()`).
                 recvfrom's address is the socket's own (the filter it matched).
  close          ns_del_filter, then ns_free.
"""
from __future__ import annotations

import errno
import socket as _pysocket
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ndd import constants as C
from ndd.counters import Counters
from ndd.demux import ETHER_HDRLEN, NS_INCLUDE_MAC, NsFilter, NsUser
from ndd.pktbuf import PacketBuffer
from protocols.sockopt import BUF_DEFAULT, get_socket_option, set_socket_option

if TYPE_CHECKING:
    from ndd.ndd import Ndd
    from ndd.services import NetServices

AF_NDD = C.AF_NDD
NDD_PROT_ETHER = C.NDD_PROT_ETHER
NDD_MAXNAMELEN = 16
# <sys/ndd_var.h> struct sockaddr_ndd_8022, with <sys/cdli.h> struct ns_8022 inside (module doc)
SOCKADDR_NDD_8022 = struct.Struct(">BB16s2xIIB3sH2x")
NS_8022_LEN = 12                 # sizeof(struct ns_8022): its u_int aligns it to 4
FILTER_TYPES = (C.NS_8022_LLC_DSAP, C.NS_8022_LLC_DSAP_SNAP, C.NS_ETHERTYPE)
FRAME_OVERHEAD = 768             # charged per queued frame against SO_RCVBUF (as the ATM sockets' SDUs)
SNAP_DSAP = 0xAA


@dataclass(frozen=True)
class SockaddrNdd8022:
    nddname: str
    filtertype: int = C.NS_ETHERTYPE
    dsap: int = 0
    orgcode: bytes = b"\x00\x00\x00"
    ethertype: int = 0

    def astuple(self) -> tuple[str, int, int, bytes, int]:
        return (self.nddname, self.filtertype, self.dsap, self.orgcode, self.ethertype)

    def pack(self) -> bytes:
        return SOCKADDR_NDD_8022.pack(SOCKADDR_NDD_8022.size, AF_NDD, self.nddname.encode(), NS_8022_LEN,
                                      self.filtertype, self.dsap, self.orgcode, self.ethertype)

    @classmethod
    def unpack(cls, data: bytes) -> SockaddrNdd8022:
        """The C form; ValueError for a short buffer or another family (Python's own check,
        as socket.bind raises for an address of the wrong shape)."""
        if len(data) < SOCKADDR_NDD_8022.size:
            raise ValueError(f"sockaddr_ndd_8022 is {SOCKADDR_NDD_8022.size} octets, not {len(data)}")
        _, family, name, _, ftype, dsap, org, etype = SOCKADDR_NDD_8022.unpack_from(data)
        if family != AF_NDD:
            raise ValueError(f"sockaddr_ndd_8022 family {family}, not AF_NDD ({AF_NDD})")
        return cls(name.split(b"\0", 1)[0].decode(errors="replace"), ftype, dsap, org, etype)

    def filter(self) -> NsFilter:
        return NsFilter(self.filtertype, ethertype=self.ethertype, dsap=self.dsap, orgcode=self.orgcode)


def parse_sockaddr_8022(address: object, what: str = "") -> SockaddrNdd8022:
    """An AF_NDD 802.2 address from the C form or the tuple (TypeError/ValueError for its
    shape; the values are left to the call: EINVAL there)."""
    prefix = f"{what}(): " if what else ""
    if isinstance(address, (bytes, bytearray, memoryview)):
        return SockaddrNdd8022.unpack(bytes(address))
    if isinstance(address, SockaddrNdd8022):
        return address
    if not isinstance(address, tuple):
        raise TypeError(f"{prefix}AF_NDD address must be tuple, not {type(address).__name__}")
    if len(address) == 2:          # (nddname, ethertype): the common NS_ETHERTYPE case
        address = (address[0], C.NS_ETHERTYPE, 0, b"\0\0\0", address[1])
    if len(address) != 5:
        raise TypeError(f"{prefix}AF_NDD 802.2 address must be a tuple (nddname, filtertype, dsap, "
                        "orgcode, ethertype) or (nddname, ethertype)")
    name, ftype, dsap, org, etype = address
    if not isinstance(name, str):
        raise TypeError(f"{prefix}nddname must be str, not {type(name).__name__}")
    if len(name.encode()) > NDD_MAXNAMELEN:
        raise ValueError(f"{prefix}nddname longer than {NDD_MAXNAMELEN} octets")
    if not isinstance(org, (bytes, bytearray)) or len(org) != 3:
        raise ValueError(f"{prefix}orgcode must be 3 octets")
    for v in (ftype, dsap, etype):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"{prefix}filtertype, dsap and ethertype must be int")
    if not (0 <= dsap <= 0xFF and 0 <= etype <= 0xFFFF and 0 <= ftype <= 0xFFFFFFFF):
        raise ValueError(f"{prefix}dsap, ethertype or filtertype out of range")
    return SockaddrNdd8022(name, ftype, dsap, bytes(org), etype)


def check_filter(addr: SockaddrNdd8022) -> int:
    """0, or EINVAL: a filtertype no socket may claim, or a SNAP filter whose DSAP is not 0xAA."""
    if addr.filtertype not in FILTER_TYPES:
        return errno.EINVAL
    if addr.filtertype == C.NS_8022_LLC_DSAP_SNAP and addr.dsap != SNAP_DSAP:
        return errno.EINVAL
    return 0


@dataclass
class Ndd8022Stats(Counters):
    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    rcvq_drops: int = 0       # the receive queue (SO_RCVBUF) was full
    tx_drops: int = 0         # ndd_output refused the frame (queue full, device down)


class Ndd8022Pcb:
    """One 802.2 socket: the bound NDD and filter, the NDD sends go to, the receive queue."""

    def __init__(self) -> None:
        self.ndd: Any = None                      # bound: an ns_alloc reference
        self.local: SockaddrNdd8022 | None = None
        self.user: NsUser | None = None
        self.peer: SockaddrNdd8022 | None = None  # connect()
        self.queue: deque[bytes] = deque()
        self.queued = 0
        self.rcvbuf = BUF_DEFAULT
        self.sndbuf = BUF_DEFAULT
        self.reuseaddr = self.reuseport = self.broadcast = False
        self.error = 0
        self.stats = Ndd8022Stats()
        self.on_readable: Callable[[], None] = lambda: None


class Ndd8022UserRequests:
    """pr_usrreqs of the 802.2 datagram family (protocols.contracts.UserRequests; sans-IO)."""

    def __init__(self, ns: NetServices) -> None:
        self.ns = ns

    # --- life ------------------------------------------------------------------------------
    def attach(self, now: float) -> Ndd8022Pcb:
        return Ndd8022Pcb()

    def set_upcall(self, pcb: Ndd8022Pcb, upcall: Callable[[], None]) -> None:
        pcb.on_readable = upcall

    def detach(self, pcb: Ndd8022Pcb, now: float) -> None:
        if pcb.ndd is not None:
            ndd, pcb.ndd = pcb.ndd, None
            if pcb.local is not None and pcb.user is not None:
                try:
                    self.ns.ns_del_filter(ndd, pcb.local.filter(), pcb.user)
                except OSError:
                    pass          # the NDD was detached under us: its filters went with it
            if self.ns.refcount.get(ndd.ndd_name, 0) > 0:
                self.ns.ns_free(ndd)
        pcb.user = None
        pcb.peer = None
        pcb.queue.clear()
        pcb.queued = 0

    # --- names -----------------------------------------------------------------------------
    def _ether_ndd(self, nddname: str) -> tuple[Ndd | None, int]:
        ndd = self.ns.ndds.get(nddname)
        if ndd is None:
            return None, errno.ENODEV
        if ndd.ndd_type != C.NDD_ISO88023:
            return None, errno.EADDRNOTAVAIL
        return ndd, 0

    def bind(self, pcb: Ndd8022Pcb, addr: SockaddrNdd8022, now: float) -> int:
        if pcb.ndd is not None:
            return errno.EINVAL
        _, err = self._ether_ndd(addr.nddname)
        if err:
            return err
        err = check_filter(addr)
        if err:
            return err
        try:
            ndd = self.ns.ns_alloc(addr.nddname)
        except OSError as exc:
            return exc.errno or errno.EIO
        user = NsUser(self._input, pcb, NS_INCLUDE_MAC)
        try:
            self.ns.ns_add_filter(ndd, addr.filter(), user)
        except OSError as exc:
            self.ns.ns_free(ndd)
            return errno.EADDRINUSE if exc.errno == errno.EEXIST else (exc.errno or errno.EIO)
        pcb.ndd, pcb.local, pcb.user = ndd, addr, user
        return 0

    def listen(self, pcb: Ndd8022Pcb, backlog: int, now: float) -> int:
        return errno.EOPNOTSUPP

    def accept(self, pcb: Ndd8022Pcb, now: float) -> None:
        return None

    def connect(self, pcb: Ndd8022Pcb, addr: SockaddrNdd8022, now: float) -> int:
        _, err = self._ether_ndd(addr.nddname)
        if err:
            return err
        pcb.peer = addr
        return 0

    def abandon_connect(self, pcb: Ndd8022Pcb, now: float) -> None:
        return None

    def disconnect(self, pcb: Ndd8022Pcb, now: float) -> int:
        pcb.peer = None
        return 0

    def shutdown(self, pcb: Ndd8022Pcb, how: int, now: float) -> int:
        return 0 if pcb.peer is not None else errno.ENOTCONN

    # --- data ------------------------------------------------------------------------------
    def _input(self, ndd: Ndd, pkt: PacketBuffer, pcb: Ndd8022Pcb) -> None:
        """The filter's isr: queue the whole frame, or drop and count it."""
        n = len(pkt)
        if pcb.queued + n + FRAME_OVERHEAD > pcb.rcvbuf:
            pcb.stats.rcvq_drops += 1
            return
        pcb.queue.append(pkt.tobytes())
        pcb.queued += n + FRAME_OVERHEAD
        pcb.stats.frames_in += 1
        pcb.stats.bytes_in += n
        pcb.on_readable()

    def send(self, pcb: Ndd8022Pcb, data: memoryview, addr: SockaddrNdd8022 | None, now: float,
             flags: int = 0) -> int:
        target = addr or pcb.peer or pcb.local
        if target is None:
            return -errno.EDESTADDRREQ
        ndd, err = self._ether_ndd(target.nddname)
        if ndd is None:
            return -err
        n = len(data)
        if n < ETHER_HDRLEN:
            return -errno.EINVAL
        if n > ndd.ndd_mtu + ETHER_HDRLEN:
            return -errno.EMSGSIZE
        if not ndd.is_open or not ndd.ndd_flags & C.NDD_UP:
            return -errno.ENETDOWN      # nobody has it open (ns_alloc), or it was brought down
        err = ndd.ndd_output(PacketBuffer.from_payload(data))
        if err:
            pcb.stats.tx_drops += 1
            return -(errno.ENOBUFS if err == errno.EAGAIN else err)
        pcb.stats.frames_out += 1
        pcb.stats.bytes_out += n
        return n

    def recv(self, pcb: Ndd8022Pcb, bufsize: int, peek: bool,
             now: float) -> tuple[bytes, SockaddrNdd8022 | None] | None:
        if not pcb.queue:
            return None
        frame = pcb.queue[0] if peek else pcb.queue.popleft()
        if not peek:
            pcb.queued -= len(frame) + FRAME_OVERHEAD
        return frame, pcb.local

    # --- what the socket may ask -----------------------------------------------------------
    def state(self, pcb: Ndd8022Pcb) -> int:
        return 0

    def readable(self, pcb: Ndd8022Pcb) -> bool:
        return bool(pcb.queue) or bool(pcb.error)

    def writable(self, pcb: Ndd8022Pcb) -> bool:
        return True

    def take_error(self, pcb: Ndd8022Pcb) -> int:
        err, pcb.error = pcb.error, 0
        return err

    def sockaddr(self, pcb: Ndd8022Pcb) -> SockaddrNdd8022 | None:
        return pcb.local

    def peeraddr(self, pcb: Ndd8022Pcb) -> SockaddrNdd8022 | None:
        return pcb.peer

    # --- options -----------------------------------------------------------------------------
    def setsockopt(self, pcb: Ndd8022Pcb, level: int, name: int, value: Any, now: float) -> int:
        if level != _pysocket.SOL_SOCKET or not isinstance(value, int):
            return errno.ENOPROTOOPT
        return set_socket_option(pcb, name, value)

    def getsockopt(self, pcb: Ndd8022Pcb, level: int, name: int, now: float) -> Any:
        if level != _pysocket.SOL_SOCKET:
            return None
        return get_socket_option(pcb, name)

    def info(self, pcb: Ndd8022Pcb) -> dict[str, Any]:
        return {"stats": pcb.stats.as_dict(), "queued": len(pcb.queue)}
