"""The ICMPv6 header (RFC 4443 §2.1), its checksum (§2.3) and the RFC 4443 messages.

    type (1) | code (1) | checksum (2) | 4 octets whose meaning depends on the type | body

The checksum covers the IPv6 pseudo-header (RFC 8200 §8.1: source, destination, 32-bit
upper-layer length, 24 zero bits, next header 58) and the whole message.

`Icmpv6Repr.parse` checks the length and the checksum once and gives the raw header; the
typed messages (`EchoRequest`, `DestUnreachable`, ... here, Neighbor Discovery in nd.py,
MLD in mld.py) are built from it with `from_repr`, which never raises either: a message
whose body breaks its layout comes back as a counter name of stats.Icmpv6Stats.

Addresses are 128-bit ints.  The small address predicates below (multicast, link-local,
solicited-node) are local so this package needs nothing else of the IPv6 work.
"""
from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from typing import ClassVar, Self

from ndd.checksum import checksum, ones_sum
from protocols.ipv6.addr import is_multicast, is_unspecified
from protocols.ipv6.wire import HDR_LEN as IPV6_HDR_LEN
from protocols.ipv6.wire import MIN_MTU as IPV6_MIN_MTU
from protocols.ipv6.wire import NH_ICMPV6 as IPPROTO_ICMPV6
from protocols.ipv6.wire import pseudo_header_sum

Buf = bytes | bytearray | memoryview

HDR_LEN = 8                     # type, code, checksum and the 4 type-specific octets
# RFC 4443 §2.4(c): an error carries as much of the invoking packet as fits in the minimum
# MTU behind a bare IPv6 header and the 8-octet ICMPv6 header.
MAX_QUOTE = IPV6_MIN_MTU - IPV6_HDR_LEN - HDR_LEN   # 1232

# --- types (RFC 4443 §2.1, RFC 4861 §4, RFC 2710 §3, RFC 3810 §5) --------------------------
DEST_UNREACH = 1
PACKET_TOO_BIG = 2
TIME_EXCEEDED = 3
PARAM_PROBLEM = 4
ECHO_REQUEST = 128
ECHO_REPLY = 129
MLD_QUERY = 130                 # MLDv1 and MLDv2 share the query type (RFC 3810 §5.1)
MLD_REPORT = 131                # MLDv1 report (RFC 2710 §3)
MLD_DONE = 132                  # MLDv1 done (RFC 2710 §3)
ROUTER_SOLICIT = 133
ROUTER_ADVERT = 134
NEIGHBOR_SOLICIT = 135
NEIGHBOR_ADVERT = 136
REDIRECT = 137
MLD2_REPORT = 143               # RFC 3810 §5.2

# destination unreachable codes (RFC 4443 §3.1)
UNREACH_NO_ROUTE = 0
UNREACH_ADMIN = 1
UNREACH_BEYOND_SCOPE = 2
UNREACH_ADDR = 3
UNREACH_PORT = 4
UNREACH_POLICY = 5              # source address failed ingress/egress policy
UNREACH_REJECT_ROUTE = 6
# time exceeded codes (§3.3)
TIME_EXCEEDED_HOP_LIMIT = 0
TIME_EXCEEDED_REASSEMBLY = 1
# parameter problem codes (§3.4)
PARAM_HEADER = 0                # erroneous header field
PARAM_NEXT_HEADER = 1           # unrecognized next header type
PARAM_OPTION = 2                # unrecognized IPv6 option
PARAM_INCOMPLETE_CHAIN = 3      # the first fragment lacks the header chain (RFC 7112 §5)

_HDR = struct.Struct("!BBHI")


def is_error(type_: int) -> bool:
    """RFC 4443 §2.1: types 0-127 are errors (an unknown one still goes to the upper layer,
    §2.4(b))."""
    return type_ < 128


def is_informational(type_: int) -> bool:
    """Types 128-255 (an unknown one is silently discarded, §2.4(a))."""
    return type_ >= 128


