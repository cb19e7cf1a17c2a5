"""SSCOP PDUs (ITU-T Q.2110 §7): trailer-coded reprs with parse/emit.

Every PDU ends in its control fields, so the variable part (SSCOP-UU or information, padded
to a 32-bit boundary) comes first and the last word is always

    PL (2) | reserved (2) | type (4) | N (24)            (Q.2110 §7.1)

where PL is the pad length of the variable part and N is N(MR), N(S) or N(R) by type.  The
words before it (Q.2110 §7.2, Figures 7-2 .. 7-16):

    BGN, RS, ER        reserved (24) | N(SQ) (8)               ; last N = N(MR)
    BGAK, RSAK, ERAK   reserved (32)                           ; last N = N(MR)
    BGREJ, ENDAK       reserved (32)                           ; last N reserved
    END                reserved (32); last word's bit 0x10 of octet 1 is S (source)
    POLL               reserved (8) | N(PS) (24)               ; last N = N(S)
    STAT               list of reserved (8) | SD N(S) (24), then reserved | N(PS),
                       reserved | N(MR)                        ; last N = N(R)
    USTAT              two list elements, reserved | N(MR)     ; last N = N(R)
    SD, UD, MD         information + pad only                  ; SD: last N = N(S)

SSCOP-UU rides on BGN, BGAK, BGREJ, END and RS; RSAK, ER, ERAK and ENDAK are exactly two
words.  `parse_pdu` never raises: malformed input comes back as a reason string.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

MOD = 1 << 24                      # sequence numbers are 24 bits (Q.2110 §7.1)
MASK = MOD - 1

BGN, BGAK, END, ENDAK, RS, RSAK, BGREJ, SD, ER, POLL, STAT, USTAT, UD, MD, ERAK = range(1, 16)
TYPE_NAMES = {BGN: "BGN", BGAK: "BGAK", END: "END", ENDAK: "ENDAK", RS: "RS", RSAK: "RSAK",
              BGREJ: "BGREJ", SD: "SD", ER: "ER", POLL: "POLL", STAT: "STAT", USTAT: "USTAT",
              UD: "UD", MD: "MD", ERAK: "ERAK"}

END_S_BIT = 0x10                   # Q.2110 §7.2.3: S=1 -> END originated by SSCOP, 0 -> by the user

_W = struct.Struct(">I")
_W2 = struct.Struct(">II")


def _last(pl: int, ptype: int, n: int, flags: int = 0) -> bytes:
    return _W.pack(((pl & 3) << 30) | (flags << 24) | (ptype << 24) | (n & MASK))


def _padded(data: bytes) -> tuple[bytes, int]:
    pl = -len(data) % 4
    return bytes(data) + bytes(pl), pl


# --- connection control PDUs ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Bgn:
    """Begin (Q.2110 §7.2.1): request a connection."""
    TYPE: ClassVar[int] = BGN
    n_sq: int = 0
    n_mr: int = 0
    uu: bytes = b""

    def emit(self) -> bytes:
        body, pl = _padded(self.uu)
        return body + _W.pack(self.n_sq & 0xFF) + _last(pl, BGN, self.n_mr)


@dataclass(frozen=True, slots=True)
class Bgak:
    """Begin acknowledge (Q.2110 §7.2.2)."""
    TYPE: ClassVar[int] = BGAK
    n_mr: int = 0
    uu: bytes = b""

    def emit(self) -> bytes:
        body, pl = _padded(self.uu)
        return body + bytes(4) + _last(pl, BGAK, self.n_mr)


@dataclass(frozen=True, slots=True)
class Bgrej:
    """Begin reject (Q.2110 §7.2.5)."""
    TYPE: ClassVar[int] = BGREJ
    uu: bytes = b""

    def emit(self) -> bytes:
        body, pl = _padded(self.uu)
        return body + bytes(4) + _last(pl, BGREJ, 0)


@dataclass(frozen=True, slots=True)
class End:
    """End (Q.2110 §7.2.3); `source` is the S bit: True when SSCOP itself released."""
    TYPE: ClassVar[int] = END
    source: bool = False
    uu: bytes = b""

    def emit(self) -> bytes:
        body, pl = _padded(self.uu)
        return body + bytes(4) + _last(pl, END, 0, END_S_BIT if self.source else 0)


@dataclass(frozen=True, slots=True)
class Endak:
    """End acknowledge (Q.2110 §7.2.4)."""
    TYPE: ClassVar[int] = ENDAK

    def emit(self) -> bytes:
        return bytes(4) + _last(0, ENDAK, 0)


@dataclass(frozen=True, slots=True)
class Rs:
    """Resynchronization command (Q.2110 §7.2.6)."""
    TYPE: ClassVar[int] = RS
    n_sq: int = 0
    n_mr: int = 0
    uu: bytes = b""

    def emit(self) -> bytes:
        body, pl = _padded(self.uu)
        return body + _W.pack(self.n_sq & 0xFF) + _last(pl, RS, self.n_mr)


@dataclass(frozen=True, slots=True)
class Rsak:
    """Resynchronization acknowledge (Q.2110 §7.2.7)."""
    TYPE: ClassVar[int] = RSAK
    n_mr: int = 0

    def emit(self) -> bytes:
        return bytes(4) + _last(0, RSAK, self.n_mr)


@dataclass(frozen=True, slots=True)
class Er:
    """Error recovery command (Q.2110 §7.2.8)."""
    TYPE: ClassVar[int] = ER
    n_sq: int = 0
    n_mr: int = 0

    def emit(self) -> bytes:
        return _W.pack(self.n_sq & 0xFF) + _last(0, ER, self.n_mr)


@dataclass(frozen=True, slots=True)
class Erak:
    """Error recovery acknowledge (Q.2110 §7.2.9)."""
    TYPE: ClassVar[int] = ERAK
    n_mr: int = 0

    def emit(self) -> bytes:
        return bytes(4) + _last(0, ERAK, self.n_mr)


# --- assured / unassured / management data and status PDUs --------------------------------

@dataclass(frozen=True, slots=True)
class Sd:
    """Sequenced data (Q.2110 §7.3.1)."""
    TYPE: ClassVar[int] = SD
    n_s: int = 0
    data: bytes = b""

    def emit(self) -> bytes:
        body, pl = _padded(self.data)
        return body + _last(pl, SD, self.n_s)


@dataclass(frozen=True, slots=True)
class Poll:
    """Poll (Q.2110 §7.3.2): N(PS) is the poll sequence, N(S) the sender's VT(S)."""
    TYPE: ClassVar[int] = POLL
    n_ps: int = 0
    n_s: int = 0

    def emit(self) -> bytes:
        return _W.pack(self.n_ps & MASK) + _last(0, POLL, self.n_s)


