"""tools/bench/lossy.py's command line: `--faults` changes the impairment one fault at a
time (how the receiver bugs of issue 10 point 11 were found), and bad input is one line."""
from __future__ import annotations

import argparse

import pytest

from tools.bench.lossy import FAULTS, fault_spec


def test_fault_spec_overrides_the_named_faults_only() -> None:
    assert fault_spec("reorder=0,duplicate=0,corrupt=0") == {"reorder": 0.0, "duplicate": 0.0, "corrupt": 0.0}
    assert fault_spec("drop=0.1") == {"drop": 0.1} and fault_spec("") == {}
    assert set(FAULTS) == {"drop", "reorder", "duplicate", "corrupt"}


@pytest.mark.parametrize("bad", ["drop=2", "drop=-0.1", "drop=x", "drop", "loss=0.1"])
def test_fault_spec_refuses_bad_input_in_one_line(bad: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as err:
        fault_spec(bad)
    assert "\n" not in str(err.value) and repr(bad) in str(err.value)
