"""Software GRO: consecutive in-order TCP segments of one flow, read in one batch, go up
as one super-segment (Linux napi_gro_receive -> inet_gro_receive -> tcp_gro_receive, which
Linux runs in software for every device without hardware LRO).

IPv4 and TCP then pay their per-segment work once per run of segments, as they already do
for the super-frames a TUN with offloads hands over (issue 15: without offloads, a bulk
receive spent most of its CPU once per 1448-octet segment).  Each frame's checksums are
verified here, before its header is dropped; the merged packet is marked checksum-valid,
as Linux's GRO skb is CHECKSUM_UNNECESSARY.

A segment joins the run held so far when, as tcp_gro_receive and inet_gro_receive ask:
  * it is IPv4 without options or fragmentation, TCP, with data, and flags ACK or ACK|PSH;
  * same addresses, ports, TOS (ECN included: a CE mark is never merged away) and TTL;
  * it starts where the run ends (the next sequence number);
  * same ACK number, window, header length and option bytes (timestamps included);
  * its data is no longer than the run's first segment's (the gso_size), and the run
    stays a valid IPv4 datagram (total length at most 65535).
A shorter segment or one with PSH ends the run after joining it.  Beyond Linux: a full
segment without PSH that ends where the run starts (the run's first segment overtook it:
a path that swaps neighbours) joins in front and leads the run -- TCP would queue the
run out of order and fill the hole the next moment; the batch's one ACK says the same
either way.  Anything else first sends the run up, then goes up itself (or starts a new
run): the order of all frames is kept, and of every flow's segments but such a pair,
which goes up in sequence order.  The batch's end (Ndd.nd_rx_batch) sends up what is
held.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from ndd.checksum import checksum, ones_sum
from ndd.pktbuf import GSO_TCPV4, PacketBuffer

_ACK, _PSH = 0x10, 0x08
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
MAX_IP_LEN = 0xFFFF


def _sig_mask(hlen: int) -> int:
    """The bits of a `hlen`-octet IPv4 + TCP header that every segment of a run shares: IPv4
    version/IHL, TOS (ECN included), flags and fragment offset (DF; the rest is zero here),
    TTL, protocol and addresses; TCP ports, ACK number, data offset, window and options
    (timestamps included).  Not length, ident, checksums, sequence number, flags (ACK with
    or without PSH here) or the urgent pointer."""
    keep = bytearray(b"\xff" * hlen)
    for start, end in ((2, 6), (10, 12), (24, 28), (33, 34), (36, 40)):
        keep[start:end] = bytes(end - start)
    return int.from_bytes(keep, "big")


# by header length (IPv4 without options, TCP with 0..40 octets of options)
_SIG_MASKS = {hlen: _sig_mask(hlen) for hlen in range(40, 81, 4)}


class TcpGro:
    """One receive path's GRO state: at most one run held (the frames of a read batch come
    flow by flow: a sender's burst).  `deliver(pkt, ctx)` takes what goes up."""
    __slots__ = ("deliver", "_first", "_ctx", "_pieces", "_sig", "_first_seq", "_next_seq", "_seg_len", "_ip_len",
                 "_psh", "runs", "merged", "prepended")

    def __init__(self, deliver: Callable[[PacketBuffer, Any], None]) -> None:
        self.deliver = deliver
        self._first: PacketBuffer | None = None     # the run's first frame (its headers lead the merge)
        self._ctx: Any = None
        self._pieces: list[memoryview] | None = None   # the run's payloads, once it has two
        self._sig = 0                   # what every segment of the run shares (see module doc)
        self._first_seq = 0
        self._next_seq = 0
        self._seg_len = 0
        self._ip_len = 0
        self._psh = False
        self.runs = 0                   # super-segments built (two segments or more)
        self.merged = 0                 # segments that went up inside one
        self.prepended = 0              # of which joined in front of the run (a reordered pair)

    def receive(self, pkt: PacketBuffer, ctx: Any) -> None:
        buf, s, end = pkt.buf, pkt.start, pkt.end
        n = end - s
        # IPv4, IHL 5, TCP, not a fragment (MF clear, offset 0), no link padding
        if n < 40 or buf[s] != 0x45 or buf[s + 9] != 6 or buf[s + 6] & 0x3F or buf[s + 7] \
                or (buf[s + 2] << 8 | buf[s + 3]) != n:
            self._pass(pkt, ctx)
            return
        th = s + 20
        data = th + (buf[th + 12] >> 4) * 4
        flags = buf[th + 13]
        seg_len = end - data
        if seg_len <= 0 or data < th + 20 or flags & ~_PSH != _ACK:
            self._pass(pkt, ctx)
            return
        if isinstance(buf, memoryview):
            buf = bytes(buf)              # (slices below must be bytes, not views)
        # RFC 1071: the header sums to 0xFFFF, i.e. 0 modulo 0xFFFF (it is never all zero);
        # the pseudo-header's addresses go in as one 64-bit integer (2**16 == 1 mod 0xFFFF)
        if int.from_bytes(buf[s:th], "big") % 0xFFFF or \
                ones_sum(memoryview(buf)[th:end], int.from_bytes(buf[s + 12:th], "big") + 6 + n - 20) != 0xFFFF:
            self._pass(pkt, ctx)          # a bad checksum: IPv4 or TCP counts it
            return
        pkt.csum_valid = True
        seq = _U32.unpack_from(buf, th + 4)[0]
        # what the run's segments share (_SIG_MASKS): the headers as one integer, masked
        sig = int.from_bytes(buf[s:data], "big") & _SIG_MASKS[data - s]
        first = self._first
        if first is not None and (sig != self._sig or seq != self._next_seq or seg_len > self._seg_len
                                  or self._ip_len + seg_len > MAX_IP_LEN):
            if sig == self._sig and (seq + seg_len) & 0xFFFFFFFF == self._first_seq \
                    and seg_len == self._seg_len and not flags & _PSH and self._ip_len + seg_len <= MAX_IP_LEN:
                # the segment just before the run, come after its successor (a reordered
                # pair): it leads the run now.  Linux's GRO sends the run up instead; TCP
                # would then queue the first out of order and bridge the hole the next
                # moment -- the batch's ACK says the same either way
                pieces = self._pieces
                if pieces is None:
                    pieces = [memoryview(first.buf)[first.end - self._seg_len:first.end]]
                self._pieces = [memoryview(buf)[data:end], *pieces]
                self._first, self._first_seq = pkt, seq
                self._ip_len += seg_len
                self.prepended += 1
                return
            self.flush()
            first = None
        if first is None:
            self._first, self._ctx, self._sig = pkt, ctx, sig
            self._pieces = None           # (a lone segment, the common case on a lossy path, needs none)
            self._first_seq = seq
            self._seg_len = seg_len
            self._ip_len = n
            self._psh = False
        else:
            pieces = self._pieces
            if pieces is None:
                pieces = self._pieces = [memoryview(first.buf)[first.end - self._seg_len:first.end]]
            pieces.append(memoryview(buf)[data:end])
            self._ip_len += seg_len
        self._next_seq = (seq + seg_len) & 0xFFFFFFFF
        if flags & _PSH or seg_len < self._seg_len:
            self._psh = self._psh or bool(flags & _PSH)
            self.flush()

    def _pass(self, pkt: PacketBuffer, ctx: Any) -> None:
        """A frame GRO does not merge: after the run held, in arrival order."""
        if self._first is not None:
            self.flush()
        self.deliver(pkt, ctx)

    def flush(self) -> None:
        """Send the run held up: its one frame as it is, or the super-segment."""
        first = self._first
        if first is None:
            return
        self._first = None
        pieces = self._pieces
        self._pieces = None
        ctx, self._ctx = self._ctx, None
        if pieces is None:
            self.deliver(first, ctx)
            return
        buf, s = first.buf, first.start
        hdr = bytearray(buf[s:first.end - len(pieces[0])])
        _U16.pack_into(hdr, 2, self._ip_len)
        hdr[10:12] = b"\0\0"
        _U16.pack_into(hdr, 10, checksum(memoryview(hdr)[:20]))
        if self._psh:
            hdr[33] |= _PSH                       # a later segment's PSH (tcp_gro_receive ORs it in)
        # one copy, into immutable bytes: TCP's receive queue keeps a view of it, no second copy
        pkt = PacketBuffer(b"".join((hdr, *pieces)))
        pkt.csum_valid = True
        pkt.gso_size, pkt.gso_type = self._seg_len, GSO_TCPV4
        self.runs += 1
        self.merged += len(pieces)
        self.deliver(pkt, ctx)
