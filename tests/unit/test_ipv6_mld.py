"""The MLDv2 host side (protocols/ipv6/mld.py), RFC 3810 case by case with an explicit clock:
State Change Reports and their retransmissions (§6.1), reference counting, answers to General
and Multicast Address Specific Queries (§6.2 rules 1-4), MLDv1 compatibility mode (§8.2.1,
§9.12, RFC 2710 §4), QRV/QQIC (§9.1, §9.2), the groups never reported (§6), report splitting
(§5.2.15), the bounds, and the TICK rule of protocols/timing.py."""
from __future__ import annotations

import errno
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.icmpv6.mld import CHANGE_TO_EXCLUDE_MODE, CHANGE_TO_INCLUDE_MODE, MODE_IS_EXCLUDE
from protocols.icmpv6.wire import MLD2_REPORT, MLD_DONE, MLD_REPORT
from protocols.ipv6.addr import ALL_MLDV2_ROUTERS, ALL_NODES, ALL_ROUTERS, solicited_node
from protocols.ipv6.mld import (
    DEFAULT_RECORDS_PER_REPORT,
    MAX_QUERY_INTERVAL,
    MldConfig,
    MldHost,
    MldReport,
    records_per_report,
    reportable,
)
from protocols.timing import TICK

TO_EX, TO_IN, IS_EX = CHANGE_TO_EXCLUDE_MODE, CHANGE_TO_INCLUDE_MODE, MODE_IS_EXCLUDE
G1 = 0xFF0E_0000_0000_0000_0000_0000_0000_0101          # ff0e::101, global scope
G2 = 0xFF05_0000_0000_0000_0000_0000_0001_0003          # ff05::1:3, site scope
G3 = 0xFF02_0000_0000_0000_0000_0000_0000_00FB          # ff02::fb, link scope
SNMA = solicited_node(0xFE80_0000_0000_0000_0200_00FF_FE00_0002)
IFACE_LOCAL = 0xFF01_0000_0000_0000_0000_0000_0000_0001  # ff01::1
SCOPE_0 = 0xFF00_0000_0000_0000_0000_0000_0000_0001
UNICAST = 0x2001_0DB8_0000_0000_0000_0000_0000_0001


class ScriptedRng(random.Random):
    """uniform(a, b) answers a + f * (b - a) for the next f of the script (then the last one
    again): the random delays exactly, and which ones were drawn."""

    def __init__(self, *fractions: float) -> None:
        super().__init__(0)
        self.fractions = list(fractions) or [0.5]
        self.drawn: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.drawn.append((a, b))
        f = self.fractions.pop(0) if len(self.fractions) > 1 else self.fractions[0]
        return a + f * (b - a)


@dataclass
class Rig:
    host: MldHost
    sent: list[MldReport] = field(default_factory=list)
    kicks: list[float] = field(default_factory=list)

    def take(self) -> list[MldReport]:
        sent = list(self.sent)
        self.sent.clear()              # in place: the host holds its append
        return sent

    def drain(self, now: float, until: float) -> float:
        """Poll every deadline up to `until`; the time of the last poll."""
        while (at := self.host.poll_at()) is not None and at <= until:
            now = max(now, at)
            self.host.poll(now)
        return now


def make_rig(rng: random.Random | None = None, **cfg: float) -> Rig:
    rig = Rig(MldHost())
    rig.host = MldHost(send_report=rig.sent.append, config=MldConfig(**cfg),  # type: ignore[arg-type]
                       rng=rng or ScriptedRng(0.5))

    def kick(*at: float) -> None:
        rig.kicks.extend(at)

    rig.host.kick = kick
    return rig


def v2(*records: tuple[int, int]) -> MldReport:
    return MldReport(2, tuple(records))


def v1(record_type: int, group: int) -> MldReport:
    return MldReport(1, ((record_type, group),))


def groups_in(reports: Iterable[MldReport]) -> set[int]:
    return {group for report in reports for _, group in report.records}


def joined(rig: Rig, *groups: int, now: float = 0.0) -> float:
    """Join and let the State Change retransmissions end; the time after."""
    for group in groups:
        assert rig.host.join(group, now) == 0
    now = rig.drain(now, now + 100.0)
    rig.take()
    return now


