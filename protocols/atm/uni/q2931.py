"""Q.2931 / UNI 3.1 signalling messages: header, IE list (the causes are in causes.py).

Message layout (Q.2931 §4.1-4.4; ATM Forum UNI 3.1 §5.4):
  protocol discriminator 0x09 (1) | 0000 + call reference length = 3 (1) |
  flag (bit 8) + call reference value (23 bits) (3) | message type (1) |
  message compatibility instruction (1): ext | spare | flag (bit 5) | spare | action (bits 2-1) |
  message length (2) | information elements (ie.py).

`parse_message` never raises.  Header-level faults and broken IE framing come back as a
reason string; `parse_header` still yields the call reference of such a message, so call
control can answer on the right call (unlike atmsigd's RELEASE COMPLETE for an unparseable
SETUP).  Unknown or malformed IE *contents* do not fail the message: they are kept as
UnknownIE / MalformedIE in `ies` (see `Q2931Message.unknown`, `.malformed`,
`.missing_mandatory()`), for call control to handle per the compatibility instruction
(Q.2931 §5.6.8) with cause 96/99/100/111.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from .ie import *  # noqa: F403  -- the IE vocabulary is part of this API
from .ie import (
    IE_BBCAP,
    IE_CALL_STATE,
    IE_CALLED,
    IE_CAUSE,
    IE_QOS,
    IE_RESTART,
    IE_TRAFFIC,
    AnyIE,
    Buf,
    MalformedIE,
    UnknownIE,
    parse_ie,
)

PROTOCOL_DISCRIMINATOR = 0x09
CALLREF_LEN = 3
HDR_LEN = 9
CALLREF_MAX = 0x7FFFFF
GLOBAL_CALLREF = 0           # the dummy/global call reference, used by RESTART (Q.2931 §4.3)

# Message types (Q.2931 §4.4.1 table 4-2)
ALERTING = 0x01
CALL_PROCEEDING = 0x02
SETUP = 0x05
CONNECT = 0x07
CONNECT_ACK = 0x0F
RESTART = 0x46
RELEASE = 0x4D
RESTART_ACK = 0x4E
RELEASE_COMPLETE = 0x5A
STATUS_ENQUIRY = 0x75
STATUS = 0x7D
MESSAGE_NAMES: dict[int, str] = {
    ALERTING: "ALERTING", CALL_PROCEEDING: "CALL PROCEEDING", SETUP: "SETUP", CONNECT: "CONNECT",
    CONNECT_ACK: "CONNECT ACKNOWLEDGE", RESTART: "RESTART", RELEASE: "RELEASE",
    RESTART_ACK: "RESTART ACKNOWLEDGE", RELEASE_COMPLETE: "RELEASE COMPLETE",
    STATUS_ENQUIRY: "STATUS ENQUIRY", STATUS: "STATUS",
}

# Message compatibility instruction (Q.2931 §4.4.2): ext | flag bit 5 | action bits 2-1
MSG_COMPAT_DEFAULT = 0x80
MSG_COMPAT_FLAG = 0x10
MSG_ACT_CLEAR = 0
MSG_ACT_DISCARD = 1
MSG_ACT_DISCARD_REPORT = 2

# Mandatory IEs per message, UNI 3.1 §5.3 (direction-independent subset).  The connection
# identifier (mandatory in the network's first answer to SETUP) and RELEASE COMPLETE's
# cause (mandatory only as the first clearing message) depend on direction/state, so call
# control checks those itself.
MANDATORY_IES: dict[int, tuple[int, ...]] = {
    SETUP: (IE_TRAFFIC, IE_BBCAP, IE_CALLED, IE_QOS),
    RELEASE: (IE_CAUSE,),
    STATUS: (IE_CALL_STATE, IE_CAUSE),
    RESTART: (IE_RESTART,),
    RESTART_ACK: (IE_RESTART,),
}

_HDR = struct.Struct(">BB3sBBH")


@dataclass(frozen=True, slots=True)
class Q2931Header:
    msg_type: int
    callref: int
    flag: int                # 0: sent by the side that originated the call reference
    compat: int
    length: int              # of the IE part


def parse_header(data: Buf) -> Q2931Header | str:
    """The 9-octet header alone (the IE part is not looked at), or a reason string."""
    if len(data) < HDR_LEN:
        return "truncated"
    pd, crlen, cr, mtype, compat, length = _HDR.unpack_from(data, 0)
    if pd != PROTOCOL_DISCRIMINATOR:
        return "bad_discriminator"
    if crlen != CALLREF_LEN:            # also rejects non-zero spare bits 8-5
        return "bad_callref_length"
    v = int.from_bytes(cr, "big")
    return Q2931Header(mtype, v & CALLREF_MAX, v >> 23, compat, length)


@dataclass(slots=True)
class Q2931Message:
    msg_type: int
    callref: int = 0
    flag: int = 0
    ies: list[AnyIE] = field(default_factory=list)
    compat: int = MSG_COMPAT_DEFAULT

    # --- lookups for call control ---------------------------------------------------
    def get(self, ie_id: int) -> AnyIE | None:
        """The first IE with this identifier (well-formed, unknown or malformed)."""
        for ie in self.ies:
            if ie.id == ie_id:
                return ie
        return None

    def all(self, ie_id: int) -> list[AnyIE]:
        return [ie for ie in self.ies if ie.id == ie_id]

    @property
    def malformed(self) -> list[MalformedIE]:
        return [ie for ie in self.ies if isinstance(ie, MalformedIE)]

    @property
    def unknown(self) -> list[UnknownIE]:
        return [ie for ie in self.ies if isinstance(ie, UnknownIE)]

    def missing_mandatory(self) -> list[int]:
        """Mandatory IE ids (MANDATORY_IES) that are absent -> cause 96.  A mandatory IE
        present but malformed is not "missing": it is cause 100 (Q.2931 §5.6.7.2)."""
        present = {ie.id for ie in self.ies}
        return [i for i in MANDATORY_IES.get(self.msg_type, ()) if i not in present]

    @property
    def msg_flag(self) -> bool:
        """Follow the explicit message action indicator (Q.2931 §4.4.2)."""
        return bool(self.compat & MSG_COMPAT_FLAG)

    @property
    def msg_action(self) -> int:
        return self.compat & 3

    @property
    def name(self) -> str:
        return MESSAGE_NAMES.get(self.msg_type, f"0x{self.msg_type:02x}")

    # --- emit --------------------------------------------------------------------
    def emit(self) -> bytes:
        body = b"".join(ie.emit() for ie in self.ies)
        cr = ((self.flag & 1) << 23 | (self.callref & CALLREF_MAX)).to_bytes(3, "big")
        return _HDR.pack(PROTOCOL_DISCRIMINATOR, CALLREF_LEN, cr, self.msg_type & 0xFF,
                         self.compat & 0xFF, len(body)) + body


def iter_ies(body: Buf) -> Iterator[tuple[int, int, memoryview] | str]:
    """(id, compat, contents view) per IE of a message body; "ie_truncated" ends it."""
    mv = memoryview(body)
    i, n = 0, len(mv)
    while i < n:
        if i + 4 > n:
            yield "ie_truncated"
            return
        ln = mv[i + 2] << 8 | mv[i + 3]
        if i + 4 + ln > n:
            yield "ie_truncated"
            return
        yield mv[i], mv[i + 1], mv[i + 4:i + 4 + ln]
        i += 4 + ln


def parse_message(data: Buf) -> Q2931Message | str:
    """A message repr, or a reason string: truncated, bad_discriminator,
    bad_callref_length, bad_length (octets beyond the message length), ie_truncated
    (an IE header or contents overrun the message)."""
    hdr = parse_header(data)
    if isinstance(hdr, str):
        return hdr
    end = HDR_LEN + hdr.length
    if end > len(data):
        return "truncated"
    if end < len(data):
        return "bad_length"         # one AAL5 SDU carries exactly one message
    ies: list[AnyIE] = []
    for item in iter_ies(memoryview(data)[HDR_LEN:end]):
        if isinstance(item, str):
            return item
        ies.append(parse_ie(*item))
    return Q2931Message(hdr.msg_type, hdr.callref, hdr.flag, ies, hdr.compat)
