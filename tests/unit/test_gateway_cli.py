"""`tunstack gateway`'s command lines (tools/gateway/cli.py): its own options into
GatewayOptions, slirp4netns's through the compatibility mode, and the one-line errors."""
from __future__ import annotations

import ipaddress
import os
import socket

import pytest

from tools.gateway.args import parse_slirp4netns_argv
from tools.gateway.cli import build_parser, main, options_from_args, options_from_slirp4netns, split_command
from tools.gateway.main import GatewayOptions


def _options(argv: list[str]) -> GatewayOptions:
    ours, command = split_command(argv)
    p = build_parser()
    return options_from_args(p, p.parse_args(ours), command)


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        _options(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tunstack: error: ")
    return err


def test_pid_form_defaults() -> None:
    o = _options(["1234"])
    assert (o.target and o.target.net, o.target and o.target.user) == ("/proc/1234/ns/net", "/proc/1234/ns/user")
    assert (o.watch_pid, o.watch_path, o.ifname, o.mtu, o.tun, o.configure) == (1234, None, "tap0", 65520, False, False)
    assert not o.allow_host_loopback and not o.allow_metadata and o.ipv6 and o.offload
    assert (str(o.model.gateway), o.dns.address, str(o.model.guest)) == ("10.0.2.2", "10.0.2.3", "10.0.2.100")
    assert (o.flows.max_flows, o.flows.udp_one_way, o.flows.udp_two_way) == (4096, 30.0, 180.0)
    assert o.busy_poll == 50e-6
    assert _options(["1", "--busy-poll", "0"]).busy_poll == 0.0
    assert _options(["1", "--busy-poll", "200"]).busy_poll == pytest.approx(200e-6)


def test_netns_form_with_ifname_and_options() -> None:
    o = _options(["--netns", "guest", "eth7", "-c", "-m", "1500", "--cidr", "192.168.9.0/24",
                  "--allow-host-loopback", "--max-flows", "10", "--udp-timeout", "5", "--tun"])
    assert o.target is not None and o.target.net == "/run/netns/guest" and o.watch_path == "/run/netns/guest"
    assert (o.ifname, o.mtu, o.configure, o.tun, o.allow_host_loopback) == ("eth7", 1500, True, True, True)
    assert o.model.network == ipaddress.IPv4Network("192.168.9.0/24") and o.dns.address == "192.168.9.3"
    assert (o.flows.max_flows, o.flows.udp_one_way) == (10, 5.0)
    assert _options(["--netns", "/proc/77/ns/net", "--tun"]).ifname == "tun0"


def test_command_form() -> None:
    o = _options(["--allow-host-loopback", "--", "curl", "-v", "--", "x"])
    assert o.command == ["curl", "-v", "--", "x"] and o.target is None


def test_dns_options() -> None:
    assert _options(["1", "--dns-forward", "10.0.2.53"]).dns.address == "10.0.2.53"
    assert not _options(["1", "--disable-dns"]).dns.enabled


@pytest.mark.parametrize(("argv", "words"), [
    ([], "no target"),
    (["--", ], "no target"),
    (["12", "--", "sh"], "not both"),
    (["12", "-m", "40"], "--mtu must be within 68..65521"),
    (["12", "--max-flows", "0"], "--max-flows"),
    (["12", "--udp-timeout", "0"], "--udp-timeout"),
    (["12", "--busy-poll", "-1"], "--busy-poll must be within 0..1000"),
    (["12", "--busy-poll", "5000"], "--busy-poll must be within 0..1000"),
    (["12", "--cidr", "10.0.0.0/30"], "too small"),
    (["12", "--dns-forward", "fd00::3"], "not an IPv4 address"),
    (["12", "--macaddress", "02:00:00:00:00:01"], "--macaddress needs --configure"),
    (["12", "averyveryverylongname"], "bad IFNAME"),
    (["--netns", "a b"], "not a network namespace"),
    (["12", "--ready-fd", "987"], "not an open file descriptor"),
])
def test_usage_errors_are_one_line(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert words in _usage_error(argv, capsys)


def test_slirp4netns_command_line_maps_to_its_defaults(tmp_path: object) -> None:
    a = parse_slirp4netns_argv(["--configure", "--mtu=1500", "--disable-host-loopback", "-r", "3",
                                "--netns-type=path", "/proc/self/ns/net", "tap9"])
    o = options_from_slirp4netns(a)
    assert (o.ifname, o.mtu, o.configure, o.allow_host_loopback, o.ready_fd) == ("tap9", 1500, True, False, 3)
    assert o.target is not None and o.target.net == "/proc/self/ns/net" and o.watch_path == "/proc/self/ns/net"
    assert not o.ipv6 and o.prog == "slirp4netns"
    o = options_from_slirp4netns(parse_slirp4netns_argv([str(os.getpid())]))
    assert o.allow_host_loopback and o.watch_pid == os.getpid()        # slirp4netns: loopback on by default
    assert options_from_slirp4netns(parse_slirp4netns_argv(["-6", "1"])).ipv6


def test_slirp4netns_help_version_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--as", "slirp4netns", "--help"], "9.9") == 0
    assert "--netns-type" in capsys.readouterr().out          # what rootlesskit looks for
    assert main(["--as=slirp4netns", "--version"], "9.9") == 0
    assert capsys.readouterr().out.startswith("slirp4netns version ")
    assert main(["--as", "slirp4netns", "--mtu=x", "1"], "9.9") == 1
    assert capsys.readouterr().err.startswith("slirp4netns: ")


def test_outbound_addr_resolved_and_checked(capsys: pytest.CaptureFixture[str]) -> None:
    o = _options(["1", "--outbound-addr", "127.0.0.1", "--outbound-addr6", "::1"])
    assert (o.outbound.v4, o.outbound.v6) == ("127.0.0.1", "::1")
    assert _options(["1", "--outbound-addr", "lo"]).outbound.v4 == "127.0.0.1"       # an interface's address
    assert _options(["1"]).outbound.source(socket.AF_INET) is None
    assert "not an address of this host" in _usage_error(["1", "--outbound-addr", "192.0.2.250"], capsys)
    assert "no such interface" in _usage_error(["1", "--outbound-addr", "nosuchif0"], capsys)
    assert "not an IPv4 address" in _usage_error(["1", "--outbound-addr", "::1"], capsys)
    assert "no global IPv6 address" in _usage_error(["1", "--outbound-addr6", "lo"], capsys)
