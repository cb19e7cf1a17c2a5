"""One timer service per Stack, driven by the earliest protocol deadline.

The contract (protocols.contracts.TimedCore) is smoltcp's `poll_at`: every timed core
answers `poll_at() -> float | None` and does its work in `poll(now)`.  A core that arms an
earlier deadline calls its `kick` hook (set here) so the loop recomputes; passing the
deadline, `kick(at)`, lets the loop stay asleep when it already wakes in time.  Cores never
see trio.

Progress is guaranteed here whatever a core does: a core is polled at most once per pass,
and one still due right after its poll (it made no progress: float rounding, a zero timer)
is next looked at one tick later, counted in `stalls` -- never a busy loop at `now`.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import trio

# the timed-core interface is on the contracts page; one tick for the cores and this loop,
# defined below the stack (protocols/timing.py)
from protocols.contracts import TimedCore
from protocols.timing import TICK

__all__ = ["TICK", "TimerService"]


class TimerService:
    """The Stack's contracts.TimerRegistry: the loop that polls every registered TimedCore."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.timed: list[TimedCore] = []
        self._wake = trio.Event()
        self._armed = -math.inf       # the deadline the loop sleeps until
        self.wakeups = 0
        self.stalls = 0               # a core still due right after its poll: looked at a tick later

    def register(self, core: TimedCore) -> None:
        core.kick = self.kick
        self.timed.append(core)
        self.kick()

    def unregister(self, core: TimedCore) -> None:
        if core in self.timed:
            self.timed.remove(core)

    def kick(self, at: float | None = None) -> None:
        if at is not None and at >= self._armed:
            return
        self._wake.set()

    async def run(self) -> None:
        while True:
            # A fresh event *before* polling: a kick raised while polling wakes the next wait.
            self._wake = trio.Event()
            now = self.clock()
            deadline = math.inf
            for core in list(self.timed):
                at = core.poll_at()
                if at is not None and at <= now:
                    core.poll(now)
                    at = core.poll_at()
                    if at is not None and at <= now:
                        self.stalls += 1
                        at = now + TICK
                if at is not None and at < deadline:
                    deadline = at
            self.wakeups += 1
            self._armed = deadline
            with trio.move_on_at(deadline) as sleeping:
                await self._wake.wait()
            self._armed = -math.inf
            if sleeping.cancelled_caught:
                # Input first: a deadline and a device's pending frames often become ready in
                # the same scheduler batch (a loaded machine, or the stack busy sending), which
                # trio runs in random order.  One checkpoint lets the readers go first, so a
                # timer never acts on state a frame already waiting would change -- a loss
                # probe fired with the peer's ACK unread was a spurious retransmission.
                await trio.sleep(0)
