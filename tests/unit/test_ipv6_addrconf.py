"""An interface's IPv6 addresses (protocols/ipv6/addrconf.py), RFC 4862 case by case with an
explicit clock: Duplicate Address Detection (§5.4) and its timing, collisions by NS and by
NA, RFC 7217 retries with DAD_Counter, SLAAC (§5.5.3) creation, update, the two-hour rule,
deprecation and expiry, Prefix Information options ignored and counted, static addresses,
the bounds, and the TICK rule of protocols/timing.py."""
from __future__ import annotations

import errno
import math
import random
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.ipv6.addr import multicast_mac, solicited_node
from protocols.ipv6.addrconf import (
    DEPRECATED,
    DUPLICATE,
    INFINITE,
    LINK_LOCAL,
    PREFERRED,
    SLAAC,
    STATIC,
    TENTATIVE,
    TWO_HOURS,
    AddrConf,
    AddrConfConfig,
    AddressInfo,
    IidSource,
)
from protocols.ipv6.nd import NsRequest
from protocols.timing import TICK

IID = 0x0000_00FF_FE00_0001               # the modified EUI-64 of 02:00:00:00:00:01
LL = 0xFE80 << 112 | IID
P1 = 0x2001_0DB8_0001_0000 << 64          # 2001:db8:1::/64
P2 = 0x2001_0DB8_0002_0000 << 64
A1 = P1 | IID
STATIC_ADDR = 0x2001_0DB8_00FF_0000_0000_0000_0000_0005
PEER = 0xFE80_0000_0000_0000_0000_0000_0000_0002


class EdgeRng(random.Random):
    """uniform() answers one end of its range: the random delays exactly."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


class MidRng(random.Random):
    """uniform() answers the middle of its range: the DAD delay 0.5 s."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


def stable_iid(prefix: int, dad_counter: int) -> int:
    """An RFC 7217-like function: different per prefix and per DAD_Counter, 64 bits."""
    return ((prefix >> 64) * 7919 + 0x1000 * (dad_counter + 1) + 0xABC) & (2**64 - 1)


@dataclass
class Rig:
    ac: AddrConf
    ns: list[NsRequest] = field(default_factory=list)
    joined: list[int] = field(default_factory=list)
    left: list[int] = field(default_factory=list)
    ready: list[AddressInfo] = field(default_factory=list)
    dups: list[tuple[AddressInfo, str]] = field(default_factory=list)
    removed: list[AddressInfo] = field(default_factory=list)
    disabled: list[float] = field(default_factory=list)
    kicks: list[float] = field(default_factory=list)
    iid_calls: list[tuple[int, int]] = field(default_factory=list)


def make_rig(iid: IidSource = IID, high: bool | None = None, rng: random.Random | None = None,
             **cfg: object) -> Rig:
    rig = Rig(AddrConf(0))
    source: IidSource = iid
    if not isinstance(iid, int):
        make_iid = iid

        def recorded(prefix: int, counter: int) -> int:
            rig.iid_calls.append((prefix, counter))
            return make_iid(prefix, counter)
        source = recorded
    rig.ac = AddrConf(source,
                      send_ns=rig.ns.append, join=rig.joined.append, leave=rig.left.append,
                      ready=lambda info, now: rig.ready.append(info),
                      duplicate=lambda info, cause, now: rig.dups.append((info, cause)),
                      removed=lambda info, now: rig.removed.append(info),
                      disabled=rig.disabled.append,
                      config=AddrConfConfig(**cfg),  # type: ignore[arg-type]
                      rng=rng or (MidRng(0) if high is None else EdgeRng(high)))
    rig.ac.kick = lambda *at: rig.kicks.extend(at)
    return rig


def run_until(ac: AddrConf, until: float) -> None:
    """Poll every deadline up to `until`, as the Stack's timer service would."""
    while (at := ac.poll_at()) is not None and at <= until:
        ac.poll(at)


def check_invariants(ac: AddrConf) -> None:
    joined = [a for a in ac.entries.values() if a.joined]
    groups: dict[int, int] = {}
    for a in joined:
        groups[solicited_node(a.addr)] = groups.get(solicited_node(a.addr), 0) + 1
    assert ac._groups == groups
    for a in ac.entries.values():
        assert a.state != TENTATIVE or a.dad_at is not None
        assert not (a.state == DUPLICATE and a.joined)
        if a.origin == SLAAC:
            assert ac._slaac[a.prefix] is a
    assert all(ac.entries.get(a.addr) is a for a in ac._slaac.values())
    assert len(ac._heap) <= 2 * len(ac.entries) + 65


