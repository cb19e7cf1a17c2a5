"""Packetization-layer path MTU discovery for TCP (RFC 4821; RFC 8899's search for a
transport of its own), as Linux does it with net.ipv4.tcp_mtu_probing:

  * 0 (Linux's default): off -- the MSS follows the route's path MTU (ICMP, pmtu.py) only.
  * 1: off until a black hole is suspected -- repeated RTOs (Linux tcp_write_timeout:
    retransmissions outstanding longer than tcp_retries1 backoffs of TCP_RTO_MIN would take,
    3 s) turn it on, and the MSS drops to tcp_base_mss (1024); each further RTO of the
    episode halves the search floor (Linux tcp_mtu_probing), down to tcp_mtu_probe_floor.
  * 2: on from the start: the MSS starts at tcp_base_mss and probes up.

While on, the MSS is at most the floor of the search (`search_low`, an MTU), and with enough
window and data one probe segment the size of the middle of the search range
[search_low, search_high] is sent (Linux tcp_mtu_probe): acknowledged, the floor rises to
it; lost, the ceiling falls below it.  The search stops when the range is narrower than
tcp_probe_threshold; tcp_probe_interval after it began, it starts again from the current MSS
up to the route's MTU (a path may grow).

Sans-IO: the search state of one connection in MTU units (IP + TCP headers included, as
Linux's icsk_mtup); mtuprobe_conn.py is the connection's side (its hooks convert with the
connection's header sizes).
"""
from __future__ import annotations

from dataclasses import dataclass

TCP_RTO_MIN = 0.2            # Linux's constant base of tcp_model_timeout (not the sysctl)
TCP_RTO_MAX = 120.0
TIME_SLACK = 1e-6
TCP_MIN_SND_MSS = 48         # Linux's floor of any MSS (net.ipv4.tcp_min_snd_mss default)


def model_timeout(boundary: int, rto_base: float = TCP_RTO_MIN) -> float:
    """How long `boundary` exponentially backed-off retransmissions take from rto_base,
    capped at TCP_RTO_MAX per step (Linux tcp_model_timeout): tcp_retries1 = 3 -> 3 s."""
    linear_after = max(int(TCP_RTO_MAX / rto_base).bit_length() - 1, 0)   # ilog2
    if boundary <= linear_after:
        return round(((2 << boundary) - 1) * rto_base, 6)
    return round(((2 << linear_after) - 1) * rto_base + (boundary - linear_after) * TCP_RTO_MAX, 6)


@dataclass(slots=True)
class MtuSearch:
    """One connection's search (Linux icsk_mtup), all sizes in MTU units."""
    enabled: bool
    search_low: int              # known to pass: the MSS is at most this, less headers
    search_high: int             # above it is known (or assumed) not to pass
    probe_size: int = 0          # the probe in flight (0: none)
    probe_start: int = 0         # its sequence range
    probe_end: int = 0
    probe_timestamp: float = 0.0  # when this search began (for tcp_probe_interval)
    rto_stamp: float = 0.0       # when the RTO episode began (Linux retrans_stamp, see on_rto)
    # the MSS obeys search_low (Linux: from the next tcp_sync_mss -- at once on an active open,
    # on a passive one not before the search first moves)
    clamped: bool = False

    def black_hole(self, header: int, base_mss: int, floor: int, now: float) -> None:
        """Repeated RTOs (Linux tcp_mtu_probing): the first turns the search on (the MSS
        drops to base_mss); each later one halves the floor's MSS, never below
        base_mss's, tcp_mtu_probe_floor nor TCP_MIN_SND_MSS."""
        self.clamped = True
        if not self.enabled:
            self.enabled = True
            self.probe_timestamp = now
            return
        mss = (self.search_low - header) >> 1
        mss = max(min(base_mss, mss), floor, TCP_MIN_SND_MSS)
        self.search_low = mss + header

    def mss_limit(self, header: int) -> int | None:
        """The largest MSS the search allows (None: no limit, the search is off)."""
        return self.search_low - header if self.enabled and self.clamped else None

    def next_probe(self, header: int, threshold: int) -> int | None:
        """The payload of the next probe (Linux tcp_mtu_probe): the middle of the range, or
        None when a probe is in flight or the range is narrower than tcp_probe_threshold."""
        if not self.enabled or self.probe_size:
            return None
        probe = ((self.search_high + self.search_low) >> 1) - header
        if probe > self.search_high - header or self.search_high - self.search_low < threshold:
            return None
        return probe

    def probe_sent(self, size_mtu: int, start: int, end: int) -> None:
        self.probe_size, self.probe_start, self.probe_end = size_mtu, start, end

    def probe_acked(self) -> None:
        """The probe arrived (Linux tcp_mtup_probe_success): that size passes."""
        self.search_low = self.probe_size
        self.probe_size = 0
        self.clamped = True

    def probe_lost(self) -> None:
        """The probe was lost (Linux tcp_mtup_probe_failed): nothing its size passes."""
        self.search_high = self.probe_size - 1
        self.probe_size = 0

    def reprobe_due(self, now: float, interval: float, high: int, low: int) -> bool:
        """tcp_probe_interval after the search began, search again (Linux
        tcp_mtu_check_reprobe): from `low` (the current MSS as an MTU) up to `high`."""
        if now - self.probe_timestamp < interval:
            return False
        self.probe_size = 0
        self.search_high, self.search_low = high, low
        self.probe_timestamp = now
        return True
