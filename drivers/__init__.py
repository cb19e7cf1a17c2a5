"""NDD implementations (each an `ndd.ndd.Ndd`):

  tuntap   TunNdd, TapNdd: Linux TUN/TAP through pytun, virtio_net_hdr offloads (vnet.py)
  memlink  MemoryNdd pairs and LoopbackNdd: in-process links for tests and demos
  fault    FaultInjector: loss, reordering, duplication, corruption, delay over another NDD
  pcap     PcapRecorder: a tap writing RAW / EN10MB / SUNATM captures
  atm/     the emulated ATM adapter (AtmNdd) and its PHYs
  base     TaskNdd: a driver whose receive side is a trio task

`register(registry)` names the built-in drivers the same way a third-party `tunstack.drivers`
entry point adds its own; it imports them only when called.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Registry(Protocol):
    """What `register` needs of a registry (stack/plugins.py's DriverRegistry is one)."""
    def add(self, name: str, factory: Callable[..., Any]) -> None: ...


def register(registry: Registry) -> None:
    from .atm.adapter import AtmNdd
    from .fault import FaultInjector
    from .memlink import LoopbackNdd, MemoryNdd
    from .tuntap import TapNdd, TunNdd
    registry.add("tun", TunNdd)
    registry.add("tap", TapNdd)
    registry.add("memory", MemoryNdd)
    registry.add("loopback", LoopbackNdd)
    registry.add("fault", FaultInjector)
    registry.add("atm", AtmNdd)