# --- DAD (§5.4) -----------------------------------------------------------------------------------
def test_link_local_dad_success_timing() -> None:
    rig = make_rig()
    ac = rig.ac
    ac.start(10.0)
    assert ac.state(LL) == TENTATIVE and ac.addresses(10.0)[0].origin == LINK_LOCAL
    assert not ac.is_ours(LL) and ac.source_candidates() == []
    assert ac.poll_at() == 10.5                     # the random delay (§5.4.2)
    ac.poll(10.499)
    assert rig.ns == [] and rig.joined == []
    ac.poll(10.5)
    group = solicited_node(LL)
    assert rig.joined == [group]                    # joined before the first probe (§5.4.2)
    assert rig.ns == [NsRequest(LL, group, multicast_mac(group), True, 0, with_slla=False)]
    assert ac.poll_at() == 11.5 and ac.state(LL) == TENTATIVE
    ac.poll(11.499)
    assert ac.state(LL) == TENTATIVE and rig.ready == []
    ac.poll(11.5)
    assert ac.state(LL) == PREFERRED and ac.is_ours(LL)
    assert [i.addr for i in rig.ready] == [LL] and rig.ready[0].state == PREFERRED
    assert ac.poll_at() is None                     # infinite lifetimes: no timer left
    s = ac.stats
    assert (s.dad_started, s.dad_ns_sent, s.dad_succeeded, s.dad_failed, s.link_local_created) == (1, 1, 1, 0, 1)
    assert [i.addr for i in ac.source_candidates()] == [LL]
    check_invariants(ac)


def test_dad_random_delay_zero_is_a_tick_later() -> None:
    """A zero delay arms the first probe one tick later (protocols/timing.py), never at `now`."""
    rig = make_rig(high=False)
    rig.ac.start(10.0)
    assert rig.ac.poll_at() == 10.0 + TICK
    rig.ac.poll(10.0 + TICK)
    assert len(rig.ns) == 1 and rig.ac.poll_at() == 11.0 + TICK


def test_dad_random_delay_high_end_and_several_transmits() -> None:
    rig = make_rig(high=True, dad_transmits=3)
    ac = rig.ac
    ac.start(0.0)
    assert ac.poll_at() == 1.0                      # MAX_RTR_SOLICITATION_DELAY
    ac.poll(0.5)
    assert rig.ns == [] and rig.joined == []        # nothing before the delay
    sent_at = []
    while ac.state(LL) == TENTATIVE:
        at = ac.poll_at()
        assert at is not None
        n = len(rig.ns)
        ac.poll(at)
        if len(rig.ns) > n:
            sent_at.append(at)
    assert sent_at == [1.0, 2.0, 3.0]               # RetransTimer apart
    assert rig.ready[0].addr == LL and ac.stats.dad_ns_sent == 3
    assert ac.stats.dad_succeeded == 1


def test_dad_uses_the_rngs_delay() -> None:
    class Fixed(random.Random):
        def uniform(self, a: float, b: float) -> float:
            assert (a, b) == (0.0, 1.0)
            return 0.37
    rig = make_rig(rng=Fixed())
    rig.ac.start(5.0)
    assert rig.ac.poll_at() == 5.37


def test_retrans_timer_from_an_ra_sets_the_gap() -> None:
    rig = make_rig(dad_transmits=2)
    ac = rig.ac
    ac.set_retrans_timer(2.5)
    ac.start(0.0)
    run_until(ac, 0.5)
    assert ac.poll_at() == 3.0
    run_until(ac, 6.0)
    assert ac.state(LL) == PREFERRED and len(rig.ns) == 2
    ac.set_retrans_timer(0.0)
    assert ac.retrans_timer == 0.01                 # Linux's floor
    ac.set_retrans_timer(1e9)
    assert ac.retrans_timer == 3600.0


def test_collision_by_ns_from_unspecified_source() -> None:
    rig = make_rig()
    ac = rig.ac
    ac.start(0.0)
    ac.poll(0.5)                                    # probe sent
    assert ac.input_ns(LL, 0, 0.7) is False         # someone else's DAD (§5.4.3)
    assert ac.state(LL) == DUPLICATE and not ac.is_ours(LL)
    assert [(i.addr, i.state, c) for i, c in rig.dups] == [(LL, DUPLICATE, "ns")]
    assert rig.left == [solicited_node(LL)]
    assert ac.poll_at() is None                     # no more DAD, no verdict
    ac.poll(5.0)
    assert rig.ready == [] and len(rig.ns) == 1
    s = ac.stats
    assert (s.dad_failed, s.dad_conflict_ns, s.dad_gave_up, s.dad_retries) == (1, 1, 1, 0)
    # Linux accept_dad 1: the duplicate stays listed ("dadfailed"), the interface keeps working
    assert ac.addresses(5.0)[0].state == DUPLICATE and rig.disabled == []
    assert ac.add_static(STATIC_ADDR, 64, 5.0) == 0
    # a duplicate is not answered for, and later DAD messages about it change nothing
    assert ac.input_ns(LL, 0, 6.0) is False and ac.input_na(LL, 6.0) is True
    assert ac.stats.dad_failed == 1
    check_invariants(ac)


def test_collision_by_ns_during_the_initial_delay() -> None:
    rig = make_rig(high=True)
    ac = rig.ac
    ac.start(0.0)
    ac.input_ns(LL, 0, 0.2)                         # before our first probe: still a duplicate
    assert ac.state(LL) == DUPLICATE and rig.left == [] and rig.ns == []
    run_until(ac, 10.0)
    assert rig.ns == [] and rig.joined == []


def test_collision_by_na() -> None:
    rig = make_rig()
    ac = rig.ac
    ac.start(0.0)
    ac.poll(0.5)
    assert ac.input_na(LL, 0.9) is True             # ours, not the neighbor cache's (§5.4.4)
    assert ac.state(LL) == DUPLICATE and rig.dups[0][1] == "na"
    assert ac.stats.dad_conflict_na == 1 and ac.stats.dad_failed == 1
    ac.poll(1.5)
    assert rig.ready == []


