"""Off-path challenge-ACK probing (issue 10 point 5, the CVE-2016-5696 precondition).

Two connections from the Linux kernel in the namespace to a stack listener, idle.  A
raw-socket attacker in the namespace floods connection A with in-window RSTs and SYNs
(each one the stack must answer with a challenge ACK, RFC 5961 §3.2/§4.2) and, once a
second, probes connection B with one in-window RST.  With a stack-wide budget the flood
on A made B's challenge ACKs disappear -- which is how the CVE counted them from off path.
Now each connection has its own allowance, one per 500 ms (Linux tcp_invalid_ratelimit):

  * every probe on B is answered (counted by a tap on the device);
  * A's challenge ACKs are at least 500 ms apart on the stack's own clock -- read from the
    TSval each ACK carries (RFC 7323; ms), so a loaded machine delaying their transmission
    cannot fake a short gap -- and so at most one per 500 ms of the observation window;
  * the rest of the flood is counted (ack_skipped_challenge), both connections stay up
    and carry data afterwards; the stack's CPU per flood segment stays bounded.
"""
from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import time

import trio

from ndd.pktbuf import PacketBuffer
from protocols.tcp.wire import ACK
from tests.realpeer.helpers import read_all

from .conftest import KERNEL_IP, STACK_IP, Peer, sent_tcp, soak

PORT = 5300
DURATION = soak(4, 30)               # seconds of flood
RATE = 2000                          # flood segments per second to A

# The Linux end: two connections, held idle until a line on stdin, then one byte on each.
CLIENT = """
import socket, sys
a = socket.create_connection((sys.argv[1], int(sys.argv[2])))
b = socket.create_connection((sys.argv[1], int(sys.argv[2])))
print("bound", a.getsockname()[1], b.getsockname()[1], flush=True)
sys.stdin.readline()
a.sendall(b"A"); b.sendall(b"B")
print(a.recv(1), b.recv(1), flush=True)
"""

# The attacker: RST/SYN alternately to A at RATE per second for DURATION seconds, and one
# RST to B every second starting at 0.5 s; every segment in the stack's receive window.
ATTACKER = """
import socket, struct, sys, time
src, dst, sport_a, seq_a, sport_b, seq_b, dport, duration, rate = sys.argv[1:10]
sport_a, seq_a, sport_b, seq_b, dport, rate = map(int, (sport_a, seq_a, sport_b, seq_b, dport, rate))
duration = float(duration)
def csum(b):
    if len(b) % 2: b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
S, D = socket.inet_aton(src), socket.inet_aton(dst)
def segment(sport, seq, flags):
    tcp = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0))
    struct.pack_into("!H", tcp, 16, csum(S + D + struct.pack("!BBH", 0, 6, len(tcp)) + bytes(tcp)))
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, S, D))
    struct.pack_into("!H", ip, 10, csum(bytes(ip)))
    return bytes(ip + tcp)
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
RST, SYN = 0x04, 0x02
flood = [segment(sport_a, seq_a + i, RST if i % 2 else SYN) for i in range(64)]
probe = segment(sport_b, seq_b, RST)
sent_a = sent_b = 0
t0 = time.monotonic()
next_probe = 0.5
while (now := time.monotonic() - t0) < duration:
    if now >= next_probe:
        raw.sendto(probe, (dst, 0)); sent_b += 1; next_probe += 1.0
    burst = rate // 100
    for i in range(burst):
        raw.sendto(flood[(sent_a + i) % 64], (dst, 0))
    sent_a += burst
    time.sleep(max(0.0, (sent_a / rate) - (time.monotonic() - t0)))
print(sent_a, sent_b, flush=True)
"""


class ChallengeTap:
    """Pure ACKs the stack sends to the kernel, per destination port, with the time the
    stack decided to send each: its TSval (ms on the stack's clock, RFC 7323) -- not when
    the tap saw it, which on a loaded machine lags by a varying batch delay."""

    def __init__(self, peer: Peer) -> None:
        self.acks: dict[int, list[int]] = {}
        self.untimed = 0                  # ACKs without a timestamp option (none expected)
        peer.ndd.taps.append(self)

    def __call__(self, ndd: object, direction: str, pkt: PacketBuffer) -> None:
        sent = sent_tcp(direction, pkt)
        if sent is None:
            return
        ip, seg = sent
        if seg.flags != ACK or ip.total_len != ip.hdr_len + seg.hdr_len:
            return
        if seg.ts is None:
            self.untimed += 1
            return
        self.acks.setdefault(seg.dst_port, []).append(seg.ts[0])


