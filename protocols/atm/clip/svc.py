"""Classical IP over SVCs (RFC 2225 §8.3-8.5; the SETUP per RFC 1755): the sans-IO core.

One `ClipSvc` per CLIP interface that runs SVCs (`Stack.add_atm_svc`).  It maps next-hop
IPv4 addresses to ATM addresses (AESAs) and those to SVCs.  It never touches trio, a
device or the signalling: the glue (calls.py) places and releases calls for it
(`call(vc) -> errno`, `release(vc)`) and reports back (`connected`, `failed`, `cleared`,
`incoming`); ATMARP goes out through `transmit((vpi, vci), bytes)`, IP through
`transmit_ip(pkt, (vpi, vci))`; timers follow the poll_at()/poll(now) contract.

Where a next hop's AESA comes from (a `Peer`):
  static    add_peer(ip, aesa): the operator's table; never ages.
  server    the LIS's ATMARP server (§8.5): an unknown next hop is asked for with
            ATMARP_Request on the VC to the server, retried every retrans_time up to
            max_retries; ATMARP_Reply makes it VALID for entry_lifetime (15 minutes,
            §8.5.1), ATMARP_NAK or silence ends it: its held packets are EHOSTUNREACH.
  inarp     the far end of a call we accepted, asked with InATMARP_Request on that VC
            (§8.3: a VC whose far end's IP address is unknown); its AESA is the calling
            party number.  The calling number alone names a known peer without asking.

Calls (on demand): a packet for a VALID peer without an open VC is held (per next hop,
bounded like ARP's queue) and a call placed; the packets leave at CONNECT, or are
reported unreachable when the call fails (calls_failed).  A VC carrying no IP for
svc_idle_timeout is released (calls_idle; RFC 1755's inactivity release, 20 minutes by
default); a VC the far end clears leaves its peer without a VC, so the next packet calls
again.  An aged entry with an open VC is revalidated before more IP goes out on it
(§8.5.1): ATMARP_Request to the server -- an answer with another ATM address releases the
VC --, or InATMARP on the VC when there is no server; failure releases the VC.

Registration (§8.5): with a server and an address, the client calls the server and sends
ATMARP_Request for its own address (source = target), again every register_interval (15
minutes).  A reply with another ATM address means the IP address is someone else's
(`conflicts`).  The VC to the server never idles out; if it is cleared the client calls
again after retrans_time and registers anew.

Server role: with `server` set (atmarp_server.py, same interface and AESA) ATMARP_Requests
and InATMARP_Replies arriving on our VCs also go to it, and our own client talks to it
without a call (replies come back through `_inbox` at the next poll, never re-entrantly).
"""
from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ndd.pktbuf import PacketBuffer
from protocols.atm.uni.ie import AESA_LEN

from .atmarp import (
    OP_INARP_REPLY,
    OP_INARP_REQUEST,
    OP_NAK,
    OP_REPLY,
    OP_REQUEST,
    AtmArpRepr,
    inarp_reply_to,
    inarp_request,
    request,
)
from .atmarp_server import LOCAL, AtmArpServer
from .link import RESOLVING, REVALIDATING, VALID, ClipConfig, ClipStats

CALLING, OPEN, CLOSED = "CALLING", "OPEN", "CLOSED"
UNREGISTERED, REGISTERING, REGISTERED = "UNREGISTERED", "REGISTERING", "REGISTERED"
INF = float("inf")


@dataclass(eq=False)
class SvcVc:
    """One CLIP SVC, ours or accepted."""
    aesa: bytes                          # the far end: called number, or the caller's number
    outgoing: bool
    server: bool = False                 # our VC to the ATMARP server
    state: str = CALLING
    vc: tuple[int, int] | None = None    # (vpi, vci) once OPEN
    ip: int | None = None                # the far end's IPv4 address, once known
    last: float = 0.0                    # last IP sent or received: the idle timer
    inarp_at: float = INF                # next InATMARP_Request (an accepted VC, far end unknown)
    inarp_tries: int = 0
    cause: int = 0                       # why a failed or cleared call ended (Q.2931 cause)
    handle: Any = None                   # the glue's (an AtmPcb)


