"""Run a script against a backend: play the peer, check every segment and every call.

A backend (backends.py) gives the runner four things: a clock, a way to put a raw IPv4
packet in front of the system under test (SUT), the packets the SUT sends (with the time
each was seen), and socket calls on the SUT (`SocketApi`).  All the script's logic --
relative sequence numbers, matching, timing, the calls' arguments -- lives here, once,
so the two backends run exactly the same script.
"""
from __future__ import annotations

import errno as errno_mod
import fcntl
import os
import select
import socket as pysocket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from protocols.tcp import wire

from .script import Call, Event, Expect, Inject, Script
from .segment import FASTOPEN_KINDS, Option, Segment, SegmentSpec, build_packet, describe, mismatches, options_bytes

SUT_PORT = 8080             # the SUT's listening port and the port it connects to
PEER_PORT = 40000           # the scripted peer's port when it connects
PEER_ISN = 1_000_000        # the scripted peer's initial sequence number (any value works)
DEFAULT_WIN = 65535         # an injected segment without `win`
END_WAIT = 2.0              # how long a call still blocked may take to finish at the end

# struct tcp_info (linux/tcp.h, as of Linux 6.18: 280 octets): field -> (offset, struct format)
TCP_INFO_LEN = 280
TCP_INFO_FIELDS: dict[str, tuple[int, str]] = {
    "tcpi_state": (0, "B"), "tcpi_ca_state": (1, "B"), "tcpi_retransmits": (2, "B"),
    "tcpi_probes": (3, "B"), "tcpi_backoff": (4, "B"), "tcpi_options": (5, "B"), "tcpi_wscale": (6, "B"),
    "tcpi_delivery_rate_app_limited": (7, "B"),     # bit 0 (bits 1-2: tcpi_fastopen_client_fail)
    "tcpi_rto": (8, "I"), "tcpi_ato": (12, "I"), "tcpi_snd_mss": (16, "I"), "tcpi_rcv_mss": (20, "I"),
    "tcpi_unacked": (24, "I"), "tcpi_sacked": (28, "I"), "tcpi_lost": (32, "I"),
    "tcpi_retrans": (36, "I"), "tcpi_fackets": (40, "I"), "tcpi_last_data_sent": (44, "I"),
    "tcpi_last_ack_sent": (48, "I"), "tcpi_last_data_recv": (52, "I"), "tcpi_last_ack_recv": (56, "I"),
    "tcpi_pmtu": (60, "I"), "tcpi_rcv_ssthresh": (64, "I"), "tcpi_rtt": (68, "I"), "tcpi_rttvar": (72, "I"),
    "tcpi_snd_ssthresh": (76, "I"), "tcpi_snd_cwnd": (80, "I"), "tcpi_advmss": (84, "I"),
    "tcpi_reordering": (88, "I"), "tcpi_rcv_rtt": (92, "I"), "tcpi_rcv_space": (96, "I"),
    "tcpi_total_retrans": (100, "I"), "tcpi_pacing_rate": (104, "Q"), "tcpi_max_pacing_rate": (112, "Q"),
    "tcpi_bytes_acked": (120, "Q"), "tcpi_bytes_received": (128, "Q"), "tcpi_segs_out": (136, "I"),
    "tcpi_segs_in": (140, "I"), "tcpi_notsent_bytes": (144, "I"), "tcpi_min_rtt": (148, "I"),
    "tcpi_data_segs_in": (152, "I"), "tcpi_data_segs_out": (156, "I"), "tcpi_delivery_rate": (160, "Q"),
    "tcpi_busy_time": (168, "Q"), "tcpi_rwnd_limited": (176, "Q"), "tcpi_sndbuf_limited": (184, "Q"),
    "tcpi_delivered": (192, "I"), "tcpi_delivered_ce": (196, "I"), "tcpi_bytes_sent": (200, "Q"),
    "tcpi_bytes_retrans": (208, "Q"), "tcpi_dsack_dups": (216, "I"), "tcpi_reord_seen": (220, "I"),
    "tcpi_rcv_ooopack": (224, "I"), "tcpi_snd_wnd": (228, "I"), "tcpi_rcv_wnd": (232, "I"),
    "tcpi_rehash": (236, "I"), "tcpi_total_rto": (240, "H"), "tcpi_total_rto_recoveries": (242, "H"),
    "tcpi_total_rto_time": (244, "I"), "tcpi_received_ce": (248, "I"),
}


