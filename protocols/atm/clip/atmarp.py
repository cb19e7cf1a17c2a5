"""ATMARP and InATMARP packets (RFC 2225 §8.7), sans-IO: a checked parse and an emit.

RFC 2225 §8.7.1 -- twelve fixed octets, then six variable fields:

    ar$hrd 2 (0x0013)  ar$pro 2 (0x0800)  ar$shtl 1  ar$sstl 1  ar$op 2
    ar$spln 1  ar$thtl 1  ar$tstl 1  ar$tpln 1
    ar$sha  ar$ssa  ar$spa  ar$tha  ar$tsa  ar$tpa      (lengths from the octets above)

ar$op: 1 ATMARP_Request, 2 ATMARP_Reply, 8 InATMARP_Request, 9 InATMARP_Reply, 10 ATMARP_NAK.
A "TL" octet (§8.7.3) gives an ATM number's or subaddress's type and length: bit 8
reserved (0), bit 7 the type (0 ATM Forum NSAPA, 1 E.164), bits 6-1 the length in octets,
0 meaning absent (as on PVCs, §8.7.5 variable length).  §8.7.3 allows three
number/subaddress structures: NSAPA alone, E.164 alone, E.164 with an NSAPA subaddress.

`AtmArpRepr.parse` returns None for anything else -- the caller counts it as malformed:
  - short, ar$hrd/ar$pro not ATM/IPv4, an op outside the five, a protocol length not 0/4;
  - a reserved TL bit set; an NSAPA number not 20 octets; an E.164 number over 15 octets
    or not IA5 digits (UNI 3.1 §5.4.5.11); a subaddress that is not a 20-octet NSAPA, or
    that comes without an E.164 number.
Octets after the last field are ignored (§8.7.2: "unknown" trailing data is no error here).
After parse, nothing can raise: `emit()` of a parsed packet reproduces it (the type bit
of an absent address is not kept: it means nothing).

§8.7.4: an ATMARP_NAK is the ATMARP_Request it answers with only ar$op changed (`nak_of`).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from protocols.atm.uni.ie import AESA_LEN

AR_HRD_ATM = 0x0013              # ATM Forum address family (RFC 2225 §8.7.1)
AR_PRO_IPV4 = 0x0800
OP_REQUEST, OP_REPLY = 1, 2
OP_INARP_REQUEST, OP_INARP_REPLY = 8, 9
OP_NAK = 10
OPS = (OP_REQUEST, OP_REPLY, OP_INARP_REQUEST, OP_INARP_REPLY, OP_NAK)
OP_NAMES = {OP_REQUEST: "ATMARP_Request", OP_REPLY: "ATMARP_Reply", OP_INARP_REQUEST: "InATMARP_Request",
            OP_INARP_REPLY: "InATMARP_Reply", OP_NAK: "ATMARP_NAK"}
TL_RESERVED = 0x80
TL_E164 = 0x40                   # type bit: E.164 (else ATM Forum NSAPA)
TL_LEN = 0x3F                    # length in octets, 0 = absent
E164_MAX = 15                    # digits, one IA5 character each
_FIXED = struct.Struct("!HHBBHBBBB")   # hrd pro shtl sstl op spln thtl tstl tpln: 12 octets
ATMARP_FIXED_LEN = _FIXED.size
_DIGITS = frozenset(b"0123456789")


def _number_ok(addr: bytes, kind: int) -> bool:
    if not addr:
        return True
    if kind == TL_E164:
        return len(addr) <= E164_MAX and all(c in _DIGITS for c in addr)
    return len(addr) == AESA_LEN


def _party_ok(number: bytes, kind: int, sub: bytes) -> bool:
    """One of §8.7.3's structures: NSAPA, E.164, or E.164 + 20-octet NSAPA subaddress."""
    if not _number_ok(number, kind):
        return False
    return not sub or (len(sub) == AESA_LEN and kind == TL_E164 and bool(number))


