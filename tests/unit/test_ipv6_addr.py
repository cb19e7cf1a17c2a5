"""IPv6 addresses (protocols/ipv6/addr.py): RFC 4291 text, prefixes, classes and scopes, the
solicited-node group (§2.7.1), 33:33 MACs (RFC 2464 §7), modified EUI-64 (App. A), RFC 7217
stable IIDs and RFC 5453 reserved IIDs, RFC 6724 source address selection (§10.1 examples)."""
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.ipv6 import addr as a6
from protocols.ipv6.addr import (
    ALL_NODES,
    ALL_ONES,
    IDGEN_RETRIES,
    SCOPE_GLOBAL,
    SCOPE_LINK_LOCAL,
    SCOPE_SITE_LOCAL,
    SourceCandidate,
    address_scope,
    common_prefix_len,
    eui64_iid,
    in_prefix,
    int_to_ip6,
    ip6_to_int,
    is_global,
    is_link_local,
    is_loopback,
    is_multicast,
    is_reserved_iid,
    is_unique_local,
    is_unspecified,
    is_v4_mapped,
    link_local_from_iid,
    multicast_flags,
    multicast_mac,
    multicast_scope,
    network,
    parse_prefix,
    policy_label,
    prefix_mask,
    select_source,
    solicited_node,
    stable_address,
    stable_iid,
    v4_from_mapped,
    v4_mapped,
    with_iid,
)

addresses = st.integers(min_value=0, max_value=ALL_ONES)
ip = ip6_to_int


# --- text ---------------------------------------------------------------------------------------
@given(addresses)
def test_text_round_trip_agrees_with_ipaddress(value: int) -> None:
    text = int_to_ip6(value)
    assert ip6_to_int(text) == value
    assert int(ipaddress.IPv6Address(text)) == value


def test_rfc5952_canonical_text() -> None:
    assert int_to_ip6(ip("2001:DB8:0:0:0:0:0:1")) == "2001:db8::1"                # §4.3 lower case, §4.2 ::
    assert int_to_ip6(ip("2001:db8:0:0:1:0:0:1")) == "2001:db8::1:0:0:1"          # §4.2.3 first of equal runs
    assert int_to_ip6(ip("2001:db8:0:1:1:1:1:1")) == "2001:db8:0:1:1:1:1:1"       # §4.2.2 no :: for one field
    assert int_to_ip6(ip("::ffff:192.0.2.1")) == "::ffff:192.0.2.1"               # §5 mapped in dotted form
    assert int_to_ip6(0) == "::" and int_to_ip6(1) == "::1"


@pytest.mark.parametrize("bad", ["", ":::", "1::2::3", "12345::", "g::1", "1.2.3.4", "fe80::1%eth0",
                                 "1:2:3:4:5:6:7:8:9", "::1\x00", " ::1", "::ffff:1.2.3"])
def test_bad_text_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="not an IPv6 address"):
        ip6_to_int(bad)


def test_int_range_checked() -> None:
    assert ip6_to_int(5) == 5
    for bad in (-1, 1 << 128):
        with pytest.raises(ValueError, match="out of range"):
            ip6_to_int(bad)


# --- prefixes -----------------------------------------------------------------------------------
def test_prefixes() -> None:
    assert parse_prefix("fd00::/64") == (0xFD00 << 112, 64)
    assert parse_prefix("fd00:77::2/64") == (ip("fd00:77::2"), 64)   # host bits kept: an interface address
    assert parse_prefix("2001:db8::1") == (ip("2001:db8::1"), 128)
    assert parse_prefix("::/0") == (0, 0)
    assert prefix_mask(0) == 0 and prefix_mask(128) == ALL_ONES
    assert prefix_mask(64) == ((1 << 64) - 1) << 64
    assert network(ip("fd00:77::2"), 64) == ip("fd00:77::")
    assert in_prefix(ip("fe80::1234"), ip("fe80::"), 10) and not in_prefix(ip("fec0::1"), ip("fe80::"), 10)


