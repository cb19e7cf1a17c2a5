"""ARP (RFC 826) for IPv4 over Ethernet, with RFC 5227-style announcements.

Sans-IO: the cache never touches a device.  It is given two callables --
`transmit(dst_mac, arp_bytes)` to send an ARP packet and `unreachable(pkt)` to
report a queued IP packet whose next hop never answered -- and is driven by
`input(...)`, `resolve(...)` and the `poll_at()/poll(now)` timer contract.

Neighbour states (a reduced RFC 4861 §7.3.2 machine, as Linux uses for ARP):
  INCOMPLETE  request sent, packets queued, retried every retrans_time
  REACHABLE   confirmed by a reply within reachable_time
  STALE       still used; using it sends one unicast refresh request; dropped at stale_until
"""
from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ndd.counters import Counters
from ndd.pktbuf import PacketBuffer

from .addr import MAC_BROADCAST, is_martian_source

ARP_LEN = 28
HTYPE_ETHERNET = 1
PTYPE_IPV4 = 0x0800
OP_REQUEST = 1
OP_REPLY = 2

INCOMPLETE, REACHABLE, STALE = "INCOMPLETE", "REACHABLE", "STALE"

_ARP = struct.Struct("!HHBBH6sI6sI")


@dataclass(slots=True)
class ArpRepr:
    oper: int
    sha: bytes
    spa: int
    tha: bytes
    tpa: int

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> ArpRepr | None:
        """None for anything but Ethernet/IPv4 request or reply of full length."""
        if len(data) < ARP_LEN:
            return None
        htype, ptype, hlen, plen, oper, sha, spa, tha, tpa = _ARP.unpack_from(data, 0)
        if htype != HTYPE_ETHERNET or ptype != PTYPE_IPV4 or hlen != 6 or plen != 4:
            return None
        if oper not in (OP_REQUEST, OP_REPLY):
            return None
        return cls(oper, sha, spa, tha, tpa)

    def emit(self) -> bytes:
        return _ARP.pack(HTYPE_ETHERNET, PTYPE_IPV4, 6, 4, self.oper, self.sha, self.spa, self.tha, self.tpa)


@dataclass
class ArpConfig:
    reachable_time: float = 30.0
    stale_time: float = 60.0        # a stale entry unused/unconfirmed this long is removed
    retrans_time: float = 1.0
    max_retries: int = 3
    # held per unresolved neighbour, oldest dropped first.  Bounded in bytes like Linux's
    # unres_qlen_bytes (SK_WMEM_MAX) so a whole fragmented 64 KiB datagram can wait for ARP.
    queue_len: int = 256
    queue_bytes: int = 212992
    max_entries: int = 1024
    announce_count: int = 2         # RFC 5227 ANNOUNCE_NUM
    announce_interval: float = 2.0  # RFC 5227 ANNOUNCE_INTERVAL


@dataclass
class ArpStats(Counters):
    rx: int = 0
    rx_requests: int = 0
    rx_replies: int = 0
    malformed: int = 0
    not_for_us: int = 0
    tx_requests: int = 0
    tx_replies: int = 0
    tx_announces: int = 0
    resolved: int = 0
    failed: int = 0
    queue_drops: int = 0
    table_full: int = 0
    conflicts: int = 0
    martian_senders: int = 0      # sender IP broadcast/multicast/loopback/0.x: never learned nor answered



@dataclass(eq=False)
class Neighbour:
    ip: int
    state: str
    mac: bytes = b""
    deadline: float = 0.0         # INCOMPLETE: next retry; REACHABLE: goes stale; STALE: removal
    retries: int = 0
    refreshed: bool = False       # STALE: a unicast refresh has been sent
    static: bool = False          # add_static: never aged, never overwritten by received ARP
    queue: deque = field(default_factory=deque)
    queued: int = 0               # bytes in `queue`