@dataclass(slots=True)
class AtmArpRepr:
    """An ATMARP/InATMARP packet.  Addresses are raw octets, empty = absent (length 0);
    `spa`/`tpa` are IPv4 addresses as ints, or None when absent.  `stype`/`ttype` are the
    type bits (0 or TL_E164) of the source/target ATM number; a subaddress is NSAPA."""
    op: int
    spa: int | None
    tpa: int | None
    sha: bytes = b""
    ssa: bytes = b""
    tha: bytes = b""
    tsa: bytes = b""
    stype: int = 0
    ttype: int = 0

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> AtmArpRepr | None:
        """The packet, or None unless it is well-formed (see the module docstring)."""
        if len(data) < ATMARP_FIXED_LEN:
            return None
        hrd, pro, shtl, sstl, op, spln, thtl, tstl, tpln = _FIXED.unpack_from(data, 0)
        if hrd != AR_HRD_ATM or pro != AR_PRO_IPV4 or op not in OPS or spln not in (0, 4) or tpln not in (0, 4):
            return None
        if (shtl | sstl | thtl | tstl) & TL_RESERVED or (sstl | tstl) & TL_E164:
            return None              # a reserved bit, or an E.164 subaddress (§8.7.3 has none)
        lens = (shtl & TL_LEN, sstl & TL_LEN, spln, thtl & TL_LEN, tstl & TL_LEN, tpln)
        if len(data) < ATMARP_FIXED_LEN + sum(lens):
            return None
        parts: list[bytes] = []
        off = ATMARP_FIXED_LEN
        for n in lens:
            parts.append(bytes(data[off:off + n]))
            off += n
        sha, ssa, spa, tha, tsa, tpa = parts
        stype = shtl & TL_E164 if sha else 0
        ttype = thtl & TL_E164 if tha else 0
        if not (_party_ok(sha, stype, ssa) and _party_ok(tha, ttype, tsa)):
            return None
        return cls(op, int.from_bytes(spa, "big") if spa else None, int.from_bytes(tpa, "big") if tpa else None,
                   sha, ssa, tha, tsa, stype, ttype)

    def valid(self) -> bool:
        """Whether `emit()` gives a packet `parse` accepts (builders keep to this)."""
        ips_ok = all(ip is None or 0 <= ip <= 0xFFFFFFFF for ip in (self.spa, self.tpa))
        types_ok = self.stype in (0, TL_E164) and self.ttype in (0, TL_E164)
        return (self.op in OPS and ips_ok and types_ok and _party_ok(self.sha, self.stype, self.ssa)
                and _party_ok(self.tha, self.ttype, self.tsa))

    def emit(self) -> bytes:
        spa = b"" if self.spa is None else self.spa.to_bytes(4, "big")
        tpa = b"" if self.tpa is None else self.tpa.to_bytes(4, "big")

        def tl(addr: bytes, kind: int) -> int:
            return (kind if addr else 0) | len(addr)

        head = _FIXED.pack(AR_HRD_ATM, AR_PRO_IPV4, tl(self.sha, self.stype), tl(self.ssa, 0), self.op,
                           len(spa), tl(self.tha, self.ttype), tl(self.tsa, 0), len(tpa))
        return head + self.sha + self.ssa + spa + self.tha + self.tsa + tpa


# --- builders (RFC 2225 §8.7.1; the requester's own addresses are the source) -----------------
def request(spa: int | None, sha: bytes, tpa: int) -> AtmArpRepr:
    """ATMARP_Request for `tpa` (§8.5: the client's registration asks for its own address)."""
    return AtmArpRepr(OP_REQUEST, spa, tpa, sha=sha)


def reply_to(req: AtmArpRepr, ip: int, aesa: bytes, sub: bytes = b"", kind: int = 0) -> AtmArpRepr:
    """ATMARP_Reply to `req`: the answer (ip, aesa) as source, the requester as target."""
    return AtmArpRepr(OP_REPLY, ip, req.spa, sha=aesa, ssa=sub, tha=req.sha, tsa=req.ssa,
                      stype=kind, ttype=req.stype)


def nak_of(req: AtmArpRepr) -> AtmArpRepr:
    """§8.7.4: the request copied with ar$op = ATMARP_NAK."""
    return replace(req, op=OP_NAK)


def inarp_request(spa: int | None, sha: bytes) -> AtmArpRepr:
    """InATMARP_Request (RFC 2390 §7.1): our addresses as source, the target IP unknown."""
    return AtmArpRepr(OP_INARP_REQUEST, spa, None, sha=sha)


def inarp_reply_to(req: AtmArpRepr, ip: int, aesa: bytes) -> AtmArpRepr:
    """InATMARP_Reply: our addresses as source, the requester's echoed as target."""
    return AtmArpRepr(OP_INARP_REPLY, ip, req.spa, sha=aesa, tha=req.sha, tsa=req.ssa, ttype=req.stype)


__all__ = ["AR_HRD_ATM", "AR_PRO_IPV4", "ATMARP_FIXED_LEN", "E164_MAX", "OPS", "OP_INARP_REPLY",
           "OP_INARP_REQUEST", "OP_NAK", "OP_NAMES", "OP_REPLY", "OP_REQUEST", "TL_E164", "TL_LEN", "TL_RESERVED",
           "AtmArpRepr", "inarp_reply_to", "inarp_request", "nak_of", "reply_to", "request"]
