"""Multicast Listener Discovery: MLDv2 (RFC 3810) host side, with MLDv1 (RFC 2710) messages.

  `parse(hdr)`  type 130 -> MldQuery (v2, ICMP length >= 28) or MldV1Query (length 24):
                RFC 3810 §8.1 tells them apart by length, and a query of any other
                length "MUST be silently ignored"; type 143 -> MldReport; 131/132 ->
                MldV1Report / MldV1Done (a v2 host in MLDv1 compatibility mode sends them,
                §8.2.1).  Else the MldStats counter to bump.
  `validate(msg, src, dst, hop_limit)`
                §6.2 for queries: a link-local source and hop limit 1 (else dropped); the
                group field is 0 (general query) or a multicast address, and a general
                query carries no sources (as Linux's igmp6_event_query).  The third check
                of §6.2, the Router Alert option in a Hop-by-Hop header, is the IPv6
                layer's: it must tell the MLD core whether the option was there.

Times: the Maximum Response Code and QQIC are kept raw, as on the wire; the properties
`max_resp_delay` (ms, §5.1.3) and `qqi` (s, §5.1.9) decode their exponential forms, and
`encode_max_resp_code` / `encode_qqic` build them.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Self

from protocols.ipv6.addr import is_link_local, is_multicast, is_unspecified

from .wire import (
    MLD2_REPORT,
    MLD_DONE,
    MLD_QUERY,
    MLD_REPORT,
    Buf,
    Icmpv6Repr,
    Message,
)

MLD_HOP_LIMIT = 1                   # RFC 3810 §5, RFC 2710 §3: MLD never leaves the link
MLDV1_LENGTH = 24                   # §8.1
MLDV2_QUERY_MIN_LENGTH = 28         # §5.1
MLDV2_REPORT_MIN_LENGTH = 8         # §5.2: the header and the record count
DEFAULT_QRV = 2                     # §9.1 robustness variable
DEFAULT_QQI = 125                   # §9.2 query interval, s

# multicast address record types (§5.2.12)
MODE_IS_INCLUDE = 1
MODE_IS_EXCLUDE = 2
CHANGE_TO_INCLUDE_MODE = 3
CHANGE_TO_EXCLUDE_MODE = 4
ALLOW_NEW_SOURCES = 5
BLOCK_OLD_SOURCES = 6
RECORD_TYPES = frozenset(range(MODE_IS_INCLUDE, BLOCK_OLD_SOURCES + 1))

_RECORD = struct.Struct("!BBH16s")   # type, aux data len (32-bit words), number of sources, group
_V2_QUERY = struct.Struct("!HH16sBBH")  # max resp code, reserved, group, resv|S|QRV, QQIC, N


def _a16(addr: int) -> bytes:
    return (addr & (1 << 128) - 1).to_bytes(16, "big")


def _addrs(data: Buf, at: int, n: int) -> tuple[int, ...]:
    return tuple(int.from_bytes(data[at + 16 * i:at + 16 * i + 16], "big") for i in range(n))


# --- the exponential codes (§5.1.3, §5.1.9) -------------------------------------------------
def decode_max_resp_code(code: int) -> int:
    """§5.1.3: below 32768 the code is the delay in ms; else 1|exp(3)|mant(12) means
    (mant | 0x1000) << (exp + 3) ms."""
    if code < 0x8000:
        return code
    return (code & 0xFFF | 0x1000) << ((code >> 12 & 7) + 3)


def encode_max_resp_code(delay_ms: int) -> int:
    """The code for `delay_ms`, rounded down to what the float form can say (so a host
    answers no later than asked); delays beyond the largest form get the largest."""
    if delay_ms < 0x8000:
        return max(delay_ms, 0)
    for exp in range(8):
        mant = (delay_ms >> (exp + 3)) - 0x1000
        if mant <= 0xFFF:
            return 0x8000 | exp << 12 | mant
    return 0xFFFF


def decode_qqic(qqic: int) -> int:
    """§5.1.9: below 128 the QQIC is the interval in s; else 1|exp(3)|mant(4) means
    (mant | 0x10) << (exp + 3) s."""
    if qqic < 0x80:
        return qqic
    return (qqic & 0xF | 0x10) << ((qqic >> 4 & 7) + 3)


def encode_qqic(interval_s: int) -> int:
    if interval_s < 0x80:
        return max(interval_s, 0)
    for exp in range(8):
        mant = (interval_s >> (exp + 3)) - 0x10
        if mant <= 0xF:
            return 0x80 | exp << 4 | mant
    return 0xFF


# --- MLDv2 query (§5.1) --------------------------------------------------------------------
@dataclass(slots=True, kw_only=True)
class MldQuery(Message):
    """A version 2 query: general (group 0), group-specific, or group-and-source-specific
    (sources).  S suppresses router-side processing (§5.1.7); QRV is the querier's
    robustness variable (§5.1.8, 0: use the default)."""
    TYPE: ClassVar[int] = MLD_QUERY
    code: int = 0
    max_resp_code: int = 10000
    group: int = 0
    suppress: bool = False
    qrv: int = DEFAULT_QRV
    qqic: int = DEFAULT_QQI
    sources: tuple[int, ...] = ()

    @property
    def max_resp_delay(self) -> int:
        """Milliseconds."""
        return decode_max_resp_code(self.max_resp_code)

    @property
    def qqi(self) -> int:
        """The querier's query interval, seconds."""
        return decode_qqic(self.qqic)

    @classmethod
    def from_repr(cls, hdr: Icmpv6Repr) -> Self | str:
        body = hdr.rest.to_bytes(4, "big") + hdr.data
        mrc, _res, group, sqrv, qqic, n = _V2_QUERY.unpack_from(body, 0)
        if len(body) < _V2_QUERY.size + 16 * n:
            return "in_truncated"
        # §5.1.12: octets beyond the sources count in the checksum and are otherwise ignored
        return cls(code=hdr.code, max_resp_code=mrc, group=int.from_bytes(group, "big"), suppress=bool(sqrv & 8),
                   qrv=sqrv & 7, qqic=qqic, sources=_addrs(body, _V2_QUERY.size, n))

    def to_repr(self) -> Icmpv6Repr:
        body = _V2_QUERY.pack(self.max_resp_code & 0xFFFF, 0, _a16(self.group),
                              (8 if self.suppress else 0) | self.qrv & 7, self.qqic & 0xFF, len(self.sources) & 0xFFFF)
        body += b"".join(_a16(s) for s in self.sources)
        return Icmpv6Repr(self.TYPE, self.code, int.from_bytes(body[:4], "big"), body[4:])