# --- constants and helpers -------------------------------------------------------------------------
def test_records_per_report_fill_the_mtu() -> None:
    """(1280 - 40 IPv6 - 8 hop-by-hop - 8 ICMPv6) / 20 octets per record = 61 (§5.2.15)."""
    assert DEFAULT_RECORDS_PER_REPORT == records_per_report(1280) == 61
    assert 40 + 8 + 8 + 61 * 20 <= 1280 < 40 + 8 + 8 + 62 * 20
    assert records_per_report(1500) == 72 and records_per_report(9000) == 447
    assert records_per_report(60) == 1                      # never 0: one record always goes


def test_which_groups_are_reported() -> None:
    """§6: never all-nodes nor scopes 0 and 1; every other group, link-local ones included."""
    assert not reportable(ALL_NODES) and not reportable(IFACE_LOCAL) and not reportable(SCOPE_0)
    assert reportable(SNMA) and reportable(G3) and reportable(ALL_ROUTERS)
    assert reportable(G1) and reportable(G2)


def test_report_destinations_and_types() -> None:
    """§5.2.14: v2 Reports to ff02::16; RFC 2710 §5: a v1 Report to its group, Done to ff02::2."""
    assert v2((TO_EX, G1)).icmp_type == MLD2_REPORT and v2((TO_EX, G1)).dst == ALL_MLDV2_ROUTERS
    assert v1(TO_EX, G1).icmp_type == MLD_REPORT and v1(TO_EX, G1).dst == G1
    assert v1(IS_EX, G1).icmp_type == MLD_REPORT and v1(IS_EX, G1).dst == G1
    assert v1(TO_IN, G1).icmp_type == MLD_DONE and v1(TO_IN, G1).dst == ALL_ROUTERS


# --- State Change Reports (§6.1) --------------------------------------------------------------------
def test_join_reports_at_once_and_retransmits_robustness_minus_one_times() -> None:
    rig = make_rig(ScriptedRng(0.25))
    assert rig.host.join(G1, 10.0) == 0
    assert rig.take() == [v2((TO_EX, G1))]                  # at once, before any poll
    assert rig.host.poll_at() == 10.25 and 10.25 in rig.kicks    # within [0, URI 1 s]
    rig.host.poll(10.2)
    assert rig.take() == []
    rig.host.poll(10.25)
    assert rig.take() == [v2((TO_EX, G1))]                  # RV 2: one more, then done
    assert rig.host.poll_at() is None and rig.host.pending_changes == 0
    assert rig.host.stats.joins == 1 and rig.host.stats.records_to_exclude_sent == 2
    assert rig.host.stats.reports_v2_sent == 2
    assert rig.host.is_member(G1) and rig.host.refs(G1) == 1


def test_retransmission_intervals_are_random_within_the_unsolicited_report_interval() -> None:
    rng = ScriptedRng(0.9, 0.1, 0.6)
    rig = make_rig(rng, robustness=4)
    rig.host.join(G1, 0.0)
    times = []
    while (at := rig.host.poll_at()) is not None:
        rig.host.poll(at)
        times.append(at)
    assert times == [0.9, 1.0, 1.6]                          # RV 4: three retransmissions
    assert rng.drawn == [(0.0, 1.0)] * 3
    assert [r.records for r in rig.take()] == [((TO_EX, G1),)] * 4


def test_leave_reports_change_to_include_and_retransmits() -> None:
    rig = make_rig(ScriptedRng(0.5))
    now = joined(rig, G1)
    assert rig.host.leave(G1, now) == 0
    assert rig.take() == [v2((TO_IN, G1))] and not rig.host.is_member(G1)
    rig.host.poll(now + 0.5)
    assert rig.take() == [v2((TO_IN, G1))] and rig.host.poll_at() is None
    assert rig.host.stats.leaves == 1 and rig.host.stats.records_to_include_sent == 2


