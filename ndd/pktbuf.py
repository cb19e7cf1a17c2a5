"""Packet buffer: one contiguous bytearray with headroom in front of the data.

Lower layers *prepend* their headers into the headroom, so the payload written by
the application is never copied on the way down (the BSD mbuf / Linux skb idea,
reduced to one segment).  A buffer may hold a GSO super-segment up to 64 KiB;
`gso_size` then says how the device must cut it.
"""
from __future__ import annotations

DEFAULT_HEADROOM = 128  # vnet hdr (10) + Ethernet (14) + IPv4 (60) + TCP (60) fits

# gso_type: the virtio_net_hdr GSO kinds (<linux/virtio_net.h> VIRTIO_NET_HDR_GSO_*), shared by
# the TUN/TAP driver and the transports that build super-segments
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_UDP = 3
GSO_TCPV6 = 4
GSO_UDP_L4 = 5
GSO_ECN = 0x80


class PacketBuffer:
    """Bytes [start:end) of `buf` are the packet; [0:start) is headroom.

    Offload metadata travels with the packet:
      csum_start/csum_offset -- a partial L4 checksum the device must finish
                                 (absolute index into `buf`, so prepends keep it valid)
      csum_valid             -- the device verified the L4 checksum (virtio DATA_VALID)
      gso_type/gso_size      -- a super-segment the device (or kernel) cuts into MSS pieces
    """

    __slots__ = ("buf", "start", "end", "csum_start", "csum_offset", "csum_valid",
                 "gso_type", "gso_size", "ll_src", "ll_dst", "ll_bcast")

    def __init__(self, buf: bytearray | bytes | memoryview, start: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.start = start
        self.end = len(buf) if end is None else end
        self.csum_start = -1
        self.csum_offset = 0
        self.csum_valid = False
        self.gso_type = 0
        self.gso_size = 0
        self.ll_src: bytes = b""
        self.ll_dst: bytes = b""
        self.ll_bcast = False

    @classmethod
    def from_payload(cls, payload: bytes | bytearray | memoryview, headroom: int = DEFAULT_HEADROOM) -> PacketBuffer:
        """Copy `payload` once, leaving `headroom` bytes free in front for headers."""
        n = len(payload)
        # zero only the headroom and extend by the payload: a 64 KiB segment costs one
        # memcpy, not a zero fill and a slice assignment (1.4 us against 12 us, issue 15)
        buf = bytearray(headroom)
        buf += payload
        return cls(buf, headroom, headroom + n)

    @classmethod
    def allocate(cls, size: int, headroom: int = DEFAULT_HEADROOM) -> PacketBuffer:
        """A zero-filled packet of `size` bytes with headroom, to be written in place."""
        return cls(bytearray(headroom + size), headroom, headroom + size)

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def headroom(self) -> int:
        return self.start

    def view(self) -> memoryview:
        return memoryview(self.buf)[self.start:self.end]

    def tobytes(self) -> bytes:
        return bytes(memoryview(self.buf)[self.start:self.end])

    def prepend(self, n: int) -> memoryview:
        """Grow the packet by `n` bytes at the front and return a writable view of them."""
        if n > self.start or not isinstance(self.buf, bytearray):
            self._regrow(n)
        self.start -= n
        return memoryview(self.buf)[self.start:self.start + n]

    def pull(self, n: int) -> None:
        """Strip `n` bytes from the front (a header that has been consumed)."""
        self.start += n

    def trim(self, length: int) -> None:
        """Cut the packet to `length` bytes (e.g. drop Ethernet padding)."""
        self.end = self.start + length

    def _regrow(self, need: int) -> None:
        # Rare: a received (read-only) buffer turned around, or a header stack deeper than
        # the headroom.  Copy once into a fresh buffer with full headroom.
        headroom = max(DEFAULT_HEADROOM, need)
        old_start = self.start
        data = memoryview(self.buf)[self.start:self.end]
        buf = bytearray(headroom)
        buf += data
        shift = headroom - old_start
        self.buf, self.start, self.end = buf, headroom, headroom + len(data)
        if self.csum_start >= 0:
            self.csum_start += shift

    def copy(self) -> PacketBuffer:
        """An independent copy of data and metadata (used by taps and duplicators)."""
        pb = PacketBuffer.from_payload(self.view(), self.start if self.start else DEFAULT_HEADROOM)
        for name in ("csum_offset", "csum_valid", "gso_type", "gso_size", "ll_src", "ll_dst", "ll_bcast"):
            setattr(pb, name, getattr(self, name))
        if self.csum_start >= 0:
            pb.csum_start = self.csum_start - self.start + pb.start
        return pb

    def __repr__(self) -> str:
        gso = f" gso={self.gso_size}" if self.gso_size else ""
        return f"<PacketBuffer len={len(self)} headroom={self.start}{gso}>"
