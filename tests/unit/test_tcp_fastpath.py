"""Header prediction (input.py `_predicted`) must be invisible: the same segments through
the predicted path and through the full path leave both connections in the same state
after every segment, and draw the same segments in reply.

Two whole exchanges (tests/unit/test_tcp_conn.py `run_pair`: A connects to B, both send
then close, over a seeded wire that loses, duplicates and reorders) are run twice with the
same seed -- once as the stack runs, once with prediction switched off -- and compared
segment by segment: every field of both control blocks, and of the objects they hold
(buffers, scoreboard, RTT estimator, congestion controller, RACK, ECN, PRR...) one level
down, after each segment delivered.  Deterministic CE marks on some data segments keep ECN's
receiver side in the comparison."""
from __future__ import annotations

import random
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from protocols.tcp import bbr
from protocols.tcp.conn import Connection
from protocols.tcp.ecn import CE, Ecn, listener_accepts
from protocols.tcp.input import InputMixin
from protocols.tcp.wire import ACK, TcpRepr

from . import test_tcp_conn
from .test_tcp_conn import IRS, ISS, run_pair

Snapshot = Any
OUT_OF_ORDER_TAKEN = [0]          # out-of-order text the predicted path took, over the module's runs


def _state(value: Any, depth: int) -> Snapshot:
    """A comparable picture of `value`: plain values as they are, containers and objects
    field by field down to `depth` levels (the host and the configuration are left out:
    they are shared, not connection state)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if depth == 0:
        return type(value).__name__
    if isinstance(value, (list, tuple)):
        return tuple(_state(v, depth - 1) for v in value)
    if isinstance(value, dict):
        return tuple((_state(k, depth - 1), _state(v, depth - 1)) for k, v in value.items())
    if isinstance(value, (set, frozenset)):
        return tuple(sorted((_state(v, depth - 1) for v in value), key=repr))
    if callable(value) and not hasattr(value, "__slots__") and not hasattr(value, "__dict__"):
        return "callable"
    names: list[str] = []
    for klass in type(value).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names += [slots] if isinstance(slots, str) else list(slots)
    names += list(getattr(value, "__dict__", {}))
    out = []
    for name in names:
        if name in ("host", "config", "parent", "__weakref__", "__dict__") or not hasattr(value, name):
            continue
        field = getattr(value, name)
        if callable(field) and not hasattr(field, "__slots__") and not hasattr(field, "__dict__"):
            continue                                 # a callback (on_event): not state
        out.append((name, _state(field, depth - 1)))
    return tuple(out)


def _exchange(predicted: bool, ce_every: int,
              **kw: Any) -> tuple[list[Snapshot], int]:
    """One run_pair exchange; the state of the receiving connection after each segment,
    and how many segments took the predicted path."""
    full_input: Callable[..., None] = InputMixin.input
    real_predicted = InputMixin._predicted
    real_passive_open = test_tcp_conn.passive_open
    trace: list[Snapshot] = []
    taken = 0

    def recorded_input(conn: Connection, seg: TcpRepr, payload: memoryview, now: float) -> None:
        if ce_every and payload and conn.ecn is not None and (seg.seq // 1000) % ce_every == 0:
            seg.ecn = CE                             # the same marks in both runs
        full_input(conn, seg, payload, now)
        trace.append((conn.lport, now, seg.seq, seg.ack, seg.flags, len(payload), _state(conn, 3)))

    def counted_predicted(conn: Connection, seg: TcpRepr, payload: memoryview, now: float,
                          out_of_order: bool) -> bool:
        nonlocal taken
        if not predicted:
            return False
        done = real_predicted(conn, seg, payload, now, out_of_order)
        taken += done
        OUT_OF_ORDER_TAKEN[0] += done and out_of_order
        return done

    def ecn_passive_open(conn: Connection, seg: TcpRepr, iss: int, now: float) -> None:
        if listener_accepts(conn.config.ecn, seg.flags, seg.ecn):
            conn.ecn = Ecn()                         # what Tcp._syn_received does (tcp.py)
        real_passive_open(conn, seg, iss, now)

    with pytest.MonkeyPatch.context() as m:
        # BBR's random cycle phase (bbr.py): the same draw in both runs
        m.setattr(bbr, "random", SimpleNamespace(Random=lambda: random.Random(0xB0B)))
        m.setattr(Connection, "input", recorded_input)
        m.setattr(test_tcp_conn, "passive_open", ecn_passive_open)
        m.setattr(InputMixin, "_predicted", counted_predicted)
        a, b, a_got, b_got = run_pair(**kw)
    trace.append(("end", _state(a, 3), _state(b, 3), a_got, b_got))
    return trace, taken


def _compare(ce_every: int = 0, **kw: Any) -> int:
    fast, taken = _exchange(True, ce_every, **kw)
    full, none = _exchange(False, ce_every, **kw)
    assert none == 0
    assert len(fast) == len(full)
    for i, (x, y) in enumerate(zip(fast, full, strict=True)):
        if x != y:
            diffs = [(f[0], f[1], g[1]) for f, g in zip(x[-1], y[-1], strict=False) if f != g] \
                if isinstance(x[-1], tuple) else []
            raise AssertionError(f"segment {i} ({x[:6]}): predicted and full paths differ in {diffs[:5]}")
    return taken


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1 << 30), a_len=st.integers(0, 60_000), b_len=st.integers(0, 20_000),
       loss=st.sampled_from([0.0, 0.02, 0.1]), dup=st.sampled_from([0.0, 0.05]),
       jitter=st.sampled_from([0.0, 0.02]), iss_a=st.sampled_from([ISS, 0xFFFFF000]),
       iss_b=st.sampled_from([IRS, 0xFFFFFFF0]), sack=st.booleans(), timestamps=st.booleans(),
       congestion=st.sampled_from(["reno", "cubic", "bbr"]), rcvbuf=st.sampled_from([4096, 65536, 1 << 20]),
       quickacks=st.sampled_from([0, 16]), ecn=st.sampled_from([0, 1]), ce_every=st.sampled_from([0, 3]))
# found by this test in `make test` (2026-12-07): a window update on the full path moved the
# rate sampler's lost-bytes mark (RateEstimator.finish), which prediction never reaches
@example(seed=18942, a_len=12857, b_len=10221, loss=0.1, dup=0.0, jitter=0.0, iss_a=ISS, iss_b=IRS, sack=False,
         timestamps=False, congestion="reno", rcvbuf=4096, quickacks=0, ecn=0, ce_every=0)
def test_prediction_is_invisible(seed: int, a_len: int, b_len: int,
                                 loss: float, dup: float, jitter: float, iss_a: int, iss_b: int, sack: bool,
                                 timestamps: bool, congestion: str, rcvbuf: int, quickacks: int, ecn: int,
                                 ce_every: int) -> None:
    """In-order data, pure ACKs, losses, duplicates, reordering, SACK, timestamps, ECN with
    CE marks, the sequence wrap, small windows: the same state after every segment."""
    rnd = random.Random(seed ^ 0x5A5A)
    _compare(ce_every, seed=seed, a_data=rnd.randbytes(a_len), b_data=rnd.randbytes(b_len),
             loss=loss, dup=dup, jitter=jitter, iss_a=iss_a, iss_b=iss_b, sack=sack, timestamps=timestamps,
             congestion=congestion, rcvbuf=rcvbuf, quickacks=quickacks, ecn=ecn, syn_retries=10,
             synack_retries=10, limit=20000.0)


@pytest.mark.parametrize("timestamps", [True, False])
def test_prediction_takes_the_common_segments(timestamps: bool) -> None:
    """A clean exchange both ways: nearly every segment is predicted (in-order data, ACKs --
    in the half-closed states too), and the result is the full path's."""
    rnd = random.Random(7)
    kw: dict[str, Any] = dict(seed=7, loss=0.0, dup=0.0, jitter=0.0, iss_a=ISS, iss_b=IRS, timestamps=timestamps)
    fast, taken = _exchange(True, 0, a_data=rnd.randbytes(200_000), b_data=rnd.randbytes(200_000), **kw)
    assert taken >= 0.9 * (len(fast) - 1)            # not: the handshake, the FINs
    assert _compare(a_data=rnd.randbytes(50_000), b_data=rnd.randbytes(50_000), **kw) > 0


