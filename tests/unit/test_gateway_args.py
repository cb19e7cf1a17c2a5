"""tools/gateway/args.py: pasta's -t/-u grammar, slirp4netns 1.2's command line (and the
argv rootlesskit builds), slirp4netns's JSON API codec -- case by case, exact messages."""
from __future__ import annotations

import ipaddress
import json

import pytest

from tools.gateway.args import (
    AddHostFwd,
    ApiError,
    ArgsError,
    HostFwd,
    HostFwdTable,
    ListHostFwd,
    PortForward,
    PortForwardSpec,
    PortRange,
    RemoveHostFwd,
    check_port_specs,
    format_add_reply,
    format_list_reply,
    format_remove_reply,
    parse_api_request,
    parse_port_spec,
    parse_slirp4netns_argv,
    slirp4netns_usage,
    slirp4netns_version,
)

# ─── pasta's port forwards ──────────────────────────────────────────────────────


def test_single_port_forwards_to_the_same_port() -> None:
    spec = parse_port_spec("tcp", "22")
    assert spec == PortForwardSpec("tcp", "ports", forwards=(PortForward(PortRange(22, 22), 22),))
    assert list(spec.mappings()) == [(22, 22)]


@pytest.mark.parametrize("text, pairs", [
    ("22:23", [(22, 23)]),
    ("22,25", [(22, 22), (25, 25)]),
    ("22-24", [(22, 22), (23, 23), (24, 24)]),
    ("22-24:32-34", [(22, 32), (23, 33), (24, 34)]),
    ("20-30,~22-29", [(20, 20), (21, 21), (30, 30)]),
    ("~21,20-22", [(20, 20), (22, 22)]),           # exclusions may come first
    ("80:8080,80:9090", [(80, 9090)]),             # a later item remaps, as pasta does
])
def test_port_lists_ranges_maps_and_exclusions(text: str, pairs: list[tuple[int, int]]) -> None:
    assert list(parse_port_spec("udp", text).mappings()) == pairs


@pytest.mark.parametrize("text, address, interface", [
    ("192.0.2.1/22", "192.0.2.1", None),
    ("192.0.2.1%eth0/22", "192.0.2.1", "eth0"),
    ("%eth0/22", None, "eth0"),
    ("[::1]/22", "::1", None),
    ("[192.0.2.1]/22", "192.0.2.1", None),           # brackets for IPv4 too, as pasta allows
    ("2001:db8::1/22", "2001:db8::1", None),
])
def test_address_and_interface_before_the_slash(text: str, address: str | None, interface: str | None) -> None:
    spec = parse_port_spec("tcp", text)
    assert (spec.address, spec.interface, list(spec.mappings())) == (address, interface, [(22, 22)])


@pytest.mark.parametrize("word", ["none", "auto", "all"])
def test_modes(word: str) -> None:
    assert parse_port_spec("tcp", word) == PortForwardSpec("tcp", word)  # type: ignore[arg-type]


def test_all_and_exclusion_only_skip_the_ephemeral_range() -> None:
    eph = PortRange(32768, 60999)
    every = list(parse_port_spec("tcp", "all").mappings(eph))
    assert len(every) == 65535 - len(eph) and (32768, 32768) not in every and (1, 1) in every
    spec = parse_port_spec("tcp", "~20000-20010")
    assert spec.mode == "all-except"
    ports = {h for h, _ in spec.mappings(eph)}
    assert 19999 in ports and 20011 in ports and not ports & set(range(20000, 20011))
    assert list(parse_port_spec("tcp", "none").mappings()) == list(parse_port_spec("tcp", "auto").mappings()) == []


