"""The IPv6 extension-header chain (RFC 8200 §4), walked once per packet, bounded.

`walk_chain` follows the Next Header values from the fixed header to the upper-layer header
and returns a `Chain` (the upper-layer protocol, where it starts, the offset of the Next Header
octet that named it, the Fragment header if any), or a `Drop` (the Ipv6Stats counter to bump
and, when the RFC asks for one, the ICMPv6 Parameter Problem (code, pointer) to send back;
RFC 4443 §2.4's rules about when not to send are the ICMPv6 layer's).  It never raises.

Bounds (per packet work is O(chain), the chain is bounded):
- at most MAX_EXT_HEADERS (8) extension headers: Linux has no such count (it has the option
  bound below, 8, which we reuse), the BSDs do (ip6_hdrnestlimit: 10 on OpenBSD, 15 on
  FreeBSD, 50 in KAME); 8 holds every legitimate chain (RFC 8200 §4.1 orders at most 6 kinds,
  destination options twice) and RFC 8504 §5.3 lets a node set such limits;
- at most MAX_OPTIONS (8) non-padding options per options header (those Linux sysctls) and at
  most 7 octets of consecutive padding, PadN's content all zeros (Linux ip6_parse_tlv; RFC
  8200 §4.2 pads only to the next 8-octet boundary, RFC 4942 §2.1.9.5 covert channels);
- each header is at most 2 KiB by its 8-bit length field.
Exceeding a bound drops the packet silently (ipSystemStatsInHdrErrors), as Linux does: no
RFC 8883 error codes are sent.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ..icmpv6.wire import PARAM_HEADER, PARAM_INCOMPLETE_CHAIN, PARAM_NEXT_HEADER, PARAM_OPTION
from .wire import (
    HDR_LEN,
    MAX_PAYLOAD_LEN,
    NH_AH,
    NH_DSTOPTS,
    NH_FRAGMENT,
    NH_HOPOPTS,
    NH_ICMPV6,
    NH_NONE,
    NH_ROUTING,
    NH_TCP,
    NH_UDP,
)

NH_FIELD = 6                    # offset of the fixed header's Next Header octet
FRAG_HDR_LEN = 8

OPT_PAD1 = 0x00
OPT_PADN = 0x01
OPT_ROUTER_ALERT = 0x05         # RFC 2711, hop-by-hop only; value 0 = MLD (RFC 3810 §5)
OPT_JUMBO = 0xC2                # RFC 2675: not supported, handled as an unrecognized option

# what to do with an unrecognized option: its type's two high-order bits (RFC 8200 §4.2)
ACT_SKIP = 0
ACT_DISCARD = 1
ACT_DISCARD_ICMP = 2            # parameter problem code 2 whatever the destination
ACT_DISCARD_ICMP_UNICAST = 3    # ... only if the destination is not multicast

# The ICMPv6 Parameter Problem codes (RFC 4443 §3.4, RFC 7112) are the codec's (icmpv6/wire.py).

MAX_EXT_HEADERS = 8
MAX_OPTIONS = 8
MAX_PADDING = 7

# the smallest upper-layer header a first fragment must hold (RFC 7112 §5; Linux
# ipv6frag_thdr_truncated checks the same three), others need their first octet
_MIN_UPPER_HDR = {NH_TCP: 20, NH_UDP: 8, NH_ICMPV6: 8, NH_NONE: 0}

_FRAG = struct.Struct("!BBHI")


@dataclass(frozen=True, slots=True)
class FragmentHeader:
    """The Fragment header's fields (RFC 8200 §4.5); `offset` in octets (a multiple of 8)."""
    next_header: int
    offset: int
    more: bool
    ident: int


def parse_fragment_header(data: bytes | bytearray | memoryview) -> FragmentHeader | None:
    """The Fragment header at the start of `data`, or None when fewer than 8 octets are there.
    Both reserved fields are ignored on receipt (RFC 8200 §4.5)."""
    if len(data) < FRAG_HDR_LEN:
        return None
    next_header, _, offset_flags, ident = _FRAG.unpack_from(data)
    return FragmentHeader(next_header, offset_flags & 0xFFF8, bool(offset_flags & 1), ident)


