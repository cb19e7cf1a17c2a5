"""Pieces the targets share: a Stack on a manual clock with recording devices, packet
builders that get the checksums right (so mutants reach past the checksum check), and
the step loop over a FuzzedDataProvider."""
from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import atheris

from ndd import constants as C
from ndd.checksum import checksum, pseudo_header_sum
from ndd.ndd import Ndd
from ndd.pktbuf import PacketBuffer
from stack.stack import Stack, StackConfig

from . import check

if TYPE_CHECKING:
    class Fdp:
        """The part of atheris.FuzzedDataProvider the targets use (atheris has no stubs)."""

        def __init__(self, data: bytes) -> None: ...
        def ConsumeIntInRange(self, low: int, high: int) -> int: ...
        def ConsumeBytes(self, count: int) -> bytes: ...
        def ConsumeBool(self) -> bool: ...
        def remaining_bytes(self) -> int: ...
else:
    Fdp = atheris.FuzzedDataProvider

MAX_STEPS = 48          # per input: keeps every input far below the 1 s budget
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP = 1, 6, 17

# time steps a fuzzer can pick: sub-RTT, delayed ACK, RTO, long timers (TIME_WAIT, keepalive)
TIME_STEPS = (0.0, 0.001, 0.03, 0.2, 0.5, 1.0, 3.0, 10.0, 61.0, 130.0, 7200.0, 7201.1)


def steps(fdp: Fdp, limit: int = MAX_STEPS) -> Iterator[int]:
    """Yield step numbers while input remains (at most `limit`)."""
    n = 0
    while n < limit and fdp.remaining_bytes() > 0:
        yield n
        n += 1


def pick(fdp: Fdp, seq: Any) -> Any:
    return seq[fdp.ConsumeIntInRange(0, len(seq) - 1)]


def mutate(fdp: Fdp, data: bytes, limit: int = 8) -> bytes:
    """A few byte-level edits of `data` chosen by the input: overwrite, insert, truncate."""
    buf = bytearray(data)
    for _ in range(fdp.ConsumeIntInRange(1, limit)):
        kind = fdp.ConsumeIntInRange(0, 3)
        pos = fdp.ConsumeIntInRange(0, max(0, len(buf) - 1))
        if kind == 0 and buf:
            buf[pos] = fdp.ConsumeIntInRange(0, 255)
        elif kind == 1 and buf:
            buf[pos] ^= 1 << fdp.ConsumeIntInRange(0, 7)
        elif kind == 2:
            buf[pos:pos] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 8))
        else:
            del buf[fdp.ConsumeIntInRange(0, len(buf)):]
    return bytes(buf)


# --- IPv4 packets -----------------------------------------------------------------------------
def ip_header(src: int, dst: int, proto: int, payload_len: int, *, ident: int = 1, ff: int = 0,
              ttl: int = 64, options: bytes = b"") -> bytes:
    hl = 20 + len(options)
    hdr = bytearray(struct.pack("!BBHHHBBHII", 0x40 | hl // 4, 0, hl + payload_len, ident, ff, ttl, proto, 0,
                                src, dst) + options)
    struct.pack_into("!H", hdr, 10, checksum(hdr))
    return bytes(hdr)


def ip_packet(src: int, dst: int, proto: int, payload: bytes, **kw: Any) -> bytes:
    """An IPv4 datagram whose transport checksum (TCP/UDP/ICMP) is filled in."""
    body = bytearray(payload)
    l4_checksum(body, src, dst, proto)
    return ip_header(src, dst, proto, len(body), **kw) + bytes(body)


def l4_checksum(body: bytearray, src: int, dst: int, proto: int) -> None:
    where = {IPPROTO_TCP: 16, IPPROTO_UDP: 6, IPPROTO_ICMP: 2}.get(proto)
    if where is None or len(body) < where + 2:
        return
    body[where:where + 2] = b"\0\0"
    init = 0 if proto == IPPROTO_ICMP else pseudo_header_sum(src, dst, proto, len(body))
    csum = checksum(body, init)
    if proto == IPPROTO_UDP and csum == 0:
        csum = 0xFFFF
    struct.pack_into("!H", body, where, csum)


def fix_checksums(pkt: bytes) -> bytes:
    """Re-seal a (mutated) IPv4 datagram: header checksum, and the transport checksum of an
    unfragmented one, so that the edits are judged by the protocol, not by the checksum."""
    if len(pkt) < 20 or pkt[0] >> 4 != 4:
        return pkt
    hl = (pkt[0] & 15) * 4
    if hl < 20 or hl > len(pkt):
        return pkt
    buf = bytearray(pkt)
    buf[10:12] = b"\0\0"
    struct.pack_into("!H", buf, 10, checksum(buf[:hl]))
    total = struct.unpack_from("!H", buf, 2)[0]
    ff = struct.unpack_from("!H", buf, 6)[0]
    if total <= len(buf) and total >= hl and not ff & 0x3FFF:
        src, dst = struct.unpack_from("!II", buf, 12)
        body = bytearray(buf[hl:total])
        l4_checksum(body, src, dst, buf[9])
        buf[hl:total] = body
    return bytes(buf)


# --- a Stack on a manual clock ------------------------------------------------------------------
class CaptureNdd(Ndd):
    """A device whose transmissions are kept in `out`; frames come in by `deliver`."""

    def __init__(self, name: str, *, ether: bool = False, mtu: int = 1500,
                 physaddr: bytes = b"\x02\x00\x00\x00\x00\x02") -> None:
        self.ndd_type = C.NDD_ISO88023 if ether else C.NDD_RAWIP
        self.ndd_addrlen = 6 if ether else 0
        self.ndd_hdrlen = 14 if ether else 0
        self.linktype = 1 if ether else 101
        super().__init__(name, mtu=mtu, physaddr=physaddr if ether else b"")
        self.out: list[bytes] = []

    def _transmit(self, pkt: PacketBuffer) -> int:
        if len(self.out) < 256:         # a full TX ring drops, as a device would
            self.out.append(pkt.tobytes())
            return 0
        return 105                      # ENOBUFS


class ClockStack(Stack):
    """A Stack used without trio: `now` is a plain attribute and `tick` runs the timers the
    way TimerService.run does (each due core polled once per wake)."""

    def __init__(self, t0: float = 1000.0, **cfg: Any) -> None:
        self.t = t0
        cfg.setdefault("loopback", False)
        cfg.setdefault("plugins", False)
        cfg.setdefault("seed", 1)
        super().__init__("fuzz", StackConfig(**cfg))

    def now(self) -> float:
        return self.t

    def _spawn(self, fn: Any, *args: Any) -> None:
        """Driver tasks (readers, transmit loops) do not run: targets feed the receive
        entry points themselves and poll the timers with `tick`."""

    def tick(self, dt: float) -> None:
        self.t += dt
        run_timers(list(self.timers.timed), self.t)


def run_timers(cores: list[Any], now: float, limit: int = 50) -> None:
    """Poll the cores due at `now` until none is.  A core still due after `limit` rounds
    makes no progress (issue 10 point 1, float rounding re-arming a deadline at `now`):
    the Stack's timer service now bounds that to one poll per tick (stalls), but a core
    that needs it is still a bug, so this stricter oracle reports it as a finding."""
    for _ in range(limit):
        due = [c for c in cores if (at := c.poll_at()) is not None and at <= now]
        if not due:
            return
        for core in due:
            core.poll(now)
    check(False, f"timers make no progress at {now!r}: {[type(c).__name__ for c in due]} stay due")
