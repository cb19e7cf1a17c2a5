"""The minimal relay of the gateway table (tools/bench/gwrelay.py), without a namespace: its
segments are well formed, and a guest conversation -- SYN, request, answer, FIN both ways --
reaches a local TCP server and back (a datagram socketpair stands in for the TUN)."""
from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from ndd.checksum import checksum, ones_sum
from tools.bench.gwrelay import ACK, FIN, MSS, PSH, SYN, Relay

GUEST = socket.inet_aton("10.0.2.100")
HOST = socket.inet_aton("127.0.0.1")
GPORT = 40000


def guest_segment(rport: int, flags: int, seq: int, ack: int = 0, payload: bytes = b"") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", GPORT, rport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0, GUEST, HOST)
    return ip + tcp + payload


def parse(frame: bytes) -> tuple[int, int, int, bytes, bytes]:
    """flags, seq, ack, options, payload -- after checking both checksums."""
    assert checksum(frame[:20]) == 0                              # the IPv4 header's
    total = struct.unpack_from("!H", frame, 2)[0]
    assert total == len(frame) and frame[12:16] == HOST and frame[16:20] == GUEST
    tcp = frame[20:]
    pseudo = HOST + GUEST + struct.pack("!BBH", 0, 6, len(tcp))
    assert checksum(tcp, ones_sum(pseudo)) == 0                   # the TCP segment's
    _sp, dport, seq, ack, off, flags = struct.unpack_from("!HHIIBB", tcp)
    assert dport == GPORT
    hl = (off >> 4) * 4
    return flags, seq, ack, tcp[20:hl], tcp[hl:]


@pytest.fixture
def rig() -> Iterator[tuple[Relay, socket.socket, socket.socket]]:
    ours, tun = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    relay = Relay(tun.fileno())
    yield relay, ours, server
    for s in (ours, tun, server):
        s.close()


def test_a_guest_connection_through_the_relay(rig: tuple[Relay, socket.socket, socket.socket]) -> None:
    relay, guest, server = rig
    port = server.getsockname()[1]
    relay.guest_frame(guest_segment(port, SYN, 7000), 0.0)
    flags, iss, ack, opts, _ = parse(guest.recv(2000))
    assert flags == SYN | ACK and ack == 7001 and opts == struct.pack("!BBH", 2, 4, MSS)
    conn, _ = server.accept()                                     # the host connect was made first
    relay.guest_frame(guest_segment(port, ACK, 7001, iss + 1), 0.0)
    relay.guest_frame(guest_segment(port, ACK | PSH, 7001, iss + 1, b"ping"), 0.0)
    assert conn.recv(10) == b"ping"
    conn.sendall(b"pong")
    f = next(iter(relay.flows.values()))
    relay.host_readable(f)
    flags, seq, ack, _, data = parse(guest.recv(2000))
    assert (flags, seq, ack, data) == (ACK | PSH, iss + 1, 7005, b"pong")  # the request's ACK rides on it
    relay.guest_frame(guest_segment(port, FIN | ACK, 7005, iss + 5), 0.0)
    flags, _, ack, _, _ = parse(guest.recv(2000))
    assert flags == ACK and ack == 7006 and conn.recv(10) == b""           # SHUT_WR reached the server
    conn.close()
    relay.host_readable(f)                                        # the server's EOF: our FIN
    flags, seq, _, _, _ = parse(guest.recv(2000))
    assert flags == FIN | ACK and seq == iss + 5
    relay.guest_frame(guest_segment(port, ACK, 7006, iss + 6), 0.0)
    assert relay.flows == {} and relay.by_fd == {}
