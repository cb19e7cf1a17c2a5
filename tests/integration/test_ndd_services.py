"""The NDD family (AIX CDLI): ns_* services, demuxers, filters, ndd_ctl and status, on memory NDDs."""
from __future__ import annotations

import errno

import pytest
import trio
import trio.testing

from drivers.memlink import MemoryNdd
from ndd import constants as C
from ndd.demux import NS_INCLUDE_MAC, Demuxer, NsFilter, NsUser
from ndd.ndd import Ndd, StatusBlock
from ndd.pktbuf import PacketBuffer
from ndd.services import NetServices
from stack.stack import Stack, StackConfig

from .helpers import MAC_A, MAC_B, MAC_BCAST, MAC_OTHER, ether_frame, link_pair, llc_frame

ETHERTYPE_TEST = 0x88B5     # IEEE 802 local experimental ethertype
MCAST_MAC = bytes.fromhex("01005e010203")


class Sink:
    """An ns_user that keeps what it receives."""

    def __init__(self, pkt_format: int = 1) -> None:
        self.got: list[PacketBuffer] = []
        self.user = NsUser(self.isr, "cookie", pkt_format)
        self.cookies: list[object] = []

    def isr(self, ndd: Ndd, pkt: PacketBuffer, data: object) -> None:
        self.got.append(pkt)
        self.cookies.append(data)

    @property
    def payloads(self) -> list[bytes]:
        return [p.tobytes() for p in self.got]


class CountingNdd(MemoryNdd):
    """A memory NDD that counts device opens and closes."""

    def __init__(self, name: str, **kw: object) -> None:
        super().__init__(name, physaddr=MAC_A, **kw)  # type: ignore[arg-type]
        self.opens = self.closes = 0

    def _open_device(self) -> None:
        self.opens += 1
        super()._open_device()

    def _close_device(self) -> None:
        self.closes += 1
        super()._close_device()


@pytest.fixture
async def ns(nursery: trio.Nursery) -> NetServices:
    return NetServices(nursery.start_soon, trio.current_time)


def allocated(ns: NetServices, kind: str = "ether") -> MemoryNdd:
    nd = MemoryNdd("en0", kind=kind, physaddr=MAC_A)
    ns.ns_attach(nd)
    ns.ns_alloc("en0")
    return nd


def errno_of(exc: pytest.ExceptionInfo[OSError]) -> int | None:
    return exc.value.errno


# --- the NDD chain -----------------------------------------------------------------------
async def test_attach_same_name_twice_is_eexist(ns: NetServices) -> None:
    # ns_attach refuses a second NDD under a name already on the chain
    ns.ns_attach(MemoryNdd("en0"))
    with pytest.raises(OSError) as exc:
        ns.ns_attach(MemoryNdd("en0"))
    assert errno_of(exc) == errno.EEXIST


async def test_alloc_unknown_name_is_enodev(ns: NetServices) -> None:
    # ns_alloc of a name nobody attached fails with ENODEV
    with pytest.raises(OSError) as exc:
        ns.ns_alloc("nope0")
    assert errno_of(exc) == errno.ENODEV


async def test_alloc_refcount_opens_once_and_last_free_closes(ns: NetServices) -> None:
    # first ns_alloc opens (UP|RUNNING), later ones only count; the last ns_free closes
    nd = CountingNdd("en0")
    ns.ns_attach(nd)
    assert not nd.is_open and nd.ndd_flags & (C.NDD_UP | C.NDD_RUNNING) == 0
    assert ns.ns_alloc("en0") is nd
    assert nd.is_open and nd.ndd_flags & (C.NDD_UP | C.NDD_RUNNING) == C.NDD_UP | C.NDD_RUNNING
    assert nd.nd_receive is not None
    ns.ns_alloc("en0")
    assert (nd.opens, ns.refcount["en0"]) == (1, 2)
    ns.ns_free(nd)
    assert nd.is_open and nd.closes == 0
    ns.ns_free(nd)
    assert not nd.is_open and nd.closes == 1
    assert nd.ndd_flags & (C.NDD_UP | C.NDD_RUNNING) == 0 and nd.nd_receive is None


