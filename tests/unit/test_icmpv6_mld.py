"""MLDv2 (RFC 3810) and MLDv1 (RFC 2710) messages (protocols/icmpv6/mld.py): queries and
reports byte for byte against scapy, the exponential Maximum Response Code (§5.1.3) and
QQIC (§5.1.9) exhaustively, version by length (§8.1), the §6.2 receipt checks, report
splitting (§5.2.15), hypothesis round trips emit -> parse."""
from __future__ import annotations

import socket
from dataclasses import fields, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    ICMPv6MLDMultAddrRec,
    ICMPv6MLDone,
    ICMPv6MLQuery,
    ICMPv6MLQuery2,
    ICMPv6MLReport,
    ICMPv6MLReport2,
    IPv6,
    IPv6ExtHdrHopByHop,
    RouterAlert,
)

from protocols.icmpv6 import mld
from protocols.icmpv6.message import parse_message
from protocols.icmpv6.mld import (
    McastRecord,
    MldQuery,
    MldReport,
    MldV1Done,
    MldV1Query,
    MldV1Report,
)
from protocols.icmpv6.stats import MldStats
from protocols.icmpv6.wire import MLD2_REPORT, MLD_QUERY, Icmpv6Repr

FAST = settings(max_examples=150, deadline=None)
u8, u16 = st.integers(0, 0xFF), st.integers(0, 0xFFFF)
addrs = st.integers(0, (1 << 128) - 1)
MLDSTATS = {f.name for f in fields(MldStats)}


def a(text: str) -> int:
    return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")


LL, ALL_NODES, MLDV2_ROUTERS = a("fe80::1"), a("ff02::1"), a("ff02::16")
GROUP, GROUP2 = a("ff02::fb"), a("ff05::1:3")


def scapy_icmp(layer: object, src: str, dst: str) -> bytes:
    return bytes(IPv6(src=src, dst=dst, hlim=1) / layer)[40:]  # type: ignore[operator]


def reason(got: object) -> str:
    assert isinstance(got, str) and got in MLDSTATS, got
    return got


# --- against scapy ---------------------------------------------------------------------------
def test_v2_general_query_matches_scapy() -> None:
    ref = scapy_icmp(ICMPv6MLQuery2(mrd=10000, QRV=2, QQIC=125), "fe80::1", "ff02::1")
    msg = MldQuery(max_resp_code=10000, qrv=2, qqic=125)
    assert msg.emit(LL, ALL_NODES) == ref
    got = parse_message(ref, LL, ALL_NODES)
    assert got == msg and isinstance(got, MldQuery)
    assert (got.max_resp_delay, got.qqi) == (10000, 125)
    assert mld.validate(got, LL, ALL_NODES, 1) is None


def test_v2_source_specific_query_matches_scapy() -> None:
    ref = scapy_icmp(ICMPv6MLQuery2(mrd=40000, mladdr="ff02::fb", S=1, QRV=7, QQIC=200,
                                    sources=["fe80::5", "2001:db8::6"]), "fe80::1", "ff02::fb")
    msg = MldQuery(max_resp_code=40000, group=GROUP, suppress=True, qrv=7, qqic=200,
                   sources=(a("fe80::5"), a("2001:db8::6")))
    assert msg.emit(LL, GROUP) == ref
    got = parse_message(ref, LL, GROUP)
    assert got == msg and isinstance(got, MldQuery)
    # §5.1.3: 40000 = 0x9C40 -> exp 1, mant 0xC40: (0xC40 | 0x1000) << 4; §5.1.9: 200 = 0xC8 -> (8|16) << 7
    assert (got.max_resp_delay, got.qqi) == (0x1C40 << 4, 24 << 7)
    assert mld.validate(got, LL, GROUP, 1) is None


def test_v1_messages_match_scapy() -> None:
    """RFC 2710 §3: max response delay, reserved, group; 24 octets."""
    q = scapy_icmp(ICMPv6MLQuery(mrd=5000, mladdr="ff02::fb"), "fe80::1", "ff02::fb")
    assert len(q) == 24
    assert MldV1Query(max_resp_delay=5000, group=GROUP).emit(LL, GROUP) == q
    got = parse_message(q, LL, GROUP)
    assert got == MldV1Query(max_resp_delay=5000, group=GROUP) and mld.validate(got, LL, GROUP, 1) is None  # type: ignore[arg-type]
    r = scapy_icmp(ICMPv6MLReport(mladdr="ff05::1:3"), "fe80::1", "ff05::1:3")
    assert MldV1Report(group=GROUP2).emit(LL, GROUP2) == r and parse_message(r, LL, GROUP2) == MldV1Report(group=GROUP2)
    d = scapy_icmp(ICMPv6MLDone(mladdr="ff05::1:3"), "fe80::1", "ff02::2")
    assert MldV1Done(group=GROUP2).emit(LL, a("ff02::2")) == d
    assert parse_message(d, LL, a("ff02::2")) == MldV1Done(group=GROUP2)


