"""Spoofed sources at the IPv4 and ARP inputs (issue 10: audit of the input paths).

  * LAND: SYNs from the stack's own address and port to itself, and datagrams "from" the
    subnet broadcast, sent by a raw socket in the namespace: dropped by IPv4 as martians
    (Linux fib_validate_source), so TCP never sees them -- no connection, no reply, no
    ACK loop through the loopback (before, this test hung: the first LAND SYN made a child
    that ACKed its own SYN-ACK through the loopback forever and the stack froze);
  * UDP datagrams to closed ports "from" a victim (a spoofed source on the subnet): the
    stack's port unreachables towards it stop at the per-destination burst (6) plus one
    a second (Linux icmp_ratelimit), not the global 1000/s;
  * ARP requests whose sender IP is broadcast, multicast or loopback (over TAP, from an
    AF_PACKET socket in the namespace): neither learned nor answered (Linux arp_process),
    while an honest request right after them still is.
"""
from __future__ import annotations

import socket
import sys

import trio

from ndd.pktbuf import PacketBuffer
from protocols.addr import ip_to_int
from protocols.ipv4 import Ipv4Repr
from tests.realpeer.helpers import run

from .conftest import KERNEL_IP, STACK_IP, Peer, soak

PORT = 5400
COUNT = soak(200, 20_000)

LAND = """
import socket, struct, sys
stack_ip, port, count, bcast = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def csum(b):
    if len(b) % 2: b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
def packet(src, dst, proto, l4):
    S, D = socket.inet_aton(src), socket.inet_aton(dst)
    l4 = bytearray(l4)
    off = 16 if proto == 6 else 6
    struct.pack_into("!H", l4, off, csum(S + D + struct.pack("!BBH", 0, proto, len(l4)) + bytes(l4)))
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0, S, D))
    struct.pack_into("!H", ip, 10, csum(bytes(ip)))
    return bytes(ip + l4)
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for i in range(count):
    syn = struct.pack("!HHIIBBHHH", port, port, 1000 + i, 0, 5 << 4, 0x02, 65535, 0, 0)
    raw.sendto(packet(stack_ip, stack_ip, 6, syn), (stack_ip, 0))
    udp = struct.pack("!HHHH", 53, port, 12, 0) + b"boo!"
    raw.sendto(packet(bcast, stack_ip, 17, udp), (stack_ip, 0))
print(count, flush=True)
"""

REFLECT = """
import socket, struct, sys, time
victim, stack_ip, count, duration = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
def csum(b):
    if len(b) % 2: b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
S, D = socket.inet_aton(victim), socket.inet_aton(stack_ip)
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
t0 = time.monotonic()
for i in range(count):
    udp = struct.pack("!HHHH", 53, 20000 + i % 1000, 12, 0) + b"scan"
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 32, i & 0xFFFF, 0, 64, 17, 0, S, D))
    struct.pack_into("!H", ip, 10, csum(bytes(ip)))
    raw.sendto(bytes(ip) + udp, (stack_ip, 0))
    time.sleep(max(0.0, t0 + duration * (i + 1) / count - time.monotonic()))
print(count, flush=True)
"""

ARP = """
import socket, struct, sys
dev, stack_ip, kernel_ip = sys.argv[1:4]
senders = sys.argv[4:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
mac = bytes.fromhex("02aabbccddee")
def request(spa, sha=mac):
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, sha, socket.inet_aton(spa), bytes(6),
                      socket.inet_aton(stack_ip))
    return b"\\xff" * 6 + sha + b"\\x08\\x06" + arp + bytes(18)
for spa in senders:
    s.send(request(spa))
print(len(senders), flush=True)
"""