@dataclass(frozen=True, slots=True)
class Stat:
    """Solicited status (Q.2110 §7.3.3).  `list` holds SD N(S) values in pairs: each pair
    [first missing, first received again) delimits a gap; an odd last element is a gap
    that runs up to N(S) of the POLL (§20.x, STAT list coding)."""
    TYPE: ClassVar[int] = STAT
    n_ps: int = 0
    n_mr: int = 0
    n_r: int = 0
    list: tuple[int, ...] = field(default=())

    def emit(self) -> bytes:
        elems = b"".join(_W.pack(e & MASK) for e in self.list)
        return elems + _W2.pack(self.n_ps & MASK, self.n_mr & MASK) + _last(0, STAT, self.n_r)


@dataclass(frozen=True, slots=True)
class Ustat:
    """Unsolicited status (Q.2110 §7.3.4): one gap [list1, list2)."""
    TYPE: ClassVar[int] = USTAT
    n_mr: int = 0
    n_r: int = 0
    list: tuple[int, int] = (0, 0)

    def emit(self) -> bytes:
        return _W2.pack(self.list[0] & MASK, self.list[1] & MASK) + _W.pack(self.n_mr & MASK) \
            + _last(0, USTAT, self.n_r)


@dataclass(frozen=True, slots=True)
class Ud:
    """Unit data (Q.2110 §7.3.5)."""
    TYPE: ClassVar[int] = UD
    data: bytes = b""

    def emit(self) -> bytes:
        body, pl = _padded(self.data)
        return body + _last(pl, UD, 0)