def test_ns_from_a_unicast_source_for_a_tentative_address_is_ignored() -> None:
    rig = make_rig()
    ac = rig.ac
    ac.start(0.0)
    ac.poll(0.5)
    assert ac.input_ns(LL, PEER, 0.7) is False      # address resolution: no answer, no conflict
    assert ac.stats.ns_tentative_resolution == 1 and ac.state(LL) == TENTATIVE
    ac.poll(1.5)
    assert ac.state(LL) == PREFERRED


def test_ns_and_na_for_usable_addresses() -> None:
    rig = make_rig(dad_transmits=0)
    ac = rig.ac
    ac.start(0.0)
    assert ac.input_ns(LL, PEER, 1.0) is True       # answer (§7.2.4)
    assert ac.input_ns(LL, 0, 1.0) is True          # defend against another's DAD
    assert ac.input_ns(PEER, 0, 1.0) is False       # not ours
    assert ac.input_na(LL, 1.0) is True and ac.stats.na_for_own_address == 1
    assert ac.state(LL) == PREFERRED and ac.stats.dad_failed == 0
    assert ac.input_na(PEER, 1.0) is False          # the neighbor cache's


def test_dad_transmits_zero_makes_addresses_usable_at_once() -> None:
    rig = make_rig(dad_transmits=0)
    ac = rig.ac
    ac.start(0.0)
    assert ac.state(LL) == PREFERRED and rig.joined == [solicited_node(LL)]
    assert [i.addr for i in rig.ready] == [LL] and rig.ns == []
    assert ac.stats.dad_skipped == 1 and ac.stats.dad_started == 0
    assert ac.poll_at() is None


def test_start_is_idempotent() -> None:
    rig = make_rig()
    rig.ac.start(0.0)
    rig.ac.start(0.5)
    assert len(rig.ac.entries) == 1 and rig.ac.stats.link_local_created == 1


# --- RFC 7217 retries ---------------------------------------------------------------------------
def test_rfc7217_retry_with_the_counter_up_to_idgen_retries() -> None:
    rig = make_rig(iid=stable_iid)
    ac = rig.ac
    ll_prefix = 0xFE80 << 112
    ac.start(0.0)
    first = ll_prefix | stable_iid(ll_prefix, 0)
    assert list(ac.entries) == [first]
    seen = [first]
    for counter in range(1, 4):
        at = ac.poll_at()
        assert at is not None
        ac.poll(at)                                 # the current address's first probe
        assert rig.ns[-1].target == seen[-1]
        now = at + 0.5
        ac.input_na(seen[-1], now)
        nxt = ll_prefix | stable_iid(ll_prefix, counter)
        # the duplicate is replaced by DAD_Counter + 1, tentative, IDGEN_DELAY later (§6)
        assert list(ac.entries) == [nxt] and ac.state(nxt) == TENTATIVE
        assert ac.entries[nxt].dad_counter == counter
        assert ac.poll_at() == now + 1.5            # idgen_delay 1 s + the random delay
        seen.append(nxt)
    assert [c for _, c in rig.iid_calls] == [0, 1, 2, 3]
    assert all(p == ll_prefix for p, _ in rig.iid_calls)
    at = ac.poll_at()
    assert at is not None
    ac.poll(at)
    ac.input_ns(seen[-1], 0, at + 0.5)
    # IDGEN_RETRIES (3) used up: the last one stays DUPLICATE
    assert list(ac.entries) == [seen[-1]] and ac.state(seen[-1]) == DUPLICATE
    assert [i.addr for i, _ in rig.dups] == seen
    assert (ac.stats.dad_retries, ac.stats.dad_failed, ac.stats.dad_gave_up) == (3, 4, 1)
    assert ac.poll_at() is None
    assert rig.removed == []                        # replaced, not reported as removed
    assert rig.disabled == []                       # not a hardware identifier
    check_invariants(ac)


def test_rfc7217_retry_then_success() -> None:
    rig = make_rig(iid=stable_iid)
    ac = rig.ac
    ll_prefix = 0xFE80 << 112
    ac.start(0.0)
    ac.poll(0.5)
    ac.input_ns(ll_prefix | stable_iid(ll_prefix, 0), 0, 0.7)
    second = ll_prefix | stable_iid(ll_prefix, 1)
    run_until(ac, 10.0)
    assert ac.state(second) == PREFERRED and rig.ready[0].dad_counter == 1
    # the new address: first probe at 2.2 (conflict at 0.7 + idgen_delay + 0.5), verdict 3.2
    assert [r.target for r in rig.ns] == [ll_prefix | stable_iid(ll_prefix, 0), second]
    assert ac.stats.dad_succeeded == 1


def test_fixed_identifier_is_not_retried() -> None:
    rig = make_rig()
    rig.ac.start(0.0)
    rig.ac.input_na(LL, 0.0)
    assert rig.ac.stats.dad_retries == 0 and rig.ac.state(LL) == DUPLICATE