class ArpCache:
    def __init__(self, mac: bytes, local_addrs: Callable[[], list[int]],
                 transmit: Callable[[bytes, bytes], int], unreachable: Callable[[PacketBuffer], None],
                 config: ArpConfig | None = None) -> None:
        self.mac = mac
        self.local_addrs = local_addrs
        self.transmit = transmit
        self.unreachable = unreachable
        self.config = config or ArpConfig()
        self.stats = ArpStats()
        self.entries: dict[int, Neighbour] = {}
        self._announce: list[tuple[float, int, int]] = []   # (when, ip, remaining)
        self.kick: Callable[[], None] = lambda: None
        # set by the Ethernet link: frame and send one queued IPv4 packet to `mac`
        self.transmit_ip: Callable[[PacketBuffer, bytes], int] = lambda pkt, mac: 0

    # --- receive (RFC 826 "Packet Reception") -------------------------------
    def input(self, data: bytes | bytearray | memoryview, now: float) -> None:
        self.stats.rx += 1
        arp = ArpRepr.parse(data)
        if arp is None or arp.sha[0] & 1:
            self.stats.malformed += 1
            return
        if arp.oper == OP_REQUEST:
            self.stats.rx_requests += 1
        else:
            self.stats.rx_replies += 1
        if arp.spa and (is_martian_source(arp.spa) or arp.spa >> 24 == 127):
            # Linux arp_process drops loopback and multicast senders; no host has such an
            # address, so an entry (or a reply unicast to its MAC) would only serve a spoofer
            self.stats.martian_senders += 1
            return
        local = self.local_addrs()
        if arp.spa in local:
            # someone else claims our address (RFC 5227 §2.4): count it, never learn it
            if arp.sha != self.mac:
                self.stats.conflicts += 1
            return
        ours = arp.tpa in local
        merged = False
        if arp.spa != 0:
            entry = self.entries.get(arp.spa)
            if entry is not None:
                if not entry.static:   # a static entry is a defence against spoofing: keep it
                    self._confirm(entry, arp.sha, now)
                merged = True
        if not ours:
            self.stats.not_for_us += 1
            return
        if not merged and arp.spa != 0:
            self._confirm(self._new_entry(arp.spa, now), arp.sha, now)
        if arp.oper == OP_REQUEST:
            reply = ArpRepr(OP_REPLY, self.mac, arp.tpa, arp.sha, arp.spa)
            self.stats.tx_replies += 1
            self.transmit(arp.sha, reply.emit())

    def _confirm(self, entry: Neighbour, mac: bytes, now: float) -> None:
        was_incomplete = entry.state == INCOMPLETE
        entry.mac, entry.state, entry.refreshed = mac, REACHABLE, False
        entry.deadline = now + self.config.reachable_time
        if was_incomplete:
            self.stats.resolved += 1
        queue, entry.queue, entry.queued = entry.queue, deque(), 0
        for pkt in queue:
            self.transmit_ip(pkt, mac)
        self.kick()

    def _new_entry(self, ip: int, now: float) -> Neighbour:
        if len(self.entries) >= self.config.max_entries:
            self._evict()
        entry = Neighbour(ip, INCOMPLETE, deadline=now)
        self.entries[ip] = entry
        return entry

    def _evict(self) -> None:
        # Prefer dropping a stale entry; else the oldest inserted.
        self.stats.table_full += 1
        # Static entries are never evicted: they are the operator's word.
        dynamic = [ip for ip, e in self.entries.items() if not e.static]
        if not dynamic:
            return
        victim = next((ip for ip in dynamic if self.entries[ip].state == STALE), dynamic[0])
        self._fail(self.entries.pop(victim))

    # --- resolve (used by the Ethernet link for every unicast IPv4 packet) ---
    def resolve(self, ip: int, pkt: PacketBuffer, now: float) -> bytes | None:
        entry = self.entries.get(ip)
        if entry is not None and entry.state != INCOMPLETE:
            if entry.state == STALE and not entry.refreshed:
                entry.refreshed = True   # one unicast probe; a reply makes it REACHABLE again
                self._request(ip, entry.mac)
            return entry.mac
        if entry is None:
            entry = self._new_entry(ip, now)
            entry.deadline = now + self.config.retrans_time
            entry.retries = 1
            self._request(ip, MAC_BROADCAST)
            self.kick()
        entry.queue.append(pkt)
        entry.queued += len(pkt)
        while len(entry.queue) > self.config.queue_len or entry.queued > self.config.queue_bytes:
            entry.queued -= len(entry.queue.popleft())
            self.stats.queue_drops += 1
        return None

    def _request(self, ip: int, dst_mac: bytes) -> None:
        src = self._source_for(ip)
        self.stats.tx_requests += 1
        self.transmit(dst_mac, ArpRepr(OP_REQUEST, self.mac, src, b"\x00" * 6, ip).emit())

    def _source_for(self, ip: int) -> int:
        addrs = self.local_addrs()
        return addrs[0] if addrs else 0

    def announce(self, ip: int, now: float) -> None:
        """RFC 5227 §2.3: announce a newly configured address (sender = target = ip)."""
        self._announce.append((now, ip, self.config.announce_count))
        self.kick()

    def add_static(self, ip: int, mac: bytes, now: float) -> None:
        entry = self.entries.get(ip) or self._new_entry(ip, now)
        self._confirm(entry, mac, now)
        entry.deadline, entry.static = float("inf"), True

    def flush(self) -> None:
        for entry in list(self.entries.values()):
            self._fail(entry)
        self.entries.clear()

    # --- timers ---------------------------------------------------------------
    def poll_at(self) -> float | None:
        times = [e.deadline for e in self.entries.values() if e.deadline != float("inf")]
        times.extend(t for t, _, _ in self._announce)
        return min(times, default=None)

    def poll(self, now: float) -> None:
        for entry in [e for e in self.entries.values() if e.deadline <= now]:
            if self.entries.get(entry.ip) is not entry:
                continue   # an unreachable() callback re-entered resolve() and replaced it
            if entry.state == INCOMPLETE:
                if entry.retries >= self.config.max_retries:
                    del self.entries[entry.ip]
                    self._fail(entry)
                else:
                    entry.retries += 1
                    entry.deadline = now + self.config.retrans_time
                    self._request(entry.ip, MAC_BROADCAST)
            elif entry.state == REACHABLE:
                entry.state, entry.refreshed = STALE, False
                entry.deadline = now + self.config.stale_time
            else:
                del self.entries[entry.ip]
        due = [a for a in self._announce if a[0] <= now]
        self._announce = [a for a in self._announce if a[0] > now]
        for _, ip, remaining in due:
            self.stats.tx_announces += 1
            self.transmit(MAC_BROADCAST, ArpRepr(OP_REQUEST, self.mac, ip, b"\x00" * 6, ip).emit())
            if remaining > 1:
                self._announce.append((now + self.config.announce_interval, ip, remaining - 1))

    def _fail(self, entry: Neighbour) -> None:
        if entry.state == INCOMPLETE:
            self.stats.failed += 1
        queue, entry.queue, entry.queued = entry.queue, deque(), 0
        for pkt in queue:
            self.unreachable(pkt)

    def table(self) -> list[tuple[int, str, bytes]]:
        return [(e.ip, e.state, e.mac) for e in self.entries.values()]
