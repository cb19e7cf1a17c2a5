"""Linux pings the stack over TUN: small pings, fragmented pings, captured and checked."""
from __future__ import annotations

import dpkt

from drivers.pcap import PcapRecorder
from tools.demo.tour import Tcpdump

from .conftest import Peer
from .helpers import loss_percent, run


async def test_ping_five_no_loss(tun_peer: Peer) -> None:
    r = await run(tun_peer.exec("ping", "-c", "5", "-i", "0.2", "-W", "2", tun_peer.stack_ip))
    assert loss_percent(r.stdout) == 0
    icmp = tun_peer.stack.stats()["icmp"]
    assert icmp["in_echos"] == 5 and icmp["out_echo_reps"] == 5


async def test_ping_4000_fragmented_reassembled_answered(tun_peer: Peer) -> None:
    # 4008-byte ICMP message: 3 fragments each way at MTU 1500 (RFC 791 §3.2)
    r = await run(tun_peer.exec("ping", "-c", "3", "-i", "0.3", "-s", "4000", "-W", "2", tun_peer.stack_ip))
    assert loss_percent(r.stdout) == 0
    st = tun_peer.stack.stats()
    assert st["reasm"]["oks"] == 3 and st["reasm"]["fails"] == 0
    assert st["ipv4"]["frag_oks"] == 3 and st["ipv4"]["frag_creates"] == 9


async def test_stack_pings_linux(tun_peer: Peer) -> None:
    for size in (56, 1472, 4000):
        rtt = await tun_peer.stack.ping(tun_peer.kernel_ip, size=size, timeout=3)
        assert 0 < rtt < 3


async def test_tshark_finds_no_bad_frames_in_stack_pcap(tun_peer: Peer, tmp_path) -> None:
    pcap = tmp_path / "stack.pcap"
    rec = PcapRecorder.attach(tun_peer.ndd, str(pcap))
    await run(tun_peer.exec("ping", "-c", "3", "-i", "0.2", tun_peer.stack_ip))
    await run(tun_peer.exec("ping", "-c", "2", "-i", "0.2", "-s", "4000", tun_peer.stack_ip))
    await tun_peer.stack.ping(tun_peer.kernel_ip)
    rec.close()
    base = ["tshark", "-n", "-r", str(pcap), "-o", "ip.check_checksum:TRUE"]
    bad = await run(base + ["-Y", '_ws.malformed || ip.checksum.status == "Bad" || icmp.checksum.status == "Bad"'])
    assert bad.returncode == 0 and bad.stdout.strip() == b"", bad.stdout
    ttls = await run(base + ["-Y", f"ip.src == {tun_peer.stack_ip}", "-T", "fields", "-e", "ip.ttl",
                             "-e", "ip.checksum.status"])
    rows = [line.split(b"\t") for line in ttls.stdout.splitlines()]
    # 3 small replies + 2x3 reply fragments + 1 echo request of our own
    assert len(rows) == 10
    assert all(ttl == b"64" and status == b"1" for ttl, status in rows), rows   # 1 = "Good"
    # tshark reassembled the stack's fragments into whole echo replies (ping's 8-byte
    # timestamp is dissected apart from the data: 4000 = 8 + 3992)
    reassembled = await run(base + ["-Y", f"ip.src == {tun_peer.stack_ip} && icmp.type == 0 && data.len == 3992"])
    assert len(reassembled.stdout.splitlines()) == 2


async def test_tcpdump_in_namespace_sees_exchange(tun_peer: Peer, tmp_path) -> None:
    pcap = tmp_path / "kernel.pcap"
    dump = Tcpdump(tun_peer.host, tun_peer.dev, pcap)
    assert await dump.start()
    await run(tun_peer.exec("ping", "-c", "4", "-i", "0.2", tun_peer.stack_ip))
    await tun_peer.stack.ping(tun_peer.kernel_ip)
    assert await dump.stop() >= 10             # and IPv6's own (router solicitations, MLD)
    with open(pcap, "rb") as f:
        frames = [dpkt.ip.IP(buf) for _, buf in dpkt.pcap.Reader(f) if buf[0] >> 4 == 4]
    assert len(frames) == 10
    replies = [p for p in frames if isinstance(p.data, dpkt.icmp.ICMP) and p.data.type == 0]
    assert len(replies) == 5
    assert {bytes(p.src) for p in replies} == {bytes([10, 77, 0, 2]), bytes([10, 77, 0, 1])}
