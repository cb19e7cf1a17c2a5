"""The extension-header chain (protocols/ipv6/exthdr.py), RFC 8200 §4 case by case: hop-by-hop
only first (§4.3), options by their two high bits (§4.2), Pad1/PadN, routing headers (§4.4,
RFC 5095), fragment headers (§4.5, RFC 6946 atomic, RFC 7112 incomplete first fragments), no
next header (§4.7), the chain bound, truncation.  Every drop names an Ipv6Stats counter.
Cross-checked with scapy-built packets; hypothesis round trips and a never-raises fuzz."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    HBHOptUnknown,
    ICMPv6MLReport2,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    RouterAlert,
    fragment6,
)

from protocols.ipv6.addr import ip6_to_int
from protocols.ipv6.exthdr import (
    MAX_EXT_HEADERS,
    MAX_OPTIONS,
    OPT_ROUTER_ALERT,
    PARAM_HEADER,
    PARAM_INCOMPLETE_CHAIN,
    PARAM_NEXT_HEADER,
    PARAM_OPTION,
    Chain,
    Drop,
    FragmentInfo,
    encode_fragment_header,
    encode_options_header,
    resume_after_reassembly,
    router_alert_hop_by_hop,
    scan_options,
    walk_chain,
)
from protocols.ipv6.stats import Ipv6Stats
from protocols.ipv6.wire import (
    HDR_LEN,
    NH_DSTOPTS,
    NH_FRAGMENT,
    NH_HOPOPTS,
    NH_ICMPV6,
    NH_NONE,
    NH_ROUTING,
    NH_TCP,
    NH_UDP,
    Ipv6Repr,
)

UDP_HDR = struct.pack("!HHHH", 1, 2, 8, 0)
COUNTERS = set(Ipv6Stats().as_dict())


def packet(first_nh: int, *headers: bytes, payload: bytes = UDP_HDR, dst: str = "2001:db8::2") -> bytes:
    body = b"".join(headers) + payload
    return Ipv6Repr(ip6_to_int("2001:db8::1"), ip6_to_int(dst), first_nh, len(body)).to_bytes() + body


def walk(pkt: bytes, *, multicast: bool = False, **kw: int) -> Chain | Drop:
    h = Ipv6Repr.parse(pkt)
    assert isinstance(h, Ipv6Repr)
    verdict = walk_chain(pkt[:h.total_len], h.next_header, dst_multicast=multicast, **kw)
    if isinstance(verdict, Drop):
        assert verdict.reason in COUNTERS
    return verdict


def opts(nh: int, *options: tuple[int, bytes]) -> bytes:
    return encode_options_header(nh, list(options))


def raw_opts(nh: int, body: bytes) -> bytes:
    """An options header with exactly `body` (must make a multiple of 8 with the 2-octet head)."""
    assert (2 + len(body)) % 8 == 0
    return bytes((nh, (2 + len(body)) // 8 - 1)) + body


def routing(nh: int, rtype: int, segments_left: int, extra: bytes = bytes(4)) -> bytes:
    body = bytes((rtype, segments_left)) + extra
    return bytes((nh, (2 + len(body)) // 8 - 1)) + body


# --- no extension headers, no next header ---------------------------------------------------------
def test_plain_upper_layer() -> None:
    assert walk(packet(NH_UDP)) == Chain(NH_UDP, HDR_LEN, 6)


def test_any_buffer_type() -> None:
    pkt = packet(NH_DSTOPTS, raw_opts(NH_UDP, bytes((1, 4, 0, 0, 0, 0))))
    want = Chain(NH_UDP, 48, 40, headers=1)
    for view in (pkt, bytearray(pkt), memoryview(pkt), memoryview(bytearray(pkt))):
        assert walk_chain(view, NH_DSTOPTS, dst_multicast=False) == want


def test_no_next_header_ends_the_chain() -> None:
    # RFC 8200 §4.7: octets after a header saying 59 are ignored
    assert walk(packet(NH_DSTOPTS, opts(NH_NONE), payload=b"junk")) == Chain(NH_NONE, 48, 40, headers=1)
    assert walk(packet(NH_NONE, payload=b"")) == Chain(NH_NONE, 40, 6)


# --- hop-by-hop ----------------------------------------------------------------------------------------
def test_hop_by_hop_first_with_router_alert() -> None:
    got = walk(packet(NH_HOPOPTS, router_alert_hop_by_hop(NH_ICMPV6), payload=bytes(8)))
    assert got == Chain(NH_ICMPV6, 48, 40, router_alert=0, headers=1)


def test_mld_report_as_linux_sends_it() -> None:
    raw = bytes(IPv6(src="fe80::1", dst="ff02::16", hlim=1) / IPv6ExtHdrHopByHop(options=[RouterAlert()])
                / ICMPv6MLReport2())
    got = walk(raw, multicast=True)
    assert isinstance(got, Chain) and (got.next_header, got.offset, got.router_alert) == (NH_ICMPV6, 48, 0)
    assert router_alert_hop_by_hop(NH_ICMPV6) == bytes.fromhex("3a00050200000100") == raw[40:48]


@pytest.mark.parametrize(("first_nh", "before"), [
    (NH_DSTOPTS, opts(NH_HOPOPTS)),                                  # after destination options
    (NH_ROUTING, routing(NH_HOPOPTS, 0, 0)),                         # after a routing header
    (NH_FRAGMENT, encode_fragment_header(NH_HOPOPTS, 0, False, 1)),  # after an atomic fragment header
])
def test_hop_by_hop_elsewhere_is_an_unknown_next_header(first_nh: int, before: bytes) -> None:
    pkt = packet(first_nh, before, opts(NH_UDP))
    # RFC 8200 §4.3 / §4: parameter problem code 1 pointing at the Next Header octet saying 0
    assert walk(pkt) == Drop("in_unknown_protos", (PARAM_NEXT_HEADER, 40))


def test_second_hop_by_hop_is_an_unknown_next_header() -> None:
    assert walk(packet(NH_HOPOPTS, opts(NH_HOPOPTS), opts(NH_UDP))) == \
        Drop("in_unknown_protos", (PARAM_NEXT_HEADER, 40))


def test_router_alert_with_a_bad_length_drops() -> None:
    assert walk(packet(NH_HOPOPTS, opts(NH_UDP, (OPT_ROUTER_ALERT, b"\0\0\0")))) == Drop("in_hdr_errors")


def test_router_alert_means_nothing_in_destination_options() -> None:
    # type 5 is only known in hop-by-hop; elsewhere its high bits 00 say skip (RFC 8200 §4.2)
    got = walk(packet(NH_DSTOPTS, opts(NH_UDP, (OPT_ROUTER_ALERT, b"\0\0"))))
    assert isinstance(got, Chain) and got.router_alert is None and got.next_header == NH_UDP


# --- options by their two high bits (RFC 8200 §4.2) ---------------------------------------------------
@pytest.mark.parametrize("nh", [NH_HOPOPTS, NH_DSTOPTS])
@pytest.mark.parametrize(("opt_type", "multicast", "verdict"), [
    (0x1E, False, None),                                             # 00: skip
    (0x1E, True, None),
    (0x5E, False, Drop("in_hdr_errors")),                            # 01: discard silently
    (0x5E, True, Drop("in_hdr_errors")),
    (0x9E, False, Drop("in_hdr_errors", (PARAM_OPTION, 42))),   # 10: discard + code 2, even multicast
    (0x9E, True, Drop("in_hdr_errors", (PARAM_OPTION, 42))),
    (0xDE, False, Drop("in_hdr_errors", (PARAM_OPTION, 42))),   # 11: discard + code 2 unless multicast
    (0xDE, True, Drop("in_hdr_errors")),
    (0xC2, False, Drop("in_hdr_errors", (PARAM_OPTION, 42))),   # Jumbo Payload: not supported
])
def test_unrecognized_option_actions(nh: int, opt_type: int, multicast: bool, verdict: Drop | None) -> None:
    got = walk(packet(nh, opts(NH_UDP, (opt_type, b"ab"))), multicast=multicast)
    if verdict is None:
        assert isinstance(got, Chain) and got.next_header == NH_UDP and got.offset == 48
    else:
        assert got == verdict


def test_parameter_problem_points_at_the_option_type() -> None:
    # PadN(0) at 42, a skip option at 44, 0x80 at 47, six Pad1
    hdr = raw_opts(NH_UDP, bytes((1, 0)) + bytes((0x1E, 1, 0)) + bytes((0x80, 1, 0)) + bytes(6))
    assert walk(packet(NH_DSTOPTS, hdr)) == Drop("in_hdr_errors", (PARAM_OPTION, 47))


# --- padding and option bounds ------------------------------------------------------------------------------
def test_padding_rules() -> None:
    assert isinstance(walk(packet(NH_DSTOPTS, raw_opts(NH_UDP, bytes(6)))), Chain)               # 6 Pad1
    assert isinstance(walk(packet(NH_DSTOPTS, raw_opts(NH_UDP, bytes((1, 4, 0, 0, 0, 0))))), Chain)   # PadN
    # 14 octets of padding in a row: more than the 7 alignment can need (Linux ip6_parse_tlv)
    assert walk(packet(NH_DSTOPTS, raw_opts(NH_UDP, bytes(14)))) == Drop("in_hdr_errors")
    assert walk(packet(NH_DSTOPTS, raw_opts(NH_UDP, bytes((1, 12)) + bytes(12)))) == Drop("in_hdr_errors")
    # PadN carrying data (RFC 4942 §2.1.9.5 covert channel)
    assert walk(packet(NH_DSTOPTS, raw_opts(NH_UDP, bytes((1, 4, 0, 0, 9, 0))))) == Drop("in_hdr_errors")
    # padding runs are counted between real options, not in total
    body = bytes(7) + bytes((0x1E, 6)) + bytes(6) + bytes((1, 5)) + bytes(5)
    assert isinstance(walk(packet(NH_DSTOPTS, raw_opts(NH_UDP, body))), Chain)


def test_malformed_options() -> None:
    # an option running past its header; an option type with no length octet
    assert walk(packet(NH_DSTOPTS, raw_opts(NH_UDP, bytes((0x1E, 9)) + bytes(4)))) == Drop("in_hdr_errors")
    assert walk(packet(NH_DSTOPTS, raw_opts(NH_UDP, bytes(5) + b"\x1e"))) == Drop("in_hdr_errors")


def test_option_count_bound() -> None:
    def with_n(n: int) -> bytes:
        return packet(NH_DSTOPTS, opts(NH_UDP, *[(0x1E, b"")] * n))
    assert isinstance(walk(with_n(MAX_OPTIONS)), Chain)
    assert walk(with_n(MAX_OPTIONS + 1)) == Drop("in_hdr_errors")
    assert isinstance(walk(with_n(MAX_OPTIONS + 1), max_options=MAX_OPTIONS + 1), Chain)


# --- routing headers (RFC 8200 §4.4, RFC 5095) ------------------------------------------------------------
@pytest.mark.parametrize("rtype", [0, 2, 3, 4, 253])
def test_routing_header_with_segments_left_zero_is_ignored(rtype: int) -> None:
    assert walk(packet(NH_ROUTING, routing(NH_UDP, rtype, 0))) == Chain(NH_UDP, 48, 40, headers=1)


@pytest.mark.parametrize("rtype", [0, 2, 3, 4, 253])
def test_routing_header_with_segments_left_is_a_parameter_problem(rtype: int) -> None:
    # type 0 deprecated (RFC 5095 §3); we run no type: code 0 at the Routing Type octet
    pkt = packet(NH_DSTOPTS, opts(NH_ROUTING), routing(NH_UDP, rtype, 2, bytes(20)))
    assert walk(pkt) == Drop("in_hdr_errors", (PARAM_HEADER, 48 + 2))


def test_rh0_built_by_scapy() -> None:
    raw = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrRouting(addresses=["2001:db8::3"])
                / UDP())
    assert walk(raw) == Drop("in_hdr_errors", (PARAM_HEADER, 42))


def test_routing_header_to_multicast_is_an_address_error() -> None:
    assert walk(packet(NH_ROUTING, routing(NH_UDP, 0, 0), dst="ff02::1"), multicast=True) == Drop("in_addr_errors")


# --- fragment headers (RFC 8200 §4.5) -----------------------------------------------------------------------
def test_atomic_fragment_is_processed_in_isolation() -> None:
    # RFC 6946 §4: offset 0, M 0: go on with the chain, report the header
    got = walk(packet(NH_FRAGMENT, encode_fragment_header(NH_DSTOPTS, 0, False, 0xDEADBEEF), opts(NH_UDP)))
    assert isinstance(got, Chain) and not got.needs_reassembly
    assert (got.next_header, got.offset, got.nh_field, got.headers) == (NH_UDP, 56, 48, 2)
    assert got.fragment == FragmentInfo(40, 6, NH_DSTOPTS, 0, False, 0xDEADBEEF) and got.fragment.atomic


def test_first_fragment() -> None:
    pkt = packet(NH_DSTOPTS, opts(NH_FRAGMENT), encode_fragment_header(NH_UDP, 0, True, 77), payload=UDP_HDR * 2)
    got = walk(pkt)
    assert isinstance(got, Chain) and got.needs_reassembly
    assert got.fragment == FragmentInfo(48, 40, NH_UDP, 0, True, 77)
    assert (got.next_header, got.offset, got.nh_field) == (NH_UDP, 56, 48)


def test_later_fragment_needs_no_upper_layer_header() -> None:
    got = walk(packet(NH_FRAGMENT, encode_fragment_header(NH_UDP, 1232, False, 5), payload=b"xyz"))
    assert isinstance(got, Chain) and got.fragment == FragmentInfo(40, 6, NH_UDP, 1232, False, 5)


def test_fragment_reserved_bits_are_ignored() -> None:
    hdr = bytearray(encode_fragment_header(NH_UDP, 8, True, 5))
    hdr[1] = 0xFF
    hdr[3] |= 0x06                                          # Res bits beside M
    got = walk(packet(NH_FRAGMENT, bytes(hdr), payload=bytes(16)))
    assert isinstance(got, Chain) and got.fragment == FragmentInfo(40, 6, NH_UDP, 8, True, 5)


def test_fragment_length_not_a_multiple_of_8_with_more_fragments() -> None:
    pkt = packet(NH_FRAGMENT, encode_fragment_header(NH_UDP, 8, True, 5), payload=bytes(13))
    assert walk(pkt) == Drop("in_hdr_errors", (PARAM_HEADER, 4))           # at the Payload Length


def test_fragment_beyond_65535() -> None:
    ok = packet(NH_FRAGMENT, encode_fragment_header(NH_UDP, 0xFFF8, False, 5), payload=bytes(7))
    assert isinstance(walk(ok), Chain)                                          # ends at exactly 65535
    over = packet(NH_FRAGMENT, encode_fragment_header(NH_UDP, 0xFFF8, False, 5), payload=bytes(8))
    assert walk(over) == Drop("in_hdr_errors", (PARAM_HEADER, 42))          # at the Fragment Offset
    # the unfragmentable extension headers count in the reassembled payload length
    over2 = packet(NH_DSTOPTS, opts(NH_FRAGMENT), encode_fragment_header(NH_UDP, 0xFFF0, False, 5),
                   payload=bytes(8))
    assert walk(over2) == Drop("in_hdr_errors", (PARAM_HEADER, 50))


@pytest.mark.parametrize(("frag_nh", "fragmentable", "complete"), [
    (NH_UDP, b"", False),                                   # no UDP header at all
    (NH_UDP, bytes(8), True),
    (NH_DSTOPTS, opts(NH_TCP) + bytes(8), False),           # a TCP header needs 20 octets
    (NH_DSTOPTS, opts(NH_TCP) + bytes(24), True),
    (NH_DSTOPTS, opts(NH_DSTOPTS), False),                  # the chain goes on past the fragment
    (NH_ICMPV6, bytes(8), True),
    (200, b"", False),                                      # any other protocol: at least its first octet
    (200, bytes(8), True),
])
def test_first_fragment_must_hold_the_whole_chain(frag_nh: int, fragmentable: bytes, complete: bool) -> None:
    # RFC 8200 §4.5 / RFC 7112 §5: else code 3, pointer 0
    pkt = packet(NH_FRAGMENT, encode_fragment_header(frag_nh, 0, True, 9), payload=fragmentable)
    got = walk(pkt)
    if complete:
        assert isinstance(got, Chain) and got.needs_reassembly
    else:
        assert got == Drop("in_hdr_errors", (PARAM_INCOMPLETE_CHAIN, 0))


def test_scapy_fragments() -> None:
    big = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=0x1234) / UDP(sport=9, dport=9) \
        / (b"z" * 3000)
    frags = [bytes(f) for f in fragment6(big, 1280)]
    assert len(frags) == 3
    infos = []
    for raw in frags:
        got = walk(raw)
        assert isinstance(got, Chain) and got.needs_reassembly and got.fragment is not None
        infos.append(got.fragment)
    assert [i.ident for i in infos] == [0x1234] * 3
    assert [i.more for i in infos] == [True, True, False]
    assert infos[0].offset == 0 and infos[1].offset == len(frags[0]) - 48
    assert {i.next_header for i in infos} == {NH_UDP}


def test_resume_after_reassembly() -> None:
    first = packet(NH_FRAGMENT, encode_fragment_header(NH_DSTOPTS, 0, True, 3), opts(NH_UDP), payload=bytes(8))
    got = walk(first)
    assert isinstance(got, Chain) and got.needs_reassembly and got.fragment is not None
    # reassembled: the unfragmentable part (its Next Header rewritten) + the fragmentable part
    whole = packet(NH_DSTOPTS, opts(NH_UDP), payload=bytes(8))
    assert resume_after_reassembly(whole, got, dst_multicast=False) == Chain(NH_UDP, 48, 40, headers=2)
    # a hop-by-hop header that followed the Fragment header is still not first
    first_hbh = packet(NH_FRAGMENT, encode_fragment_header(NH_HOPOPTS, 0, True, 3), opts(NH_UDP), payload=bytes(8))
    got_hbh = walk(first_hbh)
    assert isinstance(got_hbh, Chain)
    whole_hbh = packet(NH_HOPOPTS, opts(NH_UDP), payload=bytes(8))
    assert resume_after_reassembly(whole_hbh, got_hbh, dst_multicast=False) == \
        Drop("in_unknown_protos", (PARAM_NEXT_HEADER, 6))
    # the header bound counts what the first walk saw
    assert resume_after_reassembly(whole, got, dst_multicast=False, max_headers=1) == Drop("in_hdr_errors")
    plain = Chain(NH_UDP, 40, 6)
    assert resume_after_reassembly(whole, plain, dst_multicast=False) is plain


# --- the chain bound and truncation -------------------------------------------------------------------------
def test_chain_length_bound() -> None:
    def chain_of(n: int) -> bytes:
        return packet(NH_DSTOPTS, *[opts(NH_DSTOPTS)] * (n - 1), opts(NH_UDP))
    got = walk(chain_of(MAX_EXT_HEADERS))
    assert isinstance(got, Chain) and got.headers == MAX_EXT_HEADERS and got.offset == 40 + 8 * MAX_EXT_HEADERS
    assert walk(chain_of(MAX_EXT_HEADERS + 1)) == Drop("in_hdr_errors")
    assert walk(chain_of(3), max_headers=2) == Drop("in_hdr_errors")


def test_chain_bound_in_a_first_fragment() -> None:
    after = b"".join([opts(NH_DSTOPTS)] * (MAX_EXT_HEADERS - 1)) + opts(NH_UDP)
    pkt = packet(NH_FRAGMENT, encode_fragment_header(NH_DSTOPTS, 0, True, 1), after, payload=bytes(8))
    assert walk(pkt) == Drop("in_hdr_errors", (PARAM_INCOMPLETE_CHAIN, 0))


@pytest.mark.parametrize(("first_nh", "headers"), [
    (NH_DSTOPTS, b""),                                      # no room for even the two first octets
    (NH_DSTOPTS, b"\x11"),
    (NH_DSTOPTS, bytes((NH_UDP, 1)) + bytes(6)),            # says 16 octets, has 8
    (NH_HOPOPTS, bytes((NH_UDP, 0, 0, 0))),
    (NH_ROUTING, bytes((NH_UDP, 0, 0, 1))),
    (NH_FRAGMENT, bytes((NH_UDP, 0, 0, 0, 0, 0))),
])
def test_truncated_headers(first_nh: int, headers: bytes) -> None:
    assert walk(packet(first_nh, headers, payload=b"")) == Drop("in_truncated_pkts")


# --- codecs: round trips and fuzz ------------------------------------------------------------------------
EXT = (NH_HOPOPTS, NH_ROUTING, NH_FRAGMENT, NH_DSTOPTS)
upper_protocols = st.integers(0, 255).filter(lambda nh: nh not in EXT)
skip_options = st.lists(st.tuples(st.integers(2, 0x3F).filter(lambda t: t != OPT_ROUTER_ALERT),
                                  st.binary(max_size=40)), max_size=MAX_OPTIONS)


@given(skip_options, upper_protocols)
def test_options_header_round_trip(options: list[tuple[int, bytes]], nh: int) -> None:
    hdr = encode_options_header(nh, options)
    assert len(hdr) % 8 == 0 and hdr[0] == nh and (hdr[1] + 1) * 8 == len(hdr)
    found = scan_options(hdr, 2, len(hdr))
    assert not isinstance(found, str)
    assert [(t, hdr[at:at + n]) for t, at, n in found] == options
    got = walk(packet(NH_DSTOPTS, hdr, payload=bytes(20)))
    assert isinstance(got, Chain) and got.next_header == nh and got.offset == 40 + len(hdr)


def test_options_round_trip_against_scapy() -> None:
    hdr = encode_options_header(NH_UDP, [(0x1E, b"abc"), (0x3F, b"")])
    parsed = IPv6ExtHdrDestOpt(hdr)
    real = [o for o in parsed.options if isinstance(o, HBHOptUnknown)]
    assert [(o.otype, o.optdata) for o in real] == [(0x1E, b"abc"), (0x3F, b"")]
    with pytest.raises(ValueError):
        encode_options_header(NH_UDP, [(1, b"")])
    with pytest.raises(ValueError):
        encode_options_header(NH_UDP, [(0x1E, bytes(256))])
    with pytest.raises(ValueError):
        encode_options_header(NH_UDP, [(0x1E, bytes(255))] * 9)


@given(upper_protocols, st.integers(0, 0x1FFF), st.booleans(), st.integers(0, 0xFFFFFFFF))
def test_fragment_header_round_trip(nh: int, offset_units: int, more: bool, ident: int) -> None:
    hdr = encode_fragment_header(nh, offset_units * 8, more, ident)
    parsed = IPv6ExtHdrFragment(hdr)
    assert (parsed.nh, parsed.offset, parsed.m, parsed.id) == (nh, offset_units, int(more), ident)
    got = walk(packet(NH_FRAGMENT, hdr, payload=bytes(16)))
    if isinstance(got, Chain):
        assert got.fragment == FragmentInfo(40, 6, nh, offset_units * 8, more, ident)
    else:   # only the 65535 bound or an incomplete first fragment may refuse these
        assert got.param_problem in ((PARAM_HEADER, 42), (PARAM_INCOMPLETE_CHAIN, 0))


def test_fragment_header_encoding_checks() -> None:
    for bad in (-8, 3, 0x10000):
        with pytest.raises(ValueError):
            encode_fragment_header(NH_UDP, bad, False, 1)


ext_types = st.sampled_from([NH_HOPOPTS, NH_DSTOPTS, NH_ROUTING, NH_FRAGMENT, NH_UDP, NH_TCP, NH_NONE, 51, 200])


@settings(max_examples=400)
@given(ext_types, st.binary(max_size=300), st.booleans())
def test_walk_never_raises_and_stays_in_bounds(first_nh: int, body: bytes, multicast: bool) -> None:
    pkt = packet(first_nh, payload=body)
    got = walk(pkt, multicast=multicast)
    if isinstance(got, Chain):
        assert HDR_LEN <= got.offset <= len(pkt) and 0 <= got.nh_field < got.offset
        assert pkt[got.nh_field] == got.next_header           # the pointer of a code 1 names the value
        assert got.headers <= MAX_EXT_HEADERS
    else:
        assert got.reason in COUNTERS
        if got.param_problem is not None:
            code, pointer = got.param_problem
            assert code in (0, 1, 2, 3) and 0 <= pointer < len(pkt)


HARMLESS = {NH_DSTOPTS: lambda nh: opts(nh), NH_ROUTING: lambda nh: routing(nh, 0, 0),
            NH_FRAGMENT: lambda nh: encode_fragment_header(nh, 0, False, 1)}


@given(st.lists(st.sampled_from(sorted(HARMLESS)), max_size=12))
def test_any_chain_of_harmless_headers_is_walked_up_to_the_bound(types: list[int]) -> None:
    nexts = types[1:] + [NH_UDP] if types else []
    chain = [HARMLESS[t](nh) for t, nh in zip(types, nexts, strict=True)]
    got = walk(packet(types[0] if types else NH_UDP, *chain))
    if len(chain) > MAX_EXT_HEADERS:
        assert got == Drop("in_hdr_errors")
    else:
        assert isinstance(got, Chain) and got.next_header == NH_UDP and got.headers == len(chain)
        assert got.offset == 40 + 8 * len(chain)


VALID = [
    packet(NH_HOPOPTS, router_alert_hop_by_hop(NH_DSTOPTS), opts(NH_ROUTING, (0x1E, b"xy")), routing(NH_FRAGMENT, 0, 0),
           encode_fragment_header(NH_DSTOPTS, 0, True, 7), opts(NH_UDP), payload=bytes(16)),
    packet(NH_FRAGMENT, encode_fragment_header(NH_DSTOPTS, 0, False, 7), opts(NH_TCP, (0xDE, b"")), payload=bytes(20)),
    packet(NH_DSTOPTS, raw_opts(NH_ROUTING, bytes((1, 4, 0, 0, 0, 0))), routing(NH_UDP, 0, 1, bytes(12))),
]


@settings(max_examples=400)
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=6),
       st.booleans())
def test_walk_survives_mutated_chains(base: bytes, edits: list[tuple[int, int]], multicast: bool) -> None:
    pkt = bytearray(base)
    for where, value in edits:
        pkt[HDR_LEN + where % (len(pkt) - HDR_LEN)] = value
    got = walk(bytes(pkt), multicast=multicast)
    assert isinstance(got, Chain | Drop)
    if isinstance(got, Chain):
        assert pkt[got.nh_field] == got.next_header and got.offset <= len(pkt)
