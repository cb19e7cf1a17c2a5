"""A deadline for every test, so that a hang is a failure with a stack, not a CI timeout.

A test still running after TUNSTACK_TEST_TIMEOUT seconds (default 300, 3600 under `make
soak`; the slowest test takes about a minute) is stopped in two steps:

  1. a trio test's body is cancelled from inside its own run: every trio task's await stack
     is printed to stderr first, then the test fails with `TestHung` and its fixtures clean
     up (namespaces deleted, processes killed) as after any failure;
  2. a test that is still there GRACE seconds later -- a sync test, or a trio test whose
     loop never yields (a busy loop: the freeze class of issue 10 point 1) -- has every
     thread's stack dumped and `TestHung` raised in the main thread by a signal, wherever it
     is.

The deadline is wall-clock time measured by a thread, so it holds with trio's MockClock.
"""
from __future__ import annotations

import faulthandler
import functools
import inspect
import os
import signal
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio

# `make soak` scales the adversarial tests up (tests/adversarial/conftest.py): their deadline too.
_DEFAULT = "3600" if os.environ.get("TUNSTACK_SOAK") == "1" else "300"
LIMIT = float(os.environ.get("TUNSTACK_TEST_TIMEOUT", _DEFAULT))
GRACE = min(60.0, LIMIT)
_HARD_SIGNAL = signal.SIGUSR2


class TestHung(Exception):
    """The test ran past its deadline."""

    __test__ = False          # not a test class, whatever pytest's name matching says


def _print_trio_tasks(out: Any = sys.stderr) -> None:
    """Every live task of the current trio run and where it awaits (innermost last)."""
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        print(f"--- trio task {task.name}", file=out)
        frames = [(f.f_code.co_filename, lineno, f.f_code.co_name, None) for f, lineno in task.iter_await_frames()]
        print("".join(traceback.format_list(traceback.StackSummary.from_list(frames))), end="", file=out)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    out.flush()


def _with_deadline(test: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """The step-1 deadline around a trio test's body: cancelled at LIMIT, its fixtures
    untouched (pytest-trio tears them down as after any failure)."""
    @functools.wraps(test)
    async def body(**kwargs: Any) -> Any:
        token = trio.lowlevel.current_trio_token()
        expired = []
        with trio.CancelScope() as scope:
            def expire() -> None:
                print(f"\n*** test still running after {LIMIT:.0f} s: its trio tasks:", file=sys.stderr)
                _print_trio_tasks()
                expired.append(True)
                scope.cancel()

            def from_timer() -> None:
                try:
                    token.run_sync_soon(expire)
                except trio.RunFinishedError:
                    pass

            timer = threading.Timer(LIMIT, from_timer)
            timer.daemon = True
            timer.start()
            try:
                return await test(**kwargs)
            finally:
                timer.cancel()
        if expired:
            raise TestHung(f"cancelled after {LIMIT:.0f} s (the trio tasks' stacks are on stderr above)")
        return None

    return body


@pytest.hookimpl(trylast=True)      # after pytest-trio's trio_mode has marked the async tests
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if (isinstance(item, pytest.Function) and item.get_closest_marker("trio") is not None
                and inspect.iscoroutinefunction(item.obj)):
            item.obj = _with_deadline(item.obj)


def _raise_hung(signum: int, frame: object) -> None:
    raise TestHung(f"still running {LIMIT + GRACE:.0f} s after it started (every thread's stack is on stderr above)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Step 2, for setup, call and teardown of every test."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    main = threading.main_thread().ident
    assert main is not None
    done = threading.Event()

    def watch() -> None:
        if done.wait(LIMIT + GRACE):
            return
        print(f"\n*** {item.nodeid} still running after {LIMIT + GRACE:.0f} s: every thread's stack:",
              file=sys.stderr, flush=True)
        faulthandler.dump_traceback(sys.stderr, all_threads=True)
        signal.pthread_kill(main, _HARD_SIGNAL)

    previous = signal.signal(_HARD_SIGNAL, _raise_hung)
    watcher = threading.Thread(target=watch, name="test-deadline", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()
        signal.signal(_HARD_SIGNAL, previous)
