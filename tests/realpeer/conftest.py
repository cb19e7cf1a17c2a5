"""Real peers: the Linux kernel on the far side of a TUN/TAP device in a namespace.

Without root or /dev/net/tun these tests skip -- unless TUNSTACK_REQUIRE_TUN=1 (set
by .ci/run), which turns that skip into a failure, so CI cannot be green by skipping.
Every namespace and device is named `ts<pid>x<n>` and deleted afterwards.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from drivers.tuntap import TapNdd, TunNdd, TunTapNdd
from stack import Stack
from tools.lab.netns import NetnsHost, have_tun, unique_name

KERNEL_IP, STACK_IP = "10.77.0.1", "10.77.0.2"
TOOLS = ("ip", "ping", "tcpdump", "tshark")


def require_real_peer(*tools: str) -> None:
    ok, why = have_tun()
    missing = [t for t in (*TOOLS, *tools) if shutil.which(t) is None]
    if ok and missing:
        ok, why = False, f"missing tools: {', '.join(missing)} (run `make test` as root to install them)"
    if not ok:
        if os.environ.get("TUNSTACK_REQUIRE_TUN") == "1":
            pytest.fail(f"TUNSTACK_REQUIRE_TUN=1 but real-peer tests cannot run: {why}")
        pytest.skip(why)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "realpeer" in str(item.fspath):
            item.add_marker(pytest.mark.realpeer)


@pytest.fixture
def netns() -> Iterator[NetnsHost]:
    require_real_peer()
    host = NetnsHost.create(unique_name())
    try:
        yield host
    finally:
        host.delete()


@dataclass
class Peer:
    stack: Stack
    ndd: TunTapNdd
    host: NetnsHost
    kernel_ip: str = KERNEL_IP
    stack_ip: str = STACK_IP

    def exec(self, *argv: str) -> list[str]:
        return self.host.exec_argv(*argv)

    @property
    def dev(self) -> str:
        return self.ndd.ndd_name


async def _peer(host: NetnsHost, ndd: TunTapNdd) -> AsyncIterator[Peer]:
    ndd.create()
    host.adopt(ndd.ndd_name, f"{KERNEL_IP}/24")
    async with Stack(f"realpeer-{ndd.ndd_name}") as st:
        st.add_interface(ndd, f"{STACK_IP}/24")
        yield Peer(st, ndd, host)


@pytest.fixture
async def tun_peer(netns: NetnsHost) -> AsyncIterator[Peer]:
    """A stack on a TUN device whose kernel side (10.77.0.1/24) is in a fresh namespace."""
    async for peer in _peer(netns, TunNdd(unique_name("tt"))):
        yield peer


@pytest.fixture
async def tap_peer(netns: NetnsHost) -> AsyncIterator[Peer]:
    """The same over TAP (Ethernet, ARP both ways)."""
    async for peer in _peer(netns, TapNdd(unique_name("tp"))):
        yield peer
