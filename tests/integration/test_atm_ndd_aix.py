"""Issue 16 point 6: the ATM NDD interface of AIX's <sys/cdli_atmuser.h> on the emulated
adapter -- ATM_VC_OPEN / ATM_VC_CLOSE / ATM_VC_ACK / ATM_VC_LOCAL / ATM_VS_Q_LEN with their
structures, the ATM_VC_*_DONE status blocks, the 6-octet physical address, atm_genstats by
the header's names, tunstack's own commands above ATM_DEVICE_SPECIFIC.  The values are
checked against the header in tests/unit/test_aix_ndd.py's table."""
from __future__ import annotations

import errno
from dataclasses import fields

import pytest
import trio
import trio.testing

from drivers.atm.adapter import AtmNdd
from drivers.atm.phy import PhyPair
from ndd import constants as C
from ndd.atm import (
    AtmAal5,
    AtmAalParm,
    AtmConnId,
    AtmGenStats,
    AtmTrafficDes,
    AtmVcAckReq,
    AtmVcLocalReq,
    AtmVcOpenReq,
    AtmVcTxqLen,
    VcParams,
)
from ndd.demux import NsFilter, NsUser
from ndd.ndd import Ndd, StatusBlock
from ndd.services import NetServices, NsComStatus, NsStatuser

AAL = AtmAalParm(AtmAal5(9188, 9188))

# atm_genstats of <sys/cdli_atmuser.h>, in order (the _msw/_lsw halves one name each)
ATM_GENSTATS = ["device_type", "dev_elapsed_time", "ndd_flags", "atm_macadr", "rcv_cells", "dropped_cells",
                "crc_errors", "oversized_sdus", "total_no_rcv_buf", "incomplete_pkts", "xmt_cells",
                "sw_txq_len", "hw_txq_len", "total_no_xmt_buf", "loss_of_signal", "restart_count",
                "atm_vc_inuse", "atm_vc_max", "atm_vc_fail", "uni_ver"]


@pytest.fixture
async def ns(nursery: trio.Nursery) -> NetServices:
    return NetServices(nursery.start_soon, trio.current_time)


class Done:
    """An ns_statuser on the device-specific codes (mask NDD_STAT_BLOCK: each *_DONE has it)."""

    def __init__(self, ns: NetServices, nd: Ndd) -> None:
        self.blocks: list[tuple[int, tuple[int, ...]]] = []
        ns.ns_add_status(nd, NsComStatus(C.NS_STATUS_MASK, C.NDD_STAT_BLOCK), NsStatuser(self.isr))

    def isr(self, nd: Ndd, block: StatusBlock, data: object) -> None:
        self.blocks.append((block.code, block.option))


class Sink:
    def __init__(self, ns: NetServices, nd: Ndd, vpi: int, vci: int) -> None:
        self.got: list[bytes] = []
        ns.ns_add_filter(nd, NsFilter(C.NS_ATM_VC, vpi=vpi, vci=vci),
                         NsUser(lambda n, pkt, d: self.got.append(pkt.tobytes())))


def pair(ns: NetServices) -> tuple[AtmNdd, AtmNdd]:
    phys = PhyPair()
    a, b = AtmNdd("atm0", phys.a), AtmNdd("atm1", phys.b)
    for nd in (a, b):
        ns.ns_attach(nd)
        ns.ns_alloc(nd.ndd_name)
    return a, b


UNSHAPED = AtmTrafficDes()


def open_req(handle: int, vci: int, *, flags: int = C.VCOPEN_CID, aal: AtmAalParm = AAL,
             traffic: AtmTrafficDes = UNSHAPED) -> AtmVcOpenReq:
    return AtmVcOpenReq(handle, flags, aal, traffic, AtmConnId(0, vci))


async def settle(*nds: AtmNdd) -> None:
    for nd in nds:
        await nd.wait_tx_idle()
    await trio.testing.wait_all_tasks_blocked()


def errno_of(exc: pytest.ExceptionInfo[OSError]) -> int | None:
    return exc.value.errno


