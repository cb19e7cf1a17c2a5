"""The IPv6 routing table with the prefix list and the default router list (RFC 4861 §5.1,
§5.2, §6.3.4, §6.3.6; RFC 4191 router preferences), as a sans-IO timed core -- the IPv6
counterpart of protocols/route.py.

Next-hop determination (RFC 4861 §5.2), `route(dst, now, oif)`:
  1. Destinations that need a scope id -- link-local unicast fe80::/10 and interface- or
     link-local multicast ff01::/16, ff02::/16 (Linux __ipv6_addr_needs_scope_id) -- are not
     looked up at all: the interface is the caller's `oif` (the socket's sin6_scope_id, or its
     bound device) and the next hop is the destination itself; the link-local prefix is on-link
     on every interface (§5.1, RFC 4291 §2.5.6).  Without an oif the verdict is
     SCOPE_REQUIRED (EINVAL): Linux's tcp_v6_connect() and __ip6_datagram_connect() fail a
     connect to such an address with EINVAL when neither sin6_scope_id nor SO_BINDTODEVICE
     names an interface.  (udpv6_sendmsg does not check: it only copies a given scope id into
     the flow and lets the route lookup pick -- the socket layer chooses what sendto does.)
  2. Everything else: longest-prefix match over the routes (static routes, connected and
     RA-learned on-link prefixes, redirect host routes), lowest metric first among the routes
     of one prefix, routes over a down interface skipped; an `oif` (SO_BINDTODEVICE) keeps only
     routes over it -- Linux ignores sin6_scope_id for global destinations.
  3. The default route ::/0 is the static ::/0 routes plus the default router list: the
     selected router (§6.3.6, below) stands for a ::/0 route of metric `ra_router_metric`
     (Linux ra_defrtr_metric, 1024, the metric of `ip -6 route add default`); the lower metric
     wins, a static route on a tie.
  4. Nothing matched: NO_ROUTE (ENETUNREACH).  RFC 2461's "assume on-link when there is no
     default router" was dropped by RFC 4861 (RFC 4943 says why); Linux answers ENETUNREACH.
A multicast destination's next hop is the group itself (its MAC is mapped, RFC 2464 §7, never
resolved through a router); an on-link route's next hop is the destination; a gateway route's
is its gateway (normally link-local, on the route's interface).

No destination cache (RFC 4861 §5's data structures are conceptual; an implementation need
not keep the Destination Cache apart from its routing table): a lookup is at most one dict probe per
distinct prefix length in use (typically /128 redirects, /64 prefixes, /0), which is what
protocols/route.py does for IPv4 -- Linux IPv4 has had no route cache since 3.6.  Linux IPv6
keeps per-route exceptions for PMTU and redirects; here PMTU is protocols/pmtu.py's business
and a redirect is a /128 host route in this table.  The owner may still cache a NextHop per
connected socket, as Linux's sk_dst_cache does.

Default router selection (§6.3.6, RFC 4191 §3.2), among routers on up interfaces (and on
`oif` when given): a router the neighbor cache knows reachable or probably reachable (the
owner's `reachable(ifp, addr)` -- True for any state but INCOMPLETE, False for INCOMPLETE,
None for no entry) beats one whose reachability is unknown or suspect; then a router whose
neighbour entry has not just failed (`neighbor_failed`, as Linux's rt6_check_neigh scores a
NUD_FAILED gateway below every other); then the higher RFC 4191 preference.  Ties go to the
first router in round-robin order, which starts at the "current" router: the choice sticks,
and when the current router's neighbour fails the order moves on to the next router, so when
none is known reachable every router is tried in turn before one is tried again (§6.3.6)
without spraying the packets of one flow over all of them.

The prefix list (§6.3.4): RA Prefix Information options with the L flag become on-link
routes (proto "ra", metric `ra_prefix_metric`, Linux's IP6_RT_PRIO_ADDRCONF 256) that expire
with their valid lifetime (0xffffffff: never); a valid lifetime of 0 removes the prefix; a
link-local prefix is ignored (it is always on-link anyway).  The default router list
(§6.3.4): an RA's router lifetime adds, refreshes or (0) removes its source.  Both are
bounded per interface (`max_ra_prefixes`, `max_ra_routers`, FreeBSD's maxifprefixes and
maxifdefrouters, 16 each): beyond the bound a new entry is ignored and counted; known entries
are still refreshed.

Redirects (§8.3): `redirect(dst, target, ifp, now)` installs a /128 host route for `dst`
(via `target`, or on-link when target == dst), metric 0 so it beats the route it refines.  The
owner validates the message first (§8.1: hop limit 255, link-local source that is the current
first hop for dst -- `route()` answers that).  Redirect routes expire after
`redirect_timeout` (FreeBSD icmp6_redirtimeout, 600 s; Linux ages its redirect exceptions
with gc_timeout) and are bounded by `max_redirects`, the oldest given up first.

Not here: RFC 4191 Route Information options (more-specific routes from RAs), source address
selection (RFC 6724, the owner's, with `NextHop.source` as a route's preferred source), and
checking that a static gateway is reachable on-link (Linux ip6_route_check_nh).

Addresses are 128-bit ints; interfaces are protocols.ifnet.Interface objects (`ifp`).
"""
from __future__ import annotations

