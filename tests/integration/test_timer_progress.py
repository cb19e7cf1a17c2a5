"""The Stack's timer task cannot freeze (issue 10 point 1), under trio's MockClock, which
wakes exactly at deadlines -- the condition that made a keepalive re-arm at `now` forever.

A spinning timer loop never yields, so no trio timeout could end the test: a SIGALRM
wall-clock limit turns a regression into a failure instead of a hang."""
from __future__ import annotations

import math
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio
import trio.testing

from protocols.tcp.config import TcpConfig
from protocols.tcp.state import State
from stack.stack import StackConfig
from stack.timers import TICK, TimerService

from .helpers import IP_B, two_stacks

LAST_RCV, KEEPIDLE, KEEPINTVL = 7577.55, 7200, 75


@contextmanager
def wall_clock_limit(seconds: float) -> Iterator[None]:
    def expired(signum: int, frame: Any) -> None:
        raise AssertionError(f"still running after {seconds} s of wall-clock time: a timer loop spins")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


async def test_keepalive_connection_idles_through_several_periods(autojump_clock: trio.testing.MockClock) -> None:
    """An idle keepalive connection whose last segment arrived at t = 7577.55: the first
    probe is due at 7577.55 + 7200, where now - last_rcv rounds to a hair under keepidle.
    The peer answers every probe, so it stays ESTABLISHED through five idle periods."""
    t = TcpConfig(msl=0.5)
    async with two_stacks(config_a=StackConfig(seed=1, tcp=t), config_b=StackConfig(seed=2, tcp=t)) as p:
        srv = p.sb.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.bind(("", 5000))
        srv.listen(1)
        cl = p.sa.socket(socket.AF_INET, socket.SOCK_STREAM)
        await cl.connect((IP_B, 5000))
        conn, _ = await srv.accept()
        cl.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        cl.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPIDLE)
        cl.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPINTVL)
        await trio.sleep_until(LAST_RCV)
        await conn.sendall(b"x")
        assert await cl.recv(1) == b"x"
        pcb = cl._pcb
        assert pcb.last_rcv == LAST_RCV
        assert (LAST_RCV + KEEPIDLE) - LAST_RCV < KEEPIDLE           # the rounding of the report
        await trio.sleep(1)             # the ACK of "x" (delayed or not, as trio schedules) is in
        segs_at_b = p.sb.tcp.stats.in_segs
        with wall_clock_limit(60):
            await trio.sleep(5 * KEEPIDLE + 1)
        assert pcb.state == State.ESTABLISHED
        assert p.sb.tcp.stats.in_segs - segs_at_b == 5                # one probe per idle period
        assert p.sa.tcp.stats.keepalive_drops == 0
        assert p.sa.timers.stalls == 0 and p.sa.tcp.stats.timer_deferrals == 0
        assert p.sa.stats()["timers"] == {"wakeups": p.sa.timers.wakeups, "stalls": 0}   # exposed
        await cl.sendall(b"still here")                               # and the connection works
        assert await conn.recv(100) == b"still here"


class StuckCore:
    """A timer core whose poll never advances its deadline (the bug, in its purest form)."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.polls = 0
        self.kick: Any = lambda at=None: None

    def poll_at(self) -> float | None:
        return self.at

    def poll(self, now: float) -> None:
        self.polls += 1


async def test_timer_service_backs_off_a_core_that_makes_no_progress(autojump_clock: trio.testing.MockClock) -> None:
    """The TimerService polls a stuck core at most once per tick and counts it: virtual time
    still advances (MockClock's autojump needs every task asleep), other cores still run."""
    svc = TimerService(trio.current_time)
    stuck = StuckCore(trio.current_time() + 1.0)
    svc.register(stuck)
    with wall_clock_limit(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(svc.run)
            await trio.sleep(1.0 + 0.1)
            nursery.cancel_scope.cancel()
    # 0.1 s past the deadline at one poll per tick: about 100 polls, never a spin
    assert 1 <= stuck.polls <= math.ceil(0.1 / TICK) + 2
    assert svc.stalls == stuck.polls


class ProbeCore:
    """A core due at `at` whose deadline a 'reader' moves later just as it falls due."""

    def __init__(self, at: float) -> None:
        self.at: float | None = at
        self.polled_stale = 0
        self.kick: Any = lambda at=None: None

    def poll_at(self) -> float | None:
        return self.at

    def poll(self, now: float) -> None:
        if self.at is not None and now >= self.at:
            self.polled_stale += 1          # acted on a deadline the waiting input had moved
            self.at = None


async def test_input_ready_with_a_deadline_is_read_before_the_timer_acts(
        autojump_clock: trio.testing.MockClock) -> None:
    """A frame that re-arms a timer (an ACK moving the loss probe) and that timer's old
    deadline ready in the same scheduler batch: trio runs a batch in random order, so the
    timer task alone would poll first about half the time and act on stale state (a probe
    resent with the ACK unread).  The timer service yields once after a deadline wakes it."""
    service = TimerService(trio.current_time)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.run)
        cores = []
        for _ in range(40):
            at = trio.current_time() + 1
            core = ProbeCore(at)
            cores.append(core)
            service.register(core)

            async def reader(core: ProbeCore = core, at: float = at) -> None:
                await trio.sleep_until(at)      # the frame is there when the deadline falls due
                core.at = at + 10               # the ACK re-arms the probe
                core.kick(core.at)

            nursery.start_soon(reader)
            await trio.sleep(2)
            service.unregister(core)
        nursery.cancel_scope.cancel()
    assert sum(c.polled_stale for c in cores) == 0, [c.polled_stale for c in cores]