async def test_vc_open_close_by_handle_with_done_blocks(ns: NetServices) -> None:
    # ATM_VC_OPEN (VCOPEN_CID, conn_id 0/100, AAL5 sizes) opens the VC under the caller's
    # vc_handle and reports ATM_VC_OPEN_DONE (handle, 0); SDUs flow; ATM_VC_CLOSE by handle
    # closes it and reports ATM_VC_CLOSE_DONE
    a, b = pair(ns)
    done_a = Done(ns, a)
    for nd in (a, b):
        assert nd.ndd_ctl(C.ATM_VC_OPEN, open_req(7, 100)) == 0
    sink = Sink(ns, b, 0, 100)
    assert done_a.blocks == [(C.ATM_VC_OPEN_DONE, (7, 0))]
    assert a.ndd_ctl(C.NDD_ATM_LIST_VCS) == [(0, 100)]
    assert a.atm_output(0, 100, b"over a handle's VC") == 0
    await settle(a, b)
    assert sink.got == [b"over a handle's VC"]
    assert a.ndd_ctl(C.ATM_VC_CLOSE, 7) == 0
    assert done_a.blocks[-1] == (C.ATM_VC_CLOSE_DONE, (7, 0)) and a.ndd_ctl(C.NDD_ATM_LIST_VCS) == []
    with pytest.raises(OSError) as exc:
        a.ndd_ctl(C.ATM_VC_CLOSE, 7)
    assert errno_of(exc) == errno.ENOENT
    # the handle is free again, and closing by (vpi, vci) frees it too
    a.ndd_ctl(C.ATM_VC_OPEN, open_req(7, 100))
    a.ndd_ctl(C.NDD_ATM_CLOSE_VC, (0, 100))
    assert a.handles == {}


async def test_vc_open_refusals_count_atm_vc_fail(ns: NetServices) -> None:
    a, _b = pair(ns)
    a.ndd_ctl(C.ATM_VC_OPEN, open_req(1, 100))
    cases = [
        (open_req(2, 101, flags=C.VCOPEN_SVC), errno.EINVAL),          # no VCOPEN_CID: no call manager
        (open_req(1, 102), errno.EEXIST),                               # handle in use
        (open_req(3, 100), errno.EADDRINUSE),                           # VC in use
        (open_req(4, 5), errno.EINVAL),                                 # a reserved VCI
        (open_req(5, 103, aal=AtmAalParm(AtmAal5(9188, 9188), aal_type=1)), errno.EINVAL),   # CM_AAL_1
        (open_req(6, 104, aal=AtmAalParm(AtmAal5(0, 9188))), errno.EINVAL),                  # size 0
        (AtmVcOpenReq(8, C.VCOPEN_CID, AAL, AtmTrafficDes(), AtmConnId(0, 105), checksum_prot=C.CIP_CHECKSUM),
         errno.EOPNOTSUPP),
    ]
    for req, err in cases:
        with pytest.raises(OSError) as exc:
            a.ndd_ctl(C.ATM_VC_OPEN, req)
        assert errno_of(exc) == err, req
    with pytest.raises(OSError) as exc:
        a.ndd_ctl(C.ATM_VC_OPEN, VcParams(0, 106))                       # not an atm_vc_open_req
    assert errno_of(exc) == errno.EINVAL
    st = a.ndd_ctl(C.NDD_GET_STATS)
    assert (st["atm_vc_fail"], st["atm_vc_inuse"], st["atm_vc_max"]) == (len(cases), 1, 1)


async def test_aal_sizes_and_traffic_des_shape_the_vc(ns: NetServices) -> None:
    # aal5 fwd_max_sdu_size limits what we send, bak_max_sdu_size what we accept; the forward
    # peak rate in Kbit/s becomes the VC's cell rate (1 cell = 424 bits)
    a, b = pair(ns)
    req = open_req(1, 100, aal=AtmAalParm(AtmAal5(100, 50)), traffic=AtmTrafficDes(fwd_peakrate_hp=424))
    a.ndd_ctl(C.ATM_VC_OPEN, req)
    b.ndd_ctl(C.ATM_VC_OPEN, open_req(1, 100, aal=AtmAalParm(AtmAal5(100, 50))))
    stats = a.ndd_ctl(C.NDD_ATM_GET_VC_STATS, (0, 100))
    assert (stats["max_sdu"], stats["pcr"]) == (50, 1000)
    assert a.atm_output(0, 100, bytes(101)) == errno.EMSGSIZE
    sink = Sink(ns, b, 0, 100)
    assert a.atm_output(0, 100, bytes(80)) == 0        # fits a's send size, not b's receive size
    await settle(a, b)
    assert sink.got == [] and b.ndd_ctl(C.NDD_GET_STATS)["oversized_sdus"] == 1
    assert AtmTrafficDes(fwd_peakrate_hp=424, best_effort=1).pcr() == 0.0
    assert AtmTrafficDes().pcr() == 0.0                   # NOT_SPECIFIED_L: unshaped


