"""The router advertisement sender (protocols/ipv6/radv.py, RFC 4861 §6.2 with RFC 8106's
RDNSS) case by case with an explicit clock, and a host interface made a router's
(protocols/ipv6/host.py `become_router`): RS handed over, RAs ignored, the Router flag in NAs,
RAs sent from the link-local address.  What goes out is parsed by scapy."""
from __future__ import annotations

import random

import pytest
from scapy.layers.inet6 import (
    ICMPv6MLReport2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptRDNSS,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)

from protocols.icmpv6.nd import INFINITE_LIFETIME, RouterAdvertisement, RouterSolicitation
from protocols.ipv6.addr import ALL_NODES, int_to_ip6, ip6_to_int, solicited_node
from protocols.ipv6.radv import (
    MAX_INITIAL_RTR_ADVERT_INTERVAL,
    MAX_RA_DELAY_TIME,
    MIN_DELAY_BETWEEN_RAS,
    RadvConfig,
    RouterAdvertiser,
    prefix_option,
)

from .test_ipv6_host import PEER_MAC, ROUTER_LL, World, make, up

FD00 = ip6_to_int("fd00::")
DNS6 = ip6_to_int("fd00::3")
LL = ip6_to_int("fe80::1")


class EdgeRng(random.Random):
    """uniform(a, b) gives a point at `where` (0: a, 1: b) of the range: the RFC's bounds exactly."""

    def __init__(self, where: float) -> None:
        super().__init__(0)
        self.where = where

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.where


class Sent:
    def __init__(self, err: int = 0) -> None:
        self.ras: list[tuple[float, RouterAdvertisement]] = []
        self.err = err

    def __call__(self, ra: RouterAdvertisement, now: float) -> int:
        self.ras.append((now, ra))
        return self.err

    @property
    def times(self) -> list[float]:
        return [t for t, _ in self.ras]


def gateway_config(**kw: object) -> RadvConfig:
    return RadvConfig(prefixes=(prefix_option(FD00),), rdnss=(DNS6,), mtu=1500, **kw)  # type: ignore[arg-type]


def advertiser(where: float = 1.0, sent: Sent | None = None, **kw: object) -> tuple[RouterAdvertiser, Sent]:
    sent = sent or Sent()
    return RouterAdvertiser(gateway_config(**kw), sent, EdgeRng(where)), sent


def run_until(adv: RouterAdvertiser, until: float) -> None:
    """The timer service in small: poll each deadline in order up to `until`."""
    while (at := adv.poll_at()) is not None and at <= until:
        adv.poll(at)


def parsed(ra: RouterAdvertisement) -> ICMPv6ND_RA:
    """The RA on the wire, read back by scapy (not by our codec)."""
    raw = ra.to_repr().emit(LL, ALL_NODES)
    return IPv6(bytes(IPv6(src="fe80::1", dst="ff02::1", hlim=255, nh=58, plen=len(raw))) + raw)[ICMPv6ND_RA]


# --- §6.2.1: the variables and their defaults --------------------------------------------------
def test_defaults_follow_section_6_2_1() -> None:
    cfg = RadvConfig()
    assert cfg.max_interval == 600 and cfg.min_rtr_adv_interval == pytest.approx(198)
    assert cfg.router_lifetime == 1800 and cfg.rdnss_life == 1800        # 3 x Max (RFC 8106 §5.1)
    assert RadvConfig(max_interval=8).min_rtr_adv_interval == 8           # Max < 9: Min = Max
    assert RadvConfig(max_interval=4000 / 3).router_lifetime == 4000
    assert RadvConfig(max_interval=1800).router_lifetime == 5400


