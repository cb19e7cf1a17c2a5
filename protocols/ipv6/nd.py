"""Neighbor Discovery's neighbor cache (RFC 4861 §7.3) for IPv6 over Ethernet, as a sans-IO
timed core -- the IPv6 counterpart of protocols/arp.py's cache.

The cache never sends anything itself.  Its owner (the IPv6 link output) gives it callables:
  send_ns(NsRequest)        build and send a Neighbor Solicitation (multicast to the target's
                            solicited-node group for resolution, unicast to the cached MAC for
                            a NUD probe)
  transmit(pkt, mac)        a packet that waited for resolution can go out now
  unreachable(NdFailure)    a waiting packet is given up: EHOSTUNREACH, and for a failed
                            resolution the ICMPv6 destination unreachable code 3 (address
                            unreachable) RFC 4861 §7.2.2 requires
  router_lost(addr, now)    an NA cleared IsRouter: drop it from the default router list (§7.2.5)
  neighbor_failed(addr, was_router, now)
                            resolution or NUD gave up and the entry is gone (§7.3.3): the owner
                            may pick another default router (§6.3.6)
and it calls `resolve(dst, pkt, now)` for every unicast packet, `input_ns`/`input_na`/
`input_ra_source`/`input_redirect_target` with the fields of validated ND messages (the
owner validates per §7.1 and checks NS targets against its own addresses), and
`confirm_reachable(dst, now)` for upper-layer forward progress (§7.3.1).  The timers follow
the TimedCore contract (protocols/contracts.py): `poll_at()`, `poll(now)`, `kick`.

States (§7.3.2) and their one timer each:
  INCOMPLETE  multicast NS sent, packets queued; retried every RetransTimer, failed after
              MAX_MULTICAST_SOLICIT
  REACHABLE   confirmed within ReachableTime; then STALE
  STALE       unconfirmed; sending moves it to DELAY; removed when unused gc_stale_time
              (Linux gc_staletime, 60 s)
  DELAY       a packet was sent: wait DELAY_FIRST_PROBE_TIME for an upper-layer confirmation
  PROBE       unicast NS every RetransTimer, entry discarded after MAX_UNICAST_SOLICIT

Not here, the owner's: validating ND messages (§7.1), answering an NS with an NA (§7.2.4:
build it and send it through `resolve(src, ...)` like any packet, or straight to the
SLLA), DAD, unsolicited NAs for our own address changes (§7.2.6), the default router list
and prefixes (§6.3.4), static (PERMANENT) entries.

Addresses are 128-bit ints, link-layer addresses 6-byte bytes.
"""
from __future__ import annotations

import errno
import heapq
import math
import random
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ndd.counters import Counters
from ndd.pktbuf import PacketBuffer

from ..timing import TICK
from .addr import multicast_mac, solicited_node

INCOMPLETE, REACHABLE, STALE, DELAY, PROBE = "INCOMPLETE", "REACHABLE", "STALE", "DELAY", "PROBE"
STATES = (INCOMPLETE, REACHABLE, STALE, DELAY, PROBE)
# which resolved entries a full table gives up first: unused (STALE), then those whose
# reachability is already in doubt, REACHABLE last; INCOMPLETE ones only if nothing else is left
EVICTION_ORDER = (STALE, PROBE, DELAY, REACHABLE, INCOMPLETE)

ICMPV6_ADDR_UNREACH = 3          # RFC 4443 §3.1 destination unreachable, code 3
def valid_lladdr(mac: bytes) -> bool:
    """A neighbour's link-layer address: 6 octets, unicast (I/G bit clear), not all zeros."""
    return len(mac) == 6 and not mac[0] & 1 and mac != bytes(6)


