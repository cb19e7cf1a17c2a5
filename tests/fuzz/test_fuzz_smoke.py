"""A short run of every fuzz target in `make test` (the long runs are `make fuzz`).

Each target gets a few hundred pseudo-random inputs from a fixed seed, then the committed
seed corpus (tests/fuzz/corpus/<target>/, inputs the coverage-guided runs kept because
they reach new code) and every finding (tests/fuzz/regressions/<target>/) are replayed.
The oracle is the targets' own: no exception escapes, invariants hold.  A generous
per-input alarm turns a hang (a timer loop that never makes progress) into a failure
instead of a stuck suite; atheris' -timeout=1 is the real per-input bound."""
from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fuzz import load_all

HERE = Path(__file__).resolve().parent
TARGETS = load_all()
RANDOM_INPUTS = 300
HANG_SECONDS = 20            # many times the 1 s budget: a loaded shared machine still passes


class Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise Hang(f"one input ran over {HANG_SECONDS} s")


def replay(name: str, inputs: Iterator[tuple[str, bytes]]) -> int:
    fn = TARGETS[name]
    old = signal.signal(signal.SIGALRM, _alarm)
    n = 0
    try:
        for label, data in inputs:
            signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
            try:
                fn(data)
            except BaseException as exc:
                raise AssertionError(f"fuzz target {name} failed on {label} ({len(data)} bytes: "
                                     f"{data[:64].hex()}...): {exc!r}") from exc
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            n += 1
    finally:
        signal.signal(signal.SIGALRM, old)
    return n


def random_inputs(name: str) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(f"tunstack-fuzz-{name}")
    for i in range(RANDOM_INPUTS):
        yield f"random input #{i}", rng.randbytes(rng.randint(0, 512))


def committed(name: str, kind: str) -> Iterator[tuple[str, bytes]]:
    folder = HERE / kind / name
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                yield str(path.relative_to(HERE)), path.read_bytes()


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target_smoke(name: str) -> None:
    t0 = time.process_time()
    assert replay(name, random_inputs(name)) == RANDOM_INPUTS
    assert time.process_time() - t0 < 120, "the smoke run of one target must stay short"


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_corpus_and_regressions(name: str) -> None:
    seeds = replay(name, committed(name, "corpus"))
    replay(name, committed(name, "regressions"))
    assert seeds > 0, f"no committed seed corpus for {name}: run `python -m tests.fuzz --merge {name}`"


def test_every_target_is_listed_in_the_runner() -> None:
    """The runner and the smoke test see the same targets, each documented."""
    assert len(TARGETS) >= 20
    for name, fn in TARGETS.items():
        assert fn.__doc__, f"fuzz target {name} has no docstring (`--list` shows it)"
