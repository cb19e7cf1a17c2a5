"""Classical IP over ATM PVCs: RFC 2684 LLC/SNAP routed encapsulation, RFC 2225 InATMARP.

Every SDU on a CLIP VC starts with an RFC 2684 §5.1 LLC/SNAP header (routed, non-ISO PDU):

    AA AA 03 | OUI 00 00 00 | EtherType 08 00 (IPv4) or 08 06 (ATMARP/InATMARP)

`AtmArpTable` is the sans-IO core (it never touches trio or a device): it maps next-hop
IPv4 addresses to PVCs (vpi, vci), holds static entries and entries learned by
Inverse ATMARP (RFC 2225 §8.2, RFC 2390), and drives the InATMARP state machine with an
explicit `now` and the `poll_at()/poll(now)` timer contract (stack/timers.py).

A PVC's states:
  RESOLVING     far end unknown: InATMARP_Request every retrans_time (max_retries times),
                then every slow_retry -- a PVC is permanent, its far end may come up later
  VALID         peer known (static: forever; learned: for entry_lifetime, RFC 2225 §8.5.1)
  REVALIDATING  a learned entry aged: InATMARP_Request sent, IP traffic held until the
                reply (RFC 2225 §8.5.1: validate before sending non-ATMARP traffic); no
                reply after max_retries -> back to RESOLVING, held packets unreachable

`AtmLink` is the ATM counterpart of protocols.ether.EtherLink: `output(pkt, nexthop, now)`
frames an IPv4 packet for its PVC; `input(pkt, vpi, vci, now)` classifies a received SDU.
Bad or unknown SDUs are dropped and counted in `ClipStats`, never raised.  With SVCs
enabled (`link.svc`, protocols/atm/clip/svc.py) a next hop no PVC leads to goes to the SVC
side, and so does ATMARP on a VC that is not a PVC.  The packet codec is atmarp.py.
"""
from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ndd.atm import ATM_HDRLEN, LLC_HEADER, atm_link_header
from ndd.counters import Counters
from ndd.pktbuf import PacketBuffer
from protocols.addr import is_multicast

from .atmarp import (
    AR_HRD_ATM,
    AR_PRO_IPV4,
    ATMARP_FIXED_LEN,
    OP_INARP_REPLY,
    OP_INARP_REQUEST,
    OP_NAK,
    OP_REPLY,
    OP_REQUEST,
    TL_E164,
    TL_LEN,
    AtmArpRepr,
)

if TYPE_CHECKING:
    from ndd.ndd import Ndd
    from protocols.ifnet import Interface

# RFC 2684 §5.1: LLC AA-AA-03, OUI 00-00-00, then the EtherType of the routed PDU
LLC_SNAP_LEN = 8
LLC_SNAP_IPV4 = LLC_HEADER + bytes.fromhex("0000000800")
LLC_SNAP_ATMARP = LLC_HEADER + bytes.fromhex("0000000806")

RESOLVING, VALID, REVALIDATING = "RESOLVING", "VALID", "REVALIDATING"


@dataclass
class ClipConfig:
    retrans_time: float = 1.0        # InATMARP retry while resolving (RFC 2225 leaves it open; ARP's 1 s)
    max_retries: int = 3             # fast retries, then slow_retry (resolving) / give up (revalidating)
    slow_retry: float = 10.0         # RFC 2225 §5.3 spirit: no faster than every few seconds once idle
    entry_lifetime: float = 900.0    # RFC 2225 §8.5.1: a client's entry is valid at most 15 minutes
    queue_len: int = 256             # packets held per next hop while it resolves (as ArpConfig)
    queue_bytes: int = 212992
    # SVCs (protocols/atm/clip/svc.py)
    svc_idle_timeout: float = 1200.0  # release an SVC without IP traffic this long (RFC 1755's 20 minutes)
    register_interval: float = 900.0  # RFC 2225 §8.5: re-register with the ATMARP server every 15 minutes
    server_lifetime: float = 1200.0   # RFC 2225 §8.4: a server's entry lives 20 minutes unless refreshed
    # Table bounds: next hops being resolved or learned (PVC pending list, the SVC client's
    # peers) at most max_entries, like Linux's neighbour gc_thresh3 (1024); the ATMARP
    # server's registrations at most server_max_entries.  Beyond: refused and counted.
    max_entries: int = 1024
    server_max_entries: int = 4096


