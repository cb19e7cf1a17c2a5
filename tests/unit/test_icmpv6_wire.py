"""ICMPv6 header, checksum and RFC 4443 messages (protocols/icmpv6/wire.py, message.py):
the pseudo-header checksum checked against a plain RFC 1071 sum and against scapy, every
message byte for byte against scapy, malformed input as counter names (never an
exception), hypothesis round trips emit -> parse."""
from __future__ import annotations

import errno
import socket
import struct
from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPv6,
)

from protocols.icmpv6 import wire
from protocols.icmpv6.message import parse_message
from protocols.icmpv6.stats import Icmpv6Stats, MldStats, NdStats
from protocols.icmpv6.wire import (
    MAX_QUOTE,
    DestUnreachable,
    EchoReply,
    EchoRequest,
    Icmpv6Repr,
    PacketTooBig,
    ParamProblem,
    QuotedPacket,
    TimeExceeded,
    UnknownError,
)
from protocols.ipv6 import addr

FAST = settings(max_examples=200, deadline=None)
u16, u32 = st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)
addrs = st.integers(0, (1 << 128) - 1)
SECTIONS = {"icmpv6": Icmpv6Stats, "nd": NdStats, "mld": MldStats}


def a(text: str) -> int:
    return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")


SRC, DST = "2001:db8::1", "2001:db8::2"
S, D = a(SRC), a(DST)