async def test_land_and_broadcast_sources_are_martians(tun_peer: Peer) -> None:
    peer = tun_peer
    st = peer.stack
    out: list[bytes] = []

    def tap(ndd: object, direction: str, pkt: PacketBuffer) -> None:
        if direction == "out":
            out.append(pkt.tobytes())

    lst = st.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("", PORT))
    lst.listen(8)
    udp = st.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("", PORT))
    try:
        peer.ndd.taps.append(tap)
        martians0, segs0, received0 = st.ipv4.stats.in_martians, st.tcp.stats.in_segs, st.ipv4.stats.in_receives
        r = await run(peer.exec(sys.executable, "-c", LAND, STACK_IP, str(PORT), str(COUNT), "10.77.0.255"),
                      timeout=120)
        assert r.returncode == 0, r.stderr.decode()
        with trio.move_on_after(10):
            while st.ipv4.stats.in_martians - martians0 < 2 * COUNT:
                await trio.sleep(0.02)
        await trio.sleep(0.2)
        martians = st.ipv4.stats.in_martians - martians0
        print(f"\n{2 * COUNT} spoofed packets -> {martians} martians, "
              f"{st.tcp.stats.in_segs - segs0} TCP segments in, {len(out)} packets out")
        # every spoofed packet that reached the stack (the TUN queue may drop some) is a martian
        assert martians >= COUNT and martians == st.ipv4.stats.in_receives - received0
        assert st.tcp.stats.in_segs == segs0 and not st.tcp.conns
        spoofed_replies = [p for p in out if (ip := Ipv4Repr.parse(p, verify_checksum=False))
                           and not isinstance(ip, str) and ip.dst in (ip_to_int(STACK_IP), ip_to_int("10.77.0.255"))]
        assert spoofed_replies == [] and len(out) <= 2          # nothing answered (stray ARP/ND aside)
        # and the listener still serves a real client
        r = await run(peer.exec(sys.executable, "-c",
                                f"import socket; socket.create_connection(('{STACK_IP}', {PORT}), 5).close()"))
        assert r.returncode == 0, r.stderr.decode()
        with trio.fail_after(5):
            conn, (addr, _) = await lst.accept()
        conn.close()
        assert addr == KERNEL_IP
    finally:
        if tap in peer.ndd.taps:
            peer.ndd.taps.remove(tap)
        udp.close()
        lst.close()


async def test_arp_martian_senders_neither_learned_nor_answered(tap_peer: Peer) -> None:
    peer = tap_peer
    arp = peer.stack.arp_cache(peer.dev)
    before = dict(arp.entries)
    replies0 = arp.stats.tx_replies
    martians = ["255.255.255.255", "224.0.0.1", "127.0.0.1", "240.1.2.3"]
    r = await run(peer.exec(sys.executable, "-c", ARP, peer.dev, STACK_IP, KERNEL_IP, *martians))
    assert r.returncode == 0, r.stderr.decode()
    with trio.fail_after(5):
        while arp.stats.martian_senders < len(martians):
            await trio.sleep(0.02)
    assert arp.stats.tx_replies == replies0
    assert not any(ip_to_int(m) in arp.entries for m in martians) and set(arp.entries) >= set(before)
    # an honest request from a free address on the subnet is still learned and answered
    r = await run(peer.exec(sys.executable, "-c", ARP, peer.dev, STACK_IP, KERNEL_IP, "10.77.0.77"))
    assert r.returncode == 0, r.stderr.decode()
    with trio.fail_after(5):
        while ip_to_int("10.77.0.77") not in arp.entries:
            await trio.sleep(0.02)
    assert arp.stats.tx_replies == replies0 + 1


async def test_spoofed_victim_gets_few_port_unreachables(tun_peer: Peer) -> None:
    peer = tun_peer
    victim = "10.77.0.50"
    to_victim: list[float] = []

    def tap(ndd: object, direction: str, pkt: PacketBuffer) -> None:
        ip = Ipv4Repr.parse(pkt.tobytes(), verify_checksum=False)
        if direction == "out" and not isinstance(ip, str) and ip.proto == 1 and ip.dst == ip_to_int(victim):
            to_victim.append(trio.current_time())

    icmp = peer.stack.icmp.stats
    udp = peer.stack.udp.stats
    closed0, limited0 = udp.no_ports, icmp.out_rate_limited
    peer.ndd.taps.append(tap)
    try:
        duration = 2.0
        t0 = trio.current_time()
        r = await run(peer.exec(sys.executable, "-c", REFLECT, victim, STACK_IP, str(COUNT * 5), str(duration)),
                      timeout=60)
        assert r.returncode == 0, r.stderr.decode()
        await trio.sleep(0.3)
        elapsed = trio.current_time() - t0             # more than `duration` when the attacker lags
    finally:
        peer.ndd.taps.remove(tap)
    print(f"\n{COUNT * 5} spoofed datagrams in {elapsed:.1f} s -> {len(to_victim)} port unreachables to the victim "
          f"({icmp.out_rate_limited_host} held back per destination)")
    assert 6 <= len(to_victim) <= 6 + elapsed + 2          # the burst, then one a second
    # each datagram that reached the stack got an error or was held back (per destination, or
    # by the global bucket)
    closed = udp.no_ports - closed0
    assert closed >= COUNT and closed == len(to_victim) + icmp.out_rate_limited_host + icmp.out_rate_limited - limited0
