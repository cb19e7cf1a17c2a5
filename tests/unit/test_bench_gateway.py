"""The gateway table of `make bench` (tools/bench/gateway.py): CPU per unit of work beside
the rates, and the ratios against slirp4netns."""
from __future__ import annotations

from tools.bench.common import Section
from tools.bench.gateway import _cpu_us_per, render


def test_cpu_per_unit_is_the_gateways_cpu_over_the_count() -> None:
    assert _cpu_us_per({"cpu_s": 1.0}, {"cpu_s": 1.5}, 2500) == 200.0
    assert _cpu_us_per({"cpu_s": 1.0}, {"cpu_s": 1.5}, 0) is None


def test_the_table_shows_cpu_per_round_trip_and_connection_with_ratios() -> None:
    ours, theirs = Section("tunstack 1500"), Section("slirp4netns 1500")
    ours.set("cpu_rr", 180.0)
    ours.set("cpu_crr", 700.0)
    theirs.set("cpu_rr", 36.0)
    theirs.set("cpu_crr", 210.0)
    lines = render({"tunstack 1500": ours, "slirp4netns 1500": theirs}).splitlines()
    rr = next(line for line in lines if line.startswith("| gateway CPU per round trip"))
    crr = next(line for line in lines if line.startswith("| gateway CPU per connection"))
    assert "µs" in rr and "180" in rr and "5.00×" in rr
    assert "700" in crr and "3.33×" in crr


def test_the_limit_column_and_its_ratio() -> None:
    """The minimal relay (tools/bench/gwrelay.py) has a column at MTU 1500 only, and
    tunstack ÷ limit beside the ratios against slirp4netns."""
    ours, limit = Section("tunstack 1500"), Section("limit 1500")
    ours.set("rr", 4000.0)
    limit.set("rr", 10000.0)
    limit.fail(["up", "cpu_up"], "the minimal relay has no flow control: no bulk through it")
    lines = render({"tunstack 1500": ours, "limit 1500": limit}).splitlines()
    assert "limit 1500" in lines[0] and "tunstack ÷ limit 1500" in lines[0] and "limit 65520" not in lines[0]
    rr = next(line for line in lines if line.startswith("| 1-byte request/response"))
    assert "0.40×" in rr
    assert any("no flow control" in line for line in lines)
