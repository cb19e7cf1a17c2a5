"""virtio_net_hdr codec (<linux/virtio_net.h>): what the kernel tells us on read, what we
tell it on write."""
from __future__ import annotations

import struct

from drivers import vnet
from ndd import pktbuf
from ndd.pktbuf import PacketBuffer


def rx(flags: int, gso_type: int, gso_size: int, start: int, offset: int, frame_len: int) -> tuple[bool, PacketBuffer]:
    hdr = vnet.VNET_HDR.pack(flags, gso_type, 40, gso_size, start, offset)
    pkt = PacketBuffer(hdr + bytes(frame_len), vnet.VNET_HDR_LEN)
    return vnet.apply_rx(hdr, pkt), pkt


def test_header_is_ten_little_endian_octets() -> None:
    assert vnet.VNET_HDR_LEN == 10
    assert vnet.VNET_HDR.pack(1, 1, 40, 1460, 20, 16) == bytes([1, 1, 40, 0, 0xB4, 0x05, 20, 0, 16, 0])


def test_rx_plain_frame_untouched() -> None:
    ok, pkt = rx(0, pktbuf.GSO_NONE, 0, 0, 0, 60)
    assert ok and not pkt.csum_valid and pkt.gso_size == 0 and len(pkt) == 60


def test_rx_needs_csum_means_valid_not_verified() -> None:
    ok, pkt = rx(vnet.F_NEEDS_CSUM, pktbuf.GSO_NONE, 0, 20, 16, 60)
    assert ok and pkt.csum_valid


def test_rx_data_valid() -> None:
    ok, pkt = rx(vnet.F_DATA_VALID, pktbuf.GSO_NONE, 0, 0, 0, 60)
    assert ok and pkt.csum_valid


def test_rx_tso_super_frame_as_seen_from_linux() -> None:
    # seen on this machine: (1, 1, 40, 1460, 20, 16) with ~64 KB of payload
    ok, pkt = rx(vnet.F_NEEDS_CSUM, pktbuf.GSO_TCPV4 | pktbuf.GSO_ECN, 1460, 20, 16, 40 + 64240)
    assert ok and pkt.gso_type == pktbuf.GSO_TCPV4 and pkt.gso_size == 1460 and len(pkt) == 64280


def test_rx_nonsense_rejected() -> None:
    assert not rx(vnet.F_NEEDS_CSUM, 0, 0, 100, 16, 60)[0]      # checksum field beyond the frame
    assert not rx(0, pktbuf.GSO_TCPV4, 0, 20, 16, 100)[0]        # GSO without a segment size


def test_tx_plain_frame_gets_zero_header() -> None:
    assert vnet.build_tx(PacketBuffer.from_payload(b"x" * 40)) == bytes(10)


def test_tx_partial_checksum_and_tso() -> None:
    tcp = bytearray(40)
    tcp[12] = 10 << 4                          # data offset 10 words: 40-octet TCP header
    pkt = PacketBuffer.from_payload(bytes(tcp) + b"d" * 3000)
    pkt.csum_start, pkt.csum_offset = pkt.start, 16
    pkt.gso_type, pkt.gso_size = pktbuf.GSO_TCPV4, 1448
    pkt.prepend(20)                            # the IP header goes in front; csum_start is absolute
    flags, gso_type, hdr_len, gso_size, start, offset = struct.unpack("<BBHHHH", vnet.build_tx(pkt))
    assert (flags, gso_type, gso_size, start, offset) == (vnet.F_NEEDS_CSUM, pktbuf.GSO_TCPV4, 1448, 20, 16)
    assert hdr_len == 60


def test_tx_udp_l4_header_length() -> None:
    pkt = PacketBuffer.from_payload(bytes(8) + b"u" * 3000)
    pkt.csum_start, pkt.csum_offset = pkt.start, 6
    pkt.gso_type, pkt.gso_size = pktbuf.GSO_UDP_L4, 1000
    pkt.prepend(20)
    _, _, hdr_len, _, start, offset = struct.unpack("<BBHHHH", vnet.build_tx(pkt))
    assert (hdr_len, start, offset) == (28, 20, 6)
