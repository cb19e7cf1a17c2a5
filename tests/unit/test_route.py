"""Routing table (protocols/route.py): longest-prefix match (RFC 1812 §5.2.4.3), then the lowest
metric, 0.0.0.0/0 as the default route; routes over a down interface are skipped."""
from __future__ import annotations

import errno

import pytest

from protocols.addr import int_to_ip, ip_to_int
from protocols.ifnet import IFF_RUNNING, IFF_UP, Interface, InterfaceTable
from protocols.route import RoutingTable

from .fakes import StubNdd


@pytest.fixture
def ifs() -> tuple[Interface, Interface]:
    table = InterfaceTable()
    return (table.create("eth0", StubNdd("eth0"), 1500, IFF_UP | IFF_RUNNING),
            table.create("eth1", StubNdd("eth1"), 1500, IFF_UP | IFF_RUNNING))


def hop(rt: RoutingTable, dst: str) -> tuple[str, str | None] | None:
    r = rt.lookup(ip_to_int(dst))
    if r is None:
        return None
    return r.ifp.name, None if r.gateway is None else int_to_ip(r.gateway)


def test_longest_prefix_wins(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = RoutingTable()
    rt.add("10.0.0.0/8", eth0, ip_to_int("192.168.0.1"))
    rt.add("10.1.0.0/16", eth1, ip_to_int("192.168.1.1"))
    rt.add("10.1.2.3/32", eth0)
    assert hop(rt, "10.9.9.9") == ("eth0", "192.168.0.1")
    assert hop(rt, "10.1.9.9") == ("eth1", "192.168.1.1")
    assert hop(rt, "10.1.2.3") == ("eth0", None)
    assert hop(rt, "11.0.0.1") is None


def test_insertion_order_does_not_matter(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = RoutingTable()
    rt.add("10.1.0.0/16", eth1)
    rt.add("0.0.0.0/0", eth0, ip_to_int("1.1.1.1"))
    rt.add("10.0.0.0/8", eth0)
    assert hop(rt, "10.1.0.1") == ("eth1", None)
    assert hop(rt, "10.2.0.1") == ("eth0", None)


def test_default_route(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    rt = RoutingTable()
    rt.add("0.0.0.0/0", eth0, ip_to_int("10.0.0.1"))
    assert hop(rt, "8.8.8.8") == ("eth0", "10.0.0.1")
    assert hop(rt, "255.255.255.254") == ("eth0", "10.0.0.1")


def test_host_bits_are_masked(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    rt = RoutingTable()
    r = rt.add("10.0.0.77/24", eth0)
    assert r.network == ip_to_int("10.0.0.0")
    assert hop(rt, "10.0.0.5") == ("eth0", None)


def test_lowest_metric_wins(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = RoutingTable()
    rt.add("0.0.0.0/0", eth0, ip_to_int("10.0.0.1"), metric=100)
    rt.add("0.0.0.0/0", eth1, ip_to_int("10.1.0.1"), metric=10)
    assert hop(rt, "8.8.8.8") == ("eth1", "10.1.0.1")
    rt.delete("0.0.0.0/0", eth1)
    assert hop(rt, "8.8.8.8") == ("eth0", "10.0.0.1")


def test_interface_down_is_skipped(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = RoutingTable()
    rt.add("10.0.0.0/24", eth0, metric=0)
    rt.add("10.0.0.0/24", eth1, metric=5)
    rt.add("10.0.0.0/8", eth1, ip_to_int("172.16.0.1"))
    eth0.flags &= ~IFF_RUNNING
    assert hop(rt, "10.0.0.9") == ("eth1", None)           # same prefix, next metric
    eth1.flags &= ~IFF_UP
    assert hop(rt, "10.0.0.9") is None
    eth0.flags |= IFF_RUNNING
    assert hop(rt, "10.0.0.9") == ("eth0", None)


def test_down_interface_falls_back_to_shorter_prefix(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = RoutingTable()
    rt.add("10.1.0.0/16", eth1)
    rt.add("0.0.0.0/0", eth0, ip_to_int("10.0.0.1"))
    eth1.flags &= ~IFF_UP
    assert hop(rt, "10.1.0.1") == ("eth0", "10.0.0.1")


def test_delete(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = RoutingTable()
    rt.add("10.0.0.0/8", eth0)
    rt.add("10.1.0.0/16", eth1)
    rt.delete("10.1.0.0/16")
    assert hop(rt, "10.1.0.1") == ("eth0", None)
    rt.delete((ip_to_int("10.0.0.0"), 8), eth0)
    assert hop(rt, "10.1.0.1") is None and list(rt) == []
    with pytest.raises(OSError) as exc:
        rt.delete("10.0.0.0/8")
    assert exc.value.errno == errno.ESRCH


def test_delete_needs_matching_gateway(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    rt = RoutingTable()
    rt.add("0.0.0.0/0", eth0, ip_to_int("10.0.0.1"))
    with pytest.raises(OSError):
        rt.delete("0.0.0.0/0", gateway=ip_to_int("10.0.0.2"))
    rt.delete("0.0.0.0/0", gateway=ip_to_int("10.0.0.1"))
    assert rt.lookup(ip_to_int("8.8.8.8")) is None


def test_duplicate_route_rejected(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    rt = RoutingTable()
    rt.add("10.0.0.0/24", eth0)
    with pytest.raises(OSError) as exc:
        rt.add("10.0.0.0/24", eth0)
    assert exc.value.errno == errno.EEXIST
    rt.add("10.0.0.0/24", eth0, metric=1)            # another metric is another route


def test_delete_interface_removes_its_routes(ifs: tuple[Interface, Interface]) -> None:
    eth0, eth1 = ifs
    rt = RoutingTable()
    rt.add("10.0.0.0/24", eth0)
    rt.add("0.0.0.0/0", eth0, ip_to_int("10.0.0.1"))
    rt.add("10.1.0.0/16", eth1)
    rt.delete_interface(eth0)
    assert [r.ifp.name for r in rt] == ["eth1"]
    assert hop(rt, "8.8.8.8") is None


def test_dump_format(ifs: tuple[Interface, Interface]) -> None:
    eth0, _ = ifs
    rt = RoutingTable()
    rt.add("0.0.0.0/0", eth0, ip_to_int("10.0.0.1"), metric=5, source=ip_to_int("10.0.0.2"))
    assert rt.dump() == ["0.0.0.0/0 via 10.0.0.1 dev eth0 proto static metric 5 src 10.0.0.2"]
