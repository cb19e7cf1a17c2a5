"""Issue 16, points 1-6 (point 6's adapter: tests/integration/test_atm_ndd_aix.py) and the
values of points 7-8 (their behaviour: tests/integration/test_atm_sockets.py, test_atm_svc.py,
test_atm_aix_samples.py): the NDD
layer as AIX CDLI defines it -- status codes as mask bits, ns_add_status/ns_del_status with
ns_com_status/ns_statuser, NDD_HARD_FAIL reason codes, pkt_format and its stripping rules,
ns_user's protoq/netisr/ifp, reference-counted address control (all-multicast,
NDD_ALTADDRS), ns_alloc's ENOENT, ns_free leaving filters to their owner, the generic MIB,
the NDD structure's fields and ndd_genstats under AIX's names, nd_dmxstats kept by the
demuxer, capabilities as ndd_flags, the values of the ATM NDD interface."""
from __future__ import annotations

import errno
from typing import Any

import pytest

from ndd import constants as C
from ndd.demux import IfQueue, NsFilter, NsUser
from ndd.ndd import Ndd, StatusBlock, hard_fail
from ndd.pktbuf import PacketBuffer
from ndd.services import NetServices, NsComStatus, NsStatuser

MAC_US = bytes.fromhex("020000000001")
MAC_PEER = bytes.fromhex("020000000002")
BCAST = b"\xff" * 6
MCAST = bytes.fromhex("01005e010203")
ETHERTYPE_TEST = 0x88B5

# name -> (value, where it comes from).  <sys/ndd.h> and <sys/cdli.h> are AIX 5.3's
# (bos53X src/bos/kernel/sys/ndd.h 1.56.1.6); "(tunstack)" marks our own values.
AIX_VALUES: dict[str, tuple[int, str]] = {
    # status block codes, one bit each (<sys/ndd.h>; the 1993 header had 1..6)
    "NDD_HARD_FAIL": (0x1, "<sys/ndd.h>"),
    "NDD_LIMBO_ENTER": (0x2, "<sys/ndd.h>"),
    "NDD_LIMBO_EXIT": (0x4, "<sys/ndd.h>"),
    "NDD_CONNECTED": (0x8, "<sys/ndd.h>"),
    "NDD_STATUS": (0x10, "<sys/ndd.h>"),
    "NDD_BAD_PKTS": (0x20, "<sys/ndd.h>"),
    "NDD_STAT_BLOCK": (0x100000, "<sys/ndd.h>"),
    # reason codes (<sys/ndd.h>)
    "NDD_ADAP_CHECK": (0x1, "<sys/ndd.h>"),
    "NDD_BUS_ERROR": (0x2, "<sys/ndd.h>"),
    "NDD_CMD_FAIL": (0x3, "<sys/ndd.h>"),
    "NDD_PIO_FAIL": (0x4, "<sys/ndd.h>"),
    "NDD_UCODE_FAIL": (0x5, "<sys/ndd.h>"),
    "NDD_TX_ERROR": (0x6, "<sys/ndd.h>"),
    "NDD_TX_TIMEOUT": (0x7, "<sys/ndd.h>"),
    "NDD_RCV_ERROR": (0x8, "<sys/ndd.h>"),
    "NDD_AUTO_RMV": (0x9, "<sys/ndd.h>"),
    "NDD_ADDR_CHANGE": (0xA, "<sys/ndd.h> (AIX 5.3)"),
    "NDD_ADAPTER_ADDED": (0xB, "<sys/ndd.h> (AIX 5.3)"),
    "NDD_ADAPTER_DELETED": (0xC, "<sys/ndd.h> (AIX 5.3)"),
    "NDD_REASON_CODE": (0x100, "<sys/ndd.h>"),
    # the status filter (<sys/cdli.h>)
    "NS_STATUS_MASK": (0x1, "<sys/cdli.h>"),
    # ndd_flags and ndd_ctl commands (<sys/ndd.h>)
    "NDD_ALTADDRS": (0x100, "<sys/ndd.h>"),
    "NDD_MULTICAST": (0x200, "<sys/ndd.h>"),
    "NDD_ENABLE_MULTICAST": (0x2, "<sys/ndd.h>"),
    "NDD_DISABLE_MULTICAST": (0x3, "<sys/ndd.h>"),
    "NDD_ENABLE_ADDRESS": (0xD, "<sys/ndd.h>"),
    "NDD_DISABLE_ADDRESS": (0xE, "<sys/ndd.h>"),
    "NDD_MIB_QUERY": (0x8, "<sys/ndd.h>"),
    "NDD_MIB_GET": (0x9, "<sys/ndd.h>"),
    "NDD_MIB_SET": (0xA, "<sys/ndd.h>"),
    "NDD_ADD_STATUS": (0xB, "<sys/ndd.h>"),
    "NDD_DEL_STATUS": (0xC, "<sys/ndd.h>"),
    "NDD_MIB_ADDR": (0xF, "<sys/ndd.h>"),
    "NDD_CLEAR_STATS": (0x10, "<sys/ndd.h>"),
    "NDD_GET_ALL_STATS": (0x102, "<sys/ndd.h>"),
    "NDD_DEVICE_SPECIFIC": (0x10000, "<sys/ndd.h>"),
    # NDD_MIB_QUERY access flags, NDD_MIB_SET statuses, NDD_MIB_ADDR entry statuses (<sys/ndd.h>)
    "MIB_NOT_SUPPORTED": (0x0, "<sys/ndd.h>"),
    "MIB_READ_ONLY": (0x1, "<sys/ndd.h>"),
    "MIB_READ_WRITE": (0x2, "<sys/ndd.h>"),
    "MIB_WRITE_ONLY": (0x3, "<sys/ndd.h>"),
    "MIB_OK": (0, "<sys/ndd.h>"),
    "MIB_NOT_SETTABLE": (1, "<sys/ndd.h>"),
    "MIB_WRONG_STATE": (2, "<sys/ndd.h>"),
    "MIB_FAILED": (3, "<sys/ndd.h>"),
    "MIB_BAD_VALUE": (4, "<sys/ndd.h>"),
    "NDD_MIB_OTHER": (1, "<sys/ndd.h>"),
    "NDD_MIB_INVALID": (2, "<sys/ndd.h>"),
    "NDD_MIB_VOLATILE": (3, "<sys/ndd.h>"),
    "NDD_MIB_NONVOLATILE": (4, "<sys/ndd.h>"),
    # ns_user.pkt_format (<sys/cdli.h>)
    "NS_PROTO": (0x1, "<sys/cdli.h>"),
    "NS_PROTO_SNAP": (0x2, "<sys/cdli.h>"),
    "NS_INCLUDE_LLC": (0x4, "<sys/cdli.h>"),
    "NS_INCLUDE_MAC": (0x8, "<sys/cdli.h>"),
    "NS_HANDLE_NON_UI": (0x100, "<sys/cdli.h>"),
    # ndd_flags / ndd_2_flags the NDD keeps for capabilities and detach (<sys/ndd.h>)
    "NDD_DETACHED": (0x400, "<sys/ndd.h>"),
    "NDD_CHECKSUM_OFFLOAD": (0x10000, "<sys/ndd.h>"),
    "NDD_SPECFLAGS": (0x100000, "<sys/ndd.h>"),
    "NDD_2_LARGE_RECEIVE": (0x100, "<sys/ndd.h> (ndd_2_flags)"),
    # the ATM NDD interface (<sys/cdli_atmuser.h>, bos530 1.21) and the <sys/call_ie.h> values it uses
    "ATM_PHYSADDR_LEN": (6, "<sys/cdli_atmuser.h>"),
    "ATM_MAX_MTU": (65535, "<sys/cdli_atmuser.h>"),
    "ATM_MIN_MTU": (1, "<sys/cdli_atmuser.h>"),
    "ATM_VC_OPEN": (0x10000, "<sys/cdli_atmuser.h> (NDD_DEVICE_SPECIFIC)"),
    "ATM_VC_CLOSE": (0x10001, "<sys/cdli_atmuser.h>"),
    "ATM_VC_ACK": (0x10002, "<sys/cdli_atmuser.h>"),
    "ATM_VC_LOCAL": (0x10003, "<sys/cdli_atmuser.h>"),
    "ATM_TXBUF_REG": (0x10004, "<sys/cdli_atmuser.h>"),
    "ATM_TXBUF_GET": (0x10005, "<sys/cdli_atmuser.h>"),
    "ATM_VS_Q_LEN": (0x10006, "<sys/cdli_atmuser.h>"),
    "ATM_DEVICE_SPECIFIC": (0x10064, "<sys/cdli_atmuser.h> (NDD_DEVICE_SPECIFIC + 100)"),
    "ATM_VC_OPEN_DONE": (0x100000, "<sys/cdli_atmuser.h> (NDD_STAT_BLOCK)"),
    "ATM_VC_CLOSE_DONE": (0x100001, "<sys/cdli_atmuser.h>"),
    "ATM_VC_LOCAL_DONE": (0x100002, "<sys/cdli_atmuser.h>"),
    "ATM_VC_ACK_DONE": (0x100003, "<sys/cdli_atmuser.h>"),
    "NDD_NO_HANDLE_0": (0x100000, "<sys/cdli_atmuser.h> (NDD_SPECFLAGS)"),
    "VCOPEN_SVC": (0x1, "<sys/cdli_atmuser.h>"),
    "VCOPEN_CID": (0x2, "<sys/cdli_atmuser.h>"),
    "NO_CHECKSUM": (0, "<sys/cdli_atmuser.h>"),
    "MPOA_CHECKSUM": (1, "<sys/cdli_atmuser.h>"),
    "CIP_CHECKSUM": (2, "<sys/cdli_atmuser.h>"),
    "LANE_ETH_CHECKSUM": (4, "<sys/cdli_atmuser.h>"),
    "LANE_TOK_CHECKSUM": (6, "<sys/cdli_atmuser.h>"),
    "TX_CHECKSUM": (1, "<sys/cdli_atmuser.h>"),
    "RX_CHECKSUM": (2, "<sys/cdli_atmuser.h>"),
    "AUTO_DETECT": (0, "<sys/cdli_atmuser.h> (uni_version)"),
    "UNI_30": (1, "<sys/cdli_atmuser.h>"),
    "UNI_31": (2, "<sys/cdli_atmuser.h>"),
    "UNI_IBM_8282": (3, "<sys/cdli_atmuser.h>"),
    "UNI_40": (4, "<sys/cdli_atmuser.h>"),
    "AUTO_DETECT_UNI_31_RESTRICTED": (9, "<sys/cdli_atmuser.h>"),
    "ATM_TW_100": (0x1, "<sys/cdli_atmuser.h> (atm_genstats.device_type)"),
    "ATM_TW_155": (0x2, "<sys/cdli_atmuser.h>"),
    "ATM_TW_25": (0x3, "<sys/cdli_atmuser.h>"),
    "CM_AAL_5": (0x5, "<sys/call_ie.h>"),
    "CM_MESSAGE_MODE": (0x1, "<sys/call_ie.h>"),
    "CM_STREAMING_MODE": (0x2, "<sys/call_ie.h>"),
    "CM_NULL_SSCS": (0x0, "<sys/call_ie.h>"),
    "NOT_SPECIFIED_L": (0xFFFFFFFF, "<sys/call_ie.h>"),
    "CM_MAX_DATA_RATE": (0x005FFFFF, "<sys/call_ie.h> (traffic_des_t, Kbit/s)"),
    "CM_MAX_BUR_SIZE": (0x2FFFFFD0, "<sys/call_ie.h> (traffic_des_t, octets)"),
    # tunstack's own NDD_ATM commands, above ATM_DEVICE_SPECIFIC
    "NDD_ATM_OPEN_VC": (0x10065, "(tunstack)"),
    "NDD_ATM_CLOSE_VC": (0x10066, "(tunstack)"),
    "NDD_ATM_GET_VC_STATS": (0x10067, "(tunstack)"),
    "NDD_ATM_SET_LINE_RATE": (0x10068, "(tunstack)"),
    "NDD_ATM_OAM_LOOPBACK": (0x10069, "(tunstack)"),
    "NDD_ATM_LIST_VCS": (0x1006A, "(tunstack)"),
    "NDD_ATM_CLOSE_VC_DRAIN": (0x1006B, "(tunstack)"),
    # tunstack's NDD_STATUS options: device-specific reasons, above NDD_REASON_CODE
    "NDD_LINK_UP": (0x101, "(tunstack)"),
    "NDD_LINK_DOWN": (0x102, "(tunstack)"),
    "NDD_TX_READY": (0x103, "(tunstack)"),
    # the AF_NDD family and its protocols (point 10): <sys/socket.h>, <sys/ndd_var.h> (bos530 1.6)
    "AF_NDD": (23, "<sys/socket.h>"),
    "NDD_PROT_ETHER": (1, "<sys/ndd_var.h>"),
    "NDD_PROT_TOK": (2, "<sys/ndd_var.h>"),
    "NDD_PROT_FDDI": (3, "<sys/ndd_var.h>"),
    "NDD_PROT_FCS": (4, "<sys/ndd_var.h>"),
    "NDD_PROT_ATM": (5, "<sys/ndd_var.h>"),
    # ns_8022 filter types (<sys/cdli.h>)
    "NS_8022_LLC_DSAP": (1, "<sys/cdli.h>"),
    "NS_8022_LLC_DSAP_SNAP": (2, "<sys/cdli.h>"),
    "NS_TAP": (3, "<sys/cdli.h>"),
    "NS_ETHERTYPE": (4, "<sys/cdli.h>"),
}


