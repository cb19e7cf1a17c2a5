"""An interface's IPv6 addresses (RFC 4862 stateless address autoconfiguration, RFC 7217
stable interface identifiers) as a sans-IO timed core.

One `AddrConf` per interface holds its unicast addresses, each with
  state     TENTATIVE (DAD running: not ours for ordinary input, never a source, §5.4),
            PREFERRED, DEPRECATED (preferred lifetime over: still ours, a last-resort source,
            §5.5.4), DUPLICATE (DAD found it in use elsewhere: not used, §5.4.5)
  origin    LINK_LOCAL (fe80::/64 + the interface identifier, made by `start`), STATIC (the
            owner's `add_static`, like `ip addr add`), SLAAC (from a Router Advertisement's
            Prefix Information option, §5.5.3)
  lifetimes valid and preferred, absolute deadlines in this core (None: infinite, the
            option's 0xffffffff); the preferred one ending deprecates, the valid one removes.

The core never sends anything itself.  Its owner (the IPv6 layer of the interface) gives it
callables:
  send_ns(NsRequest)        a DAD probe (§5.4.2): a Neighbor Solicitation for `target` to its
                            solicited-node group, source the unspecified address (`src_hint`
                            is 0, `with_slla` False: no source link-layer address option),
                            hop limit 255 -- the same request type nd.py's cache asks with
  join(group) / leave(group)
                            the solicited-node group of our addresses, reference counted here
                            (two addresses with the same low 24 bits share one): the owner's
                            MLD sends the reports (§5.4.2 wants the join before the first
                            probe, and its report delayed: it is made after the random delay)
  ready(info, now)          DAD passed (or was off): the address is usable.  The owner may
                            send an unsolicited NA (RFC 4861 §7.2.6, optional) and, for the
                            first link-local address, start Router Solicitation (§6.3.7)
  duplicate(info, cause, now)
                            DAD failed ("ns": someone else probes for it, "na": someone owns
                            it); counted in `dad_failed`, logged by the owner as Linux does
                            ("IPv6 duplicate address ... detected!")
  removed(info, now)        the address is gone (valid lifetime over, `remove`, `flush`):
                            routes and bound sockets are the owner's business
  disabled(now)             IPv6 is disabled on the interface (only with
                            `disable_on_ll_duplicate`, below)
and it calls `input_prefix` with each validated Prefix Information option (RFC 4861 §6.1.2
validation, the L flag and on-link prefixes are the owner's), `input_ns` / `input_na` with
the target of each valid NS / NA (§7.1: the answers tell it whether to reply, and whether the
message is about one of our addresses), `set_retrans_timer` with an RA's Retrans Timer.
The timers follow the TimedCore contract (protocols/contracts.py): `poll_at()`, `poll(now)`,
`kick`; every timer is one heap operation, O(log n).

Duplicate Address Detection (§5.4), for every address (also static ones, as Linux does unless
IFA_F_NODAD): a new address is tentative; after a random delay in [0, MAX_RTR_SOLICITATION_DELAY]
(§5.4.2; Linux delays every DAD by up to rtr_solicit_delay) the group is joined and
DupAddrDetectTransmits NS go out RetransTimer apart; RetransTimer after the last one with no
conflict the address is preferred (deprecated if its preferred lifetime ended meanwhile).
A conflict is an NS for the tentative address from the unspecified source (§5.4.3) or an NA
for it (§5.4.4); an NS for it from a unicast source is address resolution and is ignored.
With an interface identifier given as a function `iid(prefix, dad_counter)` (RFC 7217), a
duplicate is replaced by a new tentative address made with DAD_Counter + 1, IDGEN_DELAY later,
up to IDGEN_RETRIES times (RFC 7217 §6; Linux idgen_retries 3, idgen_delay 1 s); the last
failure, or any failure of a fixed identifier or of a static address, stays listed as DUPLICATE
(Linux's "dadfailed") until removed or, for SLAAC, until its valid lifetime ends, so further
RAs for that prefix only refresh its lifetimes instead of probing again.

A duplicate link-local address: RFC 4862 §5.4.5 says IP operation on the interface SHOULD be
disabled when its identifier is hardware-derived.  Linux's default (accept_dad 1) keeps the
interface working and logs; accept_dad 2 disables IPv6 when the duplicate is the EUI-64
link-local address.  Default here: Linux's accept_dad 1; `disable_on_ll_duplicate` gives
accept_dad 2, applied to an identifier given as a fixed int (the EUI-64 case).

Not here: optimistic DAD (RFC 4429), enhanced DAD's nonce against looped-back probes
(RFC 7527: the owner must not feed its own probes back), temporary addresses (RFC 8981),
DHCPv6 addresses, the prefix list and routes (the owner's, from the same RA).

Addresses are 128-bit ints.
"""
from __future__ import annotations