def test_slaac_retry_follows_the_prefix() -> None:
    rig = make_rig(iid=stable_iid, dad_transmits=1)
    ac = rig.ac
    ac.input_prefix(P1, 64, True, 3600, 1800, 0.0)
    first = P1 | stable_iid(P1, 0)
    ac.input_na(first, 0.1)
    second = P1 | stable_iid(P1, 1)
    assert ac.state(second) == TENTATIVE and first not in ac.entries
    info = ac.addresses(0.1)[0]
    assert info.origin == SLAAC and info.valid_until == 3600.0 and info.preferred_until == 1800.0
    ac.input_prefix(P1, 64, True, 7200 * 2, 3000, 10.0)   # refreshes the replacement
    assert ac.entries[second].valid_until == 10.0 + 14400 and ac.stats.slaac_created == 1
    run_until(ac, 20.0)
    assert ac.state(second) == PREFERRED


# --- §5.4.5 and IPv6 disabled ----------------------------------------------------------------------
def test_ll_duplicate_disables_ipv6_when_asked() -> None:
    rig = make_rig(disable_on_ll_duplicate=True, dad_transmits=1)
    ac = rig.ac
    assert ac.add_static(STATIC_ADDR, 64, 0.0, dad=False) == 0
    ac.start(0.0)
    ac.poll(0.5)
    ac.input_ns(LL, 0, 0.6)
    assert rig.disabled == [0.6] and ac.stats.ipv6_disabled == 1 and ac.is_disabled
    assert ac.entries == {} and {i.addr for i in rig.removed} == {STATIC_ADDR, LL}
    assert ac._groups == {} and ac.poll_at() is None
    assert ac.add_static(STATIC_ADDR, 64, 1.0) == errno.EACCES
    ac.input_prefix(P1, 64, True, 3600, 3600, 1.0)
    assert ac.entries == {} and ac.stats.prefix_ignored_disabled == 1
    ac.start(2.0)                                   # the administrator re-enables it
    assert not ac.is_disabled and ac.state(LL) == TENTATIVE


def test_ll_duplicate_with_a_stable_identifier_does_not_disable() -> None:
    rig = make_rig(iid=stable_iid, disable_on_ll_duplicate=True)
    rig.ac.start(0.0)
    rig.ac.input_na(next(iter(rig.ac.entries)), 0.0)
    assert rig.disabled == [] and rig.ac.stats.dad_retries == 1


def test_static_duplicate_does_not_disable() -> None:
    rig = make_rig(disable_on_ll_duplicate=True)
    rig.ac.add_static(PEER, 64, 0.0)
    rig.ac.input_na(PEER, 0.0)
    assert rig.ac.state(PEER) == DUPLICATE and rig.disabled == []


# --- SLAAC (§5.5.3) ---------------------------------------------------------------------------------
def test_slaac_create_dad_deprecate_expire() -> None:
    rig = make_rig()
    ac = rig.ac
    ac.input_prefix(P1 | 0xDEAD, 64, True, 3600, 1800, 100.0)   # bits past /64 are masked
    assert ac.state(A1) == TENTATIVE and ac.stats.slaac_created == 1
    info = ac.addresses(100.0)[0]
    assert (info.origin, info.plen, info.valid_until, info.preferred_until) == (SLAAC, 64, 3700.0, 1900.0)
    run_until(ac, 102.0)
    assert ac.state(A1) == PREFERRED and [i.addr for i in rig.ready] == [A1]
    assert ac.poll_at() == 1900.0
    ac.poll(1900.0)
    assert ac.state(A1) == DEPRECATED and ac.is_ours(A1) and ac.stats.deprecated == 1
    assert ac.source_candidates()[0].deprecated
    assert ac.poll_at() == 3700.0
    ac.poll(3699.999)
    assert ac.state(A1) == DEPRECATED
    ac.poll(3700.0)
    assert ac.state(A1) is None and not ac.is_ours(A1) and ac.stats.slaac_expired == 1
    assert [i.addr for i in rig.removed] == [A1] and rig.left == [solicited_node(A1)]
    assert ac.poll_at() is None and ac._slaac == {}
    # the prefix comes back: a new address, DAD again
    ac.input_prefix(P1, 64, True, 3600, 1800, 4000.0)
    assert ac.state(A1) == TENTATIVE and ac.stats.slaac_created == 2
    check_invariants(ac)


def test_slaac_infinite_lifetimes() -> None:
    rig = make_rig(dad_transmits=0)
    rig.ac.input_prefix(P1, 64, True, INFINITE, INFINITE, 0.0)
    info = rig.ac.addresses(1e9)[0]
    assert info.valid_until is None and info.preferred_until is None and info.state == PREFERRED
    assert info.valid_lft(5.0) is None and rig.ac.poll_at() is None


def test_slaac_preferred_zero_is_deprecated_from_the_start() -> None:
    rig = make_rig()
    ac = rig.ac
    ac.input_prefix(P1, 64, True, 3600, 0, 0.0)
    run_until(ac, 2.0)
    assert ac.state(A1) == DEPRECATED and ac.source_candidates()[0].state == DEPRECATED
    assert rig.ready[0].state == DEPRECATED


def test_preferred_lifetime_ending_during_dad() -> None:
    rig = make_rig(dad_transmits=3)
    ac = rig.ac
    ac.input_prefix(P1, 64, True, 3600, 2, 0.0)
    run_until(ac, 10.0)
    assert ac.state(A1) == DEPRECATED and ac.stats.dad_succeeded == 1


