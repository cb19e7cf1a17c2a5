"""Software GSO and checksum help: what a device without the offload does not do itself.

Linux's TCP builds super-segments whatever the device (GSO is a software feature,
NETIF_F_GSO, on by default) and leaves their checksum partial (CHECKSUM_PARTIAL).  Just
before the driver, validate_xmit_skb cuts a super-segment the device cannot take
(skb_gso_segment -> inet_gso_segment / tcp_gso_segment) and completes a checksum the
device cannot compute (skb_checksum_help).  tunstack does the same in `Ndd.ndd_output`,
so TCP's per-segment work (the send decision, RACK's record, the header, the route) is
paid once per super-segment, and a device without offloads still gets MSS frames with
complete checksums (issue 15: the per-segment cost without offloads).

Each piece gets, as tcp_gso_segment and inet_gso_segment give it: the headers copied,
its own sequence number, the IPv4 total length / IPv6 payload length, an IPv4 ident one
above the previous piece's (the IP layer reserved them), a fresh IPv4 header checksum,
a complete TCP checksum; FIN and PSH only on the last piece, CWR only on the first.
"""
from __future__ import annotations

import struct
from typing import Protocol

from .checksum import checksum, ones_sum
from .pktbuf import GSO_ECN, GSO_TCPV4, GSO_TCPV6, PacketBuffer

_FIN, _PSH, _CWR = 0x01, 0x08, 0x80
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_IP_LEN_ID = struct.Struct("!HH")              # an IPv4 header's total length and identification
IPPROTO_TCP = 6


class Offloads(Protocol):
    """What frames_for asks of a device (ndd.DeviceCaps has it)."""
    tso_max: int
    tx_csum_offload: bool


def frames_for(pkt: PacketBuffer, caps: Offloads) -> list[PacketBuffer] | None:
    """What a device with `caps` is handed for `pkt` (Linux validate_xmit_skb): the packet,
    its checksum finished if the device cannot, or its pieces if it cannot take a
    super-segment; None for a super-segment that cannot be cut.  Ndd.ndd_output calls it
    when there is something to do; the recording fakes in the tests, always."""
    if pkt.csum_start >= 0:
        if pkt.gso_size and not caps.tso_max:
            return segment_tcp(pkt)
        if not caps.tx_csum_offload:
            finish_checksum(pkt)
    return [pkt]


def finish_checksum(pkt: PacketBuffer) -> None:
    """Complete a partial L4 checksum in place, as the device would (virtio NEEDS_CSUM:
    the field holds the folded pseudo-header sum; sum from csum_start to the end)."""
    if pkt.csum_start < 0:
        return
    if not isinstance(pkt.buf, bytearray):
        pkt.buf = bytearray(pkt.buf)          # same length: every index stays valid
    buf = pkt.buf
    field = pkt.csum_start + pkt.csum_offset
    partial_sum = (buf[field] << 8) | buf[field + 1]
    buf[field:field + 2] = b"\0\0"
    _U16.pack_into(buf, field, checksum(memoryview(buf)[pkt.csum_start:pkt.end], partial_sum))
    pkt.csum_start = -1


def segment_tcp(pkt: PacketBuffer) -> list[PacketBuffer] | None:
    """The MSS-sized frames of a TCP super-segment (gso_size, GSO_TCPV4/GSO_TCPV6, its TCP
    header at csum_start, the network header right before it: tunstack's IP layers add
    neither IPv4 options nor IPv6 extension headers to TCP).  Whatever sits in front of
    the network header (an Ethernet header, LLC/SNAP) is copied as it is.  None when the
    packet is not one (the caller drops and counts it)."""
    mss = pkt.gso_size
    th = pkt.csum_start
    kind = pkt.gso_type & ~GSO_ECN
    if mss <= 0 or th < 0 or kind not in (GSO_TCPV4, GSO_TCPV6):
        return None
    buf = pkt.buf
    v6 = kind == GSO_TCPV6
    nh = th - (40 if v6 else 20)
    if nh < pkt.start or th + 20 > pkt.end:
        return None
    if not (buf[nh] >> 4 == 6 and buf[nh + 6] == IPPROTO_TCP if v6 else buf[nh] == 0x45 and buf[nh + 9] == IPPROTO_TCP):
        return None
    data = th + (buf[th + 12] >> 4) * 4
    if data > pkt.end:
        return None
    head = bytearray(buf[pkt.start:data])        # link, network and TCP headers
    h_nh, h_th = nh - pkt.start, th - pkt.start
    h_csum = h_th + 16
    thlen = data - th
    seq = _U32.unpack_from(buf, th + 4)[0]
    flags = buf[th + 13]
    addr_sum = ones_sum(buf[nh + 8:nh + 40]) if v6 else ones_sum(buf[nh + 12:nh + 20])
    ident = _U16.unpack_from(buf, nh + 4)[0]
    head[h_csum:h_csum + 2] = b"\0\0"             # each frame's TCP checksum is summed with it zero
    ip_sum = 0
    if not v6:
        # the IPv4 header differs between frames only in its length and ident: sum the rest
        # once, add those two per frame (RFC 1624 style: an incremental checksum)
        head[h_nh + 2:h_nh + 6] = b"\0\0\0\0"
        head[h_nh + 10:h_nh + 12] = b"\0\0"
        ip_sum = int.from_bytes(head[h_nh:h_nh + 20], "big") % 0xFFFF
    view = memoryview(buf)
    frames: list[PacketBuffer] = []
    off, end = data, pkt.end
    while off < end:
        n = min(mss, end - off)
        frame = bytearray(head)
        frame += view[off:off + n]
        tcp_len = thlen + n
        if v6:
            _U16.pack_into(frame, h_nh + 4, tcp_len)
        else:
            total = 20 + tcp_len
            s = ip_sum + total + ident
            s = (s & 0xFFFF) + (s >> 16)
            s = (s & 0xFFFF) + (s >> 16)
            _IP_LEN_ID.pack_into(frame, h_nh + 2, total, ident)
            _U16.pack_into(frame, h_nh + 10, ~s & 0xFFFF)
            ident = (ident + 1) & 0xFFFF
        _U32.pack_into(frame, h_th + 4, seq)
        off += n
        f = flags if off >= end else flags & ~(_FIN | _PSH)
        frame[h_th + 13] = f if not frames else f & ~_CWR
        _U16.pack_into(frame, h_csum, checksum(memoryview(frame)[h_th:], addr_sum + IPPROTO_TCP + tcp_len))
        frames.append(PacketBuffer(frame))
        seq = (seq + n) & 0xFFFFFFFF
    return frames
