"""Helpers shared by drivers: tasks that live as long as the NDD is open."""
from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ndd.ndd import DeviceServices, Ndd


def random_mac() -> bytes:
    """A locally administered unicast MAC (IEEE 802: bit 1 of octet 0 set, bit 0 clear)."""
    b = bytearray(os.urandom(6))
    b[0] = (b[0] & 0xFC) | 0x02
    return bytes(b)


class TaskNdd(Ndd):
    """An NDD whose receive side is a trio task in the owning Stack's nursery."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._scopes: list[trio.CancelScope] = []

    @property
    def attached(self) -> DeviceServices:
        """The services of the stack this device is attached to; an error before ns_attach."""
        if self.services is None:
            raise RuntimeError(f"{self.ndd_name}: not attached to a stack (ns_attach)")
        return self.services

    def start_task(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        services = self.attached
        scope = trio.CancelScope()
        self._scopes.append(scope)

        async def runner() -> None:
            if scope.cancel_called:
                return                  # the device closed before the task got to run
            with scope:
                await fn(*args)

        services.spawn(runner)

    def stop_tasks(self) -> None:
        for scope in self._scopes:
            scope.cancel()
        self._scopes.clear()

    def _close_device(self) -> None:
        self.stop_tasks()