def test_pending_changes_of_several_groups_share_a_report() -> None:
    """Like Linux's interface change timer: one retransmission carries every pending change."""
    rig = make_rig(ScriptedRng(0.5), robustness=3)
    rig.host.join(G1, 0.0)
    rig.host.join(G2, 0.2)
    assert rig.take() == [v2((TO_EX, G1)), v2((TO_EX, G2))]
    assert rig.host.poll_at() == 0.5                        # armed by the first, not moved
    rig.host.poll(0.5)
    assert rig.take() == [v2((TO_EX, G1), (TO_EX, G2))]
    rig.host.poll(1.0)
    assert rig.take() == [v2((TO_EX, G1), (TO_EX, G2))]
    assert rig.host.poll_at() is None


def test_a_leave_replaces_the_pending_join_retransmissions() -> None:
    """§6.1: a new change of the group is sent at once and its record replaces the old one."""
    rig = make_rig(ScriptedRng(0.5), robustness=3)
    rig.host.join(G1, 0.0)
    rig.host.leave(G1, 0.1)
    assert rig.take() == [v2((TO_EX, G1)), v2((TO_IN, G1))]
    rig.drain(0.1, 10.0)
    assert rig.take() == [v2((TO_IN, G1))] * 2              # RV - 1 of the leave; no TO_EX
    assert rig.host.pending_changes == 0


def test_a_rejoin_replaces_the_pending_leave_retransmissions() -> None:
    rig = make_rig(ScriptedRng(0.5))
    now = joined(rig, G1)
    rig.host.leave(G1, now)
    rig.host.join(G1, now + 0.1)
    assert rig.take() == [v2((TO_IN, G1)), v2((TO_EX, G1))]
    rig.drain(now, now + 10.0)
    assert rig.take() == [v2((TO_EX, G1))] and rig.host.is_member(G1)


def test_reference_counting_one_membership_until_the_last_leave() -> None:
    rig = make_rig()
    assert rig.host.join(G1, 0.0) == 0 and rig.host.join(G1, 0.0) == 0
    assert rig.take() == [v2((TO_EX, G1))] and rig.host.refs(G1) == 2     # one report
    now = rig.drain(0.0, 10.0)
    rig.take()
    assert rig.host.leave(G1, now) == 0
    assert rig.take() == [] and rig.host.is_member(G1) and rig.host.refs(G1) == 1
    assert rig.host.leave(G1, now) == 0
    assert rig.take() == [v2((TO_IN, G1))] and not rig.host.is_member(G1)
    assert rig.host.leave(G1, now) == errno.EADDRNOTAVAIL                 # as Linux
    s = rig.host.stats
    assert (s.joins, s.join_refs, s.leaves, s.leave_refs, s.leaves_unknown) == (1, 1, 1, 1, 1)


def test_join_of_a_unicast_address_is_refused() -> None:
    rig = make_rig()
    assert rig.host.join(UNICAST, 0.0) == errno.EINVAL
    assert rig.take() == [] and not rig.host.is_member(UNICAST) and rig.host.stats.joins_invalid == 1


def test_all_nodes_and_interface_local_groups_are_never_reported() -> None:
    rig = make_rig()
    for group in (ALL_NODES, IFACE_LOCAL, SCOPE_0):
        assert rig.host.join(group, 0.0) == 0 and rig.host.is_member(group)
    assert rig.take() == [] and rig.host.poll_at() is None
    rig.host.input_query_v2(ALL_NODES, 1.0, 1.0)            # a specific query for it: no answer
    assert rig.host.stats.queries_not_member == 1 and rig.host.poll_at() is None
    rig.host.input_query_v2(0, 1.0, 1.0)                    # a General Query: nothing to list
    rig.drain(1.0, 100.0)
    rig.host.announce(100.0)
    for group in (ALL_NODES, IFACE_LOCAL, SCOPE_0):
        assert rig.host.leave(group, 100.0) == 0
    assert rig.take() == [] and rig.host.stats.reports_v2_sent == 0


def test_solicited_node_and_other_link_local_groups_are_reported() -> None:
    rig = make_rig()
    rig.host.join(ALL_NODES, 0.0)
    rig.host.join(SNMA, 0.0)
    rig.host.join(G3, 0.0)
    assert rig.take() == [v2((TO_EX, SNMA)), v2((TO_EX, G3))]
    now = rig.drain(0.0, 10.0)
    rig.take()
    rig.host.input_query_v2(0, 1.0, now)
    rig.drain(now, now + 10.0)
    assert rig.take() == [v2((IS_EX, SNMA), (IS_EX, G3))]   # all-nodes left out


