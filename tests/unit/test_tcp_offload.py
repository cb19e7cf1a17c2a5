"""TCP over a device with offloads (README "Offloads"): TSO super-segments with a partial
checksum on the way out, GSO super-frames taken as one segment on the way in."""
from __future__ import annotations

import random
import struct
from typing import Any

import pytest

from ndd import gso
from ndd.checksum import checksum, ones_sum, pseudo_header_sum
from ndd.ndd import DeviceCaps
from ndd.pktbuf import GSO_TCPV4, PacketBuffer
from protocols.addr import ip_to_int
from protocols.ipv4 import IPPROTO_TCP, IpMeta, Ipv4Repr
from protocols.tcp import seq as sq
from protocols.tcp.conn import State, TcpConfig
from protocols.tcp.tcp import Tcp
from protocols.tcp.wire import ACK, PSH, SYN, TcpRepr

from .fakes import make_host

US, PEER = ip_to_int("10.0.0.2"), ip_to_int("10.0.0.1")
T0 = 1000.0


class OffloadNet:
    def __init__(self, *, csum: bool = True, tso: bool = True) -> None:
        self.host = make_host()
        self.host.eth0.ndd.caps = DeviceCaps(mtu=1500, tx_csum_offload=csum, tso_max=65535 if tso else 0)  # type: ignore[attr-defined]
        self.sent: list[PacketBuffer] = []
        self.host.eth0.link.output = lambda pkt, nexthop, now: self.sent.append(pkt.copy()) or 0  # type: ignore[attr-defined]
        self.now = T0
        self.tcp = Tcp(self.host.ipv4, random.Random(3), lambda: self.now, TcpConfig(loss_probes=False, sndbuf=1 << 20))

    def established(self) -> Any:
        conn = self.tcp.attach()
        assert self.tcp.connect(conn, PEER, 80, self.now) == 0
        syn = self.segments()[0][0]
        self.rx(conn, SYN | ACK, 5000, sq.add(syn.seq, 1), mss=1460, wscale=7, sack_perm=True)
        assert conn.state == State.ESTABLISHED
        self.sent.clear()
        return conn

    def rx(self, conn: Any, flags: int, seqno: int, ack: int, payload: bytes = b"", *, gso: int = 0,
           win: int = 0xFFFF, **opts: Any) -> None:
        seg = TcpRepr(80, conn.lport, seqno, ack, flags, win, **opts)
        o = seg.options_bytes()
        data = bytearray(20 + len(o)) + payload
        seg.emit(data, o)
        pkt = PacketBuffer(bytes(data))
        if gso:
            # what the kernel hands over with NEEDS_CSUM: only the pseudo-header sum in the field
            struct.pack_into("!H", data, 16, pseudo_header_sum(PEER, US, IPPROTO_TCP, len(data)))
            pkt = PacketBuffer(bytes(data))
            pkt.gso_size, pkt.gso_type, pkt.csum_valid = gso, 1, True
        else:
            struct.pack_into("!H", data, 16, checksum(data, pseudo_header_sum(PEER, US, IPPROTO_TCP, len(data))))
            pkt = PacketBuffer(bytes(data))
        self.tcp.input(pkt, IpMeta(PEER, US, IPPROTO_TCP, 64, 0, 20, self.host.eth0, 0), self.now)

    def segments(self) -> list[tuple[TcpRepr, PacketBuffer]]:
        out = []
        for pkt in self.sent:
            ip = Ipv4Repr.parse(pkt.view())
            assert isinstance(ip, Ipv4Repr)
            seg = TcpRepr.parse(pkt.view()[ip.hdr_len:])
            assert isinstance(seg, TcpRepr)
            out.append((seg, pkt))
        self.sent.clear()
        return out


def test_tso_super_segments_with_partial_checksum() -> None:
    net = OffloadNet()
    conn = net.established()
    # the peer's window: 0xFFFF << 7, room for several super-segments
    net.rx(conn, ACK, 5001, conn.snd_una, win=0xFFFF)
    conn.cc.cwnd = 1 << 20
    data = bytes(random.Random(1).getrandbits(8) for _ in range(300_000))
    assert conn.send(memoryview(data), net.now) == len(data)
    segs = net.segments()
    assert len(segs) >= 2
    off = 0
    for seg, pkt in segs:
        ip_len = len(pkt)
        payload_len = ip_len - 20 - seg.hdr_len
        assert ip_len <= 65535
        assert pkt.gso_size == conn.mss and pkt.gso_type == 1          # virtio GSO_TCPV4
        # whole segments, but for the last super-segment: its short tail goes too (Minshall's
        # Nagle: no other short segment is unacknowledged)
        assert payload_len > conn.mss and (payload_len % conn.mss == 0 or off + payload_len == len(data))
        # the partial checksum: csum_start at the TCP header, offset 16, field = pseudo-header sum
        assert pkt.csum_start == pkt.start + 20 and pkt.csum_offset == 16
        field = struct.unpack_from("!H", pkt.view(), 20 + 16)[0]
        assert field == pseudo_header_sum(US, PEER, IPPROTO_TCP, ip_len - 20)
        # finishing it as the device would gives a valid TCP checksum
        done = pkt.copy()
        gso.finish_checksum(done)
        assert ones_sum(done.view()[20:], pseudo_header_sum(US, PEER, IPPROTO_TCP, ip_len - 20)) == 0xFFFF
        assert sq.diff(seg.seq, conn.iss + 1) == off
        assert bytes(pkt.view()[20 + seg.hdr_len:]) == data[off:off + payload_len]
        off += payload_len