import errno
import heapq
import ipaddress
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ndd.counters import Counters

from ..timing import TICK
from .nd import INCOMPLETE

if TYPE_CHECKING:
    from ..ifnet import Interface

ADDR_BITS = 128
ALL_ONES = (1 << ADDR_BITS) - 1
INFINITE_LIFETIME = 0xFFFFFFFF           # RFC 4861 §4.6.2: all ones is infinity

SCOPE_REQUIRED = errno.EINVAL            # verdict: a scoped destination and no interface
NO_ROUTE = errno.ENETUNREACH             # verdict: nothing covers the destination

# Linux's route priorities (include/net/ip6_route.h)
METRIC_ADDRCONF = 256                    # IP6_RT_PRIO_ADDRCONF: connected and RA prefix routes
METRIC_USER = 1024                       # IP6_RT_PRIO_USER: `ip -6 route add`, RA default routers

# RFC 4191 §2.1 Default Router Preference, decoded to an order
PREF_HIGH, PREF_MEDIUM, PREF_LOW = 1, 0, -1
PREF_NAMES = {PREF_HIGH: "high", PREF_MEDIUM: "medium", PREF_LOW: "low"}


def prefix_mask(plen: int) -> int:
    return ALL_ONES ^ (ALL_ONES >> plen)


def is_link_local(addr: int) -> bool:
    """fe80::/10 (RFC 4291 §2.5.6)."""
    return addr >> 118 == 0xFE80 >> 6


def is_multicast(addr: int) -> bool:
    return addr >> 120 == 0xFF


def needs_scope_id(addr: int) -> bool:
    """Link-local unicast, or multicast of interface-local (1) or link-local (2) scope
    (RFC 4291 §2.7): the destinations whose interface a scope id must name (Linux
    __ipv6_addr_needs_scope_id)."""
    return is_link_local(addr) or (is_multicast(addr) and (addr >> 112) & 0xF in (1, 2))


def decode_preference(prf: int) -> int:
    """RFC 4191 §2.2: the 2-bit Prf field (01 high, 00 medium, 11 low); the reserved 10 is
    treated as medium."""
    return {0b01: PREF_HIGH, 0b11: PREF_LOW}.get(prf & 0b11, PREF_MEDIUM)


def nd_reachability(state: str | None) -> bool | None:
    """What `reachable(ifp, addr)` answers from NeighborCache.state(addr) (§6.3.6): any state
    but INCOMPLETE is reachable or probably reachable, INCOMPLETE is suspect, no entry is
    unknown."""
    return None if state is None else state != INCOMPLETE


def format_addr(addr: int) -> str:
    return str(ipaddress.IPv6Address(addr))