def test_valid_lifetime_ending_during_dad() -> None:
    rig = make_rig(dad_transmits=3)
    ac = rig.ac
    ac.add_static(STATIC_ADDR, 64, 0.0, valid=2, preferred=1)
    run_until(ac, 10.0)
    assert ac.entries == {} and rig.ready == [] and ac.stats.static_expired == 1
    assert len(rig.ns) == 2                         # probes at 0 and 1; the third never went
    assert ac._groups == {}


def test_slaac_update_resets_preferred_and_undeprecates() -> None:
    rig = make_rig(dad_transmits=0)
    ac = rig.ac
    ac.input_prefix(P1, 64, True, 9000, 100, 0.0)
    ac.poll(100.0)
    assert ac.state(A1) == DEPRECATED
    ac.input_prefix(P1, 64, True, 9000, 600, 200.0)
    a = ac.entries[A1]
    assert a.state == PREFERRED and a.preferred_until == 800.0 and a.valid_until == 9200.0
    assert ac.stats.slaac_updated == 1 and ac.stats.slaac_created == 1
    assert ac.poll_at() == 800.0
    ac.input_prefix(P1, 64, True, 9000, 0, 300.0)   # preferred 0: deprecated now
    assert ac.state(A1) == DEPRECATED and ac.poll_at() == 9300.0


def test_slaac_preferred_lifetime_reset() -> None:
    rig = make_rig(dad_transmits=0)
    ac = rig.ac
    ac.input_prefix(P1, 64, True, 3 * 3600, 3 * 3600, 0.0)
    # remaining 3 h, received 60 s: two hours (rule 3); the preferred lifetime is the advertised one
    ac.input_prefix(P1, 64, True, 60, 60, 0.0)
    a = ac.entries[A1]
    assert a.valid_until == TWO_HOURS and a.preferred_until == 60.0
    # remaining under 2 h, received shorter: valid kept (rule 2), preferred reset
    ac.input_prefix(P1, 64, True, 60, 60, 100.0)
    assert a.valid_until == TWO_HOURS and a.preferred_until == 160.0
    # an infinite preferred lifetime with a finite valid one: ignored (§5.5.3 c)
    ac.input_prefix(P1, 64, True, 5000, INFINITE, 200.0)
    assert a.preferred_until == 160.0 and ac.stats.prefix_ignored_lifetimes == 1


def test_two_hour_rule_each_case() -> None:
    rig = make_rig(dad_transmits=0)
    ac = rig.ac
    ac.input_prefix(P1, 64, True, 10 * 3600, 3600, 0.0)
    # 1: received > 2 h: taken, even when shorter than what is left
    ac.input_prefix(P1, 64, True, 3 * 3600, 3600, 0.0)
    assert ac.entries[A1].valid_until == 3 * 3600
    # 3: remaining 3 h > 2 h, received 0: two hours, not zero (the RA cannot kill it)
    ac.input_prefix(P1, 64, True, 0, 0, 0.0)
    assert ac.entries[A1].valid_until == TWO_HOURS and ac.stats.slaac_two_hour_rule == 1
    # 2: remaining <= 2 h and received shorter: ignored
    ac.input_prefix(P1, 64, True, 600, 0, 3600.0)
    assert ac.entries[A1].valid_until == TWO_HOURS and ac.stats.slaac_two_hour_rule == 2
    # 1: received longer than what remains (1 h left, 1.5 h received): taken
    ac.input_prefix(P1, 64, True, 5400, 0, 3600.0)
    assert ac.entries[A1].valid_until == 3600.0 + 5400
    # an infinite address and a short received lifetime: two hours (rule 3)
    ac.input_prefix(P2, 64, True, INFINITE, INFINITE, 0.0)
    a2 = P2 | IID
    ac.input_prefix(P2, 64, True, 30, 30, 50.0)
    assert ac.entries[a2].valid_until == 50.0 + TWO_HOURS and ac.entries[a2].preferred_until == 80.0
    # infinite received: infinite again
    ac.input_prefix(P2, 64, True, INFINITE, INFINITE, 60.0)
    assert ac.entries[a2].valid_until is None and ac.entries[a2].preferred_until is None
    assert ac.stats.slaac_updated == 6


def test_slaac_ra_for_a_duplicate_only_refreshes_it() -> None:
    rig = make_rig()
    ac = rig.ac
    ac.input_prefix(P1, 64, True, 3600, 1800, 0.0)
    ac.input_na(A1, 0.0)
    assert ac.state(A1) == DUPLICATE and ac.poll_at() == 3600.0
    ac.input_prefix(P1, 64, True, 9000, 9000, 100.0)
    assert ac.state(A1) == DUPLICATE and ac.poll_at() == 9100.0 and rig.ns == []
    run_until(ac, 9100.0)
    assert ac.entries == {} and ac.stats.slaac_expired == 1


