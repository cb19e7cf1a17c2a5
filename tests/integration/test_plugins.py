"""Third-party plug-ins through entry points, from a distribution outside the tunstack package."""
from __future__ import annotations

import errno
import socket
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from ndd.pktbuf import PacketBuffer
from stack.stack import Stack, StackConfig

from .helpers import IP_A, IP_B, two_stacks

TOY_PROTO = 253   # RFC 3692 experimental IP protocol number

TOYPLUG = '''
"""A third-party tunstack plug-in: IP protocol 253 and a "toy" driver."""
import socket

from drivers.memlink import MemoryNdd
from protocols.contracts import PR_ATOMIC, PR_ADDR, Protosw


class ToyNdd(MemoryNdd):
    made_by_toyplug = True


def register(stack):
    stack.toy_received = []   # per stack: plug-ins keep no module state either

    def toy_input(pkt, ip, now):
        stack.toy_received.append((pkt.tobytes(), ip.src, ip.dst, ip.proto))

    stack.protosw.add(socket.AF_INET, Protosw("toy", socket.SOCK_RAW, 253, input=toy_input,
                                              flags=PR_ATOMIC | PR_ADDR))


def register_driver(registry):
    registry.add("toy", ToyNdd)
'''


def install_dist(root: Path, name: str, entry_points: str, module: str | None = None) -> None:
    """Lay out an installed distribution (module + .dist-info) under `root`, as pip would."""
    if module is not None:
        (root / f"{name}.py").write_text(module)
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def toyplug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    install_dist(tmp_path, "toyplug", """\
        [tunstack.protocols]
        toy = toyplug:register

        [tunstack.drivers]
        toy = toyplug:register_driver
        """, TOYPLUG)
    monkeypatch.delitem(sys.modules, "toyplug", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("toyplug", None)


async def send_proto_253(src: Stack, payload: bytes) -> int:
    """What a raw socket would do: hand IPv4 a protocol-253 payload for 10.0.0.2."""
    return src.ipv4.output(PacketBuffer.from_payload(payload), 0, int.from_bytes(socket.inet_aton(IP_B), "big"),
                           TOY_PROTO, src.now())


async def test_entry_points_are_loaded(toyplug: Path) -> None:
    # both groups are found on sys.path and registered: protosw entry and driver factory
    async with Stack("p") as st:
        assert "protocol:toy" in st.plugins_loaded and "driver:toy" in st.plugins_loaded
        pr = st.protosw.find_proto(socket.AF_INET, TOY_PROTO, socket.SOCK_RAW)
        assert pr is not None and st.protosw.ip_protox[TOY_PROTO] is pr
        nd = st.drivers.create("toy", "toy0", kind="rawip")
        assert getattr(nd, "made_by_toyplug", False) and nd.ndd_name == "toy0"
        ifp = st.add_interface(nd, "10.9.0.1/24")      # a plug-in driver is a full NDD
        assert ifp.ndd is nd and nd.is_open
        with pytest.raises(KeyError):
            st.drivers.create("no-such-driver", "x0")


async def test_toy_protocol_receives_packets(toyplug: Path, autojump_clock: trio.testing.MockClock) -> None:
    # a proto-253 datagram from the other stack climbs ipv4 input into the plug-in's pr_input
    async with two_stacks() as p:
        assert await send_proto_253(p.sa, b"hello toy") == 0
        await trio.sleep(1)
        assert p.sb.toy_received == [(b"hello toy", int.from_bytes(socket.inet_aton(IP_A), "big"),
                                       int.from_bytes(socket.inet_aton(IP_B), "big"), TOY_PROTO)]
        assert p.sb.ipv4.stats.in_unknown_protos == 0 and p.sb.icmp.stats.out_dest_unreachs == 0
        assert p.sa.toy_received == []


async def test_without_plugin_protocol_is_unreachable(toyplug: Path, autojump_clock: trio.testing.MockClock) -> None:
    # StackConfig(plugins=False) ignores the entry points: the datagram is an unknown protocol and
    # the receiver answers ICMP protocol unreachable (type 3 code 2) to the sender
    async with two_stacks(config_b=StackConfig(plugins=False)) as p:
        assert p.sb.plugins_loaded == [] and "toy" not in p.sb.drivers.factories
        assert TOY_PROTO not in p.sb.protosw.ip_protox and not hasattr(p.sb, "toy_received")
        assert await send_proto_253(p.sa, b"anyone?") == 0
        await trio.sleep(1)
        assert p.sb.ipv4.stats.in_unknown_protos == 1
        assert p.sb.icmp.stats.out_dest_unreachs == 1
        assert p.sa.icmp.stats.in_dest_unreachs == 1
        assert p.sa.toy_received == []


async def test_plugin_not_on_path_is_not_loaded() -> None:
    # without the distribution on sys.path nothing named toy is registered
    async with Stack("plain") as st:
        assert not any("toy" in name for name in st.plugins_loaded)
        assert "toy" not in st.drivers.factories and TOY_PROTO not in st.protosw.ip_protox


async def test_broken_plugin_does_not_stop_the_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     autojump_clock: trio.testing.MockClock) -> None:
    # an entry point that cannot be imported is logged and skipped; the stack still works
    install_dist(tmp_path, "brokenplug", """\
        [tunstack.protocols]
        broken = brokenplug_missing_module:register

        [tunstack.drivers]
        broken = toyplug_also_missing:register_driver
        """)
    monkeypatch.syspath_prepend(str(tmp_path))
    async with two_stacks() as p:
        assert not any("broken" in name for name in p.sa.plugins_loaded)
        await p.sa.ping(IP_B)