def test_v2_report_matches_scapy() -> None:
    # scapy 2.8 fills Aux Data Len in octets; §5.2.6 says 32-bit words, so it is given here
    ref = scapy_icmp(ICMPv6MLReport2(records=[
        ICMPv6MLDMultAddrRec(rtype=4, dst="ff02::1:ff00:1"),
        ICMPv6MLDMultAddrRec(rtype=1, dst="ff05::1:3", sources=["2001:db8::1", "2001:db8::2"]),
        ICMPv6MLDMultAddrRec(rtype=6, dst="ff02::fb", sources=["fe80::9"], auxdata=b"AUXD", auxdata_len=1)]),
        "fe80::1", "ff02::16")
    msg = MldReport(records=(McastRecord(mld.CHANGE_TO_EXCLUDE_MODE, a("ff02::1:ff00:1")),
                             McastRecord(mld.MODE_IS_INCLUDE, GROUP2, (a("2001:db8::1"), a("2001:db8::2"))),
                             McastRecord(mld.BLOCK_OLD_SOURCES, GROUP, (a("fe80::9"),), b"AUXD")))
    assert msg.emit(LL, MLDV2_ROUTERS) == ref
    got = parse_message(ref, LL, MLDV2_ROUTERS)
    assert got == msg and mld.validate(got, LL, MLDV2_ROUTERS, 1) is None  # type: ignore[arg-type]


def test_report_from_unspecified_is_valid() -> None:
    """§5.2.13: sent from :: before the interface has a link-local address (during DAD)."""
    msg = MldReport(records=(McastRecord(mld.CHANGE_TO_EXCLUDE_MODE, a("ff02::1:ff00:1")),))
    assert mld.validate(msg, 0, MLDV2_ROUTERS, 1) is None
    assert mld.validate(msg, a("2001:db8::1"), MLDV2_ROUTERS, 1) == "in_src_not_link_local"


# --- the exponential codes --------------------------------------------------------------------
def test_max_resp_code_every_value() -> None:
    """§5.1.3 for all 65536 codes; encode inverts decode exactly."""
    assert mld.decode_max_resp_code(0x7FFF) == 32767
    assert mld.decode_max_resp_code(0x8000) == 32768                   # (0 | 0x1000) << 3
    assert mld.decode_max_resp_code(0xFFFF) == 0x1FFF << 10             # 8387584 ms
    previous = -1
    for code in range(0x10000):
        delay = mld.decode_max_resp_code(code)
        assert delay > previous                                         # monotonic, so invertible
        assert mld.encode_max_resp_code(delay) == code
        previous = delay


def test_qqic_every_value() -> None:
    """§5.1.9 for all 256 codes."""
    assert (mld.decode_qqic(127), mld.decode_qqic(128), mld.decode_qqic(255)) == (127, 128, 0x1F << 10)
    assert [mld.encode_qqic(mld.decode_qqic(c)) for c in range(256)] == list(range(256))


@FAST
@given(st.integers(0, 10**8))
def test_encoding_rounds_down(delay: int) -> None:
    """A host answers no later than asked: the coded delay is at most the requested one,
    and within the float form's precision (1/4096, 1/16) below it, up to the maximum."""
    got = mld.decode_max_resp_code(mld.encode_max_resp_code(delay))
    assert got <= delay and (got == 0x1FFF << 10 or delay - got < max(1, delay >> 12))
    qq = mld.decode_qqic(mld.encode_qqic(delay))
    assert qq <= delay and (qq == 0x1F << 10 or delay - qq < max(1, delay >> 4))


# --- lengths (§8.1) and malformed -----------------------------------------------------------------
@pytest.mark.parametrize("length", [8, 16, 23, 25, 26, 27])
def test_query_of_neither_version_length_is_ignored(length: int) -> None:
    """§8.1: "Query messages that do not match any of the above conditions (e.g., a Query of
    length 26 octets) MUST be silently ignored."""
    assert reason(mld.parse(Icmpv6Repr(MLD_QUERY, 0, 0, bytes(length - 8)))) == "in_bad_length"


def test_query_sources_past_the_end_are_truncated() -> None:
    raw = MldQuery(group=GROUP, sources=(1, 2, 3)).to_repr()
    short = replace(raw, data=raw.data[:-1])
    assert reason(mld.parse(short)) == "in_truncated"
    assert reason(mld.parse(replace(raw, data=raw.data[:-16]))) == "in_truncated"


def test_query_additional_data_is_ignored() -> None:
    """§5.1.12: extra octets after the sources are checksummed and otherwise ignored."""
    raw = MldQuery(group=GROUP, sources=(a("fe80::5"),)).to_repr()
    longer = replace(raw, data=raw.data + b"extra!")
    got = parse_message(longer.emit(LL, GROUP), LL, GROUP)
    assert got == MldQuery(group=GROUP, sources=(a("fe80::5"),))


