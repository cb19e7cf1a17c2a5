"""virtio_net_hdr (<linux/virtio_net.h>): the 10-octet prefix of every TUN/TAP read and write
when the device is opened with IFF_VNET_HDR."""
from __future__ import annotations

import struct

from ndd.pktbuf import GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, PacketBuffer

VNET_HDR = struct.Struct("<BBHHHH")    # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
VNET_HDR_LEN = VNET_HDR.size

F_NEEDS_CSUM = 1
F_DATA_VALID = 2

TUNSETOFFLOAD = 0x400454D0
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08
TUN_F_UFO = 0x10
TUN_F_USO4 = 0x20
TUN_F_USO6 = 0x40

NO_HDR = bytes(VNET_HDR_LEN)


def apply_rx(hdr: bytes | memoryview, pkt: PacketBuffer) -> bool:
    """Copy what the kernel says about a received frame onto `pkt`.  False if nonsense.

    With NEEDS_CSUM the L4 checksum field holds only the pseudo-header sum: the data
    came from the kernel's own memory, so we mark the checksum valid instead of
    checking it.  hdr_len is not trusted: it is a hint, and the protocols parse their
    headers from the frame itself."""
    flags, gso_type, _hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack_from(hdr, 0)
    valid = csum_state(flags, csum_start, csum_offset, len(pkt))
    if valid is None:
        return False
    pkt.csum_valid = valid
    kind = gso_type & ~GSO_ECN
    if kind != GSO_NONE:
        if gso_size == 0:
            return False
        pkt.gso_type, pkt.gso_size = kind, gso_size
    return True


def csum_state(flags: int, csum_start: int, csum_offset: int, frame_len: int) -> bool | None:
    """Whether a received frame's L4 checksum may be taken as valid, by the header's flags:
    NEEDS_CSUM (the kernel's own data, its field holding only the pseudo-header sum) and
    DATA_VALID say so; None when NEEDS_CSUM's offsets leave the `frame_len`-octet frame."""
    if flags & F_NEEDS_CSUM:
        return None if csum_start + csum_offset + 2 > frame_len else True
    return bool(flags & F_DATA_VALID)


def build_tx(pkt: PacketBuffer) -> bytes:
    """The header for a frame we write: partial checksum and GSO as the packet asks."""
    if pkt.csum_start < 0 and not pkt.gso_size:
        return NO_HDR
    flags = F_NEEDS_CSUM if pkt.csum_start >= 0 else 0
    start = pkt.csum_start - pkt.start if pkt.csum_start >= 0 else 0
    hdr_len = 0
    if pkt.gso_size:
        # hdr_len: L2+L3+L4 header bytes (a hint for the kernel; it recomputes)
        data_off = pkt.buf[pkt.csum_start + 12] >> 4 if pkt.gso_type in (GSO_TCPV4, GSO_TCPV6) else 2
        hdr_len = start + data_off * 4
    return VNET_HDR.pack(flags, pkt.gso_type, hdr_len, pkt.gso_size, start, pkt.csum_offset)