# --- queries (§6.2) ----------------------------------------------------------------------------------
def test_general_query_gets_one_current_state_report_after_a_random_delay() -> None:
    rng = ScriptedRng(0.5)
    rig = make_rig(rng)
    now = joined(rig, G1, G2)
    rng.fractions, rng.drawn = [0.3], []
    rig.host.input_query_v2(0, 10.0, now)
    assert rng.drawn == [(0.0, 10.0)]                       # [0, Maximum Response Delay]
    assert rig.host.poll_at() == now + 3.0 and now + 3.0 in rig.kicks
    rig.host.poll(now + 2.9)
    assert rig.take() == []
    rig.host.poll(now + 3.0)
    assert rig.take() == [v2((IS_EX, G1), (IS_EX, G2))] and rig.host.poll_at() is None
    assert rig.host.stats.queries_v2_general == 1 and rig.host.stats.records_is_exclude_sent == 2


def test_a_pending_general_response_is_never_rescheduled_later() -> None:
    """§6.2 rule 1: a sooner pending response stands; rule 2: a sooner new one replaces it."""
    rng = ScriptedRng(0.5)
    rig = make_rig(rng)
    now = joined(rig, G1)
    rng.fractions = [0.3, 0.9, 0.1]
    rig.host.input_query_v2(0, 10.0, now)                    # due now + 3
    rig.host.input_query_v2(0, 10.0, now + 1.0)              # would be now + 10: ignored
    assert rig.host.general_at == now + 3.0 and rig.host.stats.queries_covered == 1
    rig.host.input_query_v2(0, 10.0, now + 1.0)              # now + 2: sooner, replaces it
    assert rig.host.general_at == now + 2.0 and rig.host.poll_at() == now + 2.0
    rig.drain(now, now + 20.0)
    assert rig.take() == [v2((IS_EX, G1))]                   # one answer, not two


def test_group_specific_query_answers_for_that_group_only() -> None:
    rng = ScriptedRng(0.5)
    rig = make_rig(rng)
    now = joined(rig, G1, G2)
    rng.fractions = [0.5]
    rig.host.input_query_v2(G2, 1.0, now)
    assert rig.host.poll_at() == now + 0.5
    rig.host.poll(now + 0.5)
    assert rig.take() == [v2((IS_EX, G2))] and rig.host.poll_at() is None
    assert rig.host.stats.queries_v2_group == 1


def test_group_specific_query_keeps_the_earliest_pending_response() -> None:
    """§6.2 rule 4: the earlier of the pending report and the new delay."""
    rng = ScriptedRng(0.5)
    rig = make_rig(rng)
    now = joined(rig, G1)
    rng.fractions = [0.5, 0.9, 0.1]
    rig.host.input_query_v2(G1, 4.0, now)                    # now + 2
    rig.host.input_query_v2(G1, 4.0, now)                    # now + 3.6: keeps now + 2
    assert rig.host.poll_at() == now + 2.0 and rig.host.stats.queries_covered == 1
    rig.host.input_query_v2(G1, 4.0, now)                    # now + 0.4: sooner
    assert rig.host.poll_at() == now + 0.4
    rig.drain(now, now + 10.0)
    assert rig.take() == [v2((IS_EX, G1))]                   # once


def test_group_query_is_covered_by_a_sooner_general_response() -> None:
    """§6.2 rule 1: the general response lists the group anyway."""
    rng = ScriptedRng(0.5)
    rig = make_rig(rng)
    now = joined(rig, G1, G2)
    rng.fractions = [0.1, 0.5]
    rig.host.input_query_v2(0, 10.0, now)                    # now + 1
    rig.host.input_query_v2(G1, 10.0, now)                   # now + 5: covered
    assert rig.host.stats.queries_covered == 1
    rig.drain(now, now + 20.0)
    assert rig.take() == [v2((IS_EX, G1), (IS_EX, G2))]


