"""Plug-ins through entry points.

  tunstack.protocols : a callable `register(host)` that adds domains/protosw entries (and
                       timed cores); `host` is the Stack as protocols.contracts.ProtocolHost
                       sees it: protosw, timers, rng, now
  tunstack.drivers   : a callable `register(registry)` that adds driver factories by name

The built-in protocols are not plug-ins: the Stack builds them itself (stack/stack.py).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger(__name__)

PROTOCOL_GROUP = "tunstack.protocols"
DRIVER_GROUP = "tunstack.drivers"


def load_entry_points(group: str) -> list[tuple[str, Callable[..., Any]]]:
    found = []
    for ep in entry_points(group=group):
        try:
            found.append((ep.name, ep.load()))
        except Exception as exc:  # a broken plug-in must not take the stack down
            log.warning("plug-in %s (%s) failed to load: %s", ep.name, ep.value, exc)
    return found


def call_register(name: str, register: Callable[[Any], None], target: Any) -> bool:
    """Run one plug-in's register(); a failing plug-in is logged and skipped, not fatal."""
    try:
        register(target)
    except Exception as exc:
        log.warning("plug-in %s failed to register: %r", name, exc)
        return False
    return True


class DriverRegistry:
    """Driver factories by name: `create(name, *args, **kw)` returns an Ndd."""

    def __init__(self) -> None:
        self.factories: dict[str, Callable[..., Any]] = {}

    def add(self, name: str, factory: Callable[..., Any]) -> None:
        self.factories[name] = factory

    def create(self, name: str, *args: Any, **kw: Any) -> Any:
        try:
            factory = self.factories[name]
        except KeyError:
            raise KeyError(f"no driver {name!r}; known: {', '.join(sorted(self.factories))}") from None
        return factory(*args, **kw)
