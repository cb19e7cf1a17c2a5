"""Address helpers and the interface table (protocols/addr.py, protocols/ifnet.py):
RFC 1122 §3.2.1.3 martians, RFC 919/922 broadcasts, RFC 3021 /31, RFC 1112 §6.4 group MACs."""
from __future__ import annotations

import errno

import pytest

from protocols.addr import (
    int_to_ip,
    ip_to_int,
    is_martian_source,
    is_multicast,
    mac_from_str,
    mac_to_str,
    multicast_mac,
    parse_prefix,
    prefix_mask,
)
from protocols.ifnet import IFF_RUNNING, IFF_UP, IfAddr, InterfaceTable

from .fakes import StubNdd


def test_ip_conversions() -> None:
    assert ip_to_int("10.0.0.1") == 0x0A000001 and int_to_ip(0x0A000001) == "10.0.0.1"
    assert ip_to_int(5) == 5
    for bad in ("10.0.1", "1.2.3.4.5", "a.b.c.d", -1, 1 << 32):
        with pytest.raises(ValueError):
            ip_to_int(bad)  # type: ignore[arg-type]


def test_prefixes() -> None:
    assert prefix_mask(0) == 0 and prefix_mask(24) == 0xFFFFFF00 and prefix_mask(32) == 0xFFFFFFFF
    assert parse_prefix("10.0.0.2/24") == (0x0A000002, 24)
    assert parse_prefix("10.0.0.2") == (0x0A000002, 32)
    with pytest.raises(ValueError):
        parse_prefix("10.0.0.2/33")


def test_martians_and_multicast() -> None:
    for good in ("0.0.0.0", "10.0.0.1", "223.255.255.255"):
        assert not is_martian_source(ip_to_int(good))
    for bad in ("255.255.255.255", "224.0.0.1", "240.0.0.1", "0.0.0.1"):
        assert is_martian_source(ip_to_int(bad))
    assert is_multicast(ip_to_int("239.1.2.3")) and not is_multicast(ip_to_int("240.0.0.0"))
    assert multicast_mac(ip_to_int("239.129.2.3")) == bytes.fromhex("01005e010203")


def test_macs() -> None:
    assert mac_from_str("02:00:00:aa:bb:cc") == bytes.fromhex("020000aabbcc")
    assert mac_to_str(bytes.fromhex("020000aabbcc")) == "02:00:00:aa:bb:cc"
    with pytest.raises(ValueError):
        mac_from_str("02:00")


def test_ifaddr_broadcast() -> None:
    assert IfAddr(ip_to_int("10.0.0.2"), 24).broadcast == ip_to_int("10.0.0.255")
    assert IfAddr(ip_to_int("10.0.0.2"), 24).network == ip_to_int("10.0.0.0")
    assert IfAddr(ip_to_int("10.0.0.0"), 31).broadcast == 0xFFFFFFFF     # RFC 3021: no directed broadcast


def test_interface_table() -> None:
    t = InterfaceTable()
    ifp = t.create("eth0", StubNdd("eth0"), 1500, IFF_UP)
    assert not ifp.is_up and ifp.primary is None
    ifp.flags |= IFF_RUNNING
    assert ifp.is_up and ifp.index == 1
    t.add_address(ifp, ip_to_int("10.0.0.2"), 24)
    t.add_address(ifp, ip_to_int("192.168.7.1"), 16)
    assert t.is_local(ip_to_int("10.0.0.2")) and not t.is_local(ip_to_int("10.0.0.3"))
    assert ifp.is_broadcast(ip_to_int("10.0.0.255")) and ifp.is_broadcast(0xFFFFFFFF)
    assert not ifp.is_broadcast(ip_to_int("10.0.0.254"))
    assert ifp.source_for(ip_to_int("192.168.200.1")) == ip_to_int("192.168.7.1")
    assert ifp.source_for(ip_to_int("8.8.8.8")) == ip_to_int("10.0.0.2")
    assert t.get("eth0") is ifp
    with pytest.raises(OSError) as exc:
        t.add_address(ifp, ip_to_int("10.0.0.2"), 24)
    assert exc.value.errno == errno.EEXIST
    with pytest.raises(OSError) as exc:
        t.create("eth0", StubNdd("eth0"), 1500, 0)
    assert exc.value.errno == errno.EEXIST
    t.remove(ifp)
    assert not t.is_local(ip_to_int("10.0.0.2"))
    with pytest.raises(OSError) as exc:
        t.get("eth0")
    assert exc.value.errno == errno.ENODEV
