"""The fixed IPv6 header (RFC 8200 §3) view/repr, Linux's input address rules (ip6_rcv_core,
RFC 4291 §2.5.3/§2.7) and the upper-layer pseudo-header sum (RFC 8200 §8.1), cross-checked
against scapy and dpkt; hypothesis round trips."""
from __future__ import annotations

import struct

import dpkt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6

from ndd.checksum import checksum, ones_sum, verify
from ndd.pktbuf import PacketBuffer
from protocols.ipv6.addr import ALL_ONES, ip6_to_int
from protocols.ipv6.stats import Ipv6Stats
from protocols.ipv6.wire import (
    HDR_LEN,
    NH_ICMPV6,
    NH_TCP,
    NH_UDP,
    Ipv6Repr,
    check_addresses,
    pseudo_header_sum,
)

ip = ip6_to_int
A, B = "2001:db8::1", "2001:db8::2"
addresses = st.integers(min_value=0, max_value=ALL_ONES)


def scapy_udp(payload: bytes = b"hello", **kw: object) -> bytes:
    return bytes(IPv6(src=A, dst=B, **kw) / UDP(sport=1, dport=2) / payload)  # type: ignore[arg-type]


# --- parse -------------------------------------------------------------------------------------------
def test_parse_a_scapy_packet() -> None:
    raw = scapy_udp(tc=0xB8, fl=0x12345, hlim=17)
    h = Ipv6Repr.parse(raw)
    assert isinstance(h, Ipv6Repr)
    assert (h.src, h.dst, h.next_header, h.payload_len, h.hop_limit) == (ip(A), ip(B), NH_UDP, 13, 17)
    assert (h.traffic_class, h.flow_label, h.dscp, h.ecn) == (0xB8, 0x12345, 46, 0)   # EF
    assert h.total_len == len(raw)
    d = dpkt.ip6.IP6(raw)
    assert (d.fc, d.flow, d.plen, d.nxt, d.hlim) == (h.traffic_class, h.flow_label, h.payload_len, h.next_header,
                                                     h.hop_limit)


@pytest.mark.parametrize("length", range(HDR_LEN))
def test_shorter_than_the_fixed_header_is_truncated(length: int) -> None:
    assert Ipv6Repr.parse(scapy_udp()[:length]) == "in_truncated_pkts"


@pytest.mark.parametrize("version", [0, 4, 5, 7, 15])
def test_version_other_than_6_is_a_header_error(version: int) -> None:
    raw = bytearray(scapy_udp())
    raw[0] = version << 4 | (raw[0] & 0xF)
    assert Ipv6Repr.parse(raw) == "in_hdr_errors"


def test_payload_length_against_the_frame() -> None:
    raw = scapy_udp(b"x" * 20)
    assert Ipv6Repr.parse(raw[:-1]) == "in_truncated_pkts"        # frame short of the payload length: drop
    padded = raw + bytes(30)                                       # link padding: kept, trimmed to total_len
    h = Ipv6Repr.parse(padded)
    assert isinstance(h, Ipv6Repr) and h.total_len == len(raw)
    pkt = PacketBuffer(bytearray(padded))
    pkt.trim(h.total_len)
    assert pkt.tobytes() == raw
    empty = bytearray(raw[:HDR_LEN])
    struct.pack_into("!HB", empty, 4, 0, 59)                       # payload length 0, no next header
    h0 = Ipv6Repr.parse(empty)
    assert isinstance(h0, Ipv6Repr) and h0.payload_len == 0 and h0.next_header == 59


def test_the_stats_know_every_parse_reason() -> None:
    names = Ipv6Stats().as_dict()
    assert "in_truncated_pkts" in names and "in_hdr_errors" in names
    stats = Ipv6Stats()
    stats.bump("in_truncated_pkts")
    assert stats.in_truncated_pkts == 1


@given(st.binary(max_size=120))
def test_parse_never_raises(data: bytes) -> None:
    h = Ipv6Repr.parse(data)
    assert isinstance(h, Ipv6Repr) or h in ("in_truncated_pkts", "in_hdr_errors")
    if isinstance(h, Ipv6Repr):
        assert h.total_len <= len(data) and data[0] >> 4 == 6


# --- emit ---------------------------------------------------------------------------------------------
@given(addresses, addresses, st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 255),
       st.integers(0, 255), st.integers(0, 0xFFFFF))