@dataclass(frozen=True, slots=True)
class Md:
    """Management data (Q.2110 §7.3.6)."""
    TYPE: ClassVar[int] = MD
    data: bytes = b""

    def emit(self) -> bytes:
        body, pl = _padded(self.data)
        return body + _last(pl, MD, 0)


Pdu = Bgn | Bgak | Bgrej | End | Endak | Rs | Rsak | Er | Erak | Sd | Poll | Stat | Ustat | Ud | Md

# fixed trailer length per type; "var" types may carry a padded variable field before it
_TRAILER = {BGN: 8, BGAK: 8, BGREJ: 8, END: 8, ENDAK: 8, RS: 8, RSAK: 8, ER: 8, ERAK: 8,
            SD: 4, POLL: 8, STAT: 12, USTAT: 16, UD: 4, MD: 4}
_VAR = frozenset({BGN, BGAK, BGREJ, END, RS, SD, UD, MD})


def pdu_type(data: bytes | bytearray | memoryview) -> int | None:
    """The type code of a PDU, or None if it is too short to have one."""
    if len(data) < 4 or len(data) % 4:
        return None
    return data[-4] & 0x0F


def parse_pdu(data: bytes | bytearray | memoryview) -> Pdu | str:
    """Decode one SSCOP PDU (one AAL5 SDU).  Returns a reason string for anything malformed;
    reserved fields are ignored on receipt (Q.2110 §7.1)."""
    n = len(data)
    if n < 4:
        return "short PDU"
    if n % 4:
        return "length not a multiple of 4"
    mv = memoryview(data)
    (last,) = _W.unpack_from(mv, n - 4)
    ptype = (last >> 24) & 0x0F
    pl = last >> 30
    nval = last & MASK
    if ptype == 0:
        return "unknown PDU type 0"
    trailer = _TRAILER[ptype]
    if n < trailer:
        return f"{TYPE_NAMES[ptype]} too short ({n} octets)"
    var_len = n - trailer
    if ptype not in _VAR:
        if ptype == STAT:
            pass                     # the list is a whole number of words: checked by n % 4
        elif var_len:
            return f"{TYPE_NAMES[ptype]} wrong length ({n} octets)"
        if pl:
            return f"{TYPE_NAMES[ptype]} with pad length {pl}"
    elif pl > var_len:
        return f"{TYPE_NAMES[ptype]} pad length {pl} exceeds its {var_len}-octet field"
    var = bytes(mv[:var_len - pl]) if ptype in _VAR else b""
    w1 = _W.unpack_from(mv, n - 8)[0] if n >= 8 else 0
    if ptype == BGN:
        return Bgn(w1 & 0xFF, nval, var)
    if ptype == BGAK:
        return Bgak(nval, var)
    if ptype == BGREJ:
        return Bgrej(var)
    if ptype == END:
        return End(bool((last >> 24) & END_S_BIT), var)
    if ptype == ENDAK:
        return Endak()
    if ptype == RS:
        return Rs(w1 & 0xFF, nval, var)
    if ptype == RSAK:
        return Rsak(nval)
    if ptype == ER:
        return Er(w1 & 0xFF, nval)
    if ptype == ERAK:
        return Erak(nval)
    if ptype == SD:
        return Sd(nval, var)
    if ptype == POLL:
        return Poll(w1 & MASK, nval)
    if ptype == STAT:
        n_ps, n_mr = _W2.unpack_from(mv, n - 12)
        elems = tuple(_W.unpack_from(mv, i)[0] & MASK for i in range(0, n - 12, 4))
        return Stat(n_ps & MASK, n_mr & MASK, nval, elems)
    if ptype == USTAT:
        a, b, n_mr = struct.unpack_from(">III", mv, 0)
        return Ustat(n_mr & MASK, nval, (a & MASK, b & MASK))
    if ptype == UD:
        return Ud(var)
    return Md(var)
