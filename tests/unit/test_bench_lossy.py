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


def test_the_bench_table_reads_the_lossy_report() -> None:
    """`make bench`'s lossy table (tools/bench/lossy_table.py): tunstack ÷ Linux per direction
    from the report's medians; a run that did not arrive intact is n/a with its reason."""
    from tools.bench import lossy_table
    from tools.bench.common import Section

    sec = Section("lossy")
    for key, seconds, cpu in (("out", 2.4, 2.5), ("linux", 1.2, 1.1)):
        sec.set(key, seconds)
        sec.set(f"cpu_{key}", cpu)
    sec.fail(["in", "cpu_in"], "stack_in: the stream did not arrive intact")
    sec.details = {"mb": 100, "runs": 3}
    text = lossy_table.render(sec)
    out_row = next(line for line in text.splitlines() if "stack → Linux" in line)
    in_row = next(line for line in text.splitlines() if "Linux → stack" in line)
    assert "2.40" in out_row and "1.20" in out_row and "2.00×" in out_row
    assert "n/a [1]" in in_row and "×" not in in_row
    assert "[1] not available: stack_in: the stream did not arrive intact" in text
    assert lossy_table.to_json(sec)["cells"]["out"] == {"value": 2.4, "note": ""}