# --- MLDv1 (RFC 2710 §3) ---------------------------------------------------------------------
@dataclass(slots=True, kw_only=True)
class _MldV1(Message):
    """Maximum response delay (ms, meaningful in queries only), 2 reserved octets, group."""
    code: int = 0
    max_resp_delay: int = 0
    group: int = 0

    @classmethod
    def from_repr(cls, hdr: Icmpv6Repr) -> Self:
        return cls(code=hdr.code, max_resp_delay=hdr.rest >> 16, group=int.from_bytes(hdr.data[:16], "big"))

    def to_repr(self) -> Icmpv6Repr:
        return Icmpv6Repr(self.TYPE, self.code, (self.max_resp_delay & 0xFFFF) << 16, _a16(self.group))


@dataclass(slots=True, kw_only=True)
class MldV1Query(_MldV1):
    """An MLDv1 query: a v2 host answers it and falls back to v1 (RFC 3810 §8.2.1)."""
    TYPE: ClassVar[int] = MLD_QUERY


@dataclass(slots=True, kw_only=True)
class MldV1Report(_MldV1):
    TYPE: ClassVar[int] = MLD_REPORT


@dataclass(slots=True, kw_only=True)
class MldV1Done(_MldV1):
    TYPE: ClassVar[int] = MLD_DONE


