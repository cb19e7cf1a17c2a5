"""Which address a forwarded connection shows the guest (tools/gateway/portfwd.py
guest_visible_source): the client's own where the address model allows it, else None -- the
gateway address, the documented substitute (slirp4netns shows it for every client)."""
from __future__ import annotations

import pytest

from tools.gateway.policy import AddressModel
from tools.gateway.portfwd import ForwardError, guest_visible_source, host_has_address

MODEL = AddressModel.from_cidr("10.0.2.0/24")
HOST_ADDRS = {"192.168.1.5"}


@pytest.mark.parametrize("client, shown", [
    ("198.51.100.7", "198.51.100.7"),          # a client elsewhere: itself
    ("::ffff:198.51.100.7", "198.51.100.7"),   # the same through a dual-stack listener
    ("10.99.0.2", "10.99.0.2"),                # private, but not the guest's network
    ("127.0.0.1", None),                       # the host's loopback
    ("127.3.4.5", None),
    ("::1", None),
    ("192.168.1.5", None),                     # another address of the host itself
    ("::ffff:192.168.1.5", None),
    ("2001:db8::7", None),                     # an IPv6 client of the IPv4 guest
    ("10.0.2.2", None),                        # inside the guest's network: the gateway...
    ("10.0.2.57", None),                       # ... or a neighbour the guest would ARP for
    ("10.0.2.255", None),
    ("169.254.3.4", None),                     # link-local: on-link for the guest
    ("0.1.2.3", None),
    ("240.0.0.1", None),
    ("fe80::1%eth0", None),
])
def test_guest_visible_source(client: str, shown: str | None) -> None:
    assert guest_visible_source(client, MODEL, HOST_ADDRS.__contains__) == shown


def test_host_has_address_asks_the_kernel() -> None:
    assert host_has_address("127.0.0.1")
    assert not host_has_address("198.51.100.7")      # TEST-NET-2: no host here has it


def test_forward_error_keeps_the_api_desc_apart_from_the_detail() -> None:
    err = ForwardError("bad request: add_hostfwd: slirp_add_hostfwd failed", "tcp 127.0.0.1:80: in use")
    assert err.desc == "bad request: add_hostfwd: slirp_add_hostfwd failed"
    assert str(err) == "bad request: add_hostfwd: slirp_add_hostfwd failed (tcp 127.0.0.1:80: in use)"
