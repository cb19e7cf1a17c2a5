"""Wake-ups and task switches (issue 15): the timer service is not woken to recompute a
later deadline nor for timers cancelled meanwhile, and a stream socket wakes only the task that
can proceed -- a reader not for the ACKs of its own data, a writer not before its socket
is writable -- with every operation still a trio checkpoint.

Counts of task steps come from a trio Instrument (tools/bench/steps.py), never from time."""
from __future__ import annotations

import socket
from typing import Any

import trio
import trio.testing

from stack.timers import TimerService
from tools.bench.steps import StepCounter

from .helpers import IP_B, tcp_connected, two_stacks

A, S = socket.AF_INET, socket.SOCK_STREAM


class DeadlineCore:
    """A timed core with one deadline, counting its polls."""

    def __init__(self) -> None:
        self.at: float | None = None
        self.polled: list[float] = []
        self.kick: Any = lambda at=None: None

    def poll_at(self) -> float | None:
        return self.at

    def poll(self, now: float) -> None:
        if self.at is not None and now >= self.at:
            self.polled.append(now)
            self.at = None


async def test_a_later_deadline_moves_the_alarm_without_a_wake_up(autojump_clock: trio.testing.MockClock) -> None:
    service = TimerService(trio.current_time)
    core = DeadlineCore()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(service.run)
        service.register(core)
        await trio.sleep(1)
        before = service.wakeups
        start = trio.current_time()
        for i in range(50):                 # 50 earlier deadlines armed in turn: no wake-up each
            core.at = start + 100 - i
            core.kick(core.at)
            await trio.sleep(0)
        assert service.wakeups == before
        await trio.sleep(200)
        nursery.cancel_scope.cancel()
    assert core.polled == [start + 51]      # served at the earliest, once
    assert service.wakeups == before + 1


async def test_a_deadline_kicked_while_polling_is_not_lost(autojump_clock: trio.testing.MockClock) -> None:
    """A core polled before another in the same pass, re-armed by that other core's poll."""
    service = TimerService(trio.current_time)
    first, second = DeadlineCore(), DeadlineCore()

    def poll_and_arm_first(now: float) -> None:
        DeadlineCore.poll(second, now)
        first.at = now + 5
        first.kick(first.at)

    second.poll = poll_and_arm_first        # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        service.register(first)
        service.register(second)
        nursery.start_soon(service.run)
        second.at = trio.current_time() + 1
        second.kick(second.at)
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert len(second.polled) == 1 and first.polled == [second.polled[0] + 5]


async def test_cancelled_retransmission_timers_share_wake_ups(autojump_clock: trio.testing.MockClock) -> None:
    """Connections closed one after another: each FIN's retransmission timeout, cancelled by
    its ACK, stays in TCP's lazy heap -- checked at the head when the TimerService asks,
    they are refiled together instead of waking the service one by one."""
    async with two_stacks() as p:
        lst = p.sb.socket(A, S)
        lst.bind(("", 5000))
        lst.listen(64)
        conns = 40
        before = p.sa.timers.wakeups
        for _ in range(conns):
            c = p.sa.socket(A, S)
            await c.connect((IP_B, 5000))
            s, _ = await lst.accept()
            c.close()
            s.close()
            await trio.sleep(0.0005)
        await trio.sleep(5)
    assert p.sa.timers.wakeups - before < conns / 2     # 10 here; 49 with the lazy head reported as is


async def _connected(p: Any) -> tuple[Any, Any]:
    """A connection from stack A to a listener on B: (A's socket, B's accepted one)."""
    return await tcp_connected(p.sa, p.sb, IP_B, 5000)


async def _steps_of(task_name: str, body: Any) -> int:
    counter = StepCounter()
    trio.lowlevel.add_instrument(counter)
    try:
        await body()
    finally:
        trio.lowlevel.remove_instrument(counter)
    return sum(n for name, n in counter.steps.items() if name.endswith(task_name))


async def test_a_reader_is_not_woken_by_the_acks_of_its_own_data(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as p:
        c, s = await _connected(p)
        got: list[bytes] = []

        async def reader() -> None:
            got.append(await c.recv(100))

        async def run() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader, name="reader")
                await trio.sleep(1)
                for _ in range(20):         # every segment ACKed by B: the reader sleeps on
                    await c.send(b"x" * 1000)
                    await trio.sleep(1)
                await s.send(b"answer")

        steps = await _steps_of("reader", run)
        assert got == [b"answer"]
        assert steps <= 3                   # start, park, the answer -- not 20 ACKs


async def test_a_writer_waits_for_room_without_waking_per_ack(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as p:
        c, s = await _connected(p)
        total = 2_000_000
        received = 0

        async def writer() -> None:
            await c.sendall(b"y" * total)
            c.shutdown(socket.SHUT_WR)

        async def drain() -> None:
            nonlocal received
            while data := await s.recv(65536):
                received += len(data)

        counter = StepCounter()
        async with trio.open_nursery() as nursery:
            trio.lowlevel.add_instrument(counter)
            nursery.start_soon(writer, name="writer")
            nursery.start_soon(drain, name="drain")
        trio.lowlevel.remove_instrument(counter)
        assert received == total
        writer_steps = sum(n for name, n in counter.steps.items() if name.endswith("writer"))
        acks = p.sa.tcp.stats.in_segs
        assert writer_steps < acks / 4, (writer_steps, acks)


async def test_send_after_a_wait_skips_its_schedule_point_and_stays_a_cancel_point(
        autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as p:
        c, s = await _connected(p)

        async def echo_once() -> None:
            data = await s.recv(10)         # parks: the request is not there yet
            await s.send(data)              # no second schedule point
            await s.send(data)              # a second send is a full checkpoint again

        counter = StepCounter()
        async with trio.open_nursery() as nursery:
            trio.lowlevel.add_instrument(counter)
            nursery.start_soon(echo_once, name="echo")
            await trio.sleep(1)
            await c.send(b"ping")
            got = b""
            while len(got) < 8:
                got += await c.recv(10)
            assert got == b"pingping"
        trio.lowlevel.remove_instrument(counter)
        echo_steps = sum(n for name, n in counter.steps.items() if name.endswith("echo"))
        assert echo_steps == 3              # start to the park in recv, woken, after the 2nd send
        # a send not following a wait of its task: a checkpoint, schedule point included
        with trio.testing.assert_checkpoints():
            await s.send(b"z")
        # and a cancelled send raises and sends nothing, after a wait or not
        with trio.CancelScope() as scope:
            scope.cancel()
            await s.send(b"never")
        assert scope.cancelled_caught
        assert await c.recv(10) == b"z"


async def test_accept_is_one_checkpoint(autojump_clock: trio.testing.MockClock) -> None:
    async with two_stacks() as p:
        lst = p.sb.socket(A, S)
        lst.bind(("", 5000))
        lst.listen(4)
        c = p.sa.socket(A, S)
        await c.connect((IP_B, 5000))
        await trio.sleep(1)
        with trio.testing.assert_checkpoints():     # a connection ready: still a checkpoint
            s, _ = await lst.accept()
        with trio.CancelScope() as scope:
            scope.cancel()
            await lst.accept()
        assert scope.cancelled_caught
        s.close()
        c.close()