@pytest.mark.parametrize("text, message", [
    ("", "empty port forward: give PORT[-PORT][:PORT[-PORT]], none, auto or all"),
    ("x", "bad port 'x' in port forward 'x': a port is a number 1-65535"),
    ("0", "port 0 out of range in port forward '0': a port is 1-65535"),
    ("65536", "port 65536 out of range in port forward '65536': a port is 1-65535"),
    ("-5", "bad port '' in port forward '-5': a port is a number 1-65535"),
    ("30-20", "empty port range '30-20' in port forward '30-20': the first port is above the last"),
    ("22-24:30-31", "'22-24:30-31' in port forward '22-24:30-31' maps 3 host port(s) to 2 guest port(s): "
                    "the two ranges must be as long"),
    ("22:", "bad port '' in port forward '22:': a port is a number 1-65535"),
    ("22,,23", "bad port '' in port forward '22,,23': a port is a number 1-65535"),
    ("1.2.3/22", "bad address '1.2.3' in port forward '1.2.3/22': an IPv4 or IPv6 address before the '/'"),
    ("/22", "nothing before the '/' in port forward '/22': give ADDR/, ADDR%IF/ or %IF/"),
    ("1.2.3.4%/22", "bad interface name '' in port forward '1.2.3.4%/22': 1-15 characters after the '%'"),
    ("%abcdefghijklmnop/22", "bad interface name 'abcdefghijklmnop' in port forward '%abcdefghijklmnop/22': "
                             "1-15 characters after the '%'"),
    ("1-10,~2-5,~5-6", "overlapping excluded ranges in port forward '1-10,~2-5,~5-6'"),
    ("\uff12", "bad port '\uff12' in port forward '\uff12': a port is a number 1-65535"),   # a digit, not ASCII
])
def test_bad_port_forwards_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ArgsError) as info:
        parse_port_spec("tcp", text)
    assert str(info.value) == message and "\n" not in message


def test_modes_stand_alone_per_protocol() -> None:
    check_port_specs([parse_port_spec("tcp", "22"), parse_port_spec("tcp", "80:8080"), parse_port_spec("udp", "none")])
    with pytest.raises(ArgsError, match=r"^-t none cannot be combined with other -t options$"):
        check_port_specs([parse_port_spec("tcp", "none"), parse_port_spec("tcp", "22")])
    with pytest.raises(ArgsError, match=r"^-u auto cannot be combined with other -u options$"):
        check_port_specs([parse_port_spec("udp", "53"), parse_port_spec("udp", "auto")])


# ─── slirp4netns's command line ─────────────────────────────────────────────────


def test_defaults_and_the_address_model() -> None:
    a = parse_slirp4netns_argv(["1234", "tap0"])
    assert (a.action, a.target_pid, a.tapname, a.mtu, a.configure) == ("run", 1234, "tap0", 1500, False)
    assert str(a.cidr) == "10.0.2.0/24"
    assert (str(a.model.gateway), str(a.model.dns), str(a.dhcp_start), str(a.model.guest)) == (
        "10.0.2.2", "10.0.2.3", "10.0.2.15", "10.0.2.100")
    assert a.ready_fd is None and a.exit_fd is None and a.api_socket is None and a.warnings == []
    assert parse_slirp4netns_argv(["1234"]).tapname == "tap0"     # the man page shows TAPNAME optional


def test_rootlesskit_argv_pid_form() -> None:
    # pkg/network/slirp4netns ConfigureNetwork: opts := {"--mtu", mtu, "-r", "3"} + flags + PID + tap
    argv = ["--mtu", "65520", "-r", "3", "--disable-host-loopback", "--cidr", "10.0.2.0/24",
            "--api-socket", "/run/user/1000/rk/.bp-slirp4netns.sock", "--enable-sandbox", "--enable-seccomp",
            "--enable-ipv6", "4242", "tap0"]
    a = parse_slirp4netns_argv(argv)
    assert (a.mtu, a.ready_fd, a.disable_host_loopback, a.target_pid, a.tapname) == (65520, 3, True, 4242, "tap0")
    assert a.api_socket == "/run/user/1000/rk/.bp-slirp4netns.sock"
    assert a.enable_sandbox and a.enable_seccomp and a.enable_ipv6
    assert "WARNING: --enable-seccomp is accepted and ignored: tunstack gateway installs no seccomp filter" \
        in a.warnings
    assert all(w.startswith("WARNING: ") and "\n" not in w for w in a.warnings)


def test_rootlesskit_argv_detached_netns_form(tmp_path: pytest.TempPathFactory) -> None:
    # detach-netns: "--userns-path=/proc/PID/ns/user", "--netns-type=path", PATH, then the tap
    netns = tmp_path / "netns"          # type: ignore[operator]
    netns.write_text("")
    a = parse_slirp4netns_argv(["--mtu", "1500", "-r", "3", "--userns-path=/proc/self/ns/user",
                                "--netns-type=path", str(netns), "tap0"])
    assert (a.netns_type, a.netns_path, a.target_pid, a.userns_path) == (
        "path", str(netns), None, "/proc/self/ns/user")


