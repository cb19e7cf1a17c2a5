"""TCP_DEFER_ACCEPT's conversions (protocols/tcp/deferaccept.py), as Linux's
secs_to_retrans / retrans_to_secs: 1 s, doubling, at most 120 s each, up to 255."""
from __future__ import annotations

import pytest

from protocols.tcp.deferaccept import retrans_to_secs, secs_to_retrans


@pytest.mark.parametrize(("seconds", "retrans", "back"), [
    (-5, 0, 0), (0, 0, 0), (1, 1, 1), (2, 2, 3), (3, 2, 3), (4, 3, 7), (30, 5, 31), (31, 5, 31),
    (32, 6, 63), (127, 7, 127), (200, 8, 247), (100000, 255, 29887), (1 << 31, 255, 29887)])
def test_seconds_become_synack_timeouts(seconds: int, retrans: int, back: int) -> None:
    assert secs_to_retrans(seconds) == retrans
    assert retrans_to_secs(retrans) == back


def test_every_count_reads_back_as_itself() -> None:
    for retrans in range(256):
        assert secs_to_retrans(retrans_to_secs(retrans)) == retrans
