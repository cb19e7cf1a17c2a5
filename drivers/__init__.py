"""NDD implementations.  `register(registry)` names the built-in drivers the same way
a third-party `tunstack.drivers` entry point adds its own."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .atm.adapter import AtmNdd
from .atm.phy import PhyPair, UdpPhy
from .fault import FaultInjector
from .memlink import LoopbackNdd, MemoryNdd, memory_link_pair
from .pcap import PcapRecorder
from .tuntap import TapNdd, TunNdd

if TYPE_CHECKING:
    from stack.plugins import DriverRegistry

__all__ = ["AtmNdd", "FaultInjector", "LoopbackNdd", "MemoryNdd", "PcapRecorder", "PhyPair", "TapNdd", "TunNdd",
           "UdpPhy", "memory_link_pair", "register"]


def register(registry: "DriverRegistry") -> None:
    registry.add("tun", TunNdd)
    registry.add("tap", TapNdd)
    registry.add("memory", MemoryNdd)
    registry.add("loopback", LoopbackNdd)
    registry.add("fault", FaultInjector)
    registry.add("atm", AtmNdd)