import errno
import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from ndd.counters import Counters

from ..timing import TICK
from .addr import multicast_mac, solicited_node
from .nd import NsRequest

TENTATIVE, PREFERRED, DEPRECATED, DUPLICATE = "TENTATIVE", "PREFERRED", "DEPRECATED", "DUPLICATE"
STATES = (TENTATIVE, PREFERRED, DEPRECATED, DUPLICATE)
LINK_LOCAL, STATIC, SLAAC = "link-local", "static", "slaac"
ORIGINS = (LINK_LOCAL, STATIC, SLAAC)

INFINITE = 0xFFFFFFFF                      # RFC 4861 §4.6.2: an infinite lifetime
TWO_HOURS = 7200                           # RFC 4862 §5.5.3 e
ADDR_MASK = (1 << 128) - 1
LINK_LOCAL_PREFIX = 0xFE80 << 112          # fe80::/64 (RFC 4291 §2.5.6)
_LINK_LOCAL_NET = 0xFE80 << 112            # fe80::/10 ...
_LINK_LOCAL_NET_MASK = 0xFFC0 << 112
_MULTICAST_NET = 0xFF << 120               # ff00::/8
_LOOPBACK = 1

IidSource = int | Callable[[int, int], int]


def is_link_local(addr: int) -> bool:
    return addr & _LINK_LOCAL_NET_MASK == _LINK_LOCAL_NET


def is_multicast(addr: int) -> bool:
    return addr & _MULTICAST_NET == _MULTICAST_NET


@dataclass
class AddrConfConfig:
    # RFC 4862 §5.1 DupAddrDetectTransmits (Linux dad_transmits 1); 0 turns DAD off
    dad_transmits: int = 1
    # RFC 4861 §10 RETRANS_TIMER, the gap between probes and the wait after the last one; an
    # RA may change it (set_retrans_timer)
    retrans_timer: float = 1.0
    # RFC 4861 §10 MAX_RTR_SOLICITATION_DELAY: the random delay before the first probe (§5.4.2)
    max_rtr_solicitation_delay: float = 1.0
    # RFC 7217 §6 IDGEN_RETRIES / IDGEN_DELAY (Linux idgen_retries 3, idgen_delay 1 s)
    idgen_retries: int = 3
    idgen_delay: float = 1.0
    # RFC 4862 §5.5.3 d: the interface identifier's length; 64 on Ethernet (RFC 2464 §4) and
    # every medium we use, so a Prefix Information option must be a /64 to form an address
    iid_len: int = 64
    # Linux max_addresses (16): no SLAAC address is formed when the interface already has
    # this many addresses of any kind (Linux counts them all the same way)
    max_addresses: int = 16
    # every table bounded: a static address beyond this many addresses is refused (ENOSPC).
    # Linux has no such cap for `ip addr add`
    max_total: int = 64
    # Linux accept_dad: False is accept_dad 1 (a duplicate link-local address is reported,
    # the interface keeps working), True is accept_dad 2 / RFC 4862 §5.4.5 (IPv6 disabled)
    disable_on_ll_duplicate: bool = False
    # a loopback interface: ::1 may be configured on it, and only on it (Linux ipv6_add_addr)
    loopback: bool = False