@dataclass(eq=False)
class Peer:
    """A next hop reached over SVCs."""
    ip: int
    aesa: bytes = b""
    static: bool = False
    state: str = RESOLVING
    expires: float = INF                 # VALID, not static: ages (§8.5.1)
    deadline: float = INF                # RESOLVING/REVALIDATING: next request, or give up
    tries: int = 0
    vc: SvcVc | None = None              # the VC packets go out on (open, or being called)
    queue: deque[PacketBuffer] = field(default_factory=deque)
    queued: int = 0


class ClipSvc:
    def __init__(self, aesa: bytes, local_addrs: Callable[[], list[int]], source_for: Callable[[int], int | None],
                 stats: ClipStats, config: ClipConfig, *, transmit: Callable[[tuple[int, int], bytes], int],
                 transmit_ip: Callable[[PacketBuffer, tuple[int, int]], int],
                 unreachable: Callable[[PacketBuffer], None]) -> None:
        self.aesa = aesa
        self.local_addrs, self.source_for = local_addrs, source_for
        self.stats, self.config = stats, config
        self.transmit, self.transmit_ip, self.unreachable = transmit, transmit_ip, unreachable
        self.call: Callable[[SvcVc], int] = lambda vc: errno.ENETDOWN    # set by the glue
        self.release: Callable[[SvcVc], None] = lambda vc: None
        self.server: AtmArpServer | None = None
        self.server_aesa: bytes | None = None
        self.peers: dict[int, Peer] = {}
        self.vcs: set[SvcVc] = set()
        self.by_vc: dict[tuple[int, int], SvcVc] = {}
        self.server_vc: SvcVc | None = None
        self.reg, self.reg_at, self.reg_tries = UNREGISTERED, INF, 0
        self._inbox: deque[AtmArpRepr] = deque()
        self.kick: Callable[..., None] = lambda at=None: None

    # --- configuration ---------------------------------------------------------------------
    def use_server(self, aesa: bytes | None, now: float) -> None:
        """Resolve through the ATMARP server at `aesa` (None: the static table only)."""
        self.server_aesa = aesa
        self.reg, self.reg_tries = UNREGISTERED, 0
        self.reg_at = now if aesa is not None else INF
        self.kick(now)

    def add_peer(self, ip: int, aesa: bytes, now: float) -> None:
        peer = self.peers.get(ip)
        if peer is None:
            peer = self.peers[ip] = Peer(ip)
        peer.aesa, peer.static, peer.state, peer.expires, peer.deadline, peer.tries = aesa, True, VALID, INF, INF, 0
        self._deliver(peer, now)

    def remove_peer(self, ip: int) -> bool:
        peer = self.peers.pop(ip, None)
        if peer is None:
            return False
        self._fail(peer)
        return True

    def address_added(self, now: float) -> None:
        if self.server_aesa is not None and self.reg != REGISTERED:
            self.reg_at = now
            self.kick(now)

    def close(self) -> None:
        """Release every VC and give up every held packet (the interface goes away)."""
        for vc in list(self.vcs):
            self._release(vc)
        for peer in self.peers.values():
            self._fail(peer)
        self.peers.clear()

    def table(self) -> list[tuple[int, bytes, str, bool, tuple[int, int] | None]]:
        """(IP, AESA, state, static, the open VC or None) per next hop."""
        out = []
        for p in self.peers.values():
            vc = p.vc.vc if p.vc is not None and p.vc.state == OPEN else None
            out.append((p.ip, p.aesa, p.state, p.static, vc))
        return out

    @property
    def local_server(self) -> bool:
        return self.server is not None and self.server_aesa == self.aesa

    def primary_ip(self) -> int | None:
        addrs = self.local_addrs()
        return addrs[0] if addrs and addrs[0] else None

    def is_open(self, key: Any) -> bool:
        return key is LOCAL or (isinstance(key, SvcVc) and key.state == OPEN)

    # --- output ----------------------------------------------------------------------------
    def resolve(self, ip: int, pkt: PacketBuffer, now: float) -> tuple[int, int] | int | None:
        """The open SVC to send to `ip` on; None: held (sent or reported unreachable
        later); an errno when nothing can ever resolve it (no server, no static entry)."""
        peer = self.peers.get(ip)
        if peer is None:
            if self.server_aesa is None:
                self.stats.tx_no_vc += 1
                return errno.EHOSTUNREACH
            if len(self.peers) >= self.config.max_entries:
                self.stats.table_full += 1
                return errno.ENOBUFS
            peer = self.peers[ip] = Peer(ip)
            self._hold(peer, pkt)
            self._ask(peer, now)
            return None
        if peer.state == VALID:
            vc = self._open_vc(peer)
            if vc is not None:
                vc.last = now
                return vc.vc
            self._hold(peer, pkt)
            if peer.vc is None:
                self._place(peer, now)
            return None
        self._hold(peer, pkt)
        return None

    def _open_vc(self, peer: Peer) -> SvcVc | None:
        """An open VC to the peer: its own, else any that leads there (an accepted call, the
        server's VC when the server host is the next hop)."""
        vc = peer.vc
        if vc is not None and vc.state == OPEN:
            return vc
        for v in self.by_vc.values():
            if v.ip == peer.ip or (v.ip is None and peer.aesa and v.aesa == peer.aesa):
                v.ip = peer.ip
                if vc is None or vc.state != CALLING:
                    peer.vc = v
                return v
        return None

    def _place(self, peer: Peer, now: float) -> None:
        if not peer.aesa:                      # learned from a caller that gave no number: no way back
            self.stats.tx_no_vc += 1
            self._fail(peer)
            return
        vc = SvcVc(peer.aesa, outgoing=True, ip=peer.ip, last=now)
        peer.vc = vc
        if self._dial(vc):
            return
        peer.vc = None
        self._fail(peer)

    def _dial(self, vc: SvcVc) -> bool:
        self.vcs.add(vc)
        err = self.call(vc)
        if err:
            self.vcs.discard(vc)
            vc.state = CLOSED
            self.stats.calls_failed += 1
            return False
        self.stats.calls_placed += 1
        return True

    def _hold(self, peer: Peer, pkt: PacketBuffer) -> None:
        peer.queue.append(pkt)
        peer.queued += len(pkt)
        while len(peer.queue) > self.config.queue_len or peer.queued > self.config.queue_bytes:
            peer.queued -= len(peer.queue.popleft())
            self.stats.queue_drops += 1

    def _flush(self, peer: Peer, vc: SvcVc, now: float) -> None:
        held, peer.queue, peer.queued = peer.queue, deque(), 0
        if held:
            vc.last = now
        for pkt in held:
            self.transmit_ip(pkt, vc.vc)          # type: ignore[arg-type]   # OPEN: vc.vc is set

    def _fail(self, peer: Peer) -> None:
        held, peer.queue, peer.queued = peer.queue, deque(), 0
        for pkt in held:
            self.stats.unreachable += 1
            self.unreachable(pkt)

    def _deliver(self, peer: Peer, now: float) -> None:
        """A VALID peer with packets waiting: send them, or call it."""
        if not peer.queue:
            return
        vc = self._open_vc(peer)
        if vc is not None:
            self._flush(peer, vc, now)
        elif peer.vc is None:
            self._place(peer, now)

    # --- the ATMARP server, remote or on this interface --------------------------------------
    def _ask(self, peer: Peer, now: float) -> None:
        """ATMARP_Request for the peer (resolution, or revalidation §8.5.1)."""
        peer.tries += 1
        peer.deadline = now + self.config.retrans_time
        self.kick(peer.deadline)
        self._to_server(request(self._src(peer.ip), self.aesa, peer.ip), now)

    def _to_server(self, arp: AtmArpRepr, now: float) -> bool:
        if self.local_server:
            assert self.server is not None
            self.stats.tx_arp_requests += 1
            self.server.input(LOCAL, arp, now)        # the answer comes through server_send
            return True
        vc = self.server_vc
        if vc is not None and vc.state == OPEN:
            self.stats.tx_arp_requests += 1
            self.transmit(vc.vc, arp.emit())          # type: ignore[arg-type]
            return True
        if vc is None and self.server_aesa is not None:
            self.server_vc = vc = SvcVc(self.server_aesa, outgoing=True, server=True, last=now)
            if not self._dial(vc):
                self.server_vc = None
        return False                                   # asked again once the server's VC is up

    def server_send(self, key: Any, arp: AtmArpRepr, now: float) -> None:
        """The co-located server's output: to our own client, or on one of our VCs."""
        if key is LOCAL:
            self._inbox.append(arp)
            self.kick(now)
        elif isinstance(key, SvcVc) and key.state == OPEN:
            self.transmit(key.vc, arp.emit())          # type: ignore[arg-type]

    def _register(self, now: float) -> None:
        ip, cfg = self.primary_ip(), self.config
        if self.server_aesa is None or ip is None:
            self.reg_at = INF
            return
        if not self._to_server(request(ip, self.aesa, ip), now):
            self.reg_at = now + cfg.slow_retry         # connected() asks as soon as the VC is up
            return
        self.reg_tries += 1
        if self.reg != REGISTERED or self.reg_tries > cfg.max_retries:
            self.reg = REGISTERING                     # a refresh unanswered too long: not registered
        self.reg_at = now + (cfg.retrans_time if self.reg_tries < cfg.max_retries else cfg.slow_retry)

    def _from_server(self, arp: AtmArpRepr, now: float) -> None:
        mine = self.local_addrs()
        if arp.op == OP_NAK:
            self.stats.rx_arp_naks += 1
            if arp.tpa in mine:
                self.reg_at = now + self.config.slow_retry     # our own registration refused
                return
            peer = self.peers.get(arp.tpa) if arp.tpa is not None else None
            if peer is not None and not peer.static and peer.state != VALID:
                self._give_up(peer)
            return
        self.stats.rx_arp_replies += 1
        ip, aesa = arp.spa, arp.sha
        if ip is None or not aesa:
            self.stats.arp_malformed += 1
            return
        if ip in mine:
            if aesa == self.aesa:
                self.reg, self.reg_tries = REGISTERED, 0
                self.stats.registrations += 1
                self.reg_at = now + self.config.register_interval
            else:
                self.stats.conflicts += 1                 # §8.4: the address is someone else's
                self.reg, self.reg_at = UNREGISTERED, now + self.config.slow_retry
            self.kick(self.reg_at)
            return
        peer = self.peers.get(ip)
        if peer is None or peer.static or peer.state == VALID:
            return                                         # not asked for
        if len(aesa) != AESA_LEN:
            self._give_up(peer)                            # an E.164 number: calls need an AESA
            return
        if peer.aesa and peer.aesa != aesa and peer.vc is not None:
            self._release(peer.vc)                         # revalidated elsewhere: that VC is stale
        peer.aesa, peer.state, peer.tries, peer.deadline = aesa, VALID, 0, INF
        peer.expires = now + self.config.entry_lifetime
        self.kick(peer.expires)
        self._deliver(peer, now)

    def _give_up(self, peer: Peer) -> None:
        if peer.state == REVALIDATING:
            self.stats.revalidation_failed += 1
            if peer.vc is not None:
                self._release(peer.vc)                     # §8.5.1: not revalidated, not used
        else:
            self.stats.resolve_failed += 1
        self.peers.pop(peer.ip, None)
        self._fail(peer)

    # --- events from the glue ----------------------------------------------------------------
    def connected(self, vc: SvcVc, where: tuple[int, int], now: float) -> None:
        """Our call is active on VC `where` (CONNECT)."""
        self._opened(vc, where, now)
        if vc.server:
            self.reg_at = now                              # register at once, then ask again
            for p in self.peers.values():
                if p.state != VALID and self.server_aesa is not None:
                    p.deadline = now
            self.kick(now)
        peer = self.peers.get(vc.ip) if vc.ip is not None else None
        if peer is not None and (peer.vc is None or peer.vc is vc or peer.vc.state != OPEN):
            peer.vc = vc
            if peer.state == VALID:
                self._flush(peer, vc, now)

    def incoming(self, vc: SvcVc, where: tuple[int, int], now: float) -> None:
        """A call for our address was accepted (CONNECT ACKNOWLEDGE) on VC `where`."""
        self.vcs.add(vc)
        self._opened(vc, where, now)
        self.stats.calls_accepted += 1
        peer = next((p for p in self.peers.values() if p.state == VALID and p.aesa and p.aesa == vc.aesa), None)
        if peer is None:
            self._inarp(vc, now)                           # §8.3: who is calling?
            return
        vc.ip = peer.ip
        if peer.vc is None or peer.vc.state != OPEN:
            peer.vc = vc
            self._flush(peer, vc, now)

    def failed(self, vc: SvcVc, now: float) -> None:
        """Our call never became active (refused, unanswered, the link down)."""
        peer = self.peers.get(vc.ip) if vc.ip is not None else None
        waiting = peer is not None and peer.vc is vc
        self._forget(vc)
        self.stats.calls_failed += 1
        if vc.server:
            self.reg_at = min(self.reg_at, now + self.config.slow_retry)
            self.kick(self.reg_at)
        if waiting:
            assert peer is not None
            self._fail(peer)

    def cleared(self, vc: SvcVc, now: float) -> None:
        """An open VC was cleared by the far end or the network: its peer has none now, the
        next packet calls again (the entry itself stays valid until it ages)."""
        self._forget(vc)
        self.stats.calls_cleared += 1
        if vc.server:                                      # call the server again, register anew
            self.reg, self.reg_tries, self.reg_at = UNREGISTERED, 0, now + self.config.retrans_time
            self.kick(self.reg_at)

    def _opened(self, vc: SvcVc, where: tuple[int, int], now: float) -> None:
        vc.state, vc.vc, vc.last = OPEN, where, now
        self.by_vc[where] = vc

    def _forget(self, vc: SvcVc) -> None:
        self.vcs.discard(vc)
        if vc.vc is not None and self.by_vc.get(vc.vc) is vc:
            del self.by_vc[vc.vc]
        vc.state = CLOSED
        if self.server_vc is vc:
            self.server_vc = None
        if self.server is not None:
            self.server.vc_closed(vc)
        for p in self.peers.values():
            if p.vc is vc:
                p.vc = None

    def _release(self, vc: SvcVc) -> None:
        if vc.state != CLOSED:
            self.release(vc)
            self._forget(vc)

    # --- input: ATMARP on one of our VCs -----------------------------------------------------
    def input(self, where: tuple[int, int], data: bytes | bytearray | memoryview, now: float) -> None:
        vc = self.by_vc.get(where)
        if vc is None:
            self.stats.rx_unknown_vc += 1
            return
        arp = AtmArpRepr.parse(data)
        if arp is None:
            self.stats.arp_malformed += 1
            return
        if arp.op == OP_REQUEST:
            if self.server is not None:
                vc.last = now                              # a client's VC to us, the server: kept
                self.server.input(vc, arp, now)
            else:
                self.stats.rx_unsupported += 1             # we are no server
        elif arp.op in (OP_REPLY, OP_NAK):
            if vc is self.server_vc:
                self._from_server(arp, now)
            else:
                self.stats.rx_unsupported += 1             # only our server answers us
        elif arp.op == OP_INARP_REQUEST:
            self.stats.rx_inarp_requests += 1
            src = self._src(arp.spa)
            if src is None:
                self.stats.no_address += 1
            else:
                self.stats.tx_inarp_replies += 1
                self.transmit(where, inarp_reply_to(arp, src, self.aesa).emit())
            if arp.spa is not None:
                self._learn(vc, arp.spa, arp.sha, now)     # RFC 2390 §7.1: the requester too
        elif arp.op == OP_INARP_REPLY:
            self.stats.rx_inarp_replies += 1
            if arp.spa is None:
                self.stats.arp_malformed += 1
                return
            if self.server is not None:
                self.server.input(vc, arp, now)            # §8.4: the server learns from these
            self._learn(vc, arp.spa, arp.sha, now)

    def _learn(self, vc: SvcVc, ip: int, sha: bytes, now: float) -> None:
        if ip == 0 or ip in self.local_addrs():
            self.stats.conflicts += 1
            return
        vc.ip, vc.inarp_at = ip, INF
        if not vc.aesa and len(sha) == AESA_LEN:
            vc.aesa = sha                                  # a caller that sent no calling number
        peer = self.peers.get(ip)
        if peer is None:
            if len(self.peers) >= self.config.max_entries:
                self.stats.table_full += 1                 # the VC still carries its traffic
                return
            peer = self.peers[ip] = Peer(ip, vc.aesa, state=VALID)
            self.stats.learned += 1
        elif peer.static:
            if vc.aesa and vc.aesa != peer.aesa:
                self.stats.conflicts += 1                  # the operator's word stands
        elif vc.aesa:
            peer.aesa = vc.aesa
        if not peer.static:
            peer.state, peer.tries, peer.deadline = VALID, 0, INF
            peer.expires = now + self.config.entry_lifetime
            self.kick(peer.expires)
        if peer.vc is None or peer.vc.state != OPEN:
            peer.vc = vc
        self._deliver(peer, now)

    def _inarp(self, vc: SvcVc, now: float) -> None:
        if vc.inarp_tries >= self.config.max_retries:
            vc.inarp_at = INF                              # it may never send IP; idle ends it
            return
        vc.inarp_tries += 1
        vc.inarp_at = now + self.config.retrans_time
        self.kick(vc.inarp_at)
        self._send_inarp(vc)

    def _send_inarp(self, vc: SvcVc) -> None:
        # RFC 2390 §7.1: our addresses as source; a server without an IP sends none (spln 0)
        self.stats.tx_inarp_requests += 1
        self.transmit(vc.vc, inarp_request(self.primary_ip(), self.aesa).emit())   # type: ignore[arg-type]

    def _src(self, dst: int | None) -> int | None:
        src = self.source_for(dst) if dst else None
        return src or self.primary_ip()

    # --- timers -----------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        if self._inbox:
            return -INF
        idle = self.config.svc_idle_timeout
        times = [self.reg_at]
        for p in self.peers.values():
            times.append(p.expires if p.state == VALID else p.deadline)
        for v in self.by_vc.values():
            times.append(v.inarp_at)
            if not v.server:
                times.append(v.last + idle)
        at = min(times)
        return None if at == INF else at

    def poll(self, now: float) -> None:
        cfg = self.config
        while self._inbox:
            self._from_server(self._inbox.popleft(), now)
        if self.reg_at <= now:
            self._register(now)
        for peer in list(self.peers.values()):
            if self.peers.get(peer.ip) is not peer:
                continue                                   # gone with an earlier one's VC
            if peer.state == VALID and peer.expires <= now:
                self._aged(peer, now)
            elif peer.state != VALID and peer.deadline <= now:
                if peer.tries >= cfg.max_retries:
                    self._give_up(peer)
                else:
                    self._check(peer, now)
        for vc in list(self.by_vc.values()):
            if vc.state != OPEN:
                continue
            # the same sum poll_at() reports: `now - last >= idle` can be false by a rounding
            # hair at that very deadline (7577.55 + 1200), and the timer would never advance
            if not vc.server and vc.last + cfg.svc_idle_timeout <= now:
                self.stats.calls_idle += 1
                self._release(vc)
            elif vc.inarp_at <= now:
                self._inarp(vc, now)

    def _aged(self, peer: Peer, now: float) -> None:
        """§8.5.1: an aged entry without an open VC goes; with one it is revalidated first."""
        if peer.vc is not None and peer.vc.state == CALLING:
            peer.expires = now + self.config.retrans_time   # its call decides first
            return
        if self._open_vc(peer) is None:
            del self.peers[peer.ip]
            self._fail(peer)
            return
        peer.state, peer.tries = REVALIDATING, 0
        self._check(peer, now)

    def _check(self, peer: Peer, now: float) -> None:
        if self.server_aesa is not None:
            self._ask(peer, now)
            return
        vc = self._open_vc(peer)                           # no server: ask the far end itself
        if vc is None:
            self._give_up(peer)
            return
        peer.tries += 1
        peer.deadline = now + self.config.retrans_time
        self.kick(peer.deadline)
        self._send_inarp(vc)


__all__ = ["CALLING", "CLOSED", "OPEN", "REGISTERED", "REGISTERING", "UNREGISTERED", "ClipSvc", "Peer", "SvcVc"]
