"""Timer granularity shared by every timed core and the Stack's timer service.

Linux timers fire on jiffies: a deadline that is still due after its handler ran (a re-arm
from inside the handler, float rounding of a sum that should have been later) is looked at
one tick later at the earliest, never again at `now`.  One constant for the protocol cores
(protocols/tcp/timer.py, tcp.py) and for stack/timers.py, which imports it from here: the
stack sits above the protocols, never the other way round.
"""
from __future__ import annotations

TICK = 0.001    # seconds: 1 ms, Linux's jiffy at HZ=1000