@dataclass
class AddrConfStats(Counters):
    dad_started: int = 0          # addresses that began DAD (tentative)
    dad_skipped: int = 0          # addresses made usable at once (DAD off, or static nodad)
    dad_ns_sent: int = 0          # DAD probes asked of the owner
    dad_succeeded: int = 0
    dad_failed: int = 0           # duplicates found, either way below
    dad_conflict_ns: int = 0      # an NS from :: for a tentative address (§5.4.3)
    dad_conflict_na: int = 0      # an NA for a tentative address (§5.4.4)
    dad_retries: int = 0          # RFC 7217 new identifiers tried after a duplicate
    dad_gave_up: int = 0          # a duplicate left as DUPLICATE (no retry left or possible)
    ns_tentative_resolution: int = 0  # NS for a tentative address from a unicast source: ignored
    na_for_own_address: int = 0   # NA for one of our usable addresses: logged, not acted on
    link_local_created: int = 0
    static_added: int = 0
    static_refused: int = 0       # add_static beyond max_total (ENOSPC)
    static_expired: int = 0       # a static address with a finite valid lifetime that ended
    removed_by_owner: int = 0
    deprecated: int = 0           # preferred lifetimes that ended (or an RA's preferred 0)
    slaac_created: int = 0
    slaac_updated: int = 0        # an RA refreshed an existing SLAAC address (§5.5.3 e)
    slaac_two_hour_rule: int = 0  # an RA's valid lifetime capped to 2 h or ignored (§5.5.3 e)
    slaac_expired: int = 0        # valid lifetime over: removed
    slaac_overflow: int = 0       # not formed: max_addresses reached
    slaac_exists: int = 0         # not formed: the address is already on the interface
    prefix_ignored_not_autonomous: int = 0   # A flag clear (§5.5.3 a)
    prefix_ignored_link_local: int = 0       # fe80::/10 (§5.5.3 b)
    prefix_ignored_multicast: int = 0        # ff00::/8 (Linux ignores it too)
    prefix_ignored_lifetimes: int = 0        # preferred > valid, or not 32-bit (§5.5.3 c)
    prefix_ignored_length: int = 0           # prefix length + iid_len != 128 (§5.5.3 d)
    prefix_ignored_zero_valid: int = 0       # a new prefix with valid lifetime 0 (§5.5.3 d)
    prefix_ignored_disabled: int = 0         # IPv6 disabled on the interface
    ipv6_disabled: int = 0        # §5.4.5 with disable_on_ll_duplicate


@dataclass(frozen=True, slots=True)
class AddressInfo:
    """A snapshot of one address for the owner."""
    addr: int
    plen: int
    state: str
    origin: str
    valid_until: float | None      # absolute time; None: infinite
    preferred_until: float | None
    dad_counter: int               # RFC 7217 DAD_Counter the identifier was made with

    @property
    def deprecated(self) -> bool:
        return self.state == DEPRECATED

    def valid_lft(self, now: float) -> float | None:
        """The remaining valid lifetime in seconds (None: infinite), as `ip addr` shows."""
        return None if self.valid_until is None else max(0.0, self.valid_until - now)

    def preferred_lft(self, now: float) -> float | None:
        return None if self.preferred_until is None else max(0.0, self.preferred_until - now)


@dataclass(eq=False)
class Address:
    addr: int
    plen: int
    origin: str
    state: str
    valid_until: float | None
    preferred_until: float | None
    prefix: int = 0                # SLAAC: the prefix it was formed from
    dad_counter: int = 0
    dad_at: float | None = None    # TENTATIVE: the next DAD step (first probe, next, verdict)
    dad_sent: int = 0
    joined: bool = False           # its solicited-node group is joined
    heap_at: float | None = None   # the time of this address's live item in the timer heap

    def info(self) -> AddressInfo:
        return AddressInfo(self.addr, self.plen, self.state, self.origin, self.valid_until,
                           self.preferred_until, self.dad_counter)


