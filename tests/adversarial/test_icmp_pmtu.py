"""Tiny-MTU ICMP (issue 10 point 4): spoofed "fragmentation needed, MTU 68" during a bulk
transfer from the stack to the Linux kernel in a namespace.

The attacker is a raw-socket script in the namespace that forges ICMP errors from a
"router" (10.77.0.254) quoting the stack's connection.  Between phases the stack's sender
waits until everything it sent is acknowledged, so SND.UNA = SND.MAX is stable and the test
can hand the attacker a quoted sequence that is surely in flight (SND.UNA) or surely not:

  * out of window (SND.UNA - 1 MiB, SND.UNA + 1 GiB) and for a port with no connection:
    dropped and counted (out_of_window_icmps, icmp_no_conn); the MSS is untouched;
  * in window: acted on, but the path MTU stops at min_pmtu 552 -- every data segment the
    stack then emits (seen by a tap on the device) is <= 552 octets with DF cleared, the
    MSS is 512 (500 of payload with timestamps) and never less; a later MTU-1400 report
    on the locked path changes nothing.

Each phase moves `soak(4, 64)` MiB; the throughput of each is printed (no offload, as in
the issue's measurement, and with TSO: the GSO size shows the MSS there).
"""
from __future__ import annotations

import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from drivers.tuntap import TunNdd
from ndd.pktbuf import PacketBuffer
from protocols.ipv4 import FLAG_DF
from stack import Stack
from tests.realpeer.helpers import kill_if_running, output_at_exit, run, start_linux
from tools.lab.netns import NetnsHost, unique_name

from .conftest import KERNEL_IP, STACK_IP, Peer, sent_tcp, soak

ROUTER = "10.77.0.254"
PORT = 5201
PHASE = soak(4, 64) << 20

# The Linux end: accept one connection, read to EOF, print the byte count.
SINK = """
import socket, sys
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], int(sys.argv[2]))); l.listen(1); l.settimeout(30)
print("bound", flush=True)
s, _ = l.accept(); s.settimeout(60); n = 0
while d := s.recv(1 << 20):
    n += len(d)
print(n, flush=True)
"""

# The attacker: one forged ICMP "fragmentation needed" per (mtu, seq) argument pair, from a
# spoofed router address, quoting an IPv4 header (DF set) + the first 8 octets of TCP.
ATTACKER = """
import socket, struct, sys
router, stack_ip, kernel_ip, sport, dport = sys.argv[1:6]
pairs = [tuple(map(int, a.split(":"))) for a in sys.argv[6:]]
def csum(b):
    if len(b) % 2: b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
def ip(src, dst, proto, payload, ff=0, total=None):
    h = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, total or 20 + len(payload), 0x1234, ff, 64, proto, 0,
                              socket.inet_aton(src), socket.inet_aton(dst)))
    struct.pack_into("!H", h, 10, csum(bytes(h)))
    return bytes(h) + payload
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for mtu, seq in pairs:
    quoted = ip(stack_ip, kernel_ip, 6, struct.pack("!HHI", int(sport), int(dport), seq), ff=0x4000, total=1500)
    icmp = bytearray(struct.pack("!BBHHH", 3, 4, 0, 0, mtu) + quoted)
    struct.pack_into("!H", icmp, 2, csum(bytes(icmp)))
    raw.sendto(ip(router, stack_ip, 1, bytes(icmp)), (stack_ip, 0))
print("sent", len(pairs), flush=True)
"""


@asynccontextmanager
async def tun_peer_offload(host: NetnsHost, offload: bool) -> AsyncIterator[Peer]:
    ndd = TunNdd(unique_name("tp"), offload=offload)
    ndd.create()
    host.adopt(ndd.ndd_name, f"{KERNEL_IP}/24")
    async with Stack(f"pmtu-{ndd.ndd_name}") as st:
        st.add_interface(ndd, f"{STACK_IP}/24")
        yield Peer(st, ndd, host)


class SegmentTap:
    """Every TCP data segment the stack hands the device: (IP total length, DF, GSO size, payload)."""

    def __init__(self, peer: Peer) -> None:
        self.seen: list[tuple[int, bool, int, int]] = []
        peer.ndd.taps.append(self)

    def __call__(self, ndd: object, direction: str, pkt: PacketBuffer) -> None:
        sent = sent_tcp(direction, pkt)
        if sent is None:
            return
        ip, seg = sent
        payload = ip.total_len - ip.hdr_len - seg.hdr_len
        if payload:
            self.seen.append((ip.total_len, bool(ip.flags_frag & FLAG_DF), pkt.gso_size, payload))

    def take(self) -> list[tuple[int, bool, int, int]]:
        out, self.seen = self.seen, []
        return out