@pytest.mark.parametrize("name", sorted(AIX_VALUES))
def test_value_matches_header(name: str) -> None:
    value, source = AIX_VALUES[name]
    assert getattr(C, name) == value, f"{name} should be {value:#x} ({source})"


# the ATM socket layer's values (protocols/atm/sockets/sockaddr.py): <sys/atmsock.h> (bos53D
# 1.10) and <sys/call_ie.h> (bos530 1.13); issue 16 points 7 and 8
ATM_SOCKET_VALUES: dict[str, tuple[int, str]] = {
    "SO_ATM_CALLING": (1, "<sys/atmsock.h>"),
    "SO_ATM_CALLED": (2, "<sys/atmsock.h>"),
    "SO_ATM_AAL_PARM": (3, "<sys/atmsock.h>"),
    "SO_ATM_TRAFFIC_DES": (4, "<sys/atmsock.h>"),
    "SO_ATM_BEARER": (5, "<sys/atmsock.h>"),
    "SO_ATM_BHLI": (6, "<sys/atmsock.h>"),
    "SO_ATM_BLLI": (7, "<sys/atmsock.h>"),
    "SO_ATM_QOS_PARM": (8, "<sys/atmsock.h>"),
    "SO_ATM_TRANSIT_SEL": (9, "<sys/atmsock.h>"),
    "SO_ATM_MAX_PEND": (10, "<sys/atmsock.h>"),
    "SO_ATM_PARAM": (11, "<sys/atmsock.h>"),
    "SO_ATM_CAUSE": (12, "<sys/atmsock.h>"),
    "SO_ATM_ACCEPT": (13, "<sys/atmsock.h>"),
    "CONN_PVC": (1, "<sys/call_ie.h>"),
    "CONN_SVC": (2, "<sys/call_ie.h>"),
    "NDD_MAXNAMELEN": (16, "<sys/ndd.h> (sockaddr_ndd_atm.sndd_atm_nddname)"),
    "CM_BHLI_INFO_SIZE": (8, "<sys/call_ie.h>"),
    "CM_ISO": (0x00, "<sys/call_ie.h> (bhli_t.type)"),
    "CM_USER_SPECIFIED": (0x01, "<sys/call_ie.h>"),
    "CM_HI_LAYER_PROFILE": (0x02, "<sys/call_ie.h>"),
    "CM_VENDOR_SPECIFIC": (0x03, "<sys/call_ie.h>"),
    "MAX_PEND_MAX": (0xFF, "<sys/atmsock.h> (atm_pcb.max_pend is a u_char)"),
    "CM_CLASS_A": (0x01, "<sys/call_ie.h> (bearer_t.bearer_class)"),
    "CM_CLASS_C": (0x03, "<sys/call_ie.h>"),
    "CM_CLASS_X": (0x10, "<sys/call_ie.h>"),
    "CM_CONSTANT_BIT_RATE": (0x05, "<sys/call_ie.h> (bearer_t.transfer_cap)"),
    "CM_VARIABLE_BIT_RATE": (0x09, "<sys/call_ie.h>"),
    "CM_END_TO_END": (0x01, "<sys/call_ie.h> (timing)"),
    "CM_NO_END_TO_END": (0x02, "<sys/call_ie.h>"),
    "CM_NOT_SUSCEPTIBLE": (0x00, "<sys/call_ie.h> (clipping)"),
    "CM_SUSCEPTIBLE": (0x01, "<sys/call_ie.h>"),
    "CM_CON_CFG_PTP": (0x00, "<sys/call_ie.h> (connection_cfg)"),
    "CM_CON_CFG_PTM": (0x01, "<sys/call_ie.h>"),
    "CM_DIAG_SIZE": (28, "<sys/call_ie.h> (cause_t.diag)"),
    "NOT_SPECIFIED_B": (0xFF, "<sys/call_ie.h>"),
    "ATM_ADDR_LEN": (20, "<sys/call_ie.h>"),
    "CM_UNKNOWN_ADDR_TYPE": (0x00, "<sys/call_ie.h> (call_pnum.type)"),
    "CM_INTL_ADDR_TYPE": (0x01, "<sys/call_ie.h>"),
    "CM_E164": (0x01, "<sys/call_ie.h> (call_pnum.plan_id)"),
    "CM_NSAP": (0x02, "<sys/call_ie.h>"),
    "CM_PRES_ALLOWED": (0x00, "<sys/call_ie.h> (call_pnum.pres_ind)"),
    "CM_PRES_NOT_AVAIL": (0x02, "<sys/call_ie.h>"),
    "CM_NO_SCRN": (0x00, "<sys/call_ie.h> (call_pnum.screening)"),
    "CM_SCRN_NET": (0x03, "<sys/call_ie.h>"),
    "CM_PSUB_NSAP": (0x00, "<sys/call_ie.h> (call_psub.type)"),
    "CM_PSUB_ATM": (0x01, "<sys/call_ie.h>"),
    "CM_NET_ID_SIZE": (5, "<sys/call_ie.h> (transit_sel_t.net_id)"),
    "CM_TS_NETID_TYPE": (0x02, "<sys/call_ie.h> (transit_sel_t.type)"),
    "CM_TS_NETID_PLAN": (0x01, "<sys/call_ie.h> (transit_sel_t.plan)"),
    "CM_MAX_BLLI": (3, "<sys/call_ie.h> (connect_ie_t.conn_blli)"),
    "CM_SNAP_OUI_SIZE": (3, "<sys/call_ie.h>"),
    "CM_SNAP_PID_SIZE": (2, "<sys/call_ie.h>"),
    "CM_LAN_LLC_ISO_8802": (0x0C, "<sys/call_ie.h> (blli_t.L2_prot)"),
    "CM_L2_PROT_USER": (0x10, "<sys/call_ie.h>"),
    "CM_L2_MODE_NORMAL": (0x01, "<sys/call_ie.h> (blli_t.L2_mode)"),
    "CM_L2_MODE_EXTENDED": (0x02, "<sys/call_ie.h>"),
    "CM_CCITT_X25_PACKET": (0x06, "<sys/call_ie.h> (blli_t.L3_prot)"),
    "CM_ISO_8208": (0x07, "<sys/call_ie.h>"),
    "CM_ISO_8878": (0x08, "<sys/call_ie.h>"),
    "CM_ISO_9577": (0x0B, "<sys/call_ie.h>"),
    "CM_L3_PROT_USER": (0x10, "<sys/call_ie.h>"),
    "CM_L3_MODE_NORMAL": (0x01, "<sys/call_ie.h> (blli_t.L3_mode)"),
    "CM_L3_MODE_EXTENDED": (0x02, "<sys/call_ie.h>"),
    "CM_PKT_16": (0x04, "<sys/call_ie.h> (blli_t.L3_def_pkt_size)"),
    "CM_PKT_4096": (0x0C, "<sys/call_ie.h>"),
    "CM_IPI_SNAP": (0x80, "<sys/call_ie.h> (blli_t.ipi)"),
    "CM_IPI_IP": (0xCC, "<sys/call_ie.h>"),
    "CM_QOS_0": (0, "<sys/call_ie.h> (qos_parm_t)"),
    "CM_QOS_4": (4, "<sys/call_ie.h>"),
}


