"""The emulated ATM adapter: two AtmNdds over an in-process PHY and over UDP, through NetServices."""
from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import dpkt
import pytest
import trio
import trio.testing

from drivers.atm import aal5, cell, oam
from drivers.atm.adapter import AtmNdd
from drivers.atm.phy import UDP_MAGIC, PhyPair, UdpPhy
from drivers.pcap import LINKTYPE_SUNATM, PcapRecorder
from ndd import constants as C
from ndd.atm import VcParams, atm_link_header
from ndd.demux import NS_INCLUDE_MAC, NsFilter, NsUser
from ndd.ndd import Ndd
from ndd.pktbuf import PacketBuffer
from ndd.services import NetServices
from protocols.atm.clip.link import LLC_SNAP_IPV4

from .helpers import require_tool

VC = (1, 42)


class Sink:
    def __init__(self, pkt_format: int = 1) -> None:
        self.got: list[PacketBuffer] = []
        self.user = NsUser(self.isr, None, pkt_format)

    def isr(self, ndd: Ndd, pkt: PacketBuffer, data: object) -> None:
        self.got.append(pkt)

    @property
    def payloads(self) -> list[bytes]:
        return [p.tobytes() for p in self.got]


@pytest.fixture
async def ns(nursery: trio.Nursery) -> NetServices:
    return NetServices(nursery.start_soon, trio.current_time)


def adapters(ns: NetServices, *, phys: tuple | None = None, **kw: object) -> tuple[AtmNdd, AtmNdd]:
    pair = PhyPair()
    pa, pb = phys or (pair.a, pair.b)
    a, b = AtmNdd("atm0", pa, **kw), AtmNdd("atm1", pb, **kw)  # type: ignore[arg-type]
    for nd in (a, b):
        ns.ns_attach(nd)
        ns.ns_alloc(nd.ndd_name)
    return a, b


def open_vc(ns: NetServices, nd: AtmNdd, vc: tuple[int, int] = VC, **kw: object) -> Sink:
    nd.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(*vc, **kw))  # type: ignore[arg-type]
    sink = Sink()
    ns.ns_add_filter(nd, NsFilter(C.NS_ATM_VC, vpi=vc[0], vci=vc[1]), sink.user)
    return sink


async def settle(*nds: AtmNdd) -> None:
    for nd in nds:
        await nd.wait_tx_idle()
    await trio.testing.wait_all_tasks_blocked()


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def errno_of(exc: pytest.ExceptionInfo[OSError]) -> int | None:
    return exc.value.errno


