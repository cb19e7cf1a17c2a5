"""Two Stacks over a memory link: ping, fragmentation, ARP, routing, loopback, counters, latency."""
from __future__ import annotations

import errno

import pytest
import trio
import trio.testing

from ndd import constants as C
from ndd.ndd import StatusBlock
from ndd.pktbuf import PacketBuffer
from protocols.addr import ip_to_int
from protocols.arp import REACHABLE
from protocols.ifnet import IFF_RUNNING

from .helpers import IP_A, IP_B, MAC_A, MAC_B, two_stacks

KINDS = ["ether", "rawip"]


@pytest.mark.parametrize("kind", KINDS)
async def test_ping_both_ways(kind: str, autojump_clock: trio.testing.MockClock) -> None:
    # each stack answers the other's echo requests with the same data
    async with two_stacks(kind) as p:
        for _ in range(3):
            assert await p.sa.ping(IP_B) >= 0.0
            assert await p.sb.ping(IP_A) >= 0.0
        assert p.sa.icmp.stats.out_echo_reps == 3 and p.sb.icmp.stats.out_echo_reps == 3


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size, frags", [(4000, 3), (60000, 41)])
async def test_big_ping_is_fragmented_and_reassembled(kind: str, size: int, frags: int,
                                                      autojump_clock: trio.testing.MockClock) -> None:
    # an echo larger than the 1500 MTU leaves in 1480-octet fragments and comes back whole
    async with two_stacks(kind) as p:
        # no warm-up: on Ethernet all 41 fragments wait for ARP (the queue is bounded in bytes)
        await p.sa.ping(IP_B, size=size)
        sa, sb = p.sa.stats(), p.sb.stats()
        assert (sa["ipv4"]["frag_oks"], sa["ipv4"]["frag_creates"]) == (1, frags)   # request
        assert (sb["ipv4"]["frag_oks"], sb["ipv4"]["frag_creates"]) == (1, frags)   # reply
        assert (sb["reasm"]["reqds"], sb["reasm"]["oks"]) == (frags, 1)
        assert (sa["reasm"]["reqds"], sa["reasm"]["oks"]) == (frags, 1)
        assert sb["icmp"]["in_echos"] == 1 and sa["icmp"]["in_echo_reps"] == 1


async def test_largest_ping_and_one_octet_more(autojump_clock: trio.testing.MockClock) -> None:
    # 65507 data octets fill a 65535-octet datagram; one more is EMSGSIZE before sending
    async with two_stacks() as p:
        await p.sa.ping(IP_B)
        await p.sa.ping(IP_B, size=65535 - 20 - 8)
        with pytest.raises(OSError) as exc:
            await p.sa.ping(IP_B, size=65535 - 20 - 8 + 1)
        assert exc.value.errno == errno.EMSGSIZE
        assert p.sa.ipv4.stats.frag_fails == 1


async def test_ping_with_df_above_mtu_is_emsgsize(autojump_clock: trio.testing.MockClock) -> None:
    # Don't Fragment and a datagram above the link MTU: EMSGSIZE, nothing leaves
    async with two_stacks() as p:
        await p.sa.ping(IP_B)
        sent = p.a.stats.ndd_opackets
        with pytest.raises(OSError) as exc:
            await p.sa.ping(IP_B, size=1500, df=True)
        assert exc.value.errno == errno.EMSGSIZE and p.a.stats.ndd_opackets == sent
        await p.sa.ping(IP_B, size=1472, df=True)      # 1472 + 8 + 20 = 1500 still fits


async def test_ping_unused_address_is_ehostunreach(autojump_clock: trio.testing.MockClock) -> None:
    # nobody answers ARP: after max_retries requests retrans_time apart the ping fails EHOSTUNREACH
    async with two_stacks() as p:
        arp = p.sa.arp_cache("m0")
        cfg = arp.config
        start, sent = trio.current_time(), arp.stats.tx_requests
        with pytest.raises(OSError) as exc:
            await p.sa.ping("10.0.0.77", timeout=cfg.max_retries * cfg.retrans_time + 5)
        assert exc.value.errno == errno.EHOSTUNREACH
        assert trio.current_time() - start == pytest.approx(cfg.max_retries * cfg.retrans_time)
        assert arp.stats.tx_requests - sent == cfg.max_retries and arp.stats.failed == 1
        assert ip_to_int("10.0.0.77") not in arp.entries


async def test_ping_unused_address_with_short_timeout_is_etimedout(autojump_clock: trio.testing.MockClock) -> None:
    # a timeout shorter than ARP resolution gives up first; the waiter is not leaked
    async with two_stacks() as p:
        with pytest.raises(OSError) as exc:
            await p.sa.ping("10.0.0.77", timeout=0.5)
        assert exc.value.errno == errno.ETIMEDOUT and p.sa.icmp.echo_waiters == {}
        await trio.sleep(5)   # the ARP failure arrives later and must be harmless
        assert p.sa.arp_cache("m0").stats.failed == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_ping_off_subnet_without_route_is_enetunreach(kind: str, autojump_clock: trio.testing.MockClock) -> None:
    # no route: ENETUNREACH at once, counted as out_no_routes, nothing on the wire
    async with two_stacks(kind) as p:
        sent = p.a.stats.ndd_opackets
        with pytest.raises(OSError) as exc:
            await p.sa.ping("192.168.5.1")
        assert exc.value.errno == errno.ENETUNREACH
        assert p.sa.ipv4.stats.out_no_routes == 1 and p.a.stats.ndd_opackets == sent


