"""The IPv6 neighbor cache (protocols/ipv6/nd.py), RFC 4861 case by case with an explicit
clock: address resolution (§7.2.2), NA processing (§7.2.5), the unsolicited-information
rows of Appendix C (NS, RA, Redirect), NUD (§7.3.3), ReachableTime (§6.3.2), the bounds
(queues, entries) and the TICK rule of protocols/timing.py."""
from __future__ import annotations

import errno
import math
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ndd.pktbuf import PacketBuffer
from protocols.ipv6.addr import multicast_mac, solicited_node
from protocols.ipv6.nd import (
    DELAY,
    ICMPV6_ADDR_UNREACH,
    INCOMPLETE,
    PROBE,
    REACHABLE,
    STALE,
    STATES,
    NdConfig,
    NdFailure,
    NeighborCache,
    NsRequest,
)

US = 0x2001_0DB8_0000_0000_0000_0000_0000_0001
PEER = 0x2001_0DB8_0000_0000_0000_0000_0012_3456
OTHER = 0xFE80_0000_0000_0000_0000_0000_00AB_CDEF
PEER_MAC = b"\x02\x00\x00\x00\x00\x02"
NEW_MAC = b"\x02\x00\x00\x00\x00\x99"
OTHER_MAC = b"\x02\x00\x00\x00\x00\x03"


class EdgeRng(random.Random):
    """uniform() answers one end of its range: the randomisation bounds exactly."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high
        self.calls = 0

    def uniform(self, a: float, b: float) -> float:
        self.calls += 1
        return b if self.high else a


@dataclass
class Rig:
    cache: NeighborCache
    ns: list[NsRequest] = field(default_factory=list)
    out: list[tuple[PacketBuffer, bytes]] = field(default_factory=list)
    failed: list[NdFailure] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    gone: list[tuple[int, bool]] = field(default_factory=list)
    kicks: int = 0


def make_rig(rng: random.Random | None = None, **cfg: float) -> Rig:
    rig = Rig(NeighborCache())
    rig.cache = NeighborCache(send_ns=rig.ns.append, transmit=lambda p, m: rig.out.append((p, m)),
                              unreachable=rig.failed.append,
                              router_lost=lambda addr, now: rig.lost.append(addr),
                              neighbor_failed=lambda addr, r, now: rig.gone.append((addr, r)),
                              config=NdConfig(**cfg),  # type: ignore[arg-type]
                              rng=rng or EdgeRng(high=False))   # ReachableTime 15 s

    def kick(*at: float) -> None:
        rig.kicks += 1

    rig.cache.kick = kick
    return rig


@pytest.fixture
def rig() -> Rig:
    return make_rig()


def pkt(tag: bytes = b"x") -> PacketBuffer:
    return PacketBuffer.from_payload(tag)


def resolved(rig: Rig, state: str, addr: int = PEER, now: float = 0.0, router: bool = False) -> None:
    """Bring `addr` to `state` the RFC's way, at `now` (INCOMPLETE: one packet queued)."""
    c = rig.cache
    if state == INCOMPLETE:
        c.resolve(addr, pkt(), now)
    elif state == STALE:
        c.input_ns(addr, PEER_MAC, now)
        if router:
            c.input_ra_source(addr, PEER_MAC, now)
    else:
        c.resolve(addr, pkt(), now)
        c.input_na(addr, PEER_MAC, router, True, True, now)
        if state == DELAY:
            c.poll(now + c.reachable_time)                  # -> STALE
            c.resolve(addr, pkt(), now + c.reachable_time)  # -> DELAY
        elif state == PROBE:
            c.poll(now + c.reachable_time)
            c.resolve(addr, pkt(), now + c.reachable_time)
            c.poll(now + c.reachable_time + 5.0)            # -> PROBE
    assert c.state(addr) == state
    rig.ns.clear()
    rig.out.clear()


def check_invariants(c: NeighborCache) -> None:
    assert len(c.entries) <= c.config.max_entries
    assert sum(len(c._by_state[s]) for s in STATES) == len(c.entries)
    for s in STATES:
        assert all(e.state == s and c.entries[a] is e for a, e in c._by_state[s].items())
    assert c.queued_bytes == sum(e.queued for e in c.entries.values()) <= c.config.queue_bytes_total
    assert all(e.queued <= c.config.queue_bytes for e in c.entries.values())
    assert all(e.heap_at is not None and e.heap_at <= e.deadline for e in c.entries.values())