@pytest.mark.parametrize("name", sorted(ATM_SOCKET_VALUES))
def test_atm_socket_value_matches_header(name: str) -> None:
    from protocols.atm.sockets import sockaddr, usrreq
    value, source = ATM_SOCKET_VALUES[name]
    got = getattr(sockaddr, name, None)
    if got is None:
        got = getattr(usrreq, name)
    assert got == value, f"{name} should be {value:#x} ({source})"


def test_bhli_packs_as_bhli_t() -> None:
    # <sys/call_ie.h> struct bhli { short length; uchar type; uchar resvd; uchar info[8]; }: 12 octets on
    # AIX (big-endian POWER, natural alignment), length = the octets of info in use
    from protocols.atm.sockets.sockaddr import CM_VENDOR_SPECIFIC, Bhli
    b = Bhli(CM_VENDOR_SPECIFIC, bytes.fromhex("08005a" "00000001"))
    assert b.pack() == bytes.fromhex("0007" "03" "00" "08005a0000000100") and Bhli.FORMAT.size == 12
    assert Bhli.unpack(b.pack()) == b and Bhli.unpack(bytes(12)) == Bhli()
    assert Bhli(4).check() == errno.EINVAL and Bhli(0, bytes(9)).check() == errno.EINVAL
    with pytest.raises(OSError):
        Bhli.unpack(bytes.fromhex("0009") + bytes(10))          # more info than the field holds


def test_aal_parm_packs_as_aal_parm_t() -> None:
    # <sys/call_ie.h> struct aal_parm { short length; ushort aal_type; union { struct aal_5 {
    # ushort fwd_max_sdu_size, bak_max_sdu_size, mode; uchar sscs_type; } } }: 12 octets
    from ndd.atm import AtmAal5, AtmAalParm
    from protocols.atm.sockets.sockaddr import AalParm
    r = AtmAalParm(AtmAal5(9188, 1500))
    assert AtmAalParm.FORMAT.size == 12 and r.pack() == bytes.fromhex("0008" "0005" "23e4" "05dc" "0001" "00" "00")
    assert AtmAalParm.unpack(r.pack()) == r
    a = AalParm(9188, 1500)
    assert a.pack() == r.pack() and a.record() == r and AalParm.of(r) == a == AalParm.unpack(r.pack())
    assert AalParm.unpack(bytes.fromhex("0007" "0005" "ffff" "0001" "0001" "00" "00")) == AalParm(65535, 1)
    assert AalParm(100, 100, mode=C.CM_STREAMING_MODE).check() == errno.EINVAL      # message mode only
    assert AalParm(100, 100, sscs_type=1).check() == errno.EINVAL                    # CM_ASSURED: no SSCS here


def test_bearer_and_qos_pack_as_bearer_t_and_qos_parm_t() -> None:
    # struct bearer { uchar bearer_class; ushort transfer_cap; uchar clipping; uchar
    # connection_cfg; }: 6 octets, transfer_cap at offset 2 = Q.2931 octet 5a (type << 2 | timing)
    from protocols.atm.sockets.sockaddr import (
        CM_CLASS_X,
        CM_CONSTANT_BIT_RATE,
        CM_SUSCEPTIBLE,
        CM_VARIABLE_BIT_RATE,
        Bearer,
        QosParm,
    )
    cbr = Bearer(CM_CLASS_X, traffic_type=1, timing=1, clipping=CM_SUSCEPTIBLE)
    assert Bearer.FORMAT.size == 6 and cbr.transfer_cap == CM_CONSTANT_BIT_RATE
    assert cbr.pack() == bytes.fromhex("10" "00" "0005" "01" "00") and Bearer.unpack(cbr.pack()) == cbr
    assert Bearer.unpack(bytes.fromhex("03000009" "0000")) == Bearer(3, 2, 1)
    assert Bearer(3, 2, 1).transfer_cap == CM_VARIABLE_BIT_RATE
    with pytest.raises(OSError):
        Bearer.unpack(bytes.fromhex("10000100" "0000"))      # transfer_cap beyond octet 5a
    # struct qos_parm { uchar qos_fwd; uchar qos_bak; }
    assert QosParm.FORMAT.size == 2 and QosParm(1, 3).pack() == b"\x01\x03"


def test_cause_packs_as_cause_t() -> None:
    # struct cause { uchar cause; short length; uchar diag[CM_DIAG_SIZE]; }: 32 octets, no location
    from protocols.atm.sockets.sockaddr import CM_DIAG_SIZE, AtmCause
    c = AtmCause(2, 100, bytes((0x5F,)))              # invalid IE contents, about the B-LLI IE
    assert AtmCause.FORMAT.size == 32 and CM_DIAG_SIZE == 28
    assert c.pack() == bytes.fromhex("64" "00" "0001" "5f") + bytes(27)
    assert AtmCause.unpack(c.pack()) == AtmCause(0, 100, b"\x5f")      # the location is not in cause_t
    assert AtmCause(cause=16, diag=bytes(28)).check() == 0
    assert AtmCause(cause=16, diag=bytes(29)).check() == errno.EINVAL


def test_blli_packs_as_blli_t_and_maps_onto_the_ie() -> None:
    # struct blli { short length; uchar L2_prot, L2_mode, L2_win_size, L2_info, L3_prot, L3_mode,
    # L3_def_pkt_size, L3_pkt_win_size, L3_info, ipi; uchar snap_oui[3], snap_pid[2]; }: 17
    # octets of fields, 18 with the padding a short's alignment needs
    from protocols.atm.sockets.sockaddr import (
        CM_CCITT_X25_PACKET,
        CM_IPI_IP,
        CM_IPI_SNAP,
        CM_ISO_9577,
        CM_L2_MODE_EXTENDED,
        CM_L2_PROT_USER,
        CM_L3_MODE_NORMAL,
        CM_LAN_LLC_ISO_8802,
        NOT_SPECIFIED_B,
        Blli,
    )
    from protocols.atm.sockets.svc_params import blli_ie, blli_of
    from protocols.atm.uni.ie import Blli as BlliIE
    assert Blli.FORMAT.size == 18 and Blli().pack() == bytes(2) + bytes(3) + b"\xff" + bytes(4) + b"\xff" + bytes(7)
    clip = Blli(CM_LAN_LLC_ISO_8802, CM_ISO_9577, bytes.fromhex("0000000800"))
    assert clip.ipi == CM_IPI_SNAP
    assert clip.pack() == bytes.fromhex("0012" "0c0000ff" "0b000000ff" "80" "000000" "0800" "00")
    assert Blli.unpack(clip.pack()) == clip and Blli.unpack(bytes(18)) == Blli()
    # HDLC ABM, extended mode, window 7; X.25 packet layer, normal mode, 128-octet packets, window 2
    x25 = Blli(0x0B, CM_CCITT_X25_PACKET, l2_mode=CM_L2_MODE_EXTENDED, l2_win_size=7, l3_mode=CM_L3_MODE_NORMAL,
               l3_def_pkt_size=0x07, l3_pkt_win_size=2)
    ie = blli_ie(x25)
    assert ie is not None and ie.contents() == bytes.fromhex("4b" "40" "87" "66" "20" "07" "82")
    parsed = BlliIE.parse(0, ie.contents())
    assert isinstance(parsed, BlliIE) and blli_of(parsed) == x25 and Blli.unpack(x25.pack()) == x25
    user = Blli(CM_L2_PROT_USER, l2_info=0x42)
    ie = blli_ie(user)
    assert ie is not None and ie.contents() == bytes.fromhex("50" "c2")
    assert blli_of(ie) == user
    ip = Blli(CM_LAN_LLC_ISO_8802, CM_ISO_9577, ipi=CM_IPI_IP)                      # TR 9577 IPI for IP
    ie = blli_ie(ip)
    assert ie is not None and ie.contents() == bytes.fromhex("cc" "6b" "66" "80") and blli_of(ie) == ip
    assert Blli(l2_mode=NOT_SPECIFIED_B) == Blli()           # NOT_SPECIFIED_B reads as absent
    for bad in (Blli(l2_mode=3), Blli(l2_win_size=128), Blli(l3_def_pkt_size=16), Blli(l2_info=0x80)):
        assert bad.check() == errno.EINVAL


