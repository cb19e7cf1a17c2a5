"""MLDv2 (RFC 3810) host side for one interface, as a sans-IO timed core: the joined groups,
the reports that announce them, the answers to queries -- so bridges and snooping switches
deliver our multicast (the solicited-node groups above all: without them a snooping switch
drops the NS meant for us) -- and MLDv1 (RFC 2710) compatibility mode (§8).

The core never builds a packet.  Its owner gives it one callable:
  send_report(MldReport)    build and send one message: for version 2 a Multicast Listener
                            Report (ICMPv6 type 143) with the records in order, to ff02::16;
                            for version 1 one Report (131) to the group or one Done (132) to
                            ff02::2 -- `MldReport.icmp_type` and `.dst` say which.
                            Every MLD message goes with hop limit 1, a hop-by-hop Router Alert
                            (RFC 2711, value 0) and a link-local source, or :: while the
                            interface has none yet (§5.2.13).
and calls `join(group, now)` / `leave(group, now)` for every membership reference (a socket's
IPV6_JOIN_GROUP, the solicited-node group of each address, all-nodes), `input_query_v2` /
`input_query_v1` with the decoded fields of validated queries (the owner checks a link-local
source, §5.1.14, hop limit 1 and the Router Alert, §5; and decodes the Maximum Response Code
(§5.1.3) and QQIC (§5.1.9) into seconds), and `input_v1_report` for MLDv1 Reports heard from
other hosts.  The timers follow the TimedCore contract (protocols/contracts.py): `poll_at()`,
`poll(now)`, `kick`; every deadline is armed strictly after `now` (protocols/timing.py).

Filter modes: this host only does any-source joins, EXCLUDE {} (what IPV6_JOIN_GROUP and the
solicited-node groups need).  Source-specific filters (MCAST_JOIN_SOURCE_GROUP, RFC 3678; the
INCLUDE mode, ALLOW/BLOCK records) are out of scope: every record carries no sources, and a
Multicast Address and Source Specific Query is answered as a Multicast Address Specific one,
MODE_IS_EXCLUDE {} -- "every source", a superset of the IS_IN(queried sources) §6.3 would
give, so the router keeps forwarding what we want.

Timers: one interface timer for the pending General Query response (§6.2 rule 2), one for the
State Change Report retransmissions (§6.1, every pending change goes in the same report, as
Linux's mc_ifc timer does), one for the end of MLDv1 compatibility mode (§8.2.1), and a heap
of per-group response timers (Multicast Address Specific Queries, and every group's response
to an MLDv1 query).

Bounds: max_groups memberships per interface (256; a join beyond fails with ENOBUFS, counted
in joins_refused), as many leaves still being retransmitted (the oldest is given up beyond,
changes_dropped), the timer heap rebuilt past 2 x groups + 64 items.  A query costs O(log n),
except an MLDv1 General Query, which arms one timer per group as RFC 2710 §4 wants: O(n log n)
for n <= max_groups.  What a query may set is clamped (RV 2..7, QI 1..31744 s, response
delays to the largest the Maximum Response Code encodes).

References are the owner's to count per socket; the core counts them per group, so two
addresses sharing a solicited-node group (the same low 24 bits) are one membership, ended by
the last leave.

Addresses are 128-bit ints.
"""
from __future__ import annotations

import errno
import heapq
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ndd.counters import Counters

from ..icmpv6.mld import (
    CHANGE_TO_EXCLUDE_MODE,
    CHANGE_TO_INCLUDE_MODE,
    MLDV2_REPORT_MIN_LENGTH,
    MODE_IS_EXCLUDE,
    REPORT_HBH_LEN,
)
from ..icmpv6.wire import MLD2_REPORT, MLD_DONE, MLD_REPORT
from ..timing import TICK
from .addr import ALL_MLDV2_ROUTERS, ALL_NODES, ALL_ROUTERS, is_multicast, multicast_scope
from .wire import HDR_LEN

# The record types (RFC 3810 §5.2.12) and message types (§5, RFC 2710 §3) are the codec's
# (protocols/icmpv6): MODE_IS_EXCLUDE answers a query, CHANGE_TO_EXCLUDE_MODE is a join,
# CHANGE_TO_INCLUDE_MODE a leave.

