"""The gateway's flow table: every relayed flow (TCP connection, UDP association, ping
identifier) by its guest-side 5-tuple, bounded, with the UDP idle timeouts (issue 13, "UDP"
and "Limits"), as a sans-IO core with an explicit clock.

  * `max_flows` bounds the table: a new flow beyond it is refused (the caller answers the
    guest with an RST / ICMP) and counted in `refused_full`; existing flows keep working;
  * a UDP flow that has only carried the guest's datagrams expires after `udp_one_way`
    seconds idle (30 s, as conntrack's nf_conntrack_udp_timeout), one that has seen a reply
    after `udp_two_way` (180 s, nf_conntrack_udp_timeout_stream); TCP flows end when their
    relay does (`remove`), pings after `ping_idle`;
  * expiry is a heap of (deadline, key) with lazy deletion: touching a flow is O(1), and the
    heap is rebuilt when stale items outnumber live flows, so it stays O(flows).
"""
from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ndd.counters import Counters

FlowKey = tuple[str, str, int, str, int]     # (proto "tcp"/"udp"/"icmp", guest addr, port, dst addr, port)


@dataclass
class FlowConfig:
    max_flows: int = 4096
    udp_one_way: float = 30.0
    udp_two_way: float = 180.0
    ping_idle: float = 30.0


@dataclass
class FlowStats(Counters):
    opened: int = 0
    closed: int = 0            # removed by their owner (a TCP relay that ended)
    expired: int = 0           # UDP / ping flows idle past their timeout
    refused_full: int = 0      # new flows beyond max_flows
    peak: int = 0              # the most flows open at once (never above max_flows)


@dataclass(eq=False)
class Flow:
    key: FlowKey
    opened: float
    last: float
    replied: bool = False      # a datagram came back: the two-way timeout applies
    deadline: float | None = None
    state: Any = None          # the owner's: the host socket, the relay task's cancel scope, ...
    octets_out: int = 0        # guest -> host
    octets_in: int = 0         # host -> guest


@dataclass
class FlowTable:
    config: FlowConfig = field(default_factory=FlowConfig)
    on_expire: Callable[[Flow], None] = lambda flow: None
    kick: Callable[..., None] = lambda *at: None

    def __post_init__(self) -> None:
        self.stats = FlowStats()
        self.flows: dict[FlowKey, Flow] = {}
        self._heap: list[tuple[float, int, FlowKey]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self.flows)

    def get(self, key: FlowKey) -> Flow | None:
        return self.flows.get(key)

    def open(self, key: FlowKey, now: float, state: Any = None) -> Flow | None:
        """A new flow, or None when the table is full (refused, counted)."""
        if key in self.flows:
            return self.flows[key]
        if len(self.flows) >= self.config.max_flows:
            self.stats.refused_full += 1
            return None
        flow = Flow(key, now, now, state=state)
        self.flows[key] = flow
        self.stats.opened += 1
        self.stats.peak = max(self.stats.peak, len(self.flows))
        self._arm(flow, now)
        return flow

    def outbound(self, flow: Flow, octets: int, now: float) -> None:
        flow.last = now
        flow.octets_out += octets
        self._arm(flow, now)

    def inbound(self, flow: Flow, octets: int, now: float) -> None:
        flow.last = now
        flow.replied = True
        flow.octets_in += octets
        self._arm(flow, now)

    def remove(self, key: FlowKey) -> Flow | None:
        flow = self.flows.pop(key, None)
        if flow is not None:
            self.stats.closed += 1
            flow.deadline = None
        return flow

    def _timeout(self, flow: Flow) -> float | None:
        proto = flow.key[0]
        if proto == "udp":
            return self.config.udp_two_way if flow.replied else self.config.udp_one_way
        if proto == "icmp":
            return self.config.ping_idle
        return None                # TCP: the relay decides

    def _arm(self, flow: Flow, now: float) -> None:
        timeout = self._timeout(flow)
        if timeout is None:
            return
        flow.deadline = now + timeout
        self._seq += 1
        heapq.heappush(self._heap, (flow.deadline, self._seq, flow.key))
        if len(self._heap) > 2 * len(self.flows) + 64:
            self._rebuild()
        self.kick(flow.deadline)

    def _rebuild(self) -> None:
        self._heap = [(f.deadline, i, k) for i, (k, f) in enumerate(self.flows.items()) if f.deadline is not None]
        heapq.heapify(self._heap)

    # --- the TimedCore contract (protocols/contracts.py) ------------------------------------------
    def poll_at(self) -> float | None:
        while self._heap:
            at, _, key = self._heap[0]
            flow = self.flows.get(key)
            if flow is not None and flow.deadline == at:
                return at
            heapq.heappop(self._heap)      # stale: the flow moved on or is gone
        return None

    def poll(self, now: float) -> None:
        while (at := self.poll_at()) is not None and at <= now:
            _, _, key = heapq.heappop(self._heap)
            flow = self.flows.pop(key)
            flow.deadline = None
            self.stats.expired += 1
            self.on_expire(flow)


__all__ = ["Flow", "FlowConfig", "FlowKey", "FlowStats", "FlowTable"]
