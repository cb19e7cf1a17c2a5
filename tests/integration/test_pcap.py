"""PcapRecorder on a memory link end: both directions, right link type, frames dpkt can parse.

The stacks run IPv4 only here: every frame is checked as an IPv4 echo or ARP (IPv6 on the
wire is checked by tshark in tests/realpeer/test_ipv6.py)."""
from __future__ import annotations

from pathlib import Path

import dpkt
import pytest
import trio
import trio.testing

from drivers.fault import FaultInjector
from drivers.memlink import MemoryNdd
from drivers.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapRecorder
from ndd import constants as C
from protocols.addr import ip_to_int

from .helpers import IP_A, IP_B, MAC_A, MAC_B, two_stacks


def read_pcap(path: Path) -> tuple[int, list[bytes]]:
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        return reader.datalink(), [buf for _ts, buf in reader]


def ip_of(buf: bytes, linktype: int) -> dpkt.ip.IP | None:
    if linktype == LINKTYPE_RAW:
        return dpkt.ip.IP(buf)
    eth = dpkt.ethernet.Ethernet(buf)
    return eth.data if isinstance(eth.data, dpkt.ip.IP) else None


@pytest.mark.parametrize("kind, linktype", [("ether", LINKTYPE_ETHERNET), ("rawip", LINKTYPE_RAW)])
async def test_records_both_directions(kind: str, linktype: int, tmp_path: Path,
                                       autojump_clock: trio.testing.MockClock) -> None:
    # every frame a's NDD sent or received is in the file, with a's link type, and parses cleanly
    path = tmp_path / f"{kind}.pcap"
    async with two_stacks(kind, ipv6=False) as p:
        p.a.ndd_ctl(C.NDD_CLEAR_STATS)
        with PcapRecorder.attach(p.a, str(path)) as rec:
            for _ in range(3):
                await p.sa.ping(IP_B)
                await p.sb.ping(IP_A)
            await p.sa.ping(IP_B, size=4000)
            await trio.sleep(3)      # ARP announcements, if any, are on the wire too
            counted = p.a.stats.ndd_opackets + p.a.stats.ndd_ipackets
        assert rec.frames == counted and rec.frames >= 12 + 6
    datalink, frames = read_pcap(path)
    assert datalink == linktype and len(frames) == counted

    echo = {dpkt.icmp.ICMP_ECHO: 0, dpkt.icmp.ICMP_ECHOREPLY: 0}
    fragments: dict[tuple[int, int], list[tuple[int, int, bool]]] = {}
    for buf in frames:
        if kind == "ether":
            eth = dpkt.ethernet.Ethernet(buf)
            assert eth.src in (MAC_A, MAC_B) and len(buf) >= 60        # padded to the Ethernet minimum
            if eth.type == dpkt.ethernet.ETH_TYPE_ARP:
                assert isinstance(eth.data, dpkt.arp.ARP)
                continue
            assert eth.type == dpkt.ethernet.ETH_TYPE_IP
        ip = ip_of(buf, linktype)
        assert ip is not None and ip.v == 4
        assert dpkt.in_cksum(bytes(ip)[:ip.hl * 4]) == 0             # real IP header checksums
        assert {ip.src, ip.dst} == {ip_to_int(IP_A).to_bytes(4, "big"), ip_to_int(IP_B).to_bytes(4, "big")}
        more, offset = bool(ip.mf), ip.offset * 8     # dpkt gives the 8-octet units
        if more or offset:
            fragments.setdefault((ip.id, ip.src[3]), []).append((offset, len(ip) - ip.hl * 4, more))
            continue
        icmp = ip.data
        assert isinstance(icmp, dpkt.icmp.ICMP) and dpkt.in_cksum(bytes(icmp)) == 0
        echo[icmp.type] += 1
    assert echo == {dpkt.icmp.ICMP_ECHO: 6, dpkt.icmp.ICMP_ECHOREPLY: 6}
    # the 4000-octet request and its reply: 1480 + 1480 + 1048 octets each, in order
    assert sorted(fragments.values()) == [[(0, 1480, True), (1480, 1480, True), (2960, 1048, False)]] * 2


async def test_echo_payloads_match_on_the_wire(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    # each echo reply on the wire carries the id, sequence and data of its request
    path = tmp_path / "echo.pcap"
    async with two_stacks("rawip", ipv6=False) as p:
        with PcapRecorder.attach(p.b, str(path)):
            for size in (0, 1, 100, 1472):
                await p.sa.ping(IP_B, size=size)
    _, frames = read_pcap(path)
    icmps = [dpkt.ip.IP(buf).data for buf in frames]
    requests = [m for m in icmps if m.type == dpkt.icmp.ICMP_ECHO]
    replies = [m for m in icmps if m.type == dpkt.icmp.ICMP_ECHOREPLY]
    assert [len(m.data.data) for m in requests] == [0, 1, 100, 1472]
    assert [(m.data.id, m.data.seq, m.data.data) for m in requests] == \
        [(m.data.id, m.data.seq, m.data.data) for m in replies]


async def test_close_detaches(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    # after close() the tap is gone: more traffic neither raises nor grows the file
    path = tmp_path / "closed.pcap"
    async with two_stacks("rawip", ipv6=False) as p:
        rec = PcapRecorder.attach(p.a, str(path))
        await p.sa.ping(IP_B)
        rec.close()
        assert rec._tap not in p.a.taps
        await p.sa.ping(IP_B)
        rec.write(b"late")            # a write after close is ignored, not an error
        rec.close()                   # closing twice is harmless
    assert rec.frames == 2 and len(read_pcap(path)[1]) == 2


async def test_recorder_before_and_after_fault_injector(tmp_path: Path,
                                                        autojump_clock: trio.testing.MockClock) -> None:
    # tapping the injector shows what the stack sent; tapping the inner NDD shows what reached the wire
    def wrap(a: MemoryNdd) -> FaultInjector:
        return FaultInjector(a, seed=4, direction="out")

    async with two_stacks("rawip", wrap_a=wrap, ipv6=False) as p:
        inj = p.nd_a
        assert isinstance(inj, FaultInjector) and inj.linktype == LINKTYPE_RAW
        stack_side = PcapRecorder.attach(inj, str(tmp_path / "stack.pcap"))
        wire_side = PcapRecorder.attach(p.a, str(tmp_path / "wire.pcap"))
        inj.p.update(drop=0.5)
        for _ in range(20):
            try:
                await p.sa.ping(IP_B, timeout=0.5)
            except TimeoutError:
                pass
        stack_side.close()
        wire_side.close()
    _, sent = read_pcap(tmp_path / "stack.pcap")
    _, wire = read_pcap(tmp_path / "wire.pcap")
    dropped = inj.faults.dropped
    assert dropped > 0
    requests = [f for f in sent if dpkt.ip.IP(f).data.type == dpkt.icmp.ICMP_ECHO]
    on_wire = [f for f in wire if dpkt.ip.IP(f).data.type == dpkt.icmp.ICMP_ECHO]
    assert len(requests) == 20 and len(on_wire) == 20 - dropped
    assert all(f in requests for f in on_wire)
