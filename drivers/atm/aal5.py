"""AAL5 (ITU-T I.363.5): CPCS-PDU framing, SAR into cells, per-VC reassembly.

CPCS-PDU (§9.2.1): payload (<= 65535) | pad 0-47 | CPCS-UU | CPI | Length (2) | CRC-32 (4),
a multiple of 48 octets; the SAR (§9.1) sends it in cells whose PTI bit 0 marks the last.

Reassembly is defensive: a PDU is delivered only when its Length fits the cell count,
its CRC-32 is right and CPI is 0, so a lost, duplicated, corrupted or misordered cell can
drop SDUs but never deliver a wrong one (a lost last cell merges two PDUs, which the
Length and CRC then reject).  Every drop is counted per VC.
"""
from __future__ import annotations

import binascii
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from ndd.atm import AAL5_MAX_SDU
from ndd.counters import Counters

from .cell import PAYLOAD_LEN, PTI_EOP_BIT, PTI_NON_USER_BIT, header_bytes

TRAILER_LEN = 8
MAX_CELLS = -(-(AAL5_MAX_SDU + TRAILER_LEN) // PAYLOAD_LEN)     # 1366
MAX_PDU = MAX_CELLS * PAYLOAD_LEN                          # 65568: longer is oversize
DEFAULT_TIMEOUT = 10.0    # I.363.5 leaves the reassembly timer to the implementation
# Octets all VCs' partial PDUs may hold together (like Linux's ipfrag_high_thresh, 4 MiB):
# beyond it the oldest partial PDU is dropped -- a peer starting PDUs on every VC and never
# ending them holds at most this, whatever the number of VCs.
DEFAULT_MAX_BYTES = 4 << 20


def pdu_limit(max_sdu: int) -> int:
    """The longest CPCS-PDU (octets, whole cells) that can carry a `max_sdu` SDU."""
    return -(-(min(max_sdu, AAL5_MAX_SDU) + TRAILER_LEN) // PAYLOAD_LEN) * PAYLOAD_LEN

_TRAILER = struct.Struct(">BBH")
_REV8 = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def crc32_bzip2(data: bytes | bytearray | memoryview) -> int:
    """CRC-32/BZIP2 (poly 0x04C11DB7, init and xorout 0xFFFFFFFF, MSB first), at C speed.

    binascii.crc32 is the bit-reflected twin with the same init and xorout, both all ones
    and so equal to their own reversal: reflecting every input byte and the 32-bit result
    turns one into the other exactly.
    """
    if isinstance(data, memoryview):
        data = data.tobytes()
    r = binascii.crc32(data.translate(_REV8))
    return int.from_bytes(r.to_bytes(4, "little").translate(_REV8), "big")


def cpcs_pdu(sdu: bytes | bytearray | memoryview, *, uu: int = 0, cpi: int = 0) -> bytes:
    """The CPCS-PDU for an SDU: payload, pad, trailer with CRC-32 (I.363.5 §9.2.1)."""
    n = len(sdu)
    if n > AAL5_MAX_SDU:
        raise ValueError(f"AAL5 SDU of {n} octets exceeds {AAL5_MAX_SDU}")
    pad = -(n + TRAILER_LEN) % PAYLOAD_LEN
    body = b"".join((sdu, bytes(pad), _TRAILER.pack(uu & 0xFF, cpi & 0xFF, n)))
    return body + crc32_bzip2(body).to_bytes(4, "big")


def segment(sdu: bytes | bytearray | memoryview, vpi: int, vci: int, *,
            uu: int = 0, cpi: int = 0, clp: int = 0) -> bytes:
    """All cells of one SDU, concatenated (53 octets each); the last has PTI 1.

    ValueError for caller bugs only: SDU over 65535 octets, or empty -- Length 0 is the
    abort code (I.363.5 §9.2.1), so an empty SDU cannot be carried.
    """
    if not len(sdu):
        raise ValueError("AAL5 cannot carry an empty SDU: Length 0 means abort (I.363.5)")
    pdu = cpcs_pdu(sdu, uu=uu, cpi=cpi)
    cells = len(pdu) // PAYLOAD_LEN
    mid = header_bytes(vpi, vci, 0, clp)
    last = header_bytes(vpi, vci, PTI_EOP_BIT, clp)
    if cells == 1:
        return last + pdu
    # All in C: one struct unpack cuts the PDU into 48-octet payloads and the header is
    # the separator of a join (3 us for a 1500-octet SDU, 20 us for 9180; the strided
    # copies used before took 23 and 63 us: 53 slice operations whatever the size).
    payloads = _payload_splitter(cells).unpack(pdu)
    return b"".join((mid, mid.join(payloads[:-1]), last, payloads[-1]))


@lru_cache(maxsize=32)
def _payload_splitter(cells: int) -> struct.Struct:
    """A Struct unpacking `cells` payloads; cached for the few PDU sizes a link carries
    (bounded: the largest holds 1366 format codes, ~44 KiB)."""
    return struct.Struct("48s" * cells)


@dataclass
class Aal5VcStats(Counters):
    """Per-VC AAL5 counters.  rx_* and the errors are kept by Reassembler; tx_* are for
    the sender to bump (segment() is a pure function)."""
    rx_cells: int = 0
    rx_pdus: int = 0
    rx_octets: int = 0
    crc_errors: int = 0
    length_errors: int = 0
    cpi_errors: int = 0
    aborts: int = 0          # Length 0 received (I.363.5 abort)
    oversize: int = 0
    timeouts: int = 0
    tx_cells: int = 0
    tx_pdus: int = 0
    evicted: int = 0         # a partial PDU dropped to keep all VCs' partial PDUs under max_bytes
    tx_octets: int = 0


class _Vc:
    __slots__ = ("buf", "deadline", "discarding", "stats")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.deadline = 0.0
        self.discarding = False      # after oversize: ignore cells up to the next last cell
        self.stats = Aal5VcStats()


VcKey = tuple[int, int]


class Reassembler:
    """Per-VC AAL5 receiver (I.363.5 §10.2.4, message mode, corrupted SDUs not delivered).

    The timer is per VC, armed by a PDU's first cell (bounded lifetime, like IP
    reassembly); `poll_at`/`poll` follow the stack/timers.py contract.  A VC's state is
    created by its first cell or by `stats()`; the caller feeds only VCs it has open.
    """

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.held = 0                           # octets in all partial PDUs
        self.evictions = 0                      # partial PDUs dropped for max_bytes (all VCs)
        self.vcs: dict[VcKey, _Vc] = {}
        self._active: dict[VcKey, _Vc] = {}     # VCs mid-PDU; insertion order = deadline order
        self.kick: Callable[..., None] = lambda at=None: None

    def stats(self, vpi: int, vci: int) -> Aal5VcStats:
        return self._vc((vpi, vci)).stats

    def close(self, vpi: int, vci: int) -> None:
        """Forget a VC: its partial PDU and its counters."""
        self._active.pop((vpi, vci), None)
        vc = self.vcs.pop((vpi, vci), None)
        if vc is not None:
            self.held -= len(vc.buf)

    def _vc(self, key: VcKey) -> _Vc:
        vc = self.vcs.get(key)
        if vc is None:
            vc = self.vcs[key] = _Vc()
        return vc

    def feed(self, vpi: int, vci: int, pti: int, payload: bytes | bytearray | memoryview,
             now: float, limit: int = MAX_PDU) -> bytes | None:
        """One user cell's payload; the SDU when this cell completes a good PDU.  `limit`:
        the VC's longest PDU (`pdu_limit(max_sdu)`): longer is oversize at once, so a VC
        never buffers more than its max SDU can need."""
        key = (vpi, vci)
        vc = self.vcs.get(key) or self._vc(key)
        if pti & PTI_NON_USER_BIT:
            return None                          # OAM/RM cells are not AAL5 data
        st = vc.stats
        st.rx_cells += 1
        if vc.discarding:
            if pti & PTI_EOP_BIT:
                vc.discarding = False
            return None
        buf = vc.buf
        if not buf:
            vc.deadline = now + self.timeout
            if not self._active:
                self.kick(vc.deadline)
            self._active[key] = vc
        if len(payload) != PAYLOAD_LEN:
            # only a caller could hand us this; the PDU it belongs to is unusable
            st.length_errors += 1
            self._abandon(key, vc, discard=not pti & PTI_EOP_BIT)
            return None
        if len(buf) + PAYLOAD_LEN > min(limit, MAX_PDU):
            st.oversize += 1
            self._abandon(key, vc, discard=not pti & PTI_EOP_BIT)
            return None
        if not pti & PTI_EOP_BIT:
            if self.held + PAYLOAD_LEN > self.max_bytes:
                self._evict_for(key)
                if vc.discarding:
                    return None                  # this PDU was the one dropped
            buf += payload
            self.held += PAYLOAD_LEN
            return None
        buf += payload
        self.held -= len(buf) - PAYLOAD_LEN
        del self._active[key]
        vc.buf = bytearray()
        return _check(buf, st)

    def feed_cells(self, vpi: int, vci: int, payloads: bytes | bytearray | memoryview, eop: bool,
                   now: float, limit: int = MAX_PDU) -> bytes | None:
        """Consecutive user cells of one VC at once: `payloads` is their 48-octet payloads
        end to end and only the last may end a PDU (`eop`).  Exactly what `feed` on each
        cell in turn would do -- same SDU, counters and state -- but the payloads are
        joined once and the trailer checked once, not a Python step per cell.  When a cell
        could push all VCs' partial PDUs past `max_bytes`, the cells go through `feed` one
        by one, so evictions happen at the same cell as before."""
        m, rest = divmod(len(payloads), PAYLOAD_LEN)
        if rest or not m:
            # only a caller could hand us this: keep feed's per-cell account of it
            view = memoryview(payloads)
            sdu = None
            for off in range(0, len(view), PAYLOAD_LEN):
                last = eop and off + PAYLOAD_LEN >= len(view)
                sdu = self.feed(vpi, vci, PTI_EOP_BIT if last else 0, view[off:off + PAYLOAD_LEN], now, limit)
            return sdu
        key = (vpi, vci)
        vc = self.vcs.get(key) or self._vc(key)
        if self.held + m * PAYLOAD_LEN > self.max_bytes:
            view = memoryview(payloads)
            sdu = None
            for off in range(0, m * PAYLOAD_LEN, PAYLOAD_LEN):
                last = eop and off == (m - 1) * PAYLOAD_LEN
                sdu = self.feed(vpi, vci, PTI_EOP_BIT if last else 0, view[off:off + PAYLOAD_LEN], now, limit)
            return sdu
        st = vc.stats
        st.rx_cells += m
        if vc.discarding:
            # feed drops cells up to and including the last cell of the PDU
            vc.discarding = not eop
            return None
        buf = vc.buf
        start = len(buf)
        if start + m * PAYLOAD_LEN > min(limit, MAX_PDU):
            # one cell in this stretch is oversize: feed counts it once, drops what was
            # held and discards the rest of the PDU, up to its last cell
            st.oversize += 1
            self.held -= start
            vc.buf = bytearray()
            vc.discarding = not eop
            self._active.pop(key, None)
            return None
        if not eop:
            if not start:
                vc.deadline = now + self.timeout
                if not self._active:
                    self.kick(vc.deadline)
                self._active[key] = vc
            buf += payloads
            self.held += m * PAYLOAD_LEN
            return None
        if not start:
            return _check(payloads, st)              # the whole PDU in one stretch: no copy
        buf += payloads
        self.held -= start
        del self._active[key]
        vc.buf = bytearray()
        return _check(buf, st)

    def _evict_for(self, key: VcKey) -> None:
        """Drop the oldest partial PDUs (`key`'s last) until one more cell fits; the rest of
        an evicted PDU is discarded up to its last cell, as after an oversize.  O(1) per
        PDU dropped: only the head of the age-ordered `_active` is looked at, never a copy
        of it (a cell at the budget must not cost O(VCs mid-PDU))."""
        active = self._active
        while self.held + PAYLOAD_LEN > self.max_bytes:
            ages = iter(active)
            oldest = next(ages, key)
            if oldest == key:
                oldest = next(ages, key)          # key's own PDU goes only when it is alone
            vc = active[oldest]
            vc.stats.evicted += 1
            self.evictions += 1
            self._abandon(oldest, vc, discard=True)
            if oldest == key:
                return

    def _abandon(self, key: VcKey, vc: _Vc, *, discard: bool) -> None:
        self.held -= len(vc.buf)
        vc.buf = bytearray()
        vc.discarding = discard
        self._active.pop(key, None)

    def poll_at(self) -> float | None:
        for vc in self._active.values():
            return vc.deadline
        return None

    def poll(self, now: float) -> None:
        while self._active:
            key, vc = next(iter(self._active.items()))
            if vc.deadline > now:
                break
            del self._active[key]
            self.held -= len(vc.buf)
            vc.buf = bytearray()
            vc.stats.timeouts += 1


def _check(pdu: bytes | bytearray | memoryview, st: Aal5VcStats) -> bytes | None:
    """Trailer checks of I.363.5 §10.2.4: Length vs cell count, CRC-32, CPI."""
    n = len(pdu)
    _uu, cpi, length = _TRAILER.unpack_from(pdu, n - TRAILER_LEN)
    if length == 0:
        st.aborts += 1
        return None
    if not 0 <= n - TRAILER_LEN - length < PAYLOAD_LEN:
        st.length_errors += 1
        return None
    if not crc_ok(pdu):
        st.crc_errors += 1
        return None
    if cpi != 0:
        st.cpi_errors += 1
        return None
    st.rx_pdus += 1
    st.rx_octets += length
    return bytes(pdu[:length])


def crc_ok(pdu: bytes | bytearray | memoryview) -> bool:
    """True when a CPCS-PDU's last 4 octets are the CRC-32/BZIP2 of the rest (big-endian).

    One byte-reflecting pass over the whole PDU feeds binascii.crc32 (see crc32_bzip2);
    reflecting the stored CRC's octets and reading them little-endian gives the value
    binascii.crc32 must return, so neither the PDU nor the result is copied again."""
    t = (pdu.tobytes() if isinstance(pdu, memoryview) else pdu).translate(_REV8)
    return binascii.crc32(memoryview(t)[:-4]) == int.from_bytes(t[-4:], "little")
