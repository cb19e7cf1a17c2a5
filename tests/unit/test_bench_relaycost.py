"""tools/bench/relaycost.py: the gateway's Python cost per relayed round trip and connection
over an in-memory TAP -- it runs, the flows carry what it sends (it raises otherwise), every
figure is a positive time, and a bad row is a one-line usage error."""
from __future__ import annotations

import pytest

from tools.bench import relaycost


def test_round_trips_and_connections_are_timed() -> None:
    rr = relaycost.measure("rr", 50)
    assert set(rr) == {"guest_to_host_us", "host_to_guest_us", "round_trip_us"}
    assert all(v > 0 for v in rr.values())
    assert rr["round_trip_us"] == pytest.approx(rr["guest_to_host_us"] + rr["host_to_guest_us"])
    crr = relaycost.measure("crr", 20)
    assert crr["connection_us"] == pytest.approx(sum(v for k, v in crr.items() if k != "connection_us"))
    assert all(v > 0 for v in crr.values())


def test_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert relaycost.main(["--rounds", "5", "rr"]) == 0
    assert capsys.readouterr().out.startswith("rr: guest_to_host_us ")
    with pytest.raises(SystemExit) as exc:
        relaycost.main(["bogus"])
    assert exc.value.code == 2 and "unknown row 'bogus'" in capsys.readouterr().err
