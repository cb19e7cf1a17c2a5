"""Shared, write-protected instances: the idle defaults many objects point at instead of
holding their own (issue 15: an idle connection's heap).

A connection keeps the one RARE_DEFAULTS record, the one empty NO_SCOREBOARD, NO_MARKS,
a socket the one IDLE wait queue, until it needs its own.  A write to such a shared
instance would show in every connection at once, so the instance `frozen()` returns
refuses every attribute write (its class becomes a slotless subclass whose __setattr__
raises); reads and methods that only read are untouched.
"""
from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def frozen(obj: T, name: str) -> T:
    """`obj`, from now on read-only: the instance everyone shares as `name`."""
    cls = type(obj)

    def refuse(self: object, attr: str, value: object) -> None:
        raise AttributeError(f"{name} is shared by every user: {attr} not set")

    obj.__class__ = type(f"Shared{cls.__name__}", (cls,), {"__slots__": (), "__setattr__": refuse})
    return obj


__all__ = ["frozen"]