def test_queries_for_groups_we_are_not_in_are_counted_and_ignored() -> None:
    rig = make_rig()
    now = joined(rig, G1)
    rig.host.input_query_v2(G2, 1.0, now)
    rig.host.input_query_v1(G2, 1.0, now)
    assert rig.host.stats.queries_not_member == 2
    rig.drain(now, now + 1000.0)
    assert rig.take() == []


def test_source_specific_query_is_answered_as_group_specific() -> None:
    """No source lists here: MODE_IS_EXCLUDE {} (every source) for the group."""
    rig = make_rig(ScriptedRng(0.5))
    now = joined(rig, G1)
    rig.host.input_query_v2(G1, 2.0, now, source_specific=True)
    rig.drain(now, now + 10.0)
    assert rig.take() == [v2((IS_EX, G1))] and rig.host.stats.queries_v2_group_source == 1


def test_zero_response_delay_answers_one_tick_later() -> None:
    """A deadline is armed strictly after now (protocols/timing.py)."""
    rig = make_rig(ScriptedRng(0.0))
    now = joined(rig, G1)
    rig.host.input_query_v2(0, 0.0, now)
    assert rig.host.poll_at() == now + TICK
    rig.host.input_query_v2(0, float("nan"), now)            # a broken decoder's NaN: as 0
    rig.host.poll(now + TICK)
    assert rig.take() == [v2((IS_EX, G1))]


def test_qrv_and_qqic_update_robustness_and_query_interval_within_bounds() -> None:
    rig = make_rig(ScriptedRng(0.5))
    h = rig.host
    h.input_query_v2(0, 20.0, 0.0, qrv=5, qqi=60.0)
    assert (h.robustness, h.query_interval, h.query_response_interval) == (5, 60.0, 20.0)
    h.input_query_v2(0, 20.0, 0.0, qrv=0, qqi=0.0)           # 0: no value, keep ours
    assert (h.robustness, h.query_interval) == (5, 60.0)
    h.input_query_v2(0, 20.0, 0.0, qrv=1, qqi=0.1)           # below the floors: clamped
    assert (h.robustness, h.query_interval) == (2, 1.0)
    h.input_query_v2(0, 20.0, 0.0, qrv=9, qqi=1e12)
    assert (h.robustness, h.query_interval) == (7, MAX_QUERY_INTERVAL)
    h.input_query_v2(G1, 1.0, 0.0)                           # a specific query's MRD is not QRI
    assert h.query_response_interval == 20.0
    assert h.stats.qrv_clamped == 1 and h.stats.qqi_clamped == 2
    h.input_query_v2(0, 20.0, 0.0, qrv=3)
    rig.drain(0.0, 100.0)
    rig.take()
    h.join(G1, 100.0)
    rig.drain(100.0, 200.0)
    assert rig.take() == [v2((TO_EX, G1))] * 3               # the learnt RV 3: two retransmissions


# --- MLDv1 compatibility (§8, RFC 2710) ----------------------------------------------------------------
def test_v1_query_enters_compatibility_mode_for_the_older_querier_timeout() -> None:
    rng = ScriptedRng(0.5)
    rig = make_rig(rng)
    joined(rig, G1, G2)
    rng.fractions = [0.2, 0.6]
    rig.host.input_query_v1(0, 10.0, 100.0)
    assert rig.host.v1_mode and rig.host.version == 1 and rig.host.stats.v1_mode_entered == 1
    assert rig.host.v1_until == 100.0 + 2 * 125.0 + 10.0       # §9.12: RV * QI + QRI
    assert rig.host.poll_at() == 102.0                       # each group its own timer
    assert rig.kicks[-1] == 102.0                            # the owner told of the earliest
    rig.host.poll(102.0)
    assert rig.take() == [v1(IS_EX, G1)]
    rig.host.poll(106.0)
    assert rig.take() == [v1(IS_EX, G2)] and rig.host.stats.reports_v1_sent == 2
    rig.host.join(G3, 110.0)                                 # a join in v1 mode: a v1 Report
    assert rig.take() == [v1(TO_EX, G3)] and rig.take() == []
    assert rig.host.poll_at() == 110.0 + 0.6 * 10.0          # RFC 2710 §7.10: URI 10 s
    rig.host.poll(116.0)
    assert rig.take() == [v1(TO_EX, G3)]
    rig.host.leave(G1, 120.0)                                # we reported last: a Done
    assert rig.take() == [v1(TO_IN, G1)]
    assert rig.host.stats.dones_v1_sent == 1
    assert rig.host.poll_at() == 360.0
    rig.host.poll(360.0)
    assert not rig.host.v1_mode and rig.host.version == 2 and rig.host.stats.v1_mode_expired == 1
    assert rig.host.poll_at() is None and rig.take() == []
    rig.host.leave(G2, 400.0)                                # back to MLDv2 reports
    assert rig.take() == [v2((TO_IN, G2))]