def test_emit_parse_round_trip(src: int, dst: int, nh: int, plen: int, hlim: int, tc: int, fl: int) -> None:
    h = Ipv6Repr(src, dst, nh, plen, hlim, tc, fl)
    raw = h.to_bytes() + bytes(plen)
    assert len(raw) == HDR_LEN + plen
    assert Ipv6Repr.parse(raw) == h
    assert raw[0] >> 4 == 6 and raw[6] == nh and raw[7] == hlim


def test_emit_into_packet_buffer_headroom_matches_scapy() -> None:
    want = scapy_udp(tc=0x02, fl=7, hlim=64)
    pkt = PacketBuffer.from_payload(want[HDR_LEN:])
    room = pkt.headroom
    Ipv6Repr(ip(A), ip(B), NH_UDP, len(pkt), 64, 0x02, 7).emit(pkt.prepend(HDR_LEN))
    assert pkt.tobytes() == want and pkt.headroom == room - HDR_LEN
    assert str(Ipv6Repr.parse(want)) == f"{A} > {B} nh=17 len=13 hlim=64"


# --- input address rules (Linux ip6_rcv_core) -----------------------------------------------------------
@pytest.mark.parametrize(("src", "dst", "loopback_if", "verdict"), [
    (A, B, False, None),
    ("fe80::1", "ff02::1", False, None),
    ("::", "ff02::1:ff00:1", False, None),          # DAD probes come from :: (RFC 4862 §5.4.2)
    ("::1", B, False, "in_hdr_errors"),             # RFC 4291 §2.5.3
    (A, "::1", False, "in_hdr_errors"),
    ("::1", "::1", True, None),
    ("ff02::1", B, False, "in_hdr_errors"),         # RFC 4291 §2.7: multicast source
    ("ff02::1", B, True, "in_hdr_errors"),
    (A, "ff00::1", False, "in_hdr_errors"),         # reserved multicast scope 0
    (A, "ff01::1", False, "in_hdr_errors"),         # interface-local from the wire (errata 3480)
    (A, "ff01::1", True, None),
    (A, "ff0e::1", False, None),
])
def test_check_addresses(src: str, dst: str, loopback_if: bool, verdict: str | None) -> None:
    assert check_addresses(ip(src), ip(dst), loopback_if=loopback_if) == verdict


# --- pseudo-header sum (RFC 8200 §8.1) -------------------------------------------------------------------
def pseudo_bytes(src: int, dst: int, nh: int, length: int) -> bytes:
    return src.to_bytes(16, "big") + dst.to_bytes(16, "big") + struct.pack("!I3xB", length, nh)


@given(addresses, addresses, st.integers(0, 255), st.integers(0, 0xFFFFFFFF))
def test_pseudo_header_sum_equals_the_byte_layout(src: int, dst: int, nh: int, length: int) -> None:
    assert pseudo_header_sum(src, dst, nh, length) == ones_sum(pseudo_bytes(src, dst, nh, length))


def test_pseudo_header_sum_zero_and_negative_zero() -> None:
    assert pseudo_header_sum(0, 0, 0, 0) == 0
    assert pseudo_header_sum(0xFFFF, 0, 0, 0) == 0xFFFF        # ones' complement -0 stays 0xFFFF


@pytest.mark.parametrize("layer", [UDP(sport=5353, dport=9) / (b"a" * 33), TCP(sport=80, dport=4242, flags="SA"),
                                   ICMPv6EchoRequest(id=7, seq=9, data=b"ping" * 10)])
def test_checksums_agree_with_scapy(layer: object) -> None:
    raw = bytes(IPv6(src="fe80::1", dst="fe80::5054:ff:fe12:3456") / layer)  # type: ignore[operator]
    h = Ipv6Repr.parse(raw)
    assert isinstance(h, Ipv6Repr)
    upper = raw[HDR_LEN:]
    phs = pseudo_header_sum(h.src, h.dst, h.next_header, len(upper))
    assert verify(upper, phs)                                  # scapy's checksum verifies with ours
    field = {NH_UDP: 6, NH_TCP: 16, NH_ICMPV6: 2}[h.next_header]
    zeroed = bytearray(upper)
    zeroed[field:field + 2] = b"\0\0"
    assert checksum(zeroed, phs) == struct.unpack_from("!H", upper, field)[0]