@dataclass
class ClipStats(Counters):
    rx_ip: int = 0
    rx_atmarp: int = 0
    rx_short: int = 0                # SDU shorter than the LLC/SNAP header
    rx_bad_llc: int = 0              # LLC/SNAP header other than routed IPv4 / ATMARP
    rx_unknown_vc: int = 0           # a frame on a VC that is not (or no longer) a CLIP PVC
    arp_malformed: int = 0
    rx_inarp_requests: int = 0
    rx_inarp_replies: int = 0
    rx_unsupported: int = 0          # ATMARP request/reply/NAK where no ATMARP server/client runs
    tx_inarp_requests: int = 0
    tx_inarp_replies: int = 0
    tx_ip: int = 0
    tx_errors: int = 0               # the adapter refused an SDU
    tx_no_vc: int = 0                # next hop maps to no PVC and none is resolving: EHOSTUNREACH
    tx_no_broadcast: int = 0         # a LIS has no broadcast/multicast (RFC 2225 §9): dropped
    no_address: int = 0              # InATMARP needs our IP address and we have none yet
    learned: int = 0
    changed: int = 0                 # a PVC's far end came back with another address
    conflicts: int = 0               # a peer claims our own address, or a static PVC's peer differs
    revalidation_failed: int = 0
    unreachable: int = 0             # held packets given up (reported to their senders)
    queue_drops: int = 0
    # SVCs (svc.py): calls and the ATMARP client (RFC 2225 §8.5)
    calls_placed: int = 0
    calls_accepted: int = 0
    calls_failed: int = 0            # refused or unanswered: the held packets are unreachable
    calls_cleared: int = 0           # an open SVC cleared by the far end or the network
    calls_idle: int = 0              # released by us after svc_idle_timeout without IP
    tx_arp_requests: int = 0         # to the ATMARP server: registrations and resolutions
    rx_arp_replies: int = 0
    rx_arp_naks: int = 0
    registrations: int = 0           # our registration confirmed by the server
    resolve_failed: int = 0          # NAK, or no answer from the server
    # the ATMARP server role (atmarp_server.py, RFC 2225 §8.4)
    server_requests: int = 0
    server_replies: int = 0
    server_naks: int = 0
    server_registrations: int = 0    # new (IP, ATM address) pairs learned
    server_refreshes: int = 0
    server_duplicates: int = 0       # an address registered by another ATM address with an open VC
    server_table_full: int = 0       # a new registration refused: server_max_entries already
    table_full: int = 0              # a new next hop or learned address refused: max_entries already
    server_aged: int = 0


@dataclass(eq=False)
class Pvc:
    vpi: int
    vci: int
    peer: int | None = None
    static: bool = False
    state: str = RESOLVING
    deadline: float = 0.0            # RESOLVING/REVALIDATING: next InATMARP; VALID learned: ages
    retries: int = 0
    queue: deque[PacketBuffer] = field(default_factory=deque)   # REVALIDATING: held IP traffic
    queued: int = 0

    @property
    def vc(self) -> tuple[int, int]:
        return self.vpi, self.vci


@dataclass(eq=False)
class _Pending:
    """Packets for a next hop no PVC maps to yet, while some PVC is still resolving."""
    deadline: float
    queue: deque[PacketBuffer] = field(default_factory=deque)
    queued: int = 0