async def test_free_more_than_alloc_is_einval(ns: NetServices) -> None:
    # ns_free without a matching ns_alloc is EINVAL and leaves the count at 0
    nd = allocated(ns)
    ns.ns_free(nd)
    with pytest.raises(OSError) as exc:
        ns.ns_free(nd)
    assert errno_of(exc) == errno.EINVAL and ns.refcount["en0"] == 0


async def test_detach_while_allocated_is_ebusy(ns: NetServices) -> None:
    # an NDD in use cannot leave the chain; once freed it can, and is then unknown
    nd = allocated(ns)
    with pytest.raises(OSError) as exc:
        ns.ns_detach(nd)
    assert errno_of(exc) == errno.EBUSY
    ns.ns_free(nd)
    ns.ns_detach(nd)
    with pytest.raises(OSError) as exc:
        ns.ns_alloc("en0")
    assert errno_of(exc) == errno.ENODEV
    with pytest.raises(OSError) as exc:
        ns.ns_detach(nd)
    assert errno_of(exc) == errno.ENOENT


async def test_alloc_without_demuxer_is_enoent(ns: NetServices) -> None:
    # an NDD type nobody registered a demuxer for cannot be opened (AIX ns_alloc: ENOENT)
    ns.ns_del_demux(C.NDD_RAWIP)
    ns.ns_attach(MemoryNdd("tun0", kind="rawip"))
    with pytest.raises(OSError) as exc:
        ns.ns_alloc("tun0")
    assert errno_of(exc) == errno.ENOENT


# --- filters and the Ethernet demuxer ----------------------------------------------------
async def test_add_filter_duplicate_ethertype_is_eexist(ns: NetServices) -> None:
    # one user per ethertype; other filter kinds, unsupported types and unallocated NDDs are refused
    nd = allocated(ns)
    flt = NsFilter(C.NS_ETHERTYPE, ethertype=ETHERTYPE_TEST)
    ns.ns_add_filter(nd, flt, Sink().user)
    assert flt in nd.hw_filters   # the device was told (NDD_ADD_FILTER)
    with pytest.raises(OSError) as exc:
        ns.ns_add_filter(nd, NsFilter(C.NS_ETHERTYPE, ethertype=ETHERTYPE_TEST), Sink().user)
    assert errno_of(exc) == errno.EEXIST
    with pytest.raises(OSError) as exc:
        ns.ns_add_filter(nd, NsFilter(C.NS_IPVERSION, version=4), Sink().user)
    assert errno_of(exc) == errno.EINVAL
    other = MemoryNdd("en1")
    ns.ns_attach(other)
    with pytest.raises(OSError) as exc:
        ns.ns_add_filter(other, flt, Sink().user)
    assert errno_of(exc) == errno.ENODEV


async def test_del_filter_frees_the_ethertype(ns: NetServices) -> None:
    # after ns_del_filter the frames go unclaimed and another user may take the type
    nd = allocated(ns)
    flt = NsFilter(C.NS_ETHERTYPE, ethertype=ETHERTYPE_TEST)
    first, second = Sink(), Sink()
    ns.ns_add_filter(nd, flt, first.user)
    ns.ns_del_filter(nd, flt)
    assert flt not in nd.hw_filters
    nd.deliver(PacketBuffer(ether_frame(MAC_A, MAC_B, ETHERTYPE_TEST, b"x" * 46)))
    assert first.got == [] and nd.ndd_nsdemux.nd_dmxstats.nd_nofilter == 1
    with pytest.raises(OSError) as exc:
        ns.ns_del_filter(nd, flt)
    assert errno_of(exc) == errno.ENOENT
    ns.ns_add_filter(nd, flt, second.user)
    nd.deliver(PacketBuffer(ether_frame(MAC_A, MAC_B, ETHERTYPE_TEST, b"y" * 46)))
    assert second.payloads == [b"y" * 46]