# --- addresses ----------------------------------------------------------------------------------------
def test_solicited_node_address_and_its_mac() -> None:
    # RFC 4291 §2.7.1: ff02::1:ff + low 24 bits; RFC 2464 §7: 33:33 + low 32 bits
    assert solicited_node(PEER) == 0xFF02_0000_0000_0000_0000_0001_FF12_3456
    assert multicast_mac(solicited_node(PEER)) == b"\x33\x33\xff\x12\x34\x56"


# --- address resolution (§7.2.2) -------------------------------------------------------------------
def test_first_packet_creates_incomplete_and_multicasts_ns(rig: Rig) -> None:
    assert rig.cache.resolve(PEER, pkt(b"1"), 10.0, src=US) is None
    assert rig.cache.resolve(PEER, pkt(b"2"), 10.2) is None
    group = solicited_node(PEER)
    assert rig.ns == [NsRequest(PEER, group, multicast_mac(group), True, US, True)]
    assert rig.cache.state(PEER) == INCOMPLETE and rig.cache.poll_at() == 11.0
    assert rig.kicks >= 1 and rig.cache.stats.resolutions == 1 and rig.out == []


def test_retransmits_every_retrans_timer_then_fails_every_queued_packet(rig: Rig) -> None:
    queued = [pkt(b"a"), pkt(b"b")]
    for p in queued:
        rig.cache.resolve(PEER, p, 0.0)
    for t in (0.5, 0.999, 1.0, 1.5, 2.0, 2.999):
        rig.cache.poll(t)
    assert len(rig.ns) == 3 and all(r.multicast for r in rig.ns) and rig.failed == []
    assert rig.cache.poll_at() == 3.0
    rig.cache.poll(3.0)                                     # MAX_MULTICAST_SOLICIT (3) sent, no answer
    assert len(rig.ns) == 3
    assert rig.failed == [NdFailure(p, PEER, errno.EHOSTUNREACH, ICMPV6_ADDR_UNREACH, "failed") for p in queued]
    assert rig.gone == [(PEER, False)] and rig.cache.state(PEER) is None and rig.cache.poll_at() is None
    s = rig.cache.stats
    assert s.failures == 1 and s.unreachable_pkts == 2 and s.ns_tx_multicast == 3
    assert rig.cache.queued_bytes == 0


def test_ra_retrans_timer_spaces_the_solicitations() -> None:
    rig = make_rig()
    rig.cache.set_retrans_timer(0.25)
    rig.cache.resolve(PEER, pkt(), 0.0)
    assert rig.cache.poll_at() == 0.25
    rig.cache.poll(0.25)
    assert rig.cache.poll_at() == 0.5 and len(rig.ns) == 2
    rig.cache.set_retrans_timer(0.0)                        # clamped to Linux's 10 ms floor
    assert rig.cache.retrans_timer == 0.01
    rig.cache.set_retrans_timer(2**32 / 1000)               # a 49-day RA value: clamped to an hour
    assert rig.cache.retrans_timer == 3600.0


def test_solicited_na_resolves_and_sends_queue_in_order(rig: Rig) -> None:
    p1, p2 = pkt(b"1"), pkt(b"2")
    rig.cache.resolve(PEER, p1, 0.0)
    rig.cache.resolve(PEER, p2, 0.1)
    rig.cache.input_na(PEER, PEER_MAC, True, True, False, 0.5)
    assert rig.out == [(p1, PEER_MAC), (p2, PEER_MAC)]
    assert rig.cache.table() == [(PEER, REACHABLE, PEER_MAC, True)]          # IsRouter from R
    assert rig.cache.poll_at() == 0.5 + rig.cache.reachable_time
    assert rig.cache.resolve(PEER, pkt(b"3"), 0.6) == PEER_MAC and len(rig.out) == 2
    assert rig.cache.stats.resolved == 1 and rig.cache.queued_bytes == 0


def test_unsolicited_na_resolves_incomplete_to_stale_and_sending_makes_it_delay(rig: Rig) -> None:
    # Appendix C: INCOMPLETE + NA S=0 -> STALE, queued packets sent; sending in STALE -> DELAY
    p = pkt()
    rig.cache.resolve(PEER, p, 0.0)
    rig.cache.input_na(PEER, PEER_MAC, False, False, True, 0.5)
    assert rig.out == [(p, PEER_MAC)]
    assert rig.cache.state(PEER) == DELAY and rig.cache.poll_at() == 5.5


def test_na_without_target_lladdr_leaves_incomplete(rig: Rig) -> None:
    rig.cache.resolve(PEER, pkt(), 0.0)
    rig.cache.input_na(PEER, None, False, True, True, 0.5)
    assert rig.cache.state(PEER) == INCOMPLETE and rig.out == []
    assert rig.cache.stats.na_rx_no_tlla == 1


