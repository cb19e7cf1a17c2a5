"""Known vectors from the Linux kernel (6.18, captured with tcpdump on a veth pair between two
network namespaces; one bridge side ran the bridge's MLD querier): what the kernel sends
when an interface comes up (MLDv2 reports from :: and from its link-local address, the
DAD probe with its RFC 7527 nonce, the Router Solicitation), address resolution, ping,
a port unreachable, an MLDv1 query and the v1 report answering it.  Each must parse,
pass its receipt checks, and emit back to the very same octets."""
from __future__ import annotations

import struct

import pytest

from protocols.icmpv6 import mld, nd
from protocols.icmpv6.message import parse_message
from protocols.icmpv6.mld import McastRecord, MldReport, MldV1Query, MldV1Report
from protocols.icmpv6.nd import NeighborAdvertisement, NeighborSolicitation, RouterSolicitation
from protocols.icmpv6.wire import DestUnreachable, EchoReply, EchoRequest

VECTORS = {
    "mld2_report_from_unspecified":
        "600000000024000100000000000000000000000000000000ff020000000000000000000000000016"
        "3a000502000001008f0093990000000104000000ff0200000000000000000001ff01dbef",
    "dad_probe_with_nonce":
        "6000000000203aff00000000000000000000000000000000ff0200000000000000000001ff01dbef"
        "870099a700000000fe80000000000000e86142fffe01dbef0e013ebd66a34dd2",
    "router_solicitation":
        "6000000000103afffe80000000000000e86142fffe01dbefff020000000000000000000000000002"
        "85006e88000000000101ea614201dbef",
    "mld2_report_two_groups":
        "6000000000380001fe80000000000000e86142fffe01dbefff020000000000000000000000000016"
        "3a000502000001008f008da90000000204000000ff0200000000000000000001ff000002"
        "04000000ff0200000000000000000001ff01dbef",
    "neighbor_solicitation":
        "6000000000203aff20010db8000000000000000000000001ff0200000000000000000001ff000002"
        "870063b30000000020010db8000000000000000000000002010192cd67e7bfbf",
    "neighbor_advertisement":
        "6000000000203aff20010db800000000000000000000000220010db8000000000000000000000001"
        "880084206000000020010db80000000000000000000000020201ea614201dbef",
    "echo_request":
        "60071edd00203a4020010db800000000000000000000000120010db8000000000000000000000002"
        "800092f101ec0001bd04156b000000006d910300000000001011121314151617",
    "echo_reply":
        "600969f300203a4020010db800000000000000000000000220010db8000000000000000000000001"
        "810091f101ec0001bd04156b000000006d910300000000001011121314151617",
    "port_unreachable":
        "600504a8003d3a4020010db800000000000000000000000220010db8000000000000000000000001"
        "0104fb7d0000000060025b44000d114020010db800000000000000000000000120010db8"
        "000000000000000000000002e00c0009000d5b9368656c6c6f",
    "mld1_query_from_bridge":
        "6000000000200001fe80000000000000c02ecafffed08354ff020000000000000000000000000001"
        "3a0005020000000082004bc42710000000000000000000000000000000000000",
    "mld1_report":
        "6000000000200001fe80000000000000a468e5fffe9951f1ff0200000000000000000001ff9951f1"
        "3a000502000001008300021a00000000ff0200000000000000000001ff9951f1",
}


def split(packet: bytes) -> tuple[int, int, int, bytes]:
    """(src, dst, hop limit, ICMPv6 message) of a captured IPv6 packet, stepping over the
    MLD messages' hop-by-hop header (RFC 3810 §5: the Router Alert)."""
    nh, hops = packet[6], packet[7]
    body = packet[40:40 + struct.unpack_from("!H", packet, 4)[0]]
    if nh == 0:
        nh, body = body[0], body[(body[1] + 1) * 8:]
    assert nh == 58
    return int.from_bytes(packet[8:24], "big"), int.from_bytes(packet[24:40], "big"), hops, body


def check(name: str) -> tuple[object, int, int]:
    src, dst, hops, message = split(bytes.fromhex(VECTORS[name]))
    msg = parse_message(message, src, dst)
    assert not isinstance(msg, tuple), msg
    if isinstance(msg, nd.AnyNdMessage):
        assert nd.validate(msg, src, dst, hops) is None
    if isinstance(msg, mld.AnyMldMessage):
        assert mld.validate(msg, src, dst, hops) is None
    assert msg.emit(src, dst) == message                   # the kernel's octets, checksum included
    return msg, src, dst


def test_mld_reports_as_the_interface_comes_up() -> None:
    """RFC 3810 §5.2.13: sent from :: while the link-local address is tentative."""
    msg, src, _ = check("mld2_report_from_unspecified")
    assert src == 0 and msg == MldReport(records=(McastRecord(mld.CHANGE_TO_EXCLUDE_MODE,
                                                               0xFF02_0000_0000_0000_0000_0001_FF01_DBEF),))
    msg, src, _ = check("mld2_report_two_groups")
    assert isinstance(msg, MldReport) and [r.type for r in msg.records] == [4, 4] and src >> 112 == 0xFE80


def test_dad_probe_carries_a_nonce_and_no_source_lladdr() -> None:
    """RFC 4862 §5.4.2, RFC 7527 (Linux enhanced_dad): from ::, to the solicited-node group."""
    msg, src, dst = check("dad_probe_with_nonce")
    assert isinstance(msg, NeighborSolicitation) and src == 0 and msg.source_lladdr is None
    assert msg.nonce == bytes.fromhex("3ebd66a34dd2") and dst & 0xFFFFFF == msg.target & 0xFFFFFF


def test_router_solicitation() -> None:
    msg, _, _ = check("router_solicitation")
    assert isinstance(msg, RouterSolicitation) and msg.source_lladdr == bytes.fromhex("ea614201dbef")


def test_neighbor_solicitation_and_advertisement() -> None:
    ns, _, _ = check("neighbor_solicitation")
    assert isinstance(ns, NeighborSolicitation) and ns.source_lladdr == bytes.fromhex("92cd67e7bfbf")
    na, _, _ = check("neighbor_advertisement")
    assert isinstance(na, NeighborAdvertisement) and na.target == ns.target
    assert (na.router, na.solicited, na.override, na.target_lladdr) == (False, True, True,
                                                                        bytes.fromhex("ea614201dbef"))


def test_ping() -> None:
    req, _, _ = check("echo_request")
    rep, _, _ = check("echo_reply")
    assert isinstance(req, EchoRequest) and isinstance(rep, EchoReply) and req.reply() == rep
    assert (req.ident, req.seq, len(req.data)) == (0x01EC, 1, 24)


def test_port_unreachable_quotes_the_datagram() -> None:
    msg, _, _ = check("port_unreachable")
    assert isinstance(msg, DestUnreachable) and msg.code == 4
    quoted = msg.quoted()
    assert not isinstance(quoted, str) and quoted.next_header == 17
    assert quoted.after_header[8:] == b"hello"


@pytest.mark.parametrize("name", ["mld1_query_from_bridge", "mld1_report"])
def test_mldv1(name: str) -> None:
    """RFC 2710: the bridge's general query (10 s) and the v1 report a v2 host answers with
    in compatibility mode (RFC 3810 §8.2.1)."""
    msg, _, _ = check(name)
    if isinstance(msg, MldV1Query):
        assert (msg.group, msg.max_resp_delay) == (0, 10000)
    else:
        assert isinstance(msg, MldV1Report) and msg.group >> 120 == 0xFF