def test_podman_argv(tmp_path: pytest.TempPathFactory) -> None:
    # libpod networking_slirp4netns.go: basic flags, then "-c", "-r", "3", ["-e", "4"],
    # ["--api-socket", PATH], "--netns-type=path", NETNS, "tap0" (ExtraFiles: 3 = sync pipe, 4 = exit pipe)
    netns = tmp_path / "netns"          # type: ignore[operator]
    netns.write_text("")
    a = parse_slirp4netns_argv(["--disable-host-loopback", "--mtu=65520", "--enable-sandbox", "--enable-seccomp",
                                "-c", "-r", "3", "-e", "4", "--api-socket", "/tmp/c.net",
                                "--netns-type=path", str(netns), "tap0"])
    assert (a.configure, a.ready_fd, a.exit_fd, a.api_socket, a.netns_path, a.tapname, a.mtu) == (
        True, 3, 4, "/tmp/c.net", str(netns), "tap0", 65520)


def test_gnu_getopt_rules() -> None:
    a = parse_slirp4netns_argv(["123", "-c6", "-m1500", "tap1", "--conf", "-e", "7", "--exit-fd=8"])
    assert (a.configure, a.enable_ipv6, a.mtu, a.tapname, a.exit_fd) == (True, True, 1500, "tap1", 8)
    a = parse_slirp4netns_argv(["--", "123", "tap1"])
    assert (a.target_pid, a.tapname) == (123, "tap1")
    a = parse_slirp4netns_argv(["--outbound-addr=10.1.2.3", "--outbound-addr6", "eth0", "--disable-dns", "1", "t"])
    assert (a.outbound_addr, a.outbound_addr6, a.disable_dns) == ("10.1.2.3", "eth0", True)
    a = parse_slirp4netns_argv(["-c", "--macaddress", "02:00:00:00:00:0a", "1", "t"])
    assert a.macaddress == bytes.fromhex("02000000000a")
    a = parse_slirp4netns_argv(["-r", " +3", "1", "t", "extra"])      # strtol: blanks and a sign
    assert a.ready_fd == 3 and a.warnings == ["WARNING: too many arguments"]


@pytest.mark.parametrize("argv, action", [(["--help"], "help"), (["-h", "-m", "0"], "help"),
                                          (["1", "t", "--version"], "version"), (["-v", "0"], "version")])
def test_help_and_version_stop_before_the_checks(argv: list[str], action: str) -> None:
    assert parse_slirp4netns_argv(argv).action == action


@pytest.mark.parametrize("argv, message", [
    ([], "missing PID|PATH: slirp4netns [OPTION]... PID|PATH [TAPNAME]"),
    (["0", "tap0"], "PID must be a positive integer"),
    (["abc", "tap0"], "PID must be a positive integer"),
    (["-m", "0", "1", "t"], "MTU must be a positive integer (< 65522)"),
    (["-m", "65522", "1", "t"], "MTU must be a positive integer (< 65522)"),
    (["--mtu=15x", "1", "t"], "MTU must be a positive integer (< 65522)"),
    (["-r", "-1", "1", "t"], "ready-fd must be a non-negative integer"),
    (["-e", "x", "1", "t"], "exit-fd must be a non-negative integer"),
    (["--cidr", "10.0.2.0", "1", "t"], "invalid CIDR: 10.0.2.0"),
    (["--cidr", "10.0.2.0/26", "1", "t"], "prefix length needs to be 1-25"),
    (["--cidr", "300.0.2.0/24", "1", "t"], "invalid network address: 300.0.2.0"),
    (["--cidr", "10.0.2.100/24", "1", "t"],
     "CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24"),
    (["--macaddress", "02:00:00:00:00:0a", "1", "t"],
     "--macaddr cannot be specified when --configure or -c is not specified"),
    (["-c", "--macaddress", "02:00:00:00:0a", "1", "t"],
     "\"02:00:00:00:0a\" is an invalid MAC address: give 6 hex bytes separated by ':'"),
    (["--netns-type=path", "/nonexistent/netns", "t"],
     "existing path expected when --netns-type=path: /nonexistent/netns: No such file or directory"),
    (["--userns-path=/nonexistent/userns", "1", "t"], "userns path doesn't exist: /nonexistent/userns"),
    (["--netns-type=tapfd", "5"], "--netns-type=tapfd is not supported by tunstack gateway: give a PID or a path"),
    (["--netns-type=fd", "5", "t"], "--netns-type must be pid or path, not 'fd'"),
    (["--target-type=bess", "/tmp/bess.sock"],
     "--target-type=bess (User Mode Linux) is not supported by tunstack gateway"),
    (["--target-type=vm", "1", "t"], "--target-type must be either \"netns\" or \"bess\""),
    (["--bogus", "1", "t"], "option --bogus not recognized (see --help)"),
    (["--disable", "1", "t"], "option --disable not a unique prefix (see --help)"),
    (["-x", "1", "t"], "option -x not recognized (see --help)"),
    (["1", "t", "-m"], "option -m requires argument (see --help)"),
    (["1", "bad name"], "bad TAPNAME 'bad name': 1-15 characters, no '/' or space"),
    (["1", "abcdefghijklmnop"], "bad TAPNAME 'abcdefghijklmnop': 1-15 characters, no '/' or space"),
])
def test_bad_command_lines_say_what_is_wrong(argv: list[str], message: str) -> None:
    with pytest.raises(ArgsError) as info:
        parse_slirp4netns_argv(argv)
    assert str(info.value) == message and "\n" not in message


