"""Over TAP: ARP both ways with the Linux kernel (RFC 826), then ping."""
from __future__ import annotations

from protocols.addr import ip_to_int, mac_to_str

from .conftest import Peer
from .helpers import loss_percent, run


async def test_kernel_resolves_stack_mac_and_pings(tap_peer: Peer) -> None:
    r = await run(tap_peer.exec("ping", "-c", "3", "-i", "0.2", "-W", "2", tap_peer.stack_ip))
    assert loss_percent(r.stdout) == 0
    neigh = await run(tap_peer.exec("ip", "neigh", "show", tap_peer.stack_ip))
    assert f"lladdr {mac_to_str(tap_peer.ndd.ndd_physaddr)}" in neigh.stdout.decode()
    arp = tap_peer.stack.arp_cache(tap_peer.dev).stats
    assert arp.rx_requests >= 1 and arp.tx_replies >= 1


async def test_stack_resolves_kernel_mac_for_its_own_ping(tap_peer: Peer) -> None:
    cache = tap_peer.stack.arp_cache(tap_peer.dev)
    assert ip_to_int(tap_peer.kernel_ip) not in {ip for ip, _, _ in cache.table()}
    await tap_peer.stack.ping(tap_peer.kernel_ip, timeout=3)
    entries = {ip: (state, mac) for ip, state, mac in cache.table()}
    state, mac = entries[ip_to_int(tap_peer.kernel_ip)]
    assert state == "REACHABLE" and mac == tap_peer.ndd.kernel_mac
    assert cache.stats.tx_requests >= 1 and cache.stats.resolved == 1
    # fragmented both ways over Ethernet too
    await tap_peer.stack.ping(tap_peer.kernel_ip, size=4000, timeout=3)


async def test_unanswered_arp_is_ehostunreach(tap_peer: Peer) -> None:
    import errno

    import pytest
    with pytest.raises(OSError) as info:
        await tap_peer.stack.ping("10.77.0.99", timeout=10)
    assert info.value.errno == errno.EHOSTUNREACH
    assert tap_peer.stack.arp_cache(tap_peer.dev).stats.failed == 1
