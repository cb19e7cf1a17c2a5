"""A pcap recorder that taps any NDD in both directions (dpkt's classic pcap writer).

Link types: LINKTYPE_RAW (101) for TUN and loopback, EN10MB (1) for TAP and Ethernet
memory links; SUNATM (123) for the ATM adapter: its frames already start with the
4-octet flags/VPI/VCI link header (drivers/atm/adapter.py), so the recorder only fills in the
flags -- 0x80 when transmitted, and the payload type Wireshark dissects by: 6 (Q.2931
over SSCOP) on 0/5, 5 (ILMI) on 0/16, 2 (LLC) when the SDU starts with LLC/SNAP
AA AA 03 (RFC 2684, so IP inside is decoded), else 0 (raw).  GSO super-frames are written
as the one large frame they are on the fd (an IPv4 packet longer than the MTU) -- that
is what crossed the device, and tshark dissects it as one segment.  Frames the kernel
marked NEEDS_CSUM carry only the pseudo-header sum in their L4 checksum, so Wireshark
flags their TCP/UDP checksum as bad; IP header checksums are always real.
"""
from __future__ import annotations

import time
from typing import BinaryIO

import dpkt

from ndd.atm import ILMI_VPI_VCI, LLC_HEADER, SIG_VPI_VCI
from ndd.ndd import Ndd
from ndd.pktbuf import PacketBuffer

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_SUNATM = 123
SNAPLEN = 262144

SUNATM_TX = 0x80
SUNATM_RAW, SUNATM_LLC, SUNATM_ILMI, SUNATM_QSAAL = 0, 2, 5, 6


def sunatm_record(frame: bytes | memoryview, outgoing: bool) -> bytes:
    """An ATM NDD frame (flags|VPI|VCI|SDU) as a LINKTYPE_SUNATM record."""
    data = bytes(frame)
    if len(data) < 4:
        return data
    vpi, vci = data[1], data[2] << 8 | data[3]
    if (vpi, vci) == SIG_VPI_VCI:
        kind = SUNATM_QSAAL
    elif (vpi, vci) == ILMI_VPI_VCI:
        kind = SUNATM_ILMI
    elif data[4:7] == LLC_HEADER:
        kind = SUNATM_LLC
    else:
        kind = SUNATM_RAW
    return bytes((kind | (SUNATM_TX if outgoing else 0),)) + data[1:]


class PcapRecorder:
    def __init__(self, path: str, linktype: int, file: BinaryIO | None = None) -> None:
        """Record to `path`, or to `file` (already open, binary) when given; `path` then only names it."""
        self.path = path
        self.linktype = linktype
        # open for the recorder's life; close() closes it
        self._file: BinaryIO = file if file is not None else open(path, "wb")  # noqa: SIM115
        self._writer = dpkt.pcap.Writer(self._file, snaplen=SNAPLEN, linktype=linktype)
        self.frames = 0
        self._ndds: list[Ndd] = []

    @classmethod
    def attach(cls, ndd: Ndd, path: str) -> PcapRecorder:
        rec = cls(path, ndd.linktype)
        rec.watch(ndd)
        return rec

    def watch(self, ndd: Ndd) -> None:
        ndd.taps.append(self._tap)
        self._ndds.append(ndd)

    def _tap(self, ndd: Ndd, direction: str, pkt: PacketBuffer) -> None:
        if self.linktype == LINKTYPE_SUNATM:
            self.write(sunatm_record(pkt.view(), direction == "out"))
            return
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

    def __enter__(self) -> PcapRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