@pytest.mark.parametrize("sack", [True, False])
def test_prediction_takes_text_beyond_a_hole(sack: bool) -> None:
    """A lossy, reordering wire: the out-of-order text is predicted too (its ACK goes at
    once, as on the full path), and the result is the full path's."""
    rnd = random.Random(11)
    before = OUT_OF_ORDER_TAKEN[0]
    _compare(seed=11, a_data=rnd.randbytes(150_000), b_data=rnd.randbytes(20_000), loss=0.05, dup=0.02,
             jitter=0.02, iss_a=ISS, iss_b=IRS, sack=sack, timestamps=True, syn_retries=10, synack_retries=10,
             limit=20000.0)
    assert OUT_OF_ORDER_TAKEN[0] - before > 20


@pytest.mark.parametrize("where", ["at the window's edge", "beyond it"])
def test_text_starting_outside_the_window_takes_the_full_path(where: str) -> None:
    """Only text starting inside the window is predicted out of order: at or past its right
    edge the full path judges it (RFC 9293 §3.10.7.4: unacceptable, an ACK, nothing kept)."""
    from .test_tcp_conn import established
    rig = established()
    conn = rig.conn
    wnd = (conn.rcv_adv - conn.rcv_nxt) & 0xFFFFFFFF
    seq = (conn.rcv_nxt + wnd + (0 if where == "at the window's edge" else 5000)) & 0xFFFFFFFF
    taken = []
    real = InputMixin._predicted
    with pytest.MonkeyPatch.context() as m:
        m.setattr(InputMixin, "_predicted", lambda *a: taken.append(a) or real(*a))
        out = rig.rx(ACK, seq=seq, payload=b"x" * 100)
    assert not taken
    assert conn.host.stats.out_of_window == 1 and not conn.rcv.ooo_starts
    assert [s.flags for s in out] == [ACK]


def test_old_timestamp_takes_the_full_path() -> None:
    """A segment whose TSval is older than TS.Recent is for PAWS to judge: not predicted."""
    from .test_tcp_conn import established
    rig = established()
    conn = rig.conn
    ts_recent = conn.ts_recent
    seg = TcpRepr(80, 40000, conn.rcv_nxt, conn.snd_una, ACK, 1000, ts=((ts_recent - 5) & 0xFFFFFFFF, 0))
    assert not conn._predicted(seg, memoryview(b"abc"), 200.0, False)
    assert conn.ts_recent == ts_recent and conn.rcv_nxt == seg.seq
