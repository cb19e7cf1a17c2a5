"""TCP segments of a script: the spec a line states, the frame it builds, the match it makes.

A spec is what one `<` or `>` line says (see README.md): flags, relative seq:end(len),
`ack`, `win`, options.  What the line leaves out is a wildcard.  Sequence numbers are
relative to each side's initial sequence number, as packetdrill writes them: the
scripted peer's ISN is chosen by the runner, the system under test's is learned from
the first SYN it sends (0 until then, so a RST to a SYN for a closed port reads
`R. 0:0(0) ack 1`).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ndd.checksum import checksum
from protocols.ipv4 import Ipv4Repr
from protocols.tcp import wire

IPPROTO_TCP = 6
WILD = None                 # a value the line leaves open

# TCP Fast Open (RFC 7413 §4.1.1): `FO` kind 34; `FOEXP` the experimental kind 254 with the
# magic 0xF989 that Linux still accepts (and answers in kind)
FASTOPEN_KINDS = {"FO": 34, "FOEXP": 254}
FASTOPEN_EXP_MAGIC = 0xF989

FLAG_CHARS = {"S": wire.SYN, "F": wire.FIN, "R": wire.RST, "P": wire.PSH, ".": wire.ACK,
              "U": wire.URG, "E": wire.ECE, "W": wire.CWR}


# The IP ECN field (RFC 3168 §5), the two low bits of the IPv4 TOS octet: `[ce]` before a
# segment's flags names its codepoint (injected: sent with it; expected: must carry it).
ECN_CODEPOINTS = {"noecn": 0, "ect1": 1, "ect0": 2, "ce": 3}
ECN_NAMES = {v: k for k, v in ECN_CODEPOINTS.items()}


class ScriptSyntaxError(ValueError):
    """A line the parser cannot read; the message names the line."""


@dataclass(frozen=True)
class Option:
    """One TCP option as a script writes it: `mss 1460`, `nop`, `TS val 5 ecr *`.
    `values` holds the numbers in order (None: any)."""
    kind: str                               # mss wscale sackOK nop eol TS sack FO FOEXP
    values: tuple[int | None, ...] = ()     # FO/FOEXP: the cookie's octets; (None,): any cookie

    def __str__(self) -> str:
        def v(x: int | None) -> str:
            return "*" if x is None else str(x)
        if self.kind in FASTOPEN_KINDS:
            if self.values == (None,):
                return f"{self.kind} *"
            return " ".join([self.kind, bytes(x or 0 for x in self.values).hex()]) if self.values else self.kind
        if self.kind == "TS":
            return f"TS val {v(self.values[0])} ecr {v(self.values[1])}"
        if self.kind == "sack":
            pairs = zip(self.values[0::2], self.values[1::2], strict=True)
            return "sack " + " ".join(f"{v(a)}:{v(b)}" for a, b in pairs)
        return " ".join([self.kind, *map(v, self.values)])


@dataclass
class SegmentSpec:
    flags: int
    seq: int | None = None                  # relative start; None: any
    length: int | None = None
    ack: int | None = None                  # relative; None: any (expected) / 0 (injected)
    win: int | None = None
    urg: int | None = None                  # the urgent pointer; None: any (expected) / 0 (injected)
    options: list[Option] | None = None     # None: any options (expected) / none (injected)
    more_options: bool = False              # the list ended with `...`: extra options allowed
    ecn: int | None = None                  # the IP ECN codepoint; None: any (expected) / 0 (injected)
    port: int | None = None                 # injected `port N`: the peer's port from this line on

    def __str__(self) -> str:
        out = [] if self.ecn is None else [f"[{ECN_NAMES[self.ecn]}]"]
        out.append(flag_string(self.flags))
        if self.seq is not None:
            out.append(f"{self.seq}:{self.seq + (self.length or 0)}({self.length or 0})")
        if self.ack is not None:
            out.append(f"ack {self.ack}")
        if self.win is not None:
            out.append(f"win {self.win}")
        if self.port is not None:
            out.append(f"port {self.port}")
        if self.urg is not None:
            out.append(f"urg {self.urg}")
        if self.options is not None:
            opts = [str(o) for o in self.options] + (["..."] if self.more_options else [])
            out.append("<" + ",".join(opts) + ">")
        return " ".join(out)


def flag_string(flags: int) -> str:
    """tcpdump's order: S F R P U E W then `.` for ACK."""
    s = "".join(c for c, bit in FLAG_CHARS.items() if c != "." and flags & bit)
    return s + ("." if flags & wire.ACK else "")


