"""IPv4 input and output (RFC 791; RFC 1122 §3.2.1 host rules; RFC 6864 IDs) over the real
interface/routing/protocol tables and a recording link."""
from __future__ import annotations

import errno
import itertools
import os
import socket
import struct

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ndd.checksum import verify
from ndd.pktbuf import PacketBuffer
from protocols.addr import ip_to_int
from protocols.contracts import Protosw
from protocols.ifnet import IFF_RUNNING
from protocols.ipfrag import Reassembler
from protocols.ipv4 import FLAG_DF, FLAG_MF, IpMeta, Ipv4Repr

from .fakes import Host, RecordingLink, ip_packet, make_host, rx

US, PEER = "10.0.0.2", "10.0.0.1"
UDP = 17


class Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[bytes, IpMeta, PacketBuffer]] = []

    def input(self, pkt: PacketBuffer, meta: IpMeta, now: float) -> None:
        self.got.append((pkt.tobytes(), meta, pkt))


@pytest.fixture
def host() -> Host:
    return make_host()


@pytest.fixture
def udp(host: Host) -> Recorder:
    rec = Recorder()
    host.protosw.add(socket.AF_INET, Protosw("udp", socket.SOCK_DGRAM, UDP, input=rec.input))
    return rec


def deliver(host: Host, data: bytes, now: float = 0.0) -> None:
    host.ipv4.input(host.eth0, rx(data), now)


# --- input ------------------------------------------------------------------
def test_delivery_with_meta(host: Host, udp: Recorder) -> None:
    deliver(host, ip_packet(PEER, US, UDP, b"12345678payload", ttl=33, tos=0x10))
    (data, meta, pkt), = udp.got
    assert data == b"12345678payload"
    assert (meta.src, meta.dst, meta.proto, meta.ttl, meta.tos, meta.hdr_len) == \
        (ip_to_int(PEER), ip_to_int(US), UDP, 33, 0x10, 20)
    assert meta.ifp is host.eth0 and not meta.bcast
    assert meta.original(pkt) == ip_packet(PEER, US, UDP, b"12345678payload", ttl=33, tos=0x10)[:28]
    assert host.ipv4.stats.in_receives == 1 and host.ipv4.stats.in_delivers == 1


def test_options_are_stripped(host: Host, udp: Recorder) -> None:
    deliver(host, ip_packet(PEER, US, UDP, b"data", options=b"\x01\x01\x01\x00"))
    (data, meta, _), = udp.got
    assert data == b"data" and meta.hdr_len == 24


def test_trailing_padding_trimmed(host: Host, udp: Recorder) -> None:
    # Ethernet pads short frames to 60 octets: only total_len belongs to the datagram
    deliver(host, ip_packet(PEER, US, UDP, b"tiny") + bytes(22))
    (data, _, _), = udp.got
    assert data == b"tiny"


def test_broadcast_delivered_and_flagged(host: Host, udp: Recorder) -> None:
    deliver(host, ip_packet(PEER, "10.0.0.255", UDP, b"x"))
    deliver(host, ip_packet(PEER, "255.255.255.255", UDP, b"y"))
    assert [(d, m.bcast) for d, m, _ in udp.got] == [(b"x", True), (b"y", True)]


def _bad_version() -> bytes:
    p = bytearray(ip_packet(PEER, US, UDP, b"x"))
    p[0] = 0x65
    return bytes(p)


def _bad_csum() -> bytes:
    p = bytearray(ip_packet(PEER, US, UDP, b"x"))
    p[10] ^= 0x55
    return bytes(p)


@pytest.mark.parametrize("data,counter", [
    (b"", "in_truncated"),
    (ip_packet(PEER, US, UDP)[:19], "in_truncated"),
    (_bad_version(), "in_hdr_errors"),
    (bytes([0x44]) + ip_packet(PEER, US, UDP)[1:], "in_hdr_errors"),           # IHL 16 < 20
    (bytes([0x4F]) + ip_packet(PEER, US, UDP)[1:], "in_truncated"),            # IHL 60 > 20 octets
    (ip_packet(PEER, US, UDP, b"x", total=19), "in_hdr_errors"),               # total < IHL
    (ip_packet(PEER, US, UDP, b"x", total=100), "in_truncated"),               # total > buffer
    (_bad_csum(), "in_csum_errors"),
])
def test_malformed_counted_not_raised(host: Host, udp: Recorder, data: bytes, counter: str) -> None:
    deliver(host, data)
    stats = host.ipv4.stats.as_dict()
    assert stats[counter] == 1 and stats["in_receives"] == 1
    assert stats["in_delivers"] == 0 and udp.got == []