def test_na_for_an_unknown_address_creates_nothing(rig: Rig) -> None:
    rig.cache.input_na(PEER, PEER_MAC, False, False, True, 0.0)
    assert rig.cache.table() == [] and rig.cache.stats.na_rx_no_entry == 1


@pytest.mark.parametrize("mac", [b"\x33\x33\x00\x00\x00\x01", bytes(6), b"\x02\x00\x00"])
def test_bad_link_layer_addresses_are_counted_not_learned(rig: Rig, mac: bytes) -> None:
    rig.cache.resolve(PEER, pkt(), 0.0)
    rig.cache.input_na(PEER, mac, False, True, True, 0.1)
    rig.cache.input_ns(OTHER, mac, 0.1)
    rig.cache.input_ra_source(OTHER, mac, 0.1)
    assert rig.cache.table() == [(PEER, INCOMPLETE, b"", False)]
    assert rig.cache.stats.bad_lladdr == 3


# --- NA on a resolved entry (§7.2.5, Appendix C) ------------------------------------------------------
RESOLVED = [REACHABLE, STALE, DELAY, PROBE]


@pytest.mark.parametrize("state", RESOLVED)
def test_na_solicited_same_lladdr_makes_reachable(rig: Rig, state: str) -> None:
    resolved(rig, state, now=100.0)
    rig.cache.input_na(PEER, PEER_MAC, False, True, False, 200.0)
    assert rig.cache.table() == [(PEER, REACHABLE, PEER_MAC, False)]
    assert rig.cache.entries[PEER].deadline == 200.0 + rig.cache.reachable_time


@pytest.mark.parametrize("state", RESOLVED)
@pytest.mark.parametrize("solicited", [False, True])
def test_na_override_without_tlla_only_updates_isrouter(rig: Rig, state: str, solicited: bool) -> None:
    resolved(rig, state, now=100.0)
    rig.cache.input_na(PEER, None, True, solicited, True, 200.0)
    assert rig.cache.table() == [(PEER, REACHABLE if solicited else state, PEER_MAC, True)]


@pytest.mark.parametrize("state", RESOLVED)
def test_na_solicited_override_records_new_lladdr_reachable(rig: Rig, state: str) -> None:
    resolved(rig, state, now=100.0)
    rig.cache.input_na(PEER, NEW_MAC, False, True, True, 200.0)
    assert rig.cache.table() == [(PEER, REACHABLE, NEW_MAC, False)]
    assert rig.cache.resolve(PEER, pkt(), 200.5) == NEW_MAC


@pytest.mark.parametrize("solicited", [False, True])
def test_na_no_override_different_lladdr_makes_reachable_stale_only(rig: Rig, solicited: bool) -> None:
    # §7.2.5 I.a (Linux's WEAK_OVERRIDE too): REACHABLE -> STALE, the cached address kept.
    # Appendix C lists the S=0 row as "unchanged"; the normative text and Linux say STALE.
    resolved(rig, REACHABLE, now=100.0)
    rig.cache.input_na(PEER, NEW_MAC, True, solicited, False, 101.0)
    assert rig.cache.table() == [(PEER, STALE, PEER_MAC, False)]
    assert rig.cache.stats.na_rx_ignored == 1


@pytest.mark.parametrize("state", [STALE, DELAY, PROBE])
@pytest.mark.parametrize("solicited", [False, True])
def test_na_no_override_different_lladdr_is_ignored_elsewhere(rig: Rig, state: str, solicited: bool) -> None:
    resolved(rig, state, now=100.0)
    before = rig.cache.entries[PEER].deadline
    rig.cache.input_na(PEER, NEW_MAC, True, solicited, False, 106.5)
    assert rig.cache.table() == [(PEER, state, PEER_MAC, False)]       # not even IsRouter
    assert rig.cache.entries[PEER].deadline == before


@pytest.mark.parametrize("state", RESOLVED)
@pytest.mark.parametrize("override", [False, True])
def test_unsolicited_na_same_lladdr_changes_nothing(rig: Rig, state: str, override: bool) -> None:
    resolved(rig, state, now=100.0)
    rig.cache.input_na(PEER, PEER_MAC, False, False, override, 106.5)
    assert rig.cache.table() == [(PEER, state, PEER_MAC, False)]


