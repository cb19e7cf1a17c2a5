"""Adversarial real-peer suite: a running stack attacked from a Linux namespace.

Each test drives one attack (floods, crafted segments, slow or never-reading clients,
bursts) and asserts the bound that must hold: CPU per packet, memory, the service kept.
The bounds are generous limits, not timings of a good run.  `make test` runs the short
variants; `make soak` sets TUNSTACK_SOAK=1 and `soak(n, m)` picks the longer one.
Like tests/realpeer, these fail rather than skip under TUNSTACK_REQUIRE_TUN=1.
"""
from __future__ import annotations

import os

import pytest

from ndd.pktbuf import PacketBuffer
from protocols.ipv4 import IPPROTO_TCP, Ipv4Repr
from protocols.tcp.wire import TcpRepr
from tests.realpeer.conftest import (  # noqa: F401  (fixtures re-exported for this folder)
    KERNEL_IP,
    STACK_IP,
    Peer,
    netns,
    require_real_peer,
    tap_peer,
    tun_peer,
)

SOAK = os.environ.get("TUNSTACK_SOAK") == "1"


def soak(short: int, long: int) -> int:
    """The size of an attack: `short` under `make test`, `long` under `make soak`."""
    return long if SOAK else short


def sent_tcp(direction: str, pkt: PacketBuffer) -> tuple[Ipv4Repr, TcpRepr] | None:
    """For a device tap: the IP and TCP headers of a segment the stack sends, else None."""
    if direction != "out":
        return None
    data = pkt.tobytes()
    ip = Ipv4Repr.parse(data, verify_checksum=False)
    if isinstance(ip, str) or ip.proto != IPPROTO_TCP:
        return None
    seg = TcpRepr.parse(data[ip.hdr_len:ip.total_len])
    return None if isinstance(seg, str) else (ip, seg)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "adversarial" in str(item.fspath):
            item.add_marker(pytest.mark.adversarial)