# --- PVC datagrams ------------------------------------------------------------------------
async def test_sdus_of_every_size_class_both_ways(ns: NetServices, autojump_clock: trio.testing.MockClock) -> None:
    # SDUs 1..65535 (each pad class, cell boundaries, the AAL5 maximum) cross intact both ways
    a, b = adapters(ns, mtu=65535)
    sa, sb = open_vc(ns, a), open_vc(ns, b)
    sizes = [1, 2, 39, 40, 41, 47, 48, 49, 88, 89, 9180, 65527, 65528, 65535] + list(range(100, 148))
    sdus = [bytes((n * 7 + i) & 0xFF for i in range(n)) for n in sizes]
    for sdu in sdus:
        assert a.atm_output(*VC, sdu) == 0
        assert b.atm_output(*VC, sdu[::-1]) == 0
    await settle(a, b)
    assert sb.payloads == sdus and sa.payloads == [s[::-1] for s in sdus]
    assert sb.got[0].ll_src == atm_link_header(*VC)          # the VC travels with the SDU
    cells = sum(-(-(n + 8) // 48) for n in sizes)
    for nd in (a, b):
        st = nd.ndd_ctl(C.NDD_ATM_GET_VC_STATS, VC)
        assert (st["sdus_out"], st["sdus_in"]) == (len(sizes), len(sizes))
        assert (st["cells_out"], st["cells_in"]) == (cells, cells)
        assert st["bytes_in"] == st["bytes_out"] == sum(sizes)
        assert st["crc_errors"] == st["length_errors"] == st["oversize_errors"] == 0
        g = nd.ndd_ctl(C.NDD_GET_STATS)
        assert g["ndd_opackets"] == g["ndd_ipackets"] == len(sizes) and g["xmt_cells"] == g["rcv_cells"] == cells


async def test_transmit_errors(ns: NetServices, autojump_clock: trio.testing.MockClock) -> None:
    # unopened VC ENOENT, over the VC's max SDU EMSGSIZE, empty SDU EINVAL (Length 0 = abort),
    # header-less frame EINVAL; all counted as output errors, nothing on the fibre
    a, b = adapters(ns)
    open_vc(ns, a, max_sdu=100)
    open_vc(ns, b)
    assert a.atm_output(9, 99, b"x") == errno.ENOENT
    assert a.atm_output(*VC, bytes(101)) == errno.EMSGSIZE
    assert a.atm_output(*VC, b"") == errno.EINVAL
    assert a.ndd_output(PacketBuffer(b"\x00\x01")) == errno.EINVAL
    assert a.atm_output(*VC, bytes(100)) == 0
    await settle(a, b)
    assert a.stats.ndd_oerrors == 4 and a.stats.ndd_opackets == 1 and a.atm_stats.xmt_cells == 3


async def test_include_mac_user_and_tap_see_the_link_header(ns: NetServices,
                                                            autojump_clock: trio.testing.MockClock) -> None:
    # NS_INCLUDE_MAC gets flags|VPI|VCI|SDU; an NS_TAP sees every SDU, even unclaimed ones
    a, b = adapters(ns)
    open_vc(ns, a)
    open_vc(ns, a, (0, 100))
    b.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(*VC))
    b.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(0, 100))
    whole, tap = Sink(NS_INCLUDE_MAC), Sink()
    ns.ns_add_filter(b, NsFilter(C.NS_ATM_VC, vpi=VC[0], vci=VC[1]), whole.user)
    ns.ns_add_filter(b, NsFilter(C.NS_TAP), tap.user)
    with pytest.raises(OSError) as exc:
        ns.ns_add_filter(b, NsFilter(C.NS_ATM_VC, vpi=VC[0], vci=VC[1]), Sink().user)
    assert errno_of(exc) == errno.EEXIST
    with pytest.raises(OSError) as exc:
        ns.ns_add_filter(b, NsFilter(C.NS_ATM_VC, vpi=256, vci=40), Sink().user)
    assert errno_of(exc) == errno.EINVAL
    with pytest.raises(OSError) as exc:
        ns.ns_add_filter(b, NsFilter(C.NS_ETHERTYPE, ethertype=0x800), Sink().user)
    assert errno_of(exc) == errno.EINVAL
    a.atm_output(*VC, b"hello")
    a.atm_output(0, 100, b"nobody")                          # open VC, but no filter on b
    await settle(a, b)
    assert whole.payloads == [atm_link_header(*VC) + b"hello"]
    assert tap.payloads == [atm_link_header(*VC) + b"hello", atm_link_header(0, 100) + b"nobody"]
    assert b.ndd_nsdemux.nd_dmxstats.nd_nofilter == 1


# --- receive-side faults ------------------------------------------------------------------
async def test_unknown_vc_bad_hec_and_truncated_cells_are_counted(ns: NetServices,
                                                                  autojump_clock: trio.testing.MockClock) -> None:
    # cells for a VC not in the table, cells with a corrupted header, a short blob: dropped and counted
    a, b = adapters(ns)
    sb = open_vc(ns, b)
    good = aal5.segment(b"payload", *VC)
    bad_hec = bytearray(good)
    bad_hec[4] ^= 0x01
    bad_vci = bytearray(good)
    bad_vci[2] ^= 0x10                                       # header bit flipped: HEC catches it
    b._rx_cells(aal5.segment(b"stray", 7, 77))
    b._rx_cells(bytes(bad_hec) + bytes(bad_vci))
    b._rx_cells(good + good[:20])
    assert sb.payloads == [b"payload"]
    assert (b.atm_stats.unknown_vc, b.atm_stats.hec_errors, b.atm_stats.truncated_cells) == (1, 2, 1)