@pytest.mark.parametrize("state", RESOLVED)
def test_unsolicited_na_override_new_lladdr_is_recorded_stale(rig: Rig, state: str) -> None:
    # a neighbour announcing its new address (§7.2.6): O=1 wins, the entry is STALE so the
    # next packet goes to the new address and NUD checks it
    resolved(rig, state, now=100.0)
    rig.cache.input_na(PEER, NEW_MAC, False, False, True, 106.5)
    assert rig.cache.table() == [(PEER, STALE, NEW_MAC, False)]
    assert rig.cache.stats.na_unsolicited_accepted == 1
    assert rig.cache.resolve(PEER, pkt(), 107.0) == NEW_MAC and rig.cache.state(PEER) == DELAY


def test_incomplete_router_answering_as_host_is_reported(rig: Rig) -> None:
    rig.cache.resolve(PEER, pkt(), 0.0)
    rig.cache.input_ra_source(PEER, None, 0.1)                        # IsRouter, no address yet
    rig.cache.input_na(PEER, PEER_MAC, False, True, False, 0.2)
    assert rig.lost == [PEER] and rig.cache.table() == [(PEER, REACHABLE, PEER_MAC, False)]


def test_isrouter_cleared_by_na_reports_router_lost(rig: Rig) -> None:
    resolved(rig, REACHABLE, router=True, now=0.0)
    rig.cache.input_na(PEER, PEER_MAC, True, False, True, 1.0)        # still a router: nothing
    assert rig.lost == []
    rig.cache.input_na(PEER, PEER_MAC, False, False, True, 2.0)
    assert rig.lost == [PEER] and rig.cache.stats.routers_lost == 1
    assert rig.cache.table() == [(PEER, REACHABLE, PEER_MAC, False)]


# --- NS, RA, Redirect (the second table of Appendix C) -------------------------------------------------
def test_ns_with_slla_creates_stale_entry_not_router(rig: Rig) -> None:
    rig.cache.input_ns(PEER, PEER_MAC, 0.0)
    assert rig.cache.table() == [(PEER, STALE, PEER_MAC, False)]
    assert rig.cache.poll_at() == 60.0                                # gc_staletime
    rig.cache.poll(59.9)
    assert rig.cache.state(PEER) == STALE
    rig.cache.poll(60.0)
    assert rig.cache.table() == [] and rig.cache.stats.gc_stale == 1


def test_ns_without_slla_or_from_unspecified_teaches_nothing(rig: Rig) -> None:
    rig.cache.input_ns(PEER, None, 0.0)
    rig.cache.input_ns(0, PEER_MAC, 0.0)                              # DAD
    rig.cache.resolve(OTHER, pkt(), 0.0)
    rig.cache.input_ns(OTHER, None, 0.1)                              # INCOMPLETE unchanged
    assert rig.cache.table() == [(OTHER, INCOMPLETE, b"", False)]
    assert rig.cache.stats.ns_rx_no_lladdr == 2


def test_ns_resolves_incomplete_and_sends_queue(rig: Rig) -> None:
    p = pkt()
    rig.cache.resolve(PEER, p, 0.0)
    rig.cache.input_ns(PEER, PEER_MAC, 0.4)
    assert rig.out == [(p, PEER_MAC)] and rig.cache.state(PEER) == DELAY   # STALE, then sent
    assert rig.cache.stats.resolved == 1


@pytest.mark.parametrize("state", RESOLVED)
def test_ns_with_different_slla_updates_and_makes_stale(rig: Rig, state: str) -> None:
    resolved(rig, state, now=100.0)
    rig.cache.input_ns(PEER, NEW_MAC, 106.5)
    assert rig.cache.table() == [(PEER, STALE, NEW_MAC, False)]
    rig.cache.input_ns(PEER, NEW_MAC, 107.0)                          # same again: unchanged
    assert rig.cache.state(PEER) == STALE


@pytest.mark.parametrize("state", RESOLVED)
def test_ns_with_same_slla_changes_nothing(rig: Rig, state: str) -> None:
    resolved(rig, state, now=100.0)
    rig.cache.input_ns(PEER, PEER_MAC, 106.5)
    assert rig.cache.table() == [(PEER, state, PEER_MAC, False)]


def test_ra_source_sets_isrouter_and_learns_stale(rig: Rig) -> None:
    rig.cache.input_ra_source(PEER, PEER_MAC, 0.0)
    assert rig.cache.table() == [(PEER, STALE, PEER_MAC, True)]
    rig.cache.input_ra_source(PEER, NEW_MAC, 1.0)
    assert rig.cache.table() == [(PEER, STALE, NEW_MAC, True)]