async def test_ethertype_filter_strips_header_and_sets_link_addresses(ns: NetServices) -> None:
    # NS_PROTO users get the payload with ll_src/ll_dst; NS_INCLUDE_MAC users the whole frame
    nd = allocated(ns)
    proto, whole = Sink(), Sink(NS_INCLUDE_MAC)
    ns.ns_add_filter(nd, NsFilter(C.NS_ETHERTYPE, ethertype=ETHERTYPE_TEST), proto.user)
    ns.ns_add_filter(nd, NsFilter(C.NS_ETHERTYPE, ethertype=0x0801), whole.user)
    f1 = ether_frame(MAC_A, MAC_B, ETHERTYPE_TEST, b"hello" + bytes(41))
    f2 = ether_frame(MAC_A, MAC_B, 0x0801, b"world" + bytes(41))
    nd.deliver(PacketBuffer(f1))
    nd.deliver(PacketBuffer(f2))
    assert proto.payloads == [b"hello" + bytes(41)] and proto.cookies == ["cookie"]
    assert (proto.got[0].ll_src, proto.got[0].ll_dst) == (MAC_B, MAC_A)
    assert whole.payloads == [f2]
    assert (nd.stats.ndd_ipackets, nd.stats.ndd_ibytes) == (2, len(f1) + len(f2))


async def test_dsap_filter_gets_llc_frames_without_llc_header(ns: NetServices) -> None:
    # 802.3 + 802.2 LLC frames go to the DSAP user, LLC header and Ethernet padding removed
    nd = allocated(ns)
    sink = Sink()
    ns.ns_add_filter(nd, NsFilter(C.NS_8022_LLC_DSAP, dsap=0x42), sink.user)
    nd.deliver(PacketBuffer(llc_frame(MAC_A, MAC_B, b"\x42\x42\x03", b"bpdu")))
    nd.deliver(PacketBuffer(llc_frame(MAC_A, MAC_B, b"\xe0\xe0\x03", b"ipx!")))   # other DSAP
    assert sink.payloads == [b"bpdu"]
    assert sink.got[0].ll_src == MAC_B
    assert nd.ndd_nsdemux.nd_dmxstats.nd_nofilter == 1


async def test_snap_filter_gets_rfc1042_frames_without_snap_header(ns: NetServices) -> None:
    # AA-AA-03 + OUI + type frames go to the SNAP user keyed by (OUI, type); an NS_PROTO_SNAP
    # user has the 8-octet LLC/SNAP header removed (NS_PROTO would leave SNAP: test_aix_ndd.py)
    nd = allocated(ns)
    sink = Sink(C.NS_PROTO_SNAP)
    ns.ns_add_filter(nd, NsFilter(C.NS_8022_LLC_DSAP_SNAP, dsap=0xAA, orgcode=b"\x00\x00\x00",
                                  ethertype=ETHERTYPE_TEST), sink.user)
    snap = b"\xaa\xaa\x03\x00\x00\x00" + ETHERTYPE_TEST.to_bytes(2, "big")
    nd.deliver(PacketBuffer(llc_frame(MAC_A, MAC_B, snap, b"snap payload")))
    other_oui = b"\xaa\xaa\x03\x00\x00\x0c" + ETHERTYPE_TEST.to_bytes(2, "big")
    nd.deliver(PacketBuffer(llc_frame(MAC_A, MAC_B, other_oui, b"cisco")))
    assert sink.payloads == [b"snap payload"]
    assert nd.ndd_nsdemux.nd_dmxstats.nd_nofilter == 1


async def test_llc_frame_shorter_than_its_header_is_an_error(ns: NetServices) -> None:
    # an 802.3 length field too small for the 3-octet LLC header is a bad frame, not a packet
    nd = allocated(ns)
    sink = Sink()
    ns.ns_add_filter(nd, NsFilter(C.NS_8022_LLC_DSAP, dsap=0x42), sink.user)
    frame = MAC_A + MAC_B + b"\x00\x01" + b"\x42\x42\x03" + bytes(43)   # length 1, then padding
    nd.deliver(PacketBuffer(frame))
    assert sink.got == [] and nd.stats.ndd_ibadpackets == 1


async def test_tap_gets_a_copy_of_every_frame(ns: NetServices) -> None:
    # NS_TAP sees each frame whole (even ones dropped or unclaimed later), as its own copy
    nd = allocated(ns)
    tap, ip = Sink(), Sink()
    ns.ns_add_filter(nd, NsFilter(C.NS_TAP), tap.user)
    ns.ns_add_filter(nd, NsFilter(C.NS_ETHERTYPE, ethertype=0x0800), ip.user)
    with pytest.raises(OSError) as exc:
        ns.ns_add_filter(nd, NsFilter(C.NS_TAP), tap.user)
    assert errno_of(exc) == errno.EEXIST
    frames = [ether_frame(MAC_A, MAC_B, 0x0800, b"\x45" + bytes(45)),
              ether_frame(MAC_A, MAC_B, ETHERTYPE_TEST, bytes(46)),      # no filter
              ether_frame(MAC_OTHER, MAC_B, 0x0800, bytes(46))]          # not for us
    for f in frames:
        nd.deliver(PacketBuffer(f))
    assert tap.payloads == frames
    assert ip.payloads == [b"\x45" + bytes(45)]           # the IP user's header pull left the tap copy whole
    ns.ns_del_filter(nd, NsFilter(C.NS_TAP), tap.user)
    nd.deliver(PacketBuffer(frames[0]))
    assert len(tap.got) == 3 and len(ip.got) == 2