async def test_hec_single_bit_correction_when_enabled(ns: NetServices,
                                                      autojump_clock: trio.testing.MockClock) -> None:
    # hec_correct=True repairs a one-bit header error (I.432.1) and the SDU still arrives
    a, b = adapters(ns, hec_correct=True)
    sb = open_vc(ns, b)
    c = bytearray(aal5.segment(b"fixed", *VC))
    c[2] ^= 0x10
    b._rx_cells(bytes(c))
    assert sb.payloads == [b"fixed"] and b.atm_stats.hec_errors == 0


async def test_corrupted_payload_and_lost_cell_never_deliver(ns: NetServices,
                                                              autojump_clock: trio.testing.MockClock) -> None:
    # a flipped payload bit is a CRC error; a lost last cell merges PDUs and is rejected;
    # a lost middle cell leaves a half PDU that the reassembly timer drops
    a, b = adapters(ns, reasm_timeout=1.0)
    sb = open_vc(ns, b)
    one = bytearray(aal5.segment(bytes(200), *VC))
    one[60] ^= 0x04
    b._rx_cells(bytes(one))
    two = aal5.segment(b"A" * 100, *VC)
    b._rx_cells(two[:-53] + aal5.segment(b"B" * 100, *VC))   # last cell of A lost
    three = aal5.segment(b"C" * 100, *VC)
    b._rx_cells(three[:53])                                  # the rest never comes
    await trio.sleep(2)
    b._rx_cells(aal5.segment(b"ok", *VC))
    st = b.ndd_ctl(C.NDD_ATM_GET_VC_STATS, VC)
    assert sb.payloads == [b"ok"]
    assert (st["crc_errors"] + st["length_errors"], st["timeouts"]) == (2, 1)


async def test_over_vc_max_sdu_on_receive_is_oversize(ns: NetServices,
                                                      autojump_clock: trio.testing.MockClock) -> None:
    # an SDU longer than the receiving VC's max is dropped and counted as oversize
    a, b = adapters(ns)
    open_vc(ns, a)
    sb = open_vc(ns, b, max_sdu=64)
    a.atm_output(*VC, bytes(65))
    a.atm_output(*VC, bytes(64))
    await settle(a, b)
    assert [len(p) for p in sb.payloads] == [64]
    assert b.ndd_ctl(C.NDD_ATM_GET_VC_STATS, VC)["oversize_errors"] == 1


# --- OAM ----------------------------------------------------------------------------------
async def test_oam_f5_loopback_is_answered(ns: NetServices, autojump_clock: trio.testing.MockClock) -> None:
    # a's loopback request on the VC comes back from b with the same tag; b never delivers it
    a, b = adapters(ns)
    open_vc(ns, a)
    sb = open_vc(ns, b)
    tag = a.ndd_ctl(C.NDD_ATM_OAM_LOOPBACK, VC)
    await settle(a, b)
    assert list(a.oam_replies) == [(*VC, tag)]
    assert b.atm_stats.oam_loopbacks_answered == 1 and sb.got == []
    assert a.ndd_ctl(C.NDD_ATM_GET_VC_STATS, VC)["oam_in"] == 1
    # a segment (PTI 4) request is answered too; a request on a VC b has not opened is unknown
    b._rx_cells(oam.loopback_request(*VC, 9, end_to_end=False))
    assert b.atm_stats.oam_loopbacks_answered == 2
    b._rx_cells(oam.loopback_request(3, 300, 1))
    assert b.atm_stats.unknown_vc == 1
    with pytest.raises(OSError) as exc:
        a.ndd_ctl(C.NDD_ATM_OAM_LOOPBACK, (3, 300))
    assert errno_of(exc) == errno.ENOENT


# --- VC table -----------------------------------------------------------------------------
@pytest.mark.parametrize("params, code", [
    (VcParams(0, 31), errno.EINVAL),                         # reserved VCI
    (VcParams(0, 5), errno.EINVAL),                          # signalling only when asked for
    (VcParams(0, 18, reserved=True), errno.EINVAL),          # reserved, neither 0/5 nor 0/16
    (VcParams(256, 40), errno.EINVAL),                       # UNI VPI is 8 bits
    (VcParams(0, 65536), errno.EINVAL),
    (VcParams(1, 40, max_sdu=65536), errno.EINVAL),
    (VcParams(1, 40, pcr=-1), errno.EINVAL),
    (VcParams(*VC), errno.EADDRINUSE),                       # already open
])
async def test_open_vc_errors(ns: NetServices, params: VcParams, code: int) -> None:
    a, _ = adapters(ns)
    a.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(*VC))
    with pytest.raises(OSError) as exc:
        a.ndd_ctl(C.NDD_ATM_OPEN_VC, params)
    assert errno_of(exc) == code


