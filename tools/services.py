"""Small network services a stack can offer (`tunstack up --serve NAME[:PORT]`).

Each service is an async function `service(stack, port, *, task_status)` meant for
`nursery.start`: it binds its socket, reports `started(label)` (e.g. "udp/echo:7"), then
serves until cancelled.  A failed bind raises OSError before `started`, so the caller
never announces a service that is not listening.  Errors while serving are logged and
the service carries on: a bad peer must not take the stack down.

UDP only for now (RFC 862 echo, RFC 863 discard); the TCP variants arrive with TCP.
"""
from __future__ import annotations

import logging
import socket as _pysocket
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import trio

log = logging.getLogger("tunstack.services")

MAX_DATAGRAM = 65535


@dataclass
class ServiceStats:
    received: int = 0
    sent: int = 0
    errors: int = 0


async def _udp_service(stack: Any, name: str, port: int, addr: str, stats: ServiceStats | None,
                       task_status: trio.TaskStatus[str], echo: bool) -> None:
    """One UDP service loop: bind, report started, then receive (and echo) forever."""
    stats = stats if stats is not None else ServiceStats()
    with stack.socket(_pysocket.AF_INET, _pysocket.SOCK_DGRAM) as sock:
        sock.bind((addr, port))
        task_status.started(f"udp/{name}:{sock.getsockname()[1]}")
        while True:
            try:
                data, peer = await sock.recvfrom(MAX_DATAGRAM)
                stats.received += 1
                if echo and peer is not None:
                    await sock.sendto(data, peer)
                    stats.sent += 1
            except OSError as exc:
                # e.g. EMSGSIZE, a route gone away; never fatal for the service
                stats.errors += 1
                log.warning("udp/%s:%d: %s", name, port, exc)
                await trio.sleep(0)


async def udp_echo(stack: Any, port: int = 7, *, addr: str = "", stats: ServiceStats | None = None,
                   task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """RFC 862 echo over UDP: every datagram goes back to its sender unchanged."""
    await _udp_service(stack, "echo", port, addr, stats, task_status, echo=True)


async def udp_discard(stack: Any, port: int = 9, *, addr: str = "", stats: ServiceStats | None = None,
                      task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """RFC 863 discard over UDP: read and drop (binding it means no ICMP port unreachable)."""
    await _udp_service(stack, "discard", port, addr, stats, task_status, echo=False)


Service = Callable[..., Awaitable[None]]

# name -> (default port, service)
SERVICES: dict[str, tuple[int, Service]] = {
    "echo": (7, udp_echo),
    "discard": (9, udp_discard),
}


def parse_serve(spec: str) -> tuple[str, int]:
    """`NAME[:PORT]` -> (name, port); ValueError with a readable message."""
    name, _, port_s = spec.partition(":")
    name = name.strip().lower()
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r} (known: {', '.join(SERVICES)})")
    if not port_s:
        return name, SERVICES[name][0]
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"bad port {port_s!r} in {spec!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range 1..65535")
    return name, port


async def start_services(nursery: trio.Nursery, stack: Any, specs: list[tuple[str, int]]) -> list[str]:
    """Start every service in `nursery`; returns once all are bound, with their labels."""
    labels = []
    for name, port in specs:
        labels.append(await nursery.start(SERVICES[name][1], stack, port))
    return labels