@pytest.mark.parametrize("cut", [1, 4, 19, 20, 21])
def test_report_records_past_the_end_are_truncated(cut: int) -> None:
    msg = MldReport(records=(McastRecord(1, GROUP, (a("fe80::9"),), b"AUXD"),
                             McastRecord(4, GROUP2)))
    raw = msg.to_repr()
    assert reason(mld.parse(replace(raw, data=raw.data[:-cut]))) == "in_truncated"
    more = replace(raw, rest=3)                                   # claims a third record
    assert reason(mld.parse(more)) == "in_truncated"


def test_report_with_no_records_and_unknown_record_type() -> None:
    """Records of other types are kept for the reader to ignore (§5.2.12 lists 1-6)."""
    assert mld.parse(MldReport().to_repr()) == MldReport()
    odd = MldReport(records=(McastRecord(9, GROUP),))
    assert mld.parse(odd.to_repr()) == odd and 9 not in mld.RECORD_TYPES


def test_short_v1_report_or_done() -> None:
    for t in (mld.MLD_REPORT, mld.MLD_DONE):
        assert reason(mld.parse(Icmpv6Repr(t, 0, 0, bytes(15)))) == "in_bad_length"


def test_not_an_mld_type() -> None:
    assert reason(mld.parse(Icmpv6Repr(128, 0, 0, bytes(40)))) == "in_unknown_types"


# --- §6.2 receipt checks -----------------------------------------------------------------------
QUERIES = [MldQuery(), MldQuery(group=GROUP, sources=(a("2001:db8::1"),)), MldV1Query(group=GROUP)]


@pytest.mark.parametrize("msg", QUERIES)
def test_query_needs_hop_limit_1_and_link_local_source(msg: mld.AnyMldMessage) -> None:
    assert mld.validate(msg, LL, ALL_NODES, 1) is None
    for hops in (0, 2, 64, 255):
        assert mld.validate(msg, LL, ALL_NODES, hops) == "in_bad_hop_limit"
    for src in (0, a("2001:db8::1"), a("::1")):
        assert mld.validate(msg, src, ALL_NODES, 1) == "in_src_not_link_local"


@pytest.mark.parametrize("msg", [MldQuery(group=a("2001:db8::1")), MldV1Query(group=a("fe80::2"))])
def test_query_group_must_be_zero_or_multicast(msg: mld.AnyMldMessage) -> None:
    assert mld.validate(msg, LL, ALL_NODES, 1) == "in_bad_group"


def test_general_query_with_sources_is_dropped() -> None:
    """As Linux's igmp6_event_query: a general query (group ::) carries no sources."""
    assert mld.validate(MldQuery(sources=(a("fe80::5"),)), LL, ALL_NODES, 1) == "in_general_query_with_sources"


# --- hypothesis round trips ------------------------------------------------------------------------
records = st.builds(McastRecord, st.integers(1, 6), addrs, st.lists(addrs, max_size=4).map(tuple),
                    st.integers(0, 3).map(lambda n: b"AUX!" * n))
mld_messages = st.one_of(
    st.builds(lambda c, g, s, q, qq, src: MldQuery(max_resp_code=c, group=g, suppress=s, qrv=q, qqic=qq,
                                                   sources=src),
              u16, addrs, st.booleans(), st.integers(0, 7), u8, st.lists(addrs, max_size=5).map(tuple)),
    st.builds(lambda d, g: MldV1Query(max_resp_delay=d, group=g), u16, addrs),
    st.builds(lambda g: MldV1Report(group=g), addrs),
    st.builds(lambda g: MldV1Done(group=g), addrs),
    st.builds(lambda r: MldReport(records=r), st.lists(records, max_size=5).map(tuple)),
)


@FAST
@given(mld_messages, addrs, addrs)
def test_round_trip(msg: mld.AnyMldMessage, src: int, dst: int) -> None:
    assert parse_message(msg.emit(src, dst), src, dst) == msg


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([MLD_QUERY, mld.MLD_REPORT, mld.MLD_DONE, MLD2_REPORT]), st.integers(0, 0xFFFFFFFF),
       st.binary(max_size=120), addrs, addrs, u8)
def test_parse_and_validate_never_raise(t: int, rest: int, data: bytes, src: int, dst: int, hops: int) -> None:
    got = mld.parse(Icmpv6Repr(t, 0, rest, data))
    if isinstance(got, str):
        assert got in MLDSTATS
    else:
        r = mld.validate(got, src, dst, hops)
        assert r is None or r in MLDSTATS


def test_router_alert_hop_by_hop_header_matches_scapy() -> None:
    """RFC 3810 §5 / RFC 2711: what the IPv6 layer must put in front of every MLD message."""
    assert bytes(IPv6ExtHdrHopByHop(nh=58, options=[RouterAlert(value=0)])) == mld.ROUTER_ALERT_HBH
    assert mld.ALL_MLDV2_ROUTERS == MLDV2_ROUTERS