# --- checksum ---------------------------------------------------------------------------
def icmpv6_checksum(message: Buf, src: int, dst: int) -> int:
    """The checksum field's value for `message` (its checksum field zero)."""
    return checksum(message, pseudo_header_sum(src, dst, IPPROTO_ICMPV6, len(message)))


def verify_checksum(message: Buf, src: int, dst: int) -> bool:
    return ones_sum(message, pseudo_header_sum(src, dst, IPPROTO_ICMPV6, len(message))) == 0xFFFF


# --- the raw header ---------------------------------------------------------------------
@dataclass(slots=True)
class Icmpv6Repr:
    """The header as it is on the wire: type, code, the 4 type-specific octets as one
    32-bit int (`rest`) and the octets after them (`data`)."""
    type: int
    code: int
    rest: int
    data: bytes

    @classmethod
    def parse(cls, message: Buf, src: int, dst: int, *, verify: bool = True) -> Icmpv6Repr | str:
        """A repr, or the Icmpv6Stats counter to bump.  `message` is the whole ICMPv6 message
        (the IPv6 payload after the extension headers), `src`/`dst` the IPv6 addresses."""
        if len(message) < HDR_LEN:
            return "in_truncated"
        if verify and not verify_checksum(message, src, dst):
            return "in_csum_errors"
        type_, code, _csum, rest = _HDR.unpack_from(message, 0)
        return cls(type_, code, rest, bytes(message[HDR_LEN:]))

    @property
    def length(self) -> int:
        return HDR_LEN + len(self.data)

    def emit(self, src: int, dst: int) -> bytes:
        """The message with its checksum for this source and destination."""
        buf = bytearray(_HDR.pack(self.type & 0xFF, self.code & 0xFF, 0, self.rest & 0xFFFFFFFF))
        buf += self.data
        struct.pack_into("!H", buf, 2, icmpv6_checksum(buf, src, dst))
        return bytes(buf)


class Message:
    """Base of the typed messages: `to_repr` gives the raw header, `emit` the bytes."""
    __slots__ = ()
    TYPE: ClassVar[int] = -1

    def to_repr(self) -> Icmpv6Repr:
        raise NotImplementedError

    def emit(self, src: int, dst: int) -> bytes:
        return self.to_repr().emit(src, dst)


# --- echo (RFC 4443 §4) --------------------------------------------------------------------
@dataclass(slots=True)
class _Echo(Message):
    ident: int = 0
    seq: int = 0
    data: bytes = b""
    code: int = 0           # 0 on send; not checked on receipt (Linux answers any code)

    @classmethod
    def from_repr(cls, hdr: Icmpv6Repr) -> Self:
        return cls(hdr.rest >> 16, hdr.rest & 0xFFFF, hdr.data, hdr.code)

    def to_repr(self) -> Icmpv6Repr:
        return Icmpv6Repr(self.TYPE, self.code, (self.ident & 0xFFFF) << 16 | self.seq & 0xFFFF, self.data)


@dataclass(slots=True)
class EchoRequest(_Echo):
    """Echo request (§4.1): identifier, sequence number, data."""
    TYPE: ClassVar[int] = ECHO_REQUEST

    def reply(self) -> EchoReply:
        """§4.2: the reply carries the request's identifier, sequence number and data."""
        return EchoReply(self.ident, self.seq, self.data)


@dataclass(slots=True)
class EchoReply(_Echo):
    """Echo reply (§4.2)."""
    TYPE: ClassVar[int] = ECHO_REPLY


# --- errors (RFC 4443 §3) --------------------------------------------------------------------
@dataclass(slots=True, kw_only=True)
class _Error(Message):
    """An error: the invoking packet, cut to MAX_QUOTE octets on emit (§2.4(c))."""
    code: int = 0
    invoking: bytes = b""

    def _quote(self) -> bytes:
        return self.invoking[:MAX_QUOTE]

    def quoted(self) -> QuotedPacket | str:
        return QuotedPacket.parse(self.invoking)

    # destination unreachable and time exceeded: the 4 octets after the checksum are unused
    @classmethod
    def from_repr(cls, hdr: Icmpv6Repr) -> Self:
        return cls(code=hdr.code, invoking=hdr.data)

    def to_repr(self) -> Icmpv6Repr:
        return Icmpv6Repr(self.TYPE, self.code, 0, self._quote())


