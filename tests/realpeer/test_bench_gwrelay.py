"""The gateway table's `limit` (tools/bench/gwrelay.py, a minimal Python relay) in the
gateway topology: the guest's Linux kernel opens connections through it to the internet
namespace, request/response and connect + request + close both complete (no timing:
speed is `make bench`'s figure)."""
from __future__ import annotations

from tools.bench.common import Params
from tools.bench.gateway import _client, _server
from tools.lab.gwtopo import GUEST_ADDR, LIMIT, gateway_topology

from .conftest import require_real_peer


async def test_the_minimal_relay_carries_round_trips_and_connections() -> None:
    require_real_peer()
    p = Params(True, 1.0, 0)
    async with gateway_topology(LIMIT, mtu=1500, servers=False) as topo:
        assert GUEST_ADDR in await topo.guest_addresses()
        assert topo.ready_line.startswith("ready:")
        for role, port in (("rr", 5003), ("crr", 5004)):
            await _server(topo, f"{role}-server", port, 20)
            got = await _client(topo, p, f"{role}-client", port)
            assert got["count"] > 50, (role, got)