async def test_vc_table_ctl(ns: NetServices) -> None:
    # 0/5 and 0/16 open when explicitly requested; close of an unknown VC and stats of it are ENOENT
    a, _ = adapters(ns)
    for vc in ((0, 5), (0, 16), VC):
        assert a.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(*vc, reserved=vc[1] < 32)) == 0
    assert a.ndd_ctl(C.NDD_ATM_LIST_VCS) == [(0, 5), (0, 16), VC]
    assert a.ndd_ctl(C.NDD_ATM_GET_VC_STATS, VC)["max_sdu"] == 9180
    for cmd in (C.NDD_ATM_CLOSE_VC, C.NDD_ATM_GET_VC_STATS):
        with pytest.raises(OSError) as exc:
            a.ndd_ctl(cmd, (5, 55))
        assert errno_of(exc) == errno.ENOENT
    with pytest.raises(OSError) as exc:
        a.ndd_ctl(C.NDD_ATM_CLOSE_VC, "0/5")
    assert errno_of(exc) == errno.EINVAL
    with pytest.raises(OSError) as exc:
        a.ndd_ctl(C.NDD_ATM_SET_LINE_RATE, -5)
    assert errno_of(exc) == errno.EINVAL
    assert a.ndd_ctl(C.NDD_ATM_CLOSE_VC, VC) == 0 and a.ndd_ctl(C.NDD_ATM_LIST_VCS) == [(0, 5), (0, 16)]
    assert a.ndd_mtu == 9180 and a.ndd_type == C.NDD_ATM == 0x20 and a.linktype == LINKTYPE_SUNATM


async def test_close_vc_makes_cells_unknown(ns: NetServices, autojump_clock: trio.testing.MockClock) -> None:
    # after NDD_ATM_CLOSE_VC the far end's cells on it are counted as unknown, not delivered
    a, b = adapters(ns)
    open_vc(ns, a)
    sb = open_vc(ns, b)
    a.atm_output(*VC, b"first")
    await settle(a, b)
    b.ndd_ctl(C.NDD_ATM_CLOSE_VC, VC)
    a.atm_output(*VC, bytes(100))                            # 3 cells
    await settle(a, b)
    assert sb.payloads == [b"first"] and b.atm_stats.unknown_vc == 3


async def test_close_vc_drops_or_drains_what_is_queued(ns: NetServices,
                                                      autojump_clock: trio.testing.MockClock) -> None:
    # 10 SDUs queued at 1 Mbit/s of cells: a plain close drops them, a draining close sends
    # them first (a signalling entity's END), and either way the VC can be reopened at once
    a, b = adapters(ns, line_rate=1_000_000)
    sb = open_vc(ns, b)
    for cmd, want in ((C.NDD_ATM_CLOSE_VC, []), (C.NDD_ATM_CLOSE_VC_DRAIN, [b"%d" % i for i in range(10)])):
        sb.got.clear()
        a.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(*VC))
        for i in range(10):
            assert a.atm_output(*VC, b"%d" % i) == 0
        a.ndd_ctl(cmd, VC)
        assert VC not in a.ndd_ctl(C.NDD_ATM_LIST_VCS)
        with pytest.raises(OSError):
            a.ndd_ctl(C.NDD_ATM_GET_VC_STATS, VC)
        await settle(a, b)
        got = sb.payloads
        assert got == want or (cmd == C.NDD_ATM_CLOSE_VC and len(got) <= 1), (cmd, got)   # one may be on the line
    assert a.atm_stats.vc_closed_tx_drops >= 9