@pytest.mark.parametrize("csum", [True, False])
def test_without_tso_the_device_layer_cuts_super_segments(csum: bool) -> None:
    """Without TSO, TCP still sends what Linux sends as one GSO skb as one super-segment
    with a partial checksum; the device layer (ndd/gso.py, Linux's software GSO) cuts it
    into MSS frames: contiguous sequence numbers, complete TCP and IPv4 checksums, one
    IPv4 ident each, PSH only on the last piece."""
    net = OffloadNet(csum=csum, tso=False)
    conn = net.established()
    net.rx(conn, ACK, 5001, conn.snd_una, win=0xFFFF)
    conn.cc.cwnd = 1 << 20
    data = random.Random(2).randbytes(20_000)
    conn.send(memoryview(data), net.now)
    supers = [p for _, p in net.segments()]
    assert any(p.gso_size == conn.mss and p.csum_start >= 0 for p in supers)
    caps = net.host.eth0.ndd.caps  # type: ignore[attr-defined]
    frames = [f for p in supers for f in (gso.frames_for(p, caps) or [])]
    off, idents = 0, set()
    for frame in frames:
        view = frame.view()
        ip = Ipv4Repr.parse(view)
        assert isinstance(ip, Ipv4Repr) and ip.total_len == len(frame) <= 1500 and not frame.gso_size
        assert ones_sum(view[:20]) == 0xFFFF                     # the IPv4 header checksum
        assert frame.csum_start < 0
        assert ones_sum(view[20:], pseudo_header_sum(US, PEER, IPPROTO_TCP, len(frame) - 20)) == 0xFFFF
        seg = TcpRepr.parse(view[20:])
        assert isinstance(seg, TcpRepr)
        assert sq.diff(seg.seq, conn.iss + 1) == off
        payload = bytes(view[20 + seg.hdr_len:])
        assert payload == data[off:off + len(payload)] and 0 < len(payload) <= conn.mss
        off += len(payload)
        idents.add(ip.ident)
    assert off == len(data) and len(idents) == len(frames)
    pushed = [i for i, f in enumerate(frames) if TcpRepr.parse(f.view()[20:]).flags & PSH]  # type: ignore[union-attr]
    assert pushed == [len(frames) - 1]                           # the write's last segment only


def test_a_lone_segment_without_checksum_offload_is_complete() -> None:
    """Only super-segments leave TCP with a partial checksum on such a device: a lone
    segment's is complete, and the device layer passes it as it is."""
    net = OffloadNet(csum=False, tso=False)
    conn = net.established()
    conn.send(memoryview(b"x" * 1000), net.now)
    (_, pkt), = net.segments()
    assert pkt.csum_start < 0 and not pkt.gso_size
    assert ones_sum(pkt.view()[20:], pseudo_header_sum(US, PEER, IPPROTO_TCP, len(pkt) - 20)) == 0xFFFF
    assert gso.frames_for(pkt, net.host.eth0.ndd.caps) == [pkt]  # type: ignore[attr-defined]


def test_gso_super_frame_is_one_segment() -> None:
    """A 60 000-octet super-frame from the kernel: the checksum field holds only the
    pseudo-header sum (not verified: csum_valid), the text is taken whole and, being more
    than two full segments, ACKed at once (RFC 9293 §3.8.6.3)."""
    net = OffloadNet()
    conn = net.established()
    conn.quickacks = 0
    payload = bytes(range(256)) * 234 + bytes(96)
    net.rx(conn, ACK, 5001, conn.snd_una, payload, gso=1448)
    assert len(conn.rcv) == len(payload) == 60_000
    assert conn.receive(100_000, False, net.now) == payload
    acks = [s for s, _ in net.segments() if s.flags == ACK]
    assert acks and acks[0].ack == sq.add(5001, 60_000)
    assert net.tcp.stats.in_csum_errors == 0


def test_software_gso_keeps_each_ipv4_header_whole_across_the_ident_wrap() -> None:
    """ndd/gso.py sums the IPv4 header once and adds each frame's length and ident: every
    frame's header still checks, keeps TOS, TTL, DF and the addresses, and the idents count
    on through 0xFFFF -> 0."""
    payload = random.Random(4).randbytes(5 * 1448 + 100)
    seg = TcpRepr(40000, 80, 7, 9, ACK | PSH, 100, ts=(5, 6))
    opts = seg.options_bytes()
    pkt = PacketBuffer.from_payload(memoryview(payload))
    hdr = pkt.prepend(20 + len(opts))
    seg.emit(hdr, opts)
    struct.pack_into("!H", hdr, 16, pseudo_header_sum(US, PEER, IPPROTO_TCP, len(pkt)))
    pkt.csum_start, pkt.csum_offset = pkt.start, 16
    Ipv4Repr(US, PEER, IPPROTO_TCP, 20 + len(pkt), 37, 0xB8, 0xFFFE, 0x4000).emit(pkt.prepend(20))
    pkt.gso_size, pkt.gso_type = 1448, GSO_TCPV4
    frames = gso.segment_tcp(pkt)
    assert frames is not None and len(frames) == 6
    for k, frame in enumerate(frames):
        view = frame.view()
        assert ones_sum(view[:20]) == 0xFFFF
        ip = Ipv4Repr.parse(view)
        assert isinstance(ip, Ipv4Repr)
        assert (ip.src, ip.dst, ip.ttl, ip.tos, ip.flags_frag, ip.total_len) == (US, PEER, 37, 0xB8, 0x4000, len(frame))
        assert ip.ident == (0xFFFE + k) & 0xFFFF
        assert ones_sum(view[20:], pseudo_header_sum(US, PEER, IPPROTO_TCP, len(frame) - 20)) == 0xFFFF
