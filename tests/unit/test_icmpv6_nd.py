"""Neighbor Discovery messages and options (protocols/icmpv6/nd.py), RFC 4861 §4 and the
receipt checks of §6.1.1, §6.1.2, §7.1.1, §7.1.2, §8.1 case by case; RDNSS (RFC 8106 §5.1)
and the nonce (RFC 3971 §5.3.2).  Every message checked byte for byte against scapy,
every malformed case returns an NdStats counter, hypothesis round trips emit -> parse."""
from __future__ import annotations

import socket
from dataclasses import fields, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptRDNSS,
    ICMPv6NDOptRedirectedHdr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)

from protocols.icmpv6 import nd
from protocols.icmpv6.message import parse_message
from protocols.icmpv6.nd import (
    MAX_REDIRECTED,
    MalformedOption,
    Mtu,
    NeighborAdvertisement,
    NeighborSolicitation,
    Nonce,
    PrefixInformation,
    Rdnss,
    Redirect,
    RedirectedHeader,
    RouterAdvertisement,
    RouterSolicitation,
    SourceLinkLayerAddress,
    TargetLinkLayerAddress,
    UnknownOption,
)
from protocols.icmpv6.stats import NdStats
from protocols.icmpv6.wire import Icmpv6Repr

FAST = settings(max_examples=150, deadline=None)
u8, u16, u32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
addrs = st.integers(0, (1 << 128) - 1)
NDSTATS = {f.name for f in fields(NdStats)}


def a(text: str) -> int:
    return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")


MAC, MAC2 = bytes.fromhex("020000000001"), bytes.fromhex("525400abcdef")
LL, LL2, GLOBAL = a("fe80::1"), a("fe80::2"), a("2001:db8::10")
ALL_NODES, ALL_ROUTERS = a("ff02::1"), a("ff02::2")
SNMA = a("ff02::1:ff00:2")         # solicited-node group of fe80::2 and 2001:db8::...:2


def scapy_icmp(layer: object, src: str, dst: str) -> bytes:
    return bytes(IPv6(src=src, dst=dst, hlim=255) / layer)[40:]  # type: ignore[operator]


def parsed(data: bytes, src: int, dst: int) -> nd.AnyNdMessage:
    msg = parse_message(data, src, dst)
    assert isinstance(msg, nd.AnyNdMessage), msg
    return msg


def reason_of(hdr: Icmpv6Repr) -> str:
    got = nd.parse(hdr)
    assert isinstance(got, str), got
    assert got in NDSTATS
    return got


