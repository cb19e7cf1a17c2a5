"""OAM F5 loopback cells (ITU-T I.610, loopback cell format; CRC-10 as in I.610/I.363.3).

Payload (48 octets): OAM type|function (0x18 = fault management / loopback), loopback
indication (bit 0: 1 = to be looped back), correlation tag (4), loopback location ID (16),
source ID (16), 8 unused octets of 0x6A, then 6 reserved bits and a 10-bit CRC-10.
F5 cells ride the user VC with PTI 4 (segment) or 5 (end-to-end).
"""
from __future__ import annotations

from dataclasses import dataclass

from .cell import CELL_LEN, HDR_LEN, PAYLOAD_LEN, PTI_OAM_END_TO_END, PTI_OAM_SEGMENT, CellHeader, header_bytes

OAM_LOOPBACK = 0x18          # OAM type 0001 fault management, function 1000 loopback
UNUSED_OCTET = 0x6A
ALL_ONES_ID = b"\xff" * 16   # location ID default: the end point; also our "not used" source ID
CRC10_POLY = 0x233           # x^10+x^9+x^5+x^4+x+1 without the x^10 term (0x633 with it)


def _crc10_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        c = byte << 2
        for _ in range(8):
            c = ((c << 1) ^ CRC10_POLY) & 0x3FF if c & 0x200 else (c << 1) & 0x3FF
        table.append(c)
    return tuple(table)


_CRC10 = _crc10_table()


def crc10(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-10 register (init 0, MSB first, no final XOR) after `data`.  A 48-octet OAM
    payload with its CRC in place leaves 0."""
    t = _CRC10
    for b in data:
        crc = ((crc << 8) & 0x3FF) ^ t[((crc >> 2) ^ b) & 0xFF]
    return crc


def seal_crc10(payload: bytearray) -> bytes:
    """Write the CRC-10 into octets 47-48 (reserved bits kept) and return the payload.

    The CRC covers 46 octets plus the 6 reserved bits: the byte-wise table does the
    octets, then those 6 bits are shifted in one at a time."""
    c = crc10(memoryview(payload)[:46])
    reserved = payload[46] >> 2
    for i in range(5, -1, -1):
        top = (c >> 9) ^ (reserved >> i) & 1
        c = (c << 1) & 0x3FF
        if top:
            c ^= CRC10_POLY
    payload[46] = (reserved << 2) | c >> 8
    payload[47] = c & 0xFF
    return bytes(payload)


@dataclass(frozen=True, slots=True)
class OamLoopback:
    indication: int          # 1 = to be looped back (a request), 0 = looped back (a reply)
    tag: int                 # correlation tag, echoed by the loopback point
    location_id: bytes = ALL_ONES_ID
    source_id: bytes = ALL_ONES_ID

    def payload(self) -> bytes:
        p = bytearray(PAYLOAD_LEN)
        p[0] = OAM_LOOPBACK
        p[1] = self.indication & 1
        p[2:6] = (self.tag & 0xFFFFFFFF).to_bytes(4, "big")
        p[6:22] = self.location_id[:16].ljust(16, b"\xff")
        p[22:38] = self.source_id[:16].ljust(16, b"\xff")
        p[38:46] = bytes((UNUSED_OCTET,)) * 8
        return seal_crc10(p)


def parse_oam(payload48: bytes | bytearray | memoryview) -> OamLoopback | str:
    """A loopback cell's fields, or a counter name: truncated / oam_crc_errors / oam_unsupported."""
    if len(payload48) != PAYLOAD_LEN:
        return "truncated"
    if crc10(payload48) != 0:
        return "oam_crc_errors"
    p = bytes(payload48)
    if p[0] != OAM_LOOPBACK:
        return "oam_unsupported"     # other I.610 types (AIS/RDI, CC, PM, activation) not handled
    return OamLoopback(p[1] & 1, int.from_bytes(p[2:6], "big"), p[6:22], p[22:38])


def loopback_request(vpi: int, vci: int, tag: int, end_to_end: bool = True, *,
                     location_id: bytes = ALL_ONES_ID, source_id: bytes = ALL_ONES_ID) -> bytes:
    """A 53-octet F5 loopback cell asking the far end (PTI 5) or segment end (PTI 4) to echo it."""
    pti = PTI_OAM_END_TO_END if end_to_end else PTI_OAM_SEGMENT
    return header_bytes(vpi, vci, pti) + OamLoopback(1, tag, location_id, source_id).payload()


def loopback_reply(cell: bytes | bytearray | memoryview, *, my_id: bytes | None = None) -> bytes | None:
    """What a loopback point sends back: the same cell with indication 0 and a new CRC-10.

    None unless `cell` is a whole F5 loopback request with good HEC and CRC-10 addressed
    to us: location ID all ones (the end point) or equal to `my_id` (I.610 loopback point).
    """
    if len(cell) != CELL_LEN:
        return None
    h = CellHeader.parse(cell)
    if isinstance(h, str) or h.pti not in (PTI_OAM_SEGMENT, PTI_OAM_END_TO_END):
        return None
    lb = parse_oam(memoryview(cell)[HDR_LEN:])
    if isinstance(lb, str) or lb.indication != 1:
        return None
    if lb.location_id != ALL_ONES_ID and lb.location_id != my_id:
        return None
    p = bytearray(memoryview(cell)[HDR_LEN:])
    p[1] &= 0xFE
    return bytes(cell[:HDR_LEN]) + seal_crc10(p)
