"""ICMPv6 counters (protocols/icmpv6/stats.py): RFC 2466 / RFC 4293 names per type, in and
out, and every drop reason the codecs can return is a counter of the right section."""
from __future__ import annotations

import ast
import inspect
from dataclasses import fields
from types import ModuleType

import pytest

from protocols.icmpv6 import mld, nd, wire
from protocols.icmpv6.stats import Icmpv6Stats, MldStats, NdStats


def returned_strings(module: ModuleType) -> set[str]:
    """Every string literal a function of `module` returns (its drop reasons), and the
    reason of every MalformedOption it builds."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            out.add(node.value.value)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "MalformedOption":
            out.update(a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str))
    return out


@pytest.mark.parametrize("module,stats", [(wire, Icmpv6Stats), (nd, NdStats), (mld, MldStats)])
def test_every_reason_is_a_counter(module: ModuleType, stats: type) -> None:
    reasons = returned_strings(module)
    assert reasons                                      # the scan found the reasons
    assert reasons <= {f.name for f in fields(stats)}, reasons - {f.name for f in fields(stats)}


def test_per_type_counters_in_and_out() -> None:
    s = Icmpv6Stats()
    for t in (wire.ECHO_REQUEST, wire.ECHO_REQUEST, wire.NEIGHBOR_SOLICIT, wire.MLD2_REPORT, 77, 150):
        s.count_in(t)
    s.count_in(wire.DEST_UNREACH, wire.UNREACH_ADMIN)
    s.count_in(wire.DEST_UNREACH, wire.UNREACH_PORT)
    assert (s.in_msgs, s.in_echos, s.in_neighbor_solicits, s.in_mldv2_reports) == (8, 2, 1, 1)
    assert (s.in_dest_unreachs, s.in_admin_prohibs) == (2, 1)
    s.count_out(wire.TIME_EXCEEDED)
    s.count_out(wire.ECHO_REPLY)
    s.count_out(wire.MLD_DONE)
    s.count_out(wire.DEST_UNREACH, wire.UNREACH_ADMIN)
    assert (s.out_msgs, s.out_errors, s.out_time_excds, s.out_echo_replies) == (4, 2, 1, 1)
    assert (s.out_group_memb_reductions, s.out_dest_unreachs, s.out_admin_prohibs) == (1, 1, 1)
    assert s.as_dict()["in_echos"] == 2
    s.clear()
    assert not any(s.as_dict().values())


def test_every_known_type_has_both_counters() -> None:
    types = [wire.DEST_UNREACH, wire.PACKET_TOO_BIG, wire.TIME_EXCEEDED, wire.PARAM_PROBLEM, wire.ECHO_REQUEST,
             wire.ECHO_REPLY, wire.MLD_QUERY, wire.MLD_REPORT, wire.MLD_DONE, wire.ROUTER_SOLICIT,
             wire.ROUTER_ADVERT, wire.NEIGHBOR_SOLICIT, wire.NEIGHBOR_ADVERT, wire.REDIRECT, wire.MLD2_REPORT]
    for t in types:
        s = Icmpv6Stats()
        s.count_in(t)
        s.count_out(t)
        d = s.as_dict()
        assert sum(v for k, v in d.items() if k.startswith("in_") and k != "in_msgs") == 1, t
        assert sum(v for k, v in d.items() if k.startswith("out_") and k not in ("out_msgs", "out_errors")) == 1, t