def test_ra_without_slla_sets_isrouter_on_an_existing_entry_only(rig: Rig) -> None:
    resolved(rig, REACHABLE, now=0.0)
    rig.cache.input_ra_source(PEER, None, 1.0)
    rig.cache.input_ra_source(OTHER, None, 1.0)
    assert rig.cache.table() == [(PEER, REACHABLE, PEER_MAC, True)]


def test_ra_resolves_incomplete(rig: Rig) -> None:
    p = pkt()
    rig.cache.resolve(PEER, p, 0.0)
    rig.cache.input_ra_source(PEER, PEER_MAC, 0.5)
    assert rig.out == [(p, PEER_MAC)] and rig.cache.table() == [(PEER, DELAY, PEER_MAC, True)]


def test_redirect_target_router_or_on_link(rig: Rig) -> None:
    # §8.3: target != destination: the target is a router; == destination: new entries are
    # not routers and existing ones keep their flag
    rig.cache.input_redirect_target(PEER, OTHER, PEER_MAC, 0.0)
    assert rig.cache.table() == [(PEER, STALE, PEER_MAC, True)]
    rig.cache.input_redirect_target(PEER, PEER, PEER_MAC, 1.0)
    assert rig.cache.table() == [(PEER, STALE, PEER_MAC, True)]
    rig.cache.input_redirect_target(OTHER, OTHER, OTHER_MAC, 1.0)
    assert rig.cache.entries[OTHER].is_router is False


# --- NUD (§7.3) ---------------------------------------------------------------------------------------
def test_reachable_goes_stale_after_reachable_time(rig: Rig) -> None:
    resolved(rig, REACHABLE, now=0.0)
    assert rig.cache.reachable_time == 15.0 and rig.cache.poll_at() == 15.0
    rig.cache.poll(14.999)
    assert rig.cache.state(PEER) == REACHABLE
    rig.cache.poll(15.0)
    assert rig.cache.state(PEER) == STALE and rig.cache.poll_at() == 75.0 and rig.ns == []


def test_stale_send_delay_probe_then_discard(rig: Rig) -> None:
    resolved(rig, STALE, now=0.0, router=True)
    assert rig.cache.resolve(PEER, pkt(), 10.0, src=US) == PEER_MAC
    assert rig.cache.state(PEER) == DELAY and rig.cache.poll_at() == 15.0 and rig.ns == []
    assert rig.cache.resolve(PEER, pkt(), 11.0) == PEER_MAC                 # DELAY: sends, no change
    rig.cache.poll(15.0)
    assert rig.cache.state(PEER) == PROBE
    assert rig.ns == [NsRequest(PEER, PEER, PEER_MAC, False, US, True)]      # unicast to the cached MAC
    assert rig.cache.resolve(PEER, pkt(), 15.5) == PEER_MAC                 # PROBE still sends
    rig.cache.poll(16.0)
    rig.cache.poll(17.0)
    assert len(rig.ns) == 3 and rig.cache.state(PEER) == PROBE
    rig.cache.poll(17.999)
    assert rig.gone == []
    rig.cache.poll(18.0)                                                    # MAX_UNICAST_SOLICIT: gone
    assert rig.cache.table() == [] and rig.gone == [(PEER, True)]
    assert rig.cache.stats.nud_failures == 1 and rig.cache.stats.ns_tx_unicast == 3
    assert rig.failed == [] and rig.cache.poll_at() is None
    assert rig.cache.resolve(PEER, pkt(), 18.5) is None                     # a fresh resolution
    assert rig.cache.state(PEER) == INCOMPLETE and rig.ns[-1].multicast


@pytest.mark.parametrize("state", RESOLVED)
def test_upper_layer_confirmation_makes_reachable(rig: Rig, state: str) -> None:
    resolved(rig, state, now=100.0)
    rig.cache.confirm_reachable(PEER, 106.5)
    assert rig.cache.state(PEER) == REACHABLE
    assert rig.cache.poll_at() == 106.5 + rig.cache.reachable_time
    for t in (107.0, 110.0, 121.49):                                        # the old timers are void
        rig.cache.poll(t)
    assert rig.cache.state(PEER) == REACHABLE and rig.ns == []
    rig.cache.poll(121.5)
    assert rig.cache.state(PEER) == STALE


def test_confirmation_of_incomplete_or_unknown_does_nothing(rig: Rig) -> None:
    rig.cache.resolve(PEER, pkt(), 0.0)
    rig.cache.confirm_reachable(PEER, 0.1)
    rig.cache.confirm_reachable(OTHER, 0.1)
    assert rig.cache.table() == [(PEER, INCOMPLETE, b"", False)]
    assert rig.cache.stats.upper_confirmations == 0


