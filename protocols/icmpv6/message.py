"""One entry point over every ICMPv6 codec: bytes in, a typed message or a counter out.

`parse_message(message, src, dst)` checks the header and checksum (wire.Icmpv6Repr), then
builds the typed message for its type.  On failure it returns (section, counter): the
`Stack.stats()` section ("icmpv6", "nd", "mld") and the field to bump there.  The ND and
MLD receipt checks that need the IP hop limit are separate (`nd.validate`,
`mld.validate`), for the core to run once it knows the message is for it.
"""
from __future__ import annotations

from . import mld, nd
from .wire import (
    ECHO_REPLY,
    ECHO_REQUEST,
    MLD2_REPORT,
    MLD_DONE,
    MLD_QUERY,
    MLD_REPORT,
    NEIGHBOR_ADVERT,
    NEIGHBOR_SOLICIT,
    REDIRECT,
    ROUTER_ADVERT,
    ROUTER_SOLICIT,
    Buf,
    EchoReply,
    EchoRequest,
    ErrorMessage,
    Icmpv6Repr,
    is_error,
    parse_echo,
    parse_error,
)

ND_TYPES = frozenset({ROUTER_SOLICIT, ROUTER_ADVERT, NEIGHBOR_SOLICIT, NEIGHBOR_ADVERT, REDIRECT})
MLD_TYPES = frozenset({MLD_QUERY, MLD_REPORT, MLD_DONE, MLD2_REPORT})

AnyMessage = ErrorMessage | EchoRequest | EchoReply | nd.AnyNdMessage | mld.AnyMldMessage


def parse_message(message: Buf, src: int, dst: int, *, verify: bool = True) -> AnyMessage | tuple[str, str]:
    """A typed message, or (stats section, counter).  Unknown error types come back as
    wire.UnknownError (RFC 4443 §2.4(b)); unknown informational types as
    ("icmpv6", "in_unknown_types"), to be discarded (§2.4(a))."""
    hdr = Icmpv6Repr.parse(message, src, dst, verify=verify)
    if isinstance(hdr, str):
        return "icmpv6", hdr
    if is_error(hdr.type):
        return parse_error(hdr)
    if hdr.type in (ECHO_REQUEST, ECHO_REPLY):
        echo = parse_echo(hdr)
        return ("icmpv6", echo) if isinstance(echo, str) else echo
    if hdr.type in ND_TYPES:
        ndm = nd.parse(hdr)
        return ("nd", ndm) if isinstance(ndm, str) else ndm
    if hdr.type in MLD_TYPES:
        mm = mld.parse(hdr)
        return ("mld", mm) if isinstance(mm, str) else mm
    return "icmpv6", "in_unknown_types"