class AtmArpTable:
    """IPv4 next hop -> PVC, with InATMARP (sans-IO).

    transmit(vpi, vci, atmarp_bytes)  sends one ATMARP packet (the link adds LLC/SNAP)
    transmit_ip(pkt, vpi, vci)        sends one held IPv4 packet once its PVC is known
    unreachable(pkt)                  reports a held packet that can never be sent
    """

    def __init__(self, local_addrs: Callable[[], list[int]], transmit: Callable[[int, int, bytes], int],
                 transmit_ip: Callable[[PacketBuffer, int, int], int], unreachable: Callable[[PacketBuffer], None],
                 config: ClipConfig | None = None,
                 source_for: Callable[[int], int | None] | None = None) -> None:
        self.local_addrs = local_addrs
        self.source_for = source_for or (lambda ip: next(iter(local_addrs()), None))
        self.transmit = transmit
        self.transmit_ip = transmit_ip
        self.unreachable = unreachable
        self.config = config or ClipConfig()
        self.stats = ClipStats()
        self.pvcs: dict[tuple[int, int], Pvc] = {}
        self.by_ip: dict[int, Pvc] = {}
        self.pending: dict[int, _Pending] = {}
        self.kick: Callable[..., None] = lambda at=None: None

    # --- configuration ----------------------------------------------------------------
    def add_pvc(self, vpi: int, vci: int, peer: int | None, now: float) -> Pvc:
        """A static entry when `peer` is given; else resolve the far end by InATMARP now."""
        if (vpi, vci) in self.pvcs:
            raise ValueError(f"PVC {vpi}/{vci} already in the table")
        if peer is not None and peer in self.by_ip:
            raise ValueError("that peer address already maps to another PVC")
        pvc = Pvc(vpi, vci)
        self.pvcs[pvc.vc] = pvc
        if peer is not None:
            pvc.static = True
            self._bind(pvc, peer, now)
        else:
            pvc.deadline = now           # first InATMARP_Request at the next poll
            self.kick(now)
        return pvc

    def remove_pvc(self, vpi: int, vci: int) -> None:
        pvc = self.pvcs.pop((vpi, vci), None)
        if pvc is None:
            return
        if pvc.peer is not None and self.by_ip.get(pvc.peer) is pvc:
            del self.by_ip[pvc.peer]
        self._fail_queue(pvc.queue)
        pvc.queued = 0

    def address_added(self, now: float) -> None:
        """A new local address: PVCs that waited for one to ask with resolve at once."""
        for pvc in self.pvcs.values():
            if pvc.state == RESOLVING and pvc.retries == 0:
                pvc.deadline = now
        self.kick(now)

    def flush(self) -> None:
        for pvc in list(self.pvcs.values()):
            self.remove_pvc(pvc.vpi, pvc.vci)
        for p in self.pending.values():
            self._fail_queue(p.queue)
        self.pending.clear()

    def table(self) -> list[tuple[tuple[int, int], int | None, str, bool]]:
        return [(p.vc, p.peer, p.state, p.static) for p in self.pvcs.values()]

    # --- output -----------------------------------------------------------------------
    def resolve(self, ip: int, pkt: PacketBuffer, now: float) -> tuple[int, int] | int | None:
        """The PVC to send to `ip` on; None: held (sent or reported unreachable later);
        an errno when no PVC can ever carry it."""
        pvc = self.by_ip.get(ip)
        if pvc is not None:
            if pvc.state == VALID:
                return pvc.vc
            pvc.queued = self._hold(pvc.queue, pvc.queued, pkt)
            return None
        if not any(p.state == RESOLVING for p in self.pvcs.values()):
            self.stats.tx_no_vc += 1
            return errno.EHOSTUNREACH
        # some far end is still unknown: it may be `ip`; wait as long as the fast retries last
        pend = self.pending.get(ip)
        if pend is None:
            if len(self.pending) >= self.config.max_entries:
                self.stats.table_full += 1
                return errno.ENOBUFS
            pend = self.pending[ip] = _Pending(now + self.config.retrans_time * self.config.max_retries)
            self.kick(pend.deadline)
        pend.queued = self._hold(pend.queue, pend.queued, pkt)
        return None

    def _hold(self, queue: deque[PacketBuffer], queued: int, pkt: PacketBuffer) -> int:
        queue.append(pkt)
        queued += len(pkt)
        while len(queue) > self.config.queue_len or queued > self.config.queue_bytes:
            queued -= len(queue.popleft())
            self.stats.queue_drops += 1
        return queued

    # --- input (RFC 2225 §8.2, RFC 2390 §7) ---------------------------------------------
    def input(self, vpi: int, vci: int, data: bytes | bytearray | memoryview, now: float) -> None:
        pvc = self.pvcs.get((vpi, vci))
        if pvc is None:
            self.stats.rx_unknown_vc += 1
            return
        arp = AtmArpRepr.parse(data)
        if arp is None:
            self.stats.arp_malformed += 1
            return
        if arp.op == OP_INARP_REQUEST:
            self.stats.rx_inarp_requests += 1
            if arp.spa is None:
                self.stats.arp_malformed += 1   # RFC 2390: the requester supplies its own address
                return
            # RFC 2390 §7.1: the responder may learn the requester's address from the request
            self._learn(pvc, arp.spa, now)
            src = self.source_for(arp.spa)
            if not src:
                self.stats.no_address += 1
                return
            # on a PVC our ATM address may be empty (RFC 2225 §8.7.5); echo the requester's as target
            reply = AtmArpRepr(OP_INARP_REPLY, src, arp.spa, tha=arp.sha, tsa=arp.ssa, ttype=arp.stype)
            self.stats.tx_inarp_replies += 1
            self.transmit(vpi, vci, reply.emit())
        elif arp.op == OP_INARP_REPLY:
            self.stats.rx_inarp_replies += 1
            if arp.spa is None:
                self.stats.arp_malformed += 1
                return
            self._learn(pvc, arp.spa, now)
        else:
            # ATMARP proper resolves ATM addresses through a server over SVCs (RFC 2225 §8.3);
            # on a PVC it answers nothing we need
            self.stats.rx_unsupported += 1

    def _learn(self, pvc: Pvc, ip: int, now: float) -> None:
        if ip == 0 or ip in self.local_addrs():
            self.stats.conflicts += 1
            return
        if pvc.static:
            if ip != pvc.peer:
                self.stats.conflicts += 1   # the operator's word stands
            return
        if pvc.peer is not None and pvc.peer != ip:
            self.stats.changed += 1
        self._bind(pvc, ip, now)

    def _bind(self, pvc: Pvc, ip: int, now: float) -> None:
        if pvc.peer is not None and self.by_ip.get(pvc.peer) is pvc:
            del self.by_ip[pvc.peer]
        other = self.by_ip.get(ip)
        if other is not None and other is not pvc:
            if other.static:
                self.stats.conflicts += 1
                return
            # the address moved to another PVC: the old one must find out who is there now
            other.peer, other.state, other.retries, other.deadline = None, RESOLVING, 0, now
            self.stats.changed += 1
        first = pvc.state == RESOLVING
        pvc.peer, pvc.state, pvc.retries = ip, VALID, 0
        pvc.deadline = float("inf") if pvc.static else now + self.config.entry_lifetime
        self.by_ip[ip] = pvc
        if first and not pvc.static:
            self.stats.learned += 1
        held, pvc.queue, pvc.queued = pvc.queue, deque(), 0
        pend = self.pending.pop(ip, None)
        if pend is not None:
            held.extend(pend.queue)
        for pkt in held:
            self.transmit_ip(pkt, pvc.vpi, pvc.vci)
        self.kick()

    # --- timers -----------------------------------------------------------------------
    def poll_at(self) -> float | None:
        times = [p.deadline for p in self.pvcs.values() if p.deadline != float("inf")]
        times.extend(p.deadline for p in self.pending.values())
        return min(times, default=None)

    def poll(self, now: float) -> None:
        cfg = self.config
        for pvc in [p for p in self.pvcs.values() if p.deadline <= now]:
            if self.pvcs.get(pvc.vc) is not pvc:
                continue             # a callback removed it
            if pvc.state == VALID:
                # aged (RFC 2225 §8.5.1): revalidate before sending more IP on it
                pvc.state, pvc.retries = REVALIDATING, 0
            if pvc.state == REVALIDATING and pvc.retries >= cfg.max_retries:
                self.stats.revalidation_failed += 1
                if pvc.peer is not None and self.by_ip.get(pvc.peer) is pvc:
                    del self.by_ip[pvc.peer]
                pvc.peer, pvc.state, pvc.retries = None, RESOLVING, 0
                queue, pvc.queue, pvc.queued = pvc.queue, deque(), 0
                self._fail_queue(queue)
            if not self._request(pvc):
                pvc.deadline = now + cfg.retrans_time   # no address yet: address_added() hurries
                continue
            pvc.retries += 1
            slow = pvc.state == RESOLVING and pvc.retries >= cfg.max_retries
            pvc.deadline = now + (cfg.slow_retry if slow else cfg.retrans_time)
        for ip, pend in [(ip, p) for ip, p in self.pending.items() if p.deadline <= now]:
            del self.pending[ip]
            self._fail_queue(pend.queue)

    def _request(self, pvc: Pvc) -> bool:
        src = self.source_for(pvc.peer) if pvc.peer is not None else (self.local_addrs() or [0])[0]
        if not src:
            self.stats.no_address += 1
            return False
        # RFC 2390 §7.1 / RFC 2225 §8.2: our addresses as source, the target IP unknown (length 0)
        req = AtmArpRepr(OP_INARP_REQUEST, src, None)
        self.stats.tx_inarp_requests += 1
        self.transmit(pvc.vpi, pvc.vci, req.emit())
        return True

    def _fail_queue(self, queue: deque[PacketBuffer]) -> None:
        while queue:
            self.stats.unreachable += 1
            self.unreachable(queue.popleft())