def test_bad_prefix_information_ignored_and_counted() -> None:
    rig = make_rig()
    ac = rig.ac
    ac.input_prefix(P1, 64, False, 3600, 1800, 0.0)
    ac.input_prefix(0xFE80 << 112, 64, True, 3600, 1800, 0.0)
    ac.input_prefix(0xFEBF << 112, 64, True, 3600, 1800, 0.0)     # still fe80::/10
    ac.input_prefix(0xFF02 << 112, 64, True, 3600, 1800, 0.0)
    ac.input_prefix(P1, 64, True, 1800, 3600, 0.0)                # preferred > valid
    ac.input_prefix(P1, 48, True, 3600, 1800, 0.0)
    ac.input_prefix(P1, 96, True, 3600, 1800, 0.0)
    ac.input_prefix(P1, 64, True, 0, 0, 0.0)                      # new, valid 0: nothing formed
    s = ac.stats
    assert ac.entries == {} and s.slaac_created == 0
    assert (s.prefix_ignored_not_autonomous, s.prefix_ignored_link_local, s.prefix_ignored_multicast,
            s.prefix_ignored_lifetimes, s.prefix_ignored_length, s.prefix_ignored_zero_valid) == (1, 2, 1, 1, 2, 1)
    assert ac.poll_at() is None


def test_slaac_address_equal_to_an_existing_one_is_not_formed() -> None:
    rig = make_rig()
    ac = rig.ac
    assert ac.add_static(A1, 64, 0.0) == 0
    ac.input_prefix(P1, 64, True, 3600, 1800, 0.0)
    assert ac.entries[A1].origin == STATIC and ac.stats.slaac_exists == 1


# --- static addresses ---------------------------------------------------------------------------------
def test_static_address_goes_through_dad() -> None:
    rig = make_rig()
    ac = rig.ac
    assert ac.add_static(STATIC_ADDR, 56, 0.0) == 0
    assert ac.state(STATIC_ADDR) == TENTATIVE and not ac.is_ours(STATIC_ADDR)
    run_until(ac, 2.0)
    assert ac.state(STATIC_ADDR) == PREFERRED and rig.ready[0].origin == STATIC and rig.ready[0].plen == 56
    assert ac.stats.static_added == 1
    assert ac.remove(STATIC_ADDR, 2.0) == 0
    assert [i.addr for i in rig.removed] == [STATIC_ADDR] and rig.left == [solicited_node(STATIC_ADDR)]
    assert ac.remove(STATIC_ADDR, 2.0) == errno.EADDRNOTAVAIL and ac.stats.removed_by_owner == 1


def test_static_errnos_as_linux() -> None:
    ac = make_rig().ac
    assert ac.add_static(STATIC_ADDR, 129, 0.0) == errno.EINVAL
    assert ac.add_static(STATIC_ADDR, 64, 0.0, valid=0) == errno.EINVAL
    assert ac.add_static(STATIC_ADDR, 64, 0.0, valid=10, preferred=20) == errno.EINVAL
    assert ac.add_static(0xFF02 << 112 | 1, 64, 0.0) == errno.EINVAL
    assert ac.add_static(0, 64, 0.0) == errno.EADDRNOTAVAIL
    assert ac.add_static(1, 128, 0.0) == errno.EADDRNOTAVAIL
    assert ac.add_static(STATIC_ADDR, 64, 0.0) == 0
    assert ac.add_static(STATIC_ADDR, 64, 0.0) == errno.EEXIST
    assert list(ac.entries) == [STATIC_ADDR]


def test_static_nodad_and_finite_lifetimes() -> None:
    rig = make_rig()
    ac = rig.ac
    assert ac.add_static(STATIC_ADDR, 64, 0.0, valid=100, preferred=40, dad=False) == 0
    assert ac.state(STATIC_ADDR) == PREFERRED and rig.ns == [] and rig.joined == [solicited_node(STATIC_ADDR)]
    assert ac.poll_at() == 40.0
    assert ac.addresses(50.0)[0].state == DEPRECATED      # as of `now`, before the poll
    ac.poll(40.0)
    assert ac.state(STATIC_ADDR) == DEPRECATED
    assert ac.addresses(100.0) == []                       # expired as of `now`
    ac.poll(100.0)
    assert ac.entries == {} and ac.stats.static_expired == 1 and rig.removed[0].addr == STATIC_ADDR


def test_remove_during_dad_stops_it() -> None:
    rig = make_rig(dad_transmits=2)
    ac = rig.ac
    ac.start(0.0)
    ac.poll(0.5)
    assert ac.remove(LL, 0.7) == 0
    run_until(ac, 10.0)
    assert len(rig.ns) == 1 and rig.ready == [] and ac.poll_at() is None and ac._groups == {}


# --- groups, queries, flush ---------------------------------------------------------------------------
def test_solicited_node_group_shared_by_two_addresses() -> None:
    rig = make_rig(dad_transmits=0)
    ac = rig.ac
    ac.start(0.0)
    ac.input_prefix(P1, 64, True, 3600, 1800, 0.0)
    group = solicited_node(LL)
    assert solicited_node(A1) == group and rig.joined == [group] and ac.groups() == [group]
    ac.remove(LL, 1.0)
    assert rig.left == []
    ac.remove(A1, 1.0)
    assert rig.left == [group] and ac.groups() == []


