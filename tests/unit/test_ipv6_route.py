"""The IPv6 routing table (protocols/ipv6/route.py) with an explicit clock: longest-prefix
match and metrics, next-hop determination (RFC 4861 §5.2), scoped destinations (Linux's
EINVAL), the prefix list and the default router list (§6.3.4, §6.3.6, RFC 4191), redirects
(§8.3), the bounds and the TimedCore contract."""
from __future__ import annotations

import errno
import ipaddress
from functools import partial
from typing import TYPE_CHECKING, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ndd.pktbuf import PacketBuffer
from protocols.ifnet import IFF_RUNNING, IFF_UP, Interface, InterfaceTable
from protocols.ipv6.nd import INCOMPLETE, REACHABLE, STALE, NeighborCache
from protocols.ipv6.route import (
    INFINITE_LIFETIME,
    NO_ROUTE,
    PREF_HIGH,
    PREF_LOW,
    PREF_MEDIUM,
    SCOPE_REQUIRED,
    Ipv6Routes,
    NextHop,
    Route6Config,
    decode_preference,
    nd_reachability,
    needs_scope_id,
    prefix_mask,
)

from .fakes import StubNdd

if TYPE_CHECKING:
    from ndd.ndd import Ndd


def a(text: str) -> int:
    return int(ipaddress.IPv6Address(text))


R1, R2, R3 = a("fe80::1"), a("fe80::2"), a("fe80::3")
GW = a("fe80::99")
MAC = b"\x02\x00\x00\x00\x00\x07"


def iface(table: InterfaceTable, name: str) -> Interface:
    return table.create(name, cast("Ndd", StubNdd(name)), 1500, IFF_UP | IFF_RUNNING)


@pytest.fixture
def ifs() -> tuple[Interface, Interface]:
    table = InterfaceTable()
    return iface(table, "eth0"), iface(table, "eth1")


class Reach:
    """The neighbor cache's answer per router: True reachable, False INCOMPLETE, None absent."""

    def __init__(self) -> None:
        self.state: dict[int, bool | None] = {}

    def __call__(self, ifp: Interface, addr: int) -> bool | None:
        return self.state.get(addr)


def hop(rt: Ipv6Routes, dst: str, now: float = 0.0, oif: Interface | None = None) -> tuple[str, str] | int:
    nh = rt.route(a(dst), now, oif)
    if isinstance(nh, int):
        return nh
    return nh.ifp.name, str(ipaddress.IPv6Address(nh.nexthop))