async def test_vc_ack_sets_an_svc_vcs_aal_parameters(ns: NetServices) -> None:
    a, _b = pair(ns)
    done = Done(ns, a)
    a.ndd_ctl(C.ATM_VC_OPEN, open_req(3, 200, flags=C.VCOPEN_CID | C.VCOPEN_SVC))
    a.ndd_ctl(C.ATM_VC_ACK, AtmVcAckReq(3, AtmConnId(0, 200), AtmAalParm(AtmAal5(1500, 1000))))
    assert done.blocks[-1] == (C.ATM_VC_ACK_DONE, (3, 0))
    assert a.ndd_ctl(C.NDD_ATM_GET_VC_STATS, (0, 200))["max_sdu"] == 1000
    assert a.atm_output(0, 200, bytes(1501)) == errno.EMSGSIZE
    a.ndd_ctl(C.ATM_VC_OPEN, open_req(4, 201))                          # a PVC's: no ACK
    for req in (AtmVcAckReq(4, AtmConnId(0, 201), AAL),                 # not an SVC's VC
                AtmVcAckReq(3, AtmConnId(0, 201), AAL)):                # conn_id not the handle's
        with pytest.raises(OSError) as exc:
            a.ndd_ctl(C.ATM_VC_ACK, req)
        assert errno_of(exc) == errno.EINVAL
    with pytest.raises(OSError) as exc:
        a.ndd_ctl(C.ATM_VC_ACK, AtmVcAckReq(9, AtmConnId(0, 200), AAL))
    assert errno_of(exc) == errno.ENOENT


async def test_vc_local_loops_two_vcs_inside_the_adapter(ns: NetServices) -> None:
    # ATM_VC_LOCAL: an SDU sent on one handle's VC is received on the other's, both ways,
    # and no cell reaches the line
    a, b = pair(ns)
    done = Done(ns, a)
    a.ndd_ctl(C.ATM_VC_OPEN, open_req(1, 100))
    a.ndd_ctl(C.ATM_VC_OPEN, open_req(2, 101))
    a.ndd_ctl(C.ATM_VC_LOCAL, AtmVcLocalReq(1, 2))
    assert done.blocks[-1] == (C.ATM_VC_LOCAL_DONE, (1, 2))
    on_100, on_101 = Sink(ns, a, 0, 100), Sink(ns, a, 0, 101)
    assert a.atm_output(0, 100, b"to 101") == 0 and a.atm_output(0, 101, b"to 100") == 0
    await settle(a, b)
    assert (on_101.got, on_100.got) == ([b"to 101"], [b"to 100"])
    assert a.ndd_ctl(C.NDD_GET_STATS)["xmt_cells"] == 0
    with pytest.raises(OSError) as exc:
        a.ndd_ctl(C.ATM_VC_LOCAL, AtmVcLocalReq(1, 1))
    assert errno_of(exc) == errno.EINVAL
    a.ndd_ctl(C.ATM_VC_CLOSE, 2)                      # the loop goes with either VC
    assert a.vcs[(0, 100)].local is None


async def test_vs_q_len_bounds_a_vcs_queue(ns: NetServices) -> None:
    a, _b = pair(ns)
    a.ndd_ctl(C.NDD_ATM_SET_LINE_RATE, 0)
    a.ndd_ctl(C.ATM_VC_OPEN, open_req(1, 100, traffic=AtmTrafficDes(fwd_peakrate_hp=1)))   # ~2.4 cells/s
    a.ndd_ctl(C.ATM_VS_Q_LEN, AtmVcTxqLen(1, 2))
    results = [a.atm_output(0, 100, bytes(40)) for _ in range(4)]
    assert results.count(errno.ENOBUFS) >= 1 and len(a.vcs[(0, 100)].txq) <= 2
    st = a.ndd_ctl(C.NDD_GET_STATS)
    assert st["total_no_xmt_buf"] == results.count(errno.ENOBUFS) == st["ndd_xmitque_ovf"]
    for cmd in (C.ATM_TXBUF_REG, C.ATM_TXBUF_GET):
        with pytest.raises(OSError) as exc:
            a.ndd_ctl(cmd, 1)
        assert errno_of(exc) == errno.EOPNOTSUPP


