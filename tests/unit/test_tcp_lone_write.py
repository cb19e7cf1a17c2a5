"""The lone-write output path (output.py `_send_lone_write`) must be invisible: a
request/response exchange run twice with the same seed -- once as the stack runs, once with
the shortcut switched off -- leaves both connections in the same state after every segment
and every send, field by field (test_tcp_fastpath.py's comparison, for output)."""
from __future__ import annotations

import heapq
import random
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.tcp import bbr
from protocols.tcp.conn import Connection, State, TcpConfig
from protocols.tcp.output import OutputMixin
from protocols.tcp.wire import wscale_for

from .test_tcp_conn import IRS, ISS, LPORT, RPORT, FakeHost, passive_open
from .test_tcp_fastpath import _state


def _rr(lone_write: bool, seed: int, rounds: int, loss: float, nodelay: bool, **cfg: Any) -> tuple[list[Any], int]:
    """A sends a message of 1..2000 octets, B answers with as many once it has the whole
    message, `rounds` times, over a wire that loses (seeded); then both close.  The trace:
    both connections' state after every send and every segment delivered."""
    real = OutputMixin._send_lone_write
    taken = 0

    def counted(conn: Connection, now: float) -> bool:
        nonlocal taken
        if not lone_write:
            return False
        done = real(conn, now)
        taken += done
        return done

    rng = random.Random(seed)
    trace: list[Any] = []
    with pytest.MonkeyPatch.context() as m:
        m.setattr(OutputMixin, "_send_lone_write", counted)
        # BBR's random cycle phase (bbr.py): the same draw in both runs
        m.setattr(bbr, "random", SimpleNamespace(Random=lambda: random.Random(0xB0B)))
        config = TcpConfig(msl=5.0, **cfg)
        ha, hb = FakeHost(), FakeHost()
        a, b = Connection(ha, config), Connection(hb, config)
        for c, (lp, fp) in ((a, (LPORT, RPORT)), (b, (RPORT, LPORT))):
            c.lport, c.fport = lp, fp
            c.set_mss_for(1500)
            c.rcv_wscale = wscale_for(c.rcv_space_max()) if c.want_wscale else 0
            c.nodelay = nodelay
        b.state = State.LISTEN
        sizes = [rng.randint(1, 2000) for _ in range(rounds)]
        asked = answered = 0                  # messages A sent, answers B sent
        a_got = b_got = 0                     # octets each received
        wire: list[tuple[float, int, Connection, Any, bytes]] = []
        order, now = 0, 0.0
        a.open_active(ISS, now)
        while now < 600.0:
            if a.state == State.ESTABLISHED and asked < rounds and a_got == sum(sizes[:asked]):
                a.send(memoryview(bytes(sizes[asked])), now)
                asked += 1
                trace.append(("a sends", now, _state(a, 3)))
            if b.state in (State.ESTABLISHED, State.CLOSE_WAIT):
                b_got += len(b.receive(1 << 20, False, now))
                if answered < asked and b_got >= sum(sizes[:answered + 1]):
                    b.send(memoryview(bytes(sizes[answered])), now)
                    answered += 1
                    trace.append(("b sends", now, _state(b, 3)))
            if a.state not in (State.CLOSED, State.SYN_SENT):
                a_got += len(a.receive(1 << 20, False, now))
            if answered == rounds and a_got == sum(sizes):
                for c in (a, b):
                    if c.state in (State.ESTABLISHED, State.CLOSE_WAIT) and not c.shut_wr:
                        c.shutdown_write(now)
            for host, dst in ((ha, b), (hb, a)):
                for s in host.sent:
                    if rng.random() >= loss:
                        order += 1
                        heapq.heappush(wire, (now + 0.01, order, dst, s.seg, s.payload))
                host.sent.clear()
            deadlines = [t for t in (a.poll_at(), b.poll_at()) if t is not None]
            if wire:
                deadlines.append(wire[0][0])
            if not deadlines:
                break
            now = max(now, min(deadlines))
            while wire and wire[0][0] <= now:
                _, _, dst, seg, payload = heapq.heappop(wire)
                if dst.state == State.LISTEN:
                    passive_open(dst, seg, IRS, now)
                elif dst.state != State.CLOSED:
                    dst.input(seg, memoryview(payload), now)
                    trace.append(("segment", now, dst.lport, seg.seq, seg.flags, len(payload), _state(dst, 3)))
            for c in (a, b):
                at = c.poll_at()
                if at is not None and at <= now:
                    c.poll(now)
        trace.append(("end", a_got, b_got, _state(a, 3), _state(b, 3)))
    return trace, taken


def _compare(**kw: Any) -> int:
    fast, taken = _rr(True, **kw)
    full, none = _rr(False, **kw)
    assert none == 0
    assert len(fast) == len(full)
    for i, (x, y) in enumerate(zip(fast, full, strict=True)):
        assert x == y, f"step {i} {x[:2]}: the lone-write path and the general pass differ"
    return taken


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1 << 30), loss=st.sampled_from([0.0, 0.05, 0.2]), nodelay=st.booleans(),
       sack=st.booleans(), timestamps=st.booleans(), congestion=st.sampled_from(["reno", "cubic", "bbr"]))
def test_lone_write_is_invisible(seed: int, loss: float, nodelay: bool, sack: bool, timestamps: bool,
                                 congestion: str) -> None:
    """Messages below and above a segment, Nagle on and off, losses (retransmissions, RTOs,
    recovery in play when a write comes): the same state after every step."""
    _compare(seed=seed, rounds=30, loss=loss, nodelay=nodelay, sack=sack, timestamps=timestamps,
             congestion=congestion)


def test_lone_write_takes_the_requests() -> None:
    """A clean exchange: the short messages take the lone-write path, with the general
    pass's result."""
    assert _compare(seed=3, rounds=40, loss=0.0, nodelay=True) >= 20