@pytest.mark.parametrize("kind", KINDS)
async def test_default_route_via_peer(kind: str, autojump_clock: trio.testing.MockClock) -> None:
    # with 0.0.0.0/0 via b, a reaches b's second address; b answers from that address
    async with two_stacks(kind) as p:
        p.sb.add_address(p.ifb, "192.168.5.1/24")
        p.sb.add_route("0.0.0.0/0", gateway=IP_A)
        p.sa.add_route("0.0.0.0/0", gateway=IP_B)
        await p.sa.ping("192.168.5.1")
        await p.sb.ping(IP_A, src="192.168.5.1")
        if kind == "ether":   # the gateway was resolved, not the far address
            assert set(p.sa.arp_cache("m0").entries) == {ip_to_int(IP_B)}


@pytest.mark.parametrize("kind", KINDS)
async def test_secondary_address_on_the_subnet(kind: str, autojump_clock: trio.testing.MockClock) -> None:
    # a second address in the interface's subnet is Linux's "secondary": no second prefix
    # route (it was EEXIST), and it answers as the first does (the gateway's DNS address)
    async with two_stacks(kind) as p:
        net = IP_B.rsplit(".", 1)[0]
        p.sb.add_address(p.ifb, f"{net}.77/24")
        await p.sa.ping(f"{net}.77")
        await p.sb.ping(IP_A, src=f"{net}.77")


async def test_gateway_must_be_on_link() -> None:
    # add_route refuses a gateway no connected route reaches
    async with two_stacks() as p:
        with pytest.raises(OSError) as exc:
            p.sa.add_route("0.0.0.0/0", gateway="172.16.0.1")
        assert exc.value.errno == errno.ENETUNREACH


async def test_arp_caches_hold_each_other(autojump_clock: trio.testing.MockClock) -> None:
    # after one ping both ARP caches map the peer's address to its MAC, REACHABLE
    async with two_stacks() as p:
        await p.sa.ping(IP_B)
        assert (ip_to_int(IP_B), REACHABLE, MAC_B) in p.sa.arp_cache("m0").table()
        assert (ip_to_int(IP_A), REACHABLE, MAC_A) in p.sb.arp_cache("m1").table()
        requests = p.sa.arp_cache("m0").stats.tx_requests
        await p.sa.ping(IP_B)
        assert p.sa.arp_cache("m0").stats.tx_requests == requests   # cached: no new request


async def test_arp_entry_goes_stale_and_is_refreshed(autojump_clock: trio.testing.MockClock) -> None:
    # past reachable_time the entry is STALE; using it sends one unicast probe and it is REACHABLE again
    async with two_stacks() as p:
        await trio.sleep(5)       # b's announcements would confirm the entry too
        await p.sa.ping(IP_B)
        arp = p.sa.arp_cache("m0")
        await trio.sleep(arp.config.reachable_time + 1)
        assert arp.entries[ip_to_int(IP_B)].state == "STALE"
        requests = arp.stats.tx_requests
        await p.sa.ping(IP_B)
        await trio.sleep(0.1)
        assert arp.stats.tx_requests == requests + 1
        assert arp.entries[ip_to_int(IP_B)].state == REACHABLE


@pytest.mark.parametrize("dst", ["127.0.0.1", IP_A])
async def test_ping_loopback_and_own_address(dst: str, autojump_clock: trio.testing.MockClock) -> None:
    # 127.0.0.1 and our own address go through the loopback NDD, never onto the cable
    async with two_stacks() as p:
        await trio.sleep(5)       # let the ARP announcements go out first
        on_wire = p.a.stats.ndd_opackets
        lo = p.sa.interface("lo").ndd
        await p.sa.ping(dst)
        await p.sa.ping(dst, size=5000)                 # loopback MTU is 64 KiB: one datagram
        assert p.a.stats.ndd_opackets == on_wire
        assert (lo.stats.ndd_opackets, lo.stats.ndd_ipackets) == (4, 4)
        assert p.sa.icmp.stats.in_echos == 2 and p.sa.icmp.stats.in_echo_reps == 2
        assert p.sa.ipv4.stats.frag_creates == 0