def test_deprecated_spellings_warn_as_slirp4netns_does() -> None:
    a = parse_slirp4netns_argv(["--no-host-loopback", "--create-sandbox", "1", "t"])
    assert a.disable_host_loopback and a.enable_sandbox
    assert a.warnings[0] == "WARNING: --no-host-loopback is deprecated, please use --disable-host-loopback instead."


def test_cidr_changes_every_derived_address() -> None:
    a = parse_slirp4netns_argv(["--cidr=10.8.0.0/16", "1", "t"])
    assert a.cidr == ipaddress.IPv4Network("10.8.0.0/16")
    assert (str(a.model.gateway), str(a.model.dns), str(a.model.guest)) == ("10.8.0.2", "10.8.0.3", "10.8.0.100")


def test_help_names_every_option_rootlesskit_and_podman_probe() -> None:
    text = slirp4netns_usage("slirp4netns")
    for name in ("--netns-type", "--enable-ipv6", "--cidr", "--disable-host-loopback", "--api-socket",
                 "--enable-sandbox", "--enable-seccomp", "--mtu", "--outbound-addr", "--disable-dns",
                 "--userns-path", "--ready-fd", "--exit-fd", "--configure", "--macaddress"):
        assert name in text, name
    assert slirp4netns_version("0.9").startswith("slirp4netns version 1.2.0")


# ─── slirp4netns's JSON API ─────────────────────────────────────────────────────


def test_add_request_as_rootlesskit_sends_it() -> None:
    # Go's json.Encoder: every field, an empty host_addr when no parent IP, a trailing newline
    data = b'{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"","host_port":8080,' \
           b'"guest_addr":"10.0.2.100","guest_port":80}}\n'
    assert parse_api_request(data) == AddHostFwd("tcp", "0.0.0.0", 8080, "10.0.2.100", 80)


def test_add_request_defaults() -> None:
    req = parse_api_request(b'{"execute": "add_hostfwd", "arguments": {"proto": "udp", "host_port": 53, '
                            b'"guest_port": 5353}}', default_guest="10.8.0.100")
    assert req == AddHostFwd("udp", "0.0.0.0", 53, "10.8.0.100", 5353)
    assert parse_api_request(b'{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":80.0,'
                             b'"guest_port":8080}}') == AddHostFwd("tcp", "0.0.0.0", 80, "10.0.2.100", 8080)