def test_another_v1_query_extends_compatibility_mode() -> None:
    rig = make_rig()
    rig.host.input_query_v1(0, 1.0, 0.0)
    rig.host.input_query_v1(0, 1.0, 200.0)
    assert rig.host.v1_until == 460.0 and rig.host.stats.v1_mode_entered == 1
    rig.host.poll(260.0)
    assert rig.host.v1_mode


def test_entering_v1_mode_cancels_pending_v2_responses_and_retransmissions() -> None:
    """§8.2.1: "a host must cancel all pending response and retransmission timers"."""
    rng = ScriptedRng(0.5)
    rig = make_rig(rng, robustness=3)
    now = joined(rig, G1)
    rig.host.input_query_v2(0, 10.0, now)
    rig.host.input_query_v2(G1, 10.0, now)
    rig.host.join(G2, now)
    rig.host.leave(G1, now)
    rig.take()
    rig.host.input_query_v1(G2, 0.0, now + 0.001)            # ask for G2 only
    assert rig.host.general_at is None and rig.host.change_at is None
    assert rig.host.pending_changes == 0
    rig.drain(now, now + 1000.0)
    assert rig.take() == [v1(IS_EX, G2)]                     # nothing of MLDv2 left


def test_leaving_v1_mode_cancels_pending_v1_responses_and_retransmissions() -> None:
    """§8.2.1: "whenever" the mode changes -- back to MLDv2 as well."""
    rig = make_rig(ScriptedRng(0.5))
    now = joined(rig, G1)
    rig.host.input_query_v1(0, 1000.0, now)                  # G1 answers at now + 500
    rig.host.poll(now + 259.0)
    rig.host.join(G2, now + 259.0)                           # its retransmission at + 5 s
    assert rig.take() == [v1(TO_EX, G2)]
    rig.host.poll(now + 260.0)                               # the mode ends first
    assert not rig.host.v1_mode and rig.host.pending_changes == 0
    assert rig.host.poll_at() is None and rig.take() == []


def test_v2_queries_in_v1_mode_are_answered_the_v1_way() -> None:
    rig = make_rig(ScriptedRng(0.5))
    now = joined(rig, G1)
    rig.host.input_query_v1(G1, 0.0, now)
    rig.drain(now, now + 1.0)
    rig.take()
    rig.host.input_query_v2(0, 2.0, now + 2.0, qrv=6, qqi=30.0)
    assert rig.host.robustness == 2 and rig.host.query_interval == 125.0    # not learnt
    rig.drain(now + 2.0, now + 10.0)
    assert rig.take() == [v1(IS_EX, G1)]


def test_a_v1_report_of_another_host_suppresses_ours_and_the_done() -> None:
    """RFC 2710 §4: our pending Report is cancelled; the leave then sends no Done."""
    rig = make_rig(ScriptedRng(0.5))
    now = joined(rig, G1, G2)
    rig.host.input_query_v1(0, 10.0, now)
    rig.host.input_v1_report(G1, now + 1.0)
    assert rig.host.stats.v1_reports_suppressed == 1
    rig.drain(now, now + 10.0)
    assert rig.take() == [v1(IS_EX, G2)]
    rig.host.leave(G1, now + 10.0)
    rig.host.leave(G2, now + 10.0)
    assert rig.take() == [v1(TO_IN, G2)] and rig.host.stats.dones_v1_skipped == 1


