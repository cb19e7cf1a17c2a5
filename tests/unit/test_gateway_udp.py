"""The sans-IO parts of the gateway's UDP and echo sides (tools/gateway/udp.py): the bounded
per-flow queues under a shared budget, what a host error becomes for the guest, and the flow
table's expiries reaching the flows' owners."""
from __future__ import annotations

import errno

import pytest

from tools.gateway.flows import FlowConfig, FlowTable
from tools.gateway.hostudp import SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6, SO_EE_ORIGIN_LOCAL, HostError
from tools.gateway.udp import FULL_KIND, GuestError, PendingQueue, QueueBudget, errno_kind, expire_owner, guest_error


def test_queue_bounded_by_items_octets_and_the_shared_budget() -> None:
    budget = QueueBudget(limit=1000)
    a: PendingQueue[bytes] = PendingQueue(budget, max_items=3, max_octets=600)
    b: PendingQueue[bytes] = PendingQueue(budget, max_items=10, max_octets=10_000)
    assert a.push(b"x", 1) and a.push(b"y", 1) and a.push(b"z", 1)
    assert not a.push(b"w", 1)                      # a fourth item: over max_items
    assert a.pop() == b"x" and len(a) == 2
    assert not a.push(b"big", 599)                  # 2 + 599 > max_octets
    assert a.push(b"ok", 500) and budget.used == 502
    assert b.push(b"b", 498) and budget.used == 1000
    assert not b.push(b"c", 1)                      # the total is reached: b has room of its own, not the gateway
    assert a.clear() == 3 and budget.used == 498 and a.octets == 0 and a.pop() is None
    assert b.push(b"c", 1)                          # the budget came back
    assert b.pop() == b"b" and b.pop() == b"c" and budget.used == 0 and b.pop() is None


def test_queue_work_stays_bounded_under_a_flood() -> None:
    budget = QueueBudget(limit=1 << 20)
    q: PendingQueue[bytes] = PendingQueue(budget, max_items=64, max_octets=256 << 10)
    accepted = sum(q.push(b"d" * 1400, 1400) for _ in range(100_000))
    assert accepted == 64 and len(q) == 64 and budget.used == 64 * 1400


@pytest.mark.parametrize("err, shown", [
    # ICMP destination unreachable (RFC 792, RFC 1812 §5.2.7.1)
    (HostError(errno.ECONNREFUSED, SO_EE_ORIGIN_ICMP, 3, 3, 0, "192.0.2.1"), GuestError("port")),
    (HostError(errno.EHOSTUNREACH, SO_EE_ORIGIN_ICMP, 3, 1, 0, "192.0.2.254"), GuestError("host")),
    (HostError(errno.ENETUNREACH, SO_EE_ORIGIN_ICMP, 3, 0, 0, "192.0.2.254"), GuestError("net")),
    (HostError(errno.EHOSTUNREACH, SO_EE_ORIGIN_ICMP, 3, 13, 0, "192.0.2.254"), GuestError("admin")),
    (HostError(errno.EMSGSIZE, SO_EE_ORIGIN_ICMP, 3, 4, 1400, "192.0.2.254"), GuestError("frag", 1400)),
    (HostError(errno.EHOSTUNREACH, SO_EE_ORIGIN_ICMP, 11, 0, 0, "192.0.2.254"), None),   # time exceeded
    (HostError(errno.EMSGSIZE, SO_EE_ORIGIN_ICMP, 3, 4, 0, "192.0.2.254"), None),        # no MTU to say
    # ICMPv6 (RFC 4443 §3.1, §3.2)
    (HostError(errno.ECONNREFUSED, SO_EE_ORIGIN_ICMP6, 1, 4, 0, "2001:db8::1"), GuestError("port")),
    (HostError(errno.EHOSTUNREACH, SO_EE_ORIGIN_ICMP6, 1, 3, 0, "2001:db8::1"), GuestError("host")),
    (HostError(errno.ENETUNREACH, SO_EE_ORIGIN_ICMP6, 1, 0, 0, "2001:db8::1"), GuestError("net")),
    (HostError(errno.EACCES, SO_EE_ORIGIN_ICMP6, 1, 1, 0, "2001:db8::1"), GuestError("admin")),
    (HostError(errno.EMSGSIZE, SO_EE_ORIGIN_ICMP6, 2, 0, 1280, "2001:db8::1"), GuestError("frag", 1280)),
    (HostError(errno.EHOSTUNREACH, SO_EE_ORIGIN_ICMP6, 3, 0, 0, "2001:db8::1"), None),   # time exceeded
    # the host's own errors, by errno
    (HostError(errno.EMSGSIZE, SO_EE_ORIGIN_LOCAL, 0, 0, 1500, None), GuestError("frag", 1500)),
    (HostError(errno.ECONNREFUSED, SO_EE_ORIGIN_LOCAL, 0, 0, 0, None), GuestError("port")),
    (HostError(errno.ENETUNREACH, 0, 0, 0, 0, None), GuestError("net")),
    (HostError(errno.EPERM, 0, 0, 0, 0, None), GuestError("admin")),         # a host firewall's reject
    (HostError(errno.EINTR, 0, 0, 0, 0, None), None),
])
def test_host_errors_shown_to_the_guest(err: HostError, shown: GuestError | None) -> None:
    assert guest_error(err) == shown


def test_a_host_out_of_sockets_is_a_full_gateway() -> None:
    assert errno_kind(errno.EMFILE) == errno_kind(errno.ENOBUFS) == FULL_KIND == "admin"
    assert errno_kind(errno.ENETUNREACH) == "net" and errno_kind(errno.EINVAL) == FULL_KIND


def test_expiry_reaches_the_flows_owner_and_tcp_flows_are_left_alone() -> None:
    ended: list[str] = []

    class Owner:
        def expired(self) -> None:
            ended.append("udp")

    t = FlowTable(FlowConfig(udp_one_way=30), on_expire=expire_owner)
    u = t.open(("udp", "10.0.2.100", 4000, "192.0.2.1", 53), 0.0, state=Owner())
    tcp = t.open(("tcp", "10.0.2.100", 4001, "192.0.2.1", 80), 0.0, state=object())
    assert u is not None and tcp is not None
    t.poll(30.0)
    assert ended == ["udp"] and len(t) == 1
    expire_owner(tcp)                           # a state without expired(): nothing to do, no error
    assert ended == ["udp"]


def test_peek_leaves_the_item_for_a_sender_whose_socket_is_full() -> None:
    budget = QueueBudget(limit=100)
    q: PendingQueue[bytes] = PendingQueue(budget, max_items=8, max_octets=100)
    assert q.peek() is None
    q.push(b"first", 5)
    q.push(b"second", 6)
    assert q.peek() == b"first" and len(q) == 2 and budget.used == 11
    assert q.pop() == b"first" and q.peek() == b"second"
