"""Garbage and truncated frames written at the stack from inside the namespace (an
AF_PACKET socket on the kernel side of the device) are counted, and the stack keeps
answering.  Nothing may raise out of a protocol (bad input is data: README "Counters")."""
from __future__ import annotations

import random
import struct
import sys

from ndd.checksum import checksum

from .conftest import Peer
from .helpers import loss_percent, run, wait_for

SENDER = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for frame in sys.argv[2:]:
    s.send(bytes.fromhex(frame))
"""


def ipv4(payload: bytes, *, proto: int = 1, src: str = "10.77.0.1", dst: str = "10.77.0.2",
         total: int | None = None, vihl: int = 0x45, good_csum: bool = True) -> bytes:
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", vihl, 0, total if total is not None else 20 + len(payload), 1, 0,
                                64, proto, 0, bytes(map(int, src.split("."))), bytes(map(int, dst.split(".")))))
    struct.pack_into("!H", hdr, 10, checksum(hdr) ^ (0 if good_csum else 0x5555))
    return bytes(hdr) + payload


def bad_icmp_echo() -> bytes:
    msg = bytearray(struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"x" * 16)
    struct.pack_into("!H", msg, 2, checksum(msg) ^ 0x00FF)
    return bytes(msg)


async def inject(peer: Peer, frames: list[bytes]) -> None:
    r = await run(peer.exec(sys.executable, "-c", SENDER, peer.dev, *(f.hex() for f in frames)))
    assert r.returncode == 0, r.stderr


async def test_tun_garbage_counted_and_stack_keeps_answering(tun_peer: Peer) -> None:
    rng = random.Random(7)
    frames = [
        b"\x45",                                     # 1 octet: truncated
        b"\x45\x00\x00\x54\x00\x00",                 # a header cut short
        ipv4(b"abcd", vihl=0x43),                    # IHL 3 < 5
        ipv4(b"abcd", total=200),                    # total length beyond the frame
        ipv4(b"abcd", total=10),                     # total length < header
        ipv4(b"abcd", good_csum=False),              # bad header checksum
        ipv4(bad_icmp_echo()),                       # ICMP checksum wrong
        ipv4(b"\x08\x00"),                           # ICMP shorter than 8 octets
        b"\x65" + bytes(39),                         # "version 6" with junk: no IPv6 user -> nd_nofilter
        ipv4(b"hello", src="224.0.0.9"),             # multicast source: martian
        ipv4(b"hello", dst="10.77.0.77"),            # not ours: a host does not forward
        *[bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 120))) for _ in range(30)],
    ]
    before = tun_peer.stack.stats()
    await inject(tun_peer, frames)
    ndd = tun_peer.ndd.stats
    start = before["interfaces"][tun_peer.dev]["ndd"]["ndd_ipackets"]
    assert await wait_for(lambda: ndd.ndd_ipackets >= start + len(frames))
    after = tun_peer.stack.stats()
    ip, icmp = after["ipv4"], after["icmp"]
    assert ip["in_truncated"] >= 3
    assert ip["in_hdr_errors"] >= 2
    assert ip["in_csum_errors"] >= 1
    assert ip["in_martians"] >= 1 and ip["in_addr_errors"] >= 1
    assert icmp["in_csum_errors"] == 1 and icmp["in_truncated"] == 1
    nofilter = [s["interfaces"][tun_peer.dev]["demux"]["nd_nofilter"] for s in (before, after)]
    assert nofilter[1] > nofilter[0]
    r = await run(tun_peer.exec("ping", "-c", "3", "-i", "0.2", "-W", "2", tun_peer.stack_ip))
    assert loss_percent(r.stdout) == 0


async def test_tap_garbage_counted_and_stack_keeps_answering(tap_peer: Peer) -> None:
    ours = tap_peer.ndd.ndd_physaddr
    theirs = tap_peer.ndd.kernel_mac
    eth = lambda dst, etype, body: dst + theirs + struct.pack("!H", etype) + body  # noqa: E731
    frames = [
        eth(ours, 0x0806, b"\x00\x01\x08\x00\x06"),            # ARP cut short
        eth(ours, 0x0806, struct.pack("!HHBBH", 6, 0x0800, 6, 4, 1) + bytes(20)),  # ARP htype 6
        eth(ours, 0x0800, b"\x45\x00"),                        # IPv4 cut short
        eth(ours, 0x0800, ipv4(b"abcd", good_csum=False)),     # bad header checksum
        eth(ours, 0x88B5, b"local experimental ethertype"),    # nobody's ethertype: nd_nofilter
        eth(b"\x02\x00\x00\x00\x00\x99", 0x0800, ipv4(bad_icmp_echo())),  # another host's MAC: dropped
    ]
    before = tap_peer.stack.stats()["interfaces"][tap_peer.dev]
    await inject(tap_peer, frames)
    ndd = tap_peer.ndd.stats
    assert await wait_for(lambda: ndd.ndd_ipackets >= before["ndd"]["ndd_ipackets"] + len(frames))
    after = tap_peer.stack.stats()
    dev = after["interfaces"][tap_peer.dev]
    assert dev["arp"]["malformed"] - before["arp"]["malformed"] == 2
    assert dev["demux"]["nd_nofilter"] - before["demux"]["nd_nofilter"] >= 1
    # >= 1: the kernel's own IPv6 multicast (33:33:..) is dropped the same way
    assert dev["ndd"]["ndd_ipackets_drop"] - before["ndd"]["ndd_ipackets_drop"] >= 1
    assert after["ipv4"]["in_truncated"] >= 1 and after["ipv4"]["in_csum_errors"] >= 1
    assert after["icmp"]["in_csum_errors"] == 0          # the frame for another MAC never got that far
    r = await run(tap_peer.exec("ping", "-c", "3", "-i", "0.2", "-W", "2", tap_peer.stack_ip))
    assert loss_percent(r.stdout) == 0