def test_a_v1_report_heard_in_v2_mode_changes_nothing() -> None:
    rig = make_rig(ScriptedRng(0.5))
    now = joined(rig, G1)
    rig.host.input_query_v2(G1, 2.0, now)
    rig.host.input_v1_report(G1, now)
    rig.drain(now, now + 10.0)
    assert rig.take() == [v2((IS_EX, G1))] and rig.host.stats.v1_reports_heard == 1


def test_a_suppressed_response_rescheduled_later_fires_at_its_new_time() -> None:
    """A cancelled response leaves no heap item that fires at the old time."""
    rng = ScriptedRng(0.1)
    rig = make_rig(rng)
    now = joined(rig, G1)
    rig.host.input_query_v1(G1, 10.0, now)                   # now + 1
    rig.host.input_v1_report(G1, now)                        # cancelled
    rng.fractions = [0.8]
    rig.host.input_query_v1(G1, 10.0, now)                   # now + 8
    assert rig.host.poll_at() == now + 8.0
    rig.host.poll(now + 1.0)
    assert rig.take() == []
    rig.host.poll(now + 8.0)
    assert rig.take() == [v1(IS_EX, G1)]


# --- report size and bounds ----------------------------------------------------------------------------
def test_records_are_split_over_several_reports() -> None:
    rig = make_rig(ScriptedRng(0.5), max_records_per_report=3)
    groups = [G1 + i for i in range(7)]
    now = joined(rig, *groups)
    assert rig.host.stats.reports_split == 2                 # the joins' merged retransmission
    rig.host.input_query_v2(0, 1.0, now)
    rig.drain(now, now + 10.0)
    reports = rig.take()
    assert [len(r.records) for r in reports] == [3, 3, 1]
    assert [g for r in reports for _, g in r.records] == groups
    assert rig.host.stats.reports_split == 4


def test_default_split_follows_the_mtu() -> None:
    rig = make_rig(ScriptedRng(0.5))
    now = joined(rig, *(G1 + i for i in range(100)))
    rig.host.input_query_v2(0, 1.0, now)
    rig.drain(now, now + 10.0)
    assert [len(r.records) for r in rig.take()] == [61, 39]
    rig.host.set_link_mtu(1500)
    rig.host.input_query_v2(0, 1.0, now + 10.0)
    rig.drain(now, now + 20.0)
    assert [len(r.records) for r in rig.take()] == [72, 28]


def test_groups_beyond_the_bound_are_refused_with_enobufs() -> None:
    rig = make_rig(max_groups=4)
    for i in range(4):
        assert rig.host.join(G1 + i, 0.0) == 0
    assert rig.host.join(G1 + 9, 0.0) == errno.ENOBUFS
    assert rig.host.join(G1, 0.0) == 0                       # another reference is no new group
    assert rig.host.stats.joins_refused == 1 and not rig.host.is_member(G1 + 9)
    rig.host.leave(G1 + 3, 0.0)
    assert rig.host.join(G1 + 9, 0.0) == 0


def test_pending_leave_retransmissions_are_bounded() -> None:
    """Join/leave churn cannot grow the retransmission list beyond max_groups leaves."""
    rig = make_rig(ScriptedRng(0.5), max_groups=2, robustness=7)
    for i in range(10):
        rig.host.join(G1 + i, 0.0)
        rig.host.leave(G1 + i, 0.0)
    assert rig.host.pending_changes == 2 and rig.host.stats.changes_dropped == 8
    assert len(rig.take()) == 20                             # every first report went out
    rig.drain(0.0, 100.0)
    assert groups_in(rig.take()) == {G1 + 8, G1 + 9}         # the newest two retransmitted


def test_announce_reports_every_group_again() -> None:
    rig = make_rig(ScriptedRng(0.5))
    now = joined(rig, ALL_NODES, SNMA, G1)
    rig.host.announce(now)
    assert rig.take() == [v2((TO_EX, SNMA), (TO_EX, G1))]
    rig.drain(now, now + 10.0)
    assert rig.take() == [v2((TO_EX, SNMA), (TO_EX, G1))]


def test_flush_forgets_everything_silently() -> None:
    rig = make_rig()
    now = joined(rig, G1)
    rig.host.input_query_v2(0, 1.0, now)
    rig.host.join(G2, now)
    rig.host.input_query_v1(G1, 1.0, now)
    rig.take()
    rig.host.flush()
    assert rig.host.poll_at() is None and not rig.host.is_member(G1) and not rig.host.v1_mode
    rig.host.poll(now + 1000.0)
    assert rig.take() == []