@dataclass(slots=True, kw_only=True)
class DestUnreachable(_Error):
    """Destination unreachable (§3.1): codes 0-6 (UNREACH_*); the 4 octets are unused."""
    TYPE: ClassVar[int] = DEST_UNREACH


@dataclass(slots=True, kw_only=True)
class TimeExceeded(_Error):
    """Time exceeded (§3.3): code 0 hop limit, 1 fragment reassembly time."""
    TYPE: ClassVar[int] = TIME_EXCEEDED


@dataclass(slots=True, kw_only=True)
class PacketTooBig(_Error):
    """Packet too big (§3.2): the next-hop MTU; the code is sent 0 and ignored on receipt."""
    TYPE: ClassVar[int] = PACKET_TOO_BIG
    mtu: int = IPV6_MIN_MTU

    @classmethod
    def from_repr(cls, hdr: Icmpv6Repr) -> Self:
        return cls(code=hdr.code, invoking=hdr.data, mtu=hdr.rest)

    def to_repr(self) -> Icmpv6Repr:
        return Icmpv6Repr(self.TYPE, self.code, self.mtu, self._quote())


@dataclass(slots=True, kw_only=True)
class ParamProblem(_Error):
    """Parameter problem (§3.4): codes 0-2 (PARAM_*) and the pointer, the offset in the
    invoking packet of the octet where the error was detected."""
    TYPE: ClassVar[int] = PARAM_PROBLEM
    pointer: int = 0

    @classmethod
    def from_repr(cls, hdr: Icmpv6Repr) -> Self:
        return cls(code=hdr.code, invoking=hdr.data, pointer=hdr.rest)

    def to_repr(self) -> Icmpv6Repr:
        return Icmpv6Repr(self.TYPE, self.code, self.pointer, self._quote())


@dataclass(slots=True, kw_only=True)
class UnknownError(_Error):
    """An error type this codec does not know: RFC 4443 §2.4(b) still hands it to the
    upper layer that sent the invoking packet."""
    type: int = 0
    rest: int = 0

    @classmethod
    def from_repr(cls, hdr: Icmpv6Repr) -> Self:
        return cls(code=hdr.code, invoking=hdr.data, type=hdr.type, rest=hdr.rest)

    def to_repr(self) -> Icmpv6Repr:
        return Icmpv6Repr(self.type, self.code, self.rest, self._quote())


ErrorMessage = DestUnreachable | PacketTooBig | TimeExceeded | ParamProblem | UnknownError
_ERRORS: dict[int, type[DestUnreachable] | type[PacketTooBig] | type[TimeExceeded] | type[ParamProblem]] = {
    DEST_UNREACH: DestUnreachable, PACKET_TOO_BIG: PacketTooBig,
    TIME_EXCEEDED: TimeExceeded, PARAM_PROBLEM: ParamProblem,
}


def parse_error(hdr: Icmpv6Repr) -> ErrorMessage:
    """The typed error for an error-class header (any code; the transport judges it)."""
    cls = _ERRORS.get(hdr.type)
    return cls.from_repr(hdr) if cls is not None else UnknownError.from_repr(hdr)


def parse_echo(hdr: Icmpv6Repr) -> EchoRequest | EchoReply | str:
    if hdr.type == ECHO_REQUEST:
        return EchoRequest.from_repr(hdr)
    if hdr.type == ECHO_REPLY:
        return EchoReply.from_repr(hdr)
    return "in_unknown_types"