@dataclass
class NdConfig:
    # RFC 4861 §10 host constants and variables (Linux's defaults are the same)
    base_reachable_time: float = 30.0      # REACHABLE_TIME; an RA may change it (§6.3.4)
    retrans_timer: float = 1.0             # RETRANS_TIMER; an RA may change it
    delay_first_probe_time: float = 5.0    # DELAY_FIRST_PROBE_TIME
    max_multicast_solicit: int = 3         # MAX_MULTICAST_SOLICIT
    max_unicast_solicit: int = 3           # MAX_UNICAST_SOLICIT
    min_random_factor: float = 0.5         # MIN_RANDOM_FACTOR
    max_random_factor: float = 1.5         # MAX_RANDOM_FACTOR
    # §6.3.2 wants ReachableTime re-randomized "at least every few hours"; Linux does it every
    # 300 s (neigh_periodic_work), done here lazily when the value is next used
    rerandomize_interval: float = 300.0
    gc_stale_time: float = 60.0            # Linux gc_staletime: a STALE entry unused this long goes
    max_entries: int = 1024                # Linux gc_thresh3
    # RFC 6583 §6/§7.1: a flood of packets to unresolvable on-link addresses must not push out
    # the neighbours that work.  INCOMPLETE entries are capped at this many; a new resolution
    # beyond it gives up the oldest one (its packets fail as "evicted").  Linux has no such cap.
    # Kept below max_entries, it also means a full table always has a resolved entry to give up
    # before any INCOMPLETE one.
    max_incomplete: int = 256
    # Packets waiting for resolution, charged len(pkt) + queue_overhead (Linux charges
    # skb->truesize, which a tiny packet dominates).  Per entry like Linux's unres_qlen_bytes
    # (SK_WMEM_MAX, so a whole fragmented 64 KiB datagram can wait), and over all entries so
    # max_incomplete x unres_qlen_bytes is not the worst case; oldest dropped first.
    queue_bytes: int = 212992
    queue_bytes_total: int = 1 << 20
    queue_overhead: int = 256


@dataclass
class NeighborCacheStats(Counters):
    resolutions: int = 0          # address resolutions started (entry created INCOMPLETE)
    resolved: int = 0             # INCOMPLETE entries that learned a link-layer address
    failures: int = 0             # resolutions given up after max_multicast_solicit (§7.2.2)
    nud_failures: int = 0         # PROBE given up after max_unicast_solicit (§7.3.3)
    unreachable_pkts: int = 0     # waiting packets failed with EHOSTUNREACH (any cause)
    queue_drops: int = 0          # waiting packets dropped, oldest first, by the byte bounds
    evictions: int = 0            # entries given up because the table was full (max_entries)
    incomplete_evictions: int = 0  # INCOMPLETE entries given up for max_incomplete
    gc_stale: int = 0             # STALE entries unused for gc_stale_time, removed
    ns_tx_multicast: int = 0      # resolution NS to the solicited-node group
    ns_tx_unicast: int = 0        # NUD probes
    ns_rx: int = 0                # NS with a source link-layer address (learned)
    ns_rx_no_lladdr: int = 0      # NS without one: nothing to learn
    na_rx_solicited: int = 0
    na_rx_unsolicited: int = 0
    na_rx_no_entry: int = 0       # NA for an address not in the cache: discarded (§7.2.5)
    na_rx_no_tlla: int = 0        # NA without a target link-layer address for an INCOMPLETE entry
    na_rx_ignored: int = 0        # O=0 with a different address: not applied (§7.2.5 I)
    na_unsolicited_accepted: int = 0  # S=0, O=1 with a new address: recorded, entry STALE
    ra_rx: int = 0                # RA source addresses given to the cache
    redirect_rx: int = 0          # redirect targets given to the cache
    bad_lladdr: int = 0           # a link-layer address option that is multicast/zero/not 6 octets
    routers_lost: int = 0         # IsRouter cleared by an NA
    upper_confirmations: int = 0  # confirm_reachable on a known entry
    state_changes: int = 0
    reachable_time_randomized: int = 0


@dataclass(frozen=True, slots=True)
class NsRequest:
    """A Neighbor Solicitation for the owner to build (RFC 4861 §4.3) and send to dst_mac."""
    target: int
    dst: int                      # solicited_node(target), or target itself for a NUD probe
    dst_mac: bytes
    multicast: bool
    # the source of the packet that prompted it: §7.2.2 says to use it as the NS source when it
    # is one of the interface's addresses; None: the owner picks any address of the interface
    src_hint: int | None
    # §7.2.2/§4.3: the source link-layer address option; off only for DAD, which is not ours
    with_slla: bool = True