async def test_unclaimed_runt_and_foreign_frames_are_counted(ns: NetServices) -> None:
    # no filter -> nd_dmxstats.nd_nofilter; shorter than a header -> ndd_ibadpackets; other
    # unicast MAC -> ndd_ipackets_drop
    nd = allocated(ns)
    nd.deliver(PacketBuffer(ether_frame(MAC_A, MAC_B, ETHERTYPE_TEST, bytes(46))))
    nd.deliver(PacketBuffer(MAC_A + MAC_B))                                    # 12-octet runt
    nd.deliver(PacketBuffer(ether_frame(MAC_OTHER, MAC_B, ETHERTYPE_TEST, bytes(46))))
    s = nd.stats
    assert (s.ndd_ipackets, s.ndd_ibadpackets, s.ndd_ipackets_drop, s.ndd_ierrors) == (3, 1, 1, 0)
    assert nd.ndd_nsdemux.nd_dmxstats.nd_nofilter == 1


async def test_promiscuous_mode_accepts_other_unicast(ns: NetServices) -> None:
    # frames for another station are dropped unless NDD_PROMISCUOUS_ON (and again after OFF)
    nd = allocated(ns)
    sink = Sink()
    ns.ns_add_filter(nd, NsFilter(C.NS_ETHERTYPE, ethertype=ETHERTYPE_TEST), sink.user)
    frame = ether_frame(MAC_OTHER, MAC_B, ETHERTYPE_TEST, b"p" * 46)
    nd.deliver(PacketBuffer(frame))
    assert sink.got == [] and nd.stats.ndd_ipackets_drop == 1
    assert nd.ndd_ctl(C.NDD_PROMISCUOUS_ON) == 0 and nd.ndd_flags & C.NDD_PROMISC
    nd.deliver(PacketBuffer(frame))
    assert sink.payloads == [b"p" * 46]
    nd.ndd_ctl(C.NDD_PROMISCUOUS_OFF)
    nd.deliver(PacketBuffer(frame))
    assert len(sink.got) == 1 and nd.stats.ndd_ipackets_drop == 2


async def test_broadcast_is_accepted_and_counted_by_the_demuxer(ns: NetServices) -> None:
    # the broadcast MAC always passes the address filter and marks the packet ll_bcast
    nd = allocated(ns)
    sink = Sink()
    ns.ns_add_filter(nd, NsFilter(C.NS_ETHERTYPE, ethertype=ETHERTYPE_TEST), sink.user)
    nd.deliver(PacketBuffer(ether_frame(MAC_BCAST, MAC_B, ETHERTYPE_TEST, bytes(46))))
    dmx = nd.ndd_nsdemux.nd_dmxstats
    assert len(sink.got) == 1 and sink.got[0].ll_bcast and (dmx.nd_bcast, dmx.nd_mcast) == (1, 0)


# --- raw IP demuxer ---------------------------------------------------------------------
async def test_rawip_demuxer_filters_on_ip_version(ns: NetServices) -> None:
    # NS_IPVERSION 4 gets IPv4 packets untouched; IPv6 is unclaimed; an empty frame is an error
    nd = allocated(ns, "rawip")
    v4, tap = Sink(), Sink()
    ns.ns_add_filter(nd, NsFilter(C.NS_IPVERSION, version=4), v4.user)
    ns.ns_add_filter(nd, NsFilter(C.NS_TAP), tap.user)
    with pytest.raises(OSError) as exc:
        ns.ns_add_filter(nd, NsFilter(C.NS_ETHERTYPE, ethertype=0x0800), Sink().user)
    assert errno_of(exc) == errno.EINVAL
    ip4, ip6 = b"\x45" + bytes(19), b"\x60" + bytes(39)
    for f in (ip4, ip6, b""):
        nd.deliver(PacketBuffer(f))
    assert v4.payloads == [ip4]
    assert tap.payloads == [ip4, ip6, b""]
    assert (nd.ndd_nsdemux.nd_dmxstats.nd_nofilter, nd.stats.ndd_ibadpackets) == (1, 1)