@dataclass(slots=True)
class QuotedPacket:
    """The fixed IPv6 header of an error's invoking packet, enough to find the transport's
    connection: the extension-header chain after it is the IPv6 layer's to walk."""
    src: int
    dst: int
    next_header: int
    payload_len: int
    hop_limit: int
    after_header: bytes          # the octets after the 40-octet header (as much as quoted)

    @classmethod
    def parse(cls, invoking: Buf) -> QuotedPacket | str:
        """Linux (icmpv6_notify) drops an error quoting less than an IPv6 header."""
        if len(invoking) < IPV6_HDR_LEN:
            return "in_quote_truncated"
        if invoking[0] >> 4 != 6:
            return "in_quote_bad_version"
        payload_len, nh, hlim = struct.unpack_from("!HBB", invoking, 4)
        return cls(int.from_bytes(invoking[8:24], "big"), int.from_bytes(invoking[24:40], "big"),
                   nh, payload_len, hlim, bytes(invoking[IPV6_HDR_LEN:]))


# --- when an error may be sent (RFC 4443 §2.4(e)) ------------------------------------------
def may_send_error(type_: int, code: int, *, src: int, dst: int, link_multicast: bool = False,
                   about_error: bool = False) -> bool:
    """RFC 4443 §2.4(e): may an error (`type_`, `code`) be sent about a packet from `src` to
    `dst`?  Never about an ICMPv6 error or a Redirect (`about_error`: the IPv6 layer finds
    the upper-layer header behind the chain, e.1/e.2); never about a packet to a multicast
    address or a link-layer multicast/broadcast (e.3-e.5) except Packet Too Big, and a
    Parameter Problem code 2 -- which RFC 8200 §4.2 has the IPv6 layer send for a
    multicast destination only for an option whose action bits are 10, never 11; never to
    a source that names no single node: unspecified or multicast (e.6; an anycast source
    is the caller's to know).  A refusal is counted as Icmpv6Stats.out_suppressed."""
    if not is_error(type_) or about_error:
        return False
    if is_unspecified(src) or is_multicast(src):
        return False
    if is_multicast(dst) or link_multicast:
        return type_ == PACKET_TOO_BIG or (type_ == PARAM_PROBLEM and code == PARAM_OPTION)
    return True


# --- the errno a transport reports (Linux icmpv6_err_convert) -----------------------------
# (errno, fatal): a fatal error aborts a connecting TCP socket / is reported on a connected
# UDP socket at once; a soft one is kept as the socket's soft error.
_UNREACH_ERRNO: tuple[tuple[int, bool], ...] = (
    (errno.ENETUNREACH, False),     # 0 no route
    (errno.EACCES, True),           # 1 administratively prohibited
    (errno.EHOSTUNREACH, False),    # 2 beyond the scope of the source address
    (errno.EHOSTUNREACH, False),    # 3 address unreachable
    (errno.ECONNREFUSED, True),     # 4 port unreachable
    (errno.EACCES, True),           # 5 source address failed policy
    (errno.EACCES, True),           # 6 reject route
)


def icmpv6_errno(type_: int, code: int) -> tuple[int, bool]:
    """The (errno, fatal) pair Linux gives an ICMPv6 error (net/ipv6/icmp.c)."""
    if type_ == DEST_UNREACH:
        # a code past the table stays fatal: icmpv6_err_convert sets `fatal` before looking it up
        return _UNREACH_ERRNO[code] if code < len(_UNREACH_ERRNO) else (errno.EPROTO, True)
    if type_ == PACKET_TOO_BIG:
        # not fatal in itself: UDP makes it hard unless IPV6_PMTUDISC_DONT (__udp6_lib_err), TCP
        # follows the path MTU -- a fatal one told a connected DONT socket EMSGSIZE, Linux does not
        return errno.EMSGSIZE, False
    if type_ == PARAM_PROBLEM:
        return errno.EPROTO, True
    if type_ == TIME_EXCEEDED:
        return errno.EHOSTUNREACH, False
    return errno.EPROTO, False