def test_delay_confirmed_never_probes(rig: Rig) -> None:
    resolved(rig, DELAY, now=0.0)
    rig.cache.confirm_reachable(PEER, 16.0)
    rig.cache.poll(20.0)                                                    # the delay timer's time
    assert rig.cache.state(PEER) == REACHABLE and rig.ns == []


def test_reachable_expired_but_not_yet_polled_is_treated_as_stale(rig: Rig) -> None:
    resolved(rig, REACHABLE, now=0.0)
    assert rig.cache.resolve(PEER, pkt(), 20.0) == PEER_MAC
    assert rig.cache.state(PEER) == DELAY and rig.cache.poll_at() == 25.0


def test_confirmations_do_not_grow_the_timer_heap(rig: Rig) -> None:
    resolved(rig, REACHABLE, now=0.0)
    for i in range(10000):
        rig.cache.confirm_reachable(PEER, i * 0.001)
    assert len(rig.cache._heap) == 1


def test_state_flapping_without_polls_keeps_the_heap_bounded(rig: Rig) -> None:
    # NA S=1 -> REACHABLE, NA S=0 O=1 new address -> STALE, a packet -> DELAY (an earlier
    # deadline: a push), again and again between two polls
    resolved(rig, REACHABLE, now=0.0)
    macs = [PEER_MAC, NEW_MAC]
    for i in range(5000):
        rig.cache.input_na(PEER, macs[i % 2], False, False, True, 1.0)
        rig.cache.resolve(PEER, pkt(), 1.0)
        rig.cache.input_na(PEER, None, False, True, False, 1.0)
    assert len(rig.cache._heap) <= 2 * len(rig.cache.entries) + 65
    check_invariants(rig.cache)


# --- ReachableTime (§6.3.2) ----------------------------------------------------------------------------
@pytest.mark.parametrize("high", [False, True])
def test_reachable_time_bounds(high: bool) -> None:
    rig = make_rig(EdgeRng(high))
    assert rig.cache.reachable_time == (45.0 if high else 15.0)


def test_reachable_time_is_uniform_within_half_and_one_and_a_half() -> None:
    values = [NeighborCache(rng=random.Random(seed)).reachable_time for seed in range(300)]
    assert all(15.0 <= v <= 45.0 for v in values)
    assert min(values) < 18.0 and max(values) > 42.0 and len(set(values)) == 300


def test_reachable_time_rerandomized_on_new_base_and_periodically() -> None:
    rng = EdgeRng(high=False)
    rig = make_rig(rng, rerandomize_interval=300.0)
    c = rig.cache
    assert rng.calls == 1
    c.set_base_reachable_time(30.0, 0.0)                  # unchanged: no new draw
    assert rng.calls == 1
    c.set_base_reachable_time(10.0, 0.0)
    assert rng.calls == 2 and c.reachable_time == 5.0
    resolved(rig, REACHABLE, now=100.0)
    assert c.entries[PEER].deadline == 105.0 and rng.calls == 2
    rng.high = True
    c.confirm_reachable(PEER, 299.0)
    assert rng.calls == 2 and c.entries[PEER].deadline == 304.0
    c.confirm_reachable(PEER, 300.0)                      # the interval is over: a new draw
    assert rng.calls == 3 and c.reachable_time == 15.0 and c.entries[PEER].deadline == 315.0
    c.set_base_reachable_time(0.0, 400.0)                 # Linux's 100 ms floor
    assert c.base_reachable_time == 0.1
    c.set_base_reachable_time(1e9, 400.0)                 # MAX_REACHABLE_TIME
    assert c.base_reachable_time == 3600.0


# --- bounds ----------------------------------------------------------------------------------------------
def test_per_entry_queue_drops_oldest_by_bytes() -> None:
    rig = make_rig(queue_bytes=3 * (100 + 256))
    pkts = [pkt(bytes([i]) * 100) for i in range(5)]
    for p in pkts:
        rig.cache.resolve(PEER, p, 0.0)
    assert rig.cache.stats.queue_drops == 2
    rig.cache.input_na(PEER, PEER_MAC, False, True, True, 0.1)
    assert [p for p, _ in rig.out] == pkts[2:]


def test_default_queue_holds_a_whole_fragmented_datagram() -> None:
    rig = make_rig()
    frags = [pkt(bytes(1280)) for _ in range(50)]                   # 64 KiB in 1280-byte fragments
    for p in frags:
        rig.cache.resolve(PEER, p, 0.0)
    rig.cache.input_na(PEER, PEER_MAC, False, True, True, 0.1)
    assert rig.cache.stats.queue_drops == 0 and len(rig.out) == 50


