"""A socket's wait queue (BSD's so_rcv / so_snd sleep channels) as trio tasks park on it.

trio's ParkingLot costs about 240 bytes (an attrs object and its OrderedDict); a socket has
two and most never park a task -- an idle accepted connection, a socket only sent on.  This
one makes its lot at the first park, so an idle socket holds none (issue 14: the idle heap
per connection), and its wake-up on a queue nobody waits in is one attribute test.  A
socket goes further: it holds the shared IDLE queue, never parked on, until its first park
needs one of its own (Socket._read_queue; issue 15: the idle heap).
"""
from __future__ import annotations

import trio

from protocols.shared import frozen

__all__ = ["IDLE", "WaitQueue"]


class WaitQueue:
    __slots__ = ("lot", "waiting")

    def __init__(self) -> None:
        self.lot: trio.lowlevel.ParkingLot | None = None      # None until the first park
        # tasks inside park(), counted here because ParkingLot's __bool__ and __len__ are
        # Python-level calls, and a per-segment upcall tests the queue: `queue.waiting` is
        # one attribute.  A task woken but not yet run still counts (a spare wake-up at
        # worst, never a missed one).
        self.waiting = 0

    def __bool__(self) -> bool:
        """Some task waits here."""
        return self.waiting > 0

    def __len__(self) -> int:
        lot = self.lot
        return 0 if lot is None else len(lot)

    async def park(self) -> None:
        lot = self.lot
        if lot is None:
            lot = self.lot = trio.lowlevel.ParkingLot()
        self.waiting += 1
        try:
            await lot.park()
        finally:
            self.waiting -= 1

    def unpark_all(self) -> None:
        """Wake every waiting task (they run at their next scheduling)."""
        if self.waiting:
            lot = self.lot
            assert lot is not None
            lot.unpark_all()


IDLE = frozen(WaitQueue(), "IDLE")   # every socket's queue until it parks a task (never parked on)
