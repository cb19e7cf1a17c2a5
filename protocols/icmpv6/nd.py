"""Neighbor Discovery messages and options (RFC 4861 §4) and their validation.

  `parse(hdr)`     an Icmpv6Repr of type 133-137 -> RouterSolicitation, RouterAdvertisement,
                   NeighborSolicitation, NeighborAdvertisement or Redirect, or the NdStats
                   counter to bump: too short for its type (§6.1.1 ... §8.1 "ICMP length
                   (derived from the IP length) is N or more octets") or an option of length
                   zero, or running past the message (§4.6: the whole message is discarded).
  `validate(msg, src, dst, hop_limit)`
                   the rest of the receipt checks of §6.1.1 (RS), §6.1.2 (RA), §7.1.1 (NS),
                   §7.1.2 (NA), §8.1 (Redirect): None when valid, else the NdStats counter.
                   The checksum is checked by Icmpv6Repr.parse; what needs the stack's state
                   is left to the core: a Redirect must come from the current first-hop
                   router for its destination (§8.1), and an RA from one of our own
                   addresses is ignored (Linux).  We implement no IP Authentication Header,
                   so its check ("authenticates correctly") never applies.
  `emit(src, dst)` on every message; options are emitted in the order given, each padded
                   to a multiple of 8 octets (§4.6).

Options (§4.6; RDNSS RFC 8106 §5.1; nonce RFC 3971 §5.3.2, which Linux puts in its DAD
solicitations, RFC 7527) parse to `SourceLinkLayerAddress`, `TargetLinkLayerAddress`,
`PrefixInformation`, `RedirectedHeader`, `Mtu`, `Rdnss`, `Nonce`.  An option we do not
know is kept as `UnknownOption` and must be ignored (§4.6: "silently ignore any options
they do not recognize and continue processing the message"); a known option shorter than
its layout is kept as `MalformedOption` with its reason, and is ignored likewise.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Self

from protocols.ipv6.addr import is_link_local, is_multicast, is_solicited_node, is_unspecified

from .wire import (
    IPV6_HDR_LEN,
    IPV6_MIN_MTU,
    NEIGHBOR_ADVERT,
    NEIGHBOR_SOLICIT,
    REDIRECT,
    ROUTER_ADVERT,
    ROUTER_SOLICIT,
    Buf,
    Icmpv6Repr,
    Message,
)

ND_HOP_LIMIT = 255              # §6.1.1 ...: a router on another link could not have sent it

# option types (§4.6, RFC 8106 §5.1, RFC 3971 §5.3.2)
OPT_SOURCE_LLADDR = 1
OPT_TARGET_LLADDR = 2
OPT_PREFIX_INFO = 3
OPT_REDIRECTED_HEADER = 4
OPT_MTU = 5
OPT_NONCE = 14
OPT_RDNSS = 25

# RA flags octet (§4.2; preference RFC 4191 §2.2)
RA_MANAGED = 0x80
RA_OTHER = 0x40
# NA flags, the high bits of the 32-bit field after the checksum (§4.4)
NA_ROUTER = 0x8000_0000
NA_SOLICITED = 0x4000_0000
NA_OVERRIDE = 0x2000_0000
# prefix information flags (§4.6.2)
PREFIX_ON_LINK = 0x80
PREFIX_AUTONOMOUS = 0x40

INFINITE_LIFETIME = 0xFFFF_FFFF     # §4.6.2: all ones means infinity

# The ICMP length each message needs (§6.1.1, §6.1.2, §7.1.1, §7.1.2, §8.1).
MIN_LENGTH = {ROUTER_SOLICIT: 8, ROUTER_ADVERT: 16, NEIGHBOR_SOLICIT: 24, NEIGHBOR_ADVERT: 24,
              REDIRECT: 40}
# §4.6.3: the redirected header is cut so the Redirect fits the minimum MTU: IPv6 header,
# 40 octets of Redirect and the option's own 8.
MAX_REDIRECTED = IPV6_MIN_MTU - IPV6_HDR_LEN - 40 - 8


# --- options ------------------------------------------------------------------------------
class Option:
    """Base of the options: `body()` is what follows the type and length octets."""
    __slots__ = ()
    TYPE: ClassVar[int] = -1

    @property
    def type(self) -> int:
        return self.TYPE

    def body(self) -> bytes:
        raise NotImplementedError

    def emit(self) -> bytes:
        """Type, length in units of 8 octets, body, zero padding to a multiple of 8."""
        raw = bytes((self.type & 0xFF, 0)) + self.body()
        raw += bytes(-len(raw) % 8)
        return raw[:1] + bytes((len(raw) // 8 & 0xFF,)) + raw[2:]


@dataclass(slots=True)
class SourceLinkLayerAddress(Option):
    """§4.6.1, type 1: the sender's link-layer address.  On parse `lladdr` is the whole
    option body, padding included (6 octets on Ethernet, RFC 2464 §6: length 1)."""
    TYPE: ClassVar[int] = OPT_SOURCE_LLADDR
    lladdr: bytes = b""

    @classmethod
    def parse(cls, body: bytes) -> Self:
        return cls(body)

    def body(self) -> bytes:
        return self.lladdr


@dataclass(slots=True)
class TargetLinkLayerAddress(SourceLinkLayerAddress):
    """§4.6.1, type 2: the target's link-layer address."""
    TYPE: ClassVar[int] = OPT_TARGET_LLADDR