async def test_flood_on_one_connection_leaves_anothers_challenge_acks(tun_peer: Peer) -> None:
    peer = tun_peer
    stats = peer.stack.tcp.stats
    lst = peer.stack.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("", PORT))
    lst.listen(8)
    client = await trio.lowlevel.open_process(
        peer.exec(sys.executable, "-c", CLIENT, STACK_IP, str(PORT)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    conns: dict = {}
    try:
        with trio.fail_after(60):
            for _ in range(2):
                conn, (_, fport) = await lst.accept()
                conns[fport] = conn
            line = b""
            while b"\n" not in line:
                chunk = await client.stdout.receive_some()
                assert chunk, await client.stderr.receive_some()
                line += chunk
            _, port_a, port_b = line.split()[:3]
            port_a, port_b = int(port_a), int(port_b)
            a, b = conns[port_a]._pcb, conns[port_b]._pcb
            await trio.sleep(0.3)                          # handshake ACKs and quick ACKs over
            tap = ChallengeTap(peer)
            window0 = peer.stack.now()                     # the tap's window, on the stack's clock
            cpu0, segs0, acks0 = time.process_time(), stats.in_segs, stats.challenge_acks
            r = await trio.run_process(
                peer.exec(sys.executable, "-c", ATTACKER, KERNEL_IP, STACK_IP, str(port_a),
                          str((a.rcv_nxt + 1000) & 0xFFFFFFFF), str(port_b), str((b.rcv_nxt + 1000) & 0xFFFFFFFF),
                          str(PORT), str(DURATION), str(RATE)),
                capture_stdout=True, capture_stderr=True)
            assert r.returncode == 0, r.stderr.decode()
            await trio.sleep(0.3)                          # the stack drains what is queued
            cpu = time.process_time() - cpu0
            segs = stats.in_segs - segs0
            sent_a, sent_b = map(int, r.stdout.split())
            peer.ndd.taps.remove(tap)
            window = peer.stack.now() - window0

            acks_a, acks_b = tap.acks.get(port_a, []), tap.acks.get(port_b, [])
            gaps_a = [((t1 - t0) & 0xFFFFFFFF) / 1000 for t0, t1 in itertools.pairwise(acks_a)]
            print(f"\nflood on A: {sent_a} segments in {DURATION} s -> {len(acks_a)} challenge ACKs "
                  f"(min gap {min(gaps_a, default=0):.3f} s); probes on B: {sent_b} -> {len(acks_b)} "
                  f"challenge ACKs; stack: {stats.challenge_acks - acks0} sent, "
                  f"{stats.ack_skipped_challenge} skipped per connection; "
                  f"{segs} segments in, {cpu / max(segs, 1) * 1e6:.0f} us CPU each")

            # B: every probe answered, the flood on A notwithstanding
            assert sent_b >= DURATION - 1 and len(acks_b) == sent_b
            # A: the limiter guarantees a minimum gap, 500 ms on the stack's clock (TSvals are
            # whole ms: 1 ms of truncation), not a maximum -- so at most one ACK per 500 ms of
            # the window the tap watched, and at least a couple over the flood
            assert tap.untimed == 0
            assert all(g >= 0.5 - 0.001 for g in gaps_a), gaps_a
            assert 2 <= len(acks_a) <= window / 0.5 + 1
            assert stats.challenge_acks - acks0 == len(acks_a) + len(acks_b)
            assert stats.ack_skipped_challenge >= segs - len(acks_a) - len(acks_b) - 10
            assert stats.ack_skipped_challenge > sent_a // 4          # the flood reached the stack
            # bounded work per flood segment (generous: a loaded shared machine)
            assert cpu / max(segs, 1) < 1e-3

            # both connections survived and carry data
            await client.stdin.send_all(b"go\n")
            assert await conns[port_a].recv(1) == b"A" and await conns[port_b].recv(1) == b"B"
            await conns[port_a].sendall(b"a")
            await conns[port_b].sendall(b"b")
            await client.wait()
            assert client.returncode == 0
            assert b"b'a' b'b'" in await read_all(client.stdout)
    finally:
        if client.returncode is None:
            client.kill()
            await client.wait()
        for c in conns.values():
            c.close()
        lst.close()
