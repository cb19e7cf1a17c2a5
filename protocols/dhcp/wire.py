"""The BOOTP/DHCP message on the wire (RFC 2131 §2, RFC 951) and its options (RFC 2132).

    op htype hlen hops | xid | secs flags | ciaddr | yiaddr | siaddr | giaddr
    chaddr (16) | sname (64) | file (128) | magic cookie 99.130.83.99 | options

236 octets of fixed fields, the cookie (RFC 2131 §3), then options: code, length, value,
with pad (0) and end (255) alone.  An option may come in several pieces that are joined
in order (RFC 3396 §5; a long value is split the same way on output).  With option 52
(overload, RFC 2132 §9.3) the `file` and/or `sname` fields hold more options, read after
the options field, file first (RFC 2131 §4.1).

`DhcpMessage.parse` never raises: bad input gives the name of a DhcpStats counter
(protocols/dhcp/server.py) -- a field shorter than the header, an unknown op, a foreign
cookie, an hlen over 16, an option running past its field, or a wrong length for an option
this codec interprets.  Options it does not interpret are kept raw in `other`.  `emit`
builds a message, padded to BOOTP's 300 octets (RFC 951's fixed size, which some clients
and relays still expect), leaving out whole options that do not fit the size the client
can take (RFC 2131 §2: 576-octet datagrams by default, more with option 57).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

Buf = bytes | bytearray | memoryview

BOOTREQUEST, BOOTREPLY = 1, 2
HTYPE_ETHER = 1                 # ARP hardware type (RFC 1700): 10 Mb Ethernet
MAGIC_COOKIE = b"\x63\x82\x53\x63"
FIXED_LEN = 236                 # op .. file (RFC 2131 §2, figure 1)
HDR_LEN = FIXED_LEN + 4         # with the cookie: where the options field starts
BOOTP_MIN_LEN = 300             # RFC 951's message size: replies are padded to it
CHADDR_LEN, SNAME_LEN, FILE_LEN = 16, 64, 128
SNAME_AT = 44                   # offset of sname (file follows at 108)
FILE_AT = SNAME_AT + SNAME_LEN
FLAG_BROADCAST = 0x8000         # RFC 2131 §2, figure 2: the B bit of `flags`
SERVER_PORT, CLIENT_PORT = 67, 68
# RFC 2131 §2: every client takes a 576-octet datagram; less the IP and UDP headers
MIN_DATAGRAM = 576
MIN_MESSAGE = MIN_DATAGRAM - 20 - 8     # 548

# --- message types (option 53, RFC 2132 §9.6) ---------------------------------------------------
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = 1, 2, 3, 4, 5, 6, 7, 8
TYPE_NAMES = {DISCOVER: "discover", OFFER: "offer", REQUEST: "request", DECLINE: "decline",
              ACK: "ack", NAK: "nak", RELEASE: "release", INFORM: "inform"}

# --- option codes (RFC 2132) ------------------------------------------------------------------
OPT_PAD = 0
OPT_SUBNET_MASK = 1             # §3.3
OPT_ROUTER = 3                  # §3.5
OPT_DNS = 6                     # §3.8
OPT_HOST_NAME = 12              # §3.14
OPT_DOMAIN_NAME = 15            # §3.17
OPT_MTU = 26                    # §5.1 interface MTU
OPT_REQUESTED_IP = 50           # §9.1
OPT_LEASE_TIME = 51             # §9.2
OPT_OVERLOAD = 52               # §9.3: 1 file, 2 sname, 3 both hold options
OPT_MESSAGE_TYPE = 53           # §9.6
OPT_SERVER_ID = 54              # §9.7
OPT_PARAM_REQUEST = 55          # §9.8
OPT_MESSAGE = 56                # §9.9 a text (a NAK's reason)
OPT_MAX_SIZE = 57               # §9.10 maximum DHCP message size (the whole IP datagram)
OPT_T1 = 58                     # §9.11 renewal time
OPT_T2 = 59                     # §9.12 rebinding time
OPT_CLIENT_ID = 61              # §9.14
OPT_END = 255

OVERLOAD_FILE, OVERLOAD_SNAME = 1, 2

_FIXED = struct.Struct("!BBBBIHHIIII16s64s128s")

# The options this codec interprets: code -> (field of DhcpMessage, kind, shortest, longest
# value).  Kinds: u8/u16/u32 numbers, ip one address, ips a list of them, raw octets.
_U8, _U16, _U32, _IP, _IPS, _RAW = "u8", "u16", "u32", "ip", "ips", "raw"
_KNOWN: dict[int, tuple[str, str]] = {
    OPT_MESSAGE_TYPE: ("message_type", _U8),
    OPT_SERVER_ID: ("server_id", _IP),
    OPT_LEASE_TIME: ("lease_time", _U32),
    OPT_T1: ("renewal_time", _U32),
    OPT_T2: ("rebinding_time", _U32),
    OPT_SUBNET_MASK: ("subnet_mask", _IP),
    OPT_ROUTER: ("routers", _IPS),
    OPT_DNS: ("dns_servers", _IPS),
    OPT_DOMAIN_NAME: ("domain_name", _RAW),
    OPT_MTU: ("interface_mtu", _U16),
    OPT_HOST_NAME: ("host_name", _RAW),
    OPT_MESSAGE: ("message", _RAW),
    OPT_CLIENT_ID: ("client_id", _RAW),
    OPT_PARAM_REQUEST: ("param_request", _RAW),
    OPT_MAX_SIZE: ("max_message_size", _U16),
    OPT_REQUESTED_IP: ("requested_ip", _IP),
}
_WIDTH = {_U8: 1, _U16: 2, _U32: 4, _IP: 4}
# the order options go out in: what a client cannot do without first (RFC 2131 §4.3.1
# Table 3: type, server id, lease time, and the renewal times), so a short size limit only
# ever leaves out extras; then the ones the client asked for, in its order (RFC 2132 §9.8)
_ALWAYS_FIRST = 5
_EMIT_ORDER = (OPT_MESSAGE_TYPE, OPT_SERVER_ID, OPT_LEASE_TIME, OPT_T1, OPT_T2, OPT_SUBNET_MASK,
               OPT_ROUTER, OPT_DNS, OPT_CLIENT_ID, OPT_MESSAGE, OPT_MTU, OPT_DOMAIN_NAME, OPT_HOST_NAME,
               OPT_REQUESTED_IP, OPT_PARAM_REQUEST, OPT_MAX_SIZE)


@dataclass(slots=True)
class DhcpMessage:
    """One BOOTP/DHCP message: the fixed fields, then the options as typed fields (None or
    empty: absent) and the rest raw in `other` (code -> joined value, in arrival order)."""
    op: int = BOOTREQUEST
    xid: int = 0
    chaddr: bytes = bytes(CHADDR_LEN)       # the whole 16-octet field; `hwaddr` is its used part
    htype: int = HTYPE_ETHER
    hlen: int = 6
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: int = 0
    yiaddr: int = 0
    siaddr: int = 0
    giaddr: int = 0
    sname: bytes = b""
    file: bytes = b""
    message_type: int | None = None
    server_id: int | None = None
    requested_ip: int | None = None
    lease_time: int | None = None
    renewal_time: int | None = None
    rebinding_time: int | None = None
    subnet_mask: int | None = None
    routers: tuple[int, ...] = ()
    dns_servers: tuple[int, ...] = ()
    domain_name: bytes | None = None
    interface_mtu: int | None = None
    host_name: bytes | None = None
    message: bytes | None = None
    client_id: bytes | None = None
    param_request: bytes | None = None
    max_message_size: int | None = None
    overload: int = 0                       # option 52 as received (parse only; emit never overloads)
    other: dict[int, bytes] = field(default_factory=dict)

    @property
    def hwaddr(self) -> bytes:
        """The client hardware address: the first `hlen` octets of chaddr."""
        return self.chaddr[:self.hlen]

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & FLAG_BROADCAST)

    # --- parse ---------------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: Buf) -> DhcpMessage | str:
        """The message, or the name of the DhcpStats counter its fault is counted in."""
        if len(data) < HDR_LEN:
            return "in_truncated"
        (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr,
         chaddr, sname, file_) = _FIXED.unpack_from(data, 0)
        if op not in (BOOTREQUEST, BOOTREPLY):
            return "in_bad_op"
        if bytes(data[FIXED_LEN:HDR_LEN]) != MAGIC_COOKIE:
            return "in_bad_cookie"          # plain BOOTP (RFC 951 vendor area) or noise
        if hlen > CHADDR_LEN:
            return "in_bad_hlen"
        raw: dict[int, bytearray] = {}
        if not _scan(memoryview(data)[HDR_LEN:], raw):
            return "in_bad_option"
        overload = 0
        if OPT_OVERLOAD in raw:
            value = raw.pop(OPT_OVERLOAD)
            if len(value) != 1 or not 1 <= value[0] <= 3:
                return "in_bad_overload"
            overload = value[0]
            # RFC 2131 §4.1: options, then file, then sname; an overload option found in
            # those fields is not looked at again (a loop would be the sender's only gain)
            if overload & OVERLOAD_FILE and not _scan(file_, raw):
                return "in_bad_option"
            if overload & OVERLOAD_SNAME and not _scan(sname, raw):
                return "in_bad_option"
            raw.pop(OPT_OVERLOAD, None)
        msg = cls(op=op, xid=xid, chaddr=chaddr, htype=htype, hlen=hlen, hops=hops, secs=secs,
                  flags=flags, ciaddr=ciaddr, yiaddr=yiaddr, siaddr=siaddr, giaddr=giaddr,
                  sname=b"" if overload & OVERLOAD_SNAME else sname.rstrip(b"\0"),
                  file=b"" if overload & OVERLOAD_FILE else file_.rstrip(b"\0"), overload=overload)
        for code, value in raw.items():
            if not msg._set_option(code, bytes(value)):
                return "in_bad_option"
        return msg

    def _set_option(self, code: int, value: bytes) -> bool:
        """Store one (joined) option value in its field; False when its length is wrong for it."""
        known = _KNOWN.get(code)
        if known is None:
            self.other[code] = value
            return True
        name, kind = known
        decoded: object
        if kind in _WIDTH:
            if len(value) != _WIDTH[kind]:
                return False
            decoded = int.from_bytes(value, "big")
        elif kind == _IPS:
            if not value or len(value) % 4:
                return False
            decoded = tuple(int.from_bytes(value[i:i + 4], "big") for i in range(0, len(value), 4))
        else:
            if not value:
                return False
            decoded = value
        if not _value_in_range(code, decoded):
            return False
        setattr(self, name, decoded)
        return True

    # --- emit ----------------------------------------------------------------------------------
    def emit(self, max_len: int = MIN_MESSAGE, requested: bytes = b"") -> bytes:
        return self.emit_within(max_len, requested)[0]

    def emit_within(self, max_len: int = MIN_MESSAGE, requested: bytes = b"") -> tuple[bytes, int]:
        """The message, at most `max_len` octets (never under 300: the padding), and how
        many options were left out because they did not fit.  `requested` is the client's
        parameter request list: those options go first after the essential ones, in its
        order (RFC 2132 §9.8: the server "MUST try to insert the requested options in the
        order requested")."""
        head = _FIXED.pack(self.op, self.htype, self.hlen, self.hops, self.xid, self.secs, self.flags,
                           self.ciaddr, self.yiaddr, self.siaddr, self.giaddr, self.chaddr[:CHADDR_LEN],
                           self.sname[:SNAME_LEN], self.file[:FILE_LEN])
        out = bytearray(head + MAGIC_COOKIE)
        room = max(max_len, BOOTP_MIN_LEN) - len(out) - 1        # the end option's octet
        skipped = 0
        for code, value in self.option_values(requested):
            encoded = encode_option(code, value)
            if len(encoded) > room:
                skipped += 1
                continue
            out += encoded
            room -= len(encoded)
        out.append(OPT_END)
        if len(out) < BOOTP_MIN_LEN:
            out += bytes(BOOTP_MIN_LEN - len(out))
        return bytes(out), skipped

    def option_values(self, requested: bytes = b"") -> list[tuple[int, bytes]]:
        """The options set, encoded, in emit order (the requested ones moved up), then the
        raw ones."""
        order: tuple[int, ...] = _EMIT_ORDER
        if requested:
            first, rest = _EMIT_ORDER[:_ALWAYS_FIRST], _EMIT_ORDER[_ALWAYS_FIRST:]
            asked = [c for c in dict.fromkeys(requested) if c in rest]
            order = (*first, *asked, *(c for c in rest if c not in asked))
        values: list[tuple[int, bytes]] = []
        for code in order:
            name, kind = _KNOWN[code]
            value = getattr(self, name)
            if value is None or value == ():
                continue
            if kind in _WIDTH:
                values.append((code, int(value).to_bytes(_WIDTH[kind], "big")))
            elif kind == _IPS:
                values.append((code, b"".join(int(a).to_bytes(4, "big") for a in value)))
            else:
                values.append((code, bytes(value)))
        values.extend((code, value) for code, value in self.other.items()
                      if code not in (OPT_PAD, OPT_END, OPT_OVERLOAD))
        return values


def encode_option(code: int, value: bytes) -> bytes:
    """code, length, value; a value over 255 octets in several pieces (RFC 3396 §7)."""
    if not value:
        return bytes((code, 0))
    out = bytearray()
    for at in range(0, len(value), 255):
        piece = value[at:at + 255]
        out += bytes((code, len(piece))) + piece
    return bytes(out)


def _scan(area: Buf, raw: dict[int, bytearray]) -> bool:
    """Collect the options of one field into `raw`, joining repeated codes (RFC 3396 §5).
    False when an option runs past the field.  A field without an end option is taken as it
    is (as ISC dhcpd and dnsmasq do): what follows the last whole option is nothing."""
    i, n = 0, len(area)
    while i < n:
        code = area[i]
        if code == OPT_PAD:
            i += 1
            continue
        if code == OPT_END:
            return True
        if i + 1 >= n:
            return False
        end = i + 2 + area[i + 1]
        if end > n:
            return False
        raw.setdefault(code, bytearray()).extend(area[i + 2:end])
        i = end
    return True


def _value_in_range(code: int, value: object) -> bool:
    """The floors RFC 2132 sets: an MTU of at least 68 (§5.1), a client identifier of at
    least 2 octets (§9.14).  A maximum message size under 576 (§9.10's floor) is kept: the
    server reads it as 576, as a client that says less can take that much anyway."""
    if code == OPT_MTU:
        return isinstance(value, int) and value >= 68
    if code == OPT_CLIENT_ID:
        return isinstance(value, bytes) and len(value) >= 2
    return True