_PREFIX = struct.Struct("!BBIII16s")


@dataclass(slots=True)
class PrefixInformation(Option):
    """§4.6.2, type 3, length 4: on-link (L) and autonomous (A) flags, lifetimes in seconds
    (INFINITE_LIFETIME is infinity), the prefix and its length.  A longer option is read
    for its first 32 octets (as Linux does); a shorter one is malformed."""
    TYPE: ClassVar[int] = OPT_PREFIX_INFO
    prefix_len: int = 64
    on_link: bool = True
    autonomous: bool = True
    valid_lifetime: int = INFINITE_LIFETIME
    preferred_lifetime: int = INFINITE_LIFETIME
    prefix: int = 0

    @classmethod
    def parse(cls, body: bytes) -> Self | MalformedOption:
        if len(body) < _PREFIX.size:
            return MalformedOption(OPT_PREFIX_INFO, body, "in_opt_malformed")
        plen, flags, valid, preferred, _reserved, prefix = _PREFIX.unpack_from(body, 0)
        return cls(plen, bool(flags & PREFIX_ON_LINK), bool(flags & PREFIX_AUTONOMOUS), valid, preferred,
                   int.from_bytes(prefix, "big"))

    def body(self) -> bytes:
        flags = (PREFIX_ON_LINK if self.on_link else 0) | (PREFIX_AUTONOMOUS if self.autonomous else 0)
        return _PREFIX.pack(self.prefix_len & 0xFF, flags, self.valid_lifetime & 0xFFFFFFFF,
                            self.preferred_lifetime & 0xFFFFFFFF, 0, (self.prefix & (1 << 128) - 1).to_bytes(16, "big"))


@dataclass(slots=True)
class RedirectedHeader(Option):
    """§4.6.3, type 4: 6 reserved octets, then the redirected packet, cut on emit to
    MAX_REDIRECTED octets and padded to 8; on parse `packet` includes that padding."""
    TYPE: ClassVar[int] = OPT_REDIRECTED_HEADER
    packet: bytes = b""

    @classmethod
    def parse(cls, body: bytes) -> Self:
        return cls(body[6:])

    def body(self) -> bytes:
        return bytes(6) + self.packet[:MAX_REDIRECTED]


@dataclass(slots=True)
class Mtu(Option):
    """§4.6.4, type 5, length 1: 2 reserved octets, the link MTU."""
    TYPE: ClassVar[int] = OPT_MTU
    mtu: int = 1500

    @classmethod
    def parse(cls, body: bytes) -> Self:
        return cls(int.from_bytes(body[2:6], "big"))   # length >= 1 gives 6 octets

    def body(self) -> bytes:
        return bytes(2) + (self.mtu & 0xFFFFFFFF).to_bytes(4, "big")


