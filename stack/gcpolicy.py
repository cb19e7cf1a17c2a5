"""How often CPython's cyclic garbage collector walks the whole heap while a Stack runs.

A full (generation 2) collection visits every object the collector tracks, and a stack
holding thousands of connections holds millions: ~75 ms each with 10 000.  CPython 3.11
runs one after every 10 collections of generation 1 once the old objects grew by a
quarter, so a heap that grows -- a burst of 10 000 clients -- pays one per 25 % of
growth: 13 of them, 1.0 s of the burst's 3.5 s of CPU (measured with gc.callbacks,
tests/adversarial/test_burst.py).  With the third threshold at 100 instead of 10, the
whole test session ran 6 full collections, 0.08 s (most before the Stack started), and
all 10 000 were echoed in 2.7-2.9 s instead of 3.2-3.5 s.  The young
generations keep their thresholds: short-lived cycles (a trio task's exception and
traceback) are still freed as soon as before.

Process-wide, so the first Stack to start sets it and the last to stop puts back what
was there (StackConfig.gc_threshold2; None leaves the collector alone)."""
from __future__ import annotations

import gc

_users = 0
_saved: tuple[int, int, int] | None = None


def hold(threshold2: int | None) -> None:
    """A Stack starts: the third threshold at least `threshold2` while any Stack runs."""
    global _users, _saved
    if threshold2 is None:
        return
    if _users == 0:
        _saved = gc.get_threshold()
        t0, t1, t2 = _saved
        if threshold2 > t2:
            gc.set_threshold(t0, t1, threshold2)
    _users += 1


def release(threshold2: int | None) -> None:
    """A Stack that held the policy stopped: the last one restores the thresholds."""
    global _users, _saved
    if threshold2 is None or _users == 0:
        return
    _users -= 1
    if _users == 0 and _saved is not None:
        gc.set_threshold(*_saved)
        _saved = None