async def send_phase(sock, pcb, nbytes: int) -> float:
    """Send `nbytes` and wait until all of it is acknowledged; the rate in Mbit/s."""
    t0 = trio.current_time()
    block = bytes(1 << 20)
    left = nbytes
    while left:
        await sock.sendall(block[:min(left, len(block))])
        left -= min(left, len(block))
    while pcb.snd_una != pcb.snd_max or len(pcb.snd):
        await trio.sleep(0.005)
    return nbytes * 8 / max(trio.current_time() - t0, 1e-9) / 1e6


async def spoof(peer: Peer, pcb, *pairs: tuple[int, int], sport: int | None = None) -> None:
    """Forge one frag-needed per (mtu, quoted seq) and wait until the stack has received them."""
    icmp = peer.stack.icmp.stats
    before = icmp.in_frag_needed
    r = await run(peer.exec(sys.executable, "-c", ATTACKER, ROUTER, STACK_IP, KERNEL_IP,
                            str(sport or pcb.lport), str(pcb.fport),
                            *(f"{mtu}:{seq & 0xFFFFFFFF}" for mtu, seq in pairs)), timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    with trio.fail_after(10):
        while icmp.in_frag_needed < before + len(pairs):
            await trio.sleep(0.01)


@pytest.mark.parametrize("offload", [False, True], ids=["no-offload", "tso"])
async def test_spoofed_frag_needed_mtu_68(netns: NetnsHost, offload: bool) -> None:
    async with tun_peer_offload(netns, offload) as peer:
        proc = await start_linux(peer.exec(sys.executable, "-c", SINK, KERNEL_IP, str(PORT)))
        tap = SegmentTap(peer)
        tcp = peer.stack.tcp.stats
        try:
            with peer.stack.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                with trio.fail_after(120):
                    await s.connect((KERNEL_IP, PORT))
                    pcb = s._pcb
                    full_mss = pcb.mss
                    assert full_mss == 1500 - 40 - 12                    # timestamps on
                    rate0 = await send_phase(s, pcb, PHASE)
                    tap.take()

                    # out of window, and no such connection: ignored, counted
                    una = pcb.snd_una
                    await spoof(peer, pcb, (68, una - (1 << 20)), (68, una + (1 << 30)))
                    await spoof(peer, pcb, (68, una), sport=pcb.lport ^ 1)
                    assert tcp.out_of_window_icmps == 2 and tcp.icmp_no_conn == 1
                    assert pcb.mss == full_mss and peer.stack.stats()["pmtu"]["updates"] == 0
                    rate1 = await send_phase(s, pcb, PHASE)
                    before = tap.take()
                    assert max(p for *_, p in before) >= full_mss

                    # in window: clamped at 552, locked (DF off); a later report cannot move it
                    await spoof(peer, pcb, (68, pcb.snd_una))
                    await spoof(peer, pcb, (1400, pcb.snd_una))
                    pmtu = peer.stack.stats()["pmtu"]
                    assert pmtu["clamped"] == 1 and pmtu["ignored_locked"] == 1
                    rate2 = await send_phase(s, pcb, PHASE)
                    after = tap.take()
                    s.shutdown(socket.SHUT_WR)
            out = await output_at_exit(proc, 30)
        finally:
            await kill_if_running(proc)
        assert int(out.split()[-1]) == 3 * PHASE
        assert pcb.mss == 512 - 12 and tcp.pmtu_reductions == 1
        # on the wire: MSS never below 512 (500 + the timestamp option), packets never above 552
        assert after
        if offload:
            # super-segments cut by the kernel at the GSO size, which is the MSS
            assert {gso for _, _, gso, _ in after if gso} == {500}
            assert all(total <= 552 for total, _, gso, _ in after if not gso)
        else:
            sizes = [p for *_, p in after]
            assert max(sizes) == 500 and all(total <= 552 for total, *_ in after)
            assert sizes.count(500) >= len(sizes) - 64              # only tails are shorter
        assert not any(df for _, df, _, _ in after)                 # the locked path sends without DF
        print(f"\n{'tso' if offload else 'no offload'}: before {rate0:.0f} Mbit/s, after out-of-window ICMP "
              f"{rate1:.0f} Mbit/s, after in-window MTU-68 ICMP (MSS 512) {rate2:.0f} Mbit/s")