def test_transit_sel_packs_as_transit_sel_t_and_is_ie_0x78() -> None:
    # struct transit_sel { short length; uchar type; uchar plan; uchar net_id[5]; }: 10 octets
    from protocols.atm.sockets.sockaddr import CM_TS_NETID_PLAN, CM_TS_NETID_TYPE, TransitSel
    from protocols.atm.uni.ie import IE_TRANSIT, TransitNetwork, parse_ie
    t = TransitSel(CM_TS_NETID_TYPE, CM_TS_NETID_PLAN, b"0123")
    assert TransitSel.FORMAT.size == 10 and t.pack() == bytes.fromhex("0004" "02" "01" "3031323300" "00")
    assert TransitSel.unpack(t.pack()) == t and TransitSel.unpack(bytes(10)) == TransitSel()
    # UNI 3.1 §5.4.5.22: ext | type (bits 7-5) | plan (bits 4-1), then IA5 characters
    ie = TransitNetwork(t.net_type, t.plan, t.net_id)
    assert IE_TRANSIT == 0x78 and ie.contents() == b"\xa1" + b"0123"
    assert parse_ie(IE_TRANSIT, 0x80, ie.contents()) == TransitNetwork(2, 1, b"0123", compat=0x80)
    assert type(parse_ie(IE_TRANSIT, 0x80, b"\x21" + b"01")).__name__ == "MalformedIE"    # ext bit 0


def test_party_numbers_pack_as_call_pnum_t_and_call_psub_t() -> None:
    # struct call_pnum { short length; uchar type, plan_id, pres_ind, screening; atm_addr_t number; }:
    # 26 octets; struct call_psub { short length; uchar type; atm_addr_t subaddr; }: 24 octets
    from protocols.atm.sockets.sockaddr import (
        CALL_PNUM,
        CALL_PSUB,
        CM_E164,
        CM_INTL_ADDR_TYPE,
        CM_PSUB_ATM,
        AtmAddr,
        pack_call_psub,
        unpack_call_psub,
    )
    assert CALL_PNUM.size == 26 and CALL_PSUB.size == 24
    aesa, sub = bytes(range(1, 21)), bytes(range(21, 41))
    a = AtmAddr(aesa, sub)
    assert a.pack() == bytes.fromhex("0014" "00" "02" "0000") + aesa + bytes.fromhex("0014" "00" "02" "0000") + sub
    assert AtmAddr.unpack(a.pack()) == a and AtmAddr.unpack(a.pack()[:26]) == AtmAddr(aesa)
    e164 = AtmAddr(b"4930123456", plan=CM_E164)
    assert e164.pack()[:6] == bytes((0, 10, CM_INTL_ADDR_TYPE, CM_E164, 0, 0)) and AtmAddr.unpack(e164.pack()) == e164
    assert pack_call_psub(sub) == bytes.fromhex("0014" "01") + sub + b"\0"
    assert unpack_call_psub(pack_call_psub(sub)) == (sub, CM_PSUB_ATM)
    assert AtmAddr(b"12x", plan=CM_E164).check() == errno.EINVAL and AtmAddr(aesa[:19]).check() == errno.EINVAL
    with pytest.raises(OSError):
        AtmAddr.unpack(bytes.fromhex("0015") + bytes(50))     # a number longer than atm_addr_t


def test_connect_ie_packs_as_connect_ie_t() -> None:
    # struct connect_ie: aal_parm_t, traffic_des_t, bearer_t, bhli_t, blli_t[CM_MAX_BLLI],
    # call_pnum_t + call_psub_t (called), the same (calling), qos_parm_t, bb_sending_comp_t,
    # transit_sel_t: 260 octets with each member at its natural alignment
    from protocols.atm.sockets.sockaddr import AalParm, AtmAddr, Blli, ConnectIe, QosParm, TransitSel
    ie = ConnectIe(AalParm(9188, 9188), blli=(Blli(12, 11, bytes.fromhex("0000000800")),),
                   called=AtmAddr(bytes(range(20)), bytes(range(20, 40))), qos=QosParm(1, 1),
                   transit=TransitSel(net_id=b"012"))
    raw = ie.pack()
    assert len(raw) == ConnectIe.SIZE == 260 and ConnectIe.unpack(raw) == ie
    assert raw[0:12] == AalParm(9188, 9188).pack() and raw[90:92] == b"\x00\x12"       # blli[0] at 90
    assert raw[108:110] == b"\x00\x00" and raw[144:146] == b"\x00\x14" and raw[170:173] == b"\x00\x14\x01"
    assert raw[244:246] == b"\x01\x01" and raw[246:250] == bytes(4) and raw[250:254] == b"\x00\x03\x02\x01"


def test_sockaddr_ndd_atm_byte_form() -> None:
    # <sys/atmsock.h> struct sockaddr_ndd_atm { u_char sndd_atm_len, sndd_atm_family,
    # sndd_atm_vc_type; char sndd_atm_nddname[16]; union { struct { call_pnum_t sndd_atm_addr,
    # sndd_atm_sub_addr; } atm_addr; atm_conn_id_t conn_id; } atm_id; }: the union at offset 20, 72 octets
    from protocols.atm.sockets.sockaddr import CONN_PVC, SOCKADDR_NDD_ATM, SockaddrNddAtm, parse_sockaddr_atm
    assert SOCKADDR_NDD_ATM.size == 72
    pvc = SockaddrNddAtm.pvc("atm0", 1, 100)
    raw = pvc.pack()
    assert raw[:3] == bytes((72, 23, CONN_PVC)) and raw[3:19] == b"atm0" + bytes(12) and raw[19] == 0
    assert raw[20:24] == bytes.fromhex("0001" "0064") and raw[24:] == bytes(48)
    assert SockaddrNddAtm.unpack(raw) == pvc and parse_sockaddr_atm(raw) == pvc
    aesa, sub = bytes(range(1, 21)), bytes(range(21, 41))
    svc = SockaddrNddAtm.svc("atm1", aesa, sub)
    raw = svc.pack()
    assert raw[20:26] == bytes.fromhex("0014" "00" "02" "0000") and raw[26:46] == aesa
    assert raw[46:52] == bytes.fromhex("0014" "00" "02" "0000") and raw[52:72] == sub
    no_sub = SockaddrNddAtm.svc("atm1", aesa)
    assert parse_sockaddr_atm(bytearray(raw)) == svc and SockaddrNddAtm.unpack(no_sub.pack()) == no_sub
    with pytest.raises(ValueError):
        parse_sockaddr_atm(raw[:71])
    with pytest.raises(OSError, match=f"^\\[Errno {errno.EAFNOSUPPORT}\\]"):
        parse_sockaddr_atm(raw[:1] + b"\x02" + raw[2:])                   # AF_INET
    with pytest.raises(ValueError):
        parse_sockaddr_atm(raw[:20] + bytes.fromhex("0013") + raw[22:])     # a 19-octet AESA


def test_traffic_des_packs_as_traffic_des_t() -> None:
    # <sys/call_ie.h> struct traffic_des: 15 ints (fwd/bak peak, sustainable at _hp and _lp in
    # Kbit/s, bursts in bytes, best_effort, tagging_bak, tagging_fwd): 60 octets, big-endian
    from ndd.atm import AtmTrafficDes
    from protocols.atm.sockets.sockaddr import TrafficDes
    assert TrafficDes is AtmTrafficDes and AtmTrafficDes.FORMAT.size == 60
    t = AtmTrafficDes(42400, 21200, fwd_sus_rate_hp=10000, fwd_bur_size_hp=4800, best_effort=0, tagging_fwd=1)
    raw = t.pack()
    assert raw[:8] == bytes.fromhex("0000a5a0" "000052d0") and raw[8:16] == b"\xff" * 8
    assert raw[16:20] == (10000).to_bytes(4, "big") and raw[32:36] == (4800).to_bytes(4, "big")
    assert raw[48:] == bytes.fromhex("00000000" "00000000" "00000001")
    assert AtmTrafficDes.unpack(raw) == t and AtmTrafficDes.unpack(AtmTrafficDes().pack()) == AtmTrafficDes()
    assert AtmTrafficDes(fwd_peakrate_hp=-1).pack()[:4] == b"\xff" * 4          # a C int -1 is NOT_SPECIFIED_L
    assert t.check() == 0 and AtmTrafficDes(C.CM_MAX_DATA_RATE + 1).check() == errno.EINVAL
    assert AtmTrafficDes(fwd_bur_size_lp=C.CM_MAX_BUR_SIZE + 1).check() == errno.EINVAL
    assert AtmTrafficDes(tagging_bak=2).check() == errno.EINVAL
    assert t.reversed() == AtmTrafficDes(21200, 42400, bak_sus_rate_hp=10000, bak_bur_size_hp=4800, tagging_bak=1)