def parse_flags(text: str) -> int:
    flags = 0
    for c in text:
        if c not in FLAG_CHARS:
            raise ScriptSyntaxError(f"unknown TCP flag {c!r} in {text!r}")
        flags |= FLAG_CHARS[c]
    return flags


def _num(tok: str) -> int | None:
    return None if tok == "*" else int(tok, 0)


def _cookie(tok: str) -> tuple[int | None, ...]:
    """`abcd1234abcd1234` (hex octets) or `*` (any cookie; injected: the last one the SUT sent)."""
    if tok == "*":
        return (None,)
    return tuple(bytes.fromhex(tok))


def parse_options(text: str) -> tuple[list[Option], bool]:
    """`mss 1460,sackOK,nop,nop,nop,wscale 7` (the text inside <>)."""
    options: list[Option] = []
    more = False
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if more:
            raise ScriptSyntaxError("`...` must be the last option")
        toks = part.split()
        kind = toks[0]
        try:
            if kind == "...":
                more = True
            elif kind in ("nop", "eol", "sackOK") and len(toks) == 1:
                options.append(Option(kind))
            elif kind in ("mss", "wscale") and len(toks) == 2:
                options.append(Option(kind, (_num(toks[1]),)))
            elif kind == "TS" and len(toks) == 5 and toks[1] == "val" and toks[3] == "ecr":
                options.append(Option("TS", (_num(toks[2]), _num(toks[4]))))
            elif kind in FASTOPEN_KINDS and len(toks) <= 2:
                options.append(Option(kind, _cookie(toks[1]) if len(toks) == 2 else ()))
            elif kind == "sack" and len(toks) >= 2:
                vals: list[int | None] = []
                for block in toks[1:]:
                    left, right = block.split(":")
                    vals += [_num(left), _num(right)]
                options.append(Option("sack", tuple(vals)))
            else:
                raise ScriptSyntaxError(f"cannot read the option {part!r}")
        except ValueError as e:
            raise ScriptSyntaxError(f"bad number in the option {part!r}: {e}") from None
    return options, more


def parse_segment(text: str) -> SegmentSpec:
    """`S. 0:0(0) ack 1 win 65535 <mss 1460,nop,nop,sackOK,nop,wscale 7>` (after `<`/`>`)."""
    opts: list[Option] | None = None
    more = False
    if "<" in text:
        head, _, rest = text.partition("<")
        if not rest.rstrip().endswith(">"):
            raise ScriptSyntaxError(f"options not closed by `>`: {text!r}")
        opts, more = parse_options(rest.rstrip()[:-1])
        text = head
    toks = text.split()
    ecn: int | None = None
    if toks and toks[0].startswith("["):
        name = toks.pop(0).strip("[]")
        if name not in ECN_CODEPOINTS:
            raise ScriptSyntaxError(f"unknown ECN codepoint [{name}] (one of {', '.join(ECN_CODEPOINTS)})")
        ecn = ECN_CODEPOINTS[name]
    if not toks:
        raise ScriptSyntaxError("a segment needs its flags")
    spec = SegmentSpec(parse_flags(toks[0]), options=opts, more_options=more, ecn=ecn)
    i = 1
    try:
        if i < len(toks) and ":" in toks[i]:
            start, _, rest = toks[i].partition(":")
            end, _, length = rest.partition("(")
            spec.seq, spec.length = int(start), int(length.rstrip(")"))
            if int(end) - spec.seq != spec.length:
                raise ScriptSyntaxError(f"{toks[i]}: end - start is not the length")
            i += 1
        while i < len(toks):
            if toks[i] in ("ack", "win", "port", "urg") and i + 1 < len(toks):
                setattr(spec, toks[i], _num(toks[i + 1]))
                i += 2
            else:
                raise ScriptSyntaxError(f"cannot read {toks[i]!r} in a segment")
    except ValueError as e:
        raise ScriptSyntaxError(f"bad number in the segment {text!r}: {e}") from None
    return spec