@dataclass(frozen=True, slots=True)
class FragmentInfo:
    """A Fragment header (RFC 8200 §4.5).  Offsets count from the start of the IPv6 header."""
    hdr_offset: int             # where the Fragment header starts (= the unfragmentable part's length)
    nh_field: int               # the Next Header octet that names the Fragment header: reassembly rewrites it
    next_header: int            # the first header of the fragmentable part
    offset: int                 # fragment offset in octets
    more: bool                  # the M flag
    ident: int

    @property
    def header(self) -> FragmentHeader:
        """The fields the reassembler keys and places the fragment by."""
        return FragmentHeader(self.next_header, self.offset, self.more, self.ident)

    @property
    def atomic(self) -> bool:
        """Offset 0 and M 0: an atomic fragment, processed in isolation (RFC 6946 §4)."""
        return self.offset == 0 and not self.more

    @property
    def payload_offset(self) -> int:
        return self.hdr_offset + FRAG_HDR_LEN


@dataclass(frozen=True, slots=True)
class Chain:
    """Where the walk stopped.  For a fragment needing reassembly (`needs_reassembly`) that is the
    start of the fragmentable part; otherwise the upper-layer header (NH_NONE: nothing follows,
    RFC 8200 §4.7).  `nh_field` is the pointer of a Parameter Problem code 1 when no protocol
    handles `next_header` (RFC 8200 §4)."""
    next_header: int
    offset: int
    nh_field: int
    fragment: FragmentInfo | None = None
    router_alert: int | None = None   # the hop-by-hop Router Alert value (RFC 2711), if present
    headers: int = 0                  # extension headers walked (pass back as `headers` to resume)

    @property
    def needs_reassembly(self) -> bool:
        return self.fragment is not None and not self.fragment.atomic


@dataclass(frozen=True, slots=True)
class Drop:
    reason: str                                   # an Ipv6Stats field name
    param_problem: tuple[int, int] | None = None  # (ICMPv6 Parameter Problem code, pointer)


_TOO_MANY = Drop("in_hdr_errors")
_TRUNCATED = Drop("in_truncated_pkts")
_BAD_OPTIONS = Drop("in_hdr_errors")


def walk_chain(data: bytes | bytearray | memoryview, next_header: int, *, dst_multicast: bool,
               start: int = HDR_LEN, nh_field: int = NH_FIELD, headers: int = 0,
               max_headers: int = MAX_EXT_HEADERS, max_options: int = MAX_OPTIONS) -> Chain | Drop:
    """Walk the chain of the packet `data` (starting at its IPv6 header, trimmed to 40 + payload
    length) from `next_header` at offset `start`; `headers` extension headers were walked
    before (a hop-by-hop header is accepted only as the very first).  After reassembly, call
    `resume_after_reassembly` rather than passing those by hand."""
    n = len(data)
    off = start
    nh = next_header
    router_alert: int | None = None
    fragment: FragmentInfo | None = None
    while nh in (NH_HOPOPTS, NH_DSTOPTS, NH_ROUTING, NH_FRAGMENT):
        headers += 1
        if headers > max_headers:
            return _TOO_MANY
        if off + 2 > n:
            return _TRUNCATED
        if nh == NH_FRAGMENT:
            frag = _fragment(data, off, nh_field, headers, max_headers)
            if isinstance(frag, Drop):
                return frag
            fragment = frag
            if not frag.atomic:
                return Chain(frag.next_header, frag.payload_offset, off, frag, router_alert, headers)
            # RFC 6946 §4: an atomic fragment is processed in isolation, the chain goes on
            hdr_len = FRAG_HDR_LEN
        else:
            hdr_len = (data[off + 1] + 1) * 8
            if off + hdr_len > n:
                return _TRUNCATED
            if nh == NH_HOPOPTS:
                if off != HDR_LEN or headers != 1:
                    # RFC 8200 §4.3: only right after the IPv6 header; anywhere else it is an
                    # unrecognized Next Header value (Linux: InUnknownProtos, code 1)
                    return Drop("in_unknown_protos", (PARAM_NEXT_HEADER, nh_field))
                ra = _options(data, off, hdr_len, True, dst_multicast, max_options)
                if isinstance(ra, Drop):
                    return ra
                router_alert = ra
            elif nh == NH_DSTOPTS:
                ra = _options(data, off, hdr_len, False, dst_multicast, max_options)
                if isinstance(ra, Drop):
                    return ra
            else:
                verdict = _routing(data, off, dst_multicast)
                if verdict is not None:
                    return verdict
        nh_field = off          # every extension header starts with its Next Header octet
        nh = data[off]
        off += hdr_len
    return Chain(nh, off, nh_field, fragment, router_alert, headers)