def test_traffic_des_maps_onto_the_traffic_descriptor_ie() -> None:
    # Kbit/s -> cells/s rounded up (424 bits a cell), octets -> 48-octet cells rounded up;
    # _hp -> CLP=0+1, _lp -> CLP=0; tagging -> management options bits 1 (fwd) / 2 (bwd)
    from ndd.atm import AtmTrafficDes
    from protocols.atm.sockets.svc_params import traffic_ie, traffic_of
    t = AtmTrafficDes(42400, 21200, fwd_peakrate_lp=10000, bak_peakrate_lp=5000, fwd_sus_rate_hp=300,
                      bak_sus_rate_lp=1, fwd_bur_size_hp=4800, bak_bur_size_lp=49, tagging_bak=1)
    ie = traffic_ie(t)
    assert (ie.fwd_pcr_01, ie.bwd_pcr_01, ie.fwd_pcr_0, ie.bwd_pcr_0) == (100000, 50000, 23585, 11793)
    assert (ie.fwd_scr_01, ie.bwd_scr_0, ie.fwd_mbs_01, ie.bwd_mbs_0) == (708, 3, 100, 2)
    assert ie.bwd_scr_01 is None and ie.fwd_mbs_0 is None and not ie.best_effort and ie.mgmt_options == 0x02
    back = traffic_of(ie)
    assert back == AtmTrafficDes(42400, 21200, fwd_peakrate_lp=10000, bak_peakrate_lp=5000, fwd_sus_rate_hp=300,
                                 bak_sus_rate_lp=1, fwd_bur_size_hp=4800, bak_bur_size_lp=96, tagging_bak=1)
    one_way = traffic_ie(AtmTrafficDes(fwd_peakrate_hp=424))     # no backward peak: best effort
    assert (one_way.fwd_pcr_01, one_way.bwd_pcr_01) == (1000, None)
    assert one_way.best_effort and one_way.mgmt_options is None
    assert traffic_of(one_way) == AtmTrafficDes(fwd_peakrate_hp=424, best_effort=1)


def test_status_codes_are_distinct_bits() -> None:
    codes = [C.NDD_HARD_FAIL, C.NDD_LIMBO_ENTER, C.NDD_LIMBO_EXIT, C.NDD_CONNECTED, C.NDD_STATUS, C.NDD_BAD_PKTS]
    assert all(c & (c - 1) == 0 for c in codes) and len(set(codes)) == len(codes)
    # tunstack's status options cannot be read as one of AIX's reason codes
    assert min(C.NDD_LINK_UP, C.NDD_LINK_DOWN, C.NDD_TX_READY) > C.NDD_REASON_CODE


# --- a device with no I/O -----------------------------------------------------------------
class WireNdd(Ndd):
    """An Ethernet NDD whose transmissions land in a list."""

    def __init__(self, name: str = "en0") -> None:
        super().__init__(name, physaddr=MAC_US)
        self.sent: list[bytes] = []

    def _transmit(self, pkt: PacketBuffer) -> int:
        self.sent.append(pkt.tobytes())
        return 0


def services() -> NetServices:
    return NetServices(lambda *a: None, lambda: 0.0)


def opened(ns: NetServices, name: str = "en0") -> WireNdd:
    nd = WireNdd(name)
    ns.ns_attach(nd)
    ns.ns_alloc(name)
    return nd


def frame(dst: bytes, payload: bytes = bytes(46)) -> PacketBuffer:
    return PacketBuffer(dst + MAC_PEER + ETHERTYPE_TEST.to_bytes(2, "big") + payload)


class Seen:
    """An ns_statuser that keeps (isr_data, code, option) of every block."""

    def __init__(self, data: object) -> None:
        self.got: list[tuple[object, int, tuple[int, ...]]] = []
        self.user = NsStatuser(self.isr, data)

    def isr(self, ndd: Ndd, block: StatusBlock, data: Any) -> None:
        self.got.append((data, block.code, block.option))

    @property
    def codes(self) -> list[int]:
        return [code for _, code, _ in self.got]


# --- point 1: status ------------------------------------------------------------------------
def test_mask_filtering_aix_form() -> None:
    # a user with mask NDD_STATUS only hears NDD_STATUS; HARD_FAIL|LIMBO_ENTER hears those two
    ns = services()
    nd = opened(ns)
    status_only, failures = Seen("s"), Seen("f")
    filt_s = NsComStatus(C.NS_STATUS_MASK, C.NDD_STATUS)
    sid_s = ns.ns_add_status(nd, filt_s, status_only.user)
    sid_f = ns.ns_add_status(nd, NsComStatus(C.NS_STATUS_MASK, C.NDD_HARD_FAIL | C.NDD_LIMBO_ENTER), failures.user)
    assert filt_s.sid == sid_s and sid_s != sid_f and sid_s > 0   # AIX's "returned user status id"
    for block in (StatusBlock(C.NDD_STATUS, (C.NDD_LINK_UP,)), StatusBlock(C.NDD_LIMBO_ENTER, (C.NDD_TX_TIMEOUT,)),
                  StatusBlock(C.NDD_BAD_PKTS), hard_fail(errno.EIO)):
        nd.report_status(block)
    assert status_only.got == [("s", C.NDD_STATUS, (C.NDD_LINK_UP,))]
    assert failures.got == [("f", C.NDD_LIMBO_ENTER, (C.NDD_TX_TIMEOUT,)),
                            ("f", C.NDD_HARD_FAIL, (C.NDD_PIO_FAIL, errno.EIO))]


def test_python_form_mask_and_default_all() -> None:
    ns = services()
    nd = opened(ns)
    seen: dict[str, list[int]] = {"status": [], "all": []}
    ns.ns_add_status(nd, lambda ndd, blk: seen["status"].append(blk.code), C.NDD_STATUS)
    all_fn = lambda ndd, blk: seen["all"].append(blk.code)  # noqa: E731
    ns.ns_add_status(nd, all_fn)
    with pytest.raises(OSError) as exc:
        ns.ns_add_status(nd, all_fn)          # a function once per NDD: del by function stays exact
    assert exc.value.errno == errno.EEXIST
    for code in (C.NDD_CONNECTED, C.NDD_STATUS, C.NDD_HARD_FAIL):
        nd.report_status(StatusBlock(code))
    assert seen == {"status": [C.NDD_STATUS], "all": [C.NDD_CONNECTED, C.NDD_STATUS, C.NDD_HARD_FAIL]}


def test_del_status_by_sid() -> None:
    # ns_del_status deletes exactly the user with that sid (given as the filter or the number)
    ns = services()
    nd = opened(ns)
    a, b = Seen("a"), Seen("b")
    filt_a = NsComStatus(C.NS_STATUS_MASK, C.NDD_BAD_PKTS)
    ns.ns_add_status(nd, filt_a, a.user)
    sid_b = ns.ns_add_status(nd, NsComStatus(C.NS_STATUS_MASK, C.NDD_BAD_PKTS), b.user)
    nd.report_status(StatusBlock(C.NDD_BAD_PKTS))
    ns.ns_del_status(nd, filt_a)
    nd.report_status(StatusBlock(C.NDD_BAD_PKTS))
    ns.ns_del_status(nd, sid_b)
    nd.report_status(StatusBlock(C.NDD_BAD_PKTS))
    assert (a.codes, b.codes) == ([C.NDD_BAD_PKTS], [C.NDD_BAD_PKTS] * 2)
    for gone in (filt_a, sid_b, 999):
        with pytest.raises(OSError) as exc:
            ns.ns_del_status(nd, gone)
        assert exc.value.errno == errno.ENOENT


@pytest.mark.parametrize("filt", [NsComStatus(filtertype=2, mask=C.NDD_STATUS), NsComStatus(mask=0)])
def test_add_status_bad_filter_is_einval(filt: NsComStatus) -> None:
    ns = services()
    nd = opened(ns)
    with pytest.raises(OSError) as exc:
        ns.ns_add_status(nd, filt, Seen(None).user)
    assert exc.value.errno == errno.EINVAL and not ns.status_users.get("en0")


def test_status_codes_drive_ndd_flags() -> None:
    # LIMBO_ENTER/EXIT toggle NDD_LIMBO and RUNNING (network recovery mode); HARD_FAIL is DEAD;
    # tunstack's link options travel in NDD_STATUS; a device-specific code leaves the flags
    nd = opened(services())
    nd.report_status(StatusBlock(C.NDD_LIMBO_ENTER, (C.NDD_ADAP_CHECK,)))
    assert nd.ndd_flags & C.NDD_LIMBO and not nd.ndd_flags & C.NDD_RUNNING
    nd.report_status(StatusBlock(C.NDD_LIMBO_EXIT))
    assert nd.ndd_flags & C.NDD_RUNNING and not nd.ndd_flags & C.NDD_LIMBO
    nd.report_status(StatusBlock(C.NDD_STATUS, (C.NDD_LINK_DOWN,)))
    assert not nd.ndd_flags & C.NDD_RUNNING
    nd.report_status(StatusBlock(C.NDD_STATUS, (C.NDD_LINK_UP,)))
    assert nd.ndd_flags & C.NDD_RUNNING
    nd.report_status(StatusBlock(C.NDD_STAT_BLOCK | C.NDD_HARD_FAIL))
    assert nd.ndd_flags & C.NDD_RUNNING and not nd.ndd_flags & C.NDD_DEAD
    nd.report_status(hard_fail(errno.EBADF))
    assert nd.ndd_flags & C.NDD_DEAD and not nd.ndd_flags & C.NDD_RUNNING


