"""The shared idle defaults (protocols/shared.py): every connection and socket points at
them until it needs its own, so none of them may ever be written."""
from __future__ import annotations

import pytest

from protocols.tcp.buffers import NO_SCOREBOARD, Scoreboard
from protocols.tcp.segmentation import NO_MARKS, WriteMarks
from protocols.tcp.tcb import RARE_DEFAULTS, TcbRare
from stack.waiters import IDLE, WaitQueue


@pytest.mark.parametrize("obj, cls, attr, value", [
    (RARE_DEFAULTS, TcbRare, "total_rto", 1),
    (NO_SCOREBOARD, Scoreboard, "max_ranges", 8),
    (NO_MARKS, WriteMarks, "written", 10),
    (IDLE, WaitQueue, "waiting", 1),
])
def test_a_shared_default_reads_as_its_class_and_refuses_writes(obj: object, cls: type, attr: str,
                                                                 value: int) -> None:
    assert isinstance(obj, cls)
    before = getattr(obj, attr)
    with pytest.raises(AttributeError, match="shared by every user"):
        setattr(obj, attr, value)
    assert getattr(obj, attr) == before
    fresh = cls()
    setattr(fresh, attr, value)                       # its class's own instances are as ever
    assert getattr(fresh, attr) == value


def test_the_idle_wait_queue_wakes_nobody() -> None:
    IDLE.unpark_all()                                 # what an upcall does to an idle socket
    assert IDLE.waiting == 0 and len(IDLE) == 0 and not IDLE