# --- pacing -------------------------------------------------------------------------------
async def test_pacing_at_line_rate(ns: NetServices, autojump_clock: trio.testing.MockClock) -> None:
    # 1 MB at 10 Mbit/s of cells: cells * 424 bit / 10^7 s of virtual time (~0.88 s: 53/48 of 0.8 s)
    a, b = adapters(ns, line_rate=10_000_000)
    open_vc(ns, a)
    sb = open_vc(ns, b)
    chunk = 8192
    n = 1_000_000 // chunk + 1
    cells = n * -(-(chunk + 8) // 48)
    t0 = trio.current_time()
    for _ in range(n):
        assert a.atm_output(*VC, bytes(chunk)) == 0
    await a.wait_tx_idle()
    took = trio.current_time() - t0
    await settle(a, b)
    assert len(sb.got) == n
    assert took == pytest.approx(cells * 424 / 10_000_000, rel=0.01)
    # the default is OC-3c: 353,207 cells/s
    assert AtmNdd("x", PhyPair().a).cell_rate == pytest.approx(353_207.5, abs=1)


async def test_peak_cell_rate_per_vc(ns: NetServices, autojump_clock: trio.testing.MockClock) -> None:
    # a VC with PCR 1000 cells/s takes ~1 s for 1000 cells while a VC without one is line-rate fast
    a, b = adapters(ns)
    slow, fast = (1, 50), (1, 51)
    open_vc(ns, a, slow, pcr=1000)
    open_vc(ns, a, fast)
    s_slow, s_fast = open_vc(ns, b, slow), open_vc(ns, b, fast)
    t0 = trio.current_time()
    for _ in range(10):
        a.atm_output(*slow, bytes(4792))                     # 100 cells each
        a.atm_output(*fast, bytes(4792))
    done: dict[str, float] = {}

    async def watch(name: str, sink: Sink) -> None:
        while len(sink.got) < 10:
            await trio.sleep(0.001)
        done[name] = trio.current_time() - t0

    async with trio.open_nursery() as n:
        n.start_soon(watch, "slow", s_slow)
        n.start_soon(watch, "fast", s_fast)
    assert done["slow"] == pytest.approx(1.0, abs=0.02)
    assert done["fast"] < 0.01


# --- status -------------------------------------------------------------------------------
async def test_phy_up_down_reported_as_status(ns: NetServices, autojump_clock: trio.testing.MockClock) -> None:
    # a lone end has no carrier; when the far end opens both report NDD_LINK_UP, when it closes LINK_DOWN
    pair = PhyPair()
    a, b = AtmNdd("atm0", pair.a), AtmNdd("atm1", pair.b)
    seen: list[tuple[str, tuple[int, ...]]] = []
    ns.ns_attach(a)
    ns.ns_attach(b)
    ns.ns_alloc("atm0")
    ns.ns_add_status(a, lambda nd, blk: seen.append((nd.ndd_name, blk.option)), C.NDD_STATUS)
    assert not a.ndd_flags & C.NDD_RUNNING
    a.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(*VC))
    assert a.atm_output(*VC, b"x") == errno.ENETDOWN
    ns.ns_alloc("atm1")
    assert a.ndd_flags & C.NDD_RUNNING and seen == [("atm0", (C.NDD_LINK_UP,))]
    ns.ns_free(b)
    assert not a.ndd_flags & C.NDD_RUNNING and seen[-1] == ("atm0", (C.NDD_LINK_DOWN,))