@pytest.mark.parametrize("err, reason", [
    (errno.EIO, C.NDD_PIO_FAIL),            # a read/write on the device failed
    (errno.EBADF, C.NDD_ADAPTER_DELETED),   # the fd no longer names a device
    (errno.ENODEV, C.NDD_ADAPTER_DELETED),
    (errno.EPERM, C.NDD_CMD_FAIL),          # anything else
])
def test_hard_fail_carries_a_reason_code_then_the_errno(err: int, reason: int) -> None:
    assert hard_fail(err) == StatusBlock(C.NDD_HARD_FAIL, (reason, err))


# --- point 3: address control --------------------------------------------------------------
def heard(nd: WireNdd, ns: NetServices, dst: bytes) -> bool:
    got: list[int] = []
    flt = NsFilter(C.NS_ETHERTYPE, ethertype=ETHERTYPE_TEST)
    ns.ns_add_filter(nd, flt, NsUser(lambda ndd, pkt, data: got.append(1)))
    nd.deliver(frame(dst))
    ns.ns_del_filter(nd, flt)
    return bool(got)


def test_enable_multicast_is_all_multicast_reference_counted() -> None:
    ns = services()
    nd = opened(ns)
    other_group = bytes.fromhex("333300000099")
    assert not nd.ndd_flags & C.NDD_MULTICAST and not heard(nd, ns, other_group)   # not preset
    assert nd.ndd_ctl(C.NDD_ENABLE_MULTICAST) == 0 and nd.ndd_ctl(C.NDD_ENABLE_MULTICAST) == 0
    assert nd.ndd_flags & C.NDD_MULTICAST and heard(nd, ns, other_group)
    nd.ndd_ctl(C.NDD_DISABLE_MULTICAST)
    assert nd.ndd_flags & C.NDD_MULTICAST and heard(nd, ns, other_group)    # one user still has it
    nd.ndd_ctl(C.NDD_DISABLE_MULTICAST)
    assert not nd.ndd_flags & C.NDD_MULTICAST and not heard(nd, ns, other_group)
    with pytest.raises(OSError) as exc:
        nd.ndd_ctl(C.NDD_DISABLE_MULTICAST)
    assert exc.value.errno == errno.EINVAL
    assert not heard(nd, ns, MAC_PEER)     # all-multicast is not promiscuous


def test_enable_address_counts_references_and_sets_altaddrs() -> None:
    ns = services()
    nd = opened(ns)
    assert not nd.ndd_flags & C.NDD_ALTADDRS
    nd.ndd_ctl(C.NDD_ENABLE_ADDRESS, MCAST)
    nd.ndd_ctl(C.NDD_ENABLE_ADDRESS, MCAST)
    assert nd.ndd_flags & C.NDD_ALTADDRS and nd.alt_addrs == {MCAST: 2} and heard(nd, ns, MCAST)
    nd.ndd_ctl(C.NDD_DISABLE_ADDRESS, MCAST)
    assert nd.ndd_flags & C.NDD_ALTADDRS and heard(nd, ns, MCAST)
    nd.ndd_ctl(C.NDD_DISABLE_ADDRESS, MCAST)
    assert not nd.ndd_flags & C.NDD_ALTADDRS and not heard(nd, ns, MCAST)
    with pytest.raises(OSError) as exc:
        nd.ndd_ctl(C.NDD_DISABLE_ADDRESS, MCAST)
    assert exc.value.errno == errno.ENOENT
    for bad in (BCAST, MAC_PEER, MCAST[:3]):   # broadcast is always received; unicast, runt: no
        with pytest.raises(OSError) as exc:
            nd.ndd_ctl(C.NDD_ENABLE_ADDRESS, bad)
        assert exc.value.errno == errno.EINVAL
    assert nd.alt_addrs == {}


def test_promiscuous_hears_every_group_address() -> None:
    ns = services()
    nd = opened(ns)
    nd.ndd_ctl(C.NDD_PROMISCUOUS_ON)
    assert heard(nd, ns, MCAST) and heard(nd, ns, MAC_PEER)


# --- point 4: ns_alloc, ns_free, the MIB -------------------------------------------------------
def test_alloc_without_demuxer_is_enoent() -> None:
    ns = services()
    ns.ns_del_demux(C.NDD_ISO88023)
    ns.ns_attach(WireNdd())
    with pytest.raises(OSError) as exc:
        ns.ns_alloc("en0")
    assert exc.value.errno == errno.ENOENT and ns.refcount["en0"] == 0
    with pytest.raises(OSError) as exc:
        ns.ns_alloc("nope0")
    assert exc.value.errno == errno.ENODEV


def test_free_leaves_filters_to_their_owner_and_detach_drops_them() -> None:
    ns = services()
    nd = opened(ns)
    got: list[bytes] = []
    user = NsUser(lambda ndd, pkt, data: got.append(pkt.tobytes()))
    flt = NsFilter(C.NS_ETHERTYPE, ethertype=ETHERTYPE_TEST)
    ns.ns_add_filter(nd, flt, user)
    ns.ns_add_status(nd, NsComStatus(mask=C.NDD_STATUS), Seen(None).user)
    ns.ns_free(nd)                       # the last reference: closed, filter and status user stay
    assert not nd.is_open and ns.status_users["en0"]
    ns.ns_alloc("en0")
    nd.deliver(frame(MAC_US, b"x" * 46))
    assert got == [b"x" * 46]
    ns.ns_free(nd)
    ns.ns_detach(nd)                     # off the chain: what its users left goes with it
    again = opened(ns)
    assert "en0" not in ns.status_users
    ns.ns_add_filter(again, flt, user)   # no EEXIST from the old NDD's filter


def test_mib_get_counters_move_with_frames() -> None:
    ns = services()
    nd = opened(ns)
    ns.ns_add_filter(nd, NsFilter(C.NS_ETHERTYPE, ethertype=ETHERTYPE_TEST), NsUser(lambda *a: None))
    before = nd.ndd_ctl(C.NDD_MIB_GET)
    assert before["ifDescr"] == before["ifName"] == "en0" and before["ifType"] == 6   # ethernetCsmacd
    assert before["ifPhysAddress"] == MAC_US and before["ifOperStatus"] == 1 and before["ifInOctets"] == 0
    nd.deliver(frame(MAC_US))
    nd.deliver(frame(BCAST))
    nd.ndd_output(frame(MAC_PEER))
    nd.ndd_output(frame(MCAST))
    after = nd.ndd_ctl(C.NDD_MIB_GET)
    assert (after["ifInOctets"], after["ifInUcastPkts"], after["ifInNUcastPkts"]) == (120, 1, 1)
    assert (after["ifOutOctets"], after["ifOutUcastPkts"], after["ifOutNUcastPkts"]) == (120, 1, 1)
    assert after["ifHCInOctets"] == after["ifInOctets"] and after["ifHCOutUcastPkts"] == 1
    nd.deliver(PacketBuffer(MAC_US + MAC_PEER))   # a runt: an input error
    nd.report_status(StatusBlock(C.NDD_STATUS, (C.NDD_LINK_DOWN,)))
    down = nd.ndd_ctl(C.NDD_MIB_GET)
    assert down["ifInErrors"] == 1 and down["ifOperStatus"] == 2 and down["ifAdminStatus"] == 1


def test_mib_query_is_read_only_and_set_is_refused() -> None:
    nd = opened(services())
    query = nd.ndd_ctl(C.NDD_MIB_QUERY)
    assert query.keys() == nd.ndd_ctl(C.NDD_MIB_GET).keys()
    assert set(query.values()) == {C.MIB_READ_ONLY}
    with pytest.raises(OSError) as exc:
        nd.ndd_ctl(C.NDD_MIB_SET, {"ifAdminStatus": 2})
    assert exc.value.errno == errno.EACCES and "MIB_NOT_SETTABLE" in str(exc.value)
    for bad in ({"ifNoSuchThing": 1}, None):
        with pytest.raises(OSError) as exc:
            nd.ndd_ctl(C.NDD_MIB_SET, bad)
        assert exc.value.errno == errno.EINVAL
    assert nd.ndd_flags & C.NDD_UP


def test_mib_addr_lists_received_addresses() -> None:
    nd = opened(services())
    assert nd.ndd_ctl(C.NDD_MIB_ADDR) == [(C.NDD_MIB_VOLATILE, MAC_US), (C.NDD_MIB_NONVOLATILE, BCAST)]
    nd.ndd_ctl(C.NDD_ENABLE_ADDRESS, MCAST)
    assert nd.ndd_ctl(C.NDD_MIB_ADDR)[-1] == (C.NDD_MIB_VOLATILE, MCAST)


def test_get_all_stats_has_the_generic_counters() -> None:
    nd = opened(services())
    nd.deliver(frame(MAC_US))
    stats = nd.ndd_ctl(C.NDD_GET_ALL_STATS)
    assert stats == nd.ndd_ctl(C.NDD_GET_STATS) and stats["ndd_ipackets"] == 1 and stats["ndd_ibytes"] == 60