# --- longest-prefix match ---------------------------------------------------------------------------
def test_longest_prefix_wins_from_128_down_to_default(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = Ipv6Routes()
    rt.add("::/0", eth0, a("fe80::1"))
    rt.add("2001:db8::/32", eth1, a("fe80::2"))
    rt.add("2001:db8:1::/64", eth0)                                  # on-link
    rt.add("2001:db8:1::5/128", eth1, a("fe80::3"))
    assert hop(rt, "2600::1") == ("eth0", "fe80::1")
    assert hop(rt, "2001:db8:7::1") == ("eth1", "fe80::2")
    assert hop(rt, "2001:db8:1::6") == ("eth0", "2001:db8:1::6")    # on-link: the destination
    assert hop(rt, "2001:db8:1::5") == ("eth1", "fe80::3")


def test_no_route_is_enetunreach_and_counted(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    rt = Ipv6Routes()
    rt.add("2001:db8::/32", eth0)
    assert hop(rt, "2600::1") == NO_ROUTE == errno.ENETUNREACH
    assert rt.stats.no_route == 1


def test_same_prefix_lowest_metric_wins_and_tie_keeps_the_older(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = Ipv6Routes()
    rt.add("2001:db8::/64", eth0, a("fe80::a"), metric=300)
    rt.add("2001:db8::/64", eth1, a("fe80::b"), metric=100)
    assert hop(rt, "2001:db8::1") == ("eth1", "fe80::b")
    rt.delete("2001:db8::/64", eth1)
    rt.add("2001:db8::/64", eth1, a("fe80::b"), metric=300)         # tie: the older stays first
    assert hop(rt, "2001:db8::1") == ("eth0", "fe80::a")


def test_route_over_a_down_interface_falls_back_to_a_shorter_prefix(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = Ipv6Routes()
    rt.add("2001:db8::/64", eth1)
    rt.add("::/0", eth0, GW)
    eth1.flags &= ~IFF_UP
    assert hop(rt, "2001:db8::1") == ("eth0", "fe80::99")


def test_bound_device_restricts_the_lookup(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = Ipv6Routes()
    rt.add("2001:db8::/64", eth0)
    rt.add("::/0", eth1, GW)
    assert hop(rt, "2001:db8::1", oif=eth1) == ("eth1", "fe80::99")
    assert hop(rt, "2001:db8::1", oif=eth0) == ("eth0", "2001:db8::1")
    rt.delete("::/0")
    assert hop(rt, "2001:db8::1", oif=eth1) == NO_ROUTE


def test_add_delete_errors_and_host_bits(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    rt = Ipv6Routes()
    r = rt.add("2001:db8::1234/64", eth0)                            # host bits dropped
    assert (r.network, r.prefixlen) == (a("2001:db8::"), 64)
    with pytest.raises(OSError) as e:
        rt.add((a("2001:db8::"), 64), eth0)
    assert e.value.errno == errno.EEXIST
    rt.add((a("2001:db8::"), 64), eth0, metric=5)                   # another metric: fine
    for bad in [(0, 129), (0, -1)]:
        with pytest.raises(OSError) as e:
            rt.add(bad, eth0)
        assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        rt.add("::/0", eth0, a("ff02::1"))                           # a multicast gateway
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        rt.add("2001:db8::zz/64", eth0)
    assert e.value.errno == errno.EINVAL
    rt.delete("2001:db8::/64")
    rt.delete("2001:db8::/64")
    with pytest.raises(OSError) as e:
        rt.delete("2001:db8::/64")
    assert e.value.errno == errno.ESRCH
    assert list(rt) == [] and rt.route(a("2001:db8::1"), 0.0) == NO_ROUTE


def test_many_routes_stay_exact(ifs: tuple[Interface, Interface]) -> None:
    """5000 /64s, 500 /48s, /128s and a default: every lookup is the longest match (the table
    probes only the prefix lengths in use: here 4)."""
    eth0, eth1 = ifs
    rt = Ipv6Routes()
    base = a("2001:db8::")
    for i in range(5000):
        rt.add((base | (i << 64), 64), eth0)
    for i in range(500):
        rt.add((base | (i << 80), 48), eth1, GW)
    rt.add((base | (7 << 64) | 1, 128), eth1, R1)
    rt.add("::/0", eth1, R2)
    assert len(rt._lens) == 4
    assert hop(rt, "2001:db8:0:7::1") == ("eth1", "fe80::1")
    assert hop(rt, "2001:db8:0:7::2") == ("eth0", "2001:db8:0:7::2")
    assert hop(rt, "2001:db8:0:1387::1") == ("eth0", "2001:db8:0:1387::1")   # /64 number 4999
    assert hop(rt, "2001:db8:0:1388::1") == ("eth1", "fe80::99")             # none: the /48
    assert hop(rt, "2001:db8:1f3:ffff::1") == ("eth1", "fe80::99")          # /48 number 499
    assert hop(rt, "2001:db8:1f4::1") == ("eth1", "fe80::2")                 # /48 number 500: none


route_specs = st.lists(st.tuples(st.integers(0, (1 << 128) - 1), st.sampled_from([0, 1, 16, 48, 63, 64, 127, 128]),
                                  st.sampled_from([0, 256, 1024]), st.booleans()), max_size=40)


@settings(max_examples=200, deadline=None)
@given(route_specs, st.lists(st.integers(0, (1 << 128) - 1), min_size=1, max_size=10))
def test_lookup_matches_a_brute_force_oracle(specs: list[tuple[int, int, int, bool]], dsts: list[int]) -> None:
    """Longest prefix, then lowest metric, then the older route: against a linear scan.  The
    destinations include ones inside the routes' prefixes."""
    table = InterfaceTable()
    eth0, eth1 = iface(table, "eth0"), iface(table, "eth1")
    rt = Ipv6Routes()
    added = []
    for network, plen, metric, second in specs:
        try:
            added.append(rt.add((network, plen), eth1 if second else eth0, None, metric=metric))
        except OSError:
            pass                                                      # EEXIST: same key twice
    probes = dsts + [r.network | (d & ~prefix_mask(r.prefixlen)) for r in added for d in dsts[:2]]
    for dst in probes:
        matching = [r for r in added if dst & prefix_mask(r.prefixlen) == r.network]
        want = min(matching, key=lambda r: (-r.prefixlen, r.metric, added.index(r)), default=None)
        assert rt.lookup(dst, 0.0) is want


# --- scoped destinations ----------------------------------------------------------------------------
@pytest.mark.parametrize(("addr", "scoped"), [
    ("fe80::1", True), ("febf:ffff::1", True), ("fec0::1", False),       # fe80::/10 only
    ("ff02::1", True), ("ff01::1", True), ("ff12::1:3", True),           # scope 1, 2 (any flags)
    ("ff05::2", False), ("ff0e::1", False), ("2001:db8::1", False), ("::1", False)])
def test_needs_scope_id_like_linux(addr: str, scoped: bool) -> None:
    assert needs_scope_id(a(addr)) is scoped


def test_link_local_without_scope_is_einval_and_with_scope_ignores_the_table(
        ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = Ipv6Routes()
    rt.add("::/0", eth0, GW)
    rt.ra_router(eth0, R1, 1800, 0.0)
    assert hop(rt, "fe80::42") == SCOPE_REQUIRED == errno.EINVAL     # Linux connect: EINVAL
    assert hop(rt, "ff02::1") == SCOPE_REQUIRED
    assert rt.stats.scope_required == 2
    assert hop(rt, "fe80::42", oif=eth1) == ("eth1", "fe80::42")     # the scope id decides
    nh = rt.route(a("ff02::1:ff00:42"), 0.0, eth1)
    assert nh == NextHop(eth1, a("ff02::1:ff00:42"))


def test_global_multicast_is_routed_and_its_next_hop_is_the_group(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = Ipv6Routes()
    assert hop(rt, "ff05::2") == NO_ROUTE
    rt.add("::/0", eth1, GW)
    assert hop(rt, "ff05::2") == ("eth1", "ff05::2")                 # never via the gateway
    rt.add("ff00::/8", eth0, metric=256)                             # Linux's multicast route
    assert hop(rt, "ff0e::1") == ("eth0", "ff0e::1")


def test_is_on_link(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = Ipv6Routes()
    rt.add("2001:db8::/64", eth0)
    rt.add("::/0", eth0, GW)
    assert rt.is_on_link(a("2001:db8::5"), eth0, 0.0)
    assert not rt.is_on_link(a("2001:db8::5"), eth1, 0.0)
    assert not rt.is_on_link(a("2600::5"), eth0, 0.0)               # via the gateway
    assert rt.is_on_link(a("fe80::5"), eth1, 0.0)                    # link-local: everywhere


# --- the default router list ------------------------------------------------------------------------
def test_ra_router_added_refreshed_expired(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    rt = Ipv6Routes()
    kicks: list[float] = []
    rt.kick = lambda *at: kicks.extend(at)
    rt.ra_router(eth0, R1, 1800, 10.0)
    assert hop(rt, "2600::1", 10.0) == ("eth0", "fe80::1")
    assert rt.poll_at() == 1810.0 and kicks == [1810.0]
    rt.ra_router(eth0, R1, 600, 1000.0)                               # a new lifetime, shorter
    assert rt.poll_at() == 1600.0
    rt.poll(1599.9)
    assert hop(rt, "2600::1", 1599.9) == ("eth0", "fe80::1")
    assert hop(rt, "2600::1", 1600.0) == NO_ROUTE                     # not used past its lifetime
    rt.poll(1600.0)
    assert rt.routers() == [] and rt.poll_at() is None
    assert (rt.stats.router_added, rt.stats.router_refreshed, rt.stats.router_expired) == (1, 1, 1)


def test_ra_router_lifetime_zero_removes(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    rt = Ipv6Routes()
    rt.ra_router(eth0, R1, 1800, 0.0)
    rt.ra_router(eth0, R2, 0, 0.0)                                   # unknown, lifetime 0: nothing
    assert [r.addr for r in rt.routers()] == [R1]
    rt.ra_router(eth0, R1, 0, 5.0)
    assert rt.routers() == [] and rt.stats.router_removed == 1
    assert hop(rt, "2600::1", 5.0) == NO_ROUTE and rt.poll_at() is None


def test_static_default_and_ra_router_by_metric(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = Ipv6Routes()
    rt.ra_router(eth0, R1, 1800, 0.0)
    rt.add("::/0", eth1, GW)                                          # metric 1024: a tie
    assert hop(rt, "2600::1") == ("eth1", "fe80::99")               # the static route
    rt.delete("::/0")
    rt.add("::/0", eth1, GW, metric=2048)
    nh = rt.route(a("2600::1"), 0.0)
    assert isinstance(nh, NextHop) and nh.router is not None and nh.ifp is eth0
    assert hop(rt, "2600::1") == ("eth0", "fe80::1")


def test_more_specific_route_beats_the_routers(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = Ipv6Routes()
    rt.ra_router(eth0, R1, 1800, 0.0)
    rt.add("2001:db8::/32", eth1, GW)
    assert hop(rt, "2001:db8::1") == ("eth1", "fe80::99")
    assert hop(rt, "2002::1") == ("eth0", "fe80::1")


def rt3(ifp: Interface, reach: Reach, prefs: tuple[int, int, int] = (0, 0, 0)) -> Ipv6Routes:
    rt = Ipv6Routes(reachable=reach)
    for addr, pref in zip((R1, R2, R3), prefs, strict=True):
        rt.ra_router(ifp, addr, 1800, 0.0, pref)
    return rt


def chosen(rt: Ipv6Routes, now: float = 1.0, oif: Interface | None = None) -> int | None:
    r = rt.select_router(now, oif)
    return None if r is None else r.addr


def test_reachable_router_preferred(ifs: tuple[Interface, Interface]) -> None:
    reach = Reach()
    rt = rt3(ifs[0], reach)
    assert chosen(rt) == R1                                           # nothing known: the first
    reach.state = {R1: False, R2: None, R3: True}                    # INCOMPLETE, absent, REACHABLE
    assert chosen(rt) == R3
    reach.state[R2] = True
    assert chosen(rt) == R2                                           # ties: list order


def test_rfc4191_preference_among_equals_but_reachability_first(ifs: tuple[Interface, Interface]) -> None:
    reach = Reach()
    rt = rt3(ifs[0], reach, (PREF_LOW, PREF_HIGH, PREF_MEDIUM))
    assert chosen(rt) == R2                                           # none reachable: high
    reach.state = {R1: True, R3: True}
    assert chosen(rt) == R3                                           # reachable ones: medium > low
    reach.state = {R1: True}
    assert chosen(rt) == R1                                           # reachable low > unknown high
    rt.ra_router(ifs[0], R1, 1800, 2.0, PREF_HIGH)                   # a preference changes with an RA
    reach.state = {}
    assert chosen(rt, 2.0) == R1


@pytest.mark.parametrize(("bits", "pref"), [(0b01, PREF_HIGH), (0b00, PREF_MEDIUM), (0b11, PREF_LOW),
                                            (0b10, PREF_MEDIUM)])
def test_decode_preference_reserved_is_medium(bits: int, pref: int) -> None:
    assert decode_preference(bits) == pref                           # RFC 4191 §2.2


def test_round_robin_when_none_is_reachable(ifs: tuple[Interface, Interface]) -> None:
    """§6.3.6: no router known reachable: the choice sticks until its neighbour fails, then
    moves on, every router tried before one is tried again."""
    eth0, _ = ifs
    rt = rt3(eth0, Reach())
    seen = []
    for i in range(7):
        current = chosen(rt)
        assert chosen(rt) == current                                  # sticky between failures
        seen.append(current)
        assert current is not None
        rt.neighbor_failed(eth0, current, True, float(i))
    assert seen == [R1, R2, R3, R1, R2, R3, R1]
    assert rt.stats.router_failed == 7


def test_failed_router_demoted_until_it_shows_life(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    reach = Reach()
    rt = rt3(eth0, reach, (PREF_HIGH, PREF_MEDIUM, PREF_LOW))
    assert chosen(rt) == R1
    rt.neighbor_failed(eth0, R1, True, 1.0)
    assert chosen(rt) == R2                                           # failed < any other, pref aside
    rt.neighbor_failed(eth0, R3, True, 1.0)                          # not the current: demoted only
    assert chosen(rt) == R2
    rt.ra_router(eth0, R1, 1800, 2.0, PREF_HIGH)                     # an RA: alive again
    assert chosen(rt, 2.0) == R1
    rt.neighbor_failed(eth0, R1, True, 3.0)
    reach.state[R1] = True                                            # NUD confirmed it
    assert chosen(rt, 3.0) == R1
    reach.state.clear()
    assert chosen(rt, 3.0) == R1                                      # and the confirmation stays
    rt.neighbor_failed(eth0, a("fe80::77"), False, 3.0)               # not a router: nothing
    assert rt.stats.router_failed == 3


def test_router_lost_removes_and_moves_on(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = rt3(eth0, Reach())
    rt.router_lost(eth0, R1, 1.0)                                     # §7.2.5: IsRouter cleared
    assert [r.addr for r in rt.routers()] == [R2, R3] and chosen(rt) == R2
    rt.router_lost(eth1, R2, 1.0)                                     # another interface's: no
    rt.router_lost(eth0, a("fe80::77"), 1.0)
    assert rt.stats.router_lost == 1 and chosen(rt) == R2
    rt.neighbor_failed(eth0, R2, True, 1.0)
    assert chosen(rt) == R3
    rt.router_lost(eth0, R3, 2.0)                                     # the current one goes
    assert chosen(rt) == R2


def test_routers_per_interface_and_down_interfaces(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = Ipv6Routes()
    rt.ra_router(eth0, R1, 1800, 0.0)
    rt.ra_router(eth1, R1, 1800, 0.0)                                 # same address, other link
    assert len(rt.routers()) == 2
    assert hop(rt, "2600::1") == ("eth0", "fe80::1")
    assert hop(rt, "2600::1", oif=eth1) == ("eth1", "fe80::1")
    eth0.flags &= ~IFF_RUNNING
    assert hop(rt, "2600::1") == ("eth1", "fe80::1")
    eth1.flags &= ~IFF_RUNNING
    assert hop(rt, "2600::1") == NO_ROUTE


def test_router_bound_per_interface(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = Ipv6Routes(config=Route6Config(max_ra_routers=16))
    for i in range(20):
        rt.ra_router(eth0, a(f"fe80::{i + 1:x}"), 1800, 0.0)
    assert len(rt.routers()) == 16 and rt.stats.router_over_limit == 4
    rt.ra_router(eth0, a("fe80::1"), 900, 1.0)                       # known: still refreshed
    assert rt.routers()[0].expires == 901.0
    rt.ra_router(eth1, a("fe80::100"), 1800, 1.0)                    # another interface's budget
    assert len(rt.routers()) == 17
    rt.ra_router(eth0, a("fe80::1"), 0, 2.0)                         # room again
    rt.ra_router(eth0, a("fe80::40"), 1800, 2.0)
    assert a("fe80::40") in [r.addr for r in rt.routers()] and rt.stats.router_over_limit == 4


def test_wired_to_a_real_neighbor_cache(ifs: tuple[Interface, Interface]) -> None:
    """The hooks fit nd.py's callables through functools.partial: a failed resolution moves
    the choice on, an NA clearing IsRouter removes the router, and the cache's states answer
    `reachable` through nd_reachability."""
    eth0, _ = ifs
    caches: dict[Interface, NeighborCache] = {}
    rt = Ipv6Routes(reachable=lambda ifp, addr: nd_reachability(caches[ifp].state(addr)))
    cache = NeighborCache(router_lost=partial(rt.router_lost, eth0),
                          neighbor_failed=partial(rt.neighbor_failed, eth0))
    caches[eth0] = cache
    rt.ra_router(eth0, R1, 1800, 0.0)
    rt.ra_router(eth0, R2, 1800, 0.0)
    nh = rt.route(a("2600::1"), 0.0)
    assert isinstance(nh, NextHop) and nh.nexthop == R1
    cache.resolve(R1, PacketBuffer.from_payload(b"x"), 0.0)          # R1 never answers
    assert cache.state(R1) == INCOMPLETE and hop(rt, "2600::1") == ("eth0", "fe80::1")
    t = 0.0
    while cache.state(R1) is not None:
        at = cache.poll_at()
        assert at is not None and at > t
        t = at
        cache.poll(t)
    assert rt.stats.router_failed == 1 and hop(rt, "2600::1", t) == ("eth0", "fe80::2")
    cache.input_ra_source(R1, MAC, t)                                  # R1 speaks again: STALE
    rt.ra_router(eth0, R1, 1800, t)
    assert cache.state(R1) == STALE and hop(rt, "2600::1", t) == ("eth0", "fe80::1")
    cache.input_na(R1, MAC, False, True, True, t)                     # IsRouter cleared
    assert cache.state(R1) == REACHABLE and rt.stats.router_lost == 1
    assert [r.addr for r in rt.routers()] == [R2] and hop(rt, "2600::1", t) == ("eth0", "fe80::2")


@pytest.mark.parametrize(("state", "answer"), [(None, None), (INCOMPLETE, False), (STALE, True),
                                               (REACHABLE, True), ("DELAY", True), ("PROBE", True)])
def test_nd_reachability(state: str | None, answer: bool | None) -> None:
    assert nd_reachability(state) is answer


# --- the prefix list --------------------------------------------------------------------------------
def test_ra_prefix_on_link_with_lifetime(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = Ipv6Routes()
    rt.ra_router(eth1, R1, 1800, 0.0)
    rt.ra_prefix(eth0, a("2001:db8:1::77"), 64, 3600, 0.0)           # host bits dropped
    assert [(p.network, p.prefixlen, p.proto, p.metric) for p in rt.prefixes()] == \
        [(a("2001:db8:1::"), 64, "ra", 256)]
    assert hop(rt, "2001:db8:1::5") == ("eth0", "2001:db8:1::5")     # on-link beats the router
    assert rt.is_on_link(a("2001:db8:1::5"), eth0, 0.0)
    rt.ra_prefix(eth0, a("2001:db8:1::"), 64, 7200, 100.0)           # refreshed
    rt.poll(3600.0)
    assert hop(rt, "2001:db8:1::5", 3600.0) == ("eth0", "2001:db8:1::5")
    assert hop(rt, "2001:db8:1::5", 7299.0) == ("eth0", "2001:db8:1::5")
    assert hop(rt, "2001:db8:1::5", 7300.0) == NO_ROUTE             # the router is long gone too
    rt.poll(7300.0)
    assert rt.prefixes() == [] and rt.stats.ra_prefix_expired == 1
    assert (rt.stats.ra_prefix_added, rt.stats.ra_prefix_refreshed) == (1, 1)


def test_ra_prefix_zero_removes_infinite_never_expires(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    rt = Ipv6Routes()
    rt.ra_prefix(eth0, a("2001:db8:1::"), 64, 3600, 0.0)
    rt.ra_prefix(eth0, a("2001:db8:1::"), 64, INFINITE_LIFETIME, 1.0)
    assert rt.poll_at() is None and rt.prefixes()[0].expires is None
    rt.poll(1e9)
    assert hop(rt, "2001:db8:1::5", 1e9) == ("eth0", "2001:db8:1::5")
    rt.ra_prefix(eth0, a("2001:db8:1::"), 64, 0, 1e9)
    assert rt.prefixes() == [] and rt.stats.ra_prefix_removed == 1
    assert hop(rt, "2001:db8:1::5", 1e9) == NO_ROUTE
    rt.ra_prefix(eth0, a("2001:db8:2::"), 64, 0, 1e9)                # unknown, 0: nothing
    assert list(rt) == []


def test_ra_prefix_ignored_link_local_and_l_flag_clear(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    rt = Ipv6Routes()
    rt.ra_prefix(eth0, a("fe80::"), 64, 3600, 0.0)                   # §6.3.4: silently ignored
    rt.ra_prefix(eth0, a("2001:db8:1::"), 129, 3600, 0.0)
    rt.ra_prefix(eth0, a("2001:db8:1::"), 64, 3600, 0.0)
    rt.ra_prefix(eth0, a("2001:db8:1::"), 64, 0, 1.0, on_link=False)  # L clear: no effect at all
    assert len(rt.prefixes()) == 1 and rt.prefixes()[0].expires == 3600.0
    assert rt.stats.ra_prefix_ignored == 3


def test_prefix_bound_per_interface(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = Ipv6Routes()
    for i in range(18):
        rt.ra_prefix(eth0, a("2001:db8::") | (i << 64), 64, 3600, 0.0)
    assert len(rt.prefixes(eth0)) == 16 and rt.stats.ra_prefix_over_limit == 2
    assert hop(rt, "2001:db8:0:11::1") == NO_ROUTE                  # the 18th was ignored
    rt.ra_prefix(eth1, a("2001:db8:0:11::"), 64, 3600, 0.0)
    assert len(rt.prefixes(eth1)) == 1
    rt.delete("2001:db8::/64", eth0)                                  # `ip route del` frees a slot
    rt.ra_prefix(eth0, a("2001:db8:0:12::"), 64, 3600, 0.0)
    assert len(rt.prefixes(eth0)) == 16 and rt.stats.ra_prefix_over_limit == 2


def test_static_route_survives_ra_prefix_expiry(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    rt = Ipv6Routes()
    rt.add("2001:db8:1::/64", eth0, metric=256, proto="kernel")     # an address's prefix
    rt.ra_prefix(eth0, a("2001:db8:1::"), 64, 10, 0.0)
    rt.poll(10.0)
    assert hop(rt, "2001:db8:1::5", 10.0) == ("eth0", "2001:db8:1::5")
    assert [r.proto for r in rt] == ["kernel"]


# --- redirects --------------------------------------------------------------------------------------
def test_redirect_to_a_better_router_and_to_on_link(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    rt = Ipv6Routes()
    rt.add("::/0", eth0, GW)
    assert rt.redirect(a("2600::1"), R2, eth0, 0.0)
    assert hop(rt, "2600::1") == ("eth0", "fe80::2")
    assert hop(rt, "2600::2") == ("eth0", "fe80::99")               # one destination only
    assert rt.redirect(a("2600::3"), a("2600::3"), eth0, 0.0)       # target == dst: on-link
    assert hop(rt, "2600::3") == ("eth0", "2600::3")
    assert rt.redirect(a("2600::1"), R3, eth0, 1.0)                  # replaced
    assert hop(rt, "2600::1", 1.0) == ("eth0", "fe80::3")
    assert rt.redirect(a("2600::1"), R3, eth0, 100.0)                # refreshed
    assert (rt.stats.redirect_added, rt.stats.redirect_refreshed) == (3, 1)
    rt.poll(600.0)
    assert hop(rt, "2600::3", 600.0) == ("eth0", "fe80::99")        # expired (FreeBSD 600 s)
    assert hop(rt, "2600::1", 600.0) == ("eth0", "fe80::3")
    rt.poll(700.0)
    assert hop(rt, "2600::1", 700.0) == ("eth0", "fe80::99")
    assert rt.stats.redirect_expired == 2 and [r.proto for r in rt] == ["static"]


def test_redirect_of_scoped_or_multicast_is_ignored(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    rt = Ipv6Routes()
    assert not rt.redirect(a("fe80::5"), R1, eth0, 0.0)
    assert not rt.redirect(a("ff05::2"), R1, eth0, 0.0)
    assert not rt.redirect(a("2600::1"), a("ff02::1"), eth0, 0.0)
    assert rt.stats.redirect_ignored == 3 and list(rt) == []


def test_redirect_bound_evicts_the_oldest(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    rt = Ipv6Routes(config=Route6Config(max_redirects=8))
    rt.add("::/0", eth0, GW)
    for i in range(12):
        rt.redirect(a("2600::") + i, R1, eth0, float(i))
    assert rt.stats.redirect_evicted == 4
    assert hop(rt, "2600::3", 12.0) == ("eth0", "fe80::99")
    assert hop(rt, "2600::4", 12.0) == ("eth0", "fe80::1")
    assert sum(1 for r in rt if r.proto == "redirect") == 8


# --- interfaces, dump, timers -----------------------------------------------------------------------
def test_delete_interface_takes_everything_over_it(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = Ipv6Routes()
    rt.add("::/0", eth0, GW)
    rt.add("2001:db8::/64", eth1)
    rt.ra_prefix(eth0, a("2001:db8:1::"), 64, 3600, 0.0)
    rt.ra_router(eth0, R1, 1800, 0.0)
    rt.ra_router(eth1, R2, 1800, 0.0)
    rt.redirect(a("2600::1"), R1, eth0, 0.0)
    rt.delete_interface(eth0)
    assert [str(r) for r in rt] == ["2001:db8::/64 dev eth1 proto static metric 1024"]
    assert [r.ifp for r in rt.routers()] == [eth1] and rt.prefixes() == []
    assert rt.poll_at() == 1800.0
    for i in range(16):                                               # eth0's budgets are free again
        rt.ra_router(eth0, a("fe80::100") + i, 1800, 1.0)
    assert rt.stats.router_over_limit == 0


def test_dump_like_ip_route(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    rt = Ipv6Routes()
    rt.add("::/0", eth0, GW, metric=2048)
    rt.add("2001:db8::/64", eth0, metric=256, source=a("2001:db8::2"), proto="kernel")
    rt.ra_prefix(eth0, a("2001:db8:1::"), 64, 86400, 0.0)
    rt.ra_router(eth0, R1, 1800, 0.0, PREF_HIGH)
    assert rt.dump(0.5) == [
        "2001:db8::/64 dev eth0 proto kernel metric 256 src 2001:db8::2",
        "2001:db8:1::/64 dev eth0 proto ra metric 256 expires 86400sec",
        "default via fe80::99 dev eth0 proto static metric 2048",
        "default via fe80::1 dev eth0 proto ra metric 1024 expires 1800sec pref high",
    ]


def test_heap_stays_bounded_under_refresh_floods(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    rt = Ipv6Routes()
    for i in range(20000):
        now = i * 0.01
        rt.ra_router(eth0, R1, 1800 - (i % 7), now)
        rt.ra_prefix(eth0, a("2001:db8::"), 64, 3600 + (i % 5), now)
    assert len(rt._heap) <= 2 * 2 + 64                              # the rebuild bound
    at = rt.poll_at()
    assert at is not None and at == pytest.approx(199.99 + 1800 - (19999 % 7))


def test_tiny_lifetime_is_still_strictly_later() -> None:
    table = InterfaceTable()
    eth0 = iface(table, "eth0")
    rt = Ipv6Routes()
    now = 1e12
    rt.ra_router(eth0, R1, 1e-9, now)                                 # now + 1e-9 == now in floats
    at = rt.poll_at()
    assert at is not None and at > now
    rt.poll(now)
    assert rt.routers() != []
    rt.poll(at)
    assert rt.routers() == [] and rt.poll_at() is None


ops = st.lists(st.tuples(
    st.sampled_from(["router", "prefix", "redirect", "fail", "lost", "poll", "route"]),
    st.integers(0, 5),                              # which address
    st.sampled_from([0, 1, 1e-9, 0.5, 3, 600, 1800, INFINITE_LIFETIME]),
    st.floats(0, 50, allow_nan=False)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_poll_always_makes_progress(seq: list[tuple[str, int, float, float]]) -> None:
    """The TimedCore contract: after poll(poll_at()), poll_at() is None or later."""
    table = InterfaceTable()
    eth0 = iface(table, "eth0")
    reach = Reach()
    rt = Ipv6Routes(reachable=reach, config=Route6Config(max_ra_routers=3, max_ra_prefixes=3, max_redirects=3))
    kicked: list[float] = []
    rt.kick = lambda *at: kicked.extend(at)
    now = 0.0
    for op, n, lifetime, step in seq:
        now += step
        before = len(kicked)
        addr = a("fe80::1") + n
        if op == "router":
            rt.ra_router(eth0, addr, min(lifetime, 9000), now, (n % 3) - 1)
        elif op == "prefix":
            rt.ra_prefix(eth0, a("2001:db8::") | (n << 64), 64, lifetime, now)
        elif op == "redirect":
            rt.redirect(a("2600::") + n, addr, eth0, now)
        elif op == "fail":
            rt.neighbor_failed(eth0, addr, True, now)
        elif op == "lost":
            rt.router_lost(eth0, addr, now)
        elif op == "route":
            reach.state[addr] = n % 2 == 0
            nh = rt.route(a("2600::") + n, now)
            assert nh == NO_ROUTE or isinstance(nh, NextHop)
        else:
            rt.poll(now)
        assert all(k > now for k in kicked[before:])
        assert len(rt.routers()) <= 3 and len(rt.prefixes()) <= 3
        assert sum(1 for r in rt if r.proto == "redirect") <= 3
    for _ in range(40):
        at = rt.poll_at()
        if at is None:
            break
        rt.poll(at)
        nxt = rt.poll_at()
        assert nxt is None or nxt > at
    assert rt.poll_at() is None                                       # everything timed is gone
    assert rt.routers() == [] and all(r.expires is None for r in rt)