# --- ndd_ctl -----------------------------------------------------------------------------
async def test_ndd_ctl_stats_and_unknown_command(ns: NetServices) -> None:
    # GET_STATS returns the genstats dict, CLEAR_STATS zeroes it, unknown commands are EOPNOTSUPP
    # (the MIB commands have handlers now: tests/unit/test_aix_ndd.py)
    nd = allocated(ns)
    nd.deliver(PacketBuffer(ether_frame(MAC_A, MAC_B, ETHERTYPE_TEST, bytes(46))))
    stats = nd.ndd_ctl(C.NDD_GET_STATS)
    assert isinstance(stats, dict) and stats["ndd_ipackets"] == 1 and stats["ndd_ibytes"] == 60
    assert "nd_nofilter" not in stats and nd.ndd_nsdemux.nd_dmxstats.nd_nofilter == 1   # the demuxer's
    assert nd.ndd_ctl(C.NDD_CLEAR_STATS) == 0
    assert set(nd.ndd_ctl(C.NDD_GET_STATS).values()) == {0}
    for cmd in (0x77, 0x11, C.NDD_DEVICE_SPECIFIC + 1):
        with pytest.raises(OSError) as exc:
            nd.ndd_ctl(cmd)
        assert errno_of(exc) == errno.EOPNOTSUPP


async def test_enable_disable_multicast_address(ns: NetServices) -> None:
    # an enabled multicast MAC passes the address filter; disabled it is dropped again
    nd = allocated(ns)
    sink = Sink()
    ns.ns_add_filter(nd, NsFilter(C.NS_ETHERTYPE, ethertype=ETHERTYPE_TEST), sink.user)
    frame = ether_frame(MCAST_MAC, MAC_B, ETHERTYPE_TEST, b"m" * 46)
    nd.deliver(PacketBuffer(frame))
    assert sink.got == [] and nd.stats.ndd_ipackets_drop == 1
    assert nd.ndd_ctl(C.NDD_ENABLE_ADDRESS, MCAST_MAC) == 0
    nd.deliver(PacketBuffer(frame))
    assert sink.payloads == [b"m" * 46] and nd.ndd_nsdemux.nd_dmxstats.nd_mcast == 1
    assert nd.ndd_ctl(C.NDD_DISABLE_ADDRESS, MCAST_MAC) == 0
    nd.deliver(PacketBuffer(frame))
    assert len(sink.got) == 1 and nd.stats.ndd_ipackets_drop == 2


@pytest.mark.parametrize("cmd, arg, code", [
    (C.NDD_ENABLE_ADDRESS, MAC_OTHER, errno.EINVAL),        # unicast is not a group address
    (C.NDD_ENABLE_ADDRESS, b"\x01\x00\x5e", errno.EINVAL),  # wrong length
    (C.NDD_DISABLE_ADDRESS, MCAST_MAC, errno.ENOENT),       # never enabled
])
async def test_address_ctl_errors(ns: NetServices, cmd: int, arg: bytes, code: int) -> None:
    # ENABLE/DISABLE_ADDRESS validate their argument with the AIX errnos
    nd = allocated(ns)
    with pytest.raises(OSError) as exc:
        nd.ndd_ctl(cmd, arg)
    assert errno_of(exc) == code and nd.alt_addrs == {}


async def test_address_ctl_on_rawip_is_eopnotsupp(ns: NetServices) -> None:
    # a layer-3 device has no link-layer address filter
    nd = allocated(ns, "rawip")
    with pytest.raises(OSError) as exc:
        nd.ndd_ctl(C.NDD_ENABLE_ADDRESS, MCAST_MAC)
    assert errno_of(exc) == errno.EOPNOTSUPP