def parse_prefix(text: str) -> tuple[int, int]:
    """"2001:db8::/32" (host bits allowed, as `ip route` takes them) or "default"."""
    if text == "default":
        return 0, 0
    try:
        net = ipaddress.IPv6Network(text, strict=False)
    except ValueError:
        raise OSError(errno.EINVAL, f"bad IPv6 prefix {text!r}") from None
    return int(net.network_address), net.prefixlen


@dataclass(eq=False)
class Route6:
    network: int
    prefixlen: int
    ifp: Interface
    gateway: int | None = None      # None: on-link
    metric: int = METRIC_USER
    source: int | None = None       # preferred source address (`ip route ... src`)
    proto: str = "static"           # "kernel" (an address's prefix), "ra", "redirect"
    expires: float | None = None    # None: permanent
    installed: bool = field(default=False, repr=False)

    def __str__(self) -> str:
        dst = "default" if self.prefixlen == 0 else f"{format_addr(self.network)}/{self.prefixlen}"
        via = f" via {format_addr(self.gateway)}" if self.gateway is not None else ""
        src = f" src {format_addr(self.source)}" if self.source is not None else ""
        return f"{dst}{via} dev {self.ifp.name} proto {self.proto} metric {self.metric}{src}"


@dataclass(eq=False)
class Router:
    """An entry of the default router list (§6.3.4)."""
    addr: int                       # link-local (§6.1.2: the owner drops RAs from others)
    ifp: Interface
    expires: float
    pref: int = PREF_MEDIUM
    failed: bool = False            # its neighbour entry failed since its last sign of life
    installed: bool = field(default=False, repr=False)

    def __str__(self) -> str:
        return (f"default via {format_addr(self.addr)} dev {self.ifp.name} proto ra"
                f" pref {PREF_NAMES[self.pref]}")


@dataclass(frozen=True, slots=True)
class NextHop:
    """Where a packet to a destination goes (§5.2)."""
    ifp: Interface
    nexthop: int                    # the gateway, or the destination itself (on-link, multicast)
    route: Route6 | None = None     # None: scoped destination, or a default router
    router: Router | None = None    # the default router chosen, when one was
    source: int | None = None       # the route's preferred source, if it has one


@dataclass
class Route6Config:
    # FreeBSD net.inet6.ip6.maxifprefixes / maxifdefrouters (16 each): RA floods (CVE-2010-4669
    # class) cannot grow the lists; Linux has no such bound on RA routes
    max_ra_prefixes: int = 16       # per interface
    max_ra_routers: int = 16        # per interface
    max_redirects: int = 1024       # host routes from redirects, over all interfaces
    redirect_timeout: float = 600.0     # FreeBSD icmp6_redirtimeout
    ra_prefix_metric: int = METRIC_ADDRCONF
    ra_router_metric: int = METRIC_USER     # Linux ra_defrtr_metric
    redirect_metric: int = 0


@dataclass
class Route6Stats(Counters):
    no_route: int = 0               # lookups that found nothing (ENETUNREACH)
    scope_required: int = 0         # scoped destinations looked up without an interface (EINVAL)
    ra_prefix_added: int = 0
    ra_prefix_refreshed: int = 0
    ra_prefix_removed: int = 0      # valid lifetime 0
    ra_prefix_expired: int = 0
    ra_prefix_ignored: int = 0      # link-local, bad length, or L flag clear (§6.3.4)
    ra_prefix_over_limit: int = 0   # new prefix beyond max_ra_prefixes: ignored
    router_added: int = 0
    router_refreshed: int = 0
    router_removed: int = 0         # router lifetime 0
    router_expired: int = 0
    router_over_limit: int = 0      # new router beyond max_ra_routers: ignored
    router_lost: int = 0            # IsRouter cleared by an NA: removed (§7.2.5)
    router_failed: int = 0          # its neighbour failed: demoted, round robin moves on (§6.3.6)
    redirect_added: int = 0
    redirect_refreshed: int = 0
    redirect_ignored: int = 0       # a multicast or scoped destination: nothing to redirect
    redirect_expired: int = 0
    redirect_evicted: int = 0       # the oldest, for max_redirects