class ScriptFailure(AssertionError):
    """The SUT did not do what the script says; the message says where and how."""


class SocketApi(Protocol):
    """Socket calls on the SUT.  Each raises OSError(errno) as the call would fail; a
    handle is whatever the backend uses for a socket."""
    async def socket(self, family: int, type: int, proto: int, /) -> Any: ...
    async def set_nonblocking(self, sock: Any, on: bool, /) -> None: ...
    async def setsockopt(self, sock: Any, level: int, opt: int, value: int | bytes, /) -> None: ...
    async def getsockopt(self, sock: Any, level: int, opt: int, buflen: int | None, /) -> int | bytes: ...
    async def bind(self, sock: Any, addr: tuple[str, int], /) -> None: ...
    async def listen(self, sock: Any, backlog: int, /) -> None: ...
    async def accept(self, sock: Any, /) -> Any: ...
    async def connect(self, sock: Any, addr: tuple[str, int], /) -> None: ...
    async def send(self, sock: Any, data: bytes, flags: int, /) -> int: ...
    async def sendto(self, sock: Any, data: bytes, flags: int, addr: tuple[str, int], /) -> int: ...
    async def recv(self, sock: Any, n: int, flags: int, /) -> int: ...
    async def ioctl(self, sock: Any, request: int, /) -> int: ...
    async def shutdown(self, sock: Any, how: int, /) -> None: ...
    async def close(self, sock: Any, /) -> None: ...
    async def discard(self, sock: Any, /) -> None: ...      # the end of a run: close, waking blocked calls
    async def poll(self, sock: Any, events: int, /) -> int: ...


class Backend(Protocol):
    name: str
    sut_ip: str
    peer_ip: str
    call_grace: float       # how long a call may take and still count as not blocking
    @property
    def api(self) -> SocketApi: ...
    def now(self) -> float: ...
    async def inject(self, packet: bytes) -> None: ...
    async def next_packet(self) -> tuple[float, bytes]: ...
    def pending_packets(self) -> list[tuple[float, bytes]]: ...


async def sleep_until_closely(deadline: float) -> None:
    """trio.sleep_until, but at most ~1 ms late: a long epoll wait ends up to 0.5 % late
    (the kernel's timer slack for poll and epoll, select_estimate_accuracy; measured here:
    20 ms after 4.5 s, as much as a segment's whole tolerance), so the last 50 ms are a
    second, short wait."""
    await trio.sleep_until(deadline - 0.05)
    await trio.sleep_until(deadline)


@dataclass
class Tolerance:
    """An expected segment may come `absolute + relative * interval` early or late,
    interval being the time since the previous line (the brief's 20 ms + 25 %)."""
    absolute: float = 0.020
    relative: float = 0.25

    def of(self, interval: float) -> float:
        return self.absolute + self.relative * interval


# --- constants in calls -----------------------------------------------------------------
_EXTRA_NAMES = {"SOL_TCP": pysocket.IPPROTO_TCP, "O_RDWR": os.O_RDWR, "O_NONBLOCK": os.O_NONBLOCK,
                "F_SETFL": fcntl.F_SETFL, "F_GETFL": fcntl.F_GETFL,
                "POLLIN": select.POLLIN, "POLLOUT": select.POLLOUT,
                # Linux's TCP options Python's socket module lacks, and the socket ioctls (linux/sockios.h)
                "TCP_FASTOPEN_CONNECT": 30, "TCP_FASTOPEN_NO_COOKIE": 34,
                "TCP_INQ": 36, "SIOCINQ": 0x541B, "SIOCOUTQ": 0x5411, "SIOCOUTQNSEQ": 0x894B,
                "SIOCATMARK": 0x8905}


