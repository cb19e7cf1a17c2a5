"""AF_INET6 socket addresses (stack/sockaddr.py) against CPython's real AF_INET6 socket on this
machine: the same exception types and messages for the same bad arguments, the same address
for the same literal.  Only literals and argument errors are compared with the real socket
(a name would ask this machine's resolver, whose answer depends on its network); the hosts
table is checked against the answers glibc gives for /etc/hosts."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from stack.sockaddr import (
    format_inet,
    format_inet6,
    parse_inet,
    parse_inet6,
    resolve_host,
    resolve_host6,
    scope_index,
)

HOSTS: dict[str, Any] = {"v6.test": "2001:db8::1", "both.test": ("10.0.0.1", "fd00::1", "fd00::2"),
                         "v4.test": "10.0.0.9", "mapped.test": "::ffff:10.0.0.7"}


class Index:
    """`if_nametoindex` of a host with the given interfaces (OSError for others, as Python's)."""

    def __init__(self, **names: int) -> None:
        self.names = names

    def __call__(self, name: str) -> int:
        if name not in self.names:
            raise OSError("no interface with this name")
        return self.names[name]


LO = socket.if_nametoindex("lo")


@pytest.fixture
def real6() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        yield sock
    finally:
        sock.close()


def outcome(call: Any) -> Any:
    """A call's result, or the exception's type and args when it is an argument error (what
    CPython raises before the kernel is asked); "kernel" for the kernel's own OSError."""
    try:
        return ("ok", call())
    except socket.gaierror as exc:
        return (type(exc).__name__, exc.args)
    except (TypeError, OverflowError, ValueError) as exc:
        return (type(exc).__name__, exc.args)
    except OSError as exc:
        if exc.errno is None:                # setipaddr's own: "address family mismatched"
            return ("OSError", exc.args)
        return ("kernel", exc.errno)


# Arguments that fail in CPython's getsockaddrarg / setipaddr without any name lookup
BAD_ARGUMENTS: list[object] = [
    "::1", ["::1", 0], None, 5,                                     # not a tuple
    ("::1",), ("::1", 0, 0, 0, 0), (), (1,),                        # wrong length (checked first)
    (1, 0), (None, 0), (b"::1", "0"), ("::1", "x"), ("::1", 0.5), ("::1", None),
    ("::1", 0, "a"), ("::1", 0, 0, "a"), ("::1", 0, 0.0), ("::1", 0, 2**20, "a"),
    ("::1", 70000), ("::1", -1), ("::1", 2**31), ("::1", -2**31 - 1), ("::1", 2**40),
    ("1.2.3.4", 2**40),                                             # a C int overflow: before the host
    ("::1", 0, 2**20), ("::1", 0, -1), ("::1", 0, 2**32 - 1),       # flowinfo beyond 20 bits
    ("::1\x00", 0), (b"::1\x00", 0), ("\u00e9" * 70 + ".x", 0),     # NUL, idna failure
    ("1.2.3.4", 0), ("1.2.3.4", 99999), ("127.1", 0), ("0x7f.1", 0), ("10.0.0.1", 0, 2**20),  # v4: EAI_ADDRFAMILY
    ("<broadcast>", 0), ("255.255.255.255", 0),                     # "address family mismatched"
    ("fe80::1%nosuchif0", 0), ("fe80::1%", 0), ("fe80::1%2x", 0), ("fe80::1%4294967296", 0),
    ("2001:db8::1%lo", 0), ("::1%lo", 0), ("ff05::1%lo", 0),        # a name only for link scopes
]

# Arguments CPython accepts (the kernel may still refuse to bind them)
GOOD_ARGUMENTS: list[tuple[Any, ...]] = [
    ("::1", 0), ("", 0), ("::", 0), ("0::0:1", 0), (b"::1", 0), (bytearray(b"::1"), 0),
    ("::1", True), ("::1", 0, 2**32), ("::1", 0, 2**33 + 5), ("::1", 0, 0, -1), ("::1", 0, 0, 2**32 + 7),
    ("::1", 0, True, True), ("::1", 0, 0xFFFFF, 3), ("::ffff:127.0.0.1", 0), ("::FFFF:7f00:1", 0),
    ("2001:DB8::1", 0), ("1:2:3:4:5:6:7::", 0), ("::1.2.3.4", 0),
    ("fe80::1%lo", 0), ("fe80::1%lo", 0, 0, 5), (f"fe80::1%{LO}", 0), ("fe80::1%99", 0),
    ("fe80::1%4294967295", 0), ("ff02::1%lo", 0), ("ff01::1%lo", 0), ("2001:db8::1%7", 0), ("::ffff:1.2.3.4%1", 0),
]


@pytest.mark.parametrize("address", BAD_ARGUMENTS, ids=repr)
@pytest.mark.parametrize("what", ["bind", "connect", "sendto"])
def test_argument_errors_equal_cpython(real6: socket.socket, address: object, what: str) -> None:
    calls = {"bind": lambda: real6.bind(address), "connect": lambda: real6.connect(address),
             "sendto": lambda: real6.sendto(b"", address)}
    expected = outcome(calls[what])
    assert expected[0] not in ("ok", "kernel"), expected   # the case must fail in the parser
    assert outcome(lambda: parse_inet6(address, HOSTS, Index(lo=LO), what)) == expected


@pytest.mark.parametrize("address", GOOD_ARGUMENTS, ids=repr)
def test_accepted_like_cpython(real6: socket.socket, address: tuple[Any, ...]) -> None:
    real = outcome(lambda: real6.bind(address))
    assert real[0] in ("ok", "kernel"), real
    addr, port, flowinfo, scope_id = parse_inet6(address, HOSTS, Index(lo=LO), "bind")
    if real[0] == "ok":        # the kernel bound it: same address, same port
        host, real_port = real6.getsockname()[:2]
        assert format_inet6(addr, port)[0] == host
        assert port in (0, real_port)
    # the flowinfo and scope_id CPython puts in the sockaddr_in6: taken modulo 2**32
    extra = [int(v) % 2**32 for v in (*address[2:], 0, 0)[:2]]
    assert [flowinfo, scope_id] == extra


def test_zone_of_a_text_is_checked_then_replaced_by_the_tuple() -> None:
    # CPython overwrites sin6_scope_id with the tuple's 4th item: Linux then refuses a
    # link-local bind named only by its text (EINVAL), as it does here.
    ll = int.from_bytes(socket.inet_pton(socket.AF_INET6, "fe80::1"), "big")
    assert parse_inet6(("fe80::1%eth9", 80), HOSTS, Index(eth9=9)) == (ll, 80, 0, 0)
    assert parse_inet6(("fe80::1%eth9", 80, 0, 4), HOSTS, Index(eth9=9)) == (ll, 80, 0, 4)
    assert resolve_host6("fe80::1%eth9", HOSTS, Index(eth9=9)) == (ll, 9)   # getaddrinfo keeps it
    with pytest.raises(socket.gaierror) as exc:
        parse_inet6(("fe80::1%eth9", 80), HOSTS, Index(eth0=2))
    assert exc.value.args == (socket.EAI_NONAME, "Name or service not known")


@pytest.mark.parametrize("text", ["fe80::1%lo", f"fe80::1%{LO}", "fe80::1%99", "ff02::1%lo", "ff01::1%lo",
                                  "2001:db8::1%7", "::1%0", "FE80::A%lo", "fe80::1%4294967295"])
def test_zone_index_equals_getaddrinfo(text: str) -> None:
    (*_, sockaddr), = socket.getaddrinfo(text, 1, socket.AF_INET6, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)
    addr, index = resolve_host6(text, {}, socket.if_nametoindex)
    assert (format_inet6(addr, 1)[0], index) == (sockaddr[0], sockaddr[3])


@pytest.mark.parametrize("text", ["fe80::1%nosuchif0", "2001:db8::1%lo", "ff05::1%lo", "fe80::1%", "fe80::1%1 ",
                                  "fe80::1%%", "fe80::1%-1", "fe80::1%+1"])
def test_bad_zone_is_eai_noname_as_getaddrinfo(text: str) -> None:
    with pytest.raises(socket.gaierror) as real:
        socket.getaddrinfo(text, 1, socket.AF_INET6, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)
    with pytest.raises(socket.gaierror) as ours:
        resolve_host6(text, {}, socket.if_nametoindex)
    assert ours.value.args == real.value.args


def test_scope_index_prefers_a_name_on_link_scopes_only() -> None:
    ll = 0xFE80 << 112 | 1
    assert scope_index(ll, "7", Index(**{"7": 3})) == 3            # an interface called "7" first
    assert scope_index(0x2001_0DB8 << 96, "7", Index(**{"7": 3})) == 7
    assert scope_index(ll, "eth0", Index()) is None


FORMAT_VALUES = [1, 0xFFFF0A000001, 0x01020304, 0xFFFF00000A000001, 0, 0xFE80 << 112 | 0xFC_00FF_FE00_0001,
                 0x2001_0DB8_0000_0000_0001_0000_0000_0001, 0x2001_0DB8_0000_0001_0000_0000_0000_0001,
                 0x2001_0DB8 << 96, (1 << 128) - 1, 1 << 112, 0xFF02 << 112 | 1]


@pytest.mark.parametrize("value", FORMAT_VALUES)
def test_format_is_inet_ntop(value: int) -> None:
    assert format_inet6(value, 5, 1, 2) == (socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big")), 5, 1, 2)


def test_format_shapes() -> None:
    assert format_inet6(0xFFFF_0A00_0001, 5000) == ("::ffff:10.0.0.1", 5000, 0, 0)   # Linux's mapped peer
    assert format_inet6(0xFE80 << 112 | 1, 1, 0, 4) == ("fe80::1", 1, 0, 4)          # no "%zone" in the text


# --- the hosts table (glibc's /etc/hosts answers) -------------------------------------------------------
def test_names_from_the_hosts_table() -> None:
    idx = Index()
    assert resolve_host6("v6.test", HOSTS, idx) == (0x2001_0DB8 << 96 | 1, 0)
    assert resolve_host6("both.test", HOSTS, idx) == (0xFD00 << 112 | 1, 0)       # the first IPv6 value
    assert resolve_host6("mapped.test", HOSTS, idx) == (0xFFFF_0A00_0007, 0)
    assert parse_inet6(("v6.test", 53), HOSTS, idx) == (0x2001_0DB8 << 96 | 1, 53, 0, 0)
    assert parse_inet6((b"v6.test", 53, 1, 2), HOSTS, idx) == (0x2001_0DB8 << 96 | 1, 53, 1, 2)
    # a name with IPv4 values only is not found for AF_INET6 (glibc without AI_V4MAPPED: on a host
    # whose /etc/hosts has "127.0.0.1 localhost" only, bind(("localhost", 0)) is EAI_NONAME)
    for name in ("v4.test", "no.such.test", "V6.TEST"):
        with pytest.raises(socket.gaierror) as exc:
            parse_inet6((name, 53), HOSTS, idx)
        assert exc.value.args == (socket.EAI_NONAME, "Name or service not known")
    # and the other way round for AF_INET: names with IPv4 values, IPv6 literals refused
    assert resolve_host("both.test", HOSTS) == 0x0A000001
    with pytest.raises(socket.gaierror) as exc:
        resolve_host("v6.test", HOSTS)
    assert exc.value.args == (socket.EAI_NONAME, "Name or service not known")


def test_name_errors_before_range_errors() -> None:
    # the host is resolved before the port's and flowinfo's ranges are checked (CPython's order)
    with pytest.raises(socket.gaierror):
        parse_inet6(("no.such.test", 99999), HOSTS, Index())
    with pytest.raises(socket.gaierror):
        parse_inet6(("no.such.test", 0, 2**20), HOSTS, Index())
    with pytest.raises(OverflowError, match=r"^connect\(\): port must be 0-65535\.$"):
        parse_inet6(("no.such.test", 2**31), HOSTS, Index(), "connect")


# --- AF_INET, where the shared code changed --------------------------------------------------------------
V4_ARGUMENTS: list[object] = ["x", ("127.0.0.1",), ("127.0.0.1", 70000), ("127.0.0.1", -1), ("127.0.0.1", 2**40),
                              ("1.2.3.4", 2**40), ("127.0.0.1\x00", 1), ("::1", 0), ("::1", 99999), ("::1%lo", 0),
                              ("2001:db8::1", 0), ((1, 2), 0), ("127.0.0.1", "1"), ("127.0.0.1", 1.0)]


@pytest.mark.parametrize("address", V4_ARGUMENTS, ids=repr)
def test_inet_argument_errors_equal_cpython(address: object) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as real:
        expected = outcome(lambda: real.bind(address))
    assert expected[0] not in ("ok", "kernel")
    assert outcome(lambda: parse_inet(address, HOSTS, "bind")) == expected


@pytest.mark.parametrize("address", [("127.0.0.1", 0), ("127.1", 0), ("0x7f.1", 0), ("127.0.0.1", True),
                                     ("::ffff:127.0.0.1", 0), ("", 0), (b"127.0.0.1", 0)], ids=repr)
def test_inet_literals_equal_cpython(address: tuple[Any, ...]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as real:
        real.bind(address)
        host = real.getsockname()[0]
    assert format_inet(*parse_inet(address, HOSTS))[0] == host
