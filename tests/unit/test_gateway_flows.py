"""The gateway's flow table (tools/gateway/flows.py) with an explicit clock: the bound, the UDP
one-way / two-way idle timeouts, TCP flows left to their relay, the heap kept O(flows)."""
from __future__ import annotations

from tools.gateway.flows import Flow, FlowConfig, FlowTable

U = ("udp", "10.0.2.100", 40000, "192.0.2.1", 53)
T = ("tcp", "10.0.2.100", 40001, "192.0.2.1", 80)


def test_bound_refuses_new_flows_and_keeps_old_ones() -> None:
    t = FlowTable(FlowConfig(max_flows=2))
    a = t.open(U, 0.0)
    b = t.open(T, 0.0)
    assert a is not None and b is not None
    assert t.open(("udp", "10.0.2.100", 1, "192.0.2.9", 9), 0.0) is None
    assert t.stats.refused_full == 1 and len(t) == 2
    assert t.open(U, 1.0) is a                      # an existing flow is found, not refused


def test_udp_timeouts_one_way_then_two_way() -> None:
    expired: list[Flow] = []
    t = FlowTable(FlowConfig(udp_one_way=30, udp_two_way=180), on_expire=expired.append)
    f = t.open(U, 0.0)
    assert f is not None and t.poll_at() == 30.0
    t.outbound(f, 100, 10.0)                          # the guest speaks again: 30 s from now
    assert t.poll_at() == 40.0
    t.inbound(f, 50, 20.0)                            # a reply: the two-way timeout
    assert t.poll_at() == 200.0
    t.poll(199.9)
    assert expired == [] and t.get(U) is f
    t.poll(200.0)
    assert expired == [f] and t.get(U) is None and t.stats.expired == 1
    assert (f.octets_out, f.octets_in, f.replied) == (100, 50, True)


def test_tcp_flows_end_with_their_relay_only() -> None:
    t = FlowTable()
    f = t.open(T, 0.0)
    assert f is not None and t.poll_at() is None
    t.poll(10_000.0)
    assert t.get(T) is f
    assert t.remove(T) is f and t.stats.closed == 1 and len(t) == 0


def test_heap_stays_proportional_to_the_flows() -> None:
    t = FlowTable()
    f = t.open(U, 0.0)
    assert f is not None
    for i in range(10_000):                         # a chatty flow re-arms on every datagram
        t.outbound(f, 1, float(i) / 100)
    assert len(t._heap) <= 2 * len(t) + 65
    assert t.poll_at() == f.deadline