@pytest.mark.parametrize("src", ["224.0.0.5", "255.255.255.255", "240.0.0.1", "0.1.2.3", "127.0.0.1"])
def test_martian_source_dropped(host: Host, udp: Recorder, src: str) -> None:
    # RFC 1122 §3.2.1.3: such sources are discarded (127/8 only valid on loopback)
    deliver(host, ip_packet(src, US, UDP, b"x"))
    assert host.ipv4.stats.in_martians == 1 and udp.got == []


@pytest.mark.parametrize("src", [US, "10.0.0.255"])
def test_own_or_broadcast_source_from_the_wire_dropped(host: Host, udp: Recorder, src: str) -> None:
    # Linux fib_validate_source (accept_local 0): our own address or the subnet broadcast as
    # the source of a packet arriving from outside is spoofed (the LAND attack's first step)
    deliver(host, ip_packet(src, US, UDP, b"x"))
    assert host.ipv4.stats.in_martians == 1 and udp.got == []


@pytest.mark.parametrize("transparent", [False, True])
def test_loopback_destination_from_the_wire_dropped(host: Host, udp: Recorder, transparent: bool) -> None:
    # RFC 1122 §3.2.1.3: 127/8 never appears outside a host -- a frame to 127.0.0.1 is a
    # martian destination on any interface but lo, even a gateway's transparent one (it
    # was delivered to the stack's own loopback address)
    host.eth0.transparent = transparent
    host.add_interface("lo", "127.0.0.1", 8, 65536)          # 127.0.0.1 is ours, on another interface
    deliver(host, ip_packet(PEER, "127.0.0.1", UDP, b"x"))
    deliver(host, ip_packet(PEER, "127.0.0.2", UDP, b"x"))
    assert host.ipv4.stats.in_addr_errors == 2 and udp.got == []


def test_not_for_us_dropped(host: Host, udp: Recorder) -> None:
    # RFC 1122 §3.3.1: a host does not forward
    deliver(host, ip_packet(PEER, "10.0.0.99", UDP, b"x"))
    deliver(host, ip_packet(PEER, "224.0.0.9", UDP, b"x"))      # a group we have not joined
    assert host.ipv4.stats.in_addr_errors == 2 and udp.got == []


def test_all_hosts_group_accepted(host: Host, udp: Recorder) -> None:
    deliver(host, ip_packet(PEER, "224.0.0.1", UDP, b"x"))
    assert len(udp.got) == 1 and udp.got[0][1].bcast


def test_unknown_protocol_sends_protocol_unreachable(host: Host) -> None:
    # RFC 1122 §3.2.2.1: protocol unreachable (type 3 code 2)
    calls: list[tuple[int, int, bytes, IpMeta, int]] = []
    host.ipv4.send_icmp_error = lambda t, c, pkt, meta, now, extra=0: calls.append((t, c, pkt.tobytes(), meta, extra))
    dgram = ip_packet(PEER, US, 99, b"whatever")
    deliver(host, dgram)
    (t, c, data, meta, extra), = calls
    assert (t, c, extra) == (3, 2, 0)
    assert data == dgram and meta.proto == 99 and meta.hdr_start == 14
    assert host.ipv4.stats.in_unknown_protos == 1 and host.ipv4.stats.in_delivers == 0


def test_fragments_reassembled_before_delivery(host: Host, udp: Recorder) -> None:
    payload = os.urandom(100)
    deliver(host, ip_packet(PEER, US, UDP, payload[48:], ident=7, ff=6), 0.0)
    deliver(host, ip_packet(PEER, US, UDP, payload[:48], ident=7, ff=FLAG_MF), 1.0)
    (data, meta, _), = udp.got
    assert data == payload and meta.src == ip_to_int(PEER)


def test_reassembly_uses_first_fragment_header_length(host: Host, udp: Recorder) -> None:
    # RFC 791 §3.2: options not copied on fragmentation appear only in the first fragment,
    # so the header to strip is fragment zero's, not the last arrival's
    payload = os.urandom(64)
    deliver(host, ip_packet(PEER, US, UDP, payload[:32], ident=8, ff=FLAG_MF, options=b"\x01\x01\x01\x00"))
    deliver(host, ip_packet(PEER, US, UDP, payload[32:], ident=8, ff=4))
    (data, meta, _), = udp.got
    assert data == payload and meta.hdr_len == 24


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80), st.booleans())
def test_random_input_never_raises(data: bytes, fix_version: bool) -> None:
    host = make_host()
    if fix_version and data:
        data = bytes([0x45]) + data[1:]
    host.ipv4.input(host.eth0, PacketBuffer(data), 0.0)
    s = host.ipv4.stats
    assert s.in_receives == 1


# --- output -----------------------------------------------------------------
def sent_headers(link: RecordingLink) -> list[Ipv4Repr]:
    out = []
    for data, _, _ in link.sent:
        ip = Ipv4Repr.parse(data)
        assert isinstance(ip, Ipv4Repr)
        out.append(ip)
    return out