def test_source_candidates_preferred_first() -> None:
    rig = make_rig(dad_transmits=0)
    ac = rig.ac
    ac.input_prefix(P1, 64, True, 3600, 0, 0.0)           # deprecated
    ac.start(0.0)                                         # preferred
    ac.rng = EdgeRng(high=True)
    ac.config.dad_transmits = 1
    ac.add_static(STATIC_ADDR, 64, 0.0)                   # tentative
    ac.add_static(PEER, 64, 0.0)
    ac.input_na(PEER, 0.0)                                # duplicate
    cands = ac.source_candidates()
    assert [(i.addr, i.state) for i in cands] == [(LL, PREFERRED), (A1, DEPRECATED)]
    assert [i.state for i in ac.addresses(0.0)] == [DEPRECATED, PREFERRED, TENTATIVE, DUPLICATE]
    assert not ac.is_ours(STATIC_ADDR) and not ac.is_ours(PEER) and ac.is_ours(A1)


def test_flush_removes_everything() -> None:
    rig = make_rig()
    ac = rig.ac
    ac.start(0.0)
    ac.poll(0.5)
    ac.add_static(STATIC_ADDR, 64, 0.0, dad=False)
    ac.input_prefix(P1, 64, True, 3600, 1800, 0.0)
    ac.flush(1.0)
    assert ac.entries == {} and ac._slaac == {} and ac._groups == {} and ac.poll_at() is None
    assert len(rig.removed) == 3 and sorted(rig.left) == sorted(set(rig.joined))


def test_kick_on_an_earlier_deadline() -> None:
    rig = make_rig(high=True)
    rig.ac.start(3.0)
    assert rig.kicks == [4.0]


# --- bounds ----------------------------------------------------------------------------------------------
def test_max_addresses_bounds_slaac() -> None:
    rig = make_rig(dad_transmits=0)
    ac = rig.ac
    ac.start(0.0)
    for i in range(1, 40):
        ac.input_prefix((0x2001_0DB8_0000_0000 + i) << 64, 64, True, 3600, 1800, 0.0)
    assert len(ac.entries) == 16                          # Linux max_addresses
    assert ac.stats.slaac_created == 15 and ac.stats.slaac_overflow == 24
    # a known prefix is still refreshed when full
    ac.input_prefix((0x2001_0DB8_0000_0000 + 1) << 64, 64, True, 9000, 1800, 0.0)
    assert ac.stats.slaac_updated == 1
    check_invariants(ac)


def test_max_total_bounds_static() -> None:
    rig = make_rig(max_total=5, dad_transmits=0)
    ac = rig.ac
    results = [ac.add_static(STATIC_ADDR + i, 64, 0.0) for i in range(7)]
    assert results == [0] * 5 + [errno.ENOSPC] * 2 and ac.stats.static_refused == 2


def test_heap_stays_bounded_under_ra_refreshes() -> None:
    rig = make_rig(dad_transmits=0)
    ac = rig.ac
    for i in range(4):
        ac.input_prefix((0x2001_0DB8_0000_0000 + i) << 64, 64, True, 3600, 1800, 0.0)
    for k in range(5000):
        i = k % 4
        ac.input_prefix((0x2001_0DB8_0000_0000 + i) << 64, 64, True, 3600 + k, 1800 + k % 7, float(k) * 0.01)
        assert len(ac._heap) <= 2 * len(ac.entries) + 65
    check_invariants(ac)
    assert ac.poll_at() == min(a.preferred_until for a in ac.entries.values())  # type: ignore[type-var]


# --- the TICK rule: every poll makes progress (protocols/timing.py) -------------------------------------
OPS = st.lists(st.tuples(st.sampled_from(["start", "static", "static_nodad", "remove", "prefix", "ns", "na",
                                          "ns_unicast", "retrans", "flush", "poll"]),
                         st.integers(0, 5), st.integers(0, 3), st.floats(0.0, 5.0, allow_nan=False)),
               max_size=40)
LIFETIMES = [0, 1, 2, 60, 7199, 7200, 7201, INFINITE]


@settings(max_examples=200, deadline=None)
@given(t0=st.floats(0.0, 1e7, allow_nan=False), ops=OPS, stable=st.booleans(),
       transmits=st.integers(0, 3), seed=st.integers(0, 2**32), disable=st.booleans())
def test_timer_loop_always_makes_progress(t0: float, ops: list[tuple[str, int, int, float]], stable: bool,
                                          transmits: int, seed: int, disable: bool) -> None:
    """Whatever happened and whatever the float times, poll(poll_at()) leaves poll_at() None
    or later than now, and with no more input the timers run out in bounded polls."""
    rig = make_rig(iid=stable_iid if stable else IID, rng=random.Random(seed), dad_transmits=transmits,
                   max_addresses=4, max_total=6, disable_on_ll_duplicate=disable)
    ac = rig.ac
    now = t0
    for op, n, k, gap in ops:
        now += gap
        prefix = (0x2001_0DB8_0000_0000 + n) << 64
        addrs = list(ac.entries) or [LL]
        target = addrs[n % len(addrs)]
        if op == "start":
            ac.start(now)
        elif op in ("static", "static_nodad"):
            ac.add_static(STATIC_ADDR + n, 64, now, valid=LIFETIMES[k + 4], preferred=LIFETIMES[k],
                          dad=op == "static")
        elif op == "remove":
            ac.remove(target, now)
        elif op == "prefix":
            ac.input_prefix(prefix, 64, True, LIFETIMES[k + 4 if n % 2 else k], LIFETIMES[n % 4], now)
        elif op == "ns":
            ac.input_ns(target, 0, now)
        elif op == "ns_unicast":
            ac.input_ns(target, PEER, now)
        elif op == "na":
            ac.input_na(target, now)
        elif op == "retrans":
            ac.set_retrans_timer(gap)
        elif op == "flush":
            ac.flush(now)
        else:
            at = ac.poll_at()
            if at is not None:
                now = max(now, at)
                ac.poll(now)
                nxt = ac.poll_at()
                assert nxt is None or nxt > now
        check_invariants(ac)
        assert len(ac.entries) <= 7
    polls = 0
    while (at := ac.poll_at()) is not None:
        assert not math.isinf(at)
        now = max(now, at)
        ac.poll(now)
        polls += 1
        nxt = ac.poll_at()
        assert nxt is None or nxt > now
        check_invariants(ac)
        # per address: the delay, the probes, the verdict, deprecation, expiry
        assert polls <= 7 * (1 + 3 + 1 + 1 + 1) + 10
    # only addresses with an infinite valid lifetime are left, none tentative
    assert all(a.valid_until is None and a.state != TENTATIVE for a in ac.entries.values())