def test_total_queue_bound_drops_the_oldest_packet_of_any_entry() -> None:
    cost = 100 + 256
    rig = make_rig(queue_bytes_total=4 * cost)
    a = [pkt(b"a" * 100) for _ in range(2)]
    b = [pkt(b"b" * 100) for _ in range(3)]
    rig.cache.resolve(PEER, a[0], 0.0)
    rig.cache.resolve(OTHER, b[0], 0.0)
    rig.cache.resolve(PEER, a[1], 0.0)
    rig.cache.resolve(OTHER, b[1], 0.0)
    rig.cache.resolve(OTHER, b[2], 0.0)                   # over: a[0], the oldest overall, goes
    assert rig.cache.stats.queue_drops == 1 and rig.cache.queued_bytes == 4 * cost
    rig.cache.input_na(PEER, PEER_MAC, False, True, True, 0.1)
    rig.cache.input_na(OTHER, OTHER_MAC, False, True, True, 0.1)
    assert rig.out == [(a[1], PEER_MAC)] + [(p, OTHER_MAC) for p in b]
    check_invariants(rig.cache)


def test_sent_packets_do_not_pile_up_in_the_global_queue() -> None:
    rig = make_rig()
    for i in range(2000):
        rig.cache.resolve(PEER + i, pkt(), 0.0)
        rig.cache.input_na(PEER + i, PEER_MAC, False, True, True, 0.0)
    assert len(rig.cache._held) <= 64 and rig.cache.queued_bytes == 0


def test_full_table_evicts_stale_first_then_doubtful_then_reachable() -> None:
    rig = make_rig(max_entries=4, max_incomplete=100)
    c = rig.cache
    resolved(rig, PROBE, PEER + 4, now=0.0)
    resolved(rig, DELAY, PEER + 2, now=0.0)
    resolved(rig, REACHABLE, PEER + 1, now=20.5)
    resolved(rig, STALE, PEER + 3, now=20.5)
    assert [c.state(PEER + i) for i in (1, 2, 3, 4)] == [REACHABLE, DELAY, STALE, PROBE]
    for i, victim in enumerate((PEER + 3, PEER + 4, PEER + 2, PEER + 1)):
        c.resolve(OTHER + i, pkt(), 20.6)                 # new resolutions push the old ones out
        assert victim not in c.entries and len(c.entries) == 4
        check_invariants(c)
    assert c.stats.evictions == 4 and rig.failed == []


def test_incomplete_entries_with_queues_are_the_last_to_go() -> None:
    rig = make_rig(max_entries=3, max_incomplete=10)
    c = rig.cache
    resolved(rig, REACHABLE, PEER, now=0.0)
    c.resolve(OTHER, pkt(), 1.0)
    c.resolve(OTHER + 1, pkt(), 1.0)
    c.resolve(OTHER + 2, pkt(), 1.0)                      # full: the resolved entry goes first
    assert set(c.entries) == {OTHER, OTHER + 1, OTHER + 2} and rig.failed == []
    held = pkt(b"new")
    c.resolve(OTHER + 3, held, 1.0)                       # only INCOMPLETE left: the oldest goes
    assert set(c.entries) == {OTHER + 1, OTHER + 2, OTHER + 3}
    assert [(f.dst, f.errno, f.icmp_code, f.cause) for f in rig.failed] == [
        (OTHER, errno.EHOSTUNREACH, None, "evicted")]
    assert c.stats.evictions == 2


def test_incomplete_cap_protects_resolved_neighbours_from_a_flood() -> None:
    # RFC 6583: packets to 10 000 unresolvable on-link addresses (a scan, or replies to
    # spoofed sources) churn through max_incomplete entries; the working neighbours stay
    rig = make_rig(max_entries=64, max_incomplete=16)
    c = rig.cache
    for i in range(40):
        resolved(rig, REACHABLE, PEER + i, now=0.0)
    for i in range(10000):
        c.resolve(OTHER + i, pkt(), 1.0)
    assert all(c.state(PEER + i) == REACHABLE for i in range(40))
    assert len(c._by_state[INCOMPLETE]) == 16 and len(c.entries) == 56
    assert c.stats.incomplete_evictions == 10000 - 16 and c.stats.evictions == 0
    assert len(rig.failed) == 10000 - 16 and all(f.cause == "evicted" for f in rig.failed)
    assert c.queued_bytes == 16 * (1 + 256) and len(c._held) <= 2 * 16 + 64
    check_invariants(c)


