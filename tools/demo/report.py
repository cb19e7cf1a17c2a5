"""The demo's report: one line per step, ok or FAIL, and the verdict."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Report:
    steps: list[tuple[str, bool, str]] = field(default_factory=list)

    def step(self, name: str, ok: bool, detail: str = "") -> bool:
        self.steps.append((name, ok, detail))
        print(f"  [{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)
        return ok

    @property
    def all_ok(self) -> bool:
        return bool(self.steps) and all(ok for _, ok, _ in self.steps)