# --- byte for byte against scapy ---------------------------------------------------------------
def test_router_solicitation_matches_scapy() -> None:
    ref = scapy_icmp(ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01"), "fe80::1", "ff02::2")
    msg = RouterSolicitation(options=(SourceLinkLayerAddress(MAC),))
    assert msg.emit(LL, ALL_ROUTERS) == ref
    got = parsed(ref, LL, ALL_ROUTERS)
    assert got == msg and got.source_lladdr == MAC
    assert nd.validate(got, LL, ALL_ROUTERS, 255) is None


def test_router_advertisement_matches_scapy() -> None:
    ref = scapy_icmp(ICMPv6ND_RA(chlim=64, M=1, O=1, prf=0, routerlifetime=1800, reachabletime=30000,
                                 retranstimer=1000)
                     / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01") / ICMPv6NDOptMTU(mtu=1500)
                     / ICMPv6NDOptPrefixInfo(prefix="2001:db8:1::", prefixlen=64, L=1, A=1, validlifetime=86400,
                                             preferredlifetime=14400)
                     / ICMPv6NDOptPrefixInfo(prefix="2001:db8:2::", prefixlen=56, L=1, A=0, validlifetime=0xFFFFFFFF,
                                             preferredlifetime=0)
                     / ICMPv6NDOptRDNSS(lifetime=600, dns=["2001:db8::53", "2001:db8::54"]), "fe80::1", "ff02::1")
    msg = RouterAdvertisement(cur_hop_limit=64, managed=True, other=True, router_lifetime=1800,
                              reachable_time=30000, retrans_timer=1000, options=(
                                  SourceLinkLayerAddress(MAC), Mtu(1500),
                                  PrefixInformation(64, True, True, 86400, 14400, a("2001:db8:1::")),
                                  PrefixInformation(56, True, False, nd.INFINITE_LIFETIME, 0, a("2001:db8:2::")),
                                  Rdnss(600, (a("2001:db8::53"), a("2001:db8::54")))))
    assert msg.emit(LL, ALL_NODES) == ref
    got = parsed(ref, LL, ALL_NODES)
    assert got == msg
    assert isinstance(got, RouterAdvertisement)
    assert (got.source_lladdr, got.mtu) == (MAC, 1500)
    assert [(p.prefix_len, p.autonomous) for p in got.prefixes] == [(64, True), (56, False)]
    assert [r.servers for r in got.rdnss] == [(a("2001:db8::53"), a("2001:db8::54"))]
    assert nd.validate(got, LL, ALL_NODES, 255) is None


def test_router_preference_bits() -> None:
    """RFC 4191 §2.2: the 2-bit preference after M and O (scapy's prf)."""
    for prf in range(4):
        ref = scapy_icmp(ICMPv6ND_RA(prf=prf, M=0, O=0), "fe80::1", "ff02::1")
        got = parsed(ref, LL, ALL_NODES)
        assert isinstance(got, RouterAdvertisement) and got.preference == prf and not got.managed
        assert got.emit(LL, ALL_NODES) == ref


def test_neighbor_solicitation_matches_scapy() -> None:
    ref = scapy_icmp(ICMPv6ND_NS(tgt="fe80::2") / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01"),
                     "fe80::1", "ff02::1:ff00:2")
    msg = NeighborSolicitation(target=LL2, options=(SourceLinkLayerAddress(MAC),))
    assert msg.emit(LL, SNMA) == ref
    got = parsed(ref, LL, SNMA)
    assert got == msg and nd.validate(got, LL, SNMA, 255) is None


@pytest.mark.parametrize("r,s,o", [(0, 0, 0), (1, 0, 1), (0, 1, 1), (1, 1, 0), (1, 1, 1)])
def test_neighbor_advertisement_matches_scapy(r: int, s: int, o: int) -> None:
    ref = scapy_icmp(ICMPv6ND_NA(R=r, S=s, O=o, tgt="fe80::2") / ICMPv6NDOptDstLLAddr(lladdr="52:54:00:ab:cd:ef"),
                     "fe80::2", "fe80::1")
    msg = NeighborAdvertisement(target=LL2, router=bool(r), solicited=bool(s), override=bool(o),
                                options=(TargetLinkLayerAddress(MAC2),))
    assert msg.emit(LL2, LL) == ref
    got = parsed(ref, LL2, LL)
    assert got == msg and got.target_lladdr == MAC2 and got.source_lladdr is None
    assert nd.validate(got, LL2, LL, 255) is None


def test_redirect_matches_scapy() -> None:
    inner = bytes(IPv6(src="2001:db8::10", dst="2001:db8:9::1") / UDP(sport=1, dport=2) / b"12345678")
    ref = scapy_icmp(ICMPv6ND_Redirect(tgt="fe80::2", dst="2001:db8:9::1")
                     / ICMPv6NDOptDstLLAddr(lladdr="52:54:00:ab:cd:ef") / ICMPv6NDOptRedirectedHdr(pkt=inner),
                     "fe80::1", "2001:db8::10")
    msg = Redirect(target=LL2, destination=a("2001:db8:9::1"),
                   options=(TargetLinkLayerAddress(MAC2), RedirectedHeader(inner)))
    assert msg.emit(LL, GLOBAL) == ref
    got = parsed(ref, LL, GLOBAL)
    assert got == msg and got.redirected_header == inner     # 56 octets: no padding needed
    assert nd.validate(got, LL, GLOBAL, 255) is None


# --- options (§4.6) ---------------------------------------------------------------------------------
def test_unknown_options_are_kept_and_skipped() -> None:
    """§4.6: options not recognised are ignored and processing continues."""
    opts = bytes((200, 1)) + bytes(6) + bytes((1, 1)) + MAC + bytes((31, 2)) + bytes(14)
    got = nd.parse(Icmpv6Repr(nd.ROUTER_SOLICIT, 0, 0, opts))
    assert isinstance(got, RouterSolicitation)
    assert got.options == (UnknownOption(200, bytes(6)), SourceLinkLayerAddress(MAC), UnknownOption(31, bytes(14)))
    assert got.source_lladdr == MAC
    assert got.to_repr().data == opts                      # emitted back unchanged


@pytest.mark.parametrize("opts,reason", [
    (bytes((1, 0)) + bytes(6), "in_opt_zero_len"),                     # §4.6: length 0 voids the message
    (bytes((1, 1)) + MAC + bytes((200, 0)) + bytes(6), "in_opt_zero_len"),
    (bytes((1, 2)) + MAC, "in_opt_truncated"),                          # 16 octets claimed, 8 there
    (bytes((1, 1)) + MAC + b"\x05", "in_opt_truncated"),                # a lone trailing octet
])
def test_broken_option_list_drops_the_message(opts: bytes, reason: str) -> None:
    for t, fixed in ((nd.ROUTER_SOLICIT, b""), (nd.ROUTER_ADVERT, bytes(8)), (nd.NEIGHBOR_SOLICIT, bytes(16)),
                     (nd.NEIGHBOR_ADVERT, bytes(16)), (nd.REDIRECT, bytes(32))):
        assert reason_of(Icmpv6Repr(t, 0, 0, fixed + opts)) == reason


@pytest.mark.parametrize("opt", [
    bytes((3, 1)) + bytes(6),                           # prefix information needs length 4
    bytes((3, 3)) + bytes(22),
    bytes((25, 1)) + bytes(6),                          # RDNSS: no address
    bytes((25, 2)) + bytes(14),                         # RDNSS: half an address (even length)
    bytes((25, 4)) + bytes(30),
])
def test_malformed_known_option_is_ignored_not_fatal(opt: bytes) -> None:
    got = nd.parse(Icmpv6Repr(nd.ROUTER_ADVERT, 0, 0, bytes(8) + opt + bytes((5, 1, 0, 0)) + (1280).to_bytes(4, "big")))
    assert isinstance(got, RouterAdvertisement)
    assert isinstance(got.options[0], MalformedOption) and got.options[0].reason in NDSTATS
    assert got.malformed_options == 1 and got.prefixes == () and got.rdnss == () and got.mtu == 1280


def test_longer_prefix_option_reads_its_first_32_octets() -> None:
    """As Linux: a prefix information option longer than 32 octets is not refused."""
    body = PrefixInformation(48, False, True, 100, 50, a("2001:db8::")).emit()
    longer = body[:1] + b"\x05" + body[2:] + bytes(8)
    got = nd.parse(Icmpv6Repr(nd.ROUTER_ADVERT, 0, 0, bytes(8) + longer))
    assert isinstance(got, RouterAdvertisement)
    assert got.prefixes == (PrefixInformation(48, False, True, 100, 50, a("2001:db8::")),)


def test_duplicate_source_lladdr_first_wins() -> None:
    got = nd.parse(RouterSolicitation(options=(SourceLinkLayerAddress(MAC), SourceLinkLayerAddress(MAC2))).to_repr())
    assert isinstance(got, RouterSolicitation) and got.source_lladdr == MAC


def test_link_layer_address_padding() -> None:
    """§4.6: options are padded to 8 octets; an 8-octet address (EUI-64 links) takes 16."""
    assert SourceLinkLayerAddress(MAC).emit() == b"\x01\x01" + MAC
    eight = bytes(range(1, 9))
    out = TargetLinkLayerAddress(eight).emit()
    assert out == b"\x02\x02" + eight + bytes(6)
    assert nd.parse_options(out) == (TargetLinkLayerAddress(eight + bytes(6)),)


def test_nonce_option() -> None:
    """RFC 3971 §5.3.2, as Linux puts it in DAD probes (RFC 7527): 6 octets, length 1."""
    probe = NeighborSolicitation(target=GLOBAL, options=(Nonce(b"\x01\x02\x03\x04\x05\x06"),))
    got = parsed(probe.emit(0, SNMA), 0, SNMA)
    assert got.nonce == b"\x01\x02\x03\x04\x05\x06" and got.source_lladdr is None
    assert nd.validate(got, 0, SNMA, 255) is None


def test_redirected_header_is_cut_to_fit_the_minimum_mtu() -> None:
    """§4.6.3: the redirected packet is truncated so the Redirect fits in 1280 octets."""
    huge = bytes(range(256)) * 8
    msg = Redirect(target=LL2, destination=a("2001:db8:9::1"), options=(RedirectedHeader(huge),))
    out = msg.emit(LL, GLOBAL)
    assert 40 + len(out) == 1280
    got = parsed(out, LL, GLOBAL)
    assert got.redirected_header == huge[:MAX_REDIRECTED]
    odd = parsed(Redirect(options=(RedirectedHeader(b"abc"),)).emit(LL, GLOBAL), LL, GLOBAL)
    assert odd.redirected_header == b"abc" + bytes(5)       # padding comes back


# --- lengths (§6.1.1 ... §8.1 "ICMP length is N or more octets") ------------------------------
@pytest.mark.parametrize("t,minimum", sorted(nd.MIN_LENGTH.items()))
def test_shorter_than_the_type_minimum_is_truncated(t: int, minimum: int) -> None:
    for n in range(8, minimum):
        assert reason_of(Icmpv6Repr(t, 0, 0, bytes(n - 8))) == "in_truncated"
    assert not isinstance(nd.parse(Icmpv6Repr(t, 0, 0, bytes(minimum - 8))), str)


# --- validation ----------------------------------------------------------------------------------
RS = RouterSolicitation(options=(SourceLinkLayerAddress(MAC),))
RA = RouterAdvertisement(cur_hop_limit=64, router_lifetime=1800, options=(SourceLinkLayerAddress(MAC),))
NS = NeighborSolicitation(target=GLOBAL, options=(SourceLinkLayerAddress(MAC),))
NA = NeighborAdvertisement(target=GLOBAL, solicited=True, options=(TargetLinkLayerAddress(MAC),))
RD = Redirect(target=LL2, destination=a("2001:db8:9::1"))


@pytest.mark.parametrize("msg,src,dst", [(RS, LL, ALL_ROUTERS), (RA, LL, ALL_NODES), (NS, LL, SNMA),
                                         (NA, LL2, LL), (RD, LL, GLOBAL)])
def test_hop_limit_and_code_are_checked_for_every_message(msg: nd.AnyNdMessage, src: int, dst: int) -> None:
    """Hop limit 255 (§6.1.1, §6.1.2, §7.1.1, §7.1.2, §8.1): no router forwarded it; code 0."""
    assert nd.validate(msg, src, dst, 255) is None
    for hops in (0, 1, 64, 254):
        assert nd.validate(msg, src, dst, hops) == "in_bad_hop_limit"
    bad = replace(msg, code=1)
    assert nd.validate(bad, src, dst, 255) == "in_bad_code"
    again = nd.parse(Icmpv6Repr.parse(bad.emit(src, dst), src, dst))     # the code survives the wire
    assert not isinstance(again, str) and nd.validate(again, src, dst, 255) == "in_bad_code"
    assert nd.parse_and_validate(msg.to_repr(), src, dst, 255) == msg
    assert nd.parse_and_validate(msg.to_repr(), src, dst, 64) == "in_bad_hop_limit"


def test_rs_from_unspecified_may_not_carry_a_source_lladdr() -> None:
    """§6.1.1: "If the IP source address is the unspecified address, there is no source
    link-layer address option in the message."""
    assert nd.validate(RS, 0, ALL_ROUTERS, 255) == "in_unspecified_with_lladdr"
    assert nd.validate(RouterSolicitation(), 0, ALL_ROUTERS, 255) is None


@pytest.mark.parametrize("src", [GLOBAL, 0, a("::1"), a("fec0::1"), a("ff02::1")])
def test_ra_source_must_be_link_local(src: int) -> None:
    """§6.1.2."""
    assert nd.validate(RA, src, ALL_NODES, 255) == "in_src_not_link_local"


def test_ns_rules() -> None:
    """§7.1.1: target not multicast; from :: only to a solicited-node group, without a
    source link-layer address option (the DAD probe of RFC 4862 §5.4.2)."""
    assert nd.validate(replace(NS, target=ALL_NODES), LL, SNMA, 255) == "in_target_multicast"
    dad = NeighborSolicitation(target=GLOBAL)
    assert nd.validate(dad, 0, SNMA, 255) is None
    assert nd.validate(dad, 0, ALL_NODES, 255) == "in_dad_dst_not_solicited_node"
    assert nd.validate(dad, 0, GLOBAL, 255) == "in_dad_dst_not_solicited_node"
    assert nd.validate(NS, 0, SNMA, 255) == "in_unspecified_with_lladdr"
    assert nd.validate(NS, LL, GLOBAL, 255) is None              # unicast NS (NUD, §7.2.2)


def test_na_rules() -> None:
    """§7.1.2: target not multicast; solicited flag 0 when sent to a multicast group."""
    assert nd.validate(replace(NA, target=a("ff02::1:2")), LL2, LL, 255) == "in_target_multicast"
    assert nd.validate(NA, LL2, ALL_NODES, 255) == "in_solicited_to_multicast"
    assert nd.validate(replace(NA, solicited=False), LL2, ALL_NODES, 255) is None


def test_redirect_rules() -> None:
    """§8.1: source link-local; destination not multicast; target link-local or equal to
    the destination (the destination is a neighbor)."""
    assert nd.validate(RD, GLOBAL, GLOBAL, 255) == "in_src_not_link_local"
    assert nd.validate(replace(RD, destination=ALL_NODES), LL, GLOBAL, 255) == "in_redirect_dst_multicast"
    assert nd.validate(replace(RD, target=GLOBAL), LL, GLOBAL, 255) == "in_redirect_bad_target"
    on_link = replace(RD, target=a("2001:db8:9::1"))
    assert nd.validate(on_link, LL, GLOBAL, 255) is None


def test_not_an_nd_type() -> None:
    assert nd.parse(Icmpv6Repr(128, 0, 0, bytes(40))) == "in_unknown_types"


# --- hypothesis round trips -------------------------------------------------------------------
lladdrs = st.binary(min_size=6, max_size=6) | st.binary(min_size=14, max_size=14)
options = st.one_of(
    st.builds(SourceLinkLayerAddress, lladdrs),
    st.builds(TargetLinkLayerAddress, lladdrs),
    st.builds(PrefixInformation, u8, st.booleans(), st.booleans(), u32, u32, addrs),
    st.builds(RedirectedHeader, st.binary(max_size=200).map(lambda b: b + bytes(-len(b) % 8))),
    st.builds(Mtu, u32),
    st.builds(Nonce, st.binary(min_size=6, max_size=6) | st.binary(min_size=14, max_size=14)),
    st.builds(Rdnss, u32, st.lists(addrs, min_size=1, max_size=4).map(tuple)),
    st.builds(UnknownOption, st.sampled_from([0, 6, 7, 24, 31, 200, 255]),
              st.integers(0, 4).map(lambda n: bytes(6 + 8 * n))),
)
option_lists = st.lists(options, max_size=5).map(tuple)
messages = st.one_of(
    st.builds(lambda o: RouterSolicitation(options=o), option_lists),
    st.builds(lambda o, h, m, oo, p, lt, rt, rx: RouterAdvertisement(
        options=o, cur_hop_limit=h, managed=m, other=oo, preference=p, router_lifetime=lt, reachable_time=rt,
        retrans_timer=rx), option_lists, u8, st.booleans(), st.booleans(), st.integers(0, 3), u16, u32, u32),
    st.builds(lambda o, t: NeighborSolicitation(options=o, target=t), option_lists, addrs),
    st.builds(lambda o, t, r, s, ov: NeighborAdvertisement(options=o, target=t, router=r, solicited=s, override=ov),
              option_lists, addrs, st.booleans(), st.booleans(), st.booleans()),
    st.builds(lambda o, t, d: Redirect(options=o, target=t, destination=d), option_lists, addrs, addrs),
)


@FAST
@given(messages, addrs, addrs)
def test_message_round_trip(msg: nd.AnyNdMessage, src: int, dst: int) -> None:
    assert parse_message(msg.emit(src, dst), src, dst) == msg


@FAST
@given(option_lists)
def test_option_round_trip(opts: tuple[nd.NdOption, ...]) -> None:
    raw = nd.emit_options(opts)
    assert len(raw) % 8 == 0 and nd.parse_options(raw) == opts


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(nd.MIN_LENGTH)), st.integers(0, 255), u32, st.binary(max_size=96),
       addrs, addrs, u8)
def test_parse_and_validate_never_raise(t: int, code: int, rest: int, data: bytes, src: int, dst: int,
                                        hops: int) -> None:
    got = nd.parse_and_validate(Icmpv6Repr(t, code, rest, data), src, dst, hops)
    assert not isinstance(got, str) or got in NDSTATS