# Report size (§5.2.15: records that do not fit go in further reports).  An IPv6 header (40),
# the hop-by-hop header carrying the Router Alert (8), the report's ICMPv6 header with its
# record count (8), then 20 octets per record without sources: 61 records in 1280 octets,
# IPv6's minimum MTU (RFC 8200 §5).
RECORD_NO_SOURCES = 20   # a Multicast Address Record without sources (§5.2.4)


def records_per_report(mtu: int) -> int:
    """How many source-less records one report carries on a link of this MTU (at least 1:
    below 1280 the link is not IPv6's, and one record always fits in 76 octets)."""
    room = mtu - HDR_LEN - REPORT_HBH_LEN - MLDV2_REPORT_MIN_LENGTH
    return max(1, room // RECORD_NO_SOURCES)


DEFAULT_RECORDS_PER_REPORT = records_per_report(1280)   # 61


def reportable(group: int) -> bool:
    """RFC 3810 §6: no MLD message is ever sent about ff02::1 (all-nodes) nor about a group of
    scope 0 (reserved) or 1 (interface-local).  Every other link-local group IS reported: the
    solicited-node groups must be, so snooping switches deliver Neighbor Solicitations to us."""
    return group != ALL_NODES and multicast_scope(group) > 1


@dataclass
class MldConfig:
    # RFC 3810 §9 defaults (Linux's too)
    robustness: int = 2                     # §9.1 [Robustness Variable]; a query's QRV updates it
    query_interval: float = 125.0           # §9.2 [Query Interval]; a query's QQIC updates it
    query_response_interval: float = 10.0   # §9.3; a General Query's Maximum Response Delay updates it
    unsolicited_report_interval: float = 1.0     # §9.11
    # RFC 2710 §7.10: MLDv1's Unsolicited Report Interval, 10 s, used in MLDv1 compatibility
    # mode (Linux's mld_v1_unsolicited_report_interval)
    v1_unsolicited_report_interval: float = 10.0
    # Groups this interface may be a member of, all-nodes and solicited-node groups included.
    # Linux bounds memberships per socket (net.core.optmem_max; IPv4's igmp_max_memberships,
    # 20) rather than per interface; one bound per interface keeps the table, the reports and
    # the work an MLDv1 General Query makes (one timer per group) bounded whatever sockets do.
    # A join beyond it fails with ENOBUFS, as IPv4's IP_ADD_MEMBERSHIP beyond its bound.
    max_groups: int = 256
    # records per report: DEFAULT_RECORDS_PER_REPORT for 1280-octet packets; set_link_mtu()
    max_records_per_report: int = DEFAULT_RECORDS_PER_REPORT


# Sane bounds for what a query may set.  QRV is a 3-bit field (§5.1.8); 0 (the querier's RV
# does not fit in it) is ignored, and below 2 Linux clamps to 2 (§9.1: MUST NOT be zero, SHOULD NOT
# be one).  The Query Interval's floor keeps a spoofed tiny QQIC from making the MLDv1
# compatibility timeout a moment; its ceiling is the largest QQIC encodes (§5.1.9).
MIN_ROBUSTNESS = 2
MAX_ROBUSTNESS = 7
MIN_QUERY_INTERVAL = 1.0
MAX_QUERY_INTERVAL = 31744.0
MAX_RESPONSE_DELAY = 8387.584               # the largest Maximum Response Code (§5.1.3), in s


@dataclass
class MldHostStats(Counters):
    joins: int = 0                  # memberships started (first reference to a group)
    join_refs: int = 0              # further references to a group already joined
    joins_refused: int = 0          # a new group beyond max_groups: ENOBUFS
    joins_invalid: int = 0          # not a multicast address: EINVAL
    leaves: int = 0                 # memberships ended (last reference dropped)
    leave_refs: int = 0             # references dropped with others left
    leaves_unknown: int = 0         # leave of a group not joined: EADDRNOTAVAIL
    reports_v2_sent: int = 0        # MLDv2 Report messages
    records_is_exclude_sent: int = 0       # MODE_IS_EXCLUDE records (answers to queries)
    records_to_exclude_sent: int = 0       # CHANGE_TO_EXCLUDE_MODE records (joins)
    records_to_include_sent: int = 0       # CHANGE_TO_INCLUDE_MODE records (leaves)
    reports_split: int = 0          # extra messages because the records did not fit in one
    reports_v1_sent: int = 0        # MLDv1 Reports (compatibility mode)
    dones_v1_sent: int = 0          # MLDv1 Done messages
    dones_v1_skipped: int = 0       # leaves in MLDv1 mode where another host reported last (RFC 2710 §4)
    queries_v2_general: int = 0
    queries_v2_group: int = 0       # Multicast Address Specific
    queries_v2_group_source: int = 0       # Multicast Address and Source Specific, answered as group
    queries_v1_general: int = 0
    queries_v1_group: int = 0
    queries_not_member: int = 0     # a specific query for a group we are not in (or never report)
    queries_covered: int = 0        # no new response: a pending one is sooner (§6.2 rules 1, 4)
    v1_reports_heard: int = 0       # MLDv1 Reports of other hosts
    v1_reports_suppressed: int = 0  # ...that cancelled our pending MLDv1 Report (RFC 2710 §4)
    v1_mode_entered: int = 0        # MLDv1 compatibility mode entered (§8.2.1)
    v1_mode_expired: int = 0        # ...and left after the Older Version Querier Present Timeout
    qrv_updates: int = 0            # Robustness Variable changed by a query's QRV
    qrv_clamped: int = 0            # a QRV of 1 raised to 2
    qqi_updates: int = 0            # Query Interval changed by a query's QQIC
    qqi_clamped: int = 0            # a QQI outside [1 s, 31744 s] clamped
    changes_dropped: int = 0        # pending leave retransmissions given up for the bound


@dataclass(frozen=True, slots=True)
class MldReport:
    """One message for the owner to build and send.  `records` are (record type, group)
    pairs without sources; version 1 has exactly one record: CHANGE_TO_INCLUDE_MODE means a
    Done, anything else a Report."""
    version: int
    records: tuple[tuple[int, int], ...]

    @property
    def icmp_type(self) -> int:
        if self.version == 2:
            return MLD2_REPORT
        return MLD_DONE if self.records[0][0] == CHANGE_TO_INCLUDE_MODE else MLD_REPORT

    @property
    def dst(self) -> int:
        """§5.2.14: MLDv2 Reports to all MLDv2-capable routers; RFC 2710 §5: an MLDv1 Report
        to the group itself, a Done to all-routers."""
        icmp_type = self.icmp_type
        if icmp_type == MLD2_REPORT:
            return ALL_MLDV2_ROUTERS
        return ALL_ROUTERS if icmp_type == MLD_DONE else self.records[0][1]


@dataclass(eq=False)
class Membership:
    group: int
    refs: int = 1
    respond_at: float | None = None   # a pending answer to a specific query (or an MLDv1 one)
    heap_at: float | None = None      # the time of this group's live item in the timer heap
    # RFC 2710 §4: we sent the last MLDv1 Report for the group (no other host's since), so a
    # leave in MLDv1 mode sends a Done
    last_reporter: bool = False


@dataclass(eq=False)
class _Change:
    """A State Change Report still to be retransmitted (§6.1)."""
    record_type: int
    left: int


class MldHost:
    """MLD for one interface (a TimedCore)."""

    def __init__(self, *, send_report: Callable[[MldReport], object] | None = None,
                 config: MldConfig | None = None, rng: random.Random | None = None) -> None:
        self.send_report: Callable[[MldReport], object] = send_report or (lambda report: None)
        self.kick: Callable[..., None] = lambda *at: None
        self.config = config or MldConfig()
        self.rng = rng or random.Random()
        self.stats = MldHostStats()
        self.robustness = self.config.robustness
        self.query_interval = self.config.query_interval
        self.query_response_interval = self.config.query_response_interval
        self.max_records = max(1, self.config.max_records_per_report)
        self.groups: dict[int, Membership] = {}
        # §6.1 pending retransmissions, joins and leaves alike, in the order they happened;
        # a group left is only here (no Membership), until its TO_IN retransmissions are done
        self._changes: dict[int, _Change] = {}
        self._leaving = 0                    # entries of _changes whose group is no longer joined
        self.change_at: float | None = None  # the State Change retransmission timer
        self.general_at: float | None = None   # the pending General Query response (§6.2)
        self.v1_until: float | None = None   # MLDv1 compatibility mode ends (§8.2.1, §9.12)
        self._heap: list[tuple[float, int, Membership]] = []
        self._seq = 0

    # --- what the owner asks ---------------------------------------------------------------------
    def join(self, group: int, now: float) -> int:
        """One more reference to `group` (0 or an errno).  The first one starts the membership
        and sends an unsolicited State Change Report at once (§6.1)."""
        if not is_multicast(group):
            self.stats.joins_invalid += 1
            return errno.EINVAL
        member = self.groups.get(group)
        if member is not None:
            member.refs += 1
            self.stats.join_refs += 1
            return 0
        if len(self.groups) >= self.config.max_groups:
            self.stats.joins_refused += 1
            return errno.ENOBUFS
        self.groups[group] = Membership(group)
        self.stats.joins += 1
        if group in self._changes and self._changes[group].record_type == CHANGE_TO_INCLUDE_MODE:
            self._leaving -= 1               # a leave still being retransmitted: superseded
        self._changes.pop(group, None)
        if reportable(group):
            self._state_change(group, CHANGE_TO_EXCLUDE_MODE, now)
        return 0

    def leave(self, group: int, now: float) -> int:
        """One reference less (0 or EADDRNOTAVAIL, as Linux's IPV6_LEAVE_GROUP of a group not
        joined).  The last one ends the membership: a State Change Report (§6.1), or in MLDv1
        mode a Done if we reported last (RFC 2710 §4)."""
        member = self.groups.get(group)
        if member is None:
            self.stats.leaves_unknown += 1
            return errno.EADDRNOTAVAIL
        if member.refs > 1:
            member.refs -= 1
            self.stats.leave_refs += 1
            return 0
        del self.groups[group]               # its heap item, if any, is now stale
        self.stats.leaves += 1
        self._changes.pop(group, None)
        if reportable(group):
            if self.v1_mode:
                if member.last_reporter:
                    self._send(1, [(CHANGE_TO_INCLUDE_MODE, group)])
                else:
                    self.stats.dones_v1_skipped += 1
            else:
                self._state_change(group, CHANGE_TO_INCLUDE_MODE, now)
        return 0

    def is_member(self, group: int) -> bool:
        """Input filtering: does this interface listen to `group`?"""
        return group in self.groups

    def refs(self, group: int) -> int:
        member = self.groups.get(group)
        return member.refs if member is not None else 0

    @property
    def v1_mode(self) -> bool:
        """MLDv1 compatibility mode (§8.2.1): an MLDv1 querier was heard within the Older
        Version Querier Present Timeout.  Its end is a timer (poll)."""
        return self.v1_until is not None

    @property
    def version(self) -> int:
        """The MLD version this interface speaks now: 1 in compatibility mode, else 2."""
        return 1 if self.v1_mode else 2

    @property
    def pending_changes(self) -> int:
        """State Change records still to be retransmitted (joins and leaves)."""
        return len(self._changes)

    def set_link_mtu(self, mtu: int) -> None:
        """Reports are split to fit the link's MTU (§5.2.15)."""
        self.max_records = records_per_report(mtu)

    def announce(self, now: float) -> None:
        """Report every group again as if just joined (§6.1), e.g. when the interface comes up
        or gets its link-local address (§5.2.13): reports sent from :: may have been dropped
        by a switch that wants a link-local source."""
        items = []
        for group in self.groups:
            if reportable(group):
                self._changes.pop(group, None)
                change = self._changes[group] = _Change(CHANGE_TO_EXCLUDE_MODE, self._retransmissions())
                items.append((group, change))
        if items:
            self._send_changes(items, now, first=True)

    def flush(self) -> None:
        """The interface goes away: forget every group and timer, send nothing."""
        self.groups.clear()
        self._changes.clear()
        self._leaving = 0
        self._heap.clear()
        self.change_at = self.general_at = self.v1_until = None

    # --- queries (§6.2, §7; RFC 2710 §4) -----------------------------------------------------------
    def input_query_v2(self, group: int, max_response_delay: float, now: float, *,
                       source_specific: bool = False, qrv: int = 0, qqi: float = 0.0) -> None:
        """A valid MLDv2 Query: `group` 0 for a General Query; `max_response_delay` decoded from
        the Maximum Response Code (§5.1.3) in seconds; `qrv` (0: none) and `qqi` (0: none) from
        the QRV and QQIC fields (§5.1.8, §5.1.9)."""
        if group == 0:
            self.stats.queries_v2_general += 1
        elif source_specific:
            self.stats.queries_v2_group_source += 1
        else:
            self.stats.queries_v2_group += 1
        delay = self._clamp_delay(max_response_delay)
        if self.v1_mode:
            # As Linux (igmp6_event_query): while an MLDv1 querier is present every query is
            # answered the MLDv1 way, and the MLDv2 fields are not learnt from.
            self._v1_query(group, delay, now)
            return
        self._learn_qrv(qrv)
        self._learn_qqi(qqi)
        if group == 0:
            self.query_response_interval = delay    # §9.3: what General Queries carry
        at = self._later(now + self.rng.uniform(0.0, delay), now)
        member = self.groups.get(group)
        if group != 0 and (member is None or not reportable(group)):
            self.stats.queries_not_member += 1
            return
        if self.general_at is not None and self.general_at <= at:
            self.stats.queries_covered += 1         # §6.2 rule 1: a general response comes sooner
            return
        if member is None:
            self.general_at = at                    # §6.2 rule 2: replaces the later one
            self.kick(at)
            return
        self._respond(member, at)                   # §6.2 rules 3 and 4

    def input_query_v1(self, group: int, max_response_delay: float, now: float) -> None:
        """A valid MLDv1 Query (RFC 2710 §3.4, 24 octets; the Maximum Response Delay in ms,
        given in seconds): enter or extend MLDv1 compatibility mode (§8.2.1) and answer as
        RFC 2710 §4 says."""
        if group == 0:
            self.stats.queries_v1_general += 1
        else:
            self.stats.queries_v1_group += 1
        if not self.v1_mode:
            self.stats.v1_mode_entered += 1
            self._cancel_pending()
        # §9.12 Older Version Querier Present Timeout: [RV] * [QI] + [QRI]
        at = self._later(now + self.robustness * self.query_interval + self.query_response_interval, now)
        if self.v1_until is None or at < self.v1_until:
            self.kick(at)
        self.v1_until = at
        self._v1_query(group, self._clamp_delay(max_response_delay), now)

    def input_v1_report(self, group: int, now: float) -> None:
        """Another host's MLDv1 Report for `group`.  In MLDv1 mode it suppresses ours (RFC 2710
        §4: our pending Report is cancelled and a later leave sends no Done).  MLDv2 has no
        report suppression: in MLDv2 mode it is only counted."""
        self.stats.v1_reports_heard += 1
        if not self.v1_mode:
            return
        member = self.groups.get(group)
        if member is None:
            return
        member.last_reporter = False
        if member.respond_at is not None:
            self._cancel_response(member)
            self.stats.v1_reports_suppressed += 1

    def _v1_query(self, group: int, delay: float, now: float) -> None:
        """RFC 2710 §4: every queried group's timer is set to a random delay in [0, MRD],
        reset only if that is sooner than the one running."""
        if group != 0:
            member = self.groups.get(group)
            if member is None or not reportable(group):
                self.stats.queries_not_member += 1
                return
            self._respond(member, self._later(now + self.rng.uniform(0.0, delay), now))
            return
        earliest: float | None = None
        for member in self.groups.values():
            if reportable(member.group):
                at = self._later(now + self.rng.uniform(0.0, delay), now)
                if self._respond(member, at, kick=False) and (earliest is None or at < earliest):
                    earliest = at
        if earliest is not None:
            self.kick(earliest)                     # once for the lot

    def _respond(self, member: Membership, at: float, *, kick: bool = True) -> bool:
        """Schedule the group's answer at `at` unless one is due sooner; True if armed."""
        if member.respond_at is not None and member.respond_at <= at:
            self.stats.queries_covered += 1         # §6.2 rule 4: the earliest of the two
            return False
        member.respond_at = at
        if member.heap_at is None or at < member.heap_at:
            member.heap_at = at
            self._seq += 1
            heapq.heappush(self._heap, (at, self._seq, member))
            if len(self._heap) > 2 * len(self.groups) + 64:
                self._rebuild_heap()
        if kick:
            self.kick(at)
        return True

    def _cancel_pending(self) -> None:
        """§8.2.1: "Whenever a host changes its compatibility mode, it cancels all its pending
        responses and retransmission timers" -- into MLDv1 mode and back out of it."""
        self.general_at = None
        self.change_at = None
        self._changes.clear()
        self._leaving = 0
        for member in self.groups.values():
            self._cancel_response(member)
        self._heap.clear()

    @staticmethod
    def _cancel_response(member: Membership) -> None:
        member.respond_at = None
        member.heap_at = None                       # its heap item, if any, goes stale

    # --- learnt variables (§9.1, §9.2) -------------------------------------------------------------
    def _learn_qrv(self, qrv: int) -> None:
        if qrv <= 0:
            return      # §5.1.8: 0 says the querier's RV exceeds 7; keep ours, as Linux does
        if qrv < MIN_ROBUSTNESS:
            self.stats.qrv_clamped += 1
        qrv = min(max(qrv, MIN_ROBUSTNESS), MAX_ROBUSTNESS)
        if qrv != self.robustness:
            self.robustness = qrv
            self.stats.qrv_updates += 1

    def _learn_qqi(self, qqi: float) -> None:
        if not qqi > 0.0:                           # 0 (or a NaN from a broken decoder): none
            return
        if not MIN_QUERY_INTERVAL <= qqi <= MAX_QUERY_INTERVAL:
            self.stats.qqi_clamped += 1
            qqi = min(max(qqi, MIN_QUERY_INTERVAL), MAX_QUERY_INTERVAL)
        if qqi != self.query_interval:
            self.query_interval = qqi
            self.stats.qqi_updates += 1

    @staticmethod
    def _clamp_delay(delay: float) -> float:
        if not delay > 0.0:
            return 0.0
        return min(delay, MAX_RESPONSE_DELAY)

    # --- timers ----------------------------------------------------------------------------------
    def poll_at(self) -> float | None:
        at = self._heap_top()
        for t in (self.general_at, self.change_at, self.v1_until):
            if t is not None and (at is None or t < at):
                at = t
        return at

    def _heap_top(self) -> float | None:
        # the heap is lazy: items of gone groups, cancelled or superseded responses are skipped
        # (a pending response only moves earlier; cancelling clears heap_at, so a later one
        # is pushed afresh)
        while self._heap:
            at, _, member = self._heap[0]
            if member.heap_at == at and self.groups.get(member.group) is member:
                return at
            heapq.heappop(self._heap)
            if member.heap_at == at:
                member.heap_at = None
        return None

    def poll(self, now: float) -> None:
        if self.v1_until is not None and self.v1_until <= now:
            self.v1_until = None                    # back to MLDv2 (§8.2.1); nothing to send
            self.stats.v1_mode_expired += 1
            self._cancel_pending()
        if self.general_at is not None and self.general_at <= now:
            self.general_at = None
            self._send_current_state([m.group for m in self.groups.values() if reportable(m.group)])
        due = self._due_groups(now)
        if due:
            self._send_current_state(due)
        if self.change_at is not None and self.change_at <= now:
            self.change_at = None
            self._send_changes(list(self._changes.items()), now, first=False)

    def _due_groups(self, now: float) -> list[int]:
        due: list[int] = []
        while self._heap and self._heap[0][0] <= now:
            at, _, member = heapq.heappop(self._heap)
            if member.heap_at != at:
                continue                            # superseded, cancelled or suppressed
            self._cancel_response(member)
            if self.groups.get(member.group) is member:
                due.append(member.group)            # (else: left since)
        return due

    def _later(self, at: float, now: float) -> float:
        """A deadline strictly after `now` (protocols/timing.py): one tick when due at once."""
        if at <= now:
            at = now + TICK
            if at <= now:
                at = math.nextafter(now, math.inf)
        return at

    def _rebuild_heap(self) -> None:
        self._heap = []
        for member in self.groups.values():
            member.heap_at = member.respond_at
            if member.respond_at is not None:
                self._seq += 1
                self._heap.append((member.respond_at, self._seq, member))
        heapq.heapify(self._heap)

    # --- reports ---------------------------------------------------------------------------------
    def _retransmissions(self) -> int:
        return self.robustness - 1

    def _state_change(self, group: int, record_type: int, now: float) -> None:
        """§6.1: a State Change Report now, retransmitted [RV] - 1 more times at random
        intervals in [0, URI]; a newer change of the group replaces its pending one."""
        change = _Change(record_type, self._retransmissions())
        self._changes[group] = change
        if record_type == CHANGE_TO_INCLUDE_MODE:
            self._leaving += 1
            if self._leaving > self.config.max_groups:
                self._drop_oldest_leave()
        self._send_changes([(group, change)], now, first=True)

    def _drop_oldest_leave(self) -> None:
        """Joins and leaves churning faster than the retransmissions end: the oldest leave
        still retransmitted is given up (its first report went out)."""
        for group, change in self._changes.items():
            if change.record_type == CHANGE_TO_INCLUDE_MODE:
                del self._changes[group]
                self._leaving -= 1
                self.stats.changes_dropped += 1
                return

    def _send_changes(self, items: list[tuple[int, _Change]], now: float, *, first: bool) -> None:
        """Send the change records of `items` (a first transmission, or a retransmission that
        uses one of each pending change's [RV] - 1), then arm the retransmission timer."""
        records: list[tuple[int, int]] = []
        for group, change in items:
            records.append((change.record_type, group))
            if not first:
                change.left -= 1
            if change.left <= 0:
                self._forget_change(group)
        self._send(self.version, records)
        if self._changes and self.change_at is None:
            interval = (self.config.v1_unsolicited_report_interval if self.v1_mode
                        else self.config.unsolicited_report_interval)
            self.change_at = self._later(now + self.rng.uniform(0.0, interval), now)
            self.kick(self.change_at)

    def _forget_change(self, group: int) -> None:
        change = self._changes.pop(group, None)
        if change is not None and change.record_type == CHANGE_TO_INCLUDE_MODE:
            self._leaving -= 1

    def _send_current_state(self, groups: Iterable[int]) -> None:
        self._send(self.version, [(MODE_IS_EXCLUDE, group) for group in groups])

    def _send(self, version: int, records: list[tuple[int, int]]) -> None:
        """One message per record in MLDv1, else as many MLDv2 Reports as the records need
        (§5.2.15).  A record of a group we would never report is not sent."""
        records = [r for r in records if reportable(r[1])]
        if not records:
            return
        if version == 1:
            for record_type, group in records:
                if record_type == CHANGE_TO_INCLUDE_MODE:
                    self.stats.dones_v1_sent += 1
                else:
                    self.stats.reports_v1_sent += 1
                    member = self.groups.get(group)
                    if member is not None:
                        member.last_reporter = True
                self.send_report(MldReport(1, ((record_type, group),)))
            return
        step = self.max_records
        for start in range(0, len(records), step):
            chunk = tuple(records[start:start + step])
            self.stats.reports_v2_sent += 1
            if start:
                self.stats.reports_split += 1
            for record_type, _ in chunk:
                self._count_record(record_type)
            self.send_report(MldReport(2, chunk))

    def _count_record(self, record_type: int) -> None:
        if record_type == MODE_IS_EXCLUDE:
            self.stats.records_is_exclude_sent += 1
        elif record_type == CHANGE_TO_EXCLUDE_MODE:
            self.stats.records_to_exclude_sent += 1
        else:
            self.stats.records_to_include_sent += 1