def send(host: Host, dst: str, payload: bytes = b"payload", **kw) -> int:
    return host.ipv4.output(PacketBuffer.from_payload(payload), kw.pop("src", 0), ip_to_int(dst), UDP, 0.0, **kw)


def test_output_on_connected_route(host: Host) -> None:
    assert send(host, PEER, b"hello") == 0
    (data, nexthop, _), = host.link.sent
    assert nexthop == ip_to_int(PEER)
    d = dpkt.ip.IP(data)
    assert (d.src, d.dst, d.p, d.ttl, d.len, bytes(d.data)) == \
        (socket.inet_aton(US), socket.inet_aton(PEER), UDP, 64, 25, b"hello")
    assert verify(data[:20])


def test_route_selection_longest_prefix_and_default(host: Host) -> None:
    eth1, link1 = host.add_interface("eth1", "192.168.1.2", 24)
    host.routes.add("10.1.0.0/16", host.eth0, ip_to_int("10.0.0.1"))
    host.routes.add("10.1.2.0/24", eth1, ip_to_int("192.168.1.1"))
    host.routes.add("0.0.0.0/0", eth1, ip_to_int("192.168.1.254"))
    assert send(host, "10.1.2.3") == 0
    assert send(host, "10.1.9.9") == 0
    assert send(host, "8.8.8.8") == 0
    assert [(nh, ip.src) for (_, nh, _), ip in zip(link1.sent, sent_headers(link1), strict=True)] == \
        [(ip_to_int("192.168.1.1"), ip_to_int("192.168.1.2")), (ip_to_int("192.168.1.254"), ip_to_int("192.168.1.2"))]
    assert [(nh, ip.src) for (_, nh, _), ip in zip(host.link.sent, sent_headers(host.link), strict=True)] == \
        [(ip_to_int("10.0.0.1"), ip_to_int(US))]


def test_no_route_is_enetunreach(host: Host) -> None:
    assert send(host, "8.8.8.8") == errno.ENETUNREACH
    assert host.ipv4.stats.out_no_routes == 1 and host.link.sent == []


def test_local_destination_without_loopback(host: Host) -> None:
    assert send(host, US) == errno.ENETUNREACH


def test_interface_down_is_enetdown(host: Host) -> None:
    host.eth0.flags &= ~IFF_RUNNING
    assert send(host, PEER, ifp=host.eth0) == errno.ENETDOWN
    assert host.ipv4.stats.out_discards == 1


def test_link_error_is_returned(host: Host) -> None:
    host.link.err = errno.ENOBUFS
    assert send(host, PEER) == errno.ENOBUFS
    assert host.ipv4.stats.out_discards == 1


def test_source_selection(host: Host) -> None:
    host.ifnet.add_address(host.eth0, ip_to_int("172.16.0.2"), 16)
    host.routes.add("172.16.0.0/16", host.eth0)            # a route without a preferred source
    send(host, "172.16.5.5")
    send(host, PEER, src=ip_to_int("172.16.0.2"))           # an explicit source is kept
    # the limited broadcast: no covering route -> ENETUNREACH (Linux); a bound source picks its interface
    assert send(host, "255.255.255.255") == errno.ENETUNREACH
    send(host, "255.255.255.255", src=ip_to_int(US))
    assert [ip.src for ip in sent_headers(host.link)] == \
        [ip_to_int("172.16.0.2"), ip_to_int("172.16.0.2"), ip_to_int(US)]
    assert host.link.sent[2][1] == 0xFFFFFFFF


def test_ttl_default_and_never_zero(host: Host) -> None:
    # RFC 1122 §3.2.1.7: a host MUST NOT send a datagram with TTL 0
    send(host, PEER)
    send(host, PEER, ttl=0)
    send(host, PEER, ttl=1)
    assert [ip.ttl for ip in sent_headers(host.link)] == [64, 64, 1]


def test_ttl_or_tos_out_of_range_is_einval(host: Host) -> None:
    assert send(host, PEER, ttl=256) == errno.EINVAL
    assert send(host, PEER, tos=300) == errno.EINVAL
    assert send(host, PEER, ttl=-1) == errno.EINVAL
    assert host.link.sent == [] and host.ipv4.stats.out_discards == 3


def test_tos_and_df_are_emitted(host: Host) -> None:
    send(host, PEER, tos=0xB8, df=True)
    (ip,) = sent_headers(host.link)
    assert ip.tos == 0xB8 and ip.df and not ip.mf and ip.frag_offset == 0


def test_df_and_too_big_is_emsgsize(host: Host) -> None:
    assert send(host, PEER, bytes(1481), df=True) == errno.EMSGSIZE
    assert host.link.sent == [] and host.ipv4.stats.frag_fails == 1
    assert send(host, PEER, bytes(1480), df=True) == 0     # exactly the MTU fits