# --- status ------------------------------------------------------------------------------
async def test_status_blocks_reach_only_subscribed_codes(ns: NetServices) -> None:
    # ns_add_status users see the codes in their mask (default: all); link down/hard fail update flags
    nd = allocated(ns)
    seen: dict[str, list[tuple[int, tuple[int, ...]]]] = {"status": [], "fail": [], "all": []}

    def user(key: str):
        return lambda ndd, blk: seen[key].append((blk.code, blk.option))

    fns = {k: user(k) for k in seen}
    ns.ns_add_status(nd, fns["status"], C.NDD_STATUS)
    ns.ns_add_status(nd, fns["fail"], C.NDD_HARD_FAIL)
    ns.ns_add_status(nd, fns["all"])
    with pytest.raises(OSError) as exc:
        ns.ns_add_status(nd, fns["all"])
    assert errno_of(exc) == errno.EEXIST
    nd.report_status(StatusBlock(C.NDD_STATUS, (C.NDD_LINK_DOWN,)))
    assert not nd.ndd_flags & C.NDD_RUNNING
    assert nd.ndd_output(PacketBuffer(bytes(60))) == errno.ENETDOWN and nd.stats.ndd_opackets_drop == 1
    nd.report_status(StatusBlock(C.NDD_STATUS, (C.NDD_LINK_UP,)))
    assert nd.ndd_flags & C.NDD_RUNNING
    nd.report_status(StatusBlock(C.NDD_HARD_FAIL, (7,)))
    assert nd.ndd_flags & C.NDD_DEAD and not nd.ndd_flags & C.NDD_RUNNING
    down, up = (C.NDD_STATUS, (C.NDD_LINK_DOWN,)), (C.NDD_STATUS, (C.NDD_LINK_UP,))
    assert seen["status"] == [down, up]
    assert seen["fail"] == [(C.NDD_HARD_FAIL, (7,))]
    assert seen["all"] == [down, up, (C.NDD_HARD_FAIL, (7,))]


async def test_del_status(ns: NetServices) -> None:
    # ns_del_status stops delivery; an unknown user is ENOENT
    nd = allocated(ns)
    got: list[int] = []
    fn = lambda ndd, blk: got.append(blk.code)  # noqa: E731
    with pytest.raises(OSError) as exc:
        ns.ns_del_status(nd, fn)
    assert errno_of(exc) == errno.ENOENT
    ns.ns_add_status(nd, fn)
    nd.report_status(StatusBlock(C.NDD_BAD_PKTS))
    ns.ns_del_status(nd, fn)
    nd.report_status(StatusBlock(C.NDD_BAD_PKTS))
    assert got == [C.NDD_BAD_PKTS]


# --- demuxers ----------------------------------------------------------------------------
class CountingDemuxer(Demuxer):
    """A demuxer for a private NDD type: every frame goes to the NS_TAP users."""
    filter_types = frozenset({C.NS_TAP})

    def __init__(self) -> None:
        super().__init__()
        self.frames = 0

    def receive(self, ndd: Ndd, pkt: PacketBuffer) -> None:
        self.frames += 1
        self._tap(ndd, pkt)


async def test_add_demux_duplicate_is_eexist_and_new_type_works(ns: NetServices) -> None:
    # one demuxer per NDD type; a new type's demuxer becomes nd_receive on ns_alloc
    with pytest.raises(OSError) as exc:
        ns.ns_add_demux(C.NDD_ISO88023, CountingDemuxer())
    assert errno_of(exc) == errno.EEXIST
    with pytest.raises(OSError) as exc:
        ns.ns_del_demux(0x7777)
    assert errno_of(exc) == errno.ENOENT
    demux = CountingDemuxer()
    toy_type = 0x7777                    # a third party's NDD type (NDD_ATM has its own demuxer)
    ns.ns_add_demux(toy_type, demux)
    nd = MemoryNdd("toy0", kind="rawip")
    nd.ndd_type = toy_type
    ns.ns_attach(nd)
    ns.ns_alloc("toy0")
    sink = Sink()
    ns.ns_add_filter(nd, NsFilter(C.NS_TAP), sink.user)
    nd.deliver(PacketBuffer(b"cell"))
    assert demux.frames == 1 and sink.payloads == [b"cell"]


