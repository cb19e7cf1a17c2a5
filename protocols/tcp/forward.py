"""The TCP forwarder's records: a SYN for an address or port no listener serves, held while
the owner decides (issue 13, `tunstack gateway`).

The idea is gVisor netstack's tcpip "forwarder" (and what passt and VPNKit do): a gateway's
Stack answers for every address the guest talks to (ifnet.Interface.transparent), so a SYN
no listener takes is handed to the owner (`Tcp.forwarder`) instead of being reset.  The
owner connects a host socket to the destination first and only then answers the guest:
`Tcp.forward_accept` (SYN-ACK: the guest's connect succeeds) or `Tcp.forward_reject` (an
RST, an ICMP unreachable, or nothing at all) -- so a refused, unreachable or silent
destination looks to the guest as it would on a real network.

While the owner decides, the SYN is held here: its parsed header (to build the connection a
listener would have built), the interface it came by and up to 576 octets of the datagram (to
quote in an ICMP error).  The table is bounded (TcpConfig.forward_pending_max: a SYN beyond it
is dropped and counted, the guest's SYN retry asks again) and every entry has a lifetime
(TcpConfig.forward_timeout: unresolved by then, it is forgotten and counted).  The guest's
retransmitted SYNs for a held 4-tuple are recognised (one dict lookup) and ignored, so they
never ask the owner twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..ifnet import Interface
    from ..ipv4 import IpMeta
    from ..ipv6.ip6 import Ip6Meta
    from .wire import TcpRepr

# forward_reject's `how`: an RST (the destination refused: ECONNREFUSED for the guest), silence
# (no answer: the guest's SYN retries run out, ETIMEDOUT), or an ICMP(v6) destination
# unreachable with the code for a network, a host, a port, or a filter (administratively
# prohibited).  IPv4 codes per RFC 792 / RFC 1812 §5.2.7.1, IPv6 ones per RFC 4443 §3.1.
REJECT_RST = "rst"
REJECT_SILENT = "silent"
REJECT_NET = "net"
REJECT_HOST = "host"
REJECT_PORT = "port"
REJECT_ADMIN = "admin"
ICMP_UNREACH_CODES = {REJECT_NET: 0, REJECT_HOST: 1, REJECT_PORT: 3, REJECT_ADMIN: 13}
ICMP6_UNREACH_CODES = {REJECT_NET: 0, REJECT_HOST: 3, REJECT_PORT: 4, REJECT_ADMIN: 1}
QUOTE_MAX = 576        # what an ICMP error may quote of the SYN (Linux: up to 576 octets in all)


@dataclass(frozen=True, slots=True)
class SynOptions:
    """What the guest's SYN offered (RFC 9293 §3.7.1 MSS, RFC 7323 window scale and
    timestamps, RFC 2018 SACK), as the core parsed it: a gateway may mirror it on the host
    socket (TCP_MAXSEG)."""
    mss: int | None
    wscale: int | None
    sack_permitted: bool
    timestamps: bool


@dataclass(frozen=True, slots=True)
class ForwardRequest:
    """A SYN no listener takes, for the owner's `Tcp.forwarder`.  `family` is AF_INET or
    AF_INET6; addresses are ints (32- or 128-bit); `dst`/`dport` is where the guest wants to
    go, `src`/`sport` the guest.  `id` names it in forward_accept / forward_reject."""
    id: int
    family: int
    src: int
    sport: int
    dst: int
    dport: int
    options: SynOptions
    ifp: Interface | None
    now: float


@dataclass(slots=True)
class PendingSyn:
    """A held SYN (the core's record of a ForwardRequest)."""
    request: ForwardRequest
    seg: TcpRepr
    meta: IpMeta | Ip6Meta
    quote: bytes               # the SYN's datagram from its IP header, at most QUOTE_MAX octets
    datalen: int               # the SYN's payload (TCP Fast Open data): an RST acknowledges it
    net6: bool
    deadline: float
    rejected: bool = False     # rejected silently: kept until the deadline to ignore the retries

    @property
    def key(self) -> tuple[bool, int, int, int, int]:
        r = self.request
        return self.net6, r.dst, r.dport, r.src, r.sport
