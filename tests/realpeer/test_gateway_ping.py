"""The gateway's ICMP echo through unprivileged ping sockets (tools/gateway/ping.py), inside a
namespace of the test's where net.ipv4.ping_group_range is set either way: echoes answered
when ping sockets are allowed, PingUnavailable (never a forged reply) when they are not."""
from __future__ import annotations

import socket
import sys

import pytest

from tools.gateway.ping import echo_request, parse_echo_reply
from tools.lab.netns import NetnsHost

from .conftest import require_real_peer
from .helpers import run

PROBE = """
import sys, trio
from tools.gateway.ping import PingUnavailable, ping_once
async def main():
    try:
        r = await ping_once(sys.argv[1], 7, b"gateway ping", 3.0)
    except PingUnavailable as exc:
        print("unavailable", exc); return
    print("reply", r.seq, r.data.decode()) if r else print("timeout")
trio.run(main)
"""


@pytest.mark.parametrize("allowed", [True, False])
async def test_ping_sockets_answer_or_say_why_not(netns: NetnsHost, allowed: bool) -> None:
    require_real_peer()
    netns.ip("addr", "add", "::1/128", "dev", "lo", check=False)
    value = "0 2147483647" if allowed else "1 0"
    await run(netns.exec_argv("sysctl", "-qw", f"net.ipv4.ping_group_range={value}"), check=True)
    for dst in ("127.0.0.1", "::1"):
        r = await run(netns.exec_argv(sys.executable, "-c", PROBE, dst), timeout=20)
        out = r.stdout.decode()
        if allowed:
            assert out.startswith("reply 7 gateway ping"), (dst, out, r.stderr)
        else:
            assert out.startswith("unavailable ping sockets refused"), (dst, out, r.stderr)


def test_echo_codec() -> None:
    req = echo_request(socket.AF_INET, 0x1_0005, b"abc")      # the sequence wraps at 16 bits
    assert req[:2] == b"\x08\x00" and req[6:8] == b"\x00\x05" and req[8:] == b"abc"
    assert echo_request(socket.AF_INET6, 1, b"")[0] == 128
    reply = parse_echo_reply(socket.AF_INET, b"\x00\x00\x00\x00\x12\x34\x00\x05abc")
    assert reply is not None and (reply.seq, reply.data) == (5, b"abc")
    assert parse_echo_reply(socket.AF_INET, b"\x03\x03" + bytes(10)) is None      # not a reply
    assert parse_echo_reply(socket.AF_INET6, b"\x81\x00" + bytes(6)) is not None
    assert parse_echo_reply(socket.AF_INET6, b"\x81\x00") is None                 # truncated