def resume_after_reassembly(data: bytes | bytearray | memoryview, chain: Chain, *, dst_multicast: bool,
                            max_headers: int = MAX_EXT_HEADERS, max_options: int = MAX_OPTIONS) -> Chain | Drop:
    """Go on with the reassembled packet `data` -- the unfragmentable part (its last Next Header
    rewritten to the fragmentable part's first header, RFC 8200 §4.5) followed by the fragments'
    payloads -- where the walk of the first fragment stopped (`chain`, needs_reassembly).  The
    headers already walked still count against the bound, and a hop-by-hop header found now
    is one that followed a Fragment header: not first, so code 1."""
    frag = chain.fragment
    if frag is None:
        return chain
    return walk_chain(data, frag.next_header, dst_multicast=dst_multicast, start=frag.hdr_offset,
                      nh_field=frag.nh_field, headers=chain.headers, max_headers=max_headers,
                      max_options=max_options)


def _options(data: bytes | bytearray | memoryview, off: int, hdr_len: int, hop_by_hop: bool,
             dst_multicast: bool, max_options: int) -> int | Drop | None:
    """Act on a Hop-by-Hop or Destination Options header (RFC 8200 §4.2-4.3, §4.6).  Returns the
    Router Alert value (or None), or a Drop."""
    found = scan_options(data, off + 2, off + hdr_len, max_options)
    if isinstance(found, str):
        return _BAD_OPTIONS
    router_alert = None
    for opt_type, value_at, value_len in found:
        if hop_by_hop and opt_type == OPT_ROUTER_ALERT:
            if value_len != 2:
                return _BAD_OPTIONS           # RFC 2711 §2.1: length 2 (Linux ipv6_hop_ra drops others)
            router_alert = (data[value_at] << 8) | data[value_at + 1]
            continue
        action = opt_type >> 6
        if action == ACT_SKIP:
            continue
        if action == ACT_DISCARD or (action == ACT_DISCARD_ICMP_UNICAST and dst_multicast):
            return _BAD_OPTIONS
        return Drop("in_hdr_errors", (PARAM_OPTION, value_at - 2))   # pointer: the option type
    return router_alert


def scan_options(data: bytes | bytearray | memoryview, start: int, end: int,
                 max_options: int = MAX_OPTIONS) -> list[tuple[int, int, int]] | str:
    """The non-padding options of data[start:end] as (type, value offset, value length), or a
    reason string: an option running past `end`, more than `max_options` options, more than
    MAX_PADDING consecutive padding octets or a PadN with non-zero content."""
    found: list[tuple[int, int, int]] = []
    padding = 0
    i = start
    while i < end:
        opt_type = data[i]
        if opt_type == OPT_PAD1:
            padding += 1
            if padding > MAX_PADDING:
                return "in_hdr_errors"
            i += 1
            continue
        if i + 2 > end:
            return "in_hdr_errors"
        value_len = data[i + 1]
        value_at = i + 2
        if value_at + value_len > end:
            return "in_hdr_errors"
        if opt_type == OPT_PADN:
            padding += value_len + 2
            if padding > MAX_PADDING or any(data[value_at:value_at + value_len]):
                return "in_hdr_errors"
        else:
            padding = 0
            found.append((opt_type, value_at, value_len))
            if len(found) > max_options:
                return "in_hdr_errors"
        i = value_at + value_len
    return found


def _routing(data: bytes | bytearray | memoryview, off: int, dst_multicast: bool) -> Drop | None:
    """A Routing header (RFC 8200 §4.4): we are a host and run no routing type.  Segments Left 0:
    ignored, whatever the type.  Otherwise Parameter Problem code 0 at the Routing Type -- type 0
    included, which RFC 5095 §3 deprecates and treats as unrecognized."""
    if dst_multicast:
        # RFC 4291 §2.7 keeps multicast addresses out of routing headers; Linux ipv6_rthdr_rcv
        # drops any routing header sent to a multicast destination (InAddrErrors)
        return Drop("in_addr_errors")
    if data[off + 3] == 0:
        return None
    return Drop("in_hdr_errors", (PARAM_HEADER, off + 2))