# --- UDP PHY ------------------------------------------------------------------------------
async def test_udp_phy_carries_sdus_both_ways(ns: NetServices) -> None:
    # real sockets on 127.0.0.1: SDUs both ways, OAM loopback; a foreign datagram is counted
    pa, pb = UdpPhy(cells_per_datagram=24), UdpPhy(cells_per_datagram=7)
    pa.connect(pb.local_address)
    pb.connect(pa.local_address)
    try:
        a, b = adapters(ns, phys=(pa, pb), line_rate=0)
        sa, sb = open_vc(ns, a), open_vc(ns, b)
        sdus = [bytes([i & 0xFF]) * n for i, n in enumerate((1, 40, 41, 1500, 9180))]
        with trio.fail_after(5):
            for sdu in sdus:
                assert a.atm_output(*VC, sdu) == 0
                assert b.atm_output(*VC, sdu) == 0
                while len(sb.got) < sdus.index(sdu) + 1 or len(sa.got) < sdus.index(sdu) + 1:
                    await trio.sleep(0.005)
            tag = a.ndd_ctl(C.NDD_ATM_OAM_LOOPBACK, VC)
            while not a.oam_replies:
                await trio.sleep(0.005)
        assert sb.payloads == sdus and sa.payloads == sdus and list(a.oam_replies) == [(*VC, tag)]
        # an SDU + the 8-octet AAL5 trailer in 48-octet cells, the PHY sends up to 24 cells a datagram
        assert pa.stats.tx_blobs == sum(_ceil_div(_ceil_div(len(s) + 8, 48), 24) for s in sdus) + 1
        import socket
        # another sender's datagrams are not from pb's configured far end: dropped unread
        cells_before = pb.stats.rx_cells
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"XXXX" + bytes(53), pb.local_address)
            s.sendto(UDP_MAGIC + bytes(52), pb.local_address)
            s.sendto(UDP_MAGIC + oam.loopback_request(*VC, 77, end_to_end=True), pb.local_address)
        with trio.fail_after(5):
            while pb.stats.foreign_datagrams < 3:
                await trio.sleep(0.005)
        assert pb.stats.bad_datagrams == 0 and pb.stats.rx_cells == cells_before
        # malformed ones from the far end itself are counted as bad
        pa.sock.sendto(b"XXXX" + bytes(53), pb.local_address)
        pa.sock.sendto(UDP_MAGIC + bytes(52), pb.local_address)
        with trio.fail_after(5):
            while pb.stats.bad_datagrams < 2:
                await trio.sleep(0.005)
        assert pb.stats.foreign_datagrams == 3
    finally:
        for nd in ("atm0", "atm1"):
            if ns.refcount.get(nd):
                ns.ns_free(ns.ndds[nd])
        pa.shutdown()
        pb.shutdown()


async def test_udp_phy_datagram_format() -> None:
    # the wire format: b"ATM\x01" then whole 53-octet cells, at most cells_per_datagram each
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        phy = UdpPhy(remote=rx.getsockname(), cells_per_datagram=2)
        phy.is_open = True
        cells = aal5.segment(bytes(150), *VC)                # 4 cells
        assert phy.send(cells) == 0
        got = [rx.recv(2048), rx.recv(2048)]
        phy.shutdown()
    assert got == [UDP_MAGIC + cells[:106], UDP_MAGIC + cells[106:]]
    assert all(isinstance(cell.CellHeader.parse(g[4:]), cell.CellHeader) for g in got)


async def test_udp_phy_hands_waiting_datagrams_up_as_one_block(nursery: trio.Nursery) -> None:
    # five datagrams queued before the reader runs: one rx call with all their cells in order;
    # a bad and a foreign datagram among them are counted and left out
    import socket
    blocks: list[bytes] = []
    phy = UdpPhy(cells_per_datagram=3)
    tx = UdpPhy(remote=phy.local_address, cells_per_datagram=3)
    phy.connect(tx.local_address)
    phy.bind(blocks.append, lambda up: None)
    tx.is_open = True
    try:
        cells = aal5.segment(bytes(range(256)) * 2, *VC)             # 11 cells: 4 datagrams
        assert tx.send(cells[:6 * 53]) == 0
        tx.sock.sendto(UDP_MAGIC + bytes(52), phy.local_address)     # bad length
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(UDP_MAGIC + cells[:53], phy.local_address)       # foreign sender
        assert tx.send(cells[6 * 53:]) == 0
        phy.open(nursery.start_soon)
        with trio.fail_after(5):
            while phy.stats.rx_cells < 11:
                await trio.sleep(0.005)
        assert blocks == [cells]
        assert (phy.stats.rx_blobs, phy.stats.bad_datagrams, phy.stats.foreign_datagrams) == (4, 1, 1)
    finally:
        phy.shutdown()
        tx.shutdown()


def test_udp_phy_socket_buffers() -> None:
    # the receive buffer is sized for bursts (8 MiB asked; root gets it past rmem_max, others
    # up to it); 0 keeps the system's default; the kernel reports twice what it granted
    big, default = UdpPhy(), UdpPhy(rcvbuf=0, sndbuf=0)
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            rmem_max = int(f.read())
        assert big.rcvbuf_size >= min(2 * rmem_max, 2 * 8 << 20)
        assert big.rcvbuf_size > default.rcvbuf_size and big.sndbuf_size >= default.sndbuf_size
    finally:
        big.shutdown()
        default.shutdown()