# --- memory link and a running Stack -----------------------------------------------------
async def test_memory_link_carries_copies_between_ends(ns: NetServices) -> None:
    # a frame output on one end arrives (as a copy, by the receiver's task) on the other end
    a, b = link_pair()
    for nd in (a, b):
        ns.ns_attach(nd)
        ns.ns_alloc(nd.ndd_name)
    sink = Sink()
    ns.ns_add_filter(b, NsFilter(C.NS_ETHERTYPE, ethertype=ETHERTYPE_TEST), sink.user)
    buf = bytearray(ether_frame(MAC_B, MAC_A, ETHERTYPE_TEST, b"q" * 46))
    assert a.ndd_output(PacketBuffer(buf)) == 0
    assert sink.got == []                    # never delivered re-entrantly from ndd_output
    buf[14:] = bytes(46)                     # the sender reuses its buffer
    await trio.testing.wait_all_tasks_blocked()
    assert sink.payloads == [b"q" * 46]
    assert (a.stats.ndd_opackets, a.stats.ndd_obytes, b.stats.ndd_ipackets) == (1, 60, 1)


async def test_memory_link_queue_overflow_and_closed_ends(ns: NetServices) -> None:
    # a full receive queue is ENOBUFS (ndd_xmitque_ovf); an unopened NDD is ENETDOWN (ndd_opackets_drop)
    # and so is one with no peer
    a, b = link_pair(queue_len=2)
    frame = ether_frame(MAC_B, MAC_A, ETHERTYPE_TEST, bytes(46))
    assert a.ndd_output(PacketBuffer(frame)) == errno.ENETDOWN and a.stats.ndd_opackets_drop == 1
    for nd in (a, b):
        ns.ns_attach(nd)
        ns.ns_alloc(nd.ndd_name)
    results = [a.ndd_output(PacketBuffer(frame)) for _ in range(3)]
    assert results == [0, 0, errno.ENOBUFS] and a.stats.ndd_xmitque_ovf == 1
    # the frames on the cable are the sender's transmit queue: two now, the most it has held
    assert (a.genstats()["ndd_xmitque_cur"], a.stats.ndd_xmitque_max) == (2, 2)
    await trio.testing.wait_all_tasks_blocked()
    assert b.stats.ndd_ipackets == 2 and b.stats.ndd_recvintr >= 1
    assert (a.genstats()["ndd_xmitque_cur"], a.stats.ndd_xmitque_max) == (0, 2)
    lone = MemoryNdd("en9")
    ns.ns_attach(lone)
    ns.ns_alloc("en9")
    assert lone.ndd_output(PacketBuffer(frame)) == errno.ENETDOWN


async def test_running_stack_owns_its_filters() -> None:
    # inside a Stack the IPv4/ARP ethertypes are claimed and the NDD is busy until removed
    async with Stack("s", StackConfig(plugins=False)) as st:
        a, _b = link_pair()
        st.add_interface(a, "10.0.0.1/24")
        with pytest.raises(OSError) as exc:
            st.ns.ns_add_filter(a, NsFilter(C.NS_ETHERTYPE, ethertype=0x0800), Sink().user)
        assert errno_of(exc) == errno.EEXIST
        with pytest.raises(OSError) as exc:
            st.ns.ns_detach(a)
        assert errno_of(exc) == errno.EBUSY
        st.remove_interface("m0")
        assert not a.is_open and "m0" not in st.ns.ndds


async def test_output_counts_group_addressed_frames(ns: NetServices) -> None:
    # ndd_ifOut{Bcast,Mcast,Ucast}Pkts count what was sent to each kind of address; the far
    # end's demuxer counts what it received in nd_bcast/nd_mcast
    a, b = link_pair()
    for nd in (a, b):
        ns.ns_attach(nd)
        ns.ns_alloc(nd.ndd_name)
    for dst in (MAC_BCAST, MCAST_MAC, MAC_B):
        assert a.ndd_output(PacketBuffer(ether_frame(dst, MAC_A, ETHERTYPE_TEST, bytes(46)))) == 0
    await trio.testing.wait_all_tasks_blocked()
    s = a.stats
    assert (s.ndd_opackets, s.ndd_ifOutBcastPkts, s.ndd_ifOutMcastPkts, s.ndd_ifOutUcastPkts) == (3, 1, 1, 1)
    dmx = b.ndd_nsdemux.nd_dmxstats
    assert (dmx.nd_bcast, dmx.nd_mcast, b.stats.ndd_ipackets_drop) == (1, 0, 1)   # b never enabled MCAST_MAC
