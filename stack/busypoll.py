"""Bounded, adaptive busy polling of the trio run loop (Linux's SO_BUSY_POLL idea, with the
window policy of KVM's halt polling).

Why: an event that finds the process asleep in epoll_wait pays a wake-up -- the scheduler,
and in a VM an inter-processor interrupt and a VM exit.  On the CI machine (a firecracker
VM) that is what bounded a relay's request/response rate: the bench's minimal Python relay
(tools/bench/gwrelay.py) went from 9.9 k to 18.8 k round trips per second with this
policy, at the same CPU per round trip (~52 µs), and the gateway from 4.9-5.7 k to
8.1-8.7 k (CPU per round trip 141-156 -> 115-120 µs: fewer sleeps and wake-ups).

How: while the window is open, one task looks at the devices and the relays' host sockets
itself (their `poll` functions: Linux's busy poll calls the driver's NAPI poll the same way)
and yields to the run loop (`trio.lowlevel.checkpoint`) every YIELD_EVERY seconds or
YIELD_PASSES passes, so trio always has a runnable task and waits on epoll with a zero
timeout -- every other fd any task waits on is polled too, a few microseconds later at
most.  A pass looks at the `watch`ed fds (a TAP, the host sockets' epoll) with one
epoll_wait(0) of its own and calls the poll function of those that are ready: an idle pass
is that one system call (a read per device would fail with EAGAIN each time -- a raised
exception in Python), and a trio pass per poll pass (~2.4 µs here) would make the passes
the slow part.  An `activity()` call (the start of a device read, a relay poller's wake)
reopens the window; when it runs out the task parks and the process sleeps in epoll_wait
as before.

The window adapts as KVM's halt polling does (Documentation/virt/kvm/halt-polling.rst;
virt/kvm/kvm_main.c, grow_halt_poll_ns / shrink_halt_poll_ns): an idle spell longer than
the window but within the limit grows it (doubled, from 10 µs), one longer than the limit
shrinks it (halved, and to 0 below 10 µs) -- polling could not have caught it.  Traffic
sparser than the limit stops paying for polling after a few events; a request/response
flow polls up to the limit.  What polling costs is counted: `stats.polled_idle_us` is the
time spent in windows that ran out.
"""
from __future__ import annotations

import select
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

__all__ = ["GROW_START", "YIELD_EVERY", "YIELD_PASSES", "BusyPollStats", "BusyPoller", "PollWindow"]

GROW_START = 10e-6      # seconds: the first window after none (KVM's halt_poll_ns_grow_start)
# While polling, the run loop's turn comes this often (seconds), or after this many passes
# (a clock standing still, as a test's): what another task waits for is seen at most that
# much later.  Measured through the gateway (MTU 1500, 3 s runs): a turn at every pass
# 12.3 k round trips per second, every 20 µs 13.3-13.4 k.
YIELD_EVERY = 20e-6
YIELD_PASSES = 64


class PollWindow:
    """The adaptive window, sans-IO: seconds to poll after the last activity."""

    __slots__ = ("limit", "grow_start", "window")

    def __init__(self, limit: float, grow_start: float = GROW_START) -> None:
        if limit < 0:
            raise ValueError("a busy-poll limit is 0 or more seconds")
        self.limit = limit
        self.grow_start = min(grow_start, limit)
        self.window = 0.0

    def idle_ended(self, idle: float) -> int:
        """An idle spell that outlasted the window (the poller slept) ended after `idle`
        seconds.  Returns +1 if the window grew, -1 if it shrank, 0 if it stayed."""
        if idle > self.limit:
            if self.window == 0.0:
                return 0
            half = self.window / 2
            self.window = half if half >= self.grow_start else 0.0
            return -1
        if self.window >= self.limit:
            return 0
        self.window = min(self.limit, max(self.grow_start, self.window * 2))
        return 1


@dataclass
class BusyPollStats:
    limit_us: float = 0.0
    window_us: float = 0.0           # the window now
    hits: int = 0                    # passes that found activity while polling
    polled: int = 0                  # ... of which a poll function's own look found it
    parks: int = 0                   # windows that ran out: the process slept
    yields: int = 0                  # turns given to the run loop while polling
    grows: int = 0
    shrinks: int = 0
    polled_idle_us: float = 0.0      # time polled in windows that ran out (the cost)