# --- the wire ------------------------------------------------------------------------
def options_bytes(options: list[Option]) -> bytes:
    """Options as written, in the order written (no reordering: the script lays them out)."""
    out = bytearray()
    for o in options:
        vals = [0 if v is None else v for v in o.values]
        if o.kind == "nop":
            out.append(wire.OPT_NOP)
        elif o.kind == "eol":
            out.append(wire.OPT_EOL)
        elif o.kind == "sackOK":
            out += bytes((wire.OPT_SACK_PERM, 2))
        elif o.kind == "mss":
            out += struct.pack("!BBH", wire.OPT_MSS, 4, vals[0])
        elif o.kind == "wscale":
            out += struct.pack("!BBB", wire.OPT_WSCALE, 3, vals[0])
        elif o.kind == "TS":
            out += struct.pack("!BBII", wire.OPT_TS, 10, vals[0], vals[1])
        elif o.kind == "sack":
            out += struct.pack(f"!BB{len(vals)}I", wire.OPT_SACK, 2 + 4 * len(vals), *vals)
        elif o.kind == "FO":
            out += bytes((FASTOPEN_KINDS["FO"], 2 + len(vals), *vals))
        elif o.kind == "FOEXP":
            out += struct.pack("!BBH", FASTOPEN_KINDS["FOEXP"], 4 + len(vals), FASTOPEN_EXP_MAGIC) + bytes(vals)
    if len(out) % 4:
        out += bytes(4 - len(out) % 4)          # EOL padding
    return bytes(out)


def decode_options(data: bytes) -> list[Option]:
    """Every option of a received header in order, NOPs included (wire.TcpRepr drops them)."""
    out: list[Option] = []
    i = 0
    while i < len(data):
        kind = data[i]
        if kind == wire.OPT_EOL:
            break
        if kind == wire.OPT_NOP:
            out.append(Option("nop"))
            i += 1
            continue
        if i + 1 >= len(data) or data[i + 1] < 2 or i + data[i + 1] > len(data):
            out.append(Option(f"bad-{kind}"))
            break
        size = data[i + 1]
        body = data[i + 2:i + size]
        if kind == wire.OPT_MSS and size == 4:
            out.append(Option("mss", struct.unpack("!H", body)))
        elif kind == wire.OPT_WSCALE and size == 3:
            out.append(Option("wscale", (body[0],)))
        elif kind == wire.OPT_SACK_PERM and size == 2:
            out.append(Option("sackOK"))
        elif kind == wire.OPT_TS and size == 10:
            out.append(Option("TS", struct.unpack("!II", body)))
        elif kind == wire.OPT_SACK and (size - 2) % 8 == 0:
            out.append(Option("sack", struct.unpack(f"!{(size - 2) // 4}I", body)))
        elif kind == FASTOPEN_KINDS["FO"]:
            out.append(Option("FO", tuple(body)))
        elif kind == FASTOPEN_KINDS["FOEXP"] and size >= 4 and struct.unpack("!H", body[:2])[0] == FASTOPEN_EXP_MAGIC:
            out.append(Option("FOEXP", tuple(body[2:])))
        else:
            out.append(Option(f"opt{kind}", tuple(body)))
        i += size
    return out


