"""Wire reprs: Ethernet II (RFC 894), ARP (RFC 826), IPv4 header (RFC 791 §3.1),
ICMP (RFC 792).  Round trips, cross-checks against dpkt, and malformed input that
must come back as None / a counter name, never as an exception (README "Counters")."""
from __future__ import annotations

import socket
import struct

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ndd.checksum import checksum, verify
from protocols.arp import OP_REPLY, OP_REQUEST, ArpRepr
from protocols.ether import ETHERTYPE_ARP, ETHERTYPE_IPV4, EthernetRepr
from protocols.icmp import ECHO_REQUEST, IcmpRepr, quoted_header
from protocols.ipv4 import FLAG_DF, FLAG_MF, Ipv4Repr

macs = st.binary(min_size=6, max_size=6)
u8, u16, u32 = st.integers(0, 0xFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
FAST = settings(max_examples=200, deadline=None)


def aton(s: str) -> int:
    return int.from_bytes(socket.inet_aton(s), "big")


def ip_header(*, vihl: int = 0x45, total: int = 20, ff: int = 0, proto: int = 17,
              src: int = 0x0A000001, dst: int = 0x0A000002, options: bytes = b"") -> bytearray:
    """An IPv4 header built by hand (not by Ipv4Repr), checksum filled in."""
    hdr = bytearray(struct.pack("!BBHHHBBHII", vihl, 0, total, 1, ff, 64, proto, 0, src, dst) + options)
    struct.pack_into("!H", hdr, 10, checksum(hdr))
    return hdr


# --- Ethernet -----------------------------------------------------------------
@FAST
@given(macs, macs, u16, st.binary(max_size=64))
def test_ethernet_round_trip(dst: bytes, src: bytes, etype: int, payload: bytes) -> None:
    buf = bytearray(14) + payload
    EthernetRepr(dst, src, etype).emit(buf)
    assert EthernetRepr.parse(buf) == EthernetRepr(dst, src, etype)
    assert buf[14:] == payload


def test_ethernet_against_dpkt() -> None:
    buf = bytearray(14 + 4)
    EthernetRepr(b"\xff" * 6, b"\x02\x00\x00\x00\x00\x01", ETHERTYPE_IPV4).emit(buf)
    d = dpkt.ethernet.Ethernet(bytes(buf))
    assert (d.dst, d.src, d.type) == (b"\xff" * 6, b"\x02\x00\x00\x00\x00\x01", ETHERTYPE_IPV4)
    theirs = bytes(dpkt.ethernet.Ethernet(dst=b"\x02" * 6, src=b"\x04" * 6, type=ETHERTYPE_ARP,
                                          data=dpkt.arp.ARP()))
    assert EthernetRepr.parse(theirs) == EthernetRepr(b"\x02" * 6, b"\x04" * 6, ETHERTYPE_ARP)


def test_ethernet_truncated() -> None:
    assert EthernetRepr.parse(b"") is None
    assert EthernetRepr.parse(bytes(13)) is None


# --- ARP ----------------------------------------------------------------------
@FAST
@given(st.sampled_from([OP_REQUEST, OP_REPLY]), macs, u32, macs, u32)
def test_arp_round_trip(oper: int, sha: bytes, spa: int, tha: bytes, tpa: int) -> None:
    arp = ArpRepr(oper, sha, spa, tha, tpa)
    wire = arp.emit()
    assert len(wire) == 28
    assert ArpRepr.parse(wire) == arp
    assert ArpRepr.parse(wire + bytes(18)) == arp     # Ethernet minimum-frame padding


def test_arp_against_dpkt() -> None:
    ours = ArpRepr(OP_REPLY, b"\x02\x00\x00\x00\x00\x01", aton("10.0.0.1"), b"\x02\x00\x00\x00\x00\x02",
                   aton("10.0.0.2")).emit()
    d = dpkt.arp.ARP(ours)
    assert (d.hrd, d.pro, d.hln, d.pln, d.op) == (1, 0x0800, 6, 4, 2)
    assert d.spa == socket.inet_aton("10.0.0.1") and d.tpa == socket.inet_aton("10.0.0.2")
    assert d.sha == b"\x02\x00\x00\x00\x00\x01"
    theirs = bytes(dpkt.arp.ARP(op=1, sha=b"\x02" * 6, spa=socket.inet_aton("192.168.1.9"),
                                tha=bytes(6), tpa=socket.inet_aton("192.168.1.1")))
    assert ArpRepr.parse(theirs) == ArpRepr(OP_REQUEST, b"\x02" * 6, aton("192.168.1.9"), bytes(6),
                                            aton("192.168.1.1"))


@pytest.mark.parametrize("offset,fmt,value", [
    (0, "!H", 6),        # htype IEEE 802 instead of Ethernet
    (2, "!H", 0x86DD),   # ptype IPv6
    (4, "!B", 8),        # hlen
    (5, "!B", 16),       # plen
    (6, "!H", 0),        # oper
    (6, "!H", 3),        # oper RARP request
])
def test_arp_rejects_wrong_fields(offset: int, fmt: str, value: int) -> None:
    wire = bytearray(ArpRepr(OP_REQUEST, b"\x02" * 6, 1, bytes(6), 2).emit())
    struct.pack_into(fmt, wire, offset, value)
    assert ArpRepr.parse(wire) is None


def test_arp_truncated() -> None:
    wire = ArpRepr(OP_REQUEST, b"\x02" * 6, 1, bytes(6), 2).emit()
    assert ArpRepr.parse(wire[:27]) is None
    assert ArpRepr.parse(b"") is None


# --- IPv4 ---------------------------------------------------------------------
ipv4_reprs = st.builds(Ipv4Repr, src=u32, dst=u32, proto=u8, total_len=st.integers(20, 200), ttl=u8,
                       tos=u8, ident=u16, flags_frag=u16)


@FAST
@given(ipv4_reprs)
def test_ipv4_round_trip(ip: Ipv4Repr) -> None:
    buf = bytearray(ip.total_len)
    ip.emit(buf)
    assert verify(buf[:20])
    assert Ipv4Repr.parse(buf) == ip
    assert Ipv4Repr.parse(memoryview(buf)) == ip


def test_ipv4_accessors() -> None:
    ip = Ipv4Repr(1, 2, 6, 20, flags_frag=FLAG_MF | FLAG_DF | 185)
    assert ip.df and ip.mf and ip.frag_offset == 1480


def test_ipv4_against_dpkt() -> None:
    buf = bytearray(20 + 6)
    buf[20:] = b"abcdef"
    Ipv4Repr(aton("10.1.2.3"), aton("10.4.5.6"), 17, 26, ttl=9, tos=0x10, ident=0xBEEF,
             flags_frag=FLAG_MF | 3).emit(buf)
    d = dpkt.ip.IP(bytes(buf))
    assert (d.v, d.hl, d.len, d.id, d.ttl, d.p, d.tos) == (4, 5, 26, 0xBEEF, 9, 17, 0x10)
    assert d.src == socket.inet_aton("10.1.2.3") and d.dst == socket.inet_aton("10.4.5.6")
    assert d.mf and not d.df and d.offset == 3    # dpkt counts 8-octet units
    # dpkt recomputes the checksum when sum=0: ours must equal it
    (ours,) = struct.unpack_from("!H", buf, 10)
    d.sum = 0
    assert struct.unpack_from("!H", bytes(d), 10)[0] == ours


def test_dpkt_ipv4_parses_with_ours() -> None:
    theirs = bytes(dpkt.ip.IP(src=socket.inet_aton("192.0.2.1"), dst=socket.inet_aton("198.51.100.7"), p=6,
                              ttl=33, id=77, df=1, data=b"x" * 13))
    ip = Ipv4Repr.parse(theirs)
    assert isinstance(ip, Ipv4Repr)
    assert (ip.src, ip.dst, ip.proto, ip.ttl, ip.ident, ip.total_len, ip.hdr_len) == \
        (aton("192.0.2.1"), aton("198.51.100.7"), 6, 33, 77, 33, 20)
    assert ip.df and not ip.mf


def test_ipv4_options_are_skipped() -> None:
    hdr = ip_header(vihl=0x46, total=24 + 3, options=b"\x01\x01\x01\x00")  # NOP NOP NOP EOL
    ip = Ipv4Repr.parse(hdr + b"abc")
    assert isinstance(ip, Ipv4Repr) and ip.hdr_len == 24 and ip.total_len == 27


def test_ipv4_trailing_bytes_allowed() -> None:
    ip = Ipv4Repr.parse(ip_header(total=20) + bytes(26))   # Ethernet padding
    assert isinstance(ip, Ipv4Repr) and ip.total_len == 20


def _bad_csum() -> bytes:
    hdr = ip_header()
    hdr[10] ^= 0xFF
    return bytes(hdr)


@pytest.mark.parametrize("data,reason", [
    (b"", "in_truncated"),
    (bytes(ip_header())[:19], "in_truncated"),
    (bytes(ip_header(vihl=0x65)), "in_hdr_errors"),                 # version 6
    (bytes(ip_header(vihl=0x44)), "in_hdr_errors"),                 # IHL 4 < 5
    (bytes(ip_header(vihl=0x40)), "in_hdr_errors"),                 # IHL 0
    (bytes(ip_header(vihl=0x4F, total=60)), "in_truncated"),        # IHL 60 beyond a 20-byte buffer
    (bytes(ip_header(vihl=0x46, total=20, options=bytes(4))), "in_hdr_errors"),  # total < IHL
    (bytes(ip_header(total=19)), "in_hdr_errors"),                  # total < 20
    (bytes(ip_header(total=21)), "in_truncated"),                   # total > buffer
    (bytes(ip_header(total=0xFFFF)) + bytes(100), "in_truncated"),
    (_bad_csum(), "in_csum_errors"),
])
def test_ipv4_malformed(data: bytes, reason: str) -> None:
    assert Ipv4Repr.parse(data) == reason
    assert Ipv4Repr.parse(memoryview(data)) == reason


def test_ipv4_checksum_check_can_be_skipped() -> None:
    ip = Ipv4Repr.parse(_bad_csum(), verify_checksum=False)
    assert isinstance(ip, Ipv4Repr)


# --- ICMP ---------------------------------------------------------------------
@FAST
@given(u8, u8, u32, st.binary(max_size=100))
def test_icmp_round_trip(type_: int, code: int, rest: int, data: bytes) -> None:
    msg = IcmpRepr(type_, code, rest, data)
    wire = msg.emit()
    assert verify(wire)
    assert IcmpRepr.parse(wire) == msg


def test_icmp_against_dpkt() -> None:
    wire = IcmpRepr(ECHO_REQUEST, 0, (0x1234 << 16) | 7, b"ping data").emit()
    d = dpkt.icmp.ICMP(wire)
    assert (d.type, d.code, d.data.id, d.data.seq, d.data.data) == (8, 0, 0x1234, 7, b"ping data")
    d.sum = 0
    assert bytes(d) == wire                       # dpkt computes the same checksum
    theirs = bytes(dpkt.icmp.ICMP(type=0, data=dpkt.icmp.ICMP.Echo(id=9, seq=10, data=b"pong")))
    assert IcmpRepr.parse(theirs) == IcmpRepr(0, 0, (9 << 16) | 10, b"pong")


def test_icmp_inside_ipv4_parsed_by_dpkt() -> None:
    icmp = IcmpRepr(ECHO_REQUEST, 0, (1 << 16) | 2, b"hi").emit()
    buf = bytearray(20) + icmp
    Ipv4Repr(aton("10.0.0.1"), aton("10.0.0.2"), 1, len(buf)).emit(buf)
    d = dpkt.ip.IP(bytes(buf))
    assert isinstance(d.data, dpkt.icmp.ICMP) and d.data.data.data == b"hi"


def test_icmp_malformed() -> None:
    wire = IcmpRepr(ECHO_REQUEST, 0, 0, b"abcd").emit()
    assert IcmpRepr.parse(wire[:7]) == "in_truncated"
    bad = bytearray(wire)
    bad[-1] ^= 1
    assert IcmpRepr.parse(bad) == "in_csum_errors"
    assert isinstance(IcmpRepr.parse(bad, verify=False), IcmpRepr)


def test_quoted_header_needs_header_plus_8() -> None:
    hdr = bytes(ip_header(total=100))
    assert quoted_header(hdr + bytes(7)) is None
    q = quoted_header(hdr + bytes(8))
    assert q is not None and q.total_len == 100 and q.proto == 17
    assert quoted_header(bytes(ip_header(vihl=0x44)) + bytes(8)) is None
    assert quoted_header(bytes(ip_header(vihl=0x65)) + bytes(8)) is None


# --- fuzz: nothing raises -----------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_random_bytes_never_raise(data: bytes) -> None:
    r = EthernetRepr.parse(data)
    assert r is None or isinstance(r, EthernetRepr)
    a = ArpRepr.parse(data)
    assert a is None or isinstance(a, ArpRepr)
    for view in (data, memoryview(data)):
        ip = Ipv4Repr.parse(view)
        assert isinstance(ip, (str, Ipv4Repr))
        if isinstance(ip, Ipv4Repr):
            assert 20 <= ip.hdr_len <= ip.total_len <= len(data)
        assert isinstance(Ipv4Repr.parse(view, verify_checksum=False), (str, Ipv4Repr))
        assert isinstance(IcmpRepr.parse(view), (str, IcmpRepr))
        assert isinstance(IcmpRepr.parse(view, verify=False), (str, IcmpRepr))
        q = quoted_header(bytes(view))
        assert q is None or isinstance(q, Ipv4Repr)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=20, max_size=80))
def test_random_ipv4_lookalikes_never_raise(body: bytes) -> None:
    # force version 4 so the deeper length checks are reached more often
    data = bytes([0x40 | body[0] & 0x0F]) + body[1:]
    ip = Ipv4Repr.parse(data, verify_checksum=False)
    assert isinstance(ip, (str, Ipv4Repr))
    if isinstance(ip, Ipv4Repr):
        assert 20 <= ip.hdr_len <= ip.total_len <= len(data)