@dataclass(slots=True)
class Nonce(Option):
    """RFC 3971 §5.3.2, type 14: a random nonce (Linux sends 6 octets in DAD solicitations,
    RFC 7527 §4.1, to recognise its own looped-back NS).  `nonce` includes any padding."""
    TYPE: ClassVar[int] = OPT_NONCE
    nonce: bytes = b""

    @classmethod
    def parse(cls, body: bytes) -> Self:
        return cls(body)

    def body(self) -> bytes:
        return self.nonce


@dataclass(slots=True)
class Rdnss(Option):
    """RFC 8106 §5.1, type 25: 2 reserved octets, lifetime in seconds (all ones: infinity,
    0: stop using them), then the servers' addresses; length 1 + 2 per address, so at
    least 3 and odd, or the option is malformed."""
    TYPE: ClassVar[int] = OPT_RDNSS
    lifetime: int = INFINITE_LIFETIME
    servers: tuple[int, ...] = ()

    @classmethod
    def parse(cls, body: bytes) -> Self | MalformedOption:
        n, odd = divmod(len(body) - 6, 16)
        if n < 1 or odd:
            return MalformedOption(OPT_RDNSS, body, "in_opt_malformed")
        servers = tuple(int.from_bytes(body[6 + 16 * i:22 + 16 * i], "big") for i in range(n))
        return cls(int.from_bytes(body[2:6], "big"), servers)

    def body(self) -> bytes:
        return (bytes(2) + (self.lifetime & 0xFFFFFFFF).to_bytes(4, "big")
                + b"".join((a & (1 << 128) - 1).to_bytes(16, "big") for a in self.servers))


@dataclass(slots=True)
class UnknownOption(Option):
    """An option type this codec does not know: ignored by the receiver (§4.6), kept so a
    message can be shown and emitted back as it came."""
    raw_type: int = 0
    data: bytes = b""

    @property
    def type(self) -> int:
        return self.raw_type

    def body(self) -> bytes:
        return self.data


@dataclass(slots=True)
class MalformedOption(UnknownOption):
    """A known option too short for its layout: ignored, `reason` is the NdStats counter."""
    reason: str = ""


NdOption = (SourceLinkLayerAddress | TargetLinkLayerAddress | PrefixInformation | RedirectedHeader | Mtu
            | Nonce | Rdnss | UnknownOption | MalformedOption)

_OPTION_PARSERS = {
    OPT_SOURCE_LLADDR: SourceLinkLayerAddress.parse, OPT_TARGET_LLADDR: TargetLinkLayerAddress.parse,
    OPT_PREFIX_INFO: PrefixInformation.parse, OPT_REDIRECTED_HEADER: RedirectedHeader.parse,
    OPT_MTU: Mtu.parse, OPT_NONCE: Nonce.parse, OPT_RDNSS: Rdnss.parse,
}


def parse_options(data: Buf) -> tuple[NdOption, ...] | str:
    """The options of a message, or why the whole message must be dropped: §4.6 "Nodes
    MUST silently discard an ND packet that contains an option with length zero"; an
    option running past the end (or a lone trailing octet) is discarded likewise, as
    Linux's ndisc_parse_options does.  O(len(data)): each option is at least 8 octets."""
    out: list[NdOption] = []
    i, end = 0, len(data)
    while i < end:
        if end - i < 2:
            return "in_opt_truncated"
        type_, units = data[i], data[i + 1]
        if units == 0:
            return "in_opt_zero_len"
        size = units * 8
        if i + size > end:
            return "in_opt_truncated"
        body = bytes(data[i + 2:i + size])
        parser = _OPTION_PARSERS.get(type_)
        out.append(parser(body) if parser is not None else UnknownOption(type_, body))
        i += size
    return tuple(out)


def emit_options(options: tuple[NdOption, ...]) -> bytes:
    return b"".join(o.emit() for o in options)