async def test_counters_move_as_expected(autojump_clock: trio.testing.MockClock) -> None:
    # n pings a -> b over raw IP: exact ipv4/icmp/NDD counts on both sides
    n = 5
    async with two_stacks("rawip", ipv6=False) as p:
        for _ in range(n):
            await p.sa.ping(IP_B, size=100)
        sa, sb = p.sa.stats(), p.sb.stats()
        assert {k: sa["icmp"][k] for k in ("out_echos", "in_echo_reps", "in_echos", "out_msgs")} == \
            {"out_echos": n, "in_echo_reps": n, "in_echos": 0, "out_msgs": n}
        assert {k: sb["icmp"][k] for k in ("in_echos", "out_echo_reps", "in_msgs", "in_errors")} == \
            {"in_echos": n, "out_echo_reps": n, "in_msgs": n, "in_errors": 0}
        for s in (sa, sb):
            assert (s["ipv4"]["in_receives"], s["ipv4"]["in_delivers"], s["ipv4"]["out_requests"]) == (n, n, n)
        wire = 20 + 8 + 100
        nda, ndb = sa["interfaces"]["m0"]["ndd"], sb["interfaces"]["m1"]["ndd"]
        got = (nda["ndd_opackets"], nda["ndd_obytes"], nda["ndd_ipackets"], nda["ndd_ibytes"])
        assert got == (n, n * wire, n, n * wire)
        assert (ndb["ndd_opackets"], ndb["ndd_ipackets"]) == (n, n)


async def test_ether_counters_include_arp(autojump_clock: trio.testing.MockClock) -> None:
    # over Ethernet the first ping costs one ARP exchange; announcements are broadcasts
    async with two_stacks(ipv6=False) as p:
        await trio.sleep(5)    # let the RFC 5227 announcements finish
        arp_a, arp_b = p.sa.arp_cache("m0"), p.sb.arp_cache("m1")
        assert arp_a.stats.tx_announces == arp_a.config.announce_count
        assert p.a.stats.ndd_ifOutBcastPkts == arp_a.config.announce_count
        await p.sa.ping(IP_B)
        assert (arp_a.stats.tx_requests, arp_a.stats.rx_replies, arp_a.stats.resolved) == (1, 1, 1)
        assert (arp_b.stats.rx_requests, arp_b.stats.tx_replies) == (1 + arp_a.config.announce_count, 1)
        # a's frames: announcements + ARP request + echo request; b's: announcements + ARP reply + echo reply
        assert p.a.stats.ndd_opackets == arp_a.config.announce_count + 2
        assert p.b.stats.ndd_ipackets == p.a.stats.ndd_opackets


async def test_link_down_status_stops_traffic(autojump_clock: trio.testing.MockClock) -> None:
    # NDD_LINK_DOWN clears IFF_RUNNING: its routes are skipped (ENETUNREACH); NDD_LINK_UP restores both
    async with two_stacks("rawip") as p:
        await p.sa.ping(IP_B)
        p.a.report_status(StatusBlock(C.NDD_STATUS, (C.NDD_LINK_DOWN,)))
        assert not p.ifa.flags & IFF_RUNNING
        with pytest.raises(OSError) as exc:
            await p.sa.ping(IP_B)
        assert exc.value.errno == errno.ENETUNREACH
        assert p.a.ndd_output(PacketBuffer(bytes(20))) == errno.ENETDOWN   # the NDD itself refuses too
        p.a.report_status(StatusBlock(C.NDD_STATUS, (C.NDD_LINK_UP,)))
        assert p.ifa.flags & IFF_RUNNING
        await p.sa.ping(IP_B)


async def test_far_end_gone_is_timeout(autojump_clock: trio.testing.MockClock) -> None:
    # when b removes its interface the cable leads nowhere: pings time out, nothing raises
    async with two_stacks("rawip") as p:
        await p.sa.ping(IP_B)
        p.sb.remove_interface("m1")
        assert not p.b.is_open
        with pytest.raises(OSError) as exc:
            await p.sa.ping(IP_B, timeout=1.0)
        assert exc.value.errno == errno.ETIMEDOUT


@pytest.mark.parametrize("kind, first_rtt", [("rawip", 0.02), ("ether", 0.04)])
async def test_latency_adds_rtt(kind: str, first_rtt: float, autojump_clock: trio.testing.MockClock) -> None:
    # a 10 ms one-way latency makes RTT 20 ms (plus one ARP round trip on the first Ethernet ping)
    async with two_stacks(kind, latency=0.01) as p:
        await trio.sleep(5)       # an announcement from b would resolve a's pending ARP early
        assert await p.sa.ping(IP_B) == pytest.approx(first_rtt)
        assert await p.sa.ping(IP_B) == pytest.approx(0.02)
        assert await p.sb.ping(IP_A) == pytest.approx(0.02)
        with pytest.raises(OSError) as exc:
            await p.sa.ping(IP_B, timeout=0.015)
        assert exc.value.errno == errno.ETIMEDOUT


async def test_latency_keeps_order_and_throughput(autojump_clock: trio.testing.MockClock) -> None:
    # many pings in flight at once over a latency link all complete in one RTT
    async with two_stacks("rawip", latency=0.05) as p:
        rtts: list[float] = []

        async def one() -> None:
            rtts.append(await p.sa.ping(IP_B, size=200))

        async with trio.open_nursery() as n:
            for _ in range(50):
                n.start_soon(one)
        assert len(rtts) == 50 and all(r == pytest.approx(0.1) for r in rtts)