def _fixed_iid(iid: int) -> Callable[[int, int], int]:
    return lambda prefix, dad_counter: iid


def _seconds(lifetime: int) -> float:
    return math.inf if lifetime == INFINITE else float(lifetime)


def _until(now: float, seconds: float) -> float | None:
    return None if math.isinf(seconds) else now + seconds


class AddrConf:
    """The IPv6 addresses of one interface (a TimedCore).  `iid` is the interface identifier:
    a fixed int (EUI-64, RFC 4291 Appendix A) or a function (prefix, dad_counter) -> int
    (RFC 7217 stable identifiers; it should avoid the RFC 5453 reserved identifiers); only
    its low iid_len bits are used."""

    def __init__(self, iid: IidSource, *,
                 send_ns: Callable[[NsRequest], object] | None = None,
                 join: Callable[[int], object] | None = None,
                 leave: Callable[[int], object] | None = None,
                 ready: Callable[[AddressInfo, float], object] | None = None,
                 duplicate: Callable[[AddressInfo, str, float], object] | None = None,
                 removed: Callable[[AddressInfo, float], object] | None = None,
                 disabled: Callable[[float], object] | None = None,
                 config: AddrConfConfig | None = None, rng: random.Random | None = None) -> None:
        self.config = config or AddrConfConfig()
        self.rng = rng or random.Random()
        self.stats = AddrConfStats()
        self._iid_fixed = isinstance(iid, int)
        self._iid: Callable[[int, int], int] = _fixed_iid(iid) if isinstance(iid, int) else iid
        self.send_ns: Callable[[NsRequest], object] = send_ns or (lambda req: None)
        self.join: Callable[[int], object] = join or (lambda group: None)
        self.leave: Callable[[int], object] = leave or (lambda group: None)
        self.ready: Callable[[AddressInfo, float], object] = ready or (lambda info, now: None)
        self.duplicate: Callable[[AddressInfo, str, float], object] = duplicate or (lambda i, c, now: None)
        self.removed: Callable[[AddressInfo, float], object] = removed or (lambda info, now: None)
        self.disabled: Callable[[float], object] = disabled or (lambda now: None)
        self.kick: Callable[..., None] = lambda *at: None
        self.retrans_timer = self.config.retrans_timer
        self.is_disabled = False
        self.entries: dict[int, Address] = {}
        self._slaac: dict[int, Address] = {}      # prefix -> the SLAAC address formed from it
        self._groups: dict[int, int] = {}         # solicited-node group -> addresses joined to it
        self._heap: list[tuple[float, int, Address]] = []
        self._seq = 0
        iid_len = self.config.iid_len
        self._iid_mask = (1 << iid_len) - 1
        self._prefix_mask = ADDR_MASK ^ self._iid_mask

    # --- what the owner does ---------------------------------------------------------------------
    def start(self, now: float) -> None:
        """The interface comes up (or IPv6 is re-enabled on it): its link-local address,
        fe80::/64 and the interface identifier (RFC 4862 §5.3), tentative.  Idempotent."""
        self.is_disabled = False
        if any(a.origin == LINK_LOCAL for a in self.entries.values()):
            return
        addr = self._form(LINK_LOCAL_PREFIX, 0)
        if addr in self.entries:
            return                                # the owner configured it statically
        self.stats.link_local_created += 1
        self._create(addr, 64, LINK_LOCAL, None, None, now)

    def add_static(self, addr: int, plen: int, now: float, valid: int = INFINITE,
                   preferred: int = INFINITE, dad: bool = True) -> int:
        """`ip addr add addr/plen [valid_lft V preferred_lft P] [nodad]`: 0 or Linux's errno
        (inet6_addr_add / ipv6_add_addr): EINVAL for a bad prefix length, lifetimes (valid 0,
        preferred > valid) or a multicast address, EADDRNOTAVAIL for :: and (but on a
        loopback) ::1, EEXIST,
        EACCES when IPv6 is disabled; ENOSPC beyond max_total (ours: Linux has no cap)."""
        if not 0 <= plen <= 128 or not 0 < valid <= INFINITE or not 0 <= preferred <= valid:
            return errno.EINVAL
        if not 0 <= addr <= ADDR_MASK or is_multicast(addr):
            return errno.EINVAL
        if addr == 0 or (addr == _LOOPBACK and not self.config.loopback):
            return errno.EADDRNOTAVAIL
        if self.is_disabled:
            return errno.EACCES
        if addr in self.entries:
            return errno.EEXIST
        if len(self.entries) >= self.config.max_total:
            self.stats.static_refused += 1
            return errno.ENOSPC
        self.stats.static_added += 1
        self._create(addr, plen, STATIC, _until(now, _seconds(valid)),
                     _until(now, _seconds(preferred)), now, dad=dad)
        return 0

    def remove(self, addr: int, now: float) -> int:
        """`ip addr del`: any address, whatever its origin; EADDRNOTAVAIL if not there."""
        a = self.entries.get(addr)
        if a is None:
            return errno.EADDRNOTAVAIL
        self.stats.removed_by_owner += 1
        self._remove(a, now)
        return 0

    def flush(self, now: float) -> None:
        """The interface goes down: every address goes (Linux's default, keep_addr_on_down 0)."""
        for a in list(self.entries.values()):
            if self.entries.get(a.addr) is a:
                self._remove(a, now)

    def set_retrans_timer(self, seconds: float) -> None:
        """An RA's Retrans Timer (RFC 4861 §6.3.4), clamped as nd.py clamps it (Linux's 10 ms
        floor, an hour at most).  Probes already scheduled keep their time."""
        self.retrans_timer = min(max(seconds, 0.01), 3600.0)

    # --- input -------------------------------------------------------------------------------------
    def input_prefix(self, prefix: int, plen: int, autonomous: bool, valid: int, preferred: int,
                     now: float) -> None:
        """A Prefix Information option of a valid RA (RFC 4862 §5.5.3)."""
        st = self.stats
        if self.is_disabled:
            st.prefix_ignored_disabled += 1
        elif not autonomous:
            st.prefix_ignored_not_autonomous += 1            # a
        elif is_link_local(prefix):
            st.prefix_ignored_link_local += 1                # b
        elif is_multicast(prefix):
            st.prefix_ignored_multicast += 1
        elif not 0 <= preferred <= valid <= INFINITE:
            st.prefix_ignored_lifetimes += 1                 # c
        elif plen + self.config.iid_len != 128:
            st.prefix_ignored_length += 1                    # d
        else:
            prefix &= self._prefix_mask
            existing = self._slaac.get(prefix)
            if existing is not None:
                self._update_slaac(existing, valid, preferred, now)
            elif valid == 0:
                st.prefix_ignored_zero_valid += 1
            else:
                self._create_slaac(prefix, plen, valid, preferred, now)

    def input_ns(self, target: int, src: int, now: float) -> bool:
        """A valid NS (RFC 4861 §7.1.1) for `target` from `src` (0: the unspecified address).
        True: the target is one of our usable addresses, answer with an NA (§7.2.4; to
        all-nodes when src is ::).  For a tentative target, a probe from :: is someone else's
        DAD, a duplicate (RFC 4862 §5.4.3); a unicast source is address resolution, ignored."""
        a = self.entries.get(target)
        if a is None:
            return False
        if a.state == TENTATIVE:
            if src == 0:
                self.stats.dad_conflict_ns += 1
                self._conflict(a, "ns", now)
            else:
                self.stats.ns_tentative_resolution += 1
            return False
        return a.state in (PREFERRED, DEPRECATED)

    def input_na(self, target: int, now: float) -> bool:
        """A valid NA (RFC 4861 §7.1.2) for `target`.  True: the target is one of our addresses
        (any state) and the NA is ours, not the neighbor cache's.  For a tentative target it
        is a duplicate (RFC 4862 §5.4.4); for a usable one someone else claims it: counted
        (Linux logs "NA: ... advertised our address") and nothing else."""
        a = self.entries.get(target)
        if a is None:
            return False
        if a.state == TENTATIVE:
            self.stats.dad_conflict_na += 1
            self._conflict(a, "na", now)
        elif a.state in (PREFERRED, DEPRECATED):
            self.stats.na_for_own_address += 1
        return True

    # --- queries -----------------------------------------------------------------------------------
    def is_ours(self, addr: int) -> bool:
        """A usable address of this interface, for receive decisions: tentative and duplicate
        addresses are not (RFC 4862 §5.4: unicast to a tentative address is discarded; DAD's
        NS/NA go through input_ns/input_na)."""
        a = self.entries.get(addr)
        return a is not None and a.state in (PREFERRED, DEPRECATED)

    def state(self, addr: int) -> str | None:
        a = self.entries.get(addr)
        return a.state if a is not None else None

    def addresses(self, now: float) -> list[AddressInfo]:
        """Every address with its state at `now` (a lifetime that ended since the last poll is
        already applied here), in the order they were configured."""
        return [info for a in self.entries.values() if (info := self._info_at(a, now)) is not None]

    def source_candidates(self, now: float | None = None) -> list[AddressInfo]:
        """The usable addresses for RFC 6724 source selection: preferred ones first, then the
        deprecated ones (rule 3, avoid deprecated), each in configuration order."""
        infos = [a.info() for a in self.entries.values()] if now is None else self.addresses(now)
        usable = [i for i in infos if i.state in (PREFERRED, DEPRECATED)]
        return [i for i in usable if i.state == PREFERRED] + [i for i in usable if i.state == DEPRECATED]

    def groups(self) -> list[int]:
        """The solicited-node groups joined for our addresses."""
        return list(self._groups)

    def _info_at(self, a: Address, now: float) -> AddressInfo | None:
        if a.valid_until is not None and a.valid_until <= now:
            return None
        info = a.info()
        if a.state == PREFERRED and a.preferred_until is not None and a.preferred_until <= now:
            return AddressInfo(a.addr, a.plen, DEPRECATED, a.origin, a.valid_until,
                               a.preferred_until, a.dad_counter)
        return info

    # --- timers ------------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        while self._heap:
            at, _, a = self._heap[0]
            if a.heap_at == at and self.entries.get(a.addr) is a:
                return at
            heapq.heappop(self._heap)        # superseded, or the address is gone
        return None

    def poll(self, now: float) -> None:
        # self._heap, not a local: a callback may make _arm rebuild it
        while self._heap and self._heap[0][0] <= now:
            at, _, a = heapq.heappop(self._heap)
            if a.heap_at != at or self.entries.get(a.addr) is not a:
                continue
            a.heap_at = None
            self._service(a, now)

    def _service(self, a: Address, now: float) -> None:
        """Whatever of the address's deadlines is due: the end of its valid lifetime, a DAD
        step, the end of its preferred lifetime."""
        if a.valid_until is not None and a.valid_until <= now:
            if a.origin == SLAAC:
                self.stats.slaac_expired += 1
            else:
                self.stats.static_expired += 1
            self._remove(a, now)
            return
        if a.state == TENTATIVE and a.dad_at is not None and a.dad_at <= now:
            self._dad_step(a, now)
            return
        if a.state == PREFERRED and a.preferred_until is not None and a.preferred_until <= now:
            self._deprecate(a)
        self._arm(a, now)

    def _deadline(self, a: Address) -> float | None:
        times = []
        if a.valid_until is not None:
            times.append(a.valid_until)
        if a.state == TENTATIVE and a.dad_at is not None:
            times.append(a.dad_at)
        if a.state == PREFERRED and a.preferred_until is not None:
            times.append(a.preferred_until)
        return min(times) if times else None

    def _arm(self, a: Address, now: float) -> None:
        """Put the address's next deadline in the heap (an older item for it goes stale),
        never at or before `now` (protocols/timing.py: a deadline still due after its handler
        ran is looked at a tick later)."""
        at = self._deadline(a)
        if at is None:
            a.heap_at = None
            return
        if at <= now:
            at = now + TICK
            if at <= now:
                at = math.nextafter(now, math.inf)
        if a.heap_at == at:
            return
        a.heap_at = at
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, a))
        if len(self._heap) > 2 * len(self.entries) + 64:
            self._rebuild_heap()
        self.kick(at)

    def _rebuild_heap(self) -> None:
        self._heap = []
        for a in self.entries.values():
            if a.heap_at is not None:
                self._seq += 1
                self._heap.append((a.heap_at, self._seq, a))
        heapq.heapify(self._heap)

    # --- Duplicate Address Detection (§5.4) ----------------------------------------------------
    def _dad_step(self, a: Address, now: float) -> None:
        if not a.joined:
            self._join(a)                    # §5.4.2: before the first probe
            if self.entries.get(a.addr) is not a:
                return                       # the owner's join callback removed it
        if a.dad_sent < self.config.dad_transmits:
            a.dad_sent += 1
            a.dad_at = now + self.retrans_timer
            self._arm(a, now)
            self.stats.dad_ns_sent += 1
            group = solicited_node(a.addr)
            self.send_ns(NsRequest(a.addr, group, multicast_mac(group), True, 0, with_slla=False))
            return
        # RetransTimer after the last probe and no conflict: unique (§5.4.2)
        self.stats.dad_succeeded += 1
        self._usable(a, now)

    def _usable(self, a: Address, now: float) -> None:
        a.dad_at = None
        a.state = PREFERRED
        if a.preferred_until is not None and a.preferred_until <= now:
            self._deprecate(a)
        self._arm(a, now)
        self.ready(a.info(), now)

    def _conflict(self, a: Address, cause: str, now: float) -> None:
        """The tentative address is a duplicate (§5.4.5): not used, reported; an RFC 7217
        identifier is retried with DAD_Counter + 1, anything else stays DUPLICATE."""
        self.stats.dad_failed += 1
        self._leave(a)
        a.state = DUPLICATE
        a.dad_at = None
        info = a.info()
        replacement = self._retry_address(a)
        if replacement is not None:
            self._forget(a)
            self.stats.dad_retries += 1
            delay = self.config.idgen_delay + self.rng.uniform(0.0, self.config.max_rtr_solicitation_delay)
            self._create(replacement, a.plen, a.origin, a.valid_until, a.preferred_until, now,
                         prefix=a.prefix, dad_counter=a.dad_counter + 1, dad_delay=delay)
            self.duplicate(info, cause, now)
            return
        self.stats.dad_gave_up += 1
        self._arm(a, now)
        self.duplicate(info, cause, now)
        if a.origin == LINK_LOCAL and self._iid_fixed and self.config.disable_on_ll_duplicate:
            self._disable(now)

    def _retry_address(self, a: Address) -> int | None:
        """RFC 7217 §6: a new address from DAD_Counter + 1, if the identifier is a function,
        the address not static, retries are left and the new address is not already here."""
        if self._iid_fixed or a.origin == STATIC or a.dad_counter >= self.config.idgen_retries:
            return None
        new = self._form(a.addr & self._prefix_mask, a.dad_counter + 1)
        if new == a.addr or new in self.entries:
            return None
        return new

    def _disable(self, now: float) -> None:
        """RFC 4862 §5.4.5 (Linux accept_dad 2): IPv6 off on the interface until `start`."""
        self.stats.ipv6_disabled += 1
        self.is_disabled = True
        self.flush(now)
        self.disabled(now)

    def _join(self, a: Address) -> None:
        a.joined = True
        group = solicited_node(a.addr)
        count = self._groups.get(group, 0)
        self._groups[group] = count + 1
        if count == 0:
            self.join(group)

    def _leave(self, a: Address) -> None:
        if not a.joined:
            return
        a.joined = False
        group = solicited_node(a.addr)
        count = self._groups[group] - 1
        if count:
            self._groups[group] = count
        else:
            del self._groups[group]
            self.leave(group)

    # --- SLAAC (§5.5.3) ----------------------------------------------------------------------------
    def _create_slaac(self, prefix: int, plen: int, valid: int, preferred: int, now: float) -> None:
        """§5.5.3 d: a new prefix forms prefix | identifier, tentative until DAD passes."""
        if len(self.entries) >= self.config.max_addresses:
            self.stats.slaac_overflow += 1
            return
        addr = self._form(prefix, 0)
        if addr in self.entries:
            self.stats.slaac_exists += 1
            return
        self.stats.slaac_created += 1
        self._create(addr, plen, SLAAC, _until(now, _seconds(valid)),
                     _until(now, _seconds(preferred)), now, prefix=prefix)

    def _update_slaac(self, a: Address, valid: int, preferred: int, now: float) -> None:
        """§5.5.3 e: the preferred lifetime is reset to the advertised one; the valid lifetime
        follows the two-hour rule, so an unauthenticated RA cannot cut it short."""
        self.stats.slaac_updated += 1
        received = _seconds(valid)
        remaining = math.inf if a.valid_until is None else a.valid_until - now
        if received > TWO_HOURS or received > remaining:
            a.valid_until = _until(now, received)                  # 1
        elif remaining <= TWO_HOURS:
            self.stats.slaac_two_hour_rule += 1                   # 2: ignored
        else:
            self.stats.slaac_two_hour_rule += 1                   # 3: two hours
            a.valid_until = now + TWO_HOURS
        # never beyond the valid lifetime: preferred <= received valid (c) and every rule
        # above leaves the valid lifetime at least the received one or longer than it
        preferred_until = a.preferred_until = _until(now, _seconds(preferred))
        if a.state == PREFERRED and preferred_until is not None and preferred_until <= now:
            self._deprecate(a)
        elif a.state == DEPRECATED and (preferred_until is None or preferred_until > now):
            a.state = PREFERRED                                   # preferred again
        self._arm(a, now)

    def _deprecate(self, a: Address) -> None:
        """§5.5.4: still ours for input and existing communication, a last-resort source."""
        self.stats.deprecated += 1
        a.state = DEPRECATED

    # --- the table ---------------------------------------------------------------------------------
    def _form(self, prefix: int, dad_counter: int) -> int:
        return (prefix & self._prefix_mask) | (self._iid(prefix & self._prefix_mask, dad_counter) & self._iid_mask)

    def _create(self, addr: int, plen: int, origin: str, valid_until: float | None,
                preferred_until: float | None, now: float, *, prefix: int = 0, dad_counter: int = 0,
                dad: bool = True, dad_delay: float | None = None) -> None:
        a = Address(addr, plen, origin, TENTATIVE, valid_until, preferred_until, prefix, dad_counter)
        self.entries[addr] = a
        if origin == SLAAC:
            self._slaac[prefix] = a
        if not dad or self.config.dad_transmits <= 0:
            # no DAD (RFC 4862 §5.4: DupAddrDetectTransmits 0; Linux IFA_F_NODAD): usable now,
            # its group joined for address resolution
            self.stats.dad_skipped += 1
            self._join(a)
            self._usable(a, now)
            return
        self.stats.dad_started += 1
        if dad_delay is None:
            dad_delay = self.rng.uniform(0.0, self.config.max_rtr_solicitation_delay)   # §5.4.2
        a.dad_at = now + dad_delay
        self._arm(a, now)

    def _forget(self, a: Address) -> None:
        """Out of the table, no callback (its stale heap item is skipped)."""
        self._leave(a)
        del self.entries[a.addr]
        if a.origin == SLAAC and self._slaac.get(a.prefix) is a:
            del self._slaac[a.prefix]
        a.heap_at = None

    def _remove(self, a: Address, now: float) -> None:
        self._forget(a)
        self.removed(a.info(), now)
