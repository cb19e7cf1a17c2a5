"""The path-MTU cache (RFC 1191 for IPv4; RFC 8201 for IPv6 later): what ICMP
"fragmentation needed" taught us about each destination, bounded from below and in time.

Linux keeps this in the route's next-hop exceptions (fnhe, __ip_rt_update_pmtu); here it is
one small table per family, owned by the IP layer, consulted by the transports:

  * an entry is only ever made by a transport that has validated the ICMP error against
    one of its connections (RFC 5927 §4.1, §5; see tcp.py ctlinput), never by ICMP alone;
  * a reported MTU below the family's floor (`min_pmtu`, Linux net.ipv4.route.min_pmtu = 552;
    IPv6's is its minimum link MTU, 1280, RFC 8200 §5) is raised to the floor and the entry
    is *locked*: the IP layer then sends without DF (Linux ip_dont_fragment on an
    RTAX_MTU-locked route), so a real path that small still works through fragmentation
    while a spoofed "MTU 68" cannot shrink segments below the floor;
  * an MTU not below the current path MTU is ignored (Linux: `old_mtu < mtu -> return`),
    and a locked entry is never changed before it expires;
  * entries expire after `expires` seconds (net.ipv4.route.mtu_expires, 600 s), so a
    lowering -- spoofed or real -- does not last forever: the transports pick up the link
    MTU again on their next send (Linux tcp_current_mss re-reads dst_mtu);
  * the table holds at most `max_entries`; the oldest entry gives way (counted).

Sans-IO: `now` is passed in; nothing here sends or schedules.
"""
from __future__ import annotations

from dataclasses import dataclass

from ndd.counters import Counters

MIN_PMTU_IPV4 = 552          # net.ipv4.route.min_pmtu
MIN_PMTU_IPV6 = 1280         # RFC 8200 §5, Linux IPV6_MIN_MTU (for the IPv6 side)
MTU_EXPIRES = 600.0          # net.ipv4.route.mtu_expires (seconds)
MAX_ENTRIES = 4096           # bound on destinations remembered


@dataclass
class PmtuStats(Counters):
    updates: int = 0             # an entry made or lowered
    refreshes: int = 0           # same MTU reported again late in the entry's life: expiry pushed back
    clamped: int = 0             # reported below min_pmtu: raised to it and locked (DF cleared)
    ignored_not_lower: int = 0   # reported MTU not below the current path MTU
    ignored_locked: int = 0      # entry locked at the floor: nothing lowers it further
    expired: int = 0             # entries dropped after `expires` seconds
    evicted: int = 0             # entries pushed out by a full table


@dataclass(slots=True)
class PmtuEntry:
    mtu: int
    expires: float
    locked: bool                 # clamped at min_pmtu: send without DF


class PmtuCache:
    def __init__(self, min_pmtu: int = MIN_PMTU_IPV4, expires: float = MTU_EXPIRES,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.min_pmtu = min_pmtu
        self.expires = expires
        self.max_entries = max(max_entries, 1)
        self.stats = PmtuStats()
        self._entries: dict[int, PmtuEntry] = {}     # insertion order = age, for eviction

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, dst: int, now: float) -> PmtuEntry | None:
        """The live entry for `dst`; an expired one is forgotten on the way (O(1))."""
        entries = self._entries
        if not entries:
            return None
        entry = entries.get(dst)
        if entry is not None and now >= entry.expires:
            del entries[dst]
            self.stats.expired += 1
            return None
        return entry

    def path_mtu(self, dst: int, link_mtu: int, now: float) -> int:
        """The MTU to size packets to `dst` by: the link's, or less if the path taught us so."""
        entry = self.get(dst, now)
        return link_mtu if entry is None or entry.mtu >= link_mtu else entry.mtu

    def dont_fragment(self, dst: int, now: float) -> bool:
        """False when the path is locked at the floor: DF must be cleared for it."""
        entry = self.get(dst, now)
        return entry is None or not entry.locked

    def update(self, dst: int, mtu: int, link_mtu: int, now: float) -> bool:
        """A validated "fragmentation needed" said `mtu` for `dst`.  True when the path MTU
        went down (the caller re-sizes its segments and resends); False when ignored."""
        entry = self.get(dst, now)
        if entry is not None and entry.locked:
            self.stats.ignored_locked += 1
            return False
        current = link_mtu if entry is None or entry.mtu >= link_mtu else entry.mtu
        if mtu > current or (entry is None and mtu == current):
            self.stats.ignored_not_lower += 1      # nothing learned: no entry made
            return False
        locked = False
        if mtu < self.min_pmtu:
            self.stats.clamped += 1
            locked = True
            mtu = min(current, self.min_pmtu)
        if entry is not None and entry.mtu == mtu and not locked:
            # Linux refreshes an unchanged entry only in the second half of its life
            if now < entry.expires - self.expires / 2:
                self.stats.ignored_not_lower += 1
                return False
            entry.expires = now + self.expires
            self.stats.refreshes += 1
            return False
        if entry is None and len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
            self.stats.evicted += 1
        self._entries.pop(dst, None)
        self._entries[dst] = PmtuEntry(mtu, now + self.expires, locked)
        self.stats.updates += 1
        return mtu < current

    def flush(self) -> None:
        self._entries.clear()


__all__ = ["MAX_ENTRIES", "MIN_PMTU_IPV4", "MIN_PMTU_IPV6", "MTU_EXPIRES", "PmtuCache", "PmtuEntry", "PmtuStats"]
