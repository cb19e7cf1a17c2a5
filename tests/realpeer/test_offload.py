"""TUN offloads against the kernel (README "Offloads"): virtio_net_hdr in both directions.

With UDP (TCP's TSO and GSO are in test_tcp.py): Linux's UDP_SEGMENT makes
the kernel hand us a GSO_UDP_L4 super-frame, its UDP checksums arrive partial
(NEEDS_CSUM), and a super-segment we write with NEEDS_CSUM + GSO is cut by the kernel
into datagrams a socket in the namespace receives intact."""
from __future__ import annotations

import hashlib
import socket
import struct
import subprocess
import sys

import trio

from ndd import pktbuf
from ndd.checksum import pseudo_header_sum
from ndd.pktbuf import PacketBuffer
from protocols.addr import ip_to_int
from protocols.ipv4 import IPPROTO_UDP

from .conftest import Peer
from .helpers import run, wait_for

UDP_SENDER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if int(sys.argv[3]):
    s.setsockopt(socket.SOL_UDP, 103, int(sys.argv[3]))   # UDP_SEGMENT
s.sendto(b"u" * int(sys.argv[2]), (sys.argv[1], 9))
"""

UDP_RECEIVER = """
import hashlib, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(5)
print("bound", flush=True)
got = [s.recv(65535) for _ in range(int(sys.argv[3]))]
print(" ".join(str(len(g)) for g in got), hashlib.sha256(b"".join(got)).hexdigest(), flush=True)
"""


def record_udp(peer: Peer) -> list[tuple[int, int, bool, int]]:
    """Tap the NDD: (gso_type, gso_size, csum_valid, length) of each received UDP frame."""
    seen: list[tuple[int, int, bool, int]] = []

    def tap(ndd, direction, pkt):
        if direction == "in" and len(pkt) > 20 and pkt.buf[pkt.start + 9] == IPPROTO_UDP:
            seen.append((pkt.gso_type, pkt.gso_size, pkt.csum_valid, len(pkt)))

    peer.ndd.taps.append(tap)
    return seen


async def test_offloads_negotiated(tun_peer: Peer) -> None:
    caps = tun_peer.ndd.caps
    assert tun_peer.ndd.vnet and caps.tx_csum_offload and caps.rx_csum_partial
    assert caps.tso_max == 65535 and caps.gso_rx and caps.uso


async def test_rx_partial_checksum_marked_valid(tun_peer: Peer) -> None:
    seen = record_udp(tun_peer)
    r = await run(tun_peer.exec(sys.executable, "-c", UDP_SENDER, tun_peer.stack_ip, "300", "0"))
    assert r.returncode == 0, r.stderr
    assert await wait_for(lambda: seen)
    assert seen[0] == (pktbuf.GSO_NONE, 0, True, 20 + 8 + 300)
    # nothing listens on port 9: the stack answered with ICMP port unreachable
    assert await wait_for(lambda: tun_peer.stack.icmp.stats.out_dest_unreachs == 1)


async def test_rx_gso_udp_super_frame_becomes_gso_size_datagrams(tun_peer: Peer) -> None:
    seen = record_udp(tun_peer)
    sock = tun_peer.stack.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("", 9))
    r = await run(tun_peer.exec(sys.executable, "-c", UDP_SENDER, tun_peer.stack_ip, "5003", "1000"))
    assert r.returncode == 0, r.stderr
    assert await wait_for(lambda: seen)
    # one super-frame crossed the fd ...
    assert seen == [(pktbuf.GSO_UDP_L4, 1000, True, 20 + 8 + 5003)]
    stats = tun_peer.stack.stats()["ipv4"]
    assert stats["in_truncated"] == 0 and stats["in_hdr_errors"] == 0
    # ... and the socket sees what the sender wrote: 1000-byte datagrams and the rest
    with trio.fail_after(5):
        sizes = [len(await sock.recv(65535)) for _ in range(6)]
    assert sizes == [1000] * 5 + [3]


async def tx_udp(peer: Peer, payload: bytes, gso_size: int, port: int, datagrams: int) -> str:
    proc = await trio.lowlevel.open_process(
        peer.exec(sys.executable, "-c", UDP_RECEIVER, peer.kernel_ip, str(port), str(datagrams)),
        stdout=subprocess.PIPE)
    try:
        with trio.fail_after(10):
            assert (await proc.stdout.receive_some()).startswith(b"bound")
            src, dst = ip_to_int(peer.stack_ip), ip_to_int(peer.kernel_ip)
            length = 8 + len(payload)
            # the checksum field holds the folded, uncomplemented pseudo-header sum; the kernel finishes it
            pkt = PacketBuffer.from_payload(struct.pack("!HHHH", 40000, port, length,
                                                        pseudo_header_sum(src, dst, IPPROTO_UDP, length)) + payload)
            pkt.csum_start, pkt.csum_offset = pkt.start, 6
            if gso_size:
                pkt.gso_type, pkt.gso_size = pktbuf.GSO_UDP_L4, gso_size
            assert peer.stack.ipv4.output(pkt, src, dst, IPPROTO_UDP, peer.stack.now()) == 0
            out = b""
            async for chunk in proc.stdout:
                out += chunk
            await proc.wait()
        return out.decode().strip()
    finally:
        if proc.returncode is None:
            proc.kill()


async def test_tx_partial_checksum_accepted(tun_peer: Peer) -> None:
    payload = bytes(range(256)) * 2
    line = await tx_udp(tun_peer, payload, 0, 5001, 1)
    assert line == f"512 {hashlib.sha256(payload).hexdigest()}"


async def test_tx_gso_super_segment_cut_by_kernel(tun_peer: Peer) -> None:
    payload = bytes((i * 7) & 0xFF for i in range(3500))
    line = await tx_udp(tun_peer, payload, 1000, 5002, 4)
    assert line == f"1000 1000 1000 500 {hashlib.sha256(payload).hexdigest()}"
    assert tun_peer.ndd.stats.ndd_opackets >= 1 and tun_peer.ndd.stats.ndd_oerrors == 0