class AtmLink:
    """IPv4 over ATM PVCs: pick the PVC for the next hop, add LLC/SNAP and the link header."""

    def __init__(self, ifp: Interface, ndd: Ndd, table: AtmArpTable,
                 ip_input: Callable[[PacketBuffer, float], None]) -> None:
        self.ifp = ifp
        self.ndd = ndd
        self.table = table
        self.ip_input = ip_input
        self.stats = table.stats
        self.svc: Any = None              # svc.ClipSvc once the interface also runs SVCs
        self.svc_calls: Any = None        # and its calls.ClipCalls
        table.transmit = lambda vpi, vci, data: self.send(PacketBuffer.from_payload(data), vpi, vci, LLC_SNAP_ATMARP)
        table.transmit_ip = lambda pkt, vpi, vci: self.send(pkt, vpi, vci, LLC_SNAP_IPV4)

    def cached_header(self, nexthop: int) -> bytes | None:
        """contracts.LinkOutput: none -- a packet's VC is chosen by output() each time."""
        return None

    def cached_header6(self, nexthop: int, src: int, now: float) -> bytes | None:
        return None                   # (no IPv6 over CLIP)

    def output(self, pkt: PacketBuffer, nexthop: int, now: float) -> int:
        if self.ifp.is_broadcast(nexthop) or is_multicast(nexthop):
            # no broadcast on a LIS (RFC 2225 §9); Linux's clip drops these silently too
            self.stats.tx_no_broadcast += 1
            return 0
        if self.svc is not None and nexthop not in self.table.by_ip:
            vc = self.svc.resolve(nexthop, pkt, now)     # a next hop no PVC leads to: SVCs
        else:
            vc = self.table.resolve(nexthop, pkt, now)
        if vc is None:
            return 0                      # held until (In)ATMARP answers or the call connects
        if isinstance(vc, int):
            return vc
        return self.send(pkt, vc[0], vc[1], LLC_SNAP_IPV4)

    def send(self, pkt: PacketBuffer, vpi: int, vci: int, llc: bytes) -> int:
        # both headers go into the headroom: the IP packet itself is never copied
        pkt.prepend(LLC_SNAP_LEN)[:] = llc
        pkt.prepend(ATM_HDRLEN)[:] = atm_link_header(vpi, vci)
        err = self.ndd.ndd_output(pkt)
        if err:
            self.stats.tx_errors += 1
        elif llc is LLC_SNAP_IPV4:
            self.stats.tx_ip += 1
        return err

    def input(self, pkt: PacketBuffer, vpi: int, vci: int, now: float) -> None:
        """One SDU from a CLIP PVC or SVC (link header already stripped by the ATM demuxer)."""
        if len(pkt) < LLC_SNAP_LEN:
            self.stats.rx_short += 1
            return
        head = bytes(pkt.view()[:LLC_SNAP_LEN])
        if head == LLC_SNAP_IPV4:
            self.stats.rx_ip += 1
            pkt.pull(LLC_SNAP_LEN)
            self.ip_input(pkt, now)
        elif head == LLC_SNAP_ATMARP:
            self.stats.rx_atmarp += 1
            if self.svc is not None and (vpi, vci) not in self.table.pvcs:
                self.svc.input((vpi, vci), pkt.view()[LLC_SNAP_LEN:], now)
            else:
                self.table.input(vpi, vci, pkt.view()[LLC_SNAP_LEN:], now)
        else:
            self.stats.rx_bad_llc += 1


__all__ = [
    "AR_HRD_ATM",
    "AR_PRO_IPV4",
    "ATMARP_FIXED_LEN",
    "LLC_SNAP_ATMARP",
    "LLC_SNAP_IPV4",
    "LLC_SNAP_LEN",
    "OP_INARP_REPLY",
    "OP_INARP_REQUEST",
    "OP_NAK",
    "OP_REPLY",
    "OP_REQUEST",
    "RESOLVING",
    "REVALIDATING",
    "TL_E164",
    "TL_LEN",
    "VALID",
    "AtmArpRepr",
    "AtmArpTable",
    "AtmLink",
    "ClipConfig",
    "ClipStats",
    "Pvc",
]