# --- messages -----------------------------------------------------------------------------
@dataclass(slots=True, kw_only=True)
class NdMessage(Message):
    """Base of the five messages: the code (0 when valid) and the options."""
    code: int = 0
    options: tuple[NdOption, ...] = ()

    def _first(self, kind: type[Option]) -> Option | None:
        """§4.6 says what may appear once; Linux keeps the first of a duplicated one."""
        for o in self.options:
            if type(o) is kind:
                return o
        return None

    @property
    def source_lladdr(self) -> bytes | None:
        o = self._first(SourceLinkLayerAddress)
        return o.lladdr if isinstance(o, SourceLinkLayerAddress) else None

    @property
    def target_lladdr(self) -> bytes | None:
        o = self._first(TargetLinkLayerAddress)
        return o.lladdr if isinstance(o, TargetLinkLayerAddress) else None

    @property
    def mtu(self) -> int | None:
        o = self._first(Mtu)
        return o.mtu if isinstance(o, Mtu) else None

    @property
    def nonce(self) -> bytes | None:
        o = self._first(Nonce)
        return o.nonce if isinstance(o, Nonce) else None

    @property
    def redirected_header(self) -> bytes | None:
        o = self._first(RedirectedHeader)
        return o.packet if isinstance(o, RedirectedHeader) else None

    @property
    def prefixes(self) -> tuple[PrefixInformation, ...]:
        """Every prefix information option (an RA may carry several)."""
        return tuple(o for o in self.options if type(o) is PrefixInformation)

    @property
    def rdnss(self) -> tuple[Rdnss, ...]:
        return tuple(o for o in self.options if type(o) is Rdnss)

    @property
    def malformed_options(self) -> int:
        return sum(1 for o in self.options if type(o) is MalformedOption)


def _addr(data: Buf, at: int) -> int:
    return int.from_bytes(data[at:at + 16], "big")


def _a16(addr: int) -> bytes:
    return (addr & (1 << 128) - 1).to_bytes(16, "big")


@dataclass(slots=True, kw_only=True)
class RouterSolicitation(NdMessage):
    """§4.1: 4 reserved octets, options (source link-layer address)."""
    TYPE: ClassVar[int] = ROUTER_SOLICIT

    @classmethod
    def from_repr(cls, hdr: Icmpv6Repr) -> Self | str:
        opts = parse_options(hdr.data)
        return opts if isinstance(opts, str) else cls(code=hdr.code, options=opts)

    def to_repr(self) -> Icmpv6Repr:
        return Icmpv6Repr(self.TYPE, self.code, 0, emit_options(self.options))


_RA = struct.Struct("!II")


@dataclass(slots=True, kw_only=True)
class RouterAdvertisement(NdMessage):
    """§4.2: current hop limit (0: unspecified), M and O flags, default router preference
    (RFC 4191 §2.2, 2 bits, kept raw), router lifetime (s, 0: not a default router),
    reachable time (ms, 0: unspecified), retrans timer (ms, 0: unspecified), options
    (source link-layer address, MTU, prefix information, RDNSS)."""
    TYPE: ClassVar[int] = ROUTER_ADVERT
    cur_hop_limit: int = 0
    managed: bool = False
    other: bool = False
    preference: int = 0
    router_lifetime: int = 0
    reachable_time: int = 0
    retrans_timer: int = 0

    @classmethod
    def from_repr(cls, hdr: Icmpv6Repr) -> Self | str:
        opts = parse_options(hdr.data[8:])
        if isinstance(opts, str):
            return opts
        reachable, retrans = _RA.unpack_from(hdr.data, 0)
        flags = hdr.rest >> 16 & 0xFF
        return cls(code=hdr.code, options=opts, cur_hop_limit=hdr.rest >> 24, managed=bool(flags & RA_MANAGED),
                   other=bool(flags & RA_OTHER), preference=flags >> 3 & 3, router_lifetime=hdr.rest & 0xFFFF,
                   reachable_time=reachable, retrans_timer=retrans)

    def to_repr(self) -> Icmpv6Repr:
        flags = (RA_MANAGED if self.managed else 0) | (RA_OTHER if self.other else 0) | (self.preference & 3) << 3
        rest = (self.cur_hop_limit & 0xFF) << 24 | flags << 16 | self.router_lifetime & 0xFFFF
        body = _RA.pack(self.reachable_time & 0xFFFFFFFF, self.retrans_timer & 0xFFFFFFFF)
        return Icmpv6Repr(self.TYPE, self.code, rest, body + emit_options(self.options))