@dataclass(frozen=True, slots=True)
class NdFailure:
    """A packet that waited for resolution and is given up."""
    pkt: PacketBuffer
    dst: int
    errno: int                    # EHOSTUNREACH, as Linux reports a failed neighbour
    # ICMPV6_ADDR_UNREACH when resolution failed (§7.2.2 requires the error for every queued
    # packet); None when the entry was evicted or flushed (Linux drops those silently)
    icmp_code: int | None
    cause: str                    # "failed" | "evicted" | "flushed"


class _Held:
    """One waiting packet; `entry` None once it has left (sent, failed or dropped)."""
    __slots__ = ("cost", "entry", "pkt")

    def __init__(self, pkt: PacketBuffer, cost: int, entry: Neighbor) -> None:
        self.pkt, self.cost = pkt, cost
        self.entry: Neighbor | None = entry


@dataclass(eq=False)
class Neighbor:
    addr: int
    state: str
    mac: bytes = b""
    is_router: bool = False
    deadline: float = 0.0         # the state's one timer (see the module docstring)
    probes: int = 0               # solicitations sent in INCOMPLETE / PROBE
    src_hint: int | None = None
    queue: deque[_Held] = field(default_factory=deque)
    queued: int = 0               # cost of the live packets in `queue`
    heap_at: float | None = None  # the time of this entry's live item in the timer heap


