"""Routing table: longest-prefix match, then lowest metric; a default route is 0.0.0.0/0."""
from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .addr import int_to_ip, parse_prefix, prefix_mask

if TYPE_CHECKING:
    from .ifnet import Interface


@dataclass
class Route:
    network: int
    prefixlen: int
    ifp: Interface
    gateway: int | None = None      # None: directly connected
    metric: int = 0
    source: int | None = None       # preferred source address
    proto: str = "static"           # "kernel" for connected routes added with an address

    def __str__(self) -> str:
        via = f" via {int_to_ip(self.gateway)}" if self.gateway is not None else ""
        src = f" src {int_to_ip(self.source)}" if self.source is not None else ""
        return (f"{int_to_ip(self.network)}/{self.prefixlen}{via} dev {self.ifp.name} proto {self.proto}"
                f" metric {self.metric}{src}")


class RoutingTable:
    def __init__(self) -> None:
        # one dict per prefix length: lookup walks /32 .. /0 and stops at the first hit
        self._by_len: list[dict[int, list[Route]]] = [dict() for _ in range(33)]
        self._lens: list[int] = []
        self.gen = 0            # bumped by every change: routes cached elsewhere are then stale

    def add(self, prefix: str | tuple[int, int], ifp: Interface, gateway: int | None = None, *,
            metric: int = 0, source: int | None = None, proto: str = "static") -> Route:
        network, plen = parse_prefix(prefix) if isinstance(prefix, str) else prefix
        network &= prefix_mask(plen)
        routes = self._by_len[plen].setdefault(network, [])
        for r in routes:
            if r.ifp is ifp and r.gateway == gateway and r.metric == metric:
                raise OSError(errno.EEXIST, os.strerror(errno.EEXIST))
        route = Route(network, plen, ifp, gateway, metric, source, proto)
        self.gen += 1
        routes.append(route)
        routes.sort(key=lambda r: r.metric)
        self._lens = sorted({plen, *self._lens}, reverse=True)
        return route

    def delete(self, prefix: str | tuple[int, int], ifp: Interface | None = None, gateway: int | None = None) -> None:
        network, plen = parse_prefix(prefix) if isinstance(prefix, str) else prefix
        network &= prefix_mask(plen)
        routes = self._by_len[plen].get(network, [])
        for r in routes:
            if (ifp is None or r.ifp is ifp) and (gateway is None or r.gateway == gateway):
                self.gen += 1
                routes.remove(r)
                if not routes:
                    del self._by_len[plen][network]
                    if not self._by_len[plen]:
                        self._lens.remove(plen)
                return
        raise OSError(errno.ESRCH, os.strerror(errno.ESRCH))

    def delete_interface(self, ifp: Interface) -> None:
        for r in [r for r in self if r.ifp is ifp]:
            self.delete((r.network, r.prefixlen), ifp, r.gateway)

    def lookup(self, dst: int) -> Route | None:
        for plen in self._lens:
            routes = self._by_len[plen].get(dst & prefix_mask(plen))
            if routes:
                for r in routes:
                    if r.ifp.is_up:
                        return r
        return None

    def __iter__(self) -> Iterator[Route]:
        for plen in self._lens:
            for routes in self._by_len[plen].values():
                yield from routes

    def dump(self) -> list[str]:
        return [str(r) for r in self]