@pytest.mark.parametrize("arguments, what", [
    ({"host_port": 1, "guest_port": 1}, "proto"),
    ({"proto": "sctp", "host_port": 1, "guest_port": 1}, "proto"),
    ({"proto": "tcp", "host_addr": "::1", "host_port": 1, "guest_port": 1}, "host_addr"),
    ({"proto": "tcp", "host_addr": 7, "host_port": 1, "guest_port": 1}, "host_addr"),
    ({"proto": "tcp", "guest_port": 1}, "host_port"),
    ({"proto": "tcp", "host_port": "80", "guest_port": 1}, "host_port"),
    ({"proto": "tcp", "host_port": True, "guest_port": 1}, "host_port"),
    ({"proto": "tcp", "host_port": 65536, "guest_port": 1}, "host_port"),
    ({"proto": "tcp", "host_port": 1e300, "guest_port": 1}, "host_port"),
    ({"proto": "tcp", "host_port": 1, "guest_addr": "10.0.2", "guest_port": 1}, "guest_addr"),
    ({"proto": "tcp", "host_port": 1, "guest_port": 0}, "guest_port"),
    ({"proto": "tcp", "host_port": 1, "guest_port": -80}, "guest_port"),
])
def test_add_request_errors_name_the_argument(arguments: dict[str, object], what: str) -> None:
    req = parse_api_request(json.dumps({"execute": "add_hostfwd", "arguments": arguments}).encode())
    assert req == ApiError(f"bad request: add_hostfwd: bad arguments.{what}")


@pytest.mark.parametrize("data, desc", [
    (b"nojson", "bad request: cannot parse JSON"),
    (b'{"execute": NaN}', "bad request: cannot parse JSON"),
    (b"\xff\xfe", "bad request: cannot parse JSON"),
    (b"[" * 3000 + b"]" * 3000, "bad request: too large message"),
    (b"[" * 2000 + b"]" * 2000, "bad request: cannot parse JSON"),      # nesting past Python's recursion limit
    (b"[1]", "bad request: json_object() failed"),
    (b"{}", "bad request: no execute found"),
    (b'{"execute": 1}', "bad request: no execute found"),
    (b'{"execute": "foo"}', "bad request: unknown execute"),
    (b" " * 4096, "bad request: too large message"),
])
def test_bad_requests_get_slirp4netns_error_descriptions(data: bytes, desc: str) -> None:
    assert parse_api_request(data) == ApiError(desc)


def test_list_and_remove_requests() -> None:
    assert parse_api_request(b'{"execute": "list_hostfwd"}') == ListHostFwd()
    assert parse_api_request(b'{"execute": "remove_hostfwd", "arguments": {"id": 42}}') == RemoveHostFwd(42)
    assert parse_api_request(b'{"execute": "remove_hostfwd"}') == RemoveHostFwd(0)


def test_replies_are_byte_for_byte_slirp4netns_1_2() -> None:
    # recorded from slirp4netns 1.2.0 (Debian) over its API socket
    assert format_add_reply(1) == b'{"return":{"id":1}}'
    assert format_remove_reply() == b'{"return":{}}'
    assert format_list_reply([HostFwd(1, "tcp", "0.0.0.0", 18080, "10.0.2.100", 80)]) == (
        b'{"entries":[{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":18080,'
        b'"guest_addr":"10.0.2.100","guest_port":80}]}')
    assert format_list_reply([]) == b'{"entries":[]}'
    assert ApiError("bad request: unknown execute").encode() == b'{"error":{"desc":"bad request: unknown execute"}}'


def test_table_ids_grow_and_are_never_reused() -> None:
    table = HostFwdTable(limit=2)
    a = table.add(AddHostFwd("tcp", "0.0.0.0", 80, "10.0.2.100", 80))
    assert isinstance(a, HostFwd) and a.id == 1
    assert table.add(AddHostFwd("tcp", "0.0.0.0", 80, "10.0.2.100", 81)) == ApiError(
        "bad request: add_hostfwd: slirp_add_hostfwd failed")           # the same host socket twice
    b = table.add(AddHostFwd("udp", "0.0.0.0", 80, "10.0.2.100", 80))
    assert isinstance(b, HostFwd) and b.id == 2
    assert table.add(AddHostFwd("udp", "0.0.0.0", 81, "10.0.2.100", 80)) == ApiError(
        "bad request: add_hostfwd: too many forwards (limit 2)")
    assert table.remove(1) == a and table.remove(1) == ApiError("bad request: remove_hostfwd: bad arguments.id")
    c = table.add(AddHostFwd("tcp", "0.0.0.0", 80, "10.0.2.100", 80))
    assert isinstance(c, HostFwd) and c.id == 3 and table.list() == [b, c]