def constant(text: str) -> int:
    """`AF_INET`, `O_RDWR|O_NONBLOCK`, `[1]`, `0x10`: a number."""
    text = text.strip().strip("[]")
    total = 0
    for part in text.split("|"):
        part = part.strip()
        if part in _EXTRA_NAMES:
            total |= _EXTRA_NAMES[part]
        elif hasattr(pysocket, part) and isinstance(getattr(pysocket, part), int):
            total |= int(getattr(pysocket, part))
        elif hasattr(errno_mod, part):
            total |= int(getattr(errno_mod, part))
        else:
            try:
                total |= int(part, 0)
            except ValueError:
                raise ScriptFailure(f"unknown constant {part!r}") from None
    return total


def parse_fields(text: str) -> dict[str, tuple[int, int]]:
    """`{tcpi_state=1, tcpi_snd_mss=1460, tcpi_last_data_recv=180..260}`: each field's
    accepted range (a single value, or `LO..HI` inclusive, for what real time blurs)."""
    out: dict[str, tuple[int, int]] = {}
    for item in text.strip().strip("{}").split(","):
        if item.strip():
            key, _, value = item.partition("=")
            low, dots, high = value.partition("..")
            out[key.strip()] = (constant(low), constant(high) if dots else constant(low))
    return out


@dataclass
class _Pending:
    call: Call
    done: trio.Event = field(default_factory=trio.Event)
    failure: BaseException | None = None


