"""IPv6 with the Linux kernel as the peer, over TUN and TAP: ping -6 both ways (also 4000-byte
fragmented echoes), link-local addresses with their scope, Neighbor Discovery both ways, DAD
seen on the wire and a DAD collision, and SLAAC from a radvd the test starts in the namespace."""
from __future__ import annotations

import errno
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from drivers.tuntap import TapNdd, TunNdd
from protocols.addr import mac_to_str
from protocols.ipv6.addr import int_to_ip6, ip6_to_int
from stack import Stack
from tools.demo.tour import Tcpdump
from tools.lab.netns import NetnsHost, unique_name

from .conftest import KERNEL_IP, STACK_IP, Peer, require_real_peer
from .helpers import kill_if_running, loss_percent, run, wait_for

KERNEL6, STACK6 = "fd00:77::1", "fd00:77::2"


def addresses(peer: Peer) -> dict[str, str]:
    """The stack's IPv6 addresses on the device -> their state."""
    info = peer.stack.stats()["interfaces"][peer.dev]["ipv6"]["addresses"]
    return {a["addr"]: a["state"] for a in info}


async def link_local(peer: Peer) -> str:
    """The stack's link-local address once DAD has passed."""
    def usable() -> str | None:
        return next((a for a, s in addresses(peer).items() if a.startswith("fe80:") and s == "preferred"), None)
    assert await wait_for(lambda: usable() is not None, 5), addresses(peer)
    found = usable()
    assert found is not None
    return found


async def kernel_link_local(peer: Peer) -> str:
    """The kernel side's link-local address once its own DAD has passed."""
    found: list[str] = []
    with trio.move_on_after(10):
        while not found:
            r = await run(peer.exec("ip", "-6", "-o", "addr", "show", "dev", peer.dev, "scope", "link", "-tentative"))
            lines = [line for line in r.stdout.decode().splitlines() if "inet6" in line]
            found = [line.split("inet6 ")[1].split("/")[0] for line in lines]
            if not found:
                await trio.sleep(0.2)
    assert found, "the kernel's link-local address stayed tentative"
    return found[0]


async def preferred(peer: Peer, addr: str, timeout: float = 5.0) -> bool:
    return await wait_for(lambda: addresses(peer).get(addr) == "preferred", timeout)


async def _peer6(kind: str) -> AsyncIterator[Peer]:
    require_real_peer()
    host = NetnsHost.create(unique_name())
    try:
        ndd = TapNdd(unique_name("tp")) if kind == "tap" else TunNdd(unique_name("tt"))
        ndd.create()
        host.adopt(ndd.ndd_name, f"{KERNEL_IP}/24")
        host.ip("-6", "addr", "add", f"{KERNEL6}/64", "dev", ndd.ndd_name, "nodad")
        async with Stack(f"realpeer6-{ndd.ndd_name}") as st:
            st.add_interface(ndd, f"{STACK_IP}/24")
            st.add_address(ndd.ndd_name, f"{STACK6}/64")
            peer = Peer(st, ndd, host)
            assert await preferred(peer, STACK6), addresses(peer)
            yield peer
    finally:
        host.delete()


@pytest.fixture(params=["tun", "tap"])
async def peer6(request: pytest.FixtureRequest) -> AsyncIterator[Peer]:
    async for peer in _peer6(request.param):
        yield peer


@pytest.fixture
async def tap6() -> AsyncIterator[Peer]:
    async for peer in _peer6("tap"):
        yield peer


async def test_kernel_pings_stack_small_and_fragmented(peer6: Peer) -> None:
    for size in ("56", "4000"):
        r = await run(peer6.exec("ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", "-s", size, STACK6))
        assert loss_percent(r.stdout) == 0, r.stdout
    ip6 = peer6.stack.stats()["ipv6"]
    assert ip6["reasm_oks"] >= 3 and ip6["out_frag_oks"] >= 3     # both ways in pieces


async def test_stack_pings_kernel_small_and_fragmented(peer6: Peer) -> None:
    for size in (56, 4000):
        for _ in range(3):
            assert await peer6.stack.ping(KERNEL6, size=size, timeout=3) < 3


async def test_link_local_both_ways_with_scope(peer6: Peer) -> None:
    mine = await link_local(peer6)
    kernel_ll = await kernel_link_local(peer6)
    r = await run(peer6.exec("ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", f"{mine}%{peer6.dev}"))
    assert loss_percent(r.stdout) == 0, r.stdout
    await peer6.stack.ping(f"{kernel_ll}%{peer6.dev}", timeout=3)
    with pytest.raises(OSError) as info:        # a link-local destination needs its interface
        await peer6.stack.ping(kernel_ll, timeout=3)
    assert info.value.errno == errno.EINVAL


