"""The gateway's address model and outbound policy (tools/gateway/policy.py): slirp4netns's
addresses, the host loopback and metadata switches, what is never relayed."""
from __future__ import annotations

import ipaddress

import pytest

from tools.gateway.policy import AddressModel, Policy, Refuse, Relay


def test_slirp4netns_addresses_by_default_and_from_cidr() -> None:
    m = AddressModel.from_cidr()
    assert (str(m.gateway), str(m.dns), str(m.guest)) == ("10.0.2.2", "10.0.2.3", "10.0.2.100")
    assert (str(m.gateway6), str(m.dns6)) == ("fd00::2", "fd00::3")
    m = AddressModel.from_cidr("10.42.7.55/24")           # any address of the network
    assert (str(m.gateway), str(m.guest)) == ("10.42.7.2", "10.42.7.100")


@pytest.mark.parametrize("cidr, message", [
    ("10.0.2.0/26", "/26 is too small: the guest is .100"),
    ("nonsense", "not an IPv4 network"),
    ("127.0.0.0/8", "not a network a guest can live on"),
])
def test_bad_cidr_is_one_clear_error(cidr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AddressModel.from_cidr(cidr)


def test_outbound_policy() -> None:
    p = Policy(AddressModel.from_cidr())
    assert p.outbound("192.0.2.10", 80) == Relay("192.0.2.10", 80)
    assert p.outbound("2001:db8::10", 443) == Relay("2001:db8::10", 443)
    gw = p.outbound("10.0.2.2", 22)
    assert isinstance(gw, Refuse) and gw.how == "port"                 # host loopback off by default
    assert Policy(p.model, allow_host_loopback=True).outbound("10.0.2.2", 22) == Relay("127.0.0.1", 22)
    assert Policy(p.model, allow_host_loopback=True).outbound("fd00::2", 22) == Relay("::1", 22)
    for direct in ("127.0.0.1", "127.1.2.3", "::1"):                    # never straight to loopback
        v = p.outbound(direct, 22)
        assert isinstance(v, Refuse) and v.how == "port", direct
    meta = p.outbound("169.254.169.254", 80)
    assert isinstance(meta, Refuse) and meta.how == "admin"
    assert Policy(p.model, allow_metadata=True).outbound("169.254.169.254", 80) == Relay("169.254.169.254", 80)
    assert isinstance(p.outbound("10.0.2.3", 80), Refuse)                # DNS address: DNS only
    neighbour = p.outbound("10.0.2.77", 80)
    assert isinstance(neighbour, Refuse) and neighbour.how == "host"
    for nothing in ("224.0.0.1", "10.0.2.255", "0.0.0.0", "ff02::1"):
        v = p.outbound(nothing, 80)
        assert isinstance(v, Refuse) and v.how == "drop", nothing
    assert ipaddress.ip_address(p.model.guest) in p.model.network


def test_verdicts_are_remembered_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flow's verdict is computed once per (destination, port) and kept, at most
    VERDICTS_KEPT of them; the policies' own answers are unchanged by it."""
    import tools.gateway.policy as policy
    monkeypatch.setattr(policy, "VERDICTS_KEPT", 3)
    p = Policy(AddressModel.from_cidr())
    first = p.outbound("192.0.2.10", 80)
    assert p.outbound("192.0.2.10", 80) is first
    assert p.outbound("192.0.2.10", 81) == Relay("192.0.2.10", 81)
    assert p.outbound("10.0.2.2", 22) == Refuse("port", "the host's loopback is off (--allow-host-loopback)")
    assert len(p.__dict__["_verdicts"]) == 3
    p.outbound("192.0.2.11", 80)                          # a fourth: the kept ones start over
    assert len(p.__dict__["_verdicts"]) == 1
    assert Policy(AddressModel.from_cidr(), allow_host_loopback=True).outbound("10.0.2.2", 22) == Relay("127.0.0.1", 22)
