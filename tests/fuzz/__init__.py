"""Coverage-guided fuzz targets for every input entry point (issue 10, "What stays").

A target is a function `fn(data: bytes) -> None` registered by name with `@target`.  It
splits `data` with atheris.FuzzedDataProvider into a sequence of inputs and time steps
fed to a protocol set up in a realistic state (a TCP connection after a real handshake,
SSCOP in each state, both sides of a Q.2931 call, ...).  The oracle is the same for all:
nothing escapes a protocol as an exception, no input takes over 1 s, memory stays
bounded -- plus cheap target-specific invariants, checked with `check()`.

    python -m tests.fuzz --list
    python -m tests.fuzz --seconds 300 tcp_established     # atheris, one subprocess per target

tests/fuzz/test_fuzz_smoke.py runs every target briefly in `make test`, and replays the
committed seed corpus (corpus/<target>/) and every finding (regressions/<target>/).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable

TargetFn = Callable[[bytes], None]
TARGETS: dict[str, TargetFn] = {}

# the modules that define targets, imported by load_all() (the runner instruments them)
MODULES = ("tests.fuzz.targets_tcp", "tests.fuzz.targets_ip", "tests.fuzz.targets_atm",
           "tests.fuzz.targets_http", "tests.fuzz.targets_ipv6", "tests.fuzz.targets_dhcp",
           "tests.fuzz.targets_relayed")


class InvariantError(AssertionError):
    """A target-specific invariant does not hold (a finding, like an escaped exception)."""


def check(ok: bool, what: str) -> None:
    if not ok:
        raise InvariantError(what)


def target(name: str) -> Callable[[TargetFn], TargetFn]:
    def register(fn: TargetFn) -> TargetFn:
        if name in TARGETS:
            raise ValueError(f"fuzz target {name!r} registered twice")
        TARGETS[name] = fn
        return fn
    return register


def load_all() -> dict[str, TargetFn]:
    for mod in MODULES:
        importlib.import_module(mod)
    return TARGETS
