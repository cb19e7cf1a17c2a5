"""IPPROTO_IPV6 options shared by UDP and TCP (protocols/sockopt.py), as Linux do_ipv6_setsockopt."""
import errno
import socket
from types import SimpleNamespace

from protocols.sockopt import (
    IPV6_DONTFRAG,
    IPV6_MTU_DISCOVER,
    IPV6_MULTICAST_HOPS,
    IPV6_RECVERR,
    IPV6_TCLASS,
    IPV6_UNICAST_HOPS,
    IPV6_V6ONLY,
    get_ipv6_option,
    set_ipv6_option,
)


def pcb():
    return SimpleNamespace(v6only=False, recverr6=False, dontfrag=False, hop_limit=None, mcast_hops=1,
                           tclass=0, pmtudisc=1)


def test_names_match_the_python_socket_module_where_it_has_them():
    assert IPV6_V6ONLY == socket.IPV6_V6ONLY
    assert IPV6_UNICAST_HOPS == socket.IPV6_UNICAST_HOPS
    assert IPV6_MULTICAST_HOPS == socket.IPV6_MULTICAST_HOPS
    assert IPV6_TCLASS == socket.IPV6_TCLASS
    assert (IPV6_RECVERR, IPV6_DONTFRAG) == (25, 62)     # <linux/in6.h>


def test_v6only_is_einval_once_bound():
    p = pcb()
    assert set_ipv6_option(p, IPV6_V6ONLY, 1, bound=False, stream=True) == 0
    assert get_ipv6_option(p, IPV6_V6ONLY, 64, stream=True) == 1
    assert set_ipv6_option(p, IPV6_V6ONLY, 0, bound=True, stream=True) == errno.EINVAL
    assert p.v6only


def test_hops_and_tclass_ranges_and_defaults():
    p = pcb()
    assert get_ipv6_option(p, IPV6_UNICAST_HOPS, 64, stream=False) == 64
    assert set_ipv6_option(p, IPV6_UNICAST_HOPS, 256, bound=False, stream=False) == errno.EINVAL
    assert set_ipv6_option(p, IPV6_UNICAST_HOPS, -2, bound=False, stream=False) == errno.EINVAL
    assert set_ipv6_option(p, IPV6_UNICAST_HOPS, 7, bound=False, stream=False) == 0
    assert get_ipv6_option(p, IPV6_UNICAST_HOPS, 64, stream=False) == 7
    assert set_ipv6_option(p, IPV6_UNICAST_HOPS, -1, bound=False, stream=False) == 0
    assert get_ipv6_option(p, IPV6_UNICAST_HOPS, 64, stream=False) == 64
    assert set_ipv6_option(p, IPV6_MULTICAST_HOPS, 5, bound=False, stream=False) == 0
    assert get_ipv6_option(p, IPV6_MULTICAST_HOPS, 64, stream=False) == 5
    assert set_ipv6_option(p, IPV6_MULTICAST_HOPS, -1, bound=False, stream=False) == 0
    assert get_ipv6_option(p, IPV6_MULTICAST_HOPS, 64, stream=False) == 1
    # multicast hops are no TCP socket's business
    assert set_ipv6_option(p, IPV6_MULTICAST_HOPS, 5, bound=False, stream=True) == errno.ENOPROTOOPT
    assert get_ipv6_option(p, IPV6_MULTICAST_HOPS, 64, stream=True) is None
    assert set_ipv6_option(p, IPV6_TCLASS, 0x100, bound=False, stream=True) == errno.EINVAL
    assert set_ipv6_option(p, IPV6_TCLASS, 0xB8, bound=False, stream=True) == 0
    assert get_ipv6_option(p, IPV6_TCLASS, 64, stream=True) == 0xB8
    assert set_ipv6_option(p, IPV6_TCLASS, -1, bound=False, stream=True) == 0
    assert p.tclass == 0


def test_flags_mtu_discover_and_unknown():
    p = pcb()
    for name, attr in ((IPV6_RECVERR, "recverr6"), (IPV6_DONTFRAG, "dontfrag")):
        assert set_ipv6_option(p, name, 1, bound=True, stream=False) == 0
        assert getattr(p, attr) is True
        assert get_ipv6_option(p, name, 64, stream=False) == 1
    assert set_ipv6_option(p, IPV6_MTU_DISCOVER, 6, bound=False, stream=False) == errno.EINVAL
    assert set_ipv6_option(p, IPV6_MTU_DISCOVER, 2, bound=False, stream=False) == 0
    assert get_ipv6_option(p, IPV6_MTU_DISCOVER, 64, stream=False) == 2
    assert set_ipv6_option(p, 9999, 1, bound=False, stream=False) == errno.ENOPROTOOPT
    assert get_ipv6_option(p, 9999, 64, stream=False) is None
