"""The harness itself: the parser, the segment codec and matcher, and that a wrong
script fails -- with the expected and actual segments side by side -- on both backends."""
from __future__ import annotations

from pathlib import Path

import pytest

from protocols.tcp import wire
from tests.realpeer.conftest import require_real_peer

from .backends import tunstack_tcp_config
from .run import run_script
from .runner import Runner, ScriptFailure, constant, parse_fields
from .script import Call, Expect, Inject, parse_script
from .segment import (
    Option,
    ScriptSyntaxError,
    Segment,
    build_packet,
    mismatches,
    options_bytes,
    parse_segment,
)
from .test_scripts import xfail_reason


def test_parse_lines_and_relative_times() -> None:
    s = parse_script("""
        0    socket(AF_INET, SOCK_STREAM, 0) = 3   // a comment
        +0.1 < S 0:0(0) win 65535 <mss 1460,sackOK,nop,nop,nop,wscale 7>
        +.05 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale *>
        1.0  connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
        +0   s = accept(3, ..., ...) = 4
    """)
    call, inject, expect, connect, accept = s.events
    assert isinstance(call, Call) and call.name == "socket" and call.args == ["AF_INET", "SOCK_STREAM", "0"]
    assert isinstance(inject, Inject) and inject.time == pytest.approx(0.1)
    assert inject.segment.flags == wire.SYN and inject.segment.win == 65535
    assert inject.segment.options == [Option("mss", (1460,)), Option("sackOK"), Option("nop"), Option("nop"),
                                      Option("nop"), Option("wscale", (7,))]
    assert isinstance(expect, Expect) and expect.time == pytest.approx(0.15)
    assert expect.segment.flags == wire.SYN | wire.ACK and expect.segment.ack == 1
    assert expect.segment.options is not None and expect.segment.options[-1] == Option("wscale", (None,))
    assert isinstance(connect, Call) and connect.time == 1.0 and (connect.result, connect.errno) == (-1, "EINPROGRESS")
    assert isinstance(accept, Call) and accept.alias == "s" and accept.result == 4


@pytest.mark.parametrize("bad", [
    "socket(AF_INET, SOCK_STREAM, 0) = 3",                 # no time
    "+0 < Q 0:0(0)",                                      # unknown flag
    "+0 > S. 0:5(0)",                                     # end - start != length
    "+0 connect(3, ..., ...) = -1",                       # -1 without its errno
    "+0 < S 0:0(0) <mss>",                                # option without its value
    "+0 < S 0:0(0) <mss 1460",                            # options not closed
    "1 close(3) = 0\n0.5 close(4) = 0",                   # time going backwards
    "+0 < [ect2] P. 1:2(1) ack 1",                        # no such ECN codepoint
    "+0 < [ce]",                                          # an ECN codepoint without flags
])
def test_syntax_errors_name_the_line(bad: str) -> None:
    with pytest.raises(ScriptSyntaxError, match="line"):
        parse_script(bad)


def test_packet_round_trip() -> None:
    opts = [Option("mss", (1460,)), Option("sackOK"), Option("TS", (7, 9)), Option("nop"), Option("wscale", (7,))]
    pkt = build_packet(0xC0000202, 0xC0000201, 40000, 8080, 1000, 77, wire.SYN | wire.ACK, 512,
                       options_bytes(opts), 10)
    seg = Segment.parse(pkt)
    assert seg is not None
    assert (seg.sport, seg.dport, seg.seq, seg.ack, seg.flags, seg.win, seg.payload_len) == \
        (40000, 8080, 1000, 77, wire.SYN | wire.ACK, 512, 10)
    assert seg.options == opts
    assert Segment.parse(pkt[:10]) is None


def test_the_urgent_pointer_is_written_sent_and_matched() -> None:
    spec = parse_segment("PU. 1:1001(1000) ack 1 urg 1000")
    assert spec.flags == wire.PSH | wire.URG | wire.ACK and spec.urg == 1000
    assert str(spec) == "PU. 1:1001(1000) ack 1 urg 1000"
    pkt = build_packet(0xC0000202, 0xC0000201, 40000, 8080, 1, 1, spec.flags, 512, b"", 1000, urg=1000)
    seg = Segment.parse(pkt)
    assert seg is not None and seg.urg == 1000
    assert mismatches(spec, seg.flags, 1, 1000, 1, 512, [], urg=seg.urg) == []
    assert mismatches(spec, seg.flags, 1, 1000, 1, 512, [], urg=999) == ["urg 999 != 1000"]
    assert mismatches(parse_segment("P. 1:1001(1000)"), wire.PSH | wire.ACK, 1, 1000, 1, 512, [], urg=5) == []
    assert constant("SIOCATMARK") == 0x8905


