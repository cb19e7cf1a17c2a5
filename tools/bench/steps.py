"""Counting trio's scheduling work per unit of a measurement (issue 15: task switches per
round trip, timer wake-ups per connection).

`StepCounter` is a `trio.abc.Instrument`: it counts the task steps trio runs (one per
resumption of a task: a wake-up after a park, or the return from a schedule point) by
task name, and the scheduler's passes through epoll (`before_io_wait`; a pass with a
zero timeout is a yield that found other work ready).  `tools.bench.tunstack --steps`
installs one per measure and reports the counts divided by the measure's units.
"""
from __future__ import annotations

from collections import Counter

import trio


class StepCounter(trio.abc.Instrument):
    """Task steps by task name and the scheduler's epoll passes, while installed."""

    def __init__(self) -> None:
        self.steps: Counter[str] = Counter()
        self.io_waits = 0           # every pass of trio's run loop polls epoll once
        self.io_blocking = 0        # passes that could sleep (nothing else was runnable)

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps[task.name] += 1

    def before_io_wait(self, timeout: float) -> None:
        self.io_waits += 1
        if timeout > 0:
            self.io_blocking += 1

    def per_unit(self, units: int) -> dict[str, object]:
        """The counts per unit of work (steps by task, the most frequent first)."""
        n = max(units, 1)
        return {"task_steps": round(sum(self.steps.values()) / n, 2),
                "io_waits": round(self.io_waits / n, 2),
                "io_blocking": round(self.io_blocking / n, 2),
                "by_task": {name.rsplit(".", 1)[-1]: round(count / n, 3)
                            for name, count in self.steps.most_common(6)}}