# --- the TICK rule: every poll makes progress (protocols/timing.py) -------------------------------------
GROUPS = [G1, G2, G3, SNMA, ALL_NODES, IFACE_LOCAL, G1 + 1, G1 + 2]
OPS = st.lists(st.tuples(st.sampled_from(["join", "leave", "q2", "q2g", "q1", "q1g", "v1r", "poll", "announce"]),
                         st.integers(0, len(GROUPS) - 1), st.floats(0.0, 30.0, allow_nan=False),
                         st.floats(0.0, 20.0, allow_nan=False)), max_size=50)


def check_invariants(h: MldHost, rig: Rig) -> None:
    assert len(h.groups) <= h.config.max_groups
    assert h.pending_changes <= 2 * h.config.max_groups
    assert len(h._heap) <= 2 * len(h.groups) + 65
    leaving = [g for g, c in h._changes.items() if c.record_type == TO_IN]
    assert h._leaving == len(leaving) <= h.config.max_groups
    assert not any(g in h.groups for g in leaving)          # a leave pending is no member
    assert all(g in h.groups for g, c in h._changes.items() if c.record_type == TO_EX)
    assert all(c.left >= 1 for c in h._changes.values())
    for m in h.groups.values():
        assert m.respond_at == m.heap_at                     # a live response has its heap item
    for report in rig.take():
        assert all(reportable(g) for _, g in report.records)          # §6, whatever happened
        assert 1 <= len(report.records) <= h.max_records
        assert report.version == 1 or report.version == 2
        assert report.version == 2 or len(report.records) == 1


class CyclingRng(random.Random):
    """uniform() walks a list of fractions round and round: the edges 0 and 1 come up."""

    def __init__(self, fractions: list[float]) -> None:
        super().__init__(0)
        self.fractions, self.i = fractions, 0

    def uniform(self, a: float, b: float) -> float:
        self.i += 1
        return a + self.fractions[self.i % len(self.fractions)] * (b - a)


FRACTIONS = st.lists(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 1.0), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(t0=st.floats(0.0, 1e7, allow_nan=False), ops=OPS, fractions=FRACTIONS, robustness=st.integers(1, 7))
def test_timer_loop_always_makes_progress(t0: float, ops: list[tuple[str, int, float, float]],
                                          fractions: list[float], robustness: int) -> None:
    """Whatever happened and whatever the float times and random draws, poll(poll_at())
    leaves poll_at() None or later than now, and with no more input every timer ends in
    bounded polls."""
    rig = make_rig(CyclingRng(fractions), max_groups=5, robustness=robustness, max_records_per_report=2)
    h = rig.host
    now = t0
    for op, n, gap, delay in ops:
        now += gap
        group = GROUPS[n]
        if op == "join":
            h.join(group, now)
        elif op == "leave":
            h.leave(group, now)
        elif op == "q2":
            h.input_query_v2(0, delay, now, qrv=n, qqi=delay * 10)
        elif op == "q2g":
            h.input_query_v2(group, delay, now, source_specific=n % 2 == 1)
        elif op == "q1":
            h.input_query_v1(0, delay, now)
        elif op == "q1g":
            h.input_query_v1(group, delay, now)
        elif op == "v1r":
            h.input_v1_report(group, now)
        elif op == "announce":
            h.announce(now)
        else:
            at = h.poll_at()
            if at is not None:
                now = max(now, at)
                h.poll(now)
                nxt = h.poll_at()
                assert nxt is None or nxt > now
        check_invariants(h, rig)
    polls = 0
    while (at := h.poll_at()) is not None:
        assert not math.isinf(at)
        now = max(now, at)
        h.poll(now)
        polls += 1
        nxt = h.poll_at()
        assert nxt is None or nxt > now
        check_invariants(h, rig)
        # the v1 mode end, the general response, 6 retransmissions, one response per group
        assert polls <= 1 + 1 + 6 + len(GROUPS) + 2
    assert h.pending_changes == 0 and not h.v1_mode
