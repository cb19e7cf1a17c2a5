"""The host side of the gateway's UDP flows (tools/gateway/hostudp.py) over the kernel's loopback:
datagrams both ways on a connected socket, and the ICMP port unreachable the kernel sends
about a closed port read back from the error queue (IP_RECVERR / IPV6_RECVERR)."""
from __future__ import annotations

import errno
import socket
import struct

import pytest
import trio

from tools.gateway.hostudp import (
    IP_RECVERR,
    SO_EE_ORIGIN_ICMP,
    SO_EE_ORIGIN_ICMP6,
    HostError,
    open_flow,
    parse_extended_err,
    receive,
)


def _closed_port(family: int, host: str) -> int:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()                         # nobody listens there any more
    return port


@pytest.mark.parametrize("family, host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
async def test_datagrams_both_ways(family: int, host: str) -> None:
    server = trio.socket.socket(family, socket.SOCK_DGRAM)
    await server.bind((host, 0))
    flow = await open_flow((host, server.getsockname()[1]))
    with flow, server:
        for size in (0, 1, 1400, 8000):
            await flow.send(b"q" * size)
            data, peer = await server.recvfrom(65535)
            assert data == b"q" * size
            await server.sendto(data.upper(), peer)
            assert await receive(flow) == b"Q" * size


@pytest.mark.parametrize("family, host, origin, type_, code",
                         [(socket.AF_INET, "127.0.0.1", SO_EE_ORIGIN_ICMP, 3, 3),
                          (socket.AF_INET6, "::1", SO_EE_ORIGIN_ICMP6, 1, 4)])
async def test_port_unreachable_comes_back_from_the_error_queue(family: int, host: str, origin: int,
                                                                type_: int, code: int) -> None:
    flow = await open_flow((host, _closed_port(family, host)))
    with flow:
        await flow.send(b"anyone?")
        with trio.fail_after(5):
            got = await receive(flow)
    assert isinstance(got, HostError)
    assert (got.errno, got.origin, got.type, got.code) == (errno.ECONNREFUSED, origin, type_, code)
    assert got.offender == host


async def test_source_port_kept_when_free_and_any_when_taken() -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    with taken:
        flow = await open_flow(("127.0.0.1", 9), source=("127.0.0.1", port))
        with flow:
            assert flow.getsockname()[1] != port      # taken: another one
    free = _closed_port(socket.AF_INET, "127.0.0.1")
    flow = await open_flow(("127.0.0.1", 9), source=("127.0.0.1", free))
    with flow:
        assert flow.getsockname()[1] == free          # free: the guest's port kept


def test_parse_extended_err_rejects_other_messages() -> None:
    err = struct.pack("=IBBBBII", errno.EMSGSIZE, SO_EE_ORIGIN_ICMP, 3, 4, 0, 1400, 0)
    offender = struct.pack("=HH4s8x", socket.AF_INET, 0, socket.inet_aton("192.0.2.1"))
    got = parse_extended_err(socket.IPPROTO_IP, IP_RECVERR, err + offender)
    assert got == HostError(errno.EMSGSIZE, SO_EE_ORIGIN_ICMP, 3, 4, 1400, "192.0.2.1")
    assert parse_extended_err(socket.IPPROTO_IP, 99, err) is None      # not IP_RECVERR
    assert parse_extended_err(socket.IPPROTO_IP, IP_RECVERR, err[:5]) is None   # truncated
