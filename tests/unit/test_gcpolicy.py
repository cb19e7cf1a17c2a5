"""stack/gcpolicy.py: the cyclic GC's full-collection threshold while Stacks run."""
from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from stack import Stack, gcpolicy
from stack.stack import StackConfig


@pytest.fixture(autouse=True)
def _thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_the_first_hold_raises_it_and_the_last_release_restores_it() -> None:
    gcpolicy.hold(100)
    gcpolicy.hold(100)
    assert gc.get_threshold() == (700, 10, 100)
    gcpolicy.release(100)
    assert gc.get_threshold() == (700, 10, 100)       # a second Stack still runs
    gcpolicy.release(100)
    assert gc.get_threshold() == (700, 10, 10)
    gcpolicy.release(100)                             # an extra release changes nothing
    assert gc.get_threshold() == (700, 10, 10)


def test_none_leaves_the_collector_alone_and_a_higher_setting_stays() -> None:
    gcpolicy.hold(None)
    assert gc.get_threshold() == (700, 10, 10)
    gc.set_threshold(700, 10, 500)
    gcpolicy.hold(100)
    assert gc.get_threshold() == (700, 10, 500)       # never lowered
    gcpolicy.release(100)
    assert gc.get_threshold() == (700, 10, 500)


async def test_a_running_stack_holds_it() -> None:
    async with Stack("gc", StackConfig(loopback=False, plugins=False)):
        assert gc.get_threshold()[2] == 100
    assert gc.get_threshold() == (700, 10, 10)
    async with Stack("gc-off", StackConfig(loopback=False, plugins=False, gc_threshold2=None)):
        assert gc.get_threshold() == (700, 10, 10)
