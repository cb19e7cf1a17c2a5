"""ATM cells at the UNI (ITU-T I.361 §2.2, HEC of I.432.1 §4.3).

Header: GFC 4 | VPI 8 | VCI 16 | PTI 3 | CLP 1 | HEC 8, then a 48-octet payload.
Parsing never raises: a bad cell comes back as the name of the counter to bump.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise

from ndd.atm import VCI_MAX, VPI_MAX

CELL_LEN = 53
HDR_LEN = 5
PAYLOAD_LEN = 48

# PTI (I.361 §2.2).  Bit 2 clear = user data; then bit 1 = congestion experienced and
# bit 0 = ATM-user-to-user indication, which AAL5 uses as "last cell of the CPCS-PDU".
PTI_USER = 0
PTI_USER_EOP = 1
PTI_USER_CONG = 2
PTI_USER_CONG_EOP = 3
PTI_OAM_SEGMENT = 4         # OAM F5 segment flow
PTI_OAM_END_TO_END = 5      # OAM F5 end-to-end flow
PTI_RM = 6                  # resource management
PTI_RESERVED = 7
PTI_EOP_BIT = 0x1
PTI_NON_USER_BIT = 0x4

HEC_COSET = 0x55            # I.432.1: the CRC-8 remainder is XORed with 01010101


def _crc8_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        c = byte
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        table.append(c)
    return tuple(table)


_CRC8 = _crc8_table()


def hec(first4: bytes) -> int:
    """HEC of a header: CRC-8 (x^8+x^2+x+1, init 0, MSB first) over octets 1-4, XOR 0x55."""
    t = _CRC8
    c = t[first4[0]]
    c = t[c ^ first4[1]]
    c = t[c ^ first4[2]]
    c = t[c ^ first4[3]]
    return c ^ HEC_COSET


def _syndromes() -> dict[int, tuple[int, int]]:
    """Syndrome (computed HEC XOR received HEC) of each single-bit error -> (octet, mask).

    The CRC is linear, so a flipped bit in octets 1-4 yields the CRC-8 of that lone bit,
    and a flipped bit in the HEC octet yields the bit itself.  All 40 are distinct, which
    is what makes single-bit correction possible (I.432.1 §4.3).
    """
    out: dict[int, tuple[int, int]] = {}
    for i in range(4):
        for b in range(8):
            e = bytearray(4)
            e[i] = 1 << b
            out[hec(bytes(e)) ^ HEC_COSET] = (i, 1 << b)
    for b in range(8):
        out[1 << b] = (4, 1 << b)
    return out


_SYNDROMES = _syndromes()


@dataclass(frozen=True, slots=True)
class CellHeader:
    gfc: int
    vpi: int
    vci: int
    pti: int
    clp: int
    # True when parse(correct=True) repaired a single-bit error; not part of the value.
    corrected: bool = field(default=False, compare=False)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, *, correct: bool = False) -> CellHeader | str:
        """The header of a cell (only the first 5 octets are read), or a counter name.

        correct=False (default) is I.432.1 detection mode: any HEC mismatch drops the cell.
        correct=True repairs a single-bit error (result has .corrected set); the receiver's
        correction/detection mode switching (I.432.1 §4.3), if wanted, is the driver's.
        """
        if len(data) < HDR_LEN:
            return "truncated"
        h = bytes(data[:HDR_LEN])
        cached = _parsed(h)
        if cached is not None:
            return cached
        if not correct:
            return "hec_errors"
        fix = _SYNDROMES.get(hec(h) ^ h[4])
        if fix is None:
            return "hec_errors"        # more than one bit wrong: detected, not correctable
        i, mask = fix
        fixed = bytearray(h)
        fixed[i] ^= mask
        good = _parsed(bytes(fixed))
        if good is None:               # cannot happen for a syndrome in the table
            return "hec_errors"
        return cls(good.gfc, good.vpi, good.vci, good.pti, good.clp, corrected=True)

    def emit(self) -> bytes:
        """5 octets with the HEC.  Fields are masked to their widths (a caller bug, not data)."""
        return _emit(self.gfc & 0xF, self.vpi & VPI_MAX, self.vci & VCI_MAX, self.pti & 7, self.clp & 1)


def _emit(gfc: int, vpi: int, vci: int, pti: int, clp: int) -> bytes:
    word = gfc << 28 | vpi << 20 | vci << 4 | pti << 1 | clp
    first4 = word.to_bytes(4, "big")
    return first4 + bytes((hec(first4),))


# Pure-function caches (no per-stack state): a link carries few distinct headers, so a
# cache hit replaces the CRC and the field unpacking on the per-cell path.  Bounded LRU,
# so a stream of corrupted headers costs speed, never memory or correctness.
@lru_cache(maxsize=8192)
def _parsed(h: bytes) -> CellHeader | None:
    if hec(h) != h[4]:
        return None
    word = int.from_bytes(h[:4], "big")
    return CellHeader(word >> 28, (word >> 20) & 0xFF, (word >> 4) & 0xFFFF, (word >> 1) & 7, word & 1)


parsed_header = _parsed
"""The header of a 5-octet bytes (cached), or None when its HEC is wrong: the fast check of
a received cell; CellHeader.parse does the single-bit correction."""


@lru_cache(maxsize=4096)
def header_bytes(vpi: int, vci: int, pti: int = 0, clp: int = 0) -> bytes:
    """The 5-octet UNI header (GFC 0) for a VC; cached.  ValueError on out-of-range fields."""
    if not (0 <= vpi <= VPI_MAX and 0 <= vci <= VCI_MAX and 0 <= pti <= 7 and clp in (0, 1)):
        raise ValueError(f"cell header out of range: vpi={vpi} vci={vci} pti={pti} clp={clp}")
    return _emit(0, vpi, vci, pti, clp)


def relabel(cells: bytes | bytearray | memoryview, vpi: int, vci: int) -> bytes:
    """Cells (N*53 octets) with their VPI/VCI replaced, as a switch's cross-connect does
    (I.150: VPI/VCI values are local to a link and translated at each VC switch).  GFC is set to 0,
    PTI, CLP and the payload are kept, the HEC is recomputed (cached per header).  A
    trailing fragment shorter than a cell is dropped."""
    mv = memoryview(cells)
    end = len(mv) - len(mv) % CELL_LEN
    out = bytearray(end)
    for off in range(0, end, CELL_LEN):
        o4 = mv[off + 3]
        out[off:off + HDR_LEN] = header_bytes(vpi, vci, (o4 >> 1) & 7, o4 & 1)
        out[off + HDR_LEN:off + CELL_LEN] = mv[off + HDR_LEN:off + CELL_LEN]
    return bytes(out)


def parse_cells(buf: bytes | bytearray | memoryview, *, correct: bool = False
                ) -> Iterator[tuple[CellHeader | str, memoryview]]:
    """Yield (header or counter name, 48-octet payload view) for each cell in `buf`.

    A trailing fragment shorter than a cell yields ("truncated", its bytes) once.
    The payload views alias `buf`: copy them if `buf` is reused.
    """
    mv = memoryview(buf)
    n = len(mv)
    end = n - n % CELL_LEN
    for off in range(0, end, CELL_LEN):
        h = _parsed(bytes(mv[off:off + HDR_LEN]))
        if h is None:
            hdr: CellHeader | str = (CellHeader.parse(mv[off:off + HDR_LEN], correct=correct) if correct
                                     else "hec_errors")
            yield hdr, mv[off + HDR_LEN:off + CELL_LEN]
        else:
            yield h, mv[off + HDR_LEN:off + CELL_LEN]
    if end != n:
        yield "truncated", mv[end:]


# --- whole blocks of cells -------------------------------------------------------------------
# The receive path works on a PHY block (N*53 octets) at once: each header octet is taken
# as a column by one strided slice, runs of cells with the same header (but the AAL5
# end-of-PDU bit) are found by comparing columns as big integers, a run's HECs are checked
# by one translate-and-compare, and all payloads are gathered by deleting the headers in
# five C-level passes.  Python runs once per run and per PDU, not once per cell (but for
# the cells that need the per-cell rules: bad HEC, OAM, RM, VCs interleaved cell by cell).

_EOP_OCTET4 = PTI_EOP_BIT << 1          # where the PTI's end-of-PDU bit sits in header octet 4
_CLEAR_EOP = bytes(b & ~_EOP_OCTET4 & 0xFF for b in range(256))
_NONZERO = bytes((0,)) + bytes((1,)) * 255


@lru_cache(maxsize=256)
def _hec_by_octet4(k: int) -> bytes:
    """The HEC of every header whose octets 1-3 followed by a zero octet have CRC-8 `k`,
    indexed by octet 4.  The CRC-8 with init 0 is linear, so HEC(o1 o2 o3 o4) = CRC(o1 o2 o3 0) ^
    CRC(0 0 0 o4) ^ 0x55, and CRC(0 0 0 o4) is the table entry of o4 alone."""
    return bytes(_CRC8[b] ^ k ^ HEC_COSET for b in range(256))


@dataclass(slots=True)
class CellRun:
    """Cells [start, end) of a block whose headers are equal but for the PTI's end-of-PDU
    bit.  `header` is the first cell's (None: its HEC is wrong); `hec_ok`: every cell's is
    right, so the run can be handled as a whole.  Otherwise (and for a block of cells
    interleaved one by one, given as one run with hec_ok False) cell by cell."""
    start: int
    end: int
    header: CellHeader | None
    hec_ok: bool


class CellBlock:
    """A received PHY block split in bulk (see above).  `octet4` holds header octet 4 of
    each cell (VCI low bits, PTI, CLP): a run's PDU ends are found in it with bytes.find."""

    __slots__ = ("_payloads", "data", "ncells", "octet4", "runs", "truncated")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        data = self.data = bytes(data)                   # no copy when it is bytes already
        n = self.ncells = len(data) // CELL_LEN
        self.truncated = len(data) != n * CELL_LEN       # a trailing fragment, counted once
        self._payloads: memoryview | None = None
        self.runs: list[CellRun] = []
        if not n:
            self.octet4 = b""
            return
        end = n * CELL_LEN
        c1, c2, c3 = data[0:end:CELL_LEN], data[1:end:CELL_LEN], data[2:end:CELL_LEN]
        c4, c5 = data[3:end:CELL_LEN], data[4:end:CELL_LEN]
        self.octet4 = c4
        c4m = c4.translate(_CLEAR_EOP)
        if c1.count(c1[0]) == n and c2.count(c2[0]) == n and c3.count(c3[0]) == n and c4m.count(c4m[0]) == n:
            starts = [0]                                 # the usual block: one VC, user cells
        else:
            # cell i+1 starts a run where any key column differs from cell i: XOR each column
            # with itself shifted by one cell, as integers, and look for non-zero octets
            diff = 0
            for col in (c1, c2, c3, c4m):
                diff |= int.from_bytes(col[1:], "big") ^ int.from_bytes(col[:-1], "big")
            marks = diff.to_bytes(n - 1, "big").translate(_NONZERO)
            starts = [0]
            i = marks.find(1)
            while i >= 0:
                starts.append(i + 1)
                i = marks.find(1, i + 1)
        starts.append(n)
        runs = self.runs
        if len(starts) > n // 2 + 1:
            # cells of several VCs interleaved one by one: runs save nothing, go cell by cell
            runs.append(CellRun(0, n, None, False))
            return
        for s, e in pairwise(starts):
            off = s * CELL_LEN
            h = _parsed(data[off:off + HDR_LEN])
            ok = False
            if h is not None:
                reg = _CRC8[_CRC8[_CRC8[_CRC8[c1[s]] ^ c2[s]] ^ c3[s]]]   # CRC of octets 1-3 and a zero
                ok = e - s == 1 or c4[s:e].translate(_hec_by_octet4(reg)) == c5[s:e]
            runs.append(CellRun(s, e, h, ok))

    def payloads(self) -> memoryview:
        """All whole cells' payloads, concatenated (48 octets per cell), made on first use.
        Deleting octet 0 of every 53-octet stride, then of every 52-, 51-, 50- and
        49-octet stride, removes the five header octets of every cell in C."""
        if self._payloads is None:
            buf = bytearray(self.data[:self.ncells * CELL_LEN])
            for stride in range(CELL_LEN, PAYLOAD_LEN, -1):
                del buf[::stride]
            self._payloads = memoryview(buf)
        return self._payloads

    def pdu_ends(self, run: CellRun) -> list[int]:
        """The cells of `run` with the end-of-PDU bit set (only meaningful for user cells)."""
        c4 = self.octet4
        eop = c4[run.start] | _EOP_OCTET4
        out = []
        i = c4.find(eop, run.start, run.end)
        while i >= 0:
            out.append(i)
            i = c4.find(eop, i + 1, run.end)
        return out