@pytest.mark.parametrize("kw", [
    {"max_interval": 3}, {"max_interval": 1801}, {"min_interval": 2.5}, {"min_interval": 451},
    {"default_lifetime": 100}, {"default_lifetime": 9001}, {"preference": 2}, {"cur_hop_limit": 256},
    {"mtu": 1279}, {"reachable_time": 3600001},
    {"prefixes": (prefix_option(FD00, valid=100, preferred=200),)},
    {"rdnss": tuple(range(1, 10))},
])
def test_out_of_range_variables_are_refused(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RadvConfig(**kw)  # type: ignore[arg-type]


def test_a_router_lifetime_of_zero_is_allowed() -> None:
    """§6.2.1: 0 says "not a default router" (the prefix and RDNSS still count)."""
    adv, sent = advertiser(default_lifetime=0)
    adv.start(0.0)
    run_until(adv, 0.0)
    assert sent.ras[0][1].router_lifetime == 0


# --- §6.2.3: what an RA carries -------------------------------------------------------------------
def test_the_advertisement_carries_prefix_rdnss_mtu_and_lifetimes() -> None:
    adv, _ = advertiser()
    ra = parsed(adv.advertisement())
    assert (ra.chlim, ra.M, ra.O, ra.prf, ra.routerlifetime, ra.reachabletime, ra.retranstimer) == \
        (64, 0, 0, 0, 1800, 0, 0)
    assert ra[ICMPv6NDOptMTU].mtu == 1500
    pio = ra[ICMPv6NDOptPrefixInfo]
    assert (pio.prefix, pio.prefixlen, pio.L, pio.A) == ("fd00::", 64, 1, 1)
    assert (pio.validlifetime, pio.preferredlifetime) == (2592000, 604800)
    rdnss = ra[ICMPv6NDOptRDNSS]
    assert rdnss.dns == ["fd00::3"] and rdnss.lifetime == 1800 and rdnss.len == 3


def test_no_mtu_option_unless_configured_and_infinite_rdnss() -> None:
    adv = RouterAdvertiser(RadvConfig(rdnss=(DNS6, DNS6 + 1), rdnss_lifetime=INFINITE_LIFETIME), Sent())
    ra = parsed(adv.advertisement())
    assert not ra.haslayer(ICMPv6NDOptMTU) and not ra.haslayer(ICMPv6NDOptPrefixInfo)
    assert ra[ICMPv6NDOptRDNSS].dns == ["fd00::3", "fd00::4"] and ra[ICMPv6NDOptRDNSS].lifetime == INFINITE_LIFETIME


# --- §6.2.4: unsolicited advertisements -----------------------------------------------------------
def test_first_advertisement_at_start_then_the_initial_ones_at_most_16_s_apart() -> None:
    adv, sent = advertiser(where=1.0)            # every random interval at its maximum: 600 s
    assert adv.poll_at() is None                 # nothing before start
    adv.start(10.0)
    assert adv.poll_at() == 10.0
    run_until(adv, 10.0 + 3 * 16 + 600)
    # MAX_INITIAL_RTR_ADVERTISEMENTS (3): the intervals after the first three are capped
    assert sent.times == [10.0, 26.0, 42.0, 58.0, 658.0]
    assert adv.stats.out_unsolicited == 5 and adv.stats.out_solicited == 0


def test_unsolicited_intervals_are_at_least_min_rtr_adv_interval() -> None:
    adv, sent = advertiser(where=0.0)            # every interval at its minimum: 198 s
    adv.start(0.0)
    run_until(adv, 1000.0)
    gaps = [b - a for a, b in zip(sent.times, sent.times[1:], strict=False)]
    # the initial cap wins over MinRtrAdvInterval (§6.2.4 "the timer SHOULD be set to" 16 s)
    assert gaps[:3] == [MAX_INITIAL_RTR_ADVERT_INTERVAL] * 3
    assert len(gaps) > 4 and all(g == pytest.approx(198) for g in gaps[3:])


def test_random_intervals_stay_within_min_and_max() -> None:
    sent = Sent()
    adv = RouterAdvertiser(gateway_config(max_interval=30, min_interval=10), sent, random.Random(7))
    adv.start(0.0)
    run_until(adv, 10000.0)
    gaps = [b - a for a, b in zip(sent.times, sent.times[1:], strict=False)]
    assert len(gaps) > 300
    assert all(10 <= g <= 16 for g in gaps[:3])
    assert all(10 <= g <= 30 for g in gaps) and max(gaps) > 25 and min(gaps) < 12   # spread, not fixed


def test_a_send_error_is_counted_and_the_schedule_goes_on() -> None:
    adv, sent = advertiser(sent=Sent(err=99))
    adv.start(0.0)
    run_until(adv, 40.0)
    assert len(sent.ras) == 3 and adv.stats.out_errors == 3 and adv.stats.out_unsolicited == 0


# --- §6.2.6: solicitations --------------------------------------------------------------------------
def test_a_solicitation_is_answered_within_max_ra_delay_time() -> None:
    adv, sent = advertiser(where=1.0)
    adv.start(0.0)
    run_until(adv, 100.0)                        # 0, 16, 32, 48: the next one is due at 648
    adv.solicited(LL, 100.0)
    assert adv.poll_at() == 100.0 + MAX_RA_DELAY_TIME
    run_until(adv, 101.0)
    assert sent.times[-1] == 100.5 and adv.stats.out_solicited == 1
    # §6.2.4: every multicast RA restarts the interval, from the solicited one (initial ones done)
    assert adv.poll_at() == 100.5 + 600


def test_a_solicitation_soon_after_an_advertisement_waits_min_delay_between_ras() -> None:
    adv, sent = advertiser(where=0.5)
    adv.start(0.0)
    run_until(adv, 0.0)                          # an RA at 0; the next unsolicited at 16
    adv.solicited(LL, 1.0)
    assert adv.poll_at() == 0.0 + MIN_DELAY_BETWEEN_RAS + 0.25
    run_until(adv, 4.0)
    assert sent.times == [0.0, 3.25] and adv.stats.out_solicited == 1


def test_an_advertisement_already_due_sooner_answers_the_solicitation() -> None:
    adv, sent = advertiser(where=1.0)
    adv.start(0.0)
    run_until(adv, 15.9)                         # the RA at 0 done; the next is due at 16
    adv.solicited(LL, 15.8)                      # 0.5 s of delay would be later: leave it
    assert adv.poll_at() == 16.0 and adv.stats.rs_coalesced == 1
    run_until(adv, 16.0)
    assert sent.times == [0.0, 16.0] and adv.stats.out_unsolicited == 2


def test_a_flood_of_solicitations_sends_one_advertisement_per_three_seconds() -> None:
    adv, sent = advertiser(where=1.0)
    adv.start(0.0)
    t = 0.0
    while t < 60.0:
        adv.solicited(0, t)                      # from :: too (§6.2.6 allows it)
        run_until(adv, t)
        t = round(t + 0.01, 2)
    run_until(adv, 60.0)
    gaps = [b - a for a, b in zip(sent.times, sent.times[1:], strict=False)]
    assert all(g >= MIN_DELAY_BETWEEN_RAS for g in gaps)
    assert len(sent.ras) <= 60 / MIN_DELAY_BETWEEN_RAS + 1
    assert adv.stats.rs_received == 6000 and adv.stats.rs_coalesced > 5900


def test_solicitations_before_start_are_only_counted() -> None:
    adv, sent = advertiser()
    adv.solicited(LL, 1.0)
    assert adv.poll_at() is None and not sent.ras and adv.stats.rs_received == 1


# --- §6.2.5: ceasing --------------------------------------------------------------------------------
def test_stop_sends_one_final_advertisement_with_router_lifetime_zero() -> None:
    adv, sent = advertiser()
    adv.start(0.0)
    run_until(adv, 0.0)
    adv.stop(5.0)
    adv.stop(6.0)
    assert sent.times == [0.0, 5.0] and sent.ras[-1][1].router_lifetime == 0
    assert parsed(sent.ras[-1][1])[ICMPv6NDOptPrefixInfo].prefix == "fd00::"   # §6.2.5: the rest unchanged
    assert adv.poll_at() is None and adv.stats.out_final == 1
    adv.solicited(LL, 7.0)
    assert adv.poll_at() is None


# --- the host's interface as a router's (protocols/ipv6/host.py) ----------------------------------------
def router(w: World) -> tuple[list[tuple[int, float]], list[float]]:
    got: list[tuple[int, float]] = []
    ready: list[float] = []
    assert w.host.become_router(w.ifp, lambda msg, src, now: got.append((src, now)), ready.append, w.now) == 0
    return got, ready


def test_a_router_interface_waits_for_its_link_local_address_and_never_solicits() -> None:
    w = make()
    got, ready = router(w)
    assert ready == []                           # the link-local address is still tentative
    assert w.host.send_router_advertisement(w.ifp, RouterAdvertisement(), ALL_NODES, w.now) != 0
    assert w.host.stats.ra_no_source == 1
    assert (b"\x33\x33\x00\x00\x00\x02", True) in w.filters       # all-routers joined (ff02::2)
    ll = up(w)
    assert len(ready) == 1
    w.run_until(w.now + 20)
    sent = w.packets()
    assert not [p for p, _ in sent if p.haslayer(ICMPv6ND_RS)] and w.host.stats.rs_sent == 0
    groups = {r.dst for p, _ in sent if p.haslayer(ICMPv6MLReport2) for r in p[ICMPv6MLReport2].records}
    assert "ff02::2" in groups
    assert ll.startswith("fe80:")


def test_a_router_interface_sends_ras_from_its_link_local_address_with_its_lladdr() -> None:
    w = make()
    router(w)
    ll = up(w)
    w.packets()
    adv = RouterAdvertiser(gateway_config(),
                           lambda ra, now: w.host.send_router_advertisement(w.ifp, ra, ALL_NODES, now))
    adv.start(w.now)
    adv.poll(w.now)
    (pkt, where), = w.packets()
    assert (pkt.src, pkt.dst, pkt.hlim, where) == (ll, "ff02::1", 255, ALL_NODES)
    ra = pkt[ICMPv6ND_RA]
    assert ra[ICMPv6NDOptSrcLLAddr].lladdr == "02:00:00:00:00:01"
    assert ra[ICMPv6NDOptPrefixInfo].prefix == "fd00::" and ra[ICMPv6NDOptRDNSS].dns == ["fd00::3"]
    assert adv.stats.out_unsolicited == 1 and w.host.stats.ra_sent == 1


def test_a_router_interface_takes_solicitations_and_learns_the_sender() -> None:
    w = make()
    got, _ = router(w)
    up(w)
    w.receive(IPv6(src="fe80::99", dst="ff02::2", hlim=255) / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC))
    w.receive(IPv6(src="::", dst="ff02::2", hlim=255) / ICMPv6ND_RS())
    assert got == [(ip6_to_int("fe80::99"), w.now), (0, w.now)] and w.host.stats.rs_to_router == 2
    assert w.state.nd is not None and w.state.nd.state(ip6_to_int("fe80::99")) == "STALE"   # §6.2.6
    # §6.1.1: hop limit not 255 -- dropped by the ICMPv6 core before the router sees it
    w.receive(IPv6(src="fe80::99", dst="ff02::2", hlim=64) / ICMPv6ND_RS())
    assert len(got) == 2
    w.host.cease_router(w.ifp, w.now)
    w.receive(IPv6(src="fe80::99", dst="ff02::2", hlim=255) / ICMPv6ND_RS())
    assert len(got) == 2 and (b"\x33\x33\x00\x00\x00\x02", False) in w.filters