async def test_plugin_whose_register_raises_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      autojump_clock: trio.testing.MockClock) -> None:
    install_dist(tmp_path, "raiseplug", """\
        [tunstack.protocols]
        raises = raiseplug:register
        """, module="def register(stack):\n    raise RuntimeError('plug-in bug')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    async with two_stacks() as p:
        assert not any("raises" in name for name in p.sa.plugins_loaded)
        await p.sa.ping(IP_B)


async def test_duplicate_protocol_registration_is_eexist(toyplug: Path) -> None:
    # the protocol switch refuses a second entry for the same (type, protocol)
    from protocols.contracts import Protosw
    async with Stack("p") as st:
        with pytest.raises(OSError) as exc:
            st.protosw.add(socket.AF_INET, Protosw("toy2", socket.SOCK_RAW, TOY_PROTO, input=lambda *a: None))
        assert exc.value.errno == errno.EEXIST


TICKPLUG = '''
"""A plug-in with a timed core: it uses only what protocols.contracts.ProtocolHost offers."""
from protocols.contracts import ProtocolHost

TICKERS = []   # every core made, for the test to read


class Ticker:
    def __init__(self, host: ProtocolHost) -> None:
        self.fired = []
        self.kick = lambda at=None: None          # the timer service sets it
        self.at = host.now() + 1.0 + host.rng.random()

    def poll_at(self):
        return self.at

    def poll(self, now):
        self.fired.append(now)
        self.at = None


def register(host: ProtocolHost) -> None:
    ticker = Ticker(host)
    TICKERS.append(ticker)
    host.timers.register(ticker)
'''


async def test_plugin_timed_core_runs_on_the_host_timers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         autojump_clock: trio.testing.MockClock) -> None:
    # register(host) adds a timed core through host.timers; the Stack's timer loop polls it once
    # when due (host.now, host.rng: the seeded clock and random source)
    install_dist(tmp_path, "tickplug", """\
        [tunstack.protocols]
        tick = tickplug:register
        """, TICKPLUG)
    monkeypatch.delitem(sys.modules, "tickplug", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        async with Stack("tick", StackConfig(seed=7)) as st:
            start = st.now()
            assert "protocol:tick" in st.plugins_loaded
            await trio.sleep(5)
            (ticker,) = sys.modules["tickplug"].TICKERS
            assert len(ticker.fired) == 1 and start + 1.0 <= ticker.fired[0] < start + 2.0
    finally:
        sys.modules.pop("tickplug", None)