def test_partial_checksum_cannot_be_fragmented(host: Host) -> None:
    pkt = PacketBuffer.from_payload(bytes(3000))
    pkt.csum_start, pkt.csum_offset = pkt.start, 6
    assert host.ipv4.output(pkt, 0, ip_to_int(PEER), UDP, 0.0) == errno.EMSGSIZE
    assert host.link.sent == []


def test_gso_super_segment_is_not_fragmented(host: Host) -> None:
    pkt = PacketBuffer.from_payload(bytes(30000))
    pkt.gso_size = 1460
    assert host.ipv4.output(pkt, 0, ip_to_int(PEER), 6, 0.0) == 0
    (ip,) = sent_headers(host.link)
    assert ip.total_len == 30020 and not ip.mf


def test_too_big_for_ipv4_is_emsgsize(host: Host) -> None:
    assert send(host, PEER, bytes(65516)) == errno.EMSGSIZE
    pkt = PacketBuffer.from_payload(bytes(65516))
    pkt.gso_size = 1460
    assert host.ipv4.output(pkt, 0, ip_to_int(PEER), 6, 0.0) == errno.EMSGSIZE
    assert host.link.sent == []


def test_fragmentation_at_mtu_1500(host: Host) -> None:
    # RFC 791 §3.2: offsets in 8-octet units, MF on all but the last, same ID
    payload = os.urandom(4000)
    assert send(host, PEER, payload) == 0
    frags = sent_headers(host.link)
    assert len(frags) == 3
    assert [(f.frag_offset, f.mf, f.total_len) for f in frags] == [(0, True, 1500), (1480, True, 1500),
                                                                  (2960, False, 1060)]
    assert len({f.ident for f in frags}) == 1
    assert all(f.frag_offset % 8 == 0 and not f.df for f in frags)
    for data, nexthop, _ in host.link.sent:
        assert len(data) <= 1500 and verify(data[:20]) and nexthop == ip_to_int(PEER)
        d = dpkt.ip.IP(data)
        assert d.len == len(data)
    r = Reassembler()
    out = None
    for data, _, _ in reversed(host.link.sent):
        ip = Ipv4Repr.parse(data)
        assert isinstance(ip, Ipv4Repr)
        out = r.add((ip.src, ip.dst, ip.proto, ip.ident), data[:20], ip.frag_offset, data[20:], ip.mf, 0.0)
    assert out is not None and out[1] == payload
    assert host.ipv4.stats.frag_creates == 3 and host.ipv4.stats.frag_oks == 1


def test_fragments_reassemble_through_input() -> None:
    a, b = make_host("10.0.0.1"), make_host("10.0.0.2")
    rec = Recorder()
    b.protosw.add(socket.AF_INET, Protosw("udp", socket.SOCK_DGRAM, UDP, input=rec.input))
    payload = os.urandom(4000)
    assert send(a, "10.0.0.2", payload) == 0
    for data, _, _ in a.link.sent:
        b.ipv4.input(b.eth0, rx(data), 0.0)
    assert [d for d, _, _ in rec.got] == [payload]


def test_ident_changes_per_datagram(host: Host) -> None:
    # RFC 6864 §4.1: IDs must not repeat within a flow during the datagram lifetime
    for _ in range(5):
        send(host, PEER)
    idents = [ip.ident for ip in sent_headers(host.link)]
    assert len(set(idents)) == 5
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(idents))


def test_ident_not_shared_across_stacks() -> None:
    # different secrets: the first ID of a flow is not a global constant
    firsts = set()
    for seed in range(8):
        h = make_host(seed=seed)
        send(h, PEER)
        firsts.add(sent_headers(h.link)[0].ident)
    assert len(firsts) > 1


def test_explicit_interface_bypasses_routing(host: Host) -> None:
    assert send(host, "8.8.8.8", ifp=host.eth0) == 0
    (_, nexthop, _), = host.link.sent
    assert nexthop == ip_to_int("8.8.8.8")


def test_unreachable_from_link_reports_local_error(host: Host) -> None:
    got: list[tuple[int, int, bytes]] = []
    host.ipv4.local_error = lambda t, c, original, now: got.append((t, c, original))
    dgram = ip_packet(US, PEER, UDP, b"x" * 1000)
    host.ipv4.unreachable_from_link(PacketBuffer(dgram), 0.0)
    assert got == [(3, 1, dgram[:576])]


def test_output_header_parses_with_dpkt_fragment_fields(host: Host) -> None:
    send(host, PEER, bytes(2000))
    first, second = (dpkt.ip.IP(d) for d, _, _ in host.link.sent)
    assert first.mf and first.offset == 0 and second.offset == 1480 // 8 and not second.mf
    assert struct.unpack_from("!H", host.link.sent[1][0], 6)[0] & FLAG_DF == 0