def test_matching_is_exact_on_what_is_stated_and_open_on_the_rest() -> None:
    options = [Option("nop"), Option("nop"), Option("TS", (5, 6))]

    def check(line: str) -> list[str]:
        return mismatches(parse_segment(line), wire.ACK | wire.PSH, 1, 100, 1, 502, options)

    assert check("P. 1:101(100) ack 1") == []          # win, options open
    assert check("P. 1:101(100) ack 1 <nop,nop,TS val * ecr 6>") == []
    assert check("P. 1:101(100) <nop,...>") == []
    assert check(". 1:101(100)") == ["flags P. != ."]
    assert check("P. 1:51(50) ack 2 win 500") == \
        ["length 100 != 50", "ack 1 != 2", "win 502 != 500"]
    assert check("P. 1:101(100) <nop,nop,TS val * ecr 7>") == ["options differ"]
    assert check("P. 1:101(100) <nop>") == ["options differ"]


def test_ecn_notation_is_sent_and_matched() -> None:
    """`[ce]` / `[ect0]` / `[ect1]` / `[noecn]`: the IP ECN field of an injected segment, and
    a condition on an expected one -- which, without the bracket, accepts any codepoint."""
    spec = parse_segment("[ce] P. 1:1001(1000) ack 1")
    assert spec.ecn == 3 and spec.flags == wire.PSH | wire.ACK and str(spec).startswith("[ce] P.")
    pkt = build_packet(0xC0000202, 0xC0000201, 40000, 8080, 1, 1, spec.flags, 512, b"", 0, spec.ecn)
    assert pkt[1] & 3 == 3
    seg = Segment.parse(pkt)
    assert seg is not None and seg.ecn == 3

    def check(line: str, ecn: int) -> list[str]:
        return mismatches(parse_segment(line), wire.ACK, 1, 0, 1, 502, [], ecn)

    assert check(". 1:1(0) ack 1", 2) == []
    assert check("[ect0] . 1:1(0) ack 1", 2) == []
    assert check("[noecn] . 1:1(0) ack 1", 2) == ["ECN [ect0] != [noecn]"]
    assert check("[ect1] . 1:1(0) ack 1", 3) == ["ECN [ce] != [ect1]"]


def test_constants() -> None:
    import os
    import socket
    assert constant("O_RDWR|O_NONBLOCK") == os.O_RDWR | os.O_NONBLOCK
    assert constant("[1]") == 1 and constant("SOL_TCP") == socket.IPPROTO_TCP
    assert constant("ECONNREFUSED") == 111
    with pytest.raises(ScriptFailure):
        constant("NO_SUCH_THING")


def test_xfail_lines_are_read_from_the_leading_comments(tmp_path: Path) -> None:
    p = tmp_path / "x.pkt"
    p.write_text("// xfail tunstack: point 12\n// text\n0 close(3) = 0\n// xfail linux: not leading\n")
    assert xfail_reason(p, "tunstack") == "point 12"
    assert xfail_reason(p, "linux") is None


WRONG = """
0    socket(AF_INET, SOCK_STREAM, 0) = 3
+0   setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0   bind(3, ..., ...) = 0
+0   listen(3, 1) = 0
+0   < S 0:0(0) win 65535 <mss 1460,sackOK,nop,nop,nop,wscale 7>
+0   > S. 0:0(0) ack 2 <mss 1200,nop,nop,sackOK,nop,wscale *>
"""

LATE = """
0    socket(AF_INET, SOCK_STREAM, 0) = 3
+0   setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0   bind(3, ..., ...) = 0
+0   listen(3, 1) = 0
+0   < S 0:0(0) win 65535 <mss 1460,sackOK,nop,nop,nop,wscale 7>
+1   > S. 0:0(0) ack 1 <...>
"""

WRONG_CALL = """
0    socket(AF_INET, SOCK_STREAM, 0) = 3
+0   bind(3, ..., ...) = 0
+0   listen(3, 1) = 0
+0   socket(AF_INET, SOCK_STREAM, 0) = 4
+0   bind(4, ..., ...) = 0
"""

UNEXPECTED = """
0    < S 0:0(0) win 65535
+.1  < . 1:1(0) ack 1 win 65535
"""


def _fails(tmp_path: Path, backend: str, text: str) -> str:
    p = tmp_path / "wrong.pkt"
    p.write_text(text)
    with pytest.raises(ScriptFailure) as info:
        run_script(p, backend)
    return str(info.value)


@pytest.mark.parametrize("backend", ["tunstack", pytest.param("linux", marks=pytest.mark.realpeer)])
def test_a_wrong_script_fails_on_both_backends(tmp_path: Path, backend: str) -> None:
    if backend == "linux":
        require_real_peer()
    msg = _fails(tmp_path, backend, WRONG)
    assert "wrong.pkt:7" in msg and "ack 1 != 2" in msg and "options differ" in msg
    assert "expected: S. 0:0(0) ack 2 <mss 1200," in msg and "actual:   S. 0:0(0) ack 1 " in msg
    msg = _fails(tmp_path, backend, LATE)
    assert "expected 1.000 s" in msg
    msg = _fails(tmp_path, backend, WRONG_CALL)
    assert "wrong.pkt:6" in msg and "call returned -1 EADDRINUSE, expected 0" in msg
    msg = _fails(tmp_path, backend, UNEXPECTED)
    assert "unexpected segment(s)" in msg and "R. 0:0(0) ack 1" in msg