def test_ns_flood_keeps_the_table_bounded() -> None:
    rig = make_rig(max_entries=100)
    for i in range(5000):
        rig.cache.input_ns(OTHER + i, OTHER_MAC, i * 0.001)
    assert len(rig.cache.entries) == 100 and rig.cache.stats.evictions == 4900
    check_invariants(rig.cache)


def test_flush_fails_waiting_packets() -> None:
    rig = make_rig()
    p = pkt()
    rig.cache.resolve(PEER, p, 0.0)
    resolved(rig, REACHABLE, OTHER, now=0.0)
    rig.cache.flush()
    assert rig.failed == [NdFailure(p, PEER, errno.EHOSTUNREACH, None, "flushed")]
    assert rig.cache.table() == [] and rig.cache.poll_at() is None and rig.cache.queued_bytes == 0


def test_remove_one_neighbour() -> None:
    rig = make_rig()
    resolved(rig, REACHABLE, PEER, now=0.0)
    rig.cache.remove(PEER)
    rig.cache.remove(OTHER)
    assert rig.cache.table() == [] and rig.cache.poll_at() is None


def test_failure_callback_may_resolve_the_same_address_again() -> None:
    # an owner answering the failure with a new packet to the same neighbour (an ICMPv6 error,
    # a retransmission) starts a fresh resolution, not a corrupted table
    rig = make_rig()
    c = rig.cache
    again: list[PacketBuffer] = []

    def unreachable(f: NdFailure) -> None:
        rig.failed.append(f)
        if len(again) < 1:
            again.append(pkt(b"again"))
            c.resolve(f.dst, again[0], 3.0)

    c.unreachable = unreachable
    c.resolve(PEER, pkt(), 0.0)
    for t in (1.0, 2.0, 3.0):
        c.poll(t)
    assert c.state(PEER) == INCOMPLETE and c.poll_at() == 4.0 and len(rig.failed) == 1
    check_invariants(c)


# --- the TICK rule: every poll makes progress (protocols/timing.py) -------------------------------------
OPS = st.lists(st.tuples(st.sampled_from(["resolve", "na", "na_s", "na_new", "ns", "ra", "confirm", "poll"]),
                         st.integers(0, 5), st.floats(0.0, 20.0, allow_nan=False)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(t0=st.floats(0.0, 1e7, allow_nan=False), ops=OPS, retrans=st.floats(0.001, 5.0),
       delay=st.floats(0.0, 10.0), base=st.floats(0.0, 60.0), stale=st.floats(0.0, 100.0),
       seed=st.integers(0, 2**32))
def test_timer_loop_always_makes_progress(t0: float, ops: list[tuple[str, int, float]], retrans: float,
                                          delay: float, base: float, stale: float, seed: int) -> None:
    """Whatever happened and whatever the float times, poll(poll_at()) leaves poll_at()
    None or later than now, and with no more input every entry ages out in bounded polls."""
    rig = make_rig(random.Random(seed), max_entries=4, max_incomplete=2, delay_first_probe_time=delay,
                   gc_stale_time=stale, queue_bytes=600, queue_bytes_total=1500)
    c = rig.cache
    c.set_retrans_timer(retrans)
    c.set_base_reachable_time(base, t0)
    now = t0
    for op, n, gap in ops:
        now += gap
        addr, mac = PEER + n, bytes([2, 0, 0, 0, 0, n + 1])
        if op == "resolve":
            c.resolve(addr, pkt(b"p" * 100), now)
        elif op == "na":
            c.input_na(addr, mac, n % 2 == 0, False, True, now)
        elif op == "na_s":
            c.input_na(addr, mac, False, True, n % 3 == 0, now)
        elif op == "na_new":
            c.input_na(addr, NEW_MAC, False, n % 2 == 1, True, now)
        elif op == "ns":
            c.input_ns(addr, mac, now)
        elif op == "ra":
            c.input_ra_source(addr, mac, now)
        elif op == "confirm":
            c.confirm_reachable(addr, now)
        else:
            at = c.poll_at()
            if at is not None:
                now = max(now, at)
                c.poll(now)
                nxt = c.poll_at()
                assert nxt is None or nxt > now
        check_invariants(c)
    polls = 0
    while (at := c.poll_at()) is not None:
        assert not math.isinf(at)
        now = max(now, at)
        c.poll(now)
        polls += 1
        nxt = c.poll_at()
        assert nxt is None or nxt > now
        assert polls <= 4 * (1 + 3 + 3 + 2) + 10                 # per entry: stale, delay, probes, gc
    assert c.entries == {} and c.queued_bytes == 0