def test_a_router_interface_ignores_router_advertisements() -> None:
    """Linux ignores accept_ra 1 on a forwarding interface: a guest's (rogue) RA changes nothing."""
    w = make()
    router(w)
    up(w)
    w.receive(IPv6(src=ROUTER_LL, dst="ff02::1", hlim=255) / ICMPv6ND_RA(routerlifetime=1800)
              / ICMPv6NDOptPrefixInfo(prefix="2001:db8:5::", prefixlen=64, L=1, A=1))
    assert w.host.stats.ra_ignored == 1 and w.host.routes.routers() == []
    assert not [a for a in w.addresses() if a.startswith("2001:db8:5:")]


def test_a_router_interface_sets_the_router_flag_in_its_advertisements() -> None:
    """§7.2.4: else a host that probes its default router drops it (§7.2.5, Linux rt6_clean_tohost)."""
    w = make()
    router(w)
    ll = up(w)
    w.packets()
    w.receive(IPv6(src="fe80::99", dst=int_to_ip6(solicited_node(ip6_to_int(ll))), hlim=255)
              / ICMPv6ND_NS(tgt=ll) / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC))
    (na, _), = w.packets()
    assert na[ICMPv6ND_NA].R == 1 and na[ICMPv6ND_NA].S == 1
    assert na[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:00:01"


def test_become_router_after_the_link_local_address_is_ready_starts_at_once() -> None:
    w = make()
    up(w)
    _, ready = router(w)
    assert ready == [w.now]
    assert RouterSolicitation().TYPE == 133     # the message type the hook is typed with
