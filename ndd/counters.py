"""Counter records: every layer keeps its drops and events as named integers.

A subclass is a @dataclass of int fields; `as_dict` feeds `Stack.stats()` and
`ndd_ctl(NDD_GET_STATS)`, `clear` serves NDD_CLEAR_STATS.
"""
from __future__ import annotations

from dataclasses import fields


class Counters:
    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def clear(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            setattr(self, f.name, 0)

    def bump(self, name: str) -> None:
        setattr(self, name, getattr(self, name) + 1)