def test_atm_get_all_stats_adds_each_vc_and_mib_type_is_atm() -> None:
    from drivers.atm.adapter import AtmNdd
    from ndd.atm import VcParams

    atm = AtmNdd("atm0")
    atm.ndd_ctl(C.NDD_ATM_OPEN_VC, VcParams(0, 100))
    stats = atm.ndd_ctl(C.NDD_GET_ALL_STATS)
    assert stats["rcv_cells"] == 0 and stats["vcs"][(0, 100)] == atm.ndd_ctl(C.NDD_ATM_GET_VC_STATS, (0, 100))
    assert atm.ndd_ctl(C.NDD_MIB_GET)["ifType"] == 37          # IANAifType atm(37)


# --- point 2: pkt_format and ns_user ------------------------------------------------------------
PAYLOAD = b"the user's data" + bytes(31)
LLC_42 = b"\x42\x42\x03"                                          # DSAP 0x42, SSAP 0x42, UI
SNAP_IP = b"\xaa\xaa\x03" + b"\x00\x00\x00" + b"\x08\x00"          # LLC, then SNAP OUI 0, type IPv4
MAC_HDR = MAC_US + MAC_PEER


def ether_ii() -> tuple[bytes, NsFilter]:
    return MAC_HDR + ETHERTYPE_TEST.to_bytes(2, "big") + PAYLOAD, NsFilter(C.NS_ETHERTYPE, ethertype=ETHERTYPE_TEST)


def ieee8023(llc: bytes) -> bytes:
    body = llc + PAYLOAD
    return MAC_HDR + len(body).to_bytes(2, "big") + body


def llc_dsap() -> tuple[bytes, NsFilter]:
    return ieee8023(LLC_42), NsFilter(C.NS_8022_LLC_DSAP, dsap=0x42)


def llc_snap() -> tuple[bytes, NsFilter]:
    return ieee8023(SNAP_IP), NsFilter(C.NS_8022_LLC_DSAP_SNAP, dsap=0xAA, ethertype=0x0800)


# (frame kind, pkt_format) -> how many leading octets of the frame the user's isr does not get:
# AIX's Ethernet demuxer (NS_ETHERTYPE: the MAC header unless NS_INCLUDE_MAC) and common 802.2
# demuxer (NS_PROTO: MAC + LLC, NS_PROTO_SNAP: MAC + LLC + SNAP, NS_INCLUDE_LLC: MAC only)
STRIPPED = {
    ("ether_ii", "NS_PROTO"): 14, ("ether_ii", "NS_PROTO_SNAP"): 14,
    ("ether_ii", "NS_INCLUDE_LLC"): 14, ("ether_ii", "NS_INCLUDE_MAC"): 0,
    ("llc_dsap", "NS_PROTO"): 17, ("llc_dsap", "NS_PROTO_SNAP"): 17,     # no SNAP to remove
    ("llc_dsap", "NS_INCLUDE_LLC"): 14, ("llc_dsap", "NS_INCLUDE_MAC"): 0,
    ("llc_snap", "NS_PROTO"): 17, ("llc_snap", "NS_PROTO_SNAP"): 22,     # NS_PROTO leaves SNAP
    ("llc_snap", "NS_INCLUDE_LLC"): 14, ("llc_snap", "NS_INCLUDE_MAC"): 0,
}
FRAMES = {"ether_ii": ether_ii, "llc_dsap": llc_dsap, "llc_snap": llc_snap}


@pytest.mark.parametrize(("kind", "fmt"), sorted(STRIPPED))
def test_stripping_rule(kind: str, fmt: str) -> None:
    ns = services()
    nd = opened(ns)
    raw, flt = FRAMES[kind]()
    got: list[tuple[bytes, bytes, bytes, object]] = []
    ns.ns_add_filter(nd, flt, NsUser(lambda n, pkt, data: got.append((pkt.tobytes(), pkt.ll_dst, pkt.ll_src, data)),
                                     "cookie", getattr(C, fmt)))
    nd.deliver(PacketBuffer(raw))
    assert got == [(raw[STRIPPED[kind, fmt]:], MAC_US, MAC_PEER, "cookie")]


def test_snap_user_under_ns_proto_reads_the_snap_header_itself() -> None:
    # what NS_PROTO leaves of an RFC 1042 frame starts with the OUI and the ethertype
    ns = services()
    nd = opened(ns)
    raw, flt = llc_snap()
    got: list[bytes] = []
    ns.ns_add_filter(nd, flt, NsUser(lambda n, pkt, data: got.append(pkt.tobytes())))
    nd.deliver(PacketBuffer(raw))
    assert got[0][:5] == b"\x00\x00\x00\x08\x00" and got[0][5:] == PAYLOAD


@pytest.mark.parametrize("fmt", ["NS_PROTO", "NS_PROTO_SNAP", "NS_INCLUDE_LLC", "NS_INCLUDE_MAC"])
def test_raw_ip_frames_are_never_cut(fmt: str) -> None:
    # a TUN frame has no link header: every pkt_format gets the IP packet as it came
    ns = services()
    tun = RawNdd()
    ns.ns_attach(tun)
    ns.ns_alloc("tun0")
    got: list[bytes] = []
    ns.ns_add_filter(tun, NsFilter(C.NS_IPVERSION, version=4),
                     NsUser(lambda n, pkt, data: got.append(pkt.tobytes()), None, getattr(C, fmt)))
    packet = b"\x45" + bytes(19)
    tun.deliver(PacketBuffer(packet))
    assert got == [packet]


class RawNdd(WireNdd):
    ndd_type = C.NDD_RAWIP

    def __init__(self) -> None:
        super().__init__("tun0")


class AtmWire(WireNdd):
    ndd_type = C.NDD_ATM
    ndd_hdrlen = 4

    def __init__(self) -> None:
        super().__init__("atm0")


@pytest.mark.parametrize(("fmt", "cut"), [("NS_PROTO", 4), ("NS_PROTO_SNAP", 4), ("NS_INCLUDE_LLC", 4),
                                          ("NS_INCLUDE_MAC", 0)])
def test_atm_vc_users_get_the_sdu_whole_llc_included(fmt: str, cut: int) -> None:
    # CLIP's SDUs start with LLC/SNAP (RFC 2684): only the 4-octet link header is ever removed,
    # and it travels in ll_src
    from ndd.atm import atm_link_header

    ns = services()
    atm = AtmWire()
    ns.ns_attach(atm)
    ns.ns_alloc("atm0")
    got: list[tuple[bytes, bytes]] = []
    ns.ns_add_filter(atm, NsFilter(C.NS_ATM_VC, vpi=0, vci=100),
                     NsUser(lambda n, pkt, data: got.append((pkt.tobytes(), pkt.ll_src)), None, getattr(C, fmt)))
    sdu = atm_link_header(0, 100) + SNAP_IP + b"\x45" + bytes(19)
    atm.deliver(PacketBuffer(sdu))
    assert got[0][0] == sdu[cut:]
    assert got[0][1] == (atm_link_header(0, 100) if cut else b"")


def test_protoq_user_is_queued_and_its_netisr_drains_it() -> None:
    # ns_user with protoq + netisr (AIX: IF_ENQUEUE then schednetisr): no isr is called; the
    # queue is bounded and a full one drops (IF_DROP), counted in ifq_drops and nd_dmxstats.nd_nobufs
    ns = services()
    nd = opened(ns)
    raw, flt = ether_ii()
    q = IfQueue(ifq_maxlen=2)
    drained: list[bytes] = []
    ns.add_netisr(7, lambda: None)                  # a software interrupt that leaves the queue
    ns.ns_add_filter(nd, flt, NsUser(None, None, C.NS_PROTO, protoq=q, netisr=7))
    for _ in range(3):
        nd.deliver(PacketBuffer(raw))
    assert (q.ifq_len, q.ifq_drops, nd.ndd_nsdemux.nd_dmxstats.nd_nobufs) == (2, 1, 1)
    ns.del_netisr(7)

    def netisr() -> None:
        while (item := q.dequeue()) is not None:
            drained.append(item[1].tobytes())

    ns.add_netisr(7, netisr)
    nd.deliver(PacketBuffer(raw))                   # still full: dropped, nothing scheduled
    assert (drained, q.ifq_drops) == ([], 2)
    ns.schednetisr(7)
    nd.deliver(PacketBuffer(raw))                   # queued, and the netisr runs at once
    assert drained == [PAYLOAD] * 3 and q.ifq_len == 0


def test_netisr_table_errors() -> None:
    ns = services()
    ns.add_netisr(3, lambda: None)
    for call, err in [(lambda: ns.add_netisr(3, lambda: None), errno.EEXIST),
                      (lambda: ns.add_netisr(0, lambda: None), errno.EINVAL),
                      (lambda: ns.del_netisr(4), errno.ENOENT)]:
        with pytest.raises(OSError) as exc:
            call()
        assert exc.value.errno == err


class Ifnet:
    def __init__(self, flags: int) -> None:
        self.flags = flags


def test_ifp_user_receives_only_while_its_interface_is_up() -> None:
    ns = services()
    nd = opened(ns)
    raw, flt = ether_ii()
    ifp = Ifnet(0x1)                                   # IFF_UP
    got: list[bytes] = []
    ns.ns_add_filter(nd, flt, NsUser(lambda n, pkt, data: got.append(pkt.tobytes()), ifp=ifp))
    nd.deliver(PacketBuffer(raw))
    ifp.flags = 0
    nd.deliver(PacketBuffer(raw))
    assert got == [PAYLOAD] and nd.stats.ndd_ipackets_drop == 1