def rfc1071(data: bytes) -> int:
    """A plain 16-bit word loop, independent of ndd.checksum's big-integer trick."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pseudo(src: int, dst: int, length: int, nh: int = 58) -> bytes:
    """RFC 8200 §8.1: source, destination, 32-bit upper-layer length, 3 zeros, next header."""
    return src.to_bytes(16, "big") + dst.to_bytes(16, "big") + struct.pack("!I3xB", length, nh)


def scapy_icmp(layer: object, src: str = SRC, dst: str = DST) -> bytes:
    """The ICMPv6 message scapy builds (checksum included) behind an IPv6 header."""
    return bytes(IPv6(src=src, dst=dst) / layer)[40:]  # type: ignore[operator]


def is_counter(reason: object, stats: type) -> bool:
    return isinstance(reason, str) and reason in {f.name for f in fields(stats)}


# --- checksum ---------------------------------------------------------------------------------
@FAST
@given(addrs, addrs, st.binary(min_size=8, max_size=200))
def test_checksum_matches_a_plain_rfc1071_sum_over_the_pseudo_header(src: int, dst: int, body: bytes) -> None:
    """RFC 4443 §2.3: the checksum covers the pseudo-header (RFC 8200 §8.1) and the message."""
    msg = bytearray(body)
    msg[2:4] = b"\0\0"
    want = rfc1071(pseudo(src, dst, len(msg)) + bytes(msg))
    assert wire.icmpv6_checksum(msg, src, dst) == want
    msg[2:4] = want.to_bytes(2, "big")
    assert wire.verify_checksum(msg, src, dst)


def test_checksum_hand_computed_vector() -> None:
    """Echo request ::1 -> ::1, id 0x1234 seq 1, no data, summed by hand:
    pseudo-header words 0x0001 + 0x0001 + length 0x0008 + next header 0x003a = 0x0044,
    message words 0x8000 + 0x1234 + 0x0001 = 0x9235; total 0x9279, checksum ~ = 0x6d86."""
    msg = EchoRequest(0x1234, 1).emit(1, 1)
    assert msg == bytes.fromhex("80006d8612340001")
    assert msg == scapy_icmp(ICMPv6EchoRequest(id=0x1234, seq=1), "::1", "::1")


@FAST
@given(addrs, addrs, st.integers(0, 0xFFFFFFFF), st.integers(0, 255))
def test_pseudo_header_sum_is_the_folded_word_sum(src: int, dst: int, length: int, nh: int) -> None:
    want = rfc1071(pseudo(src, dst, length, nh))
    assert ~wire.pseudo_header_sum(src, dst, nh, length) & 0xFFFF == want


def test_bad_checksum_and_wrong_addresses_are_counted() -> None:
    msg = bytearray(EchoRequest(1, 2, b"ping").emit(S, D))
    assert isinstance(Icmpv6Repr.parse(msg, S, D), Icmpv6Repr)
    assert Icmpv6Repr.parse(msg, S, D + 1) == "in_csum_errors"      # the pseudo-header is covered
    msg[-1] ^= 1
    assert Icmpv6Repr.parse(msg, S, D) == "in_csum_errors"
    assert isinstance(Icmpv6Repr.parse(msg, S, D, verify=False), Icmpv6Repr)   # offloaded check


@pytest.mark.parametrize("data", [b"", b"\x80", bytes(7)])
def test_shorter_than_the_header_is_truncated(data: bytes) -> None:
    assert Icmpv6Repr.parse(data, S, D) == "in_truncated"
    assert parse_message(data, S, D) == ("icmpv6", "in_truncated")


# --- echo (RFC 4443 §4) ---------------------------------------------------------------------------
def test_echo_request_and_reply_match_scapy() -> None:
    req = EchoRequest(0xBEEF, 7, b"abcdefgh" * 3)
    wire_req = scapy_icmp(ICMPv6EchoRequest(id=0xBEEF, seq=7, data=b"abcdefgh" * 3))
    assert req.emit(S, D) == wire_req
    assert parse_message(wire_req, S, D) == req
    rep = req.reply()
    assert isinstance(rep, EchoReply) and (rep.ident, rep.seq, rep.data) == (0xBEEF, 7, b"abcdefgh" * 3)
    assert rep.emit(D, S) == scapy_icmp(ICMPv6EchoReply(id=0xBEEF, seq=7, data=b"abcdefgh" * 3), DST, SRC)


@FAST
@given(u16, u16, st.binary(max_size=300), st.booleans(), addrs, addrs)
def test_echo_round_trip(ident: int, seq: int, data: bytes, request: bool, src: int, dst: int) -> None:
    msg = EchoRequest(ident, seq, data) if request else EchoReply(ident, seq, data)
    assert parse_message(msg.emit(src, dst), src, dst) == msg


# --- errors (RFC 4443 §3) ---------------------------------------------------------------------------
INVOKING = bytes(IPv6(src=DST, dst=SRC, hlim=9) / UDP(sport=5353, dport=9) / (b"x" * 40))


@pytest.mark.parametrize("code", range(7))
def test_destination_unreachable_matches_scapy(code: int) -> None:
    msg = DestUnreachable(code=code, invoking=INVOKING)
    ref = scapy_icmp(ICMPv6DestUnreach(code=code) / INVOKING)
    assert msg.emit(S, D) == ref
    assert parse_message(ref, S, D) == msg


def test_packet_too_big_matches_scapy() -> None:
    msg = PacketTooBig(mtu=1400, invoking=INVOKING)
    ref = scapy_icmp(ICMPv6PacketTooBig(mtu=1400) / INVOKING)
    assert msg.emit(S, D) == ref
    got = parse_message(ref, S, D)
    assert isinstance(got, PacketTooBig) and got.mtu == 1400 and got.invoking == INVOKING


@pytest.mark.parametrize("code", [0, 1])
def test_time_exceeded_matches_scapy(code: int) -> None:
    msg = TimeExceeded(code=code, invoking=INVOKING)
    ref = scapy_icmp(ICMPv6TimeExceeded(code=code) / INVOKING)
    assert msg.emit(S, D) == ref and parse_message(ref, S, D) == msg


@pytest.mark.parametrize("code,pointer", [(0, 4), (1, 6), (2, 42)])
def test_parameter_problem_matches_scapy(code: int, pointer: int) -> None:
    msg = ParamProblem(code=code, pointer=pointer, invoking=INVOKING)
    ref = scapy_icmp(ICMPv6ParamProblem(code=code, ptr=pointer) / INVOKING)
    assert msg.emit(S, D) == ref and parse_message(ref, S, D) == msg


@pytest.mark.parametrize("cls", [DestUnreachable, TimeExceeded, PacketTooBig, ParamProblem])
def test_error_quotes_as_much_as_fits_in_the_minimum_mtu(cls: type) -> None:
    """RFC 4443 §2.4(c): as much of the invoking packet as fits in 1280 octets."""
    big = bytes(range(256)) * 20
    out = cls(invoking=big).emit(S, D)
    assert 40 + len(out) == 1280 == 40 + 8 + MAX_QUOTE
    got = parse_message(out, S, D)
    assert isinstance(got, cls) and got.invoking == big[:MAX_QUOTE]
    small = cls(invoking=b"tiny").emit(S, D)
    assert len(small) == 12                                          # nothing padded


def test_unknown_error_type_goes_up_with_its_fields() -> None:
    """RFC 4443 §2.4(b): an unknown error is still passed to the upper layer."""
    hdr = Icmpv6Repr(100, 3, 0xCAFEF00D, INVOKING)
    got = parse_message(hdr.emit(S, D), S, D)
    assert got == UnknownError(code=3, invoking=INVOKING, type=100, rest=0xCAFEF00D)
    assert isinstance(got, UnknownError) and got.emit(S, D) == hdr.emit(S, D)


def test_unknown_informational_type_is_counted() -> None:
    """§2.4(a): discarded; also 200 and 255 (private experimentation, RFC 4443 §2.1)."""
    for t in (150, 200, 255):
        assert parse_message(Icmpv6Repr(t, 0, 0, b"").emit(S, D), S, D) == ("icmpv6", "in_unknown_types")


error_msgs = st.one_of(
    st.builds(lambda c, i: DestUnreachable(code=c, invoking=i), st.integers(0, 255), st.binary(max_size=MAX_QUOTE)),
    st.builds(lambda c, i: TimeExceeded(code=c, invoking=i), st.integers(0, 255), st.binary(max_size=MAX_QUOTE)),
    st.builds(lambda c, i, m: PacketTooBig(code=c, invoking=i, mtu=m), st.integers(0, 255),
              st.binary(max_size=MAX_QUOTE), u32),
    st.builds(lambda c, i, p: ParamProblem(code=c, invoking=i, pointer=p), st.integers(0, 255),
              st.binary(max_size=MAX_QUOTE), u32),
    st.builds(lambda t, c, i, r: UnknownError(type=t, code=c, invoking=i, rest=r), st.integers(5, 127),
              st.integers(0, 255), st.binary(max_size=MAX_QUOTE), u32),
)


@FAST
@given(error_msgs, addrs, addrs)
def test_error_round_trip(msg: wire.ErrorMessage, src: int, dst: int) -> None:
    assert parse_message(msg.emit(src, dst), src, dst) == msg


@FAST
@given(st.integers(0, 255), st.integers(0, 255), u32, st.binary(max_size=200), addrs, addrs)
def test_raw_header_round_trip(t: int, code: int, rest: int, data: bytes, src: int, dst: int) -> None:
    hdr = Icmpv6Repr(t, code, rest, data)
    out = hdr.emit(src, dst)
    assert len(out) == hdr.length and Icmpv6Repr.parse(out, src, dst) == hdr


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=120))
def test_parse_message_never_raises(t: int, tail: bytes) -> None:
    """Any type, any body: a message or (section, counter), never an exception."""
    data = bytes((t,)) + tail
    got = parse_message(data, S, D, verify=False)
    if isinstance(got, tuple):
        section, reason = got
        assert is_counter(reason, SECTIONS[section])


def test_type_classes() -> None:
    """RFC 4443 §2.1: errors have the high bit clear, informational messages set."""
    assert all(wire.is_error(t) != wire.is_informational(t) for t in range(256))
    assert [t for t in range(256) if wire.is_error(t)] == list(range(128))
    assert wire.is_error(wire.PACKET_TOO_BIG) and wire.is_informational(wire.ECHO_REQUEST)


# --- the invoking packet ---------------------------------------------------------------------
def test_quoted_packet_header() -> None:
    q = DestUnreachable(code=4, invoking=INVOKING).quoted()
    assert isinstance(q, QuotedPacket)
    assert (q.src, q.dst, q.next_header, q.hop_limit, q.payload_len) == (D, S, 17, 9, 48)
    assert q.after_header[:4] == struct.pack("!HH", 5353, 9)


@pytest.mark.parametrize("invoking,reason", [
    (b"", "in_quote_truncated"),
    (INVOKING[:39], "in_quote_truncated"),
    (b"\x45" + INVOKING[1:], "in_quote_bad_version"),     # an IPv4 header quoted
])
def test_quoted_packet_malformed(invoking: bytes, reason: str) -> None:
    assert QuotedPacket.parse(invoking) == reason and is_counter(reason, Icmpv6Stats)


@pytest.mark.parametrize("type_,code,want", [
    (wire.DEST_UNREACH, wire.UNREACH_NO_ROUTE, (errno.ENETUNREACH, False)),
    (wire.DEST_UNREACH, wire.UNREACH_ADMIN, (errno.EACCES, True)),
    (wire.DEST_UNREACH, wire.UNREACH_BEYOND_SCOPE, (errno.EHOSTUNREACH, False)),
    (wire.DEST_UNREACH, wire.UNREACH_ADDR, (errno.EHOSTUNREACH, False)),
    (wire.DEST_UNREACH, wire.UNREACH_PORT, (errno.ECONNREFUSED, True)),
    (wire.DEST_UNREACH, wire.UNREACH_POLICY, (errno.EACCES, True)),
    (wire.DEST_UNREACH, wire.UNREACH_REJECT_ROUTE, (errno.EACCES, True)),
    (wire.DEST_UNREACH, 7, (errno.EPROTO, True)),          # fatal is set before the table lookup
    (wire.PACKET_TOO_BIG, 0, (errno.EMSGSIZE, False)),     # UDP decides by IPV6_MTU_DISCOVER
    (wire.TIME_EXCEEDED, 0, (errno.EHOSTUNREACH, False)),
    (wire.PARAM_PROBLEM, 1, (errno.EPROTO, True)),
    (99, 0, (errno.EPROTO, False)),
])
def test_errno_as_linux(type_: int, code: int, want: tuple[int, bool]) -> None:
    """Linux icmpv6_err_convert: which errno a socket sees and whether it is fatal."""
    assert wire.icmpv6_errno(type_, code) == want


def test_address_predicates() -> None:
    assert addr.is_multicast(a("ff02::1")) and not addr.is_multicast(a("fe80::1"))
    assert addr.is_link_local(a("fe80::1")) and addr.is_link_local(a("febf:ffff::1"))
    assert not addr.is_link_local(a("fec0::1")) and not addr.is_link_local(a("2001:db8::1"))
    assert addr.is_solicited_node(a("ff02::1:ff12:3456")) and not addr.is_solicited_node(a("ff02::1:fe12:3456"))
    assert not addr.is_solicited_node(a("ff05::1:ff12:3456")) and addr.is_unspecified(a("::"))


# --- RFC 4443 §2.4(e): when an error may be sent ------------------------------------------------
MCAST, UNSPEC = a("ff02::1"), 0


@pytest.mark.parametrize("type_,code,kw,allowed", [
    (wire.DEST_UNREACH, 4, {}, True),
    (wire.TIME_EXCEEDED, 0, {}, True),
    (wire.DEST_UNREACH, 4, {"about_error": True}, False),                    # e.1 / e.2
    (wire.PACKET_TOO_BIG, 0, {"about_error": True}, False),
    (wire.DEST_UNREACH, 4, {"dst": MCAST}, False),                           # e.3
    (wire.TIME_EXCEEDED, 1, {"dst": MCAST}, False),
    (wire.PARAM_PROBLEM, wire.PARAM_HEADER, {"dst": MCAST}, False),
    (wire.PACKET_TOO_BIG, 0, {"dst": MCAST}, True),                          # e.3 exception 1
    (wire.PARAM_PROBLEM, wire.PARAM_OPTION, {"dst": MCAST}, True),           # e.3 exception 2
    (wire.DEST_UNREACH, 3, {"link_multicast": True}, False),                 # e.4 / e.5
    (wire.PACKET_TOO_BIG, 0, {"link_multicast": True}, True),
    (wire.DEST_UNREACH, 4, {"src": UNSPEC}, False),                          # e.6
    (wire.PACKET_TOO_BIG, 0, {"src": MCAST}, False),
    (wire.ECHO_REPLY, 0, {}, False),                                          # not an error at all
])
def test_may_send_error(type_: int, code: int, kw: dict[str, object], allowed: bool) -> None:
    args: dict[str, object] = {"src": S, "dst": D} | kw
    assert wire.may_send_error(type_, code, **args) is allowed  # type: ignore[arg-type]


KNOWN_TYPES = [1, 2, 3, 4, 77, 128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 143]


@settings(max_examples=1000, deadline=None)
@given(st.sampled_from(KNOWN_TYPES), st.integers(0, 255), st.binary(min_size=4, max_size=4),
       st.lists(st.sampled_from([b"\x01\x01", b"\x03\x04", b"\x19\x03", b"\x05\x01", b"\x04\x02", b"\x0e\x01",
                                 b"\x00", b"\x01\x00", bytes(6), bytes(16)]), max_size=12))
def test_a_parsed_message_emits_back_to_itself(t: int, code: int, rest: bytes, pieces: list[bytes]) -> None:
    """Whatever parses (option-looking fragments make the ND/MLD layouts likely) emits to
    octets that parse to the same message: nothing is read that emit cannot say."""
    data = bytes((t, code, 0, 0)) + rest + b"".join(pieces)
    got = parse_message(data, S, D, verify=False)
    if not isinstance(got, tuple):
        assert parse_message(got.emit(S, D), S, D) == got