@dataclass(slots=True, kw_only=True)
class NeighborSolicitation(NdMessage):
    """§4.3: 4 reserved octets, the target address, options (source link-layer address;
    a nonce in Linux's DAD probes)."""
    TYPE: ClassVar[int] = NEIGHBOR_SOLICIT
    target: int = 0

    @classmethod
    def from_repr(cls, hdr: Icmpv6Repr) -> Self | str:
        opts = parse_options(hdr.data[16:])
        return opts if isinstance(opts, str) else cls(code=hdr.code, options=opts, target=_addr(hdr.data, 0))

    def to_repr(self) -> Icmpv6Repr:
        return Icmpv6Repr(self.TYPE, self.code, 0, _a16(self.target) + emit_options(self.options))


@dataclass(slots=True, kw_only=True)
class NeighborAdvertisement(NdMessage):
    """§4.4: R(outer), S(olicited), O(verride) flags, 29 reserved bits, the target address,
    options (target link-layer address)."""
    TYPE: ClassVar[int] = NEIGHBOR_ADVERT
    target: int = 0
    router: bool = False
    solicited: bool = False
    override: bool = False

    @classmethod
    def from_repr(cls, hdr: Icmpv6Repr) -> Self | str:
        opts = parse_options(hdr.data[16:])
        if isinstance(opts, str):
            return opts
        return cls(code=hdr.code, options=opts, target=_addr(hdr.data, 0), router=bool(hdr.rest & NA_ROUTER),
                   solicited=bool(hdr.rest & NA_SOLICITED), override=bool(hdr.rest & NA_OVERRIDE))

    def to_repr(self) -> Icmpv6Repr:
        rest = ((NA_ROUTER if self.router else 0) | (NA_SOLICITED if self.solicited else 0)
                | (NA_OVERRIDE if self.override else 0))
        return Icmpv6Repr(self.TYPE, self.code, rest, _a16(self.target) + emit_options(self.options))


@dataclass(slots=True, kw_only=True)
class Redirect(NdMessage):
    """§4.5: 4 reserved octets, the target (the better first hop, or the destination itself
    when it is on-link), the destination, options (target link-layer address,
    redirected header)."""
    TYPE: ClassVar[int] = REDIRECT
    target: int = 0
    destination: int = 0

    @classmethod
    def from_repr(cls, hdr: Icmpv6Repr) -> Self | str:
        opts = parse_options(hdr.data[32:])
        if isinstance(opts, str):
            return opts
        return cls(code=hdr.code, options=opts, target=_addr(hdr.data, 0), destination=_addr(hdr.data, 16))

    def to_repr(self) -> Icmpv6Repr:
        return Icmpv6Repr(self.TYPE, self.code, 0,
                          _a16(self.target) + _a16(self.destination) + emit_options(self.options))


AnyNdMessage = RouterSolicitation | RouterAdvertisement | NeighborSolicitation | NeighborAdvertisement | Redirect
_MESSAGES: dict[int, type[AnyNdMessage]] = {
    ROUTER_SOLICIT: RouterSolicitation, ROUTER_ADVERT: RouterAdvertisement,
    NEIGHBOR_SOLICIT: NeighborSolicitation, NEIGHBOR_ADVERT: NeighborAdvertisement, REDIRECT: Redirect,
}


def parse(hdr: Icmpv6Repr) -> AnyNdMessage | str:
    """The typed message, or the NdStats counter: "in_truncated" below the ICMP length of
    its type, "in_opt_zero_len" / "in_opt_truncated" for a broken option list (§4.6)."""
    cls = _MESSAGES.get(hdr.type)
    if cls is None:
        return "in_unknown_types"
    if hdr.length < MIN_LENGTH[hdr.type]:
        return "in_truncated"
    return cls.from_repr(hdr)