async def test_neighbor_discovery_both_ways(tap6: Peer) -> None:
    r = await run(tap6.exec("ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", STACK6))
    assert loss_percent(r.stdout) == 0
    neigh = await run(tap6.exec("ip", "-6", "neigh", "show", STACK6, "dev", tap6.dev))
    assert f"lladdr {mac_to_str(tap6.ndd.ndd_physaddr)}" in neigh.stdout.decode(), neigh.stdout
    cache = tap6.stack.inet6.ifaces[tap6.stack.interface(tap6.dev).index].nd
    assert cache is not None
    entries = {addr: (state, mac) for addr, state, mac, _router in cache.table()}
    state, mac = entries[ip6_to_int(KERNEL6)]
    assert mac == tap6.ndd.kernel_mac and state in ("REACHABLE", "STALE", "DELAY", "PROBE")
    assert tap6.stack.stats()["nd"]["ns_answered"] >= 1


async def test_unanswered_neighbor_solicitation_is_ehostunreach(tap6: Peer) -> None:
    with pytest.raises(OSError) as info:
        await tap6.stack.ping("fd00:77::99", timeout=10)
    assert info.value.errno == errno.EHOSTUNREACH
    assert tap6.stack.stats()["interfaces"][tap6.dev]["ipv6"]["neighbors"]["failures"] == 1


async def test_dad_probe_on_the_wire_and_collision(tap6: Peer, tmp_path: Path) -> None:
    pcap = tmp_path / "dad.pcap"
    dump = Tcpdump(tap6.host, tap6.dev, pcap)
    assert await dump.start()
    try:
        tap6.stack.add_address(tap6.dev, "fd00:77::3/64")
        assert await preferred(tap6, "fd00:77::3")
    finally:
        await dump.stop()
    probes = await run(["tshark", "-r", str(pcap), "-Y", "icmpv6.type == 135 && ipv6.src == ::",
                        "-T", "fields", "-e", "icmpv6.nd.ns.target_address", "-e", "ipv6.dst"])
    assert "fd00:77::3\tff02::1:ff00:3" in probes.stdout.decode(), probes.stdout
    # the kernel holds fd00:77::5: our DAD finds it and the address is never used
    tap6.host.ip("-6", "addr", "add", "fd00:77::5/64", "dev", tap6.dev, "nodad")
    tap6.stack.add_address(tap6.dev, "fd00:77::5/64")
    assert await wait_for(lambda: addresses(tap6).get("fd00:77::5") == "duplicate", 5), addresses(tap6)
    assert tap6.stack.stats()["nd"]["dad_duplicates"] == 1


async def test_radvd_slaac_address_default_router_and_rdnss(tap6: Peer, tmp_path: Path) -> None:
    require_real_peer("radvd")
    conf = tmp_path / "radvd.conf"
    conf.write_text(f"""interface {tap6.dev} {{
    AdvSendAdvert on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval 4;
    prefix fd00:99::/64 {{ AdvOnLink on; AdvAutonomous on; }};
    RDNSS fd00:99::53 {{ }};
}};
""")
    tap6.host.ip("-6", "addr", "add", "fd00:99::1/64", "dev", tap6.dev, "nodad")
    radvd = await trio.lowlevel.open_process(
        tap6.exec("radvd", "--nodaemon", "-C", str(conf), "-p", str(tmp_path / "radvd.pid"), "-m", "stderr"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def slaac() -> str | None:
            return next((a for a, s in addresses(tap6).items() if a.startswith("fd00:99:") and s == "preferred"), None)
        assert await wait_for(lambda: slaac() is not None, 20), addresses(tap6)
        addr = slaac()
        assert addr is not None
        info = next(a for a in tap6.stack.stats()["interfaces"][tap6.dev]["ipv6"]["addresses"] if a["addr"] == addr)
        assert info["origin"] == "slaac"
        r = await run(tap6.exec("ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", addr))
        assert loss_percent(r.stdout) == 0, r.stdout
        routers = tap6.stack.inet6.routes.routers()
        assert len(routers) == 1 and int_to_ip6(routers[0].addr).startswith("fe80:")
        hop = tap6.stack.inet6.route(ip6_to_int("2001:db8::1"), tap6.stack.now(), None)
        assert not isinstance(hop, int) and hop.nexthop == routers[0].addr     # the default route
        assert tap6.stack.stats()["interfaces"][tap6.dev]["ipv6"]["rdnss"] == ["fd00:99::53"]
        assert tap6.stack.stats()["nd"]["ra_accepted"] >= 1
    finally:
        await kill_if_running(radvd)
