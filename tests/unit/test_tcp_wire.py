"""TCP header and options codec (protocols/tcp/wire.py): RFC 9293 §3.1 header, the
MSS (RFC 9293 §3.2), window scale and timestamps (RFC 7323 §2-3), SACK-permitted and
SACK (RFC 2018 §2-3) options.  Round trips with hypothesis, cross-checks against dpkt,
and malformed input -- which must come back as a counter name or a repr with the option
skipped, never an exception (bad input is data: README "Counters")."""
from __future__ import annotations

import struct

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.tcp.wire import (
    ACK,
    FIN,
    HDR_LEN,
    OPT_MSS,
    OPT_SACK,
    OPT_SACK_PERM,
    OPT_TS,
    OPT_WSCALE,
    PSH,
    RST,
    SYN,
    TcpRepr,
)

FAST = settings(max_examples=200, deadline=None)
u16, u32 = st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)


def header(*, off: int = 5, flags: int = ACK, opts: bytes = b"", sport: int = 1234, dport: int = 80,
           seq: int = 1, ack: int = 2, win: int = 1000, urg: int = 0) -> bytearray:
    """A TCP header built by hand with struct (independently of TcpRepr.emit)."""
    return bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, win, 0, urg) + opts)


def with_opts(opts: bytes) -> TcpRepr:
    """Parse a header carrying `opts` (padded with EOL to a multiple of 4)."""
    opts = opts + bytes(-len(opts) % 4)
    seg = TcpRepr.parse(header(off=5 + len(opts) // 4, opts=opts))
    assert isinstance(seg, TcpRepr)
    return seg


def wire(seg: TcpRepr, payload: bytes = b"") -> bytes:
    opts = seg.options_bytes()
    buf = bytearray(HDR_LEN + len(opts))
    seg.emit(buf, opts)
    return bytes(buf) + payload


# --- the fixed header ------------------------------------------------------------------------
def test_parse_plain_header() -> None:
    """RFC 9293 §3.1: ports, SEQ, ACK, data offset, control bits, window, urgent pointer."""
    seg = TcpRepr.parse(header(sport=40000, dport=80, seq=0xDEADBEEF, ack=0x01020304,
                               flags=SYN | ACK | PSH, win=0xFFFF, urg=7))
    assert isinstance(seg, TcpRepr)
    assert (seg.src_port, seg.dst_port, seg.seq, seg.ack) == (40000, 80, 0xDEADBEEF, 0x01020304)
    assert (seg.flags, seg.window, seg.urgent, seg.hdr_len) == (SYN | ACK | PSH, 0xFFFF, 7, 20)
    assert (seg.mss, seg.wscale, seg.sack_perm, seg.ts, seg.sack) == (None, None, False, None, ())


def test_parse_reports_payload_offset() -> None:
    """The data offset (in 32-bit words) says where the payload starts, options or not."""
    data = bytes(header(off=6, opts=b"\x01\x01\x01\x00")) + b"payload"
    seg = TcpRepr.parse(memoryview(data))
    assert isinstance(seg, TcpRepr) and seg.hdr_len == 24
    assert data[seg.hdr_len:] == b"payload"


@pytest.mark.parametrize("data,counter", [
    (b"", "in_truncated"),
    (bytes(header())[:19], "in_truncated"),                     # shorter than the fixed header
    (bytes(header(off=4)), "in_hdr_errors"),                    # RFC 9293 §3.1: offset >= 5
    (bytes(header(off=0)), "in_hdr_errors"),
    (bytes(header(off=6)), "in_truncated"),                     # offset beyond the data
    (bytes(header(off=15, opts=bytes(36))), "in_truncated"),
])
def test_malformed_header_is_a_counter_name(data: bytes, counter: str) -> None:
    """Bad input is data -- the caller gets the counter to bump."""
    assert TcpRepr.parse(data) == counter


def test_emit_round_trip_without_options() -> None:
    seg = TcpRepr(1, 2, 3, 4, FIN | ACK, 5, urgent=6)
    data = wire(seg)
    assert len(data) == 20 and data[12] == 5 << 4
    assert TcpRepr.parse(data) == seg


def test_str_names_the_flags() -> None:
    assert str(TcpRepr(1, 2, 3, 4, SYN | ACK, 5)) == "1>2 [S.] seq=3 ack=4 win=5"
    assert "[R]" in str(TcpRepr(1, 2, 3, 4, RST, 5))


# --- options: layout --------------------------------------------------------------------------
def test_syn_options_use_linux_layout() -> None:
    """Linux tcp_options_write order: MSS, SACK-permitted folded into the TS option's NOPs,
    NOP + window scale -- 20 octets, so every option is naturally aligned (RFC 7323 App. A)."""
    seg = TcpRepr(1, 2, 3, 0, SYN, 65535, mss=1460, wscale=7, sack_perm=True, ts=(0x11223344, 0))
    opts = seg.options_bytes()
    assert opts == (b"\x02\x04\x05\xb4" b"\x04\x02" b"\x08\x0a\x11\x22\x33\x44\x00\x00\x00\x00"
                    b"\x01\x03\x03\x07")


def test_timestamp_without_sack_perm_is_nop_aligned() -> None:
    """RFC 7323 Appendix A: <NOP, NOP, TS> puts TSval on a 4-octet boundary."""
    opts = TcpRepr(1, 2, 3, 4, ACK, 5, ts=(1, 2)).options_bytes()
    assert opts == b"\x01\x01\x08\x0a" + struct.pack("!II", 1, 2)


def test_sack_perm_alone_and_sack_blocks() -> None:
    """RFC 2018 §2 (kind 4, length 2) and §3 (kind 5, length 2 + 8n), NOP-padded."""
    assert TcpRepr(1, 2, 3, 4, SYN, 5, sack_perm=True).options_bytes() == b"\x01\x01\x04\x02"
    opts = TcpRepr(1, 2, 3, 4, ACK, 5, sack=((10, 20), (30, 40))).options_bytes()
    assert opts == b"\x01\x01\x05\x12" + struct.pack("!4I", 10, 20, 30, 40)


def test_options_are_padded_to_four_octets() -> None:
    """RFC 9293 §3.1: the header is a whole number of 32-bit words."""
    for seg in (TcpRepr(1, 2, 3, 4, SYN, 5, mss=536), TcpRepr(1, 2, 3, 4, SYN, 5, wscale=0),
                TcpRepr(1, 2, 3, 4, SYN, 5, mss=1, wscale=14, sack_perm=True)):
        assert len(seg.options_bytes()) % 4 == 0


# --- options: round trips -----------------------------------------------------------------------
sack_blocks = st.lists(st.tuples(u32, u32), max_size=4).map(tuple)
reprs = st.builds(
    TcpRepr, src_port=u16, dst_port=u16, seq=u32, ack=u32, flags=st.integers(0, 0xFF), window=u16,
    urgent=u16, mss=st.none() | u16, wscale=st.none() | st.integers(0, 14), sack_perm=st.booleans(),
    ts=st.none() | st.tuples(u32, u32), sack=sack_blocks)


@FAST
@given(reprs, st.binary(max_size=32))
def test_round_trip(seg: TcpRepr, payload: bytes) -> None:
    """emit then parse gives the same repr, whatever the mix of options (that fits in 40 octets)."""
    opts = seg.options_bytes()
    if len(opts) > 40:
        return                                   # RFC 9293 §3.1: no room; the sender never builds this
    seg.hdr_len = HDR_LEN + len(opts)
    data = wire(seg, payload)
    back = TcpRepr.parse(data)
    assert back == seg
    assert isinstance(back, TcpRepr) and data[back.hdr_len:] == payload


@FAST
@given(reprs)
def test_dpkt_agrees_with_our_emit(seg: TcpRepr) -> None:
    """dpkt's parser sees the same header fields and options as ours wrote."""
    opts = seg.options_bytes()
    if len(opts) > 40:
        return
    d = dpkt.tcp.TCP(wire(seg))
    assert (d.sport, d.dport, d.seq, d.ack, d.flags, d.win, d.urp) == (
        seg.src_port, seg.dst_port, seg.seq, seg.ack, seg.flags, seg.window, seg.urgent)
    theirs = {k: v for k, v in dpkt.tcp.parse_opts(d.opts) if k not in (0, 1)}
    if seg.mss is not None:
        assert theirs[OPT_MSS] == struct.pack("!H", seg.mss)
    if seg.wscale is not None:
        assert theirs[OPT_WSCALE] == bytes([seg.wscale])
    if seg.ts is not None:
        assert theirs[OPT_TS] == struct.pack("!II", *seg.ts)
    assert (OPT_SACK_PERM in theirs) == seg.sack_perm
    if seg.sack:
        assert theirs[OPT_SACK] == b"".join(struct.pack("!II", *b) for b in seg.sack)


def test_parses_what_dpkt_builds() -> None:
    """Options in an order and alignment we never emit (dpkt/BSD style) still parse."""
    opts = (b"\x01\x03\x03\x02" + b"\x02\x04\x02\x18" + b"\x08\x0a" + struct.pack("!II", 5, 6)
            + b"\x04\x02" + b"\x00\x00\x00\x00")
    d = dpkt.tcp.TCP(sport=9, dport=10, seq=11, ack=12, flags=dpkt.tcp.TH_SYN, win=13, opts=opts)
    d.off = 5 + len(opts) // 4
    seg = TcpRepr.parse(bytes(d))
    assert isinstance(seg, TcpRepr)
    assert (seg.mss, seg.wscale, seg.sack_perm, seg.ts) == (536, 2, True, (5, 6))


# --- options: malformed -----------------------------------------------------------------------
def test_window_scale_above_14_is_treated_as_14() -> None:
    """RFC 7323 §2.3: a shift count above 14 MUST be used as 14."""
    assert with_opts(b"\x03\x03\x0f").wscale == 14
    assert with_opts(b"\x03\x03\xff").wscale == 14
    assert with_opts(b"\x03\x03\x0e").wscale == 14


def test_eol_ends_option_parsing() -> None:
    """RFC 9293 §3.2: End of Option List -- anything after it is padding."""
    seg = with_opts(b"\x02\x04\x05\xb4\x00\x03\x03\x07")
    assert seg.mss == 1460 and seg.wscale is None


def test_unknown_options_are_skipped_by_length() -> None:
    """RFC 9293 §3.2 / RFC 1122 §4.2.2.5: unknown kinds MUST be skipped using their length."""
    seg = with_opts(b"\x1e\x06abcd" + b"\x02\x04\x02\x18" + b"\xfe\x02" + b"\x03\x03\x05")
    assert (seg.mss, seg.wscale) == (536, 5)


@pytest.mark.parametrize("opts", [
    b"\x02\x03\x05\x02\x04\x05\xb4",   # MSS with length 3: ignored, the next option read
    b"\x02\x05\x05\xb4\x00\x02\x04\x05\xb4",   # MSS with length 5
])
def test_option_with_wrong_length_for_its_kind_is_ignored(opts: bytes) -> None:
    """An option whose length is wrong for its kind is skipped (Linux tcp_parse_options);
    parsing continues with the next one."""
    seg = with_opts(opts)
    assert seg.mss == 1460


@pytest.mark.parametrize("opts", [
    b"\x02\x04\x05\xb4" + b"\x03\x00\x07",              # length 0: would loop forever
    b"\x02\x04\x05\xb4" + b"\x03\x01\x07",              # length 1: shorter than kind+length
    b"\x02\x04\x05\xb4" + b"\x08\x0a\x00\x00",          # runs past the end of the header
    b"\x02\x04\x05\xb4" + b"\x01\x01\x01\x08",          # a kind with no room for its length octet
])
def test_silly_length_stops_parsing_but_keeps_the_segment(opts: bytes) -> None:
    """Linux tcp_parse_options: an impossible length ends option processing ("silly options")
    without dropping the segment; options before it count."""
    seg = with_opts(opts)
    assert seg.mss == 1460 and seg.wscale is None and seg.ts is None


def test_sack_with_bad_length_is_ignored() -> None:
    """RFC 2018 §3: length is 2 + 8n; anything else carries no blocks."""
    seg = with_opts(b"\x01\x01\x05\x0b" + bytes(9) + b"\x01\x03\x03\x02")
    assert seg.sack == () and seg.wscale == 2


def test_sack_blocks_parse_in_order() -> None:
    seg = with_opts(b"\x01\x01\x05\x1a" + struct.pack("!6I", 1, 2, 3, 4, 0xFFFFFFF0, 8))
    assert seg.sack == ((1, 2), (3, 4), (0xFFFFFFF0, 8))


@FAST
@given(st.binary(max_size=40))
def test_any_option_bytes_parse_without_raising(opts: bytes) -> None:
    """Fuzz: whatever the 40 option octets hold, parse returns a repr with sane fields."""
    opts = opts + bytes(-len(opts) % 4)
    seg = TcpRepr.parse(bytes(header(off=5 + len(opts) // 4, opts=opts)) + b"tail")
    assert isinstance(seg, TcpRepr)
    assert seg.hdr_len == 20 + len(opts)
    assert seg.wscale is None or 0 <= seg.wscale <= 14
    assert seg.mss is None or 0 <= seg.mss <= 0xFFFF
    assert len(seg.sack) <= 4


@FAST
@given(st.binary(max_size=80))
def test_any_bytes_parse_to_a_repr_or_a_counter(data: bytes) -> None:
    result = TcpRepr.parse(data)
    assert isinstance(result, TcpRepr) or result in ("in_truncated", "in_hdr_errors")


# --- the quick path for NOP NOP TS (parse): the same repr as the option loop's ------------------------
def _by_the_loop(data: bytes) -> TcpRepr:
    """What parse made of a header before its quick paths: the fixed header, then the loop."""
    sport, dport, seq, ack, off, flags, win, _csum, urg = struct.unpack_from("!HHIIBBHHH", data)
    seg = TcpRepr(sport, dport, seq, ack, flags, win, urg, hdr_len=(off >> 4) * 4)
    seg._parse_options(data, seg.hdr_len)
    return seg


@FAST
@given(lead=st.sampled_from([b"\x01\x01\x08\x0a", b"\x01\x01\x08\x0b", b"\x08\x0a", b"\x01\x01\x05\x0a",
                             b"\x00\x01\x08\x0a", b""]),
       val=u32, ecr=u32, rest=st.binary(max_size=28), off_extra=st.integers(-1, 3), flags=st.integers(0, 0xFF),
       reserved=st.integers(0, 15), payload=st.binary(max_size=8))
def test_nop_nop_ts_quick_path_matches_the_option_loop(lead: bytes, val: int, ecr: int, rest: bytes,
                                                      off_extra: int, flags: int, reserved: int,
                                                      payload: bytes) -> None:
    """Linux's layout after the handshake (NOP NOP TS in a 32-octet header) is read in one
    unpack; any other layout -- another option first, a longer header, a TS of the wrong
    length, reserved bits set -- must come out as the loop reads it."""
    opts = lead + struct.pack("!II", val, ecr) + rest
    opts += bytes(-len(opts) % 4)
    off = max(5, min(15, 5 + len(opts) // 4 + off_extra))
    data = bytearray(struct.pack("!HHIIBBHHH", 1, 2, 3, 4, off << 4 | reserved, flags, 5, 0, 6) + opts + payload)
    seg = TcpRepr.parse(memoryview(data))
    if off * 4 > len(data):
        assert seg == "in_truncated"
        return
    assert seg == _by_the_loop(bytes(data))


def test_nop_nop_ts_header_reads_the_timestamps() -> None:
    seg = TcpRepr.parse(bytes(header(off=8, opts=b"\x01\x01\x08\x0a" + struct.pack("!II", 7, 9))) + b"data")
    assert isinstance(seg, TcpRepr)
    assert (seg.ts, seg.hdr_len, seg.sack, seg.mss) == ((7, 9), 32, (), None)


@FAST
@given(u32, u32, st.integers(0, 0xFF), u16, st.tuples(u32, u32), st.lists(st.tuples(u32, u32), min_size=1, max_size=3),
       st.binary(max_size=8))
def test_the_ts_and_sack_layout_parses_as_the_general_parser_does(
        seq: int, ack: int, flags: int, win: int, ts: tuple[int, int], blocks: list[tuple[int, int]],
        payload: bytes) -> None:
    """Linux's ACK in recovery (NOP NOP TS, NOP NOP SACK 1-3 blocks) takes parse's fixed
    layout: the same repr as the option walk."""
    seg = TcpRepr(5000, 80, seq, ack, flags, win, ts=ts, sack=tuple(blocks))
    seg.hdr_len = HDR_LEN + len(seg.options_bytes())
    data = wire(seg, payload)
    assert TcpRepr.parse(data) == _by_the_loop(data) == seg


@FAST
@given(u32, u32, st.integers(0, 0xFF), u16, u16, st.integers(0, 255), st.tuples(u32, u32), st.binary(max_size=8))
def test_the_syn_layout_parses_as_the_general_parser_does(seq: int, ack: int, flags: int, win: int, mss: int,
                                                           shift: int, ts: tuple[int, int], payload: bytes) -> None:
    """Linux's SYN and SYN-ACK (MSS, SACK permitted, TS, NOP, window scale: 40 octets) take
    parse's fixed layout: the same repr as the option walk, a shift above 14 read as 14."""
    data = bytearray(struct.pack("!HHIIBBHHH", 40000, 80, seq, ack, 10 << 4, flags, win, 0, 0)
                     + struct.pack("!BBHBBBBIIBBBB", 2, 4, mss, 4, 2, 8, 10, *ts, 1, 3, 3, shift) + payload)
    seg = TcpRepr.parse(bytes(data))
    assert seg == _by_the_loop(bytes(data))
    assert isinstance(seg, TcpRepr) and (seg.mss, seg.wscale, seg.sack_perm, seg.ts) == (mss, min(shift, 14), True, ts)


@pytest.mark.parametrize("at", range(20, 40))
def test_a_near_miss_of_the_syn_layout_takes_the_option_walk(at: int) -> None:
    """Any octet of the SYN layout's options changed (a kind, a length, a value): the
    result is the option walk's, whatever it makes of it."""
    base = bytearray(struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 10 << 4, SYN, 64240, 0, 0)
                     + struct.pack("!BBHBBBBIIBBBB", 2, 4, 1460, 4, 2, 8, 10, 7, 0, 1, 3, 3, 7))
    for value in (0, 1, 2, 3, 4, 5, 8, 10, 0xFF):
        data = bytearray(base)
        data[at] = value
        assert TcpRepr.parse(bytes(data)) == _by_the_loop(bytes(data))


@pytest.mark.parametrize("change", ["sack length", "no nops", "truncated"])
def test_a_near_miss_of_the_ts_and_sack_layout_takes_the_option_walk(change: str) -> None:
    seg = TcpRepr(5000, 80, 1, 2, ACK, 3, ts=(4, 5), sack=((10, 20), (30, 40)))
    seg.hdr_len = HDR_LEN + len(seg.options_bytes())
    data = bytearray(wire(seg, b"xyz"))
    if change == "sack length":
        data[HDR_LEN + 15] = 2 + 8                       # SACK says one block: the second is junk
    elif change == "no nops":
        data[HDR_LEN + 12:HDR_LEN + 14] = b"\x00\x00"    # EOL where the NOPs were: options end
    else:
        data = data[:40]                                 # shorter than its data offset
    expected = "in_truncated" if change == "truncated" else _by_the_loop(bytes(data))
    assert TcpRepr.parse(bytes(data)) == expected
    if change == "sack length":
        assert isinstance(expected, TcpRepr) and expected.sack == ((10, 20),)
    if change == "no nops":
        assert isinstance(expected, TcpRepr) and expected.sack == () and expected.ts == (4, 5)
