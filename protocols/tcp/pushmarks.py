"""Where the segments sent with PSH ended, so that a retransmission keeps the flag.

Linux retransmits an skb with the flags it was first sent with (tcp_retransmit_skb), so a
resent segment that ended a write carries PSH again; the sender here decides PSH when a
segment is first cut from the send buffer, and the retransmission paths (output.py) ask
this record.  Bounded (PUSH_MARKS_MAX; beyond it a mark is forgotten: the resent segment
just lacks a PSH) and pruned as SND.UNA passes the marks, so each costs O(1) amortised.
"""
from __future__ import annotations

from collections import deque

from . import seq as sq

PUSH_MARKS_MAX = 1024


class PushMarks:
    __slots__ = ("_order", "_ends")

    def __init__(self) -> None:
        self._order: deque[int] = deque()      # the ends, oldest first
        self._ends: set[int] = set()

    def __len__(self) -> int:
        return len(self._ends)

    def note(self, end: int, una: int) -> None:
        """A segment ending at sequence `end` went out with PSH."""
        if end in self._ends:
            return
        if len(self._order) >= PUSH_MARKS_MAX:
            self.prune(una)
            if len(self._order) >= PUSH_MARKS_MAX:
                return
        self._order.append(end)
        self._ends.add(end)

    def has(self, end: int) -> bool:
        return end in self._ends

    def prune(self, una: int) -> None:
        """Forget the marks SND.UNA has passed (acknowledged: never resent)."""
        order = self._order
        while order and sq.le(order[0], una):
            self._ends.discard(order.popleft())

    def clear(self) -> None:
        self._order.clear()
        self._ends.clear()