# --- pcap ---------------------------------------------------------------------------------
async def test_sunatm_pcap(ns: NetServices, tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    # SUNATM records: flags (0x80 out, type), VPI, VCI, SDU; LLC/SNAP marked 2, 0/5 marked 6, 0/16 5
    a, b = adapters(ns)
    ip = dpkt.ip.IP(src=bytes([10, 0, 0, 1]), dst=bytes([10, 0, 0, 2]), p=17,
                    data=dpkt.udp.UDP(sport=1000, dport=2000, data=b"hello atm"))
    ip.len = len(bytes(ip))
    ip_sdu = LLC_SNAP_IPV4 + bytes(ip)
    for nd in (a, b):
        for vc in (VC, (0, 5), (0, 16)):
            nd.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(*vc, reserved=True))
    path = tmp_path / "atm.pcap"
    with PcapRecorder.attach(a, str(path)) as rec:
        a.atm_output(*VC, ip_sdu)
        a.atm_output(0, 5, b"\x00\x00\x00\x00sscop?")
        a.atm_output(0, 16, b"\x30\x00")
        b.atm_output(*VC, b"raw data")
        await settle(a, b)
    assert rec.frames == 4
    with open(path, "rb") as f:
        r = dpkt.pcap.Reader(f)
        assert r.datalink() == LINKTYPE_SUNATM
        frames = [buf for _, buf in r]
    assert frames == [b"\x82\x01\x00\x2a" + ip_sdu, b"\x86\x00\x00\x05\x00\x00\x00\x00sscop?",
                      b"\x85\x00\x00\x10\x30\x00", b"\x00\x01\x00\x2araw data"]
    require_tool("tshark")
    out = subprocess.run(["tshark", "-r", str(path), "-c", "1", "-T", "fields", "-e", "atm.vpi", "-e", "atm.vci",
                          "-e", "ip.src", "-e", "ip.dst", "-e", "udp.dstport"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["1", "42", "10.0.0.1", "10.0.0.2", "2000"], out.stderr
    last = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "atm.vpi", "-e", "atm.vci"],
                          capture_output=True, text=True, timeout=60)
    assert last.stdout.split() == ["1", "42", "0", "5", "0", "16", "1", "42"]


async def test_phy_back_pressure_loses_nothing(ns: NetServices, autojump_clock: trio.testing.MockClock) -> None:
    # a small far-end FIFO with latency refuses cells (ENOBUFS); the adapter waits, nothing is lost
    pair = PhyPair(queue_cells=64, latency=0.001)
    a, b = adapters(ns, phys=(pair.a, pair.b), line_rate=0)
    open_vc(ns, a)
    sb = open_vc(ns, b)
    sdus = [bytes([i]) * 3000 for i in range(40)]
    for sdu in sdus:
        assert a.atm_output(*VC, sdu) == 0
    await settle(a, b)
    await trio.sleep(0.01)                                   # the last cells are still in the fibre
    assert sb.payloads == sdus and pair.a.stats.tx_busy > 0 and pair.a.stats.tx_drops == 0


async def test_fault_injector_over_atm(ns: NetServices, autojump_clock: trio.testing.MockClock) -> None:
    # the injector wraps an AtmNdd (link header and all); corrupted SDUs still carry their VC
    from drivers.fault import FaultInjector
    pair = PhyPair()
    a, b = AtmNdd("atm0", pair.a), AtmNdd("atm1", pair.b)
    inj = FaultInjector(a, seed=1, drop=0.5, direction="out")
    for nd in (inj, b):
        ns.ns_attach(nd)
        ns.ns_alloc(nd.ndd_name)
    assert inj.linktype == LINKTYPE_SUNATM
    open_vc(ns, inj)
    sb = open_vc(ns, b)
    for i in range(20):
        assert inj.ndd_output(PacketBuffer(atm_link_header(*VC) + bytes([i]) * 10)) == 0
    await settle(a, b)
    assert len(sb.got) == 20 - inj.faults.dropped and 0 < inj.faults.dropped < 20