# --- two interfaces on one link, wired as their owners would wire them ------------------------------
def test_two_hosts_same_address_the_later_one_loses() -> None:
    """Host A has the address; B adds it too: B's probe reaches A, A defends it with an NA
    (§7.2.4, to all-nodes since the probe came from ::), B finds it a duplicate (§5.4.4)."""
    a, b = make_rig(), make_rig()
    answers: list[int] = []

    def deliver_probe(src_rig: Rig, dst_rig: Rig) -> None:
        for req in src_rig.ns:
            assert req.src_hint == 0 and not req.with_slla
            if dst_rig.ac.input_ns(req.target, 0, now):
                answers.append(req.target)
                src_rig.ac.input_na(req.target, now)        # the NA A sends back
        src_rig.ns.clear()

    now = 0.0
    assert a.ac.add_static(STATIC_ADDR, 64, now) == 0
    run_until(a.ac, 2.0)
    assert a.ac.state(STATIC_ADDR) == PREFERRED
    now = 10.0
    assert b.ac.add_static(STATIC_ADDR, 64, now) == 0
    now = 10.5
    b.ac.poll(now)
    deliver_probe(b, a)
    assert answers == [STATIC_ADDR]
    assert b.ac.state(STATIC_ADDR) == DUPLICATE and b.dups[0][1] == "na"
    assert a.ac.state(STATIC_ADDR) == PREFERRED and a.ac.stats.dad_failed == 0


def test_two_hosts_probing_at_once_both_lose() -> None:
    """Simultaneous DAD for one address: each sees the other's probe from :: (§5.4.3)."""
    a, b = make_rig(), make_rig()
    a.ac.add_static(STATIC_ADDR, 64, 0.0)
    b.ac.add_static(STATIC_ADDR, 64, 0.0)
    a.ac.poll(0.5)
    b.ac.poll(0.5)
    for src, dst in ((a, b), (b, a)):
        for req in src.ns:
            assert dst.ac.input_ns(req.target, 0, 0.6) is False
    assert a.ac.state(STATIC_ADDR) == DUPLICATE and b.ac.state(STATIC_ADDR) == DUPLICATE
    run_until(a.ac, 5.0)
    assert a.ready == [] and b.ready == []


# --- corner cases -----------------------------------------------------------------------------------
def test_retry_address_already_configured_gives_up() -> None:
    rig = make_rig(iid=stable_iid)
    ac = rig.ac
    ll_prefix = 0xFE80 << 112
    taken = ll_prefix | stable_iid(ll_prefix, 1)
    assert ac.add_static(taken, 64, 0.0, dad=False) == 0
    ac.start(0.0)
    first = ll_prefix | stable_iid(ll_prefix, 0)
    ac.input_na(first, 0.1)
    assert ac.state(first) == DUPLICATE and ac.state(taken) == PREFERRED
    assert ac.stats.dad_retries == 0 and ac.stats.dad_gave_up == 1


def test_start_with_the_link_local_address_configured_statically() -> None:
    rig = make_rig()
    ac = rig.ac
    assert ac.add_static(LL, 64, 0.0, dad=False) == 0
    ac.start(0.0)
    assert list(ac.entries) == [LL] and ac.entries[LL].origin == STATIC
    assert ac.stats.link_local_created == 0


def test_owner_removing_the_address_from_its_join_callback() -> None:
    rig = make_rig()
    ac = rig.ac
    ac.join = lambda group: ac.remove(LL, 0.5)
    ac.start(0.0)
    ac.poll(0.5)
    assert ac.entries == {} and rig.ns == [] and ac.poll_at() is None and ac._groups == {}


def test_owner_adding_an_address_from_its_ready_callback() -> None:
    rig = make_rig()
    ac = rig.ac
    ac.ready = lambda info, now: ac.add_static(STATIC_ADDR, 64, now) if info.addr == LL else None
    ac.start(0.0)
    run_until(ac, 3.0)
    assert ac.state(LL) == PREFERRED and ac.state(STATIC_ADDR) == PREFERRED   # DAD 2.0..3.0
    check_invariants(ac)
