"""The gateway's link services configured from its address model (tools/gateway/policy.py):
slirp4netns's 10.0.2.0/24 and fd00::/64, or what --cidr names."""
from __future__ import annotations

from protocols.addr import ip_to_int
from protocols.ipv6.addr import ip6_to_int
from tools.gateway.dhcp_serve import gateway_dhcp_config
from tools.gateway.policy import AddressModel
from tools.gateway.radv_serve import gateway_radv_config


def test_dhcp_follows_the_address_model() -> None:
    cfg = gateway_dhcp_config(AddressModel.from_cidr(), mtu=65520)
    assert (cfg.network, cfg.prefix_len, cfg.server, cfg.gateway) == \
        (ip_to_int("10.0.2.0"), 24, ip_to_int("10.0.2.2"), ip_to_int("10.0.2.2"))
    assert cfg.dns == (ip_to_int("10.0.2.3"),) and cfg.pool_start == ip_to_int("10.0.2.100") and cfg.mtu == 65520
    other = gateway_dhcp_config(AddressModel.from_cidr("192.168.7.0/24"))
    assert other.server == ip_to_int("192.168.7.2") and other.mtu is None


def test_router_advertisements_follow_the_address_model() -> None:
    cfg = gateway_radv_config(AddressModel.from_cidr(), 65520)
    (prefix,) = cfg.prefixes
    assert (prefix.prefix, prefix.prefix_len) == (ip6_to_int("fd00::"), 64) and prefix.on_link and prefix.autonomous
    assert cfg.rdnss == (ip6_to_int("fd00::3"),) and cfg.mtu == 65520 and cfg.router_lifetime == 1800
    other = gateway_radv_config(AddressModel.from_cidr(cidr6="fd42:1::/64"))
    assert other.prefixes[0].prefix == ip6_to_int("fd42:1::") and other.rdnss == (ip6_to_int("fd42:1::3"),)
    assert other.mtu == 0