class Runner:
    def __init__(self, script: Script, backend: Backend, tolerance: Tolerance | None = None) -> None:
        self.script = script
        self.backend = backend
        self.tolerance = tolerance or Tolerance()
        self.start = 0.0
        self.sut_isn = 0                      # learned from the SUT's first SYN
        self.sut_isns: dict[int, int] = {}    # ... per peer port, when the peer has several (`port N`)
        self.sut_tsval = 0                    # the last TSval the SUT sent: an injected `ecr *`
        self.sut_cookie: tuple[int, ...] = () # the last Fast Open cookie the SUT sent: an injected `FO *`
        self.sut_port = SUT_PORT
        self.peer_port = PEER_PORT
        self.fds: dict[str, Any] = {}         # the script's descriptor names -> the backend's handles
        self.nonblocking: set[str] = set()
        self.pending: _Pending | None = None
        self.log: list[str] = []

    # --- the run -------------------------------------------------------------------------
    async def run(self) -> None:
        self.start = self.backend.now()
        prev_time = 0.0
        async with trio.open_nursery() as nursery:
            try:
                for ev in self.script.events:
                    if isinstance(ev, Expect):
                        await self._expect(ev, prev_time)
                    else:
                        await sleep_until_closely(self.start + ev.time)
                        self._no_unexpected(ev)
                        if isinstance(ev, Inject):
                            await self._inject(ev)
                        elif isinstance(ev, Call):
                            await self._call(ev, nursery)
                    prev_time = ev.time
                await self._finish_pending(None)
            finally:
                nursery.cancel_scope.cancel()
                for sock in list(self.fds.values()):
                    with trio.CancelScope(shield=True):
                        try:
                            await self.backend.api.discard(sock)
                        except OSError:
                            pass

    def _fail(self, ev: Event, message: str) -> None:
        raise ScriptFailure(f"{self.script.name}:{ev.lineno} [{self.backend.name}] {ev.text}\n{message}")

    # --- segments ---------------------------------------------------------------------
    def _ours(self, seg: Segment) -> bool:
        return seg.src == _ip(self.backend.sut_ip) and seg.dst == _ip(self.backend.peer_ip)

    def _relative(self, seg: Segment) -> tuple[int, int]:
        for opt in seg.options:
            if opt.kind == "TS" and opt.values[0] is not None:
                self.sut_tsval = opt.values[0]
            elif opt.kind in FASTOPEN_KINDS and opt.values:
                self.sut_cookie = tuple(v or 0 for v in opt.values)
        if seg.flags & wire.SYN:
            self.sut_isn = self.sut_isns[seg.dport] = seg.seq
            if not seg.flags & wire.ACK:            # our SYN: its ports name the connection
                self.sut_port, self.peer_port = seg.sport, seg.dport
        isn = self.sut_isns.get(seg.dport, self.sut_isn)
        return (seg.seq - isn) & 0xFFFFFFFF, (seg.ack - PEER_ISN) & 0xFFFFFFFF

    def _show(self, seg: Segment) -> str:
        seq, ack = self._relative(seg)
        return describe(seg.flags, seq, seg.payload_len, ack, seg.win, seg.options, ecn=seg.ecn, urg=seg.urg)

    def _no_unexpected(self, ev: Event) -> None:
        unexpected: list[str] = []
        for t, pkt in self.backend.pending_packets():
            seg = Segment.parse(pkt)
            if seg is not None and self._ours(seg):
                unexpected.append(f"  at {t - self.start:.3f} s: {self._show(seg)}")
        if unexpected:
            self._fail(ev, "unexpected segment(s) before this line:\n" + "\n".join(unexpected))

    async def _expect(self, ev: Expect, prev_time: float) -> None:
        tol = self.tolerance.of(ev.time - prev_time)
        deadline = self.start + ev.time + tol
        while True:
            with trio.move_on_after(max(0.0, deadline - self.backend.now())):
                t, pkt = await self.backend.next_packet()
                seg = Segment.parse(pkt)
                if seg is None or not self._ours(seg):
                    continue
                break
            self._fail(ev, f"no segment came by {ev.time + tol:.3f} s\n  expected: {ev.segment}")
        seq, ack = self._relative(seg)
        actual = describe(seg.flags, seq, seg.payload_len, ack, seg.win, seg.options, ecn=seg.ecn, urg=seg.urg)
        why = mismatches(ev.segment, seg.flags, seq, seg.payload_len, ack, seg.win, seg.options,
                         ecn=seg.ecn, urg=seg.urg)
        late = t - (self.start + ev.time)
        if abs(late) > tol:
            why.append(f"time {t - self.start:.3f} s, expected {ev.time:.3f} s +- {tol:.3f}")
        self.log.append(f"{t - self.start:8.3f} > {actual}")
        if why:
            self._fail(ev, f"segment mismatch: {'; '.join(why)}\n  expected: {ev.segment}\n"
                           f"  actual:   {actual}   (at {t - self.start:.3f} s)")

    async def _inject(self, ev: Inject) -> None:
        spec: SegmentSpec = ev.segment
        if spec.port is not None:
            self.peer_port = spec.port            # a second connection from the peer
        seq = PEER_ISN + (spec.seq or 0)
        ack = self.sut_isns.get(self.peer_port, self.sut_isn) + (spec.ack or 0) if spec.flags & wire.ACK else 0
        win = DEFAULT_WIN if spec.win is None else spec.win
        # `TS val N ecr *`: echo the SUT's last TSval (its clock is its own, unknowable to a script);
        # `FO *`: the cookie the SUT last sent (a server's cookie comes from its own secret);
        # an injected `sack A:B` is relative to the SUT's ISN, as seq/ack are (packetdrill's way)
        options = [Option("TS", (o.values[0], self.sut_tsval)) if o.kind == "TS" and o.values[1] is None
                   else Option(o.kind, self.sut_cookie) if o.kind in FASTOPEN_KINDS and o.values == (None,)
                   else self._sack_absolute(o) if o.kind == "sack" else o
                   for o in spec.options or []]
        packet = build_packet(_ip(self.backend.peer_ip), _ip(self.backend.sut_ip), self.peer_port,
                              self.sut_port, seq, ack, spec.flags, win, options_bytes(options), spec.length or 0,
                              ecn=spec.ecn or 0, urg=spec.urg or 0)
        self.log.append(f"{self.backend.now() - self.start:8.3f} < {spec}")
        await self.backend.inject(packet)

    def _sack_absolute(self, opt: Option) -> Option:
        """An injected SACK block is written relative to the SUT's ISN, as its seq/ack are
        (packetdrill's convention): `sack 1001:2001` SACKs the SUT's second 1000 octets."""
        return Option("sack", tuple((self.sut_isn + (v or 0)) & 0xFFFFFFFF for v in opt.values))

    # --- calls -----------------------------------------------------------------------------
    async def _call(self, ev: Call, nursery: trio.Nursery) -> None:
        await self._finish_pending(ev)
        pending = _Pending(ev)

        async def runner() -> None:
            try:
                await self._do_call(ev)
            except BaseException as e:   # handed to the script's thread of control
                pending.failure = e
            finally:
                pending.done.set()

        nursery.start_soon(runner)
        with trio.move_on_after(self.backend.call_grace):
            await pending.done.wait()
        if pending.done.is_set():
            self._raise_failure(pending)
        else:
            self.pending = pending           # a blocking call: checked when it returns

    async def _finish_pending(self, ev: Event | None) -> None:
        pending, self.pending = self.pending, None
        if pending is None:
            return
        with trio.move_on_after(END_WAIT):
            await pending.done.wait()
        if not pending.done.is_set():
            where = f"before line {ev.lineno}" if ev else "at the end"
            self._fail(pending.call, f"the call was still blocked {where}")
        self._raise_failure(pending)

    def _raise_failure(self, pending: _Pending) -> None:
        if pending.failure is not None:
            raise pending.failure

    async def _do_call(self, ev: Call) -> None:
        handler: Callable[[Call], Awaitable[int | None]] | None = getattr(self, f"_call_{ev.name}", None)
        if handler is None:
            self._fail(ev, f"unknown call {ev.name!r}")
            return
        try:
            result = await handler(ev)
            got_errno: str | None = None
        except OSError as e:
            result, got_errno = -1, errno_mod.errorcode.get(e.errno or 0, str(e.errno))
        self.log.append(f"{self.backend.now() - self.start:8.3f}   {ev.name} = {result} {got_errno or ''}")
        if got_errno and ev.errno and getattr(errno_mod, ev.errno, None) == getattr(errno_mod, got_errno, -1):
            got_errno = ev.errno                  # one number, two names (EOPNOTSUPP is ENOTSUP)
        want = (ev.result, ev.errno)
        got: tuple[int, str | None] = (ev.result if result is None else result, got_errno)
        if got != want:
            self._fail(ev, f"call returned {got[0]}{' ' + got[1] if got[1] else ''}, "
                           f"expected {ev.result}{' ' + ev.errno if ev.errno else ''}")

    def _sock(self, ev: Call, name: str) -> Any:
        if name not in self.fds:
            self._fail(ev, f"no socket {name!r}")
        return self.fds[name]

    def _name_result(self, ev: Call, handle: Any) -> None:
        self.fds[str(ev.result)] = handle
        if ev.alias:
            self.fds[ev.alias] = handle

    def _args(self, ev: Call, n: int) -> list[str]:
        if len(ev.args) < n:
            self._fail(ev, f"{ev.name} needs {n} arguments")
        return ev.args

    async def _call_socket(self, ev: Call) -> None:
        a = self._args(ev, 3)
        handle = await self.backend.api.socket(constant(a[0]), constant(a[1]), constant(a[2]))
        self._name_result(ev, handle)          # the descriptor number is the script's own

    async def _call_fcntl(self, ev: Call) -> int:
        a = self._args(ev, 3)
        if constant(a[1]) != fcntl.F_SETFL:
            self._fail(ev, "only fcntl(fd, F_SETFL, flags) is supported")
        on = bool(constant(a[2]) & os.O_NONBLOCK)
        await self.backend.api.set_nonblocking(self._sock(ev, a[0]), on)
        return 0

    async def _call_setsockopt(self, ev: Call) -> int:
        a = self._args(ev, 4)
        value: int | bytes
        if a[3].strip().startswith("{"):              # a struct of ints: `{onoff=1, linger=0}`
            fields = parse_fields(a[3])
            if any(low != high for low, high in fields.values()):
                self._fail(ev, "a struct value to set takes single values, not ranges")
            value = struct.pack(f"{len(fields)}i", *(low for low, _ in fields.values()))
        else:
            value = constant(a[3])
        await self.backend.api.setsockopt(self._sock(ev, a[0]), constant(a[1]), constant(a[2]), value)
        return 0

    async def _call_getsockopt(self, ev: Call) -> int:
        a = self._args(ev, 4)
        level, opt = constant(a[1]), constant(a[2])
        if level == pysocket.IPPROTO_TCP and opt == pysocket.TCP_INFO:
            raw = await self.backend.api.getsockopt(self._sock(ev, a[0]), level, opt, TCP_INFO_LEN)
            assert isinstance(raw, bytes)
            raw = raw.ljust(TCP_INFO_LEN, b"\0")
            # -v shows every field read (those not 0), so a script's author sees what Linux fills
            values = {k: struct.unpack_from("=" + f, raw, o)[0] for k, (o, f) in TCP_INFO_FIELDS.items()}
            self.log.append("           tcp_info " + " ".join(f"{k[5:]}={v}" for k, v in values.items() if v))
            for key, (low, high) in parse_fields(a[3]).items():
                if key not in TCP_INFO_FIELDS:
                    self._fail(ev, f"unknown tcp_info field {key!r}")
                off, fmt = TCP_INFO_FIELDS[key]
                got = struct.unpack_from("=" + fmt, raw, off)[0]
                if not low <= got <= high:
                    self._fail(ev, f"{key} is {got}, expected {low if low == high else f'{low}..{high}'}")
            return 0
        value = await self.backend.api.getsockopt(self._sock(ev, a[0]), level, opt, None)
        want_value = constant(a[3])
        if value != want_value:
            self._fail(ev, f"{a[2]} is {value!r}, expected {want_value}")
        return 0

    async def _call_ioctl(self, ev: Call) -> int:
        """`ioctl(4, SIOCINQ, [1000]) = 0`, `ioctl(4, SIOCATMARK, [1]) = 0`: the int the request
        reads, compared."""
        a = self._args(ev, 3)
        request = constant(a[1])
        value = await self.backend.api.ioctl(self._sock(ev, a[0]), request)
        low, high = parse_fields("v=" + a[2].strip().strip("[]"))["v"]
        if not low <= value <= high:
            self._fail(ev, f"{a[1]} is {value}, expected {a[2]}")
        return 0

    async def _call_poll(self, ev: Call) -> int:
        """`poll(4, POLLIN|POLLOUT, 0) = POLLOUT`: readiness now (no waiting), the events ready."""
        a = self._args(ev, 2)
        return await self.backend.api.poll(self._sock(ev, a[0]), constant(a[1]))

    async def _call_bind(self, ev: Call) -> int:
        a = self._args(ev, 1)
        await self.backend.api.bind(self._sock(ev, a[0]), ("0.0.0.0", SUT_PORT))
        return 0

    async def _call_listen(self, ev: Call) -> int:
        a = self._args(ev, 2)
        await self.backend.api.listen(self._sock(ev, a[0]), constant(a[1]))
        return 0

    async def _call_accept(self, ev: Call) -> None:
        a = self._args(ev, 1)
        self._name_result(ev, await self.backend.api.accept(self._sock(ev, a[0])))

    async def _call_connect(self, ev: Call) -> int:
        a = self._args(ev, 1)
        await self.backend.api.connect(self._sock(ev, a[0]), (self.backend.peer_ip, SUT_PORT))
        return 0

    async def _call_write(self, ev: Call) -> int:
        a = self._args(ev, 3)
        flags = constant(a[3]) if len(a) > 3 else 0
        return await self.backend.api.send(self._sock(ev, a[0]), bytes(constant(a[2])), flags)

    _call_send = _call_write

    async def _call_sendto(self, ev: Call) -> int:
        """`sendto(3, ..., 1000, MSG_FASTOPEN, ..., ...)`: to the peer, port 8080."""
        a = self._args(ev, 4)
        return await self.backend.api.sendto(self._sock(ev, a[0]), bytes(constant(a[2])), constant(a[3]),
                                             (self.backend.peer_ip, SUT_PORT))

    async def _call_read(self, ev: Call) -> int:
        a = self._args(ev, 3)
        flags = constant(a[3]) if len(a) > 3 else 0
        return await self.backend.api.recv(self._sock(ev, a[0]), constant(a[2]), flags)

    _call_recv = _call_read

    async def _call_shutdown(self, ev: Call) -> int:
        a = self._args(ev, 2)
        await self.backend.api.shutdown(self._sock(ev, a[0]), constant(a[1]))
        return 0

    async def _call_close(self, ev: Call) -> int:
        a = self._args(ev, 1)
        sock = self._sock(ev, a[0])
        for key in [k for k, v in self.fds.items() if v is sock]:
            del self.fds[key]
        await self.backend.api.close(sock)
        return 0


def _ip(text: str) -> int:
    return int.from_bytes(pysocket.inet_aton(text), "big")
