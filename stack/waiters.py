"""A socket's wait queue (BSD's so_rcv / so_snd sleep channels) as trio tasks park on it.

trio's ParkingLot costs about 240 bytes (an attrs object and its OrderedDict); a socket has
two and most never park a task -- an idle accepted connection, a socket only sent on.  This
one makes its lot at the first park, so an idle socket holds none (issue 14: the idle heap
per connection), and its wake-up on a queue nobody waits in is one attribute test.
"""
from __future__ import annotations

import trio

__all__ = ["WaitQueue"]


class WaitQueue:
    __slots__ = ("lot",)

    def __init__(self) -> None:
        # None until the first park.  A per-segment path may test `queue.lot` (falsy: no
        # lot, or nobody in it) instead of `queue`, saving a Python-level __bool__ call.
        self.lot: trio.lowlevel.ParkingLot | None = None

    def __bool__(self) -> bool:
        """Some task waits here."""
        lot = self.lot
        return lot is not None and bool(lot)

    def __len__(self) -> int:
        lot = self.lot
        return 0 if lot is None else len(lot)

    async def park(self) -> None:
        lot = self.lot
        if lot is None:
            lot = self.lot = trio.lowlevel.ParkingLot()
        await lot.park()

    def unpark_all(self) -> None:
        """Wake every waiting task (they run at their next scheduling)."""
        lot = self.lot
        if lot:
            lot.unpark_all()