@pytest.mark.parametrize("bad", ["fd00::/129", "fd00::/-1", "fd00::/x", "fd00::/", "fd00::/ 64", "10.0.0.0/8"])
def test_bad_prefixes(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_prefix(bad)


@given(addresses, st.integers(min_value=0, max_value=128))
def test_prefix_properties(value: int, plen: int) -> None:
    net = network(value, plen)
    assert in_prefix(value, net, plen)
    assert int(ipaddress.IPv6Network((value, plen), strict=False).network_address) == net
    assert common_prefix_len(value, net) >= plen


@given(addresses, addresses)
def test_common_prefix_len(x: int, y: int) -> None:
    n = common_prefix_len(x, y)
    bx, by = format(x, "0128b"), format(y, "0128b")
    if x == y:
        assert n == 128
    else:
        assert bx[:n] == by[:n] and bx[n] != by[n]


# --- classes and scopes (RFC 4291 §2.4, RFC 6890) --------------------------------------------------
def test_classes() -> None:
    assert is_unspecified(ip("::")) and not is_unspecified(ip("::1"))
    assert is_loopback(ip("::1")) and not is_loopback(ip("::2"))
    assert is_link_local(ip("fe80::1")) and is_link_local(ip("febf:ffff::1"))
    assert not is_link_local(ip("fec0::1")) and not is_link_local(ip("fe7f::1"))
    assert is_unique_local(ip("fc00::1")) and is_unique_local(ip("fdff::1")) and not is_unique_local(ip("fe00::1"))
    assert is_multicast(ip("ff02::1")) and is_multicast(ip("ff0e::1")) and not is_multicast(ip("fe80::1"))
    assert is_v4_mapped(ip("::ffff:10.0.0.1")) and not is_v4_mapped(ip("::10.0.0.1"))
    assert not is_v4_mapped(ip("64:ff9b::10.0.0.1"))


def test_v4_mapped_round_trip() -> None:
    assert v4_mapped(0x0A000001) == ip("::ffff:10.0.0.1")
    assert v4_from_mapped(ip("::ffff:10.0.0.1")) == 0x0A000001
    assert v4_from_mapped(ip("2001:db8::1")) is None


def test_multicast_scope_and_flags() -> None:
    assert multicast_scope(ip("ff01::1")) == 1
    assert multicast_scope(ip("ff02::1")) == SCOPE_LINK_LOCAL
    assert multicast_scope(ip("ff05::2")) == SCOPE_SITE_LOCAL
    assert multicast_scope(ip("ff1e::1234")) == SCOPE_GLOBAL and multicast_flags(ip("ff1e::1234")) == 1
    assert multicast_flags(ip("ff3e:30:2001:db8::1")) == 3    # RFC 3306 prefix-based: P and T


@pytest.mark.parametrize(("text", "scope"), [
    ("ff01::1", 1), ("ff02::1", 2), ("ff05::1", 5), ("ff08::1", 8), ("ff0e::1", 0xE),
    ("fe80::1", 2), ("::1", 2), ("fec0::1", 5), ("fd00::1", 0xE), ("2001:db8::1", 0xE),
    ("::ffff:127.0.0.1", 2), ("::ffff:169.254.1.1", 2), ("::ffff:10.0.0.1", 0xE),   # RFC 6724 §3.2
])
def test_address_scope(text: str, scope: int) -> None:
    assert address_scope(ip(text)) == scope


@pytest.mark.parametrize(("text", "glob"), [
    ("2001:4860:4860::8888", True), ("2606:4700::1111", True), ("64:ff9b::1.2.3.4", True),
    ("::", False), ("::1", False), ("::ffff:1.2.3.4", False), ("64:ff9b:1::1", False), ("100::1", False),
    ("2001::1", False), ("2001:2::1", False), ("2001:db8::1", False), ("2001:10::1", False),
    ("3fff::1", False), ("5f00::1", False), ("fc00::1", False), ("fd12:3456::1", False), ("fe80::1", False),
    ("fec0::1", False),
    ("2001:1::1", True), ("2001:1::2", True), ("2001:3::1", True), ("2001:4:112::1", True),
    ("2001:20::1", True), ("2001:1::4", False),
    ("ff0e::1", True), ("ff02::1", False), ("ff05::1", False),
])
def test_is_global_follows_the_rfc6890_registry(text: str, glob: bool) -> None:
    assert is_global(ip(text)) is glob


# --- multicast mappings ------------------------------------------------------------------------------
def test_solicited_node_rfc4291_example() -> None:
    # RFC 4291 §2.7.1: 4037::01:800:200E:8C6C -> FF02::1:FF0E:8C6C
    assert solicited_node(ip("4037::01:800:200E:8C6C")) == ip("ff02::1:ff0e:8c6c")
    assert solicited_node(ip("fe80::5054:ff:fe12:3456")) == ip("ff02::1:ff12:3456")


def test_multicast_mac_rfc2464() -> None:
    assert multicast_mac(ALL_NODES) == bytes.fromhex("333300000001")
    assert multicast_mac(ip("ff02::1:ff0e:8c6c")) == bytes.fromhex("3333ff0e8c6c")
    assert multicast_mac(ip("ff0e::1:2:3:4")) == bytes.fromhex("333300030004")


# --- interface identifiers -------------------------------------------------------------------------
def test_eui64_and_link_local() -> None:
    iid = eui64_iid(bytes.fromhex("525400123456"))         # what Linux derives for a QEMU NIC
    assert iid == 0x5054_00FF_FE12_3456
    assert link_local_from_iid(iid) == ip("fe80::5054:ff:fe12:3456")
    assert eui64_iid(bytes.fromhex("020000aabbcc")) == 0x0000_00FF_FEAA_BBCC   # locally administered: bit cleared
    with pytest.raises(ValueError):
        eui64_iid(b"\x00" * 8)
    assert with_iid(ip("2001:db8:1:2:ffff::"), 0x1234) == ip("2001:db8:1:2::1234")


@pytest.mark.parametrize(("iid", "reserved"), [
    (0, True), (1, False),
    (0x0200_5EFF_FE00_0000, True), (0x0200_5EFF_FE00_5213, True), (0x0200_5EFF_FEFF_FFFF, True),
    (0x0200_5EFF_FF00_0000, False), (0x0200_5EFF_FDFF_FFFF, False),
    (0xFDFF_FFFF_FFFF_FF80, True), (0xFDFF_FFFF_FFFF_FFFF, True), (0xFDFF_FFFF_FFFF_FF7F, False),
])
def test_rfc5453_reserved_iids(iid: int, reserved: bool) -> None:
    assert is_reserved_iid(iid) is reserved


PREFIX = ip("2001:db8:1:2::")
KEY = bytes(range(16))


def test_rfc7217_stable_iid_is_stable_and_depends_on_every_input() -> None:
    base = stable_iid(PREFIX, "eth0", b"ssid", 0, KEY)
    assert base is not None and 0 < base < 1 << 64
    assert stable_iid(PREFIX, "eth0", b"ssid", 0, KEY) == base
    assert stable_iid(PREFIX | 0xFFFF, "eth0", b"ssid", 0, KEY) == base     # only the /64 prefix counts
    others = {stable_iid(ip("2001:db8:1:3::"), "eth0", b"ssid", 0, KEY),
              stable_iid(PREFIX, "eth1", b"ssid", 0, KEY),
              stable_iid(PREFIX, b"eth0", b"ssid2", 0, KEY),
              stable_iid(PREFIX, "eth0", b"ssid", 1, KEY),
              stable_iid(PREFIX, "eth0", b"ssid", 0, KEY[::-1])}
    assert base not in others and len(others) == 5
    # length framing: moving an octet from one field to the next changes the result
    assert stable_iid(PREFIX, "eth0s", b"sid", 0, KEY) != stable_iid(PREFIX, "eth0", b"ssid", 0, KEY)


@given(addresses, st.binary(max_size=16), st.binary(max_size=16), st.integers(0, 10), st.binary(min_size=16,
                                                                                              max_size=32))
def test_stable_iid_never_reserved(prefix: int, iface: bytes, net_id: bytes, counter: int, key: bytes) -> None:
    iid = stable_iid(prefix, iface, net_id, counter, key)
    assert iid is None or (0 <= iid < 1 << 64 and not is_reserved_iid(iid))


def test_stable_address_retries_reserved_and_used(monkeypatch: pytest.MonkeyPatch) -> None:
    real = stable_address(PREFIX, "eth0", b"", KEY)
    assert real is not None and real[1] == 0 and network(real[0], 64) == PREFIX
    taken = {real[0]}
    nxt = stable_address(PREFIX, "eth0", b"", KEY, used=taken.__contains__)
    assert nxt is not None and nxt[1] == 1 and nxt[0] != real[0]        # like a DAD collision (§6)
    # a PRF landing in the IANA reserved block is refused (RFC 7217 §5), then the next counter is used
    reserved, good = bytes.fromhex("02005efffe001234") + bytes(24), bytes.fromhex("1122334455667788") + bytes(24)
    outputs = iter([reserved, reserved, good])
    monkeypatch.setattr(a6, "_prf", lambda msg: next(outputs))
    assert stable_iid(PREFIX, "eth0", b"", 0, KEY) is None
    assert stable_address(PREFIX, "eth0", b"", KEY) == (PREFIX | 0x1122334455667788, 1)
    calls: list[bytes] = []                                              # always the subnet-router anycast
    monkeypatch.setattr(a6, "_prf", lambda msg: calls.append(msg) or bytes(32))
    assert stable_address(PREFIX, "eth0", b"", KEY) is None
    assert len(calls) == IDGEN_RETRIES + 1


# --- RFC 6724 source address selection ---------------------------------------------------------------
def c(text: str, **kw: object) -> SourceCandidate:
    return SourceCandidate(ip(text), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("dst", "cands", "want"), [
    # RFC 6724 §10.1, in its order
    ("2001:db8:1::1", [c("2001:db8:1::1", deprecated=True), c("2001:db8:2::1")], "2001:db8:1::1"),   # rule 1
    ("2001:db8:1::1", [c("fe80::1"), c("2001:db8:3::1")], "2001:db8:3::1"),                           # rule 2
    ("ff05::1", [c("fe80::1"), c("2001:db8:3::1")], "2001:db8:3::1"),                                 # rule 2
    ("fe80::1", [c("2001:db8:1::1"), c("fe80::2", deprecated=True)], "fe80::2"),                       # rule 2 > 3
    ("2001:db8:1::1", [c("2001:db8:3::2"), c("2001:db8:1::2")], "2001:db8:1::2"),                     # rule 8
    ("2002:c633:6401::1", [c("2001:db8:1::2"), c("2002:c633:6401::d5e3:7953:13eb:22e8")],
     "2002:c633:6401::d5e3:7953:13eb:22e8"),                                                          # rule 6
    # rule 3: same scope, one deprecated
    ("2001:db8:9::1", [c("2001:db8:9::2", deprecated=True), c("2001:db8:8::2")], "2001:db8:8::2"),
    # rule 2, smaller scope than the destination: the largest one below it
    ("ff0e::1", [c("fe80::1"), c("fec0::1")], "fec0::1"),
    # rule 2, several at or above the destination's scope: the smallest
    ("fec0::9", [c("2001:db8::1"), c("fec0::1"), c("fe80::1")], "fec0::1"),
    ("::1", [c("fe80::1"), c("::1")], "::1"),
])
def test_rfc6724_rules(dst: str, cands: list[SourceCandidate], want: str) -> None:
    best = select_source(ip(dst), cands)
    assert best is not None and best.addr == ip(want)


def test_rule8_stops_at_the_source_prefix_length() -> None:
    dst = ip("2001:db8:0:1::ffff:1")
    # B shares 116 raw bits but its prefix is /48; A shares 64 bits within its /64: A wins
    a = c("2001:db8:0:1::1", prefix_len=64)
    b = c("2001:db8:0:1::ffff:2", prefix_len=48)
    assert select_source(dst, [b, a]) == a
    # equal after the cap: the first listed wins (a stable choice)
    b64 = c("2001:db8:0:1::ffff:2", prefix_len=64)
    assert select_source(dst, [b64, a]) == b64 and select_source(dst, [a, b64]) == a


def test_rule5_outgoing_interface_and_explicit_scope() -> None:
    on_if = c("2001:db8:1::5", ifindex=2)
    other = c("2001:db8:1::6", ifindex=3)
    assert select_source(ip("2001:db8:7::1"), [other, on_if], out_ifindex=2) == on_if
    assert select_source(ip("2001:db8:7::1"), [other, on_if]) == other      # no interface: rule 8 tie, first
    assert c("fd00::1", scope=SCOPE_SITE_LOCAL).effective_scope == SCOPE_SITE_LOCAL
    assert c("fd00::1").effective_scope == SCOPE_GLOBAL


def test_tentative_addresses_are_never_chosen() -> None:
    assert select_source(ip("2001:db8::1"), [c("2001:db8::1", tentative=True)]) is None
    assert select_source(ip("2001:db8::1"), []) is None
    best = select_source(ip("2001:db8::1"), [c("2001:db8::1", tentative=True), c("fe80::1")])
    assert best is not None and best.addr == ip("fe80::1")


def test_policy_labels_rfc6724_table() -> None:
    assert [policy_label(ip(t)) for t in ("::1", "2001:db8::1", "::ffff:1.2.3.4", "2002::1", "2001::1",
                                          "fd00::1", "::1.2.3.4", "fec0::1", "3ffe::1")] == \
        [0, 1, 4, 2, 5, 13, 3, 11, 12]


@given(addresses, st.lists(st.tuples(addresses, st.booleans(), st.booleans(), st.integers(0, 128)), max_size=8))
def test_select_source_picks_a_usable_candidate(dst: int, rows: list[tuple[int, bool, bool, int]]) -> None:
    cands = [SourceCandidate(addr, plen, deprecated, tentative) for addr, deprecated, tentative, plen in rows]
    best = select_source(dst, cands)
    usable = [x for x in cands if not x.tentative]
    assert (best is None) == (not usable)
    if best is not None:
        assert best in usable
        if any(x.addr == dst for x in usable):
            assert best.addr == dst                                          # rule 1 dominates
