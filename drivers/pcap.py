"""A pcap recorder that taps any NDD in both directions (dpkt's classic pcap writer).

Link types: LINKTYPE_RAW (101) for TUN and loopback, EN10MB (1) for TAP and Ethernet
memory links; SUNATM (123) arrives with the ATM adapter.  GSO super-frames are written
as the one large frame they are on the fd (an IPv4 packet longer than the MTU) -- that
is what crossed the device, and tshark dissects it as one segment.  Frames the kernel
marked NEEDS_CSUM carry only the pseudo-header sum in their L4 checksum, so Wireshark
flags their TCP/UDP checksum as bad; IP header checksums are always real.
"""
from __future__ import annotations

import time
from typing import BinaryIO

import dpkt

from ndd.ndd import Ndd
from stack.pktbuf import PacketBuffer

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_SUNATM = 123
SNAPLEN = 262144


class PcapRecorder:
    def __init__(self, path: str, linktype: int) -> None:
        self.path = path
        self.linktype = linktype
        self._file: BinaryIO = open(path, "wb")
        self._writer = dpkt.pcap.Writer(self._file, snaplen=SNAPLEN, linktype=linktype)
        self.frames = 0
        self._ndds: list[Ndd] = []

    @classmethod
    def attach(cls, ndd: Ndd, path: str) -> "PcapRecorder":
        rec = cls(path, ndd.linktype)
        rec.watch(ndd)
        return rec

    def watch(self, ndd: Ndd) -> None:
        ndd.taps.append(self._tap)
        self._ndds.append(ndd)

    def _tap(self, ndd: Ndd, direction: str, pkt: PacketBuffer) -> None:
        self.write(pkt.view())

    def write(self, data: bytes | memoryview, ts: float | None = None) -> None:
        if self._file.closed:
            return
        self._writer.writepkt(bytes(data), ts=time.time() if ts is None else ts)
        self._file.flush()
        self.frames += 1

    def close(self) -> None:
        for ndd in self._ndds:
            if self._tap in ndd.taps:
                ndd.taps.remove(self._tap)
        self._ndds.clear()
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> "PcapRecorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