# --- validation (§6.1.1, §6.1.2, §7.1.1, §7.1.2, §8.1) ---------------------------------------
def _common(msg: NdMessage, hop_limit: int) -> str | None:
    """Every ND message: IP hop limit 255 (no router forwarded it), ICMP code 0.  The
    checksum, the length and the option lengths were checked by the parsers."""
    if hop_limit != ND_HOP_LIMIT:
        return "in_bad_hop_limit"
    if msg.code != 0:
        return "in_bad_code"
    return None


def validate_rs(msg: RouterSolicitation, src: int, dst: int, hop_limit: int) -> str | None:
    """§6.1.1: and no source link-layer address option when the source is unspecified."""
    del dst  # any destination (routers listen on all-routers; §6.1.1 does not constrain it)
    reason = _common(msg, hop_limit)
    if reason is None and is_unspecified(src) and msg.source_lladdr is not None:
        return "in_unspecified_with_lladdr"
    return reason


def validate_ra(msg: RouterAdvertisement, src: int, dst: int, hop_limit: int) -> str | None:
    """§6.1.2: the source must be link-local (routers advertise from their link-local
    address, so hosts can tell them apart whatever prefixes they renumber to)."""
    del dst
    if not is_link_local(src):
        return "in_src_not_link_local"
    return _common(msg, hop_limit)


def validate_ns(msg: NeighborSolicitation, src: int, dst: int, hop_limit: int) -> str | None:
    """§7.1.1: target not multicast; from the unspecified source (a DAD probe, RFC 4862
    §5.4.2) only to a solicited-node multicast address and without a source link-layer
    address option."""
    reason = _common(msg, hop_limit)
    if reason is not None:
        return reason
    if is_multicast(msg.target):
        return "in_target_multicast"
    if is_unspecified(src):
        if not is_solicited_node(dst):
            return "in_dad_dst_not_solicited_node"
        if msg.source_lladdr is not None:
            return "in_unspecified_with_lladdr"
    return None


def validate_na(msg: NeighborAdvertisement, src: int, dst: int, hop_limit: int) -> str | None:
    """§7.1.2: target not multicast; the solicited flag is 0 when sent to a multicast
    destination (only an unsolicited advertisement is multicast)."""
    del src
    reason = _common(msg, hop_limit)
    if reason is not None:
        return reason
    if is_multicast(msg.target):
        return "in_target_multicast"
    if is_multicast(dst) and msg.solicited:
        return "in_solicited_to_multicast"
    return None


def validate_redirect(msg: Redirect, src: int, dst: int, hop_limit: int) -> str | None:
    """§8.1: source link-local, destination field not multicast, target link-local (a
    better router) or equal to the destination (the destination is on-link).  Whether
    `src` is the current first hop for the destination is the core's check."""
    del dst
    if not is_link_local(src):
        return "in_src_not_link_local"
    reason = _common(msg, hop_limit)
    if reason is not None:
        return reason
    if is_multicast(msg.destination):
        return "in_redirect_dst_multicast"
    if not (is_link_local(msg.target) or msg.target == msg.destination):
        return "in_redirect_bad_target"
    return None


def validate(msg: AnyNdMessage, src: int, dst: int, hop_limit: int) -> str | None:
    """None when `msg`, received from `src` to `dst` with IP hop limit `hop_limit`, passes
    the RFC 4861 receipt checks for its type; else the NdStats counter to bump.  An
    invalid message must be silently discarded, never acted on."""
    if isinstance(msg, RouterSolicitation):
        return validate_rs(msg, src, dst, hop_limit)
    if isinstance(msg, RouterAdvertisement):
        return validate_ra(msg, src, dst, hop_limit)
    if isinstance(msg, NeighborSolicitation):
        return validate_ns(msg, src, dst, hop_limit)
    if isinstance(msg, NeighborAdvertisement):
        return validate_na(msg, src, dst, hop_limit)
    return validate_redirect(msg, src, dst, hop_limit)


def parse_and_validate(hdr: Icmpv6Repr, src: int, dst: int, hop_limit: int) -> AnyNdMessage | str:
    """`parse` then `validate`: a message fit to act on, or the NdStats counter to bump."""
    msg = parse(hdr)
    if isinstance(msg, str):
        return msg
    reason = validate(msg, src, dst, hop_limit)
    return msg if reason is None else reason