# --- MLDv2 report (§5.2) ---------------------------------------------------------------------
@dataclass(slots=True)
class McastRecord:
    """A multicast address record (§5.2.4): its type (1-6), group, sources, auxiliary data
    (none defined by MLDv2, §5.2.10; a multiple of 4 octets)."""
    type: int
    group: int
    sources: tuple[int, ...] = ()
    aux: bytes = b""

    @property
    def size(self) -> int:
        return _RECORD.size + 16 * len(self.sources) + len(self.aux)

    def emit(self) -> bytes:
        aux = self.aux + bytes(-len(self.aux) % 4)
        return (_RECORD.pack(self.type & 0xFF, len(aux) // 4 & 0xFF, len(self.sources) & 0xFFFF, _a16(self.group))
                + b"".join(_a16(s) for s in self.sources) + aux)


@dataclass(slots=True, kw_only=True)
class MldReport(Message):
    """A version 2 report: reserved octets, the number of records, the records."""
    TYPE: ClassVar[int] = MLD2_REPORT
    code: int = 0
    records: tuple[McastRecord, ...] = ()

    @classmethod
    def from_repr(cls, hdr: Icmpv6Repr) -> Self | str:
        count = hdr.rest & 0xFFFF
        data, i, records = hdr.data, 0, []
        for _ in range(count):
            if len(data) - i < _RECORD.size:
                return "in_truncated"
            rtype, aux_words, n, group = _RECORD.unpack_from(data, i)
            end = i + _RECORD.size + 16 * n + 4 * aux_words
            if end > len(data):
                return "in_truncated"
            records.append(McastRecord(rtype, int.from_bytes(group, "big"), _addrs(data, i + _RECORD.size, n),
                                       bytes(data[end - 4 * aux_words:end])))
            i = end
        return cls(code=hdr.code, records=tuple(records))

    def to_repr(self) -> Icmpv6Repr:
        return Icmpv6Repr(self.TYPE, self.code, len(self.records) & 0xFFFF,
                          b"".join(r.emit() for r in self.records))


ALL_MLDV2_ROUTERS = 0xFF02_0000_0000_0000_0000_0000_0000_0016   # ff02::16, where v2 reports go (§5.2.14)
# Every MLD message carries a Hop-by-Hop header with a Router Alert (RFC 3810 §5, RFC 2710
# §3): next header ICMPv6, length 0 (8 octets), Router Alert option (type 5, length 2,
# value 0 = MLD, RFC 2711 §2.1), PadN of no data.  The IPv6 layer puts it in front.
# Reports fit the link (§5.2.15) because the host puts at most records_per_report(mtu)
# source-less records in one (protocols/ipv6/mld.py); this host sends no sources.
ROUTER_ALERT_HBH = bytes((58, 0, 5, 2, 0, 0, 1, 0))
REPORT_HBH_LEN = len(ROUTER_ALERT_HBH)


AnyMldMessage = MldQuery | MldV1Query | MldV1Report | MldV1Done | MldReport


def parse(hdr: Icmpv6Repr) -> AnyMldMessage | str:
    """The typed message or the MldStats counter (see the module docstring)."""
    if hdr.type == MLD_QUERY:
        if hdr.length == MLDV1_LENGTH:
            return MldV1Query.from_repr(hdr)
        if hdr.length >= MLDV2_QUERY_MIN_LENGTH:
            return MldQuery.from_repr(hdr)
        return "in_bad_length"
    if hdr.type == MLD2_REPORT:
        return MldReport.from_repr(hdr)
    if hdr.type in (MLD_REPORT, MLD_DONE):
        if hdr.length < MLDV1_LENGTH:
            return "in_bad_length"
        return MldV1Report.from_repr(hdr) if hdr.type == MLD_REPORT else MldV1Done.from_repr(hdr)
    return "in_unknown_types"


def validate(msg: AnyMldMessage, src: int, dst: int, hop_limit: int) -> str | None:
    """None when valid, else the MldStats counter.  Every MLD message is sent from a
    link-local source with hop limit 1 (RFC 3810 §5, RFC 2710 §3); §6.2 drops a query
    failing either.  A report may come from :: (§5.2.13: before the sender has a valid
    link-local address); a host does not act on others' reports anyway."""
    del dst
    if hop_limit != MLD_HOP_LIMIT:
        return "in_bad_hop_limit"
    if isinstance(msg, MldQuery | MldV1Query):
        if not is_link_local(src):
            return "in_src_not_link_local"
        if not (is_unspecified(msg.group) or is_multicast(msg.group)):
            return "in_bad_group"
        if isinstance(msg, MldQuery) and is_unspecified(msg.group) and msg.sources:
            return "in_general_query_with_sources"
    elif not (is_link_local(src) or is_unspecified(src)):
        return "in_src_not_link_local"
    return None
