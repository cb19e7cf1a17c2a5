"""The IPv6 side of the command line's device options and of `tunstack ping`, without root:
every bad --addr/--peer-addr/--gw/--slaac/--no-ipv6/ping destination is one line with exit 2
naming what is wrong; good ones make the address plan and the Stack settings they say."""
from __future__ import annotations

import argparse

import pytest

from tools.cli import main as cli
from tools.cli.addrs import AddressPlan, check_addresses, parse_interface_address6, parse_option_address
from tools.cli.device import stack_config

from .test_cli_args import DEV, no_runner, usage_error

__all__ = ["no_runner"]          # the fixture, imported for the tests below

UP = ["up", *DEV]


@pytest.mark.parametrize("argv, words", [
    # --addr, IPv6
    ([*UP, "--addr", "fd00:77::2"], ["--addr fd00:77::2", "no prefix length", "X:X::X/P"]),
    ([*UP, "--addr", "fd00:77::zz/64"], ["not an IPv6 address", "X:X::X/P"]),
    ([*UP, "--addr", "fd00:77::2/129"], ["the prefix length must be 1..128"]),
    ([*UP, "--addr", "fd00:77::2/x"], ["the prefix length must be 1..128"]),
    ([*UP, "--addr", "fd00:77::2/0"], ["/0 would put every address on the link"]),
    ([*UP, "--addr", "::/64"], ["the unspecified address (::)"]),
    ([*UP, "--addr", "::1/128"], ["the loopback address (::1)"]),
    ([*UP, "--addr", "ff02::1/64"], ["a multicast address (ff00::/8)"]),
    ([*UP, "--addr", "::ffff:10.1.2.3/96"], ["IPv4-mapped", "A.B.C.D/P"]),
    ([*UP, "--addr", "fd00:77::/64"], ["subnet-router anycast address of fd00:77::/64"]),
    ([*UP, "--addr", "fe80::1%tsu0/64"], ["a zone (%...) does not belong"]),
    ([*UP, "--addr", "fd00:77::2/64", "--addr", "fd00:77:0::2/64"], ["--addr fd00:77:0::2/64: given twice"]),
    ([*UP, "--addr", "10.1.2.3/24", "--addr", "10.1.2.4/24"], ["10.1.2.4/24", "one IPv4 address per subnet"]),
    ([*UP, "--addr", "fd00:77::2/64", "--no-ipv6"], ["--addr fd00:77::2/64", "IPv6 is off (--no-ipv6)"]),
    ([*UP, "--addr", "fd00:77::2/64", "--mtu", "1000"], ["--mtu 1000", "at least 1280"]),
    # --peer-addr, IPv6
    ([*UP, "--addr", "fd00:77::2/64", "--peer-addr", "fd00:77::1"], ["--peer-addr", "no prefix length",
                                                                     "fd00:77::1/64"]),
    ([*UP, "--addr", "fd00:77::2/64", "--peer-addr", "fd00:78::1/64"],
     ["--peer-addr fd00:78::1/64", "not on --addr's subnet fd00:77::/64"]),
    ([*UP, "--addr", "fd00:77::2/64", "--addr", "fd00:79::2/64", "--peer-addr", "fd00:78::1/64"],
     ["not on the subnet of any IPv6 --addr (fd00:77::/64, fd00:79::/64)"]),
    ([*UP, "--addr", "fd00:77::2/64", "--peer-addr", "fd00:77::2/64"], ["the same address as --addr fd00:77::2/64"]),
    ([*UP, "--addr", "fd00:77::2/64", "--peer-addr", "fd00:77::1/64", "--peer-addr", "fd00:77::1/64"],
     ["--peer-addr fd00:77::1/64: given twice"]),
    ([*UP, "--addr", "10.1.2.3/24", "--peer-addr", "fd00:77::1/64"], ["no IPv6 --addr to share a subnet with"]),
    ([*UP, "--addr", "fd00:77::2/64", "--peer-addr", "10.1.2.1/24"], ["no IPv4 --addr to share a subnet with"]),
    ([*UP, "--addr", "10.1.2.3/24", "--peer-addr", "fe80::1/64", "--no-ipv6"], ["--peer-addr", "IPv6 is off"]),
    ([*UP, "--addr", "fd00:77::2/64", "--peer-addr", "ff02::2/64"], ["--peer-addr", "multicast"]),
    # --gw
    ([*UP, "--addr", "fd00:77::2/64", "--gw", "fd00:78::1"],
     ["--gw fd00:78::1", "not on the subnet of an IPv6 --addr (fd00:77::/64)", "link-local"]),
    ([*UP, "--addr", "10.1.2.3/24", "--gw", "fd00:78::1"], ["--gw fd00:78::1", "no IPv6 --addr"]),
    ([*UP, "--addr", "fd00:77::2/64", "--gw", "10.1.2.1"], ["--gw 10.1.2.1", "no IPv4 --addr"]),
    ([*UP, "--addr", "fd00:77::2/64", "--gw", "fd00:77::2"], ["--gw fd00:77::2", "own address"]),
    ([*UP, "--addr", "fd00:77::2/64", "--gw", "fd00:77::zz"], ["--gw fd00:77::zz", "not an IPv6 address"]),
    ([*UP, "--addr", "fd00:77::2/64", "--gw", "ff02::2"], ["--gw ff02::2", "multicast"]),
    ([*UP, "--addr", "fd00:77::2/64", "--gw", "::"], ["--gw ::", "unspecified"]),
    ([*UP, "--addr", "fd00:77::2/64", "--gw", "fe80::1%eth0"], ["--gw fe80::1%eth0", "the only one here is tsu0"]),
    ([*UP, "--addr", "fd00:77::2/64", "--gw", "fd00:77::1%tsu0"], ["--gw fd00:77::1%tsu0", "a zone names"]),
    ([*UP, "--addr", "fd00:77::2/64", "--gw", "fe80::1", "--gw", "fe80::2"],
     ["--gw fe80::2", "a second IPv6 gateway", "one default gateway per family"]),
    ([*UP, "--addr", "10.1.2.3/24", "--gw", "10.1.2.1", "--gw", "10.1.2.9"], ["a second IPv4 gateway"]),
    ([*UP, "--addr", "10.1.2.3/24", "--gw", "fe80::1", "--no-ipv6"], ["--gw fe80::1", "IPv6 is off"]),
    # --slaac, --no-ipv6
    ([*UP, "--addr", "10.1.2.3/24", "--no-ipv6", "--slaac"], ["--slaac needs IPv6"]),
    # ping destinations
    (["ping", *DEV, "--addr", "fd00:77::2/64", "fd00:77::zz"], ["'fd00:77::zz' is not an IPv6 address"]),
    (["ping", *DEV, "--addr", "fd00:77::2/64", "-4", "fd00:77::1"],
     ["fd00:77::1: Address family for hostname not supported"]),
    (["ping", *DEV, "--addr", "10.1.2.3/24", "-6", "10.1.2.1"],
     ["10.1.2.1: Address family for hostname not supported"]),
    (["ping", *DEV, "--addr", "fd00:77::2/64", "-4", "ip6-localhost"], ["ip6-localhost: Address family"]),
    (["ping", *DEV, "--addr", "fd00:77::2/64", "fe80::1"], ["link-local destination needs its interface",
                                                            "fe80::1%tsu0"]),
    (["ping", *DEV, "--addr", "fd00:77::2/64", "ff02::1"], ["needs its interface", "ff02::1%tsu0"]),
    (["ping", *DEV, "--addr", "fd00:77::2/64", "fe80::1%eth0"], ["no interface 'eth0'", "its device is tsu0"]),
    (["ping", *DEV, "--addr", "10.1.2.3/24", "--no-ipv6", "fd00:77::1"], ["IPv6 is off"]),
    (["ping", *DEV, "--addr", "10.1.2.3/24", "--no-ipv6", "-6", "localhost"], ["-6, but IPv6 is off"]),
    (["ping", *DEV, "--addr", "fd00:77::2/64", "-s", "65528", "fd00:77::1"], ["--size must be within 0..65527"]),
    (["ping", *DEV, "--addr", "10.1.2.3/24", "-s", "65508", "10.1.2.1"], ["--size must be within 0..65507"]),
    (["ping", *DEV, "--addr", "10.1.2.3/24", "-4", "-6", "10.1.2.1"], ["not allowed with argument"]),
    (["ping", *DEV, "--addr", "10.1.2.3/24", "gateway"], ["'gateway' is not an IPv4 address, an IPv6 address",
                                                         "localhost"]),
])
def test_bad_ipv6_arguments_are_one_line_usage_errors(argv: list[str], words: list[str], no_runner: None,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(argv, capsys)
    for word in words:
        assert word in err, (word, err)
    assert f"tunstack {argv[0]} --help" in err


def test_nc_takes_the_same_address_options(no_runner: None, capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(["nc", *DEV, "--addr", "fd00:77::/64", "10.1.2.1", "80"], capsys)
    assert "subnet-router anycast" in err and "tunstack nc --help" in err


def ns(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"addr": None, "peer_addr": None, "gw": None, "tun": "tsu0", "tap": None,
                               "no_ipv6": False}
    return argparse.Namespace(**{**base, **kw})


def test_good_plans_both_families() -> None:
    plan = check_addresses(ns(addr=["10.77.0.2/24", "fd00:77:0:0::2/64", "2001:db8::2/48"],
                              peer_addr=["10.77.0.1/24", "fd00:77::1/64", "fe80::1/64"],
                              gw=["10.77.0.1", "fe80::1%tsu0"]))
    assert isinstance(plan, AddressPlan)
    assert [a.prefix for a in plan.of(4)] == ["10.77.0.2/24"]
    assert [a.prefix for a in plan.of(6)] == ["fd00:77::2/64", "2001:db8::2/48"]     # RFC 5952 text
    assert [p.prefix for p in plan.peers_of(6)] == ["fd00:77::1/64", "fe80::1/64"]  # link-local: on the link
    assert (plan.gw4, plan.gw6) == ("10.77.0.1", "fe80::1")                          # the zone dropped
    # an IPv6-only stack, a gateway on a second subnet, a link-local --addr (Linux allows it)
    plan = check_addresses(ns(addr=["fd00:77::2/64", "fd00:78::2/64"], gw=["fd00:78::1"]))
    assert plan.of(4) == [] and plan.gw6 == "fd00:78::1"
    plan = check_addresses(ns(addr=["fe80::2/64"], peer_addr=["fe80::1/64"], gw=["fe80::1"]))
    assert plan.of(6)[0].value == 0xFE80 << 112 | 2
    # a /127 has no subnet-router anycast (RFC 6164): both ends usable; /128 too
    assert parse_interface_address6("fd00::/127") == (0xFD00 << 112, 127)
    assert parse_interface_address6("fd00::1/128")[1] == 128
    assert parse_option_address("10.1.2.3/24").family == 4
    # the IPv4-only form of every existing caller still works: a str for each option
    plan = check_addresses(ns(addr="10.1.2.3/24", peer_addr="10.1.2.1/24", gw="10.1.2.1"))
    assert plan.gw4 == "10.1.2.1" and len(plan.peers) == 1


def test_at_least_one_addr() -> None:
    with pytest.raises(ValueError, match="at least one address"):
        check_addresses(ns(addr=[]))


@pytest.mark.parametrize("argv, ipv6, ra", [
    ([], True, True),                                 # the default, on TUN as on TAP
    (["--slaac"], True, True),
    (["--no-slaac"], True, False),
    (["--no-ipv6"], False, False),
    (["--mtu", "1000"], False, False),                # Linux turns IPv6 off below 1280
])
def test_stack_config_from_the_options(argv: list[str], ipv6: bool, ra: bool) -> None:
    for dev in (["--tun", "t0"], ["--tap", "t0"]):
        args = cli.build_parser().parse_args(["up", *dev, "--addr", "10.1.2.3/24", *argv])
        cfg = stack_config(args)
        assert cfg.ipv6 is ipv6
        assert cfg.inet6 is not None and (cfg.inet6.accept_ra, cfg.inet6.autoconf) == (ra, ra)


@pytest.mark.parametrize("dest, flags, want", [
    ("fd00:77::1", [], ("fd00:77::1", 6)),
    ("FD00:77:0::1", ["-6"], ("fd00:77::1", 6)),
    ("fe80::1%tsu0", [], ("fe80::1%tsu0", 6)),
    ("ff02::1%tsu0", [], ("ff02::1%tsu0", 6)),
    ("10.1.2.1", ["-4"], ("10.1.2.1", 4)),
    ("localhost", [], ("::1", 6)),                    # RFC 6724: ::1 before 127.0.0.1, as glibc orders them
    ("localhost", ["-4"], ("127.0.0.1", 4)),
    ("localhost", ["--no-ipv6"], ("127.0.0.1", 4)),
    ("ip6-localhost", [], ("::1", 6)),
])
def test_ping_destinations(dest: str, flags: list[str], want: tuple[str, int]) -> None:
    p = cli.build_parser()
    args = p.parse_args(["ping", *DEV, "--addr", "10.1.2.3/24", *flags, dest])
    cli.check_ping_options(args.cmd_parser, args)
    assert (args.dest_addr, args.dest_family) == want


def test_help_names_the_ipv6_options(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("up", "ping", "nc"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for opt in ("--addr ADDR/P", "--peer-addr ADDR/P", "--gw G", "--slaac, --no-slaac", "--no-ipv6",
                    "X:X::X/P", "link-local"):
            assert opt in text, (command, opt)
    with pytest.raises(SystemExit):
        cli.main(["ping", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "-4 " in text and "-6 " in text and "fe80::1%DEV" in text and "65527" in text
