"""The ATMARP server of a Logical IP Subnetwork (RFC 2225 §8.4, single server), sans-IO.

One table, IPv4 address -> (ATM number, subaddress, the VC it was learned on), filled
from what the LIS's members tell it, never configured:

  ATMARP_Request    its source (ar$spa, ar$sha, ar$ssa) is learned -- a client registers
                    by asking for its own address (§8.5) --, then the target is answered:
                    ATMARP_Reply with the entry, or ATMARP_NAK (§8.7.4: the request sent
                    back with ar$op 10) when there is none.
  InATMARP_Reply    learned likewise: the server asks each VC it did not place
                    (InATMARP_Request, §8.4 -- the owner, svc.py, sends it).
  learning          a new address is added; the same ATM address refreshes the entry and
                    moves it to this VC; another ATM address replaces it only when the old
                    entry's VC is gone -- with its VC still open the newcomer is ignored and
                    the reply tells it the address already taken (§8.4 duplicate address).
  aging             an entry not refreshed for `lifetime` (20 minutes, §8.4) is checked by
                    InATMARP_Request on its VC if that is still open (`retries` times,
                    `retrans` apart); no answer, or no VC, removes it.

VC keys are opaque to the server (the owner's SvcVc objects, or LOCAL for the host's own
client when server and client share an interface); `is_open(key)` says whether one still
carries traffic, `vc_closed(key)` forgets one, and `send(key, repr, now)` transmits.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .atmarp import OP_INARP_REPLY, OP_REQUEST, AtmArpRepr, inarp_request, nak_of, reply_to
from .link import ClipStats

LOCAL = "local"      # the VC key of the co-located client: always open


@dataclass(eq=False)
class ServerEntry:
    ip: int
    aesa: bytes
    sub: bytes
    kind: int                     # atmarp.TL_E164 or 0: the number's type
    vc: Any                       # where it was learned; None once that VC is gone
    expires: float
    checks: int = 0               # InATMARP_Requests sent since it aged


class AtmArpServer:
    def __init__(self, *, send: Callable[[Any, AtmArpRepr, float], None], is_open: Callable[[Any], bool],
                 own_ip: Callable[[], int | None], aesa: bytes, lifetime: float = 1200.0,
                 retrans: float = 1.0, retries: int = 3, stats: ClipStats | None = None,
                 max_entries: int = 4096) -> None:
        self.send, self.is_open, self.own_ip, self.aesa = send, is_open, own_ip, aesa
        self.lifetime, self.retrans, self.retries = lifetime, retrans, retries
        self.stats = stats or ClipStats()
        self.entries: dict[int, ServerEntry] = {}
        self.max_entries = max_entries      # registrations kept at most (clients may invent IPs)
        self.kick: Callable[..., None] = lambda at=None: None

    def table(self) -> list[tuple[int, bytes, float, bool]]:
        """(IP, ATM address, expiry, whether its VC is open) per entry."""
        return [(e.ip, e.aesa, e.expires, e.vc is not None and self.is_open(e.vc)) for e in self.entries.values()]

    # --- input --------------------------------------------------------------------------
    def input(self, vc: Any, arp: AtmArpRepr, now: float) -> None:
        """An ATMARP_Request or InATMARP_Reply that arrived on `vc` (others are not ours)."""
        if arp.op == OP_INARP_REPLY:
            self._learn(vc, arp, now)
            return
        if arp.op != OP_REQUEST:
            return
        self.stats.server_requests += 1
        self._learn(vc, arp, now)
        if arp.tpa is None:
            self.stats.arp_malformed += 1
            return
        e = self.entries.get(arp.tpa)
        if e is None:
            self.stats.server_naks += 1
            self.send(vc, nak_of(arp), now)
        else:
            self.stats.server_replies += 1
            self.send(vc, reply_to(arp, e.ip, e.aesa, e.sub, e.kind), now)

    def _learn(self, vc: Any, arp: AtmArpRepr, now: float) -> None:
        ip, aesa = arp.spa, arp.sha
        if not ip or not aesa:
            return                  # nothing to register (e.g. a server without an IP asking)
        e = self.entries.get(ip)
        if e is not None and (e.aesa, e.sub) == (aesa, arp.ssa):
            self.stats.server_refreshes += 1
        elif e is not None and e.vc is not None and e.vc is not vc and self.is_open(e.vc):
            self.stats.server_duplicates += 1      # §8.4: the registered one keeps its address
            return
        elif e is None and len(self.entries) >= self.max_entries:
            self.stats.server_table_full += 1      # not registered; a request is still answered
            return
        else:
            self.stats.server_registrations += 1
        self.entries[ip] = ServerEntry(ip, aesa, arp.ssa, arp.stype, vc, now + self.lifetime)
        self.kick(now + self.lifetime)

    def vc_closed(self, vc: Any) -> None:
        """`vc` is gone: its entries stay until they age, but no longer hold their address."""
        for e in self.entries.values():
            if e.vc is vc:
                e.vc = None

    # --- aging --------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        return min((e.expires for e in self.entries.values()), default=None)

    def poll(self, now: float) -> None:
        for e in [e for e in self.entries.values() if e.expires <= now]:
            if e.vc is not None and e.vc is not LOCAL and self.is_open(e.vc) and e.checks < self.retries:
                e.checks += 1                       # §8.4: ask the client on its VC first
                e.expires = now + self.retrans
                self.send(e.vc, inarp_request(self.own_ip(), self.aesa), now)
                continue
            self.stats.server_aged += 1
            del self.entries[e.ip]


__all__ = ["LOCAL", "AtmArpServer", "ServerEntry"]