class NeighborCache:
    """The neighbor cache of one interface (a TimedCore)."""

    def __init__(self, *, send_ns: Callable[[NsRequest], object] | None = None,
                 transmit: Callable[[PacketBuffer, bytes], object] | None = None,
                 unreachable: Callable[[NdFailure], object] | None = None,
                 router_lost: Callable[[int, float], object] | None = None,
                 neighbor_failed: Callable[[int, bool, float], object] | None = None,
                 config: NdConfig | None = None, rng: random.Random | None = None) -> None:
        self.send_ns: Callable[[NsRequest], object] = send_ns or (lambda req: None)
        self.transmit: Callable[[PacketBuffer, bytes], object] = transmit or (lambda pkt, mac: None)
        self.unreachable: Callable[[NdFailure], object] = unreachable or (lambda failure: None)
        self.router_lost: Callable[[int, float], object] = router_lost or (lambda addr, now: None)
        self.neighbor_failed: Callable[[int, bool, float], object] = neighbor_failed or (lambda a, r, now: None)
        self.kick: Callable[..., None] = lambda *at: None
        self.config = config or NdConfig()
        self.rng = rng or random.Random()
        self.stats = NeighborCacheStats()
        self.entries: dict[int, Neighbor] = {}
        # entries per state in the order they entered it: O(1) choice of an eviction victim
        self._by_state: dict[str, OrderedDict[int, Neighbor]] = {s: OrderedDict() for s in STATES}
        self._heap: list[tuple[float, int, Neighbor]] = []
        self._seq = 0
        self._held: deque[_Held] = deque()   # every waiting packet in arrival order (lazily pruned)
        self._held_live = 0
        self.queued_bytes = 0
        self.base_reachable_time = self.config.base_reachable_time
        self.retrans_timer = self.config.retrans_timer
        self.reachable_time = self._randomize()
        self._rerandom_at: float | None = None   # set at the first use (the clock is not known yet)

    # --- ReachableTime (§6.3.2) ------------------------------------------------------------------
    def _randomize(self) -> float:
        cfg = self.config
        self.stats.reachable_time_randomized += 1
        return self.base_reachable_time * self.rng.uniform(cfg.min_random_factor, cfg.max_random_factor)

    def _reachable_time(self, now: float) -> float:
        if self._rerandom_at is None:
            self._rerandom_at = now + self.config.rerandomize_interval
        elif now >= self._rerandom_at:
            self.reachable_time = self._randomize()
            self._rerandom_at = now + self.config.rerandomize_interval
        return self.reachable_time

    def set_base_reachable_time(self, seconds: float, now: float) -> None:
        """An RA's Reachable Time (§6.3.4; the owner ignores 0, "unspecified").  Clamped to
        Linux's 100 ms floor and the RFC's MAX_REACHABLE_TIME (3,600,000 ms, §6.2.1); a new
        value re-randomizes ReachableTime.  Entries keep the deadlines they have."""
        seconds = min(max(seconds, 0.1), 3600.0)
        if seconds != self.base_reachable_time:
            self.base_reachable_time = seconds
            self.reachable_time = self._randomize()
            self._rerandom_at = now + self.config.rerandomize_interval

    def set_retrans_timer(self, seconds: float) -> None:
        """An RA's Retrans Timer (§6.3.4): clamped to Linux's 10 ms floor, and to an hour so a
        spoofed 49-day value cannot hold INCOMPLETE entries and their packets for weeks."""
        self.retrans_timer = min(max(seconds, 0.01), 3600.0)

    # --- what the owner asks ---------------------------------------------------------------------
    def resolve(self, dst: int, pkt: PacketBuffer, now: float, src: int | None = None) -> bytes | None:
        """For a unicast next hop `dst` (multicast maps to 33:33:xx without the cache, RFC 2464
        §7): the MAC to send `pkt` to now, or None: the packet waits for resolution (§7.2.2) and
        goes out through `transmit` -- or fails through `unreachable`.  `src` is the packet's
        source address, the NS's source if it is ours (§7.2.2)."""
        entry = self.entries.get(dst)
        if entry is None:
            entry = self._create(dst, INCOMPLETE)
            self.stats.resolutions += 1
            entry.src_hint = src
            entry.probes = 1
            self._enqueue(entry, pkt)
            self._arm(entry, now + self.retrans_timer, now)
            self._solicit(entry, multicast=True)
            self._make_room(entry)
            return None
        if src is not None:
            entry.src_hint = src
        if entry.state == INCOMPLETE:
            self._enqueue(entry, pkt)
            return None
        if entry.state == REACHABLE and now >= entry.deadline:
            self._set_state(entry, STALE)       # its timer is due but not yet polled
        if entry.state == STALE:
            self._enter_delay(entry, now)       # §7.3.3: sending a packet in STALE
        return entry.mac

    def confirm_reachable(self, dst: int, now: float) -> None:
        """Upper-layer reachability confirmation (§7.3.1: TCP forward progress): any state but
        INCOMPLETE becomes REACHABLE (Appendix C)."""
        entry = self.entries.get(dst)
        if entry is None or entry.state == INCOMPLETE:
            return
        self.stats.upper_confirmations += 1
        self._reachable(entry, now)

    def input_ns(self, src: int, slla: bytes | None, now: float) -> None:
        """A valid NS for one of our addresses from `src` (§7.2.3).  The unspecified source
        (DAD) teaches nothing.  A new entry is STALE with IsRouter false."""
        if src == 0:
            return
        if slla is None:
            self.stats.ns_rx_no_lladdr += 1
            return
        self.stats.ns_rx += 1
        self._learn(src, slla, now, None)

    def input_ra_source(self, router: int, slla: bytes | None, now: float) -> None:
        """A valid RA from `router` (§6.3.4): its source link-layer address is learned (STALE
        if new or changed) and IsRouter set, also on an entry without the option."""
        self.stats.ra_rx += 1
        if slla is None:
            entry = self.entries.get(router)
            if entry is not None:
                entry.is_router = True
            return
        self._learn(router, slla, now, True)

    def input_redirect_target(self, target: int, destination: int, tlla: bytes | None, now: float) -> None:
        """A valid, accepted Redirect (§8.3): the target's link-layer address is learned; a
        target other than the destination is a router."""
        self.stats.redirect_rx += 1
        is_router = True if target != destination else None
        if tlla is None:
            entry = self.entries.get(target)
            if entry is not None and is_router:
                entry.is_router = True
            return
        self._learn(target, tlla, now, is_router)

    def input_na(self, target: int, tlla: bytes | None, router: bool, solicited: bool, override: bool,
                 now: float) -> None:
        """A valid NA (§7.2.5; the owner validated it per §7.1.2 and that the target is not
        one of our own addresses, which is DAD's business)."""
        if solicited:
            self.stats.na_rx_solicited += 1
        else:
            self.stats.na_rx_unsolicited += 1
        entry = self.entries.get(target)
        if entry is None:
            self.stats.na_rx_no_entry += 1      # an NA never creates an entry
            return
        if tlla is not None and not valid_lladdr(tlla):
            self.stats.bad_lladdr += 1
            return
        if entry.state == INCOMPLETE:
            if tlla is None:
                self.stats.na_rx_no_tlla += 1
                return
            entry.mac = tlla
            self.stats.resolved += 1
            if solicited:
                self._reachable(entry, now)
            else:
                self._stale(entry, now)
            self._set_router(entry, router, now)
            self._send_queued(entry, now)
            return
        changed = tlla is not None and tlla != entry.mac
        if changed and not override:
            # §7.2.5 I: a REACHABLE entry is made STALE and nothing else; otherwise ignored
            self.stats.na_rx_ignored += 1
            if entry.state == REACHABLE:
                self._stale(entry, now)
            return
        if changed:
            assert tlla is not None
            entry.mac = tlla
        if solicited:
            self._reachable(entry, now)
        elif changed:
            self.stats.na_unsolicited_accepted += 1
            self._stale(entry, now)
        self._set_router(entry, router, now)

    def _set_router(self, entry: Neighbor, router: bool, now: float) -> None:
        """An NA's R flag (§7.2.5): a router turned host leaves the default router list."""
        was_router, entry.is_router = entry.is_router, router
        if was_router and not router:
            self.stats.routers_lost += 1
            self.router_lost(entry.addr, now)

    def state(self, addr: int) -> str | None:
        entry = self.entries.get(addr)
        return entry.state if entry is not None else None

    def table(self) -> list[tuple[int, str, bytes, bool]]:
        return [(e.addr, e.state, e.mac, e.is_router) for e in self.entries.values()]

    def remove(self, addr: int) -> None:
        """Forget one neighbour (its waiting packets fail as flushed)."""
        entry = self.entries.get(addr)
        if entry is not None:
            self._delete(entry)
            self._fail_queue(entry, "flushed")

    def flush(self) -> None:
        """The interface goes away: forget everything; waiting packets fail as flushed."""
        for entry in list(self.entries.values()):
            if self.entries.get(entry.addr) is entry:
                self._delete(entry)
                self._fail_queue(entry, "flushed")

    # --- timers ----------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        # the heap is lazy: items of gone entries are skipped, and an item earlier than its
        # entry's deadline (moved later since, e.g. by a confirmation) is moved up to it here
        while self._heap:
            at, _, entry = self._heap[0]
            if entry.heap_at != at or self.entries.get(entry.addr) is not entry:
                heapq.heappop(self._heap)
            elif entry.deadline > at:
                self._seq += 1
                entry.heap_at = entry.deadline
                heapq.heapreplace(self._heap, (entry.deadline, self._seq, entry))
            else:
                return at
        return None

    def poll(self, now: float) -> None:
        # self._heap, not a local: a callback may make _arm rebuild it
        while self._heap and self._heap[0][0] <= now:
            at, _, entry = heapq.heappop(self._heap)
            if entry.heap_at != at or self.entries.get(entry.addr) is not entry:
                continue                        # superseded, or the entry is gone
            entry.heap_at = None
            if entry.deadline > now:
                self._arm(entry, entry.deadline, now)   # the deadline moved later meanwhile
                continue
            self._expire(entry, now)

    def _expire(self, entry: Neighbor, now: float) -> None:
        cfg = self.config
        if entry.state == INCOMPLETE:
            if entry.probes >= cfg.max_multicast_solicit:
                self.stats.failures += 1
                self._delete(entry)
                self._fail_queue(entry, "failed")
                self.neighbor_failed(entry.addr, entry.is_router, now)
            else:
                entry.probes += 1
                self._arm(entry, now + self.retrans_timer, now)
                self._solicit(entry, multicast=True)
        elif entry.state == REACHABLE:
            self._stale(entry, now)
        elif entry.state == STALE:
            self.stats.gc_stale += 1
            self._delete(entry)
        elif entry.state == DELAY:
            # §7.3.3: no confirmation within DELAY_FIRST_PROBE_TIME: probe by unicast
            self._set_state(entry, PROBE)
            entry.probes = 1
            self._arm(entry, now + self.retrans_timer, now)
            self._solicit(entry, multicast=False)
        elif entry.probes >= cfg.max_unicast_solicit:   # PROBE
            self.stats.nud_failures += 1
            self._delete(entry)
            self.neighbor_failed(entry.addr, entry.is_router, now)
        else:
            entry.probes += 1
            self._arm(entry, now + self.retrans_timer, now)
            self._solicit(entry, multicast=False)

    def _arm(self, entry: Neighbor, at: float, now: float) -> None:
        """Set the entry's deadline, never at or before `now` (protocols/timing.py: a deadline
        still due after its handler ran is looked at a tick later).  A later deadline than the
        armed heap item just waits for that item to fire; an earlier one is pushed."""
        if at <= now:
            at = now + TICK
            if at <= now:
                at = math.nextafter(now, math.inf)
        entry.deadline = at
        if entry.heap_at is not None and entry.heap_at <= at:
            return
        entry.heap_at = at
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, entry))
        if len(self._heap) > 2 * len(self.entries) + 64:
            self._rebuild_heap()
        self.kick(at)

    def _rebuild_heap(self) -> None:
        self._heap = []
        for entry in self.entries.values():
            self._seq += 1
            entry.heap_at = entry.deadline
            self._heap.append((entry.deadline, self._seq, entry))
        heapq.heapify(self._heap)

    # --- transitions -----------------------------------------------------------------------------
    def _set_state(self, entry: Neighbor, state: str) -> None:
        if entry.state == state:
            return
        del self._by_state[entry.state][entry.addr]
        entry.state = state
        self._by_state[state][entry.addr] = entry
        self.stats.state_changes += 1

    def _reachable(self, entry: Neighbor, now: float) -> None:
        self._set_state(entry, REACHABLE)
        entry.probes = 0
        self._arm(entry, now + self._reachable_time(now), now)

    def _stale(self, entry: Neighbor, now: float) -> None:
        self._set_state(entry, STALE)
        self._arm(entry, now + self.config.gc_stale_time, now)

    def _enter_delay(self, entry: Neighbor, now: float) -> None:
        self._set_state(entry, DELAY)
        self._arm(entry, now + self.config.delay_first_probe_time, now)

    def _learn(self, addr: int, lla: bytes, now: float, is_router: bool | None) -> None:
        """Appendix C, the unsolicited information other than NA (NS, RA, Redirect): a new entry
        or a different address is recorded STALE; the same address changes nothing."""
        if not valid_lladdr(lla):
            self.stats.bad_lladdr += 1
            return
        entry = self.entries.get(addr)
        if entry is None:
            entry = self._create(addr, STALE, lla)
            entry.is_router = bool(is_router)
            self._arm(entry, now + self.config.gc_stale_time, now)
            self._make_room(entry)
            return
        if is_router is not None:
            entry.is_router = is_router
        if entry.state == INCOMPLETE:
            entry.mac = lla
            self.stats.resolved += 1
            self._stale(entry, now)
            self._send_queued(entry, now)
        elif lla != entry.mac:
            entry.mac = lla
            self._stale(entry, now)

    def _solicit(self, entry: Neighbor, multicast: bool) -> None:
        if multicast:
            self.stats.ns_tx_multicast += 1
            group = solicited_node(entry.addr)
            req = NsRequest(entry.addr, group, multicast_mac(group), True, entry.src_hint)
        else:
            self.stats.ns_tx_unicast += 1
            req = NsRequest(entry.addr, entry.addr, entry.mac, False, entry.src_hint)
        self.send_ns(req)

    # --- entries ----------------------------------------------------------------------------------
    def _create(self, addr: int, state: str, mac: bytes = b"") -> Neighbor:
        """A new entry, in the table at once; the caller arms its timer, then calls _make_room
        (an evicted entry's failure callbacks may re-enter: they must find this one whole)."""
        entry = Neighbor(addr, state, mac)
        self.entries[addr] = entry
        self._by_state[state][addr] = entry
        return entry

    def _make_room(self, new: Neighbor) -> None:
        cfg = self.config
        incomplete = self._by_state[INCOMPLETE]
        if new.state == INCOMPLETE and len(incomplete) > cfg.max_incomplete:
            victim = self._oldest(incomplete, new)
            if victim is not None:
                self.stats.incomplete_evictions += 1
                self._evict(victim)
        if len(self.entries) > cfg.max_entries:
            for state in EVICTION_ORDER:
                victim = self._oldest(self._by_state[state], new)
                if victim is not None:
                    self.stats.evictions += 1
                    self._evict(victim)
                    break

    @staticmethod
    def _oldest(pool: OrderedDict[int, Neighbor], spare: Neighbor) -> Neighbor | None:
        """The entry longest in its state, other than `spare` (the new one)."""
        for entry in pool.values():
            if entry is not spare:
                return entry
        return None

    def _evict(self, victim: Neighbor) -> None:
        self._delete(victim)
        self._fail_queue(victim, "evicted")

    def _delete(self, entry: Neighbor) -> None:
        del self.entries[entry.addr]
        del self._by_state[entry.state][entry.addr]

    # --- the queue of packets waiting for resolution -------------------------------------------------
    def _enqueue(self, entry: Neighbor, pkt: PacketBuffer) -> None:
        cfg = self.config
        held = _Held(pkt, len(pkt) + cfg.queue_overhead, entry)
        entry.queue.append(held)
        entry.queued += held.cost
        self._held.append(held)
        self._held_live += 1
        self.queued_bytes += held.cost
        while entry.queued > cfg.queue_bytes:
            self._drop(entry.queue.popleft())
        while self.queued_bytes > cfg.queue_bytes_total:
            self._drop(self._held.popleft())
        if len(self._held) > 2 * self._held_live + 64:
            self._held = deque(h for h in self._held if h.entry is not None)

    def _drop(self, held: _Held) -> None:
        """Drop one waiting packet for a bound (a packet already gone is skipped)."""
        if held.entry is None:
            return
        self._release(held)
        self.stats.queue_drops += 1

    def _release(self, held: _Held) -> None:
        entry = held.entry
        assert entry is not None
        entry.queued -= held.cost
        self.queued_bytes -= held.cost
        self._held_live -= 1
        held.entry = None

    def _take_queue(self, entry: Neighbor) -> list[PacketBuffer]:
        queue, entry.queue = entry.queue, deque()
        pkts = []
        for held in queue:
            if held.entry is not None:
                self._release(held)
                pkts.append(held.pkt)
        return pkts

    def _send_queued(self, entry: Neighbor, now: float) -> None:
        """Resolved: the waiting packets go out in order; sending makes a STALE entry DELAY
        (§7.3.3), as Linux's neigh_update does by sending them through the entry."""
        pkts = self._take_queue(entry)
        if pkts and entry.state == STALE:
            self._enter_delay(entry, now)
        mac = entry.mac
        for pkt in pkts:
            self.transmit(pkt, mac)

    def _fail_queue(self, entry: Neighbor, cause: str) -> None:
        code = ICMPV6_ADDR_UNREACH if cause == "failed" else None
        for pkt in self._take_queue(entry):
            self.stats.unreachable_pkts += 1
            self.unreachable(NdFailure(pkt, entry.addr, errno.EHOSTUNREACH, code, cause))