@pytest.mark.parametrize("user", [
    NsUser(None),                                                 # neither isr nor netisr
    NsUser(lambda *a: None, protoq=IfQueue()),                    # a protoq without a netisr
    NsUser(None, netisr=5),                                       # a netisr with nothing to queue on
    NsUser(lambda *a: None, None, C.NS_PROTO | C.NS_HANDLE_NON_UI),   # XID/TEST handling: not ours
    NsUser(lambda *a: None, None, 2 | 8),                         # two formats at once
    NsUser(lambda *a: None, None, 0),
])
def test_bad_ns_user_is_einval(user: NsUser) -> None:
    ns = services()
    nd = opened(ns)
    with pytest.raises(OSError) as exc:
        ns.ns_add_filter(nd, ether_ii()[1], user)
    assert exc.value.errno == errno.EINVAL
    assert not ns.demuxers[C.NDD_ISO88023].filters.get("en0")    # nothing was registered


# --- point 5: the NDD structure, ndd_genstats, nd_dmxstats, capability flags ----------------------
# struct ndd_genstats of <sys/ndd.h> (AIX 5.3), in its order; the _msw/_lsw halves of a 64-bit
# counter are one Python int under the name without the suffix, and ndd_stat_reserved is left out
GENSTATS_FIELDS = [
    "ndd_elapsed_time", "ndd_ipackets", "ndd_ibytes", "ndd_recvintr", "ndd_ierrors",
    "ndd_opackets", "ndd_obytes", "ndd_xmitintr", "ndd_oerrors", "ndd_nobufs",
    "ndd_xmitque_max", "ndd_xmitque_ovf", "ndd_ipackets_drop", "ndd_ibadpackets",
    "ndd_opackets_drop", "ndd_xmitque_cur", "ndd_ifOutUcastPkts", "ndd_ifOutMcastPkts",
    "ndd_ifOutBcastPkts",
]
# struct nd_dmxstats of <sys/cdli.h>
DMXSTATS_FIELDS = ["nd_nofilter", "nd_nobufs", "nd_bcast", "nd_mcast"]


def test_genstats_and_dmxstats_have_the_header_names_in_order() -> None:
    from dataclasses import fields as dc_fields

    from ndd.ndd import GenStats, NdDmxStats

    assert [f.name for f in dc_fields(GenStats)] == GENSTATS_FIELDS
    assert [f.name for f in dc_fields(NdDmxStats)] == DMXSTATS_FIELDS
    # the demuxer's counters are not in ndd_genstats
    assert not set(DMXSTATS_FIELDS) & set(GENSTATS_FIELDS)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_elapsed_time_counts_from_attach_and_clear() -> None:
    clock = Clock()
    ns = NetServices(lambda *a: None, clock)
    nd = WireNdd()
    clock.t += 50                                 # before the NDD joins the stack: not counted
    ns.ns_attach(nd)
    clock.t += 7.9
    assert nd.ndd_ctl(C.NDD_GET_STATS)["ndd_elapsed_time"] == 7
    nd.ndd_ctl(C.NDD_CLEAR_STATS)
    clock.t += 3
    assert nd.ndd_ctl(C.NDD_GET_STATS)["ndd_elapsed_time"] == 3


def test_output_counters_by_address_kind_and_refusals() -> None:
    # ifOut{U,M,B}castPkts count requests (sent or not, RFC 2863); a closed NDD's refusals are
    # ndd_opackets_drop, a full queue's ndd_xmitque_ovf, any other errno ndd_oerrors
    ns = services()
    nd = WireNdd()
    ns.ns_attach(nd)
    assert nd.ndd_output(frame(MAC_PEER)) == errno.ENETDOWN          # not opened yet
    ns.ns_alloc("en0")
    for dst in (BCAST, MCAST, MAC_PEER):
        assert nd.ndd_output(frame(dst)) == 0
    results = iter([errno.ENOBUFS, errno.EIO])
    nd._transmit = lambda pkt: next(results)      # type: ignore[method-assign]
    assert nd.ndd_output(frame(MAC_PEER)) == errno.ENOBUFS
    assert nd.ndd_output(frame(MAC_PEER)) == errno.EIO
    s = nd.stats
    assert (s.ndd_ifOutBcastPkts, s.ndd_ifOutMcastPkts, s.ndd_ifOutUcastPkts) == (1, 1, 4)
    assert (s.ndd_opackets, s.ndd_opackets_drop, s.ndd_xmitque_ovf, s.ndd_oerrors) == (3, 1, 1, 1)
    mib = nd.ndd_ctl(C.NDD_MIB_GET)
    assert (mib["ifOutDiscards"], mib["ifOutErrors"], mib["ifOutBroadcastPkts"]) == (2, 1, 1)


def test_dmxstats_are_the_demuxers_per_ndd() -> None:
    # nd_bcast / nd_mcast / nd_nofilter land in the NDD's ndd_nsdemux, never in ndd_genstats
    ns = services()
    a, b = opened(ns, "en0"), opened(ns, "en1")
    a.ndd_ctl(C.NDD_ENABLE_ADDRESS, MCAST)
    for dst in (BCAST, MCAST, MAC_US):
        a.deliver(frame(dst))                    # nobody's ethertype: each is nd_nofilter too
    da, db = a.ndd_nsdemux.nd_dmxstats, b.ndd_nsdemux.nd_dmxstats
    assert (da.nd_bcast, da.nd_mcast, da.nd_nofilter) == (1, 1, 3)
    assert db.as_dict() == dict.fromkeys(DMXSTATS_FIELDS, 0)
    assert not set(a.ndd_ctl(C.NDD_GET_STATS)) & set(DMXSTATS_FIELDS)
    mib = a.ndd_ctl(C.NDD_MIB_GET)
    assert (mib["ifInBroadcastPkts"], mib["ifInMulticastPkts"], mib["ifInUnknownProtos"]) == (1, 1, 3)
    a.ndd_ctl(C.NDD_CLEAR_STATS)                 # the device's counters only
    assert da.nd_nofilter == 3 and a.stats.ndd_ipackets == 0


def test_demuxer_linkage_fields() -> None:
    ns = services()
    nd = WireNdd()
    ns.ns_attach(nd)
    assert (nd.ndd_demuxer, nd.ndd_specdemux) == (None, None)
    ns.ns_alloc("en0")
    demux = ns.demuxers[C.NDD_ISO88023]
    assert nd.ndd_demuxer is demux and nd.ndd_demuxsource == 0
    flt = NsFilter(C.NS_ETHERTYPE, ethertype=ETHERTYPE_TEST)
    user = NsUser(lambda *a: None)
    ns.ns_add_filter(nd, flt, user)
    assert nd.ndd_specdemux[flt.key()] is user     # the demuxer's per-NDD control: its filter table
    ns.ns_del_filter(nd, flt)
    ns.ns_free(nd)
    ns.ns_detach(nd)
    assert nd.ndd_flags & C.NDD_DETACHED and nd.ndd_demuxer is None
    ns.ns_attach(nd)
    assert not nd.ndd_flags & C.NDD_DETACHED


def test_alias_names_the_ndd_too() -> None:
    # ndd_alias: the alternate name (AIX: en0 / ent0); ns_alloc takes either, ns_attach refuses
    # a name or alias already taken
    ns = services()
    nd = WireNdd("en0")
    nd.ndd_alias = "ent0"
    ns.ns_attach(nd)
    assert ns.ns_alloc("ent0") is nd and ns.refcount["en0"] == 1 and nd.is_open
    for name, alias in (("ent0", ""), ("en5", "en0"), ("en6", "ent0")):
        other = WireNdd(name)
        other.ndd_alias = alias
        with pytest.raises(OSError) as exc:
            ns.ns_attach(other)
        assert exc.value.errno == errno.EEXIST


def test_specstats_are_the_devices_own_and_get_stats_has_both() -> None:
    from drivers.atm.adapter import AtmNdd

    assert WireNdd().ndd_specstats is None
    atm = AtmNdd("atm0")
    assert atm.ndd_specstats is atm.atm_stats
    atm.atm_stats.rcv_cells = 5
    stats = atm.ndd_ctl(C.NDD_GET_STATS)
    assert list(stats)[:len(GENSTATS_FIELDS)] == GENSTATS_FIELDS and stats["rcv_cells"] == 5
    atm.ndd_ctl(C.NDD_CLEAR_STATS)
    assert atm.atm_stats.rcv_cells == 0


@pytest.mark.parametrize(("caps", "flag", "flag2"), [
    ({}, 0, 0),
    ({"tx_csum_offload": True, "rx_csum_partial": True}, C.NDD_CHECKSUM_OFFLOAD, 0),
    ({"rx_csum_partial": True, "gso_rx": True, "tso_max": 65535}, C.NDD_CHECKSUM_OFFLOAD, C.NDD_2_LARGE_RECEIVE),
])
def test_capabilities_show_as_aix_flags_once_open(caps: dict[str, Any], flag: int, flag2: int) -> None:
    ns = services()
    nd = WireNdd()
    for k, v in caps.items():
        setattr(nd.caps, k, v)
    ns.ns_attach(nd)
    ns.ns_alloc("en0")
    assert nd.ndd_flags & (C.NDD_CHECKSUM_OFFLOAD | C.NDD_SPECFLAGS) == flag
    assert nd.ndd_2_flags == flag2