def test_sysctl_lines_are_read_and_mapped_onto_tcp_config() -> None:
    script = parse_script("// sysctl net.ipv4.tcp_sack=0\n// text\n0 close(3) = 0\n// sysctl net.ipv4.tcp_dsack=0\n")
    assert script.sysctls == {"net.ipv4.tcp_sack": "0"}
    assert tunstack_tcp_config(script.sysctls).sack is False
    with pytest.raises(ValueError, match="no TcpConfig field"):
        tunstack_tcp_config({"net.ipv4.tcp_no_such_thing": "1"})


def test_fastopen_options() -> None:
    """`FO cookie`, `FO` (a request), `FO *` (any cookie) and the experimental `FOEXP`:
    laid out as written, decoded back, matched (issue 14, TFO)."""
    spec = parse_segment("S 0:10(10) port 40001 <mss 1460,FO 0011223344556677,nop,nop,FOEXP,FO>")
    assert spec.port == 40001 and spec.length == 10
    assert spec.options is not None
    pkt = build_packet(1, 2, 40001, 8080, 0, 0, wire.SYN, 100, options_bytes(spec.options), 10)
    seg = Segment.parse(pkt)
    assert seg is not None
    assert seg.options == [Option("mss", (1460,)), Option("FO", tuple(bytes.fromhex("0011223344556677"))),
                           Option("nop"), Option("nop"), Option("FOEXP"), Option("FO")]
    assert str(Option("FO", tuple(b"\xab\xcd\x12\x34"))) == "FO abcd1234" and str(Option("FO", (None,))) == "FO *"

    def check(line: str, options: list[Option]) -> list[str]:
        return mismatches(parse_segment(line), wire.SYN | wire.ACK, 0, 0, 1, 100, options)

    cookie = [Option("FO", tuple(range(8))), Option("nop"), Option("nop")]
    assert check("S. 0:0(0) <FO *,nop,nop>", cookie) == []
    assert check("S. 0:0(0) <FO 0001020304050607,nop,nop>", cookie) == []
    assert check("S. 0:0(0) <FO 0001020304050608,nop,nop>", cookie) == ["options differ"]
    assert check("S. 0:0(0) <FO *,nop,nop>", [Option("FO"), Option("nop"), Option("nop")]) == ["options differ"]
    assert check("S. 0:0(0) <FOEXP *,nop,nop>", cookie) == ["options differ"]
    with pytest.raises(ScriptSyntaxError):
        parse_segment("S 0:0(0) <FO 0011 22>")
    assert tunstack_tcp_config({"net.ipv4.tcp_fastopen": "0x203"}).fastopen == 0x203


def test_tcp_info_fields_take_ranges() -> None:
    assert parse_fields("{tcpi_state=1, tcpi_rtt=90000..110000, tcpi_snd_ssthresh=0x7fffffff}") == {
        "tcpi_state": (1, 1), "tcpi_rtt": (90000, 110000), "tcpi_snd_ssthresh": (0x7FFFFFFF, 0x7FFFFFFF)}


WRONG_INFO = """
0    socket(AF_INET, SOCK_STREAM, 0) = 3
+0   getsockopt(3, SOL_TCP, TCP_INFO, {tcpi_state=7, tcpi_rto=2000000..3000000}, [280]) = 0
"""
WRONG_IOCTL = """
0    socket(AF_INET, SOCK_STREAM, 0) = 3
+0   ioctl(3, SIOCOUTQ, [5]) = 0
"""


@pytest.mark.parametrize("backend", ["tunstack", pytest.param("linux", marks=pytest.mark.realpeer)])
def test_wrong_tcp_info_and_ioctl_values_fail(tmp_path: Path, backend: str) -> None:
    if backend == "linux":
        require_real_peer()
    assert "tcpi_rto is 1000000, expected 2000000..3000000" in _fails(tmp_path, backend, WRONG_INFO)
    assert "SIOCOUTQ is 0, expected [5]" in _fails(tmp_path, backend, WRONG_IOCTL)


def test_recovery_sysctls_map_onto_tcp_config() -> None:
    """tcp_recovery is a bit mask (bit 0: RACK); the congestion control and the restart after
    idle map by name and flag."""
    config = tunstack_tcp_config({"net.ipv4.tcp_recovery": "4", "net.ipv4.tcp_congestion_control": "reno",
                                  "net.ipv4.tcp_slow_start_after_idle": "0"})
    assert config.rack is False and config.congestion == "reno" and config.slow_start_after_idle is False
    assert tunstack_tcp_config({"net.ipv4.tcp_recovery": "1"}).rack is True


def test_injected_sack_blocks_are_relative_to_the_sut_isn() -> None:
    runner = Runner(parse_script("0 close(3) = 0\n"), backend=None)  # type: ignore[arg-type]
    runner.sut_isn = 0xFFFFFF00
    assert runner._sack_absolute(Option("sack", (1001, 2001))) == Option("sack", (0x2E9, 0x6D1))