Timed = Route6 | Router


class Ipv6Routes:
    """The IPv6 routing table, prefix list and default router list of a host (a TimedCore)."""

    def __init__(self, *, reachable: Callable[[Interface, int], bool | None] | None = None,
                 config: Route6Config | None = None) -> None:
        self.reachable: Callable[[Interface, int], bool | None] = reachable or (lambda ifp, addr: None)
        self.kick: Callable[..., None] = lambda *at: None
        self.config = config or Route6Config()
        self.stats = Route6Stats()
        # one dict per prefix length; a lookup probes the lengths in use from /128 down
        self._by_len: list[dict[int, list[Route6]]] = [{} for _ in range(ADDR_BITS + 1)]
        self._lens: list[int] = []
        self._prefixes: dict[tuple[Interface, int, int], Route6] = {}
        self._prefix_count: dict[Interface, int] = {}
        self._routers: dict[tuple[Interface, int], Router] = {}     # in learning order
        self._router_count: dict[Interface, int] = {}
        self._current: tuple[Interface, int] | None = None          # round robin's start
        self._redirects: OrderedDict[int, Route6] = OrderedDict()   # oldest first
        self._heap: list[tuple[float, int, Timed]] = []
        self._seq = 0

    # --- static routes ---------------------------------------------------------------------------
    def add(self, prefix: str | tuple[int, int], ifp: Interface, gateway: int | None = None, *,
            metric: int = METRIC_USER, source: int | None = None, proto: str = "static") -> Route6:
        """`ip -6 route add`: EEXIST for the same prefix, interface, gateway and metric."""
        network, plen = parse_prefix(prefix) if isinstance(prefix, str) else prefix
        if not 0 <= plen <= ADDR_BITS or (gateway is not None and is_multicast(gateway)):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        network &= prefix_mask(plen)
        for r in self._by_len[plen].get(network, ()):
            if r.ifp is ifp and r.gateway == gateway and r.metric == metric:
                raise OSError(errno.EEXIST, os.strerror(errno.EEXIST))
        route = Route6(network, plen, ifp, gateway, metric, source, proto)
        self._install(route)
        return route

    def delete(self, prefix: str | tuple[int, int], ifp: Interface | None = None,
               gateway: int | None = None) -> None:
        """`ip -6 route del`: the first matching route (ESRCH if none), RA ones included."""
        network, plen = parse_prefix(prefix) if isinstance(prefix, str) else prefix
        if not 0 <= plen <= ADDR_BITS:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        network &= prefix_mask(plen)
        for r in self._by_len[plen].get(network, ()):
            if (ifp is None or r.ifp is ifp) and (gateway is None or r.gateway == gateway):
                self._remove(r)
                return
        raise OSError(errno.ESRCH, os.strerror(errno.ESRCH))

    def delete_interface(self, ifp: Interface) -> None:
        """The interface goes away: its routes, prefixes, routers and redirects with it."""
        for r in [r for r in self if r.ifp is ifp]:
            self._remove(r)
        for router in [r for r in self._routers.values() if r.ifp is ifp]:
            self._remove_router(router)

    # --- next-hop determination (§5.2) -----------------------------------------------------------
    def route(self, dst: int, now: float, oif: Interface | None = None) -> NextHop | int:
        """The next hop for `dst`, or SCOPE_REQUIRED / NO_ROUTE (see the module docstring).
        `oif`: the interface a scope id or SO_BINDTODEVICE names."""
        if needs_scope_id(dst):
            if oif is None:
                self.stats.scope_required += 1
                return SCOPE_REQUIRED
            return NextHop(oif, dst)
        route = self.lookup(dst, now, oif)
        router = self.select_router(now, oif) if route is None or route.prefixlen == 0 else None
        if router is not None and (route is None or self.config.ra_router_metric < route.metric):
            nexthop = dst if is_multicast(dst) else router.addr
            return NextHop(router.ifp, nexthop, None, router)
        if route is None:
            self.stats.no_route += 1
            return NO_ROUTE
        nexthop = route.gateway if route.gateway is not None and not is_multicast(dst) else dst
        return NextHop(route.ifp, nexthop, route, None, route.source)

    def lookup(self, dst: int, now: float, oif: Interface | None = None) -> Route6 | None:
        """Longest-prefix match over the routes (the default router list not included)."""
        for plen in self._lens:
            routes = self._by_len[plen].get(dst & prefix_mask(plen))
            if routes:
                for r in routes:
                    if (r.ifp.is_up and (oif is None or r.ifp is oif)
                            and (r.expires is None or r.expires > now)):
                        return r
        return None

    def is_on_link(self, dst: int, ifp: Interface, now: float) -> bool:
        """§5.2's on-link test for one interface: link-local, or covered by an on-link route
        over it (the owner's check of a redirect's or an NS's addresses)."""
        if needs_scope_id(dst):
            return True
        route = self.lookup(dst, now, ifp)
        return route is not None and route.gateway is None

    # --- the default router list (§6.3.4, §6.3.6) ------------------------------------------------
    def ra_router(self, ifp: Interface, addr: int, lifetime: float, now: float,
                  pref: int = PREF_MEDIUM) -> None:
        """An RA from `addr` (validated by the owner, §6.1.2) with its Router Lifetime in
        seconds and its decoded RFC 4191 preference: 0 removes the router, anything else adds
        it or restarts its timer."""
        key = (ifp, addr)
        router = self._routers.get(key)
        if lifetime <= 0:
            if router is not None:
                self.stats.router_removed += 1
                self._remove_router(router)
            return
        expires = self._deadline(now, lifetime)
        if router is not None:
            self.stats.router_refreshed += 1
            router.pref, router.failed = pref, False        # alive: an RA came from it
            self._set_expiry(router, expires)
            return
        if self._router_count.get(ifp, 0) >= self.config.max_ra_routers:
            self.stats.router_over_limit += 1
            return
        self.stats.router_added += 1
        router = Router(addr, ifp, expires, pref, installed=True)
        self._routers[key] = router
        self._router_count[ifp] = self._router_count.get(ifp, 0) + 1
        self._set_expiry(router, expires)

    def router_lost(self, ifp: Interface, addr: int, now: float) -> None:
        """The neighbor cache saw IsRouter cleared (§7.2.5): the router leaves the list."""
        router = self._routers.get((ifp, addr))
        if router is not None:
            self.stats.router_lost += 1
            self._remove_router(router)

    def neighbor_failed(self, ifp: Interface, addr: int, was_router: bool, now: float) -> None:
        """Resolution or NUD gave up on `addr` (§7.3.3).  A default router is demoted until it
        shows life again (an RA, or a reachable neighbour entry), and if it was the current one
        the round robin moves to the next (§6.3.6).  `was_router` is not needed: membership of
        the list decides."""
        key = (ifp, addr)
        router = self._routers.get(key)
        if router is None:
            return
        self.stats.router_failed += 1
        router.failed = True
        if self._current_key() == key:
            self._current = self._next_key(key)

    def select_router(self, now: float, oif: Interface | None = None) -> Router | None:
        """§6.3.6 with RFC 4191 §3.2 (see the module docstring); None: no usable router."""
        keys = list(self._routers)
        if not keys:
            return None
        current = self._current_key()
        start = keys.index(current) if current is not None else 0
        best: Router | None = None
        best_rank = (False, False, PREF_LOW - 1)
        for i in range(len(keys)):
            router = self._routers[keys[(start + i) % len(keys)]]
            if not router.ifp.is_up or (oif is not None and router.ifp is not oif) or router.expires <= now:
                continue
            reachable = self.reachable(router.ifp, router.addr) is True
            if reachable:
                router.failed = False       # NUD confirmed it since it failed
            rank = (reachable, not router.failed, router.pref)
            if best is None or rank > best_rank:
                best, best_rank = router, rank
        return best

    def routers(self) -> list[Router]:
        return list(self._routers.values())

    def _current_key(self) -> tuple[Interface, int] | None:
        """Where round robin starts: the current router, else the first learned."""
        if self._current in self._routers:
            return self._current
        return next(iter(self._routers), None)

    def _next_key(self, key: tuple[Interface, int]) -> tuple[Interface, int] | None:
        """The router after `key` in list order, cyclically; None if it is the only one."""
        keys = list(self._routers)
        if key not in self._routers or len(keys) < 2:
            return None
        return keys[(keys.index(key) + 1) % len(keys)]

    def _remove_router(self, router: Router) -> None:
        key = (router.ifp, router.addr)
        if self._current == key:
            self._current = self._next_key(key)
        del self._routers[key]
        router.installed = False
        self._router_count[router.ifp] -= 1
        if not self._router_count[router.ifp]:
            del self._router_count[router.ifp]

    # --- the prefix list (§6.3.4) ----------------------------------------------------------------
    def ra_prefix(self, ifp: Interface, prefix: int, prefixlen: int, valid_lifetime: float,
                  now: float, on_link: bool = True) -> None:
        """A Prefix Information option of a valid RA (§6.3.4): `on_link` is its L flag, the
        valid lifetime in seconds (INFINITE_LIFETIME: never expires, 0: remove now)."""
        if not on_link or not 0 <= prefixlen <= ADDR_BITS or is_link_local(prefix):
            # L clear says nothing about on-link-ness (an entry keeps its lifetime); the
            # link-local prefix is always on-link and is silently ignored
            self.stats.ra_prefix_ignored += 1
            return
        network = prefix & prefix_mask(prefixlen)
        key = (ifp, network, prefixlen)
        route = self._prefixes.get(key)
        if valid_lifetime <= 0:
            if route is not None:
                self.stats.ra_prefix_removed += 1
                self._remove(route)
            return
        expires = None if valid_lifetime >= INFINITE_LIFETIME else self._deadline(now, valid_lifetime)
        if route is not None:
            self.stats.ra_prefix_refreshed += 1
            self._set_expiry(route, expires)
            return
        if self._prefix_count.get(ifp, 0) >= self.config.max_ra_prefixes:
            self.stats.ra_prefix_over_limit += 1
            return
        self.stats.ra_prefix_added += 1
        route = Route6(network, prefixlen, ifp, None, self.config.ra_prefix_metric, proto="ra")
        self._prefixes[key] = route
        self._prefix_count[ifp] = self._prefix_count.get(ifp, 0) + 1
        self._install(route)
        self._set_expiry(route, expires)

    def prefixes(self, ifp: Interface | None = None) -> list[Route6]:
        return [r for r in self._prefixes.values() if ifp is None or r.ifp is ifp]

    # --- redirects (§8.3) ------------------------------------------------------------------------
    def redirect(self, dst: int, target: int, ifp: Interface, now: float) -> bool:
        """An accepted Redirect (validated by the owner, §8.1) received on `ifp`: packets to
        `dst` go to `target` (a better router; or `dst` itself, which is then on-link) for
        `redirect_timeout`.  False: ignored and counted."""
        if needs_scope_id(dst) or is_multicast(dst) or is_multicast(target):
            self.stats.redirect_ignored += 1
            return False
        gateway = None if target == dst else target
        expires = self._deadline(now, self.config.redirect_timeout)
        old = self._redirects.get(dst)
        if old is not None:
            if old.ifp is ifp and old.gateway == gateway:
                self.stats.redirect_refreshed += 1
                self._redirects.move_to_end(dst)
                self._set_expiry(old, expires)
                return True
            self._remove(old)
        self.stats.redirect_added += 1
        route = Route6(dst, ADDR_BITS, ifp, gateway, self.config.redirect_metric, proto="redirect")
        self._redirects[dst] = route
        self._install(route)
        self._set_expiry(route, expires)
        while len(self._redirects) > self.config.max_redirects:
            self.stats.redirect_evicted += 1
            self._remove(next(iter(self._redirects.values())))
        return True

    # --- the table -------------------------------------------------------------------------------
    def _install(self, route: Route6) -> None:
        routes = self._by_len[route.prefixlen].setdefault(route.network, [])
        routes.append(route)
        routes.sort(key=lambda r: r.metric)         # stable: the older route first on a tie
        if route.prefixlen not in self._lens:
            self._lens = sorted([route.prefixlen, *self._lens], reverse=True)
        route.installed = True

    def _remove(self, route: Route6) -> None:
        plen = route.prefixlen
        routes = self._by_len[plen][route.network]
        routes.remove(route)
        if not routes:
            del self._by_len[plen][route.network]
            if not self._by_len[plen]:
                self._lens.remove(plen)
        route.installed = False
        if route.proto == "ra":
            key = (route.ifp, route.network, plen)
            if self._prefixes.get(key) is route:
                del self._prefixes[key]
                self._prefix_count[route.ifp] -= 1
                if not self._prefix_count[route.ifp]:
                    del self._prefix_count[route.ifp]
        elif route.proto == "redirect" and self._redirects.get(route.network) is route:
            del self._redirects[route.network]

    def __iter__(self) -> Iterator[Route6]:
        for plen in list(self._lens):
            for routes in list(self._by_len[plen].values()):
                yield from list(routes)

    def dump(self, now: float) -> list[str]:
        """Like `ip -6 route`: routes by prefix length, the default routers as ::/0 routes."""
        lines = [str(r) + self._expiry_text(r.expires, now) for r in self if r.prefixlen]
        lines += [str(r) + self._expiry_text(r.expires, now) for r in self if not r.prefixlen]
        for router in self._routers.values():
            lines.append(f"default via {format_addr(router.addr)} dev {router.ifp.name} proto ra"
                         f" metric {self.config.ra_router_metric}{self._expiry_text(router.expires, now)}"
                         f" pref {PREF_NAMES[router.pref]}")
        return lines

    @staticmethod
    def _expiry_text(expires: float | None, now: float) -> str:
        return "" if expires is None else f" expires {max(0, math.ceil(expires - now))}sec"

    # --- timers ----------------------------------------------------------------------------------
    @staticmethod
    def _deadline(now: float, lifetime: float) -> float:
        """now + lifetime, strictly later than now (protocols/timing.py's rule)."""
        at = now + lifetime
        if at <= now:
            at = max(now + TICK, math.nextafter(now, math.inf))
        return at

    def _set_expiry(self, item: Timed, expires: float | None) -> None:
        """A new expiry: the old heap item goes stale (poll_at skips it, a rebuild drops it)."""
        if isinstance(item, Router):
            assert expires is not None        # a router always has a lifetime
            item.expires = expires
        else:
            item.expires = expires
        if expires is None:
            return
        self._seq += 1
        heapq.heappush(self._heap, (expires, self._seq, item))
        # every timed item is a router, an RA prefix or a redirect: the heap stays within
        # twice their number however often a peer refreshes them
        if len(self._heap) > 2 * (len(self._routers) + len(self._prefixes) + len(self._redirects)) + 64:
            self._rebuild_heap()
        self.kick(expires)

    def _rebuild_heap(self) -> None:
        self._heap = [(at, seq, item) for at, seq, item in self._heap if self._live(item, at)]
        heapq.heapify(self._heap)

    @staticmethod
    def _live(item: Timed, at: float) -> bool:
        return item.installed and item.expires == at

    def poll_at(self) -> float | None:
        while self._heap:
            at, _, item = self._heap[0]
            if self._live(item, at):
                return at
            heapq.heappop(self._heap)
        return None

    def poll(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            at, _, item = heapq.heappop(self._heap)
            if not self._live(item, at):
                continue
            if isinstance(item, Router):
                self.stats.router_expired += 1
                self._remove_router(item)
            else:
                if item.proto == "redirect":
                    self.stats.redirect_expired += 1
                else:
                    self.stats.ra_prefix_expired += 1
                self._remove(item)