async def test_physaddr_and_atm_genstats_names(ns: NetServices) -> None:
    a, b = pair(ns)
    assert a.ndd_addrlen == C.ATM_PHYSADDR_LEN == len(a.ndd_physaddr) and a.ndd_physaddr != b.ndd_physaddr
    assert AtmNdd("atm9", physaddr=bytes.fromhex("020000a7a7a7")).ndd_physaddr == bytes.fromhex("020000a7a7a7")
    with pytest.raises(ValueError):
        AtmNdd("atm9", physaddr=bytes(20))
    counters = [f.name for f in fields(AtmGenStats)]      # the header's counters, in its order
    assert counters == [n for n in ATM_GENSTATS if n in counters] and len(counters) == 12
    for nd in (a, b):
        nd.ndd_ctl(C.ATM_VC_OPEN, open_req(1, 100))
    a.atm_output(0, 100, bytes(100))
    await settle(a, b)
    st = b.ndd_ctl(C.NDD_GET_STATS)
    names = list(st)
    first = names.index("device_type")
    assert names[first:first + len(ATM_GENSTATS)] == ATM_GENSTATS       # after ndd_genstats, in order
    assert all(n.startswith("ndd_") for n in names[:first])
    got = (st["rcv_cells"], st["atm_macadr"], st["atm_vc_inuse"], st["uni_ver"])
    assert got == (3, b.ndd_physaddr, 1, C.AUTO_DETECT)
    assert st["ndd_flags"] == b.ndd_flags and st["dev_elapsed_time"] == st["ndd_elapsed_time"]
    # a cell for no VC is a dropped cell; the line going down is a loss of signal
    b.ndd_ctl(C.ATM_VC_CLOSE, 1)
    a.atm_output(0, 100, b"x")
    await settle(a, b)
    b._phy_status(False)
    st = b.ndd_ctl(C.NDD_GET_STATS)
    assert (st["dropped_cells"], st["unknown_vc"], st["loss_of_signal"]) == (1, 1, 1)


async def test_done_codes_do_not_reach_hard_fail_users_by_accident(ns: NetServices) -> None:
    # the *_DONE codes are not one bit each: a mask of NDD_HARD_FAIL (0x1) matches
    # ATM_VC_CLOSE_DONE (0x100001) by AIX's `code & mask` rule, as the header warns; users of
    # the device-specific codes ask with NDD_STAT_BLOCK and compare the code
    a, _b = pair(ns)
    hard: list[int] = []
    ns.ns_add_status(a, NsComStatus(C.NS_STATUS_MASK, C.NDD_HARD_FAIL),
                     NsStatuser(lambda nd, block, d: hard.append(block.code)))
    a.ndd_ctl(C.ATM_VC_OPEN, open_req(1, 100))
    a.ndd_ctl(C.ATM_VC_CLOSE, 1)
    assert hard == [C.ATM_VC_CLOSE_DONE]
    assert not a.ndd_flags & C.NDD_DEAD              # a device-specific code leaves ndd_flags alone


async def test_own_commands_sit_above_atm_device_specific() -> None:
    ours = [C.NDD_ATM_OPEN_VC, C.NDD_ATM_CLOSE_VC, C.NDD_ATM_GET_VC_STATS, C.NDD_ATM_SET_LINE_RATE,
            C.NDD_ATM_OAM_LOOPBACK, C.NDD_ATM_LIST_VCS, C.NDD_ATM_CLOSE_VC_DRAIN]
    aix = [C.ATM_VC_OPEN, C.ATM_VC_CLOSE, C.ATM_VC_ACK, C.ATM_VC_LOCAL, C.ATM_TXBUF_REG, C.ATM_TXBUF_GET,
           C.ATM_VS_Q_LEN]
    assert min(ours) > C.ATM_DEVICE_SPECIFIC > max(aix) and len(set(ours)) == len(ours)
    nd = AtmNdd("atm0")
    nd.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(0, 100))
    assert nd.ndd_ctl(C.NDD_ATM_LIST_VCS) == [(0, 100)]
    with pytest.raises(OSError) as exc:
        nd.ndd_ctl(C.ATM_DEVICE_SPECIFIC)            # no command of ours is ATM_DEVICE_SPECIFIC itself
    assert errno_of(exc) == errno.EOPNOTSUPP
