"""TCP header and options (RFC 9293 §3.1, RFC 7323, RFC 2018): a checked parse, then a repr.

`TcpRepr.parse` validates lengths once; after that nothing can raise.  Options are
decoded the way Linux's tcp_parse_options reads them: an option whose length is
impossible ends option parsing but does not drop the segment.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
HDR_LEN = 20
MAX_HDR_LEN = 60

OPT_EOL, OPT_NOP, OPT_MSS, OPT_WSCALE, OPT_SACK_PERM, OPT_SACK, OPT_TS = 0, 1, 2, 3, 4, 5, 8
# TCP Fast Open (RFC 7413 §4.1.1; fastopen.py): kind 34, or the RFC 6994 experimental kind
# 254 with the ExID Linux used before 34 was assigned; cookies of 4 to 16 octets, even
OPT_FASTOPEN, OPT_EXP, FASTOPEN_EXP_MAGIC = 34, 254, 0xF989
FASTOPEN_COOKIE_MIN, FASTOPEN_COOKIE_MAX = 4, 16
MAX_WSCALE = 14                 # RFC 7323 §2.3: larger shifts are treated as 14

_HDR = struct.Struct("!HHIIBBHHH")
_TS = struct.Struct("!BBII")
# the header of nearly every segment after the handshake between timestamp-using ends (Linux
# lays TS out so): 32 octets, the options NOP NOP TS(10) -- read in one unpack (parse)
_HDR_NOP_NOP_TS = struct.Struct("!HHIIBBHHHIII")
_NOP_NOP_TS = (OPT_NOP << 24) | (OPT_NOP << 16) | (OPT_TS << 8) | 10
_OFF_32 = 8                                     # the data-offset nibble of a 32-octet header
# ... and Linux's ACK during loss recovery: NOP NOP TS, then NOP NOP SACK with 1-3 blocks (the
# data-offset nibble 11, 13, 15) -- per header nibble, its layout and the SACK option's lead word
_HDR_TS_SACK = {9 + 2 * n: (struct.Struct("!HHIIBBHHHIIII" + "II" * n),
                            (OPT_NOP << 24) | (OPT_NOP << 16) | (OPT_SACK << 8) | (2 + 8 * n)) for n in (1, 2, 3)}
# ... and Linux's SYN and SYN-ACK (tcp_options_write): MSS, SACK permitted, TS, NOP, window
# scale in a 40-octet header (a gateway reads one per connection) -- the words after the MSS
_HDR_SYN = struct.Struct("!HHIIBBHHHIIIII")
_OFF_40 = 10
_MSS_LEAD = (OPT_MSS << 8) | 4
_SACKP_TS = (OPT_SACK_PERM << 24) | (2 << 16) | (OPT_TS << 8) | 10
_NOP_WS = (OPT_NOP << 16) | (OPT_WSCALE << 8) | 3


def parse_fastopen(kind: int, body: bytes | bytearray | memoryview) -> tuple[bytes | None, bool]:
    """The cookie of a Fast Open option (after kind and length): b"" is a request, None an
    option that is not Fast Open or whose length is wrong (Linux tcp_parse_fastopen_option:
    taken as absent).  The bool says the experimental kind was used."""
    exp = kind == OPT_EXP
    if exp:
        if len(body) < 2 or (body[0] << 8 | body[1]) != FASTOPEN_EXP_MAGIC:
            return None, False
        body = body[2:]
    n = len(body)
    if n == 0:
        return b"", exp
    if FASTOPEN_COOKIE_MIN <= n <= FASTOPEN_COOKIE_MAX and n % 2 == 0:
        return bytes(body), exp
    return None, exp


def fastopen_option(cookie: bytes, exp: bool) -> bytes:
    """The option as Linux lays it out (tcp_options_write): last, NOP-padded to 4 octets."""
    out = (bytes((OPT_EXP, 4 + len(cookie))) + FASTOPEN_EXP_MAGIC.to_bytes(2, "big") if exp
           else bytes((OPT_FASTOPEN, 2 + len(cookie)))) + cookie
    return out + b"\x01\x01" if len(out) % 4 == 2 else out


def wscale_for(capacity: int) -> int:
    """The window scale (RFC 7323 §2.3, at most 14) that lets a 16-bit field carry `capacity`."""
    shift = 0
    while (0xFFFF << shift) < capacity and shift < 14:
        shift += 1
    return shift


@dataclass(slots=True)
class TcpRepr:
    src_port: int
    dst_port: int
    seq: int
    ack: int
    flags: int
    window: int                         # the raw 16-bit field (unscaled)
    urgent: int = 0
    mss: int | None = None
    wscale: int | None = None
    sack_perm: bool = False
    ts: tuple[int, int] | None = None   # (TSval, TSecr)
    sack: tuple[tuple[int, int], ...] = ()
    hdr_len: int = HDR_LEN
    ecn: int = 0                        # the IP header's ECN codepoint it came with (tcp.py; ecn.py)
    fastopen: bytes | None = None       # TCP Fast Open: b"" a cookie request, else the cookie
    fastopen_exp: bool = False          # ... in the experimental option (kind 254)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> TcpRepr | str:
        """A repr, or the name of the counter to bump when the header is malformed."""
        size = len(data)
        if size >= 32 and data[12] >> 4 == _OFF_32:
            # the common layout first (per segment): what _parse_options would make of it
            sport, dport, seq, ack, _off, flags, win, _csum, urg, lead, val, ecr = \
                _HDR_NOP_NOP_TS.unpack_from(data, 0)
            if lead == _NOP_NOP_TS:
                return cls(sport, dport, seq, ack, flags, win, urg, None, None, False, (val, ecr), (), 32)
        elif size >= 40 and data[12] >> 4 == _OFF_40:
            v = _HDR_SYN.unpack_from(data, 0)
            if v[9] >> 16 == _MSS_LEAD and v[10] == _SACKP_TS and v[13] >> 8 == _NOP_WS:
                return cls(v[0], v[1], v[2], v[3], v[5], v[6], v[8], v[9] & 0xFFFF, min(v[13] & 0xFF, MAX_WSCALE),
                           True, (v[11], v[12]), (), 40)
        elif size >= 44 and (layout := _HDR_TS_SACK.get(data[12] >> 4)) is not None and size >= layout[0].size:
            v = layout[0].unpack_from(data, 0)
            if v[9] == _NOP_NOP_TS and v[12] == layout[1]:
                blocks = v[13:]
                sack = tuple(zip(blocks[0::2], blocks[1::2], strict=True))
                return cls(v[0], v[1], v[2], v[3], v[5], v[6], v[8], None, None, False, (v[10], v[11]), sack,
                           layout[0].size)
        if size < HDR_LEN:
            return "in_truncated"
        sport, dport, seq, ack, off, flags, win, _csum, urg = _HDR.unpack_from(data, 0)
        hlen = (off >> 4) * 4
        if hlen < HDR_LEN:
            return "in_hdr_errors"
        if hlen > size:
            return "in_truncated"
        seg = cls(sport, dport, seq, ack, flags, win, urg, None, None, False, None, (), hlen)
        if hlen > HDR_LEN:
            seg._parse_options(data, hlen)
        return seg

    def _parse_options(self, data: bytes | bytearray | memoryview, end: int) -> None:
        i = HDR_LEN
        while i < end:
            kind = data[i]
            if kind == OPT_EOL:
                return
            if kind == OPT_NOP:
                i += 1
                continue
            if i + 1 >= end:
                return
            size = data[i + 1]
            if size < 2 or i + size > end:
                return                                  # silly option: stop, keep the segment
            if kind == OPT_MSS and size == 4:
                self.mss = (data[i + 2] << 8) | data[i + 3]
            elif kind == OPT_WSCALE and size == 3:
                self.wscale = min(data[i + 2], MAX_WSCALE)
            elif kind == OPT_SACK_PERM and size == 2:
                self.sack_perm = True
            elif kind == OPT_TS and size == 10:
                _, _, val, ecr = _TS.unpack_from(data, i)
                self.ts = (val, ecr)
            elif kind == OPT_SACK and (size - 2) % 8 == 0:
                n = (size - 2) // 8
                vals = struct.unpack_from(f"!{2 * n}I", data, i + 2)
                self.sack = tuple(zip(vals[0::2], vals[1::2], strict=True))
            elif kind in (OPT_FASTOPEN, OPT_EXP):
                self.fastopen, self.fastopen_exp = parse_fastopen(kind, bytes(data[i + 2:i + size]))
            i += size

    # --- emit ------------------------------------------------------------------------
    def options_bytes(self) -> bytes:
        """Options padded to a 4-octet boundary, laid out as Linux does (NOPs for alignment)."""
        out = bytearray()
        if self.mss is not None:
            out += struct.pack("!BBH", OPT_MSS, 4, self.mss)
        if self.ts is not None:
            if self.sack_perm:
                out += struct.pack("!BB", OPT_SACK_PERM, 2)
            else:
                out += b"\x01\x01"
            out += _TS.pack(OPT_TS, 10, *self.ts)
        elif self.sack_perm:
            out += b"\x01\x01" + struct.pack("!BB", OPT_SACK_PERM, 2)
        if self.wscale is not None:
            out += struct.pack("!BBBB", OPT_NOP, OPT_WSCALE, 3, self.wscale)
        if self.sack:
            out += b"\x01\x01" + struct.pack("!BB", OPT_SACK, 2 + 8 * len(self.sack))
            for left, right in self.sack:
                out += struct.pack("!II", left, right)
        if self.fastopen is not None:
            out += fastopen_option(self.fastopen, self.fastopen_exp)
        if len(out) % 4:
            out += bytes(4 - len(out) % 4)
        return bytes(out)

    def emit(self, into: memoryview | bytearray, options: bytes = b"", checksum: int = 0) -> None:
        """Write the header (+ pre-built `options`) into `into[:20 + len(options)]`."""
        hlen = HDR_LEN + len(options)
        _HDR.pack_into(into, 0, self.src_port, self.dst_port, self.seq, self.ack, (hlen // 4) << 4,
                       self.flags, self.window, checksum, self.urgent)
        if options:
            into[HDR_LEN:hlen] = options

    def __str__(self) -> str:
        names = "".join(c for bit, c in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "."))
                        if self.flags & bit)
        return f"{self.src_port}>{self.dst_port} [{names}] seq={self.seq} ack={self.ack} win={self.window}"