class BusyPoller:
    """The task that keeps the run loop polling; `activity()` from whatever serves events."""

    def __init__(self, limit: float, clock: Callable[[], float] = time.perf_counter,
                 yield_every: float = YIELD_EVERY) -> None:
        # a real clock, not trio's: the window is CPU time spent now, and under a test's
        # MockClock the polling still ends
        self.window = PollWindow(limit)
        self.clock = clock
        self.events = 0
        # a device's or a poller's look without waiting, called at every pass while polling
        # (Linux's busy poll calls the driver's NAPI poll the same way): what is queued is
        # served there and then, not after trio's epoll pass and a task switch.  True if any.
        self.polls: list[Callable[[], bool]] = []
        self.yield_every = yield_every
        self._watched: dict[int, Callable[[], bool]] = {}
        self._epoll: select.epoll | None = None
        self._parked: trio.Event | None = None
        self._polling: trio.Event | None = None      # set when the window runs out (while_polling)
        self._woken_at = 0.0
        self.stats = BusyPollStats(limit_us=limit * 1e6)

    def watch(self, fd: int, poll: Callable[[], bool]) -> None:
        """Call `poll` at a pass when `fd` is readable (a device, an epoll of host sockets):
        the watched fds cost one epoll_wait(0) per pass together.  The fd is the caller's;
        its close takes it out (the kernel's epoll forgets a closed file)."""
        if self._epoll is None:
            self._epoll = select.epoll()
        self._epoll.register(fd, select.EPOLLIN)
        self._watched[fd] = poll

    def _look(self) -> bool:
        """The watched fds' one look, then the poll functions: True if any found work."""
        found = False
        if self._epoll is not None:
            watched = self._watched
            for fd, _ in self._epoll.poll(0):
                poll = watched.get(fd)
                if poll is not None and poll():
                    found = True
        for poll in self.polls:
            if poll():
                found = True
        return found

    async def while_polling(self) -> None:
        """Wait while the window is open (at once back when the poller is parked): a task
        that serves one of the watched fds awaits this before each wait on it, so that trio
        does not wake it for what the poller's next pass serves anyway -- a wake-up found
        nothing, or did the pass's work at the cost of a task switch and an epoll_ctl
        (measured under the crr client: the splice poller's task woke once per connection,
        for nothing nearly half the time)."""
        polling = self._polling
        if polling is not None:
            await polling.wait()

    def _stop_polling(self) -> None:
        polling, self._polling = self._polling, None
        if polling is not None:
            polling.set()

    def activity(self) -> None:
        """Something was served: keep polling (cheap: a counter, and a wake-up if parked)."""
        self.events += 1
        parked = self._parked
        if parked is not None:
            self._parked = None
            self._woken_at = self.clock()
            parked.set()

    async def run(self) -> None:
        """Poll while the window is open, park when it runs out; until cancelled."""
        try:
            await self._run()
        finally:
            self._stop_polling()                      # the tasks held back wait on their fds again
            if self._epoll is not None:
                self._epoll.close()

    async def _run(self) -> None:
        if self.window.limit <= 0:
            await trio.sleep_forever()
        clock, window, stats, look, yield_every = self.clock, self.window, self.stats, self._look, self.yield_every
        checkpoint = trio.lowlevel.checkpoint
        quiet_since = yielded = clock()
        passes = 0
        while True:
            seen = self.events
            self._polling = trio.Event()
            while True:
                found = look()
                now = clock()
                if found or self.events != seen:
                    seen = self.events
                    quiet_since = now
                    stats.hits += 1
                    stats.polled += found
                elif now - quiet_since >= window.window:
                    break
                passes += 1
                if passes >= YIELD_PASSES or now - yielded >= yield_every:
                    stats.yields += 1
                    await checkpoint()
                    passes, yielded = 0, clock()
            stats.parks += 1
            stats.polled_idle_us += window.window * 1e6
            self._stop_polling()
            parked = self._parked = trio.Event()
            await parked.wait()
            change = window.idle_ended(self._woken_at - quiet_since)
            if change > 0:
                stats.grows += 1
            elif change < 0:
                stats.shrinks += 1
            stats.window_us = window.window * 1e6
            quiet_since = clock()