def _fragment(data: bytes | bytearray | memoryview, off: int, nh_field: int, headers: int,
              max_headers: int) -> FragmentInfo | Drop:
    """Check a Fragment header against the packet it came in (RFC 8200 §4.5)."""
    n = len(data)
    if off + FRAG_HDR_LEN > n:
        return _TRUNCATED
    nh, _reserved, offset_flags, ident = _FRAG.unpack_from(data, off)
    info = FragmentInfo(off, nh_field, nh, offset_flags & 0xFFF8, bool(offset_flags & 1), ident)
    if info.atomic:
        return info
    frag_len = n - info.payload_offset
    if info.more and frag_len % 8:
        # "not a multiple of 8 octets and the M flag 1": code 0 at the Payload Length field
        return Drop("in_hdr_errors", (PARAM_HEADER, 4))
    if (off - HDR_LEN) + info.offset + frag_len > MAX_PAYLOAD_LEN:
        # the reassembled payload would exceed 65535 octets: code 0 at the Fragment Offset
        return Drop("in_hdr_errors", (PARAM_HEADER, off + 2))
    if info.offset == 0 and not _first_fragment_complete(data, nh, info.payload_offset, headers, max_headers):
        # RFC 8200 §4.5 / RFC 7112 §5: the first fragment must hold the whole chain up to and
        # including the upper-layer header; code 3, pointer 0
        return Drop("in_hdr_errors", (PARAM_INCOMPLETE_CHAIN, 0))
    return info


def _first_fragment_complete(data: bytes | bytearray | memoryview, nh: int, off: int, headers: int,
                             max_headers: int) -> bool:
    """Skip the extension headers of the first fragment's fragmentable part by their lengths
    only (they are acted on after reassembly) and check the upper-layer header is there."""
    n = len(data)
    while nh in (NH_HOPOPTS, NH_DSTOPTS, NH_ROUTING, NH_AH, NH_FRAGMENT):
        headers += 1
        if headers > max_headers or off + 2 > n:
            return False
        if nh == NH_FRAGMENT:
            hdr_len = FRAG_HDR_LEN
        elif nh == NH_AH:
            hdr_len = (data[off + 1] + 2) * 4    # RFC 4302 §2.2: in 32-bit words, minus 2
        else:
            hdr_len = (data[off + 1] + 1) * 8
        nh = data[off]
        off += hdr_len
    return off + _MIN_UPPER_HDR.get(nh, 1) <= n


# --- building headers ------------------------------------------------------------------------------
def encode_options_header(next_header: int, options: Sequence[tuple[int, bytes]]) -> bytes:
    """A Hop-by-Hop or Destination Options header carrying `options` (type, value) in order,
    padded with Pad1/PadN to a multiple of 8 octets (RFC 8200 §4.2)."""
    body = bytearray()
    for opt_type, value in options:
        if opt_type in (OPT_PAD1, OPT_PADN) or not 0 <= opt_type <= 0xFF or len(value) > 0xFF:
            raise ValueError(f"bad option type {opt_type} or value length {len(value)}")
        body += bytes((opt_type, len(value))) + value
    pad = -(2 + len(body)) % 8
    if pad == 1:
        body.append(OPT_PAD1)
    elif pad:
        body += bytes((OPT_PADN, pad - 2)) + bytes(pad - 2)
    hdr_len = 2 + len(body)
    if hdr_len > 2048:
        raise ValueError(f"options header of {hdr_len} octets exceeds 2048")
    return bytes((next_header, hdr_len // 8 - 1)) + bytes(body)


def router_alert_hop_by_hop(next_header: int, value: int = 0) -> bytes:
    """The 8-octet Hop-by-Hop header MLD messages carry: Router Alert `value` (0 = MLD, RFC 2711
    §2.1; RFC 3810 §5) and a 2-octet PadN."""
    return encode_options_header(next_header, [(OPT_ROUTER_ALERT, value.to_bytes(2, "big"))])


def encode_fragment_header(next_header: int, offset: int, more: bool, ident: int) -> bytes:
    """A Fragment header (RFC 8200 §4.5); `offset` in octets, a multiple of 8."""
    if offset & 7 or not 0 <= offset <= 0xFFF8:
        raise ValueError(f"bad fragment offset {offset}")
    return _FRAG.pack(next_header, 0, offset | int(more), ident & 0xFFFFFFFF)