@dataclass
class Segment:
    """A TCP segment seen on the wire (absolute numbers) with its IPv4 addresses."""
    src: int
    dst: int
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    win: int
    options: list[Option] = field(default_factory=list)
    payload_len: int = 0
    ecn: int = 0                            # the IP header's ECN codepoint
    urg: int = 0

    @classmethod
    def parse(cls, packet: bytes) -> Segment | None:
        """An IPv4/TCP packet (raw IP, as on a TUN device), or None for anything else."""
        ip = Ipv4Repr.parse(packet)
        if isinstance(ip, str) or ip.proto != IPPROTO_TCP or ip.mf or ip.frag_offset:
            return None
        body = packet[ip.hdr_len:ip.total_len]
        tcp = wire.TcpRepr.parse(body)
        if isinstance(tcp, str):
            return None
        return cls(ip.src, ip.dst, tcp.src_port, tcp.dst_port, tcp.seq, tcp.ack, tcp.flags, tcp.window,
                   decode_options(bytes(body[wire.HDR_LEN:tcp.hdr_len])), len(body) - tcp.hdr_len,
                   ecn=ip.tos & 3, urg=tcp.urgent)


def build_packet(src: int, dst: int, sport: int, dport: int, seq: int, ack: int, flags: int,
                 win: int, options: bytes, payload_len: int, ecn: int = 0, urg: int = 0) -> bytes:
    """An IPv4 packet (DF, TTL 64, TOS = the ECN codepoint) carrying one TCP segment with a
    zero-filled payload."""
    tcp_len = wire.HDR_LEN + len(options) + payload_len
    tcp = bytearray(tcp_len)
    wire.TcpRepr(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, win, urg).emit(tcp, options)
    pseudo = struct.pack("!IIBBH", src, dst, 0, IPPROTO_TCP, tcp_len)
    struct.pack_into("!H", tcp, 16, checksum(pseudo + bytes(tcp)))
    ip = bytearray(20)
    Ipv4Repr(src, dst, IPPROTO_TCP, 20 + tcp_len, ttl=64, tos=ecn, flags_frag=0x4000).emit(ip)
    return bytes(ip + tcp)


# --- matching -----------------------------------------------------------------------
def _option_matches(want: Option, got: Option) -> bool:
    if want.kind in FASTOPEN_KINDS and want.values == (None,):
        return want.kind == got.kind and len(got.values) > 0      # `FO *`: any cookie (not a request)
    return (want.kind == got.kind and len(want.values) == len(got.values)
            and all(w is None or w == g for w, g in zip(want.values, got.values, strict=True)))


def mismatches(spec: SegmentSpec, flags: int, seq: int, length: int, ack: int, win: int,
               options: list[Option], ecn: int = 0, urg: int = 0) -> list[str]:
    """What differs between a `>` line and a segment (seq/ack already made relative).
    Empty: the segment matches.  TS val is the sender's clock: checked only when stated;
    the ECN codepoint only when the line names one."""
    why: list[str] = []
    if spec.ecn is not None and ecn != spec.ecn:
        why.append(f"ECN [{ECN_NAMES[ecn]}] != [{ECN_NAMES[spec.ecn]}]")
    if flags != spec.flags:
        why.append(f"flags {flag_string(flags)} != {flag_string(spec.flags)}")
    if spec.seq is not None and seq != spec.seq:
        why.append(f"seq {seq} != {spec.seq}")
    if spec.length is not None and length != spec.length:
        why.append(f"length {length} != {spec.length}")
    if spec.ack is not None and flags & wire.ACK and ack != spec.ack:
        why.append(f"ack {ack} != {spec.ack}")
    if spec.win is not None and win != spec.win:
        why.append(f"win {win} != {spec.win}")
    if spec.urg is not None and urg != spec.urg:
        why.append(f"urg {urg} != {spec.urg}")
    if spec.options is not None:
        n = len(spec.options)
        ok = len(options) >= n if spec.more_options else len(options) == n
        ok = ok and all(_option_matches(w, g) for w, g in zip(spec.options, options, strict=False))
        if not ok:
            why.append("options differ")
    return why


def describe(flags: int, seq: int, length: int, ack: int, win: int, options: list[Option], ecn: int = 0,
             urg: int = 0) -> str:
    """A segment in the script's own notation (relative numbers); its ECN codepoint when set,
    `urg` with URG only."""
    spec = SegmentSpec(flags, seq, length, ack if flags & wire.ACK else None, win,
                       urg=urg if flags & wire.URG else None, options=options, ecn=ecn or None)
    return str(spec)
